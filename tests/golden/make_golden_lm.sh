#!/bin/sh
# make_golden_lm.sh BUILD — makes tests/golden/lm: streams of the current
# language-model profiles (det-f32-v4, det-i8-v1) made with tests/models/tiny-dsrn.gguf,
# each with the original (.orig) and the options it was made with (.opts).
# tests/codec.sh checks that they decode and that re-encoding gives the same
# bytes on every machine and kernel path. Makes only the files that are
# missing: never regenerate existing ones to make a test pass; a change that
# alters a probability needs a new profile id, and the files of the old one
# move to their own folder (tests/golden/lm-v1, lm-v2: decoded only; lm-v3,
# which the compressor still writes with --profile=det-f32-v3: re-encoded too).
# The files made before the binary setting existed carry --binary=0 in their
# .opts: that is how they were written, and re-encoding them so must still
# give the same bytes.
set -e
BUILD=${1:-build}
LMZIP=$(pwd)/$BUILD/lmzip
M=tests/models/tiny-dsrn.gguf
G=tests/golden/lm
mkdir -p $G
head -c 3000 samples/alice29.txt > $G/text-3k.orig
echo "-B 1K --group=1 --binary=0" > $G/text-3k.opts
{ head -c 1500 samples/alice29.txt; printf '\000\001\002\377\376'; head -c 700 /dev/zero
  printf 'caf\303\251 \316\261\316\262\316\263 \344\270\255\346\226\207 and some more words to pass the minimum\n'
  awk 'BEGIN { s = 12345; for (i = 0; i < 400; i++) { s = (s * 1103515245 + 12345) % 2147483648; printf "%c", int(s / 65536) % 256 } }'
  tail -c 1200 samples/alice29.txt; } > $G/mixed.orig
echo "-B 256K --binary=0" > $G/mixed.opts
tail -c 2000 samples/alice29.txt > $G/text-prob-16.orig
echo "--mixer=prob --cdf-bits=16 --parts=model,ngram,bias -B 256K --binary=0" > $G/text-prob-16.opts
head -c 4000 samples/alice29.txt | tail -c 2500 > $G/text-skip.orig
echo "--skip=3 -B 1K --group=4 --binary=0" > $G/text-skip.opts
# six 1K frames in groups of four: two groups, binary bytes in one frame
{ head -c 3000 samples/alice29.txt | tail -c 2500; printf '\000\377\001\376'; head -c 300 /dev/zero
  tail -c 3200 samples/alice29.txt; } > $G/group.orig
echo "-B 1K --group=4 --binary=0" > $G/group.opts
# binary data among text, 1K frames in one group (the binary setting, lmzip
# 0.2): text, then text with binary bytes at its end (a kind-4 segment),
# two frames of binary records (method 1, one byte-model chain), a frame
# with a run of zeros (method 3, its literals through the chain), random
# bytes (stored, the chain learns them), text the model cannot code in
# less than its size (random CJK characters in UTF-8: stored, the chain
# learns its binary segment), records again, four copies of 256 random
# bytes (method 4, raw LZMA2), text
{ head -c 2000 samples/alice29.txt
  LC_ALL=C awk 'BEGIN { for (i = 0; i < 512; i++) printf "%c%c%c%c", 14 + i % 16, 128 + int(i / 16) % 64, 2, 1 }'
  LC_ALL=C awk 'BEGIN { for (i = 0; i < 100; i++) printf "%c", (i * 7) % 31 + 1; for (i = 0; i < 800; i++) printf "%c", 0
               for (i = 0; i < 124; i++) printf "%c", (i * 5) % 29 + 1 }'
  LC_ALL=C awk 'BEGIN { s = 777; for (i = 0; i < 1024; i++) { s = (s * 1103515245 + 12345) % 2147483648; printf "%c", int(s / 65536) % 256 } }'
  LC_ALL=C awk 'BEGIN { s = 99; for (i = 0; i < 340; i++) { if (i == 170) for (k = 0; k < 10; k++) printf "%c%c", 1, 2
               s = (s * 1103515245 + 12345) % 2147483648
               printf "%c%c%c", 228 + int(s / 65536) % 6, 128 + int(s / 1024) % 64, 128 + int(s / 16) % 64 } }'
  LC_ALL=C awk 'BEGIN { for (i = 512; i < 768; i++) printf "%c%c%c%c", 14 + i % 16, 128 + int(i / 16) % 64, 2, 1
               s = 5; for (i = 0; i < 256; i++) { s = (s * 1103515245 + 12345) % 2147483648; r[i] = 128 + int(s / 65536) % 64 }
               for (k = 0; k < 4; k++) for (i = 0; i < 256; i++) printf "%c", r[i] }'
  tail -c 2000 samples/alice29.txt; } > $G/binary-chain.orig
echo "-B 1K --group=12" > $G/binary-chain.opts
# det-i8-v1 (lmzip 0.3: the engine's products in exact int8 sums): text in
# 1K frames, two groups, binary bytes through the chain, a skip threshold
{ head -c 5000 samples/alice29.txt | tail -c 3000; printf '\000\377\001\376'; head -c 200 /dev/zero
  tail -c 2600 samples/alice29.txt; } > $G/i8-group.orig
echo "--profile=det-i8-v1 -B 1K --group=3" > $G/i8-group.opts
head -c 9000 samples/alice29.txt | tail -c 2500 > $G/i8-skip.orig
echo "--profile=det-i8-v1 --skip=3 -B 256K" > $G/i8-skip.opts
for f in $G/*.orig; do
    b=${f%.orig}
    [ -e "$b.lmz" ] && continue
    # shellcheck disable=SC2046
    "$LMZIP" -q -c -m $M $(cat "$b.opts") "$f" > "$b.lmz"
done

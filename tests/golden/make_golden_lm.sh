#!/bin/sh
# make_golden_lm.sh BUILD — makes tests/golden/lm: streams of the current
# language-model profile (det-f32-v4) made with tests/models/tiny-dsrn.gguf,
# each with the original (.orig) and the options it was made with (.opts).
# tests/codec.sh checks that they decode and that re-encoding gives the same
# bytes on every machine and kernel path. Makes only the files that are
# missing: never regenerate existing ones to make a test pass; a change that
# alters a probability needs a new profile id, and the files of the old one
# move to their own folder (tests/golden/lm-v1, lm-v2: decoded only; lm-v3,
# which the compressor still writes with --profile=det-f32-v3: re-encoded too).
set -e
BUILD=${1:-build}
LMZIP=$(pwd)/$BUILD/lmzip
M=tests/models/tiny-dsrn.gguf
G=tests/golden/lm
mkdir -p $G
head -c 3000 samples/alice29.txt > $G/text-3k.orig
echo "-B 1K --group=1" > $G/text-3k.opts
{ head -c 1500 samples/alice29.txt; printf '\000\001\002\377\376'; head -c 700 /dev/zero
  printf 'caf\303\251 \316\261\316\262\316\263 \344\270\255\346\226\207 and some more words to pass the minimum\n'
  awk 'BEGIN { s = 12345; for (i = 0; i < 400; i++) { s = (s * 1103515245 + 12345) % 2147483648; printf "%c", int(s / 65536) % 256 } }'
  tail -c 1200 samples/alice29.txt; } > $G/mixed.orig
echo "-B 256K" > $G/mixed.opts
tail -c 2000 samples/alice29.txt > $G/text-prob-16.orig
echo "--mixer=prob --cdf-bits=16 --parts=model,ngram,bias -B 256K" > $G/text-prob-16.opts
head -c 4000 samples/alice29.txt | tail -c 2500 > $G/text-skip.orig
echo "--skip=3 -B 1K --group=4" > $G/text-skip.opts
# six 1K frames in groups of four: two groups, binary bytes in one frame
{ head -c 3000 samples/alice29.txt | tail -c 2500; printf '\000\377\001\376'; head -c 300 /dev/zero
  tail -c 3200 samples/alice29.txt; } > $G/group.orig
echo "-B 1K --group=4" > $G/group.opts
for f in $G/*.orig; do
    b=${f%.orig}
    [ -e "$b.lmz" ] && continue
    # shellcheck disable=SC2046
    "$LMZIP" -q -c -m $M $(cat "$b.opts") "$f" > "$b.lmz"
done

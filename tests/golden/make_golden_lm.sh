#!/bin/sh
# make_golden_lm.sh BUILD — (re)makes tests/golden/lm: streams of profile
# det-f32-v1 made with tests/models/tiny-dsrn.gguf, each with the original
# (.orig) and the options it was made with (.opts). tests/codec.sh checks that
# they decode and that re-encoding gives the same bytes on every machine and
# kernel path. Run once per profile version; never regenerate existing files
# to make a test pass.
set -e
BUILD=${1:-build}
LMZIP=$(pwd)/$BUILD/lmzip
M=tests/models/tiny-dsrn.gguf
G=tests/golden/lm
mkdir -p $G
head -c 3000 samples/alice29.txt > $G/text-3k.orig
echo "-B 1K" > $G/text-3k.opts
{ head -c 1500 samples/alice29.txt; printf '\000\001\002\377\376'; head -c 700 /dev/zero
  printf 'caf\303\251 \316\261\316\262\316\263 \344\270\255\346\226\207 and some more words to pass the minimum\n'
  awk 'BEGIN { s = 12345; for (i = 0; i < 400; i++) { s = (s * 1103515245 + 12345) % 2147483648; printf "%c", int(s / 65536) % 256 } }'
  tail -c 1200 samples/alice29.txt; } > $G/mixed.orig
echo "" > $G/mixed.opts
tail -c 2000 samples/alice29.txt > $G/text-prob-16.orig
echo "--mixer=prob --cdf-bits=16 --parts=model,ngram,bias" > $G/text-prob-16.opts
head -c 4000 samples/alice29.txt | tail -c 2500 > $G/text-skip.orig
echo "--skip=3 -B 1K" > $G/text-skip.opts
for f in $G/*.orig; do
    b=${f%.orig}
    # shellcheck disable=SC2046
    "$LMZIP" -q -c -m $M $(cat "$b.opts") "$f" > "$b.lmz"
done

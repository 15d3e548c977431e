#!/bin/sh
# make_golden_defaults.sh BUILD DIR — makes golden files of the build's
# default ensemble parts: format-version-2 streams made with
# tests/models/tiny-dsrn.gguf: several frames sharing one ensemble,
# det-i8-v1, and one frame. Each with its original (.orig) and options
# (.opts); tests/codec.sh decodes them and re-encodes them to the same bytes
# with the parts of the lmzip that made them named. Makes only the files that
# are missing: never regenerate them.
#   tests/golden/lm-head   lmzip 0.5: + the adaptive output head (part head)
#   tests/golden/lm-refine lmzip 0.6: + the n-gram's top order and the bit coder's maps
#                          (parts ngtop and refine)
#   tests/golden/lm-cache  lmzip 0.7: + the cache of the model's vectors (part cache)
#   tests/golden/lm-rows   lmzip 0.8: the settings cache-rows and head-lr; its
#                          .opts were written first (an .opts already there is
#                          kept): 256 rows for the groups, 64 rows and head-lr
#                          0.5 for det-i8-v1 (rings that wrap), and the
#                          default (65,536, written: the input from a pipe)
set -e
BUILD=${1:-build}
G=${2:?the folder, e.g. tests/golden/lm-refine}
LMZIP=$(pwd)/$BUILD/lmzip
M=tests/models/tiny-dsrn.gguf
mkdir -p "$G"
[ -e "$G/groups.orig" ] || head -c 7000 samples/alice29.txt | tail -c 5800 > "$G/groups.orig"
[ -e "$G/groups.opts" ] || echo "-B 1K --group=3" > "$G/groups.opts"
[ -e "$G/i8.orig" ] || tail -c 2500 samples/alice29.txt > "$G/i8.orig"
[ -e "$G/i8.opts" ] || echo "--profile=det-i8-v1 -B 1K --group=2" > "$G/i8.opts"
[ -e "$G/one-frame.orig" ] || head -c 3000 samples/alice29.txt > "$G/one-frame.orig"
[ -e "$G/one-frame.opts" ] || : > "$G/one-frame.opts"
for f in "$G"/*.orig; do
    b=${f%.orig}
    [ -e "$b.lmz" ] && continue
    # shellcheck disable=SC2046
    "$LMZIP" -q -c -m $M $(cat "$b.opts") < "$f" > "$b.lmz"
done

#!/bin/sh
# make_golden_head.sh BUILD — makes tests/golden/lm-head: format-version-2
# streams with the adaptive output head (ensemble part "head", lmzip 0.5, in
# the default parts), made with tests/models/tiny-dsrn.gguf: several frames
# sharing one head, det-i8-v1, and one frame. Each with its original (.orig)
# and options (.opts); tests/codec.sh decodes them and re-encodes them to the
# same bytes. Makes only the files that are missing: never regenerate them.
set -e
BUILD=${1:-build}
LMZIP=$(pwd)/$BUILD/lmzip
M=tests/models/tiny-dsrn.gguf
G=tests/golden/lm-head
mkdir -p $G
head -c 7000 samples/alice29.txt | tail -c 5800 > $G/groups.orig
echo "-B 1K --group=3" > $G/groups.opts
tail -c 2500 samples/alice29.txt > $G/i8.orig
echo "--profile=det-i8-v1 -B 1K --group=2" > $G/i8.opts
head -c 3000 samples/alice29.txt > $G/one-frame.orig
: > $G/one-frame.opts
for f in $G/*.orig; do
    b=${f%.orig}
    [ -e "$b.lmz" ] && continue
    # shellcheck disable=SC2046
    "$LMZIP" -q -c -m $M $(cat "$b.opts") < "$f" > "$b.lmz"
done

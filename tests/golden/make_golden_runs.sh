#!/bin/sh
# make_golden_runs.sh BUILD — the golden files of lmzip 0.2: streams with
# frames of method 3 (runs of one byte cut out, format.h) in ok/, and broken
# files the hostile test of issue 15 asked for in bad/ (a damaged setting of
# a language-model stream, a model stream naming model 'none', a model name
# with terminal control bytes, a frame declaring 1 GiB from a few KB).
# Makes only the files that are missing: never regenerate existing ones.
set -e
BUILD=${1:-build}
LMZIP=$(pwd)/$BUILD/lmzip
G=tests/golden
cc -std=c11 -O2 -Iinclude -Isrc -o "$BUILD/mkbad" $G/mkbad.c -lxxhash
MKBAD=$BUILD/mkbad
if [ ! -e $G/ok/v1-runs-sparse.lmz ]; then
    { head -c 2000 samples/alice29.txt; head -c 3000 /dev/zero; tail -c 1500 samples/alice29.txt
      awk 'BEGIN { for (i = 0; i < 600; i++) printf "%c", 255 }'
      awk 'BEGIN { s = 7; for (i = 0; i < 500; i++) { s = (s * 1103515245 + 12345) % 2147483648; printf "%c", int(s / 65536) % 256 } }'
      head -c 40000 /dev/zero; head -c 4000 samples/alice29.txt | tail -c 1000; } > $G/ok/v1-runs-sparse.orig
    "$LMZIP" -q -c -B 16K < $G/ok/v1-runs-sparse.orig > $G/ok/v1-runs-sparse.lmz
fi
if [ ! -e $G/ok/v1-runs-zeros-64k.lmz ]; then
    cp $G/ok/v1-zeros-64k.orig $G/ok/v1-runs-zeros-64k.orig
    "$LMZIP" -q -c --table-bits=12 < $G/ok/v1-runs-zeros-64k.orig > $G/ok/v1-runs-zeros-64k.lmz
fi
lm=$G/lm/text-3k.lmz
[ -e $G/bad/lm-window.lmz ] || $MKBAD set:10:5 $lm $G/bad/lm-window.lmz
[ -e $G/bad/lm-model-none.lmz ] || $MKBAD name:none $lm $G/bad/lm-model-none.lmz
# a name with control bytes decodes with its model: a crafted case, not a broken file
[ -e tests/fuzz/corpus/lm-ctrl-name.lmz ] ||
    $MKBAD "name:$(printf '\033[31mEVIL\007')" $lm tests/fuzz/corpus/lm-ctrl-name.lmz
# the crafted cases go to the fuzz corpus too
for f in lm-window lm-model-none bomb-1g; do
    [ -e tests/fuzz/corpus/$f.lmz ] || cp $G/bad/$f.lmz tests/fuzz/corpus/
done
[ -e $G/bad/bomb-1g.lmz ] || $MKBAD bomb $G/ok/v1-text-20k.lmz $G/bad/bomb-1g.lmz

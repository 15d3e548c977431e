#!/bin/sh
# demo.sh — the main job on the default predictor: compress and decompress a
# sample text from the repository, check the round trip, print sizes and bpb.
set -e
BUILD=${1:-build}
LMZIP="$BUILD/lmzip"
SAMPLE=samples/alice29.txt
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

t0=$(date +%s.%N)
"$LMZIP" -q -c "$SAMPLE" > "$TMP/sample.lmz"
t1=$(date +%s.%N)
"$LMZIP" -q -d -c "$TMP/sample.lmz" > "$TMP/sample.out"
t2=$(date +%s.%N)
cmp "$SAMPLE" "$TMP/sample.out"

orig=$(wc -c < "$SAMPLE")
comp=$(wc -c < "$TMP/sample.lmz")
awk -v o="$orig" -v c="$comp" -v t0="$t0" -v t1="$t1" -v t2="$t2" -v f="$SAMPLE" 'BEGIN {
    tc = t1 - t0; td = t2 - t1
    printf "%s: %d bytes -> %d bytes (%.2f%%), %.4f bits per byte, round trip exact\n", f, o, c, 100 * c / o, 8 * c / o
    if (tc > 0 && td > 0) printf "compress %.2f MB/s, decompress %.2f MB/s (1 thread, model none)\n", o / tc / 1e6, o / td / 1e6
}'
"$LMZIP" -l "$TMP/sample.lmz"

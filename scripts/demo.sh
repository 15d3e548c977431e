#!/bin/sh
# demo.sh — the main job: compress and decompress a sample text with the
# default model (models/default.gguf) and with the byte model alone (-m none),
# check both round trips, print sizes, bits per byte and speeds side by side.
#   sh scripts/demo.sh [BUILD] [FILE]      (THREADS: -T, default 2)
set -e
BUILD=${1:-build}
SAMPLE=${2:-samples/alice29.txt}
THREADS=${THREADS:-2}
LMZIP="$BUILD/lmzip"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

orig=$(wc -c < "$SAMPLE")
echo "$SAMPLE: $orig bytes, $THREADS threads ($(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //'))"
run() { # NAME MODEL-OPTION
    t0=$(date +%s.%N)
    "$LMZIP" -q -T "$THREADS" $2 -c "$SAMPLE" > "$TMP/$1.lmz"
    t1=$(date +%s.%N)
    "$LMZIP" -q -T "$THREADS" -d -c "$TMP/$1.lmz" > "$TMP/$1.out"
    t2=$(date +%s.%N)
    cmp "$SAMPLE" "$TMP/$1.out"
    comp=$(wc -c < "$TMP/$1.lmz")
    awk -v n="$1" -v o="$orig" -v c="$comp" -v t0="$t0" -v t1="$t1" -v t2="$t2" 'BEGIN {
        tc = t1 - t0; td = t2 - t1
        printf "  %-22s %8d bytes  %6.2f%%  %.4f bpb  compress %8.1f KB/s  decompress %8.1f KB/s  exact\n",
            n, c, 100 * c / o, 8 * c / o, o / tc / 1024, o / td / 1024
    }'
}
if [ -f models/default.gguf ] || [ -n "${LMZIP_MODELS:-}" ]; then
    run "default model" ""
else
    echo "  (no models/default.gguf: the default model is missing from this checkout)"
fi
run "byte model (-m none)" "-m none"

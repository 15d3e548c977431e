#!/bin/sh
# Learning curves from `dsrn train` logs: validation bits/byte against the
# training tokens seen, one line per log, as a PNG (gnuplot, Debian's
# gnuplot-nox).
#   sh scripts/plot-curves.sh OUT.png TITLE LOG...
set -eu
[ $# -ge 3 ] || { echo "usage: $0 OUT.png TITLE LOG..." >&2; exit 1; }
command -v gnuplot >/dev/null || { echo "$0: gnuplot is missing (apt-get install gnuplot-nox)" >&2; exit 1; }
out=$1
title=$2
shift 2
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
plot=""
i=0
for log in "$@"; do
    i=$((i + 1))
    # "16 x 128 tokens per step", then "step N | validation: X nats/token, Y bits/byte"
    awk '/tokens per step/ {for (k = 1; k < NF; k++) if ($k == "x") per = $(k - 1) * $(k + 1)}
         /validation:/ {print $2 * per / 1e6, $(NF - 1)}' "$log" >"$TMP/$i.dat"
    name=$(basename "$log" .log)
    plot="$plot${plot:+, }'$TMP/$i.dat' using 1:2 with linespoints title '$name'"
done
gnuplot <<EOF
set terminal png size 900,560
set output '$out'
set title '$title'
set xlabel 'training tokens (millions)'
set ylabel 'validation bits per byte'
set grid
set key top right
plot $plot
EOF
echo "$out"

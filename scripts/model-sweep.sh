#!/bin/sh
# The model sweep of docs/MODEL.md: short training runs of equal wall time that
# differ in one choice each, scored by the validation bits/byte, by the codec's
# bits/byte on three bench texts (English prose, C, a man page) and by the copy
# probes.
#
#   sh scripts/model-sweep.sh [RUN...]        (default: every run below)
#
# Environment: MIN (minutes per run, default 5), OUT (folder, default
# sweep/), THREADS (default 2), DATA (the training folder, default
# ../shared/data/train). Results: $OUT/sweep.tsv, one line per run, and
# $OUT/NAME.log (the trainer's log, for the learning curves).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MIN=${MIN:-5}
OUT=${OUT:-$ROOT/sweep}
THREADS=${THREADS:-2}
DATA=${DATA:-$ROOT/../shared/data/train}
BENCH=${BENCH:-$ROOT/../shared/data/bench}
DSRN=$ROOT/build/dsrn
LMZIP=$ROOT/build/lmzip
mkdir -p "$OUT"
CACHE=$OUT/cache

MIX="$DATA/wiki $DATA/gutenberg $DATA/code"
tok() { # VOCAB: a tokenizer trained on the whole mix
    [ -f "$OUT/tok$1.gguf" ] || "$DSRN" tokenizer --data $MIX --vocab "$1" -o "$OUT/tok$1.gguf" >/dev/null 2>&1
    echo "$OUT/tok$1.gguf"
}

# name | data | vocab | settings (the base: D 256, L 4, SwiGLU 1024, 2 slow
# heads, 4 attention heads, window 128, the four gate biases, b_g -2)
BASE="--dim 256 --layers 4 --ffn 1024 --slow-heads 2 --heads 4 --window 128 --biases 1 --gate-bias -2"
runs() {
    cat <<EOF
base|all|8192|$BASE
d192|all|8192|$BASE --dim 192 --ffn 768 --heads 4
d320|all|8192|$BASE --dim 320 --ffn 1280 --heads 5
l6|all|8192|$BASE --layers 6
mlp8|all|8192|$BASE --ffn 2048
v16k|all|16384|$BASE
heads4|all|8192|$BASE --slow-heads 4
win256|all|8192|$BASE --window 256
refinit|all|8192|$BASE --init-std 0.02
nocode|text|8192|$BASE
d192v16k|all|16384|$BASE --dim 192 --ffn 768 --heads 4
EOF
}

bpb() { # MODEL FILE: the codec's bits per byte
    "$LMZIP" -m "$1" -T "$THREADS" -c "$2" >"$OUT/tmp.lmz"
    echo "$(stat -c %s "$OUT/tmp.lmz") $(stat -c %s "$2")" | awk '{printf "%.4f", 8 * $1 / $2}'
}

[ -f "$OUT/sweep.tsv" ] || printf 'run\tparams\ttokens\ttok/s\tval_bpb\talice29\tfields.c\txargs.1\tcopy_p\tcopied\n' >"$OUT/sweep.tsv"
runs | while IFS='|' read -r name data vocab settings; do
    if [ $# -gt 0 ]; then
        want=0
        for r in "$@"; do [ "$r" = "$name" ] && want=1; done
        [ $want = 1 ] || continue
    fi
    case $data in all) d=$MIX ;; text) d="$DATA/wiki $DATA/gutenberg" ;; esac
    t=$(tok "$vocab")
    # tokenise outside the timed run: one step fills the cache
    "$DSRN" train --data $d --tokenizer "$t" --cache "$CACHE" --steps 1 --warmup 1 -q -o "$OUT/warm.gguf" >/dev/null 2>&1
    # shellcheck disable=SC2086
    "$DSRN" train --data $d --tokenizer "$t" --cache "$CACHE" --time "$MIN" --threads "$THREADS" \
        --eval-every 250 --val-tokens 131072 --log-every 50 --save-every 0 --seed 1 $settings \
        -o "$OUT/$name.gguf" >"$OUT/$name.log" 2>&1
    params=$("$DSRN" info "$OUT/$name.gguf" | awk '$1 == "general.name" {n = split($2, a, "-"); print a[n]}' | tr -d "'")
    val=$(awk '/validation/ {v = $(NF - 1)} END {print v}' "$OUT/$name.log")
    toks=$("$DSRN" info "$OUT/$name.gguf" | awk '$1 == "dsrn.train.tokens" {print $NF}')
    rate=$(awk '/tok\/s/ {for (i = 1; i <= NF; i++) if ($i == "tok/s") r = $(i - 1)} END {print r}' "$OUT/$name.log")
    a=$(bpb "$OUT/$name.gguf" "$BENCH/canterbury/alice29.txt")
    f=$(bpb "$OUT/$name.gguf" "$BENCH/canterbury/fields.c")
    x=$(bpb "$OUT/$name.gguf" "$BENCH/canterbury/xargs.1")
    cp=$("$DSRN" eval -m "$OUT/$name.gguf" --copy 2>&1 | awk '/copy probes:/ {print $5, $6}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$params" "$toks" "$rate" "$val" "$a" "$f" "$x" \
        "$(echo "$cp" | cut -d' ' -f1 | tr -d ,)" "$(echo "$cp" | cut -d' ' -f2)" >>"$OUT/sweep.tsv"
done
rm -f "$OUT/tmp.lmz" "$OUT/warm.gguf" "$OUT/warm.opt.gguf"

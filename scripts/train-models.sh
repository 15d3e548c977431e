#!/bin/sh
# train-models.sh — reproduces models/default.gguf: the tokenizer, the
# training run (resumable: run it again after an interruption and it goes on
# from the last checkpoint), the conversion to the shipped type, and a record
# of what was done (docs/MODEL.md has the figures of the shipped run).
#
#   sh scripts/train-models.sh [default]
#
# Environment: OUT (work folder for checkpoints and logs, default
# train-out/; keep it out of git), DATA (default ../shared/data/train),
# THREADS (default 2), MINUTES (the first stage's training time, default
# 75), TOTAL (minutes of the first two stages, default 180), TOTAL3
# (minutes of all three, default 305: the shipped run's; TOTAL3 = TOTAL: two
# stages, TOTAL = MINUTES: one), COPY (1, the default: the copy curriculum
# after the three stages; 0: none), TYPE (f16 or q8_0, default q8_0: the
# shipped type).
#
# The training run is timed, not counted in steps: a machine that does more
# tokens per second trains on more tokens. The tokens, steps and wall time of
# a run are in its model's metadata (dsrn info) and its log.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/train-out}
DATA=${DATA:-$ROOT/../shared/data/train}
THREADS=${THREADS:-2}
MINUTES=${MINUTES:-75}
TYPE=${TYPE:-q8_0}
WHICH=${1:-default}
DSRN=$ROOT/build/dsrn
mkdir -p "$OUT"
[ -x "$DSRN" ] || make -C "$ROOT" -j"$THREADS" all >/dev/null

# the training corpus: books, Wikipedia and code (never the bench or eval files)
MIX="$DATA/wiki $DATA/gutenberg $DATA/code"

# 1. the tokenizer: byte-level BPE, 8192 tokens, trained on the whole mix
[ -f "$OUT/tok8k.gguf" ] || "$DSRN" tokenizer --data $MIX --vocab 8192 -o "$OUT/tok8k.gguf"

case $WHICH in
default)
    # 2. the model: the sweep's choice (docs/MODEL.md)
    SETTINGS="--dim 192 --layers 4 --ffn 768 --slow-heads 2 --heads 4 --window 128 --biases 1 --gate-bias -2"
    ;;
*)
    echo "$0: unknown model '$WHICH' (default)" >&2
    exit 1
    ;;
esac

# 3. training, in three stages (docs/MODEL.md): MINUTES (75) with a peak
# rate of 3e-3 decayed to 3e-4 over its last 20 %, then the same run
# continued to TOTAL minutes (180) with a fresh schedule: the rate back up to
# 2e-3, decayed to 1e-4 over the last 30 % of the whole; then on to TOTAL3
# (305): 1.2e-3, decayed to 5e-5 over the last 25 % of the whole. A
# checkpoint about every 15 minutes (--save-every in steps); an interrupted
# stage goes on from its last checkpoint when the script runs again.
# Validation every 1000 steps for the learning curve; the logs are
# $OUT/$WHICH.log, $OUT/$WHICH-2.log and $OUT/$WHICH-3.log (follow them with
# tail -f).
TOTAL=${TOTAL:-180}
TOTAL3=${TOTAL3:-305}
ck1="$OUT/$WHICH-stage1.gguf"
ck="$OUT/$WHICH-f32.gguf"
train() { # CHECKPOINT LOG SCHEDULE...
    c=$1 log=$2
    shift 2
    resume=""
    [ -f "$c" ] && [ -f "${c%.gguf}.opt.gguf" ] && resume="--resume $c"
    # shellcheck disable=SC2086
    "$DSRN" train --data $MIX --tokenizer "$OUT/tok8k.gguf" --cache "$OUT/cache" --threads "$THREADS" \
        $SETTINGS "$@" --batch 16 --bptt 128 --warmup 200 --wsd 1 --seed 1 --eval-every 1000 \
        --val-tokens 262144 --save-every 3000 --log-every 100 $resume -o "$c" >>"$log" 2>&1 ||
        { tail -n 5 "$log" >&2; exit 1; }
    tail -n 3 "$log"
}
if [ ! -f "$OUT/$WHICH-stage1.done" ]; then
    train "$ck1" "$OUT/$WHICH.log" --lr 3e-3 --min-lr 3e-4 --wsd-decay 0.2 --time "$MINUTES"
    touch "$OUT/$WHICH-stage1.done"
fi
if [ "$TOTAL" -gt "$MINUTES" ]; then
    if [ ! -f "$ck" ]; then
        cp "$ck1" "$ck"
        cp "${ck1%.gguf}.opt.gguf" "${ck%.gguf}.opt.gguf"
    fi
    if [ ! -f "$OUT/$WHICH-stage2.done" ]; then
        train "$ck" "$OUT/$WHICH-2.log" --lr 2e-3 --min-lr 1e-4 --wsd-decay 0.3 --time "$TOTAL"
        touch "$OUT/$WHICH-stage2.done"
    fi
    if [ "$TOTAL3" -gt "$TOTAL" ]; then
        train "$ck" "$OUT/$WHICH-3.log" --lr 1.2e-3 --min-lr 5e-5 --wsd-decay 0.25 --time "$TOTAL3"
    fi
else
    cp "$ck1" "$ck"
fi

# 3b. the copy curriculum (COPY=1, the default; docs/MODEL.md), after the
# three stages: from their model in Q8_0 (the shipped run had only that file
# by then), 14 minutes on copy-practice documents alone (scripts/copy-practice.py,
# 20 MB, seed 7) at a constant 6e-4, then 95 minutes on the mix plus those
# documents (about a tenth of the tokens), 4e-4 decayed to 1e-5 over the last
# half, then 140 minutes more on the same (the shipped run: one thread, 23.4M
# tokens), from 1.5e-4 decayed to 1e-5 over the last 60 %. Fresh optimiser and
# schedule each (--init); an interrupted part goes on from its checkpoint.
COPY=${COPY:-1}
if [ "$COPY" = 1 ] && [ "$TOTAL3" -gt "$TOTAL" ]; then
    mkdir -p "$OUT/copy"
    [ -f "$OUT/copy/copy.txt" ] ||
        python3 "$ROOT/scripts/copy-practice.py" "$DATA/gutenberg" 20000000 7 "$OUT/copy/copy.txt"
    [ -f "$OUT/$WHICH-s3q8.gguf" ] || "$DSRN" quantize "$ck" --type q8_0 -o "$OUT/$WHICH-s3q8.gguf"
    part() { # FROM CHECKPOINT LOG DONE SETTINGS...
        from=$1 c=$2 log=$3 done=$4
        shift 4
        [ -f "$done" ] && return 0
        start="--init $from"
        [ -f "$c" ] && [ -f "${c%.gguf}.opt.gguf" ] && start="--resume $c"
        # shellcheck disable=SC2086
        "$DSRN" train $start --cache "$OUT/cache" --threads "$THREADS" --batch 16 --bptt 128 --warmup 100 \
            --wsd 1 --log-every 100 "$@" -o "$c" >>"$log" 2>&1 || { tail -n 5 "$log" >&2; exit 1; }
        tail -n 3 "$log"
        touch "$done"
    }
    part "$OUT/$WHICH-s3q8.gguf" "$OUT/$WHICH-copy1.gguf" "$OUT/$WHICH-4.log" "$OUT/$WHICH-copy1.done" \
        --data "$OUT/copy" --seed 1 --eval-every 500 --val-tokens 65536 --save-every 500 \
        --lr 6e-4 --min-lr 6e-4 --wsd-decay 0.01 --time 14
    # shellcheck disable=SC2086
    part "$OUT/$WHICH-copy1.gguf" "$OUT/$WHICH-copy2.gguf" "$OUT/$WHICH-5.log" "$OUT/$WHICH-copy2.done" \
        --data $MIX "$OUT/copy" --seed 2 --eval-every 1000 --val-tokens 262144 --save-every 3000 \
        --lr 4e-4 --min-lr 1e-5 --wsd-decay 0.5 --time 95
    # shellcheck disable=SC2086
    part "$OUT/$WHICH-copy2.gguf" "$OUT/$WHICH-copy3.gguf" "$OUT/$WHICH-6.log" "$OUT/$WHICH-copy3.done" \
        --data $MIX "$OUT/copy" --seed 3 --eval-every 1000 --val-tokens 262144 --save-every 2000 \
        --lr 1.5e-4 --min-lr 1e-5 --wsd-decay 0.6 --time 140
    ck="$OUT/$WHICH-copy3.gguf"
fi

# 4. the shipped file: weight matrices in $TYPE, everything else as trained
"$DSRN" quantize "$ck" --type "$TYPE" -o "$ROOT/models/$WHICH.gguf"
{
    echo "model: models/$WHICH.gguf ($TYPE), from $ck"
    echo "commit: $(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
    echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
    echo "settings: $SETTINGS; stage 1: --lr 3e-3 --min-lr 3e-4 --wsd-decay 0.2 --time $MINUTES;" \
        "stage 2: --lr 2e-3 --min-lr 1e-4 --wsd-decay 0.3 --time $TOTAL;" \
        "stage 3: --lr 1.2e-3 --min-lr 5e-5 --wsd-decay 0.25 --time $TOTAL3 (--batch 16 --bptt 128 --warmup 200 --wsd 1 --seed 1);" \
        "copy curriculum (COPY=$COPY): 14 minutes of scripts/copy-practice.py's documents at 6e-4, then 95 on the mix" \
        "and them, 4e-4 decayed to 1e-5 over the last half, then 140 more, 1.5e-4 decayed to 1e-5 over the last 60 %"
    "$DSRN" info "$ck" | grep -E 'general.name|dsrn.train'
} | tee "$OUT/$WHICH.recipe"

#!/bin/sh
# models.sh LMZIP — the shipped default model: `lmzip FILE` uses it, the
# bench corpus's small files round-trip with it (a slice under sanitizers and
# qemu), the levels pick the models and settings they promise, and the
# progress line shows where it should and nowhere else.
# Ends with "models: N passed, N failed".
LMZIP=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEFAULT="$ROOT/models/default.gguf"
DATA=${LMZ_DATA:-$ROOT/../shared/data}
TINY="$ROOT/tests/models/tiny-dsrn.gguf"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1
unset LMZIP_LEVEL LMZIP_MODELS
pass=0
fail=0
ok() { pass=$((pass + 1)); }
no() { fail=$((fail + 1)); echo "FAIL: $*"; }
# model FILE.lmz: the model a stream names
model() { "$LMZIP" -l -v "$1" 2>/dev/null | sed -n 's/.*, model \([^,]*\),.*/\1/p' | head -n 1; }

if [ ! -f "$DEFAULT" ]; then
    no "models/default.gguf is missing"
    echo "models: $pass passed, $fail failed"
    exit 1
fi

# ---- no -m: the default model; decompression finds it by the name the file gives
# sanitizers and qemu (LMZ_TEST_QUICK): short texts, the model's products run
# tens of times slower there; under qemu (LMZ_TEST_QEMU, set by make arm)
# over a hundred times (its floating point, fused multiply-adds above all, is
# emulated in software): what only checks the program's own logic, the same
# on every machine, runs natively and under the sanitizers alone, and qemu
# keeps what can differ on ARM (the model's bits, round trips)
q=1; [ -n "$LMZ_TEST_QUICK" ] && q=10; [ -n "$LMZ_TEST_QEMU" ] && q=30
head -c $((6000 / q)) "$ROOT/samples/alice29.txt" > a.txt
"$LMZIP" -q -T 2 a.txt && [ "$(model a.txt.lmz)" = default ] && ok || no "lmzip FILE compresses with models/default.gguf"
"$LMZIP" -q -d -c a.txt.lmz | cmp -s - a.txt && ok || no "the default model's file decodes without -m"
"$LMZIP" -q -c -m none a.txt > none.lmz
[ "$(wc -c < a.txt.lmz)" -lt "$(wc -c < none.lmz)" ] && ok || no "the default model beats the byte model on English"

# ---- the bench corpus's small files (up to 20K: fields.c, grammar.lsp, xargs.1,
# paper4, paper5, enwik4) with the default model (sanitizers, qemu: slices)
if [ -d "$DATA/bench" ]; then
    if [ -n "$LMZ_TEST_QUICK" ]; then
        head -c 1000 "$DATA/bench/canterbury/fields.c" > fields.c
        head -c 1000 "$DATA/bench/calgary/paper1" > paper1
        files="$T/fields.c $T/paper1"
        [ -n "$LMZ_TEST_QEMU" ] && head -c 400 "$DATA/bench/canterbury/fields.c" > fields.c && files="$T/fields.c"
    else
        files=$(find "$DATA/bench" -type f -size -21k ! -name SHA1SUM ! -name '*.md' | sort) # up to 20K
    fi
    for f in $files; do
        "$LMZIP" -q -T 2 -c "$f" > b.lmz && "$LMZIP" -q -T 2 -d -c b.lmz | cmp -s - "$f" && ok ||
            no "bench file ${f#"$DATA"/bench/} round trip with the default model"
    done
fi

# ---- binary data: a file of machine code goes to the byte model, its frames
# one chain; the stream stays within 2 % of -m none's (the difference: frame
# headers) and the chain beats frames coded apart (--binary=0)
obj="$DATA/bench/calgary/obj1"
if [ -f "$obj" ] && [ -z "$LMZ_TEST_QEMU" ]; then
    a=$("$LMZIP" -q -T 2 -c "$obj" | tee o.lmz | wc -c)
    "$LMZIP" -q -d -c o.lmz | cmp -s - "$obj" && ok || no "obj1 round trip with the default model"
    b=$("$LMZIP" -q -T 2 -c --binary=0 "$obj" | wc -c)
    c=$("$LMZIP" -q -c -m none "$obj" | wc -c)
    [ "$a" -lt "$b" ] && [ $((a * 100)) -le $((c * 102)) ] && ok || no "obj1: $a bytes with the chain, $b without, $c with -m none"
fi

# ---- levels: the model and settings each picks; -m and settings win
lv() { # LEVEL EXPECTED-MODEL [OPTIONS...]
    l=$1 want=$2
    shift 2
    "$LMZIP" -q -c "$l" "$@" a.txt > l.lmz && LMZIP_MODELS="$ROOT/tests/models" "$LMZIP" -q -d -c l.lmz | cmp -s - a.txt &&
        [ "$(model l.lmz)" = "$want" ] &&
        ok || no "level $l $* (model $(model l.lmz), expected $want)"
}
lv -1 none
lv -3 none
lv -4 default
lv -6 default
max=default; [ -f "$ROOT/models/max.gguf" ] && max=max
lv -9 "$max"
lv --fast none
lv -9 none -m none
lv -1 tiny-dsrn -m "$TINY" --model-always # (the tiny model loses to the byte model here)
"$LMZIP" -q -c -6 a.txt | cmp -s - a.txt.lmz && ok || no "-6 is the default level"
"$LMZIP" -q -c -4 a.txt > l4.lmz && "$LMZIP" -q -c -4 --skip 0 a.txt | cmp -s - a.txt.lmz && ok ||
    no "--skip given beside -4 wins over the level's"
[ "$(wc -c < l4.lmz)" -ne "$(wc -c < a.txt.lmz)" ] && ok || no "-4 codes with other settings than -6"
LMZIP_LEVEL=3 "$LMZIP" -q -c a.txt > e.lmz && [ "$(model e.lmz)" = none ] && ok || no "LMZIP_LEVEL=3 makes the byte model the default"
LMZIP_LEVEL=3 "$LMZIP" -q -c -6 a.txt | cmp -s - a.txt.lmz && ok || no "a level option wins over LMZIP_LEVEL"
LMZIP_LEVEL=x "$LMZIP" -c a.txt 2>err >/dev/null && grep -q "LMZIP_LEVEL" err && ok || no "a bad LMZIP_LEVEL is named"

# ---- progress: lines on stderr with -v when it is not a terminal, once a file
# takes a second; none without -v or with -q
n=40000; [ -n "$LMZ_TEST_QUICK" ] && n=1600
head -c $n "$ROOT/samples/alice29.txt" > p.txt
if [ -z "$LMZ_TEST_QEMU" ]; then
t0=$(date +%s.%N)
"$LMZIP" -v -T 1 -c p.txt 2>prog.err >p.lmz
t1=$(date +%s.%N)
if awk -v a="$t0" -v b="$t1" 'BEGIN { exit !(b - a > 1.5) }'; then
    grep -q "p.txt: .*%.*B/s" prog.err && ok || { no "-v shows progress when stderr is a file"; cat prog.err; }
else
    echo "(compression took under 1.5 s: the progress line is not expected)"
fi
"$LMZIP" -T 1 -c p.txt 2>quiet.err >/dev/null
[ ! -s quiet.err ] && ok || no "no progress without -v when stderr is not a terminal"
if command -v script >/dev/null 2>&1; then
    script -qec "'$LMZIP' -q -T 1 -c p.txt >/dev/null" /dev/null >tty.out 2>&1
    ! grep -q "B/s" tty.out && ok || no "-q silences the progress line on a terminal"
fi
fi

# ---- --explain with the default model, the page rendered by a real browser:
# the command that made docs/explain-alice29.png (sanitizers, qemu: a slice)
if [ -n "$LMZ_TEST_QEMU" ]; then head -c 200 "$ROOT/samples/alice29.txt" > alice29.txt
elif [ -n "$LMZ_TEST_QUICK" ]; then head -c 600 "$ROOT/samples/alice29.txt" > alice29.txt
else cp "$ROOT/samples/alice29.txt" alice29.txt; fi
"$LMZIP" -q --explain -T 2 alice29.txt -o alice29.html && ok || no "--explain with the default model"
tokens=$(grep -o '<span class="t ' alice29.html | wc -l)
if [ -z "$LMZ_TEST_QUICK" ]; then # (sanitizers, qemu: codec.sh checks the sums with the tiny model)
    "$LMZIP" -q --explain=tsv -T 2 alice29.txt > alice29.tsv &&
        [ "$(awk -F'\t' 'NR > 1 { s += $4 } END { printf "%.0f", s / 8 }' alice29.tsv)" -eq "$("$LMZIP" -q -c -T 2 alice29.txt | wc -c)" ] &&
        [ "$(awk -F'\t' '$3 == "token"' alice29.tsv | wc -l)" -eq "$tokens" ] &&
        ok || no "--explain with the default model: the pieces add up to the file, the page has every token"
fi
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -n "$browser" ]; then
    # --dump-dom: the page as the browser built it; the log: no console or page errors
    chrome() { timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run \
        --user-data-dir="$T/chrome" --enable-logging=stderr --v=0 "$@" "file://$T/alice29.html"; }
    chrome --dump-dom > dom.html 2> chrome.log
    [ "$tokens" -gt 0 ] && [ "$(grep -o '<span class="t ' dom.html | wc -l)" -eq "$tokens" ] && grep -q '<polyline' dom.html &&
        ! grep -qi 'uncaught\|CONSOLE(' chrome.log && ok ||
        { no "chromium builds the explain page: every token, the plot, no errors"; tail -5 chrome.log; }
    chrome --screenshot="$T/alice29.png" --window-size=1280,1400 --hide-scrollbars > /dev/null 2>&1
    [ "$(head -c 8 alice29.png 2>/dev/null | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] &&
        [ "$(wc -c < alice29.png)" -gt 20000 ] && ok || no "chromium renders the explain page to a PNG"
    [ -n "$LMZ_EXPLAIN_PNG" ] && cp alice29.png "$LMZ_EXPLAIN_PNG" # docs/explain-alice29.png
else
    echo "models: chromium is not installed: the explain page is not rendered (scripts/deps.sh installs it)"
fi

echo "models: $pass passed, $fail failed"
[ "$fail" -eq 0 ]

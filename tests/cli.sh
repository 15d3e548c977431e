#!/bin/sh
# cli.sh LMZIP — behaviour of the command-line program and the golden files.
# Ends with "cli: N passed, N failed".
LMZIP=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
GOLDEN="$ROOT/tests/golden"
T=$(mktemp -d)
trap 'chmod -R u+w "$T" 2>/dev/null; rm -rf "$T"' EXIT
cd "$T" || exit 1
pass=0
fail=0

ok() { pass=$((pass + 1)); }
no() { fail=$((fail + 1)); echo "FAIL: $*"; }
# check NAME CMD...: the command must succeed
check() { name=$1; shift; if "$@" >/dev/null 2>"$T/err"; then ok; else no "$name"; cat "$T/err"; fi; }
# refuse NAME CMD...: the command must exit 1 with a one-line message naming a file
refuse() {
    name=$1; shift
    "$@" >/dev/null 2>"$T/err"; st=$?
    if [ "$st" -eq 1 ] && [ "$(wc -l < "$T/err")" -ge 1 ] && grep -q "^lmzip: " "$T/err"; then ok
    else no "$name (status $st)"; cat "$T/err"; fi
}
no_leftovers() { # no temporary or partial files in the folder
    if ls -a "$1" | grep -q '\.tmp-'; then no "temporary file left in $1"; else ok; fi
}

# ---- sample data ----------------------------------------------------------
awk 'BEGIN { for (i = 0; i < 4000; i++) printf "line %d: the quick brown fox jumps over the lazy dog\n", i * 7 % 1000 }' > text.txt
head -c 300000 /dev/urandom > random.bin
: > empty.txt
printf 'x' > one.txt
cp text.txt keep.txt

# ---- compress / decompress, file names ----------------------------------
check "compress file" "$LMZIP" text.txt
[ -f text.txt.lmz ] && [ -f text.txt ] && ok || no "FILE -> FILE.lmz, input kept"
mv text.txt text.orig
check "decompress file" "$LMZIP" -d text.txt.lmz
cmp -s text.txt text.orig && ok || no "round trip of text.txt"
refuse "existing output without -f" "$LMZIP" text.txt
refuse "existing output on -d without -f" "$LMZIP" -d text.txt.lmz
check "-f overwrites" "$LMZIP" -f text.txt
check "-d -f overwrites" "$LMZIP" -d -f text.txt.lmz
cmp -s text.txt text.orig && ok || no "round trip after -f"
for f in empty.txt one.txt random.bin; do
    check "compress $f" "$LMZIP" -q "$f"
    "$LMZIP" -q -d -c "$f.lmz" > "$f.out" && cmp -s "$f" "$f.out" && ok || no "round trip $f"
done
[ "$(wc -c < random.bin.lmz)" -lt 301000 ] && ok || no "random data does not expand (stored)"

# ---- stdout, stdin, -o ----------------------------------------------------
"$LMZIP" -c text.orig > c.lmz && "$LMZIP" -dc c.lmz | cmp -s - text.orig && ok || no "-c and -dc"
"$LMZIP" < text.orig > s.lmz && "$LMZIP" -d < s.lmz | cmp -s - text.orig && ok || no "stdin to stdout"
"$LMZIP" - < text.orig > s2.lmz && cmp -s s.lmz s2.lmz && ok || no "- is stdin"
cat text.orig | "$LMZIP" -o piped.lmz && "$LMZIP" -d -o piped.out piped.lmz && cmp -s piped.out text.orig && ok || no "-o"
cmp -s c.lmz s.lmz; [ $? -le 1 ] && ok || no "stdin and file outputs compare"
"$LMZIP" -q -c --rm keep.txt > /dev/null; [ -f keep.txt ] && ok || no "-c never removes input"
check "--rm" "$LMZIP" --rm keep.txt
[ ! -f keep.txt ] && [ -f keep.txt.lmz ] && ok || no "--rm removes input after success"
check "-d --rm" "$LMZIP" -d --rm keep.txt.lmz
[ -f keep.txt ] && [ ! -f keep.txt.lmz ] && ok || no "-d --rm"
refuse "-d on a name without .lmz" "$LMZIP" -d text.orig
refuse "compress a .lmz again" "$LMZIP" c.lmz
touch -d '2001-02-03 04:05:06' text.orig && "$LMZIP" -f text.orig &&
    [ "$(stat -c %Y text.orig)" = "$(stat -c %Y text.orig.lmz)" ] && ok || no "mtime kept"

# ---- threads and frames: output independent of -T ----------------------
cat text.orig text.orig text.orig > big.txt
"$LMZIP" -c -B 16K -T 1 big.txt > t1.lmz && "$LMZIP" -c -B 16K -T 2 big.txt > t2.lmz &&
    "$LMZIP" -c -B 16K -T 0 big.txt > t0.lmz && "$LMZIP" -c -B16K --threads=3 big.txt > t3.lmz && ok || no "-T runs"
cmp -s t1.lmz t2.lmz && cmp -s t1.lmz t0.lmz && cmp -s t1.lmz t3.lmz && ok || no "-T 1/2/0/3 give identical files"
"$LMZIP" -d -T 2 -c t1.lmz | cmp -s - big.txt && ok || no "-d -T 2"
[ "$("$LMZIP" -l t1.lmz | awk 'NR == 2 { print $1 }')" -ge 10 ] && ok || no "-l counts frames"
"$LMZIP" -lv t1.lmz | grep -q "frame    0" && ok || no "-lv lists frames"
"$LMZIP" -l t1.lmz c.lmz | grep -c none | grep -q 2 && ok || no "-l several files"

# ---- test, list, concatenation ------------------------------------------
check "-t good file" "$LMZIP" -t t1.lmz
cat c.lmz random.bin.lmz empty.txt.lmz > cat.lmz
cat text.orig random.bin > cat.expected
"$LMZIP" -dc cat.lmz | cmp -s - cat.expected && ok || no "concatenated streams decode to the concatenation"
check "-t concatenation" "$LMZIP" -t cat.lmz

# ---- bad arguments and inputs -------------------------------------------
mkdir adir
refuse "directory input" "$LMZIP" adir
refuse "missing input" "$LMZIP" does-not-exist
refuse "unknown option" "$LMZIP" --frobnicate
refuse "bad -T" "$LMZIP" -T x text.orig
refuse "bad frame size" "$LMZIP" -B 10 text.orig
refuse "unknown model" "$LMZIP" -m no-such-model text.orig
check "-m none" "$LMZIP" -m none -c text.orig
check "-V" "$LMZIP" -V
check "-h" "$LMZIP" -h
refuse "-t on random bytes" "$LMZIP" -t random.bin
refuse "-d on empty input" "$LMZIP" -d -c empty.txt
if [ -w /dev/full ]; then refuse "full output device" sh -c "\"$LMZIP\" -c text.orig > /dev/full"; fi
refuse "output folder missing" "$LMZIP" -o no-such-dir/x.lmz text.orig
cp text.orig victim.txt && chmod 444 victim.txt
refuse "damaged input leaves no output" "$LMZIP" -d -o victim.out "$GOLDEN/bad/bitflip-payload.lmz"
[ ! -e victim.out ] && cmp -s victim.txt text.orig && ok || no "no partial output, input untouched"
# interrupted: the temporary output is removed, the input stays
head -c 6000000 /dev/urandom > slow.bin
"$LMZIP" -q slow.bin & pid=$!
sleep 0.5; kill -INT $pid; wait $pid
[ ! -e slow.bin.lmz ] && [ -f slow.bin ] && ok || no "interrupted compression leaves no output"
no_leftovers "$T"
if [ "$(id -u)" != 0 ]; then
    mkdir ro && chmod 555 ro && cp text.orig ro/ 2>/dev/null
    refuse "unwritable output folder" "$LMZIP" -o ro/x.lmz text.orig
fi
no_leftovers "$T"

# ---- golden files: old streams decode, broken ones fail cleanly ---------
for f in "$GOLDEN"/ok/*.lmz; do
    [ -e "$f" ] || continue
    b=$(basename "$f" .lmz)
    "$LMZIP" -q -d -c "$f" > out.golden 2>err && cmp -s out.golden "$GOLDEN/ok/$b.orig" && ok ||
        { no "golden $b decodes to $b.orig"; cat err; }
done
# the encoder is deterministic too: the same input and options give the
# same bytes as when the golden files were made (on any machine, any SIMD path)
"$LMZIP" -q -c -B 1K < "$GOLDEN/ok/v1-text-3-frames.orig" | cmp -s - "$GOLDEN/ok/v1-text-3-frames.lmz" && ok ||
    no "re-encoding v1-text-3-frames gives the golden bytes"
"$LMZIP" -q -c --table-bits=12 < "$GOLDEN/ok/v1-zeros-64k.orig" | cmp -s - "$GOLDEN/ok/v1-zeros-64k.lmz" && ok ||
    no "re-encoding v1-zeros-64k gives the golden bytes"
"$LMZIP" -q -c -B 1K -T 2 < "$GOLDEN/ok/v1-mixed.orig" | cmp -s - "$GOLDEN/ok/v1-mixed.lmz" && ok ||
    no "re-encoding v1-mixed gives the golden bytes"
"$LMZIP" -q -c < "$GOLDEN/ok/v1-text-20k.orig" | cmp -s - "$GOLDEN/ok/v1-text-20k.lmz" && ok ||
    no "re-encoding v1-text-20k (a 2^15-slot table) gives the golden bytes"
for f in "$GOLDEN"/bad/*.lmz; do
    [ -e "$f" ] || continue
    b=$(basename "$f")
    cp "$f" "$T/$b"
    refuse "broken $b" "$LMZIP" -d "$T/$b"
    [ ! -e "$T/$(basename "$b" .lmz)" ] && ok || no "broken $b left an output file"
    refuse "broken $b with -t" "$LMZIP" -t "$T/$b"
done
no_leftovers "$T"
"$LMZIP" -t "$GOLDEN/bad/model.lmz" 2>&1 | grep -q "needs model 'smollm2-135m'" && ok || no "wrong model is named"
"$LMZIP" -t "$GOLDEN/bad/profile.lmz" 2>&1 | grep -q "det-f32-v9" && ok || no "missing profile is named"

echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]

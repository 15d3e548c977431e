#!/bin/sh
# cli.sh LMZIP — behaviour of the command-line program and the golden files.
# Ends with "cli: N passed, N failed".
LMZIP=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
GOLDEN="$ROOT/tests/golden"
T=$(mktemp -d)
trap 'chmod -R u+w "$T" 2>/dev/null; rm -rf "$T"' EXIT
cd "$T" || exit 1
# the byte model where no -m is given (models/default.gguf is tests/models.sh's)
export LMZIP_LEVEL=3
unset LMZIP_MODELS
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

# ---- benchmark mode (-b) ------------------------------------------------
n=$(wc -c < text.txt)
"$LMZIP" -b -2 text.txt > b.out 2>"$T/err" && [ "$(wc -l < b.out)" -eq 1 ] &&
    grep -Eq "^2#text.txt +: +$n -> +[0-9]+ \(x[0-9.]+, [0-9.]+ bpb\), +[0-9.]+ KB/s, +[0-9.]+ KB/s  none\$" b.out &&
    c=$(sed -n 's/.*-> *\([0-9]*\) .*/\1/p' b.out) && [ "$c" -eq "$("$LMZIP" -2 -c text.txt | wc -c)" ] && ok ||
    { no "-b: one line with the size -c makes"; cat b.out "$T/err"; }
"$LMZIP" -b1 -e3 text.txt one.txt empty.txt > b.out && [ "$(grep -c '^[123]#' b.out)" -eq 12 ] &&
    [ "$(grep -c '(total)' b.out)" -eq 3 ] && ok || { no "-b1 -e3: three levels of three files and their totals"; cat b.out; }
ls ./*.lmz > before.ls; "$LMZIP" -b -1 text.txt > /dev/null && ls ./*.lmz | cmp -s - before.ls && ok || no "-b writes no files"
refuse "-b with a missing file" "$LMZIP" -b missing.txt
refuse "-b without files" "$LMZIP" -b
refuse "-e without a level" "$LMZIP" -b -e text.txt

# ---- scale-out: parts compressed apart, then joined (docs/SCALE.md) -----
cat text.txt random.bin text.txt > big.bin
size=$(wc -c < big.bin)
# streams: the per-stream lines of -lv; total: the uncompressed column of -l
streams() { "$LMZIP" -lv "$1" | grep -c ': stream [0-9]*:'; }
total() { "$LMZIP" -l "$1" | awk 'NR == 2 { print $3 }'; }
if command -v parallel >/dev/null 2>&1; then
    parallel --will-cite --pipe --recend '' --block 100k -k -j 2 "$LMZIP" -q -c < big.bin > par.lmz &&
        "$LMZIP" -dc par.lmz | cmp -s - big.bin && [ "$(streams par.lmz)" -eq $(((size + 102399) / 102400)) ] &&
        [ "$(total par.lmz)" -eq "$size" ] && ok || no "parallel --pipe -k lmzip -c: the joined file decodes, -l lists every part"
else
    echo "cli: GNU parallel is not installed: its recipe is not tested (scripts/deps.sh installs it)"
fi
mkdir parts && split -b 200k -d big.bin parts/part. &&
    for f in parts/part.*; do "$LMZIP" -q "$f" || break; done && cat parts/part.*.lmz > split.lmz &&
    "$LMZIP" -dc split.lmz | cmp -s - big.bin && [ "$(streams split.lmz)" -eq "$(ls parts/part.* | grep -vc '\.lmz$')" ] &&
    [ "$(total split.lmz)" -eq "$size" ] && ok || no "split, compress each part, cat: the joined file decodes, -l lists every part"

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

# ---- hostile-test findings (issue 15) ------------------------------------
MODEL="$ROOT/tests/models/tiny-dsrn.gguf"
# 1. special files given as -o are written in place, never replaced
"$LMZIP" -q -o /dev/null text.orig && [ -c /dev/null ] && ok || no "-o /dev/null without -f"
if mknod ./nulldev c 1 3 2>/dev/null; then
    "$LMZIP" -q -f -o ./nulldev text.orig && [ -c ./nulldev ] && ok || no "-f -o DEVICE keeps the device node"
    "$LMZIP" -q -d -f -o ./nulldev c.lmz && [ -c ./nulldev ] && ok || no "-d -f -o DEVICE keeps the device node"
    cp text.orig rmkeep.txt
    "$LMZIP" -q --rm -o ./nulldev rmkeep.txt && [ -f rmkeep.txt ] && ok || no "--rm keeps the input when the output is a device"
else
    echo "(mknod not permitted: device node cases skipped)"
fi
mkfifo ./fifo
cat ./fifo > fifo.got & fpid=$!
"$LMZIP" -q -o ./fifo text.orig && wait $fpid && [ -p ./fifo ] && "$LMZIP" -dc fifo.got | cmp -s - text.orig && ok ||
    no "-o FIFO writes into the FIFO"
cat ./fifo > fifo.got & fpid=$!
"$LMZIP" -q -d -f -o ./fifo c.lmz && wait $fpid && [ -p ./fifo ] && cmp -s fifo.got text.orig && ok ||
    no "-d -f -o FIFO writes into the FIFO"
# special files as inputs: refused without -f, read with it
refuse "a FIFO as input without -f" "$LMZIP" -c ./fifo
refuse "a device as input without -f" "$LMZIP" -c /dev/zero
printf 'through a fifo\n' > ./fifo & fpid=$!
"$LMZIP" -q -f -c ./fifo > fifoin.lmz; wait $fpid
"$LMZIP" -dc fifoin.lmz | grep -q "through a fifo" && ok || no "-f reads a FIFO"
# 2. memory limit: refused with the amount, fewer frames at once when that fits
"$LMZIP" -q -f text.orig
"$LMZIP" -t --memlimit=1M text.orig.lmz 2>err; st=$?
[ $st -eq 1 ] && grep -q "needs .* of memory, more than the limit of 1.0 MiB" err && ok || { no "--memlimit refuses, naming the amount"; cat err; }
"$LMZIP" -d -c --memlimit=1M text.orig.lmz > /dev/null 2>&1 && no "-d --memlimit too small must fail" || ok
"$LMZIP" -t --memlimit=max text.orig.lmz && ok || no "--memlimit=max"
refuse "bad --memlimit" "$LMZIP" -t --memlimit=lots text.orig.lmz
"$LMZIP" -t -vv -T 4 --force-threads --memlimit=7M t1.lmz 2>err && grep -q "up to 1 frames" err && ok ||
    { no "a small --memlimit decodes frames one at a time"; cat err; }
timeout 20 "$LMZIP" -t "$GOLDEN/bad/bomb-1g.lmz" 2>err; [ $? -eq 1 ] && grep -q "corrupt data" err && ok ||
    { no "a 6 KB file declaring a 1 GiB frame fails at once"; cat err; }
# 3. threads: capped at the cores, forced on request; -m none streams of 4M frames use them all
{ head -c 9000000 /dev/zero; cat text.orig; head -c 9000000 /dev/zero; } > sparse.bin
"$LMZIP" -q -f sparse.bin && "$LMZIP" -lv sparse.bin.lmz | grep -q " runs " && ok || no "long runs use method 3"
"$LMZIP" -t -vv -T 5 --force-threads sparse.bin.lmz 2>err && grep -q "up to 5 frames" err && ok ||
    { no "-d of 4M frames uses every thread asked for"; cat err; }
"$LMZIP" -dc sparse.bin.lmz | cmp -s - sparse.bin && ok || no "round trip of a sparse file"
[ "$(wc -c < sparse.bin.lmz)" -lt 100000 ] && ok || no "runs are coded cheaply"
if command -v taskset > /dev/null; then
    taskset -c 0 "$LMZIP" -t -vv -T 8 t1.lmz 2>err && grep -q "1 core available, using 1 thread" err &&
        grep -q "up to 1 frames" err && ok || { no "-T is capped at the cores of the affinity mask"; cat err; }
fi
# 4. flags take no value
for f in --rm=no --keep=no --compress=1 --help=x --force=yes --quiet=1; do
    cp text.orig flag.txt
    refuse "$f is refused" "$LMZIP" -q $f flag.txt
    [ -f flag.txt ] && [ ! -e flag.txt.lmz ] && ok || no "$f left the input alone"
    rm -f flag.txt flag.txt.lmz
done
# 5. exit codes and messages
if [ "$(id -u)" = 0 ] && command -v setpriv > /dev/null &&
    setpriv --reuid=65534 --regid=65534 --clear-groups "$LMZIP" -V > /dev/null 2>&1; then
    chmod 755 "$T"
    mkdir rmdir && cp text.orig rmdir/in.txt && chmod 755 rmdir && chmod 644 rmdir/in.txt && mkdir rmout && chmod 777 rmout
    setpriv --reuid=65534 --regid=65534 --clear-groups "$LMZIP" -q --rm -o rmout/in.lmz rmdir/in.txt 2>err; st=$?
    [ $st -eq 1 ] && grep -q "cannot remove input" err && [ -f rmdir/in.txt ] && ok || { no "--rm that cannot remove exits 1 (status $st)"; cat err; }
    chmod 700 "$T"
else
    echo "(cannot run lmzip as another user here: the --rm failure case skipped)"
fi
if [ -w /dev/full ]; then
    for a in -l -V -h; do
        x=t1.lmz; [ $a = -l ] || x=
        "$LMZIP" $a $x > /dev/full 2>/dev/null && no "$a > /dev/full must fail" || ok
    done
fi
long=$(printf 'n%.0s' $(seq 1 251))
cp text.orig "$long" && "$LMZIP" -q "$long" && [ -f "$long.lmz" ] && rm "$long" && "$LMZIP" -q -d "$long.lmz" &&
    cmp -s "$long" text.orig && ok || no "names of 251 and 255 bytes"
rm -f "$long" "$long.lmz"
(umask 022; cat text.orig | "$LMZIP" -q -o umask.lmz) && [ "$(stat -c %a umask.lmz)" = 644 ] && ok ||
    no "stdin to -o: 0666 less the umask ($(stat -c %a umask.lmz))"
rm -f race.lmz
# (lmzip checks the name at once, then waits for its input; a slow start, as
# under qemu, meets the file at the check instead: refused either way)
(sleep 3; cat text.orig) | "$LMZIP" -q -o race.lmz 2>err & rpid=$!
sleep 1; echo intruder > race.lmz; wait $rpid; st=$?
[ $st -eq 1 ] && [ "$(cat race.lmz)" = intruder ] && grep -q "appeared while lmzip ran\|already exists" err && ok ||
    { no "a file created at the target meanwhile is not replaced (status $st)"; cat err; }
no_leftovers "$T"
head -c 5000 "$MODEL" > broken.gguf
"$LMZIP" -m ./broken.gguf -c text.orig 2>err >/dev/null; [ $? -eq 1 ] && grep -q "^lmzip: ./broken.gguf: " err && ok ||
    { no "GGUF errors name the model file"; cat err; }
"$LMZIP" -m nope.gguf -c text.orig 2>err >/dev/null; [ $? -eq 1 ] && grep -q "nope.gguf: No such file" err &&
    ! grep -q "gguf.gguf" err && ok || { no "a missing model path is reported as given"; cat err; }
"$LMZIP" -t -m "$MODEL" "$GOLDEN/bad/lm-window.lmz" 2>err; [ $? -eq 1 ] && grep -q "corrupt stream header" err &&
    ! grep -q "another model" err && ok || { no "a damaged setting is reported as damage"; cat err; }
"$LMZIP" -t "$GOLDEN/bad/lm-model-none.lmz" 2>err; [ $? -eq 1 ] && grep -q "corrupt stream header" err && ok ||
    { no "a model stream naming 'none'"; cat err; }
refuse "a model-only option with -m none" "$LMZIP" -m none --mixer=log -c text.orig
"$LMZIP" -d -c --mixer=log t1.lmz 2>err | cmp -s - big.txt && grep -q "is ignored" err && ok ||
    { no "-d warns of compression options"; cat err; }
cp "$ROOT/tests/fuzz/corpus/lm-ctrl-name.lmz" ctrl.lmz
"$LMZIP" -t ctrl.lmz 2>err; "$LMZIP" -lv ctrl.lmz >> err 2>&1
! grep -q "$(printf '\033')" err && grep -q 'x1b\[31mEVIL' err && ok || no "names from a file are printed escaped"
"$LMZIP" -t -m "$MODEL" ctrl.lmz && ok || no "the crafted name decodes with its model"

# one table of settings: -h prints it from the library, the man page names each
missing=""
for n in $("$LMZIP" -h | sed -n 's/^      --\([a-z-]*\)=.*/\1/p'); do
    pat=$(printf '%s' "--$n" | sed 's/-/\\-/g') # as roff writes it: \-\-ngram\-bits
    grep -qF -- "$pat" "$ROOT/docs/lmzip.1" || missing="$missing $n"
done
[ -z "$missing" ] && ok || no "the man page lacks settings from -h:$missing"
"$LMZIP" -q -c --window=0 -m none text.orig > /dev/null 2>&1 && no "--window with -m none must be refused" || ok
refuse "a setting out of its table's bounds" "$LMZIP" -m "$MODEL" --ngram-bits=25 -c text.orig
refuse "a setting that is not a number" "$LMZIP" -m "$MODEL" --bias-lr=fast -c text.orig

# ---- golden files: old streams decode, broken ones fail cleanly ---------
for f in "$GOLDEN"/ok/*.lmz; do
    [ -e "$f" ] || continue
    b=$(basename "$f" .lmz)
    "$LMZIP" -q -d -c "$f" > out.golden 2>err && cmp -s out.golden "$GOLDEN/ok/$b.orig" && ok ||
        { no "golden $b decodes to $b.orig"; cat err; }
done
# the encoder is deterministic too: the same input and options give the
# same bytes as when the golden files were made (on any machine, any SIMD path)
"$LMZIP" -q -c --format-version=1 -B 1K < "$GOLDEN/ok/v1-text-3-frames.orig" | cmp -s - "$GOLDEN/ok/v1-text-3-frames.lmz" && ok ||
    no "re-encoding v1-text-3-frames gives the golden bytes"
# (v1-zeros-64k and v1-mixed hold runs of 512 bytes and more: since lmzip 0.2
# these are cut out (method 3), so their re-encodings are the v1-runs files)
"$LMZIP" -q -c --format-version=1 --table-bits=12 < "$GOLDEN/ok/v1-runs-zeros-64k.orig" | cmp -s - "$GOLDEN/ok/v1-runs-zeros-64k.lmz" && ok ||
    no "re-encoding v1-runs-zeros-64k gives the golden bytes"
"$LMZIP" -q -c --format-version=1 -B 16K -T 2 < "$GOLDEN/ok/v1-runs-sparse.orig" | cmp -s - "$GOLDEN/ok/v1-runs-sparse.lmz" && ok ||
    no "re-encoding v1-runs-sparse gives the golden bytes"
"$LMZIP" -q -c -B 1K -T 2 < "$GOLDEN/ok/v1-mixed.orig" | "$LMZIP" -dc | cmp -s - "$GOLDEN/ok/v1-mixed.orig" && ok ||
    no "v1-mixed round trip"
"$LMZIP" -q -c --format-version=1 < "$GOLDEN/ok/v1-text-20k.orig" | cmp -s - "$GOLDEN/ok/v1-text-20k.lmz" && ok ||
    no "re-encoding v1-text-20k (a 2^15-slot table) gives the golden bytes"
# format version 2 (lmzip 0.4, the default): the same for its golden files,
# made by tests/golden/make_golden_v2.sh
while read -r name opts; do
    # shellcheck disable=SC2086
    "$LMZIP" -q -c $opts < "$GOLDEN/ok/$name.orig" | cmp -s - "$GOLDEN/ok/$name.lmz" && ok ||
        no "re-encoding $name gives the golden bytes"
done <<EOF
v2-empty
v2-one-byte
v2-text-3-frames -B 1K
v2-text-20k
v2-runs-sparse -B 16K -T 2
v2-table-bits --table-bits=12
EOF
"$LMZIP" -lv "$GOLDEN/ok/v2-concatenated.lmz" > list.out 2>&1 && [ "$(grep -c ': stream [0-9]*: format' list.out)" = 4 ] && ok ||
    { no "-l lists the four streams of both versions"; cat list.out; }
"$LMZIP" -t "$GOLDEN/bad/v2-profile.lmz" 2>&1 | grep -q "profile 'code 200'" && ok || no "an unknown profile code is named"
"$LMZIP" -t "$GOLDEN/bad/v2-lm-profile.lmz" 2>&1 | grep -q "profile 'code 9'" && ok || no "an unknown model profile code is named"
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

#!/bin/sh
# codec.sh LMZIP — the language-model codec end to end with the shipped tiny
# models: round trips of text and mixed binary files, the determinism matrix
# (threads x kernel paths give the same bytes, and each file decodes under
# every other setting), the golden LM files, every ensemble setting, and
# clean failures for a wrong, missing or damaged model or file.
# Ends with "codec: N passed, N failed".
LMZIP=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TINY="$ROOT/tests/models/tiny-dsrn.gguf"
LMDIR="$ROOT/tests/golden/lm"
DATA=${LMZ_DATA:-$ROOT/../shared/data}
LLAMA="$DATA/../reference/tiny-llama-f32.gguf"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1
# the byte model where no -m is given (models/default.gguf is tests/models.sh's)
export LMZIP_LEVEL=3
unset LMZIP_MODELS
pass=0
fail=0
ok() { pass=$((pass + 1)); }
no() { fail=$((fail + 1)); echo "FAIL: $*"; }
check() { name=$1; shift; if "$@" >/dev/null 2>"$T/err"; then ok; else no "$name"; cat "$T/err"; fi; }
# refuse NAME OUT CMD...: exit 1, a message from lmzip, and no file OUT
refuse() {
    name=$1; out=$2; shift 2
    "$@" >/dev/null 2>"$T/err"; st=$?
    if [ "$st" -eq 1 ] && grep -q "^lmzip: " "$T/err" && [ ! -e "$out" ]; then ok
    else no "$name (status $st)"; cat "$T/err"; fi
    if ls -a | grep -q '\.tmp-'; then no "$name: temporary file left"; rm -f ./*.tmp-*; fi
}
# What the model makes of text, even where the byte model alone would code
# a group smaller (the tiny models know less than it learns): every test
# here compresses with it but the one of that choice
CX=--model-always
# roundtrip NAME FILE OPTIONS...: compress with the options, decompress, compare
roundtrip() {
    name=$1; f=$2; shift 2
    if "$LMZIP" -q -c $CX "$@" "$f" > rt.lmz 2>err && "$LMZIP" -q -d -c "$@" rt.lmz > rt.out 2>>err &&
        cmp -s "$f" rt.out; then ok; else no "round trip: $name"; cat err; fi
}

# Under qemu (LMZ_TEST_QEMU, set by make arm; some hundred times slower) the
# tests check what can differ on ARM: the NEON kernels' bytes (the
# determinism matrix, the golden files decoded and made again, the llama,
# qwen and gemma engines); the codec's own logic (groups, settings, damaged
# files, models by name, pipes) is the same C on every machine and is run
# natively and under the sanitizers: here it is left out (native_only).
native_only() { [ -z "$LMZ_TEST_QEMU" ]; }

# ---- inputs ------------------------------------------------------------------
cp "$ROOT/samples/alice29.txt" alice.txt
tlen=6000; native_only || tlen=3000
head -c $tlen alice.txt > text.txt
printf 'Gr\303\274\303\237e aus K\303\266ln. \316\232\316\261\316\273\316\267\316\274\316\255\317\201\316\261 \317\203\316\261\317\202. \320\237\321\200\320\270\320\262\320\265\321\202 \320\274\320\270\321\200. \344\275\240\345\245\275\344\270\226\347\225\214. \330\247\331\204\330\263\331\204\330\247\331\205 \330\271\331\204\331\212\331\203\331\205. \360\237\230\200 emoji and more text to make it long enough.\n' > utf8.txt
cat utf8.txt utf8.txt utf8.txt > u3.txt && mv u3.txt utf8.txt
{ head -c 2000 alice.txt; printf '\377\376\200\201 invalid \300\257 utf-8 \355\240\200 surrogate\n'; head -c 1500 alice.txt; } > invalid.txt
{ head -c 1000 alice.txt; head -c 3000 /dev/zero; head -c 1000 text.txt; head -c 500 /dev/zero; } > nuls.bin
awk 'BEGIN { s = 7; for (i = 0; i < 5000; i++) { s = (s * 1103515245 + 12345) % 2147483648; printf "%c", int(s / 65536) % 256 } }' > random.bin
# a tar-like file: 512-byte binary headers between text members
{ for i in 1 2 3; do head -c 100 random.bin; head -c 412 /dev/zero; head -c $((i * 1500)) alice.txt; done; } > tar.bin
# a PDF-like file: text objects around a compressed-looking stream
{ printf '%%PDF-1.4\n1 0 obj << /Length 3000 >>\nstream\n'; head -c 3000 random.bin; printf '\nendstream\nendobj\n'; head -c 2500 alice.txt; printf '\ntrailer << /Root 1 0 R >>\n%%%%EOF\n'; } > pdf.bin
: > empty.txt
printf 'x' > one.txt
printf '\004\006\023\024\026\035 bytes some vocabularies lack, inside text that goes on for a while\n' > ctrl.txt

# ---- round trips with the tiny DSRN --------------------------------------------
rts="text.txt utf8.txt invalid.txt nuls.bin random.bin tar.bin pdf.bin empty.txt one.txt ctrl.txt"
native_only || rts="text.txt utf8.txt empty.txt one.txt"
for f in $rts; do
    roundtrip "$f" $f -m "$TINY"
done
[ -n "$LMZ_TEST_QUICK" ] && head -c 20000 "$ROOT/samples/alice29.txt" > alice.txt # sanitizers
if native_only; then
roundtrip "alice29.txt in 16K frames" alice.txt -m "$TINY" -B 16K -T 2
roundtrip "binary-only file, 1K frames" random.bin -m "$TINY" -B 1K

# ---- groups: frames sharing one ensemble --------------------------------------
# (sanitizers, qemu: the same kinds of frames, fewer of each)
g=2; [ -n "$LMZ_TEST_QUICK" ] && g=1
{ head -c $((g * 2500)) alice.txt; head -c 1500 random.bin; head -c $((g * 1500)) utf8.txt; head -c $((g * 1000)) nuls.bin; head -c $((g * 2000)) text.txt; } > groups.bin
roundtrip "frames apart (--group=1)" groups.bin -m "$TINY" -B 1K --group=1
roundtrip "groups of 3 frames, the last shorter, stored and binary frames inside" groups.bin -m "$TINY" -B 1K --group=3 -T 2
roundtrip "one group of every frame" groups.bin -m "$TINY" -B 1K --group=64 -T 2
"$LMZIP" -q -c $CX -m "$TINY" -B 1K --group=1 groups.bin > g1.lmz && "$LMZIP" -q -c $CX -m "$TINY" -B 1K --group=8 groups.bin > g8.lmz &&
    [ "$(wc -c < g8.lmz)" -lt "$(wc -c < g1.lmz)" ] && ok || no "frames in a group learn from each other (smaller file)"
# random 4-byte UTF-8 is text the model cannot say in under 8 bits a byte:
# those frames are stored and the group is coded again without them
LC_ALL=C awk 'BEGIN { s = 777; for (i = 0; i < 1500; i++) { s = (s * 1103515245 + 12345) % 2147483648; cp = 65536 + int(s / 2048) % 1048576
    printf "%c%c%c%c", 240 + int(cp / 262144), 128 + int(cp / 4096) % 64, 128 + int(cp / 64) % 64, 128 + cp % 64 } }' > emoji.txt
{ head -c 3000 alice.txt; cat emoji.txt; head -c 3000 text.txt; } > overflow.bin
roundtrip "a group with frames that do not fit" overflow.bin -m "$TINY" -B 1K --parts=model -T 2
# (det-f32-v3: its token tables cannot learn such text; det-f32-v4's byte model
# learns the UTF-8 and codes it under 8 bits a byte, so nothing overflows)
roundtrip "det-f32-v3: a group with frames that do not fit" overflow.bin -m "$TINY" -B 1K --parts=model --profile=det-f32-v3 -T 2
"$LMZIP" -q -c $CX -m "$TINY" -B 1K --parts=model --profile=det-f32-v3 overflow.bin > o.lmz &&
    "$LMZIP" -l -v -m "$TINY" o.lmz | grep -q stored && ok || no "the frames that do not fit are stored"
# a group whose text the byte model alone codes smaller (the tiny model knows
# little) goes whole through the chain, text frames too; --model-always and
# --binary=0 keep the model's coding
"$LMZIP" -q -c -m "$TINY" -B 2K tar.bin > ch.lmz && "$LMZIP" -q -c $CX -m "$TINY" -B 2K tar.bin > cm.lmz &&
    "$LMZIP" -q -c -m "$TINY" -B 2K --binary=0 tar.bin > cb.lmz &&
    ! "$LMZIP" -l -v ch.lmz | grep -q ' lm ' && "$LMZIP" -l -v cm.lmz | grep -q ' lm ' && "$LMZIP" -l -v cb.lmz | grep -q ' lm ' &&
    [ "$(wc -c < ch.lmz)" -lt "$(wc -c < cm.lmz)" ] && ok ||
    no "a group goes to the byte-model chain when that is smaller"
for t in 1 2; do
    "$LMZIP" -q -d -c -m "$TINY" -T $t ch.lmz | cmp -s - tar.bin && ok || no "the chain's group decodes, -T $t"
done
roundtrip "the chain's group, text and binary in 1K frames, groups of 5" tar.bin -m "$TINY" -B 1K --group=5 -T 2
# -b and --explain: the program's own logic
"$LMZIP" -b -m "$TINY" $CX -B 2K -T 2 text.txt > b.out && grep -q '^[1-9]#text.txt .* tiny-dsrn$' b.out &&
    [ "$(sed -n 's/.*-> *\([0-9]*\) .*/\1/p' b.out)" -eq "$("$LMZIP" -q -c -m "$TINY" $CX -B 2K text.txt | wc -c)" ] && ok ||
    { no "-b with a model: the size -c makes"; cat b.out; }
# ---- --explain: the codec's own numbers, piece by piece -----------------------
# sum: the bits of every piece; cover: the bytes of every piece; per: bits a token
tsv_sum() { awk -F'\t' 'NR > 1 { s += $4; c += $2; if ($3 == "token") { t += $4; n++ } }
    END { printf "%.2f %d %.4f\n", s, c, n ? t / n : 0 }' "$1"; }
cases="text.txt:$CX tar.bin:-B:2K"
[ -z "$LMZ_TEST_QUICK" ] && cases="$cases tar.bin:$CX:-B:2K:--group=3 text.txt:$CX:--profile=det-f32-v3 text.txt:$CX:--profile=det-i8-v1:--binary=0"
for cs in $cases; do
    cs=$(echo "$cs" | tr ':' ' ')
    set -- $cs; f=$1; shift
    if "$LMZIP" -q --explain=tsv -m "$TINY" -T 2 "$@" "$f" > x.tsv && "$LMZIP" -q -c -m "$TINY" "$@" "$f" > x.lmz; then
        set -- $(tsv_sum x.tsv)
        [ "$1" = "$(($(wc -c < x.lmz) * 8)).00" ] && [ "$2" -eq "$(wc -c < "$f")" ] && ok ||
            no "--explain=tsv ($cs): the pieces add up to the file ($1 bits, $2 bytes covered)"
    else no "--explain=tsv ($cs)"; fi
done
"$LMZIP" -q --explain=tsv -m "$TINY" $CX text.txt > x.tsv
per=$("$LMZIP" -v -c -m "$TINY" $CX text.txt 2>&1 >/dev/null | sed -n 's/.* tokens (.*), \([0-9.]*\) bits\/token.*/\1/p')
[ -n "$per" ] && [ "$(tsv_sum x.tsv | cut -d' ' -f3)" = "$per" ] && ok || no "--explain: the tokens' bits are -v's ($per bits/token)"
awk -F'\t' 'NR > 1 && $3 == "token"' x.tsv | cut -f8 | tr -d '\n' | sed 's/\\r/\r/g; s/\\n/\n/g' | cmp -s - text.txt && ok ||
    no "--explain=tsv: the tokens' texts are the input"
if "$LMZIP" -q --explain -m "$TINY" $CX text.txt -o x.html && [ "$(grep -o '<span class="t ' x.html | wc -l)" -eq "$(awk -F'\t' '$3 == "token"' x.tsv | wc -l)" ] &&
    grep -q '<svg id="plot"' x.html && ! grep -qi '<script\|https\?://' x.html; then ok
else no "--explain: the page has every token, the plot, no scripts and no links"; fi
"$LMZIP" -q --explain -m "$TINY" $CX text.txt && [ -s text.txt.html ] && ok || no "--explain FILE writes FILE.html"
refuse "--explain over an existing page" none.out "$LMZIP" --explain -m "$TINY" text.txt -o text.txt.html
rm -f text.txt.html
refuse "a group of 65 frames" g.lmz "$LMZIP" -m "$TINY" --group=65 text.txt -o g.lmz
refuse "a group over 64M" g.lmz "$LMZIP" -m "$TINY" --group=2 -B 64M text.txt -o g.lmz

# ---- the benchmark corpora (../shared/data/bench, when present): every file
# under 100 KB (8 KB under the sanitizers); bench/codec round-trips the
# large text files with a real model, tests/models.sh those up to 20 KB with
# the default model
if [ -d "$DATA/bench" ]; then
    lim=100000
    [ -n "$LMZ_TEST_QUICK" ] && lim=8192
    for f in $(find "$DATA/bench" -type f | sort); do
        [ "$(wc -c < "$f")" -le $lim ] || continue
        roundtrip "bench file ${f#"$DATA"/bench/}" "$f" -m "$TINY" -B 32K -T 2
    done
fi

# ---- every setting that changes probabilities ------------------------------
sfile=text.txt; [ -n "$LMZ_TEST_QUICK" ] && head -c 2500 text.txt > set.txt && sfile=set.txt # (sanitizers)
for s in "--parts=model" "--parts=model,ngram" "--parts=model,ngram,bias" "--parts=ngram,match" \
    "--mixer=prob" "--cdf-bits=16" "--ngram-bits=8" "--text-min=1" "--bias-lr=0.01 --mix-lr=0.01" \
    "--skip=3 -B 2K -T 2" "--skip=16 --mixer=prob"; do
    # shellcheck disable=SC2086
    roundtrip "$s" $sfile -m "$TINY" $s
done
"$LMZIP" -q -c $CX -m "$TINY" text.txt > a.lmz && "$LMZIP" -q -c $CX -m "$TINY" --mixer=prob text.txt > b.lmz &&
    ! cmp -s a.lmz b.lmz && ok || no "the mixer setting changes the output"
"$LMZIP" -q -c -m "$TINY" --mixer=prob text.txt > c.lmz && "$LMZIP" -q -d -c -m "$TINY" c.lmz | cmp -s - text.txt &&
    ok || no "the header's settings, not the command line's, drive decompression"

fi # native_only: from the 16K frames on

# ---- determinism matrix: threads x kernel paths ----------------------------------
paths="scalar"
for p in avx2 avx512 amx neon; do LMZIP_KERNELS=$p "$LMZIP" -q -c $CX -m "$TINY" one.txt > /dev/null 2>&1 && paths="$paths $p"; done
mlen=3000 mb=2K; native_only || { mlen=1500; mb=1K; }
{ head -c $mlen alice.txt; head -c 300 random.bin; head -c $mlen utf8.txt; } > matrix.bin
for p in $paths; do for t in 1 2; do # four frames in one group (the default)
    LMZIP_KERNELS=$p "$LMZIP" -q -c $CX -m "$TINY" -B $mb -T $t matrix.bin > "m-$p-$t.lmz" || no "compress with $p, -T $t"
done; done
for f in m-*.lmz; do cmp -s "$f" m-scalar-1.lmz && ok || no "$f differs from m-scalar-1.lmz"; done
for p in $paths; do for t in 1 2; do
    LMZIP_KERNELS=$p "$LMZIP" -q -d -c -m "$TINY" -T $t m-scalar-1.lmz | cmp -s - matrix.bin && ok ||
        no "decompress under $p, -T $t"
done; done
# the same matrix with det-i8-v1 (integer products: scalar, AVX2, AVX512-VNNI, AMX-INT8, NEON sdot)
for p in $paths; do for t in 1 2; do
    LMZIP_KERNELS=$p "$LMZIP" -q -c $CX -m "$TINY" --profile=det-i8-v1 -B $mb -T $t matrix.bin > "i-$p-$t.lmz" ||
        no "det-i8-v1: compress with $p, -T $t"
done; done
for f in i-*.lmz; do cmp -s "$f" i-scalar-1.lmz && ok || no "det-i8-v1: $f differs from i-scalar-1.lmz"; done
cmp -s i-scalar-1.lmz m-scalar-1.lmz && no "det-i8-v1 gives det-f32-v4's bytes" || ok
for p in $paths; do for t in 1 2; do
    LMZIP_KERNELS=$p "$LMZIP" -q -d -c -m "$TINY" -T $t i-scalar-1.lmz | cmp -s - matrix.bin && ok ||
        no "det-i8-v1: decompress under $p, -T $t"
done; done

# ---- golden LM files: decode, and re-encode to the same bytes (det-f32-v4 in
# lm, det-f32-v3 in lm-v3: both written); the files of the read-only profiles
# (det-f32-v1 in lm-v1, det-f32-v2 in lm-v2) decode ---------------------------
for f in "$LMDIR-v1"/*.lmz "$LMDIR-v2"/*.lmz; do
    "$LMZIP" -q -d -c -m "$TINY" "$f" 2>err | cmp -s - "${f%.lmz}.orig" && ok || { no "golden $f decodes"; cat err; }
done
# The goldens were made before the adaptive head (lmzip 0.5): their parts
# are the old "all", which a re-encoding names (a --parts in opts wins).
OLDPARTS="--parts model,ngram,bias,match"
for f in "$LMDIR"/*.lmz "$LMDIR-v3"/*.lmz; do
    b=${f%.lmz}
    opts=$(cat "$b.opts")
    "$LMZIP" -q -d -c -m "$TINY" "$f" 2>err | cmp -s - "$b.orig" && ok || { no "golden $f decodes"; cat err; }
    # shellcheck disable=SC2086
    "$LMZIP" -q -c $CX -m "$TINY" --format-version=1 $OLDPARTS $opts "$b.orig" 2>err | cmp -s - "$f" && ok ||
        { no "golden $f: re-encoding gives the same bytes"; cat err; }
done

# golden_v2 DIR [OPTIONS...]: the format-version-2 goldens of DIR decode, and
# re-encode to the same bytes with the options (the parts of the lmzip that
# made them) before each file's own
golden_v2() {
    dir=$1; shift
    for f in "$dir"/*.lmz; do
        b=${f%.lmz}
        "$LMZIP" -q -d -c -m "$TINY" "$f" 2>err | cmp -s - "$b.orig" && ok || { no "golden $f decodes"; cat err; }
        # shellcheck disable=SC2046
        "$LMZIP" -q -c $CX -m "$TINY" "$@" $(cat "$b.opts") < "$b.orig" 2>err | cmp -s - "$f" && ok ||
            { no "golden $f: re-encoding gives the same bytes"; cat err; }
    done
}
# the adaptive head (lmzip 0.5, in its default parts): several frames sharing
# one head, det-i8-v1, one frame
golden_v2 "$LMDIR-head" --parts model,ngram,bias,match,head
# the n-gram's top order and the bit coder's maps (lmzip 0.6, in the default
# parts): the same three kinds of file, made by tests/golden/make_golden_defaults.sh
golden_v2 "$LMDIR-refine" --parts model,ngram,bias,match,head,ngtop,refine
# the cache of the model's vectors (lmzip 0.7, in the default parts; its
# 32,768 rows, which a stream from a pipe now names when not the default)
golden_v2 "$LMDIR-cache" --cache-rows=32768
# the settings cache-rows and head-lr (lmzip 0.8): rings of 256 and 64 rows,
# another head rate, the default rows named
golden_v2 "$LMDIR-rows"
# format version 2 (lmzip 0.4): made without --format-version
# shellcheck disable=SC2086
golden_v2 "$LMDIR-f2" $OLDPARTS

# ---- models: by name from the folders, wrong, missing -----------------------------
if native_only; then
"$LMZIP" -q -c $CX -m "$TINY" text.txt > t.lmz
mkdir models && cp "$TINY" models/tiny-dsrn.gguf
LMZIP_MODELS="$T/models" "$LMZIP" -q -d -c t.lmz | cmp -s - text.txt && ok || no "the model found by name in \$LMZIP_MODELS"
LMZIP_MODELS="$T/models" "$LMZIP" -q -c $CX -m tiny-dsrn text.txt | cmp -s - t.lmz && ok || no "-m NAME from the folders"
refuse "decompress with no model at hand" t.out env LMZIP_MODELS="$T/nowhere" "$LMZIP" -d t.lmz -o t.out
grep -q "needs model 'tiny-dsrn'" err && ok || no "the message names the model needed"
cp "$TINY" other.gguf && printf 'X' | dd of=other.gguf bs=1 seek=$(($(wc -c < other.gguf) - 5)) conv=notrunc 2>/dev/null
refuse "decompress with another model" t.out "$LMZIP" -d -m other.gguf t.lmz -o t.out
grep -q "needs model 'tiny-dsrn'" err && ok || no "the wrong-model message names the model needed"
refuse "compress with a missing model" t2.lmz "$LMZIP" -m "$T/missing.gguf" text.txt -o t2.lmz
refuse "compress with a file that is not a model" t2.lmz "$LMZIP" -m text.txt text.txt -o t2.lmz

# ---- damaged files fail cleanly ------------------------------------------------
"$LMZIP" -q -c $CX -m "$TINY" -B 2K matrix.bin > d.lmz
size=$(wc -c < d.lmz)
for cut in 30 200 $((size / 2)) $((size - 40)) $((size - 1)); do
    head -c $cut d.lmz > cut.lmz
    refuse "truncated at $cut of $size" cut.out "$LMZIP" -d -m "$TINY" cut.lmz -o cut.out
done
for at in 250 $((size / 3)) $((size / 2)) $((size - 60)); do
    cp d.lmz flip.lmz
    b=$(od -An -tu1 -j $at -N1 d.lmz | tr -d ' ')
    printf "\\$(printf '%03o' $(((b + 1) % 256)))" | dd of=flip.lmz bs=1 seek=$at conv=notrunc 2>/dev/null
    refuse "byte $at of $size changed" flip.out "$LMZIP" -d -m "$TINY" flip.lmz -o flip.out
done

# ---- an input the byte model codes better: a stream without a model ----------
# (format version 2: when every frame of an input that is one group went to
# the byte model, one frame of the byte model alone is written instead where
# that is smaller; it is -m none's stream, and decodes without the model)
LC_ALL=C awk 'BEGIN { for (i = 0; i < 3000; i++) printf "%c%c%c%c", 14 + i % 16, 128 + int(i / 16) % 64, 2, 1 }' > recs.bin
"$LMZIP" -q -c -m "$TINY" recs.bin > recs.lmz
"$LMZIP" -q -c -m none recs.bin > recs-none.lmz
cmp -s recs.lmz recs-none.lmz && ok || no "records with a model: the byte model's stream"
LMZIP_MODELS="$T/nowhere" "$LMZIP" -q -d -c recs.lmz | cmp -s - recs.bin && ok || no "it decodes without the model"
"$LMZIP" -q -c -m "$TINY" --model-always recs.bin > recs-m.lmz
"$LMZIP" -l recs-m.lmz | tail -n 1 | grep -q tiny-dsrn && ok || no "--model-always keeps the model's stream"
"$LMZIP" -q -c -m "$TINY" --format-version=1 recs.bin > recs-1.lmz
"$LMZIP" -l recs-1.lmz | tail -n 1 | grep -q tiny-dsrn && ok || no "version 1 keeps the model's stream"
"$LMZIP" -q -d -c -m "$TINY" recs-m.lmz | cmp -s - recs.bin && ok || no "--model-always round trip"
"$LMZIP" --explain=tsv -m "$TINY" recs.bin -o recs.tsv 2>err && ok || { no "--explain of a stream that became the byte model's"; cat err; }

# ---- a pipe's input in one batch: the byte-model chain's tables sized by the
# size the header records (lmzip 0.4 sized them for an unknown size, and
# such streams with a chain did not decode) ------------------------------------
head -c 3000 "$ROOT/samples/alice29.txt" > a3k.txt
{ head -c 1500 "$ROOT/samples/alice29.txt"; cat recs.bin; } > mix.bin
pipe_trip() { # FILE [OPTION]
    cat "$1" | "$LMZIP" -q -c -m "$TINY" ${2:+"$2"} > pipe.lmz 2>err && "$LMZIP" -q -d -c -m "$TINY" pipe.lmz 2>>err |
        cmp -s - "$1" && ok || { no "$1 $2 from a pipe round-trips"; cat err; }
}
pipe_trip a3k.txt
pipe_trip recs.bin --model-always
pipe_trip mix.bin
pipe_trip mix.bin --model-always
pipe_trip a3k.txt --parts=model,ngram,bias,match

# ---- binary data in a model's stream: one byte-model chain per group -----------
# (tests/golden/lm/binary-chain: frames of methods 1, 3 and stored between
# text frames). Damage to any of its binary frames fails cleanly.
G=$LMDIR/binary-chain.lmz
size=$(wc -c < "$G")
frames=$("$LMZIP" -lv "$G" | awk '$1 == "frame" { print $3 " " $6 }')
at=$((size - 29 - $(echo "$frames" | awk '{ s += $2 } END { print s }')))
echo "$frames" | while read -r method len; do
    if [ "$method" != lm ]; then
        pos=$((at + 22 + (len - 22) / 2))
        cp "$G" flip.lmz
        b=$(od -An -tu1 -j $pos -N1 "$G" | tr -d ' ')
        printf "\\$(printf '%03o' $(((b + 1) % 256)))" | dd of=flip.lmz bs=1 seek=$pos conv=notrunc 2>/dev/null
        "$LMZIP" -d -m "$TINY" flip.lmz -o flip.out >/dev/null 2>err; st=$?
        [ "$st" -eq 1 ] && grep -q "^lmzip: " err && [ ! -e flip.out ] && echo ok || echo "no $method frame at $at: byte $pos changed (status $st)"
    fi
    at=$((at + len))
done > chain.res
nb=$(echo "$frames" | grep -vc '^lm ')
[ "$nb" -ge 5 ] && [ "$(grep -c '^ok' chain.res)" -eq "$nb" ] && ok || { no "damaged binary frames of a chain ($nb)"; cat chain.res; }
# a fax image (calgary/pic, 128K from its middle): frames of the byte model,
# of runs and of raw LZMA2 where that is smaller, one chain across them
pic="$DATA/bench/calgary/pic"
if [ -f "$pic" ]; then
    dd if="$pic" bs=1024 skip=256 count=128 2>/dev/null > pic.bin
    roundtrip "image frames with a model" pic.bin -m "$TINY"
    "$LMZIP" -lv rt.lmz | grep -q ' lzma ' && ok || no "raw LZMA2 frames where they are smaller"
fi

fi # native_only: from the models by name on

# ---- the llama engine (the reference's tiny random llama, when present) -------
if [ -f "$LLAMA" ]; then
    rt="text.txt tar.bin ctrl.txt"; [ -n "$LMZ_TEST_QUICK" ] && rt="tar.bin ctrl.txt" # (text: the window test below)
    native_only || rt=ctrl.txt
    for f in $rt; do roundtrip "llama: $f" $f -m "$LLAMA" -B 4K -T 2; done
    for p in $paths; do
        LMZIP_KERNELS=$p "$LMZIP" -q -c $CX -m "$LLAMA" -B $mb matrix.bin > "l-$p.lmz"
        cmp -s "l-$p.lmz" l-scalar.lmz && ok || no "llama: $p gives other bytes"
        LMZIP_KERNELS=$p "$LMZIP" -q -d -c -m "$LLAMA" -T 2 l-scalar.lmz | cmp -s - matrix.bin && ok ||
            no "llama: decompress under $p"
        LMZIP_KERNELS=$p "$LMZIP" -q -c $CX -m "$LLAMA" --profile=det-i8-v1 -B $mb matrix.bin > "li-$p.lmz"
        cmp -s "li-$p.lmz" li-scalar.lmz && ok || no "llama, det-i8-v1: $p gives other bytes"
        LMZIP_KERNELS=$p "$LMZIP" -q -d -c -m "$LLAMA" -T 2 li-scalar.lmz | cmp -s - matrix.bin && ok ||
            no "llama, det-i8-v1: decompress under $p"
    done
    # (30,000 bytes: over a hundred windows of 64 tokens; the sanitizers 6,000 bytes, qemu 1,500)
    head -c 30000 alice.txt > a30k.txt
    win=a30k.txt; [ -n "$LMZ_TEST_QUICK" ] && win=text.txt; [ -n "$LMZ_TEST_QEMU" ] && head -c 1500 text.txt > win.txt && win=win.txt
    roundtrip "llama: a 64-token window" $win -m "$LLAMA" --window 64 -B 64K
    lock=tar.bin; native_only || lock=matrix.bin
    roundtrip "llama: confidence skip, frames in lockstep" $lock -m "$LLAMA" --skip=2 -B $mb -T 2
    native_only && refuse "llama file for a DSRN stream" t.out "$LMZIP" -d -m "$LLAMA" t.lmz -o t.out
fi

# ---- qwen3 and qwen2 (the reference's tiny random models; qwen3-tok.gguf
# carries Qwen3's real 151,936-token vocabulary) ------------------------------
QWEN="$DATA/../reference/qwen"
# (sanitizers, qemu: a short mix of text and binary; qemu runs these ~100x slower)
kin=tar.bin; [ -n "$LMZ_TEST_QUICK" ] && { head -c 100 random.bin; head -c 300 /dev/zero; head -c 1200 alice.txt; } > kin.bin && kin=kin.bin
if [ -f "$QWEN/qwen3-tok.gguf" ]; then
    for q in qwen3-tiny-f32 qwen2-tiny-q8_0; do
        roundtrip "$q: text and binary" $kin -m "$QWEN/$q.gguf" -B 4K -T 2
    done
    # the 151,936-token vocabulary natively only: under sanitizers and qemu a
    # pass over it a token takes minutes (the unit tests check its ids there)
    if [ -z "$LMZ_TEST_QUICK" ]; then
        "$LMZIP" -q -c $CX -m "$QWEN/qwen3-tok.gguf" -B 2K -T 1 text.txt > q1.lmz
        "$LMZIP" -q -c $CX -m "$QWEN/qwen3-tok.gguf" -B 2K -T 2 text.txt | cmp -s - q1.lmz && ok ||
            no "qwen3-tok: -T 1 and -T 2 give the same bytes"
        "$LMZIP" -q -d -c -m "$QWEN/qwen3-tok.gguf" -T 2 q1.lmz | cmp -s - text.txt && ok || no "qwen3-tok: round trip"
        "$LMZIP" -q -c $CX -m "$QWEN/qwen3-tok.gguf" --profile=det-i8-v1 -B 2K text.txt > qi.lmz
        "$LMZIP" -q -d -c -m "$QWEN/qwen3-tok.gguf" -T 2 qi.lmz | cmp -s - text.txt && ok ||
            no "qwen3-tok: det-i8-v1 round trip"
    fi
fi
# ---- gemma3 (sliding-window layers; gemma3-tok.gguf: Gemma 3's 262,145 pieces)
GEMMA="$DATA/../reference/gemma3"
if [ -f "$GEMMA/gemma3-tok.gguf" ]; then
    roundtrip "gemma3-tiny-f32: text and binary" $kin -m "$GEMMA/gemma3-tiny-f32.gguf" -B 4K -T 2
    roundtrip "gemma3-tiny-q8_0, det-i8-v1" $kin -m "$GEMMA/gemma3-tiny-q8_0.gguf" --profile=det-i8-v1 -B 4K -T 2
    if [ -z "$LMZ_TEST_QUICK" ]; then # (natively only, as qwen3-tok above)
        "$LMZIP" -q -c $CX -m "$GEMMA/gemma3-tok.gguf" -B 2K -T 1 text.txt > g1.lmz
        "$LMZIP" -q -c $CX -m "$GEMMA/gemma3-tok.gguf" -B 2K -T 2 text.txt | cmp -s - g1.lmz && ok ||
            no "gemma3-tok: -T 1 and -T 2 give the same bytes"
        "$LMZIP" -q -d -c -m "$GEMMA/gemma3-tok.gguf" -T 2 g1.lmz | cmp -s - text.txt && ok || no "gemma3-tok: round trip"
    fi
fi

echo "codec: $pass passed, $fail failed"

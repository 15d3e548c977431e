#!/bin/sh
# run.sh BUILD — every test of the project: unit tests, fuzz corpus replay,
# golden files and command-line behaviour. Ends with "N passed, N failed".
BUILD=${1:-build}
export LMZ_DATA="${LMZ_DATA:-$(cd "$(dirname "$0")/../.." && pwd)/shared/data}"
pass=0
fail=0

# suite NAME PREFIX CMD...: run a suite whose last line is
# "PREFIX N passed, N failed" and add its counts
suite() {
    name=$1; prefix=$2; shift 2
    echo "== $name"
    t0=$(date +%s)
    out=$("$@" 2>&1); st=$?
    echo "$out"
    echo "($(($(date +%s) - t0)) s)"
    line=$(echo "$out" | tail -n 1)
    p=$(echo "$line" | sed -n "s/^$prefix\([0-9]*\) passed, \([0-9]*\) failed\$/\1/p")
    f=$(echo "$line" | sed -n "s/^$prefix\([0-9]*\) passed, \([0-9]*\) failed\$/\2/p")
    if [ -z "$p" ]; then p=0; f=1; echo "FAIL $name did not finish (status $st)"; fi
    pass=$((pass + p)); fail=$((fail + f))
}

suite "unit tests ($BUILD/unit_tests)" "" "$BUILD/unit_tests"

suite "gradient check of the DSRN trainer ($BUILD/gradcheck)" "gradcheck: " "$BUILD/gradcheck"

echo "== fuzz corpus and golden files replayed through the fuzz target"
if "$BUILD/fuzz_replay" tests/fuzz/corpus tests/fuzz/crashes tests/golden; then pass=$((pass + 1))
else fail=$((fail + 1)); echo "FAIL fuzz replay"; fi

echo "== GGUF corpus (and the reference models, when present) replayed through the GGUF fuzz target"
ref="$LMZ_DATA/../reference"
set -- tests/fuzz/gguf-corpus tests/fuzz/crashes-gguf
[ -d "$ref" ] && set -- "$@" "$ref"
if "$BUILD/fuzz_gguf_replay" "$@"; then pass=$((pass + 1))
else fail=$((fail + 1)); echo "FAIL GGUF fuzz replay"; fi

# The coding path's C code is built with -ffp-contract=off: no fused
# multiply-add unless written (the kernels' intrinsics, detmath's fmaf). GCC
# 12 still fuses some vectorised patterns in multiversioned code (a rotation's
# a*c - b*s, a*s + b*c became vfmaddsub in an AVX-512 clone of dsrn.c's
# per-token loop): every object of these files must hold none.
echo "== no unwritten fused multiply-adds in the coding path's objects"
case $(uname -m) in
x86_64)
    fused=""
    for o in predict/lmens predict/cdf predict/bytemodel codec/tokbits codec/lmcodec model/model model/dsrn \
             model/llama tensor/qmat tensor/qmat_x86; do
        f="$BUILD/src/$o.o"
        [ -f "$f" ] || continue
        objdump -d "$f" | grep -qE '[[:space:]]vf(n)?m(add|sub)' && fused="$fused $o"
    done
    if [ -z "$fused" ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL fused multiply-adds in:$fused"; fi
    ;;
*) echo "(x86-64 only)" ;;
esac

suite "golden files and command line ($BUILD/lmzip)" "cli: " sh tests/cli.sh "$BUILD/lmzip"

suite "the language-model codec ($BUILD/lmzip -m)" "codec: " sh tests/codec.sh "$BUILD/lmzip"

suite "the shipped default model, levels, progress ($BUILD/lmzip)" "models: " sh tests/models.sh "$BUILD/lmzip"

suite "the shared library, make install, Python ($BUILD/liblmzip.so)" "lib: " sh tests/lib.sh "$BUILD"

suite "the model tool ($BUILD/dsrn): tokenizer, training, generation" "dsrn: " sh tests/dsrn.sh "$BUILD/dsrn"

echo "total: $pass passed, $fail failed"
[ "$fail" -eq 0 ]

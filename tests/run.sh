#!/bin/sh
# run.sh BUILD — every test of the project: unit tests, fuzz corpus replay,
# golden files and command-line behaviour. Ends with "N passed, N failed".
BUILD=${1:-build}
export LMZ_DATA="${LMZ_DATA:-$(cd "$(dirname "$0")/../.." && pwd)/shared/data}"
pass=0
fail=0

count() { # count LABEL STATUS
    if [ "$2" -eq 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL $1"; fi
}

echo "== unit tests ($BUILD/unit_tests)"
out=$("$BUILD/unit_tests" 2>&1); st=$?
echo "$out"
line=$(echo "$out" | tail -n 1)
up=$(echo "$line" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p')
uf=$(echo "$line" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p')
if [ -z "$up" ]; then up=0; uf=1; echo "FAIL unit tests did not finish (status $st)"; fi
pass=$((pass + up)); fail=$((fail + uf))

echo "== fuzz corpus and golden files replayed through the fuzz target"
"$BUILD/fuzz_replay" tests/fuzz/corpus tests/fuzz/crashes tests/golden; count fuzz_replay $?

echo "== golden files and command line ($BUILD/lmzip)"
out=$(sh tests/cli.sh "$BUILD/lmzip" 2>&1); st=$?
echo "$out"
line=$(echo "$out" | tail -n 1)
cp_=$(echo "$line" | sed -n 's/^cli: \([0-9]*\) passed, \([0-9]*\) failed$/\1/p')
cf=$(echo "$line" | sed -n 's/^cli: \([0-9]*\) passed, \([0-9]*\) failed$/\2/p')
if [ -z "$cp_" ]; then cp_=0; cf=1; echo "FAIL cli tests did not finish (status $st)"; fi
pass=$((pass + cp_)); fail=$((fail + cf))

echo "total: $pass passed, $fail failed"
[ "$fail" -eq 0 ]

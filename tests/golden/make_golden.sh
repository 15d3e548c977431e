#!/bin/sh
# make_golden.sh BUILD — (re)makes tests/golden. Run once per format or
# profile version: files in ok/ must keep decoding in every later version of
# lmzip, files in bad/ must keep failing cleanly. Never regenerate ok/ files
# of an existing version to make a test pass.
set -e
BUILD=${1:-build}
LMZIP=$(pwd)/$BUILD/lmzip
G=tests/golden
mkdir -p $G/ok $G/bad
cc -std=c11 -O2 -Iinclude -Isrc -o "$BUILD/mkbad" $G/mkbad.c -lxxhash
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

# ---- ok: inputs and their .lmz (format 1, profile int-v1) ----------------
: > $G/ok/v1-empty.orig
printf 'x' > $G/ok/v1-one-byte.orig
head -c 3000 samples/alice29.txt > $G/ok/v1-text-3-frames.orig
awk 'BEGIN { s = 12345; for (i = 0; i < 1500; i++) { s = (s * 1103515245 + 12345) % 2147483648; printf "%c", int(s / 65536) % 256 } }' \
    > $G/ok/v1-binary-stored.orig
head -c 65536 /dev/zero > $G/ok/v1-zeros-64k.orig
tail -c 20000 samples/alice29.txt > $G/ok/v1-text-20k.orig
(head -c 1200 samples/alice29.txt; printf '\000\001\002\377\376'; head -c 700 /dev/zero; printf 'caf\303\251 \316\261\316\262\316\263 \344\270\255\346\226\207\n') \
    > $G/ok/v1-mixed.orig

"$LMZIP" -q -c < $G/ok/v1-empty.orig > $G/ok/v1-empty.lmz
"$LMZIP" -q -c < $G/ok/v1-one-byte.orig > $G/ok/v1-one-byte.lmz
"$LMZIP" -q -c -B 1K < $G/ok/v1-text-3-frames.orig > $G/ok/v1-text-3-frames.lmz
"$LMZIP" -q -c -B 1K < $G/ok/v1-binary-stored.orig > $G/ok/v1-binary-stored.lmz
"$LMZIP" -q -c --table-bits=12 < $G/ok/v1-zeros-64k.orig > $G/ok/v1-zeros-64k.lmz
"$LMZIP" -q -c < $G/ok/v1-text-20k.orig > $G/ok/v1-text-20k.lmz
"$LMZIP" -q -c -B 1K -T 2 < $G/ok/v1-mixed.orig > $G/ok/v1-mixed.lmz
cat $G/ok/v1-text-3-frames.lmz $G/ok/v1-empty.lmz $G/ok/v1-binary-stored.lmz > $G/ok/v1-concatenated.lmz
cat $G/ok/v1-text-3-frames.orig $G/ok/v1-binary-stored.orig > $G/ok/v1-concatenated.orig

# ---- bad: files that must fail cleanly -----------------------------------
src=$G/ok/v1-text-3-frames.lmz
size=$(wc -c < $src)
: > $G/bad/empty.lmz
head -c 20 $src > $G/bad/truncated-header.lmz
head -c $((size / 2)) $src > $G/bad/truncated-frame.lmz
head -c $((size - 10)) $src > $G/bad/truncated-end-block.lmz
head -c $((size - 29)) $src > $G/bad/missing-end-block.lmz
flip() { # flip OFFSET OUT: copy src with one bit flipped at OFFSET
    cp $src "$T/f"
    b=$(od -An -tu1 -j "$1" -N1 "$T/f" | tr -d ' ')
    printf "$(printf '\\%03o' $((b ^ 16)))" | dd of="$T/f" bs=1 seek="$1" conv=notrunc 2>/dev/null
    cp "$T/f" "$2"
}
flip 3 $G/bad/bad-magic.lmz
flip 30 $G/bad/bitflip-header.lmz
flip 100 $G/bad/bitflip-frame-header.lmz
flip 200 $G/bad/bitflip-payload.lmz
flip $((size - 3)) $G/bad/bitflip-end-block.lmz
flip $((size - 40)) $G/bad/bitflip-last-payload-byte.lmz
cp $src "$T/v" && printf '\002' | dd of="$T/v" bs=1 seek=8 conv=notrunc 2>/dev/null && cp "$T/v" $G/bad/version-2.lmz
awk 'BEGIN { s = 99; for (i = 0; i < 700; i++) { s = (s * 1103515245 + 12345) % 2147483648; printf "%c", int(s / 65536) % 256 } }' > $G/bad/garbage.lmz
(cat $src; printf 'trailing junk') > $G/bad/trailing-garbage.lmz
(cat $src; head -c 12 $src) > $G/bad/truncated-second-stream.lmz
for m in setting profile model frame-too-big comp-too-big frame-xxh end-count end-hash block-type frame-size-zero; do
    "$BUILD/mkbad" $m $src $G/bad/$m.lmz
done
echo "golden files written to $G"

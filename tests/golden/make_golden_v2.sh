#!/bin/sh
# make_golden_v2.sh BUILD — the golden files of format version 2 (lmzip 0.4,
# the short form: settings only where they differ from the defaults, varints,
# one-frame streams without an end block; format.h): streams of the byte
# model in ok/v2-*, of tests/models/tiny-dsrn.gguf in lm-f2/ (with the
# options they were made with in .opts), broken ones in bad/v2-*. tests/cli.sh
# and tests/codec.sh check that they decode (or fail cleanly) and that
# re-encoding gives the same bytes. Makes only the files that are missing:
# never regenerate existing ones to make a test pass.
set -e
BUILD=${1:-build}
LMZIP=$(pwd)/$BUILD/lmzip
export LMZIP_LEVEL=3 # the byte model unless -m says otherwise
unset LMZIP_MODELS
G=tests/golden
M=tests/models/tiny-dsrn.gguf
cc -std=c11 -O2 -Iinclude -Isrc -o "$BUILD/mkbad" $G/mkbad.c -lxxhash
MKBAD=$BUILD/mkbad
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir -p $G/ok $G/bad $G/lm-f2

# ---- ok: byte-model streams; each line: name, options, how its input is made
mk() { # mk NAME OPTIONS: NAME.orig exists; makes NAME.lmz when missing
    [ -e "$G/ok/$1.lmz" ] && return 0
    # shellcheck disable=SC2086
    "$LMZIP" -q -c $2 < "$G/ok/$1.orig" > "$G/ok/$1.lmz"
}
[ -e $G/ok/v2-empty.orig ] || : > $G/ok/v2-empty.orig
[ -e $G/ok/v2-one-byte.orig ] || printf 'x' > $G/ok/v2-one-byte.orig
[ -e $G/ok/v2-text-3-frames.orig ] || head -c 3000 samples/alice29.txt > $G/ok/v2-text-3-frames.orig
[ -e $G/ok/v2-text-20k.orig ] || tail -c 20000 samples/alice29.txt > $G/ok/v2-text-20k.orig
[ -e $G/ok/v2-runs-sparse.orig ] || cp $G/ok/v1-runs-sparse.orig $G/ok/v2-runs-sparse.orig
[ -e $G/ok/v2-table-bits.orig ] || head -c 5000 samples/alice29.txt > $G/ok/v2-table-bits.orig
mk v2-empty ""
mk v2-one-byte ""
mk v2-text-3-frames "-B 1K"
mk v2-text-20k ""
mk v2-runs-sparse "-B 16K -T 2"
mk v2-table-bits "--table-bits=12"
# streams of both versions one after the other
if [ ! -e $G/ok/v2-concatenated.lmz ]; then
    cat $G/ok/v2-text-3-frames.lmz $G/ok/v1-empty.lmz $G/ok/v2-one-byte.lmz $G/ok/v1-binary-stored.lmz \
        > $G/ok/v2-concatenated.lmz
    cat $G/ok/v2-text-3-frames.orig $G/ok/v2-one-byte.orig $G/ok/v1-binary-stored.orig > $G/ok/v2-concatenated.orig
fi

# ---- lm-f2: language-model streams of the tiny model ---------------------------
L=$G/lm-f2
[ -e $L/one-frame.orig ] || head -c 3000 samples/alice29.txt > $L/one-frame.orig
[ -e $L/one-frame.opts ] || : > $L/one-frame.opts
[ -e $L/i8-settings.orig ] || { head -c 9000 samples/alice29.txt | tail -c 2500; } > $L/i8-settings.orig
[ -e $L/i8-settings.opts ] || echo "--profile=det-i8-v1 --skip=3 --ngram-bits=16" > $L/i8-settings.opts
[ -e $L/groups.orig ] || cp $G/lm/i8-group.orig $L/groups.orig
[ -e $L/groups.opts ] || echo "-B 1K --group=3" > $L/groups.opts
[ -e $L/binary-chain.orig ] || cp $G/lm/binary-chain.orig $L/binary-chain.orig
[ -e $L/binary-chain.opts ] || echo "-B 1K --group=12" > $L/binary-chain.opts
[ -e $L/empty.orig ] || : > $L/empty.orig
[ -e $L/empty.opts ] || : > $L/empty.opts
for f in $L/*.orig; do
    b=${f%.orig}
    [ -e "$b.lmz" ] && continue
    # shellcheck disable=SC2046
    "$LMZIP" -q -c -m $M $(cat "$b.opts") < "$f" > "$b.lmz"
done

# ---- bad: version-2 files that must fail cleanly --------------------------------
one=$G/ok/v2-text-20k.lmz      # one frame
multi=$G/ok/v2-text-3-frames.lmz # three frames and an end block
lm=$L/one-frame.lmz
flip() { # flip SRC OFFSET OUT: SRC with one bit flipped at OFFSET
    cp "$1" "$T/f"
    b=$(od -An -tu1 -j "$2" -N1 "$T/f" | tr -d ' ')
    printf "$(printf '\\%03o' $((b ^ 16)))" | dd of="$T/f" bs=1 seek="$2" conv=notrunc 2>/dev/null
    cp "$T/f" "$3"
}
n1=$(wc -c < $one)
nm=$(wc -c < $multi)
[ -e $G/bad/v2-truncated-header.lmz ] || head -c 12 $one > $G/bad/v2-truncated-header.lmz
[ -e $G/bad/v2-truncated-one-frame.lmz ] || head -c $((n1 - 1)) $one > $G/bad/v2-truncated-one-frame.lmz
[ -e $G/bad/v2-missing-end-block.lmz ] || head -c $((nm - 6)) $multi > $G/bad/v2-missing-end-block.lmz
[ -e $G/bad/v2-bitflip-size.lmz ] || flip $one 11 $G/bad/v2-bitflip-size.lmz
[ -e $G/bad/v2-bitflip-method.lmz ] || flip $one 18 $G/bad/v2-bitflip-method.lmz
[ -e $G/bad/v2-bitflip-check.lmz ] || flip $one 22 $G/bad/v2-bitflip-check.lmz
[ -e $G/bad/v2-bitflip-payload.lmz ] || flip $one $((n1 / 2)) $G/bad/v2-bitflip-payload.lmz
[ -e $G/bad/v2-bitflip-end-total.lmz ] || flip $multi $((nm - 5)) $G/bad/v2-bitflip-end-total.lmz
[ -e $G/bad/v2-bitflip-end-check.lmz ] || flip $multi $((nm - 2)) $G/bad/v2-bitflip-end-check.lmz
[ -e $G/bad/v2-bitflip-name.lmz ] || flip $lm 13 $G/bad/v2-bitflip-name.lmz
if [ ! -e $G/bad/v2-version-3.lmz ]; then
    cp $one "$T/v" && printf '\003' | dd of="$T/v" bs=1 seek=8 conv=notrunc 2>/dev/null && cp "$T/v" $G/bad/v2-version-3.lmz
fi
[ -e $G/bad/v2-trailing-garbage.lmz ] || { cat $one; printf 'junk'; } > $G/bad/v2-trailing-garbage.lmz
for m in v2-flag v2-profile v2-set-order v2-no-size v2-long-size v2-name-on-none v2-bomb; do
    [ -e $G/bad/$m.lmz ] || $MKBAD $m $one $G/bad/$m.lmz
done
[ -e $G/bad/v2-set-unknown.lmz ] || $MKBAD v2-set:40:7 $one $G/bad/v2-set-unknown.lmz
[ -e $G/bad/v2-set-out-of-bounds.lmz ] || $MKBAD v2-set:2:30 $one $G/bad/v2-set-out-of-bounds.lmz
[ -e $G/bad/v2-set-lm-in-none.lmz ] || $MKBAD v2-set:5:16 $one $G/bad/v2-set-lm-in-none.lmz
[ -e $G/bad/v2-lm-window.lmz ] || $MKBAD v2-set:10:5 $lm $G/bad/v2-lm-window.lmz
[ -e $G/bad/v2-lm-profile.lmz ] || $MKBAD v2-profile $lm $G/bad/v2-lm-profile.lmz
echo "version-2 golden files written to $G"

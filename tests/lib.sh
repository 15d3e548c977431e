#!/bin/sh
# lib.sh BUILD — the shared library and what uses it: liblmzip.so exports
# exactly lmzip.h's LMZ_API functions under its soname; `make install`
# (DESTDIR) puts the programs, library, header, pkg-config file, man pages
# and models in place; a C program built with pkg-config against the
# installed copy round-trips (shared and static); the Python package's
# structures match the C ones and its tests pass (python/tests).
# Skipped where BUILD has no liblmzip.so (the AArch64 build under qemu) or
# it is a sanitizer build.
# Ends with "lib: N passed, N failed".
BUILD=$(cd "$1" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
pass=0
fail=0
ok() { pass=$((pass + 1)); }
no() { fail=$((fail + 1)); echo "FAIL: $*"; }
if [ ! -e "$BUILD/liblmzip.so" ]; then
    echo "lib: no $BUILD/liblmzip.so (a cross build): skipped"
    echo "lib: 0 passed, 0 failed"
    exit 0
fi
if readelf -d "$BUILD/liblmzip.so" | grep -q 'NEEDED.*lib[a-z]*san'; then
    echo "lib: $BUILD/liblmzip.so is a sanitizer build (programs and Python would need its runtime first): skipped"
    echo "lib: 0 passed, 0 failed"
    exit 0
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
CC=${CC:-cc}

# ---- the exports -----------------------------------------------------------------
sed -n 's/^LMZ_API .*[ *]\(lmz_[a-z0-9_]*\)(.*/\1/p' "$ROOT/include/lmzip.h" | sort > "$T/api"
nm -D --defined-only "$BUILD/liblmzip.so" | awk '{ print $3 }' | sort > "$T/exports"
[ -s "$T/api" ] && cmp -s "$T/api" "$T/exports" && ok || { no "the library exports lmzip.h's functions, nothing else"; diff "$T/api" "$T/exports" | head; }
ver=$(sed -n 's/^#define LMZ_VERSION_STRING "\(.*\)"/\1/p' "$ROOT/include/lmzip.h")
readelf -d "$BUILD/liblmzip.so" | grep -q "SONAME.*\[liblmzip.so.${ver%.*}\]" && ok || no "soname liblmzip.so.${ver%.*}"

# ---- make install ------------------------------------------------------------------
D="$T/dest"
if make -s -C "$ROOT" install BUILD="$BUILD" DESTDIR="$D" PREFIX=/usr >"$T/log" 2>&1; then ok; else no "make install"; cat "$T/log"; fi
for f in bin/lmzip bin/dsrn include/lmzip.h lib/liblmzip.a "lib/liblmzip.so.$ver" "lib/liblmzip.so.${ver%.*}" lib/liblmzip.so \
    lib/pkgconfig/lmzip.pc share/man/man1/lmzip.1 share/man/man1/dsrn.1; do
    [ -e "$D/usr/$f" ] && ok || no "make install puts $f"
done
if ls "$ROOT"/models/*.gguf >/dev/null 2>&1; then
    [ -e "$D/usr/share/lmzip/models/default.gguf" ] && ok || no "make install puts the models in share/lmzip/models"
fi
grep -q "^Version: $ver\$" "$D/usr/lib/pkgconfig/lmzip.pc" && ok || no "lmzip.pc says version $ver"

# ---- a program built against the installed copy -------------------------------------------
cat > "$T/rt.c" <<'C'
#include <lmzip.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void)
{
    static char src[50000], dst[60000], back[50000];
    for (size_t i = 0; i < sizeof src; i++) src[i] = "lmzip round trip "[i % 17] + (char)(i / 4000);
    lmz_params p;
    lmz_params_default(&p);
    size_t n = 0, m = 0;
    int e = lmz_compress_buffer(&p, src, sizeof src, dst, sizeof dst, &n);
    if (!e) e = lmz_decompress_buffer(1, dst, n, back, sizeof back, &m);
    if (e || m != sizeof src || memcmp(src, back, m)) {
        fprintf(stderr, "rt: %s\n", lmz_error_name(e));
        return 1;
    }
    printf("%s %zu -> %zu\n", lmz_version_string(), m, n);
    return 0;
}
C
export PKG_CONFIG_PATH="$D/usr/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$D"
if $CC -o "$T/rt" "$T/rt.c" $(pkg-config --cflags --libs lmzip) 2>"$T/err" &&
    LD_LIBRARY_PATH="$D/usr/lib" "$T/rt" > "$T/out" && grep -q "^$ver 50000 -> " "$T/out"; then ok
else no "a C program against the installed shared library (pkg-config)"; cat "$T/err"; fi
readelf -d "$T/rt" 2>/dev/null | grep -q "NEEDED.*liblmzip.so.${ver%.*}" && ok || no "the program needs liblmzip.so.${ver%.*}"
if $CC -static-libgcc -o "$T/rts" "$T/rt.c" -I"$D/usr/include" "$D/usr/lib/liblmzip.a" \
    $(pkg-config --static --libs-only-l lmzip | sed 's/-llmzip//') 2>"$T/err" && "$T/rts" > /dev/null; then ok
else no "a C program against the static library (pkg-config --static)"; cat "$T/err"; fi

# ---- Python: the ctypes structures, then the package's tests -----------------------------
if command -v python3 >/dev/null 2>&1; then
    cat > "$T/sizes.c" <<'C'
#include <lmzip.h>
#include <stdio.h>
#include <stddef.h>
int main(void)
{
    printf("%zu %zu %zu %zu %zu %zu %zu %zu\n", sizeof(lmz_params), offsetof(lmz_params, explain_opaque),
           sizeof(lmz_dparams), offsetof(lmz_dparams, frames_at_once), sizeof(lmz_io), sizeof(lmz_setting),
           sizeof(lmz_piece), offsetof(lmz_piece, top_len));
    return 0;
}
C
    c=$($CC -I"$ROOT/include" -o "$T/sizes" "$T/sizes.c" && "$T/sizes")
    py=$(LMZIP_LIBRARY="$BUILD/liblmzip.so" PYTHONPATH="$ROOT/python" python3 -c '
import ctypes, lmzip as m
print(ctypes.sizeof(m._Params), m._Params.explain_opaque.offset, ctypes.sizeof(m._DParams),
      m._DParams.frames_at_once.offset, ctypes.sizeof(m._IO), ctypes.sizeof(m._Setting),
      ctypes.sizeof(m._Piece), m._Piece.top_len.offset)')
    [ -n "$c" ] && [ "$c" = "$py" ] && ok || no "the Python structures match lmzip.h (C: $c, Python: $py)"
    out=$(LMZIP_LIBRARY="$BUILD/liblmzip.so" LMZIP_CLI="$BUILD/lmzip" python3 "$ROOT/python/tests/run.py" 2>&1)
    line=$(echo "$out" | tail -n 1)
    p=$(echo "$line" | sed -n 's/^python: \([0-9]*\) passed, \([0-9]*\) failed$/\1/p')
    f=$(echo "$line" | sed -n 's/^python: \([0-9]*\) passed, \([0-9]*\) failed$/\2/p')
    if [ -n "$p" ] && [ "$p" -gt 0 ] && [ "$f" = 0 ]; then pass=$((pass + p)); else no "the Python package's tests"; echo "$out" | tail -n 30; fi
else
    echo "lib: no python3: the Python package is not tested (scripts/deps.sh installs it)"
fi

echo "lib: $pass passed, $fail failed"
[ "$fail" -eq 0 ]

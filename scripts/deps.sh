#!/bin/sh
# deps.sh — install the Debian packages lmzip needs to build and test, when
# they are missing. Needs root (apt-get); says what to install otherwise.
PKGS="gcc make libxxhash-dev liblzma-dev libopenblas-dev libdnnl-dev libjansson-dev pkg-config python3 parallel chromium $DEPS_EXTRA"

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "deps: not a Debian system; make sure these are installed: $PKGS" >&2
    exit 0
fi
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "deps: missing Debian packages:$missing" >&2
    echo "deps: run 'make test' as root, or first: sudo apt-get install$missing" >&2
    exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
case "$missing" in *:arm64*) # the cross build's libraries (multiarch)
    dpkg --print-foreign-architectures | grep -q arm64 || dpkg --add-architecture arm64 ;;
esac
apt-get update -qq && apt-get install -y -qq $missing >/dev/null || {
    echo "deps: apt-get install$missing failed" >&2
    exit 1
}

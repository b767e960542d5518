#!/bin/sh
# Configure (once) and compile into ./build. Warnings are errors under CI.
set -eu
cd "$(dirname "$0")/.."
BUILD=${HP_BUILDDIR:-build}
werror=false
[ "${CI:-}" = true ] && werror=true
if [ ! -f "$BUILD/build.ninja" ]; then
	meson setup "$BUILD" -Dwerror=$werror >/dev/null
else
	meson configure "$BUILD" -Dwerror=$werror >/dev/null
fi
meson compile -C "$BUILD" >"$BUILD/compile.log" 2>&1 || {
	cat "$BUILD/compile.log" >&2
	echo "build: compilation failed (log: $BUILD/compile.log)" >&2
	exit 1
}

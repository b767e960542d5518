#!/bin/sh
# Configure (once) and compile into ./build. Warnings are errors under CI.
# This is the development and test build: the test hooks are on (meson
# option test_hooks; HP_TEST_HOOKS=false turns them off). A build that
# ships is a plain `meson setup`, where they are off.
set -eu
cd "$(dirname "$0")/.."
BUILD=${HP_BUILDDIR:-build}
werror=false
[ "${CI:-}" = true ] && werror=true
hooks=${HP_TEST_HOOKS:-true}
if [ ! -f "$BUILD/build.ninja" ]; then
	meson setup "$BUILD" -Dwerror=$werror -Dtest_hooks="$hooks" >/dev/null
else
	meson configure "$BUILD" -Dwerror=$werror -Dtest_hooks="$hooks" >/dev/null
fi
meson compile -C "$BUILD" >"$BUILD/compile.log" 2>&1 || {
	cat "$BUILD/compile.log" >&2
	echo "build: compilation failed (log: $BUILD/compile.log)" >&2
	exit 1
}

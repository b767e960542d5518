#!/bin/sh
# README command 1: the main job end to end. Installs what is missing,
# builds, then runs as much of the path as exists today.
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
BUILD=${HP_BUILDDIR:-build}

if [ -x "$BUILD/fs/hotpatchfs" ] && [ -x tests/fixtures/demo.sh ]; then
	exec tests/fixtures/demo.sh "$BUILD"
fi
echo "demo: built $("$BUILD/cli/hp" version); store, engine and hotpatchfs are not merged yet:"
echo "demo: the end-to-end run (import, mount, apply, revert) arrives with them"

#!/bin/sh
# README command 1: the main job end to end. Installs what is missing,
# builds, then runs the end-to-end demo (tests/fixtures/demo.sh, which
# test-demo also runs in the suite).
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
BUILD=${HP_BUILDDIR:-build}

exec tests/fixtures/demo.sh "$BUILD"

#!/bin/sh
# README command 2: install what is missing, build, run the whole suite.
# Exits non-zero on any failure; ends with "N passed, N failed".
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
BUILD=${HP_BUILDDIR:-build}

status=0
meson test -C "$BUILD" --print-errorlogs --num-processes 2 "$@" || status=$?

# meson's own summary is "Ok: N ... Fail: N"; also say it plainly.
python3 - "$BUILD/meson-logs/testlog.json" <<'PY' || true
import json, sys
ok = fail = skip = 0
for line in open(sys.argv[1]):
    r = json.loads(line).get("result")
    if r in ("OK", "EXPECTEDFAIL"): ok += 1
    elif r == "SKIP": skip += 1
    else: fail += 1
print(f"tests: {ok} passed, {fail} failed, {skip} skipped")
PY
exit $status

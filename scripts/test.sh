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

# HP_TEST_ASAN=1: the whole suite once more, built with ASan and UBSan in a
# second build dir (build-asan; warnings stay warnings there: the
# sanitizers' instrumentation makes gcc see impossible paths). Not on by
# default under CI: the two passes together do not stay well under the
# suite's 10 minutes (tests/README.md has the figures).
if [ "${HP_TEST_ASAN:-0}" = 1 ]; then
	ASAN_BUILD=${HP_ASAN_BUILDDIR:-build-asan}
	if [ ! -f "$ASAN_BUILD/build.ninja" ]; then
		meson setup "$ASAN_BUILD" -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
	fi
	meson compile -C "$ASAN_BUILD" >"$ASAN_BUILD/compile.log" 2>&1 || {
		cat "$ASAN_BUILD/compile.log" >&2
		echo "test: the ASan build failed (log: $ASAN_BUILD/compile.log)" >&2
		exit 1
	}
	meson test -C "$ASAN_BUILD" --print-errorlogs --num-processes 2 "$@" || status=$?
fi

# meson's own summary is "Ok: N ... Fail: N"; also say it plainly.
logs="$BUILD/meson-logs/testlog.json"
[ "${HP_TEST_ASAN:-0}" = 1 ] && logs="$logs $ASAN_BUILD/meson-logs/testlog.json"
# shellcheck disable=SC2086
python3 - $logs <<'PY' || true
import json, sys
for log in sys.argv[1:]:
    ok = fail = skip = 0
    for line in open(log):
        r = json.loads(line).get("result")
        if r in ("OK", "EXPECTEDFAIL"): ok += 1
        elif r == "SKIP": skip += 1
        else: fail += 1
    what = "tests" if log == sys.argv[1] else "tests under ASan+UBSan"
    print(f"{what}: {ok} passed, {fail} failed, {skip} skipped")
PY
exit $status

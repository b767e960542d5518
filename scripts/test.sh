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

# The sanitizer pass: the tests once more from a build with gcc's
# AddressSanitizer and UndefinedBehaviorSanitizer in a second build dir
# (build-asan; warnings stay warnings there: the instrumentation makes gcc
# see impossible paths). HP_TEST_ASAN chooses what runs:
#   ci   the default under CI=true: the unit tests and the integration tests
#        of the engine, the filesystem and the store ($ASAN_CI_TESTS), a
#        bounded pass (HACKING.md: what it covers, leaves out, and costs);
#   all  (or 1) the whole suite, with the arguments given;
#   0    the default otherwise: no sanitizer pass.
# Timeouts are doubled there (the instrumented programs are slower).
# The fuzz targets run under ASan and UBSan in the main pass already
# (test 'fuzz', a clang build of its own), so neither selection repeats them.
ASAN_CI_TESTS="store engine engine-bad engine-active fs fs-users fs-states hostile unwind"
asan=${HP_TEST_ASAN:-0}
[ "${CI:-}" = true ] && asan=${HP_TEST_ASAN:-ci}
[ "$asan" = 1 ] && asan=all
ASAN_BUILD=${HP_ASAN_BUILDDIR:-build-asan}
asan_logs=""
if [ "$asan" = ci ] || [ "$asan" = all ]; then
	t0=$(date +%s)
	if [ ! -f "$ASAN_BUILD/build.ninja" ]; then
		meson setup "$ASAN_BUILD" -Db_sanitize=address,undefined -Db_lundef=false \
			-Dtest_hooks="${HP_TEST_HOOKS:-true}" >/dev/null
	fi
	meson compile -C "$ASAN_BUILD" >"$ASAN_BUILD/compile.log" 2>&1 || {
		cat "$ASAN_BUILD/compile.log" >&2
		echo "test: the ASan build failed (log: $ASAN_BUILD/compile.log)" >&2
		exit 1
	}
	t1=$(date +%s)
	if [ "$asan" = all ]; then
		meson test -C "$ASAN_BUILD" --no-rebuild --print-errorlogs --timeout-multiplier 2 --num-processes 2 \
			--no-suite fuzz "$@" || status=$?
		asan_logs="$ASAN_BUILD/meson-logs/testlog.json"
	else
		meson test -C "$ASAN_BUILD" --no-rebuild --print-errorlogs --timeout-multiplier 2 --num-processes 2 \
			--suite unit --logbase asan-unit || status=$?
		# shellcheck disable=SC2086 # test names are plain words
		meson test -C "$ASAN_BUILD" --no-rebuild --print-errorlogs --timeout-multiplier 2 \
			--logbase asan-integration $ASAN_CI_TESTS || status=$?
		asan_logs="$ASAN_BUILD/meson-logs/asan-unit.json $ASAN_BUILD/meson-logs/asan-integration.json"
	fi
	echo "test: sanitizer pass ($asan): build $((t1 - t0)) s, tests $(($(date +%s) - t1)) s"
fi

# meson's own summary is "Ok: N ... Fail: N"; also say it plainly, the
# total last.
logs="$BUILD/meson-logs/testlog.json"
# shellcheck disable=SC2086
python3 - $logs $asan_logs <<'PY' || true
import json, sys
total = [0, 0, 0]
for i, log in enumerate(sys.argv[1:]):
    ok = fail = skip = 0
    for line in open(log):
        r = json.loads(line).get("result")
        if r in ("OK", "EXPECTEDFAIL"): ok += 1
        elif r == "SKIP": skip += 1
        else: fail += 1
    total = [total[0] + ok, total[1] + fail, total[2] + skip]
    what = "suite" if i == 0 else "sanitizers"
    print(f"{what}: {ok} passed, {fail} failed, {skip} skipped")
print(f"tests: {total[0]} passed, {total[1]} failed, {total[2]} skipped")
PY
exit $status

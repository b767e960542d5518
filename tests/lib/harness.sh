# shellcheck shell=bash
# Integration-test harness: source it, then use ht_* helpers. Everything a
# test starts or mounts is recorded and torn down on exit, on failure and on
# signals: only the PIDs the test started are killed (by PID, never by
# name), only the mounts it made are unmounted, its temp dir is removed.
#
#   . "$HP_TEST_LIB/harness.sh"
#   ht_begin "store import"          # makes $HT_TMP
#   ht_spawn ./target --flag; pid=$HT_LAST_PID   # recorded background process
#   ht_mount_fs "$HT_TMP/mnt" ...     # hotpatchfs mount, recorded
#   ht_expect_fail "no such set" ENOENT 'hp show: .*nope' cmd...   # must fail so
#   ht_end                            # prints the summary, exit status

set -u

HT_PIDS=()
HT_MOUNTS=()
HT_PASS=0
HT_FAIL=0
HT_NAME=${HT_NAME:-test}
HT_TMP=""

HP_BUILD_ROOT=${HP_BUILD_ROOT:?run through meson test (HP_BUILD_ROOT unset)}
HP_SOURCE_ROOT=${HP_SOURCE_ROOT:?run through meson test}
HP_BIN=${HP_BIN:-$HP_BUILD_ROOT/cli/hp}
HP_FS_BIN=${HP_FS_BIN:-$HP_BUILD_ROOT/fs/hotpatchfs}

ht_log() { printf '# %s\n' "$*" >&2; }

# The build's test hooks (meson option test_hooks: HP_ENGINE_TEST_*,
# HP_SAFETY_MAPS_TEXT, failure points) are compiled only into test builds.
# ht_have_test_hooks: true when they are; ht_need_test_hooks: skip the whole
# test (meson's exit status 77) with the reason when they are not.
ht_have_test_hooks() { [ "${HP_TEST_HOOKS:-false}" = true ]; }
ht_need_test_hooks() {
	ht_have_test_hooks && return 0
	printf '# skipped: %s needs a build with -Dtest_hooks=true\n' "${HT_NAME:-this test}" >&2
	exit 77
}

ht_cleanup() {
	local status=$?
	local pid m
	for m in "${HT_MOUNTS[@]}"; do
		if mountpoint -q "$m" 2>/dev/null || grep -qs " $m fuse" /proc/mounts; then
			fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
		fi
	done
	for pid in "${HT_PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null || true
	done
	for pid in "${HT_PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
		# perf's map the engine wrote for a process of ours that died patched
		grep -qs '\[hotpatch ' "/tmp/perf-$pid.map" && rm -f "/tmp/perf-$pid.map"
	done
	# A mount point hotpatchfs sealed (chattr +i) cannot be removed before.
	for m in "${HT_MOUNTS[@]}"; do
		[ -d "$m" ] && chattr -i "$m" 2>/dev/null
	done
	if [ -n "$HT_TMP" ] && [ -d "$HT_TMP" ]; then
		rm -rf "$HT_TMP"
	fi
	return $status
}

ht_begin() {
	HT_NAME=$1
	HT_TMP=$(mktemp -d "/tmp/hp-it-XXXXXX")
	trap ht_cleanup EXIT
	trap 'exit 130' INT TERM
}

# Start a command in the background and record its PID in HT_LAST_PID (not
# through $(...): a subshell's records would be lost). Its output goes to
# $HT_TMP/spawn.<n>.out (HT_LAST_OUT).
HT_LAST_PID=""
HT_LAST_OUT=""
ht_spawn() {
	HT_LAST_OUT="$HT_TMP/spawn.${#HT_PIDS[@]}.out"
	"$@" >"$HT_LAST_OUT" 2>&1 &
	HT_LAST_PID=$!
	HT_PIDS+=("$HT_LAST_PID")
}

# Record a PID started some other way (e.g. a daemon's own fork).
ht_track_pid() { HT_PIDS+=("$1"); }
ht_track_mount() { HT_MOUNTS+=("$1"); }

# Wait until a command succeeds, at most $1 seconds.
ht_wait_for() {
	local limit=$1; shift
	local i=0
	while ! "$@" >/dev/null 2>&1; do
		i=$((i + 1))
		[ "$i" -ge $((limit * 20)) ] && return 1
		sleep 0.05
	done
}

# Wait for a child the test started to exit, at most $2 seconds (default
# 10): a daemon that hangs must not hang the test. Returns the child's exit
# status, or that of the SIGKILL it gets when the time is up.
ht_wait_exit() {
	local pid=$1 limit=${2:-10} i=0 state
	while kill -0 "$pid" 2>/dev/null; do
		state=$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null || echo X)
		[ "$state" = Z ] && break
		i=$((i + 1))
		if [ "$i" -ge $((limit * 20)) ]; then
			ht_log "pid $pid still running after ${limit}s: killing it"
			kill -KILL "$pid" 2>/dev/null
			break
		fi
		sleep 0.05
	done
	wait "$pid"
}

ht_ok() { HT_PASS=$((HT_PASS + 1)); printf 'ok %d - %s\n' $((HT_PASS + HT_FAIL)) "$*"; }
ht_not_ok() { HT_FAIL=$((HT_FAIL + 1)); printf 'not ok %d - %s\n' $((HT_PASS + HT_FAIL)) "$*"; }

# ht_check DESCRIPTION CMD...: the command must succeed.
ht_check() {
	local desc=$1; shift
	if "$@" >"$HT_TMP/last.out" 2>&1; then
		ht_ok "$desc"
	else
		ht_not_ok "$desc"
		sed 's/^/#   /' "$HT_TMP/last.out" >&2
	fi
}

# ht_expect_fail DESCRIPTION ERRNO|STATUS MESSAGE CMD...: the command must
# fail, and fail for the reason expected, so that a crash elsewhere cannot
# pass for the refusal under test (a dead mount answers every request with
# ENOTCONN):
#  - ERRNO (ENOENT, EACCES...): it exits non-zero and its output holds that
#    errno's text ("No such file or directory"), as the tools print it;
#  - STATUS (a number): it exits with exactly that status;
#  - MESSAGE: an extended regular expression its output (stdout and stderr)
#    must match; '' when it must print nothing (a predicate: test, grep -q).
# Output showing ENOTCONN fails the check unless ENOTCONN is what is expected.
ht_expect_fail() {
	local desc=$1 want=$2 msg=$3 rc=0 text why=""
	shift 3
	"$@" >"$HT_TMP/last.out" 2>&1 || rc=$?
	text=$(cat "$HT_TMP/last.out")
	if [ "$rc" -eq 0 ]; then
		why="unexpectedly succeeded"
	elif [[ $want =~ ^[0-9]+$ ]]; then
		[ "$rc" -eq "$want" ] || why="exit status $rc, not $want"
	elif [[ $want =~ ^E[A-Z0-9]+$ ]]; then
		local errtext
		errtext=$(python3 -c 'import errno, os, sys; print(os.strerror(getattr(errno, sys.argv[1])))' "$want") ||
			errtext="(unknown errno $want)"
		[[ $text == *"$errtext"* ]] || why="no '$errtext' ($want) in its output"
	else
		why="ht_expect_fail: '$want' is neither an errno name nor an exit status"
	fi
	if [ -z "$why" ] && [ "$want" != ENOTCONN ] && [[ $text == *"Transport endpoint is not connected"* ]]; then
		why="the mount is dead (ENOTCONN)"
	fi
	if [ -z "$why" ]; then
		if [ -z "$msg" ]; then
			[ -z "$text" ] || why="printed something, expected nothing"
		elif ! printf '%s\n' "$text" | grep -Eq -- "$msg"; then
			why="output does not match '$msg'"
		fi
	fi
	if [ -z "$why" ]; then
		ht_ok "$desc"
	else
		ht_not_ok "$desc ($why)"
		sed 's/^/#   /' "$HT_TMP/last.out" >&2
	fi
}

# ht_eq DESCRIPTION EXPECTED ACTUAL
ht_eq() {
	if [ "$2" = "$3" ]; then
		ht_ok "$1"
	else
		ht_not_ok "$1"
		printf '#   expected: %s\n#   actual:   %s\n' "$2" "$3" >&2
	fi
}

# ht_match DESCRIPTION REGEX TEXT
ht_match() {
	if printf '%s' "$3" | grep -Eq -- "$2"; then
		ht_ok "$1"
	else
		ht_not_ok "$1"
		printf '#   pattern: %s\n#   text:    %s\n' "$2" "$3" >&2
	fi
}

ht_end() {
	printf '1..%d\n' $((HT_PASS + HT_FAIL))
	printf '# %s: %d passed, %d failed\n' "$HT_NAME" "$HT_PASS" "$HT_FAIL"
	[ "$HT_FAIL" -eq 0 ]
}

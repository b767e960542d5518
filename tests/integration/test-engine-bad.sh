#!/bin/bash
# Bad input to the engine: each case gets its errno and a one-line message,
# and the target is untouched (same maps, same code, same behaviour). Also
# concurrency: another tracer (EBUSY), two threads at once (serialised).
. "$HP_TEST_LIB/harness.sh"
. "$(dirname "$0")/test-engine-lib.sh"
ht_begin "engine-bad"

# expect_error DESC ERRNO_NAME ERRNO_NUMBER PATTERN CMD...
expect_error() {
	local desc=$1 name=$2 num=$3 pat=$4 err rc
	shift 4
	err=$("$@" 2>&1 >/dev/null)
	rc=$?
	ht_eq "$desc: exit status $name" "$num" "$rc"
	ht_match "$desc: one line naming the cause" "^engine-driver: $name: $pat" "$err"
	ht_eq "$desc: exactly one line" 1 "$(printf '%s\n' "$err" | wc -l)"
}

# bad_set NAME SED-EXPR: a copy of the good set with its manifest edited
bad_set() {
	rm -rf "$HT_TMP/$1"
	cp -r "$good" "$HT_TMP/$1"
	sed -i "$2" "$HT_TMP/$1/manifest"
}

untouched() {
	ht_eq "$1: maps untouched" "$maps0" "$(et_maps)"
	ht_eq "$1: code untouched" "$text0" "$(et_driver textsum "$ET_PID")"
	ht_eq "$1: behaviour untouched" "14 107" "$(et_query 7)"
}

for v in pie lib; do
	et_start "$v"
	good=$HT_TMP/good-$v
	ht_check "$v: make a good set" et_set "$v" patch-a 2026-02 "$good"
	et_query 7 >/dev/null
	maps0=$(et_maps)
	text0=$(et_driver textsum "$ET_PID")

	bad_set wrong-bid 's/^build-id .*/build-id 0123456789abcdef0123456789abcdef01234567/'
	expect_error "$v: wrong build-id" ENOEXEC 8 \
		"apply $ET_PID: process $ET_PID does not map .* with build-id 0123456789abcdef" \
		et_driver apply "$ET_PID" "$HT_TMP/wrong-bid"
	untouched "$v: wrong build-id"

	bad_set far-offset 's/^func compute 0x[0-9a-f]*/func compute 0x7000000/'
	expect_error "$v: offset outside the object" ENOEXEC 8 \
		"apply $ET_PID: function compute at offset 0x7000000 .* is outside the code of " \
		et_driver apply "$ET_PID" "$HT_TMP/far-offset"
	untouched "$v: offset outside the object"

	bad_set huge-size 's/^\(func compute 0x[0-9a-f]*\) 0x[0-9a-f]*/\1 0x1000000/'
	expect_error "$v: size beyond the code" ENOEXEC 8 \
		"apply $ET_PID: function compute .* size 0x1000000 is outside the code of " \
		et_driver apply "$ET_PID" "$HT_TMP/huge-size"
	untouched "$v: size beyond the code"

	if [ "$v" = lib ]; then
		# exported from the library: its dynamic symbol says the true size
		bad_set wrong-size 's/^\(func compute 0x[0-9a-f]*\) 0x[0-9a-f]*/\1 0x20/'
		expect_error "$v: size mismatch" ENOEXEC 8 \
			"apply $ET_PID: function compute: offset 0x[0-9a-f]+ size 0x20 disagree with .*libenginetarget.so" \
			et_driver apply "$ET_PID" "$HT_TMP/wrong-size"
		untouched "$v: size mismatch"
	fi

	rm -rf "$HT_TMP/garbage"
	cp -r "$good" "$HT_TMP/garbage"
	head -c 4096 /dev/urandom >"$HT_TMP/garbage/patch.so"
	expect_error "$v: garbage patch.so" ENOEXEC 8 "apply $ET_PID: patch object: not an ELF file" \
		et_driver apply "$ET_PID" "$HT_TMP/garbage"
	untouched "$v: garbage patch.so"

	# an ELF object that is not a patch: the target program itself
	cp "$(et_target_file pie)" "$HT_TMP/garbage/patch.so"
	expect_error "$v: an executable as patch.so" ENOEXEC 8 "apply $ET_PID: patch object: " \
		et_driver apply "$ET_PID" "$HT_TMP/garbage"
	untouched "$v: an executable as patch.so"

	# another tracer holds the process (a debugger, a second hp)
	ht_spawn "$ENGINE_DRIVER" hold "$ET_PID" 30
	holder=$HT_LAST_PID
	ht_wait_for 5 grep -q '^held' "$HT_LAST_OUT"
	expect_error "$v: traced by another process" EBUSY 16 \
		"apply $ET_PID: process $ET_PID: thread $ET_PID is already traced by process $holder" \
		et_driver apply "$ET_PID" "$good"
	kill "$holder"
	wait "$holder" 2>/dev/null
	untouched "$v: traced by another process"

	# two threads of one process at once: they serialise
	out=$(et_driver race "$ET_PID" "$good" 2>&1)
	ht_eq "$v: two concurrent applies: one changes, one finds it done" \
		"racer changed=0 racer changed=1" \
		"$(printf '%s\n' "$out" | awk '{ print $1, $2 }' | sort | tr '\n' ' ' | sed 's/ $//')"
	ht_match "$v: then reverted" '^reverted changed=1 ' "$(et_driver revert "$ET_PID" 2>&1)"
	untouched "$v: after the race and revert"

	ht_check "$v: no EINTR seen, still running" et_clean
	kill "$ET_PID"
done

# A thread in uninterruptible sleep (a vfork parent: state D) does not stop:
# the stop gives up within the budget, changes nothing. Found in state D
# while the stop waits for it ("found"), every other thread is let go at
# once and it is waited for alone; with HP_ENGINE_TEST_SEIZE_D=1 the engine
# reads no thread's state, as if it had entered D unseen: it never stops,
# every other thread is held until the budget is spent, then let go, and
# the thread, seized but never stopped, is let go too (it goes on when its
# child exits, while the engine's caller still runs). "seized-sigchld": the same
# with a caller that has its own handler on the signal that bounds the
# engine's waits, so that the engine falls back to waiting for SIGCHLD.
# The two "seized" cases need the test hook, so a test build.
et_start pie --vforker
good=$HT_TMP/good-pie
maps0=$(et_maps)
text0=$(et_driver textsum "$ET_PID")
dstate() { grep -l ') D ' /proc/"$ET_PID"/task/*/stat 2>/dev/null | head -n1 | cut -d/ -f5; }
has_dstate() { [ -n "$(dstate)" ]; }
tag=900
hows="found seized seized-sigchld"
if ! ht_have_test_hooks; then
	ht_log "skipped: vfork seized, seized-sigchld (HP_ENGINE_TEST_SEIZE_D needs -Dtest_hooks=true)"
	hows=found
fi
for how in $hows; do
	tag=$((tag + 1))
	printf 'v 2500 %s\n' "$tag" >"$ET_FIFO"
	ht_check "vfork $how: a thread of the target is in state D" ht_wait_for 5 has_dstate
	dtid=$(dstate)
	if [ "$how" = seized ]; then
		HP_ENGINE_TEST_SEIZE_D=1 ht_spawn "$ENGINE_DRIVER" apply "$ET_PID" "$good" 300 20
	elif [ "$how" = seized-sigchld ]; then
		ENGINE_DRIVER_OWN_WAIT_SIG=1 HP_ENGINE_TEST_SEIZE_D=1 \
			ht_spawn "$ENGINE_DRIVER" apply "$ET_PID" "$good" 300 20
	else
		ht_spawn "$ENGINE_DRIVER" apply "$ET_PID" "$good" 300 20
	fi
	caller=$HT_LAST_PID
	ht_wait_for 10 grep -q '^staying' "$HT_LAST_OUT"
	err=$(grep '^engine-driver' "$HT_LAST_OUT")
	ht_match "vfork $how: EBUSY naming the thread, the bound and its state" \
		"^engine-driver: EBUSY: apply $ET_PID: thread $dtid did not stop within 300 ms \\(state D\\)\$" "$err"
	untouched "vfork $how: a thread that did not stop"
	ht_eq "vfork $how: the thread is still in vfork" D "$(cut -d' ' -f3 "/proc/$ET_PID/task/$dtid/stat")"
	ht_check "vfork $how: the thread goes on once its child exits" \
		ht_wait_for 10 grep -q "^$tag: vfork done" "$ET_OUT"
	ht_check "vfork $how: ...while the caller still runs" kill -0 "$caller"
	ht_eq "vfork $how: no tracer left on the thread" 0 \
		"$(awk '/^TracerPid:/ { print $2 }' "/proc/$ET_PID/task/$dtid/status")"
	kill "$caller"
done
# A thread found in state D while the stop waits for it, which leaves it
# within the budget: every other thread is let go while it is waited for
# alone, then the stop starts again and the apply succeeds, after the
# thread came back from vfork (it could not stop before).
tag=$((tag + 1))
printf 'v 2500 %s\n' "$tag" >"$ET_FIFO"
ht_check "vfork left within the budget: a thread of the target is in state D" \
	ht_wait_for 5 has_dstate
dtid=$(dstate)
out=$(et_driver apply "$ET_PID" "$good" 8000 2>&1)
ht_match "vfork left within the budget: applied" '^applied changed=1 ' "$out"
ht_check "vfork left within the budget: ...once the thread was back from vfork" \
	grep -q "^$tag: vfork done" "$ET_OUT"
ht_eq "vfork left within the budget: no tracer left on the thread" 0 \
	"$(awk '/^TracerPid:/ { print $2 }' "/proc/$ET_PID/task/$dtid/status")"
ht_match "vfork left within the budget: reverted" '^reverted changed=1 ' \
	"$(et_driver revert "$ET_PID" 2>&1)"
untouched "vfork left within the budget: after the revert"
ht_match "vfork: then the apply succeeds" '^applied changed=1 ' "$(et_driver apply "$ET_PID" "$good" 2>&1)"
out=$(ENGINE_DRIVER_OWN_WAIT_SIG=1 et_driver revert "$ET_PID" 2>&1)
ht_match "waits on SIGCHLD (the caller owns the engine's signal): revert" '^reverted ' "$out"
out=$(ENGINE_DRIVER_OWN_WAIT_SIG=1 et_driver apply "$ET_PID" "$good" 2>&1)
ht_eq "waits on SIGCHLD: apply, and the caller's handler never ran" \
	"applied changed=1" "$(printf '%s\n' "$out" | cut -d' ' -f1-2)"
ht_check "vfork: no EINTR seen, still running" et_clean
kill "$ET_PID"

# a PID that does not exist: one that exited and was reaped
sh -c 'exit 0' &
gone=$!
wait "$gone"
expect_error "exited process" ESRCH 3 "apply $gone: process $gone: no such process" \
	et_driver apply "$gone" "$good"
expect_error "exited process, revert" ESRCH 3 "revert $gone: process $gone: no such process" \
	et_driver revert "$gone"
expect_error "exited process, inspect" ESRCH 3 "inspect $gone: process $gone: no such process" \
	et_driver inspect "$gone"

# a zombie: a child that exits after its parent became sleep, which never reaps
ht_spawn sh -c 'sleep 0.3 & echo $!; exec sleep 30'
ht_wait_for 5 grep -q . "$HT_LAST_OUT"
zombie=$(head -n1 "$HT_LAST_OUT")
ht_check "the zombie is there" ht_wait_for 5 grep -q "^State:.*Z" "/proc/$zombie/status"
expect_error "zombie process" ESRCH 3 "apply $zombie: process $zombie has exited \\(zombie\\)" \
	et_driver apply "$zombie" "$good"

ht_end

#!/bin/bash
# The engine killed (SIGKILL) at chosen steps of an apply, held there by its
# test hook (HP_ENGINE_TEST_STALL): after the mmap (a remote call in flight in
# the sys thread, its registers ours), after the image is written, with every
# thread held before the switch, and right after the switch. The target goes
# on as if nothing happened: no crash, no EINTR (epoll_wait was rewound at
# its stop), and it is fully unpatched or fully patched; what the killed
# engine left (trampoline bytes in padding; before the switch, a region no
# jump reaches) goes with the next operations: maps and code end as before.
# Last, held at map in a process where only main sleeps: the thread held is
# not the leader (docs/engine.md, EINTR).
. "$HP_TEST_LIB/harness.sh"
. "$(dirname "$0")/test-engine-lib.sh"
ht_begin "engine-crash"
ht_need_test_hooks

et_start pie --busy 2
set_a=$HT_TMP/a
ht_check "make the set" et_set pie patch-a 2026-02 "$set_a"
et_query 7 >/dev/null
maps0=$(et_maps)
text0=$(et_driver textsum "$ET_PID")

# kill_at STEP: start an apply that stalls at STEP, kill it there
kill_at() {
	local mark=$HT_TMP/stall.$1
	rm -f "$mark"
	HP_ENGINE_TEST_STALL=$1 HP_ENGINE_TEST_STALL_FILE=$mark \
		"$ENGINE_DRIVER" apply "$ET_PID" "$set_a" >/dev/null 2>&1 &
	local drv=$!
	ht_track_pid "$drv"
	ht_wait_for 10 test -e "$mark" || ht_log "$1: the stall never came"
	kill -KILL "$drv"
	wait "$drv" 2>/dev/null
}

for step in map relocate stop; do
	kill_at "$step"
	ht_check "$step: target running, no EINTR" et_clean
	ht_eq "$step: original behaviour" "14 107" "$(et_query 7)"
	ht_eq "$step: nothing applied" "" "$(et_driver inspect "$ET_PID" | grep '^applied')"
	# what it left (the trampoline's bytes; before the switch, a region no
	# jump reaches) goes with the next operations
	ht_match "$step: apply after it" '^applied changed=1 ' \
		"$(et_driver apply "$ET_PID" "$set_a" 2>&1)"
	ht_match "$step: revert" '^reverted changed=1 ' "$(et_driver revert "$ET_PID" 2>&1)"
	ht_eq "$step: maps as before" "$maps0" "$(et_maps)"
	ht_eq "$step: code as before" "$text0" "$(et_driver textsum "$ET_PID")"
done

kill_at switch
ht_check "switch: target running, no EINTR" et_clean
ht_eq "switch: patched behaviour" "100 207" "$(et_query 7)"
ht_match "switch: inspect shows it applied" '^applied .* 2026.01/2026-02/fix ' \
	"$(et_driver inspect "$ET_PID")"
ht_match "switch: revert" '^reverted changed=1 ' "$(et_driver revert "$ET_PID" 2>&1)"
ht_eq "switch: original behaviour" "14 107" "$(et_query 7)"
ht_eq "switch: maps as before" "$maps0" "$(et_maps)"
ht_eq "switch: code as before" "$text0" "$(et_driver textsum "$ET_PID")"
ht_check "no EINTR seen, still running" et_clean

# The sys thread, held alone through the load, is never the leader while
# other threads run untraced: a signal the program ignores (SIGWINCH) sent
# to the process is queued while the leader is traced and wakes another
# thread with EINTR. Here only main sleeps (pause), the others run inside
# read(2), as every thread does right after a release on a loaded machine.
et_start pie --kbusy 2
mark=$HT_TMP/stall.kbusy
HP_ENGINE_TEST_STALL=map HP_ENGINE_TEST_STALL_FILE=$mark \
	"$ENGINE_DRIVER" apply "$ET_PID" "$set_a" >/dev/null 2>&1 &
drv=$!
ht_track_pid "$drv"
ht_wait_for 10 test -e "$mark" || ht_log "kbusy: the stall never came"
traced=$(grep -l '^TracerPid:[[:space:]]*[1-9]' /proc/"$ET_PID"/task/*/status 2>/dev/null |
	sed 's|.*/task/\([0-9]*\)/status|\1|' | tr '\n' ' ')
kill -KILL "$drv"
wait "$drv" 2>/dev/null
ht_match "held at map, only main asleep: one thread traced (the sys thread)" "^[0-9]+ $" "$traced"
ht_expect_fail "held at map: the leader is not the thread traced" 1 '' test "$traced" = "$ET_PID "
ht_check "kbusy: target running, no EINTR" et_clean

# With the sets chosen by the caller (apply_patch_choose, as ctl does), the
# process is read before anything is stopped. One that execs between that
# reading and the attach (here its own program again: the same PID, the
# same start time, a new memory) is refused, never patched from what was
# read of the memory it had.
et_start pie --busy 1
out=$HT_TMP/choose.err
mark=$HT_TMP/stall.choose
HP_ENGINE_TEST_STALL=choose HP_ENGINE_TEST_STALL_MS=3000 HP_ENGINE_TEST_STALL_FILE=$mark \
	"$ENGINE_DRIVER" apply-choose "$ET_PID" "$set_a" >/dev/null 2>"$out" &
drv=$!
ht_track_pid "$drv"
ht_wait_for 10 test -e "$mark" || ht_log "choose: the stall never came"
ht_eq "exec'd while the chooser's reading waits" "exec" "$(et_ask X)"
ht_wait_for 10 sh -c "[ \$(grep -c '^ready' '$ET_OUT') -ge 2 ]" || ht_log "choose: no second ready"
wait "$drv"
rc=$?
ht_eq "exec between the reading and the attach: ESRCH" 3 "$rc"
ht_eq "... with its reason" \
	"engine-driver: ESRCH: apply $ET_PID: process $ET_PID: its program was replaced (exec) while it was read" \
	"$(cat "$out")"
ht_eq "... nothing applied to the new program" "" "$(et_driver inspect "$ET_PID" | grep '^applied')"
ht_eq "... which runs unpatched" "14 107" "$(et_query 7)"
ht_match "the same apply once the process holds still" '^applied changed=1 ' \
	"$(et_driver apply-choose "$ET_PID" "$set_a" 2>&1)"
ht_eq "... and it is patched" "100 207" "$(et_query 7)"
ht_check "exec'd target: running, no EINTR" et_clean

ht_end

#!/bin/bash
# A function a thread never leaves (spin): apply fails with EBUSY after the
# retry budget, naming the function and the thread, and the process is
# untouched; flagged active-ok it is applied (the running activation stays
# old, new calls take the new code) and reverted. Active-ok is refused for a
# function whose own loop branches into the bytes the jump overwrites.
. "$HP_TEST_LIB/harness.sh"
. "$(dirname "$0")/test-engine-lib.sh"
ht_begin "engine-active"

et_start pie --spin
strict=$HT_TMP/strict
loose=$HT_TMP/loose
ht_check "make the set" et_set pie patch-spin 2026-02 "$strict"
ht_check "make the active-ok set" et_set pie patch-spin 2026-02 "$loose" --active-ok spin
et_query 7 >/dev/null
maps0=$(et_maps)
text0=$(et_driver textsum "$ET_PID")

# The budget (1 s) is also how long an injected call may take: under a load
# of hundreds, 300 ms was seen to pass before the sys thread ran its mmap,
# which refused the apply for that reason instead (EBUSY, "remote system
# call 9 ... did not finish") and left the trampoline in the padding.
err=$(et_driver apply "$ET_PID" "$strict" 1000 2>&1 >/dev/null)
rc=$?
ht_eq "active function: EBUSY" 16 "$rc"
ht_match "active function: one line naming function and thread" \
	"^engine-driver: EBUSY: apply $ET_PID: after 1000 ms \\([0-9]+ checks\\): function spin active in thread [0-9]+( \(.*\))?$" \
	"$err"
ht_eq "active function: one line" 1 "$(printf '%s\n' "$err" | wc -l)"
ht_eq "active function: maps untouched" "$maps0" "$(et_maps)"
ht_eq "active function: code untouched" "$text0" "$(et_driver textsum "$ET_PID")"
ht_eq "active function: nothing applied" "" "$(et_driver inspect "$ET_PID" | grep '^applied')"
s1=$(et_spin)
sleep 0.1
s2=$(et_spin)
ht_check "the spinning thread still runs" test "$s2" -gt "$s1"

out=$(et_driver apply "$ET_PID" "$loose" 2>&1)
ht_match "active-ok: applied at once" '^applied changed=1 .* tries=1 ' "$out"
ht_log "$out"
ht_match "active-ok: inspect shows it" '^applied .* 2026.01/2026-02/fix 2026-02 funcs=1 ' \
	"$(et_driver inspect "$ET_PID")"
s1=$(et_spin)
sleep 0.1
s2=$(et_spin)
ht_check "the running activation goes on" test "$s2" -gt "$s1"
out=$(et_driver revert "$ET_PID" 2>&1)
ht_match "active-ok: reverted" '^reverted changed=1 ' "$out"
ht_eq "active-ok: maps as before" "$maps0" "$(et_maps)"
ht_eq "active-ok: code as before" "$text0" "$(et_driver textsum "$ET_PID")"
ht_check "no EINTR seen, still running" et_clean
kill "$ET_PID"

# active-ok is refused for a function whose loop branches into the bytes the
# jump overwrites: its running activation would land inside the jump
et_start pie --spin-short
short=$HT_TMP/short
ht_check "make the active-ok set of spin_short" \
	et_set pie patch-spin-short 2026-02 "$short" --active-ok spin_short
maps0=$(et_maps)
text0=$(et_driver textsum "$ET_PID")
err=$(et_driver apply "$ET_PID" "$short" 2>&1 >/dev/null)
ht_eq "loop head in the first bytes: ENOEXEC" 8 "$?"
ht_match "loop head in the first bytes: one line naming it" \
	"^engine-driver: ENOEXEC: apply $ET_PID: function spin_short \\(active-ok\\) branches into its first 5 bytes \\(from offset 0x9\\)" \
	"$err"
ht_eq "loop head in the first bytes: maps untouched" "$maps0" "$(et_maps)"
ht_eq "loop head in the first bytes: code untouched" "$text0" "$(et_driver textsum "$ET_PID")"
ht_check "still running" et_clean
kill "$ET_PID"

# The same with many threads: each thread's safety check then runs on a
# second thread of the engine while the others are being stopped
# (apply/checker.c, from 32 threads on); the first busy thread's message
# still comes back, and the process is still untouched.
et_start pie --spin --busy 40
ht_check "many threads: the target has more than 40" \
	test "$(ls "/proc/$ET_PID/task" | wc -l)" -gt 40
et_query 7 >/dev/null
maps0=$(et_maps)
text0=$(et_driver textsum "$ET_PID")
err=$(et_driver apply "$ET_PID" "$strict" 1000 2>&1 >/dev/null)
ht_eq "many threads, active function: EBUSY" 16 "$?"
ht_match "many threads, active function: one line naming function and thread" \
	"^engine-driver: EBUSY: apply $ET_PID: after 1000 ms \\([0-9]+ checks\\): function spin active in thread [0-9]+( \(.*\))?$" \
	"$err"
ht_eq "many threads, active function: maps untouched" "$maps0" "$(et_maps)"
ht_eq "many threads, active function: code untouched" "$text0" "$(et_driver textsum "$ET_PID")"
out=$(et_driver apply "$ET_PID" "$loose" 2>&1)
ht_match "many threads, active-ok: applied at once" '^applied changed=1 .* tries=1 ' "$out"
ht_match "many threads, active-ok: inspect shows it" '^applied .* 2026.01/2026-02/fix 2026-02 funcs=1 ' \
	"$(et_driver inspect "$ET_PID")"
out=$(et_driver revert "$ET_PID" 2>&1)
ht_match "many threads, active-ok: reverted" '^reverted changed=1 ' "$out"
ht_eq "many threads, active-ok: code as before" "$text0" "$(et_driver textsum "$ET_PID")"
ht_check "many threads: no EINTR seen, still running" et_clean

ht_end

#!/bin/bash
# 1000 apply/revert cycles on a target with 16 busy threads calling the
# patched functions (and checking every result) besides the threads parked
# in read, nanosleep, futex, epoll_wait and pause: it never crashes, never
# sees EINTR or a bad value. Prints the count and the pauses.
. "$HP_TEST_LIB/harness.sh"
. "$(dirname "$0")/test-engine-lib.sh"
ht_begin "engine-stress"

cycles=${HP_ENGINE_CYCLES:-1000}
et_start pie --busy 16
set_a=$HT_TMP/a
ht_check "make the set" et_set pie patch-a 2026-02 "$set_a"
# at most 45 s (the engine's tests stay near 1.5 min): on a machine loaded
# by other builds each cycle can take 100 ms; then fewer cycles run and the
# line says so (still at least 100)
out=$(et_driver cycle "$ET_PID" "$set_a" "$cycles" 45 2>&1)
ht_log "$out"
done_cycles=$(printf '%s\n' "$out" | sed -n 's/^cycles=\([0-9]*\) threads=21 .*/\1/p')
if printf '%s\n' "$out" | grep -q '(time limit)$'; then
	ht_check "apply/revert cycles on 21 threads (time limit: $done_cycles of $cycles)" \
		test "${done_cycles:-0}" -ge 100
else
	ht_match "$cycles apply/revert cycles on 21 threads" "^cycles=$cycles threads=21 " "$out"
fi
ht_eq "original behaviour at the end" "14 107" "$(et_query 7)"
ht_eq "nothing applied at the end" "" "$(et_driver inspect "$ET_PID" | grep '^applied')"
ht_check "no EINTR, no bad value, still running" et_clean
grep -E '^(EINTR|BAD)' "$ET_OUT" | sed 's/^/# target: /' >&2
kill "$ET_PID"

# threads born and gone during the stops
churn=${HP_ENGINE_CHURN_CYCLES:-100}
et_start pie --busy 2 --churn
out=$(et_driver cycle "$ET_PID" "$set_a" "$churn" 15 2>&1)
ht_match "$churn cycles while threads come and go" "^cycles=[0-9]+ " "$out"
ht_log "$out"
ht_eq "churn: original behaviour at the end" "14 107" "$(et_query 7)"
ht_check "churn: no EINTR, no bad value, still running" et_clean

ht_end

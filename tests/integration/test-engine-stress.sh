#!/bin/bash
# 200 apply/revert cycles on a target with 16 busy threads calling the
# patched functions (and checking every result) besides the threads parked
# in read, nanosleep, futex, epoll_wait, epoll_pwait, ppoll, pselect, semop,
# sigtimedwait, sigwaitinfo and pause, while another process sends it
# SIGUSR1 every 0.5 ms (blocked in every thread, taken by the sigwaitinfo
# thread: a blocked pending signal is no reason for an EINTR) and SIGWINCH
# every 2 ms (ignored by the program: queued only while the engine traces
# the leader, it must never wake an untraced thread: docs/engine.md, EINTR):
# it never crashes, never sees EINTR or a bad value. Prints the count and
# the pauses. An apply or revert refused EBUSY (a patched function running
# for the whole budget: a safe refusal, which a heavily loaded machine can
# cause) is tried again up to 3 times and counted (busy_retries), as an
# admin's retries do. (The soak, long mode, adds SIGCONT.)
. "$HP_TEST_LIB/harness.sh"
. "$(dirname "$0")/test-engine-lib.sh"
ht_begin "engine-stress"

cycles=${HP_ENGINE_CYCLES:-200}
et_start pie --busy 16 --signals --eintr-ok
set_a=$HT_TMP/a
ht_check "make the set" et_set pie patch-a 2026-02 "$set_a"
ht_spawn "$ENGINE_DRIVER" signal "$ET_PID" "$(kill -l USR1)" 500
sender=$HT_LAST_PID
ht_spawn "$ENGINE_DRIVER" signal "$ET_PID" "$(kill -l WINCH)" 2000
winch=$HT_LAST_PID
# every cycle runs (10 s here idle, 45 s on a machine loaded by others)
out=$(et_driver cycle "$ET_PID" "$set_a" "$cycles" 2>&1)
ht_log "$out"
kill "$sender" "$winch"
ht_match "$cycles apply/revert cycles on 27 threads" "^cycles=$cycles threads=27 " "$out"
ht_eq "original behaviour at the end" "14 107" "$(et_query 7)"
ht_eq "nothing applied at the end" "" "$(et_driver inspect "$ET_PID" | grep '^applied')"
counts=$(et_ask e)
ht_log "target: $counts"
ht_match "SIGUSR1s taken by the sigwaitinfo thread meanwhile" "^eintr [0-9]+ sigusr1 [1-9][0-9]*$" "$counts"
ht_eq "no EINTR in any thread under SIGUSR1 every 0.5 ms and SIGWINCH every 2 ms" "0" "$(printf '%s\n' "$counts" | sed -n 's/^eintr \([0-9]*\) .*/\1/p')"
ht_check "no EINTR, no bad value, still running" et_clean
grep -E '^(EINTR|BAD)' "$ET_OUT" | sort | uniq -c | sed 's/^/# target: /' >&2
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

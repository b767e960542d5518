#!/bin/bash
# The engine killed (SIGKILL) at random points of apply and revert: the
# target keeps running and is either fully patched or fully unpatched, as
# inspect says; the next operations clean up what a killed one left (orphan
# regions), so the maps end as they began.
#
# Known limit, counted and printed, not failed: a kill while every thread
# is held (or while one is being interrupted) lets the kernel detach a
# thread parked in epoll_wait before we could rewind it, and it returns
# EINTR (docs/engine.md: the kernel does not restart epoll_wait). The target
# runs with --eintr-ok so that it reports and goes on.
. "$HP_TEST_LIB/harness.sh"
. "$(dirname "$0")/test-engine-lib.sh"
ht_begin "engine-kill"

rounds=${HP_ENGINE_KILL_ROUNDS:-40}
et_start pie --busy 2 --eintr-ok
set_a=$HT_TMP/a
ht_check "make the set" et_set pie patch-a 2026-02 "$set_a"
et_query 7 >/dev/null
maps0=$(et_maps)
bad=0
killed=0
for i in $(seq "$rounds"); do
	if et_driver inspect "$ET_PID" | grep -q '^applied'; then
		"$ENGINE_DRIVER" revert "$ET_PID" >/dev/null 2>&1 &
	else
		"$ENGINE_DRIVER" apply "$ET_PID" "$set_a" >/dev/null 2>&1 &
	fi
	drv=$!
	ht_track_pid "$drv"
	sleep "0.00$((RANDOM % 10))$((RANDOM % 10))"
	kill -KILL "$drv" 2>/dev/null
	wait "$drv" 2>/dev/null
	[ $? -eq 137 ] && killed=$((killed + 1))
	if ! kill -0 "$ET_PID" 2>/dev/null || grep -q '^BAD' "$ET_OUT"; then
		ht_not_ok "round $i: target died or computed a bad value"
		bad=1
		break
	fi
	want="14 107"
	et_driver inspect "$ET_PID" | grep -q '^applied' && want="100 207"
	got=$(et_query 7)
	if [ "$got" != "$want" ]; then
		ht_not_ok "round $i: inspect and behaviour disagree (want $want, got $got)"
		bad=1
	fi
done
ht_log "$rounds rounds, $killed killed mid-operation," \
	"$(grep -c '^EINTR' "$ET_OUT") EINTR reported (kills during the stop)"
[ "$bad" = 0 ] && ht_ok "$rounds kills: running, fully patched or fully unpatched"
ht_check "killed at least once mid-operation" test "$killed" -gt 0

# what the killed operations left behind goes with the next ones
et_driver inspect "$ET_PID" | grep -q '^applied' || et_driver apply "$ET_PID" "$set_a" >/dev/null
ht_match "revert after the kills" '^reverted changed=1 ' "$(et_driver revert "$ET_PID" 2>&1)"
ht_eq "original behaviour" "14 107" "$(et_query 7)"
ht_eq "maps as at the start (orphans unmapped)" "$maps0" "$(et_maps)"
eintr=$(grep -c '^EINTR' "$ET_OUT")
ht_eq "only epoll_wait ever saw EINTR" "$eintr" "$(grep -c '^EINTR epoll_wait$' "$ET_OUT")"
ht_check "still running, no bad value" sh -c "kill -0 $ET_PID && ! grep -q '^BAD' '$ET_OUT'"

ht_end

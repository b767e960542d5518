#!/bin/bash
# A worker loop under an active-ok set: the running activation keeps the
# old code, so the process is in-progress (the function and the thread
# named) until the loop returns, as the engine (apply_settle) and hp status
# and report say, each read checking again; then hotpatched, and the mark
# is gone from the region.
. "$HP_TEST_LIB/harness.sh"
. "$(dirname "$0")/test-engine-lib.sh"
ht_begin "engine-progress"

et_start pie --worker
work=$HT_TMP/work
ht_check "worker: make the active-ok set" et_set pie patch-worker 2026-02 "$work" --active-ok worker
export HP_STORE=$HT_TMP/store.git
ht_check "worker: a store" "$HP_BIN" store init --allow-unsigned
ht_check "worker: import the set" "$HP_BIN" import "$work.tar"
ht_match "worker: hp apply" "applied" "$("$HP_BIN" apply "$ET_PID" 2>&1)"
ht_match "worker: inspect marks the function old-live" '^applied .* funcs=1 .* switched=1 old_live=1$' \
	"$(et_driver inspect "$ET_PID")"
ht_match "worker: the engine names the function and the thread" \
	'^old_live=1 function worker in thread [0-9]+$' "$(et_driver settle "$ET_PID")"
st=$("$HP_BIN" status "$ET_PID" 2>&1)
ht_match "worker: hp status says in-progress" '^state: in-progress$' "$st"
ht_match "worker: with the function and its thread" \
	'^reason: old code still running: function worker in thread [0-9]+$' "$st"
ht_match "worker: hp report too" "pid=$ET_PID .*state=in-progress" "$("$HP_BIN" report 2>&1)"
ht_match "worker: still in-progress when read again" '^state: in-progress$' \
	"$("$HP_BIN" status "$ET_PID" 2>&1)"
ht_match "worker: the loop returns" '^worker done [0-9]+$' "$(et_ask w)"
st=$("$HP_BIN" status "$ET_PID" 2>&1)
ht_match "worker: read again once it left: hotpatched" '^state: hotpatched$' "$st"
ht_eq "worker: no reason left" "" "$(printf '%s\n' "$st" | grep '^reason')"
ht_match "worker: the mark is gone from the region" '^applied .* switched=1 old_live=0$' \
	"$(et_driver inspect "$ET_PID")"
ht_match "worker: revert" "reverted" "$("$HP_BIN" revert "$ET_PID" 2>&1)"
ht_check "worker: no EINTR seen, still running" et_clean

ht_end

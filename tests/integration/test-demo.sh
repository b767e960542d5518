#!/bin/bash
# README command 1's end-to-end run (tests/fixtures/demo.sh, which
# scripts/demo.sh calls after installing and building): it must keep
# working as the README shows it. The demo cleans up after itself (its own
# temp dir, mount and processes); here its exit status and the states and
# answers it prints are checked.
. "$HP_TEST_LIB/harness.sh"
ht_begin "demo"

out=$HT_TMP/demo.out
"$HP_SOURCE_ROOT/tests/fixtures/demo.sh" "$HP_BUILD_ROOT" >"$out" 2>&1
ht_eq "the demo exits 0" 0 "$?"
ht_match "before: the server accepts the long name" "40-byte name\\): accepted 40-byte name: VULNERABLE" \
	"$(sed -n '/^==> A running server/,/^==> Hot-swap/p' "$out")"
ht_match "applied: the long name is rejected" "rejected 40-byte name \\(limit 16\\): fixed" \
	"$(sed -n '/^==> Hot-swap/,/^==> Applying again/p' "$out")"
ht_match "applied: hotpatched" "state: hotpatched" "$(sed -n '/^==> Hot-swap/,/^==> Applying again/p' "$out")"
ht_match "reverted: not-up-to-date again" "state: not-up-to-date" \
	"$(sed -n '/^==> Revert/,/^==> The daemon/p' "$out")"
ht_match "the events name the apply and the revert" \
	"revert pid=[0-9]+ set=2026.01/2026-02/cve-2026-0001 result=ok" "$(cat "$out")"
ht_eq "nothing left mounted" "" "$(grep -s ' fuse.hotpatchfs ' /proc/mounts | grep hp-demo-)"
ht_end

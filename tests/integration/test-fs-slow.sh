#!/bin/bash
# A slow apply (the patched function stays busy until the test opens a
# gate, so the engine waits for safety) holds one request; every other file
# operation goes on meanwhile. Ordering, not timing: the reads are done while
# the apply is still running, because the gate is opened only after them,
# however loaded the machine is.
. "$HP_TEST_LIB/harness.sh"
ht_begin "fs-slow"
. "$HP_SOURCE_ROOT/tests/fixtures/demo/fs-setup.sh"
fs_need

T=$HT_TMP
ht_check "store with a trusted key" fs_store
ht_check "hp build" fs_build "$FS_DEMO_BIN/demo-server" 2026-02 cve-2026-0001 "$T/feb.tar.gz" \
	"$FS_DEMO_SRC/demo-fix.c"
ht_check "hp import" "$HP_BIN" import "$T/feb.tar.gz"
M=$T/mnt
# A safety budget of 120 s: the apply waits for the gate, not for a clock
# (the budget only bounds a test gone wrong).
ht_check "mount" fs_mount "$M" -o budget_ms=120000
fs_mounted "$M" || { ht_end; exit 1; }

gate=$T/gate
fs_server --gate "$gate" --interval 50
P=$FS_SRV
ht_check "the server's first request stays busy until the gate opens" \
	ht_wait_for 30 grep -q "request 1: working" "$FS_SRV_OUT"
ht_spawn sh -c "echo $P > '$M/apply'"
apply_job=$HT_LAST_PID
ht_check "the apply waits: in-progress" ht_wait_for 60 grep -q "state: in-progress" "$M/processes/$P/status"

# Everything else answers meanwhile. Read with shell builtins (no process
# to start), then look whether the apply is still running.
r_root=("$M"/*)
r_catalog=("$M"/catalog/2026.01/2026-02/cve-2026-0001/*)
r_manifest=$(<"$M/catalog/2026.01/2026-02/cve-2026-0001/manifest")
r_status=$(<"$M/status")
r_log=$(<"$M/log")
r_processes=("$M"/processes/*)
r_own=$(<"$M/processes/$P/status")
r_report=$(<"$M/report")
kill -0 "$apply_job" 2>/dev/null && still=yes || still=no
ht_eq "the reads were done while the apply was still running" yes "$still"
ht_eq "the request is still in handle_request (no reply yet)" "" \
	"$(grep "request 1 (" "$FS_SRV_OUT")"
ht_eq "root lists" 9 "${#r_root[@]}"
ht_eq "catalog lists" 3 "${#r_catalog[@]}"
ht_match "catalog reads" "cve-2026-0001" "$r_manifest"
ht_match "status reads" "store: $HP_STORE" "$r_status"
ht_eq "log reads (nothing finished yet)" "" "$r_log"
ht_match "processes lists" "/processes/$P$" "$(printf '%s\n' "${r_processes[@]}")"
ht_match "its own status answers, in-progress" "state: in-progress" "$r_own"
ht_match "the report answers, in-progress" "pid=$P comm=demo-server state=in-progress" "$r_report"

touch "$gate"
wait "$apply_job"
ht_eq "the slow apply succeeds once the gate opens" 0 "$?"
ht_match "then: hotpatched" "state: hotpatched" "$(cat "$M/processes/$P/status")"
ht_match "the log says it waited for safety" "apply pid=$P set=2026.01/2026-02/cve-2026-0001 result=ok" "$(cat "$M/log")"
ht_check "the server is patched" fs_wait_output "$FS_SRV_OUT" "fixed"

ht_end

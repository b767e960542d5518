#!/bin/bash
# A slow apply (the patched function stays busy ~0.6 s per call, so the
# engine waits for safety) holds one request; every other file operation
# goes on meanwhile. Ordering, not timing: the reads are done while the apply
# is still running (its state says in-progress before and after them).
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
ht_check "mount" fs_mount "$M"
fs_mounted "$M" || { ht_end; exit 1; }

fs_server --busy 600 --interval 50
P=$FS_SRV
ht_check "the server works 0.6 s per request" fs_wait_output "$FS_SRV_OUT" "request [0-9]+: working"
fs_wait_output "$FS_SRV_OUT" "request [0-9]+: working"
ht_spawn sh -c "echo $P > '$M/apply'"
apply_job=$HT_LAST_PID
ht_check "the apply waits: in-progress" ht_wait_for 5 grep -q "state: in-progress" "$M/processes/$P/status"

# Everything else answers meanwhile.
ht_check "catalog lists" ls "$M/catalog/2026.01/2026-02/cve-2026-0001"
ht_check "catalog reads" cat "$M/catalog/2026.01/2026-02/cve-2026-0001/patch.so"
ht_check "status reads" cat "$M/status"
ht_check "log reads" cat "$M/log"
ht_check "processes lists" ls "$M/processes"
ht_check "root lists" ls "$M"
ht_match "its own status answers, in-progress" "state: in-progress" "$(cat "$M/processes/$P/status")"
ht_check "... while the apply is still running" kill -0 "$apply_job"

wait "$apply_job"
ht_eq "the slow apply succeeds" 0 "$?"
ht_match "then: hotpatched" "state: hotpatched" "$(cat "$M/processes/$P/status")"
ht_check "the server is patched" fs_wait_output "$FS_SRV_OUT" "fixed"

ht_end

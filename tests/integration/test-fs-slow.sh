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
# Three request loops: hotpatchfs's own (loop.c) as it runs by default and
# with busy_poll=0, and libfuse's (taken with -o clone_fd).
slow_apply() {
	local how=$1
	shift
	local M=$T/mnt-$how P gate=$T/gate-$how apply_job still
	# A safety budget of 120 s: the apply waits for the gate, not for a clock
	# (the budget only bounds a test gone wrong).
	# a state directory per mount: the event log of the one before would be read back
	ht_check "$how: mount" fs_mount "$M" --state-dir "$T/state-$how" -o budget_ms=120000 "$@"
	fs_mounted "$M" || return 1

	fs_server --gate "$gate" --interval 50
	P=$FS_SRV
	ht_check "$how: the server's first request stays busy until the gate opens" \
		ht_wait_for 30 grep -q "request 1: working" "$FS_SRV_OUT"
	ht_spawn sh -c "echo $P > '$M/apply'"
	apply_job=$HT_LAST_PID
	ht_check "$how: the apply waits: in-progress" \
		ht_wait_for 60 grep -q "state: in-progress" "$M/processes/$P/status"

	# Everything else answers meanwhile. Read with shell builtins (no process
	# to start), then look whether the apply is still running.
	local r_root=("$M"/*)
	local r_catalog=("$M"/catalog/2026.01/2026-02/cve-2026-0001/*)
	local r_manifest r_status r_log r_processes r_own r_report
	r_manifest=$(<"$M/catalog/2026.01/2026-02/cve-2026-0001/manifest")
	r_status=$(<"$M/status")
	r_log=$(<"$M/events")
	r_processes=("$M"/processes/*)
	r_own=$(<"$M/processes/$P/status")
	r_report=$(<"$M/report")
	kill -0 "$apply_job" 2>/dev/null && still=yes || still=no
	ht_eq "$how: the reads were done while the apply was still running" yes "$still"
	ht_eq "$how: the request is still in handle_request (no reply yet)" "" \
		"$(grep "request 1 (" "$FS_SRV_OUT")"
	ht_eq "$how: root lists" 10 "${#r_root[@]}"
	ht_eq "$how: catalog lists" 3 "${#r_catalog[@]}"
	ht_match "$how: catalog reads" "cve-2026-0001" "$r_manifest"
	ht_match "$how: status reads" "store: $HP_STORE" "$r_status"
	ht_eq "$how: log reads (nothing finished yet)" "" "$r_log"
	ht_match "$how: processes lists" "/processes/$P$" "$(printf '%s\n' "${r_processes[@]}")"
	ht_match "$how: its own status answers, in-progress" "state: in-progress" "$r_own"
	ht_match "$how: the report answers, in-progress" \
		"pid=$P comm=demo-server state=in-progress" "$r_report"

	touch "$gate"
	wait "$apply_job"
	ht_eq "$how: the slow apply succeeds once the gate opens" 0 "$?"
	ht_match "$how: then: hotpatched" "state: hotpatched" "$(cat "$M/processes/$P/status")"
	ht_match "$how: the log says it waited for safety" \
		"apply pid=$P set=2026.01/2026-02/cve-2026-0001 result=ok" "$(cat "$M/events")"
	ht_check "$how: the server is patched" fs_wait_output "$FS_SRV_OUT" "fixed"
	kill "$P"
	ht_check "$how: fusermount3 -u" fusermount3 -u "$M"
	wait "$FS_PID"
	ht_eq "$how: the daemon exits 0" 0 "$?"
}

slow_apply default
slow_apply no-busy-poll -o busy_poll=0
slow_apply libfuse-loop -o clone_fd

# "echo all > apply" with a quick process and one held at the gate: status
# counts the quick one while the write still waits for the other (ordering:
# the gate opens only after the counts were read).
live_counts() {
	local M=$T/mnt-all gate=$T/gate-all P Q job st still
	ht_check "all: mount" fs_mount "$M" -o budget_ms=120000
	fs_mounted "$M" || return 1
	fs_server
	Q=$FS_SRV
	fs_server --gate "$gate" --interval 50
	P=$FS_SRV
	ht_check "all: the second server's request stays busy" \
		ht_wait_for 30 grep -q "request 1: working" "$FS_SRV_OUT"
	ht_spawn sh -c "echo all > '$M/apply'"
	job=$HT_LAST_PID
	ht_check "all: status counts the quick process while the other is held" \
		ht_wait_for 60 grep -q "applies: 1 ok, 0 failed" "$M/status"
	st=$(<"$M/status")
	kill -0 "$job" 2>/dev/null && still=yes || still=no
	ht_eq "all: ... while the write is still running" yes "$still"
	# (it looks at every process mapping a file named like a target: other
	# demo-servers of this machine count, left alone)
	ht_match "all: ... and says how far it is" 'running: [1-9][0-9]* of [2-9][0-9]* processes of "all" done' "$st"
	touch "$gate"
	wait "$job"
	ht_eq "all: the write succeeds once the gate opens" 0 "$?"
	ht_match "all: both counted" "applies: 2 ok, 0 failed" "$(cat "$M/status")"
	ht_match "all: nothing running" 'running: 0 of 0 processes' "$(cat "$M/status")"
	kill "$P" "$Q"
	ht_check "all: fusermount3 -u" fusermount3 -u "$M"
	wait "$FS_PID"
}
live_counts

ht_end

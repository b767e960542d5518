#!/bin/bash
# While hotpatchfs is not mounted, a write under its mount point fails and
# hp says that the daemon is down: the daemon stopped (the mount point is
# sealed with the immutable flag: EPERM), the daemon killed (ENOTCONN).
# Nothing is ever created in the mount point.
. "$HP_TEST_LIB/harness.sh"
ht_begin "fs-down"
. "$HP_SOURCE_ROOT/tests/fixtures/demo/fs-setup.sh"
fs_need

T=$HT_TMP
export HP_STORE=$T/store.git
ht_check "store" "$HP_BIN" store init --allow-unsigned
M=$T/mnt
export HP_MOUNT=$M
ht_spawn sleep 600
P=$HT_LAST_PID

ht_check "hotpatchfs -o seal mounts" fs_mount "$M" -o seal
fs_mounted "$M" || { ht_end; exit 1; }
ht_eq "mounted: hp status says nothing of a daemon down" "" "$("$HP_BIN" status "$P" 2>&1 >/dev/null)"
ht_check "stop the daemon (fusermount3 -u)" fusermount3 -u "$M"
ht_wait_exit "$FS_PID" 10
ht_match "the mount point is sealed (immutable)" '^....i' "$(lsattr -d "$M" | cut -c1-6)"

fs_echo "$M/apply" "$P"
ht_eq "echo PID > MNT/apply with nothing mounted: exit 1" 1 "$FS_RC"
ht_match "... EPERM" "Operation not permitted" "$FS_ERR"
ht_eq "... nothing created" "" "$(ls -A "$M")"
fs_echo "$M/revert" all
ht_match "echo all > MNT/revert: EPERM too" "Operation not permitted" "$FS_ERR"
err=$(cp /dev/null "$M/incoming" 2>&1)
ht_match "a bundle copied to MNT/incoming: EPERM" "Operation not permitted" "$err"
ht_eq "... nothing created" "" "$(ls -A "$M")"
err=$("$HP_BIN" status "$P" 2>&1 >/dev/null)
ht_eq "hp says that the daemon is not running" \
	"hp status: hotpatchfs is not running (nothing serves this store at $M): acting on the store directly" "$err"

ht_check "hotpatchfs mounts again over the sealed directory" fs_mount "$M" -o seal
ht_match "... and serves" "store: $HP_STORE" "$(cat "$M/status")"
kill -KILL "$FS_PID"
ht_wait_exit "$FS_PID" 10
fs_echo "$M/apply" "$P"
ht_eq "daemon killed: echo PID > MNT/apply: exit 1" 1 "$FS_RC"
ht_match "... ENOTCONN" "Transport endpoint is not connected" "$FS_ERR"
err=$("$HP_BIN" status "$P" 2>&1 >/dev/null)
ht_eq "hp says that the daemon died" \
	"hp status: hotpatchfs at $M is not connected (the daemon died): acting on the store directly; restart it (fusermount3 -u $M first)" "$err"
ht_check "fusermount3 -u clears the dead mount" fusermount3 -u "$M"
fs_echo "$M/apply" "$P"
ht_match "... and the write fails again with EPERM" "Operation not permitted" "$FS_ERR"
ht_eq "... nothing created" "" "$(ls -A "$M")"

ht_check "-o noseal: hotpatchfs mounts elsewhere without sealing" fs_mount "$T/plain" -o noseal
ht_check "stop it" fusermount3 -u "$T/plain"
ht_match "... the directory is not sealed" '^....-' "$(lsattr -d "$T/plain" | cut -c1-6)"
ht_end

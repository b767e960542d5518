#!/bin/bash
# hotpatchfs with -o allow_other and a caller that is not root (nobody, by
# setpriv): it patches only processes it could ptrace itself, reads the
# catalog, and is kept out of incoming/ and auto.
. "$HP_TEST_LIB/harness.sh"
ht_begin "fs-users"
. "$HP_SOURCE_ROOT/tests/fixtures/demo/fs-setup.sh"
fs_need
command -v setpriv >/dev/null || { echo "1..0 # SKIP setpriv missing"; exit 77; }

T=$HT_TMP
chmod 755 "$T"
ht_check "store with a trusted key" fs_store
ht_check "hp build" fs_build "$FS_DEMO_BIN/demo-server" 2026-02 cve-2026-0001 "$T/feb.tar.gz" \
	"$FS_DEMO_SRC/demo-fix.c"
ht_check "hp build 2026-03" fs_build "$FS_DEMO_BIN/demo-server" 2026-03 cve-2026-0001 "$T/mar.tar.gz" \
	"$FS_DEMO_SRC/demo-fix-march.c"
ht_check "hp import" "$HP_BIN" import "$T/feb.tar.gz"
chmod 644 "$T/feb.tar.gz" "$T/mar.tar.gz"
# nobody runs its own copy of the server (the build tree may not be open to it).
cp "$FS_DEMO_BIN/demo-server" "$T/demo-server"
chmod 755 "$T/demo-server"

M=$T/mnt
ht_check "mount with allow_other" fs_mount "$M" -o allow_other
fs_mounted "$M" || { ht_end; exit 1; }

as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"; }
# as_nobody_echo FILE TEXT: sets FS_RC, FS_ERR as fs_echo does, as nobody.
as_nobody_echo() {
	FS_ERR=$(as_nobody bash -c 'echo "$2" > "$1"' bash "$1" "$2" 2>&1)
	FS_RC=$?
}

fs_server
root_pid=$FS_SRV
ht_spawn setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$T/demo-server"
own_pid=$HT_LAST_PID
own_out=$HT_LAST_OUT
ht_wait_for 10 grep -q started "$own_out"
ht_eq "the second server runs as nobody" nobody "$(ps -o user= -p "$own_pid")"

ht_check "nobody reads the catalog" as_nobody cat "$M/catalog/2026.01/2026-02/cve-2026-0001/manifest"
ht_check "nobody lists the catalog" as_nobody ls "$M/catalog/2026.01"
ht_check "nobody reads status" as_nobody cat "$M/status"

as_nobody_echo "$M/apply" "$root_pid"
ht_eq "nobody patching a root process fails" 1 "$([ "$FS_RC" -ne 0 ] && echo 1 || echo 0)"
ht_match "... with EACCES" "Permission denied" "$FS_ERR"
ht_match "root's server stays unpatched" "state: not-up-to-date" "$(cat "$M/processes/$root_pid/status")"
ht_match "log: the refusal" "apply pid=$root_pid set=- result=EACCES" "$(cat "$M/events")"
err_mount=$(as_nobody "$HP_BIN" apply "$root_pid" 2>&1)
ht_eq "nobody: hp apply of root's process through the mount: exit 1" 1 "$?"
ht_match "... one line, the library's words" "^hp apply: uid [0-9]+ may not patch process $root_pid \\(uid 0, gid 0\\)$" "$err_mount"
ht_match "... and it went through the mount" "apply pid=$root_pid set=- result=EACCES.*apply pid=$root_pid set=- result=EACCES" \
	"$(tr '\n' ' ' <"$M/events")"

as_nobody_echo "$M/apply" "$own_pid"
ht_eq "nobody patches its own process" 0 "$FS_RC"
ht_check "its server is patched" fs_wait_output "$own_out" "rejected 40-byte name \(limit 16\): fixed"
ht_match "nobody reads its process's status" "state: hotpatched" "$(as_nobody cat "$M/processes/$own_pid/status")"
ht_expect_fail "nobody may not read root's process status" EACCES "cat: .*status" as_nobody cat "$M/processes/$root_pid/status"
report=$(as_nobody cat "$M/report")
ht_match "nobody's report holds its own process" "^pid=$own_pid .*state=hotpatched" "$report"
# The listing is machine-wide: other tests may run servers of their own
# as nobody. What matters: no line for root's server, and every line is a
# process of nobody's.
ht_expect_fail "... and not root's" 1 '' grep -q "^pid=$root_pid " <<<"$report"
not_own=""
for pid in $(printf '%s\n' "$report" | sed -n 's/^pid=\([0-9]*\) .*/\1/p'); do
	owner=$(stat -c %U "/proc/$pid" 2>/dev/null) || continue # gone since
	[ "$owner" = nobody ] || not_own="$not_own $pid:$owner"
done
ht_eq "... and only processes of nobody's" "" "$not_own"
as_nobody_echo "$M/revert" "$root_pid"
ht_match "nobody reverting root's process: EACCES" "Permission denied" "$FS_ERR"
as_nobody_echo "$M/revert" "$own_pid"
ht_eq "nobody reverts its own process" 0 "$FS_RC"

ht_expect_fail "incoming/ is closed to nobody (list)" EACCES "ls: .*incoming" as_nobody ls "$M/incoming"
head0=$(fs_head)
ht_expect_fail "incoming/ is closed to nobody (drop a bundle)" EACCES "cp: .*x.tar.gz" as_nobody cp "$T/feb.tar.gz" "$M/incoming/x.tar.gz"
ht_eq "the store did not move" "$head0" "$(fs_head)"
as_nobody_echo "$M/auto" 1
ht_match "auto is root's: EACCES" "Permission denied" "$FS_ERR"
ht_eq "auto stays off" 0 "$(cat "$M/auto")"
ht_expect_fail "nobody may not touch the catalog" EROFS "touch: .*catalog/x" as_nobody touch "$M/catalog/x"

# Ansible as another user: its temp file, renamed over apply, carries the caller's rights.
as_nobody sh -c "echo $root_pid > $M/.tmpnobody"
err=$(as_nobody /usr/bin/python3 -c 'import os,sys
try:
    os.rename(sys.argv[1], sys.argv[2]); print("renamed")
except OSError as e:
    print(e.strerror)' "$M/.tmpnobody" "$M/apply")
ht_eq "rename by nobody over apply for a root process: EACCES" "Permission denied" "$err"
echo "$own_pid" >"$M/.tmproot"
ht_expect_fail "nobody may not rename root's temp file" EACCES "mv: .*tmproot" as_nobody mv "$M/.tmproot" "$M/apply"
rm -f "$M/.tmproot"
as_nobody rm -f "$M/.tmpnobody"
ht_eq "no temp file is left" "" "$(ls -A "$M" | grep tmp)"

# -o incoming_gid=GID opens incoming/ to that group.
ht_check "unmount" fusermount3 -u "$M"
ht_wait_exit "$FS_PID" 15
err_direct=$(as_nobody "$HP_BIN" apply "$root_pid" 2>&1)
ht_eq "nobody: hp apply of root's process without a mount: exit 1" 1 "$?"
ht_eq "... the same line as through the mount" "$err_mount" "$err_direct"
ht_check "mount with incoming_gid=$(getent group nogroup | cut -d: -f3)" \
	fs_mount "$M" -o allow_other,incoming_gid="$(getent group nogroup | cut -d: -f3)"
ht_eq "incoming/ mode and group" "drwxrwx--- nogroup" "$(stat -c '%A %G' "$M/incoming")"
head0=$(fs_head)
ht_check "nogroup drops a bundle into incoming/" as_nobody cp "$T/mar.tar.gz" "$M/incoming/"
ht_check "the store moved" test "$(fs_head)" != "$head0"
ht_check "the catalog has it" test -d "$M/catalog/2026.01/2026-03/cve-2026-0001"
ht_eq "the commit names the set" "import 2026.01/2026-03/cve-2026-0001" \
	"$(git --git-dir="$HP_STORE" log -1 --format=%s)"

ht_end

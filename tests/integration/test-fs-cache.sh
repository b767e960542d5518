#!/bin/bash
# hotpatchfs's kernel caching (fs/README.md "Caching"): directories are opened
# by the kernel alone (no OPENDIR, no RELEASEDIR) and their listings cached,
# yet no listing is ever stale: processes/ after a process starts or ends,
# the catalog after an import (through hp import or incoming/) or a HEAD
# moved back (also a set's names, cached for an hour), incoming/ after a
# bundle is consumed, the root's temporary files, and listings that depend
# on who asks (processes/, incoming/).
# Control and state files still read fresh on every read.
. "$HP_TEST_LIB/harness.sh"
ht_begin "fs-cache"
. "$HP_SOURCE_ROOT/tests/fixtures/demo/fs-setup.sh"
fs_need
command -v setpriv >/dev/null || { echo "1..0 # SKIP setpriv missing"; exit 77; }

T=$HT_TMP
chmod 755 "$T"
ht_check "store with a trusted key" fs_store
ht_check "hp build 2026-02" fs_build "$FS_DEMO_BIN/demo-server" 2026-02 cve-2026-0001 "$T/feb.tar.gz" \
	"$FS_DEMO_SRC/demo-fix.c"
ht_check "hp build 2026-02, a second set" fs_build "$FS_DEMO_BIN/misfit-a" 2026-02 misfit-fix \
	"$T/misfit.tar.gz" "$FS_DEMO_SRC/misfit-fix.c"
ht_check "hp build 2026-03" fs_build "$FS_DEMO_BIN/demo-server" 2026-03 cve-2026-0001 "$T/mar.tar.gz" \
	"$FS_DEMO_SRC/demo-fix-march.c"
ht_check "hp build 2026-02, a third set" fs_build "$FS_DEMO_BIN/libgreet.so" 2026-02 greet-fix \
	"$T/greet.tar.gz" "$FS_DEMO_SRC/greet-fix.c"
ht_check "hp import 2026-02" "$HP_BIN" import "$T/feb.tar.gz"

M=$T/mnt
# -d: the daemon's requests, to see which ones the kernel still sends.
ht_check "mount with allow_other, requests logged" fs_mount "$M" -o allow_other -d
fs_mounted "$M" || { ht_end; exit 1; }
FS_LOG=$HT_LAST_OUT
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"; }
names() { ls "$1" | tr '\n' ' ' | sed 's/ $//'; }
requests() { grep -ac "opcode: $1 " "$FS_LOG"; }

# ---- the catalog: a new set, a new month, a HEAD moved back -------------------
month=$M/catalog/2026.01/2026-02
ht_eq "catalog: the month lists its set" "cve-2026-0001" "$(names "$month")"
ht_eq "catalog: the baseline lists its month" "2026-02 BASELINE" "$(names "$M/catalog/2026.01")"
names "$month" >/dev/null
ht_check "hp import (the CLI, not the mount) of a second set" "$HP_BIN" import "$T/misfit.tar.gz"
ht_eq "catalog: the month's listing shows it at once" "cve-2026-0001 misfit-fix" "$(names "$month")"
old_head=$(fs_head)
ht_check "hp import of a new month" "$HP_BIN" import "$T/mar.tar.gz"
ht_eq "catalog: the baseline's listing shows the new month" "2026-02 2026-03 BASELINE" \
	"$(names "$M/catalog/2026.01")"
ht_check "catalog: a set's listing (cached for an hour) is right" \
	test "$(names "$M/catalog/2026.01/2026-03/cve-2026-0001")" = "manifest patch.so signature"
git --git-dir="$HP_STORE" update-ref HEAD "$old_head"
# A set's names are cached for an hour; the daemon's HEAD watch (inotify) drops them.
ht_check "HEAD moved back by hand: a gone set's directory, cached before, goes within seconds" \
	ht_wait_for 5 test ! -e "$M/catalog/2026.01/2026-03/cve-2026-0001"
ht_expect_fail "... its manifest too" ENOENT "stat: .*cve-2026-0001/manifest" stat "$M/catalog/2026.01/2026-03/cve-2026-0001/manifest"
ht_check "the set still there is still there" test -f "$month/cve-2026-0001/manifest"
ht_eq "HEAD moved back by hand: the baseline's listing loses the month" "2026-02 BASELINE" \
	"$(names "$M/catalog/2026.01")"
ht_eq "... and the catalog's latest follows" "2026.01/2026-02" "$(readlink "$M/catalog/latest")"

# ---- incoming/: a bundle listed while written, gone once imported -------------
# The shell holds the file open (a child's exit would flush it, and a flush after data imports).
exec 3>"$M/incoming/junk.tar.gz"
ht_eq "incoming/ lists a bundle being written" "junk.tar.gz" "$(names "$M/incoming")"
echo "not a bundle" >&3
exec 3>&-
ht_eq "incoming/: consumed at close (a bad bundle), the listing is empty again" "" \
	"$(names "$M/incoming")"
ht_match "the log has the failed import" "import .*file=junk.tar.gz" "$(cat "$M/events")"
ht_check "a bundle copied into incoming/" cp "$T/greet.tar.gz" "$M/incoming/"
ht_eq "incoming/: consumed, the listing is empty" "" "$(names "$M/incoming")"
ht_eq "catalog: the imported set is listed" "cve-2026-0001 greet-fix misfit-fix" "$(names "$month")"
ht_expect_fail "nobody may not list incoming/ after root did" EACCES "ls: .*incoming" as_nobody ls "$M/incoming"

# ---- the root: temporary files come and go -------------------------------------
echo hello >"$M/ansible-tmp"
ht_match "root lists a temporary file" " ansible-tmp " " $(names "$M") "
ht_check "the temporary file reads back" test "$(cat "$M/ansible-tmp")" = hello
rm "$M/ansible-tmp"
ht_check "root: it is gone from the listing" test "$(names "$M")" = \
	"apply auto catalog events incoming last-error processes report revert status"

# ---- processes/: a process appears and goes; each caller sees their own ---------
before=" $(names "$M/processes") "
fs_server
srv=$FS_SRV
ht_check "processes/ had no entry for the server before it started" \
	test "${before/ $srv /}" = "$before"
ht_match "processes/ lists a server started after the last listing" " $srv " " $(names "$M/processes") "
cp "$FS_DEMO_BIN/demo-server" "$T/demo-server"
chmod 755 "$T/demo-server"
ht_spawn setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$T/demo-server"
own=$HT_LAST_PID
ht_wait_for 10 grep -q started "$HT_LAST_OUT"
all=" $(names "$M/processes") "
ht_match "root's listing has root's server" " $srv " "$all"
ht_match "... and nobody's" " $own " "$all"
mine=$(as_nobody ls "$M/processes" | tr '\n' ' ' | sed 's/ $//')
ht_eq "nobody's listing, right after root's, has its own server only" "$own" "$mine"
ht_match "root's listing again has nobody's server" " $own " " $(names "$M/processes") "

# ---- control and state files read fresh -----------------------------------------
ht_match "status: no apply yet" "applies: 0 ok, 0 failed" "$(cat "$M/status")"
ht_match "the server's state: not applied" "state: not-up-to-date" "$(cat "$M/processes/$srv/status")"
fs_echo "$M/apply" "$srv"
ht_eq "echo PID > apply: done" 0 "$FS_RC"
ht_match "status counts it" "applies: 1 ok, 0 failed" "$(cat "$M/status")"
ht_match "the server's state: hotpatched" "state: hotpatched" "$(cat "$M/processes/$srv/status")"
fs_expect_errno "a malformed write still fails the writer: EINVAL" "Invalid argument" "$M/apply" "not-a-pid"
ht_match "the log has the apply" "apply pid=$srv set=2026.01/2026-02/cve-2026-0001 result=ok" "$(cat "$M/events")"
kill "$srv"
ht_wait_exit "$srv" 10 >/dev/null 2>&1
ht_check "processes/: the server is gone from the listing" \
	test "$(names "$M/processes" | grep -cx "$srv")" = 0
ht_expect_fail "processes/PID of the gone server is gone" ENOENT "stat: .*processes/$srv" stat "$M/processes/$srv"

# ---- what the kernel still asks ---------------------------------------------------
ht_eq "at most one OPENDIR (answered ENOSYS), then none" 1 "$(($(requests OPENDIR) <= 1))"
ht_eq "no RELEASEDIR" 0 "$(requests RELEASEDIR)"
n=$(requests READDIR)
find "$M/catalog" >/dev/null
find "$M/catalog" >/dev/null
n2=$(requests READDIR)
find "$M/catalog" >/dev/null
ht_eq "a walk of the catalog, again: no READDIR (listings cached)" "$n2" "$(requests READDIR)"
ht_check "... the earlier walks did ask" test "$n2" -gt "$n"

ht_end

#!/bin/bash
# hotpatchfs on a real mount: the layout, the catalog against git, apply and
# revert through the control files (echo >, >>, tee, Ansible's temp+rename),
# every errno, incoming/ good and bad, auto-apply, a clean stop.
. "$HP_TEST_LIB/harness.sh"
ht_begin "fs"
. "$HP_SOURCE_ROOT/tests/fixtures/demo/fs-setup.sh"
fs_need

T=$HT_TMP
ht_check "store with a trusted key" fs_store
ht_check "hp build: demo-server 2026-02" \
	fs_build "$FS_DEMO_BIN/demo-server" 2026-02 cve-2026-0001 "$T/feb.tar.gz" "$FS_DEMO_SRC/demo-fix.c"
ht_check "hp build: demo-server 2026-03" \
	fs_build "$FS_DEMO_BIN/demo-server" 2026-03 cve-2026-0001 "$T/mar.tar.gz" "$FS_DEMO_SRC/demo-fix-march.c"
ht_check "hp build: misfit-a 2026-02" \
	fs_build "$FS_DEMO_BIN/misfit-a" 2026-02 misfit-fix "$T/misfit.tar.gz" "$FS_DEMO_SRC/misfit-fix.c"
ht_check "hp build: libgreet.so 2026-02" \
	fs_build "$FS_DEMO_BIN/libgreet.so" 2026-02 greet-fix "$T/greet.tar.gz" "$FS_DEMO_SRC/greet-fix.c"
ht_check "hp import" "$HP_BIN" import "$T/feb.tar.gz" "$T/misfit.tar.gz" "$T/greet.tar.gz"

M=$T/mnt
ht_check "hotpatchfs mounts" fs_mount "$M"
fs_out=$HT_LAST_OUT
fs_mounted "$M" || { ht_end; exit 1; }

# ---- layout -----------------------------------------------------------------
ht_eq "root lists the layout of fs/README.md" "apply auto catalog events incoming last-error processes report revert status" \
	"$(ls "$M" | tr '\n' ' ' | sed 's/ $//')"
modes=""
for f in apply revert auto report status events last-error catalog incoming processes; do
	modes="$modes $f=$(stat -c %A "$M/$f")"
done
ht_eq "modes" " apply=-rw-rw-rw- revert=-rw-rw-rw- auto=-rw-r--r-- report=-r--r--r-- status=-r--r--r-- events=-r--r--r-- last-error=-r--r--r-- catalog=dr-xr-xr-x incoming=drwx------ processes=dr-xr-xr-x" "$modes"
ht_eq "mountinfo type is fuse.hotpatchfs" "fuse.hotpatchfs" \
	"$(awk -v m="$M" '$2 == m { print $3 }' /proc/mounts)"

# ---- catalog ------------------------------------------------------------------
set_dir=$M/catalog/2026.01/2026-02/cve-2026-0001
ht_eq "catalog: a set holds manifest, patch.so, signature" "manifest patch.so signature" \
	"$(ls "$set_dir" | tr '\n' ' ' | sed 's/ $//')"
ht_check "catalog: manifest is the git blob" \
	cmp "$set_dir/manifest" <(git --git-dir="$HP_STORE" show HEAD:2026.01/2026-02/cve-2026-0001/manifest)
ht_check "catalog: patch.so is the git blob" \
	cmp "$set_dir/patch.so" <(git --git-dir="$HP_STORE" show HEAD:2026.01/2026-02/cve-2026-0001/patch.so)
ht_check "catalog: BASELINE is the git blob" \
	cmp "$M/catalog/2026.01/BASELINE" <(git --git-dir="$HP_STORE" show HEAD:2026.01/BASELINE)
ht_eq "catalog: stat size is the blob size" "$(git --git-dir="$HP_STORE" cat-file -s HEAD:2026.01/2026-02/cve-2026-0001/patch.so)" \
	"$(stat -c %s "$set_dir/patch.so")"
ht_eq "catalog/latest points at the newest month" "2026.01/2026-02" "$(readlink "$M/catalog/latest")"
ht_check "catalog/latest resolves" test -f "$M/catalog/latest/cve-2026-0001/manifest"
ht_expect_fail "catalog is read-only (create)" EROFS "touch: cannot touch .*catalog/x" touch "$M/catalog/x"
err=$({ echo x >"$M/catalog/2026.01/BASELINE"; } 2>&1)
ht_match "catalog is read-only (write): EROFS" "Read-only file system" "$err"
ht_expect_fail "catalog: no such set" ENOENT "cat: .*nope/manifest" cat "$M/catalog/2026.01/2026-02/nope/manifest"

# ---- the filesystem's own answers: nothing is made or removed --------------------
ht_eq "rmdir in the catalog: EROFS" "EROFS Read-only file system" "$(fs_errno rmdir "$M/catalog/2026.01")"
ht_eq "rmdir of processes/: EPERM" "EPERM Operation not permitted" "$(fs_errno rmdir "$M/processes")"
ht_eq "rmdir of incoming/: EPERM" "EPERM Operation not permitted" "$(fs_errno rmdir "$M/incoming")"
ht_eq "mkdir in the root: EPERM" "EPERM Operation not permitted" "$(fs_errno mkdir "$M/newdir")"
ht_eq "mkdir in the catalog: EROFS" "EROFS Read-only file system" "$(fs_errno mkdir "$M/catalog/2099.01")"
ht_eq "symlink in the root: EPERM" "EPERM Operation not permitted" "$(fs_errno symlink "$M/lnk" apply)"
ht_eq "symlink in the catalog: EROFS" "EROFS Read-only file system" "$(fs_errno symlink "$M/catalog/lnk" latest)"
ht_eq "mkfifo in the root: EPERM" "EPERM Operation not permitted" "$(fs_errno mkfifo "$M/fifo")"
ht_eq "mkfifo in incoming/: EPERM" "EPERM Operation not permitted" "$(fs_errno mkfifo "$M/incoming/fifo")"
ht_eq "mkfifo in the catalog: EROFS" "EROFS Read-only file system" "$(fs_errno mkfifo "$M/catalog/fifo")"
ht_eq "mknod (a device) in the root: EPERM" "EPERM Operation not permitted" "$(fs_errno mknod "$M/null")"
ht_eq "hard link of apply: EPERM" "EPERM Operation not permitted" "$(fs_errno link "$M/apply" "$M/apply2")"
long=$(printf 'n%.0s' $(seq 256))
ht_eq "a 256-byte name: ENAMETOOLONG (stat)" "ENAMETOOLONG File name too long" "$(fs_errno stat "$M/$long")"
ht_eq "a 256-byte name: ENAMETOOLONG (create)" "ENAMETOOLONG File name too long" "$(fs_errno create "$M/$long")"
ht_eq "a 256-byte name in the catalog: ENAMETOOLONG" "ENAMETOOLONG File name too long" \
	"$(fs_errno stat "$M/catalog/2026.01/$long")"
ht_eq "a 255-byte name: ENOENT (the limit is 255)" "ENOENT No such file or directory" \
	"$(fs_errno stat "$M/${long:1}")"
ht_eq "nothing was made: the root lists the same" "apply auto catalog events incoming last-error processes report revert status" \
	"$(ls "$M" | tr '\n' ' ' | sed 's/ $//')"
ht_eq "nothing was made in incoming/" "" "$(ls "$M/incoming")"
sleep 300 &
gone=$!
ht_eq "processes/PID/status opened before its process exited: fstat and read work" "ok" \
	"$(fs_errno fstat-after-exit "$M/processes/$gone/status" "$gone")"
ht_eq "after exit a new lookup of processes/PID/status is ENOENT" "ENOENT No such file or directory" \
	"$(fs_errno stat "$M/processes/$gone/status")"

# ---- status ---------------------------------------------------------------------
st=$(cat "$M/status")
ht_match "status names the store" "store: $HP_STORE" "$st"
ht_match "status: head is the store's HEAD" "head: $(fs_head)" "$st"
ht_match "status: auto off" "auto: 0" "$st"

# ---- a process, apply, double apply, revert ----------------------------------------
fs_server
P=$FS_SRV
ht_check "demo-server runs vulnerable" fs_wait_output "$FS_SRV_OUT" "VULNERABLE"
ht_match "processes/ lists it" "(^| )$P( |$)" "$(ls "$M/processes" | tr '\n' ' ')"
ht_match "report: not-up-to-date before apply" "pid=$P comm=demo-server state=not-up-to-date" "$(cat "$M/report")"
ht_match "processes/PID/status before apply" "state: not-up-to-date" "$(cat "$M/processes/$P/status")"

fs_echo "$M/apply" "$P"
ht_eq "echo PID > apply: exit 0" 0 "$FS_RC"
ht_check "the running server is patched" fs_wait_output "$FS_SRV_OUT" "rejected 40-byte name \(limit 16\): fixed"
s=$(cat "$M/processes/$P/status")
ht_match "status: hotpatched" "state: hotpatched" "$s"
ht_match "status: the set applied" "applied=2026.01/2026-02/cve-2026-0001 month=2026-02 latest=2026-02" "$s"
ht_match "status: last pause in microseconds" "last-pause-us: [0-9]+" "$s"
ht_match "log: the apply" "apply pid=$P set=2026.01/2026-02/cve-2026-0001 result=ok pause_us=[0-9]+ changed=1" "$(cat "$M/events")"

fs_echo "$M/apply" "$P"
ht_eq "double apply: exit 0" 0 "$FS_RC"
ht_match "double apply changes nothing" "apply pid=$P set=2026.01/2026-02/cve-2026-0001 result=ok pause_us=- changed=0" "$(tail -n1 "$M/events")"
ht_eq "double apply: same state" "$s" "$(cat "$M/processes/$P/status")"

# A newer month lands through incoming/ and the catalog follows HEAD.
# The listings and files below were read (and cached by the kernel) first.
ls -R "$M/catalog" >/dev/null
cat "$set_dir/manifest" >/dev/null
ino0=$(stat -c %i "$set_dir/manifest")
head0=$(fs_head)
ht_check "incoming: cp a good bundle" cp "$T/mar.tar.gz" "$M/incoming/"
ht_check "incoming: the store moved" test "$(fs_head)" != "$head0"
ht_check "incoming: the catalog shows the new month" test -d "$M/catalog/2026.01/2026-03/cve-2026-0001"
ht_eq "incoming: the file is consumed" "" "$(ls -A "$M/incoming")"
ht_eq "catalog/latest follows" "2026.01/2026-03" "$(readlink "$M/catalog/latest")"
ht_eq "catalog: the baseline's listing follows (no stale cache)" "2026-02 2026-03 BASELINE" \
	"$(ls "$M/catalog/2026.01" | tr '\n' ' ' | sed 's/ $//')"
ht_check "catalog: a set read before the import still reads its blob" \
	cmp "$set_dir/manifest" <(git --git-dir="$HP_STORE" show HEAD:2026.01/2026-02/cve-2026-0001/manifest)
ht_eq "catalog: a path keeps its inode number" "$ino0" "$(stat -c %i "$set_dir/manifest")"
ht_check "catalog: BASELINE is the new HEAD's blob (no stale cache)" \
	cmp "$M/catalog/2026.01/BASELINE" <(git --git-dir="$HP_STORE" show HEAD:2026.01/BASELINE)
ht_match "log: the import" "import set=2026.01/2026-03/cve-2026-0001 result=ok" "$(cat "$M/events")"
ht_match "status: not-up-to-date once 2026-03 is out" "state: not-up-to-date" "$(cat "$M/processes/$P/status")"

# Other ways to write a control file: >>, tee, hp via the mount.
printf '%s\n' "$P" >>"$M/apply"
ht_eq "printf PID >> apply: exit 0" 0 "$?"
ht_check "2026-03 replaced 2026-02 in place" fs_wait_output "$FS_SRV_OUT" "fixed in 2026-03"
ht_match "status: hotpatched with 2026-03" "applied=2026.01/2026-03/cve-2026-0001 month=2026-03 latest=2026-03 state=hotpatched" "$(cat "$M/processes/$P/status")"
echo "$P 2026-02" | tee "$M/apply" >/dev/null
ht_eq "echo 'PID MONTH' | tee apply: exit 0" 0 "${PIPESTATUS[1]}"
ht_match "PID MONTH: back to 2026-02" "month=2026-02 latest=2026-03 state=not-up-to-date" "$(cat "$M/processes/$P/status")"
out=$("$HP_BIN" apply "$P")
ht_eq "hp apply through the mount: exit 0" 0 "$?"
ht_match "hp apply says what it applied and the pause" "^$P: applied 2026.01/2026-03/cve-2026-0001 \(pause [0-9]+ us\)" "$out"
ht_match "hp apply went through the mount (its log)" "apply pid=$P set=2026.01/2026-03/cve-2026-0001 result=ok pause_us=[0-9]+ changed=1" "$(tail -n1 "$M/events")"
ht_match "hp --json apply: the result per process" \
	"^\\[\\{\"pid\":$P,\"comm\":\"[^\"]*\",\"result\":\"ok\",\"set\":\"2026.01/2026-03/cve-2026-0001\",\"sets\":1,\"changed\":false,\"pause_us\":0\\}\\]$" \
	"$("$HP_BIN" --json apply "$P")"
out=$("$HP_BIN" status "$P")
ht_match "hp status: hotpatched" "state: hotpatched" "$out"
ht_match "hp status: last pause" "last-pause-us: [0-9]+" "$out"
ht_match "hp --json status" '"state":"hotpatched".*"last_pause_us":[0-9]+' "$("$HP_BIN" --json status "$P")"
ht_match "hp report (mount)" "pid=$P comm=demo-server state=hotpatched" "$("$HP_BIN" report)"
ht_match "hp --json report" "\"pid\":$P,\"comm\":\"demo-server\",\"exe\":.*\"state\":\"hotpatched\"" "$("$HP_BIN" --json report)"

fs_echo "$M/revert" "$P"
ht_eq "echo PID > revert: exit 0" 0 "$FS_RC"
ht_check "reverted: vulnerable again" fs_wait_output "$FS_SRV_OUT" "accepted 40-byte name: VULNERABLE"
ht_match "status after revert" "applied=- month=- latest=2026-03 state=not-up-to-date" "$(cat "$M/processes/$P/status")"
fs_expect_errno "revert with nothing applied: ENOENT" "No such file or directory" "$M/revert" "$P"

# The perf map is written after the answer, the process held until then:
# applies and reverts back to back never leave it behind the last one.
ht_check "perf map: none with nothing applied" test ! -e "/tmp/perf-$P.map"
fs_echo "$M/apply" "$P"
ht_check "perf map: written after an apply" \
	ht_wait_for 5 grep -q ' \[hotpatch 2026.01/2026-03/cve-2026-0001\]$' "/tmp/perf-$P.map"
fails=0
for _ in $(seq 20); do
	fs_echo "$M/revert" "$P"
	[ "$FS_RC" = 0 ] || fails=$((fails + 1))
	fs_echo "$M/apply" "$P"
	[ "$FS_RC" = 0 ] || fails=$((fails + 1))
done
fs_echo "$M/revert" "$P"
ht_eq "perf map: 20 reverts and applies back to back, then a revert: all ok" "0 0" "$fails $FS_RC"
ht_check "perf map: removed after the last revert" ht_wait_for 5 test ! -e "/tmp/perf-$P.map"
fs_echo "$M/apply" "$P"
ht_check "perf map: there again after the next apply" \
	ht_wait_for 5 grep -q ' \[hotpatch 2026.01/2026-03/cve-2026-0001\]$' "/tmp/perf-$P.map"
fs_echo "$M/revert" "$P"

# ---- Ansible's copy module: temp file in the same directory, renamed over ------------
tmp=$M/.ansible_tmpabc123apply
printf '%s\n' "$P" >"$tmp"
ht_eq "temp file: created and listed" ".ansible_tmpabc123apply" "$(ls -A "$M" | grep ansible)"
ht_eq "temp file: reads back" "$P" "$(cat "$tmp")"
ht_check "rename temp over apply" mv -f "$tmp" "$M/apply"
ht_eq "rename: the temp file is gone" "" "$(ls -A "$M" | grep ansible)"
ht_match "rename: applied" "state: hotpatched" "$(cat "$M/processes/$P/status")"
printf 'nonsense\n' >"$tmp"
err=$(python3 -c 'import os,sys
try:
    os.rename(sys.argv[1], sys.argv[2]); print("renamed")
except OSError as e:
    print(e.strerror)' "$tmp" "$M/apply")
ht_eq "rename of a bad command carries EINVAL" "Invalid argument" "$err"
ht_check "the bad temp file stays, and can be removed" rm "$tmp"
if command -v ansible >/dev/null 2>&1; then
	out=$(ANSIBLE_LOCAL_TEMP=$T/ansible ANSIBLE_REMOTE_TEMP=$T/ansible HOME=$T \
		ansible localhost -c local -m copy -a "content='$P\n' dest=$M/revert" 2>&1)
	ht_match "ansible copy module onto revert: changed" "CHANGED|changed" "$out"
	ht_check "ansible: reverted" fs_wait_output "$FS_SRV_OUT" "accepted 40-byte name: VULNERABLE"
	ht_match "ansible: state after" "state=not-up-to-date" "$(cat "$M/processes/$P/status")"
fi

# ---- errno of every failure, through echo's exit status and message -------------------
sleep 0 &
gone=$!
wait "$gone"
fs_expect_errno "no such process: ESRCH" "No such process" "$M/apply" "$gone"
ht_match "last-error: why the write failed" "^20[0-9-]+T[0-9:]+Z apply ESRCH .*$gone" "$(cat "$M/last-error")"
ht_spawn sleep 600
sleeper=$HT_LAST_PID
fs_expect_errno "nothing published for it: ENOENT" "No such file or directory" "$M/apply" "$sleeper"
fs_expect_errno "nothing published in that month: ENOENT" "No such file or directory" "$M/apply" "$P 2026-05"
fs_expect_errno "malformed: EINVAL" "Invalid argument" "$M/apply" "not-a-pid"
fs_expect_errno "bad month: EINVAL" "Invalid argument" "$M/apply" "$P 2026-13"
fs_expect_errno "three words: EINVAL" "Invalid argument" "$M/apply" "$P 2026-02 x"
fs_expect_errno "revert takes no month: EINVAL" "Invalid argument" "$M/revert" "$P 2026-02"
fs_expect_errno "auto takes 0 or 1: EINVAL" "Invalid argument" "$M/auto" "2"
fs_expect_errno "all TARGET unknown: ENOENT" "No such file or directory" "$M/apply" "all no-such-target"
ht_spawn "$FS_DEMO_BIN/misfit-b"
misfit=$HT_LAST_PID
ht_wait_for 10 grep -q misfit "$HT_LAST_OUT"
fs_expect_errno "a set that does not fit: ENOEXEC" "Exec format error" "$M/apply" "$misfit"
ht_match "status of the misfit: failed with the reason" "state: failed" "$(cat "$M/processes/$misfit/status")"
ht_match "the reason is said" "reason: ENOEXEC: " "$(cat "$M/processes/$misfit/status")"
fs_server --spin
spin=$FS_SRV
fs_expect_errno "a function that never leaves: EBUSY" "Device or resource busy" "$M/apply" "$spin"
ht_match "status of the busy one: failed, EBUSY" "reason: EBUSY: " "$(cat "$M/processes/$spin/status")"
ht_match "log: the failures with their errno" "result=ESRCH.*result=ENOENT.*result=EINVAL.*result=ENOEXEC.*result=EBUSY" "$(tr '\n' ' ' <"$M/events")"
err=$("$HP_BIN" apply "$gone" 2>&1 >/dev/null)
ht_match "hp apply: one line with the daemon's reason" "^hp apply: .*$gone" "$err"
ht_eq "hp apply: one line" 1 "$(printf '%s\n' "$err" | wc -l)"

kill "$spin"
wait "$spin" 2>/dev/null

# ---- all ------------------------------------------------------------------------------
fs_server
P2=$FS_SRV
fs_echo "$M/apply" "all demo-server"
ht_eq "apply all demo-server: exit 0" 0 "$FS_RC"
ht_match "all: the first server" "state: hotpatched" "$(cat "$M/processes/$P/status")"
ht_match "all: the second server" "state: hotpatched" "$(cat "$M/processes/$P2/status")"
ht_match "all: a result per process in the log" "apply pid=$P .*apply pid=$P2 |apply pid=$P2 .*apply pid=$P " "$(tr '\n' ' ' <"$M/events")"
fs_echo "$M/revert" "all"
ht_eq "revert all: exit 0" 0 "$FS_RC"
ht_match "revert all: reverted" "applied=- " "$(cat "$M/processes/$P2/status")"

# ---- incoming/ bad bundles: close() fails, the store does not move ---------------------
head1=$(fs_head)
head -c 4096 /dev/urandom >"$T/junk.tar"
ht_expect_fail "incoming: cp of junk fails at close" EINVAL "cp: .*junk.tar" cp "$T/junk.tar" "$M/incoming/junk.tar"
ht_eq "incoming: junk left HEAD alone" "$head1" "$(fs_head)"
"$HP_BIN" build --target "$FS_DEMO_BIN/demo-server" --baseline 2026.01 --month 2026-03 --name unsigned \
	-o "$T/unsigned.tar.gz" "$FS_DEMO_SRC/demo-fix.c" >/dev/null 2>&1
ht_expect_fail "incoming: an unsigned bundle fails at close" EKEYREJECTED "cp: .*unsigned.tar.gz" cp "$T/unsigned.tar.gz" "$M/incoming/"
ht_match "last-error: the reason of that failed cp, for this session" \
	"^20[0-9-]+T[0-9:]+Z incoming EKEYREJECTED .*unsigned \(the store accepts signed sets only\)$" \
	"$(cat "$M/last-error")"
ht_eq "incoming: unsigned left HEAD alone" "$head1" "$(fs_head)"
ht_eq "incoming: nothing left behind" "" "$(ls -A "$M/incoming")"
ht_match "log: failed imports" "import set=- result=E[A-Z]+ .*file=junk.tar" "$(cat "$M/events")"

# ---- auto-apply -------------------------------------------------------------------------
fs_echo "$M/auto" 1
ht_eq "echo 1 > auto" 0 "$FS_RC"
ht_eq "auto reads 1" 1 "$(cat "$M/auto")"
fs_server
ht_check "auto: a new server is patched without a word" fs_wait_output "$FS_SRV_OUT" "fixed in 2026-03"
# (the event is written once the apply returned: the server may say "fixed" first)
ht_check "auto: logged with the delay after exec" ht_wait_for 10 grep -Eq \
	"auto-apply pid=$FS_SRV set=2026.01/2026-03/cve-2026-0001 result=ok pause_us=[0-9]+ after_exec_us=[0-9]+" "$M/events"
# A shared-library target: ld.so maps it after the exec event; auto looks again.
ht_spawn "$FS_DEMO_BIN/greet-client" 50
greet=$HT_LAST_PID
greet_out=$HT_LAST_OUT
ht_wait_for 10 grep -q started "$greet_out"
ht_check "auto: the library of a new process is patched" fs_wait_output "$greet_out" "greet: rejected: fixed"
ht_check "auto: logged for the library's set" ht_wait_for 10 grep -q \
	"auto-apply pid=$greet set=2026.01/2026-02/greet-fix result=ok" "$M/events"
ht_match "status names the library target" "target: libgreet.so .*state=hotpatched" "$(cat "$M/processes/$greet/status")"
# A library mapped late: dlopen 3 s after the start. fanotify sees the open
# of the target file; the contract is a patch within 100 ms of the mapping.
# The fixture records when its dlopen returned (the mapping is done by then);
# the event's time is in the log (milliseconds). The latency is logged;
# the benchmark holds it to the contract.
ht_spawn "$FS_DEMO_BIN/greet-late" "$FS_DEMO_BIN/libgreet.so" 3000 "$T/late.stamp"
late=$HT_LAST_PID
late_out=$HT_LAST_OUT
ht_check "auto: a library dlopen'ed 3 s after the start is patched" \
	ht_wait_for 20 grep -q "greet: rejected: fixed" "$late_out"
ht_wait_for 10 grep -q "auto-apply pid=$late " "$M/events"
ev=$(grep "auto-apply pid=$late " "$M/events" | head -n 1)
ht_match "auto: its event, seen from the open" \
	"auto-apply pid=$late set=2026.01/2026-02/greet-fix result=ok pause_us=[0-9]+ after_open_us=[0-9]+" "$ev"
stamp=$(cat "$T/late.stamp" 2>/dev/null)
returned_us=$(sed -n 's/.*returned=\([0-9]*\).*/\1/p' <<<"$stamp")
ev_us=$(date -u -d "${ev%% *}" +%s%6N 2>/dev/null)
# The 100 ms contract is a speed figure (tests/bench: dlopen.to_patched):
# here the order, and the latency in the log.
ht_check "auto: the fixture stamped its dlopen" test -n "$returned_us"
ht_log "auto: patched $(((${ev_us:-0} - ${returned_us:-0}) / 1000)) ms after the dlopen returned"
kill "$late"
wait "$late" 2>/dev/null
fs_echo "$M/auto" 0
ht_eq "auto reads 0 again" 0 "$(cat "$M/auto")"
out=$("$HP_BIN" revert all)
ht_eq "hp revert all: exit 0" 0 "$?"
ht_match "hp revert all: a line per process" "^$greet: reverted 2026.01/2026-02/greet-fix \(pause [0-9]+ us\)" "$(printf '%s\n' "$out" | grep "^$greet:")"
ht_check "hp revert all: the library is back to the original" fs_wait_output "$greet_out" "VULNERABLE"

# ---- incoming/: every way a shell drops a file; import once, after the data --------------
# `cat b > incoming/x`: the shell opens x, dup2s it onto cat's output and
# closes the original: a flush before any data, which must not import.
ht_check "hp build: libgreet.so 2026-03" \
	fs_build "$FS_DEMO_BIN/libgreet.so" 2026-03 greet-fix "$T/greet3.tar.gz" "$FS_DEMO_SRC/greet-fix.c"
log_lines() { grep -c "file=$1" "$M/events"; }
head2=$(fs_head)
: >"$M/incoming/empty.tar.gz"
ht_eq "incoming: an empty file (: >): exit 0" 0 "$?"
ht_eq "incoming: ... nothing imported, nothing logged" 0 "$(log_lines empty.tar.gz)"
ht_eq "incoming: ... and it is gone" "" "$(ls -A "$M/incoming")"
ht_eq "incoming: ... HEAD unchanged" "$head2" "$(fs_head)"
cat "$T/greet3.tar.gz" >"$M/incoming/cat.tar.gz"
ht_eq "incoming: cat b > incoming/x: exit 0" 0 "$?"
ht_check "incoming: cat >: the store moved" test "$(fs_head)" != "$head2"
ht_check "incoming: cat >: the catalog has it" test -d "$M/catalog/2026.01/2026-03/greet-fix"
ht_match "incoming: cat >: logged once, imported" \
	"^[^ ]+ import set=2026.01/2026-03/greet-fix result=ok pause_us=- file=cat.tar.gz changed=1 uid=0$" \
	"$(grep "file=cat.tar.gz" "$M/events")"
head3=$(fs_head)
dd if="$T/greet3.tar.gz" of="$M/incoming/dd.tar.gz" bs=1k status=none
ht_eq "incoming: dd (1 KiB writes): exit 0" 0 "$?"
ht_match "incoming: dd: the set already there is a success, not EPERM" \
	"^[^ ]+ import set=2026.01/2026-03/greet-fix result=ok pause_us=- file=dd.tar.gz changed=0 uid=0$" \
	"$(grep "file=dd.tar.gz" "$M/events")"
tee "$M/incoming/tee.tar.gz" <"$T/greet3.tar.gz" >/dev/null
ht_eq "incoming: tee: exit 0" 0 "$?"
ht_eq "incoming: tee: logged once, ok" 1 "$(grep -c "file=tee.tar.gz changed=0" "$M/events")"
ht_eq "incoming: the same set again left HEAD alone" "$head3" "$(fs_head)"
ht_check "incoming: cp of the set already there: exit 0" cp "$T/greet3.tar.gz" "$M/incoming/cp.tar.gz"
ht_match "status counts them as imports" "imports: [0-9]+ ok, 2 failed" "$(cat "$M/status")"
err=$({ cat "$T/junk.tar" >"$M/incoming/catjunk.tar"; } 2>&1)
ht_eq "incoming: cat junk > incoming/x fails at close" 1 "$([ -n "$err" ] && echo 1)"
ht_match "incoming: ... with the errno's words" "cat: .*(Invalid argument|Exec format|Bad message|No such)" "$err"
ht_match "incoming: ... and a log line" "import set=- result=E[A-Z]+ pause_us=- file=catjunk.tar uid=0 reason=" \
	"$(grep "file=catjunk.tar" "$M/events")"
ht_expect_fail "incoming: dd of junk fails" EINVAL "dd: .*ddjunk.tar" dd if="$T/junk.tar" of="$M/incoming/ddjunk.tar" status=none
ht_eq "incoming: junk left HEAD alone" "$head3" "$(fs_head)"
ht_eq "incoming: no empty-bundle import anywhere" 0 "$(grep -c "empty bundle" "$M/events")"
ht_eq "incoming: nothing left behind" "" "$(ls -A "$M/incoming")"

# ---- hp apply/revert through the mount: the outcome and exit status of the library --------
# The same cases run once here and once without a mount (below); the
# transcripts (stdout, stderr, exit status; pauses as N) must be equal.
fs_server --spin
spin2=$FS_SRV
cli_case() {
	local out err rc
	out=$("$HP_BIN" "$@" 2>"$T/cli.err")
	rc=$?
	err=$(cat "$T/cli.err")
	printf '$ hp %s\n%s\n! %s\nrc=%s\n' "$*" "$out" "$err" "$rc" | sed -E 's/[0-9]+ us\)/N us)/; s/"pause_us":[0-9]+/"pause_us":N/; s/\([0-9]+ checks\)/(N checks)/'
}
cli_cases() {
	cli_case apply "$P"
	cli_case apply "$P"
	cli_case --json apply "$P"
	cli_case revert "$P"
	cli_case revert "$P"
	cli_case --json apply "$P"
	cli_case --json revert "$P"
	cli_case apply "$gone"
	cli_case revert "$gone"
	cli_case apply "$sleeper"
	cli_case apply "$P" 2026-05
	cli_case apply "$misfit"
	cli_case apply "$spin2"
	cli_case apply "$P" 2026-13
	cli_case apply all no-such-target
}
via_mount=$(cli_cases)
# cli_block 'apply PID' [N]: that case's lines (its Nth run, default 1st), on one line.
cli_block() {
	printf '%s\n' "$via_mount" |
		awk -v h="hp $1" -v n="${2:-1}" 'p && index($0, "$ hp ") == 1 { exit }
			$0 == "$ " h && ++seen == n { p = 1; next } p' | tr '\n' ' '
}
ht_eq "hp apply through the mount: applied, exit 0" \
	"$P: applied 2026.01/2026-03/cve-2026-0001 (pause N us) !  rc=0 " "$(cli_block "apply $P")"
ht_eq "hp revert through the mount: reverted, exit 0" \
	"$P: reverted 2026.01/2026-03/cve-2026-0001 (pause N us) !  rc=0 " "$(cli_block "revert $P")"
ht_match "hp --json apply through the mount: the result with comm" \
	'^\[\{"pid":[0-9]+,"comm":"demo-server","result":"ok","set":"2026.01/2026-03/cve-2026-0001","sets":1,"changed":false' \
	"$(cli_block "--json apply $P")"
for e in "apply $gone:no process $gone" "revert $gone:no process $gone" \
	"revert $P:nothing applied to process $P:2" \
	"apply $sleeper:nothing published for process $sleeper" \
	"apply $P 2026-05:nothing published for process $P .* in 2026-05" \
	"apply $misfit:.+" "apply $spin2:.+ active" "apply $P 2026-13:.*not a month" \
	"apply all no-such-target:no target no-such-target"; do
	c=${e%%:*} rest=${e#*:} nth=1
	case $rest in *:2) nth=2 rest=${rest%:2} ;; esac
	ht_match "hp $c through the mount: one line on stderr, exit 1" \
		"^ ! hp ${c%% *}: $rest[^!]* rc=1 $" "$(cli_block "$c" "$nth")"
done
ht_check "the mount's log has them all (they went through the mount)" \
	grep -q "apply pid=$spin2 set=- result=EBUSY" "$M/events"

# ---- a clean stop -------------------------------------------------------------------------
# With a file held open: its RELEASE never comes before the stop (as when a
# reader closes just before it: the kernel sends RELEASE after close returns).
# The daemon lets go of such handles at the unmount; the sanitizer build
# would count each as a leak and exit 1.
exec 9<"$M/status"
kill -TERM "$FS_PID"
ht_wait_exit "$FS_PID" 15
rc=$?
exec 9<&-
ht_eq "SIGTERM with a file held open: the daemon exits 0" 0 "$rc"
[ "$rc" = 0 ] || sed 's/^/#   hotpatchfs: /' "$fs_out" >&2
ht_expect_fail "SIGTERM: no mount is left" 1 '' fs_mounted "$M"
ht_check "mount again" fs_mount "$M"
daemon_out=$HT_LAST_OUT
ht_check "fusermount3 -u" fusermount3 -u "$M"
ht_wait_exit "$FS_PID" 15
ht_eq "fusermount3 -u: the daemon exits 0" 0 "$?"
ht_eq "the daemon printed nothing at start or stop (no thread-limit warning)" "" "$(cat "$daemon_out")"
ht_expect_fail "fusermount3 -u: no mount is left" 1 '' fs_mounted "$M"
direct=$(cli_cases)
ht_eq "hp apply/revert without a mount: the same transcript as through it" "$via_mount" "$direct"
# Without a mount, hp goes to the library directly: the state is the one the mount saw.
ht_check "no mount: hp apply PID (library)" "$HP_BIN" apply "$P"
ht_match "no mount: hp status sees it" "state: hotpatched" "$("$HP_BIN" status "$P")"
ht_match "no mount: hp apply again changes nothing" "already applied" "$("$HP_BIN" apply "$P")"
ht_check "mount again: it sees what the library did" fs_mount "$M"
ht_match "the mount's status agrees" "state: hotpatched" "$(cat "$M/processes/$P/status")"
ht_check "fusermount3 -u again" fusermount3 -u "$M"
ht_wait_exit "$FS_PID" 15
ht_check "no mount: hp revert PID (library)" "$HP_BIN" revert "$P"
ht_match "no mount: reverted" "applied=- " "$("$HP_BIN" status "$P")"
err=$("$HP_BIN" revert "$P" 2>&1)
ht_match "no mount: revert of nothing: one line, ENOENT's words" "^hp revert: nothing applied to process $P" "$err"
ht_expect_fail "a missing store is a clear error that names it" 1 "^hotpatchfs: .*nope.git" "$HP_FS_BIN" --store "$T/nope.git" -f "$M"

ht_end

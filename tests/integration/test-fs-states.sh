#!/bin/bash
# The process states of docs/contract.md, each from a real process: up-to-date,
# not-up-to-date, hotpatched, needs-restart (an older baseline; a build no
# baseline covers), in processes/PID/status, report and hp status --json.
. "$HP_TEST_LIB/harness.sh"
ht_begin "fs-states"
. "$HP_SOURCE_ROOT/tests/fixtures/demo/fs-setup.sh"
fs_need

T=$HT_TMP
ht_check "store with a trusted key" fs_store
# Baseline 2026.01 covers misfit-a with nothing published yet? A baseline
# exists only through a set, so misfit-a gets its set in 2026-02 and the
# up-to-date case is a v2 server before 2026.04 has a month (see below).
ht_check "hp build: demo-server (2026.01) 2026-02" \
	fs_build "$FS_DEMO_BIN/demo-server" 2026-02 cve-2026-0001 "$T/feb.tar.gz" "$FS_DEMO_SRC/demo-fix.c"
ht_check "hp build: demo-server v2 (2026.04) 2026-05" \
	"$HP_BIN" build --target "$FS_DEMO_BIN/v2/demo-server" --baseline 2026.04 --month 2026-05 \
	--name cve-2026-0001 --sign "$FS_KEY" -o "$T/may.tar.gz" "$FS_DEMO_SRC/demo-fix.c"
ht_check "hp import 2026.01/2026-02" "$HP_BIN" import "$T/feb.tar.gz"
M=$T/mnt
ht_check "mount" fs_mount "$M"
fs_mounted "$M" || { ht_end; exit 1; }

state() { sed -n 's/^state: //p' "$M/processes/$1/status"; }

fs_server
v1=$FS_SRV
ht_eq "v1, a month published, not applied: not-up-to-date" not-up-to-date "$(state "$v1")"
echo "$v1" >"$M/apply"
ht_eq "v1, the newest month applied: hotpatched" hotpatched "$(state "$v1")"

ht_spawn "$FS_DEMO_BIN/v3/demo-server"
v3=$HT_LAST_PID
ht_wait_for 10 grep -q started "$HT_LAST_OUT"
ht_eq "v3, a build of a known target no baseline covers: needs-restart" needs-restart "$(state "$v3")"
ht_match "v3: its target is named, uncovered" "target: demo-server build-id=[0-9a-f]+ baseline=- " "$(cat "$M/processes/$v3/status")"
fs_expect_errno "v3: nothing published for it: ENOENT" "No such file or directory" "$M/apply" "$v3"

# A renamed copy of a target (same build-id): the store does not know its
# file name, yet it is that target. And one whose file is deleted since.
cp "$FS_DEMO_BIN/demo-server" "$T/renamed-srv"
cp "$FS_DEMO_BIN/demo-server" "$T/gone-srv"
ht_spawn "$T/renamed-srv"
ren=$HT_LAST_PID
ht_wait_for 10 grep -q started "$HT_LAST_OUT"
ht_spawn "$T/gone-srv"
gone=$HT_LAST_PID
ht_wait_for 10 grep -q started "$HT_LAST_OUT"
rm "$T/gone-srv"
procs=" $(ls "$M/processes" | tr '\n' ' ')"
ht_match "a renamed copy of a target is in processes/ (by build-id)" " $ren " "$procs"
ht_match "a deleted renamed copy too" " $gone " "$procs"
report=$(cat "$M/report")
ht_match "the renamed copy is in the report, as the store's target" \
	"pid=$ren comm=renamed-srv state=not-up-to-date target=demo-server baseline=2026.01" "$report"
ht_match "the deleted one too" "pid=$gone comm=gone-srv state=not-up-to-date target=demo-server" "$report"
ht_match "hp --json report (the library's list) has it" "\"pid\":$ren,\"comm\":\"renamed-srv\"" \
	"$("$HP_BIN" --json report)"

# A process listed before its exec (a shell that has forked, waiting) and
# again right after it: same pid, same start time, now a target.
mkfifo "$T/go"
ht_spawn bash -c 'read -r _ <"$1"; exec "$2"' bash "$T/go" "$T/renamed-srv"
late=$HT_LAST_PID
late_out=$HT_LAST_OUT
ht_wait_for 10 grep -qx bash "/proc/$late/comm"
ht_expect_fail "before its exec: not listed" 1 '' sh -c 'ls "$1" >"$2" && grep -qx "$3" "$2"' sh "$M/processes" "$T/listing" "$late"
echo go >"$T/go"
ht_wait_for 10 grep -q started "$late_out"
ht_check "after its exec: listed at once (not a stale answer for the old program)" \
	grep -qx "$late" <(ls "$M/processes")

before_may=$(fs_head)
ht_check "hp import 2026.04/2026-05 (a newer baseline of demo-server)" "$HP_BIN" import "$T/may.tar.gz"
ht_eq "v1, on the older baseline, patched or not: needs-restart" needs-restart "$(state "$v1")"
ht_match "v1: the newer baseline is named" "newer-baseline=2026.04" "$(cat "$M/processes/$v1/status")"
ht_spawn "$FS_DEMO_BIN/v2/demo-server"
v2=$HT_LAST_PID
ht_wait_for 10 grep -q started "$HT_LAST_OUT"
ht_eq "v2, on the newest baseline, its month not applied: not-up-to-date" not-up-to-date "$(state "$v2")"
echo "$v2" >"$M/apply"
ht_eq "v2 patched: hotpatched" hotpatched "$(state "$v2")"
echo "$v2" >"$M/revert"
# HEAD moved by git itself, not by hp: the next apply acts on the catalog it
# names at once (the daemon looks at HEAD for every apply; its watch of HEAD's
# files, not a timer, says when to read it again).
may_head=$(fs_head)
git --git-dir="$HP_STORE" update-ref HEAD "$before_may"
fs_expect_errno "HEAD moved back by git: the next apply finds v2's set gone" \
	"No such file or directory" "$M/apply" "$v2"
ht_match "... and says so" "nothing published for process $v2" "$(grep "apply pid=$v2 " "$M/events" | tail -1)"
git --git-dir="$HP_STORE" update-ref HEAD "$may_head"
echo "$v2" >"$M/apply"
ht_eq "HEAD forward again: the next apply patches" hotpatched "$(state "$v2")"
echo "$v2" >"$M/revert"

# up-to-date: on the current baseline with nothing published for it. A
# process mapping no target the store knows says so too.
ht_spawn sleep 60
other=$HT_LAST_PID
ht_eq "a process with no known target: up-to-date" up-to-date "$(state "$other")"
ht_match "... and says it maps none" "target: none known to the store" "$(cat "$M/processes/$other/status")"
ht_expect_fail "... and is not in the report" 1 '' grep -q "pid=$other " "$M/report"

report=$(cat "$M/report")
ht_match "report: v1 needs-restart" "pid=$v1 comm=demo-server state=needs-restart" "$report"
ht_match "report: v3 needs-restart" "pid=$v3 comm=demo-server state=needs-restart" "$report"
ht_match "report: v2 not-up-to-date" "pid=$v2 comm=demo-server state=not-up-to-date" "$report"
ht_match "hp --json status: needs-restart with the newer baseline" \
	'"state":"needs-restart".*"newer_baseline":"2026.04"' "$("$HP_BIN" --json status "$v1")"

ht_end

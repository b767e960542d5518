#!/bin/bash
# The exclusions of the configuration file, as an admin meets them: "all"
# (apply and revert, through the file, through hp on the mount, and hp with
# no daemon) leaves an excluded process alone and says which rule did;
# status and the report say it too; a process named by its PID is applied
# and reverted all the same (the admin asked); SIGHUP and a restart of the
# daemon take a changed file; a bad file keeps the exclusions in use; "all"
# reverts only processes running a set for a target of its store (by
# build-id: another build of the same file name, patched from another
# store, is not its to revert).
. "$HP_TEST_LIB/harness.sh"
ht_begin "policy"
. "$HP_SOURCE_ROOT/tests/fixtures/demo/fs-setup.sh"
fs_need

T=$HT_TMP
S=$T/state
C=$T/hotpatchfs.conf
M=$T/mnt
ht_check "a store with demo-server's 2026-02 set" fs_demo_store

# write_back FILE TEXT: one write, then the outcome read back from the same handle (as hp does).
write_back() {
	python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.write(fd, sys.argv[2].encode())
os.lseek(fd, 0, 0)
sys.stdout.write(os.read(fd, 1 << 16).decode())' "$1" "$2"
}
state_of() { sed -n 's/^state: //p' "$M/processes/$1/status"; }

# Three copies of the same build (one build-id): one kept, one excluded by
# name, one by program path.
for n in kept-server skip-server exe-server; do cp "$FS_DEMO_BIN/demo-server" "$T/$n"; done
ht_spawn "$T/kept-server"; kept=$HT_LAST_PID
ht_spawn "$T/skip-server"; skip=$HT_LAST_PID
ht_spawn "$T/exe-server"; exe=$HT_LAST_PID

: >"$C"
ht_check "mount (a configuration without exclusions)" fs_conf_mount
ht_eq "status: no exclusion listed" "" "$(grep '^exclude-' "$M/status")"
printf '# opted out by the admin\nexclude-name = skip-server\nexclude-exe = %s\n' "$T/exe-server" >"$C"
kill -HUP "$FS_PID"
ht_check "SIGHUP: status lists the exclusions in use" ht_wait_for 10 grep -qx "exclude-exe: $T/exe-server" "$M/status"
ht_match "... by name too, and the file they come from" "config: $C
exclude-exe: $T/exe-server
exclude-name: skip-server" "$(sed -n '/^config:/,$p' "$M/status")"

# ---- echo all > apply --------------------------------------------------------------
out=$(write_back "$M/apply" "all")
ht_eq "echo all > apply: exit 0" 0 "$?"
ht_match "... the kept process applied" "^$kept ok set=2026.01/2026-02/cve-2026-0001 sets=1 changed=1 " "$out"
ht_match "... the one excluded by name left alone, with the rule" \
	"^$skip excluded exclude-name=skip-server comm=skip-server\$" "$out"
ht_match "... the one excluded by path too" "^$exe excluded exclude-exe=$T/exe-server comm=exe-server\$" "$out"
ht_eq "kept: hotpatched" hotpatched "$(state_of "$kept")"
ht_eq "excluded by name: not patched" not-up-to-date "$(state_of "$skip")"
ht_eq "excluded by path: not patched" not-up-to-date "$(state_of "$exe")"
ht_match "status says the rule" "^excluded: exclude-name=skip-server \(\"all\" and auto-apply leave it alone\)\$" \
	"$(cat "$M/processes/$skip/status")"
ht_eq "... and nothing for a process not excluded" "" "$(grep '^excluded:' "$M/processes/$kept/status")"
ht_match "an event per excluded process, with the rule" \
	"apply pid=$skip set=- result=excluded pause_us=- rule=exclude-name=skip-server uid=0 exe=$T/skip-server" \
	"$(cat "$M/events")"
ht_match "the counters count only what was applied" "applies: 1 ok, 0 failed" "$(cat "$M/status")"
ht_match "MNT/report: the rule on the excluded process's line" \
	"pid=$skip comm=skip-server state=not-up-to-date .* excluded=exclude-name=skip-server\$" "$(cat "$M/report")"
ht_match "hp report: the same" "pid=$exe comm=exe-server state=not-up-to-date .* excluded=exclude-exe=$T/exe-server\$" \
	"$("$HP_BIN" report)"
ht_match "hp --json status: excluded" "\"state\":\"not-up-to-date\",.*\"excluded\":\"exclude-name=skip-server\"" \
	"$("$HP_BIN" --json status "$skip")"
ht_match "MNT/report: the summary counts the excluded" "^# summary: .*; 2 excluded\$" "$(cat "$M/report")"
ht_match "hp --json report: so does its summary" '"summary":\{.*"excluded":2\}' "$("$HP_BIN" --json report)"
# (--name: the machine may run other builds of demo-server, other tests')
ht_expect_fail "hp report --check: an excluded unpatched process is still not compliant" 1 \
	"hp report: 1 of 1 processes neither hotpatched nor up-to-date" "$HP_BIN" report --check --name skip-server

# ---- a PID named explicitly: applied all the same ---------------------------------------
fs_echo "$M/apply" "$skip"
ht_eq "echo PID > apply of an excluded process: exit 0 (the admin named it)" 0 "$FS_RC"
ht_eq "... it is hotpatched" hotpatched "$(state_of "$skip")"
ht_match "... and still said to be excluded from \"all\"" "^excluded: exclude-name=skip-server" \
	"$(cat "$M/processes/$skip/status")"

# ---- hp apply / revert all through the mount ------------------------------------------------
out=$("$HP_BIN" revert all)
ht_eq "hp revert all: exit 0" 0 "$?"
ht_match "... the kept process reverted" "^$kept: reverted 2026.01/2026-02/cve-2026-0001" "$out"
ht_match "... the excluded one left alone, a line with the rule" \
	"^$skip: excluded by the configuration \(exclude-name=skip-server\): left alone\$" "$out"
ht_eq "... which stays hotpatched" hotpatched "$(state_of "$skip")"
ht_eq "... the kept one is back to the original" not-up-to-date "$(state_of "$kept")"
out=$("$HP_BIN" --json apply all)
ht_eq "hp --json apply all: exit 0" 0 "$?"
ht_match "... the excluded one as JSON" \
	"\{\"pid\":$exe,\"comm\":\"exe-server\",\"result\":\"excluded\",\"excluded\":\"exclude-exe=$T/exe-server\"\}" "$out"
ht_match "... the kept one applied" "\{\"pid\":$kept,\"comm\":\"kept-server\",\"result\":\"ok\"" "$out"
ht_check "... the whole output is JSON" python3 -c 'import json, sys; json.loads(sys.argv[1])' "$out"
fs_echo "$M/revert" "$skip"
ht_eq "echo PID > revert of an excluded process: exit 0" 0 "$FS_RC"
ht_eq "... reverted" not-up-to-date "$(state_of "$skip")"

# ---- a bad file on SIGHUP keeps the exclusions; a good one replaces them ------------------------
printf 'exclude-name = a-name-longer-than-fifteen\n' >"$C"
kill -HUP "$FS_PID"
ht_check "a bad configuration on SIGHUP: an event with the reason" ht_wait_for 10 \
	grep -q "config set=- result=EINVAL pause_us=- uid=0 reason=\"$C:1: exclude-name: 'a-name-longer-than-fifteen' is longer than a process name (15)\"" "$M/events"
ht_match "... the exclusions in use stay" "exclude-name: skip-server" "$(cat "$M/status")"
printf 'exclude-name = skip-server\n' >"$C"
kill -HUP "$FS_PID"
ht_check "SIGHUP: the path exclusion is gone" ht_wait_for 10 sh -c "! grep -q '^exclude-exe:' '$M/status'"
out=$(write_back "$M/apply" "all")
ht_match "echo all > apply: the process no longer excluded is patched" "^$exe ok set=2026.01/2026-02/cve-2026-0001 sets=1 changed=1 " "$out"
ht_eq "... its status says nothing of exclusion" "" "$(grep '^excluded:' "$M/processes/$exe/status")"

# ---- revert all: only what runs a set for a target of this store (by build-id) ---------------
# Another build of demo-server (the same file name, another build-id),
# patched from another store: this store's "all" is not its to revert.
S2=$T/other.git
ht_check "another store, trusting the same key" sh -c 'HP_STORE=$1 "$2" store init >/dev/null &&
	HP_STORE=$1 "$2" key trust "$3" >/dev/null' sh "$S2" "$HP_BIN" "$T/key/hotpatch.pub"
ht_check "... a set for the other build" env HP_STORE="$S2" "$HP_BIN" build --target "$FS_DEMO_BIN/v3/demo-server" \
	--baseline 2026.01 --month 2026-02 --name other-fix --sign "$FS_KEY" -o "$T/other.tar.gz" "$FS_DEMO_SRC/demo-fix.c"
ht_check "... imported" env HP_STORE="$S2" "$HP_BIN" import "$T/other.tar.gz"
ht_spawn "$FS_DEMO_BIN/v3/demo-server"; other=$HT_LAST_PID
ht_check "... applied to a process of the other build" env HP_STORE="$S2" "$HP_BIN" apply "$other"
out=$(write_back "$M/revert" "all")
ht_eq "echo all > revert: exit 0" 0 "$?"
ht_eq "... no line for the process running the other store's set" "" "$(grep "^$other " <<<"$out")"
ht_match "... which runs it still" "applied=2026.01/2026-02/other-fix" \
	"$(HP_STORE=$S2 "$HP_BIN" status "$other" 2>/dev/null)"
fs_echo "$M/revert" "$other"
ht_eq "echo PID > revert: its PID still reverts it" 0 "$FS_RC"
ht_match "... reverted" "applied=- " "$(HP_STORE=$S2 "$HP_BIN" status "$other" 2>/dev/null)"

# ---- a restart of the daemon reads the file ----------------------------------------------------------
ht_check "unmount" fs_conf_umount
ht_check "mount again" fs_conf_mount
ht_match "after the restart: the exclusions of the file" "exclude-name: skip-server" "$(cat "$M/status")"
out=$(write_back "$M/apply" "all")
ht_match "echo all > apply: still left alone" "^$skip excluded exclude-name=skip-server comm=skip-server\$" "$out"
ht_eq "... not patched" not-up-to-date "$(state_of "$skip")"
fs_echo "$M/apply" "$skip"
ht_eq "explicit apply once more" 0 "$FS_RC"
ht_check "unmount" fs_conf_umount

# ---- hp with no daemon: the same file ($HP_CONFIG here; /etc/hotpatch/hotpatchfs.conf by default) --------
export HP_MOUNT=$M
out=$(HP_CONFIG=$C "$HP_BIN" revert all 2>"$T/err")
ht_eq "hp revert all without a daemon: exit 0" 0 "$?"
ht_match "... it says it acts on the store directly" "hotpatchfs is not running" "$(cat "$T/err")"
ht_match "... the excluded process left alone, with the rule" \
	"^$skip: excluded by the configuration \(exclude-name=skip-server\): left alone\$" "$out"
ht_match "... the others reverted" "^$kept: reverted .*
$exe: reverted " "$out"
ht_match "hp status: hotpatched, and excluded" "state: hotpatched
excluded: exclude-name=skip-server" "$(HP_CONFIG=$C "$HP_BIN" status "$skip" 2>/dev/null)"
out=$(HP_CONFIG=$T/none.conf "$HP_BIN" revert all 2>/dev/null)
ht_match "a missing configuration file: no exclusion" "^$skip: reverted " "$out"
printf 'exclude-name = skip-server\ncolour = blue\n' >"$T/bad.conf"
ht_expect_fail "a bad configuration file: hp apply all refuses, exit 1" 1 \
	"^hp apply: $T/bad.conf:2: unknown key 'colour'\$" env HP_CONFIG="$T/bad.conf" "$HP_BIN" apply all
out=$(HP_CONFIG=$T/bad.conf "$HP_BIN" status "$skip" 2>"$T/err")
ht_eq "... hp status shows the state all the same: exit 0" 0 "$?"
ht_match "... with a warning naming the file and line" \
	"^hp status: warning: $T/bad.conf:2: unknown key 'colour' \(exclusions not shown\)\$" "$(grep warning "$T/err")"
ht_match "... and the state" "^state: not-up-to-date\$" "$out"
ht_eq "... and patched nothing" not-up-to-date "$(HP_CONFIG=$C "$HP_BIN" status "$kept" 2>/dev/null | sed -n 's/^state: //p')"
ht_expect_fail "... hp --json apply all: the error as JSON, exit 1" 1 \
	"^\{\"command\":\"apply\",\"result\":\"EINVAL\",\"error\":\"$T/bad.conf:2: unknown key 'colour'\"\}\$" \
	sh -c 'HP_CONFIG="$1" "$2" --json apply all 2>/dev/null' sh "$T/bad.conf" "$HP_BIN"
ht_end

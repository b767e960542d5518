#!/bin/bash
# What an admin runs into, driven as an admin would, on real processes and a
# real store: one cumulative set per target and month (refused, or replaced
# explicitly), a set withdrawn and a key revoked (the status says so, apply
# moves processes on or reverts them), the compliance report and its check,
# the functions a status lists, --retries, --help of every command and
# --json output (errors included) of every command.
. "$HP_TEST_LIB/harness.sh"
ht_begin "admin"
. "$HP_SOURCE_ROOT/tests/fixtures/demo/fs-setup.sh"
fs_need

T=$HT_TMP
# A target name of this run alone: the report lists every process on the
# machine that maps a target the store knows (other tests run demo-server).
SRV=hp-adm-$$
cp "$FS_DEMO_BIN/demo-server" "$T/$SRV"
export HP_MOUNT=$T/no-mount # no daemon expected in this test but where it says
ht_check "store with a trusted key" fs_store
build() { # MONTH NAME OUT SRC [CVE]
	"$HP_BIN" build --target "$T/$SRV" --baseline 2026.01 --month "$1" \
		--name "$2" --sign "$FS_KEY" ${5:+--cve "$5"} -o "$3" "$4" >/dev/null
}
ht_check "hp build: feb fix-a" build 2026-02 fix-a "$T/a.tar.gz" "$FS_DEMO_SRC/demo-fix.c" CVE-2026-0001
ht_check "hp build: feb fix-b (a second set for the same month)" \
	build 2026-02 fix-b "$T/b.tar.gz" "$FS_DEMO_SRC/demo-fix-march.c" CVE-2026-0002
ht_check "hp build: mar fix-c" build 2026-03 fix-c "$T/c.tar.gz" "$FS_DEMO_SRC/demo-fix-march.c" CVE-2026-0003
ht_check "hp import fix-a" "$HP_BIN" import "$T/a.tar.gz"

# ---- one cumulative set per target and month ----------------------------------
head=$(fs_head)
tree=$(git --git-dir="$HP_STORE" rev-parse 'HEAD^{tree}')
err=$("$HP_BIN" import "$T/b.tar.gz" 2>&1)
ht_eq "a second set for the same target and month: exit 1" 1 "$?"
ht_match "... says why, and how to publish a cumulative one or replace it" \
	"^hp import: .*2026.01/2026-02/fix-b: target $SRV already has 2026.01/2026-02/fix-a for 2026-02, and a month holds one cumulative set per target: build one set with every fix of the month, or replace that one with hp import --replace$" "$err"
ht_eq "... in one line" 1 "$(printf '%s\n' "$err" | wc -l)"
ht_eq "... HEAD unchanged" "$head" "$(fs_head)"
ht_eq "... tree unchanged" "$tree" "$(git --git-dir="$HP_STORE" rev-parse 'HEAD^{tree}')"
ht_eq "hp list still shows one set" "1" "$("$HP_BIN" list | wc -l)"
out=$("$HP_BIN" --json import "$T/b.tar.gz" 2>/dev/null)
ht_match "--json import: the refusal is JSON with its errno" '"bundle":".*b.tar.gz","result":"EEXIST","error":' "$out"

fs_server_as() { # start $T/$SRV, wait for its first line; FS_SRV, FS_SRV_OUT
	ht_spawn "$T/$SRV"
	FS_SRV=$HT_LAST_PID
	FS_SRV_OUT=$HT_LAST_OUT
	ht_wait_for 10 grep -q started "$FS_SRV_OUT"
}
fs_server_as
P=$FS_SRV
ht_check "demo-server runs vulnerable" fs_wait_output "$FS_SRV_OUT" "VULNERABLE"
ht_check "apply fix-a" "$HP_BIN" apply "$P"
st=$("$HP_BIN" status "$P")
ht_match "status: hotpatched with fix-a" "state: hotpatched" "$st"
ht_match "status lists the patched functions" "functions: $SRV handle_request" "$st"
ht_match "status lists the CVEs" "cves: $SRV CVE-2026-0001" "$st"

out=$("$HP_BIN" import --replace "$T/b.tar.gz")
ht_match "import --replace: imported" "imported 2026.01/2026-02/fix-b" "$out"
ht_match "... one commit naming both" "import 2026.01/2026-02/fix-b replacing 2026.01/2026-02/fix-a" "$("$HP_BIN" log | head -1)"
ht_eq "hp list: only fix-b for 2026-02" "2026.01/2026-02/fix-b" "$("$HP_BIN" list | awk '{print $1}')"
st=$("$HP_BIN" status "$P")
ht_match "the process running the replaced set: withdrawn, not hotpatched" "state: withdrawn" "$st"
ht_match "... and why" "withdrawn: 2026.01/2026-02/fix-a replaced by 2026.01/2026-02/fix-b" "$st"
out=$("$HP_BIN" report --check 2>&1)
ht_eq "report --check: exit 1 while a process runs a withdrawn set" 1 "$("$HP_BIN" report --check >/dev/null 2>&1; echo $?)"
ht_match "... names it" "pid=$P comm=$SRV state=withdrawn .*withdrawn=2026.01/2026-02/fix-a" "$out"
ht_check "apply moves it to the replacement" "$HP_BIN" apply "$P"
ht_match "... hotpatched with fix-b" "applied=2026.01/2026-02/fix-b .*state=hotpatched" "$("$HP_BIN" status "$P")"
err=$("$HP_BIN" import "$T/a.tar.gz" 2>&1)
ht_match "a withdrawn set id is never reused" "fix-a was withdrawn \(see hp log\): publish the fix under another name" "$err"

# ---- withdraw ---------------------------------------------------------------------
ht_check "import fix-c (2026-03)" "$HP_BIN" import "$T/c.tar.gz"
ht_check "apply fix-c" "$HP_BIN" apply "$P"
head=$(fs_head)
out=$("$HP_BIN" withdraw --reason "crashes under load" 2026.01/2026-03/fix-c)
ht_eq "hp withdraw" "withdrawn 2026.01/2026-03/fix-c" "$out"
ht_match "... one commit, in the audit trail" "withdraw 2026.01/2026-03/fix-c" "$("$HP_BIN" log | head -1)"
ht_eq "... its parent is the old HEAD" "$head" "$(git --git-dir="$HP_STORE" rev-parse HEAD~1)"
ht_eq "hp withdraw again: already" "already withdrawn 2026.01/2026-03/fix-c" "$("$HP_BIN" withdraw 2026.01/2026-03/fix-c)"
err=$("$HP_BIN" withdraw 2026.01/2026-03/nope 2>&1)
ht_eq "withdraw an unknown set: exit 1, one line" "1 hp withdraw: no patch set 2026.01/2026-03/nope" \
	"$("$HP_BIN" withdraw 2026.01/2026-03/nope >/dev/null 2>&1; echo $?) $err"
ht_eq "withdraw a malformed id: exit 1" "hp withdraw: 'x/y' is not a set id (BASELINE/MONTH/NAME)" \
	"$("$HP_BIN" withdraw x/y 2>&1)"
ht_expect_fail "the catalog no longer lists it" 1 '' sh -c "'$HP_BIN' list | grep -q fix-c"
st=$("$HP_BIN" status "$P")
ht_match "status: withdrawn with the reason" "withdrawn: 2026.01/2026-03/fix-c crashes under load" "$st"
ht_match "... state withdrawn" "state: withdrawn" "$st"
out=$("$HP_BIN" apply "$P")
ht_match "apply moves it back to the newest valid set" "$P: applied 2026.01/2026-02/fix-b" "$out"
ht_match "... hotpatched" "state: hotpatched" "$("$HP_BIN" status "$P")"

# ---- revoke: every set the key signed is withdrawn; apply reverts ----------------
keyid=$(git --git-dir="$HP_STORE" ls-tree --name-only HEAD trusted-keys/ | sed 's|.*/||; s|\.pub$||')
out=$("$HP_BIN" key revoke --reason "leaked" "$T/key/hotpatch.pub")
ht_eq "hp key revoke: withdraws the one valid set it signed" "revoked $T/key/hotpatch.pub; withdrew 1 set it signed" "$out"
ht_match "... one commit" "revoke key $keyid" "$("$HP_BIN" log | head -1)"
ht_eq "... hp list is empty" "" "$("$HP_BIN" list)"
ht_match "status: withdrawn, signed by the revoked key" "withdrawn: 2026.01/2026-02/fix-b signed by revoked key $keyid \(leaked\)" "$("$HP_BIN" status "$P")"
err=$("$HP_BIN" key trust "$T/key/hotpatch.pub" 2>&1)
ht_eq "trusting a revoked key again: refused" "hp key trust: key $keyid was revoked (see hp log): generate a new key" "$err"
"$HP_BIN" build --target "$T/$SRV" --baseline 2026.01 --month 2026-03 \
	--name fix-d --sign "$FS_KEY" -o "$T/d.tar.gz" "$FS_DEMO_SRC/demo-fix.c" >/dev/null
head=$(fs_head)
err=$("$HP_BIN" import "$T/d.tar.gz" 2>&1)
ht_match "import of a bundle signed by it: refused" "signed by revoked key $keyid \(see hp log\)" "$err"
ht_eq "... store unchanged" "$head" "$(fs_head)"
out=$("$HP_BIN" apply "$P")
ht_match "apply with no valid set left reverts the withdrawn one" "$P: reverted \(its set was withdrawn" "$out"
ht_check "... the original code runs" fs_wait_output "$FS_SRV_OUT" "VULNERABLE"
ht_match "... state needs nothing: up-to-date" "state: up-to-date" "$("$HP_BIN" status "$P")"

# ---- report ----------------------------------------------------------------------
"$HP_BIN" key generate "$T/key2" >/dev/null && "$HP_BIN" key trust "$T/key2/hotpatch.pub" >/dev/null
"$HP_BIN" build --target "$T/$SRV" --baseline 2026.01 --month 2026-03 \
	--name fix-e --sign "$T/key2/hotpatch.key" --cve CVE-2026-0005 --cve CVE-2026-0006 \
	-o "$T/e.tar.gz" "$FS_DEMO_SRC/demo-fix-march.c" >/dev/null
ht_check "import fix-e (new key)" "$HP_BIN" import "$T/e.tar.gz"
fs_server_as
Q=$FS_SRV
ht_check "apply fix-e to the first" "$HP_BIN" apply "$P"
rep=$("$HP_BIN" report)
ht_match "report: a header" "^# hotpatch report: host .*, store commit $(fs_head | cut -c1-12)" "$rep"
ht_match "report: applied time and CVE ids per process" \
	"pid=$P comm=$SRV state=hotpatched .* applied_at=20[0-9-]+T[0-9:]+Z cves=CVE-2026-0005,CVE-2026-0006" "$rep"
ht_match "report: the other one" "pid=$Q comm=$SRV state=not-up-to-date .*applied_at=- cves=-" "$rep"
ht_match "report: a summary with the count per state" "# summary: 2 processes: 1 hotpatched, 1 not-up-to-date" "$rep"
ht_eq "report --state not-up-to-date: one process" "$Q" \
	"$("$HP_BIN" report --state not-up-to-date | sed -n 's/^pid=\([0-9]*\) .*/\1/p')"
ht_eq "report --target nope: none" "# summary: 0 processes" "$("$HP_BIN" report --target nope | tail -1)"
ht_eq "report --name $SRV: both" 2 "$("$HP_BIN" report --name "$SRV" | grep -c '^pid=')"
ht_eq "report --target $SRV: both" 2 "$("$HP_BIN" report --target "$SRV" | grep -c '^pid=')"
mkdir "$T/no-mount"
err=$("$HP_BIN" report 2>&1 >/dev/null)
ht_eq "with an empty mount point, hp says the daemon is not running" \
	"hp report: hotpatchfs is not running (nothing serves this store at $T/no-mount): acting on the store directly" "$err"
rmdir "$T/no-mount"
err=$("$HP_BIN" report --state happy 2>&1)
ht_eq "report --state with an unknown state: exit 2" 2 "$("$HP_BIN" report --state happy >/dev/null 2>&1; echo $?)"
ht_match "... one line naming the states" "^hp report: 'happy' is not a state \(up-to-date, hotpatched" "$err"
ht_eq "report --check: exit 1 while one is not-up-to-date" 1 "$("$HP_BIN" report --check >/dev/null 2>&1; echo $?)"
out=$("$HP_BIN" report --check 2>/dev/null)
ht_expect_fail "... lists only the process that needs attention" 1 '' grep -q "^pid=$P " <<<"$out"
ht_match "... and it" "^pid=$Q " "$out"
# shellcheck source=../../contrib/completion/hp.bash
. "$HP_SOURCE_ROOT/contrib/completion/hp.bash"
COMP_WORDS=("$HP_BIN" revert "")
COMP_CWORD=2
COMPREPLY=()
_hp
words=" ${COMPREPLY[*]} "
ht_match "hp revert <Tab> offers the patched process" " $P " "$words"
ht_expect_fail "... and not the one with nothing applied" 1 '' grep -q " $Q " <<<"$words"
ht_check "apply all" "$HP_BIN" apply all
ht_check "report --check: exit 0 when every process is hotpatched" "$HP_BIN" report --check
out=$("$HP_BIN" --json report)
ht_check "--json report parses, with a summary" python3 -c \
	'import json,sys; d=json.loads(sys.argv[1]); assert d["summary"]["hotpatched"] == 2, d' "$out"

# ---- apply --retries ----------------------------------------------------------------
err=$("$HP_BIN" apply --retries many "$P" 2>&1)
ht_eq "--retries takes a count: exit 2, one line" "2 hp apply: --retries takes a count from 0 to 100, not 'many'" \
	"$("$HP_BIN" apply --retries many "$P" >/dev/null 2>&1; echo $?) $err"
ht_match "--retries 3 (nothing to retry)" "already applied" "$("$HP_BIN" apply --retries 3 "$P")"
# A server whose replaced function stays active until a gate opens: EBUSY,
# tried again as asked, then the gate opens and a plain apply goes through.
ht_spawn "$T/$SRV" --gate "$T/gate" --interval 50
G=$HT_LAST_PID
ht_wait_for 30 grep -q "request 1: working" "$HT_LAST_OUT"
err=$("$HP_BIN" apply --retries 1 "$G" 2>&1)
ht_eq "--retries 1 on a function that stays active: exit 1" 1 "$("$HP_BIN" apply --retries 0 "$G" >/dev/null 2>&1; echo $?)"
ht_match "... EBUSY, after the retry" "^hp apply: after 1 retries: .*active" "$err"
touch "$T/gate"
ht_check "the gate open: the apply goes through" "$HP_BIN" apply --retries 2 "$G"
kill -KILL "$G"
wait "$G" 2>/dev/null

# ---- --help of every command, --json of every command -------------------------------
for cmd in import list show log withdraw store key apply revert status report build; do
	out=$("$HP_BIN" "$cmd" --help 2>/dev/null)
	ht_eq "hp $cmd --help: exit 0" 0 "$("$HP_BIN" "$cmd" --help >/dev/null 2>&1; echo $?)"
	ht_match "hp $cmd --help: usage on stdout" "^usage: hp $cmd" "$out"
done
ht_eq "hp apply --help is not a process id" "" "$("$HP_BIN" apply --help 2>&1 >/dev/null)"
ht_match "hp help apply = hp apply --help" "^usage: hp apply \[--retries N\]" "$("$HP_BIN" help apply)"

# Each command's stdout is kept; one python3 run checks every one is a JSON document.
n_json=0
json_ok() { # DESC CMD...: stdout is one JSON document, whatever the exit status
	local desc=$1
	shift
	n_json=$((n_json + 1))
	printf '%s\n' "$desc" >"$T/json.$n_json.desc"
	"$@" >"$T/json.$n_json.out" 2>/dev/null
}
J="$HP_BIN --json"
json_ok "--json import (ok)" $J import "$T/e.tar.gz"
json_ok "--json import (a missing bundle)" $J import "$T/none.tar.gz"
json_ok "--json list" $J list
json_ok "--json list (error)" $J list 1999.01
json_ok "--json show" $J show 2026.01/2026-03/fix-e
json_ok "--json show (error)" $J show 2026.01/2026-03/nope
json_ok "--json log" $J log
json_ok "--json withdraw (error)" $J withdraw 2026.01/2026-03/nope
json_ok "--json store init (error: exists)" $J store init
json_ok "--json store pull (error)" $J store pull "$T/no-remote"
json_ok "--json key generate" $J key generate "$T/key3"
json_ok "--json key trust" $J key trust "$T/key3/hotpatch.pub"
json_ok "--json key revoke" $J key revoke "$T/key3/hotpatch.pub"
json_ok "--json key trust (error: revoked)" $J key trust "$T/key3/hotpatch.pub"
json_ok "--json apply" $J apply "$P"
sh -c 'exit 0' &
gone=$!
wait "$gone"
json_ok "--json apply (error: no such process)" $J apply "$gone"
json_ok "--json revert" $J revert "$Q"
json_ok "--json status" $J status "$P"
json_ok "--json status (error)" $J status nope
json_ok "--json report" $J report
json_ok "--json usage error" $J apply
json_ok "--json unknown command" $J frobnicate
json_ok "--json version" $J version
out=$(python3 - "$T" "$n_json" <<'PY'
import json, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(1, n + 1):
    desc = open(f"{d}/json.{i}.desc").read().strip()
    text = open(f"{d}/json.{i}.out").read()
    try:
        json.loads(text)
        print(f"ok {desc}")
    except ValueError:
        print(f"bad {desc}: {text!r}")
PY
)
while read -r verdict desc; do
	if [ "$verdict" = ok ]; then ht_ok "$desc"; else ht_not_ok "$desc"; fi
done <<<"$out"
ht_eq "every --json output checked" "$n_json" "$(printf '%s\n' "$out" | grep -c .)"
ht_match "--json apply error: the errno" '"result":"ESRCH"' "$(cat "$T/json.16.out")"

ht_end

#!/bin/bash
# The right to patch is the kernel's ptrace rule, and it holds for the
# process that is switched (ctl/perm.c, the engine's may_patch hook):
# - a user writes its child's PID into apply (and "PID MONTH") while the
#   child execs a set-uid-root copy of a target: 200 rounds, no set-uid
#   process may end up patched on the user's authority;
# - a process of the same uid that holds a capability is refused (EACCES,
#   "it holds capabilities"), through the mount, for revert, and by hp
#   without a mount; an ordinary process of the user is accepted;
# - set-uid, set-gid and non-dumpable processes stay refused, and the user
#   cannot write incoming/.
# The user is made here (useradd) and removed on exit.
set -u
: "${HP_TEST_LIB:?run through meson test}"
. "$HP_TEST_LIB/harness.sh"
ht_begin "security"
. "$HP_SOURCE_ROOT/tests/fixtures/demo/fs-setup.sh"
fs_need
for p in setpriv useradd userdel; do
	command -v "$p" >/dev/null || { echo "1..0 # SKIP $p missing"; exit 77; }
done
[ "$(id -u)" -eq 0 ] || { echo "1..0 # SKIP needs root"; exit 77; }

ROUNDS=${HP_SECURITY_ROUNDS:-200}
T=$HT_TMP
chmod 755 "$T"
U=hpsec$$
useradd -M -N -g nogroup -s /usr/sbin/nologin "$U" >/dev/null 2>&1 ||
	{ echo "1..0 # SKIP useradd $U failed"; exit 77; }
sec_cleanup() {
	local st=$?
	ht_cleanup
	pkill_list=$(ps -o pid= -u "$U" 2>/dev/null)
	for pid in $pkill_list; do kill -KILL "$pid" 2>/dev/null; done
	userdel -f "$U" >/dev/null 2>&1
	exit $st
}
trap sec_cleanup EXIT
as_user() { setpriv --reuid="$U" --regid=nogroup --clear-groups -- "$@"; }
# as_user_echo FILE TEXT: `echo TEXT > FILE` as the user; sets FS_RC, FS_ERR.
as_user_echo() {
	FS_ERR=$(as_user bash -c 'echo "$2" > "$1"' bash "$1" "$2" 2>&1)
	FS_RC=$?
}
# patched PID: does the process run a set of ours (its status, read by root)?
patched() { grep -q 'applied=2026\.01/' "$M/processes/$1/status" 2>/dev/null; }

ht_check "store with a trusted key" fs_store
ht_check "hp build 2026-02" fs_build "$FS_DEMO_BIN/demo-server" 2026-02 cve-2026-0001 \
	"$T/feb.tar.gz" "$FS_DEMO_SRC/demo-fix.c"
ht_check "hp build 2026-03" fs_build "$FS_DEMO_BIN/demo-server" 2026-03 cve-2026-0001 \
	"$T/mar.tar.gz" "$FS_DEMO_SRC/demo-fix-march.c"
ht_check "hp import" "$HP_BIN" import "$T/feb.tar.gz" "$T/mar.tar.gz"
chmod -R a+rX "$HP_STORE"

# Copies of the target: the user's own, set-uid root, set-gid root.
mkdir "$T/bin"
chmod 755 "$T/bin"
cp "$FS_DEMO_BIN/demo-server" "$T/bin/own"
cp "$FS_DEMO_BIN/demo-server" "$T/bin/suid"
cp "$FS_DEMO_BIN/demo-server" "$T/bin/sgid"
chmod 755 "$T/bin/own"
chown root:root "$T/bin/suid" "$T/bin/sgid"
chmod 4755 "$T/bin/suid"
chmod 2755 "$T/bin/sgid"

M=$T/mnt
ht_check "mount with allow_other" fs_mount "$M" -o allow_other
fs_mounted "$M" || { ht_end; exit 1; }

# start_as_user PROGRAM [setpriv options]: a server of the user's; its PID in SRV.
start_as_user() {
	local prog=$1
	shift
	ht_spawn setpriv --reuid="$U" --regid=nogroup --clear-groups "$@" -- "$prog" --interval 50
	SRV=$HT_LAST_PID
	ht_wait_for 10 grep -q started "$HT_LAST_OUT"
}

# ---- set-uid really is set-uid here (no nosuid mount under the temp dir) ----
start_as_user "$T/bin/suid"
suid_pid=$SRV
ht_match "the set-uid copy runs with euid 0" "^Uid:[[:space:]]+[0-9]+[[:space:]]+0[[:space:]]" \
	"$(grep '^Uid:' "/proc/$suid_pid/status")"

# ---- point 4: set-uid, set-gid, non-dumpable: refused, with the reason ----
as_user_echo "$M/apply" "$suid_pid"
ht_match "set-uid process of the user: EACCES" "Permission denied" "$FS_ERR"
ht_match "... one line: why" "^hp apply: uid [0-9]+ may not patch process $suid_pid \\(uid [0-9]+, gid [0-9]+, set-id\\)$" \
	"$(as_user "$HP_BIN" apply "$suid_pid" 2>&1)"
ht_expect_fail "... and it stays unpatched" 1 '' patched "$suid_pid"
start_as_user "$T/bin/sgid"
sgid_pid=$SRV
as_user_echo "$M/apply" "$sgid_pid"
ht_match "set-gid process of the user: EACCES" "Permission denied" "$FS_ERR"
ht_match "... one line: why" "may not patch process $sgid_pid \\(uid [0-9]+, gid [0-9]+, set-id\\)$" \
	"$(as_user "$HP_BIN" apply "$sgid_pid" 2>&1)"
# a process of the user's that made itself non-dumpable
ht_spawn setpriv --reuid="$U" --regid=nogroup --clear-groups -- /usr/bin/python3 -c \
	'import ctypes, time; ctypes.CDLL(None).prctl(4, 0, 0, 0, 0); print("started", flush=True); time.sleep(300)'
nd_pid=$HT_LAST_PID
ht_wait_for 10 grep -q started "$HT_LAST_OUT"
as_user_echo "$M/apply" "$nd_pid"
ht_match "non-dumpable process of the user: EACCES" "Permission denied" "$FS_ERR"
ht_match "... one line: why" "^hp apply: uid [0-9]+ may not patch process $nd_pid \\(not dumpable\\)$" \
	"$(as_user "$HP_BIN" apply "$nd_pid" 2>&1)"
head0=$(fs_head)
ht_expect_fail "the user cannot write incoming/" EACCES "cp: .*x.tar.gz" as_user cp "$T/feb.tar.gz" "$M/incoming/x.tar.gz"
ht_eq "... the store did not move" "$head0" "$(fs_head)"

# ---- point 2: same uid, but holding a capability ----
start_as_user "$T/bin/own" --inh-caps=+net_bind_service --ambient-caps=+net_bind_service
cap_pid=$SRV
ht_match "the capable process holds CAP_NET_BIND_SERVICE" "^CapPrm:[[:space:]]+0*400$" \
	"$(grep '^CapPrm:' "/proc/$cap_pid/status")"
ht_eq "... and is the user's, dumpable" "$U $U" \
	"$(stat -c %U "/proc/$cap_pid") $(stat -c %U "/proc/$cap_pid/environ")"
as_user_echo "$M/apply" "$cap_pid"
ht_match "apply of the capable process: EACCES" "Permission denied" "$FS_ERR"
err_cap_mount=$(as_user "$HP_BIN" apply "$cap_pid" 2>&1)
ht_match "... hp apply through the mount: the reason" \
	"^hp apply: uid [0-9]+ may not patch process $cap_pid \\(it holds capabilities\\)$" "$err_cap_mount"
ht_expect_fail "... and it stays unpatched" 1 '' patched "$cap_pid"
ht_check "root may patch it" "$HP_BIN" apply "$cap_pid"
as_user_echo "$M/revert" "$cap_pid"
ht_match "revert of the capable process by the user: EACCES" "Permission denied" "$FS_ERR"
ht_check "... and it stays patched" patched "$cap_pid"
ht_match "log: both refusals" "apply pid=$cap_pid set=- result=EACCES.*revert pid=$cap_pid .*result=EACCES" \
	"$(tr '\n' ' ' <"$M/events")"
start_as_user "$T/bin/own"
own_pid=$SRV
as_user_echo "$M/apply" "$own_pid"
ht_eq "an ordinary process of the user: accepted" "0 " "$FS_RC $FS_ERR"
ht_check "... and patched" patched "$own_pid"
as_user_echo "$M/revert" "$own_pid"
ht_eq "... and the user may revert it" "0 " "$FS_RC $FS_ERR"
as_user_echo "$M/apply" "$own_pid 2026-02"
ht_eq "... PID MONTH as well" "0 " "$FS_RC $FS_ERR"

# ---- point 1: the check-then-exec race ----
# The user's child spins a random while, then execs the set-uid-root copy;
# the user writes the child's PID (every other round with a month) at once.
# The exec may land before the check, between the check and the attach, or
# after: whatever the order, no set-uid process may end up patched.
race_patched=0
declare -A race_seen=()
# The user's side, one shell for every round: it prints "PID STATUS WHY"
# once the exec has landed (the child's comm is the copy's name) and waits
# for root's go before the next round.
coproc RACE { as_user bash -c '
	for ((i = 0; i < $3; i++)); do
		month=""
		[ $((i % 2)) -eq 1 ] && month=" 2026-02"
		n=$((RANDOM % 3000))
		(for ((j = 0; j < n; j++)); do :; done; exec "$1" --interval 1000) </dev/null >/dev/null 2>&1 &
		c=$!
		err=$({ echo "$c$month" > "$2"; } 2>&1)
		rc=$?
		for ((k = 0; k < 500; k++)); do
			[ "$(cat /proc/$c/comm 2>/dev/null)" = suid ] && break
			[ -d /proc/$c ] || break
			sleep 0.002
		done
		echo "$c $rc ${err##*: }"
		read -r go || exit 0
	done' bash "$T/bin/suid" "$M/apply" "$ROUNDS" 2>/dev/null; }
race_pid=$RACE_PID
ht_track_pid "$race_pid"
while read -r -u "${RACE[0]}" pid rest; do
	ht_track_pid "$pid"
	if patched "$pid"; then
		race_patched=$((race_patched + 1))
		ht_log "set-uid process $pid patched (write: $rest)"
	fi
	race_seen[$rest]=$((${race_seen[$rest]:-0} + 1))
	kill -KILL "$pid" 2>/dev/null
	[ -n "${RACE[1]:-}" ] && echo go >&"${RACE[1]}"
done
wait "$race_pid" 2>/dev/null
held=$(grep -c "changed after the check" "$M/events")
ht_log "race: $held refusals came from the check with the process held"
for k in "${!race_seen[@]}"; do ht_log "race: ${race_seen[$k]} writes ended: $k"; done
ht_eq "race: no set-uid-root process patched in $ROUNDS rounds" 0 "$race_patched"

# ---- the same rule without a mount (hp on the library) ----
ht_check "unmount" fusermount3 -u "$M"
ht_wait_exit "$FS_PID" 15
err_cap_direct=$(as_user "$HP_BIN" apply "$cap_pid" 2>&1)
ht_eq "hp apply without a mount: the capable process refused, the same line" \
	"$err_cap_mount" "$err_cap_direct"
ht_match "hp revert without a mount: refused too" \
	"^hp revert: uid [0-9]+ may not patch process $cap_pid \\(it holds capabilities\\)$" \
	"$(as_user "$HP_BIN" revert "$cap_pid" 2>&1)"
ht_check "... and it stays patched" sh -c "'$HP_BIN' status '$cap_pid' | grep -q 'applied=2026\\.01/'"
ht_match "hp apply without a mount: the set-uid process refused" \
	"may not patch process $suid_pid \\(uid [0-9]+, gid [0-9]+, set-id\\)$" \
	"$(as_user "$HP_BIN" apply "$suid_pid" 2>&1)"
ht_check "hp apply without a mount: the user's own process accepted" as_user "$HP_BIN" apply "$own_pid"

ht_end

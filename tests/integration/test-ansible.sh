#!/bin/bash
# The Ansible role for real: ansible-playbook -i localhost, -c local runs
# contrib/ansible/site.yml, which mounts hotpatchfs, creates the host's
# store and pulls it from a "central" bare git store, patches processes by
# PID and by name, and prints the report. Everything lives in $HT_TMP: the
# stores, the mount, the daemon's PID file and log, Ansible's home and temp
# dirs. Only processes this test started are patched and killed: the
# target is the engine's fixture program compiled here under a name and a
# build-id of its own, so that neither pgrep -x nor "all" can reach another
# process.
#
# Run 1: copy module; targets by name (pgrep -x) plus a PID that is gone;
#        the play fails at the end, after the report, naming that PID. A
#        third process of that name runs a copy of the program that the
#        daemon's configuration excludes (exclude-exe): left alone, and
#        the play says so (not a failure); named by PID (run 3) it is
#        patched.
# Run 2: the daemon killed (a stale mount); shell redirection; the store
#        synced with the git module instead of hp; the role
#        clears the mount and starts a new daemon; the store and the patches
#        are there already; the play succeeds.
# Check mode on that fresh host first: nothing is created, the play says
# what it would do. After run 2: check mode on the set-up host names the
# new process it would patch and whether now is safe; runs 3 and 4 (hp
# method, identical) patch it and then change nothing; rings: a failing
# canary stops the run before the other ring.
# Then the shell examples run on the same mount.
. "$HP_TEST_LIB/harness.sh"
ht_begin "ansible"
. "$(dirname "$0")/test-engine-lib.sh"

T=$HT_TMP
PLAYBOOK=$HP_SOURCE_ROOT/contrib/ansible/site.yml
FS_BIN=${HP_FS_BIN:-$HP_BUILD_ROOT/fs/hotpatchfs}
hp() { "$HP_BIN" "$@"; }

# --- the target and the central store with one signed patch set for it --------
NAME=hpans$$
FIX=$HP_SOURCE_ROOT/tests/fixtures/engine
ht_check "target: compiled with a build-id of its own" \
	cc -std=gnu11 -D_GNU_SOURCE -O2 -g -fno-inline-small-functions -fPIE -pie -pthread \
	-I"$FIX" "$FIX/target.c" -o "$T/$NAME" \
	-Wl,--build-id=0x"$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')"
CENTRAL=$T/central.git
ht_check "central store: init" hp store init --store "$CENTRAL"
ht_check "central store: key" hp key generate "$T/keys"
ht_check "central store: trust the key" hp key trust "$T/keys/hotpatch.pub" --store "$CENTRAL"
ht_check "central store: hp build" hp build --target "$T/$NAME" \
	--baseline 2026.01 --month 2026-02 --name fix --sign "$T/keys/hotpatch.key" \
	-o "$T/fix.tar.gz" "$HP_SOURCE_ROOT/tests/fixtures/engine/patch-a.c"
ht_check "central store: import" hp import "$T/fix.tar.gz" --store "$CENTRAL"

# --- the host ---------------------------------------------------------------------
STORE=$T/host/store.git    # absent: the role creates it
MNT=$T/host/hp
RUN=$T/host/run
ht_track_mount "$MNT"      # unmounted on exit, whatever happens

# Two targets, and a PID that no longer exists.
targets=() fifos=() outs=()
for i in 0 1; do
	fifos[i]=$T/fifo.$i
	mkfifo "${fifos[i]}"
	ht_spawn "$T/$NAME" "${fifos[i]}"
	targets[i]=$HT_LAST_PID
	outs[i]=$HT_LAST_OUT
	ht_wait_for 10 grep -q '^ready' "${outs[i]}"
done
# et_query and et_clean talk to target $1.
use_target() { ET_PID=${targets[$1]} ET_FIFO=${fifos[$1]} ET_OUT=${outs[$1]}; }
use_target 0
ht_eq "target answers with the original code" "10 105" "$(et_query 5)"
true &
gone=$!
wait "$gone"
# The excluded one: the same program (same build-id) under another path.
mkdir "$T/excl"
cp "$T/$NAME" "$T/excl/$NAME"
printf 'exclude-exe = %s\n' "$T/excl/$NAME" >"$T/hotpatchfs.conf"
mkfifo "$T/fifo.e"
ht_spawn "$T/excl/$NAME" "$T/fifo.e"
E=$HT_LAST_PID E_OUT=$HT_LAST_OUT
ht_wait_for 10 grep -q '^ready' "$E_OUT"
EXCL="exclude-exe=$T/excl/$NAME"

# Ansible keeps everything under $T: no ~/.ansible, no /tmp/ansible-*.
export HOME=$T/home
export ANSIBLE_HOME=$T/ansible
export ANSIBLE_LOCAL_TEMP=$T/ansible/tmp
export ANSIBLE_REMOTE_TEMP=$T/ansible/remote-tmp
export ANSIBLE_CONFIG=$T/ansible.cfg
export ANSIBLE_COLLECTIONS_PATH=$T/ansible/collections
export ANSIBLE_RETRY_FILES_ENABLED=false
export ANSIBLE_NOCOLOR=1
export ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3
export ANSIBLE_PIPELINING=true
export ANSIBLE_DEPRECATION_WARNINGS=false
mkdir -p "$HOME"
: >"$ANSIBLE_CONFIG"
cd "$T" || exit 1

# play VARS-JSON [ansible-playbook options]: run the playbook, output in
# $T/play.out, exit status in $play_rc.
play() {
	local t0=$SECONDS vars=$1
	shift
	ansible-playbook -i localhost, -c local "$PLAYBOOK" -e "$vars" "$@" >"$T/play.out" 2>&1
	play_rc=$?
	ht_log "ansible-playbook: $((SECONDS - t0)) s"
}
common='"hotpatch_become": false, "hotpatch_service_manager": "direct",
	"hotpatch_mountpoint": "'$MNT'", "hotpatch_store": "'$STORE'",
	"hotpatch_runtime_dir": "'$RUN'", "hotpatch_remote": "'$CENTRAL'",
	"hotpatch_hp": "'$HP_BIN'", "hotpatchfs_bin": "'$FS_BIN'",
	"hotpatchfs_config": "'$T/hotpatchfs.conf'"'

# --- check mode on a fresh host ------------------------------------------------------
play '{'"$common"', "hotpatch_process_name": "'$NAME'"}' --check
out=$(cat "$T/play.out")
ht_eq "--check on a fresh host: the play succeeds" 0 "$play_rc"
ht_match "--check: says the store would be created and pulled" \
	"no store at $STORE: it would be created and pulled from $CENTRAL" "$out"
ht_expect_fail "--check: no store created" 1 '' test -e "$STORE"
ht_expect_fail "--check: nothing mounted" 1 '' grep -qs " $MNT fuse" /proc/mounts
ht_match "--check: nothing patched" "state: not-up-to-date|state: needs-restart|target: none" \
	"$(hp status "${targets[0]}" --store "$CENTRAL" 2>&1)"

# --- run 1 -------------------------------------------------------------------------
play '{'"$common"', "hotpatch_process_name": "'$NAME'", "hotpatch_pids": ['$gone'],
	"hotpatch_apply_method": "copy"}'
out=$(cat "$T/play.out")
daemon=$(cat "$RUN/hotpatchfs.pid" 2>/dev/null)
[ -n "$daemon" ] && ht_track_pid "$daemon"
ht_eq "run 1: the play fails (a PID is gone)" 2 "$play_rc"
ht_match "run 1: hotpatchfs mounted" " $MNT fuse.hotpatchfs " "$(cat /proc/mounts)"
ht_check "run 1: daemon PID recorded and running" kill -0 "$daemon"
ht_match "run 1: the play says it started it" "hotpatchfs at $MNT: started $daemon\"" "$out"
ht_eq "run 1: store pulled to the central head" \
	"$(git --git-dir="$CENTRAL" rev-parse HEAD)" "$(git --git-dir="$STORE" rev-parse HEAD 2>&1)"
for pid in "${targets[@]}"; do
	ht_match "run 1: result line for $pid (found by name)" "\"$pid: ok\"" "$out"
	ht_match "run 1: $MNT/processes/$pid/status says hotpatched" '^state: hotpatched$' \
		"$(cat "$MNT/processes/$pid/status" 2>&1)"
	ht_match "run 1: hp status $pid says hotpatched" 'hotpatched' \
		"$(hp status "$pid" --store "$STORE" 2>&1)"
done
ht_match "run 1: the excluded process named $NAME: left alone, said" \
	"\"$E: excluded by the configuration \($EXCL\): left alone\"" "$out"
ht_match "run 1: $MNT/processes/$E/status: not patched, excluded" \
	"state: not-up-to-date.*excluded: $EXCL" "$(tr '\n' ' ' <"$MNT/processes/$E/status" 2>&1)"
ET_PID=$E ET_FIFO=$T/fifo.e ET_OUT=$E_OUT
ht_eq "the excluded process runs the original code" "10 105" "$(et_query 5)"
ht_match "run 1: result line for the gone PID" "\"$gone: failed: \\[Errno 3\\] No such process\"" "$out"
ht_match "run 1: the play names it" "hotpatch failed for $gone\"" "$out"
ht_match "run 1: report fact printed" '"hotpatch_report": \[' "$out"
for pid in "${targets[@]}"; do
	ht_match "run 1: report has $pid, hotpatched" "\"pid=$pid comm=$NAME state=hotpatched " "$out"
done
use_target 0
ht_eq "target 1 runs the patched code" "80 205" "$(et_query 5)"
ht_check "target 1: no EINTR, alive" et_clean
use_target 1
ht_eq "target 2 runs the patched code" "80 205" "$(et_query 5)"

# --- run 2 --------------------------------------------------------------------------
# The daemon killed: the mount is left stale ("Transport endpoint is not
# connected"); the role clears it and starts a new daemon, which finds the
# patches in the processes themselves.
kill -KILL "$daemon"
ht_wait_for 5 sh -c "! kill -0 $daemon 2>/dev/null"
ht_expect_fail "the mount is stale" ENOTCONN "cannot stat.*status" stat "$MNT/status"
play '{'"$common"', "hotpatch_pids": ['"${targets[1]}"'], "hotpatch_apply_method": "shell",
	"hotpatch_sync_method": "git"}'
out=$(cat "$T/play.out")
flat=$(tr '\n' ' ' <"$T/play.out")
daemon2=$(cat "$RUN/hotpatchfs.pid" 2>/dev/null)
[ -n "$daemon2" ] && [ "$daemon2" != "$daemon" ] && ht_track_pid "$daemon2"
ht_eq "run 2: the play succeeds" 0 "$play_rc"
ht_match "run 2: the stale mount cleared, a daemon started" \
	"hotpatchfs at $MNT: cleared a stale mount; started $daemon2\"" "$out"
ht_check "run 2: a new daemon running" test "$daemon2" != "$daemon" -a -d "/proc/$daemon2"
ht_match "run 2: mounted again" '^state: hotpatched$' "$(cat "$MNT/processes/${targets[0]}/status" 2>&1)"
ht_match "run 2: git module fetched into the store" 'Clone or fetch the store with git\] \*+ (ok|changed):' "$flat"
ht_match "run 2: the store's origin is the central store" "$CENTRAL\$" \
	"$(git --git-dir="$STORE" remote get-url origin 2>&1)"
ht_eq "run 2: store still at the central head" \
	"$(git --git-dir="$CENTRAL" rev-parse HEAD)" "$(git --git-dir="$STORE" rev-parse HEAD 2>&1)"
ht_match "run 2: result line" "\"${targets[1]}: ok\"" "$out"
ht_match "run 2: report fact printed, both targets hotpatched" \
	"pid=${targets[0]} comm=$NAME state=hotpatched .*pid=${targets[1]} comm=$NAME state=hotpatched " "$flat"
use_target 1
ht_eq "target 2 still runs the patched code" "80 205" "$(et_query 5)"

# --- check mode, then hp twice: changed only when a process was patched ----------
new_target() { # FIFO: start one more target; its PID in $new_pid
	mkfifo "$1"
	ht_spawn "$T/$NAME" "$1"
	new_pid=$HT_LAST_PID
	ht_wait_for 10 grep -q '^ready' "$HT_LAST_OUT"
}
new_target "$T/fifo.x"
X=$new_pid
play '{'"$common"', "hotpatch_pids": ['"$X"'], "hotpatch_process_name": "'$NAME'"}' --check
out=$(cat "$T/play.out")
ht_eq "--check on the set-up host: the play succeeds" 0 "$play_rc"
ht_match "--check: names what it would apply to the new process, and that now is safe" \
	"$X: not-up-to-date: would apply 2026.01/2026-02/fix; safe now: yes" "$out"
ht_match "--check: the excluded process: left alone, said" \
	"$E: excluded by the configuration \($EXCL\): left alone" "$out"
ht_match "--check: the new process is not patched" "state: not-up-to-date" \
	"$(hp status "$X" --store "$STORE" 2>&1)"
play '{'"$common"', "hotpatch_pids": ['"$X, $E"'], "hotpatch_apply_method": "hp"}'
out=$(cat "$T/play.out")
ht_eq "run 3 (hp): the play succeeds" 0 "$play_rc"
ht_match "run 3: the new process patched, changed" "\"$X: ok \(changed\)\"" "$out"
ht_match "run 3: the excluded process, named by PID, patched" "\"$E: ok \(changed\)\"" "$out"
ET_PID=$E ET_FIFO=$T/fifo.e ET_OUT=$E_OUT
ht_eq "the excluded process, named by PID, runs the patched code" "80 205" "$(et_query 5)"
ht_match "run 3: the apply task says changed" 'TASK \[hotpatch : Apply \(hp, through the mount\)\] \*+ changed:' \
	"$(tr '\n' ' ' <"$T/play.out")"
ht_match "run 3: hotpatched" "state: hotpatched" "$(hp status "$X" --store "$STORE" 2>&1)"
play '{'"$common"', "hotpatch_pids": ['"$X, $E"'], "hotpatch_apply_method": "hp"}'
out=$(cat "$T/play.out")
ht_eq "run 4 (the same again): the play succeeds" 0 "$play_rc"
ht_match "run 4: changed=0 (nothing was patched)" 'localhost +: ok=[0-9]+ +changed=0 ' "$out"
ht_match "run 4: result line" "\"$X: ok\"" "$out"

# --- rings: the canary fails, the other ring never starts -----------------------------
new_target "$T/fifo.y"
Y=$new_pid
cat >"$T/rings.ini" <<INV
[hotpatch_canary]
canary ansible_connection=local hotpatch_pids='[$gone]'
[ring1]
ring1 ansible_connection=local hotpatch_pids='[$Y]'
INV
t0=$SECONDS
ansible-playbook -i "$T/rings.ini" "$PLAYBOOK" -e '{'"$common"', "hotpatch_apply_method": "hp"}' \
	>"$T/play.out" 2>&1
play_rc=$?
ht_log "ansible-playbook (rings): $((SECONDS - t0)) s"
out=$(cat "$T/play.out")
ht_eq "rings: the play fails" 2 "$play_rc"
ht_match "rings: the canary ring ran and failed" "hotpatch failed for $gone" "$out"
ht_expect_fail "rings: the other ring never started" 1 '' grep -q 'PLAY \[Hotpatch rollout, the other rings\]' "$T/play.out"
ht_match "rings: its process is not patched" "state: not-up-to-date" "$(hp status "$Y" --store "$STORE" 2>&1)"
kill -KILL "$X" "$Y"
wait "$X" "$Y" 2>/dev/null

# --- the shell examples, on the same mount -------------------------------------
EX=$HP_SOURCE_ROOT/contrib/examples
fifos[2]=$T/fifo.2
mkfifo "${fifos[2]}"
ht_spawn "$T/$NAME" "${fifos[2]}"
targets[2]=$HT_LAST_PID
outs[2]=$HT_LAST_OUT
ht_wait_for 10 grep -q '^ready' "${outs[2]}"
use_target 2
ht_eq "target 3 starts with the original code" "10 105" "$(et_query 5)"
out=$("$EX/apply-all.sh" -m "$MNT" -n "$NAME" "$gone" 2>"$T/err")
ht_eq "apply-all.sh: exit 1 (a PID is gone)" 1 "$?"
for pid in "${targets[@]}"; do
	ht_match "apply-all.sh: line for $pid" "^$pid $NAME: ok hotpatched\$" "$out"
done
ht_match "apply-all.sh: line for the gone PID" "^$gone \\?: failed: No such process\$" "$out"
ht_match "apply-all.sh -n: the excluded process left alone, said" \
	"^$E $NAME: excluded by the configuration \\($EXCL\\): left alone\$" "$out"
ht_eq "apply-all.sh: summary on stderr" "apply-all.sh: 1 of 5 processes failed" "$(cat "$T/err")"
ht_eq "target 3 runs the patched code" "80 205" "$(et_query 5)"
out=$(HP=$HP_BIN "$EX/monthly-rollout.sh" -m "$MNT" -s "$STORE" "$CENTRAL" "$NAME" 2>&1)
ht_eq "monthly-rollout.sh NAME: exit 0" 0 "$?"
ht_match "monthly-rollout.sh NAME: pulled" "pull: already up to date with $CENTRAL" "$out"
ht_match "monthly-rollout.sh NAME: applied" "^${targets[2]} $NAME: ok hotpatched\$" "$out"
ht_match "monthly-rollout.sh NAME: report" "pid=${targets[2]} comm=$NAME state=hotpatched " "$out"
# Without names it writes "all": the store knows only our build-id.
fifos[3]=$T/fifo.3
mkfifo "${fifos[3]}"
ht_spawn "$T/$NAME" "${fifos[3]}"
targets[3]=$HT_LAST_PID
outs[3]=$HT_LAST_OUT
ht_wait_for 10 grep -q '^ready' "${outs[3]}"
out=$(HP=$HP_BIN "$EX/monthly-rollout.sh" -m "$MNT" -s "$STORE" "$CENTRAL" 2>&1)
ht_eq "monthly-rollout.sh (all): exit 0" 0 "$?"
ht_match "monthly-rollout.sh (all): applied" "^apply all: ok\$" "$out"
ht_match "monthly-rollout.sh (all): report has the new process" \
	"pid=${targets[3]} comm=$NAME state=hotpatched " "$out"
use_target 3
ht_eq "target 4 runs the patched code" "80 205" "$(et_query 5)"

if [ "$HT_FAIL" -gt 0 ]; then
	sed 's/^/#   /' "$T/play.out" >&2
fi
ht_end

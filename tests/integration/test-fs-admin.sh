#!/bin/bash
# hotpatchfs as an admin runs it: a configuration file (auto's default,
# exclusions, the retry budget; read at start and on SIGHUP), what a restart
# keeps (the value written to auto, the event log), every event in the
# system log, and MNT/events (MNT/log before).
. "$HP_TEST_LIB/harness.sh"
ht_begin "fs-admin"
. "$HP_SOURCE_ROOT/tests/fixtures/demo/fs-setup.sh"
fs_need

T=$HT_TMP
S=$T/state
C=$T/hotpatchfs.conf
M=$T/mnt
ht_check "a store with demo-server's 2026-02 set" fs_demo_store

# ---- a bad configuration: a clear line, no mount -------------------------------------
printf '# comment\nauto = 1\nretries = many\n' >"$C"
err=$("$HP_FS_BIN" --store "$HP_STORE" --config "$C" --state-dir "$S" -f "$M" 2>&1)
ht_eq "a bad value: exit 1" 1 "$?"
ht_eq "... one line: file, line, key, what is wrong" \
	"hotpatchfs: $C:3: retries: 'many' is not a number 0-100" "$err"
printf 'auto = 1\ncolour = blue\n' >"$C"
ht_eq "an unknown key: the line that says so" "hotpatchfs: $C:2: unknown key 'colour'" \
	"$("$HP_FS_BIN" --store "$HP_STORE" --config "$C" --state-dir "$S" -f "$M" 2>&1)"
ht_expect_fail "... and nothing was mounted" 1 '' fs_mounted "$M"

# ---- auto's default from the configuration, SIGHUP -------------------------------------
printf 'auto = 0\n' >"$C"
mkdir -p "$M"
ht_check "mount (auto = 0 in the configuration)" fs_conf_mount
ht_eq "auto reads 0" 0 "$(cat "$M/auto")"
printf 'auto = 1\n' >"$C"
kill -HUP "$FS_PID"
ht_check "SIGHUP: the configuration read again, auto on" ht_wait_for 10 grep -qx 1 "$M/auto"
ht_check "... and the daemon still serves" fs_mounted "$M"
ht_match "... an event for it" "config set=- result=ok pause_us=- uid=0" "$(cat "$M/events")"
ht_match "... and for auto, with where it came from" "auto-on set=- result=ok pause_us=- from=config uid=0" \
	"$(cat "$M/events")"
printf 'auto = maybe\n' >"$C"
kill -HUP "$FS_PID"
ht_check "a bad configuration on SIGHUP: an event with the reason" ht_wait_for 10 \
	grep -q "config set=- result=EINVAL pause_us=- uid=0 reason=\"$C:1: auto: 'maybe' is not 0 or 1\"" "$M/events"
ht_eq "... and the configuration in use stays" 1 "$(cat "$M/auto")"

# ---- the value written to auto outlives a restart ---------------------------------------
printf 'auto = 1\n' >"$C"
fs_echo "$M/auto" 0
ht_eq "echo 0 > auto" 0 "$FS_RC"
ht_eq "kept in the state directory" 0 "$(cat "$S/auto")"
ht_check "unmount" fs_conf_umount
ht_check "mount again (auto = 1 in the configuration)" fs_conf_mount
ht_eq "the written 0 wins over the configuration" 0 "$(cat "$M/auto")"
fs_echo "$M/auto" 1
ht_check "unmount" fs_conf_umount
ht_check "mount again" fs_conf_mount
ht_eq "the written 1 survived the restart" 1 "$(cat "$M/auto")"
ht_match "the status says so" "auto: 1" "$(cat "$M/status")"
ht_match "the start said where it came from" "auto-on set=- result=ok pause_us=- from=state uid=0" \
	"$(cat "$M/events")"
ht_match "events of the daemon before the restart are there" \
	"config set=- result=EINVAL .*auto-off set=- result=ok pause_us=- uid=0" "$(tr '\n' ' ' <"$M/events")"
fs_echo "$M/auto" 0
# A directory where the value goes: rename(2) cannot put a file over it.
rm -f "$S/auto" && mkdir "$S/auto"
fs_echo "$M/auto" 1
ht_eq "a value that could not be kept is refused: exit 1" 1 "$FS_RC"
ht_match "... with the errno's words" "Is a directory" "$FS_ERR"
ht_eq "... auto stays 0" 0 "$(cat "$M/auto")"
ht_match "... an event says why" "auto-on set=- result=EISDIR pause_us=- uid=0 reason=\"auto: cannot keep the value in $S/auto" \
	"$(cat "$M/events")"
rmdir "$S/auto"

# ---- events and log ---------------------------------------------------------------------
ht_eq "the root lists events, not log" "apply auto catalog events incoming last-error processes report revert status" \
	"$(ls "$M" | tr '\n' ' ' | sed 's/ $//')"
ht_check "MNT/log still opens (compatibility), the same text" cmp "$M/log" "$M/events"

# ---- exclusions and the retry budget ---------------------------------------------------------
cp "$FS_DEMO_BIN/demo-server" "$T/excluded-server"
cp "$FS_DEMO_BIN/demo-server" "$T/named-server"
printf 'exclude-exe = %s\nexclude-name = named-server\nretries = 2\n' "$T/excluded-server" >"$C"
kill -HUP "$FS_PID"
ht_check "SIGHUP: the new configuration" ht_wait_for 10 \
	sh -c "test \$(grep -c 'config set=- result=ok' '$M/events') -ge 2"
fs_echo "$M/auto" 1
ht_spawn "$T/excluded-server"
ex=$HT_LAST_PID
ht_spawn "$T/named-server"
named=$HT_LAST_PID
fs_server
ht_check "auto: a server not excluded is patched" fs_wait_output "$FS_SRV_OUT" "fixed"
ht_match "auto: its event" "auto-apply pid=$FS_SRV set=2026.01/2026-02/cve-2026-0001 result=ok" "$(cat "$M/events")"
ht_match "exclude-exe: that program is left alone" "state: not-up-to-date" "$(cat "$M/processes/$ex/status")"
ht_match "exclude-name: that name is left alone" "state: not-up-to-date" "$(cat "$M/processes/$named/status")"
ht_expect_fail "... and no auto-apply event names them" 1 '' grep -Eq "auto-apply pid=($ex|$named) " "$M/events"
fs_echo "$M/apply" "$ex"
ht_eq "an explicit apply of an excluded process still works (the admin asked)" 0 "$FS_RC"
fs_echo "$M/auto" 0

fs_server --spin
spin=$FS_SRV
fs_expect_errno "retries = 2: a function that never leaves: EBUSY in the end" "Device or resource busy" \
	"$M/apply" "$spin"
ev=$(grep "apply pid=$spin " "$M/events")
ht_eq "... three tries: two retried and the last" 3 "$(wc -l <<<"$ev")"
ht_match "... each an event" "result=EBUSY .*try=1.*result=EBUSY .*try=2.*result=EBUSY" "$(tr '\n' ' ' <<<"$ev")"
ht_check "unmount" fs_conf_umount

# ---- the system log: every event, with the caller's uid ----------------------------------------
# A private mount namespace whose /dev is a tmpfs with /dev/log linked to a
# socket of this test (the real /dev is not touched), and the daemon in it.
# The listener: a datagram socket bound at $T/log.sock (a stale one
# removed first, as a syslog daemon does), each datagram a line of $T/syslog.txt.
listen_log() {
	rm -f "$T/log.sock"
	ht_spawn python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "ab", buffering=0) as out:
    while True:
        out.write(s.recv(65536) + b"\n")' "$T/log.sock" "$T/syslog.txt"
	listener=$HT_LAST_PID
	ht_wait_for 10 test -S "$T/log.sock"
}
if command -v unshare >/dev/null && command -v nsenter >/dev/null; then
	listen_log
	mkdir -p "$T/olddev"
	printf 'auto = 0\n' >"$C"
	ht_spawn unshare --mount --propagation private -- bash -c '
set -e
T=$1; shift
mount --rbind /dev "$T/olddev"
mount -t tmpfs tmpfs /dev
for n in fuse null zero urandom; do touch /dev/$n; mount --bind "$T/olddev/$n" /dev/$n; done
ln -s "$T/log.sock" /dev/log
exec "$@"' bash "$T" "$HP_FS_BIN" --store "$HP_STORE" --config "$C" --state-dir "$S" -f "$M"
	ns=$HT_LAST_PID
	in_ns() { nsenter --mount="/proc/$ns/ns/mnt" -- "$@"; }
	ht_check "the daemon mounts in its namespace" ht_wait_for 10 \
		in_ns grep -qs " $M fuse.hotpatchfs " /proc/mounts
	in_ns bash -c 'echo 999999 > "$1/apply"' bash "$M" 2>/dev/null
	ht_check "syslog: the event, with uid and reason" ht_wait_for 10 \
		grep -Eq "hotpatchfs\[[0-9]+\]: apply pid=999999 set=- result=ESRCH pause_us=- uid=0 exe=- reason=" "$T/syslog.txt"
	ht_match "syslog: a warning of the daemon facility (priority 28)" "^<28>" \
		"$(grep "pid=999999" "$T/syslog.txt")"
	# The listener restarts (a new socket at the same path): the daemon's
	# send to the old one fails, it connects anew and the event arrives.
	kill "$listener"
	ht_wait_exit "$listener" 10 || true
	listen_log
	in_ns bash -c 'echo 999998 > "$1/apply"' bash "$M" 2>/dev/null
	ht_check "syslog: a listener restarted misses no event" ht_wait_for 10 \
		grep -q "apply pid=999998 set=- result=ESRCH" "$T/syslog.txt"
	# No listener for a while (events then have nowhere to go), then one
	# again: the next event reaches it.
	kill "$listener"
	ht_wait_exit "$listener" 10 || true
	rm -f "$T/log.sock"
	in_ns bash -c 'echo 999997 > "$1/apply"' bash "$M" 2>/dev/null
	ht_check "... an event with no listener is still in events.log" \
		grep -q "apply pid=999997 set=- result=ESRCH" "$S/events.log"
	listen_log
	in_ns bash -c 'echo 999996 > "$1/apply"' bash "$M" 2>/dev/null
	ht_check "syslog: a listener that appears later gets the next event" ht_wait_for 10 \
		grep -q "apply pid=999996 set=- result=ESRCH" "$T/syslog.txt"
	ht_eq "... each event there once" 1 "$(grep -c 'pid=999996 ' "$T/syslog.txt")"
	in_ns fusermount3 -u "$M"
	ht_wait_exit "$ns" 15
else
	ht_log "unshare or nsenter missing: the system log is not checked"
	ht_not_ok "syslog: unshare and nsenter are needed to check it"
fi

ht_end

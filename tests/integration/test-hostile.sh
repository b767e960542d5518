#!/bin/bash
# The hostile-input table: bad input from the CLI, the control files,
# incoming/ and the store, one row each. Every row names the errno (or the
# exit status), the one-line reason expected, and checks that nothing
# changed: the store's HEAD, the target server unpatched, the daemon alive.
#
# Row kinds (the table is at the end of this file, one row per line,
# fields split by " | "):
#   cli      ARGS                      exit status; hp's one stderr line
#   apply    TEXT   (written to apply) errno; the log line's reason
#   revert   TEXT   (written to revert)
#   auto     TEXT   (written to auto)
#   lookup   NAME   (stat processes/NAME) errno
#   incoming FILE   (copied into incoming/; FILE made by setup below)
#   fs       OP PATH [PATH2]          fs_errno (fs-setup.sh) on the mount: the
#                                     errno; the message is the errno's text
# TEXT and ARGS are printf %b strings with tokens: @S the target server's
# PID, @Z a zombie's, @D the daemon's, @W the writer's own, @X a server
# that exits while its apply waits for safety, @JUNK1M 1 MiB of random
# bytes, @LINES10K 10,000 lines "@S\n".
set -u
: "${HP_TEST_LIB:?run through meson test}"
. "$HP_TEST_LIB/harness.sh"
ht_begin "hostile"
. "$HP_SOURCE_ROOT/tests/fixtures/demo/fs-setup.sh"
fs_need
PY=/usr/bin/python3
[ -x $PY ] || { echo "1..0 # SKIP $PY missing"; exit 77; }
T=$HT_TMP
MKB=$HP_MKBUNDLE

# ---- setup: a store with one real set, a server, a zombie ----
ht_check "store with a trusted key" fs_store
ht_check "hp build 2026-02" fs_build "$FS_DEMO_BIN/demo-server" 2026-02 cve-2026-0001 \
	"$T/feb.tar.gz" "$FS_DEMO_SRC/demo-fix.c"
ht_check "hp import" "$HP_BIN" import "$T/feb.tar.gz"
BID=$(sed -n 's/^build-id //p' <(tar -xzOf "$T/feb.tar.gz" manifest))
tar -xzOf "$T/feb.tar.gz" patch.so >"$T/patch.so"
fs_server
SRV=$FS_SRV
# a zombie: a child that exited and that its parent (a sleeping shell) never reaps
ht_spawn bash -c 'sleep 0.1 & exec sleep 300'
ZPARENT=$HT_LAST_PID
ht_wait_for 10 sh -c "ps -o stat= --ppid $ZPARENT | grep -q Z"
ZOMBIE=$(ps -o pid=,stat= --ppid "$ZPARENT" | awk '$2 ~ /Z/ {print $1; exit}')

M=$T/mnt
ht_check "mount" fs_mount "$M"
fs_mounted "$M" || { ht_end; exit 1; }
DAEMON=$FS_PID
HEAD0=$(fs_head)
# pid 1 is init, whose memory root may read on a host, not always in a container
if $PY -c 'open("/proc/1/mem", "rb")' 2>/dev/null; then
	PID1_ERRNO=ENOENT PID1_MSG='nothing published for process 1 \(.*\)'
else
	PID1_ERRNO=EPERM PID1_MSG='apply 1: process 1: open /proc/1/mem: Permission denied'
fi
LONG=$(printf 'n%.0s' $(seq 256))
KTHREAD=$(grep -l '^Kthread:[[:space:]]*1' /proc/[0-9]*/status 2>/dev/null | head -n 1 | cut -d/ -f3)

# ---- the runner ----
# expand TEXT: tokens, then printf %b; into the file $T/in
expand() {
	local s=$1
	case "$s" in
	@JUNK1M) head -c 1048576 /dev/urandom >"$T/in"; return ;;
	@LINES10K) for ((i = 0; i < 10000; i++)); do echo "$SRV"; done >"$T/in"; return ;;
	esac
	s=${s//@S/$SRV}
	s=${s//@Z/$ZOMBIE}
	s=${s//@D/$DAEMON}
	s=${s//@K/$KTHREAD}
	s=${s//@LONG/$LONG}
	printf '%b' "$s" >"$T/in"
}

# put DEST SRC MODE: the bytes of SRC in one write(2) to DEST, opened
# O_TRUNC; MODE "pid": @W in them becomes the writer's PID; MODE "create":
# O_CREAT too. Prints "ok" or the errno's name of the failing step.
put() {
	$PY - "$@" <<'EOF'
import errno, os, sys
dest, src, mode = sys.argv[1:4]
try:
    data = open(src, 'rb').read()
    if mode == "pid":
        data = data.replace(b'@W', str(os.getpid()).encode())
    fd = os.open(dest, os.O_WRONLY | os.O_TRUNC | (os.O_CREAT if mode == "create" else 0), 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    print("ok")
except OSError as e:
    print(errno.errorcode[e.errno])
EOF
}
# write FILE: the bytes of $T/in (see put); copy FILE into incoming/
write_raw() { put "$1" "$T/in" pid; }
copy_in() { put "$M/incoming/$(basename "$1")" "$1" create; }

last_reason() { tail -n 1 "$M/events" | sed -n 's/.* reason="\(.*\)"$/\1/p'; }

# nothing changed: the store, the server, the daemon
unchanged() {
	local what=""
	[ "$(fs_head)" = "$HEAD0" ] || what="$what store moved;"
	"$HP_BIN" status "$SRV" 2>/dev/null | grep -q 'applied=2026' && what="$what server patched;"
	kill -0 "$DAEMON" 2>/dev/null || what="$what daemon gone;"
	echo "${what:-unchanged}"
}

n_rows=0
row() {
	local kind=$1 input=$2 want=$3 msg=$4 got reason
	n_rows=$((n_rows + 1))
	want=${want//@PID1ERRNO/$PID1_ERRNO}
	msg=${msg//@PID1MSG/$PID1_MSG}
	case "$kind" in
	cli)
		expand "$input"
		local args=()
		mapfile -d '' args < <(tr '\n' '\0' <"$T/in")
		reason=$("$HP_BIN" --store "$HP_STORE" "${args[@]}" 2>&1 >/dev/null)
		got="exit=$?"
		;;
	apply|revert|auto)
		expand "$input"
		got=$(write_raw "$M/$kind")
		reason=$(last_reason)
		;;
	lookup)
		expand "$input"
		got=$($PY -c 'import errno, os, sys
try:
    os.stat(sys.argv[1]); print("ok")
except OSError as e:
    print(errno.errorcode[e.errno])' "$M/processes/$(cat "$T/in")")
		reason=""
		;;
	incoming)
		got=$(copy_in "$T/$input")
		reason=$(last_reason)
		;;
	fs)
		local op path arg2=""
		read -r op path arg2 <<<"$input"
		path=${path//@M/$M}
		path=${path//@LONG/$LONG}
		arg2=${arg2//@M/$M}
		if [ "$arg2" = @GONE ]; then
			sleep 300 &
			arg2=$!
			path=${path//@GONE/$arg2}
		fi
		reason=$(fs_errno "$op" "$path" ${arg2:+"$arg2"})
		got=${reason%% *}
		reason=${reason#* }
		;;
	*)
		got="unknown kind $kind"
		;;
	esac
	ht_log "$kind '$input': $got: $reason"
	ht_eq "$kind '$input': $want" "$want" "$got"
	if [ "$msg" != "-" ]; then
		ht_match "... one line: $msg" "^$msg\$" "$reason"
		ht_eq "... only one line" 1 "$(printf '%s\n' "$reason" | wc -l)"
	fi
	ht_eq "... nothing changed" unchanged "$(unchanged)"
}

# The exiting server: its handle_request waits for a gate file, so the
# apply retries for safety; the server is killed meanwhile.
exiting_row() {
	local gate=$T/gate got
	fs_server --gate "$gate"
	local xpid=$FS_SRV
	# the server stays in handle_request until the gate exists: make the apply wait long
	(sleep 0.3; kill -KILL "$xpid") &
	local killer=$!
	got=$( { echo "$xpid" >"$M/apply"; } 2>&1 )
	wait "$killer"
	wait "$xpid" 2>/dev/null
	n_rows=$((n_rows + 1))
	ht_match "apply of a process that exits mid-apply: ESRCH" "No such process" "$got"
	ht_log "exiting: $got: $(last_reason)"
	# killed before the engine got to it, while it held it, or between two retries
	ht_match "... one line: the reason" \
		"^(apply $xpid: )?(process $xpid: )?(no such process|no process $xpid|thread [0-9]+ vanished)\$" \
		"$(last_reason)"
	ht_eq "... nothing changed" unchanged "$(unchanged)"
}

trim() {
	local s=$1
	s=${s#"${s%%[![:space:]]*}"}
	printf '%s' "${s%"${s##*[![:space:]]}"}"
}
exiting_row
handle=$(sed -n 's/^func handle_request //p' <(tar -xzOf "$T/feb.tar.gz" manifest))
# Bundles for incoming/ and sets for the store rows.
head -c 1048576 /dev/urandom >"$T/junk.tar"
head -c $(($(stat -c %s "$T/feb.tar.gz") / 2)) "$T/feb.tar.gz" >"$T/truncated.tar.gz"
"$MKB" -b 2026.01 -m 2026-03 -n unsigned -t demo-server -i "$BID" -o "$T/unsigned.tar"
"$MKB" -b 2026.01 -m 2026-03 -n tampered -t demo-server -i "$BID" -k "$FS_KEY" -p "$T/patch.so" \
	--tamper -o "$T/tampered.tar"
"$MKB" -b 2026.01 -m 2026-03 -n traversal -t demo-server -i "$BID" -k "$FS_KEY" -H traversal \
	-o "$T/traversal.tar"
"$MKB" -b 2026.01 -m 2026-03 -n garbage -t demo-server -i "$BID" -k "$FS_KEY" -H garbage \
	-o "$T/garbage.tar"
# a good set, but for a month outside the baseline's window
"$MKB" -b 2026.01 -m 2026-04 -n late -t demo-server -i "$BID" -k "$FS_KEY" -p "$T/patch.so" \
	-f "handle_request $handle" -o "$T/late.tar"
# sets the store takes (signed, well-formed; --force: past the window) that must not fit the target
"$MKB" -b 2026.01 -m 2026-05 -n outside -t demo-server -i "$BID" -k "$FS_KEY" -p "$T/patch.so" \
	-f "handle_request 0x7fff0000 ${handle#* }" -o "$T/outside.tar"
printf 'this is not an ELF file\n' >"$T/notelf.so"
"$MKB" -b 2026.01 -m 2026-06 -n notelf -t demo-server -i "$BID" -k "$FS_KEY" -p "$T/notelf.so" \
	-f "handle_request $handle" -o "$T/notelf.tar"
ht_check "hp import: a set with offsets outside the target, and one that is not ELF" \
	"$HP_BIN" import --force "$T/outside.tar" "$T/notelf.tar"
# a patch object altered in the store itself: a commit that bypasses import
git clone -q "$HP_STORE" "$T/work"
printf '\x90' | dd of="$T/work/2026.01/2026-02/cve-2026-0001/patch.so" bs=1 seek=200 conv=notrunc \
	status=none
git -C "$T/work" -c user.name=mallory -c user.email=m@example.com commit -qam "tamper"
git -C "$T/work" push -q origin HEAD
ht_eq "the tampered commit is the store's HEAD" "tamper" "$(git --git-dir="$HP_STORE" log -1 --format=%s)"

HEAD0=$(fs_head)

while IFS= read -r line; do
	{ [ -z "$line" ] || [ "${line:0:1}" = "#" ]; } && continue
	IFS='|' read -r kind input want msg <<<"$line"
	row "$(trim "$kind")" "$(trim "$input")" "$(trim "$want")" "$(trim "$msg")"
done <<'TABLE'
# kind   | input                      | errno or exit | one-line reason (ERE; - : none)
# -- the CLI (hp apply/revert; through the mount, the library's words) --
cli      | apply\n0                   | exit=1  | hp apply: '0' is not a process id
cli      | apply\n-1                  | exit=1  | hp apply: '-1' is not a process id
cli      | apply\n2147483648          | exit=1  | hp apply: '2147483648' is not a process id
cli      | apply\n99999999999999999999 | exit=1 | hp apply: '99999999999999999999' is not a process id
cli      | apply\n+@S                 | exit=1  | hp apply: '\+[0-9]+' is not a process id
cli      | apply\n0x10                | exit=1  | hp apply: '0x10' is not a process id
cli      | apply\n0@S                 | exit=1  | hp apply: '0[0-9]+' is not a process id
cli      | apply\n４２                 | exit=1  | hp apply: '４２' is not a process id
cli      | apply\n@S\n2026-13         | exit=1  | hp apply: '2026-13' is not a month \(YYYY-MM\)
cli      | apply\nall\n../etc         | exit=1  | hp apply: '../etc' is not a target name
cli      | apply\nall\nnosuchtarget   | exit=1  | hp apply: no target nosuchtarget in the store
cli      | revert\n@S                 | exit=1  | hp revert: nothing applied to process [0-9]+ \(demo-server\)
cli      | revert\n-1                 | exit=1  | hp revert: '-1' is not a process id
cli      | apply\n@Z                  | exit=1  | hp apply: apply [0-9]+: process [0-9]+ has exited \(zombie\)
# -- the control files --
apply    | 0                          | EINVAL  | '0' is not a process id
apply    | -1                         | EINVAL  | '-1' is not a process id
apply    | 2147483648                 | EINVAL  | '2147483648' is not a process id
apply    | 99999999999999999999       | EINVAL  | '99999999999999999999' is not a process id
apply    | +@S                        | EINVAL  | '\+[0-9]+' is not a process id
apply    | 0x10                       | EINVAL  | '0x10' is not a process id
apply    | 0@S                        | EINVAL  | '0[0-9]+' is not a process id
lookup   | 0@S                        | ENOENT  | -
# the log escapes what the writer controls: bytes past ASCII are \xHH
apply    | ４２                        | EINVAL  | '\\xef\\xbc\\x94\\xef\\xbc\\x92' is not a process id
apply    | @S\0                       | EINVAL  | input contains a NUL byte
apply    | @JUNK1M                    | EINVAL  | input too long \([0-9]+ bytes, at most 512\)
apply    | @LINES10K                  | EINVAL  | input too long \([0-9]+0000 bytes, at most 512\)
apply    | @S\n@S\n                   | EINVAL  | one command per write, on one line
# a write of no bytes is no command: nothing to refuse, nothing done
apply    |                            | ok      | -
apply    | \n\n                       | EINVAL  | empty command \(expected PID, PID MONTH, all or all TARGET\)
apply    | @S 2026-13                 | EINVAL  | '2026-13' is not a month \(YYYY-MM\)
apply    | @S 2026-02 x               | EINVAL  | too many words \(expected PID, PID MONTH, all or all TARGET\)
apply    | all ../etc                 | EINVAL  | '../etc' is not a target name
apply    | 1                          | @PID1ERRNO | @PID1MSG
apply    | @K                         | ENOENT  | apply [0-9]+: process [0-9]+ is a kernel thread: nothing to patch
apply    | @Z                         | ESRCH   | apply [0-9]+: process [0-9]+ has exited \(zombie\)
apply    | @D                         | EINVAL  | process [0-9]+ is the patching process itself
apply    | @W                         | ENOENT  | nothing published for process [0-9]+ \(python3\)
revert   | @S                         | ENOENT  | nothing applied to process [0-9]+ \(demo-server\)
# the writer, waiting in its write: nothing applied, it is never stopped (else EBUSY after 1 s)
revert   | @W                         | ENOENT  | nothing applied to process [0-9]+ \(python3\)
revert   | all x                      | EINVAL  | too many words \(expected PID or all\)
revert   | @S 2026-02                 | EINVAL  | too many words \(expected PID or all\)
# auto: the writer gets the errno; no log line (the reason is the library's "expected 0 or 1")
auto     | 2                          | EINVAL  | -
auto     | yes                        | EINVAL  | -
# -- incoming/ --
incoming | junk.tar                   | EINVAL  | not a bundle archive: Unrecognized archive format
incoming | truncated.tar.gz           | EINVAL  | not a bundle archive: truncated gzip input
incoming | unsigned.tar               | EKEYREJECTED | 2026.01/2026-03/unsigned: unsigned \(the store accepts signed sets only\)
incoming | tampered.tar               | EBADMSG | 2026.01/2026-03/tampered: patch.so does not match the manifest's patch-sha256
incoming | late.tar                   | ERANGE  | 2026.01/2026-04/late: month 2026-04 is outside baseline 2026.01's window \(2026-02..2026-03\); use --force
incoming | traversal.tar              | EINVAL  | member '../patch.so': path traversal
incoming | garbage.tar                | EINVAL  | not a bundle archive: Unrecognized archive format
# -- the filesystem's own answers: nothing is made or removed --
fs       | rmdir @M/catalog/2026.01    | EROFS   | Read-only file system
fs       | rmdir @M/processes          | EPERM   | Operation not permitted
fs       | symlink @M/lnk apply        | EPERM   | Operation not permitted
fs       | symlink @M/catalog/lnk latest | EROFS | Read-only file system
fs       | mkfifo @M/incoming/fifo     | EPERM   | Operation not permitted
fs       | mkdir @M/catalog/2099.01    | EROFS   | Read-only file system
fs       | stat @M/@LONG               | ENAMETOOLONG | File name too long
fs       | create @M/@LONG             | ENAMETOOLONG | File name too long
fs       | fstat-after-exit @M/processes/@GONE/status @GONE | ok | ok
# -- the store: a set that does not fit, a patch object altered in a commit --
apply    | @S 2026-05                 | ENOEXEC | apply [0-9]+: function handle_request at offset 0x7fff0000 size 0x[0-9a-f]+ is outside the code of .*/demo-server
apply    | @S 2026-06                 | ENOEXEC | apply [0-9]+: patch object: not an ELF file
apply    | @S 2026-02                 | EKEYREJECTED | 2026.01/2026-02/cve-2026-0001: patch.so does not match the signed manifest
TABLE
ht_log "hostile table: $n_rows rows"

ht_check "at least 40 rows" test "$n_rows" -ge 40

ht_end

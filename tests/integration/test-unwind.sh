#!/bin/bash
# C++ exceptions and backtrace() through patched code (a C++ target, with
# libgcc_s's unwinder): a patched function that throws (caught by its
# caller), and an exception from a callee passing through a patched frame,
# are caught before apply, after apply, after a replace (month N over N-1)
# and after revert; backtrace() inside a patched function sees its callers;
# perf's map names the patched functions and keeps the lines of others, and
# is never written outside the process's own root (its /tmp a link to a host
# directory). A
# process whose unwinder is not libgcc_s's is refused, as is a patch whose
# .eh_frame libgcc could not walk; hp build ends .eh_frame.
. "$HP_TEST_LIB/harness.sh"
. "$(dirname "$0")/test-engine-lib.sh"
ht_begin "unwind"

FIX=$HP_BUILD_ROOT/tests/fixtures/unwind
TARGET=$FIX/unwind-target

# un_start PROGRAM [ARGS]: start it on a FIFO (ET_PID, ET_FIFO, ET_OUT as et_start)
un_start() {
	local prog=$1
	shift
	ET_FIFO=$HT_TMP/fifo.${#HT_PIDS[@]}
	mkfifo "$ET_FIFO"
	ht_spawn "$prog" "$ET_FIFO" "$@"
	ET_PID=$HT_LAST_PID
	ET_OUT=$HT_LAST_OUT
	ht_wait_for 10 grep -q '^ready' "$ET_OUT"
}

# un_set MONTH DIR PATCH.so|SRC.c: hp build a set for the target into DIR
un_set() {
	"$HP_BIN" build --target "${UN_BIN:-$TARGET}" --baseline 2026.01 --month "$1" \
		--name fix -o "$2.tar" "$3" >/dev/null || return 1
	mkdir -p "$2" && tar -xf "$2.tar" -C "$2"
}

# un_round WHAT PARSE_VALUE RELAY_VALUE PARSE_THROWER: the target's answers
# to the four calls, and that it is still alive
un_round() {
	ht_eq "$1: parse(3)" "value $2" "$(et_ask 'p 3')"
	ht_eq "$1: parse(-1) throws inside the function, its caller catches" \
		"caught negative ($4)" "$(et_ask 'p -1')"
	ht_eq "$1: relay(2)" "value $3" "$(et_ask 'r 2')"
	ht_eq "$1: relay(-1) lets thrower's exception through, its caller catches" \
		"caught thrower" "$(et_ask 'r -1')"
	ht_check "$1: the target runs on" kill -0 "$ET_PID"
}

a=$HT_TMP/a
b=$HT_TMP/b
ht_check "build month N-1 from the C++ patch object" un_set 2026-02 "$a" "$FIX/unwind-patch-a.so"
ht_check "build month N (replaces trace too)" un_set 2026-03 "$b" "$FIX/unwind-patch-b.so"

un_start "$TARGET"
perfmap=/tmp/perf-$ET_PID.map
# a JIT's own line in the perf map, which must survive our rewrites
printf '1000 10 jitted_code\n' >"$perfmap"
maps0=$(et_maps)
un_round "before apply" 4 5 original
bt0=$(et_ask t)
ht_match "before apply: backtrace() names trace and its callers" \
	'^frames [0-9]+ trace inner middle outer ' "$bt0"
n0=$(printf '%s' "$bt0" | cut -d' ' -f2)

ht_match "apply month N-1" '^applied changed=1 ' "$(et_driver apply "$ET_PID" "$a" 2>&1)"
un_round "after apply" 103 204 "patch a"
ht_match "after apply: perf map names parse in the patch" \
	"^[0-9a-f]+ [0-9a-f]+ parse \\[hotpatch 2026.01/2026-02/fix\\]$" "$(grep ' parse ' "$perfmap")"
ht_eq "after apply: perf map keeps the other lines" "1000 10 jitted_code" "$(head -1 "$perfmap")"

ht_match "replace by month N" '^applied changed=1 .*set=2026.01/2026-03/fix$' \
	"$(et_driver apply "$ET_PID" "$b" 2>&1)"
un_round "after replace" 1003 2004 "patch b"
bt=$(et_ask t)
# the patched trace has no name for backtrace_symbols (no object maps it)
ht_eq "after replace: backtrace() in a patched function sees every caller" \
	"frames $n0 ? inner middle outer" "$(printf '%s' "$bt" | cut -d' ' -f1-6)"
ht_eq "after replace: perf map has month N's three functions only" \
	"parse relay trace" \
	"$(grep -o '[a-z]* \[hotpatch 2026.01/2026-03/fix\]$' "$perfmap" | cut -d' ' -f1 | sort | xargs)"
ht_eq "after replace: no line of month N-1" 0 "$(grep -c '2026-02' "$perfmap")"

# gdb, given the patch objects by contrib/gdb/hotpatch.py, names the patched
# relay and unwinds through it from a breakpoint in thrower
if command -v gdb >/dev/null; then
	store=$HT_TMP/store.git
	HP_STORE=$store "$HP_BIN" store init --allow-unsigned >/dev/null
	HP_STORE=$store "$HP_BIN" import "$b.tar" >/dev/null
	gdbout=$HT_TMP/gdb.out
	ht_spawn timeout 120 gdb -nx -batch -p "$ET_PID" \
		-x "$HP_SOURCE_ROOT/contrib/gdb/hotpatch.py" -ex "hotpatch-symbols $store" \
		-ex 'break thrower' -ex 'continue' -ex 'bt' -ex 'detach'
	gdbpid=$HT_LAST_PID
	gdbout=$HT_LAST_OUT
	ht_wait_for 100 grep -q '^Breakpoint 1 at' "$gdbout"
	ht_eq "gdb: relay(5) stopped in thrower and went on" "value 2010" "$(et_ask 'r 5')"
	ht_wait_exit "$gdbpid" 30
	ht_match "gdb: hotpatch-symbols loaded month N's object" \
		'^hotpatch-symbols: 2026.01/2026-03/fix at 0x[0-9a-f]+ \(region 0x[0-9a-f]+\)$' \
		"$(grep '^hotpatch-symbols' "$gdbout")"
	ht_match "gdb: bt names the patched relay, then its caller" \
		'^#1 +0x[0-9a-f]+ in relay \(.*patch-b.cc:[0-9]+ #2 +0x[0-9a-f]+ in command ' \
		"$(grep '^#[12] ' "$gdbout" | xargs -d '\n')"
fi

ht_match "revert" '^reverted changed=1 ' "$(et_driver revert "$ET_PID" 2>&1)"
un_round "after revert" 4 5 original
ht_eq "after revert: backtrace() as before" "$bt0" "$(et_ask t)"
ht_eq "after revert: the regions are deregistered and unmapped" "$maps0" "$(et_maps)"
ht_eq "after revert: perf map holds the other lines only" "1000 10 jitted_code" "$(cat "$perfmap")"

ht_match "apply again after revert" '^applied changed=1 ' "$(et_driver apply "$ET_PID" "$b" 2>&1)"
un_round "applied again" 1003 2004 "patch b"
ht_match "revert again" '^reverted changed=1 ' "$(et_driver revert "$ET_PID" 2>&1)"
ht_eq "revert again: maps as before" "$maps0" "$(et_maps)"
# the step that registers the tables, and the one after it, made to fail
# and killed there (test builds): made to fail, the tables are taken back
# and the region unmapped; killed, the region stays registered, an orphan
# no jump reaches, which the next operation deregisters and unmaps
if ht_have_test_hooks; then
	for point in register stop; do
		err=$(HP_ENGINE_TEST_FAIL=$point "$ENGINE_DRIVER" apply "$ET_PID" "$b" 2>&1)
		ht_eq "fail at $point: EIO and the point named" \
			"5 engine-driver: EIO: apply $ET_PID: test failure point $point" "$? $err"
		un_round "fail at $point" 4 5 original
		ht_eq "fail at $point: deregistered and unmapped" "$maps0" "$(et_maps)"
	done
	for point in register switch; do
		mark=$HT_TMP/stall.$point
		HP_ENGINE_TEST_STALL=$point HP_ENGINE_TEST_STALL_FILE=$mark \
			"$ENGINE_DRIVER" apply "$ET_PID" "$b" >/dev/null 2>&1 &
		drv=$!
		ht_track_pid "$drv"
		ht_wait_for 20 test -e "$mark" || ht_log "$point: the stall never came"
		kill -KILL "$drv"
		wait "$drv" 2>/dev/null
		case $point in
		register) un_round "killed at $point: not switched" 4 5 original ;;
		switch) un_round "killed at $point: switched" 1003 2004 "patch b" ;;
		esac
		ht_match "killed at $point: a new engine applies" '^applied changed=[01] ' \
			"$(et_driver apply "$ET_PID" "$b" 2>&1)"
		un_round "killed at $point, applied" 1003 2004 "patch b"
		ht_match "killed at $point: and reverts" '^reverted changed=1 ' \
			"$(et_driver revert "$ET_PID" 2>&1)"
		un_round "killed at $point, reverted" 4 5 original
		ht_eq "killed at $point: every region deregistered and unmapped" "$maps0" "$(et_maps)"
	done
fi

rm -f "$perfmap"
ht_match "without a perf map: apply" '^applied changed=1 ' "$(et_driver apply "$ET_PID" "$a" 2>&1)"
ht_eq "without a perf map: made with our two lines" 2 "$(grep -c '\[hotpatch ' "$perfmap")"
ht_match "without a perf map: revert" '^reverted changed=1 ' "$(et_driver revert "$ET_PID" 2>&1)"
ht_check "without a perf map: removed when nothing else is in it" test ! -e "$perfmap"

# a process in a root of its own (a mount namespace and a chroot) whose
# /tmp is a symbolic link to a directory of the host, by its absolute host
# path: its perf map is looked for inside its root, where that path leads
# nowhere, and never written to the host's directory
if command -v unshare >/dev/null && command -v chroot >/dev/null; then
	victim=$HT_TMP/victim
	ns=$HT_TMP/ns
	root=$HT_TMP/root
	mkdir -p "$victim" "$ns" "$root"
	mkfifo "$ns/fifo"
	saved=("$ET_PID" "$ET_OUT" "$ET_FIFO")
	ht_spawn unshare -m --propagation private sh -c '
		set -e
		r=$1 fix=$2 ns=$3 victim=$4
		mount -t tmpfs tmpfs "$r"
		mkdir -p "$r/usr" "$r/etc" "$r/ns" "$r$fix"
		mount --rbind /usr "$r/usr"
		mount --rbind /etc "$r/etc"
		mount --bind "$ns" "$r/ns"
		mount --bind "$fix" "$r$fix"
		for d in lib lib64 bin; do [ -e "/usr/$d" ] && ln -s "usr/$d" "$r/$d"; done
		ln -s "$victim" "$r/tmp"
		exec chroot "$r" "$fix/unwind-target" /ns/fifo' sh "$root" "$FIX" "$ns" "$victim"
	ET_PID=$HT_LAST_PID
	ET_OUT=$HT_LAST_OUT
	ET_FIFO=$ns/fifo
	ht_check "own root: the target runs in it" ht_wait_for 10 grep -q '^ready' "$ET_OUT"
	ht_match "own root, /tmp a link to the host's $victim: applied" '^applied changed=1 ' \
		"$(et_driver apply "$ET_PID" "$a" 2>&1)"
	un_round "own root, applied" 103 204 "patch a"
	ht_eq "own root: nothing written to the host directory its /tmp names" "" \
		"$(ls -A "$victim")"
	ht_match "own root: reverted" '^reverted changed=1 ' "$(et_driver revert "$ET_PID" 2>&1)"
	ht_eq "own root: still nothing in the host directory" "" "$(ls -A "$victim")"
	kill "$ET_PID"
	ht_wait_exit "$ET_PID" 5 >/dev/null 2>&1 || true
	ET_PID=${saved[0]} ET_OUT=${saved[1]} ET_FIFO=${saved[2]}
fi

# a patch object whose .eh_frame has no end marker (-nostartfiles, no hp
# build): libgcc would walk into what follows it
if command -v g++ >/dev/null; then
	cat >"$HT_TMP/nomarker.cc" <<'SRC'
#include <stdexcept>
extern "C" int parse(int x)
{
	try {
		if (x < 0)
			throw std::invalid_argument("negative (no marker)");
	} catch (const std::logic_error &) {
		throw;
	}
	return x + 7;
}
SRC
	g++ -fPIC -shared -O2 -nostartfiles -o "$HT_TMP/nomarker.so" "$HT_TMP/nomarker.cc"
	ht_check "build the set without the marker" un_set 2026-02 "$HT_TMP/nm" "$HT_TMP/nomarker.so"
	err=$(et_driver apply "$ET_PID" "$HT_TMP/nm" 2>&1 >/dev/null)
	ht_eq "no .eh_frame end marker: ENOEXEC" 8 "$?"
	ht_eq "no .eh_frame end marker: the message" \
		"engine-driver: ENOEXEC: apply $ET_PID: 2026.01/2026-02/fix: patch object: its .eh_frame has no end marker (a zero word, which crtend.o or hp build adds)" \
		"$err"
	ht_eq "no .eh_frame end marker: maps untouched" "$maps0" "$(et_maps)"
fi

# hp build's own patch objects end .eh_frame
cat >"$HT_TMP/thrower.c" <<'SRC'
int thrower(int x)
{
	return x * 3;
}
SRC
ht_check "hp build a C patch" un_set 2026-02 "$HT_TMP/c" "$HT_TMP/thrower.c"
ht_match "hp build: its .eh_frame ends with the zero word" 'ZERO terminator' \
	"$(readelf --debug-dump=frames "$HT_TMP/c/patch.so" 2>/dev/null | tail -3)"
ht_match "a C patch in the C++ process: applied" '^applied changed=1 ' \
	"$(et_driver apply "$ET_PID" "$HT_TMP/c" 2>&1)"
ht_eq "a C patch: relay(2) through it" "value 7" "$(et_ask 'r 2')"
ht_match "a C patch: reverted" '^reverted changed=1 ' "$(et_driver revert "$ET_PID" 2>&1)"
ht_check "no uncaught exception: still running" kill -0 "$ET_PID"
ht_eq "the target printed nothing but answers" "" "$(grep -Ev '^(ready|[0-9]+: )' "$ET_OUT")"
rm -f "$perfmap"
kill "$ET_PID"

# the main thread sits inside fork() (an atfork handler), where the
# allocator's locks may be held: the engine makes its call in another thread
un_start "$TARGET" --in-fork
ht_check "in fork: the main thread waits in its atfork handler" \
	ht_wait_for 10 grep -q '^34 ' "/proc/$ET_PID/syscall"
ht_match "in fork: applied" '^applied changed=1 ' "$(et_driver apply "$ET_PID" "$b" 2>&1)"
un_round "in fork" 1003 2004 "patch b"
ht_match "in fork: reverted" '^reverted changed=1 ' "$(et_driver revert "$ET_PID" 2>&1)"
un_round "in fork, reverted" 4 5 original
ht_eq "in fork: the main thread is still there" 34 "$(cut -d' ' -f1 "/proc/$ET_PID/syscall")"
kill "$ET_PID"

# a process whose unwinder is not libgcc_s's: refused, untouched
UN_BIN=$FIX/unwind-other
un_start "$UN_BIN"
rm -f "/tmp/perf-$ET_PID.map" # a dead process's of the same PID: not this one's
ht_check "build a set for it" un_set 2026-02 "$HT_TMP/o" "$HP_SOURCE_ROOT/tests/fixtures/unwind/patch-other.c"
maps0=$(et_maps)
err=$(et_driver apply "$ET_PID" "$HT_TMP/o" 2>&1 >/dev/null)
ht_eq "another unwinder: ENOEXEC" 8 "$?"
ht_eq "another unwinder: the message" \
	"engine-driver: ENOEXEC: apply $ET_PID: process $ET_PID: no libgcc_s unwinder, but $FIX/libotherunwind.so throws or unwinds C++ exceptions with another one: an exception through a patched function would abort the program" \
	"$err"
ht_eq "another unwinder: maps untouched" "$maps0" "$(et_maps)"
ht_eq "another unwinder: the original runs" "value 3" "$(et_ask 'v 2')"
ht_check "another unwinder: no perf map written" test ! -e "/tmp/perf-$ET_PID.map"
kill "$ET_PID"

# The same through the daemon, whose engine keeps what each object says
# about unwinding (libgcc_s's registration functions, the allocators' entry
# points, another unwinder) by build-id from one operation to the next: the
# second round of each takes the kept facts, not the objects' symbols.
. "$HP_SOURCE_ROOT/tests/fixtures/demo/fs-setup.sh"
fs_need
rm -rf "$HT_TMP/store.git" # gdb's, unsigned sets allowed
ht_check "daemon: a store with a trusted key" fs_store
ht_check "daemon: month N for the C++ target, signed" \
	fs_build "$TARGET" 2026-03 fix "$HT_TMP/fs-b.tar" "$FIX/unwind-patch-b.so"
ht_check "daemon: a set for the other unwinder's target, signed" \
	fs_build "$UN_BIN" 2026-02 other "$HT_TMP/fs-o.tar" \
	"$HP_SOURCE_ROOT/tests/fixtures/unwind/patch-other.c"
ht_check "daemon: imported" "$HP_BIN" import "$HT_TMP/fs-b.tar" "$HT_TMP/fs-o.tar"
M=$HT_TMP/mnt
ht_check "daemon: mount" fs_mount "$M"
un_start "$TARGET"
for round in 1 2; do
	fs_echo "$M/apply" "$ET_PID"
	ht_eq "daemon: apply ($round)" "0 " "$FS_RC $FS_ERR"
	un_round "daemon: applied ($round)" 1003 2004 "patch b"
	fs_echo "$M/revert" "$ET_PID"
	ht_eq "daemon: revert ($round)" "0 " "$FS_RC $FS_ERR"
	un_round "daemon: reverted ($round)" 4 5 original
done
kill "$ET_PID"
un_start "$UN_BIN"
for round in 1 2; do
	fs_expect_errno "daemon: another unwinder refused ($round)" "Exec format error" \
		"$M/apply" "$ET_PID"
	ht_eq "daemon: another unwinder ($round): the original runs" "value 3" "$(et_ask 'v 2')"
done
kill "$ET_PID"
ht_check "daemon: unmount" fusermount3 -u "$M"

ht_end

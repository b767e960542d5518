#!/bin/bash
# The engine on PIE, non-PIE and shared-library targets whose threads sit in
# read, nanosleep, futex, epoll_wait and pause: apply changes behaviour,
# applying again changes nothing, month 2026-03 replaces 2026-02 (a function
# it drops returns to the original), revert restores the original and
# unmaps, reverting nothing is ENOENT; a patch calling libc's ifuncs works;
# a process whose main thread has left (pthread_exit) is patched too. The
# target reports any EINTR.
. "$HP_TEST_LIB/harness.sh"
. "$(dirname "$0")/test-engine-lib.sh"
ht_begin "engine"

test_libc_ifuncs() {
	local c=$HT_TMP/$v-libc

	# The engine binds an ifunc through its own copy of libc, asked by
	# name of that object: a sanitizer build of the engine, whose
	# interceptors define strlen and memcpy first, binds them the same.
	ht_check "$v: make a set calling memcpy and strlen" et_set "$v" patch-libc 2026-02 "$c"
	ht_match "$v: apply it" '^applied changed=1 ' "$(et_driver apply "$ET_PID" "$c" 2>&1)"
	ht_eq "$v: it computes through libc" "22 107" "$(et_query 7)"
	ht_match "$v: revert it" '^reverted changed=1 ' "$(et_driver revert "$ET_PID" 2>&1)"
	ht_eq "$v: original again" "14 107" "$(et_query 7)"
	# An engine whose process has another strlen first (a preloaded
	# library). A sanitizer build is that case already (its interceptors),
	# and its runtime must come first: no preload there.
	if nm -D "$HP_BUILD_ROOT/tests/integration/engine-driver" 2>/dev/null | grep -q ' __asan_init'; then
		return
	fi
	ht_match "$v: apply it from an engine with strlen preloaded" '^applied changed=1 ' \
		"$(LD_PRELOAD=$ENGINE_FIX/engine-preload-strlen.so et_driver apply "$ET_PID" "$c" 2>&1)"
	ht_eq "$v: it computes through the target's libc" "22 107" "$(et_query 7)"
	ht_match "$v: revert it again" '^reverted changed=1 ' "$(et_driver revert "$ET_PID" 2>&1)"
}

for v in pie nopie lib; do
	et_start "$v"
	a=$HT_TMP/$v-a
	b=$HT_TMP/$v-b
	ht_check "$v: make the 2026-02 set" et_set "$v" patch-a 2026-02 "$a"
	ht_check "$v: make the 2026-03 set" et_set "$v" patch-b 2026-03 "$b"
	bid=$(sed -n 's/^build-id //p' "$a/manifest")
	ht_eq "$v: original behaviour" "14 107" "$(et_query 7)"
	maps0=$(et_maps)
	text0=$(et_driver textsum "$ET_PID")

	out=$(et_driver apply "$ET_PID" "$a" 2>&1)
	ht_match "$v: apply 2026-02 changes the process (5 threads)" \
		'^applied changed=1 pause_us=[0-9]+ threads=5 tries=1 set=2026.01/2026-02/fix$' "$out"
	ht_log "$v: $out"
	ht_eq "$v: patched behaviour (static helper and data used)" "100 207" "$(et_query 7)"
	ht_match "$v: inspect shows 2026-02 with its pause" \
		"^applied $bid 2026.01/2026-02/fix 2026-02 funcs=2 pause_us=[1-9][0-9]* " \
		"$(et_driver inspect "$ET_PID")"
	ht_match "$v: applying it again changes nothing" '^applied changed=0 ' \
		"$(et_driver apply "$ET_PID" "$a" 2>&1)"

	out=$(et_driver apply "$ET_PID" "$b" 2>&1)
	ht_match "$v: 2026-03 replaces 2026-02" '^applied changed=1 .*set=2026.01/2026-03/fix$' "$out"
	ht_log "$v: $out"
	ht_eq "$v: 2026-03 behaviour, dropped function back to the original" "1003 107" \
		"$(et_query 7)"
	ht_eq "$v: one region applied, 2026-03" "2026.01/2026-03/fix" \
		"$(et_driver inspect "$ET_PID" | awk '/^applied/ { print $3 }')"

	if [ "$v" = lib ]; then
		out=$(et_driver revert "$ET_PID" "$bid" 2>&1)
	else
		out=$(et_driver revert "$ET_PID" 2>&1)
	fi
	ht_match "$v: revert" '^reverted changed=1 ' "$out"
	ht_log "$v: $out"
	ht_eq "$v: original behaviour again" "14 107" "$(et_query 7)"
	ht_eq "$v: maps as before (regions unmapped)" "$maps0" "$(et_maps)"
	ht_eq "$v: code as before" "$text0" "$(et_driver textsum "$ET_PID")"
	ht_eq "$v: nothing applied" "" "$(et_driver inspect "$ET_PID" | grep '^applied')"

	err=$(et_driver revert "$ET_PID" 2>&1 >/dev/null)
	rc=$?
	ht_eq "$v: revert of nothing: ENOENT" 2 "$rc"
	ht_match "$v: revert of nothing: one line" '^engine-driver: ENOENT: revert [0-9]+: nothing applied$' "$err"
	# libc's memcpy and strlen are ifuncs: bound to what libc chose (not for
	# the library: it needs nothing of libc, so hp build finds no memcpy)
	[ "$v" = lib ] || test_libc_ifuncs

	ht_check "$v: no EINTR seen, still running" et_clean
	kill "$ET_PID"
done

# the main thread has left (pthread_exit): another thread runs our calls
et_start pie --main-exits
a=$HT_TMP/pie-a
ht_check "main gone: the leader is a zombie" ht_wait_for 5 grep -q '^State:.*Z' "/proc/$ET_PID/status"
ht_match "main gone: inspect still sees the program" "^object [0-9a-f]+ .*/engine-target-pie " \
	"$(et_driver inspect "$ET_PID")"
ht_match "main gone: apply" '^applied changed=1 .*threads=4 ' "$(et_driver apply "$ET_PID" "$a" 2>&1)"
ht_eq "main gone: patched behaviour" "100 207" "$(et_query 7)"
ht_match "main gone: revert" '^reverted changed=1 ' "$(et_driver revert "$ET_PID" 2>&1)"
ht_eq "main gone: original behaviour" "14 107" "$(et_query 7)"
ht_check "main gone: no EINTR seen, still running" et_clean

ht_end

#!/bin/bash
# Every named failure point of apply, replace and revert (apply/engine.c,
# compiled into test builds only), on a process with two patched targets
# (the program and its library), threads parked in the calls that return
# EINTR, SIGUSR1 (blocked) sent to it all along. At each point, once made
# to fail (HP_ENGINE_TEST_FAIL) and once killed there with SIGKILL
# (HP_ENGINE_TEST_STALL): the target keeps running without an EINTR, each
# target ends fully patched or fully unpatched (before the commit, the
# process as it was; after it, switched), and a new engine process (what a
# restarted daemon is: it keeps no state) reports what the process runs
# and can revert it. Killed between two entry writes, one target may be
# switched and the other not: the window that cannot be closed
# (docs/engine.md), each target whole.
. "$HP_TEST_LIB/harness.sh"
. "$(dirname "$0")/test-engine-lib.sh"
ht_begin "engine-points"
ht_need_test_hooks

et_start lib --signals --eintr-ok
ht_spawn "$ENGINE_DRIVER" signal "$ET_PID" "$(kill -l USR1)" 2000
exe=$HT_TMP/exe lib=$HT_TMP/lib exe3=$HT_TMP/exe3 lib3=$HT_TMP/lib3
ht_check "make the program's set (2026-02)" et_set lib-exe patch-exe 2026-02 "$exe"
ht_check "make the library's set (2026-02)" et_set lib patch-a 2026-02 "$lib"
ht_check "make the program's set (2026-03)" et_set lib-exe patch-exe 2026-03 "$exe3"
ht_check "make the library's set (2026-03)" et_set lib patch-b 2026-03 "$lib3"
et_query 7 >/dev/null
maps0=$(et_maps)
text0=$(et_driver textsum "$ET_PID")

# What the process runs, from its behaviour: exe_value(5), then the
# library's compute(7) other(7). none, feb, mar for each target.
behaviour() {
	local e l
	case $(et_exe_value 5) in 1005) e=none ;; 2005) e=patched ;; *) e=bad ;; esac
	case $(et_query 7) in "14 107") l=none ;; "100 207") l=feb ;; "1003 107") l=mar ;; *) l=bad ;; esac
	echo "exe=$e lib=$l"
}
# What a new engine process reads from the process's memory, in the same
# words; "half" for a region not every entry of which jumps into it.
reported() {
	local out e=none l=none
	out=$(et_driver inspect "$ET_PID")
	while read -r _ id set month funcs _ _ switched _; do
		[ "${funcs#funcs=}" = "${switched#switched=}" ] || month=half
		if [ "$id" = "$(sed -n 's/^build-id //p' "$exe/manifest")" ]; then
			[ "$month" = half ] && e=half || e=patched
		else
			case $month in 2026-02) l=feb ;; 2026-03) l=mar ;; *) l=$month ;; esac
		fi
	done < <(printf '%s\n' "$out" | grep '^applied ')
	echo "exe=$e lib=$l"
}

# to STATE: bring the process there (none, feb, mar) with plain operations,
# from what it runs now ($cur, as behaviour says it)
cur="exe=none lib=none"
to() {
	[ "$cur" = "$(words "$1")" ] && return 0
	[ "$cur" = "exe=none lib=none" ] || et_driver revert "$ET_PID" >/dev/null 2>&1
	case $1 in
	feb) et_driver apply-sets "$ET_PID" "$exe" "$lib" >/dev/null ;;
	mar) et_driver apply-sets "$ET_PID" "$exe3" "$lib3" >/dev/null ;;
	esac
	cur=$(words "$1")
}
words() {
	case $1 in
	none) echo "exe=none lib=none" ;;
	feb) echo "exe=patched lib=feb" ;;
	mar) echo "exe=patched lib=mar" ;;
	esac
}

# case OP FROM TO POINT COMMIT: OP (apply, replace, revert) from state
# FROM to state TO, made to fail at POINT, then killed at POINT. COMMIT:
# the point is past the commit (the operation's change stands).
point_case() {
	local op=$1 from=$2 dest=$3 point=$4 commit=$5 out rc want mark drv seen
	local -a cmd
	case $op in
	apply) cmd=(apply-sets "$ET_PID" "$exe" "$lib") ;;
	replace) cmd=(apply-sets "$ET_PID" "$exe3" "$lib3") ;;
	revert) cmd=(revert "$ET_PID") ;;
	esac
	# made to fail
	to "$from"
	out=$(HP_ENGINE_TEST_FAIL=$point "$ENGINE_DRIVER" "${cmd[@]}" 2>&1)
	rc=$?
	if [ "$commit" = 1 ]; then
		ht_eq "$op, fail at $point (after the commit): it succeeds" 0 "$rc"
		want=$(words "$dest")
	else
		ht_eq "$op, fail at $point: EIO" 5 "$rc"
		ht_match "$op, fail at $point: the point named" \
			"^engine-driver: EIO: (apply|revert) $ET_PID: (switch: )?test failure point $point$" "$out"
		want=$(words "$from")
	fi
	seen=$(behaviour)
	cur=$seen
	ht_eq "$op, fail at $point: the process runs $want" "$want" "$seen"
	ht_eq "$op, fail at $point: a new engine reports it" "$want" "$(reported)"
	# killed there
	to "$from"
	mark=$HT_TMP/stall.$op.$point
	HP_ENGINE_TEST_STALL=$point HP_ENGINE_TEST_STALL_FILE=$mark \
		"$ENGINE_DRIVER" "${cmd[@]}" >/dev/null 2>&1 &
	drv=$!
	ht_track_pid "$drv"
	ht_wait_for 20 test -e "$mark" || ht_log "$op $point: the stall never came"
	kill -KILL "$drv"
	wait "$drv" 2>/dev/null
	seen=$(behaviour)
	case $point in
	between-writes)
		# the program's entry is written first (lower address): it alone
		ht_match "$op, killed at $point: each target whole" \
			"^$(words "$dest" | cut -d' ' -f1) $(words "$from" | cut -d' ' -f2)$" "$seen" ;;
	parse | attach | check | map | between-maps | relocate | stop)
		ht_eq "$op, killed at $point: the process runs $(words "$from")" "$(words "$from")" "$seen" ;;
	*)
		ht_eq "$op, killed at $point: the process runs $(words "$dest")" "$(words "$dest")" "$seen" ;;
	esac
	ht_eq "$op, killed at $point: a new engine reports it" "$seen" "$(reported)"
	if [ "$seen" != "exe=none lib=none" ]; then
		ht_match "$op, killed at $point: and reverts it" '^reverted changed=1 ' \
			"$(et_driver revert "$ET_PID" 2>&1)"
		seen=$(behaviour)
		ht_eq "$op, killed at $point: original behaviour after the revert" \
			"exe=none lib=none" "$seen"
	fi
	cur=$seen
}

for p in parse attach check map between-maps relocate stop between-writes switch; do
	point_case apply none feb "$p" 0
done
for p in resume unmap detach; do
	point_case apply none feb "$p" 1
done
for p in attach check map between-maps relocate stop between-writes switch; do
	point_case replace feb mar "$p" 0
done
for p in resume unmap detach; do
	point_case replace feb mar "$p" 1
done
for p in attach check stop between-writes switch; do
	point_case revert mar none "$p" 0
done
for p in resume unmap detach; do
	point_case revert mar none "$p" 1
done

# what the killed ones left (orphan regions, trampoline bytes) goes with
# the next operations
to feb
to none
ht_eq "maps as before at the end" "$maps0" "$(et_maps)"
ht_eq "code as before at the end" "$text0" "$(et_driver textsum "$ET_PID")"
counts=$(et_ask e)
ht_log "target: $counts"
ht_eq "no EINTR in any thread, killed at every point" "0" \
	"$(printf '%s\n' "$counts" | sed -n 's/^eintr \([0-9]*\) .*/\1/p')"
ht_check "still running" kill -0 "$ET_PID"

ht_end

# shellcheck shell=bash
# Helpers for the engine's shell tests; source after harness.sh and ht_begin.
#   et_start VARIANT [ARGS]   start engine-target-VARIANT (pie, nopie, lib):
#                             ET_PID, ET_FIFO, ET_OUT
#   et_query X                "compute(X) other(X)" as the target computes them
#   et_spin                   the target's spin counter
#   et_exe_value X            exe_value(X): a function of the program itself
#   et_set VARIANT PATCH MONTH DIR [--active-ok F]   hp build a patch set into DIR
#                             (VARIANT lib-exe: the program of the lib variant)
#   et_driver ARGS...         the engine driver (apply, revert, inspect, ...)
#   et_clean                  the target printed no EINTR/BAD line and is alive

ENGINE_DRIVER=$HP_BUILD_ROOT/tests/integration/engine-driver
ENGINE_FIX=$HP_BUILD_ROOT/tests/fixtures/engine

et_driver() { "$ENGINE_DRIVER" "$@"; }

et_start() {
	local variant=$1
	shift
	ET_FIFO=$HT_TMP/fifo.$variant.${#HT_PIDS[@]}
	mkfifo "$ET_FIFO"
	ht_spawn "$ENGINE_FIX/engine-target-$variant" "$ET_FIFO" "$@"
	ET_PID=$HT_LAST_PID
	ET_OUT=$HT_LAST_OUT
	ht_wait_for 10 grep -q '^ready' "$ET_OUT"
}

# Send a command to the target and print its answer (tagged, so answers
# never mix up; empty after 5 s without one). Runs in $(...): the tag
# counter lives in a file.
et_ask() {
	local tag
	tag=$(($(cat "$HT_TMP/tag" 2>/dev/null || echo 0) + 1))
	echo "$tag" >"$HT_TMP/tag"
	timeout 5 sh -c 'printf "%s\n" "$1" > "$2"' sh "$1 $tag" "$ET_FIFO" || return 1
	ht_wait_for 5 grep -q "^$tag: " "$ET_OUT" || return 1
	sed -n "s/^$tag: //p" "$ET_OUT"
}

et_query() { et_ask "q $1"; }
et_exe_value() { et_ask "x $1"; }
et_spin() { et_ask "s" | sed 's/^spin //'; }

et_target_file() {
	case $1 in
	lib) echo "$ENGINE_FIX/libenginetarget.so" ;;
	lib-exe) echo "$ENGINE_FIX/engine-target-lib" ;; # the program of the lib variant
	*) echo "$ENGINE_FIX/engine-target-$1" ;;
	esac
}

# et_set VARIANT PATCH MONTH DIR [--active-ok F]: hp build the fixture patch
# PATCH.c against the variant's target, then unpack the bundle into DIR.
et_set() {
	local variant=$1 patch=$2 month=$3 dir=$4
	shift 4
	"$HP_BIN" build --target "$(et_target_file "$variant")" --baseline 2026.01 \
		--month "$month" --name fix "$@" -o "$dir.tar" \
		"$HP_SOURCE_ROOT/tests/fixtures/engine/$patch.c" >/dev/null || return 1
	mkdir -p "$dir" && tar -xf "$dir.tar" -C "$dir"
}

et_clean() {
	kill -0 "$ET_PID" 2>/dev/null && ! grep -Eq '^(EINTR|BAD)' "$ET_OUT"
}

# The maps without the lines that move on their own (stack, heap growth).
et_maps() { grep -v -e '\[stack' -e '\[heap\]' "/proc/$ET_PID/maps"; }

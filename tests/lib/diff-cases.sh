# shellcheck shell=bash
# The golden pairs of tests/fixtures/diff/ (README there), for test-diff.sh
# and bench-diff.sh. Set DIFF_CASES (the fixtures folder) and DIFF_TMP (a
# work folder) before calling.
#
#   diff_setup CASE    the case's tree in $W/src (with the driver as
#                      hp-driver.c and its compile_commands.json), BIN in $W/bin
#   diff_accepted CASE whether the case expects a patch set (not a refusal)

diff_setup() {
	local c=$1 flags binflags f objs="" sep=""
	local cc=${CC:-cc}
	W=$DIFF_TMP/$c
	rm -rf "$W"
	mkdir -p "$W"
	cp -a "$DIFF_CASES/$c/src" "$W/src"
	cp "$DIFF_CASES/driver.c" "$W/src/hp-driver.c"
	flags=$(cat "$DIFF_CASES/$c/cflags")
	binflags=$flags
	[ -f "$DIFF_CASES/$c/bin-cflags" ] && binflags=$(cat "$DIFF_CASES/$c/bin-cflags")
	printf '[' >"$W/src/compile_commands.json"
	for f in "$W"/src/*.c; do
		f=$(basename "$f")
		# shellcheck disable=SC2086
		(cd "$W/src" && $cc $binflags -c "$f" -o "${f%.c}.o") || return 1
		objs="$objs $W/src/${f%.c}.o"
		grep -qx "$f" "$DIFF_CASES/$c/compile-omit" 2>/dev/null && continue
		printf '%s\n{"directory": "%s", "file": "%s", "command": "%s %s -c %s -o %s"}' \
			"$sep" "$W/src" "$f" "$cc" "$flags" "$f" "${f%.c}.o" >>"$W/src/compile_commands.json"
		sep=","
	done
	printf ']\n' >>"$W/src/compile_commands.json"
	# shellcheck disable=SC2086
	$cc $binflags -Wl,--build-id -o "$W/bin" $objs || return 1
	rm -f "$W"/src/*.o
}

diff_accepted() {
	! grep -q '^refuse: ' "$DIFF_CASES/$1/expect"
}

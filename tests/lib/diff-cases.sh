# shellcheck shell=bash
# The golden pairs of tests/fixtures/diff/ (README there), for test-diff.sh
# and bench-diff.sh. Set DIFF_CASES (the fixtures folder) and DIFF_TMP (a
# work folder) before calling.
#
#   diff_setup CASE    the case's tree in $W/src (with the driver as
#                      hp-driver.c and its compile_commands.json), BIN in $W/bin
#   diff_accepted CASE whether the case expects a patch set (not a refusal)

diff_setup() {
	local c=$1 flags binflags f o comp objs="" sep="" link
	local cc=${CC:-cc} cxx=${CXX:-c++}
	W=$DIFF_TMP/$c
	rm -rf "$W"
	mkdir -p "$W"
	cp -a "$DIFF_CASES/$c/src" "$W/src"
	cp "$DIFF_CASES/driver.c" "$W/src/hp-driver.c"
	# @SRC@: the tree's own path (a -ffile-prefix-map as Debian's builds have)
	flags=$(sed "s|@SRC@|$W/src|g" "$DIFF_CASES/$c/cflags")
	binflags=$flags
	[ -f "$DIFF_CASES/$c/bin-cflags" ] && binflags=$(sed "s|@SRC@|$W/src|g" "$DIFF_CASES/$c/bin-cflags")
	link=$cc
	printf '[' >"$W/src/compile_commands.json"
	for f in "$W"/src/*.c "$W"/src/*.cc; do
		[ -e "$f" ] || continue
		f=$(basename "$f")
		o=${f%.*}.o
		comp=$cc
		case $f in *.cc) comp=$cxx link=$cxx ;; esac
		# shellcheck disable=SC2086
		(cd "$W/src" && $comp $binflags -c "$f" -o "$o") || return 1
		objs="$objs $W/src/$o"
		grep -qx "$f" "$DIFF_CASES/$c/compile-omit" 2>/dev/null && continue
		printf '%s\n{"directory": "%s", "file": "%s", "command": "%s %s -c %s -o %s"}' \
			"$sep" "$W/src" "$f" "$comp" "$flags" "$f" "$o" >>"$W/src/compile_commands.json"
		sep=","
	done
	printf ']\n' >>"$W/src/compile_commands.json"
	# shellcheck disable=SC2086
	$link $binflags -Wl,--build-id -o "$W/bin" $objs || return 1
	rm -f "$W"/src/*.o
}

diff_accepted() {
	! grep -q '^refuse: ' "$DIFF_CASES/$1/expect"
}

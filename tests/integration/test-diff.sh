#!/bin/bash
# hp build --diff on the golden pairs of tests/fixtures/diff/ (README there):
# for each case, BIN is built from src/ with its compile flags, the fix is
# given as a diff, and hp build's outcome is compared with the case's
# `expect` file: the functions replaced and why (the manifest's `why`
# lines), or the one refusal line on stderr with nothing written. Each
# accepted case is then applied to the running BIN, its answers checked
# before, after and once reverted (`behaviour`). HP_DIFF_CASES limits the
# run to some cases (names separated by spaces).
. "$HP_TEST_LIB/harness.sh"
ht_begin "diff"

CASES=$HP_SOURCE_ROOT/tests/fixtures/diff
DRIVER=$HP_BUILD_ROOT/tests/integration/engine-driver
mkdir -p "$HT_TMP/tmp"
export TMPDIR=$HT_TMP/tmp

# shellcheck source=tests/lib/diff-cases.sh
. "$HP_TEST_LIB/diff-cases.sh"
DIFF_CASES=$CASES
DIFF_TMP=$HT_TMP
setup_case() { diff_setup "$@"; }

# ask FIFO OUT X: the running case's answer for X.
ask() {
	local tag
	tag=$(($(cat "$HT_TMP/tag" 2>/dev/null || echo 0) + 1))
	echo "$tag" >"$HT_TMP/tag"
	timeout 5 sh -c 'printf "%s %s\n" "$1" "$2" > "$3"' sh "$tag" "$3" "$1" || return 1
	ht_wait_for 5 grep -q "^$tag: " "$2" || return 1
	sed -n "s/^$tag: //p" "$2"
}

# behave CASE PHASE FIFO OUT: every line "PHASE X ANSWER" of the case's behaviour.
behave() {
	local c=$1 phase=$2 fifo=$3 out=$4 p x want
	while read -r p x want; do
		[ "$p" = "$phase" ] || continue
		ht_eq "$c: $phase: answer for $x" "$want" "$(ask "$fifo" "$out" "$x")"
	done <"$CASES/$c/behaviour"
}

run_case() {
	local c=$1 err st want got fifo pid out bundle=$HT_TMP/$1/set.tar
	if ! setup_case "$c" >"$HT_TMP/$c.setup" 2>&1; then
		ht_not_ok "$c: build BIN from src"
		sed 's/^/#   /' "$HT_TMP/$c.setup" >&2
		return
	fi
	err=$("$HP_BIN" build --target "$W/bin" --source "$W/src" --diff "$CASES/$c/fix.patch" \
		--baseline 2026.01 --month 2026-02 --name "$c" -o "$bundle" 2>&1 >"$W/stdout")
	st=$?
	ht_log "$c: $err"
	if ! diff_accepted "$c"; then
		want=$(sed -n 's/^refuse: //p' "$CASES/$c/expect")
		ht_eq "$c: refused, exit 1" 1 "$st"
		got=$(printf '%s\n' "$err" | tail -1)
		# shellcheck disable=SC2053
		if [[ $got == $want ]]; then ht_ok "$c: the refusal line"; else
			ht_not_ok "$c: the refusal line"
			printf '#   expected: %s\n#   actual:   %s\n' "$want" "$got" >&2
		fi
		ht_eq "$c: nothing written" "" "$(ls "$bundle" 2>/dev/null)"
		ht_eq "$c: no temporary file left" "" "$(ls -A "$TMPDIR")"
		return
	fi
	ht_eq "$c: built, exit 0" 0 "$st"
	[ "$st" = 0 ] || return
	mkdir -p "$W/set" && tar -xf "$bundle" -C "$W/set"
	want=$(sed -n 's/^replace //p' "$CASES/$c/expect" | sort | paste -sd';')
	got=$(sed -n 's/^why \([^ ]*\) /\1: /p' "$W/set/manifest" | sort | paste -sd';')
	ht_eq "$c: replaced functions and why (manifest)" "$want" "$got"
	got=$(sed -n 's/^  func \([^@ ]*\)[^:]*: /\1: /p' "$W/stdout" | sort | paste -sd';')
	ht_eq "$c: replaced functions and why (hp build's output)" "$want" "$got"
	while IFS= read -r want; do
		# shellcheck disable=SC2053
		if [[ $err == *$want* ]]; then ht_ok "$c: note: $want"; else
			ht_not_ok "$c: note: $want"
			printf '#   stderr: %s\n' "$err" >&2
		fi
	done < <(sed -n 's/^note: //p' "$CASES/$c/expect")
	ht_eq "$c: no temporary file left" "" "$(ls -A "$TMPDIR")"
	# The hand-written equivalent bench-diff.sh counts must build too.
	if [ -f "$CASES/$c/hand.c" ]; then
		ht_check "$c: hand.c builds, replacing the same functions" "$HP_BIN" build \
			--target "$W/bin" --baseline 2026.01 --month 2026-02 --name hand \
			-o "$W/hand.tar" "$CASES/$c/hand.c"
		ht_eq "$c: hand.c replaces the same functions" \
			"$(sed -n 's/^func \([^ @]*\).*/\1/p' "$W/set/manifest" | sort | paste -sd' ')" \
			"$(tar -xOf "$W/hand.tar" manifest 2>/dev/null | sed -n 's/^func \([^ @]*\).*/\1/p' | sort | paste -sd' ')"
	fi

	fifo=$W/fifo
	mkfifo "$fifo"
	ht_spawn "$W/bin" "$fifo"
	pid=$HT_LAST_PID
	out=$HT_LAST_OUT
	if ! ht_wait_for 10 grep -q '^ready' "$out"; then
		ht_not_ok "$c: BIN runs"
		return
	fi
	behave "$c" before "$fifo" "$out"
	ht_match "$c: apply to the running BIN" '^applied changed=1 ' \
		"$("$DRIVER" apply "$pid" "$W/set" 2>&1)"
	behave "$c" after "$fifo" "$out"
	ht_match "$c: revert" '^reverted changed=1 ' "$("$DRIVER" revert "$pid" 2>&1)"
	behave "$c" reverted "$fifo" "$out"
	kill "$pid" 2>/dev/null
}

for d in "$CASES"/*/; do
	c=$(basename "$d")
	if [ -n "${HP_DIFF_CASES:-}" ] && [[ " $HP_DIFF_CASES " != *" $c "* ]]; then
		continue
	fi
	run_case "$c"
done

# Hand-written mode on one-line's BIN, where compute() is also inlined into
# hp_case_query(): refused, naming the copy, unless --allow-inlined; fine
# when the patch replaces the copy's function too.
setup_case one-line >/dev/null 2>&1
hand() {
	"$HP_BIN" build --target "$W/bin" --baseline 2026.01 --month 2026-02 --name hand \
		-o "$HT_TMP/hand.tar" "$@"
}
printf 'long compute(long x)\n{\n\treturn x * 2 + 1;\n}\n' >"$HT_TMP/hand.c"
err=$(hand "$HT_TMP/hand.c" 2>&1)
ht_eq "hand-written, inlined elsewhere: exit 1" 1 "$(hand "$HT_TMP/hand.c" >/dev/null 2>&1; echo $?)"
ht_eq "hand-written, inlined elsewhere: the copies named" "hp build: function compute: BIN also \
has copies of it inlined into hp_case_query: they keep the old code; replace those too, or give \
--allow-inlined" "$(printf '%s\n' "$err" | tail -1)"
ht_eq "hand-written, inlined elsewhere: nothing written" "" "$(ls "$HT_TMP/hand.tar" 2>/dev/null)"
err=$(hand --allow-inlined "$HT_TMP/hand.c" 2>&1 >/dev/null)
ht_match "--allow-inlined: built, with a note naming the copies" \
	'^hp build: function compute: BIN also has copies of it inlined into hp_case_query: they keep the old code \(--allow-inlined\)$' "$err"
rm -f "$HT_TMP/hand.tar"
cat >>"$HT_TMP/hand.c" <<'EOF2'
#include <stdio.h>
void hp_case_query(long x, char *out, size_t size)
{
	snprintf(out, size, "%ld", compute(x));
}
EOF2
ht_check "hand-written, the inlining caller replaced too: built" hand "$HT_TMP/hand.c"

# Hand-written mode on the LTO case's BIN: the LTO build is named.
setup_case lto >/dev/null 2>&1
err=$(hand "$HT_TMP/hand.c" 2>&1)
ht_match "hand-written, LTO BIN: named as such" 'LTO' "$err"

# C++: the template instantiations a patch makes (std::vector<long>) are weak
# and stay local to it; only the function defined on purpose is replaced.
cat >"$HT_TMP/cxx.cc" <<'EOF2'
#include <cstdio>
#include <vector>
namespace {
__attribute__((noinline)) long handle(long x) { return x + 1; }
}
__attribute__((noinline)) long total(long n)
{
	std::vector<long> v;
	for (long i = 0; i < n; i++)
		v.push_back(handle(i));
	long s = 0;
	for (long x : v)
		s += x;
	return s;
}
int main(int argc, char **) { std::printf("%ld\n", total(argc)); }
EOF2
cat >"$HT_TMP/cxx-fix.cc" <<'EOF2'
#include <vector>
long total(long n)
{
	std::vector<long> v;
	for (long i = 0; i < n && i < 1000; i++)
		v.push_back(i + 1);
	long s = 0;
	for (long x : v)
		s += x;
	return s;
}
EOF2
if c++ -O2 -g -o "$HT_TMP/cxx" "$HT_TMP/cxx.cc" -Wl,--build-id; then
	ht_check "C++: a patch using std::vector builds" "$HP_BIN" build --target "$HT_TMP/cxx" \
		--cc c++ --baseline 2026.01 --month 2026-02 --name cxx -o "$HT_TMP/cxx.tar" \
		"$HT_TMP/cxx-fix.cc"
	ht_eq "C++: only the function defined on purpose is replaced" "func _Z5totall" \
		"$(tar -xOf "$HT_TMP/cxx.tar" manifest | grep '^func ' | cut -d' ' -f1-2)"
else
	ht_not_ok "C++: build the target"
fi

ht_end

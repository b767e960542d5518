#!/bin/bash
# bench-diff: what `hp build --diff` saves an author. For each golden pair of
# tests/fixtures/diff/ that gives a patch set: the changed lines of its
# fix.patch (lines starting with + or -, file headers excluded) against the
# lines of hand.c, the hand-written patch doing the same fix (every
# replaced function copied whole, helpers and callers included), and the
# wall time of `hp build --diff` (median of REPS runs). Prints one
# "name value unit" line per figure.
#
#   tests/bench/bench-diff.sh [BUILD-DIR [REPS]]     (default build, 3)
set -euo pipefail

BUILD=$(cd "${1:-build}" && pwd)
REPS=${2:-3}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
HP=$BUILD/cli/hp
DIFF_CASES=$SRC/tests/fixtures/diff
DIFF_TMP=$(mktemp -d /tmp/hp-bench-diff-XXXXXX)
trap 'rm -rf "$DIFF_TMP"' EXIT
export TMPDIR=$DIFF_TMP

# shellcheck source=tests/lib/diff-cases.sh
. "$SRC/tests/lib/diff-cases.sh"

now_ms() { date +%s%3N; }

for d in "$DIFF_CASES"/*/; do
	c=$(basename "$d")
	diff_accepted "$c" || continue
	[ -f "$d/hand.c" ] || continue
	diff_setup "$c" >/dev/null 2>&1 || { echo "bench-diff: $c: BIN does not build" >&2; continue; }
	diff_lines=$(grep -Ec '^[+-]' "$d/fix.patch" || true)
	diff_lines=$((diff_lines - $(grep -Ec '^(\+\+\+|---) ' "$d/fix.patch" || true)))
	hand_lines=$(wc -l <"$d/hand.c")
	times=()
	for _ in $(seq "$REPS"); do
		t0=$(now_ms)
		if ! "$HP" build --target "$W/bin" --source "$W/src" --diff "$d/fix.patch" \
			--baseline 2026.01 --month 2026-02 --name "$c" -o "$W/set.tar" >/dev/null 2>&1; then
			echo "bench-diff: $c: hp build --diff failed" >&2
			continue 2
		fi
		times+=($(($(now_ms) - t0)))
		rm -f "$W/set.tar"
	done
	median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
	echo "diff-lines-$c $diff_lines lines"
	echo "hand-lines-$c $hand_lines lines"
	echo "build-diff-ms-$c $median ms"
done

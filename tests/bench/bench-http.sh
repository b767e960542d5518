#!/bin/bash
# bench-http: zero downtime, measured. http-server under load from wrk for
# SECONDS, three runs: untouched (the baseline), hot-patched through a
# mounted hotpatchfs a third of the way in, and restarted there instead.
# Prints for each: requests, failed requests (socket errors, non-200 answers,
# unexpected bodies) and wrk's p99 latency, as "name value unit" lines.
#
#   tests/bench/bench-http.sh [BUILD-DIR [SECONDS [CONNECTIONS]]]   (default build, 6, 16)
set -euo pipefail

BUILD=$(cd "${1:-build}" && pwd)
SECS=${2:-6}
CONNS=${3:-16}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
HP=$BUILD/cli/hp
FS=$BUILD/fs/hotpatchfs
TMP=$(mktemp -d /tmp/hp-bench-http-XXXXXX)
MNT=$TMP/mnt
FS_PID=""
ZD_BIN=$BUILD/tests/fixtures/http/http-server
ZD_LUA=$SRC/tests/fixtures/http/wrk-count.lua
ZD_MNT=$MNT
ZD_TMP=$TMP

# shellcheck source=tests/bench/bench-lib.sh
. "$SRC/tests/bench/bench-lib.sh"
# shellcheck source=tests/fixtures/http/zd-lib.sh
. "$SRC/tests/fixtures/http/zd-lib.sh"

cleanup() {
	local p
	for p in "${ZD_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	bench_unmount
	[ -n "$FS_PID" ] && { kill "$FS_PID" 2>/dev/null || true; wait "$FS_PID" 2>/dev/null || true; }
	rm -rf "$TMP"
}
trap cleanup EXIT

command -v wrk >/dev/null || { echo "bench-http: wrk not installed (scripts/install-deps.sh)" >&2; exit 1; }
export HP_STORE=$TMP/store.git
"$HP" store init >/dev/null
"$HP" key generate "$TMP/key" >/dev/null
"$HP" key trust "$TMP/key/hotpatch.pub" >/dev/null
"$HP" build --target "$ZD_BIN" --baseline 2026.01 --month 2026-02 --name http-body \
	--sign "$TMP/key/hotpatch.key" -o "$TMP/http.tar.gz" "$SRC/tests/fixtures/http/http-fix.c" >/dev/null
"$HP" import "$TMP/http.tar.gz" >/dev/null
mkdir -p "$MNT"
"$FS" --store "$HP_STORE" -f "$MNT" 2>"$TMP/fs.err" &
FS_PID=$!
for _ in $(seq 200); do grep -qs " $MNT fuse.hotpatchfs " /proc/mounts && break; sleep 0.05; done

field() { printf '%s\n' "$1" | sed -n "s/.* $2=\([^ ]*\).*/\1/p"; }
for mode in none hotpatch restart; do
	line=$(zd_run "$mode" "$SECS" "$CONNS")
	echo "# $line"
	lost=$(($(field "$line" connect) + $(field "$line" read) + $(field "$line" write) +
		$(field "$line" timeout) + $(field "$line" status) + $(field "$line" other)))
	[ "$mode" = hotpatch ] && [ "$(field "$line" body_after)" != v2 ] &&
		echo "bench-http: the hotpatch did not take effect: $line" >&2
	echo "http.$mode.requests $(field "$line" requests) count"
	echo "http.$mode.failed $lost count"
	echo "http.$mode.socket_errors $(($(field "$line" connect) + $(field "$line" read) + $(field "$line" write) + $(field "$line" timeout))) count"
	p99=$(awk -v u="$(field "$line" p99_us)" 'BEGIN { printf "%.2f", u / 1000 }')
	if [ "$mode" = none ]; then
		echo "http.$mode.p99 $p99 ms"
	else
		echo "http.$mode.p99 $p99 ms vs http.none.p99"
	fi
done

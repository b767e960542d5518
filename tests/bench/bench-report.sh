#!/bin/bash
# bench-report: the time of `cat MNT/report` with about N_PROCS processes on
# the machine (sleeps and a few python3 to make up the number, two
# demo-servers and two renamed copies of it that only their build-id names).
#
#   tests/bench/bench-report.sh [BUILD-DIR [N_PROCS [REPS]]]   (default build, 200, 9)
#   HOTPATCHFS=/path/to/other/hotpatchfs tests/bench/bench-report.sh   (compare a build)
#
# Prints the median milliseconds of: cold (the first read after the mount:
# every process looked at, every build-id read), warm (read again at once:
# per-process answers cached) and recheck (1.1 s apart: every process that
# maps no target is looked at again, build-ids from the cache).
set -euo pipefail

BUILD=$(cd "${1:-build}" && pwd)
N=${2:-200}
REPS=${3:-9}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
HP=$BUILD/cli/hp
FS=${HOTPATCHFS:-$BUILD/fs/hotpatchfs}
TMP=$(mktemp -d /tmp/hp-bench-report-XXXXXX)
MNT=$TMP/mnt
PIDS=()

# shellcheck source=tests/bench/bench-lib.sh
. "$SRC/tests/bench/bench-lib.sh"

cleanup() {
	bench_unmount
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$TMP"
}
trap cleanup EXIT

bench_store

for name in demo-server demo-server renamed-a renamed-b; do
	cp "$BUILD/tests/fixtures/demo/demo-server" "$TMP/$name" 2>/dev/null || true
	"$TMP/$name" --interval 1000 >/dev/null 2>&1 &
	PIDS+=($!)
done
i=0
while [ "$(ls /proc | grep -c '^[0-9]')" -lt "$N" ]; do
	if [ $((i % 10)) -eq 0 ]; then
		python3 -c 'import time; time.sleep(3600)' &
	else
		sleep 3600 &
	fi
	PIDS+=($!)
	i=$((i + 1))
done

mkdir -p "$MNT"
"$FS" --store "$HP_STORE" -f "$MNT" 2>"$TMP/fs.err" &
PIDS+=($!)
for _ in $(seq 100); do grep -qs " $MNT fuse.hotpatchfs " /proc/mounts && break; sleep 0.05; done

ms() { local t0 t1; t0=$(date +%s%N); cat "$MNT/report" >"$TMP/report"; t1=$(date +%s%N); echo $(((t1 - t0) / 1000)); }
median() { sort -n | awk '{ v[NR] = $1 } END { printf "%.1f", v[int((NR + 1) / 2)] / 1000 }'; }

cold=$(ms)
lines=$(grep -c "^pid=" "$TMP/report") # process lines (the header and summary are not)
warm=$(for _ in $(seq "$REPS"); do ms; done | median)
recheck=$(for _ in $(seq "$REPS"); do sleep 1.1; ms; done | median)
printf '# processes %s, report lines %s (4 of them ours: 2 demo-servers, 2 renamed copies; an older build lists only the first 2)\n' \
	"$(ls /proc | grep -c '^[0-9]')" "$lines"
printf '# cat report, ms: cold %.1f  warm median %s  recheck median %s  (%s reps, %s)\n' \
	"$(echo "$cold" | awk '{ print $1 / 1000 }')" "$warm" "$recheck" "$REPS" "$FS"
printf 'report.cold %.1f ms\nreport.warm %s ms\nreport.recheck %s ms\n' \
	"$(echo "$cold" | awk '{ print $1 / 1000 }')" "$warm" "$recheck"

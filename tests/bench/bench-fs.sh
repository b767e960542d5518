#!/bin/bash
# bench-fs: browsing the catalog through hotpatchfs next to the same tree as
# plain files, measured in the same run (the machine is shared and noisy).
#
#   tests/bench/bench-fs.sh [BUILD-DIR [N_SETS [REPS [defaults]]]]   (default build, 10000, 5)
#
# Human lines begin with '#'; the others are figures ("NAME VALUE UNIT [vs
# BASELINE]", tests/bench/run). With "defaults" the second mount (the
# timeouts) is left out. BENCH_FS_CAT: how many manifests the one-by-one
# cat reads (default 1000). The daemon's resident memory is printed just after
# the mount and after the walks (its caches of N_SETS sets).
#
# A store with N_SETS sets (real manifest, patch.so and signature blobs from
# one hp build, repeated under 20 baselines x 2 months) is made with git
# fast-import in one commit; the plain tree is a git checkout of the same
# commit. Each of: find (walk + stat), find + cat of every file (find -type
# f -exec cat {} +), and cat of one file per set (a process per set, as
# scripts do) runs on the plain tree and on the mount in turn, REPS pairs
# after one warm-up, so that both sides of a pair see the same moment of the
# machine; printed are the median times and the median ratio mount/plain of
# the pairs, with the range of those ratios. The mount is measured twice:
# with its defaults and with -o entry_timeout=1,attr_timeout=1 (names under
# catalog/ and the attributes of sets and their files are cached either way,
# fs/ll.c: the option changes those of BASELINE, latest and what lies outside
# the catalog).
set -euo pipefail

BUILD=$(cd "${1:-build}" && pwd)
N=${2:-10000}
REPS=${3:-5}
ONLY_DEFAULTS=${4:-}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
HP=$BUILD/cli/hp
FS=$BUILD/fs/hotpatchfs
TMP=$(mktemp -d /tmp/hp-bench-fs-XXXXXX)
MNT=$TMP/mnt
FS_PID=""

# shellcheck source=tests/bench/bench-lib.sh
. "$SRC/tests/bench/bench-lib.sh"

cleanup() {
	bench_unmount
	[ -n "$FS_PID" ] && { kill "$FS_PID" 2>/dev/null || true; wait "$FS_PID" 2>/dev/null || true; }
	rm -rf "$TMP"
}
trap cleanup EXIT

bench_store

# N sets in one commit on top of the store's HEAD, through git fast-import.
python3 - "$HP_STORE" "$N" <<'EOF' | git --git-dir="$HP_STORE" fast-import --quiet
import subprocess, sys
store, n = sys.argv[1], int(sys.argv[2])
def blob(path):
    return subprocess.run(["git", "--git-dir", store, "show", "HEAD:" + path],
                          check=True, capture_output=True).stdout
base = "2026.01/2026-02/cve-2026-0001/"
files = {f: blob(base + f) for f in ("manifest", "patch.so", "signature")}
baseline = blob("2026.01/BASELINE")
head = subprocess.run(["git", "--git-dir", store, "rev-parse", "HEAD"], check=True,
                      capture_output=True, text=True).stdout.strip()
ref = subprocess.run(["git", "--git-dir", store, "symbolic-ref", "HEAD"], check=True,
                     capture_output=True, text=True).stdout.strip()
out = sys.stdout.buffer
def data(b):
    out.write(b"data %d\n" % len(b)); out.write(b); out.write(b"\n")
marks = {}
for i, (f, b) in enumerate(list(files.items()) + [("BASELINE", baseline)], 1):
    out.write(b"blob\nmark :%d\n" % i); data(b); marks[f] = i
msg = b"bench: %d sets" % n
out.write(b"commit %s\nmark :100\ncommitter bench <bench@localhost> 1767225600 +0000\n" % ref.encode())
data(msg)
out.write(b"from %s\n" % head.encode())
per_month = max(1, n // 40)
for i in range(n):
    b, m = divmod(i // per_month, 2)
    bl = "%04d.%02d" % (2021 + b // 4, 1 + 3 * (b % 4))
    month = "%04d-%02d" % (2021 + b // 4, 2 + 3 * (b % 4) + m)
    if i % per_month == 0 and m == 0:
        out.write(b"M 100644 :%d %s/BASELINE\n" % (marks["BASELINE"], bl.encode()))
    for f in ("manifest", "patch.so", "signature"):
        out.write(b"M 100644 :%d %s/%s/set-%05d/%s\n" % (marks[f], bl.encode(), month.encode(), i, f.encode()))
out.write(b"\n")
EOF

# The plain tree: a checkout of the same commit, the store's own files removed.
git clone -q "$HP_STORE" "$TMP/plain"
rm -rf "$TMP/plain/.git" "$TMP/plain/trusted-keys"
n_files=$(find "$TMP/plain" -type f | wc -l)

now_ns() { date +%s%N; }
# pair LABEL FN: FN on the plain tree and on the mount in turn, REPS times
# after one warm-up of each (so both see the same moments of a noisy
# machine); prints the median of each (ms) and the median of the REPS ratios
# mount/plain, with their range.
pair() {
	local label=$1 fn=$2 a b c t=()
	"$fn" "$TMP/plain" >/dev/null
	"$fn" "$MNT/catalog" >/dev/null
	for _ in $(seq "$REPS"); do
		a=$(now_ns)
		"$fn" "$TMP/plain" >/dev/null
		b=$(now_ns)
		"$fn" "$MNT/catalog" >/dev/null
		c=$(now_ns)
		t+=("$(((b - a) / 1000)) $(((c - b) / 1000))")
	done
	printf '%s\n' "${t[@]}" | awk -v label="$label" -v key="$3" '
		function med(v, n,   i, j, x) {
			for (i = 2; i <= n; i++)
				for (j = i; j > 1 && v[j - 1] > v[j]; j--) { x = v[j]; v[j] = v[j - 1]; v[j - 1] = x }
			return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
		}
		{ n++; p[n] = $1; m[n] = $2; r[n] = ($1 > 0 ? $2 / $1 : 0)
		  lo = (n == 1 || r[n] < lo) ? r[n] : lo; hi = (n == 1 || r[n] > hi) ? r[n] : hi }
		END { printf "# %-34s %9d %9d %8.2fx  %.2f-%.2fx\n", label, med(p, n) / 1000,
		      med(m, n) / 1000, med(r, n), lo, hi
		      if (key != "") {
			printf "fs.%s.plain %d ms\nfs.%s.mount %d ms vs fs.%s.plain\n", key,
			       med(p, n) / 1000, key, med(m, n) / 1000, key
			printf "fs.%s.pair_ratio %.2f x\n", key, med(r, n)
		      } }'
}
# rss KEY: the daemon's resident memory now (kB).
rss() { echo "fs.daemon.$1 $(awk '/^VmRSS:/ { print $2 }' "/proc/$FS_PID/status") kB${2:+ vs fs.daemon.$2}"; }
walk() { find "$1" >/dev/null; }
walk_cat() { find "$1" -type f -exec cat {} + >/dev/null; }
N_CAT=${BENCH_FS_CAT:-1000}
cat_each() { find "$1" -name manifest | sed -n "1,${N_CAT}p" | while read -r f; do cat "$f"; done >/dev/null; }

mount_fs() {
	mkdir -p "$MNT"
	"$FS" --store "$HP_STORE" -f "$@" "$MNT" &
	FS_PID=$!
	for _ in $(seq 200); do
		grep -qs " $MNT fuse.hotpatchfs " /proc/mounts && return 0
		sleep 0.05
	done
	echo "bench-fs: mount failed" >&2
	exit 1
}
umount_fs() {
	fusermount3 -u "$MNT"
	wait "$FS_PID" || true
	FS_PID=""
}

mount_fs
rss rss_mounted
n_mnt=$(find "$MNT/catalog" -type f | wc -l)
[ "$n_mnt" -eq "$n_files" ] || { echo "bench-fs: mount shows $n_mnt files, plain $n_files" >&2; exit 1; }
echo "# bench-fs: $N sets, $n_files files; plain and mount in turn, $REPS pairs (ms, ratio of pairs)"
printf '# %-34s %9s %9s %9s  %s\n' "" "plain" "mount" "ratio" "range"
echo "# defaults:"
pair "find (walk + stat)" walk find
pair "find + cat every file" walk_cat find_cat
pair "cat $N_CAT manifests, one by one" cat_each "cat_$N_CAT"
rss rss_after_walks rss_mounted
umount_fs
[ "$ONLY_DEFAULTS" = defaults ] && exit 0

mount_fs -o entry_timeout=1,attr_timeout=1
echo "# with -o entry_timeout=1,attr_timeout=1:"
pair "find (walk + stat)" walk
pair "find + cat every file" walk_cat
pair "cat 1000 manifests, one by one" cat_each
umount_fs

#!/bin/bash
# Zero downtime: http-server (a thread per connection, keep-alive) under load
# from wrk is hot-patched through a mounted hotpatchfs in the middle of a
# few seconds of load (a real patch: the response body changes). No request
# may be lost: no socket error, no non-200 answer, no unexpected body; and
# the patch took effect (answers after the apply say v2). Counts, not times:
# the benchmark (tests/bench/bench-http.sh) prints latencies and the
# restart run to compare with.
. "$HP_TEST_LIB/harness.sh"
ht_begin "zero-downtime"
. "$HP_SOURCE_ROOT/tests/fixtures/demo/fs-setup.sh"
fs_need
if ! command -v wrk >/dev/null; then
	echo "1..0 # SKIP wrk not installed (scripts/install-deps.sh)"
	exit 77
fi

T=$HT_TMP
ZD_BIN=$HP_BUILD_ROOT/tests/fixtures/http/http-server
ZD_LUA=$HP_SOURCE_ROOT/tests/fixtures/http/wrk-count.lua
ZD_MNT=$T/mnt
ZD_TMP=$T
. "$HP_SOURCE_ROOT/tests/fixtures/http/zd-lib.sh"
zd_cleanup() {
	local p
	for p in "${ZD_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	ht_cleanup
}
trap zd_cleanup EXIT

ht_check "store with a trusted key" fs_store
ht_check "hp build of the http-server fix" fs_build "$ZD_BIN" 2026-02 http-body "$T/fix.tar.gz" \
	"$HP_SOURCE_ROOT/tests/fixtures/http/http-fix.c"
ht_check "hp import" "$HP_BIN" import "$T/fix.tar.gz"
ht_check "mount" fs_mount "$ZD_MNT"

line=$(zd_run hotpatch 4 16)
ht_log "$line"
field() { printf '%s\n' "$line" | sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
ht_eq "the apply through the mount succeeded" 0 "$(field apply_rc)"
ht_match "wrk ran requests" '^[1-9][0-9]*$' "$(field requests)"
ht_match "answers before the patch (v1)" '^[1-9][0-9]*$' "$(field v1)"
ht_match "answers after the patch (v2)" '^[1-9][0-9]*$' "$(field v2)"
ht_eq "no socket error: connect read write timeout" "0 0 0 0" \
	"$(field connect) $(field read) $(field write) $(field timeout)"
ht_eq "no non-200 answer, no other body" "0 0" "$(field status) $(field other)"
ht_eq "every request answered, v1 or v2" "$(field requests)" "$(($(field v1) + $(field v2)))"
ht_eq "the server answers v2 after the run: the patch took effect" v2 "$(field body_after)"
ht_end

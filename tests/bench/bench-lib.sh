# shellcheck shell=bash
# Shared by bench-fs.sh and bench-report.sh. Needs BUILD, SRC, HP and TMP.

# A store in $TMP with a trusted key and one real set (hp build of the demo
# fix for demo-server), exported as HP_STORE.
bench_store() {
	export HP_STORE=$TMP/store.git
	"$HP" store init >/dev/null
	"$HP" key generate "$TMP/key" >/dev/null
	"$HP" key trust "$TMP/key/hotpatch.pub" >/dev/null
	"$HP" build --target "$BUILD/tests/fixtures/demo/demo-server" --baseline 2026.01 \
		--month 2026-02 --name cve-2026-0001 --sign "$TMP/key/hotpatch.key" \
		-o "$TMP/one.tar.gz" "$SRC/tests/fixtures/demo/demo-fix.c" >/dev/null
	"$HP" import "$TMP/one.tar.gz" >/dev/null
}

# Unmount $MNT if hotpatchfs is mounted there (on exit, even after a failure).
bench_unmount() {
	if grep -qs " $MNT fuse.hotpatchfs " /proc/mounts; then
		fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" || true
	fi
}

#!/bin/bash
# The Debian package, as an admin gets it: debian/ builds with
# dpkg-buildpackage -b (from a copy of the source tree), the .deb installs
# into the real system with apt-get install ./hotpatch_*.deb, hp --version
# and the daemon run from the installed paths (mounted in a temp dir, never
# /hp), the files an admin looks for are where Debian puts them, and the
# package is removed again (also when a check fails). Runs are serialised
# by a lock: two suites must not install and remove it under each other.
. "$HP_TEST_LIB/harness.sh"
ht_begin "package"

if [ "$(id -u)" -ne 0 ] || ! command -v dpkg-buildpackage >/dev/null || ! command -v dh >/dev/null; then
	echo "1..0 # SKIP needs root, dpkg-buildpackage and debhelper (scripts/install-deps.sh)"
	exit 77
fi
exec 9>/tmp/hotpatch-package-test.lock
flock 9
if dpkg-query -W -f='${Status}' hotpatch 2>/dev/null | grep -q "ok installed"; then
	echo "1..0 # SKIP a hotpatch package is installed already: not replacing it"
	exit 77
fi

installed=false
pkg_cleanup() {
	if $installed; then
		apt-get -o DPkg::Lock::Timeout=300 remove -y -qq --purge hotpatch >/dev/null 2>&1 || true
	fi
}
trap 'st=$?; pkg_cleanup; (exit $st); ht_cleanup' EXIT

T=$HT_TMP
mkdir -p "$T/pkg/src"
git -C "$HP_SOURCE_ROOT" ls-files -co --exclude-standard |
	tar -C "$HP_SOURCE_ROOT" -cf - -T - | tar -C "$T/pkg/src" -xf -
start=$(date +%s)
# No debug-symbol package, no test run (the suite is this), two jobs.
(cd "$T/pkg/src" && DEB_BUILD_OPTIONS="nocheck noddebs parallel=2" \
	nice -n 10 dpkg-buildpackage -b -us -uc >"$T/pkg/build.log" 2>&1)
rc=$?
ht_log "dpkg-buildpackage -b took $(($(date +%s) - start)) s"
ht_eq "dpkg-buildpackage -b builds" 0 "$rc"
[ "$rc" -eq 0 ] || { tail -20 "$T/pkg/build.log" >&2; ht_end; exit 1; }
deb=$(ls "$T"/pkg/hotpatch_*_amd64.deb)
ht_match "one hotpatch_VERSION_amd64.deb" '/hotpatch_[0-9.]+_amd64\.deb$' "$deb"
deps=$(dpkg-deb -f "$deb" Depends)
for d in libfuse3 libgit2 libarchive libsodium libelf libunwind fuse3; do
	ht_match "Depends names $d" "$d" "$deps"
done

(cd "$T/pkg" && apt-get -o DPkg::Lock::Timeout=300 install -y -qq "./$(basename "$deb")" >"$T/pkg/install.log" 2>&1)
rc=$?
[ "$rc" -eq 0 ] && installed=true
ht_eq "apt-get install ./hotpatch_*.deb" 0 "$rc"
ht_eq "hp is /usr/bin/hp" /usr/bin/hp "$(command -v hp)"
ht_match "hp --version (installed)" '^hp [0-9]+\.[0-9]+\.[0-9]+$' "$(/usr/bin/hp --version)"
ht_match "hotpatchfs --version (installed)" '^hotpatchfs [0-9.]+ \(libfuse' "$(/usr/sbin/hotpatchfs --version)"
for f in /usr/share/man/man1/hp.1.gz /usr/share/man/man8/hotpatchfs.8.gz \
	/usr/share/bash-completion/completions/hp /usr/lib/systemd/system/hotpatchfs.service \
	/usr/share/hotpatch/ansible/site.yml /usr/share/hotpatch/ansible/roles/hotpatch/tasks/main.yml \
	/usr/share/doc/hotpatch/README.md.gz /usr/share/doc/hotpatch/hotpatchfs.md.gz \
	/usr/share/doc/hotpatch/examples/monthly-rollout.sh; do
	ht_check "installed: $f" test -f "$f"
done
ht_match "the unit runs the installed daemon" '^ExecStart=/usr/sbin/hotpatchfs ' \
	"$(grep '^ExecStart=' /usr/lib/systemd/system/hotpatchfs.service)"
ht_eq "man hp finds the page" /usr/share/man/man1/hp.1.gz "$(man -w hp 2>/dev/null)"

# The installed programs at work, in a temp dir.
S=$T/store.git
ht_check "installed hp: store init" /usr/bin/hp --store "$S" store init --allow-unsigned
M=$T/mnt
mkdir -p "$M"
ht_track_mount "$M"
ht_spawn /usr/sbin/hotpatchfs --store "$S" -f "$M"
ht_check "installed hotpatchfs mounts" ht_wait_for 10 grep -qs " $M fuse.hotpatchfs " /proc/mounts
ht_match "... and serves the store" "store: $S" "$(cat "$M/status" 2>&1)"
ht_match "installed hp sees it" "# summary: 0 processes" "$(/usr/bin/hp --store "$S" report)"
fusermount3 -u "$M"
ht_wait_exit "$HT_LAST_PID" 10

apt-get -o DPkg::Lock::Timeout=300 remove -y -qq --purge hotpatch >"$T/pkg/remove.log" 2>&1
rc=$?
[ "$rc" -eq 0 ] && installed=false
ht_eq "apt-get remove --purge hotpatch" 0 "$rc"
ht_expect_fail "hp is gone" 1 '' test -e /usr/bin/hp
ht_expect_fail "the unit is gone" 1 '' test -e /usr/lib/systemd/system/hotpatchfs.service
ht_end

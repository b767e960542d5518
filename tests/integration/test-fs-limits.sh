#!/bin/bash
# hotpatchfs with -o allow_other and a second, real user (made here with
# useradd, removed at the end): what that user writes cannot take what root
# needs. Its temp files have a quota of their own (root's Ansible copy
# still works), its text reaches the log escaped (no ESC, BEL or BS for
# root's terminal), and its events cannot push root's out of the log.
. "$HP_TEST_LIB/harness.sh"
ht_begin "fs-limits"
. "$HP_SOURCE_ROOT/tests/fixtures/demo/fs-setup.sh"
fs_need
for c in setpriv useradd userdel; do
	command -v "$c" >/dev/null || { echo "1..0 # SKIP $c missing"; exit 77; }
done

T=$HT_TMP
chmod 755 "$T"
U=hpfslim$$
limits_cleanup() {
	local s=$?
	userdel "$U" 2>/dev/null
	(exit "$s")
	ht_cleanup
}
trap limits_cleanup EXIT
ht_check "useradd $U" useradd --no-create-home --user-group --shell /usr/sbin/nologin "$U"
as_user() { setpriv --reuid="$U" --regid="$U" --clear-groups -- "$@"; }

ht_check "store" fs_store
M=$T/mnt
ht_check "mount with allow_other" fs_mount "$M" -o allow_other
fs_mounted "$M" || { ht_end; exit 1; }
ht_eq "the second user is a user of its own" "$U" "$(as_user id -un)"

# ---- temp files: a quota per user, root's own slots ---------------------------------
ht_eq "a user gets 8 temp files in the root, then ENOSPC" "8 ENOSPC No space left on device" \
	"$(as_user bash -c '. "$1"; fs_errno create-until "$2" 40' bash \
		"$HP_SOURCE_ROOT/tests/fixtures/demo/fs-setup.sh" "$M/.u")"
echo 0 >"$T/auto.txt"
ht_check "root's Ansible copy (temp file, rename over auto) still works" \
	bash -c 'cp "$1" "$2/.ansible_tmp_root" && mv "$2/.ansible_tmp_root" "$2/auto"' bash "$T/auto.txt" "$M"
ht_eq "... no temp file of root's is left" "" "$(ls -A "$M" | grep ansible_tmp_root)"
ht_eq "root has its 64 slots whatever the user holds, then ENOSPC" "64 ENOSPC No space left on device" \
	"$(fs_errno create-until "$M/.r" 65)"
for i in $(seq 1 64); do rm -f "$M/.r$i"; done
as_user bash -c 'for i in $(seq 1 8); do rm -f "$1/.u$i"; done' bash "$M"
ht_eq "all removed" "" "$(ls -A "$M" | grep -E '^\.(u|r)[0-9]')"

# ---- the log: a user's text is escaped --------------------------------------------------
as_user bash -c 'printf "\033]0;owned\007\010\033[2J\n" > "$1/apply"' bash "$M" 2>/dev/null
ht_eq "no raw ESC, BEL or BS in the log" 0 "$(tr -dc '\033\007\010' <"$M/events" | wc -c)"
ht_match "the user's line, escaped, with its uid" \
	"apply set=- result=EINVAL pause_us=- uid=$(id -u "$U") reason=\"'\\\\x1b\]0;owned\\\\x07\\\\x08\\\\x1b\[2J' is not a process id\"" \
	"$(cat "$M/events")"

# ---- events of other users cannot displace root's ----------------------------------------
fs_echo "$M/apply" "notapid-by-root"
ht_eq "root's bad write: EINVAL" 1 "$FS_RC"
as_user "$FS_PYTHON" - "$M/apply" <<'PY'
import sys
for i in range(1500):
    try:
        with open(sys.argv[1], "w") as f:
            f.write("junk-%d\n" % i)
    except OSError:
        pass
PY
log=$(cat "$M/events")
ht_match "root's event is still in the log after 1,500 of the user's" \
	"apply set=- result=EINVAL pause_us=- uid=0 reason=\"'notapid-by-root' is not a process id\"" "$log"
ht_eq "the user keeps its newest 1,000 lines" 1000 "$(grep -c " uid=$(id -u "$U") " <<<"$log")"
ht_match "... the newest of them" "junk-1499" "$(grep " uid=$(id -u "$U") " <<<"$log" | tail -n1)"
ht_expect_fail "... not the oldest" 1 '' grep -q "junk-499'" <<<"$log"
ht_match "root's auto write from before is there too" "auto-off set=- result=ok pause_us=- uid=0" "$log"

ht_end

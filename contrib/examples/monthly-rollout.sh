#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# monthly-rollout.sh: the monthly hotpatch rollout on one host: bring the
# store up to the fleet's git server, patch, print the report.
#
#   monthly-rollout.sh [-m MOUNTPOINT] [-s STORE] REMOTE [NAME...]
#
# REMOTE is the central store (any git URL or path). With NAMEs, only the
# processes so named (pgrep -x) are patched, one result line each (through
# apply-all.sh, next to this script); without, "all" is written to
# MOUNTPOINT/apply: every process that maps a target with a published patch
# set. MOUNTPOINT defaults to /hp ($HP_MOUNT), STORE to hp's default
# ($HP_STORE, else /var/lib/hotpatch/store.git). Run it from cron or a
# systemd timer on each host, or let Ansible drive it (contrib/ansible).
#
# Exit status: 0 done, 1 the pull or a patch failed, 2 usage error.
# $HP names the hp program if it is not in PATH.
set -u

mnt=${HP_MOUNT:-/hp}
store_opt=()
here=$(dirname -- "$0")

usage() {
	echo "usage: monthly-rollout.sh [-m MOUNTPOINT] [-s STORE] REMOTE [NAME...]" >&2
	exit 2
}

while getopts "m:s:h" opt; do
	case $opt in
	m) mnt=$OPTARG ;;
	s) store_opt=(--store "$OPTARG") ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || usage
remote=$1
shift

echo "== pull $remote"
if ! "${HP:-hp}" store pull "$remote" "${store_opt[@]}"; then
	echo "monthly-rollout.sh: pull from $remote failed; nothing applied" >&2
	exit 1
fi
"${HP:-hp}" list "${store_opt[@]}" || exit 1

echo "== apply"
status=0
if [ $# -gt 0 ]; then
	for name in "$@"; do
		"$here/apply-all.sh" -m "$mnt" -n "$name" || status=1
	done
elif ! err=$({ echo all >"$mnt/apply"; } 2>&1); then
	echo "apply all: failed: ${err##*: }"
	status=1
else
	echo "apply all: ok"
fi

echo "== report"
cat "$mnt/report" || status=1
exit "$status"

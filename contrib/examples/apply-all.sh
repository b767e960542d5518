#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# apply-all.sh: patch every process of a service through hotpatchfs, one
# result line per process, and exit non-zero if any of them failed.
#
#   apply-all.sh [-m MOUNTPOINT] [-M MONTH] -n NAME     processes named NAME (pgrep -x)
#   apply-all.sh [-m MOUNTPOINT] [-M MONTH] -u UNIT     processes of a systemd unit
#   apply-all.sh [-m MOUNTPOINT] [-M MONTH] PID...      these processes
#
# Each process is patched by writing "PID" (or "PID MONTH") to
# MOUNTPOINT/apply (default /hp, or $HP_MOUNT); the write fails with an
# errno that says why (ESRCH no such process, ENOENT nothing published for
# it, EBUSY a replaced function stayed active, EACCES not allowed, ENOEXEC
# the patch set does not fit). Output, one line per process:
#
#   4242 nginx: ok hotpatched
#   4243 nginx: failed: Device or resource busy
#
# Processes chosen by -n or -u are chosen for the admin, as "all" is: one
# the daemon's configuration excludes (exclude-exe, exclude-name,
# exclude-unit: its processes/PID/status says "excluded: RULE") is left
# alone, not a failure:
#
#   4244 nginx: excluded by the configuration (exclude-unit=legacy.service): left alone
#
# A PID given as an argument is patched whatever the exclusions say.
#
# Exit status: 0 all patched (or excluded), 1 at least one failed, 2 usage
# error or nothing to patch.
set -u

mnt=${HP_MOUNT:-/hp}
month=""
pids=()
chosen=()   # PIDs found by -n or -u (exclusions apply to them)

usage() {
	echo "usage: apply-all.sh [-m MOUNTPOINT] [-M MONTH] {-n NAME | -u UNIT | PID...}" >&2
	exit 2
}

while getopts "m:M:n:u:h" opt; do
	case $opt in
	m) mnt=$OPTARG ;;
	M) month=$OPTARG ;;
	n) mapfile -t -O "${#chosen[@]}" chosen < <(pgrep -x -- "$OPTARG") ;;
	u)
		cg=$(systemctl show -p ControlGroup --value -- "$OPTARG" 2>/dev/null) || cg=""
		if [ -z "$cg" ] || [ ! -r "/sys/fs/cgroup$cg/cgroup.procs" ]; then
			echo "apply-all.sh: unit $OPTARG: no control group (not running?)" >&2
			exit 2
		fi
		mapfile -t -O "${#chosen[@]}" chosen <"/sys/fs/cgroup$cg/cgroup.procs"
		;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
for p in "$@"; do
	case $p in
	'' | *[!0-9]*) echo "apply-all.sh: not a PID: $p" >&2; exit 2 ;;
	esac
	pids+=("$p")
done
declare -A named=()
for p in "${pids[@]}"; do named[$p]=1; done
for p in "${chosen[@]}"; do
	[ -n "${named[$p]:-}" ] && continue
	named[$p]=0
	pids+=("$p")
done
if [ "${#pids[@]}" -eq 0 ]; then
	echo "apply-all.sh: no process to patch" >&2
	exit 2
fi
if [ ! -e "$mnt/apply" ]; then
	echo "apply-all.sh: $mnt/apply: not there (is hotpatchfs mounted at $mnt?)" >&2
	exit 2
fi

failed=0
for pid in "${pids[@]}"; do
	comm=$(cat "/proc/$pid/comm" 2>/dev/null) || comm="?"
	if [ "${named[$pid]}" = 0 ]; then
		rule=$(sed -n 's/^excluded: \(.*\) ("all" and auto-apply.*$/\1/p' "$mnt/processes/$pid/status" 2>/dev/null)
		if [ -n "$rule" ]; then
			echo "$pid $comm: excluded by the configuration ($rule): left alone"
			continue
		fi
	fi
	# The write does the work and carries the errno; keep the message, drop
	# the shell's "line N: printf: write error:" prefix.
	if err=$({ printf '%s\n' "$pid${month:+ $month}" >"$mnt/apply"; } 2>&1); then
		state=$(sed -n 's/^state[:=[:space:]]*//p' "$mnt/processes/$pid/status" 2>/dev/null | head -n 1)
		echo "$pid $comm: ok${state:+ $state}"
	else
		echo "$pid $comm: failed: ${err##*: }"
		failed=$((failed + 1))
	fi
done

if [ "$failed" -gt 0 ]; then
	echo "apply-all.sh: $failed of ${#pids[@]} processes failed" >&2
	exit 1
fi
exit 0

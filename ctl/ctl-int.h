/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ctl-int.h: what the files of libhpctl share. ctl.c (the context, the
 * store's snapshots, imports), parse.c (the control grammar, state names,
 * errno names), perm.c (who may patch what), run.c (apply, revert, "all",
 * and the outcomes remembered), state.c (status, the process list, the
 * report), policy.c (the configuration file, exclusions). The process facts from /proc come from common/hp-procfs.h.
 */
#ifndef HP_CTL_INT_H
#define HP_CTL_INT_H

#include <pthread.h>

#include "ctl.h"
#include "hp-procfs.h"

struct ctl_snap {
	unsigned refs; /* atomic */
	struct store_snap *snap;
	char commit[HP_OID_HEX_SIZE];
};

/* What this context last did to one process (pid + start time). */
struct ctl_outcome {
	pid_t pid;
	uint64_t start_time;
	unsigned running;         /* operations in progress */
	bool failed;              /* the last finished one failed (and why) */
	char reason[HP_ERRMSG_MAX];
	bool have_pause;
	uint64_t pause_us;
	uint64_t when_us;
};

/* Process-list cache entry: does (pid, start time) map a known target name? */
struct ctl_scan_entry {
	pid_t pid;
	uint64_t start_time;
	char comm[HP_COMM_SIZE];      /* an exec keeps pid and start time, and changes comm */
	uint64_t checked_us;
	bool relevant;
};

/*
 * Build-id cache entry: a file some process maps executable, by (dev, inode)
 * as /proc/PID/maps names it, valid while its mtime stays the same.
 */
struct ctl_bid_entry {
	uint64_t dev;
	uint64_t ino;        /* 0: an empty slot */
	int64_t mtime_ns;
	uint64_t checked_us; /* when the mtime was last compared */
	char build_id[HP_BUILD_ID_HEX_SIZE];  /* "" when it has none (or is no ELF file) */
	char known_in[HP_OID_HEX_SIZE];   /* the snapshot (commit) that "known" was decided in */
	bool known;          /* a baseline of that snapshot covers build_id */
};

#define CTL_BID_SLOTS 4096 /* open addressing; wiped when three quarters full */

struct ctl {
	char *store_path;
	unsigned budget_ms;
	unsigned n_workers;
	unsigned head_check_ms;
	unsigned retries;
	size_t all_done, all_total; /* atomic: "all" operations running now */

	pthread_mutex_t store_lock; /* struct store is single-threaded */
	struct store *store;

	pthread_mutex_t snap_lock;
	struct ctl_snap *cur;
	uint64_t last_check_us;
	int head_fd;                /* inotify (opts.watch_head), -1: none */
	bool head_watched;          /* its watches are set and nothing came since HEAD was read */

	pthread_mutex_t outcome_lock;
	struct ctl_outcome *outcomes;
	size_t n_outcomes;

	pthread_mutex_t scan_lock;
	struct ctl_scan_entry *scan;
	size_t n_scan;
	char scan_commit[HP_OID_HEX_SIZE];

	pthread_mutex_t bid_lock;
	struct ctl_bid_entry *bid; /* CTL_BID_SLOTS, allocated on first use */
	size_t n_bid;

	pthread_mutex_t policy_lock;
	struct ctl_policy *policy; /* NULL: nothing excluded */
};

/* Outcomes (run.c). */
void ctl_outcome_begin(struct ctl *c, pid_t pid, uint64_t start_time);
void ctl_outcome_end(struct ctl *c, pid_t pid, uint64_t start_time, int err, const char *msg,
		     bool have_pause, uint64_t pause_us);
/* Copy of the outcome for (pid, start time); false when there is none. */
bool ctl_outcome_get(struct ctl *c, pid_t pid, uint64_t start_time, struct ctl_outcome *ret);

/*
 * Does pid map a target the store knows? (/proc/PID/maps, no ptrace.) A
 * file whose name the store knows, else any file mapped executable whose
 * build-id a baseline covers (a renamed copy of a target). Build-ids are
 * read once per (dev, inode) and cached; a cached one whose mtime was
 * compared at or after fresh_since_us is trusted without a stat.
 */
bool ctl_maps_known(struct ctl *c, struct store_snap *snap, pid_t pid, uint64_t fresh_since_us);

/*
 * ctl_may_patch again, for the engine's hook (apply_opts.may_patch; who is
 * a struct ctl_caller *) with the process held: its message says the
 * process changed after the first check.
 */
int ctl_may_patch_held(void *who, pid_t pid);

/* File name of a mapped path, without " (deleted)": into buf. */
const char *ctl_path_name(const char *path, char *buf, size_t size);

#endif

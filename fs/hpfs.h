/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hpfs.h: what the files of hotpatchfs share. main.c (options, start, stop),
 * ops.c (the FUSE operations, by path), ll.c (the low-level front: inodes,
 * per-entry timeouts), events.c (the event log), auto.c (the proc
 * connector behind auto-apply). The daemon holds no state of its own about
 * targets: ctl reads it from their memory. It keeps the event log, the
 * files being written into incoming/ and the temporary files Ansible makes
 * in the root, all in memory and bounded.
 */
#ifndef HP_HPFS_H
#define HP_HPFS_H

#define FUSE_USE_VERSION 312
#include <fuse.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#include "ctl.h"

#define HPFS_TMP_MAX 64          /* temporary files in the root */
#define HPFS_TMP_MAX_BYTES 4096  /* each: a control command */
#define HPFS_INCOMING_MAX 16     /* bundles being written at once */
#define HPFS_LOG_MAX 10000       /* event lines kept */

/*
 * A file held in memory until it is used: in the root, a temporary file
 * that is not one of ours (Ansible's, renamed over a control file); in
 * incoming/, a bundle being written, imported when closed after data
 * (ops.c hpfs_flush). gid and mode matter for the root's files only.
 */
struct hpfs_file {
	char *name;
	uid_t uid;
	gid_t gid;
	mode_t mode;
	struct hp_buf data;
	time_t mtime;
	unsigned open;
	bool unlinked;
	struct hpfs_file *next;
};

struct hpfs {
	struct ctl *ctl;
	char *store_path;
	char *mountpoint;
	time_t started;
	uint64_t started_us;
	bool incoming_gid_set;
	gid_t incoming_gid;

	pthread_mutex_t lock; /* tmps, ins and counters */
	struct hpfs_file *tmps;
	size_t n_tmps;
	struct hpfs_file *ins;
	size_t n_ins;
	unsigned long n_apply_ok, n_apply_fail, n_revert_ok, n_revert_fail;
	unsigned long n_import_ok, n_import_fail, n_auto;

	pthread_mutex_t log_lock;
	char **log;
	size_t log_first, log_n;

	/* auto.c */
	bool auto_on;
	bool auto_started;
	pthread_mutex_t auto_lock;
	pthread_cond_t auto_cond;
	pthread_t auto_listener, auto_worker;
	int auto_sock;
	int auto_stop[2];
	bool auto_stopping;
	struct hpfs_auto_item *auto_queue;
};

extern struct hpfs hpfs;

/* events.c */
void hpfs_log_event(const char *op, pid_t pid, const char *set, int err, const char *msg,
		    bool have_pause, uint64_t pause_us, const char *extra);
void hpfs_log_results(const char *op, const struct ctl_results *r);
int hpfs_log_text(struct hp_buf *out);
void hpfs_log_release(void);

/* auto.c */
int hpfs_auto_set(bool on);
void hpfs_auto_stop(void);

/* ops.c: the operations, by path */
extern const struct fuse_operations hpfs_ops;

/* ll.c: the low-level front (inode table, per-entry timeouts) over hpfs_ops */
struct fuse_lowlevel_ops;
extern const struct fuse_lowlevel_ops hpfs_ll_ops;
extern double hpfs_entry_timeout, hpfs_attr_timeout; /* -o entry_timeout, attr_timeout */
/* The caller of the request this thread serves (uid, gid, pid). */
struct fuse_context *hpfs_context(void);
/*
 * A thread that looks at the store's HEAD once a second and drops from the
 * kernel's cache the catalog names a new HEAD lacks (start after daemonizing,
 * stop before the session goes).
 */
struct fuse_session;
int hpfs_ll_watch_start(struct fuse_session *se);
/* Whether a request (FUSE opcode, node) is answered at once (loop.c):
 * names, attributes, listings, and the catalog's files. */
bool hpfs_ll_quick(uint32_t opcode, uint64_t nodeid);
/* loop.c: the request loop (see there). max_threads 0: the default. */
int hpfs_loop(struct fuse_session *se, unsigned busy_poll_us, unsigned max_threads);
void hpfs_ll_watch_stop(void);

#endif

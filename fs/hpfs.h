/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hpfs.h: what the files of hotpatchfs share. main.c (options, start, stop),
 * ops.c (the kinds of node and their operations), ll.c (the low-level
 * front: the node table, per-entry timeouts), loop.c (the request loop),
 * events.c (the event log), auto.c (the proc connector behind auto-apply),
 * config.c (the configuration file, the state directory), lasterr.c (the
 * reason of a caller's last failed write).
 * The daemon holds no state of its own about
 * targets: ctl reads it from their memory. It keeps the event log, the
 * files being written into incoming/ and the temporary files Ansible makes
 * in the root, all in memory and bounded.
 */
#ifndef HP_HPFS_H
#define HP_HPFS_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#include "ctl.h"

/*
 * Files held in memory. Root's own count apart from other users' (with -o
 * allow_other): what other users hold never takes root's slots.
 */
#define HPFS_TMP_MAX 64          /* temporary files in the root: root's */
#define HPFS_TMP_USER_MAX 8      /* ... each other user's */
#define HPFS_TMP_OTHERS_MAX 64   /* ... all other users' together */
#define HPFS_TMP_MAX_BYTES 4096  /* each: a control command */
#define HPFS_INCOMING_MAX 16     /* bundles being written at once: root's */
#define HPFS_INCOMING_USER_MAX 4 /* ... each user's of -o incoming_gid */
#define HPFS_INCOMING_OTHERS_MAX 16 /* ... theirs together */
#define HPFS_LOG_MAX 10000       /* event lines kept */

/*
 * A file held in memory until it is used: in the root, a temporary file
 * that is not one of ours (Ansible's, renamed over a control file); in
 * incoming/, a bundle being written, imported when closed after data
 * (ops.c in_flush). gid and mode matter for the root's files only.
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
	char *state_dir;   /* --state-dir, else the directory of the store */
	char *config_path; /* --config, else CTL_DEFAULT_CONFIG */
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
/* Read back STATE_DIR/events.log and append to it from now on. */
int hpfs_log_open(const char *state_dir);
/* One event caused by UID (0 for root's and the daemon's own). */
void hpfs_log_event(const char *op, uid_t uid, pid_t pid, const char *set, int err,
		    const char *msg, bool have_pause, uint64_t pause_us, const char *extra);
void hpfs_log_results(const char *op, uid_t uid, const struct ctl_results *r);
int hpfs_log_text(struct hp_buf *out);
void hpfs_log_release(void);

/* config.c: the configuration file and the state directory */
/*
 * Read PATH (a missing file: the defaults) and use it (its exclusions go to
 * hpfs.ctl, which must exist); a bad file changes nothing.
 */
int hpfs_config_load(const char *path);
unsigned hpfs_config_retries(void);
int hpfs_config_auto_default(void); /* -1: not set */
/* The value last written to auto (-ENOENT: none) and keeping a new one. */
int hpfs_state_auto(bool *ret);
int hpfs_state_auto_save(bool on);

struct hpfs_caller;
/*
 * lasterr.c: the reason of a caller's last failed write (file last-error):
 * "TIME FILE ERRNO message", kept per session of the writer and per uid.
 */
void hpfs_lasterr_set(const struct hpfs_caller *c, const char *file, int err, const char *msg);
int hpfs_lasterr_text(const struct hpfs_caller *c, struct hp_buf *out);

/* auto.c */
int hpfs_auto_set(bool on);
void hpfs_auto_stop(void);

/*
 * The nodes of the tree and what each kind of node does (ops.c), served by
 * ll.c through libfuse's low-level API. Every node knows what it is: its
 * kind, and for some kinds a process or a path (struct hpfs_id). Each kind
 * is one table of operations, declared once in ops.c the way sysfs
 * declares its attributes; an operation a kind leaves out answers the
 * kind's `deny` errno (EROFS in the catalog, EPERM elsewhere: see
 * fs/README.md "Errors of the filesystem itself").
 */

/* The caller of a request (the kernel's request header). */
struct hpfs_caller {
	uid_t uid;
	gid_t gid;
	pid_t pid;
};

struct hpfs_kind;

struct hpfs_id {
	const struct hpfs_kind *kind;
	pid_t pid;       /* processes/PID and processes/PID/status */
	char *sub;       /* catalog: the path below catalog/ ("" for catalog/ itself);
			    a temporary file in the root or a file in incoming/: its name;
			    NULL for the others */
};

struct hpfs_list;  /* a directory listing being made (ll.c) */
struct hpfs_fh;    /* an open file (ops.c) */

/* Add one name of TYPE (S_IFDIR, S_IFREG, S_IFLNK) to a listing: 0, or 1 when full. */
int hpfs_list_add(struct hpfs_list *l, const char *name, mode_t type);

struct hpfs_kind {
	const char *name;
	bool catalog;   /* under catalog/: read-only, cached by the kernel (ll.c) */
	bool dir;       /* a directory */
	bool quick;     /* its files are opened and read by the receiving thread (loop.c) */
	int deny;       /* what an operation it leaves out answers: -EROFS or -EPERM */

	/* every node; fh: the handle when the kernel names one; held: a GETATTR
	 * of a node the kernel holds (false: a lookup of the name) */
	int (*getattr)(const struct hpfs_caller *c, const struct hpfs_id *id, struct hpfs_fh *fh,
		       bool held, struct stat *st);
	/* chmod, chown, utimens (mode NULL but for chmod): accepted where a writer may write */
	int (*meta)(const struct hpfs_caller *c, const struct hpfs_id *id, const mode_t *mode);
	int (*truncate)(const struct hpfs_caller *c, const struct hpfs_id *id, off_t size);
	int (*unlink)(const struct hpfs_caller *c, const struct hpfs_id *id);
	/* this node renamed over TO (flags 0, neither in the catalog) */
	int (*rename)(const struct hpfs_caller *c, const struct hpfs_id *id, const struct hpfs_id *to);
	int (*readlink)(const struct hpfs_id *id, char *buf, size_t size);

	/* directories */
	/* what NAME in this directory is (ret->sub allocated, or NULL) */
	int (*lookup)(const struct hpfs_id *dir, const char *name, struct hpfs_id *ret);
	/* the listing, "." and ".." aside; fi: an OPENDIR's (cache flags), or NULL */
	int (*list)(const struct hpfs_caller *c, const struct hpfs_id *id, struct hpfs_list *out,
		    struct fuse_file_info *fi);
	/* create (or open, when it is there) CHILD, a name of this directory; sets fi->fh */
	int (*create)(const struct hpfs_caller *c, const struct hpfs_id *child, mode_t mode,
		      struct fuse_file_info *fi);

	/* files: open sets fi->fh (released by hpfs_fh_release) */
	int (*open)(const struct hpfs_caller *c, const struct hpfs_id *id, struct fuse_file_info *fi);
	int (*read)(struct hpfs_fh *h, char *buf, size_t size, off_t off);
	int (*write)(const struct hpfs_caller *c, struct hpfs_fh *h, const char *buf, size_t size,
		     off_t off);
	int (*flush)(struct hpfs_fh *h);

	/*
	 * Attribute files (state and control files, mode `mode`): show makes
	 * the contents at open; store runs a written command (a control file),
	 * its outcome lines into result (NULL: not wanted).
	 */
	mode_t mode;
	int (*show)(const struct hpfs_caller *c, const struct hpfs_id *id, struct hp_buf *out);
	int (*store)(const struct hpfs_caller *c, const char *text, size_t len, struct hp_buf *result);
};

/* The root directory's kind (ll.c's root node). */
extern const struct hpfs_kind hpfs_root_kind;
/* An open file's kind (its handle is fi->fh of an open or create), and its release. */
const struct hpfs_kind *hpfs_fh_kind(const struct hpfs_fh *h);
void hpfs_fh_release(struct hpfs_fh *h);
/*
 * At mount (the kernel's offer; ops.c may drop wants) and at unmount (after
 * the request loop: the handles whose RELEASE did not come are let go).
 */
void hpfs_ops_init(struct fuse_conn_info *conn, double attr_timeout);
void hpfs_ops_destroy(void);

/* ll.c: the low-level front (nodes, per-entry timeouts) over the kinds of ops.c */
struct fuse_lowlevel_ops;
extern const struct fuse_lowlevel_ops hpfs_ll_ops;
extern double hpfs_entry_timeout, hpfs_attr_timeout; /* -o entry_timeout, attr_timeout */
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

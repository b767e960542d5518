/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ctl.h: the orchestration shared by hotpatchfs and hp. For a process: find
 * the targets it maps (apply_inspect), look their patch sets up in a store
 * snapshot (store_lookup), apply or revert through the engine, and say the
 * process state in the words of docs/contract.md. Also: the list of processes
 * that map a target the store knows, "all" in parallel, the control-file
 * grammar, and the caller permission check ("could this caller ptrace it").
 *
 * ctl keeps no state of its own beyond caches: what is applied is read back
 * from the target's memory, so hp and hotpatchfs share one state. The only
 * thing remembered is the outcome of the operations this context ran (so a
 * status can say "failed" and why) and which ones are running right now.
 *
 * Errors: 0 or a negative errno with a message in the error slot, as the
 * engine's: -ESRCH, -ENOENT (nothing published for any target of the
 * process; nothing applied for a revert), -EBUSY, -EACCES (the caller may
 * not patch it), -EINVAL (malformed input), -ENOEXEC (the set does not fit).
 * Thread safety: every function may be called from many threads at once.
 */
#ifndef HP_CTL_H
#define HP_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hp-common.h"
#include "store.h"
#include "apply.h"

struct ctl;

/* An exclusion rule as said in results, status and the report: "exclude-exe=PATH" (a longer one is cut). */
#define CTL_WHY_SIZE 256

struct ctl_opts {
	const char *store_path;  /* NULL: store_default_path() */
	unsigned budget_ms;      /* safety budget per apply; 0: the engine's default */
	unsigned n_workers;      /* threads for "all"; 0: 4 */
	unsigned head_check_ms;  /* least interval between HEAD checks; 0: 100 */
	unsigned retries;        /* an apply that failed with EBUSY is tried again this often */
	bool watch_head;         /* a long-lived context (the daemon): HEAD read again only
				  * after the kernel said its files changed (ctl_snap_get) */
};

int ctl_new(const struct ctl_opts *opts, struct ctl **ret);
void ctl_free(struct ctl *c);
const char *ctl_store_path(const struct ctl *c);

/* ---- snapshots of the store (reference counted) ------------------------- */

struct ctl_snap;

/*
 * The snapshot of the store's HEAD. HEAD is compared at most every
 * head_check_ms (always when check_now) and a newer commit swaps the
 * snapshot; older ones live on while references to them are held.
 * -ENOENT (with an empty snapshot never returned) when the store has no
 * commit yet. ctl's own operations (apply, revert, status, list) always
 * look at HEAD, so they never act on a catalog older than the last import.
 * With opts.watch_head, looking is asking an inotify instance that watches
 * the directories HEAD is read from (store_head_watch) whether anything
 * changed there since HEAD was last read: one read that finds nothing,
 * where reading HEAD is eight system calls (a stat, open, read and close of
 * HEAD and of its branch). An event, an overflow of the queue, or a store
 * where the watch cannot be trusted (store_head_watch's -ENOTSUP) reads
 * HEAD as before.
 */
int ctl_snap_get(struct ctl *c, bool check_now, struct ctl_snap **ret);
struct ctl_snap *ctl_snap_ref(struct ctl_snap *s);
void ctl_snap_unref(struct ctl_snap *s);
struct store_snap *ctl_snap_store(const struct ctl_snap *s);
/* The commit id of the snapshot (40 hex). */
const char *ctl_snap_commit(const struct ctl_snap *s);
/* The current HEAD commit id ("" for an empty store). */
int ctl_head(struct ctl *c, char ret_oid[HP_OID_HEX_SIZE]);
/* store_head_watch on the context's store: HEAD's directories watched on inotify fd. */
int ctl_head_watch(struct ctl *c, int fd);

/* Import a bundle held in memory (hotpatchfs incoming/): one commit or nothing. */
int ctl_import_buf(struct ctl *c, const void *data, size_t len, char **ret_set_id);

/* ---- control-file grammar ----------------------------------------------- */

enum ctl_cmd_kind { CTL_CMD_PID, CTL_CMD_ALL };

struct ctl_cmd {
	enum ctl_cmd_kind kind;
	pid_t pid;          /* CTL_CMD_PID */
	char month[HP_MONTH_SIZE]; /* "YYYY-MM" or "" */
	char target[256];   /* "all TARGET", or "" */
};

/*
 * apply: "PID", "PID MONTH", "all", "all TARGET"; revert: "PID", "all".
 * Surrounding whitespace and a trailing newline are fine; -EINVAL else.
 */
int ctl_parse_apply(const char *buf, size_t len, struct ctl_cmd *ret);
int ctl_parse_revert(const char *buf, size_t len, struct ctl_cmd *ret);
/* "0" or "1" (auto). */
int ctl_parse_bool(const char *buf, size_t len, bool *ret);

/* ---- who asks ------------------------------------------------------------ */

struct ctl_caller {
	uid_t uid;
	gid_t gid;
	pid_t pid; /* the calling process or thread, for its supplementary groups; 0: unknown */
};

/*
 * May the caller patch pid? Root always. Anyone else: what the kernel
 * answers when a helper holding exactly the caller's uid, gid and
 * supplementary groups (from /proc/CALLER/status, or none when pid is 0 or
 * no longer the caller) and no capability opens /proc/PID/task/TID/mem of
 * every thread: the kernel's ptrace attach rule (uids, gids, capabilities,
 * dumpability, Yama, security modules), not a copy of it. -EACCES with the
 * likely reason ("uid 1000 may not patch process 42 (it holds
 * capabilities)"), -ESRCH (no such process, or a thread id), -ENOENT (a
 * kernel thread: nothing can be published for it), -EINVAL (pid is the
 * calling process itself).
 *
 * ctl_apply and ctl_revert ask again from inside the engine, with the
 * process held (after the attach, and with every thread stopped right
 * before the switch, where no exec can land): the right must hold for the
 * process that is switched, not only for the one that was checked.
 */
int ctl_may_patch(const struct ctl_caller *who, pid_t pid);

/* ---- policy: the configuration file, exclusions ------------------------- */

/*
 * The host's policy (ctl/policy.c): what hotpatchfs reads from its
 * configuration file (default /etc/hotpatch/hotpatchfs.conf) and hp from
 * the same file when no daemon serves its store. Exclusions opt processes
 * out of what is chosen for the admin: "all" (apply and revert) and
 * auto-apply leave them alone, and status and the report say so. A process
 * named by its PID is applied or reverted all the same: the admin asked.
 */
#define CTL_POLICY_RETRIES_MAX 100
#define CTL_DEFAULT_CONFIG "/etc/hotpatch/hotpatchfs.conf"

struct ctl_policy {
	int auto_default;  /* -1: not set */
	unsigned retries;
	char **exclude_exe, **exclude_name, **exclude_unit;
	size_t n_exclude_exe, n_exclude_name, n_exclude_unit;
};

int ctl_policy_new(struct ctl_policy **ret);
void ctl_policy_free(struct ctl_policy *p);
/*
 * Read a configuration file ("key = value" lines, '#' comments); a missing
 * file is the defaults. -EINVAL with "FILE:LINE: what is wrong" for a bad
 * line: nothing of the file is used.
 */
int ctl_policy_load(const char *path, struct ctl_policy **ret);
/* One setting; WHERE ("FILE:LINE") goes into the message. */
int ctl_policy_add(struct ctl_policy *p, const char *where, const char *key, const char *val);
/* The exclusions as "exclude-exe: PATH" lines (MNT/status shows them; hp reads them back). */
int ctl_policy_format(const struct ctl_policy *p, struct hp_buf *out);
/* Does p exclude pid? The rule into ret_why ("exclude-name=nginx"). p may be NULL. */
bool ctl_policy_excludes(const struct ctl_policy *p, pid_t pid, char *ret_why, size_t size);

/* The context's policy: p is taken over (NULL: none); the old one is freed. */
void ctl_set_policy(struct ctl *c, struct ctl_policy *p);
bool ctl_excluded(struct ctl *c, pid_t pid, char *ret_why, size_t size);
int ctl_policy_show(struct ctl *c, struct hp_buf *out);

/* ---- operations ---------------------------------------------------------- */

struct ctl_result {
	pid_t pid;
	int err;                  /* 0 or a negative errno */
	char msg[HP_ERRMSG_MAX];  /* why, when err */
	bool changed;             /* false: it was applied (or nothing to revert) */
	unsigned n_sets;          /* sets applied or reverted */
	uint64_t pause_us;        /* longest pause of this operation */
	char set_id[HP_SET_ID_SIZE]; /* the (last) set applied, or reverted */
	char comm[HP_COMM_SIZE];
	char excluded[CTL_WHY_SIZE]; /* "all" left it alone: the rule ("exclude-name=nginx") */
};

struct ctl_results {
	struct ctl_result *v;
	size_t n;
};
void ctl_results_release(struct ctl_results *r);

/*
 * Apply the newest set (or month's) of every target pid maps; a target
 * whose applied set was withdrawn moves to the newest valid set, or is
 * reverted when none is left. An EBUSY is tried again up to the context's
 * retries. Returns ret->err too; ret is always filled (pid, err, msg).
 */
int ctl_apply(struct ctl *c, const struct ctl_caller *who, pid_t pid, const char *month,
	      struct ctl_result *ret);
/*
 * Auto-apply, for a process that has just exec'd (the caller is the root
 * daemon): apply the newest set of each mapped target that has one and does
 * not run it yet. 0 with ret->n_sets == 0 when there is nothing to do (yet):
 * the caller retries briefly while the process maps its libraries.
 */
int ctl_apply_pending(struct ctl *c, pid_t pid, struct ctl_result *ret);
/* Revert every set applied in pid (-ENOENT when none is). */
int ctl_revert(struct ctl *c, const struct ctl_caller *who, pid_t pid, struct ctl_result *ret);

/*
 * Run a parsed control command: one process, or "all" (every process the
 * caller may patch that maps a patched target, or the named target, or for
 * revert every process with something applied) in parallel. A process
 * "all" would act on that the policy excludes is left alone: its result
 * has excluded set (err 0, nothing changed). The results
 * (one per process) go to ret. Returns 0 when every process succeeded,
 * else the first failure's errno (-ENOENT for "all TARGET" with a target
 * the store does not know).
 */
int ctl_run(struct ctl *c, const struct ctl_caller *who, bool revert, const struct ctl_cmd *cmd,
	    struct ctl_results *ret);

/*
 * The same, calling progress (when not NULL) from the worker threads as each
 * process finishes, with the count looked at and the total: "all" streams
 * its results. res is NULL for a process "all" looked at and left alone (no
 * candidate). progress may run on several threads at once (done is exact).
 */
typedef void (*ctl_progress_fn)(void *ctx, const struct ctl_result *res, size_t done,
				size_t total);
int ctl_run_progress(struct ctl *c, const struct ctl_caller *who, bool revert,
		     const struct ctl_cmd *cmd, ctl_progress_fn progress, void *ctx,
		     struct ctl_results *ret);

/*
 * The processes "all" (or "all TARGET") would act on for this caller, sorted
 * (revert: those with something applied), excluded ones included (the
 * caller asks ctl_excluded). -ENOENT for an unknown target.
 */
int ctl_all_pids(struct ctl *c, const struct ctl_caller *who, bool revert, const char *target,
		 pid_t **ret, size_t *ret_n);

/* Processes of "all" operations running in this context: done and total, summed. */
void ctl_all_counts(struct ctl *c, size_t *ret_done, size_t *ret_total);

/*
 * "4242 ok set=... pause_us=37 changed=1", "4242 EBUSY why" or "4242 excluded
 * exclude-name=nginx comm=nginx", one per line.
 */
int ctl_results_format(const struct ctl_results *r, bool json, struct hp_buf *out);
/* "ESRCH" for -ESRCH, "E123" for an unnamed one, "ok" for 0 and any positive value. */
const char *ctl_errno_name(int err);

/* ---- states (docs/contract.md) -------------------------------------------- */

enum ctl_state {
	CTL_STATE_UP_TO_DATE,
	CTL_STATE_HOTPATCHED,
	CTL_STATE_NOT_UP_TO_DATE,
	CTL_STATE_NEEDS_RESTART,
	CTL_STATE_WITHDRAWN, /* runs a set the store withdrew: apply moves it on or reverts it */
	CTL_STATE_FAILED,
	CTL_STATE_IN_PROGRESS,
};
const char *ctl_state_name(enum ctl_state s);

/* What is known of one mapped target, the input of the state of a target. */
struct ctl_state_in {
	bool covered;               /* a baseline of the store covers the build-id */
	const char *newest_month;   /* newest month published for it, or NULL */
	const char *newer_baseline; /* a later baseline for the same name, or NULL */
	const char *applied_month;  /* month applied in the process, or NULL */
	/* Optional (NULL: not compared): the set applied and the set the store would apply. */
	const char *applied_set;
	const char *newest_set;
	bool applied_withdrawn;     /* the set applied was withdrawn from the store */
};
enum ctl_state ctl_target_state(const struct ctl_state_in *in);
/* The state of a process from two of its parts: the one that needs most attention. */
enum ctl_state ctl_state_combine(enum ctl_state a, enum ctl_state b);

struct ctl_target {
	char *path;            /* as mapped */
	char *name;            /* store's target name, else the file name */
	char build_id[HP_BUILD_ID_HEX_SIZE];
	bool covered;
	char *baseline;        /* or NULL */
	char *newest_month;    /* or NULL */
	char *newer_baseline;  /* or NULL */
	char applied_set[HP_SET_ID_SIZE]; /* "" when nothing is applied */
	char applied_month[HP_MONTH_SIZE];
	uint64_t pause_us;
	int64_t applied_at;
	enum ctl_state state;
	char *newest_set;      /* the set an apply would install, or NULL */
	char *withdrawn;       /* the reason, when the set applied was withdrawn; or NULL */
	char **funcs;          /* functions the applied set replaces (from its manifest) */
	size_t n_funcs;
	char **cves;           /* CVE ids the applied set fixes */
	size_t n_cves;
};

struct ctl_status {
	pid_t pid;
	uid_t uid;
	uint64_t start_time;
	char comm[HP_COMM_SIZE];
	char *exe;
	struct ctl_target *targets; /* mapped targets whose name the store knows */
	size_t n_targets;
	enum ctl_state state;
	char reason[HP_ERRMSG_MAX]; /* when failed or in-progress */
	bool have_pause;
	uint64_t last_pause_us;
	char excluded[CTL_WHY_SIZE]; /* the policy's rule that opts it out, or "" */
};

/* -ESRCH for no such process. */
int ctl_status(struct ctl *c, pid_t pid, struct ctl_status **ret);
void ctl_status_free(struct ctl_status *s);
/* "key: value" lines (or one JSON object). */
int ctl_status_format(const struct ctl_status *s, bool json, struct hp_buf *out);
/*
 * The compliance report: a "# hotpatch report ..." header, one
 * "pid=... comm=... state=... target=... baseline=... applied=... latest=...
 * pause_us=... applied_at=... cves=..." line per process that maps a known
 * target, and a "# summary: N processes: ..." line with the count per
 * state. JSON: {"host","time","commit","processes":[status...],"summary":{}}.
 */
int ctl_report(struct ctl *c, bool json, struct hp_buf *out);

#define CTL_N_STATES (CTL_STATE_IN_PROGRESS + 1)

struct ctl_report_filter {
	unsigned states;     /* bit (1 << state): only these; 0: all */
	const char *target;  /* only processes mapping this target name, or NULL */
	const char *comm;    /* only processes with this command name, or NULL */
	bool by_uid;         /* only processes of uid */
	uid_t uid;
	/* Called on each status before it is counted (hp merges the daemon's view); may be NULL. */
	void (*adjust)(void *ctx, struct ctl_status *s);
	void *adjust_ctx;
	bool only_attention; /* list only processes neither hotpatched nor up-to-date */
};
/* The count of processes per state (the summary line), for a check's exit status. */
struct ctl_report_counts {
	size_t n;
	size_t per_state[CTL_N_STATES];
	size_t excluded; /* of the n, those the policy opts out of "all" and auto-apply */
};
int ctl_report_filtered(struct ctl *c, bool json, const struct ctl_report_filter *f,
			struct hp_buf *out, struct ctl_report_counts *ret_counts);
/* CTL_STATE_* for a name ("hotpatched"), -EINVAL (with a message) else. */
int ctl_state_parse(const char *name);

/*
 * The processes that map a target the store knows, sorted: a file whose
 * name the store knows, or any file mapped executable whose build-id a
 * baseline covers (a renamed copy). Cheap: /proc/PID/maps, names first,
 * build-ids read once per (dev, inode, mtime) and cached; the answer per
 * process is cached by (pid, start time, comm, snapshot).
 */
int ctl_list(struct ctl *c, pid_t **ret_pids, size_t *ret_n);

/* ---- helpers shared by hotpatchfs and hp -------------------------------- */

/* Start time (/proc/PID/stat field 22); -ESRCH when gone. */
int ctl_proc_start_time(pid_t pid, uint64_t *ret);

#endif

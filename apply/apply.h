/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * apply.h: the engine. Hot-swaps the functions of a verified patch set into
 * a running process, all or nothing, in one short stop; replaces one month
 * by the next; reverts; and reads back what is applied from the process's
 * own memory. Knows nothing of git or FUSE: callers hand it a manifest and
 * the patch object bytes. What it guarantees: docs/contract.md; how:
 * docs/engine.md.
 *
 * Errors: 0 or a negative errno, with a message in the calling thread's
 * error slot (hp_errmsg()):
 *   -ESRCH   no such process (or it exited, or its PID was reused)
 *   -ENOENT  nothing applied (revert)
 *   -ENOEXEC the set does not fit: build-id not mapped, offsets or sizes
 *            disagree with the mapped object, unresolvable relocation
 *   -EBUSY   a switched function stayed active past the retry budget, or a
 *            thread did not stop within it ("thread TID did not stop within
 *            N ms (state D)": uninterruptible sleep), or another tracer
 *   -EPERM   ptrace refused
 * Functions are thread-safe; two operations on one PID serialise (the
 * second waits for the first or fails with -EBUSY if ptrace is taken by
 * another tracer). apply_patch and apply_revert run each operation in a
 * thread of their own (the tracer; its exit lets go of a thread that never
 * stopped), so every wait of theirs is bounded by the budget.
 */
#ifndef HP_APPLY_H
#define HP_APPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hp-common.h"

#define APPLY_DEFAULT_BUDGET_MS 1000

/* One verified patch set, as the store hands it over. */
struct apply_set {
	const char *set_id;                 /* "BASELINE/MONTH/NAME" */
	const struct hp_manifest *manifest;
	const void *so;                     /* the patch object (ELF ET_DYN) */
	size_t so_len;
};

struct apply_opts {
	unsigned budget_ms; /* safety retry budget, and the bound of every wait for a
			     * thread to stop; 0 means APPLY_DEFAULT_BUDGET_MS */
	/*
	 * Optional: asked with the process held, once after the attach (nothing
	 * written yet) and once with every thread stopped right before the
	 * switch, where no exec can land in between. 0 goes on; a negative errno
	 * (message in the error slot) lets go of the process with nothing of
	 * the operation left in it, and the operation fails with that errno.
	 * Called in the engine's operation thread.
	 */
	int (*may_patch)(void *arg, pid_t pid);
	void *may_patch_arg;
	/* the CPU time at each step's end and the context switches in
	 * ret->prof (left 0 unless asked: a system call per step) */
	bool prof_cpu;
};

/*
 * Where an operation's time went (docs/engine.md, "Where the time goes"):
 * the end of each of its steps (and the CPU time the operation's thread had
 * used by then) and the bounds of the stop, in hp_now_us()
 * time (CLOCK_MONOTONIC microseconds, comparable across processes), the
 * waits for a thread's ptrace stop (each one a round trip through the
 * target's scheduling) and the context switches of the operation's thread.
 * Recorded on every operation: a few clock reads (the CPU times and the
 * context switches when apply_opts.prof_cpu asks for them).
 */
#define APPLY_PROF_STEPS 16
struct apply_prof {
	uint64_t t_begin_us;         /* the operation's thread began */
	uint64_t t_end_us;           /* it was about to end (everything let go) */
	size_t n_steps;
	struct {
		const char *name;    /* the step's name (static) */
		uint64_t end_us;
		uint64_t cpu_us;     /* CPU time of the operation's thread by then */
	} steps[APPLY_PROF_STEPS];
	uint64_t cpu_end_us;         /* ... at t_end_us */
	uint64_t t_hold_us;          /* the first stop began (priority raised) */
	uint64_t t_stop_us;          /* the last stop: its first thread stopped */
	uint64_t t_resumed_us;       /* ... its last thread let go */
	pid_t sys_tid;               /* the thread held first, for the remote calls */
	unsigned n_waits;            /* waits for a ptrace stop */
	unsigned n_slept;            /* ... that found the thread still running */
	unsigned n_remote;           /* system calls and calls run in the target */
	long n_vcsw, n_ivcsw;        /* voluntary, involuntary context switches */
};

struct apply_result {
	bool changed;       /* false: the set was already applied, nothing done */
	uint64_t pause_us;  /* all threads held: first stopped to last resumed */
	unsigned n_threads;
	unsigned n_tries;   /* safety checks made (1 when safe at once) */
	char set_id[HP_SET_ID_SIZE]; /* what is applied now ("" after revert) */
	struct apply_prof prof;
};

/*
 * Apply set to pid. If another month of the same target is applied, it is
 * replaced in the same stop (functions no longer in the set return to the
 * original). If this exact set is applied, succeeds with changed = false.
 */
int apply_patch(pid_t pid, const struct apply_set *set, const struct apply_opts *opts,
		struct apply_result *ret);

/*
 * Apply several sets, one per target (an executable and its libraries), in
 * one stop: every target of the process switches, or none does. Sets
 * already applied are left as they are; changed is true when any other was
 * switched, set_id is the last set's. -EINVAL for two sets of one target.
 */
#define APPLY_MAX_SETS 64
int apply_patch_sets(pid_t pid, const struct apply_set *sets, size_t n_sets,
		     const struct apply_opts *opts, struct apply_result *ret);

/*
 * Apply the sets choose picks from the engine's own reading of the
 * process: the engine reads it once, before anything is stopped, and hands
 * choose what it read (as apply_inspect would give it, but for uid and
 * exe: unset), with room for cap sets. choose fills sets and returns how
 * many (0: the process is never stopped, ret->changed false), or a
 * negative errno with its message in the error slot, which the apply
 * returns as it is. The attach that follows checks the reading is still
 * the process's image (an exec since: -ESRCH) and asks opts->may_patch.
 * Called in the engine's operation thread, once per call; the sets it
 * gives must stay valid until the call returns.
 */
struct apply_proc;
typedef int (*apply_choose_fn)(void *arg, const struct apply_proc *p, struct apply_set *sets,
			       size_t cap);
int apply_patch_choose(pid_t pid, apply_choose_fn choose, void *arg,
		       const struct apply_opts *opts, struct apply_result *ret);

/*
 * Revert what is applied to the target with build_id, or every set applied
 * in pid when build_id is NULL. -ENOENT when nothing is applied.
 */
int apply_revert(pid_t pid, const char *build_id, const struct apply_opts *opts,
		 struct apply_result *ret);

/*
 * apply_revert, but the process is read before anything is stopped and
 * shown to look first (what apply_inspect would give, but for uid and
 * exe): 0 goes on, a negative errno (message in the error slot) ends the
 * revert there with the process never stopped, and is returned as it is.
 * Called in the engine's operation thread, once.
 */
typedef int (*apply_look_fn)(void *arg, const struct apply_proc *p);
int apply_revert_look(pid_t pid, const char *build_id, apply_look_fn look, void *arg,
		      const struct apply_opts *opts, struct apply_result *ret);

/*
 * An active-ok function's running activations keep its old code after the
 * switch (a worker loop): the process is not fully patched until they are
 * gone. apply_settle stops pid as an apply does, finds the threads that
 * still run the old code of such functions (its body, or an older month's
 * region kept for them), and unmarks the functions no thread runs any more
 * (a thread that left cannot go back: every call takes the jump). Returns
 * the number of functions still on old code, with "function F in thread
 * T, ..." in ret_msg ("" for none), or -errno.
 */
int apply_settle(pid_t pid, const struct apply_opts *opts, char *ret_msg, size_t cap);

/* ---- inspection (does not stop the process) ---------------------------- */

/* An ELF object mapped in the process, with a build-id. */
struct apply_object {
	char *path;          /* as in /proc/PID/maps (may end in " (deleted)") */
	char build_id[HP_BUILD_ID_HEX_SIZE];  /* lowercase hex */
	uint64_t bias;       /* load bias: runtime address = bias + st_value */
};

/* A patch region found in the process (from its header). */
struct apply_applied {
	char build_id[HP_BUILD_ID_HEX_SIZE];
	char set_id[HP_SET_ID_SIZE];
	char month[HP_MONTH_SIZE];
	uint64_t region;     /* address of the region */
	uint64_t pause_us;   /* pause of the stop that installed it */
	int64_t applied_at;  /* unix seconds */
	unsigned n_funcs;
	unsigned n_switched;  /* entries that jump into it: n_funcs, or fewer when
			       * an engine was killed between two entry writes */
	unsigned n_old_live;  /* active-ok functions whose old code a thread may
			       * still run (apply_settle tells) */
};

struct apply_proc {
	pid_t pid;
	uid_t uid;
	uint64_t start_time; /* /proc/PID/stat field 22, for PID-reuse checks */
	char comm[HP_COMM_SIZE];
	char *exe;           /* /proc/PID/exe link text */
	struct apply_object *objects;
	size_t n_objects;
	struct apply_applied *applied;
	size_t n_applied;
};

int apply_inspect(pid_t pid, struct apply_proc **ret);
void apply_proc_free(struct apply_proc *p);

/* The applied record for build_id in p, or NULL. */
const struct apply_applied *apply_proc_find(const struct apply_proc *p, const char *build_id);

/*
 * Read an ELF file's GNU build-id (lowercase hex). For hp build and tests;
 * the engine itself reads build-ids from the process.
 */
int apply_file_build_id(const char *path, char ret_hex[HP_BUILD_ID_HEX_SIZE]);

#endif

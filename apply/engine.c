/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The apply / replace / revert state machine, and inspection.
 *
 * An operation is a table of named steps, each with its undo (below,
 * "the steps of an operation"; docs/engine.md has the table):
 *
 *   parse     the patch objects, before any ptrace     -
 *   attach    stop the sys thread; maps, objects,      let it go
 *             regions read after the stop
 *   check     every set fits; sets applied drop out    -
 *   map       one region per set, near its target      remote munmap
 *   relocate  header, image, protections               (with map)
 *   stop      every thread held and found safe,        let them go
 *             retried within the budget
 *   switch    every entry written, in one stop         the old bytes back
 *   resume    every thread but the sys thread goes     - (the commit)
 *   unmap     old months and orphans, if found safe    -
 *   detach    the sys thread goes                      -
 *
 * The only change the program can see is the switch, done while every
 * thread is held; a tracer that dies is detached by the kernel, so a daemon
 * killed before the switch leaves an orphan region (not applied: no jump
 * reaches it; the next operation unmaps it) and one killed after it leaves
 * the set applied. The header is written before any jump exists.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "apply-int.h"

#define PAGE ((uint64_t)HP_PAGE_SIZE)
/* The top of x86_64 user space with 4-level page tables: 47 bits, less the
 * guard page the kernel keeps below 1 << 47 (TASK_SIZE_MAX). */
#define USER_TOP 0x7ffffffff000ull
/* Lowest address a region is put at: Debian's vm.mmap_min_addr (65536). */
#define MMAP_MIN 0x10000ull
/* Room left above the heap's end so that the program's brk can still grow. */
#define BRK_ROOM (64ull << 20)
#define BACKOFF_MAX_MS 50
/* Largest active-ok function whose branches are checked (bytes). */
#define ACTIVE_OK_MAX (1u << 20)

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

/*
 * Named failure points, compiled only into test builds (meson option
 * test_hooks): at each point an operation passes (after each step, and
 * inside the steps that act more than once: between two regions mapped,
 * between two entry writes), HP_ENGINE_TEST_FAIL=POINT makes it fail there
 * with -EIO, and HP_ENGINE_TEST_STALL=POINT makes it sleep 10 s
 * (HP_ENGINE_TEST_STALL_MS, if set) there after creating
 * $HP_ENGINE_TEST_STALL_FILE, so that a test can kill it there, or change
 * the process under it (test-engine-crash.sh, test-engine-points.sh).
 */
#ifdef HP_TEST_HOOKS
static int test_point(const char *point)
{
	const char *fail = getenv("HP_ENGINE_TEST_FAIL");
	const char *stall = getenv("HP_ENGINE_TEST_STALL");
	const char *file = getenv("HP_ENGINE_TEST_STALL_FILE");
	const char *ms = getenv("HP_ENGINE_TEST_STALL_MS");

	if (stall && strcmp(stall, point) == 0) {
		if (file) {
			int fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);

			if (fd >= 0)
				close(fd);
		}
		if (ms)
			usleep((useconds_t)atoi(ms) * 1000);
		else
			sleep(10);
	}
	if (fail && strcmp(fail, point) == 0)
		return hp_err(-EIO, "test failure point %s", point);
	return 0;
}
#else
static inline int test_point(const char *point)
{
	(void)point;
	return 0;
}
#endif

/* ---- one operation on one PID at a time, in this process ------------------ */

static pthread_mutex_t busy_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t busy_cond = PTHREAD_COND_INITIALIZER;
static pid_t busy_pids[256];
static size_t n_busy;

static bool pid_busy(pid_t pid)
{
	for (size_t i = 0; i < n_busy; i++)
		if (busy_pids[i] == pid)
			return true;
	return false;
}

static void pid_lock(pid_t pid)
{
	pthread_mutex_lock(&busy_lock);
	while (pid_busy(pid) || n_busy == sizeof(busy_pids) / sizeof(busy_pids[0]))
		pthread_cond_wait(&busy_cond, &busy_lock);
	busy_pids[n_busy++] = pid;
	pthread_mutex_unlock(&busy_lock);
}

static void pid_unlock(pid_t pid)
{
	pthread_mutex_lock(&busy_lock);
	for (size_t i = 0; i < n_busy; i++)
		if (busy_pids[i] == pid) {
			busy_pids[i] = busy_pids[--n_busy];
			break;
		}
	pthread_cond_broadcast(&busy_cond);
	pthread_mutex_unlock(&busy_lock);
}

/* ---- the operation's state ------------------------------------------------- */

struct jump_write {
	uint64_t addr;
	size_t len;
	uint8_t bytes[REGION_SAVED_MAX];  /* what to write */
	uint8_t expect[REGION_SAVED_MAX]; /* what must be there now */
	const char *name;
};

/* The calling thread's scheduling while threads are held (see boost_begin). */
struct boost {
	bool on;
	int policy;
	struct sched_param param;
};

/* One patch set of an apply: every set of one process switches in one stop. */
struct op_set {
	const struct apply_set *set;
	const struct hp_manifest *m;
	char set_id[HP_SET_ID_SIZE];
	struct load_image img;
	/* its unwind tables (unwind.c): .eh_frame in the image, or why not */
	uint64_t eh_vaddr;
	int eh_r;
	char eh_why[HP_ERRMSG_MAX];
	uint64_t *new_vaddr, *new_size;  /* each function in the image */
	uint8_t (*entry)[ARCH_JUMP_LEN]; /* each function's entry bytes, as the check read them */
	const struct proc_object *target;
	const struct region *old;        /* the month it replaces, or NULL */
	bool unchanged;                  /* this exact set is applied: nothing to do */
	uint64_t lo, hi;                 /* the entries it switches */
	uint64_t hdr_bytes, img_off;
	struct region_hdr *hdr;
	/* its new region */
	uint64_t base, size;
	bool mapped;                     /* mapped by us, not switched to yet */
	uint64_t area;                   /* its unwind area, when registered */
	bool registered;                 /* registered (or maybe: the undo reads the area) */
};

struct op {
	pid_t pid;
	pid_t view;       /* pid, or a live thread when the leader has left */
	int mem_fd;
	uint64_t start_time;
	char comm[HP_COMM_SIZE]; /* as it was at the open */
	unsigned budget_ms;
	int (*may_patch)(void *arg, pid_t pid); /* apply_opts.may_patch */
	void *may_patch_arg;
	struct ptr_world w;
	bool attached;
	struct proc_maps maps;
	int maps_fd;      /* what maps was read from, kept for the stop's PROCMAP_QUERY */
	struct proc_objects objs;
	struct regions regions;
	bool scanned;     /* maps, objs and regions read */

	/* apply: the sets, all switched in one stop or none */
	struct op_set *sets;
	size_t n_sets;
	size_t n_changed;
	/* or chosen once attached (apply_patch_choose): into chosen */
	apply_choose_fn choose;
	void *choose_arg;
	struct apply_set *chosen;
	bool choose_failed; /* the chooser's own error: passed on as it is */
	/* settle: the functions marked old-live, and what the look found */
	struct live_fn {
		const struct region *rg;
		uint32_t idx;
		bool busy;
	} *live;
	size_t n_live, n_busy_fns;
	struct hp_buf busy_msg;

	/* revert: only the target with this build-id (NULL: all) */
	const char *build_id;
	size_t n_applied;
	apply_look_fn look; /* apply_revert_look */
	void *look_arg;

	struct jump_write *writes;
	size_t n_writes;
	struct span {
		uint64_t addr;
		size_t len;
		uint8_t *now;   /* what the stop writes */
		uint8_t *old;   /* what is there (undo) */
	} *spans;
	size_t n_spans;
	struct safety_range *required;
	struct safety_range *all; /* required, then the regions to unmap */
	size_t n_all;
	size_t n_required;
	/* regions to unmap when safe: indices into regions */
	size_t *unmap;
	size_t n_unmap;
	bool *unmap_ok;

	/* the stop */
	struct checker *k;
	struct boost boost;
	bool held;        /* every thread held (step stop) */
	bool finished;    /* nothing (more) to do: the steps end here */

	unsigned n_tries;
	uint64_t pause_us;
	struct apply_prof prof; /* each step's end (run_steps), the stop's bounds */

	/* the target's unwinder (unwind.c): regions are registered with it */
	struct unwinder unw;
};

static void op_release(struct op *op)
{
	if (op->attached)
		ptr_world_release(&op->w);
	else
		ptr_world_forget(&op->w);
	if (op->mem_fd >= 0)
		op_close_late(op->mem_fd);
	if (op->maps_fd >= 0)
		op_close_late(op->maps_fd);
	proc_maps_release(&op->maps);
	proc_objects_release(&op->objs);
	regions_release(&op->regions);
	free(op->writes);
	for (size_t i = 0; i < op->n_spans; i++) {
		free(op->spans[i].now);
		free(op->spans[i].old);
	}
	free(op->spans);
	free(op->required);
	free(op->all);
	free(op->unmap);
	free(op->unmap_ok);
	unwinder_release(&op->unw);
	for (size_t i = 0; i < op->n_sets; i++) {
		load_image_release(&op->sets[i].img);
		free(op->sets[i].new_vaddr);
		free(op->sets[i].entry);
		free(op->sets[i].new_size);
		free(op->sets[i].hdr);
	}
	free(op->sets);
	free(op->chosen);
	free(op->live);
	hp_buf_release(&op->busy_msg);
}

/* The caller's options: the budget (also each wait's bound), the right re-checked while held. */
static void op_set_opts(struct op *op, const struct apply_opts *opts)
{
	op->budget_ms = opts && opts->budget_ms ? opts->budget_ms : APPLY_DEFAULT_BUDGET_MS;
	op->w.stop_ms = op->budget_ms;
	op->may_patch = opts ? opts->may_patch : NULL;
	op->may_patch_arg = opts ? opts->may_patch_arg : NULL;
}

static int op_open(struct op *op, pid_t pid, bool rw)
{
	struct proc_stat_fields f;
	char path[96];
	pid_t view;
	char state;
	uint64_t st;
	int r;

	memset(op, 0, sizeof(*op));
	op->mem_fd = -1;
	op->maps_fd = -1;
	op->pid = pid;
	/* its descriptors are closed by op_release, however far this got */
	ptr_world_init(&op->w, pid, -1, 0);
	if (pid <= 0)
		return hp_err(-ESRCH, "process %d: no such process", (int)pid);
	/*
	 * Kept open for the operation (the world's): the check of the process
	 * at each attach reads it again, one read where it was an open, a
	 * read and a close. -ESRCH when gone; an unreadable stat stays -EIO.
	 */
	r = proc_stat_open(pid);
	if (r < 0)
		return r;
	op->w.stat_fd = r;
	r = proc_stat_fd_read(op->w.stat_fd, pid, &f);
	if (r < 0)
		return r;
	/*
	 * A kernel thread has no memory of its own to patch: an operation
	 * says so at once. ctl's check for root leaves this to the stat read
	 * here, which is made anyway.
	 */
	if (rw && (f.flags & PROC_PF_KTHREAD))
		return hp_err(-ENOENT, PROC_KTHREAD_MSG, (int)pid);
	state = f.state;
	st = f.start_time;
	snprintf(op->comm, sizeof(op->comm), "%s", f.comm);
	/* the leader's state is the process's: alive, it is the view */
	view = state != 'Z' && state != 'X' ? pid : proc_live_tid(pid);
	if (!view)
		return hp_err(-ESRCH, "process %d has exited (zombie)", (int)pid);
	op->view = view;
	/* the leader gone, its /proc/PID/mem is empty: a live thread's is not */
	if (view == pid)
		snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	else
		snprintf(path, sizeof(path), "/proc/%d/task/%d/mem", (int)pid, (int)view);
	op->mem_fd = open(path, (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (op->mem_fd < 0) {
		int e = errno;

		if (e == ENOENT || e == ESRCH)
			return hp_err(-ESRCH, "process %d: no such process", (int)pid);
		return hp_err(e == EACCES || e == EPERM ? -EPERM : -e, "process %d: open %s: %s",
			      (int)pid, path, strerror(e));
	}
	/*
	 * The descriptor is tied to that process's memory: check it is the
	 * one. An operation (rw) need not ask now: its attach compares the
	 * start time of the process it stopped with this one
	 * (check_same_process) before anything is written, and what it read
	 * before (apply_patch_choose) is used only after that.
	 */
	if (!rw) {
		/* the descriptor says the process is still the one, whatever its state */
		r = proc_stat_fd_read(op->w.stat_fd, pid, &f);
		if (r == 0 && f.start_time != st)
			r = hp_err(-ESRCH, "process %d: no such process", (int)pid);
		if (r < 0)
			return r;
	}
	op->start_time = st;
	op->w.mem_fd = op->mem_fd;
	op->w.start_time = st;
	op->w.leader_state = state;
	return 0;
}

/*
 * Where injected system calls run: a trampoline's place (w->tramp_addr),
 * else a syscall instruction of the target's (w->syscall_insn), looked for
 * only then (the vDSO read whole, two pages, at every attach before).
 */
static int find_syscall_insn(struct op *op)
{
	uint8_t *buf = NULL;
	int r = -ENOEXEC;

	/*
	 * Where injected calls can run safely even if we die (ptr.c): the
	 * first ARCH_TRAMP_MAX bytes of page slack after a code segment, used
	 * only when they are all zero (padding), or hold a trampoline a killed
	 * engine left there (then they were zero before it): either way they
	 * go back to zero after each use.
	 */
	for (size_t i = 0; i < op->objs.n && !op->w.tramp_addr; i++) {
		uint8_t cur[ARCH_TRAMP_MAX];
		static const uint8_t zero[ARCH_TRAMP_MAX];

		if (op->objs.v[i].slack_len < ARCH_TRAMP_MAX ||
		    strcmp(op->objs.v[i].path, "[vdso]") == 0 ||
		    proc_mem_read(op->mem_fd, op->objs.v[i].slack, cur, sizeof(cur)) < 0)
			continue;
		if (memcmp(cur, zero, sizeof(cur)) == 0 || arch_tramp_is(cur, sizeof(cur)))
			op->w.tramp_addr = op->objs.v[i].slack;
	}
	/* with a trampoline (its own syscall instruction) the calls run there only */
	if (op->w.tramp_addr)
		return 0;
	/* the vDSO's fallback paths hold one; else any executable file mapping */
	for (int pass = 0; pass < 2 && r < 0; pass++) {
		for (size_t i = 0; i < op->maps.n && r < 0; i++) {
			const struct proc_map *m = &op->maps.v[i];
			uint64_t len = m->end - m->start;
			uint8_t *hit;

			if (!(m->prot & PROT_EXEC) || !(m->prot & PROT_READ) || !m->path)
				continue;
			if (pass == 0 && strcmp(m->path, "[vdso]") != 0)
				continue;
			if (pass == 1 && m->path[0] != '/')
				continue;
			if (len > (1u << 20))
				len = 1u << 20;
			free(buf);
			buf = malloc(len);
			if (!buf) {
				r = -ENOMEM;
				break;
			}
			if (proc_mem_read(op->mem_fd, m->start, buf, len) < 0)
				continue;
			hit = memmem(buf, len, arch_syscall_insn, sizeof(arch_syscall_insn));
			if (hit) {
				op->w.syscall_insn = m->start + (uint64_t)(hit - buf);
				r = 0;
			}
		}
	}
	free(buf);
	if (r == -ENOEXEC)
		return hp_err(r, "process %d: no system call instruction found", (int)op->pid);
	return r;
}

/* Read the process's state as it is now: its maps, objects and regions. */
static int op_scan(struct op *op)
{
	int r;

	if (op->maps_fd >= 0)
		close(op->maps_fd);
	r = proc_maps_read_keep(op->pid, &op->maps, &op->maps_fd);
	if (r < 0)
		return r;
	r = proc_objects_read(op->pid, op->mem_fd, &op->maps, &op->objs);
	if (r < 0)
		return r;
	r = regions_read(op->pid, op->mem_fd, &op->maps, &op->regions);
	if (r < 0)
		return r;
	op->scanned = true;
	return 0;
}

/*
 * Read before the attach (apply_patch_choose): the memory read is still
 * the process's, not left behind by an exec since. Our descriptor is tied
 * to the memory it was opened on, which an exec drops (reads through it
 * then fail). An exec after the attach ends the held thread (the engine's
 * next request to it fails) and drops that memory too; with every thread
 * held, at the switch, none can exec.
 */
static int op_same_image(struct op *op)
{
	const struct proc_object *exe = op->objs.n ? &op->objs.v[0] : NULL;
	uint8_t magic[4];

	if (!exe || exe->first_map >= op->maps.n ||
	    proc_mem_read(op->mem_fd, op->maps.v[exe->first_map].start, magic, sizeof(magic)) < 0 ||
	    memcmp(magic, "\177ELF", 4) != 0) {
		hp_err_clear();
		return hp_err(-ESRCH, "process %d: its program was replaced (exec) while it was read",
			      (int)op->pid);
	}
	return 0;
}

/* Stop the sys thread and read the process's state as it is now (or check what was read). */
static int op_attach_scan(struct op *op)
{
	int r;

	r = ptr_stop_sys(&op->w);
	if (r < 0)
		return r;
	op->attached = true;
	r = op->scanned ? op_same_image(op) : op_scan(op);
	if (r < 0)
		return r;
	r = find_syscall_insn(op);
	if (r < 0)
		return r;
	/* the caller's right, for the process now held (it may have exec'd since) */
	return op->may_patch ? op->may_patch(op->may_patch_arg, op->pid) : 0;
}

static int remote(struct op *op, long nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3,
		  uint64_t a4, uint64_t a5, int64_t *ret)
{
	uint64_t args[6] = { a0, a1, a2, a3, a4, a5 };

	return ptr_syscall(&op->w, nr, args, ret);
}

static int remote_munmap(struct op *op, uint64_t addr, uint64_t size)
{
	int64_t res;
	int r;

	/* the region is switched to, or being unmapped anyway: no undo */
	r = ptr_set_undo(&op->w, 0, 0, false);
	if (r == 0)
		r = ptr_stop_sys(&op->w);
	if (r < 0)
		return r;
	r = remote(op, SYS_munmap, addr, size, 0, 0, 0, 0, &res);
	if (r == 0 && res < 0)
		r = hp_err((int)res, "process %d: munmap 0x%" PRIx64 ": %s", (int)op->pid, addr,
			   strerror((int)-res));
	return r;
}

/* ---- placement ------------------------------------------------------------- */

struct cand {
	uint64_t base;
	uint64_t dist;
};

static int cand_cmp(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	return x->dist < y->dist ? -1 : x->dist > y->dist;
}

static bool reaches(uint64_t base, uint64_t size, uint64_t lo, uint64_t hi)
{
	uint64_t reach = arch_jump_reach();
	uint64_t rend = base + size;

	/* every entry in [lo, hi] jumps to somewhere in [base, base + size) */
	if (rend <= lo)
		return hi + ARCH_JUMP_LEN - base <= reach;
	if (base >= hi)
		return rend - lo <= reach;
	return false;
}

static uint64_t dist(uint64_t a, uint64_t b)
{
	return a > b ? a - b : b - a;
}

/*
 * Map size bytes within jump reach of every entry in [lo, hi], with a free
 * page on each side (an adjacent anonymous read-only mapping would
 * otherwise merge with our header and hide it), never over a mapping
 * (MAP_FIXED_NOREPLACE), away from the brk heap's room to grow.
 */
static int map_region(struct op *op, struct op_set *ts, uint64_t size, uint64_t align)
{
	uint64_t lo = ts->lo, hi = ts->hi;
	struct cand *c = NULL;
	size_t n = 0;
	const struct proc_object *exe = op->objs.n ? &op->objs.v[0] : NULL;
	int r = -ENOSPC;

	c = calloc(2 * (op->maps.n + 1), sizeof(*c));
	if (!c)
		return -ENOMEM;
	for (size_t i = 0; i <= op->maps.n; i++) {
		uint64_t g0 = i ? op->maps.v[i - 1].end : MMAP_MIN;
		uint64_t g1 = i < op->maps.n ? op->maps.v[i].start : USER_TOP;
		uint64_t b;

		if (g1 > USER_TOP)
			g1 = USER_TOP;
		if (g0 < MMAP_MIN)
			g0 = MMAP_MIN;
		if (i && op->maps.v[i - 1].path &&
		    (strcmp(op->maps.v[i - 1].path, "[heap]") == 0 ||
		     (exe && i - 1 >= exe->first_map && i - 1 < exe->first_map + exe->n_maps)))
			g0 += BRK_ROOM;
		if (i && !op->maps.v[i - 1].path && exe && i - 1 == exe->first_map + exe->n_maps)
			g0 += BRK_ROOM; /* the executable's bss, then brk */
		if (g1 <= g0 || g1 - g0 < size + 2 * PAGE)
			continue;
		b = (g1 - PAGE - size) & ~(align - 1);
		if (b >= g0 + PAGE && reaches(b, size, lo, hi))
			c[n++] = (struct cand){ b, dist(b, lo) };
		b = (g0 + PAGE + align - 1) & ~(align - 1);
		if (b + size + PAGE <= g1 && reaches(b, size, lo, hi))
			c[n++] = (struct cand){ b, dist(b, lo) };
	}
	qsort(c, n, sizeof(*c), cand_cmp);
	for (size_t i = 0; i < n; i++) {
		int64_t res;

		/* killed during the call: the trampoline unmaps what it made */
		r = ptr_set_undo(&op->w, c[i].base, size, false);
		if (r < 0)
			goto out;
		r = remote(op, SYS_mmap, c[i].base, size, PROT_READ,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, (uint64_t)-1, 0, &res);
		if (r < 0)
			goto out;
		if (res == -EEXIST) {
			r = -ENOSPC;
			continue; /* mapped by a running thread since we read the maps */
		}
		if (res < 0 && res > -HP_PAGE_SIZE) {
			r = hp_err((int)res, "process %d: mmap: %s", (int)op->pid, strerror((int)-res));
			goto out;
		}
		if ((uint64_t)res != c[i].base) {
			/* a kernel without MAP_FIXED_NOREPLACE took it as a hint */
			remote(op, SYS_munmap, (uint64_t)res, size, 0, 0, 0, 0, &res);
			r = hp_err(-ENOSYS, "process %d: MAP_FIXED_NOREPLACE not honoured", (int)op->pid);
			goto out;
		}
		ts->base = c[i].base;
		ts->size = size;
		ts->mapped = true;
		/* killed from now until the switch: the trampoline unmaps it */
		r = ptr_set_undo(&op->w, c[i].base, size, true);
		goto out;
	}
	r = hp_err(-ENOSPC, "process %d: no free address range within jump reach of the target",
		   (int)op->pid);
out:
	free(c);
	return r;
}

static int remote_mprotect(struct op *op, uint64_t addr, uint64_t len, unsigned prot)
{
	int64_t res;
	int r;

	if (!len)
		return 0;
	r = remote(op, SYS_mprotect, addr, len, prot, 0, 0, 0, &res);
	if (r == 0 && res < 0)
		r = hp_err((int)res, "process %d: mprotect: %s", (int)op->pid, strerror((int)-res));
	return r;
}

/*
 * Final protections of a new region (mapped read-only: the engine writes
 * it through /proc/PID/mem, which writes read-only and read-execute pages
 * as it writes the program's code): header pages and the pages of
 * read-only segments and of RELRO stay read-only, code becomes
 * read-execute, data and what follows the image read-write; one mprotect
 * per run of pages alike. Read-only first, the usual region (header, code,
 * read-only data, data) takes two remote calls instead of three.
 */
static int protect_region(struct op *op, const struct op_set *ts)
{
	const struct load_image *img = &ts->img;
	uint64_t img_off = ts->img_off;
	size_t n = (size_t)(ts->size / PAGE);
	unsigned *prot = malloc(n * sizeof(*prot));
	int r = 0;

	if (!prot)
		return -ENOMEM;
	for (size_t p = 0; p < n; p++)
		prot[p] = p < (img_off + img->size) / PAGE ? PROT_READ : PROT_READ | PROT_WRITE;
	for (size_t i = 0; i < img->n_segs; i++) {
		uint64_t s = (img_off + img->segs[i].vaddr) / PAGE;
		uint64_t e = (img_off + img->segs[i].vaddr + img->segs[i].memsz + PAGE - 1) / PAGE;

		for (uint64_t p = s; p < e && p < n; p++)
			prot[p] = img->segs[i].prot;
	}
	for (uint64_t p = (img_off + img->relro_start) / PAGE;
	     img->relro_end > img->relro_start && p < (img_off + img->relro_end) / PAGE && p < n; p++)
		prot[p] = PROT_READ;
	for (size_t p = 0; p < n && r == 0;) {
		size_t q = p + 1;

		while (q < n && prot[q] == prot[p])
			q++;
		if (prot[p] != PROT_READ)
			r = remote_mprotect(op, ts->base + p * PAGE, (q - p) * PAGE, prot[p]);
		p = q;
	}
	free(prot);
	return r;
}

/* ---- the stop: check, switch ------------------------------------------------- */

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int write_cmp(const void *a, const void *b)
{
	const struct jump_write *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

/*
 * Group the entry writes by page into spans, each written with one pwrite
 * in the stop (a set of 100 functions is a few writes, not 100). Done
 * before the stop: the bytes between the entries are read now; nothing
 * but a tracer writes text and we are the tracer.
 */
static int build_spans(struct op *op)
{
	if (!op->n_writes)
		return 0;
	qsort(op->writes, op->n_writes, sizeof(*op->writes), write_cmp);
	for (size_t i = 0; i < op->n_writes;) {
		struct span *sp, *v;
		size_t k = i + 1;
		uint64_t end = op->writes[i].addr + op->writes[i].len;
		int r;

		while (k < op->n_writes && op->writes[k].addr >= end &&
		       (op->writes[k].addr + op->writes[k].len - 1) / PAGE == op->writes[i].addr / PAGE) {
			end = op->writes[k].addr + op->writes[k].len;
			k++;
		}
		v = realloc(op->spans, (op->n_spans + 1) * sizeof(*v));
		if (!v)
			return -ENOMEM;
		op->spans = v;
		sp = &op->spans[op->n_spans];
		sp->addr = op->writes[i].addr;
		sp->len = (size_t)(end - sp->addr);
		sp->now = malloc(sp->len);
		sp->old = malloc(sp->len);
		if (!sp->now || !sp->old) {
			free(sp->now);
			free(sp->old);
			return -ENOMEM;
		}
		op->n_spans++;
		r = proc_mem_read(op->mem_fd, sp->addr, sp->old, sp->len);
		if (r < 0)
			return r;
		memcpy(sp->now, sp->old, sp->len);
		for (; i < k; i++) {
			const struct jump_write *j = &op->writes[i];
			size_t off = (size_t)(j->addr - sp->addr);

			if (memcmp(sp->old + off, j->expect, j->len) != 0)
				return hp_err(-ENOEXEC, "function %s: its entry changed meanwhile",
					      j->name);
			memcpy(sp->now + off, j->bytes, j->len);
		}
	}
	return 0;
}

/*
 * The switch: one pwrite per span, every thread held. A failure point sits
 * between two writes (a test makes the switch fail, or kills us, there);
 * a write that fails puts back what was written before it.
 */
static int write_jumps(struct op *op)
{
	size_t done;
	int r = 0;

	for (done = 0; done < op->n_spans; done++) {
		if (done == 1)
			r = test_point("between-writes");
		if (r == 0)
			r = proc_mem_write(op->mem_fd, op->spans[done].addr, op->spans[done].now,
					   op->spans[done].len);
		if (r < 0)
			break;
	}
	if (r < 0) {
		/* all or nothing: put back what was written */
		while (done > 0) {
			done--;
			proc_mem_write(op->mem_fd, op->spans[done].addr, op->spans[done].old,
				       op->spans[done].len);
		}
		return hp_err_prefix(r, "switch: ");
	}
	return 0;
}

static int check_safe(struct op *op, const struct safety_range *ranges, size_t n)
{
	pid_t *tids;
	int r;

	if (!n)
		return 0;
	tids = malloc(op->w.n * sizeof(*tids));
	if (!tids)
		return -ENOMEM;
	for (size_t i = 0; i < op->w.n; i++)
		tids[i] = op->w.t[i].tid;
	/* a live thread's id reads the same memory when the leader has left */
	r = safety_check(op->view, tids, op->w.n, ranges, n);
	free(tids);
	return r;
}

/*
 * The safety check unwinds every thread: once, in the common case, for the
 * required ranges (switched functions) and the regions to unmap together.
 * Only when that finds a thread busy are they told apart: busy in a required
 * range is -EBUSY (retry), busy only in an old region keeps that region
 * mapped (an orphan, unmapped by a later operation) and goes on.
 */
static int check_unmap_and_required(struct op *op, int first)
{
	int r;

	/* first: the check of every thread for required + unmap ranges
	 * together, made while the threads were being stopped (on_stop) */
	r = first;
	if (r == 0 || r != -EBUSY || !op->n_unmap) {
		for (size_t i = 0; i < op->n_unmap; i++)
			op->unmap_ok[i] = r == 0;
		goto out;
	}
	r = check_safe(op, op->required, op->n_required);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < op->n_unmap; i++)
		op->unmap_ok[i] = check_safe(op, &op->all[op->n_required + i], 1) == 0;
	hp_err_clear();
out:
	return r;
}

/*
 * The code of a region to unmap: from its first executable page to the end
 * of its last (a region a killed engine left before its protections has
 * none: nothing can run there, the range is empty). A thread can only run
 * or return into code, and the check's fast path (a scan of the live stack
 * for any word inside a range) takes every pointer to the region's header
 * or data as a hit that makes it unwind the thread: the whole region made
 * the stop of a revert or a replace slower than an apply's (docs/engine.md).
 */
static void region_code(const struct op *op, const struct region *rg, uint64_t *ret_lo,
			uint64_t *ret_hi)
{
	uint64_t lo = rg->addr, hi = rg->addr, end = rg->addr + rg->hdr.region_size;

	for (size_t i = 0; i < op->maps.n; i++) {
		const struct proc_map *m = &op->maps.v[i];

		if (m->start < rg->addr || m->end > end || !(m->prot & PROT_EXEC))
			continue;
		if (hi == rg->addr)
			lo = m->start;
		hi = m->end;
	}
	*ret_lo = lo;
	*ret_hi = hi;
}

/* The ranges checked in the stop: required (switched functions), then the
 * code of the regions to unmap. */
static int build_all_ranges(struct op *op)
{
	size_t n = op->n_required;

	free(op->all);
	op->all = malloc((op->n_required + op->n_unmap + 1) * sizeof(*op->all));
	if (!op->all)
		return -ENOMEM;
	if (n)
		memcpy(op->all, op->required, n * sizeof(*op->all));
	for (size_t i = 0; i < op->n_unmap; i++) {
		const struct region *rg = &op->regions.v[op->unmap[i]];
		uint64_t lo, hi;

		region_code(op, rg, &lo, &hi);
		op->all[n++] = (struct safety_range){ lo, hi, rg->hdr.set_id };
	}
	op->n_all = n;
	return 0;
}

/*
 * ptr_stop_all's on_stop: the safety check of one thread as soon as its
 * stop is confirmed, from the registers the stop read, while the other
 * threads are still being stopped (the thread stays held until the
 * switch, so what is seen of it holds then). The first failure's message
 * is kept: the stop goes on and may overwrite the error slot.
 */
static int on_stop_check(void *arg, const struct ptr_thread *t)
{
	return checker_add(arg, t->tid, t->regs);
}

/*
 * No thread may sit inside the bytes a jump overwrites, past their first
 * (an active-ok function's loop head at offset 1..4, or a thread about to
 * re-issue a syscall whose instruction is there: pc - 2). The safety check
 * skips active-ok functions and counts a return address at the end of a
 * range, so this exact test is done here, from the registers of the stop.
 */
static int check_entries(struct op *op)
{
	for (size_t i = 0; i < op->n_writes; i++) {
		const struct jump_write *j = &op->writes[i];

		for (size_t k = 0; k < op->w.n; k++) {
			uint64_t pc = op->w.t[k].pc;

			if ((pc > j->addr && pc < j->addr + j->len) ||
			    (pc - 2 > j->addr && pc - 2 < j->addr + j->len))
				return hp_err(-EBUSY, "function %s: thread %d is inside its first %zu bytes",
					      j->name, (int)op->w.t[k].tid, j->len);
		}
	}
	return 0;
}

/*
 * While threads are being stopped and are held, nothing of the target's
 * must run before us: the calling thread runs SCHED_FIFO from the first
 * PTRACE_INTERRUPT to the last jump written, when it may (root). Without
 * it, the pause on a loaded machine is the scheduler's, not ours. It runs
 * at its own priority again before many threads are let go: a FIFO
 * thread keeps a CPU from the target's threads, and the first ones let go
 * would wait for it to finish with the last (measured: the stop a 64-
 * thread target sees was 1 ms longer, the release after it included). A
 * few threads are let go first (let_go).
 */
static void boost_begin(struct boost *b)
{
	struct sched_param fifo = { .sched_priority = 1 };

	if (b->on)
		return;
	b->on = pthread_getschedparam(pthread_self(), &b->policy, &b->param) == 0 &&
		b->policy != SCHED_FIFO && b->policy != SCHED_RR &&
		pthread_setschedparam(pthread_self(), SCHED_FIFO, &fifo) == 0;
}

static void boost_end(struct boost *b)
{
	if (b->on)
		pthread_setschedparam(pthread_self(), b->policy, &b->param);
	b->on = false;
}

static void unmap_old(struct op *op)
{
	for (size_t i = 0; i < op->n_unmap; i++) {
		const struct region *rg = &op->regions.v[op->unmap[i]];

		/* a region still registered with the unwinder stays (an orphan) */
		if (op->unmap_ok[i] &&
		    unwind_deregister(&op->w, &op->unw, op->view, op->budget_ms, rg) == 0)
			remote_munmap(op, rg->addr, rg->hdr.region_size);
	}
	hp_err_clear();
}

/*
 * perf's map of the process (unwind.c) from the regions applied now: best
 * effort, an error there does not undo the operation. It is written after
 * the caller has its answer, by the operation's thread, which holds the
 * process (pid_lock) until it is done: the next operation on the process
 * begins after it, and a program that exits waits for it (pool_drain). The
 * creation, rename or removal of a file in the target's /tmp was a tenth
 * of the daemon's CPU time per apply, all of it in the answer's wait.
 */
struct perfmap_job {
	bool on;
	pid_t pid;
	int mem_fd;
};

static __thread struct perfmap_job perfmap_job = { false, 0, -1 };

/* Hand the process and its memory descriptor over to the deferred write. */
static void perfmap_defer(struct op *op)
{
	/* nothing more is done in the sys thread: let it go first */
	ptr_resume(&op->w, false);
	perfmap_job = (struct perfmap_job){ true, op->pid, op->mem_fd };
	op->mem_fd = -1;
}

static void perfmap_run(void)
{
	struct perfmap_job j = perfmap_job;
	struct proc_maps maps = { 0 };
	struct regions rgs = { 0 };

	if (!j.on)
		return;
	perfmap_job = (struct perfmap_job){ false, 0, -1 };
	if (proc_maps_read(j.pid, &maps) == 0 && regions_read(j.pid, j.mem_fd, &maps, &rgs) == 0)
		unwind_perfmap_update(j.pid, &rgs);
	regions_release(&rgs);
	proc_maps_release(&maps);
	close(j.mem_fd);
	hp_err_clear();
	pid_unlock(j.pid);
}

static int add_unmap(struct op *op, size_t idx)
{
	size_t *v = realloc(op->unmap, (op->n_unmap + 1) * sizeof(*v));
	bool *ok;

	if (!v)
		return -ENOMEM;
	op->unmap = v;
	ok = realloc(op->unmap_ok, (op->n_unmap + 1) * sizeof(*ok));
	if (!ok)
		return -ENOMEM;
	op->unmap_ok = ok;
	op->unmap[op->n_unmap] = idx;
	op->unmap_ok[op->n_unmap++] = false;
	return 0;
}

static int add_range(struct op *op, uint64_t start, uint64_t end, const char *name)
{
	struct safety_range *v = realloc(op->required, (op->n_required + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	op->required = v;
	op->required[op->n_required++] = (struct safety_range){ start, end, name };
	return 0;
}

static struct jump_write *add_write(struct op *op)
{
	struct jump_write *v = realloc(op->writes, (op->n_writes + 1) * sizeof(*v));

	if (!v)
		return NULL;
	op->writes = v;
	memset(&v[op->n_writes], 0, sizeof(*v));
	return &v[op->n_writes++];
}

static void fill_result(struct op *op, struct apply_result *ret, bool changed, const char *set_id)
{
	memset(ret, 0, sizeof(*ret));
	ret->changed = changed;
	ret->pause_us = op->pause_us;
	ret->n_threads = (unsigned)op->w.n_seen;
	ret->n_tries = op->n_tries;
	snprintf(ret->set_id, sizeof(ret->set_id), "%s", set_id ? set_id : "");
	ret->prof = op->prof;
	ret->prof.sys_tid = op->w.sys_tid;
}

/* Its name ("" when gone meanwhile: the operation finds that out itself). */
static void read_comm(pid_t pid, struct apply_proc *p)
{
	struct hp_buf b = HP_BUF_INIT;
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	if (hp_read_file(path, 64, &b) == 0) {
		b.data[strcspn(b.data, "\n")] = '\0';
		snprintf(p->comm, sizeof(p->comm), "%s", b.data);
	}
	hp_buf_release(&b);
}

/* The objects and the applied regions of p, from what op read. */
static int proc_fill(const struct op *op, struct apply_proc *p)
{
	p->objects = calloc(op->objs.n ? op->objs.n : 1, sizeof(*p->objects));
	p->applied = calloc(op->regions.n ? op->regions.n : 1, sizeof(*p->applied));
	if (!p->objects || !p->applied)
		return -ENOMEM;
	for (size_t i = 0; i < op->objs.n; i++) {
		struct apply_object *o = &p->objects[p->n_objects];

		o->path = strdup(op->objs.v[i].path);
		if (!o->path)
			return -ENOMEM;
		snprintf(o->build_id, sizeof(o->build_id), "%s", op->objs.v[i].build_id);
		o->bias = op->objs.v[i].bias;
		p->n_objects++;
	}
	for (size_t i = 0; i < op->regions.n; i++) {
		const struct region *rg = &op->regions.v[i];
		struct apply_applied *a = &p->applied[p->n_applied];

		if (!rg->n_jumped)
			continue; /* an orphan: not applied */
		snprintf(a->build_id, sizeof(a->build_id), "%.128s", rg->hdr.build_id);
		snprintf(a->set_id, sizeof(a->set_id), "%s", rg->hdr.set_id);
		snprintf(a->month, sizeof(a->month), "%s", rg->hdr.month);
		a->region = rg->addr;
		a->pause_us = rg->hdr.pause_us;
		a->applied_at = rg->hdr.applied_at;
		a->n_funcs = rg->hdr.n_funcs;
		a->n_switched = rg->n_jumped;
		for (uint32_t k = 0; k < rg->hdr.n_funcs; k++)
			a->n_old_live += !!(rg->funcs[k].flags & REGION_FUNC_OLD_LIVE);
		p->n_applied++;
	}
	return 0;
}

/*
 * The process read before any stop (op_scan), as apply_inspect gives it
 * but for uid and exe (unset): what a chooser or a look is shown.
 * proc_clear frees it, filled or not.
 */
static int op_read_proc(struct op *op, struct apply_proc *p)
{
	int r;

	memset(p, 0, sizeof(*p));
	p->pid = op->pid;
	p->uid = (uid_t)-1;
	p->start_time = op->start_time;
	snprintf(p->comm, sizeof(p->comm), "%s", op->comm);
	r = op_scan(op);
	return r < 0 ? r : proc_fill(op, p);
}

static void proc_clear(struct apply_proc *p)
{
	for (size_t i = 0; i < p->n_objects; i++)
		free(p->objects[i].path);
	free(p->objects);
	free(p->applied);
	memset(p, 0, sizeof(*p));
}

/* ---- apply ---------------------------------------------------------------- */

static bool in_object_text(const struct op *op, const struct proc_object *o, uint64_t addr,
			   uint64_t size)
{
	const struct proc_map *m = proc_maps_find(&op->maps, addr);
	size_t i;

	if (!m || addr + size < addr)
		return false;
	i = (size_t)(m - op->maps.v);
	return i >= o->first_map && i < o->first_map + o->n_maps && (m->prot & PROT_EXEC) &&
	       addr + size <= m->end;
}

/* The region any entry currently jumps into, or NULL. */
static const struct region *jumped_region(const struct op *op, uint64_t addr,
					  const uint8_t cur[ARCH_JUMP_LEN])
{
	uint64_t to;

	if (!arch_jump_decode(addr, cur, &to))
		return NULL;
	for (size_t i = 0; i < op->regions.n; i++)
		if (to >= op->regions.v[i].addr &&
		    to < op->regions.v[i].addr + op->regions.v[i].hdr.region_size)
			return &op->regions.v[i];
	return NULL;
}

static const struct region_func *region_func_at(const struct region *rg, uint64_t addr)
{
	for (uint32_t i = 0; rg && i < rg->hdr.n_funcs; i++)
		if (rg->funcs[i].addr == addr)
			return &rg->funcs[i];
	return NULL;
}

/*
 * An active-ok function keeps running its old code after the switch: no
 * branch of it may land inside the bytes the jump overwrites (a loop head
 * at offset 1..4, after an endbr64 say), or that activation would execute
 * the middle of the jump.
 */
static int check_active_ok(struct op *op, const struct hp_manifest_func *f, uint64_t addr)
{
	uint8_t *code;
	uint64_t from = 0;
	int r;

	if (f->size > ACTIVE_OK_MAX)
		return hp_err(-ENOEXEC, "function %s (active-ok): %" PRIu64 " bytes, too large to check",
			      f->name, f->size);
	code = malloc(f->size);
	if (!code)
		return -ENOMEM;
	r = proc_mem_read(op->mem_fd, addr, code, f->size);
	if (r == 0)
		r = arch_branch_into(code, f->size, addr, addr + 1, addr + ARCH_JUMP_LEN, &from);
	free(code);
	if (r == -ENOEXEC)
		return hp_err(r, "function %s (active-ok): its code could not be decoded to check "
			      "its branches", f->name);
	if (r > 0)
		return hp_err(-ENOEXEC, "function %s (active-ok) branches into its first %d bytes "
			      "(from offset 0x%" PRIx64 "): its running activation would land inside "
			      "the jump", f->name, ARCH_JUMP_LEN, from - addr);
	return r;
}

static int check_set(const struct apply_set *set, char *set_id, size_t cap)
{
	const struct hp_manifest *m;
	char *id;

	if (!set || !set->manifest || (!set->so && set->so_len))
		return hp_err(-EINVAL, "apply: no patch set");
	m = set->manifest;
	if (!m->build_id || !hp_valid_build_id(m->build_id) || m->n_funcs == 0 ||
	    m->n_funcs > HP_MANIFEST_MAX_FUNCS || !m->month || !hp_valid_month(m->month))
		return hp_err(-EINVAL, "apply: incomplete manifest");
	id = set->set_id ? strdup(set->set_id) : hp_manifest_set_id(m);
	if (!id)
		return -ENOMEM;
	if (strlen(id) >= cap) {
		free(id);
		return hp_err(-EINVAL, "apply: set id too long");
	}
	strcpy(set_id, id);
	free(id);
	return 0;
}

/* ---- the steps of an operation ------------------------------------------- */

/*
 * An operation is a table of named steps, each with the undo of what it
 * changed in the target. A step that fails has undone its own part; the
 * runner then undoes, newest first, every step done before it. The step
 * marked commit lets the threads go on the switched code: nothing after it
 * unwinds (the change is what the program runs; what a later step leaves,
 * an old region say, the next operation tidies up). After each step the
 * runner passes the test failure point named after it.
 */
struct step {
	const char *name;
	int (*run)(struct op *op);
	void (*undo)(struct op *op); /* NULL: nothing in the target to undo */
	bool commit;
};

/* The CPU time of the operation's thread when the operation began (prof_cpu). */
static __thread uint64_t op_cpu0;
static __thread bool op_prof_cpu;

/* The calling thread's CPU time (user and system), us. */
static uint64_t thread_cpu_us(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) < 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* The end of a step (or of what follows the steps) in op->prof. */
static void prof_mark(struct op *op, const char *name)
{
	if (op->prof.n_steps < APPLY_PROF_STEPS) {
		op->prof.steps[op->prof.n_steps].name = name;
		op->prof.steps[op->prof.n_steps].cpu_us = op_prof_cpu ? thread_cpu_us() - op_cpu0 : 0;
		op->prof.steps[op->prof.n_steps++].end_us = hp_now_us();
	}
}

static int run_steps(struct op *op, const struct step *steps, size_t n)
{
	size_t done = 0;
	bool committed = false;
	int r = 0;

	for (size_t i = 0; i < n && !op->finished; i++) {
		r = steps[i].run(op);
		prof_mark(op, steps[i].name);
		if (r == 0) {
			done = i + 1;
			committed |= steps[i].commit;
			r = test_point(steps[i].name);
		}
		if (r < 0)
			break;
	}
	if (r < 0 && committed) {
		hp_err_clear();
		return 0;
	}
	if (r < 0) {
		/* the reason we failed is what the caller sees, not an undo's */
		char why[HP_ERRMSG_MAX];

		snprintf(why, sizeof(why), "%s", hp_errmsg(r));
		while (done > 0) {
			done--;
			if (steps[done].undo)
				steps[done].undo(op);
		}
		hp_err(r, "%s", why);
	}
	return r;
}

/* attach: the sys thread held, the process read as it is now */
static int step_attach(struct op *op)
{
	return op_attach_scan(op);
}

static void undo_attach(struct op *op)
{
	ptr_resume(&op->w, false);
}

/*
 * Let every thread but the sys thread go (all: the sys thread too). A few
 * threads are let go while the calling thread still runs SCHED_FIFO: at
 * its own priority again on a loaded machine it waits for a CPU (a
 * scheduler's time slice, milliseconds) before it can let go of anyone,
 * and every thread held waits with it (bench-apply -p, the lean target
 * under load: a window of 2-3 ms where 0.2 ms is the rule). With many
 * threads the first ones let go would wait for a FIFO thread letting go of
 * the last (boost_begin): its priority drops first.
 */
#define LET_GO_FIFO_MAX 32

static void let_go(struct op *op, bool all)
{
	if (op->w.n <= LET_GO_FIFO_MAX) {
		ptr_resume(&op->w, !all);
		boost_end(&op->boost);
		return;
	}
	boost_end(&op->boost);
	ptr_resume(&op->w, !all);
}

/*
 * stop: every thread held and found safe. While unsafe: let every thread
 * go, the sys thread too (it may be the busy one), back off, stop again,
 * within the budget. On failure every thread but the sys thread is let go.
 */
static int step_stop(struct op *op)
{
	uint64_t t0 = hp_now_us(), deadline = t0 + (uint64_t)op->budget_ms * 1000;
	unsigned backoff = 1;
	int r;

	r = ptr_syscall_end(&op->w);
	if (r == 0)
		r = build_spans(op);
	if (r == 0)
		r = build_all_ranges(op);
	if (r == 0)
		r = checker_start(&op->k);
	if (r < 0)
		return r;
	for (;;) {
		r = ptr_stop_sys(&op->w);
		if (r == 0 && op->n_all)
			r = checker_begin(op->k, op->view, op->all, op->n_all, op->w.n_listed,
					  op->maps.n ? &op->maps : NULL, op->maps_fd);
		if (r < 0) {
			ptr_resume(&op->w, true);
			goto fail;
		}
		if (op->n_all) {
			op->w.on_stop = on_stop_check;
			op->w.on_stop_arg = op->k;
		}
		if (!op->prof.t_hold_us)
			op->prof.t_hold_us = hp_now_us();
		boost_begin(&op->boost);
		r = ptr_stop_all(&op->w);
		op->w.on_stop = NULL;
		op->w.on_stop_arg = NULL;
		if (r < 0)
			checker_drop(op->k);
		if (r == -EAGAIN) {
			/* a thread in state D held nobody while it was waited for,
			 * and has left it: stop again (ptr_stop_all bounds this) */
			boost_end(&op->boost);
			continue;
		}
		if (r < 0) {
			boost_end(&op->boost);
			goto fail;
		}
		op->n_tries++;
		r = check_unmap_and_required(op, op->n_all ? checker_finish(op->k) : 0);
		if (r == 0)
			r = check_entries(op);
		if (r != -EBUSY)
			break;
		if (hp_now_us() >= deadline) {
			let_go(op, false);
			r = hp_err_prefix(-EBUSY, "after %u ms (%u checks): ", op->budget_ms,
					  op->n_tries);
			goto fail;
		}
		let_go(op, true);
		sleep_ms(backoff);
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
		if (hp_now_us() + backoff * 1000ull > deadline && hp_now_us() < deadline)
			backoff = (unsigned)((deadline - hp_now_us()) / 1000) + 1;
	}
	/* and again with every thread stopped: what is switched is what was allowed */
	if (r == 0 && op->may_patch)
		r = op->may_patch(op->may_patch_arg, op->pid);
	if (r < 0) {
		let_go(op, false);
		goto fail;
	}
	op->held = true;
	return 0;
fail:
	checker_stop(op->k);
	op->k = NULL;
	return r;
}

static void undo_stop(struct op *op)
{
	let_go(op, false);
	op->held = false;
	checker_stop(op->k);
	op->k = NULL;
}

/* switch: every entry written, every thread still held; catchable signals
 * wait until the last one is written */
static int step_switch(struct op *op)
{
	sigset_t all, old;
	int r;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	r = write_jumps(op);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return r;
}

static void undo_switch(struct op *op)
{
	for (size_t i = op->n_spans; i > 0; i--)
		proc_mem_write(op->mem_fd, op->spans[i - 1].addr, op->spans[i - 1].old,
			       op->spans[i - 1].len);
}

/* resume (the commit): every thread but the sys thread runs the new code */
static int step_resume(struct op *op)
{
	let_go(op, false);
	/*
	 * The threads let go may be queued on this CPU behind us, and what
	 * follows (unmap, detach, the perf map: hundreds of microseconds) need
	 * not run before them: on a loaded machine a released thread waited
	 * for all of it (bench-apply -p: the heartbeat ran again 350-400 us
	 * after its release, 90 us after its stop began).
	 */
	sched_yield();
	op->held = false;
	checker_stop(op->k);
	op->k = NULL;
	op->pause_us = op->w.t_all_resumed - op->w.t_all_stopped_begin;
	op->prof.t_stop_us = op->w.t_all_stopped_begin;
	op->prof.t_resumed_us = op->w.t_all_resumed;
	return 0;
}

/* unmap: the old months and orphans found safe; the pause into each new
 * header (read-only to the program) */
static int step_unmap(struct op *op)
{
	int r = ptr_set_undo(&op->w, 0, 0, false);

	for (size_t i = 0; i < op->n_sets; i++) {
		struct op_set *ts = &op->sets[i];

		if (!ts->mapped)
			continue;
		ts->mapped = false; /* it is an applied region now */
		proc_mem_write(op->mem_fd, ts->base + offsetof(struct region_hdr, pause_us),
			       &op->pause_us, sizeof(op->pause_us));
	}
	if (r == 0)
		unmap_old(op);
	return r;
}

/* detach: the sys thread goes on too */
static int step_detach(struct op *op)
{
	return ptr_resume(&op->w, false);
}

/* ---- apply ---------------------------------------------------------------- */

/* An error of one set: named when the operation has several. */
static int set_err(const struct op *op, const struct op_set *ts, int r)
{
	return op->n_sets > 1 ? hp_err_prefix(r, "%s: ", ts->set_id) : r;
}

/* parse: every patch object, before the process is touched (chosen: after the choice) */
static int step_parse(struct op *op)
{
	int r;

	for (size_t s = 0; s < op->n_sets; s++) {
		struct op_set *ts = &op->sets[s];
		const struct hp_manifest *m = ts->m;

		for (size_t o = 0; o < s; o++)
			if (strcmp(op->sets[o].m->build_id, m->build_id) == 0)
				return hp_err(-EINVAL, "two sets for one target (%s)", m->build_id);
		r = load_parse(ts->set->so, ts->set->so_len, &ts->img);
		if (r < 0)
			return r;
		/* the unwind tables the target's unwinder will be given, if it has one */
		ts->eh_r = unwind_eh_frame(ts->set->so, ts->set->so_len, &ts->img, &ts->eh_vaddr);
		if (ts->eh_r == -ENOENT)
			snprintf(ts->eh_why, sizeof(ts->eh_why),
				 "patch object: no unwind tables (.eh_frame): C++ exceptions and "
				 "backtraces through it would fail in this process, which has "
				 "libgcc's unwinder");
		else if (ts->eh_r < 0)
			snprintf(ts->eh_why, sizeof(ts->eh_why), "%s", hp_errmsg(ts->eh_r));
		if (ts->eh_r == -ENOENT)
			ts->eh_r = -ENOEXEC;
		hp_err_clear();
		ts->new_vaddr = calloc(m->n_funcs, sizeof(*ts->new_vaddr));
		ts->new_size = calloc(m->n_funcs, sizeof(*ts->new_size));
		if (!ts->new_vaddr || !ts->new_size)
			return -ENOMEM;
		for (size_t i = 0; i < m->n_funcs; i++) {
			r = load_func(ts->set->so, ts->set->so_len, m->funcs[i].name,
				      &ts->new_vaddr[i], &ts->new_size[i]);
			if (r < 0)
				return r;
			if (ts->new_vaddr[i] >= ts->img.size)
				return hp_err(-ENOEXEC, "patch object: function %s outside the image",
					      m->funcs[i].name);
		}
	}
	return 0;
}

/*
 * choose (apply_patch_choose): the process read (not stopped yet: nothing
 * chosen, nothing stopped), the caller picks the sets from what was read,
 * and they are checked and parsed as the sets given up front are. None:
 * the process is left as it was, never stopped. The attach then holds the
 * sys thread, checks that what was read is still the process's image and
 * asks the caller's right again.
 */
static int step_choose(struct op *op)
{
	struct apply_proc p;
	size_t cap;
	int n, r;

	if (!op->choose)
		return 0;
	r = op_read_proc(op, &p);
	cap = p.n_objects ? p.n_objects : 1;
	op->chosen = r == 0 ? calloc(cap, sizeof(*op->chosen)) : NULL;
	if (r == 0 && !op->chosen)
		r = -ENOMEM;
	n = r < 0 ? r : op->choose(op->choose_arg, &p, op->chosen, cap);
	proc_clear(&p);
	if (n < 0) {
		op->choose_failed = r == 0;
		return n;
	}
	if ((size_t)n > cap || n > APPLY_MAX_SETS)
		return hp_err(-EINVAL, "%d sets chosen (0 to %d)", n, APPLY_MAX_SETS);
	if (n == 0) {
		op->finished = true;
		return 0;
	}
	op->sets = calloc((size_t)n, sizeof(*op->sets));
	if (!op->sets)
		return -ENOMEM;
	op->n_sets = (size_t)n;
	for (size_t i = 0; i < op->n_sets; i++) {
		op->sets[i].set = &op->chosen[i];
		op->sets[i].m = op->chosen[i].manifest;
		r = check_set(&op->chosen[i], op->sets[i].set_id, sizeof(op->sets[i].set_id));
		if (r < 0)
			return r;
	}
	return step_parse(op);
}

/* Find the set's target and the month it replaces; orphans to unmap. */
static int find_target(struct op *op, struct op_set *ts)
{
	const struct hp_manifest *m = ts->m;
	int r;

	ts->target = proc_objects_find(&op->objs, m->build_id);
	if (!ts->target)
		return hp_err(-ENOEXEC, "process %d does not map %s with build-id %s", (int)op->pid,
			      m->target ? m->target : "the target", m->build_id);
	for (size_t i = 0; i < op->regions.n; i++) {
		const struct region *rg = &op->regions.v[i];

		if (strcmp(rg->hdr.build_id, m->build_id) != 0)
			continue;
		if (rg->n_jumped && !ts->old)
			ts->old = rg;
		else if (rg->n_jumped)
			return hp_err(-ENOTRECOVERABLE, "process %d: two regions applied to %s",
				      (int)op->pid, m->build_id);
		else if ((r = add_unmap(op, i)) < 0)
			return r;
	}
	ts->unchanged = ts->old && strcmp(ts->old->hdr.set_id, ts->set_id) == 0 &&
			ts->old->n_jumped == ts->old->hdr.n_funcs;
	if (ts->old && !ts->unchanged)
		return add_unmap(op, (size_t)(ts->old - op->regions.v));
	return 0;
}

/* Every entry of the set: inside the target's code, its bytes what we expect. */
static int check_entries_of(struct op *op, struct op_set *ts)
{
	const struct hp_manifest *m = ts->m;
	const struct proc_object *target = ts->target;
	int r;

	ts->lo = UINT64_MAX;
	ts->hi = 0;
	free(ts->entry);
	ts->entry = calloc(m->n_funcs ? m->n_funcs : 1, sizeof(*ts->entry));
	if (!ts->entry)
		return -ENOMEM;
	for (size_t i = 0; i < m->n_funcs; i++) {
		const struct hp_manifest_func *f = &m->funcs[i];
		uint64_t addr = target->bias + f->offset;
		uint8_t cur[ARCH_JUMP_LEN];
		const struct region_func *of;
		const struct region *jr;
		unsigned char type;
		uint64_t dsym, dsize;

		if (f->size < ARCH_JUMP_LEN)
			return hp_err(-ENOEXEC, "function %s: size %" PRIu64 " is too small for a jump",
				      f->name, f->size);
		if (!in_object_text(op, target, addr, f->size))
			return hp_err(-ENOEXEC,
				      "function %s at offset 0x%" PRIx64 " size 0x%" PRIx64
				      " is outside the code of %s",
				      f->name, f->offset, f->size, target->path);
		/* an exported function: its dynamic symbol must agree */
		if (!f->file &&
		    proc_object_dynsym(op->mem_fd, target, f->name, &dsym, &type, &dsize) == 0 &&
		    type == STT_FUNC && (dsym != addr || dsize != f->size))
			return hp_err(-ENOEXEC,
				      "function %s: offset 0x%" PRIx64 " size 0x%" PRIx64
				      " disagree with %s (0x%" PRIx64 " size 0x%" PRIx64 ")",
				      f->name, f->offset, f->size, target->path, dsym - target->bias,
				      dsize);
		if (f->flags & HP_FUNC_ACTIVE_OK) {
			r = check_active_ok(op, f, addr);
			if (r < 0)
				return r;
		}
		r = proc_mem_read(op->mem_fd, addr, cur, sizeof(cur));
		if (r < 0)
			return r;
		memcpy(ts->entry[i], cur, sizeof(cur));
		if (addr < ts->lo)
			ts->lo = addr;
		if (addr > ts->hi)
			ts->hi = addr;
		of = region_func_at(ts->old, addr);
		jr = jumped_region(op, addr, cur);
		if (jr && jr != ts->old)
			return hp_err(-ENOEXEC, "function %s is patched by another set (%s)", f->name,
				      jr->hdr.set_id);
		if (of && !jr && memcmp(cur, of->saved, ARCH_JUMP_LEN) != 0)
			return hp_err(-ENOEXEC, "function %s: unexpected bytes at its entry", f->name);
	}
	return 0;
}

/* check: every set fits the process; sets already applied drop out */
static int step_check(struct op *op)
{
	int r;

	/* the process's unwinder: libgcc_s (given each region's tables), none, or
	 * one the engine does not know (refused: it would not find them) */
	r = unwinder_find(op->mem_fd, op->pid, op->start_time, &op->maps, &op->objs, &op->unw);
	if (r < 0)
		return r;
	for (size_t s = 0; s < op->n_sets; s++) {
		struct op_set *ts = &op->sets[s];

		if (op->unw.lib && ts->eh_r < 0)
			return hp_err(ts->eh_r, "%s: %s", ts->set_id, ts->eh_why);
		r = find_target(op, ts);
		if (r < 0)
			return set_err(op, ts, r);
		if (ts->unchanged)
			continue;
		r = check_entries_of(op, ts);
		if (r < 0)
			return set_err(op, ts, r);
		op->n_changed++;
	}
	/* this exact set, or every one of them, is applied: nothing to do */
	if (!op->n_changed)
		op->finished = true;
	return 0;
}

/*
 * The header of the set's region, and the writes of its switch: each entry
 * jumps into the region; entries of the month it replaces that the set no
 * longer patches get their original bytes back.
 */
static int plan_set(struct op *op, struct op_set *ts)
{
	const struct hp_manifest *m = ts->m;
	const struct region *old = ts->old;
	struct region_hdr *hdr;
	struct region_func *rf;
	int r;

	hdr = ts->hdr = calloc(1, ts->hdr_bytes);
	if (!hdr)
		return -ENOMEM;
	memcpy(hdr->magic, REGION_MAGIC, 8);
	hdr->version = REGION_VERSION;
	hdr->hdr_size = (uint32_t)ts->hdr_bytes;
	hdr->region_size = ts->size;
	hdr->text_start = ts->base + ts->img_off;
	hdr->text_end = ts->base + ts->img_off + ts->img.size;
	hdr->applied_at = (int64_t)time(NULL);
	hdr->n_funcs = (uint32_t)m->n_funcs;
	hdr->jump_len = ARCH_JUMP_LEN;
	snprintf(hdr->build_id, sizeof(hdr->build_id), "%s", m->build_id);
	snprintf(hdr->set_id, sizeof(hdr->set_id), "%s", ts->set_id);
	snprintf(hdr->month, sizeof(hdr->month), "%s", m->month);
	rf = (struct region_func *)(hdr + 1);
	for (size_t i = 0; i < m->n_funcs; i++) {
		const struct hp_manifest_func *f = &m->funcs[i];
		const struct region_func *of;
		struct jump_write *j;
		uint8_t cur[ARCH_JUMP_LEN];

		rf[i].addr = ts->target->bias + f->offset;
		rf[i].size = f->size;
		rf[i].new_addr = ts->base + ts->img_off + ts->new_vaddr[i];
		rf[i].new_size = ts->new_size[i];
		/* an active-ok function's running activations stay on the old code */
		rf[i].flags = f->flags | (f->flags & HP_FUNC_ACTIVE_OK ? REGION_FUNC_OLD_LIVE : 0);
		snprintf(rf[i].name, sizeof(rf[i].name), "%s", f->name);
		/* as the check read them (build_spans reads them again before the stop) */
		memcpy(cur, ts->entry[i], sizeof(cur));
		of = region_func_at(old, rf[i].addr);
		/* the original bytes: from the old header when the entry is already ours */
		memcpy(rf[i].saved, of ? of->saved : cur, ARCH_JUMP_LEN);
		j = add_write(op);
		if (!j)
			return -ENOMEM;
		j->addr = rf[i].addr;
		j->len = ARCH_JUMP_LEN;
		j->name = f->name;
		memcpy(j->expect, cur, ARCH_JUMP_LEN);
		if (arch_jump_encode(j->addr, rf[i].new_addr, j->bytes) < 0)
			return hp_err(-ENOEXEC, "function %s: replacement out of jump reach", f->name);
		if (!(f->flags & HP_FUNC_ACTIVE_OK)) {
			r = add_range(op, rf[i].addr, rf[i].addr + f->size, f->name);
			if (r == 0 && of && !(of->flags & HP_FUNC_ACTIVE_OK))
				r = add_range(op, of->new_addr, of->new_addr + of->new_size, f->name);
			if (r < 0)
				return r;
		}
	}
	/* functions of the old month no longer in the set return to the original */
	for (uint32_t i = 0; old && i < old->hdr.n_funcs; i++) {
		const struct region_func *of = &old->funcs[i];
		struct jump_write *j;
		bool kept = false;

		for (size_t k = 0; k < m->n_funcs && !kept; k++)
			kept = rf[k].addr == of->addr;
		if (kept)
			continue;
		j = add_write(op);
		if (!j)
			return -ENOMEM;
		j->addr = of->addr;
		j->len = ARCH_JUMP_LEN;
		j->name = of->name;
		memcpy(j->bytes, of->saved, ARCH_JUMP_LEN);
		r = proc_mem_read(op->mem_fd, of->addr, j->expect, ARCH_JUMP_LEN);
		if (r < 0)
			return r;
		if (!(of->flags & HP_FUNC_ACTIVE_OK)) {
			r = add_range(op, of->new_addr, of->new_addr + of->new_size, of->name);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/*
 * map: one region per set to switch (header pages, then the image at its
 * alignment) within jump reach of its entries, and the switch planned. A
 * dying engine's trampoline unmaps the newest region until the switch; one
 * mapped before it is left an orphan (no jump reaches it), which the next
 * operation on that target unmaps.
 */
static void undo_map(struct op *op);

static int step_map(struct op *op)
{
	size_t n_mapped = 0;
	int r = 0;

	for (size_t s = 0; s < op->n_sets && r == 0; s++) {
		struct op_set *ts = &op->sets[s];

		if (ts->unchanged)
			continue;
		if (n_mapped == 1)
			r = test_point("between-maps");
		if (r < 0)
			break;
		ts->hdr_bytes = region_hdr_bytes(ts->m->n_funcs);
		ts->img_off = (ts->hdr_bytes + PAGE - 1) & ~(PAGE - 1);
		ts->img_off = (ts->img_off + ts->img.max_align - 1) & ~((uint64_t)ts->img.max_align - 1);
		r = map_region(op, ts,
			       ts->img_off + ts->img.size + (op->unw.lib ? UNWIND_AREA_SIZE : 0),
			       ts->img.max_align);
		if (r == 0)
			n_mapped++;
		if (r == 0)
			r = plan_set(op, ts);
		/* the header at once: a region an engine killed from here on leaves
		 * (the trampoline unmaps only the newest) is an orphan the next
		 * operation on that target finds by it and unmaps */
		if (r == 0)
			r = proc_mem_write(op->mem_fd, ts->base, ts->hdr, ts->hdr_bytes);
		if (r < 0)
			r = set_err(op, ts, r);
	}
	if (r < 0)
		undo_map(op);
	return r;
}

static void undo_map(struct op *op)
{
	for (size_t s = 0; s < op->n_sets; s++) {
		struct op_set *ts = &op->sets[s];

		if (ts->mapped)
			remote_munmap(op, ts->base, ts->size);
		ts->mapped = false;
		ts->area = 0;
	}
}

/*
 * relocate: each region's image relocated for its address, its final
 * protections given, then the image written (after its header, written by
 * map). Protections first: the image's pages are not there yet, so the
 * mprotect changes no page table entry, and the other CPUs running the
 * process's threads need no TLB flush (32 us less per apply on the lean
 * target, whose heartbeat runs on the other CPU); written after, the pages
 * come in with their final protections. Nothing reaches a region before
 * the switch. Undone with the map.
 */
static int step_relocate(struct op *op)
{
	int r = 0;

	for (size_t s = 0; s < op->n_sets && r == 0; s++) {
		struct op_set *ts = &op->sets[s];
		struct load_ctx lctx = { op->mem_fd, &op->objs, ts->target, ts->m };

		if (ts->unchanged)
			continue;
		r = load_relocate(&ts->img, ts->set->so, ts->set->so_len, ts->base + ts->img_off,
				  &lctx);
		if (r == 0)
			r = protect_region(op, ts);
		if (r == 0)
			r = proc_mem_write(op->mem_fd, ts->base + ts->img_off, ts->img.bytes,
					   ts->img.size);
		if (r == 0 && op->unw.lib) {
			/* the unwind area, after the image: what register will pass */
			struct unwind_area a = { .magic = UNWIND_MAGIC };

			ts->area = ts->base + ts->img_off + ts->img.size;
			a.eh_frame = ts->base + ts->img_off + ts->eh_vaddr;
			a.unwinder = op->unw.lib->bias;
			r = proc_mem_write(op->mem_fd, ts->area, &a, sizeof(a));
		}
		if (r < 0)
			r = set_err(op, ts, r);
	}
	return r;
}

/*
 * register: each region's unwind tables given to the target's unwinder
 * (libgcc_s's __register_frame_info, called in the target by a thread
 * found outside the unwinder's lock and the allocator: unwind.c) before
 * any jump can reach the region. From here a killed engine's trampoline
 * must not unmap a region: a later operation deregisters it first.
 */
static void undo_register(struct op *op);

static int step_register(struct op *op)
{
	int r = 0;

	for (size_t s = 0; s < op->n_sets && r == 0 && op->unw.lib; s++) {
		struct op_set *ts = &op->sets[s];

		if (!ts->area)
			continue;
		ts->registered = true;
		r = unwind_register(&op->w, &op->unw, op->view, op->budget_ms, ts->area,
				    ts->base + ts->img_off + ts->eh_vaddr);
		if (r == 0)
			r = ptr_set_undo(&op->w, 0, 0, false);
		if (r < 0)
			r = hp_err_prefix(r, "%s: ", ts->set_id);
	}
	if (r < 0)
		undo_register(op);
	return r;
}

/* A region whose tables cannot be taken back stays mapped (an orphan). */
static void undo_register(struct op *op)
{
	for (size_t s = op->n_sets; s > 0; s--) {
		struct op_set *ts = &op->sets[s - 1];
		struct region nr = { .addr = ts->base };

		if (!ts->registered || !ts->hdr)
			continue;
		nr.hdr = *ts->hdr;
		if (unwind_deregister(&op->w, &op->unw, op->view, op->budget_ms, &nr) < 0)
			ts->mapped = false;
		ts->registered = false;
	}
}

static const struct step apply_steps[] = {
	{ "parse", step_parse, NULL, false },
	{ "choose", step_choose, NULL, false },
	{ "attach", step_attach, undo_attach, false },
	{ "check", step_check, NULL, false },
	{ "map", step_map, undo_map, false },
	{ "relocate", step_relocate, NULL, false },
	{ "register", step_register, undo_register, false },
	{ "stop", step_stop, undo_stop, false },
	{ "switch", step_switch, undo_switch, false },
	{ "resume", step_resume, NULL, true },
	{ "unmap", step_unmap, NULL, false },
	{ "detach", step_detach, NULL, false },
};

static int patch_op(pid_t pid, const struct apply_set *sets, size_t n_sets, apply_choose_fn choose,
		    void *choose_arg, const struct apply_opts *opts, struct apply_result *ret)
{
	struct op op;
	bool locked = false;
	int r;

	if (!choose && (!n_sets || n_sets > APPLY_MAX_SETS))
		return hp_err(-EINVAL, "apply %d: %zu sets (1 to %d)", (int)pid, n_sets,
			      APPLY_MAX_SETS);
	pid_lock(pid);
	locked = true;
	r = op_open(&op, pid, true);
	if (r < 0)
		goto out;
	op_set_opts(&op, opts);
	op.choose = choose;
	op.choose_arg = choose_arg;
	op.sets = choose ? NULL : calloc(n_sets, sizeof(*op.sets));
	if (!choose && !op.sets) {
		r = -ENOMEM;
		goto out;
	}
	op.n_sets = choose ? 0 : n_sets;
	for (size_t i = 0; i < op.n_sets; i++) {
		op.sets[i].set = &sets[i];
		op.sets[i].m = sets[i].manifest;
		r = check_set(&sets[i], op.sets[i].set_id, sizeof(op.sets[i].set_id));
		if (r < 0)
			goto out;
	}
	r = run_steps(&op, apply_steps, sizeof(apply_steps) / sizeof(apply_steps[0]));
	if (r == 0)
		fill_result(&op, ret, op.n_changed > 0,
			    op.n_sets ? op.sets[op.n_sets - 1].set_id : NULL);
	if (r == 0 && op.n_changed) {
		perfmap_defer(&op); /* it unlocks the process */
		locked = false;
	}
out:
	if (r < 0 && !op.choose_failed)
		hp_err_prefix(r, "apply %d: ", (int)pid);
	op_release(&op);
	if (locked)
		pid_unlock(pid);
	return r;
}

/* ---- revert --------------------------------------------------------------- */

/* check (revert): the entries of every applied region (of build_id) go back */
static int step_check_revert(struct op *op)
{
	int r;

	/* to deregister what was registered; an unknown unwinder had none */
	if (unwinder_find(op->mem_fd, op->pid, op->start_time, &op->maps, &op->objs, &op->unw) < 0)
		hp_err_clear();

	for (size_t i = 0; i < op->regions.n; i++) {
		const struct region *rg = &op->regions.v[i];

		if (op->build_id && strcmp(rg->hdr.build_id, op->build_id) != 0)
			continue;
		r = add_unmap(op, i);
		if (r < 0)
			return r;
		if (!rg->n_jumped)
			continue;
		op->n_applied++;
		for (uint32_t k = 0; k < rg->hdr.n_funcs; k++) {
			const struct region_func *f = &rg->funcs[k];
			uint8_t cur[ARCH_JUMP_LEN];
			uint64_t to;
			struct jump_write *j;

			r = proc_mem_read(op->mem_fd, f->addr, cur, sizeof(cur));
			if (r < 0)
				return r;
			if (memcmp(cur, f->saved, ARCH_JUMP_LEN) == 0)
				continue; /* not switched (a half state): nothing to restore */
			if (!arch_jump_decode(f->addr, cur, &to) || to != f->new_addr)
				return hp_err(-ENOEXEC, "function %s: entry changed since the patch",
					      f->name);
			j = add_write(op);
			if (!j)
				return -ENOMEM;
			j->addr = f->addr;
			j->len = ARCH_JUMP_LEN;
			j->name = f->name;
			memcpy(j->bytes, f->saved, ARCH_JUMP_LEN);
			memcpy(j->expect, cur, ARCH_JUMP_LEN);
			if (!(f->flags & HP_FUNC_ACTIVE_OK)) {
				r = add_range(op, f->new_addr, f->new_addr + f->new_size, f->name);
				if (r < 0)
					return r;
			}
		}
	}
	if (!op->n_applied)
		return op->build_id ? hp_err(-ENOENT, "nothing applied for build-id %s", op->build_id)
				    : hp_err(-ENOENT, "nothing applied");
	return 0;
}

/*
 * read (apply_revert_look): the process read before any stop and shown
 * to the caller, who may end the revert there (nothing applied, say)
 * with the process never stopped; attach then checks the image read is
 * still the process's.
 */
static int step_read_revert(struct op *op)
{
	struct apply_proc p;
	int r;

	if (!op->look)
		return 0;
	r = op_read_proc(op, &p);
	if (r == 0) {
		r = op->look(op->look_arg, &p);
		op->choose_failed = r < 0;
	}
	proc_clear(&p);
	return r;
}

static const struct step revert_steps[] = {
	{ "read", step_read_revert, NULL, false },
	{ "attach", step_attach, undo_attach, false },
	{ "check", step_check_revert, NULL, false },
	{ "stop", step_stop, undo_stop, false },
	{ "switch", step_switch, undo_switch, false },
	{ "resume", step_resume, NULL, true },
	{ "unmap", step_unmap, NULL, false },
	{ "detach", step_detach, NULL, false },
};

static int revert_op(pid_t pid, const char *build_id, apply_look_fn look, void *look_arg,
		     const struct apply_opts *opts, struct apply_result *ret)
{
	struct op op;
	int r;

	if (build_id && !hp_valid_build_id(build_id))
		return hp_err(-EINVAL, "revert %d: bad build-id '%s'", (int)pid, build_id);
	pid_lock(pid);
	r = op_open(&op, pid, true);
	if (r < 0)
		goto out;
	op_set_opts(&op, opts);
	op.build_id = build_id;
	op.look = look;
	op.look_arg = look_arg;
	r = run_steps(&op, revert_steps, sizeof(revert_steps) / sizeof(revert_steps[0]));
	if (r == 0) {
		fill_result(&op, ret, true, "");
		perfmap_defer(&op); /* it unlocks the process */
	}
out:
	if (r < 0 && !op.choose_failed)
		hp_err_prefix(r, "revert %d: ", (int)pid);
	op_release(&op);
	if (r < 0)
		pid_unlock(pid);
	return r;
}

/* ---- settle: active-ok functions still running their old code ------------ */

/* check (settle): the functions of applied regions marked old-live */
static int step_check_settle(struct op *op)
{
	for (size_t i = 0; i < op->regions.n; i++) {
		const struct region *rg = &op->regions.v[i];

		if (!rg->n_jumped)
			continue;
		for (uint32_t k = 0; k < rg->hdr.n_funcs; k++) {
			struct live_fn *v;

			if (!(rg->funcs[k].flags & REGION_FUNC_OLD_LIVE))
				continue;
			v = realloc(op->live, (op->n_live + 1) * sizeof(*v));
			if (!v)
				return -ENOMEM;
			op->live = v;
			op->live[op->n_live++] = (struct live_fn){ rg, k, false };
		}
	}
	if (!op->n_live)
		op->finished = true;
	return 0;
}

/*
 * look: which held thread runs the old code of each marked function: its
 * original body past the entry (or a return address into it), or any
 * orphan region of its target (an older month a thread was still in when
 * it was replaced). Once out, a thread cannot go back: every call takes the
 * jump; so a function found free here is free for good.
 */
static int step_look(struct op *op)
{
	for (size_t i = 0; i < op->n_live; i++) {
		struct live_fn *lf = &op->live[i];
		const struct region_func *f = &lf->rg->funcs[lf->idx];
		struct safety_range *ranges;
		struct safety_session *ss = NULL;
		size_t n = 0;
		int r;

		ranges = calloc(op->regions.n + 1, sizeof(*ranges));
		if (!ranges)
			return -ENOMEM;
		ranges[n++] = (struct safety_range){ f->addr + ARCH_JUMP_LEN, f->addr + f->size, f->name };
		for (size_t k = 0; k < op->regions.n; k++) {
			const struct region *o = &op->regions.v[k];

			if (!o->n_jumped && strcmp(o->hdr.build_id, lf->rg->hdr.build_id) == 0)
				ranges[n++] = (struct safety_range){ o->addr, o->addr + o->hdr.region_size,
								     f->name };
		}
		r = safety_begin(op->view, ranges, n, false, &ss);
		for (size_t t = 0; r == 0 && t < op->w.n; t++) {
			r = safety_thread(ss, op->w.t[t].tid, op->w.t[t].regs);
			if (r == -EBUSY) {
				hp_buf_addf(&op->busy_msg, "%sfunction %s in thread %d",
					    op->busy_msg.len ? ", " : "", f->name, (int)op->w.t[t].tid);
				lf->busy = true;
				r = 0;
			}
		}
		safety_end(ss);
		free(ranges);
		if (r < 0)
			return r;
		op->n_busy_fns += lf->busy;
	}
	hp_err_clear();
	return 0;
}

/* mark: the functions no thread runs the old code of lose their mark */
static int step_mark(struct op *op)
{
	for (size_t i = 0; i < op->n_live; i++) {
		const struct live_fn *lf = &op->live[i];
		uint32_t flags = lf->rg->funcs[lf->idx].flags & ~REGION_FUNC_OLD_LIVE;
		uint64_t at = lf->rg->addr + sizeof(struct region_hdr) +
			      lf->idx * sizeof(struct region_func) + offsetof(struct region_func, flags);

		if (!lf->busy)
			proc_mem_write(op->mem_fd, at, &flags, sizeof(flags));
	}
	return 0;
}

static const struct step settle_steps[] = {
	{ "attach", step_attach, undo_attach, false },
	{ "check", step_check_settle, NULL, false },
	{ "stop", step_stop, undo_stop, false },
	{ "look", step_look, NULL, false },
	{ "resume", step_resume, NULL, false },
	{ "mark", step_mark, NULL, false },
	{ "detach", step_detach, NULL, false },
};

static int settle_op(pid_t pid, const struct apply_opts *opts, char *ret_msg, size_t cap)
{
	struct op op;
	int r;

	pid_lock(pid);
	r = op_open(&op, pid, true);
	if (r < 0)
		goto out;
	op_set_opts(&op, opts);
	r = run_steps(&op, settle_steps, sizeof(settle_steps) / sizeof(settle_steps[0]));
	if (r == 0) {
		snprintf(ret_msg, cap, "%s", op.busy_msg.len ? op.busy_msg.data : "");
		r = (int)op.n_busy_fns;
	}
out:
	if (r < 0)
		hp_err_prefix(r, "settle %d: ", (int)pid);
	op_release(&op);
	pid_unlock(pid);
	return r;
}

/* ---- each operation in a thread of its own ---------------------------------- */

/*
 * A thread in uninterruptible sleep (vfork, a hung NFS read) does not stop
 * when interrupted, and the kernel refuses to detach a tracee before its
 * stop: it stays seized by the thread that seized it, and would stop, and
 * stay stopped, whenever it wakes. Only the tracer's exit lets go of it
 * (the kernel unlinks a dead thread's tracees and drops their pending
 * interrupt). So each operation runs in a thread of its own, which ends
 * with it (joined before the call returns) when the operation failed or
 * left a thread seized (ptr_left_traced): then the process is left exactly
 * as it was.
 *
 * A thread whose operation succeeded holds nobody (every thread it seized
 * was let go) and waits, idle, for the next operation instead of ending:
 * making and ending a thread per operation (its stack and heap faulted in
 * again, its wait timer made again, the ending's TLB shootdown) cost about
 * a fifth of an apply's CPU time (docs/engine.md). At most OP_IDLE_MAX wait;
 * more end.
 */
#define OP_IDLE_MAX 16

/*
 * The hand-offs are semaphores, one posted per direction: a job to the
 * worker (wake), its end to the caller (op_call.done). With a condition
 * variable signalled under pool_lock, the thread woken found the lock
 * still held and slept again on it until the signaller's next unlock: two
 * wake-ups and five futex calls for each hand-off where one of each does.
 */
struct op_worker {
	pthread_t th;
	sem_t wake;              /* a job in job */
	struct op_call *job;
	struct op_worker *next;  /* the idle list, under pool_lock */
};

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct op_worker *pool_idle;
static size_t pool_n_idle;
static size_t pool_n_deferred;  /* threads writing a perf map after their answer */
static pthread_cond_t pool_drained = PTHREAD_COND_INITIALIZER;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

/* A forked child has none of its parent's threads: no idle one to wake. */
static void pool_forget(void)
{
	pthread_mutex_init(&pool_lock, NULL);
	pthread_cond_init(&pool_drained, NULL);
	pool_idle = NULL;
	pool_n_idle = 0;
	pool_n_deferred = 0;
	ptr_own_code_forget();
	unwind_facts_forget();
}

/* At exit: the perf maps being written are finished, not cut short. */
static void pool_drain(void)
{
	pthread_mutex_lock(&pool_lock);
	while (pool_n_deferred)
		pthread_cond_wait(&pool_drained, &pool_lock);
	pthread_mutex_unlock(&pool_lock);
}

static void pool_init(void)
{
	pthread_atfork(NULL, NULL, pool_forget);
	atexit(pool_drain);
}

struct op_call {
	sem_t done;               /* posted by the worker when it is done with this call */
	bool ending;              /* and the worker ends after it: join it */
	pid_t pid;
	bool revert, settle;
	char *msg_out;
	size_t msg_cap;
	const struct apply_set *sets;
	size_t n_sets;
	apply_choose_fn choose;
	void *choose_arg;
	apply_look_fn look;
	void *look_arg;
	const char *build_id;
	const struct apply_opts *opts;
	struct apply_result *ret;
	int r;
	char msg[HP_ERRMSG_MAX];
};

static void op_thread(struct op_call *c)
{
	uint64_t t0 = hp_now_us();
	struct rusage ru0, ru1;
	struct ptr_counts n;

	hp_err_clear();
	ptr_counts_reset();
	op_prof_cpu = c->opts && c->opts->prof_cpu;
	op_cpu0 = op_prof_cpu ? thread_cpu_us() : 0;
	if (op_prof_cpu)
		getrusage(RUSAGE_THREAD, &ru0);
	if (c->settle)
		c->r = settle_op(c->pid, c->opts, c->msg_out, c->msg_cap);
	else if (c->revert)
		c->r = revert_op(c->pid, c->build_id, c->look, c->look_arg, c->opts, c->ret);
	else
		c->r = patch_op(c->pid, c->sets, c->n_sets, c->choose, c->choose_arg, c->opts,
				c->ret);
	if (c->r < 0)
		snprintf(c->msg, sizeof(c->msg), "%s", hp_errmsg(c->r));
	if (c->r >= 0 && c->ret) {
		n = ptr_counts_get();
		c->ret->prof.t_begin_us = t0;
		c->ret->prof.t_end_us = hp_now_us();
		c->ret->prof.n_waits = n.n_waits;
		c->ret->prof.n_slept = n.n_slept;
		c->ret->prof.n_remote = n.n_remote;
		if (op_prof_cpu) {
			getrusage(RUSAGE_THREAD, &ru1);
			c->ret->prof.cpu_end_us = thread_cpu_us() - op_cpu0;
			c->ret->prof.n_vcsw = ru1.ru_nvcsw - ru0.ru_nvcsw;
			c->ret->prof.n_ivcsw = ru1.ru_nivcsw - ru0.ru_nivcsw;
		}
	}
}

/*
 * Descriptors an operation is done with, closed once the caller has its
 * answer (op_close_late): in a pool worker only, else at once.
 */
#define LATE_FDS_MAX 8
static __thread int late_fds[LATE_FDS_MAX];
static __thread size_t n_late_fds;
static __thread bool late_fds_on;

void op_close_late(int fd)
{
	if (late_fds_on && n_late_fds < LATE_FDS_MAX)
		late_fds[n_late_fds++] = fd;
	else
		close(fd);
}

static void late_fds_close(void)
{
	while (n_late_fds)
		close(late_fds[--n_late_fds]);
}

static void *op_worker_main(void *arg)
{
	struct op_worker *wk = arg;
	bool keep, ending;

	late_fds_on = true;
	for (;;) {
		struct op_call *c;
		bool deferred;

		while (sem_wait(&wk->wake) < 0)
			;
		c = wk->job;
		op_thread(c);
		keep = c->r >= 0 && !ptr_left_traced();
		deferred = perfmap_job.on;
		pthread_mutex_lock(&pool_lock);
		/* decided now: the caller joins a thread that ends */
		ending = !keep || pool_n_idle + pool_n_deferred >= OP_IDLE_MAX;
		pool_n_deferred += deferred;
		pthread_mutex_unlock(&pool_lock);
		c->ending = ending;
		/* c is the caller's, gone once posted: not touched after this */
		sem_post(&c->done);
		/* what the answer need not wait for: the wait timer disarmed,
		 * the operation's descriptors closed */
		ptr_alarm_off();
		late_fds_close();
		if (deferred) {
			/*
			 * The caller has its answer: the perf map now, once the
			 * caller has run. Woken onto this CPU (the other one busy
			 * with the threads let go), it would wait for the map
			 * first (bench-apply -p: 203 us from the operation's end
			 * to the caller's return, against 13 without the map).
			 */
			sched_yield();
			perfmap_run();
			pthread_mutex_lock(&pool_lock);
			pool_n_deferred--;
			pthread_cond_broadcast(&pool_drained);
			pthread_mutex_unlock(&pool_lock);
		}
		if (ending)
			break;
		pthread_mutex_lock(&pool_lock);
		wk->next = pool_idle;
		pool_idle = wk;
		pool_n_idle++;
		pthread_mutex_unlock(&pool_lock);
	}
	return NULL;
}

static int op_run(struct op_call *c, const char *what)
{
	struct op_worker *wk;
	int e;

	pthread_once(&pool_once, pool_init);
	pthread_mutex_lock(&pool_lock);
	wk = pool_idle;
	if (wk) {
		pool_idle = wk->next;
		pool_n_idle--;
	}
	pthread_mutex_unlock(&pool_lock);
	if (!wk) {
		wk = calloc(1, sizeof(*wk));
		if (!wk)
			return hp_err(-ENOMEM, "%s %d: out of memory", what, (int)c->pid);
		sem_init(&wk->wake, 0, 0);
		e = pthread_create(&wk->th, NULL, op_worker_main, wk);
		if (e) {
			sem_destroy(&wk->wake);
			free(wk);
			return hp_err(-e, "%s %d: start a thread: %s", what, (int)c->pid,
				      strerror(e));
		}
	}
	sem_init(&c->done, 0, 0);
	wk->job = c;
	sem_post(&wk->wake);
	while (sem_wait(&c->done) < 0)
		;
	sem_destroy(&c->done);
	/* the call's, not the worker's: an idle worker may be another caller's already */
	if (c->ending) {
		/* whatever it held is let go by its end, before we return */
		pthread_join(wk->th, NULL);
		sem_destroy(&wk->wake);
		free(wk);
	}
	if (c->r < 0)
		return hp_err(c->r, "%s", c->msg);
	return c->r;
}

int apply_patch(pid_t pid, const struct apply_set *set, const struct apply_opts *opts,
		struct apply_result *ret)
{
	return apply_patch_sets(pid, set, 1, opts, ret);
}

int apply_patch_sets(pid_t pid, const struct apply_set *sets, size_t n_sets,
		     const struct apply_opts *opts, struct apply_result *ret)
{
	struct op_call c = { .pid = pid, .sets = sets, .n_sets = n_sets, .opts = opts, .ret = ret };

	return op_run(&c, "apply");
}

int apply_patch_choose(pid_t pid, apply_choose_fn choose, void *arg,
		       const struct apply_opts *opts, struct apply_result *ret)
{
	struct op_call c = { .pid = pid, .choose = choose, .choose_arg = arg, .opts = opts,
			     .ret = ret };

	if (!choose)
		return hp_err(-EINVAL, "apply %d: no chooser", (int)pid);
	return op_run(&c, "apply");
}

int apply_revert(pid_t pid, const char *build_id, const struct apply_opts *opts,
		 struct apply_result *ret)
{
	struct op_call c = { .revert = true, .pid = pid, .build_id = build_id, .opts = opts,
			     .ret = ret };

	return op_run(&c, "revert");
}

int apply_revert_look(pid_t pid, const char *build_id, apply_look_fn look, void *arg,
		      const struct apply_opts *opts, struct apply_result *ret)
{
	struct op_call c = { .revert = true, .pid = pid, .build_id = build_id, .look = look,
			     .look_arg = arg, .opts = opts, .ret = ret };

	if (!look)
		return hp_err(-EINVAL, "revert %d: no look", (int)pid);
	return op_run(&c, "revert");
}

int apply_settle(pid_t pid, const struct apply_opts *opts, char *ret_msg, size_t cap)
{
	struct op_call c = { .settle = true, .pid = pid, .opts = opts, .msg_out = ret_msg,
			     .msg_cap = cap };

	if (!ret_msg || !cap)
		return hp_err(-EINVAL, "settle %d: no room for the answer", (int)pid);
	ret_msg[0] = '\0';
	return op_run(&c, "settle");
}

/* ---- inspection ---------------------------------------------------------- */

void apply_proc_free(struct apply_proc *p)
{
	if (!p)
		return;
	free(p->exe);
	proc_clear(p);
	free(p);
}

const struct apply_applied *apply_proc_find(const struct apply_proc *p, const char *build_id)
{
	for (size_t i = 0; p && build_id && i < p->n_applied; i++)
		if (strcmp(p->applied[i].build_id, build_id) == 0)
			return &p->applied[i];
	return NULL;
}

static int read_ids(pid_t pid, struct apply_proc *p)
{
	struct hp_buf b = HP_BUF_INIT;
	char path[64];
	const char *s;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	r = hp_read_file(path, 1 << 16, &b);
	if (r == -ENOENT || r == -ESRCH)
		return hp_err(-ESRCH, "process %d: no such process", (int)pid);
	if (r < 0)
		return hp_err(r, "process %d: read %s: %s", (int)pid, path, strerror(-r));
	s = strstr(b.data, "\nUid:");
	p->uid = s ? (uid_t)strtoul(s + 5, NULL, 10) : (uid_t)-1;
	hp_buf_release(&b);
	read_comm(pid, p);
	return 0;
}

int apply_inspect(pid_t pid, struct apply_proc **ret)
{
	struct op op;
	struct apply_proc *p = NULL;
	char path[64], link[PATH_MAX];
	ssize_t n;
	int r;

	hp_err_clear(); /* an entry point: the messages from here on are this call's */
	r = op_open(&op, pid, false);
	if (r < 0)
		goto out;
	p = calloc(1, sizeof(*p));
	if (!p) {
		r = -ENOMEM;
		goto out;
	}
	p->pid = pid;
	p->start_time = op.start_time;
	r = read_ids(pid, p);
	if (r < 0)
		goto out;
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	n = readlink(path, link, sizeof(link) - 1);
	link[n > 0 ? n : 0] = '\0';
	p->exe = strdup(link);
	if (!p->exe) {
		r = -ENOMEM;
		goto out;
	}
	r = op_scan(&op);
	if (r == 0)
		r = proc_fill(&op, p);
	if (r < 0)
		goto out;
	*ret = p;
	p = NULL;
	r = 0;
out:
	if (r < 0)
		hp_err_prefix(r, "inspect %d: ", (int)pid);
	apply_proc_free(p);
	op_release(&op);
	return r;
}

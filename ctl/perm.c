/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Who may patch a process: root, or a caller the kernel itself would let
 * ptrace it. The rule is the kernel's, asked as the caller would be asked:
 * a short-lived helper takes the caller's credentials (its supplementary
 * groups, gid and uid, real, effective, saved and file-system, and no
 * capability at all) and opens /proc/PID/task/TID/mem of every thread of
 * the process. That open is the kernel's ptrace attach check
 * (PTRACE_MODE_ATTACH): uids and gids, capabilities, dumpability, Yama and
 * any other security module. Nothing of it is re-implemented here, so the
 * answer cannot be weaker than ptrace.
 *
 * The helper is a vfork-style child sharing our memory (CLONE_VM |
 * CLONE_VFORK): no copy of the daemon's address space, tens of
 * microseconds. It runs on a stack kept per calling thread (one caller's
 * helper at a time per thread: the caller waits for it). Credentials are per task in Linux, so the helper's
 * setresuid leaves every thread of ours as it was; it makes raw system
 * calls only, with every signal blocked, and leaves its answer in our
 * memory before it exits.
 *
 * The caller's supplementary groups come from /proc/CALLER/status when its
 * file-system uid and gid there are the ones the request carries (FUSE
 * gives uid, gid and the pid of the calling thread); otherwise the helper
 * holds no supplementary group. The kernel's ptrace rule does not look at
 * supplementary groups; a security module might.
 *
 * Stricter than the caller's own ptrace in two places, on purpose: a
 * caller's capabilities are not lent to the check (a non-root caller is
 * checked with none), and under Yama ptrace_scope 1 or 2 the helper is
 * nobody's ancestor and holds no CAP_SYS_PTRACE, so there only root
 * patches. Being refused where ptrace might have worked is safe; the
 * reverse is what this file prevents.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctl-int.h"

#define PROBE_STACK (64u << 10)
#define PROBE_THREADS_MAX 65536u
#define PROBE_GROUPS_MAX 65536u /* NGROUPS_MAX */

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

struct probe {
	/* in */
	uid_t uid;
	gid_t gid;
	gid_t *groups;
	size_t n_groups;
	bool self;            /* we already are the caller: groups may stay as they are */
	char (*paths)[48];    /* /proc/PID/task/TID/mem of every thread */
	size_t n_paths;
	/* out */
	int err;              /* 0, or the errno of the step that failed */
	const char *step;     /* which step */
	size_t n_opened;
};

/*
 * The helper. Raw system calls only: it runs on its own stack in our
 * memory while the thread that started it waits.
 */
__attribute__((no_sanitize_address)) static int probe_child(void *arg)
{
	struct probe *p = arg;
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct none[_LINUX_CAPABILITY_U32S_3];

	memset(none, 0, sizeof(none));
	if (syscall(SYS_setgroups, p->n_groups, p->groups) < 0 && !(p->self && errno == EPERM)) {
		p->err = errno;
		p->step = "setgroups";
		goto out;
	}
	if (syscall(SYS_setresgid, p->gid, p->gid, p->gid) < 0) {
		p->err = errno;
		p->step = "setresgid";
		goto out;
	}
	if (syscall(SYS_setresuid, p->uid, p->uid, p->uid) < 0) {
		p->err = errno;
		p->step = "setresuid";
		goto out;
	}
	/* setresuid away from 0 clears them already; a non-root hp may hold some */
	syscall(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	if (syscall(SYS_capset, &hdr, none) < 0) {
		p->err = errno;
		p->step = "capset";
		goto out;
	}
	for (size_t i = 0; i < p->n_paths; i++) {
		long fd = syscall(SYS_openat, AT_FDCWD, p->paths[i], O_RDONLY | O_CLOEXEC);

		if (fd >= 0) {
			syscall(SYS_close, fd);
			p->n_opened++;
			continue;
		}
		if (errno == ENOENT || errno == ESRCH)
			continue; /* a thread that has exited */
		p->err = errno;
		p->step = "open";
		break;
	}
out:
	syscall(SYS_exit, 0);
	return 0;
}

/* The numbers after key on its line of a /proc status text; how many. */
static size_t status_numbers(const char *text, const char *key, unsigned long *ret, size_t max)
{
	const char *p = strstr(text, key);
	size_t n = 0;

	if (!p)
		return 0;
	p += strlen(key);
	while (n < max && *p && *p != '\n') {
		char *end;
		unsigned long v;

		while (*p == ' ' || *p == '\t')
			p++;
		if (*p < '0' || *p > '9')
			break;
		v = strtoul(p, &end, 10);
		ret[n++] = v;
		p = end;
	}
	return n;
}

/* The caller's supplementary groups, when /proc/CALLER is still the caller. */
static int caller_groups(const struct ctl_caller *who, struct probe *p)
{
	struct hp_buf text = HP_BUF_INIT;
	unsigned long ids[4], *g = NULL;
	char path[64];
	size_t n;
	int r = 0;

	p->groups = NULL;
	p->n_groups = 0;
	if (who->pid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)who->pid);
	if (hp_read_file(path, HP_PROC_STATUS_MAX, &text) < 0)
		goto out;
	/* field 4 of Uid: and Gid: is the file-system id, the one FUSE reports */
	if (status_numbers(text.data, "\nUid:", ids, 4) != 4 || ids[3] != who->uid ||
	    status_numbers(text.data, "\nGid:", ids, 4) != 4 || ids[3] != who->gid)
		goto out;
	g = calloc(PROBE_GROUPS_MAX, sizeof(*g));
	if (!g) {
		r = -ENOMEM;
		goto out;
	}
	n = status_numbers(text.data, "\nGroups:", g, PROBE_GROUPS_MAX);
	if (n) {
		p->groups = calloc(n, sizeof(*p->groups));
		if (!p->groups) {
			r = -ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < n; i++)
			p->groups[i] = (gid_t)g[i];
		p->n_groups = n;
	}
out:
	free(g);
	hp_buf_release(&text);
	return r;
}

/* /proc/PID/task/TID/mem for every thread. */
static int thread_paths(pid_t pid, struct probe *p)
{
	char path[64];
	struct dirent *de;
	size_t cap = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return -ESRCH;
	while ((de = readdir(d))) {
		long tid = strtol(de->d_name, NULL, 10);

		if (tid <= 0)
			continue;
		if (p->n_paths == PROBE_THREADS_MAX)
			break;
		if (p->n_paths == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			char(*v)[48] = realloc(p->paths, ncap * sizeof(*v));

			if (!v) {
				closedir(d);
				return -ENOMEM;
			}
			p->paths = v;
			cap = ncap;
		}
		snprintf(p->paths[p->n_paths++], sizeof(p->paths[0]), "/proc/%d/task/%ld/mem",
			 (int)pid, tid);
	}
	closedir(d);
	return 0;
}

/*
 * The helper's stack: one per calling thread, mapped at its first check and
 * kept (a map and unmap per check cost a TLB shootdown each), released
 * when the thread ends.
 */
static pthread_key_t stack_key;
static pthread_once_t stack_once = PTHREAD_ONCE_INIT;
static __thread void *probe_stack;

static void stack_free(void *p)
{
	munmap(p, PROBE_STACK);
}

static void stack_init(void)
{
	if (pthread_key_create(&stack_key, stack_free) != 0)
		stack_key = (pthread_key_t)-1;
}

static void *stack_get(void)
{
	void *p;

	if (probe_stack)
		return probe_stack;
	pthread_once(&stack_once, stack_init);
	p = mmap(NULL, PROBE_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK,
		 -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	if (stack_key == (pthread_key_t)-1 || pthread_setspecific(stack_key, p) != 0) {
		munmap(p, PROBE_STACK);
		return NULL;
	}
	probe_stack = p;
	return p;
}

/*
 * Ask the kernel: 0 (every live thread may be attached to), -EACCES (with
 * *ret_refused set: the kernel said no; else we could not take the
 * caller's credentials, with a message), -ESRCH, -ENOMEM.
 */
static int kernel_may_ptrace(const struct ctl_caller *who, pid_t pid, bool *ret_refused)
{
	struct probe p;
	sigset_t all, old;
	void *stack;
	pid_t child;
	int st, r;

	*ret_refused = false;
	memset(&p, 0, sizeof(p));
	p.uid = who->uid;
	p.gid = who->gid;
	p.self = geteuid() == who->uid;
	r = thread_paths(pid, &p);
	if (r < 0)
		goto out;
	r = caller_groups(who, &p);
	if (r < 0)
		goto out;
	stack = stack_get();
	if (!stack) {
		r = -ENOMEM;
		goto out;
	}
	/* the helper inherits this mask: no handler of ours runs on its stack */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	/* exit signal 0: no SIGCHLD for the engine's waits to see; reaped with __WALL */
	child = clone(probe_child, (char *)stack + PROBE_STACK, CLONE_VM | CLONE_VFORK, &p);
	r = child < 0 ? -errno : 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0) {
		r = hp_err(r, "process %d: start the permission check: %s", (int)pid, strerror(-r));
		goto out;
	}
	while (waitpid(child, &st, __WALL) < 0 && errno == EINTR)
		;
	if (p.err && strcmp(p.step, "open") != 0) {
		r = hp_err(-EACCES, "uid %u may not patch process %d: cannot take its credentials "
			   "to ask the kernel (%s: %s)", (unsigned)who->uid, (int)pid, p.step,
			   strerror(p.err));
		goto out;
	}
	if (p.err) {
		*ret_refused = true;
		r = -EACCES;
		goto out;
	}
	r = p.n_opened ? 0 : hp_err(-ESRCH, "no process %d", (int)pid);
out:
	free(p.groups);
	free(p.paths);
	return r;
}

/* Why the kernel said no, in a few words, from /proc/PID/status. */
static void refusal_reason(const struct ctl_caller *who, pid_t pid, const char *status,
			   char *buf, size_t size)
{
	unsigned long uids[3] = { 0 }, gids[3] = { 0 }, cap = 0;
	const char *p;
	char path[64];
	struct stat st;
	bool other = false, setid;

	status_numbers(status, "\nUid:", uids, 3);
	status_numbers(status, "\nGid:", gids, 3);
	for (int i = 0; i < 3; i++)
		other |= uids[i] != who->uid || gids[i] != who->gid;
	setid = uids[0] != uids[1] || uids[1] != uids[2] || gids[0] != gids[1] ||
		gids[1] != gids[2];
	p = strstr(status, "\nCapPrm:");
	if (p)
		cap = strtoul(p + 8, NULL, 16);
	snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
	if (other)
		snprintf(buf, size, "uid %lu, gid %lu%s", uids[0], gids[0], setid ? ", set-id" : "");
	else if (cap)
		snprintf(buf, size, "it holds capabilities");
	else if (stat(path, &st) == 0 && st.st_uid != who->uid)
		/* the kernel gives a non-dumpable process's private files to root */
		snprintf(buf, size, "not dumpable");
	else
		snprintf(buf, size, "the kernel refuses ptrace: Yama or a security module");
}

/* Our pid, asked once (and again in a child after a fork): it never changes. */
static pid_t own_pid;
static pthread_once_t own_once = PTHREAD_ONCE_INIT;

static void own_pid_forget(void)
{
	__atomic_store_n(&own_pid, 0, __ATOMIC_RELAXED);
}

static void own_pid_init(void)
{
	pthread_atfork(NULL, NULL, own_pid_forget);
}

static pid_t self_pid(void)
{
	pid_t p;

	pthread_once(&own_once, own_pid_init);
	p = __atomic_load_n(&own_pid, __ATOMIC_RELAXED);
	if (!p) {
		p = getpid();
		__atomic_store_n(&own_pid, p, __ATOMIC_RELAXED);
	}
	return p;
}

/*
 * For root, whom the kernel lets ptrace anything, the checks below need
 * only know that PID names a live process (a thread-group leader): the
 * status text (its open, two reads and close, and the kernel's formatting
 * of 57 lines) is the long way to learn it. One system call says it:
 * tgkill(PID, PID, 0) finds a task PID that leads its own thread group
 * (ESRCH for a PID that is gone or names another's thread; EPERM: there,
 * but not ours to signal). A kernel thread passes: the engine refuses it
 * from the stat it reads first, with the message the status text gives
 * here (it was a readlink of /proc/PID/exe here, 15-20 us of each apply
 * and revert). Anything else (a zombie, a thread, a PID gone) is decided
 * by the status text as before, with its message.
 */
static bool root_quick(pid_t pid)
{
	return syscall(SYS_tgkill, pid, pid, 0) == 0 || errno == EPERM;
}

static int may_patch(const struct ctl_caller *who, pid_t pid, bool held)
{
	struct hp_buf text = HP_BUF_INIT;
	char path[64], why[128];
	bool refused;
	const char *p;
	int r;

	/* a process cannot hold itself still to patch itself */
	if (pid == self_pid())
		return hp_err(-EINVAL, "process %d is the patching process itself", (int)pid);
	if (who->uid == 0 && pid > 0 && root_quick(pid))
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	r = hp_read_file(path, HP_PROC_STATUS_MAX, &text);
	if (r == -ENOENT || r == -ESRCH) {
		r = hp_err(-ESRCH, "no process %d", (int)pid);
		goto out;
	}
	if (r < 0) {
		/* not masked: a failed read is its own error, not a missing process */
		r = hp_err(r, "process %d: read %s: %s", (int)pid, path, strerror(-r));
		goto out;
	}
	/* /proc/TID answers for a thread too: only a process id names a process. */
	p = strstr(text.data, "\nTgid:");
	if (p && strtol(p + 6, NULL, 10) != (long)pid) {
		r = hp_err(-ESRCH, "%d is a thread of process %ld, not a process", (int)pid,
			   strtol(p + 6, NULL, 10));
		goto out;
	}
	/* no user memory, nothing mapped: the engine could only fail on it */
	if (strstr(text.data, "\nKthread:\t1")) {
		r = hp_err(-ENOENT, PROC_KTHREAD_MSG, (int)pid);
		goto out;
	}
	if (who->uid == 0) {
		r = 0;
		goto out;
	}
	r = kernel_may_ptrace(who, pid, &refused);
	if (r == -EACCES && refused) {
		/* what it is now: the status read before the check may be older */
		hp_buf_reset(&text);
		if (hp_read_file(path, HP_PROC_STATUS_MAX, &text) < 0) {
			r = hp_err(-ESRCH, "no process %d", (int)pid);
			goto out;
		}
		refusal_reason(who, pid, text.data, why, sizeof(why));
		if (held)
			r = hp_err(-EACCES, "uid %u may not patch process %d (%s): it changed "
				   "after the check (an exec?)", (unsigned)who->uid, (int)pid, why);
		else
			r = hp_err(-EACCES, "uid %u may not patch process %d (%s)",
				   (unsigned)who->uid, (int)pid, why);
	}
out:
	hp_buf_release(&text);
	return r;
}

int ctl_may_patch(const struct ctl_caller *who, pid_t pid)
{
	return may_patch(who, pid, false);
}

int ctl_may_patch_held(void *who, pid_t pid)
{
	return may_patch(who, pid, true);
}

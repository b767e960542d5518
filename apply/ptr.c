/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Stopping the world with PTRACE_SEIZE + PTRACE_INTERRUPT, resuming it so
 * that no interrupted system call is visible, and running system calls
 * inside the target in one stopped thread (the "sys thread").
 *
 * The sys thread is stopped first and alone: the patch region is mapped,
 * written and protected while every other thread runs (nothing reaches the
 * region before the jumps exist). Only the safety check and the jump writes
 * need every thread held.
 *
 * Remote system call (docs/engine.md): from an interrupt stop, set orig_rax =
 * -1 (the kernel must not apply its restart logic to our call), point rip at
 * the trampoline (arch_tramp_build: a syscall instruction, then what makes
 * the thread whole again should we die; written into zero padding after a
 * code segment, zeroed after the calls) or, without one, at an existing
 * syscall instruction of the vDSO; PTRACE_SYSCALL to the entry stop and again
 * to the exit stop, read rax. To give the thread
 * back its own registers we must be in a stop the kernel leaves through its
 * signal path, where the restart logic runs on the restored registers:
 * restoring at the syscall-exit stop would leak -ERESTARTSYS into the
 * program (libpulp #123). So: PTRACE_INTERRUPT + PTRACE_CONT from the exit
 * stop (the pending trap stops the thread before any user instruction), then
 * restore every register, orig_rax and rax included.
 *
 * EINTR: a thread parked in epoll_wait shows -EINTR at its stop (the kernel
 * does not restart it); its result becomes -ERESTARTNOHAND at once, not at
 * detach, so a tracer that dies leaves it re-issuing the call, unless a
 * signal handler runs there (arch_restart_fixup).
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "apply-int.h"

#define SYSCALL_TRAP (SIGTRAP | 0x80)
/* Listings of /proc/PID/task before giving up on a process whose threads
 * are born faster than we stop them. */
#define STOP_ROUNDS_MAX 256

/* Per calling thread: each operation runs in a thread of its own (engine.c). */
static __thread struct ptr_counts counts;
/* This thread holds a tracee it could not let go (stuck_add): it must end. */
static __thread bool left_traced;

bool ptr_left_traced(void)
{
	return left_traced;
}

void ptr_counts_reset(void)
{
	memset(&counts, 0, sizeof(counts));
}

struct ptr_counts ptr_counts_get(void)
{
	return counts;
}

void ptr_world_init(struct ptr_world *w, pid_t pid, int mem_fd, uint64_t start_time)
{
	memset(w, 0, sizeof(*w));
	w->pid = pid;
	w->mem_fd = mem_fd;
	w->stat_fd = w->task_fd = -1;
	w->start_time = start_time;
}

void ptr_world_forget(struct ptr_world *w)
{
	free(w->t);
	w->t = NULL;
	w->n = w->cap = 0;
	if (w->stat_fd >= 0)
		op_close_late(w->stat_fd);
	if (w->task_fd >= 0)
		op_close_late(w->task_fd);
	w->stat_fd = w->task_fd = -1;
}

struct ptr_thread *ptr_find(struct ptr_world *w, pid_t tid)
{
	for (size_t i = 0; i < w->n; i++)
		if (w->t[i].tid == tid)
			return &w->t[i];
	return NULL;
}

static struct ptr_thread *thread_add(struct ptr_world *w, pid_t tid)
{
	if (w->n == w->cap) {
		size_t ncap = w->cap ? w->cap * 2 : 32;
		struct ptr_thread *v = realloc(w->t, ncap * sizeof(*v));

		if (!v)
			return NULL;
		w->t = v;
		w->cap = ncap;
	}
	memset(&w->t[w->n], 0, sizeof(w->t[0]));
	w->t[w->n].tid = tid;
	return &w->t[w->n++];
}

static void thread_remove(struct ptr_world *w, struct ptr_thread *t)
{
	size_t i = (size_t)(t - w->t);

	/* the order stays the order of the stop (see ptr_resume) */
	memmove(&w->t[i], &w->t[i + 1], (w->n - i - 1) * sizeof(w->t[0]));
	w->n--;
}

/* Tracer of tid per /proc, 0 if none or unknown. */
static pid_t tracer_of(pid_t pid, pid_t tid)
{
	struct hp_buf b = HP_BUF_INIT;
	char path[64];
	pid_t tracer = 0;
	const char *p;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)pid, (int)tid);
	if (hp_read_file(path, 1 << 16, &b) == 0 && (p = strstr(b.data, "TracerPid:")))
		tracer = (pid_t)strtol(p + 10, NULL, 10);
	hp_buf_release(&b);
	return tracer;
}


static int seize(struct ptr_world *w, pid_t tid)
{
	if (ptrace(PTRACE_SEIZE, tid, NULL, (void *)(long)PTRACE_O_TRACESYSGOOD) < 0) {
		int e = errno;
		pid_t tracer;

		char st;

		if (e == ESRCH)
			return -ESRCH;
		/* a thread that is exiting (or a leader that left by pthread_exit)
		 * cannot be attached: it is gone for us */
		if (e == EPERM && (proc_task_state(w->pid, tid, &st) < 0 || st == 'X' || st == 'Z'))
			return -ESRCH;
		if (e == EPERM && (tracer = tracer_of(w->pid, tid)) != 0)
			return hp_err(-EBUSY, "process %d: thread %d is already traced by process %d",
				      (int)w->pid, (int)tid, (int)tracer);
		return hp_err(e == EPERM ? -EPERM : -e, "process %d: ptrace thread %d: %s",
			      (int)w->pid, (int)tid, strerror(e));
	}
	if (ptrace(PTRACE_INTERRUPT, tid, NULL, NULL) < 0) {
		int e = errno;

		ptrace(PTRACE_DETACH, tid, NULL, NULL);
		return e == ESRCH ? -ESRCH : hp_err(-e, "interrupt thread %d: %s", (int)tid, strerror(e));
	}
	return 0;
}

/*
 * Bounded waits. waitpid cannot be given a timeout, and waking it takes a
 * signal. Two ways, fastest first:
 *
 * Alarm: a blocking waitpid, which the kernel wakes at once when the
 * thread stops, with a POSIX timer of the calling thread armed at the
 * deadline (and every millisecond after it, so that a signal taken just
 * before waitpid was entered cannot leave it asleep) to a real-time
 * signal of ours with a handler that does nothing and no SA_RESTART: it
 * interrupts the waitpid, which is then -ETIMEDOUT. The signal is
 * unblocked for the wait only, and is ours only while nothing else in the
 * process has a handler for it (HP_WAIT_SIG below; none is taken over).
 *
 * SIGCHLD, when the alarm cannot be had: WNOHANG, then sigtimedwait for
 * the SIGCHLD the kernel sends the tracer at every ptrace-stop, with it
 * blocked in this thread meanwhile, at most 1 ms per sleep. It is slower
 * with many threads (measured: the pause a 64-thread target sees about
 * 1.5x longer): a SIGCHLD blocked in this thread is queued to the process
 * and wakes another of its threads at each stop of the target.
 *
 * Polling alone is slow too: the shortest nanosleep costs about 200 us
 * here, and spinning under SCHED_FIFO keeps a target thread on our CPU
 * from ever stopping.
 */
#define HP_WAIT_SIG (SIGRTMAX - 2)

static int alarm_sig; /* HP_WAIT_SIG once our handler is installed, else 0 */
static pthread_once_t alarm_once = PTHREAD_ONCE_INIT;
static pthread_key_t alarm_key;

struct alarm {
	timer_t timer;
	bool ok;
	uint64_t armed; /* the deadline it is armed for (0: disarmed) */
};

static __thread struct alarm *alarm_tls;

static void alarm_handler(int sig)
{
	(void)sig; /* it is there to interrupt a waitpid */
}

static void alarm_destroy(void *arg)
{
	struct alarm *a = arg;

	if (a->ok)
		timer_delete(a->timer);
	free(a);
}

static void alarm_init(void)
{
	struct sigaction old, sa;

	if (pthread_key_create(&alarm_key, alarm_destroy) != 0)
		return;
	if (sigaction(HP_WAIT_SIG, NULL, &old) < 0 || (old.sa_flags & SA_SIGINFO) ||
	    old.sa_handler != SIG_DFL)
		return; /* somebody else's: leave it */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = alarm_handler;
	sigemptyset(&sa.sa_mask);
	if (sigaction(HP_WAIT_SIG, &sa, NULL) == 0)
		alarm_sig = HP_WAIT_SIG;
}

/* The calling thread's timer, made at its first use; NULL when none. */
static struct alarm *alarm_get(void)
{
	struct sigevent sev;
	struct alarm *a;

	if (alarm_tls)
		return alarm_tls->ok ? alarm_tls : NULL;
	pthread_once(&alarm_once, alarm_init);
	if (!alarm_sig)
		return NULL;
	a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = alarm_sig;
	sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
	a->ok = timer_create(CLOCK_MONOTONIC, &sev, &a->timer) == 0;
	if (pthread_setspecific(alarm_key, a) != 0) {
		alarm_destroy(a);
		return NULL;
	}
	alarm_tls = a;
	return a->ok ? a : NULL;
}

/*
 * The timer stays armed from one wait to the next (two system calls a wait
 * fewer: most of an operation's waits sleep on a 2-CPU machine) and is
 * armed again for an earlier deadline, or once the one it was armed for
 * has passed; one armed for an earlier deadline than a wait's wakes it
 * early (every millisecond) and the wait goes on to its own.
 * ptr_alarm_off disarms it when the operation ends.
 */
static int wait_alarm(struct alarm *a, pid_t tid, int *st, uint64_t deadline)
{
	uint64_t now = hp_now_us(), left = deadline > now ? deadline - now : 1;
	struct itimerspec its = {
		.it_value = { (time_t)(left / 1000000), (long)(left % 1000000) * 1000 },
		.it_interval = { 0, 1000000 },
	};
	sigset_t sig, old;
	int r = 0;

	if (!a->armed || deadline < a->armed || a->armed <= now) {
		if (timer_settime(a->timer, 0, &its, NULL) < 0)
			return -errno;
		a->armed = deadline;
	}
	sigemptyset(&sig);
	sigaddset(&sig, alarm_sig);
	pthread_sigmask(SIG_UNBLOCK, &sig, &old);
	for (;;) {
		pid_t w = waitpid(tid, st, __WALL);

		if (w == tid)
			break;
		if (w < 0 && errno == EINTR) {
			if (hp_now_us() >= deadline) {
				r = -ETIMEDOUT;
				break;
			}
			continue;
		}
		r = w < 0 && errno == ECHILD ? -ESRCH : w < 0 ? -errno : -EIO;
		break;
	}
	/* blocked again, whatever it was before: the timer left armed must
	 * interrupt nothing but our waits */
	sigaddset(&old, alarm_sig);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return r;
}

void ptr_alarm_off(void)
{
	static const struct itimerspec off = { { 0, 0 }, { 0, 0 } };

	if (alarm_tls && alarm_tls->ok && alarm_tls->armed) {
		timer_settime(alarm_tls->timer, 0, &off, NULL);
		alarm_tls->armed = 0;
	}
}

/* waitpid for tid, bounded by deadline (hp_now_us() time; 0: no bound). */
static int wait_bounded(pid_t tid, int *st, uint64_t deadline)
{
	sigset_t chld, old;
	struct alarm *a;
	int r = 0;

	counts.n_waits++;
	if (!deadline) {
		counts.n_slept++;
		while ((r = waitpid(tid, st, __WALL)) < 0 && errno == EINTR)
			;
		return r == tid ? 0 : errno == ECHILD ? -ESRCH : -errno;
	}
	/* most threads of a stop have stopped by the time they are waited for */
	if (waitpid(tid, st, __WALL | WNOHANG) == tid)
		return 0;
	counts.n_slept++;
	a = alarm_get();
	if (a && (r = wait_alarm(a, tid, st, deadline)) != -EINVAL)
		return r;
	r = 0;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	pthread_sigmask(SIG_BLOCK, &chld, &old);
	for (;;) {
		pid_t w = waitpid(tid, st, __WALL | WNOHANG);
		uint64_t now, left;

		if (w == tid)
			break;
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			r = errno == ECHILD ? -ESRCH : -errno;
			break;
		}
		now = hp_now_us();
		if (now >= deadline) {
			r = -ETIMEDOUT;
			break;
		}
		left = deadline - now < 1000 ? deadline - now : 1000;
		sigtimedwait(&chld, NULL, &(struct timespec){ 0, (long)left * 1000 });
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return r;
}

/*
 * The EINTR rule (restart_fixup) for a thread in a ptrace stop whose
 * registers were not read yet. Also at a signal-delivery stop of a thread
 * we wait to see in its interrupt stop:
 * a signal the program ignores (SIGWINCH, SIGCHLD, SIGCONT, SIG_IGN) is not
 * dropped at its sending while the thread is traced, so it wakes a call
 * the kernel does not restart (epoll_wait) with -EINTR that the program
 * would never have seen. The same rule as at the interrupt stop (see
 * restart_fixup): -ERESTARTNOHAND, and the kernel re-issues the call
 * unless a handler runs for the signal, when EINTR is the program's.
 */
static void restart_fixup(struct ptr_world *w, struct ptr_thread *t);

static void fixup_at_stop(struct ptr_world *w, pid_t tid)
{
	struct ptr_thread t = { .tid = tid };

	if (arch_getregs(&t) == 0)
		restart_fixup(w, &t);
}

/*
 * Wait for tid's next ptrace stop, until deadline (0: no bound).
 * want_event: an interrupt (event) stop; otherwise a syscall stop. A signal
 * arriving meanwhile is passed on to the thread (want_event) or kept for
 * later (*pending) and the wait goes on.
 */
static int wait_stop(struct ptr_world *w, pid_t tid, bool want_event, int *pending,
		     uint64_t deadline)
{
	for (;;) {
		int st, r = wait_bounded(tid, &st, deadline);

		if (r < 0)
			return r;
		if (WIFEXITED(st) || WIFSIGNALED(st))
			return -ESRCH;
		if (!WIFSTOPPED(st))
			continue;
		if ((st >> 16) == PTRACE_EVENT_STOP) {
			if (want_event)
				return 0;
			/* an interrupt stop while we wait for a syscall stop: go on */
			if (ptrace(PTRACE_SYSCALL, tid, NULL, NULL) < 0)
				return -errno;
			continue;
		}
		if ((st >> 16) != 0)
			continue; /* an event we did not ask for; it stays stopped */
		if (WSTOPSIG(st) == SYSCALL_TRAP) {
			if (!want_event)
				return 0;
			if (ptrace(PTRACE_CONT, tid, NULL, NULL) < 0)
				return -errno;
			continue;
		}
		/* signal-delivery stop */
		if (want_event) {
			fixup_at_stop(w, tid);
			if (ptrace(PTRACE_CONT, tid, NULL, (void *)(long)WSTOPSIG(st)) < 0)
				return -errno;
		} else {
			*pending = WSTOPSIG(st);
			if (ptrace(PTRACE_SYSCALL, tid, NULL, NULL) < 0)
				return -errno;
		}
	}
}

/* The deadline of a wait that starts now. */
static uint64_t stop_deadline(const struct ptr_world *w)
{
	return hp_now_us() + (uint64_t)(w->stop_ms ? w->stop_ms : APPLY_DEFAULT_BUDGET_MS) * 1000;
}

static unsigned stop_ms(const struct ptr_world *w)
{
	return w->stop_ms ? w->stop_ms : APPLY_DEFAULT_BUDGET_MS;
}

/*
 * A thread seized and interrupted that did not stop in time (a thread in
 * uninterruptible sleep: vfork, a hung NFS read) cannot be detached: the
 * kernel refuses PTRACE_DETACH until it is in its ptrace-stop. It is
 * remembered; ptr_world_release detaches it if it has stopped by then, and
 * the calling thread's exit detaches it in any case (the kernel unlinks a
 * dead tracer's tracees and clears their pending interrupt): engine.c runs
 * each operation in a thread of its own for that, and ends that thread
 * after any operation that left one (ptr_left_traced).
 */
static void stuck_add(struct ptr_world *w, pid_t tid)
{
	left_traced = true;
	if (w->n_stuck < sizeof(w->stuck) / sizeof(w->stuck[0]))
		w->stuck[w->n_stuck++] = tid;
}

/* The message for a thread that did not stop (its state says why). */
static int stuck_err(struct ptr_world *w, pid_t tid)
{
	char s = '?';

	proc_task_state(w->pid, tid, &s);
	return hp_err(-EBUSY, "thread %d did not stop within %u ms (state %c)", (int)tid,
		      stop_ms(w), s);
}

/*
 * The threads an operation let go while they ran their own code, per
 * process (its PID and start time), for the next operation's choice of sys
 * thread: ptr_stop_sys stops a running thread only to see whether it is on
 * its way into a system call, which is what a thread let go from inside a
 * call is (the kernel re-issues the call), and a thread let go from its own
 * code is not: found running again, it is not stopped to look (that stop
 * was a third of the cost of holding the sys thread for a process with a
 * busy thread), and the leader is held. A thread let go from a call, or
 * not seen in a stop, leaves the list; so does everything about a process
 * when another process takes its slot (the least recently used of
 * OWN_CODE_PROCS). What another tracer (a second engine) did to a thread
 * since is not seen here: the look is then skipped once for a thread it
 * may have sent back into a call.
 */
#define OWN_CODE_PROCS 64
#define OWN_CODE_TIDS 8

struct own_code {
	pid_t pid;
	uint64_t start_time;
	uint64_t used;
	size_t n;
	pid_t tid[OWN_CODE_TIDS];
};

static pthread_mutex_t own_lock = PTHREAD_MUTEX_INITIALIZER;
static struct own_code own[OWN_CODE_PROCS];
static uint64_t own_clock;

void ptr_own_code_forget(void)
{
	pthread_mutex_init(&own_lock, NULL);
	memset(own, 0, sizeof(own));
}

/* Under own_lock: the process's entry; made in the least recently used slot when make. */
static struct own_code *own_find(pid_t pid, uint64_t start_time, bool make)
{
	struct own_code *lru = &own[0];

	for (size_t i = 0; i < OWN_CODE_PROCS; i++) {
		if (own[i].pid == pid && own[i].start_time == start_time) {
			own[i].used = ++own_clock;
			return &own[i];
		}
		if (own[i].used < lru->used)
			lru = &own[i];
	}
	if (!make)
		return NULL;
	*lru = (struct own_code){ .pid = pid, .start_time = start_time, .used = ++own_clock };
	return lru;
}

/*
 * Under own_lock: how tid is let go, in its own code or not (in a call, or
 * its stop not seen). *e is the process's entry, looked up (and made, for a
 * thread in its own code) on the first call with *e NULL.
 */
static void own_code_note_locked(const struct ptr_world *w, struct own_code **e, pid_t tid,
				 bool in_own_code)
{
	size_t i;

	if (tid == w->pid) /* the leader is never looked at this way */
		return;
	if (!*e)
		*e = own_find(w->pid, w->start_time, in_own_code);
	if (!*e)
		return;
	for (i = 0; i < (*e)->n && (*e)->tid[i] != tid; i++)
		;
	if (in_own_code && i == (*e)->n && (*e)->n < OWN_CODE_TIDS)
		(*e)->tid[(*e)->n++] = tid;
	else if (!in_own_code && i < (*e)->n)
		(*e)->tid[i] = (*e)->tid[--(*e)->n];
}

static void own_code_note(const struct ptr_world *w, pid_t tid, bool in_own_code)
{
	struct own_code *e = NULL;

	pthread_mutex_lock(&own_lock);
	own_code_note_locked(w, &e, tid, in_own_code);
	pthread_mutex_unlock(&own_lock);
}

bool ptr_own_code_was(const struct ptr_world *w, pid_t tid)
{
	const struct own_code *e;
	bool found = false;

	pthread_mutex_lock(&own_lock);
	e = own_find(w->pid, w->start_time, false);
	for (size_t i = 0; e && i < e->n && !found; i++)
		found = e->tid[i] == tid;
	pthread_mutex_unlock(&own_lock);
	return found;
}

/*
 * Let go of a thread seized and interrupted whose stop we have not waited
 * for: PTRACE_DETACH works only once it is in its ptrace-stop (before, it
 * fails and the thread would stop later and stay stopped while we live).
 * -ETIMEDOUT (and the thread kept as stuck) when it does not stop in time.
 */
static int release_unstopped(struct ptr_world *w, pid_t tid, uint64_t deadline)
{
	int r = wait_stop(w, tid, true, NULL, deadline);

	if (r == -ETIMEDOUT) {
		stuck_add(w, tid);
		return r;
	}
	/* it may show -EINTR from epoll_wait like any stopped thread */
	if (r == 0)
		fixup_at_stop(w, tid);
	ptrace(PTRACE_DETACH, tid, NULL, NULL);
	own_code_note(w, tid, false);
	return r;
}

/*
 * A thread that shows -EINTR from a call the kernel does not restart
 * (epoll_wait): fix it now, at its stop, not at detach, so that even if
 * we die while it is held (the kernel then detaches it) the call is
 * re-issued instead of returning EINTR to the program. Whether a pending
 * signal is the program's reason for an EINTR is the kernel's to decide
 * after the stop (arch_restart_fixup): nothing is read here.
 */
static void restart_fixup(struct ptr_world *w, struct ptr_thread *t)
{
	uint64_t regs[32];

	memcpy(regs, t->regs, sizeof(regs));
	if (arch_restart_fixup(w->mem_fd, regs) && arch_setregs(t, regs) == 0)
		memcpy(t->regs, regs, sizeof(regs));
}



/*
 * The thread ids of the process; ret_tids malloc'd. From /proc/PID/task,
 * opened once per operation and read again from its start: three system
 * calls where opendir's open, stat, two reads and close were five, twice
 * an apply. Its descriptor names the process: once that is gone the
 * listing fails (-ESRCH), whoever has the PID since.
 */
static int list_tasks(struct ptr_world *w, pid_t **ret_tids, size_t *ret_n)
{
	char buf[16384] __attribute__((aligned(8)));
	pid_t *v = NULL;
	size_t n = 0, cap = 0;

	if (w->task_fd < 0) {
		char path[64];

		snprintf(path, sizeof(path), "/proc/%d/task", (int)w->pid);
		w->task_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (w->task_fd < 0)
			return hp_err(-ESRCH, "process %d: no such process", (int)w->pid);
	} else if (lseek(w->task_fd, 0, SEEK_SET) < 0) {
		return hp_err(-ESRCH, "process %d: no such process", (int)w->pid);
	}
	for (;;) {
		long got = syscall(SYS_getdents64, w->task_fd, buf, sizeof(buf));

		if (got < 0) {
			free(v);
			return hp_err(-ESRCH, "process %d: no such process", (int)w->pid);
		}
		if (got == 0)
			break;
		for (long off = 0; off < got;) {
			const struct dirent64 *de = (const struct dirent64 *)(buf + off);

			off += de->d_reclen;
			if (de->d_name[0] < '0' || de->d_name[0] > '9')
				continue;
			if (n == cap) {
				pid_t *nv;

				cap = cap ? cap * 2 : 64;
				nv = realloc(v, cap * sizeof(*v));
				if (!nv) {
					free(v);
					return -ENOMEM;
				}
				v = nv;
			}
			v[n++] = (pid_t)atoi(de->d_name);
		}
	}
	if (!n) {
		free(v);
		return hp_err(-ESRCH, "process %d: no such process", (int)w->pid);
	}
	*ret_tids = v;
	*ret_n = n;
	return 0;
}

static int check_same_process(struct ptr_world *w)
{
	struct proc_stat_fields f;
	uint64_t st;
	char state;
	int r;

	/* the operation's descriptor when there is one (one read), else by path */
	if (w->stat_fd >= 0) {
		r = proc_stat_fd_read(w->stat_fd, w->pid, &f);
		state = f.state;
		st = f.start_time;
	} else {
		r = proc_stat(w->pid, &state, &st);
	}
	hp_err_clear();
	if (r < 0 || st != w->start_time)
		return hp_err(-ESRCH, "process %d exited", (int)w->pid);
	if ((state == 'Z' || state == 'X') && !proc_live_tid(w->pid))
		return hp_err(-ESRCH, "process %d exited (zombie)", (int)w->pid);
	return 0;
}

static bool avoided(const struct ptr_world *w, pid_t tid)
{
	for (size_t i = 0; i < w->n_avoid; i++)
		if (w->avoid[i] == tid)
			return true;
	return false;
}

/*
 * Hold tid as the sys thread. keep_user: keep it even when it was running
 * its own code (else it is let go again, -EAGAIN).
 */
static int sys_hold(struct ptr_world *w, pid_t tid, bool keep_user)
{
	struct ptr_thread *t;
	uint64_t deadline;
	int r;

	r = seize(w, tid);
	if (r < 0)
		return r;
	deadline = stop_deadline(w);
	t = thread_add(w, tid);
	if (!t) {
		release_unstopped(w, tid, deadline);
		return -ENOMEM;
	}
	r = wait_stop(w, tid, true, NULL, deadline);
	if (r == -ETIMEDOUT) {
		thread_remove(w, t);
		stuck_add(w, tid);
		return stuck_err(w, tid);
	}
	if (r == 0)
		r = arch_getregs(t);
	if (r < 0) {
		ptrace(PTRACE_DETACH, tid, NULL, NULL);
		thread_remove(w, t);
		return -ESRCH;
	}
	restart_fixup(w, t);
	if (!keep_user && !arch_in_syscall(t->regs)) {
		ptrace(PTRACE_DETACH, tid, NULL, NULL);
		own_code_note(w, tid, true);
		thread_remove(w, t);
		return -EAGAIN;
	}
	t->stopped = true;
	w->sys_tid = tid;
	w->prev_tid = 0; /* held anew: its code looked at anew (tramp_write) */
	return 0;
}

/* Threads in state R looked at before the leader is taken instead. */
#define SYS_PROBE_MAX 4

int ptr_stop_sys(struct ptr_world *w)
{
	pid_t *tids = NULL;
	size_t n = 0;
	pid_t sleeping = 0, running[SYS_PROBE_MAX], own_code = 0, live = 0, last = 0;
	size_t n_running = 0;
	char ls = 0, s;
	int r;

	if (w->sys_tid && ptr_find(w, w->sys_tid))
		return 0;
	/* a call left running in the trampoline: it is that thread's now */
	if (w->lost)
		return hp_err(-EBUSY, "process %d: a remote system call did not finish", (int)w->pid);
	/*
	 * It is held while the region is loaded (milliseconds on a loaded
	 * machine): a sleeping thread loses nothing by it (its call restarts),
	 * a running one stalls. Not the leader while another thread may sleep
	 * in a call: kill() asks the leader whether the program ignores a
	 * signal, and while the leader is traced the kernel queues an ignored
	 * one (SIGWINCH, SIGCHLD) and wakes another thread with it, which, not
	 * traced, returns EINTR from a call the kernel does not restart
	 * (sigwaitinfo, epoll_wait). So the first sleeping thread other than
	 * the leader. Without one: right after a release on a loaded machine
	 * every thread let go is runnable (state R) for milliseconds, on its
	 * way back into its call, while the leader, let go first, sleeps again;
	 * taking the leader then let SIGWINCH every 2 ms through as EINTR
	 * (test-engine-stress: 23 in one run in twenty). So the first few
	 * running threads are stopped in turn, and the first found inside a
	 * system call is held; one found running its own code (a thread that
	 * never sleeps, which an EINTR cannot reach there) is let go at once
	 * (a stop of a few microseconds) rather than held for the whole load,
	 * and the leader is held then, as it is at once when every running
	 * thread is one the last operation let go in its own code (not stopped
	 * to look: own_code_note); else one in uninterruptible sleep (it
	 * would not stop), the avoided ones last (unwind.c). The leader when
	 * it is asked for (the call to libgcc_s, unwind.c). The walk ends at
	 * the first thread that settles it: each state read is a file of /proc
	 * opened, formatted and read, and a process of 64 threads paid 64 of
	 * them for one.
	 */
	r = list_tasks(w, &tids, &n);
	if (r < 0)
		return r;
	w->n_listed = n;
	for (size_t i = 0; i < n && !(w->want_leader ? ls : sleeping); i++) {
		if (tids[i] == w->pid && w->leader_state)
			s = w->leader_state; /* read a moment ago; a wrong guess costs a try */
		else if (proc_task_state(w->pid, tids[i], &s) < 0)
			continue;
		if (s == 'Z' || s == 'X')
			continue;
		if (avoided(w, tids[i]))
			last = last ? last : tids[i];
		else if (tids[i] == w->pid)
			ls = s;
		else if (s == 'S' && !sleeping)
			sleeping = tids[i];
		else if (s == 'R' && ptr_own_code_was(w, tids[i]))
			own_code = own_code ? own_code : tids[i];
		else if (s != 'S' && s != 'D' && n_running < SYS_PROBE_MAX)
			running[n_running++] = tids[i];
		else if (!live)
			live = tids[i];
	}
	free(tids);
	w->leader_state = 0; /* read afresh next time */
	if (!sleeping && !n_running && !ls && !own_code && !live && !last)
		return hp_err(-ESRCH, "process %d has no live thread", (int)w->pid);
	r = -ESRCH;
	if (w->want_leader && ls)
		r = sys_hold(w, w->pid, true);
	else if (sleeping)
		r = sys_hold(w, sleeping, true);
	for (size_t i = 0; r == -ESRCH && !sleeping && i < n_running; i++) {
		/* the last one is kept whatever it runs when the leader cannot be had */
		r = sys_hold(w, running[i], !ls && !own_code && i + 1 == n_running);
		if (r == -EAGAIN)
			r = -ESRCH;
	}
	if (r == -ESRCH && ls && !(w->want_leader && ls))
		r = sys_hold(w, w->pid, true);
	if (r == -ESRCH && own_code)
		r = sys_hold(w, own_code, true);
	if (r == -ESRCH && live)
		r = sys_hold(w, live, true);
	if (r == -ESRCH && last)
		r = sys_hold(w, last, true);
	if (r == -ESRCH) /* every thread tried vanished: killed, or exiting */
		return hp_err(-ESRCH, "process %d: no such process", (int)w->pid);
	if (r < 0)
		return r;
	/* PID reuse: the process we stopped must be the one we opened */
	r = check_same_process(w);
	if (r < 0)
		ptr_resume(w, false);
	return r;
}

/*
 * A thread in uninterruptible sleep (state D: a vfork parent, a read from
 * a hung NFS server) does not reach its stop until it wakes, and every
 * thread held meanwhile waits with it. Nobody's state is read before the
 * stop (that was one file of /proc opened, formatted and read per thread,
 * 63 for a process of 64 threads, before every stop): a thread that has
 * not stopped STOP_GRACE_US after its wait began has its state read, and
 * again after twice as long, and so on, at most STOP_GRACE_MAX_US apart.
 * Found in state D, it has ptr_stop_all let go of every other thread but
 * the sys thread at once and wait for that one alone (below). A thread
 * that is running when read, or sleeping in its kernel on the way to its
 * stop, is waited for on. In test builds (-Dtest_hooks=true)
 * HP_ENGINE_TEST_SEIZE_D=1 reads no state, so that test-engine-bad can
 * test the bounded waits of a thread that entered D unseen.
 */
#define STOP_GRACE_US 250
#define STOP_GRACE_MAX_US 4000

static bool dstate_reads(void)
{
#ifdef HP_TEST_HOOKS
	const char *skip = getenv("HP_ENGINE_TEST_SEIZE_D");

	if (skip && strcmp(skip, "1") == 0)
		return false;
#endif
	return true;
}

/*
 * Wait for the interrupt stop of tid, seized and interrupted, until
 * deadline; 1 when it is found in state D first (still seized, not
 * stopped), else as wait_stop.
 */
static int wait_held(struct ptr_world *w, pid_t tid, uint64_t deadline, bool reads)
{
	uint64_t grace = STOP_GRACE_US;
	bool again = false;

	for (;;) {
		uint64_t until = reads ? hp_now_us() + grace : deadline;
		unsigned slept = counts.n_slept;
		char s;
		int r;

		if (until > deadline)
			until = deadline;
		r = wait_stop(w, tid, true, NULL, until);
		if (again) {
			/* one wait, however many slices (apply_prof's counts) */
			counts.n_waits--;
			if (counts.n_slept > slept)
				counts.n_slept--;
		}
		if (r != -ETIMEDOUT || until == deadline)
			return r;
		if (proc_task_state(w->pid, tid, &s) == 0 && s == 'D')
			return 1;
		grace = grace * 2 > STOP_GRACE_MAX_US ? STOP_GRACE_MAX_US : grace * 2;
		again = true;
	}
}

/*
 * Thread t of the stop, seized, was found in state D: every other thread
 * but the sys thread is let go, and t waited for alone, until the deadline
 * of the first thread found in D since the last stop that ended (one bound
 * for however many are met in a row). -EAGAIN once it has stopped (it is
 * let go too: the caller stops again), else -EBUSY, t left seized (stuck).
 */
static int dstate_wait(struct ptr_world *w, struct ptr_thread *t, uint64_t deadline)
{
	pid_t tid = t->tid;
	int r;

	thread_remove(w, t);
	ptr_resume(w, true);
	if (!w->d_deadline)
		w->d_deadline = deadline;
	r = release_unstopped(w, tid, w->d_deadline);
	if (r == -ETIMEDOUT) {
		w->d_deadline = 0;
		return stuck_err(w, tid);
	}
	/* one that keeps going back to D as it is stopped: the same bound */
	if (hp_now_us() >= w->d_deadline) {
		w->d_deadline = 0;
		return hp_err(-EBUSY, "thread %d did not stop within %u ms (state D)", (int)tid,
			      stop_ms(w));
	}
	return -EAGAIN;
}

int ptr_stop_all(struct ptr_world *w)
{
	pid_t *tids = NULL;
	size_t n = 0;
	bool first = true, reads = dstate_reads();
	uint64_t deadline;
	int r = 0;

	/* one deadline for the whole stop: a thread in uninterruptible sleep
	 * (vfork, a hung NFS read) must not hold the others, or the caller */
	deadline = stop_deadline(w);
	w->t_all_stopped_begin = hp_now_us();
	w->on_stop_r = 0;
	/* the threads already held (the sys thread) are checked first */
	for (size_t i = 0; i < w->n && w->on_stop && !w->on_stop_r; i++)
		if (w->t[i].stopped)
			w->on_stop_r = w->on_stop(w->on_stop_arg, &w->t[i]);
	for (unsigned round = 0;; round++) {
		size_t before = w->n, added = 0;

		/* each round stops every thread the last one found being born */
		if (round == STOP_ROUNDS_MAX) {
			r = hp_err(-EBUSY, "process %d: threads keep being created (%zu stopped)",
				   (int)w->pid, w->n);
			goto fail;
		}

		r = list_tasks(w, &tids, &n);
		if (r < 0)
			goto fail;
		/* the leader last (see ptr_stop_sys: while it is traced, every
		 * other thread should be too) */
		for (size_t i = 0; i + 1 < n; i++)
			if (tids[i] == w->pid) {
				tids[i] = tids[n - 1];
				tids[n - 1] = w->pid;
			}
		for (size_t i = 0; i < n; i++) {
			struct ptr_thread *t;

			if (ptr_find(w, tids[i]))
				continue;
			r = seize(w, tids[i]);
			if (r == -ESRCH)
				continue; /* exited meanwhile */
			if (r < 0)
				goto fail;
			t = thread_add(w, tids[i]);
			if (!t) {
				release_unstopped(w, tids[i], deadline);
				r = -ENOMEM;
				goto fail;
			}
			added++;
		}
		free(tids);
		tids = NULL;
		for (size_t i = before; i < w->n;) {
			struct ptr_thread *t = &w->t[i];

			r = wait_held(w, t->tid, deadline, reads);
			if (r == 1)
				return dstate_wait(w, t, deadline);
			if (r == -ETIMEDOUT) {
				pid_t tid = t->tid;

				thread_remove(w, t);
				stuck_add(w, tid);
				r = stuck_err(w, tid);
				goto fail;
			}
			if (r == 0)
				r = arch_getregs(t);
			if (r == -ESRCH) {
				/* a thread that exits is no longer our concern */
				ptrace(PTRACE_DETACH, t->tid, NULL, NULL);
				thread_remove(w, t);
				continue;
			}
			if (r < 0)
				goto fail;
			restart_fixup(w, t);
			t->stopped = true;
			if (w->on_stop && !w->on_stop_r)
				w->on_stop_r = w->on_stop(w->on_stop_arg, t);
			i++;
		}
		/* a stable list with every listed thread stopped: nobody left to clone */
		if (!added && !first)
			break;
		first = false;
		/*
		 * Every thread we hold is in its ptrace-stop, so alive and counted
		 * by the kernel: as many threads in the group as we hold means
		 * none was born that we missed (one of ours could only have left
		 * by a SIGKILL of the group, or an exec in a thread we missed, which
		 * leaves one thread). Any other count, a zombie leader's say, takes
		 * the listing again.
		 */
		if (proc_thread_count_fd(w->task_fd) == (long)w->n) /* list_tasks opened it */
			break;
	}
	w->n_seen = w->n;
	w->d_deadline = 0;
	return 0;
fail:
	free(tids);
	ptr_resume(w, true);
	w->d_deadline = 0;
	return r;
}

static void detach(const struct ptr_thread *t)
{
	ptrace(PTRACE_DETACH, t->tid, NULL, (void *)(long)t->sig);
}

/*
 * In the order the threads were stopped (first held, first let go): each
 * is then held for about the same time, the stop of those after it plus
 * the release of those before it, where letting go in any other order
 * holds the first ones for the whole stop and release.
 */
int ptr_resume(struct ptr_world *w, bool keep_sys)
{
	struct own_code *own_e = NULL;
	uint64_t deadline = 0;
	size_t kept = 0;
	int r = 0;

	/* the leader first (see ptr_stop_sys), then in the order held */
	for (size_t i = 0; i < w->n; i++)
		if (w->t[i].tid == w->pid && w->t[i].stopped && w->pid != w->sys_tid) {
			struct ptr_thread lt = w->t[i];

			memmove(&w->t[1], &w->t[0], i * sizeof(w->t[0]));
			w->t[0] = lt;
			break;
		}
	for (size_t i = 0; i < w->n; i++) {
		struct ptr_thread *t = &w->t[i];

		if (t->tid == w->sys_tid && keep_sys)
			continue;
		if (t->tid == w->sys_tid && w->injecting) {
			int e = ptr_syscall_end(w);

			if (e < 0 && !r)
				r = e;
		}
		if (t->stopped)
			detach(t);
	}
	/* once every thread is let go: how each was (own_code_note) */
	pthread_mutex_lock(&own_lock);
	for (size_t i = 0; i < w->n; i++) {
		const struct ptr_thread *t = &w->t[i];

		if (t->stopped && !(t->tid == w->sys_tid && keep_sys))
			own_code_note_locked(w, &own_e, t->tid, !arch_in_syscall(t->regs));
	}
	pthread_mutex_unlock(&own_lock);
	/* then those seized on an error path before their stop was seen,
	 * once nobody else waits for them (one may be in state D) */
	for (size_t i = 0; i < w->n; i++) {
		struct ptr_thread *t = &w->t[i];

		if (t->tid == w->sys_tid && keep_sys) {
			w->t[kept++] = *t;
			continue;
		}
		if (!t->stopped) {
			if (!deadline)
				deadline = stop_deadline(w);
			release_unstopped(w, t->tid, deadline);
		}
	}
	w->n = kept;
	w->t_all_resumed = hp_now_us();
	return r;
}

void ptr_world_release(struct ptr_world *w)
{
	if (!w)
		return;
	ptr_resume(w, false);
	/* threads that had not stopped in time: let go of those that have now */
	for (size_t i = 0; i < w->n_stuck; i++) {
		int st;

		if (waitpid(w->stuck[i], &st, __WALL | WNOHANG) == w->stuck[i] && WIFSTOPPED(st))
			ptrace(PTRACE_DETACH, w->stuck[i], NULL, NULL);
	}
	w->n_stuck = 0;
	ptr_world_forget(w);
}

/* Write the trampoline for t's saved registers (over zero padding). */
static int tramp_write(struct ptr_world *w, const struct ptr_thread *t)
{
	uint8_t code[ARCH_TRAMP_MAX], prev[2] = { 0 };
	size_t len;
	int r;

	/* whether a syscall instruction precedes its pc: read once per thread held */
	if (w->prev_pc != arch_syscall_pc(t->regs) || w->prev_tid != t->tid) {
		proc_mem_read(w->mem_fd, arch_syscall_pc(t->regs) - 2, prev, 2);
		w->prev_syscall = memcmp(prev, arch_syscall_insn, 2) == 0;
		w->prev_pc = arch_syscall_pc(t->regs);
		w->prev_tid = t->tid;
	}
	len = arch_tramp_build(t->regs, w->prev_syscall, &w->undo, code);
	r = proc_mem_write(w->mem_fd, w->tramp_addr, code, len);
	if (r < 0)
		return r;
	w->tramp_len = len;
	return 0;
}

int ptr_set_undo(struct ptr_world *w, uint64_t base, uint64_t size, bool on)
{
	struct ptr_thread *t = ptr_find(w, w->sys_tid);

	w->undo = (struct ptr_undo){ base, size, on };
	/* the thread sits in a syscall stop, not in the trampoline: rewrite it */
	if (w->tramp_len && t)
		return tramp_write(w, t);
	return 0;
}

/*
 * One step of the sys thread t under our registers: on to its next system
 * call stop (entry or exit) until deadline (0: no bound), a signal
 * meanwhile kept for later; its registers then into regs (NULL: not read).
 */
static int sys_step(struct ptr_world *w, struct ptr_thread *t, uint64_t deadline, uint64_t *regs)
{
	int r;

	if (ptrace(PTRACE_SYSCALL, t->tid, NULL, NULL) < 0)
		return -errno;
	w->at_sys_stop = true;
	r = wait_stop(w, t->tid, false, &t->sig, deadline);
	if (r < 0)
		return r;
	if (regs && ptrace(PTRACE_GETREGS, t->tid, NULL, regs) < 0)
		return -errno;
	return 0;
}

/*
 * From the entry stop of a call the sys thread t makes under our registers:
 * the call run, and the thread stopped on its way out of it, before its
 * next instruction, in an interrupt stop (the interrupt asked for now is
 * taken when the call returns: the kernel looks at pending traps before it
 * returns to user space), until deadline (0: no bound); its registers then
 * into regs. One stop where the exit stop and the interrupt stop that lets
 * its own registers be given back (ptr_syscall_end) were two, each a round
 * trip to the thread. A signal that comes meanwhile stays queued: the
 * interrupt stop comes first. If we die before that stop, the kernel drops
 * the interrupt with us, and the thread goes on into the trampoline's undo.
 */
static int sys_finish(struct ptr_world *w, struct ptr_thread *t, uint64_t deadline, uint64_t *regs)
{
	int r;

	if (ptrace(PTRACE_INTERRUPT, t->tid, NULL, NULL) < 0 ||
	    ptrace(PTRACE_CONT, t->tid, NULL, NULL) < 0)
		return -errno;
	r = wait_stop(w, t->tid, true, NULL, deadline);
	if (r < 0)
		return r;
	w->at_sys_stop = false;
	if (regs && ptrace(PTRACE_GETREGS, t->tid, NULL, regs) < 0)
		return -errno;
	return 0;
}

/*
 * The sys thread t did not come back in time from what we made it run: it
 * is left to finish it (and resume itself when let go, at the calling
 * thread's exit at the latest); no more calls in this process. Its tid.
 */
static pid_t sys_lost(struct ptr_world *w, struct ptr_thread *t)
{
	pid_t tid = t->tid;

	thread_remove(w, t);
	stuck_add(w, tid);
	w->injecting = false;
	w->lost = true;
	return tid;
}

int ptr_syscall(struct ptr_world *w, long nr, const uint64_t args[6], int64_t *ret)
{
	struct ptr_thread *t = ptr_find(w, w->sys_tid);
	uint64_t regs[32], deadline;
	int r;

	if (w->lost || !t)
		return hp_err(-EBUSY, "process %d: no thread for system calls", (int)w->pid);
	counts.n_remote++;
	if (!w->injecting && w->tramp_addr && !w->tramp_len) {
		r = tramp_write(w, t);
		if (r < 0)
			goto fail;
	}
	arch_syscall_regs(t->regs, regs, w->tramp_len ? w->tramp_addr : w->syscall_insn, nr, args);
	r = arch_setregs(t, regs);
	if (r < 0)
		goto fail;
	w->injecting = true;
	/*
	 * Bounded when the call runs at the trampoline: a call that blocks
	 * (mmap waiting for mmap_lock behind a fault on a hung file system)
	 * is left to the thread, which on our exit finishes it, undoes it and
	 * returns to its own code. At the vDSO's instruction it would return
	 * into the vDSO with our registers: that wait is not bounded.
	 */
	deadline = w->tramp_len ? stop_deadline(w) : 0;
	r = sys_step(w, t, deadline, NULL); /* the entry stop */
	if (r == 0)
		r = sys_finish(w, t, deadline, regs);
	if (r < 0)
		goto fail;
	*ret = arch_syscall_result(regs);
	return 0;
fail:
	if (r == -ETIMEDOUT) {
		/* it runs the trampoline when we let go: keep it there */
		pid_t tid = sys_lost(w, t);

		return hp_err(-EBUSY, "process %d: remote system call %ld in thread %d did not finish within %u ms",
			      (int)w->pid, nr, (int)tid, stop_ms(w));
	}
	return hp_err(r == -ESRCH ? -ESRCH : r, "process %d: remote system call %ld in thread %d: %s",
		      (int)w->pid, nr, (int)t->tid, strerror(-r));
}

int ptr_syscall_end(struct ptr_world *w)
{
	struct ptr_thread *t = ptr_find(w, w->sys_tid);
	int r = 0;

	if (!t)
		return 0;
	if (w->injecting) {
		/* at a system call stop (ptr_call): to an interrupt stop first */
		if (w->at_sys_stop) {
			r = sys_finish(w, t, stop_deadline(w), NULL);
			if (r < 0)
				goto out;
		}
		r = arch_setregs(t, t->regs);
		if (r < 0)
			goto out;
		w->injecting = false;
	}
	/* the thread no longer needs the trampoline: put the bytes back */
	if (w->tramp_len) {
		static const uint8_t zero[ARCH_TRAMP_MAX];

		/* the place was zero padding (engine.c picks it so) */
		proc_mem_write(w->mem_fd, w->tramp_addr, zero, ARCH_TRAMP_MAX);
		w->tramp_len = 0;
	}
	if (t->sig) {
		/* a signal that arrived during our calls: queue it again */
		syscall(SYS_tgkill, w->pid, t->tid, t->sig);
		t->sig = 0;
	}
out:
	if (r < 0)
		return hp_err(r, "process %d: restore thread %d: %s", (int)w->pid, (int)t->tid,
			      strerror(-r));
	return 0;
}

/*
 * A function call in the sys thread (unwind.c registers the patch's unwind
 * tables with the target's own unwinder this way). From the thread's own
 * registers: its vector state saved, a call trampoline written where the
 * syscall trampoline goes (zero padding), the return address pushed on
 * the given stack, the registers pointed at func. Then PTRACE_SYSCALL until
 * the trampoline's getpid entry stop (a system call the function makes on
 * the way is let through; a signal meanwhile is kept for later), and the
 * thread given back its registers as after an injected system call.
 */
int ptr_call(struct ptr_world *w, uint64_t func, uint64_t a0, uint64_t a1, uint64_t stack_top,
	     uint64_t done_addr, uint64_t done_val)
{
	struct ptr_thread *t = ptr_find(w, w->sys_tid);
	struct arch_fpstate fp = { 0 };
	uint8_t code[ARCH_TRAMP_MAX], prev[2] = { 0 };
	uint64_t regs[32], ret_addr, stop_pc, sp, deadline;
	size_t len;
	int r;

	if (w->lost || !t)
		return hp_err(-EBUSY, "process %d: no thread for remote calls", (int)w->pid);
	counts.n_remote++;
	if (!w->tramp_addr)
		return hp_err(-ENOEXEC, "process %d: no zero padding after a code segment for a "
			      "call trampoline", (int)w->pid);
	r = ptr_syscall_end(w);
	if (r < 0)
		return r;
	r = arch_fpstate_save(t->tid, &fp);
	if (r < 0)
		return hp_err(r, "process %d: read the vector state of thread %d: %s", (int)w->pid,
			      (int)t->tid, strerror(-r));
	proc_mem_read(w->mem_fd, arch_syscall_pc(t->regs) - 2, prev, 2);
	len = arch_call_tramp_build(t->regs, memcmp(prev, arch_syscall_insn, 2) == 0,
				    w->tramp_addr, done_addr, done_val, code, &ret_addr, &stop_pc);
	sp = (stack_top & ~(uint64_t)15) - 8; /* as after a call: rsp + 8 aligned */
	r = proc_mem_write(w->mem_fd, sp, &ret_addr, sizeof(ret_addr));
	if (r == 0)
		r = proc_mem_write(w->mem_fd, w->tramp_addr, code, len);
	if (r < 0)
		goto fail;
	w->tramp_len = len;
	arch_call_regs(t->regs, regs, func, a0, a1, sp);
	r = arch_setregs(t, regs);
	if (r < 0)
		goto fail;
	w->injecting = true;
	deadline = stop_deadline(w);
	do {
		r = sys_step(w, t, deadline, regs);
		if (r < 0)
			goto fail;
	} while (arch_syscall_pc(regs) != stop_pc || arch_syscall_nr(regs) != SYS_getpid);
	r = ptr_syscall_end(w);
	if (r == 0) {
		r = arch_fpstate_restore(t->tid, &fp);
		if (r < 0)
			r = hp_err(r, "process %d: restore the vector state of thread %d: %s",
				   (int)w->pid, (int)t->tid, strerror(-r));
	}
	arch_fpstate_release(&fp);
	return r;
fail:
	arch_fpstate_release(&fp);
	if (r == -ETIMEDOUT) {
		/* the thread finishes the call and resumes itself when let go */
		pid_t tid = sys_lost(w, t);

		return hp_err(-EBUSY, "process %d: remote call in thread %d did not return within %u ms",
			      (int)w->pid, (int)tid, stop_ms(w));
	}
	if (w->injecting) {
		/* the call did not start: the thread's own registers back */
		ptr_syscall_end(w);
	}
	return hp_err(r == -ESRCH ? -ESRCH : r, "process %d: remote call in thread %d: %s",
		      (int)w->pid, (int)t->tid, strerror(-r));
}

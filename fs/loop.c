/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * loop.c: hotpatchfs's request loop, in place of libfuse's multi-threaded
 * one.
 *
 * On this kind of machine (virtual, 2 cpus) a FUSE round trip is mostly
 * the wake-up of a daemon thread on another cpu: an open + close of a
 * catalog file costs 43-97 us through the mount against 3-4 us on plain
 * files, 22-28 us with the daemon and the caller pinned to one cpu
 * (tests/bench/README.md). So the thread that receives does not go to
 * sleep at once: after each request it reads /dev/fuse (non-blocking) for
 * up to busy_poll_us before it sleeps in poll(), and a caller that asks
 * again within that time (the next file of a walk, the RELEASE after an
 * OPEN) finds it awake, yielding its CPU between two reads to any thread
 * waiting for it (the caller, about to ask again, is often one). One thread
 * at a time receives; the others sleep.
 *
 * That spin pays only where the next request comes within busy_poll_us,
 * and each turn of it is two system calls (a read that finds nothing, a
 * sched_yield): on an idle CPU, where sched_yield returns at once, 25-60
 * pairs an apply+revert pair spent after each one's RELEASE, the next
 * `echo PID > apply` being milliseconds away. So the loop learns, per kind
 * of request just answered (its FUSE opcode), whether the next request
 * came within busy_poll_us of the answer: it spins after a kind whose
 * followers came quickly (an OPEN, a walk's RELEASE), and after one whose
 * last SPIN_CREDIT followers all came late it sleeps in poll() at once
 * (no read first: poll says when there is one). It keeps measuring while
 * it sleeps (when the request came, against busy_poll_us; no system call:
 * the clock is the vDSO's), and one quick follower turns the spin back on.
 *
 * Quick requests (names, attributes, listings, the catalog's files:
 * hpfs_ll_quick) are answered by the receiving thread itself, which then
 * receives again. Any other one (control and state files, incoming/: an
 * apply may wait for safety for a second) is first handed the receiving
 * role on: an idle thread is woken, or a new one started (up to
 * max_threads), so that it never holds up other requests;
 * the thread that finishes a request receives again if nobody does.
 * While such a request runs, the receiver does not spin: it sleeps in
 * poll() at once. Its spinning took the CPU the apply itself (and the
 * target it stops) needed: on 2 CPUs with one taken by the target, the
 * OPEN of the next `echo PID > apply` waited 500 us for a time slice
 * instead of 90 (tests/bench/README.md).
 *
 * A stop: fusermount3 -u (the device read fails with ENODEV) or a signal
 * (libfuse's handlers mark the session exited; they run in the thread that
 * called hpfs_loop, the only one with those signals unblocked), after
 * which the threads finish what they are doing and are joined.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "hpfs.h"
#include <fuse_lowlevel.h>
#include <linux/fuse.h>

#define LOOP_DEFAULT_THREADS 10
#define LOOP_OPCODES 64 /* FUSE opcodes learnt; others (CUSE_INIT) always spin */
#define SPIN_CREDIT 3   /* followers in a row that came late before the spin stops */

struct loop {
	struct fuse_session *se;
	int fd;                 /* /dev/fuse, non-blocking */
	int stop_fd;            /* eventfd: wakes the thread in poll() at a stop */
	unsigned busy_poll_us;
	unsigned max_threads;

	pthread_mutex_t mu;
	pthread_cond_t idle;    /* threads waiting to receive */
	bool receiving;         /* a thread holds the receiving role */
	unsigned n_running;     /* threads in a request that was handed on (not quick) */
	bool stop;
	int error;              /* a failed device read, negative errno */
	unsigned n_idle;
	pthread_t *th;
	unsigned n_th;

	/* per opcode answered: SPIN_CREDIT less the followers since the last quick one
	 * that came late; changed by the receiving thread only */
	unsigned char credit[LOOP_OPCODES];
};

static void *worker(void *arg);

/*
 * Under mu. Start a thread if none waits and there is room; true when one
 * waits: the caller signals l->idle once it has let go of mu (signalled
 * under it, the woken thread would wake only to wait for mu, two more
 * futex calls; a thread woken finds receiving clear, so none is missed).
 */
static bool hand_on(struct loop *l)
{
	if (l->n_idle)
		return true;
	if (l->n_th < l->max_threads && pthread_create(&l->th[l->n_th], NULL, worker, l) == 0)
		l->n_th++;
	return false;
}

/* Under mu. */
static void stop_locked(struct loop *l, int error)
{
	uint64_t one = 1;

	if (!l->stop) {
		l->stop = true;
		l->error = error;
		if (write(l->stop_fd, &one, sizeof(one)) < 0) {
			/* the poller also wakes at the next request or unmount */
		}
	}
	pthread_cond_broadcast(&l->idle);
}

/*
 * One request into buf: > 0 its size, 0 the session ended (unmounted, or
 * exited), -EAGAIN woken for a stop, other negative errnos fatal. after:
 * the opcode of the request this thread answered last (UINT32_MAX: none).
 */
static int receive(struct loop *l, struct fuse_buf *buf, uint32_t after)
{
	unsigned char *credit = after < LOOP_OPCODES ? &l->credit[after] : NULL;
	/* spin (and learn) only while none of ours runs: one that runs is not waited for */
	bool learn = !__atomic_load_n(&l->n_running, __ATOMIC_RELAXED) && after != UINT32_MAX;
	bool spin = learn && l->busy_poll_us && (!credit || *credit);
	bool look = spin; /* read before sleeping: the request may be there */
	uint64_t idle_from = 0;

	for (;;) {
		uint64_t now;
		int r;

		if (fuse_session_exited(l->se))
			return 0;
		if (look) {
			r = fuse_session_receive_buf(l->se, buf);
			if (r > 0 || r == 0) {
				if (r > 0 && learn && credit && idle_from) {
					/* did it come while a spin would have been there? */
					if (hp_now_us() - idle_from <= l->busy_poll_us)
						*credit = SPIN_CREDIT;
					else if (*credit)
						(*credit)--;
				}
				return r;
			}
			if (r == -EINTR)
				continue;
			if (r != -EAGAIN)
				return r;
		}
		now = hp_now_us();
		if (!idle_from)
			idle_from = now;
		/* nothing yet: look again for a while (none of ours running), then sleep */
		if (spin && !__atomic_load_n(&l->n_running, __ATOMIC_RELAXED) &&
		    now - idle_from < l->busy_poll_us) {
			/* spin, but let a thread waiting for this CPU (the
			 * caller itself, often) run first */
			sched_yield();
			look = true;
			continue;
		}
		{
			struct pollfd p[2] = { { l->fd, POLLIN, 0 }, { l->stop_fd, POLLIN, 0 } };

			if (poll(p, 2, -1) < 0 && errno != EINTR)
				return -errno;
			if (p[1].revents)
				return -EAGAIN;
			look = true;
		}
	}
}

static void *worker(void *arg)
{
	struct loop *l = arg;
	struct fuse_buf buf;
	uint32_t last = UINT32_MAX; /* the opcode this thread answered last */

	memset(&buf, 0, sizeof(buf));
	pthread_mutex_lock(&l->mu);
	for (;;) {
		const struct fuse_in_header *h;
		bool quick, wake = false;
		int r;

		while (!l->stop && l->receiving) {
			l->n_idle++;
			pthread_cond_wait(&l->idle, &l->mu);
			l->n_idle--;
			last = UINT32_MAX; /* idle since: it answered nothing just now */
		}
		if (l->stop)
			break;
		l->receiving = true;
		pthread_mutex_unlock(&l->mu);
		r = receive(l, &buf, last);
		pthread_mutex_lock(&l->mu);
		l->receiving = false;
		if (r <= 0) {
			if (r != -EAGAIN)
				stop_locked(l, r < 0 ? r : 0);
			continue;
		}
		h = buf.mem;
		quick = (size_t)r >= sizeof(*h) && !(buf.flags & FUSE_BUF_IS_FD) &&
			hpfs_ll_quick(h->opcode, h->nodeid);
		if (!quick) {
			/* it may take long: somebody else receives meanwhile */
			__atomic_add_fetch(&l->n_running, 1, __ATOMIC_RELAXED);
			wake = hand_on(l);
		}
		last = (size_t)r >= sizeof(*h) && !(buf.flags & FUSE_BUF_IS_FD) ? h->opcode : UINT32_MAX;
		pthread_mutex_unlock(&l->mu);
		if (wake)
			pthread_cond_signal(&l->idle);
		fuse_session_process_buf(l->se, &buf);
		pthread_mutex_lock(&l->mu);
		if (!quick)
			__atomic_sub_fetch(&l->n_running, 1, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&l->mu);
	free(buf.mem);
	return NULL;
}

int hpfs_loop(struct fuse_session *se, unsigned busy_poll_us, unsigned max_threads)
{
	struct loop l;
	sigset_t block, old;
	int fl, r = 0;

	memset(&l, 0, sizeof(l));
	l.se = se;
	l.fd = fuse_session_fd(se);
	l.busy_poll_us = busy_poll_us;
	l.max_threads = max_threads ? max_threads : LOOP_DEFAULT_THREADS;
	memset(l.credit, SPIN_CREDIT, sizeof(l.credit));
	l.th = calloc(l.max_threads, sizeof(*l.th));
	l.stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	fl = fcntl(l.fd, F_GETFL);
	if (!l.th || l.stop_fd < 0 || fl < 0 || fcntl(l.fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		r = -(errno ? errno : ENOMEM);
		goto out;
	}
	pthread_mutex_init(&l.mu, NULL);
	pthread_cond_init(&l.idle, NULL);

	/* the stop signals are for this thread: the workers block them */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	pthread_mutex_lock(&l.mu);
	(void)hand_on(&l); /* none waits yet: it starts the first */
	if (!l.n_th) {
		pthread_mutex_unlock(&l.mu);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		r = -EAGAIN;
		goto destroy;
	}
	pthread_mutex_unlock(&l.mu);
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	/* wait for a stop: a signal handler marks the session exited and
	 * interrupts the wait below (EINTR), a worker says so itself */
	pthread_mutex_lock(&l.mu);
	while (!l.stop) {
		pthread_mutex_unlock(&l.mu);
		{
			struct pollfd p = { l.stop_fd, POLLIN, 0 };

			poll(&p, 1, 200);
		}
		pthread_mutex_lock(&l.mu);
		if (fuse_session_exited(se))
			stop_locked(&l, 0);
	}
	r = l.error;
	pthread_mutex_unlock(&l.mu);
	for (unsigned i = 0; i < l.n_th; i++)
		pthread_join(l.th[i], NULL);
destroy:
	pthread_cond_destroy(&l.idle);
	pthread_mutex_destroy(&l.mu);
out:
	if (fl >= 0)
		fcntl(l.fd, F_SETFL, fl);
	if (l.stop_fd >= 0)
		close(l.stop_fd);
	free(l.th);
	return r;
}

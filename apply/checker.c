/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * checker.c: the safety checks of a stop, run on two threads.
 *
 * A stop holds the target's threads one after the other; each is checked
 * (safety.c) as soon as it is held, and a held thread stays where it is
 * until the switch, so what is seen of it holds then. Checking costs about
 * as much per thread as stopping it (a mapping lookup, a read of its live
 * stack, a scan), so done on the stopping thread it roughly doubles the
 * pause of a process with many threads. Nothing in a check needs ptrace
 * (the registers come from the stop; memory is read with
 * process_vm_readv), so a second thread, started before the stop, checks
 * the threads the stopping thread queues while it goes on stopping the
 * others. Once every thread is held the stopping thread takes from the
 * queue too, and waits for the one check the worker may still be running:
 * the stop ends at most one check after the last thread is held.
 *
 * Only for processes with many threads (CHECKER_MIN_THREADS): handing a
 * thread over costs a wake-up of the worker, which on a loaded machine
 * may wait for a CPU while the stopping thread waits for it. Measured
 * with bench-apply (2 loaded cpus, median seen stop over the bare ptrace
 * stop): 64 threads 1.38x with the worker against 1.60x without, 256
 * threads 1.25x against 1.61x; but 1 thread 2.19x against 1.55x and 16
 * threads 1.72x against 1.51x. Below the threshold each thread is checked
 * on the stopping thread as soon as it is held, as before.
 *
 * Each thread has its own safety session (libunwind's address space is per
 * calling thread); the first failure (by the order checks end) is kept,
 * with its message, and the checks still queued are dropped.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply-int.h"

struct checker_item {
	pid_t tid;
	uint64_t regs[32];
};

/* A process with fewer threads is checked on the stopping thread alone. */
#define CHECKER_MIN_THREADS 32

struct checker {
	pthread_t th;
	bool have_th;             /* the worker is running */
	bool parallel;            /* this round hands checks to it */
	pthread_mutex_t mu;
	pthread_cond_t work;      /* worker: an item, a new round or quit */
	pthread_cond_t idle;      /* stopper: the worker finished its item */
	bool quit;
	bool waiting;             /* the worker sleeps on work */
	bool busy;                /* the worker runs a check now */

	/* one round (one stop): under mu */
	unsigned round;           /* bumped by checker_begin */
	unsigned ready;           /* the round the worker has its session for */
	const struct safety_range *ranges;
	size_t n_ranges;
	struct checker_item *q;
	size_t n, cap, next;
	int r;                    /* first failure, 0 while none */
	char msg[HP_ERRMSG_MAX];

	struct safety_session *mine; /* the stopping thread's session */
};

/* Keep the first failure; drop what is still queued. Under mu. */
static void fail_locked(struct checker *k, int r, const char *msg)
{
	if (k->r < 0)
		return;
	k->r = r;
	snprintf(k->msg, sizeof(k->msg), "%s", msg);
	k->next = k->n;
}

static void *worker(void *arg)
{
	struct checker *k = arg;
	struct safety_session *s = NULL;
	unsigned round = 0;

	hp_err_clear();
	pthread_mutex_lock(&k->mu);
	for (;;) {
		struct checker_item it;
		int r;

		if (k->quit)
			break;
		if (round != k->round && k->parallel) {
			/* a new stop: a session of its own, made before its
			 * threads arrive */
			const struct safety_session *mine = k->mine;
			const struct safety_range *ranges = k->ranges;
			size_t n_ranges = k->n_ranges;

			round = k->round;
			pthread_mutex_unlock(&k->mu);
			safety_end(s);
			s = NULL;
			/* the stopping thread's mapping list, read once */
			r = mine ? safety_begin_like(mine, ranges, n_ranges, &s)
				 : hp_err(-EINVAL, "no session to check with");
			pthread_mutex_lock(&k->mu);
			if (r < 0 && round == k->round)
				fail_locked(k, r, hp_errmsg(r));
			k->ready = round;
			pthread_cond_signal(&k->idle);
			continue;
		}
		if (!s || k->next == k->n || k->r < 0) {
			k->waiting = true;
			pthread_cond_wait(&k->work, &k->mu);
			k->waiting = false;
			continue;
		}
		it = k->q[k->next++];
		k->busy = true;
		pthread_mutex_unlock(&k->mu);
		r = safety_thread(s, it.tid, it.regs);
		pthread_mutex_lock(&k->mu);
		k->busy = false;
		if (r < 0 && round == k->round)
			fail_locked(k, r, hp_errmsg(r));
		pthread_cond_signal(&k->idle);
	}
	pthread_mutex_unlock(&k->mu);
	safety_end(s);
	return NULL;
}

int checker_start(struct checker **ret)
{
	struct checker *k;

	k = calloc(1, sizeof(*k));
	if (!k)
		return hp_err(-ENOMEM, "out of memory");
	pthread_mutex_init(&k->mu, NULL);
	pthread_cond_init(&k->work, NULL);
	pthread_cond_init(&k->idle, NULL);
	*ret = k;
	return 0;
}

void checker_stop(struct checker *k)
{
	if (!k)
		return;
	if (k->have_th) {
		pthread_mutex_lock(&k->mu);
		k->quit = true;
		pthread_cond_signal(&k->work);
		pthread_mutex_unlock(&k->mu);
		pthread_join(k->th, NULL);
	}
	safety_end(k->mine);
	free(k->q);
	pthread_cond_destroy(&k->idle);
	pthread_cond_destroy(&k->work);
	pthread_mutex_destroy(&k->mu);
	free(k);
}

int checker_begin(struct checker *k, pid_t pid, const struct safety_range *ranges, size_t n,
		  size_t n_threads, const struct proc_maps *maps, int maps_fd)
{
	int r;

	/* the worker is started once, before a stop, for a process with many
	 * threads; without one (none to be had) the stopping thread checks
	 * alone: a longer pause, the same result */
	if (n_threads >= CHECKER_MIN_THREADS && !k->have_th)
		k->have_th = pthread_create(&k->th, NULL, worker, k) == 0;
	safety_end(k->mine);
	k->mine = NULL;
	r = safety_begin_hinted(pid, ranges, n, maps, maps_fd, &k->mine);
	if (r < 0)
		return r;
	pthread_mutex_lock(&k->mu);
	k->parallel = n_threads >= CHECKER_MIN_THREADS && k->have_th;
	k->round++;
	k->ranges = ranges;
	k->n_ranges = n;
	k->n = k->next = 0;
	k->r = 0;
	k->msg[0] = '\0';
	if (k->parallel) {
		/* its session (the mapping list read) is made now, before the
		 * stop, not while the threads are being stopped */
		pthread_cond_signal(&k->work);
		while (k->ready != k->round && !k->quit)
			pthread_cond_wait(&k->idle, &k->mu);
	}
	pthread_mutex_unlock(&k->mu);
	return 0;
}

int checker_add(struct checker *k, pid_t tid, const uint64_t *regs)
{
	bool wake = false;
	int r = 0;

	if (!k->parallel) {
		/* checked here, now (k->r is written by this thread only) */
		if (k->r < 0)
			return k->r;
		r = safety_thread(k->mine, tid, regs);
		if (r < 0) {
			pthread_mutex_lock(&k->mu);
			fail_locked(k, r, hp_errmsg(r));
			pthread_mutex_unlock(&k->mu);
		}
		return r;
	}
	pthread_mutex_lock(&k->mu);
	if (k->r < 0) {
		r = k->r; /* already unsafe: no need to look further */
		goto out;
	}
	if (k->n == k->cap) {
		size_t cap = k->cap ? k->cap * 2 : 64;
		struct checker_item *q = realloc(k->q, cap * sizeof(*q));

		if (!q) {
			r = hp_err(-ENOMEM, "out of memory");
			fail_locked(k, r, hp_errmsg(r));
			goto out;
		}
		k->q = q;
		k->cap = cap;
	}
	k->q[k->n].tid = tid;
	memcpy(k->q[k->n].regs, regs, sizeof(k->q[k->n].regs));
	k->n++;
	wake = k->waiting;
out:
	pthread_mutex_unlock(&k->mu);
	/* woken after the unlock: woken under it, the worker would find the
	 * mutex held and sleep again on it (two wake-ups per thread, and a
	 * system call for each on this thread, while the process is held) */
	if (wake)
		pthread_cond_signal(&k->work);
	return r;
}

int checker_finish(struct checker *k)
{
	int r;

	pthread_mutex_lock(&k->mu);
	while (k->next < k->n && k->r == 0) {
		struct checker_item it = k->q[k->next++];

		pthread_mutex_unlock(&k->mu);
		r = safety_thread(k->mine, it.tid, it.regs);
		pthread_mutex_lock(&k->mu);
		if (r < 0)
			fail_locked(k, r, hp_errmsg(r));
	}
	while (k->busy)
		pthread_cond_wait(&k->idle, &k->mu);
	r = k->r;
	if (r < 0)
		hp_err(r, "%s", k->msg);
	pthread_mutex_unlock(&k->mu);
	return r;
}

void checker_drop(struct checker *k)
{
	pthread_mutex_lock(&k->mu);
	k->next = k->n;
	while (k->busy)
		pthread_cond_wait(&k->idle, &k->mu);
	pthread_mutex_unlock(&k->mu);
}

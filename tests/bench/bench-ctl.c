/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-ctl: where the time of one `echo PID > apply` goes before and
 * around the engine, through libhpctl as hotpatchfs calls it.
 *
 *   bench-ctl STORE [REPS]
 *
 * STORE must hold a signed set for tests/fixtures/bench/bench-target (as
 * tests/bench/run makes it). Starts a lean bench-target (main and a
 * spinning heartbeat) as root, and one as nobody, then times, REPS times
 * each, in turn: the permission check for root and for nobody (the kernel's
 * answer through a helper holding nobody's credentials), the snapshot
 * (HEAD looked at), the inspection of the process, the store lookup, the
 * whole ctl_apply and ctl_revert (which do all of that and the engine,
 * but no inspection of their own: the engine reads the process once and
 * ctl chooses from that reading), and the engine's apply and revert alone
 * (the sets given). Prints
 * "prof.ctl.WHAT.p50 VALUE us" lines.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"

/* What to undo on any exit, die() included: the targets and their files. */
static pid_t targets[2];
static char shm_paths[2][64];

static void cleanup(void)
{
	for (int i = 0; i < 2; i++) {
		if (targets[i] > 0) {
			kill(targets[i], SIGKILL);
			waitpid(targets[i], NULL, 0);
			targets[i] = 0;
		}
		if (shm_paths[i][0])
			unlink(shm_paths[i]);
		shm_paths[i][0] = '\0';
	}
}

static void die(const char *what, int r)
{
	fprintf(stderr, "bench-ctl: %s: %s\n", what, r < 0 ? hp_errmsg(r) : strerror(errno));
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t median(uint64_t *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_u64);
	return v[n / 2];
}

/* A lean bench-target (main + heartbeat), as uid (0: root). */
static pid_t start_target(const char *target, uid_t uid, char *shm_path)
{
	pid_t pid;
	int fd;

	strcpy(shm_path, "/tmp/hp-bench-ctl-XXXXXX");
	fd = mkstemp(shm_path);
	/* the target maps it: its size is the fixture's (a few hundred kB) */
	if (fd < 0 || ftruncate(fd, 1 << 20) < 0 || fchown(fd, uid, uid) < 0)
		die("temp file", 0);
	close(fd);
	pid = fork();
	if (pid < 0)
		die("fork", 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (uid && (setresgid(uid, uid, uid) < 0 || setresuid(uid, uid, uid) < 0))
			_exit(126);
		execl(target, target, "lean", shm_path, (char *)NULL);
		_exit(127);
	}
	/* its threads and libraries in place */
	nanosleep(&(struct timespec){ 0, 200000000 }, NULL);
	return pid;
}

int main(int argc, char **argv)
{
	struct ctl_opts o = { 0 };
	struct ctl_caller root = { 0, 0, 0 }, nobody = { 65534, 65534, 0 };
	char self[PATH_MAX], target[PATH_MAX + 64];
	enum { PERM_ROOT, PERM_USER, SNAP, INSPECT, LOOKUP, CTL_APPLY, CTL_REVERT, ENG_APPLY,
	       ENG_REVERT, N_WHAT };
	static const char *names[N_WHAT] = { "perm_root", "perm_user", "snapshot", "inspect",
					     "lookup", "ctl_apply", "ctl_revert", "engine_apply",
					     "engine_revert" };
	uint64_t *v[N_WHAT];
	struct ctl *c = NULL;
	ssize_t n;
	pid_t pid, upid;
	int reps = argc > 2 ? atoi(argv[2]) : 30, r;

	if (argc < 2 || reps < 1) {
		fprintf(stderr, "usage: bench-ctl STORE [REPS]\n");
		return 2;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		die("readlink /proc/self/exe", 0);
	self[n] = '\0';
	*strrchr(self, '/') = '\0';
	snprintf(target, sizeof(target), "%s/../fixtures/bench/bench-target", self);
	o.store_path = argv[1];
	r = ctl_new(&o, &c);
	if (r < 0)
		die("ctl_new", r);
	for (int k = 0; k < N_WHAT; k++) {
		v[k] = calloc((size_t)reps, sizeof(uint64_t));
		if (!v[k])
			die("calloc", -ENOMEM);
	}
	atexit(cleanup);
	pid = targets[0] = start_target(target, 0, shm_paths[0]);
	upid = targets[1] = start_target(target, 65534, shm_paths[1]);
	for (int i = 0; i < reps; i++) {
		struct ctl_result res;
		struct ctl_snap *s = NULL;
		struct apply_proc *p = NULL;
		struct store_patchset *ps = NULL;
		struct apply_result ar;
		struct apply_set set;
		uint64_t t0;

		t0 = now_ns();
		r = ctl_may_patch(&root, pid);
		v[PERM_ROOT][i] = now_ns() - t0;
		if (r < 0)
			die("ctl_may_patch root", r);
		t0 = now_ns();
		r = ctl_may_patch(&nobody, upid);
		v[PERM_USER][i] = now_ns() - t0;
		if (r < 0)
			die("ctl_may_patch nobody", r);
		t0 = now_ns();
		r = ctl_snap_get(c, true, &s);
		v[SNAP][i] = now_ns() - t0;
		if (r < 0)
			die("ctl_snap_get", r);
		t0 = now_ns();
		r = apply_inspect(pid, &p);
		v[INSPECT][i] = now_ns() - t0;
		if (r < 0)
			die("apply_inspect", r);
		t0 = now_ns();
		r = -ENOENT;
		for (size_t k = 0; k < p->n_objects && r == -ENOENT; k++)
			if (p->objects[k].build_id[0])
				r = store_lookup(ctl_snap_store(s), p->objects[k].build_id, NULL, &ps);
		v[LOOKUP][i] = now_ns() - t0;
		if (r < 0)
			die("store_lookup", r);
		t0 = now_ns();
		r = ctl_apply(c, &root, pid, NULL, &res);
		v[CTL_APPLY][i] = now_ns() - t0;
		if (r < 0)
			die("ctl_apply", r);
		t0 = now_ns();
		r = ctl_revert(c, &root, pid, &res);
		v[CTL_REVERT][i] = now_ns() - t0;
		if (r < 0)
			die("ctl_revert", r);
		set.set_id = ps->set_id;
		set.manifest = ps->manifest;
		set.so = ps->so;
		set.so_len = ps->so_len;
		t0 = now_ns();
		r = apply_patch(pid, &set, NULL, &ar);
		v[ENG_APPLY][i] = now_ns() - t0;
		if (r < 0)
			die("apply_patch", r);
		t0 = now_ns();
		r = apply_revert(pid, NULL, NULL, &ar);
		v[ENG_REVERT][i] = now_ns() - t0;
		if (r < 0)
			die("apply_revert", r);
		store_patchset_free(ps);
		apply_proc_free(p);
		ctl_snap_unref(s);
		nanosleep(&(struct timespec){ 0, 5000000 }, NULL);
	}
	for (int k = 0; k < N_WHAT; k++)
		printf("prof.ctl.%s.p50 %.0f us\n", names[k], median(v[k], (size_t)reps) / 1000.0);
	cleanup();
	ctl_free(c);
	return 0;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ptr.c on a real child process: threads parked in read, epoll_wait and
 * nanosleep; stop the sys thread, run system calls in it (getpid, mmap,
 * munmap) through the vDSO and through the trampoline, give it its
 * registers back, stop every thread, resume. The child exits 3 if any call
 * returned EINTR, 0 when told to finish: the teardown checks it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "apply-int.h"

static pid_t child;
static int to_child = -1;

static void *epoller(void *arg)
{
	int ep = epoll_create1(0), ev = eventfd(0, 0);
	struct epoll_event e = { .events = EPOLLIN }, out;

	(void)arg;
	epoll_ctl(ep, EPOLL_CTL_ADD, ev, &e);
	for (;;)
		if (epoll_wait(ep, &out, 1, -1) < 0 && errno == EINTR)
			_exit(3);
	return NULL;
}

static void *sleeper(void *arg)
{
	(void)arg;
	for (;;) {
		struct timespec ts = { 3600, 0 };

		if (nanosleep(&ts, NULL) < 0 && errno == EINTR)
			_exit(3);
	}
	return NULL;
}

/* A child's main thread: ready, then reads in until a byte comes (exit 0) or EINTR (exit 3). */
static void ready_then_read(int in, int ready)
{
	char c;

	if (write(ready, "r", 1) != 1)
		_exit(2);
	for (;;) {
		ssize_t n = read(in, &c, 1);

		if (n < 0 && errno == EINTR)
			_exit(3);
		if (n == 1)
			_exit(0);
	}
}

static void child_main(int in, int ready)
{
	pthread_t t;

	pthread_create(&t, NULL, epoller, NULL);
	pthread_create(&t, NULL, sleeper, NULL);
	ready_then_read(in, ready);
}

/*
 * Fork a child running fn(in, ready): it writes a byte on ready once its
 * threads are started and ends when a byte comes on in. Its PID in *ret_pid,
 * the writing end of in in *ret_to; returns once it is ready and its
 * threads have had 100 ms to reach their calls.
 */
static int start_child(void (*fn)(int in, int ready), pid_t *ret_pid, int *ret_to)
{
	int p[2], q[2];
	pid_t pid;
	char c;
	int r;

	if (pipe(p) < 0 || pipe(q) < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		close(p[1]);
		close(q[0]);
		fn(p[0], q[1]);
		_exit(2);
	}
	close(p[0]);
	close(q[1]);
	*ret_pid = pid;
	*ret_to = p[1];
	r = read(q[0], &c, 1) == 1 ? 0 : -1;
	close(q[0]);
	/* let the threads reach their calls */
	usleep(100000);
	return r;
}

static int setup(void **state)
{
	(void)state;
	return start_child(child_main, &child, &to_child);
}

static int teardown(void **state)
{
	int st = 0;

	(void)state;
	if (write(to_child, "x", 1) != 1)
		kill(child, SIGKILL);
	waitpid(child, &st, 0);
	close(to_child);
	/* no EINTR ever reached the child */
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int open_world(struct ptr_world *w, int *ret_fd)
{
	char path[64], state;
	uint64_t start;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/mem", (int)child);
	fd = open(path, O_RDWR);
	if (fd < 0 || proc_stat(child, &state, &start) < 0)
		return -1;
	ptr_world_init(w, child, fd, start);
	*ret_fd = fd;
	return 0;
}

/* A syscall instruction in the child's vDSO, and zero padding for the
 * trampoline after a code segment (as engine.c finds them). */
static void find_places(struct ptr_world *w, int fd)
{
	struct proc_maps m = { 0 };
	struct proc_objects o = { 0 };
	static const uint8_t zero[ARCH_TRAMP_MAX];

	assert_int_equal(proc_maps_read(child, &m), 0);
	assert_int_equal(proc_objects_read(0, fd, &m, &o), 0);
	for (size_t i = 0; i < m.n && !w->syscall_insn; i++) {
		uint8_t buf[16384];
		uint64_t len = m.v[i].end - m.v[i].start;

		if (!m.v[i].path || strcmp(m.v[i].path, "[vdso]") != 0 || !(m.v[i].prot & PROT_EXEC))
			continue;
		len = len < sizeof(buf) ? len : sizeof(buf);
		assert_int_equal(proc_mem_read(fd, m.v[i].start, buf, len), 0);
		for (uint64_t k = 0; k + 1 < len; k++)
			if (buf[k] == 0x0f && buf[k + 1] == 0x05) {
				w->syscall_insn = m.v[i].start + k;
				break;
			}
	}
	for (size_t i = 0; i < o.n && !w->tramp_addr; i++) {
		uint8_t cur[ARCH_TRAMP_MAX];

		if (o.v[i].slack_len >= ARCH_TRAMP_MAX && strcmp(o.v[i].path, "[vdso]") != 0 &&
		    proc_mem_read(fd, o.v[i].slack, cur, sizeof(cur)) == 0 &&
		    memcmp(cur, zero, sizeof(cur)) == 0)
			w->tramp_addr = o.v[i].slack;
	}
	assert_true(w->syscall_insn != 0);
	assert_true(w->tramp_addr != 0); /* this test binary has code padding */
	proc_objects_release(&o);
	proc_maps_release(&m);
}

static void remote_calls(struct ptr_world *w, int fd)
{
	const uint64_t none[6] = { 0 };
	uint64_t args[6] = { 0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			     (uint64_t)-1, 0 };
	int64_t res = 0;
	uint8_t page[16];

	assert_int_equal(ptr_stop_sys(w), 0);
	assert_int_equal(ptr_syscall(w, SYS_getpid, none, &res), 0);
	assert_int_equal(res, child);
	assert_int_equal(ptr_syscall(w, SYS_mmap, args, &res), 0);
	assert_true(res > 0);
	/* the mapping is the child's: we can write it */
	assert_int_equal(proc_mem_write(fd, (uint64_t)res, "remote", 6), 0);
	assert_int_equal(proc_mem_read(fd, (uint64_t)res, page, 6), 0);
	assert_memory_equal(page, "remote", 6);
	args[0] = (uint64_t)res;
	assert_int_equal(ptr_syscall(w, SYS_munmap, args, &res), 0);
	assert_int_equal(res, 0);
	/* a bad call gives its errno back as the result, not an error of ours */
	args[0] = 1;
	assert_int_equal(ptr_syscall(w, SYS_munmap, args, &res), 0);
	assert_int_equal(res, -EINVAL);
	assert_int_equal(ptr_syscall_end(w), 0);
}

static void sys_thread_calls(void **state)
{
	struct ptr_world w;
	int fd;

	(void)state;
	assert_int_equal(open_world(&w, &fd), 0);
	find_places(&w, fd);
	remote_calls(&w, fd);
	if (w.tramp_addr) {
		uint8_t after[ARCH_TRAMP_MAX];
		static const uint8_t zero[ARCH_TRAMP_MAX];

		/* the trampoline is zeroed again once the calls are done */
		assert_int_equal(proc_mem_read(fd, w.tramp_addr, after, sizeof(after)), 0);
		assert_memory_equal(after, zero, sizeof(zero));
	}
	/* the same through the vDSO's syscall instruction */
	w.tramp_addr = 0;
	remote_calls(&w, fd);
	ptr_world_release(&w);
	close(fd);
}

static void stop_world(void **state)
{
	struct ptr_world w;
	pid_t tids[3];
	int fd;

	(void)state;
	assert_int_equal(open_world(&w, &fd), 0);
	for (int round = 0; round < 20; round++) {
		assert_int_equal(ptr_stop_sys(&w), 0);
		assert_int_equal(ptr_stop_all(&w), 0);
		assert_int_equal(w.n, 3);
		assert_int_equal(w.n_seen, 3);
		for (size_t i = 0; i < w.n; i++) {
			assert_true(w.t[i].stopped);
			tids[i] = w.t[i].tid;
		}
		assert_non_null(ptr_find(&w, child));
		assert_int_equal(ptr_resume(&w, true), 0);
		assert_int_equal(w.n, 1); /* the sys thread stays */
		assert_int_equal(ptr_resume(&w, false), 0);
		assert_int_equal(w.n, 0);
		assert_true(w.t_all_resumed >= w.t_all_stopped_begin);
		/* each was let go inside its call (read, epoll_wait, nanosleep) */
		for (size_t i = 0; i < 3; i++)
			assert_false(ptr_own_code_was(&w, tids[i]));
	}
	ptr_world_release(&w);
	close(fd);
}

static void *spinner(void *arg)
{
	volatile unsigned long *n = arg;

	for (;;)
		(*n)++;
	return NULL;
}

/* The lean benchmark target's shape: the leader parked in read(2), one thread that never sleeps. */
static pid_t spin_pid;
static int spin_to = -1;

static void spin_main(int in, int ready)
{
	static volatile unsigned long n;
	pthread_t t;

	pthread_create(&t, NULL, spinner, (void *)&n);
	ready_then_read(in, ready);
}

static int spin_setup(void **state)
{
	(void)state;
	return start_child(spin_main, &spin_pid, &spin_to);
}

/* Killed (by its PID) if the test did not end it. */
static int spin_teardown(void **state)
{
	int st;

	(void)state;
	if (spin_pid > 0) {
		kill(spin_pid, SIGKILL);
		waitpid(spin_pid, &st, 0);
	}
	spin_pid = 0;
	close(spin_to);
	return 0;
}

/*
 * The first stop of the sys thread stops the running thread to look
 * (found in its own code: let go, the leader held); once an operation has
 * let it go in its own code, the next ones hold the leader without looking
 * (one wait fewer).
 */
static void running_thread_looked_at_once(void **state)
{
	struct ptr_world w;
	pid_t spin = 0;
	char path[64], s;
	uint64_t start;
	int fd, st;

	(void)state;
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)spin_pid);
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(proc_stat(spin_pid, &s, &start), 0);
	ptr_world_init(&w, spin_pid, fd, start);
	for (int round = 0; round < 5; round++) {
		struct ptr_counts c0 = ptr_counts_get(), c1;

		assert_int_equal(ptr_stop_sys(&w), 0);
		c1 = ptr_counts_get();
		assert_int_equal(w.sys_tid, spin_pid);
		/* the leader's stop, and the first time the running thread's */
		assert_int_equal(c1.n_waits - c0.n_waits, round == 0 ? 2 : 1);
		assert_int_equal(ptr_stop_all(&w), 0);
		assert_int_equal(w.n, 2);
		spin = w.t[0].tid == spin_pid ? w.t[1].tid : w.t[0].tid;
		assert_int_equal(ptr_resume(&w, false), 0);
		assert_true(ptr_own_code_was(&w, spin));
	}
	/* another process, the same PID: nothing known about it */
	w.start_time++;
	assert_false(ptr_own_code_was(&w, spin));
	w.start_time--;
	ptr_world_release(&w);
	close(fd);
	/* no EINTR reached the leader's read */
	assert_int_equal(write(spin_to, "x", 1), 1);
	assert_int_equal(waitpid(spin_pid, &st, 0), spin_pid);
	spin_pid = 0;
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void no_such_process(void **state)
{
	struct ptr_world w;

	(void)state;
	ptr_world_init(&w, 0x3ffffff0, -1, 1);
	assert_int_equal(ptr_stop_sys(&w), -ESRCH);
	ptr_world_release(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sys_thread_calls),
		cmocka_unit_test(stop_world),
		cmocka_unit_test_setup_teardown(running_thread_looked_at_once, spin_setup,
						spin_teardown),
		cmocka_unit_test(no_such_process),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

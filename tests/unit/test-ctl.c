/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests of libhpctl's words: control grammar, states, the caller check, helpers. */
#include <errno.h>
#include <setjmp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "ctl.h"
#include "ctl-int.h"

#define APPLY(s, c) ctl_parse_apply((s), strlen(s), (c))
#define REVERT(s, c) ctl_parse_revert((s), strlen(s), (c))

static void test_parse_apply(void **state)
{
	struct ctl_cmd c;

	assert_int_equal(APPLY("4242", &c), 0);
	assert_int_equal(c.kind, CTL_CMD_PID);
	assert_int_equal(c.pid, 4242);
	assert_string_equal(c.month, "");
	assert_int_equal(APPLY("  4242\n", &c), 0);
	assert_int_equal(c.pid, 4242);
	assert_int_equal(APPLY("\t17 2026-02 \n", &c), 0);
	assert_int_equal(c.pid, 17);
	assert_string_equal(c.month, "2026-02");
	assert_int_equal(APPLY("all\n", &c), 0);
	assert_int_equal(c.kind, CTL_CMD_ALL);
	assert_string_equal(c.target, "");
	assert_int_equal(APPLY("all sample-server\n", &c), 0);
	assert_int_equal(c.kind, CTL_CMD_ALL);
	assert_string_equal(c.target, "sample-server");
	assert_int_equal(APPLY("all libfoo.so.1", &c), 0);
	assert_string_equal(c.target, "libfoo.so.1");
	assert_int_equal(APPLY("4194304", &c), 0);
}

static void test_parse_apply_bad(void **state)
{
	static const char *const bad[] = {
		"", "\n", "   \n", "abc", "-1", "0", "+5", "4194305", "99999999", "12abc",
		"42 2026-13", "42 2026-2", "42 2026-02 x", "42\n43\n", "42\n2026-02",
		"all ../etc", "all a/b", "all .", "all x y", "ALL", "0x10", "42 all", "042", "00",
	};
	struct ctl_cmd c;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		hp_err_clear();
		if (APPLY(bad[i], &c) != -EINVAL)
			fail_msg("apply accepted '%s'", bad[i]);
		assert_true(hp_err_isset());
		assert_null(strchr(hp_errmsg(-EINVAL), '\n'));
	}
	/* A NUL inside, and an overlong line. */
	assert_int_equal(ctl_parse_apply("42\0 1", 5, &c), -EINVAL);
	{
		char big[2048];

		memset(big, '1', sizeof(big));
		assert_int_equal(ctl_parse_apply(big, sizeof(big), &c), -EINVAL);
	}
}

static void test_parse_revert(void **state)
{
	struct ctl_cmd c;

	assert_int_equal(REVERT("4242\n", &c), 0);
	assert_int_equal(c.kind, CTL_CMD_PID);
	assert_int_equal(c.pid, 4242);
	assert_int_equal(REVERT(" all ", &c), 0);
	assert_int_equal(c.kind, CTL_CMD_ALL);
	assert_int_equal(REVERT("4242 2026-02", &c), -EINVAL);
	assert_int_equal(REVERT("all sample-server", &c), -EINVAL);
	assert_int_equal(REVERT("", &c), -EINVAL);
	assert_int_equal(REVERT("x", &c), -EINVAL);
}

static void test_parse_bool(void **state)
{
	bool v = false;

	assert_int_equal(ctl_parse_bool("1\n", 2, &v), 0);
	assert_true(v);
	assert_int_equal(ctl_parse_bool(" 0 ", 3, &v), 0);
	assert_false(v);
	assert_int_equal(ctl_parse_bool("2", 1, &v), -EINVAL);
	assert_int_equal(ctl_parse_bool("yes", 3, &v), -EINVAL);
	assert_int_equal(ctl_parse_bool("", 0, &v), -EINVAL);
	assert_int_equal(ctl_parse_bool("1 1", 3, &v), -EINVAL);
}

static enum ctl_state ts(bool covered, const char *newest, const char *newer, const char *applied)
{
	struct ctl_state_in in = { covered, newest, newer, applied };

	return ctl_target_state(&in);
}

static void test_target_state(void **state)
{
	/* Nothing published for the current baseline. */
	assert_int_equal(ts(true, NULL, NULL, NULL), CTL_STATE_UP_TO_DATE);
	/* The newest month applied. */
	assert_int_equal(ts(true, "2026-03", NULL, "2026-03"), CTL_STATE_HOTPATCHED);
	/* A newer month published, an older one applied, or none. */
	assert_int_equal(ts(true, "2026-03", NULL, "2026-02"), CTL_STATE_NOT_UP_TO_DATE);
	assert_int_equal(ts(true, "2026-02", NULL, NULL), CTL_STATE_NOT_UP_TO_DATE);
	/* An older baseline runs, or a build no baseline covers. */
	assert_int_equal(ts(true, "2026-03", "2026.04", "2026-03"), CTL_STATE_NEEDS_RESTART);
	assert_int_equal(ts(true, NULL, "2026.04", NULL), CTL_STATE_NEEDS_RESTART);
	assert_int_equal(ts(false, NULL, NULL, NULL), CTL_STATE_NEEDS_RESTART);
	/* Applied while the store no longer lists a month: still what it runs. */
	assert_int_equal(ts(true, NULL, NULL, "2026-02"), CTL_STATE_HOTPATCHED);
}

static enum ctl_state ts_set(const char *newest_set, const char *applied_set, bool withdrawn)
{
	struct ctl_state_in in = { true, newest_set ? "2026-03" : NULL, NULL, "2026-03",
				   applied_set, newest_set, withdrawn };

	return ctl_target_state(&in);
}

static void test_target_state_sets(void **state)
{
	/* The set an apply would install is the one applied. */
	assert_int_equal(ts_set("2026.01/2026-03/fix", "2026.01/2026-03/fix", false),
			 CTL_STATE_HOTPATCHED);
	/* The same month, another set (a replacement): the fix is not in. */
	assert_int_equal(ts_set("2026.01/2026-03/fix-2", "2026.01/2026-03/fix", false),
			 CTL_STATE_NOT_UP_TO_DATE);
	/* A withdrawn set is never hotpatched, whatever else is published. */
	assert_int_equal(ts_set("2026.01/2026-03/fix", "2026.01/2026-03/fix", true),
			 CTL_STATE_WITHDRAWN);
	assert_int_equal(ts_set(NULL, "2026.01/2026-03/fix", true), CTL_STATE_WITHDRAWN);
	assert_int_equal(ctl_state_parse("withdrawn"), CTL_STATE_WITHDRAWN);
	assert_int_equal(ctl_state_parse("hotpatched"), CTL_STATE_HOTPATCHED);
	assert_int_equal(ctl_state_parse("happy"), -EINVAL);
	assert_string_equal(hp_errmsg(-EINVAL),
			    "'happy' is not a state (up-to-date, hotpatched, not-up-to-date, "
			    "needs-restart, withdrawn, failed, in-progress)");
}

static void test_state_combine_and_names(void **state)
{
	static const struct {
		enum ctl_state a, b, want;
	} cases[] = {
		{ CTL_STATE_UP_TO_DATE, CTL_STATE_HOTPATCHED, CTL_STATE_HOTPATCHED },
		{ CTL_STATE_HOTPATCHED, CTL_STATE_NOT_UP_TO_DATE, CTL_STATE_NOT_UP_TO_DATE },
		{ CTL_STATE_NEEDS_RESTART, CTL_STATE_NOT_UP_TO_DATE, CTL_STATE_NEEDS_RESTART },
		{ CTL_STATE_NEEDS_RESTART, CTL_STATE_FAILED, CTL_STATE_FAILED },
		{ CTL_STATE_NEEDS_RESTART, CTL_STATE_WITHDRAWN, CTL_STATE_WITHDRAWN },
		{ CTL_STATE_HOTPATCHED, CTL_STATE_WITHDRAWN, CTL_STATE_WITHDRAWN },
		{ CTL_STATE_FAILED, CTL_STATE_IN_PROGRESS, CTL_STATE_IN_PROGRESS },
		{ CTL_STATE_UP_TO_DATE, CTL_STATE_UP_TO_DATE, CTL_STATE_UP_TO_DATE },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(ctl_state_combine(cases[i].a, cases[i].b), cases[i].want);
		assert_int_equal(ctl_state_combine(cases[i].b, cases[i].a), cases[i].want);
	}
	assert_string_equal(ctl_state_name(CTL_STATE_HOTPATCHED), "hotpatched");
	assert_string_equal(ctl_state_name(CTL_STATE_UP_TO_DATE), "up-to-date");
	assert_string_equal(ctl_state_name(CTL_STATE_NOT_UP_TO_DATE), "not-up-to-date");
	assert_string_equal(ctl_state_name(CTL_STATE_IN_PROGRESS), "in-progress");
	assert_string_equal(ctl_state_name(CTL_STATE_NEEDS_RESTART), "needs-restart");
	assert_string_equal(ctl_state_name(CTL_STATE_FAILED), "failed");
	assert_string_equal(ctl_state_name(CTL_STATE_WITHDRAWN), "withdrawn");
}

static void test_helpers(void **state)
{
	char buf[64];
	uint64_t st = 0, st2 = 0;

	assert_string_equal(ctl_path_name("/usr/bin/server (deleted)", buf, sizeof(buf)), "server");
	assert_string_equal(ctl_path_name("/lib/libc.so.6", buf, sizeof(buf)), "libc.so.6");
	assert_string_equal(ctl_path_name("plain", buf, sizeof(buf)), "plain");
	assert_string_equal(ctl_path_name("/x/abcdefgh", buf, 4), "abc");
	assert_string_equal(ctl_errno_name(-ESRCH), "ESRCH");
	assert_string_equal(ctl_errno_name(-ENOEXEC), "ENOEXEC");
	assert_string_equal(ctl_errno_name(0), "ok");
	/* A positive return is a success (store_import: 1, already imported), not EPERM. */
	assert_string_equal(ctl_errno_name(1), "ok");
	assert_string_equal(ctl_errno_name(EBUSY), "ok");
	assert_string_equal(ctl_errno_name(-200), "E200");
	assert_int_equal(ctl_proc_start_time(getpid(), &st), 0);
	assert_true(st > 0);
	assert_int_equal(ctl_proc_start_time(getpid(), &st2), 0);
	assert_true(st == st2);
	assert_int_equal(ctl_proc_start_time(4194304 + 1, &st), -ESRCH);
}

/* A child that runs as uid/gid and waits; set-id, undumpable or holding capabilities on request. */
static pid_t child_as_caps(uid_t uid, gid_t gid, bool setid, bool undumpable, bool caps,
			   int *ret_fd)
{
	int fds[2];
	pid_t pid;
	char c;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		/* keep the permitted capabilities across the change of uid */
		if (caps && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
			_exit(1);
		if (setid) {
			/* real uid differs from effective: a set-uid program. */
			if (setresgid(gid, gid, gid) < 0 || setresuid(0, uid, uid) < 0)
				_exit(1);
		} else if (setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0) {
			_exit(1);
		}
		/* setresuid clears dumpable and the parent-death signal: set them again. */
		prctl(PR_SET_DUMPABLE, undumpable ? 0 : 1, 0, 0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		if (write(fds[1], "x", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], &c, 1), 1);
	*ret_fd = fds[0];
	return pid;
}

static pid_t child_as(uid_t uid, gid_t gid, bool setid, bool undumpable, int *ret_fd)
{
	return child_as_caps(uid, gid, setid, undumpable, false, ret_fd);
}

static void reap(pid_t pid, int fd)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(fd);
}

static void *tid_thread(void *arg)
{
	pid_t *tid = arg;

	__atomic_store_n(tid, gettid(), __ATOMIC_RELEASE);
	while (__atomic_load_n(tid, __ATOMIC_ACQUIRE) != -1)
		usleep(1000);
	return NULL;
}

/* apply_choose_fn: nothing chosen (the operation must end before it asks) */
static int choose_none(void *arg, const struct apply_proc *p, struct apply_set *sets, size_t cap)
{
	fail_msg("asked to choose for process %d", (int)p->pid);
	return 0;
}

static void test_may_patch(void **state)
{
	struct ctl_caller root = { 0, 0, 0 }, nobody = { 65534, 65534, 0 },
			  other = { 65533, 65534, 0 };
	struct proc_stat_fields ks;
	char want[128];
	pid_t pid;
	int fd;

	if (getuid() != 0)
		skip();
	/* not even root patches the patching process itself (it cannot stop itself) */
	assert_int_equal(ctl_may_patch(&root, getpid()), -EINVAL);
	snprintf(want, sizeof(want), "process %d is the patching process itself", (int)getpid());
	assert_string_equal(hp_errmsg(-EINVAL), want);
	assert_int_equal(ctl_may_patch(&root, 4194304 + 1), -ESRCH);
	/*
	 * A kernel thread (kthreadd is 2 where the PID namespace is the
	 * host's): root's check leaves it to the engine, which refuses it
	 * from the stat it reads first; another user's says so at once.
	 */
	if (proc_stat_read(2, &ks) == 0 && strcmp(ks.comm, "kthreadd") == 0) {
		struct apply_result ar;

		assert_int_equal(ctl_may_patch(&root, 2), 0);
		assert_int_equal(apply_patch_choose(2, choose_none, NULL, NULL, &ar), -ENOENT);
		assert_string_equal(hp_errmsg(-ENOENT),
				    "apply 2: process 2 is a kernel thread: nothing to patch");
		assert_int_equal(ctl_may_patch(&nobody, 2), -ENOENT);
		assert_string_equal(hp_errmsg(-ENOENT), "process 2 is a kernel thread: nothing to patch");
	}
	{
		/* A thread id is not a process id. */
		pthread_t th;
		pid_t tid = 0;

		assert_int_equal(pthread_create(&th, NULL, tid_thread, &tid), 0);
		while (!__atomic_load_n(&tid, __ATOMIC_ACQUIRE))
			usleep(1000);
		assert_int_equal(ctl_may_patch(&root, tid), -ESRCH);
		assert_non_null(strstr(hp_errmsg(-ESRCH), "is a thread of process"));
		__atomic_store_n(&tid, -1, __ATOMIC_RELEASE);
		pthread_join(th, NULL);
	}
	/* nobody may not patch a root process. */
	pid = child_as(0, 0, false, false, &fd);
	hp_err_clear();
	assert_int_equal(ctl_may_patch(&nobody, pid), -EACCES);
	snprintf(want, sizeof(want), "uid 65534 may not patch process %d (uid 0, gid 0)", (int)pid);
	assert_string_equal(hp_errmsg(-EACCES), want);
	reap(pid, fd);

	pid = child_as(65534, 65534, false, false, &fd);
	assert_int_equal(ctl_may_patch(&nobody, pid), 0);
	assert_int_equal(ctl_may_patch(&root, pid), 0);
	assert_int_equal(ctl_may_patch(&other, pid), -EACCES);
	reap(pid, fd);

	pid = child_as(65534, 65534, false, true, &fd);
	assert_int_equal(ctl_may_patch(&nobody, pid), -EACCES);
	assert_non_null(strstr(hp_errmsg(-EACCES), "dumpable"));
	reap(pid, fd);

	pid = child_as(65534, 65534, true, false, &fd);
	assert_int_equal(ctl_may_patch(&nobody, pid), -EACCES);
	assert_non_null(strstr(hp_errmsg(-EACCES), "set-id"));
	assert_int_equal(ctl_may_patch(&root, pid), 0);
	reap(pid, fd);

	/* Same uid and gid, dumpable, but holding capabilities: ptrace says no, so do we. */
	pid = child_as_caps(65534, 65534, false, false, true, &fd);
	hp_err_clear();
	assert_int_equal(ctl_may_patch(&nobody, pid), -EACCES);
	snprintf(want, sizeof(want), "uid 65534 may not patch process %d (it holds capabilities)",
		 (int)pid);
	assert_string_equal(hp_errmsg(-EACCES), want);
	assert_int_equal(ctl_may_patch(&root, pid), 0);
	reap(pid, fd);
}

static void test_results_format(void **state)
{
	struct ctl_result v[2];
	struct ctl_results r = { v, 2 };
	struct hp_buf b = HP_BUF_INIT;

	memset(v, 0, sizeof(v));
	v[0].pid = 42;
	v[0].changed = true;
	v[0].n_sets = 1;
	v[0].pause_us = 37;
	snprintf(v[0].set_id, sizeof(v[0].set_id), "2026.01/2026-02/fix");
	snprintf(v[0].comm, sizeof(v[0].comm), "srv");
	v[1].pid = 43;
	v[1].err = -EBUSY;
	snprintf(v[1].msg, sizeof(v[1].msg), "function \"f\" active");
	assert_int_equal(ctl_results_format(&r, false, &b), 0);
	assert_string_equal(b.data, "42 ok set=2026.01/2026-02/fix sets=1 changed=1 pause_us=37 comm=srv\n"
				    "43 EBUSY function \"f\" active\n");
	hp_buf_reset(&b);
	assert_int_equal(ctl_results_format(&r, true, &b), 0);
	assert_string_equal(b.data,
			    "[{\"pid\":42,\"comm\":\"srv\",\"result\":\"ok\",\"set\":\"2026.01/2026-02/fix\","
			    "\"sets\":1,\"changed\":true,\"pause_us\":37},"
			    "{\"pid\":43,\"comm\":\"\",\"result\":\"EBUSY\",\"error\":\"function \\\"f\\\" active\"}]\n");
	hp_buf_release(&b);
}

static void test_status_format(void **state)
{
	struct ctl_target t;
	struct ctl_status s;
	struct hp_buf b = HP_BUF_INIT;

	memset(&t, 0, sizeof(t));
	memset(&s, 0, sizeof(s));
	t.name = "srv";
	t.path = "/usr/bin/srv";
	snprintf(t.build_id, sizeof(t.build_id), "abcd");
	t.covered = true;
	t.baseline = "2026.01";
	t.newest_month = "2026-03";
	snprintf(t.applied_set, sizeof(t.applied_set), "2026.01/2026-02/fix");
	snprintf(t.applied_month, sizeof(t.applied_month), "2026-02");
	t.state = CTL_STATE_NOT_UP_TO_DATE;
	t.applied_at = 1767225600; /* 2026-01-01T00:00:00Z */
	{
		static char *funcs[] = { "handle", "parse@p.c" }, *cves[] = { "CVE-2026-0001" };

		t.funcs = funcs;
		t.n_funcs = 2;
		t.cves = cves;
		t.n_cves = 1;
	}
	s.pid = 42;
	snprintf(s.comm, sizeof(s.comm), "srv");
	s.exe = "/usr/bin/srv";
	s.targets = &t;
	s.n_targets = 1;
	s.state = CTL_STATE_FAILED;
	snprintf(s.reason, sizeof(s.reason), "EBUSY: function f active");
	s.have_pause = true;
	s.last_pause_us = 120;
	assert_int_equal(ctl_status_format(&s, false, &b), 0);
	assert_string_equal(b.data,
			    "pid: 42\ncomm: srv\nexe: /usr/bin/srv\nstate: failed\n"
			    "reason: EBUSY: function f active\nlast-pause-us: 120\n"
			    "target: srv build-id=abcd baseline=2026.01 applied=2026.01/2026-02/fix "
			    "month=2026-02 latest=2026-03 state=not-up-to-date\n"
			    "functions: srv handle parse@p.c\ncves: srv CVE-2026-0001\n");
	hp_buf_reset(&b);
	assert_int_equal(ctl_status_format(&s, true, &b), 0);
	assert_non_null(strstr(b.data, "\"state\":\"failed\",\"reason\":\"EBUSY: function f active\","
				       "\"last_pause_us\":120"));
	assert_non_null(strstr(b.data, "\"latest\":\"2026-03\",\"newer_baseline\":null,"
				       "\"next\":null,\"withdrawn\":null,\"applied_at\":1767225600,"
				       "\"functions\":[\"handle\",\"parse@p.c\"],"
				       "\"cves\":[\"CVE-2026-0001\"],\"state\":\"not-up-to-date\"}]}"));
	hp_buf_reset(&b);
	s.n_targets = 0;
	s.have_pause = false;
	s.reason[0] = '\0';
	s.state = CTL_STATE_UP_TO_DATE;
	assert_int_equal(ctl_status_format(&s, false, &b), 0);
	assert_non_null(strstr(b.data, "state: up-to-date\nlast-pause-us: -\ntarget: none known"));
	hp_buf_release(&b);
}

/* ctl over a real, empty store: nothing published, nothing applied, nothing listed. */
/* The configuration file: every key, every refusal with its line, and matching. */
static void test_policy(void **state)
{
	char dir[] = "/tmp/hp-ut-policy-XXXXXX", path[64], why[CTL_WHY_SIZE], exe[4096];
	struct ctl_policy *p = NULL;
	struct proc_stat_fields ps;
	struct hp_buf b = HP_BUF_INIT;
	FILE *f;
	ssize_t n;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/conf", dir);
	/* a missing file: the defaults */
	assert_int_equal(ctl_policy_load(path, &p), 0);
	assert_int_equal(p->auto_default, -1);
	assert_int_equal(p->retries, 0);
	assert_false(ctl_policy_excludes(p, getpid(), why, sizeof(why)));
	ctl_policy_free(p);
	/* an empty file: the defaults too */
	f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(ctl_policy_load(path, &p), 0);
	assert_int_equal(p->n_exclude_name, 0);
	ctl_policy_free(p);

	assert_int_equal(proc_stat_read(getpid(), &ps), 0);
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	assert_true(n > 0);
	exe[n] = '\0';
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "# c\n\n auto = 1 \nretries=7\nexclude-unit = /\nexclude-name = %s\n"
		"exclude-exe = %s\n", ps.comm, exe);
	fclose(f);
	assert_int_equal(ctl_policy_load(path, &p), 0);
	assert_int_equal(p->auto_default, 1);
	assert_int_equal(p->retries, 7);
	/* exe first, then name, then unit: the first rule that matches is said */
	assert_true(ctl_policy_excludes(p, getpid(), why, sizeof(why)));
	assert_true(!strncmp(why, "exclude-exe=", 12));
	assert_int_equal(ctl_policy_format(p, &b), 0);
	assert_non_null(strstr(b.data, "exclude-unit: /\n"));
	assert_non_null(strstr(b.data, "exclude-name: "));
	hp_buf_release(&b);
	ctl_policy_free(p);

	/* name only; a unit that matches no component */
	assert_int_equal(ctl_policy_new(&p), 0);
	assert_int_equal(ctl_policy_add(p, "t", "exclude-unit", "no-such.service"), 0);
	assert_false(ctl_policy_excludes(p, getpid(), why, sizeof(why)));
	assert_int_equal(ctl_policy_add(p, "t", "exclude-name", ps.comm), 0);
	assert_true(ctl_policy_excludes(p, getpid(), why, sizeof(why)));
	assert_true(!strncmp(why, "exclude-name=", 13));
	assert_false(ctl_policy_excludes(p, 0x3fffffff, why, sizeof(why)));
	ctl_policy_free(p);

	/* refusals: -EINVAL, "FILE:LINE: ..." */
	{
		static const struct { const char *text, *msg; } bad[] = {
			{ "auto = 2\n", ":1: auto: '2' is not 0 or 1" },
			{ "\nretries = 101\n", ":2: retries: '101' is not a number 0-100" },
			{ "retries = -1\n", ":1: retries: '-1' is not a number 0-100" },
			{ "exclude-exe = usr/bin/x\n", ":1: exclude-exe: 'usr/bin/x' is not an absolute path" },
			{ "exclude-name = sixteen-chars-xx\n", "is longer than a process name (15)" },
			{ "colour = blue\n", ":1: unknown key 'colour'" },
			{ "auto\n", ":1: not 'key = value': auto" },
			{ "auto =\n", ":1: auto: no value" },
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			f = fopen(path, "w");
			assert_non_null(f);
			fputs(bad[i].text, f);
			fclose(f);
			p = NULL;
			assert_int_equal(ctl_policy_load(path, &p), -EINVAL);
			assert_null(p);
			assert_non_null(strstr(hp_errmsg(-EINVAL), bad[i].msg));
			assert_true(!strncmp(hp_errmsg(-EINVAL), path, strlen(path)));
		}
	}
	unlink(path);
	rmdir(dir);
}

static void test_empty_store(void **state)
{
	char dir[] = "/tmp/hp-test-ctl-XXXXXX", path[64], cmd[96];
	struct ctl_opts o = { path, 0, 0, 0 };
	struct ctl_caller root = { 0, 0, 0 };
	struct ctl_result res;
	pid_t kid;
	int kid_fd;
	struct ctl_results all = { NULL, 0 };
	struct ctl_cmd c;
	struct ctl_status *st = NULL;
	struct ctl_snap *snap = NULL;
	struct ctl *ctl = NULL;
	pid_t *pids = NULL;
	size_t n = 99;
	char head[41];

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/store.git", dir);
	assert_int_equal(store_init(path, NULL), 0);
	assert_int_equal(ctl_new(&o, &ctl), 0);
	assert_string_equal(ctl_store_path(ctl), path);
	assert_int_equal(ctl_head(ctl, head), 0);
	assert_int_equal(ctl_snap_get(ctl, true, &snap), -ENOENT);
	assert_int_equal(ctl_list(ctl, &pids, &n), 0);
	assert_int_equal(n, 0);
	free(pids);
	/* a child: the test itself is the patching process, which nothing patches */
	kid = child_as(0, 0, false, false, &kid_fd);
	assert_int_equal(ctl_apply(ctl, &root, kid, NULL, &res), -ENOENT);
	assert_int_equal(res.err, -ENOENT);
	assert_int_equal(res.pid, kid);
	assert_non_null(strstr(res.msg, "nothing published"));
	assert_int_equal(ctl_apply(ctl, &root, kid, "2026-13", &res), -EINVAL);
	assert_int_equal(ctl_revert(ctl, &root, kid, &res), -ENOENT);
	assert_non_null(strstr(res.msg, "nothing applied"));
	reap(kid, kid_fd);
	assert_int_equal(ctl_apply(ctl, &root, getpid(), NULL, &res), -EINVAL);
	assert_int_equal(ctl_apply(ctl, &root, 4194304 + 1, NULL, &res), -ESRCH);
	assert_int_equal(ctl_status(ctl, getpid(), &st), 0);
	assert_int_equal(st->state, CTL_STATE_UP_TO_DATE);
	assert_int_equal(st->n_targets, 0);
	assert_int_equal(st->pid, getpid());
	ctl_status_free(st);
	assert_int_equal(ctl_status(ctl, 4194304 + 1, &st), -ESRCH);
	/* "all" on an empty store: nothing to do; a named target it does not know: ENOENT. */
	assert_int_equal(ctl_parse_apply("all", 3, &c), 0);
	assert_int_equal(ctl_run(ctl, &root, false, &c, &all), 0);
	assert_int_equal(all.n, 0);
	ctl_results_release(&all);
	assert_int_equal(ctl_parse_revert("all", 3, &c), 0);
	assert_int_equal(ctl_run(ctl, &root, true, &c, &all), 0);
	assert_int_equal(all.n, 0);
	ctl_results_release(&all);
	assert_int_equal(ctl_parse_apply("all srv", 7, &c), 0);
	assert_int_equal(ctl_run(ctl, &root, false, &c, &all), -ENOENT);
	ctl_results_release(&all);
	ctl_free(ctl);
	o.store_path = "/nonexistent/store.git";
	assert_true(ctl_new(&o, &ctl) < 0);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_apply),
		cmocka_unit_test(test_parse_apply_bad),
		cmocka_unit_test(test_parse_revert),
		cmocka_unit_test(test_parse_bool),
		cmocka_unit_test(test_target_state),
		cmocka_unit_test(test_target_state_sets),
		cmocka_unit_test(test_state_combine_and_names),
		cmocka_unit_test(test_helpers),
		cmocka_unit_test(test_may_patch),
		cmocka_unit_test(test_results_format),
		cmocka_unit_test(test_status_format),
		cmocka_unit_test(test_policy),
		cmocka_unit_test(test_empty_store),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

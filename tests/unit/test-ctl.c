/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests of libhpctl's words: control grammar, states, the caller check, helpers. */
#include <errno.h>
#include <setjmp.h>
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
		"all ../etc", "all a/b", "all .", "all x y", "ALL", "0x10", "42 all",
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

static void test_state_combine_and_names(void **state)
{
	static const struct {
		enum ctl_state a, b, want;
	} cases[] = {
		{ CTL_STATE_UP_TO_DATE, CTL_STATE_HOTPATCHED, CTL_STATE_HOTPATCHED },
		{ CTL_STATE_HOTPATCHED, CTL_STATE_NOT_UP_TO_DATE, CTL_STATE_NOT_UP_TO_DATE },
		{ CTL_STATE_NEEDS_RESTART, CTL_STATE_NOT_UP_TO_DATE, CTL_STATE_NEEDS_RESTART },
		{ CTL_STATE_NEEDS_RESTART, CTL_STATE_FAILED, CTL_STATE_FAILED },
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
	assert_string_equal(ctl_errno_name(-200), "E200");
	assert_int_equal(ctl_proc_start_time(getpid(), &st), 0);
	assert_true(st > 0);
	assert_int_equal(ctl_proc_start_time(getpid(), &st2), 0);
	assert_true(st == st2);
	assert_int_equal(ctl_proc_start_time(4194304 + 1, &st), -ESRCH);
}

/* A child that runs as uid/gid and waits; set-id or undumpable on request. */
static pid_t child_as(uid_t uid, gid_t gid, bool setid, bool undumpable, int *ret_fd)
{
	int fds[2];
	pid_t pid;
	char c;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
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

static void reap(pid_t pid, int fd)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(fd);
}

static void test_may_patch(void **state)
{
	struct ctl_caller root = { 0, 0 }, nobody = { 65534, 65534 }, other = { 65533, 65534 };
	pid_t pid;
	int fd;

	if (getuid() != 0)
		skip();
	assert_int_equal(ctl_may_patch(&root, getpid()), 0);
	assert_int_equal(ctl_may_patch(&root, 4194304 + 1), -ESRCH);
	/* nobody may not patch a root process. */
	hp_err_clear();
	assert_int_equal(ctl_may_patch(&nobody, getpid()), -EACCES);
	assert_non_null(strstr(hp_errmsg(-EACCES), "may not patch"));

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
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_apply),
		cmocka_unit_test(test_parse_apply_bad),
		cmocka_unit_test(test_parse_revert),
		cmocka_unit_test(test_parse_bool),
		cmocka_unit_test(test_target_state),
		cmocka_unit_test(test_state_combine_and_names),
		cmocka_unit_test(test_helpers),
		cmocka_unit_test(test_may_patch),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

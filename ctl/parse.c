/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The words of ctl: the control-file grammar, state names
 * and their logic, errno names. Nothing here touches the store or the engine.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ctl-int.h"

#define CTL_CMD_MAX 512
#define CTL_PID_MAX 4194304 /* PID_MAX_LIMIT on 64-bit */

/* ---- grammar ------------------------------------------------------------- */

/* Split trimmed text into at most 3 words (a third one is an error). */
static int split_words(const char *buf, size_t len, char words[3][CTL_CMD_MAX + 1],
		       size_t *ret_n)
{
	size_t i = 0, n = 0;

	if (len > CTL_CMD_MAX)
		return hp_err(-EINVAL, "input too long (%zu bytes, at most %d)", len, CTL_CMD_MAX);
	if (memchr(buf, '\0', len))
		return hp_err(-EINVAL, "input contains a NUL byte");
	while (len > 0 && isspace((unsigned char)buf[len - 1]))
		len--;
	while (i < len && isspace((unsigned char)buf[i]))
		i++;
	while (i < len) {
		size_t start = i;

		while (i < len && !isspace((unsigned char)buf[i]))
			i++;
		if (n == 3)
			return hp_err(-EINVAL, "too many words");
		memcpy(words[n], buf + start, i - start);
		words[n][i - start] = '\0';
		n++;
		while (i < len && (buf[i] == ' ' || buf[i] == '\t'))
			i++;
		if (i < len && isspace((unsigned char)buf[i]))
			return hp_err(-EINVAL, "one command per write, on one line");
	}
	*ret_n = n;
	return 0;
}

static int parse_pid(const char *s, pid_t *ret)
{
	long v = 0;

	/* "042" names no process: processes/042 does not exist either */
	if (!*s || strlen(s) > 7 || (s[0] == '0' && s[1]))
		return hp_err(-EINVAL, "'%.32s' is not a process id", s);
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return hp_err(-EINVAL, "'%.32s' is not a process id", s);
		v = v * 10 + (*p - '0');
	}
	if (v < 1 || v > CTL_PID_MAX)
		return hp_err(-EINVAL, "'%.32s' is not a process id", s);
	*ret = (pid_t)v;
	return 0;
}

static bool valid_target_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > NAME_MAX || !strcmp(s, ".") || !strcmp(s, ".."))
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("._+-", *s))
			return false;
	return true;
}

static int parse_cmd(const char *buf, size_t len, bool revert, struct ctl_cmd *ret)
{
	char words[3][CTL_CMD_MAX + 1];
	struct ctl_cmd cmd;
	size_t n = 0;
	int r;

	memset(&cmd, 0, sizeof(cmd));
	r = split_words(buf, len, words, &n);
	if (r < 0)
		return r;
	if (n == 0)
		return hp_err(-EINVAL, "empty command (expected %s)",
			      revert ? "PID or all" : "PID, PID MONTH, all or all TARGET");
	if (n > (revert ? 1u : 2u))
		return hp_err(-EINVAL, "too many words (expected %s)",
			      revert ? "PID or all" : "PID, PID MONTH, all or all TARGET");
	if (!strcmp(words[0], "all")) {
		cmd.kind = CTL_CMD_ALL;
		if (n == 2) {
			if (!valid_target_name(words[1]))
				return hp_err(-EINVAL, "'%.64s' is not a target name", words[1]);
			snprintf(cmd.target, sizeof(cmd.target), "%s", words[1]);
		}
	} else {
		cmd.kind = CTL_CMD_PID;
		r = parse_pid(words[0], &cmd.pid);
		if (r < 0)
			return r;
		if (n == 2) {
			if (!hp_valid_month(words[1]))
				return hp_err(-EINVAL, "'%.32s' is not a month (YYYY-MM)", words[1]);
			snprintf(cmd.month, sizeof(cmd.month), "%s", words[1]);
		}
	}
	*ret = cmd;
	return 0;
}

int ctl_parse_apply(const char *buf, size_t len, struct ctl_cmd *ret)
{
	return parse_cmd(buf, len, false, ret);
}

int ctl_parse_revert(const char *buf, size_t len, struct ctl_cmd *ret)
{
	return parse_cmd(buf, len, true, ret);
}

int ctl_parse_bool(const char *buf, size_t len, bool *ret)
{
	char words[3][CTL_CMD_MAX + 1];
	size_t n = 0;
	int r;

	r = split_words(buf, len, words, &n);
	if (r < 0)
		return r;
	if (n != 1 || (strcmp(words[0], "0") && strcmp(words[0], "1")))
		return hp_err(-EINVAL, "expected 0 or 1");
	*ret = words[0][0] == '1';
	return 0;
}

/* ---- states -------------------------------------------------------------- */

static const char *const state_names[] = {
	[CTL_STATE_UP_TO_DATE] = "up-to-date",
	[CTL_STATE_HOTPATCHED] = "hotpatched",
	[CTL_STATE_NOT_UP_TO_DATE] = "not-up-to-date",
	[CTL_STATE_NEEDS_RESTART] = "needs-restart",
	[CTL_STATE_WITHDRAWN] = "withdrawn",
	[CTL_STATE_FAILED] = "failed",
	[CTL_STATE_IN_PROGRESS] = "in-progress",
};

const char *ctl_state_name(enum ctl_state s)
{
	if ((unsigned)s >= sizeof(state_names) / sizeof(state_names[0]))
		return "unknown";
	return state_names[s];
}

int ctl_state_parse(const char *name)
{
	for (size_t i = 0; i < sizeof(state_names) / sizeof(state_names[0]); i++)
		if (state_names[i] && !strcmp(state_names[i], name))
			return (int)i;
	return hp_err(-EINVAL, "'%s' is not a state (up-to-date, hotpatched, not-up-to-date, "
		      "needs-restart, withdrawn, failed, in-progress)", name);
}

enum ctl_state ctl_target_state(const struct ctl_state_in *in)
{
	/* An unknown build of a known target, or an older baseline: only a restart helps. */
	if (!in->covered || in->newer_baseline)
		return CTL_STATE_NEEDS_RESTART;
	/* A set found bad: never "hotpatched", whatever is published next to it. */
	if (in->applied_month && in->applied_withdrawn)
		return CTL_STATE_WITHDRAWN;
	/*
	 * The month alone does not say the fix is in: another set of that month
	 * (a replacement, or a second one in a store older than the one-set
	 * rule) is what an apply would install.
	 */
	if (in->applied_set && in->newest_set && in->newest_month && in->applied_month &&
	    !strcmp(in->applied_month, in->newest_month) && strcmp(in->applied_set, in->newest_set))
		return CTL_STATE_NOT_UP_TO_DATE;
	if (!in->newest_month)
		return in->applied_month ? CTL_STATE_HOTPATCHED : CTL_STATE_UP_TO_DATE;
	/* Months compare as strings (YYYY-MM). */
	if (in->applied_month && strcmp(in->applied_month, in->newest_month) >= 0)
		return CTL_STATE_HOTPATCHED;
	return CTL_STATE_NOT_UP_TO_DATE;
}

/* The enum is ordered by how much attention a state needs. */
enum ctl_state ctl_state_combine(enum ctl_state a, enum ctl_state b)
{
	return a > b ? a : b;
}

/* ---- small helpers ------------------------------------------------------- */

const char *ctl_path_name(const char *path, char *buf, size_t size)
{
	const char *slash = strrchr(path, '/');
	const char *name = slash ? slash + 1 : path;
	size_t n = strlen(name);
	static const char deleted[] = " (deleted)";

	if (n >= sizeof(deleted) - 1 && !strcmp(name + n - (sizeof(deleted) - 1), deleted))
		n -= sizeof(deleted) - 1;
	if (n >= size)
		n = size - 1;
	memcpy(buf, name, n);
	buf[n] = '\0';
	return buf;
}

int ctl_proc_start_time(pid_t pid, uint64_t *ret)
{
	return proc_stat(pid, NULL, ret);
}

static const struct {
	int err;
	const char *name;
} errno_names[] = {
	{ ESRCH, "ESRCH" },   { ENOENT, "ENOENT" }, { EBUSY, "EBUSY" },
	{ EACCES, "EACCES" }, { EINVAL, "EINVAL" }, { ENOEXEC, "ENOEXEC" },
	{ EPERM, "EPERM" },   { EIO, "EIO" },       { ENOMEM, "ENOMEM" },
	{ EKEYREJECTED, "EKEYREJECTED" }, { EKEYREVOKED, "EKEYREVOKED" }, { ETIMEDOUT, "ETIMEDOUT" },
	{ EEXIST, "EEXIST" }, { ENOSPC, "ENOSPC" }, { EFBIG, "EFBIG" },
	{ ENOSYS, "ENOSYS" }, { EAGAIN, "EAGAIN" }, { ENOTDIR, "ENOTDIR" },
	{ EISDIR, "EISDIR" }, { EROFS, "EROFS" },   { ENAMETOOLONG, "ENAMETOOLONG" },
};

const char *ctl_errno_name(int err)
{
	static __thread char buf[16];

	/* Positive returns are successes too (store_import: 1 for "already there"). */
	if (err >= 0)
		return "ok";
	err = -err;
	for (size_t i = 0; i < sizeof(errno_names) / sizeof(errno_names[0]); i++)
		if (errno_names[i].err == err)
			return errno_names[i].name;
	snprintf(buf, sizeof(buf), "E%d", err);
	return buf;
}

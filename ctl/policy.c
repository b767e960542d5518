/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * policy.c: the host's patching policy, from the configuration file
 * hotpatchfs reads (default /etc/hotpatch/hotpatchfs.conf) and hp reads
 * when no daemon serves its store, and the exclusions "all" and auto-apply
 * honour:
 *
 *   # comment
 *   auto = 0 | 1              the default of auto-apply (hotpatchfs: a value
 *                             written to MNT/auto since wins, it is kept)
 *   retries = N               EBUSY: try an apply again up to N more times
 *                             (0 .. CTL_POLICY_RETRIES_MAX; default 0)
 *   exclude-exe = PATH        "all" and auto-apply leave processes of this
 *   exclude-name = COMM       program, of this name (/proc/PID/comm),
 *   exclude-unit = UNIT       of this systemd unit or cgroup (a component of
 *                             the cgroup path, or a cgroup path from /)
 *
 * A bad line is refused whole (FILE:LINE: what is wrong), and nothing of
 * the file is used.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl-int.h"

#define CTL_POLICY_MAX_BYTES (1024 * 1024)
/* The longest process name: the kernel's TASK_COMM_LEN (16) less the NUL. */
#define CTL_COMM_MAX 15

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void ctl_policy_free(struct ctl_policy *p)
{
	if (!p)
		return;
	strv_free(p->exclude_exe, p->n_exclude_exe);
	strv_free(p->exclude_name, p->n_exclude_name);
	strv_free(p->exclude_unit, p->n_exclude_unit);
	free(p);
}

int ctl_policy_new(struct ctl_policy **ret)
{
	struct ctl_policy *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->auto_default = -1;
	*ret = p;
	return 0;
}

static int strv_add(char ***v, size_t *n, const char *s)
{
	char **more = realloc(*v, (*n + 1) * sizeof(**v));

	if (!more)
		return -ENOMEM;
	*v = more;
	more[*n] = strdup(s);
	if (!more[*n])
		return -ENOMEM;
	(*n)++;
	return 0;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

int ctl_policy_add(struct ctl_policy *p, const char *where, const char *key, const char *val)
{
	if (!*val)
		return hp_err(-EINVAL, "%s: %s: no value", where, key);
	if (!strcmp(key, "auto")) {
		if (strcmp(val, "0") && strcmp(val, "1"))
			return hp_err(-EINVAL, "%s: auto: '%.20s' is not 0 or 1", where, val);
		p->auto_default = val[0] == '1';
		return 0;
	}
	if (!strcmp(key, "retries")) {
		unsigned long v;
		char *end;

		errno = 0;
		v = strtoul(val, &end, 10);
		if (!isdigit((unsigned char)*val) || *end || errno || v > CTL_POLICY_RETRIES_MAX)
			return hp_err(-EINVAL, "%s: retries: '%.20s' is not a number 0-%d", where, val,
				      CTL_POLICY_RETRIES_MAX);
		p->retries = (unsigned)v;
		return 0;
	}
	if (!strcmp(key, "exclude-exe")) {
		if (*val != '/')
			return hp_err(-EINVAL, "%s: exclude-exe: '%.60s' is not an absolute path",
				      where, val);
		return strv_add(&p->exclude_exe, &p->n_exclude_exe, val);
	}
	if (!strcmp(key, "exclude-name")) {
		if (strlen(val) > CTL_COMM_MAX)
			return hp_err(-EINVAL,
				      "%s: exclude-name: '%.60s' is longer than a process name (%d)",
				      where, val, CTL_COMM_MAX);
		return strv_add(&p->exclude_name, &p->n_exclude_name, val);
	}
	if (!strcmp(key, "exclude-unit"))
		return strv_add(&p->exclude_unit, &p->n_exclude_unit, val);
	return hp_err(-EINVAL, "%s: unknown key '%.40s'", where, key);
}

/* Parse TEXT (from PATH, for messages) into p. */
static int policy_parse(struct ctl_policy *p, const char *path, char *text)
{
	unsigned lineno = 0;
	int r = 0;

	for (char *line = text, *next; line && r == 0; line = next) {
		char *eq, where[PATH_MAX + 16];

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		lineno++;
		line = trim(line);
		if (!*line || *line == '#')
			continue;
		snprintf(where, sizeof(where), "%s:%u", path, lineno);
		eq = strchr(line, '=');
		if (!eq)
			return hp_err(-EINVAL, "%s: not 'key = value': %.60s", where, line);
		*eq = '\0';
		r = ctl_policy_add(p, where, trim(line), trim(eq + 1));
	}
	return r;
}

int ctl_policy_load(const char *path, struct ctl_policy **ret)
{
	struct hp_buf text = HP_BUF_INIT;
	struct ctl_policy *p = NULL;
	int r;

	r = ctl_policy_new(&p);
	if (r < 0)
		return r;
	r = hp_read_file(path, CTL_POLICY_MAX_BYTES, &text);
	if (r == -ENOENT)
		r = 0; /* no file: the defaults */
	else if (r < 0)
		r = hp_err(r, "%s: %s", path, strerror(-r));
	else if (text.data && memchr(text.data, '\0', text.len))
		r = hp_err(-EINVAL, "%s: not a text file (a NUL byte)", path);
	else if (text.data)
		r = policy_parse(p, path, text.data);
	hp_buf_release(&text);
	if (r < 0) {
		ctl_policy_free(p);
		return r;
	}
	*ret = p;
	return 0;
}

int ctl_policy_format(const struct ctl_policy *p, struct hp_buf *out)
{
	for (size_t i = 0; p && i < p->n_exclude_exe; i++)
		hp_buf_addf(out, "exclude-exe: %s\n", p->exclude_exe[i]);
	for (size_t i = 0; p && i < p->n_exclude_name; i++)
		hp_buf_addf(out, "exclude-name: %s\n", p->exclude_name[i]);
	for (size_t i = 0; p && i < p->n_exclude_unit; i++)
		hp_buf_addf(out, "exclude-unit: %s\n", p->exclude_unit[i]);
	return 0;
}

/* A component of the cgroup path CG equal to UNIT, or CG itself when UNIT starts with '/'. */
static bool cgroup_has(const char *cg, const char *unit)
{
	size_t n = strlen(unit);

	if (*unit == '/')
		return !strncmp(cg, unit, n) && (cg[n] == '\0' || cg[n] == '/' || n == 1);
	for (const char *p = cg; (p = strstr(p, unit)); p++)
		if ((p == cg || p[-1] == '/') && (p[n] == '\0' || p[n] == '/'))
			return true;
	return false;
}

bool ctl_policy_excludes(const struct ctl_policy *p, pid_t pid, char *ret_why, size_t size)
{
	char path[64], exe[PATH_MAX], cg[4096] = "";
	struct proc_stat_fields ps;
	ssize_t n;
	FILE *f;
	bool hit = false;

	if (!p || (!p->n_exclude_exe && !p->n_exclude_name && !p->n_exclude_unit))
		return false;
	if (p->n_exclude_exe) {
		snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
		n = readlink(path, exe, sizeof(exe) - 1);
		exe[n > 0 ? n : 0] = '\0';
		if (n > 10 && !strcmp(exe + n - 10, " (deleted)"))
			exe[n - 10] = '\0';
		for (size_t i = 0; i < p->n_exclude_exe && !hit; i++)
			if (!strcmp(exe, p->exclude_exe[i])) {
				snprintf(ret_why, size, "exclude-exe=%s", p->exclude_exe[i]);
				hit = true;
			}
	}
	if (!hit && p->n_exclude_name && proc_stat_read(pid, &ps) == 0)
		for (size_t i = 0; i < p->n_exclude_name && !hit; i++)
			if (!strcmp(ps.comm, p->exclude_name[i])) {
				snprintf(ret_why, size, "exclude-name=%s", p->exclude_name[i]);
				hit = true;
			}
	if (!hit && p->n_exclude_unit) {
		snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
		f = fopen(path, "re");
		/* cgroup v2: one line "0::/system.slice/nginx.service" */
		while (f && !hit && fgets(cg, sizeof(cg), f)) {
			char *s = strstr(cg, "::");

			if (!s)
				continue;
			s += 2;
			s[strcspn(s, "\n")] = '\0';
			for (size_t i = 0; i < p->n_exclude_unit && !hit; i++)
				if (cgroup_has(s, p->exclude_unit[i])) {
					snprintf(ret_why, size, "exclude-unit=%s", p->exclude_unit[i]);
					hit = true;
				}
		}
		if (f)
			fclose(f);
	}
	return hit;
}

/* ---- the policy of a context ---------------------------------------------- */

void ctl_set_policy(struct ctl *c, struct ctl_policy *p)
{
	struct ctl_policy *old;

	pthread_mutex_lock(&c->policy_lock);
	old = c->policy;
	c->policy = p;
	pthread_mutex_unlock(&c->policy_lock);
	ctl_policy_free(old);
}

bool ctl_excluded(struct ctl *c, pid_t pid, char *ret_why, size_t size)
{
	bool hit;

	pthread_mutex_lock(&c->policy_lock);
	hit = ctl_policy_excludes(c->policy, pid, ret_why, size);
	pthread_mutex_unlock(&c->policy_lock);
	return hit;
}

int ctl_policy_show(struct ctl *c, struct hp_buf *out)
{
	int r;

	pthread_mutex_lock(&c->policy_lock);
	r = ctl_policy_format(c->policy, out);
	pthread_mutex_unlock(&c->policy_lock);
	return r;
}

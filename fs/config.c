/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * config.c: hotpatchfs's configuration file (default
 * /etc/hotpatch/hotpatchfs.conf, --config FILE), read at start and again on
 * SIGHUP, and the daemon's state directory (what a restart keeps: the
 * value written to auto, the event log).
 *
 *   # comment
 *   auto = 0 | 1              the default of auto-apply (a value written
 *                             to MNT/auto since wins: it is kept)
 *   retries = N               EBUSY: try an apply again up to N more times
 *                             (0 .. 100; default 0)
 *   exclude-exe = PATH        auto-apply leaves processes of this program,
 *   exclude-name = COMM       of this name (/proc/PID/comm),
 *   exclude-unit = UNIT       of this systemd unit or cgroup (a component of
 *                             the cgroup path, or a cgroup path from /)
 *
 * A bad line is refused whole (file:line: what is wrong): at start the
 * daemon does not start, on SIGHUP the old configuration stays.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hpfs.h"

#define HPFS_CONFIG_MAX_BYTES (1024 * 1024)
#define HPFS_RETRIES_MAX 100
#define HPFS_AUTO_FILE "auto"

static pthread_mutex_t config_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hpfs_config config = { .auto_default = -1 };

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void config_release(struct hpfs_config *c)
{
	strv_free(c->exclude_exe, c->n_exclude_exe);
	strv_free(c->exclude_name, c->n_exclude_name);
	strv_free(c->exclude_unit, c->n_exclude_unit);
	memset(c, 0, sizeof(*c));
	c->auto_default = -1;
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

/* Parse TEXT (from PATH, for messages) into RET. */
static int config_parse(const char *path, char *text, struct hpfs_config *ret)
{
	struct hpfs_config c = { .auto_default = -1 };
	unsigned lineno = 0;
	int r = 0;

	for (char *line = text, *next; line && r == 0; line = next) {
		char *eq, *key, *val, *end;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		lineno++;
		line = trim(line);
		if (!*line || *line == '#')
			continue;
		eq = strchr(line, '=');
		if (!eq) {
			r = hp_err(-EINVAL, "%s:%u: not 'key = value': %.60s", path, lineno, line);
			break;
		}
		*eq = '\0';
		key = trim(line);
		val = trim(eq + 1);
		if (!*val) {
			r = hp_err(-EINVAL, "%s:%u: %s: no value", path, lineno, key);
		} else if (!strcmp(key, "auto")) {
			if (strcmp(val, "0") && strcmp(val, "1"))
				r = hp_err(-EINVAL, "%s:%u: auto: '%.20s' is not 0 or 1", path,
					   lineno, val);
			else
				c.auto_default = val[0] == '1';
		} else if (!strcmp(key, "retries")) {
			unsigned long v;

			errno = 0;
			v = strtoul(val, &end, 10);
			if (!isdigit((unsigned char)*val) || *end || errno || v > HPFS_RETRIES_MAX)
				r = hp_err(-EINVAL, "%s:%u: retries: '%.20s' is not a number 0-%d",
					   path, lineno, val, HPFS_RETRIES_MAX);
			else
				c.retries = (unsigned)v;
		} else if (!strcmp(key, "exclude-exe")) {
			if (*val != '/')
				r = hp_err(-EINVAL, "%s:%u: exclude-exe: '%.60s' is not an absolute path",
					   path, lineno, val);
			else
				r = strv_add(&c.exclude_exe, &c.n_exclude_exe, val);
		} else if (!strcmp(key, "exclude-name")) {
			if (strlen(val) > 15)
				r = hp_err(-EINVAL,
					   "%s:%u: exclude-name: '%.60s' is longer than a process name (15)",
					   path, lineno, val);
			else
				r = strv_add(&c.exclude_name, &c.n_exclude_name, val);
		} else if (!strcmp(key, "exclude-unit")) {
			r = strv_add(&c.exclude_unit, &c.n_exclude_unit, val);
		} else {
			r = hp_err(-EINVAL, "%s:%u: unknown key '%.40s'", path, lineno, key);
		}
	}
	if (r < 0) {
		config_release(&c);
		return r;
	}
	*ret = c;
	return 0;
}

int hpfs_config_load(const char *path)
{
	struct hp_buf text = HP_BUF_INIT;
	struct hpfs_config c = { .auto_default = -1 };
	int r;

	r = hp_read_file(path, HPFS_CONFIG_MAX_BYTES, &text);
	if (r == -ENOENT) {
		r = 0; /* no file: the defaults */
	} else if (r < 0) {
		r = hp_err(r, "%s: %s", path, strerror(-r));
	} else if (text.data && memchr(text.data, '\0', text.len)) {
		r = hp_err(-EINVAL, "%s: not a text file (a NUL byte)", path);
	} else if (text.data) {
		r = config_parse(path, text.data, &c);
	}
	hp_buf_release(&text);
	if (r < 0)
		return r;
	pthread_mutex_lock(&config_lock);
	config_release(&config);
	config = c;
	pthread_mutex_unlock(&config_lock);
	return 0;
}

void hpfs_config_free(void)
{
	pthread_mutex_lock(&config_lock);
	config_release(&config);
	pthread_mutex_unlock(&config_lock);
}

unsigned hpfs_config_retries(void)
{
	unsigned n;

	pthread_mutex_lock(&config_lock);
	n = config.retries;
	pthread_mutex_unlock(&config_lock);
	return n;
}

int hpfs_config_auto_default(void)
{
	int v;

	pthread_mutex_lock(&config_lock);
	v = config.auto_default;
	pthread_mutex_unlock(&config_lock);
	return v;
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

bool hpfs_config_excluded(pid_t pid, char *ret_why, size_t size)
{
	char path[64], exe[PATH_MAX], comm[32] = "", cg[4096] = "";
	ssize_t n;
	FILE *f;
	bool hit = false;

	pthread_mutex_lock(&config_lock);
	if (!config.n_exclude_exe && !config.n_exclude_name && !config.n_exclude_unit)
		goto out;
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	n = readlink(path, exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = '\0';
	if (n > 10 && !strcmp(exe + n - 10, " (deleted)"))
		exe[n - 10] = '\0';
	for (size_t i = 0; i < config.n_exclude_exe && !hit; i++)
		if (!strcmp(exe, config.exclude_exe[i])) {
			snprintf(ret_why, size, "exclude-exe %s", config.exclude_exe[i]);
			hit = true;
		}
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	f = fopen(path, "re");
	if (f) {
		if (fgets(comm, sizeof(comm), f))
			comm[strcspn(comm, "\n")] = '\0';
		fclose(f);
	}
	for (size_t i = 0; i < config.n_exclude_name && !hit; i++)
		if (!strcmp(comm, config.exclude_name[i])) {
			snprintf(ret_why, size, "exclude-name %s", config.exclude_name[i]);
			hit = true;
		}
	if (!hit && config.n_exclude_unit) {
		snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
		f = fopen(path, "re");
		/* cgroup v2: one line "0::/system.slice/nginx.service" */
		while (f && !hit && fgets(cg, sizeof(cg), f)) {
			char *p = strstr(cg, "::");

			if (!p)
				continue;
			p += 2;
			p[strcspn(p, "\n")] = '\0';
			for (size_t i = 0; i < config.n_exclude_unit && !hit; i++)
				if (cgroup_has(p, config.exclude_unit[i])) {
					snprintf(ret_why, size, "exclude-unit %s", config.exclude_unit[i]);
					hit = true;
				}
		}
		if (f)
			fclose(f);
	}
out:
	pthread_mutex_unlock(&config_lock);
	return hit;
}

/* ---- the state directory ---------------------------------------------------- */

int hpfs_state_auto(bool *ret)
{
	struct hp_buf b = HP_BUF_INIT;
	char *path = NULL;
	int r;

	if (asprintf(&path, "%s/%s", hpfs.state_dir, HPFS_AUTO_FILE) < 0)
		return -ENOMEM;
	r = hp_read_file(path, 64, &b);
	if (r >= 0) {
		if (b.len >= 1 && (b.data[0] == '0' || b.data[0] == '1'))
			*ret = b.data[0] == '1';
		else
			r = hp_err(-EINVAL, "%s: not 0 or 1", path);
	}
	free(path);
	hp_buf_release(&b);
	return r < 0 ? r : 0;
}

int hpfs_state_auto_save(bool on)
{
	char *path = NULL;
	int r;

	if (asprintf(&path, "%s/%s", hpfs.state_dir, HPFS_AUTO_FILE) < 0)
		return -ENOMEM;
	r = hp_write_file_atomic(path, on ? "1\n" : "0\n", 2, 0644);
	if (r < 0)
		r = hp_err(r, "auto: cannot keep the value in %s: %s", path, strerror(-r));
	free(path);
	return r;
}

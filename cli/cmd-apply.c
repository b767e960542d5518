/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hp apply | revert | status | report. When a hotpatchfs serving the same
 * store is mounted, apply and revert write its control files (so its log
 * and status see them); else they call libhpctl directly. Both paths share
 * one state: what is applied lives in the target's memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "hp.h"

/* "\040" escapes of /proc/self/mountinfo. */
static void unescape(char *s)
{
	char *w = s;

	for (char *r = s; *r; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
		    r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
			r += 3;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
}

/* The mount point of a hotpatchfs serving store, into ret; false when there is none. */
static bool find_mount(const char *store, char *ret, size_t size)
{
	char want[PATH_MAX], *line = NULL;
	size_t cap = 0;
	bool found = false;
	FILE *f;

	if (!realpath(store, want))
		return false;
	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return false;
	while (!found && getline(&line, &cap, f) > 0) {
		char *sep = strstr(line, " - "), *fields[6], *save = NULL, *p;
		struct hp_buf st = HP_BUF_INIT;
		char path[PATH_MAX + 16];
		int n = 0;

		if (!sep || strncmp(sep + 3, "fuse.hotpatchfs ", 16))
			continue;
		*sep = '\0';
		for (p = strtok_r(line, " ", &save); p && n < 6; p = strtok_r(NULL, " ", &save))
			fields[n++] = p;
		if (n < 5)
			continue;
		unescape(fields[4]);
		snprintf(path, sizeof(path), "%s/status", fields[4]);
		/* Only a live mount of the same store will do (a dead one says ENOTCONN). */
		if (hp_read_file(path, 1 << 16, &st) == 0) {
			const char *s = strstr(st.data, "\nstore: ");

			if (s) {
				s += 8;
				found = strlen(want) == strcspn(s, "\n") && !strncmp(s, want, strlen(want));
			}
		}
		hp_buf_release(&st);
		if (found)
			snprintf(ret, size, "%s", fields[4]);
	}
	free(line);
	fclose(f);
	return found;
}

/* Results read back from a control file: "PID ok set=S sets=N changed=C pause_us=P" or "PID ERR msg". */
static int parse_result_lines(const char *text, struct ctl_results *ret)
{
	size_t n = 0, cap = 0;
	struct ctl_result *v = NULL;

	for (const char *line = text; line && *line;) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		char buf[HP_ERRMSG_MAX + 64], word[32];
		struct ctl_result *x;
		int pid = 0, off = 0;

		if (len >= sizeof(buf))
			len = sizeof(buf) - 1;
		memcpy(buf, line, len);
		buf[len] = '\0';
		line = nl ? nl + 1 : NULL;
		if (sscanf(buf, "%d %31s %n", &pid, word, &off) < 2)
			continue;
		if (n == cap) {
			struct ctl_result *nv = realloc(v, (cap = cap ? cap * 2 : 8) * sizeof(*v));

			if (!nv) {
				free(v);
				return -ENOMEM;
			}
			v = nv;
		}
		x = &v[n++];
		memset(x, 0, sizeof(*x));
		x->pid = pid;
		if (!strcmp(word, "ok")) {
			unsigned long long pause = 0;
			int changed = 0;
			char set[160] = "";
			const char *comm;

			sscanf(buf + off, "set=%159s sets=%u changed=%d pause_us=%llu", set,
			       &x->n_sets, &changed, &pause);
			snprintf(x->set_id, sizeof(x->set_id), "%s", strcmp(set, "-") ? set : "");
			x->changed = changed != 0;
			x->pause_us = pause;
			/* comm is the last field: the rest of the line (it may hold blanks). */
			if ((comm = strstr(buf + off, " comm=")))
				snprintf(x->comm, sizeof(x->comm), "%s", comm + 6);
		} else {
			x->err = -EIO;
			for (int e = 1; e < 256; e++) {
				if (!strcmp(ctl_errno_name(-e), word)) {
					x->err = -e;
					break;
				}
			}
			snprintf(x->msg, sizeof(x->msg), "%s", buf + off);
		}
	}
	ret->v = v;
	ret->n = n;
	return 0;
}

/* Write text to MNT/NAME and read the outcome back from the same handle. */
static int via_mount(const char *mnt, const char *name, const char *text, struct ctl_results *ret)
{
	struct hp_buf out = HP_BUF_INIT;
	char path[PATH_MAX + 16], buf[4096];
	ssize_t n;
	int fd, r, r2;

	snprintf(path, sizeof(path), "%s/%s", mnt, name);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return hp_err(-errno, "open %s: %s", path, strerror(errno));
	r = write(fd, text, strlen(text)) < 0 ? -errno : 0;
	/*
	 * The outcome is the file's contents from offset 0; the write moved
	 * the offset past the command.
	 */
	if (lseek(fd, 0, SEEK_SET) < 0) {
		r2 = hp_err(-errno, "seek %s: %s", path, strerror(errno));
		close(fd);
		return r < 0 ? r : r2;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		hp_buf_add(&out, buf, (size_t)n);
	if (n < 0 && r >= 0)
		r = hp_err(-errno, "read %s: %s", path, strerror(errno));
	close(fd);
	r2 = parse_result_lines(out.data ? out.data : "", ret);
	if (r2 < 0 && r >= 0)
		r = r2;
	if (r < 0) {
		/* The daemon's message for it, when the outcome names one. */
		if (ret->n == 1 && ret->v[0].err < 0)
			hp_err(r, "%s", ret->v[0].msg);
		else if (out.len > 0 && ret->n == 0)
			hp_err(r, "%.*s", (int)strcspn(out.data, "\n"),
			       strchr(out.data, ' ') ? strchr(out.data, ' ') + 1 : out.data);
		else
			hp_err(r, "%s: %s", path, strerror(-r));
	}
	hp_buf_release(&out);
	return r;
}

static void print_results(const struct hp_global *g, bool revert, int err,
			  const struct ctl_results *res)
{
	if (g->json) {
		struct hp_buf b = HP_BUF_INIT;

		ctl_results_format(res, true, &b);
		fputs(b.data ? b.data : "[]\n", stdout);
		hp_buf_release(&b);
		return;
	}
	for (size_t i = 0; i < res->n; i++) {
		const struct ctl_result *x = &res->v[i];

		if (x->err < 0)
			continue;
		if (!x->changed)
			printf("%d: %s %s (nothing changed)\n", (int)x->pid,
			       revert ? "nothing to revert" : "already applied", x->set_id);
		else
			printf("%d: %s %s (pause %llu us)\n", (int)x->pid,
			       revert ? "reverted" : "applied", x->set_id,
			       (unsigned long long)x->pause_us);
	}
	/* Only a success says so: a failure before any process has its line on stderr. */
	if (res->n == 0 && err >= 0)
		printf("no process to %s\n", revert ? "revert" : "patch");
}

static int run(const struct hp_global *g, const char *cmdname, bool revert, int argc, char **argv)
{
	struct ctl_results res = { NULL, 0 };
	struct ctl *c = NULL;
	struct ctl_cmd cmd;
	struct hp_buf text = HP_BUF_INIT;
	char mnt[PATH_MAX];
	int r, status = 1;

	if (argc < 2 || argc > (revert ? 2 : 3))
		return hp_usage(revert ? "revert PID | all" : "apply PID [MONTH] | all [TARGET]");
	for (int i = 1; i < argc; i++)
		hp_buf_addf(&text, "%s%s", i > 1 ? " " : "", argv[i]);
	hp_buf_adds(&text, "\n");
	r = revert ? ctl_parse_revert(text.data, text.len, &cmd)
		   : ctl_parse_apply(text.data, text.len, &cmd);
	if (r < 0)
		goto fail;
	if (find_mount(g->store, mnt, sizeof(mnt))) {
		r = via_mount(mnt, revert ? "revert" : "apply", text.data, &res);
		/* One process asked for: its outcome, or something went wrong on the way. */
		if (r >= 0 && cmd.kind == CTL_CMD_PID && res.n != 1)
			r = hp_err(-EIO, "%s/%s: no outcome read back for process %d", mnt,
				   revert ? "revert" : "apply", (int)cmd.pid);
	} else {
		struct ctl_opts o = { g->store, 0, 0, 0 };
		struct ctl_caller who = { getuid(), getgid(), getpid() };

		r = ctl_new(&o, &c);
		if (r < 0)
			goto fail;
		r = ctl_run(c, &who, revert, &cmd, &res);
	}
	print_results(g, revert, r, &res);
	if (r < 0) {
		/* One line per process that failed, or the one reason. */
		size_t shown = 0;

		for (size_t i = 0; i < res.n; i++) {
			if (res.v[i].err < 0) {
				fprintf(stderr, "hp %s: %s\n", cmdname, res.v[i].msg);
				shown++;
			}
		}
		if (!shown)
			hp_fail(cmdname, r);
		goto out;
	}
	status = 0;
	goto out;
fail:
	hp_fail(cmdname, r);
out:
	ctl_results_release(&res);
	hp_buf_release(&text);
	ctl_free(c);
	return status;
}

int cmd_apply(const struct hp_global *g, int argc, char **argv)
{
	return run(g, "apply", false, argc, argv);
}

int cmd_revert(const struct hp_global *g, int argc, char **argv)
{
	return run(g, "revert", true, argc, argv);
}

/* The mounted daemon's view adds what it alone knows: a failure's reason, a running apply. */
static void merge_mount_view(const char *mnt, struct ctl_status *s)
{
	struct hp_buf b = HP_BUF_INIT;
	char path[PATH_MAX + 64];
	const char *p;

	snprintf(path, sizeof(path), "%s/processes/%d/status", mnt, (int)s->pid);
	if (hp_read_file(path, 1 << 20, &b) < 0)
		return;
	if ((p = strstr(b.data, "\nstate: "))) {
		p += 8;
		if (!strncmp(p, "failed\n", 7))
			s->state = ctl_state_combine(s->state, CTL_STATE_FAILED);
		else if (!strncmp(p, "in-progress\n", 12))
			s->state = CTL_STATE_IN_PROGRESS;
	}
	if ((p = strstr(b.data, "\nreason: "))) {
		p += 9;
		snprintf(s->reason, sizeof(s->reason), "%.*s", (int)strcspn(p, "\n"), p);
	}
	if ((p = strstr(b.data, "\nlast-pause-us: ")) && p[16] >= '0' && p[16] <= '9') {
		s->have_pause = true;
		s->last_pause_us = strtoull(p + 16, NULL, 10);
	}
	hp_buf_release(&b);
}

int cmd_status(const struct hp_global *g, int argc, char **argv)
{
	struct ctl_opts o = { g->store, 0, 0, 0 };
	struct ctl_status *s = NULL;
	struct hp_buf b = HP_BUF_INIT;
	struct ctl *c = NULL;
	struct ctl_cmd cmd;
	char mnt[PATH_MAX];
	int r, status = 1;

	if (argc != 2)
		return hp_usage("status PID");
	r = ctl_parse_revert(argv[1], strlen(argv[1]), &cmd);
	if (r >= 0 && cmd.kind != CTL_CMD_PID)
		r = hp_err(-EINVAL, "'%s' is not a process id", argv[1]);
	if (r < 0)
		goto fail;
	r = ctl_new(&o, &c);
	if (r < 0)
		goto fail;
	r = ctl_status(c, cmd.pid, &s);
	if (r < 0)
		goto fail;
	if (find_mount(g->store, mnt, sizeof(mnt)))
		merge_mount_view(mnt, s);
	ctl_status_format(s, g->json, &b);
	fputs(b.data, stdout);
	status = 0;
	goto out;
fail:
	hp_fail("status", r);
out:
	hp_buf_release(&b);
	ctl_status_free(s);
	ctl_free(c);
	return status;
}

int cmd_report(const struct hp_global *g, int argc, char **argv)
{
	struct ctl_opts o = { g->store, 0, 0, 0 };
	struct hp_buf b = HP_BUF_INIT;
	struct ctl *c = NULL;
	char mnt[PATH_MAX], path[PATH_MAX + 16];
	int r, status = 1;

	if (argc != 1)
		return hp_usage("report");
	if (!g->json && find_mount(g->store, mnt, sizeof(mnt))) {
		snprintf(path, sizeof(path), "%s/report", mnt);
		r = hp_read_file(path, 64u << 20, &b);
	} else {
		r = ctl_new(&o, &c);
		if (r >= 0)
			r = ctl_report(c, g->json, &b);
	}
	if (r < 0) {
		hp_fail("report", r);
		goto out;
	}
	fputs(b.data ? b.data : (g->json ? "[]\n" : ""), stdout);
	status = 0;
out:
	hp_buf_release(&b);
	ctl_free(c);
	return status;
}

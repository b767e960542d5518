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
#include <sys/stat.h>
#include <unistd.h>
#include <pthread.h>

#include "ctl.h"
#include "hp-procfs.h"
#include "hp.h"

/* The most hp reads of a file of the mount (status, processes/PID/status). */
#define MNT_FILE_MAX (1 << 20)

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
		proc_mountinfo_unescape(fields[4]);
		snprintf(path, sizeof(path), "%s/status", fields[4]);
		/* Only a live mount of the same store will do (a dead one says ENOTCONN). */
		if (hp_read_file(path, MNT_FILE_MAX, &st) == 0) {
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

/*
 * The exclusions "all" honours: the mounted daemon's (MNT/status lists the
 * ones it uses now), else the configuration file's ($HP_CONFIG, else
 * CTL_DEFAULT_CONFIG), as hotpatchfs would read it. mnt NULL: not mounted.
 */
static int load_policy(struct ctl *c, const char *mnt)
{
	struct ctl_policy *p = NULL;
	struct hp_buf st = HP_BUF_INIT;
	char path[PATH_MAX + 16];
	const char *conf = getenv("HP_CONFIG");
	int r;

	if (!mnt) {
		r = ctl_policy_load(conf && *conf ? conf : CTL_DEFAULT_CONFIG, &p);
		if (r < 0)
			return r;
		ctl_set_policy(c, p);
		return 0;
	}
	snprintf(path, sizeof(path), "%s/status", mnt);
	r = ctl_policy_new(&p);
	if (r == 0)
		r = hp_read_file(path, MNT_FILE_MAX, &st);
	for (char *line = st.data, *next; r >= 0 && line && *line; line = next) {
		char *sep;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		sep = strstr(line, ": ");
		if (strncmp(line, "exclude-", 8) || !sep)
			continue;
		*sep = '\0';
		r = ctl_policy_add(p, path, line, sep + 2);
	}
	hp_buf_release(&st);
	if (r < 0) {
		ctl_policy_free(p);
		return r;
	}
	ctl_set_policy(c, p);
	return 0;
}

/*
 * For status and report, which only show what the policy says: a policy
 * that cannot be read is a warning (the state is shown, without the
 * exclusions), not a failure.
 */
static void show_policy(struct ctl *c, const char *mnt, const char *cmdname)
{
	int r = load_policy(c, mnt);

	if (r < 0)
		fprintf(stderr, "hp %s: warning: %s (exclusions not shown)\n", cmdname,
			hp_errmsg(r));
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
		if (!strcmp(word, "excluded")) {
			const char *comm = strstr(buf + off, " comm=");

			snprintf(x->excluded, sizeof(x->excluded), "%.*s",
				 (int)(comm ? (size_t)(comm - (buf + off)) : strlen(buf + off)),
				 buf + off);
			if (comm)
				snprintf(x->comm, sizeof(x->comm), "%s", comm + 6);
		} else if (!strcmp(word, "ok")) {
			unsigned long long pause = 0;
			int changed = 0;
			char set[HP_SET_ID_SIZE] = "";
			const char *comm;

			if (!strncmp(buf + off, "set=", 4))
				snprintf(set, sizeof(set), "%.*s", (int)strcspn(buf + off + 4, " "),
					 buf + off + 4);
			sscanf(buf + off, "set=%*s sets=%u changed=%d pause_us=%llu", &x->n_sets,
			       &changed, &pause);
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

static void print_results(const struct ctl_results *res)
{
	struct hp_buf b = HP_BUF_INIT;

	ctl_results_format(res, true, &b);
	fputs(b.data ? b.data : "[]\n", stdout);
	hp_buf_release(&b);
}

/*
 * No live hotpatchfs serves the store: say so when one was expected at the
 * mount point ($HP_MOUNT, else /hp) because that directory exists, dead
 * (ENOTCONN: the daemon died) or empty, so that nobody takes the daemon's
 * absence for its silence.
 */
static void note_daemon_down(const char *cmdname)
{
	const char *mp = getenv("HP_MOUNT");
	struct stat st;

	if (!mp || !*mp)
		mp = "/hp";
	if (stat(mp, &st) < 0 && errno == ENOTCONN)
		fprintf(stderr, "hp %s: hotpatchfs at %s is not connected (the daemon died): "
			"acting on the store directly; restart it (fusermount3 -u %s first)\n",
			cmdname, mp, mp);
	else if (stat(mp, &st) == 0 && S_ISDIR(st.st_mode))
		fprintf(stderr, "hp %s: hotpatchfs is not running (nothing serves this store at "
			"%s): acting on the store directly\n", cmdname, mp);
}

static bool mounted(const struct hp_global *g, const char *cmdname, char *mnt, size_t size)
{
	if (find_mount(g->store, mnt, size))
		return true;
	note_daemon_down(cmdname);
	return false;
}

/* Streaming output of an apply or revert: a line per process as it finishes, a bar on a tty. */
struct progress {
	const struct hp_global *g;
	bool revert;
	bool bar;
	pthread_mutex_t mu;
	size_t shown;
};

static void result_line(const struct progress *pg, const struct ctl_result *x)
{
	if (x->excluded[0])
		printf("%d: excluded by the configuration (%s): left alone\n", (int)x->pid,
		       x->excluded);
	else if (x->err < 0)
		fprintf(stderr, "hp %s: %s\n", pg->revert ? "revert" : "apply", x->msg);
	else if (!x->changed)
		printf("%d: %s %s (nothing changed)\n", (int)x->pid,
		       pg->revert ? "nothing to revert" : "already applied",
		       x->set_id[0] ? x->set_id : "-");
	else if (!x->set_id[0])
		printf("%d: reverted (its set was withdrawn, none valid is left) (pause %llu us)\n",
		       (int)x->pid, (unsigned long long)x->pause_us);
	else
		printf("%d: %s %s (pause %llu us)\n", (int)x->pid,
		       pg->revert ? "reverted" : "applied", x->set_id,
		       (unsigned long long)x->pause_us);
}

static void on_progress(void *ctx, const struct ctl_result *x, size_t done, size_t total)
{
	struct progress *pg = ctx;

	if (pg->g->json)
		return;
	pthread_mutex_lock(&pg->mu);
	if (pg->bar)
		fputs("\r\033[K", stderr);
	/* x NULL: a process looked at and left alone; only the bar moves. */
	if (x) {
		result_line(pg, x);
		fflush(stdout);
		pg->shown++;
	}
	if (pg->bar && total > 1) {
		char bar[41];
		size_t w = total ? done * 40 / total : 40;

		memset(bar, '#', w);
		memset(bar + w, '.', 40 - w);
		bar[40] = '\0';
		fprintf(stderr, "[%s] %zu/%zu", bar, done, total);
		if (done == total)
			fputs("\r\033[K", stderr);
	}
	fflush(stderr);
	pthread_mutex_unlock(&pg->mu);
}

/* "all" through the mount: the daemon applies one process per write, so lines stream. */
struct mount_job {
	const char *mnt;
	bool revert;
	struct ctl_results *res;
	size_t next, done; /* atomic */
	struct progress *pg;
};

static void *mount_worker(void *arg)
{
	struct mount_job *j = arg;
	size_t i;

	while ((i = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED)) < j->res->n) {
		struct ctl_result *x = &j->res->v[i];
		struct ctl_results one = { NULL, 0 };
		char text[32];
		int r;

		if (x->excluded[0])
			continue; /* said already */
		snprintf(text, sizeof(text), "%d\n", (int)x->pid);
		hp_err_clear();
		r = via_mount(j->mnt, j->revert ? "revert" : "apply", text, &one);
		if (one.n == 1) {
			*x = one.v[0];
		} else {
			x->err = r < 0 ? r : -EIO;
			snprintf(x->msg, sizeof(x->msg), "%s", r < 0 ? hp_errmsg(r) : "no outcome");
		}
		ctl_results_release(&one);
		on_progress(j->pg, x, __atomic_add_fetch(&j->done, 1, __ATOMIC_RELAXED), j->res->n);
	}
	return NULL;
}

static int all_via_mount(const struct hp_global *g, const char *mnt, bool revert,
			 const struct ctl_cmd *cmd, struct progress *pg, struct ctl_results *res)
{
	struct ctl_opts o = { g->store, 0, 0, 0, 0 };
	struct ctl_caller who = { getuid(), getgid(), getpid() };
	struct mount_job job = { mnt, revert, res, 0, 0, pg };
	struct ctl *c = NULL;
	pid_t *pids = NULL;
	pthread_t th[4];
	size_t n = 0, n_threads = 0;
	int r;

	r = ctl_new(&o, &c);
	if (r == 0)
		r = load_policy(c, mnt);
	if (r == 0)
		r = ctl_all_pids(c, &who, revert, cmd->target, &pids, &n);
	if (r == 0) {
		res->v = calloc(n ? n : 1, sizeof(*res->v));
		if (!res->v)
			r = -ENOMEM;
	}
	if (r < 0) {
		free(pids);
		ctl_free(c);
		return r;
	}
	res->n = n;
	/* What the daemon's policy excludes is left alone: never written, said why. */
	for (size_t i = 0; i < n; i++) {
		struct ctl_result *x = &res->v[i];

		x->pid = pids[i];
		if (ctl_excluded(c, x->pid, x->excluded, sizeof(x->excluded))) {
			struct proc_stat_fields ps;

			if (proc_stat_read(x->pid, &ps) == 0)
				snprintf(x->comm, sizeof(x->comm), "%s", ps.comm);
			on_progress(pg, x, __atomic_add_fetch(&job.done, 1, __ATOMIC_RELAXED), n);
		}
	}
	free(pids);
	ctl_free(c);
	for (; n_threads < sizeof(th) / sizeof(th[0]) && n_threads + 1 < n; n_threads++)
		if (pthread_create(&th[n_threads], NULL, mount_worker, &job) != 0)
			break;
	mount_worker(&job);
	for (size_t i = 0; i < n_threads; i++)
		pthread_join(th[i], NULL);
	for (size_t i = 0; i < n; i++)
		if (res->v[i].err < 0)
			return hp_err(res->v[i].err, "process %d: %s", (int)res->v[i].pid,
				      res->v[i].msg);
	return 0;
}

static int run(const struct hp_global *g, const char *cmdname, bool revert, int argc, char **argv)
{
	struct ctl_results res = { NULL, 0 };
	struct ctl *c = NULL;
	struct ctl_cmd cmd;
	struct hp_buf text = HP_BUF_INIT;
	struct progress pg = { g, revert, false, PTHREAD_MUTEX_INITIALIZER, 0 };
	const char *usage = revert ? "revert PID | all" : "apply [--retries N] PID [MONTH] | all [TARGET]";
	char mnt[PATH_MAX], *args[3];
	unsigned retries = 0;
	int n = 0, r, status = 1;

	for (int i = 1; i < argc; i++) {
		const char *v = NULL;
		char *end;

		if (!revert && !strcmp(argv[i], "--retries") && i + 1 < argc)
			v = argv[++i];
		else if (!revert && !strncmp(argv[i], "--retries=", 10))
			v = argv[i] + 10;
		else if ((argv[i][0] == '-' && argv[i][1] == '-') || n == (revert ? 1 : 2))
			return hp_usage(usage);
		else
			args[n++] = argv[i];
		if (v) {
			unsigned long x = strtoul(v, &end, 10);

			if (!*v || *end || x > CTL_POLICY_RETRIES_MAX)
				return hp_usage_error(cmdname, "--retries takes a count from 0 to %d, not '%s'",
						      CTL_POLICY_RETRIES_MAX, v);
			retries = (unsigned)x;
		}
	}
	if (n == 0)
		return hp_usage(usage);
	for (int i = 0; i < n; i++)
		hp_buf_addf(&text, "%s%s", i ? " " : "", args[i]);
	hp_buf_adds(&text, "\n");
	r = revert ? ctl_parse_revert(text.data, text.len, &cmd)
		   : ctl_parse_apply(text.data, text.len, &cmd);
	if (r < 0)
		goto fail;
	pg.bar = cmd.kind == CTL_CMD_ALL && !g->json && isatty(STDERR_FILENO);
	if (mounted(g, cmdname, mnt, sizeof(mnt))) {
		if (cmd.kind == CTL_CMD_ALL) {
			r = all_via_mount(g, mnt, revert, &cmd, &pg, &res);
		} else {
			r = via_mount(mnt, revert ? "revert" : "apply", text.data, &res);
			/* One process asked for: its outcome, or something went wrong on the way. */
			if (r >= 0 && res.n != 1)
				r = hp_err(-EIO, "%s/%s: no outcome read back for process %d", mnt,
					   revert ? "revert" : "apply", (int)cmd.pid);
			/* The daemon has its own retry budget; --retries adds ours. */
			for (unsigned k = 0; r == -EBUSY && k < retries; k++) {
				ctl_results_release(&res);
				hp_err_clear();
				r = via_mount(mnt, "apply", text.data, &res);
			}
			if (res.n == 1)
				on_progress(&pg, &res.v[0], 1, 1);
		}
	} else {
		struct ctl_opts o = { g->store, 0, 0, 0, retries };
		struct ctl_caller who = { getuid(), getgid(), getpid() };

		r = ctl_new(&o, &c);
		if (r >= 0 && cmd.kind == CTL_CMD_ALL)
			r = load_policy(c, NULL);
		if (r < 0)
			goto fail;
		r = ctl_run_progress(c, &who, revert, &cmd, on_progress, &pg, &res);
	}
	if (g->json) {
		if (r < 0 && res.n == 0) {
			hp_fail(cmdname, r);
			goto out;
		}
		print_results(&res);
	} else if (res.n == 0 && r >= 0) {
		printf("no process to %s\n", revert ? "revert" : "patch");
	}
	if (r < 0) {
		/* Each process that failed has had its line; else the one reason. */
		size_t failed = 0;

		for (size_t i = 0; i < res.n; i++)
			failed += res.v[i].err < 0;
		if (!failed && !g->json)
			hp_fail(cmdname, r);
		if (g->json)
			for (size_t i = 0; i < res.n; i++)
				if (res.v[i].err < 0)
					fprintf(stderr, "hp %s: %s\n", cmdname, res.v[i].msg);
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
	if (hp_read_file(path, MNT_FILE_MAX, &b) < 0)
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
	struct ctl_opts o = { g->store, 0, 0, 0, 0 };
	struct ctl_status *s = NULL;
	struct hp_buf b = HP_BUF_INIT;
	struct ctl *c = NULL;
	struct ctl_cmd cmd;
	char mnt[PATH_MAX];
	bool is_mounted;
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
	is_mounted = mounted(g, "status", mnt, sizeof(mnt));
	show_policy(c, is_mounted ? mnt : NULL, "status");
	r = ctl_status(c, cmd.pid, &s);
	if (r < 0)
		goto fail;
	if (is_mounted)
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

static void adjust_from_mount(void *ctx, struct ctl_status *s)
{
	merge_mount_view(ctx, s);
}

int cmd_report(const struct hp_global *g, int argc, char **argv)
{
	static const char usage[] = "report [--check] [--state STATE]... [--target NAME] [--name COMM]";
	struct ctl_opts o = { g->store, 0, 0, 0, 0 };
	struct ctl_report_filter f;
	struct ctl_report_counts cnt;
	struct hp_buf b = HP_BUF_INIT;
	struct ctl *c = NULL;
	char mnt[PATH_MAX];
	bool check = false;
	int r, status = 1;

	memset(&f, 0, sizeof(f));
	for (int i = 1; i < argc; i++) {
		const char *opt = argv[i], *v = NULL;

		if (!strcmp(opt, "--check")) {
			check = true;
			continue;
		}
		if ((!strcmp(opt, "--state") || !strcmp(opt, "--target") || !strcmp(opt, "--name")) &&
		    i + 1 < argc)
			v = argv[++i];
		else
			return hp_usage(usage);
		if (!strcmp(opt, "--state")) {
			int st = ctl_state_parse(v);

			if (st < 0)
				return hp_usage_error("report", "%s", hp_errmsg(st));
			f.states |= 1u << st;
		} else if (!strcmp(opt, "--target")) {
			f.target = v;
		} else {
			f.comm = v;
		}
	}
	f.only_attention = check;
	if (mounted(g, "report", mnt, sizeof(mnt))) {
		/* The daemon knows what it alone saw: a failure's reason, an apply running. */
		f.adjust = adjust_from_mount;
		f.adjust_ctx = mnt;
	}
	r = ctl_new(&o, &c);
	if (r >= 0) {
		show_policy(c, f.adjust ? mnt : NULL, "report");
		r = ctl_report_filtered(c, g->json, &f, &b, &cnt);
	}
	if (r < 0) {
		hp_fail("report", r);
		goto out;
	}
	fputs(b.data ? b.data : "", stdout);
	status = 0;
	if (check) {
		size_t ok = cnt.per_state[CTL_STATE_HOTPATCHED] + cnt.per_state[CTL_STATE_UP_TO_DATE];

		status = ok == cnt.n ? 0 : 1;
		if (status)
			fprintf(stderr, "hp report: %zu of %zu processes neither hotpatched nor up-to-date\n",
				cnt.n - ok, cnt.n);
	}
out:
	hp_buf_release(&b);
	ctl_free(c);
	return status;
}

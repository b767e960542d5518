/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Process status in the words of docs/contract.md, the process list and the report. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ctl-int.h"

/* A process that mapped no known target name is looked at again after this. */
#define CTL_SCAN_RECHECK_US 1000000

/* ---- status -------------------------------------------------------------- */

void ctl_status_free(struct ctl_status *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_targets; i++) {
		free(s->targets[i].path);
		free(s->targets[i].name);
		free(s->targets[i].baseline);
		free(s->targets[i].newest_month);
		free(s->targets[i].newer_baseline);
		free(s->targets[i].newest_set);
		free(s->targets[i].withdrawn);
		for (size_t k = 0; k < s->targets[i].n_funcs; k++)
			free(s->targets[i].funcs[k]);
		free(s->targets[i].funcs);
		for (size_t k = 0; k < s->targets[i].n_cves; k++)
			free(s->targets[i].cves[k]);
		free(s->targets[i].cves);
	}
	free(s->targets);
	free(s->exe);
	free(s);
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* What the applied set replaces and fixes, from its manifest (published or withdrawn). */
static int applied_details(struct store_snap *snap, struct ctl_target *t)
{
	struct hp_manifest *m = NULL;
	char reason[HP_ERRMSG_MAX];

	if (store_withdrawn(snap, t->applied_set, reason, sizeof(reason)) == 0 &&
	    !(t->withdrawn = strdup(reason[0] ? reason : "withdrawn")))
		return -ENOMEM;
	if (store_set_manifest(snap, t->applied_set, &m) < 0)
		return 0; /* unknown to this store: nothing more to say */
	t->funcs = calloc(m->n_funcs ? m->n_funcs : 1, sizeof(*t->funcs));
	t->cves = calloc(m->n_cves ? m->n_cves : 1, sizeof(*t->cves));
	if (!t->funcs || !t->cves)
		goto nomem;
	for (size_t i = 0; i < m->n_funcs; i++) {
		const struct hp_manifest_func *f = &m->funcs[i];

		if (f->file ? asprintf(&t->funcs[i], "%s@%s", f->name, f->file) < 0
			    : !(t->funcs[i] = strdup(f->name)))
			goto nomem;
		t->n_funcs++;
	}
	for (size_t i = 0; i < m->n_cves; i++) {
		if (!(t->cves[i] = strdup(m->cves[i])))
			goto nomem;
		t->n_cves++;
	}
	hp_manifest_free(m);
	return 0;
nomem:
	hp_manifest_free(m);
	return -ENOMEM;
}

/* What a target's state is decided from (applied: the process runs a set of it). */
static void state_in(const struct ctl_target *t, bool applied, struct ctl_state_in *in)
{
	memset(in, 0, sizeof(*in));
	in->covered = t->covered;
	in->newest_month = t->newest_month;
	in->newer_baseline = t->newer_baseline;
	in->applied_month = applied ? t->applied_month : NULL;
	in->applied_set = applied ? t->applied_set : NULL;
	in->newest_set = t->newest_set;
	in->applied_withdrawn = t->withdrawn != NULL;
}

/*
 * Targets in-progress: an active-ok function's running activations kept
 * its old code. Looked at again now (the engine stops the process for it):
 * the functions no thread runs any more are unmarked, and the targets and
 * the process take the state of what is applied; else in-progress, with
 * the functions and threads in the reason.
 */
static void settle(struct ctl *c, struct ctl_status *s)
{
	struct apply_opts aopts = { c->budget_ms };
	struct apply_proc *p = NULL;
	char msg[HP_ERRMSG_MAX];
	int r = apply_settle(s->pid, &aopts, msg, sizeof(msg));

	if (r < 0) {
		snprintf(s->reason, sizeof(s->reason), "old code may still run: %.400s",
			 hp_errmsg(r));
		s->state = ctl_state_combine(s->state, CTL_STATE_IN_PROGRESS);
		return;
	}
	if (r > 0) {
		snprintf(s->reason, sizeof(s->reason), "old code still running: %.400s", msg);
		s->state = ctl_state_combine(s->state, CTL_STATE_IN_PROGRESS);
		return;
	}
	/* every old activation is gone: each target's state is its set's */
	if (apply_inspect(s->pid, &p) < 0)
		return;
	s->state = CTL_STATE_UP_TO_DATE;
	for (size_t i = 0; i < s->n_targets; i++) {
		struct ctl_target *t = &s->targets[i];
		const struct apply_applied *a = apply_proc_find(p, t->build_id);
		struct ctl_state_in in;

		state_in(t, a != NULL, &in);
		if (t->state == CTL_STATE_IN_PROGRESS && a && !a->n_old_live)
			t->state = ctl_target_state(&in);
		s->state = ctl_state_combine(s->state, t->state);
	}
	apply_proc_free(p);
}

int ctl_status(struct ctl *c, pid_t pid, struct ctl_status **ret)
{
	struct apply_proc *p = NULL;
	struct ctl_snap *snap = NULL;
	struct ctl_status *s = NULL;
	struct ctl_outcome oc;
	int64_t newest_at = -1;
	bool old_live = false;
	int r;

	r = apply_inspect(pid, &p);
	if (r < 0)
		goto fail;
	r = ctl_snap_get(c, true, &snap);
	if (r < 0 && r != -ENOENT)
		goto fail;
	s = calloc(1, sizeof(*s));
	if (!s || !(s->targets = calloc(p->n_objects ? p->n_objects : 1, sizeof(*s->targets)))) {
		r = -ENOMEM;
		goto fail;
	}
	s->pid = p->pid;
	s->uid = p->uid;
	s->start_time = p->start_time;
	snprintf(s->comm, sizeof(s->comm), "%s", p->comm);
	s->exe = dup_or_null(p->exe);
	s->state = CTL_STATE_UP_TO_DATE;
	for (size_t i = 0; snap && i < p->n_objects; i++) {
		const struct apply_object *o = &p->objects[i];
		const struct apply_applied *a;
		struct store_target_info ti;
		struct ctl_target *t;
		struct ctl_state_in in;
		char name[256];
		bool dup = false;

		if (!o->build_id[0])
			continue;
		for (size_t j = 0; j < s->n_targets && !dup; j++)
			dup = !strcmp(s->targets[j].build_id, o->build_id);
		if (dup)
			continue;
		ctl_path_name(o->path, name, sizeof(name));
		memset(&ti, 0, sizeof(ti));
		memset(&in, 0, sizeof(in));
		if (store_target_info(snap->snap, o->build_id, &ti) == 0)
			in.covered = true;
		else if (!store_knows_target_name(snap->snap, name))
			continue;
		t = &s->targets[s->n_targets++];
		t->path = strdup(o->path);
		t->name = strdup(ti.name ? ti.name : name);
		snprintf(t->build_id, sizeof(t->build_id), "%s", o->build_id);
		t->covered = in.covered;
		t->baseline = dup_or_null(ti.baseline);
		t->newest_month = dup_or_null(ti.newest_month);
		t->newer_baseline = dup_or_null(ti.newer_baseline);
		t->newest_set = dup_or_null(ti.newest_set);
		store_target_info_release(&ti);
		a = apply_proc_find(p, o->build_id);
		if (a) {
			snprintf(t->applied_set, sizeof(t->applied_set), "%s", a->set_id);
			snprintf(t->applied_month, sizeof(t->applied_month), "%s", a->month);
			t->pause_us = a->pause_us;
			t->applied_at = a->applied_at;
			if (a->applied_at > newest_at) {
				newest_at = a->applied_at;
				s->have_pause = true;
				s->last_pause_us = a->pause_us;
			}
		}
		if (a && applied_details(snap->snap, t) < 0) {
			r = -ENOMEM;
			goto fail;
		}
		state_in(t, a != NULL, &in);
		t->state = ctl_target_state(&in);
		if (a && a->n_switched < a->n_funcs) {
			/* an engine killed between two entry writes */
			t->state = CTL_STATE_FAILED;
			snprintf(s->reason, sizeof(s->reason),
				 "%s: %u of %u functions switched: apply or revert completes it",
				 a->set_id, a->n_switched, a->n_funcs);
		} else if (a && a->n_old_live) {
			/* an active-ok function's running activation was on the old code */
			t->state = CTL_STATE_IN_PROGRESS;
			old_live = true;
		}
		s->state = ctl_state_combine(s->state, t->state);
		if (!t->path || !t->name) {
			r = -ENOMEM;
			goto fail;
		}
	}
	if (old_live)
		settle(c, s);
	if (ctl_outcome_get(c, pid, p->start_time, &oc)) {
		/* This context's own latest operation on it is the freshest pause. */
		if (oc.have_pause) {
			s->have_pause = true;
			s->last_pause_us = oc.pause_us;
		}
		if (oc.failed) {
			s->state = ctl_state_combine(s->state, CTL_STATE_FAILED);
			snprintf(s->reason, sizeof(s->reason), "%s", oc.reason);
		}
		if (oc.running)
			s->state = CTL_STATE_IN_PROGRESS;
	}
	/* The policy opts it out of "all" and auto-apply: said, the state stays what it is. */
	ctl_excluded(c, pid, s->excluded, sizeof(s->excluded));
	ctl_snap_unref(snap);
	apply_proc_free(p);
	*ret = s;
	return 0;
fail:
	ctl_snap_unref(snap);
	apply_proc_free(p);
	ctl_status_free(s);
	return r;
}

static void json_str_or_null(struct hp_buf *out, const char *s)
{
	if (s && *s)
		hp_buf_add_json_str(out, s);
	else
		hp_buf_adds(out, "null");
}

static const char *or_dash(const char *s)
{
	return (s && *s) ? s : "-";
}

int ctl_status_format(const struct ctl_status *s, bool json, struct hp_buf *out)
{
	if (json) {
		hp_buf_addf(out, "{\"pid\":%d,\"comm\":", (int)s->pid);
		hp_buf_add_json_str(out, s->comm);
		hp_buf_adds(out, ",\"exe\":");
		json_str_or_null(out, s->exe);
		hp_buf_addf(out, ",\"state\":\"%s\",\"reason\":", ctl_state_name(s->state));
		json_str_or_null(out, s->reason);
		if (s->have_pause)
			hp_buf_addf(out, ",\"last_pause_us\":%llu",
				    (unsigned long long)s->last_pause_us);
		else
			hp_buf_adds(out, ",\"last_pause_us\":null");
		hp_buf_adds(out, ",\"excluded\":");
		json_str_or_null(out, s->excluded);
		hp_buf_adds(out, ",\"targets\":[");
		for (size_t i = 0; i < s->n_targets; i++) {
			const struct ctl_target *t = &s->targets[i];

			hp_buf_adds(out, i ? ",{\"name\":" : "{\"name\":");
			hp_buf_add_json_str(out, t->name);
			hp_buf_adds(out, ",\"path\":");
			hp_buf_add_json_str(out, t->path);
			hp_buf_addf(out, ",\"build_id\":\"%s\",\"baseline\":", t->build_id);
			json_str_or_null(out, t->baseline);
			hp_buf_adds(out, ",\"applied\":");
			json_str_or_null(out, t->applied_set);
			hp_buf_adds(out, ",\"month\":");
			json_str_or_null(out, t->applied_month);
			hp_buf_adds(out, ",\"latest\":");
			json_str_or_null(out, t->newest_month);
			hp_buf_adds(out, ",\"newer_baseline\":");
			json_str_or_null(out, t->newer_baseline);
			hp_buf_adds(out, ",\"next\":");
			json_str_or_null(out, t->newest_set);
			hp_buf_adds(out, ",\"withdrawn\":");
			json_str_or_null(out, t->withdrawn);
			if (t->applied_set[0])
				hp_buf_addf(out, ",\"applied_at\":%lld", (long long)t->applied_at);
			else
				hp_buf_adds(out, ",\"applied_at\":null");
			hp_buf_adds(out, ",\"functions\":[");
			for (size_t k = 0; k < t->n_funcs; k++) {
				hp_buf_adds(out, k ? "," : "");
				hp_buf_add_json_str(out, t->funcs[k]);
			}
			hp_buf_adds(out, "],\"cves\":[");
			for (size_t k = 0; k < t->n_cves; k++) {
				hp_buf_adds(out, k ? "," : "");
				hp_buf_add_json_str(out, t->cves[k]);
			}
			hp_buf_addf(out, "],\"state\":\"%s\"}", ctl_state_name(t->state));
		}
		hp_buf_adds(out, "]}\n");
		return 0;
	}
	hp_buf_addf(out, "pid: %d\ncomm: %s\nexe: %s\nstate: %s\n", (int)s->pid, s->comm,
		    or_dash(s->exe), ctl_state_name(s->state));
	if (s->reason[0])
		hp_buf_addf(out, "reason: %s\n", s->reason);
	if (s->excluded[0])
		hp_buf_addf(out, "excluded: %s (\"all\" and auto-apply leave it alone)\n",
			    s->excluded);
	if (s->have_pause)
		hp_buf_addf(out, "last-pause-us: %llu\n", (unsigned long long)s->last_pause_us);
	else
		hp_buf_adds(out, "last-pause-us: -\n");
	for (size_t i = 0; i < s->n_targets; i++) {
		const struct ctl_target *t = &s->targets[i];

		hp_buf_addf(out, "target: %s build-id=%s baseline=%s applied=%s month=%s latest=%s "
			    "state=%s%s%s\n",
			    t->name, t->build_id, or_dash(t->baseline), or_dash(t->applied_set),
			    or_dash(t->applied_month), or_dash(t->newest_month),
			    ctl_state_name(t->state), t->newer_baseline ? " newer-baseline=" : "",
			    t->newer_baseline ? t->newer_baseline : "");
		if (t->withdrawn)
			hp_buf_addf(out, "withdrawn: %s %s\n", t->applied_set, t->withdrawn);
		if (t->n_funcs) {
			hp_buf_addf(out, "functions: %s", t->name);
			for (size_t k = 0; k < t->n_funcs; k++)
				hp_buf_addf(out, " %s", t->funcs[k]);
			hp_buf_adds(out, "\n");
		}
		if (t->n_cves) {
			hp_buf_addf(out, "cves: %s", t->name);
			for (size_t k = 0; k < t->n_cves; k++)
				hp_buf_addf(out, " %s", t->cves[k]);
			hp_buf_adds(out, "\n");
		}
	}
	if (s->n_targets == 0)
		hp_buf_adds(out, "target: none known to the store\n");
	return 0;
}

/* ---- the process list ---------------------------------------------------- */

/*
 * Does a baseline cover the build-id of the file pid maps at [lo, hi)? By
 * (dev, ino), from the cache, or the build-id read once and the answer
 * asked of the snapshot once.
 */
static bool mapped_known(struct ctl *c, struct store_snap *snap, pid_t pid, unsigned long lo,
			 unsigned long hi, const char *path, uint64_t dev, uint64_t ino,
			 uint64_t fresh_since_us)
{
	const char *commit = store_snap_commit(snap);
	struct store_target_info ti;
	bool known = false;
	char link[96];
	const char *src = link;
	struct ctl_bid_entry *e;
	struct stat st;
	size_t slot;
	int64_t mtime;

	pthread_mutex_lock(&c->bid_lock);
	if (!c->bid && !(c->bid = calloc(CTL_BID_SLOTS, sizeof(*c->bid))))
		goto out;
	slot = (size_t)((dev * 0x9e3779b97f4a7c15ull) ^ (ino * 0xff51afd7ed558ccdull)) %
	       CTL_BID_SLOTS;
	while (c->bid[slot].ino && (c->bid[slot].dev != dev || c->bid[slot].ino != ino))
		slot = (slot + 1) % CTL_BID_SLOTS;
	e = &c->bid[slot];
	if (e->ino && e->checked_us >= fresh_since_us)
		goto answer;
	/* The process's own view of the file: right across mount namespaces and for deleted files. */
	snprintf(link, sizeof(link), "/proc/%d/map_files/%lx-%lx", (int)pid, lo, hi);
	if (stat(link, &st) < 0) {
		src = path;
		if (stat(path, &st) < 0)
			goto out;
	}
	mtime = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	if (e->ino && e->mtime_ns == mtime) {
		e->checked_us = hp_now_us();
		goto answer;
	}
	if (!e->ino && c->n_bid >= CTL_BID_SLOTS / 4 * 3) {
		/* Full: start again (files of gone processes go too). */
		memset(c->bid, 0, CTL_BID_SLOTS * sizeof(*c->bid));
		c->n_bid = 0;
		slot = (size_t)((dev * 0x9e3779b97f4a7c15ull) ^ (ino * 0xff51afd7ed558ccdull)) %
		       CTL_BID_SLOTS;
		e = &c->bid[slot];
	}
	if (!e->ino)
		c->n_bid++;
	e->dev = dev;
	e->ino = ino;
	e->mtime_ns = mtime;
	e->checked_us = hp_now_us();
	e->known_in[0] = '\0';
	if (apply_file_build_id(src, e->build_id) < 0)
		e->build_id[0] = '\0';
answer:
	if (e->build_id[0] && strcmp(e->known_in, commit)) {
		memset(&ti, 0, sizeof(ti));
		e->known = store_target_info(snap, e->build_id, &ti) == 0;
		store_target_info_release(&ti);
		snprintf(e->known_in, sizeof(e->known_in), "%s", commit);
	}
	known = e->build_id[0] && e->known;
out:
	pthread_mutex_unlock(&c->bid_lock);
	return known;
}

bool ctl_maps_known(struct ctl *c, struct store_snap *snap, pid_t pid, uint64_t fresh_since_us)
{
	char path[64], *line = NULL, last[256] = "";
	uint64_t last_dev = 0, last_ino = 0;
	size_t cap = 0;
	bool yes = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	while (!yes && getline(&line, &cap, f) > 0) {
		struct proc_map m;
		char name[256];
		size_t n = strlen(line);
		uint64_t dev;

		/* only file mappings: the cheap test before any parsing */
		if (!strchr(line, '/'))
			continue;
		if (n && line[n - 1] == '\n')
			line[n - 1] = '\0';
		if (proc_map_parse_line(line, &m) < 0 || !m.path || m.path[0] != '/')
			continue;
		/* The cheap test first: a file name the store knows. */
		ctl_path_name(m.path, name, sizeof(name));
		if (strcmp(name, last)) {
			snprintf(last, sizeof(last), "%s", name);
			if ((yes = store_knows_target_name(snap, name)))
				break;
		}
		/* Else any ELF object mapped executable: by its build-id. */
		if (!(m.prot & PROT_EXEC) || m.inode == 0)
			continue;
		dev = ((uint64_t)m.dev_major << 32) | m.dev_minor;
		if (dev == last_dev && m.inode == last_ino)
			continue;
		last_dev = dev;
		last_ino = m.inode;
		yes = mapped_known(c, snap, pid, m.start, m.end, m.path, dev, m.inode, fresh_since_us);
	}
	free(line);
	fclose(f);
	return yes;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct ctl_scan_entry *x = a, *y = b;

	return (x->pid > y->pid) - (x->pid < y->pid);
}

int ctl_list(struct ctl *c, pid_t **ret_pids, size_t *ret_n)
{
	struct ctl_snap *snap = NULL;
	struct ctl_scan_entry *fresh = NULL;
	size_t n = 0, cap = 0, n_rel = 0;
	pid_t *pids = NULL, self = getpid();
	uint64_t now = hp_now_us();
	struct dirent *de;
	DIR *d = NULL;
	int r;

	r = ctl_snap_get(c, true, &snap);
	if (r == -ENOENT) {
		/* An empty store knows no target. */
		*ret_pids = NULL;
		*ret_n = 0;
		return 0;
	}
	if (r < 0)
		return r;
	d = opendir("/proc");
	if (!d) {
		r = hp_err(-errno, "open /proc: %s", strerror(errno));
		goto out;
	}
	pthread_mutex_lock(&c->scan_lock);
	if (strcmp(c->scan_commit, snap->commit)) {
		/* Another catalog: every decision is taken again. */
		c->n_scan = 0;
		snprintf(c->scan_commit, sizeof(c->scan_commit), "%s", snap->commit);
	}
	while ((de = readdir(d))) {
		struct ctl_scan_entry key, *old, *e;
		struct proc_stat_fields ps;
		char *end;
		long v = strtol(de->d_name, &end, 10);

		if (*end || v <= 0 || (pid_t)v == self)
			continue;
		if (proc_stat_read((pid_t)v, &ps) < 0)
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 256;
			struct ctl_scan_entry *nv = realloc(fresh, ncap * sizeof(*nv));

			if (!nv) {
				r = -ENOMEM;
				pthread_mutex_unlock(&c->scan_lock);
				goto out;
			}
			fresh = nv;
			cap = ncap;
		}
		key.pid = (pid_t)v;
		old = c->n_scan ? bsearch(&key, c->scan, c->n_scan, sizeof(key), cmp_entry) : NULL;
		e = &fresh[n++];
		if (old && old->start_time == ps.start_time && !strcmp(old->comm, ps.comm) &&
		    (old->relevant || now - old->checked_us < CTL_SCAN_RECHECK_US)) {
			*e = *old;
		} else {
			e->pid = (pid_t)v;
			e->start_time = ps.start_time;
			snprintf(e->comm, sizeof(e->comm), "%s", ps.comm);
			e->checked_us = now;
			e->relevant = ctl_maps_known(c, snap->snap, (pid_t)v, now);
		}
		n_rel += e->relevant;
	}
	qsort(fresh, n, sizeof(*fresh), cmp_entry);
	free(c->scan);
	c->scan = fresh;
	c->n_scan = n;
	fresh = NULL;
	pids = malloc((n_rel ? n_rel : 1) * sizeof(*pids));
	if (pids) {
		n_rel = 0;
		for (size_t i = 0; i < c->n_scan; i++)
			if (c->scan[i].relevant)
				pids[n_rel++] = c->scan[i].pid;
	}
	pthread_mutex_unlock(&c->scan_lock);
	if (!pids) {
		r = -ENOMEM;
		goto out;
	}
	*ret_pids = pids;
	*ret_n = n_rel;
	r = 0;
out:
	free(fresh);
	if (d)
		closedir(d);
	ctl_snap_unref(snap);
	return r;
}

static void iso_time(int64_t t, char buf[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static bool report_match(const struct ctl_report_filter *f, const struct ctl_status *s)
{
	bool t_ok;

	if (!f)
		return true;
	if (f->states && !(f->states & (1u << s->state)))
		return false;
	if (f->comm && strcmp(f->comm, s->comm))
		return false;
	if (f->by_uid && f->uid != s->uid)
		return false;
	t_ok = !f->target;
	for (size_t i = 0; !t_ok && i < s->n_targets; i++)
		t_ok = !strcmp(s->targets[i].name, f->target);
	return t_ok;
}

/* One line per process: the first target's facts, then what all its targets fix. */
static void report_line(const struct ctl_status *s, struct hp_buf *out)
{
	const struct ctl_target *t = &s->targets[0];
	int64_t at = 0;
	size_t n_cves = 0;
	char when[32];

	hp_buf_addf(out, "pid=%d comm=%s state=%s target=%s baseline=%s applied=%s latest=%s",
		    (int)s->pid, s->comm, ctl_state_name(s->state), t->name, or_dash(t->baseline),
		    or_dash(t->applied_month), or_dash(t->newest_month));
	if (s->n_targets > 1)
		hp_buf_addf(out, " targets=%zu", s->n_targets);
	if (s->have_pause)
		hp_buf_addf(out, " pause_us=%llu", (unsigned long long)s->last_pause_us);
	else
		hp_buf_adds(out, " pause_us=-");
	for (size_t i = 0; i < s->n_targets; i++)
		if (s->targets[i].applied_set[0] && s->targets[i].applied_at > at)
			at = s->targets[i].applied_at;
	if (at > 0) {
		iso_time(at, when);
		hp_buf_addf(out, " applied_at=%s", when);
	} else {
		hp_buf_adds(out, " applied_at=-");
	}
	hp_buf_adds(out, " cves=");
	for (size_t i = 0; i < s->n_targets; i++)
		for (size_t k = 0; k < s->targets[i].n_cves; k++)
			hp_buf_addf(out, "%s%s", n_cves++ ? "," : "", s->targets[i].cves[k]);
	if (!n_cves)
		hp_buf_adds(out, "-");
	for (size_t i = 0; i < s->n_targets; i++)
		if (s->targets[i].withdrawn)
			hp_buf_addf(out, " withdrawn=%s", s->targets[i].applied_set);
	if (s->excluded[0])
		hp_buf_addf(out, " excluded=%s", s->excluded);
	hp_buf_adds(out, "\n");
}

int ctl_report_filtered(struct ctl *c, bool json, const struct ctl_report_filter *f,
			struct hp_buf *out, struct ctl_report_counts *ret_counts)
{
	struct ctl_report_counts cnt;
	char host[256] = "-", now[32], head[HP_OID_HEX_SIZE] = "";
	pid_t *pids = NULL;
	size_t n = 0, shown = 0;
	bool first;
	int r;

	memset(&cnt, 0, sizeof(cnt));
	r = ctl_list(c, &pids, &n);
	if (r < 0)
		return r;
	gethostname(host, sizeof(host) - 1);
	iso_time(time(NULL), now);
	(void)ctl_head(c, head);
	if (json) {
		hp_buf_adds(out, "{\"host\":");
		hp_buf_add_json_str(out, host);
		hp_buf_addf(out, ",\"time\":\"%s\",\"commit\":", now);
		json_str_or_null(out, head);
		hp_buf_adds(out, ",\"processes\":[");
	} else {
		hp_buf_addf(out, "# hotpatch report: host %s, %s, store commit %.12s\n", host, now,
			    head[0] ? head : "-");
	}
	for (size_t i = 0; i < n; i++) {
		struct ctl_status *s = NULL;

		if (ctl_status(c, pids[i], &s) < 0)
			continue; /* gone in between, or not ours to read */
		if (s->n_targets == 0) {
			ctl_status_free(s);
			continue;
		}
		if (f && f->adjust)
			f->adjust(f->adjust_ctx, s);
		if (!report_match(f, s)) {
			ctl_status_free(s);
			continue;
		}
		cnt.n++;
		cnt.per_state[s->state]++;
		cnt.excluded += s->excluded[0] != '\0';
		if (f && f->only_attention &&
		    (s->state == CTL_STATE_HOTPATCHED || s->state == CTL_STATE_UP_TO_DATE)) {
			ctl_status_free(s); /* counted, not listed */
			continue;
		}
		if (json) {
			if (shown)
				hp_buf_adds(out, ",");
			ctl_status_format(s, true, out);
			/* ctl_status_format ends a JSON object with a newline: drop it. */
			if (out->len && out->data[out->len - 1] == '\n')
				out->data[--out->len] = '\0';
		} else {
			report_line(s, out);
		}
		shown++;
		ctl_status_free(s);
	}
	if (json) {
		hp_buf_addf(out, "],\"summary\":{\"processes\":%zu", cnt.n);
		for (int k = 0; k < CTL_N_STATES; k++)
			hp_buf_addf(out, ",\"%s\":%zu", ctl_state_name((enum ctl_state)k),
				    cnt.per_state[k]);
		hp_buf_addf(out, ",\"excluded\":%zu}}\n", cnt.excluded);
	} else {
		hp_buf_addf(out, "# summary: %zu process%s", cnt.n, cnt.n == 1 ? "" : "es");
		first = true;
		for (int k = 0; k < CTL_N_STATES; k++) {
			if (!cnt.per_state[k])
				continue;
			hp_buf_addf(out, "%s %zu %s", first ? ":" : ",", cnt.per_state[k],
				    ctl_state_name((enum ctl_state)k));
			first = false;
		}
		if (cnt.excluded)
			hp_buf_addf(out, "; %zu excluded", cnt.excluded);
		hp_buf_adds(out, "\n");
	}
	if (ret_counts)
		*ret_counts = cnt;
	free(pids);
	return 0;
}

int ctl_report(struct ctl *c, bool json, struct hp_buf *out)
{
	return ctl_report_filtered(c, json, NULL, out, NULL);
}

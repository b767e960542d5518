/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Apply and revert for one process or for "all", and what this context remembers of them. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl-int.h"

#define CTL_OUTCOMES_MAX 4096

/* ---- outcomes ------------------------------------------------------------ */

static struct ctl_outcome *outcome_find(struct ctl *c, pid_t pid, uint64_t start_time,
					bool create)
{
	struct ctl_outcome *o;

	for (size_t i = 0; i < c->n_outcomes; i++) {
		o = &c->outcomes[i];
		if (o->pid == pid) {
			if (o->start_time != start_time) {
				if (!create)
					return NULL;
				memset(o, 0, sizeof(*o));
				o->pid = pid;
				o->start_time = start_time;
			}
			return o;
		}
	}
	if (!create)
		return NULL;
	if (c->n_outcomes == CTL_OUTCOMES_MAX) {
		/* Forget the oldest finished one. */
		size_t victim = 0;

		for (size_t i = 1; i < c->n_outcomes; i++)
			if (!c->outcomes[i].running &&
			    c->outcomes[i].when_us < c->outcomes[victim].when_us)
				victim = i;
		o = &c->outcomes[victim];
	} else {
		if (c->n_outcomes % 64 == 0) {
			struct ctl_outcome *v = realloc(c->outcomes,
							(c->n_outcomes + 64) * sizeof(*v));

			if (!v)
				return NULL;
			c->outcomes = v;
		}
		o = &c->outcomes[c->n_outcomes++];
	}
	memset(o, 0, sizeof(*o));
	o->pid = pid;
	o->start_time = start_time;
	return o;
}

void ctl_outcome_begin(struct ctl *c, pid_t pid, uint64_t start_time)
{
	struct ctl_outcome *o;

	pthread_mutex_lock(&c->outcome_lock);
	o = outcome_find(c, pid, start_time, true);
	if (o) {
		o->running++;
		o->when_us = hp_now_us();
	}
	pthread_mutex_unlock(&c->outcome_lock);
}

/* Errors that say something about the process (not about the request). */
static bool is_failure(int err)
{
	return err < 0 && err != -ESRCH && err != -ENOENT && err != -EACCES && err != -EINVAL;
}

void ctl_outcome_end(struct ctl *c, pid_t pid, uint64_t start_time, int err, const char *msg,
		     bool have_pause, uint64_t pause_us)
{
	struct ctl_outcome *o;

	pthread_mutex_lock(&c->outcome_lock);
	o = outcome_find(c, pid, start_time, true);
	if (o) {
		if (o->running)
			o->running--;
		o->when_us = hp_now_us();
		if (is_failure(err)) {
			o->failed = true;
			snprintf(o->reason, sizeof(o->reason), "%s: %s", ctl_errno_name(err),
				 msg ? msg : "");
		} else if (err >= 0) {
			o->failed = false;
			o->reason[0] = '\0';
		}
		if (have_pause) {
			o->have_pause = true;
			o->pause_us = pause_us;
		}
	}
	pthread_mutex_unlock(&c->outcome_lock);
}

bool ctl_outcome_get(struct ctl *c, pid_t pid, uint64_t start_time, struct ctl_outcome *ret)
{
	struct ctl_outcome *o;
	bool found = false;

	pthread_mutex_lock(&c->outcome_lock);
	o = outcome_find(c, pid, start_time, false);
	if (o) {
		*ret = *o;
		found = true;
	}
	pthread_mutex_unlock(&c->outcome_lock);
	return found;
}

/* ---- one process --------------------------------------------------------- */

static void result_fail(struct ctl_result *res, int err)
{
	res->err = err;
	snprintf(res->msg, sizeof(res->msg), "%s", hp_errmsg(err));
}

static bool seen_build_id(const struct apply_proc *p, size_t upto, const char *bid)
{
	for (size_t i = 0; i < upto; i++)
		if (!strcmp(p->objects[i].build_id, bid))
			return true;
	return false;
}

/* The store's name of the target with this build-id (or the file name). */
static bool target_matches(struct store_snap *snap, const struct apply_object *o,
			   const char *target)
{
	struct store_target_info ti;
	char name[256];
	bool match;

	if (!target || !*target)
		return true;
	memset(&ti, 0, sizeof(ti));
	if (store_target_info(snap, o->build_id, &ti) == 0) {
		match = ti.name && !strcmp(ti.name, target);
		store_target_info_release(&ti);
		return match;
	}
	return !strcmp(ctl_path_name(o->path, name, sizeof(name)), target);
}

/* Does p run a set for o that the store withdrew? */
static bool runs_withdrawn(struct store_snap *snap, const struct apply_proc *p, const char *bid)
{
	const struct apply_applied *a = apply_proc_find(p, bid);

	return a && store_withdrawn(snap, a->set_id, NULL, 0) == 0;
}

/* Has o a newest set that p does not run yet (or runs a withdrawn one)? */
static bool pending(struct store_snap *snap, const struct apply_proc *p, const struct apply_object *o)
{
	const struct apply_applied *a = apply_proc_find(p, o->build_id);
	struct store_target_info ti;
	bool yes;

	memset(&ti, 0, sizeof(ti));
	if (store_target_info(snap, o->build_id, &ti) < 0)
		return false;
	yes = ti.newest_set ? (!a || strcmp(a->set_id, ti.newest_set) != 0)
			    : runs_withdrawn(snap, p, o->build_id);
	store_target_info_release(&ti);
	return yes;
}

/*
 * The check above saw the process as it was; an exec (of a set-uid
 * program, say) may land before the engine attaches and keeps pid and
 * start time. So the engine asks again with the process held.
 */
static void hold_check(const struct ctl_caller *who, struct apply_opts *o)
{
	if (who->uid == 0)
		return;
	o->may_patch = ctl_may_patch_held;
	o->may_patch_arg = (void *)who;
}

/*
 * What an apply picks from the engine's reading of the process, made
 * before anything is stopped (pick_sets): for each target it maps, the
 * newest set published for it (of month, if given), and the targets whose
 * set was withdrawn with none left to go to.
 */
struct pick {
	struct ctl *c;
	struct store_snap *snap;
	pid_t pid;
	const char *month;  /* NULL: the newest */
	const char *target; /* NULL: every target */
	bool pending_only;
	struct ctl_result *res;
	bool begun;         /* its outcome begun (the process seen) */
	uint64_t start_time;
	struct store_patchset **pss;
	size_t n_pss;
	char (*withdrawn)[HP_BUILD_ID_HEX_SIZE]; /* to revert after the apply */
	size_t n_withdrawn;
};

static void pick_reset(struct pick *k)
{
	for (size_t i = 0; i < k->n_pss; i++)
		store_patchset_free(k->pss[i]);
	free(k->pss);
	free(k->withdrawn);
	k->pss = NULL;
	k->withdrawn = NULL;
	k->n_pss = k->n_withdrawn = 0;
}

/* apply_choose_fn: the sets, from the engine's own reading of the process. */
static int pick_sets(void *arg, const struct apply_proc *p, struct apply_set *sets, size_t cap)
{
	struct pick *k = arg;
	int r;

	pick_reset(k); /* chosen again after an EBUSY: the process may have changed */
	if (!k->begun) {
		snprintf(k->res->comm, sizeof(k->res->comm), "%s", p->comm);
		k->start_time = p->start_time;
		ctl_outcome_begin(k->c, k->pid, p->start_time);
		k->begun = true;
	}
	k->pss = calloc(cap, sizeof(*k->pss));
	k->withdrawn = calloc(p->n_objects ? p->n_objects : 1, sizeof(*k->withdrawn));
	if (!k->pss || !k->withdrawn)
		return -ENOMEM;
	/* every target of the process with a set: switched in one stop, or none */
	for (size_t i = 0; i < p->n_objects; i++) {
		const struct apply_object *o = &p->objects[i];
		struct store_patchset *ps = NULL;

		if (!o->build_id[0] || seen_build_id(p, i, o->build_id))
			continue;
		if (!target_matches(k->snap, o, k->target))
			continue;
		if (k->pending_only && !pending(k->snap, p, o))
			continue;
		r = store_lookup(k->snap, o->build_id, k->month, &ps);
		if (r == -ENOENT && !k->month && runs_withdrawn(k->snap, p, o->build_id)) {
			/* Its set was withdrawn and no valid one is left: back to the original. */
			hp_err_clear();
			snprintf(k->withdrawn[k->n_withdrawn++], HP_BUILD_ID_HEX_SIZE, "%s",
				 o->build_id);
			continue;
		}
		if (r == -ENOENT)
			continue;
		if (r < 0)
			return r;
		if (k->n_pss == cap) {
			store_patchset_free(ps);
			return hp_err(-EINVAL, "process %d: more targets with a set than it maps",
				      (int)k->pid);
		}
		k->pss[k->n_pss] = ps;
		sets[k->n_pss].set_id = ps->set_id;
		sets[k->n_pss].manifest = ps->manifest;
		sets[k->n_pss].so = ps->so;
		sets[k->n_pss].so_len = ps->so_len;
		k->n_pss++;
	}
	hp_err_clear();
	return (int)k->n_pss;
}

/*
 * apply_patch_choose, tried again on EBUSY up to c->retries times (the
 * sets chosen again each time).
 */
static int patch_retrying(struct ctl *c, pid_t pid, struct pick *k,
			  const struct apply_opts *aopts, struct apply_result *ar)
{
	int r = apply_patch_choose(pid, pick_sets, k, aopts, ar);

	for (unsigned i = 0; r == -EBUSY && i < c->retries; i++) {
		hp_err_clear();
		memset(ar, 0, sizeof(*ar));
		r = apply_patch_choose(pid, pick_sets, k, aopts, ar);
	}
	if (r == -EBUSY && c->retries)
		hp_err_prefix(r, "after %u retries: ", c->retries);
	return r;
}

/*
 * pre: the process as inspected by the caller ("all" inspects each process
 * once, to choose it), taken over; NULL: none. With pre, the caller has
 * asked ctl_may_patch for this pid already ("all" asks before it hands the
 * process to a worker): it is not asked twice. The engine asks again with
 * the process held either way (hold_check), which is what decides for a
 * process that changed (an exec, a PID reused) in between. The sets are
 * chosen from the engine's reading of the process (pick_sets), which its
 * attach checks is still the process's: what is looked up is what is
 * switched, and the process is read once (with pre, the reading that
 * chose it is the caller's, and the engine reads it again).
 */
static int apply_one(struct ctl *c, const struct ctl_caller *who, pid_t pid, const char *month,
		     const char *target, bool pending_only, struct apply_proc *pre,
		     struct ctl_result *res)
{
	struct ctl_snap *s = NULL;
	struct apply_opts aopts = { c->budget_ms, NULL, NULL };
	struct apply_result ar;
	struct pick k;
	size_t reverted = 0;
	int r;

	memset(res, 0, sizeof(*res));
	memset(&k, 0, sizeof(k));
	res->pid = pid;
	hp_err_clear();
	if (pre)
		snprintf(res->comm, sizeof(res->comm), "%s", pre->comm);
	apply_proc_free(pre);
	if (month && *month && !hp_valid_month(month)) {
		r = hp_err(-EINVAL, "'%.32s' is not a month (YYYY-MM)", month);
		goto out;
	}
	r = pre ? 0 : ctl_may_patch(who, pid);
	if (r < 0)
		goto out;
	hold_check(who, &aopts);
	r = ctl_snap_get(c, true, &s);
	if (r < 0) {
		if (r == -ENOENT)
			r = hp_err(-ENOENT, "nothing published for process %d: the store is empty",
				   (int)pid);
		goto out;
	}
	/* Auto-apply looks often: the cheap maps filter first (names, cached build-ids). */
	if (!pre && pending_only && !ctl_maps_known(c, s->snap, pid, hp_now_us())) {
		r = 0;
		goto out;
	}
	k = (struct pick){ c, s->snap, pid, (month && *month) ? month : NULL,
			   (target && *target) ? target : NULL, pending_only, res };
	memset(&ar, 0, sizeof(ar));
	r = patch_retrying(c, pid, &k, &aopts, &ar);
	if (r < 0)
		goto out;
	if (k.n_pss) {
		res->n_sets += k.n_pss;
		res->changed |= ar.changed;
		if (ar.changed && ar.pause_us > res->pause_us)
			res->pause_us = ar.pause_us;
		snprintf(res->set_id, sizeof(res->set_id), "%s", k.pss[k.n_pss - 1]->set_id);
	}
	/* withdrawn sets with nothing newer: each target back to its original */
	for (; reverted < k.n_withdrawn; reverted++) {
		memset(&ar, 0, sizeof(ar));
		hp_err_clear();
		r = apply_revert(pid, k.withdrawn[reverted], &aopts, &ar);
		if (r < 0)
			goto out;
		res->n_sets++;
		res->changed = true;
		if (ar.pause_us > res->pause_us)
			res->pause_us = ar.pause_us;
	}
	if (!k.n_pss && !reverted && pending_only) {
		r = 0;
		goto out;
	}
	if (!k.n_pss && !reverted) {
		if (month && *month)
			r = hp_err(-ENOENT, "nothing published for process %d (%s) in %s", (int)pid,
				   res->comm, month);
		else
			r = hp_err(-ENOENT, "nothing published for process %d (%s)", (int)pid,
				   res->comm);
		goto out;
	}
	r = 0;
out:
	if (r < 0)
		result_fail(res, r);
	if (k.begun)
		ctl_outcome_end(c, pid, k.start_time, r, res->msg, res->changed, res->pause_us);
	pick_reset(&k);
	ctl_snap_unref(s);
	return r;
}

int ctl_apply(struct ctl *c, const struct ctl_caller *who, pid_t pid, const char *month,
	      struct ctl_result *ret)
{
	return apply_one(c, who, pid, month, NULL, false, NULL, ret);
}

int ctl_apply_pending(struct ctl *c, pid_t pid, struct ctl_result *ret)
{
	static const struct ctl_caller root = { 0, 0 };

	return apply_one(c, &root, pid, NULL, NULL, true, NULL, ret);
}

/* What a revert saw of the process before it stopped anything (revert_seen). */
struct revert_seen_ctx {
	struct ctl *c;
	pid_t pid;
	struct ctl_result *res;
	bool begun;
	uint64_t start_time;
};

/* apply_look_fn: nothing applied ends the revert there, the process never stopped. */
static int revert_seen(void *arg, const struct apply_proc *p)
{
	struct revert_seen_ctx *k = arg;

	snprintf(k->res->comm, sizeof(k->res->comm), "%s", p->comm);
	if (p->n_applied == 0)
		return hp_err(-ENOENT, "nothing applied to process %d (%s)", (int)k->pid, p->comm);
	snprintf(k->res->set_id, sizeof(k->res->set_id), "%s", p->applied[p->n_applied - 1].set_id);
	k->res->n_sets = (unsigned)p->n_applied;
	k->start_time = p->start_time;
	ctl_outcome_begin(k->c, k->pid, p->start_time);
	k->begun = true;
	return 0;
}

/* pre: as for apply_one (only its name is kept: the engine reads the process). */
static int revert_one(struct ctl *c, const struct ctl_caller *who, pid_t pid,
		      struct apply_proc *pre, struct ctl_result *ret)
{
	struct apply_opts aopts = { c->budget_ms, NULL, NULL };
	struct revert_seen_ctx k = { c, pid, ret, false, 0 };
	struct apply_result ar;
	int r;

	memset(ret, 0, sizeof(*ret));
	memset(&ar, 0, sizeof(ar));
	ret->pid = pid;
	hp_err_clear();
	if (pre)
		snprintf(ret->comm, sizeof(ret->comm), "%s", pre->comm);
	r = pre ? 0 : ctl_may_patch(who, pid);
	apply_proc_free(pre);
	if (r < 0)
		goto out;
	hold_check(who, &aopts);
	r = apply_revert_look(pid, NULL, revert_seen, &k, &aopts, &ar);
	if (r < 0)
		goto out;
	ret->changed = true;
	ret->pause_us = ar.pause_us;
	r = 0;
out:
	if (r < 0) {
		ret->n_sets = 0;
		result_fail(ret, r);
	}
	if (k.begun)
		ctl_outcome_end(c, pid, k.start_time, r, ret->msg, r >= 0, ar.pause_us);
	return r;
}

int ctl_revert(struct ctl *c, const struct ctl_caller *who, pid_t pid, struct ctl_result *ret)
{
	return revert_one(c, who, pid, NULL, ret);
}

/* ---- all ----------------------------------------------------------------- */

/*
 * Does p map a target with a published set (named target, if given)? Or,
 * for revert, run a set for a target this store covers? A target is its
 * build-id: a process that runs a set for another build of a file of the
 * same name (from another store) is not this store's to revert wholesale;
 * its PID still reverts it.
 */
static bool candidate(struct store_snap *snap, const struct apply_proc *p, bool revert,
		      const char *target)
{
	bool yes = false;

	for (size_t i = 0; revert && i < p->n_applied && !yes; i++) {
		struct store_target_info ti;

		memset(&ti, 0, sizeof(ti));
		yes = store_target_info(snap, p->applied[i].build_id, &ti) == 0;
		store_target_info_release(&ti);
	}
	if (revert)
		return yes;
	for (size_t i = 0; i < p->n_objects && !yes; i++) {
		struct store_target_info ti;
		char name[256];

		if (!p->objects[i].build_id[0])
			continue;
		memset(&ti, 0, sizeof(ti));
		if (store_target_info(snap, p->objects[i].build_id, &ti) < 0)
			continue;
		yes = (ti.newest_month != NULL || runs_withdrawn(snap, p, p->objects[i].build_id)) &&
		      (!*target || !strcmp(ti.name ? ti.name :
					   ctl_path_name(p->objects[i].path, name, sizeof(name)),
					   target));
		store_target_info_release(&ti);
	}
	return yes;
}

/* The processes "all" acts on, sorted (inspected one after the other: for hp's own "all"). */
static int all_candidates(struct ctl *c, struct ctl_snap *s, const struct ctl_caller *who,
			  bool revert, const char *target, pid_t **ret, size_t *ret_n)
{
	pid_t *pids = NULL;
	size_t n = 0, m = 0;
	int r;

	if (target[0] && !store_knows_target_name(s->snap, target))
		return hp_err(-ENOENT, "no target %s in the store", target);
	r = ctl_list(c, &pids, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		struct apply_proc *p = NULL;
		bool yes;

		if (ctl_may_patch(who, pids[i]) < 0 || apply_inspect(pids[i], &p) < 0)
			continue;
		yes = candidate(s->snap, p, revert, target);
		apply_proc_free(p);
		if (yes)
			pids[m++] = pids[i];
	}
	*ret = pids;
	*ret_n = m;
	return 0;
}

int ctl_all_pids(struct ctl *c, const struct ctl_caller *who, bool revert, const char *target,
		 pid_t **ret, size_t *ret_n)
{
	struct ctl_snap *s = NULL;
	int r;

	*ret = NULL;
	*ret_n = 0;
	r = ctl_snap_get(c, true, &s);
	if (r == -ENOENT && !(target && *target))
		return 0;
	if (r < 0)
		return r;
	r = all_candidates(c, s, who, revert, target ? target : "", ret, ret_n);
	ctl_snap_unref(s);
	return r;
}

struct all_job {
	struct ctl *c;
	struct store_snap *snap;
	const struct ctl_caller *who;
	const struct ctl_cmd *cmd;
	bool revert;
	struct ctl_result *res;
	size_t n;
	size_t next; /* atomic */
	size_t done; /* atomic: processes looked at, patched or left alone */
	ctl_progress_fn progress;
	void *progress_ctx;
};

/* One more process looked at; res NULL when it was no candidate. */
static void all_progress(struct all_job *j, const struct ctl_result *res)
{
	size_t done = __atomic_add_fetch(&j->done, 1, __ATOMIC_RELAXED);

	__atomic_add_fetch(&j->c->all_done, 1, __ATOMIC_RELAXED);
	if (j->progress)
		j->progress(j->progress_ctx, res, done, j->n);
}

static void *all_worker(void *arg)
{
	struct all_job *j = arg;
	size_t i;

	while ((i = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED)) < j->n) {
		pid_t pid = j->res[i].pid;
		struct apply_proc *p = NULL;

		/* inspected once: to choose it, then to patch it */
		if (apply_inspect(pid, &p) < 0 || !candidate(j->snap, p, j->revert, j->cmd->target)) {
			apply_proc_free(p);
			j->res[i].pid = 0; /* not ours: no result */
			all_progress(j, NULL);
			continue;
		}
		if (ctl_excluded(j->c, pid, j->res[i].excluded, sizeof(j->res[i].excluded))) {
			/* The policy opts it out: "all" leaves it alone, and says why. */
			snprintf(j->res[i].comm, sizeof(j->res[i].comm), "%s", p->comm);
			apply_proc_free(p);
			all_progress(j, &j->res[i]);
			continue;
		}
		if (j->revert)
			revert_one(j->c, j->who, pid, p, &j->res[i]);
		else
			apply_one(j->c, j->who, pid, NULL, j->cmd->target, false, p, &j->res[i]);
		all_progress(j, &j->res[i]);
	}
	return NULL;
}

static int run_all(struct ctl *c, const struct ctl_caller *who, bool revert,
		   const struct ctl_cmd *cmd, ctl_progress_fn progress, void *progress_ctx,
		   struct ctl_results *ret)
{
	struct ctl_snap *s = NULL;
	struct all_job job;
	pid_t *pids = NULL;
	size_t n = 0, m = 0, n_threads;
	pthread_t th[16];
	int r;

	memset(&job, 0, sizeof(job));
	r = ctl_snap_get(c, true, &s);
	if (r < 0) {
		if (r == -ENOENT && !cmd->target[0]) {
			/* An empty store: nothing to do for "all". */
			r = 0;
			ret->v = NULL;
			ret->n = 0;
		}
		goto out;
	}
	if (cmd->target[0] && !store_knows_target_name(s->snap, cmd->target)) {
		r = hp_err(-ENOENT, "no target %s in the store", cmd->target);
		goto out;
	}
	r = ctl_list(c, &pids, &n);
	if (r < 0)
		goto out;
	job.res = calloc(n ? n : 1, sizeof(*job.res));
	if (!job.res) {
		r = -ENOMEM;
		goto out;
	}
	/* which of them are candidates, the workers find out (in parallel) */
	for (size_t i = 0; i < n; i++) {
		if (ctl_may_patch(who, pids[i]) < 0)
			continue;
		job.res[m++].pid = pids[i];
	}
	hp_err_clear();
	job.c = c;
	job.snap = s->snap;
	job.who = who;
	job.cmd = cmd;
	job.revert = revert;
	job.n = m;
	job.progress = progress;
	job.progress_ctx = progress_ctx;
	__atomic_add_fetch(&c->all_total, m, __ATOMIC_RELAXED);
	n_threads = c->n_workers < m ? c->n_workers : m;
	if (n_threads > sizeof(th) / sizeof(th[0]))
		n_threads = sizeof(th) / sizeof(th[0]);
	/* Threads that could not start leave their share to the others (and to us). */
	for (size_t i = 0; i < n_threads; i++)
		if (pthread_create(&th[i], NULL, all_worker, &job) != 0)
			n_threads = i;
	all_worker(&job);
	for (size_t i = 0; i < n_threads; i++)
		pthread_join(th[i], NULL);
	__atomic_sub_fetch(&c->all_total, m, __ATOMIC_RELAXED);
	__atomic_sub_fetch(&c->all_done, m, __ATOMIC_RELAXED);
	n = 0;
	for (size_t i = 0; i < m; i++)
		if (job.res[i].pid)
			job.res[n++] = job.res[i];
	m = n;
	r = 0;
	for (size_t i = 0; i < m; i++) {
		if (job.res[i].err < 0) {
			r = hp_err(job.res[i].err, "process %d: %s", (int)job.res[i].pid,
				   job.res[i].msg);
			break;
		}
	}
	ret->v = job.res;
	ret->n = m;
	job.res = NULL;
out:
	free(job.res);
	free(pids);
	ctl_snap_unref(s);
	return r;
}

void ctl_all_counts(struct ctl *c, size_t *ret_done, size_t *ret_total)
{
	*ret_done = __atomic_load_n(&c->all_done, __ATOMIC_RELAXED);
	*ret_total = __atomic_load_n(&c->all_total, __ATOMIC_RELAXED);
}

int ctl_run(struct ctl *c, const struct ctl_caller *who, bool revert, const struct ctl_cmd *cmd,
	    struct ctl_results *ret)
{
	return ctl_run_progress(c, who, revert, cmd, NULL, NULL, ret);
}

int ctl_run_progress(struct ctl *c, const struct ctl_caller *who, bool revert,
		     const struct ctl_cmd *cmd, ctl_progress_fn progress, void *ctx,
		     struct ctl_results *ret)
{
	struct ctl_result *one;
	int r;

	ret->v = NULL;
	ret->n = 0;
	if (cmd->kind == CTL_CMD_ALL)
		return run_all(c, who, revert, cmd, progress, ctx, ret);
	one = calloc(1, sizeof(*one));
	if (!one)
		return -ENOMEM;
	if (revert)
		r = ctl_revert(c, who, cmd->pid, one);
	else
		r = ctl_apply(c, who, cmd->pid, cmd->month, one);
	ret->v = one;
	ret->n = 1;
	if (progress)
		progress(ctx, one, 1, 1);
	if (r < 0)
		hp_err(r, "%s", one->msg);
	return r;
}

void ctl_results_release(struct ctl_results *r)
{
	if (!r)
		return;
	free(r->v);
	r->v = NULL;
	r->n = 0;
}

int ctl_results_format(const struct ctl_results *r, bool json, struct hp_buf *out)
{
	if (json)
		hp_buf_adds(out, "[");
	for (size_t i = 0; i < r->n; i++) {
		const struct ctl_result *x = &r->v[i];

		if (json) {
			hp_buf_addf(out, "%s{\"pid\":%d,\"comm\":", i ? "," : "", (int)x->pid);
			hp_buf_add_json_str(out, x->comm);
			hp_buf_addf(out, ",\"result\":\"%s\"",
				    x->excluded[0] ? "excluded" : ctl_errno_name(x->err));
			if (x->excluded[0]) {
				hp_buf_adds(out, ",\"excluded\":");
				hp_buf_add_json_str(out, x->excluded);
			} else if (x->err < 0) {
				hp_buf_adds(out, ",\"error\":");
				hp_buf_add_json_str(out, x->msg);
			} else {
				hp_buf_adds(out, ",\"set\":");
				hp_buf_add_json_str(out, x->set_id);
				hp_buf_addf(out, ",\"sets\":%u,\"changed\":%s,\"pause_us\":%llu",
					    x->n_sets, x->changed ? "true" : "false",
					    (unsigned long long)x->pause_us);
			}
			hp_buf_adds(out, "}");
		} else if (x->excluded[0]) {
			hp_buf_addf(out, "%d excluded %s comm=%s\n", (int)x->pid, x->excluded, x->comm);
		} else if (x->err < 0) {
			hp_buf_addf(out, "%d %s %s\n", (int)x->pid, ctl_errno_name(x->err), x->msg);
		} else {
			/* comm last: it may hold blanks. */
			hp_buf_addf(out, "%d ok set=%s sets=%u changed=%d pause_us=%llu comm=%s\n",
				    (int)x->pid, x->set_id[0] ? x->set_id : "-", x->n_sets,
				    x->changed ? 1 : 0, (unsigned long long)x->pause_us, x->comm);
		}
	}
	if (json)
		hp_buf_adds(out, "]\n");
	return 0;
}

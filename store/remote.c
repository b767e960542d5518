/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * History and fleet distribution: the log, and pull/push against a plain git
 * remote. Pull only ever fast-forwards, under the store's lock, so a pull
 * and an import never interleave; diverged histories are refused.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store-int.h"

#define PULL_REF "refs/hotpatch/pull"

int store_log(struct store *st, int (*cb)(void *ctx, const struct store_log_entry *e), void *ctx)
{
	git_revwalk *walk = NULL;
	git_oid oid;
	char head[HP_OID_HEX_SIZE];
	int r = 0, g;

	r = store_head(st, head);
	if (r < 0 || !head[0])
		return r; /* an empty store has no history */
	if (git_revwalk_new(&walk, st->repo) < 0)
		return store_git_err(-EIO, "log");
	git_revwalk_sorting(walk, GIT_SORT_TOPOLOGICAL | GIT_SORT_TIME);
	g = git_revwalk_push_head(walk);
	if (g < 0) {
		r = store_git_err(-EIO, "log");
		goto out;
	}
	while ((g = git_revwalk_next(&oid, walk)) == 0) {
		git_commit *c = NULL;
		struct store_log_entry e;

		if (git_commit_lookup(&c, st->repo, &oid) < 0) {
			r = store_git_err(-EIO, "log");
			goto out;
		}
		git_oid_tostr(e.id, sizeof(e.id), &oid);
		e.time = (int64_t)git_commit_time(c);
		e.summary = git_commit_summary(c);
		e.message = git_commit_message(c);
		if (!e.summary)
			e.summary = "";
		r = cb(ctx, &e);
		git_commit_free(c);
		if (r)
			goto out;
	}
	if (g != GIT_ITEROVER)
		r = store_git_err(-EIO, "log");
out:
	git_revwalk_free(walk);
	return r;
}

/* A local path that is not there: say so rather than libgit2's "unsupported URL protocol". */
static int check_local(const char *url)
{
	if ((url[0] == '/' || url[0] == '.') && access(url, F_OK) < 0)
		return hp_err(-ENOENT, "%s: no such repository", url);
	return 0;
}

/* The branch HEAD names ("refs/heads/main"), malloc'd. */
static int head_branch(struct store *st, char **ret)
{
	git_reference *head = NULL;
	const char *t;

	if (git_reference_lookup(&head, st->repo, "HEAD") < 0)
		return store_git_err(-EIO, "store HEAD");
	t = git_reference_symbolic_target(head);
	*ret = strdup(t ? t : STORE_BRANCH);
	git_reference_free(head);
	return *ret ? 0 : -ENOMEM;
}

int store_pull(struct store *st, const char *url)
{
	git_remote *remote = NULL;
	git_fetch_options fo = GIT_FETCH_OPTIONS_INIT;
	git_reference *fetched = NULL, *moved = NULL;
	git_oid theirs, ours;
	char *branch = NULL, *spec = NULL;
	git_strarray specs;
	bool have_ours;
	int fd = -1, r, g;

	r = check_local(url);
	if (r == 0)
		r = head_branch(st, &branch);
	if (r < 0)
		return r;
	if (asprintf(&spec, "+%s:%s", branch, PULL_REF) < 0) {
		spec = NULL;
		r = -ENOMEM;
		goto out;
	}
	specs = (git_strarray){ &spec, 1 };
	r = store_lock(st, &fd);
	if (r < 0)
		goto out;
	if (git_remote_create_anonymous(&remote, st->repo, url) < 0) {
		r = store_git_err(-EINVAL, url);
		goto out;
	}
	fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
	fo.update_fetchhead = 0;
	if (git_remote_fetch(remote, &specs, &fo, "hp store pull") < 0) {
		r = store_git_err(-EIO, url);
		goto out;
	}
	if (git_reference_lookup(&fetched, st->repo, PULL_REF) < 0) {
		r = hp_err(-ENOENT, "%s has no branch %s", url, branch);
		goto out;
	}
	theirs = *git_reference_target(fetched);
	g = git_reference_name_to_id(&ours, st->repo, branch);
	have_ours = g == 0;
	if (g < 0 && g != GIT_ENOTFOUND) {
		r = store_git_err(-EIO, branch);
		goto out;
	}
	if (have_ours && git_oid_equal(&ours, &theirs)) {
		r = 1; /* up to date */
		goto out;
	}
	if (have_ours && git_graph_descendant_of(st->repo, &ours, &theirs) == 1) {
		r = 1; /* ahead of the remote: nothing to take */
		goto out;
	}
	if (have_ours && git_graph_descendant_of(st->repo, &theirs, &ours) != 1) {
		r = hp_err(-EINVAL, "%s and this store have diverged: refusing (fast-forward only)", url);
		goto out;
	}
	/* Compare-and-swap on the branch: moves only from what we checked. */
	g = have_ours ? git_reference_create_matching(&moved, st->repo, branch, &theirs, 1, &ours,
						      "hp store pull: fast-forward")
		      : git_reference_create(&moved, st->repo, branch, &theirs, 0,
					     "hp store pull: initial");
	if (g < 0)
		r = store_git_err(-EIO, "pull: update branch");
out:
	if (fetched) {
		git_reference_delete(fetched);
		git_reference_free(fetched);
	}
	git_reference_free(moved);
	git_remote_free(remote);
	store_unlock(fd);
	free(spec);
	free(branch);
	return r;
}

struct push_status {
	char msg[256];
	bool rejected;
};

static int push_ref_cb(const char *refname, const char *status, void *data)
{
	struct push_status *ps = data;

	if (status) {
		ps->rejected = true;
		snprintf(ps->msg, sizeof(ps->msg), "%s: %s", refname, status);
	}
	return 0;
}

int store_push(struct store *st, const char *url)
{
	git_remote *remote = NULL;
	git_push_options po = GIT_PUSH_OPTIONS_INIT;
	git_remote_callbacks cbs = GIT_REMOTE_CALLBACKS_INIT;
	const git_remote_head **heads = NULL;
	struct push_status ps = { "", false };
	char *branch = NULL, *spec = NULL;
	git_strarray specs;
	git_oid ours;
	size_t n = 0;
	int r, g;

	r = check_local(url);
	if (r == 0)
		r = head_branch(st, &branch);
	if (r < 0)
		return r;
	g = git_reference_name_to_id(&ours, st->repo, branch);
	if (g < 0) {
		r = hp_err(-ENOENT, "nothing to push: the store is empty");
		goto out;
	}
	if (asprintf(&spec, "%s:%s", branch, branch) < 0) {
		spec = NULL;
		r = -ENOMEM;
		goto out;
	}
	specs = (git_strarray){ &spec, 1 };
	if (git_remote_create_anonymous(&remote, st->repo, url) < 0) {
		r = store_git_err(-EINVAL, url);
		goto out;
	}
	/* Our own check first, for a clear message: the remote's tip must be in our history. */
	if (git_remote_connect(remote, GIT_DIRECTION_PUSH, NULL, NULL, NULL) < 0 ||
	    git_remote_ls(&heads, &n, remote) < 0) {
		r = store_git_err(-EIO, url);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (strcmp(heads[i]->name, branch) != 0)
			continue;
		if (git_oid_equal(&heads[i]->oid, &ours)) {
			r = 1; /* up to date */
			goto out;
		}
		if (git_graph_descendant_of(st->repo, &ours, &heads[i]->oid) != 1) {
			r = hp_err(-EINVAL, "%s has commits this store lacks: refusing (pull first)", url);
			goto out;
		}
	}
	git_remote_disconnect(remote);
	cbs.push_update_reference = push_ref_cb;
	cbs.payload = &ps;
	po.callbacks = cbs;
	if (git_remote_push(remote, &specs, &po) < 0) {
		r = store_git_err(-EIO, url);
		goto out;
	}
	if (ps.rejected)
		r = hp_err(-EINVAL, "%s refused the push: %s", url, ps.msg);
out:
	git_remote_free(remote);
	free(spec);
	free(branch);
	return r;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The ctl context: the store, its snapshots, imports. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "ctl-int.h"

int ctl_new(const struct ctl_opts *opts, struct ctl **ret)
{
	struct ctl *c;
	const char *path = (opts && opts->store_path) ? opts->store_path : store_default_path();
	int r;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->budget_ms = opts ? opts->budget_ms : 0;
	c->n_workers = (opts && opts->n_workers) ? opts->n_workers : 4;
	c->retries = opts ? opts->retries : 0;
	c->head_check_ms = (opts && opts->head_check_ms) ? opts->head_check_ms : 100;
	/* without inotify (no instance left for this user, say): HEAD is read each time */
	c->head_fd = (opts && opts->watch_head) ? inotify_init1(IN_NONBLOCK | IN_CLOEXEC) : -1;
	pthread_mutex_init(&c->store_lock, NULL);
	pthread_mutex_init(&c->snap_lock, NULL);
	pthread_mutex_init(&c->outcome_lock, NULL);
	pthread_mutex_init(&c->scan_lock, NULL);
	pthread_mutex_init(&c->bid_lock, NULL);
	pthread_mutex_init(&c->policy_lock, NULL);
	c->store_path = strdup(path);
	if (!c->store_path) {
		r = -ENOMEM;
		goto fail;
	}
	r = store_open(path, &c->store);
	if (r < 0)
		goto fail;
	*ret = c;
	return 0;
fail:
	ctl_free(c);
	return r;
}

void ctl_free(struct ctl *c)
{
	if (!c)
		return;
	ctl_snap_unref(c->cur);
	if (c->head_fd >= 0)
		close(c->head_fd);
	store_free(c->store);
	free(c->outcomes);
	free(c->scan);
	free(c->bid);
	free(c->store_path);
	ctl_policy_free(c->policy);
	pthread_mutex_destroy(&c->store_lock);
	pthread_mutex_destroy(&c->snap_lock);
	pthread_mutex_destroy(&c->outcome_lock);
	pthread_mutex_destroy(&c->scan_lock);
	pthread_mutex_destroy(&c->bid_lock);
	pthread_mutex_destroy(&c->policy_lock);
	free(c);
}

const char *ctl_store_path(const struct ctl *c)
{
	return c->store_path;
}

/* ---- snapshots ----------------------------------------------------------- */

struct ctl_snap *ctl_snap_ref(struct ctl_snap *s)
{
	if (s)
		__atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
	return s;
}

void ctl_snap_unref(struct ctl_snap *s)
{
	if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	store_snap_free(s->snap);
	free(s);
}

struct store_snap *ctl_snap_store(const struct ctl_snap *s)
{
	return s->snap;
}

const char *ctl_snap_commit(const struct ctl_snap *s)
{
	return s->commit;
}

int ctl_head_watch(struct ctl *c, int fd)
{
	int r;

	pthread_mutex_lock(&c->store_lock);
	r = store_head_watch(c->store, fd);
	pthread_mutex_unlock(&c->store_lock);
	return r;
}

int ctl_head(struct ctl *c, char ret_oid[HP_OID_HEX_SIZE])
{
	int r;

	pthread_mutex_lock(&c->store_lock);
	r = store_head(c->store, ret_oid);
	pthread_mutex_unlock(&c->store_lock);
	return r;
}

/*
 * Under snap_lock: true when nothing changed where HEAD is read from since
 * it was last read (the inotify queue is empty). Else the queue is emptied
 * and the watches set again (a directory removed and made anew is a new
 * one), before HEAD is read: a change after that is the next event.
 */
static bool head_unchanged(struct ctl *c)
{
	char ev[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;

	if (c->head_fd < 0)
		return false;
	if (c->head_watched) {
		n = read(c->head_fd, ev, sizeof(ev));
		if (n < 0 && errno == EAGAIN)
			return true;
		c->head_watched = false;
		/* an event, several, or an overflow: each says "read HEAD" */
		while (n > 0 || (n < 0 && errno == EINTR))
			n = read(c->head_fd, ev, sizeof(ev));
	}
	c->head_watched = ctl_head_watch(c, c->head_fd) == 0;
	return false;
}

int ctl_snap_get(struct ctl *c, bool check_now, struct ctl_snap **ret)
{
	struct ctl_snap *s = NULL, *old = NULL;
	char head[HP_OID_HEX_SIZE];
	uint64_t now = hp_now_us();
	int r = 0;

	pthread_mutex_lock(&c->snap_lock);
	if (c->cur && !check_now && now - c->last_check_us < (uint64_t)c->head_check_ms * 1000)
		goto done;
	if (head_unchanged(c) && c->cur) {
		c->last_check_us = now;
		goto done;
	}
	r = ctl_head(c, head);
	if (r < 0)
		goto out;
	c->last_check_us = now;
	if (!head[0]) {
		r = hp_err(-ENOENT, "store %s is empty", c->store_path);
		goto out;
	}
	if (c->cur && !strcmp(c->cur->commit, head))
		goto done;
	s = calloc(1, sizeof(*s));
	if (!s) {
		r = -ENOMEM;
		goto out;
	}
	s->refs = 1;
	pthread_mutex_lock(&c->store_lock);
	r = store_snap_open(c->store, &s->snap);
	pthread_mutex_unlock(&c->store_lock);
	if (r < 0) {
		free(s);
		goto out;
	}
	snprintf(s->commit, sizeof(s->commit), "%s", store_snap_commit(s->snap));
	old = c->cur;
	c->cur = s;
done:
	*ret = ctl_snap_ref(c->cur);
out:
	if (r < 0)
		c->head_watched = false; /* what is held is not known to be HEAD's: read it next time */
	pthread_mutex_unlock(&c->snap_lock);
	ctl_snap_unref(old);
	return r;
}

int ctl_import_buf(struct ctl *c, const void *data, size_t len, char **ret_set_id)
{
	int r;

	pthread_mutex_lock(&c->store_lock);
	r = store_import_buf(c->store, data, len, NULL, ret_set_id);
	pthread_mutex_unlock(&c->store_lock);
	if (r >= 0) {
		/* The next reader looks at HEAD again. */
		pthread_mutex_lock(&c->snap_lock);
		c->last_check_us = 0;
		pthread_mutex_unlock(&c->snap_lock);
	}
	return r;
}


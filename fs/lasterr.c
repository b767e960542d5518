/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * last-error: the reason of a caller's last failed write. A write's errno
 * says what failed (`cp bad.tar.gz incoming/` says only "Key was rejected
 * by service"); the message says why. It is kept per session of the
 * writer (the shell that ran the cp runs the cat next), and per uid for a
 * reader of another session. Bounded: the last HPFS_LASTERR_MAX writers.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hpfs.h"

#define HPFS_LASTERR_MAX 64

struct lasterr {
	uid_t uid;
	pid_t sid;    /* 0: not known */
	uint64_t seq; /* 0: an empty slot */
	char line[HP_ERRMSG_MAX + 128];
};

static pthread_mutex_t lasterr_lock = PTHREAD_MUTEX_INITIALIZER;
static struct lasterr lasterr[HPFS_LASTERR_MAX];
static uint64_t lasterr_seq;

static pid_t session_of(pid_t pid)
{
	pid_t sid = pid > 0 ? getsid(pid) : -1;

	return sid > 0 ? sid : 0;
}

void hpfs_lasterr_set(const struct hpfs_caller *c, const char *file, int err, const char *msg)
{
	pid_t sid = session_of(c->pid);
	struct lasterr *slot = NULL;
	struct timespec ts;
	struct tm tm;
	char when[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	pthread_mutex_lock(&lasterr_lock);
	/* The session's own slot, else an empty one, else the oldest. */
	for (size_t i = 0; i < HPFS_LASTERR_MAX && !slot; i++)
		if (lasterr[i].seq && lasterr[i].uid == c->uid && lasterr[i].sid == sid)
			slot = &lasterr[i];
	for (size_t i = 0; i < HPFS_LASTERR_MAX && !slot; i++)
		if (!lasterr[i].seq)
			slot = &lasterr[i];
	if (!slot) {
		slot = &lasterr[0];
		for (size_t i = 1; i < HPFS_LASTERR_MAX; i++)
			if (lasterr[i].seq < slot->seq)
				slot = &lasterr[i];
	}
	slot->uid = c->uid;
	slot->sid = sid;
	slot->seq = ++lasterr_seq;
	snprintf(slot->line, sizeof(slot->line), "%s %s %s %s\n", when, file, ctl_errno_name(err),
		 msg && *msg ? msg : strerror(-err));
	/* One line: a message never breaks it. */
	for (char *p = slot->line; *p && p[1]; p++)
		if (*p == '\n')
			*p = ' ';
	pthread_mutex_unlock(&lasterr_lock);
}

int hpfs_lasterr_text(const struct hpfs_caller *c, struct hp_buf *out)
{
	pid_t sid = session_of(c->pid);
	const struct lasterr *best = NULL;
	int r = 0;

	pthread_mutex_lock(&lasterr_lock);
	for (size_t i = 0; i < HPFS_LASTERR_MAX; i++) {
		const struct lasterr *e = &lasterr[i];

		if (!e->seq || e->uid != c->uid)
			continue;
		/* The reader's session first; else the newest of its uid. */
		if (!best || (e->sid == sid && best->sid != sid) ||
		    ((e->sid == sid) == (best->sid == sid) && e->seq > best->seq))
			best = e;
	}
	if (best)
		r = hp_buf_adds(out, best->line);
	pthread_mutex_unlock(&lasterr_lock);
	return r;
}

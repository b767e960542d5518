/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The event log behind /log: one line per event, oldest first, the last HPFS_LOG_MAX kept. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hpfs.h"

static void add_line(char *line)
{
	pthread_mutex_lock(&hpfs.log_lock);
	if (!hpfs.log)
		hpfs.log = calloc(HPFS_LOG_MAX, sizeof(*hpfs.log));
	if (!hpfs.log) {
		free(line);
	} else if (hpfs.log_n < HPFS_LOG_MAX) {
		hpfs.log[(hpfs.log_first + hpfs.log_n++) % HPFS_LOG_MAX] = line;
	} else {
		free(hpfs.log[hpfs.log_first]);
		hpfs.log[hpfs.log_first] = line;
		hpfs.log_first = (hpfs.log_first + 1) % HPFS_LOG_MAX;
	}
	pthread_mutex_unlock(&hpfs.log_lock);
}

/* "2026-11-29T12:13:14.123Z apply pid=4242 set=2026.01/2026-02/fix result=ok pause_us=37" */
void hpfs_log_event(const char *op, pid_t pid, const char *set, int err, const char *msg,
		    bool have_pause, uint64_t pause_us, const char *extra)
{
	struct hp_buf b = HP_BUF_INIT;
	struct timespec ts;
	struct tm tm;
	char when[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	hp_buf_addf(&b, "%s.%03ldZ %s", when, ts.tv_nsec / 1000000, op);
	if (pid > 0)
		hp_buf_addf(&b, " pid=%d", (int)pid);
	hp_buf_addf(&b, " set=%s result=%s", (set && *set) ? set : "-", ctl_errno_name(err));
	if (have_pause)
		hp_buf_addf(&b, " pause_us=%llu", (unsigned long long)pause_us);
	else
		hp_buf_adds(&b, " pause_us=-");
	if (extra && *extra)
		hp_buf_addf(&b, " %s", extra);
	if (err < 0 && msg && *msg) {
		hp_buf_adds(&b, " reason=\"");
		for (const char *p = msg; *p; p++)
			hp_buf_add(&b, (*p == '"' || *p == '\n') ? "'" : p, 1);
		hp_buf_adds(&b, "\"");
	}
	hp_buf_adds(&b, "\n");
	if (b.data)
		add_line(hp_buf_detach(&b, NULL));
}

void hpfs_log_results(const char *op, const struct ctl_results *r)
{
	for (size_t i = 0; i < r->n; i++) {
		const struct ctl_result *x = &r->v[i];
		char extra[64];

		snprintf(extra, sizeof(extra), "changed=%d", x->changed ? 1 : 0);
		hpfs_log_event(op, x->pid, x->set_id, x->err, x->msg, x->err >= 0 && x->changed,
			       x->pause_us, x->err >= 0 ? extra : NULL);
	}
}

int hpfs_log_text(struct hp_buf *out)
{
	int r = 0;

	pthread_mutex_lock(&hpfs.log_lock);
	for (size_t i = 0; i < hpfs.log_n && r >= 0; i++)
		r = hp_buf_adds(out, hpfs.log[(hpfs.log_first + i) % HPFS_LOG_MAX]);
	pthread_mutex_unlock(&hpfs.log_lock);
	return r < 0 ? r : 0;
}

void hpfs_log_release(void)
{
	pthread_mutex_lock(&hpfs.log_lock);
	for (size_t i = 0; i < hpfs.log_n; i++)
		free(hpfs.log[(hpfs.log_first + i) % HPFS_LOG_MAX]);
	free(hpfs.log);
	hpfs.log = NULL;
	hpfs.log_n = 0;
	hpfs.log_first = 0;
	pthread_mutex_unlock(&hpfs.log_lock);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The event log behind MNT/log: one line per event, oldest first.
 *
 * Who may fill it: with -o allow_other any user may write apply and
 * revert, and every refused write is an event. So the lines are kept in
 * rings by the uid that caused them: root's (and the daemon's own, such as
 * auto-apply) hold HPFS_LOG_MAX lines, each other uid HPFS_LOG_USER_MAX,
 * and at most HPFS_LOG_USERS other uids at once (a new one takes the ring
 * of the uid quietest for longest). Nobody's writes displace root's lines,
 * and one user's do not displace another's. The file shows all rings
 * merged in the order the events happened.
 *
 * What a user controls (a set name, a reason that quotes their input, a
 * file name, a program's path) is escaped: bytes outside printable ASCII,
 * the backslash and the double quote are written \xHH, so no ESC, BEL or
 * BS reaches the terminal of whoever reads the log.
 *
 * Each line also goes to the system log (LOG_DAEMON, through /dev/log: the
 * journal picks it up; see syslog_line), and is appended to events.log in
 * the state directory, read back at the next start: the log outlives a
 * restart. That file is bounded: past HPFS_LOG_FILE_MAX lines it is
 * rewritten with what the rings hold.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "hpfs.h"

#define HPFS_LOG_USER_MAX 1000   /* lines kept per other uid */
#define HPFS_LOG_USERS 16        /* other uids kept at once */
#define HPFS_LOG_FILE_MAX (2 * (HPFS_LOG_MAX + HPFS_LOG_USERS * HPFS_LOG_USER_MAX))
#define HPFS_LOG_FILE "events.log"

struct ring {
	bool used;
	uid_t uid;
	size_t cap, first, n;
	char **lines;
	uint64_t *seq;
	uint64_t last; /* seq of its newest line */
};

/*
 * The system log. syslog(3) costs four system calls a line where nobody
 * listens on /dev/log (getpid, then socket, connect and close: glibc
 * connects anew for every line until a listener is there) and two where
 * one does (getpid, send). Here one datagram socket is kept for the
 * daemon's life and our pid is known (forgotten at a fork): a line is one
 * send when connected, one connect that fails when nobody listens. No
 * line is lost to a listener that appears later or restarts: an
 * unconnected socket tries to connect for every line, and a failed send
 * (the listener gone or replaced) connects again and sends once more, as
 * glibc does. The line is the one syslog(3) writes, "<PRI>Mmm dd hh:mm:ss
 * hotpatchfs[PID]: TEXT", and the send blocks while the listener's queue
 * is full (as glibc's): a line waits rather than being dropped. A /dev/log
 * that is a stream socket (some syslog daemons) is left to syslog(3),
 * which knows that protocol.
 */
static struct {
	pthread_mutex_t lock;
	int fd;          /* AF_UNIX datagram socket, -1 until the first line */
	bool connected;
	bool libc;       /* /dev/log is not a datagram socket: syslog(3) writes */
	pid_t pid;       /* ours; 0 after a fork, until the next line */
} sys = { PTHREAD_MUTEX_INITIALIZER, -1, false, false, 0 };

static void syslog_forget_pid(void)
{
	sys.pid = 0;
}

/*
 * Under sys.lock: one send, connecting first when not connected. 1 sent, 0
 * nobody to send to (the connect failed), -1 the send failed.
 */
static int syslog_send(const struct msghdr *m)
{
	static const struct sockaddr_un addr = { AF_UNIX, "/dev/log" };

	if (!sys.connected) {
		if (connect(sys.fd, (const struct sockaddr *)&addr, sizeof(addr)) < 0) {
			if (errno == EPROTOTYPE)
				sys.libc = true;
			return 0;
		}
		sys.connected = true;
	}
	for (;;) {
		if (sendmsg(sys.fd, m, MSG_NOSIGNAL) >= 0)
			return 1;
		if (errno != EINTR)
			break;
	}
	sys.connected = false;
	return -1;
}

/* TEXT (LEN bytes, no newline) to the system log at priority LEVEL of LOG_DAEMON. */
static void syslog_line(int level, const char *text, size_t len)
{
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	char head[80];
	struct iovec iov[2];
	struct msghdr m;
	struct tm tm;
	time_t now = time(NULL);
	int n;

	localtime_r(&now, &tm);
	pthread_mutex_lock(&sys.lock);
	if (sys.fd < 0 && !sys.libc)
		sys.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sys.fd < 0 || sys.libc) {
		pthread_mutex_unlock(&sys.lock);
		syslog(level, "%.*s", (int)len, text);
		return;
	}
	if (!sys.pid)
		sys.pid = getpid();
	n = snprintf(head, sizeof(head), "<%d>%s %2d %02d:%02d:%02d hotpatchfs[%d]: ",
		     LOG_DAEMON | level, months[tm.tm_mon % 12], tm.tm_mday, tm.tm_hour,
		     tm.tm_min, tm.tm_sec, (int)sys.pid);
	iov[0] = (struct iovec){ head, (size_t)n };
	iov[1] = (struct iovec){ (void *)text, len };
	memset(&m, 0, sizeof(m));
	m.msg_iov = iov;
	m.msg_iovlen = 2;
	/* a listener gone or replaced since the last line: connect anew, once */
	if (syslog_send(&m) < 0)
		syslog_send(&m);
	pthread_mutex_unlock(&sys.lock);
	if (sys.libc)
		syslog(level, "%.*s", (int)len, text);
}

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ring rings[1 + HPFS_LOG_USERS]; /* [0]: root's and the daemon's */
static uint64_t next_seq = 1;
static char *file_path;
static int file_fd = -1;
static size_t file_lines;

/* Under log_lock: the ring of UID, taken (or the quietest one reused) when new. */
static struct ring *ring_of(uid_t uid)
{
	struct ring *g = NULL;

	if (uid == 0)
		return &rings[0];
	for (size_t i = 1; i <= HPFS_LOG_USERS; i++)
		if (rings[i].used && rings[i].uid == uid)
			return &rings[i];
	for (size_t i = 1; i <= HPFS_LOG_USERS && !g; i++)
		if (!rings[i].used)
			g = &rings[i];
	if (!g) {
		g = &rings[1];
		for (size_t i = 2; i <= HPFS_LOG_USERS; i++)
			if (rings[i].last < g->last)
				g = &rings[i];
	}
	for (size_t i = 0; i < g->n; i++)
		free(g->lines[(g->first + i) % g->cap]);
	g->used = true;
	g->uid = uid;
	g->first = g->n = 0;
	return g;
}

/* Under log_lock: keep LINE (taken) in UID's ring. */
static void ring_add(uid_t uid, char *line)
{
	struct ring *g = ring_of(uid);

	if (!g->lines) {
		g->cap = uid == 0 ? HPFS_LOG_MAX : HPFS_LOG_USER_MAX;
		g->lines = calloc(g->cap, sizeof(*g->lines));
		g->seq = calloc(g->cap, sizeof(*g->seq));
		if (!g->lines || !g->seq) {
			free(g->lines);
			free(g->seq);
			g->lines = NULL;
			g->seq = NULL;
			free(line);
			return;
		}
	}
	if (g->n < g->cap) {
		size_t at = (g->first + g->n++) % g->cap;

		g->lines[at] = line;
		g->seq[at] = next_seq;
	} else {
		free(g->lines[g->first]);
		g->lines[g->first] = line;
		g->seq[g->first] = next_seq;
		g->first = (g->first + 1) % g->cap;
	}
	g->last = next_seq++;
}

/* Under log_lock: every ring's lines, merged oldest first. */
static int text_locked(struct hp_buf *out)
{
	size_t at[1 + HPFS_LOG_USERS] = { 0 };
	int r = 0;

	for (;;) {
		struct ring *best = NULL;
		size_t bi = 0;

		for (size_t i = 0; i <= HPFS_LOG_USERS; i++) {
			struct ring *g = &rings[i];

			if (!g->used && i)
				continue;
			if (at[i] >= g->n)
				continue;
			if (!best || g->seq[(g->first + at[i]) % g->cap] <
					     best->seq[(best->first + at[bi]) % best->cap]) {
				best = g;
				bi = i;
			}
		}
		if (!best || r < 0)
			break;
		r = hp_buf_adds(out, best->lines[(best->first + at[bi]) % best->cap]);
		at[bi]++;
	}
	return r < 0 ? r : 0;
}

/* The uid= of a line read back (0 when it has none: root's ring). */
static uid_t line_uid(const char *line)
{
	const char *p = strstr(line, " uid=");

	return p ? (uid_t)strtoul(p + 5, NULL, 10) : 0;
}

/* Under log_lock: past the bound, the file becomes what the rings hold. */
static void file_compact_locked(void)
{
	struct hp_buf all = HP_BUF_INIT;
	size_t n = 0;

	if (file_fd < 0 || file_lines < HPFS_LOG_FILE_MAX)
		return;
	if (text_locked(&all) < 0 ||
	    hp_write_file_atomic(file_path, all.data ? all.data : "", all.len, 0600) < 0) {
		hp_log(HP_LOG_WARN, "event log %s: cannot rewrite it", file_path);
		file_lines = 0; /* try again after as many lines */
		goto out;
	}
	close(file_fd);
	file_fd = open(file_path, O_WRONLY | O_APPEND | O_CLOEXEC);
	for (size_t i = 0; i < all.len; i++)
		n += all.data[i] == '\n';
	file_lines = n;
out:
	hp_buf_release(&all);
}

int hpfs_log_open(const char *state_dir)
{
	struct hp_buf old = HP_BUF_INIT;
	int r;

	if (asprintf(&file_path, "%s/%s", state_dir, HPFS_LOG_FILE) < 0) {
		file_path = NULL;
		return -ENOMEM;
	}
	/* the daemon forks to go to the background: its pid is asked again there */
	pthread_atfork(NULL, NULL, syslog_forget_pid);
	r = hp_read_file(file_path, SIZE_MAX / 2, &old);
	if (r < 0 && r != -ENOENT)
		return hp_err(r, "event log %s: %s", file_path, strerror(-r));
	pthread_mutex_lock(&log_lock);
	for (char *line = old.data, *nl; line && *line; line = nl + 1) {
		char *copy;

		nl = strchr(line, '\n');
		if (!nl)
			break; /* a line cut short by a crash */
		copy = strndup(line, (size_t)(nl - line + 1));
		if (copy)
			ring_add(line_uid(copy), copy);
		file_lines++;
	}
	file_fd = open(file_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	r = file_fd < 0 ? -errno : 0;
	if (r == 0)
		file_compact_locked();
	pthread_mutex_unlock(&log_lock);
	hp_buf_release(&old);
	if (r < 0)
		return hp_err(r, "event log %s: %s", file_path, strerror(-r));
	return 0;
}

/* TEXT with what a terminal could obey (and \ and ") written as \xHH. */
static void add_escaped(struct hp_buf *b, const char *text)
{
	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		if (*p < 0x20 || *p >= 0x7f || *p == '\\' || *p == '"')
			hp_buf_addf(b, "\\x%02x", *p);
		else
			hp_buf_add(b, p, 1);
	}
}

/*
 * "2026-11-29T12:13:14.123Z apply pid=4242 set=2026.01/2026-02/fix result=ok
 * pause_us=37 changed=1 uid=0 exe=/usr/sbin/demo-server"
 */
static void event(const char *op, uid_t uid, pid_t pid, const char *set, int err,
		  const char *result, const char *msg, bool have_pause, uint64_t pause_us,
		  const char *extra)
{
	struct hp_buf b = HP_BUF_INIT;
	struct timespec ts;
	struct tm tm;
	char when[32], exe[PATH_MAX], link[32];
	size_t start;
	ssize_t n = -1;
	char *line;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	hp_buf_addf(&b, "%s.%03ldZ ", when, ts.tv_nsec / 1000000);
	start = b.len;
	hp_buf_adds(&b, op);
	if (pid > 0)
		hp_buf_addf(&b, " pid=%d", (int)pid);
	hp_buf_adds(&b, " set=");
	add_escaped(&b, (set && *set) ? set : "-");
	hp_buf_addf(&b, " result=%s", result);
	if (have_pause)
		hp_buf_addf(&b, " pause_us=%llu", (unsigned long long)pause_us);
	else
		hp_buf_adds(&b, " pause_us=-");
	if (extra && *extra) {
		hp_buf_adds(&b, " ");
		add_escaped(&b, extra);
	}
	hp_buf_addf(&b, " uid=%u", (unsigned)uid);
	if (pid > 0) {
		snprintf(link, sizeof(link), "/proc/%d/exe", (int)pid);
		n = readlink(link, exe, sizeof(exe) - 1);
	}
	if (n > 0) {
		exe[n] = '\0';
		hp_buf_adds(&b, " exe=");
		add_escaped(&b, exe);
	} else if (pid > 0) {
		hp_buf_adds(&b, " exe=-");
	}
	if (err < 0 && msg && *msg) {
		hp_buf_adds(&b, " reason=\"");
		add_escaped(&b, msg);
		hp_buf_adds(&b, "\"");
	}
	hp_buf_adds(&b, "\n");
	if (!b.data)
		return;
	syslog_line(err < 0 ? LOG_WARNING : LOG_INFO, b.data + start, b.len - start - 1);
	line = hp_buf_detach(&b, NULL);
	pthread_mutex_lock(&log_lock);
	if (file_fd >= 0) {
		size_t len = strlen(line);

		if (write(file_fd, line, len) != (ssize_t)len)
			hp_log(HP_LOG_WARN, "event log %s: short write", file_path);
		file_lines++;
	}
	ring_add(uid, line);
	file_compact_locked();
	pthread_mutex_unlock(&log_lock);
}

void hpfs_log_event(const char *op, uid_t uid, pid_t pid, const char *set, int err,
		    const char *msg, bool have_pause, uint64_t pause_us, const char *extra)
{
	event(op, uid, pid, set, err, ctl_errno_name(err), msg, have_pause, pause_us, extra);
}

void hpfs_log_results(const char *op, uid_t uid, const struct ctl_results *r)
{
	for (size_t i = 0; i < r->n; i++) {
		const struct ctl_result *x = &r->v[i];
		char extra[CTL_WHY_SIZE + 16];

		if (x->excluded[0]) {
			/* "all" left it alone: the rule of the configuration that says so */
			snprintf(extra, sizeof(extra), "rule=%s", x->excluded);
			event(op, uid, x->pid, NULL, 0, "excluded", NULL, false, 0, extra);
			continue;
		}
		snprintf(extra, sizeof(extra), "changed=%d", x->changed ? 1 : 0);
		hpfs_log_event(op, uid, x->pid, x->set_id, x->err, x->msg,
			       x->err >= 0 && x->changed, x->pause_us, x->err >= 0 ? extra : NULL);
	}
}

int hpfs_log_text(struct hp_buf *out)
{
	int r;

	pthread_mutex_lock(&log_lock);
	r = text_locked(out);
	pthread_mutex_unlock(&log_lock);
	return r;
}

void hpfs_log_release(void)
{
	pthread_mutex_lock(&log_lock);
	for (size_t i = 0; i <= HPFS_LOG_USERS; i++) {
		struct ring *g = &rings[i];

		for (size_t j = 0; j < g->n; j++)
			free(g->lines[(g->first + j) % g->cap]);
		free(g->lines);
		free(g->seq);
		memset(g, 0, sizeof(*g));
	}
	if (file_fd >= 0)
		close(file_fd);
	file_fd = -1;
	free(file_path);
	pthread_mutex_lock(&sys.lock);
	if (sys.fd >= 0)
		close(sys.fd);
	sys.fd = -1;
	sys.connected = false;
	pthread_mutex_unlock(&sys.lock);
	file_path = NULL;
	pthread_mutex_unlock(&log_lock);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The facts /proc states in text about a process, each parsed here once (hp-procfs.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hp-common.h"
#include "hp-procfs.h"

/* A line of /proc/PID/stat is under 1 KiB: 52 numeric fields and a 15-byte comm. */
#define PROC_STAT_MAX_BYTES 4096

/* ---- /proc/PID/maps ------------------------------------------------------ */

/* A hexadecimal number ending at `end`; advances *pp past it. */
static bool parse_hex(char **pp, uint64_t *ret, char end)
{
	char *p = *pp;
	uint64_t v = 0;
	int n = 0;

	for (;; p++, n++) {
		unsigned d;

		if (*p >= '0' && *p <= '9')
			d = (unsigned)(*p - '0');
		else if (*p >= 'a' && *p <= 'f')
			d = (unsigned)(*p - 'a' + 10);
		else
			break;
		if (n == 16)
			return false;
		v = v << 4 | d;
	}
	if (n == 0 || *p != end)
		return false;
	*pp = p + 1;
	*ret = v;
	return true;
}

/* A decimal number ending at a space or the end of the line. */
static bool parse_dec(char **pp, uint64_t *ret)
{
	char *p = *pp;
	uint64_t v = 0;
	int n = 0;

	for (; *p >= '0' && *p <= '9'; p++, n++) {
		if (n == 19)
			return false;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (n == 0 || (*p != ' ' && *p != '\0'))
		return false;
	*pp = p;
	*ret = v;
	return true;
}

int proc_map_parse_line(char *line, struct proc_map *ret)
{
	struct proc_map m = { 0 };
	uint64_t major, minor;
	char *p = line;

	if (!parse_hex(&p, &m.start, '-') || !parse_hex(&p, &m.end, ' ') || m.end < m.start)
		return -EINVAL;
	/* perms: four letters, r w x then p or s */
	if (strlen(p) < 5 || p[4] != ' ')
		return -EINVAL;
	m.prot = (p[0] == 'r' ? PROT_READ : 0) | (p[1] == 'w' ? PROT_WRITE : 0) |
		 (p[2] == 'x' ? PROT_EXEC : 0);
	m.shared = p[3] == 's';
	p += 5;
	if (!parse_hex(&p, &m.offset, ' ') || !parse_hex(&p, &major, ':') ||
	    !parse_hex(&p, &minor, ' ') || !parse_dec(&p, &m.inode))
		return -EINVAL;
	m.dev_major = (unsigned)major;
	m.dev_minor = (unsigned)minor;
	/* the kernel pads the path to a column with spaces */
	while (*p == ' ')
		p++;
	m.path = *p ? p : NULL;
	*ret = m;
	return 0;
}

void proc_maps_release(struct proc_maps *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++)
		free(m->v[i].path);
	free(m->v);
	m->v = NULL;
	m->n = 0;
}

int proc_maps_read(pid_t pid, struct proc_maps *ret)
{
	return proc_maps_read_keep(pid, ret, NULL);
}

int proc_maps_read_keep(pid_t pid, struct proc_maps *ret, int *ret_fd)
{
	struct hp_buf b = HP_BUF_INIT;
	struct proc_maps m = { 0 };
	char path[64];
	char *line, *save = NULL;
	size_t cap = 0;
	int fd = -1, r;

	if (ret_fd)
		*ret_fd = -1;
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	r = hp_read_file_keep(path, PROC_MAPS_MAX_BYTES, &b, &fd);
	if (r == 0 && b.len == 0) {
		/* the leader has left: its view is empty, a live thread's is not */
		pid_t tid = proc_live_tid(pid);

		if (tid && tid != pid) {
			snprintf(path, sizeof(path), "/proc/%d/task/%d/maps", (int)pid, (int)tid);
			hp_buf_reset(&b);
			close(fd);
			r = hp_read_file_keep(path, PROC_MAPS_MAX_BYTES, &b, &fd);
		}
	}
	if (r < 0) {
		r = r == -ENOENT ? -ESRCH : r;
		r = hp_err(r, "read %s: %s", path, strerror(-r));
		goto out;
	}
	for (line = strtok_r(b.data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (m.n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			struct proc_map *v = realloc(m.v, ncap * sizeof(*v));

			if (!v) {
				r = hp_err(-ENOMEM, "out of memory");
				goto out;
			}
			m.v = v;
			cap = ncap;
		}
		r = proc_map_parse_line(line, &m.v[m.n]);
		if (r < 0) {
			r = hp_err(r, "parse %s: bad line '%.80s'", path, line);
			goto out;
		}
		if (m.v[m.n].path && !(m.v[m.n].path = strdup(m.v[m.n].path))) {
			r = hp_err(-ENOMEM, "out of memory");
			goto out;
		}
		m.n++;
	}
	*ret = m;
	m = (struct proc_maps){ 0 };
	if (ret_fd) {
		*ret_fd = fd;
		fd = -1;
	}
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	proc_maps_release(&m);
	hp_buf_release(&b);
	return r;
}

const struct proc_map *proc_maps_find(const struct proc_maps *m, uint64_t addr)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (addr < m->v[mid].start)
			hi = mid;
		else if (addr >= m->v[mid].end)
			lo = mid + 1;
		else
			return &m->v[mid];
	}
	return NULL;
}

/* ---- /proc/PID/stat -------------------------------------------------------- */

/* Field 3 (the state) of a stat text, or NULL: it follows the last ')'. */
static const char *stat_field3(const char *text)
{
	const char *p = strrchr(text, ')');

	return p && p[1] == ' ' && p[2] && p[2] != ' ' ? p + 2 : NULL;
}

/* Field n (n > 3) counted from p at field 3, or NULL. */
static const char *stat_field(const char *p, int n)
{
	for (int i = 3; i < n && p; i++) {
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	return p && *p >= '0' && *p <= '9' ? p : NULL;
}

int proc_stat_parse(const char *text, struct proc_stat_fields *ret)
{
	const char *f3 = stat_field3(text), *lp = strchr(text, '(');
	const char *f9, *f20, *f22;
	struct proc_stat_fields s = { 0 };

	if (!f3 || !lp || lp > f3)
		return -EIO;
	f9 = stat_field(f3, 9);
	f20 = stat_field(f3, 20);
	f22 = stat_field(f3, 22);
	if (!f9 || !f20 || !f22)
		return -EIO;
	s.state = *f3;
	s.flags = strtoul(f9, NULL, 10);
	s.num_threads = strtol(f20, NULL, 10);
	s.start_time = strtoull(f22, NULL, 10);
	snprintf(s.comm, sizeof(s.comm), "%.*s", (int)(f3 - 2 - lp - 1), lp + 1);
	*ret = s;
	return 0;
}

/*
 * Read a stat file with one open and one read (not stdio: the engine reads
 * every thread's before a stop). -ENOENT when it is not there.
 */
static int stat_text(const char *path, char *buf, size_t cap)
{
	ssize_t n;
	int fd, e;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, cap - 1);
	e = errno;
	close(fd);
	if (n < 0)
		return e == ESRCH ? -ENOENT : -e;
	/* empty: the process went between the open and the read */
	if (n == 0)
		return -ENOENT;
	buf[n] = '\0';
	return 0;
}

/* The fields of a /proc/PID/stat text read; -EIO (with a message) when it is not that format. */
static int stat_fields(const char *text, pid_t pid, struct proc_stat_fields *ret)
{
	if (proc_stat_parse(text, ret) < 0)
		return hp_err(-EIO, "parse /proc/%d/stat: unexpected format", (int)pid);
	return 0;
}

int proc_stat_open(pid_t pid)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && (errno == ENOENT || errno == ESRCH))
		return hp_err(-ESRCH, "process %d: no such process", (int)pid);
	if (fd < 0)
		return hp_err(-errno, "open %s: %s", path, strerror(errno));
	return fd;
}

int proc_stat_fd_read(int fd, pid_t pid, struct proc_stat_fields *ret)
{
	char buf[PROC_STAT_MAX_BYTES];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	/* empty: the process went between the open and the read */
	if ((n < 0 && (errno == ESRCH || errno == ENOENT)) || n == 0)
		return hp_err(-ESRCH, "process %d: no such process", (int)pid);
	if (n < 0)
		return hp_err(-errno, "read /proc/%d/stat: %s", (int)pid, strerror(errno));
	buf[n] = '\0';
	return stat_fields(buf, pid, ret);
}

int proc_stat_read(pid_t pid, struct proc_stat_fields *ret)
{
	char path[64], buf[PROC_STAT_MAX_BYTES];
	int r;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	r = stat_text(path, buf, sizeof(buf));
	if (r == -ENOENT)
		return hp_err(-ESRCH, "process %d: no such process", (int)pid);
	if (r < 0)
		return hp_err(r, "read %s: %s", path, strerror(-r));
	return stat_fields(buf, pid, ret);
}

int proc_stat(pid_t pid, char *ret_state, uint64_t *ret_start_time)
{
	struct proc_stat_fields s;
	int r = proc_stat_read(pid, &s);

	if (r < 0)
		return r;
	if (ret_state)
		*ret_state = s.state;
	if (ret_start_time)
		*ret_start_time = s.start_time;
	return 0;
}

/*
 * The kernel gives /proc/PID/task a link count of 2 plus the group's thread
 * count (proc_task_getattr, the num_threads of /proc/PID/stat): one stat,
 * where /proc/PID/stat is opened, formatted (some fifty fields), read and
 * parsed. The stop asks this while every thread is held.
 */
static long task_dir_threads(int r, const struct stat *st)
{
	if (r < 0 || st->st_nlink < 2)
		return -1;
	return (long)st->st_nlink - 2;
}

long proc_thread_count(pid_t pid)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	return task_dir_threads(stat(path, &st), &st);
}

long proc_thread_count_fd(int task_fd)
{
	struct stat st;

	return task_dir_threads(fstat(task_fd, &st), &st);
}

int proc_task_state(pid_t pid, pid_t tid, char *ret_state)
{
	char path[64], buf[PROC_STAT_MAX_BYTES];
	const char *f3;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, (int)tid);
	if (stat_text(path, buf, sizeof(buf)) < 0 || !(f3 = stat_field3(buf)))
		return -ESRCH;
	*ret_state = *f3;
	return 0;
}

pid_t proc_live_tid(pid_t pid)
{
	char path[64];
	DIR *d;
	struct dirent *de;
	pid_t tid = 0;
	char st;

	/* /proc/PID/stat shows the leader: Z also when only it has left */
	if (proc_task_state(pid, pid, &st) == 0 && st != 'Z' && st != 'X')
		return pid;
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return 0;
	while (!tid && (de = readdir(d))) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		if (proc_task_state(pid, (pid_t)atoi(de->d_name), &st) == 0 && st != 'Z' &&
		    st != 'X')
			tid = (pid_t)atoi(de->d_name);
	}
	closedir(d);
	return tid;
}

char *proc_mountinfo_unescape(char *s)
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
	return s;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Auto-apply: a process that maps a target with a published set is patched
 * within milliseconds of the mapping, at exec or at any later dlopen, with
 * no polling of processes. Two kernel event sources, read by one listener
 * thread (both root only):
 *
 * - the proc connector (netlink) reports each exec: the new program's own
 *   binary, and the libraries ld.so maps right after;
 * - fanotify reports each open of a file on the filesystems mounted here
 *   (FAN_MARK_FILESYSTEM, FAN_OPEN and FAN_OPEN_EXEC, with the opened file's name:
 *   FAN_REPORT_DFID_NAME, so no descriptor is made per event). A process
 *   maps a library by opening it first, so an open of a file named as a
 *   target with a published set (the store's names, kept per snapshot) is
 *   the sign that a mapping follows: dlopen, or an exec's libraries.
 *
 * Either way the opener or the new process is looked at on a short
 * schedule (0, 1, 2, 4 ... 256 ms after the event) until what it maps is
 * patched or the schedule ends: the mapping follows the open within
 * microseconds. A queue overflow (FAN_Q_OVERFLOW: events were lost) looks
 * once at every process that maps a known target.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <poll.h>
#include <stddef.h>
#include <sys/fanotify.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hp-procfs.h"
#include "hpfs.h"

#define AUTO_QUEUE_MAX 4096

/* Delays (ms after the exec) of the looks at a new process. */
static const unsigned auto_schedule_ms[] = { 0, 1, 2, 4, 8, 16, 32, 64, 128, 256 };
#define AUTO_TRIES (sizeof(auto_schedule_ms) / sizeof(auto_schedule_ms[0]))

struct hpfs_auto_item {
	pid_t pid;
	uint64_t exec_us;  /* the event's time: the exec, or the open */
	bool opened;       /* an open of a target file (else an exec) */
	unsigned tries;
	struct hpfs_auto_item *next;
};

static size_t queue_len;

/* fanotify: the descriptor, and the target names with a published set (per snapshot). */
static int fan_fd = -1;
static char **fan_names;
static size_t fan_n_names;
static char fan_commit[HP_OID_HEX_SIZE];

static int listen_socket(void)
{
	struct sockaddr_nl sa;
	struct {
		struct nlmsghdr nl;
		struct cn_msg cn;
		enum proc_cn_mcast_op op;
	} __attribute__((packed)) msg;
	int fd;

	fd = socket(PF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_CONNECTOR);
	if (fd < 0)
		return hp_err(-errno, "proc connector: %s", strerror(errno));
	memset(&sa, 0, sizeof(sa));
	sa.nl_family = AF_NETLINK;
	sa.nl_groups = CN_IDX_PROC;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		close(fd);
		return hp_err(-e, "proc connector: bind: %s", strerror(e));
	}
	memset(&msg, 0, sizeof(msg));
	msg.nl.nlmsg_len = sizeof(msg);
	msg.nl.nlmsg_type = NLMSG_DONE;
	msg.nl.nlmsg_pid = (__u32)getpid();
	msg.cn.id.idx = CN_IDX_PROC;
	msg.cn.id.val = CN_VAL_PROC;
	msg.cn.len = sizeof(enum proc_cn_mcast_op);
	msg.op = PROC_CN_MCAST_LISTEN;
	if (send(fd, &msg, sizeof(msg), 0) < 0) {
		int e = errno;

		close(fd);
		return hp_err(-e, "proc connector: listen: %s", strerror(e));
	}
	return fd;
}

/*
 * Look at PID on the schedule from now. A pid already queued starts its
 * schedule again, unless that is an exec's and this an open (an exec opens
 * its program and ld.so its libraries: the exec's schedule covers them).
 */
static void enqueue(pid_t pid, bool opened)
{
	struct hpfs_auto_item *it;

	pthread_mutex_lock(&hpfs.auto_lock);
	for (it = hpfs.auto_queue; it; it = it->next)
		if (it->pid == pid)
			break;
	if (it && (!opened || it->opened)) {
		it->exec_us = hp_now_us();
		it->opened = opened;
		it->tries = 0;
		pthread_cond_signal(&hpfs.auto_cond);
	} else if (it) {
		/* an exec's schedule is running: it covers the opens of ld.so (and of the exec) */
	} else if (queue_len < AUTO_QUEUE_MAX && (it = calloc(1, sizeof(*it)))) {
		it->pid = pid;
		it->exec_us = hp_now_us();
		it->opened = opened;
		it->next = hpfs.auto_queue;
		hpfs.auto_queue = it;
		queue_len++;
		pthread_cond_signal(&hpfs.auto_cond);
	}
	pthread_mutex_unlock(&hpfs.auto_lock);
}

/* ---- fanotify: opens of target files ------------------------------------------ */

/* Filesystems that hold no programs or libraries (or are ours): not marked. */
static bool fan_skip_type(const char *type)
{
	static const char *const skip[] = {
		"proc", "sysfs", "cgroup", "cgroup2", "devpts", "mqueue", "debugfs", "tracefs",
		"securityfs", "fusectl", "bpf", "pstore", "configfs", "hugetlbfs", "autofs",
		"binfmt_misc", "efivarfs", "rpc_pipefs", "nsfs", "fuse.hotpatchfs",
	};

	for (size_t i = 0; i < sizeof(skip) / sizeof(skip[0]); i++)
		if (!strcmp(type, skip[i]))
			return true;
	return false;
}

/*
 * Mark every filesystem mounted here for FAN_OPEN (on) or drop the marks
 * (off). A filesystem that cannot report file names (no file handles) is
 * left out: its libraries are seen at exec only. Returns how many were marked.
 */
static int fan_mark_all(bool on)
{
	char line[8192];
	FILE *f;
	int n = 0;

	if (fan_fd < 0)
		return 0;
	if (!on) {
		fanotify_mark(fan_fd, FAN_MARK_FLUSH | FAN_MARK_FILESYSTEM, 0, AT_FDCWD, NULL);
		return 0;
	}
	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -errno;
	/* "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw" */
	while (fgets(line, sizeof(line), f)) {
		char *field[5], *sep, *type, *save = NULL, *p = line;

		for (int i = 0; i < 5; i++, p = NULL)
			field[i] = strtok_r(p, " ", &save);
		sep = field[4] ? strstr(field[4] + strlen(field[4]) + 1, " - ") : NULL;
		if (!field[4] || !sep)
			continue;
		type = strtok_r(sep + 3, " ", &save);
		if (!type || fan_skip_type(type))
			continue;
		if (fanotify_mark(fan_fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM,
				  FAN_OPEN | FAN_OPEN_EXEC, AT_FDCWD, proc_mountinfo_unescape(field[4])) == 0)
			n++;
	}
	fclose(f);
	return n;
}

static int add_name(void *ctx, const struct store_set_info *si)
{
	char ***v = ctx;

	for (size_t i = 0; i < fan_n_names; i++)
		if (!strcmp((*v)[i], si->target))
			return 0;
	{
		char **more = realloc(*v, (fan_n_names + 1) * sizeof(**v));

		if (!more)
			return 0;
		*v = more;
		more[fan_n_names] = strdup(si->target);
		if (more[fan_n_names])
			fan_n_names++;
	}
	return 0;
}

/* The target names with a published set, again when the store's HEAD moved (listener only). */
static void fan_names_refresh(void)
{
	struct ctl_snap *snap = NULL;

	if (ctl_snap_get(hpfs.ctl, false, &snap) < 0)
		return;
	if (strcmp(fan_commit, ctl_snap_commit(snap))) {
		for (size_t i = 0; i < fan_n_names; i++)
			free(fan_names[i]);
		fan_n_names = 0;
		store_list_sets(ctl_snap_store(snap), NULL, NULL, add_name, &fan_names);
		snprintf(fan_commit, sizeof(fan_commit), "%s", ctl_snap_commit(snap));
	}
	ctl_snap_unref(snap);
}

static bool fan_is_target(const char *name)
{
	for (size_t i = 0; i < fan_n_names; i++)
		if (!strcmp(fan_names[i], name))
			return true;
	return false;
}

/* Every process that maps a known target: once, after the kernel lost events. */
static void fan_overflow(void)
{
	pid_t *pids = NULL;
	size_t n = 0;

	if (ctl_list(hpfs.ctl, &pids, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++)
		enqueue(pids[i], true);
	free(pids);
}

/*
 * The events of one read. With names (FAN_REPORT_DFID_NAME) an event's
 * length is a multiple of 4, not 8, so the next event's metadata and info
 * records may sit at an address their types do not allow (UBSan's
 * misaligned access, which killed the daemon in the sanitizer build): each
 * header is copied out before it is read.
 */
static void fan_read(pid_t self)
{
	char buf[16384];
	bool refreshed = false;
	ssize_t n;

	while ((n = read(fan_fd, buf, sizeof(buf))) > 0) {
		size_t off = 0;

		while (off + sizeof(struct fanotify_event_metadata) <= (size_t)n) {
			struct fanotify_event_metadata m;
			const char *ev = buf + off, *end, *p;

			memcpy(&m, ev, sizeof(m));
			if (m.event_len < sizeof(m) || m.event_len > (size_t)n - off ||
			    m.metadata_len < sizeof(m) || m.metadata_len > m.event_len)
				break;
			off += m.event_len;
			end = ev + m.event_len;
			p = ev + m.metadata_len;
			if (m.vers != FANOTIFY_METADATA_VERSION)
				return;
			if (m.mask & FAN_Q_OVERFLOW) {
				fan_overflow();
				continue;
			}
			if (m.pid <= 0 || m.pid == self ||
			    !__atomic_load_n(&hpfs.auto_on, __ATOMIC_RELAXED))
				continue;
			/* the info records: the one with the parent's handle and the name */
			while (p + sizeof(struct fanotify_event_info_header) <= end) {
				struct fanotify_event_info_header hdr;
				struct file_handle fh;
				const size_t fh_at = offsetof(struct fanotify_event_info_fid, handle);
				const char *name;

				memcpy(&hdr, p, sizeof(hdr));
				if (hdr.len < fh_at + sizeof(fh) || hdr.len > (size_t)(end - p))
					break;
				if (hdr.info_type == FAN_EVENT_INFO_TYPE_DFID_NAME) {
					memcpy(&fh, p + fh_at, sizeof(fh));
					name = p + fh_at + sizeof(fh) + fh.handle_bytes;
					if (fh.handle_bytes < hdr.len && name < p + hdr.len &&
					    memchr(name, '\0', (size_t)(p + hdr.len - name))) {
						if (!refreshed) {
							fan_names_refresh();
							refreshed = true;
						}
						/* an exec's own open (FAN_OPEN_EXEC): an exec */
						if (fan_is_target(name))
							enqueue(m.pid, !(m.mask & FAN_OPEN_EXEC));
					}
				}
				p += hdr.len;
			}
		}
	}
}

static void *listener(void *arg)
{
	char buf[8192] __attribute__((aligned(NLMSG_ALIGNTO)));
	pid_t self = getpid();

	for (;;) {
		struct pollfd pfd[3] = { { hpfs.auto_sock, POLLIN, 0 }, { hpfs.auto_stop[0], POLLIN, 0 },
					 { fan_fd, POLLIN, 0 } };
		ssize_t n;

		if (poll(pfd, fan_fd >= 0 ? 3 : 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents)
			break;
		if (fan_fd >= 0 && pfd[2].revents)
			fan_read(self);
		if (!(pfd[0].revents & POLLIN))
			continue;
		n = recv(hpfs.auto_sock, buf, sizeof(buf), MSG_DONTWAIT);
		if (n <= 0) {
			if (n < 0 && (errno == EINTR || errno == ENOBUFS || errno == EAGAIN))
				continue;
			break;
		}
		for (struct nlmsghdr *nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, (size_t)n);
		     nh = NLMSG_NEXT(nh, n)) {
			struct cn_msg *cn = NLMSG_DATA(nh);
			struct proc_event ev;

			if (nh->nlmsg_type == NLMSG_NOOP || nh->nlmsg_type == NLMSG_ERROR)
				continue;
			if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(*cn) + sizeof(ev)))
				continue;
			/* cn->data sits at offset 36: copied out, not read in place (8-byte members). */
			memcpy(&ev, cn->data, sizeof(ev));
			if (ev.what != PROC_EVENT_EXEC)
				continue;
			if (ev.event_data.exec.process_pid != ev.event_data.exec.process_tgid ||
			    ev.event_data.exec.process_tgid == self)
				continue;
			if (__atomic_load_n(&hpfs.auto_on, __ATOMIC_RELAXED))
				enqueue(ev.event_data.exec.process_tgid, false);
		}
	}
	return NULL;
}

/* One look at a new process: apply what is pending; true when it is done with. */
static bool look(struct hpfs_auto_item *it)
{
	struct ctl_result res;
	char extra[64], why[CTL_WHY_SIZE];
	int r;

	/* Turned off meanwhile: let it go (and do not undo a revert made since). */
	if (!__atomic_load_n(&hpfs.auto_on, __ATOMIC_RELAXED))
		return true;
	/* Processes the configuration opts out (exclude-exe, -name, -unit): never touched. */
	if (ctl_excluded(hpfs.ctl, it->pid, why, sizeof(why)))
		return true;
	r = ctl_apply_pending(hpfs.ctl, it->pid, &res);
	if (r == -ESRCH)
		return true;
	if (r == 0 && res.n_sets > 0 && res.changed) {
		snprintf(extra, sizeof(extra), "%s=%llu", it->opened ? "after_open_us" : "after_exec_us",
			 (unsigned long long)(hp_now_us() - it->exec_us));
		hpfs_log_event("auto-apply", 0, it->pid, res.set_id, 0, NULL, true, res.pause_us, extra);
		pthread_mutex_lock(&hpfs.lock);
		hpfs.n_auto++;
		pthread_mutex_unlock(&hpfs.lock);
	}
	it->tries++;
	if (it->tries >= AUTO_TRIES) {
		/* A failure that lasted the whole schedule is worth a line. */
		if (r < 0)
			hpfs_log_event("auto-apply", 0, it->pid, NULL, r, res.msg, false, 0, NULL);
		return true;
	}
	return false;
}

static uint64_t due_us(const struct hpfs_auto_item *it)
{
	return it->exec_us + auto_schedule_ms[it->tries] * 1000ull;
}

static void *worker(void *arg)
{
	pthread_mutex_lock(&hpfs.auto_lock);
	while (!hpfs.auto_stopping) {
		uint64_t now = hp_now_us(), next = UINT64_MAX;
		struct hpfs_auto_item **pp, *it = NULL;

		for (pp = &hpfs.auto_queue; *pp; pp = &(*pp)->next) {
			if (due_us(*pp) <= now) {
				it = *pp;
				*pp = it->next; /* out of the list while we look */
				break;
			}
			if (due_us(*pp) < next)
				next = due_us(*pp);
		}
		if (it) {
			bool done;

			/* Look without the lock: the listener keeps queueing meanwhile. */
			pthread_mutex_unlock(&hpfs.auto_lock);
			done = look(it);
			pthread_mutex_lock(&hpfs.auto_lock);
			if (done) {
				queue_len--;
				free(it);
			} else {
				it->next = hpfs.auto_queue;
				hpfs.auto_queue = it;
			}
			continue;
		}
		if (next == UINT64_MAX) {
			pthread_cond_wait(&hpfs.auto_cond, &hpfs.auto_lock);
		} else {
			struct timespec ts;
			uint64_t wait_us = next - now;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += (time_t)(wait_us / 1000000);
			ts.tv_nsec += (long)(wait_us % 1000000) * 1000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&hpfs.auto_cond, &hpfs.auto_lock, &ts);
		}
	}
	pthread_mutex_unlock(&hpfs.auto_lock);
	return NULL;
}

int hpfs_auto_set(bool on)
{
	int r = 0;

	pthread_mutex_lock(&hpfs.auto_lock);
	if (on && !hpfs.auto_started) {
		r = listen_socket();
		if (r < 0)
			goto out;
		hpfs.auto_sock = r;
		if (pipe2(hpfs.auto_stop, O_CLOEXEC) < 0) {
			r = hp_err(-errno, "auto: pipe: %s", strerror(errno));
			close(hpfs.auto_sock);
			goto out;
		}
		/*
		 * Opens of target files (dlopen): without fanotify (an old kernel,
		 * no CAP_SYS_ADMIN) auto-apply still sees execs, and says so.
		 */
		fan_fd = fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK |
					       FAN_REPORT_DFID_NAME,
				       O_RDONLY | O_CLOEXEC);
		if (fan_fd < 0)
			hp_log(HP_LOG_WARN, "auto: fanotify: %s (libraries loaded after the exec are missed)",
			       strerror(errno));
		hpfs.auto_stopping = false;
		if (pthread_create(&hpfs.auto_listener, NULL, listener, NULL) != 0) {
			r = hp_err(-EAGAIN, "auto: cannot start a thread");
			goto fail_pipe;
		}
		if (pthread_create(&hpfs.auto_worker, NULL, worker, NULL) != 0) {
			r = hp_err(-EAGAIN, "auto: cannot start a thread");
			if (write(hpfs.auto_stop[1], "x", 1) < 0) {
				/* the listener then waits for the next event; nothing better to do */
			}
			pthread_mutex_unlock(&hpfs.auto_lock);
			pthread_join(hpfs.auto_listener, NULL);
			pthread_mutex_lock(&hpfs.auto_lock);
			goto fail_pipe;
		}
		hpfs.auto_started = true;
	}
	if (on != __atomic_load_n(&hpfs.auto_on, __ATOMIC_RELAXED) && fan_mark_all(on) == 0 && on &&
	    fan_fd >= 0)
		hp_log(HP_LOG_WARN, "auto: fanotify: no filesystem could be marked");
	__atomic_store_n(&hpfs.auto_on, on, __ATOMIC_RELAXED);
	r = 0;
	goto out;
fail_pipe:
	close(hpfs.auto_stop[0]);
	close(hpfs.auto_stop[1]);
	close(hpfs.auto_sock);
	if (fan_fd >= 0)
		close(fan_fd);
	fan_fd = -1;
out:
	pthread_mutex_unlock(&hpfs.auto_lock);
	return r;
}

void hpfs_auto_stop(void)
{
	pthread_mutex_lock(&hpfs.auto_lock);
	__atomic_store_n(&hpfs.auto_on, false, __ATOMIC_RELAXED);
	if (!hpfs.auto_started) {
		pthread_mutex_unlock(&hpfs.auto_lock);
		return;
	}
	hpfs.auto_stopping = true;
	pthread_cond_broadcast(&hpfs.auto_cond);
	pthread_mutex_unlock(&hpfs.auto_lock);
	if (write(hpfs.auto_stop[1], "x", 1) < 0) {
		/* the pipe is ours and empty: cannot fail short of a bug */
	}
	pthread_join(hpfs.auto_listener, NULL);
	pthread_join(hpfs.auto_worker, NULL);
	close(hpfs.auto_stop[0]);
	close(hpfs.auto_stop[1]);
	close(hpfs.auto_sock);
	if (fan_fd >= 0)
		close(fan_fd);
	fan_fd = -1;
	for (size_t i = 0; i < fan_n_names; i++)
		free(fan_names[i]);
	free(fan_names);
	fan_names = NULL;
	fan_n_names = 0;
	fan_commit[0] = '\0';
	pthread_mutex_lock(&hpfs.auto_lock);
	hpfs.auto_started = false;
	while (hpfs.auto_queue) {
		struct hpfs_auto_item *it = hpfs.auto_queue;

		hpfs.auto_queue = it->next;
		free(it);
	}
	queue_len = 0;
	pthread_mutex_unlock(&hpfs.auto_lock);
}

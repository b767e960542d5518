/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Auto-apply: the kernel's proc connector (netlink, root only) reports each
 * exec; a worker patches the new process within milliseconds. Its libraries
 * are mapped by ld.so after the exec event, so the worker looks again on a
 * short schedule (about half a second in all) before it lets a process go.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hpfs.h"

#define AUTO_QUEUE_MAX 4096

/* Delays (ms after the exec) of the looks at a new process. */
static const unsigned auto_schedule_ms[] = { 0, 1, 2, 4, 8, 16, 32, 64, 128, 256 };
#define AUTO_TRIES (sizeof(auto_schedule_ms) / sizeof(auto_schedule_ms[0]))

struct hpfs_auto_item {
	pid_t pid;
	uint64_t exec_us;
	unsigned tries;
	struct hpfs_auto_item *next;
};

static size_t queue_len;

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

static void enqueue(pid_t pid)
{
	struct hpfs_auto_item *it;

	pthread_mutex_lock(&hpfs.auto_lock);
	if (queue_len < AUTO_QUEUE_MAX && (it = calloc(1, sizeof(*it)))) {
		it->pid = pid;
		it->exec_us = hp_now_us();
		it->next = hpfs.auto_queue;
		hpfs.auto_queue = it;
		queue_len++;
		pthread_cond_signal(&hpfs.auto_cond);
	}
	pthread_mutex_unlock(&hpfs.auto_lock);
}

static void *listener(void *arg)
{
	char buf[8192] __attribute__((aligned(NLMSG_ALIGNTO)));
	pid_t self = getpid();

	for (;;) {
		struct pollfd pfd[2] = { { hpfs.auto_sock, POLLIN, 0 }, { hpfs.auto_stop[0], POLLIN, 0 } };
		ssize_t n;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents)
			break;
		n = recv(hpfs.auto_sock, buf, sizeof(buf), 0);
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
				enqueue(ev.event_data.exec.process_tgid);
		}
	}
	return NULL;
}

/* One look at a new process: apply what is pending; true when it is done with. */
static bool look(struct hpfs_auto_item *it)
{
	struct ctl_result res;
	char extra[64];
	int r;

	/* Turned off meanwhile: let it go (and do not undo a revert made since). */
	if (!__atomic_load_n(&hpfs.auto_on, __ATOMIC_RELAXED))
		return true;
	r = ctl_apply_pending(hpfs.ctl, it->pid, &res);
	if (r == -ESRCH)
		return true;
	if (r == 0 && res.n_sets > 0 && res.changed) {
		snprintf(extra, sizeof(extra), "after_exec_us=%llu",
			 (unsigned long long)(hp_now_us() - it->exec_us));
		hpfs_log_event("auto-apply", it->pid, res.set_id, 0, NULL, true, res.pause_us, extra);
		pthread_mutex_lock(&hpfs.lock);
		hpfs.n_auto++;
		pthread_mutex_unlock(&hpfs.lock);
	}
	it->tries++;
	if (it->tries >= AUTO_TRIES) {
		/* A failure that lasted the whole schedule is worth a line. */
		if (r < 0)
			hpfs_log_event("auto-apply", it->pid, NULL, r, res.msg, false, 0, NULL);
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
	__atomic_store_n(&hpfs.auto_on, on, __ATOMIC_RELAXED);
	r = 0;
	goto out;
fail_pipe:
	close(hpfs.auto_stop[0]);
	close(hpfs.auto_stop[1]);
	close(hpfs.auto_sock);
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

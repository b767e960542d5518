/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hotpatchfs [--store DIR] [-f] [-o OPTS] [MOUNTPOINT]: the catalog and the
 * control files as a FUSE filesystem (fs/README.md). Multi-threaded; a
 * clean stop on SIGTERM, SIGINT and `fusermount3 -u`.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "hpfs.h"
#include <fuse_lowlevel.h>

#define HPFS_DEFAULT_MOUNT "/hp"
#define HPFS_DEFAULT_BUSY_POLL 200u

struct hpfs hpfs = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.auto_lock = PTHREAD_MUTEX_INITIALIZER,
	.auto_cond = PTHREAD_COND_INITIALIZER,
	.auto_sock = -1,
};

struct cli {
	char *store;
	char *config;
	char *state_dir;
	char *mountpoint;
	unsigned incoming_gid;
	int incoming_gid_set;
	unsigned budget_ms;
	double entry_timeout, attr_timeout;
	unsigned busy_poll_us;
	int busy_poll_set;
	int help;
	int version;
	int seal, noseal;
};

enum { KEY_HELP, KEY_VERSION, KEY_INCOMING_GID, KEY_BUSY_POLL };

static const struct fuse_opt cli_opts[] = {
	{ "--store %s", offsetof(struct cli, store), 0 },
	{ "--store=%s", offsetof(struct cli, store), 0 },
	{ "--config %s", offsetof(struct cli, config), 0 },
	{ "--config=%s", offsetof(struct cli, config), 0 },
	{ "--state-dir %s", offsetof(struct cli, state_dir), 0 },
	{ "--state-dir=%s", offsetof(struct cli, state_dir), 0 },
	{ "incoming_gid=%u", offsetof(struct cli, incoming_gid), 0 },
	FUSE_OPT_KEY("incoming_gid=", KEY_INCOMING_GID),
	/* The safety budget of an apply (fs/README.md, hotpatchfs.8; test-contrib checks they agree). */
	{ "budget_ms=%u", offsetof(struct cli, budget_ms), 0 },
	FUSE_OPT_KEY("budget_ms=", FUSE_OPT_KEY_DISCARD),
	/* Ours, not libfuse's: the low-level session knows no timeouts (ll.c). */
	{ "entry_timeout=%lf", offsetof(struct cli, entry_timeout), 0 },
	FUSE_OPT_KEY("entry_timeout=", FUSE_OPT_KEY_DISCARD),
	{ "attr_timeout=%lf", offsetof(struct cli, attr_timeout), 0 },
	FUSE_OPT_KEY("attr_timeout=", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("negative_timeout=", FUSE_OPT_KEY_DISCARD),
	/* How long the receiving thread looks for the next request before it sleeps (loop.c). */
	{ "busy_poll=%u", offsetof(struct cli, busy_poll_us), 0 },
	FUSE_OPT_KEY("busy_poll=", KEY_BUSY_POLL),
	/* The mount point's immutable flag (common/seal.c): on for /hp unless noseal. */
	{ "seal", offsetof(struct cli, seal), 1 },
	{ "noseal", offsetof(struct cli, noseal), 1 },
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_END
};

static int cli_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct cli *c = data;

	switch (key) {
	case KEY_HELP:
		c->help = 1;
		return 0;
	case KEY_VERSION:
		c->version = 1;
		return 0;
	case KEY_INCOMING_GID:
		c->incoming_gid_set = 1;
		return 0; /* consumed; the value was stored by the template */
	case KEY_BUSY_POLL:
		c->busy_poll_set = 1;
		return 0;
	case FUSE_OPT_KEY_NONOPT:
		if (!c->mountpoint) {
			c->mountpoint = strdup(arg);
			return 1;
		}
		fprintf(stderr, "hotpatchfs: unexpected argument '%s'\n", arg);
		return -1;
	default:
		return 1;
	}
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: hotpatchfs [--store DIR] [--config FILE] [--state-dir DIR] [-f] [-d] [-s]\n"
		"                  [-o OPTS] [MOUNTPOINT]\n"
		"\n"
		"Serves the hotpatch catalog and control files (default mount point %s).\n"
		"  --store DIR          the store (else $HP_STORE, else %s)\n"
		"  --config FILE        the configuration, read at start and on SIGHUP\n"
		"                       (default %s; a missing file: the defaults)\n"
		"  --state-dir DIR      what a restart keeps: the value written to auto, the event\n"
		"                       log (default: the directory holding the store)\n"
		"  -f                   stay in the foreground\n"
		"  -o allow_other       let other users in (they patch only what they could ptrace)\n"
		"  -o incoming_gid=GID  let group GID drop bundles into incoming/ (default root only)\n"
		"  -o budget_ms=MS      how long an apply or revert waits for the switched functions\n"
		"                       to become inactive before it fails with EBUSY (default 1000)\n"
		"  -o entry_timeout=S,attr_timeout=S  kernel caching of names and attributes\n"
		"                       (default 0: always fresh; S > 0 is faster to walk, and names\n"
		"                       such as processes/PID may outlive what they name by S seconds)\n"
		"  -o busy_poll=US      after each request, look for the next one for US microseconds\n"
		"                       before sleeping (default %u; 0: sleep at once)\n"
		"  -o seal, -o noseal   make the mount point immutable (chattr +i) so that a write\n"
		"                       under it fails (EPERM) while the daemon is down (default:\n"
		"                       seal at /hp only)\n",
		HPFS_DEFAULT_MOUNT, STORE_DEFAULT_PATH, CTL_DEFAULT_CONFIG, HPFS_DEFAULT_BUSY_POLL);
}

static void free_list(struct hpfs_file **list)
{
	while (*list) {
		struct hpfs_file *f = *list;

		*list = f->next;
		free(f->name);
		hp_buf_release(&f->data);
		free(f);
	}
}

static void free_files(void)
{
	free_list(&hpfs.tmps);
	free_list(&hpfs.ins);
}

/* ---- policy: auto at start, the configuration again on SIGHUP ----------------- */

/*
 * Auto-apply as the state directory remembers it (a value written to auto
 * since), else as the configuration says, else off. WHY goes to the event.
 */
static void auto_policy(const char *why)
{
	bool on = false, kept = false;
	int d = hpfs_config_auto_default();
	int r;

	r = hpfs_state_auto(&on);
	if (r == 0)
		kept = true;
	else if (r != -ENOENT)
		hp_log(HP_LOG_WARN, "%s", hp_errmsg(r));
	if (!kept)
		on = d == 1;
	if (on == __atomic_load_n(&hpfs.auto_on, __ATOMIC_RELAXED))
		return;
	hp_err_clear();
	r = hpfs_auto_set(on);
	hpfs_log_event(on ? "auto-on" : "auto-off", 0, 0, NULL, r, hp_errmsg(r), false, 0,
		       kept ? "from=state" : why);
}

static struct {
	int fd;          /* eventfd: 1 per SIGHUP, RELOAD_STOP to end */
	pthread_t thread;
	bool started;
} reload = { -1 };

#define RELOAD_STOP (1ull << 32)

static void on_sighup(int sig)
{
	uint64_t one = 1;
	int e = errno;

	if (write(reload.fd, &one, sizeof(one)) < 0) {
		/* the counter is full: a reload is pending anyway */
	}
	errno = e;
}

static void *reload_main(void *arg)
{
	for (;;) {
		uint64_t v;
		int r;

		if (read(reload.fd, &v, sizeof(v)) != sizeof(v)) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			break;
		}
		if (v >= RELOAD_STOP)
			break;
		hp_err_clear();
		r = hpfs_config_load(hpfs.config_path);
		hpfs_log_event("config", 0, 0, NULL, r, hp_errmsg(r), false, 0, NULL);
		if (r < 0)
			hp_log(HP_LOG_WARN, "%s (the configuration in use stays)", hp_errmsg(r));
		else
			auto_policy("from=config");
	}
	return NULL;
}

/* After daemonizing (threads do not survive the fork): SIGHUP reloads the configuration. */
static int reload_start(void)
{
	struct sigaction sa;

	reload.fd = eventfd(0, EFD_CLOEXEC);
	if (reload.fd < 0)
		return -errno;
	if (pthread_create(&reload.thread, NULL, reload_main, NULL) != 0) {
		close(reload.fd);
		reload.fd = -1;
		return -EAGAIN;
	}
	reload.started = true;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sighup;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	return sigaction(SIGHUP, &sa, NULL) < 0 ? -errno : 0;
}

static void reload_stop(void)
{
	uint64_t stop = RELOAD_STOP;

	if (!reload.started)
		return;
	signal(SIGHUP, SIG_IGN);
	if (write(reload.fd, &stop, sizeof(stop)) < 0) {
		/* cannot fail: the counter is below RELOAD_STOP */
	}
	pthread_join(reload.thread, NULL);
	close(reload.fd);
	reload.fd = -1;
	reload.started = false;
}

/*
 * fuse_main() on a low-level session (ll.c), except that a stop asked for by SIGTERM, SIGINT or SIGHUP is
 * a clean exit (status 0), as it is for `fusermount3 -u`.
 */
static int serve(struct fuse_args *args, unsigned busy_poll_us)
{
	struct fuse_cmdline_opts o;
	struct fuse_loop_config *lc = NULL;
	struct fuse_session *se = NULL;
	bool mounted = false, handlers = false;
	int r, status = 1;

	memset(&o, 0, sizeof(o));
	if (fuse_parse_cmdline(args, &o) != 0)
		return 1;
	if (!o.mountpoint) {
		fprintf(stderr, "hotpatchfs: no mount point\n");
		goto out;
	}
	se = fuse_session_new(args, &hpfs_ll_ops, sizeof(hpfs_ll_ops), &hpfs);
	if (!se)
		goto out;
	if (fuse_session_mount(se, o.mountpoint) != 0)
		goto out;
	mounted = true;
	if (fuse_daemonize(o.foreground) != 0)
		goto out;
	if (fuse_set_signal_handlers(se) != 0)
		goto out;
	handlers = true;
	r = hpfs_ll_watch_start(se);
	if (r < 0) {
		fprintf(stderr, "hotpatchfs: cannot start the HEAD watch: %s\n", strerror(-r));
		goto out;
	}
	/* SIGHUP reloads the configuration (libfuse's handler would stop the daemon). */
	r = reload_start();
	if (r < 0) {
		fprintf(stderr, "hotpatchfs: cannot watch for SIGHUP: %s\n", strerror(-r));
		goto out;
	}
	auto_policy("from=config");
	if (o.singlethread) {
		r = fuse_session_loop(se);
	} else if (!o.clone_fd) {
		/* ours: a receiving thread that looks for the next request a
		 * while before sleeping (loop.c) */
		r = hpfs_loop(se, busy_poll_us, o.max_threads != UINT_MAX ? o.max_threads : 0);
	} else {
		lc = fuse_loop_cfg_create();
		if (!lc)
			goto out;
		fuse_loop_cfg_set_clone_fd(lc, o.clone_fd);
		/* UINT_MAX: not given on the command line, libfuse's default stands. */
		if (o.max_idle_threads != UINT_MAX)
			fuse_loop_cfg_set_idle_threads(lc, o.max_idle_threads);
		if (o.max_threads != UINT_MAX)
			fuse_loop_cfg_set_max_threads(lc, o.max_threads);
		r = fuse_session_loop_mt(se, lc);
	}
	hpfs_ll_watch_stop();
	/* The loop returns the number of the signal that stopped it. */
	status = (r == 0 || r == SIGTERM || r == SIGINT) ? 0 : 1;
	if (status)
		fprintf(stderr, "hotpatchfs: the request loop failed: %s\n", strerror(r < 0 ? -r : r));
out:
	reload_stop();
	hpfs_ll_watch_stop();
	if (handlers)
		fuse_remove_signal_handlers(se);
	if (mounted)
		fuse_session_unmount(se);
	if (se)
		fuse_session_destroy(se);
	fuse_loop_cfg_destroy(lc);
	free(o.mountpoint);
	return status;
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct ctl_opts copts;
	struct cli cli;
	char real[PATH_MAX];
	int r, status = 1;

	hp_log_init("hotpatchfs");
	memset(&cli, 0, sizeof(cli));
	if (fuse_opt_parse(&args, &cli, cli_opts, cli_proc) < 0) {
		usage(stderr);
		goto out;
	}
	if (cli.help) {
		usage(stdout);
		status = 0;
		goto out;
	}
	if (cli.version) {
		printf("hotpatchfs %s (libfuse %s)\n", HP_VERSION, fuse_pkgversion());
		status = 0;
		goto out;
	}
	if (!cli.mountpoint) {
		cli.mountpoint = strdup(HPFS_DEFAULT_MOUNT);
		if (!cli.mountpoint || fuse_opt_add_arg(&args, HPFS_DEFAULT_MOUNT) < 0)
			goto out;
		/* The default mount point is ours to create. */
		if (mkdir(HPFS_DEFAULT_MOUNT, 0755) < 0 && errno != EEXIST) {
			fprintf(stderr, "hotpatchfs: mkdir %s: %s\n", HPFS_DEFAULT_MOUNT,
				strerror(errno));
			goto out;
		}
	}
	if (!cli.store) {
		const char *d = store_default_path();

		cli.store = strdup(d);
		if (!cli.store)
			goto out;
	}
	hpfs.store_path = realpath(cli.store, real) ? strdup(real) : strdup(cli.store);
	hpfs.mountpoint = realpath(cli.mountpoint, real) ? strdup(real) : strdup(cli.mountpoint);
	hpfs.incoming_gid_set = cli.incoming_gid_set;
	hpfs.incoming_gid = (gid_t)cli.incoming_gid;
	hpfs.started = time(NULL);
	hpfs.started_us = hp_now_us();
	if (!hpfs.store_path || !hpfs.mountpoint)
		goto out;

	/* The state directory: a bad one is a clear error before mounting. */
	hpfs.config_path = strdup(cli.config ? cli.config : CTL_DEFAULT_CONFIG);
	if (!hpfs.config_path)
		goto out;
	if (cli.state_dir) {
		hpfs.state_dir = realpath(cli.state_dir, real) ? strdup(real) : strdup(cli.state_dir);
	} else {
		char *slash;

		hpfs.state_dir = strdup(hpfs.store_path);
		slash = hpfs.state_dir ? strrchr(hpfs.state_dir, '/') : NULL;
		if (slash)
			*(slash == hpfs.state_dir ? slash + 1 : slash) = '\0';
	}
	if (!hpfs.state_dir)
		goto out;
	if (mkdir(hpfs.state_dir, 0755) < 0 && errno != EEXIST) {
		fprintf(stderr, "hotpatchfs: state directory %s: %s\n", hpfs.state_dir,
			strerror(errno));
		goto out;
	}
	/* syslog(3) only where /dev/log is a stream socket (events.c sends the rest) */
	openlog("hotpatchfs", LOG_PID, LOG_DAEMON);
	r = hpfs_log_open(hpfs.state_dir);
	if (r < 0) {
		fprintf(stderr, "hotpatchfs: %s\n", hp_errmsg(r));
		goto out;
	}

	/* Open the store before mounting: a wrong --store is a clear error, not an empty mount. */
	memset(&copts, 0, sizeof(copts));
	copts.store_path = hpfs.store_path;
	copts.budget_ms = cli.budget_ms;
	copts.watch_head = true;
	r = ctl_new(&copts, &hpfs.ctl);
	if (r < 0) {
		fprintf(stderr, "hotpatchfs: %s\n", hp_errmsg(r));
		goto out;
	}
	/* The configuration: a bad one is a clear error before mounting. */
	r = hpfs_config_load(hpfs.config_path);
	if (r < 0) {
		fprintf(stderr, "hotpatchfs: %s\n", hp_errmsg(r));
		goto out;
	}
	/* Our defaults go first so that the user's -o can override them. */
	hpfs_entry_timeout = cli.entry_timeout;
	hpfs_attr_timeout = cli.attr_timeout;
	if (fuse_opt_insert_arg(&args, 1, "-osubtype=hotpatchfs,fsname=hotpatchfs") < 0)
		goto out;
	/*
	 * Sealed before the mount (the flag is the underlying directory's): a
	 * script writing to apply while we are down or dead gets EPERM (or
	 * ENOTCONN), never a regular file and a false success.
	 */
	if (cli.seal || (!cli.noseal && !strcmp(hpfs.mountpoint, HPFS_DEFAULT_MOUNT))) {
		r = hp_dir_seal(hpfs.mountpoint, true);
		if (r < 0)
			fprintf(stderr, "hotpatchfs: warning: mount point not sealed: %s (while the "
				"daemon is down, a write under it would create a file)\n", hp_errmsg(r));
	}
	status = serve(&args, cli.busy_poll_set ? cli.busy_poll_us : HPFS_DEFAULT_BUSY_POLL);
	hpfs_auto_stop();
out:
	ctl_free(hpfs.ctl);
	hpfs.ctl = NULL;
	free_files();
	hpfs_log_release();
	free(hpfs.config_path);
	free(hpfs.state_dir);
	free(hpfs.store_path);
	free(hpfs.mountpoint);
	free(cli.store);
	free(cli.config);
	free(cli.state_dir);
	free(cli.mountpoint);
	fuse_opt_free_args(&args);
	return status;
}

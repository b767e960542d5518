/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Opening the store: a bare git repository plus its hotpatch config. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "store-int.h"

static pthread_once_t git_once = PTHREAD_ONCE_INIT;
static int git_init_result;

static void git_init_once(void)
{
	git_init_result = git_libgit2_init() < 0 ? -EIO : 0;
}

int store_git_init(void)
{
	pthread_once(&git_once, git_init_once);
	return git_init_result;
}

int store_git_err(int err, const char *what)
{
	const git_error *e = git_error_last();

	return hp_err(err, "%s: %s", what, (e && e->message) ? e->message : "git error");
}

unsigned store_parse_months(const char *s)
{
	unsigned mask = 0;

	if (!s || !*s)
		return 0;
	for (;;) {
		char *end;
		long m;

		if (*s < '0' || *s > '9')
			return 0; /* no sign, space or empty item */
		m = strtol(s, &end, 10);
		if (m < 1 || m > 12)
			return 0;
		mask |= 1u << (m - 1);
		s = end;
		if (!*s)
			return mask;
		if (*s++ != ',')
			return 0;
	}
}

int store_open(const char *path, struct store **ret)
{
	struct store *st = NULL;
	git_config *cfg = NULL;
	git_buf months = GIT_BUF_INIT;
	char cfgpath[PATH_MAX];
	int r, v = 0;

	r = store_git_init();
	if (r < 0)
		return hp_err(r, "libgit2 failed to initialise");
	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->path = strdup(path);
	if (!st->path) {
		r = -ENOMEM;
		goto fail;
	}
	if (git_repository_open_bare(&st->repo, path) < 0) {
		r = hp_err(-ENOENT, "store %s: not a hotpatch store (run hp store init)", path);
		goto fail;
	}
	/*
	 * The repository's own config file only: the store's settings live
	 * there, and a user's global or system config (unreadable, say, for a
	 * reader with another HOME) has no say in them.
	 */
	if (snprintf(cfgpath, sizeof(cfgpath), "%s/config", git_repository_path(st->repo)) >=
		    (int)sizeof(cfgpath) ||
	    git_config_open_ondisk(&cfg, cfgpath) < 0) {
		r = store_git_err(-EIO, "store config");
		goto fail;
	}
	if (git_config_get_bool(&v, cfg, STORE_CFG_ALLOW_UNSIGNED) == 0)
		st->allow_unsigned = v != 0;
	st->baseline_months = store_parse_months(STORE_DEFAULT_BASELINE_MONTHS);
	if (git_config_get_string_buf(&months, cfg, STORE_CFG_BASELINE_MONTHS) == 0) {
		unsigned mask = store_parse_months(months.ptr);

		if (!mask) {
			r = hp_err(-EINVAL, "store %s: bad %s '%s'", path, STORE_CFG_BASELINE_MONTHS,
				   months.ptr);
			goto fail;
		}
		st->baseline_months = mask;
	}
	git_buf_dispose(&months);
	git_config_free(cfg);
	*ret = st;
	return 0;
fail:
	git_buf_dispose(&months);
	git_config_free(cfg);
	store_free(st);
	return r;
}

void store_free(struct store *st)
{
	if (!st)
		return;
	git_repository_free(st->repo);
	free(st->path);
	free(st);
}

const char *store_path(const struct store *st)
{
	return st->path;
}

int store_head(struct store *st, char ret_oid[HP_OID_HEX_SIZE])
{
	git_oid oid;
	int r;

	r = git_reference_name_to_id(&oid, st->repo, "HEAD");
	if (r == GIT_ENOTFOUND || r == GIT_EUNBORNBRANCH) {
		ret_oid[0] = '\0';
		return 0;
	}
	if (r < 0)
		return store_git_err(-EIO, "store HEAD");
	git_oid_tostr(ret_oid, 41, &oid);
	return 0;
}

/* Filesystems where every change is made through this kernel's VFS (statfs f_type). */
static bool local_fs(long type)
{
	switch ((unsigned long)type) {
	case 0xEF53:     /* ext2, ext3, ext4 */
	case 0x58465342: /* xfs */
	case 0x9123683E: /* btrfs */
	case 0xF2F52010: /* f2fs */
	case 0x01021994: /* tmpfs */
		return true;
	default:
		return false;
	}
}

int store_head_watch(struct store *st, int fd)
{
	const uint32_t mask = IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_FROM |
			      IN_MOVED_TO | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF;
	const char *dir = git_repository_path(st->repo), *common, *target, *slash;
	git_reference *head = NULL;
	char path[PATH_MAX];
	struct statfs sf;
	int r = -ENOTSUP;

	common = git_repository_commondir(st->repo);
	if (!dir || !common || strcmp(dir, common) != 0)
		return -ENOTSUP;
	if (statfs(dir, &sf) < 0)
		return -errno;
	if (!local_fs((long)sf.f_type))
		return -ENOTSUP;
	/* the repository's directory first: HEAD re-pointed after this is an event */
	if (inotify_add_watch(fd, dir, mask) < 0)
		return -errno;
	if (git_reference_lookup(&head, st->repo, "HEAD") < 0 ||
	    git_reference_type(head) != GIT_REFERENCE_SYMBOLIC)
		goto out;
	target = git_reference_symbolic_target(head);
	slash = target ? strrchr(target, '/') : NULL;
	if (!slash || strncmp(target, "refs/", 5) != 0 || strstr(target, ".."))
		goto out;
	/* dir ends with '/'; the branch's directory, e.g. refs/heads */
	if (snprintf(path, sizeof(path), "%s%.*s", dir, (int)(slash - target), target) >=
	    (int)sizeof(path))
		goto out;
	r = inotify_add_watch(fd, path, mask) < 0 ? -errno : 0;
out:
	git_reference_free(head);
	return r;
}

int store_init(const char *path, const struct store_init_opts *opts)
{
	git_repository_init_options io = GIT_REPOSITORY_INIT_OPTIONS_INIT;
	git_repository *repo = NULL;
	git_config *cfg = NULL;
	const char *months = opts && opts->baseline_months ? opts->baseline_months
							    : STORE_DEFAULT_BASELINE_MONTHS;
	char lock[PATH_MAX];
	int fd, r = 0;

	r = store_git_init();
	if (r < 0)
		return hp_err(r, "libgit2 failed to initialise");
	if (!store_parse_months(months))
		return hp_err(-EINVAL, "baseline months '%s': expected month numbers 1-12, comma-separated",
			      months);
	if (git_repository_open_bare(&repo, path) == 0) {
		git_repository_free(repo);
		return hp_err(-EEXIST, "store %s: already a store", path);
	}
	io.flags = GIT_REPOSITORY_INIT_BARE | GIT_REPOSITORY_INIT_MKPATH |
		   GIT_REPOSITORY_INIT_NO_REINIT;
	io.initial_head = "main";
	io.description = "hotpatch store: patch sets by baseline and month";
	if (git_repository_init_ext(&repo, path, &io) < 0)
		return store_git_err(-EIO, "store init");
	if (git_repository_config(&cfg, repo) < 0 ||
	    git_config_set_bool(cfg, STORE_CFG_ALLOW_UNSIGNED, opts && opts->allow_unsigned) < 0 ||
	    git_config_set_string(cfg, STORE_CFG_BASELINE_MONTHS, months) < 0) {
		r = store_git_err(-EIO, "store init: config");
		goto out;
	}
	if (snprintf(lock, sizeof(lock), "%s/%s", git_repository_path(repo), STORE_LOCK_FILE) >=
	    (int)sizeof(lock)) {
		r = hp_err(-ENAMETOOLONG, "store %s: path too long", path);
		goto out;
	}
	fd = open(lock, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		r = hp_err(-errno, "store init: %s: %s", lock, strerror(errno));
		goto out;
	}
	close(fd);
out:
	git_config_free(cfg);
	git_repository_free(repo);
	return r;
}

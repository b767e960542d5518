/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Opening the store: a bare git repository plus its hotpatch config. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

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

static unsigned parse_months(const char *s)
{
	unsigned mask = 0;

	while (s && *s) {
		char *end;
		long m = strtol(s, &end, 10);

		if (end == s || m < 1 || m > 12)
			return 0;
		mask |= 1u << (m - 1);
		s = end;
		if (*s == ',')
			s++;
		else if (*s)
			return 0;
	}
	return mask;
}

int store_open(const char *path, struct store **ret)
{
	struct store *st = NULL;
	git_config *cfg = NULL;
	git_buf months = GIT_BUF_INIT;
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
	if (git_repository_config_snapshot(&cfg, st->repo) < 0) {
		r = store_git_err(-EIO, "store config");
		goto fail;
	}
	if (git_config_get_bool(&v, cfg, STORE_CFG_ALLOW_UNSIGNED) == 0)
		st->allow_unsigned = v != 0;
	st->baseline_months = parse_months("1,4,7,10");
	if (git_config_get_string_buf(&months, cfg, STORE_CFG_BASELINE_MONTHS) == 0) {
		unsigned mask = parse_months(months.ptr);

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

int store_head(struct store *st, char ret_oid[41])
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

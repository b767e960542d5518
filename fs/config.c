/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * config.c: hotpatchfs's configuration file (default
 * /etc/hotpatch/hotpatchfs.conf, --config FILE), read at start and again on
 * SIGHUP, and the daemon's state directory (what a restart keeps: the
 * value written to auto, the event log). The file's keys (auto, retries,
 * exclude-exe, exclude-name, exclude-unit) and their parser are libhpctl's
 * policy (ctl/policy.c), which hp reads too; the exclusions go to the ctl
 * context, where "all" and status meet them.
 *
 * A bad file is refused whole: at start the daemon does not start, on
 * SIGHUP the configuration in use stays.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hpfs.h"

#define HPFS_AUTO_FILE "auto"

/* The file's scalars, read by other threads without a lock (each is one word). */
static int config_auto_default = -1;
static unsigned config_retries;

int hpfs_config_load(const char *path)
{
	struct ctl_policy *p = NULL;
	int r;

	r = ctl_policy_load(path, &p);
	if (r < 0)
		return r;
	__atomic_store_n(&config_auto_default, p->auto_default, __ATOMIC_RELAXED);
	__atomic_store_n(&config_retries, p->retries, __ATOMIC_RELAXED);
	ctl_set_policy(hpfs.ctl, p);
	return 0;
}

unsigned hpfs_config_retries(void)
{
	return __atomic_load_n(&config_retries, __ATOMIC_RELAXED);
}

int hpfs_config_auto_default(void)
{
	return __atomic_load_n(&config_auto_default, __ATOMIC_RELAXED);
}

/* ---- the state directory ---------------------------------------------------- */

int hpfs_state_auto(bool *ret)
{
	struct hp_buf b = HP_BUF_INIT;
	char *path = NULL;
	int r;

	if (asprintf(&path, "%s/%s", hpfs.state_dir, HPFS_AUTO_FILE) < 0)
		return -ENOMEM;
	r = hp_read_file(path, 64, &b);
	if (r >= 0) {
		if (b.len >= 1 && (b.data[0] == '0' || b.data[0] == '1'))
			*ret = b.data[0] == '1';
		else
			r = hp_err(-EINVAL, "%s: not 0 or 1", path);
	}
	free(path);
	hp_buf_release(&b);
	return r < 0 ? r : 0;
}

int hpfs_state_auto_save(bool on)
{
	char *path = NULL;
	int r;

	if (asprintf(&path, "%s/%s", hpfs.state_dir, HPFS_AUTO_FILE) < 0)
		return -ENOMEM;
	r = hp_write_file_atomic(path, on ? "1\n" : "0\n", 2, 0644);
	if (r < 0)
		r = hp_err(r, "auto: cannot keep the value in %s: %s", path, strerror(-r));
	free(path);
	return r;
}

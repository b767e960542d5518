/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The per-thread error slot (libgit2's git_error_last model). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "hp-common.h"

static _Thread_local char errmsg[HP_ERRMSG_MAX];
static _Thread_local bool errset;

int hp_err(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errmsg, sizeof(errmsg), fmt, ap);
	va_end(ap);
	errset = true;
	return err;
}

int hp_err_prefix(int err, const char *fmt, ...)
{
	char prefix[HP_ERRMSG_MAX];
	char old[HP_ERRMSG_MAX];
	va_list ap;

	if (errset)
		snprintf(old, sizeof(old), "%s", errmsg);
	else
		snprintf(old, sizeof(old), "%s", strerror(err < 0 ? -err : err));
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	/* Prefix first; the old message fills what is left (truncated if need be). */
	{
		size_t n = strlen(prefix);

		memcpy(errmsg, prefix, n);
		snprintf(errmsg + n, sizeof(errmsg) - n, "%.*s", (int)(sizeof(errmsg) - n - 1), old);
	}
	errset = true;
	return err;
}

const char *hp_errmsg(int err)
{
	if (errset)
		return errmsg;
	return strerror(err < 0 ? -err : err);
}

bool hp_err_isset(void)
{
	return errset;
}

void hp_err_clear(void)
{
	errmsg[0] = '\0';
	errset = false;
}

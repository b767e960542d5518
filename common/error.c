/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The per-thread error slot (libgit2's git_error_last model), tied to the
 * error it explains: the slot keeps the errno its message was written for,
 * and hp_errmsg(err) gives the message only for that errno. A message left
 * behind by an error that was handled (a fallback taken, a process skipped)
 * cannot then explain another error: that one reads as strerror. Public
 * entry points that callers show messages from (apply_*, ctl_*, the fs
 * handlers) clear the slot first, so a message is one of this operation's.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "hp-common.h"

static _Thread_local char errmsg[HP_ERRMSG_MAX];
static _Thread_local int errcode; /* the negative errno errmsg explains; 0: none */

int hp_err(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errmsg, sizeof(errmsg), fmt, ap);
	va_end(ap);
	errcode = err;
	return err;
}

/* The message for err: the slot's when it was written for err, else strerror. */
static const char *msg_for(int err)
{
	if (errcode != 0 && errcode == err)
		return errmsg;
	return strerror(err < 0 ? -err : err);
}

static int vprefix(int err, int cause, const char *fmt, va_list ap)
{
	char prefix[HP_ERRMSG_MAX];
	char old[HP_ERRMSG_MAX];
	size_t n;

	snprintf(old, sizeof(old), "%s", msg_for(cause));
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	/* Prefix first; the old message fills what is left (truncated if need be). */
	n = strlen(prefix);
	memcpy(errmsg, prefix, n);
	snprintf(errmsg + n, sizeof(errmsg) - n, "%.*s", (int)(sizeof(errmsg) - n - 1), old);
	errcode = err;
	return err;
}

int hp_err_prefix(int err, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vprefix(err, err, fmt, ap);
	va_end(ap);
	return r;
}

int hp_err_prefix_as(int err, int cause, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vprefix(err, cause, fmt, ap);
	va_end(ap);
	return r;
}

const char *hp_errmsg(int err)
{
	return msg_for(err);
}

bool hp_err_isset(void)
{
	return errcode != 0;
}

void hp_err_clear(void)
{
	errmsg[0] = '\0';
	errcode = 0;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Logging for the programs (hp, hotpatchfs); libraries never print. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hp-common.h"

static const char *prog = "hotpatch";
static enum hp_log_level threshold = HP_LOG_INFO;

void hp_log_init(const char *progname)
{
	const char *d = getenv("HP_DEBUG");

	if (progname) {
		const char *slash = strrchr(progname, '/');

		prog = slash ? slash + 1 : progname;
	}
	threshold = (d && *d && strcmp(d, "0") != 0) ? HP_LOG_DEBUG : HP_LOG_INFO;
}

void hp_log(enum hp_log_level lvl, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	char line[1024];
	va_list ap;

	if (lvl > threshold)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (lvl == HP_LOG_INFO)
		fprintf(stderr, "%s: %s\n", prog, line);
	else
		fprintf(stderr, "%s: %s: %s\n", prog, names[lvl], line);
}

uint64_t hp_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The control-file grammar (ctl/parse.c): what a write to apply, revert or
 * auto holds. What it accepts must be a command within its bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const struct ctl_cmd *c)
{
	if (c->kind == CTL_CMD_PID && (c->pid < 1 || c->pid > 4194304))
		abort();
	if (c->month[0] && !hp_valid_month(c->month))
		abort();
	if (c->kind == CTL_CMD_ALL && c->target[0] && (strchr(c->target, '/') ||
						      !strcmp(c->target, "..")))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl_cmd c;
	bool on;

	if (ctl_parse_apply((const char *)data, size, &c) == 0)
		check(&c);
	if (ctl_parse_revert((const char *)data, size, &c) == 0) {
		check(&c);
		if (c.month[0] || c.target[0])
			abort();
	}
	(void)ctl_parse_bool((const char *)data, size, &on);
	hp_err_clear();
	return 0;
}

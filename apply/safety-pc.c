/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * TEMPORARY: a program-counter-only safety check, used until safety.c
 * (every thread's PC and libunwind-unwound stack) lands on main. It misses
 * threads due to return into a switched function. meson.build builds this
 * file only when safety.c is absent.
 */
#include <errno.h>
#include <inttypes.h>

#include "apply-int.h"

int safety_check(pid_t pid, const pid_t *tids, size_t n_tids, const struct safety_range *ranges,
		 size_t n_ranges)
{
	for (size_t i = 0; i < n_tids; i++) {
		struct ptr_thread t = { .tid = tids[i] };
		int r = arch_getregs(&t);

		if (r < 0)
			return hp_err(r == -ESRCH ? -ESRCH : r, "thread %d: read registers: %d",
				      (int)tids[i], r);
		for (size_t k = 0; k < n_ranges; k++)
			if (t.pc >= ranges[k].start && t.pc < ranges[k].end)
				return hp_err(-EBUSY, "function %s active in thread %d", ranges[k].name,
					      (int)tids[i]);
	}
	(void)pid;
	return 0;
}

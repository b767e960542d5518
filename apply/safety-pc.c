/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * TEMPORARY: a crude safety check, used until safety.c (every thread's PC
 * and libunwind-unwound stack, the safety engineer's) lands on main;
 * meson.build builds this file only when safety.c is absent.
 *
 * It checks each thread's PC, and instead of unwinding it scans the top
 * STACK_SCAN bytes of the stack for any word inside a range: conservative
 * (a stale word makes it unsafe) and blind to deeper frames.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

#include "apply-int.h"

#define STACK_SCAN 2048

static const struct safety_range *hit(uint64_t v, const struct safety_range *ranges, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (v >= ranges[k].start && v < ranges[k].end)
			return &ranges[k];
	return NULL;
}

int safety_check(pid_t pid, const pid_t *tids, size_t n_tids, const struct safety_range *ranges,
		 size_t n_ranges)
{
	char path[64];
	int fd, r = 0;

	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return hp_err(-ESRCH, "process %d: no such process", (int)pid);
	for (size_t i = 0; i < n_tids && r == 0; i++) {
		struct ptr_thread t = { .tid = tids[i] };
		uint64_t stack[STACK_SCAN / 8];
		const struct safety_range *h;
		ssize_t n;

		r = arch_getregs(&t);
		if (r < 0) {
			r = hp_err(r, "thread %d: read registers: %d", (int)tids[i], r);
			break;
		}
		h = hit(t.pc, ranges, n_ranges);
		n = pread(fd, stack, sizeof(stack), (off_t)t.sp);
		for (ssize_t k = 0; !h && n > 0 && k < n / 8; k++)
			h = hit(stack[k], ranges, n_ranges);
		if (h)
			r = hp_err(-EBUSY, "function %s active in thread %d", h->name, (int)tids[i]);
	}
	close(fd);
	return r;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * apply-int.h: what the files of libhpapply share. The engine's modules:
 * proc.c (maps, build-ids from the process, start time), ptr.c (stop the
 * world, resume), arch-x86_64.c (jump encoding, syscall injection,
 * registers), load.c (map + relocate the patch object), safety.c (is any
 * thread in or due to return into a switched function), engine.c (the
 * apply / replace / revert state machine), region.c (patch-region header).
 */
#ifndef HP_APPLY_INT_H
#define HP_APPLY_INT_H

#include <stdint.h>
#include <sys/types.h>

#include "apply.h"

/* ---- safety.c ------------------------------------------------------------ */

/* An address range [start, end) whose code is being switched. */
struct safety_range {
	uint64_t start;
	uint64_t end;
	const char *name; /* function name, for the message */
};

/*
 * Every thread in tids[] is in a ptrace-stop. Returns 0 when no thread's
 * program counter lies in any range and no return address on any thread's
 * unwound stack does; -EBUSY otherwise with the error slot set to
 * "function NAME active in thread TID". Other negative errnos for failures
 * to inspect (-ESRCH a thread vanished). An unwinding that stops early
 * (no unwind info for a frame) is treated as unsafe only when the frames
 * it could not see may hold a range address: see safety.c.
 */
int safety_check(pid_t pid, const pid_t *tids, size_t n_tids,
		 const struct safety_range *ranges, size_t n_ranges);

#endif

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The build-id note parser (proc_notes_build_id in apply/proc.c): what the
 * engine reads from a PT_NOTE segment of an object mapped in a process,
 * which that process's owner controls.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "apply-int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char out[129];

	memset(out, 'x', sizeof(out));
	if (proc_notes_build_id(data, size, out) == 0 &&
	    (strnlen(out, sizeof(out)) == sizeof(out) || !hp_valid_build_id(out)))
		abort();
	hp_err_clear();
	return 0;
}

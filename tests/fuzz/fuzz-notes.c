/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The build-id note parser (hp_elf_notes_build_id, common/elf-facts.c): what
 * the engine reads from a PT_NOTE segment of an object mapped in a process,
 * which that process's owner controls, and from a patch object.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "elf-facts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char out[HP_BUILD_ID_HEX_SIZE + 1];

	memset(out, 'x', sizeof(out));
	if (hp_elf_notes_build_id(data, size, out) == 0 &&
	    (strnlen(out, sizeof(out)) == sizeof(out) || !hp_valid_build_id(out)))
		abort();
	hp_err_clear();
	return 0;
}

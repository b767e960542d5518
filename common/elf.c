/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* elf.c: the ELF and machine facts of hp-elf.h (one build-id note parser). */
#include <elf.h>
#include <errno.h>
#include <gelf.h>
#include <string.h>

#include "elf-facts.h"
#include "hp-elf.h"

int hp_elf_build_id(Elf *elf, char ret_hex[HP_BUILD_ID_HEX_MAX])
{
	Elf_Scn *scn = NULL;
	size_t nph = 0;

	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE)
			continue;
		d = elf_rawdata(scn, NULL);
		if (d && d->d_buf && hp_elf_notes_build_id(d->d_buf, d->d_size, ret_hex) == 0)
			return 0;
	}
	if (elf_getphdrnum(elf, &nph) < 0)
		return -ENOENT;
	for (size_t i = 0; i < nph; i++) {
		GElf_Phdr ph;
		Elf_Data *d;

		if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_NOTE)
			continue;
		d = elf_getdata_rawchunk(elf, (int64_t)ph.p_offset, ph.p_filesz, ELF_T_BYTE);
		if (d && d->d_buf && hp_elf_notes_build_id(d->d_buf, d->d_size, ret_hex) == 0)
			return 0;
	}
	return -ENOENT;
}

bool hp_x86_64_reloc_applied(unsigned type)
{
	switch (type) {
	case R_X86_64_NONE:
	case R_X86_64_64:
	case R_X86_64_PC32:
	case R_X86_64_GLOB_DAT:
	case R_X86_64_JUMP_SLOT:
	case R_X86_64_RELATIVE:
		return true;
	default:
		return false;
	}
}

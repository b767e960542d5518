/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Build-id of an ELF file on disk, through libelf. */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <string.h>
#include <unistd.h>

#include "apply.h"
#include "elf-facts.h"

int apply_file_build_id(const char *path, char ret_hex[HP_BUILD_ID_HEX_SIZE])
{
	Elf *elf = NULL;
	Elf_Scn *scn = NULL;
	int fd, r = -ENOEXEC;

	if (elf_version(EV_CURRENT) == EV_NONE)
		return hp_err(-ENOEXEC, "libelf: %s", elf_errmsg(-1));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return hp_err(-errno, "open %s: %s", path, strerror(errno));
	elf = elf_begin(fd, ELF_C_READ, NULL);
	if (!elf || elf_kind(elf) != ELF_K_ELF) {
		r = hp_err(-ENOEXEC, "%s: not an ELF file", path);
		goto out;
	}
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE)
			continue;
		/* libelf hands the notes over in this machine's byte order */
		d = elf_getdata(scn, NULL);
		if (d && d->d_buf && hp_elf_notes_build_id(d->d_buf, d->d_size, ret_hex) == 0) {
			r = 0;
			goto out;
		}
	}
	r = hp_err(-ENOEXEC, "%s: no GNU build-id", path);
out:
	if (elf)
		elf_end(elf);
	close(fd);
	return r;
}

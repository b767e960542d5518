/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Build-id of an ELF file on disk, through libelf. */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <string.h>
#include <unistd.h>

#include "apply.h"

int apply_file_build_id(const char *path, char ret_hex[129])
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
		GElf_Nhdr nh;
		size_t off = 0, noff, doff;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE)
			continue;
		d = elf_getdata(scn, NULL);
		if (!d)
			continue;
		while ((off = gelf_getnote(d, off, &nh, &noff, &doff)) > 0) {
			const unsigned char *p = (const unsigned char *)d->d_buf + doff;

			if (nh.n_type != NT_GNU_BUILD_ID || nh.n_namesz != 4 ||
			    memcmp((const char *)d->d_buf + noff, "GNU", 4) != 0)
				continue;
			if (nh.n_descsz == 0 || nh.n_descsz > 64)
				continue;
			for (size_t i = 0; i < nh.n_descsz; i++) {
				static const char hex[] = "0123456789abcdef";

				ret_hex[2 * i] = hex[p[i] >> 4];
				ret_hex[2 * i + 1] = hex[p[i] & 15];
			}
			ret_hex[2 * nh.n_descsz] = '\0';
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

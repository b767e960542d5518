/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ELF facts read in one place (elf-facts.h). */
#include <errno.h>
#include <string.h>

#include "elf-facts.h"

int hp_elf_notes_build_id(const void *notes, size_t len, char ret_hex[HP_BUILD_ID_HEX_SIZE])
{
	static const char hex[] = "0123456789abcdef";
	const uint8_t *p = notes;
	size_t off = 0;

	while (off + sizeof(Elf64_Nhdr) <= len) {
		Elf64_Nhdr nh;
		size_t name_sz, desc_sz;

		memcpy(&nh, p + off, sizeof(nh));
		off += sizeof(nh);
		/* name and descriptor are each padded to 4 bytes (gABI, "Note Section") */
		name_sz = ((size_t)nh.n_namesz + 3u) & ~(size_t)3u;
		desc_sz = ((size_t)nh.n_descsz + 3u) & ~(size_t)3u;
		if (name_sz > len - off || desc_sz > len - off - name_sz)
			return -ENOENT;
		if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
		    memcmp(p + off, "GNU", 4) == 0 && nh.n_descsz > 0 &&
		    nh.n_descsz <= HP_BUILD_ID_MAX_BYTES) {
			const uint8_t *d = p + off + name_sz;

			for (size_t i = 0; i < nh.n_descsz; i++) {
				ret_hex[2 * i] = hex[d[i] >> 4];
				ret_hex[2 * i + 1] = hex[d[i] & 15];
			}
			ret_hex[2 * nh.n_descsz] = '\0';
			return 0;
		}
		off += name_sz + desc_sz;
	}
	return -ENOENT;
}

int hp_elf_headers_read(hp_elf_mem_read_fn read, void *ctx, uint64_t base, uint64_t avail,
			Elf64_Ehdr *ret_eh, Elf64_Phdr ret_ph[HP_ELF_PHDR_MAX])
{
	Elf64_Ehdr eh;
	size_t nph;
	int r;

	if (avail < sizeof(eh))
		return -ENOEXEC;
	r = read(ctx, base, &eh, sizeof(eh));
	if (r < 0)
		return r;
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    (eh.e_type != ET_DYN && eh.e_type != ET_EXEC) || eh.e_phentsize != sizeof(Elf64_Phdr))
		return -ENOEXEC;
	nph = eh.e_phnum;
	if (nph == 0 || nph > HP_ELF_PHDR_MAX || eh.e_phoff > avail ||
	    nph * sizeof(Elf64_Phdr) > avail - eh.e_phoff)
		return -ENOEXEC;
	r = read(ctx, base + eh.e_phoff, ret_ph, nph * sizeof(Elf64_Phdr));
	if (r < 0)
		return r;
	*ret_eh = eh;
	return (int)nph;
}

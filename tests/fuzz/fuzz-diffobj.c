/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The ELF files hp build reads (author/): any bytes as BIN or as an object
 * the compiler wrote. As BIN: its symbols (bin_syms_load), what its DWARF
 * says (dw_info_load), the registers its first functions write
 * (clobber_writes, Capstone underneath). As a relocatable object (ET_REL,
 * what hp build --diff compiles before and after the fix): its sections,
 * relocations and symbols (diff_obj_load), and its functions compared with
 * each other modulo relocations (diff_func_cmp, which follows relocations
 * into strings, constants and anonymous sections). A function must compare
 * the same as itself when its relocations do.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "author-int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Functions of one input compared pairwise, and decoded for clobbers. */
#define FUZZ_FUNCS 24
#define FUZZ_CLOBBER_FUNCS 4

static void as_object(const char *path)
{
	struct obj o;
	size_t funcs[FUZZ_FUNCS], nf = 0;

	if (diff_obj_load(path, &o) < 0)
		return;
	for (size_t i = 1; i < o.n_syms && nf < FUZZ_FUNCS; i++)
		if (GELF_ST_TYPE(o.syms[i].st.st_info) == STT_FUNC &&
		    o.syms[i].st.st_shndx != SHN_UNDEF && o.syms[i].st.st_shndx < o.n_secs)
			funcs[nf++] = i;
	for (size_t i = 0; i < nf; i++)
		for (size_t k = 0; k < nf; k++) {
			bool same_relocs;
			int same = diff_func_cmp(&o, funcs[i], &o, funcs[k], &same_relocs);

			if (i == k && same_relocs && same != 1)
				abort(); /* the same bytes, the same relocations */
		}
	diff_obj_release(&o);
}

static void as_bin(const char *path)
{
	struct author_elf ef = AUTHOR_ELF_INIT;
	struct bin_syms bs;
	struct dw_info di;
	size_t done = 0;

	memset(&di, 0, sizeof(di));
	if (dw_info_load(path, &di) == 0)
		dw_info_release(&di);
	if (author_elf_open(path, &ef) < 0)
		return;
	if (bin_syms_load(&ef, &bs) == 0) {
		for (size_t i = 0; i < bs.n; i++) {
			uint64_t mask;

			if (bin_syms_first(&bs, bs.v[i].name) > i)
				abort(); /* sorted by name: the first of a name comes first */
			if (bs.v[i].type != STT_FUNC || done >= FUZZ_CLOBBER_FUNCS)
				continue;
			done++;
			(void)clobber_writes(ef.elf, NULL, bs.v[i].value, bs.v[i].size, &mask);
		}
		bin_syms_release(&bs);
	}
	author_elf_close(&ef);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static char path[64];

	if (fd < 0) {
		fd = memfd_create("fuzz-diffobj", MFD_CLOEXEC);
		if (fd < 0)
			abort();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	as_object(path);
	as_bin(path);
	hp_err_clear();
	return 0;
}

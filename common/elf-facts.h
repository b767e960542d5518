/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * elf-facts.h: facts about ELF objects that more than one part needs,
 * each read in one place: the GNU build-id in a note area (from a file
 * through libelf's data, from a process's memory, from a patch object),
 * and the ELF and program headers of an object mapped in a process, read
 * through the caller's memory reader with one limit. Files on disk are
 * read with libelf by the callers; these helpers see bytes only.
 */
#ifndef HP_ELF_FACTS_H
#define HP_ELF_FACTS_H

#include <elf.h>
#include <stddef.h>
#include <stdint.h>

#include "hp-common.h"

/* Longest GNU build-id accepted, in bytes (ld's sha1 is 20, md5 16). */
#define HP_BUILD_ID_MAX_BYTES 64

/*
 * The GNU build-id in a note area (the bytes of a PT_NOTE segment or an
 * SHT_NOTE section, native byte order, 4-byte aligned entries) as lowercase
 * hex. 0, or -ENOENT (no message) when the area has none or is malformed.
 */
int hp_elf_notes_build_id(const void *notes, size_t len, char ret_hex[HP_BUILD_ID_HEX_SIZE]);

/*
 * Most program headers read from an object in memory. Linkers emit about
 * a dozen; the bound keeps a hostile header from making us read more.
 */
#define HP_ELF_PHDR_MAX 64

/* Read len bytes at addr of some process: 0 or a negative errno. */
typedef int (*hp_elf_mem_read_fn)(void *ctx, uint64_t addr, void *buf, size_t len);

/*
 * The ELF header and program headers of a loaded (ET_DYN or ET_EXEC)
 * 64-bit object whose header is at base, with at most avail bytes mapped
 * from base. Returns the number of program headers (1..HP_ELF_PHDR_MAX),
 * or -ENOEXEC (no message) when the bytes there are not such an object or
 * break a bound, or the reader's error.
 */
int hp_elf_headers_read(hp_elf_mem_read_fn read, void *ctx, uint64_t base, uint64_t avail,
			Elf64_Ehdr *ret_eh, Elf64_Phdr ret_ph[HP_ELF_PHDR_MAX]);

#endif

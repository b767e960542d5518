/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests: common/elf.c, the ELF facts the engine and hp build share.
 * The note parser on hand-made note areas (good, several notes, truncated,
 * foreign owner, empty and oversized descriptors) and, through libelf, on
 * this test's own executable against what its loaded PT_NOTE says.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "hp-elf.h"

/* Append one note (name padded, descriptor padded) at buf + *len. */
static void note_add(uint8_t *buf, size_t *len, uint32_t type, const char *name,
		     const uint8_t *desc, uint32_t descsz)
{
	Elf64_Nhdr nh = { (uint32_t)strlen(name) + 1, descsz, type };

	memcpy(buf + *len, &nh, sizeof(nh));
	*len += sizeof(nh);
	memcpy(buf + *len, name, nh.n_namesz);
	*len += (nh.n_namesz + 3u) & ~3u;
	memcpy(buf + *len, desc, descsz);
	*len += (descsz + 3u) & ~3u;
}

static void test_notes(void **state)
{
	uint8_t buf[512] = { 0 }, id[20], big[68] = { 0 };
	char hex[HP_BUILD_ID_HEX_MAX];
	size_t len = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(id); i++)
		id[i] = (uint8_t)(0xa0 + i);
	/* An ABI tag first, then a build-id owned by someone else, then ours. */
	note_add(buf, &len, NT_GNU_ABI_TAG, "GNU", (const uint8_t *)"\0\0\0\0\3\0\0\0\2\0\0\0\0\0\0\0", 16);
	note_add(buf, &len, NT_GNU_BUILD_ID, "XYZ", id, sizeof(id));
	assert_int_equal(hp_elf_notes_build_id(buf, len, hex), -ENOENT);
	note_add(buf, &len, NT_GNU_BUILD_ID, "GNU", id, sizeof(id));
	assert_int_equal(hp_elf_notes_build_id(buf, len, hex), 0);
	assert_string_equal(hex, "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3");
	/* Cut inside the last descriptor: not read past len. */
	assert_int_equal(hp_elf_notes_build_id(buf, len - 1, hex), -ENOENT);
	assert_int_equal(hp_elf_notes_build_id(buf, 3, hex), -ENOENT);
	assert_int_equal(hp_elf_notes_build_id(buf, 0, hex), -ENOENT);

	/* Empty and oversized (65 bytes) descriptors are no build-id. */
	len = 0;
	note_add(buf, &len, NT_GNU_BUILD_ID, "GNU", id, 0);
	assert_int_equal(hp_elf_notes_build_id(buf, len, hex), -ENOENT);
	len = 0;
	note_add(buf, &len, NT_GNU_BUILD_ID, "GNU", big, 65);
	assert_int_equal(hp_elf_notes_build_id(buf, len, hex), -ENOENT);
	/* A size field that points past the area. */
	len = 0;
	note_add(buf, &len, NT_GNU_BUILD_ID, "GNU", id, sizeof(id));
	((Elf64_Nhdr *)buf)->n_descsz = 0xfffffff0u;
	assert_int_equal(hp_elf_notes_build_id(buf, len, hex), -ENOENT);
}

static int self_note(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type == PT_NOTE &&
		    hp_elf_notes_build_id((const void *)(info->dlpi_addr + ph->p_vaddr), ph->p_filesz,
					  data) == 0)
			return 1;
	}
	return 1; /* the first object is the executable */
}

static void test_file(void **state)
{
	char mem[HP_BUILD_ID_HEX_MAX] = "", file[HP_BUILD_ID_HEX_MAX] = "";
	Elf *elf;
	int fd;

	(void)state;
	dl_iterate_phdr(self_note, mem);
	assert_true(mem[0] != '\0');
	assert_int_not_equal(elf_version(EV_CURRENT), EV_NONE);
	fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	elf = elf_begin(fd, ELF_C_READ, NULL);
	assert_non_null(elf);
	assert_int_equal(hp_elf_build_id(elf, file), 0);
	assert_string_equal(file, mem);
	elf_end(elf);
	close(fd);
}

static void test_facts(void **state)
{
	(void)state;
	assert_int_equal(HP_X86_64_JUMP_LEN, 5);
	assert_true(hp_x86_64_reloc_applied(R_X86_64_RELATIVE));
	assert_true(hp_x86_64_reloc_applied(R_X86_64_PC32));
	assert_false(hp_x86_64_reloc_applied(R_X86_64_TPOFF64));
	assert_false(hp_x86_64_reloc_applied(R_X86_64_IRELATIVE));
	assert_false(hp_x86_64_reloc_applied(R_X86_64_32));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_notes),
		cmocka_unit_test(test_file),
		cmocka_unit_test(test_facts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

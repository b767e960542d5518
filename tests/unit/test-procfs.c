/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests: the process facts (common/procfs.c) and the ELF facts (common/elf-facts.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "elf-facts.h"
#include "hp-procfs.h"

/* Above the kernel's PID_MAX_LIMIT (4194304): never a process. */
#define NO_SUCH_PID 4194305

static void map_line(void **state)
{
	char l1[] = "55d0c4a00000-55d0c4a21000 r-xp 00002000 fd:01 1835041                    /usr/bin/x y (deleted)";
	char l2[] = "7ffd1e9f1000-7ffd1e9f3000 r--p 00000000 00:00 0                          [vvar]";
	char l3[] = "7f0000000000-7f0000001000 rw-s 00000000 00:05 12";
	char bad1[] = "55d0c4a00000-55d0c4a21000 r-xp 00002000 fd:01";
	char bad2[] = "55d0c4a21000-55d0c4a00000 r-xp 00000000 00:00 0";
	char bad3[] = "55d0c4a00000 55d0c4a21000 r-xp 00000000 00:00 0";
	char bad4[] = "55d0c4a00000-55d0c4a21000 r-xp 00000000 00:00 x";
	struct proc_map m;

	assert_int_equal(proc_map_parse_line(l1, &m), 0);
	assert_true(m.start == 0x55d0c4a00000ull && m.end == 0x55d0c4a21000ull);
	assert_true(m.offset == 0x2000 && m.inode == 1835041);
	assert_int_equal(m.dev_major, 0xfd);
	assert_int_equal(m.dev_minor, 1);
	assert_int_equal(m.prot, PROT_READ | PROT_EXEC);
	assert_false(m.shared);
	assert_string_equal(m.path, "/usr/bin/x y (deleted)");

	assert_int_equal(proc_map_parse_line(l2, &m), 0);
	assert_string_equal(m.path, "[vvar]");
	assert_int_equal(m.prot, PROT_READ);

	assert_int_equal(proc_map_parse_line(l3, &m), 0);
	assert_null(m.path);
	assert_true(m.shared);
	assert_int_equal(m.prot, PROT_READ | PROT_WRITE);
	assert_true(m.inode == 12);

	assert_int_equal(proc_map_parse_line(bad1, &m), -EINVAL);
	assert_int_equal(proc_map_parse_line(bad2, &m), -EINVAL);
	assert_int_equal(proc_map_parse_line(bad3, &m), -EINVAL);
	assert_int_equal(proc_map_parse_line(bad4, &m), -EINVAL);
}

static void maps_of_self(void **state)
{
	struct proc_maps maps;
	const struct proc_map *m;

	assert_int_equal(proc_maps_read(getpid(), &maps), 0);
	m = proc_maps_find(&maps, (uint64_t)(uintptr_t)&maps_of_self);
	assert_non_null(m);
	assert_true(m->prot & PROT_EXEC);
	assert_non_null(m->path);
	assert_non_null(strstr(m->path, "test-procfs"));
	assert_null(proc_maps_find(&maps, 0));
	proc_maps_release(&maps);
	proc_maps_release(NULL);

	hp_err_clear();
	assert_int_equal(proc_maps_read(NO_SUCH_PID, &maps), -ESRCH);
	assert_string_equal(hp_errmsg(-ESRCH), "read /proc/4194305/maps: No such process");
}

/* The descriptor the mappings were read from, kept: it reads them again. */
static void maps_kept(void **state)
{
	struct proc_maps maps;
	char first[64];
	ssize_t n;
	int fd = 7;

	assert_int_equal(proc_maps_read_keep(getpid(), &maps, &fd), 0);
	assert_true(fd >= 0);
	assert_true(maps.n > 0);
	n = pread(fd, first, sizeof(first) - 1, 0);
	assert_true(n > 0);
	first[n] = '\0';
	assert_true(strtoull(first, NULL, 16) == maps.v[0].start);
	close(fd);
	proc_maps_release(&maps);

	fd = 7;
	hp_err_clear();
	assert_int_equal(proc_maps_read_keep(NO_SUCH_PID, &maps, &fd), -ESRCH);
	assert_int_equal(fd, -1);
	assert_string_equal(hp_errmsg(-ESRCH), "read /proc/4194305/maps: No such process");
}

static void stat_text(void **state)
{
	/* a name with spaces and parentheses: the fields follow the last ')' */
	const char *t = "42 (a) (b c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 98765 "
			"1000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
	struct proc_stat_fields s;

	assert_int_equal(proc_stat_parse(t, &s), 0);
	assert_int_equal(s.state, 'S');
	assert_true(s.flags == 4194560);
	assert_int_equal(s.num_threads, 3);
	assert_true(s.start_time == 98765);
	assert_string_equal(s.comm, "a) (b c");
	assert_int_equal(proc_stat_parse("42 (x) S 1 2 3", &s), -EIO);
	assert_int_equal(proc_stat_parse("42 x S 1 2 3", &s), -EIO);
	assert_int_equal(proc_stat_parse("", &s), -EIO);
}

static void stat_of_self(void **state)
{
	struct proc_stat_fields s, k;
	uint64_t st;
	char c;

	assert_int_equal(proc_stat_read(getpid(), &s), 0);
	assert_int_equal(s.state, 'R');
	assert_false(s.flags & PROC_PF_KTHREAD);
	assert_int_equal(s.num_threads, 1);
	assert_string_equal(s.comm, "test-procfs");
	/* kthreadd, where the PID namespace is the host's */
	if (proc_stat_read(2, &k) == 0 && strcmp(k.comm, "kthreadd") == 0)
		assert_true(k.flags & PROC_PF_KTHREAD);
	assert_int_equal(proc_stat(getpid(), &c, &st), 0);
	assert_int_equal(c, 'R');
	assert_true(st == s.start_time);
	assert_int_equal(proc_thread_count(getpid()), 1);
	assert_int_equal(proc_task_state(getpid(), getpid(), &c), 0);
	assert_int_equal(c, 'R');
	assert_int_equal(proc_live_tid(getpid()), getpid());

	hp_err_clear();
	assert_int_equal(proc_stat_read(NO_SUCH_PID, &s), -ESRCH);
	assert_string_equal(hp_errmsg(-ESRCH), "process 4194305: no such process");
	assert_int_equal(proc_thread_count(NO_SUCH_PID), -1);
	assert_int_equal(proc_task_state(NO_SUCH_PID, NO_SUCH_PID, &c), -ESRCH);
	assert_int_equal(proc_live_tid(NO_SUCH_PID), 0);
}

/* mountinfo's octal escapes: a blank, a tab, a backslash, a newline; a bad escape stays. */
static void mountinfo_unescape(void **state)
{
	char a[] = "/mnt/a\\040b\\011c\\134d\\012", b[] = "/x\\09\\4000\\", c[] = "";

	assert_string_equal(proc_mountinfo_unescape(a), "/mnt/a b\tc\\d\n");
	assert_string_equal(proc_mountinfo_unescape(b), "/x\\09\\4000\\");
	assert_string_equal(proc_mountinfo_unescape(c), "");
}

static void page_size(void **state)
{
	assert_int_equal(HP_PAGE_SIZE, sysconf(_SC_PAGESIZE));
}

/* One note: header, name padded to 4, descriptor padded to 4. */
static size_t put_note(uint8_t *p, uint32_t type, const char *name, const uint8_t *desc,
		       uint32_t descsz)
{
	Elf64_Nhdr nh = { (uint32_t)strlen(name) + 1, descsz, type };
	size_t n = sizeof(nh);

	memcpy(p, &nh, sizeof(nh));
	memset(p + n, 0, (nh.n_namesz + 3u) & ~3u);
	memcpy(p + n, name, nh.n_namesz);
	n += (nh.n_namesz + 3u) & ~3u;
	memset(p + n, 0, (descsz + 3u) & ~3u);
	memcpy(p + n, desc, descsz);
	return n + ((descsz + 3u) & ~3u);
}

static void notes(void **state)
{
	static const uint8_t id[] = { 0xde, 0xad, 0xbe, 0xef, 0x01, 0x23, 0x45 };
	uint8_t big[80] = { 0 }, buf[512];
	char hex[HP_BUILD_ID_HEX_SIZE];
	size_t n;

	/* an ABI tag first (another type, another name), then the build-id */
	n = put_note(buf, NT_GNU_ABI_TAG, "GNU", big, 16); /* not id: 7 bytes (ASan) */
	n += put_note(buf + n, NT_GNU_BUILD_ID, "GNU", id, sizeof(id));
	assert_int_equal(hp_elf_notes_build_id(buf, n, hex), 0);
	assert_string_equal(hex, "deadbeef012345");
	/* cut inside the descriptor: not read past the end */
	assert_int_equal(hp_elf_notes_build_id(buf, n - 4, hex), -ENOENT);
	/* another owner's note of the same type number */
	n = put_note(buf, NT_GNU_BUILD_ID, "XYZ", id, sizeof(id));
	assert_int_equal(hp_elf_notes_build_id(buf, n, hex), -ENOENT);
	/* a descriptor longer than any build-id */
	n = put_note(buf, NT_GNU_BUILD_ID, "GNU", big, sizeof(big));
	assert_int_equal(hp_elf_notes_build_id(buf, n, hex), -ENOENT);
	assert_int_equal(hp_elf_notes_build_id(buf, 0, hex), -ENOENT);
}

/* The memory reader of this very process. */
static int self_read(void *ctx, uint64_t addr, void *buf, size_t len)
{
	memcpy(buf, (const void *)(uintptr_t)addr, len);
	return 0;
}

static void headers(void **state)
{
	uint64_t phdr = getauxval(AT_PHDR), phnum = getauxval(AT_PHNUM);
	Elf64_Phdr ph[HP_ELF_PHDR_MAX];
	Elf64_Ehdr eh, *fake;
	struct proc_maps maps;
	const struct proc_map *m;
	uint64_t base;

	/* this program's own headers, where the loader mapped file offset 0 */
	assert_int_equal(proc_maps_read(getpid(), &maps), 0);
	m = proc_maps_find(&maps, phdr);
	assert_non_null(m);
	base = m->start - m->offset;
	assert_int_equal(hp_elf_headers_read(self_read, NULL, base, m->end - base, &eh, ph),
			 (int)phnum);
	assert_true(base + eh.e_phoff == phdr);
	proc_maps_release(&maps);

	/* a copy whose bounds lie */
	fake = malloc(HP_PAGE_SIZE);
	assert_non_null(fake);
	memcpy(fake, (const void *)(uintptr_t)base, HP_PAGE_SIZE);
	fake->e_phnum = HP_ELF_PHDR_MAX + 1;
	assert_int_equal(hp_elf_headers_read(self_read, NULL, (uintptr_t)fake, HP_PAGE_SIZE, &eh,
					     ph), -ENOEXEC);
	fake->e_phnum = (Elf64_Half)phnum;
	fake->e_phoff = HP_PAGE_SIZE - sizeof(Elf64_Phdr);
	assert_int_equal(hp_elf_headers_read(self_read, NULL, (uintptr_t)fake, HP_PAGE_SIZE, &eh,
					     ph), -ENOEXEC);
	fake->e_phoff = sizeof(Elf64_Ehdr);
	fake->e_type = ET_REL;
	assert_int_equal(hp_elf_headers_read(self_read, NULL, (uintptr_t)fake, HP_PAGE_SIZE, &eh,
					     ph), -ENOEXEC);
	fake->e_type = ET_DYN;
	fake->e_ident[EI_MAG1] = 'X';
	assert_int_equal(hp_elf_headers_read(self_read, NULL, (uintptr_t)fake, HP_PAGE_SIZE, &eh,
					     ph), -ENOEXEC);
	assert_int_equal(hp_elf_headers_read(self_read, NULL, (uintptr_t)fake, 10, &eh, ph),
			 -ENOEXEC);
	free(fake);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(map_line),
		cmocka_unit_test(maps_of_self),
		cmocka_unit_test(maps_kept),
		cmocka_unit_test(stat_text),
		cmocka_unit_test(stat_of_self),
		cmocka_unit_test(mountinfo_unescape),
		cmocka_unit_test(page_size),
		cmocka_unit_test(notes),
		cmocka_unit_test(headers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * load.c: parsing patch objects (the fixtures' patch-a.so, built by meson
 * with -fPIC -shared, and bad ones), finding the replacement functions, and
 * relocating: the GOT slots of the target's static helper and data get
 * target bias + manifest offset; an unresolvable name is a clear error.
 */
#include <elf.h>
#include <errno.h>
#include <gelf.h>
#include <libgen.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "apply-int.h"

static struct hp_buf so;
static struct hp_buf exe;

static int read_fixture(const char *name, struct hp_buf *b)
{
	char self[PATH_MAX], path[PATH_MAX + 64];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0)
		return -1;
	self[n] = '\0';
	snprintf(path, sizeof(path), "%s/fixtures/engine/%s", dirname(self), name);
	return hp_read_file(path, 64u << 20, b);
}

static int setup(void **state)
{
	(void)state;
	if (read_fixture("engine-patch-a.so", &so) < 0 || read_fixture("engine-target-pie", &exe) < 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	hp_buf_release(&so);
	hp_buf_release(&exe);
	return 0;
}

static void parse_good(void **state)
{
	struct load_image img = { 0 };
	uint64_t v, sz;

	(void)state;
	assert_int_equal(load_parse(so.data, so.len, &img), 0);
	assert_true(img.n_segs >= 2);
	assert_int_equal(img.size % 4096, 0);
	for (size_t i = 0; i < img.n_segs; i++)
		assert_false((img.segs[i].prot & 2) && (img.segs[i].prot & 4)); /* W and X */
	assert_int_equal(load_func(so.data, so.len, "compute", &v, &sz), 0);
	assert_true(v > 0 && v < img.size && sz > 0);
	assert_int_equal(load_func(so.data, so.len, "other", &v, &sz), 0);
	assert_int_equal(load_func(so.data, so.len, "nope", &v, &sz), -ENOEXEC);
	assert_string_equal(hp_errmsg(-ENOEXEC), "patch object does not define function nope");
	load_image_release(&img);
	load_image_release(NULL);
}

static void parse_bad(void **state)
{
	struct load_image img = { 0 };
	char *copy = malloc(so.len);
	Elf64_Ehdr *eh = (Elf64_Ehdr *)copy;

	(void)state;
	assert_int_equal(load_parse("garbage", 7, &img), -ENOEXEC);
	assert_int_equal(load_parse(so.data, 40, &img), -ENOEXEC);
	/* a PIE executable: ET_DYN with an interpreter */
	assert_int_equal(load_parse(exe.data, exe.len, &img), -ENOEXEC);
	assert_non_null(strstr(hp_errmsg(-ENOEXEC), "not a shared object"));
	/* truncated: the segments run past the end */
	assert_int_equal(load_parse(so.data, so.len / 4, &img), -ENOEXEC);
	memcpy(copy, so.data, so.len);
	eh->e_machine = EM_AARCH64;
	assert_int_equal(load_parse(copy, so.len, &img), -ENOEXEC);
	memcpy(copy, so.data, so.len);
	eh->e_phoff = so.len - 8;
	assert_int_equal(load_parse(copy, so.len, &img), -ENOEXEC);
	memcpy(copy, so.data, so.len);
	eh->e_phnum = 0;
	assert_int_equal(load_parse(copy, so.len, &img), -ENOEXEC);
	/* program headers at an odd offset: refused, not read misaligned */
	memcpy(copy, so.data, so.len);
	eh->e_phoff += 4;
	assert_int_equal(load_parse(copy, so.len, &img), -ENOEXEC);
	assert_string_equal(hp_errmsg(-ENOEXEC), "patch object: bad program headers");
	free(copy);
}

/*
 * A dynamic section 4 bytes off its alignment (the fuzzer's first finding:
 * read_dynamic read Elf64_Dyn at a misaligned address, UBSan).
 */
static void misaligned_dynamic(void **state)
{
	uint8_t *copy = malloc(so.len);
	Elf64_Ehdr *eh = (Elf64_Ehdr *)copy;
	struct load_image img = { 0 };
	struct hp_manifest *m = hp_manifest_new();
	struct proc_object target = { .bias = 0x555500000000ull };
	struct proc_objects objs = { &target, 1 };
	struct load_ctx ctx = { -1, &objs, &target, m };
	bool moved = false;

	(void)state;
	assert_non_null(copy);
	memcpy(copy, so.data, so.len);
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr *ph = (Elf64_Phdr *)(copy + eh->e_phoff) + i;

		if (ph->p_type == PT_DYNAMIC) {
			ph->p_vaddr -= 4;
			moved = true;
		}
	}
	assert_true(moved);
	assert_int_equal(load_parse(copy, so.len, &img), 0);
	assert_int_equal(load_relocate(&img, copy, so.len, 0x7f0000000000ull, &ctx), -ENOEXEC);
	assert_string_equal(hp_errmsg(-ENOEXEC), "patch object: misaligned dynamic section");
	load_image_release(&img);
	hp_manifest_free(m);
	free(copy);
}

/* The GOT slot the object's dynamic relocations give name, or -1. */
static int64_t slot_of(const char *name)
{
	Elf *e = elf_memory(so.data, so.len);
	Elf_Scn *scn = NULL;
	int64_t off = -1;

	while (e && (scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_RELA)
			continue;
		d = elf_getdata(scn, NULL);
		for (size_t i = 0; d && i < sh.sh_size / sh.sh_entsize; i++) {
			GElf_Rela r;
			GElf_Sym s;
			Elf_Data *sd = elf_getdata(elf_getscn(e, sh.sh_link), NULL);
			GElf_Shdr ssh;

			gelf_getrela(d, (int)i, &r);
			if (!GELF_R_SYM(r.r_info) || !gelf_getsym(sd, (int)GELF_R_SYM(r.r_info), &s))
				continue;
			gelf_getshdr(elf_getscn(e, sh.sh_link), &ssh);
			if (strcmp(elf_strptr(e, ssh.sh_link, s.st_name), name) == 0)
				off = (int64_t)r.r_offset;
		}
	}
	if (e)
		elf_end(e);
	return off;
}

static void relocate(void **state)
{
	struct load_image img = { 0 };
	struct hp_manifest *m = hp_manifest_new();
	struct proc_object target = { .path = (char *)"/t", .bias = 0x555500000000ull };
	struct proc_objects objs = { &target, 1 };
	struct load_ctx ctx = { -1, &objs, &target, m };
	const uint64_t base = 0x555400000000ull;
	int64_t helper_slot, scale_slot;
	uint64_t v;

	(void)state;
	elf_version(EV_CURRENT);
	helper_slot = slot_of("helper");
	scale_slot = slot_of("scale");
	assert_true(helper_slot > 0 && scale_slot > 0);
	assert_int_equal(hp_manifest_add_sym(m, "scale", NULL, 0x4108), 0);

	/* helper is missing from the manifest and from every object */
	assert_int_equal(load_parse(so.data, so.len, &img), 0);
	assert_int_equal(load_relocate(&img, so.data, so.len, base, &ctx), -ENOEXEC);
	assert_string_equal(hp_errmsg(-ENOEXEC), "unresolved symbol helper");
	load_image_release(&img);

	assert_int_equal(hp_manifest_add_sym(m, "helper", NULL, 0x15c0), 0);
	assert_int_equal(load_parse(so.data, so.len, &img), 0);
	assert_int_equal(load_relocate(&img, so.data, so.len, base, &ctx), 0);
	memcpy(&v, img.bytes + helper_slot, 8);
	assert_int_equal(v, target.bias + 0x15c0);
	memcpy(&v, img.bytes + scale_slot, 8);
	assert_int_equal(v, target.bias + 0x4108);
	load_image_release(&img);

	/* the same name twice with different offsets is ambiguous */
	assert_int_equal(hp_manifest_add_sym(m, "helper", "other.c", 0x1600), 0);
	assert_int_equal(load_parse(so.data, so.len, &img), 0);
	assert_int_equal(load_relocate(&img, so.data, so.len, base, &ctx), -ENOEXEC);
	assert_non_null(strstr(hp_errmsg(-ENOEXEC), "ambiguous"));
	load_image_release(&img);
	hp_manifest_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parse_good),
		cmocka_unit_test(parse_bad),
		cmocka_unit_test(misaligned_dynamic),
		cmocka_unit_test(relocate),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

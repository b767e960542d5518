/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * region.c: the header check, and finding regions in a real process (this
 * one): a region mapped here the way the engine maps one in a target, with
 * one entry jumping into it and one not.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "apply-int.h"

static void good_header(struct region_hdr *h, uint32_t n_funcs)
{
	memset(h, 0, sizeof(*h));
	memcpy(h->magic, REGION_MAGIC, 8);
	h->version = REGION_VERSION;
	h->n_funcs = n_funcs;
	h->hdr_size = (uint32_t)region_hdr_bytes(n_funcs);
	h->region_size = 3 * 4096;
	h->jump_len = ARCH_JUMP_LEN;
	strcpy(h->build_id, "abcd");
	strcpy(h->set_id, "2026.01/2026-02/fix");
	strcpy(h->month, "2026-02");
}

static void header_check(void **state)
{
	struct region_hdr h;

	(void)state;
	good_header(&h, 2);
	assert_int_equal(region_hdr_check(&h, 4096), 0);
	h.magic[0] = 'X';
	assert_int_equal(region_hdr_check(&h, 4096), -ENOENT);
	good_header(&h, 2);
	h.version = 99;
	assert_int_equal(region_hdr_check(&h, 4096), -EINVAL);
	good_header(&h, 0);
	assert_int_equal(region_hdr_check(&h, 4096), -EINVAL);
	good_header(&h, 2);
	h.n_funcs = HP_MANIFEST_MAX_FUNCS + 1;
	assert_int_equal(region_hdr_check(&h, 1 << 30), -EINVAL);
	good_header(&h, 2);
	h.hdr_size += 1; /* disagrees with n_funcs */
	assert_int_equal(region_hdr_check(&h, 4096), -EINVAL);
	good_header(&h, 200);
	/* the function table runs past the mapping */
	assert_int_equal(region_hdr_check(&h, 4096), -EINVAL);
	good_header(&h, 2);
	memset(h.set_id, 'a', sizeof(h.set_id)); /* unterminated */
	assert_int_equal(region_hdr_check(&h, 4096), -EINVAL);
	good_header(&h, 2);
	memset(h.build_id, 'a', 130);
	assert_int_equal(region_hdr_check(&h, 4096), -EINVAL);
	good_header(&h, 2);
	h.region_size = 4096 - 1; /* smaller than what is mapped */
	assert_int_equal(region_hdr_check(&h, 4096), -EINVAL);
	good_header(&h, 2);
	h.jump_len = REGION_SAVED_MAX + 1;
	assert_int_equal(region_hdr_check(&h, 4096), -EINVAL);
}

/* The header is read-only, as in a target: written the engine's way. */
static void set_size(int fd, struct region_hdr *h, uint64_t size)
{
	assert_int_equal(proc_mem_write(fd, (uint64_t)(uintptr_t)&h->region_size, &size,
					sizeof(size)), 0);
}

/* Two "functions" in an executable page of ours. */
static void find_regions(void **state)
{
	long page = sysconf(_SC_PAGESIZE);
	uint8_t *text, *reg;
	struct region_hdr *h;
	struct region_func *f;
	struct proc_maps maps = { 0 };
	struct regions rs = { 0 };
	int fd = open("/proc/self/mem", O_RDWR);

	(void)state;
	assert_true(fd >= 0);
	text = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	/* a guard page on each side, as the engine leaves one */
	reg = mmap(NULL, (size_t)page * 4, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(text != MAP_FAILED && reg != MAP_FAILED);
	reg += page;
	assert_int_equal(mprotect(reg, (size_t)page * 2, PROT_READ | PROT_WRITE), 0);
	memset(text, 0x90, (size_t)page);
	h = (struct region_hdr *)reg;
	good_header(h, 2);
	h->region_size = (uint64_t)page * 2;
	h->text_start = (uint64_t)(uintptr_t)reg + (uint64_t)page;
	h->text_end = h->text_start + (uint64_t)page;
	f = (struct region_func *)(h + 1);
	f[0].addr = (uint64_t)(uintptr_t)text;
	f[0].new_addr = h->text_start;
	f[1].addr = (uint64_t)(uintptr_t)text + 64;
	f[1].new_addr = h->text_start + 64;
	strcpy(f[0].name, "one");
	strcpy(f[1].name, "two");
	assert_int_equal(arch_jump_encode(f[0].addr, f[0].new_addr, text), 0);
	assert_int_equal(mprotect(reg, (size_t)page, PROT_READ), 0);
	assert_int_equal(mprotect(reg + page, (size_t)page, PROT_READ | PROT_EXEC), 0);
	assert_int_equal(mprotect(text, (size_t)page, PROT_READ | PROT_EXEC), 0);

	assert_int_equal(proc_maps_read(getpid(), &maps), 0);
	assert_int_equal(regions_read(getpid(), fd, &maps, &rs), 0);
	assert_int_equal(rs.n, 1);
	assert_int_equal(rs.v[0].addr, (uint64_t)(uintptr_t)reg);
	assert_int_equal(rs.v[0].hdr.n_funcs, 2);
	assert_string_equal(rs.v[0].funcs[1].name, "two");
	assert_string_equal(rs.v[0].hdr.set_id, "2026.01/2026-02/fix");
	assert_int_equal(rs.v[0].n_jumped, 1);
	regions_release(&rs);

	/* the same without process_vm_readv: each header through the fd */
	assert_int_equal(regions_read(0, fd, &maps, &rs), 0);
	assert_int_equal(rs.n, 1);
	assert_int_equal(rs.v[0].addr, (uint64_t)(uintptr_t)reg);
	assert_int_equal(rs.v[0].n_jumped, 1);
	regions_release(&rs);

	/* a mapping that may hold a header (readable, anonymous), right
	 * before the region, gone since the maps were read: the batched read
	 * stops at it, and reads on from the region */
	{
		struct proc_maps m2 = { 0 };

		assert_int_equal(mprotect(reg - page, (size_t)page, PROT_READ | PROT_WRITE), 0);
		assert_int_equal(proc_maps_read(getpid(), &m2), 0);
		assert_int_equal(munmap(reg - page, (size_t)page), 0);
		assert_int_equal(regions_read(getpid(), fd, &m2, &rs), 0);
		assert_int_equal(rs.n, 1);
		assert_int_equal(rs.v[0].addr, (uint64_t)(uintptr_t)reg);
		assert_string_equal(rs.v[0].funcs[1].name, "two");
		regions_release(&rs);
		proc_maps_release(&m2);
		assert_true(mmap(reg - page, (size_t)page, PROT_NONE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == reg - page);
	}

	/* more mappings that may hold a header than one batch reads (256):
	 * 300 more, each its own mapping (a page readable, one not), made
	 * after the region, so listed before it (mmap goes down) */
	{
		struct proc_maps m2 = { 0 };
		uint8_t *many = mmap(NULL, (size_t)page * 600, PROT_NONE,
				     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		assert_true(many != MAP_FAILED);
		assert_true(many < reg);
		for (int i = 0; i < 300; i++)
			assert_int_equal(mprotect(many + (size_t)page * 2 * i, (size_t)page,
						  PROT_READ | PROT_WRITE), 0);
		assert_int_equal(proc_maps_read(getpid(), &m2), 0);
		assert_true(m2.n > 600);
		assert_int_equal(regions_read(getpid(), fd, &m2, &rs), 0);
		assert_int_equal(rs.n, 1);
		assert_int_equal(rs.v[0].addr, (uint64_t)(uintptr_t)reg);
		assert_int_equal(rs.v[0].n_jumped, 1);
		regions_release(&rs);
		proc_maps_release(&m2);
		munmap(many, (size_t)page * 600);
	}

	/* region_size (what a later munmap unmaps) beyond anonymous memory:
	 * not a region of ours */
	set_size(fd, h, 1ull << 40);
	assert_int_equal(regions_read(getpid(), fd, &maps, &rs), 0);
	assert_int_equal(rs.n, 0);
	regions_release(&rs);
	{
		char path[] = "/tmp/test-region-XXXXXX";
		int tf = mkstemp(path);
		void *fm;

		assert_true(tf >= 0);
		assert_int_equal(ftruncate(tf, page), 0);
		fm = mmap(reg + 2 * page, (size_t)page, PROT_READ, MAP_PRIVATE | MAP_FIXED, tf, 0);
		assert_true(fm == reg + 2 * page);
		close(tf);
		unlink(path);
		proc_maps_release(&maps);
		assert_int_equal(proc_maps_read(getpid(), &maps), 0);
		/* up to the guard page after it: still ours; over a file: not */
		set_size(fd, h, (uint64_t)page * 2);
		assert_int_equal(regions_read(getpid(), fd, &maps, &rs), 0);
		assert_int_equal(rs.n, 1);
		regions_release(&rs);
		set_size(fd, h, (uint64_t)page * 3);
		assert_int_equal(regions_read(getpid(), fd, &maps, &rs), 0);
		assert_int_equal(rs.n, 0);
		regions_release(&rs);
		set_size(fd, h, (uint64_t)page * 2 + 8);
		assert_int_equal(regions_read(getpid(), fd, &maps, &rs), 0);
		assert_int_equal(rs.n, 0);
		regions_release(&rs);
		set_size(fd, h, (uint64_t)page * 2);
	}

	/* a bad magic: not a region */
	assert_int_equal(proc_mem_write(fd, (uint64_t)(uintptr_t)reg, "XXXXXXXX", 8), 0);
	assert_int_equal(regions_read(getpid(), fd, &maps, &rs), 0);
	assert_int_equal(rs.n, 0);
	regions_release(&rs);
	regions_release(NULL);
	proc_maps_release(&maps);
	munmap(reg - page, (size_t)page * 4);
	munmap(text, (size_t)page);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(header_check),
		cmocka_unit_test(find_regions),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * proc.c on a real process (this one): maps, stat, memory, the objects
 * with build-ids and biases read from memory (checked against the file
 * and the dynamic loader), dynamic symbol lookup (against dlsym).
 */
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "apply-int.h"

static int mem_fd = -1;

static int setup(void **state)
{
	(void)state;
	mem_fd = open("/proc/self/mem", O_RDWR);
	return mem_fd < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	close(mem_fd);
	return 0;
}

static void maps(void **state)
{
	struct proc_maps m = { 0 };
	const struct proc_map *code, *data;
	static int some_data;

	(void)state;
	assert_int_equal(proc_maps_read(getpid(), &m), 0);
	assert_true(m.n > 5);
	code = proc_maps_find(&m, (uint64_t)(uintptr_t)&maps);
	data = proc_maps_find(&m, (uint64_t)(uintptr_t)&some_data);
	assert_non_null(code);
	assert_non_null(data);
	assert_true(code->prot & PROT_EXEC);
	assert_false(code->prot & PROT_WRITE);
	assert_true(data->prot & PROT_WRITE);
	assert_non_null(code->path);
	assert_null(proc_maps_find(&m, 0));
	proc_maps_release(&m);
	assert_int_equal(proc_maps_read(-5, &m), -ESRCH);
}

static void stat_and_mem(void **state)
{
	char st = 0;
	uint64_t start = 0;
	static char buf[] = "hello";
	char out[6];

	(void)state;
	assert_int_equal(proc_stat(getpid(), &st, &start), 0);
	assert_int_equal(st, 'R');
	assert_true(start > 0);
	assert_int_equal(proc_stat(0x3fffffff, &st, &start), -ESRCH);
	assert_int_equal(proc_mem_read(mem_fd, (uint64_t)(uintptr_t)buf, out, 6), 0);
	assert_string_equal(out, "hello");
	assert_int_equal(proc_mem_write(mem_fd, (uint64_t)(uintptr_t)buf, "HELLO", 5), 0);
	assert_string_equal(buf, "HELLO");
	assert_int_equal(proc_mem_read(mem_fd, 8, out, 1), -EIO);
}

static int find_bias(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	/* the first entry is the program itself */
	*(uint64_t *)data = info->dlpi_addr;
	return 1;
}

static void objects(void **state)
{
	struct proc_maps m = { 0 };
	struct proc_objects o = { 0 };
	char bid[HP_BUILD_ID_HEX_SIZE];
	const struct proc_object *self = NULL, *libc = NULL;
	uint64_t bias = 0, addr = 0, size = 0;
	unsigned char type = 0;
	void *real;

	(void)state;
	assert_int_equal(proc_maps_read(getpid(), &m), 0);
	assert_int_equal(proc_objects_read(getpid(), mem_fd, &m, &o), 0);
	assert_int_equal(apply_file_build_id("/proc/self/exe", bid), 0);
	self = proc_objects_find(&o, bid);
	assert_non_null(self);
	dl_iterate_phdr(find_bias, &bias);
	assert_int_equal(self->bias, bias);
	/* first_map is the object's lowest mapping (not always the process's
	 * first: sanitizer shadow memory may lie below it) */
	assert_true(self->first_map < m.n);
	assert_non_null(m.v[self->first_map].path);
	for (size_t i = 0; i < self->first_map; i++)
		assert_true(!m.v[i].path || strcmp(m.v[i].path, m.v[self->first_map].path) != 0);
	for (size_t i = 0; i < o.n; i++)
		if (strstr(o.v[i].path, "/libc.so"))
			libc = &o.v[i];
	assert_non_null(libc);
	assert_int_equal(apply_file_build_id(libc->path, bid), 0);
	assert_string_equal(libc->build_id, bid);
	{
		/* the pages read a read each (no pid) give the same objects */
		struct proc_objects one = { 0 };

		assert_int_equal(proc_objects_read(0, mem_fd, &m, &one), 0);
		assert_int_equal(one.n, o.n);
		for (size_t i = 0; i < o.n; i++) {
			assert_string_equal(one.v[i].build_id, o.v[i].build_id);
			assert_int_equal(one.v[i].bias, o.v[i].bias);
			assert_int_equal(one.v[i].first_map, o.v[i].first_map);
		}
		proc_objects_release(&one);
	}

	/* getpid is a plain function in libc: the lookup agrees with dlsym */
	real = dlsym(RTLD_DEFAULT, "getpid");
	assert_int_equal(proc_object_dynsym(mem_fd, libc, "getpid", &addr, &type, &size), 0);
	assert_int_equal(addr, (uint64_t)(uintptr_t)real);
	assert_int_equal(type, STT_FUNC);
	assert_true(size > 0);
	/* a versioned name resolves to its default version */
	real = dlsym(RTLD_DEFAULT, "pthread_cond_wait");
	assert_int_equal(proc_object_dynsym(mem_fd, libc, "pthread_cond_wait", &addr, &type, NULL), 0);
	assert_int_equal(addr, (uint64_t)(uintptr_t)real);
	assert_int_equal(proc_object_dynsym(mem_fd, libc, "no_such_symbol_here", &addr, &type, NULL),
			 -ENOENT);
	/* those answers were libc's own: read whole */
	assert_true(proc_object_dynsym_whole(libc));
	proc_objects_release(&o);
	{
		/* read through a descriptor that reads nothing: every name is
		 * "not there", and none of it is the object's answer */
		struct proc_objects bad = { 0 };
		int null_fd = open("/dev/null", O_RDONLY);
		const struct proc_object *l = NULL;

		assert_true(null_fd >= 0);
		assert_int_equal(proc_objects_read(getpid(), mem_fd, &m, &bad), 0);
		for (size_t i = 0; i < bad.n; i++)
			if (strstr(bad.v[i].path, "/libc.so"))
				l = &bad.v[i];
		assert_non_null(l);
		assert_false(proc_object_dynsym_whole(l)); /* nothing looked up yet */
		assert_int_equal(proc_object_dynsym(null_fd, l, "getpid", &addr, &type, NULL), -ENOENT);
		assert_false(proc_object_dynsym_whole(l));
		close(null_fd);
		proc_objects_release(&bad);
	}
	proc_maps_release(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(maps),
		cmocka_unit_test(stat_and_mem),
		cmocka_unit_test(objects),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

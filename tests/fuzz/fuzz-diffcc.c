/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hp build --diff's compile-commands reader (author/diff.c,
 * compile_commands.json; json-c parses, wordexp(3) splits a "command"
 * without running or expanding anything): any bytes as the file. What it
 * accepts must give each entry a directory, a source and a command.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "author-int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static char path[64];
	struct ccmd *v = NULL;
	size_t n = 0;

	if (fd < 0) {
		fd = memfd_create("compile_commands.json", MFD_CLOEXEC);
		if (fd < 0)
			abort();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	if (diff_ccmds_load(path, &v, &n) == 0) {
		for (size_t i = 0; i < n; i++)
			if (!v[i].dir || !v[i].file || v[i].argv.n == 0 || !v[i].argv.v[0])
				abort();
		diff_ccmds_release(v, n);
	}
	hp_err_clear();
	return 0;
}

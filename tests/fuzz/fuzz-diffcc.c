/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hp build --diff's compile-commands reader (author/diff.c,
 * compile_commands.json; json-c parses, diff_split_command splits a
 * "command" by the shell's quoting rules, expanding nothing): any bytes as
 * the file. What it accepts must give each entry a directory, a source and
 * a command, and each command's words, quoted again ('...'), must split
 * back to the same words.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "author-int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* argv quoted for sh, each word in single quotes ("'\\''" for a quote), split again. */
static void requote(const struct strv *argv)
{
	struct hp_buf line = HP_BUF_INIT;
	struct strv back = { NULL, 0 };

	for (size_t i = 0; i < argv->n; i++) {
		hp_buf_adds(&line, i ? " '" : "'");
		for (const char *p = argv->v[i]; *p; p++)
			if (*p == '\'')
				hp_buf_adds(&line, "'\\''");
			else
				hp_buf_add(&line, p, 1);
		hp_buf_adds(&line, "'");
	}
	if (diff_split_command(line.data ? line.data : "", &back) < 0 || back.n != argv->n)
		abort();
	for (size_t i = 0; i < argv->n; i++)
		if (strcmp(back.v[i], argv->v[i]))
			abort();
	strv_release(&back);
	hp_buf_release(&line);
}

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
		for (size_t i = 0; i < n; i++)
			requote(&v[i].argv);
		diff_ccmds_release(v, n);
	}
	hp_err_clear();
	return 0;
}

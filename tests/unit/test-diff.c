/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of hp build --diff's readers (author/diff.c): the unified-diff
 * parser and its line map, and compile_commands.json. The bad inputs are
 * those the fuzzers found (tests/fuzz/regress/diff, diffcc): each is
 * refused with EINVAL and its one-line reason.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "author-int.h"

static int parse(const char *text, struct dfile **files, size_t *n)
{
	*files = NULL;
	*n = 0;
	hp_err_clear();
	return diff_parse("fix.patch", text, files, n);
}

static void test_parse(void **state)
{
	const char *text =
		"diff -ruN a/src/prog.c b/src/prog.c\n"
		"--- a/src/prog.c\n"
		"+++ b/src/prog.c\n"
		"@@ -3,4 +3,5 @@\n"
		" a\n"
		"-b\n"
		"+B\n"
		"+C\n"
		" c\n"
		" d\n"
		"--- a/inc/x.h\n"
		"+++ b/inc/x.h\n"
		"@@ -1 +1 @@\n"
		"-x\n"
		"+y\n";
	struct dfile *f;
	size_t n;

	assert_int_equal(parse(text, &f, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(f[0].path, "src/prog.c");
	assert_true(f[0].is_tu_source);
	assert_false(f[1].is_tu_source);
	assert_int_equal(f[0].n_hunks, 1);
	assert_int_equal(f[0].hunks[0].old_start, 3);
	assert_int_equal(f[0].hunks[0].new_len, 5);
	/* Old lines: 1, 2 before the hunk; 3 (a) -> 3; 4 (b) removed; 5 (c) -> 6;
	 * 6 (d) -> 7; after the hunk one line further down. */
	assert_int_equal(diff_line_map(&f[0], 2), 2);
	assert_int_equal(diff_line_map(&f[0], 3), 3);
	assert_int_equal(diff_line_map(&f[0], 4), 0);
	assert_int_equal(diff_line_map(&f[0], 5), 6);
	assert_int_equal(diff_line_map(&f[0], 20), 21);
	assert_int_equal(diff_line_map(&f[1], 1), 0);
	diff_files_release(f, n);
}

static void test_parse_refused(void **state)
{
	static const struct {
		const char *text, *msg;
	} bad[] = {
		/* found by fuzz-diff: a start at INT_MAX overflowed the line count */
		{ "+++ b/x.c\n@@ -2147483647,2 +1,2 @@\n a\n b\n",
		  "diff fix.patch: malformed hunk header (a line number or length beyond 10000000): "
		  "@@ -2147483647,2 +1,2 @@" },
		{ "+++ b/x.c\n@@ -4,6 +2147483647 @@\n f\n",
		  "diff fix.patch: malformed hunk header (a line number or length beyond 10000000): "
		  "@@ -4,6 +2147483647 @@" },
		/* 2^32 + 1 was taken as line 1 */
		{ "+++ b/x.c\n@@ -4294967297,1 +1,1 @@\n a\n",
		  "diff fix.patch: malformed hunk header (a line number or length beyond 10000000): "
		  "@@ -4294967297,1 +1,1 @@" },
		{ "+++ b/x.c\n@@ -1,-1 +1 @@\n",
		  "diff fix.patch: malformed hunk header (a line number or length beyond 10000000): "
		  "@@ -1,-1 +1 @@" },
		{ "+++ b/x.c\n@@ -1,2 1,2 @@\n", "diff fix.patch: malformed hunk header: @@ -1,2 1,2 @@" },
		{ "+++ b/x.c\n@@ -1,2 +1,2 @@\n a\n?b\n", "diff fix.patch: a hunk ends early: ?b" },
		{ "", "diff fix.patch: not a unified diff (no +++ line)" },
		{ "just text\n", "diff fix.patch: not a unified diff (no +++ line)" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct dfile *f;
		size_t n;

		assert_int_equal(parse(bad[i].text, &f, &n), -EINVAL);
		assert_string_equal(hp_errmsg(-EINVAL), bad[i].msg);
		diff_files_release(f, n);
	}
}

static char path[] = "/tmp/hp-test-diff-XXXXXX";

static int ccmds(const char *json, struct ccmd **v, size_t *n)
{
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
	close(fd);
	*v = NULL;
	*n = 0;
	hp_err_clear();
	return diff_ccmds_load(path, v, n);
}

static void test_ccmds(void **state)
{
	struct ccmd *v;
	size_t n;

	assert_int_equal(ccmds("[{\"directory\": \"/nonexistent-hp-src\", \"file\": \"a.c\", "
			       "\"command\": \"cc '-DX=\\\"a b\\\"' -c a.c\"},"
			       " {\"directory\": \"/nonexistent-hp-src\", \"file\": \"/nonexistent-hp-src/b.c\", "
			       "\"arguments\": [\"cc\", \"-c\", \"b.c\"]}]", &v, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].dir, "/nonexistent-hp-src");
	assert_string_equal(v[0].file, "/nonexistent-hp-src/a.c");
	assert_int_equal(v[0].argv.n, 4);
	assert_string_equal(v[0].argv.v[1], "-DX=\"a b\"");
	assert_string_equal(v[1].argv.v[2], "b.c");
	diff_ccmds_release(v, n);
	unlink(path);
	strcpy(path + strlen(path) - 6, "XXXXXX");
}

static void test_ccmds_refused(void **state)
{
	static const struct {
		const char *json, *msg;
	} bad[] = {
		/* found by fuzz-diffcc: an empty file was read unterminated */
		{ "", "not a JSON array of commands" },
		{ "{}", "not a JSON array of commands" },
		{ "[1]", "entry 0 has no directory or file" },
		/* found by fuzz-diffcc: a null crashed strdup, wordexp or realpath */
		{ "[{\"directory\": null, \"file\": \"a.c\", \"command\": \"cc\"}]",
		  "entry 0: its directory and file must be strings" },
		{ "[{\"directory\": \"/\", \"file\": null, \"command\": \"cc\"}]",
		  "entry 0: its directory and file must be strings" },
		{ "[{\"directory\": \"/\", \"file\": \"a.c\", \"command\": null}]",
		  "entry 0: its command is not a string" },
		{ "[{\"directory\": \"/\", \"file\": \"a.c\", \"arguments\": [\"cc\", null]}]",
		  "entry 0: argument 1 is not a string" },
		{ "[{\"directory\": \"/\", \"file\": \"a.c\", \"command\": \"cc 'a\"}]",
		  "entry 0: a command a shell cannot split" },
		{ "[{\"directory\": \"/\", \"file\": \"a.c\"}]",
		  "entry 0 has no command" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ccmd *v;
		size_t n;
		char want[512];

		assert_int_equal(ccmds(bad[i].json, &v, &n), -EINVAL);
		snprintf(want, sizeof(want), "compile commands %s: %s", path, bad[i].msg);
		assert_string_equal(hp_errmsg(-EINVAL), want);
		assert_null(v);
		unlink(path);
		strcpy(path + strlen(path) - 6, "XXXXXX");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_parse_refused),
		cmocka_unit_test(test_ccmds),
		cmocka_unit_test(test_ccmds_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

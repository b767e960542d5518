/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of hp build --diff's readers (author/diff.c): the unified-diff
 * parser and its line map, and compile_commands.json. The bad inputs are
 * those the fuzzers found (tests/fuzz/regress/diff, diffcc): each is
 * refused with EINVAL and its one-line reason.
 */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
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

/* Split cmd; 0 and the words, joined by '|', in out. */
static int split(const char *cmd, char *out, size_t size)
{
	struct strv sv = { NULL, 0 };
	int r;

	hp_err_clear();
	r = diff_split_command(cmd, &sv);
	out[0] = '\0';
	for (size_t i = 0; i < sv.n; i++)
		snprintf(out + strlen(out), size - strlen(out), "%s%s", i ? "|" : "", sv.v[i]);
	if (r < 0)
		assert_int_equal(sv.n, 0);
	strv_release(&sv);
	return r;
}

/* The shell's quoting, as sh(1) would hand the words to cc; nothing expanded. */
static void test_split(void **state)
{
	static const struct {
		const char *cmd, *words;
	} good[] = {
		{ "cc -c a.c", "cc|-c|a.c" },
		{ "  cc\t -c   a.c  ", "cc|-c|a.c" },
		{ "", "" },
		{ " \t ", "" },
		/* single quotes: everything literal, a backslash too */
		{ "cc '-DX=\"a b\"' -c a.c", "cc|-DX=\"a b\"|-c|a.c" },
		{ "cc '-DP=\\n$HOME`x`~'", "cc|-DP=\\n$HOME`x`~" },
		/* double quotes: a backslash quotes $ ` \" \\ only, and keeps the rest */
		{ "cc \"-DX=\\\"a b\\\"\" \"-DY=\\\\\" \"-DZ=\\n\" \"-DW=\\$\"",
		  "cc|-DX=\"a b\"|-DY=\\|-DZ=\\n|-DW=$" },
		/* an unquoted backslash quotes the next character, a blank too */
		{ "cc -DX=a\\ b -DY=\\\"q\\\" a\\\\b", "cc|-DX=a b|-DY=\"q\"|a\\b" },
		/* quotes joined to the rest of a word, and empty arguments */
		{ "cc -D'A'\"B\"C x'' '' \"\"", "cc|-DABC|x||" },
		/* a backslash-newline is a line continuation, between and in words */
		{ "cc \\\n -c a\\\nb.c", "cc|-c|ab.c" },
		/* what only starts an expansion before a name is literal */
		{ "cc -DX=$ -DY=a$ -D$/ -DZ=a~ -DT=a#b", "cc|-DX=$|-DY=a$|-D$/|-DZ=a~|-DT=a#b" },
		/* glob characters are kept as written: nothing to match them against */
		{ "cc -c *.c a?.c [ab].c", "cc|-c|*.c|a?.c|[ab].c" },
		/* a newline or an operator quoted is a character */
		{ "cc '-DX=a;b|c' \"-DY=(1)\n\" -DZ=\\&", "cc|-DX=a;b|c|-DY=(1)\n|-DZ=&" },
	};
	static const struct {
		const char *cmd, *msg;
	} bad[] = {
		{ "cc 'a", "the single quote at offset 3 is not closed" },
		{ "cc -DX=\"a b", "the double quote at offset 7 is not closed" },
		{ "cc \"a\\\"", "the double quote at offset 3 is not closed" },
		{ "cc a\\", "a backslash ends the command" },
		{ "cc -I$HOME/inc", "a shell expansion at offset 5 ($HOME/inc): compile commands are not expanded" },
		{ "cc -DX=\"${Y}\"", "a shell expansion at offset 8 (${Y}\"): compile commands are not expanded" },
		{ "cc $(pkg-config --cflags z) a.c",
		  "a shell expansion at offset 3 ($(pkg-config --c): compile commands are not expanded" },
		{ "cc `date` a.c", "a shell expansion at offset 3 (`date` a.c): compile commands are not expanded" },
		{ "cc -DX=$1", "a shell expansion at offset 7 ($1): compile commands are not expanded" },
		{ "cc -I ~/inc", "a tilde at offset 6 would be a home directory: compile commands are not expanded" },
		{ "cc a.c # comment", "a '#' at offset 7 starts a shell comment" },
		{ "cd /src && cc -c a.c", "a shell operator '&' at offset 8 outside quotes: one compile command is one command" },
		{ "cc -c a.c > log", "a shell operator '>' at offset 10 outside quotes: one compile command is one command" },
		{ "cc -c a.c;", "a shell operator ';' at offset 9 outside quotes: one compile command is one command" },
		{ "cc -c a.c\ncc -c b.c", "a newline at offset 9 outside quotes: one compile command is one command" },
	};
	char words[512];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(split(good[i].cmd, words, sizeof(words)), 0);
		assert_string_equal(words, good[i].words);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(split(bad[i].cmd, words, sizeof(words)), -EINVAL);
		assert_string_equal(hp_errmsg(-EINVAL), bad[i].msg);
	}
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
		/* found by fuzz-diffcc: a null crashed strdup, wordexp (since replaced) or realpath */
		{ "[{\"directory\": null, \"file\": \"a.c\", \"command\": \"cc\"}]",
		  "entry 0: its directory and file must be strings" },
		{ "[{\"directory\": \"/\", \"file\": null, \"command\": \"cc\"}]",
		  "entry 0: its directory and file must be strings" },
		{ "[{\"directory\": \"/\", \"file\": \"a.c\", \"command\": null}]",
		  "entry 0: its command is not a string" },
		{ "[{\"directory\": \"/\", \"file\": \"a.c\", \"arguments\": [\"cc\", null]}]",
		  "entry 0: argument 1 is not a string" },
		{ "[{\"directory\": \"/\", \"file\": \"a.c\", \"command\": \"cc 'a\"}]",
		  "entry 0: the single quote at offset 3 is not closed" },
		{ "[{\"directory\": \"/\", \"file\": \"a.c\", \"command\": \"cc -I$HOME/x\"}]",
		  "entry 0: a shell expansion at offset 5 ($HOME/x): compile commands are not expanded" },
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

/* A section of n bytes of data in elf, with its header filled. */
static Elf_Scn *add_section(Elf *elf, Elf64_Word type, Elf64_Word name, void *buf, size_t n,
			    Elf64_Word info, Elf64_Xword entsize)
{
	Elf_Scn *scn = elf_newscn(elf);
	Elf_Data *d = elf_newdata(scn);
	Elf64_Shdr *sh = elf64_getshdr(scn);

	d->d_buf = buf;
	d->d_size = n;
	d->d_type = ELF_T_BYTE;
	d->d_align = 8;
	sh->sh_type = type;
	sh->sh_name = name;
	sh->sh_info = info;
	sh->sh_entsize = entsize;
	sh->sh_addralign = 8;
	return scn;
}

/*
 * Two SHT_RELA sections for one section (found by fuzz-diffobj: the second
 * reused the first's count on a smaller array, a heap overflow): refused.
 */
static void test_obj_two_rela(void **state)
{
	static char shstr[] = "\0.text\0.rela.text\0.shstrtab";
	static uint8_t text[16];
	static Elf64_Rela one[1] = { { 0, ELF64_R_INFO(0, R_X86_64_NONE), 0 } };
	static Elf64_Rela three[3];
	char obj_path[] = "/tmp/hp-test-diff-obj-XXXXXX", want[128];
	int fd = mkstemp(obj_path);
	Elf *elf;
	Elf64_Ehdr *eh;
	Elf_Scn *str;
	struct obj o;

	assert_true(fd >= 0);
	assert_int_not_equal(elf_version(EV_CURRENT), EV_NONE);
	elf = elf_begin(fd, ELF_C_WRITE, NULL);
	assert_non_null(elf);
	eh = elf64_newehdr(elf);
	eh->e_ident[EI_DATA] = ELFDATA2LSB;
	eh->e_type = ET_REL;
	eh->e_machine = EM_X86_64;
	eh->e_version = EV_CURRENT;
	add_section(elf, SHT_PROGBITS, 1, text, sizeof(text), 0, 0);          /* 1: .text */
	add_section(elf, SHT_RELA, 7, three, sizeof(three), 1, sizeof(Elf64_Rela)); /* 2 */
	add_section(elf, SHT_RELA, 7, one, sizeof(one), 1, sizeof(Elf64_Rela));     /* 3 */
	str = add_section(elf, SHT_STRTAB, 18, shstr, sizeof(shstr), 0, 0);
	eh->e_shstrndx = (Elf64_Half)elf_ndxscn(str);
	assert_true(elf_update(elf, ELF_C_WRITE) > 0);
	elf_end(elf);
	close(fd);

	hp_err_clear();
	assert_int_equal(diff_obj_load(obj_path, &o), -ENOEXEC);
	snprintf(want, sizeof(want), "%s: section 1 has two relocation sections", obj_path);
	assert_string_equal(hp_errmsg(-ENOEXEC), want);
	unlink(obj_path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_parse_refused),
		cmocka_unit_test(test_ccmds),
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_ccmds_refused),
		cmocka_unit_test(test_obj_two_rela),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

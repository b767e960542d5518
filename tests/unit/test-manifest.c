/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests: the manifest format (docs/manifest.md). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "hp-common.h"

#define SHA "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static const char good[] =
	"hotpatch-manifest 1\n"
	"# a comment\n"
	"name fix-parse\n"
	"baseline 2026.01\n"
	"month 2026-02\n"
	"target sample-server\n"
	"build-id 3f2a9c\n"
	"patch-sha256 " SHA "\n"
	"description Fix heap overflow in parse_header\n"
	"author Security Team <sec@example.com>\n"
	"created 2026-02-10T12:00:00Z\n"
	"cve CVE-2026-0001\n"
	"cve CVE-2026-10002\n"
	"\n"
	"func parse_header 0x1139 0x5a\n"
	"func main_loop 0x1200 200 active-ok\n"
	"func helper@util.c 0x1300 0x10\n"
	"why helper inlines check_len\n"
	"sym counter 0x4010\n"
	"sym helper@util.c 0x1300\n";

static void test_parse_good(void **state)
{
	struct hp_manifest *m = NULL;

	assert_int_equal(hp_manifest_parse(good, strlen(good), &m), 0);
	assert_string_equal(m->name, "fix-parse");
	assert_string_equal(m->baseline, "2026.01");
	assert_string_equal(m->month, "2026-02");
	assert_string_equal(m->target, "sample-server");
	assert_string_equal(m->build_id, "3f2a9c");
	assert_string_equal(m->description, "Fix heap overflow in parse_header");
	assert_string_equal(m->author, "Security Team <sec@example.com>");
	assert_int_equal(m->n_cves, 2);
	assert_string_equal(m->cves[1], "CVE-2026-10002");
	assert_int_equal(m->n_funcs, 3);
	assert_string_equal(m->funcs[0].name, "parse_header");
	assert_int_equal(m->funcs[0].offset, 0x1139);
	assert_int_equal(m->funcs[0].size, 0x5a);
	assert_int_equal(m->funcs[0].flags, 0);
	assert_int_equal(m->funcs[1].size, 200);
	assert_int_equal(m->funcs[1].flags, HP_FUNC_ACTIVE_OK);
	assert_string_equal(m->funcs[2].name, "helper");
	assert_string_equal(m->funcs[2].file, "util.c");
	assert_int_equal(m->n_syms, 2);
	assert_int_equal(m->syms[0].offset, 0x4010);
	assert_null(m->syms[0].file);
	assert_non_null(hp_manifest_find_func(m, "main_loop"));
	assert_null(hp_manifest_find_func(m, "nope"));
	{
		char *id = hp_manifest_set_id(m);

		assert_string_equal(id, "2026.01/2026-02/fix-parse");
		free(id);
	}
	hp_manifest_free(m);
}

static void test_roundtrip(void **state)
{
	struct hp_manifest *m = NULL, *m2 = NULL;
	struct hp_buf a = HP_BUF_INIT, b = HP_BUF_INIT;

	assert_int_equal(hp_manifest_parse(good, strlen(good), &m), 0);
	assert_int_equal(hp_manifest_format(m, &a), 0);
	assert_int_equal(hp_manifest_parse(a.data, a.len, &m2), 0);
	assert_int_equal(hp_manifest_format(m2, &b), 0);
	assert_string_equal(a.data, b.data);
	assert_non_null(strstr(a.data, "func main_loop 0x1200 0xc8 active-ok\n"));
	/* A why line follows its func line. */
	assert_non_null(strstr(a.data, "func helper@util.c 0x1300 0x10\nwhy helper inlines check_len\n"));
	assert_string_equal(hp_manifest_find_func(m2, "helper")->why, "inlines check_len");
	assert_null(hp_manifest_find_func(m2, "parse_header")->why);
	assert_int_equal(hp_manifest_set_why(m2, "parse_header", "changed"), 0);
	assert_string_equal(hp_manifest_find_func(m2, "parse_header")->why, "changed");
	assert_int_equal(hp_manifest_set_why(m2, "nosuch", "changed"), -ENOENT);
	assert_int_equal(hp_manifest_set_why(m2, "parse_header", "a\tb"), -EINVAL);
	hp_manifest_free(m);
	hp_manifest_free(m2);
	hp_buf_release(&a);
	hp_buf_release(&b);
}

static void test_build(void **state)
{
	struct hp_manifest *m = hp_manifest_new(), *m2 = NULL;
	struct hp_buf out = HP_BUF_INIT;

	assert_non_null(m);
	assert_int_equal(hp_manifest_validate(m), -EINVAL);
	assert_int_equal(hp_manifest_set_str(&m->name, "x"), 0);
	assert_int_equal(hp_manifest_set_str(&m->baseline, "2026.04"), 0);
	assert_int_equal(hp_manifest_set_str(&m->month, "2026-05"), 0);
	assert_int_equal(hp_manifest_set_str(&m->target, "libfoo.so.1"), 0);
	assert_int_equal(hp_manifest_set_str(&m->build_id, "aa"), 0);
	assert_int_equal(hp_manifest_set_str(&m->patch_sha256, SHA), 0);
	assert_int_equal(hp_manifest_validate(m), -EINVAL); /* no func */
	assert_int_equal(hp_manifest_add_func(m, "f", NULL, 0x10, 8, 0), 0);
	assert_int_equal(hp_manifest_add_func(m, "bad name", NULL, 0x10, 8, 0), -EINVAL);
	assert_int_equal(hp_manifest_add_sym(m, "g", "a.c", 0x20), 0);
	assert_int_equal(hp_manifest_add_cve(m, "CVE-2026-1"), -EINVAL);
	assert_int_equal(hp_manifest_add_cve(m, "CVE-2026-1234"), 0);
	assert_int_equal(hp_manifest_validate(m), 0);
	assert_int_equal(hp_manifest_format(m, &out), 0);
	assert_int_equal(hp_manifest_parse(out.data, out.len, &m2), 0);
	assert_string_equal(m2->syms[0].file, "a.c");
	hp_manifest_free(m);
	hp_manifest_free(m2);
	hp_buf_release(&out);
}

/* Each malformed manifest is refused with -EINVAL and a message naming the problem. */
static void test_reject(void **state)
{
	static const struct {
		const char *text;
		const char *msg;
	} cases[] = {
		{ "", "empty" },
		{ "name x\n", "not a hotpatch manifest" },
		{ "hotpatch-manifest 2\n", "unsupported manifest version" },
		{ "hotpatch-manifest 1\nname x\nname y\n", "given twice" },
		{ "hotpatch-manifest 1\nbogus 1\n", "unknown key 'bogus'" },
		{ "hotpatch-manifest 1\nwhy f changed\n", "why f: no func f before it" },
		{ "hotpatch-manifest 1\nfunc f 0x10 0x10\nwhy f\n", "why: expected NAME TEXT" },
		{ "hotpatch-manifest 1\nfunc f 0x10 0x10\nwhy f a\nwhy f b\n", "why: given twice" },
		{ "hotpatch-manifest 1\nname ../x\n", "invalid value" },
		{ "hotpatch-manifest 1\nbaseline 2026.13\n", "invalid value" },
		{ "hotpatch-manifest 1\nmonth 2026-1\n", "invalid value" },
		{ "hotpatch-manifest 1\nbuild-id XYZ\n", "invalid value" },
		{ "hotpatch-manifest 1\ntarget a/b\n", "invalid value" },
		{ "hotpatch-manifest 1\nfunc f 0x10\n", "expected NAME OFFSET SIZE" },
		{ "hotpatch-manifest 1\nfunc f 0x10 4\n", "below the 5-byte jump" },
		{ "hotpatch-manifest 1\nfunc f 0x1g 8\n", "bad offset" },
		{ "hotpatch-manifest 1\nfunc f -1 8\n", "bad offset" },
		{ "hotpatch-manifest 1\nfunc f 0x10 8 magic\n", "unknown flag" },
		{ "hotpatch-manifest 1\nfunc f 1 8\nfunc f 2 8\n", "listed twice" },
		{ "hotpatch-manifest 1\nfunc 9f 1 8\n", "invalid name" },
		{ "hotpatch-manifest 1\nsym s\n", "expected NAME OFFSET" },
		{ "hotpatch-manifest 1\nsym s 99999999999999999999999\n", "bad offset" },
		{ "hotpatch-manifest 1\ncve 1234\n", "invalid CVE" },
		{ "hotpatch-manifest 1\ndescription a\x01b\n", "control character" },
		{ "hotpatch-manifest 1\nname x\n", "missing 'baseline'" },
		{ "hotpatch-manifest 1\nname x\nbaseline 2026.01\nmonth 2026-02\ntarget t\n"
		  "build-id aa\npatch-sha256 " SHA "\n", "no 'func' line" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct hp_manifest *m = (void *)0x1;

		hp_err_clear();
		assert_int_equal(hp_manifest_parse(cases[i].text, strlen(cases[i].text), &m), -EINVAL);
		assert_ptr_equal(m, (void *)0x1); /* not written on failure */
		if (!strstr(hp_errmsg(-EINVAL), cases[i].msg))
			fail_msg("case %zu: message '%s' lacks '%s'", i, hp_errmsg(-EINVAL), cases[i].msg);
	}
}

static void test_limits(void **state)
{
	struct hp_buf b = HP_BUF_INIT;
	struct hp_manifest *m = NULL;

	/* An over-long line, a NUL byte, too many functions. */
	assert_int_equal(hp_buf_adds(&b, "hotpatch-manifest 1\ndescription "), 0);
	for (int i = 0; i < 5000; i++)
		assert_int_equal(hp_buf_adds(&b, "x"), 0);
	assert_int_equal(hp_manifest_parse(b.data, b.len, &m), -EINVAL);
	assert_non_null(strstr(hp_errmsg(-EINVAL), "line 2"));
	assert_int_equal(hp_manifest_parse("hotpatch-manifest 1\n\0", 21, &m), -EINVAL);
	hp_buf_reset(&b);
	assert_int_equal(hp_buf_adds(&b, "hotpatch-manifest 1\n"), 0);
	for (int i = 0; i <= HP_MANIFEST_MAX_FUNCS; i++)
		assert_int_equal(hp_buf_addf(&b, "func f%d 0x%x 8\n", i, i * 16), 0);
	assert_int_equal(hp_manifest_parse(b.data, b.len, &m), -E2BIG);
	hp_buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_build),
		cmocka_unit_test(test_reject),
		cmocka_unit_test(test_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

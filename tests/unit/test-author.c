/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests: authoring (author/author.c, author_build). Real compiles of the
 * patch sources in tests/fixtures/author/ against the fixture targets built
 * by meson (PIE, non-PIE, no build-id); offsets checked against BIN's symbol
 * table read here independently with libelf; every refusal checked for its
 * errno, its one-line message and that no bundle is left.
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
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "author.h"
#include "store-int.h"

#define SRC AUTHOR_FIXTURE_SRC
#define BLD AUTHOR_FIXTURE_BUILD
#define TARGET BLD "/author-target"
#define TARGET_NOPIE BLD "/author-target-nopie"
#define TARGET_NOBID BLD "/author-target-nobid"

struct fx {
	char dir[64];
	char out[128];
	char notes[4096];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char tmp[96];

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/hp-test-author-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->out, sizeof(f->out), "%s/set.tar.gz", f->dir);
	/* hp build's private temporary directories land here: the tests see them go. */
	snprintf(tmp, sizeof(tmp), "%s/tmp", f->dir);
	if (mkdir(tmp, 0700) < 0 || setenv("TMPDIR", tmp, 1) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	unsetenv("TMPDIR");
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static void collect_note(void *ctx, const char *msg)
{
	struct fx *f = ctx;
	size_t n = strlen(f->notes);

	snprintf(f->notes + n, sizeof(f->notes) - n, "%s\n", msg);
}

static void opts_init(struct fx *f, struct author_opts *o, const char *target,
		      const char *const *sources)
{
	memset(o, 0, sizeof(*o));
	o->target = target;
	o->baseline = "2026.01";
	o->month = "2026-02";
	o->name = "fix-1";
	o->output = f->out;
	o->sources = sources;
	o->note = collect_note;
	o->note_ctx = f;
	f->notes[0] = '\0';
}

/*
 * st_value and st_size of name in path's .symtab; file: the STT_FILE of a
 * local, "" for the global one, NULL for any (exactly one must match).
 */
static void elf_lookup(const char *path, const char *name, const char *file, uint64_t *value,
		       uint64_t *size)
{
	int fd = open(path, O_RDONLY);
	Elf *elf;
	Elf_Scn *scn = NULL;
	int found = 0;

	assert_true(fd >= 0);
	assert_int_not_equal(elf_version(EV_CURRENT), EV_NONE);
	elf = elf_begin(fd, ELF_C_READ, NULL);
	assert_non_null(elf);
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;
		const char *cur = NULL;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_SYMTAB)
			continue;
		d = elf_getdata(scn, NULL);
		for (size_t i = 0; i < sh.sh_size / sh.sh_entsize; i++) {
			GElf_Sym s;
			const char *n;

			gelf_getsym(d, (int)i, &s);
			n = elf_strptr(elf, sh.sh_link, s.st_name);
			if (GELF_ST_TYPE(s.st_info) == STT_FILE) {
				cur = n;
				continue;
			}
			if (!n || strcmp(n, name) || s.st_shndx == SHN_UNDEF)
				continue;
			if (file && !*file && GELF_ST_BIND(s.st_info) == STB_LOCAL)
				continue;
			if (file && *file &&
			    (GELF_ST_BIND(s.st_info) != STB_LOCAL || !cur || strcmp(cur, file)))
				continue;
			*value = s.st_value;
			*size = s.st_size;
			found++;
		}
	}
	elf_end(elf);
	close(fd);
	assert_int_equal(found, 1);
}

static const struct hp_manifest_sym *find_sym(const struct hp_manifest *m, const char *name)
{
	for (size_t i = 0; i < m->n_syms; i++)
		if (!strcmp(m->syms[i].name, name))
			return &m->syms[i];
	return NULL;
}

static void write_src(struct fx *f, const char *name, const char *text, char *ret, size_t size);

static bool exists(const char *path)
{
	return access(path, F_OK) == 0;
}

/* A refusal: errno, exact message, no bundle, no temporary left beside it. */
static void expect_refusal(struct fx *f, const struct author_opts *o, int err,
			   const char *msg)
{
	struct hp_manifest *m = NULL;
	char cmd[320];
	int r = author_build(o, &m);

	assert_int_equal(r, err);
	assert_null(m);
	assert_string_equal(hp_errmsg(r), msg);
	assert_null(strchr(hp_errmsg(r), '\n'));
	assert_false(exists(f->out));
	/* Nothing else either: the output directory holds nothing, no temporary directory stays. */
	snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A '%s' | grep -vx -e src -e tmp)\" && "
		 "test -z \"$(ls -A '%s/tmp')\"", f->dir, f->dir);
	assert_int_equal(system(cmd), 0);
}

static void check_func(const struct hp_manifest *m, const char *target, const char *name,
		       const char *file)
{
	const struct hp_manifest_func *fn = hp_manifest_find_func(m, name);
	uint64_t value = 0, size = 0;

	assert_non_null(fn);
	elf_lookup(target, name, file, &value, &size);
	assert_int_equal(fn->offset, value);
	assert_int_equal(fn->size, size);
	if (file)
		assert_string_equal(fn->file, file);
	else
		assert_null(fn->file);
}

static void check_sym(const struct hp_manifest *m, const char *target, const char *name,
		      const char *file)
{
	const struct hp_manifest_sym *s = find_sym(m, name);
	uint64_t value = 0, size = 0;

	assert_non_null(s);
	elf_lookup(target, name, file, &value, &size);
	assert_int_equal(s->offset, value);
}

/* ---- accepted ---------------------------------------------------------------- */

static void test_good(void **state)
{
	struct fx *f = *state;
	const char *src[] = { SRC "/patch-good.c", NULL };
	const char *cves[] = { "CVE-2026-0001", NULL };
	struct author_opts o;
	struct hp_manifest *m = NULL, *back = NULL;
	struct hp_buf raw = HP_BUF_INIT;
	struct bundle b = { HP_BUF_INIT, HP_BUF_INIT, HP_BUF_INIT };
	char sha[65], bid[129];
	int fd;
	Elf *elf;

	opts_init(f, &o, TARGET, src);
	o.description = "fix compute";
	o.author = "Security Team <sec@example.com>";
	o.cves = cves;
	assert_int_equal(author_build(&o, &m), 0);
	assert_int_equal(m->n_funcs, 2);
	check_func(m, TARGET, "compute", NULL);
	check_func(m, TARGET, "greet", NULL);
	/* snprintf comes from libc, which the engine resolves: no sym line. */
	assert_int_equal(m->n_syms, 0);
	assert_string_equal(m->target, "author-target");
	assert_string_equal(m->description, "fix compute");
	assert_int_equal(m->n_cves, 1);
	assert_non_null(m->created);

	/* The bundle holds exactly what the manifest says. */
	assert_int_equal(hp_read_file(f->out, STORE_BUNDLE_MAX_BYTES, &raw), 0);
	assert_int_equal(bundle_read(raw.data, raw.len, &b), 0);
	assert_int_equal(b.signature.len, 0);
	assert_int_equal(hp_manifest_parse(b.manifest.data, b.manifest.len, &back), 0);
	assert_string_equal(back->build_id, m->build_id);
	sign_sha256_hex(b.patch.data, b.patch.len, sha);
	assert_string_equal(back->patch_sha256, sha);
	assert_int_equal(back->funcs[0].offset, m->funcs[0].offset);

	/* The build-id is BIN's, read here from its note. */
	fd = open(TARGET, O_RDONLY);
	elf = elf_begin(fd, ELF_C_READ, NULL);
	{
		Elf_Scn *scn = NULL;

		bid[0] = '\0';
		while ((scn = elf_nextscn(elf, scn))) {
			GElf_Shdr sh;
			GElf_Nhdr nh;
			size_t no, dof;
			Elf_Data *d;

			gelf_getshdr(scn, &sh);
			if (sh.sh_type != SHT_NOTE)
				continue;
			d = elf_getdata(scn, NULL);
			if (gelf_getnote(d, 0, &nh, &no, &dof) && nh.n_type == NT_GNU_BUILD_ID)
				for (size_t i = 0; i < nh.n_descsz; i++)
					sprintf(bid + 2 * i, "%02x",
						((unsigned char *)d->d_buf)[dof + i]);
		}
	}
	elf_end(elf);
	close(fd);
	assert_string_equal(m->build_id, bid);

	bundle_release(&b);
	hp_buf_release(&raw);
	hp_manifest_free(back);
	hp_manifest_free(m);
}

/* The patch object: position-independent, BIN's statics as undefined symbols, no start files. */
static void test_patch_object(void **state)
{
	struct fx *f = *state;
	const char *src[] = { SRC "/patch-static.c", NULL };
	struct author_opts o;
	struct hp_buf raw = HP_BUF_INIT;
	struct bundle b = { HP_BUF_INIT, HP_BUF_INIT, HP_BUF_INIT };
	char so[128], cmd[512];

	opts_init(f, &o, TARGET, src);
	assert_int_equal(author_build(&o, NULL), 0);
	assert_int_equal(hp_read_file(f->out, STORE_BUNDLE_MAX_BYTES, &raw), 0);
	assert_int_equal(bundle_read(raw.data, raw.len, &b), 0);
	snprintf(so, sizeof(so), "%s/patch.so", f->dir);
	assert_int_equal(hp_write_file_atomic(so, b.patch.data, b.patch.len, 0644), 0);
	snprintf(cmd, sizeof(cmd), "readelf -hW '%s' | grep -q 'DYN (Shared object file)'", so);
	assert_int_equal(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "nm -D --undefined-only '%s' | grep -qw counter && "
		 "nm -D --undefined-only '%s' | grep -qw bump", so, so);
	assert_int_equal(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "nm -D --defined-only '%s' | grep -qw 'T compute'", so);
	assert_int_equal(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "! nm '%s' | grep -qwE '_init|_fini|frame_dummy'", so);
	assert_int_equal(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "readelf -SW '%s' | grep -q ' .eh_frame '", so);
	assert_int_equal(system(cmd), 0);
	unlink(so);
	unlink(f->out);
	bundle_release(&b);
	hp_buf_release(&raw);
}

static void test_static_helper_and_variable(void **state)
{
	struct fx *f = *state;
	const char *src[] = { SRC "/patch-static.c", NULL };
	const char *targets[] = { TARGET, TARGET_NOPIE };

	for (size_t t = 0; t < 2; t++) {
		struct author_opts o;
		struct hp_manifest *m = NULL;

		opts_init(f, &o, targets[t], src);
		assert_int_equal(author_build(&o, &m), 0);
		assert_int_equal(m->n_funcs, 1);
		check_func(m, targets[t], "compute", NULL);
		assert_int_equal(m->n_syms, 2);
		check_sym(m, targets[t], "bump", NULL);
		check_sym(m, targets[t], "counter", NULL);
		if (t == 1) /* non-PIE: absolute addresses, load bias 0 */
			assert_true(find_sym(m, "counter")->offset >= 0x400000);
		hp_manifest_free(m);
		unlink(f->out);
	}
}

static void test_pick(void **state)
{
	struct fx *f = *state;
	const char *src[] = { SRC "/patch-ambig.c", NULL };
	const char *use[] = { SRC "/patch-ambig-use.c", NULL };
	const char *pick_b[] = { "helper@target-b.c", NULL };
	const char *pick_a[] = { "helper@target-a.c", NULL };
	struct author_opts o;
	struct hp_manifest *m = NULL;

	opts_init(f, &o, TARGET, src);
	o.picks = pick_b;
	assert_int_equal(author_build(&o, &m), 0);
	check_func(m, TARGET, "helper", "target-b.c");
	/* helper is 5 bytes: exactly the jump, accepted. */
	assert_int_equal(m->funcs[0].size, 5);
	hp_manifest_free(m);
	m = NULL;
	unlink(f->out);

	opts_init(f, &o, TARGET, use);
	o.picks = pick_a;
	assert_int_equal(author_build(&o, &m), 0);
	check_sym(m, TARGET, "helper", "target-a.c");
	assert_string_equal(find_sym(m, "helper")->file, "target-a.c");
	hp_manifest_free(m);
	unlink(f->out);
}

/* A name global in one file and static in another: the global, as C would, unless picked. */
static void test_global_over_local(void **state)
{
	struct fx *f = *state;
	const char *src[] = { SRC "/patch-level.c", NULL };
	const char *pick[] = { "level@target-a.c", NULL };
	struct author_opts o;
	struct hp_manifest *m = NULL;
	uint64_t value = 0, size = 0;

	opts_init(f, &o, TARGET, src);
	assert_int_equal(author_build(&o, &m), 0);
	elf_lookup(TARGET, "level", "", &value, &size);
	assert_int_equal(find_sym(m, "level")->offset, value);
	assert_null(find_sym(m, "level")->file);
	assert_non_null(strstr(f->notes, "symbol level: BIN also has a local level in target-a.c; "
				"the global one is used (--pick level@FILE for a local one)"));
	hp_manifest_free(m);
	m = NULL;
	unlink(f->out);

	opts_init(f, &o, TARGET, src);
	o.picks = pick;
	assert_int_equal(author_build(&o, &m), 0);
	check_sym(m, TARGET, "level", "target-a.c");
	hp_manifest_free(m);
	unlink(f->out);
}

static void test_no_function(void **state)
{
	struct fx *f = *state;
	char path[160];
	const char *src[] = { path, NULL };
	struct author_opts o;

	write_src(f, "static-only.c", "static int unused(int x) { return x; }\n"
		  "int (*keep)(int) = unused;\n", path, sizeof(path));
	opts_init(f, &o, TARGET, src);
	expect_refusal(f, &o, -EINVAL, "the patch defines no function: nothing to replace");
}

/* A library BIN loads, found through BIN's DT_RUNPATH ($ORIGIN); and the same BIN without it. */
static void test_private_library(void **state)
{
	struct fx *f = *state;
	const char *src[] = { SRC "/patch-lib.c", NULL };
	struct author_opts o;
	struct hp_manifest *m = NULL;
	char alone[160], cmd[400];

	opts_init(f, &o, BLD "/author-target-lib", src);
	assert_int_equal(author_build(&o, &m), 0);
	check_func(m, BLD "/author-target-lib", "compute", NULL);
	assert_int_equal(m->n_syms, 0);
	assert_string_equal(f->notes, "");
	hp_manifest_free(m);
	unlink(f->out);

	snprintf(alone, sizeof(alone), "%s/src/author-target-lib", f->dir);
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s/src' && cp '%s' '%s'", f->dir,
		 BLD "/author-target-lib", alone);
	assert_int_equal(system(cmd), 0);
	opts_init(f, &o, alone, src);
	expect_refusal(f, &o, -ENOENT, "symbol lib_value needed by the patch: neither BIN nor its "
		       "libraries provide it");
	assert_string_equal(f->notes, "BIN needs libauthorlib.so, not found on this system: its "
			    "symbols are not checked\n");
}

/* Two sources: a static compute in one, the replacement compute in the other. */
static void test_local_namesake(void **state)
{
	struct fx *f = *state;
	char a[160], b[160];
	const char *src[] = { a, b, NULL };
	struct author_opts o;

	write_src(f, "a.c", "static int compute(int x) { return x; }\n"
		  "int (*keep)(int) = compute;\n", a, sizeof(a));
	write_src(f, "b.c", "int compute(int x);\nint compute(int x) { return x + 1; }\n", b,
		  sizeof(b));
	opts_init(f, &o, TARGET, src);
	expect_refusal(f, &o, -EINVAL, "function compute: the patch also has a static compute: "
		       "rename it");
}

static void test_active_ok(void **state)
{
	struct fx *f = *state;
	const char *src[] = { SRC "/patch-good.c", NULL };
	const char *act[] = { "greet", NULL };
	struct author_opts o;
	struct hp_manifest *m = NULL;

	opts_init(f, &o, TARGET, src);
	o.active_ok = act;
	assert_int_equal(author_build(&o, &m), 0);
	assert_int_equal(hp_manifest_find_func(m, "greet")->flags, HP_FUNC_ACTIVE_OK);
	assert_int_equal(hp_manifest_find_func(m, "compute")->flags, 0);
	hp_manifest_free(m);
	unlink(f->out);
}

static void test_weak_left(void **state)
{
	struct fx *f = *state;
	const char *src[] = { SRC "/patch-weak.c", NULL };
	struct author_opts o;
	struct hp_manifest *m = NULL;

	opts_init(f, &o, TARGET, src);
	assert_int_equal(author_build(&o, &m), 0);
	assert_int_equal(m->n_syms, 0);
	assert_non_null(strstr(f->notes, "weak symbol optional_hook: neither BIN nor its "
				"libraries provide it; it stays null"));
	hp_manifest_free(m);
	unlink(f->out);
}

static void test_signed(void **state)
{
	struct fx *f = *state;
	const char *src[] = { SRC "/patch-good.c", NULL };
	struct author_opts o;
	struct hp_buf raw = HP_BUF_INIT, pub = HP_BUF_INIT;
	struct bundle b = { HP_BUF_INIT, HP_BUF_INIT, HP_BUF_INIT };
	char keydir[96], key[128], pubpath[128], keyid[17];
	unsigned char pk[32];

	snprintf(keydir, sizeof(keydir), "%s/keys", f->dir);
	snprintf(key, sizeof(key), "%s/hotpatch.key", keydir);
	snprintf(pubpath, sizeof(pubpath), "%s/hotpatch.pub", keydir);
	assert_int_equal(sign_generate(keydir), 0);
	opts_init(f, &o, TARGET, src);
	o.sign_key = key;
	assert_int_equal(author_build(&o, NULL), 0);
	assert_int_equal(hp_read_file(f->out, STORE_BUNDLE_MAX_BYTES, &raw), 0);
	assert_int_equal(bundle_read(raw.data, raw.len, &b), 0);
	assert_true(b.signature.len > 0);
	assert_int_equal(hp_read_file(pubpath, 4096, &pub), 0);
	assert_int_equal(sign_parse_pubkey(pub.data, pub.len, pk, keyid), 0);
	assert_int_equal(sign_verify(b.signature.data, b.signature.len, b.manifest.data,
				     b.manifest.len, pk), 0);
	bundle_release(&b);
	hp_buf_release(&raw);
	hp_buf_release(&pub);
	unlink(f->out);
	unlink(key);
	unlink(pubpath);
	rmdir(keydir);
}

static void test_prebuilt(void **state)
{
	struct fx *f = *state;
	char so[128], cmd[512];
	const char *src[] = { so, NULL };
	const char *two[] = { so, SRC "/patch-good.c", NULL };
	struct author_opts o;
	struct hp_manifest *m = NULL;

	snprintf(so, sizeof(so), "%s/prebuilt.so", f->dir);
	snprintf(cmd, sizeof(cmd), "${CC:-cc} -fPIC -shared -O2 -o '%s' '%s'", so,
		 SRC "/patch-static.c");
	assert_int_equal(system(cmd), 0);
	opts_init(f, &o, TARGET, src);
	assert_int_equal(author_build(&o, &m), 0);
	check_func(m, TARGET, "compute", NULL);
	check_sym(m, TARGET, "counter", NULL);
	hp_manifest_free(m);
	unlink(f->out);

	opts_init(f, &o, TARGET, two);
	unlink(so); /* the refusal comes first; keep the directory empty for expect_refusal */
	snprintf(cmd, sizeof(cmd), "${CC:-cc} -fPIC -shared -O2 -o '%s' '%s'", so,
		 SRC "/patch-static.c");
	assert_int_equal(system(cmd), 0);
	{
		struct hp_manifest *none = NULL;
		int r = author_build(&o, &none);

		assert_int_equal(r, -EINVAL);
		assert_string_equal(hp_errmsg(r), "a prebuilt patch object must be given alone");
		assert_false(exists(f->out));
	}
	unlink(so);
}

static void test_debug_file(void **state)
{
	struct fx *f = *state;
	const char *src[] = { SRC "/patch-static.c", NULL };
	char stripped[128], dbg[128], dbg_other[128], cmd[1024];
	struct author_opts o;
	struct hp_manifest *m = NULL;

	snprintf(stripped, sizeof(stripped), "%s/author-target", f->dir);
	snprintf(dbg, sizeof(dbg), "%s/author-target.debug", f->dir);
	snprintf(dbg_other, sizeof(dbg_other), "%s/nopie.debug", f->dir);
	snprintf(cmd, sizeof(cmd),
		 "objcopy --only-keep-debug '%s' '%s' && strip -o '%s' '%s' && "
		 "objcopy --only-keep-debug '%s' '%s'",
		 TARGET, dbg, stripped, TARGET, TARGET_NOPIE, dbg_other);
	assert_int_equal(system(cmd), 0);

	opts_init(f, &o, stripped, src);
	o.debug_file = dbg;
	assert_int_equal(author_build(&o, &m), 0);
	check_func(m, TARGET, "compute", NULL);
	check_sym(m, TARGET, "bump", NULL);
	check_sym(m, TARGET, "counter", NULL);

	/* Found by build-id where -dbgsym packages put it ($HP_DEBUG_DIR for the test). */
	snprintf(cmd, sizeof(cmd),
		 "mkdir -p '%s/dbg/.build-id/%.2s' && cp '%s' '%s/dbg/.build-id/%.2s/%s.debug'",
		 f->dir, m->build_id, dbg, f->dir, m->build_id, m->build_id + 2);
	assert_int_equal(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "%s/dbg", f->dir);
	setenv("HP_DEBUG_DIR", cmd, 1);
	hp_manifest_free(m);
	m = NULL;
	unlink(f->out);
	opts_init(f, &o, stripped, src);
	assert_int_equal(author_build(&o, &m), 0);
	unsetenv("HP_DEBUG_DIR");
	check_sym(m, TARGET, "counter", NULL);
	assert_non_null(strstr(f->notes, "BIN is stripped: using its debug file "));
	hp_manifest_free(m);
	m = NULL;
	unlink(f->out);

	/* Stripped, no debug file: the statics are gone, and the message says what to do. */
	opts_init(f, &o, stripped, src);
	assert_int_equal(author_build(&o, &m), -ENOENT);
	assert_string_equal(hp_errmsg(-ENOENT), "function compute: not in BIN (BIN is stripped: "
			    "give its debug file with --debug)");
	assert_false(exists(f->out));

	/* A debug file of another build. */
	opts_init(f, &o, stripped, src);
	o.debug_file = dbg_other;
	assert_int_equal(author_build(&o, &m), -ENOEXEC);
	assert_non_null(strstr(hp_errmsg(-ENOEXEC), "is of another build"));
	assert_false(exists(f->out));
	unlink(stripped);
	unlink(dbg);
	unlink(dbg_other);
}

/* Write a patch source of the test's own into DIR/src/NAME; path in ret. */
static void write_src(struct fx *f, const char *name, const char *text, char *ret, size_t size)
{
	char dir[128];

	snprintf(dir, sizeof(dir), "%s/src", f->dir);
	mkdir(dir, 0755);
	snprintf(ret, size, "%s/%s", dir, name);
	assert_int_equal(hp_write_file_atomic(ret, text, strlen(text), 0644), 0);
}

static void test_source_date_epoch(void **state)
{
	struct fx *f = *state;
	const char *src[] = { SRC "/patch-good.c", NULL };
	struct author_opts o;
	struct hp_manifest *m = NULL;

	opts_init(f, &o, TARGET, src);
	setenv("SOURCE_DATE_EPOCH", "1770724800", 1);
	assert_int_equal(author_build(&o, &m), 0);
	assert_string_equal(m->created, "2026-02-10T12:00:00Z");
	hp_manifest_free(m);
	unlink(f->out);
	setenv("SOURCE_DATE_EPOCH", "soon", 1);
	expect_refusal(f, &o, -EINVAL, "SOURCE_DATE_EPOCH: not a number of seconds: soon");
	unsetenv("SOURCE_DATE_EPOCH");
}

/* ---- refused ----------------------------------------------------------------- */

static void test_missing_function(void **state)
{
	struct fx *f = *state;
	const char *src[] = { SRC "/patch-missing.c", NULL };
	struct author_opts o;

	opts_init(f, &o, TARGET, src);
	expect_refusal(f, &o, -ENOENT, "function no_such_function: not in BIN");
}

static void test_too_small(void **state)
{
	struct fx *f = *state;
	const char *src[] = { SRC "/patch-tiny.c", NULL };
	struct author_opts o;

	opts_init(f, &o, TARGET, src);
	expect_refusal(f, &o, -ENOEXEC, "function nothing: 1 byte, too small for the 5-byte jump");
}

static void test_ambiguous(void **state)
{
	struct fx *f = *state;
	const char *src[] = { SRC "/patch-ambig.c", NULL };
	const char *use[] = { SRC "/patch-ambig-use.c", NULL };
	const char *bad_pick[] = { "helper@target-main.c", NULL };
	struct author_opts o;

	opts_init(f, &o, TARGET, src);
	expect_refusal(f, &o, -ENOTUNIQ, "function helper: ambiguous in BIN (target-a.c, "
		       "target-b.c): pick one with --pick helper@FILE");
	opts_init(f, &o, TARGET, use);
	expect_refusal(f, &o, -ENOTUNIQ, "symbol helper: ambiguous in BIN (target-a.c, "
		       "target-b.c): pick one with --pick helper@FILE");
	opts_init(f, &o, TARGET, src);
	o.picks = bad_pick;
	expect_refusal(f, &o, -ENOENT, "function helper: not in target-main.c in BIN (found in: "
		       "target-a.c, target-b.c)");
}

static void test_undefined_symbol(void **state)
{
	struct fx *f = *state;
	const char *src[] = { SRC "/patch-undef.c", NULL };
	struct author_opts o;

	opts_init(f, &o, TARGET, src);
	expect_refusal(f, &o, -ENOENT, "symbol mystery_helper needed by the patch: neither BIN "
		       "nor its libraries provide it");
}

static void test_compiler_variant(void **state)
{
	struct fx *f = *state;
	const char *src[] = { SRC "/patch-variant.c", NULL };
	struct author_opts o;
	uint64_t value = 0, size = 0;

	/* The fixture has the variant, and only it. */
	elf_lookup(TARGET, "scaled.part.0", NULL, &value, &size);
	opts_init(f, &o, TARGET, src);
	expect_refusal(f, &o, -ENOENT, "symbol scaled needed by the patch: neither BIN nor its "
		       "libraries provide it (BIN has only scaled.part.0, a compiler-made variant "
		       "with another calling convention)");
}

static void test_no_build_id(void **state)
{
	struct fx *f = *state;
	const char *src[] = { SRC "/patch-good.c", NULL };
	struct author_opts o;

	opts_init(f, &o, TARGET_NOBID, src);
	expect_refusal(f, &o, -ENOEXEC, "BIN has no build-id: " TARGET_NOBID
		       " (link it with -Wl,--build-id)");
}

static void test_tls(void **state)
{
	struct fx *f = *state;
	const char *src[] = { SRC "/patch-tls.c", NULL };
	struct author_opts o;

	opts_init(f, &o, TARGET, src);
	expect_refusal(f, &o, -ENOTSUP, "the patch defines thread-local variables: not supported");
}

static void test_tls_extern_and_ifunc(void **state)
{
	struct fx *f = *state;
	char tls[160], ifn[160];
	const char *src_tls[] = { tls, NULL };
	const char *src_ifn[] = { ifn, NULL };
	struct author_opts o;

	write_src(f, "tls.c",
		  "extern __thread int depth __attribute__((tls_model(\"initial-exec\")));\n"
		  "int compute(int x);\n"
		  "int compute(int x) { return depth + x; }\n", tls, sizeof(tls));
	opts_init(f, &o, TARGET, src_tls);
	expect_refusal(f, &o, -ENOTSUP, "the patch uses thread-local storage (depth): not supported");

	write_src(f, "ifunc.c",
		  "int compute(int x);\n"
		  "static int impl(int x) { return x; }\n"
		  "static void *pick(void) { return (void *)impl; }\n"
		  "int compute(int x) __attribute__((ifunc(\"pick\")));\n", ifn, sizeof(ifn));
	opts_init(f, &o, TARGET, src_ifn);
	expect_refusal(f, &o, -ENOTSUP, "the patch defines an ifunc (compute): not supported");
}

static void test_cancel(void **state)
{
	struct fx *f = *state;
	const char *src[] = { SRC "/patch-good.c", NULL };
	static volatile sig_atomic_t stop = 1;
	struct author_opts o;
	char cmd[160];

	opts_init(f, &o, TARGET, src);
	o.cancel = &stop;
	expect_refusal(f, &o, -ECANCELED, "interrupted");
	/* Its compiler was started and stopped: no temporary directory left. */
	snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A '%s/tmp')\"", f->dir);
	assert_int_equal(system(cmd), 0);
}

static void test_output_dir_missing(void **state)
{
	struct fx *f = *state;
	const char *src[] = { SRC "/patch-good.c", NULL };
	struct author_opts o;
	char out[160];

	snprintf(out, sizeof(out), "%s/no-such-dir/set.tar", f->dir);
	opts_init(f, &o, TARGET, src);
	o.output = out;
	{
		char msg[200];

		snprintf(msg, sizeof(msg), "%s/no-such-dir: No such file or directory", f->dir);
		expect_refusal(f, &o, -ENOENT, msg);
	}
}

static void test_new_library(void **state)
{
	struct fx *f = *state;
	const char *src[] = { SRC "/patch-static.c", NULL };
	const char *flags[] = { "-Wl,--no-as-needed", "-lm", NULL };
	struct author_opts o;

	opts_init(f, &o, TARGET, src);
	o.cflags = flags;
	expect_refusal(f, &o, -ENOEXEC, "the patch needs libm.so.6, which BIN does not load");
}

static void test_compile_error(void **state)
{
	struct fx *f = *state;
	const char *src[] = { SRC "/patch-broken.c", NULL };
	struct author_opts o;
	struct hp_manifest *m = NULL;
	int r;

	opts_init(f, &o, TARGET, src);
	r = author_build(&o, &m);
	assert_int_equal(r, -EINVAL);
	assert_non_null(strstr(hp_errmsg(r), "compiling the patch failed: "));
	assert_non_null(strstr(hp_errmsg(r), "patch-broken.c:4"));
	assert_null(strchr(hp_errmsg(r), '\n'));
	/* The compiler's whole output went to the note. */
	assert_non_null(strstr(f->notes, "error:"));
	assert_false(exists(f->out));
}

static void test_bad_options(void **state)
{
	struct fx *f = *state;
	const char *src[] = { SRC "/patch-good.c", NULL };
	const char *bad_cve[] = { "CVE-26-1", NULL };
	const char *bad_pick[] = { "helper", NULL };
	const char *unused_pick[] = { "bump@target-main.c", NULL };
	const char *bad_active[] = { "nothing", NULL };
	const char *missing_src[] = { SRC "/no-such-file.c", NULL };
	struct author_opts o;
	char out_bad[160];

	opts_init(f, &o, TARGET, src);
	o.baseline = "2026-01";
	expect_refusal(f, &o, -EINVAL, "invalid baseline '2026-01' (expected YYYY.MM, e.g. 2026.01)");
	opts_init(f, &o, TARGET, src);
	o.month = "2026.02";
	expect_refusal(f, &o, -EINVAL, "invalid month '2026.02' (expected YYYY-MM, e.g. 2026-02)");
	opts_init(f, &o, TARGET, src);
	o.month = "2025-12";
	expect_refusal(f, &o, -EINVAL, "month 2025-12 is before baseline 2026.01");
	opts_init(f, &o, TARGET, src);
	o.name = "../evil";
	expect_refusal(f, &o, -EINVAL, "invalid patch-set name '../evil' (letters, digits, '._+-', "
		       "at most 64, starting with a letter or digit)");
	opts_init(f, &o, TARGET, src);
	o.cves = bad_cve;
	expect_refusal(f, &o, -EINVAL, "invalid CVE id 'CVE-26-1'");
	opts_init(f, &o, TARGET, src);
	o.picks = bad_pick;
	expect_refusal(f, &o, -EINVAL, "invalid --pick 'helper' (expected NAME@FILE, e.g. "
		       "helper@util.c)");
	opts_init(f, &o, TARGET, src);
	o.picks = unused_pick;
	expect_refusal(f, &o, -EINVAL, "--pick bump@target-main.c: the patch neither replaces nor "
		       "uses bump");
	opts_init(f, &o, TARGET, src);
	o.active_ok = bad_active;
	expect_refusal(f, &o, -EINVAL, "--active-ok nothing: the patch does not replace nothing");
	opts_init(f, &o, TARGET, src);
	o.description = "two\nlines";
	expect_refusal(f, &o, -EINVAL, "description: control character or longer than 1024 bytes");
	opts_init(f, &o, TARGET, missing_src);
	expect_refusal(f, &o, -ENOENT, SRC "/no-such-file.c: No such file or directory");
	opts_init(f, &o, TARGET, src);
	o.sign_key = "/nonexistent/hotpatch.key";
	expect_refusal(f, &o, -ENOENT, "signing key /nonexistent/hotpatch.key: No such file or "
		       "directory");
	opts_init(f, &o, BLD "/no-such-target", src);
	expect_refusal(f, &o, -ENOENT, BLD "/no-such-target: No such file or directory");
	snprintf(out_bad, sizeof(out_bad), "%s/set.rar", f->dir);
	opts_init(f, &o, TARGET, src);
	o.output = out_bad;
	{
		int r = author_build(&o, NULL);

		assert_int_equal(r, -EINVAL);
		assert_non_null(strstr(hp_errmsg(r), "unknown bundle format"));
		assert_false(exists(out_bad));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_good, setup, teardown),
		cmocka_unit_test_setup_teardown(test_patch_object, setup, teardown),
		cmocka_unit_test_setup_teardown(test_static_helper_and_variable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pick, setup, teardown),
		cmocka_unit_test_setup_teardown(test_global_over_local, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_function, setup, teardown),
		cmocka_unit_test_setup_teardown(test_private_library, setup, teardown),
		cmocka_unit_test_setup_teardown(test_local_namesake, setup, teardown),
		cmocka_unit_test_setup_teardown(test_active_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(test_weak_left, setup, teardown),
		cmocka_unit_test_setup_teardown(test_signed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prebuilt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_debug_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_function, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_small, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ambiguous, setup, teardown),
		cmocka_unit_test_setup_teardown(test_undefined_symbol, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compiler_variant, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_build_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_new_library, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_extern_and_ifunc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output_dir_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_source_date_epoch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compile_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_options, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

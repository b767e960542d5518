/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests: bundles (store/bundle.c). Round trips through every format,
 * then hostile archives written here with libarchive itself.
 */
#include <archive.h>
#include <archive_entry.h>
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

#include "store-int.h"

static char tmpdir[64];

static int group_setup(void **state)
{
	strcpy(tmpdir, "/tmp/hp-test-bundle-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void fill(struct bundle *b, bool sig)
{
	memset(b, 0, sizeof(*b));
	assert_int_equal(hp_buf_adds(&b->manifest, "hotpatch-manifest 1\nname x\n"), 0);
	assert_int_equal(hp_buf_add(&b->patch, "\x7f" "ELF\0\1\2\3", 8), 0);
	if (sig)
		assert_int_equal(hp_buf_adds(&b->signature, "hotpatch-signature 1 ed25519 x\n"), 0);
}

static void roundtrip(const char *ext, bool sig)
{
	struct bundle in, out = { HP_BUF_INIT, HP_BUF_INIT, HP_BUF_INIT };
	struct hp_buf file = HP_BUF_INIT;
	char path[128];

	fill(&in, sig);
	snprintf(path, sizeof(path), "%s/b%s", tmpdir, ext);
	assert_int_equal(bundle_write(path, &in), 0);
	assert_int_equal(hp_read_file(path, STORE_BUNDLE_MAX_BYTES, &file), 0);
	assert_int_equal(bundle_read(file.data, file.len, &out), 0);
	assert_int_equal(out.manifest.len, in.manifest.len);
	assert_memory_equal(out.manifest.data, in.manifest.data, in.manifest.len);
	assert_int_equal(out.patch.len, 8);
	assert_memory_equal(out.patch.data, in.patch.data, 8);
	assert_int_equal(out.signature.len, in.signature.len);
	if (sig)
		assert_memory_equal(out.signature.data, in.signature.data, in.signature.len);
	/* Same input, same bytes: bundles are reproducible. */
	{
		struct hp_buf again = HP_BUF_INIT;

		assert_int_equal(bundle_write(path, &in), 0);
		assert_int_equal(hp_read_file(path, STORE_BUNDLE_MAX_BYTES, &again), 0);
		if (strcmp(ext, ".tar.xz") != 0 && strcmp(ext, ".tar.gz") != 0) {
			assert_int_equal(again.len, file.len);
			assert_memory_equal(again.data, file.data, file.len);
		}
		hp_buf_release(&again);
	}
	bundle_release(&in);
	bundle_release(&out);
	hp_buf_release(&file);
}

static void test_roundtrip_tar(void **state) { roundtrip(".tar", true); }
static void test_roundtrip_targz(void **state) { roundtrip(".tar.gz", true); }
static void test_roundtrip_tarxz(void **state) { roundtrip(".tar.xz", true); }
static void test_roundtrip_zip(void **state) { roundtrip(".zip", true); }
static void test_roundtrip_unsigned(void **state) { roundtrip(".tar", false); }

static void test_write_bad_ext(void **state)
{
	struct bundle in;
	char path[128];

	fill(&in, false);
	snprintf(path, sizeof(path), "%s/b.rar", tmpdir);
	assert_int_equal(bundle_write(path, &in), -EINVAL);
	assert_int_equal(access(path, F_OK), -1);
	bundle_release(&in);
}

/* ---- hostile archives ---------------------------------------------------- */

enum fmt { TAR, TARGZ, ZIP };

struct member {
	const char *name;
	mode_t type;          /* AE_IFREG, AE_IFLNK, ... */
	const char *link;     /* symlink or hardlink target */
	bool hardlink;
	size_t size;          /* bytes of data (zeros unless data) */
	const char *data;
	bool unset_size;      /* streamed: the header carries no size */
};

static size_t make_archive(enum fmt fmt, const struct member *m, size_t n, void *buf, size_t cap)
{
	struct archive *a = archive_write_new();
	size_t used = 0;
	static char zeros[65536];

	assert_non_null(a);
	if (fmt == ZIP) {
		assert_int_equal(archive_write_set_format_zip(a), ARCHIVE_OK);
	} else {
		assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
		if (fmt == TARGZ)
			assert_int_equal(archive_write_add_filter_gzip(a), ARCHIVE_OK);
	}
	assert_int_equal(archive_write_open_memory(a, buf, cap, &used), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++) {
		struct archive_entry *e = archive_entry_new();

		archive_entry_set_pathname(e, m[i].name);
		archive_entry_set_filetype(e, m[i].type ? m[i].type : AE_IFREG);
		archive_entry_set_perm(e, 0644);
		if (m[i].type == AE_IFCHR)
			archive_entry_set_rdev(e, 0x0103);
		if (m[i].type == AE_IFLNK)
			archive_entry_set_symlink(e, m[i].link);
		if (m[i].hardlink)
			archive_entry_set_hardlink(e, m[i].link);
		if (m[i].unset_size)
			archive_entry_unset_size(e);
		else
			archive_entry_set_size(e, (la_int64_t)m[i].size);
		assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
		if (m[i].data) {
			assert_int_equal(archive_write_data(a, m[i].data, m[i].size), (la_ssize_t)m[i].size);
		} else {
			for (size_t done = 0; done < m[i].size;) {
				size_t k = m[i].size - done < sizeof(zeros) ? m[i].size - done : sizeof(zeros);

				assert_int_equal(archive_write_data(a, zeros, k), (la_ssize_t)k);
				done += k;
			}
		}
		archive_entry_free(e);
	}
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	return used;
}

#define MAN { "manifest", AE_IFREG, NULL, false, 5, "hello", false }
#define PATCH { "patch.so", AE_IFREG, NULL, false, 3, "elf", false }

/*
 * Cut a zip before its central directory: the reader then has only the
 * local headers, which for a streamed entry carry no size at all, so only
 * counting the inflated bytes can stop it.
 */
static size_t cut_central_directory(const void *buf, size_t len)
{
	const char *cd = memmem(buf, len, "PK\x01\x02", 4);

	assert_non_null(cd);
	return (size_t)(cd - (const char *)buf);
}

static void expect_reject_opt(enum fmt fmt, const struct member *m, size_t n, int err,
			      const char *words, bool cut)
{
	size_t cap = 4u << 20;
	void *buf = malloc(cap);
	size_t len = make_archive(fmt, m, n, buf, cap);
	struct bundle out = { HP_BUF_INIT, HP_BUF_INIT, HP_BUF_INIT };

	if (cut)
		len = cut_central_directory(buf, len);

	hp_err_clear();
	assert_int_equal(bundle_read(buf, len, &out), err);
	if (!strstr(hp_errmsg(err), words))
		fail_msg("message '%s' lacks '%s'", hp_errmsg(err), words);
	assert_null(out.manifest.data);
	assert_null(out.patch.data);
	free(buf);
}

static void expect_reject(enum fmt fmt, const struct member *m, size_t n, int err,
			  const char *words)
{
	expect_reject_opt(fmt, m, n, err, words, false);
}

static void test_good_handmade(void **state)
{
	const struct member m[] = { MAN, PATCH };
	size_t cap = 1u << 20;
	void *buf = malloc(cap);
	struct bundle out = { HP_BUF_INIT, HP_BUF_INIT, HP_BUF_INIT };

	for (int f = TAR; f <= ZIP; f++) {
		size_t len = make_archive((enum fmt)f, m, 2, buf, cap);

		assert_int_equal(bundle_read(buf, len, &out), 0);
		assert_int_equal(out.manifest.len, 5);
		assert_int_equal(out.signature.len, 0);
		bundle_release(&out);
	}
	free(buf);
}

static void test_dot_slash_ok(void **state)
{
	const struct member m[] = { { "./manifest", AE_IFREG, NULL, false, 5, "hello", false }, PATCH };
	size_t cap = 1u << 20;
	void *buf = malloc(cap);
	size_t len = make_archive(TAR, m, 2, buf, cap);
	struct bundle out = { HP_BUF_INIT, HP_BUF_INIT, HP_BUF_INIT };

	assert_int_equal(bundle_read(buf, len, &out), 0);
	bundle_release(&out);
	free(buf);
}

static void test_traversal(void **state)
{
	const struct member m[] = { MAN, { "../patch.so", AE_IFREG, NULL, false, 3, "elf", false } };
	const struct member m2[] = { MAN, { "x/../../patch.so", AE_IFREG, NULL, false, 3, "elf", false } };

	expect_reject(TAR, m, 2, -EINVAL, "path traversal");
	expect_reject(ZIP, m, 2, -EINVAL, "path traversal");
	expect_reject(TARGZ, m2, 2, -EINVAL, "path traversal");
}

static void test_absolute(void **state)
{
	const struct member m[] = { { "/manifest", AE_IFREG, NULL, false, 5, "hello", false }, PATCH };

	expect_reject(TAR, m, 2, -EINVAL, "absolute path");
}

static void test_symlink(void **state)
{
	const struct member m[] = { MAN, { "patch.so", AE_IFLNK, "/etc/passwd", false, 0, NULL, false } };

	expect_reject(TAR, m, 2, -EINVAL, "symbolic link");
	expect_reject(ZIP, m, 2, -EINVAL, "symbolic link");
}

static void test_hardlink(void **state)
{
	const struct member m[] = { MAN, { "patch.so", AE_IFREG, "manifest", true, 0, NULL, false } };

	expect_reject(TAR, m, 2, -EINVAL, "hard link");
}

static void test_device_fifo_dir(void **state)
{
	const struct member dev[] = { MAN, { "patch.so", AE_IFCHR, NULL, false, 0, NULL, false } };
	const struct member fifo[] = { MAN, { "patch.so", AE_IFIFO, NULL, false, 0, NULL, false } };
	const struct member dir[] = { { "manifest", AE_IFDIR, NULL, false, 0, NULL, false }, PATCH };

	expect_reject(TAR, dev, 2, -EINVAL, "character device");
	expect_reject(TAR, fifo, 2, -EINVAL, "fifo");
	expect_reject(TAR, dir, 2, -EINVAL, "directory");
}

static void test_duplicate(void **state)
{
	const struct member m[] = { MAN, PATCH, { "patch.so", AE_IFREG, NULL, false, 3, "evl", false } };

	expect_reject(TAR, m, 3, -EINVAL, "appears twice");
	expect_reject(ZIP, m, 3, -EINVAL, "appears twice");
}

static void test_unknown(void **state)
{
	const struct member m[] = { MAN, PATCH, { "README", AE_IFREG, NULL, false, 2, "hi", false } };

	expect_reject(TAR, m, 3, -EINVAL, "unknown member 'README'");
}

static void test_missing(void **state)
{
	const struct member m[] = { MAN };
	const struct member p[] = { PATCH };

	expect_reject(TAR, m, 1, -EINVAL, "no patch.so");
	expect_reject(TAR, p, 1, -EINVAL, "no manifest");
	expect_reject(TAR, NULL, 0, -EINVAL, "no manifest");
}

static void test_member_too_big_header(void **state)
{
	/* 33 MiB of zeros, gzip'd to a few tens of KiB: the header says so. */
	const struct member m[] = { MAN, { "patch.so", AE_IFREG, NULL, false,
					  STORE_MEMBER_MAX_BYTES + 1024u * 1024u, NULL, false } };

	expect_reject(TARGZ, m, 2, -EFBIG, "declares");
}

static void test_bomb_streamed(void **state)
{
	/* A zip whose entry carries no size: only counting the inflated bytes catches it. */
	const struct member m[] = { MAN, { "patch.so", AE_IFREG, NULL, false,
					  STORE_MEMBER_MAX_BYTES + 1024u * 1024u, NULL, true } };

	/* With its central directory the zip states the sizes: the header check. */
	expect_reject(ZIP, m, 2, -EFBIG, "member 'patch.so': declares");
	/* Without: the local header says nothing, the inflated bytes are counted. */
	expect_reject_opt(ZIP, m, 2, -EFBIG, "member 'patch.so': larger than 33554432 bytes", true);
}

static void test_manifest_limit(void **state)
{
	const struct member m[] = { { "manifest", AE_IFREG, NULL, false, HP_MANIFEST_MAX_BYTES + 1,
				      NULL, true }, PATCH };

	expect_reject_opt(ZIP, m, 2, -EFBIG, "member 'manifest': larger than", true);
}

static void test_garbage(void **state)
{
	struct bundle out = { HP_BUF_INIT, HP_BUF_INIT, HP_BUF_INIT };
	unsigned char junk[4096];

	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (unsigned char)(i * 2654435761u >> 13);
	assert_int_equal(bundle_read(junk, sizeof(junk), &out), -EINVAL);
	assert_int_equal(bundle_read(junk, 0, &out), -EINVAL);
	assert_null(out.manifest.data);
}

static void test_truncated(void **state)
{
	const struct member m[] = { MAN, PATCH };
	size_t cap = 1u << 20;
	void *buf = malloc(cap);
	size_t len = make_archive(TARGZ, m, 2, buf, cap);
	struct bundle out = { HP_BUF_INIT, HP_BUF_INIT, HP_BUF_INIT };

	assert_int_equal(bundle_read(buf, len / 2, &out), -EINVAL);
	free(buf);
}

static void test_input_too_big(void **state)
{
	size_t len = (size_t)STORE_BUNDLE_MAX_BYTES + 1;
	void *buf = calloc(1, len);
	struct bundle out = { HP_BUF_INIT, HP_BUF_INIT, HP_BUF_INIT };

	assert_non_null(buf);
	assert_int_equal(bundle_read(buf, len, &out), -EFBIG);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_tar),
		cmocka_unit_test(test_roundtrip_targz),
		cmocka_unit_test(test_roundtrip_tarxz),
		cmocka_unit_test(test_roundtrip_zip),
		cmocka_unit_test(test_roundtrip_unsigned),
		cmocka_unit_test(test_write_bad_ext),
		cmocka_unit_test(test_good_handmade),
		cmocka_unit_test(test_dot_slash_ok),
		cmocka_unit_test(test_traversal),
		cmocka_unit_test(test_absolute),
		cmocka_unit_test(test_symlink),
		cmocka_unit_test(test_hardlink),
		cmocka_unit_test(test_device_fifo_dir),
		cmocka_unit_test(test_duplicate),
		cmocka_unit_test(test_unknown),
		cmocka_unit_test(test_missing),
		cmocka_unit_test(test_member_too_big_header),
		cmocka_unit_test(test_bomb_streamed),
		cmocka_unit_test(test_manifest_limit),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_input_too_big),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

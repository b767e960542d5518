/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests: the catalog snapshot (store/snap.c) over a real store. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mkbundle.h"

struct fx {
	struct mkb_store s; /* an empty store, k1 not trusted yet (tests/lib/mkbundle.h) */
	struct bundle b1;   /* 2026.01/2026-02/fix-1 */
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f || mkb_store_setup(&f->s, "/tmp/hp-test-snap-XXXXXX", NULL, true) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	int r;

	bundle_release(&f->b1);
	r = mkb_store_teardown(&f->s);
	free(f);
	return r;
}

static void import(struct fx *f, const char *b, const char *m, const char *n, const char *bid,
		   struct bundle *keep)
{
	struct mkb_opts o = { b, m, n, NULL, bid, f->s.key, NULL, 0, NULL, false };
	struct bundle bb;
	struct hp_buf file = HP_BUF_INIT;
	char path[256];

	snprintf(path, sizeof(path), "%s/x.zip", f->s.dir);
	assert_int_equal(mkb_make(&o, &bb), 0);
	assert_int_equal(bundle_write(path, &bb), 0);
	assert_int_equal(hp_read_file(path, STORE_BUNDLE_MAX_BYTES, &file), 0);
	assert_int_equal(store_import_buf(f->s.st, file.data, file.len, NULL, NULL), 0);
	hp_buf_release(&file);
	if (keep)
		*keep = bb;
	else
		bundle_release(&bb);
}

static void populate(struct fx *f)
{
	assert_int_equal(store_key_trust(f->s.st, f->s.pub), 0);
	import(f, "2026.01", "2026-02", "fix-1", "aabb", &f->b1);
	import(f, "2026.01", "2026-03", "fix-1", "aabb", NULL);
	import(f, "2026.04", "2026-05", "x", "ccdd", NULL);
}

struct names {
	char list[16][64];
	struct store_node nodes[16];
	int n;
};

static int collect(void *ctx, const char *name, const struct store_node *node)
{
	struct names *nm = ctx;

	if (nm->n < 16) {
		snprintf(nm->list[nm->n], 64, "%s", name);
		nm->nodes[nm->n] = *node;
	}
	nm->n++;
	return 0;
}

static void test_empty(void **state)
{
	struct fx *f = *state;
	struct store_snap *snap;
	struct store_node node;
	struct names nm = { .n = 0 };
	char buf[64];

	assert_int_equal(store_snap_open(f->s.st, &snap), 0);
	assert_string_equal(store_snap_commit(snap), "");
	assert_int_equal(store_snap_stat(snap, "", &node), 0);
	assert_int_equal(node.type, STORE_NODE_DIR);
	assert_int_equal(store_snap_readdir(snap, "", collect, &nm), 0);
	assert_int_equal(nm.n, 0);
	assert_int_equal(store_snap_stat(snap, "latest", &node), -ENOENT);
	assert_int_equal(store_snap_readlink(snap, "latest", buf, sizeof(buf)), -ENOENT);
	store_snap_free(snap);
}

static void test_tree(void **state)
{
	struct fx *f = *state;
	struct store_snap *snap;
	struct store_node node;
	struct names nm = { .n = 0 };
	char buf[64];
	void *data;
	size_t len;

	populate(f);
	assert_int_equal(store_snap_open(f->s.st, &snap), 0);
	assert_int_equal(strlen(store_snap_commit(snap)), 40);

	/* Root: baselines and latest; trusted-keys hidden. */
	assert_int_equal(store_snap_readdir(snap, "", collect, &nm), 0);
	assert_int_equal(nm.n, 3);
	assert_string_equal(nm.list[0], "2026.01");
	assert_string_equal(nm.list[1], "2026.04");
	assert_string_equal(nm.list[2], "latest");
	assert_int_equal(nm.nodes[2].type, STORE_NODE_LINK);
	assert_int_equal(store_snap_stat(snap, "trusted-keys", &node), -ENOENT);
	assert_int_equal(store_snap_readdir(snap, "trusted-keys", collect, &nm), -ENOENT);

	/* latest -> the newest month. */
	assert_int_equal(store_snap_readlink(snap, "latest", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "2026.04/2026-05");
	assert_int_equal(store_snap_stat(snap, "/latest", &node), 0);
	assert_int_equal(node.type, STORE_NODE_LINK);
	assert_int_equal(node.size, strlen("2026.04/2026-05"));
	assert_int_equal(store_snap_readlink(snap, "latest", buf, 5), 0);
	assert_string_equal(buf, "2026");

	nm.n = 0;
	assert_int_equal(store_snap_readdir(snap, "2026.01", collect, &nm), 0);
	assert_int_equal(nm.n, 3);
	assert_string_equal(nm.list[0], "2026-02");
	assert_string_equal(nm.list[2], "BASELINE");
	assert_int_equal(nm.nodes[2].type, STORE_NODE_FILE);
	assert_true(nm.nodes[2].size > 20);

	nm.n = 0;
	assert_int_equal(store_snap_readdir(snap, "2026.01/2026-02/fix-1/", collect, &nm), 0);
	assert_int_equal(nm.n, 3);
	assert_string_equal(nm.list[0], "manifest");
	assert_string_equal(nm.list[1], "patch.so");
	assert_string_equal(nm.list[2], "signature");
	assert_int_equal(nm.nodes[0].size, f->b1.manifest.len);
	assert_int_equal(nm.nodes[1].size, f->b1.patch.len);

	assert_int_equal(store_snap_stat(snap, "2026.01/2026-02/fix-1/manifest", &node), 0);
	assert_int_equal(node.type, STORE_NODE_FILE);
	assert_int_equal(node.size, f->b1.manifest.len);
	assert_true(node.mtime > 1600000000);
	assert_int_equal(store_snap_read(snap, "2026.01/2026-02/fix-1/manifest", &data, &len), 0);
	assert_int_equal(len, f->b1.manifest.len);
	assert_memory_equal(data, f->b1.manifest.data, len);
	free(data);
	/* Twice: the second from the cache, same bytes. */
	assert_int_equal(store_snap_read(snap, "2026.01/2026-02/fix-1/patch.so", &data, &len), 0);
	assert_int_equal(len, f->b1.patch.len);
	assert_memory_equal(data, f->b1.patch.data, len);
	free(data);
	assert_int_equal(store_snap_read(snap, "2026.01/2026-02/fix-1/patch.so", &data, &len), 0);
	assert_memory_equal(data, f->b1.patch.data, len);
	free(data);

	/* Errors. */
	assert_int_equal(store_snap_stat(snap, "2027.01", &node), -ENOENT);
	assert_int_equal(store_snap_stat(snap, "2026.01/BASELINE/x", &node), -ENOTDIR);
	assert_int_equal(store_snap_stat(snap, "2026.01/../2026.04", &node), -ENOENT);
	assert_int_equal(store_snap_stat(snap, "2026.01//2026-02", &node), -ENOENT);
	assert_int_equal(store_snap_readdir(snap, "2026.01/BASELINE", collect, &nm), -ENOTDIR);
	assert_int_equal(store_snap_read(snap, "2026.01", &data, &len), -EISDIR);
	assert_int_equal(store_snap_read(snap, "2026.01/nope", &data, &len), -ENOENT);
	assert_int_equal(store_snap_readlink(snap, "2026.01/BASELINE", buf, sizeof(buf)), -EINVAL);
	store_snap_free(snap);
}

static void test_pinned(void **state)
{
	struct fx *f = *state;
	struct store_snap *old, *cur;
	struct store_node node;
	char buf[64];

	populate(f);
	assert_int_equal(store_snap_open(f->s.st, &old), 0);
	import(f, "2026.07", "2026-08", "y", "eeff", NULL);
	assert_int_equal(store_snap_open(f->s.st, &cur), 0);
	assert_string_not_equal(store_snap_commit(old), store_snap_commit(cur));
	assert_int_equal(store_snap_stat(old, "2026.07", &node), -ENOENT);
	assert_int_equal(store_snap_stat(cur, "2026.07/2026-08/y/manifest", &node), 0);
	assert_int_equal(store_snap_readlink(old, "latest", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "2026.04/2026-05");
	assert_int_equal(store_snap_readlink(cur, "latest", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "2026.07/2026-08");
	store_snap_free(old);
	store_snap_free(cur);
}

struct reader {
	struct store_snap *snap;
	const struct bundle *b1;
	int errors;
};

static void *reader_main(void *arg)
{
	struct reader *rd = arg;
	static const char *const paths[] = {
		"2026.01/2026-02/fix-1/manifest", "2026.01/2026-03/fix-1/manifest",
		"2026.04/2026-05/x/patch.so", "2026.01/BASELINE", "2026.04/BASELINE",
	};

	for (int it = 0; it < 300; it++) {
		for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
			struct store_node node;
			void *data;
			size_t len;

			if (store_snap_stat(rd->snap, paths[i], &node) < 0 ||
			    store_snap_read(rd->snap, paths[i], &data, &len) < 0 || len != node.size) {
				rd->errors++;
				continue;
			}
			if (i == 0 && (len != rd->b1->manifest.len ||
				       memcmp(data, rd->b1->manifest.data, len)))
				rd->errors++;
			free(data);
		}
	}
	return NULL;
}

static void test_threads(void **state)
{
	struct fx *f = *state;
	struct store_snap *snap;
	pthread_t th[4];
	struct reader rd[4];

	populate(f);
	assert_int_equal(store_snap_open(f->s.st, &snap), 0);
	for (int i = 0; i < 4; i++) {
		rd[i] = (struct reader){ snap, &f->b1, 0 };
		assert_int_equal(pthread_create(&th[i], NULL, reader_main, &rd[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(rd[i].errors, 0);
	}
	store_snap_free(snap);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tree, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pinned, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

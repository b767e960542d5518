/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests: lookup for the engine (store/index.c) over a real store. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mkbundle.h"

#define fx mkb_store /* the shared store fixture (tests/lib/mkbundle.h) */

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f || mkb_store_setup(f, "/tmp/hp-test-index-XXXXXX", NULL, false) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	int r = mkb_store_teardown(f);

	free(f);
	return r;
}

static int import_opts(struct fx *f, const char *b, const char *m, const char *n,
		       const char *target, const char *bid, const struct store_import_opts *io)
{
	struct mkb_opts o = { b, m, n, target, bid, f->key, NULL, 0, NULL, false };
	struct bundle bb;
	struct hp_buf file = HP_BUF_INIT;
	char path[256];
	int r;

	snprintf(path, sizeof(path), "%s/x.tar.xz", f->dir);
	assert_int_equal(mkb_make(&o, &bb), 0);
	assert_int_equal(bundle_write(path, &bb), 0);
	assert_int_equal(hp_read_file(path, STORE_BUNDLE_MAX_BYTES, &file), 0);
	r = store_import_buf(f->st, file.data, file.len, io, NULL);
	hp_buf_release(&file);
	bundle_release(&bb);
	return r;
}

static void import(struct fx *f, const char *b, const char *m, const char *n, const char *target,
		   const char *bid)
{
	assert_int_equal(import_opts(f, b, m, n, target, bid, NULL), 0);
}

static void populate(struct fx *f)
{
	import(f, "2026.01", "2026-02", "srv", "server", "aa01");
	import(f, "2026.01", "2026-03", "srv", "server", "aa01");
	import(f, "2026.01", "2026-02", "lib", "libfoo.so.1", "bb01");
	import(f, "2026.04", "2026-05", "srv", "server", "aa02");
}

static void test_lookup(void **state)
{
	struct fx *f = *state;
	struct store_snap *snap;
	struct store_patchset *ps;

	populate(f);
	assert_int_equal(store_snap_open(f->st, &snap), 0);
	assert_int_equal(store_lookup(snap, "aa01", NULL, &ps), 0);
	assert_string_equal(ps->set_id, "2026.01/2026-03/srv");
	assert_string_equal(ps->manifest->build_id, "aa01");
	assert_true(ps->signed_ok);
	assert_int_equal(strlen(ps->signer), 16);
	assert_true(ps->so_len > 0);
	store_patchset_free(ps);

	assert_int_equal(store_lookup(snap, "aa01", "2026-02", &ps), 0);
	assert_string_equal(ps->set_id, "2026.01/2026-02/srv");
	store_patchset_free(ps);
	assert_int_equal(store_lookup(snap, "aa01", "2026-05", &ps), -ENOENT);
	assert_int_equal(store_lookup(snap, "ffff", NULL, &ps), -ENOENT);
	assert_non_null(strstr(hp_errmsg(-ENOENT), "no patch set for build-id ffff"));
	assert_int_equal(store_lookup(snap, "XYZ", NULL, &ps), -EINVAL);
	assert_int_equal(store_lookup(snap, "bb01", NULL, &ps), 0);
	assert_string_equal(ps->set_id, "2026.01/2026-02/lib");
	store_patchset_free(ps);
	assert_int_equal(store_lookup(snap, "aa02", NULL, &ps), 0);
	assert_string_equal(ps->set_id, "2026.04/2026-05/srv");
	store_patchset_free(ps);
	store_snap_free(snap);
}

static void test_target_info(void **state)
{
	struct fx *f = *state;
	struct store_snap *snap;
	struct store_target_info ti = { 0 };

	populate(f);
	assert_int_equal(store_snap_open(f->st, &snap), 0);
	assert_int_equal(store_target_info(snap, "aa01", &ti), 0);
	assert_string_equal(ti.name, "server");
	assert_string_equal(ti.baseline, "2026.01");
	assert_string_equal(ti.newest_month, "2026-03");
	assert_string_equal(ti.newer_baseline, "2026.04");
	store_target_info_release(&ti);
	assert_int_equal(store_target_info(snap, "aa02", &ti), 0);
	assert_string_equal(ti.baseline, "2026.04");
	assert_null(ti.newer_baseline);
	store_target_info_release(&ti);
	assert_int_equal(store_target_info(snap, "bb01", &ti), 0);
	assert_null(ti.newer_baseline);
	assert_string_equal(ti.newest_month, "2026-02");
	store_target_info_release(&ti);
	assert_int_equal(store_target_info(snap, "cc00", &ti), -ENOENT);
	assert_true(store_knows_target_name(snap, "server"));
	assert_true(store_knows_target_name(snap, "libfoo.so.1"));
	assert_false(store_knows_target_name(snap, "nginx"));
	store_snap_free(snap);
}

static void test_version_order(void **state)
{
	struct fx *f = *state;
	struct store_snap *snap;
	struct store_patchset *ps;

	struct store_import_opts replace = { false, true };
	struct store_target_info ti = { 0 };
	char before[41], after[41], reason[128];

	/* One cumulative set per target and month: a second one is refused... */
	import(f, "2026.01", "2026-02", "fix-9", "server", "aa01");
	assert_int_equal(store_head(f->st, before), 0);
	assert_int_equal(import_opts(f, "2026.01", "2026-02", "fix-10", "server", "aa01", NULL),
			 -EEXIST);
	assert_non_null(strstr(hp_errmsg(-EEXIST), "target server already has "
				"2026.01/2026-02/fix-9 for 2026-02, and a month holds one cumulative "
				"set per target"));
	assert_int_equal(store_head(f->st, after), 0);
	assert_string_equal(before, after);
	/* ...unless it replaces the first, which is withdrawn in the same commit. */
	assert_int_equal(import_opts(f, "2026.01", "2026-02", "fix-10", "server", "aa01", &replace),
			 0);
	assert_int_equal(store_snap_open(f->st, &snap), 0);
	assert_int_equal(store_lookup(snap, "aa01", NULL, &ps), 0);
	assert_string_equal(ps->set_id, "2026.01/2026-02/fix-10");
	store_patchset_free(ps);
	assert_int_equal(store_target_info(snap, "aa01", &ti), 0);
	assert_string_equal(ti.newest_set, "2026.01/2026-02/fix-10");
	store_target_info_release(&ti);
	assert_int_equal(store_withdrawn(snap, "2026.01/2026-02/fix-9", reason, sizeof(reason)), 0);
	assert_string_equal(reason, "replaced by 2026.01/2026-02/fix-10");
	assert_int_equal(store_withdrawn(snap, "2026.01/2026-02/fix-10", NULL, 0), -ENOENT);
	assert_int_equal(store_get_set(snap, "2026.01/2026-02/fix-9", &ps), -ENOENT);
	store_snap_free(snap);
	/* Another target in the same month is no rival. */
	import(f, "2026.01", "2026-02", "lib", "libfoo.so.1", "bb01");
}

struct listed {
	char ids[8][64];
	int n;
};

static int list_cb(void *ctx, const struct store_set_info *si)
{
	struct listed *l = ctx;

	if (l->n < 8)
		snprintf(l->ids[l->n], 64, "%s %s %s", si->set_id, si->target, si->build_id);
	l->n++;
	return 0;
}

static void test_list(void **state)
{
	struct fx *f = *state;
	struct store_snap *snap;
	struct listed l = { .n = 0 };

	populate(f);
	assert_int_equal(store_snap_open(f->st, &snap), 0);
	assert_int_equal(store_list_sets(snap, NULL, NULL, list_cb, &l), 0);
	assert_int_equal(l.n, 4);
	assert_string_equal(l.ids[0], "2026.01/2026-02/lib libfoo.so.1 bb01");
	assert_string_equal(l.ids[1], "2026.01/2026-02/srv server aa01");
	assert_string_equal(l.ids[3], "2026.04/2026-05/srv server aa02");
	l.n = 0;
	assert_int_equal(store_list_sets(snap, "2026.01", "2026-03", list_cb, &l), 0);
	assert_int_equal(l.n, 1);
	assert_int_equal(store_list_sets(snap, "2027.01", NULL, list_cb, &l), -ENOENT);
	assert_int_equal(store_list_sets(snap, "bogus", NULL, list_cb, &l), -EINVAL);
	store_snap_free(snap);
}

/* Replace one file of the tree behind the import's back, as a bad git push could. */
static void overwrite(struct fx *f, const char *path, const void *data, size_t len)
{
	git_commit *head = NULL;
	git_oid oid;
	git_tree_update up;

	assert_int_equal(store_head_commit(f->st, &head, NULL), 0);
	assert_int_equal(git_blob_create_from_buffer(&oid, f->st->repo, data, len), 0);
	up = (git_tree_update){ GIT_TREE_UPDATE_UPSERT, oid, GIT_FILEMODE_BLOB, path };
	assert_int_equal(store_commit_updates(f->st, head, &up, 1, "tamper\n", NULL), 0);
	git_commit_free(head);
}

static void test_verify_again(void **state)
{
	struct fx *f = *state;
	struct store_snap *snap;
	struct store_patchset *ps;
	struct hp_buf sig = HP_BUF_INIT;
	static const char evil[] = "\177ELF evil";
	void *man;
	size_t man_len;

	populate(f);
	overwrite(f, "2026.01/2026-03/srv/patch.so", evil, sizeof(evil));
	assert_int_equal(store_snap_open(f->st, &snap), 0);
	assert_int_equal(store_lookup(snap, "aa01", NULL, &ps), -EKEYREJECTED);
	assert_non_null(strstr(hp_errmsg(-EKEYREJECTED), "does not match"));
	/* not kept: refused again, for the same reason */
	hp_err_clear();
	assert_int_equal(store_lookup(snap, "aa01", NULL, &ps), -EKEYREJECTED);
	assert_non_null(strstr(hp_errmsg(-EKEYREJECTED), "does not match"));
	/* The other sets are fine. */
	assert_int_equal(store_lookup(snap, "aa01", "2026-02", &ps), 0);
	store_patchset_free(ps);

	/* A manifest re-signed by an untrusted key. */
	assert_int_equal(store_snap_read(snap, "2026.01/2026-02/lib/manifest", &man, &man_len), 0);
	assert_int_equal(sign_manifest(f->key2, man, man_len, &sig), 0);
	store_snap_free(snap);
	overwrite(f, "2026.01/2026-02/lib/signature", sig.data, sig.len);
	assert_int_equal(store_snap_open(f->st, &snap), 0);
	assert_int_equal(store_lookup(snap, "bb01", NULL, &ps), -EKEYREJECTED);
	assert_non_null(strstr(hp_errmsg(-EKEYREJECTED), "untrusted key"));
	store_snap_free(snap);

	/* A signature over other bytes. */
	overwrite(f, "2026.01/2026-02/lib/signature", "hotpatch-signature 1 ed25519 x\n", 31);
	assert_int_equal(store_snap_open(f->st, &snap), 0);
	assert_int_equal(store_lookup(snap, "bb01", NULL, &ps), -EKEYREJECTED);
	store_snap_free(snap);
	free(man);
	hp_buf_release(&sig);
}

/* Remove one file of the tree, as a revocation does. */
static void remove_file(struct fx *f, const char *path)
{
	git_commit *head = NULL;
	git_tree_update up;

	assert_int_equal(store_head_commit(f->st, &head, NULL), 0);
	up = (git_tree_update){ GIT_TREE_UPDATE_REMOVE, { { 0 } }, GIT_FILEMODE_BLOB, path };
	assert_int_equal(store_commit_updates(f->st, head, &up, 1, "revoke\n", NULL), 0);
	git_commit_free(head);
}

/*
 * A set verified once is not verified again while its objects and its key
 * stay the same; anything else is verified as the first time: new bytes in
 * a verified set fail, and so does a verified set once its key is gone.
 */
static void test_verified_before(void **state)
{
	struct fx *f = *state;
	struct store_snap *snap;
	struct store_patchset *ps;
	static const char evil[] = "\177ELF evil";
	char path[128];

	populate(f);
	assert_int_equal(store_snap_open(f->st, &snap), 0);
	for (int i = 0; i < 2; i++) {
		/* verified, then found verified: the same answer */
		assert_int_equal(store_lookup(snap, "aa01", NULL, &ps), 0);
		assert_true(ps->signed_ok);
		store_patchset_free(ps);
	}
	assert_int_equal(store_lookup(snap, "bb01", NULL, &ps), 0);
	snprintf(path, sizeof(path), "%s/%s.pub", STORE_KEYS_DIR, ps->signer);
	store_patchset_free(ps);
	store_snap_free(snap);

	overwrite(f, "2026.01/2026-03/srv/patch.so", evil, sizeof(evil));
	assert_int_equal(store_snap_open(f->st, &snap), 0);
	assert_int_equal(store_lookup(snap, "aa01", NULL, &ps), -EKEYREJECTED);
	assert_non_null(strstr(hp_errmsg(-EKEYREJECTED), "does not match"));
	store_snap_free(snap);

	remove_file(f, path);
	assert_int_equal(store_snap_open(f->st, &snap), 0);
	assert_int_equal(store_lookup(snap, "bb01", NULL, &ps), -EKEYREJECTED);
	assert_non_null(strstr(hp_errmsg(-EKEYREJECTED), "untrusted key"));
	store_snap_free(snap);
}

/*
 * A set verified in a snapshot is kept by it: looked up again, by build-id
 * or by id, it is the same set (not read and verified anew), whole as long
 * as a caller holds it, the snapshot freed or not; another snapshot reads
 * and verifies its own. The snapshot keeps its last 32: the oldest makes
 * room, and is read again when asked for again.
 */
static void test_kept_in_snapshot(void **state)
{
	struct fx *f = *state;
	struct store_snap *snap, *snap2;
	struct store_patchset *ps, *again, *by_id, *other, *many[40];
	char bid[8], name[16];

	populate(f);
	assert_int_equal(store_snap_open(f->st, &snap), 0);
	assert_int_equal(store_snap_open(f->st, &snap2), 0);
	assert_int_equal(store_lookup(snap, "aa01", NULL, &ps), 0);
	assert_int_equal(store_lookup(snap, "aa01", NULL, &again), 0);
	assert_ptr_equal(again, ps);
	assert_int_equal(store_get_set(snap, "2026.01/2026-03/srv", &by_id), 0);
	assert_ptr_equal(by_id, ps);
	/* a month asked for is another set */
	assert_int_equal(store_lookup(snap, "aa01", "2026-02", &other), 0);
	assert_ptr_not_equal(other, ps);
	assert_string_equal(other->set_id, "2026.01/2026-02/srv");
	store_patchset_free(other);
	assert_int_equal(store_lookup(snap2, "aa01", NULL, &other), 0);
	assert_ptr_not_equal(other, ps);
	store_snap_free(snap);
	/* held past the snapshot: still the set, bytes and all */
	assert_string_equal(ps->set_id, "2026.01/2026-03/srv");
	assert_string_equal(ps->manifest->build_id, "aa01");
	assert_true(ps->signed_ok);
	assert_int_equal(ps->so_len, other->so_len);
	assert_memory_equal(ps->so, other->so, ps->so_len);
	store_patchset_free(ps);
	store_patchset_free(again);
	store_patchset_free(by_id);
	store_patchset_free(other);
	store_snap_free(snap2);

	/* 40 sets through one snapshot: the first 8 make room for the last 8 */
	for (int i = 0; i < 40; i++) {
		snprintf(bid, sizeof(bid), "c0%02x", i);
		snprintf(name, sizeof(name), "s%d", i);
		import(f, "2026.01", "2026-02", name, name, bid);
	}
	assert_int_equal(store_snap_open(f->st, &snap), 0);
	for (int i = 0; i < 40; i++) {
		snprintf(bid, sizeof(bid), "c0%02x", i);
		assert_int_equal(store_lookup(snap, bid, NULL, &many[i]), 0);
		assert_string_equal(many[i]->manifest->build_id, bid);
	}
	assert_int_equal(store_lookup(snap, "c000", NULL, &again), 0);
	assert_ptr_not_equal(again, many[0]); /* made room: read again */
	assert_string_equal(again->set_id, many[0]->set_id);
	assert_memory_equal(again->so, many[0]->so, again->so_len);
	store_patchset_free(again);
	assert_int_equal(store_lookup(snap, "c027", NULL, &again), 0);
	assert_ptr_equal(again, many[39]); /* the newest, kept */
	store_patchset_free(again);
	store_snap_free(snap);
	for (int i = 0; i < 40; i++) {
		snprintf(bid, sizeof(bid), "c0%02x", i);
		assert_string_equal(many[i]->manifest->build_id, bid);
		store_patchset_free(many[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_lookup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_target_info, setup, teardown),
		cmocka_unit_test_setup_teardown(test_version_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_again, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verified_before, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kept_in_snapshot, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests: the store (init, key trust, import, BASELINE, windows,
 * concurrency, log, pull/push) on real git repositories in a temp dir.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "mkbundle.h"

#define fx mkb_store /* the shared store fixture (tests/lib/mkbundle.h) */

static int setup_opts(void **state, bool allow_unsigned, const char *months)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct store_init_opts io = { allow_unsigned, months };

	if (!f || mkb_store_setup(f, "/tmp/hp-test-store-XXXXXX", &io, false) < 0)
		return -1;
	*state = f;
	return 0;
}

static int setup(void **state) { return setup_opts(state, false, NULL); }
static int setup_unsigned(void **state) { return setup_opts(state, true, NULL); }
static int setup_months(void **state) { return setup_opts(state, false, "1,7"); }

static int teardown(void **state)
{
	struct fx *f = *state;
	int r = mkb_store_teardown(f);

	free(f);
	return r;
}

static void head(struct fx *f, char out[41])
{
	assert_int_equal(store_head(f->st, out), 0);
}

/* Import a bundle made from o as a .tar file: the result of store_import. */
static int import(struct fx *f, const struct mkb_opts *o, bool force)
{
	char path[256];
	struct store_import_opts io = { force };

	snprintf(path, sizeof(path), "%s/%s-%s.tar", f->dir, o->month, o->name);
	assert_int_equal(mkb_write(o, path), 0);
	return store_import(f->st, path, &io, NULL);
}

static int count_cb(void *ctx, const struct store_log_entry *e)
{
	(*(int *)ctx)++;
	return 0;
}

static int n_commits(struct fx *f)
{
	int n = 0;

	assert_int_equal(store_log(f->st, count_cb, &n), 0);
	return n;
}

static int first_msg_cb(void *ctx, const struct store_log_entry *e)
{
	snprintf(ctx, 512, "%s", e->message);
	return 1;
}

static void test_init(void **state)
{
	struct fx *f = *state;
	struct store_init_opts bad = { false, "1,13" };
	char p[160];

	assert_int_equal(store_init(f->store, NULL), -EEXIST);
	snprintf(p, sizeof(p), "%s/other.git", f->dir);
	assert_int_equal(store_init(p, &bad), -EINVAL);
	assert_int_equal(access(p, F_OK), -1);
	assert_int_equal(store_open(p, &(struct store *){ NULL }), -ENOENT);
	/* The trust of the setup was the first commit. */
	assert_int_equal(n_commits(f), 1);
	assert_int_equal(store_key_trust(f->st, f->pub), 1);
	assert_int_equal(n_commits(f), 1);
}

static void test_import_ok(void **state)
{
	struct fx *f = *state;
	struct mkb_opts o = { "2026.01", "2026-02", "fix-1", NULL, "aabbcc", f->key, NULL, 0,
			      "CVE-2026-0001", false };
	char h0[41], h1[41], msg[512], *id = NULL, path[256];
	struct store_import_opts io = { false };
	struct store_snap *snap;
	void *data;
	size_t len;

	head(f, h0);
	snprintf(path, sizeof(path), "%s/b.tar.gz", f->dir);
	assert_int_equal(mkb_write(&o, path), 0);
	assert_int_equal(store_import(f->st, path, &io, &id), 0);
	assert_string_equal(id, "2026.01/2026-02/fix-1");
	free(id);
	head(f, h1);
	assert_string_not_equal(h0, h1);
	assert_int_equal(n_commits(f), 2);
	store_log(f->st, first_msg_cb, msg);
	assert_non_null(strstr(msg, "import 2026.01/2026-02/fix-1\n\n"));
	assert_non_null(strstr(msg, "target sample-server\n"));
	assert_non_null(strstr(msg, "build-id aabbcc\n"));
	assert_non_null(strstr(msg, "cve CVE-2026-0001\n"));
	assert_non_null(strstr(msg, "signer "));

	assert_int_equal(store_snap_open(f->st, &snap), 0);
	assert_string_equal(store_snap_commit(snap), h1);
	assert_int_equal(store_snap_read(snap, "2026.01/BASELINE", &data, &len), 0);
	assert_non_null(strstr(data, "hotpatch-baseline 1\nbaseline 2026.01\nkind planned\ncreated "));
	assert_non_null(strstr(data, "\ntarget sample-server aabbcc\n"));
	free(data);
	store_snap_free(snap);

	/* The same bytes again: success, no commit. */
	assert_int_equal(store_import(f->st, path, &io, NULL), 1);
	head(f, h0);
	assert_string_equal(h0, h1);
	/* Same id, other contents: refused. */
	o.cve = NULL;
	assert_int_equal(import(f, &o, false), -EEXIST);
	assert_non_null(strstr(hp_errmsg(-EEXIST), "already in the store with different contents"));
	head(f, h0);
	assert_string_equal(h0, h1);
}

static void expect_refused(struct fx *f, const struct mkb_opts *o, int err, const char *words)
{
	char before[41], after[41];
	int r;

	head(f, before);
	hp_err_clear();
	r = import(f, o, false);
	assert_int_equal(r, err);
	if (!strstr(hp_errmsg(r), words))
		fail_msg("message '%s' lacks '%s'", hp_errmsg(r), words);
	head(f, after);
	assert_string_equal(before, after);
}

static void test_refusals(void **state)
{
	struct fx *f = *state;
	struct mkb_opts o = { "2026.01", "2026-02", "fix-1", NULL, "aabbcc", f->key, NULL, 0, NULL, false };
	struct mkb_opts x;

	assert_int_equal(import(f, &o, false), 0);

	x = o, x.name = "unsigned", x.key = NULL;
	expect_refused(f, &x, -EKEYREJECTED, "unsigned");
	x = o, x.name = "untrusted", x.key = f->key2;
	expect_refused(f, &x, -EKEYREJECTED, "untrusted key");
	x = o, x.name = "tampered", x.tamper = true;
	expect_refused(f, &x, -EBADMSG, "does not match the manifest's patch-sha256");
	x = o, x.name = "late", x.month = "2026-04";
	expect_refused(f, &x, -ERANGE, "outside baseline 2026.01's window (2026-02..2026-03)");
	x = o, x.name = "early", x.month = "2025-12";
	expect_refused(f, &x, -ERANGE, "outside");
	x = o, x.name = "same-month", x.month = "2026-01";
	expect_refused(f, &x, -ERANGE, "outside");
	x = o, x.name = "rebuilt", x.build_id = "ddeeff";
	expect_refused(f, &x, -EEXIST, "has target sample-server with build-id aabbcc, not ddeeff");
	assert_int_equal(n_commits(f), 2);

	/* --force lets a month outside the window in. */
	x = o, x.name = "late", x.month = "2026-04";
	assert_int_equal(import(f, &x, true), 0);
	/* Another target joins the baseline. */
	x = o, x.name = "other", x.target = "other-server", x.build_id = "0102";
	assert_int_equal(import(f, &x, false), 0);
	assert_int_equal(n_commits(f), 4);
}

static void test_garbage(void **state)
{
	struct fx *f = *state;
	char before[41], after[41];
	static const char junk[] = "this is not an archive at all, just text\n";

	head(f, before);
	assert_int_equal(store_import_buf(f->st, junk, sizeof(junk), NULL, NULL), -EINVAL);
	assert_int_equal(store_import(f->st, "/nonexistent/b.tar", NULL, NULL), -ENOENT);
	head(f, after);
	assert_string_equal(before, after);
}

static void test_allow_unsigned(void **state)
{
	struct fx *f = *state;
	struct mkb_opts o = { "2026.01", "2026-02", "nosig", NULL, "aabbcc", NULL, NULL, 0, NULL, false };
	struct store_snap *snap;
	struct store_patchset *ps;

	assert_int_equal(import(f, &o, false), 0);
	o.name = "untrusted", o.key = f->key2;
	expect_refused(f, &o, -EKEYREJECTED, "untrusted key");
	assert_int_equal(store_snap_open(f->st, &snap), 0);
	assert_int_equal(store_lookup(snap, "aabbcc", NULL, &ps), 0);
	assert_false(ps->signed_ok);
	assert_null(ps->signer);
	store_patchset_free(ps);
	store_snap_free(snap);
}

static void test_window(void **state)
{
	unsigned q = store_parse_months("1,4,7,10");

	assert_int_equal(q, 0x249);
	assert_true(store_baseline_planned(q, "2026.01"));
	assert_false(store_baseline_planned(q, "2026.02"));
	assert_true(store_month_in_window(q, "2026.01", "2026-02"));
	assert_true(store_month_in_window(q, "2026.01", "2026-03"));
	assert_false(store_month_in_window(q, "2026.01", "2026-04"));
	assert_false(store_month_in_window(q, "2026.01", "2026-01"));
	assert_true(store_month_in_window(q, "2026.10", "2026-12"));
	assert_false(store_month_in_window(q, "2026.10", "2027-01"));
	/* Unplanned: the next two months, whatever the cycle. */
	assert_true(store_month_in_window(q, "2026.03", "2026-04"));
	assert_true(store_month_in_window(q, "2026.03", "2026-05"));
	assert_false(store_month_in_window(q, "2026.03", "2026-06"));
	assert_true(store_month_in_window(q, "2026.12", "2027-02"));
	/* A yearly cycle. */
	assert_true(store_month_in_window(1, "2026.01", "2026-12"));
	assert_false(store_month_in_window(1, "2026.01", "2027-01"));
	assert_int_equal(store_parse_months("0"), 0);
	assert_int_equal(store_parse_months(""), 0);
	assert_int_equal(store_parse_months("1,x"), 0);
	assert_int_equal(store_parse_months("1,"), 0);
	assert_int_equal(store_parse_months(",1"), 0);
	assert_int_equal(store_parse_months("1, 4"), 0);
	assert_int_equal(store_parse_months("-1"), 0);
	assert_int_equal(store_parse_months("12"), 0x800);
	assert_int_equal(store_parse_months("1,1"), 1);
}

static void test_unplanned_and_config(void **state)
{
	struct fx *f = *state; /* baseline months 1,7 */
	struct mkb_opts o = { "2026.01", "2026-06", "fix", NULL, "aabbcc", f->key, NULL, 0, NULL, false };
	struct store_snap *snap;
	void *data;
	size_t len;

	assert_int_equal(import(f, &o, false), 0); /* 1,7: 2026-06 is in 2026.01's window */
	o.baseline = "2026.03", o.month = "2026-05";
	assert_int_equal(import(f, &o, false), 0);
	o.month = "2026-06", o.name = "fix2";
	expect_refused(f, &o, -ERANGE, "unplanned, 2026-04..2026-05");
	assert_int_equal(store_snap_open(f->st, &snap), 0);
	assert_int_equal(store_snap_read(snap, "2026.03/BASELINE", &data, &len), 0);
	assert_non_null(strstr(data, "kind unplanned\n"));
	free(data);
	store_snap_free(snap);
}

static void test_concurrent_processes(void **state)
{
	struct fx *f = *state;
	enum { PROCS = 4, EACH = 8 };
	char paths[PROCS][EACH][160];
	pid_t pids[PROCS];
	int before = n_commits(f);

	for (int p = 0; p < PROCS; p++)
		for (int i = 0; i < EACH; i++) {
			char name[32], target[32], bid[16];
			/* One set per target and month: a target each. */
			struct mkb_opts o = { "2026.01", "2026-02", name, target, bid, f->key, NULL, 0,
					      NULL, false };

			snprintf(name, sizeof(name), "p%d-%d", p, i);
			snprintf(target, sizeof(target), "t-%d-%d", p, i);
			snprintf(bid, sizeof(bid), "aa%02x%02x", p, i);
			snprintf(paths[p][i], sizeof(paths[p][i]), "%s/%s.tar", f->dir, name);
			assert_int_equal(mkb_write(&o, paths[p][i]), 0);
		}
	for (int p = 0; p < PROCS; p++) {
		pids[p] = fork();
		assert_true(pids[p] >= 0);
		if (pids[p] == 0) {
			struct store *st;
			int bad = 0;

			if (store_open(f->store, &st) < 0)
				_exit(100);
			for (int i = 0; i < EACH; i++)
				if (store_import(st, paths[p][i], NULL, NULL) != 0)
					bad++;
			store_free(st);
			_exit(bad);
		}
	}
	for (int p = 0; p < PROCS; p++) {
		int status;

		assert_int_equal(waitpid(pids[p], &status, 0), pids[p]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	assert_int_equal(n_commits(f), before + PROCS * EACH);
}

static int make_bare(const char *path)
{
	git_repository *r;

	if (git_repository_init(&r, path, 1) < 0)
		return -1;
	git_repository_free(r);
	return 0;
}

static void test_pull_push(void **state)
{
	struct fx *f = *state;
	struct mkb_opts o = { "2026.01", "2026-02", "fix-1", NULL, "aabbcc", f->key, NULL, 0, NULL, false };
	char remote[160], other[160], ha[41], hb[41];
	struct store *b;

	snprintf(remote, sizeof(remote), "%s/remote.git", f->dir);
	snprintf(other, sizeof(other), "%s/other.git", f->dir);
	assert_int_equal(make_bare(remote), 0);
	assert_int_equal(import(f, &o, false), 0);
	assert_int_equal(store_push(f->st, remote), 0);
	assert_int_equal(store_push(f->st, remote), 1);

	assert_int_equal(store_init(other, NULL), 0);
	assert_int_equal(store_open(other, &b), 0);
	assert_int_equal(store_pull(b, remote), 0);
	head(f, ha);
	assert_int_equal(store_head(b, hb), 0);
	assert_string_equal(ha, hb);
	assert_int_equal(store_pull(b, remote), 1);

	/* A fast-forward. */
	o.name = "fix-2";
	o.target = "t2";
	o.build_id = "bb01";
	assert_int_equal(import(f, &o, false), 0);
	assert_int_equal(store_push(f->st, remote), 0);
	assert_int_equal(store_pull(b, remote), 0);
	head(f, ha);
	assert_int_equal(store_head(b, hb), 0);
	assert_string_equal(ha, hb);

	/* Diverged: a commit on each side. */
	o.name = "fix-a";
	o.target = "t3";
	o.build_id = "bb02";
	assert_int_equal(import(f, &o, false), 0);
	assert_int_equal(store_push(f->st, remote), 0);
	assert_int_equal(store_key_trust(b, f->pub2), 0);
	assert_int_equal(store_head(b, hb), 0);
	assert_int_equal(store_pull(b, remote), -EINVAL);
	assert_non_null(strstr(hp_errmsg(-EINVAL), "diverged"));
	assert_int_equal(store_head(b, ha), 0);
	assert_string_equal(ha, hb);
	assert_int_equal(store_push(b, remote), -EINVAL);
	assert_non_null(strstr(hp_errmsg(-EINVAL), "pull first"));

	/* A remote that is not a repository. */
	assert_true(store_pull(b, "/nonexistent/remote.git") < 0);
	store_free(b);
}

static int count_loose(const char *store)
{
	char cmd[256];
	FILE *p;
	int n = -1;

	snprintf(cmd, sizeof(cmd), "find '%s/objects' -path '*/objects/[0-9a-f][0-9a-f]/*' -type f | wc -l", store);
	p = popen(cmd, "r");
	if (p) {
		if (fscanf(p, "%d", &n) != 1)
			n = -1;
		pclose(p);
	}
	return n;
}

static void test_pack(void **state)
{
	struct fx *f = *state;
	struct mkb_opts o = { "2026.01", "2026-02", "fix-1", NULL, "aabbcc", f->key, NULL, 0, NULL, false };
	struct store_snap *before, *after;
	struct store_patchset *ps;
	char h0[41], h1[41], cmd[256];
	void *data;
	size_t len;
	int loose;

	assert_int_equal(import(f, &o, false), 0);
	o.name = "fix-2";
	o.target = "t2";
	o.build_id = "bb01";
	assert_int_equal(import(f, &o, false), 0);
	head(f, h0);
	assert_int_equal(store_snap_open(f->st, &before), 0);
	loose = count_loose(f->store);
	assert_true(loose > 10);
	assert_int_equal(store_pack(f->st), loose);
	assert_int_equal(count_loose(f->store), 0);
	head(f, h1);
	assert_string_equal(h0, h1);
	/* A snapshot opened before the pack reads on (from the pack). */
	assert_int_equal(store_snap_read(before, "2026.01/2026-02/fix-2/manifest", &data, &len), 0);
	free(data);
	assert_int_equal(store_lookup(before, "aabbcc", NULL, &ps), 0);
	store_patchset_free(ps);
	store_snap_free(before);
	assert_int_equal(store_snap_open(f->st, &after), 0);
	assert_int_equal(store_lookup(after, "aabbcc", "2026-02", &ps), 0);
	store_patchset_free(ps);
	store_snap_free(after);
	/* Imports go on on top of the pack; git agrees the repository is sound. */
	o.name = "fix-3";
	o.target = "t3";
	o.build_id = "bb02";
	assert_int_equal(import(f, &o, false), 0);
	loose = count_loose(f->store);
	assert_true(loose > 0);
	assert_int_equal(store_pack(f->st), loose);
	snprintf(cmd, sizeof(cmd), "git --git-dir='%s' fsck --no-progress --strict >/dev/null 2>&1", f->store);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(store_pack(f->st), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_init, setup, teardown),
		cmocka_unit_test_setup_teardown(test_import_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_allow_unsigned, setup_unsigned, teardown),
		cmocka_unit_test(test_window),
		cmocka_unit_test_setup_teardown(test_unplanned_and_config, setup_months, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_processes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pull_push, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pack, setup, teardown),
	};

	store_git_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}

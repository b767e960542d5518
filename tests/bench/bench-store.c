/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-store: the store's import rate and lookup time, each next to a
 * baseline measured in the same run (the machine is shared and noisy).
 *
 *  1. import N bundles (default 1000) one commit each, through
 *     store_import_buf; baseline: writing the same three files per set as
 *     plain files (mkdir + 3 writes).
 *  2. a store with M sets (default 10000, one commit, built directly):
 *     index build (first lookup), then store_lookup of random build-ids
 *     (median, p99; each verifies signature and patch-sha256); baselines:
 *     git_blob_lookup of the same three blobs by id, and reading the same
 *     three files from disk.
 *  3. the snapshot as hotpatchfs uses it: stat + read of every file of the
 *     catalog (a fresh snapshot) next to stat + read of the plain files.
 *
 *   bench-store [N_IMPORTS [N_SETS]]
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mkbundle.h"

static char tmp[64];

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t pct(uint64_t *v, size_t n, double p)
{
	qsort(v, n, sizeof(*v), cmp_u64);
	return v[(size_t)(p * (double)(n - 1))];
}

static void die(const char *what, int r)
{
	fprintf(stderr, "bench-store: %s: %s\n", what, hp_errmsg(r));
	exit(1);
}

/* A figure for tests/bench/run: "NAME VALUE UNIT [vs BASELINE]". */
static void figure(const char *name, double v, const char *unit, const char *base)
{
	printf("store.%s %.*f %s%s%s\n", name, v < 10 ? 2 : v < 100 ? 1 : 0, v, unit,
	       base ? " vs store." : "", base ? base : "");
}

static void write_plain(const char *dir, const struct bundle *b)
{
	static const char *const names[] = { "manifest", "patch.so", "signature" };
	const struct hp_buf *bufs[] = { &b->manifest, &b->patch, &b->signature };
	char path[512];

	mkdir(dir, 0755);
	for (int i = 0; i < 3; i++) {
		int fd;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0 || write(fd, bufs[i]->data, bufs[i]->len) != (ssize_t)bufs[i]->len)
			die("write plain file", -errno);
		close(fd);
	}
}

static void read_plain(const char *dir)
{
	static const char *const names[] = { "manifest", "patch.so", "signature" };
	char path[512];

	for (int i = 0; i < 3; i++) {
		struct hp_buf b = HP_BUF_INIT;
		int r;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		r = hp_read_file(path, STORE_MEMBER_MAX_BYTES, &b);
		if (r < 0)
			die("read plain file", r);
		hp_buf_release(&b);
	}
}

static void make_store(const char *path, const char *pub, struct store **ret)
{
	int r = store_init(path, NULL);

	if (r == 0)
		r = store_open(path, ret);
	if (r == 0)
		r = store_key_trust(*ret, pub);
	if (r < 0)
		die("store", r);
}

static void bench_import(const char *key, const char *pub, int n)
{
	struct store *st;
	struct hp_buf *files = calloc((size_t)n, sizeof(*files));
	struct bundle *bs = calloc((size_t)n, sizeof(*bs));
	uint64_t *t_imp = calloc((size_t)n, sizeof(uint64_t));
	uint64_t *t_plain = calloc((size_t)n, sizeof(uint64_t));
	char path[256], name[32];
	uint64_t t0, total_imp, total_plain, first_med, last_med;

	snprintf(path, sizeof(path), "%s/import.git", tmp);
	make_store(path, pub, &st);
	snprintf(path, sizeof(path), "%s/plain-import", tmp);
	mkdir(path, 0755);
	for (int i = 0; i < n; i++) {
		char bid[32], target[32];
		struct mkb_opts o = { "2026.01", i % 2 ? "2026-03" : "2026-02", name, target, bid, key,
				      NULL, 0, NULL, false };

		snprintf(name, sizeof(name), "set-%d", i);
		snprintf(bid, sizeof(bid), "%08x", 0x10000000u + (unsigned)i / 2);
		snprintf(target, sizeof(target), "target-%d", i / 2);
		if (mkb_make(&o, &bs[i]) < 0)
			die("make bundle", -EIO);
		snprintf(path, sizeof(path), "%s/b.tar.gz", tmp);
		if (bundle_write(path, &bs[i]) < 0 ||
		    hp_read_file(path, STORE_BUNDLE_MAX_BYTES, &files[i]) < 0)
			die("write bundle", -EIO);
	}
	t0 = hp_now_us();
	for (int i = 0; i < n; i++) {
		uint64_t a = hp_now_us();
		int r = store_import_buf(st, files[i].data, files[i].len, NULL, NULL);

		if (r != 0)
			die("import", r);
		t_imp[i] = hp_now_us() - a;
	}
	total_imp = hp_now_us() - t0;
	t0 = hp_now_us();
	for (int i = 0; i < n; i++) {
		uint64_t a = hp_now_us();

		snprintf(path, sizeof(path), "%s/plain-import/set-%d", tmp, i);
		write_plain(path, &bs[i]);
		t_plain[i] = hp_now_us() - a;
	}
	total_plain = hp_now_us() - t0;
	{
		size_t k = n < 100 ? (size_t)n : 100;
		uint64_t *first = malloc(k * sizeof(uint64_t)), *last = malloc(k * sizeof(uint64_t));

		memcpy(first, t_imp, k * sizeof(uint64_t));
		memcpy(last, t_imp + n - (int)k, k * sizeof(uint64_t));
		first_med = pct(first, k, 0.5);
		last_med = pct(last, k, 0.5);
		free(first);
		free(last);
	}
	printf("# import: %d bundles (tar.gz, signed), one commit each: %.2f s, %.0f bundles/s\n", n,
	       (double)total_imp / 1e6, n / ((double)total_imp / 1e6));
	printf("# import: per bundle median %llu us, p99 %llu us; first 100 median %llu us, last 100 median %llu us\n",
	       (unsigned long long)pct(t_imp, (size_t)n, 0.5), (unsigned long long)pct(t_imp, (size_t)n, 0.99),
	       (unsigned long long)first_med, (unsigned long long)last_med);
	printf("# baseline: the same 3 files per set as plain files: median %llu us, total %.2f s; import/plain %.1fx\n",
	       (unsigned long long)pct(t_plain, (size_t)n, 0.5), (double)total_plain / 1e6,
	       (double)total_imp / (double)(total_plain ? total_plain : 1));
	figure("import.rate", n / ((double)total_imp / 1e6), "bundles/s", NULL);
	figure("import.plain.p50", (double)pct(t_plain, (size_t)n, 0.5), "us", NULL);
	figure("import.p50", (double)pct(t_imp, (size_t)n, 0.5), "us", "import.plain.p50");
	for (int i = 0; i < n; i++) {
		hp_buf_release(&files[i]);
		bundle_release(&bs[i]);
	}
	free(files);
	free(bs);
	free(t_imp);
	free(t_plain);
	store_free(st);
}

struct big {
	int n;
	char (*bids)[16];
	char (*ids)[48];
	git_oid (*oids)[3];
};

static const char *const set_files[] = { "manifest", "patch.so", "signature" };

/* stat + read of every file of every set through snap: the time it took (us). */
static uint64_t snap_walk(struct store_snap *snap, const struct big *bg)
{
	uint64_t t0 = hp_now_us();
	struct store_node node;
	char path[512];
	void *data;
	size_t len;

	for (int i = 0; i < bg->n; i++)
		for (int k = 0; k < 3; k++) {
			snprintf(path, sizeof(path), "%s/%s", bg->ids[i], set_files[k]);
			if (store_snap_stat(snap, path, &node) < 0 ||
			    store_snap_read(snap, path, &data, &len) < 0 || len != node.size)
				die("snap walk", -EIO);
			free(data);
		}
	return hp_now_us() - t0;
}

/* n sets in one commit: 10 sets per target pair of months, 1000 per baseline. */
static void build_big(struct store *st, const char *key, struct big *bg)
{
	git_tree_update *up = calloc((size_t)bg->n * 3 + 64, sizeof(*up));
	char (*paths)[96] = calloc((size_t)bg->n * 3 + 64, sizeof(*paths));
	struct hp_buf baselines[64];
	int nb = (bg->n + 999) / 1000, nu = 0;
	git_commit *head = NULL;
	char plain[512];

	if (nb > 60)
		die("too many sets", -E2BIG);
	for (int b = 0; b < nb; b++) {
		hp_buf_init(&baselines[b]);
		hp_buf_addf(&baselines[b], "hotpatch-baseline 1\nbaseline %04d.%02d\nkind planned\n",
			    2000 + b / 4, 1 + 3 * (b % 4));
	}
	for (int i = 0; i < bg->n; i++) {
		int b = i / 1000, t = (i % 1000) / 2;
		char bl[8], mo[8], name[32], target[32];
		struct mkb_opts o = { bl, mo, name, target, bg->bids[i], key, NULL, 0, NULL, false };
		struct bundle bb;
		const struct hp_buf *m[3];
		static const char *const files[] = { "manifest", "patch.so", "signature" };

		snprintf(bl, sizeof(bl), "%04d.%02d", 2000 + b / 4, 1 + 3 * (b % 4));
		snprintf(mo, sizeof(mo), "%04d-%02d", 2000 + b / 4, 2 + 3 * (b % 4) + (i % 2));
		snprintf(name, sizeof(name), "fix-%d", t);
		snprintf(target, sizeof(target), "target-%d", t);
		snprintf(bg->bids[i], sizeof(bg->bids[i]), "%08x", 0x20000000u + (unsigned)(i / 2));
		if (mkb_make(&o, &bb) < 0)
			die("make set", -EIO);
		if (i % 2 == 0)
			hp_buf_addf(&baselines[b], "target %s %s\n", target, bg->bids[i]);
		snprintf(bg->ids[i], sizeof(bg->ids[i]), "%s/%s/%s", bl, mo, name);
		m[0] = &bb.manifest, m[1] = &bb.patch, m[2] = &bb.signature;
		snprintf(plain, sizeof(plain), "%s/plain/%s", tmp, bl);
		mkdir(plain, 0755);
		snprintf(plain, sizeof(plain), "%s/plain/%s/%s", tmp, bl, mo);
		mkdir(plain, 0755);
		snprintf(plain, sizeof(plain), "%s/plain/%s", tmp, bg->ids[i]);
		write_plain(plain, &bb);
		for (int k = 0; k < 3; k++) {
			if (git_blob_create_from_buffer(&bg->oids[i][k], st->repo, m[k]->data, m[k]->len) < 0)
				die("blob", store_git_err(-EIO, "blob"));
			snprintf(paths[nu], sizeof(paths[nu]), "%s/%s", bg->ids[i], files[k]);
			up[nu] = (git_tree_update){ GIT_TREE_UPDATE_UPSERT, bg->oids[i][k],
						    GIT_FILEMODE_BLOB, paths[nu] };
			nu++;
		}
		bundle_release(&bb);
	}
	for (int b = 0; b < nb; b++) {
		git_oid oid;

		if (git_blob_create_from_buffer(&oid, st->repo, baselines[b].data, baselines[b].len) < 0)
			die("blob", -EIO);
		snprintf(paths[nu], sizeof(paths[nu]), "%04d.%02d/BASELINE", 2000 + b / 4, 1 + 3 * (b % 4));
		up[nu] = (git_tree_update){ GIT_TREE_UPDATE_UPSERT, oid, GIT_FILEMODE_BLOB, paths[nu] };
		nu++;
		hp_buf_release(&baselines[b]);
	}
	if (store_head_commit(st, &head, NULL) < 0 ||
	    store_commit_updates(st, head, up, (size_t)nu, "bench: bulk sets\n", NULL) < 0)
		die("bulk commit", -EIO);
	git_commit_free(head);
	free(up);
	free(paths);
}

static void bench_lookup(const char *key, const char *pub, int n)
{
	struct big bg = { n, calloc((size_t)n, 16), calloc((size_t)n, 48), calloc((size_t)n, sizeof(git_oid[3])) };
	enum { Q = 2000 };
	uint64_t t_look[Q], t_blob[Q], t_plain[Q], t_crypto[Q], t0, t_index, t_build;
	struct store *st;
	struct store_snap *snap;
	struct store_patchset *ps;
	char path[512];
	unsigned seed = 12345;
	int r;

	snprintf(path, sizeof(path), "%s/big.git", tmp);
	make_store(path, pub, &st);
	snprintf(path, sizeof(path), "%s/plain", tmp);
	mkdir(path, 0755);
	t0 = hp_now_us();
	build_big(st, key, &bg);
	t_build = hp_now_us() - t0;
	printf("# lookup: store with %d sets built in one commit in %.1f s\n", n, (double)t_build / 1e6);

	if ((r = store_snap_open(st, &snap)) < 0)
		die("snap", r);
	t0 = hp_now_us();
	if ((r = store_lookup(snap, bg.bids[0], NULL, &ps)) < 0)
		die("lookup", r);
	t_index = hp_now_us() - t0;
	store_patchset_free(ps);
	for (int q = 0; q < Q; q++) {
		int i = (int)(rand_r(&seed) % (unsigned)n);
		uint64_t a = hp_now_us();

		r = store_lookup(snap, bg.bids[i], NULL, &ps);
		t_look[q] = hp_now_us() - a;
		if (r < 0)
			die("lookup", r);
		if (!ps->signed_ok || strcmp(ps->manifest->build_id, bg.bids[i]))
			die("lookup result", -EIO);
		store_patchset_free(ps);
	}
	for (int q = 0; q < Q; q++) {
		int i = (int)(rand_r(&seed) % (unsigned)n);
		uint64_t a = hp_now_us();

		for (int k = 0; k < 3; k++) {
			git_blob *blob;

			if (git_blob_lookup(&blob, st->repo, &bg.oids[i][k]) < 0)
				die("blob lookup", -EIO);
			git_blob_free(blob);
		}
		t_blob[q] = hp_now_us() - a;
	}
	for (int q = 0; q < Q; q++) {
		int i = (int)(rand_r(&seed) % (unsigned)n);
		uint64_t a = hp_now_us();

		snprintf(path, sizeof(path), "%s/plain/%s", tmp, bg.ids[i]);
		read_plain(path);
		t_plain[q] = hp_now_us() - a;
	}
	/* The floor any verified lookup pays: the same files from disk, sha256 and ed25519. */
	{
		struct hp_buf pk_text = HP_BUF_INIT;
		unsigned char pk[32];
		char kid[17];

		if (hp_read_file(pub, 4096, &pk_text) < 0 ||
		    sign_parse_pubkey(pk_text.data, pk_text.len, pk, kid) < 0)
			die("public key", -EIO);
		hp_buf_release(&pk_text);
		for (int q = 0; q < Q; q++) {
			int i = (int)(rand_r(&seed) % (unsigned)n);
			struct hp_buf m = HP_BUF_INIT, so = HP_BUF_INIT, sg = HP_BUF_INIT;
			char sha[65];
			uint64_t a = hp_now_us();

			snprintf(path, sizeof(path), "%s/plain/%s/manifest", tmp, bg.ids[i]);
			r = hp_read_file(path, HP_MANIFEST_MAX_BYTES, &m);
			snprintf(path, sizeof(path), "%s/plain/%s/patch.so", tmp, bg.ids[i]);
			r = r ?: hp_read_file(path, STORE_MEMBER_MAX_BYTES, &so);
			snprintf(path, sizeof(path), "%s/plain/%s/signature", tmp, bg.ids[i]);
			r = r ?: hp_read_file(path, 4096, &sg);
			if (r < 0 || sign_verify(sg.data, sg.len, m.data, m.len, pk) < 0)
				die("plain verify", -EIO);
			sign_sha256_hex(so.data, so.len, sha);
			t_crypto[q] = hp_now_us() - a;
			hp_buf_release(&m);
			hp_buf_release(&so);
			hp_buf_release(&sg);
		}
	}
	printf("# lookup: index built on first lookup in %.1f ms\n", (double)t_index / 1e3);
	figure("index.first_lookup", (double)t_index / 1e3, "ms", NULL);
	{
		uint64_t lm = pct(t_look, Q, 0.5), lp = pct(t_look, Q, 0.99);
		uint64_t bm = pct(t_blob, Q, 0.5), bp = pct(t_blob, Q, 0.99);
		uint64_t pm = pct(t_plain, Q, 0.5), pp = pct(t_plain, Q, 0.99);

		printf("# lookup: store_lookup (index + read + verify ed25519 + sha256): median %llu us, p99 %llu us\n",
		       (unsigned long long)lm, (unsigned long long)lp);
		printf("# baseline: git_blob_lookup of the same 3 blobs: median %llu us, p99 %llu us; lookup/blob %.1fx\n",
		       (unsigned long long)bm, (unsigned long long)bp, (double)lm / (double)(bm ? bm : 1));
		uint64_t cm = pct(t_crypto, Q, 0.5), cp = pct(t_crypto, Q, 0.99);

		printf("# baseline: reading the same 3 files from disk: median %llu us, p99 %llu us; lookup/plain %.1fx\n",
		       (unsigned long long)pm, (unsigned long long)pp, (double)lm / (double)(pm ? pm : 1));
		printf("# baseline: same files + ed25519 verify + sha256 (the floor of a verified read): median %llu us, p99 %llu us; lookup/floor %.1fx\n",
		       (unsigned long long)cm, (unsigned long long)cp, (double)lm / (double)(cm ? cm : 1));
		figure("lookup.plain.p50", (double)pm, "us", NULL);
		figure("lookup.blob.p50", (double)bm, "us", NULL);
		figure("lookup.floor.p50", (double)cm, "us", NULL);
		figure("lookup.p50", (double)lm, "us", "lookup.floor.p50");
		figure("lookup.p99", (double)lp, "us", NULL);
	}
	store_snap_free(snap);

	/* The catalog walk hotpatchfs does for find + cat, on a fresh snapshot. */
	{
		const char *const *files = set_files;
		uint64_t t_snap, t_disk;
		struct store_node node;

		if ((r = store_snap_open(st, &snap)) < 0)
			die("snap", r);
		t_snap = snap_walk(snap, &bg);
		t0 = hp_now_us();
		for (int i = 0; i < n; i++) {
			struct stat sb;

			for (int k = 0; k < 3; k++) {
				snprintf(path, sizeof(path), "%s/plain/%s/%s", tmp, bg.ids[i], files[k]);
				if (stat(path, &sb) < 0)
					die("stat", -errno);
			}
			snprintf(path, sizeof(path), "%s/plain/%s", tmp, bg.ids[i]);
			read_plain(path);
		}
		t_disk = hp_now_us() - t0;
		printf("# snapshot: stat+read of all %d files: %.1f ms cold; plain files %.1f ms; snap/plain %.1fx\n",
		       3 * n, (double)t_snap / 1e3, (double)t_disk / 1e3,
		       (double)t_snap / (double)(t_disk ? t_disk : 1));
		figure("snapshot.plain", (double)t_disk / 1e3, "ms", NULL);
		figure("snapshot.walk", (double)t_snap / 1e3, "ms", "snapshot.plain");
		t0 = hp_now_us();
		for (int i = 0; i < n; i++)
			for (int k = 0; k < 3; k++) {
				snprintf(path, sizeof(path), "%s/%s", bg.ids[i], files[k]);
				if (store_snap_stat(snap, path, &node) < 0)
					die("snap stat", -EIO);
			}
		t_snap = hp_now_us() - t0;
		printf("# snapshot: stat of all %d files again (directories cached): %.1f ms, %.2f us each\n",
		       3 * n, (double)t_snap / 1e3, (double)t_snap / (3.0 * n));
		store_snap_free(snap);

		/* The same walk once the objects are packed (imports do it every ~6700 loose objects). */
		t0 = hp_now_us();
		if ((r = store_pack(st)) < 0)
			die("pack", r);
		printf("# pack: %d loose objects packed in %.1f ms\n", r, (double)(hp_now_us() - t0) / 1e3);
		if ((r = store_snap_open(st, &snap)) < 0)
			die("snap", r);
		t_snap = snap_walk(snap, &bg);
		printf("# snapshot: stat+read of all %d files, packed store: %.1f ms cold; snap/plain %.1fx\n",
		       3 * n, (double)t_snap / 1e3, (double)t_snap / (double)(t_disk ? t_disk : 1));
		store_snap_free(snap);
		if ((r = store_snap_open(st, &snap)) < 0)
			die("snap", r);
		t0 = hp_now_us();
		if ((r = store_lookup(snap, bg.bids[1], NULL, &ps)) < 0)
			die("lookup", r);
		store_patchset_free(ps);
		printf("# lookup: index built on first lookup, packed store, set infos memoised: %.1f ms\n",
		       (double)(hp_now_us() - t0) / 1e3);
		store_snap_free(snap);
	}

	/* One import later: a new commit, a new snapshot, its index. */
	{
		struct mkb_opts o = { "2000.01", "2000-03", "one-more", "target-x", "99999999", key, NULL,
				      0, NULL, false };
		struct bundle bb;
		char bpath[256];
		struct hp_buf file = HP_BUF_INIT;

		snprintf(bpath, sizeof(bpath), "%s/one.tar", tmp);
		if (mkb_make(&o, &bb) < 0 || bundle_write(bpath, &bb) < 0 ||
		    hp_read_file(bpath, STORE_BUNDLE_MAX_BYTES, &file) < 0)
			die("one more", -EIO);
		t0 = hp_now_us();
		if ((r = store_import_buf(st, file.data, file.len, NULL, NULL)) != 0)
			die("import one more", r);
		printf("# lookup: one more import into the %d-set store: %.1f ms\n", n,
		       (double)(hp_now_us() - t0) / 1e3);
		if ((r = store_snap_open(st, &snap)) < 0)
			die("snap", r);
		t0 = hp_now_us();
		if ((r = store_lookup(snap, "99999999", NULL, &ps)) < 0)
			die("lookup", r);
		printf("# lookup: index of the next commit (new snapshot, set infos memoised by tree id): %.1f ms\n",
		       (double)(hp_now_us() - t0) / 1e3);
		store_patchset_free(ps);
		store_snap_free(snap);
		bundle_release(&bb);
		hp_buf_release(&file);
	}
	store_free(st);
	free(bg.bids);
	free(bg.ids);
	free(bg.oids);
}

int main(int argc, char **argv)
{
	int n_imports = argc > 1 ? atoi(argv[1]) : 1000;
	int n_sets = argc > 2 ? atoi(argv[2]) : 10000;
	char key[128], pub[128], cmd[128];

	if (n_imports < 1 || n_sets < 2 || n_sets > 60000) {
		fprintf(stderr, "usage: bench-store [N_IMPORTS [N_SETS (2..60000)]]\n");
		return 2;
	}
	store_git_init();
	strcpy(tmp, "/tmp/hp-bench-store-XXXXXX");
	if (!mkdtemp(tmp))
		return 1;
	snprintf(key, sizeof(key), "%s/k", tmp);
	if (store_key_generate(key) < 0)
		die("key", -EIO);
	snprintf(key, sizeof(key), "%s/k/hotpatch.key", tmp);
	snprintf(pub, sizeof(pub), "%s/k/hotpatch.pub", tmp);
	bench_import(key, pub, n_imports);
	bench_lookup(key, pub, n_sets);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	return system(cmd) == 0 ? 0 : 1;
}

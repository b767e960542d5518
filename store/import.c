/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Import: a bundle becomes one commit "import BASELINE/MONTH/NAME", or
 * nothing changes. Checks that need no store state (archive, manifest,
 * patch-sha256, window) come first, then the signature against HEAD as it
 * is (so a bundle refused for it writes no object); those that read the
 * tree (trusted keys again, existing set, BASELINE) run under the store's
 * lock against the HEAD the commit will have as parent.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store-int.h"


/* Trusted key for keyid in tree, raw. -ENOENT when the store does not trust it. */
static int trusted_key(struct store *st, git_tree *tree, const char *keyid, unsigned char pk[32])
{
	struct hp_buf text = HP_BUF_INIT;
	char path[64], id[SIGN_KEYID_SIZE];
	int r;

	if (!tree)
		return -ENOENT;
	snprintf(path, sizeof(path), "%s/%s.pub", STORE_KEYS_DIR, keyid);
	r = store_tree_read(st->repo, tree, path, STORE_KEYFILE_MAX, &text);
	if (r < 0)
		goto out;
	r = sign_parse_pubkey(text.data, text.len, pk, id);
	if (r == 0 && strcmp(id, keyid) != 0)
		r = hp_err(-EINVAL, "trusted key %s: file holds key %s", keyid, id);
out:
	hp_buf_release(&text);
	return r;
}

int store_verify_signature(struct store *st, git_tree *tree, bool allow_unsigned,
			   const struct hp_buf *manifest, const struct hp_buf *sig,
			   char ret_keyid[SIGN_KEYID_SIZE])
{
	unsigned char pk[32];
	char keyid[SIGN_KEYID_SIZE];
	int r;

	if (sig->len == 0) {
		if (!allow_unsigned)
			return hp_err(-EKEYREJECTED, "unsigned (the store accepts signed sets only)");
		ret_keyid[0] = '\0';
		return 0;
	}
	r = sign_keyid(sig->data, sig->len, keyid);
	if (r < 0)
		return hp_err(-EKEYREJECTED, "%s", "malformed signature");
	r = trusted_key(st, tree, keyid, pk);
	if (r == -ENOENT && store_tree_key_revoked(tree, keyid))
		return hp_err(-EKEYREVOKED, "signed by revoked key %s (see hp log)", keyid);
	if (r == -ENOENT)
		return hp_err(-EKEYREJECTED, "signed by untrusted key %s (see hp key trust)", keyid);
	if (r < 0)
		return r;
	r = sign_verify(sig->data, sig->len, manifest->data, manifest->len, pk);
	if (r < 0)
		return r;
	memcpy(ret_keyid, keyid, sizeof(keyid));
	return 0;
}

/* The months a baseline's window holds, for messages: "2026-02..2026-03". */
static void window_text(unsigned mask, const char *baseline, char *buf, size_t size)
{
	int y = atoi(baseline), m = atoi(baseline + 5);
	int first = -1, last = -1;

	for (int k = 1; k <= 12; k++) {
		int mm = (m - 1 + k) % 12 + 1, yy = y + (m - 1 + k) / 12;
		char month[16];

		snprintf(month, sizeof(month), "%04d-%02d", yy, mm);
		if (!store_month_in_window(mask, baseline, month))
			break;
		if (first < 0)
			first = k;
		last = k;
	}
	if (first < 0) {
		snprintf(buf, size, "empty");
		return;
	}
	snprintf(buf, size, "%04d-%02d..%04d-%02d", y + (m - 1 + first) / 12,
		 (m - 1 + first) % 12 + 1, y + (m - 1 + last) / 12, (m - 1 + last) % 12 + 1);
}

static void now_iso(char buf[32])
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

struct import_ctx {
	struct store *st;
	const struct store_import_opts *opts;
	struct bundle b;
	struct hp_manifest *m;
	char *set_id;
	git_oid man_oid, patch_oid, sig_oid;
	char keyid[SIGN_KEYID_SIZE];
};

/* Same set id already in the tree: identical (1) or conflicting (-EEXIST). */
static int existing_set(struct import_ctx *c, git_tree *tree)
{
	static const char *const members[] = { BUNDLE_MANIFEST, BUNDLE_PATCH, BUNDLE_SIGNATURE };
	const git_oid *ours[] = { &c->man_oid, &c->patch_oid, c->b.signature.len ? &c->sig_oid : NULL };
	git_tree_entry *dir = NULL;
	int r;

	if (!tree)
		return 0;
	r = git_tree_entry_bypath(&dir, tree, c->set_id);
	if (r == GIT_ENOTFOUND)
		return 0;
	if (r < 0)
		return store_git_err(-EIO, c->set_id);
	git_tree_entry_free(dir);
	for (size_t i = 0; i < 3; i++) {
		git_tree_entry *e = NULL;
		char path[256];
		bool same;

		snprintf(path, sizeof(path), "%s/%s", c->set_id, members[i]);
		r = git_tree_entry_bypath(&e, tree, path);
		if (r < 0 && r != GIT_ENOTFOUND)
			return store_git_err(-EIO, path);
		same = (r == GIT_ENOTFOUND) ? ours[i] == NULL
					    : ours[i] && git_oid_equal(ours[i], git_tree_entry_id(e));
		git_tree_entry_free(e);
		if (!same)
			return hp_err(-EEXIST, "%s is already in the store with different contents",
				      c->set_id);
	}
	return 1;
}

/* The "target" line of a manifest blob at path in tree, into buf. */
static int manifest_target(struct store *st, git_tree *tree, const char *path, char *buf,
			   size_t size)
{
	struct hp_buf text = HP_BUF_INIT;
	const char *p;
	int r;

	r = store_tree_read(st->repo, tree, path, HP_MANIFEST_MAX_BYTES, &text);
	if (r < 0)
		return r;
	p = text.data;
	r = -ENOENT;
	while (p && *p) {
		if (!strncmp(p, "target ", 7)) {
			snprintf(buf, size, "%.*s", (int)strcspn(p + 7, "\n"), p + 7);
			r = 0;
			break;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	hp_buf_release(&text);
	return r;
}

/*
 * A month holds one cumulative set per target: the name of another set of
 * the same baseline and month for the same target into rival ("" when
 * there is none). Within a baseline a target name is one build.
 */
static int month_rival(struct import_ctx *c, git_tree *tree, char *rival, size_t size)
{
	git_tree_entry *me = NULL;
	git_tree *mt = NULL;
	char path[256], target[256];
	int r = 0;

	rival[0] = '\0';
	if (!tree)
		return 0;
	snprintf(path, sizeof(path), "%s/%s", c->m->baseline, c->m->month);
	if (git_tree_entry_bypath(&me, tree, path) < 0)
		return 0;
	if (git_tree_entry_type(me) != GIT_OBJECT_TREE ||
	    git_tree_lookup(&mt, c->st->repo, git_tree_entry_id(me)) < 0)
		goto out;
	for (size_t i = 0; i < git_tree_entrycount(mt); i++) {
		const git_tree_entry *e = git_tree_entry_byindex(mt, i);
		const char *name = git_tree_entry_name(e);

		if (git_tree_entry_type(e) != GIT_OBJECT_TREE || !strcmp(name, c->m->name))
			continue;
		snprintf(path, sizeof(path), "%s/%s/%s/%s", c->m->baseline, c->m->month, name,
			 BUNDLE_MANIFEST);
		if (manifest_target(c->st, tree, path, target, sizeof(target)) == 0 &&
		    !strcmp(target, c->m->target)) {
			snprintf(rival, size, "%s/%s/%s", c->m->baseline, c->m->month, name);
			break;
		}
	}
out:
	git_tree_free(mt);
	git_tree_entry_free(me);
	return r;
}

/* BASELINE after this import, in *out; *changed false when it stays as it is. */
static int update_baseline(struct import_ctx *c, git_tree *tree, struct hp_buf *out, bool *changed)
{
	struct store_baseline bl = { 0 };
	struct hp_buf text = HP_BUF_INIT;
	const struct store_baseline_target *t;
	char path[64], now[32];
	int r;

	snprintf(path, sizeof(path), "%s/%s", c->m->baseline, STORE_BASELINE_FILE);
	r = tree ? store_tree_read(c->st->repo, tree, path, STORE_BASELINE_MAX_BYTES, &text) : -ENOENT;
	if (r == -ENOENT) {
		bl.baseline = strdup(c->m->baseline);
		now_iso(now);
		bl.created = strdup(now);
		if (!bl.baseline || !bl.created) {
			r = -ENOMEM;
			goto out;
		}
		bl.planned = store_baseline_planned(c->st->baseline_months, c->m->baseline);
	} else if (r < 0) {
		goto out;
	} else {
		r = store_baseline_parse(text.data, text.len, &bl);
		if (r < 0) {
			r = hp_err_prefix(r, "%s: ", path);
			goto out;
		}
	}
	t = store_baseline_find(&bl, c->m->target);
	if (t) {
		if (strcmp(t->build_id, c->m->build_id) != 0) {
			r = hp_err(-EEXIST, "baseline %s has target %s with build-id %s, not %s",
				   c->m->baseline, c->m->target, t->build_id, c->m->build_id);
			goto out;
		}
		*changed = false;
		r = 0;
		goto out;
	}
	r = store_baseline_add_target(&bl, c->m->target, c->m->build_id);
	if (r < 0)
		goto out;
	r = store_baseline_format(&bl, out);
	*changed = true;
out:
	store_baseline_release(&bl);
	hp_buf_release(&text);
	return r;
}

static int commit_message(struct import_ctx *c, const char *replaced, struct hp_buf *msg)
{
	int r = hp_buf_addf(msg, "import %s%s%s\n\ntarget %s\nbuild-id %s\n", c->set_id,
			    replaced[0] ? " replacing " : "", replaced, c->m->target, c->m->build_id);

	for (size_t i = 0; r == 0 && i < c->m->n_cves; i++)
		r = hp_buf_addf(msg, "cve %s\n", c->m->cves[i]);
	if (r == 0)
		r = hp_buf_addf(msg, "signer %s\n", c->keyid[0] ? c->keyid : "unsigned");
	return r;
}

static int import_locked(struct import_ctx *c)
{
	git_commit *head = NULL;
	git_tree *tree = NULL;
	struct hp_buf baseline = HP_BUF_INIT, msg = HP_BUF_INIT;
	struct wd_moves mv = { 0 };
	git_tree_update up[4];
	char paths[4][256], rival[256], why[320];
	git_oid bl_oid;
	bool bl_changed = false;
	size_t n = 0;
	int r;

	r = store_head_commit(c->st, &head, &tree);
	if (r < 0)
		goto out;
	r = store_verify_signature(c->st, tree, c->st->allow_unsigned, &c->b.manifest,
				   &c->b.signature, c->keyid);
	if (r < 0)
		goto out;
	r = existing_set(c, tree);
	if (r != 0)
		goto out; /* 1: already there, identical */
	if (store_tree_has_withdrawn(tree, c->set_id)) {
		r = hp_err(-EEXIST, "%s was withdrawn (see hp log): publish the fix under another name",
			   c->set_id);
		goto out;
	}
	/* A rebuilt target (another build-id) is the baseline's refusal, said first. */
	r = update_baseline(c, tree, &baseline, &bl_changed);
	if (r < 0)
		goto out;
	r = month_rival(c, tree, rival, sizeof(rival));
	if (r < 0)
		goto out;
	if (rival[0] && !(c->opts && c->opts->replace)) {
		r = hp_err(-EEXIST, "%s: target %s already has %s for %s, and a month holds one "
			   "cumulative set per target: build one set with every fix of the month, "
			   "or replace that one with hp import --replace",
			   c->set_id, c->m->target, rival, c->m->month);
		goto out;
	}
	if (rival[0]) {
		snprintf(why, sizeof(why), "replaced by %s", c->set_id);
		r = store_withdraw_moves(c->st, tree, rival, why, &mv);
		if (r < 0)
			goto out;
	}

	memset(up, 0, sizeof(up));
	snprintf(paths[n], sizeof(paths[n]), "%s/%s", c->set_id, BUNDLE_MANIFEST);
	up[n] = (git_tree_update){ GIT_TREE_UPDATE_UPSERT, c->man_oid, GIT_FILEMODE_BLOB, paths[n] };
	n++;
	snprintf(paths[n], sizeof(paths[n]), "%s/%s", c->set_id, BUNDLE_PATCH);
	up[n] = (git_tree_update){ GIT_TREE_UPDATE_UPSERT, c->patch_oid, GIT_FILEMODE_BLOB, paths[n] };
	n++;
	if (c->b.signature.len) {
		snprintf(paths[n], sizeof(paths[n]), "%s/%s", c->set_id, BUNDLE_SIGNATURE);
		up[n] = (git_tree_update){ GIT_TREE_UPDATE_UPSERT, c->sig_oid, GIT_FILEMODE_BLOB,
					   paths[n] };
		n++;
	}
	if (bl_changed) {
		if (git_blob_create_from_buffer(&bl_oid, c->st->repo, baseline.data, baseline.len) < 0) {
			r = store_git_err(-EIO, "write BASELINE");
			goto out;
		}
		snprintf(paths[n], sizeof(paths[n]), "%s/%s", c->m->baseline, STORE_BASELINE_FILE);
		up[n] = (git_tree_update){ GIT_TREE_UPDATE_UPSERT, bl_oid, GIT_FILEMODE_BLOB, paths[n] };
		n++;
	}
	r = commit_message(c, rival, &msg);
	if (r < 0)
		goto out;
	for (size_t i = 0; r == 0 && i < n; i++)
		r = wd_moves_add(&mv, up[i].action, &up[i].id, up[i].path);
	if (r < 0)
		goto out;
	r = store_commit_updates(c->st, head, wd_moves_updates(&mv), mv.n, msg.data, NULL);
	/*
	 * Housekeeping, as git gc --auto: once some 6700 loose objects piled
	 * up, pack them (reads from a pack cost a third of loose ones). The
	 * commit stands whatever happens here.
	 */
	if (r == 0 && store_pack_due(c->st))
		(void)store_pack_locked(c->st);
out:
	wd_moves_release(&mv);
	hp_buf_release(&baseline);
	hp_buf_release(&msg);
	git_tree_free(tree);
	git_commit_free(head);
	return r;
}

static int import_checks(struct import_ctx *c)
{
	char sha[SIGN_SHA256_HEX_SIZE], win[40];
	int r;

	r = hp_manifest_parse(c->b.manifest.data, c->b.manifest.len, &c->m);
	if (r < 0)
		return hp_err_prefix(r, "manifest: ");
	r = hp_manifest_validate(c->m);
	if (r < 0)
		return r;
	c->set_id = hp_manifest_set_id(c->m);
	if (!c->set_id)
		return -ENOMEM;
	sign_sha256_hex(c->b.patch.data, c->b.patch.len, sha);
	if (strcmp(sha, c->m->patch_sha256) != 0)
		return hp_err(-EBADMSG, "%s: patch.so does not match the manifest's patch-sha256",
			      c->set_id);
	if (!store_month_in_window(c->st->baseline_months, c->m->baseline, c->m->month) &&
	    !(c->opts && c->opts->force)) {
		window_text(c->st->baseline_months, c->m->baseline, win, sizeof(win));
		return hp_err(-ERANGE, "%s: month %s is outside baseline %s's window (%s%s); use --force",
			      c->set_id, c->m->month, c->m->baseline,
			      store_baseline_planned(c->st->baseline_months, c->m->baseline)
				      ? "" : "unplanned, ",
			      win);
	}
	return 0;
}

/*
 * The signature against HEAD as it is now, before any object is written: a
 * bundle refused for its signature (unsigned, untrusted, tampered) leaves
 * nothing in the repository, not even unreferenced blobs. Checked again
 * under the lock against the HEAD the commit will have.
 */
static int signature_precheck(struct import_ctx *c)
{
	git_commit *head = NULL;
	git_tree *tree = NULL;
	int r;

	r = store_head_commit(c->st, &head, &tree);
	if (r == 0)
		r = store_verify_signature(c->st, tree, c->st->allow_unsigned, &c->b.manifest,
					   &c->b.signature, c->keyid);
	git_tree_free(tree);
	git_commit_free(head);
	return r;
}

int store_import_buf(struct store *st, const void *data, size_t len,
		     const struct store_import_opts *opts, char **ret_set_id)
{
	struct import_ctx c = { .st = st, .opts = opts };
	int fd = -1, r;

	r = bundle_read(data, len, &c.b);
	if (r < 0)
		goto out;
	r = import_checks(&c);
	if (r < 0)
		goto out;
	r = signature_precheck(&c);
	if (r < 0)
		goto out;
	/* Objects first, outside the lock: content-addressed, harmless if unused. */
	if (git_blob_create_from_buffer(&c.man_oid, st->repo, c.b.manifest.data, c.b.manifest.len) < 0 ||
	    git_blob_create_from_buffer(&c.patch_oid, st->repo, c.b.patch.data, c.b.patch.len) < 0 ||
	    (c.b.signature.len &&
	     git_blob_create_from_buffer(&c.sig_oid, st->repo, c.b.signature.data, c.b.signature.len) < 0)) {
		r = store_git_err(-EIO, "write objects");
		goto out;
	}
	r = store_lock(st, &fd);
	if (r < 0)
		goto out;
	r = import_locked(&c);
out:
	if (r < 0 && c.set_id && !strstr(hp_errmsg(r), c.set_id))
		hp_err_prefix(r, "%s: ", c.set_id);
	store_unlock(fd);
	if (r >= 0 && ret_set_id) {
		*ret_set_id = c.set_id;
		c.set_id = NULL;
	}
	free(c.set_id);
	hp_manifest_free(c.m);
	bundle_release(&c.b);
	return r;
}

int store_import(struct store *st, const char *bundle_path, const struct store_import_opts *opts,
		 char **ret_set_id)
{
	struct hp_buf data = HP_BUF_INIT;
	int r;

	r = hp_read_file(bundle_path, STORE_BUNDLE_MAX_BYTES, &data);
	if (r == -EFBIG)
		r = hp_err(-EFBIG, "bundle larger than %u bytes", STORE_BUNDLE_MAX_BYTES);
	if (r == 0)
		r = store_import_buf(st, data.data, data.len, opts, ret_set_id);
	if (r < 0)
		hp_err_prefix(r, "%s: ", bundle_path);
	hp_buf_release(&data);
	return r;
}

int store_key_trust(struct store *st, const char *pubkey_path)
{
	struct hp_buf text = HP_BUF_INIT, norm = HP_BUF_INIT, msg = HP_BUF_INIT;
	struct store_change ch = STORE_CHANGE_INIT;
	git_tree_update up;
	unsigned char pk[32], have[32];
	char keyid[SIGN_KEYID_SIZE], path[64], hex[SIGN_SHA256_HEX_SIZE];
	git_oid oid;
	int r;

	r = hp_read_file(pubkey_path, STORE_KEYFILE_MAX, &text);
	if (r < 0)
		goto out;
	r = sign_parse_pubkey(text.data, text.len, pk, keyid);
	if (r < 0) {
		hp_err_prefix(r, "%s: ", pubkey_path);
		goto out;
	}
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", pk[i]);
	r = hp_buf_addf(&norm, "hotpatch-public-key 1 ed25519 %s\n", hex);
	if (r < 0)
		goto out;
	if (git_blob_create_from_buffer(&oid, st->repo, norm.data, norm.len) < 0) {
		r = store_git_err(-EIO, "write key");
		goto out;
	}
	r = store_change_begin(st, &ch);
	if (r < 0)
		goto out;
	if (trusted_key(st, ch.tree, keyid, have) == 0 && !memcmp(have, pk, 32)) {
		r = 1; /* already trusted */
		goto out;
	}
	if (store_tree_key_revoked(ch.tree, keyid)) {
		r = hp_err(-EKEYREVOKED, "key %s was revoked (see hp log): generate a new key", keyid);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/%s.pub", STORE_KEYS_DIR, keyid);
	up = (git_tree_update){ GIT_TREE_UPDATE_UPSERT, oid, GIT_FILEMODE_BLOB, path };
	r = hp_buf_addf(&msg, "trust key %s\n\nkey %s\n", keyid, hex);
	if (r < 0)
		goto out;
	r = store_commit_updates(st, ch.head, &up, 1, msg.data, NULL);
out:
	store_change_end(&ch);
	hp_buf_release(&text);
	hp_buf_release(&norm);
	hp_buf_release(&msg);
	return r;
}

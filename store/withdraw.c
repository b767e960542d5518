/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Withdrawing a set and revoking a key, each one commit. A withdrawn set
 * moves from <baseline>/<month>/<set>/ to withdrawn/<baseline>/<month>/<set>/
 * (its members unchanged, plus a "reason" file): the catalog and the lookup
 * no longer see it, while the status of a process that still runs it can
 * say so and why. A revoked key moves from trusted-keys/ to revoked-keys/,
 * and every set it signed is withdrawn in the same commit.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store-int.h"

/* A withdrawn set's reason file: a few short lines (REASON_MAX and the time). */
#define WITHDRAWN_FILE_MAX 4096
#define REASON_MAX 512

void wd_moves_release(struct wd_moves *mv)
{
	if (!mv)
		return;
	free(mv->up);
	free(mv->paths);
	memset(mv, 0, sizeof(*mv));
}

int wd_moves_add(struct wd_moves *mv, git_tree_update_t action, const git_oid *oid,
		  const char *path)
{
	if (mv->n == mv->cap) {
		size_t nc = mv->cap ? mv->cap * 2 : 16;
		git_tree_update *nu = realloc(mv->up, nc * sizeof(*nu));
		char (*np)[STORE_WD_PATH_MAX];

		if (!nu)
			return -ENOMEM;
		mv->up = nu;
		np = realloc(mv->paths, nc * sizeof(*np));
		if (!np)
			return -ENOMEM;
		mv->paths = np;
		mv->cap = nc;
	}
	if (snprintf(mv->paths[mv->n], STORE_WD_PATH_MAX, "%s", path) >= STORE_WD_PATH_MAX)
		return hp_err(-ENAMETOOLONG, "%s: path too long", path);
	memset(&mv->up[mv->n], 0, sizeof(mv->up[mv->n]));
	mv->up[mv->n].action = action;
	if (oid)
		mv->up[mv->n].id = *oid;
	mv->up[mv->n].filemode = GIT_FILEMODE_BLOB;
	mv->n++;
	return 0;
}

/* The path pointers are set last: paths may move while the array grows. */
const git_tree_update *wd_moves_updates(struct wd_moves *mv)
{
	for (size_t i = 0; i < mv->n; i++)
		mv->up[i].path = mv->paths[i];
	return mv->up;
}

/* One line, printable: newlines and control bytes become blanks. */
static void clean_line(const char *in, char *out, size_t size)
{
	size_t n = 0;

	for (; in && *in && n + 1 < size; in++)
		out[n++] = ((unsigned char)*in < 0x20 || *in == 0x7f) ? ' ' : *in;
	out[n] = '\0';
}

int store_withdraw_moves(struct store *st, git_tree *tree, const char *set_id, const char *reason,
			 struct wd_moves *mv)
{
	git_tree_entry *dir = NULL;
	git_tree *sub = NULL;
	struct hp_buf text = HP_BUF_INIT;
	char path[STORE_WD_PATH_MAX], line[REASON_MAX], now[32];
	git_oid oid;
	time_t t = time(NULL);
	struct tm tm;
	int r;

	if (!tree || git_tree_entry_bypath(&dir, tree, set_id) < 0 ||
	    git_tree_entry_type(dir) != GIT_OBJECT_TREE) {
		r = hp_err(-ENOENT, "no patch set %s", set_id);
		goto out;
	}
	if (git_tree_lookup(&sub, st->repo, git_tree_entry_id(dir)) < 0) {
		r = store_git_err(-EIO, set_id);
		goto out;
	}
	for (size_t i = 0; i < git_tree_entrycount(sub); i++) {
		const git_tree_entry *e = git_tree_entry_byindex(sub, i);

		if (git_tree_entry_type(e) != GIT_OBJECT_BLOB)
			continue;
		snprintf(path, sizeof(path), "%s/%s/%s", STORE_WITHDRAWN_DIR, set_id,
			 git_tree_entry_name(e));
		r = wd_moves_add(mv, GIT_TREE_UPDATE_UPSERT, git_tree_entry_id(e), path);
		if (r < 0)
			goto out;
	}
	gmtime_r(&t, &tm);
	strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", &tm);
	clean_line(reason && *reason ? reason : "withdrawn", line, sizeof(line));
	r = hp_buf_addf(&text, "hotpatch-withdrawn 1\ntime %s\nreason %s\n", now, line);
	if (r < 0)
		goto out;
	if (git_blob_create_from_buffer(&oid, st->repo, text.data, text.len) < 0) {
		r = store_git_err(-EIO, "write reason");
		goto out;
	}
	snprintf(path, sizeof(path), "%s/%s/%s", STORE_WITHDRAWN_DIR, set_id, STORE_WITHDRAWN_REASON);
	r = wd_moves_add(mv, GIT_TREE_UPDATE_UPSERT, &oid, path);
	if (r == 0)
		r = wd_moves_add(mv, GIT_TREE_UPDATE_REMOVE, NULL, set_id);
out:
	hp_buf_release(&text);
	git_tree_free(sub);
	git_tree_entry_free(dir);
	return r;
}

bool store_tree_has_withdrawn(git_tree *tree, const char *set_id)
{
	char path[STORE_WD_PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", STORE_WITHDRAWN_DIR, set_id);
	return store_tree_has(tree, path);
}

static bool valid_set_id(const char *id)
{
	char b[HP_BASELINE_SIZE], m[HP_MONTH_SIZE], n[HP_SET_NAME_SIZE];

	return store_split_set_id(id, b, m, n);
}

int store_withdraw(struct store *st, const char *set_id, const char *reason)
{
	struct wd_moves mv = { 0 };
	struct hp_buf msg = HP_BUF_INIT;
	struct store_change ch = STORE_CHANGE_INIT;
	char line[REASON_MAX];
	int r;

	if (!valid_set_id(set_id))
		return hp_err(-EINVAL, "'%s' is not a set id (BASELINE/MONTH/NAME)", set_id);
	r = store_change_begin(st, &ch);
	if (r < 0)
		goto out;
	if (store_tree_has_withdrawn(ch.tree, set_id)) {
		r = 1;
		goto out;
	}
	clean_line(reason && *reason ? reason : "withdrawn", line, sizeof(line));
	r = store_withdraw_moves(st, ch.tree, set_id, line, &mv);
	if (r < 0)
		goto out;
	r = hp_buf_addf(&msg, "withdraw %s\n\nreason %s\n", set_id, line);
	if (r == 0)
		r = store_commit_updates(st, ch.head, wd_moves_updates(&mv), mv.n, msg.data, NULL);
out:
	store_change_end(&ch);
	wd_moves_release(&mv);
	hp_buf_release(&msg);
	return r;
}

/* The keyid of a KEYID (16 hex) or of a public key file. */
static int key_of(const char *arg, char keyid[SIGN_KEYID_SIZE])
{
	struct hp_buf text = HP_BUF_INIT;
	unsigned char pk[32];
	size_t n = strlen(arg);
	int r;

	if (n == SIGN_KEYID_HEX && strspn(arg, "0123456789abcdef") == n) {
		memcpy(keyid, arg, n + 1);
		return 0;
	}
	r = hp_read_file(arg, STORE_KEYFILE_MAX, &text);
	if (r == -ENOENT)
		r = hp_err(-ENOENT, "'%s' is neither a key id (16 hex) nor a public key file", arg);
	if (r == 0) {
		r = sign_parse_pubkey(text.data, text.len, pk, keyid);
		if (r < 0)
			hp_err_prefix(r, "%s: ", arg);
	}
	hp_buf_release(&text);
	return r;
}

/* Every set of tree signed by keyid: withdrawn into mv; their ids listed in msg. */
static int withdraw_signed_by(struct store *st, git_tree *tree, const char *keyid, const char *why,
			      struct wd_moves *mv, struct hp_buf *msg, size_t *ret_n)
{
	size_t n = 0;
	int r = 0;

	for (size_t i = 0; r == 0 && i < git_tree_entrycount(tree); i++) {
		const git_tree_entry *be = git_tree_entry_byindex(tree, i);
		git_tree *bt = NULL;

		if (git_tree_entry_type(be) != GIT_OBJECT_TREE ||
		    !hp_valid_baseline(git_tree_entry_name(be)))
			continue;
		if (git_tree_lookup(&bt, st->repo, git_tree_entry_id(be)) < 0)
			return store_git_err(-EIO, git_tree_entry_name(be));
		for (size_t j = 0; r == 0 && j < git_tree_entrycount(bt); j++) {
			const git_tree_entry *me = git_tree_entry_byindex(bt, j);
			git_tree *mt = NULL;

			if (git_tree_entry_type(me) != GIT_OBJECT_TREE ||
			    !hp_valid_month(git_tree_entry_name(me)))
				continue;
			if (git_tree_lookup(&mt, st->repo, git_tree_entry_id(me)) < 0) {
				r = store_git_err(-EIO, git_tree_entry_name(me));
				break;
			}
			for (size_t k = 0; r == 0 && k < git_tree_entrycount(mt); k++) {
				const git_tree_entry *se = git_tree_entry_byindex(mt, k);
				struct hp_buf sig = HP_BUF_INIT;
				char id[STORE_WD_PATH_MAX], path[STORE_WD_PATH_MAX + 16], kid[SIGN_KEYID_SIZE];

				if (git_tree_entry_type(se) != GIT_OBJECT_TREE)
					continue;
				snprintf(id, sizeof(id), "%s/%s/%s", git_tree_entry_name(be),
					 git_tree_entry_name(me), git_tree_entry_name(se));
				snprintf(path, sizeof(path), "%s/%s", id, BUNDLE_SIGNATURE);
				if (store_tree_read(st->repo, tree, path, STORE_SIG_MAX, &sig) == 0 &&
				    sign_keyid(sig.data, sig.len, kid) == 0 && !strcmp(kid, keyid)) {
					r = store_withdraw_moves(st, tree, id, why, mv);
					if (r == 0)
						r = hp_buf_addf(msg, "withdraw %s\n", id);
					n++;
				}
				hp_buf_release(&sig);
			}
			git_tree_free(mt);
		}
		git_tree_free(bt);
	}
	*ret_n = n;
	return r;
}

int store_key_revoke(struct store *st, const char *key, const char *reason, size_t *ret_n_sets)
{
	struct wd_moves mv = { 0 };
	struct hp_buf msg = HP_BUF_INIT;
	struct store_change ch = STORE_CHANGE_INIT;
	git_tree_entry *ke = NULL;
	char keyid[SIGN_KEYID_SIZE], path[64], why[REASON_MAX + 64], line[REASON_MAX];
	size_t n = 0;
	int r;

	r = key_of(key, keyid);
	if (r < 0)
		return r;
	r = store_change_begin(st, &ch);
	if (r < 0)
		goto out;
	if (store_tree_key_revoked(ch.tree, keyid)) {
		r = 1; /* already revoked */
		goto out;
	}
	snprintf(path, sizeof(path), "%s/%s.pub", STORE_KEYS_DIR, keyid);
	if (!ch.tree || git_tree_entry_bypath(&ke, ch.tree, path) < 0) {
		r = hp_err(-ENOENT, "key %s is not trusted by the store", keyid);
		goto out;
	}
	clean_line(reason && *reason ? reason : "revoked", line, sizeof(line));
	snprintf(why, sizeof(why), "signed by revoked key %s (%s)", keyid, line);
	r = hp_buf_addf(&msg, "revoke key %s\n\nreason %s\n", keyid, line);
	if (r < 0)
		goto out;
	r = withdraw_signed_by(st, ch.tree, keyid, why, &mv, &msg, &n);
	if (r < 0)
		goto out;
	r = wd_moves_add(&mv, GIT_TREE_UPDATE_REMOVE, NULL, path);
	if (r < 0)
		goto out;
	snprintf(path, sizeof(path), "%s/%s.pub", STORE_REVOKED_DIR, keyid);
	r = wd_moves_add(&mv, GIT_TREE_UPDATE_UPSERT, git_tree_entry_id(ke), path);
	if (r < 0)
		goto out;
	r = store_commit_updates(st, ch.head, wd_moves_updates(&mv), mv.n, msg.data, NULL);
	if (r == 0 && ret_n_sets)
		*ret_n_sets = n;
out:
	store_change_end(&ch);
	wd_moves_release(&mv);
	hp_buf_release(&msg);
	git_tree_entry_free(ke);
	return r;
}

bool store_tree_key_revoked(git_tree *tree, const char *keyid)
{
	char path[64];

	snprintf(path, sizeof(path), "%s/%s.pub", STORE_REVOKED_DIR, keyid);
	return store_tree_has(tree, path);
}

int store_withdrawn(struct store_snap *snap, const char *set_id, char *ret_reason, size_t size)
{
	char path[STORE_WD_PATH_MAX];
	void *text = NULL;
	size_t len = 0;
	int r;

	if (!set_id || !*set_id)
		return -ENOENT;
	snprintf(path, sizeof(path), "%s/%s/%s", STORE_WITHDRAWN_DIR, set_id, STORE_WITHDRAWN_REASON);
	r = snap_read_raw(snap, path, WITHDRAWN_FILE_MAX, &text, &len);
	if (r < 0)
		return r == -EISDIR ? -ENOENT : r;
	if (ret_reason && size) {
		char buf[WITHDRAWN_FILE_MAX + 1];
		const char *p;

		memcpy(buf, text, len < WITHDRAWN_FILE_MAX ? len : WITHDRAWN_FILE_MAX);
		buf[len < WITHDRAWN_FILE_MAX ? len : WITHDRAWN_FILE_MAX] = '\0';
		p = strstr(buf, "\nreason ");
		ret_reason[0] = '\0';
		if (p)
			snprintf(ret_reason, size, "%.*s", (int)strcspn(p + 8, "\n"), p + 8);
	}
	free(text);
	return 0;
}

int store_set_manifest(struct store_snap *snap, const char *set_id, struct hp_manifest **ret)
{
	char path[STORE_WD_PATH_MAX + 16];
	void *text = NULL;
	size_t len = 0;
	int r;

	if (!valid_set_id(set_id))
		return hp_err(-EINVAL, "'%s' is not a set id (BASELINE/MONTH/NAME)", set_id);
	snprintf(path, sizeof(path), "%s/%s", set_id, BUNDLE_MANIFEST);
	r = snap_read_raw(snap, path, HP_MANIFEST_MAX_BYTES, &text, &len);
	if (r == -ENOENT) {
		snprintf(path, sizeof(path), "%s/%s/%s", STORE_WITHDRAWN_DIR, set_id, BUNDLE_MANIFEST);
		r = snap_read_raw(snap, path, HP_MANIFEST_MAX_BYTES, &text, &len);
	}
	if (r == -ENOENT)
		return hp_err(-ENOENT, "no patch set %s", set_id);
	if (r < 0)
		return r;
	r = hp_manifest_parse(text, len, ret);
	free(text);
	return r;
}

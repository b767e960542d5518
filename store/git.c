/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Writing to the store: the cross-process lock and one commit per change.
 * Every writer (import, key trust, pull) takes the lock, reads HEAD, builds
 * the new tree from HEAD's and moves the branch: HEAD moves once or not at all.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "store-int.h"

int store_lock(struct store *st, int *ret_fd)
{
	char path[PATH_MAX];
	int fd;

	if (snprintf(path, sizeof(path), "%s/%s", git_repository_path(st->repo), STORE_LOCK_FILE) >=
	    (int)sizeof(path))
		return hp_err(-ENAMETOOLONG, "store %s: path too long", st->path);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return hp_err(-errno, "store lock %s: %s", path, strerror(errno));
	while (flock(fd, LOCK_EX) < 0) {
		if (errno == EINTR)
			continue;
		{
			int e = errno;

			close(fd);
			return hp_err(-e, "store lock %s: %s", path, strerror(e));
		}
	}
	*ret_fd = fd;
	return 0;
}

void store_unlock(int fd)
{
	if (fd >= 0)
		close(fd); /* drops the flock */
}

int store_head_commit(struct store *st, git_commit **ret, git_tree **ret_tree)
{
	git_commit *c = NULL;
	git_tree *t = NULL;
	git_oid oid;
	int r;

	r = git_reference_name_to_id(&oid, st->repo, "HEAD");
	if (r == GIT_ENOTFOUND || r == GIT_EUNBORNBRANCH) {
		*ret = NULL;
		if (ret_tree)
			*ret_tree = NULL;
		return 0;
	}
	if (r < 0)
		return store_git_err(-EIO, "store HEAD");
	if (git_commit_lookup(&c, st->repo, &oid) < 0)
		return store_git_err(-EIO, "store HEAD commit");
	if (ret_tree && git_commit_tree(&t, c) < 0) {
		git_commit_free(c);
		return store_git_err(-EIO, "store HEAD tree");
	}
	*ret = c;
	if (ret_tree)
		*ret_tree = t;
	return 0;
}

int store_change_begin(struct store *st, struct store_change *ch)
{
	int r = store_lock(st, &ch->fd);

	if (r == 0)
		r = store_head_commit(st, &ch->head, &ch->tree);
	return r;
}

void store_change_end(struct store_change *ch)
{
	store_unlock(ch->fd);
	ch->fd = -1;
	git_tree_free(ch->tree);
	ch->tree = NULL;
	git_commit_free(ch->head);
	ch->head = NULL;
}

bool store_tree_has(git_tree *tree, const char *path)
{
	git_tree_entry *e = NULL;
	bool yes;

	if (!tree)
		return false;
	yes = git_tree_entry_bypath(&e, tree, path) == 0;
	git_tree_entry_free(e);
	return yes;
}

static int make_signature(git_repository *repo, git_signature **ret)
{
	/* The repository's user if configured, else a fixed identity. */
	if (git_signature_default(ret, repo) == 0)
		return 0;
	if (git_signature_now(ret, "hotpatch", "hotpatch@localhost") < 0)
		return store_git_err(-EIO, "commit signature");
	return 0;
}

int store_commit_updates(struct store *st, git_commit *parent, const git_tree_update *updates,
			 size_t n, const char *message, git_oid *ret_oid)
{
	git_tree *base = NULL, *tree = NULL;
	git_treebuilder *tb = NULL;
	git_signature *sig = NULL;
	git_oid tree_oid, empty_oid, commit_oid;
	const git_commit *parents[1] = { parent };
	int r = 0;

	if (parent) {
		if (git_commit_tree(&base, parent) < 0) {
			r = store_git_err(-EIO, "store HEAD tree");
			goto out;
		}
	} else {
		if (git_treebuilder_new(&tb, st->repo, NULL) < 0 ||
		    git_treebuilder_write(&empty_oid, tb) < 0 ||
		    git_tree_lookup(&base, st->repo, &empty_oid) < 0) {
			r = store_git_err(-EIO, "empty tree");
			goto out;
		}
	}
	if (git_tree_create_updated(&tree_oid, st->repo, base, n, updates) < 0) {
		r = store_git_err(-EIO, "write tree");
		goto out;
	}
	if (git_tree_lookup(&tree, st->repo, &tree_oid) < 0) {
		r = store_git_err(-EIO, "read new tree");
		goto out;
	}
	r = make_signature(st->repo, &sig);
	if (r < 0)
		goto out;
	/*
	 * update_ref "HEAD" moves the branch HEAD names (creating it in an
	 * empty store) and fails if parent is no longer its tip.
	 */
	if (git_commit_create(&commit_oid, st->repo, "HEAD", sig, sig, NULL, message, tree,
			      parent ? 1 : 0, parents) < 0) {
		r = store_git_err(-EIO, "commit");
		goto out;
	}
	if (ret_oid)
		*ret_oid = commit_oid;
out:
	git_signature_free(sig);
	git_tree_free(tree);
	git_tree_free(base);
	git_treebuilder_free(tb);
	return r;
}

int store_tree_read(git_repository *repo, git_tree *tree, const char *path, size_t max,
		    struct hp_buf *ret)
{
	git_tree_entry *e = NULL;
	git_blob *blob = NULL;
	struct hp_buf b = HP_BUF_INIT;
	git_object_size_t size;
	int r;

	r = git_tree_entry_bypath(&e, tree, path);
	if (r == GIT_ENOTFOUND)
		return -ENOENT;
	if (r < 0)
		return store_git_err(-EIO, path);
	if (git_tree_entry_type(e) != GIT_OBJECT_BLOB) {
		r = hp_err(-EISDIR, "%s: not a file", path);
		goto out;
	}
	if (git_blob_lookup(&blob, repo, git_tree_entry_id(e)) < 0) {
		r = store_git_err(-EIO, path);
		goto out;
	}
	size = git_blob_rawsize(blob);
	if (size > max) {
		r = hp_err(-EFBIG, "%s: larger than %zu bytes", path, max);
		goto out;
	}
	r = hp_buf_add(&b, git_blob_rawcontent(blob), (size_t)size);
	if (r < 0)
		goto out;
	hp_buf_release(ret);
	*ret = b;
	b = (struct hp_buf)HP_BUF_INIT;
out:
	hp_buf_release(&b);
	git_blob_free(blob);
	git_tree_entry_free(e);
	return r;
}

/* Loose objects in objects/17, the sample git's gc --auto also counts. */
static int loose_in_sample(struct store *st)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "%sobjects/17", git_repository_path(st->repo));
	d = opendir(path);
	if (!d)
		return 0;
	while ((de = readdir(d)))
		if (strlen(de->d_name) == GIT_OID_HEXSZ - 2)
			n++;
	closedir(d);
	return n;
}

bool store_pack_due(struct store *st)
{
	/* git's gc.auto default: about 6700 loose objects, 27 in one of 256 dirs. */
	return loose_in_sample(st) > STORE_AUTOPACK_SAMPLE;
}

static bool is_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[n] == '\0';
}

/*
 * Pack the loose objects: exactly those listed here go into one new pack,
 * and only they are removed afterwards, so an object a concurrent import
 * writes meanwhile (objects are written before the lock is taken) stays.
 * Readers that still look for a removed loose object find it in the pack
 * (libgit2 rescans the packs on a miss). Caller holds the lock.
 */
int store_pack_locked(struct store *st)
{
	char objdir[PATH_MAX], path[PATH_MAX + 64];
	git_packbuilder *pb = NULL;
	git_oid *oids = NULL;
	size_t n = 0, cap = 0;
	int r = 0;

	snprintf(objdir, sizeof(objdir), "%sobjects", git_repository_path(st->repo));
	for (int fan = 0; fan < 256; fan++) {
		struct dirent *de;
		DIR *d;

		snprintf(path, sizeof(path), "%s/%02x", objdir, fan);
		d = opendir(path);
		if (!d)
			continue;
		while ((de = readdir(d))) {
			char hex[GIT_OID_HEXSZ + 1];

			if (strlen(de->d_name) != GIT_OID_HEXSZ - 2 || !is_hex(de->d_name, GIT_OID_HEXSZ - 2))
				continue;
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 4096;
				git_oid *no = realloc(oids, nc * sizeof(*no));

				if (!no) {
					closedir(d);
					r = -ENOMEM;
					goto out;
				}
				oids = no;
				cap = nc;
			}
			snprintf(hex, sizeof(hex), "%02x%s", fan, de->d_name);
			if (git_oid_fromstr(&oids[n], hex) == 0)
				n++;
		}
		closedir(d);
	}
	if (n == 0)
		goto out;
	if (git_packbuilder_new(&pb, st->repo) < 0) {
		r = store_git_err(-EIO, "pack");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (git_packbuilder_insert(pb, &oids[i], NULL) < 0) {
			r = store_git_err(-EIO, "pack");
			goto out;
		}
	}
	if (git_packbuilder_write(pb, NULL, 0, NULL, NULL) < 0) {
		r = store_git_err(-EIO, "pack: write");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		char hex[GIT_OID_HEXSZ + 1];

		git_oid_tostr(hex, sizeof(hex), &oids[i]);
		snprintf(path, sizeof(path), "%s/%.2s/%s", objdir, hex, hex + 2);
		unlink(path);
	}
	for (int fan = 0; fan < 256; fan++) {
		snprintf(path, sizeof(path), "%s/%02x", objdir, fan);
		rmdir(path); /* only the empty ones go */
	}
	r = (int)(n > INT32_MAX ? INT32_MAX : n);
out:
	git_packbuilder_free(pb);
	free(oids);
	return r;
}

int store_pack(struct store *st)
{
	int fd = -1, r;

	r = store_lock(st, &fd);
	if (r < 0)
		return r;
	r = store_pack_locked(st);
	store_unlock(fd);
	return r;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The read-only catalog view hotpatchfs serves: the tree of one commit,
 * pinned at open. Each directory is read from git once, with the sizes of
 * its files, and kept in a hash table by path: stat and readdir after the
 * first touch are a hash lookup and a binary search, no libgit2 call. Small
 * blobs are kept in a little cache for repeated reads.
 *
 * Threads: the snapshot has its own repository handle; libgit2 calls go
 * under git_mu, the caches under the rwlock mu. Directories are never freed
 * before the snapshot, so a pointer to one stays valid without a lock.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store-int.h"

#define SNAP_PATH_MAX 4096
#define LATEST "latest"

static uint64_t hash_path(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static void dir_free(struct snap_dir *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		free(d->ents[i].name);
	free(d->ents);
	free(d->path);
	free(d);
}

static int ent_cmp(const void *a, const void *b)
{
	return strcmp(((const struct snap_ent *)a)->name, ((const struct snap_ent *)b)->name);
}

const struct snap_ent *snap_dir_find(const struct snap_dir *d, const char *name)
{
	struct snap_ent key = { .name = (char *)name };

	return d->n ? bsearch(&key, d->ents, d->n, sizeof(key), ent_cmp) : NULL;
}

static struct snap_dir *cache_find(struct store_snap *snap, const char *path, uint64_t h)
{
	struct snap_dir *d;

	for (d = snap->buckets[h % snap->n_buckets]; d; d = d->next)
		if (d->hash == h && !strcmp(d->path, path))
			return d;
	return NULL;
}

/* Under the write lock. */
static void cache_insert(struct store_snap *snap, struct snap_dir *d)
{
	if (snap->n_dirs >= snap->n_buckets * 2) {
		size_t nb = snap->n_buckets * 4;
		struct snap_dir **b = calloc(nb, sizeof(*b));

		if (b) {
			for (size_t i = 0; i < snap->n_buckets; i++) {
				struct snap_dir *x = snap->buckets[i], *next;

				for (; x; x = next) {
					next = x->next;
					x->next = b[x->hash % nb];
					b[x->hash % nb] = x;
				}
			}
			free(snap->buckets);
			snap->buckets = b;
			snap->n_buckets = nb;
		}
	}
	d->next = snap->buckets[d->hash % snap->n_buckets];
	snap->buckets[d->hash % snap->n_buckets] = d;
	snap->n_dirs++;
}

/*
 * A file's size, the first time it is asked for. The whole blob is read (a
 * small one lands in the blob cache): a stat is nearly always followed by a
 * read of the same file, and for loose objects a header read costs about
 * what a whole read of a small object does.
 */
static int ent_size(struct store_snap *snap, const struct snap_ent *e, uint64_t *ret)
{
	uint64_t size = __atomic_load_n(&e->size, __ATOMIC_RELAXED);
	void *data = NULL;
	size_t len;
	int r;

	if (size != SNAP_SIZE_UNKNOWN) {
		*ret = size;
		return 0;
	}
	r = snap_read_oid(snap, &e->oid, SIZE_MAX - 1, &data, &len);
	if (r < 0)
		return r;
	free(data);
	/* The entry is shared: the size is written once, atomically, always the same value. */
	__atomic_store_n(&((struct snap_ent *)e)->size, (uint64_t)len, __ATOMIC_RELAXED);
	*ret = len;
	return 0;
}

/* Read one tree into a snap_dir; the root keeps only baselines (internal files stay hidden). */
static int load_dir(struct store_snap *snap, const git_oid *oid, bool root, struct snap_dir *d)
{
	git_tree *tree = NULL;
	size_t n, k = 0;
	int r = 0;

	pthread_mutex_lock(&snap->git_mu);
	if (git_tree_lookup(&tree, snap->repo, oid) < 0) {
		r = store_git_err(-EIO, "read tree");
		goto out;
	}
	n = git_tree_entrycount(tree);
	d->ents = calloc(n ? n : 1, sizeof(*d->ents));
	if (!d->ents) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const git_tree_entry *e = git_tree_entry_byindex(tree, i);
		struct snap_ent *x = &d->ents[k];
		git_object_t type = git_tree_entry_type(e);
		const char *name = git_tree_entry_name(e);

		if (root && (type != GIT_OBJECT_TREE || !hp_valid_baseline(name)))
			continue;
		if (type == GIT_OBJECT_TREE) {
			x->type = STORE_NODE_DIR;
			x->size = 0;
		} else if (type == GIT_OBJECT_BLOB) {
			x->type = STORE_NODE_FILE;
			x->size = SNAP_SIZE_UNKNOWN; /* read on first stat */
		} else {
			continue; /* submodules: not ours */
		}
		x->oid = *git_tree_entry_id(e);
		x->name = strdup(name);
		if (!x->name) {
			r = -ENOMEM;
			goto out;
		}
		k++;
	}
	d->n = k;
	qsort(d->ents, d->n, sizeof(*d->ents), ent_cmp);
out:
	if (r < 0)
		d->n = k;
	git_tree_free(tree);
	pthread_mutex_unlock(&snap->git_mu);
	return r;
}

int snap_get_dir(struct store_snap *snap, const char *path, const struct snap_dir **ret)
{
	uint64_t h = hash_path(path);
	struct snap_dir *d, *nd = NULL;
	git_oid oid;
	int r;

	pthread_rwlock_rdlock(&snap->mu);
	d = cache_find(snap, path, h);
	pthread_rwlock_unlock(&snap->mu);
	if (d) {
		*ret = d;
		return 0;
	}
	if (!*path) {
		oid = snap->root_oid; /* unused for an empty store */
	} else {
		const struct snap_dir *parent;
		const struct snap_ent *e;
		const char *slash = strrchr(path, '/');
		char *ppath = strndup(path, slash ? (size_t)(slash - path) : 0);

		if (!ppath)
			return -ENOMEM;
		r = snap_get_dir(snap, ppath, &parent);
		free(ppath);
		if (r < 0)
			return r;
		e = snap_dir_find(parent, slash ? slash + 1 : path);
		if (!e)
			return -ENOENT;
		if (e->type != STORE_NODE_DIR)
			return -ENOTDIR;
		oid = e->oid;
	}
	nd = calloc(1, sizeof(*nd));
	if (!nd || !(nd->path = strdup(path))) {
		free(nd);
		return -ENOMEM;
	}
	nd->hash = h;
	/* An empty store has no tree at all: its root is an empty directory. */
	r = (!*path && !snap->has_root) ? 0 : load_dir(snap, &oid, !*path, nd);
	if (r < 0) {
		dir_free(nd);
		return r;
	}
	pthread_rwlock_wrlock(&snap->mu);
	d = cache_find(snap, path, h);
	if (!d) {
		cache_insert(snap, nd);
		d = nd;
		nd = NULL;
	}
	pthread_rwlock_unlock(&snap->mu);
	dir_free(nd); /* another thread was first */
	*ret = d;
	return 0;
}

/*
 * Normalise a catalog path into buf: no leading or trailing slash, no
 * empty, "." or ".." component. -ENOENT for what cannot name a node.
 */
static int norm_path(const char *path, char *buf, size_t size)
{
	size_t n;
	const char *p;

	while (*path == '/')
		path++;
	n = strlen(path);
	while (n && path[n - 1] == '/')
		n--;
	if (n >= size)
		return -ENAMETOOLONG;
	memcpy(buf, path, n);
	buf[n] = '\0';
	for (p = buf; *p;) {
		const char *s = strchr(p, '/');
		size_t len = s ? (size_t)(s - p) : strlen(p);

		if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
			return -ENOENT;
		p = s ? s + 1 : p + len;
	}
	return 0;
}

/* The entry at a normalised, non-root path: its directory and name. */
static int resolve(struct store_snap *snap, const char *path, const struct snap_ent **ret)
{
	const struct snap_dir *d;
	const struct snap_ent *e;
	const char *slash = strrchr(path, '/');
	char parent[SNAP_PATH_MAX];
	int r;

	if (slash) {
		memcpy(parent, path, (size_t)(slash - path));
		parent[slash - path] = '\0';
	} else {
		parent[0] = '\0';
	}
	r = snap_get_dir(snap, parent, &d);
	if (r < 0)
		return r;
	e = snap_dir_find(d, slash ? slash + 1 : path);
	if (!e)
		return -ENOENT;
	*ret = e;
	return 0;
}

int store_snap_stat(struct store_snap *snap, const char *path, struct store_node *ret)
{
	const struct snap_ent *e;
	char p[SNAP_PATH_MAX];
	int r;

	r = norm_path(path, p, sizeof(p));
	if (r < 0)
		return r;
	if (!*p) {
		*ret = (struct store_node){ STORE_NODE_DIR, 0, snap->mtime };
		return 0;
	}
	if (!strcmp(p, LATEST)) {
		if (!snap->latest[0])
			return -ENOENT;
		*ret = (struct store_node){ STORE_NODE_LINK, strlen(snap->latest), snap->mtime };
		return 0;
	}
	r = resolve(snap, p, &e);
	if (r < 0)
		return r;
	{
		uint64_t size = 0;

		if (e->type == STORE_NODE_FILE) {
			r = ent_size(snap, e, &size);
			if (r < 0)
				return r;
		}
		*ret = (struct store_node){ e->type, size, snap->mtime };
	}
	return 0;
}

int store_snap_readdir(struct store_snap *snap, const char *path,
		       int (*cb)(void *ctx, const char *name, const struct store_node *node),
		       void *ctx)
{
	const struct snap_dir *d;
	char p[SNAP_PATH_MAX];
	int r;

	r = norm_path(path, p, sizeof(p));
	if (r < 0)
		return r;
	if (!strcmp(p, LATEST))
		return snap->latest[0] ? -ENOTDIR : -ENOENT;
	r = snap_get_dir(snap, p, &d);
	if (r < 0)
		return r;
	for (size_t i = 0; i < d->n; i++) {
		struct store_node node = { d->ents[i].type, 0, snap->mtime };

		if (d->ents[i].type == STORE_NODE_FILE) {
			r = ent_size(snap, &d->ents[i], &node.size);
			if (r < 0)
				return r;
		}
		r = cb(ctx, d->ents[i].name, &node);
		if (r)
			return r;
	}
	if (!*p && snap->latest[0]) {
		struct store_node node = { STORE_NODE_LINK, strlen(snap->latest), snap->mtime };

		r = cb(ctx, LATEST, &node);
		if (r)
			return r;
	}
	return 0;
}

static bool blob_cache_get(struct store_snap *snap, const git_oid *oid, void **ret_data,
			   size_t *ret_len, int *ret_err)
{
	bool hit = false;

	pthread_rwlock_rdlock(&snap->mu);
	for (size_t i = 0; i < SNAP_BLOB_SLOTS; i++) {
		struct snap_blob *b = &snap->blobs[i];

		if (b->data && git_oid_equal(&b->oid, oid)) {
			void *copy = malloc(b->len + 1);

			hit = true;
			if (!copy) {
				*ret_err = -ENOMEM;
				break;
			}
			memcpy(copy, b->data, b->len);
			((char *)copy)[b->len] = '\0';
			*ret_data = copy;
			*ret_len = b->len;
			*ret_err = 0;
			break;
		}
	}
	pthread_rwlock_unlock(&snap->mu);
	return hit;
}

static void blob_cache_put(struct store_snap *snap, const git_oid *oid, const void *data, size_t len)
{
	void *copy;

	if (len > SNAP_BLOB_CACHE_MAX_ONE)
		return;
	copy = malloc(len ? len : 1);
	if (!copy)
		return;
	memcpy(copy, data, len);
	pthread_rwlock_wrlock(&snap->mu);
	for (size_t i = 0; i < SNAP_BLOB_SLOTS; i++) {
		if (snap->blobs[i].data && git_oid_equal(&snap->blobs[i].oid, oid)) {
			free(copy);
			goto out;
		}
	}
	/* Round robin: the oldest slot goes, then more until within the byte budget. */
	{
		size_t mine = snap->blob_next;
		struct snap_blob *b = &snap->blobs[mine];

		snap->blob_bytes -= b->data ? b->len : 0;
		free(b->data);
		*b = (struct snap_blob){ *oid, copy, len };
		snap->blob_bytes += len;
		snap->blob_next = (mine + 1) % SNAP_BLOB_SLOTS;
		while (snap->blob_bytes > SNAP_BLOB_CACHE_BYTES && snap->blob_next != mine) {
			b = &snap->blobs[snap->blob_next];
			snap->blob_bytes -= b->data ? b->len : 0;
			free(b->data);
			b->data = NULL;
			snap->blob_next = (snap->blob_next + 1) % SNAP_BLOB_SLOTS;
		}
	}
out:
	pthread_rwlock_unlock(&snap->mu);
}

int snap_read_oid(struct store_snap *snap, const git_oid *oid, size_t max, void **ret_data,
		  size_t *ret_len)
{
	git_blob *blob = NULL;
	void *data = NULL;
	size_t len = 0;
	int r = 0;

	if (blob_cache_get(snap, oid, ret_data, ret_len, &r))
		return r;
	pthread_mutex_lock(&snap->git_mu);
	if (git_blob_lookup(&blob, snap->repo, oid) < 0) {
		r = store_git_err(-EIO, "read blob");
		goto out;
	}
	if (git_blob_rawsize(blob) > max) {
		r = hp_err(-EFBIG, "file larger than %zu bytes", max);
		goto out;
	}
	len = (size_t)git_blob_rawsize(blob);
	data = malloc(len + 1);
	if (!data) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(data, git_blob_rawcontent(blob), len);
	((char *)data)[len] = '\0';
out:
	git_blob_free(blob);
	pthread_mutex_unlock(&snap->git_mu);
	if (r < 0)
		return r;
	blob_cache_put(snap, oid, data, len);
	*ret_data = data;
	*ret_len = len;
	return 0;
}

int store_snap_read(struct store_snap *snap, const char *path, void **ret_data, size_t *ret_len)
{
	const struct snap_ent *e;
	char p[SNAP_PATH_MAX];
	int r;

	r = norm_path(path, p, sizeof(p));
	if (r < 0)
		return r;
	if (!*p)
		return -EISDIR;
	if (!strcmp(p, LATEST))
		return snap->latest[0] ? -EINVAL : -ENOENT;
	r = resolve(snap, p, &e);
	if (r < 0)
		return r;
	if (e->type != STORE_NODE_FILE)
		return -EISDIR;
	return snap_read_oid(snap, &e->oid, SIZE_MAX - 1, ret_data, ret_len);
}

int store_snap_readlink(struct store_snap *snap, const char *path, char *buf, size_t size)
{
	char p[SNAP_PATH_MAX];
	struct store_node node;
	int r;

	r = norm_path(path, p, sizeof(p));
	if (r < 0)
		return r;
	if (strcmp(p, LATEST) != 0) {
		r = store_snap_stat(snap, p, &node);
		return r < 0 ? r : -EINVAL;
	}
	if (!snap->latest[0])
		return -ENOENT;
	if (size == 0)
		return -ERANGE;
	snprintf(buf, size, "%s", snap->latest);
	return 0;
}

int snap_read_raw(struct store_snap *snap, const char *path, size_t max, void **ret_data,
		  size_t *ret_len)
{
	git_tree *tree = NULL;
	git_tree_entry *e = NULL;
	git_oid oid;
	int r = 0;

	if (!snap->has_root)
		return -ENOENT;
	pthread_mutex_lock(&snap->git_mu);
	if (git_tree_lookup(&tree, snap->repo, &snap->root_oid) < 0) {
		r = store_git_err(-EIO, "read tree");
	} else {
		int g = git_tree_entry_bypath(&e, tree, path);

		if (g == GIT_ENOTFOUND)
			r = -ENOENT;
		else if (g < 0)
			r = store_git_err(-EIO, path);
		else if (git_tree_entry_type(e) != GIT_OBJECT_BLOB)
			r = -EISDIR;
		else
			oid = *git_tree_entry_id(e);
	}
	git_tree_entry_free(e);
	git_tree_free(tree);
	pthread_mutex_unlock(&snap->git_mu);
	if (r < 0)
		return r;
	return snap_read_oid(snap, &oid, max, ret_data, ret_len);
}

/* "latest": the newest month of any baseline; a tie goes to the newer baseline. */
static int find_latest(struct store_snap *snap)
{
	const struct snap_dir *root;
	int r;

	r = snap_get_dir(snap, "", &root);
	if (r < 0)
		return r;
	for (size_t i = 0; i < root->n; i++) {
		const struct snap_dir *b;
		const char *bname = root->ents[i].name;

		r = snap_get_dir(snap, bname, &b);
		if (r < 0)
			return r;
		for (size_t j = 0; j < b->n; j++) {
			const char *m = b->ents[j].name;

			if (b->ents[j].type != STORE_NODE_DIR || !hp_valid_month(m))
				continue;
			/* Baselines come sorted, so >= lets the newer baseline win a tie. */
			if (!snap->latest[0] || strcmp(m, snap->latest + 8) >= 0)
				snprintf(snap->latest, sizeof(snap->latest), "%s/%s", bname, m);
		}
	}
	return 0;
}

int store_snap_open(struct store *st, struct store_snap **ret)
{
	struct store_snap *snap;
	git_commit *commit = NULL;
	git_oid oid;
	int r = 0, g;

	snap = calloc(1, sizeof(*snap));
	if (!snap)
		return -ENOMEM;
	pthread_mutex_init(&snap->git_mu, NULL);
	pthread_mutex_init(&snap->index_mu, NULL);
	pthread_mutex_init(&snap->set_mu, NULL);
	pthread_rwlock_init(&snap->mu, NULL);
	snap->n_buckets = 64;
	snap->buckets = calloc(snap->n_buckets, sizeof(*snap->buckets));
	if (!snap->buckets) {
		r = -ENOMEM;
		goto fail;
	}
	snap->allow_unsigned = st->allow_unsigned;
	if (git_repository_open_bare(&snap->repo, git_repository_path(st->repo)) < 0 ||
	    git_repository_odb(&snap->odb, snap->repo) < 0) {
		r = store_git_err(-EIO, "open snapshot");
		goto fail;
	}
	g = git_reference_name_to_id(&oid, snap->repo, "HEAD");
	if (g == GIT_ENOTFOUND || g == GIT_EUNBORNBRANCH) {
		/* An empty store: no tree, an empty root (nothing is written: readers may not write). */
		snap->has_root = false;
		snap->mtime = 0;
	} else if (g < 0 || git_commit_lookup(&commit, snap->repo, &oid) < 0) {
		r = store_git_err(-EIO, "open snapshot: HEAD");
		goto fail;
	} else {
		git_oid_tostr(snap->commit, sizeof(snap->commit), &oid);
		snap->root_oid = *git_commit_tree_id(commit);
		snap->mtime = (int64_t)git_commit_time(commit);
		snap->has_root = true;
	}
	r = find_latest(snap);
	if (r < 0)
		goto fail;
	git_commit_free(commit);
	*ret = snap;
	return 0;
fail:
	git_commit_free(commit);
	store_snap_free(snap);
	return r;
}

void store_snap_free(struct store_snap *snap)
{
	if (!snap)
		return;
	snap_index_free(snap->index);
	for (size_t i = 0; i < SNAP_SET_SLOTS; i++)
		store_patchset_free(snap->sets[i]);
	for (size_t i = 0; i < snap->n_buckets; i++) {
		struct snap_dir *d = snap->buckets[i], *next;

		for (; d; d = next) {
			next = d->next;
			dir_free(d);
		}
	}
	free(snap->buckets);
	for (size_t i = 0; i < SNAP_BLOB_SLOTS; i++)
		free(snap->blobs[i].data);
	git_odb_free(snap->odb);
	git_repository_free(snap->repo);
	pthread_rwlock_destroy(&snap->mu);
	pthread_mutex_destroy(&snap->git_mu);
	pthread_mutex_destroy(&snap->index_mu);
	pthread_mutex_destroy(&snap->set_mu);
	free(snap);
}

const char *store_snap_commit(const struct store_snap *snap)
{
	return snap->commit;
}

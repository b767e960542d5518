/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ll.c: the low-level FUSE front of hotpatchfs. The operations themselves
 * stay path-based (ops.c); this file keeps an inode table (one inode number
 * per path, stable while the kernel holds it) and answers the kernel with
 * per-entry timeouts, which libfuse's high-level API cannot: below a catalog
 * baseline and month (the set directories and their files) nothing changes
 * within a snapshot, so those entries and attributes are cached for
 * HPFS_CATALOG_TIMEOUT; the names under catalog/ are cached as long, but the
 * attributes of the catalog root, baselines, months, BASELINE and latest are
 * asked again on each use (their mtime names the snapshot: a new HEAD drops
 * their listings and pages). Control and state files keep the mount's
 * timeouts (0 by default).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hpfs.h"
#include <fuse_lowlevel.h>

#define HPFS_CATALOG_TIMEOUT 3600.0
#define NODE_BUCKETS 65536

struct node {
	fuse_ino_t ino;
	char *path;
	uint64_t nlookup;
	bool hashed; /* reachable by path */
	struct node *by_path, *by_ino;
};

static pthread_mutex_t nodes_lock = PTHREAD_MUTEX_INITIALIZER;
static struct node *path_tab[NODE_BUCKETS], *ino_tab[NODE_BUCKETS];
static fuse_ino_t next_ino = 2;
static struct node root_node = { .ino = FUSE_ROOT_ID, .path = (char *)"/", .nlookup = 1 };

double hpfs_entry_timeout, hpfs_attr_timeout;
static __thread struct fuse_context ctx;

struct fuse_context *hpfs_context(void)
{
	return &ctx;
}

static void set_ctx(fuse_req_t req)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);

	memset(&ctx, 0, sizeof(ctx));
	ctx.uid = c->uid;
	ctx.gid = c->gid;
	ctx.pid = c->pid;
	ctx.umask = c->umask;
	ctx.private_data = &hpfs;
}

static size_t hash_str(const char *s)
{
	size_t h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h % NODE_BUCKETS;
}

/* Callers hold nodes_lock. */
static struct node *by_ino(fuse_ino_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return &root_node;
	for (struct node *n = ino_tab[ino % NODE_BUCKETS]; n; n = n->by_ino)
		if (n->ino == ino)
			return n;
	return NULL;
}

static void unhash_path(struct node *n)
{
	struct node **pp = &path_tab[hash_str(n->path)];

	if (!n->hashed)
		return;
	for (; *pp; pp = &(*pp)->by_path)
		if (*pp == n) {
			*pp = n->by_path;
			break;
		}
	n->hashed = false;
}

static void hash_path(struct node *n)
{
	size_t h = hash_str(n->path);

	n->by_path = path_tab[h];
	path_tab[h] = n;
	n->hashed = true;
}

/* The node of PATH, made if new, with one more lookup. Callers hold nodes_lock. */
static struct node *node_get(const char *path)
{
	struct node *n;
	size_t h;

	if (!strcmp(path, "/")) {
		root_node.nlookup++;
		return &root_node;
	}
	for (n = path_tab[hash_str(path)]; n; n = n->by_path)
		if (!strcmp(n->path, path)) {
			n->nlookup++;
			return n;
		}
	n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->path = strdup(path);
	if (!n->path) {
		free(n);
		return NULL;
	}
	n->ino = next_ino++;
	n->nlookup = 1;
	hash_path(n);
	h = n->ino % NODE_BUCKETS;
	n->by_ino = ino_tab[h];
	ino_tab[h] = n;
	return n;
}

static void node_forget(fuse_ino_t ino, uint64_t nlookup)
{
	struct node *n, **pp;

	if (ino == FUSE_ROOT_ID)
		return;
	pthread_mutex_lock(&nodes_lock);
	n = by_ino(ino);
	if (!n)
		goto out;
	n->nlookup = n->nlookup > nlookup ? n->nlookup - nlookup : 0;
	if (n->nlookup)
		goto out;
	unhash_path(n);
	for (pp = &ino_tab[ino % NODE_BUCKETS]; *pp; pp = &(*pp)->by_ino)
		if (*pp == n) {
			*pp = n->by_ino;
			break;
		}
	free(n->path);
	free(n);
out:
	pthread_mutex_unlock(&nodes_lock);
}

/* A copy of the path of INO (free it), or NULL. */
static char *path_of(fuse_ino_t ino)
{
	struct node *n;
	char *p = NULL;

	pthread_mutex_lock(&nodes_lock);
	n = by_ino(ino);
	if (n)
		p = strdup(n->path);
	pthread_mutex_unlock(&nodes_lock);
	return p;
}

static char *path_join(fuse_ino_t parent, const char *name)
{
	char *dir = path_of(parent), *p = NULL;

	if (!dir)
		return NULL;
	if (strlen(name) > 255)
		goto out;
	if (asprintf(&p, "%s%s%s", dir, strcmp(dir, "/") ? "/" : "", name) < 0)
		p = NULL;
out:
	free(dir);
	return p;
}

/* How deep below catalog/ PATH is (catalog/ itself 0), or -1 outside the catalog. */
static int catalog_depth(const char *path)
{
	int d = 0;

	if (strncmp(path, "/catalog", 8) || (path[8] && path[8] != '/'))
		return -1;
	for (const char *p = path + 8; *p; p++)
		if (*p == '/')
			d++;
	return d;
}

static double entry_timeout(const char *path)
{
	return catalog_depth(path) >= 0 ? HPFS_CATALOG_TIMEOUT : hpfs_entry_timeout;
}

static double attr_timeout(const char *path, const struct stat *st)
{
	int d = catalog_depth(path);

	/* catalog/B/M/SET and below; catalog/B/BASELINE and catalog/latest may change. */
	if (d >= 3)
		return HPFS_CATALOG_TIMEOUT;
	return hpfs_attr_timeout;
}

static void reply_entry_of(fuse_req_t req, const char *path)
{
	struct fuse_entry_param e;
	struct node *n;
	int r;

	memset(&e, 0, sizeof(e));
	r = hpfs_ops.getattr(path, &e.attr, NULL);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	pthread_mutex_lock(&nodes_lock);
	n = node_get(path);
	if (n)
		e.ino = n->ino;
	pthread_mutex_unlock(&nodes_lock);
	if (!n) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	e.attr.st_ino = e.ino;
	e.generation = 1;
	e.entry_timeout = entry_timeout(path);
	e.attr_timeout = attr_timeout(path, &e.attr);
	if (fuse_reply_entry(req, &e) != 0)
		node_forget(e.ino, 1);
}

static void ll_init(void *data, struct fuse_conn_info *conn)
{
	struct fuse_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.entry_timeout = hpfs_entry_timeout;
	cfg.attr_timeout = hpfs_attr_timeout;
	hpfs_ops.init(conn, &cfg);
}

static void ll_destroy(void *data)
{
	hpfs_ops.destroy(data);
	pthread_mutex_lock(&nodes_lock);
	for (size_t i = 0; i < NODE_BUCKETS; i++) {
		while (ino_tab[i]) {
			struct node *n = ino_tab[i];

			ino_tab[i] = n->by_ino;
			free(n->path);
			free(n);
		}
		path_tab[i] = NULL;
	}
	pthread_mutex_unlock(&nodes_lock);
}

static void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	char *path;

	set_ctx(req);
	path = path_join(parent, name);
	if (!path) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	reply_entry_of(req, path);
	free(path);
}

static void ll_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	node_forget(ino, nlookup);
	fuse_reply_none(req);
}

static void ll_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		node_forget(forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void ll_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	char *path;
	int r;

	set_ctx(req);
	path = path_of(ino);
	if (!path) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	memset(&st, 0, sizeof(st));
	r = hpfs_ops.getattr(path, &st, fi);
	if (r < 0) {
		fuse_reply_err(req, -r);
	} else {
		st.st_ino = ino;
		fuse_reply_attr(req, &st, attr_timeout(path, &st));
	}
	free(path);
}

static void ll_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct stat st;
	char *path;
	int r = 0;

	set_ctx(req);
	path = path_of(ino);
	if (!path) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (to_set & FUSE_SET_ATTR_MODE)
		r = hpfs_ops.chmod(path, attr->st_mode, fi);
	if (r >= 0 && (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)))
		r = hpfs_ops.chown(path, (to_set & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1,
				   (to_set & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1, fi);
	if (r >= 0 && (to_set & FUSE_SET_ATTR_SIZE))
		r = hpfs_ops.truncate(path, attr->st_size, fi);
	if (r >= 0 && (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME))) {
		struct timespec tv[2];

		tv[0].tv_sec = 0;
		tv[1].tv_sec = 0;
		tv[0].tv_nsec = UTIME_OMIT;
		tv[1].tv_nsec = UTIME_OMIT;
		if (to_set & FUSE_SET_ATTR_ATIME_NOW)
			tv[0].tv_nsec = UTIME_NOW;
		else if (to_set & FUSE_SET_ATTR_ATIME)
			tv[0] = attr->st_atim;
		if (to_set & FUSE_SET_ATTR_MTIME_NOW)
			tv[1].tv_nsec = UTIME_NOW;
		else if (to_set & FUSE_SET_ATTR_MTIME)
			tv[1] = attr->st_mtim;
		r = hpfs_ops.utimens(path, tv, fi);
	}
	if (r >= 0) {
		memset(&st, 0, sizeof(st));
		r = hpfs_ops.getattr(path, &st, fi);
	}
	if (r < 0) {
		fuse_reply_err(req, -r);
	} else {
		st.st_ino = ino;
		fuse_reply_attr(req, &st, attr_timeout(path, &st));
	}
	free(path);
}

static void ll_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[4096];
	char *path;
	int r;

	set_ctx(req);
	path = path_of(ino);
	if (!path) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	r = hpfs_ops.readlink(path, buf, sizeof(buf));
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_readlink(req, buf);
	free(path);
}

static void ll_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	char *path;
	int r;

	set_ctx(req);
	path = path_join(parent, name);
	if (!path) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	r = hpfs_ops.mkdir(path, mode);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		reply_entry_of(req, path);
	free(path);
}

static void ll_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	char *path;
	int r;

	set_ctx(req);
	path = path_join(parent, name);
	if (!path) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	r = hpfs_ops.unlink(path);
	if (r == 0) {
		struct node *n;

		/* The name is gone: a file made again under it is a new inode. */
		pthread_mutex_lock(&nodes_lock);
		for (n = path_tab[hash_str(path)]; n; n = n->by_path)
			if (!strcmp(n->path, path)) {
				unhash_path(n);
				break;
			}
		pthread_mutex_unlock(&nodes_lock);
	}
	fuse_reply_err(req, -r);
	free(path);
}

static void ll_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	char *from, *to;
	int r = -ENOENT;

	set_ctx(req);
	from = path_join(parent, name);
	to = path_join(newparent, newname);
	if (from && to)
		r = hpfs_ops.rename(from, to, flags);
	if (r == 0) {
		struct node *n;

		/*
		 * The source's inode now answers for the destination's path, but
		 * unhashed: a lookup of the name finds the destination's own node.
		 */
		pthread_mutex_lock(&nodes_lock);
		for (n = path_tab[hash_str(from)]; n; n = n->by_path)
			if (!strcmp(n->path, from)) {
				char *p = strdup(to);

				unhash_path(n);
				if (p) {
					free(n->path);
					n->path = p;
				}
				break;
			}
		pthread_mutex_unlock(&nodes_lock);
	}
	fuse_reply_err(req, -r);
	free(from);
	free(to);
}

static void ll_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	char *path;
	int r;

	set_ctx(req);
	path = path_of(ino);
	if (!path) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	r = hpfs_ops.open(path, fi);
	if (r < 0) {
		fuse_reply_err(req, -r);
	} else if (fuse_reply_open(req, fi) != 0) {
		hpfs_ops.release(path, fi);
	}
	free(path);
}

static void ll_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct fuse_entry_param e;
	struct node *n = NULL;
	char *path;
	int r;

	set_ctx(req);
	path = path_join(parent, name);
	if (!path) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	r = hpfs_ops.create(path, mode, fi);
	if (r < 0) {
		fuse_reply_err(req, -r);
		goto out;
	}
	memset(&e, 0, sizeof(e));
	r = hpfs_ops.getattr(path, &e.attr, fi);
	if (r >= 0) {
		pthread_mutex_lock(&nodes_lock);
		n = node_get(path);
		pthread_mutex_unlock(&nodes_lock);
		r = n ? 0 : -ENOMEM;
	}
	if (r < 0) {
		hpfs_ops.release(path, fi);
		fuse_reply_err(req, -r);
		goto out;
	}
	e.ino = n->ino;
	e.attr.st_ino = e.ino;
	e.generation = 1;
	e.entry_timeout = entry_timeout(path);
	e.attr_timeout = attr_timeout(path, &e.attr);
	if (fuse_reply_create(req, &e, fi) != 0) {
		hpfs_ops.release(path, fi);
		node_forget(e.ino, 1);
	}
out:
	free(path);
}

static void ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	char *path, *buf;
	int r;

	set_ctx(req);
	path = path_of(ino);
	buf = malloc(size ? size : 1);
	if (!path || !buf) {
		fuse_reply_err(req, path ? ENOMEM : ENOENT);
		goto out;
	}
	r = hpfs_ops.read(path, buf, size, off, fi);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_buf(req, buf, (size_t)r);
out:
	free(buf);
	free(path);
}

static void ll_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	char *path;
	int r;

	set_ctx(req);
	path = path_of(ino);
	if (!path) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	r = hpfs_ops.write(path, buf, size, off, fi);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_write(req, (size_t)r);
	free(path);
}

static void ll_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	char *path;
	int r;

	set_ctx(req);
	path = path_of(ino);
	r = path ? hpfs_ops.flush(path, fi) : -ENOENT;
	fuse_reply_err(req, -r);
	free(path);
}

static void ll_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	char *path;

	set_ctx(req);
	path = path_of(ino);
	/* ops.c's release works from the handle; the path only names it. */
	hpfs_ops.release(path ? path : "", fi);
	fuse_reply_err(req, 0);
	free(path);
}

static void ll_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}

/* An open directory: ops.c's handle and the listing, read whole at the first readdir. */
struct dir {
	uint64_t fh;
	char **names;
	mode_t *modes;
	size_t n, cap;
	bool filled;
};

static int dir_fill(void *buf, const char *name, const struct stat *st, off_t off,
		    enum fuse_fill_dir_flags flags)
{
	struct dir *d = buf;

	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 32;
		char **names = realloc(d->names, cap * sizeof(*names));
		mode_t *modes;

		if (!names)
			return 1;
		d->names = names;
		modes = realloc(d->modes, cap * sizeof(*modes));
		if (!modes)
			return 1;
		d->modes = modes;
		d->cap = cap;
	}
	d->names[d->n] = strdup(name);
	if (!d->names[d->n])
		return 1;
	d->modes[d->n] = st ? st->st_mode : 0;
	d->n++;
	return 0;
}

static void dir_free(struct dir *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		free(d->names[i]);
	free(d->names);
	free(d->modes);
	free(d);
}

static void ll_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dir *d;
	char *path;
	int r;

	set_ctx(req);
	path = path_of(ino);
	d = calloc(1, sizeof(*d));
	if (!path || !d) {
		fuse_reply_err(req, path ? ENOMEM : ENOENT);
		free(d);
		goto out;
	}
	r = hpfs_ops.opendir(path, fi);
	if (r < 0) {
		fuse_reply_err(req, -r);
		free(d);
		goto out;
	}
	d->fh = fi->fh;
	fi->fh = (uintptr_t)d;
	if (fuse_reply_open(req, fi) != 0) {
		fi->fh = d->fh;
		hpfs_ops.releasedir(path, fi);
		dir_free(d);
	}
out:
	free(path);
}

static void ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct dir *d = (struct dir *)(uintptr_t)fi->fh;
	char *buf = NULL, *path = NULL;
	size_t used = 0;
	int r = 0;

	set_ctx(req);
	if (!d->filled || off == 0) {
		struct fuse_file_info inner = *fi;

		path = path_of(ino);
		if (!path) {
			r = -ENOENT;
			goto out;
		}
		for (size_t i = 0; i < d->n; i++)
			free(d->names[i]);
		d->n = 0;
		inner.fh = d->fh;
		r = hpfs_ops.readdir(path, d, dir_fill, 0, &inner, 0);
		if (r < 0)
			goto out;
		d->filled = true;
	}
	buf = malloc(size);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = (size_t)off; i < d->n; i++) {
		struct stat st;
		size_t len;

		memset(&st, 0, sizeof(st));
		st.st_mode = d->modes[i];
		/* Not 0 (readdir skips it); the inode number comes with the lookup. */
		st.st_ino = 0xffffffff; /* FUSE_UNKNOWN_INO of later libfuse */
		len = fuse_add_direntry(req, buf + used, size - used, d->names[i], &st,
					(off_t)(i + 1));
		if (len > size - used)
			break;
		used += len;
	}
out:
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_buf(req, buf, used);
	free(buf);
	free(path);
}

static void ll_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dir *d = (struct dir *)(uintptr_t)fi->fh;
	struct fuse_file_info inner = *fi;

	inner.fh = d->fh;
	hpfs_ops.releasedir("", &inner);
	dir_free(d);
	fuse_reply_err(req, 0);
}

const struct fuse_lowlevel_ops hpfs_ll_ops = {
	.init = ll_init,
	.destroy = ll_destroy,
	.lookup = ll_lookup,
	.forget = ll_forget,
	.forget_multi = ll_forget_multi,
	.getattr = ll_getattr,
	.setattr = ll_setattr,
	.readlink = ll_readlink,
	.mkdir = ll_mkdir,
	.unlink = ll_unlink,
	.rename = ll_rename,
	.open = ll_open,
	.create = ll_create,
	.read = ll_read,
	.write = ll_write,
	.flush = ll_flush,
	.release = ll_release,
	.fsync = ll_fsync,
	.opendir = ll_opendir,
	.readdir = ll_readdir,
	.releasedir = ll_releasedir,
};

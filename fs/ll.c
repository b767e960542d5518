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
 *
 * Directories have no open (when the kernel allows it: opendir answers
 * ENOSYS once, and the kernel sends no OPENDIR or RELEASEDIR again). The
 * kernel then caches every directory's listing and keeps it while the
 * directory's mtime stays the same, checked at each listing's start: a
 * set's directory never changes; the catalog root, baselines and months
 * have an mtime that names the snapshot, asked on each listing; the other
 * directories (the root, processes/, incoming/) get the time of the asking
 * as mtime, so their listings are never kept. READDIR comes without a
 * handle: the listing is made at offset 0 and kept in the inode for the
 * next offsets of the same caller.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "hpfs.h"
#include <fuse_lowlevel.h>
#include <linux/fuse.h>

#define HPFS_CATALOG_TIMEOUT 3600.0
#define NODE_BUCKETS 65536

struct dir;
static void dir_free(struct dir *d);

struct node {
	fuse_ino_t ino;
	char *path;
	uint64_t nlookup;
	bool hashed; /* reachable by path */
	struct dir *dir; /* a listing being read without a handle (no opendir) */
	struct node *by_path, *by_ino;
};

static pthread_mutex_t nodes_lock = PTHREAD_MUTEX_INITIALIZER;
static struct node *path_tab[NODE_BUCKETS], *ino_tab[NODE_BUCKETS];
static fuse_ino_t next_ino = 2;
static struct node root_node = { .ino = FUSE_ROOT_ID, .path = (char *)"/", .nlookup = 1 };

double hpfs_entry_timeout, hpfs_attr_timeout;
static __thread struct fuse_context ctx;
/* Directories are opened by the kernel alone (set in init). */
static bool no_opendir;

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
	dir_free(n->dir);
	free(n->path);
	free(n);
out:
	pthread_mutex_unlock(&nodes_lock);
}

static int catalog_depth(const char *path);

bool hpfs_ll_quick(uint32_t opcode, uint64_t nodeid)
{
	struct node *n;
	bool quick = false;

	switch (opcode) {
	case FUSE_LOOKUP:
	case FUSE_FORGET:
	case FUSE_BATCH_FORGET:
	case FUSE_GETATTR:
	case FUSE_READLINK:
	case FUSE_READDIR:
	case FUSE_READDIRPLUS:
	case FUSE_STATFS:
	case FUSE_ACCESS:
	case FUSE_INTERRUPT:
		return true;
	case FUSE_OPEN:
	case FUSE_READ:
	case FUSE_FLUSH:
	case FUSE_RELEASE:
		/* a catalog file's: a blob of the snapshot (state and control
		 * files are computed, or do their work, in these) */
		pthread_mutex_lock(&nodes_lock);
		n = by_ino(nodeid);
		quick = n && catalog_depth(n->path) >= 0;
		pthread_mutex_unlock(&nodes_lock);
		return quick;
	default:
		return false;
	}
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
	/*
	 * Without opendir the kernel keeps every listing while the directory's
	 * mtime stays the same, and checks the mtime only once the attributes
	 * expire: whatever -o attr_timeout says, a directory whose listing
	 * may change is asked each time.
	 */
	if (no_opendir && S_ISDIR(st->st_mode))
		return 0;
	return hpfs_attr_timeout;
}

/*
 * Attributes as the kernel gets them: without opendir, a directory outside
 * the catalog (the root, processes/, incoming/, processes/PID) changes its
 * mtime at each asking, so that the kernel lists it afresh each time (its
 * contents change without the kernel seeing it; the listing of processes/
 * and the right to list incoming/ depend on who asks).
 */
static void fix_attr(const char *path, fuse_ino_t ino, struct stat *st)
{
	st->st_ino = ino;
	if (no_opendir && S_ISDIR(st->st_mode) && catalog_depth(path) < 0) {
		struct timespec now;

		clock_gettime(CLOCK_REALTIME, &now);
		st->st_mtim = now;
	}
}

/*
 * The entry for path (its attributes through fi when given, its node made
 * or found, one lookup counted on it): 0, or a negative errno.
 */
static int entry_of(const char *path, struct fuse_file_info *fi, struct fuse_entry_param *ret)
{
	struct fuse_entry_param e;
	struct node *n;
	int r;

	memset(&e, 0, sizeof(e));
	r = hpfs_ops.getattr(path, &e.attr, fi);
	if (r < 0)
		return r;
	pthread_mutex_lock(&nodes_lock);
	n = node_get(path);
	if (n)
		e.ino = n->ino;
	pthread_mutex_unlock(&nodes_lock);
	if (!n)
		return -ENOMEM;
	fix_attr(path, e.ino, &e.attr);
	e.generation = 1;
	e.entry_timeout = entry_timeout(path);
	e.attr_timeout = attr_timeout(path, &e.attr);
	*ret = e;
	return 0;
}

static void reply_entry_of(fuse_req_t req, const char *path)
{
	struct fuse_entry_param e;
	int r = entry_of(path, NULL, &e);

	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
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
	/*
	 * A kernel that opens directories itself (no OPENDIR, no RELEASEDIR: two
	 * round trips per directory less) and checks a cached listing against
	 * the directory's mtime (auto_inval_data) before using it.
	 */
	if ((conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT) &&
	    (conn->capable & FUSE_CAP_AUTO_INVAL_DATA)) {
		conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
		no_opendir = true;
	}
}

static void ll_destroy(void *data)
{
	hpfs_ops.destroy(data);
	pthread_mutex_lock(&nodes_lock);
	for (size_t i = 0; i < NODE_BUCKETS; i++) {
		while (ino_tab[i]) {
			struct node *n = ino_tab[i];

			ino_tab[i] = n->by_ino;
			dir_free(n->dir);
			free(n->path);
			free(n);
		}
		path_tab[i] = NULL;
	}
	dir_free(root_node.dir);
	root_node.dir = NULL;
	pthread_mutex_unlock(&nodes_lock);
}

/*
 * The start of a request on an inode: the caller's context set, and the
 * inode's path (to free), or NULL after answering ENOENT (a forgotten inode).
 */
static char *req_path(fuse_req_t req, fuse_ino_t ino)
{
	char *path;

	set_ctx(req);
	path = path_of(ino);
	if (!path)
		fuse_reply_err(req, ENOENT);
	return path;
}

/* The same for NAME in the directory PARENT. */
static char *req_path_in(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	char *path;

	set_ctx(req);
	path = path_join(parent, name);
	if (!path)
		fuse_reply_err(req, ENOENT);
	return path;
}

static void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	char *path;

	path = req_path_in(req, parent, name);
	if (!path)
		return;
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

	path = req_path(req, ino);
	if (!path)
		return;
	memset(&st, 0, sizeof(st));
	r = hpfs_ops.getattr(path, &st, fi);
	if (r < 0) {
		fuse_reply_err(req, -r);
	} else {
		fix_attr(path, ino, &st);
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

	path = req_path(req, ino);
	if (!path)
		return;
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
		fix_attr(path, ino, &st);
		fuse_reply_attr(req, &st, attr_timeout(path, &st));
	}
	free(path);
}

static void ll_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[4096];
	char *path;
	int r;

	path = req_path(req, ino);
	if (!path)
		return;
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

	path = req_path_in(req, parent, name);
	if (!path)
		return;
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

	path = req_path_in(req, parent, name);
	if (!path)
		return;
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

	path = req_path(req, ino);
	if (!path)
		return;
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
	char *path;
	int r;

	path = req_path_in(req, parent, name);
	if (!path)
		return;
	r = hpfs_ops.create(path, mode, fi);
	if (r < 0) {
		fuse_reply_err(req, -r);
		goto out;
	}
	r = entry_of(path, fi, &e);
	if (r < 0) {
		hpfs_ops.release(path, fi);
		fuse_reply_err(req, -r);
		goto out;
	}
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

	path = req_path(req, ino);
	if (!path)
		return;
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

/*
 * A listing: read whole at offset 0, served by offset (an entry's offset is
 * its index + 1). With opendir, it belongs to the open directory (fh, ops.c's
 * handle); without, to the inode between the READDIRs of one listing (uid:
 * the caller it was made for).
 */
struct dir {
	uint64_t fh;
	uid_t uid;
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

	if (no_opendir) {
		/* The kernel opens directories itself from now on (ll_init). */
		fuse_reply_err(req, ENOSYS);
		return;
	}
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

/* Fill D with the listing of PATH through ops.c's handle FI (D emptied first). */
static int dir_read(struct dir *d, const char *path, const struct fuse_file_info *fi)
{
	struct fuse_file_info inner = *fi;

	for (size_t i = 0; i < d->n; i++)
		free(d->names[i]);
	d->n = 0;
	inner.fh = d->fh;
	return hpfs_ops.readdir(path, d, dir_fill, 0, &inner, 0);
}

/* A listing of PATH without a handle: ops.c's opendir, readdir and releasedir at once. */
static int dir_list(const char *path, struct dir **ret)
{
	struct fuse_file_info fi;
	struct dir *d;
	int r;

	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->uid = ctx.uid;
	memset(&fi, 0, sizeof(fi));
	fi.flags = O_RDONLY | O_DIRECTORY;
	r = hpfs_ops.opendir(path, &fi);
	if (r < 0)
		goto out;
	d->fh = fi.fh;
	r = dir_read(d, path, &fi);
	hpfs_ops.releasedir(path, &fi);
	d->fh = 0;
out:
	if (r < 0)
		dir_free(d);
	else
		*ret = d;
	return r < 0 ? r : 0;
}

/* Entries of D from offset OFF into a reply buffer of SIZE (*ret_used bytes). */
static int dir_reply(fuse_req_t req, const struct dir *d, size_t size, off_t off, char **ret_buf,
		     size_t *ret_used)
{
	char *buf = malloc(size ? size : 1);
	size_t used = 0;

	if (!buf)
		return -ENOMEM;
	for (size_t i = off < 0 ? 0 : (size_t)off; i < d->n; i++) {
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
	*ret_buf = buf;
	*ret_used = used;
	return 0;
}

/*
 * READDIR without a handle. At offset 0 the listing is made afresh; the
 * next offsets of the same caller are served from the one kept in the
 * inode (taken out while in use: another reader makes its own), which goes
 * at the end of the listing, or when the inode is forgotten.
 */
static void readdir_nofh(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off)
{
	struct dir *d = NULL;
	struct node *n;
	char *buf = NULL, *path = NULL;
	size_t used = 0;
	int r = 0;

	if (off > 0) {
		pthread_mutex_lock(&nodes_lock);
		n = by_ino(ino);
		if (n && n->dir && n->dir->uid == ctx.uid) {
			d = n->dir;
			n->dir = NULL;
		}
		pthread_mutex_unlock(&nodes_lock);
	}
	if (!d) {
		path = path_of(ino);
		r = path ? dir_list(path, &d) : -ENOENT;
		if (r < 0)
			goto out;
	}
	r = dir_reply(req, d, size, off, &buf, &used);
	if (r < 0 || used == 0)
		goto out;
	pthread_mutex_lock(&nodes_lock);
	n = by_ino(ino);
	if (n) {
		dir_free(n->dir);
		n->dir = d;
		d = NULL;
	}
	pthread_mutex_unlock(&nodes_lock);
out:
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_buf(req, buf, used);
	dir_free(d);
	free(buf);
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
	if (!d) {
		readdir_nofh(req, ino, size, off);
		return;
	}
	if (!d->filled || off == 0) {
		path = path_of(ino);
		if (!path) {
			r = -ENOENT;
			goto out;
		}
		r = dir_read(d, path, fi);
		if (r < 0)
			goto out;
		d->filled = true;
	}
	r = dir_reply(req, d, size, off, &buf, &used);
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

	if (d) {
		inner.fh = d->fh;
		hpfs_ops.releasedir("", &inner);
		dir_free(d);
	}
	fuse_reply_err(req, 0);
}

/* ---- a new HEAD: names it lacks leave the kernel's cache -------------------- */

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	struct fuse_session *se;
	bool started, stopping;
} watch = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER };

/*
 * The catalog's baselines, months and sets (and BASELINE, latest) the kernel
 * holds but SNAP (NULL: an empty store) lacks: their names are cached for an
 * hour, so a HEAD moved by hand to a commit without them would leave them
 * reachable. Their files go with them (a path walk through a dropped name
 * looks it up again).
 */
static void watch_drop_gone(struct ctl_snap *snap)
{
	char **paths = NULL;
	size_t n = 0, cap = 0;

	pthread_mutex_lock(&nodes_lock);
	for (size_t i = 0; i < NODE_BUCKETS; i++)
		for (struct node *nd = ino_tab[i]; nd; nd = nd->by_ino) {
			int d = catalog_depth(nd->path);
			char **more;

			if (!nd->hashed || d < 1 || d > 3)
				continue;
			if (n == cap) {
				cap = cap ? cap * 2 : 256;
				more = realloc(paths, cap * sizeof(*paths));
				if (!more)
					goto collected;
				paths = more;
			}
			paths[n] = strdup(nd->path);
			if (paths[n])
				n++;
		}
collected:
	pthread_mutex_unlock(&nodes_lock);
	for (size_t i = 0; i < n; i++) {
		struct store_node sn;
		char *slash = strrchr(paths[i], '/');
		fuse_ino_t parent = 0;

		if (snap && store_snap_stat(ctl_snap_store(snap), paths[i] + strlen("/catalog/"),
					    &sn) != -ENOENT)
			continue;
		*slash = '\0';
		pthread_mutex_lock(&nodes_lock);
		for (struct node *nd = path_tab[hash_str(paths[i])]; nd; nd = nd->by_path)
			if (!strcmp(nd->path, paths[i])) {
				parent = nd->ino;
				break;
			}
		pthread_mutex_unlock(&nodes_lock);
		if (parent)
			fuse_lowlevel_notify_inval_entry(watch.se, parent, slash + 1, strlen(slash + 1));
	}
	for (size_t i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
}

/* Looks at the store's HEAD once a second (a ref read); on a change, drops what is gone. */
static void *watch_main(void *arg)
{
	char last[41] = "", head[41];

	ctl_head(hpfs.ctl, last);
	pthread_mutex_lock(&watch.lock);
	while (!watch.stopping) {
		struct timespec until;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 1;
		pthread_cond_timedwait(&watch.cond, &watch.lock, &until);
		if (watch.stopping)
			break;
		pthread_mutex_unlock(&watch.lock);
		if (ctl_head(hpfs.ctl, head) == 0 && strcmp(head, last)) {
			struct ctl_snap *snap = NULL;
			int r = head[0] ? ctl_snap_get(hpfs.ctl, true, &snap) : 0;

			if (r == 0)
				watch_drop_gone(snap);
			ctl_snap_unref(snap);
			if (r == 0)
				memcpy(last, head, sizeof(last));
		}
		pthread_mutex_lock(&watch.lock);
	}
	pthread_mutex_unlock(&watch.lock);
	return NULL;
}

int hpfs_ll_watch_start(struct fuse_session *se)
{
	int r;

	watch.se = se;
	watch.stopping = false;
	r = -pthread_create(&watch.thread, NULL, watch_main, NULL);
	if (r == 0)
		watch.started = true;
	return r;
}

void hpfs_ll_watch_stop(void)
{
	if (!watch.started)
		return;
	pthread_mutex_lock(&watch.lock);
	watch.stopping = true;
	pthread_cond_signal(&watch.cond);
	pthread_mutex_unlock(&watch.lock);
	pthread_join(watch.thread, NULL);
	watch.started = false;
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

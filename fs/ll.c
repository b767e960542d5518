/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ll.c: the low-level FUSE front of hotpatchfs. It keeps the node table:
 * one node per name the kernel holds, found by inode number and by
 * (parent, name), each knowing what it is (struct hpfs_id: its kind, and a
 * process or a catalog path). A request goes from the node to its kind's
 * table of operations (ops.c); a lookup asks the parent's kind what the
 * name is. It answers the kernel with per-entry timeouts, which libfuse's
 * high-level API cannot: below a catalog baseline and month (the set
 * directories and their files) nothing changes within a snapshot, so those
 * entries and attributes are cached for HPFS_CATALOG_TIMEOUT; the names
 * under catalog/ are cached as long, but the attributes of the catalog
 * root, baselines, months, BASELINE and latest are asked again on each use
 * (their mtime names the snapshot: a new HEAD drops their listings and
 * pages). The root's own names (not its temporary files) are kept as long;
 * the attributes of control and state files, and the names and attributes
 * below processes/, keep the mount's timeouts (0 by default).
 *
 * Directories have no open (when the kernel allows it: opendir answers
 * ENOSYS once, and the kernel sends no OPENDIR or RELEASEDIR again). The
 * kernel then caches every directory's listing and keeps it while the
 * directory's mtime stays the same, checked at each listing's start: a
 * set's directory never changes; the catalog root, baselines and months
 * have an mtime that names the snapshot, asked on each listing; the other
 * directories (the root, processes/, incoming/) get the time of the asking
 * as mtime, so their listings are never kept. READDIR comes without a
 * handle: the listing is made at offset 0 and kept in the node for the
 * next offsets of the same caller.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hpfs.h"
#include <linux/fuse.h>

#define HPFS_CATALOG_TIMEOUT 3600.0
#define NODE_BUCKETS 65536

static void list_free(struct hpfs_list *d);
static void dirs_open_free(void);

struct node {
	fuse_ino_t ino;
	fuse_ino_t parent;
	char *name;
	struct hpfs_id id;    /* id.sub owned */
	uint64_t nlookup;
	bool hashed;          /* reachable by (parent, name) */
	struct hpfs_list *dir; /* a listing being read without a handle (no opendir) */
	struct node *by_name, *by_ino;
};

static pthread_mutex_t nodes_lock = PTHREAD_MUTEX_INITIALIZER;
static struct node *name_tab[NODE_BUCKETS], *ino_tab[NODE_BUCKETS];
static fuse_ino_t next_ino = 2;
static struct node root_node = {
	.ino = FUSE_ROOT_ID, .name = (char *)"", .id = { &hpfs_root_kind, 0, NULL }, .nlookup = 1
};

double hpfs_entry_timeout, hpfs_attr_timeout;
/* Directories are opened by the kernel alone (set in init). */
static bool no_opendir;

static size_t hash_name(fuse_ino_t parent, const char *s)
{
	size_t h = 1469598103934665603ULL ^ (size_t)parent;

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

/* Callers hold nodes_lock. */
static struct node *by_name(fuse_ino_t parent, const char *name)
{
	for (struct node *n = name_tab[hash_name(parent, name)]; n; n = n->by_name)
		if (n->parent == parent && !strcmp(n->name, name))
			return n;
	return NULL;
}

static void unhash_name(struct node *n)
{
	struct node **pp = &name_tab[hash_name(n->parent, n->name)];

	if (!n->hashed)
		return;
	for (; *pp; pp = &(*pp)->by_name)
		if (*pp == n) {
			*pp = n->by_name;
			break;
		}
	n->hashed = false;
}

static void node_free(struct node *n)
{
	list_free(n->dir);
	free(n->id.sub);
	free(n->name);
	free(n);
}

/*
 * The node of NAME in PARENT, made with ID (whose sub it takes) if new, with
 * one more lookup. Callers hold nodes_lock.
 */
static struct node *node_get(fuse_ino_t parent, const char *name, struct hpfs_id *id)
{
	struct node *n = by_name(parent, name);
	size_t h;

	if (n) {
		n->nlookup++;
		return n;
	}
	n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->name = strdup(name);
	if (!n->name) {
		free(n);
		return NULL;
	}
	n->parent = parent;
	n->id = *id;
	id->sub = NULL;
	n->ino = next_ino++;
	n->nlookup = 1;
	h = hash_name(parent, name);
	n->by_name = name_tab[h];
	name_tab[h] = n;
	n->hashed = true;
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
	unhash_name(n);
	for (pp = &ino_tab[ino % NODE_BUCKETS]; *pp; pp = &(*pp)->by_ino)
		if (*pp == n) {
			*pp = n->by_ino;
			break;
		}
	node_free(n);
out:
	pthread_mutex_unlock(&nodes_lock);
}

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
	case FUSE_SETATTR:
		break;
	default:
		return false;
	}
	pthread_mutex_lock(&nodes_lock);
	n = by_ino(nodeid);
	if (n) {
		const struct hpfs_kind *k = n->id.kind;
		bool attr = k->show || k->store; /* a state or control file */

		if (k->quick && opcode != FUSE_SETATTR)
			quick = true; /* a catalog file's: a blob of the snapshot */
		else if (opcode == FUSE_OPEN)
			quick = attr && !k->show; /* a control file with nothing to show */
		else if (opcode != FUSE_READ)
			/* a state or control file's truncation, flush and release check
			 * and free; its contents are made at open, its command run by
			 * the WRITE */
			quick = attr;
	}
	pthread_mutex_unlock(&nodes_lock);
	return quick;
}

/* A copy of INO's id (free ret->sub), or -ENOENT for a forgotten inode. */
static int id_of(fuse_ino_t ino, struct hpfs_id *ret)
{
	struct node *n;
	int r = -ENOENT;

	pthread_mutex_lock(&nodes_lock);
	n = by_ino(ino);
	if (n) {
		*ret = n->id;
		ret->sub = NULL;
		r = 0;
		if (n->id.sub && !(ret->sub = strdup(n->id.sub)))
			r = -ENOMEM;
	}
	pthread_mutex_unlock(&nodes_lock);
	return r;
}

/*
 * The start of a request on an inode: the caller, and the inode's id (free
 * ret->sub), or an errno after answering it (a forgotten inode).
 */
static int req_id(fuse_req_t req, fuse_ino_t ino, struct hpfs_caller *c, struct hpfs_id *ret)
{
	const struct fuse_ctx *fc = fuse_req_ctx(req);
	int r;

	c->uid = fc->uid;
	c->gid = fc->gid;
	c->pid = fc->pid;
	r = id_of(ino, ret);
	if (r < 0)
		fuse_reply_err(req, -r);
	return r;
}

/*
 * The same for NAME in the directory PARENT: what the parent's kind says the
 * name is (ENAMETOOLONG past NAME_MAX, ENOTDIR for a file).
 */
static int req_id_in(fuse_req_t req, fuse_ino_t parent, const char *name, struct hpfs_caller *c,
		     struct hpfs_id *ret)
{
	struct hpfs_id dir;
	int r;

	memset(ret, 0, sizeof(*ret));
	r = req_id(req, parent, c, &dir);
	if (r < 0)
		return r;
	if (strlen(name) > NAME_MAX)
		r = -ENAMETOOLONG;
	else if (!dir.kind->lookup)
		r = -ENOTDIR;
	else
		r = dir.kind->lookup(&dir, name, ret);
	free(dir.sub);
	if (r < 0) {
		free(ret->sub);
		ret->sub = NULL;
		fuse_reply_err(req, -r);
	}
	return r;
}

/* How deep below catalog/ a catalog node is (catalog/ itself 0). */
static int catalog_depth(const struct hpfs_id *id)
{
	unsigned d = 0;

	if (!*id->sub)
		return 0;
	for (const char *p = id->sub; *p; p++)
		d += *p == '/';
	return (int)d + 1;
}

/*
 * A name of the root other than a temporary file (apply, revert, status...)
 * always names the same kind of node: the kernel may keep it, and `echo
 * PID > apply` then costs no LOOKUP (its open took 57-80 us, 38-44 with the
 * name kept). A temporary file renamed over apply leaves the kernel's name
 * on the temporary's inode, which answers as apply from then on (ll_rename).
 */
static double entry_timeout(fuse_ino_t parent, const struct hpfs_id *id)
{
	if (id->kind->catalog || (parent == FUSE_ROOT_ID && !id->sub))
		return HPFS_CATALOG_TIMEOUT;
	return hpfs_entry_timeout;
}

static double attr_timeout(const struct hpfs_id *id, const struct stat *st)
{
	/* catalog/B/M/SET and below; catalog/B/BASELINE and catalog/latest may change. */
	if (id->kind->catalog && catalog_depth(id) >= 3)
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
static void fix_attr(const struct hpfs_kind *k, fuse_ino_t ino, struct stat *st)
{
	st->st_ino = ino;
	if (no_opendir && S_ISDIR(st->st_mode) && !k->catalog) {
		struct timespec now;

		clock_gettime(CLOCK_REALTIME, &now);
		st->st_mtim = now;
	}
}

static struct hpfs_fh *fh_of(const struct fuse_file_info *fi)
{
	return fi ? (struct hpfs_fh *)(uintptr_t)fi->fh : NULL;
}

/*
 * The entry for NAME in PARENT, which is ID (its attributes through fi when
 * given; its node made or found, taking id->sub; one lookup counted on it):
 * 0, or a negative errno.
 */
static int entry_of(const struct hpfs_caller *c, fuse_ino_t parent, const char *name,
		    struct hpfs_id *id, struct fuse_file_info *fi, struct fuse_entry_param *ret)
{
	const struct hpfs_kind *k = id->kind;
	struct fuse_entry_param e;
	struct node *n;
	int r;

	memset(&e, 0, sizeof(e));
	r = k->getattr(c, id, fh_of(fi), false, &e.attr);
	if (r < 0)
		return r;
	e.generation = 1;
	e.entry_timeout = entry_timeout(parent, id);
	e.attr_timeout = attr_timeout(id, &e.attr);
	pthread_mutex_lock(&nodes_lock);
	n = node_get(parent, name, id);
	if (n)
		e.ino = n->ino;
	pthread_mutex_unlock(&nodes_lock);
	if (!n)
		return -ENOMEM;
	fix_attr(k, e.ino, &e.attr);
	*ret = e;
	return 0;
}

static void ll_init(void *data, struct fuse_conn_info *conn)
{
	hpfs_ops_init(conn, hpfs_attr_timeout);
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
	hpfs_ops_destroy();
	pthread_mutex_lock(&nodes_lock);
	for (size_t i = 0; i < NODE_BUCKETS; i++) {
		while (ino_tab[i]) {
			struct node *n = ino_tab[i];

			ino_tab[i] = n->by_ino;
			node_free(n);
		}
		name_tab[i] = NULL;
	}
	list_free(root_node.dir);
	root_node.dir = NULL;
	pthread_mutex_unlock(&nodes_lock);
	dirs_open_free();
}

static void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	struct hpfs_caller c;
	struct hpfs_id id;
	int r;

	if (req_id_in(req, parent, name, &c, &id) < 0)
		return;
	r = entry_of(&c, parent, name, &id, NULL, &e);
	free(id.sub);
	if (r < 0)
		fuse_reply_err(req, -r);
	else if (fuse_reply_entry(req, &e) != 0)
		node_forget(e.ino, 1);
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

/* Answer a request with ID's attributes (through FI's handle when given). */
static void reply_attr(fuse_req_t req, const struct hpfs_caller *c, fuse_ino_t ino,
		       const struct hpfs_id *id, struct fuse_file_info *fi)
{
	struct stat st;
	int r;

	memset(&st, 0, sizeof(st));
	r = id->kind->getattr(c, id, fh_of(fi), true, &st);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	fix_attr(id->kind, ino, &st);
	fuse_reply_attr(req, &st, attr_timeout(id, &st));
}

static void ll_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct hpfs_caller c;
	struct hpfs_id id;

	if (req_id(req, ino, &c, &id) < 0)
		return;
	reply_attr(req, &c, ino, &id, fi);
	free(id.sub);
}

static void ll_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct hpfs_caller c;
	struct hpfs_id id;
	const struct hpfs_kind *k;
	int r = 0;

	if (req_id(req, ino, &c, &id) < 0)
		return;
	k = id.kind;
	/* chmod, chown and utimens ask the same question (meta); truncate its own. */
	if (to_set & FUSE_SET_ATTR_MODE) {
		mode_t mode = attr->st_mode;

		r = k->meta ? k->meta(&c, &id, &mode) : k->deny;
	}
	if (r >= 0 && (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID | FUSE_SET_ATTR_ATIME |
				 FUSE_SET_ATTR_MTIME)))
		r = k->meta ? k->meta(&c, &id, NULL) : k->deny;
	if (r >= 0 && (to_set & FUSE_SET_ATTR_SIZE))
		r = k->truncate ? k->truncate(&c, &id, attr->st_size) : k->deny;
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		reply_attr(req, &c, ino, &id, fi);
	free(id.sub);
}

static void ll_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[PATH_MAX];
	struct hpfs_caller c;
	struct hpfs_id id;
	int r;

	if (req_id(req, ino, &c, &id) < 0)
		return;
	r = id.kind->readlink ? id.kind->readlink(&id, buf, sizeof(buf)) : -EINVAL;
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_readlink(req, buf);
	free(id.sub);
}

/*
 * What makes a new name other than a file (mkdir, mknod, symlink, link) or
 * removes a directory (rmdir): none is made or removed, the answer is the
 * directory's `deny` (EROFS in the catalog, EPERM elsewhere) once the name
 * is known to be well formed (ENAMETOOLONG).
 */
static void deny_in(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct hpfs_caller c;
	struct hpfs_id dir;

	if (req_id(req, parent, &c, &dir) < 0)
		return;
	fuse_reply_err(req, strlen(name) > NAME_MAX ? ENAMETOOLONG : -dir.kind->deny);
	free(dir.sub);
}

static void ll_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	deny_in(req, parent, name);
}

static void ll_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	deny_in(req, parent, name);
}

static void ll_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	deny_in(req, parent, name);
}

static void ll_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	deny_in(req, parent, name);
}

static void ll_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	deny_in(req, newparent, newname);
}

static void ll_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct hpfs_caller c;
	struct hpfs_id id;
	int r;

	if (req_id_in(req, parent, name, &c, &id) < 0)
		return;
	r = id.kind->unlink ? id.kind->unlink(&c, &id) : id.kind->deny;
	if (r == 0) {
		struct node *n;

		/* The name is gone: a file made again under it is a new inode. */
		pthread_mutex_lock(&nodes_lock);
		n = by_name(parent, name);
		if (n)
			unhash_name(n);
		pthread_mutex_unlock(&nodes_lock);
	}
	fuse_reply_err(req, -r);
	free(id.sub);
}

static void ll_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	struct hpfs_caller c;
	struct hpfs_id from, to;
	int r;

	if (req_id_in(req, parent, name, &c, &from) < 0)
		return;
	if (req_id_in(req, newparent, newname, &c, &to) < 0) {
		free(from.sub);
		return;
	}
	if (flags)
		r = -EINVAL;
	else if (from.kind->catalog || to.kind->catalog)
		r = -EROFS;
	else
		r = from.kind->rename ? from.kind->rename(&c, &from, &to) : -EPERM;
	if (r == 0) {
		struct node *n;

		/*
		 * The source's inode now answers for the destination (what the
		 * destination's name is), but unhashed: a lookup of the name finds
		 * the destination's own node.
		 */
		pthread_mutex_lock(&nodes_lock);
		n = by_name(parent, name);
		if (n) {
			unhash_name(n);
			free(n->id.sub);
			n->id = to;
			to.sub = NULL;
		}
		pthread_mutex_unlock(&nodes_lock);
	}
	fuse_reply_err(req, -r);
	free(from.sub);
	free(to.sub);
}

static void ll_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct hpfs_caller c;
	struct hpfs_id id;
	int r;

	if (req_id(req, ino, &c, &id) < 0)
		return;
	fi->fh = 0;
	r = id.kind->open ? id.kind->open(&c, &id, fi) : id.kind->dir ? -EISDIR : id.kind->deny;
	if (r < 0)
		fuse_reply_err(req, -r);
	else if (fuse_reply_open(req, fi) != 0)
		hpfs_fh_release(fh_of(fi));
	free(id.sub);
}

static void ll_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct fuse_entry_param e;
	struct hpfs_caller c;
	struct hpfs_id dir, id;
	int r;

	if (req_id_in(req, parent, name, &c, &id) < 0)
		return;
	r = id_of(parent, &dir);
	if (r == 0) {
		fi->fh = 0;
		r = dir.kind->create ? dir.kind->create(&c, &id, mode, fi) : dir.kind->deny;
		free(dir.sub);
	}
	if (r < 0) {
		fuse_reply_err(req, -r);
		goto out;
	}
	r = entry_of(&c, parent, name, &id, fi, &e);
	if (r < 0) {
		hpfs_fh_release(fh_of(fi));
		fuse_reply_err(req, -r);
		goto out;
	}
	if (fuse_reply_create(req, &e, fi) != 0) {
		hpfs_fh_release(fh_of(fi));
		node_forget(e.ino, 1);
	}
out:
	free(id.sub);
}

/* A request on an open file: its kind's operation, from the handle. */
static const struct hpfs_kind *kind_of(const struct fuse_file_info *fi)
{
	return hpfs_fh_kind(fh_of(fi));
}

static void ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	const struct hpfs_kind *k = kind_of(fi);
	char *buf;
	int r;

	buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	r = k->read ? k->read(fh_of(fi), buf, size, off) : -EBADF;
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_buf(req, buf, (size_t)r);
	free(buf);
}

static void ll_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	const struct hpfs_kind *k = kind_of(fi);
	const struct fuse_ctx *fc = fuse_req_ctx(req);
	struct hpfs_caller c = { fc->uid, fc->gid, fc->pid };
	int r;

	r = k->write ? k->write(&c, fh_of(fi), buf, size, off) : k->deny;
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_write(req, (size_t)r);
}

static void ll_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	const struct hpfs_kind *k = kind_of(fi);

	fuse_reply_err(req, k->flush ? -k->flush(fh_of(fi)) : 0);
}

static void ll_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	hpfs_fh_release(fh_of(fi));
	fuse_reply_err(req, 0);
}

static void ll_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}

/*
 * A listing: made whole (the kind's list), served by offset (an entry's
 * offset is its index + 1). With opendir, it belongs to the open directory
 * (fh); without, to the node between the READDIRs of one listing (uid: the
 * caller it was made for).
 */
struct hpfs_list {
	uid_t uid;
	char **names;
	mode_t *modes;
	size_t n, cap;
	bool served; /* an opendir's listing was read: offset 0 again makes it afresh */
	struct hpfs_list *prev, *next; /* an opendir's: on dirs_open until its RELEASEDIR */
};

/* Open directories (opendir), let go at the unmount if their RELEASEDIR never came (ops.c fh_open). */
static pthread_mutex_t dirs_open_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hpfs_list *dirs_open;

static void dir_opened(struct hpfs_list *d)
{
	pthread_mutex_lock(&dirs_open_lock);
	HP_LIST_PREPEND(dirs_open, d);
	pthread_mutex_unlock(&dirs_open_lock);
}

static void dir_closed(struct hpfs_list *d)
{
	if (!d)
		return;
	pthread_mutex_lock(&dirs_open_lock);
	HP_LIST_REMOVE(dirs_open, d);
	pthread_mutex_unlock(&dirs_open_lock);
}

/* At the unmount, after the request loop. */
static void dirs_open_free(void)
{
	while (dirs_open) {
		struct hpfs_list *d = dirs_open;

		dir_closed(d);
		list_free(d);
	}
}

int hpfs_list_add(struct hpfs_list *d, const char *name, mode_t type)
{
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
	d->modes[d->n] = type;
	d->n++;
	return 0;
}

static void list_free(struct hpfs_list *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		free(d->names[i]);
	free(d->names);
	free(d->modes);
	free(d);
}

/* Fill D (emptied first) with the listing of ID, "." and ".." first. */
static int list_fill(struct hpfs_list *d, const struct hpfs_caller *c, const struct hpfs_id *id,
		     struct fuse_file_info *fi)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->names[i]);
	d->n = 0;
	if (!id->kind->list)
		return -ENOTDIR;
	hpfs_list_add(d, ".", S_IFDIR);
	hpfs_list_add(d, "..", S_IFDIR);
	return id->kind->list(c, id, d, fi);
}

static void ll_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct hpfs_caller c;
	struct hpfs_list *d;
	struct hpfs_id id;
	int r;

	if (no_opendir) {
		/* The kernel opens directories itself from now on (ll_init). */
		fuse_reply_err(req, ENOSYS);
		return;
	}
	if (req_id(req, ino, &c, &id) < 0)
		return;
	d = calloc(1, sizeof(*d));
	r = d ? list_fill(d, &c, &id, fi) : -ENOMEM;
	if (r < 0) {
		fuse_reply_err(req, -r);
		list_free(d);
		goto out;
	}
	fi->fh = (uintptr_t)d;
	/* before the reply: its RELEASEDIR may come as soon as it is sent */
	dir_opened(d);
	if (fuse_reply_open(req, fi) != 0) {
		dir_closed(d);
		list_free(d);
	}
out:
	free(id.sub);
}

/* Entries of D from offset OFF into a reply buffer of SIZE (*ret_used bytes). */
static int list_reply(fuse_req_t req, const struct hpfs_list *d, size_t size, off_t off,
		      char **ret_buf, size_t *ret_used)
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
 * node (taken out while in use: another reader makes its own), which goes
 * at the end of the listing, or when the node is forgotten.
 */
static void readdir_nofh(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off)
{
	struct hpfs_list *d = NULL;
	struct hpfs_caller c;
	struct hpfs_id id;
	struct node *n;
	char *buf = NULL;
	size_t used = 0;
	int r = 0;

	if (req_id(req, ino, &c, &id) < 0)
		return;
	if (off > 0) {
		pthread_mutex_lock(&nodes_lock);
		n = by_ino(ino);
		if (n && n->dir && n->dir->uid == c.uid) {
			d = n->dir;
			n->dir = NULL;
		}
		pthread_mutex_unlock(&nodes_lock);
	}
	if (!d) {
		d = calloc(1, sizeof(*d));
		if (!d) {
			r = -ENOMEM;
			goto out;
		}
		d->uid = c.uid;
		r = list_fill(d, &c, &id, NULL);
		if (r < 0)
			goto out;
	}
	r = list_reply(req, d, size, off, &buf, &used);
	if (r < 0 || used == 0)
		goto out;
	pthread_mutex_lock(&nodes_lock);
	n = by_ino(ino);
	if (n) {
		list_free(n->dir);
		n->dir = d;
		d = NULL;
	}
	pthread_mutex_unlock(&nodes_lock);
out:
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_buf(req, buf, used);
	list_free(d);
	free(buf);
	free(id.sub);
}

static void ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct hpfs_list *d = (struct hpfs_list *)(uintptr_t)fi->fh;
	char *buf = NULL;
	size_t used = 0;
	int r = 0;

	if (!d) {
		readdir_nofh(req, ino, size, off);
		return;
	}
	if (off == 0 && d->served) {
		struct hpfs_caller c;
		struct hpfs_id id;

		if (req_id(req, ino, &c, &id) < 0)
			return;
		r = list_fill(d, &c, &id, NULL);
		free(id.sub);
		if (r < 0)
			goto out;
	}
	d->served = true;
	r = list_reply(req, d, size, off, &buf, &used);
out:
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_buf(req, buf, used);
	free(buf);
}

static void ll_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	dir_closed((struct hpfs_list *)(uintptr_t)fi->fh);
	list_free((struct hpfs_list *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

/* ---- a new HEAD: names it lacks leave the kernel's cache -------------------- */

static struct {
	pthread_t thread;
	struct fuse_session *se;
	bool started;
	int stop_fd; /* eventfd: written once to stop the thread */
} watch = { .stop_fd = -1 };

struct gone {
	fuse_ino_t parent;
	char *name;
	char *sub;
};

/*
 * The catalog's baselines, months and sets (and BASELINE, latest) the kernel
 * holds but SNAP (NULL: an empty store) lacks: their names are cached for an
 * hour, so a HEAD moved by hand to a commit without them would leave them
 * reachable. Their files go with them (a path walk through a dropped name
 * looks it up again).
 */
static void watch_drop_gone(struct ctl_snap *snap)
{
	struct gone *v = NULL;
	size_t n = 0, cap = 0;

	pthread_mutex_lock(&nodes_lock);
	for (size_t i = 0; i < NODE_BUCKETS; i++)
		for (struct node *nd = ino_tab[i]; nd; nd = nd->by_ino) {
			int d;

			if (!nd->hashed || !nd->id.kind->catalog)
				continue;
			d = catalog_depth(&nd->id);
			if (d < 1 || d > 3)
				continue;
			if (n == cap) {
				struct gone *more;

				cap = cap ? cap * 2 : 256;
				more = realloc(v, cap * sizeof(*v));
				if (!more)
					goto collected;
				v = more;
			}
			v[n].parent = nd->parent;
			v[n].name = strdup(nd->name);
			v[n].sub = strdup(nd->id.sub);
			if (v[n].name && v[n].sub)
				n++;
			else {
				free(v[n].name);
				free(v[n].sub);
			}
		}
collected:
	pthread_mutex_unlock(&nodes_lock);
	for (size_t i = 0; i < n; i++) {
		struct store_node sn;

		if (!snap || store_snap_stat(ctl_snap_store(snap), v[i].sub, &sn) == -ENOENT)
			fuse_lowlevel_notify_inval_entry(watch.se, v[i].parent, v[i].name,
							 strlen(v[i].name));
		free(v[i].name);
		free(v[i].sub);
	}
	free(v);
}
/*
 * Looks at the store's HEAD when the kernel says the files it is read from
 * changed (an inotify watch, ctl_head_watch: an idle daemon makes no system
 * call for it), or once a second where that watch cannot be had (a store
 * on a network filesystem); on a change, drops what is gone.
 */
static void *watch_main(void *arg)
{
	char last[HP_OID_HEX_SIZE] = "", head[HP_OID_HEX_SIZE], ev[4096];
	int ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	bool armed = ino >= 0 && ctl_head_watch(hpfs.ctl, ino) == 0;

	(void)arg;
	ctl_head(hpfs.ctl, last);
	for (;;) {
		struct pollfd p[2] = { { watch.stop_fd, POLLIN, 0 }, { ino, POLLIN, 0 } };
		int n = poll(p, 2, armed ? -1 : 1000);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			sleep(1); /* no poll (ENOMEM): a look a second, as without the watch */
		} else if (p[0].revents) {
			break;
		} else if (p[1].revents) {
			/* an import comes as several events (lock file, rename): one look after them */
			while (read(ino, ev, sizeof(ev)) > 0)
				;
			armed = ctl_head_watch(hpfs.ctl, ino) == 0; /* a directory made anew */
		}
		if (ctl_head(hpfs.ctl, head) == 0 && strcmp(head, last)) {
			struct ctl_snap *snap = NULL;
			int r = head[0] ? ctl_snap_get(hpfs.ctl, true, &snap) : 0;

			if (r == 0)
				watch_drop_gone(snap);
			ctl_snap_unref(snap);
			if (r == 0)
				memcpy(last, head, sizeof(last));
		}
	}
	if (ino >= 0)
		close(ino);
	return NULL;
}

int hpfs_ll_watch_start(struct fuse_session *se)
{
	int r;

	watch.se = se;
	watch.stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (watch.stop_fd < 0)
		return -errno;
	r = -pthread_create(&watch.thread, NULL, watch_main, NULL);
	if (r == 0) {
		watch.started = true;
	} else {
		close(watch.stop_fd);
		watch.stop_fd = -1;
	}
	return r;
}

void hpfs_ll_watch_stop(void)
{
	uint64_t one = 1;

	if (!watch.started)
		return;
	if (write(watch.stop_fd, &one, sizeof(one)) < 0) {
		/* cannot fail: the counter is far from full */
	}
	pthread_join(watch.thread, NULL);
	close(watch.stop_fd);
	watch.stop_fd = -1;
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
	.mknod = ll_mknod,
	.rmdir = ll_rmdir,
	.symlink = ll_symlink,
	.link = ll_link,
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

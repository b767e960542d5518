/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The kinds of node of hotpatchfs and what each does. A node knows its kind
 * (and, for some kinds, a process or a path: struct hpfs_id), so a request
 * goes straight from the node to one table of operations (ll.c); there is
 * no path to parse. The root's fixed names are declared once (root_names),
 * the way sysfs declares attributes: a state file is a `show` that makes
 * its contents at open, a control file adds a `store` that runs a written
 * command. Every control handler has one shape: parse, check the caller,
 * act, return the byte count or -errno. Nothing here holds a lock while an
 * apply runs: a slow apply occupies one worker thread of the loop and
 * nothing else.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hpfs.h"

/* What an open file carries. */
struct hpfs_fh {
	const struct hpfs_kind *kind;
	struct hp_buf data;      /* contents made at open (show), or a catalog file's blob */
	struct ctl_snap *snap;   /* catalog: the snapshot it was opened in */
	char *sub;               /* catalog file */
	pthread_mutex_t lock;    /* result, wrote, imported, loaded */
	struct hp_buf result;    /* control files: the last write's outcome, read from offset 0 */
	struct hpfs_file *tmp;
	struct hpfs_file *in;
	/*
	 * incoming/: data went through this handle since it was opened, and
	 * whether a flush imported it already. Only the first flush after data
	 * imports: a shell's `> file` flushes (close of the fd it dup2'd) before
	 * any data comes, and a later flush with nothing new does nothing.
	 */
	bool wrote;
	bool imported;
	struct hpfs_caller writer; /* incoming/: who wrote (the import's failure is theirs) */
	bool loaded; /* catalog file: data holds the blob (read at the first read) */
	struct hpfs_fh *prev, *next; /* fh_open: every handle not released */
};

/*
 * Every handle not released yet. A close returns before the kernel's
 * RELEASE is answered, so at a stop (SIGTERM right after a `cat events`,
 * or a file still held open) the loop can end with handles whose RELEASE
 * never comes: they are let go at the unmount (hpfs_ops_destroy), not
 * left behind (the sanitizer build counts them as leaks and exits 1).
 */
static pthread_mutex_t fh_open_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hpfs_fh *fh_open;

/* Set at mount: may catalog files and directories keep their kernel caches? */
static bool catalog_keep_cache;

static const struct hpfs_kind k_catalog, k_apply, k_revert, k_auto, k_incoming, k_incoming_file,
	k_processes, k_proc_dir, k_proc_status, k_report, k_status, k_events, k_tmp, k_lasterr;

/* The root's names, in the order it lists them. */
static const struct {
	const char *name;
	const struct hpfs_kind *kind;
} root_names[] = {
	{ "catalog", &k_catalog }, { "apply", &k_apply },         { "revert", &k_revert },
	{ "auto", &k_auto },       { "incoming", &k_incoming },   { "processes", &k_processes },
	{ "report", &k_report },   { "status", &k_status },       { "events", &k_events },
	{ "last-error", &k_lasterr },
};
/*
 * Names that still open what they named before, though no longer listed:
 * `log` was the event log's name until it became `events` (`hp log` is the
 * store's history).
 */
static const struct {
	const char *name;
	const struct hpfs_kind *kind;
} root_aliases[] = {
	{ "log", &k_events },
};

static bool parse_pid(const char *s, pid_t *ret)
{
	size_t n = strlen(s);
	long v = 0;

	/* PID_MAX_LIMIT is 2^22 (4194304): seven digits at most. */
	if (n == 0 || n > 7 || s[0] == '0')
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*ret = (pid_t)v;
	return true;
}

static unsigned slashes(const char *s)
{
	unsigned n = 0;

	for (; *s; s++)
		n += *s == '/';
	return n;
}

static bool may_incoming(const struct hpfs_caller *c)
{
	return c->uid == 0 || (hpfs.incoming_gid_set && c->gid == hpfs.incoming_gid);
}

static bool proc_exists(pid_t pid, uid_t *ret_uid)
{
	char path[32];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	if (stat(path, &st) < 0)
		return false;
	if (ret_uid)
		*ret_uid = st.st_uid;
	return true;
}

static bool writing(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
}

/* ---- temporary files in the root and bundles in incoming/ (under hpfs.lock) --- */

static struct hpfs_file *file_find(struct hpfs_file *list, const char *name)
{
	for (struct hpfs_file *f = list; f; f = f->next)
		if (!strcmp(f->name, name))
			return f;
	return NULL;
}

/* Take f out of its list; free it now unless a handle still has it open. */
static void file_drop(struct hpfs_file **list, size_t *n, struct hpfs_file *f)
{
	for (struct hpfs_file **pp = list; *pp; pp = &(*pp)->next) {
		if (*pp == f) {
			*pp = f->next;
			(*n)--;
			break;
		}
	}
	f->unlinked = true;
	if (!f->open) {
		free(f->name);
		hp_buf_release(&f->data);
		free(f);
	}
}

static struct hpfs_file *tmp_find(const char *name)
{
	return file_find(hpfs.tmps, name);
}

static void tmp_drop(struct hpfs_file *t)
{
	file_drop(&hpfs.tmps, &hpfs.n_tmps, t);
}

static struct hpfs_file *in_find(const char *name)
{
	return file_find(hpfs.ins, name);
}

static void in_drop(struct hpfs_file *f)
{
	file_drop(&hpfs.ins, &hpfs.n_ins, f);
}

static int buf_write_at(struct hp_buf *b, off_t off, const char *data, size_t size, size_t max)
{
	size_t end;
	int r;

	if (off < 0 || (uint64_t)off > max || size > max - (size_t)off)
		return -EFBIG;
	end = (size_t)off + size;
	if (end > b->len) {
		r = hp_buf_grow(b, end - b->len);
		if (r < 0)
			return r;
		memset(b->data + b->len, 0, end - b->len);
		b->len = end;
		b->data[b->len] = '\0';
	}
	memcpy(b->data + off, data, size);
	return (int)size;
}

static int buf_truncate(struct hp_buf *b, off_t size, size_t max)
{
	if (size < 0 || (uint64_t)size > max)
		return -EFBIG;
	if ((size_t)size > b->len)
		return buf_write_at(b, size, "", 0, max) < 0 ? -ENOMEM : 0;
	b->len = (size_t)size;
	if (b->data)
		b->data[b->len] = '\0';
	return 0;
}

/*
 * Under hpfs.lock: room in LIST for one more file of UID? Root has ROOT_MAX
 * slots of its own; any other uid PER_USER, and all of them OTHERS together.
 */
static bool room_for(const struct hpfs_file *list, uid_t uid, size_t root_max, size_t per_user,
		     size_t others)
{
	size_t mine = 0, theirs = 0;

	for (const struct hpfs_file *f = list; f; f = f->next) {
		mine += f->uid == uid;
		theirs += f->uid != 0;
	}
	if (uid == 0)
		return mine < root_max;
	return mine < per_user && theirs < others;
}

/* ---- attributes ---------------------------------------------------------- */

static void fill_dir(struct stat *st, mode_t mode)
{
	st->st_mode = S_IFDIR | mode;
	st->st_nlink = 2;
	st->st_mtime = st->st_ctime = st->st_atime = hpfs.started;
}

static void fill_file(struct stat *st, mode_t mode, off_t size)
{
	st->st_mode = S_IFREG | mode;
	st->st_nlink = 1;
	st->st_size = size;
	st->st_mtime = st->st_ctime = st->st_atime = hpfs.started;
}

/* A number below 10^9 from a commit id (its first 7 hex digits). */
static long commit_nsec(const char *commit)
{
	long v = 0;

	for (int i = 0; i < 7 && commit[i]; i++)
		v = v * 16 + (commit[i] <= '9' ? commit[i] - '0' : (commit[i] | 0x20) - 'a' + 10);
	return v % 1000000000L;
}

static int catalog_stat(const char *sub, struct stat *st)
{
	struct ctl_snap *s = NULL;
	struct store_node node;
	long snap_nsec = 0;
	int r;

	/*
	 * The catalog root, baselines and months (and their BASELINE, latest)
	 * look at HEAD now: ll.c gives their directories no open, and the
	 * kernel keeps a directory's listing while its mtime, which names the
	 * snapshot, stays the same. A listing after an import shows the new set.
	 */
	for (int fresh = slashes(sub) < 2; fresh < 2; fresh++) {
		r = ctl_snap_get(hpfs.ctl, fresh, &s);
		if (r == -ENOENT && !*sub && fresh) {
			/* An empty store: an empty catalog. */
			fill_dir(st, 0555);
			return 0;
		}
		if (r < 0 && r != -ENOENT)
			return r;
		if (r >= 0) {
			r = store_snap_stat(ctl_snap_store(s), sub, &node);
			snap_nsec = commit_nsec(ctl_snap_commit(s));
			ctl_snap_unref(s);
			s = NULL;
		}
		/* A name the snapshot lacks may have just been imported: look at HEAD now. */
		if (r != -ENOENT)
			break;
	}
	if (r < 0)
		return r;
	switch (node.type) {
	case STORE_NODE_DIR:
		fill_dir(st, 0555);
		break;
	case STORE_NODE_FILE:
		fill_file(st, 0444, (off_t)node.size);
		break;
	case STORE_NODE_LINK:
		st->st_mode = S_IFLNK | 0777;
		st->st_nlink = 1;
		st->st_size = (off_t)node.size;
		break;
	}
	st->st_mtime = st->st_ctime = st->st_atime = node.mtime;
	/*
	 * The nanoseconds say which snapshot: the kernel drops cached pages of
	 * a file whose mtime changed, so catalog files may keep their page
	 * cache across opens (their contents never change within a snapshot).
	 */
	st->st_mtim.tv_nsec = st->st_ctim.tv_nsec = st->st_atim.tv_nsec = snap_nsec;
	return 0;
}

/* ---- the daemon's status, an import ---------------------------------------- */

static int status_text(struct hp_buf *out)
{
	char head[HP_OID_HEX_SIZE] = "", served[HP_OID_HEX_SIZE] = "-";
	struct ctl_snap *s = NULL;
	size_t all_done, all_total;

	ctl_all_counts(hpfs.ctl, &all_done, &all_total);
	ctl_head(hpfs.ctl, head);
	if (ctl_snap_get(hpfs.ctl, false, &s) == 0) {
		snprintf(served, sizeof(served), "%s", ctl_snap_commit(s));
		ctl_snap_unref(s);
	}
	pthread_mutex_lock(&hpfs.lock);
	hp_buf_addf(out,
		    "daemon: hotpatchfs %s pid %d\n"
		    "mount: %s\n"
		    "store: %s\n"
		    "head: %s\n"
		    "catalog: %s\n"
		    "uptime-s: %llu\n"
		    "auto: %d\n"
		    "applies: %lu ok, %lu failed\n"
		    "reverts: %lu ok, %lu failed\n"
		    "imports: %lu ok, %lu failed\n"
		    "auto-applies: %lu\n"
		    "running: %zu of %zu processes of \"all\" done\n",
		    HP_VERSION, (int)getpid(), hpfs.mountpoint, hpfs.store_path,
		    head[0] ? head : "-", served,
		    (unsigned long long)((hp_now_us() - hpfs.started_us) / 1000000),
		    __atomic_load_n(&hpfs.auto_on, __ATOMIC_RELAXED) ? 1 : 0, hpfs.n_apply_ok,
		    hpfs.n_apply_fail, hpfs.n_revert_ok, hpfs.n_revert_fail, hpfs.n_import_ok,
		    hpfs.n_import_fail, hpfs.n_auto, all_done, all_total);
	pthread_mutex_unlock(&hpfs.lock);
	/* The configuration in use (hp reads the exclusions back for its own "all"). */
	hp_buf_addf(out, "config: %s\n", hpfs.config_path);
	return ctl_policy_show(hpfs.ctl, out);
}

/* Import a bundle written into incoming/ (the first flush of a handle after its writes). */
static int import_incoming(struct hpfs_file *f)
{
	struct hp_buf copy = HP_BUF_INIT;
	char *set_id = NULL;
	char extra[NAME_MAX + 32];
	int r = 0;

	pthread_mutex_lock(&hpfs.lock);
	if (!f->unlinked) {
		r = hp_buf_add(&copy, f->data.data ? f->data.data : "", f->data.len);
		/* Consumed: the file leaves incoming/ whatever the outcome. */
		in_drop(f);
	} else {
		r = 1;
	}
	pthread_mutex_unlock(&hpfs.lock);
	if (r != 0)
		goto out;
	hp_err_clear();
	r = ctl_import_buf(hpfs.ctl, copy.data, copy.len, &set_id);
	/* 1: the same set was there already (no commit): a success that changed nothing. */
	snprintf(extra, sizeof(extra), "file=%s%s", f->name,
		 r == 0 ? " changed=1" : r == 1 ? " changed=0" : "");
	hpfs_log_event("import", f->uid, 0, set_id, r, hp_errmsg(r), false, 0, extra);
	pthread_mutex_lock(&hpfs.lock);
	if (r < 0)
		hpfs.n_import_fail++;
	else
		hpfs.n_import_ok++;
	pthread_mutex_unlock(&hpfs.lock);
	if (r < 0)
		hp_log(HP_LOG_WARN, "import %s: %s", f->name, hp_errmsg(r));
out:
	free(set_id);
	hp_buf_release(&copy);
	return r < 0 ? r : 0;
}

/* ---- open files ------------------------------------------------------------ */

static struct hpfs_fh *fh_new(const struct hpfs_kind *kind)
{
	struct hpfs_fh *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->kind = kind;
	pthread_mutex_init(&h->lock, NULL);
	pthread_mutex_lock(&fh_open_lock);
	HP_LIST_PREPEND(fh_open, h);
	pthread_mutex_unlock(&fh_open_lock);
	return h;
}

static void fh_free(struct hpfs_fh *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&fh_open_lock);
	HP_LIST_REMOVE(fh_open, h);
	pthread_mutex_unlock(&fh_open_lock);
	hp_buf_release(&h->data);
	hp_buf_release(&h->result);
	ctl_snap_unref(h->snap);
	free(h->sub);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

const struct hpfs_kind *hpfs_fh_kind(const struct hpfs_fh *h)
{
	return h->kind;
}

void hpfs_fh_release(struct hpfs_fh *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&hpfs.lock);
	if (h->tmp) {
		h->tmp->open--;
		if (h->tmp->unlinked && !h->tmp->open)
			tmp_drop(h->tmp);
	}
	if (h->in) {
		h->in->open--;
		if (!h->in->open)
			in_drop(h->in);
	}
	pthread_mutex_unlock(&hpfs.lock);
	fh_free(h);
}

static int read_buf(const struct hp_buf *b, char *buf, size_t size, off_t off)
{
	if (off < 0)
		return -EINVAL;
	if ((size_t)off >= b->len)
		return 0;
	if (size > b->len - (size_t)off)
		size = b->len - (size_t)off;
	memcpy(buf, b->data + off, size);
	return (int)size;
}

/* ---- the root ------------------------------------------------------------------- */

static int root_getattr(const struct hpfs_caller *c, const struct hpfs_id *id, struct hpfs_fh *fh,
			bool held, struct stat *st)
{
	fill_dir(st, 0755);
	return 0;
}

static int root_lookup(const struct hpfs_id *dir, const char *name, struct hpfs_id *ret)
{
	for (size_t i = 0; i < sizeof(root_names) / sizeof(root_names[0]); i++)
		if (!strcmp(root_names[i].name, name)) {
			ret->kind = root_names[i].kind;
			ret->sub = root_names[i].kind == &k_catalog ? strdup("") : NULL;
			return ret->kind == &k_catalog && !ret->sub ? -ENOMEM : 0;
		}
	for (size_t i = 0; i < sizeof(root_aliases) / sizeof(root_aliases[0]); i++)
		if (!strcmp(root_aliases[i].name, name)) {
			ret->kind = root_aliases[i].kind;
			return 0;
		}
	/* Any other name is a temporary file (there or not). */
	ret->kind = &k_tmp;
	ret->sub = strdup(name);
	return ret->sub ? 0 : -ENOMEM;
}

static int root_list(const struct hpfs_caller *c, const struct hpfs_id *id, struct hpfs_list *out,
		     struct fuse_file_info *fi)
{
	struct ctl_snap *snap = NULL;

	/* Listing the root looks at the store's HEAD now. */
	if (ctl_snap_get(hpfs.ctl, true, &snap) == 0)
		ctl_snap_unref(snap);
	for (size_t i = 0; i < sizeof(root_names) / sizeof(root_names[0]); i++)
		hpfs_list_add(out, root_names[i].name, root_names[i].kind->dir ? S_IFDIR : S_IFREG);
	pthread_mutex_lock(&hpfs.lock);
	for (struct hpfs_file *t = hpfs.tmps; t; t = t->next)
		hpfs_list_add(out, t->name, S_IFREG);
	pthread_mutex_unlock(&hpfs.lock);
	return 0;
}

static int tmp_create(const struct hpfs_caller *c, const struct hpfs_id *id, mode_t mode,
		      struct fuse_file_info *fi);

static int root_create(const struct hpfs_caller *c, const struct hpfs_id *child, mode_t mode,
		       struct fuse_file_info *fi)
{
	if (child->kind == &k_tmp)
		return tmp_create(c, child, mode, fi);
	if (child->kind->catalog)
		return -EROFS;
	/* Existing files: a shell's O_CREAT on a control file lands in their open. */
	return child->kind->open ? child->kind->open(c, child, fi) : -EISDIR;
}

const struct hpfs_kind hpfs_root_kind = {
	.name = "root",
	.dir = true,
	.deny = -EPERM,
	.getattr = root_getattr,
	.lookup = root_lookup,
	.list = root_list,
	.create = root_create,
};

/* ---- catalog/ -------------------------------------------------------------------- */

static int catalog_getattr(const struct hpfs_caller *c, const struct hpfs_id *id,
			   struct hpfs_fh *fh, bool held, struct stat *st)
{
	return catalog_stat(id->sub, st);
}

static int catalog_lookup(const struct hpfs_id *dir, const char *name, struct hpfs_id *ret)
{
	ret->kind = &k_catalog;
	if (!*dir->sub)
		ret->sub = strdup(name);
	else if (asprintf(&ret->sub, "%s/%s", dir->sub, name) < 0)
		ret->sub = NULL;
	return ret->sub ? 0 : -ENOMEM;
}

static int fill_catalog(void *ctx, const char *name, const struct store_node *node)
{
	return hpfs_list_add(ctx, name, node->type == STORE_NODE_DIR ? S_IFDIR
				       : node->type == STORE_NODE_LINK ? S_IFLNK
								      : S_IFREG);
}

static int catalog_list(const struct hpfs_caller *c, const struct hpfs_id *id,
			struct hpfs_list *out, struct fuse_file_info *fi)
{
	struct ctl_snap *snap = NULL;
	struct store_node node;
	int r;

	/* Listing the catalog root looks at the store's HEAD now. */
	r = ctl_snap_get(hpfs.ctl, !*id->sub, &snap);
	if (r == -ENOENT && !*id->sub)
		return 0; /* an empty store */
	if (r < 0)
		return r;
	if (*id->sub) {
		r = store_snap_stat(ctl_snap_store(snap), id->sub, &node);
		if (r >= 0 && node.type != STORE_NODE_DIR)
			r = -ENOTDIR;
		if (r < 0)
			goto out;
	}
	/*
	 * A catalog directory is immutable within a snapshot, and its mtime
	 * names the snapshot: the kernel may cache its entries (it drops them
	 * when the mtime changes). A set's directory (BASELINE/MONTH/SET)
	 * never changes: its entries are cached whatever the timeouts.
	 */
	if (fi && (catalog_keep_cache || slashes(id->sub) >= 2)) {
		fi->cache_readdir = 1;
		fi->keep_cache = 1;
	}
	r = store_snap_readdir(ctl_snap_store(snap), id->sub, fill_catalog, out);
	if (r > 0)
		r = 0; /* the listing is full */
out:
	ctl_snap_unref(snap);
	return r;
}

static int catalog_open(const struct hpfs_caller *c, const struct hpfs_id *id,
			struct fuse_file_info *fi)
{
	struct store_node node;
	struct hpfs_fh *h;
	int r;

	if (writing(fi->flags))
		return -EROFS;
	h = fh_new(&k_catalog);
	if (!h)
		return -ENOMEM;
	r = ctl_snap_get(hpfs.ctl, false, &h->snap);
	if (r >= 0)
		r = store_snap_stat(ctl_snap_store(h->snap), id->sub, &node);
	if (r >= 0 && node.type == STORE_NODE_DIR)
		r = -EISDIR;
	if (r >= 0 && !(h->sub = strdup(id->sub)))
		r = -ENOMEM;
	if (r < 0) {
		fh_free(h);
		return r;
	}
	/*
	 * Immutable within a snapshot, and the mtime names the snapshot. A
	 * set's files (BASELINE/MONTH/SET/FILE) never change at all: a set
	 * is never replaced (import refuses it, pull only fast-forwards).
	 * The blob is read at the first read(): with the page cache kept,
	 * an open of a file read before costs no git read, and no flush.
	 */
	fi->keep_cache = catalog_keep_cache || slashes(id->sub) >= 3;
	fi->noflush = 1;
	fi->fh = (uintptr_t)h;
	return 0;
}

static int catalog_read(struct hpfs_fh *h, char *buf, size_t size, off_t off)
{
	int r = 0;

	pthread_mutex_lock(&h->lock);
	if (!h->loaded) {
		void *data = NULL;
		size_t len = 0;

		r = store_snap_read(ctl_snap_store(h->snap), h->sub, &data, &len);
		if (r >= 0) {
			h->data.data = data;
			h->data.len = len;
			h->data.cap = len;
			h->loaded = true;
		}
	}
	if (r >= 0)
		r = read_buf(&h->data, buf, size, off);
	pthread_mutex_unlock(&h->lock);
	return r;
}

static int catalog_readlink(const struct hpfs_id *id, char *buf, size_t size)
{
	struct ctl_snap *s = NULL;
	int r;

	if (size == 0)
		return -EINVAL;
	r = ctl_snap_get(hpfs.ctl, false, &s);
	if (r < 0)
		return r;
	memset(buf, 0, size);
	r = store_snap_readlink(ctl_snap_store(s), id->sub, buf, size);
	ctl_snap_unref(s);
	if (r < 0)
		return r;
	buf[size - 1] = '\0';
	return 0;
}

/* Files, directories and links alike (the store says which): read-only. */
static const struct hpfs_kind k_catalog = {
	.name = "catalog",
	.catalog = true,
	.dir = true,
	.quick = true,
	.deny = -EROFS,
	.getattr = catalog_getattr,
	.lookup = catalog_lookup,
	.list = catalog_list,
	.open = catalog_open,
	.read = catalog_read,
	.readlink = catalog_readlink,
};

/* ---- state and control files ------------------------------------------------- */

static int attr_getattr(const struct hpfs_caller *c, const struct hpfs_id *id, struct hpfs_fh *fh,
			bool held, struct stat *st)
{
	/*
	 * A lookup asks whether the process is there; a node the kernel holds
	 * keeps its attributes: a status opened while its process lived
	 * answers fstat after the exit (the kernel sends that GETATTR without
	 * the handle).
	 */
	if (id->kind == &k_proc_status && !held && !proc_exists(id->pid, NULL))
		return -ENOENT;
	fill_file(st, id->kind->mode, 0);
	return 0;
}

static int attr_open(const struct hpfs_caller *c, const struct hpfs_id *id,
		     struct fuse_file_info *fi)
{
	const struct hpfs_kind *k = id->kind;
	struct hpfs_fh *h;
	int r = 0;

	if (writing(fi->flags) && (!k->store || (k == &k_auto && c->uid != 0)))
		return -EACCES;
	h = fh_new(k);
	if (!h)
		return -ENOMEM;
	if (k->show)
		r = k->show(c, id, &h->data);
	if (r < 0) {
		fh_free(h);
		return r;
	}
	fi->direct_io = 1;
	/* apply and revert: seekable, so a writer can read the outcome from 0. */
	fi->nonseekable = k->show != NULL;
	fi->noflush = 1;
	fi->fh = (uintptr_t)h;
	return 0;
}

static int attr_read(struct hpfs_fh *h, char *buf, size_t size, off_t off)
{
	int r;

	if (h->kind->show)
		return read_buf(&h->data, buf, size, off);
	/* What the last write on this handle did (hp seeks back to 0 and reads it). */
	pthread_mutex_lock(&h->lock);
	r = read_buf(&h->result, buf, size, off);
	pthread_mutex_unlock(&h->lock);
	return r;
}

static int attr_write(const struct hpfs_caller *c, struct hpfs_fh *h, const char *buf, size_t size,
		      off_t off)
{
	struct hp_buf result = HP_BUF_INIT;
	int r;

	if (!h->kind->store)
		return -EACCES;
	r = h->kind->store(c, buf, size, &result);
	if (r < 0)
		hpfs_lasterr_set(c, h->kind->name, r, hp_errmsg(r));
	pthread_mutex_lock(&h->lock);
	hp_buf_release(&h->result);
	h->result = result;
	pthread_mutex_unlock(&h->lock);
	return r < 0 ? r : (int)size;
}

static int attr_truncate(const struct hpfs_caller *c, const struct hpfs_id *id, off_t size)
{
	/* O_TRUNC of `echo PID > apply`: nothing to cut, the write does the work. */
	if (!id->kind->store)
		return -EACCES;
	return id->kind == &k_auto && c->uid != 0 ? -EACCES : 0;
}

/* chmod, chown, utimens: accepted (and ignored) where a writer may write, for cp -p and Ansible. */
static int attr_meta(const struct hpfs_caller *c, const struct hpfs_id *id, const mode_t *mode)
{
	if (!id->kind->store)
		return -EPERM;
	return id->kind == &k_auto && c->uid != 0 ? -EPERM : 0;
}

/*
 * The configuration's retry budget (`retries`): an apply that failed with
 * EBUSY (a replaced function stayed active past the safety budget) is tried
 * again, up to that many more times, HPFS_RETRY_PAUSE_MS apart; each failed
 * try is an event of its own. Returns the command's errno anew: 0 when
 * every process succeeded, else the first failure's.
 */
#define HPFS_RETRY_PAUSE_MS 100

static int retry_busy(const struct hpfs_caller *c, const struct ctl_caller *who,
		      const struct ctl_cmd *cmd, struct ctl_results *res)
{
	unsigned retries = hpfs_config_retries();
	int r = 0;

	for (size_t i = 0; i < res->n; i++) {
		struct ctl_result *x = &res->v[i];

		for (unsigned t = 0; t < retries && x->err == -EBUSY; t++) {
			char extra[32];

			snprintf(extra, sizeof(extra), "try=%u", t + 1);
			hpfs_log_event("apply", c->uid, x->pid, x->set_id, x->err, x->msg, false, 0,
				       extra);
			usleep(HPFS_RETRY_PAUSE_MS * 1000);
			ctl_apply(hpfs.ctl, who, x->pid, cmd->month, x);
		}
		if (x->err < 0 && r == 0)
			r = x->err;
	}
	return r;
}

static void count_result(const struct ctl_result *x, bool revert)
{
	if (x->excluded[0])
		return; /* left alone: neither an apply nor a revert */
	pthread_mutex_lock(&hpfs.lock);
	if (!revert && x->err < 0)
		hpfs.n_apply_fail++;
	else if (!revert)
		hpfs.n_apply_ok++;
	else if (x->err < 0)
		hpfs.n_revert_fail++;
	else
		hpfs.n_revert_ok++;
	pthread_mutex_unlock(&hpfs.lock);
}

/* x NULL: a process "all" looked at and left alone. */
static void count_apply(void *ctx, const struct ctl_result *x, size_t done, size_t total)
{
	if (x)
		count_result(x, false);
}

static void count_revert(void *ctx, const struct ctl_result *x, size_t done, size_t total)
{
	if (x)
		count_result(x, true);
}

/* Run one control command: what a write to apply or revert (or a rename over them) does. */
static int control(const struct hpfs_caller *c, bool revert, const char *text, size_t len,
		   struct hp_buf *result)
{
	const char *op = revert ? "revert" : "apply";
	struct ctl_caller who = { c->uid, c->gid, c->pid };
	struct ctl_results res = { NULL, 0 };
	struct ctl_cmd cmd;
	int r;

	hp_err_clear();
	r = revert ? ctl_parse_revert(text, len, &cmd) : ctl_parse_apply(text, len, &cmd);
	if (r < 0) {
		hpfs_log_event(op, c->uid, 0, NULL, r, hp_errmsg(r), false, 0, NULL);
		return r;
	}
	/* The counters of status move as each process finishes ("all" takes a while). */
	r = ctl_run_progress(hpfs.ctl, &who, revert, &cmd, revert ? count_revert : count_apply, NULL,
			     &res);
	if (!revert && res.n > 0) {
		size_t busy = 0, busy_after = 0;

		for (size_t i = 0; i < res.n; i++)
			busy += res.v[i].err == -EBUSY;
		r = retry_busy(c, &who, &cmd, &res);
		for (size_t i = 0; i < res.n; i++)
			busy_after += res.v[i].err == -EBUSY;
		/* A retry that went through: counted as a failure above, an ok now. */
		pthread_mutex_lock(&hpfs.lock);
		hpfs.n_apply_fail -= busy - busy_after;
		hpfs.n_apply_ok += busy - busy_after;
		pthread_mutex_unlock(&hpfs.lock);
	}
	if (res.n == 0 && r < 0)
		hpfs_log_event(op, c->uid, cmd.pid, NULL, r, hp_errmsg(r), false, 0, NULL);
	hpfs_log_results(op, c->uid, &res);
	if (result) {
		hp_buf_reset(result);
		if (res.n == 0 && r < 0)
			hp_buf_addf(result, "%s %s\n", ctl_errno_name(r), hp_errmsg(r));
		else
			ctl_results_format(&res, false, result);
	}
	ctl_results_release(&res);
	return r;
}

static int apply_store(const struct hpfs_caller *c, const char *text, size_t len,
		       struct hp_buf *result)
{
	return control(c, false, text, len, result);
}

static int revert_store(const struct hpfs_caller *c, const char *text, size_t len,
			struct hp_buf *result)
{
	return control(c, true, text, len, result);
}

static int auto_show(const struct hpfs_caller *c, const struct hpfs_id *id, struct hp_buf *out)
{
	return hp_buf_adds(out, __atomic_load_n(&hpfs.auto_on, __ATOMIC_RELAXED) ? "1\n" : "0\n");
}

static int auto_store(const struct hpfs_caller *c, const char *text, size_t len,
		      struct hp_buf *result)
{
	bool on, was;
	int r;

	hp_err_clear();
	if (c->uid != 0)
		return -EACCES;
	r = ctl_parse_bool(text, len, &on);
	if (r < 0)
		return r;
	/* Kept in the state directory first: a value that would not last is refused. */
	was = __atomic_load_n(&hpfs.auto_on, __ATOMIC_RELAXED);
	r = hpfs_state_auto_save(on);
	if (r >= 0) {
		r = hpfs_auto_set(on);
		if (r < 0)
			hpfs_state_auto_save(was);
	}
	hpfs_log_event(on ? "auto-on" : "auto-off", c->uid, 0, NULL, r, hp_errmsg(r), false, 0, NULL);
	return r;
}

static int status_show(const struct hpfs_caller *c, const struct hpfs_id *id, struct hp_buf *out)
{
	return status_text(out);
}

static int log_show(const struct hpfs_caller *c, const struct hpfs_id *id, struct hp_buf *out)
{
	return hpfs_log_text(out);
}

static int report_show(const struct hpfs_caller *c, const struct hpfs_id *id, struct hp_buf *out)
{
	/* Other users: their own processes, and the summary counts only those. */
	struct ctl_report_filter f = { .by_uid = c->uid != 0, .uid = c->uid };

	return ctl_report_filtered(hpfs.ctl, false, &f, out, NULL);
}

static int lasterr_show(const struct hpfs_caller *c, const struct hpfs_id *id, struct hp_buf *out)
{
	return hpfs_lasterr_text(c, out);
}

static int proc_status_show(const struct hpfs_caller *c, const struct hpfs_id *id,
			    struct hp_buf *out)
{
	struct ctl_status *st = NULL;
	int r;

	if (c->uid != 0) {
		struct ctl_caller who = { c->uid, c->gid, c->pid };

		r = ctl_may_patch(&who, id->pid);
		if (r < 0)
			return r;
	}
	r = ctl_status(hpfs.ctl, id->pid, &st);
	if (r == -ESRCH)
		r = -ENOENT;
	if (r < 0)
		return r;
	r = ctl_status_format(st, false, out);
	ctl_status_free(st);
	return r;
}

/* An attribute file: SHOW made at open, STORE run by a write (either may be NULL). */
#define HPFS_ATTR(nm, md, sh, st)                                                     \
	{                                                                              \
		.name = nm, .deny = -EPERM, .mode = md, .show = sh, .store = st,       \
		.getattr = attr_getattr, .open = attr_open, .read = attr_read,         \
		.write = attr_write, .truncate = attr_truncate, .meta = attr_meta,     \
	}

/* Anyone may write apply and revert; whether they may patch a process is decided per process. */
static const struct hpfs_kind k_apply = HPFS_ATTR("apply", 0666, NULL, apply_store);
static const struct hpfs_kind k_revert = HPFS_ATTR("revert", 0666, NULL, revert_store);
static const struct hpfs_kind k_auto = HPFS_ATTR("auto", 0644, auto_show, auto_store);
static const struct hpfs_kind k_report = HPFS_ATTR("report", 0444, report_show, NULL);
static const struct hpfs_kind k_status = HPFS_ATTR("status", 0444, status_show, NULL);
static const struct hpfs_kind k_lasterr = HPFS_ATTR("last-error", 0444, lasterr_show, NULL);
static const struct hpfs_kind k_events = HPFS_ATTR("events", 0444, log_show, NULL);
static const struct hpfs_kind k_proc_status = HPFS_ATTR("processes/PID/status", 0444,
							 proc_status_show, NULL);

/* ---- processes/ ------------------------------------------------------------------- */

static int processes_getattr(const struct hpfs_caller *c, const struct hpfs_id *id,
			     struct hpfs_fh *fh, bool held, struct stat *st)
{
	fill_dir(st, 0555);
	return 0;
}

static int processes_lookup(const struct hpfs_id *dir, const char *name, struct hpfs_id *ret)
{
	if (!parse_pid(name, &ret->pid))
		return -ENOENT;
	ret->kind = &k_proc_dir;
	return 0;
}

static int processes_list(const struct hpfs_caller *c, const struct hpfs_id *id,
			  struct hpfs_list *out, struct fuse_file_info *fi)
{
	pid_t *pids = NULL;
	size_t n = 0;
	int r;

	r = ctl_list(hpfs.ctl, &pids, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		char name[16];
		uid_t uid;

		/* Other users see their own processes only, as they would patch them. */
		if (c->uid != 0 && (!proc_exists(pids[i], &uid) || uid != c->uid))
			continue;
		snprintf(name, sizeof(name), "%d", (int)pids[i]);
		if (hpfs_list_add(out, name, S_IFDIR))
			break;
	}
	free(pids);
	return 0;
}

static const struct hpfs_kind k_processes = {
	.name = "processes",
	.dir = true,
	.deny = -EPERM,
	.getattr = processes_getattr,
	.lookup = processes_lookup,
	.list = processes_list,
};

static int proc_dir_getattr(const struct hpfs_caller *c, const struct hpfs_id *id,
			    struct hpfs_fh *fh, bool held, struct stat *st)
{
	if (!proc_exists(id->pid, &st->st_uid))
		return -ENOENT;
	fill_dir(st, 0555);
	return 0;
}

static int proc_dir_lookup(const struct hpfs_id *dir, const char *name, struct hpfs_id *ret)
{
	if (strcmp(name, "status"))
		return -ENOENT;
	ret->kind = &k_proc_status;
	ret->pid = dir->pid;
	return 0;
}

static int proc_dir_list(const struct hpfs_caller *c, const struct hpfs_id *id,
			 struct hpfs_list *out, struct fuse_file_info *fi)
{
	if (!proc_exists(id->pid, NULL))
		return -ENOENT;
	hpfs_list_add(out, "status", S_IFREG);
	return 0;
}

static const struct hpfs_kind k_proc_dir = {
	.name = "processes/PID",
	.dir = true,
	.deny = -EPERM,
	.getattr = proc_dir_getattr,
	.lookup = proc_dir_lookup,
	.list = proc_dir_list,
};

/* ---- temporary files in the root (Ansible's copy: write, then rename over) ------- */

static int tmp_getattr(const struct hpfs_caller *c, const struct hpfs_id *id, struct hpfs_fh *fh,
		       bool held, struct stat *st)
{
	struct hpfs_file *t;
	int r;

	pthread_mutex_lock(&hpfs.lock);
	t = fh ? fh->tmp : tmp_find(id->sub);
	if (t) {
		fill_file(st, t->mode & 07777, (off_t)t->data.len);
		st->st_uid = t->uid;
		st->st_gid = t->gid;
		st->st_mtime = t->mtime;
	}
	r = t ? 0 : -ENOENT;
	pthread_mutex_unlock(&hpfs.lock);
	return r;
}

/* Under hpfs.lock: the temporary file NAME that the caller may use, or an errno. */
static int tmp_mine(const struct hpfs_caller *c, const char *name, int deny,
		    struct hpfs_file **ret)
{
	struct hpfs_file *t = tmp_find(name);

	if (!t)
		return -ENOENT;
	if (c->uid != 0 && c->uid != t->uid)
		return deny;
	*ret = t;
	return 0;
}

static int tmp_open(const struct hpfs_caller *c, const struct hpfs_id *id,
		    struct fuse_file_info *fi)
{
	struct hpfs_file *t = NULL;
	struct hpfs_fh *h;
	int r;

	h = fh_new(&k_tmp);
	if (!h)
		return -ENOMEM;
	pthread_mutex_lock(&hpfs.lock);
	r = tmp_mine(c, id->sub, -EACCES, &t);
	if (r == 0) {
		t->open++;
		if (fi->flags & O_TRUNC)
			buf_truncate(&t->data, 0, HPFS_TMP_MAX_BYTES);
	}
	pthread_mutex_unlock(&hpfs.lock);
	if (r < 0) {
		fh_free(h);
		return r;
	}
	h->tmp = t;
	fi->direct_io = 1;
	fi->noflush = 1;
	fi->fh = (uintptr_t)h;
	return 0;
}

static int tmp_create(const struct hpfs_caller *c, const struct hpfs_id *id, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct hpfs_file *t;
	struct hpfs_fh *h;
	int r = 0;

	h = fh_new(&k_tmp);
	if (!h)
		return -ENOMEM;
	pthread_mutex_lock(&hpfs.lock);
	t = tmp_find(id->sub);
	if (t && (fi->flags & O_EXCL)) {
		r = -EEXIST;
	} else if (t && c->uid != 0 && c->uid != t->uid) {
		r = -EACCES;
	} else if (!t && !room_for(hpfs.tmps, c->uid, HPFS_TMP_MAX, HPFS_TMP_USER_MAX,
				   HPFS_TMP_OTHERS_MAX)) {
		r = -ENOSPC;
	} else if (!t) {
		t = calloc(1, sizeof(*t));
		if (t && !(t->name = strdup(id->sub))) {
			free(t);
			t = NULL;
		}
		if (t) {
			t->uid = c->uid;
			t->gid = c->gid;
			t->mode = mode & 07777;
			t->next = hpfs.tmps;
			hpfs.tmps = t;
			hpfs.n_tmps++;
		}
		r = t ? 0 : -ENOMEM;
	} else {
		buf_truncate(&t->data, 0, HPFS_TMP_MAX_BYTES);
	}
	if (r == 0) {
		t->mtime = time(NULL);
		t->open++;
		h->tmp = t;
	}
	pthread_mutex_unlock(&hpfs.lock);
	if (r < 0) {
		fh_free(h);
		return r;
	}
	fi->direct_io = 1;
	fi->noflush = 1;
	fi->fh = (uintptr_t)h;
	return 0;
}

static int tmp_read(struct hpfs_fh *h, char *buf, size_t size, off_t off)
{
	int r;

	pthread_mutex_lock(&hpfs.lock);
	r = read_buf(&h->tmp->data, buf, size, off);
	pthread_mutex_unlock(&hpfs.lock);
	return r;
}

static int tmp_write(const struct hpfs_caller *c, struct hpfs_fh *h, const char *buf, size_t size,
		     off_t off)
{
	int r;

	pthread_mutex_lock(&hpfs.lock);
	r = buf_write_at(&h->tmp->data, off, buf, size, HPFS_TMP_MAX_BYTES);
	h->tmp->mtime = time(NULL);
	pthread_mutex_unlock(&hpfs.lock);
	return r;
}

static int tmp_truncate(const struct hpfs_caller *c, const struct hpfs_id *id, off_t size)
{
	struct hpfs_file *t = NULL;
	int r;

	pthread_mutex_lock(&hpfs.lock);
	r = tmp_mine(c, id->sub, -EACCES, &t);
	if (r == 0)
		r = buf_truncate(&t->data, size, HPFS_TMP_MAX_BYTES);
	pthread_mutex_unlock(&hpfs.lock);
	return r;
}

static int tmp_meta(const struct hpfs_caller *c, const struct hpfs_id *id, const mode_t *mode)
{
	struct hpfs_file *t = NULL;
	int r;

	pthread_mutex_lock(&hpfs.lock);
	r = tmp_mine(c, id->sub, -EPERM, &t);
	if (r == 0 && mode)
		t->mode = *mode & 07777;
	pthread_mutex_unlock(&hpfs.lock);
	return r;
}

static int tmp_unlink(const struct hpfs_caller *c, const struct hpfs_id *id)
{
	struct hpfs_file *t = NULL;
	int r;

	pthread_mutex_lock(&hpfs.lock);
	r = tmp_mine(c, id->sub, -EACCES, &t);
	if (r == 0)
		tmp_drop(t);
	pthread_mutex_unlock(&hpfs.lock);
	return r;
}

/*
 * Ansible's copy module writes a temp file next to the destination and
 * renames it over it: renaming a temp file over apply, revert or auto runs
 * its contents as the command, and the rename carries the command's errno
 * (the temp file stays then).
 */
static int tmp_rename(const struct hpfs_caller *c, const struct hpfs_id *id, const struct hpfs_id *to)
{
	struct hp_buf text = HP_BUF_INIT;
	struct hpfs_file *t = NULL, *old;
	char *name;
	int r;

	if (to->kind->store) {
		pthread_mutex_lock(&hpfs.lock);
		r = tmp_mine(c, id->sub, -EACCES, &t);
		if (r == 0)
			r = hp_buf_add(&text, t->data.data ? t->data.data : "", t->data.len);
		pthread_mutex_unlock(&hpfs.lock);
		if (r == 0) {
			r = to->kind->store(c, text.data, text.len, NULL);
			if (r < 0)
				hpfs_lasterr_set(c, to->kind->name, r, hp_errmsg(r));
		}
		if (r >= 0) {
			/* Done: the temp file is gone, as if it had replaced the control file. */
			pthread_mutex_lock(&hpfs.lock);
			t = tmp_find(id->sub);
			if (t)
				tmp_drop(t);
			pthread_mutex_unlock(&hpfs.lock);
			r = 0;
		}
		hp_buf_release(&text);
		return r;
	}
	if (to->kind != &k_tmp)
		return -EPERM;
	name = strdup(to->sub);
	if (!name)
		return -ENOMEM;
	pthread_mutex_lock(&hpfs.lock);
	t = tmp_find(id->sub);
	old = tmp_find(to->sub);
	if (!t) {
		r = -ENOENT;
	} else if (c->uid != 0 && (c->uid != t->uid || (old && c->uid != old->uid))) {
		r = -EACCES;
	} else {
		if (old && old != t)
			tmp_drop(old);
		free(t->name);
		t->name = name;
		name = NULL;
		r = 0;
	}
	pthread_mutex_unlock(&hpfs.lock);
	free(name);
	return r;
}

static const struct hpfs_kind k_tmp = {
	.name = "temporary file",
	.deny = -EPERM,
	.getattr = tmp_getattr,
	.open = tmp_open,
	.read = tmp_read,
	.write = tmp_write,
	.truncate = tmp_truncate,
	.meta = tmp_meta,
	.unlink = tmp_unlink,
	.rename = tmp_rename,
};

/* ---- incoming/ ------------------------------------------------------------------------ */

static int incoming_getattr(const struct hpfs_caller *c, const struct hpfs_id *id,
			    struct hpfs_fh *fh, bool held, struct stat *st)
{
	fill_dir(st, hpfs.incoming_gid_set ? 0770 : 0700);
	if (hpfs.incoming_gid_set)
		st->st_gid = hpfs.incoming_gid;
	return 0;
}

static int incoming_lookup(const struct hpfs_id *dir, const char *name, struct hpfs_id *ret)
{
	ret->kind = &k_incoming_file;
	ret->sub = strdup(name);
	return ret->sub ? 0 : -ENOMEM;
}

static int incoming_list(const struct hpfs_caller *c, const struct hpfs_id *id,
			 struct hpfs_list *out, struct fuse_file_info *fi)
{
	if (!may_incoming(c))
		return -EACCES;
	pthread_mutex_lock(&hpfs.lock);
	for (struct hpfs_file *f = hpfs.ins; f; f = f->next)
		hpfs_list_add(out, f->name, S_IFREG);
	pthread_mutex_unlock(&hpfs.lock);
	return 0;
}

static int incoming_create(const struct hpfs_caller *c, const struct hpfs_id *id, mode_t mode,
			   struct fuse_file_info *fi)
{
	struct hpfs_file *f;
	struct hpfs_fh *h;
	int r = 0;

	if (!may_incoming(c))
		return -EACCES;
	h = fh_new(&k_incoming_file);
	if (!h)
		return -ENOMEM;
	pthread_mutex_lock(&hpfs.lock);
	f = in_find(id->sub);
	if (f && (fi->flags & O_EXCL)) {
		r = -EEXIST;
	} else if (!f && !room_for(hpfs.ins, c->uid, HPFS_INCOMING_MAX, HPFS_INCOMING_USER_MAX,
				   HPFS_INCOMING_OTHERS_MAX)) {
		r = -ENOSPC;
	} else if (!f) {
		f = calloc(1, sizeof(*f));
		if (f && !(f->name = strdup(id->sub))) {
			free(f);
			f = NULL;
		}
		if (f) {
			f->uid = c->uid;
			f->next = hpfs.ins;
			hpfs.ins = f;
			hpfs.n_ins++;
		}
		r = f ? 0 : -ENOMEM;
	} else {
		buf_truncate(&f->data, 0, STORE_BUNDLE_MAX_BYTES);
	}
	if (r == 0) {
		f->mtime = time(NULL);
		f->open++;
		h->in = f;
	}
	pthread_mutex_unlock(&hpfs.lock);
	if (r < 0) {
		fh_free(h);
		return r;
	}
	fi->direct_io = 1;
	fi->fh = (uintptr_t)h;
	return 0;
}

static const struct hpfs_kind k_incoming = {
	.name = "incoming",
	.dir = true,
	.deny = -EPERM,
	.getattr = incoming_getattr,
	.lookup = incoming_lookup,
	.list = incoming_list,
	.create = incoming_create,
};

static int in_getattr(const struct hpfs_caller *c, const struct hpfs_id *id, struct hpfs_fh *fh,
		      bool held, struct stat *st)
{
	struct hpfs_file *f;

	if (!may_incoming(c))
		return -EACCES;
	pthread_mutex_lock(&hpfs.lock);
	f = in_find(id->sub);
	if (f) {
		fill_file(st, 0600, (off_t)f->data.len);
		st->st_uid = f->uid;
		st->st_mtime = f->mtime;
	}
	pthread_mutex_unlock(&hpfs.lock);
	return f ? 0 : -ENOENT;
}

static int in_open(const struct hpfs_caller *c, const struct hpfs_id *id, struct fuse_file_info *fi)
{
	struct hpfs_file *f;
	struct hpfs_fh *h;

	if (!may_incoming(c))
		return -EACCES;
	h = fh_new(&k_incoming_file);
	if (!h)
		return -ENOMEM;
	pthread_mutex_lock(&hpfs.lock);
	f = in_find(id->sub);
	if (f) {
		f->open++;
		if (fi->flags & O_TRUNC)
			buf_truncate(&f->data, 0, STORE_BUNDLE_MAX_BYTES);
	}
	pthread_mutex_unlock(&hpfs.lock);
	if (!f) {
		fh_free(h);
		return -ENOENT;
	}
	h->in = f;
	fi->direct_io = 1;
	fi->fh = (uintptr_t)h;
	return 0;
}

static int in_read(struct hpfs_fh *h, char *buf, size_t size, off_t off)
{
	int r;

	pthread_mutex_lock(&hpfs.lock);
	r = read_buf(&h->in->data, buf, size, off);
	pthread_mutex_unlock(&hpfs.lock);
	return r;
}

static int in_write(const struct hpfs_caller *c, struct hpfs_fh *h, const char *buf, size_t size,
		    off_t off)
{
	int r;

	pthread_mutex_lock(&hpfs.lock);
	r = buf_write_at(&h->in->data, off, buf, size, STORE_BUNDLE_MAX_BYTES);
	h->in->mtime = time(NULL);
	pthread_mutex_unlock(&hpfs.lock);
	if (r > 0) {
		pthread_mutex_lock(&h->lock);
		h->wrote = true;
		h->writer = *c;
		pthread_mutex_unlock(&h->lock);
	}
	return r;
}

static int in_flush(struct hpfs_fh *h)
{
	struct hpfs_caller who;
	bool now = false;
	int r;

	pthread_mutex_lock(&h->lock);
	if (h->wrote && !h->imported) {
		h->imported = true;
		now = true;
	}
	who = h->writer;
	pthread_mutex_unlock(&h->lock);
	if (!now)
		return 0;
	r = import_incoming(h->in);
	if (r < 0)
		hpfs_lasterr_set(&who, "incoming", r, hp_errmsg(r));
	return r;
}

static int in_truncate(const struct hpfs_caller *c, const struct hpfs_id *id, off_t size)
{
	struct hpfs_file *f;
	int r;

	if (!may_incoming(c))
		return -EACCES;
	pthread_mutex_lock(&hpfs.lock);
	f = in_find(id->sub);
	r = f ? buf_truncate(&f->data, size, STORE_BUNDLE_MAX_BYTES) : -ENOENT;
	pthread_mutex_unlock(&hpfs.lock);
	return r;
}

static int in_meta(const struct hpfs_caller *c, const struct hpfs_id *id, const mode_t *mode)
{
	return may_incoming(c) ? 0 : -EACCES;
}

static int in_unlink(const struct hpfs_caller *c, const struct hpfs_id *id)
{
	struct hpfs_file *f;

	if (!may_incoming(c))
		return -EACCES;
	pthread_mutex_lock(&hpfs.lock);
	f = in_find(id->sub);
	if (f)
		in_drop(f);
	pthread_mutex_unlock(&hpfs.lock);
	return f ? 0 : -ENOENT;
}

static int in_rename(const struct hpfs_caller *c, const struct hpfs_id *id, const struct hpfs_id *to)
{
	struct hpfs_file *f, *old;
	char *name;
	int r;

	if (to->kind != &k_incoming_file)
		return -EPERM;
	if (!may_incoming(c))
		return -EACCES;
	name = strdup(to->sub);
	if (!name)
		return -ENOMEM;
	pthread_mutex_lock(&hpfs.lock);
	f = in_find(id->sub);
	old = in_find(to->sub);
	r = f ? 0 : -ENOENT;
	if (f) {
		if (old && old != f)
			in_drop(old);
		free(f->name);
		f->name = name;
		name = NULL;
	}
	pthread_mutex_unlock(&hpfs.lock);
	free(name);
	return r;
}

/* A bundle being written: imported by the first flush of a handle after data. */
static const struct hpfs_kind k_incoming_file = {
	.name = "incoming file",
	.deny = -EPERM,
	.getattr = in_getattr,
	.open = in_open,
	.read = in_read,
	.write = in_write,
	.flush = in_flush,
	.truncate = in_truncate,
	.meta = in_meta,
	.unlink = in_unlink,
	.rename = in_rename,
};

/* ---- mount and unmount ------------------------------------------------------------ */

void hpfs_ops_init(struct fuse_conn_info *conn, double attr_timeout)
{
	/*
	 * No READDIRPLUS: after a first walk the catalog's names and
	 * attributes are cached (per-entry timeouts), and state files'
	 * attributes would be stale at once. The first walk pays a LOOKUP per
	 * name that readdirplus would spare.
	 */
	conn->want &= ~(unsigned)(FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO);
	/*
	 * Catalog caches follow the snapshot through the mtime, which the kernel
	 * sees only when it asks for attributes again: with attribute caching
	 * (-o attr_timeout > 0) the page and readdir caches are not kept. (When
	 * the kernel opens directories itself, ll.c, it keeps every listing, and
	 * ll.c asks it to fetch a directory's attributes at each listing.)
	 */
	catalog_keep_cache = attr_timeout == 0;
}

void hpfs_ops_destroy(void)
{
	hpfs_auto_stop();
	/* the request loop has ended: no RELEASE comes for these any more */
	for (;;) {
		struct hpfs_fh *h;

		pthread_mutex_lock(&fh_open_lock);
		h = fh_open;
		pthread_mutex_unlock(&fh_open_lock);
		if (!h)
			break;
		hpfs_fh_release(h);
	}
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The FUSE operations of hotpatchfs, by path (the high-level API's shape;
 * ll.c serves them through the low-level API with per-entry timeouts). Every control
 * handler has one shape: parse, check the caller, act, return the byte count
 * or -errno. Nothing here holds a lock while an apply runs: a slow apply
 * occupies one worker thread of the multi-threaded loop and nothing else.
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

enum hpfs_kind {
	K_NONE,
	K_ROOT,
	K_CATALOG,
	K_APPLY,
	K_REVERT,
	K_AUTO,
	K_INCOMING,
	K_INCOMING_FILE,
	K_PROCESSES,
	K_PROC_DIR,
	K_PROC_STATUS,
	K_REPORT,
	K_STATUS,
	K_LOG,
	K_TMP,
};

struct hpfs_path {
	enum hpfs_kind kind;
	const char *sub; /* catalog path ("" its root), or a file name */
	pid_t pid;
};

/* What an open file or directory carries. */
struct hpfs_fh {
	enum hpfs_kind kind;
	struct hp_buf data;      /* contents computed at open */
	struct ctl_snap *snap;   /* catalog: the snapshot it was opened in */
	char *sub;               /* catalog directory */
	pthread_mutex_t lock;    /* result */
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
	bool loaded; /* catalog file: data holds the blob (read at the first read) */
};

/* Set in init: may catalog files and directories keep their kernel caches? */
static bool catalog_keep_cache;

static const struct {
	const char *name;
	enum hpfs_kind kind;
} root_names[] = {
	{ "catalog", K_CATALOG }, { "apply", K_APPLY },         { "revert", K_REVERT },
	{ "auto", K_AUTO },       { "incoming", K_INCOMING },   { "processes", K_PROCESSES },
	{ "report", K_REPORT },   { "status", K_STATUS },       { "log", K_LOG },
};

static bool parse_pid(const char *s, size_t n, pid_t *ret)
{
	long v = 0;

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

static int resolve(const char *path, struct hpfs_path *ret)
{
	const char *p = path + 1, *slash;
	size_t n;

	memset(ret, 0, sizeof(*ret));
	if (!strcmp(path, "/")) {
		ret->kind = K_ROOT;
		return 0;
	}
	slash = strchr(p, '/');
	n = slash ? (size_t)(slash - p) : strlen(p);
	for (size_t i = 0; i < sizeof(root_names) / sizeof(root_names[0]); i++) {
		if (strlen(root_names[i].name) != n || strncmp(root_names[i].name, p, n))
			continue;
		ret->kind = root_names[i].kind;
		if (!slash) {
			ret->sub = "";
			return 0;
		}
		p = slash + 1;
		switch (ret->kind) {
		case K_CATALOG:
			ret->sub = p;
			return 0;
		case K_INCOMING:
			if (!*p || strchr(p, '/'))
				return -ENOENT;
			ret->kind = K_INCOMING_FILE;
			ret->sub = p;
			return 0;
		case K_PROCESSES:
			slash = strchr(p, '/');
			if (!parse_pid(p, slash ? (size_t)(slash - p) : strlen(p), &ret->pid))
				return -ENOENT;
			if (!slash) {
				ret->kind = K_PROC_DIR;
				return 0;
			}
			if (strcmp(slash, "/status"))
				return -ENOENT;
			ret->kind = K_PROC_STATUS;
			return 0;
		default:
			return -ENOTDIR;
		}
	}
	if (slash)
		return -ENOENT;
	ret->kind = K_TMP;
	ret->sub = p;
	return 0;
}

static unsigned slashes(const char *s)
{
	unsigned n = 0;

	for (; *s; s++)
		n += *s == '/';
	return n;
}

static struct ctl_caller caller(void)
{
	struct fuse_context *fc = hpfs_context();
	struct ctl_caller who = { fc->uid, fc->gid, fc->pid };

	return who;
}

static bool may_incoming(void)
{
	struct fuse_context *fc = hpfs_context();

	return fc->uid == 0 || (hpfs.incoming_gid_set && fc->gid == hpfs.incoming_gid);
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

static int hpfs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	struct hpfs_path hp;
	int r;

	memset(st, 0, sizeof(*st));
	r = resolve(path, &hp);
	if (r < 0)
		return r;
	switch (hp.kind) {
	case K_ROOT:
		fill_dir(st, 0755);
		return 0;
	case K_CATALOG:
		return catalog_stat(hp.sub, st);
	case K_APPLY:
	case K_REVERT:
		/* Anyone may ask; whether they may patch a process is decided per process. */
		fill_file(st, 0666, 0);
		return 0;
	case K_AUTO:
		fill_file(st, 0644, 0);
		return 0;
	case K_REPORT:
	case K_STATUS:
	case K_LOG:
	case K_PROC_STATUS:
		if (hp.kind == K_PROC_STATUS && !proc_exists(hp.pid, NULL))
			return -ENOENT;
		fill_file(st, 0444, 0);
		return 0;
	case K_PROCESSES:
		fill_dir(st, 0555);
		return 0;
	case K_PROC_DIR:
		if (!proc_exists(hp.pid, &st->st_uid))
			return -ENOENT;
		fill_dir(st, 0555);
		return 0;
	case K_INCOMING:
		fill_dir(st, hpfs.incoming_gid_set ? 0770 : 0700);
		if (hpfs.incoming_gid_set)
			st->st_gid = hpfs.incoming_gid;
		return 0;
	case K_INCOMING_FILE:
		if (!may_incoming())
			return -EACCES;
		pthread_mutex_lock(&hpfs.lock);
		{
			struct hpfs_file *f = in_find(hp.sub);

			if (f) {
				fill_file(st, 0600, (off_t)f->data.len);
				st->st_uid = f->uid;
				st->st_mtime = f->mtime;
			}
			r = f ? 0 : -ENOENT;
		}
		pthread_mutex_unlock(&hpfs.lock);
		return r;
	case K_TMP:
		pthread_mutex_lock(&hpfs.lock);
		{
			struct hpfs_file *t = (fi && fi->fh) ? ((struct hpfs_fh *)(uintptr_t)fi->fh)->tmp
							    : tmp_find(hp.sub);

			if (t) {
				fill_file(st, t->mode & 07777, (off_t)t->data.len);
				st->st_uid = t->uid;
				st->st_gid = t->gid;
				st->st_mtime = t->mtime;
			}
			r = t ? 0 : -ENOENT;
		}
		pthread_mutex_unlock(&hpfs.lock);
		return r;
	case K_NONE:
		break;
	}
	return -ENOENT;
}

/* ---- directories --------------------------------------------------------- */

static struct hpfs_fh *fh_new(enum hpfs_kind kind)
{
	struct hpfs_fh *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->kind = kind;
	pthread_mutex_init(&h->lock, NULL);
	return h;
}

static void fh_free(struct hpfs_fh *h)
{
	if (!h)
		return;
	hp_buf_release(&h->data);
	hp_buf_release(&h->result);
	ctl_snap_unref(h->snap);
	free(h->sub);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

static struct hpfs_fh *fh_of(const struct fuse_file_info *fi)
{
	return (struct hpfs_fh *)(uintptr_t)fi->fh;
}

static int hpfs_opendir(const char *path, struct fuse_file_info *fi)
{
	struct hpfs_path hp;
	struct hpfs_fh *h = NULL;
	struct store_node node;
	int r;

	r = resolve(path, &hp);
	if (r < 0)
		return r;
	switch (hp.kind) {
	case K_ROOT:
	case K_CATALOG:
		h = fh_new(hp.kind);
		if (!h)
			return -ENOMEM;
		/* Opening the root or the catalog looks at the store's HEAD now. */
		r = ctl_snap_get(hpfs.ctl, hp.kind == K_ROOT || !*hp.sub, &h->snap);
		if (r == -ENOENT && (hp.kind == K_ROOT || !*hp.sub))
			r = 0; /* an empty store */
		if (r < 0)
			goto fail;
		if (hp.kind == K_CATALOG && *hp.sub) {
			r = store_snap_stat(ctl_snap_store(h->snap), hp.sub, &node);
			if (r < 0)
				goto fail;
			if (node.type != STORE_NODE_DIR) {
				r = -ENOTDIR;
				goto fail;
			}
		}
		h->sub = strdup(hp.sub ? hp.sub : "");
		if (!h->sub) {
			r = -ENOMEM;
			goto fail;
		}
		/*
		 * A catalog directory is immutable within a snapshot, and its mtime
		 * names the snapshot: the kernel may cache its entries (it drops them
		 * when the mtime changes). A set's directory (BASELINE/MONTH/SET)
		 * never changes: its entries are cached whatever the timeouts.
		 */
		if (hp.kind == K_CATALOG && h->snap &&
		    (catalog_keep_cache || slashes(hp.sub) >= 2)) {
			fi->cache_readdir = 1;
			fi->keep_cache = 1;
		}
		break;
	case K_INCOMING:
		if (!may_incoming())
			return -EACCES;
		/* fall through */
	case K_PROCESSES:
		h = fh_new(hp.kind);
		break;
	case K_PROC_DIR:
		if (!proc_exists(hp.pid, NULL))
			return -ENOENT;
		h = fh_new(hp.kind);
		break;
	default:
		return -ENOTDIR;
	}
	if (!h)
		return -ENOMEM;
	fi->fh = (uintptr_t)h;
	return 0;
fail:
	fh_free(h);
	return r;
}

static int hpfs_releasedir(const char *path, struct fuse_file_info *fi)
{
	fh_free(fh_of(fi));
	return 0;
}

struct fill_ctx {
	void *buf;
	fuse_fill_dir_t filler;
};

static int fill_catalog(void *ctx, const char *name, const struct store_node *node)
{
	struct fill_ctx *fc = ctx;
	struct stat st;

	memset(&st, 0, sizeof(st));
	st.st_mode = node->type == STORE_NODE_DIR ? S_IFDIR : node->type == STORE_NODE_LINK
								  ? S_IFLNK
								  : S_IFREG;
	return fc->filler(fc->buf, name, &st, 0, 0) ? 1 : 0;
}

static int hpfs_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off,
			struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	struct hpfs_fh *h = fh_of(fi);
	struct stat st;
	int r = 0;

	memset(&st, 0, sizeof(st));
	st.st_mode = S_IFDIR;
	filler(buf, ".", &st, 0, 0);
	filler(buf, "..", &st, 0, 0);
	switch (h->kind) {
	case K_ROOT:
		for (size_t i = 0; i < sizeof(root_names) / sizeof(root_names[0]); i++) {
			st.st_mode = (root_names[i].kind == K_CATALOG ||
				      root_names[i].kind == K_INCOMING ||
				      root_names[i].kind == K_PROCESSES) ? S_IFDIR : S_IFREG;
			filler(buf, root_names[i].name, &st, 0, 0);
		}
		st.st_mode = S_IFREG;
		pthread_mutex_lock(&hpfs.lock);
		for (struct hpfs_file *t = hpfs.tmps; t; t = t->next)
			filler(buf, t->name, &st, 0, 0);
		pthread_mutex_unlock(&hpfs.lock);
		break;
	case K_CATALOG:
		if (h->snap) {
			struct fill_ctx fc = { buf, filler };

			r = store_snap_readdir(ctl_snap_store(h->snap), h->sub, fill_catalog, &fc);
			if (r > 0)
				r = 0; /* the reply buffer is full */
		}
		break;
	case K_INCOMING:
		st.st_mode = S_IFREG;
		pthread_mutex_lock(&hpfs.lock);
		for (struct hpfs_file *f = hpfs.ins; f; f = f->next)
			filler(buf, f->name, &st, 0, 0);
		pthread_mutex_unlock(&hpfs.lock);
		break;
	case K_PROCESSES: {
		struct fuse_context *fc = hpfs_context();
		pid_t *pids = NULL;
		size_t n = 0;

		r = ctl_list(hpfs.ctl, &pids, &n);
		if (r < 0)
			break;
		for (size_t i = 0; i < n; i++) {
			char name[16];
			uid_t uid;

			/* Other users see their own processes only, as they would patch them. */
			if (fc->uid != 0 && (!proc_exists(pids[i], &uid) || uid != fc->uid))
				continue;
			snprintf(name, sizeof(name), "%d", (int)pids[i]);
			if (filler(buf, name, &st, 0, 0))
				break;
		}
		free(pids);
		break;
	}
	case K_PROC_DIR:
		st.st_mode = S_IFREG;
		filler(buf, "status", &st, 0, 0);
		break;
	default:
		r = -ENOTDIR;
	}
	return r;
}

static int hpfs_readlink(const char *path, char *buf, size_t size)
{
	struct hpfs_path hp;
	struct ctl_snap *s = NULL;
	int r;

	r = resolve(path, &hp);
	if (r < 0)
		return r;
	if (hp.kind != K_CATALOG || size == 0)
		return -EINVAL;
	r = ctl_snap_get(hpfs.ctl, false, &s);
	if (r < 0)
		return r;
	memset(buf, 0, size);
	r = store_snap_readlink(ctl_snap_store(s), hp.sub, buf, size);
	ctl_snap_unref(s);
	if (r < 0)
		return r;
	buf[size - 1] = '\0';
	return 0;
}

/* ---- state files --------------------------------------------------------- */

static int status_text(struct hp_buf *out)
{
	char head[41] = "", served[41] = "-";
	struct ctl_snap *s = NULL;

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
		    "auto-applies: %lu\n",
		    HP_VERSION, (int)getpid(), hpfs.mountpoint, hpfs.store_path,
		    head[0] ? head : "-", served,
		    (unsigned long long)((hp_now_us() - hpfs.started_us) / 1000000),
		    __atomic_load_n(&hpfs.auto_on, __ATOMIC_RELAXED) ? 1 : 0, hpfs.n_apply_ok,
		    hpfs.n_apply_fail, hpfs.n_revert_ok, hpfs.n_revert_fail, hpfs.n_import_ok,
		    hpfs.n_import_fail, hpfs.n_auto);
	pthread_mutex_unlock(&hpfs.lock);
	return 0;
}

static int compute(struct hpfs_fh *h, const struct hpfs_path *hp)
{
	struct fuse_context *fc = hpfs_context();
	struct ctl_status *st = NULL;
	int r;

	switch (hp->kind) {
	case K_STATUS:
		return status_text(&h->data);
	case K_LOG:
		return hpfs_log_text(&h->data);
	case K_REPORT:
		if (fc->uid == 0)
			return ctl_report(hpfs.ctl, false, &h->data);
		{
			/* Other users: the lines of their own processes. */
			struct hp_buf all = HP_BUF_INIT;

			r = ctl_report(hpfs.ctl, false, &all);
			for (char *line = all.data, *nl; r >= 0 && line && *line; line = nl + 1) {
				pid_t pid = (pid_t)atoi(line + 4);
				uid_t uid;

				nl = strchr(line, '\n');
				if (!nl)
					break;
				if (proc_exists(pid, &uid) && uid == fc->uid)
					hp_buf_add(&h->data, line, (size_t)(nl - line + 1));
			}
			hp_buf_release(&all);
			return r;
		}
	case K_PROC_STATUS:
		if (fc->uid != 0) {
			struct ctl_caller who = caller();

			r = ctl_may_patch(&who, hp->pid);
			if (r < 0)
				return r;
		}
		r = ctl_status(hpfs.ctl, hp->pid, &st);
		if (r == -ESRCH)
			r = -ENOENT;
		if (r < 0)
			return r;
		r = ctl_status_format(st, false, &h->data);
		ctl_status_free(st);
		return r;
	case K_AUTO:
		return hp_buf_adds(&h->data,
				   __atomic_load_n(&hpfs.auto_on, __ATOMIC_RELAXED) ? "1\n" : "0\n");
	default:
		return 0;
	}
}

/* ---- open / create / release --------------------------------------------- */

static bool writing(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
}

static int hpfs_open(const char *path, struct fuse_file_info *fi)
{
	struct fuse_context *fc = hpfs_context();
	struct hpfs_path hp;
	struct hpfs_fh *h = NULL;
	int r;

	r = resolve(path, &hp);
	if (r < 0)
		return r;
	switch (hp.kind) {
	case K_ROOT:
	case K_PROCESSES:
	case K_PROC_DIR:
	case K_INCOMING:
		return -EISDIR;
	case K_CATALOG: {
		struct store_node node;

		if (writing(fi->flags))
			return -EROFS;
		h = fh_new(hp.kind);
		if (!h)
			return -ENOMEM;
		r = ctl_snap_get(hpfs.ctl, false, &h->snap);
		if (r >= 0)
			r = store_snap_stat(ctl_snap_store(h->snap), hp.sub, &node);
		if (r >= 0 && node.type == STORE_NODE_DIR)
			r = -EISDIR;
		if (r >= 0 && !(h->sub = strdup(hp.sub)))
			r = -ENOMEM;
		if (r < 0)
			goto fail;
		/*
		 * Immutable within a snapshot, and the mtime names the snapshot. A
		 * set's files (BASELINE/MONTH/SET/FILE) never change at all: a set
		 * is never replaced (import refuses it, pull only fast-forwards).
		 * The blob is read at the first read(): with the page cache kept,
		 * an open of a file read before costs no git read, and no flush.
		 */
		fi->keep_cache = catalog_keep_cache || slashes(hp.sub) >= 3;
		fi->noflush = 1;
		break;
	}
	case K_APPLY:
	case K_REVERT:
	case K_AUTO:
		if (hp.kind == K_AUTO && writing(fi->flags) && fc->uid != 0)
			return -EACCES;
		h = fh_new(hp.kind);
		if (!h)
			return -ENOMEM;
		r = compute(h, &hp);
		if (r < 0)
			goto fail;
		fi->direct_io = 1;
		/* apply and revert: seekable, so a writer can read the outcome from 0. */
		fi->nonseekable = hp.kind == K_AUTO;
		break;
	case K_REPORT:
	case K_STATUS:
	case K_LOG:
	case K_PROC_STATUS:
		if (writing(fi->flags))
			return -EACCES;
		h = fh_new(hp.kind);
		if (!h)
			return -ENOMEM;
		r = compute(h, &hp);
		if (r < 0)
			goto fail;
		fi->direct_io = 1;
		fi->nonseekable = 1;
		break;
	case K_INCOMING_FILE: {
		struct hpfs_file *f;

		if (!may_incoming())
			return -EACCES;
		h = fh_new(hp.kind);
		if (!h)
			return -ENOMEM;
		pthread_mutex_lock(&hpfs.lock);
		f = in_find(hp.sub);
		if (f) {
			f->open++;
			if (fi->flags & O_TRUNC)
				buf_truncate(&f->data, 0, STORE_BUNDLE_MAX_BYTES);
		}
		pthread_mutex_unlock(&hpfs.lock);
		if (!f) {
			r = -ENOENT;
			goto fail;
		}
		h->in = f;
		fi->direct_io = 1;
		break;
	}
	case K_TMP: {
		struct hpfs_file *t;

		h = fh_new(hp.kind);
		if (!h)
			return -ENOMEM;
		pthread_mutex_lock(&hpfs.lock);
		t = tmp_find(hp.sub);
		if (t && fc->uid != 0 && fc->uid != t->uid)
			r = -EACCES;
		else if (!t)
			r = -ENOENT;
		else {
			t->open++;
			if (fi->flags & O_TRUNC)
				buf_truncate(&t->data, 0, HPFS_TMP_MAX_BYTES);
		}
		pthread_mutex_unlock(&hpfs.lock);
		if (r < 0)
			goto fail;
		h->tmp = t;
		fi->direct_io = 1;
		break;
	}
	case K_NONE:
		return -ENOENT;
	}
	/* Only a close in incoming/ does work: spare the others a FLUSH round trip. */
	fi->noflush = hp.kind != K_INCOMING_FILE;
	fi->fh = (uintptr_t)h;
	return 0;
fail:
	fh_free(h);
	return r;
}

static int hpfs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct fuse_context *fc = hpfs_context();
	struct hpfs_path hp;
	struct hpfs_fh *h = NULL;
	int r;

	r = resolve(path, &hp);
	if (r < 0)
		return r;
	if (hp.kind != K_TMP && hp.kind != K_INCOMING_FILE) {
		/* Existing files: a shell's O_CREAT on a control file lands in open(). */
		if (hp.kind == K_CATALOG)
			return -EROFS;
		return hpfs_open(path, fi);
	}
	if (strlen(hp.sub) > NAME_MAX)
		return -ENAMETOOLONG;
	h = fh_new(hp.kind);
	if (!h)
		return -ENOMEM;
	pthread_mutex_lock(&hpfs.lock);
	if (hp.kind == K_TMP) {
		struct hpfs_file *t = tmp_find(hp.sub);

		if (t && (fi->flags & O_EXCL)) {
			r = -EEXIST;
		} else if (t && fc->uid != 0 && fc->uid != t->uid) {
			r = -EACCES;
		} else if (!t && hpfs.n_tmps >= HPFS_TMP_MAX) {
			r = -ENOSPC;
		} else {
			if (!t) {
				t = calloc(1, sizeof(*t));
				if (t && !(t->name = strdup(hp.sub))) {
					free(t);
					t = NULL;
				}
				if (t) {
					t->uid = fc->uid;
					t->gid = fc->gid;
					t->mode = mode & 07777;
					t->next = hpfs.tmps;
					hpfs.tmps = t;
					hpfs.n_tmps++;
				}
			} else {
				buf_truncate(&t->data, 0, HPFS_TMP_MAX_BYTES);
			}
			if (t) {
				t->mtime = time(NULL);
				t->open++;
				h->tmp = t;
			}
			r = t ? 0 : -ENOMEM;
		}
	} else {
		struct hpfs_file *f = in_find(hp.sub);

		if (!may_incoming()) {
			r = -EACCES;
		} else if (f && (fi->flags & O_EXCL)) {
			r = -EEXIST;
		} else if (!f && hpfs.n_ins >= HPFS_INCOMING_MAX) {
			r = -ENOSPC;
		} else {
			if (!f) {
				f = calloc(1, sizeof(*f));
				if (f && !(f->name = strdup(hp.sub))) {
					free(f);
					f = NULL;
				}
				if (f) {
					f->uid = fc->uid;
					f->next = hpfs.ins;
					hpfs.ins = f;
					hpfs.n_ins++;
				}
			} else {
				buf_truncate(&f->data, 0, STORE_BUNDLE_MAX_BYTES);
			}
			if (f) {
				f->mtime = time(NULL);
				f->open++;
				h->in = f;
			}
			r = f ? 0 : -ENOMEM;
		}
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
	hpfs_log_event("import", 0, set_id, r, hp_errmsg(r), false, 0, extra);
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

static int hpfs_flush(const char *path, struct fuse_file_info *fi)
{
	struct hpfs_fh *h = fh_of(fi);

	bool now = false;

	if (!h || h->kind != K_INCOMING_FILE || !h->in)
		return 0;
	pthread_mutex_lock(&h->lock);
	if (h->wrote && !h->imported) {
		h->imported = true;
		now = true;
	}
	pthread_mutex_unlock(&h->lock);
	return now ? import_incoming(h->in) : 0;
}

static int hpfs_release(const char *path, struct fuse_file_info *fi)
{
	struct hpfs_fh *h = fh_of(fi);

	if (!h)
		return 0;
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
	return 0;
}

/* ---- read / write -------------------------------------------------------- */

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

static int hpfs_read(const char *path, char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct hpfs_fh *h = fh_of(fi);
	int r;

	switch (h->kind) {
	case K_APPLY:
	case K_REVERT:
		/* What the last write on this handle did (hp seeks back to 0 and reads it). */
		pthread_mutex_lock(&h->lock);
		r = read_buf(&h->result, buf, size, off);
		pthread_mutex_unlock(&h->lock);
		return r;
	case K_TMP:
		pthread_mutex_lock(&hpfs.lock);
		r = read_buf(&h->tmp->data, buf, size, off);
		pthread_mutex_unlock(&hpfs.lock);
		return r;
	case K_INCOMING_FILE:
		pthread_mutex_lock(&hpfs.lock);
		r = read_buf(&h->in->data, buf, size, off);
		pthread_mutex_unlock(&hpfs.lock);
		return r;
	case K_CATALOG:
		pthread_mutex_lock(&h->lock);
		r = 0;
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
	default:
		return read_buf(&h->data, buf, size, off);
	}
}

/* Run one control command: what a write to apply/revert/auto (or a rename over them) does. */
static int control(enum hpfs_kind kind, const char *text, size_t len, struct hp_buf *result)
{
	struct ctl_caller who = caller();
	struct ctl_results res = { NULL, 0 };
	struct ctl_cmd cmd;
	bool on;
	int r;

	hp_err_clear();
	if (kind == K_AUTO) {
		if (who.uid != 0)
			return -EACCES;
		r = ctl_parse_bool(text, len, &on);
		if (r < 0)
			return r;
		r = hpfs_auto_set(on);
		hpfs_log_event(on ? "auto-on" : "auto-off", 0, NULL, r, hp_errmsg(r), false, 0,
			       NULL);
		return r;
	}
	r = kind == K_APPLY ? ctl_parse_apply(text, len, &cmd) : ctl_parse_revert(text, len, &cmd);
	if (r < 0) {
		hpfs_log_event(kind == K_APPLY ? "apply" : "revert", 0, NULL, r, hp_errmsg(r), false,
			       0, NULL);
		return r;
	}
	r = ctl_run(hpfs.ctl, &who, kind == K_REVERT, &cmd, &res);
	if (res.n == 0 && r < 0)
		hpfs_log_event(kind == K_APPLY ? "apply" : "revert", cmd.pid, NULL, r,
			       hp_errmsg(r), false, 0, NULL);
	hpfs_log_results(kind == K_APPLY ? "apply" : "revert", &res);
	pthread_mutex_lock(&hpfs.lock);
	for (size_t i = 0; i < res.n; i++) {
		if (kind == K_APPLY && res.v[i].err < 0)
			hpfs.n_apply_fail++;
		else if (kind == K_APPLY)
			hpfs.n_apply_ok++;
		else if (res.v[i].err < 0)
			hpfs.n_revert_fail++;
		else
			hpfs.n_revert_ok++;
	}
	pthread_mutex_unlock(&hpfs.lock);
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

static int hpfs_write(const char *path, const char *buf, size_t size, off_t off,
		      struct fuse_file_info *fi)
{
	struct hpfs_fh *h = fh_of(fi);
	int r;

	switch (h->kind) {
	case K_APPLY:
	case K_REVERT:
	case K_AUTO: {
		struct hp_buf result = HP_BUF_INIT;

		r = control(h->kind, buf, size, &result);
		pthread_mutex_lock(&h->lock);
		hp_buf_release(&h->result);
		h->result = result;
		pthread_mutex_unlock(&h->lock);
		return r < 0 ? r : (int)size;
	}
	case K_TMP:
		pthread_mutex_lock(&hpfs.lock);
		r = buf_write_at(&h->tmp->data, off, buf, size, HPFS_TMP_MAX_BYTES);
		h->tmp->mtime = time(NULL);
		pthread_mutex_unlock(&hpfs.lock);
		return r;
	case K_INCOMING_FILE:
		pthread_mutex_lock(&hpfs.lock);
		r = buf_write_at(&h->in->data, off, buf, size, STORE_BUNDLE_MAX_BYTES);
		h->in->mtime = time(NULL);
		pthread_mutex_unlock(&hpfs.lock);
		if (r > 0) {
			pthread_mutex_lock(&h->lock);
			h->wrote = true;
			pthread_mutex_unlock(&h->lock);
		}
		return r;
	case K_CATALOG:
		return -EROFS;
	default:
		return -EACCES;
	}
}

/* ---- metadata changes ---------------------------------------------------- */

static int hpfs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	struct fuse_context *fc = hpfs_context();
	struct hpfs_path hp;
	int r;

	r = resolve(path, &hp);
	if (r < 0)
		return r;
	switch (hp.kind) {
	case K_APPLY:
	case K_REVERT:
		/* O_TRUNC of `echo PID > apply`: nothing to cut, the write does the work. */
		return 0;
	case K_AUTO:
		return fc->uid == 0 ? 0 : -EACCES;
	case K_TMP:
		pthread_mutex_lock(&hpfs.lock);
		{
			struct hpfs_file *t = tmp_find(hp.sub);

			if (!t)
				r = -ENOENT;
			else if (fc->uid != 0 && fc->uid != t->uid)
				r = -EACCES;
			else
				r = buf_truncate(&t->data, size, HPFS_TMP_MAX_BYTES);
		}
		pthread_mutex_unlock(&hpfs.lock);
		return r;
	case K_INCOMING_FILE:
		if (!may_incoming())
			return -EACCES;
		pthread_mutex_lock(&hpfs.lock);
		{
			struct hpfs_file *f = in_find(hp.sub);

			r = f ? buf_truncate(&f->data, size, STORE_BUNDLE_MAX_BYTES) : -ENOENT;
		}
		pthread_mutex_unlock(&hpfs.lock);
		return r;
	case K_CATALOG:
		return -EROFS;
	default:
		return -EACCES;
	}
}

/* chmod, chown, utimens: accepted (and ignored) where a writer may write, for cp -p and Ansible. */
static int meta_ok(const char *path)
{
	struct fuse_context *fc = hpfs_context();
	struct hpfs_path hp;
	int r;

	r = resolve(path, &hp);
	if (r < 0)
		return r;
	switch (hp.kind) {
	case K_APPLY:
	case K_REVERT:
		return 0;
	case K_AUTO:
		return fc->uid == 0 ? 0 : -EPERM;
	case K_TMP:
		pthread_mutex_lock(&hpfs.lock);
		{
			struct hpfs_file *t = tmp_find(hp.sub);

			r = !t ? -ENOENT : (fc->uid != 0 && fc->uid != t->uid) ? -EPERM : 0;
		}
		pthread_mutex_unlock(&hpfs.lock);
		return r;
	case K_INCOMING_FILE:
		return may_incoming() ? 0 : -EACCES;
	case K_CATALOG:
		return -EROFS;
	default:
		return -EPERM;
	}
}

static int hpfs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	int r = meta_ok(path);
	struct hpfs_path hp;

	if (r == 0 && resolve(path, &hp) == 0 && hp.kind == K_TMP) {
		pthread_mutex_lock(&hpfs.lock);
		struct hpfs_file *t = tmp_find(hp.sub);

		if (t)
			t->mode = mode & 07777;
		pthread_mutex_unlock(&hpfs.lock);
	}
	return r;
}

static int hpfs_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	return meta_ok(path);
}

static int hpfs_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	return meta_ok(path);
}

static int hpfs_unlink(const char *path)
{
	struct fuse_context *fc = hpfs_context();
	struct hpfs_path hp;
	int r;

	r = resolve(path, &hp);
	if (r < 0)
		return r;
	switch (hp.kind) {
	case K_TMP:
		pthread_mutex_lock(&hpfs.lock);
		{
			struct hpfs_file *t = tmp_find(hp.sub);

			if (!t)
				r = -ENOENT;
			else if (fc->uid != 0 && fc->uid != t->uid)
				r = -EACCES;
			else
				tmp_drop(t);
		}
		pthread_mutex_unlock(&hpfs.lock);
		return r;
	case K_INCOMING_FILE:
		if (!may_incoming())
			return -EACCES;
		pthread_mutex_lock(&hpfs.lock);
		{
			struct hpfs_file *f = in_find(hp.sub);

			if (f)
				in_drop(f);
			r = f ? 0 : -ENOENT;
		}
		pthread_mutex_unlock(&hpfs.lock);
		return r;
	case K_CATALOG:
		return -EROFS;
	default:
		return -EPERM;
	}
}

/*
 * Ansible's copy module writes a temp file next to the destination and
 * renames it over it: renaming a temp file over apply, revert or auto runs
 * its contents as the command, and the rename carries the command's errno.
 */
static int hpfs_rename(const char *from, const char *to, unsigned int flags)
{
	struct fuse_context *fc = hpfs_context();
	struct hpfs_path a, b;
	struct hp_buf text = HP_BUF_INIT;
	int r;

	r = resolve(from, &a);
	if (r < 0)
		return r;
	r = resolve(to, &b);
	if (r < 0)
		return r;
	if (flags)
		return -EINVAL;
	if (a.kind == K_CATALOG || b.kind == K_CATALOG)
		return -EROFS;
	if (a.kind == K_TMP && (b.kind == K_APPLY || b.kind == K_REVERT || b.kind == K_AUTO)) {
		pthread_mutex_lock(&hpfs.lock);
		{
			struct hpfs_file *t = tmp_find(a.sub);

			if (!t)
				r = -ENOENT;
			else if (fc->uid != 0 && fc->uid != t->uid)
				r = -EACCES;
			else
				r = hp_buf_add(&text, t->data.data ? t->data.data : "", t->data.len);
		}
		pthread_mutex_unlock(&hpfs.lock);
		if (r < 0)
			goto out;
		r = control(b.kind, text.data, text.len, NULL);
		if (r < 0)
			goto out;
		/* Done: the temp file is gone, as if it had replaced the control file. */
		pthread_mutex_lock(&hpfs.lock);
		{
			struct hpfs_file *t = tmp_find(a.sub);

			if (t)
				tmp_drop(t);
		}
		pthread_mutex_unlock(&hpfs.lock);
		r = 0;
		goto out;
	}
	if (a.kind == K_TMP && b.kind == K_TMP) {
		pthread_mutex_lock(&hpfs.lock);
		{
			struct hpfs_file *t = tmp_find(a.sub), *old = tmp_find(b.sub);
			char *name = strdup(b.sub);

			if (!t || !name)
				r = t ? -ENOMEM : -ENOENT;
			else if (fc->uid != 0 && (fc->uid != t->uid || (old && fc->uid != old->uid)))
				r = -EACCES;
			else {
				if (old && old != t)
					tmp_drop(old);
				free(t->name);
				t->name = name;
				name = NULL;
			}
			free(name);
		}
		pthread_mutex_unlock(&hpfs.lock);
		goto out;
	}
	if (a.kind == K_INCOMING_FILE && b.kind == K_INCOMING_FILE) {
		if (!may_incoming())
			return -EACCES;
		pthread_mutex_lock(&hpfs.lock);
		{
			struct hpfs_file *f = in_find(a.sub), *old = in_find(b.sub);
			char *name = strdup(b.sub);

			if (!f || !name)
				r = f ? -ENOMEM : -ENOENT;
			else {
				if (old && old != f)
					in_drop(old);
				free(f->name);
				f->name = name;
				name = NULL;
			}
			free(name);
		}
		pthread_mutex_unlock(&hpfs.lock);
		goto out;
	}
	r = -EPERM;
out:
	hp_buf_release(&text);
	return r;
}

static int hpfs_mkdir(const char *path, mode_t mode)
{
	struct hpfs_path hp;

	if (resolve(path, &hp) == 0 && hp.kind == K_CATALOG)
		return -EROFS;
	return -EPERM;
}

static int hpfs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	return 0;
}

static void *hpfs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	/*
	 * ll.c answers no READDIRPLUS: after a first walk the catalog's names
	 * and attributes are cached (per-entry timeouts), and state files'
	 * attributes would be stale at once. The first walk pays a LOOKUP per
	 * name that readdirplus would spare. The fuse_config fields below are
	 * the high-level API's; ll.c reads only the timeouts.
	 */
	conn->want &= ~(unsigned)(FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO);
	/* Unlinked open files are dropped, not renamed to .fuse_hidden*. */
	cfg->hard_remove = 1;
	/*
	 * Catalog caches follow the snapshot through the mtime, which the kernel
	 * sees only when it asks for attributes again: with attribute caching
	 * (-o attr_timeout > 0) the page and readdir caches are not kept. (When
	 * the kernel opens directories itself, ll.c, it keeps every listing, and
	 * ll.c asks it to fetch a directory's attributes at each listing.)
	 */
	catalog_keep_cache = cfg->attr_timeout == 0;
	cfg->use_ino = 0;
	cfg->nullpath_ok = 0;
	return &hpfs;
}

static void hpfs_destroy(void *data)
{
	hpfs_auto_stop();
}

const struct fuse_operations hpfs_ops = {
	.init = hpfs_init,
	.destroy = hpfs_destroy,
	.getattr = hpfs_getattr,
	.readlink = hpfs_readlink,
	.opendir = hpfs_opendir,
	.readdir = hpfs_readdir,
	.releasedir = hpfs_releasedir,
	.open = hpfs_open,
	.create = hpfs_create,
	.read = hpfs_read,
	.write = hpfs_write,
	.flush = hpfs_flush,
	.release = hpfs_release,
	.fsync = hpfs_fsync,
	.truncate = hpfs_truncate,
	.chmod = hpfs_chmod,
	.chown = hpfs_chown,
	.utimens = hpfs_utimens,
	.unlink = hpfs_unlink,
	.rename = hpfs_rename,
	.mkdir = hpfs_mkdir,
};

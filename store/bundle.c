/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Bundles in and out, through libarchive. Reading treats the archive as
 * hostile: exactly the three known members, plain files only, sizes counted
 * on the bytes actually decompressed (a header can lie), and limits on each
 * member, on their total and on the input.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store-int.h"

/* Decompressed bytes the format reader may consume beyond the members (headers, padding). */
#define BUNDLE_STREAM_SLACK (1u << 20)

void bundle_release(struct bundle *b)
{
	if (!b)
		return;
	hp_buf_release(&b->manifest);
	hp_buf_release(&b->patch);
	hp_buf_release(&b->signature);
}

/* A member name must be relative and stay inside the archive. */
static int check_name(const char *name)
{
	const char *p;

	if (!name || !*name)
		return hp_err(-EINVAL, "member without a name");
	if (name[0] == '/')
		return hp_err(-EINVAL, "member '%s': absolute path", name);
	for (p = name; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == '\\')
			return hp_err(-EINVAL, "member name with control or backslash characters");
	/* Any ".." component is traversal, wherever it stands. */
	for (p = name; p;) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);

		if (n == 2 && p[0] == '.' && p[1] == '.')
			return hp_err(-EINVAL, "member '%s': path traversal", name);
		p = slash ? slash + 1 : NULL;
	}
	return 0;
}

static int member_slot(struct bundle *b, const char *name, struct hp_buf **ret_buf,
		       size_t *ret_max)
{
	if (!strncmp(name, "./", 2))
		name += 2;
	if (!strcmp(name, BUNDLE_MANIFEST)) {
		*ret_buf = &b->manifest;
		*ret_max = HP_MANIFEST_MAX_BYTES;
	} else if (!strcmp(name, BUNDLE_PATCH)) {
		*ret_buf = &b->patch;
		*ret_max = STORE_MEMBER_MAX_BYTES;
	} else if (!strcmp(name, BUNDLE_SIGNATURE)) {
		*ret_buf = &b->signature;
		*ret_max = STORE_SIG_MAX;
	} else {
		return hp_err(-EINVAL, "unknown member '%s' (a bundle holds manifest, patch.so, signature)",
			      name);
	}
	return 0;
}

static const char *type_name(mode_t t)
{
	switch (t) {
	case AE_IFDIR: return "a directory";
	case AE_IFLNK: return "a symbolic link";
	case AE_IFCHR: return "a character device";
	case AE_IFBLK: return "a block device";
	case AE_IFIFO: return "a fifo";
	case AE_IFSOCK: return "a socket";
	default: return "not a regular file";
	}
}

static int check_entry(struct archive_entry *e, const char *name)
{
	mode_t t = archive_entry_filetype(e);

	if (archive_entry_hardlink(e))
		return hp_err(-EINVAL, "member '%s': a hard link", name);
	if (archive_entry_symlink(e))
		return hp_err(-EINVAL, "member '%s': a symbolic link", name);
	if (t != AE_IFREG)
		return hp_err(-EINVAL, "member '%s': %s", name, type_name(t));
	return 0;
}

static int read_member(struct archive *a, const char *name, struct hp_buf *buf, size_t max,
		       size_t *total)
{
	char chunk[65536];
	int r = 0;

	for (;;) {
		la_ssize_t n = archive_read_data(a, chunk, sizeof(chunk));

		if (n < 0)
			return hp_err(-EINVAL, "member '%s': %s", name, archive_error_string(a));
		if (n == 0)
			break;
		if (buf->len + (size_t)n > max)
			return hp_err(-EFBIG, "member '%s': larger than %zu bytes", name, max);
		if (*total + (size_t)n > STORE_TOTAL_MAX_BYTES)
			return hp_err(-EFBIG, "bundle contents larger than %u bytes",
				      STORE_TOTAL_MAX_BYTES);
		r = hp_buf_add(buf, chunk, (size_t)n);
		if (r < 0)
			return r;
		*total += (size_t)n;
	}
	/* An empty member still gets a buffer, so "present" is data != NULL. */
	return buf->data ? 0 : hp_buf_grow(buf, 0);
}

/*
 * Formats and filters are named one by one: no mtree (it reads files named
 * in the archive from the local disk), no external decompressor programs.
 */
static int open_reader(const void *data, size_t len, struct archive **ret)
{
	struct archive *a = archive_read_new();

	if (!a)
		return -ENOMEM;
	archive_read_support_format_tar(a);
	archive_read_support_format_zip(a);
	archive_read_support_format_cpio(a);
	archive_read_support_format_7zip(a);
	/* ARCHIVE_WARN means "through an external program": those stay off. */
	if (archive_read_support_filter_gzip(a) == ARCHIVE_WARN ||
	    archive_read_support_filter_xz(a) == ARCHIVE_WARN ||
	    archive_read_support_filter_bzip2(a) == ARCHIVE_WARN ||
	    archive_read_support_filter_lzma(a) == ARCHIVE_WARN ||
	    archive_read_support_filter_zstd(a) == ARCHIVE_WARN) {
		archive_read_free(a);
		return hp_err(-ENOTSUP, "libarchive lacks built-in gzip, xz, bzip2, lzma or zstd");
	}
	if (archive_read_open_memory(a, data, len) != ARCHIVE_OK) {
		int r = hp_err(-EINVAL, "not a bundle archive: %s", archive_error_string(a));

		archive_read_free(a);
		return r;
	}
	*ret = a;
	return 0;
}

int bundle_read(const void *data, size_t len, struct bundle *ret)
{
	struct bundle b = { HP_BUF_INIT, HP_BUF_INIT, HP_BUF_INIT };
	struct archive *a = NULL;
	struct archive_entry *e;
	size_t total = 0;
	int r;

	if (len > STORE_BUNDLE_MAX_BYTES)
		return hp_err(-EFBIG, "bundle larger than %u bytes", STORE_BUNDLE_MAX_BYTES);
	if (len == 0)
		return hp_err(-EINVAL, "empty bundle");
	r = open_reader(data, len, &a);
	if (r < 0)
		return r;
	for (;;) {
		struct hp_buf *slot = NULL;
		size_t max = 0;
		const char *name;
		int ar = archive_read_next_header(a, &e);

		if (ar == ARCHIVE_EOF)
			break;
		if (ar != ARCHIVE_OK) {
			r = hp_err(-EINVAL, "not a valid bundle archive: %s",
				   archive_error_string(a) ? archive_error_string(a) : "unreadable");
			goto fail;
		}
		/* The decompressed stream itself is bounded, whatever the members say. */
		if (archive_filter_bytes(a, 0) > (la_int64_t)STORE_TOTAL_MAX_BYTES + BUNDLE_STREAM_SLACK) {
			r = hp_err(-EFBIG, "bundle expands past %u bytes", STORE_TOTAL_MAX_BYTES);
			goto fail;
		}
		name = archive_entry_pathname(e);
		r = check_name(name);
		if (r < 0)
			goto fail;
		r = check_entry(e, name);
		if (r < 0)
			goto fail;
		r = member_slot(&b, name, &slot, &max);
		if (r < 0)
			goto fail;
		if (slot->data) {
			r = hp_err(-EINVAL, "member '%s' appears twice", name);
			goto fail;
		}
		if (archive_entry_size_is_set(e) && archive_entry_size(e) > (la_int64_t)max) {
			r = hp_err(-EFBIG, "member '%s': declares %lld bytes, over the limit of %zu",
				   name, (long long)archive_entry_size(e), max);
			goto fail;
		}
		r = read_member(a, name, slot, max, &total);
		if (r < 0)
			goto fail;
	}
	if (!b.manifest.data) {
		r = hp_err(-EINVAL, "bundle has no manifest");
		goto fail;
	}
	if (!b.patch.data) {
		r = hp_err(-EINVAL, "bundle has no patch.so");
		goto fail;
	}
	if (!b.signature.data)
		hp_buf_grow(&b.signature, 0);
	archive_read_free(a);
	bundle_release(ret);
	*ret = b;
	return 0;
fail:
	archive_read_free(a);
	bundle_release(&b);
	return r;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && !strcmp(s + n - m, suffix);
}

static int add_member(struct archive *a, const char *name, const struct hp_buf *buf)
{
	struct archive_entry *e = archive_entry_new();
	int r = 0;

	if (!e)
		return -ENOMEM;
	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_size(e, (la_int64_t)buf->len);
	/* Fixed time: the same set makes the same bundle bytes. */
	archive_entry_set_mtime(e, 315532800, 0);
	if (archive_write_header(a, e) != ARCHIVE_OK ||
	    (buf->len && archive_write_data(a, buf->data, buf->len) != (la_ssize_t)buf->len))
		r = hp_err(-EIO, "write bundle member %s: %s", name, archive_error_string(a));
	archive_entry_free(e);
	return r;
}

int bundle_write(const char *path, const struct bundle *b)
{
	char tmp[PATH_MAX];
	struct archive *a = NULL;
	int fd = -1, r = 0;

	if (!b->manifest.data || !b->patch.data)
		return hp_err(-EINVAL, "write bundle %s: manifest and patch.so are required", path);
	a = archive_write_new();
	if (!a)
		return -ENOMEM;
	if (ends_with(path, ".tar.gz") || ends_with(path, ".tgz")) {
		archive_write_set_format_pax_restricted(a);
		r = archive_write_add_filter_gzip(a);
	} else if (ends_with(path, ".tar.xz") || ends_with(path, ".txz")) {
		archive_write_set_format_pax_restricted(a);
		r = archive_write_add_filter_xz(a);
	} else if (ends_with(path, ".tar")) {
		archive_write_set_format_pax_restricted(a);
		r = ARCHIVE_OK;
	} else if (ends_with(path, ".zip")) {
		archive_write_set_format_zip(a);
		r = ARCHIVE_OK;
	} else {
		r = hp_err(-EINVAL, "write bundle %s: unknown format (use .tar, .tar.gz, .tar.xz or .zip)",
			   path);
		goto out;
	}
	if (r != ARCHIVE_OK) {
		r = hp_err(-ENOTSUP, "write bundle %s: %s", path, archive_error_string(a));
		goto out;
	}
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= (int)sizeof(tmp)) {
		r = hp_err(-ENAMETOOLONG, "write bundle %s: path too long", path);
		goto out;
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		r = hp_err(-errno, "write bundle %s: %s", path, strerror(errno));
		goto out;
	}
	if (archive_write_open_fd(a, fd) != ARCHIVE_OK) {
		r = hp_err(-EIO, "write bundle %s: %s", path, archive_error_string(a));
		goto out;
	}
	r = add_member(a, BUNDLE_MANIFEST, &b->manifest);
	if (r == 0)
		r = add_member(a, BUNDLE_PATCH, &b->patch);
	if (r == 0 && b->signature.len)
		r = add_member(a, BUNDLE_SIGNATURE, &b->signature);
	if (r == 0 && archive_write_close(a) != ARCHIVE_OK)
		r = hp_err(-EIO, "write bundle %s: %s", path, archive_error_string(a));
	/* Done with the archive before its descriptor goes. */
	archive_write_free(a);
	a = NULL;
	if (r == 0 && (fchmod(fd, 0644) < 0 || fsync(fd) < 0))
		r = hp_err(-errno, "write bundle %s: %s", path, strerror(errno));
	if (close(fd) < 0 && r == 0)
		r = hp_err(-errno, "write bundle %s: %s", path, strerror(errno));
	fd = -1;
	if (r == 0 && rename(tmp, path) < 0)
		r = hp_err(-errno, "write bundle %s: %s", path, strerror(errno));
	if (r < 0)
		unlink(tmp);
out:
	archive_write_free(a);
	if (fd >= 0) {
		close(fd);
		unlink(tmp);
	}
	return r;
}

int store_bundle_write(const char *path, const struct hp_buf *manifest, const struct hp_buf *patch,
		       const struct hp_buf *signature)
{
	struct bundle b = { *manifest, *patch, HP_BUF_INIT };

	if (signature)
		b.signature = *signature;
	return bundle_write(path, &b);
}

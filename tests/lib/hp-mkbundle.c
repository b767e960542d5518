/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hp-mkbundle: make a test bundle (tests only; hp build makes real ones).
 *   hp-mkbundle -b BASELINE -m MONTH -n NAME [-t TARGET] [-i BUILD-ID]
 *               [-k KEY] [-p PATCHFILE] [-c CVE] [-f "FUNC OFF SIZE"] [--tamper] -o OUT
 * With -N COUNT, makes COUNT bundles OUT/NAME-<i>.tar (NAME-0 ... ), for
 * bulk tests, each for a target of its own (TARGET-<i>, build-id ID<i as
 * 4 hex>): a month holds one set per target. With -H KIND, writes a hostile archive around a valid set:
 * traversal, absolute, symlink, hardlink, device, fifo, dir, duplicate,
 * unknown, bomb (.tar.gz: a member past the limit; .zip: the same, streamed
 * and without central directory, so no size anywhere), garbage.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mkbundle.h"

static int ends_with(const char *s, const char *suf)
{
	size_t n = strlen(s), m = strlen(suf);

	return n >= m && !strcmp(s + n - m, suf);
}

static int add(struct archive *a, const char *name, mode_t type, const char *link, bool hard,
	       const void *data, size_t len, bool zeros, bool unset_size)
{
	struct archive_entry *e = archive_entry_new();
	static char z[65536];
	int r = 0;

	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, type);
	archive_entry_set_perm(e, 0644);
	if (type == AE_IFCHR)
		archive_entry_set_rdev(e, 0x0103);
	if (type == AE_IFLNK)
		archive_entry_set_symlink(e, link);
	if (hard)
		archive_entry_set_hardlink(e, link);
	if (unset_size)
		archive_entry_unset_size(e);
	else
		archive_entry_set_size(e, (la_int64_t)len);
	if (archive_write_header(a, e) != ARCHIVE_OK)
		r = -EIO;
	for (size_t done = 0; r == 0 && done < len;) {
		size_t k = zeros ? (len - done < sizeof(z) ? len - done : sizeof(z)) : len;

		if (archive_write_data(a, zeros ? z : (const char *)data + done, k) != (la_ssize_t)k)
			r = -EIO;
		done += k;
	}
	archive_entry_free(e);
	return r;
}

static int hostile(const struct mkb_opts *o, const char *kind, const char *out)
{
	struct bundle b;
	struct archive *a;
	const struct hp_buf *man, *pat, *sig;
	bool zip = ends_with(out, ".zip");
	int r;

	if (!strcmp(kind, "garbage")) {
		char junk[4096];

		for (size_t i = 0; i < sizeof(junk); i++)
			junk[i] = (char)((i * 2654435761u) >> 13);
		return hp_write_file_atomic(out, junk, sizeof(junk), 0644);
	}
	r = mkb_make(o, &b);
	if (r < 0)
		return r;
	man = &b.manifest, pat = &b.patch, sig = &b.signature;
	a = archive_write_new();
	if (zip) {
		archive_write_set_format_zip(a);
	} else {
		archive_write_set_format_pax_restricted(a);
		if (ends_with(out, ".gz"))
			archive_write_add_filter_gzip(a);
	}
	if (archive_write_open_filename(a, out) != ARCHIVE_OK) {
		r = hp_err(-EIO, "%s: %s", out, archive_error_string(a));
		goto out;
	}
	r = add(a, "manifest", AE_IFREG, NULL, false, man->data, man->len, false, false);
	if (r == 0 && sig->len)
		r = add(a, "signature", AE_IFREG, NULL, false, sig->data, sig->len, false, false);
	if (r < 0)
		goto out;
	if (!strcmp(kind, "traversal"))
		r = add(a, "../patch.so", AE_IFREG, NULL, false, pat->data, pat->len, false, false);
	else if (!strcmp(kind, "absolute"))
		r = add(a, "/patch.so", AE_IFREG, NULL, false, pat->data, pat->len, false, false);
	else if (!strcmp(kind, "symlink"))
		r = add(a, "patch.so", AE_IFLNK, "/etc/passwd", false, NULL, 0, false, false);
	else if (!strcmp(kind, "hardlink"))
		r = add(a, "patch.so", AE_IFREG, "manifest", true, NULL, 0, false, false);
	else if (!strcmp(kind, "device"))
		r = add(a, "patch.so", AE_IFCHR, NULL, false, NULL, 0, false, false);
	else if (!strcmp(kind, "fifo"))
		r = add(a, "patch.so", AE_IFIFO, NULL, false, NULL, 0, false, false);
	else if (!strcmp(kind, "dir"))
		r = add(a, "patch.so", AE_IFDIR, NULL, false, NULL, 0, false, false);
	else if (!strcmp(kind, "duplicate"))
		r = add(a, "patch.so", AE_IFREG, NULL, false, pat->data, pat->len, false, false) ?:
		    add(a, "patch.so", AE_IFREG, NULL, false, pat->data, pat->len, false, false);
	else if (!strcmp(kind, "unknown"))
		r = add(a, "patch.so", AE_IFREG, NULL, false, pat->data, pat->len, false, false) ?:
		    add(a, "README", AE_IFREG, NULL, false, "hello\n", 6, false, false);
	else if (!strcmp(kind, "bomb"))
		r = add(a, "patch.so", AE_IFREG, NULL, false, NULL,
			STORE_MEMBER_MAX_BYTES + (8u << 20), true, zip);
	else
		r = hp_err(-EINVAL, "unknown hostile kind '%s'", kind);
	if (r == 0 && archive_write_close(a) != ARCHIVE_OK)
		r = hp_err(-EIO, "%s: %s", out, archive_error_string(a));
	if (r == 0 && zip && !strcmp(kind, "bomb")) {
		/* No central directory: the streamed entry's size is nowhere but in its bytes. */
		struct hp_buf f = HP_BUF_INIT;
		const char *cd;

		r = hp_read_file(out, STORE_BUNDLE_MAX_BYTES, &f);
		cd = r == 0 ? memmem(f.data, f.len, "PK\x01\x02", 4) : NULL;
		if (cd)
			r = hp_write_file_atomic(out, f.data, (size_t)(cd - f.data), 0644);
		hp_buf_release(&f);
	}
out:
	archive_write_free(a);
	bundle_release(&b);
	return r;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "tamper", no_argument, NULL, 'T' },
		{ NULL, 0, NULL, 0 },
	};
	struct mkb_opts o = { 0 };
	struct hp_buf patch = HP_BUF_INIT;
	const char *out = NULL, *kind = NULL;
	long count = 0;
	int c, r = 0;

	while ((c = getopt_long(argc, argv, "b:m:n:t:i:k:p:c:o:N:H:f:", lo, NULL)) != -1) {
		switch (c) {
		case 'b': o.baseline = optarg; break;
		case 'm': o.month = optarg; break;
		case 'n': o.name = optarg; break;
		case 't': o.target = optarg; break;
		case 'i': o.build_id = optarg; break;
		case 'k': o.key = optarg; break;
		case 'c': o.cve = optarg; break;
		case 'f': o.func = optarg; break;
		case 'o': out = optarg; break;
		case 'N': count = strtol(optarg, NULL, 10); break;
		case 'T': o.tamper = true; break;
		case 'H': kind = optarg; break;
		case 'p':
			r = hp_read_file(optarg, STORE_MEMBER_MAX_BYTES, &patch);
			if (r < 0) {
				fprintf(stderr, "hp-mkbundle: %s\n", hp_errmsg(r));
				return 1;
			}
			o.patch = patch.data;
			o.patch_len = patch.len;
			break;
		default:
			fprintf(stderr, "hp-mkbundle: bad option\n");
			return 2;
		}
	}
	if (!o.baseline || !o.month || !o.name || !out) {
		fprintf(stderr, "usage: hp-mkbundle -b B -m M -n NAME [-t T] [-i ID] [-k KEY] [-p FILE] [-c CVE] [-f \"FUNC OFF SIZE\"] [--tamper] [-N COUNT] -o OUT\n");
		return 2;
	}
	if (kind) {
		r = hostile(&o, kind, out);
	} else if (count <= 0) {
		r = mkb_write(&o, out);
	} else {
		const char *base = o.name;
		const char *base_t = o.target ? o.target : "sample-server";
		const char *base_id = o.build_id ? o.build_id : "3f2a9c0e";

		for (long i = 0; i < count && r == 0; i++) {
			char name[80], path[4096], target[160], bid[160];

			snprintf(name, sizeof(name), "%s-%ld", base, i);
			snprintf(path, sizeof(path), "%s/%s.tar", out, name);
			snprintf(target, sizeof(target), "%s-%ld", base_t, i);
			snprintf(bid, sizeof(bid), "%s%04lx", base_id, i & 0xffff);
			o.name = name;
			o.target = target;
			o.build_id = bid;
			r = mkb_write(&o, path);
		}
	}
	if (r < 0) {
		fprintf(stderr, "hp-mkbundle: %s\n", hp_errmsg(r));
		return 1;
	}
	hp_buf_release(&patch);
	return 0;
}

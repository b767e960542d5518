/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mkbundle.h"

int mkb_make(const struct mkb_opts *o, struct bundle *b)
{
	struct hp_manifest *m = hp_manifest_new();
	struct hp_buf fake = HP_BUF_INIT;
	char sha[65], fname[256] = "parse_header";
	unsigned long long foff = 0x1139, fsize = 0x5a;
	int r;

	memset(b, 0, sizeof(*b));
	if (!m)
		return -ENOMEM;
	if (o->func && sscanf(o->func, "%255s %llx %llx", fname, &foff, &fsize) != 3) {
		r = hp_err(-EINVAL, "'%s' is not NAME OFFSET SIZE", o->func);
		goto out;
	}
	if (o->patch) {
		r = hp_buf_add(&b->patch, o->patch, o->patch_len);
	} else {
		r = hp_buf_addf(&fake, "\177ELF fake patch object for %s/%s/%s %s\n", o->baseline,
				o->month, o->name, o->build_id ? o->build_id : "");
		if (r == 0)
			r = hp_buf_add(&b->patch, fake.data, fake.len);
	}
	if (r < 0)
		goto out;
	sign_sha256_hex(b->patch.data, b->patch.len, sha);
	if ((r = hp_manifest_set_str(&m->name, o->name)) < 0 ||
	    (r = hp_manifest_set_str(&m->baseline, o->baseline)) < 0 ||
	    (r = hp_manifest_set_str(&m->month, o->month)) < 0 ||
	    (r = hp_manifest_set_str(&m->target, o->target ? o->target : "sample-server")) < 0 ||
	    (r = hp_manifest_set_str(&m->build_id, o->build_id ? o->build_id : "3f2a9c0e")) < 0 ||
	    (r = hp_manifest_set_str(&m->patch_sha256, sha)) < 0 ||
	    (r = hp_manifest_set_str(&m->description, "test set")) < 0 ||
	    (r = hp_manifest_add_func(m, fname, NULL, foff, fsize, 0)) < 0)
		goto out;
	if (o->cve && (r = hp_manifest_add_cve(m, o->cve)) < 0)
		goto out;
	r = hp_manifest_format(m, &b->manifest);
	if (r < 0)
		goto out;
	if (o->key) {
		r = sign_manifest(o->key, b->manifest.data, b->manifest.len, &b->signature);
		if (r < 0)
			goto out;
	}
	if (o->tamper)
		b->patch.data[b->patch.len / 2] ^= 0x20;
out:
	if (r < 0)
		bundle_release(b);
	hp_buf_release(&fake);
	hp_manifest_free(m);
	return r;
}

int mkb_write(const struct mkb_opts *o, const char *path)
{
	struct bundle b;
	int r = mkb_make(o, &b);

	if (r < 0)
		return r;
	r = bundle_write(path, &b);
	bundle_release(&b);
	return r;
}

int mkb_store_setup(struct mkb_store *f, const char *dir_template,
		    const struct store_init_opts *io, bool empty)
{
	char d[128];

	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "%s", dir_template);
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->store, sizeof(f->store), "%s/store.git", f->dir);
	snprintf(d, sizeof(d), "%s/k1", f->dir);
	snprintf(f->key, sizeof(f->key), "%s/hotpatch.key", d);
	snprintf(f->pub, sizeof(f->pub), "%s/hotpatch.pub", d);
	if (store_key_generate(d) < 0)
		return -1;
	snprintf(d, sizeof(d), "%s/k2", f->dir);
	snprintf(f->key2, sizeof(f->key2), "%s/hotpatch.key", d);
	snprintf(f->pub2, sizeof(f->pub2), "%s/hotpatch.pub", d);
	if (store_key_generate(d) < 0 || store_init(f->store, io) < 0 ||
	    store_open(f->store, &f->st) < 0 || (!empty && store_key_trust(f->st, f->pub) != 0))
		return -1;
	return 0;
}

int mkb_store_teardown(struct mkb_store *f)
{
	char cmd[128];

	store_free(f->st);
	f->st = NULL;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	return system(cmd) == 0 ? 0 : -1;
}

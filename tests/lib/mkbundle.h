/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Test helper: make a bundle without hp build (which needs a real target):
 * a valid manifest for any bytes as patch.so, signed with sign_manifest,
 * written with bundle_write. Used by the unit tests, the hp-mkbundle tool
 * of the integration tests and the store benchmark.
 */
#ifndef HP_TEST_MKBUNDLE_H
#define HP_TEST_MKBUNDLE_H

#include <stdbool.h>
#include <stddef.h>

#include "store-int.h"

struct mkb_opts {
	const char *baseline;  /* "2026.01" */
	const char *month;     /* "2026-02" */
	const char *name;      /* set name */
	const char *target;    /* default "sample-server" */
	const char *build_id;  /* default "3f2a9c0e" */
	const char *key;       /* hotpatch.key, or NULL: unsigned */
	const void *patch;     /* patch.so bytes; NULL: a few bytes derived from name */
	size_t patch_len;
	const char *cve;       /* or NULL */
	bool tamper;           /* flip a byte of patch.so after signing */
	const char *func;      /* "NAME OFFSET SIZE" (hex), default "parse_header 0x1139 0x5a" */
};

/*
 * The unit tests' store fixture: a temp dir (from dir_template,
 * "/tmp/hp-test-NAME-XXXXXX") holding a store (io may be NULL) and two
 * keys, k1 trusted by the store (unless empty: a store without a commit),
 * k2 not. 0, or -1 (the test's setup fails).
 */
struct mkb_store {
	char dir[64];
	char store[128];
	char key[192], pub[192];   /* k1 */
	char key2[192], pub2[192]; /* k2 */
	struct store *st;
};
int mkb_store_setup(struct mkb_store *f, const char *dir_template,
		    const struct store_init_opts *io, bool empty);
/* Close the store and remove the dir: 0 or -1. */
int mkb_store_teardown(struct mkb_store *f);

/* The three members in b (bundle_release it). */
int mkb_make(const struct mkb_opts *o, struct bundle *b);
/* Same, written to path (format from the extension). */
int mkb_write(const struct mkb_opts *o, const char *path);

#endif

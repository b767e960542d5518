/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * store-int.h: what the files of libhpstore share and nothing outside it
 * sees. Owners: store.c/git.c/import.c/index.c (repository, import, lookup),
 * bundle.c (archives in and out), sign.c (keys and signatures), author.c
 * (hp build), snap.c (the read-only catalog view).
 */
#ifndef HP_STORE_INT_H
#define HP_STORE_INT_H

#include <git2.h>

#include "store.h"

/* Config keys in the bare repository's git config. */
#define STORE_CFG_ALLOW_UNSIGNED "hotpatch.allowunsigned"
#define STORE_CFG_BASELINE_MONTHS "hotpatch.baselinemonths"
/* Tree folder holding trusted public keys (<keyid>.pub); hidden from the catalog. */
#define STORE_KEYS_DIR "trusted-keys"

struct store {
	char *path;
	git_repository *repo;
	bool allow_unsigned;
	unsigned baseline_months; /* bit m-1 set: month m is a baseline month */
};

/* Make libgit2 ready (idempotent, thread-safe). */
int store_git_init(void);
/* Turn the last libgit2 error into hp_err(err, "what: git message"). */
int store_git_err(int err, const char *what);

/* ---- bundles (bundle.c) -------------------------------------------------- */

#define BUNDLE_MANIFEST "manifest"
#define BUNDLE_PATCH "patch.so"
#define BUNDLE_SIGNATURE "signature"

/* The three members of a bundle, read and bounds-checked (signature may be absent). */
struct bundle {
	struct hp_buf manifest;
	struct hp_buf patch;
	struct hp_buf signature; /* len 0 when unsigned */
};
void bundle_release(struct bundle *b);
/* Read an archive of any format libarchive knows; rejects hostile members. */
int bundle_read(const void *data, size_t len, struct bundle *ret);
/* Write one; the format follows path's extension (.tar .tar.gz .tgz .tar.xz .zip). */
int bundle_write(const char *path, const struct bundle *b);

/* ---- signatures (sign.c), ed25519 through libsodium --------------------- *
 * hotpatch.key:  "hotpatch-secret-key 1 ed25519 <128 hex: libsodium secret key>\n"
 * hotpatch.pub:  "hotpatch-public-key 1 ed25519 <64 hex>\n"
 * signature:     "hotpatch-signature 1 ed25519 <keyid: 16 hex> <128 hex>\n"
 * keyid: first 8 bytes of SHA-256 of the raw public key. The signed message is
 * the exact manifest bytes; the manifest binds patch.so by patch-sha256.
 */
#define SIGN_KEYID_HEX 16
int sign_generate(const char *dir);
int sign_manifest(const char *keyfile, const void *manifest, size_t len, struct hp_buf *ret_sig);
/* Parse a public key file's text; ret_keyid gets 16 hex + NUL. */
int sign_parse_pubkey(const char *text, size_t len, unsigned char ret_pk[32], char ret_keyid[17]);
/* Verify a signature text over manifest with one raw public key. -EKEYREJECTED if bad. */
int sign_verify(const char *sig, size_t sig_len, const void *manifest, size_t len,
		const unsigned char pk[32]);
/* The keyid named in a signature text. */
int sign_keyid(const char *sig, size_t sig_len, char ret_keyid[17]);
/* SHA-256 hex of data (65 bytes incl. NUL). */
void sign_sha256_hex(const void *data, size_t len, char ret_hex[65]);

#endif

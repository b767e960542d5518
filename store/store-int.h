/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * store-int.h: what the files of libhpstore share and nothing outside it
 * sees. Owners: store.c/git.c/import.c/index.c (repository, import, lookup),
 * withdraw.c (withdrawn sets, revoked keys), baseline.c (BASELINE files and
 * the baseline months), bundle.c (archives in and out), sign.c (keys and
 * signatures), remote.c (log, pull, push), snap.c (the read-only catalog
 * view), path.c (the default store path). Authoring (hp build) is
 * libhpauthor's (author/), which writes bundles through store.h.
 */
#ifndef HP_STORE_INT_H
#define HP_STORE_INT_H

#include <git2.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "store.h"

/* The largest key file (public or secret) and signature read. */
#define STORE_KEYFILE_MAX 4096
#define STORE_SIG_MAX 4096

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

#define STORE_DEFAULT_BASELINE_MONTHS "1,4,7,10"
/* Lock file inside the repository directory: imports and other writers serialise on it. */
#define STORE_LOCK_FILE "hotpatch.lock"
/* The branch a store commits to. */
#define STORE_BRANCH "refs/heads/main"

/* Make libgit2 ready (idempotent, thread-safe). */
int store_git_init(void);
/* Turn the last libgit2 error into hp_err(err, "what: git message"). */
int store_git_err(int err, const char *what);

/* "1,4,7,10" -> bit mask (bit m-1: month m); 0 when malformed. */
unsigned store_parse_months(const char *s);

/* ---- writing (git.c): under the lock, one commit at a time -------------- */

/* Take the store's write lock (flock, blocking); returns the lock fd. */
int store_lock(struct store *st, int *ret_fd);
void store_unlock(int fd);
/* HEAD's commit and its tree (ret_tree may be NULL), or NULLs for an empty store. */
int store_head_commit(struct store *st, git_commit **ret, git_tree **ret_tree);
/*
 * A change of the store (withdraw, revoke, trust): the write lock taken,
 * then HEAD read under it, so that the commit it makes has HEAD as parent.
 * store_change_end takes one begun or not (STORE_CHANGE_INIT).
 */
struct store_change {
	int fd;
	git_commit *head; /* NULL for an empty store */
	git_tree *tree;
};
#define STORE_CHANGE_INIT { -1, NULL, NULL }
int store_change_begin(struct store *st, struct store_change *ch);
void store_change_end(struct store_change *ch);
/* Whether tree (NULL: an empty store) holds path. */
bool store_tree_has(git_tree *tree, const char *path);
/* "2026.01/2026-02/name" into its parts, each checked; false when it is not a set id. */
bool store_split_set_id(const char *id, char ret_b[HP_BASELINE_SIZE], char ret_m[HP_MONTH_SIZE],
			char ret_n[HP_SET_NAME_SIZE]);
/*
 * Apply updates to parent's tree (or to an empty tree) and commit on HEAD's
 * branch with message. Moves HEAD only if parent is still its tip.
 */
int store_commit_updates(struct store *st, git_commit *parent, const git_tree_update *updates,
			 size_t n, const char *message, git_oid *ret_oid);
/* Pack the loose objects (lock held); the count packed. */
int store_pack_locked(struct store *st);
/* Whether enough loose objects piled up for an automatic pack. */
#define STORE_AUTOPACK_SAMPLE 27
bool store_pack_due(struct store *st);
/* A blob at path in tree: contents (NUL-terminated), -ENOENT when absent. */
int store_tree_read(git_repository *repo, git_tree *tree, const char *path, size_t max,
		    struct hp_buf *ret);

/* ---- baselines (baseline.c) --------------------------------------------- *
 * <baseline>/BASELINE (docs/store.md):
 *   hotpatch-baseline 1
 *   baseline 2026.01
 *   kind planned|unplanned
 *   created 2026-02-10T12:00:00Z
 *   target NAME BUILD-ID        (one line per target)
 */
#define STORE_BASELINE_FILE "BASELINE"
#define STORE_BASELINE_MAX_BYTES (4u << 20)
#define STORE_BASELINE_MAX_TARGETS 16384

struct store_baseline_target {
	char *name;
	char *build_id;
};
struct store_baseline {
	char *baseline;
	bool planned;
	char *created;
	struct store_baseline_target *targets;
	size_t n_targets;
};
int store_baseline_parse(const char *text, size_t len, struct store_baseline *ret);
int store_baseline_format(const struct store_baseline *b, struct hp_buf *out);
int store_baseline_add_target(struct store_baseline *b, const char *name, const char *build_id);
const struct store_baseline_target *store_baseline_find(const struct store_baseline *b,
							 const char *name);
void store_baseline_release(struct store_baseline *b);
/* Whether a baseline's month is one of mask's baseline months. */
bool store_baseline_planned(unsigned mask, const char *baseline);
/*
 * Whether month lies in baseline's window: the months after it up to, not
 * including, the next baseline month (planned), or the next two (unplanned).
 */
bool store_month_in_window(unsigned mask, const char *baseline, const char *month);

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
/* A key id as text and its NUL. */
#define SIGN_KEYID_SIZE (SIGN_KEYID_HEX + 1)
/* A SHA-256 as hex (32 bytes, 64 digits) and its NUL. */
#define SIGN_SHA256_HEX_SIZE HP_SHA256_HEX_SIZE
int sign_generate(const char *dir);
int sign_manifest(const char *keyfile, const void *manifest, size_t len, struct hp_buf *ret_sig);
/* Parse a public key file's text; ret_keyid gets 16 hex + NUL. */
int sign_parse_pubkey(const char *text, size_t len, unsigned char ret_pk[32], char ret_keyid[SIGN_KEYID_SIZE]);
/* Verify a signature text over manifest with one raw public key. -EKEYREJECTED if bad. */
int sign_verify(const char *sig, size_t sig_len, const void *manifest, size_t len,
		const unsigned char pk[32]);
/* The keyid named in a signature text. */
int sign_keyid(const char *sig, size_t sig_len, char ret_keyid[SIGN_KEYID_SIZE]);
/* SHA-256 hex of data (65 bytes incl. NUL). */
void sign_sha256_hex(const void *data, size_t len, char ret_hex[SIGN_SHA256_HEX_SIZE]);

/* ---- signature check against the trusted keys of a tree (import.c) ----- */

/*
 * Verify sig over manifest with the key it names, if tree's trusted-keys/
 * holds it. No signature: fine when allow_unsigned (ret_keyid ""), else
 * -EKEYREJECTED, as for an untrusted key or a bad signature.
 */
int store_verify_signature(struct store *st, git_tree *tree, bool allow_unsigned,
			   const struct hp_buf *manifest, const struct hp_buf *sig,
			   char ret_keyid[SIGN_KEYID_SIZE]);

/* ---- withdrawn sets and revoked keys (withdraw.c) ------------------------ */

/* Tree folders, hidden from the catalog as trusted-keys/ is. */
#define STORE_WITHDRAWN_DIR "withdrawn"  /* withdrawn/<set id>/{members..., reason} */
#define STORE_WITHDRAWN_REASON "reason"
#define STORE_REVOKED_DIR "revoked-keys" /* <keyid>.pub moved out of trusted-keys/ */
#define STORE_WD_PATH_MAX 320

/* Tree updates collected for one commit (paths owned here). */
struct wd_moves {
	git_tree_update *up;
	char (*paths)[STORE_WD_PATH_MAX];
	size_t n, cap;
};
void wd_moves_release(struct wd_moves *mv);
/* One blob update (oid NULL for a removal); the path is copied. */
int wd_moves_add(struct wd_moves *mv, git_tree_update_t action, const git_oid *oid,
		 const char *path);
/* The updates with their paths set, ready for store_commit_updates(). */
const git_tree_update *wd_moves_updates(struct wd_moves *mv);
/* Add the updates that move set_id of tree to withdrawn/ with reason. -ENOENT: no such set. */
int store_withdraw_moves(struct store *st, git_tree *tree, const char *set_id, const char *reason,
			 struct wd_moves *mv);
/* Whether tree holds withdrawn/<set_id>, or revoked-keys/<keyid>.pub. */
bool store_tree_has_withdrawn(git_tree *tree, const char *set_id);
bool store_tree_key_revoked(git_tree *tree, const char *keyid);

/* ---- snapshots (snap.c) and their index (index.c) ----------------------- */

struct snap_ent {
	char *name;
	git_oid oid;
	enum store_node_type type; /* STORE_NODE_DIR or STORE_NODE_FILE */
	uint64_t size; /* SNAP_SIZE_UNKNOWN until first asked; atomic */
};
#define SNAP_SIZE_UNKNOWN UINT64_MAX

/* One directory of the pinned tree, loaded once, immutable afterwards. */
struct snap_dir {
	char *path; /* "" for the root */
	uint64_t hash;
	struct snap_dir *next; /* hash chain */
	struct snap_ent *ents; /* sorted by name */
	size_t n;
};

struct snap_blob {
	git_oid oid;
	void *data;
	size_t len;
};

#define SNAP_BLOB_SLOTS 64
#define SNAP_BLOB_CACHE_BYTES (16u << 20)
#define SNAP_BLOB_CACHE_MAX_ONE (1u << 20)

struct snap_index;

/*
 * Sets verified in this snapshot (store_get_set), kept whole: a commit's
 * tree never changes, nor do the keys it trusts, so a set read, parsed and
 * verified once is that set for the snapshot's life. Shared with callers
 * by reference (store_patchset_free lets go of one).
 */
#define SNAP_SET_SLOTS 32

struct store_snap {
	git_repository *repo;    /* its own handle: readers never touch the store's */
	git_odb *odb;
	char commit[HP_OID_HEX_SIZE];         /* "" for an empty store */
	git_oid root_oid;
	bool has_root;
	int64_t mtime;
	bool allow_unsigned;
	char latest[24];         /* "BASELINE/MONTH" or "" */

	pthread_mutex_t git_mu;  /* libgit2 calls on repo */
	pthread_rwlock_t mu;     /* dirs, blob cache */
	struct snap_dir **buckets;
	size_t n_buckets, n_dirs;
	struct snap_blob blobs[SNAP_BLOB_SLOTS];
	size_t blob_next, blob_bytes;

	pthread_mutex_t index_mu;
	struct snap_index *index; /* built on first lookup */

	pthread_mutex_t set_mu;   /* sets, set_next */
	struct store_patchset *sets[SNAP_SET_SLOTS];
	size_t set_next;          /* the slot a new set takes (the oldest) */
};

/* The directory at path (normalised, no leading slash): cached. */
int snap_get_dir(struct store_snap *snap, const char *path, const struct snap_dir **ret);
const struct snap_ent *snap_dir_find(const struct snap_dir *d, const char *name);
/* A blob's bytes (a copy, malloc'd; NUL-terminated). */
int snap_read_oid(struct store_snap *snap, const git_oid *oid, size_t max, void **ret_data,
		  size_t *ret_len);
/* A file at path, hidden ones (trusted-keys/) included. */
int snap_read_raw(struct store_snap *snap, const char *path, size_t max, void **ret_data,
		  size_t *ret_len);
void snap_index_free(struct snap_index *ix);

#endif

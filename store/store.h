/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * store.h: the patch catalog. A bare git repository (libgit2) holding
 * <baseline>/BASELINE and <baseline>/<month>/<set>/{manifest,patch.so,signature};
 * bundles (libarchive) in and out; ed25519 signatures (libsodium); the
 * lookup the engine needs; a read-only snapshot view of the tree for
 * hotpatchfs. docs/store.md, docs/contract.md.
 *
 * Errors: 0 or a negative errno, with a message in the error slot
 * (hp_errmsg()). Thread safety: a struct store may be used by one thread at
 * a time; a struct store_snap is immutable once opened and may be shared by
 * readers on many threads (libgit2 object lookups are thread-safe).
 */
#ifndef HP_STORE_H
#define HP_STORE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hp-common.h"

#define STORE_DEFAULT_PATH "/var/lib/hotpatch/store.git"

/* Bundle limits: no archive bomb gets through. */
#define STORE_BUNDLE_MAX_BYTES (64u << 20)   /* the archive file itself */
#define STORE_MEMBER_MAX_BYTES (32u << 20)   /* one member, uncompressed */
#define STORE_TOTAL_MAX_BYTES (48u << 20)    /* all members, uncompressed */

struct store;
struct store_snap;

/* --HP_STORE / $HP_STORE / STORE_DEFAULT_PATH. */
const char *store_default_path(void);

struct store_init_opts {
	bool allow_unsigned;
	/* Baseline months, e.g. "1,4,7,10" (the default when NULL). */
	const char *baseline_months;
};

int store_init(const char *path, const struct store_init_opts *opts);
int store_open(const char *path, struct store **ret);
void store_free(struct store *st);
const char *store_path(const struct store *st);

/* ---- import ------------------------------------------------------------ */

struct store_import_opts {
	bool force;   /* accept a month outside its baseline's window */
	bool replace; /* withdraw the set the target already has in that month */
};

/*
 * Import one bundle: verify, then one commit "import BASELINE/MONTH/NAME".
 * All or nothing: on any failure HEAD does not move. Serialised across
 * processes by a lock in the repository. ret_set_id may be NULL.
 * Returns 0 after a new commit, 1 when the byte-identical set was already
 * there (no commit), -EEXIST when the set id is there with other contents,
 * or when the target already has another set in that month (a month holds
 * one cumulative set per target) unless opts->replace: that set is then
 * withdrawn in the same commit ("replaced by ..."). A set id that was
 * withdrawn is never reused (-EEXIST).
 */
int store_import(struct store *st, const char *bundle_path,
		 const struct store_import_opts *opts, char **ret_set_id);
int store_import_buf(struct store *st, const void *data, size_t len,
		     const struct store_import_opts *opts, char **ret_set_id);

/* ---- keys and signatures ------------------------------------------------ */

/* Write DIR/hotpatch.key (0600) and DIR/hotpatch.pub. */
int store_key_generate(const char *dir);
/* Add a public key file to the store's trusted keys (one commit); 1: already trusted. */
int store_key_trust(struct store *st, const char *pubkey_path);

/*
 * Revoke a trusted key (KEYID or a public key file): one commit moving it
 * to revoked-keys/ and withdrawing every set it signed (their count in
 * *ret_n_sets, may be NULL). 1: already revoked; -ENOENT: not trusted.
 * Import and trust refuse a revoked key afterwards (-EKEYREVOKED).
 */
int store_key_revoke(struct store *st, const char *key, const char *reason, size_t *ret_n_sets);

/* ---- withdrawing -------------------------------------------------------- */

/*
 * Withdraw a set (one commit "withdraw ID" with the reason): it leaves the
 * catalog and the lookup, and stays in the tree under withdrawn/ with its
 * reason. 1: already withdrawn; -ENOENT: no such set.
 */
int store_withdraw(struct store *st, const char *set_id, const char *reason);
/*
 * The manifest of a set, published or withdrawn, unverified: for what a
 * status shows (functions, CVEs), never for an apply. -ENOENT: no such set.
 */
int store_set_manifest(struct store_snap *snap, const char *set_id, struct hp_manifest **ret);
/* 0 (and the reason) when the snapshot holds set_id as withdrawn; -ENOENT else. */
int store_withdrawn(struct store_snap *snap, const char *set_id, char *ret_reason, size_t size);

/* ---- history and remotes ------------------------------------------------ */

struct store_log_entry {
	char id[HP_OID_HEX_SIZE];
	int64_t time;        /* commit time, seconds since the epoch */
	const char *summary; /* first line of the message */
	const char *message; /* whole message */
};
/* Commits from HEAD back, newest first; a non-zero return of cb stops and is returned. */
int store_log(struct store *st, int (*cb)(void *ctx, const struct store_log_entry *e), void *ctx);

/*
 * Fetch REMOTE's branch (a plain git URL or path) and fast-forward ours to
 * it: 0 when moved, 1 when already up to date or ahead; -EINVAL (with a
 * message) when the histories diverged: nothing changes then.
 */
int store_pull(struct store *st, const char *remote);
/* Push our branch to REMOTE; refused by the remote unless a fast-forward. */
int store_push(struct store *st, const char *remote);

/*
 * Pack the loose objects into one pack (imports do it by themselves once
 * about 6700 piled up, as git gc --auto would). Returns the count packed.
 */
int store_pack(struct store *st);

/* ---- what the authoring tool (libhpauthor, author.h) writes with -------- */

/*
 * Write a bundle at path, its format from the extension (.tar, .tar.gz,
 * .tgz, .tar.xz, .zip); signature may be NULL or empty (unsigned). Nothing
 * is left at path on failure.
 */
int store_bundle_write(const char *path, const struct hp_buf *manifest, const struct hp_buf *patch,
		       const struct hp_buf *signature);
/* Sign manifest's exact bytes with a hotpatch.key file (hp key generate). */
int store_sign_manifest(const char *keyfile, const void *manifest, size_t len,
			struct hp_buf *ret_sig);
/* SHA-256 of data as 64 hex digits and a NUL (a manifest's patch-sha256). */
void store_sha256_hex(const void *data, size_t len, char ret_hex[HP_SHA256_HEX_SIZE]);

/* ---- queries ----------------------------------------------------------- */

/* The commit id of HEAD (40 hex + NUL); cheap; "" for an empty store. */
int store_head(struct store *st, char ret_oid[HP_OID_HEX_SIZE]);
/*
 * Watch, on the inotify instance fd, every directory whose entries HEAD's
 * commit id is read from: the repository's own (HEAD, packed-refs) and that
 * of the branch HEAD names (its loose ref). A change of HEAD is then an
 * event on fd, made by the kernel before the change's system call returns.
 * -ENOTSUP where that does not hold or is not known to: HEAD not a branch of
 * refs/, a repository sharing another's refs (a worktree), or one on a
 * filesystem not known to be local (a network one's other clients make no
 * event here). Other negative errnos: inotify_add_watch's.
 */
int store_head_watch(struct store *st, int fd);

/* Open an immutable view of the store at HEAD. */
int store_snap_open(struct store *st, struct store_snap **ret);
void store_snap_free(struct store_snap *snap);
const char *store_snap_commit(const struct store_snap *snap);

/*
 * The catalog tree as hotpatchfs shows it. Paths are relative to the
 * catalog root, "" being the root, without leading slash: "2026.01",
 * "2026.01/BASELINE", "2026.01/2026-02/fix-1/manifest", "latest" (a symlink
 * whose target is "BASELINE/MONTH" of the newest month, absent when the
 * store is empty). Internal files of the store (trusted keys, config) are
 * not shown.
 */
enum store_node_type { STORE_NODE_DIR, STORE_NODE_FILE, STORE_NODE_LINK };
struct store_node {
	enum store_node_type type;
	uint64_t size;  /* bytes for a file, target length for a link */
	int64_t mtime;  /* seconds: time of the snapshot's commit */
};

int store_snap_stat(struct store_snap *snap, const char *path, struct store_node *ret);
/* Calls cb for each entry of a directory; a non-zero return of cb stops and is returned. */
int store_snap_readdir(struct store_snap *snap, const char *path,
		       int (*cb)(void *ctx, const char *name, const struct store_node *node),
		       void *ctx);
/* Whole contents of a file (caller frees *ret_data). */
int store_snap_read(struct store_snap *snap, const char *path, void **ret_data, size_t *ret_len);
/* 0, the target in buf NUL-terminated (truncated to size - 1); -EINVAL for a non-link. */
int store_snap_readlink(struct store_snap *snap, const char *path, char *buf, size_t size);

/* ---- lookup for the engine --------------------------------------------- */

struct store_patchset {
	char *set_id;   /* "BASELINE/MONTH/NAME" */
	struct hp_manifest *manifest;
	void *so;       /* patch object bytes, verified against the signature */
	size_t so_len;
	bool signed_ok; /* signature verified against a trusted key */
	char *signer;   /* keyid of that key, or NULL when unsigned */
};

/*
 * The patch set for a target build-id: month NULL for the newest month
 * published for it, else exactly that month. -ENOENT when nothing is
 * published. The signature (and patch-sha256) is verified in each
 * snapshot: -EKEYREJECTED if it does not verify. Fast: an index built once
 * per commit, not a tree walk per query, and a set verified in the
 * snapshot before (the snapshot keeps its last 32) is the same set again,
 * not read, parsed and verified again. The set is shared: read it, never
 * change it.
 */
int store_lookup(struct store_snap *snap, const char *build_id, const char *month,
		 struct store_patchset **ret);
/* Let go of a set store_lookup or store_get_set gave. */
void store_patchset_free(struct store_patchset *ps);

/* A patch set by id "BASELINE/MONTH/NAME", verified as store_lookup does. */
int store_get_set(struct store_snap *snap, const char *set_id, struct store_patchset **ret);

/* One patch set as the index knows it (strings owned by the snapshot). */
struct store_set_info {
	const char *set_id;
	const char *baseline;
	const char *month;
	const char *name;
	const char *target;
	const char *build_id;
};
/*
 * The sets under baseline (NULL: all) and month (NULL: all of the
 * baseline), ordered by baseline, month and name. -ENOENT when the
 * baseline (or month) does not exist. A non-zero return of cb stops.
 */
int store_list_sets(struct store_snap *snap, const char *baseline, const char *month,
		    int (*cb)(void *ctx, const struct store_set_info *si), void *ctx);

/* What the store knows about a build-id, for process states. */
struct store_target_info {
	char *name;            /* target name (file name of BIN) */
	char *baseline;        /* baseline that covers this build */
	char *newest_month;    /* newest month with a set for it, or NULL */
	char *newest_set;      /* the set store_lookup() picks for it, or NULL */
	char *newer_baseline;  /* a later baseline covering the same target name, or NULL */
};
/* -ENOENT for a build-id no baseline covers. */
int store_target_info(struct store_snap *snap, const char *build_id, struct store_target_info *ret);
void store_target_info_release(struct store_target_info *ti);
/* Whether a target name (file name) is covered by any baseline. */
bool store_knows_target_name(struct store_snap *snap, const char *name);

#endif

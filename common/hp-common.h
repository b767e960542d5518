/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hp-common.h: what every library (store/, apply/, ctl/, author/) and both
 * programs (fs/, cli/) share: the per-thread error slot, a growable buffer, daemon
 * and CLI logging, and the patch-set manifest (the contract between the
 * store, which writes and verifies it, and the engine, which reads it).
 *
 * Conventions (docs/contract.md, HACKING.md):
 *  - functions return 0 (or a count) on success and a negative errno on
 *    failure; the errno travels unchanged to the FUSE reply or exit status;
 *  - where the errno is too coarse, library code leaves a one-line human
 *    message in the per-thread error slot (hp_err()); it never prints;
 *  - output parameters come last and are named ret_*; they are written
 *    only on success;
 *  - cleanup through one `goto out` exit path per function;
 *  - destructors (x_free, x_release) accept NULL.
 */
#ifndef HP_COMMON_H
#define HP_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HP_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* ---- error slot -------------------------------------------------------- */

#define HP_ERRMSG_MAX 512

/*
 * Record a message for the calling thread and return err (a negative
 * errno) so that error paths read `return hp_err(-ENOENT, "no set %s", s);`.
 * The message is tied to err: hp_errmsg() gives it for that errno only.
 */
int hp_err(int err, const char *fmt, ...) HP_PRINTF(2, 3);
/* Prefix the message of err with more context: "apply 42: " + old (or
 * + strerror when the slot explains another error). */
int hp_err_prefix(int err, const char *fmt, ...) HP_PRINTF(2, 3);
/* The same for a lower error `cause` reported as err (an unreadable trusted
 * key is a rejected signature): the message of cause, prefixed, now explains err. */
int hp_err_prefix_as(int err, int cause, const char *fmt, ...) HP_PRINTF(3, 4);
/* The message set for err during this operation; strerror(-err) when the
 * slot is empty or explains another errno. Never a stale message. */
const char *hp_errmsg(int err);
/* Whether a message is set (not cleared since); for tests, not for control flow. */
bool hp_err_isset(void);
/* Empty the slot: public entry points do it first (see common/error.c). */
void hp_err_clear(void);

/* ---- buffer ------------------------------------------------------------ */

/* A growable byte buffer, always NUL-terminated (git's strbuf). */
struct hp_buf {
	char *data;
	size_t len;
	size_t cap;
};
#define HP_BUF_INIT { NULL, 0, 0 }

/*
 * An intrusive doubly linked list, as systemd's LIST_PREPEND/LIST_REMOVE:
 * each item has prev and next pointers, the list is a pointer to its
 * first item. The caller holds whatever lock guards it.
 */
#define HP_LIST_PREPEND(head, item) \
	do { \
		(item)->prev = NULL; \
		(item)->next = (head); \
		if (head) \
			(head)->prev = (item); \
		(head) = (item); \
	} while (0)

#define HP_LIST_REMOVE(head, item) \
	do { \
		if ((item)->prev) \
			(item)->prev->next = (item)->next; \
		else \
			(head) = (item)->next; \
		if ((item)->next) \
			(item)->next->prev = (item)->prev; \
		(item)->prev = (item)->next = NULL; \
	} while (0)

void hp_buf_init(struct hp_buf *b);
void hp_buf_release(struct hp_buf *b);
int hp_buf_grow(struct hp_buf *b, size_t extra);
int hp_buf_add(struct hp_buf *b, const void *data, size_t len);
int hp_buf_adds(struct hp_buf *b, const char *s);
int hp_buf_addf(struct hp_buf *b, const char *fmt, ...) HP_PRINTF(2, 3);
int hp_buf_vaddf(struct hp_buf *b, const char *fmt, va_list ap) HP_PRINTF(2, 0);
void hp_buf_reset(struct hp_buf *b);
/* Append s as a JSON string literal, quotes and escapes included (NULL as ""). */
int hp_buf_add_json_str(struct hp_buf *b, const char *s);
/* Hand the data over to the caller (free() it); the buffer is reset. */
char *hp_buf_detach(struct hp_buf *b, size_t *ret_len);

/* Read a whole file, at most max bytes (-EFBIG beyond). */
int hp_read_file(const char *path, size_t max, struct hp_buf *ret);
/* The same, the descriptor it was read from left open in *ret_fd (-1 on failure). */
int hp_read_file_keep(const char *path, size_t max, struct hp_buf *ret, int *ret_fd);
/* Write a file atomically (temp file in the same directory + rename). */
int hp_write_file_atomic(const char *path, const void *data, size_t len, unsigned mode);

/*
 * Set (on) or clear the immutable flag of a directory (chattr +i): a mount
 * point so sealed refuses new files (EPERM) while nothing is mounted on it.
 * 0 when it already was so; -EPERM without CAP_LINUX_IMMUTABLE, -ENOTTY or
 * -EOPNOTSUPP on a filesystem without the flag.
 */
int hp_dir_seal(const char *dir, bool on);

/* ---- logging (programs only; libraries use the error slot) ------------- */

enum hp_log_level { HP_LOG_ERR, HP_LOG_WARN, HP_LOG_INFO, HP_LOG_DEBUG };

/* Program name used as message prefix; level from HP_DEBUG=1 otherwise INFO. */
void hp_log_init(const char *progname);
void hp_log(enum hp_log_level lvl, const char *fmt, ...) HP_PRINTF(2, 3);

/* ---- sizes of the identifiers every part passes around ----------------- */

/* A GNU build-id as lowercase hex: at most 64 bytes, 128 digits, and the NUL. */
#define HP_BUILD_ID_HEX_SIZE 129
/* "BASELINE/MONTH/NAME": 7 + 1 + 7 + 1 + a 64-character name + NUL is 81;
 * twice that leaves room for the formats of later manifest versions. */
#define HP_SET_ID_SIZE 160
/* A git commit id as hex (SHA-1, 40 digits) and the NUL. */
#define HP_OID_HEX_SIZE 41
/* A SHA-256 digest as hex (64 digits) and the NUL. */
#define HP_SHA256_HEX_SIZE 65
/* "2026.01" (a baseline) and "2026-02" (a month), and the NUL. */
#define HP_BASELINE_SIZE 8
#define HP_MONTH_SIZE 8
/* A patch set's name: 64 characters at most (hp_valid_setname) and the NUL. */
#define HP_SET_NAME_SIZE 65
/* A process's name as /proc shows it: the kernel's TASK_COMM_LEN (16), and
 * one more so that a 16-byte name from elsewhere is not cut. */
#define HP_COMM_SIZE 17

/* ---- small validators shared by store and engine ----------------------- */

/* "2026.01": year and month of a baseline. */
bool hp_valid_baseline(const char *s);
/* "2026-02": a hotpatch month. */
bool hp_valid_month(const char *s);
/* Patch-set name: [A-Za-z0-9][A-Za-z0-9._+-]{0,63}. */
bool hp_valid_setname(const char *s);
/* Build-id: lowercase hex, 2..128 digits, even count. */
bool hp_valid_build_id(const char *s);
/* C identifier, optionally followed by "@file" (file: [A-Za-z0-9._/+-]). */
bool hp_valid_symname(const char *s);

/* Monotonic clock in microseconds. */
uint64_t hp_now_us(void);

/* ---- manifest ---------------------------------------------------------- */

/*
 * The manifest of one patch set: a small, versioned, line-oriented text
 * (docs/manifest.md). The engine trusts nothing in it beyond what the
 * parser checked: names and numbers are syntactically valid, counts and
 * lengths are within the limits below.
 */
#define HP_MANIFEST_VERSION 1
#define HP_MANIFEST_MAX_BYTES (1u << 20)
#define HP_MANIFEST_MAX_FUNCS 4096
#define HP_MANIFEST_MAX_SYMS 65536
#define HP_MANIFEST_MAX_CVES 256

/* The function may be executing while it is switched (a main loop). */
#define HP_FUNC_ACTIVE_OK 0x1u

struct hp_manifest_func {
	char *name;     /* symbol name in BIN and in the patch object */
	char *file;     /* source file disambiguating a local name, or NULL */
	uint64_t offset; /* st_value in BIN: runtime address = load bias + offset */
	uint64_t size;   /* st_size in BIN, >= 5 */
	unsigned flags;  /* HP_FUNC_* */
	char *why;       /* why it is replaced (hp build --diff), or NULL */
};

struct hp_manifest_sym {
	char *name;      /* symbol of BIN the patch object refers to */
	char *file;      /* or NULL */
	uint64_t offset; /* st_value in BIN */
};

struct hp_manifest {
	unsigned version;
	char *name;        /* patch-set name */
	char *baseline;    /* "2026.01" */
	char *month;       /* "2026-02" */
	char *target;      /* file name of BIN, e.g. "sample-server" */
	char *build_id;    /* BIN's GNU build-id, lowercase hex */
	char *patch_sha256; /* sha256 of patch.so, lowercase hex */
	char *description; /* may be NULL */
	char *author;      /* may be NULL */
	char *created;     /* ISO 8601 UTC, may be NULL */
	char **cves;
	size_t n_cves;
	struct hp_manifest_func *funcs;
	size_t n_funcs;
	struct hp_manifest_sym *syms;
	size_t n_syms;
};

/* Parse text (need not be NUL-terminated). -EINVAL with a message naming the line. */
int hp_manifest_parse(const char *text, size_t len, struct hp_manifest **ret);
/* Canonical text form; parse(format(m)) == m. */
int hp_manifest_format(const struct hp_manifest *m, struct hp_buf *out);
/* Check the fields a complete manifest must have (name, baseline, ...). */
int hp_manifest_validate(const struct hp_manifest *m);
void hp_manifest_free(struct hp_manifest *m);

/* Building a manifest (hp build): an empty one with version set. */
struct hp_manifest *hp_manifest_new(void);
/* Replace *field (one of m's strings) by a copy of value (NULL clears). */
int hp_manifest_set_str(char **field, const char *value);
int hp_manifest_add_func(struct hp_manifest *m, const char *name, const char *file,
			 uint64_t offset, uint64_t size, unsigned flags);
int hp_manifest_add_sym(struct hp_manifest *m, const char *name, const char *file,
			uint64_t offset);
int hp_manifest_add_cve(struct hp_manifest *m, const char *cve);
/* "BASELINE/MONTH/NAME", malloc'd. */
char *hp_manifest_set_id(const struct hp_manifest *m);

/* Record why function name is replaced (a "why" line); -ENOENT when it is not listed. */
int hp_manifest_set_why(struct hp_manifest *m, const char *name, const char *text);
const struct hp_manifest_func *hp_manifest_find_func(const struct hp_manifest *m, const char *name);

#endif

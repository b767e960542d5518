/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * author.h: libhpauthor, patch-set authoring (hp build; docs/authoring.md).
 * A build tool, not part of the catalog: it compiles the author's C (or
 * takes a prebuilt patch object), checks it against the baseline binary
 * BIN through libelf, writes the manifest, signs it and writes the bundle
 * through libhpstore's bundle and signature writers.
 *
 * Errors: 0 or a negative errno, with a one-line message in the error slot
 * (hp_errmsg()); what the author should know but is no error goes to the
 * note callback. Nothing here prints.
 */
#ifndef HP_AUTHOR_H
#define HP_AUTHOR_H

#include <signal.h>
#include <stdbool.h>

#include "hp-common.h"

struct author_opts {
	const char *target;      /* BIN: unstripped, or stripped + debug_file */
	const char *debug_file;  /* or NULL */
	const char *baseline;
	const char *month;
	const char *name;
	const char *sign_key;    /* path to hotpatch.key, or NULL: unsigned */
	const char *description; /* optional */
	const char *author;      /* optional */
	const char *const *cves; /* optional, NULL-terminated */
	const char *const *active_ok; /* function names flagged active-ok, NULL-terminated */
	const char *const *sources;   /* .c files, or one prebuilt .so; NULL-terminated */
	/*
	 * From the upstream fix instead of sources (docs/authoring.md): the
	 * target's source tree at the baseline, the unified diffs applied to it
	 * as patch -p1 would, and the compile commands of its translation units
	 * (NULL: source_dir/compile_commands.json). force: a rebuild that
	 * differs from BIN is a warning, not a refusal.
	 */
	const char *source_dir;
	const char *const *diffs;     /* NULL-terminated */
	const char *compile_commands;
	bool force;
	/* Hand-written mode: a replaced function with inlined copies in BIN is a note, not a refusal. */
	bool allow_inlined;
	const char *output;      /* bundle path; format from extension (.tar, .tar.gz, .tar.xz, .zip) */
	const char *cc;          /* compiler, NULL: $CC or "cc" */
	const char *const *cflags; /* extra compiler flags, NULL-terminated, may be NULL */
	/* "NAME@FILE": which of several local NAMEs of BIN is meant; NULL-terminated, may be NULL. */
	const char *const *picks;
	/*
	 * Told what the author should know but is no error: compiler warnings
	 * (and the compiler's output when it fails), weak symbols left
	 * unresolved, a patch variable that shadows one of BIN. May be NULL.
	 */
	void (*note)(void *ctx, const char *msg);
	void *note_ctx;
	/*
	 * Set non-zero (from a signal handler) to stop: the compiler is
	 * terminated, the build fails with -ECANCELED, nothing is written.
	 * May be NULL.
	 */
	const volatile sig_atomic_t *cancel;
};

/*
 * Compile (or take the prebuilt .so), check it against BIN, write the
 * manifest, sign it when asked, write the bundle at opts->output (nothing is
 * left there on failure); hand back the manifest written (ret_manifest may
 * be NULL). Errors, each with a one-line message:
 *   -EINVAL   bad option (baseline, month, name, CVE, pick, output format),
 *             or the sources do not compile
 *   -ENOENT   a function or symbol the patch needs is not in BIN (or its libraries)
 *   -ENOEXEC  BIN has no build-id, a debug file of another build, a function
 *             too small for the jump, a patch object that does not fit BIN
 *   -ENOTUNIQ a local name is ambiguous in BIN (--pick NAME@FILE)
 *   -ENOTSUP  thread-local storage in the patch; from a diff: a change that
 *             cannot be hot-swapped (data, layout, new variable, LTO)
 *   -EEXIST   hand-written: a replaced function has inlined copies in BIN
 *             (allow_inlined to go on)
 *   -EBADMSG  from a diff: the rebuilt original is not BIN (force to go on)
 *   -ECANCELED opts->cancel was set
 */
int author_build(const struct author_opts *opts, struct hp_manifest **ret_manifest);

#endif

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hp: the command-line tool. One file per command group (cmd-*.c). */
#ifndef HP_CLI_H
#define HP_CLI_H

#include <stdbool.h>

#include "hp-common.h"

/* Options every command takes, before or after its arguments. */
struct hp_global {
	const char *store; /* --store DIR, else $HP_STORE, else the default */
	bool json;         /* --json */
};

/*
 * A command gets its own arguments (argv[0] is the command name) with the
 * global options already removed. It returns an exit status; on error it
 * has printed one line to stderr (hp_fail()).
 */
typedef int (*hp_cmd_fn)(const struct hp_global *g, int argc, char **argv);

struct hp_cmd {
	const char *name;
	hp_cmd_fn fn;
	const char *usage;
	const char *help; /* what --help adds to the usage; NULL: the command prints its own */
};

/* --json was given: errors go to stdout as JSON objects too. */
extern bool hp_json_mode;
/* {"command":CMD,"result":"EEXIST","error":MSG} on stdout. */
void hp_json_error(const char *cmd, int err, const char *msg);

/* Print "hp CMD: MESSAGE" for a failed library call and return exit status 1. */
int hp_fail(const char *cmd, int err);
/* Print "hp: usage: ..." (and its JSON under --json) and return exit status 2. */
int hp_usage(const char *usage);
/*
 * A bad argument: "hp CMD: MESSAGE" on stderr (CMD NULL: "hp: MESSAGE"),
 * {"command":CMD,"result":"usage","error":MESSAGE} on stdout under --json;
 * returns exit status 2.
 */
int hp_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*
 * A command's --help (cmd; NULL: hp's own): text on stdout, or under --json
 * {"command":CMD,"result":"help","usage":TEXT}; returns exit status 0.
 */
int hp_help(const char *cmd, const char *text);
/* JSON string with escaping, to stdout. */
void hp_json_str(const char *s);

/* Command implementations (cmd-*.c). */
int cmd_build(const struct hp_global *g, int argc, char **argv);
int cmd_import(const struct hp_global *g, int argc, char **argv);
int cmd_list(const struct hp_global *g, int argc, char **argv);
int cmd_show(const struct hp_global *g, int argc, char **argv);
int cmd_log(const struct hp_global *g, int argc, char **argv);
int cmd_store(const struct hp_global *g, int argc, char **argv);
int cmd_key(const struct hp_global *g, int argc, char **argv);
int cmd_withdraw(const struct hp_global *g, int argc, char **argv);
int cmd_apply(const struct hp_global *g, int argc, char **argv);
int cmd_revert(const struct hp_global *g, int argc, char **argv);
int cmd_status(const struct hp_global *g, int argc, char **argv);
int cmd_report(const struct hp_global *g, int argc, char **argv);

#endif

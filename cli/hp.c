/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hp: parse the global options, dispatch to a command. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hp.h"

/*
 * Commands join this table as their issues land; HP_CMD_* macros defined
 * by meson say which command files are built.
 */
static const struct hp_cmd commands[] = {
#ifdef HP_HAVE_BUILD_CMD
	{ "build", cmd_build, "build --target BIN --baseline B --month YYYY-MM --name NAME [--sign KEY] -o OUT SRC.c..." },
#endif
#ifdef HP_HAVE_STORE_CMDS
	{ "import", cmd_import, "import [--force] BUNDLE..." },
	{ "list", cmd_list, "list [BASELINE[/MONTH]]" },
	{ "show", cmd_show, "show BASELINE/MONTH/SET" },
	{ "log", cmd_log, "log" },
	{ "store", cmd_store, "store init [--allow-unsigned] [--baseline-months M,M,...] | pull REMOTE | push REMOTE" },
	{ "key", cmd_key, "key generate DIR | trust PUBKEY" },
#endif
#ifdef HP_HAVE_APPLY_CMDS
	{ "apply", cmd_apply, "apply PID [MONTH]" },
	{ "revert", cmd_revert, "revert PID" },
	{ "status", cmd_status, "status PID" },
	{ "report", cmd_report, "report" },
#endif
};

static void usage(FILE *f)
{
	fprintf(f, "usage: hp [--store DIR] [--json] COMMAND [ARGS...]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  hp %s\n", commands[i].usage);
	fprintf(f, "  hp version\n\nThe store is --store DIR, else $HP_STORE, else %s.\n",
		"/var/lib/hotpatch/store.git");
}

int hp_fail(const char *cmd, int err)
{
	fprintf(stderr, "hp %s: %s\n", cmd, hp_errmsg(err));
	return 1;
}

int hp_usage(const char *u)
{
	fprintf(stderr, "hp: usage: hp %s\n", u);
	return 2;
}

void hp_json_str(const char *s)
{
	struct hp_buf b = HP_BUF_INIT;

	if (hp_buf_add_json_str(&b, s) == 0)
		fputs(b.data, stdout);
	hp_buf_release(&b);
}

int main(int argc, char **argv)
{
	struct hp_global g = { NULL, false };
	const char *env = getenv("HP_STORE");
	char **rest;
	int n = 0;

	hp_log_init("hp");
	rest = calloc((size_t)argc + 1, sizeof(*rest));
	if (!rest)
		return 1;
	/* Global options may stand anywhere: before or after the command's arguments. */
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--store")) {
			if (i + 1 >= argc) {
				fprintf(stderr, "hp: --store needs a directory\n");
				free(rest);
				return 2;
			}
			g.store = argv[++i];
		} else if (!strncmp(argv[i], "--store=", 8)) {
			g.store = argv[i] + 8;
		} else if (!strcmp(argv[i], "--json")) {
			g.json = true;
		} else if (!strcmp(argv[i], "--")) {
			while (++i < argc)
				rest[n++] = argv[i];
		} else {
			rest[n++] = argv[i];
		}
	}
	if (!g.store)
		g.store = (env && *env) ? env : "/var/lib/hotpatch/store.git";

	if (n == 0 || !strcmp(rest[0], "help") || !strcmp(rest[0], "--help") ||
	    !strcmp(rest[0], "-h")) {
		usage(n == 0 ? stderr : stdout);
		free(rest);
		return n == 0 ? 2 : 0;
	}
	if (!strcmp(rest[0], "version") || !strcmp(rest[0], "--version")) {
		printf("hp %s\n", HP_VERSION);
		free(rest);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (!strcmp(rest[0], commands[i].name)) {
			int st = commands[i].fn(&g, n, rest);

			free(rest);
			return st;
		}
	}
	fprintf(stderr, "hp: unknown command '%s' (see hp help)\n", rest[0]);
	free(rest);
	return 2;
}

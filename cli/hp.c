/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hp: parse the global options, dispatch to a command. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hp.h"
#include "store.h"

static const struct hp_cmd commands[] = {
	{ "build", cmd_build, "build --target BIN --baseline B --month YYYY-MM --name NAME [--sign KEY] -o OUT SRC.c...", NULL },
	{ "import", cmd_import, "import [--force] [--replace] BUNDLE...",
	  "Import bundles into the store, one commit each (or no change at all).\n"
	  "  --force     accept a month outside its baseline's window\n"
	  "  --replace   the target already has a set in that month: withdraw it in the\n"
	  "              same commit (a month holds one cumulative set per target)\n" },
	{ "list", cmd_list, "list [BASELINE[/MONTH]]",
	  "List the published patch sets: id, target, build-id (withdrawn ones are not listed).\n" },
	{ "show", cmd_show, "show BASELINE/MONTH/SET",
	  "Show one patch set: manifest, functions, CVEs, signer.\n" },
	{ "log", cmd_log, "log",
	  "The store's history, newest first: imports, withdrawals, trusted and revoked keys.\n"
	  "(The daemon's events are MOUNT/events.)\n" },
	{ "withdraw", cmd_withdraw, "withdraw [--reason TEXT] BASELINE/MONTH/SET",
	  "Withdraw a set found bad (one commit): it leaves the catalog; processes that run it\n"
	  "are reported withdrawn, and apply moves them to the newest valid set or reverts them.\n"
	  "  --reason TEXT   why (kept in the commit and shown by status)\n" },
	{ "store", cmd_store, "store init [--allow-unsigned] [--baseline-months M,M,...] | pull REMOTE | push REMOTE",
	  "  init    create the store (--allow-unsigned: accept unsigned sets;\n"
	  "          --baseline-months: the months baselines are cut in, default 1,4,7,10)\n"
	  "  pull    fetch REMOTE and fast-forward the store to it\n"
	  "  push    push the store to REMOTE (fast-forward only)\n" },
	{ "key", cmd_key, "key generate DIR | trust PUBKEY | revoke [--reason TEXT] KEYID|PUBKEY",
	  "  generate  write DIR/hotpatch.key and DIR/hotpatch.pub\n"
	  "  trust     add a public key to the store's trusted keys (one commit)\n"
	  "  revoke    revoke a trusted key and withdraw every set it signed (one commit)\n" },
	{ "apply", cmd_apply, "apply [--retries N] PID [MONTH]",
	  "Hot-swap the newest published set (or MONTH's) of every target PID maps.\n"
	  "hp apply all [TARGET]: every process that maps a patched target (or TARGET), in\n"
	  "parallel, a line per process as it finishes; processes the configuration excludes\n"
	  "are left alone (the daemon's, else $HP_CONFIG or /etc/hotpatch/hotpatchfs.conf).\n"
	  "  --retries N   try again up to N times a process that failed with EBUSY\n"
	  "                (a replaced function stayed active)\n" },
	{ "revert", cmd_revert, "revert PID",
	  "Restore the original code of every set applied in PID (hp revert all: in every\n"
	  "process that runs one for a target of the store, excluded ones left alone).\n" },
	{ "status", cmd_status, "status PID",
	  "The state of PID, its targets, the sets and functions applied, the last pause.\n" },
	{ "report", cmd_report, "report [--check] [--state STATE]... [--target NAME] [--name COMM]",
	  "Compliance report: one line per process that maps a known target, and the count\n"
	  "per state.\n"
	  "  --check          exit 0 when every process listed is hotpatched or up-to-date,\n"
	  "                   else 1 (and name the others)\n"
	  "  --state STATE    only processes in STATE (repeatable)\n"
	  "  --target NAME    only processes that map target NAME\n"
	  "  --name COMM      only processes whose command name is COMM\n" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: hp [--store DIR] [--json] COMMAND [ARGS...]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  hp %s\n", commands[i].usage);
	fprintf(f, "  hp version\n\nThe store is --store DIR, else $HP_STORE, else %s.\n"
		"A command's --help (or hp help COMMAND) says more about it.\n",
		STORE_DEFAULT_PATH);
}

/*
 * One line on stdout: {"command":CMD,"result":RESULT,KEY:TEXT}, CMD NULL
 * printed null; RESULT is ours (an errno's name, "help", "usage"), TEXT
 * anybody's, escaped.
 */
static void json_outcome(const char *cmd, const char *result, const char *key, const char *text)
{
	printf("{\"command\":");
	if (cmd)
		hp_json_str(cmd);
	else
		printf("null");
	printf(",\"result\":\"%s\",\"%s\":", result, key);
	hp_json_str(text);
	printf("}\n");
}

int hp_help(const char *cmd, const char *text)
{
	if (!hp_json_mode) {
		fputs(text, stdout);
		return 0;
	}
	json_outcome(cmd, "help", "usage", text);
	return 0;
}

bool hp_json_mode;

void hp_json_error(const char *cmd, int err, const char *msg)
{
	const char *name = err < 0 ? strerrorname_np(-err) : NULL;

	json_outcome(cmd, name ? name : "error", "error", msg);
}

int hp_fail(const char *cmd, int err)
{
	const char *msg = hp_errmsg(err);

	fprintf(stderr, "hp %s: %s\n", cmd, msg);
	if (hp_json_mode)
		hp_json_error(cmd, err, msg);
	return 1;
}

/* {"command":CMD,"result":"usage","error":MSG} on stdout; CMD NULL: null. */
static void json_usage(const char *cmd, const char *msg)
{
	json_outcome(cmd, "usage", "error", msg);
}

int hp_usage(const char *u)
{
	fprintf(stderr, "hp: usage: hp %s\n", u);
	if (hp_json_mode) {
		char msg[HP_ERRMSG_MAX], cmd[32];

		snprintf(msg, sizeof(msg), "usage: hp %s", u);
		/* the command is the usage's first word */
		snprintf(cmd, sizeof(cmd), "%.*s", (int)strcspn(u, " "), u);
		json_usage(cmd, msg);
	}
	return 2;
}

int hp_usage_error(const char *cmd, const char *fmt, ...)
{
	char msg[HP_ERRMSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "hp%s%s: %s\n", cmd ? " " : "", cmd ? cmd : "", msg);
	if (hp_json_mode)
		json_usage(cmd, msg);
	return 2;
}

static bool is_help(const char *a)
{
	return !strcmp(a, "--help") || !strcmp(a, "-h");
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
	char **rest;
	int n = 0;

	hp_log_init("hp");
	rest = calloc((size_t)argc + 1, sizeof(*rest));
	if (!rest)
		return 1;
	/* --json first: an error in the other global options is JSON too. */
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
		hp_json_mode |= !strcmp(argv[i], "--json");
	/* Global options may stand anywhere: before or after the command's arguments. */
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--store")) {
			if (i + 1 >= argc) {
				free(rest);
				return hp_usage_error(NULL, "--store needs a directory");
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
		g.store = store_default_path();
	hp_json_mode = g.json;

	if (n == 2 && !strcmp(rest[0], "help")) {
		/* hp help COMMAND: as hp COMMAND --help. */
		rest[0] = rest[1];
		rest[1] = (char *)"--help";
	}
	if (n == 0 && g.json) {
		free(rest);
		return hp_usage_error(NULL, "no command (see hp help)");
	}
	if (n == 0) {
		usage(stderr);
		free(rest);
		return 2;
	}
	if (!strcmp(rest[0], "help") || is_help(rest[0])) {
		char *text = NULL;
		size_t size = 0;
		FILE *f = open_memstream(&text, &size);
		int st = 1;

		if (f) {
			usage(f);
			if (fclose(f) == 0)
				st = hp_help(NULL, text);
		}
		if (st)
			fprintf(stderr, "hp: %s\n", strerror(ENOMEM));
		free(text);
		free(rest);
		return st;
	}
	if (!strcmp(rest[0], "version") || !strcmp(rest[0], "--version")) {
		if (g.json)
			printf("{\"version\":\"%s\"}\n", HP_VERSION);
		else
			printf("hp %s\n", HP_VERSION);
		free(rest);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (!strcmp(rest[0], commands[i].name)) {
			int st;

			/* hp CMD --help (anywhere among its arguments): usage on stdout, exit 0. */
			for (int k = 1; commands[i].help && k < n; k++) {
				if (is_help(rest[k])) {
					char *text = NULL;

					free(rest);
					if (asprintf(&text, "usage: hp %s\n\n%s\nGlobal options: --store "
						     "DIR, --json (see hp(1)).\n", commands[i].usage,
						     commands[i].help) < 0) {
						fprintf(stderr, "hp: %s\n", strerror(ENOMEM));
						return 1;
					}
					st = hp_help(commands[i].name, text);
					free(text);
					return st;
				}
			}
			st = commands[i].fn(&g, n, rest);

			free(rest);
			return st;
		}
	}
	fprintf(stderr, "hp: unknown command '%s' (see hp help)\n", rest[0]);
	if (g.json)
		json_usage(rest[0], "unknown command (see hp help)");
	free(rest);
	return 2;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hp import | list | show | log | store | key: parse, call libhpstore,
 * format (human by default, --json for list/show/log).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hp.h"
#include "store.h"

static int open_store(const struct hp_global *g, const char *cmd, struct store **ret)
{
	int r = store_open(g->store, ret);

	return r < 0 ? hp_fail(cmd, r) : 0;
}

static void iso_time(int64_t t, char buf[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- hp import ---------------------------------------------------------- */

int cmd_import(const struct hp_global *g, int argc, char **argv)
{
	static const char usage[] = "import [--force] [--replace] BUNDLE...";
	struct store_import_opts opts = { false, false };
	struct store *st;
	int failed = 0, n = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--force"))
			opts.force = true;
		else if (!strcmp(argv[i], "--replace"))
			opts.replace = true;
		else if (argv[i][0] == '-' && argv[i][1])
			return hp_usage(usage);
		else
			n++;
	}
	if (n == 0)
		return hp_usage(usage);
	if (open_store(g, "import", &st))
		return 1;
	if (g->json)
		printf("[");
	n = 0;
	for (int i = 1; i < argc; i++) {
		char *id = NULL;
		int r;

		if (!strcmp(argv[i], "--force") || !strcmp(argv[i], "--replace"))
			continue;
		hp_err_clear();
		r = store_import(st, argv[i], &opts, &id);
		if (r < 0) {
			/* One line per bundle; the message names the bundle. */
			fprintf(stderr, "hp import: %s\n", hp_errmsg(r));
			failed++;
		} else if (!g->json) {
			printf("%s %s\n", r == 1 ? "already imported" : "imported", id);
		}
		if (g->json) {
			printf("%s\n  {\"bundle\":", n++ ? "," : "");
			hp_json_str(argv[i]);
			if (r < 0) {
				printf(",\"result\":\"%s\",\"error\":", strerrorname_np(-r));
				hp_json_str(hp_errmsg(r));
			} else {
				printf(",\"result\":\"%s\",\"set\":",
				       r == 1 ? "already imported" : "imported");
				hp_json_str(id);
			}
			printf("}");
		}
		free(id);
	}
	if (g->json)
		printf("\n]\n");
	store_free(st);
	return failed ? 1 : 0;
}

/* ---- hp withdraw -------------------------------------------------------- */

int cmd_withdraw(const struct hp_global *g, int argc, char **argv)
{
	static const char usage[] = "withdraw [--reason TEXT] BASELINE/MONTH/SET";
	const char *reason = NULL, *id = NULL;
	struct store *st;
	int r;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--reason") && i + 1 < argc)
			reason = argv[++i];
		else if (!strncmp(argv[i], "--reason=", 9))
			reason = argv[i] + 9;
		else if (argv[i][0] == '-' || id)
			return hp_usage(usage);
		else
			id = argv[i];
	}
	if (!id)
		return hp_usage(usage);
	if (open_store(g, "withdraw", &st))
		return 1;
	r = store_withdraw(st, id, reason);
	store_free(st);
	if (r < 0)
		return hp_fail("withdraw", r);
	if (g->json) {
		printf("{\"set\":");
		hp_json_str(id);
		printf(",\"result\":\"%s\"}\n", r == 1 ? "already withdrawn" : "withdrawn");
	} else {
		printf("%s %s\n", r == 1 ? "already withdrawn" : "withdrawn", id);
	}
	return 0;
}

/* ---- hp list ------------------------------------------------------------ */

struct list_ctx {
	bool json;
	int n;
};

static int list_cb(void *ctx, const struct store_set_info *si)
{
	struct list_ctx *l = ctx;

	if (l->json) {
		/* "[" with the first set: a failed listing prints nothing on stdout. */
		printf("%s\n  {\"set\": ", l->n ? "," : "[");
		hp_json_str(si->set_id);
		printf(", \"baseline\": ");
		hp_json_str(si->baseline);
		printf(", \"month\": ");
		hp_json_str(si->month);
		printf(", \"name\": ");
		hp_json_str(si->name);
		printf(", \"target\": ");
		hp_json_str(si->target);
		printf(", \"build_id\": ");
		hp_json_str(si->build_id);
		printf("}");
	} else {
		printf("%-40s %-24s %s\n", si->set_id, si->target, si->build_id);
	}
	l->n++;
	return 0;
}

int cmd_list(const struct hp_global *g, int argc, char **argv)
{
	struct list_ctx l = { g->json, 0 };
	struct store *st = NULL;
	struct store_snap *snap = NULL;
	char *baseline = NULL, *month = NULL;
	int r;

	if (argc > 2)
		return hp_usage("list [BASELINE[/MONTH]]");
	if (argc == 2) {
		baseline = strdup(argv[1]);
		if (!baseline)
			return hp_fail("list", -ENOMEM);
		month = strchr(baseline, '/');
		if (month) {
			*month++ = '\0';
			if (!*month)
				month = NULL;
		}
	}
	if (open_store(g, "list", &st)) {
		free(baseline);
		return 1;
	}
	r = store_snap_open(st, &snap);
	if (r == 0)
		r = store_list_sets(snap, baseline, month, list_cb, &l);
	if (r >= 0 && l.json)
		printf("%s]\n", l.n ? "\n" : "[");
	store_snap_free(snap);
	store_free(st);
	free(baseline);
	return r < 0 ? hp_fail("list", r) : 0;
}

/* ---- hp show ------------------------------------------------------------ */

static void show_json(const struct store_patchset *ps, const struct hp_manifest *m,
		      const struct store_node sizes[3])
{
	printf("{\"set\": ");
	hp_json_str(ps->set_id);
	printf(", \"name\": ");
	hp_json_str(m->name);
	printf(", \"baseline\": ");
	hp_json_str(m->baseline);
	printf(", \"month\": ");
	hp_json_str(m->month);
	printf(", \"target\": ");
	hp_json_str(m->target);
	printf(", \"build_id\": ");
	hp_json_str(m->build_id);
	printf(", \"patch_sha256\": ");
	hp_json_str(m->patch_sha256);
	if (m->description) {
		printf(", \"description\": ");
		hp_json_str(m->description);
	}
	if (m->author) {
		printf(", \"author\": ");
		hp_json_str(m->author);
	}
	if (m->created) {
		printf(", \"created\": ");
		hp_json_str(m->created);
	}
	printf(", \"cves\": [");
	for (size_t i = 0; i < m->n_cves; i++) {
		printf("%s", i ? ", " : "");
		hp_json_str(m->cves[i]);
	}
	printf("], \"funcs\": [");
	for (size_t i = 0; i < m->n_funcs; i++) {
		printf("%s{\"name\": ", i ? ", " : "");
		hp_json_str(m->funcs[i].name);
		if (m->funcs[i].file) {
			printf(", \"file\": ");
			hp_json_str(m->funcs[i].file);
		}
		printf(", \"offset\": %" PRIu64 ", \"size\": %" PRIu64 ", \"active_ok\": %s}",
		       m->funcs[i].offset, m->funcs[i].size,
		       (m->funcs[i].flags & HP_FUNC_ACTIVE_OK) ? "true" : "false");
	}
	printf("], \"syms\": %zu, \"files\": {\"manifest\": %" PRIu64 ", \"patch.so\": %" PRIu64,
	       m->n_syms, sizes[0].size, sizes[1].size);
	if (sizes[2].type == STORE_NODE_FILE)
		printf(", \"signature\": %" PRIu64, sizes[2].size);
	printf("}, \"signed\": %s, \"signer\": ", ps->signed_ok ? "true" : "false");
	if (ps->signer)
		hp_json_str(ps->signer);
	else
		printf("null");
	printf("}\n");
}

static void show_text(const struct store_patchset *ps, const struct hp_manifest *m,
		      const struct store_node sizes[3])
{
	printf("set          %s\n", ps->set_id);
	printf("target       %s\n", m->target);
	printf("build-id     %s\n", m->build_id);
	printf("baseline     %s\nmonth        %s\n", m->baseline, m->month);
	if (m->description)
		printf("description  %s\n", m->description);
	if (m->author)
		printf("author       %s\n", m->author);
	if (m->created)
		printf("created      %s\n", m->created);
	for (size_t i = 0; i < m->n_cves; i++)
		printf("cve          %s\n", m->cves[i]);
	for (size_t i = 0; i < m->n_funcs; i++)
		printf("func         %s%s%s 0x%" PRIx64 " %" PRIu64 "%s\n", m->funcs[i].name,
		       m->funcs[i].file ? "@" : "", m->funcs[i].file ? m->funcs[i].file : "",
		       m->funcs[i].offset, m->funcs[i].size,
		       (m->funcs[i].flags & HP_FUNC_ACTIVE_OK) ? " active-ok" : "");
	printf("symbols      %zu\n", m->n_syms);
	printf("files        manifest %" PRIu64 ", patch.so %" PRIu64, sizes[0].size, sizes[1].size);
	if (sizes[2].type == STORE_NODE_FILE)
		printf(", signature %" PRIu64, sizes[2].size);
	printf(" bytes\npatch-sha256 %s\n", m->patch_sha256);
	if (ps->signed_ok)
		printf("signer       %s (verified)\n", ps->signer);
	else
		printf("signer       none (unsigned; the store allows it)\n");
}

int cmd_show(const struct hp_global *g, int argc, char **argv)
{
	static const char *const files[] = { "manifest", "patch.so", "signature" };
	struct store *st = NULL;
	struct store_snap *snap = NULL;
	struct store_patchset *ps = NULL;
	struct store_node sizes[3];
	int r;

	if (argc != 2)
		return hp_usage("show BASELINE/MONTH/SET");
	if (open_store(g, "show", &st))
		return 1;
	r = store_snap_open(st, &snap);
	if (r == 0)
		r = store_get_set(snap, argv[1], &ps);
	for (int i = 0; r == 0 && i < 3; i++) {
		char path[256];

		snprintf(path, sizeof(path), "%s/%s", argv[1], files[i]);
		if (store_snap_stat(snap, path, &sizes[i]) < 0)
			sizes[i] = (struct store_node){ STORE_NODE_DIR, 0, 0 }; /* absent */
	}
	if (r == 0) {
		if (g->json)
			show_json(ps, ps->manifest, sizes);
		else
			show_text(ps, ps->manifest, sizes);
	}
	store_patchset_free(ps);
	store_snap_free(snap);
	store_free(st);
	return r < 0 ? hp_fail("show", r) : 0;
}

/* ---- hp log ------------------------------------------------------------- */

struct log_ctx {
	bool json;
	int n;
};

static int log_cb(void *ctx, const struct store_log_entry *e)
{
	struct log_ctx *l = ctx;
	char date[32];

	iso_time(e->time, date);
	if (l->json) {
		printf("%s\n  {\"id\": \"%s\", \"date\": \"%s\", \"time\": %" PRId64 ", \"summary\": ",
		       l->n ? "," : "", e->id, date, e->time);
		hp_json_str(e->summary);
		printf(", \"message\": ");
		hp_json_str(e->message);
		printf("}");
	} else {
		printf("%s %.12s %s\n", date, e->id, e->summary);
	}
	l->n++;
	return 0;
}

int cmd_log(const struct hp_global *g, int argc, char **argv)
{
	struct log_ctx l = { g->json, 0 };
	struct store *st;
	int r;

	if (argc != 1)
		return hp_usage("log");
	if (open_store(g, "log", &st))
		return 1;
	if (l.json)
		printf("[");
	r = store_log(st, log_cb, &l);
	if (l.json)
		printf("%s]\n", l.n ? "\n" : "");
	store_free(st);
	return r < 0 ? hp_fail("log", r) : 0;
}

/* ---- hp store ----------------------------------------------------------- */

int cmd_store(const struct hp_global *g, int argc, char **argv)
{
	static const char usage[] =
		"store init [--allow-unsigned] [--baseline-months M,M,...] | pull REMOTE | push REMOTE";
	struct store *st;
	int r;

	if (argc >= 2 && !strcmp(argv[1], "init")) {
		struct store_init_opts opts = { false, NULL };

		for (int i = 2; i < argc; i++) {
			if (!strcmp(argv[i], "--allow-unsigned"))
				opts.allow_unsigned = true;
			else if (!strcmp(argv[i], "--baseline-months") && i + 1 < argc)
				opts.baseline_months = argv[++i];
			else if (!strncmp(argv[i], "--baseline-months=", 18))
				opts.baseline_months = argv[i] + 18;
			else
				return hp_usage(usage);
		}
		r = store_init(g->store, &opts);
		if (r < 0)
			return hp_fail("store init", r);
		if (g->json) {
			printf("{\"store\":");
			hp_json_str(g->store);
			printf(",\"result\":\"initialised\",\"allow_unsigned\":%s}\n",
			       opts.allow_unsigned ? "true" : "false");
		} else {
			printf("initialised store %s%s\n", g->store,
			       opts.allow_unsigned ? " (unsigned sets allowed)" : "");
		}
		return 0;
	}
	if (argc == 3 && (!strcmp(argv[1], "pull") || !strcmp(argv[1], "push"))) {
		bool pull = !strcmp(argv[1], "pull");
		char head[HP_OID_HEX_SIZE];

		if (open_store(g, pull ? "store pull" : "store push", &st))
			return 1;
		r = pull ? store_pull(st, argv[2]) : store_push(st, argv[2]);
		if (r >= 0 && store_head(st, head) == 0 && g->json) {
			printf("{\"%s\":", argv[1]);
			hp_json_str(argv[2]);
			printf(",\"result\":\"%s\",\"head\":\"%s\"}\n",
			       r == 1 ? "up to date" : "moved", head);
		} else if (r >= 0 && store_head(st, head) == 0) {
			if (r == 1)
				printf("%s: already up to date with %s\n", argv[1], argv[2]);
			else
				printf("%s: %s now at %.12s\n", argv[1], pull ? "store" : argv[2], head);
		}
		store_free(st);
		return r < 0 ? hp_fail(pull ? "store pull" : "store push", r) : 0;
	}
	return hp_usage(usage);
}

/* ---- hp key ------------------------------------------------------------- */

static void key_json(const char *what, const char *arg, const char *result)
{
	printf("{\"%s\":", what);
	hp_json_str(arg);
	printf(",\"result\":\"%s\"}\n", result);
}

int cmd_key(const struct hp_global *g, int argc, char **argv)
{
	static const char usage[] =
		"key generate DIR | trust PUBKEY | revoke [--reason TEXT] KEYID|PUBKEY";
	struct store *st;
	int r;

	if (argc >= 3 && !strcmp(argv[1], "revoke")) {
		const char *reason = NULL, *key = NULL;
		size_t n_sets = 0;

		for (int i = 2; i < argc; i++) {
			if (!strcmp(argv[i], "--reason") && i + 1 < argc)
				reason = argv[++i];
			else if (!strncmp(argv[i], "--reason=", 9))
				reason = argv[i] + 9;
			else if (argv[i][0] == '-' || key)
				return hp_usage(usage);
			else
				key = argv[i];
		}
		if (!key)
			return hp_usage(usage);
		if (open_store(g, "key revoke", &st))
			return 1;
		r = store_key_revoke(st, key, reason, &n_sets);
		store_free(st);
		if (r < 0)
			return hp_fail("key revoke", r);
		if (g->json) {
			printf("{\"key\":");
			hp_json_str(key);
			printf(",\"result\":\"%s\",\"sets_withdrawn\":%zu}\n",
			       r == 1 ? "already revoked" : "revoked", n_sets);
		} else if (r == 1) {
			printf("already revoked %s\n", key);
		} else {
			printf("revoked %s; withdrew %zu set%s it signed\n", key, n_sets,
			       n_sets == 1 ? "" : "s");
		}
		return 0;
	}
	if (argc != 3)
		return hp_usage(usage);
	if (!strcmp(argv[1], "generate")) {
		r = store_key_generate(argv[2]);
		if (r < 0)
			return hp_fail("key generate", r);
		if (g->json)
			key_json("dir", argv[2], "generated");
		else
			printf("wrote %s/hotpatch.key and %s/hotpatch.pub\n", argv[2], argv[2]);
		return 0;
	}
	if (!strcmp(argv[1], "trust")) {
		if (open_store(g, "key trust", &st))
			return 1;
		r = store_key_trust(st, argv[2]);
		store_free(st);
		if (r < 0)
			return hp_fail("key trust", r);
		if (g->json)
			key_json("key", argv[2], r == 1 ? "already trusted" : "trusted");
		else
			printf("%s %s\n", r == 1 ? "already trusted" : "trusted", argv[2]);
		return 0;
	}
	return hp_usage(usage);
}

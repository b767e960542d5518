/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hp build: make a patch-set bundle from C sources (docs/authoring.md). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hp.h"
#include "author.h"

#define BUILD_USAGE \
	"build --target BIN [--debug DEBUGFILE] --baseline YYYY.MM --month YYYY-MM --name NAME\n" \
	"         [--sign KEY] [--description TEXT] [--author TEXT] [--cve CVE-YYYY-NNNN]...\n" \
	"         [--active-ok FUNC]... [--pick NAME@FILE]... [--cc CC] [--cflag FLAG]...\n" \
	"         -o OUT.{tar,tar.gz,tgz,tar.xz,zip} SRC.c... | PATCH.so\n" \
	"   or: hp build --target BIN --source DIR --diff FIX.patch... [--compile-commands FILE]\n" \
	"         [--force] --baseline YYYY.MM --month YYYY-MM --name NAME [--sign KEY] ... -o OUT"

/*
 * SIGINT, SIGTERM, SIGHUP during a build cancel it: author_build stops its
 * compiler, removes its temporary directory and writes nothing; then hp dies
 * of the signal as it would have.
 */
static volatile sig_atomic_t build_signal;
static const int build_signals[] = { SIGINT, SIGTERM, SIGHUP };

static void on_signal(int sig)
{
	build_signal = sig;
}

static void build_note(void *ctx, const char *msg)
{
	(void)ctx;
	fprintf(stderr, "hp build: %s\n", msg);
}

static void print_json(const struct hp_manifest *m, const char *out, bool is_signed)
{
	printf("{\"bundle\":");
	hp_json_str(out);
	printf(",\"set\":\"%s/%s/%s\",\"target\":", m->baseline, m->month, m->name);
	hp_json_str(m->target);
	printf(",\"build_id\":\"%s\",\"patch_sha256\":\"%s\",\"signed\":%s,\"functions\":[",
	       m->build_id, m->patch_sha256, is_signed ? "true" : "false");
	for (size_t i = 0; i < m->n_funcs; i++) {
		const struct hp_manifest_func *f = &m->funcs[i];

		printf("%s{\"name\":", i ? "," : "");
		hp_json_str(f->name);
		printf(",\"file\":");
		if (f->file)
			hp_json_str(f->file);
		else
			printf("null");
		printf(",\"offset\":%" PRIu64 ",\"size\":%" PRIu64 ",\"active_ok\":%s,\"why\":",
		       f->offset, f->size, (f->flags & HP_FUNC_ACTIVE_OK) ? "true" : "false");
		if (f->why)
			hp_json_str(f->why);
		else
			printf("null");
		printf("}");
	}
	printf("],\"symbols\":[");
	for (size_t i = 0; i < m->n_syms; i++) {
		const struct hp_manifest_sym *s = &m->syms[i];

		printf("%s{\"name\":", i ? "," : "");
		hp_json_str(s->name);
		printf(",\"file\":");
		if (s->file)
			hp_json_str(s->file);
		else
			printf("null");
		printf(",\"offset\":%" PRIu64 "}", s->offset);
	}
	printf("]}\n");
}

static void print_human(const struct hp_manifest *m, const char *out, bool is_signed)
{
	printf("wrote %s: %s/%s/%s for %s (build-id %s), %s\n", out, m->baseline, m->month,
	       m->name, m->target, m->build_id, is_signed ? "signed" : "unsigned");
	for (size_t i = 0; i < m->n_funcs; i++) {
		const struct hp_manifest_func *f = &m->funcs[i];

		printf("  func %s%s%s at 0x%" PRIx64 ", %" PRIu64 " bytes%s%s%s\n", f->name,
		       f->file ? "@" : "", f->file ? f->file : "", f->offset, f->size,
		       (f->flags & HP_FUNC_ACTIVE_OK) ? ", active-ok" : "", f->why ? ": " : "",
		       f->why ? f->why : "");
	}
	for (size_t i = 0; i < m->n_syms; i++) {
		const struct hp_manifest_sym *s = &m->syms[i];

		printf("  sym  %s%s%s at 0x%" PRIx64 "\n", s->name, s->file ? "@" : "",
		       s->file ? s->file : "", s->offset);
	}
}

enum {
	OPT_TARGET = 0x100, OPT_DEBUG, OPT_BASELINE, OPT_MONTH, OPT_NAME, OPT_SIGN,
	OPT_DESCRIPTION, OPT_AUTHOR, OPT_CVE, OPT_ACTIVE_OK, OPT_PICK, OPT_CC, OPT_CFLAG,
	OPT_SOURCE, OPT_DIFF, OPT_COMPILE_COMMANDS, OPT_FORCE, OPT_ALLOW_INLINED,
};

int cmd_build(const struct hp_global *g, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "target", required_argument, NULL, OPT_TARGET },
		{ "debug", required_argument, NULL, OPT_DEBUG },
		{ "baseline", required_argument, NULL, OPT_BASELINE },
		{ "month", required_argument, NULL, OPT_MONTH },
		{ "name", required_argument, NULL, OPT_NAME },
		{ "sign", required_argument, NULL, OPT_SIGN },
		{ "description", required_argument, NULL, OPT_DESCRIPTION },
		{ "author", required_argument, NULL, OPT_AUTHOR },
		{ "cve", required_argument, NULL, OPT_CVE },
		{ "active-ok", required_argument, NULL, OPT_ACTIVE_OK },
		{ "pick", required_argument, NULL, OPT_PICK },
		{ "cc", required_argument, NULL, OPT_CC },
		{ "cflag", required_argument, NULL, OPT_CFLAG },
		{ "source", required_argument, NULL, OPT_SOURCE },
		{ "diff", required_argument, NULL, OPT_DIFF },
		{ "compile-commands", required_argument, NULL, OPT_COMPILE_COMMANDS },
		{ "force", no_argument, NULL, OPT_FORCE },
		{ "allow-inlined", no_argument, NULL, OPT_ALLOW_INLINED },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct author_opts o;
	struct hp_manifest *m = NULL;
	/* Each list holds at most argc entries plus the terminating NULL. */
	const char **cves = calloc((size_t)argc + 1, sizeof(char *));
	const char **active = calloc((size_t)argc + 1, sizeof(char *));
	const char **picks = calloc((size_t)argc + 1, sizeof(char *));
	const char **cflags = calloc((size_t)argc + 1, sizeof(char *));
	const char **sources = calloc((size_t)argc + 1, sizeof(char *));
	const char **diffs = calloc((size_t)argc + 1, sizeof(char *));
	size_t n_cves = 0, n_active = 0, n_picks = 0, n_cflags = 0, n_sources = 0, n_diffs = 0;
	int c, r, status = 0;

	memset(&o, 0, sizeof(o));
	if (!cves || !active || !picks || !cflags || !sources || !diffs) {
		status = hp_fail("build", -ENOMEM);
		goto out;
	}
	opterr = 0;
	optind = 1; /* hp runs one command: getopt's state is fresh */
	for (;;) {
		/* Sources and options may be mixed: "+" stops at each source, taken here. */
		while (optind < argc && (argv[optind][0] != '-' || !argv[optind][1]))
			sources[n_sources++] = argv[optind++];
		c = getopt_long(argc, argv, "+o:h", longopts, NULL);
		if (c == -1)
			break;
		switch (c) {
		case OPT_TARGET: o.target = optarg; break;
		case OPT_DEBUG: o.debug_file = optarg; break;
		case OPT_BASELINE: o.baseline = optarg; break;
		case OPT_MONTH: o.month = optarg; break;
		case OPT_NAME: o.name = optarg; break;
		case OPT_SIGN: o.sign_key = optarg; break;
		case OPT_DESCRIPTION: o.description = optarg; break;
		case OPT_AUTHOR: o.author = optarg; break;
		case OPT_CVE: cves[n_cves++] = optarg; break;
		case OPT_ACTIVE_OK: active[n_active++] = optarg; break;
		case OPT_PICK: picks[n_picks++] = optarg; break;
		case OPT_CC: o.cc = optarg; break;
		case OPT_CFLAG: cflags[n_cflags++] = optarg; break;
		case OPT_SOURCE: o.source_dir = optarg; break;
		case OPT_DIFF: diffs[n_diffs++] = optarg; break;
		case OPT_COMPILE_COMMANDS: o.compile_commands = optarg; break;
		case OPT_FORCE: o.force = true; break;
		case OPT_ALLOW_INLINED: o.allow_inlined = true; break;
		case 'o': o.output = optarg; break;
		case 'h':
			hp_help("build", "usage: hp " BUILD_USAGE "\n");
			goto out;
		default:
			if (optopt == 'o' || optopt >= 0x100)
				status = hp_usage_error("build", "option %s needs a value",
							argv[optind - 1]);
			else if (optopt)
				status = hp_usage_error("build", "unknown option -%c", optopt);
			else
				status = hp_usage_error("build", "unknown option %s", argv[optind - 1]);
			goto out;
		}
	}
	while (optind < argc)
		sources[n_sources++] = argv[optind++];
	{
		/* One line naming what is missing; the full usage is hp build --help. */
		const char *missing = !o.target ? "--target BIN" : !o.baseline ? "--baseline YYYY.MM" :
				      !o.month ? "--month YYYY-MM" : !o.name ? "--name NAME" :
				      !o.output ? "-o OUT" :
				      n_sources == 0 && n_diffs == 0 ? "SRC.c... or PATCH.so (or --diff)" :
				      n_diffs && !o.source_dir ? "--source DIR" : NULL;

		if (missing) {
			status = hp_usage_error("build", "missing %s (see hp build --help)", missing);
			goto out;
		}
	}
	o.cves = cves;
	o.active_ok = active;
	o.picks = picks;
	o.cflags = cflags;
	o.sources = sources;
	o.diffs = diffs;
	o.note = build_note;
	o.cancel = &build_signal;

	{
		struct sigaction sa, old_sa[3];

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_signal;
		sigemptyset(&sa.sa_mask);
		for (size_t i = 0; i < 3; i++)
			sigaction(build_signals[i], &sa, &old_sa[i]);
		r = author_build(&o, &m);
		for (size_t i = 0; i < 3; i++)
			sigaction(build_signals[i], &old_sa[i], NULL);
		if (build_signal) {
			signal(build_signal, SIG_DFL);
			raise(build_signal);
		}
	}
	if (r < 0) {
		status = hp_fail("build", r);
		goto out;
	}
	if (g->json)
		print_json(m, o.output, o.sign_key != NULL);
	else
		print_human(m, o.output, o.sign_key != NULL);
out:
	hp_manifest_free(m);
	free(cves);
	free(active);
	free(picks);
	free(cflags);
	free(sources);
	free(diffs);
	return status;
}

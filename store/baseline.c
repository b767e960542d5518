/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * <baseline>/BASELINE: which targets a baseline covers, and the cycle of
 * baselines and months (docs/store.md).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store-int.h"

#define BASELINE_MAGIC "hotpatch-baseline"
#define BASELINE_VERSION 1
#define LINE_MAX_LEN 1024

void store_baseline_release(struct store_baseline *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->n_targets; i++) {
		free(b->targets[i].name);
		free(b->targets[i].build_id);
	}
	free(b->targets);
	free(b->baseline);
	free(b->created);
	memset(b, 0, sizeof(*b));
}

const struct store_baseline_target *store_baseline_find(const struct store_baseline *b,
							 const char *name)
{
	for (size_t i = 0; i < b->n_targets; i++)
		if (!strcmp(b->targets[i].name, name))
			return &b->targets[i];
	return NULL;
}

static bool valid_target_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 255 || !strcmp(s, ".") || !strcmp(s, ".."))
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || s[i] == '/' || s[i] == 0x7f)
			return false;
	return true;
}

int store_baseline_add_target(struct store_baseline *b, const char *name, const char *build_id)
{
	struct store_baseline_target *t;

	if (!valid_target_name(name))
		return hp_err(-EINVAL, "baseline %s: invalid target name", b->baseline);
	if (!hp_valid_build_id(build_id))
		return hp_err(-EINVAL, "baseline %s: invalid build-id for %s", b->baseline, name);
	if (store_baseline_find(b, name))
		return hp_err(-EEXIST, "baseline %s: target %s listed twice", b->baseline, name);
	if (b->n_targets >= STORE_BASELINE_MAX_TARGETS)
		return hp_err(-E2BIG, "baseline %s: more than %u targets", b->baseline,
			      STORE_BASELINE_MAX_TARGETS);
	t = realloc(b->targets, (b->n_targets + 1) * sizeof(*t));
	if (!t)
		return -ENOMEM;
	b->targets = t;
	t = &b->targets[b->n_targets];
	t->name = strdup(name);
	t->build_id = strdup(build_id);
	if (!t->name || !t->build_id) {
		free(t->name);
		free(t->build_id);
		return -ENOMEM;
	}
	b->n_targets++;
	return 0;
}

static int parse_line(struct store_baseline *b, char *line, int lineno, bool *seen_header)
{
	char *w[4] = { NULL };
	int n = 0;
	char *save = NULL;

	for (char *tok = strtok_r(line, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		if (n == 4)
			return hp_err(-EINVAL, "BASELINE line %d: too many words", lineno);
		w[n++] = tok;
	}
	if (n == 0)
		return 0;
	if (!*seen_header) {
		if (n != 2 || strcmp(w[0], BASELINE_MAGIC) || strcmp(w[1], "1"))
			return hp_err(-EINVAL, "BASELINE line %d: expected '%s %d'", lineno,
				      BASELINE_MAGIC, BASELINE_VERSION);
		*seen_header = true;
		return 0;
	}
	if (!strcmp(w[0], "baseline") && n == 2 && !b->baseline && hp_valid_baseline(w[1]))
		return (b->baseline = strdup(w[1])) ? 0 : -ENOMEM;
	if (!strcmp(w[0], "kind") && n == 2 && (!strcmp(w[1], "planned") || !strcmp(w[1], "unplanned"))) {
		b->planned = !strcmp(w[1], "planned");
		return 0;
	}
	if (!strcmp(w[0], "created") && n == 2 && !b->created && strlen(w[1]) <= 40)
		return (b->created = strdup(w[1])) ? 0 : -ENOMEM;
	if (!strcmp(w[0], "target") && n == 3) {
		int r;

		if (!b->baseline)
			return hp_err(-EINVAL, "BASELINE line %d: target before baseline", lineno);
		r = store_baseline_add_target(b, w[1], w[2]);
		return r < 0 ? hp_err_prefix(r, "BASELINE line %d: ", lineno) : 0;
	}
	return hp_err(-EINVAL, "BASELINE line %d: unexpected '%s'", lineno, w[0]);
}

int store_baseline_parse(const char *text, size_t len, struct store_baseline *ret)
{
	struct store_baseline b = { 0 };
	bool header = false;
	int lineno = 0, r = 0;
	size_t pos = 0;

	if (len > STORE_BASELINE_MAX_BYTES)
		return hp_err(-EFBIG, "BASELINE larger than %u bytes", STORE_BASELINE_MAX_BYTES);
	b.planned = true;
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
		char line[LINE_MAX_LEN + 1];

		lineno++;
		if (n > LINE_MAX_LEN) {
			r = hp_err(-EINVAL, "BASELINE line %d: too long", lineno);
			goto fail;
		}
		memcpy(line, text + pos, n);
		line[n] = '\0';
		if (strlen(line) != n || strpbrk(line, "\t\r")) {
			r = hp_err(-EINVAL, "BASELINE line %d: control character", lineno);
			goto fail;
		}
		pos += n + 1;
		if (line[0] == '#')
			continue;
		r = parse_line(&b, line, lineno, &header);
		if (r < 0)
			goto fail;
	}
	if (!header || !b.baseline) {
		r = hp_err(-EINVAL, "BASELINE: missing header or baseline line");
		goto fail;
	}
	store_baseline_release(ret);
	*ret = b;
	return 0;
fail:
	store_baseline_release(&b);
	return r;
}

int store_baseline_format(const struct store_baseline *b, struct hp_buf *out)
{
	int r;

	r = hp_buf_addf(out, "%s %d\nbaseline %s\nkind %s\n", BASELINE_MAGIC, BASELINE_VERSION,
			b->baseline, b->planned ? "planned" : "unplanned");
	if (r == 0 && b->created)
		r = hp_buf_addf(out, "created %s\n", b->created);
	for (size_t i = 0; r == 0 && i < b->n_targets; i++)
		r = hp_buf_addf(out, "target %s %s\n", b->targets[i].name, b->targets[i].build_id);
	return r;
}

/* "2026.01" or "2026-01" -> months since year 0. */
static int month_number(const char *s)
{
	return atoi(s) * 12 + atoi(s + 5) - 1;
}

bool store_baseline_planned(unsigned mask, const char *baseline)
{
	int m = month_number(baseline) % 12;

	return (mask >> m) & 1u;
}

bool store_month_in_window(unsigned mask, const char *baseline, const char *month)
{
	int b = month_number(baseline), m = month_number(month);

	if (m <= b)
		return false;
	if (!store_baseline_planned(mask, baseline))
		return m - b <= 2;
	/* Up to the next baseline month: at most 11 months for a single-month cycle. */
	for (int k = b + 1; k < m; k++)
		if ((mask >> (k % 12)) & 1u)
			return false;
	return !((mask >> (m % 12)) & 1u);
}

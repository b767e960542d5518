/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The manifest text format, version 1 (docs/manifest.md). One record per
 * line, "key value"; '#' starts a comment line; blank lines are ignored.
 * The parser is strict: an unknown key, a repeated single-valued key, a bad
 * name or number, or a limit exceeded is -EINVAL naming the line.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hp-common.h"

#define LINE_MAX_LEN 4096
#define TEXT_MAX_LEN 1024

static const struct {
	const char *name;
	unsigned flag;
} func_flags[] = {
	{ "active-ok", HP_FUNC_ACTIVE_OK },
};

struct hp_manifest *hp_manifest_new(void)
{
	struct hp_manifest *m = calloc(1, sizeof(*m));

	if (m)
		m->version = HP_MANIFEST_VERSION;
	return m;
}

void hp_manifest_free(struct hp_manifest *m)
{
	if (!m)
		return;
	free(m->name);
	free(m->baseline);
	free(m->month);
	free(m->target);
	free(m->build_id);
	free(m->patch_sha256);
	free(m->description);
	free(m->author);
	free(m->created);
	for (size_t i = 0; i < m->n_cves; i++)
		free(m->cves[i]);
	free(m->cves);
	for (size_t i = 0; i < m->n_funcs; i++) {
		free(m->funcs[i].name);
		free(m->funcs[i].file);
		free(m->funcs[i].why);
	}
	free(m->funcs);
	for (size_t i = 0; i < m->n_syms; i++) {
		free(m->syms[i].name);
		free(m->syms[i].file);
	}
	free(m->syms);
	free(m);
}

int hp_manifest_set_str(char **field, const char *value)
{
	char *p = NULL;

	if (value) {
		p = strdup(value);
		if (!p)
			return -ENOMEM;
	}
	free(*field);
	*field = p;
	return 0;
}

/* Split "name@file" into two allocations. */
static int split_symname(const char *s, char **ret_name, char **ret_file)
{
	const char *at = strchr(s, '@');
	char *name, *file = NULL;

	name = at ? strndup(s, (size_t)(at - s)) : strdup(s);
	if (!name)
		return -ENOMEM;
	if (at) {
		file = strdup(at + 1);
		if (!file) {
			free(name);
			return -ENOMEM;
		}
	}
	*ret_name = name;
	*ret_file = file;
	return 0;
}

static int check_symname(const char *name, const char *file)
{
	char tmp[600];

	if (snprintf(tmp, sizeof(tmp), "%s%s%s", name, file ? "@" : "", file ? file : "") >=
	    (int)sizeof(tmp))
		return hp_err(-EINVAL, "symbol name too long");
	if (!hp_valid_symname(tmp))
		return hp_err(-EINVAL, "invalid symbol name '%s'", tmp);
	return 0;
}

int hp_manifest_add_func(struct hp_manifest *m, const char *name, const char *file,
			 uint64_t offset, uint64_t size, unsigned flags)
{
	struct hp_manifest_func *f;
	int r;

	r = check_symname(name, file);
	if (r < 0)
		return r;
	if (m->n_funcs >= HP_MANIFEST_MAX_FUNCS)
		return hp_err(-E2BIG, "more than %d functions", HP_MANIFEST_MAX_FUNCS);
	f = realloc(m->funcs, (m->n_funcs + 1) * sizeof(*f));
	if (!f)
		return -ENOMEM;
	m->funcs = f;
	f = &m->funcs[m->n_funcs];
	memset(f, 0, sizeof(*f));
	f->name = strdup(name);
	f->file = file ? strdup(file) : NULL;
	if (!f->name || (file && !f->file)) {
		free(f->name);
		free(f->file);
		return -ENOMEM;
	}
	f->offset = offset;
	f->size = size;
	f->flags = flags;
	m->n_funcs++;
	return 0;
}

int hp_manifest_add_sym(struct hp_manifest *m, const char *name, const char *file,
			uint64_t offset)
{
	struct hp_manifest_sym *s;
	int r;

	r = check_symname(name, file);
	if (r < 0)
		return r;
	if (m->n_syms >= HP_MANIFEST_MAX_SYMS)
		return hp_err(-E2BIG, "more than %d symbols", HP_MANIFEST_MAX_SYMS);
	s = realloc(m->syms, (m->n_syms + 1) * sizeof(*s));
	if (!s)
		return -ENOMEM;
	m->syms = s;
	s = &m->syms[m->n_syms];
	memset(s, 0, sizeof(*s));
	s->name = strdup(name);
	s->file = file ? strdup(file) : NULL;
	if (!s->name || (file && !s->file)) {
		free(s->name);
		free(s->file);
		return -ENOMEM;
	}
	s->offset = offset;
	m->n_syms++;
	return 0;
}

/* CVE-YYYY-NNNN, the sequence number at least four digits (MITRE's syntax). */
static bool valid_cve(const char *s)
{
	size_t n = strlen(s);

	if (n < 13 || n > 32 || strncmp(s, "CVE-", 4) != 0 || s[8] != '-')
		return false;
	for (size_t i = 4; i < n; i++)
		if (i != 8 && !(s[i] >= '0' && s[i] <= '9'))
			return false;
	return true;
}

int hp_manifest_add_cve(struct hp_manifest *m, const char *cve)
{
	char **v;

	if (!valid_cve(cve))
		return hp_err(-EINVAL, "invalid CVE id '%s'", cve);
	if (m->n_cves >= HP_MANIFEST_MAX_CVES)
		return hp_err(-E2BIG, "more than %d CVE ids", HP_MANIFEST_MAX_CVES);
	v = realloc(m->cves, (m->n_cves + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	m->cves = v;
	v[m->n_cves] = strdup(cve);
	if (!v[m->n_cves])
		return -ENOMEM;
	m->n_cves++;
	return 0;
}

/* Strict unsigned number: 0x-prefixed hex or decimal, no sign, no junk. */
static int parse_u64(const char *s, uint64_t *ret)
{
	uint64_t v = 0;
	int base = 10;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	if (!*s)
		return -EINVAL;
	for (; *s; s++) {
		unsigned d;

		if (*s >= '0' && *s <= '9')
			d = (unsigned)(*s - '0');
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = (unsigned)(*s - 'a' + 10);
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = (unsigned)(*s - 'A' + 10);
		else
			return -EINVAL;
		if (v > (UINT64_MAX - d) / (unsigned)base)
			return -ERANGE;
		v = v * (unsigned)base + d;
	}
	*ret = v;
	return 0;
}

static bool printable_text(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* Split a line in place into at most max whitespace-separated words. */
static size_t split_words(char *line, char **words, size_t max)
{
	size_t n = 0;
	char *p = line;

	while (*p) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		if (n == max)
			return max + 1;
		words[n++] = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
		if (*p)
			*p++ = '\0';
	}
	return n;
}

static int parse_func(struct hp_manifest *m, char *rest)
{
	char *w[4], *name = NULL, *file = NULL;
	uint64_t off, size;
	unsigned flags = 0;
	size_t n;
	int r;

	n = split_words(rest, w, 4);
	if (n < 3 || n > 4)
		return hp_err(-EINVAL, "func: expected NAME OFFSET SIZE [FLAGS]");
	if (parse_u64(w[1], &off) < 0 || parse_u64(w[2], &size) < 0)
		return hp_err(-EINVAL, "func %s: bad offset or size", w[0]);
	if (size < 5)
		return hp_err(-EINVAL, "func %s: size %" PRIu64 " is below the 5-byte jump", w[0], size);
	if (n == 4) {
		char *save = NULL;

		for (char *t = strtok_r(w[3], ",", &save); t; t = strtok_r(NULL, ",", &save)) {
			size_t i;

			for (i = 0; i < sizeof(func_flags) / sizeof(func_flags[0]); i++)
				if (strcmp(t, func_flags[i].name) == 0)
					break;
			if (i == sizeof(func_flags) / sizeof(func_flags[0]))
				return hp_err(-EINVAL, "func %s: unknown flag '%s'", w[0], t);
			flags |= func_flags[i].flag;
		}
	}
	if (!hp_valid_symname(w[0]))
		return hp_err(-EINVAL, "func: invalid name '%s'", w[0]);
	r = split_symname(w[0], &name, &file);
	if (r < 0)
		return r;
	for (size_t i = 0; i < m->n_funcs; i++)
		if (strcmp(m->funcs[i].name, name) == 0) {
			r = hp_err(-EINVAL, "func %s: listed twice", name);
			goto out;
		}
	r = hp_manifest_add_func(m, name, file, off, size, flags);
out:
	free(name);
	free(file);
	return r;
}

static int parse_sym(struct hp_manifest *m, char *rest)
{
	char *w[2], *name = NULL, *file = NULL;
	uint64_t off;
	int r;

	if (split_words(rest, w, 2) != 2)
		return hp_err(-EINVAL, "sym: expected NAME OFFSET");
	if (parse_u64(w[1], &off) < 0)
		return hp_err(-EINVAL, "sym %s: bad offset", w[0]);
	if (!hp_valid_symname(w[0]))
		return hp_err(-EINVAL, "sym: invalid name '%s'", w[0]);
	r = split_symname(w[0], &name, &file);
	if (r < 0)
		return r;
	r = hp_manifest_add_sym(m, name, file, off);
	free(name);
	free(file);
	return r;
}

/* A single-word value checked by a validator, set once. */
static int set_word(char **field, const char *key, char *rest, bool (*valid)(const char *))
{
	char *w[1];

	if (*field)
		return hp_err(-EINVAL, "%s: given twice", key);
	if (split_words(rest, w, 1) != 1)
		return hp_err(-EINVAL, "%s: expected one word", key);
	if (valid && !valid(w[0]))
		return hp_err(-EINVAL, "%s: invalid value '%s'", key, w[0]);
	return hp_manifest_set_str(field, w[0]);
}

static int set_text(char **field, const char *key, const char *rest)
{
	if (*field)
		return hp_err(-EINVAL, "%s: given twice", key);
	if (strlen(rest) > TEXT_MAX_LEN)
		return hp_err(-EINVAL, "%s: longer than %d bytes", key, TEXT_MAX_LEN);
	if (!printable_text(rest))
		return hp_err(-EINVAL, "%s: control character in text", key);
	return hp_manifest_set_str(field, rest);
}

/* "why NAME TEXT": why the set replaces function NAME (hp build --diff says). */
static int parse_why(struct hp_manifest *m, char *rest)
{
	size_t n = strcspn(rest, " \t");
	char *text = rest + n;

	while (*text == ' ' || *text == '\t')
		text++;
	if (!n || !*text)
		return hp_err(-EINVAL, "why: expected NAME TEXT");
	rest[n] = '\0';
	for (size_t i = 0; i < m->n_funcs; i++)
		if (!strcmp(m->funcs[i].name, rest))
			return set_text(&m->funcs[i].why, "why", text);
	return hp_err(-EINVAL, "why %s: no func %s before it", rest, rest);
}

int hp_manifest_set_why(struct hp_manifest *m, const char *name, const char *text)
{
	for (size_t i = 0; i < m->n_funcs; i++)
		if (!strcmp(m->funcs[i].name, name)) {
			if (strlen(text) > TEXT_MAX_LEN || !printable_text(text))
				return hp_err(-EINVAL, "why %s: control character or longer than %d "
					      "bytes", name, TEXT_MAX_LEN);
			return hp_manifest_set_str(&m->funcs[i].why, text);
		}
	return hp_err(-ENOENT, "why %s: no such function in the manifest", name);
}

static bool valid_target(const char *s)
{
	if (!*s || strlen(s) > 255 || strchr(s, '/') || !strcmp(s, ".") || !strcmp(s, ".."))
		return false;
	return printable_text(s);
}

static bool valid_sha256(const char *s)
{
	return strlen(s) == 64 && hp_valid_build_id(s);
}

static bool valid_created(const char *s)
{
	return strlen(s) <= 40 && printable_text(s) && !strchr(s, ' ');
}

static int parse_line(struct hp_manifest *m, char *line, bool *seen_header)
{
	char *key = line, *rest;

	rest = strpbrk(line, " \t");
	if (rest) {
		*rest++ = '\0';
		while (*rest == ' ' || *rest == '\t')
			rest++;
	} else {
		rest = line + strlen(line);
	}

	if (!*seen_header) {
		uint64_t v;

		if (strcmp(key, "hotpatch-manifest") != 0)
			return hp_err(-EINVAL, "not a hotpatch manifest (first line must be 'hotpatch-manifest 1')");
		if (parse_u64(rest, &v) < 0 || v != HP_MANIFEST_VERSION)
			return hp_err(-EINVAL, "unsupported manifest version '%s'", rest);
		*seen_header = true;
		return 0;
	}
	if (!strcmp(key, "name"))
		return set_word(&m->name, key, rest, hp_valid_setname);
	if (!strcmp(key, "baseline"))
		return set_word(&m->baseline, key, rest, hp_valid_baseline);
	if (!strcmp(key, "month"))
		return set_word(&m->month, key, rest, hp_valid_month);
	if (!strcmp(key, "target"))
		return set_word(&m->target, key, rest, valid_target);
	if (!strcmp(key, "build-id"))
		return set_word(&m->build_id, key, rest, hp_valid_build_id);
	if (!strcmp(key, "patch-sha256"))
		return set_word(&m->patch_sha256, key, rest, valid_sha256);
	if (!strcmp(key, "created"))
		return set_word(&m->created, key, rest, valid_created);
	if (!strcmp(key, "description"))
		return set_text(&m->description, key, rest);
	if (!strcmp(key, "author"))
		return set_text(&m->author, key, rest);
	if (!strcmp(key, "cve")) {
		char *w[1];

		if (split_words(rest, w, 1) != 1)
			return hp_err(-EINVAL, "cve: expected one id");
		return hp_manifest_add_cve(m, w[0]);
	}
	if (!strcmp(key, "func"))
		return parse_func(m, rest);
	if (!strcmp(key, "sym"))
		return parse_sym(m, rest);
	if (!strcmp(key, "why"))
		return parse_why(m, rest);
	return hp_err(-EINVAL, "unknown key '%s'", key);
}

int hp_manifest_parse(const char *text, size_t len, struct hp_manifest **ret)
{
	struct hp_manifest *m;
	bool seen_header = false;
	char line[LINE_MAX_LEN + 1];
	size_t pos = 0, lineno = 0;
	int r = 0;

	if (len > HP_MANIFEST_MAX_BYTES)
		return hp_err(-EINVAL, "manifest larger than %u bytes", HP_MANIFEST_MAX_BYTES);
	if (memchr(text, '\0', len))
		return hp_err(-EINVAL, "manifest contains a NUL byte");
	m = hp_manifest_new();
	if (!m)
		return -ENOMEM;

	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;

		lineno++;
		if (n > LINE_MAX_LEN) {
			r = hp_err(-EINVAL, "manifest line %zu: longer than %d bytes", lineno, LINE_MAX_LEN);
			goto out;
		}
		memcpy(line, text + pos, n);
		line[n] = '\0';
		pos += n + (nl ? 1 : 0);
		if (n && line[n - 1] == '\r')
			line[--n] = '\0';
		while (n && (line[n - 1] == ' ' || line[n - 1] == '\t'))
			line[--n] = '\0';
		if (n == 0 || line[0] == '#')
			continue;
		r = parse_line(m, line, &seen_header);
		if (r < 0) {
			hp_err_prefix(r, "manifest line %zu: ", lineno);
			goto out;
		}
	}
	if (!seen_header) {
		r = hp_err(-EINVAL, "manifest is empty");
		goto out;
	}
	r = hp_manifest_validate(m);
out:
	if (r < 0) {
		hp_manifest_free(m);
		return r;
	}
	*ret = m;
	return 0;
}

int hp_manifest_validate(const struct hp_manifest *m)
{
	static const char *const names[] = { "name", "baseline", "month", "target", "build-id",
					     "patch-sha256" };
	const char *vals[] = { m->name, m->baseline, m->month, m->target, m->build_id,
			       m->patch_sha256 };

	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
		if (!vals[i])
			return hp_err(-EINVAL, "manifest: missing '%s'", names[i]);
	if (m->n_funcs == 0)
		return hp_err(-EINVAL, "manifest: no 'func' line: the set replaces nothing");
	return 0;
}

int hp_manifest_format(const struct hp_manifest *m, struct hp_buf *out)
{
	struct hp_buf b = HP_BUF_INIT;
	int r;

#define ADD(...) do { r = hp_buf_addf(&b, __VA_ARGS__); if (r < 0) goto out; } while (0)
	ADD("hotpatch-manifest %u\n", HP_MANIFEST_VERSION);
	if (m->name)
		ADD("name %s\n", m->name);
	if (m->baseline)
		ADD("baseline %s\n", m->baseline);
	if (m->month)
		ADD("month %s\n", m->month);
	if (m->target)
		ADD("target %s\n", m->target);
	if (m->build_id)
		ADD("build-id %s\n", m->build_id);
	if (m->patch_sha256)
		ADD("patch-sha256 %s\n", m->patch_sha256);
	if (m->description)
		ADD("description %s\n", m->description);
	if (m->author)
		ADD("author %s\n", m->author);
	if (m->created)
		ADD("created %s\n", m->created);
	for (size_t i = 0; i < m->n_cves; i++)
		ADD("cve %s\n", m->cves[i]);
	for (size_t i = 0; i < m->n_funcs; i++) {
		const struct hp_manifest_func *f = &m->funcs[i];

		ADD("func %s%s%s 0x%" PRIx64 " 0x%" PRIx64, f->name, f->file ? "@" : "",
		    f->file ? f->file : "", f->offset, f->size);
		if (f->flags & HP_FUNC_ACTIVE_OK)
			ADD(" active-ok");
		ADD("\n");
		if (f->why)
			ADD("why %s %s\n", f->name, f->why);
	}
	for (size_t i = 0; i < m->n_syms; i++) {
		const struct hp_manifest_sym *s = &m->syms[i];

		ADD("sym %s%s%s 0x%" PRIx64 "\n", s->name, s->file ? "@" : "",
		    s->file ? s->file : "", s->offset);
	}
#undef ADD
	r = hp_buf_add(out, b.data, b.len);
out:
	hp_buf_release(&b);
	return r;
}

char *hp_manifest_set_id(const struct hp_manifest *m)
{
	struct hp_buf b = HP_BUF_INIT;

	if (hp_buf_addf(&b, "%s/%s/%s", m->baseline ? m->baseline : "?",
			m->month ? m->month : "?", m->name ? m->name : "?") < 0) {
		hp_buf_release(&b);
		return NULL;
	}
	return hp_buf_detach(&b, NULL);
}

const struct hp_manifest_func *hp_manifest_find_func(const struct hp_manifest *m, const char *name)
{
	for (size_t i = 0; i < m->n_funcs; i++)
		if (strcmp(m->funcs[i].name, name) == 0)
			return &m->funcs[i];
	return NULL;
}

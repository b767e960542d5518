/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * diff.c: hp build --diff (docs/authoring.md). From the target's source tree,
 * the upstream fix as unified diffs and the compile commands of the
 * translation units (TUs):
 *
 *   1. apply the diffs to a copy of the tree with patch(1), -p1;
 *   2. compile every affected TU before and after, with its own command plus
 *      -ffunction-sections -fdata-sections -g (one section per function and
 *      per variable; -g changes no code);
 *   3. check that the rebuilt original is BIN: each function's bytes, the
 *      relocated fields and what the linker may relax masked;
 *   4. compare the two objects function by function, modulo relocations
 *      (a relocation's target compared by what it designates: a symbol's
 *      name, a string's text, a constant's bytes), and data by content;
 *   5. write, per TU, a relocatable object in which the replaced functions
 *      are the only global definitions, and every reference to what did not
 *      change (static functions and variables, static locals of changed
 *      functions) is an undefined symbol bound to the running target through
 *      the manifest; link those with the linker's --gc-sections, which keeps
 *      exactly what the replaced functions reach (new functions, string
 *      literals, constants, their unwind information).
 *
 * The link is a position-independent executable with no interpreter,
 * against a stub library that defines the bound names: that is how ld
 * accepts PC-relative references to them and writes them as dynamic
 * relocations (text relocations, which the engine applies in its own copy
 * before it maps the patch), where a -shared link refuses code built with
 * -fPIE. The stub is removed from DT_NEEDED afterwards.
 *
 * The techniques follow kpatch's create-diff-object and upatch-diff:
 * correlate by name, compare sections modulo relocations, include what
 * changed and what it needs, bind the rest to the original.
 */
#ifdef HAVE_CAPSTONE
#include <capstone/capstone.h>
#endif
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "author-int.h"

#define DIFF_MAX_FILES 4096        /* files one set of diffs may touch */
#define DIFF_MAX_BYTES (64u << 20) /* one diff file */
#define DIFF_MAX_LINE 10000000     /* a hunk's line numbers and lengths */
#define DIFF_CC_JSON_MAX (256u << 20)
#define DIFF_MAX_TUS 1024
#define DIFF_STUB_SONAME "hp-bin-stub.so"

/* ---- the diffs ------------------------------------------------------------- */

static int int_add(int **v, size_t *n, int x)
{
	int *nv = realloc(*v, (*n + 1) * sizeof(**v));

	if (!nv)
		return -ENOMEM;
	nv[(*n)++] = x;
	*v = nv;
	return 0;
}

static bool is_source_name(const char *p)
{
	static const char *const exts[] = { ".c", ".cc", ".cpp", ".cxx", ".C", ".c++", NULL };
	size_t lp = strlen(p);

	for (size_t i = 0; exts[i]; i++) {
		size_t le = strlen(exts[i]);

		if (lp > le && !strcmp(p + lp - le, exts[i]))
			return true;
	}
	return false;
}

/* "b/src/x.c\t2026-..." -> "src/x.c" (one leading component, as -p1). */
static char *diff_path(const char *s)
{
	size_t n = strcspn(s, "\t\n");
	const char *slash;

	while (n && s[n - 1] == ' ')
		n--;
	if (n == 9 && !strncmp(s, "/dev/null", 9))
		return NULL;
	slash = memchr(s, '/', n);
	if (!slash)
		return NULL;
	return strndup(slash + 1, n - (size_t)(slash + 1 - s));
}

static struct dfile *dfile_get(struct dfile **v, size_t *n, const char *path)
{
	struct dfile *nv;

	for (size_t i = 0; i < *n; i++)
		if (!strcmp((*v)[i].path, path))
			return &(*v)[i];
	if (*n >= DIFF_MAX_FILES)
		return NULL;
	nv = realloc(*v, (*n + 1) * sizeof(*nv));
	if (!nv)
		return NULL;
	*v = nv;
	memset(&nv[*n], 0, sizeof(nv[*n]));
	nv[*n].path = strdup(path);
	if (!nv[*n].path)
		return NULL;
	nv[*n].is_tu_source = is_source_name(path);
	return &nv[(*n)++];
}

int diff_parse(const char *name, const char *text, struct dfile **files, size_t *n_files)
{
	struct dfile *cur = NULL;
	struct hunk *h = NULL;
	int oline = 0, nline = 0, oleft = 0, nleft = 0, r = 0;
	size_t n_seen = 0;

	for (const char *line = text, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		next = next ? next + 1 : NULL;
		if (h && (oleft > 0 || nleft > 0)) {
			char c = line[0];

			if (c == ' ' || c == '\n' || c == '\r') {
				r = int_add(&h->pairs, &h->n_pairs, oline);
				if (r >= 0)
					r = int_add(&h->pairs, &h->n_pairs, nline);
				oline++, nline++, oleft--, nleft--;
			} else if (c == '-') {
				/* A removal changes the lines around where it was. */
				r = int_add(&cur->changed, &cur->n_changed, nline > 1 ? nline - 1 : 1);
				if (r >= 0)
					r = int_add(&cur->changed, &cur->n_changed, nline);
				oline++, oleft--;
			} else if (c == '+') {
				r = int_add(&cur->changed, &cur->n_changed, nline);
				nline++, nleft--;
			} else if (c != '\\') {
				return hp_err(-EINVAL, "diff %s: a hunk ends early: %.*s", name,
					      (int)strcspn(line, "\n"), line);
			}
			if (r < 0)
				return r;
			continue;
		}
		h = NULL;
		if (!strncmp(line, "+++ ", 4)) {
			char *p = diff_path(line + 4);

			n_seen++;
			if (!p) {
				cur = NULL; /* a deleted file: its TU, if any, is refused below */
				continue;
			}
			cur = dfile_get(files, n_files, p);
			free(p);
			if (!cur)
				return hp_err(-E2BIG, "diff %s: more than %d files", name, DIFF_MAX_FILES);
		} else if (!strncmp(line, "@@ -", 4) && cur) {
			struct hunk *nh;
			long os, ol = 1, ns, nl = 1;
			const char *p = line + 4;
			char *end;

			os = strtol(p, &end, 10);
			if (*end == ',')
				ol = strtol(end + 1, &end, 10);
			if (strncmp(end, " +", 2))
				return hp_err(-EINVAL, "diff %s: malformed hunk header: %.*s", name,
					      (int)strcspn(line, "\n"), line);
			ns = strtol(end + 2, &end, 10);
			if (*end == ',')
				nl = strtol(end + 1, &end, 10);
			/* Bounded, so that no line number below can overflow an int. */
			if (os < 0 || ol < 0 || ns < 0 || nl < 0 || os > DIFF_MAX_LINE ||
			    ol > DIFF_MAX_LINE || ns > DIFF_MAX_LINE || nl > DIFF_MAX_LINE)
				return hp_err(-EINVAL, "diff %s: malformed hunk header (a line number "
					      "or length beyond %d): %.*s", name, DIFF_MAX_LINE,
					      (int)strcspn(line, "\n"), line);
			nh = realloc(cur->hunks, (cur->n_hunks + 1) * sizeof(*nh));
			if (!nh)
				return -ENOMEM;
			cur->hunks = nh;
			h = &nh[cur->n_hunks++];
			memset(h, 0, sizeof(*h));
			h->old_start = (int)os, h->old_len = (int)ol;
			h->new_start = (int)ns, h->new_len = (int)nl;
			oline = h->old_start, nline = h->new_start;
			oleft = h->old_len, nleft = h->new_len;
		}
	}
	if (n_seen == 0)
		return hp_err(-EINVAL, "diff %s: not a unified diff (no +++ line)", name);
	return 0;
}

int diff_line_map(const struct dfile *f, int L)
{
	int delta = 0;

	for (size_t i = 0; i < f->n_hunks; i++) {
		const struct hunk *h = &f->hunks[i];

		if (L < h->old_start)
			return L + delta;
		if (L < h->old_start + h->old_len) {
			for (size_t k = 0; k + 1 < h->n_pairs; k += 2)
				if (h->pairs[k] == L)
					return h->pairs[k + 1];
			return 0;
		}
		delta = (h->new_start + h->new_len) - (h->old_start + h->old_len);
	}
	return L + delta;
}

void diff_files_release(struct dfile *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].path);
		free(v[i].changed);
		for (size_t k = 0; k < v[i].n_hunks; k++)
			free(v[i].hunks[k].pairs);
		free(v[i].hunks);
	}
	free(v);
}

/* ---- compile commands ------------------------------------------------------ */

/* A parameter or command substitution starts at cmd[i] (outside single quotes). */
static bool expansion_at(const char *cmd, size_t i)
{
	if (cmd[i] == '`')
		return true;
	return cmd[i] == '$' && cmd[i + 1] &&
	       (isalnum((unsigned char)cmd[i + 1]) || strchr("_{(@*#?$!-", cmd[i + 1]));
}

static int expansion_err(const char *cmd, size_t i)
{
	return hp_err(-EINVAL, "a shell expansion at offset %zu (%.16s): compile commands are "
		      "not expanded", i, cmd + i);
}

/*
 * A "command" of compile_commands.json split into its arguments by the
 * POSIX shell's quoting rules, with nothing expanded: blanks (space, tab)
 * separate words; '...' keeps everything literal; "..." keeps everything
 * but a backslash before $ ` " \ or a newline, which quotes that character
 * (and drops a newline); an unquoted backslash quotes the next character
 * (a backslash-newline is dropped). '' and "" are empty arguments.
 *
 * What a shell would do more is refused rather than guessed, because its
 * result would depend on hp's environment, not the build's: a parameter
 * or command substitution ($NAME, ${...}, $(...), `...`, outside single
 * quotes), a tilde at the start of a word (someone's home directory), and
 * an operator outside quotes (| & ; < > ( ) or a newline: more than one
 * command). Glob characters stay as written: a compile argument that
 * matched files in the build's directory cannot be matched here.
 * ret is empty, and filled on success only. -EINVAL with the reason in
 * the error slot.
 */
int diff_split_command(const char *cmd, struct strv *ret)
{
	size_t len = strlen(cmd), n = 0, start = 0;
	struct strv out = { NULL, 0 };
	char *word = malloc(len + 1); /* no word is longer than the line */
	bool in_word = false;
	int r = 0;

	assert(ret->n == 0);
	if (!word)
		return -ENOMEM;
	for (size_t i = 0; i < len && r >= 0; i++) {
		char c = cmd[i];

		if (c == ' ' || c == '\t') {
			if (in_word)
				r = strv_addn(&out, word, n);
			in_word = false;
			n = 0;
			continue;
		}
		if (!in_word)
			start = i;
		in_word = true;
		if (c == '\\') {
			if (i + 1 == len)
				r = hp_err(-EINVAL, "a backslash ends the command");
			else if (cmd[++i] != '\n')
				word[n++] = cmd[i];
			else if (start + 1 == i)
				in_word = false; /* a line continuation between words */
		} else if (c == '\'') {
			const char *q = memchr(cmd + i + 1, '\'', len - i - 1);
			size_t k;

			if (!q) {
				r = hp_err(-EINVAL, "the single quote at offset %zu is not closed", i);
				break;
			}
			k = (size_t)(q - cmd) - i - 1;
			memcpy(word + n, cmd + i + 1, k);
			n += k;
			i += k + 1;
		} else if (c == '"') {
			size_t open = i;

			for (i++; i < len && cmd[i] != '"' && r >= 0; i++) {
				if (cmd[i] == '\\' && i + 1 < len && strchr("$`\"\\\n", cmd[i + 1])) {
					if (cmd[++i] != '\n')
						word[n++] = cmd[i];
				} else if (expansion_at(cmd, i)) {
					r = expansion_err(cmd, i);
				} else {
					word[n++] = cmd[i];
				}
			}
			if (r >= 0 && i == len)
				r = hp_err(-EINVAL, "the double quote at offset %zu is not closed", open);
		} else if (expansion_at(cmd, i)) {
			r = expansion_err(cmd, i);
		} else if (c == '~' && start == i) {
			r = hp_err(-EINVAL, "a tilde at offset %zu would be a home directory: "
				   "compile commands are not expanded", i);
		} else if (c == '#' && start == i) {
			r = hp_err(-EINVAL, "a '#' at offset %zu starts a shell comment", i);
		} else if (c == '\n') {
			r = hp_err(-EINVAL, "a newline at offset %zu outside quotes: one compile "
				   "command is one command", i);
		} else if (strchr("|&;<>()", c)) {
			r = hp_err(-EINVAL, "a shell operator '%c' at offset %zu outside quotes: one "
				   "compile command is one command", c, i);
		} else {
			word[n++] = c;
		}
	}
	if (r >= 0 && in_word)
		r = strv_addn(&out, word, n);
	free(word);
	if (r < 0) {
		strv_release(&out);
		return r;
	}
	*ret = out;
	return 0;
}

static char *join_path(const char *dir, const char *p)
{
	char buf[PATH_MAX * 2];

	if (p[0] == '/')
		snprintf(buf, sizeof(buf), "%s", p);
	else
		snprintf(buf, sizeof(buf), "%s/%s", dir, p);
	return strdup(buf);
}

/* An absolute path with symlinks resolved, when it exists; else as given. */
static char *resolve_path(const char *dir, const char *p)
{
	char *j = join_path(dir, p), real[PATH_MAX];

	if (j && realpath(j, real)) {
		free(j);
		return strdup(real);
	}
	return j;
}

int diff_ccmds_load(const char *path, struct ccmd **ret, size_t *ret_n)
{
	struct hp_buf text = HP_BUF_INIT;
	json_object *root = NULL;
	struct ccmd *v = NULL;
	size_t n = 0, len;
	int r;

	r = hp_read_file(path, DIFF_CC_JSON_MAX, &text);
	if (r < 0)
		return hp_err(r, "compile commands %s: %s", path, strerror(-r));
	root = json_tokener_parse(text.data ? text.data : "");
	if (!root || !json_object_is_type(root, json_type_array)) {
		r = hp_err(-EINVAL, "compile commands %s: not a JSON array of commands", path);
		goto out;
	}
	len = json_object_array_length(root);
	v = calloc(len ? len : 1, sizeof(*v));
	if (!v) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < len; i++) {
		json_object *e = json_object_array_get_idx(root, i), *d, *f, *c, *a;
		struct ccmd *cc = &v[n];

		if (!json_object_object_get_ex(e, "directory", &d) ||
		    !json_object_object_get_ex(e, "file", &f)) {
			r = hp_err(-EINVAL, "compile commands %s: entry %zu has no directory or file",
				   path, i);
			goto out;
		}
		if (!json_object_is_type(d, json_type_string) ||
		    !json_object_is_type(f, json_type_string)) {
			r = hp_err(-EINVAL, "compile commands %s: entry %zu: its directory and file "
				   "must be strings", path, i);
			goto out;
		}
		cc->dir = strdup(json_object_get_string(d));
		if (!cc->dir) {
			r = -ENOMEM;
			goto out;
		}
		cc->file = resolve_path(cc->dir, json_object_get_string(f));
		n++;
		if (!cc->file) {
			r = -ENOMEM;
			goto out;
		}
		if (json_object_object_get_ex(e, "arguments", &a) &&
		    json_object_is_type(a, json_type_array)) {
			for (size_t k = 0; k < json_object_array_length(a) && r >= 0; k++) {
				json_object *w = json_object_array_get_idx(a, k);

				if (!json_object_is_type(w, json_type_string))
					r = hp_err(-EINVAL, "compile commands %s: entry %zu: "
						   "argument %zu is not a string", path, i, k);
				else
					r = strv_add(&cc->argv, json_object_get_string(w));
			}
		} else if (json_object_object_get_ex(e, "command", &c)) {
			if (!json_object_is_type(c, json_type_string)) {
				r = hp_err(-EINVAL, "compile commands %s: entry %zu: its command is "
					   "not a string", path, i);
				goto out;
			}
			r = diff_split_command(json_object_get_string(c), &cc->argv);
			if (r == -EINVAL)
				r = hp_err_prefix(r, "compile commands %s: entry %zu: ", path, i);
		}
		if (r >= 0 && cc->argv.n == 0)
			r = hp_err(-EINVAL, "compile commands %s: entry %zu has no command", path, i);
		if (r < 0)
			goto out;
	}
	r = 0;
out:
	if (root)
		json_object_put(root);
	hp_buf_release(&text);
	if (r < 0) {
		diff_ccmds_release(v, n);
		return r;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

void diff_ccmds_release(struct ccmd *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].dir);
		free(v[i].file);
		strv_release(&v[i].argv);
	}
	free(v);
}

/* ---- objects --------------------------------------------------------------- */

void diff_obj_release(struct obj *o)
{
	for (size_t i = 0; i < o->n_secs; i++)
		free(o->secs[i].rels);
	free(o->secs);
	free(o->syms);
	author_elf_close(&o->ef);
	memset(o, 0, sizeof(*o));
	o->ef.fd = -1;
}

static int cmp_rel(const void *a, const void *b)
{
	const struct orel *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

static bool rel_pcrel(uint32_t type);

#ifdef HAVE_CAPSTONE
/*
 * The addend of a PC-relative reference counts the bytes between the end of
 * its 4-byte field and the end of the instruction: an immediate after the
 * displacement (`cmpq $0, x(%rip)`: -5, not -4). What the reference
 * designates is S + A + 4 + tail; the instructions of each code section
 * decoded once to know the tail.
 */
static void rel_tails(struct osec *s, csh cs, cs_insn *insn)
{
	const uint8_t *code = s->data->d_buf;
	size_t len = s->data->d_size, k = 0;
	uint64_t addr = 0;

	while (k < s->n_rels && cs_disasm_iter(cs, &code, &len, &addr, insn)) {
		uint64_t end = insn->address + insn->size;

		for (; k < s->n_rels && s->rels[k].off < end; k++)
			if (rel_pcrel(s->rels[k].type) && s->rels[k].off >= insn->address &&
			    s->rels[k].off + 4 <= end)
				s->rels[k].tail = (uint8_t)(end - (s->rels[k].off + 4));
	}
}
#endif

int diff_obj_load(const char *path, struct obj *ret)
{
	struct obj o;
	size_t shstr;
	Elf_Scn *scn = NULL;
	int r;

	memset(&o, 0, sizeof(o));
	r = author_elf_open(path, &o.ef);
	if (r < 0)
		return r;
	if (o.ef.eh.e_type != ET_REL || o.ef.eh.e_machine != EM_X86_64) {
		r = hp_err(-ENOEXEC, "%s: not an x86-64 relocatable object", path);
		goto fail;
	}
	if (elf_getshdrnum(o.ef.elf, &o.n_secs) < 0 || elf_getshdrstrndx(o.ef.elf, &shstr) < 0) {
		r = hp_err(-ENOEXEC, "%s: %s", path, elf_errmsg(-1));
		goto fail;
	}
	o.secs = calloc(o.n_secs, sizeof(*o.secs));
	if (!o.secs) {
		r = -ENOMEM;
		goto fail;
	}
	while ((scn = elf_nextscn(o.ef.elf, scn))) {
		size_t i = elf_ndxscn(scn);
		struct osec *s = &o.secs[i];

		if (i >= o.n_secs || !gelf_getshdr(scn, &s->sh))
			continue;
		s->name = elf_strptr(o.ef.elf, shstr, s->sh.sh_name);
		if (!s->name)
			s->name = "";
		s->data = elf_getdata(scn, NULL);
		s->func = s->obj = -1;
		if (s->sh.sh_type == SHT_SYMTAB)
			o.symtab_idx = i;
	}
	for (size_t i = 1; i < o.n_secs; i++) {
		struct osec *rs = &o.secs[i], *t;
		size_t n;

		if (rs->sh.sh_type != SHT_RELA || rs->sh.sh_info >= o.n_secs || !rs->data ||
		    rs->sh.sh_entsize == 0)
			continue;
		t = &o.secs[rs->sh.sh_info];
		if (t->rels) {
			r = hp_err(-ENOEXEC, "%s: section %u has two relocation sections", path,
				   (unsigned)rs->sh.sh_info);
			goto fail;
		}
		n = rs->data->d_size / rs->sh.sh_entsize;
		t->rels = calloc(n ? n : 1, sizeof(*t->rels));
		if (!t->rels) {
			r = -ENOMEM;
			goto fail;
		}
		t->rela_idx = i;
		for (size_t k = 0; k < n; k++) {
			GElf_Rela ra;

			if (!gelf_getrela(rs->data, (int)k, &ra))
				continue;
			t->rels[t->n_rels].off = ra.r_offset;
			t->rels[t->n_rels].addend = ra.r_addend;
			t->rels[t->n_rels].type = (uint32_t)GELF_R_TYPE(ra.r_info);
			t->rels[t->n_rels].sym = (uint32_t)GELF_R_SYM(ra.r_info);
			t->n_rels++;
		}
		qsort(t->rels, t->n_rels, sizeof(*t->rels), cmp_rel);
	}
#ifdef HAVE_CAPSTONE
	{
		csh cs;
		cs_insn *insn;

		if (cs_open(CS_ARCH_X86, CS_MODE_64, &cs) != CS_ERR_OK) {
			r = hp_err(-ENOMEM, "%s: capstone: cannot open a decoder", path);
			goto fail;
		}
		insn = cs_malloc(cs);
		for (size_t i = 1; insn && i < o.n_secs; i++)
			if ((o.secs[i].sh.sh_flags & SHF_EXECINSTR) && o.secs[i].n_rels &&
			    o.secs[i].data && o.secs[i].data->d_buf)
				rel_tails(&o.secs[i], cs, insn);
		if (insn)
			cs_free(insn, 1);
		cs_close(&cs);
	}
#endif
	if (o.symtab_idx) {
		struct osec *ss = &o.secs[o.symtab_idx];

		o.n_syms = ss->data && ss->sh.sh_entsize ? ss->data->d_size / ss->sh.sh_entsize : 0;
		o.syms = calloc(o.n_syms ? o.n_syms : 1, sizeof(*o.syms));
		if (!o.syms) {
			r = -ENOMEM;
			goto fail;
		}
		for (size_t i = 0; i < o.n_syms; i++) {
			struct osym *y = &o.syms[i];

			y->name = ""; /* an entry libelf cannot read is an unnamed nothing */
			if (!gelf_getsym(ss->data, (int)i, &y->st))
				continue;
			y->name = elf_strptr(o.ef.elf, ss->sh.sh_link, y->st.st_name);
			if (!y->name)
				y->name = "";
			if (y->st.st_shndx == SHN_UNDEF || y->st.st_shndx >= o.n_secs)
				continue;
			if (GELF_ST_TYPE(y->st.st_info) == STT_FUNC && o.secs[y->st.st_shndx].func < 0)
				o.secs[y->st.st_shndx].func = (long)i;
			if ((GELF_ST_TYPE(y->st.st_info) == STT_OBJECT ||
			     GELF_ST_TYPE(y->st.st_info) == STT_TLS) && o.secs[y->st.st_shndx].obj < 0)
				o.secs[y->st.st_shndx].obj = (long)i;
		}
	}
	*ret = o;
	return 0;
fail:
	diff_obj_release(&o);
	return r;
}

static bool sym_defined(const struct obj *o, size_t i)
{
	return o->syms[i].st.st_shndx != SHN_UNDEF && o->syms[i].st.st_shndx < o->n_secs;
}

static unsigned sym_type(const struct obj *o, size_t i)
{
	return GELF_ST_TYPE(o->syms[i].st.st_info);
}

static bool sym_local(const struct obj *o, size_t i)
{
	return GELF_ST_BIND(o->syms[i].st.st_info) == STB_LOCAL;
}

/* A defined function (type FUNC) or data symbol (OBJECT, TLS) by name, or -1. */
static long obj_find(const struct obj *o, const char *name, bool func)
{
	for (size_t i = 1; i < o->n_syms; i++) {
		unsigned t = sym_type(o, i);

		if (!sym_defined(o, i) || strcmp(o->syms[i].name, name))
			continue;
		if (func ? t == STT_FUNC : (t == STT_OBJECT || t == STT_TLS))
			return (long)i;
	}
	return -1;
}

/* A static local's name without the number gcc gives it ("calls.0" -> "calls"). */
static size_t norm_len(const char *name)
{
	size_t n = strlen(name), k = n;

	while (k > 0 && isdigit((unsigned char)name[k - 1]))
		k--;
	if (k < n && k > 1 && name[k - 1] == '.')
		return k - 1;
	return n;
}

static bool norm_eq(const char *a, const char *b)
{
	size_t la = norm_len(a), lb = norm_len(b);

	return la == lb && !strncmp(a, b, la);
}

/* Bytes a relocation's field takes (masked when comparing code). */
static unsigned rel_width(uint32_t type)
{
	switch (type) {
	case R_X86_64_64:
	case R_X86_64_DTPOFF64:
	case R_X86_64_TPOFF64:
	case R_X86_64_DTPMOD64:
		return 8;
	case R_X86_64_NONE:
	case R_X86_64_TLSDESC_CALL:
		return 0;
	default:
		return 4;
	}
}

static bool rel_pcrel(uint32_t type)
{
	return type == R_X86_64_PC32 || type == R_X86_64_PLT32 || type == R_X86_64_GOTPCREL ||
	       type == R_X86_64_GOTPCRELX || type == R_X86_64_REX_GOTPCRELX;
}

static bool rel_tls(uint32_t type)
{
	return type == R_X86_64_TLSGD || type == R_X86_64_TLSLD || type == R_X86_64_GOTTPOFF ||
	       type == R_X86_64_TPOFF32 || type == R_X86_64_DTPOFF32 ||
	       type == R_X86_64_GOTPC32_TLSDESC || type == R_X86_64_TLSDESC_CALL;
}

/* What a relocation designates. */
enum tkind { T_UNDEF, T_NAMED, T_SEC };
struct tdesc {
	enum tkind kind;
	const char *name;
	long sym;      /* the symbol designated (T_NAMED, T_UNDEF) */
	size_t sec;    /* T_SEC, and T_NAMED's section */
	int64_t off;   /* from the symbol (T_NAMED) or the section start (T_SEC) */
};

/* The data symbol of sec covering off, or -1. */
static long obj_covering(const struct obj *o, size_t sec, int64_t off)
{
	for (size_t i = 1; i < o->n_syms; i++) {
		const GElf_Sym *s = &o->syms[i].st;
		unsigned t = sym_type(o, i);

		if (s->st_shndx != sec || (t != STT_OBJECT && t != STT_TLS && t != STT_FUNC))
			continue;
		if (off >= (int64_t)s->st_value && off < (int64_t)(s->st_value + (s->st_size ? s->st_size : 1)))
			return (long)i;
	}
	return -1;
}

/* a + b, wrapping as the target's addresses do (an offset from a crafted
 * object may overflow int64_t: UBSan, found by fuzz-diffobj) */
static int64_t off_add(int64_t a, int64_t b)
{
	return (int64_t)((uint64_t)a + (uint64_t)b);
}

static struct tdesc rel_desc(const struct obj *o, const struct orel *r)
{
	struct tdesc t = { T_UNDEF, "", -1, 0, r->addend };
	const struct osym *y = r->sym < o->n_syms ? &o->syms[r->sym] : NULL;
	unsigned type;
	int64_t pos;
	long cov;

	if (!y)
		return t;
	type = GELF_ST_TYPE(y->st.st_info);
	if (!sym_defined(o, r->sym)) {
		t.name = y->name;
		t.sym = r->sym;
		return t;
	}
	if (type == STT_FUNC || type == STT_OBJECT || type == STT_TLS) {
		t.kind = T_NAMED;
		t.name = y->name;
		t.sym = r->sym;
		t.sec = y->st.st_shndx;
		return t;
	}
	/* A section symbol or a local label: what lies there. */
	t.kind = T_SEC;
	t.sec = y->st.st_shndx;
	t.off = off_add((int64_t)y->st.st_value, r->addend);
	pos = off_add(t.off, rel_pcrel(r->type) ? 4 + (int64_t)r->tail : 0);
	if (o->secs[t.sec].func >= 0) {
		const struct osym *f = &o->syms[o->secs[t.sec].func];

		t.kind = T_NAMED;
		t.name = f->name;
		t.sym = o->secs[t.sec].func;
		t.off = off_add(t.off, -(int64_t)f->st.st_value);
		return t;
	}
	cov = obj_covering(o, t.sec, pos);
	if (cov >= 0) {
		t.kind = T_NAMED;
		t.name = o->syms[cov].name;
		t.sym = cov;
		t.off = off_add(t.off, -(int64_t)o->syms[cov].st.st_value);
	}
	return t;
}

static const uint8_t *sec_bytes(const struct obj *o, size_t sec)
{
	const struct osec *s = &o->secs[sec];

	return s->sh.sh_type == SHT_NOBITS || !s->data ? NULL : s->data->d_buf;
}

/* The NUL-terminated string of a string section holding pos, and pos's place in it. */
static const char *string_at(const struct obj *o, size_t sec, int64_t pos, int64_t *ret_in)
{
	const struct osec *s = &o->secs[sec];
	const char *d = (const char *)sec_bytes(o, sec);
	int64_t st;

	if (!d || pos < 0 || (uint64_t)pos >= s->data->d_size)
		return NULL;
	st = pos;
	while (st > 0 && d[st - 1])
		st--;
	if (!memchr(d + st, 0, s->data->d_size - (size_t)st))
		return NULL;
	*ret_in = pos - st;
	return d + st;
}

static bool bytes_masked_eq(const uint8_t *a, const uint8_t *b, size_t n, const struct orel *ra,
			    size_t nra, const struct orel *rb, size_t nrb, uint64_t base)
{
	uint8_t *mask = calloc(n ? n : 1, 1);
	bool eq = true;

	if (!mask)
		return false;
	for (int side = 0; side < 2; side++) {
		const struct orel *r = side ? rb : ra;
		size_t nr = side ? nrb : nra;

		for (size_t i = 0; i < nr; i++)
			for (unsigned k = 0; k < rel_width(r[i].type); k++)
				if (r[i].off >= base && r[i].off - base + k < n)
					mask[r[i].off - base + k] = 1;
	}
	for (size_t i = 0; i < n && eq; i++)
		eq = mask[i] || a[i] == b[i];
	free(mask);
	return eq;
}

/* Shallow: two anonymous data sections (jump tables, constants) hold the same. */
static bool anon_eq(const struct obj *A, size_t sa, const struct obj *B, size_t sb)
{
	const struct osec *x = &A->secs[sa], *y = &B->secs[sb];

	if (x->sh.sh_size != y->sh.sh_size || x->sh.sh_type != y->sh.sh_type ||
	    x->n_rels != y->n_rels)
		return false;
	if (sec_bytes(A, sa) && sec_bytes(B, sb) &&
	    !bytes_masked_eq(sec_bytes(A, sa), sec_bytes(B, sb), x->sh.sh_size, x->rels, x->n_rels,
			     y->rels, y->n_rels, 0))
		return false;
	for (size_t i = 0; i < x->n_rels; i++) {
		struct tdesc ta = rel_desc(A, &x->rels[i]), tb = rel_desc(B, &y->rels[i]);

		if (x->rels[i].off != y->rels[i].off || x->rels[i].type != y->rels[i].type ||
		    ta.kind != tb.kind || ta.off != tb.off)
			return false;
		if (ta.kind == T_SEC ? strcmp(A->secs[ta.sec].name, B->secs[tb.sec].name) :
				       !norm_eq(ta.name, tb.name))
			return false;
	}
	return true;
}

/* Whether two relocations, in functions selfa and selfb, designate the same thing. */
static bool rel_equiv(const struct obj *A, const struct orel *ra, size_t selfa, const struct obj *B,
		      const struct orel *rb, size_t selfb)
{
	struct tdesc ta = rel_desc(A, ra), tb = rel_desc(B, rb);
	const struct osec *sa, *sb;

	if (ra->type != rb->type || ta.kind != tb.kind)
		return false;
	if (ta.kind != T_SEC)
		return norm_eq(ta.name, tb.name) && ta.off == tb.off;
	if ((ta.sec == selfa) != (tb.sec == selfb))
		return false;
	if (ta.sec == selfa)
		return ta.off == tb.off;
	sa = &A->secs[ta.sec];
	sb = &B->secs[tb.sec];
	if ((sa->sh.sh_flags & SHF_STRINGS) && (sb->sh.sh_flags & SHF_STRINGS)) {
		int64_t pa = off_add(ta.off, rel_pcrel(ra->type) ? 4 : 0);
		int64_t pb = off_add(tb.off, rel_pcrel(rb->type) ? 4 : 0);
		int64_t ia, ib;
		const char *xa = string_at(A, ta.sec, pa, &ia), *xb = string_at(B, tb.sec, pb, &ib);

		return xa && xb && ia == ib && !strcmp(xa, xb);
	}
	if ((sa->sh.sh_flags & SHF_MERGE) && (sb->sh.sh_flags & SHF_MERGE) && sa->sh.sh_entsize &&
	    sa->sh.sh_entsize == sb->sh.sh_entsize) {
		int64_t pa = off_add(ta.off, rel_pcrel(ra->type) ? 4 : 0);
		int64_t pb = off_add(tb.off, rel_pcrel(rb->type) ? 4 : 0);
		uint64_t es = sa->sh.sh_entsize;

		if (pa < 0 || pb < 0 || (uint64_t)pa + es > sa->sh.sh_size ||
		    (uint64_t)pb + es > sb->sh.sh_size || !sec_bytes(A, ta.sec) || !sec_bytes(B, tb.sec))
			return false;
		return (pa % (int64_t)es) == (pb % (int64_t)es) &&
		       !memcmp(sec_bytes(A, ta.sec) + pa, sec_bytes(B, tb.sec) + pb, es);
	}
	return ta.off == tb.off && anon_eq(A, ta.sec, B, tb.sec);
}

/*
 * Two functions compared. 1 same, 0 different; *ret_imm_only: the code
 * differs only in bytes, relocations all alike (a candidate for a
 * line-number-only change).
 */
int diff_func_cmp(const struct obj *A, size_t fa, const struct obj *B, size_t fb,
		    bool *ret_same_relocs)
{
	size_t sa = A->syms[fa].st.st_shndx, sb = B->syms[fb].st.st_shndx;
	const struct osec *x = &A->secs[sa], *y = &B->secs[sb];
	bool rel_same = x->n_rels == y->n_rels;

	for (size_t i = 0; rel_same && i < x->n_rels; i++)
		rel_same = x->rels[i].off == y->rels[i].off &&
			   rel_equiv(A, &x->rels[i], sa, B, &y->rels[i], sb);
	*ret_same_relocs = rel_same && x->sh.sh_size == y->sh.sh_size;
	if (!*ret_same_relocs)
		return 0;
	if (!sec_bytes(A, sa) || !sec_bytes(B, sb))
		return 1;
	return bytes_masked_eq(sec_bytes(A, sa), sec_bytes(B, sb), x->sh.sh_size, x->rels, x->n_rels,
			       y->rels, y->n_rels, 0);
}

/* ---- per translation unit -------------------------------------------------- */

enum fstate { F_SAME, F_CHANGED, F_NEW, F_LINES, F_SIG };

struct tu {
	const struct ccmd *cc;
	char *rel;            /* source relative to DIR */
	char *base;           /* its base name: the STT_FILE of its symbols in BIN */
	char orig_o[PATH_MAX + 32], new_o[PATH_MAX + 32], rw_o[PATH_MAX + 32], exact_o[PATH_MAX + 32];
	struct obj orig, new;
	struct dw_info dorig, dnew;
	unsigned char *state;   /* per new symbol: enum fstate (functions) */
	unsigned char *incl;    /* per new section: in the patch */
	unsigned char *replace; /* per new symbol: a replacement (global in the patch) */
	char **why;             /* per new symbol: why it is replaced */
	long *bind;             /* per new symbol: index into the bound names, or -1 */
	bool *const_changed;    /* per new symbol: read-only data whose content changed */
};

struct bound {
	char *name;   /* name in BIN (static locals correlated to the original's) */
	char *pick;   /* "name@file" for a local, or NULL */
	bool func;
	uint64_t size;
};

struct dctx {
	struct author *a;
	struct author_elf *bin;
	const struct bin_syms *bs;
	char dir[PATH_MAX];
	char copy[PATH_MAX + 8];
	struct dfile *files;
	size_t n_files;
	struct ccmd *cmds;
	size_t n_cmds;
	struct tu *tus;
	size_t n_tus;
	struct bound *binds;
	size_t n_binds;
	size_t n_replaced;
};

static void tu_release(struct tu *t)
{
	size_t n = t->new.n_syms;

	for (size_t i = 0; t->why && i < n; i++)
		free(t->why[i]);
	free(t->why);
	free(t->state);
	free(t->incl);
	free(t->replace);
	free(t->bind);
	free(t->const_changed);
	free(t->rel);
	free(t->base);
	diff_obj_release(&t->orig);
	diff_obj_release(&t->new);
	dw_info_release(&t->dorig);
	dw_info_release(&t->dnew);
}

/* A BIN symbol for a TU's name: a local of its file, else a global one. */
static const struct bin_sym *bin_lookup(const struct dctx *c, const char *name, const char *file,
					bool local, bool func)
{
	const struct bin_syms *bs = c->bs;

	for (size_t i = bin_syms_first(bs, name); i < bs->n && !strcmp(bs->v[i].name, name); i++) {
		const struct bin_sym *s = &bs->v[i];
		bool is_func = s->type == STT_FUNC || s->type == STT_GNU_IFUNC;

		if (is_func != func)
			continue;
		if (local ? (s->bind == STB_LOCAL && file_matches(s->file, file)) :
			    s->bind != STB_LOCAL)
			return s;
	}
	return NULL;
}

/* Any definition of name in BIN: a global one, else the first local. */
static const struct bin_sym *bin_lookup_any(const struct dctx *c, const char *name)
{
	const struct bin_syms *bs = c->bs;
	const struct bin_sym *local = NULL;

	for (size_t i = bin_syms_first(bs, name); i < bs->n && !strcmp(bs->v[i].name, name); i++) {
		if (bs->v[i].bind != STB_LOCAL)
			return &bs->v[i];
		if (!local)
			local = &bs->v[i];
	}
	return local;
}

/* BIN's bytes at a symbol's value (its section in BIN), or NULL. */
static const uint8_t *bin_bytes(const struct dctx *c, uint64_t addr, uint64_t size)
{
	Elf_Scn *scn = NULL;

	while ((scn = elf_nextscn(c->bin->elf, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_PROGBITS ||
		    !(sh.sh_flags & SHF_ALLOC) || addr < sh.sh_addr ||
		    addr + size > sh.sh_addr + sh.sh_size)
			continue;
		d = elf_getdata(scn, NULL);
		if (!d || !d->d_buf || addr - sh.sh_addr + size > d->d_size)
			return NULL;
		return (const uint8_t *)d->d_buf + (addr - sh.sh_addr);
	}
	return NULL;
}

/*
 * The rebuilt original must be BIN: every function of the TU that BIN has
 * too is compared byte for byte, with the relocated fields (and the
 * instruction bytes the linker rewrites when it relaxes a GOT load) masked.
 * o is the TU compiled exactly as its command says: one section per
 * function would keep the assembler from shortening jumps between them.
 */
static int rebuild_check(struct dctx *c, struct tu *t, const struct obj *o, size_t *ret_checked)
{
	for (size_t i = 1; i < o->n_syms; i++) {
		const struct osym *y = &o->syms[i];
		const struct osec *s;
		const struct bin_sym *b;
		const uint8_t *bb, *ob;
		uint8_t *mask;
		bool skip = false;
		size_t diff_at = SIZE_MAX;

		if (sym_type(o, i) != STT_FUNC || !sym_defined(o, i) || y->st.st_size == 0)
			continue;
		b = bin_lookup(c, y->name, t->base, sym_local(o, i), true);
		if (!b)
			continue; /* not linked into BIN, or inlined away there */
		s = &o->secs[y->st.st_shndx];
		ob = sec_bytes(o, y->st.st_shndx);
		if (b->size != y->st.st_size) {
			diff_at = 0;
			goto differs;
		}
		bb = bin_bytes(c, b->value, b->size);
		if (!bb || !ob || y->st.st_value + y->st.st_size > s->sh.sh_size)
			continue;
		mask = calloc(y->st.st_size, 1);
		if (!mask)
			return -ENOMEM;
		for (size_t k = 0; k < s->n_rels; k++) {
			const struct orel *r = &s->rels[k];
			int64_t from = (int64_t)r->off - (int64_t)y->st.st_value;
			int64_t to = from + rel_width(r->type);

			if (r->type == R_X86_64_TLSGD || r->type == R_X86_64_TLSLD ||
			    r->type == R_X86_64_GOTPC32_TLSDESC || r->type == R_X86_64_TLSDESC_CALL)
				skip = true; /* the linker rewrites whole TLS sequences */
			if (r->type == R_X86_64_GOTPCRELX || r->type == R_X86_64_REX_GOTPCRELX ||
			    r->type == R_X86_64_GOTTPOFF)
				from -= 3; /* mov -> lea, call * -> addr32 call: opcode and ModRM */
			for (int64_t p = from < 0 ? 0 : from; p < to && p < (int64_t)y->st.st_size; p++)
				mask[p] = 1;
		}
		for (size_t k = 0; !skip && k < y->st.st_size; k++)
			if (!mask[k] && ob[y->st.st_value + k] != bb[k]) {
				diff_at = k;
				break;
			}
		free(mask);
		if (skip)
			continue;
		(*ret_checked)++;
		if (diff_at == SIZE_MAX)
			continue;
differs:
		if (c->a->opts->force) {
			author_note(c->a, "WARNING: function %s: the rebuild of %s differs from BIN "
				    "(at +0x%zx): the compile command or the compiler is not the one BIN "
				    "was built with; going on because of --force: the patch may not "
				    "match the running code", y->name, t->rel, diff_at);
			continue;
		}
		return hp_err(-EBADMSG, "function %s: the rebuild of %s differs from BIN (at +0x%zx): "
			      "the compile command or the compiler is not the one BIN was built with "
			      "(a missing -D?)", y->name, t->rel, diff_at);
	}
	return 0;
}

/* ---- compiling --------------------------------------------------------------- */

/* Options of the original command that would write files next to the sources. */
static bool drop_arg(const char *a, bool *ret_skip_next)
{
	static const char *const with_value[] = { "-o", "-MF", "-MT", "-MQ", NULL };
	static const char *const alone[] = { "-c", "-MD", "-MMD", "-MP", "-M", "-MM", "-S", "-E",
					     NULL };

	*ret_skip_next = in_list(with_value, a);
	if (*ret_skip_next || in_list(alone, a))
		return true;
	return (!strncmp(a, "-o", 2) && a[2]) || !strncmp(a, "-MF", 3) || !strncmp(a, "-MT", 3) ||
	       !strncmp(a, "-MQ", 3) || !strncmp(a, "-Wp,-MD", 7) || !strncmp(a, "-Wp,-MMD", 8);
}

/* Replace a leading from in s with to (for paths inside the copied tree). */
static char *map_prefix(const char *s, const char *from, const char *to)
{
	size_t lf = strlen(from);
	const char *hit = strstr(s, from);
	char buf[PATH_MAX * 2];

	if (!hit || (hit[lf] && hit[lf] != '/'))
		return strdup(s);
	snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(hit - s), s, to, hit + lf);
	return strdup(buf);
}

static int run_compile(struct dctx *c, const struct ccmd *cc, bool patched, const char *out,
		       const char *mode)
{
	struct strv args = { NULL, 0 };
	struct hp_buf log = HP_BUF_INIT;
	char logp[PATH_MAX + 16], map[PATH_MAX * 2 + 32];
	char *dir = patched ? map_prefix(cc->dir, c->dir, c->copy) : strdup(cc->dir);
	bool skip = false;
	int r = 0, st = -1;

	if (!dir)
		return -ENOMEM;
	for (size_t i = 0; i < cc->argv.n && r >= 0; i++) {
		const char *a = cc->argv.v[i];
		bool next;

		if (skip) {
			skip = false;
			continue;
		}
		if (i > 0 && drop_arg(a, &next)) {
			skip = next;
			continue;
		}
		if (patched) {
			char *m = map_prefix(a, c->dir, c->copy);

			r = m ? strv_add(&args, m) : -ENOMEM;
			free(m);
		} else {
			r = strv_add(&args, a);
		}
	}
	if (r >= 0 && patched) {
		/* The patched build must name its files as the original does (__FILE__, DWARF). */
		snprintf(map, sizeof(map), "-ffile-prefix-map=%s=%s", c->copy, c->dir);
		r = strv_add(&args, map);
	}
	if (r >= 0 && !strcmp(mode, "deps")) {
		r = strv_add(&args, "-M");
		if (r >= 0)
			r = strv_add(&args, "-MF");
		if (r >= 0)
			r = strv_add(&args, out);
	} else if (r >= 0 && !strcmp(mode, "exact")) {
		/* As BIN was built: the rebuild check compares these bytes with BIN's. */
		r = strv_add(&args, "-c");
		if (r >= 0)
			r = strv_add(&args, "-o");
		if (r >= 0)
			r = strv_add(&args, out);
	} else if (r >= 0) {
		static const char *const extra[] = { "-ffunction-sections", "-fdata-sections", "-g",
						     "-c", "-o", NULL };

		for (size_t i = 0; extra[i] && r >= 0; i++)
			r = strv_add(&args, extra[i]);
		if (r >= 0)
			r = strv_add(&args, out);
	}
	if (r >= 0) {
		char **v = realloc(args.v, (args.n + 1) * sizeof(*v));

		if (!v)
			r = -ENOMEM;
		else {
			args.v = v;
			args.v[args.n] = NULL;
		}
	}
	if (r < 0)
		goto out;
	snprintf(logp, sizeof(logp), "%s/cc.out", c->a->tmpdir);
	/* The command runs in its entry's directory, as the build ran it. */
	if (access(dir, X_OK) < 0) {
		r = hp_err(-errno, "compile commands: directory %s: %s", dir, strerror(errno));
		goto out;
	}
	r = run_cmd_in(c->a, dir, args.v, logp, &st);
	if (r < 0) {
		r = hp_err(r, "compiler '%s': %s", args.v[0], strerror(-r));
		goto out;
	}
	if (cancelled(c->a)) {
		r = hp_err(-ECANCELED, "interrupted");
		goto out;
	}
	if (st != 0) {
		const char *line = NULL;

		if (hp_read_file(logp, (1u << 20), &log) >= 0 && log.len) {
			while (log.len && log.data[log.len - 1] == '\n')
				log.data[--log.len] = '\0';
			author_note(c->a, "%s", log.data);
			line = first_error_line(log.data);
		}
		r = hp_err(-EINVAL, "compiling %s %s the fix failed: %s", cc->file,
			   patched ? "with" : "without", line ? line : "see the compiler's output");
	}
out:
	hp_buf_release(&log);
	strv_release(&args);
	free(dir);
	return r;
}

/* ---- choosing TUs ---------------------------------------------------------- */

static const struct ccmd *ccmd_for(const struct dctx *c, const char *abs)
{
	for (size_t i = 0; i < c->n_cmds; i++)
		if (c->cmds[i].file && !strcmp(c->cmds[i].file, abs))
			return &c->cmds[i];
	return NULL;
}

static bool bin_has_file(const struct dctx *c, const char *rel)
{
	for (size_t i = 0; i < c->bs->files.n; i++)
		if (file_matches(c->bs->files.v[i], rel))
			return true;
	return false;
}

static int tu_add(struct dctx *c, const struct ccmd *cc)
{
	struct tu *v, *t;
	const char *rel;

	for (size_t i = 0; i < c->n_tus; i++)
		if (c->tus[i].cc == cc)
			return 0;
	if (c->n_tus >= DIFF_MAX_TUS)
		return hp_err(-E2BIG, "the fix affects more than %d translation units", DIFF_MAX_TUS);
	v = realloc(c->tus, (c->n_tus + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	c->tus = v;
	t = &v[c->n_tus];
	memset(t, 0, sizeof(*t));
	t->orig.ef.fd = t->new.ef.fd = -1;
	t->cc = cc;
	rel = !strncmp(cc->file, c->dir, strlen(c->dir)) && cc->file[strlen(c->dir)] == '/' ?
	      cc->file + strlen(c->dir) + 1 : cc->file;
	t->rel = strdup(rel);
	t->base = strdup(base_name(cc->file));
	if (!t->rel || !t->base) {
		free(t->rel);
		free(t->base);
		return -ENOMEM;
	}
	snprintf(t->orig_o, sizeof(t->orig_o), "%s/tu%zu-orig.o", c->a->tmpdir, c->n_tus);
	snprintf(t->new_o, sizeof(t->new_o), "%s/tu%zu-new.o", c->a->tmpdir, c->n_tus);
	snprintf(t->rw_o, sizeof(t->rw_o), "%s/tu%zu-patch.o", c->a->tmpdir, c->n_tus);
	snprintf(t->exact_o, sizeof(t->exact_o), "%s/tu%zu-exact.o", c->a->tmpdir, c->n_tus);
	c->n_tus++;
	return 0;
}

/* Whether the TU's dependencies (-M, after the fix) include the file abs (in the copy). */
static int tu_includes(struct dctx *c, const struct ccmd *cc, const char *abs_copy, bool *ret)
{
	char deps[PATH_MAX + 16], *dir;
	struct hp_buf d = HP_BUF_INIT;
	int r;

	snprintf(deps, sizeof(deps), "%s/deps.d", c->a->tmpdir);
	r = run_compile(c, cc, true, deps, "deps");
	if (r < 0)
		return r;
	r = hp_read_file(deps, (16u << 20), &d);
	if (r < 0)
		return r;
	*ret = false;
	dir = map_prefix(cc->dir, c->dir, c->copy);
	if (!dir) {
		hp_buf_release(&d);
		return -ENOMEM;
	}
	/* Make's syntax: paths separated by blanks and "\\\n", relative to the command's directory. */
	for (char *p = d.data, *save = NULL, *w; (w = strtok_r(p, " \t\n\\", &save)); p = NULL) {
		char *j = join_path(dir, w), real[PATH_MAX];
		bool hit = j && (!strcmp(j, abs_copy) || (realpath(j, real) && !strcmp(real, abs_copy)));

		free(j);
		if (hit) {
			*ret = true;
			break;
		}
	}
	free(dir);
	hp_buf_release(&d);
	return 0;
}

static int choose_tus(struct dctx *c, const char *cc_path)
{
	bool any_header = false;
	int r;

	for (size_t i = 0; i < c->n_files; i++) {
		struct dfile *f = &c->files[i];
		char abs[PATH_MAX * 2];
		const struct ccmd *cc;

		if (!f->is_tu_source) {
			any_header = true;
			continue;
		}
		snprintf(abs, sizeof(abs), "%s/%s", c->dir, f->path);
		cc = ccmd_for(c, abs);
		if (cc) {
			r = tu_add(c, cc);
			if (r < 0)
				return r;
			continue;
		}
		if (bin_has_file(c, f->path))
			return hp_err(-ENOENT, "%s: compiled into BIN but missing from the compile "
				      "commands %s", f->path, cc_path);
		author_note(c->a, "%s: not compiled into BIN (not in the compile commands): ignored",
			    f->path);
	}
	if (!any_header)
		return 0;
	for (size_t i = 0; i < c->n_files; i++) {
		struct dfile *f = &c->files[i];
		char abs_copy[PATH_MAX * 2];
		bool used = false;

		if (f->is_tu_source)
			continue;
		snprintf(abs_copy, sizeof(abs_copy), "%s/%s", c->copy, f->path);
		for (size_t k = 0; k < c->n_cmds; k++) {
			bool inc = false;

			if (!c->cmds[k].file || strncmp(c->cmds[k].file, c->dir, strlen(c->dir)))
				continue;
			r = tu_includes(c, &c->cmds[k], abs_copy, &inc);
			if (r < 0)
				return r;
			if (inc) {
				used = true;
				r = tu_add(c, &c->cmds[k]);
				if (r < 0)
					return r;
			}
		}
		if (!used)
			author_note(c->a, "%s: included by no translation unit of the compile "
				    "commands: ignored", f->path);
	}
	return 0;
}

/* ---- comparing ------------------------------------------------------------- */

static const struct dfile *dfile_by_abs(const struct dctx *c, const char *file)
{
	size_t ld = strlen(c->dir);

	if (!file || strncmp(file, c->dir, ld) || file[ld] != '/')
		return NULL;
	for (size_t i = 0; i < c->n_files; i++)
		if (!strcmp(c->files[i].path, file + ld + 1))
			return &c->files[i];
	return NULL;
}

/*
 * The diffs' file a DWARF file name designates. A relative name comes from
 * a -ffile-prefix-map (Debian builds with DIR=.): relative to DIR, else to
 * the unit's own directory.
 */
static const struct dfile *dfile_of(const struct dctx *c, const struct tu *t, const char *file)
{
	char abs[PATH_MAX];

	if (!file)
		return NULL;
	if (file[0] == '/')
		return dfile_by_abs(c, file);
	while (!strncmp(file, "./", 2))
		file += 2;
	for (size_t i = 0; i < c->n_files; i++)
		if (!strcmp(c->files[i].path, file))
			return &c->files[i];
	if (snprintf(abs, sizeof(abs), "%s/%s", t->cc->dir, file) >= (int)sizeof(abs))
		return NULL;
	return dfile_by_abs(c, abs);
}

/* Whether the fix changes a line of function name's own text (its DWARF extent). */
static bool source_changed(const struct dctx *c, const struct tu *t, const char *name)
{
	const struct dw_info *di = &t->dnew;
	const struct dw_func *f = dw_func_find(di, name, false);
	const struct dfile *df;
	int end = INT_MAX;

	if (!f || !f->file || f->line <= 0)
		return false;
	df = dfile_of(c, t, f->file);
	if (!df)
		return false;
	for (size_t i = 0; i < di->n_funcs; i++) {
		const struct dw_func *g = &di->funcs[i];

		if (g->file && !strcmp(g->file, f->file) && g->line > f->line && g->line - 1 < end)
			end = g->line - 1;
	}
	for (size_t i = 0; i < df->n_changed; i++)
		if (df->changed[i] >= f->line && df->changed[i] <= end)
			return true;
	return false;
}

/*
 * A change in line numbers only (assert, __LINE__): the code differs in
 * 4-byte immediates alone, each an old line number that the diffs moved to
 * the new value.
 */
static bool lines_only(const struct dctx *c, const struct obj *A, size_t fa, const struct obj *B,
		       size_t fb)
{
	size_t sa = A->syms[fa].st.st_shndx, sb = B->syms[fb].st.st_shndx;
	const uint8_t *x = sec_bytes(A, sa), *y = sec_bytes(B, sb);
	size_t n = A->secs[sa].sh.sh_size, i = 0;
	bool any = false;

	if (!x || !y)
		return false;
	while (i < n) {
		bool ok = false;

		if (x[i] == y[i]) {
			i++;
			continue;
		}
		/* The 4-byte field holding byte i: try each start that covers it. */
		for (size_t s = i >= 3 ? i - 3 : 0; s <= i && s + 4 <= n && !ok; s++) {
			int32_t L, L2;

			memcpy(&L, x + s, 4);
			memcpy(&L2, y + s, 4);
			if (L <= 0 || L2 <= 0 || L == L2 || L > DIFF_MAX_LINE)
				continue;
			for (size_t k = 0; k < c->n_files && !ok; k++)
				ok = diff_line_map(&c->files[k], L) == L2;
			if (ok)
				i = s + 4;
		}
		if (!ok)
			return false;
		any = true;
	}
	return any;
}

static bool is_cold(const char *name)
{
	return strstr(name, ".cold") != NULL;
}

/*
 * A unit's static initializer or finalizer (C++ dynamic initialization,
 * __attribute__((constructor)) lands in .init_array too but keeps its name):
 * it ran when the program started and never runs again.
 */
static bool is_static_init(const char *name)
{
	return !strncmp(name, "_GLOBAL__sub_I_", 15) || !strncmp(name, "_GLOBAL__sub_D_", 15) ||
	       !strncmp(name, "__static_initialization_and_destruction", 39);
}

/* The parent of "f.cold" / "f.cold.3": "f" (in buf). */
static const char *cold_parent(const char *name, char *buf, size_t size)
{
	const char *p = strstr(name, ".cold");

	snprintf(buf, size, "%.*s", (int)(p - name), name);
	return buf;
}

/* why = pre + arg + post ("inlines " X ""), once. */
static int set_why(struct tu *t, size_t i, const char *pre, const char *arg, const char *post)
{
	char buf[512];

	if (t->why[i])
		return 0;
	snprintf(buf, sizeof(buf), "%s%s%s", pre, arg, post);
	t->why[i] = strdup(buf);
	return t->why[i] ? 0 : -ENOMEM;
}

/* Whether function sym i of the new object refers to (new) symbol target. */
static bool refers_to(const struct obj *o, size_t i, size_t target)
{
	const struct osec *s = &o->secs[o->syms[i].st.st_shndx];

	for (size_t k = 0; k < s->n_rels; k++) {
		struct tdesc d = rel_desc(o, &s->rels[k]);

		if (d.sym == (long)target)
			return true;
	}
	return false;
}

static int compare_tu(struct dctx *c, struct tu *t)
{
	struct obj *A = &t->orig, *B = &t->new;
	size_t n = B->n_syms;
	int r = 0;

	t->state = calloc(n ? n : 1, 1);
	t->replace = calloc(n ? n : 1, 1);
	t->why = calloc(n ? n : 1, sizeof(char *));
	t->bind = malloc((n ? n : 1) * sizeof(long));
	t->const_changed = calloc(n ? n : 1, sizeof(bool));
	t->incl = calloc(B->n_secs ? B->n_secs : 1, 1);
	if (!t->state || !t->replace || !t->why || !t->bind || !t->const_changed || !t->incl)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		t->bind[i] = -1;

	/* Structs: a layout that changes breaks the code that keeps running. */
	for (size_t i = 0; i < t->dnew.n_structs; i++)
		for (size_t k = 0; k < t->dorig.n_structs; k++)
			if (!strcmp(t->dnew.structs[i].name, t->dorig.structs[k].name) &&
			    strcmp(t->dnew.structs[i].layout, t->dorig.structs[k].layout))
				return hp_err(-ENOTSUP, "struct %s: its layout changes (%s): code built "
					      "with the old layout keeps running; not hot-swappable",
					      t->dnew.structs[i].name, t->rel);

	/* Data. */
	for (size_t i = 1; i < n; i++) {
		unsigned ty = sym_type(B, i);
		const struct osec *sb;
		long k = -1;

		if (!sym_defined(B, i) || (ty != STT_OBJECT && ty != STT_TLS))
			continue;
		sb = &B->secs[B->syms[i].st.st_shndx];
		for (size_t j = 1; j < A->n_syms && k < 0; j++)
			if (sym_defined(A, j) && sym_type(A, j) == ty &&
			    sym_local(A, j) == sym_local(B, i) && norm_eq(A->syms[j].name, B->syms[i].name))
				k = (long)j;
		if (k < 0) {
			if (ty == STT_TLS)
				return hp_err(-ENOTSUP, "thread-local %s: new in the fix: a patch cannot "
					      "add thread-local storage", B->syms[i].name);
			if (sb->sh.sh_flags & SHF_WRITE)
				return hp_err(-ENOTSUP, "variable %s: new in the fix: a patch cannot add "
					      "state to a running process (keep the fix to code, or use "
					      "an existing variable)", B->syms[i].name);
			continue; /* new constant data: travels in the patch */
		}
		{
			const struct osec *sa = &A->secs[A->syms[k].st.st_shndx];
			const GElf_Sym *ya = &A->syms[k].st, *yb = &B->syms[i].st;
			bool same = ya->st_size == yb->st_size && sa->sh.sh_type == sb->sh.sh_type;

			if (same && sec_bytes(A, ya->st_shndx) && sec_bytes(B, yb->st_shndx) &&
			    ya->st_value + ya->st_size <= sa->sh.sh_size &&
			    yb->st_value + yb->st_size <= sb->sh.sh_size)
				same = bytes_masked_eq(sec_bytes(A, ya->st_shndx) + ya->st_value,
						       sec_bytes(B, yb->st_shndx) + yb->st_value,
						       ya->st_size, sa->rels, sa->n_rels, sb->rels,
						       sb->n_rels, 0) &&
				       sa->n_rels == sb->n_rels;
			for (size_t q = 0; same && q < sa->n_rels; q++)
				same = sa->rels[q].off == sb->rels[q].off &&
				       rel_equiv(A, &sa->rels[q], SIZE_MAX, B, &sb->rels[q], SIZE_MAX);
			if (same)
				continue;
			if (sb->sh.sh_flags & SHF_WRITE)
				return hp_err(-ENOTSUP, "variable %s: its initial value or size changes: "
					      "the running process keeps its current value; not "
					      "hot-swappable", B->syms[i].name);
			t->const_changed[i] = true;
		}
	}

	/* Functions. */
	for (size_t i = 1; i < n; i++) {
		long k;
		bool same_relocs;

		if (sym_type(B, i) != STT_FUNC || !sym_defined(B, i))
			continue;
		k = obj_find(A, B->syms[i].name, true);
		if (k < 0) {
			t->state[i] = F_NEW;
			continue;
		}
		if (diff_func_cmp(A, (size_t)k, B, i, &same_relocs) == 1) {
			t->state[i] = F_SAME;
			continue;
		}
		t->state[i] = F_CHANGED;
		if (same_relocs && !is_cold(B->syms[i].name) &&
		    !source_changed(c, t, B->syms[i].name) &&
		    lines_only(c, A, (size_t)k, B, i)) {
			t->state[i] = F_LINES;
			author_note(c->a, "function %s: only line numbers change (assert, __LINE__): "
				    "not replaced", B->syms[i].name);
			continue;
		}
		{
			const struct dw_func *fo = dw_func_find(&t->dorig, B->syms[i].name, false);
			const struct dw_func *fn = dw_func_find(&t->dnew, B->syms[i].name, false);

			if (fo && fn && fo->proto && fn->proto && strcmp(fo->proto, fn->proto)) {
				if (!sym_local(B, i))
					return hp_err(-ENOTSUP, "function %s: its signature changes (%s -> "
						      "%s) and it is global: callers outside %s cannot be "
						      "followed", B->syms[i].name, fo->proto, fn->proto,
						      t->rel);
				t->state[i] = F_SIG;
				author_note(c->a, "function %s: new signature (%s -> %s): it comes in as "
					    "a new function and its callers are replaced",
					    B->syms[i].name, fo->proto, fn->proto);
			}
		}
	}
	/* A cold part that changed changes its parent. */
	for (size_t i = 1; i < n; i++) {
		char buf[512];
		long p;

		if (t->state[i] != F_CHANGED || !is_cold(B->syms[i].name))
			continue;
		p = obj_find(B, cold_parent(B->syms[i].name, buf, sizeof(buf)), true);
		if (p >= 0 && (t->state[p] == F_SAME || t->state[p] == F_LINES))
			t->state[p] = F_CHANGED;
	}

	/* What is replaced, and why. */
	for (size_t i = 1; i < n; i++) {
		const struct dw_func *f;
		const char *name = B->syms[i].name;
		bool forced = false;

		if (sym_type(B, i) != STT_FUNC || !sym_defined(B, i) || is_cold(name) ||
		    t->state[i] == F_NEW || t->state[i] == F_SIG)
			continue;
		/* Every function calling one with a new signature, changed in code or not. */
		for (size_t k = 1; k < n && !forced; k++)
			if ((t->state[k] == F_SIG || t->const_changed[k]) && refers_to(B, i, k)) {
				r = t->state[k] == F_SIG ?
				    set_why(t, i, "caller of ", B->syms[k].name, " (new signature)") :
				    set_why(t, i, "uses ", B->syms[k].name, " (constant data that changed)");
				if (r < 0)
					return r;
				forced = true;
			}
		if (!forced && t->state[i] != F_CHANGED)
			continue;
		if (is_static_init(name))
			return hp_err(-ENOTSUP, "function %s: static initialization changes: it ran "
				      "when the program started and does not run again, the running "
				      "process keeps what it built; not hot-swappable", name);
		if (!bin_lookup(c, name, t->base, sym_local(B, i), true)) {
			author_note(c->a, "function %s: changed, but BIN has no %s of its own (unused "
				    "there): nothing to replace", name, name);
			continue;
		}
		t->replace[i] = 1;
		if (t->why[i])
			continue;
		if (source_changed(c, t, name)) {
			r = set_why(t, i, "changed", "", "");
		} else {
			/* inlined by the original, or by the fixed build */
			const char *via = NULL;

			for (int side = 0; side < 2 && !via; side++) {
				f = dw_func_find(side ? &t->dorig : &t->dnew, name, true);
				for (size_t k = 0; f && k < f->inlined.n && !via; k++)
					if (source_changed(c, t, f->inlined.v[k]))
						via = f->inlined.v[k];
			}
			r = via ? set_why(t, i, "inlines ", via, "") : 0;
		}
		for (size_t k = 1; k < n && r >= 0 && !t->why[i]; k++) {
			char buf[512];

			/* its own cold part is not a callee */
			if (is_cold(B->syms[k].name) &&
			    !strcmp(cold_parent(B->syms[k].name, buf, sizeof(buf)), name))
				continue;
			if (k != i && t->state[k] == F_CHANGED && sym_type(B, k) == STT_FUNC &&
			    refers_to(B, i, k))
				r = set_why(t, i, "caller of ", B->syms[k].name, "");
		}
		if (r >= 0 && !t->why[i])
			r = set_why(t, i, "changed (the compiler's code differs; its source does not)",
				    "", "");
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- what the patch carries, what it binds ---------------------------------- */

static long bind_add(struct dctx *c, const char *name, const char *file, bool local, bool func,
		     uint64_t size)
{
	struct bound *v;
	char pick[1024];

	snprintf(pick, sizeof(pick), "%s@%s", name, file);
	for (size_t i = 0; i < c->n_binds; i++) {
		struct bound *b = &c->binds[i];

		if (strcmp(b->name, name))
			continue;
		if ((b->pick == NULL) == !local && (!local || !strcmp(b->pick, pick)))
			return (long)i;
		hp_err(-ENOTUNIQ, "symbol %s: the fix uses two different %s (%s, %s): not supported",
		       name, name, b->pick ? b->pick : "global", local ? pick : "global");
		return -ENOTUNIQ;
	}
	v = realloc(c->binds, (c->n_binds + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	c->binds = v;
	v[c->n_binds].name = strdup(name);
	v[c->n_binds].pick = local ? strdup(pick) : NULL;
	v[c->n_binds].func = func;
	v[c->n_binds].size = size;
	if (!v[c->n_binds].name || (local && !v[c->n_binds].pick))
		return -ENOMEM;
	return (long)c->n_binds++;
}

/* The original's name for a static local of the new object (gcc numbers them per unit). */
static const char *orig_local_name(const struct tu *t, size_t i)
{
	const char *name = t->new.syms[i].name;
	long exact = -1, only = -1;
	size_t count = 0;

	for (size_t j = 1; j < t->orig.n_syms; j++) {
		if (!sym_defined(&t->orig, j) || sym_type(&t->orig, j) != sym_type(&t->new, i) ||
		    !norm_eq(t->orig.syms[j].name, name))
			continue;
		if (!strcmp(t->orig.syms[j].name, name))
			exact = (long)j;
		only = (long)j;
		count++;
	}
	if (count == 1)
		return t->orig.syms[only].name;
	return exact >= 0 ? t->orig.syms[exact].name : NULL;
}

/*
 * Walk from the replaced functions through their relocations: include what
 * the patch must carry, bind the rest to BIN. Repeats until nothing new.
 */
static int plan_tu(struct dctx *c, struct tu *t)
{
	struct obj *B = &t->new;
	bool more = true;

	for (size_t i = 1; i < B->n_syms; i++)
		if (t->replace[i])
			t->incl[B->syms[i].st.st_shndx] = 1;
	while (more) {
		more = false;
		for (size_t s = 1; s < B->n_secs; s++) {
			const struct osec *sec = &B->secs[s];

			if (!t->incl[s])
				continue;
			/* A function's cold part goes with it. */
			if (sec->func >= 0 && !is_cold(B->syms[sec->func].name)) {
				char cold[600];
				long k;

				snprintf(cold, sizeof(cold), "%s.cold", B->syms[sec->func].name);
				k = obj_find(B, cold, true);
				if (k >= 0 && !t->incl[B->syms[k].st.st_shndx]) {
					t->incl[B->syms[k].st.st_shndx] = 1;
					more = true;
				}
			}
			for (size_t k = 0; k < sec->n_rels; k++) {
				struct tdesc d = rel_desc(B, &sec->rels[k]);
				const struct osec *ts;
				const char *bname;
				const struct bin_sym *b;
				bool func, local;
				long bi;

				if (d.kind == T_UNDEF) {
					/*
					 * Another unit's function or variable (hidden ones
					 * included, local in BIN): the link needs it defined,
					 * the stub does; analyse binds it to BIN's.
					 */
					b = d.name[0] ? bin_lookup_any(c, d.name) : NULL;
					if (b) {
						bi = bind_add(c, d.name, t->base, false,
							      b->type == STT_FUNC, b->size);
						if (bi < 0)
							return (int)bi;
					}
					continue;
				}
				if (d.sec == s || t->incl[d.sec])
					continue;
				ts = &B->secs[d.sec];
				if (d.kind == T_SEC || d.sym < 0 || t->bind[d.sym] >= 0) {
					if (d.kind == T_SEC && !(ts->sh.sh_flags & SHF_WRITE) &&
					    ts->sh.sh_type != SHT_NOBITS) {
						t->incl[d.sec] = 1; /* strings, constants, jump tables */
						more = true;
					} else if (d.kind == T_SEC && !(ts->sh.sh_flags & SHF_ALLOC)) {
						continue;
					} else if (d.kind == T_SEC) {
						return hp_err(-ENOTSUP, "%s: the fix uses writable data of %s "
							      "that has no name: not supported", t->rel,
							      ts->name);
					}
					continue;
				}
				func = sym_type(B, (size_t)d.sym) == STT_FUNC;
				local = sym_local(B, (size_t)d.sym);
				if (func) {
					unsigned st = t->state[d.sym];

					if (t->replace[d.sym] || st == F_SIG || st == F_NEW || is_cold(d.name)) {
						t->incl[d.sec] = 1;
						more = true;
						continue;
					}
					b = bin_lookup(c, d.name, t->base, local, true);
					if (!b) {
						/* Unchanged but not in BIN (inlined everywhere there): carried. */
						t->incl[d.sec] = 1;
						more = true;
						continue;
					}
					bi = bind_add(c, d.name, t->base, local, true, b->size);
					if (bi < 0)
						return (int)bi;
					t->bind[d.sym] = bi;
					continue;
				}
				if (!(ts->sh.sh_flags & SHF_WRITE) && ts->sh.sh_type != SHT_NOBITS) {
					/* Constant data: bound when unchanged and in BIN, else carried. */
					b = t->const_changed[d.sym] ? NULL :
					    bin_lookup(c, d.name, t->base, local, false);
					if (!b || obj_find(&t->orig, d.name, false) < 0) {
						t->incl[d.sec] = 1;
						more = true;
						continue;
					}
					bi = bind_add(c, d.name, t->base, local, false, b->size);
					if (bi < 0)
						return (int)bi;
					t->bind[d.sym] = bi;
					continue;
				}
				if (sym_type(B, (size_t)d.sym) == STT_TLS)
					return hp_err(-ENOTSUP, "thread-local %s: used by the fix: a patch "
						      "cannot use thread-local storage", d.name);
				bname = local ? orig_local_name(t, (size_t)d.sym) : d.name;
				b = bname ? bin_lookup(c, bname, t->base, local, false) : NULL;
				if (!b)
					return hp_err(-ENOENT, "variable %s: used by the fix but not in BIN",
						      d.name);
				bi = bind_add(c, bname, t->base, local, false, b->size);
				if (bi < 0)
					return (int)bi;
				t->bind[d.sym] = bi;
			}
		}
	}
	/* Code the patch cannot carry: absolute addresses need a non-PIE link. */
	for (size_t s = 1; s < B->n_secs; s++)
		for (size_t k = 0; t->incl[s] && k < B->secs[s].n_rels; k++) {
			uint32_t ty = B->secs[s].rels[k].type;

			if (ty == R_X86_64_32 || ty == R_X86_64_32S)
				return hp_err(-ENOTSUP, "%s: built without -fPIE or -fPIC (an absolute "
					      "32-bit address in %s): hp build --diff needs "
					      "position-independent code; write the fix by hand", t->rel,
					      B->secs[s].name);
			if (rel_tls(ty))
				return hp_err(-ENOTSUP, "%s: the fix uses thread-local storage (in %s): "
					      "not supported", t->rel, B->secs[s].name);
		}
	return 0;
}

/* ---- writing the patch objects -------------------------------------------- */

/*
 * A copy of the new object in which the replaced functions are the only
 * global definitions, every other definition is local, and references to
 * what binds to BIN go to undefined symbols of BIN's names.
 */
static int rewrite_tu(struct dctx *c, struct tu *t)
{
	struct obj *B = &t->new;
	size_t n = B->n_syms, n_new = 0, first_global;
	size_t *map = calloc(n ? n : 1, sizeof(size_t));
	long *bind_sym = malloc((c->n_binds ? c->n_binds : 1) * sizeof(long));
	GElf_Sym *syms = calloc(n + c->n_binds + 1, sizeof(GElf_Sym));
	struct hp_buf strtab = HP_BUF_INIT;
	Elf *out = NULL;
	int fd = -1, r = 0;
	const struct osec *symsec = &B->secs[B->symtab_idx];
	Elf_Data *ostr = elf_getdata(elf_getscn(B->ef.elf, symsec->sh.sh_link), NULL);
	GElf_Rela **relas = calloc(B->n_secs, sizeof(GElf_Rela *));

	if (!map || !bind_sym || !syms || !relas || !ostr) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < c->n_binds; i++)
		bind_sym[i] = -1;
	r = hp_buf_add(&strtab, ostr->d_buf, ostr->d_size);
	if (r < 0)
		goto out;
	/* Locals first (ELF requires it), then globals. */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < n; i++) {
			GElf_Sym s = B->syms[i].st;
			bool global = i > 0 && (!sym_defined(B, i) ? true : t->replace[i] != 0);

			if (s.st_shndx == SHN_ABS || s.st_shndx == SHN_COMMON)
				global = i > 0 && GELF_ST_BIND(s.st_info) != STB_LOCAL;
			if ((pass == 1) != global)
				continue;
			if (sym_defined(B, i) && s.st_shndx != SHN_ABS)
				s.st_info = GELF_ST_INFO(global ? STB_GLOBAL : STB_LOCAL,
							 GELF_ST_TYPE(s.st_info));
			/* A hidden reference would have to be defined in the patch itself. */
			if (s.st_shndx != SHN_ABS)
				s.st_other = STV_DEFAULT;
			map[i] = n_new;
			syms[n_new++] = s;
		}
	first_global = 0;
	for (size_t i = 0; i < n_new; i++)
		if (GELF_ST_BIND(syms[i].st_info) != STB_LOCAL) {
			first_global = i;
			break;
		}
	if (!first_global)
		first_global = n_new;
	/* The bound names this TU uses, as undefined globals. */
	for (size_t i = 1; i < n; i++) {
		long b = t->bind[i];

		if (b < 0 || bind_sym[b] >= 0)
			continue;
		memset(&syms[n_new], 0, sizeof(syms[n_new]));
		syms[n_new].st_name = (GElf_Word)strtab.len;
		syms[n_new].st_info = GELF_ST_INFO(STB_GLOBAL, c->binds[b].func ? STT_FUNC : STT_OBJECT);
		r = hp_buf_add(&strtab, c->binds[b].name, strlen(c->binds[b].name) + 1);
		if (r < 0)
			goto out;
		bind_sym[b] = (long)n_new++;
	}
	/* Relocations: included sections' references to bound things redirected. */
	for (size_t s = 1; s < B->n_secs; s++) {
		const struct osec *sec = &B->secs[s];

		if (!sec->rela_idx)
			continue;
		relas[s] = calloc(sec->n_rels ? sec->n_rels : 1, sizeof(GElf_Rela));
		if (!relas[s]) {
			r = -ENOMEM;
			goto out;
		}
		for (size_t k = 0; k < sec->n_rels; k++) {
			const struct orel *o = &sec->rels[k];
			size_t sym = o->sym < n ? map[o->sym] : 0;
			int64_t addend = o->addend;
			uint32_t type = o->type;

			if (t->incl[s]) {
				struct tdesc d = rel_desc(B, o);

				if (d.sym >= 0 && t->bind[d.sym] >= 0 && sym_defined(B, (size_t)d.sym)) {
					/* S + A stays the same address: from the symbol's start. */
					addend = (int64_t)B->syms[o->sym].st.st_value + o->addend -
						 (int64_t)B->syms[d.sym].st.st_value;
					sym = (size_t)bind_sym[t->bind[d.sym]];
					/*
					 * A call to what was a local function: PLT32 computes
					 * the same, and the linker accepts it against a
					 * function of another object (through the PLT).
					 */
					if (type == R_X86_64_PC32 && c->binds[t->bind[d.sym]].func)
						type = R_X86_64_PLT32;
				}
			}
			relas[s][k].r_offset = o->off;
			relas[s][k].r_addend = addend;
			relas[s][k].r_info = GELF_R_INFO(sym, type);
		}
	}

	fd = open(t->rw_o, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = hp_err(-errno, "%s: %s", t->rw_o, strerror(errno));
		goto out;
	}
	out = elf_begin(fd, ELF_C_WRITE, NULL);
	if (!out || !gelf_newehdr(out, ELFCLASS64)) {
		r = hp_err(-EIO, "libelf: %s", elf_errmsg(-1));
		goto out;
	}
	{
		GElf_Ehdr eh = B->ef.eh;

		eh.e_shoff = 0;
		if (!gelf_update_ehdr(out, &eh)) {
			r = hp_err(-EIO, "libelf: %s", elf_errmsg(-1));
			goto out;
		}
	}
	for (size_t s = 1; s < B->n_secs; s++) {
		const struct osec *sec = &B->secs[s];
		Elf_Scn *scn = elf_newscn(out);
		Elf_Data *d;
		GElf_Shdr sh = sec->sh;

		if (!scn || !(d = elf_newdata(scn))) {
			r = hp_err(-EIO, "libelf: %s", elf_errmsg(-1));
			goto out;
		}
		if (s == B->symtab_idx) {
			d->d_buf = syms;
			d->d_size = n_new * sizeof(Elf64_Sym);
			d->d_type = ELF_T_SYM;
			sh.sh_info = (GElf_Word)first_global;
		} else if (s == symsec->sh.sh_link) {
			d->d_buf = strtab.data;
			d->d_size = strtab.len;
			d->d_type = ELF_T_BYTE;
		} else if (sec->sh.sh_type == SHT_INIT_ARRAY || sec->sh.sh_type == SHT_FINI_ARRAY ||
			   sec->sh.sh_type == SHT_PREINIT_ARRAY ||
			   (sec->sh.sh_type == SHT_RELA && sec->sh.sh_info < B->n_secs &&
			    (B->secs[sec->sh.sh_info].sh.sh_type == SHT_INIT_ARRAY ||
			     B->secs[sec->sh.sh_info].sh.sh_type == SHT_FINI_ARRAY ||
			     B->secs[sec->sh.sh_info].sh.sh_type == SHT_PREINIT_ARRAY))) {
			/*
			 * Emptied: the patch runs no constructor (the unit's ran at
			 * the program's start), and the linker keeps these sections
			 * whatever --gc-sections finds, with what they point to.
			 */
			d->d_size = 0;
			d->d_type = sec->sh.sh_type == SHT_RELA ? ELF_T_RELA : ELF_T_BYTE;
			sh.sh_size = 0;
		} else if (sec->sh.sh_type == SHT_RELA && sec->sh.sh_info < B->n_secs &&
			   relas[sec->sh.sh_info]) {
			d->d_buf = relas[sec->sh.sh_info];
			d->d_size = B->secs[sec->sh.sh_info].n_rels * sizeof(Elf64_Rela);
			d->d_type = ELF_T_RELA;
		} else if (sec->sh.sh_type == SHT_GROUP && sec->data) {
			d->d_buf = sec->data->d_buf;
			d->d_size = sec->data->d_size;
			d->d_type = sec->data->d_type;
			sh.sh_info = sh.sh_info < n ? (GElf_Word)map[sh.sh_info] : 0;
		} else if (sec->data) {
			d->d_buf = sec->data->d_buf;
			d->d_size = sec->data->d_size;
			d->d_type = sec->data->d_type;
		} else {
			d->d_size = sec->sh.sh_size;
		}
		d->d_align = sec->data ? sec->data->d_align : sec->sh.sh_addralign;
		d->d_off = 0;
		d->d_version = EV_CURRENT;
		sh.sh_offset = 0;
		if (!gelf_update_shdr(scn, &sh)) {
			r = hp_err(-EIO, "libelf: %s", elf_errmsg(-1));
			goto out;
		}
	}
	if (elf_update(out, ELF_C_WRITE) < 0)
		r = hp_err(-EIO, "writing %s: %s", t->rw_o, elf_errmsg(-1));
out:
	if (out)
		elf_end(out);
	if (fd >= 0)
		close(fd);
	for (size_t s = 0; relas && s < B->n_secs; s++)
		free(relas[s]);
	free(relas);
	free(syms);
	free(map);
	free(bind_sym);
	hp_buf_release(&strtab);
	return r;
}

/* A shared object defining every bound name: what ld links the patch against. */
static int write_stub(struct dctx *c, const char *cc, char *ret_path, size_t size)
{
	struct hp_buf s = HP_BUF_INIT;
	char src[PATH_MAX + 16], logp[PATH_MAX + 16];
	int r = 0, st = -1;

	snprintf(src, sizeof(src), "%s/stub.s", c->a->tmpdir);
	snprintf(ret_path, size, "%s/%s", c->a->tmpdir, DIFF_STUB_SONAME);
	snprintf(logp, sizeof(logp), "%s/stub.out", c->a->tmpdir);
	for (size_t i = 0; i < c->n_binds && r >= 0; i++) {
		const struct bound *b = &c->binds[i];

		r = hp_buf_addf(&s, "\t.globl \"%s\"\n\t.type \"%s\", @%s\n\t.size \"%s\", %" PRIu64
				"\n\"%s\":\t.zero %" PRIu64 "\n", b->name, b->name,
				b->func ? "function" : "object", b->name, b->size ? b->size : 1,
				b->name, b->size ? b->size : 1);
	}
	if (r >= 0)
		r = hp_write_file_atomic(src, s.data ? s.data : "", s.len, 0600);
	if (r >= 0) {
		char *argv[] = { (char *)cc, (char *)"-shared", (char *)"-nostdlib",
				 (char *)"-Wl,-soname," DIFF_STUB_SONAME, (char *)"-o", ret_path, src,
				 NULL };

		r = run_cmd(c->a, argv, logp, &st);
		if (r >= 0 && st != 0)
			r = hp_err(-EINVAL, "assembling the symbols of BIN the patch uses failed");
	}
	hp_buf_release(&s);
	return r;
}

/* Take the stub off the patch object's DT_NEEDED: the engine binds those names itself. */
static int drop_stub_needed(const char *so_path)
{
	Elf_Scn *scn;
	GElf_Shdr sh;
	Elf_Data *d;
	size_t n, w = 0;
	int fd, r = 0;
	Elf *elf;

	if (elf_version(EV_CURRENT) == EV_NONE)
		return -ENOEXEC;
	fd = open(so_path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return hp_err(-errno, "%s: %s", so_path, strerror(errno));
	elf = elf_begin(fd, ELF_C_RDWR, NULL);
	if (!elf) {
		close(fd);
		return hp_err(-ENOEXEC, "%s: %s", so_path, elf_errmsg(-1));
	}
	elf_flagelf(elf, ELF_C_SET, ELF_F_LAYOUT);
	scn = find_section(elf, SHT_DYNAMIC);
	if (scn && gelf_getshdr(scn, &sh) && (d = elf_getdata(scn, NULL)) && sh.sh_entsize) {
		n = d->d_size / sh.sh_entsize;
		for (size_t i = 0; i < n; i++) {
			GElf_Dyn dyn;
			const char *s;

			if (!gelf_getdyn(d, (int)i, &dyn))
				break;
			s = dyn.d_tag == DT_NEEDED ? elf_strptr(elf, sh.sh_link, dyn.d_un.d_val) : NULL;
			if (s && !strcmp(s, DIFF_STUB_SONAME))
				continue;
			gelf_update_dyn(d, (int)w++, &dyn);
		}
		for (; w < n; w++) {
			GElf_Dyn z = { .d_tag = DT_NULL };

			gelf_update_dyn(d, (int)w, &z);
		}
		elf_flagdata(d, ELF_C_SET, ELF_F_DIRTY);
		if (elf_update(elf, ELF_C_WRITE) < 0)
			r = hp_err(-EIO, "%s: %s", so_path, elf_errmsg(-1));
	}
	elf_end(elf);
	close(fd);
	return r;
}

static int link_patch(struct dctx *c, const char *so_path)
{
	struct strv args = { NULL, 0 };
	struct hp_buf log = HP_BUF_INIT;
	char stub[PATH_MAX + 32], logp[PATH_MAX + 16], opt[1200], end[PATH_MAX + 32];
	const char *cc = c->tus[0].cc->argv.v[0];
	const char *first = NULL;
	int r, st = -1;

	r = write_stub(c, cc, stub, sizeof(stub));
	if (r < 0)
		return r;
	{
		static const char *const flags[] = {
			"-pie", "-nostartfiles", "-Wl,--no-dynamic-linker", "-Wl,-z,nocopyreloc",
			"-Wl,-z,notext", "-Wl,--gc-sections", "-Wl,-z,now", "-Wl,--build-id",
			"-Wl,--strip-debug", "-Wl,--as-needed", NULL
		};

		r = strv_add(&args, cc);
		for (size_t i = 0; flags[i] && r >= 0; i++)
			r = strv_add(&args, flags[i]);
	}
	/* The replaced functions are the roots of --gc-sections. */
	for (size_t i = 0; i < c->n_tus && r >= 0; i++)
		for (size_t k = 1; k < c->tus[i].new.n_syms && r >= 0; k++)
			if (c->tus[i].replace[k]) {
				if (!first) {
					first = c->tus[i].new.syms[k].name;
					snprintf(opt, sizeof(opt), "-Wl,-e,%s", first);
					r = strv_add(&args, opt);
				}
				snprintf(opt, sizeof(opt), "-Wl,-u,%s", c->tus[i].new.syms[k].name);
				if (r >= 0)
					r = strv_add(&args, opt);
			}
	if (r >= 0)
		r = strv_add(&args, "-o");
	if (r >= 0)
		r = strv_add(&args, so_path);
	for (size_t i = 0; i < c->n_tus && r >= 0; i++)
		r = strv_add(&args, c->tus[i].rw_o);
	if (r >= 0)
		r = strv_add(&args, stub);
	/* Last: the zero word that ends .eh_frame (the engine registers the tables). */
	if (r >= 0)
		r = eh_frame_end(c->a, end, sizeof(end));
	if (r >= 0)
		r = strv_add(&args, end);
	if (r >= 0) {
		char **v = realloc(args.v, (args.n + 1) * sizeof(*v));

		if (!v) {
			r = -ENOMEM;
		} else {
			args.v = v;
			args.v[args.n] = NULL;
		}
	}
	if (r < 0)
		goto out;
	snprintf(logp, sizeof(logp), "%s/ld.out", c->a->tmpdir);
	r = run_cmd(c->a, args.v, logp, &st);
	if (r < 0) {
		r = hp_err(r, "linker '%s': %s", cc, strerror(-r));
		goto out;
	}
	if (st != 0) {
		const char *line = NULL;

		if (hp_read_file(logp, (1u << 20), &log) >= 0 && log.len) {
			author_note(c->a, "%s", log.data);
			line = first_error_line(log.data);
		}
		r = hp_err(-EINVAL, "linking the patch object failed: %s",
			   line ? line : "see the linker's output");
		goto out;
	}
	r = drop_stub_needed(so_path);
out:
	hp_buf_release(&log);
	strv_release(&args);
	return r;
}

/* ---- the whole ------------------------------------------------------------- */

static int copy_tree(struct dctx *c)
{
	char logp[PATH_MAX + 16], from[PATH_MAX + 4];
	char *argv[] = { (char *)"cp", (char *)"-a", from, c->copy, NULL };
	int r, st = -1;

	snprintf(c->copy, sizeof(c->copy), "%s/src", c->a->tmpdir);
	snprintf(from, sizeof(from), "%s/.", c->dir);
	snprintf(logp, sizeof(logp), "%s/cp.out", c->a->tmpdir);
	if (mkdir(c->copy, 0700) < 0)
		return hp_err(-errno, "%s: %s", c->copy, strerror(errno));
	r = run_cmd(c->a, argv, logp, &st);
	if (r >= 0 && st != 0)
		r = hp_err(-EIO, "copying %s failed", c->dir);
	return r;
}

static int apply_diff(struct dctx *c, const char *diff)
{
	char logp[PATH_MAX + 16], abs[PATH_MAX];
	char *argv[] = { (char *)"patch", (char *)"-p1", (char *)"--batch", (char *)"--forward",
			 (char *)"--no-backup-if-mismatch", (char *)"-r", (char *)"-", (char *)"-d",
			 c->copy, (char *)"-i", abs, NULL };
	struct hp_buf log = HP_BUF_INIT;
	int r, st = -1;

	if (!realpath(diff, abs))
		return hp_err(-errno, "%s: %s", diff, strerror(errno));
	snprintf(logp, sizeof(logp), "%s/patch.out", c->a->tmpdir);
	r = run_cmd(c->a, argv, logp, &st);
	if (r < 0)
		return hp_err(r, "patch: %s", strerror(-r));
	if (st == 0)
		return 0;
	if (hp_read_file(logp, (1u << 20), &log) >= 0 && log.len) {
		char *line = log.data, *fail = strstr(log.data, "FAILED");

		/* patch(1)'s own words: the hunk that failed, else its first line. */
		if (fail) {
			line = fail;
			while (line > log.data && line[-1] != '\n')
				line--;
		}
		line[strcspn(line, "\n")] = '\0';
		r = hp_err(-EINVAL, "%s: does not apply to %s: %s", diff, c->dir, line);
	} else {
		r = hp_err(-EINVAL, "%s: does not apply to %s", diff, c->dir);
	}
	hp_buf_release(&log);
	return r;
}

void diff_result_release(struct diff_result *r)
{
	strv_release(&r->picks);
	strv_release(&r->whys);
}

static bool command_has(const struct ccmd *cc, const char *prefix)
{
	for (size_t i = 0; i < cc->argv.n; i++)
		if (!strncmp(cc->argv.v[i], prefix, strlen(prefix)))
			return true;
	return false;
}

int diff_make(struct author *a, struct author_elf *bin, struct author_elf *syms,
	      const struct bin_syms *bs, const char *so_path, struct diff_result *ret)
{
	const struct author_opts *o = a->opts;
	struct dctx c;
	struct dw_info bindw;
	struct diff_result res;
	char cc_path[PATH_MAX * 2];
	size_t checked = 0;
	int r;

	memset(&c, 0, sizeof(c));
	memset(&res, 0, sizeof(res));
	memset(&bindw, 0, sizeof(bindw));
	c.a = a;
	c.bin = bin;
	c.bs = bs;
	if (!realpath(o->source_dir, c.dir))
		return hp_err(-errno, "--source %s: %s", o->source_dir, strerror(errno));
	if (o->compile_commands)
		snprintf(cc_path, sizeof(cc_path), "%s", o->compile_commands);
	else
		snprintf(cc_path, sizeof(cc_path), "%s/compile_commands.json", c.dir);

	/* LTO first: nothing of what follows could be trusted. */
	r = dw_info_load(syms->path, &bindw);
	if (r < 0)
		goto out;
	if (bindw.lto) {
		r = hp_err(-ENOTSUP, "BIN is built with link-time optimisation (LTO): whole-program "
			   "inlining cannot be followed from the sources; write the fix by hand");
		goto out;
	}
	for (const char *const *d = o->diffs; *d; d++) {
		struct hp_buf text = HP_BUF_INIT;

		r = hp_read_file(*d, DIFF_MAX_BYTES, &text);
		if (r < 0) {
			r = hp_err(r, "%s: %s", *d, strerror(-r));
			goto out;
		}
		r = diff_parse(*d, text.data ? text.data : "", &c.files, &c.n_files);
		hp_buf_release(&text);
		if (r < 0)
			goto out;
	}
	r = diff_ccmds_load(cc_path, &c.cmds, &c.n_cmds);
	if (r < 0)
		goto out;
	r = copy_tree(&c);
	for (const char *const *d = o->diffs; *d && r >= 0; d++)
		r = apply_diff(&c, *d);
	if (r < 0)
		goto out;
	r = choose_tus(&c, cc_path);
	if (r < 0)
		goto out;
	if (c.n_tus == 0) {
		r = hp_err(-EINVAL, "the fix changes no translation unit of the compile commands");
		goto out;
	}
	for (size_t i = 0; i < c.n_tus; i++)
		if (command_has(c.tus[i].cc, "-flto") && !command_has(c.tus[i].cc, "-flto=none") &&
		    !command_has(c.tus[i].cc, "-fno-lto")) {
			r = hp_err(-ENOTSUP, "%s is built with link-time optimisation (LTO, -flto): "
				   "whole-program inlining cannot be followed from the sources; write "
				   "the fix by hand", c.tus[i].rel);
			goto out;
		}
	for (size_t i = 0; i < c.n_tus; i++) {
		struct tu *t = &c.tus[i];

		struct obj exact;

		memset(&exact, 0, sizeof(exact));
		exact.ef.fd = -1;
		r = run_compile(&c, t->cc, false, t->exact_o, "exact");
		if (r >= 0)
			r = diff_obj_load(t->exact_o, &exact);
		if (r >= 0)
			r = rebuild_check(&c, t, &exact, &checked);
		diff_obj_release(&exact);
		if (r >= 0)
			r = run_compile(&c, t->cc, false, t->orig_o, "object");
		if (r >= 0)
			r = run_compile(&c, t->cc, true, t->new_o, "object");
		if (r >= 0)
			r = diff_obj_load(t->orig_o, &t->orig);
		if (r >= 0)
			r = diff_obj_load(t->new_o, &t->new);
		if (r >= 0)
			r = dw_info_load(t->orig_o, &t->dorig);
		if (r >= 0)
			r = dw_info_load(t->new_o, &t->dnew);
		if (r >= 0)
			r = compare_tu(&c, t);
		if (r < 0)
			goto out;
	}
	if (checked == 0)
		author_note(a, "no function of the rebuilt translation units could be compared with "
			    "BIN's (BIN has none of them by name): the rebuild is not checked");
	for (size_t i = 0; i < c.n_tus; i++) {
		struct tu *t = &c.tus[i];

		for (size_t k = 1; k < t->new.n_syms; k++)
			if (t->replace[k])
				c.n_replaced++;
	}
	if (c.n_replaced == 0) {
		r = hp_err(-EINVAL, "the fix changes no function of BIN: nothing to replace");
		goto out;
	}
	for (size_t i = 0; i < c.n_tus && r >= 0; i++)
		r = plan_tu(&c, &c.tus[i]);
	for (size_t i = 0; i < c.n_tus && r >= 0; i++)
		r = rewrite_tu(&c, &c.tus[i]);
	if (r >= 0)
		r = link_patch(&c, so_path);
	if (r < 0)
		goto out;

	/* What analyse() needs to find BIN's locals, and the reasons for the manifest. */
	for (size_t i = 0; i < c.n_binds && r >= 0; i++)
		if (c.binds[i].pick && !strv_has(&res.picks, c.binds[i].pick))
			r = strv_add(&res.picks, c.binds[i].pick);
	for (size_t i = 0; i < c.n_tus && r >= 0; i++) {
		struct tu *t = &c.tus[i];

		for (size_t k = 1; k < t->new.n_syms && r >= 0; k++) {
			char pick[1024];

			if (!t->replace[k])
				continue;
			if (strv_has(&res.whys, t->new.syms[k].name)) {
				r = hp_err(-ENOTUNIQ, "function %s: replaced in two translation units: "
					   "not supported", t->new.syms[k].name);
				break;
			}
			r = strv_add(&res.whys, t->new.syms[k].name);
			if (r >= 0)
				r = strv_add(&res.whys, t->why[k] ? t->why[k] : "changed");
			snprintf(pick, sizeof(pick), "%s@%s", t->new.syms[k].name, t->base);
			if (r >= 0 && sym_local(&t->new, k) && !strv_has(&res.picks, pick))
				r = strv_add(&res.picks, pick);
		}
	}
out:
	for (size_t i = 0; i < c.n_tus; i++)
		tu_release(&c.tus[i]);
	free(c.tus);
	for (size_t i = 0; i < c.n_binds; i++) {
		free(c.binds[i].name);
		free(c.binds[i].pick);
	}
	free(c.binds);
	diff_ccmds_release(c.cmds, c.n_cmds);
	diff_files_release(c.files, c.n_files);
	dw_info_release(&bindw);
	if (r < 0) {
		diff_result_release(&res);
		return r;
	}
	*ret = res;
	return 0;
}

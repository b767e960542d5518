/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * author.c: hp build (docs/authoring.md). Compiles the author's C into a
 * position-independent patch object (or takes a prebuilt one), reads BIN and
 * its debug file through libelf, checks every function the patch replaces and
 * every symbol it uses against BIN and the libraries BIN loads, then writes
 * the manifest, signs it and writes the bundle.
 *
 * What the engine gets: a patch object whose references to BIN (static
 * functions and variables included) are plain undefined symbols reached
 * through the GOT (-fPIC, -fno-plt), bound at apply time to load bias +
 * the offset the manifest records; references to libraries BIN loads are
 * resolved by the engine from the process's own mappings. No start files
 * (no _init, constructors or crtstuff), no new libraries, no TLS.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <gelf.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "author-int.h"

extern char **environ;

#define AUTHOR_MAX_SOURCES 256
#define AUTHOR_MAX_LIBS 256      /* libraries followed from BIN's DT_NEEDED */
#define AUTHOR_CC_OUT_MAX (1u << 20)
#define AUTHOR_LDCACHE_MAX (8u << 20)
#define AUTHOR_TEXT_MAX 1024     /* description, author: docs/manifest.md */
/*
 * Where distributions install separate debug files, by build-id under
 * .build-id/; $HP_DEBUG_DIR overrides it (gdb's debug-file-directory).
 */
#define AUTHOR_DEBUG_DIR "/usr/lib/debug"

/* Flags the patch object is compiled with; see the header comment. */
static const char *const author_cflags[] = {
	"-fPIC", "-shared", "-O2", "-g", "-fno-plt",
	/* No crt files: nothing runs at load, no _init/_fini or TM-clone junk. */
	"-nostartfiles",
	/* Unwind info for the replacement functions (backtraces, the safety check). */
	"-fasynchronous-unwind-tables",
	"-Wl,-z,now", "-Wl,--as-needed", "-Wl,--build-id",
	NULL
};

/* Defined functions a toolchain adds to a shared object: never replacements. */
static const char *const artefact_funcs[] = {
	"_init", "_fini", "_start", "frame_dummy", "register_tm_clones",
	"deregister_tm_clones", "__do_global_dtors_aux", "__libc_csu_init",
	"__libc_csu_fini", NULL
};

/* Weak references crtstuff makes; nothing the author wrote. */
static const char *const artefact_undefs[] = {
	"__cxa_finalize", "_ITM_registerTMCloneTable", "_ITM_deregisterTMCloneTable",
	"__gmon_start__", "_Jv_RegisterClasses", NULL
};

static const char *const std_lib_dirs[] = {
	"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64",
	"/lib", "/usr/lib", NULL
};

bool in_list(const char *const *list, const char *s)
{
	for (; list && *list; list++)
		if (!strcmp(*list, s))
			return true;
	return false;
}

/* ---- string vectors -------------------------------------------------------- */


void strv_release(struct strv *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	sv->v = NULL;
	sv->n = 0;
}

bool strv_has(const struct strv *sv, const char *s)
{
	for (size_t i = 0; i < sv->n; i++)
		if (!strcmp(sv->v[i], s))
			return true;
	return false;
}

/* Add a copy of the first len bytes of s. */
int strv_addn(struct strv *sv, const char *s, size_t len)
{
	char **v, *p;

	p = strndup(s, len);
	if (!p)
		return -ENOMEM;
	v = realloc(sv->v, (sv->n + 1) * sizeof(*v));
	if (!v) {
		free(p);
		return -ENOMEM;
	}
	sv->v = v;
	sv->v[sv->n++] = p;
	return 0;
}

int strv_add(struct strv *sv, const char *s)
{
	return strv_addn(sv, s, strlen(s));
}

int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Symbol names in .symtab may carry a version ("stdout@GLIBC_2.2.5"); C names cannot. */
size_t symname_len(const char *s)
{
	return strcspn(s, "@");
}

const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

/* ---- ELF files ------------------------------------------------------------- */


void author_elf_close(struct author_elf *ef)
{
	if (ef->elf)
		elf_end(ef->elf);
	if (ef->fd >= 0)
		close(ef->fd);
	free(ef->path);
	ef->path = NULL;
	ef->elf = NULL;
	ef->fd = -1;
}

int author_elf_open(const char *path, struct author_elf *ret)
{
	struct author_elf ef = AUTHOR_ELF_INIT;
	int r;

	if (elf_version(EV_CURRENT) == EV_NONE)
		return hp_err(-ENOEXEC, "libelf: %s", elf_errmsg(-1));
	ef.fd = open(path, O_RDONLY | O_CLOEXEC);
	if (ef.fd < 0)
		return hp_err(-errno, "%s: %s", path, strerror(errno));
	ef.path = strdup(path);
	if (!ef.path) {
		r = -ENOMEM;
		goto fail;
	}
	ef.elf = elf_begin(ef.fd, ELF_C_READ, NULL);
	if (!ef.elf || elf_kind(ef.elf) != ELF_K_ELF || !gelf_getehdr(ef.elf, &ef.eh)) {
		r = hp_err(-ENOEXEC, "%s: not an ELF file", path);
		goto fail;
	}
	*ret = ef;
	return 0;
fail:
	author_elf_close(&ef);
	return r;
}

Elf_Scn *find_section(Elf *elf, GElf_Word type)
{
	Elf_Scn *scn = NULL;

	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;

		if (gelf_getshdr(scn, &sh) && sh.sh_type == type)
			return scn;
	}
	return NULL;
}

/* Number of entries of a symbol or relocation section, bounded by its data. */
size_t section_count(Elf_Scn *scn, Elf_Data *d, Elf_Type t)
{
	GElf_Shdr sh;

	(void)t;
	if (!gelf_getshdr(scn, &sh) || !d || sh.sh_entsize == 0)
		return 0;
	return d->d_size / sh.sh_entsize;
}

/* ---- BIN's symbol table ---------------------------------------------------- */



void bin_syms_release(struct bin_syms *bs)
{
	for (size_t i = 0; i < bs->n; i++)
		free(bs->v[i].name);
	free(bs->v);
	strv_release(&bs->files);
	bs->v = NULL;
	bs->n = 0;
}

static int cmp_bin_sym(const void *a, const void *b)
{
	const struct bin_sym *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	return x->value < y->value ? -1 : x->value > y->value;
}

/* The defined symbols of ef (.symtab, else .dynsym), sorted by name. */
int bin_syms_load(struct author_elf *ef, struct bin_syms *ret)
{
	struct bin_syms bs = { NULL, 0, { NULL, 0 }, true };
	const char *cur_file = NULL;
	Elf_Scn *scn;
	Elf_Data *d;
	GElf_Shdr sh;
	size_t n, cap = 0;
	int r = 0;

	scn = find_section(ef->elf, SHT_SYMTAB);
	if (!scn) {
		scn = find_section(ef->elf, SHT_DYNSYM);
		bs.full = false;
	}
	if (!scn || !gelf_getshdr(scn, &sh) || !(d = elf_getdata(scn, NULL))) {
		*ret = bs;
		ret->full = false;
		return 0;
	}
	n = section_count(scn, d, ELF_T_SYM);
	for (size_t i = 1; i < n; i++) {
		GElf_Sym s;
		const char *name;
		struct bin_sym *b;

		if (!gelf_getsym(d, (int)i, &s))
			continue;
		name = elf_strptr(ef->elf, sh.sh_link, s.st_name);
		if (GELF_ST_TYPE(s.st_info) == STT_FILE) {
			cur_file = NULL;
			if (name && *name) {
				r = strv_add(&bs.files, name);
				if (r < 0)
					goto out;
				cur_file = bs.files.v[bs.files.n - 1];
			}
			continue;
		}
		if (!name || !*name || s.st_shndx == SHN_UNDEF ||
		    GELF_ST_TYPE(s.st_info) == STT_SECTION)
			continue;
		if (bs.n == cap) {
			size_t ncap = cap ? 2 * cap : 1024;
			struct bin_sym *v = realloc(bs.v, ncap * sizeof(*v));

			if (!v) {
				r = -ENOMEM;
				goto out;
			}
			bs.v = v;
			cap = ncap;
		}
		b = &bs.v[bs.n];
		b->name = strndup(name, symname_len(name));
		if (!b->name) {
			r = -ENOMEM;
			goto out;
		}
		b->bind = GELF_ST_BIND(s.st_info);
		b->type = GELF_ST_TYPE(s.st_info);
		b->file = b->bind == STB_LOCAL ? cur_file : NULL;
		b->value = s.st_value;
		b->size = s.st_size;
		bs.n++;
	}
	if (bs.n)
		qsort(bs.v, bs.n, sizeof(*bs.v), cmp_bin_sym);
out:
	if (r < 0) {
		bin_syms_release(&bs);
		return r;
	}
	*ret = bs;
	return 0;
}

/* Index of the first symbol called name, or bs->n. */
size_t bin_syms_first(const struct bin_syms *bs, const char *name)
{
	size_t lo = 0, hi = bs->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(bs->v[mid].name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < bs->n && !strcmp(bs->v[lo].name, name) ? lo : bs->n;
}

/*
 * Why name is missing, when BIN holds only compiler-made variants of it
 * (name.isra.0, name.constprop.0, name.part.0: other calling conventions),
 * else the stripped hint, else "". Written into buf.
 */
static const char *missing_hint(const struct bin_syms *bs, const char *name, char *buf,
				size_t size)
{
	size_t lo = 0, hi = bs->n, n = strlen(name);

	buf[0] = '\0';
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strncmp(bs->v[mid].name, name, n);

		if (c < 0 || (c == 0 && bs->v[mid].name[n] < '.'))
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < bs->n && !strncmp(bs->v[lo].name, name, n) && bs->v[lo].name[n] == '.')
		snprintf(buf, size, " (BIN has only %s, a compiler-made variant with another "
			 "calling convention)", bs->v[lo].name);
	else if (!bs->full)
		snprintf(buf, size, " (BIN is stripped: give its debug file with --debug)");
	return buf;
}

bool file_matches(const char *file, const char *pick)
{
	size_t lf, lp;

	if (!file)
		return false;
	if (!strcmp(file, pick) || !strcmp(base_name(file), pick) ||
	    !strcmp(file, base_name(pick)))
		return true;
	lf = strlen(file);
	lp = strlen(pick);
	return lf > lp && file[lf - lp - 1] == '/' && !strcmp(file + lf - lp, pick);
}

static const char *sym_label(const struct bin_sym *s)
{
	return s->file ? s->file : (s->bind == STB_LOCAL ? "unknown file" : "global");
}

/* "a.c, b.c" from the candidates (distinct values only). */
static void candidate_list(const struct bin_sym *const *c, size_t n, char *buf, size_t size)
{
	size_t len = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n && len < size; i++) {
		int w = snprintf(buf + len, size - len, "%s%s", i ? ", " : "", sym_label(c[i]));

		if (w < 0)
			break;
		len += (size_t)w;
	}
}


/*
 * Find name in BIN. what is "function" (want a function) or "symbol".
 * pick: the file of a --pick, or NULL. Returns 0 with *ret, -ENOENT without
 * a message when BIN has no such name (the caller says why), or another
 * error with its message.
 */
static int bin_resolve(struct author *a, const struct bin_syms *bs, const char *name,
		       const char *pick, bool want_func, const struct bin_sym **ret)
{
	const char *what = want_func ? "function" : "symbol";
	const struct bin_sym *c[16];
	size_t n = 0, n_all = 0, n_global = 0, gi = 0;
	char list[256];
	size_t i = bin_syms_first(bs, name);

	for (; i < bs->n && !strcmp(bs->v[i].name, name); i++) {
		const struct bin_sym *s = &bs->v[i];
		bool dup = false;

		n_all++;
		if (want_func && s->type != STT_FUNC && s->type != STT_GNU_IFUNC)
			continue;
		if (pick && !file_matches(s->file, pick))
			continue;
		/* Aliases at one address are one definition (sorted by value). */
		for (size_t k = 0; k < n; k++)
			dup |= c[k]->value == s->value;
		if (dup || n == sizeof(c) / sizeof(c[0]))
			continue;
		if (s->bind != STB_LOCAL) {
			n_global++;
			gi = n;
		}
		c[n++] = s;
	}
	if (n == 0) {
		if (n_all == 0)
			return -ENOENT;
		if (pick) {
			const struct bin_sym *all[16];
			size_t m = 0;

			for (i = bin_syms_first(bs, name);
			     i < bs->n && !strcmp(bs->v[i].name, name) && m < 16; i++)
				all[m++] = &bs->v[i];
			candidate_list(all, m, list, sizeof(list));
			return hp_err(-ENOENT, "%s %s: not in %s in BIN (found in: %s)", what, name,
				      pick, list);
		}
		return hp_err(-ENOEXEC, "function %s: not a function in BIN", name);
	}
	if (n > 1 && n_global == 1 && !pick) {
		/* C semantics: an extern declaration means the global one. */
		const struct bin_sym *g = c[gi];

		c[gi] = c[0];
		c[0] = g;
		candidate_list(c + 1, n - 1, list, sizeof(list));
		author_note(a, "%s %s: BIN also has a local %s in %s; the global one is used "
			    "(--pick %s@FILE for a local one)", what, name, name, list, name);
		n = 1;
	}
	if (n > 1) {
		candidate_list(c, n, list, sizeof(list));
		if (pick)
			return hp_err(-ENOTUNIQ, "%s %s: ambiguous in BIN even in %s (%s)", what,
				      name, pick, list);
		return hp_err(-ENOTUNIQ, "%s %s: ambiguous in BIN (%s): pick one with --pick %s@FILE",
			      what, name, list, name);
	}
	*ret = c[0];
	return 0;
}

/* ---- the libraries BIN loads ----------------------------------------------- */

struct author_lib {
	char *soname;     /* as DT_NEEDED names it (or the interpreter's path) */
	char *path;
	struct strv exports; /* defined names in .dynsym, sorted */
};

struct author_libs {
	struct author_lib *v;
	size_t n;
	struct strv missing; /* DT_NEEDED entries not found on this system */
};

static void author_libs_release(struct author_libs *L)
{
	for (size_t i = 0; i < L->n; i++) {
		free(L->v[i].soname);
		free(L->v[i].path);
		strv_release(&L->v[i].exports);
	}
	free(L->v);
	strv_release(&L->missing);
	L->v = NULL;
	L->n = 0;
}

/* DT_NEEDED, DT_RPATH and DT_RUNPATH of an object. */
struct dyn_info {
	struct strv needed;
	struct strv rpath;   /* directories, $ORIGIN expanded */
	struct strv runpath;
};

static void dyn_info_release(struct dyn_info *di)
{
	strv_release(&di->needed);
	strv_release(&di->rpath);
	strv_release(&di->runpath);
}

/* Split a colon-separated path list, expanding $ORIGIN / ${ORIGIN}. */
static int add_path_list(struct strv *sv, const char *list, const char *origin)
{
	while (*list) {
		size_t len = strcspn(list, ":");
		struct hp_buf b = HP_BUF_INIT;
		int r = 0;

		for (size_t i = 0; i < len && r >= 0; i++) {
			if (!strncmp(list + i, "$ORIGIN", 7) && i + 7 <= len) {
				r = hp_buf_adds(&b, origin);
				i += 6;
			} else if (!strncmp(list + i, "${ORIGIN}", 9) && i + 9 <= len) {
				r = hp_buf_adds(&b, origin);
				i += 8;
			} else {
				r = hp_buf_add(&b, list + i, 1);
			}
		}
		if (r >= 0 && b.len)
			r = strv_add(sv, b.data);
		hp_buf_release(&b);
		if (r < 0)
			return r;
		list += len;
		if (*list == ':')
			list++;
	}
	return 0;
}

static int dyn_info_load(struct author_elf *ef, struct dyn_info *ret)
{
	struct dyn_info di = { { NULL, 0 }, { NULL, 0 }, { NULL, 0 } };
	char origin[PATH_MAX];
	Elf_Scn *scn = find_section(ef->elf, SHT_DYNAMIC);
	GElf_Shdr sh;
	Elf_Data *d;
	int r = 0;

	snprintf(origin, sizeof(origin), "%s", ef->path);
	if (strrchr(origin, '/'))
		*strrchr(origin, '/') = '\0';
	else
		snprintf(origin, sizeof(origin), ".");
	if (!scn || !gelf_getshdr(scn, &sh) || !(d = elf_getdata(scn, NULL)) ||
	    sh.sh_type == SHT_NOBITS)
		goto out;
	for (size_t i = 0, n = section_count(scn, d, ELF_T_DYN); i < n; i++) {
		GElf_Dyn dyn;
		const char *s;

		if (!gelf_getdyn(d, (int)i, &dyn) || dyn.d_tag == DT_NULL)
			break;
		if (dyn.d_tag != DT_NEEDED && dyn.d_tag != DT_RPATH && dyn.d_tag != DT_RUNPATH)
			continue;
		s = elf_strptr(ef->elf, sh.sh_link, dyn.d_un.d_val);
		if (!s)
			continue;
		if (dyn.d_tag == DT_NEEDED)
			r = strv_add(&di.needed, s);
		else
			r = add_path_list(dyn.d_tag == DT_RPATH ? &di.rpath : &di.runpath, s, origin);
		if (r < 0)
			goto out;
	}
out:
	if (r < 0) {
		dyn_info_release(&di);
		return r;
	}
	*ret = di;
	return 0;
}


void author_note(struct author *a, const char *fmt, ...)
{
	char msg[HP_ERRMSG_MAX];
	va_list ap;

	if (!a->opts->note)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	a->opts->note(a->opts->note_ctx, msg);
}

bool cancelled(const struct author *a)
{
	return a->opts->cancel && *a->opts->cancel;
}

/*
 * Run argv with stdout and stderr into out_path. 0 with the exit status in
 * *ret_status (-1 for a signal), or -errno when it could not be started.
 * When the build is cancelled the child gets SIGTERM: it is ours, and a
 * cancelled build must not wait for a long compile. The child leads a
 * process group of its own and the whole group gets the signal: the gcc
 * driver, killed alone, removes its temporary files while cc1 or as go on
 * and write theirs again after it (left behind in $TMPDIR).
 */
int run_cmd_in(struct author *a, const char *dir, char *const argv[], const char *out_path,
	       int *ret_status)
{
	const struct timespec tick = { 0, 5 * 1000 * 1000 };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	bool killed = false;
	pid_t pid, w;
	int r, st = 0;

	r = posix_spawn_file_actions_init(&fa);
	if (r)
		return -r;
	r = posix_spawnattr_init(&attr);
	if (r) {
		posix_spawn_file_actions_destroy(&fa);
		return -r;
	}
	r = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
	if (!r)
		r = posix_spawnattr_setpgroup(&attr, 0);
	if (!r)
		r = posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (!r)
		r = posix_spawn_file_actions_adddup2(&fa, 1, 2);
	if (!r)
		r = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	/* The child's working directory, not ours: a library never moves the caller's. */
	if (!r && dir)
		r = posix_spawn_file_actions_addchdir_np(&fa, dir);
	if (!r)
		r = posix_spawnp(&pid, argv[0], &fa, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (r)
		return -r;
	/* Polled, so that a cancel between two checks is seen within a tick. */
	while ((w = waitpid(pid, &st, WNOHANG)) == 0 || (w < 0 && errno == EINTR)) {
		if (!killed && cancelled(a)) {
			kill(-pid, SIGTERM);
			killed = true;
		}
		nanosleep(&tick, NULL);
	}
	if (w < 0)
		return -errno;
	*ret_status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	return 0;
}

int run_cmd(struct author *a, char *const argv[], const char *out_path, int *ret_status)
{
	return run_cmd_in(a, NULL, argv, out_path, ret_status);
}

/* ld.so.cache as `ldconfig -p` shows it: "\tlibc.so.6 (libc6,x86-64) => /lib/.../libc.so.6". */
static void ldcache_read(struct author *a)
{
	static const char *const ldconfigs[] = { "/sbin/ldconfig", "/usr/sbin/ldconfig", "ldconfig",
						 NULL };
	struct hp_buf out = HP_BUF_INIT;
	char path[PATH_MAX + 32];
	int st = -1;

	a->ldcache_read = true;
	snprintf(path, sizeof(path), "%s/ldconfig.out", a->tmpdir);
	for (size_t i = 0; ldconfigs[i]; i++) {
		char *argv[] = { (char *)ldconfigs[i], (char *)"-p", NULL };

		if (ldconfigs[i][0] == '/' && access(ldconfigs[i], X_OK) < 0)
			continue;
		if (run_cmd(a, argv, path, &st) == 0 && st == 0)
			break;
		st = -1;
	}
	if (st != 0 || hp_read_file(path, AUTHOR_LDCACHE_MAX, &out) < 0)
		goto out;
	for (char *line = out.data, *next; line && *line; line = next) {
		char *arrow, *sp;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		arrow = strstr(line, " => ");
		while (*line == ' ' || *line == '\t')
			line++;
		sp = strchr(line, ' ');
		if (!arrow || !sp || sp > arrow)
			continue;
		if (strv_addn(&a->ldcache, line, (size_t)(sp - line)) < 0 ||
		    strv_add(&a->ldcache, arrow + 4) < 0)
			break;
	}
out:
	hp_buf_release(&out);
}

/* Open a library candidate if it is an ELF shared object of BIN's kind. */
static bool lib_try(const char *path, const GElf_Ehdr *bin_eh, struct author_elf *ret)
{
	if (access(path, R_OK) < 0 || author_elf_open(path, ret) < 0) {
		hp_err_clear();
		return false;
	}
	if (ret->eh.e_machine != bin_eh->e_machine ||
	    ret->eh.e_ident[EI_CLASS] != bin_eh->e_ident[EI_CLASS] || ret->eh.e_type != ET_DYN) {
		author_elf_close(ret);
		return false;
	}
	return true;
}

/* Locate soname as the dynamic linker would: RPATH, RUNPATH, ld.so.cache, default dirs. */
static bool lib_locate(struct author *a, const char *soname, const struct dyn_info *needer,
		       const struct dyn_info *bin, const GElf_Ehdr *bin_eh, struct author_elf *ret)
{
	const struct strv *lists[3];
	size_t nl = 0;
	char path[PATH_MAX];

	if (strchr(soname, '/'))
		return lib_try(soname, bin_eh, ret);
	if (needer->runpath.n == 0) {
		lists[nl++] = &needer->rpath;
		if (needer != bin && bin->runpath.n == 0)
			lists[nl++] = &bin->rpath;
	}
	lists[nl++] = &needer->runpath;
	for (size_t l = 0; l < nl; l++)
		for (size_t i = 0; i < lists[l]->n; i++) {
			snprintf(path, sizeof(path), "%s/%s", lists[l]->v[i], soname);
			if (lib_try(path, bin_eh, ret))
				return true;
		}
	if (!a->ldcache_read)
		ldcache_read(a);
	for (size_t i = 0; i + 1 < a->ldcache.n; i += 2)
		if (!strcmp(a->ldcache.v[i], soname) && lib_try(a->ldcache.v[i + 1], bin_eh, ret))
			return true;
	for (size_t i = 0; std_lib_dirs[i]; i++) {
		snprintf(path, sizeof(path), "%s/%s", std_lib_dirs[i], soname);
		if (lib_try(path, bin_eh, ret))
			return true;
	}
	return false;
}

static int lib_exports(struct author_elf *ef, struct strv *ret)
{
	Elf_Scn *scn = find_section(ef->elf, SHT_DYNSYM);
	struct strv sv = { NULL, 0 };
	GElf_Shdr sh;
	Elf_Data *d;
	int r = 0;

	if (!scn || !gelf_getshdr(scn, &sh) || !(d = elf_getdata(scn, NULL)))
		goto out;
	for (size_t i = 1, n = section_count(scn, d, ELF_T_SYM); i < n; i++) {
		GElf_Sym s;
		const char *name;
		unsigned bind;

		if (!gelf_getsym(d, (int)i, &s) || s.st_shndx == SHN_UNDEF)
			continue;
		bind = GELF_ST_BIND(s.st_info);
		if ((bind != STB_GLOBAL && bind != STB_WEAK && bind != STB_GNU_UNIQUE) ||
		    GELF_ST_VISIBILITY(s.st_other) == STV_HIDDEN ||
		    GELF_ST_VISIBILITY(s.st_other) == STV_INTERNAL)
			continue;
		name = elf_strptr(ef->elf, sh.sh_link, s.st_name);
		if (!name || !*name)
			continue;
		r = strv_add(&sv, name);
		if (r < 0)
			goto out;
	}
	if (sv.n)
		qsort(sv.v, sv.n, sizeof(*sv.v), cmp_str);
out:
	if (r < 0) {
		strv_release(&sv);
		return r;
	}
	*ret = sv;
	return 0;
}

static int libs_add(struct author_libs *L, const char *soname, struct author_elf *ef)
{
	struct author_lib *v = realloc(L->v, (L->n + 1) * sizeof(*v));
	struct author_lib *lib;
	int r;

	if (!v)
		return -ENOMEM;
	L->v = v;
	lib = &L->v[L->n];
	memset(lib, 0, sizeof(*lib));
	lib->soname = strdup(soname);
	lib->path = strdup(ef->path);
	if (!lib->soname || !lib->path) {
		free(lib->soname);
		free(lib->path);
		return -ENOMEM;
	}
	r = lib_exports(ef, &lib->exports);
	if (r < 0) {
		free(lib->soname);
		free(lib->path);
		return r;
	}
	L->n++;
	return 0;
}

static bool libs_have_soname(const struct author_libs *L, const char *soname)
{
	for (size_t i = 0; i < L->n; i++)
		if (!strcmp(L->v[i].soname, soname) || !strcmp(base_name(L->v[i].path), soname))
			return true;
	return strv_has(&L->missing, soname);
}

/* Every library the dynamic linker loads for BIN: DT_NEEDED, transitively, and the interpreter. */
static int libs_load(struct author *a, struct author_elf *bin, struct author_libs *ret)
{
	struct author_libs L = { NULL, 0, { NULL, 0 } };
	struct dyn_info bin_di;
	size_t nph = 0;
	int r;

	r = dyn_info_load(bin, &bin_di);
	if (r < 0)
		return r;
	/* The interpreter is mapped in every dynamically linked process. */
	if (elf_getphdrnum(bin->elf, &nph) == 0) {
		for (size_t i = 0; i < nph; i++) {
			GElf_Phdr ph;
			struct author_elf ef;
			char interp[PATH_MAX];
			Elf_Data *d;

			if (!gelf_getphdr(bin->elf, (int)i, &ph) || ph.p_type != PT_INTERP ||
			    ph.p_filesz == 0 || ph.p_filesz >= sizeof(interp))
				continue;
			d = elf_getdata_rawchunk(bin->elf, (int64_t)ph.p_offset, ph.p_filesz,
						 ELF_T_BYTE);
			if (!d || !d->d_buf)
				continue;
			memcpy(interp, d->d_buf, ph.p_filesz);
			interp[ph.p_filesz] = '\0';
			if (lib_try(interp, &bin->eh, &ef)) {
				r = libs_add(&L, interp, &ef);
				author_elf_close(&ef);
				if (r < 0)
					goto out;
			}
		}
	}
	/* Breadth first, as the dynamic linker orders its search scope. */
	{
		struct strv queue = { NULL, 0 };
		struct strv needer_paths = { NULL, 0 }; /* "" for BIN */

		for (size_t i = 0; i < bin_di.needed.n && r >= 0; i++) {
			r = strv_add(&queue, bin_di.needed.v[i]);
			if (r >= 0)
				r = strv_add(&needer_paths, "");
		}
		for (size_t q = 0; q < queue.n && r >= 0; q++) {
			struct author_elf needer_ef, ef;
			struct dyn_info needer_di, lib_di;
			bool have_needer = false;

			if (libs_have_soname(&L, queue.v[q]))
				continue;
			if (L.n >= AUTHOR_MAX_LIBS) {
				r = hp_err(-E2BIG, "BIN loads more than %d libraries", AUTHOR_MAX_LIBS);
				break;
			}
			if (needer_paths.v[q][0] && lib_try(needer_paths.v[q], &bin->eh, &needer_ef)) {
				r = dyn_info_load(&needer_ef, &needer_di);
				author_elf_close(&needer_ef);
				if (r < 0)
					break;
				have_needer = true;
			}
			if (!lib_locate(a, queue.v[q], have_needer ? &needer_di : &bin_di, &bin_di,
					&bin->eh, &ef)) {
				r = strv_add(&L.missing, queue.v[q]);
				author_note(a, "BIN needs %s, not found on this system: its symbols "
					    "are not checked", queue.v[q]);
			} else {
				r = libs_add(&L, queue.v[q], &ef);
				if (r >= 0)
					r = dyn_info_load(&ef, &lib_di);
				if (r >= 0) {
					for (size_t i = 0; i < lib_di.needed.n && r >= 0; i++) {
						r = strv_add(&queue, lib_di.needed.v[i]);
						if (r >= 0)
							r = strv_add(&needer_paths, ef.path);
					}
					dyn_info_release(&lib_di);
				}
				author_elf_close(&ef);
			}
			if (have_needer)
				dyn_info_release(&needer_di);
		}
		strv_release(&queue);
		strv_release(&needer_paths);
	}
out:
	dyn_info_release(&bin_di);
	if (r < 0) {
		author_libs_release(&L);
		return r;
	}
	*ret = L;
	return 0;
}

static const struct author_lib *libs_provide(const struct author_libs *L, const char *name)
{
	for (size_t i = 0; i < L->n; i++) {
		const char *key = name;

		if (L->v[i].exports.n &&
		    bsearch(&key, L->v[i].exports.v, L->v[i].exports.n, sizeof(char *), cmp_str))
			return &L->v[i];
	}
	return NULL;
}

/* ---- the patch object ------------------------------------------------------ */

struct patch_info {
	struct strv funcs;     /* defined global functions: the replacements */
	struct strv undefs;    /* undefined symbols it refers to */
	struct strv weak_undefs;
	struct strv objects;   /* defined global variables */
	struct strv needed;    /* DT_NEEDED */
	struct strv local_funcs; /* static functions of its own */
};

static void patch_info_release(struct patch_info *pi)
{
	strv_release(&pi->funcs);
	strv_release(&pi->undefs);
	strv_release(&pi->weak_undefs);
	strv_release(&pi->objects);
	strv_release(&pi->needed);
	strv_release(&pi->local_funcs);
}

static bool is_tls_reloc(GElf_Word type)
{
	switch (type) {
	case R_X86_64_DTPMOD64:
	case R_X86_64_DTPOFF64:
	case R_X86_64_TPOFF64:
	case R_X86_64_TLSGD:
	case R_X86_64_TLSLD:
	case R_X86_64_DTPOFF32:
	case R_X86_64_GOTTPOFF:
	case R_X86_64_TPOFF32:
	case R_X86_64_GOTPC32_TLSDESC:
	case R_X86_64_TLSDESC_CALL:
	case R_X86_64_TLSDESC:
		return true;
	default:
		return false;
	}
}

/*
 * What the engine cannot load: thread-local storage (it cannot give a patch
 * its own TLS block), ifuncs, relocations it does not apply (text
 * relocations of code built without -fPIC). Only the dynamic relocations
 * count: sections a --emit-relocs link keeps are not loaded.
 */
static int patch_check_loadable(struct author_elf *ef)
{
	Elf_Scn *scn = NULL;
	size_t nph = 0;

	if (elf_getphdrnum(ef->elf, &nph) == 0)
		for (size_t i = 0; i < nph; i++) {
			GElf_Phdr ph;

			if (gelf_getphdr(ef->elf, (int)i, &ph) && ph.p_type == PT_TLS)
				return hp_err(-ENOTSUP, "the patch defines thread-local variables: "
					      "not supported");
		}
	if (ef->eh.e_machine != EM_X86_64)
		return 0;
	while ((scn = elf_nextscn(ef->elf, scn))) {
		GElf_Shdr sh, symsh;
		Elf_Data *d, *symd = NULL;
		Elf_Scn *symscn;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_RELA || !(sh.sh_flags & SHF_ALLOC) ||
		    !(d = elf_getdata(scn, NULL)))
			continue;
		symscn = elf_getscn(ef->elf, sh.sh_link);
		if (symscn && gelf_getshdr(symscn, &symsh))
			symd = elf_getdata(symscn, NULL);
		for (size_t i = 0, n = section_count(scn, d, ELF_T_RELA); i < n; i++) {
			GElf_Word type;
			GElf_Rela rel;
			GElf_Sym s;
			const char *name = NULL;

			if (!gelf_getrela(d, (int)i, &rel))
				continue;
			type = (GElf_Word)GELF_R_TYPE(rel.r_info);
			if (hp_x86_64_reloc_applied(type))
				continue;
			if (symd && GELF_R_SYM(rel.r_info) &&
			    gelf_getsym(symd, (int)GELF_R_SYM(rel.r_info), &s))
				name = elf_strptr(ef->elf, symsh.sh_link, s.st_name);
			if (!name || !*name)
				name = NULL;
			if (is_tls_reloc(type))
				return hp_err(-ENOTSUP, "the patch uses thread-local storage (%s): "
					      "not supported", name ? name : "a __thread variable");
			if (type == R_X86_64_IRELATIVE)
				return hp_err(-ENOTSUP, "the patch uses an ifunc: not supported");
			return hp_err(-ENOEXEC, "the patch has relocation type %u%s%s, which the "
				      "engine does not apply (build it with -fPIC)", (unsigned)type,
				      name ? " against " : "", name ? name : "");
		}
	}
	return 0;
}

static int patch_info_load(struct author_elf *ef, const struct author_elf *bin,
			   struct patch_info *ret)
{
	struct patch_info pi;
	struct dyn_info di;
	Elf_Scn *scn;
	GElf_Shdr sh;
	Elf_Data *d;
	int r;

	memset(&pi, 0, sizeof(pi));
	if (ef->eh.e_type != ET_DYN)
		return hp_err(-ENOEXEC, "%s: not a shared object", ef->path);
	if (ef->eh.e_machine != bin->eh.e_machine ||
	    ef->eh.e_ident[EI_CLASS] != bin->eh.e_ident[EI_CLASS])
		return hp_err(-ENOEXEC, "%s: built for another machine than BIN", ef->path);
	r = patch_check_loadable(ef);
	if (r < 0)
		return r;
	r = dyn_info_load(ef, &di);
	if (r < 0)
		return r;
	pi.needed = di.needed;
	di.needed.v = NULL;
	di.needed.n = 0;
	dyn_info_release(&di);

	scn = find_section(ef->elf, SHT_SYMTAB);
	if (!scn)
		scn = find_section(ef->elf, SHT_DYNSYM);
	if (!scn || !gelf_getshdr(scn, &sh) || !(d = elf_getdata(scn, NULL))) {
		r = hp_err(-ENOEXEC, "%s: no symbol table", ef->path);
		goto out;
	}
	for (size_t i = 1, n = section_count(scn, d, ELF_T_SYM); i < n && r >= 0; i++) {
		GElf_Sym s;
		const char *name;
		unsigned bind, type;
		size_t len;

		if (!gelf_getsym(d, (int)i, &s))
			continue;
		bind = GELF_ST_BIND(s.st_info);
		type = GELF_ST_TYPE(s.st_info);
		name = elf_strptr(ef->elf, sh.sh_link, s.st_name);
		if (!name || !*name || type == STT_FILE || type == STT_SECTION)
			continue;
		len = symname_len(name);
		if (bind == STB_LOCAL) {
			if (type == STT_FUNC && s.st_shndx != SHN_UNDEF)
				r = strv_addn(&pi.local_funcs, name, len);
			continue;
		}
		if (type == STT_TLS) {
			r = hp_err(-ENOTSUP, "the patch uses thread-local storage (%.*s): not supported",
				   (int)len, name);
			break;
		}
		if (s.st_shndx == SHN_UNDEF) {
			char *tmp = strndup(name, len);

			if (!tmp) {
				r = -ENOMEM;
				break;
			}
			if (!in_list(artefact_undefs, tmp) && !strv_has(&pi.undefs, tmp) &&
			    !strv_has(&pi.weak_undefs, tmp))
				r = strv_add(bind == STB_WEAK ? &pi.weak_undefs : &pi.undefs, tmp);
			free(tmp);
			continue;
		}
		if (GELF_ST_VISIBILITY(s.st_other) == STV_HIDDEN ||
		    GELF_ST_VISIBILITY(s.st_other) == STV_INTERNAL)
			continue;
		if (type == STT_GNU_IFUNC) {
			r = hp_err(-ENOTSUP, "the patch defines an ifunc (%.*s): not supported",
				   (int)len, name);
			break;
		}
		/*
		 * Weak definitions are C++ template instantiations and inline
		 * functions the patch's code made for itself: they stay local to
		 * the patch (the engine binds the patch's references to its own
		 * definitions) and replace nothing of BIN.
		 */
		if (type == STT_FUNC && bind == STB_WEAK)
			continue;
		if (type == STT_FUNC) {
			char *tmp = strndup(name, len);

			if (!tmp) {
				r = -ENOMEM;
				break;
			}
			if (!in_list(artefact_funcs, tmp) && strncmp(tmp, "__x86.get_pc_thunk", 18) &&
			    !strv_has(&pi.funcs, tmp))
				r = strv_add(&pi.funcs, tmp);
			free(tmp);
		} else if (type == STT_OBJECT) {
			r = strv_addn(&pi.objects, name, len);
		}
	}
	if (r < 0)
		goto out;
	if (pi.funcs.n == 0) {
		r = hp_err(-EINVAL, "the patch defines no function: nothing to replace");
		goto out;
	}
	/* The engine finds a replacement by name: a local namesake could be taken for it. */
	for (size_t i = 0; i < pi.funcs.n; i++)
		if (strv_has(&pi.local_funcs, pi.funcs.v[i])) {
			r = hp_err(-EINVAL, "function %s: the patch also has a static %s: rename it",
				   pi.funcs.v[i], pi.funcs.v[i]);
			goto out;
		}
	qsort(pi.funcs.v, pi.funcs.n, sizeof(char *), cmp_str);
	if (pi.undefs.n)
		qsort(pi.undefs.v, pi.undefs.n, sizeof(char *), cmp_str);
	if (pi.weak_undefs.n)
		qsort(pi.weak_undefs.v, pi.weak_undefs.n, sizeof(char *), cmp_str);
out:
	if (r < 0) {
		patch_info_release(&pi);
		return r;
	}
	*ret = pi;
	return 0;
}

/* ---- options --------------------------------------------------------------- */

static bool has_suffix(const char *s, const char *suffix)
{
	size_t ls = strlen(s), lx = strlen(suffix);

	return ls > lx && !strcmp(s + ls - lx, suffix);
}

static bool bundle_ext_ok(const char *path)
{
	static const char *const exts[] = { ".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".zip",
					    NULL };

	for (size_t i = 0; exts[i]; i++)
		if (has_suffix(base_name(path), exts[i]))
			return true;
	return false;
}

static bool text_ok(const char *s)
{
	if (strlen(s) > AUTHOR_TEXT_MAX)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* The --pick for name: its file, or NULL. */
static const char *pick_for(const struct author_opts *o, const char *name)
{
	size_t n = strlen(name);

	for (const char *const *p = o->picks; p && *p; p++)
		if (!strncmp(*p, name, n) && (*p)[n] == '@')
			return *p + n + 1;
	return NULL;
}

/* Everything checkable before compiling; fills the fixed fields of m. */
static int check_opts(const struct author_opts *o, struct hp_manifest *m)
{
	char dir[PATH_MAX], real[PATH_MAX];
	const char *target_name;
	size_t n_src = 0, n;
	int r;

	if (!o->target)
		return hp_err(-EINVAL, "no target: give --target BIN");
	if (!o->baseline || !hp_valid_baseline(o->baseline))
		return hp_err(-EINVAL, "invalid baseline '%s' (expected YYYY.MM, e.g. 2026.01)",
			      o->baseline ? o->baseline : "");
	if (!o->month || !hp_valid_month(o->month))
		return hp_err(-EINVAL, "invalid month '%s' (expected YYYY-MM, e.g. 2026-02)",
			      o->month ? o->month : "");
	/* Both valid: "YYYY.MM" and "YYYY-MM" compare as strings past the separator. */
	if (strncmp(o->month, o->baseline, 4) < 0 ||
	    (!strncmp(o->month, o->baseline, 4) && strcmp(o->month + 5, o->baseline + 5) < 0))
		return hp_err(-EINVAL, "month %s is before baseline %s", o->month, o->baseline);
	if (!o->name || !hp_valid_setname(o->name))
		return hp_err(-EINVAL, "invalid patch-set name '%s' (letters, digits, '._+-', "
			      "at most 64, starting with a letter or digit)", o->name ? o->name : "");
	if (!o->output || !*o->output)
		return hp_err(-EINVAL, "no output: give -o BUNDLE");
	if (!bundle_ext_ok(o->output))
		return hp_err(-EINVAL, "%s: unknown bundle format (use .tar, .tar.gz, .tgz, .tar.xz "
			      "or .zip)", o->output);
	/* Its directory, before the work: the bundle is written there last. */
	n = (size_t)(base_name(o->output) - o->output);
	snprintf(dir, sizeof(dir), "%.*s", (int)(n > 1 ? n - 1 : n), o->output);
	if (access(dir[0] ? dir : ".", W_OK) < 0)
		return hp_err(-errno, "%s: %s", dir[0] ? dir : ".", strerror(errno));
	if (o->description && !text_ok(o->description))
		return hp_err(-EINVAL, "description: control character or longer than %d bytes",
			      AUTHOR_TEXT_MAX);
	if (o->author && !text_ok(o->author))
		return hp_err(-EINVAL, "author: control character or longer than %d bytes",
			      AUTHOR_TEXT_MAX);
	/*
	 * The file's own name, symlinks resolved (/usr/bin/python3 is
	 * python3.11): the name a process maps it under.
	 */
	target_name = realpath(o->target, real) ? base_name(real) : base_name(o->target);
	if (!*target_name || strlen(target_name) > 255 || strpbrk(target_name, " \t\n\r") ||
	    !text_ok(target_name))
		return hp_err(-EINVAL, "%s: a target file name must be one word", o->target);
	for (const char *const *p = o->picks; p && *p; p++) {
		const char *at = strchr(*p, '@');

		if (!at || !at[1] || !hp_valid_symname(*p))
			return hp_err(-EINVAL, "invalid --pick '%s' (expected NAME@FILE, e.g. "
				      "helper@util.c)", *p);
		for (const char *const *q = o->picks; q != p; q++)
			if (!strncmp(*q, *p, (size_t)(at - *p) + 1))
				return hp_err(-EINVAL, "--pick %.*s given twice", (int)(at - *p), *p);
	}
	for (const char *const *p = o->active_ok; p && *p; p++)
		if (!hp_valid_symname(*p) || strchr(*p, '@'))
			return hp_err(-EINVAL, "invalid --active-ok '%s' (a function name)", *p);
	for (const char *const *p = o->sources; p && *p; p++) {
		if (access(*p, R_OK) < 0)
			return hp_err(-errno, "%s: %s", *p, strerror(errno));
		if (++n_src > AUTHOR_MAX_SOURCES)
			return hp_err(-E2BIG, "more than %d sources", AUTHOR_MAX_SOURCES);
	}
	if (o->diffs && o->diffs[0]) {
		size_t n_diffs = 0;

		if (n_src)
			return hp_err(-EINVAL, "give either sources or --diff, not both");
		if (!o->source_dir)
			return hp_err(-EINVAL, "--diff needs --source DIR, the target's source tree");
		for (const char *const *p = o->diffs; *p; p++) {
			if (access(*p, R_OK) < 0)
				return hp_err(-errno, "%s: %s", *p, strerror(errno));
			if (++n_diffs > AUTHOR_MAX_SOURCES)
				return hp_err(-E2BIG, "more than %d diffs", AUTHOR_MAX_SOURCES);
		}
		if (access(o->source_dir, R_OK | X_OK) < 0)
			return hp_err(-errno, "--source %s: %s", o->source_dir, strerror(errno));
		if (o->compile_commands && access(o->compile_commands, R_OK) < 0)
			return hp_err(-errno, "--compile-commands %s: %s", o->compile_commands,
				      strerror(errno));
	} else if (o->source_dir || o->compile_commands) {
		return hp_err(-EINVAL, "--source and --compile-commands go with --diff");
	} else if (n_src == 0) {
		return hp_err(-EINVAL, "no sources: give the patch's .c files or one prebuilt .so");
	}
	if (o->sign_key && access(o->sign_key, R_OK) < 0)
		return hp_err(-errno, "signing key %s: %s", o->sign_key, strerror(errno));
	if (access(o->target, R_OK) < 0)
		return hp_err(-errno, "%s: %s", o->target, strerror(errno));
	if (o->debug_file && access(o->debug_file, R_OK) < 0)
		return hp_err(-errno, "%s: %s", o->debug_file, strerror(errno));

	r = hp_manifest_set_str(&m->name, o->name);
	if (r >= 0)
		r = hp_manifest_set_str(&m->baseline, o->baseline);
	if (r >= 0)
		r = hp_manifest_set_str(&m->month, o->month);
	if (r >= 0)
		r = hp_manifest_set_str(&m->target, target_name);
	if (r >= 0)
		r = hp_manifest_set_str(&m->description, o->description);
	if (r >= 0)
		r = hp_manifest_set_str(&m->author, o->author);
	for (const char *const *p = o->cves; p && *p && r >= 0; p++) {
		bool dup = false;

		for (size_t i = 0; i < m->n_cves; i++)
			dup |= !strcmp(m->cves[i], *p);
		if (!dup)
			r = hp_manifest_add_cve(m, *p);
	}
	return r;
}

/* ---- compiling ------------------------------------------------------------- */

/* A shared object (a prebuilt patch), as opposed to C sources or relocatable objects. */
static bool is_shared_object(const char *path)
{
	struct author_elf ef;
	bool yes;

	if (author_elf_open(path, &ef) < 0) {
		hp_err_clear();
		return false;
	}
	yes = ef.eh.e_type == ET_DYN;
	author_elf_close(&ef);
	return yes;
}

/*
 * The compiler's output: a one-line summary for the error (the first
 * "error:" line; for a link error, the linker's line before collect2's
 * summary), the whole text as a note.
 */
const char *first_error_line(char *text)
{
	char *line = strstr(text, "error:");
	char *prev;

	if (!line)
		return NULL;
	while (line > text && line[-1] != '\n')
		line--;
	if (!strncmp(line, "collect2:", 9) && line > text) {
		prev = line - 1; /* the '\n' ending the line before */
		while (prev > text && prev[-1] != '\n')
			prev--;
		if (strncmp(prev, "collect2:", 9))
			line = prev;
	}
	line[strcspn(line, "\n")] = '\0';
	return line;
}

/*
 * The zero word that ends .eh_frame, which crtend.o provides to a normal
 * link and -nostartfiles leaves out: libgcc's unwinder walks a registered
 * .eh_frame up to it (the engine registers the patch's tables with the
 * target's unwinder, for C++ exceptions and backtrace() through patched
 * frames). An assembly file, given after the sources so the linker puts
 * it last.
 */
int eh_frame_end(struct author *a, char *path, size_t cap)
{
	static const char text[] =
		"\t.section .eh_frame,\"a\",@progbits\n\t.long 0\n"
		"\t.section .note.GNU-stack,\"\",@progbits\n";

	snprintf(path, cap, "%s/eh-frame-end.s", a->tmpdir);
	return hp_write_file_atomic(path, text, sizeof(text) - 1, 0600);
}

static int compile(struct author *a, const char *so_path)
{
	const struct author_opts *o = a->opts;
	const char *cc = o->cc;
	struct strv args = { NULL, 0 };
	struct hp_buf out = HP_BUF_INIT;
	char out_path[PATH_MAX + 16], end_path[PATH_MAX + 32];
	char *words = NULL, *save = NULL;
	int r = 0, st = -1;

	if (!cc || !*cc)
		cc = getenv("CC");
	if (!cc || !*cc)
		cc = "cc";
	/* $CC may be "ccache gcc". */
	words = strdup(cc);
	if (!words)
		return -ENOMEM;
	for (char *w = strtok_r(words, " \t", &save); w && r >= 0; w = strtok_r(NULL, " \t", &save))
		r = strv_add(&args, w);
	for (size_t i = 0; author_cflags[i] && r >= 0; i++)
		r = strv_add(&args, author_cflags[i]);
	for (const char *const *p = o->cflags; p && *p && r >= 0; p++)
		r = strv_add(&args, *p);
	if (r >= 0)
		r = strv_add(&args, "-o");
	if (r >= 0)
		r = strv_add(&args, so_path);
	for (const char *const *p = o->sources; p && *p && r >= 0; p++)
		r = strv_add(&args, *p);
	/* last: the end marker of .eh_frame (see eh_frame_end) */
	if (r >= 0)
		r = eh_frame_end(a, end_path, sizeof(end_path));
	if (r >= 0)
		r = strv_add(&args, end_path);
	if (r >= 0) {
		char **v = realloc(args.v, (args.n + 1) * sizeof(*v));

		if (!v)
			r = -ENOMEM;
		else
			args.v = v;
	}
	if (r < 0 || args.n == 0)
		goto out;
	args.v[args.n] = NULL;

	snprintf(out_path, sizeof(out_path), "%s/cc.out", a->tmpdir);
	r = run_cmd(a, args.v, out_path, &st);
	if (r < 0) {
		r = hp_err(r == -ENOENT ? -ENOENT : r, "compiler '%s': %s", args.v[0], strerror(-r));
		goto out;
	}
	if (hp_read_file(out_path, AUTHOR_CC_OUT_MAX, &out) < 0)
		hp_buf_reset(&out);
	if (out.len) {
		/* Warnings and errors in full: the author needs them. */
		while (out.len && out.data[out.len - 1] == '\n')
			out.data[--out.len] = '\0';
		author_note(a, "%s", out.data);
	}
	if (cancelled(a)) {
		r = hp_err(-ECANCELED, "interrupted");
		goto out;
	}
	if (st != 0) {
		const char *line = out.len ? first_error_line(out.data) : NULL;

		if (line)
			r = hp_err(-EINVAL, "compiling the patch failed: %s", line);
		else
			r = hp_err(-EINVAL, "compiling the patch failed: %s exited with status %d",
				   args.v[0], st);
	}
out:
	hp_buf_release(&out);
	strv_release(&args);
	free(words);
	return r;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

/* The private temporary directory and everything in it (a --diff build copies a tree). */
static void tmpdir_remove(const char *dir)
{
	nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- analysis -------------------------------------------------------------- */

/*
 * The debug file a -dbgsym package installed for a stripped BIN, if any
 * (opened into dbg), else dbg stays closed.
 */
static void find_debug_file(struct author *a, const char *build_id, struct author_elf *dbg)
{
	const char *dir = getenv("HP_DEBUG_DIR");
	char path[PATH_MAX], id[HP_BUILD_ID_HEX_SIZE];

	snprintf(path, sizeof(path), "%s/.build-id/%.2s/%s.debug",
		 dir && *dir ? dir : AUTHOR_DEBUG_DIR, build_id, build_id + 2);
	if (access(path, R_OK) < 0 || author_elf_open(path, dbg) < 0)
		goto out;
	if (hp_elf_build_id(dbg->elf, id) < 0 || strcmp(id, build_id) ||
	    !find_section(dbg->elf, SHT_SYMTAB)) {
		author_elf_close(dbg);
		goto out;
	}
	author_note(a, "BIN is stripped: using its debug file %s", path);
out:
	hp_err_clear();
}

/* Open BIN and the file holding its symbols; check build-ids. */
static int open_target(struct author *a, struct author_elf *bin, struct author_elf *dbg,
		       char build_id[HP_BUILD_ID_HEX_SIZE])
{
	const struct author_opts *o = a->opts;
	char dbg_id[HP_BUILD_ID_HEX_SIZE];
	int r;

	r = author_elf_open(o->target, bin);
	if (r < 0)
		return r;
	if (bin->eh.e_type != ET_EXEC && bin->eh.e_type != ET_DYN) {
		r = hp_err(-ENOEXEC, "%s: not an executable or shared library", o->target);
		goto out;
	}
	if (hp_elf_build_id(bin->elf, build_id) < 0) {
		r = hp_err(-ENOEXEC, "BIN has no build-id: %s (link it with -Wl,--build-id)",
			   o->target);
		goto out;
	}
	if (!o->debug_file) {
		if (!find_section(bin->elf, SHT_SYMTAB))
			find_debug_file(a, build_id, dbg);
		goto out;
	}
	r = author_elf_open(o->debug_file, dbg);
	if (r < 0)
		goto out;
	if (hp_elf_build_id(dbg->elf, dbg_id) < 0)
		r = hp_err(-ENOEXEC, "debug file %s has no build-id", o->debug_file);
	else if (strcmp(dbg_id, build_id))
		r = hp_err(-ENOEXEC, "debug file %s is of another build (build-id %s, BIN has %s)",
			   o->debug_file, dbg_id, build_id);
out:
	if (r < 0) {
		author_elf_close(dbg);
		author_elf_close(bin);
	}
	return r;
}

static bool wanted(const char *const *list, const char *name)
{
	return in_list(list, name);
}

/*
 * IPA-RA (clobber.c, docs/authoring.md): a replacement that may write a
 * call-clobbered register its original never writes can break a caller
 * that gcc's -fipa-ra let keep a value there across the call. Told as a
 * note, not refused: whether a caller relies on it is not visible here,
 * and a function marked noipa, or a BIN built without IPA-RA, is safe.
 * Silent when BIN's DWARF says every unit was built with -fno-ipa-ra.
 */
static void check_ipa_ra(struct author *a, struct author_elf *bin, struct author_elf *dbg,
			 struct author_elf *patch, const struct hp_manifest *m)
{
	Elf *syms = dbg->elf ? dbg->elf : bin->elf;

	if (clobber_ipa_ra_off(syms))
		return;
	if (!clobber_available()) {
		author_note(a, "IPA-RA check skipped: hp build was built without Capstone");
		return;
	}
	for (size_t i = 0; i < m->n_funcs; i++) {
		const struct hp_manifest_func *f = &m->funcs[i];
		uint64_t orig, repl, addr, size;
		char names[256];

		if (clobber_writes(bin->elf, syms, f->offset, f->size, &orig) < 0 ||
		    clobber_find(patch->elf, f->name, &addr, &size) < 0 ||
		    clobber_writes(patch->elf, NULL, addr, size, &repl) < 0 || !(repl & ~orig))
			continue;
		if (repl == CLOBBER_ALL) {
			clobber_names(orig, names, sizeof(names));
			author_note(a, "function %s: the original writes %s%s of the call-clobbered "
				    "registers, the replacement calls other code and may write any; "
				    "a caller built with gcc -fipa-ra (on at -O2) may keep values in "
				    "the others across the call (see IPA-RA in docs/authoring.md)",
				    f->name, orig ? "only " : "none", names);
			continue;
		}
		clobber_names(repl & ~orig, names, sizeof(names));
		author_note(a, "function %s: the replacement may write %s, which the original "
			    "never writes; a caller built with gcc -fipa-ra (on at -O2) may keep "
			    "values there across the call (see IPA-RA in docs/authoring.md)",
			    f->name, names);
	}
}

/* Whether BIN's DWARF says it came out of link-time optimisation. */
static bool bin_is_lto(struct author_elf *syms)
{
	struct dw_info di;
	bool lto;

	if (dw_info_load(syms->path, &di) < 0) {
		hp_err_clear();
		return false;
	}
	lto = di.lto;
	dw_info_release(&di);
	return lto;
}

/*
 * A replaced function that BIN also inlined into other functions: those
 * copies keep the old code. BIN's DWARF (DW_TAG_inlined_subroutine) names
 * them; a caller the patch replaces too is fine. Refused unless
 * --allow-inlined, which makes it a note. Said once: BIN built with LTO.
 */
static int check_inlined(struct author *a, struct author_elf *syms, const struct hp_manifest *m)
{
	struct dw_info di;
	int r;

	r = dw_info_load(syms->path, &di);
	if (r < 0) {
		author_note(a, "BIN's DWARF could not be read (%s): inlined copies are not checked",
			    hp_errmsg(r));
		hp_err_clear();
		return 0;
	}
	if (!di.has_dwarf) {
		author_note(a, "BIN has no DWARF: copies of a replaced function inlined elsewhere "
			    "cannot be found (give --debug)");
		goto out;
	}
	if (di.lto && !a->opts->diffs)
		author_note(a, "BIN is built with link-time optimisation (LTO): functions are "
			    "inlined across files as well; check each replaced function's callers");
	for (size_t i = 0; i < m->n_funcs; i++) {
		const char *name = m->funcs[i].name;
		struct hp_buf list = HP_BUF_INIT;
		size_t n = 0;

		for (size_t k = 0; k < di.n_funcs; k++) {
			const struct dw_func *f = &di.funcs[k];

			if (!f->concrete || !strv_has(&f->inlined, name) ||
			    hp_manifest_find_func(m, f->name))
				continue;
			if (n < 8)
				hp_buf_addf(&list, "%s%s", n ? ", " : "", f->name);
			n++;
		}
		if (n > 8)
			hp_buf_addf(&list, " and %zu more", n - 8);
		if (n && !a->opts->allow_inlined) {
			r = hp_err(-EEXIST, "function %s: BIN also has copies of it inlined into %s: "
				   "they keep the old code; replace those too, or give "
				   "--allow-inlined", name, list.data);
			hp_buf_release(&list);
			goto out;
		}
		if (n)
			author_note(a, "function %s: BIN also has copies of it inlined into %s: they "
				    "keep the old code (--allow-inlined)", name, list.data);
		hp_buf_release(&list);
	}
	r = 0;
out:
	dw_info_release(&di);
	return r;
}

/* Fill m's func and sym lines from the patch object at so_path. */
static int analyse(struct author *a, struct author_elf *bin, struct author_elf *dbg,
		   const char *so_path, struct hp_manifest *m)
{
	const struct author_opts *o = a->opts;
	struct bin_syms bs = { NULL, 0, { NULL, 0 }, false };
	struct author_libs libs = { NULL, 0, { NULL, 0 } };
	struct patch_info pi;
	struct author_elf patch = AUTHOR_ELF_INIT;
	bool libs_loaded = false;
	char hint[320];
	int r;

	memset(&pi, 0, sizeof(pi));
	r = bin_syms_load(dbg->elf ? dbg : bin, &bs);
	if (r < 0)
		goto out;
	if (!bs.full && dbg->elf) {
		/* A debug file without .symtab: BIN's own tables are all there is. */
		bin_syms_release(&bs);
		r = bin_syms_load(bin, &bs);
		if (r < 0)
			goto out;
	}

	r = author_elf_open(so_path, &patch);
	if (r < 0)
		goto out;
	r = patch_info_load(&patch, bin, &pi);
	if (r < 0)
		goto out;

	for (const char *const *p = o->active_ok; p && *p; p++)
		if (!strv_has(&pi.funcs, *p)) {
			r = hp_err(-EINVAL, "--active-ok %s: the patch does not replace %s", *p, *p);
			goto out;
		}
	for (const char *const *p = o->picks; p && *p; p++) {
		size_t n = strcspn(*p, "@");
		char *name = strndup(*p, n);
		bool used;

		if (!name) {
			r = -ENOMEM;
			goto out;
		}
		used = strv_has(&pi.funcs, name) || strv_has(&pi.undefs, name) ||
		       strv_has(&pi.weak_undefs, name);
		free(name);
		if (!used) {
			r = hp_err(-EINVAL, "--pick %s: the patch neither replaces nor uses %.*s", *p,
				   (int)n, *p);
			goto out;
		}
	}

	for (size_t i = 0; i < pi.funcs.n; i++) {
		const char *name = pi.funcs.v[i];
		const char *pick = pick_for(o, name);
		const struct bin_sym *s;

		hp_err_clear();
		r = bin_resolve(a, &bs, name, pick, true, &s);
		if (r == -ENOENT && !hp_err_isset()) {
			missing_hint(&bs, name, hint, sizeof(hint));
			if (!hint[0] && bin_is_lto(dbg->elf ? dbg : bin))
				snprintf(hint, sizeof(hint), " (BIN is built with link-time optimisation, "
					 "LTO: %s may have been inlined into its callers, across files too)",
					 name);
			r = hp_err(-ENOENT, "function %s: not in BIN%s", name, hint);
		}
		if (r < 0)
			goto out;
		if (s->type == STT_GNU_IFUNC) {
			r = hp_err(-ENOTSUP, "function %s: an ifunc in BIN, not supported", name);
			goto out;
		}
		if (s->size < HP_X86_64_JUMP_LEN) {
			r = hp_err(-ENOEXEC, "function %s: %" PRIu64 " byte%s, too small for the "
				   "%d-byte jump", name, s->size, s->size == 1 ? "" : "s",
				   HP_X86_64_JUMP_LEN);
			goto out;
		}
		r = hp_manifest_add_func(m, name, pick, s->value, s->size,
					 wanted(o->active_ok, name) ? HP_FUNC_ACTIVE_OK : 0);
		if (r < 0)
			goto out;
	}

	for (size_t i = 0; i < pi.objects.n; i++) {
		size_t k = bin_syms_first(&bs, pi.objects.v[i]);

		if (k < bs.n && bs.v[k].type == STT_OBJECT)
			author_note(a, "variable %s: the patch defines its own, BIN's is not used "
				    "(declare it extern to use BIN's)", pi.objects.v[i]);
	}

	for (int weak = 0; weak <= 1; weak++) {
		const struct strv *sv = weak ? &pi.weak_undefs : &pi.undefs;

		for (size_t i = 0; i < sv->n; i++) {
			const char *name = sv->v[i];
			const char *pick = pick_for(o, name);
			const struct bin_sym *s;

			hp_err_clear();
			r = bin_resolve(a, &bs, name, pick, false, &s);
			if (r == 0) {
				if (s->type == STT_TLS) {
					r = hp_err(-ENOTSUP, "symbol %s: thread-local in BIN, not "
						   "supported", name);
					goto out;
				}
				if (s->type == STT_GNU_IFUNC) {
					r = hp_err(-ENOTSUP, "symbol %s: an ifunc in BIN, not supported",
						   name);
					goto out;
				}
				r = hp_manifest_add_sym(m, name, pick, s->value);
				if (r < 0)
					goto out;
				continue;
			}
			if (r != -ENOENT || hp_err_isset())
				goto out;
			if (!libs_loaded) {
				r = libs_load(a, bin, &libs);
				if (r < 0)
					goto out;
				libs_loaded = true;
			}
			r = 0;
			if (libs_provide(&libs, name))
				continue;
			if (weak) {
				author_note(a, "weak symbol %s: neither BIN nor its libraries provide it; "
					    "it stays null", name);
				continue;
			}
			r = hp_err(-ENOENT, "symbol %s needed by the patch: neither BIN nor its "
				   "libraries provide it%s", name,
				   missing_hint(&bs, name, hint, sizeof(hint)));
			goto out;
		}
	}

	r = check_inlined(a, dbg->elf ? dbg : bin, m);
	if (r < 0)
		goto out;
	check_ipa_ra(a, bin, dbg, &patch, m);

	/* No new libraries: the engine maps nothing but the patch object. */
	if (pi.needed.n && !libs_loaded) {
		r = libs_load(a, bin, &libs);
		if (r < 0)
			goto out;
		libs_loaded = true;
	}
	/* A static BIN loads nothing: its own symbols were all there was to check. */
	for (size_t i = 0; i < pi.needed.n && (libs.n || libs.missing.n); i++)
		if (!libs_have_soname(&libs, pi.needed.v[i])) {
			r = hp_err(-ENOEXEC, "the patch needs %s, which BIN does not load",
				   pi.needed.v[i]);
			goto out;
		}
	r = 0;
out:
	author_elf_close(&patch);
	patch_info_release(&pi);
	author_libs_release(&libs);
	bin_syms_release(&bs);
	return r;
}

/* ---- the whole build ------------------------------------------------------- */

/* Now, or $SOURCE_DATE_EPOCH for reproducible builds (reproducible-builds.org). */
static int utc_now(char ret[32])
{
	const char *sde = getenv("SOURCE_DATE_EPOCH");
	struct tm tm;
	time_t t = time(NULL);
	char *end;

	if (sde && *sde) {
		long long v;

		errno = 0;
		v = strtoll(sde, &end, 10);
		if (errno || *end || v < 0)
			return hp_err(-EINVAL, "SOURCE_DATE_EPOCH: not a number of seconds: %s", sde);
		t = (time_t)v;
	}

	if (!gmtime_r(&t, &tm) || !strftime(ret, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
		return hp_err(-EINVAL, "time %lld: cannot be written as a date", (long long)t);
	return 0;
}

int author_build(const struct author_opts *opts, struct hp_manifest **ret_manifest)
{
	struct author a;
	struct author_elf bin = AUTHOR_ELF_INIT;
	struct author_elf dbg = AUTHOR_ELF_INIT;
	struct hp_buf b_manifest = HP_BUF_INIT, b_patch = HP_BUF_INIT, b_sig = HP_BUF_INIT;
	struct hp_manifest *m = NULL, *check = NULL;
	char so_path[PATH_MAX + 16], build_id[HP_BUILD_ID_HEX_SIZE], sha[HP_SHA256_HEX_SIZE], created[32];
	const char *tmp = getenv("TMPDIR");
	struct diff_result dres;
	struct author_opts eff;
	const char **picks = NULL;
	bool prebuilt, diff_mode;
	int r;

	memset(&dres, 0, sizeof(dres));
	if (!opts)
		return hp_err(-EINVAL, "no options");
	hp_err_clear();
	memset(&a, 0, sizeof(a));
	a.opts = opts;
	m = hp_manifest_new();
	if (!m)
		return -ENOMEM;
	r = check_opts(opts, m);
	if (r >= 0)
		r = utc_now(created);
	if (r < 0)
		goto out;
	diff_mode = opts->diffs && opts->diffs[0];
	prebuilt = !diff_mode && is_shared_object(opts->sources[0]);
	for (size_t i = 1; !diff_mode && opts->sources[i]; i++)
		if (prebuilt || is_shared_object(opts->sources[i])) {
			r = hp_err(-EINVAL, "a prebuilt patch object must be given alone");
			goto out;
		}
	/* BIN before compiling: a build-id-less BIN is refused at once. */
	r = open_target(&a, &bin, &dbg, build_id);
	if (r < 0)
		goto out;

	snprintf(a.tmpdir, sizeof(a.tmpdir), "%s/hp-build-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(a.tmpdir)) {
		r = hp_err(-errno, "temporary directory: %s", strerror(errno));
		a.tmpdir[0] = '\0';
		goto out;
	}
	if (diff_mode) {
		struct bin_syms bs = { NULL, 0, { NULL, 0 }, false };

		snprintf(so_path, sizeof(so_path), "%s/patch.so", a.tmpdir);
		r = bin_syms_load(dbg.elf ? &dbg : &bin, &bs);
		if (r >= 0)
			r = diff_make(&a, &bin, dbg.elf ? &dbg : &bin, &bs, so_path, &dres);
		bin_syms_release(&bs);
		if (r < 0)
			goto out;
		/* The locals of BIN the patch replaces or uses, named with their file. */
		for (const char *const *p = opts->picks; p && *p && r >= 0; p++)
			if (!strv_has(&dres.picks, *p))
				r = strv_add(&dres.picks, *p);
		picks = calloc(dres.picks.n + 1, sizeof(*picks));
		if (r < 0 || !picks) {
			r = r < 0 ? r : -ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < dres.picks.n; i++)
			picks[i] = dres.picks.v[i];
		eff = *opts;
		eff.picks = picks;
		a.opts = &eff;
	} else if (prebuilt) {
		snprintf(so_path, sizeof(so_path), "%s", opts->sources[0]);
	} else {
		snprintf(so_path, sizeof(so_path), "%s/patch.so", a.tmpdir);
		r = compile(&a, so_path);
		if (r < 0)
			goto out;
	}
	r = analyse(&a, &bin, &dbg, so_path, m);
	if (r < 0)
		goto out;
	for (size_t i = 0; i + 1 < dres.whys.n && r >= 0; i += 2)
		r = hp_manifest_set_why(m, dres.whys.v[i], dres.whys.v[i + 1]);
	if (r < 0)
		goto out;

	r = hp_read_file(so_path, STORE_MEMBER_MAX_BYTES, &b_patch);
	if (r < 0) {
		r = hp_err_prefix(r, "%s: ", so_path);
		goto out;
	}
	store_sha256_hex(b_patch.data, b_patch.len, sha);
	r = hp_manifest_set_str(&m->build_id, build_id);
	if (r >= 0)
		r = hp_manifest_set_str(&m->patch_sha256, sha);
	if (r >= 0)
		r = hp_manifest_set_str(&m->created, created);
	if (r >= 0)
		r = hp_manifest_validate(m);
	if (r >= 0)
		r = hp_manifest_format(m, &b_manifest);
	if (r < 0)
		goto out;
	/* What the store and the engine will read back must be what we meant. */
	r = hp_manifest_parse(b_manifest.data, b_manifest.len, &check);
	if (r < 0) {
		r = hp_err_prefix(r, "manifest: ");
		goto out;
	}
	if (opts->sign_key) {
		r = store_sign_manifest(opts->sign_key, b_manifest.data, b_manifest.len, &b_sig);
		if (r < 0)
			goto out;
	}
	if (cancelled(&a)) {
		r = hp_err(-ECANCELED, "interrupted");
		goto out;
	}
	/* store_bundle_write writes a temporary file and renames it: nothing at OUT on failure. */
	r = store_bundle_write(opts->output, &b_manifest, &b_patch, &b_sig);
out:
	if (a.tmpdir[0])
		tmpdir_remove(a.tmpdir);
	strv_release(&a.ldcache);
	diff_result_release(&dres);
	free(picks);
	author_elf_close(&dbg);
	author_elf_close(&bin);
	hp_manifest_free(check);
	hp_buf_release(&b_manifest);
	hp_buf_release(&b_patch);
	hp_buf_release(&b_sig);
	if (r < 0 || !ret_manifest)
		hp_manifest_free(m);
	else
		*ret_manifest = m;
	return r < 0 ? r : 0;
}

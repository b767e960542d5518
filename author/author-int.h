/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * author-int.h: what the files of libhpauthor share. Owners: author.c (hp
 * build: options, compiling, BIN's symbols and libraries, the manifest),
 * diff.c (hp build --diff: the patch object from an upstream fix), dwarf.c
 * (what DWARF says: inlined copies, LTO, prototypes, struct layouts),
 * clobber.c (the IPA-RA register check).
 */
#ifndef HP_AUTHOR_INT_H
#define HP_AUTHOR_INT_H

#include <gelf.h>
#include <limits.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include "author.h"
#include "hp-elf.h"
#include "store.h"

/* ---- author.c: shared helpers -------------------------------------------- */

struct strv {
	char **v;
	size_t n;
};

struct author_elf {
	char *path;
	int fd;
	Elf *elf;
	GElf_Ehdr eh;
};
#define AUTHOR_ELF_INIT { .path = NULL, .fd = -1, .elf = NULL }

struct bin_sym {
	char *name;       /* without version */
	const char *file; /* STT_FILE a local belongs to, or NULL for a global */
	uint64_t value;
	uint64_t size;
	unsigned char type;
	unsigned char bind;
};

struct bin_syms {
	struct bin_sym *v;
	size_t n;
	struct strv files;
	bool full;        /* from .symtab (static symbols present), not .dynsym only */
};

struct author {
	const struct author_opts *opts;
	char tmpdir[PATH_MAX];
	struct strv ldcache;  /* ld.so.cache entries: soname, path, soname, path, ... */
	bool ldcache_read;
};

/* String vectors. */
void strv_release(struct strv *sv);
bool strv_has(const struct strv *sv, const char *s);
int strv_addn(struct strv *sv, const char *s, size_t len);
int strv_add(struct strv *sv, const char *s);
int cmp_str(const void *a, const void *b);
bool in_list(const char *const *list, const char *s);
/* Symbol names in .symtab may carry a version ("stdout@GLIBC_2.2.5"). */
size_t symname_len(const char *s);
const char *base_name(const char *path);

int author_elf_open(const char *path, struct author_elf *ret);
void author_elf_close(struct author_elf *ef);
Elf_Scn *find_section(Elf *elf, GElf_Word type);
size_t section_count(Elf_Scn *scn, Elf_Data *d, Elf_Type t);

/* BIN's defined symbols (.symtab, else .dynsym), sorted by name. */
int bin_syms_load(struct author_elf *ef, struct bin_syms *ret);
void bin_syms_release(struct bin_syms *bs);
/* Index of the first symbol called name, or bs->n. */
size_t bin_syms_first(const struct bin_syms *bs, const char *name);
/* Whether a local symbol's STT_FILE matches a --pick FILE. */
bool file_matches(const char *file, const char *pick);

void author_note(struct author *a, const char *fmt, ...) HP_PRINTF(2, 3);
bool cancelled(const struct author *a);
/* Run argv (in its process group) with stdout+stderr into out_path; *ret_status -1 on a signal. */
int run_cmd(struct author *a, char *const argv[], const char *out_path, int *ret_status);
/* The same in directory dir (NULL: the current one). */
int run_cmd_in(struct author *a, const char *dir, char *const argv[], const char *out_path,
	       int *ret_status);
/* An assembly file ending .eh_frame with its zero word (what crtend.o gives a normal link). */
int eh_frame_end(struct author *a, char *path, size_t cap);
/* The compiler output's first error line (modified in place), or NULL. */
const char *first_error_line(char *text);

/* ---- diff.c: hp build --diff ------------------------------------------------ */

struct diff_result {
	struct strv picks; /* "NAME@FILE" for BIN's locals the patch replaces or uses */
	struct strv whys;  /* pairs: function name, why it is replaced */
};
void diff_result_release(struct diff_result *r);
/*
 * Compile the affected translation units of opts->source_dir before and
 * after opts->diffs, check the rebuild against BIN, compare, and link the
 * patch object at so_path. syms is the ELF holding BIN's symbols (BIN or
 * its debug file).
 */
int diff_make(struct author *a, struct author_elf *bin, struct author_elf *syms,
	      const struct bin_syms *bs, const char *so_path, struct diff_result *ret);

/*
 * The readers of hp build --diff's inputs (diff.c), declared here for their
 * fuzzers (tests/fuzz/fuzz-diff*.c) as well.
 */
struct hunk {
	int old_start, old_len, new_start, new_len;
	int *pairs; /* old, new line of each context line */
	size_t n_pairs;
};

struct dfile {
	char *path;         /* relative to DIR, as patch -p1 takes it (the new side) */
	int *changed;       /* new-side lines added, or next to a removal */
	size_t n_changed;
	struct hunk *hunks;
	size_t n_hunks;
	bool is_tu_source;  /* a C or C++ source, as opposed to a header */
};

/* The files a unified diff touches and, per file, its hunks and changed
 * lines, added to *files (name: the diff's file, for messages); -EINVAL. */
int diff_parse(const char *name, const char *text, struct dfile **files, size_t *n_files);
/* Where the diffs put old line L of f, or 0 when they removed it. */
int diff_line_map(const struct dfile *f, int L);
void diff_files_release(struct dfile *v, size_t n);

struct ccmd {
	char *dir;        /* working directory */
	char *file;       /* the source, absolute and resolved */
	struct strv argv;
};

/* A "command" split as a shell would, nothing expanded (diff.c); ret empty. -EINVAL. */
int diff_split_command(const char *cmd, struct strv *ret);
/* compile_commands.json: one command per translation unit; -EINVAL. */
int diff_ccmds_load(const char *path, struct ccmd **ret, size_t *ret_n);
void diff_ccmds_release(struct ccmd *v, size_t n);

struct orel {
	uint64_t off;
	int64_t addend;
	uint32_t type;
	uint32_t sym;
	uint8_t tail; /* PC-relative in code: its instruction's bytes after the field */
};

struct osec {
	const char *name;
	GElf_Shdr sh;
	Elf_Data *data;
	struct orel *rels;
	size_t n_rels;
	size_t rela_idx;   /* its SHT_RELA section, or 0 */
	long func;         /* symbol of the function it holds, or -1 */
	long obj;          /* first data symbol in it, or -1 */
};

struct osym {
	const char *name;
	GElf_Sym st;
};

struct obj {
	struct author_elf ef;
	struct osec *secs;
	size_t n_secs;
	struct osym *syms;
	size_t n_syms;
	size_t symtab_idx;
};

/* A relocatable x86-64 object: its sections, relocations and symbols; -ENOEXEC. */
int diff_obj_load(const char *path, struct obj *ret);
void diff_obj_release(struct obj *o);
/*
 * Two functions (symbol indexes fa of A, fb of B) compared modulo
 * relocations: 1 same, 0 different; *ret_same_relocs: their relocations
 * designate the same things and their sizes match.
 */
int diff_func_cmp(const struct obj *A, size_t fa, const struct obj *B, size_t fb,
		  bool *ret_same_relocs);

/* ---- dwarf.c: what DWARF says ---------------------------------------------- */

/* One function as DWARF describes it. */
struct dw_func {
	char *name;
	char *file;      /* decl file, absolute as the compiler recorded it */
	int line;        /* decl line */
	char *proto;     /* "ret(arg,arg)" from type names, or NULL */
	bool external;
	bool concrete;   /* has code of its own (low_pc) */
	struct strv inlined; /* functions inlined into it (names, once each) */
};
struct dw_struct {
	char *name;
	char *layout;    /* "size:member@off:type,..." */
};
struct dw_info {
	struct dw_func *funcs;
	size_t n_funcs;
	struct dw_struct *structs;
	size_t n_structs;
	struct strv producers; /* DW_AT_producer of each unit */
	bool lto;        /* a unit is GNU GIMPLE (LTO) or "<artificial>" */
	bool has_dwarf;
};
/* Of an object file (relocatable: its relocations applied) or an executable. */
int dw_info_load(const char *path, struct dw_info *ret);
void dw_info_release(struct dw_info *di);
const struct dw_func *dw_func_find(const struct dw_info *di, const char *name, bool concrete);

/* ---- clobber.c: call-clobbered registers a function may write ------------ */

/* Bits: rax rcx rdx rsi rdi r8-r11 (0-8), xmm/ymm/zmm 0-31 (9-40), x87 and
 * MMX (41), AVX-512 masks (42). */
#define CLOBBER_ALL ((1ull << 43) - 1)

/* What the function at [addr, addr + size) of code may write, following its
 * direct calls into functions of syms (code itself when NULL); CLOBBER_ALL
 * when it calls out of the object, or without Capstone. */
int clobber_writes(Elf *code, Elf *syms, uint64_t addr, uint64_t size, uint64_t *ret_mask);
bool clobber_available(void);
/* A defined function's address and size in syms; -ENOENT. */
int clobber_find(Elf *syms, const char *name, uint64_t *ret_addr, uint64_t *ret_size);
/* Every compilation unit of elf was built with -fno-ipa-ra (its DWARF says). */
bool clobber_ipa_ra_off(Elf *elf);
/* "rcx, r8, xmm0-xmm3" */
void clobber_names(uint64_t mask, char *buf, size_t size);

#endif

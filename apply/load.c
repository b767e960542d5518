/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The patch object: an ELF64 x86_64 shared object (gcc or clang -fPIC
 * -shared), parsed from bytes with every offset and size checked, laid out
 * as an image at vaddr 0 and relocated here, in the engine, for the address
 * it will have in the target. No dynamic loader runs in the target.
 *
 * Symbols: a definition in the patch object binds to itself (the
 * replacement functions call each other); an undefined name binds to the
 * manifest's `sym` entries (the target's own functions and variables, static
 * ones included, at target bias + offset), then to the dynamic symbol tables
 * of the objects mapped in the target (the target first), read from memory;
 * an unresolved weak reference is 0. An ifunc there (libc's memcpy) is bound
 * to what its resolver chose in this process, when this process has the same
 * build of that object.
 */
#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "apply-int.h"

#define IMAGE_MAX (256u << 20)
#define PAGE HP_PAGE_SIZE

#ifndef DT_RELR
#define DT_RELRSZ 35
#define DT_RELR 36
#endif

void load_image_release(struct load_image *img)
{
	if (!img)
		return;
	free(img->bytes);
	img->bytes = NULL;
}

static bool in_file(size_t len, uint64_t off, uint64_t size)
{
	return off <= len && size <= len - off;
}

/*
 * ELF64 tables (headers, dynamic entries, symbols, relocations) are 8-byte
 * aligned in every object a linker makes; a hostile one may place them
 * anywhere, and reading them in place would be a misaligned access.
 */
static bool aligned8(uint64_t v)
{
	return (v & 7) == 0;
}

static int check_ehdr(const void *so, size_t len, const Elf64_Ehdr **ret)
{
	const Elf64_Ehdr *eh = so;

	if (len < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0)
		return hp_err(-ENOEXEC, "patch object: not an ELF file");
	if (eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_ident[EI_DATA] != ELFDATA2LSB ||
	    eh->e_machine != EM_X86_64)
		return hp_err(-ENOEXEC, "patch object: not an x86_64 ELF64 object");
	if (eh->e_type != ET_DYN)
		return hp_err(-ENOEXEC, "patch object: not a shared object (type %u)", eh->e_type);
	if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phnum == 0 || eh->e_phnum > 64 ||
	    !aligned8(eh->e_phoff) ||
	    !in_file(len, eh->e_phoff, (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr)))
		return hp_err(-ENOEXEC, "patch object: bad program headers");
	if (eh->e_shnum && (eh->e_shentsize != sizeof(Elf64_Shdr) || eh->e_shnum > 65000 ||
			    !aligned8(eh->e_shoff) ||
			    !in_file(len, eh->e_shoff, (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr))))
		return hp_err(-ENOEXEC, "patch object: bad section headers");
	*ret = eh;
	return 0;
}

static const Elf64_Phdr *phdrs(const void *so)
{
	const Elf64_Ehdr *eh = so;

	return (const Elf64_Phdr *)((const char *)so + eh->e_phoff);
}

int load_parse(const void *so, size_t len, struct load_image *ret)
{
	const Elf64_Ehdr *eh;
	const Elf64_Phdr *ph;
	struct load_image img = { 0 };
	uint64_t end = 0;
	int r;

	r = check_ehdr(so, len, &eh);
	if (r < 0)
		return r;
	ph = phdrs(so);
	img.max_align = PAGE;
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *p = &ph[i];

		if (p->p_type == PT_TLS)
			return hp_err(-ENOEXEC, "patch object: thread-local storage is not supported");
		if (p->p_type == PT_INTERP)
			return hp_err(-ENOEXEC, "patch object: an executable, not a shared object");
		if (p->p_type == PT_GNU_RELRO) {
			img.relro_start = p->p_vaddr & ~(uint64_t)(PAGE - 1);
			img.relro_end = (p->p_vaddr + p->p_memsz) & ~(uint64_t)(PAGE - 1);
		}
		if (p->p_type != PT_LOAD)
			continue;
		if (img.n_segs == sizeof(img.segs) / sizeof(img.segs[0]))
			return hp_err(-ENOEXEC, "patch object: too many segments");
		if (p->p_filesz > p->p_memsz || !in_file(len, p->p_offset, p->p_filesz) ||
		    p->p_memsz > IMAGE_MAX || p->p_vaddr > IMAGE_MAX ||
		    p->p_vaddr + p->p_memsz > IMAGE_MAX || p->p_vaddr < end)
			return hp_err(-ENOEXEC, "patch object: bad segment %u", i);
		if ((p->p_flags & PF_W) && (p->p_flags & PF_X))
			return hp_err(-ENOEXEC, "patch object: segment %u is writable and executable", i);
		if (p->p_align > img.max_align && p->p_align <= (1u << 21))
			img.max_align = p->p_align;
		img.segs[img.n_segs].vaddr = p->p_vaddr;
		img.segs[img.n_segs].memsz = p->p_memsz;
		img.segs[img.n_segs].prot = ((p->p_flags & PF_R) ? PROT_READ : 0) |
					    ((p->p_flags & PF_W) ? PROT_WRITE : 0) |
					    ((p->p_flags & PF_X) ? PROT_EXEC : 0);
		img.n_segs++;
		end = p->p_vaddr + p->p_memsz;
	}
	if (!img.n_segs)
		return hp_err(-ENOEXEC, "patch object: no loadable segment");
	if (img.segs[0].vaddr >= PAGE)
		return hp_err(-ENOEXEC, "patch object: first segment not at 0");
	img.size = (end + PAGE - 1) & ~(uint64_t)(PAGE - 1);
	img.bytes = calloc(1, img.size);
	if (!img.bytes)
		return -ENOMEM;
	for (unsigned i = 0; i < eh->e_phnum; i++)
		if (ph[i].p_type == PT_LOAD)
			memcpy(img.bytes + ph[i].p_vaddr, (const char *)so + ph[i].p_offset,
			       ph[i].p_filesz);
	*ret = img;
	return 0;
}

/* ---- symbols ------------------------------------------------------------ */

static const Elf64_Shdr *shdr(const void *so, unsigned i)
{
	const Elf64_Ehdr *eh = so;

	return (const Elf64_Shdr *)((const char *)so + eh->e_shoff) + i;
}

int load_func(const void *so, size_t len, const char *name, uint64_t *ret_vaddr,
	      uint64_t *ret_size)
{
	const Elf64_Ehdr *eh;
	int r;

	r = check_ehdr(so, len, &eh);
	if (r < 0)
		return r;
	/* .symtab first (static replacements), then .dynsym */
	for (int pass = 0; pass < 2; pass++) {
		for (unsigned i = 0; i < eh->e_shnum; i++) {
			const Elf64_Shdr *sh = shdr(so, i), *strs;
			const Elf64_Sym *syms;
			size_t n;

			if (sh->sh_type != (pass == 0 ? SHT_SYMTAB : SHT_DYNSYM))
				continue;
			if (sh->sh_link >= eh->e_shnum || !aligned8(sh->sh_offset) ||
			    !in_file(len, sh->sh_offset, sh->sh_size))
				return hp_err(-ENOEXEC, "patch object: bad symbol table");
			strs = shdr(so, sh->sh_link);
			if (!in_file(len, strs->sh_offset, strs->sh_size))
				return hp_err(-ENOEXEC, "patch object: bad string table");
			syms = (const Elf64_Sym *)((const char *)so + sh->sh_offset);
			n = sh->sh_size / sizeof(Elf64_Sym);
			for (size_t k = 0; k < n; k++) {
				const char *s;

				if (ELF64_ST_TYPE(syms[k].st_info) != STT_FUNC ||
				    syms[k].st_shndx == SHN_UNDEF || syms[k].st_name >= strs->sh_size)
					continue;
				s = (const char *)so + strs->sh_offset + syms[k].st_name;
				if (strnlen(s, strs->sh_size - syms[k].st_name) ==
					    strs->sh_size - syms[k].st_name || strcmp(s, name) != 0)
					continue;
				*ret_vaddr = syms[k].st_value;
				*ret_size = syms[k].st_size;
				return 0;
			}
		}
	}
	return hp_err(-ENOEXEC, "patch object does not define function %s", name);
}

struct dyn {
	const Elf64_Sym *syms;
	size_t n_syms;
	const char *strs;
	size_t strsz;
	uint64_t rela, relasz, jmprel, pltrelsz, relr, relrsz;
};

/* vaddr range in the image, as a pointer; NULL when outside. */
static void *img_ptr(const struct load_image *img, uint64_t vaddr, uint64_t size)
{
	if (vaddr > img->size || size > img->size - vaddr)
		return NULL;
	return img->bytes + vaddr;
}

static int read_dynamic(const void *so, size_t len, const struct load_image *img,
			struct dyn *ret)
{
	const Elf64_Ehdr *eh = so;
	const Elf64_Phdr *ph = phdrs(so);
	const Elf64_Dyn *d = NULL;
	size_t nd = 0;
	struct dyn dy = { 0 };
	uint64_t symtab = 0, strtab = 0, relent = sizeof(Elf64_Rela);

	for (unsigned i = 0; i < eh->e_phnum; i++)
		if (ph[i].p_type == PT_DYNAMIC) {
			if (!aligned8(ph[i].p_vaddr))
				return hp_err(-ENOEXEC, "patch object: misaligned dynamic section");
			d = img_ptr(img, ph[i].p_vaddr, ph[i].p_filesz);
			nd = ph[i].p_filesz / sizeof(*d);
		}
	if (!d)
		return hp_err(-ENOEXEC, "patch object: no dynamic section");
	for (size_t i = 0; i < nd && d[i].d_tag != DT_NULL; i++) {
		uint64_t v = d[i].d_un.d_val;

		switch (d[i].d_tag) {
		case DT_SYMTAB: symtab = v; break;
		case DT_STRTAB: strtab = v; break;
		case DT_STRSZ: dy.strsz = v; break;
		case DT_RELA: dy.rela = v; break;
		case DT_RELASZ: dy.relasz = v; break;
		case DT_RELAENT: relent = v; break;
		case DT_JMPREL: dy.jmprel = v; break;
		case DT_PLTRELSZ: dy.pltrelsz = v; break;
		case DT_RELR: dy.relr = v; break;
		case DT_RELRSZ: dy.relrsz = v; break;
		case DT_PLTREL:
			if (v != DT_RELA)
				return hp_err(-ENOEXEC, "patch object: REL relocations unsupported");
			break;
		case DT_REL:
			return hp_err(-ENOEXEC, "patch object: REL relocations unsupported");
		case DT_TEXTREL:
			/*
			 * Relocations in code are applied here, to this process's
			 * copy of the image, before it is mapped with its final
			 * protections: the code is never writable in the target.
			 * hp build --diff makes them (PC-relative references from
			 * code built with -fPIE to the target's own data).
			 */
			break;
		default: break;
		}
	}
	if (relent != sizeof(Elf64_Rela))
		return hp_err(-ENOEXEC, "patch object: bad relocation entry size");
	dy.strs = img_ptr(img, strtab, dy.strsz);
	if (!symtab || !dy.strs)
		return hp_err(-ENOEXEC, "patch object: bad dynamic symbol table");
	/* the number of dynamic symbols: from the section headers when present */
	for (unsigned i = 0; i < eh->e_shnum; i++) {
		const Elf64_Shdr *sh = shdr(so, i);

		if (sh->sh_type == SHT_DYNSYM)
			dy.n_syms = sh->sh_size / sizeof(Elf64_Sym);
	}
	if (!dy.n_syms && strtab > symtab)
		dy.n_syms = (strtab - symtab) / sizeof(Elf64_Sym);
	dy.syms = aligned8(symtab) && dy.n_syms <= img->size / sizeof(Elf64_Sym) ?
			  img_ptr(img, symtab, dy.n_syms * sizeof(Elf64_Sym)) : NULL;
	if (!dy.syms)
		return hp_err(-ENOEXEC, "patch object: bad dynamic symbol table");
	(void)len;
	*ret = dy;
	return 0;
}

static const char *sym_name(const struct dyn *dy, const Elf64_Sym *s)
{
	if (s->st_name >= dy->strsz ||
	    strnlen(dy->strs + s->st_name, dy->strsz - s->st_name) == dy->strsz - s->st_name)
		return NULL;
	return dy->strs + s->st_name;
}

/*
 * This process's own copy of the object built as the target's (the same
 * build-id), found by dl_iterate_phdr: its file name, load bias and the
 * extent of its loaded segments.
 */
struct same_build {
	const char *build_id;
	char name[PATH_MAX];
	uint64_t bias, lo, hi;
	bool found;
};

static int find_same_build(struct dl_phdr_info *info, size_t size, void *data)
{
	struct same_build *s = data;
	char bid[HP_BUILD_ID_HEX_SIZE];
	bool same = false;

	(void)size;
	if (!info->dlpi_name || !info->dlpi_name[0])
		return 0; /* the program itself, or the vDSO: not a library of the target's */
	for (int i = 0; i < info->dlpi_phnum && !same; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		const uint8_t *p = (const uint8_t *)(uintptr_t)(info->dlpi_addr + ph->p_vaddr);

		same = ph->p_type == PT_NOTE && hp_elf_notes_build_id(p, ph->p_filesz, bid) == 0 &&
		       strcmp(bid, s->build_id) == 0;
	}
	if (!same)
		return 0;
	snprintf(s->name, sizeof(s->name), "%s", info->dlpi_name);
	s->bias = info->dlpi_addr;
	s->lo = UINT64_MAX;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type != PT_LOAD)
			continue;
		if (info->dlpi_addr + ph->p_vaddr < s->lo)
			s->lo = info->dlpi_addr + ph->p_vaddr;
		if (info->dlpi_addr + ph->p_vaddr + ph->p_memsz > s->hi)
			s->hi = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
	}
	s->found = true;
	return 1;
}

/*
 * An ifunc (memcpy, strlen in libc): its value is a resolver we cannot run
 * in the target. When this process has the very same object loaded (same
 * build-id: the same libc on the same CPU), its resolved address here,
 * moved by the difference of the biases, is the one the target's own
 * loader chose. The name is asked of that object, not of the whole
 * process, where another object loaded first may define it too (a
 * preloaded library's strchr, AddressSanitizer's interceptors); what it
 * answers must lie in the object itself, not in one it depends on.
 */
static int resolve_ifunc(const struct proc_object *o, const char *name, uint64_t *ret)
{
	struct same_build s = { .build_id = o->build_id };
	uint64_t here = 0;
	void *h;

	dl_iterate_phdr(find_same_build, &s);
	h = s.found ? dlopen(s.name, RTLD_LAZY | RTLD_NOLOAD) : NULL;
	if (h) {
		here = (uint64_t)(uintptr_t)dlsym(h, name);
		dlclose(h);
	}
	if (!here || here < s.lo || here >= s.hi)
		return hp_err(-ENOEXEC, "symbol %s is an ifunc in %s: resolvable only when the engine "
			      "runs with the same build of it", name, o->path);
	*ret = o->bias + (here - s.bias);
	return 0;
}

static int resolve(const struct dyn *dy, uint32_t idx, uint64_t base, const struct load_ctx *ctx,
		   uint64_t *ret)
{
	const Elf64_Sym *s;
	const char *name;
	const struct hp_manifest_sym *found = NULL;

	if (idx == 0) {
		*ret = 0;
		return 0;
	}
	if (idx >= dy->n_syms)
		return hp_err(-ENOEXEC, "patch object: relocation names symbol %u of %zu", idx,
			      dy->n_syms);
	s = &dy->syms[idx];
	name = sym_name(dy, s);
	if (!name)
		return hp_err(-ENOEXEC, "patch object: bad symbol name");
	if (ELF64_ST_TYPE(s->st_info) == STT_TLS)
		return hp_err(-ENOEXEC, "patch object: thread-local %s is not supported", name);
	if (ELF64_ST_TYPE(s->st_info) == STT_GNU_IFUNC)
		return hp_err(-ENOEXEC, "patch object: ifunc %s is not supported", name);
	if (s->st_shndx != SHN_UNDEF) {
		*ret = base + s->st_value;
		return 0;
	}
	for (size_t i = 0; i < ctx->manifest->n_syms; i++) {
		const struct hp_manifest_sym *ms = &ctx->manifest->syms[i];

		if (strcmp(ms->name, name) != 0)
			continue;
		if (found && found->offset != ms->offset)
			return hp_err(-ENOEXEC, "symbol %s is ambiguous in the manifest", name);
		found = ms;
	}
	if (found) {
		*ret = ctx->target->bias + found->offset;
		return 0;
	}
	/* the target first, then every object in map order */
	for (size_t pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < ctx->objects->n; i++) {
			const struct proc_object *o = &ctx->objects->v[i];
			unsigned char type;
			uint64_t addr;

			if ((pass == 0) != (o == ctx->target))
				continue;
			if (strcmp(o->path, "[vdso]") == 0)
				continue;
			if (proc_object_dynsym(ctx->mem_fd, o, name, &addr, &type, NULL) < 0)
				continue;
			if (type == STT_GNU_IFUNC) {
				int r = resolve_ifunc(o, name, &addr);

				if (r < 0)
					return r;
			}
			if (type == STT_TLS)
				return hp_err(-ENOEXEC, "symbol %s is thread-local in %s: not supported",
					      name, o->path);
			*ret = addr;
			return 0;
		}
	}
	if (ELF64_ST_BIND(s->st_info) == STB_WEAK) {
		*ret = 0;
		return 0;
	}
	return hp_err(-ENOEXEC, "unresolved symbol %s", name);
}

static int apply_relas(struct load_image *img, const struct dyn *dy, uint64_t at, uint64_t size,
		       uint64_t base, const struct load_ctx *ctx)
{
	const Elf64_Rela *rel;
	size_t n = size / sizeof(*rel);

	if (!size)
		return 0;
	rel = aligned8(at) ? img_ptr(img, at, size) : NULL;
	if (!rel)
		return hp_err(-ENOEXEC, "patch object: relocation table outside the image or misaligned");
	for (size_t i = 0; i < n; i++) {
		uint32_t type = ELF64_R_TYPE(rel[i].r_info);
		uint64_t S = 0, A = (uint64_t)rel[i].r_addend, P = base + rel[i].r_offset, v;
		void *where;
		int r;

		if (type == R_X86_64_NONE)
			continue;
		where = img_ptr(img, rel[i].r_offset, type == R_X86_64_PC32 ||
						      type == R_X86_64_32 || type == R_X86_64_32S ? 4 : 8);
		if (!where)
			return hp_err(-ENOEXEC, "patch object: relocation %zu outside the image", i);
		if (type != R_X86_64_RELATIVE) {
			r = resolve(dy, ELF64_R_SYM(rel[i].r_info), base, ctx, &S);
			if (r < 0)
				return r;
		}
		switch (type) {
		case R_X86_64_RELATIVE:
			v = base + A;
			memcpy(where, &v, 8);
			break;
		case R_X86_64_64:
			v = S + A;
			memcpy(where, &v, 8);
			break;
		case R_X86_64_GLOB_DAT:
		case R_X86_64_JUMP_SLOT:
			memcpy(where, &S, 8);
			break;
		case R_X86_64_PC32: {
			int64_t d = (int64_t)(S + A - P);
			int32_t d32 = (int32_t)d;

			if (d32 != d)
				return hp_err(-ENOEXEC, "patch object: PC32 relocation out of range");
			memcpy(where, &d32, 4);
			break;
		}
		case R_X86_64_IRELATIVE:
			return hp_err(-ENOEXEC, "patch object: ifunc relocations are not supported");
		case R_X86_64_DTPMOD64:
		case R_X86_64_DTPOFF64:
		case R_X86_64_TPOFF64:
			return hp_err(-ENOEXEC, "patch object: thread-local storage is not supported");
		default:
			return hp_err(-ENOEXEC, "patch object: relocation type %u not supported", type);
		}
	}
	return 0;
}

static int apply_relr(struct load_image *img, const struct dyn *dy, uint64_t base)
{
	const uint64_t *e;
	size_t n = dy->relrsz / 8;
	uint64_t where = 0;

	if (!dy->relrsz)
		return 0;
	e = aligned8(dy->relr) ? img_ptr(img, dy->relr, dy->relrsz) : NULL;
	if (!e)
		return hp_err(-ENOEXEC, "patch object: RELR table outside the image or misaligned");
	for (size_t i = 0; i < n; i++) {
		if (!(e[i] & 1)) {
			uint64_t *p = aligned8(e[i]) ? img_ptr(img, e[i], 8) : NULL;

			if (!p)
				return hp_err(-ENOEXEC, "patch object: RELR entry outside the image or misaligned");
			*p += base;
			where = e[i] + 8;
		} else {
			for (unsigned b = 0; b < 63; b++) {
				if (!((e[i] >> (b + 1)) & 1))
					continue;
				uint64_t *p = img_ptr(img, where + 8 * (uint64_t)b, 8);

				if (!p)
					return hp_err(-ENOEXEC, "patch object: RELR entry outside the image");
				*p += base;
			}
			where += 63 * 8;
		}
	}
	return 0;
}

int load_relocate(struct load_image *img, const void *so, size_t len, uint64_t base,
		  const struct load_ctx *ctx)
{
	struct dyn dy;
	int r;

	r = read_dynamic(so, len, img, &dy);
	if (r < 0)
		return r;
	r = apply_relr(img, &dy, base);
	if (r < 0)
		return r;
	r = apply_relas(img, &dy, dy.rela, dy.relasz, base, ctx);
	if (r < 0)
		return r;
	return apply_relas(img, &dy, dy.jmprel, dy.pltrelsz, base, ctx);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Which call-clobbered registers a function may write, for hp build's
 * IPA-RA check (docs/authoring.md). gcc's interprocedural register
 * allocation (-fipa-ra, on at -O2) lets a caller keep a value in a
 * call-clobbered register across a call to a function of the same unit
 * that it knows never writes that register. A replacement that writes it
 * breaks such a caller. The kernel's livepatch builds use -fno-ipa-ra
 * (-flive-patching=inline-clone); we cannot rebuild targets, so hp build
 * compares what the original writes with what the replacement may write.
 *
 * Instructions are decoded with Capstone (cs_regs_access gives explicit and
 * implicit writes). Direct calls and tail jumps into another function of the
 * same object are followed; a call anywhere else (the PLT, an indirect call
 * or jump, another object) may write every call-clobbered register. Saving
 * and restoring a register counts as writing it: the answer errs towards
 * "may write".
 */
#include <errno.h>
#include <gelf.h>
#include <stdlib.h>
#include <string.h>

#include "author-int.h"

#ifdef HAVE_CAPSTONE
#include <capstone/capstone.h>

/* Deepest chain of calls followed; deeper counts as a call outside. */
#define CLOBBER_DEPTH 16
/* Largest function decoded, bytes; larger counts as writing everything. */
#define CLOBBER_FUNC_MAX (1u << 20)

static const char *const gpr_names[] = { "rax", "rcx", "rdx", "rsi", "rdi",
					 "r8",  "r9",  "r10", "r11" };

struct func_ent {
	uint64_t start, size;
};

struct clobber_ctx {
	Elf *code;            /* the object whose bytes are decoded */
	struct func_ent *funcs;
	size_t n_funcs;
	csh cs;
};

/* Bit of a register written, 0 if callee-saved or not a register we track. */
static uint64_t reg_bit(x86_reg r)
{
	switch (r) {
	case X86_REG_AL: case X86_REG_AH: case X86_REG_AX: case X86_REG_EAX: case X86_REG_RAX:
		return 1ull << 0;
	case X86_REG_CL: case X86_REG_CH: case X86_REG_CX: case X86_REG_ECX: case X86_REG_RCX:
		return 1ull << 1;
	case X86_REG_DL: case X86_REG_DH: case X86_REG_DX: case X86_REG_EDX: case X86_REG_RDX:
		return 1ull << 2;
	case X86_REG_SIL: case X86_REG_SI: case X86_REG_ESI: case X86_REG_RSI:
		return 1ull << 3;
	case X86_REG_DIL: case X86_REG_DI: case X86_REG_EDI: case X86_REG_RDI:
		return 1ull << 4;
	case X86_REG_R8B: case X86_REG_R8W: case X86_REG_R8D: case X86_REG_R8:
		return 1ull << 5;
	case X86_REG_R9B: case X86_REG_R9W: case X86_REG_R9D: case X86_REG_R9:
		return 1ull << 6;
	case X86_REG_R10B: case X86_REG_R10W: case X86_REG_R10D: case X86_REG_R10:
		return 1ull << 7;
	case X86_REG_R11B: case X86_REG_R11W: case X86_REG_R11D: case X86_REG_R11:
		return 1ull << 8;
	default:
		break;
	}
	if (r >= X86_REG_XMM0 && r <= X86_REG_XMM31)
		return 1ull << (9 + (r - X86_REG_XMM0));
	if (r >= X86_REG_YMM0 && r <= X86_REG_YMM31)
		return 1ull << (9 + (r - X86_REG_YMM0));
	if (r >= X86_REG_ZMM0 && r <= X86_REG_ZMM31)
		return 1ull << (9 + (r - X86_REG_ZMM0));
	if ((r >= X86_REG_ST0 && r <= X86_REG_ST7) || (r >= X86_REG_MM0 && r <= X86_REG_MM7) ||
	    r == X86_REG_FPSW)
		return 1ull << 41;
	if (r >= X86_REG_K0 && r <= X86_REG_K7)
		return 1ull << 42;
	return 0;
}

/* The bytes at [addr, addr + len) of an executable section of elf. */
static const uint8_t *code_at(Elf *elf, uint64_t addr, uint64_t len)
{
	Elf_Scn *scn = NULL;

	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_PROGBITS ||
		    !(sh.sh_flags & SHF_EXECINSTR))
			continue;
		if (addr < sh.sh_addr || addr - sh.sh_addr > sh.sh_size ||
		    len > sh.sh_size - (addr - sh.sh_addr))
			continue;
		d = elf_getdata(scn, NULL);
		if (!d || !d->d_buf || d->d_size < sh.sh_size)
			return NULL;
		return (const uint8_t *)d->d_buf + (addr - sh.sh_addr);
	}
	return NULL;
}

static const struct func_ent *func_at(const struct clobber_ctx *c, uint64_t addr)
{
	for (size_t i = 0; i < c->n_funcs; i++)
		if (c->funcs[i].start == addr)
			return &c->funcs[i];
	return NULL;
}

static uint64_t func_writes(struct clobber_ctx *c, uint64_t start, uint64_t size, unsigned depth)
{
	const uint8_t *code = size <= CLOBBER_FUNC_MAX ? code_at(c->code, start, size) : NULL;
	cs_insn *insn;
	uint64_t mask = 0, addr = start;
	size_t len = size;

	if (!code || depth > CLOBBER_DEPTH)
		return CLOBBER_ALL;
	insn = cs_malloc(c->cs);
	if (!insn)
		return CLOBBER_ALL;
	while (len && mask != CLOBBER_ALL) {
		cs_regs rd, wr;
		uint8_t n_rd = 0, n_wr = 0;
		bool is_call, is_jump;

		if (!cs_disasm_iter(c->cs, &code, &len, &addr, insn)) {
			mask = CLOBBER_ALL; /* not understood: assume the worst */
			break;
		}
		is_call = cs_insn_group(c->cs, insn, X86_GRP_CALL);
		is_jump = cs_insn_group(c->cs, insn, X86_GRP_JUMP);
		if (is_call || is_jump) {
			const cs_x86 *x = &insn->detail->x86;
			uint64_t to;
			const struct func_ent *f;

			if (x->op_count != 1 || x->operands[0].type != X86_OP_IMM) {
				mask = CLOBBER_ALL; /* indirect: anything */
				break;
			}
			to = (uint64_t)x->operands[0].imm;
			if (is_jump && to >= start && to < start + size)
				continue; /* a branch inside the function */
			f = func_at(c, to);
			if (!f || (to == start && depth)) {
				mask = CLOBBER_ALL; /* the PLT, another object, recursion */
				break;
			}
			if (f->start != start)
				mask |= func_writes(c, f->start, f->size, depth + 1);
			continue;
		}
		if (cs_regs_access(c->cs, insn, rd, &n_rd, wr, &n_wr) != CS_ERR_OK) {
			mask = CLOBBER_ALL;
			break;
		}
		for (uint8_t i = 0; i < n_wr; i++)
			mask |= reg_bit((x86_reg)wr[i]);
	}
	cs_free(insn, 1);
	return mask;
}

/*
 * Call cb for each defined function symbol with a size in syms (a .symtab
 * or .dynsym); a non-zero return of cb stops the walk and is returned.
 */
static int func_syms_foreach(Elf *syms, int (*cb)(void *ctx, const GElf_Sym *s, const char *name),
			     void *ctx)
{
	Elf_Scn *scn = NULL;

	while ((scn = elf_nextscn(syms, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;
		size_t n;

		if (!gelf_getshdr(scn, &sh) || (sh.sh_type != SHT_SYMTAB && sh.sh_type != SHT_DYNSYM) ||
		    !sh.sh_entsize || !(d = elf_getdata(scn, NULL)))
			continue;
		n = d->d_size / sh.sh_entsize;
		for (size_t i = 0; i < n; i++) {
			GElf_Sym s;
			int r;

			if (!gelf_getsym(d, (int)i, &s) || GELF_ST_TYPE(s.st_info) != STT_FUNC ||
			    s.st_shndx == SHN_UNDEF || !s.st_size)
				continue;
			r = cb(ctx, &s, elf_strptr(syms, sh.sh_link, s.st_name));
			if (r)
				return r;
		}
	}
	return 0;
}

static int funcs_add(void *ctx, const GElf_Sym *s, const char *name)
{
	struct clobber_ctx *c = ctx;
	struct func_ent *v;

	if (!s->st_value)
		return 0;
	v = realloc(c->funcs, (c->n_funcs + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	c->funcs = v;
	c->funcs[c->n_funcs++] = (struct func_ent){ s->st_value, s->st_size };
	return 0;
}

/* Functions of syms (a .symtab or .dynsym) with a size. */
static int funcs_load(Elf *syms, struct clobber_ctx *c)
{
	return func_syms_foreach(syms, funcs_add, c);
}

int clobber_writes(Elf *code, Elf *syms, uint64_t addr, uint64_t size, uint64_t *ret_mask)
{
	struct clobber_ctx c = { .code = code };
	int r;

	if (cs_open(CS_ARCH_X86, CS_MODE_64, &c.cs) != CS_ERR_OK)
		return hp_err(-ENOMEM, "capstone: cannot open the x86-64 decoder");
	cs_option(c.cs, CS_OPT_DETAIL, CS_OPT_ON);
	r = funcs_load(syms ? syms : code, &c);
	if (r == 0)
		*ret_mask = func_writes(&c, addr, size, 0);
	cs_close(&c.cs);
	free(c.funcs);
	return r;
}

bool clobber_available(void)
{
	return true;
}

#else

int clobber_writes(Elf *code, Elf *syms, uint64_t addr, uint64_t size, uint64_t *ret_mask)
{
	(void)code, (void)syms, (void)addr, (void)size;
	*ret_mask = CLOBBER_ALL;
	return 0;
}

bool clobber_available(void)
{
	return false;
}

static const char *const gpr_names[] = { "rax", "rcx", "rdx", "rsi", "rdi",
					 "r8",  "r9",  "r10", "r11" };
#endif

void clobber_names(uint64_t mask, char *buf, size_t size)
{
	size_t len = 0;
	int vec_lo = -1;

	buf[0] = '\0';
	for (int i = 0; i < 43; i++) {
		const char *sep = len ? ", " : "";
		int w = 0;

		if (!(mask & (1ull << i)))
			continue;
		if (i < 9)
			w = snprintf(buf + len, size - len, "%s%s", sep, gpr_names[i]);
		else if (i < 41) {
			/* runs of vector registers: xmm0-xmm7 */
			if (vec_lo < 0)
				vec_lo = i;
			if (i + 1 < 41 && (mask & (1ull << (i + 1))))
				continue;
			if (vec_lo == i)
				w = snprintf(buf + len, size - len, "%sxmm%d", sep, i - 9);
			else
				w = snprintf(buf + len, size - len, "%sxmm%d-xmm%d", sep, vec_lo - 9,
					     i - 9);
			vec_lo = -1;
		} else
			w = snprintf(buf + len, size - len, "%s%s", sep, i == 41 ? "x87" : "k0-k7");
		if (w < 0 || (size_t)w >= size - len)
			break;
		len += (size_t)w;
	}
}

struct find_ctx {
	const char *name;
	uint64_t addr, size;
};

static int find_one(void *ctx, const GElf_Sym *s, const char *name)
{
	struct find_ctx *f = ctx;

	if (!name || strcmp(name, f->name) != 0)
		return 0;
	f->addr = s->st_value;
	f->size = s->st_size;
	return 1;
}

int clobber_find(Elf *syms, const char *name, uint64_t *ret_addr, uint64_t *ret_size)
{
	struct find_ctx f = { name, 0, 0 };

	if (func_syms_foreach(syms, find_one, &f) != 1)
		return -ENOENT;
	*ret_addr = f.addr;
	*ret_size = f.size;
	return 0;
}

/*
 * Whether every compilation unit of elf says (DW_AT_producer, recorded by
 * gcc's default -grecord-gcc-switches) it was built without IPA-RA. The
 * producer strings are looked for as text in .debug_str and .debug_info.
 */
bool clobber_ipa_ra_off(Elf *elf)
{
	Elf_Scn *scn = NULL;
	size_t shstrndx, n_prod = 0, n_off = 0;

	if (elf_getshdrstrndx(elf, &shstrndx) != 0)
		return false;
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;
		const char *name, *p, *end;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_PROGBITS ||
		    !(name = elf_strptr(elf, shstrndx, sh.sh_name)) ||
		    (strcmp(name, ".debug_str") != 0 && strcmp(name, ".debug_info") != 0))
			continue;
		if ((sh.sh_flags & SHF_COMPRESSED) && elf_compress(scn, 0, 0) < 0)
			continue;
		d = elf_getdata(scn, NULL);
		if (!d || !d->d_buf)
			continue;
		p = d->d_buf;
		end = p + d->d_size;
		while (p < end) {
			const char *z = memchr(p, '\0', (size_t)(end - p));
			size_t len = z ? (size_t)(z - p) : (size_t)(end - p);

			if (len > 6 && (strncmp(p, "GNU C", 5) == 0 || strncmp(p, "GNU GIMPLE", 10) == 0)) {
				n_prod++;
				if (memmem(p, len, "-fno-ipa-ra", 11) ||
				    memmem(p, len, "-flive-patching", 15))
					n_off++;
			}
			p += len + 1;
		}
	}
	return n_prod && n_off == n_prod;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * x86_64: the jump, the registers, system-call injection and the restart
 * fix-up. Everything that knows the instruction set or the register block
 * lives here.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <elf.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <sys/user.h>

#include "apply-int.h"

#if !defined(__x86_64__)
#error "arch-x86_64.c built for another architecture"
#endif

_Static_assert(sizeof(struct user_regs_struct) <= sizeof(((struct ptr_thread *)0)->regs),
	       "register block fits");

const uint8_t arch_syscall_insn[2] = { 0x0f, 0x05 };

#define JMP_REL32 0xe9
#define EINTR_RAX ((uint64_t)-EINTR)
/* The kernel's restart code "re-issue unless a handler runs" (not in uapi). */
#define ERESTARTNOHAND_CODE 514

/*
 * How far a 5-byte `jmp rel32` may land from its entry: rel32 is a signed
 * 32-bit displacement from the next instruction, so at most 2 GiB - 1
 * (0x7fffffff) either way; the engine stays 64 KiB short of that, a margin.
 */
#define JMP_REL32_REACH 0x7fff0000ull

uint64_t arch_jump_reach(void)
{
	return JMP_REL32_REACH;
}

int arch_jump_encode(uint64_t from, uint64_t to, uint8_t out[ARCH_JUMP_LEN])
{
	int64_t rel = (int64_t)(to - (from + ARCH_JUMP_LEN));
	int32_t rel32 = (int32_t)rel;

	if ((int64_t)rel32 != rel)
		return -ERANGE;
	out[0] = JMP_REL32;
	memcpy(out + 1, &rel32, 4);
	return 0;
}

bool arch_jump_decode(uint64_t from, const uint8_t in[ARCH_JUMP_LEN], uint64_t *ret_to)
{
	int32_t rel32;

	if (in[0] != JMP_REL32)
		return false;
	memcpy(&rel32, in + 1, 4);
	*ret_to = from + ARCH_JUMP_LEN + (uint64_t)(int64_t)rel32;
	return true;
}

static struct user_regs_struct *R(uint64_t *regs)
{
	return (struct user_regs_struct *)regs;
}

static const struct user_regs_struct *CR(const uint64_t *regs)
{
	return (const struct user_regs_struct *)regs;
}

int arch_getregs(struct ptr_thread *t)
{
	if (ptrace(PTRACE_GETREGS, t->tid, NULL, t->regs) < 0)
		return -errno;
	t->pc = R(t->regs)->rip;
	t->sp = R(t->regs)->rsp;
	return 0;
}

int arch_setregs(const struct ptr_thread *t, const uint64_t *regs)
{
	if (ptrace(PTRACE_SETREGS, t->tid, NULL, regs) < 0)
		return -errno;
	return 0;
}

void arch_syscall_regs(const uint64_t *saved, uint64_t *out, uint64_t insn, long nr,
		       const uint64_t args[6])
{
	struct user_regs_struct *r = R(out);

	memcpy(out, saved, sizeof(struct user_regs_struct));
	/*
	 * orig_rax = -1: the thread may be stopped inside a system call; the
	 * kernel's restart logic must not rewind our injected one.
	 */
	r->orig_rax = (uint64_t)-1;
	r->rax = (uint64_t)nr;
	r->rdi = args[0];
	r->rsi = args[1];
	r->rdx = args[2];
	r->r10 = args[3];
	r->r8 = args[4];
	r->r9 = args[5];
	r->rip = insn;
	/* rsp stays: the trampoline does not restore it */
}

/* syscall; mov $base, %rdi (the undo's first instruction) */
static const uint8_t tramp_start[] = { 0x0f, 0x05, 0x48, 0xbf };

/* The first bytes of a call trampoline (arch_call_tramp_build): a tag, never executed. */
static const uint8_t call_tag[8] = { 'H', 'P', 'C', 'A', 'L', 'L', '0', '1' };

bool arch_tramp_is(const uint8_t *p, size_t len)
{
	return (len >= sizeof(tramp_start) && memcmp(p, tramp_start, sizeof(tramp_start)) == 0) ||
	       (len >= sizeof(call_tag) && memcmp(p, call_tag, sizeof(call_tag)) == 0);
}

static uint8_t *mov_imm64(uint8_t *p, uint8_t rex, uint8_t op, uint64_t v)
{
	*p++ = rex;
	*p++ = op;
	memcpy(p, &v, 8);
	return p + 8;
}

/*
 * Give the thread of saved its registers back and jump where it resumes,
 * doing the kernel's restart logic by hand (docs/engine.md, the restart table): the
 * caller-saved registers a system call or a function call may clobber,
 * then a jump through the word that follows.
 */
static uint8_t *emit_resume(uint8_t *p, const struct user_regs_struct *r, bool syscall_before_pc,
			    bool with_rsp)
{
	uint64_t rax = r->rax, rip = r->rip;

	if ((int64_t)r->orig_rax >= 0) {
		switch ((int64_t)r->rax) {
		case -512: /* ERESTARTSYS */
		case -513: /* ERESTARTNOINTR */
		case -ERESTARTNOHAND_CODE:
			rax = r->orig_rax;
			rip -= 2;
			break;
		case -516: /* ERESTART_RESTARTBLOCK */
			rax = SYS_restart_syscall;
			rip -= 2;
			break;
		case -EINTR:
			if (syscall_before_pc) {
				rax = r->orig_rax;
				rip -= 2;
			}
			break;
		default:
			break;
		}
	}
	/* mov $imm64, %reg (flags untouched) */
	p = mov_imm64(p, 0x48, 0xbf, r->rdi);
	p = mov_imm64(p, 0x48, 0xbe, r->rsi);
	p = mov_imm64(p, 0x48, 0xba, r->rdx);
	p = mov_imm64(p, 0x49, 0xba, r->r10);
	p = mov_imm64(p, 0x49, 0xb8, r->r8);
	p = mov_imm64(p, 0x49, 0xb9, r->r9);
	p = mov_imm64(p, 0x48, 0xb9, r->rcx);
	p = mov_imm64(p, 0x49, 0xbb, r->r11);
	p = mov_imm64(p, 0x48, 0xb8, rax);
	if (with_rsp)
		p = mov_imm64(p, 0x48, 0xbc, r->rsp);
	/* jmp *0(%rip); .quad rip */
	*p++ = 0xff;
	*p++ = 0x25;
	memset(p, 0, 4);
	p += 4;
	memcpy(p, &rip, 8);
	p += 8;
	return p;
}

size_t arch_tramp_build(const uint64_t *saved, bool syscall_before_pc,
			const struct ptr_undo *undo, uint8_t out[ARCH_TRAMP_MAX])
{
	uint8_t *p = out;

	memcpy(p, arch_syscall_insn, 2);
	p += 2;
	/*
	 * The undo: if the call returned undo->base (our mmap), or undo->on,
	 * munmap(base, size); a size of 0 makes it a harmless EINVAL.
	 *   mov $base, %rdi; mov $size, %rsi; cmp %rdi, %rax; je 1f
	 *   mov $on, %rax; test %rax, %rax; jz 2f
	 *   1: mov $11, %eax; syscall
	 *   2:
	 */
	p = mov_imm64(p, 0x48, 0xbf, undo ? undo->base : 0);
	p = mov_imm64(p, 0x48, 0xbe, undo ? undo->size : 0);
	*p++ = 0x48; *p++ = 0x39; *p++ = 0xf8;
	*p++ = 0x74; *p++ = 15;
	p = mov_imm64(p, 0x48, 0xb8, undo && undo->on ? 1 : 0);
	*p++ = 0x48; *p++ = 0x85; *p++ = 0xc0;
	*p++ = 0x74; *p++ = 7;
	*p++ = 0xb8; *p++ = SYS_munmap; *p++ = 0; *p++ = 0; *p++ = 0;
	memcpy(p, arch_syscall_insn, 2);
	p += 2;
	/* the syscall restored the flags from r11 */
	p = emit_resume(p, CR(saved), syscall_before_pc, false);
	return (size_t)(p - out);
}

size_t arch_call_tramp_build(const uint64_t *saved, bool syscall_before_pc, uint64_t tramp,
			     uint64_t done_addr, uint64_t done_val, uint8_t out[ARCH_TRAMP_MAX],
			     uint64_t *ret_return, uint64_t *ret_stop_pc)
{
	const struct user_regs_struct *r = CR(saved);
	uint32_t flags = (uint32_t)r->eflags;
	uint8_t *p = out;

	memcpy(p, call_tag, sizeof(call_tag));
	p += sizeof(call_tag);
	*ret_return = tramp + (uint64_t)(p - out);
	/* movabs $done_addr, %rdi; movq $done_val, (%rdi) */
	p = mov_imm64(p, 0x48, 0xbf, done_addr);
	*p++ = 0x48; *p++ = 0xc7; *p++ = 0x07;
	memcpy(p, &(uint32_t){ (uint32_t)done_val }, 4);
	p += 4;
	/* mov $SYS_getpid, %eax; syscall: the stop the engine waits for */
	*p++ = 0xb8;
	memcpy(p, &(uint32_t){ SYS_getpid }, 4);
	p += 4;
	memcpy(p, arch_syscall_insn, 2);
	p += 2;
	*ret_stop_pc = tramp + (uint64_t)(p - out);
	/* push $flags; popfq (still on the call's own stack), then the rest */
	*p++ = 0x68;
	memcpy(p, &flags, 4);
	p += 4;
	*p++ = 0x9d;
	p = emit_resume(p, r, syscall_before_pc, true);
	return (size_t)(p - out);
}

void arch_call_regs(const uint64_t *saved, uint64_t *out, uint64_t func, uint64_t a0, uint64_t a1,
		    uint64_t sp)
{
	struct user_regs_struct *r = R(out);

	memcpy(out, saved, sizeof(struct user_regs_struct));
	r->orig_rax = (uint64_t)-1; /* no restart logic on our call */
	r->rip = func;
	r->rdi = a0;
	r->rsi = a1;
	r->rax = 0;
	r->rsp = sp;
	/* the ABI's state at a call: direction flag clear; no single-step */
	r->eflags &= ~(uint64_t)(0x400 | 0x100);
}

/*
 * The extended state (x87, SSE, AVX...) of a thread, around a call: the
 * called code may use vector registers the thread had live.
 */
int arch_fpstate_save(pid_t tid, struct arch_fpstate *ret)
{
	struct iovec iov;

	ret->len = 0;
	ret->buf = malloc(ARCH_XSTATE_MAX);
	if (!ret->buf)
		return -ENOMEM;
	iov = (struct iovec){ ret->buf, ARCH_XSTATE_MAX };
	if (ptrace(PTRACE_GETREGSET, tid, (void *)NT_X86_XSTATE, &iov) == 0) {
		ret->len = iov.iov_len;
		ret->xstate = true;
		return 0;
	}
	/* no XSAVE: the FXSAVE area (x87, SSE) */
	if (ptrace(PTRACE_GETFPREGS, tid, NULL, ret->buf) == 0) {
		ret->len = sizeof(struct user_fpregs_struct);
		ret->xstate = false;
		return 0;
	}
	free(ret->buf);
	ret->buf = NULL;
	return -errno;
}

int arch_fpstate_restore(pid_t tid, const struct arch_fpstate *s)
{
	struct iovec iov = { s->buf, s->len };

	if (!s->buf)
		return 0;
	if (s->xstate ? ptrace(PTRACE_SETREGSET, tid, (void *)NT_X86_XSTATE, &iov)
		      : ptrace(PTRACE_SETFPREGS, tid, NULL, s->buf))
		return -errno;
	return 0;
}

void arch_fpstate_release(struct arch_fpstate *s)
{
	free(s->buf);
	s->buf = NULL;
}

uint64_t arch_syscall_pc(const uint64_t *regs)
{
	return CR(regs)->rip;
}

int64_t arch_syscall_nr(const uint64_t *regs)
{
	return (int64_t)CR(regs)->orig_rax;
}

int64_t arch_syscall_result(const uint64_t *regs)
{
	return (int64_t)CR(regs)->rax;
}

bool arch_in_syscall(const uint64_t *regs)
{
	return (int64_t)CR(regs)->orig_rax >= 0;
}

bool arch_restart_fixup(int mem_fd, uint64_t *regs)
{
	struct user_regs_struct *r = R(regs);
	uint8_t prev[2];

	/*
	 * epoll_wait, semop, sigtimedwait, io_getevents, a recv with
	 * SO_RCVTIMEO and the other calls the kernel never restarts return
	 * -EINTR to a ptrace interrupt (docs/engine.md). The thread is in its
	 * interrupt stop, inside get_signal() on its way out of the call; the
	 * kernel applies its restart logic to these registers after the stop,
	 * once it knows whether a signal is delivered. -ERESTARTNOHAND is the
	 * code that says what the program would have seen without us: the call
	 * is re-issued unless a handler runs, and then it is EINTR. So the
	 * kernel itself decides, with the mask the call runs with (epoll_pwait,
	 * ppoll, pselect6 keep their own mask until then), whether a pending
	 * signal is one the program takes here: one that is blocked, ignored,
	 * or taken by another thread leaves the call re-issued; one delivered
	 * to this thread, at the stop or later while it is held, gives EINTR
	 * as it would have. Only when rip follows a syscall instruction (the
	 * kernel rewinds rip by its length).
	 */
	if (r->rax != EINTR_RAX || (int64_t)r->orig_rax < 0 || r->rip < 2)
		return false;
	if (proc_mem_read(mem_fd, r->rip - 2, prev, 2) < 0 || memcmp(prev, arch_syscall_insn, 2))
		return false;
	r->rax = (uint64_t)-ERESTARTNOHAND_CODE;
	return true;
}

/* ---- instruction lengths, for branch targets ----------------------------- */

/*
 * A length decoder for x86-64 user code as compilers emit it: legacy and
 * REX prefixes, VEX and EVEX, the one-, two- and three-byte opcode maps.
 * Enough to walk a function from its entry to its end and see every direct
 * branch. Returns the length, or 0 for what it does not know.
 */
struct insn {
	size_t len;
	bool branch;      /* direct jmp/jcc/loop: target below */
	int64_t rel;      /* relative to the next instruction */
};

static size_t modrm_len(const uint8_t *p, size_t avail, bool addr32)
{
	uint8_t m, mod, rm;
	size_t n = 1;

	(void)addr32; /* 32-bit addressing in 64-bit mode has the same forms */
	if (avail < 1)
		return 0;
	m = p[0];
	mod = m >> 6;
	rm = m & 7;
	if (mod == 3)
		return 1;
	if (rm == 4) {
		if (avail < 2)
			return 0;
		n++;
		if (mod == 0 && (p[1] & 7) == 5)
			n += 4;
	} else if (mod == 0 && rm == 5) {
		n += 4; /* rip-relative */
	}
	if (mod == 1)
		n += 1;
	else if (mod == 2)
		n += 4;
	return n <= avail ? n : 0;
}

/* Immediate size of a two-byte-map (0F xx) opcode with ModRM. */
static size_t imm_0f(uint8_t op)
{
	switch (op) {
	case 0x70: case 0x71: case 0x72: case 0x73:
	case 0xa4: case 0xac: case 0xba:
	case 0xc2: case 0xc4: case 0xc5: case 0xc6:
		return 1;
	default:
		return 0;
	}
}

/* Two-byte-map opcodes without ModRM. */
static bool no_modrm_0f(uint8_t op)
{
	return op == 0x05 || op == 0x06 || op == 0x07 || op == 0x08 || op == 0x09 ||
	       op == 0x0b || op == 0x0e || (op >= 0x30 && op <= 0x37) || op == 0x77 ||
	       (op >= 0x80 && op <= 0x8f) || op == 0xa0 || op == 0xa1 || op == 0xa2 ||
	       op == 0xa8 || op == 0xa9 || op == 0xaa || (op >= 0xc8 && op <= 0xcf);
}

static bool decode(const uint8_t *p, size_t avail, struct insn *in)
{
	size_t i = 0, n;
	bool opsize16 = false, addr32 = false, rexw = false;
	uint8_t op;

	memset(in, 0, sizeof(*in));
	for (; i < avail && i < 14; i++) {
		uint8_t b = p[i];

		if (b == 0x66)
			opsize16 = true;
		else if (b == 0x67)
			addr32 = true;
		else if (b == 0xf0 || b == 0xf2 || b == 0xf3 || b == 0x2e || b == 0x36 ||
			 b == 0x3e || b == 0x26 || b == 0x64 || b == 0x65)
			;
		else
			break;
	}
	if (i < avail && (p[i] & 0xf0) == 0x40) {
		rexw = (p[i] & 8) != 0;
		i++;
	}
	if (i >= avail)
		return false;
	op = p[i++];

	/* VEX (C4, C5) and EVEX (62): map and then ModRM (+ imm8 in map 3) */
	if (op == 0xc4 || op == 0xc5 || op == 0x62) {
		unsigned map;
		size_t plen = op == 0xc5 ? 1 : op == 0xc4 ? 2 : 3;
		uint8_t vop;

		if (i + plen + 1 > avail)
			return false;
		map = op == 0xc5 ? 1 : (p[i] & (op == 0x62 ? 7 : 0x1f));
		i += plen;
		vop = p[i++];
		if (map == 1 && vop == 0x77 && op != 0x62) {
			in->len = i; /* vzeroupper, vzeroall */
			return true;
		}
		n = modrm_len(p + i, avail - i, addr32);
		if (!n || map < 1 || map > 3)
			return false;
		i += n;
		if (map == 3 || (map == 1 && imm_0f(vop)))
			i += 1;
		in->len = i;
		return i <= avail;
	}
	if (op == 0x0f) {
		uint8_t op2;

		if (i >= avail)
			return false;
		op2 = p[i++];
		if (op2 == 0x38 || op2 == 0x3a) {
			if (i >= avail)
				return false;
			i++; /* the opcode */
			n = modrm_len(p + i, avail - i, addr32);
			if (!n)
				return false;
			i += n + (op2 == 0x3a ? 1 : 0);
		} else if (op2 >= 0x80 && op2 <= 0x8f) {
			if (i + 4 > avail)
				return false;
			in->branch = true;
			in->rel = (int32_t)((uint32_t)p[i] | (uint32_t)p[i + 1] << 8 |
					    (uint32_t)p[i + 2] << 16 | (uint32_t)p[i + 3] << 24);
			i += 4;
		} else if (no_modrm_0f(op2)) {
			;
		} else {
			n = modrm_len(p + i, avail - i, addr32);
			if (!n)
				return false;
			i += n + imm_0f(op2);
			if (op2 == 0x0f)
				i += 1; /* 3DNow! suffix */
		}
		in->len = i;
		return i <= avail;
	}

	{
		size_t z = opsize16 ? 2 : 4, imm = 0;
		bool modrm = false;
		uint8_t lo = op & 7, hi = op >> 4;

		if (hi <= 3 && lo <= 3) {
			modrm = true;
		} else if (hi <= 3 && lo == 4) {
			imm = 1;
		} else if (hi <= 3 && lo == 5) {
			imm = z;
		} else if (hi <= 3 && (op & 0x0f) >= 8 && (op & 7) <= 3) {
			modrm = true;
		} else if (hi <= 3 && (op & 0x0f) == 0x0c) {
			imm = 1;
		} else if (hi <= 3 && (op & 0x0f) == 0x0d) {
			imm = z;
		} else if (hi <= 3) {
			return false; /* 06/07/0E/16/17/1E/1F/27/2F/37/3F: invalid in 64-bit */
		} else if (hi == 4 || hi == 5) {
			; /* 50-5F push/pop (40-4F were REX) */
		} else if (hi >= 7 && hi <= 7) {
			in->branch = true;
			imm = 1;
		} else {
			switch (op) {
			case 0x63: modrm = true; break;
			case 0x68: imm = z; break;
			case 0x69: modrm = true; imm = z; break;
			case 0x6a: imm = 1; break;
			case 0x6b: modrm = true; imm = 1; break;
			case 0x6c: case 0x6d: case 0x6e: case 0x6f: break;
			case 0x80: case 0x83: modrm = true; imm = 1; break;
			case 0x81: modrm = true; imm = z; break;
			case 0x84: case 0x85: case 0x86: case 0x87: case 0x88: case 0x89:
			case 0x8a: case 0x8b: case 0x8c: case 0x8d: case 0x8e: case 0x8f:
				modrm = true;
				break;
			case 0x90: case 0x91: case 0x92: case 0x93: case 0x94: case 0x95:
			case 0x96: case 0x97: case 0x98: case 0x99: case 0x9b: case 0x9c:
			case 0x9d: case 0x9e: case 0x9f:
				break;
			case 0xa0: case 0xa1: case 0xa2: case 0xa3: imm = addr32 ? 4 : 8; break;
			case 0xa4: case 0xa5: case 0xa6: case 0xa7: case 0xaa: case 0xab:
			case 0xac: case 0xad: case 0xae: case 0xaf:
				break;
			case 0xa8: imm = 1; break;
			case 0xa9: imm = z; break;
			case 0xb0: case 0xb1: case 0xb2: case 0xb3: case 0xb4: case 0xb5:
			case 0xb6: case 0xb7:
				imm = 1;
				break;
			case 0xb8: case 0xb9: case 0xba: case 0xbb: case 0xbc: case 0xbd:
			case 0xbe: case 0xbf:
				imm = rexw ? 8 : z;
				break;
			case 0xc0: case 0xc1: case 0xc6: modrm = true; imm = 1; break;
			case 0xc7: modrm = true; imm = z; break;
			case 0xc2: case 0xca: imm = 2; break;
			case 0xc3: case 0xc9: case 0xcb: case 0xcc: case 0xcf: break;
			case 0xc8: imm = 3; break;
			case 0xcd: imm = 1; break;
			case 0xd0: case 0xd1: case 0xd2: case 0xd3: modrm = true; break;
			case 0xd7: break;
			case 0xd8: case 0xd9: case 0xda: case 0xdb: case 0xdc: case 0xdd:
			case 0xde: case 0xdf:
				modrm = true;
				break;
			case 0xe0: case 0xe1: case 0xe2: case 0xe3: case 0xeb:
				in->branch = true;
				imm = 1;
				break;
			case 0xe4: case 0xe5: case 0xe6: case 0xe7: imm = 1; break;
			case 0xe8: imm = 4; break;
			case 0xe9: in->branch = true; imm = 4; break;
			case 0xec: case 0xed: case 0xee: case 0xef: case 0xf1: case 0xf4:
			case 0xf5: case 0xf8: case 0xf9: case 0xfa: case 0xfb: case 0xfc:
			case 0xfd:
				break;
			case 0xf6: case 0xf7:
				modrm = true;
				if (i < avail && ((p[i] >> 3) & 7) <= 1)
					imm = op == 0xf6 ? 1 : z;
				break;
			case 0xfe: case 0xff: modrm = true; break;
			default:
				return false;
			}
		}
		if (modrm) {
			n = modrm_len(p + i, avail - i, addr32);
			if (!n)
				return false;
			i += n;
		}
		if (i + imm > avail)
			return false;
		if (in->branch) {
			if (imm == 1)
				in->rel = (int8_t)p[i];
			else
				in->rel = (int32_t)((uint32_t)p[i] | (uint32_t)p[i + 1] << 8 |
						    (uint32_t)p[i + 2] << 16 | (uint32_t)p[i + 3] << 24);
		}
		i += imm;
	}
	in->len = i;
	return i <= avail && i <= 15;
}

int arch_branch_into(const uint8_t *code, size_t len, uint64_t addr, uint64_t lo, uint64_t hi,
		     uint64_t *ret_from)
{
	for (size_t off = 0; off < len;) {
		struct insn in;

		if (!decode(code + off, len - off, &in) || !in.len)
			return -ENOEXEC;
		if (in.branch) {
			uint64_t to = addr + off + in.len + (uint64_t)in.rel;

			if (to >= lo && to < hi) {
				*ret_from = addr + off;
				return 1;
			}
		}
		off += in.len;
	}
	return 0;
}

size_t arch_insn_len(const uint8_t *code, size_t len)
{
	struct insn in;

	return decode(code, len, &in) ? in.len : 0;
}

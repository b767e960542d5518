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

uint64_t arch_jump_reach(void)
{
	return 0x7fff0000ull;
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

static uint8_t *mov_imm64(uint8_t *p, uint8_t rex, uint8_t op, uint64_t v)
{
	*p++ = rex;
	*p++ = op;
	memcpy(p, &v, 8);
	return p + 8;
}

size_t arch_tramp_build(const uint64_t *saved, bool syscall_before_pc,
			const struct ptr_undo *undo, uint8_t out[ARCH_TRAMP_MAX])
{
	const struct user_regs_struct *r = CR(saved);
	uint64_t rax = r->rax, rip = r->rip;
	uint8_t *p = out;

	/* the kernel's restart logic, done by hand (FIELD-NOTES table) */
	if ((int64_t)r->orig_rax >= 0) {
		switch ((int64_t)r->rax) {
		case -512: /* ERESTARTSYS */
		case -513: /* ERESTARTNOINTR */
		case -514: /* ERESTARTNOHAND */
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
	/* mov $imm64, %reg (flags untouched: the syscall restored them from r11) */
	p = mov_imm64(p, 0x48, 0xbf, r->rdi);
	p = mov_imm64(p, 0x48, 0xbe, r->rsi);
	p = mov_imm64(p, 0x48, 0xba, r->rdx);
	p = mov_imm64(p, 0x49, 0xba, r->r10);
	p = mov_imm64(p, 0x49, 0xb8, r->r8);
	p = mov_imm64(p, 0x49, 0xb9, r->r9);
	p = mov_imm64(p, 0x48, 0xb9, r->rcx);
	p = mov_imm64(p, 0x49, 0xbb, r->r11);
	p = mov_imm64(p, 0x48, 0xb8, rax);
	/* jmp *0(%rip); .quad rip */
	*p++ = 0xff;
	*p++ = 0x25;
	memset(p, 0, 4);
	p += 4;
	memcpy(p, &rip, 8);
	p += 8;
	return (size_t)(p - out);
}

uint64_t arch_syscall_pc(const uint64_t *regs)
{
	return CR(regs)->rip;
}

int64_t arch_syscall_result(const uint64_t *regs)
{
	return (int64_t)CR(regs)->rax;
}

bool arch_restart_fixup(int mem_fd, uint64_t *regs)
{
	struct user_regs_struct *r = R(regs);
	uint8_t prev[2];

	/*
	 * epoll_wait and friends return -EINTR to a ptrace interrupt instead
	 * of a restart code (FIELD-NOTES): when the thread sits right after a
	 * syscall instruction with that result, make it re-issue the call.
	 */
	if (r->rax != EINTR_RAX || (int64_t)r->orig_rax < 0 || r->rip < 2)
		return false;
	if (proc_mem_read(mem_fd, r->rip - 2, prev, 2) < 0 || memcmp(prev, arch_syscall_insn, 2))
		return false;
	r->rax = r->orig_rax;
	r->rip -= 2;
	return true;
}

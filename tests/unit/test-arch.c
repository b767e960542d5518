/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* arch-x86_64.c: the jump, its reach, and the EINTR restart fix-up. */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <stdio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/user.h>
#include <unistd.h>
#include <cmocka.h>

#include "apply-int.h"

static void jump_roundtrip(void **state)
{
	static const uint64_t pairs[][2] = {
		{ 0x400000, 0x401000 },
		{ 0x401000, 0x400000 },
		{ 0x7f0000000000, 0x7f0000000000 + 0x7ffffff0 },
		{ 0x7f0000000000, 0x7f0000000000 - 0x7ffffff0 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		uint8_t b[ARCH_JUMP_LEN];
		uint64_t to = 0;

		assert_int_equal(arch_jump_encode(pairs[i][0], pairs[i][1], b), 0);
		assert_int_equal(b[0], 0xe9);
		assert_true(arch_jump_decode(pairs[i][0], b, &to));
		assert_int_equal(to, pairs[i][1]);
	}
}

static void jump_bytes(void **state)
{
	uint8_t b[ARCH_JUMP_LEN];
	static const uint8_t want[] = { 0xe9, 0xfb, 0x0f, 0x00, 0x00 };

	(void)state;
	/* rel32 counts from the end of the 5-byte instruction */
	assert_int_equal(arch_jump_encode(0x1000, 0x2000, b), 0);
	assert_memory_equal(b, want, sizeof(want));
}

static void jump_out_of_reach(void **state)
{
	uint8_t b[ARCH_JUMP_LEN];

	(void)state;
	assert_int_equal(arch_jump_encode(0x10000000, 0x10000000 + 0x80000005ull, b), -ERANGE);
	assert_int_equal(arch_jump_encode(0x200000000, 0x200000000 - 0x80000000ull, b), -ERANGE);
	assert_int_equal(arch_jump_encode(0x10000000, 0x10000000 + 0x80000004ull, b), 0);
	assert_true(arch_jump_reach() < 0x80000000ull);
}

static void jump_decode_other(void **state)
{
	static const uint8_t push[] = { 0x55, 0x48, 0x89, 0xe5, 0x90 };
	uint64_t to;

	(void)state;
	assert_false(arch_jump_decode(0x1000, push, &to));
}

/* A syscall instruction in our own memory, for the fix-up to look at. */
static const uint8_t code[] = { 0x90, 0x0f, 0x05, 0x90 };

static void fixup(void **state)
{
	struct user_regs_struct r = { 0 };
	uint64_t regs[32] = { 0 };
	int fd = open("/proc/self/mem", O_RDONLY);

	(void)state;
	assert_true(fd >= 0);
	r.rax = (uint64_t)-EINTR;
	r.orig_rax = 232; /* epoll_wait */
	r.rip = (uint64_t)(uintptr_t)&code[3];
	memcpy(regs, &r, sizeof(r));
	assert_true(arch_restart_fixup(fd, regs));
	memcpy(&r, regs, sizeof(r));
	/* -ERESTARTNOHAND: the kernel rewinds it after the stop, unless a
	 * handler runs; orig_rax and rip as they were */
	assert_int_equal(r.rax, (uint64_t)-514);
	assert_int_equal(r.orig_rax, 232);
	assert_int_equal(r.rip, (uint64_t)(uintptr_t)&code[3]);

	/* a restart code the kernel handles itself: untouched */
	r.rax = (uint64_t)-512;
	r.orig_rax = 0;
	r.rip = (uint64_t)(uintptr_t)&code[3];
	memcpy(regs, &r, sizeof(r));
	assert_false(arch_restart_fixup(fd, regs));
	/* not in a system call (orig_rax -1): untouched */
	r.rax = (uint64_t)-EINTR;
	r.orig_rax = (uint64_t)-1;
	memcpy(regs, &r, sizeof(r));
	assert_false(arch_restart_fixup(fd, regs));
	/* no syscall instruction before rip: untouched */
	r.orig_rax = 232;
	r.rip = (uint64_t)(uintptr_t)&code[2];
	memcpy(regs, &r, sizeof(r));
	assert_false(arch_restart_fixup(fd, regs));
	close(fd);
}

static void syscall_regs(void **state)
{
	struct user_regs_struct saved = { 0 }, out;
	uint64_t s[32] = { 0 }, o[32] = { 0 };
	const uint64_t args[6] = { 1, 2, 3, 4, 5, 6 };

	(void)state;
	saved.rsp = 0x7ffd00001008;
	saved.orig_rax = 0;
	saved.rax = (uint64_t)-512;
	memcpy(s, &saved, sizeof(saved));
	arch_syscall_regs(s, o, 0x7f0000001000, 9, args);
	memcpy(&out, o, sizeof(out));
	assert_int_equal(out.orig_rax, (uint64_t)-1);
	assert_int_equal(out.rax, 9);
	assert_int_equal(out.rip, 0x7f0000001000);
	assert_int_equal(out.rdi, 1);
	assert_int_equal(out.rsi, 2);
	assert_int_equal(out.rdx, 3);
	assert_int_equal(out.r10, 4);
	assert_int_equal(out.r8, 5);
	assert_int_equal(out.r9, 6);
	assert_int_equal(out.rsp, saved.rsp); /* the trampoline does not restore it */
}

/* The trampoline's shape: a syscall, registers back, a jump to where the
 * thread resumes (test-engine-kill runs it for real). */
static void tramp_shape(void **state)
{
	struct user_regs_struct r = { 0 };
	uint64_t regs[32] = { 0 };
	uint8_t tramp[ARCH_TRAMP_MAX];
	size_t len;
	uint64_t target;

	(void)state;
	r.rdi = 11;
	r.rsi = 22;
	r.rdx = 33;
	r.r10 = 44;
	r.r8 = 55;
	r.r9 = 66;
	r.rcx = 77;
	r.r11 = 88;
	r.orig_rax = 0;
	r.rax = (uint64_t)-512; /* read interrupted: re-issue it */
	r.rip = 0x401002;
	memcpy(regs, &r, sizeof(r));
	len = arch_tramp_build(regs, true, NULL, tramp);
	assert_true(len > 2 && len <= ARCH_TRAMP_MAX);
	assert_memory_equal(tramp, arch_syscall_insn, 2);
	assert_true(arch_tramp_is(tramp, len));
	assert_false(arch_tramp_is(tramp + 2, len - 2));
	/* ends with jmp *0(%rip) to the syscall instruction (rip - 2) */
	assert_int_equal(tramp[len - 14], 0xff);
	assert_int_equal(tramp[len - 13], 0x25);
	memcpy(&target, tramp + len - 8, 8);
	assert_int_equal(target, 0x401000);
	/* rax gets the call number back (mov $0, %rax precedes the jmp) */
	assert_int_equal(tramp[len - 24], 0x48);
	assert_int_equal(tramp[len - 23], 0xb8);
	memcpy(&target, tramp + len - 22, 8);
	assert_int_equal(target, 0);

	/* restart_block calls restart through restart_syscall */
	r.rax = (uint64_t)-516;
	memcpy(regs, &r, sizeof(r));
	len = arch_tramp_build(regs, true, NULL, tramp);
	memcpy(&target, tramp + len - 22, 8);
	assert_int_equal(target, 219);
	/* stopped in user code: everything as it was, rip unchanged */
	r.orig_rax = (uint64_t)-1;
	r.rax = 1234;
	memcpy(regs, &r, sizeof(r));
	len = arch_tramp_build(regs, false, NULL, tramp);
	memcpy(&target, tramp + len - 8, 8);
	assert_int_equal(target, 0x401002);
	memcpy(&target, tramp + len - 22, 8);
	assert_int_equal(target, 1234);
}

/* Instruction lengths and branch targets on known encodings. */
static void decode_known(void **state)
{
	static const struct {
		uint8_t b[16];
		size_t len;
	} cases[] = {
		{ { 0xf3, 0x0f, 0x1e, 0xfa }, 4 },                         /* endbr64 */
		{ { 0x55 }, 1 },                                           /* push %rbp */
		{ { 0x48, 0x89, 0xe5 }, 3 },                               /* mov %rsp,%rbp */
		{ { 0x66, 0x2e, 0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0 }, 10 },   /* nopw */
		{ { 0xe8, 1, 2, 3, 4 }, 5 },                               /* call rel32 */
		{ { 0x0f, 0x84, 1, 0, 0, 0 }, 6 },                         /* je rel32 */
		{ { 0x48, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8 }, 10 },            /* movabs */
		{ { 0x48, 0x83, 0x05, 1, 2, 3, 4, 1 }, 8 },                /* addq $1,x(%rip) */
		{ { 0xc5, 0xf8, 0x77 }, 3 },                               /* vzeroupper */
		{ { 0xc5, 0xfd, 0x6f, 0x44, 0x24, 0x20 }, 6 },             /* vmovdqa 0x20(%rsp) */
		{ { 0x62, 0xf1, 0x7e, 0x48, 0x6f, 0x06 }, 6 },             /* vmovdqu64 (%rsi) */
		{ { 0x0f, 0x05 }, 2 },                                     /* syscall */
		{ { 0xf7, 0xc7, 1, 0, 0, 0 }, 6 },                         /* test $1,%edi */
		{ { 0xf7, 0xd8 }, 2 },                                     /* neg %eax */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(arch_insn_len(cases[i].b, sizeof(cases[i].b)), cases[i].len);
	assert_int_equal(arch_insn_len((const uint8_t *)"\x06", 1), 0); /* push %es: not in 64-bit */
}

static void branch_into(void **state)
{
	/* nop; 1: addq $1,x(%rip); jmp 1b  (the loop head at offset 1) */
	static const uint8_t loop1[] = { 0x90, 0x48, 0x83, 0x05, 0, 0, 0, 0, 1, 0xeb, 0xf6 };
	/* endbr64; 1: dec %edi; jne 1b  (offset 4) */
	static const uint8_t loop4[] = { 0xf3, 0x0f, 0x1e, 0xfa, 0xff, 0xcf, 0x75, 0xfc, 0xc3 };
	/* push %rbx; mov $10,%ebx; 1: dec %ebx; jne 1b; pop %rbx; ret  (offset 6) */
	static const uint8_t loop6[] = { 0x53, 0xbb, 10, 0, 0, 0, 0xff, 0xcb, 0x75, 0xfc, 0x5b, 0xc3 };
	/* jmp to the entry itself (offset 0) is fine: it takes the new code */
	static const uint8_t loop0[] = { 0x48, 0x83, 0x05, 0, 0, 0, 0, 1, 0xeb, 0xf6 };
	uint64_t from = 0;

	(void)state;
	assert_int_equal(arch_branch_into(loop1, sizeof(loop1), 0x1000, 0x1001, 0x1005, &from), 1);
	assert_int_equal(from, 0x1009);
	assert_int_equal(arch_branch_into(loop4, sizeof(loop4), 0x1000, 0x1001, 0x1005, &from), 1);
	assert_int_equal(from, 0x1006);
	assert_int_equal(arch_branch_into(loop6, sizeof(loop6), 0x1000, 0x1001, 0x1005, &from), 0);
	assert_int_equal(arch_branch_into(loop0, sizeof(loop0), 0x1000, 0x1001, 0x1005, &from), 0);
	assert_int_equal(arch_branch_into((const uint8_t *)"\x06\x07", 2, 0x1000, 0x1001, 0x1005,
					  &from), -ENOEXEC);
}

/* Walk every function of libc's dynamic symbol table: each must decode to
 * exactly its size (the decoder knows what compilers and libc's assembly
 * emit: AVX, AVX-512, x87...). */
static void decode_libc(void **state)
{
	char line[4096], path[4096] = "";
	FILE *maps = fopen("/proc/self/maps", "r");
	Elf *e;
	Elf_Scn *scn = NULL;
	size_t shn = 0, n_ok = 0, n_bad = 0;
	int fd;

	(void)state;
	while (maps && fgets(line, sizeof(line), maps))
		if (strstr(line, "/libc.so") && sscanf(line, "%*s %*s %*s %*s %*s %4095s", path) == 1)
			break;
	if (maps)
		fclose(maps);
	assert_true(path[0] == '/');
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	elf_version(EV_CURRENT);
	e = elf_begin(fd, ELF_C_READ, NULL);
	assert_non_null(e);
	elf_getshdrnum(e, &shn);
	while ((scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_DYNSYM)
			continue;
		d = elf_getdata(scn, NULL);
		for (size_t i = 0; d && i < sh.sh_size / sh.sh_entsize; i++) {
			GElf_Sym sym;
			GElf_Shdr th;
			Elf_Data *td;
			const uint8_t *c;
			size_t off = 0, l;

			if (!gelf_getsym(d, (int)i, &sym) || GELF_ST_TYPE(sym.st_info) != STT_FUNC ||
			    !sym.st_size || sym.st_shndx == SHN_UNDEF || sym.st_shndx >= shn)
				continue;
			if (!gelf_getshdr(elf_getscn(e, sym.st_shndx), &th) || th.sh_type != SHT_PROGBITS)
				continue;
			td = elf_getdata(elf_getscn(e, sym.st_shndx), NULL);
			c = (const uint8_t *)td->d_buf + (sym.st_value - th.sh_addr);
			while (off < sym.st_size && (l = arch_insn_len(c + off, sym.st_size - off)))
				off += l;
			if (off == sym.st_size)
				n_ok++;
			else
				n_bad++;
		}
	}
	elf_end(e);
	close(fd);
	assert_true(n_ok > 1000);
	assert_int_equal(n_bad, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(jump_roundtrip),
		cmocka_unit_test(jump_bytes),
		cmocka_unit_test(jump_out_of_reach),
		cmocka_unit_test(jump_decode_other),
		cmocka_unit_test(fixup),
		cmocka_unit_test(syscall_regs),
		cmocka_unit_test(tramp_shape),
		cmocka_unit_test(decode_known),
		cmocka_unit_test(branch_into),
		cmocka_unit_test(decode_libc),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

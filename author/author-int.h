/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * author-int.h: what the files of libhpauthor share. Owners: author.c (hp
 * build: options, compiling, BIN's symbols and libraries, the manifest),
 * clobber.c (the IPA-RA register check).
 */
#ifndef HP_AUTHOR_INT_H
#define HP_AUTHOR_INT_H

#include <libelf.h>
#include <stdbool.h>
#include <stdint.h>

#include "author.h"
#include "hp-elf.h"
#include "store.h"

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

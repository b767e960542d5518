/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hp-elf.h: ELF and machine facts that the engine (apply/) and the authoring
 * tool (author/) must agree on, in one place: the GNU build-id that names a
 * target, the size of the jump written over a replaced function's entry,
 * and the relocation types the engine's loader applies in a patch object.
 * libhpelf (common/elf.c); it links libelf.
 */
#ifndef HP_ELF_H
#define HP_ELF_H

#include <libelf.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The note parser itself is elf-facts.h's (hp_elf_notes_build_id). */
#include "elf-facts.h"
#define HP_BUILD_ID_HEX_MAX HP_BUILD_ID_HEX_SIZE

/*
 * The GNU build-id of an ELF file opened with libelf: its SHT_NOTE
 * sections, else (no section headers, sstrip) its PT_NOTE segments.
 * 0, or -ENOENT (no message).
 */
int hp_elf_build_id(Elf *elf, char ret_hex[HP_BUILD_ID_HEX_MAX]);

/* ---- x86-64 ---------------------------------------------------------------- */

/* The jump over a replaced function's entry: jmp rel32, 5 bytes. */
#define HP_X86_64_JUMP_LEN 5

/*
 * Whether the engine's loader (apply/load.c) applies this dynamic
 * relocation type in a patch object: NONE, 64, PC32, GLOB_DAT, JUMP_SLOT,
 * RELATIVE. hp build refuses a patch object with any other.
 */
bool hp_x86_64_reloc_applied(unsigned type);

#endif

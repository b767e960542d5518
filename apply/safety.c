/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * safety.c: is any thread of a stopped process executing in, or due to
 * return into, one of the functions about to be switched?
 *
 * Per thread, in order (this runs while every thread of the target is
 * held: each step is there for speed or for the conservative rule below):
 *
 *  1. Program counter (one PTRACE_GETREGS): start <= pc < end is busy
 *     (pc == start: stopped on the first bytes, about to run the function),
 *     and so is pc - 2 in a range when the thread sits in a system call,
 *     which the kernel restarts by rewinding pc over the syscall
 *     instruction. The message is "function NAME active in thread TID".
 *  2. Fast path: every return address of the frames a thread has on its
 *     stack is a word between its stack pointer and the end of the stack
 *     mapping. One read of that live stack; when no word there lies in a
 *     range (start < word < end) and no signal frame is there, the thread
 *     is safe without unwinding. Most threads of a process end here. In a
 *     live session the end of the mapping comes from the maps parsed at
 *     its start, confirmed by the read itself (read_stack_hint), or asked
 *     of the kernel when a readable mapping follows it.
 *  3. Otherwise unwind, with libunwind's remote (ptrace) flavour: every
 *     return address ra with start <= ra <= end is busy ("function NAME
 *     active in thread TID (return address at frame N)"). A word found in
 *     step 2 in a dead slot is thereby not mistaken for an activation.
 *
 * The unwinder is made cheap: _UPT_accessors with memory (process_vm_readv
 * through a page cache, not a PTRACE_PEEKDATA per word), registers (the
 * one PTRACE_GETREGS, not a PTRACE_PEEKUSER per register) and unwind-table
 * lookup replaced. Tables are found in the process's own memory (ELF
 * header, PT_GNU_EH_FRAME, the .eh_frame_hdr search table read whole and
 * searched here) instead of re-reading /proc/PID/maps and mmapping each
 * object's file whenever the unwinder crosses objects; that also works
 * across mount namespaces and for deleted files. Mappings come from the
 * PROCMAP_QUERY ioctl (Linux 6.11; the parsed /proc/PID/maps text is the
 * fallback). The address space, with its register-state cache, is kept
 * per calling thread and flushed at the start of every check: nothing
 * learnt about another process, or this one earlier, is trusted.
 *
 * The conservative rule (a false "busy" costs a retry, a false "safe"
 * corrupts the target): an unwinding is trusted only when it reaches the
 * outermost frame (unw_step() returns 0) with unwind info for every frame
 * on the way. When a frame has no unwind info (hand-written assembly, JIT
 * code, a stripped .eh_frame), when unw_step() fails, or when the frame
 * bound (SAFETY_MAX_FRAMES) is hit, the frames above the last trusted one
 * are not guessed: every word between that frame's stack pointer and the
 * end of the stack mapping is compared with the ranges, as in step 2, and
 * a hit is busy ("... (address on the stack at sp+X, frames without
 * unwind info)"). libunwind's x86_64 unw_step() falls back to frame-pointer
 * guessing when a frame has no CFI and may then stop "cleanly" without
 * having seen the real callers: that is why the absence of info is
 * tracked here, in our find_proc_info, not inferred from unw_step(). A
 * stack deeper than SAFETY_MAX_SCAN, or a stack pointer in no mapping, is
 * busy: nothing can be said of it.
 *
 * Stack words: a word equal to a range's start is a function pointer
 * (struct pthread's start routine, a callback), one equal to its end a
 * pointer to the next function; neither is a return address (those follow
 * a call instruction inside the function, and a call ending a function
 * never returns). The one way frames leave the stack a thread runs on is
 * a signal handler on a sigaltstack: the interrupted frames stay on the
 * normal stack. A signal frame on the scanned stack (recognised by the FP
 * state the kernel saves in it, see stack_clean) sends the thread to the
 * unwinder, which follows the signal frame. Limits, shared with the
 * unwinder: suspended coroutine stacks are seen by neither, and a signal
 * frame on a sigaltstack over frames without unwind info falls back to a
 * scan of the alternate stack only.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <unistd.h>

#include <libunwind-ptrace.h>
#include <libunwind.h>

#include "apply-int.h"

/* Frames unwound per thread before the rest of its stack is scanned. */
#define SAFETY_MAX_FRAMES 256
/* Bytes of stack scanned per thread when unwinding cannot finish. */
#define SAFETY_MAX_SCAN (8u << 20)
/* Bytes read by the fast path; a deeper stack (or one in a larger
 * mapping, a coroutine stack in the heap) goes to the unwinder. */
#define SAFETY_MAX_FAST (1u << 20)
/* Page cache for the unwinder's memory reads, emptied at each check. */
#define SAFETY_PAGE HP_PAGE_SIZE
#define SAFETY_CACHE_PAGES 64u
/* Bounds on what is read from the target. */
#define SAFETY_MAX_TABLE (1u << 21) /* FDEs per object: 16 MiB of table */

/* The libunwind helper our find_proc_info hands each object's table to. */
extern int UNW_OBJ(dwarf_search_unwind_table)(unw_addr_space_t as, unw_word_t ip,
					      unw_dyn_info_t *di, unw_proc_info_t *pi,
					      int need_unwind_info, void *arg);

struct safety_map {
	uint64_t start, end, offset, inode;
	unsigned dev_major, dev_minor;
	bool exec;
	bool read;
};

/* An ELF object found in the process, and its unwind table (if any). */
struct safety_obj {
	uint64_t start, end;
	bool has_table;
	unw_dyn_info_t di;
	/* The .eh_frame_hdr search table, read whole (one read instead of a
	 * page per step of libunwind's remote binary search): pairs of
	 * (start ip, fde) offsets from segbase, sorted by start ip. */
	int32_t *table;
	uint64_t table_addr;
	size_t n_entries;
};

struct safety_page {
	uint64_t addr; /* page address, or UINT64_MAX when empty */
	unsigned char *data;
};

struct safety_ctx {
	pid_t pid;
	int memfd; /* /proc/PID/mem, opened only if process_vm_readv fails */
	struct safety_page cache[SAFETY_CACHE_PAGES];

	int mapsfd;  /* /proc/PID/maps, for PROCMAP_QUERY */
	bool mapsfd_lent; /* the caller's (safety_begin_hinted): not ours to close */
	enum { SAFETY_QUERY_UNKNOWN, SAFETY_QUERY_YES, SAFETY_QUERY_NO } query;
	struct safety_map *maps; /* parsed text, when the query is unsupported */
	size_t n_maps;
	/* a live session's mappings as parsed before the stop: where a
	 * thread's stack probably ends (see read_stack) */
	struct safety_map *hints;
	size_t n_hints;
	bool dirty;  /* something read may be cached (see session_forget) */
	uint64_t *stack; /* the stack words of the thread being checked */
	size_t stack_cap; /* bytes */
	int err;     /* an error met inside a libunwind callback */
	struct safety_obj *objs;
	size_t n_objs, cap_objs;

	unw_addr_space_t as;

	/* the thread being unwound */
	pid_t tid;
	void *upt;
#if defined(__x86_64__)
	struct user_regs_struct regs;
#endif
	bool noinfo; /* a frame of this thread had no unwind info */
};

/* ---- memory ------------------------------------------------------------ */

static int mem_read_direct(struct safety_ctx *c, uint64_t addr, void *dst, size_t len)
{
	struct iovec local = { dst, len };
	struct iovec remote = { (void *)(uintptr_t)addr, len };
	ssize_t n;

	n = process_vm_readv(c->pid, &local, 1, &remote, 1, 0);
	if (n == (ssize_t)len)
		return 0;
	if (n < 0 && errno == ESRCH)
		return -ESRCH;
	/* Not readable to process_vm_readv (e.g. execute-only text):
	 * /proc/PID/mem reads through protections. */
	if (c->memfd < 0) {
		char path[64];

		snprintf(path, sizeof(path), "/proc/%d/mem", (int)c->pid);
		c->memfd = open(path, O_RDONLY | O_CLOEXEC);
		if (c->memfd < 0)
			return errno == ENOENT ? -ESRCH : -errno;
	}
	n = pread(c->memfd, dst, len, (off_t)addr);
	if (n < 0)
		return -errno;
	return n == (ssize_t)len ? 0 : -EFAULT;
}

/* Read len bytes through the page cache. */
static int mem_read(struct safety_ctx *c, uint64_t addr, void *dst, size_t len)
{
	unsigned char *out = dst;

	/* the search tables already read */
	for (size_t i = 0; i < c->n_objs; i++) {
		const struct safety_obj *o = &c->objs[i];

		if (o->table && addr >= o->table_addr && len <= o->n_entries * 8 &&
		    addr - o->table_addr <= o->n_entries * 8 - len) {
			memcpy(dst, (const char *)o->table + (addr - o->table_addr), len);
			return 0;
		}
	}

	while (len > 0) {
		uint64_t page = addr & ~(uint64_t)(SAFETY_PAGE - 1);
		size_t off = addr - page;
		size_t n = SAFETY_PAGE - off < len ? SAFETY_PAGE - off : len;
		struct safety_page *p = &c->cache[(page / SAFETY_PAGE) % SAFETY_CACHE_PAGES];
		int r;

		if (p->addr != page) {
			r = mem_read_direct(c, page, p->data, SAFETY_PAGE);
			if (r < 0) {
				p->addr = UINT64_MAX;
				return r;
			}
			p->addr = page;
		}
		memcpy(out, p->data + off, n);
		out += n;
		addr += n;
		len -= n;
	}
	return 0;
}

/* The memory reader hp_elf_headers_read() takes. */
static int ctx_mem_read(void *ctx, uint64_t addr, void *buf, size_t len)
{
	return mem_read(ctx, addr, buf, len);
}

/* ---- mappings ---------------------------------------------------------- */

static int maps_parse(struct safety_ctx *c, struct safety_map **ret, size_t *ret_n)
{
	struct hp_buf text = HP_BUF_INIT;
	struct safety_map *maps = NULL;
	size_t n_maps = 0;
	char path[64];
	char *line, *next;
	size_t cap = 0;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)c->pid);
	r = hp_read_file(path, PROC_MAPS_MAX_BYTES, &text);
	if (r < 0) {
		r = r == -ENOENT ? hp_err(-ESRCH, "process %d vanished", (int)c->pid)
				 : hp_err(r, "read %s: %s", path, strerror(-r));
		goto out;
	}
	for (line = text.data; line && *line; line = next) {
		struct proc_map pm;
		struct safety_map m;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (proc_map_parse_line(line, &pm) < 0 || pm.end <= pm.start)
			continue;
		m = (struct safety_map){ pm.start, pm.end, pm.offset, pm.inode,
					 pm.dev_major, pm.dev_minor, (pm.prot & PROT_EXEC) != 0,
					 (pm.prot & PROT_READ) != 0 };
		if (n_maps == cap) {
			size_t ncap = cap ? 2 * cap : 64;
			struct safety_map *nm = realloc(maps, ncap * sizeof(*nm));

			if (!nm) {
				r = hp_err(-ENOMEM, "out of memory");
				goto out;
			}
			maps = nm;
			cap = ncap;
		}
		maps[n_maps++] = m;
	}
	*ret = maps;
	*ret_n = n_maps;
	maps = NULL;
	r = 0;
out:
	free(maps);
	hp_buf_release(&text);
	return r;
}

/* The mapping holding addr in parsed text (sorted by address), or NULL. */
static const struct safety_map *maps_find(const struct safety_map *maps, size_t n, uint64_t addr)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (addr < maps[mid].start)
			hi = mid;
		else if (addr >= maps[mid].end)
			lo = mid + 1;
		else
			return &maps[mid];
	}
	return NULL;
}

/*
 * PROCMAP_QUERY (Linux 6.11, include/uapi/linux/fs.h): the mapping holding
 * an address, from an ioctl on /proc/PID/maps, without the kernel
 * formatting every line of the text (which costs as much as a whole check
 * of a small process). Declared here for older headers; the ABI is fixed
 * by its size field.
 */
struct safety_procmap_query {
	uint64_t size;
	uint64_t query_flags;
	uint64_t query_addr;
	uint64_t vma_start;
	uint64_t vma_end;
	uint64_t vma_flags;
	uint64_t vma_page_size;
	uint64_t vma_offset;
	uint64_t inode;
	uint32_t dev_major;
	uint32_t dev_minor;
	uint32_t vma_name_size;
	uint32_t build_id_size;
	uint64_t vma_name_addr;
	uint64_t build_id_addr;
};
#define SAFETY_PROCMAP_QUERY _IOWR('f', 17, struct safety_procmap_query)
#define SAFETY_PROCMAP_EXEC 0x04

/*
 * The mapping holding addr: -ENOENT when none. Asks the kernel for that
 * one mapping when it can, else parses /proc/PID/maps once per check.
 */
static int map_at(struct safety_ctx *c, uint64_t addr, struct safety_map *ret)
{
	const struct safety_map *m;
	int r;

	if (c->query != SAFETY_QUERY_NO) {
		struct safety_procmap_query q = { .size = sizeof(q), .query_addr = addr };

		if (c->mapsfd < 0) {
			char path[64];

			snprintf(path, sizeof(path), "/proc/%d/maps", (int)c->pid);
			c->mapsfd = open(path, O_RDONLY | O_CLOEXEC);
			if (c->mapsfd < 0)
				return errno == ENOENT ? hp_err(-ESRCH, "process %d vanished", (int)c->pid)
						       : hp_err(-errno, "open %s: %s", path, strerror(errno));
		}
		if (ioctl(c->mapsfd, SAFETY_PROCMAP_QUERY, &q) == 0) {
			c->query = SAFETY_QUERY_YES;
			memset(ret, 0, sizeof(*ret));
			ret->start = q.vma_start;
			ret->end = q.vma_end;
			ret->offset = q.vma_offset;
			ret->inode = q.inode;
			ret->dev_major = q.dev_major;
			ret->dev_minor = q.dev_minor;
			ret->exec = q.vma_flags & SAFETY_PROCMAP_EXEC;
			return 0;
		}
		if (errno == ENOENT)
			return -ENOENT;
		if (errno == ESRCH)
			return hp_err(-ESRCH, "process %d vanished", (int)c->pid);
		if (c->query == SAFETY_QUERY_YES || (errno != ENOTTY && errno != EINVAL))
			return hp_err(-errno, "query the mappings of %d: %s", (int)c->pid, strerror(errno));
		c->query = SAFETY_QUERY_NO; /* an older kernel */
	}
	if (!c->maps) {
		r = maps_parse(c, &c->maps, &c->n_maps);
		if (r < 0)
			return r;
		c->dirty = true;
	}
	m = maps_find(c->maps, c->n_maps, addr);
	if (!m)
		return -ENOENT;
	*ret = *m;
	return 0;
}

static bool same_file(const struct safety_map *a, const struct safety_map *b)
{
	return a->inode == b->inode && a->dev_major == b->dev_major &&
	       a->dev_minor == b->dev_minor;
}

/* ---- unwind tables from the process's memory --------------------------- */

/* Size of a DW_EH_PE-encoded value we accept in .eh_frame_hdr, or 0. */
static size_t eh_enc_size(unsigned enc)
{
	switch (enc & 0x0f) {
	case 0x03: /* udata4 */
	case 0x0b: /* sdata4 */
		return 4;
	case 0x00: /* absptr */
	case 0x04: /* udata8 */
	case 0x0c: /* sdata8 */
		return 8;
	default:
		return 0;
	}
}

/*
 * Describe the object whose mapping m holds ip: its extent (from its
 * program headers) and the binary-search table of its .eh_frame_hdr, all
 * read from the process. The object's ELF header is at m.start - m.offset
 * for a file mapping (where the loader put file offset 0), at m.start for
 * an anonymous one (the vDSO, or code mapped with its headers). Objects
 * without a usable table get has_table = false: frames in them are "no
 * info", which triggers the conservative scan.
 */
static int obj_describe(struct safety_ctx *c, const struct safety_map *m, uint64_t ip,
			struct safety_obj *o)
{
	struct safety_map first;
	Elf64_Ehdr eh;
	Elf64_Phdr ph[HP_ELF_PHDR_MAX];
	uint64_t base, bias = 0, hdr = 0, fde_count, end = 0;
	unsigned nph;
	unsigned char h[4];
	bool have_load = false;
	size_t ptr_size;
	uint32_t count32;
	int r;

	memset(o, 0, sizeof(*o));
	o->start = m->start;
	o->end = m->end;
	if (m->inode != 0) {
		if (m->offset > m->start)
			return 0;
		base = m->start - m->offset;
		r = map_at(c, base, &first);
		if (r == -ENOENT)
			return 0;
		if (r < 0)
			return r;
		if (first.start != base || first.offset != 0 || !same_file(&first, m))
			return 0; /* not laid out by a loader: no guess */
	} else {
		base = m->start;
	}

	r = hp_elf_headers_read(ctx_mem_read, c, base, (m->inode ? first.end : m->end) - base, &eh,
				ph);
	if (r < 0)
		return 0;
	nph = (unsigned)r;
	for (unsigned i = 0; i < nph; i++) {
		if (ph[i].p_type != PT_LOAD)
			continue;
		if (!have_load) {
			/* the first PT_LOAD maps file offset 0 at base (every
			 * linker lays it out so; anything else is not guessed) */
			if (ph[i].p_offset != 0)
				return 0;
			bias = base - (ph[i].p_vaddr & ~(uint64_t)(SAFETY_PAGE - 1));
			have_load = true;
		}
		/* bounds of a sane object: no segment over 1 TiB, none past half
		 * of the 47-bit user space (anything else is not guessed) */
		if (ph[i].p_memsz > (1ull << 40) || ph[i].p_vaddr > (1ull << 46))
			return 0;
		if (bias + ph[i].p_vaddr + ph[i].p_memsz > end)
			end = bias + ph[i].p_vaddr + ph[i].p_memsz;
	}
	if (!have_load || ip < base || ip >= end)
		return 0;
	o->start = base;
	o->end = end;
	for (unsigned i = 0; i < nph; i++)
		if (ph[i].p_type == PT_GNU_EH_FRAME)
			hdr = bias + ph[i].p_vaddr;
	if (!hdr || hdr < o->start || hdr >= o->end)
		return 0;

	/* version, eh_frame_ptr_enc, fde_count_enc, table_enc */
	if (mem_read(c, hdr, h, sizeof(h)) < 0 || h[0] != 1 || h[3] != 0x3b /* datarel|sdata4 */)
		return 0;
	ptr_size = eh_enc_size(h[1]);
	if (!ptr_size || (h[2] & 0x0f) != 0x03 || (h[2] & 0x70) != 0)
		return 0; /* only the udata4 count every linker writes */
	if (mem_read(c, hdr + 4 + ptr_size, &count32, sizeof(count32)) < 0)
		return 0;
	fde_count = count32;
	if (fde_count == 0 || fde_count > (o->end - hdr) / 8)
		return 0;

	o->di.format = UNW_INFO_FORMAT_REMOTE_TABLE;
	o->di.start_ip = o->start;
	o->di.end_ip = o->end;
	o->di.gp = 0;
	o->di.u.rti.name_ptr = 0;
	o->di.u.rti.segbase = hdr;
	o->di.u.rti.table_data = hdr + 4 + ptr_size + 4;
	o->di.u.rti.table_len = fde_count * 8 / sizeof(unw_word_t);
	o->table_addr = o->di.u.rti.table_data;
	o->n_entries = fde_count;
	o->has_table = true;
	if (fde_count <= SAFETY_MAX_TABLE) {
		o->table = malloc(fde_count * 8);
		if (o->table && mem_read_direct(c, o->table_addr, o->table, fde_count * 8) < 0) {
			free(o->table);
			o->table = NULL;
			o->has_table = false;
		}
	}
	return 0;
}

/* The object holding ip (NULL: none, or an error in the slot and *ret_err). */
static const struct safety_obj *obj_lookup(struct safety_ctx *c, uint64_t ip, int *ret_err)
{
	struct safety_map m;
	struct safety_obj o;
	int r;

	*ret_err = 0;
	for (size_t i = 0; i < c->n_objs; i++)
		if (ip >= c->objs[i].start && ip < c->objs[i].end)
			return &c->objs[i];
	r = map_at(c, ip, &m);
	if (r < 0 || !m.exec) {
		*ret_err = r == -ENOENT ? 0 : r;
		return NULL;
	}
	r = obj_describe(c, &m, ip, &o);
	if (r < 0) {
		*ret_err = r;
		return NULL;
	}
	if (c->n_objs == c->cap_objs) {
		size_t ncap = c->cap_objs ? 2 * c->cap_objs : 16;
		struct safety_obj *p = realloc(c->objs, ncap * sizeof(*p));

		if (!p) {
			*ret_err = hp_err(-ENOMEM, "out of memory");
			return NULL;
		}
		c->objs = p;
		c->cap_objs = ncap;
	}
	c->objs[c->n_objs] = o;
	return &c->objs[c->n_objs++];
}

/* ---- accessors --------------------------------------------------------- */

static int acc_find_proc_info(unw_addr_space_t as, unw_word_t ip, unw_proc_info_t *pi,
			      int need_unwind_info, void *arg)
{
	struct safety_ctx *c = arg;
	const struct safety_obj *o;
	unw_dyn_info_t di;
	int r;

	o = obj_lookup(c, ip, &r);
	if (r < 0 && !c->err)
		c->err = r; /* a vanished process, not a missing table */
	if (!o || !o->has_table) {
		c->noinfo = true;
		return -UNW_ENOINFO;
	}
	di = o->di;
	if (o->table) {
		/* Search here; hand libunwind the one entry found. */
		int64_t key = (int64_t)(ip - di.u.rti.segbase);
		size_t lo = 0, hi = o->n_entries;

		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;

			if (o->table[2 * mid] <= key)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo == 0) {
			c->noinfo = true;
			return -UNW_ENOINFO;
		}
		di.u.rti.table_data = o->table_addr + (lo - 1) * 8;
		di.u.rti.table_len = 8 / sizeof(unw_word_t);
	}
	r = UNW_OBJ(dwarf_search_unwind_table)(as, ip, &di, pi, need_unwind_info, arg);
	if (r < 0 || ip < pi->start_ip || ip >= pi->end_ip) {
		c->noinfo = true;
		return -UNW_ENOINFO;
	}
	return 0;
}

/* Table-format info is freed by libunwind itself; we hand out nothing else. */
static void acc_put_unwind_info(unw_addr_space_t as, unw_proc_info_t *pi, void *arg)
{
}

/* No support for libunwind's dynamic registration (_U_dyn_register). */
static int acc_get_dyn_info_list_addr(unw_addr_space_t as, unw_word_t *dilap, void *arg)
{
	return -UNW_ENOINFO;
}

static int acc_access_mem(unw_addr_space_t as, unw_word_t addr, unw_word_t *val, int write,
			  void *arg)
{
	if (write)
		return -UNW_EINVAL;
	return mem_read(arg, addr, val, sizeof(*val)) < 0 ? -UNW_EINVAL : 0;
}

#if defined(__x86_64__)
static int acc_access_reg(unw_addr_space_t as, unw_regnum_t reg, unw_word_t *val, int write,
			  void *arg)
{
	const struct user_regs_struct *r = &((struct safety_ctx *)arg)->regs;

	if (write)
		return -UNW_EREADONLYREG;
	switch (reg) {
	case UNW_X86_64_RAX: *val = r->rax; break;
	case UNW_X86_64_RDX: *val = r->rdx; break;
	case UNW_X86_64_RCX: *val = r->rcx; break;
	case UNW_X86_64_RBX: *val = r->rbx; break;
	case UNW_X86_64_RSI: *val = r->rsi; break;
	case UNW_X86_64_RDI: *val = r->rdi; break;
	case UNW_X86_64_RBP: *val = r->rbp; break;
	case UNW_X86_64_RSP: *val = r->rsp; break;
	case UNW_X86_64_R8: *val = r->r8; break;
	case UNW_X86_64_R9: *val = r->r9; break;
	case UNW_X86_64_R10: *val = r->r10; break;
	case UNW_X86_64_R11: *val = r->r11; break;
	case UNW_X86_64_R12: *val = r->r12; break;
	case UNW_X86_64_R13: *val = r->r13; break;
	case UNW_X86_64_R14: *val = r->r14; break;
	case UNW_X86_64_R15: *val = r->r15; break;
	case UNW_X86_64_RIP: *val = r->rip; break;
	default: return -UNW_EBADREG;
	}
	return 0;
}
#else
static int acc_access_reg(unw_addr_space_t as, unw_regnum_t reg, unw_word_t *val, int write,
			  void *arg)
{
	return _UPT_access_reg(as, reg, val, write, ((struct safety_ctx *)arg)->upt);
}
#endif

/* The remaining accessors are libunwind's, given their own argument. */
static int acc_access_fpreg(unw_addr_space_t as, unw_regnum_t reg, unw_fpreg_t *val, int write,
			    void *arg)
{
	return _UPT_access_fpreg(as, reg, val, write, ((struct safety_ctx *)arg)->upt);
}

static int acc_resume(unw_addr_space_t as, unw_cursor_t *cursor, void *arg)
{
	return -UNW_EINVAL; /* we only look */
}

static int acc_get_proc_name(unw_addr_space_t as, unw_word_t addr, char *buf, size_t len,
			     unw_word_t *offp, void *arg)
{
	return _UPT_get_proc_name(as, addr, buf, len, offp, ((struct safety_ctx *)arg)->upt);
}

/* ---- ranges ------------------------------------------------------------ */

struct safety_sorted {
	const struct safety_range *r;
};

static int range_cmp(const void *a, const void *b)
{
	const struct safety_range *x = ((const struct safety_sorted *)a)->r;
	const struct safety_range *y = ((const struct safety_sorted *)b)->r;

	return x->start < y->start ? -1 : x->start > y->start;
}

struct safety_set {
	struct safety_sorted *s; /* by start */
	size_t n;
	uint64_t max_len;        /* longest range: bounds the backward walk */
	uint64_t lo, hi;         /* lowest start, highest end: most stack words
				  * (numbers, data pointers) fall outside */
};

/* Which addresses of [start, end] count, by what the address is. */
enum safety_match {
	MATCH_PC,     /* start <= a < end: a program counter */
	MATCH_RA,     /* start <= a <= end: an unwound return address */
	MATCH_WORD,   /* start < a < end: a word of the stack, see stack_word_hit */
};

/*
 * A range holding addr as `how` says, or NULL. Ranges may overlap (a
 * patch region and a function in it): walk back from the last start <=
 * addr while a range could still reach addr.
 */
static const struct safety_range *range_find(const struct safety_set *set, uint64_t addr,
					     enum safety_match how)
{
	size_t lo = 0, hi = set->n;

	if (addr < set->lo || addr > set->hi)
		return NULL;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (set->s[mid].r->start <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	while (lo-- > 0) {
		const struct safety_range *r = set->s[lo].r;

		if ((addr < r->end || (how == MATCH_RA && addr == r->end)) &&
		    (addr != r->start || how != MATCH_WORD))
			return r;
		if (addr - r->start > set->max_len)
			break;
	}
	return NULL;
}

/* ---- one thread -------------------------------------------------------- */

/*
 * "function NAME active in thread TID" (apply-int.h): as is when the
 * thread executes in it (its program counter); with how appended in
 * parentheses when it is due to return into it ("return address at frame
 * N", or where the stack scan saw it).
 */
static int busy(const struct safety_range *r, pid_t tid, const char *how)
{
	const char *name = r->name ? r->name : "?";

	if (!how)
		return hp_err(-EBUSY, "function %s active in thread %d", name, (int)tid);
	return hp_err(-EBUSY, "function %s active in thread %d (%s)", name, (int)tid, how);
}

/* The stack buffer holds at least len bytes. */
static int stack_room(struct safety_ctx *c, size_t len)
{
	uint64_t *v;
	size_t cap;

	if (len <= c->stack_cap)
		return 0;
	cap = c->stack_cap ? c->stack_cap : 16384;
	while (cap < len)
		cap *= 2;
	v = realloc(c->stack, cap);
	if (!v)
		return hp_err(-ENOMEM, "out of memory");
	c->stack = v;
	c->stack_cap = cap;
	return 0;
}

/*
 * The stack read to where the mapping list of the session's start (taken
 * before the stop) says sp's mapping ends, b, with one more word, at b,
 * in the same system call: when [sp, b) reads whole and the word at b
 * does not read at all, no readable memory goes on from b, so every word
 * of sp's mapping as it is now, and more perhaps, has been read (a
 * mapping has one protection throughout, and the pages of live frames
 * have been written by the thread, so they read). Any other outcome (sp
 * in no listed mapping, a short read, memory readable at b: a mapping
 * that grew or was replaced since the list) asks the kernel instead.
 * Returns 1 when it read the stack, 0 when not, or a negative errno.
 */
static int read_stack_hint(struct safety_ctx *c, uint64_t sp, size_t max, size_t *ret_len)
{
	const struct safety_map *m = maps_find(c->hints, c->n_hints, sp);
	struct iovec local[2], remote[2];
	uint64_t past;
	size_t len;
	ssize_t n;
	int r;

	if (!m)
		return 0;
	len = m->end - sp;
	if (len > max)
		return 0;
	/*
	 * A readable mapping right after it (what sits above a thread's stack
	 * often is): the word past the end would read, and prove nothing.
	 * The kernel is asked at once instead of after a read in vain.
	 */
	if (m + 1 < c->hints + c->n_hints && m[1].start == m->end && m[1].read)
		return 0;
	r = stack_room(c, len ? len : 1);
	if (r < 0)
		return r;
	local[0] = (struct iovec){ c->stack, len };
	local[1] = (struct iovec){ &past, sizeof(past) };
	remote[0] = (struct iovec){ (void *)(uintptr_t)sp, len };
	remote[1] = (struct iovec){ (void *)(uintptr_t)m->end, sizeof(past) };
	n = process_vm_readv(c->pid, local, 2, remote, 2, 0);
	if (n < 0 && errno == ESRCH)
		return -ESRCH;
	if (n != (ssize_t)len)
		return 0;
	*ret_len = len;
	return 1;
}

/*
 * Read the stack of thread tid from sp (8-aligned) to the end of the
 * mapping holding it, into c->stack. The thread is busy (-EBUSY, message
 * set) when sp is in no mapping or the stack is deeper than max: nothing
 * can be said of it.
 */
static int read_stack(struct safety_ctx *c, pid_t tid, uint64_t sp, size_t max, const char *why,
		      size_t *ret_n)
{
	struct safety_map m;
	size_t len;
	int r;

	r = c->n_hints ? read_stack_hint(c, sp, max, &len) : 0;
	if (r != 0)
		goto done;
	r = map_at(c, sp, &m);
	if (r == -ENOENT) {
		r = hp_err(-EBUSY, "thread %d: stack pointer 0x%" PRIx64 " in no mapping (%s)",
			   (int)tid, sp, why);
		goto fail;
	}
	if (r < 0)
		goto fail;
	len = m.end - sp;
	if (len > max) {
		r = hp_err(-EBUSY, "thread %d: stack of %zu bytes too deep to scan (%s)", (int)tid,
			   len, why);
		goto fail;
	}
	r = stack_room(c, len ? len : 1);
	if (r < 0)
		goto fail;
	r = mem_read_direct(c, sp, c->stack, len);
done:
	if (r == -ESRCH) {
		r = hp_err(-ESRCH, "thread %d vanished", (int)tid);
		goto fail;
	}
	if (r < 0) {
		r = hp_err(-EBUSY, "thread %d: cannot read its stack: %s (%s)", (int)tid,
			   strerror(-r), why);
		goto fail;
	}
	*ret_n = len / sizeof(uint64_t);
	return 0;
fail:
	return r;
}

/*
 * The word may be a return address into a range: start < word < end. A
 * word equal to a function's first byte is a function pointer (struct
 * pthread's start routine, a callback): a return address follows a call
 * instruction, so it never equals the start of the function it returns
 * into. One equal to its end is a pointer to the next function; as a
 * return address it would follow a call ending the function, a call that
 * never returns (nothing follows it to return to).
 */
static const struct safety_range *stack_word_hit(const struct safety_set *s, uint64_t word)
{
	return range_find(s, word, MATCH_WORD);
}

/* Scan the stack words of thread tid from sp to the end of its mapping. */
static int scan_stack(struct safety_ctx *c, pid_t tid, uint64_t sp, const struct safety_set *s,
		      const char *why)
{
	size_t n_words = 0;
	char how[160];
	int r;

	sp &= ~(uint64_t)7;
	r = read_stack(c, tid, sp, SAFETY_MAX_SCAN, why, &n_words);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n_words; i++) {
		const struct safety_range *hit = stack_word_hit(s, c->stack[i]);

		if (hit) {
			snprintf(how, sizeof(how), "address on the stack at sp+0x%zx, %s",
				 i * sizeof(uint64_t), why);
			return busy(hit, tid, how);
		}
	}
	return 0;
}

#if defined(__x86_64__)
/* struct _fpstate's sw_reserved.magic1 (asm/sigcontext.h): the kernel
 * writes it in the FP state of every signal frame (XSAVE machines). */
#define SAFETY_FPX_MAGIC1 0x46505853u
#define SAFETY_FPX_MAGIC1_OFF 464

/*
 * The fast path. Every return address of the frames a thread has on its
 * stack is a word between its stack pointer and the end of the stack, so
 * when no word there is in a range, no frame on that stack returns into
 * one and there is nothing to unwind. The one way frames escape that
 * stack is a signal handler running on a sigaltstack (the interrupted
 * frames stay on the normal stack): a signal frame on the scanned stack
 * (a word pointing, 64-byte aligned, at an FP state with the kernel's
 * magic) sends the thread to the unwinder, which follows the signal frame.
 * *ret_clean is false when a word is in a range or a signal frame is
 * there: the unwinder then decides (a stale word in a dead slot is not
 * an activation).
 */
static int stack_clean(struct safety_ctx *c, pid_t tid, uint64_t sp, const struct safety_set *s,
		       bool *ret_clean)
{
	const uint64_t *words;
	uint64_t top, lo = s->lo, hi = s->hi;
	size_t n_words = 0;
	int r;

	sp &= ~(uint64_t)7;
	r = read_stack(c, tid, sp, SAFETY_MAX_FAST, "fast path", &n_words);
	if (r == -EBUSY) {
		/* let the unwinder try, and say why if it cannot either */
		hp_err_clear();
		*ret_clean = false;
		return 0;
	}
	if (r < 0)
		return r;
	words = c->stack;
	top = sp + n_words * sizeof(uint64_t);
	for (size_t i = 0; i < n_words; i++) {
		uint64_t w = words[i];

		/* most words (numbers, data pointers) are outside every range:
		 * one comparison each, not a search */
		if (w > lo && w < hi && stack_word_hit(s, w)) {
			*ret_clean = false;
			return 0;
		}
		if ((w & 63) == 0 && w >= sp && w < top &&
		    w - sp + SAFETY_FPX_MAGIC1_OFF + 4 <= top - sp) {
			uint32_t magic;

			memcpy(&magic, (const char *)words + (w - sp) + SAFETY_FPX_MAGIC1_OFF,
			       sizeof(magic));
			if (magic == SAFETY_FPX_MAGIC1) {
				*ret_clean = false;
				return 0;
			}
		}
	}
	*ret_clean = true;
	return 0;
}
#endif

static int check_thread(struct safety_ctx *c, pid_t tid, const struct safety_set *s,
			const uint64_t *regs)
{
	const struct safety_range *hit;
	unw_cursor_t cur;
	unw_word_t ip = 0, sp = 0;
	char how[96];
	int r, frame;

	c->tid = tid;
	c->noinfo = false;
#if defined(__x86_64__)
	if (regs) {
		/* the registers the stop already read (struct user_regs_struct) */
		memcpy(&c->regs, regs, sizeof(c->regs));
	} else if (ptrace(PTRACE_GETREGS, tid, NULL, &c->regs) < 0) {
		r = errno == ESRCH ? hp_err(-ESRCH, "thread %d vanished", (int)tid)
				   : hp_err(-errno, "thread %d: read registers: %s", (int)tid,
					    strerror(errno));
		goto out;
	}
	ip = c->regs.rip;
	sp = c->regs.rsp;
	hit = range_find(s, ip, MATCH_PC);
	/* In a system call the kernel restarts by rewinding pc over the
	 * 2-byte syscall instruction (orig_rax >= 0 says "in a syscall"). */
	if (!hit && (int64_t)c->regs.orig_rax >= 0)
		hit = range_find(s, ip - 2, MATCH_PC);
	if (hit) {
		r = busy(hit, tid, NULL); /* its program counter */
		goto out;
	}
	{
		bool clean;

		r = stack_clean(c, tid, sp, s, &clean);
		if (r < 0 || clean)
			goto out;
	}
#endif
	/* the unwinder caches pages, tables and mappings from here on */
	c->dirty = true;
	c->upt = _UPT_create(tid);
	if (!c->upt) {
		r = hp_err(-ENOMEM, "out of memory");
		goto out;
	}
	r = unw_init_remote(&cur, c->as, c);
	if (r < 0) {
		r = scan_stack(c, tid, sp, s, "unwinding could not start");
		goto out;
	}
#if !defined(__x86_64__)
	if (unw_get_reg(&cur, UNW_REG_IP, &ip) < 0 || unw_get_reg(&cur, UNW_REG_SP, &sp) < 0) {
		r = hp_err(-ESRCH, "thread %d vanished", (int)tid);
		goto out;
	}
	hit = range_find(s, ip, MATCH_PC);
	if (hit) {
		r = busy(hit, tid, NULL); /* its program counter */
		goto out;
	}
#endif
	for (frame = 1;; frame++) {
		if (frame > SAFETY_MAX_FRAMES) {
			r = scan_stack(c, tid, sp, s, "beyond the frame bound");
			goto out;
		}
		r = unw_step(&cur);
		if (c->err) {
			r = c->err;
			goto out;
		}
		if (c->noinfo) {
			/* The frame at sp had no unwind info: whatever unw_step
			 * guessed, the callers above sp are not known. */
			r = scan_stack(c, tid, sp, s, "frames without unwind info");
			goto out;
		}
		if (r == 0)
			break; /* the outermost frame, with info all the way */
		if (r < 0) {
			r = scan_stack(c, tid, sp, s, "unwinding failed");
			goto out;
		}
		if (unw_get_reg(&cur, UNW_REG_IP, &ip) < 0 || unw_get_reg(&cur, UNW_REG_SP, &sp) < 0) {
			r = scan_stack(c, tid, sp, s, "unwinding failed");
			goto out;
		}
		if (ip == 0)
			break;
		hit = range_find(s, ip, MATCH_RA);
		if (hit) {
			snprintf(how, sizeof(how), "return address at frame %d", frame);
			r = busy(hit, tid, how);
			goto out;
		}
	}
	r = 0;
out:
	if (c->upt) {
		_UPT_destroy(c->upt);
		c->upt = NULL;
	}
	return r;
}

/* ---- entry ------------------------------------------------------------- */

/*
 * Per calling thread, reused by every check made on that thread: the unw
 * address space (flushed at the start of each check) and the page-cache
 * memory (emptied at the start of each check). Creating an address space
 * costs a large calloc, and a fresh 256 KiB cache a page fault per page.
 * Used from a single thread, the address space can run with
 * UNW_CACHE_PER_THREAD, whose cache needs no lock where libunwind is
 * built with per-thread caches (elsewhere it is the global one, locked).
 * The accessors' argument is per check, given to unw_init_remote.
 */
struct safety_tls {
	unw_addr_space_t as;
	unsigned char *pages;
};

static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static __thread struct safety_tls *tls;

static void tls_destroy(void *arg)
{
	struct safety_tls *t = arg;

	if (t->as)
		unw_destroy_addr_space(t->as);
	free(t->pages);
	free(t);
}

static void tls_key_init(void)
{
	if (pthread_key_create(&tls_key, tls_destroy) != 0)
		abort();
}

static struct safety_tls *thread_state(void)
{
	unw_accessors_t acc;
	struct safety_tls *t;

	if (tls)
		return tls;
	pthread_once(&tls_once, tls_key_init);
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->pages = malloc(SAFETY_CACHE_PAGES * SAFETY_PAGE);
	/* _UPT_accessors with memory, registers and table lookup replaced */
	acc = _UPT_accessors;
	acc.find_proc_info = acc_find_proc_info;
	acc.put_unwind_info = acc_put_unwind_info;
	acc.get_dyn_info_list_addr = acc_get_dyn_info_list_addr;
	acc.access_mem = acc_access_mem;
	acc.access_reg = acc_access_reg;
	acc.access_fpreg = acc_access_fpreg;
	acc.resume = acc_resume;
	acc.get_proc_name = acc_get_proc_name;
	t->as = unw_create_addr_space(&acc, 0);
	if (!t->pages || !t->as) {
		tls_destroy(t);
		return NULL;
	}
	unw_set_caching_policy(t->as, UNW_CACHE_PER_THREAD);
	pthread_setspecific(tls_key, t);
	tls = t;
	return t;
}

/*
 * A check spread over a stop (engine.c checks each thread as soon as it is
 * in its ptrace-stop, while the others are still being stopped): the ranges
 * sorted once, the mappings descriptor and the buffers kept. Threads not
 * yet stopped may still run meanwhile (dlopen, munmap, JIT): nothing read
 * from memory for one thread is trusted for the next (page cache, unwind
 * tables, parsed maps and libunwind's cache are dropped between threads of
 * a live session).
 */
struct safety_session {
	struct safety_ctx c;
	struct safety_set set;
	bool live;
	bool first;
};

static void session_forget(struct safety_session *s)
{
	struct safety_ctx *c = &s->c;

	if (!c->dirty)
		return; /* the fast path kept nothing */
	c->dirty = false;
	for (unsigned i = 0; i < SAFETY_CACHE_PAGES; i++)
		c->cache[i].addr = UINT64_MAX;
	for (size_t i = 0; i < c->n_objs; i++)
		free(c->objs[i].table);
	free(c->objs);
	c->objs = NULL;
	c->n_objs = c->cap_objs = 0;
	free(c->maps);
	c->maps = NULL;
	c->n_maps = 0;
	/* the flush bumps the generation, which empties the register-state
	 * cache lazily on first use */
	unw_flush_cache(c->as, 0, 0);
}

void safety_end(struct safety_session *s)
{
	if (!s)
		return;
	if (s->c.memfd >= 0)
		close(s->c.memfd);
	if (s->c.mapsfd >= 0 && !s->c.mapsfd_lent)
		op_close_late(s->c.mapsfd);
	free(s->c.maps);
	free(s->c.hints);
	free(s->c.stack);
	for (size_t i = 0; i < s->c.n_objs; i++)
		free(s->c.objs[i].table);
	free(s->c.objs);
	free(s->set.s);
	free(s);
}

/* The stack hints of a live session from a mapping list the caller read. */
static void hints_from(struct safety_ctx *c, const struct proc_maps *maps)
{
	c->hints = malloc((maps->n ? maps->n : 1) * sizeof(*c->hints));
	if (!c->hints)
		return;
	for (size_t i = 0; i < maps->n; i++) {
		const struct proc_map *pm = &maps->v[i];

		c->hints[i] = (struct safety_map){ pm->start, pm->end, pm->offset, pm->inode,
						   pm->dev_major, pm->dev_minor,
						   (pm->prot & PROT_EXEC) != 0,
						   (pm->prot & PROT_READ) != 0 };
	}
	c->n_hints = maps->n;
}

static int begin(pid_t pid, const struct safety_range *ranges, size_t n_ranges, bool live,
		 const struct safety_session *model, const struct proc_maps *maps, int maps_fd,
		 struct safety_session **ret)
{
	struct safety_session *s;
	struct safety_tls *t;
	int r;

	s = calloc(1, sizeof(*s));
	if (!s)
		return hp_err(-ENOMEM, "out of memory");
	s->c.pid = pid;
	s->c.memfd = -1;
	s->c.mapsfd = maps_fd;
	s->c.mapsfd_lent = maps_fd >= 0;
#ifdef HP_TEST_HOOKS
	/* The parsed-text path is what kernels before 6.11 take; in test
	 * builds this lets the tests and the bench run it on newer ones. */
	if (getenv("HP_SAFETY_MAPS_TEXT"))
		s->c.query = SAFETY_QUERY_NO;
#endif
	s->live = live;
	s->first = true;
	s->set = (struct safety_set){ NULL, n_ranges, 0, UINT64_MAX, 0 };
	s->set.s = malloc((n_ranges ? n_ranges : 1) * sizeof(*s->set.s));
	t = thread_state();
	if (!s->set.s || !t) {
		r = hp_err(-ENOMEM, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < n_ranges; i++) {
		s->set.s[i].r = &ranges[i];
		if (ranges[i].end > ranges[i].start && ranges[i].end - ranges[i].start > s->set.max_len)
			s->set.max_len = ranges[i].end - ranges[i].start;
		if (ranges[i].start < s->set.lo)
			s->set.lo = ranges[i].start;
		if (ranges[i].end > s->set.hi)
			s->set.hi = ranges[i].end;
	}
	qsort(s->set.s, n_ranges, sizeof(*s->set.s), range_cmp);
	for (unsigned i = 0; i < SAFETY_CACHE_PAGES; i++) {
		s->c.cache[i].addr = UINT64_MAX;
		s->c.cache[i].data = t->pages + (size_t)i * SAFETY_PAGE;
	}
	s->c.as = t->as;
	/* Nothing learnt about another process, or this one earlier, is
	 * trusted. */
	unw_flush_cache(s->c.as, 0, 0);
	/* Before the stop (a live session starts then): where each thread's
	 * stack ends, to be confirmed as each is read (read_stack_hint).
	 * Without it every thread asks the kernel for its stack's mapping. */
	if (live && model && model->c.n_hints) {
		s->c.hints = malloc(model->c.n_hints * sizeof(*s->c.hints));
		if (s->c.hints) {
			memcpy(s->c.hints, model->c.hints, model->c.n_hints * sizeof(*s->c.hints));
			s->c.n_hints = model->c.n_hints;
		}
	} else if (live && maps) {
		hints_from(&s->c, maps);
	} else if (live && maps_parse(&s->c, &s->c.hints, &s->c.n_hints) < 0) {
		hp_err_clear();
	}
	*ret = s;
	return 0;
fail:
	safety_end(s);
	return r;
}

int safety_begin(pid_t pid, const struct safety_range *ranges, size_t n_ranges, bool live,
		 struct safety_session **ret)
{
	return begin(pid, ranges, n_ranges, live, NULL, NULL, -1, ret);
}

int safety_begin_hinted(pid_t pid, const struct safety_range *ranges, size_t n_ranges,
			const struct proc_maps *maps, int maps_fd, struct safety_session **ret)
{
	return begin(pid, ranges, n_ranges, true, NULL, maps, maps_fd, ret);
}

int safety_begin_like(const struct safety_session *model, const struct safety_range *ranges,
		      size_t n_ranges, struct safety_session **ret)
{
	return begin(model->c.pid, ranges, n_ranges, model->live, model, NULL, -1, ret);
}

int safety_thread(struct safety_session *s, pid_t tid, const uint64_t *regs)
{
	if (s->set.n == 0)
		return 0;
	if (s->live && !s->first)
		session_forget(s);
	s->first = false;
	return check_thread(&s->c, tid, &s->set, regs);
}

int safety_check(pid_t pid, const pid_t *tids, size_t n_tids, const struct safety_range *ranges,
		 size_t n_ranges)
{
	struct safety_session *s = NULL;
	int r;

	if (n_ranges == 0 || n_tids == 0)
		return 0;
	r = safety_begin(pid, ranges, n_ranges, false, &s);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n_tids; i++) {
		r = safety_thread(s, tids[i], NULL);
		if (r < 0)
			break;
	}
	safety_end(s);
	return r;
}

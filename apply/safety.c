/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * safety.c: is any thread of a stopped process executing in, or due to
 * return into, one of the functions about to be switched?
 *
 * For every thread: its program counter, then every return address of its
 * stack, unwound with libunwind's remote (ptrace) flavour. This runs while
 * every thread of the target is held, so it is built for speed:
 *
 *  - one unw address space per check, with UNW_CACHE_GLOBAL: threads
 *    parked in the same places (a pool of workers) share the parsed CFI;
 *  - the accessors are _UPT_accessors with four replaced: memory is read
 *    with process_vm_readv through a small page cache (libunwind's own
 *    does one PTRACE_PEEKDATA per word), registers come from one
 *    PTRACE_GETREGS per thread (libunwind's does one PTRACE_PEEKUSER per
 *    register), and unwind tables are found in the process's own memory
 *    (ELF header, PT_GNU_EH_FRAME, .eh_frame_hdr search table) instead of
 *    re-reading /proc/PID/maps and mmapping each object's file whenever
 *    the unwinder crosses from one object to another. Reading from memory
 *    also works across mount namespaces and for deleted files.
 *
 * The conservative rule (a false "busy" costs a retry, a false "safe"
 * corrupts the target): an unwinding is trusted only when it reaches the
 * outermost frame (unw_step() returns 0) with unwind info for every frame
 * on the way. When a frame has no unwind info (hand-written assembly, JIT
 * code, a stripped .eh_frame), when unw_step() fails, or when the frame
 * bound (SAFETY_MAX_FRAMES) is hit, the frames above the last trusted one
 * are not guessed: every 8-byte word between that frame's stack pointer
 * and the end of the stack mapping is compared with the ranges. A word
 * that looks like an address inside a range (a return address, or a stale
 * one left in a dead slot) makes the thread busy. The scan is bounded
 * (SAFETY_MAX_SCAN); a stack deeper than that is busy too.
 *
 * libunwind's x86_64 unw_step() falls back to frame-pointer heuristics
 * when a frame has no CFI and may then stop "cleanly" without having seen
 * the real callers: that is why the absence of info is tracked here, in
 * our find_proc_info, rather than inferred from unw_step()'s result.
 *
 * Range tests: the program counter of frame 0 counts when start <= pc <
 * end (pc == start: stopped on the first bytes, about to run the function),
 * or when the thread sits in a system call that the kernel will restart by
 * rewinding pc over the 2-byte syscall instruction into the range. A
 * return address ra counts when start <= ra <= end: ra - 1 is the call
 * instruction (ra == end: a call as the function's last instruction), and
 * ra itself covers a frame interrupted by a signal, whose "return address"
 * is the exact interrupted pc.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
/* Page cache for the unwinder's memory reads, per check. */
#define SAFETY_PAGE 4096u
#define SAFETY_CACHE_PAGES 64u
/* Bounds on what is read from the target. */
#define SAFETY_MAX_MAPS_BYTES (64u << 20)
#define SAFETY_MAX_PHNUM 128u

/* The libunwind helper our find_proc_info hands each object's table to. */
extern int UNW_OBJ(dwarf_search_unwind_table)(unw_addr_space_t as, unw_word_t ip,
					      unw_dyn_info_t *di, unw_proc_info_t *pi,
					      int need_unwind_info, void *arg);

struct safety_map {
	uint64_t start, end, offset, inode;
	unsigned dev_major, dev_minor;
	bool exec;
	bool vdso;
};

/* An ELF object found in the process, and its unwind table (if any). */
struct safety_obj {
	uint64_t start, end;
	bool has_table;
	unw_dyn_info_t di;
};

struct safety_page {
	uint64_t addr; /* page address, or UINT64_MAX when empty */
	unsigned char *data;
};

struct safety_ctx {
	pid_t pid;
	int memfd; /* /proc/PID/mem, opened only if process_vm_readv fails */
	struct safety_page cache[SAFETY_CACHE_PAGES];
	unsigned char *cache_mem;

	struct safety_map *maps;
	size_t n_maps;
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
	/* Not readable to process_vm_readv (e.g. execute-only text):
	 * /proc/PID/mem reads through protections. */
	if (c->memfd < 0) {
		char path[64];

		snprintf(path, sizeof(path), "/proc/%d/mem", (int)c->pid);
		c->memfd = open(path, O_RDONLY | O_CLOEXEC);
		if (c->memfd < 0)
			return -errno;
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

/* ---- mappings ---------------------------------------------------------- */

static int maps_load(struct safety_ctx *c)
{
	struct hp_buf text = HP_BUF_INIT;
	char path[64];
	char *line, *next;
	size_t cap = 0;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)c->pid);
	r = hp_read_file(path, SAFETY_MAX_MAPS_BYTES, &text);
	if (r < 0) {
		r = r == -ENOENT ? hp_err(-ESRCH, "process %d vanished", (int)c->pid)
				 : hp_err(r, "read %s: %s", path, strerror(-r));
		goto out;
	}
	for (line = text.data; line && *line; line = next) {
		struct safety_map m = { 0 };
		unsigned long long start, end, offset, inode;
		char perms[5];
		int name = 0;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (sscanf(line, "%llx-%llx %4s %llx %x:%x %llu %n", &start, &end, perms, &offset,
			   &m.dev_major, &m.dev_minor, &inode, &name) < 7)
			continue;
		m.start = start;
		m.end = end;
		m.offset = offset;
		m.inode = inode;
		m.exec = perms[2] == 'x';
		m.vdso = name > 0 && strcmp(line + name, "[vdso]") == 0;
		if (c->n_maps == cap) {
			size_t ncap = cap ? 2 * cap : 64;
			struct safety_map *p = realloc(c->maps, ncap * sizeof(*p));

			if (!p) {
				r = hp_err(-ENOMEM, "out of memory");
				goto out;
			}
			c->maps = p;
			cap = ncap;
		}
		c->maps[c->n_maps++] = m;
	}
	r = 0;
out:
	hp_buf_release(&text);
	return r;
}

/* The mapping holding addr (maps are sorted by address), or NULL. */
static const struct safety_map *maps_find(const struct safety_ctx *c, uint64_t addr)
{
	size_t lo = 0, hi = c->n_maps;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (addr < c->maps[mid].start)
			hi = mid;
		else if (addr >= c->maps[mid].end)
			lo = mid + 1;
		else
			return &c->maps[mid];
	}
	return NULL;
}

static bool maps_same_file(const struct safety_map *a, const struct safety_map *b)
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
 * Describe the object whose mapping m holds ip: its extent, and the
 * binary-search table of its .eh_frame_hdr, read from the process.
 * Objects without a usable table get has_table = false (and the frames in
 * them are "no info", which triggers the conservative scan).
 */
static void obj_describe(struct safety_ctx *c, const struct safety_map *m, struct safety_obj *o)
{
	const struct safety_map *first = m, *last = m;
	Elf64_Ehdr eh;
	Elf64_Phdr ph[SAFETY_MAX_PHNUM];
	uint64_t base, bias = 0, hdr = 0, fde_count = 0;
	unsigned char h[4];
	bool have_load = false;
	size_t ptr_size;
	uint32_t count32;

	memset(o, 0, sizeof(*o));
	o->start = m->start;
	o->end = m->end;
	if (m->inode == 0 && !m->vdso)
		return; /* anonymous executable memory: JIT or similar */
	if (!m->vdso) {
		while (first > c->maps && maps_same_file(first - 1, m) &&
		       (first - 1)->offset < first->offset)
			first--;
		while (last + 1 < c->maps + c->n_maps && maps_same_file(last + 1, m) &&
		       (last + 1)->offset > last->offset)
			last++;
	}
	o->start = first->start;
	o->end = last->end;
	if (first->offset != 0)
		return;
	base = first->start;

	if (mem_read(c, base, &eh, sizeof(eh)) < 0 || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_phentsize != sizeof(Elf64_Phdr) ||
	    eh.e_phnum == 0 || eh.e_phnum > SAFETY_MAX_PHNUM ||
	    eh.e_phoff + (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > first->end - first->start)
		return;
	if (mem_read(c, base + eh.e_phoff, ph, eh.e_phnum * sizeof(Elf64_Phdr)) < 0)
		return;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		if (ph[i].p_type == PT_LOAD && !have_load) {
			/* The first PT_LOAD maps file offset 0 at base. */
			bias = base - (ph[i].p_vaddr & ~(uint64_t)(SAFETY_PAGE - 1));
			have_load = true;
		}
	}
	for (unsigned i = 0; i < eh.e_phnum && have_load; i++)
		if (ph[i].p_type == PT_GNU_EH_FRAME)
			hdr = bias + ph[i].p_vaddr;
	if (!hdr || hdr < o->start || hdr >= o->end)
		return;

	/* version, eh_frame_ptr_enc, fde_count_enc, table_enc */
	if (mem_read(c, hdr, h, sizeof(h)) < 0 || h[0] != 1 || h[3] != 0x3b /* datarel|sdata4 */)
		return;
	ptr_size = eh_enc_size(h[1]);
	if (!ptr_size || (h[2] & 0x0f) != 0x03 || (h[2] & 0x70) != 0)
		return; /* only the udata4 count every linker writes */
	if (mem_read(c, hdr + 4 + ptr_size, &count32, sizeof(count32)) < 0)
		return;
	fde_count = count32;
	if (fde_count == 0 || hdr + 8 + ptr_size + fde_count * 8 > o->end)
		return;

	o->di.format = UNW_INFO_FORMAT_REMOTE_TABLE;
	o->di.start_ip = o->start;
	o->di.end_ip = o->end;
	o->di.gp = 0;
	o->di.u.rti.name_ptr = 0;
	o->di.u.rti.segbase = hdr;
	o->di.u.rti.table_data = hdr + 4 + ptr_size + 4;
	o->di.u.rti.table_len = fde_count * 8 / sizeof(unw_word_t);
	o->has_table = true;
}

static const struct safety_obj *obj_lookup(struct safety_ctx *c, uint64_t ip)
{
	const struct safety_map *m;
	struct safety_obj o;

	for (size_t i = 0; i < c->n_objs; i++)
		if (ip >= c->objs[i].start && ip < c->objs[i].end)
			return &c->objs[i];
	m = maps_find(c, ip);
	if (!m || !m->exec)
		return NULL;
	obj_describe(c, m, &o);
	if (c->n_objs == c->cap_objs) {
		size_t ncap = c->cap_objs ? 2 * c->cap_objs : 16;
		struct safety_obj *p = realloc(c->objs, ncap * sizeof(*p));

		if (!p)
			return NULL;
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
	const struct safety_obj *o = obj_lookup(c, ip);
	unw_dyn_info_t di;
	int r;

	if (!o || !o->has_table) {
		c->noinfo = true;
		return -UNW_ENOINFO;
	}
	di = o->di;
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
};

/*
 * The range with start <= addr < end (<= end when incl_end), or NULL.
 * Ranges may overlap (a patch region and a function in it): walk back from
 * the last start <= addr while a range could still reach addr.
 */
static const struct safety_range *range_find(const struct safety_set *set, uint64_t addr,
					     bool incl_end)
{
	size_t lo = 0, hi = set->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (set->s[mid].r->start <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	while (lo-- > 0) {
		const struct safety_range *r = set->s[lo].r;

		if (addr < r->end || (incl_end && addr == r->end))
			return r;
		if (addr - r->start > set->max_len)
			break;
	}
	return NULL;
}

/* ---- one thread -------------------------------------------------------- */

static int busy(const struct safety_range *r, pid_t tid, const char *how)
{
	return hp_err(-EBUSY, "function %s active in thread %d (%s)", r->name ? r->name : "?",
		      (int)tid, how);
}

/* Scan the stack words of thread tid from sp to the end of its mapping. */
static int scan_stack(struct safety_ctx *c, pid_t tid, uint64_t sp, const struct safety_set *s,
		      const char *why)
{
	const struct safety_map *m;
	uint64_t *words = NULL;
	size_t len, n_words;
	char how[160];
	int r;

	sp &= ~(uint64_t)7;
	m = maps_find(c, sp);
	if (!m) {
		r = hp_err(-EBUSY, "thread %d: stack pointer 0x%" PRIx64 " in no mapping (%s)",
			   (int)tid, sp, why);
		goto out;
	}
	len = m->end - sp;
	if (len > SAFETY_MAX_SCAN) {
		r = hp_err(-EBUSY, "thread %d: stack of %zu bytes too deep to scan (%s)", (int)tid,
			   len, why);
		goto out;
	}
	words = malloc(len ? len : 1);
	if (!words) {
		r = hp_err(-ENOMEM, "out of memory");
		goto out;
	}
	r = mem_read_direct(c, sp, words, len);
	if (r < 0) {
		r = r == -ESRCH ? hp_err(-ESRCH, "thread %d vanished", (int)tid)
				: hp_err(-EBUSY, "thread %d: cannot read its stack: %s (%s)",
					 (int)tid, strerror(-r), why);
		goto out;
	}
	n_words = len / sizeof(uint64_t);
	for (size_t i = 0; i < n_words; i++) {
		const struct safety_range *hit = range_find(s, words[i], true);

		if (hit) {
			snprintf(how, sizeof(how), "address on the stack at sp+0x%zx, %s",
				 i * sizeof(uint64_t), why);
			r = busy(hit, tid, how);
			goto out;
		}
	}
	r = 0;
out:
	free(words);
	return r;
}

static int check_thread(struct safety_ctx *c, pid_t tid, const struct safety_set *s)
{
	const struct safety_range *hit;
	unw_cursor_t cur;
	unw_word_t ip, sp;
	char how[96];
	int r, frame;

	c->tid = tid;
	c->noinfo = false;
#if defined(__x86_64__)
	if (ptrace(PTRACE_GETREGS, tid, NULL, &c->regs) < 0) {
		r = errno == ESRCH ? hp_err(-ESRCH, "thread %d vanished", (int)tid)
				   : hp_err(-errno, "thread %d: read registers: %s", (int)tid,
					    strerror(errno));
		goto out;
	}
	ip = c->regs.rip;
	sp = c->regs.rsp;
	hit = range_find(s, ip, false);
	/* In a system call the kernel restarts by rewinding pc over the
	 * 2-byte syscall instruction (orig_rax >= 0 says "in a syscall"). */
	if (!hit && (int64_t)c->regs.orig_rax >= 0)
		hit = range_find(s, ip - 2, false);
	if (hit) {
		r = busy(hit, tid, "program counter");
		goto out;
	}
#endif
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
	hit = range_find(s, ip, false);
	if (hit) {
		r = busy(hit, tid, "program counter");
		goto out;
	}
#endif
	for (frame = 1;; frame++) {
		if (frame > SAFETY_MAX_FRAMES) {
			r = scan_stack(c, tid, sp, s, "beyond the frame bound");
			goto out;
		}
		r = unw_step(&cur);
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
		hit = range_find(s, ip, true);
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

int safety_check(pid_t pid, const pid_t *tids, size_t n_tids, const struct safety_range *ranges,
		 size_t n_ranges)
{
	struct safety_ctx c = { .pid = pid, .memfd = -1 };
	struct safety_set set = { NULL, n_ranges, 0 };
	unw_accessors_t acc;
	int r;

	if (n_ranges == 0 || n_tids == 0)
		return 0;
	set.s = malloc(n_ranges * sizeof(*set.s));
	c.cache_mem = malloc(SAFETY_CACHE_PAGES * SAFETY_PAGE);
	if (!set.s || !c.cache_mem) {
		r = hp_err(-ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n_ranges; i++) {
		set.s[i].r = &ranges[i];
		if (ranges[i].end > ranges[i].start && ranges[i].end - ranges[i].start > set.max_len)
			set.max_len = ranges[i].end - ranges[i].start;
	}
	qsort(set.s, n_ranges, sizeof(*set.s), range_cmp);
	for (unsigned i = 0; i < SAFETY_CACHE_PAGES; i++) {
		c.cache[i].addr = UINT64_MAX;
		c.cache[i].data = c.cache_mem + (size_t)i * SAFETY_PAGE;
	}
	r = maps_load(&c);
	if (r < 0)
		goto out;

	/* _UPT_accessors with memory, registers and table lookup replaced;
	 * built on every call (cheap) rather than guarded by a lock. */
	acc = _UPT_accessors;
	acc.find_proc_info = acc_find_proc_info;
	acc.put_unwind_info = acc_put_unwind_info;
	acc.get_dyn_info_list_addr = acc_get_dyn_info_list_addr;
	acc.access_mem = acc_access_mem;
	acc.access_reg = acc_access_reg;
	acc.access_fpreg = acc_access_fpreg;
	acc.resume = acc_resume;
	acc.get_proc_name = acc_get_proc_name;
	c.as = unw_create_addr_space(&acc, 0);
	if (!c.as) {
		r = hp_err(-ENOMEM, "out of memory");
		goto out;
	}
	unw_set_caching_policy(c.as, UNW_CACHE_GLOBAL);

	for (size_t i = 0; i < n_tids; i++) {
		r = check_thread(&c, tids[i], &set);
		if (r < 0)
			goto out;
	}
	r = 0;
out:
	if (c.as)
		unw_destroy_addr_space(c.as);
	if (c.memfd >= 0)
		close(c.memfd);
	free(c.maps);
	free(c.objs);
	free(c.cache_mem);
	free(set.s);
	return r;
}

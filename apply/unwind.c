/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The target's own unwinder and the patch's unwind tables.
 *
 * C++ exceptions, glibc's backtrace() and thread cancellation walk the
 * stack with libgcc's unwinder (libgcc_s.so.1). It finds the unwind
 * information of a program counter among the objects the dynamic linker
 * knows (dl_iterate_phdr, _dl_find_object) or among objects registered at
 * run time (__register_frame_info). A patch region is neither: without
 * more, an exception passing through a patched frame ends in
 * std::terminate and a backtrace stops there. So the engine registers the
 * patch object's .eh_frame with the target's libgcc_s, by calling the
 * target's own __register_frame_info(eh_frame, object) in the sys thread
 * (ptr_call), and __deregister_frame_info(eh_frame) before the region is
 * unmapped. The object (libgcc's struct object, which it fills and links
 * into its list) and the stack of the call live in the region's unwind
 * area, after the image (layout in apply-int.h).
 *
 * Why no thread can deadlock on it: the call runs while every other thread
 * of the target runs (not inside the stop): whoever holds a lock the call
 * needs goes on and lets go of it, as when any thread of the program
 * registers frames. The only thread that cannot make progress is the one
 * making the call, so it must hold none of those locks: libgcc's
 * object_mutex (GCC 12; a b-tree of version locks from GCC 13), taken and
 * released within libgcc_s's own functions, and the allocator's locks
 * (deregistering frees what libgcc sorted; GCC 13's registration
 * allocates), taken within the allocator's entry points. Before each call
 * the sys thread is checked like any thread in the safety check: its
 * program counter and every return address on its stack must lie outside
 * libgcc_s's code and outside every malloc-family function of every
 * object that defines malloc; otherwise it is let go and stopped again
 * (another thread may be picked) within the budget.
 *
 * Crash safety: the call returns into a trampoline (arch_call_tramp_build)
 * that records the outcome in the unwind area (registered = 1 after
 * __register_frame_info returned, 0 after __deregister_frame_info did),
 * then gives the thread its own registers back. If the engine dies during
 * the call, the thread completes it, records it and goes on; a region
 * whose area says registered is deregistered before any later operation
 * unmaps it (libgcc aborts on deregistering what it does not hold, so
 * this word, written by the target's thread itself, is what decides).
 *
 * A process without libgcc_s and without another unwinder or C++ runtime
 * (plain C) gets nothing registered: nothing there unwinds through the
 * patch, except a backtrace() or thread cancellation that loads libgcc_s
 * later, which stops at a patched frame (docs/engine.md). A process whose
 * unwinder is not libgcc_s's (LLVM's libunwind, a C++ runtime without
 * libgcc_s) is refused: an exception through the patch would abort it.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/openat2.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "apply-int.h"

#define BACKOFF_MAX_MS 50

/* Entry points of an allocator: a thread inside one may hold its locks. */
static const char *const alloc_funcs[] = {
	"malloc", "free", "calloc", "realloc", "reallocarray", "memalign", "posix_memalign",
	"aligned_alloc", "valloc", "pvalloc", "cfree", "malloc_trim", "malloc_stats",
	"malloc_info", "mallinfo", "mallinfo2", "mallopt", "malloc_usable_size", "fork",
	/* jemalloc's own API */
	"mallocx", "rallocx", "xallocx", "dallocx", "sdallocx", "nallocx", "mallctl",
	NULL
};

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

static int add_range(struct unwinder *u, uint64_t start, uint64_t end, const char *name)
{
	struct safety_range *v;

	if (end <= start)
		return 0;
	v = realloc(u->ranges, (u->n_ranges + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	u->ranges = v;
	u->ranges[u->n_ranges++] = (struct safety_range){ start, end, name };
	return 0;
}

void unwinder_release(struct unwinder *u)
{
	if (!u)
		return;
	free(u->ranges);
	memset(u, 0, sizeof(*u));
}

static bool defines(int mem_fd, const struct proc_object *o, const char *name, uint64_t *ret)
{
	unsigned char type;
	uint64_t addr, size;

	if (proc_object_dynsym(mem_fd, o, name, &addr, &type, &size) < 0 ||
	    (type != STT_FUNC && type != STT_GNU_IFUNC))
		return false;
	if (ret)
		*ret = addr;
	return true;
}

/*
 * What an object says about unwinding, read from its dynamic symbols:
 * whether it is libgcc_s (and where its registration functions are),
 * whether it throws or unwinds with something else, and where its
 * allocator's entry points are. Kept from one operation to the next, so
 * that an operation does not read two pages of every object of the process
 * again (three objects in a small C program, dozens in a server), but only
 * for the same process: the symbols are read from the process's memory,
 * which the process may have rewritten, and what one process says must
 * never decide where the engine makes a call in another (the facts would
 * otherwise be the file's, one per build-id). The key: the process (PID
 * and start time), the object's load bias and build-id (one mapping, so
 * one name too). An object without a build-id is read each time, and
 * so is one a read of failed (its "not defined" may be the failure's).
 */
#define FACTS_MAX 128
#define ALLOC_MAX (sizeof(alloc_funcs) / sizeof(alloc_funcs[0]))

struct obj_facts {
	pid_t pid;
	uint64_t start_time;
	uint64_t bias;
	char build_id[HP_BUILD_ID_HEX_SIZE];
	bool libgcc;           /* libgcc_s, defining both registration functions */
	uint64_t reg, dereg;
	bool other;            /* defines _Unwind_RaiseException or __cxa_throw */
	bool alloc_read;       /* what follows was read (only where libgcc_s is) */
	bool malloc;           /* defines malloc: the entry points below */
	size_t n_alloc;
	struct {
		const char *name;
		uint64_t addr, size;
	} alloc[ALLOC_MAX];
};

static pthread_mutex_t facts_lock = PTHREAD_MUTEX_INITIALIZER;
static struct obj_facts facts[FACTS_MAX];
static size_t n_facts, facts_next;

void unwind_facts_forget(void)
{
	pthread_mutex_init(&facts_lock, NULL);
}

static void facts_read_alloc(int mem_fd, const struct proc_object *o, struct obj_facts *f)
{
	f->alloc_read = true;
	f->malloc = defines(mem_fd, o, "malloc", NULL);
	for (size_t k = 0; f->malloc && alloc_funcs[k]; k++) {
		unsigned char type;
		uint64_t addr, size;

		if (proc_object_dynsym(mem_fd, o, alloc_funcs[k], &addr, &type, &size) == 0 &&
		    type == STT_FUNC)
			f->alloc[f->n_alloc++] = (typeof(f->alloc[0])){ alloc_funcs[k], addr, size };
	}
}

/* Under facts_lock: the index of o's kept facts, or n_facts. */
static size_t facts_find(pid_t pid, uint64_t start_time, const struct proc_object *o)
{
	size_t i;

	for (i = 0; i < n_facts; i++)
		if (facts[i].pid == pid && facts[i].start_time == start_time &&
		    facts[i].bias == o->bias && strcmp(facts[i].build_id, o->build_id) == 0)
			break;
	return i;
}

/* The facts of o in process pid (its allocator's too when alloc), read or as kept. */
static void facts_of(int mem_fd, pid_t pid, uint64_t start_time, const struct proc_object *o,
		     bool alloc, struct obj_facts *ret)
{
	bool named = strncmp(base_name(o->path), "libgcc_s.so", 11) == 0;
	struct obj_facts f = { .pid = pid, .start_time = start_time, .bias = o->bias };
	bool kept = false;
	uint64_t reg, dereg;
	size_t i;

	if (o->build_id[0]) {
		pthread_mutex_lock(&facts_lock);
		i = facts_find(pid, start_time, o);
		kept = i < n_facts;
		if (kept)
			f = facts[i];
		pthread_mutex_unlock(&facts_lock);
		if (kept && (f.alloc_read || !alloc)) {
			*ret = f;
			return;
		}
	}
	if (!kept) {
		snprintf(f.build_id, sizeof(f.build_id), "%s", o->build_id);
		if (named && defines(mem_fd, o, "__register_frame_info", &reg) &&
		    defines(mem_fd, o, "__deregister_frame_info", &dereg)) {
			f.libgcc = true;
			f.reg = reg;
			f.dereg = dereg;
		} else {
			f.other = defines(mem_fd, o, "_Unwind_RaiseException", NULL) ||
				  defines(mem_fd, o, "__cxa_throw", NULL);
		}
	}
	if (alloc && !f.alloc_read)
		facts_read_alloc(mem_fd, o, &f);
	*ret = f;
	/* kept only when read whole: a failed read's "not there" is no fact */
	if (!o->build_id[0] || !proc_object_dynsym_whole(o))
		return;
	pthread_mutex_lock(&facts_lock);
	i = facts_find(pid, start_time, o);
	if (i == n_facts)
		i = n_facts < FACTS_MAX ? n_facts++ : facts_next++ % FACTS_MAX;
	facts[i] = f;
	pthread_mutex_unlock(&facts_lock);
}

int unwinder_find(int mem_fd, pid_t pid, uint64_t start_time, const struct proc_maps *maps,
		  const struct proc_objects *objs, struct unwinder *ret)
{
	struct unwinder u = { 0 };
	const struct proc_object *other = NULL;
	struct obj_facts f;
	int r = 0;

	for (size_t i = 0; i < objs->n; i++) {
		const struct proc_object *o = &objs->v[i];

		if (strcmp(o->path, "[vdso]") == 0)
			continue;
		facts_of(mem_fd, pid, start_time, o, false, &f);
		if (!u.lib && f.libgcc) {
			u.lib = o;
			u.reg = f.reg;
			u.dereg = f.dereg;
			continue;
		}
		if (!other && f.other)
			other = o;
	}
	if (!u.lib) {
		if (other)
			return hp_err(-ENOEXEC, "process %d: no libgcc_s unwinder, but %s throws or "
				      "unwinds C++ exceptions with another one: an exception through "
				      "a patched function would abort the program", (int)pid,
				      other->path);
		*ret = u;
		return 0;
	}
	/* where the calling thread must not be: libgcc_s's code, the allocators */
	for (size_t k = u.lib->first_map; k < u.lib->first_map + u.lib->n_maps && r == 0; k++)
		if (maps->v[k].prot & PROT_EXEC)
			r = add_range(&u, maps->v[k].start, maps->v[k].end, "libgcc_s (the unwinder)");
	for (size_t i = 0; i < objs->n && r == 0; i++) {
		const struct proc_object *o = &objs->v[i];

		if (strcmp(o->path, "[vdso]") == 0)
			continue;
		facts_of(mem_fd, pid, start_time, o, true, &f);
		for (size_t k = 0; f.malloc && k < f.n_alloc && r == 0; k++)
			r = add_range(&u, f.alloc[k].addr, f.alloc[k].addr + f.alloc[k].size,
				      f.alloc[k].name);
	}
	if (r < 0) {
		unwinder_release(&u);
		return r;
	}
	*ret = u;
	return 0;
}

/* ---- the patch object's .eh_frame ------------------------------------------ */

int unwind_eh_frame(const void *so, size_t len, const struct load_image *img,
		    uint64_t *ret_vaddr)
{
	const Elf64_Ehdr *eh = so;
	const Elf64_Shdr *sh, *strs;
	uint32_t word;

	/* load_parse checked the header and the section table's bounds */
	if (len < sizeof(*eh) || !eh->e_shnum || eh->e_shstrndx >= eh->e_shnum)
		return -ENOENT;
	sh = (const Elf64_Shdr *)((const char *)so + eh->e_shoff);
	strs = &sh[eh->e_shstrndx];
	if (strs->sh_offset > len || strs->sh_size > len - strs->sh_offset)
		return hp_err(-ENOEXEC, "patch object: bad section name table");
	for (unsigned i = 0; i < eh->e_shnum; i++) {
		const char *name;
		uint64_t end;

		if (sh[i].sh_name >= strs->sh_size)
			continue;
		name = (const char *)so + strs->sh_offset + sh[i].sh_name;
		/* PROGBITS, or the x86-64 ABI's own type for it */
		if (strnlen(name, strs->sh_size - sh[i].sh_name) != 9 ||
		    strcmp(name, ".eh_frame") != 0 ||
		    (sh[i].sh_type != SHT_PROGBITS && sh[i].sh_type != SHT_X86_64_UNWIND) ||
		    !(sh[i].sh_flags & SHF_ALLOC))
			continue;
		if (sh[i].sh_size < 4 || sh[i].sh_addr > img->size ||
		    sh[i].sh_size > img->size - sh[i].sh_addr)
			return -ENOENT;
		end = sh[i].sh_addr + sh[i].sh_size;
		/*
		 * libgcc walks the entries up to a zero length word (crtend.o's,
		 * which a -nostartfiles link lacks; hp build links one): the last
		 * word of the section, or zero padding after it, read-only, up to
		 * the end of its page in the image.
		 */
		memcpy(&word, img->bytes + end - 4, 4);
		if (word != 0) {
			bool ok = false;

			for (size_t k = 0; k < img->n_segs && !ok; k++) {
				const struct load_seg *s = &img->segs[k];

				ok = sh[i].sh_addr >= s->vaddr && end == s->vaddr + s->memsz &&
				     !(s->prot & PROT_WRITE) && end % HP_PAGE_SIZE != 0 &&
				     end % HP_PAGE_SIZE <= HP_PAGE_SIZE - 4 && end + 4 <= img->size;
			}
			if (ok)
				memcpy(&word, img->bytes + end, 4);
			if (!ok || word != 0)
				return hp_err(-ENOEXEC, "patch object: its .eh_frame has no end marker "
					      "(a zero word, which crtend.o or hp build adds)");
		}
		*ret_vaddr = sh[i].sh_addr;
		return 0;
	}
	return -ENOENT;
}

/* ---- the unwind area of a region ------------------------------------------- */

int unwind_area_read(int mem_fd, const struct region *rg, struct unwind_area *ret,
		     uint64_t *ret_addr)
{
	uint64_t at = rg->hdr.text_end;

	if (at < rg->addr || at - rg->addr > rg->hdr.region_size ||
	    rg->hdr.region_size - (at - rg->addr) < UNWIND_AREA_SIZE)
		return -ENOENT;
	if (proc_mem_read(mem_fd, at, ret, sizeof(*ret)) < 0 ||
	    memcmp(ret->magic, UNWIND_MAGIC, sizeof(ret->magic)) != 0)
		return -ENOENT;
	*ret_addr = at;
	return 0;
}

/* ---- the calls ------------------------------------------------------------- */

static void nap_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static bool avoid_has(const struct ptr_world *w, pid_t tid)
{
	for (size_t i = 0; i < w->n_avoid; i++)
		if (w->avoid[i] == tid)
			return true;
	return false;
}

/*
 * Hold a sys thread that is inside neither the unwinder nor an allocator
 * (see the top of the file): the one held, or, when it is, another one
 * (that thread is avoided from then on) after a pause, within budget_ms.
 */
static int sys_thread_clear_as(struct ptr_world *w, const struct unwinder *u, pid_t view,
			       unsigned budget_ms);

/*
 * The call allocates (libgcc keeps its objects on a malloc'd list): made
 * in the leader, whose allocations go to the main arena, rather than in a
 * thread whose first malloc would map an arena of its own. The leader is
 * let go again right after the call (ptr.c: while the leader is traced, a
 * signal the program ignores can wake another thread with EINTR).
 */
static int sys_thread_clear(struct ptr_world *w, const struct unwinder *u, pid_t view,
			    unsigned budget_ms)
{
	int r;

	w->want_leader = true;
	if (w->sys_tid && w->sys_tid != w->pid && ptr_find(w, w->sys_tid))
		ptr_resume(w, false);
	r = sys_thread_clear_as(w, u, view, budget_ms);
	w->want_leader = false;
	return r;
}

/* Let the leader go after a call, when other threads run untraced meanwhile. */
static void leader_let_go(struct ptr_world *w)
{
	if (w->sys_tid == w->pid && proc_thread_count(w->pid) > 1)
		ptr_resume(w, false);
}

static int sys_thread_clear_as(struct ptr_world *w, const struct unwinder *u, pid_t view,
			       unsigned budget_ms)
{
	uint64_t deadline = hp_now_us() + (uint64_t)budget_ms * 1000;
	unsigned backoff = 1, tries = 0;
	int r;

	for (;;) {
		struct safety_session *s = NULL;
		struct ptr_thread *t;

		r = ptr_stop_sys(w);
		if (r == 0)
			r = ptr_syscall_end(w);
		if (r < 0)
			return r;
		t = ptr_find(w, w->sys_tid);
		if (!t)
			return hp_err(-ESRCH, "process %d: no thread for remote calls", (int)w->pid);
		tries++;
		r = safety_begin(view, u->ranges, u->n_ranges, false, &s);
		if (r == 0)
			r = safety_thread(s, t->tid, t->regs);
		safety_end(s);
		if (r != -EBUSY)
			return r;
		if (hp_now_us() >= deadline)
			return hp_err_prefix(-EBUSY, "unwinder registration, after %u ms (%u checks): ",
					     budget_ms, tries);
		/* another thread may be free of them: the next stop prefers it */
		if (w->n_avoid < sizeof(w->avoid) / sizeof(w->avoid[0]) && !avoid_has(w, t->tid))
			w->avoid[w->n_avoid++] = t->tid;
		ptr_resume(w, false);
		nap_ms(backoff);
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
	}
}

int unwind_register(struct ptr_world *w, const struct unwinder *u, pid_t view,
		    unsigned budget_ms, uint64_t area, uint64_t eh_frame)
{
	struct unwind_area a;
	int r;

	r = sys_thread_clear(w, u, view, budget_ms);
	if (r == 0)
		r = ptr_call(w, u->reg, eh_frame, area + offsetof(struct unwind_area, object),
			     area + UNWIND_AREA_SIZE, area + offsetof(struct unwind_area, registered),
			     1);
	if (r == 0)
		r = proc_mem_read(w->mem_fd, area, &a, sizeof(a));
	if (r == 0 && a.registered != 1)
		r = hp_err(-EPROTO, "process %d: __register_frame_info did not complete", (int)w->pid);
	leader_let_go(w);
	return r < 0 ? hp_err_prefix(r, "register the patch's unwind tables: ") : 0;
}

int unwind_deregister(struct ptr_world *w, const struct unwinder *u, pid_t view,
		      unsigned budget_ms, const struct region *rg)
{
	struct unwind_area a;
	uint64_t area;
	int r;

	if (unwind_area_read(w->mem_fd, rg, &a, &area) < 0 || a.registered != 1)
		return 0; /* nothing registered */
	/*
	 * Registered with a libgcc_s no longer there (unloaded), or another
	 * one at another place: that one never saw it (deregistering would
	 * abort the program), and nobody can reach the region through it.
	 */
	if (!u->lib || u->lib->bias != a.unwinder)
		return 0;
	r = sys_thread_clear(w, u, view, budget_ms);
	if (r == 0)
		r = ptr_call(w, u->dereg, a.eh_frame, 0, area + UNWIND_AREA_SIZE,
			     area + offsetof(struct unwind_area, registered), 0);
	if (r == 0)
		r = proc_mem_read(w->mem_fd, area, &a, sizeof(a));
	if (r == 0 && a.registered != 0)
		r = hp_err(-EPROTO, "process %d: __deregister_frame_info did not complete",
			   (int)w->pid);
	leader_let_go(w);
	return r < 0 ? hp_err_prefix(r, "deregister the unwind tables of %s: ", rg->hdr.set_id) : 0;
}

/* ---- perf's map of code without an object (/tmp/perf-PID.map) ---------------- */

/* The process's id in its own PID namespace (the last NSpid field). */
static pid_t ns_pid(pid_t pid)
{
	struct hp_buf b = HP_BUF_INIT;
	char path[64];
	pid_t v = pid;
	const char *p;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (hp_read_file(path, 1 << 16, &b) == 0 && (p = strstr(b.data, "\nNSpid:"))) {
		char *end;

		p += 7;
		for (;;) {
			long x = strtol(p, &end, 10);

			if (end == p)
				break;
			v = (pid_t)x;
			p = end;
			if (*p == '\n' || !*p)
				break;
		}
	}
	hp_buf_release(&b);
	return v;
}

#define PERFMAP_TAG " [hotpatch "
#define PERFMAP_MAX (64u << 20)

/*
 * The process's /tmp, as a directory descriptor: "tmp" resolved inside the
 * process's root (openat2 RESOLVE_IN_ROOT), so that a /tmp the process
 * made a symbolic link (in its own user and mount namespaces, or a chroot)
 * cannot point the daemon at a directory of the host. The files below are
 * opened, created and renamed relative to it: one walk through
 * /proc/PID/root instead of one per call.
 */
static int target_tmp(pid_t pid)
{
	struct open_how how = { .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
				.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
	char path[64];
	int root, fd;

	snprintf(path, sizeof(path), "/proc/%d/root", (int)pid);
	root = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return hp_err(-errno, "%s: %s", path, strerror(errno));
	fd = (int)syscall(SYS_openat2, root, "tmp", &how, sizeof(how));
	if (fd < 0)
		fd = -errno;
	close(root);
	if (fd < 0)
		return hp_err(fd, "%s/tmp: %s", path, strerror(-fd));
	return fd;
}

/* Create a temporary file in DIR: its name into name (cap bytes), its descriptor returned. */
static int tmp_create(int dir, pid_t nsp, char *name, size_t cap)
{
	for (int tries = 0; tries < 16; tries++) {
		uint32_t rnd;
		int fd;

		if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
			rnd = (uint32_t)hp_now_us() ^ ((uint32_t)tries << 24);
		snprintf(name, cap, ".perf-%d.map.hp%08" PRIx32, (int)nsp, rnd);
		fd = openat(dir, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0 || errno != EEXIST)
			return fd >= 0 ? fd : -errno;
	}
	return -EEXIST;
}

int unwind_perfmap_update(pid_t pid, const struct regions *regions)
{
	struct hp_buf old = HP_BUF_INIT, out = HP_BUF_INIT;
	char name[64], tmp[64];
	size_t n_ours = 0, n_funcs = 0;
	int fd = -1, dir, r = 0;
	pid_t nsp = ns_pid(pid);

	/* the process's own /tmp (its root), its own PID: where perf looks */
	dir = target_tmp(pid);
	if (dir < 0)
		return dir;
	snprintf(name, sizeof(name), "perf-%d.map", (int)nsp);
	fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0) {
		struct stat st;

		if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > PERFMAP_MAX) {
			r = hp_err(-EPERM, "/tmp/%s of process %d: not a regular file of a sane size",
				   name, (int)pid);
			goto out;
		}
		for (;;) {
			ssize_t n;

			r = hp_buf_grow(&old, 65536);
			if (r < 0)
				goto out;
			n = read(fd, old.data + old.len, 65536);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				r = hp_err(-errno, "read /tmp/%s of process %d: %s", name, (int)pid,
					   strerror(errno));
				goto out;
			}
			if (n == 0 || old.len + (size_t)n > PERFMAP_MAX)
				break;
			old.len += (size_t)n;
		}
		old.data[old.len] = '\0';
		close(fd);
		fd = -1;
	} else if (errno != ENOENT) {
		r = hp_err(-errno, "/tmp/%s of process %d: %s", name, (int)pid, strerror(errno));
		goto out;
	}
	/* the lines of others (a JIT's) stay as they are; ours are rewritten */
	for (const char *p = old.data; p && *p;) {
		const char *nl = strchr(p, '\n');
		size_t l = nl ? (size_t)(nl - p) + 1 : strlen(p);

		if (memmem(p, l, PERFMAP_TAG, strlen(PERFMAP_TAG)))
			n_ours++;
		else if (hp_buf_add(&out, p, l) < 0)
			r = -ENOMEM;
		p += l;
	}
	for (size_t i = 0; i < regions->n && r == 0; i++) {
		const struct region *rg = &regions->v[i];

		if (!rg->n_jumped)
			continue;
		for (uint32_t k = 0; k < rg->hdr.n_funcs && r == 0; k++) {
			const struct region_func *f = &rg->funcs[k];

			r = hp_buf_addf(&out, "%" PRIx64 " %" PRIx64 " %s" PERFMAP_TAG "%s]\n",
					f->new_addr, f->new_size, f->name, rg->hdr.set_id);
			n_funcs++;
		}
	}
	if (r < 0 || (!n_ours && !n_funcs))
		goto out;
	if (!out.len) {
		if (unlinkat(dir, name, 0) < 0 && errno != ENOENT)
			r = hp_err(-errno, "remove /tmp/%s of process %d: %s", name, (int)pid,
				   strerror(errno));
		goto out;
	}
	fd = tmp_create(dir, nsp, tmp, sizeof(tmp));
	if (fd < 0) {
		r = hp_err(fd, "create a file in /tmp of process %d: %s", (int)pid, strerror(-fd));
		fd = -1;
		goto out;
	}
	if (fchmod(fd, 0644) < 0 || write(fd, out.data, out.len) != (ssize_t)out.len ||
	    renameat(dir, tmp, dir, name) < 0) {
		r = hp_err(-errno ? -errno : -EIO, "write /tmp/%s of process %d: %s", name,
			   (int)pid, strerror(errno));
		unlinkat(dir, tmp, 0);
	}
out:
	if (fd >= 0)
		close(fd);
	close(dir);
	hp_buf_release(&old);
	hp_buf_release(&out);
	return r;
}

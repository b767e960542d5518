/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * apply-int.h: what the files of libhpapply share. The engine's modules:
 * proc.c (the process's memory; its ELF objects, build-ids and dynamic
 * symbols read from it), ptr.c (stop the world, resume), arch-x86_64.c
 * (jump encoding, syscall injection, registers), load.c (map + relocate
 * the patch object), safety.c (is any thread in or due to return into a
 * switched function), checker.c (those checks on a second thread),
 * engine.c (the apply / replace / revert state machine, inspection),
 * region.c (patch-region header), elfid.c (a file's build-id, libelf),
 * unwind.c (the patch's unwind tables registered with the target's
 * unwinder, perf's map). Mappings, stat fields and thread states come from common/hp-procfs.h,
 * build-id notes and ELF headers from common/elf-facts.h.
 */
#ifndef HP_APPLY_INT_H
#define HP_APPLY_INT_H

#include <stdint.h>
#include <sys/types.h>

#include <stdbool.h>

#include "apply.h"
#include "elf-facts.h"
#include "hp-elf.h"
#include "hp-procfs.h"

/* ---- proc.c: the process's memory and objects (no ptrace needed) ------- */

/* The mappings, stat fields and thread states: common/hp-procfs.h. */

/* Read or write exactly len bytes of the process's memory through its
 * /proc/PID/mem descriptor (writes reach read-only text: FOLL_FORCE). */
int proc_mem_read(int mem_fd, uint64_t addr, void *buf, size_t len);
int proc_mem_write(int mem_fd, uint64_t addr, const void *buf, size_t len);

/* An ELF object mapped in the process, found from its own memory. */
struct proc_object {
	char *path;
	char build_id[HP_BUILD_ID_HEX_SIZE];
	uint64_t bias;     /* runtime address = bias + st_value */
	uint64_t dynamic;  /* runtime address of PT_DYNAMIC, 0 if none */
	uint64_t dyn_size;
	uint64_t inode;
	uint64_t slack;    /* unused bytes after its code segment, same page */
	uint64_t slack_len;
	size_t first_map;  /* index of its first mapping in the maps */
	size_t n_maps;     /* consecutive mappings of the same file */
	/* what proc_object_dynsym read of it (its dynamic section, its hash
	 * table's header and Bloom filter), kept for the next name: NULL until
	 * the first; freed with the objects, an operation's reading */
	struct proc_dyncache *dyn;
};

struct proc_objects {
	struct proc_object *v;
	size_t n;
};

/*
 * The first len bytes at each start[k] (k < n) into buf + k * len, in as
 * few system calls as can be: process_vm_readv reads up to 256 ranges a
 * call and stops at the first that does not read whole (a mapping gone
 * since the maps were read); that one is left to the caller's own read of
 * /proc/PID/mem (got[k] false) and the rest are read on. Without
 * process_vm_readv (not allowed, pid <= 0) every one is left to it.
 */
void proc_mem_read_starts(pid_t pid, const uint64_t *start, size_t n, size_t len, void *buf,
			  bool *got);
/* pid > 0: the first pages read with proc_mem_read_starts (0: a read of
 * mem_fd each) */
int proc_objects_read(pid_t pid, int mem_fd, const struct proc_maps *maps,
		      struct proc_objects *ret);
void proc_objects_release(struct proc_objects *o);
const struct proc_object *proc_objects_find(const struct proc_objects *o, const char *build_id);

/* Look a name up in an object's dynamic symbol table, read from memory.
 * 0 with the runtime address, -ENOENT if not defined there. */
int proc_object_dynsym(int mem_fd, const struct proc_object *obj, const char *name,
		       uint64_t *ret_addr, unsigned char *ret_type, uint64_t *ret_size);
/* Whether every lookup in obj so far read what it needed: each -ENOENT was
 * the object's answer, not a failed read's (false before the first). */
bool proc_object_dynsym_whole(const struct proc_object *obj);

/* ---- region.c: the header at the start of every patch region ----------- */

#define REGION_MAGIC "HPREGN01"
#define REGION_VERSION 1
#define REGION_SAVED_MAX 16
/* region_func.flags, beside the manifest's HP_FUNC_*: an active-ok function
 * whose old code a thread may still run (set at the switch, cleared by
 * apply_settle once no thread does). */
#define REGION_FUNC_OLD_LIVE 0x80000000u

/* On-target layout, little-endian, fixed-size fields (see region.c). */
struct region_hdr {
	char magic[8];
	uint32_t version;
	uint32_t hdr_size;      /* header + function table, bytes */
	uint64_t region_size;   /* the whole mapping, bytes */
	uint64_t text_start;    /* the patch object's image [start, end) */
	uint64_t text_end;
	uint64_t pause_us;      /* pause of the stop that installed it */
	int64_t applied_at;     /* unix seconds */
	uint32_t n_funcs;
	uint32_t jump_len;      /* bytes overwritten at each entry */
	/* sizes fixed by the layout (REGION_VERSION), not by HP_*_SIZE: a
	 * build-id's 129 bytes rounded up to 8, and HP_SET_ID_SIZE as it was */
	char build_id[136];
	char set_id[160];
	char month[8];
};

struct region_func {
	uint64_t addr;          /* original entry in the target */
	uint64_t size;          /* its symbol size */
	uint64_t new_addr;      /* replacement in this region */
	uint64_t new_size;
	uint8_t saved[REGION_SAVED_MAX]; /* original bytes at addr */
	uint32_t flags;         /* HP_FUNC_* */
	uint32_t reserved;
	char name[64];          /* truncated, for messages */
};

/* A region read back from the process. */
struct region {
	uint64_t addr;
	struct region_hdr hdr;
	struct region_func *funcs;
	unsigned n_jumped;      /* entries whose bytes jump into this region */
};

struct regions {
	struct region *v;
	size_t n;
};

/* Find and read every patch region of the process (anonymous read-only
 * mappings starting with REGION_MAGIC). Also counts the jumps present.
 * pid: the candidates' first bytes are read with process_vm_readv, many
 * in one call; <= 0, or where that fails, each through mem_fd. */
int regions_read(pid_t pid, int mem_fd, const struct proc_maps *maps, struct regions *ret);
void regions_release(struct regions *r);
/* Layout check of a header read from memory (bounds, strings). */
int region_hdr_check(const struct region_hdr *h, uint64_t map_size);
size_t region_hdr_bytes(size_t n_funcs);

/* ---- arch-x86_64.c: machine-specific ----------------------------------- */

/* The jump over a replaced function's entry (hp build checks the same length). */
#define ARCH_JUMP_LEN HP_X86_64_JUMP_LEN

struct arch_regs;
/* Encode a jump at from to to; -ERANGE when out of reach. */
int arch_jump_encode(uint64_t from, uint64_t to, uint8_t out[ARCH_JUMP_LEN]);
/* Whether bytes at from are our jump, and where to. */
bool arch_jump_decode(uint64_t from, const uint8_t in[ARCH_JUMP_LEN], uint64_t *ret_to);
/* Largest distance a jump reaches (for placing patch regions). */
uint64_t arch_jump_reach(void);
/* The instruction that makes a system call; searched for in the target. */
extern const uint8_t arch_syscall_insn[2];
/* Bytes of a remote-syscall trampoline (arch_tramp_build). */
#define ARCH_TRAMP_MAX 192

/* ---- ptr.c: stopping the world, remote system calls -------------------- */

/*
 * What the trampoline undoes when the engine dies mid-session: munmap of
 * [base, base + size) if the injected call returned base (the mmap that
 * made it), or always when on (the region is ours and not switched yet).
 */
struct ptr_undo {
	uint64_t base;
	uint64_t size;
	bool on;
};

struct ptr_thread {
	pid_t tid;
	bool stopped;
	int sig;              /* signal to deliver at detach (0 none) */
	uint64_t pc, sp;
	uint64_t regs[32];    /* raw register block (struct user_regs_struct) */
};

struct ptr_world {
	pid_t pid;
	int mem_fd;
	/* /proc/PID/stat and /proc/PID/task, kept open for the operation
	 * (-1: not yet); each names the process, not its PID. The world's:
	 * ptr_world_release (or _forget) closes them */
	int stat_fd;
	int task_fd;
	uint64_t start_time;
	struct ptr_thread *t;
	size_t n;
	size_t cap;
	pid_t sys_tid;        /* the thread that runs injected system calls */
	uint64_t syscall_insn; /* address of a syscall instruction in the target */
	bool injecting;       /* sys thread's registers are ours, not its own */
	bool at_sys_stop;     /* ... and it is at a system call stop, not an interrupt stop */
	/* unused executable bytes of the target (page slack after a code
	 * segment) for the trampoline; 0 when none was found */
	uint64_t tramp_addr;
	size_t tramp_len;     /* > 0 while the trampoline is written */
	struct ptr_undo undo;
	/* bound of every wait for a stop or an injected call, ms (0: the
	 * default budget); a thread that does not stop in time fails the stop
	 * with -EBUSY and is kept in stuck[] (see ptr.c) */
	unsigned stop_ms;
	pid_t stuck[16];
	size_t n_stuck;
	bool lost;            /* an injected call outlived its bound: no more calls */
	size_t n_seen;        /* threads held in the last full stop */
	/* called by ptr_stop_all for each thread held (the sys thread and
	 * those held before it included) as soon as its stop is confirmed,
	 * while the rest are being stopped; its first negative result is kept
	 * in on_stop_r and it is not called again in that stop (the stop goes
	 * on: the caller decides) */
	int (*on_stop)(void *arg, const struct ptr_thread *t);
	void *on_stop_arg;
	int on_stop_r;
	uint64_t t_all_stopped_begin;
	uint64_t t_all_resumed;
	/* threads ptr_stop_sys picks only when no other will do (unwind.c:
	 * found holding what its call would wait for) */
	pid_t avoid[8];
	size_t n_avoid;
	/* ptr_stop_sys takes the leader when it can (a call that allocates:
	 * unwind.c), not another thread (the rule otherwise) */
	bool want_leader;
	/* the leader's state as the operation's open read it (0: not read):
	 * ptr_stop_sys's first walk takes it instead of reading it again */
	char leader_state;
	/* tramp_write's look at the sys thread's code: a syscall instruction
	 * right before prev_pc, for thread prev_tid */
	uint64_t prev_pc;
	pid_t prev_tid;
	bool prev_syscall;
	size_t n_listed;      /* the threads ptr_stop_sys last listed */
	/* the bound of the wait for threads found in state D during a stop,
	 * set by the first one met; 0 again once a stop ends (ptr.c) */
	uint64_t d_deadline;
};

void ptr_world_init(struct ptr_world *w, pid_t pid, int mem_fd, uint64_t start_time);
/* The calling thread's waits for ptrace stops (apply_prof), since the last reset. */
struct ptr_counts {
	unsigned n_waits, n_slept, n_remote;
};
void ptr_counts_reset(void);
/* The calling thread's wait timer disarmed (it stays armed between the
 * waits of an operation): at the end of each operation. */
void ptr_alarm_off(void);
struct ptr_counts ptr_counts_get(void);
/* The calling thread seized a thread it could not let go (see ptr.c): only
 * its exit releases it. Never cleared: that thread must end. */
bool ptr_left_traced(void);
/* Stop one thread (the leader when it can) for system calls. */
int ptr_stop_sys(struct ptr_world *w);
/* Stop every other thread, including threads born meanwhile. Every wait is
 * bounded by stop_ms: -EBUSY "thread TID did not stop within N ms (state D)"
 * with every thread but the sys thread let go; the thread that did not stop
 * stays seized until it stops or the calling thread exits (run a world in a
 * thread that ends with the operation). A thread found in uninterruptible
 * sleep while it is waited for (state D: it would keep every thread held
 * meanwhile) has every other thread but the sys thread let go, and is
 * waited for alone: -EAGAIN once it has left D (let go too: stop again;
 * every such wait until the next stop ends is bounded by one stop_ms),
 * else -EBUSY as above. */
int ptr_stop_all(struct ptr_world *w);
/* Resume every thread but the sys thread (keep_sys) or all. Fixes up
 * interrupted system calls so the program never sees EINTR. */
int ptr_resume(struct ptr_world *w, bool keep_sys);
void ptr_world_release(struct ptr_world *w);
/* What a world holds that is not a thread: for one that never attached. */
void ptr_world_forget(struct ptr_world *w);
/* Close fd once the operation's caller has its answer (in an operation's thread), else now. */
void op_close_late(int fd);
/* Whether the last operation on w's process let tid go in its own code (ptr.c). */
bool ptr_own_code_was(const struct ptr_world *w, pid_t tid);
/* A forked child: forget which threads were let go in their own code. */
void ptr_own_code_forget(void);
/* Run a system call in the sys thread; ret gets the raw result (-errno). */
int ptr_syscall(struct ptr_world *w, long nr, const uint64_t args[6], int64_t *ret);
/* Give the sys thread its own registers back (after ptr_syscall). */
int ptr_syscall_end(struct ptr_world *w);
/*
 * Call func(a0, a1) in the sys thread, on the stack below stack_top (memory
 * of the engine's own, in a patch region), returning to a call trampoline
 * that stores done_val at done_addr (see arch_call_tramp_build). Bounded by
 * stop_ms: -EBUSY past it, the thread left to finish the call and resume
 * itself (no more calls or system calls in this world). Needs tramp_addr.
 */
int ptr_call(struct ptr_world *w, uint64_t func, uint64_t a0, uint64_t a1, uint64_t stack_top,
	     uint64_t done_addr, uint64_t done_val);
/* Set what a dying engine's trampoline undoes (rewrites a live one). */
int ptr_set_undo(struct ptr_world *w, uint64_t base, uint64_t size, bool on);
struct ptr_thread *ptr_find(struct ptr_world *w, pid_t tid);

/* arch parts of ptr.c */
int arch_getregs(struct ptr_thread *t);
int arch_setregs(const struct ptr_thread *t, const uint64_t *regs);
/* Make the sys thread's registers run syscall nr at insn. */
void arch_syscall_regs(const uint64_t *saved, uint64_t *out, uint64_t insn, long nr,
		       const uint64_t args[6]);
/*
 * A trampoline: a syscall instruction, then code that puts back the
 * registers of saved and jumps to where the thread would resume (re-issuing
 * an interrupted system call). Injected calls run at its first byte: if the
 * engine dies mid-call, the kernel detaches the thread, which finishes the
 * call and carries on as if never stopped. Returns its length.
 */
size_t arch_tramp_build(const uint64_t *saved, bool syscall_before_pc,
			const struct ptr_undo *undo, uint8_t out[ARCH_TRAMP_MAX]);
/* Whether bytes start like a trampoline (one a killed engine left). */
bool arch_tramp_is(const uint8_t *p, size_t len);
/*
 * Walk the instructions of code (len bytes at addr): 1 with the branch's
 * address when a direct branch targets [lo, hi), 0 when none does, -ENOEXEC
 * when an instruction is not understood.
 */
int arch_branch_into(const uint8_t *code, size_t len, uint64_t addr, uint64_t lo, uint64_t hi,
		     uint64_t *ret_from);
/*
 * A call trampoline (ptr_call): an 8-byte tag, then, where the called
 * function returns (*ret_return): store done_val at done_addr, a getpid
 * system call whose entry stop (*ret_stop_pc) tells the engine the call
 * returned, then the thread's own flags, caller-saved registers and stack
 * pointer, and a jump back where it was: if the engine dies during the
 * call, the thread completes it and carries on as if never stopped.
 */
size_t arch_call_tramp_build(const uint64_t *saved, bool syscall_before_pc, uint64_t tramp,
			     uint64_t done_addr, uint64_t done_val, uint8_t out[ARCH_TRAMP_MAX],
			     uint64_t *ret_return, uint64_t *ret_stop_pc);
/* Registers that enter func(a0, a1) with the stack pointer sp. */
void arch_call_regs(const uint64_t *saved, uint64_t *out, uint64_t func, uint64_t a0, uint64_t a1,
		    uint64_t sp);
int64_t arch_syscall_nr(const uint64_t *regs);
/* A thread's vector and x87 state, saved around a call. */
#define ARCH_XSTATE_MAX (16u << 10)
struct arch_fpstate {
	void *buf;
	size_t len;
	bool xstate;
};
int arch_fpstate_save(pid_t tid, struct arch_fpstate *ret);
int arch_fpstate_restore(pid_t tid, const struct arch_fpstate *s);
void arch_fpstate_release(struct arch_fpstate *s);
/* Length of the instruction at code, 0 if not understood. */
size_t arch_insn_len(const uint8_t *code, size_t len);
int64_t arch_syscall_result(const uint64_t *regs);
uint64_t arch_syscall_pc(const uint64_t *regs);
/* A thread interrupted in a call the kernel will not restart (epoll_wait
 * returns -EINTR): make its result -ERESTARTNOHAND, so that the kernel
 * re-issues the call unless a signal handler runs (then EINTR, the
 * program's own). True if changed. */
bool arch_restart_fixup(int mem_fd, uint64_t *regs);
/* A thread stopped inside a system call (about to re-issue or finish it), not in its own code. */
bool arch_in_syscall(const uint64_t *regs);

/* ---- load.c: the patch object ------------------------------------------ */

struct load_image {
	uint8_t *bytes;         /* image at vaddr 0 of the object */
	size_t size;            /* page-rounded */
	size_t max_align;
	struct load_seg {
		uint64_t vaddr, memsz;
		unsigned prot;
	} segs[16];
	size_t n_segs;
	uint64_t relro_start, relro_end;
};

struct load_ctx {
	int mem_fd;
	const struct proc_objects *objects;
	const struct proc_object *target;
	const struct hp_manifest *manifest;
};

/* Parse and check the object; build its unrelocated image. -ENOEXEC. */
int load_parse(const void *so, size_t len, struct load_image *ret);
/* Relocate the image for base; resolve symbols per ctx. */
int load_relocate(struct load_image *img, const void *so, size_t len, uint64_t base,
		  const struct load_ctx *ctx);
/* Value and size of a function defined by the object (vaddr). */
int load_func(const void *so, size_t len, const char *name, uint64_t *ret_vaddr,
	      uint64_t *ret_size);
void load_image_release(struct load_image *img);

/* ---- safety.c ------------------------------------------------------------ */

/* An address range [start, end) whose code is being switched. */
struct safety_range {
	uint64_t start;
	uint64_t end;
	const char *name; /* function name, for the message */
};

/*
 * Every thread in tids[] is in a ptrace-stop. Returns 0 when no thread's
 * program counter lies in any range and no return address on any thread's
 * unwound stack does; -EBUSY otherwise with the error slot set to
 * "function NAME active in thread TID". Other negative errnos for failures
 * to inspect (-ESRCH a thread vanished). An unwinding that stops early
 * (no unwind info for a frame) is treated as unsafe only when the frames
 * it could not see may hold a range address: see safety.c.
 */
int safety_check(pid_t pid, const pid_t *tids, size_t n_tids,
		 const struct safety_range *ranges, size_t n_ranges);

/*
 * The same check one thread at a time (engine.c checks each thread as
 * soon as its stop is confirmed, while the others are being stopped).
 * ranges must outlive the session. live: threads of the process not yet
 * stopped may run between two safety_thread calls (nothing read for one
 * thread is then reused for the next). safety_thread: the thread is in a
 * ptrace-stop; regs its registers (struct user_regs_struct, as read at the
 * stop) or NULL to read them; results as safety_check's.
 */
struct safety_session;
int safety_begin(pid_t pid, const struct safety_range *ranges, size_t n_ranges, bool live,
		 struct safety_session **ret);
/* A live session whose stack hints come from maps, a mapping list the
 * caller read before the stop (NULL: read now): each hint is confirmed by
 * the stack read that uses it, as the session's own list is. maps_fd: the
 * descriptor of /proc/PID/maps that list was read from (-1: none), lent
 * to the session for its PROCMAP_QUERY (it stays the caller's to close). */
int safety_begin_hinted(pid_t pid, const struct safety_range *ranges, size_t n_ranges,
			const struct proc_maps *maps, int maps_fd, struct safety_session **ret);
/* A second session of model's process, for another thread, with model's
 * mapping list (read once, not again); model is only read. */
int safety_begin_like(const struct safety_session *model, const struct safety_range *ranges,
		      size_t n_ranges, struct safety_session **ret);
int safety_thread(struct safety_session *s, pid_t tid, const uint64_t *regs);
void safety_end(struct safety_session *s);

/*
 * checker.c: the checks of a stop on a second thread for a process of
 * n_threads or more (see the file), on the stopping thread otherwise.
 * Per stop: checker_begin (ranges must outlive it; maps, if given, the
 * stack hints, and maps_fd: safety_begin_hinted), checker_add for
 * each thread as it is held (its registers as read at the stop), then,
 * with every thread held, checker_finish: the first failure of any check
 * (-EBUSY etc., message set), or 0. checker_add returns that failure as
 * soon as one is known (the stop may go on; nothing more is checked).
 */
struct checker;
int checker_start(struct checker **ret);
void checker_stop(struct checker *k);
int checker_begin(struct checker *k, pid_t pid, const struct safety_range *ranges, size_t n,
		  size_t n_threads, const struct proc_maps *maps, int maps_fd);
int checker_add(struct checker *k, pid_t tid, const uint64_t *regs);
int checker_finish(struct checker *k);
void checker_drop(struct checker *k); /* the stop failed: check no more */

/* ---- unwind.c: the target's unwinder and the patch's unwind tables ----- */

/*
 * The unwind area of a patch region: UNWIND_AREA_SIZE bytes at the end of
 * the image (region header's text_end), read-write, present when the
 * region was registered with the target's unwinder (or was to be). The
 * first page holds this, the rest is the stack of the remote calls.
 */
#define UNWIND_MAGIC "HPUNWD01"
#define UNWIND_AREA_SIZE (5u * 4096u)

struct unwind_area {
	char magic[8];
	uint64_t registered;    /* 1: __register_frame_info returned; 0: not, or
				 * __deregister_frame_info returned (written by
				 * the target's thread, see unwind.c) */
	uint64_t eh_frame;      /* what was registered */
	uint64_t unwinder;      /* load bias of the libgcc_s it was registered with */
	uint64_t reserved[4];
	uint8_t object[192];    /* libgcc's struct object (48-64 bytes) */
};

/* The target's unwinder: libgcc_s, or none (lib NULL: a plain C process). */
struct unwinder {
	const struct proc_object *lib;  /* points into the objects it was found in */
	uint64_t reg, dereg;            /* __register_frame_info, __deregister_frame_info */
	/* where the thread making the calls must not be: libgcc_s's code and
	 * the allocators' entry points */
	struct safety_range *ranges;
	size_t n_ranges;
};

/* Find it; -ENOEXEC when the process unwinds with something else. */
int unwinder_find(int mem_fd, pid_t pid, uint64_t start_time, const struct proc_maps *maps,
		  const struct proc_objects *objs, struct unwinder *ret);
void unwinder_release(struct unwinder *u);
/* A forked child: the lock of the facts kept per object made anew. */
void unwind_facts_forget(void);
/* The vaddr of the patch object's .eh_frame; -ENOENT when it has none,
 * -ENOEXEC when libgcc could not walk it (no end marker). */
int unwind_eh_frame(const void *so, size_t len, const struct load_image *img,
		    uint64_t *ret_vaddr);
/* The unwind area of a region read from the process; -ENOENT if none. */
int unwind_area_read(int mem_fd, const struct region *rg, struct unwind_area *ret,
		     uint64_t *ret_addr);
/* __register_frame_info(eh_frame, area's object) in the sys thread. */
int unwind_register(struct ptr_world *w, const struct unwinder *u, pid_t view,
		    unsigned budget_ms, uint64_t area, uint64_t eh_frame);
/* __deregister_frame_info for a region that is registered (0 if not). */
int unwind_deregister(struct ptr_world *w, const struct unwinder *u, pid_t view,
		      unsigned budget_ms, const struct region *rg);
/* Rewrite our lines of the process's perf map from the regions applied. */
int unwind_perfmap_update(pid_t pid, const struct regions *regions);

#endif

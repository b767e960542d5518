/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hp-procfs.h: the facts of a process that /proc states in text, each
 * parsed in one place: its mappings (/proc/PID/maps), its stat fields
 * (/proc/PID/stat: state, start time, thread count, name), a thread's
 * state, a live thread of it; and the page size. No ptrace and no memory
 * reads here (apply/ does those): the engine (apply/) and the orchestration
 * (ctl/) both read a process through this module, so it lives below both.
 * The parsers of one line or one stat text are public for the unit tests
 * (tests/unit/test-procfs.c) and for callers that stream the text.
 */
#ifndef HP_PROCFS_H
#define HP_PROCFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hp-common.h"

/*
 * The page size: 4 KiB on x86_64, the one architecture of the engine
 * (apply/arch-x86_64.c), and the granularity of mmap and mprotect in the
 * target, of the patch region's layout and of the load bias. A port to an
 * architecture with larger pages changes it here (test-procfs checks it
 * against sysconf(_SC_PAGESIZE)).
 */
#define HP_PAGE_SIZE 4096u

/* Bound on the text of /proc/PID/maps read at once (about 300k mappings). */
#define PROC_MAPS_MAX_BYTES (64u << 20)

/* One line of /proc/PID/maps (proc(5)): start-end perms offset dev inode [path]. */
struct proc_map {
	uint64_t start;
	uint64_t end;
	uint64_t offset;
	uint64_t inode;
	unsigned dev_major;
	unsigned dev_minor;
	unsigned prot;   /* PROT_READ | PROT_WRITE | PROT_EXEC */
	bool shared;
	char *path;      /* NULL for an anonymous mapping; "[vdso]", "/usr/lib/..." */
};

struct proc_maps {
	struct proc_map *v;
	size_t n;
};

/*
 * Parse one line (no newline) in place: ret->path points into line, or is
 * NULL. Hand-written, not sscanf: the engine's safety check parses the
 * whole text inside the stop on kernels without PROCMAP_QUERY, and sscanf
 * costs as much as the kernel's formatting of it. -EINVAL when malformed.
 */
int proc_map_parse_line(char *line, struct proc_map *ret);
/* The mappings of pid, sorted by address as the kernel lists them; when the
 * leader has left (pthread_exit in main), those a live thread sees. */
int proc_maps_read(pid_t pid, struct proc_maps *ret);
/*
 * The same, and the descriptor they were read from kept open in *ret_fd
 * (the caller closes it; -1 on failure): it names that process's memory,
 * not its PID, as /proc/PID/mem does, and answers PROCMAP_QUERY later
 * without another open.
 */
int proc_maps_read_keep(pid_t pid, struct proc_maps *ret, int *ret_fd);
void proc_maps_release(struct proc_maps *m);
/* The mapping holding addr, or NULL. */
const struct proc_map *proc_maps_find(const struct proc_maps *m, uint64_t addr);

/* flags: a kernel thread, which has no memory of its own (include/linux/sched.h) */
#define PROC_PF_KTHREAD 0x00200000ul
/* What an operation on one says (-ENOENT), whoever finds it out: the
 * engine from the stat flags, ctl from the status text. */
#define PROC_KTHREAD_MSG "process %d is a kernel thread: nothing to patch"

/* The fields of /proc/PID/stat the project uses (proc(5) numbers them). */
struct proc_stat_fields {
	char state;                  /* field 3: R, S, D, T, t, Z, X... */
	unsigned long flags;         /* field 9: the kernel's PF_* flags of the task */
	long num_threads;            /* field 20 */
	uint64_t start_time;         /* field 22, clock ticks after boot */
	char comm[HP_COMM_SIZE];   /* field 2, without its parentheses */
};

/*
 * Parse the text of /proc/PID/stat. comm may hold spaces and parentheses:
 * the fields start after the last ')'. -EIO when it is not that format.
 */
int proc_stat_parse(const char *text, struct proc_stat_fields *ret);
/* Read and parse /proc/PID/stat: -ESRCH (with a message) when the process
 * is gone, -EIO when the text is not as expected, else the read's error. */
int proc_stat_read(pid_t pid, struct proc_stat_fields *ret);
/*
 * The same from a descriptor of /proc/PID/stat kept open (proc_stat_open;
 * -ESRCH with a message when that cannot be opened): read again from its
 * start, the text is made anew. The descriptor names the process it was
 * opened for, not its PID: once that process is gone, -ESRCH, whoever has
 * the PID since.
 */
int proc_stat_open(pid_t pid);
int proc_stat_fd_read(int fd, pid_t pid, struct proc_stat_fields *ret);
/* Field 3 (state) and 22 (start time); either output may be NULL. */
int proc_stat(pid_t pid, char *ret_state, uint64_t *ret_start_time);
/*
 * The threads the kernel counts in the group (field 20 of /proc/PID/stat,
 * a zombie leader included), from the link count of /proc/PID/task: one
 * stat, cheap enough for inside the stop; -1 when unknown.
 */
long proc_thread_count(pid_t pid);
/* The same from a descriptor of /proc/PID/task kept open (it names the process, not its PID). */
long proc_thread_count_fd(int task_fd);
/* The state letter of thread tid of pid (R, S, D, Z...); -ESRCH when gone. */
int proc_task_state(pid_t pid, pid_t tid, char *ret_state);
/* A live thread of pid: pid itself, or another when the leader has left
 * (its /proc/PID/{maps,mem} are then empty); 0 if none. */
pid_t proc_live_tid(pid_t pid);

/*
 * The most of /proc/PID/status anyone reads: its Groups: line holds up to
 * NGROUPS_MAX (65536) supplementary group ids.
 */
#define HP_PROC_STATUS_MAX (1u << 20)

/* A field of /proc/PID/mountinfo with its octal escapes ("\040" for a blank) undone, in place. */
char *proc_mountinfo_unescape(char *s);

#endif

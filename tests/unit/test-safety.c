/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of safety_check() on a real process: the fixture
 * tests/fixtures/safety/safety-target (threads spinning in A, sleeping under
 * B, sleeping under a function without unwind info, idle) is started, every
 * thread is seized, interrupted and waited for here, and the check is run
 * with the ranges of the fixture's functions (symbol table + load bias from
 * /proc/PID/maps). The fixture is killed by PID in the teardown.
 * A second fixture, safety-mover, grows its thread's stack mapping after a
 * live session listed the mappings (test_stale_snapshot).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <gelf.h>
#include <libelf.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "apply-int.h"

#define MAX_TIDS 64

struct fixture {
	char path[PATH_MAX];
	pid_t pid;
	pid_t tids[MAX_TIDS];
	size_t n_tids;
	bool stopped[MAX_TIDS];
	pid_t tid_a, tid_b, tid_noinfo, tid_alt, tid_deep, tid_idle;
	uint64_t bias;
};

static struct fixture fx;

/* ---- helpers ----------------------------------------------------------- */

static const char *fixture_name = "safety-target";

static void fixture_path(const char *name, char *out, size_t len)
{
	char self[PATH_MAX - 64];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;

	assert_true(n > 0);
	self[n] = '\0';
	slash = strrchr(self, '/');
	assert_non_null(slash);
	*slash = '\0';
	snprintf(out, len, "%s/fixtures/safety/%s", self, name);
}

/* Start the fixture; return once it printed "ready". */
static pid_t fixture_start(const char *path)
{
	int fds[2];
	char buf[16] = "";
	struct pollfd pfd;
	ssize_t n;
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* never outlive the test, even when a setup assert fails */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(fds[1], STDOUT_FILENO);
		close(fds[0]);
		close(fds[1]);
		execl(path, path, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	pfd.fd = fds[0];
	pfd.events = POLLIN;
	assert_int_equal(poll(&pfd, 1, 10000), 1);
	n = read(fds[0], buf, sizeof(buf) - 1);
	close(fds[0]);
	assert_true(n > 0);
	assert_memory_equal(buf, "ready", 5);
	return pid;
}

static int read_small(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

static char thread_state(pid_t pid, pid_t tid)
{
	char path[64], buf[512], *p;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, (int)tid);
	if (read_small(path, buf, sizeof(buf)) < 0)
		return '?';
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : '?';
}

static void list_threads(struct fixture *f)
{
	char path[64], comm[64];
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)f->pid);
	d = opendir(path);
	assert_non_null(d);
	f->n_tids = 0;
	while ((de = readdir(d))) {
		pid_t tid = (pid_t)atoi(de->d_name);

		if (tid <= 0)
			continue;
		assert_true(f->n_tids < MAX_TIDS);
		f->tids[f->n_tids++] = tid;
		snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", (int)f->pid, (int)tid);
		assert_int_equal(read_small(path, comm, sizeof(comm)), 0);
		comm[strcspn(comm, "\n")] = '\0';
		if (strcmp(comm, "in-a") == 0)
			f->tid_a = tid;
		else if (strcmp(comm, "in-b") == 0)
			f->tid_b = tid;
		else if (strcmp(comm, "noinfo") == 0)
			f->tid_noinfo = tid;
		else if (strcmp(comm, "altstack") == 0)
			f->tid_alt = tid;
		else if (strcmp(comm, "deep") == 0)
			f->tid_deep = tid;
		else if (strcmp(comm, "idle") == 0)
			f->tid_idle = tid;
	}
	closedir(d);
	assert_true(f->tid_a && f->tid_b && f->tid_noinfo && f->tid_alt && f->tid_deep &&
		    f->tid_idle);
}

/* Wait (bounded) until the sleeping threads are in their sleep. */
static void wait_asleep(const struct fixture *f)
{
	for (int i = 0; i < 5000; i++) {
		if (thread_state(f->pid, f->tid_b) == 'S' &&
		    thread_state(f->pid, f->tid_noinfo) == 'S' &&
		    thread_state(f->pid, f->tid_alt) == 'S' &&
		    thread_state(f->pid, f->tid_deep) == 'S')
			return;
		usleep(1000);
	}
	fail_msg("fixture threads never went to sleep");
}

static void stop_all(struct fixture *f)
{
	for (size_t i = 0; i < f->n_tids; i++) {
		int st;

		assert_int_equal(ptrace(PTRACE_SEIZE, f->tids[i], NULL, NULL), 0);
		f->stopped[i] = true;
		assert_int_equal(ptrace(PTRACE_INTERRUPT, f->tids[i], NULL, NULL), 0);
		assert_int_equal(waitpid(f->tids[i], &st, __WALL), f->tids[i]);
		assert_true(WIFSTOPPED(st));
	}
}

/* Load bias of the fixture: start of its offset-0 mapping minus the page
 * of its first PT_LOAD. */
static uint64_t load_bias(const struct fixture *f, Elf *e)
{
	char mpath[64], line[PATH_MAX + 128], real[PATH_MAX];
	uint64_t start = 0, first_vaddr = UINT64_MAX;
	size_t n_ph;
	FILE *fp;

	assert_non_null(realpath(f->path, real));
	snprintf(mpath, sizeof(mpath), "/proc/%d/maps", (int)f->pid);
	fp = fopen(mpath, "r");
	assert_non_null(fp);
	while (fgets(line, sizeof(line), fp)) {
		unsigned long long s, e2, off;
		int name = 0;

		if (sscanf(line, "%llx-%llx %*s %llx %*s %*s %n", &s, &e2, &off, &name) >= 3 &&
		    name > 0 && off == 0) {
			line[strcspn(line, "\n")] = '\0';
			if (strcmp(line + name, real) == 0) {
				start = s;
				break;
			}
		}
	}
	fclose(fp);
	assert_true(start != 0);
	assert_int_equal(elf_getphdrnum(e, &n_ph), 0);
	for (size_t i = 0; i < n_ph; i++) {
		GElf_Phdr ph;

		assert_non_null(gelf_getphdr(e, (int)i, &ph));
		if (ph.p_type == PT_LOAD && ph.p_vaddr < first_vaddr)
			first_vaddr = ph.p_vaddr;
	}
	return start - (first_vaddr & ~(uint64_t)4095);
}

/* Runtime range of function name in fixture f. */
static struct safety_range sym_range_of(struct fixture *f, const char *name)
{
	struct safety_range r = { 0, 0, name };
	Elf_Scn *scn = NULL;
	Elf *e;
	int fd;

	assert_int_not_equal(elf_version(EV_CURRENT), EV_NONE);
	fd = open(f->path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	e = elf_begin(fd, ELF_C_READ, NULL);
	assert_non_null(e);
	if (!f->bias)
		f->bias = load_bias(f, e);
	while ((scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;

		assert_non_null(gelf_getshdr(scn, &sh));
		if (sh.sh_type != SHT_SYMTAB)
			continue;
		d = elf_getdata(scn, NULL);
		assert_non_null(d);
		for (size_t i = 0; i < sh.sh_size / sh.sh_entsize; i++) {
			GElf_Sym s;
			const char *n;

			assert_non_null(gelf_getsym(d, (int)i, &s));
			n = elf_strptr(e, sh.sh_link, s.st_name);
			if (n && strcmp(n, name) == 0 && GELF_ST_TYPE(s.st_info) == STT_FUNC) {
				r.start = f->bias + s.st_value;
				r.end = r.start + s.st_size;
			}
		}
	}
	elf_end(e);
	close(fd);
	if (r.start == 0)
		fail_msg("no symbol %s in %s", name, f->path);
	assert_true(r.end > r.start);
	return r;
}

/* Runtime range of function name in the safety-target fixture. */
static struct safety_range sym_range(const char *name)
{
	return sym_range_of(&fx, name);
}

static struct user_regs_struct regs_of(pid_t tid)
{
	struct user_regs_struct regs;

	assert_int_equal(ptrace(PTRACE_GETREGS, tid, NULL, &regs), 0);
	return regs;
}

/* how NULL: the program counter, the message is exactly the contract's
 * "function NAME active in thread TID"; else it starts with that + " (how". */
static void assert_busy_msg(int r, const char *fn, pid_t tid, const char *how)
{
	char want[160];

	assert_int_equal(r, -EBUSY);
	if (!how) {
		snprintf(want, sizeof(want), "function %s active in thread %d", fn, (int)tid);
		assert_string_equal(hp_errmsg(r), want);
		return;
	}
	snprintf(want, sizeof(want), "function %s active in thread %d (%s", fn, (int)tid, how);
	if (strncmp(hp_errmsg(r), want, strlen(want)) != 0)
		fail_msg("message \"%s\", expected it to start with \"%s\"", hp_errmsg(r), want);
}

static int check(const struct safety_range *r, size_t n)
{
	hp_err_clear();
	return safety_check(fx.pid, fx.tids, fx.n_tids, r, n);
}

/* ---- setup ------------------------------------------------------------- */

static int group_setup(void **state)
{
	memset(&fx, 0, sizeof(fx));
	fixture_path(fixture_name, fx.path, sizeof(fx.path));
	fx.pid = fixture_start(fx.path);
	list_threads(&fx);
	wait_asleep(&fx);
	stop_all(&fx);
	return 0;
}

static int group_teardown(void **state)
{
	for (size_t i = 0; i < fx.n_tids; i++)
		if (fx.stopped[i])
			ptrace(PTRACE_DETACH, fx.tids[i], NULL, NULL);
	if (fx.pid > 0) {
		kill(fx.pid, SIGKILL);
		waitpid(fx.pid, NULL, 0);
	}
	return 0;
}

/* ---- tests ------------------------------------------------------------- */

static void test_pc_busy(void **state)
{
	struct safety_range a = sym_range("spin_in_a");

	assert_busy_msg(check(&a, 1), "spin_in_a", fx.tid_a, NULL);
}

static void test_return_address_busy(void **state)
{
	struct safety_range b = sym_range("sleep_in_b");

	assert_busy_msg(check(&b, 1), "sleep_in_b", fx.tid_b, "return address at frame ");
}

static void test_main_busy(void **state)
{
	struct safety_range m = sym_range("main");

	assert_busy_msg(check(&m, 1), "main", fx.pid, "return address at frame ");
}

static void test_unrelated_safe(void **state)
{
	struct safety_range c[2] = { sym_range("never_called"), sym_range("thread_main") };

	assert_int_equal(check(&c[0], 1), 0);
	assert_false(hp_err_isset());
	/* thread_main is on four stacks: with C first in the list, still busy */
	assert_int_equal(check(c, 2), -EBUSY);
	assert_non_null(strstr(hp_errmsg(-EBUSY), "function thread_main active in thread "));
	assert_int_equal(check(c, 0), 0);
}

static void test_many_ranges(void **state)
{
	struct safety_range r[3] = { sym_range("never_called"), sym_range("spin_in_a"),
				     sym_range("sleep_in_b") };

	assert_int_equal(check(r, 3), -EBUSY);
	/* the first busy thread found names its function */
	assert_non_null(strstr(hp_errmsg(-EBUSY), "active in thread"));
}

/*
 * The same check one thread at a time (what the engine does while it stops
 * the others): each thread gives the result safety_check gives for it
 * alone, with the registers the stop read (PTRACE_GETREGS here) or
 * read by the check itself; a live session drops what it read between
 * threads and still finds the unwinder's cases (return addresses).
 */
static void test_session_per_thread(void **state)
{
	struct safety_range r[3] = { sym_range("never_called"), sym_range("spin_in_a"),
				     sym_range("sleep_in_b") };

	for (int live = 0; live < 2; live++) {
		for (int given = 0; given < 2; given++) {
			struct safety_session *s = NULL;
			int n_busy = 0;

			assert_int_equal(safety_begin(fx.pid, r, 3, live, &s), 0);
			for (size_t i = 0; i < fx.n_tids; i++) {
				struct user_regs_struct regs;
				uint64_t raw[32] = { 0 };
				int want, got;

				assert_int_equal(ptrace(PTRACE_GETREGS, fx.tids[i], NULL, &regs), 0);
				memcpy(raw, &regs, sizeof(regs));
				hp_err_clear();
				want = safety_check(fx.pid, &fx.tids[i], 1, r, 3);
				hp_err_clear();
				got = safety_thread(s, fx.tids[i], given ? raw : NULL);
				assert_int_equal(got, want);
				if (fx.tids[i] == fx.tid_a)
					assert_busy_msg(got, "spin_in_a", fx.tid_a, NULL);
				if (fx.tids[i] == fx.tid_b)
					assert_busy_msg(got, "sleep_in_b", fx.tid_b,
							"return address at frame ");
				n_busy += got == -EBUSY;
			}
			assert_int_equal(n_busy, 2);
			safety_end(s);
		}
	}
	safety_end(NULL);
}

/*
 * Frames above a function without unwind info are not guessed: E
 * (call_through_asm) is visible only to the stack scan; D, below the
 * assembly function, is an ordinary return address.
 */
static void test_noinfo_conservative(void **state)
{
	struct safety_range d = sym_range("sleep_in_d");
	struct safety_range e = sym_range("call_through_asm");
	struct safety_range c = sym_range("never_called");
	struct safety_range asmfn = sym_range("noinfo_call");
	int r;

	assert_busy_msg(check(&d, 1), "sleep_in_d", fx.tid_noinfo, "return address at frame ");
	r = check(&e, 1);
	print_message("noinfo thread, E: %s\n", hp_errmsg(r));
	assert_busy_msg(r, "call_through_asm", fx.tid_noinfo, "");
	/* the assembly function itself holds a return address */
	assert_busy_msg(check(&asmfn, 1), "noinfo_call", fx.tid_noinfo, "");
	/* and the scan does not make everything busy */
	assert_int_equal(check(&c, 1), 0);
}

/*
 * A signal handler on a sigaltstack: G's return address is on the normal
 * stack, out of reach of a scan of the stack the thread runs on. The
 * signal frame sends the thread to the unwinder, which crosses it.
 */
static void test_sigaltstack(void **state)
{
	struct safety_range g = sym_range("signal_from_g");
	int r = check(&g, 1);

	print_message("altstack thread, G: %s\n", hp_errmsg(r));
	assert_busy_msg(r, "signal_from_g", fx.tid_alt, "return address at frame ");
}

/*
 * Past the 256-frame bound the rest of the stack is scanned: a caller
 * below the bound is still found; the bound alone makes nothing busy.
 */
static void test_frame_bound(void **state)
{
	struct safety_range bottom = sym_range("deep_bottom");
	struct safety_range rec = sym_range("recurse");
	struct safety_range c = sym_range("never_called");
	int r = check(&bottom, 1);

	print_message("deep thread, bottom: %s\n", hp_errmsg(r));
	assert_busy_msg(r, "deep_bottom", fx.tid_deep, "address on the stack at sp+0x");
	assert_non_null(strstr(hp_errmsg(r), "beyond the frame bound"));
	assert_busy_msg(check(&rec, 1), "recurse", fx.tid_deep, "return address at frame ");
	assert_int_equal(check(&c, 1), 0);
}

/* Range bounds against a real program counter: start inclusive, end not. */
static void test_pc_bounds(void **state)
{
	struct user_regs_struct regs = regs_of(fx.tid_a);
	struct safety_range at = { regs.rip, regs.rip + 1, "at_pc" };
	struct safety_range below = { regs.rip - 16, regs.rip, "below_pc" };

	assert_busy_msg(check(&at, 1), "at_pc", fx.tid_a, NULL);
	assert_int_equal(check(&below, 1), 0);
}

/* A thread stopped on the first byte of a function: its PC == start. */
static void test_pc_at_entry(void **state)
{
	struct user_regs_struct saved = regs_of(fx.tid_idle), regs = saved;
	struct safety_range c = sym_range("never_called");
	int r;

	regs.rip = c.start;
	regs.orig_rax = (unsigned long long)-1; /* not in a syscall now */
	assert_int_equal(ptrace(PTRACE_SETREGS, fx.tid_idle, NULL, &regs), 0);
	r = check(&c, 1);
	assert_int_equal(ptrace(PTRACE_SETREGS, fx.tid_idle, NULL, &saved), 0);
	assert_busy_msg(r, "never_called", fx.tid_idle, NULL);
	assert_int_equal(check(&c, 1), 0);
}

/* In a restartable syscall, pc - 2 (the syscall instruction) counts. */
static void test_syscall_restart(void **state)
{
	struct user_regs_struct regs = regs_of(fx.tid_b);
	struct safety_range insn = { regs.rip - 2, regs.rip, "syscall_insn" };

	assert_true((long long)regs.orig_rax >= 0);
	/* every thread sleeping in nanosleep sits there; B's is one */
	assert_int_equal(check(&insn, 1), -EBUSY);
	assert_non_null(strstr(hp_errmsg(-EBUSY), "function syscall_insn active in thread "));
	assert_null(strchr(hp_errmsg(-EBUSY), '('));
}

static void test_vanished_thread(void **state)
{
	struct safety_range c = sym_range("never_called");
	pid_t tids[MAX_TIDS + 1];
	pid_t gone = fork();
	char want[64];
	int r;

	assert_true(gone >= 0);
	if (gone == 0)
		_exit(0);
	assert_int_equal(waitpid(gone, NULL, 0), gone);
	memcpy(tids, fx.tids, fx.n_tids * sizeof(pid_t));
	tids[fx.n_tids] = gone;
	hp_err_clear();
	r = safety_check(fx.pid, tids, fx.n_tids + 1, &c, 1);
	assert_int_equal(r, -ESRCH);
	snprintf(want, sizeof(want), "thread %d vanished", (int)gone);
	assert_string_equal(hp_errmsg(r), want);
}

/* A whole process that died (its PID reaped) is -ESRCH as well. */
static void test_vanished_process(void **state)
{
	struct safety_range c = sym_range("never_called");
	pid_t gone = fork();
	int r;

	assert_true(gone >= 0);
	if (gone == 0)
		_exit(0);
	assert_int_equal(waitpid(gone, NULL, 0), gone);
	hp_err_clear();
	r = safety_check(gone, &gone, 1, &c, 1);
	assert_int_equal(r, -ESRCH);
	assert_true(hp_err_isset());
}

/* ---- a stale list of mappings (safety-mover) ---------------------------- */

/*
 * A live session lists the mappings at safety_begin, before the stop, and
 * trusts where that list ends a thread's stack only when the word past
 * that end does not read (read_stack_hint). The fixture's thread "mover"
 * runs on a stack in [X, X + 2p) with nothing mapped at X + 2p; told to,
 * it maps the page at X + 2p (merged into one mapping [X, X + 3p)) and
 * moves to a stack whose top is X + 3p: the return address into range_fn
 * then lies above X + 2p, its stack pointer below. A scan of [sp, X + 2p)
 * alone, what the old list says, would not see range_fn.
 */
struct mover {
	struct fixture f; /* path, pid, bias */
	int in_fd;        /* its stdin: a byte makes it move */
	int out_fd;       /* its stdout: "ready X", then "moved" */
	uint64_t x;       /* start of its region */
	pid_t tid;        /* the thread "mover" */
	bool seized;
};

static struct mover mv;

/* One line from fd (bounded wait), without its newline. */
static void read_line(int fd, char *buf, size_t len)
{
	size_t n = 0;

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		char c;

		assert_int_equal(poll(&pfd, 1, 10000), 1);
		assert_int_equal(read(fd, &c, 1), 1);
		if (c == '\n')
			break;
		assert_true(n + 1 < len);
		buf[n++] = c;
	}
	buf[n] = '\0';
}

static pid_t thread_named(pid_t pid, const char *name)
{
	char path[64], comm[64];
	struct dirent *de;
	pid_t found = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	assert_non_null(d);
	while ((de = readdir(d))) {
		pid_t tid = (pid_t)atoi(de->d_name);

		if (tid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", (int)pid, (int)tid);
		if (read_small(path, comm, sizeof(comm)) < 0)
			continue;
		comm[strcspn(comm, "\n")] = '\0';
		if (strcmp(comm, name) == 0)
			found = tid;
	}
	closedir(d);
	if (!found)
		fail_msg("no thread %s in process %d", name, (int)pid);
	return found;
}

/* Wait (bounded) until thread tid blocks in system call nr1 or nr2. */
static void wait_in_syscall(pid_t pid, pid_t tid, long nr1, long nr2)
{
	char path[64], buf[256];

	snprintf(path, sizeof(path), "/proc/%d/task/%d/syscall", (int)pid, (int)tid);
	for (int i = 0; i < 5000; i++) {
		if (read_small(path, buf, sizeof(buf)) == 0 && buf[0] >= '0' && buf[0] <= '9') {
			long nr = strtol(buf, NULL, 10);

			if ((nr == nr1 || nr == nr2) && thread_state(pid, tid) == 'S')
				return;
		}
		usleep(1000);
	}
	fail_msg("thread %d never blocked in system call %ld", (int)tid, nr1);
}

static void mover_seize(void)
{
	int st;

	assert_int_equal(ptrace(PTRACE_SEIZE, mv.tid, NULL, NULL), 0);
	mv.seized = true;
	assert_int_equal(ptrace(PTRACE_INTERRUPT, mv.tid, NULL, NULL), 0);
	assert_int_equal(waitpid(mv.tid, &st, __WALL), mv.tid);
	assert_true(WIFSTOPPED(st));
}

static void mover_detach(void)
{
	assert_int_equal(ptrace(PTRACE_DETACH, mv.tid, NULL, NULL), 0);
	mv.seized = false;
}

/* The mapping of the fixture holding addr, from /proc/PID/maps. */
static void mapping_at(uint64_t addr, uint64_t *ret_start, uint64_t *ret_end)
{
	char path[64], line[PATH_MAX + 128];
	bool found = false;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)mv.f.pid);
	fp = fopen(path, "r");
	assert_non_null(fp);
	while (!found && fgets(line, sizeof(line), fp)) {
		unsigned long long s, e;

		if (sscanf(line, "%llx-%llx", &s, &e) == 2 && s <= addr && addr < e) {
			*ret_start = s;
			*ret_end = e;
			found = true;
		}
	}
	fclose(fp);
	if (!found)
		fail_msg("no mapping of process %d holds 0x%" PRIx64, (int)mv.f.pid, addr);
}

/* Whether the word at addr of the fixture reads. */
static bool word_reads(uint64_t addr)
{
	uint64_t w;
	struct iovec local = { &w, sizeof(w) };
	struct iovec remote = { (void *)(uintptr_t)addr, sizeof(w) };

	return process_vm_readv(mv.f.pid, &local, 1, &remote, 1, 0) == (ssize_t)sizeof(w);
}

static int mover_setup(void **state)
{
	int in[2], out[2];
	char line[64], *end;

	memset(&mv, 0, sizeof(mv));
	mv.in_fd = mv.out_fd = -1;
	fixture_path("safety-mover", mv.f.path, sizeof(mv.f.path));
	assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	mv.f.pid = fork();
	assert_true(mv.f.pid >= 0);
	if (mv.f.pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(in[0], STDIN_FILENO);
		dup2(out[1], STDOUT_FILENO);
		execl(mv.f.path, mv.f.path, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	mv.in_fd = in[1];
	mv.out_fd = out[0];
	read_line(mv.out_fd, line, sizeof(line));
	assert_memory_equal(line, "ready ", 6);
	mv.x = strtoull(line + 6, &end, 16);
	assert_true(mv.x != 0 && *end == '\0');
	mv.tid = thread_named(mv.f.pid, "mover");
	return 0;
}

static int mover_teardown(void **state)
{
	if (mv.seized)
		ptrace(PTRACE_DETACH, mv.tid, NULL, NULL);
	if (mv.f.pid > 0) {
		kill(mv.f.pid, SIGKILL);
		waitpid(mv.f.pid, NULL, 0);
	}
	if (mv.in_fd >= 0)
		close(mv.in_fd);
	if (mv.out_fd >= 0)
		close(mv.out_fd);
	return 0;
}

static void test_stale_snapshot(void **state)
{
	struct safety_range fn = sym_range_of(&mv.f, "range_fn");
	struct safety_range wait = sym_range_of(&mv.f, "wait_fn");
	struct safety_session *stale = NULL, *ok_fn = NULL, *ok_wait = NULL, *fresh = NULL;
	const uint64_t p = (uint64_t)sysconf(_SC_PAGESIZE), x = mv.x;
	struct user_regs_struct regs;
	uint64_t start, end, *words;
	size_t n_words, below = 0, above = 0;
	char line[64];

	/* before: its stack in [x, x + 2p), nothing readable at x + 2p */
	wait_in_syscall(mv.f.pid, mv.tid, SYS_read, SYS_read);
	mapping_at(x, &start, &end);
	assert_true(start == x && end == x + 2 * p);
	assert_false(word_reads(x + 2 * p));
	/* the lists of mappings taken while it runs */
	assert_int_equal(safety_begin(mv.f.pid, &fn, 1, true, &stale), 0);
	assert_int_equal(safety_begin(mv.f.pid, &fn, 1, true, &ok_fn), 0);
	assert_int_equal(safety_begin(mv.f.pid, &wait, 1, true, &ok_wait), 0);

	/* the list is right: it is trusted and gives the right answers */
	mover_seize();
	regs = regs_of(mv.tid);
	assert_true(regs.rsp >= x && regs.rsp < x + 2 * p);
	hp_err_clear();
	assert_int_equal(safety_thread(ok_fn, mv.tid, NULL), 0);
	assert_false(hp_err_isset());
	hp_err_clear();
	assert_busy_msg(safety_thread(ok_wait, mv.tid, NULL), "wait_fn", mv.tid,
			"return address at frame ");
	safety_end(ok_fn);
	safety_end(ok_wait);
	mover_detach();

	/* the move: [x, x + 3p) now, the thread in range_fn's callee */
	assert_int_equal(write(mv.in_fd, "m", 1), 1);
	read_line(mv.out_fd, line, sizeof(line));
	assert_string_equal(line, "moved");
	wait_in_syscall(mv.f.pid, mv.tid, SYS_nanosleep, SYS_clock_nanosleep);
	mover_seize();
	regs = regs_of(mv.tid);
	assert_true((long long)regs.orig_rax == SYS_nanosleep ||
		    (long long)regs.orig_rax == SYS_clock_nanosleep);

	/* the layout the case needs: one mapping [x, x + 3p), sp below x + 2p,
	 * every word of the stack in range_fn at or above x + 2p */
	mapping_at(x, &start, &end);
	assert_true(start == x && end == x + 3 * p);
	assert_true(word_reads(x + 2 * p));
	assert_true(regs.rsp >= x && regs.rsp < x + 2 * p);
	n_words = (x + 3 * p - (regs.rsp & ~7ULL)) / sizeof(uint64_t);
	words = calloc(n_words, sizeof(uint64_t));
	assert_non_null(words);
	{
		struct iovec local = { words, n_words * sizeof(uint64_t) };
		struct iovec remote = { (void *)(uintptr_t)(regs.rsp & ~7ULL),
					n_words * sizeof(uint64_t) };

		assert_int_equal(process_vm_readv(mv.f.pid, &local, 1, &remote, 1, 0),
				 (ssize_t)(n_words * sizeof(uint64_t)));
	}
	for (size_t i = 0; i < n_words; i++) {
		uint64_t at = (regs.rsp & ~7ULL) + i * sizeof(uint64_t);

		if (words[i] > fn.start && words[i] < fn.end)
			*(at < x + 2 * p ? &below : &above) += 1;
	}
	free(words);
	print_message("mover: sp at x+0x%llx, range_fn words below x+2p %zu, above %zu\n",
		      (unsigned long long)(regs.rsp - x), below, above);
	assert_int_equal(below, 0);
	assert_true(above >= 1);

	/* the list of before the move: the word at x + 2p reads, so the
	 * kernel is asked and range_fn is seen */
	hp_err_clear();
	assert_busy_msg(safety_thread(stale, mv.tid, NULL), "range_fn", mv.tid,
			"return address at frame ");
	print_message("stale list: %s\n", hp_errmsg(-EBUSY));
	safety_end(stale);
	/* and what a check without a list, or with a fresh one, says */
	hp_err_clear();
	assert_busy_msg(safety_check(mv.f.pid, &mv.tid, 1, &fn, 1), "range_fn", mv.tid,
			"return address at frame ");
	assert_int_equal(safety_begin(mv.f.pid, &fn, 1, true, &fresh), 0);
	hp_err_clear();
	assert_busy_msg(safety_thread(fresh, mv.tid, NULL), "range_fn", mv.tid,
			"return address at frame ");
	safety_end(fresh);
	mover_detach();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pc_busy),
		cmocka_unit_test(test_return_address_busy),
		cmocka_unit_test(test_main_busy),
		cmocka_unit_test(test_unrelated_safe),
		cmocka_unit_test(test_many_ranges),
		cmocka_unit_test(test_session_per_thread),
		cmocka_unit_test(test_noinfo_conservative),
		cmocka_unit_test(test_sigaltstack),
		cmocka_unit_test(test_frame_bound),
		cmocka_unit_test(test_pc_bounds),
		cmocka_unit_test(test_pc_at_entry),
		cmocka_unit_test(test_syscall_restart),
		cmocka_unit_test(test_vanished_thread),
		cmocka_unit_test(test_vanished_process),
	};

	const struct CMUnitTest mover_tests[] = {
		cmocka_unit_test(test_stale_snapshot),
	};
	int failed;

	/* with PROCMAP_QUERY (Linux 6.11+), then with the parsed
	 * /proc/PID/maps text older kernels get (forced by a test hook, so
	 * only in test builds); PIE, then non-PIE */
	failed = cmocka_run_group_tests_name("safety, PIE, PROCMAP_QUERY", tests, group_setup,
					     group_teardown);
#ifdef HP_TEST_HOOKS
	setenv("HP_SAFETY_MAPS_TEXT", "1", 1);
	failed += cmocka_run_group_tests_name("safety, PIE, maps text", tests, group_setup,
					      group_teardown);
	unsetenv("HP_SAFETY_MAPS_TEXT");
#endif
	fixture_name = "safety-target-nopie";
	failed += cmocka_run_group_tests_name("safety, non-PIE", tests, group_setup,
					      group_teardown);
	/* the stale list, with each way of asking for the mapping again */
	failed += cmocka_run_group_tests_name("safety, stale list, PROCMAP_QUERY", mover_tests,
					      mover_setup, mover_teardown);
#ifdef HP_TEST_HOOKS
	setenv("HP_SAFETY_MAPS_TEXT", "1", 1);
	failed += cmocka_run_group_tests_name("safety, stale list, maps text", mover_tests,
					      mover_setup, mover_teardown);
	unsetenv("HP_SAFETY_MAPS_TEXT");
#else
	printf("# skipped: the maps-text groups (HP_SAFETY_MAPS_TEXT needs -Dtest_hooks=true)\n");
#endif
	return failed;
}

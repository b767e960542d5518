/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of safety_check() on a real process: the fixture
 * tests/fixtures/safety/safety-target (threads spinning in A, sleeping under
 * B, sleeping under a function without unwind info, idle) is started, every
 * thread is seized, interrupted and waited for here, and the check is run
 * with the ranges of the fixture's functions (symbol table + load bias from
 * /proc/PID/maps). The fixture is killed by PID in the teardown.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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

static void fixture_path(char *out, size_t len)
{
	char self[PATH_MAX - 64];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;

	assert_true(n > 0);
	self[n] = '\0';
	slash = strrchr(self, '/');
	assert_non_null(slash);
	*slash = '\0';
	snprintf(out, len, "%s/fixtures/safety/%s", self, fixture_name);
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

/* Runtime range of function name in the fixture. */
static struct safety_range sym_range(const char *name)
{
	struct safety_range r = { 0, 0, name };
	Elf_Scn *scn = NULL;
	Elf *e;
	int fd;

	assert_int_not_equal(elf_version(EV_CURRENT), EV_NONE);
	fd = open(fx.path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	e = elf_begin(fd, ELF_C_READ, NULL);
	assert_non_null(e);
	if (!fx.bias)
		fx.bias = load_bias(&fx, e);
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
				r.start = fx.bias + s.st_value;
				r.end = r.start + s.st_size;
			}
		}
	}
	elf_end(e);
	close(fd);
	if (r.start == 0)
		fail_msg("no symbol %s in %s", name, fx.path);
	assert_true(r.end > r.start);
	return r;
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
	fixture_path(fx.path, sizeof(fx.path));
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

	int failed;

	/* with PROCMAP_QUERY (Linux 6.11+), then with the parsed
	 * /proc/PID/maps text older kernels get; PIE, then non-PIE */
	unsetenv("HP_SAFETY_MAPS_TEXT");
	failed = cmocka_run_group_tests_name("safety, PIE, PROCMAP_QUERY", tests, group_setup,
					     group_teardown);
	setenv("HP_SAFETY_MAPS_TEXT", "1", 1);
	failed += cmocka_run_group_tests_name("safety, PIE, maps text", tests, group_setup,
					      group_teardown);
	unsetenv("HP_SAFETY_MAPS_TEXT");
	fixture_name = "safety-target-nopie";
	failed += cmocka_run_group_tests_name("safety, non-PIE", tests, group_setup,
					      group_teardown);
	return failed;
}

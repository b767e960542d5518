/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-apply: the pause of apply_patch/apply_revert against the bare
 * ptrace stop of the same process in the same run, as measured by the
 * engine and as seen by the target; the cost of safety_check; and the cost
 * of a call through a patched entry. See README.md here.
 *
 *   bench-apply [-r REPS] [-t 1,16,64,256] [-f 1,10,100]
 *
 * For each thread count a fresh tests/fixtures/bench/bench-target runs
 * (workers + heartbeat + call-cost thread). The floor is: seize, interrupt
 * and wait every thread, one 5-byte write through /proc/PID/mem (the bytes
 * already there), detach every thread; from the first seize to the last
 * detach. The patch sets are built here from the target's symbol table and
 * the prebuilt bench-patch-N.so (the manifest hp build would write).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <archive.h>
#include <archive_entry.h>
#include <gelf.h>
#include <libelf.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "apply-int.h"
#include "bench-shm.h"

#define MAX_COUNTS 8
#define MAX_THREADS 4200

struct target {
	pid_t pid;
	int threads;
	struct bench_shm *shm;
	char shm_path[64];
	pid_t tids[MAX_THREADS];
	size_t n_tids;
	uint64_t bias;
};

static char target_path[PATH_MAX + 64];
static pid_t daemon_pid; /* HP_BENCH_DAEMON_PID: the daemon serving -m's mount */
static char hp_path[PATH_MAX + 64];
static char patch_dir[PATH_MAX + 64];
static char build_id[129];
static uint64_t sym_off[BENCH_NFUNCS], sym_size[BENCH_NFUNCS];
static uint64_t first_vaddr;

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "bench-apply: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

struct stats {
	uint64_t p50, p99, max;
};

static struct stats stats_of(uint64_t *v, size_t n)
{
	struct stats s = { 0, 0, 0 };
	size_t i99;

	if (n == 0)
		return s;
	qsort(v, n, sizeof(*v), cmp_u64);
	i99 = (n * 99 + 99) / 100;
	s.p50 = v[n / 2];
	s.p99 = v[(i99 ? i99 - 1 : 0) < n ? i99 - 1 : n - 1];
	s.max = v[n - 1];
	return s;
}

/* ---- figures: "NAME VALUE UNIT [vs BASELINE]" lines for tests/bench/run ---- */

static const char *prefix = ""; /* -N: every figure's name begins with it */

static bool profile; /* -p: only the prof.* figures */
/* -p: the engine records each step's CPU time too */
static const struct apply_opts prof_opts = { .prof_cpu = true };

static void figure(const char *name, double v, const char *unit, const char *base)
{
	if (profile && strncmp(name, "prof.", 5) != 0)
		return;
	printf("%s%s %.*f %s", prefix, name, v < 10 ? 2 : v < 100 ? 1 : 0, v, unit);
	if (base)
		printf(" vs %s%s", prefix, base);
	printf("\n");
}

static void figure_fmt(double v, const char *unit, const char *base, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void figure_fmt(double v, const char *unit, const char *base, const char *fmt, ...)
{
	char name[128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(name, sizeof(name), fmt, ap);
	va_end(ap);
	figure(name, v, unit, base);
}

/* ---- the target binary ------------------------------------------------- */

static void load_symbols(void)
{
	Elf_Scn *scn = NULL;
	size_t n_ph;
	Elf *e;
	int fd, found = 0;

	if (apply_file_build_id(target_path, build_id) < 0)
		die("%s: %s", target_path, hp_errmsg(-ENOEXEC));
	if (elf_version(EV_CURRENT) == EV_NONE)
		die("libelf");
	fd = open(target_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("open %s: %s", target_path, strerror(errno));
	e = elf_begin(fd, ELF_C_READ, NULL);
	if (!e || elf_getphdrnum(e, &n_ph) != 0)
		die("%s: not an ELF file", target_path);
	first_vaddr = UINT64_MAX;
	for (size_t i = 0; i < n_ph; i++) {
		GElf_Phdr ph;

		if (gelf_getphdr(e, (int)i, &ph) && ph.p_type == PT_LOAD && ph.p_vaddr < first_vaddr)
			first_vaddr = ph.p_vaddr;
	}
	while ((scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_SYMTAB)
			continue;
		d = elf_getdata(scn, NULL);
		for (size_t i = 0; d && i < sh.sh_size / sh.sh_entsize; i++) {
			GElf_Sym s;
			const char *name;
			char *end;
			long k;

			if (!gelf_getsym(d, (int)i, &s) || GELF_ST_TYPE(s.st_info) != STT_FUNC)
				continue;
			name = elf_strptr(e, sh.sh_link, s.st_name);
			if (!name || name[0] != 'f' || name[1] < '0' || name[1] > '9')
				continue;
			k = strtol(name + 1, &end, 10);
			if (*end || k < 0 || k >= BENCH_NFUNCS)
				continue;
			sym_off[k] = s.st_value;
			sym_size[k] = s.st_size;
			found++;
		}
	}
	elf_end(e);
	close(fd);
	if (found != BENCH_NFUNCS)
		die("%s: found %d of the %d functions f0..f99", target_path, found, BENCH_NFUNCS);
}

struct patchset {
	int n;
	struct hp_manifest *m;
	char *so;
	size_t so_len;
	char set_id[64];
	struct apply_set set;
};

static void patchset_make(struct patchset *p, int n)
{
	unsigned char digest[crypto_hash_sha256_BYTES];
	char hex[2 * crypto_hash_sha256_BYTES + 1], path[PATH_MAX + 128], name[32];
	struct hp_buf so = HP_BUF_INIT;

	snprintf(path, sizeof(path), "%s/bench-patch-%d.so", patch_dir, n);
	if (hp_read_file(path, 64u << 20, &so) < 0)
		die("read %s: %s", path, hp_errmsg(-EIO));
	crypto_hash_sha256(digest, (const unsigned char *)so.data, so.len);
	sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
	snprintf(name, sizeof(name), "bench-%d", n);
	p->n = n;
	p->m = hp_manifest_new();
	if (!p->m || hp_manifest_set_str(&p->m->name, name) < 0 ||
	    hp_manifest_set_str(&p->m->baseline, "2026.01") < 0 ||
	    hp_manifest_set_str(&p->m->month, "2026-02") < 0 ||
	    hp_manifest_set_str(&p->m->target, "bench-target") < 0 ||
	    hp_manifest_set_str(&p->m->build_id, build_id) < 0 ||
	    hp_manifest_set_str(&p->m->patch_sha256, hex) < 0)
		die("out of memory");
	for (int k = 0; k < n; k++) {
		char fn[16];

		snprintf(fn, sizeof(fn), "f%d", k);
		if (hp_manifest_add_func(p->m, fn, NULL, sym_off[k], sym_size[k], 0) < 0)
			die("manifest: %s", hp_errmsg(-EINVAL));
	}
	if (hp_manifest_validate(p->m) < 0)
		die("manifest: %s", hp_errmsg(-EINVAL));
	snprintf(p->set_id, sizeof(p->set_id), "2026.01/2026-02/%s", name);
	p->so = hp_buf_detach(&so, &p->so_len);
	p->set.set_id = p->set_id;
	p->set.manifest = p->m;
	p->set.so = p->so;
	p->set.so_len = p->so_len;
}

/* Read the members manifest and patch.so of the bundle at path. */
static int bundle_members(const char *path, struct hp_buf *manifest, struct hp_buf *so)
{
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	int r = -EIO;

	archive_read_support_format_all(a);
	archive_read_support_filter_all(a);
	if (archive_read_open_filename(a, path, 16384) != ARCHIVE_OK)
		goto out;
	while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
		const char *name = archive_entry_pathname(e);
		struct hp_buf *dst = strcmp(name, "manifest") == 0 ? manifest :
				     strcmp(name, "patch.so") == 0 ? so : NULL;
		char buf[16384];
		la_ssize_t n;

		while (dst && (n = archive_read_data(a, buf, sizeof(buf))) > 0)
			if (hp_buf_add(dst, buf, (size_t)n) < 0)
				goto out;
	}
	r = manifest->len && so->len ? 0 : -ENOENT;
out:
	archive_read_free(a);
	return r;
}

/*
 * The set as the product makes it: `hp build` on the bench target and
 * bench-patch.c (NFUNCS=n), its bundle read back. 0, or -1 when hp build
 * is not there or fails (the caller falls back to patchset_make).
 */
static int patchset_hp_build(struct patchset *p, int n)
{
	char dir[] = "/tmp/hp-bench-build-XXXXXX", out[64], name[32], nflag[32], src[PATH_MAX + 64];
	struct hp_buf manifest = HP_BUF_INIT, so = HP_BUF_INIT;
	int st, r = -1;
	pid_t pid;

	if (access(hp_path, X_OK) != 0 || !mkdtemp(dir))
		return -1;
	snprintf(out, sizeof(out), "%s/bench-%d.tar", dir, n);
	snprintf(name, sizeof(name), "bench-%d", n);
	snprintf(nflag, sizeof(nflag), "-DNFUNCS=%d", n);
	snprintf(src, sizeof(src), "%s/bench-patch.c", BENCH_SRC_DIR);
	pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, STDOUT_FILENO);
		if (!getenv("BENCH_VERBOSE"))
			dup2(null, STDERR_FILENO);
		execl(hp_path, hp_path, "build", "--target", target_path, "--baseline", "2026.01",
		      "--month", "2026-02", "--name", name, "--cflag", nflag, "-o", out, src,
		      (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		goto out;
	if (bundle_members(out, &manifest, &so) < 0 ||
	    hp_manifest_parse(manifest.data, manifest.len, &p->m) < 0)
		goto out;
	p->n = n;
	snprintf(p->set_id, sizeof(p->set_id), "2026.01/2026-02/%s", name);
	p->so = hp_buf_detach(&so, &p->so_len);
	p->set.set_id = p->set_id;
	p->set.manifest = p->m;
	p->set.so = p->so;
	p->set.so_len = p->so_len;
	r = 0;
out:
	unlink(out);
	rmdir(dir);
	hp_buf_release(&manifest);
	hp_buf_release(&so);
	return r;
}

static void patchset_release(struct patchset *p)
{
	hp_manifest_free(p->m);
	free(p->so);
}

/* ---- the target process ------------------------------------------------ */

static void target_threads(struct target *t)
{
	char path[64];
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)t->pid);
	d = opendir(path);
	if (!d)
		die("target %d vanished", (int)t->pid);
	t->n_tids = 0;
	while ((de = readdir(d)))
		if (atoi(de->d_name) > 0 && t->n_tids < MAX_THREADS)
			t->tids[t->n_tids++] = (pid_t)atoi(de->d_name);
	closedir(d);
}

static uint64_t target_bias(pid_t pid)
{
	char mpath[64], line[PATH_MAX + 128], real[PATH_MAX];
	uint64_t start = 0;
	FILE *fp;

	if (!realpath(target_path, real))
		die("realpath %s", target_path);
	snprintf(mpath, sizeof(mpath), "/proc/%d/maps", (int)pid);
	fp = fopen(mpath, "r");
	if (!fp)
		die("target %d vanished", (int)pid);
	while (fgets(line, sizeof(line), fp)) {
		unsigned long long s, e, off;
		int name = 0;

		line[strcspn(line, "\n")] = '\0';
		if (sscanf(line, "%llx-%llx %*s %llx %*s %*s %n", &s, &e, &off, &name) >= 3 &&
		    name > 0 && off == 0 && strcmp(line + name, real) == 0) {
			start = s;
			break;
		}
	}
	fclose(fp);
	if (!start)
		die("target %d does not map %s", (int)pid, real);
	return start - (first_vaddr & ~(uint64_t)4095);
}

/* The target's file, removed on any exit (die() included); one target at a time. */
static char live_shm[64];

static void live_shm_remove(void)
{
	if (live_shm[0])
		unlink(live_shm);
	live_shm[0] = '\0';
}

static void target_start(struct target *t, int threads)
{
	char arg[16];
	int fd;

	memset(t, 0, sizeof(*t));
	t->threads = threads;
	snprintf(t->shm_path, sizeof(t->shm_path), "/tmp/hp-bench-XXXXXX");
	fd = mkstemp(t->shm_path);
	if (fd >= 0) {
		static bool registered;

		if (!registered)
			registered = atexit(live_shm_remove) == 0;
		snprintf(live_shm, sizeof(live_shm), "%s", t->shm_path);
	}
	if (fd < 0 || ftruncate(fd, sizeof(struct bench_shm)) < 0)
		die("temp file: %s", strerror(errno));
	t->shm = mmap(NULL, sizeof(struct bench_shm), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (t->shm == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	/* 0: the lean target (main and heartbeat, 2 threads) */
	if (threads)
		snprintf(arg, sizeof(arg), "%d", threads);
	else
		snprintf(arg, sizeof(arg), "lean");
	t->pid = fork();
	if (t->pid < 0)
		die("fork: %s", strerror(errno));
	if (t->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execl(target_path, target_path, arg, t->shm_path, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; !__atomic_load_n(&t->shm->ready, __ATOMIC_ACQUIRE); i++) {
		if (i > 30000 || waitpid(t->pid, NULL, WNOHANG) == t->pid)
			die("target with %d threads did not start", threads);
		sleep_ms(1);
	}
	target_threads(t);
	t->bias = target_bias(t->pid);
	sleep_ms(50); /* let every worker reach its loop */
}

static void target_stop(struct target *t)
{
	if (t->pid > 0) {
		kill(t->pid, SIGKILL);
		waitpid(t->pid, NULL, 0);
	}
	if (t->shm && t->shm != MAP_FAILED)
		munmap(t->shm, sizeof(struct bench_shm));
	unlink(t->shm_path);
	live_shm_remove();
}

/*
 * The longest heartbeat gap overlapping [t0, t1] during which the
 * heartbeat was stopped (0: none above 20 us). Gaps where it was only
 * preempted (a loaded machine) are not the operation's doing.
 */
static uint64_t target_gap_at(const struct target *t, uint64_t t0, uint64_t t1, uint64_t clip,
			      uint64_t *ret_at)
{
	uint64_t n = __atomic_load_n(&t->shm->n_gaps, __ATOMIC_ACQUIRE), best = 0;
	uint64_t lo = n > BENCH_RING ? n - BENCH_RING : 0;

	for (uint64_t i = n; i-- > lo;) {
		const struct bench_gap *g = &t->shm->gaps[i % BENCH_RING];
		uint64_t at = g->at_ns, end = g->at_ns + g->gap_ns;

		if (end < t0)
			break;
		if (at < clip)
			at = end > clip ? clip : end;
		if (g->at_ns <= t1 && g->stopped && end - at > best) {
			best = end - at;
			if (ret_at)
				*ret_at = at;
		}
	}
	return best;
}

/*
 * The longest gap in [t0, t1] in which the heartbeat was stopped, from
 * clip on: the part of a gap before the operation began to stop threads
 * (clip) is the machine's load keeping the heartbeat off its CPU, not the
 * stop (0: unclipped).
 */
static uint64_t target_gap(const struct target *t, uint64_t t0, uint64_t t1, uint64_t clip)
{
	return target_gap_at(t, t0, t1, clip, NULL);
}

/*
 * Where the heartbeat's gaps of an operation are clipped: when the
 * operation began to stop threads, unless it held the heartbeat before
 * that (as its sys thread): then nothing is clipped.
 */
static uint64_t hold_clip(const struct target *t, const struct apply_result *res)
{
	if (!res->prof.t_hold_us || res->prof.sys_tid == t->shm->heartbeat_tid)
		return 0;
	return res->prof.t_hold_us * 1000;
}

/*
 * -p: where an operation's time went (apply_result.prof), per rep; printed
 * as prof.CELL.OP.WHAT.p50 figures (and only those, with the cell's floor
 * and seen stops): each step's wall and CPU time, the engine thread's start
 * and join, the stop, where the heartbeat's gap began and ended against
 * the stop, the waits and context switches.
 */
#define PROF_MAX 64
struct prof_acc {
	const char *name[PROF_MAX];
	uint64_t *v[PROF_MAX];
	int n;
	int reps;
};

static void prof_add(struct prof_acc *a, int rep, const char *name, int64_t v)
{
	int k;

	for (k = 0; k < a->n && strcmp(a->name[k], name) != 0; k++)
		;
	if (k == a->n) {
		if (a->n == PROF_MAX)
			return;
		a->name[k] = name;
		a->v[k] = calloc((size_t)a->reps, sizeof(uint64_t));
		if (!a->v[k])
			die("out of memory");
		a->n++;
	}
	/* signed values (a gap that began before the stop) kept with an offset */
	a->v[k][rep] = (uint64_t)(v + (1ll << 40));
}

/* "STEP.cpu", kept for the bench's life (one per step name) */
static const char *cpu_name_of(const char *step)
{
	static char *names[PROF_MAX];
	static int n;
	char *v;

	for (int i = 0; i < n; i++)
		if (strncmp(names[i], step, strlen(step)) == 0 && !strcmp(names[i] + strlen(step), ".cpu"))
			return names[i];
	if (n == PROF_MAX || asprintf(&v, "%s.cpu", step) < 0)
		die("out of memory");
	names[n++] = v;
	return v;
}

static void prof_rep(struct prof_acc *a, int rep, const struct apply_result *res, uint64_t t0_ns,
		     uint64_t t1_ns, uint64_t gap_at_ns, uint64_t gap_ns)
{
	const struct apply_prof *p = &res->prof;
	uint64_t prev = p->t_begin_us, prev_cpu = 0;

	prof_add(a, rep, "thread_start", (int64_t)(p->t_begin_us - t0_ns / 1000));
	for (size_t i = 0; i < p->n_steps; i++) {
		prof_add(a, rep, p->steps[i].name, (int64_t)(p->steps[i].end_us - prev));
		prof_add(a, rep, cpu_name_of(p->steps[i].name),
			 (int64_t)(p->steps[i].cpu_us - prev_cpu));
		prev = p->steps[i].end_us;
		prev_cpu = p->steps[i].cpu_us;
	}
	prof_add(a, rep, "release", (int64_t)(p->t_end_us - prev));
	prof_add(a, rep, "release.cpu", (int64_t)(p->cpu_end_us - prev_cpu));
	prof_add(a, rep, "engine.cpu", (int64_t)p->cpu_end_us);
	prof_add(a, rep, "thread_join", (int64_t)(t1_ns / 1000 - p->t_end_us));
	prof_add(a, rep, "total", (int64_t)(t1_ns - t0_ns) / 1000);
	prof_add(a, rep, "window", (int64_t)(p->t_resumed_us - p->t_stop_us));
	if (gap_ns) {
		prof_add(a, rep, "gap_begin_vs_window", (int64_t)(gap_at_ns / 1000) - (int64_t)p->t_stop_us);
		prof_add(a, rep, "gap_end_vs_resumed",
			 (int64_t)((gap_at_ns + gap_ns) / 1000) - (int64_t)p->t_resumed_us);
	}
	if (getenv("BENCH_PROF_RAW")) {
		fprintf(stderr, "# rep %d: t0 %+lld begin %+lld", rep, 0ll,
			(long long)(p->t_begin_us - t0_ns / 1000));
		for (size_t i = 0; i < p->n_steps; i++)
			fprintf(stderr, " %s %+lld", p->steps[i].name,
				(long long)(p->steps[i].end_us - t0_ns / 1000));
		fprintf(stderr, " | stop %+lld resumed %+lld end %+lld t1 %+lld | gap %+lld..%+lld\n",
			(long long)(p->t_stop_us - t0_ns / 1000),
			(long long)(p->t_resumed_us - t0_ns / 1000),
			(long long)(p->t_end_us - t0_ns / 1000), (long long)((t1_ns - t0_ns) / 1000),
			gap_ns ? (long long)((gap_at_ns - t0_ns) / 1000) : 0ll,
			gap_ns ? (long long)((gap_at_ns + gap_ns - t0_ns) / 1000) : 0ll);
	}
	prof_add(a, rep, "waits", p->n_waits);
	prof_add(a, rep, "waits_slept", p->n_slept);
	prof_add(a, rep, "remote_calls", p->n_remote);
	prof_add(a, rep, "ctxsw_voluntary", p->n_vcsw);
	prof_add(a, rep, "ctxsw_involuntary", p->n_ivcsw);
}

/*
 * One operation's gaps in the target's heartbeat (us): from when it began
 * stopping threads (gap) and unclipped (gapu); its profile into a, if any.
 */
static void op_gaps(const struct target *t, uint64_t t0, uint64_t t1,
		    const struct apply_result *res, uint64_t *gap, uint64_t *gapu,
		    struct prof_acc *a, int rep)
{
	uint64_t at = 0, g = target_gap_at(t, t0, t1, hold_clip(t, res), &at);

	*gap = g / 1000;
	*gapu = target_gap(t, t0, t1, 0) / 1000;
	if (a)
		prof_rep(a, rep, res, t0, t1, at, g);
}

static void prof_print(struct prof_acc *a, const char *cell, const char *op, int done)
{
	for (int k = 0; k < a->n; k++) {
		struct stats st = stats_of(a->v[k], (size_t)done);
		bool count = strncmp(a->name[k], "waits", 5) == 0 || strncmp(a->name[k], "ctxsw", 5) == 0 ||
			     strcmp(a->name[k], "remote_calls") == 0;

		figure_fmt((double)((int64_t)st.p50 - (1ll << 40)), count ? "count" : "us", NULL,
			   "prof.%s.%s.%s.p50", cell + (strncmp(cell, "stop.", 5) ? 0 : 5), op, a->name[k]);
		free(a->v[k]);
	}
	a->n = 0;
}

/* Wait (bounded) for the heartbeat to run again after an operation. */
static void settle(void)
{
	sleep_ms(15);
}

/* ---- floor: a bare stop of every thread -------------------------------- */

static int stop_all(struct target *t)
{
	for (size_t i = 0; i < t->n_tids; i++) {
		if (ptrace(PTRACE_SEIZE, t->tids[i], NULL, NULL) < 0)
			return -errno;
		if (ptrace(PTRACE_INTERRUPT, t->tids[i], NULL, NULL) < 0)
			return -errno;
	}
	for (size_t i = 0; i < t->n_tids; i++) {
		int st;

		if (waitpid(t->tids[i], &st, __WALL) != t->tids[i])
			return -errno;
	}
	return 0;
}

static void resume_all(struct target *t)
{
	for (size_t i = 0; i < t->n_tids; i++)
		ptrace(PTRACE_DETACH, t->tids[i], NULL, NULL);
}

static uint64_t floor_once(struct target *t, int memfd, uint64_t addr, const unsigned char *bytes,
			   uint64_t *ret_gap)
{
	uint64_t t0, t1;

	t0 = now_ns();
	if (stop_all(t) < 0)
		die("floor: stop: %s", strerror(errno));
	if (pwrite(memfd, bytes, 5, (off_t)addr) != 5)
		die("floor: write /proc/%d/mem: %s", (int)t->pid, strerror(errno));
	resume_all(t);
	t1 = now_ns();
	settle();
	*ret_gap = target_gap(t, t0, t1, t0);
	return (t1 - t0) / 1000;
}

/* ---- safety_check alone, all threads held ----------------------------- */

static uint64_t safety_once(struct target *t, const struct safety_range *r, size_t n, int *ret_busy)
{
	uint64_t t0, t1;
	int rc;

	if (stop_all(t) < 0)
		die("safety: stop: %s", strerror(errno));
	t0 = now_ns();
	rc = safety_check(t->pid, t->tids, t->n_tids, r, n);
	t1 = now_ns();
	resume_all(t);
	if (rc < 0 && rc != -EBUSY)
		die("safety_check: %s", hp_errmsg(rc));
	*ret_busy += rc == -EBUSY;
	settle();
	return (t1 - t0) / 1000;
}

/* ---- call cost, measured in the target ---------------------------------- */

static void call_cost(struct target *t, uint64_t *ret_ps, uint64_t *ret_min_ps, int *ret_value)
{
	uint32_t req = t->shm->call_req + 1;

	__atomic_store_n(&t->shm->call_req, req, __ATOMIC_RELEASE);
	for (int i = 0; __atomic_load_n(&t->shm->call_ack, __ATOMIC_ACQUIRE) != req; i++) {
		if (i > 60000)
			die("call-cost thread did not answer");
		sleep_ms(1);
	}
	*ret_ps = t->shm->call_ps;
	*ret_min_ps = t->shm->call_min_ps;
	*ret_value = t->shm->call_value;
}

/* ---- main --------------------------------------------------------------- */

static int parse_list(const char *s, int *out)
{
	int n = 0;

	while (*s && n < MAX_COUNTS) {
		char *end;
		long v = strtol(s, &end, 10);

		if (end == s || v < 0 || v > 4096)
			die("bad list '%s'", s);
		out[n++] = (int)v;
		s = *end == ',' ? end + 1 : end;
	}
	return n;
}

static void find_paths(void)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;

	if (n <= 0)
		die("readlink /proc/self/exe");
	self[n] = '\0';
	slash = strrchr(self, '/');
	*slash = '\0';
	snprintf(target_path, sizeof(target_path), "%s/../fixtures/bench/bench-target", self);
	snprintf(patch_dir, sizeof(patch_dir), "%s/../fixtures/bench", self);
	if (getenv("HP_BENCH_DAEMON_PID"))
		daemon_pid = (pid_t)atoi(getenv("HP_BENCH_DAEMON_PID"));
	if (getenv("HP_BIN"))
		snprintf(hp_path, sizeof(hp_path), "%s", getenv("HP_BIN"));
	else
		snprintf(hp_path, sizeof(hp_path), "%s/../../cli/hp", self);
}

/* ---- through a mounted hotpatchfs ---------------------------------------- */

static const char *mnt; /* -m */

/* `echo PID > MNT/file` as a shell does it: open with O_TRUNC, write, close. Wall us. */
static uint64_t mount_write(const char *file, pid_t pid)
{
	char path[PATH_MAX], text[32];
	uint64_t t0, t1;
	int fd, len, e = 0;

	snprintf(path, sizeof(path), "%s/%s", mnt, file);
	len = snprintf(text, sizeof(text), "%d\n", (int)pid);
	t0 = now_ns();
	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0 || write(fd, text, (size_t)len) != len)
		e = errno;
	if (fd >= 0 && close(fd) < 0 && !e)
		e = errno;
	t1 = now_ns();
	if (e)
		die("echo %d > %s: %s", (int)pid, path, strerror(e));
	return (t1 - t0) / 1000;
}

/*
 * The CPU time of every thread of the daemon serving the mount, ns
 * (HP_BENCH_DAEMON_PID; the first field of each /proc/PID/task/TID/schedstat):
 * around an apply and revert pair it holds what the daemon did after its
 * answers too (the perf map), which the wall time of the writes does not.
 * 0 when not asked for.
 */
static uint64_t daemon_cpu_ns(void)
{
	char path[64];
	uint64_t sum = 0;
	struct dirent *de;
	DIR *d;

	if (!daemon_pid)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/task", (int)daemon_pid);
	d = opendir(path);
	if (!d)
		die("%s: %s", path, strerror(errno));
	while ((de = readdir(d))) {
		char p2[sizeof(path) + sizeof(de->d_name) + 16];
		unsigned long long ns;
		FILE *f;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(p2, sizeof(p2), "%s/%s/schedstat", path, de->d_name);
		f = fopen(p2, "r");
		if (f && fscanf(f, "%llu", &ns) == 1)
			sum += ns;
		if (f)
			fclose(f);
	}
	closedir(d);
	return sum;
}

/* ---- a fleet: the bare stop of each of many processes -------------------- */

struct fleet {
	pid_t *pids;
	size_t n;
	size_t next; /* atomic */
	int failed;  /* atomic */
};

/* Seize, interrupt and wait every thread of pid, detach them all. */
static int stop_one_process(pid_t pid)
{
	struct target t;

	memset(&t, 0, sizeof(t));
	t.pid = pid;
	target_threads(&t);
	if (stop_all(&t) < 0)
		return -1;
	resume_all(&t);
	return 0;
}

static void *fleet_worker(void *arg)
{
	struct fleet *f = arg;
	size_t i;

	while ((i = __atomic_fetch_add(&f->next, 1, __ATOMIC_RELAXED)) < f->n)
		if (stop_one_process(f->pids[i]) < 0)
			__atomic_add_fetch(&f->failed, 1, __ATOMIC_RELAXED);
	return NULL;
}

/*
 * -P FILE: the floor of `echo all > apply` over the processes listed in
 * FILE (one PID a line): each one's threads seized, interrupted, waited
 * for and detached, 4 processes at a time (as hotpatchfs's "all"), reps
 * times; prints the median wall time.
 */
static int fleet_floor(const char *file, int reps, const char *name)
{
	struct fleet f = { NULL, 0, 0, 0 };
	uint64_t *ms = calloc((size_t)reps, sizeof(uint64_t));
	FILE *fp = fopen(file, "r");
	int pid;

	if (!fp || !ms)
		die("%s: %s", file, strerror(errno));
	while (fscanf(fp, "%d", &pid) == 1) {
		pid_t *v = realloc(f.pids, (f.n + 1) * sizeof(*v));

		if (!v)
			die("out of memory");
		f.pids = v;
		f.pids[f.n++] = pid;
	}
	fclose(fp);
	for (int r = 0; r < reps; r++) {
		pthread_t th[4];
		uint64_t t0 = now_ns();

		f.next = 0;
		f.failed = 0;
		for (int i = 0; i < 4; i++)
			if (pthread_create(&th[i], NULL, fleet_worker, &f) != 0)
				die("pthread_create");
		for (int i = 0; i < 4; i++)
			pthread_join(th[i], NULL);
		ms[r] = (now_ns() - t0) / 1000;
		if (f.failed)
			die("floor: %d of %zu processes could not be stopped", f.failed, f.n);
	}
	figure(name, stats_of(ms, (size_t)reps).p50 / 1000.0, "ms", NULL);
	free(ms);
	free(f.pids);
	return 0;
}

/* ---- exec (or dlopen) to patched, under auto --------------------------- */

/*
 * -x REPS: start `bench-target probe T0` (or `dlprobe LIB T0` with -d),
 * where T0 is the clock before the fork, REPS times; the target reports
 * when its main ran (or its dlopen began) and when it first ran the patched
 * code. Needs a mount with auto on and a set for the target in its store.
 */
static int probes(int reps, const char *lib)
{
	uint64_t *first = calloc((size_t)reps, sizeof(uint64_t));
	uint64_t *patched = calloc((size_t)reps, sizeof(uint64_t));
	const char *what = lib ? "dlopen" : "exec";
	size_t n_ok = 0;

	if (!first || !patched)
		die("out of memory");
	for (int r = 0; r < reps; r++) {
		char t0s[32], line[128];
		unsigned long long a = 0;
		long long b = -1;
		int fds[2], st;
		pid_t pid;
		FILE *fp;

		if (pipe(fds) < 0)
			die("pipe: %s", strerror(errno));
		snprintf(t0s, sizeof(t0s), "%llu", (unsigned long long)now_ns());
		pid = fork();
		if (pid == 0) {
			dup2(fds[1], STDOUT_FILENO);
			close(fds[0]);
			if (lib)
				execl(target_path, target_path, "dlprobe", lib, t0s, (char *)NULL);
			else
				execl(target_path, target_path, "probe", t0s, (char *)NULL);
			_exit(127);
		}
		close(fds[1]);
		fp = fdopen(fds[0], "r");
		if (pid < 0 || !fp || !fgets(line, sizeof(line), fp) ||
		    sscanf(line, "%llu %lld", &a, &b) != 2)
			die("%s probe: no answer", what);
		fclose(fp);
		waitpid(pid, &st, 0);
		{
			/* it exited patched: the perf map the engine wrote for it is ours to remove */
			char map[64];

			snprintf(map, sizeof(map), "/tmp/perf-%d.map", (int)pid);
			unlink(map);
		}
		first[r] = a / 1000;
		/* exec: from the fork (the process may be patched before its main
		 * runs: then as late as main); dlopen: from the dlopen */
		if (b >= 0)
			patched[n_ok++] = ((uint64_t)b - (lib ? a : 0)) / 1000;
		sleep_ms(20);
	}
	figure_fmt(stats_of(first, (size_t)reps).p50 / 1000.0, "ms", NULL, "%s.start.p50",
		   lib ? "dlopen" : "exec");
	if (n_ok)
		figure_fmt(stats_of(patched, n_ok).p50 / 1000.0, "ms", lib ? NULL : "exec.start.p50",
			   "%s.to_patched.p50", what);
	figure_fmt((double)(reps - (int)n_ok), "count", NULL, "%s.not_patched_in_3s", what);
	free(first);
	free(patched);
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: bench-apply [-r REPS] [-t 0,1,16,64,256] [-f 1,10,100] [-N PREFIX] [-S] [-p]\n"
		"       bench-apply -m MNT [-r REPS] [-t ...] [-N PREFIX]\n"
		"       bench-apply -P PIDFILE -N NAME [-r REPS]\n"
		"       bench-apply -m MNT -x REPS [-d LIB] [-N PREFIX]\n");
	exit(2);
}

/* The label of a thread count in figure names: -t 0 is the lean 2-thread target. */
static const char *cell_label(int threads, char *buf, size_t size)
{
	if (threads)
		snprintf(buf, size, "t%d", threads);
	else
		snprintf(buf, size, "lean2");
	return buf;
}

int main(int argc, char **argv)
{
	int threads[MAX_COUNTS] = { 1, 16, 64, 256 }, n_threads = 4;
	int funcs[MAX_COUNTS] = { 1, 10, 100 }, n_funcs = 3;
	struct patchset sets[MAX_COUNTS];
	int reps = 100, opt, probe_reps = 0;
	time_t now = time(NULL);
	char date[64];
	uint64_t t_begin = now_ns();
	const char *made_by = NULL, *pidfile = NULL, *lib = NULL;
	double load[3];
	bool made_by_self = false, no_safety = false, call_done = false;

	while ((opt = getopt(argc, argv, "r:t:f:m:N:P:x:d:Sph")) != -1) {
		switch (opt) {
		case 'p':
			profile = true;
			break;
		case 'r':
			reps = atoi(optarg);
			if (reps < 1 || reps > 100000)
				die("bad -r %s", optarg);
			break;
		case 't':
			n_threads = parse_list(optarg, threads);
			break;
		case 'f':
			n_funcs = parse_list(optarg, funcs);
			for (int i = 0; i < n_funcs; i++)
				if (funcs[i] != 1 && funcs[i] != 10 && funcs[i] != 100)
					die("-f: patch sets exist for 1, 10 and 100 functions");
			break;
		case 'm':
			mnt = optarg;
			break;
		case 'N':
			prefix = optarg;
			break;
		case 'P':
			pidfile = optarg;
			break;
		case 'x':
			probe_reps = atoi(optarg);
			if (probe_reps < 1 || probe_reps > 10000)
				die("bad -x %s", optarg);
			break;
		case 'd':
			lib = optarg;
			break;
		case 'S':
			no_safety = true;
			break;
		default:
			usage();
		}
	}
	if (optind != argc || (lib && !probe_reps))
		usage();
	find_paths();
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (pidfile)
		return fleet_floor(pidfile, reps, *prefix ? "" : "fleet.floor");
	if (probe_reps)
		return probes(probe_reps, lib);
	if (sodium_init() < 0)
		die("libsodium");
	load_symbols();
	if (mnt) {
		/* the set is the store's: one column, whatever -f says */
		n_funcs = 1;
		made_by = "the store of the mount";
	} else {
		for (int i = 0; i < n_funcs; i++) {
			if (patchset_hp_build(&sets[i], funcs[i]) == 0) {
				made_by = "hp build";
			} else {
				patchset_make(&sets[i], funcs[i]);
				made_by_self = true;
			}
		}
	}

	strftime(date, sizeof(date), "%Y-%m-%d %H:%M UTC", gmtime(&now));
	if (getloadavg(load, 3) != 3)
		load[0] = load[1] = load[2] = -1;
	printf("# bench-apply%s%s, %s, %ld cpus, load average %.1f %.1f %.1f, %d reps per cell%s\n",
	       mnt ? " through " : "", mnt ? mnt : "", date, sysconf(_SC_NPROCESSORS_ONLN), load[0],
	       load[1], load[2], reps,
	       reps < 100 ? " (p99 of fewer than 100 reps is near the max)" : "");
	printf("# times in us; 'seen' = the target's longest heartbeat gap around the operation in which it was stopped\n");
	printf("# patch sets made by %s\n", made_by_self ? (made_by ? "hp build and, where it failed, this bench"
							: "this bench (hp build not available)")
						: made_by);

	for (int ti = 0; ti < n_threads; ti++) {
		struct target t;
		struct safety_range ranges[BENCH_NFUNCS];
		char names[BENCH_NFUNCS][8], lab[16];
		unsigned char orig[5];
		char mem[64];
		int memfd, busy = 0;
		uint64_t f99, *sc = calloc(reps, sizeof(uint64_t)), *sct = calloc(reps, sizeof(uint64_t));
		struct stats ssc, ssct;
		bool do_safety = !no_safety && !mnt;

		if (!sc || !sct)
			die("out of memory");
		cell_label(threads[ti], lab, sizeof(lab));
		target_start(&t, threads[ti]);
		snprintf(mem, sizeof(mem), "/proc/%d/mem", (int)t.pid);
		memfd = open(mem, O_RDWR | O_CLOEXEC);
		f99 = t.bias + sym_off[BENCH_NFUNCS - 1];
		if (memfd < 0 || pread(memfd, orig, 5, (off_t)f99) != 5)
			die("%s: %s", mem, strerror(errno));
		for (int k = 0; k < BENCH_NFUNCS; k++) {
			snprintf(names[k], sizeof(names[k]), "f%d", k);
			ranges[k].start = t.bias + sym_off[k];
			ranges[k].end = ranges[k].start + sym_size[k];
			ranges[k].name = names[k];
		}

		/*
		 * Per cell, floor and apply alternate rep by rep, so that the
		 * load of a shared machine weighs on both alike.
		 */
		for (int fi = 0; fi < n_funcs; fi++) {
			uint64_t *fl = calloc(reps, sizeof(uint64_t)), *flg = calloc(reps, sizeof(uint64_t));
			uint64_t *ap = calloc(reps, sizeof(uint64_t)), *apg = calloc(reps, sizeof(uint64_t));
			uint64_t *rv = calloc(reps, sizeof(uint64_t)), *rvg = calloc(reps, sizeof(uint64_t));
			uint64_t *tries = calloc(reps, sizeof(uint64_t)), *dcpu = calloc(reps, sizeof(uint64_t));
			uint64_t *apgu = calloc(reps, sizeof(uint64_t)), *rvgu = calloc(reps, sizeof(uint64_t));
			struct prof_acc pa = { .reps = reps }, pr = { .reps = reps };
			struct stats sfl, sflg, sap = { 0 }, sapg = { 0 }, srv = { 0 }, srvg = { 0 },
					       str = { 0 };
			char cell[48], base[80], base_seen[80];
			int done = 0;

			if (!fl || !flg || !ap || !apg || !rv || !rvg || !tries || !dcpu || !apgu || !rvgu)
				die("out of memory");
			if (mnt)
				snprintf(cell, sizeof(cell), "mount.%s", lab);
			else
				snprintf(cell, sizeof(cell), "stop.%s.f%d", lab, funcs[fi]);
			for (int r = 0; r < reps; r++) {
				fl[r] = floor_once(&t, memfd, f99, orig, &flg[r]);
				if (fi == 0 && do_safety) {
					sc[r] = safety_once(&t, ranges, BENCH_NFUNCS, &busy);
					/* the path of kernels before 6.11 */
#ifdef HP_TEST_HOOKS
					/* a test hook: only in builds with -Dtest_hooks=true */
					setenv("HP_SAFETY_MAPS_TEXT", "1", 1);
					sct[r] = safety_once(&t, ranges, BENCH_NFUNCS, &busy);
					unsetenv("HP_SAFETY_MAPS_TEXT");
#endif
				}
				if (mnt) {
					uint64_t c0 = daemon_cpu_ns(), t0 = now_ns(), t1;

					ap[done] = mount_write("apply", t.pid);
					t1 = now_ns();
					settle();
					apg[done] = target_gap(&t, t0, t1, 0) / 1000;
					t0 = now_ns();
					rv[done] = mount_write("revert", t.pid);
					t1 = now_ns();
					settle();
					rvg[done] = target_gap(&t, t0, t1, 0) / 1000;
					tries[done] = 0;
					dcpu[done] = daemon_pid ? (daemon_cpu_ns() - c0) / 1000 : 0;
					done++;
					continue;
				}
				{
					struct apply_result res;
					uint64_t t0, t1;
					int rc;

					t0 = now_ns();
					rc = apply_patch(t.pid, &sets[fi].set, profile ? &prof_opts : NULL,
							 &res);
					t1 = now_ns();
					if (rc < 0)
						die("apply %s to %d: %s", sets[fi].set_id, (int)t.pid,
						    hp_errmsg(rc));
					ap[done] = res.pause_us;
					tries[done] = res.n_tries;
					settle();
					op_gaps(&t, t0, t1, &res, &apg[done], &apgu[done],
						profile ? &pa : NULL, done);
					t0 = now_ns();
					rc = apply_revert(t.pid, build_id, profile ? &prof_opts : NULL,
							  &res);
					t1 = now_ns();
					if (rc < 0)
						die("revert %d: %s", (int)t.pid, hp_errmsg(rc));
					rv[done] = res.pause_us;
					settle();
					op_gaps(&t, t0, t1, &res, &rvg[done], &rvgu[done],
						profile ? &pr : NULL, done);
					done++;
				}
			}
			sfl = stats_of(fl, reps);
			sflg = stats_of(flg, reps);
			snprintf(base, sizeof(base), "%s.floor.p50", cell);
			snprintf(base_seen, sizeof(base_seen), "%s.seen.floor.p50", cell);
			figure_fmt(sfl.p50, "us", NULL, "%s.floor.p50", cell);
			figure_fmt(sfl.p99, "us", NULL, "%s.floor.p99", cell);
			figure_fmt(sflg.p50 / 1000.0, "us", NULL, "%s.seen.floor.p50", cell);
			figure_fmt(sflg.p99 / 1000.0, "us", NULL, "%s.seen.floor.p99", cell);
			if (done) {
				sap = stats_of(ap, done);
				sapg = stats_of(apg, done);
				srv = stats_of(rv, done);
				srvg = stats_of(rvg, done);
				str = stats_of(tries, done);
				/* through the mount: the write's wall time; else the engine's pause_us */
				figure_fmt(sap.p50, "us", base, "%s.apply.%s.p50", cell, mnt ? "wall" : "pause");
				figure_fmt(sap.p99, "us", NULL, "%s.apply.%s.p99", cell, mnt ? "wall" : "pause");
				figure_fmt(srv.p50, "us", base, "%s.revert.%s.p50", cell, mnt ? "wall" : "pause");
				figure_fmt(srv.p99, "us", NULL, "%s.revert.%s.p99", cell, mnt ? "wall" : "pause");
				figure_fmt(sapg.p50, "us", base_seen, "%s.seen.apply.p50", cell);
				figure_fmt(sapg.p99, "us", NULL, "%s.seen.apply.p99", cell);
				figure_fmt(srvg.p50, "us", base_seen, "%s.seen.revert.p50", cell);
				figure_fmt(srvg.p99, "us", NULL, "%s.seen.revert.p99", cell);
				if (mnt && daemon_pid)
					figure_fmt(stats_of(dcpu, done).p50, "us", NULL,
						   "%s.daemon_cpu.pair.p50", cell);
				if (mnt) {
					/*
					 * The same writes 2 ms apart, not 15: each one
					 * above finds the daemon, the target and their
					 * CPUs idle, as an admin's one-off echo does; in
					 * a burst (a script, a fleet) they are warm. On
					 * these virtual machines the engine's own CPU
					 * time is about 1.5 times higher cold (bench-apply
					 * -p: 950 against 560 us a lean apply).
					 */
					for (int r = 0; r < done; r++) {
						ap[r] = mount_write("apply", t.pid);
						sleep_ms(2);
						rv[r] = mount_write("revert", t.pid);
						sleep_ms(2);
					}
					figure_fmt(stats_of(ap, done).p50, "us", base,
						   "%s.apply.wall_warm.p50", cell);
					figure_fmt(stats_of(rv, done).p50, "us", base,
						   "%s.revert.wall_warm.p50", cell);
				}
				if (!mnt) {
					figure_fmt((double)str.max, "tries", NULL, "%s.tries.max", cell);
					figure_fmt(stats_of(apgu, done).p50, "us", NULL,
						   "%s.seen_unclipped.apply.p50", cell);
					figure_fmt(stats_of(rvgu, done).p50, "us", NULL,
						   "%s.seen_unclipped.revert.p50", cell);
				}
				if (profile && !mnt) {
					prof_print(&pa, cell, "apply", done);
					prof_print(&pr, cell, "revert", done);
					figure_fmt(sfl.p50, "us", NULL, "prof.%s.floor.p50", cell + 5);
					figure_fmt(sflg.p50 / 1000.0, "us", NULL, "prof.%s.seen.floor.p50",
						   cell + 5);
					figure_fmt(sapg.p50, "us", NULL, "prof.%s.seen.apply.p50", cell + 5);
					figure_fmt(srvg.p50, "us", NULL, "prof.%s.seen.revert.p50", cell + 5);
				}
			}
			free(fl);
			free(flg);
			free(ap);
			free(apg);
			free(rv);
			free(rvg);
			free(tries);
			free(dcpu);
			free(apgu);
			free(rvgu);
		}
		close(memfd);
		if (do_safety) {
			ssc = stats_of(sc, reps);
			ssct = stats_of(sct, reps);
			figure_fmt(ssc.p50, "us", NULL, "safety.%s.n%zu.p50", lab, t.n_tids);
			figure_fmt(ssct.p50, "us", NULL, "safety.%s.n%zu.mapstext.p50", lab, t.n_tids);
			figure_fmt(busy, "count", NULL, "safety.%s.busy", lab);
		}
		free(sc);
		free(sct);

		if (!call_done && threads[ti] && !mnt) {
			/* rounds x (unpatched, patched, reverted): median of the
			 * per-round medians, and the fastest run seen */
			enum { ROUNDS = 5 };
			uint64_t med[3][ROUNDS], fast[3] = { UINT64_MAX, UINT64_MAX, UINT64_MAX };
			int value[3] = { 0, 0, 0 }, n_states = 1;

			call_done = true;
			for (int round = 0; round < ROUNDS; round++) {
				uint64_t m;

				call_cost(&t, &med[0][round], &m, &value[0]);
				fast[0] = m < fast[0] ? m : fast[0];
				{
					struct apply_result res;
					int rc = apply_patch(t.pid, &sets[0].set, NULL, &res);

					if (rc < 0)
						die("apply: %s", hp_errmsg(rc));
					call_cost(&t, &med[1][round], &m, &value[1]);
					fast[1] = m < fast[1] ? m : fast[1];
					rc = apply_revert(t.pid, build_id, NULL, &res);
					if (rc < 0)
						die("revert: %s", hp_errmsg(rc));
					call_cost(&t, &med[2][round], &m, &value[2]);
					fast[2] = m < fast[2] ? m : fast[2];
					n_states = 3;
				}
			}
			for (int k = 0; k < 3; k++)
				qsort(med[k], ROUNDS, sizeof(uint64_t), cmp_u64);
			figure("call.unpatched", med[0][ROUNDS / 2] / 1000.0, "ns", NULL);
			figure("call.unpatched.fastest", fast[0] / 1000.0, "ns", NULL);
			if (n_states == 3) {
				if (value[1] != value[0] + 1)
					die("call cost: the patched f0 did not run (f0(1) = %d, was %d)",
					    value[1], value[0]);
				figure("call.patched", med[1][ROUNDS / 2] / 1000.0, "ns", "call.unpatched");
				figure("call.patched.fastest", fast[1] / 1000.0, "ns",
				       "call.unpatched.fastest");
				figure("call.reverted", med[2][ROUNDS / 2] / 1000.0, "ns", "call.unpatched");
			}
		}
		target_stop(&t);
	}
	for (int i = 0; !mnt && i < n_funcs; i++)
		patchset_release(&sets[i]);
	printf("# total %.1f s\n", (now_ns() - t_begin) / 1e9);
	return 0;
}

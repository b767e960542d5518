/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * engine-driver: drives libhpapply for the engine's shell tests.
 *
 *   engine-driver apply PID DIR [BUDGET_MS [STAY]]  DIR holds manifest and patch.so;
 *                                              STAY: live STAY seconds more after it
 *                                              (a caller that outlives its operation)
 *   engine-driver apply-sets PID DIR... [BUDGET_MS]  every set in one stop (apply_patch_sets)
 *   engine-driver revert PID [BUILD_ID]
 *   engine-driver inspect PID
 *   engine-driver settle PID                   apply_settle: "old_live=N MSG"
 *   engine-driver cycle PID DIR N [SECONDS]    N x (apply, revert), at most SECONDS
 *   engine-driver textsum PID                  sha256 of the executable mappings
 *   engine-driver hold PID SECONDS             be another tracer (PTRACE_SEIZE) a while
 *   engine-driver race PID DIR                 two threads apply DIR at once
 *   engine-driver signal PID SIG US            kill(PID, SIG) every US microseconds
 *                                              until killed, or until PID is gone
 *
 * On error: one line "engine-driver: ENAME: message" on stderr and the errno
 * as exit status (ESRCH 3, ENOENT 2, ENOEXEC 8, EBUSY 16, EPERM 1).
 * Patch sets come from hp build (tests/integration/test-engine-lib.sh).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "apply.h"

static int fail(int r)
{
	fprintf(stderr, "engine-driver: %s: %s\n", strerrorname_np(-r) ? strerrorname_np(-r) : "?",
		hp_errmsg(r));
	return -r;
}

struct loaded {
	struct hp_manifest *m;
	struct hp_buf so;
	struct apply_set set;
	char *set_id;
};

static int load_dir(const char *dir, struct loaded *l)
{
	struct hp_buf text = HP_BUF_INIT;
	char path[4096];
	int r;

	memset(l, 0, sizeof(*l));
	snprintf(path, sizeof(path), "%s/manifest", dir);
	r = hp_read_file(path, HP_MANIFEST_MAX_BYTES, &text);
	if (r < 0)
		return hp_err(r, "read %s", path);
	r = hp_manifest_parse(text.data, text.len, &l->m);
	hp_buf_release(&text);
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), "%s/patch.so", dir);
	r = hp_read_file(path, 64u << 20, &l->so);
	if (r < 0)
		return hp_err(r, "read %s", path);
	l->set_id = hp_manifest_set_id(l->m);
	l->set.set_id = l->set_id;
	l->set.manifest = l->m;
	l->set.so = l->so.data;
	l->set.so_len = l->so.len;
	return 0;
}

static void loaded_release(struct loaded *l)
{
	hp_manifest_free(l->m);
	hp_buf_release(&l->so);
	free(l->set_id);
}

/* apply_choose_fn: the loaded set, whatever the process maps (the engine checks it fits). */
static int choose_loaded(void *arg, const struct apply_proc *p, struct apply_set *sets, size_t cap)
{
	const struct loaded *l = arg;

	(void)p;
	if (cap < 1)
		return 0;
	sets[0] = l->set;
	return 1;
}

static void print_result(const char *what, const struct apply_result *res)
{
	printf("%s changed=%d pause_us=%" PRIu64 " threads=%u tries=%u set=%s\n", what,
	       res->changed, res->pause_us, res->n_threads, res->n_tries,
	       res->set_id[0] ? res->set_id : "-");
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* cycle: how many more times an apply or revert refused with EBUSY is tried */
#define CYCLE_BUSY_RETRIES 3

static int cmd_cycle(pid_t pid, const char *dir, int n, unsigned seconds)
{
	uint64_t deadline = seconds ? hp_now_us() + seconds * 1000000ull : UINT64_MAX;
	struct loaded l;
	uint64_t *pauses = calloc((size_t)n * 2 + 1, sizeof(*pauses));
	unsigned threads = 0, tries = 0, busy = 0;
	int r, done = 0;

	if (!pauses)
		return fail(-ENOMEM);
	r = load_dir(dir, &l);
	if (r < 0) {
		free(pauses);
		return fail(r);
	}
	for (; done < n && hp_now_us() < deadline; done++) {
		struct apply_result res;

		/*
		 * EBUSY (a patched function found running in a busy thread for
		 * the whole budget) is the engine refusing safely, which a
		 * heavily loaded machine makes possible: tried again, as an
		 * admin's configuration does (retries), and counted.
		 */
		r = apply_patch(pid, &l.set, NULL, &res);
		for (int k = 0; r == -EBUSY && k < CYCLE_BUSY_RETRIES; k++, busy++)
			r = apply_patch(pid, &l.set, NULL, &res);
		if (r < 0 || !res.changed)
			break;
		pauses[2 * done] = res.pause_us;
		threads = res.n_threads;
		tries += res.n_tries;
		r = apply_revert(pid, NULL, NULL, &res);
		for (int k = 0; r == -EBUSY && k < CYCLE_BUSY_RETRIES; k++, busy++)
			r = apply_revert(pid, NULL, NULL, &res);
		if (r < 0)
			break;
		pauses[2 * done + 1] = res.pause_us;
		tries += res.n_tries;
	}
	if (r == 0 && done > 0 && (done == n || hp_now_us() >= deadline)) {
		size_t m = (size_t)done * 2;

		qsort(pauses, m, sizeof(*pauses), cmp_u64);
		printf("cycles=%d threads=%u checks=%u median_pause_us=%" PRIu64
		       " p99_pause_us=%" PRIu64 " max_pause_us=%" PRIu64 " busy_retries=%u%s\n",
		       done, threads, tries, pauses[m / 2], pauses[m * 99 / 100], pauses[m - 1],
		       busy, done < n ? " (time limit)" : "");
	} else {
		printf("cycles=%d (stopped)\n", done);
		if (r == 0)
			r = hp_err(-EIO, "apply reported no change");
	}
	loaded_release(&l);
	free(pauses);
	return r < 0 ? fail(r) : 0;
}

static int cmd_inspect(pid_t pid)
{
	struct apply_proc *p;
	int r = apply_inspect(pid, &p);

	if (r < 0)
		return fail(r);
	printf("process %d uid=%u comm=%s exe=%s\n", (int)p->pid, (unsigned)p->uid, p->comm, p->exe);
	for (size_t i = 0; i < p->n_objects; i++)
		printf("object %s %s 0x%" PRIx64 "\n", p->objects[i].build_id, p->objects[i].path,
		       p->objects[i].bias);
	for (size_t i = 0; i < p->n_applied; i++)
		printf("applied %s %s %s funcs=%u pause_us=%" PRIu64 " region=0x%" PRIx64
		       " switched=%u old_live=%u\n",
		       p->applied[i].build_id, p->applied[i].set_id, p->applied[i].month,
		       p->applied[i].n_funcs, p->applied[i].pause_us, p->applied[i].region,
		       p->applied[i].n_switched, p->applied[i].n_old_live);
	apply_proc_free(p);
	return 0;
}

struct racer {
	pid_t pid;
	const struct apply_set *set;
	int r;
	struct apply_result res;
	char msg[HP_ERRMSG_MAX];
};

static void *race_one(void *arg)
{
	struct racer *rc = arg;

	rc->r = apply_patch(rc->pid, rc->set, NULL, &rc->res);
	snprintf(rc->msg, sizeof(rc->msg), "%s", rc->r < 0 ? hp_errmsg(rc->r) : "");
	return NULL;
}

/* Two threads of one process apply the same set to one PID at once: they
 * serialise (one changes, the other finds it applied). */
static int cmd_race(pid_t pid, const char *dir)
{
	struct loaded l;
	struct racer rc[2] = { { .pid = pid }, { .pid = pid } };
	pthread_t t[2];
	int r = load_dir(dir, &l);

	if (r < 0)
		return fail(r);
	for (int i = 0; i < 2; i++) {
		rc[i].set = &l.set;
		pthread_create(&t[i], NULL, race_one, &rc[i]);
	}
	for (int i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		if (rc[i].r < 0)
			printf("racer error %d: %s\n", rc[i].r, rc[i].msg);
		else
			print_result("racer", &rc[i].res);
	}
	loaded_release(&l);
	return rc[0].r < 0 || rc[1].r < 0;
}

/* The bytes of every executable mapping, hashed: "the code is untouched". */
static int cmd_textsum(pid_t pid)
{
	char path[64], line[4096];
	FILE *maps;
	int mem;
	crypto_hash_sha256_state st;
	unsigned char digest[crypto_hash_sha256_BYTES];

	if (sodium_init() < 0)
		return fail(-EIO);
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	maps = fopen(path, "r");
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	mem = open(path, O_RDONLY);
	if (!maps || mem < 0)
		return fail(hp_err(-ESRCH, "process %d: no such process", (int)pid));
	crypto_hash_sha256_init(&st);
	while (fgets(line, sizeof(line), maps)) {
		unsigned long long a, b;
		char perms[8];
		static unsigned char buf[1 << 16];

		if (sscanf(line, "%llx-%llx %7s", &a, &b, perms) != 3 || perms[2] != 'x' ||
		    strstr(line, "[vsyscall]"))
			continue;
		crypto_hash_sha256_update(&st, (const unsigned char *)line, strlen(line));
		for (unsigned long long o = a; o < b; o += sizeof(buf)) {
			size_t len = b - o < sizeof(buf) ? b - o : sizeof(buf);

			if (pread(mem, buf, len, (off_t)o) == (ssize_t)len)
				crypto_hash_sha256_update(&st, buf, len);
		}
	}
	crypto_hash_sha256_final(&st, digest);
	for (size_t i = 0; i < sizeof(digest); i++)
		printf("%02x", digest[i]);
	printf("\n");
	fclose(maps);
	close(mem);
	return 0;
}

static void own_wait_sig(int sig)
{
	static const char msg[] = "engine-driver: our own signal was raised\n";

	(void)sig;
	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(5);
}

int main(int argc, char **argv)
{
	struct apply_result res;
	struct apply_opts opts = { 0, NULL, NULL };
	struct loaded l;
	int r;

	if (argc < 3) {
		fprintf(stderr, "usage: engine-driver apply|revert|inspect|cycle|textsum|hold ...\n");
		return 2;
	}
	/* A caller with a handler of its own on the signal that bounds the
	 * engine's waits (apply/ptr.c): the engine must leave it alone and
	 * wait for SIGCHLD instead. */
	if (getenv("ENGINE_DRIVER_OWN_WAIT_SIG")) {
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = own_wait_sig;
		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGRTMAX - 2, &sa, NULL) < 0)
			return fail(hp_err(-errno, "sigaction: %s", strerror(errno)));
	}
	if (strcmp(argv[1], "hold") == 0 && argc >= 4) {
		if (ptrace(PTRACE_SEIZE, (pid_t)atoi(argv[2]), NULL, NULL) < 0)
			return fail(hp_err(-errno, "seize: %s", strerror(errno)));
		printf("held\n");
		fflush(stdout);
		sleep((unsigned)atoi(argv[3]));
		return 0;
	}
	if (strcmp(argv[1], "signal") == 0 && argc >= 5) {
		struct timespec ts = { 0, atol(argv[4]) * 1000L };

		/* from another process, as a signal to a daemon comes */
		while (kill((pid_t)atoi(argv[2]), atoi(argv[3])) == 0)
			nanosleep(&ts, NULL);
		return 0;
	}
	if (strcmp(argv[1], "race") == 0 && argc >= 4)
		return cmd_race((pid_t)atoi(argv[2]), argv[3]);
	if (strcmp(argv[1], "textsum") == 0)
		return cmd_textsum((pid_t)atoi(argv[2]));
	if (strcmp(argv[1], "settle") == 0) {
		char msg[HP_ERRMSG_MAX];

		r = apply_settle((pid_t)atoi(argv[2]), NULL, msg, sizeof(msg));
		if (r < 0)
			return fail(r);
		printf("old_live=%d %s\n", r, msg);
		return 0;
	}
	if (strcmp(argv[1], "inspect") == 0)
		return cmd_inspect((pid_t)atoi(argv[2]));
	if (strcmp(argv[1], "revert") == 0) {
		r = apply_revert((pid_t)atoi(argv[2]), argc > 3 ? argv[3] : NULL, NULL, &res);
		if (r < 0)
			return fail(r);
		print_result("reverted", &res);
		return 0;
	}
	if (strcmp(argv[1], "cycle") == 0 && argc >= 5)
		return cmd_cycle((pid_t)atoi(argv[2]), argv[3], atoi(argv[4]),
				 argc > 5 ? (unsigned)atoi(argv[5]) : 0);
	if (strcmp(argv[1], "apply-sets") == 0 && argc >= 4) {
		size_t n = (size_t)(argc - 3);
		struct loaded *ls;
		struct apply_set *sets;

		if (strspn(argv[argc - 1], "0123456789") == strlen(argv[argc - 1])) {
			opts.budget_ms = (unsigned)atoi(argv[argc - 1]);
			n--;
		}
		ls = calloc(n + 1, sizeof(*ls));
		sets = calloc(n + 1, sizeof(*sets));
		if (!ls || !sets)
			return fail(-ENOMEM);
		for (size_t i = 0; i < n; i++) {
			r = load_dir(argv[3 + i], &ls[i]);
			if (r < 0)
				return fail(r);
			sets[i] = ls[i].set;
		}
		r = apply_patch_sets((pid_t)atoi(argv[2]), sets, n, &opts, &res);
		for (size_t i = 0; i < n; i++)
			loaded_release(&ls[i]);
		free(ls);
		free(sets);
		if (r < 0)
			return fail(r);
		print_result("applied", &res);
		return 0;
	}
	if (strcmp(argv[1], "apply-choose") == 0 && argc >= 4) {
		/* the set given to the engine's chooser: read once, before the attach */
		r = load_dir(argv[3], &l);
		if (r < 0)
			return fail(r);
		r = apply_patch_choose((pid_t)atoi(argv[2]), choose_loaded, &l, &opts, &res);
		loaded_release(&l);
		if (r < 0)
			return fail(r);
		print_result("applied", &res);
		return 0;
	}
	if (strcmp(argv[1], "apply") == 0 && argc >= 4) {
		r = load_dir(argv[3], &l);
		if (r < 0)
			return fail(r);
		if (argc > 4)
			opts.budget_ms = (unsigned)atoi(argv[4]);
		r = apply_patch((pid_t)atoi(argv[2]), &l.set, &opts, &res);
		loaded_release(&l);
		if (r < 0)
			r = -fail(r);
		else
			print_result("applied", &res);
		if (argc > 5) {
			fflush(stderr);
			printf("staying\n");
			fflush(stdout);
			sleep((unsigned)atoi(argv[5]));
		}
		return r < 0 ? -r : 0;
	}
	fprintf(stderr, "engine-driver: bad command\n");
	return 2;
}

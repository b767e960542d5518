/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * engine-driver: drives libhpapply for the engine's shell tests.
 *
 *   engine-driver apply PID DIR [BUDGET_MS]   DIR holds manifest and patch.so
 *   engine-driver revert PID [BUILD_ID]
 *   engine-driver inspect PID
 *   engine-driver cycle PID DIR N              N x (apply, revert)
 *   engine-driver textsum PID                  sha256 of the executable mappings
 *   engine-driver hold PID SECONDS             be another tracer (PTRACE_SEIZE) a while
 *   engine-driver mkset --target BIN --so PATCH.so --month M --name NAME
 *                       --func F [--func F...] [--active-ok F] -o DIR
 *
 * On error: one line "engine-driver: ENAME: message" on stderr and the errno
 * as exit status (ESRCH 3, ENOENT 2, ENOEXEC 8, EBUSY 16, EPERM 1).
 * mkset writes a manifest from the target's symbol table, the way hp build
 * does, for tests that must craft bad manifests.
 */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
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

static int cmd_cycle(pid_t pid, const char *dir, int n)
{
	struct loaded l;
	uint64_t *pauses = calloc((size_t)n * 2 + 1, sizeof(*pauses));
	unsigned threads = 0, tries = 0;
	int r, done = 0;

	if (!pauses)
		return fail(-ENOMEM);
	r = load_dir(dir, &l);
	if (r < 0) {
		free(pauses);
		return fail(r);
	}
	for (; done < n; done++) {
		struct apply_result res;

		r = apply_patch(pid, &l.set, NULL, &res);
		if (r < 0 || !res.changed)
			break;
		pauses[2 * done] = res.pause_us;
		threads = res.n_threads;
		tries += res.n_tries;
		r = apply_revert(pid, NULL, NULL, &res);
		if (r < 0)
			break;
		pauses[2 * done + 1] = res.pause_us;
		tries += res.n_tries;
	}
	if (r == 0 && done == n) {
		qsort(pauses, (size_t)n * 2, sizeof(*pauses), cmp_u64);
		printf("cycles=%d threads=%u checks=%u median_pause_us=%" PRIu64
		       " p99_pause_us=%" PRIu64 " max_pause_us=%" PRIu64 "\n",
		       done, threads, tries, pauses[n], pauses[(size_t)n * 2 * 99 / 100],
		       pauses[n * 2 - 1]);
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
		printf("applied %s %s %s funcs=%u pause_us=%" PRIu64 " region=0x%" PRIx64 "\n",
		       p->applied[i].build_id, p->applied[i].set_id, p->applied[i].month,
		       p->applied[i].n_funcs, p->applied[i].pause_us, p->applied[i].region);
	apply_proc_free(p);
	return 0;
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

/* ---- mkset ----------------------------------------------------------------- */

struct esym {
	char *name;
	uint64_t value, size;
	int type;
	bool defined;
};

static int read_syms(const char *path, Elf_Type want, struct esym **ret, size_t *ret_n)
{
	int fd = open(path, O_RDONLY);
	Elf *e;
	Elf_Scn *scn = NULL;
	struct esym *v = NULL;
	size_t n = 0;

	if (fd < 0)
		return hp_err(-errno, "open %s: %s", path, strerror(errno));
	elf_version(EV_CURRENT);
	e = elf_begin(fd, ELF_C_READ, NULL);
	while (e && (scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != (unsigned)want)
			continue;
		d = elf_getdata(scn, NULL);
		for (size_t i = 0; d && i < sh.sh_size / sh.sh_entsize; i++) {
			GElf_Sym s;
			const char *name;

			if (!gelf_getsym(d, (int)i, &s))
				continue;
			name = elf_strptr(e, sh.sh_link, s.st_name);
			if (!name || !*name)
				continue;
			v = realloc(v, (n + 1) * sizeof(*v));
			v[n].name = strdup(name);
			v[n].value = s.st_value;
			v[n].size = s.st_size;
			v[n].type = GELF_ST_TYPE(s.st_info);
			v[n].defined = s.st_shndx != SHN_UNDEF;
			n++;
		}
	}
	if (e)
		elf_end(e);
	close(fd);
	*ret = v;
	*ret_n = n;
	return 0;
}

static const struct esym *find_sym(const struct esym *v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].defined && strcmp(v[i].name, name) == 0)
			return &v[i];
	return NULL;
}

static int cmd_mkset(int argc, char **argv)
{
	const char *target = NULL, *so = NULL, *month = "2026-02", *name = "fix", *out = NULL;
	const char *funcs[32], *active[32];
	size_t n_funcs = 0, n_active = 0, n_tsyms = 0, n_psyms = 0;
	struct esym *tsyms = NULL, *psyms = NULL;
	struct hp_manifest *m = hp_manifest_new();
	struct hp_buf b = HP_BUF_INIT, sob = HP_BUF_INIT;
	unsigned char digest[crypto_hash_sha256_BYTES];
	char hex[2 * crypto_hash_sha256_BYTES + 1], bid[129], path[4096];
	int r;

	for (int i = 0; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--target") == 0)
			target = argv[i + 1];
		else if (strcmp(argv[i], "--so") == 0)
			so = argv[i + 1];
		else if (strcmp(argv[i], "--month") == 0)
			month = argv[i + 1];
		else if (strcmp(argv[i], "--name") == 0)
			name = argv[i + 1];
		else if (strcmp(argv[i], "--func") == 0 && n_funcs < 32)
			funcs[n_funcs++] = argv[i + 1];
		else if (strcmp(argv[i], "--active-ok") == 0 && n_active < 32)
			active[n_active++] = argv[i + 1];
		else if (strcmp(argv[i], "-o") == 0)
			out = argv[i + 1];
	}
	if (!target || !so || !out || !n_funcs || !m || sodium_init() < 0)
		return fail(hp_err(-EINVAL, "mkset: missing arguments"));
	r = apply_file_build_id(target, bid);
	if (r < 0)
		return fail(r);
	if ((r = read_syms(target, SHT_SYMTAB, &tsyms, &n_tsyms)) < 0 ||
	    (r = read_syms(so, SHT_DYNSYM, &psyms, &n_psyms)) < 0 ||
	    (r = hp_read_file(so, 64u << 20, &sob)) < 0)
		return fail(r);
	crypto_hash_sha256(digest, (const unsigned char *)sob.data, sob.len);
	for (size_t i = 0; i < sizeof(digest); i++)
		snprintf(hex + 2 * i, 3, "%02x", digest[i]);
	hp_manifest_set_str(&m->name, name);
	hp_manifest_set_str(&m->baseline, "2026.01");
	hp_manifest_set_str(&m->month, month);
	hp_manifest_set_str(&m->target, strrchr(target, '/') ? strrchr(target, '/') + 1 : target);
	hp_manifest_set_str(&m->build_id, bid);
	hp_manifest_set_str(&m->patch_sha256, hex);
	for (size_t i = 0; i < n_funcs; i++) {
		const struct esym *s = find_sym(tsyms, n_tsyms, funcs[i]);
		unsigned flags = 0;

		if (!s || s->type != STT_FUNC)
			return fail(hp_err(-ENOENT, "mkset: %s: no function %s", target, funcs[i]));
		for (size_t k = 0; k < n_active; k++)
			if (strcmp(active[k], funcs[i]) == 0)
				flags |= HP_FUNC_ACTIVE_OK;
		hp_manifest_add_func(m, funcs[i], NULL, s->value, s->size, flags);
	}
	/* the patch's undefined references that the target defines */
	for (size_t i = 0; i < n_psyms; i++) {
		const struct esym *s;

		if (psyms[i].defined)
			continue;
		s = find_sym(tsyms, n_tsyms, psyms[i].name);
		if (s && (s->type == STT_FUNC || s->type == STT_OBJECT) &&
		    !hp_manifest_find_func(m, psyms[i].name))
			hp_manifest_add_sym(m, psyms[i].name, NULL, s->value);
	}
	mkdir(out, 0755);
	r = hp_manifest_format(m, &b);
	snprintf(path, sizeof(path), "%s/manifest", out);
	if (r == 0)
		r = hp_write_file_atomic(path, b.data, b.len, 0644);
	snprintf(path, sizeof(path), "%s/patch.so", out);
	if (r == 0)
		r = hp_write_file_atomic(path, sob.data, sob.len, 0644);
	hp_buf_release(&b);
	hp_buf_release(&sob);
	hp_manifest_free(m);
	return r < 0 ? fail(r) : 0;
}

int main(int argc, char **argv)
{
	struct apply_result res;
	struct apply_opts opts = { 0 };
	struct loaded l;
	int r;

	if (argc < 3) {
		fprintf(stderr, "usage: engine-driver apply|revert|inspect|cycle|mkset ...\n");
		return 2;
	}
	if (strcmp(argv[1], "mkset") == 0)
		return cmd_mkset(argc - 2, argv + 2);
	if (strcmp(argv[1], "hold") == 0 && argc >= 4) {
		if (ptrace(PTRACE_SEIZE, (pid_t)atoi(argv[2]), NULL, NULL) < 0)
			return fail(hp_err(-errno, "seize: %s", strerror(errno)));
		printf("held\n");
		fflush(stdout);
		sleep((unsigned)atoi(argv[3]));
		return 0;
	}
	if (strcmp(argv[1], "textsum") == 0)
		return cmd_textsum((pid_t)atoi(argv[2]));
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
		return cmd_cycle((pid_t)atoi(argv[2]), argv[3], atoi(argv[4]));
	if (strcmp(argv[1], "apply") == 0 && argc >= 4) {
		r = load_dir(argv[3], &l);
		if (r < 0)
			return fail(r);
		if (argc > 4)
			opts.budget_ms = (unsigned)atoi(argv[4]);
		r = apply_patch((pid_t)atoi(argv[2]), &l.set, &opts, &res);
		loaded_release(&l);
		if (r < 0)
			return fail(r);
		print_result("applied", &res);
		return 0;
	}
	fprintf(stderr, "engine-driver: bad command\n");
	return 2;
}

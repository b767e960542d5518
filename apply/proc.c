/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The process's memory, and the ELF objects mapped in it with their
 * build-ids and load biases (its mappings and stat fields as /proc states
 * them are common/procfs.c's). The ELF
 * headers, notes and dynamic tables are read from the process's own memory,
 * never from the file system, so mount namespaces, chroots and deleted
 * files make no difference.
 */
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "apply-int.h"

/* Bytes of a PT_NOTE segment looked through for the build-id: ld puts it
 * first, after at most a .note.gnu.property and an ABI tag. */
#define NOTE_MAX_BYTES 4096

int proc_mem_read(int mem_fd, uint64_t addr, void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(mem_fd, (char *)buf + done, len - done, (off_t)(addr + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return hp_err(errno == ESRCH ? -ESRCH : -EIO, "read memory at 0x%" PRIx64
				      ": %s", addr + done, strerror(errno));
		if (n == 0)
			return hp_err(-EIO, "read memory at 0x%" PRIx64 ": unmapped", addr + done);
		done += (size_t)n;
	}
	return 0;
}

int proc_mem_write(int mem_fd, uint64_t addr, const void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(mem_fd, (const char *)buf + done, len - done,
				   (off_t)(addr + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return hp_err(-EIO, "write memory at 0x%" PRIx64 ": %s", addr + done,
				      strerror(errno));
		if (n == 0)
			return hp_err(-EIO, "write memory at 0x%" PRIx64 ": unmapped", addr + done);
		done += (size_t)n;
	}
	return 0;
}

/* ---- objects ------------------------------------------------------------ */

static void dyncache_free(struct proc_dyncache *c);

void proc_objects_release(struct proc_objects *o)
{
	if (!o)
		return;
	for (size_t i = 0; i < o->n; i++) {
		free(o->v[i].path);
		dyncache_free(o->v[i].dyn);
	}
	free(o->v);
	o->v = NULL;
	o->n = 0;
}

const struct proc_object *proc_objects_find(const struct proc_objects *o, const char *build_id)
{
	for (size_t i = 0; i < o->n; i++)
		if (strcmp(o->v[i].build_id, build_id) == 0)
			return &o->v[i];
	return NULL;
}

/*
 * The memory reader hp_elf_headers_read() takes: the object's first page,
 * read at once, answers what lies in it (the ELF header, the program
 * headers and, as ld lays them out, the notes: one read instead of four
 * per object, each a trip through the kernel's page walk); the rest is read
 * from the process.
 */
struct first_page {
	int mem_fd;
	uint64_t start;
	size_t len;
	const uint8_t *data; /* own, or read for every object at once */
	uint8_t own[HP_PAGE_SIZE];
};

static int first_page_read(void *ctx, uint64_t addr, void *buf, size_t len)
{
	const struct first_page *fp = ctx;

	if (addr >= fp->start && len <= fp->len && addr - fp->start <= fp->len - len) {
		memcpy(buf, fp->data + (addr - fp->start), len);
		return 0;
	}
	return proc_mem_read(fp->mem_fd, addr, buf, len);
}

/*
 * One object whose first mapping (file offset 0) starts at map->start:
 * read its ELF and program headers from memory, compute the bias from the
 * PT_LOAD that covers file offset 0, then read the build-id note.
 */
static int object_from_memory(int mem_fd, const struct proc_map *map, const uint8_t *first,
			      struct proc_object *ret)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph[HP_ELF_PHDR_MAX];
	uint8_t notes[NOTE_MAX_BYTES];
	struct proc_object o = { 0 };
	struct first_page fp;
	bool have_bias = false;
	size_t nph;
	int r;

	fp.mem_fd = mem_fd;
	fp.start = map->start;
	fp.len = map->end - map->start < sizeof(fp.own) ? map->end - map->start : sizeof(fp.own);
	fp.data = first ? first : fp.own;
	if (!first && proc_mem_read(mem_fd, fp.start, fp.own, fp.len) < 0)
		return -ENOENT;
	r = hp_elf_headers_read(first_page_read, &fp, map->start, map->end - map->start, &eh, ph);
	if (r < 0)
		return -ENOENT;
	nph = (size_t)r;
	for (size_t i = 0; i < nph; i++) {
		if (ph[i].p_type == PT_LOAD && !have_bias) {
			/* the first PT_LOAD holds file offset 0: its page starts the mapping */
			uint64_t page = ph[i].p_vaddr & ~(uint64_t)(HP_PAGE_SIZE - 1);

			if (ph[i].p_offset >= HP_PAGE_SIZE)
				return -ENOENT;
			o.bias = map->start - page;
			have_bias = true;
		}
	}
	if (!have_bias)
		return -ENOENT;
	for (size_t i = 0; i < nph; i++) {
		if (ph[i].p_type == PT_LOAD && (ph[i].p_flags & PF_X)) {
			uint64_t end = o.bias + ph[i].p_vaddr + ph[i].p_memsz;
			uint64_t room = (HP_PAGE_SIZE - end % HP_PAGE_SIZE) % HP_PAGE_SIZE;

			/* the rest of the code segment's last page: mapped, executable, unused */
			if (room > o.slack_len) {
				o.slack = end;
				o.slack_len = room;
			}
		}
		if (ph[i].p_type == PT_DYNAMIC) {
			o.dynamic = o.bias + ph[i].p_vaddr;
			o.dyn_size = ph[i].p_memsz;
		}
		if (ph[i].p_type == PT_NOTE && !o.build_id[0]) {
			size_t len = ph[i].p_filesz < sizeof(notes) ? ph[i].p_filesz : sizeof(notes);

			if (first_page_read(&fp, o.bias + ph[i].p_vaddr, notes, len) == 0)
				hp_elf_notes_build_id(notes, len, o.build_id);
		}
	}
	if (!o.build_id[0])
		return -ENOENT;
	o.inode = map->inode;
	*ret = o;
	return 0;
}

static bool may_start_object(const struct proc_map *m)
{
	return m->offset == 0 && (m->prot & PROT_READ) && m->path &&
	       (m->path[0] == '/' || strcmp(m->path, "[vdso]") == 0);
}

#define MEM_BATCH 256

void proc_mem_read_starts(pid_t pid, const uint64_t *start, size_t n, size_t len, void *buf,
			  bool *got)
{
	struct iovec local[MEM_BATCH], remote[MEM_BATCH];
	size_t i = 0;

	while (pid > 0 && i < n) {
		size_t m = n - i < MEM_BATCH ? n - i : MEM_BATCH, full;
		ssize_t bytes;

		for (size_t j = 0; j < m; j++) {
			local[j] = (struct iovec){ (char *)buf + (i + j) * len, len };
			remote[j] = (struct iovec){ (void *)(uintptr_t)start[i + j], len };
		}
		bytes = process_vm_readv(pid, local, m, remote, m, 0);
		if (bytes < 0 && errno != EFAULT)
			return;
		full = bytes < 0 ? 0 : (size_t)bytes / len;
		for (size_t j = 0; j < full; j++)
			got[i + j] = true;
		i += full < m ? full + 1 : m;
	}
}

int proc_objects_read(pid_t pid, int mem_fd, const struct proc_maps *maps,
		      struct proc_objects *ret)
{
	struct proc_objects o = { 0 };
	/* the first page of every mapping that may start an object, read at
	 * once (one read of /proc/PID/mem each was most of an operation's
	 * reads of a small process); page[i]: map i's, or NULL */
	uint64_t *starts = pid > 0 ? calloc(maps->n + 1, sizeof(*starts)) : NULL;
	uint8_t *pages = starts ? malloc((maps->n + 1) * HP_PAGE_SIZE) : NULL;
	bool *got = pages ? calloc(maps->n + 1, sizeof(*got)) : NULL;
	const uint8_t **page = got ? calloc(maps->n + 1, sizeof(*page)) : NULL;
	size_t cap = 0, n = 0;
	int r = 0;

	for (size_t i = 0; page && i < maps->n; i++)
		if (may_start_object(&maps->v[i]) && maps->v[i].end - maps->v[i].start >= HP_PAGE_SIZE)
			starts[n++] = maps->v[i].start;
	if (page)
		proc_mem_read_starts(pid, starts, n, HP_PAGE_SIZE, pages, got);
	for (size_t i = 0, k = 0; page && i < maps->n; i++)
		if (may_start_object(&maps->v[i]) && maps->v[i].end - maps->v[i].start >= HP_PAGE_SIZE) {
			page[i] = got[k] ? pages + k * HP_PAGE_SIZE : NULL;
			k++;
		}
	for (size_t i = 0; i < maps->n; i++) {
		const struct proc_map *m = &maps->v[i];
		struct proc_object obj;

		if (!may_start_object(m))
			continue;
		if (object_from_memory(mem_fd, m, page ? page[i] : NULL, &obj) < 0)
			continue;
		obj.first_map = i;
		obj.n_maps = 1;
		while (i + obj.n_maps < maps->n && maps->v[i + obj.n_maps].path &&
		       maps->v[i + obj.n_maps].inode == m->inode &&
		       strcmp(maps->v[i + obj.n_maps].path, m->path) == 0 &&
		       maps->v[i + obj.n_maps].offset != 0)
			obj.n_maps++;
		obj.path = strdup(m->path);
		if (!obj.path) {
			r = -ENOMEM;
			goto out;
		}
		if (o.n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct proc_object *v = realloc(o.v, ncap * sizeof(*v));

			if (!v) {
				free(obj.path);
				r = -ENOMEM;
				goto out;
			}
			o.v = v;
			cap = ncap;
		}
		o.v[o.n++] = obj;
	}
	*ret = o;
	o = (struct proc_objects){ 0 };
out:
	free(starts);
	free(pages);
	free(got);
	free(page);
	proc_objects_release(&o);
	return r;
}

/* ---- dynamic symbols, read from memory ------------------------------------ */

struct dyninfo {
	uint64_t symtab, strtab, strsz, gnu_hash, hash, versym;
};

/*
 * An object's dynamic section and hash header, read once per operation:
 * most names are not defined in most objects (the unwinder's, a patch's
 * imports), and with the GNU hash table's Bloom filter at hand saying so
 * takes no read at all. ld.so wrote these at load time; they do not
 * change after.
 */
#define BLOOM_MAX_WORDS 8192
#define BLOOM_GUESS 256

struct proc_dyncache {
	int r;             /* read_dyninfo's result */
	struct dyninfo di;
	uint32_t hdr[4];   /* GNU: nbuckets, symoffset, bloom words, shift; SysV: nbucket, nchain */
	int hdr_r;
	uint64_t *bloom;   /* GNU, when its size is sane; NULL: read word by word */
	bool failed;       /* a read of a lookup failed: its -ENOENT may not be the object's */
};

/* ld.so rewrites d_ptr entries to absolute addresses in most objects, but
 * not in the vDSO: an entry below the bias is still relative. */
static uint64_t dyn_addr(const struct proc_object *obj, uint64_t v)
{
	return v < obj->bias ? v + obj->bias : v;
}

#define DYN_MAX 512

static int read_dyninfo(int mem_fd, const struct proc_object *obj, struct dyninfo *ret)
{
	struct dyninfo di = { 0 };
	Elf64_Dyn dyn[DYN_MAX];
	size_t n = obj->dyn_size / sizeof(dyn[0]);

	if (!obj->dynamic)
		return -ENOENT;
	if (n > DYN_MAX)
		n = DYN_MAX;
	/* one read, once per operation (dyncache) */
	if (proc_mem_read(mem_fd, obj->dynamic, dyn, n * sizeof(dyn[0])) < 0)
		return -EIO;
	for (size_t i = 0; i < n; i++) {
		const Elf64_Dyn d = dyn[i];

		if (d.d_tag == DT_NULL)
			break;
		switch (d.d_tag) {
		case DT_SYMTAB: di.symtab = dyn_addr(obj, d.d_un.d_ptr); break;
		case DT_STRTAB: di.strtab = dyn_addr(obj, d.d_un.d_ptr); break;
		case DT_STRSZ: di.strsz = d.d_un.d_val; break;
		case DT_GNU_HASH: di.gnu_hash = dyn_addr(obj, d.d_un.d_ptr); break;
		case DT_HASH: di.hash = dyn_addr(obj, d.d_un.d_ptr); break;
		case DT_VERSYM: di.versym = dyn_addr(obj, d.d_un.d_ptr); break;
		default: break;
		}
	}
	if (!di.symtab || !di.strtab || (!di.gnu_hash && !di.hash))
		return -ENOENT;
	*ret = di;
	return 0;
}

/* A read for a lookup in obj's tables, its failure marked in obj's cache. */
static int dyn_read(const struct proc_object *obj, int mem_fd, uint64_t addr, void *buf,
		    size_t len)
{
	int r = proc_mem_read(mem_fd, addr, buf, len);

	if (r < 0 && obj->dyn)
		obj->dyn->failed = true;
	return r;
}

/* Whether symbol idx is a usable definition of name. */
static int sym_match(int mem_fd, const struct proc_object *obj, const struct dyninfo *di,
		     uint32_t idx, const char *name, uint64_t *ret_addr, unsigned char *ret_type,
		     uint64_t *ret_size)
{
	Elf64_Sym s;
	size_t nlen = strlen(name) + 1;
	char buf[256];

	if (nlen > sizeof(buf))
		return -ENOENT;
	if (dyn_read(obj, mem_fd, di->symtab + (uint64_t)idx * sizeof(s), &s, sizeof(s)) < 0)
		return -EIO;
	if (s.st_shndx == SHN_UNDEF || s.st_name >= di->strsz || ELF64_ST_BIND(s.st_info) == STB_LOCAL)
		return -ENOENT;
	if (di->strsz - s.st_name < nlen)
		return -ENOENT;
	if (dyn_read(obj, mem_fd, di->strtab + s.st_name, buf, nlen) < 0 ||
	    memcmp(buf, name, nlen) != 0)
		return -ENOENT;
	if (di->versym) {
		uint16_t vs;

		/* a hidden version (name@VER, not @@VER) is not the default */
		if (dyn_read(obj, mem_fd, di->versym + (uint64_t)idx * 2, &vs, 2) == 0 &&
		    (vs & 0x8000))
			return -ENOENT;
	}
	*ret_addr = ELF64_ST_TYPE(s.st_info) == STT_TLS ? s.st_value : obj->bias + s.st_value;
	*ret_type = ELF64_ST_TYPE(s.st_info);
	if (ret_size)
		*ret_size = s.st_size;
	return 0;
}

static uint32_t gnu_hash(const char *s)
{
	uint32_t h = 5381;

	for (; *s; s++)
		h = h * 33 + (unsigned char)*s;
	return h;
}

static uint32_t sysv_hash(const char *s)
{
	uint32_t h = 0, g;

	for (; *s; s++) {
		h = (h << 4) + (unsigned char)*s;
		g = h & 0xf0000000u;
		if (g)
			h ^= g >> 24;
		h &= ~g;
	}
	return h;
}

static void dyncache_free(struct proc_dyncache *c)
{
	if (c)
		free(c->bloom);
	free(c);
}

/* The object's cache, read on first use (NULL: out of memory). */
static struct proc_dyncache *dyncache(int mem_fd, const struct proc_object *obj)
{
	struct proc_object *o = (struct proc_object *)obj; /* the cache is not the object */
	struct proc_dyncache *c = o->dyn;

	if (c)
		return c;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->r = read_dyninfo(mem_fd, obj, &c->di);
	c->hdr_r = -ENOENT;
	if (c->r == 0 && c->di.gnu_hash) {
		/* the header and, in the same read, a Bloom filter of up to
		 * BLOOM_GUESS words (libc's has 256): a larger one is read next */
		uint64_t first[2 + BLOOM_GUESS];
		bool whole = true;

		c->hdr_r = proc_mem_read(mem_fd, c->di.gnu_hash, first, sizeof(first));
		if (c->hdr_r < 0) { /* the table ends its mapping: the header alone */
			hp_err_clear();
			whole = false;
			c->hdr_r = proc_mem_read(mem_fd, c->di.gnu_hash, first, 16);
		}
		memcpy(c->hdr, first, sizeof(c->hdr));
		if (c->hdr_r == 0 && (c->hdr[0] == 0 || c->hdr[2] == 0))
			c->hdr_r = -ENOENT;
		if (c->hdr_r == 0 && c->hdr[2] <= BLOOM_MAX_WORDS) {
			size_t bytes = 8 * (size_t)c->hdr[2];

			c->bloom = malloc(bytes);
			if (c->bloom && whole && c->hdr[2] <= BLOOM_GUESS) {
				memcpy(c->bloom, first + 2, bytes);
			} else if (c->bloom &&
				   proc_mem_read(mem_fd, c->di.gnu_hash + 16, c->bloom, bytes) < 0) {
				free(c->bloom);
				c->bloom = NULL;
			}
		}
	} else if (c->r == 0) {
		c->hdr_r = proc_mem_read(mem_fd, c->di.hash, c->hdr, 8);
		if (c->hdr_r == 0 && c->hdr[0] == 0)
			c->hdr_r = -ENOENT;
	}
	o->dyn = c;
	return c;
}

int proc_object_dynsym(int mem_fd, const struct proc_object *obj, const char *name,
		       uint64_t *ret_addr, unsigned char *ret_type, uint64_t *ret_size)
{
	const struct proc_dyncache *c;
	const struct dyninfo *di;

	if (!obj->dynamic)
		return -ENOENT;
	c = dyncache(mem_fd, obj);
	if (!c || c->r < 0 || c->hdr_r < 0)
		return -ENOENT;
	di = &c->di;
	if (di->gnu_hash) {
		const uint32_t *hdr = c->hdr;
		uint32_t h = gnu_hash(name), bucket, chain;
		uint64_t base = di->gnu_hash, bloom_word, buckets, chains;
		uint64_t w = (uint64_t)((h / 64) % hdr[2]);

		/* hdr: nbuckets, symoffset, bloom_size (64-bit words), bloom_shift */
		if (c->bloom)
			bloom_word = c->bloom[w];
		else if (dyn_read(obj, mem_fd, base + 16 + 8 * w, &bloom_word, 8) < 0)
			return -ENOENT;
		if (!((bloom_word >> (h % 64)) & 1) || !((bloom_word >> ((h >> hdr[3]) % 64)) & 1))
			return -ENOENT;
		buckets = base + 16 + 8 * (uint64_t)hdr[2];
		chains = buckets + 4 * (uint64_t)hdr[0];
		if (dyn_read(obj, mem_fd, buckets + 4 * (uint64_t)(h % hdr[0]), &bucket, 4) < 0)
			return -ENOENT;
		if (bucket < hdr[1])
			return -ENOENT;
		for (uint32_t idx = bucket; idx - bucket < (1u << 20); idx++) {
			if (dyn_read(obj, mem_fd, chains + 4 * (uint64_t)(idx - hdr[1]), &chain, 4) < 0)
				return -ENOENT;
			if ((chain | 1) == (h | 1) &&
			    sym_match(mem_fd, obj, di, idx, name, ret_addr, ret_type, ret_size) == 0)
				return 0;
			if (chain & 1)
				break;
		}
		return -ENOENT;
	}
	{
		const uint32_t *hdr = c->hdr;
		uint32_t h = sysv_hash(name), idx;

		if (dyn_read(obj, mem_fd, di->hash + 8 + 4 * (uint64_t)(h % hdr[0]), &idx, 4) < 0)
			return -ENOENT;
		/* nchain comes from the target: a chain that loops ends here too */
		for (unsigned n = 0; idx != 0 && idx < hdr[1] && n < hdr[1] && n < (1u << 20); n++) {
			if (sym_match(mem_fd, obj, di, idx, name, ret_addr, ret_type, ret_size) == 0)
				return 0;
			if (dyn_read(obj, mem_fd, di->hash + 8 + 4 * (uint64_t)hdr[0] + 4 * (uint64_t)idx,
					  &idx, 4) < 0)
				return -ENOENT;
		}
	}
	return -ENOENT;
}

bool proc_object_dynsym_whole(const struct proc_object *obj)
{
	const struct proc_dyncache *c = obj->dyn;

	if (!obj->dynamic)
		return true;
	if (!c || c->failed || c->r == -EIO)
		return false;
	return c->r < 0 || c->hdr_r == 0 || c->hdr_r == -ENOENT;
}

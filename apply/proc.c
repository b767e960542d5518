/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The process as /proc shows it: mappings, stat fields, memory, and the
 * ELF objects mapped in it with their build-ids and load biases. The ELF
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
#include <sys/stat.h>
#include <unistd.h>

#include "apply-int.h"

#define MAPS_MAX_BYTES (64u << 20)
#define NOTE_MAX_BYTES 4096
#define PHDR_MAX 64

void proc_maps_release(struct proc_maps *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++)
		free(m->v[i].path);
	free(m->v);
	m->v = NULL;
	m->n = 0;
}

static int parse_map_line(char *line, struct proc_map *ret)
{
	unsigned long long start, end, off, inode;
	char perms[8];
	int n = 0;
	struct proc_map m = { 0 };

	if (sscanf(line, "%llx-%llx %7s %llx %*x:%*x %llu %n", &start, &end, perms, &off, &inode,
		   &n) < 5)
		return -EINVAL;
	m.start = start;
	m.end = end;
	m.offset = off;
	m.inode = inode;
	m.prot = (perms[0] == 'r' ? PROT_READ : 0) | (perms[1] == 'w' ? PROT_WRITE : 0) |
		 (perms[2] == 'x' ? PROT_EXEC : 0);
	m.shared = perms[3] == 's';
	if (n > 0 && line[n]) {
		m.path = strdup(line + n);
		if (!m.path)
			return -ENOMEM;
	}
	*ret = m;
	return 0;
}

int proc_maps_read(pid_t pid, struct proc_maps *ret)
{
	struct hp_buf b = HP_BUF_INIT;
	struct proc_maps m = { 0 };
	char path[64];
	char *line, *save = NULL;
	size_t cap = 0;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	r = hp_read_file(path, MAPS_MAX_BYTES, &b);
	if (r == 0 && b.len == 0) {
		/* the leader has left: its view is empty, a live thread's is not */
		pid_t tid = proc_live_tid(pid);

		if (tid && tid != pid) {
			snprintf(path, sizeof(path), "/proc/%d/task/%d/maps", (int)pid, (int)tid);
			hp_buf_reset(&b);
			r = hp_read_file(path, MAPS_MAX_BYTES, &b);
		}
	}
	if (r < 0) {
		r = r == -ENOENT ? -ESRCH : r;
		r = hp_err(r, "read %s: %s", path, strerror(-r));
		goto out;
	}
	for (line = strtok_r(b.data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (m.n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			struct proc_map *v = realloc(m.v, ncap * sizeof(*v));

			if (!v) {
				r = -ENOMEM;
				goto out;
			}
			m.v = v;
			cap = ncap;
		}
		r = parse_map_line(line, &m.v[m.n]);
		if (r < 0) {
			r = hp_err(r, "parse %s: bad line '%.80s'", path, line);
			goto out;
		}
		m.n++;
	}
	*ret = m;
	m = (struct proc_maps){ 0 };
	r = 0;
out:
	proc_maps_release(&m);
	hp_buf_release(&b);
	return r;
}

const struct proc_map *proc_maps_find(const struct proc_maps *m, uint64_t addr)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (addr < m->v[mid].start)
			hi = mid;
		else if (addr >= m->v[mid].end)
			lo = mid + 1;
		else
			return &m->v[mid];
	}
	return NULL;
}

/*
 * /proc/PID/stat read into buf; *ret_fields points at its third field (the
 * state): comm may hold spaces and parentheses, the fields start after the
 * last ')'. -ESRCH when the process is gone, -EIO when the text is not as
 * expected.
 */
static int stat_fields(pid_t pid, char *buf, size_t cap, const char **ret_fields)
{
	char path[64];
	ssize_t n;
	char *p;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -ESRCH;
	n = read(fd, buf, cap - 1);
	close(fd);
	if (n <= 0)
		return -ESRCH;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ')
		return -EIO;
	*ret_fields = p + 2;
	return 0;
}

int proc_stat(pid_t pid, char *ret_state, uint64_t *ret_start_time)
{
	char buf[4096];
	const char *f;
	unsigned long long st = 0;
	char state;
	int r;

	r = stat_fields(pid, buf, sizeof(buf), &f);
	if (r == -ESRCH)
		return hp_err(-ESRCH, "process %d: no such process", (int)pid);
	if (r < 0 || sscanf(f,
			    "%c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d"
			    " %*d %*d %llu",
			    &state, &st) != 2)
		return hp_err(-EIO, "parse /proc/%d/stat: unexpected format", (int)pid);
	if (ret_state)
		*ret_state = state;
	if (ret_start_time)
		*ret_start_time = st;
	return 0;
}

long proc_thread_count(pid_t pid)
{
	char path[64];
	struct stat st;

	/*
	 * The kernel gives /proc/PID/task a link count of 2 plus the group's
	 * thread count (proc_task_getattr, the num_threads of /proc/PID/stat):
	 * one stat, where /proc/PID/stat is opened, formatted (some fifty
	 * fields), read and parsed. The stop asks this while every thread is held.
	 */
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	if (stat(path, &st) < 0 || st.st_nlink < 2)
		return -1;
	return (long)st.st_nlink - 2;
}

int proc_task_state(pid_t pid, pid_t tid, char *ret_state)
{
	char path[64];
	char buf[512];
	const char *p;
	ssize_t n;
	int fd;

	/* open + read, not stdio: the engine reads every thread's before a stop */
	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, (int)tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -ESRCH;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -ESRCH;
	buf[n] = '\0';
	/* the name in parentheses may hold anything: the state follows the last ')' */
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || !p[2])
		return -ESRCH;
	*ret_state = p[2];
	return 0;
}

pid_t proc_live_tid(pid_t pid)
{
	char path[64];
	DIR *d;
	struct dirent *de;
	pid_t tid = 0;
	char st;

	/* /proc/PID/stat shows the leader: Z also when only it has left */
	if (proc_task_state(pid, pid, &st) == 0 && st != 'Z' && st != 'X')
		return pid;
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return 0;
	while (!tid && (de = readdir(d))) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		if (proc_task_state(pid, (pid_t)atoi(de->d_name), &st) == 0 && st != 'Z' &&
		    st != 'X')
			tid = (pid_t)atoi(de->d_name);
	}
	closedir(d);
	return tid;
}

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

void proc_objects_release(struct proc_objects *o)
{
	if (!o)
		return;
	for (size_t i = 0; i < o->n; i++)
		free(o->v[i].path);
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

static void hex_encode(const uint8_t *p, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[p[i] >> 4];
		out[2 * i + 1] = hex[p[i] & 15];
	}
	out[2 * n] = '\0';
}

int proc_notes_build_id(const uint8_t *p, size_t len, char out[129])
{
	size_t off = 0;

	while (off + sizeof(Elf64_Nhdr) <= len) {
		Elf64_Nhdr nh;
		size_t name_sz, desc_sz;

		memcpy(&nh, p + off, sizeof(nh));
		off += sizeof(nh);
		name_sz = (nh.n_namesz + 3u) & ~3u;
		desc_sz = (nh.n_descsz + 3u) & ~3u;
		if (name_sz > len - off || desc_sz > len - off - name_sz)
			return -ENOENT;
		if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
		    memcmp(p + off, "GNU", 4) == 0 && nh.n_descsz > 0 && nh.n_descsz <= 64) {
			hex_encode(p + off + name_sz, nh.n_descsz, out);
			return 0;
		}
		off += name_sz + desc_sz;
	}
	return -ENOENT;
}

/*
 * One object whose first mapping (file offset 0) starts at map->start:
 * read its ELF and program headers from memory, compute the bias from the
 * PT_LOAD that covers file offset 0, then read the build-id note.
 */
static int object_from_memory(int mem_fd, const struct proc_map *map, struct proc_object *ret)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph[PHDR_MAX];
	uint8_t notes[NOTE_MAX_BYTES];
	struct proc_object o = { 0 };
	bool have_bias = false;
	size_t nph;

	if (proc_mem_read(mem_fd, map->start, &eh, sizeof(eh)) < 0)
		return -ENOENT;
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    (eh.e_type != ET_DYN && eh.e_type != ET_EXEC) || eh.e_phentsize != sizeof(Elf64_Phdr))
		return -ENOENT;
	nph = eh.e_phnum;
	if (nph == 0 || nph > PHDR_MAX || eh.e_phoff > map->end - map->start ||
	    nph * sizeof(Elf64_Phdr) > map->end - map->start - eh.e_phoff)
		return -ENOENT;
	if (proc_mem_read(mem_fd, map->start + eh.e_phoff, ph, nph * sizeof(Elf64_Phdr)) < 0)
		return -ENOENT;
	for (size_t i = 0; i < nph; i++) {
		if (ph[i].p_type == PT_LOAD && !have_bias) {
			/* the first PT_LOAD holds file offset 0: its page starts the mapping */
			uint64_t page = ph[i].p_vaddr & ~(uint64_t)(getpagesize() - 1);

			if (ph[i].p_offset >= (uint64_t)getpagesize())
				return -ENOENT;
			o.bias = map->start - page;
			have_bias = true;
		}
	}
	if (!have_bias)
		return -ENOENT;
	for (size_t i = 0; i < nph; i++) {
		if (ph[i].p_type == PT_LOAD && (ph[i].p_flags & PF_X)) {
			uint64_t page = (uint64_t)getpagesize();
			uint64_t end = o.bias + ph[i].p_vaddr + ph[i].p_memsz;
			uint64_t room = (page - end % page) % page;

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

			if (proc_mem_read(mem_fd, o.bias + ph[i].p_vaddr, notes, len) == 0)
				proc_notes_build_id(notes, len, o.build_id);
		}
	}
	if (!o.build_id[0])
		return -ENOENT;
	o.inode = map->inode;
	*ret = o;
	return 0;
}

int proc_objects_read(int mem_fd, const struct proc_maps *maps, struct proc_objects *ret)
{
	struct proc_objects o = { 0 };
	size_t cap = 0;
	int r = 0;

	for (size_t i = 0; i < maps->n; i++) {
		const struct proc_map *m = &maps->v[i];
		struct proc_object obj;

		if (m->offset != 0 || !(m->prot & PROT_READ) || !m->path ||
		    (m->path[0] != '/' && strcmp(m->path, "[vdso]") != 0))
			continue;
		if (object_from_memory(mem_fd, m, &obj) < 0)
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
	proc_objects_release(&o);
	return r;
}

/* ---- dynamic symbols, read from memory ------------------------------------ */

struct dyninfo {
	uint64_t symtab, strtab, strsz, gnu_hash, hash, versym;
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
	/* one read: this runs once per symbol looked up */
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
	if (proc_mem_read(mem_fd, di->symtab + (uint64_t)idx * sizeof(s), &s, sizeof(s)) < 0)
		return -EIO;
	if (s.st_shndx == SHN_UNDEF || s.st_name >= di->strsz || ELF64_ST_BIND(s.st_info) == STB_LOCAL)
		return -ENOENT;
	if (di->strsz - s.st_name < nlen)
		return -ENOENT;
	if (proc_mem_read(mem_fd, di->strtab + s.st_name, buf, nlen) < 0 ||
	    memcmp(buf, name, nlen) != 0)
		return -ENOENT;
	if (di->versym) {
		uint16_t vs;

		/* a hidden version (name@VER, not @@VER) is not the default */
		if (proc_mem_read(mem_fd, di->versym + (uint64_t)idx * 2, &vs, 2) == 0 &&
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

int proc_object_dynsym(int mem_fd, const struct proc_object *obj, const char *name,
		       uint64_t *ret_addr, unsigned char *ret_type, uint64_t *ret_size)
{
	struct dyninfo di;
	int r;

	r = read_dyninfo(mem_fd, obj, &di);
	if (r < 0)
		return -ENOENT;
	if (di.gnu_hash) {
		uint32_t hdr[4], h = gnu_hash(name), bucket, chain;
		uint64_t base = di.gnu_hash, bloom_word, buckets, chains;

		if (proc_mem_read(mem_fd, base, hdr, sizeof(hdr)) < 0 || hdr[0] == 0 || hdr[2] == 0)
			return -ENOENT;
		/* hdr: nbuckets, symoffset, bloom_size (64-bit words), bloom_shift */
		if (proc_mem_read(mem_fd, base + 16 + 8 * (uint64_t)((h / 64) % hdr[2]), &bloom_word,
				  8) < 0)
			return -ENOENT;
		if (!((bloom_word >> (h % 64)) & 1) || !((bloom_word >> ((h >> hdr[3]) % 64)) & 1))
			return -ENOENT;
		buckets = base + 16 + 8 * (uint64_t)hdr[2];
		chains = buckets + 4 * (uint64_t)hdr[0];
		if (proc_mem_read(mem_fd, buckets + 4 * (uint64_t)(h % hdr[0]), &bucket, 4) < 0)
			return -ENOENT;
		if (bucket < hdr[1])
			return -ENOENT;
		for (uint32_t idx = bucket; idx - bucket < (1u << 20); idx++) {
			if (proc_mem_read(mem_fd, chains + 4 * (uint64_t)(idx - hdr[1]), &chain, 4) < 0)
				return -ENOENT;
			if ((chain | 1) == (h | 1) &&
			    sym_match(mem_fd, obj, &di, idx, name, ret_addr, ret_type, ret_size) == 0)
				return 0;
			if (chain & 1)
				break;
		}
		return -ENOENT;
	}
	{
		uint32_t hdr[2], h = sysv_hash(name), idx;

		if (proc_mem_read(mem_fd, di.hash, hdr, sizeof(hdr)) < 0 || hdr[0] == 0)
			return -ENOENT;
		if (proc_mem_read(mem_fd, di.hash + 8 + 4 * (uint64_t)(h % hdr[0]), &idx, 4) < 0)
			return -ENOENT;
		/* nchain comes from the target: a chain that loops ends here too */
		for (unsigned n = 0; idx != 0 && idx < hdr[1] && n < hdr[1] && n < (1u << 20); n++) {
			if (sym_match(mem_fd, obj, &di, idx, name, ret_addr, ret_type, ret_size) == 0)
				return 0;
			if (proc_mem_read(mem_fd, di.hash + 8 + 4 * (uint64_t)hdr[0] + 4 * (uint64_t)idx,
					  &idx, 4) < 0)
				return -ENOENT;
		}
	}
	return -ENOENT;
}

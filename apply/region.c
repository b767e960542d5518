/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Patch regions, read back from the target. A region is one anonymous
 * mapping: a read-only header (struct region_hdr, then n_funcs struct
 * region_func), then the patch object's image. The header is written
 * before any jump exists and never changes meaning afterwards (only
 * pause_us is filled in after the stop), so what is applied is decided by
 * the jumps themselves: a region is applied when the entries it lists jump
 * into it. A region no entry jumps to (a daemon killed before the switch, or
 * an old month a thread was still running in) is an orphan: not applied,
 * unmapped by the next operation that finds it safe to.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "apply-int.h"

_Static_assert(sizeof(struct region_hdr) == 368, "region header layout is ABI");
_Static_assert(sizeof(struct region_func) == 120, "region function layout is ABI");

size_t region_hdr_bytes(size_t n_funcs)
{
	return sizeof(struct region_hdr) + n_funcs * sizeof(struct region_func);
}

static bool str_ok(const char *s, size_t cap)
{
	return memchr(s, '\0', cap) != NULL;
}

int region_hdr_check(const struct region_hdr *h, uint64_t map_size)
{
	if (memcmp(h->magic, REGION_MAGIC, 8) != 0)
		return -ENOENT;
	if (h->version != REGION_VERSION || h->n_funcs == 0 || h->n_funcs > HP_MANIFEST_MAX_FUNCS ||
	    h->hdr_size != region_hdr_bytes(h->n_funcs) || h->hdr_size > map_size ||
	    h->jump_len == 0 || h->jump_len > REGION_SAVED_MAX || !str_ok(h->build_id, 129) ||
	    !str_ok(h->set_id, 160) || !str_ok(h->month, 8) || h->text_start > h->text_end ||
	    h->region_size < map_size)
		return -EINVAL;
	return 0;
}

void regions_release(struct regions *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		free(r->v[i].funcs);
	free(r->v);
	r->v = NULL;
	r->n = 0;
}

/* hdr: the mapping's first bytes when already read, else NULL */
static int region_read(int mem_fd, const struct proc_map *m, const struct region_hdr *hdr,
		       struct region *ret)
{
	struct region rg = { 0 };
	size_t fbytes;
	int r;

	if (hdr)
		rg.hdr = *hdr;
	else if ((r = proc_mem_read(mem_fd, m->start, &rg.hdr, sizeof(rg.hdr))) < 0)
		return r;
	r = region_hdr_check(&rg.hdr, m->end - m->start);
	if (r < 0)
		return r;
	rg.addr = m->start;
	fbytes = (size_t)rg.hdr.n_funcs * sizeof(struct region_func);
	rg.funcs = malloc(fbytes);
	if (!rg.funcs)
		return -ENOMEM;
	r = proc_mem_read(mem_fd, m->start + sizeof(rg.hdr), rg.funcs, fbytes);
	if (r < 0)
		goto fail;
	for (uint32_t i = 0; i < rg.hdr.n_funcs; i++) {
		uint8_t cur[ARCH_JUMP_LEN];
		uint64_t to;

		rg.funcs[i].name[sizeof(rg.funcs[i].name) - 1] = '\0';
		if (proc_mem_read(mem_fd, rg.funcs[i].addr, cur, sizeof(cur)) == 0 &&
		    arch_jump_decode(rg.funcs[i].addr, cur, &to) && to == rg.funcs[i].new_addr)
			rg.n_jumped++;
	}
	if ((m->prot & PROT_WRITE) && rg.n_jumped) {
		r = -EINVAL; /* a writable header is never one we switched to */
		goto fail;
	}
	*ret = rg;
	return 0;
fail:
	free(rg.funcs);
	return r;
}

/*
 * region_size comes from the target's memory and is what a later munmap
 * unmaps: [start, start + size) must be the anonymous private mappings
 * that follow the header without a gap (the last one may go on: the kernel
 * merges a neighbour with the same flags), never a file, the stack or the
 * heap.
 */
static bool region_extent_ok(const struct proc_maps *maps, size_t i, uint64_t size)
{
	uint64_t at = maps->v[i].start, end = at + size;

	if (size % HP_PAGE_SIZE || end < at)
		return false;
	for (size_t k = i; k < maps->n && at < end; k++) {
		const struct proc_map *m = &maps->v[k];

		if (m->start != at || m->path || m->inode || m->shared)
			return false;
		at = m->end;
	}
	return at >= end;
}

/*
 * Headers are anonymous, private, read-only (writable only in the instant
 * between mmap and mprotect, where an engine killed leaves an orphan the
 * next operation must find): every mapping that may hold one.
 */
static bool may_hold_header(const struct proc_map *m)
{
	return !m->path && !m->inode && !(m->prot & PROT_EXEC) && (m->prot & PROT_READ) &&
	       !m->shared && m->end - m->start >= sizeof(struct region_hdr);
}

/* candidates looked at a batch at a time */
#define HDR_BATCH 256

int regions_read(pid_t pid, int mem_fd, const struct proc_maps *maps, struct regions *ret)
{
	struct regions rs = { 0 };
	struct region_hdr *hdrs = malloc(HDR_BATCH * sizeof(*hdrs));
	size_t cap = 0, idx[HDR_BATCH];
	uint64_t starts[HDR_BATCH];
	bool got[HDR_BATCH];
	int r = 0;

	if (!hdrs)
		return -ENOMEM;
	/* HDR_BATCH candidates at a time: their headers read, then looked at */
	for (size_t i = 0; i < maps->n;) {
		size_t n_idx = 0;

		for (; i < maps->n && n_idx < HDR_BATCH; i++)
			if (may_hold_header(&maps->v[i])) {
				starts[n_idx] = maps->v[i].start;
				idx[n_idx++] = i;
			}
		memset(got, 0, sizeof(got));
		/* mostly the threads' stacks: one read each was 64 system
		 * calls for a process of 64 threads, on every operation */
		proc_mem_read_starts(pid, starts, n_idx, sizeof(hdrs[0]), hdrs, got);
		for (size_t k = 0; k < n_idx; k++) {
			struct region rg;

			r = region_read(mem_fd, &maps->v[idx[k]], got[k] ? &hdrs[k] : NULL, &rg);
			if (r == -ENOMEM)
				goto out;
			if (r < 0)
				continue;
			if (!region_extent_ok(maps, idx[k], rg.hdr.region_size)) {
				free(rg.funcs);
				continue; /* not a region we made: never unmapped */
			}
			if (rs.n == cap) {
				size_t ncap = cap ? cap * 2 : 4;
				struct region *v = realloc(rs.v, ncap * sizeof(*v));

				if (!v) {
					free(rg.funcs);
					r = -ENOMEM;
					goto out;
				}
				rs.v = v;
				cap = ncap;
			}
			rs.v[rs.n++] = rg;
		}
	}
	*ret = rs;
	rs = (struct regions){ 0 };
	r = 0;
out:
	regions_release(&rs);
	free(hdrs);
	return r;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The lookup the engine needs: build-id -> (baseline, month, set). An index
 * built once per snapshot (so once per commit), on first use: every set's
 * target and build-id (from its manifest) and every baseline's targets
 * (from BASELINE), in arrays sorted for binary search. A lookup is then a
 * bsearch, and the reads and checks of the one set it returns.
 *
 * Order among candidates: newest month, then newest baseline (a build can
 * be in two baselines when it did not change), then the set name compared
 * as a version (strverscmp: fix-10 after fix-9) when one month has more
 * than one set for the same build.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store-int.h"


struct ix_set {
	char *set_id; /* "B/M/N"; the fields below point into buf */
	char *buf;
	const char *baseline, *month, *name, *target, *build_id;
};

struct ix_target {
	const char *baseline; /* points into a set or into baselines[] */
	char *name;
	char *build_id;
};

struct snap_index {
	struct ix_set *sets;   /* by baseline, month, name */
	size_t n_sets;
	size_t *by_bid;        /* set indices by build-id, month, baseline, name */
	struct ix_target *targets;
	size_t n_targets;
	size_t *t_by_bid;      /* by build-id, baseline */
	size_t *t_by_name;     /* by name, baseline */
	char **baselines;
	size_t n_baselines;
};

void snap_index_free(struct snap_index *ix)
{
	if (!ix)
		return;
	for (size_t i = 0; i < ix->n_sets; i++) {
		free(ix->sets[i].set_id);
		free(ix->sets[i].buf);
	}
	for (size_t i = 0; i < ix->n_targets; i++) {
		free(ix->targets[i].name);
		free(ix->targets[i].build_id);
	}
	for (size_t i = 0; i < ix->n_baselines; i++)
		free(ix->baselines[i]);
	free(ix->sets);
	free(ix->by_bid);
	free(ix->targets);
	free(ix->t_by_bid);
	free(ix->t_by_name);
	free(ix->baselines);
	free(ix);
}

/* "target" and "build-id" of a manifest, without a full parse (that comes at lookup). */
static int scan_manifest(const char *text, size_t len, char **ret_target, char **ret_bid)
{
	char *target = NULL, *bid = NULL;
	size_t pos = 0;

	while (pos < len) {
		const char *line = text + pos, *nl = memchr(line, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - line) : len - pos;

		pos += n + 1;
		if (n > 7 && !memcmp(line, "target ", 7) && !target)
			target = strndup(line + 7, n - 7);
		else if (n > 9 && !memcmp(line, "build-id ", 9) && !bid)
			bid = strndup(line + 9, n - 9);
	}
	if (!target || !bid || !hp_valid_build_id(bid) || strchr(target, ' ')) {
		free(target);
		free(bid);
		return -EINVAL;
	}
	*ret_target = target;
	*ret_bid = bid;
	return 0;
}

static int add_set(struct snap_index *ix, size_t *cap, const char *b, const char *m, const char *n,
		   char *target, char *bid)
{
	struct ix_set *s;
	size_t lb = strlen(b), lm = strlen(m), ln = strlen(n), lt = strlen(target), li = strlen(bid);
	char *p;

	if (ix->n_sets == *cap) {
		size_t nc = *cap ? *cap * 2 : 256;
		struct ix_set *ns = realloc(ix->sets, nc * sizeof(*ns));

		if (!ns)
			return -ENOMEM;
		ix->sets = ns;
		*cap = nc;
	}
	s = &ix->sets[ix->n_sets];
	s->buf = malloc(lb + lm + ln + lt + li + 5);
	if (!s->buf || asprintf(&s->set_id, "%s/%s/%s", b, m, n) < 0) {
		free(s->buf);
		return -ENOMEM;
	}
	p = s->buf;
	s->baseline = memcpy(p, b, lb + 1), p += lb + 1;
	s->month = memcpy(p, m, lm + 1), p += lm + 1;
	s->name = memcpy(p, n, ln + 1), p += ln + 1;
	s->target = memcpy(p, target, lt + 1), p += lt + 1;
	s->build_id = memcpy(p, bid, li + 1);
	ix->n_sets++;
	return 0;
}

/*
 * Process-wide memo: a set's tree id -> its target and build-id. A tree id
 * fixes the manifest's bytes, so an entry never goes stale; the index of
 * the next commit (one import later) reads only the new set's manifest.
 */
struct memo_ent {
	git_oid oid;
	char *target, *bid;
	struct memo_ent *next;
};
#define MEMO_BUCKETS 65536
#define MEMO_MAX 1000000
static pthread_mutex_t memo_mu = PTHREAD_MUTEX_INITIALIZER;
static struct memo_ent **memo;
static size_t memo_n;

static size_t memo_hash(const git_oid *oid)
{
	size_t h;

	memcpy(&h, oid->id, sizeof(h));
	return h % MEMO_BUCKETS;
}

static bool memo_get(const git_oid *oid, char **ret_target, char **ret_bid)
{
	bool hit = false;

	pthread_mutex_lock(&memo_mu);
	for (struct memo_ent *e = memo ? memo[memo_hash(oid)] : NULL; e; e = e->next) {
		if (git_oid_equal(&e->oid, oid)) {
			*ret_target = strdup(e->target);
			*ret_bid = strdup(e->bid);
			hit = *ret_target && *ret_bid;
			if (!hit) {
				free(*ret_target);
				free(*ret_bid);
			}
			break;
		}
	}
	pthread_mutex_unlock(&memo_mu);
	return hit;
}

static void memo_put(const git_oid *oid, const char *target, const char *bid)
{
	struct memo_ent *e = calloc(1, sizeof(*e));

	if (!e || !(e->target = strdup(target)) || !(e->bid = strdup(bid))) {
		if (e)
			free(e->target);
		free(e);
		return;
	}
	e->oid = *oid;
	pthread_mutex_lock(&memo_mu);
	if (!memo)
		memo = calloc(MEMO_BUCKETS, sizeof(*memo));
	if (memo && memo_n >= MEMO_MAX) {
		/* Bounded: start over rather than grow without limit. */
		for (size_t i = 0; i < MEMO_BUCKETS; i++) {
			for (struct memo_ent *x = memo[i], *next; x; x = next) {
				next = x->next;
				free(x->target);
				free(x->bid);
				free(x);
			}
			memo[i] = NULL;
		}
		memo_n = 0;
	}
	if (memo) {
		e->next = memo[memo_hash(oid)];
		memo[memo_hash(oid)] = e;
		memo_n++;
		e = NULL;
	}
	pthread_mutex_unlock(&memo_mu);
	if (e) {
		free(e->target);
		free(e->bid);
		free(e);
	}
}

static int index_baseline(struct store_snap *snap, struct snap_index *ix, const char *b,
			  size_t *set_cap, size_t *t_cap)
{
	const struct snap_dir *bd;
	const struct snap_ent *e;
	char path[256];
	int r;

	r = snap_get_dir(snap, b, &bd);
	if (r < 0)
		return r;
	e = snap_dir_find(bd, STORE_BASELINE_FILE);
	if (e && e->type == STORE_NODE_FILE) {
		struct store_baseline bl = { 0 };
		void *text = NULL;
		size_t len;

		r = snap_read_oid(snap, &e->oid, STORE_BASELINE_MAX_BYTES, &text, &len);
		if (r < 0)
			return r;
		/* A malformed BASELINE (edited by hand) only loses its targets. */
		if (store_baseline_parse(text, len, &bl) == 0 && !strcmp(bl.baseline, b)) {
			for (size_t i = 0; i < bl.n_targets; i++) {
				struct ix_target *t;

				if (ix->n_targets == *t_cap) {
					size_t nc = *t_cap ? *t_cap * 2 : 64;
					struct ix_target *nt = realloc(ix->targets, nc * sizeof(*nt));

					if (!nt) {
						r = -ENOMEM;
						break;
					}
					ix->targets = nt;
					*t_cap = nc;
				}
				t = &ix->targets[ix->n_targets++];
				t->baseline = ix->baselines[ix->n_baselines - 1];
				t->name = bl.targets[i].name;
				t->build_id = bl.targets[i].build_id;
				bl.targets[i].name = bl.targets[i].build_id = NULL;
			}
		}
		store_baseline_release(&bl);
		free(text);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < bd->n; i++) {
		const struct snap_dir *md;
		const char *m = bd->ents[i].name;

		if (bd->ents[i].type != STORE_NODE_DIR || !hp_valid_month(m))
			continue;
		snprintf(path, sizeof(path), "%s/%s", b, m);
		r = snap_get_dir(snap, path, &md);
		if (r < 0)
			return r;
		for (size_t j = 0; j < md->n; j++) {
			const struct snap_dir *sd;
			const char *n = md->ents[j].name;
			char *target = NULL, *bid = NULL;
			void *text = NULL;
			size_t len;

			if (md->ents[j].type != STORE_NODE_DIR || !hp_valid_setname(n))
				continue;
			if (memo_get(&md->ents[j].oid, &target, &bid)) {
				r = add_set(ix, set_cap, b, m, n, target, bid);
				free(target);
				free(bid);
				if (r < 0)
					return r;
				continue;
			}
			snprintf(path, sizeof(path), "%s/%s/%s", b, m, n);
			r = snap_get_dir(snap, path, &sd);
			if (r < 0)
				return r;
			e = snap_dir_find(sd, BUNDLE_MANIFEST);
			if (!e || e->type != STORE_NODE_FILE)
				continue;
			r = snap_read_oid(snap, &e->oid, HP_MANIFEST_MAX_BYTES, &text, &len);
			if (r < 0)
				return r;
			if (scan_manifest(text, len, &target, &bid) == 0) {
				memo_put(&md->ents[j].oid, target, bid);
				r = add_set(ix, set_cap, b, m, n, target, bid);
			}
			free(text);
			free(target);
			free(bid);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

static int cmp_set_by_bid(const void *a, const void *b, void *arg)
{
	const struct ix_set *s = arg, *x = &s[*(const size_t *)a], *y = &s[*(const size_t *)b];
	int c = strcmp(x->build_id, y->build_id);

	if (!c)
		c = strcmp(x->month, y->month);
	if (!c)
		c = strcmp(x->baseline, y->baseline);
	if (!c)
		c = strverscmp(x->name, y->name);
	return c;
}

static int cmp_set(const void *a, const void *b)
{
	const struct ix_set *x = a, *y = b;
	int c = strcmp(x->baseline, y->baseline);

	if (!c)
		c = strcmp(x->month, y->month);
	if (!c)
		c = strverscmp(x->name, y->name);
	return c;
}

static int cmp_t_by_bid(const void *a, const void *b, void *arg)
{
	const struct ix_target *t = arg, *x = &t[*(const size_t *)a], *y = &t[*(const size_t *)b];
	int c = strcmp(x->build_id, y->build_id);

	return c ? c : strcmp(x->baseline, y->baseline);
}

static int cmp_t_by_name(const void *a, const void *b, void *arg)
{
	const struct ix_target *t = arg, *x = &t[*(const size_t *)a], *y = &t[*(const size_t *)b];
	int c = strcmp(x->name, y->name);

	return c ? c : strcmp(x->baseline, y->baseline);
}

static int build_index(struct store_snap *snap, struct snap_index **ret)
{
	struct snap_index *ix = calloc(1, sizeof(*ix));
	const struct snap_dir *root;
	size_t set_cap = 0, t_cap = 0;
	int r;

	if (!ix)
		return -ENOMEM;
	r = snap_get_dir(snap, "", &root);
	if (r < 0)
		goto fail;
	ix->baselines = calloc(root->n ? root->n : 1, sizeof(*ix->baselines));
	if (!ix->baselines) {
		r = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < root->n; i++) {
		ix->baselines[ix->n_baselines] = strdup(root->ents[i].name);
		if (!ix->baselines[ix->n_baselines]) {
			r = -ENOMEM;
			goto fail;
		}
		ix->n_baselines++;
		r = index_baseline(snap, ix, root->ents[i].name, &set_cap, &t_cap);
		if (r < 0)
			goto fail;
	}
	if (ix->n_sets)
		qsort(ix->sets, ix->n_sets, sizeof(*ix->sets), cmp_set);
	ix->by_bid = malloc((ix->n_sets ? ix->n_sets : 1) * sizeof(size_t));
	ix->t_by_bid = malloc((ix->n_targets ? ix->n_targets : 1) * sizeof(size_t));
	ix->t_by_name = malloc((ix->n_targets ? ix->n_targets : 1) * sizeof(size_t));
	if (!ix->by_bid || !ix->t_by_bid || !ix->t_by_name) {
		r = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < ix->n_sets; i++)
		ix->by_bid[i] = i;
	for (size_t i = 0; i < ix->n_targets; i++)
		ix->t_by_bid[i] = ix->t_by_name[i] = i;
	qsort_r(ix->by_bid, ix->n_sets, sizeof(size_t), cmp_set_by_bid, ix->sets);
	qsort_r(ix->t_by_bid, ix->n_targets, sizeof(size_t), cmp_t_by_bid, ix->targets);
	qsort_r(ix->t_by_name, ix->n_targets, sizeof(size_t), cmp_t_by_name, ix->targets);
	*ret = ix;
	return 0;
fail:
	snap_index_free(ix);
	return hp_err_prefix(r, "store index: ");
}

static int get_index(struct store_snap *snap, const struct snap_index **ret)
{
	int r = 0;

	pthread_mutex_lock(&snap->index_mu);
	if (!snap->index)
		r = build_index(snap, &snap->index);
	pthread_mutex_unlock(&snap->index_mu);
	if (r == 0)
		*ret = snap->index;
	return r;
}

/* [first, end) of the entries of idx (sorted by key(.)) whose key equals k. */
#define EQUAL_RANGE(idx, n, keyexpr, k, ret_first, ret_end)                    \
	do {                                                                       \
		size_t lo_ = 0, hi_ = (n);                                         \
		while (lo_ < hi_) {                                                \
			size_t mid_ = lo_ + (hi_ - lo_) / 2, i = (idx)[mid_];      \
			if (strcmp((keyexpr), (k)) < 0)                            \
				lo_ = mid_ + 1;                                    \
			else                                                       \
				hi_ = mid_;                                        \
		}                                                                  \
		*(ret_first) = lo_;                                                \
		hi_ = (n);                                                         \
		while (lo_ < hi_) {                                                \
			size_t mid_ = lo_ + (hi_ - lo_) / 2, i = (idx)[mid_];      \
			if (strcmp((keyexpr), (k)) <= 0)                          \
				lo_ = mid_ + 1;                                    \
			else                                                       \
				hi_ = mid_;                                        \
		}                                                                  \
		*(ret_end) = lo_;                                                  \
	} while (0)

/*
 * A set as store_get_set makes it: shared by its callers and the
 * snapshot's cache (snap->sets), freed with the last reference.
 */
struct patchset_ref {
	struct store_patchset ps; /* first: a store_patchset * is a patchset_ref * */
	unsigned refs;
};

static struct store_patchset *patchset_ref(struct store_patchset *ps)
{
	__atomic_add_fetch(&((struct patchset_ref *)ps)->refs, 1, __ATOMIC_RELAXED);
	return ps;
}

void store_patchset_free(struct store_patchset *ps)
{
	struct patchset_ref *p = (struct patchset_ref *)ps;

	if (!ps || __atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	free(ps->set_id);
	hp_manifest_free(ps->manifest);
	free(ps->so);
	free(ps->signer);
	free(p);
}

/* Under snap->set_mu: the slot of the set of this id kept in snap, or SNAP_SET_SLOTS. */
static size_t set_slot(const struct store_snap *snap, const char *set_id)
{
	size_t i;

	for (i = 0; i < SNAP_SET_SLOTS; i++)
		if (snap->sets[i] && strcmp(snap->sets[i]->set_id, set_id) == 0)
			break;
	return i;
}

/* The set of this id verified in snap before, a reference to it; NULL if none. */
static struct store_patchset *kept_set(struct store_snap *snap, const char *set_id)
{
	struct store_patchset *ps = NULL;
	size_t i;

	pthread_mutex_lock(&snap->set_mu);
	i = set_slot(snap, set_id);
	if (i < SNAP_SET_SLOTS)
		ps = patchset_ref(snap->sets[i]);
	pthread_mutex_unlock(&snap->set_mu);
	return ps;
}

/* Keep a verified set in snap, in the oldest slot (unless another thread kept it meanwhile). */
static void keep_set(struct store_snap *snap, struct store_patchset *ps)
{
	struct store_patchset *old = NULL;

	pthread_mutex_lock(&snap->set_mu);
	if (set_slot(snap, ps->set_id) == SNAP_SET_SLOTS) {
		old = snap->sets[snap->set_next];
		snap->sets[snap->set_next] = patchset_ref(ps);
		snap->set_next = (snap->set_next + 1) % SNAP_SET_SLOTS;
	}
	pthread_mutex_unlock(&snap->set_mu);
	store_patchset_free(old);
}

static int read_member(struct store_snap *snap, const struct snap_dir *d, const char *name,
		       size_t max, void **ret_data, size_t *ret_len)
{
	const struct snap_ent *e = snap_dir_find(d, name);

	if (!e || e->type != STORE_NODE_FILE)
		return -ENOENT;
	return snap_read_oid(snap, &e->oid, max, ret_data, ret_len);
}

/*
 * Process-wide: the sets whose signature and patch digest have been
 * verified, by the git object ids of their manifest, patch.so and signature
 * and of the trusted key that verified them. An object id fixes its bytes
 * (libgit2 checks each object it reads against its id), and the outcome of
 * both checks is a function of those bytes alone: a set found here again
 * with the same four ids would verify again. A key no longer trusted is no
 * longer in the snapshot, so a lookup through it fails as before.
 */
#define VERIFIED_MAX 4096
struct verified_key {
	git_oid man, so, sig, pub;
};
static pthread_mutex_t verified_mu = PTHREAD_MUTEX_INITIALIZER;
static struct verified_key *verified;
static size_t n_verified;

static bool verified_has(const struct verified_key *k)
{
	bool hit = false;

	pthread_mutex_lock(&verified_mu);
	for (size_t i = 0; i < n_verified && !hit; i++)
		hit = memcmp(&verified[i], k, sizeof(*k)) == 0;
	pthread_mutex_unlock(&verified_mu);
	return hit;
}

static void verified_put(const struct verified_key *k)
{
	pthread_mutex_lock(&verified_mu);
	if (!verified)
		verified = calloc(VERIFIED_MAX, sizeof(*verified));
	if (verified) {
		if (n_verified == VERIFIED_MAX)
			n_verified = 0; /* bounded: start over */
		verified[n_verified++] = *k;
	}
	pthread_mutex_unlock(&verified_mu);
}

/* The object id of a set member, or false when the directory has none. */
static bool member_oid(const struct snap_dir *d, const char *name, git_oid *ret)
{
	const struct snap_ent *e = snap_dir_find(d, name);

	if (!e || e->type != STORE_NODE_FILE)
		return false;
	*ret = e->oid;
	return true;
}

/*
 * The signature of the manifest by a trusted key, and patch.so against the
 * manifest's digest; a set verified before with the same objects is not
 * verified again (above).
 */
static int verify_set(struct store_snap *snap, const char *set_id, const struct snap_dir *d,
		      const void *man, size_t man_len, const void *sig, size_t sig_len,
		      const struct store_patchset *ps, char **ret_signer)
{
	struct verified_key k;
	unsigned char pk[32];
	char keyid[SIGN_KEYID_SIZE], kid2[SIGN_KEYID_SIZE], path[64], sha[SIGN_SHA256_HEX_SIZE];
	void *pub = NULL;
	size_t pub_len;
	bool cacheable;
	int r;

	if (!sig) {
		if (!snap->allow_unsigned)
			return hp_err(-EKEYREJECTED, "%s: unsigned (the store accepts signed sets only)",
				      set_id);
		*ret_signer = NULL;
		goto digest;
	}
	if (sign_keyid(sig, sig_len, keyid) < 0)
		return hp_err(-EKEYREJECTED, "%s: malformed signature", set_id);
	snprintf(path, sizeof(path), "%s/%s.pub", STORE_KEYS_DIR, keyid);
	r = snap_read_raw(snap, path, STORE_KEYFILE_MAX, &pub, &pub_len);
	if (r == -ENOENT)
		return hp_err(-EKEYREJECTED, "%s: signed by untrusted key %s", set_id, keyid);
	if (r < 0)
		return r;
	memset(&k, 0, sizeof(k));
	cacheable = member_oid(d, BUNDLE_MANIFEST, &k.man) && member_oid(d, BUNDLE_PATCH, &k.so) &&
		    member_oid(d, BUNDLE_SIGNATURE, &k.sig) &&
		    git_odb_hash(&k.pub, pub, pub_len, GIT_OBJECT_BLOB) == 0;
	if (cacheable && verified_has(&k)) {
		free(pub);
		*ret_signer = strdup(keyid);
		return *ret_signer ? 0 : -ENOMEM;
	}
	r = sign_parse_pubkey(pub, pub_len, pk, kid2);
	free(pub);
	if (r < 0)
		return hp_err_prefix_as(-EKEYREJECTED, r, "%s: trusted key %s: ", set_id, keyid);
	r = sign_verify(sig, sig_len, man, man_len, pk);
	if (r < 0)
		return hp_err_prefix(r, "%s: ", set_id);
	*ret_signer = strdup(keyid);
	if (!*ret_signer)
		return -ENOMEM;
digest:
	sign_sha256_hex(ps->so, ps->so_len, sha);
	if (strcmp(sha, ps->manifest->patch_sha256) != 0)
		return hp_err(-EKEYREJECTED, "%s: patch.so does not match the signed manifest", set_id);
	if (sig && cacheable)
		verified_put(&k);
	return 0;
}

bool store_split_set_id(const char *id, char b[HP_BASELINE_SIZE], char m[HP_MONTH_SIZE],
			char n[HP_SET_NAME_SIZE])
{
	const char *s1 = strchr(id, '/'), *s2 = s1 ? strchr(s1 + 1, '/') : NULL;

	if (!s1 || !s2 || s1 - id != HP_BASELINE_SIZE - 1 || s2 - s1 - 1 != HP_MONTH_SIZE - 1 ||
	    strlen(s2 + 1) >= HP_SET_NAME_SIZE)
		return false;
	memcpy(b, id, HP_BASELINE_SIZE - 1);
	b[HP_BASELINE_SIZE - 1] = '\0';
	memcpy(m, s1 + 1, HP_MONTH_SIZE - 1);
	m[HP_MONTH_SIZE - 1] = '\0';
	strcpy(n, s2 + 1);
	return hp_valid_baseline(b) && hp_valid_month(m) && hp_valid_setname(n);
}

int store_get_set(struct store_snap *snap, const char *set_id, struct store_patchset **ret)
{
	struct store_patchset *ps = NULL;
	struct patchset_ref *p;
	const struct snap_dir *d;
	void *man = NULL, *sig = NULL;
	size_t man_len = 0, sig_len = 0;
	char b[HP_BASELINE_SIZE], m[HP_MONTH_SIZE], n[HP_SET_NAME_SIZE];
	int r;

	if (!store_split_set_id(set_id, b, m, n))
		return hp_err(-EINVAL, "'%s' is not a set id (BASELINE/MONTH/NAME)", set_id);
	/*
	 * Verified in this snapshot before: the same bytes under the same
	 * keys (a commit does not change), so the same answer. Only sets that
	 * verified are kept; one that failed is read and refused again.
	 */
	ps = kept_set(snap, set_id);
	if (ps) {
		*ret = ps;
		return 0;
	}
	r = snap_get_dir(snap, set_id, &d);
	if (r == -ENOENT || r == -ENOTDIR)
		return hp_err(-ENOENT, "no patch set %s", set_id);
	if (r < 0)
		return r;
	p = calloc(1, sizeof(*p));
	ps = p ? &p->ps : NULL;
	if (p)
		p->refs = 1;
	if (!ps || !(ps->set_id = strdup(set_id))) {
		r = -ENOMEM;
		goto fail;
	}
	r = read_member(snap, d, BUNDLE_MANIFEST, HP_MANIFEST_MAX_BYTES, &man, &man_len);
	if (r < 0) {
		r = hp_err(r == -ENOENT ? -EIO : r, "%s: manifest missing or unreadable", set_id);
		goto fail;
	}
	r = read_member(snap, d, BUNDLE_PATCH, STORE_MEMBER_MAX_BYTES, &ps->so, &ps->so_len);
	if (r < 0) {
		r = hp_err(r == -ENOENT ? -EIO : r, "%s: patch.so missing or unreadable", set_id);
		goto fail;
	}
	r = read_member(snap, d, BUNDLE_SIGNATURE, STORE_SIG_MAX, &sig, &sig_len);
	if (r < 0 && r != -ENOENT)
		goto fail;
	r = hp_manifest_parse(man, man_len, &ps->manifest);
	if (r == 0)
		r = hp_manifest_validate(ps->manifest);
	if (r < 0) {
		hp_err_prefix(r, "%s: manifest: ", set_id);
		goto fail;
	}
	if (strcmp(ps->manifest->baseline, b) || strcmp(ps->manifest->month, m) ||
	    strcmp(ps->manifest->name, n)) {
		r = hp_err(-EINVAL, "%s: manifest names another set", set_id);
		goto fail;
	}
	r = verify_set(snap, set_id, d, man, man_len, sig, sig_len, ps, &ps->signer);
	if (r < 0)
		goto fail;
	ps->signed_ok = ps->signer != NULL;
	free(man);
	free(sig);
	keep_set(snap, ps);
	*ret = ps;
	return 0;
fail:
	free(man);
	free(sig);
	store_patchset_free(ps);
	return r;
}

int store_lookup(struct store_snap *snap, const char *build_id, const char *month,
		 struct store_patchset **ret)
{
	const struct snap_index *ix = NULL;
	const struct ix_set *pick = NULL;
	struct store_patchset *ps = NULL;
	size_t first, end;
	int r;

	if (!hp_valid_build_id(build_id))
		return hp_err(-EINVAL, "'%s' is not a build-id", build_id);
	if (month && !hp_valid_month(month))
		return hp_err(-EINVAL, "'%s' is not a month (YYYY-MM)", month);
	r = get_index(snap, &ix);
	if (r < 0)
		return r;
	EQUAL_RANGE(ix->by_bid, ix->n_sets, ix->sets[i].build_id, build_id, &first, &end);
	for (size_t k = end; k > first; k--) {
		const struct ix_set *s = &ix->sets[ix->by_bid[k - 1]];

		if (!month || !strcmp(s->month, month)) {
			pick = s;
			break;
		}
	}
	if (!pick)
		return month ? hp_err(-ENOENT, "no patch set for build-id %s in %s", build_id, month)
			     : hp_err(-ENOENT, "no patch set for build-id %s", build_id);
	r = store_get_set(snap, pick->set_id, &ps);
	if (r < 0)
		return r;
	if (strcmp(ps->manifest->build_id, build_id) != 0) {
		store_patchset_free(ps);
		return hp_err(-EIO, "%s: changed under the index", pick->set_id);
	}
	*ret = ps;
	return 0;
}

void store_target_info_release(struct store_target_info *ti)
{
	if (!ti)
		return;
	free(ti->name);
	free(ti->baseline);
	free(ti->newest_month);
	free(ti->newest_set);
	free(ti->newer_baseline);
	memset(ti, 0, sizeof(*ti));
}

int store_target_info(struct store_snap *snap, const char *build_id, struct store_target_info *ret)
{
	const struct snap_index *ix = NULL;
	const struct ix_target *t;
	struct store_target_info ti = { 0 };
	size_t first, end;
	int r;

	if (!hp_valid_build_id(build_id))
		return hp_err(-EINVAL, "'%s' is not a build-id", build_id);
	r = get_index(snap, &ix);
	if (r < 0)
		return r;
	EQUAL_RANGE(ix->t_by_bid, ix->n_targets, ix->targets[i].build_id, build_id, &first, &end);
	if (first == end)
		return hp_err(-ENOENT, "no baseline covers build-id %s", build_id);
	t = &ix->targets[ix->t_by_bid[end - 1]]; /* the newest baseline */
	ti.name = strdup(t->name);
	ti.baseline = strdup(t->baseline);
	if (!ti.name || !ti.baseline)
		goto nomem;
	EQUAL_RANGE(ix->by_bid, ix->n_sets, ix->sets[i].build_id, build_id, &first, &end);
	if (first < end && (!(ti.newest_month = strdup(ix->sets[ix->by_bid[end - 1]].month)) ||
			    !(ti.newest_set = strdup(ix->sets[ix->by_bid[end - 1]].set_id))))
		goto nomem;
	EQUAL_RANGE(ix->t_by_name, ix->n_targets, ix->targets[i].name, t->name, &first, &end);
	if (first < end) {
		const struct ix_target *last = &ix->targets[ix->t_by_name[end - 1]];

		if (strcmp(last->baseline, t->baseline) > 0 &&
		    !(ti.newer_baseline = strdup(last->baseline)))
			goto nomem;
	}
	store_target_info_release(ret);
	*ret = ti;
	return 0;
nomem:
	store_target_info_release(&ti);
	return -ENOMEM;
}

bool store_knows_target_name(struct store_snap *snap, const char *name)
{
	const struct snap_index *ix = NULL;
	size_t first, end;

	if (!name || get_index(snap, &ix) < 0)
		return false;
	EQUAL_RANGE(ix->t_by_name, ix->n_targets, ix->targets[i].name, name, &first, &end);
	return first < end;
}

int store_list_sets(struct store_snap *snap, const char *baseline, const char *month,
		    int (*cb)(void *ctx, const struct store_set_info *si), void *ctx)
{
	const struct snap_index *ix = NULL;
	const struct snap_dir *d;
	char path[32];
	int r;

	if (baseline) {
		if (!hp_valid_baseline(baseline))
			return hp_err(-EINVAL, "'%s' is not a baseline (YYYY.MM)", baseline);
		if (month && !hp_valid_month(month))
			return hp_err(-EINVAL, "'%s' is not a month (YYYY-MM)", month);
		snprintf(path, sizeof(path), "%s%s%s", baseline, month ? "/" : "", month ? month : "");
		r = snap_get_dir(snap, path, &d);
		if (r == -ENOENT || r == -ENOTDIR)
			return hp_err(-ENOENT, "no %s %s in the store", month ? "month" : "baseline",
				      path);
		if (r < 0)
			return r;
	}
	r = get_index(snap, &ix);
	if (r < 0)
		return r;
	for (size_t i = 0; i < ix->n_sets; i++) {
		const struct ix_set *s = &ix->sets[i];
		struct store_set_info si = { s->set_id, s->baseline, s->month, s->name, s->target,
					     s->build_id };

		if (baseline && strcmp(s->baseline, baseline))
			continue;
		if (month && strcmp(s->month, month))
			continue;
		r = cb(ctx, &si);
		if (r)
			return r;
	}
	return 0;
}

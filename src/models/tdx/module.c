/* SPDX-License-Identifier: MIT */
/*
 * The simulated TDX module (interface, states and locks in module.h).
 *
 * Each SEAMCALL that changes an entry has the same shape: optional busy
 * injection, argument checks, the walk to the entry (EPT_WALK_FAILED), the
 * entry's lock (OPERAND_BUSY), its state checks, then the commit, which
 * stores the new value and so releases the lock. The calls KVM and the
 * guest make (module.h's) are thin wrappers, at the end, that trace each
 * call with its status (lib/trace.h) around the call's body.
 */
#include <openssl/evp.h>
#include "host/host_guard.h"
#include "host/pool.h"
#include "lib/trace.h"
#include "models/tdx/module.h"

#define SEPT_PTRS        512
#define SEPT_LEVELS      4

/* Entry encoding (module-private): state in bits 0-1, BLOCKED, LOCKED,
 * payload (a leaf's pfn, or a table's address) in bits 12-63. */
#define E_FREE           0ULL
#define E_TABLE          1ULL
#define E_MAPPED         2ULL
#define E_PENDING        3ULL
#define E_STATE_MASK     3ULL
#define E_BLOCKED        (1ULL << 2)
#define E_LOCKED         (1ULL << 3)
#define E_PAYLOAD_SHIFT  12

struct sept_node {
	_Atomic uint64_t e[SEPT_PTRS];     /* see above; changed under the entry lock */
	uint64_t block_epoch[SEPT_PTRS];   /* entry lock: epoch at RANGE.BLOCK */
};

struct tdx_td {
	unsigned int gpa_bits;             /* immutable */
	struct sept_node *root;            /* immutable; level-3 entries */
	atomic_uint_fast64_t epoch;        /* TLB-tracking epoch, bumped by TRACK */
	atomic_uint nr_vps;
	_Atomic uint64_t vp[TDX_MAX_VPS];  /* (epoch entered << 1) | in guest */

	pthread_mutex_t mr_lock;
	EVP_MD_CTX *mr_ctx;                /* mr_lock */
	atomic_bool finalized;             /* set under mr_lock */
	uint8_t mrtd[TDX_MRTD_SIZE];       /* written under mr_lock before finalized */

	atomic_uint busy_rate;             /* injected OPERAND_BUSY per million calls */
	atomic_uint_fast64_t entries[4];   /* leaves by level [0..2], tables [3] */
	atomic_uint_fast64_t busy, busy_injected, demotions, pending;
};

/* ---- entries ---- */

static uint64_t e_state(uint64_t e) { return e & E_STATE_MASK; }
static bool e_is_table(uint64_t e) { return e_state(e) == E_TABLE; }
static bool e_is_leaf(uint64_t e) { return e_state(e) >= E_MAPPED; }
static bool e_blocked(uint64_t e) { return e & E_BLOCKED; }
static pm_pfn_t e_pfn(uint64_t e) { return e >> E_PAYLOAD_SHIFT; }
static struct sept_node *e_node(uint64_t e)
{
	return (struct sept_node *)(uintptr_t)(e & ~((1ULL << E_PAYLOAD_SHIFT) - 1));
}
static uint64_t e_leaf(uint64_t state, pm_pfn_t pfn) { return state | (pfn << E_PAYLOAD_SHIFT); }

static uint64_t level_bytes(int level) { return PM_PAGE_SIZE << (9 * level); }
static unsigned int level_index(uint64_t gpa, int level)
{
	return (gpa >> (PM_PAGE_SHIFT + 9 * level)) & (SEPT_PTRS - 1);
}

static struct sept_node *node_alloc(void)
{
	struct sept_node *n = aligned_alloc(PM_PAGE_SIZE, PM_ALIGN_UP(sizeof(*n), PM_PAGE_SIZE));

	if (n)
		memset(n, 0, sizeof(*n));
	return n;
}

/* Locks an entry: SUCCESS and its value, or OPERAND_BUSY (not waited for). */
static uint64_t entry_lock(_Atomic uint64_t *p, uint64_t *val)
{
	uint64_t v = atomic_load_explicit(p, memory_order_acquire);

	do {
		if (v & E_LOCKED)
			return TDX_OPERAND_BUSY;
	} while (!atomic_compare_exchange_weak(p, &v, v | E_LOCKED));
	*val = v;
	return TDX_SUCCESS;
}

/* Stores the entry's new value, releasing its lock. */
static void entry_commit(_Atomic uint64_t *p, uint64_t val)
{
	atomic_store_explicit(p, val & ~E_LOCKED, memory_order_release);
}

/* Walks to the entry at `level` covering gpa: SUCCESS with *node and
 * *idx, or EPT_WALK_FAILED when an entry above is not a table. */
static uint64_t sept_walk(struct tdx_td *td, uint64_t gpa, int level, struct sept_node **node,
			  unsigned int *idx)
{
	struct sept_node *n = td->root;

	for (int l = SEPT_LEVELS - 1; l > level; l--) {
		uint64_t e = atomic_load_explicit(&n->e[level_index(gpa, l)], memory_order_acquire);

		if (!e_is_table(e))
			return TDX_EPT_WALK_FAILED;
		n = e_node(e);
	}
	*node = n;
	*idx = level_index(gpa, level);
	return TDX_SUCCESS;
}

/* ---- PAMT: which frames are TD pages (module.h) ---- */

static pthread_mutex_t pamt_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic uint8_t *pamt;        /* pamt_lock to (re)allocate; bytes atomic */
static uint64_t pamt_frames;         /* pamt_lock; fixed while pamt_users > 0 */
static unsigned int pamt_users;      /* pamt_lock: live TDs */

static int pamt_access(void *arg, pm_pfn_t pfn, uint64_t n, bool write)
{
	for (uint64_t i = 0; i < n && pfn + i < pamt_frames; i++)
		if (atomic_load_explicit(&pamt[pfn + i], memory_order_acquire))
			return -EFAULT;
	return 0;
}

static const struct pm_host_guard pamt_guard = { .access = pamt_access };

static int pamt_get(void)
{
	int r = 0;

	pthread_mutex_lock(&pamt_lock);
	if (!pamt_users) {
		pamt_frames = pm_pool_nr_frames();
		pamt = calloc(pamt_frames, 1);
		r = pamt ? pm_host_guard_register(&pamt_guard) : -ENOMEM;
		if (r) {
			free((void *)pamt);
			pamt = NULL;
		}
	}
	if (!r)
		pamt_users++;
	pthread_mutex_unlock(&pamt_lock);
	return r;
}

static void pamt_put(void)
{
	pthread_mutex_lock(&pamt_lock);
	PM_BUG_ON(!pamt_users);
	if (!--pamt_users) {
		pm_host_guard_unregister(&pamt_guard);   /* no access in flight after */
		free((void *)pamt);
		pamt = NULL;
		pamt_frames = 0;
	}
	pthread_mutex_unlock(&pamt_lock);
}

static void pamt_release(pm_pfn_t pfn, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		atomic_store_explicit(&pamt[pfn + i], 0, memory_order_release);
}

/* Makes [pfn, pfn + n) TD pages: SUCCESS, or PAGE_METADATA_INCORRECT (one
 * is a TD page already: nothing changes), OPERAND_INVALID (not a frame). */
static uint64_t pamt_assign(pm_pfn_t pfn, uint64_t n)
{
	if (pfn >= pamt_frames || n > pamt_frames - pfn)
		return TDX_OPERAND_INVALID;
	for (uint64_t i = 0; i < n; i++) {
		uint8_t zero = 0;

		if (!atomic_compare_exchange_strong(&pamt[pfn + i], &zero, 1)) {
			pamt_release(pfn, i);
			return TDX_OPERAND_PAGE_METADATA_INCORRECT;
		}
	}
	return TDX_SUCCESS;
}

/* ---- busy injection ---- */

static _Thread_local uint64_t rng_state;

static uint64_t rng_next(void)
{
	uint64_t x = rng_state;

	if (!x)
		x = (uint64_t)(uintptr_t)&rng_state ^ 0x9e3779b97f4a7c15ULL;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	rng_state = x;
	return x;
}

static bool busy_injected(struct tdx_td *td)
{
	unsigned int rate = atomic_load_explicit(&td->busy_rate, memory_order_relaxed);

	if (!rate || rng_next() % 1000000 >= rate)
		return false;
	atomic_fetch_add_explicit(&td->busy_injected, 1, memory_order_relaxed);
	return true;
}

static uint64_t count_busy(struct tdx_td *td, uint64_t err)
{
	if (err == TDX_OPERAND_BUSY)
		atomic_fetch_add_explicit(&td->busy, 1, memory_order_relaxed);
	return err;
}

/* The common prologue of an entry-changing call: injection, the gpa's
 * range and alignment, the walk, the entry lock. */
static uint64_t entry_begin(struct tdx_td *td, uint64_t gpa, int level, int max_level,
			    _Atomic uint64_t **pp, uint64_t *val, unsigned int *idx_out,
			    struct sept_node **node_out)
{
	struct sept_node *node;
	unsigned int idx;
	uint64_t err;

	if (busy_injected(td))
		return TDX_OPERAND_BUSY;
	if (level < 0 || level > max_level || !PM_ALIGNED(gpa, level_bytes(level)) ||
	    gpa >> td->gpa_bits)
		return TDX_OPERAND_INVALID;
	err = sept_walk(td, gpa, level, &node, &idx);
	if (err)
		return err;
	*pp = &node->e[idx];
	if (idx_out)
		*idx_out = idx;
	if (node_out)
		*node_out = node;
	return count_busy(td, entry_lock(*pp, val));
}

/* ---- measurement ---- */

static void mr_block(struct tdx_td *td, const char *tag, uint64_t gpa, const void *data, size_t len)
{
	uint8_t head[128] = { 0 };

	memcpy(head, tag, strlen(tag));
	for (int i = 0; i < 8; i++)
		head[16 + i] = (uint8_t)(gpa >> (8 * i));
	PM_BUG_ON(EVP_DigestUpdate(td->mr_ctx, head, sizeof(head)) != 1);
	if (len)
		PM_BUG_ON(EVP_DigestUpdate(td->mr_ctx, data, len) != 1);
}

/* ---- TD and vCPU lifetime ---- */

int tdx_module_td_create(unsigned int gpa_bits, struct tdx_td **out)
{
	struct tdx_td *td = pm_zalloc(sizeof(*td));

	if (!td)
		return -ENOMEM;
	td->gpa_bits = PM_MIN(gpa_bits, 48U);
	td->root = node_alloc();
	td->mr_ctx = EVP_MD_CTX_new();
	if (!td->root || !td->mr_ctx || EVP_DigestInit_ex(td->mr_ctx, EVP_sha384(), NULL) != 1 ||
	    pamt_get()) {
		EVP_MD_CTX_free(td->mr_ctx);
		free(td->root);
		free(td);
		return -ENOMEM;
	}
	pthread_mutex_init(&td->mr_lock, NULL);
	*out = td;
	return 0;
}

/* Teardown: every table freed, every page still mapped reclaimed (the
 * host may use it again: its frames are no TD pages any more). */
static void node_free(struct sept_node *n, int level)
{
	for (unsigned int i = 0; i < SEPT_PTRS; i++) {
		uint64_t e = atomic_load_explicit(&n->e[i], memory_order_relaxed);

		if (level > 0 && e_is_table(e))
			node_free(e_node(e), level - 1);
		else if (e_is_leaf(e))
			pamt_release(e_pfn(e), 1ULL << (9 * level));
	}
	free(n);
}

void tdx_module_td_destroy(struct tdx_td *td)
{
	node_free(td->root, SEPT_LEVELS - 1);
	pamt_put();
	EVP_MD_CTX_free(td->mr_ctx);
	pthread_mutex_destroy(&td->mr_lock);
	free(td);
}

int tdx_module_vp_create(struct tdx_td *td)
{
	unsigned int n = atomic_load(&td->nr_vps);

	do {
		if (n >= TDX_MAX_VPS)
			return -ENOSPC;
	} while (!atomic_compare_exchange_weak(&td->nr_vps, &n, n + 1));
	return (int)n;
}

/* Publishes "in guest on epoch e" and checks e is still current, so that a
 * REMOVE either sees this vCPU on an old epoch (and fails) or the vCPU sees
 * the TRACK (and records the new epoch): a Dekker pair, seq_cst. */
void tdx_module_vp_enter(struct tdx_td *td, int vp)
{
	uint64_t e;

	do {
		e = atomic_load(&td->epoch);
		atomic_store(&td->vp[vp], e << 1 | 1);
	} while (atomic_load(&td->epoch) != e);
}

void tdx_module_vp_exit(struct tdx_td *td, int vp)
{
	atomic_store(&td->vp[vp], 0);
}

/* TLB tracking for an entry blocked at `blocked`: a TRACK since, and no
 * vCPU still in guest mode on an epoch that old. */
static bool tracking_done(struct tdx_td *td, uint64_t blocked)
{
	unsigned int n = atomic_load(&td->nr_vps);

	if (atomic_load(&td->epoch) <= blocked)
		return false;
	for (unsigned int i = 0; i < n; i++) {
		uint64_t s = atomic_load(&td->vp[i]);

		if ((s & 1) && (s >> 1) <= blocked)
			return false;
	}
	return true;
}

/* ---- SEAMCALLs: the S-EPT ---- */

static uint64_t sept_add(struct tdx_td *td, uint64_t gpa, int level)
{
	_Atomic uint64_t *p;
	struct sept_node *child;
	uint64_t e, err;

	if (level < 1)
		return TDX_OPERAND_INVALID;
	err = entry_begin(td, gpa, level, SEPT_LEVELS - 1, &p, &e, NULL, NULL);
	if (err)
		return err;
	if (e_state(e) != E_FREE) {
		entry_commit(p, e);
		return TDX_EPT_ENTRY_STATE_INCORRECT;
	}
	child = node_alloc();
	if (!child) {
		entry_commit(p, e);
		return TDX_OPERAND_INVALID;   /* the host gave no page */
	}
	atomic_fetch_add_explicit(&td->entries[3], 1, memory_order_relaxed);
	entry_commit(p, E_TABLE | (uint64_t)(uintptr_t)child);
	return TDX_SUCCESS;
}

static uint64_t page_add(struct tdx_td *td, uint64_t gpa, pm_pfn_t pfn, const void *src)
{
	_Atomic uint64_t *p;
	uint64_t e, err;

	pthread_mutex_lock(&td->mr_lock);
	if (atomic_load(&td->finalized)) {
		err = TDX_OP_STATE_INCORRECT;
		goto out;
	}
	err = entry_begin(td, gpa, 0, 0, &p, &e, NULL, NULL);
	if (err)
		goto out;
	if (e_state(e) != E_FREE) {
		entry_commit(p, e);
		err = TDX_EPT_ENTRY_STATE_INCORRECT;
		goto out;
	}
	err = pamt_assign(pfn, 1);
	if (err) {
		entry_commit(p, e);
		goto out;
	}
	memcpy(pm_pfn_to_hva(pfn), src, PM_PAGE_SIZE);
	mr_block(td, "MEM.PAGE.ADD", gpa, NULL, 0);
	atomic_fetch_add_explicit(&td->entries[0], 1, memory_order_relaxed);
	entry_commit(p, e_leaf(E_MAPPED, pfn));
out:
	pthread_mutex_unlock(&td->mr_lock);
	return err;
}

static uint64_t page_aug(struct tdx_td *td, uint64_t gpa, int level, pm_pfn_t pfn)
{
	_Atomic uint64_t *p;
	uint64_t e, err;

	if (!atomic_load(&td->finalized))
		return TDX_OP_STATE_INCORRECT;
	if (!PM_ALIGNED(pfn, 1ULL << (9 * PM_MAX(level, 0))))
		return TDX_OPERAND_INVALID;
	err = entry_begin(td, gpa, level, 1, &p, &e, NULL, NULL);
	if (err)
		return err;
	if (e_state(e) != E_FREE) {
		entry_commit(p, e);
		return TDX_EPT_ENTRY_STATE_INCORRECT;
	}
	err = pamt_assign(pfn, 1ULL << (9 * level));
	if (err) {
		entry_commit(p, e);
		return err;
	}
	atomic_fetch_add_explicit(&td->entries[level], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&td->pending, 1, memory_order_relaxed);
	entry_commit(p, e_leaf(E_PENDING, pfn));
	return TDX_SUCCESS;
}

static uint64_t range_block(struct tdx_td *td, uint64_t gpa, int level)
{
	struct sept_node *node;
	_Atomic uint64_t *p;
	unsigned int idx;
	uint64_t e, err;

	err = entry_begin(td, gpa, level, 2, &p, &e, &idx, &node);
	if (err)
		return err;
	if (!e_is_leaf(e) || e_blocked(e)) {
		entry_commit(p, e);
		return TDX_EPT_ENTRY_STATE_INCORRECT;
	}
	node->block_epoch[idx] = atomic_load(&td->epoch);
	entry_commit(p, e | E_BLOCKED);
	return TDX_SUCCESS;
}

static uint64_t track(struct tdx_td *td)
{
	atomic_fetch_add(&td->epoch, 1);
	return TDX_SUCCESS;
}

/* Locks a BLOCKED leaf at `level` whose TLB tracking is done. */
static uint64_t blocked_begin(struct tdx_td *td, uint64_t gpa, int level, int max_level,
			      _Atomic uint64_t **p, uint64_t *e)
{
	struct sept_node *node;
	unsigned int idx;
	uint64_t err;

	err = entry_begin(td, gpa, level, max_level, p, e, &idx, &node);
	if (err)
		return err;
	if (!e_is_leaf(*e) || !e_blocked(*e)) {
		entry_commit(*p, *e);
		return TDX_EPT_ENTRY_STATE_INCORRECT;
	}
	if (!tracking_done(td, node->block_epoch[idx])) {
		entry_commit(*p, *e);
		return TDX_TLB_TRACKING_NOT_DONE;
	}
	return TDX_SUCCESS;
}

static uint64_t page_remove(struct tdx_td *td, uint64_t gpa, int level, pm_pfn_t *pfn)
{
	_Atomic uint64_t *p;
	uint64_t e, err;

	err = blocked_begin(td, gpa, level, 2, &p, &e);
	if (err)
		return err;
	if (e_state(e) == E_PENDING)
		atomic_fetch_sub_explicit(&td->pending, 1, memory_order_relaxed);
	atomic_fetch_sub_explicit(&td->entries[level], 1, memory_order_relaxed);
	*pfn = e_pfn(e);
	pamt_release(*pfn, 1ULL << (9 * level));
	entry_commit(p, E_FREE);
	return TDX_SUCCESS;
}

static uint64_t page_demote(struct tdx_td *td, uint64_t gpa, int level)
{
	struct sept_node *child;
	_Atomic uint64_t *p;
	uint64_t e, err;

	if (level != 1)
		return TDX_OPERAND_INVALID;
	err = blocked_begin(td, gpa, level, 1, &p, &e);
	if (err)
		return err;
	child = node_alloc();
	if (!child) {
		entry_commit(p, e);
		return TDX_OPERAND_INVALID;
	}
	for (unsigned int i = 0; i < SEPT_PTRS; i++)
		atomic_init(&child->e[i], e_leaf(e_state(e), e_pfn(e) + i));
	if (e_state(e) == E_PENDING)
		atomic_fetch_add_explicit(&td->pending, SEPT_PTRS - 1, memory_order_relaxed);
	atomic_fetch_sub_explicit(&td->entries[1], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&td->entries[0], SEPT_PTRS, memory_order_relaxed);
	atomic_fetch_add_explicit(&td->entries[3], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&td->demotions, 1, memory_order_relaxed);
	entry_commit(p, E_TABLE | (uint64_t)(uintptr_t)child);
	return TDX_SUCCESS;
}

/* ---- SEAMCALLs: measurement ---- */

static uint64_t mr_extend(struct tdx_td *td, uint64_t gpa)
{
	struct sept_node *node;
	unsigned int idx;
	uint64_t e, err;

	if (!PM_ALIGNED(gpa, 256) || gpa >> td->gpa_bits)
		return TDX_OPERAND_INVALID;
	pthread_mutex_lock(&td->mr_lock);
	err = TDX_OP_STATE_INCORRECT;
	if (atomic_load(&td->finalized))
		goto out;
	err = sept_walk(td, gpa, 0, &node, &idx);
	if (err)
		goto out;
	e = atomic_load_explicit(&node->e[idx], memory_order_acquire);
	err = TDX_EPT_ENTRY_STATE_INCORRECT;
	if (e_state(e) != E_MAPPED || e_blocked(e))
		goto out;
	mr_block(td, "MR.EXTEND", gpa, (uint8_t *)pm_pfn_to_hva(e_pfn(e)) + (gpa & (PM_PAGE_SIZE - 1)),
		 256);
	err = TDX_SUCCESS;
out:
	pthread_mutex_unlock(&td->mr_lock);
	return err;
}

static uint64_t mr_finalize(struct tdx_td *td)
{
	uint64_t err = TDX_OP_STATE_INCORRECT;
	unsigned int len = 0;

	pthread_mutex_lock(&td->mr_lock);
	if (!atomic_load(&td->finalized)) {
		PM_BUG_ON(EVP_DigestFinal_ex(td->mr_ctx, td->mrtd, &len) != 1 || len != TDX_MRTD_SIZE);
		atomic_store(&td->finalized, true);
		err = TDX_SUCCESS;
	}
	pthread_mutex_unlock(&td->mr_lock);
	return err;
}

int tdx_module_mrtd(struct tdx_td *td, uint8_t mrtd[TDX_MRTD_SIZE])
{
	if (!atomic_load(&td->finalized))
		return -EINVAL;
	memcpy(mrtd, td->mrtd, TDX_MRTD_SIZE);
	return 0;
}

bool tdx_module_finalized(struct tdx_td *td)
{
	return atomic_load(&td->finalized);
}

/* ---- the guest side ---- */

/* The leaf covering gpa (a huge one included): its value and level, or
 * false. */
static bool sept_leaf(struct tdx_td *td, uint64_t gpa, uint64_t *e, int *level,
		      _Atomic uint64_t **pp)
{
	struct sept_node *n = td->root;

	if (gpa >> td->gpa_bits)
		return false;
	for (int l = SEPT_LEVELS - 1; l >= 0; l--) {
		_Atomic uint64_t *p = &n->e[level_index(gpa, l)];
		uint64_t v = atomic_load_explicit(p, memory_order_acquire);

		if (e_is_leaf(v)) {
			*e = v;
			*level = l;
			if (pp)
				*pp = p;
			return true;
		}
		if (!e_is_table(v))
			return false;
		n = e_node(v);
	}
	return false;
}

static uint64_t page_accept(struct tdx_td *td, uint64_t gpa, int level)
{
	_Atomic uint64_t *p;
	uint64_t e;
	int l;

	if (level < 0 || level > 2 || !PM_ALIGNED(gpa, level_bytes(level)))
		return TDX_OPERAND_INVALID;
	if (!sept_leaf(td, gpa, &e, &l, &p)) {
		struct sept_node *node;
		unsigned int idx;

		/* A table at the requested level: mapped smaller than asked. */
		if (!sept_walk(td, gpa, level, &node, &idx) &&
		    e_is_table(atomic_load(&node->e[idx])))
			return TDX_PAGE_SIZE_MISMATCH;
		return TDX_NOT_MAPPED;
	}
	if (l != level)
		return TDX_PAGE_SIZE_MISMATCH;
	if (count_busy(td, entry_lock(p, &e)))
		return TDX_OPERAND_BUSY;
	if (!e_is_leaf(e) || e_blocked(e)) {
		entry_commit(p, e);
		return TDX_OPERAND_BUSY;   /* being removed: an EPT violation, retried */
	}
	if (e_state(e) == E_MAPPED) {
		entry_commit(p, e);
		return TDX_PAGE_ALREADY_ACCEPTED;
	}
	memset(pm_pfn_to_hva(e_pfn(e)), 0, level_bytes(level));
	atomic_fetch_sub_explicit(&td->pending, 1, memory_order_relaxed);
	entry_commit(p, e_leaf(E_MAPPED, e_pfn(e)));
	return TDX_SUCCESS;
}

/* ---- the calls as KVM and the guest make them: traced ---- */

/* A trace's event for each call, with its status. */
static uint64_t traced(uint64_t t0, const char *name, uint64_t gpa, int level, uint64_t status)
{
	pm_trace_end(t0, PM_TRACE_TDX, name, gpa, (uint64_t)(int64_t)level, status, 0);
	return status;
}

uint64_t tdh_mem_sept_add(struct tdx_td *td, uint64_t gpa, int level)
{
	uint64_t t0 = pm_trace_begin();

	return traced(t0, "TDH.MEM.SEPT.ADD", gpa, level, sept_add(td, gpa, level));
}

uint64_t tdh_mem_page_add(struct tdx_td *td, uint64_t gpa, pm_pfn_t pfn, const void *src)
{
	uint64_t t0 = pm_trace_begin();

	return traced(t0, "TDH.MEM.PAGE.ADD", gpa, 0, page_add(td, gpa, pfn, src));
}

uint64_t tdh_mem_page_aug(struct tdx_td *td, uint64_t gpa, int level, pm_pfn_t pfn)
{
	uint64_t t0 = pm_trace_begin();

	return traced(t0, "TDH.MEM.PAGE.AUG", gpa, level, page_aug(td, gpa, level, pfn));
}

uint64_t tdh_mem_range_block(struct tdx_td *td, uint64_t gpa, int level)
{
	uint64_t t0 = pm_trace_begin();

	return traced(t0, "TDH.MEM.RANGE.BLOCK", gpa, level, range_block(td, gpa, level));
}

uint64_t tdh_mem_track(struct tdx_td *td)
{
	uint64_t t0 = pm_trace_begin();

	return traced(t0, "TDH.MEM.TRACK", 0, 0, track(td));
}

uint64_t tdh_mem_page_remove(struct tdx_td *td, uint64_t gpa, int level, pm_pfn_t *pfn)
{
	uint64_t t0 = pm_trace_begin();

	return traced(t0, "TDH.MEM.PAGE.REMOVE", gpa, level, page_remove(td, gpa, level, pfn));
}

uint64_t tdh_mem_page_demote(struct tdx_td *td, uint64_t gpa, int level)
{
	uint64_t t0 = pm_trace_begin();

	return traced(t0, "TDH.MEM.PAGE.DEMOTE", gpa, level, page_demote(td, gpa, level));
}

uint64_t tdh_mr_extend(struct tdx_td *td, uint64_t gpa)
{
	uint64_t t0 = pm_trace_begin();

	return traced(t0, "TDH.MR.EXTEND", gpa, 0, mr_extend(td, gpa));
}

uint64_t tdh_mr_finalize(struct tdx_td *td)
{
	uint64_t t0 = pm_trace_begin();

	return traced(t0, "TDH.MR.FINALIZE", 0, 0, mr_finalize(td));
}

uint64_t tdg_mem_page_accept(struct tdx_td *td, uint64_t gpa, int level)
{
	uint64_t t0 = pm_trace_begin();

	return traced(t0, "TDG.MEM.PAGE.ACCEPT", gpa, level, page_accept(td, gpa, level));
}

enum tdx_gpa_state tdx_module_guest_lookup(struct tdx_td *td, uint64_t gpa, pm_pfn_t *pfn)
{
	uint64_t e;
	int level;

	if (!sept_leaf(td, gpa, &e, &level, NULL) || e_blocked(e))
		return TDX_GPA_NONE;
	*pfn = e_pfn(e) + ((gpa >> PM_PAGE_SHIFT) & ((1ULL << (9 * level)) - 1));
	return e_state(e) == E_PENDING ? TDX_GPA_PENDING : TDX_GPA_MAPPED;
}

/* ---- statistics and switches ---- */

void tdx_module_stats(struct tdx_td *td, struct tdx_module_stats *st)
{
	for (int i = 0; i < 4; i++)
		st->sept_entries[i] = atomic_load_explicit(&td->entries[i], memory_order_relaxed);
	st->busy = atomic_load_explicit(&td->busy, memory_order_relaxed);
	st->busy_injected = atomic_load_explicit(&td->busy_injected, memory_order_relaxed);
	st->demotions = atomic_load_explicit(&td->demotions, memory_order_relaxed);
	st->pending = atomic_load_explicit(&td->pending, memory_order_relaxed);
}

void tdx_module_set_busy_rate(struct tdx_td *td, unsigned int per_million)
{
	atomic_store(&td->busy_rate, per_million);
}

int tdx_module_test_hold_entry(struct tdx_td *td, uint64_t gpa, int level, bool hold)
{
	struct sept_node *node;
	unsigned int idx;
	uint64_t e;

	if (sept_walk(td, gpa, level, &node, &idx))
		return -ENOENT;
	if (!hold) {
		entry_commit(&node->e[idx], atomic_load(&node->e[idx]));
		return 0;
	}
	return entry_lock(&node->e[idx], &e) ? -EBUSY : 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * A realm's memory, KVM's side (locks in realm.h):
 *  - guest_memfd page lifetime: prepare (the guest's first use) delegates
 *    the page's granules; invalidate (frames really freed) undelegates
 *    them, which the RMM allows only for DELEGATED granules: every DATA
 *    granule was DATA_DESTROYed (zeroed) by the zap that came first. A
 *    frame still DATA at that point is kept out of the pool for good
 *    (gmem_hold, counted): the host must never get it back.
 *  - protected faults (map_private, MMU lock shared): RTTs created down to
 *    level 3, then DATA_CREATE_UNKNOWN per granule; a 2M guest_memfd page
 *    over a uniformly private, RAM range is mapped as 512 granules and
 *    folded into one 2M block (RTT_FOLD), whose returned RTT granule is
 *    kept as a spare;
 *  - private zaps (MMU lock exclusive): DATA_DESTROY page by page,
 *    unfolding a block first (RTT_CREATE under it) when the zap covers
 *    part of it, or all of it (DATA_DESTROY is per granule);
 *  - shared faults (map_shared): KVM's direct root as on every VM, and the
 *    same mapping in the RTT's unprotected half (RTT_MAP_UNPROTECTED);
 *    shared zaps unmap both.
 */
#include <inttypes.h>
#include "host/pool.h"
#include "lib/rcu.h"
#include "mmu/mmu.h"
#include "models/cca/realm.h"

/* ---- spare granules ----
 * A spare that was a table until RTT_FOLD or RTT_DESTROY released it may
 * still be read by a vCPU's lock-free walk that began before (pgtable.c's
 * walks run in RCU read-side sections): it waits in `limbo` and becomes a
 * table of another range only after a grace period, as pgtable.c's own
 * tables are freed. */

static bool grow(pm_pfn_t **a, size_t *cap, size_t need)
{
	pm_pfn_t *n;
	size_t c;

	if (need <= *cap)
		return true;
	c = PM_MAX(PM_MAX(16, *cap * 2), need);
	n = realloc(*a, c * sizeof(*n));
	if (!n)
		return false;
	*a = n;
	*cap = c;
	return true;
}

static void undelegate_free(struct realm_vm *r, pm_pfn_t pfn)
{
	PM_BUG_ON(rmi_granule_undelegate(pfn << PM_PAGE_SHIFT) != RMI_SUCCESS);
	realm_count(r, REALM_STAT_UNDELEGATES, 1);
	pm_pool_free(pfn, 0);
}

/* The limbo's granules join the spares once a grace period has passed. */
static void settle_limbo(struct realm_vm *r)
{
	pm_pfn_t *batch;
	size_t n;

	pthread_mutex_lock(&r->spare_lock);
	batch = r->limbo;
	n = r->nr_limbo;
	r->limbo = NULL;
	r->nr_limbo = r->cap_limbo = 0;
	pthread_mutex_unlock(&r->spare_lock);
	if (!n) {
		free(batch);
		return;
	}
	pm_synchronize_rcu();
	pthread_mutex_lock(&r->spare_lock);
	for (size_t i = 0; i < n; i++) {
		if (grow(&r->spares, &r->cap_spares, r->nr_spares + 1)) {
			r->spares[r->nr_spares++] = batch[i];
			batch[i] = PM_PFN_INVALID;
		}
	}
	pthread_mutex_unlock(&r->spare_lock);
	for (size_t i = 0; i < n; i++)       /* no room to keep them: back to the host */
		if (batch[i] != PM_PFN_INVALID)
			undelegate_free(r, batch[i]);
	free(batch);
}

int realm_get_granule(struct realm_vm *r, uint64_t *addr)
{
	pm_pfn_t pfn = PM_PFN_INVALID;
	bool limbo;

	pthread_mutex_lock(&r->spare_lock);
	limbo = !r->nr_spares && r->nr_limbo;
	pthread_mutex_unlock(&r->spare_lock);
	if (limbo)
		settle_limbo(r);
	pthread_mutex_lock(&r->spare_lock);
	if (r->nr_spares)
		pfn = r->spares[--r->nr_spares];
	pthread_mutex_unlock(&r->spare_lock);
	if (pfn == PM_PFN_INVALID) {
		if (pm_pool_alloc(0, &pfn))
			return -ENOMEM;
		PM_BUG_ON(rmi_granule_delegate(pfn << PM_PAGE_SHIFT) != RMI_SUCCESS);
		realm_count(r, REALM_STAT_DELEGATES, 1);
	}
	*addr = pfn << PM_PAGE_SHIFT;
	return 0;
}

void realm_put_granule(struct realm_vm *r, uint64_t addr)
{
	pm_pfn_t pfn = addr >> PM_PAGE_SHIFT;

	pthread_mutex_lock(&r->spare_lock);
	if (grow(&r->limbo, &r->cap_limbo, r->nr_limbo + 1)) {
		r->limbo[r->nr_limbo++] = pfn;
		pfn = PM_PFN_INVALID;
	}
	pthread_mutex_unlock(&r->spare_lock);
	if (pfn != PM_PFN_INVALID) {       /* no room to keep it: back to the host, */
		pm_synchronize_rcu();      /* once no walk can read it */
		undelegate_free(r, pfn);
	}
}

void realm_free_spares(struct realm_vm *r)
{
	pm_synchronize_rcu();
	pthread_mutex_lock(&r->spare_lock);
	for (size_t i = 0; i < r->nr_spares; i++)
		undelegate_free(r, r->spares[i]);
	for (size_t i = 0; i < r->nr_limbo; i++)
		undelegate_free(r, r->limbo[i]);
	r->nr_spares = r->nr_limbo = 0;
	pthread_mutex_unlock(&r->spare_lock);
}

/* ---- RTTs ---- */

int realm_ensure_rtt(struct realm_vm *r, uint64_t ipa, int level)
{
	uint64_t rd = realm_rd(r);

	for (;;) {
		struct rmi_rtt_entry e;
		uint64_t g, at, res;
		int err;

		PM_BUG_ON(rmi_rtt_read_entry(rd, PM_ALIGN_DOWN(ipa, rtt_entry_size(level)), level, &e));
		if (e.walk_level >= level)
			return 0;
		err = realm_get_granule(r, &g);
		if (err)
			return err;
		at = PM_ALIGN_DOWN(ipa, rtt_entry_size(e.walk_level));
		res = rmi_rtt_create(rd, g, at, e.walk_level + 1);
		if (res) {                 /* another thread made it meanwhile */
			PM_BUG_ON(rmi_status(res) != RMI_ERROR_RTT);
			realm_put_granule(r, g);
			continue;
		}
		realm_count(r, REALM_STAT_RTT_CREATES, 1);
		if (e.state == HIPAS_ASSIGNED)
			realm_count(r, REALM_STAT_UNFOLDS, 1);
	}
}

static void destroy_range(struct realm_vm *r, uint64_t ipa, uint64_t size, int level)
{
	uint64_t rd = realm_rd(r), top_bit = atomic_load(&r->top_bit);

	for (uint64_t a = ipa; a < ipa + size; a += rtt_entry_size(level)) {
		uint64_t out, top;
		struct rmi_rtt_entry e;

		PM_BUG_ON(rmi_rtt_read_entry(rd, a, level, &e));
		if (e.walk_level != level)
			continue;
		if (e.table) {
			destroy_range(r, a, rtt_entry_size(level), level + 1);
			PM_BUG_ON(rmi_rtt_destroy(rd, a, level + 1, &out, &top));
			undelegate_free(r, out >> PM_PAGE_SHIFT);
		} else if (e.state == HIPAS_ASSIGNED && (a & top_bit)) {
			PM_BUG_ON(rmi_rtt_unmap_unprotected(rd, a, level, &top));
		} else {
			PM_BUG_ON(e.state == HIPAS_ASSIGNED);  /* DATA went first */
		}
	}
}

void realm_destroy_rtts(struct realm_vm *r)
{
	uint64_t rd = realm_rd(r), top_bit = atomic_load(&r->top_bit);

	/* DATA first: protected memory left behind, whose frames guest_memfd's
	 * free kept (held): zeroed and given back to the host, never to the
	 * pool. */
	for (uint64_t a = 0; a < top_bit;) {
		uint64_t data, top;
		uint64_t res = rmi_data_destroy(rd, a, &data, &top);

		if (res == RMI_SUCCESS) {
			PM_BUG_ON(rmi_granule_undelegate(data) != RMI_SUCCESS);
			a = top;
		} else if (top > a) {
			a = top;
		} else {
			PM_BUG_ON(realm_ensure_rtt(r, a, RTT_PAGE_LEVEL));   /* a block */
		}
	}
	destroy_range(r, 0, 1ULL << r->cfg.ipa_bits, RTT_START_LEVEL);
}

/* ---- guest_memfd page lifetime ---- */

int realm_gmem_prepare(struct pm_vm *vm, pm_pfn_t pfn, gfn_t gfn, unsigned int order)
{
	struct realm_vm *r = to_realm(vm);

	for (uint64_t i = 0; i < (1ULL << order); i++) {
		/* Populated granules are DELEGATED or DATA already. */
		if (rmm_granule_state(pfn + i) != GRANULE_NS)
			continue;
		if (rmi_granule_delegate((pfn + i) << PM_PAGE_SHIFT) != RMI_SUCCESS)
			return -EIO;
		realm_count(r, REALM_STAT_DELEGATES, 1);
	}
	return 0;
}

void realm_gmem_invalidate(pm_pfn_t start, pm_pfn_t end)
{
	for (pm_pfn_t p = start; p < end; p++) {
		enum granule_state st = rmm_granule_state(p);

		if (st == GRANULE_NS)
			continue;          /* never used by the realm */
		/* Frees have no VM (upstream's hook neither): the RMM counts
		 * these UNDELEGATEs with every other. */
		if (st != GRANULE_DELEGATED || rmi_granule_undelegate(p << PM_PAGE_SHIFT) != RMI_SUCCESS)
			pm_fatal("realm: frame %#" PRIx64 " freed in granule state %d", p, st);
	}
}

bool realm_gmem_hold(struct pm_vm *vm, pm_pfn_t pfn, unsigned int order)
{
	struct realm_vm *r = to_realm(vm);
	bool held = false;

	for (uint64_t i = 0; i < (1ULL << order) && !held; i++)
		held = rmm_granule_state(pfn + i) == GRANULE_DATA;
	if (held && r)
		realm_count(r, REALM_STAT_HELD_FRAMES, 1ULL << order);
	return held;
}

/* ---- faults ---- */

int realm_private_max_level(struct pm_vm *vm, pm_pfn_t pfn, gfn_t gfn)
{
	return atomic_load_explicit(&to_realm(vm)->flags, memory_order_relaxed) & PM_REALM_NO_HUGE ? 0 : 1;
}

/* DATA_CREATE_UNKNOWN of one granule, creating the RTTs it needs when the
 * RMM says they are missing (as the series does: the walk's level in
 * RMI_ERROR_RTT says where). 0; -EEXIST (something else is assigned
 * there); -EAGAIN (the frame or the table changed meanwhile: again);
 * -ENOMEM. */
static int map_granule(struct realm_vm *r, pm_pfn_t pfn, uint64_t ipa)
{
	for (int tries = 0;; tries++) {
		uint64_t res = rmi_data_create_unknown(realm_rd(r), pfn << PM_PAGE_SHIFT, ipa), at;
		struct rmi_rtt_entry e;
		int err;

		if (res == RMI_SUCCESS) {
			realm_count(r, REALM_STAT_FAULT_DATA, 1);
			return 0;
		}
		/* Assigned already (a racing fault's work, or a page or block
		 * whose RIPAS is not RAM, which the vCPU's walk does not see:
		 * the frame is DATA then, and the command fails on it first):
		 * if to this very frame, KVM's part is done and the RMM decides
		 * the access; if to another, something else is there. */
		PM_BUG_ON(rmi_rtt_read_entry(realm_rd(r), ipa, RTT_PAGE_LEVEL, &e));
		at = PM_ALIGN_DOWN(ipa, rtt_entry_size(e.walk_level));
		if (e.state == HIPAS_ASSIGNED && !e.table)
			return e.desc + (ipa - at) == pfn << PM_PAGE_SHIFT ? 0 : -EEXIST;
		if (e.walk_level == RTT_PAGE_LEVEL || tries)
			return -EAGAIN;
		err = realm_ensure_rtt(r, ipa, RTT_PAGE_LEVEL);   /* tables missing */
		if (err)
			return err;
	}
}

int realm_map_private(struct pm_vm *vm, struct pm_fault *f, int level, uint64_t pte)
{
	struct realm_vm *r = to_realm(vm);
	uint64_t ipa = f->gfn << PM_PAGE_SHIFT, base, out;
	pm_pfn_t pfn = pm_pte_addr(pte);
	int err;

	PM_BUG_ON(level > 1);
	if (!level)
		return map_granule(r, pfn, ipa);
	/* A 2M page: its 512 granules, then one block. A granule another
	 * fault mapped already is fine; the fold checks the whole. */
	base = PM_ALIGN_DOWN(ipa, rtt_entry_size(RTT_PAGE_LEVEL - level));
	for (uint64_t i = 0; i < 512; i++) {
		err = map_granule(r, pfn + i, base + (i << PM_PAGE_SHIFT));
		if (err && err != -EEXIST)
			return err;
	}
	if (rmi_rtt_fold(realm_rd(r), base, RTT_PAGE_LEVEL, &out) == RMI_SUCCESS) {
		realm_count(r, REALM_STAT_FOLDS, 1);
		realm_put_granule(r, out);
	}
	return 0;
}

int realm_map_shared(struct pm_vm *vm, struct pm_fault *f, int level, uint64_t pte)
{
	struct realm_vm *r = to_realm(vm);
	int arm_level = RTT_PAGE_LEVEL - level, err;
	uint64_t ipa = (PM_ALIGN_DOWN(f->gfn, pm_s2_level_pages(level)) << PM_PAGE_SHIFT) |
		       atomic_load(&r->top_bit);
	uint64_t res, top;

	if (level > 1)
		return -EEXIST;            /* no 1G unprotected blocks: try 2M */
	err = realm_ensure_rtt(r, ipa, arm_level);
	if (err)
		return err;
	res = rmi_rtt_map_unprotected(realm_rd(r), ipa, arm_level,
				      pte & (PM_PTE_ADDR_MASK | PM_PTE_HVA));
	if (res)
		return -EEXIST;            /* mapped (another fault), or a table there */
	err = pm_s2_map(&vm->mmu->s2, f->gfn, level, pte);
	if (err) {
		PM_BUG_ON(rmi_rtt_unmap_unprotected(realm_rd(r), ipa, arm_level, &top));
		return err;
	}
	realm_count(r, REALM_STAT_UNPROT_MAPS, 1);
	return 0;
}

/* ---- zaps ---- */

/* The shared leaves of KVM's direct root in a zap's range, gathered by a
 * walk and handled after it: handling one may wait for a grace period
 * (a spare granule to unfold a block), which must never happen inside the
 * walk's RCU read-side section. */
#define UNPROT_BATCH 64

struct unprot_batch {
	gfn_t start, end;
	unsigned int n;
	struct { gfn_t gfn; int level; } leaf[UNPROT_BATCH];
};

static int unprot_collect(struct pm_walk_ctx *ctx)
{
	struct unprot_batch *b = ctx->arg;

	if (!pm_pte_is_leaf(ctx->old, ctx->level))
		return 0;
	if (b->n == UNPROT_BATCH)
		return -ENOSPC;            /* the rest in the next batch */
	b->leaf[b->n].gfn = ctx->gfn;
	b->leaf[b->n++].level = ctx->level;
	return 0;
}

/* The RTT's copy of one shared leaf goes: what the zap covers of it,
 * unfolding a 2M block covered in part. */
static void unprot_unmap(struct realm_vm *r, const struct unprot_batch *b, gfn_t gfn, int level)
{
	uint64_t top_bit = atomic_load(&r->top_bit), n = pm_s2_level_pages(level), top;
	gfn_t first = PM_MAX(gfn, b->start), last = PM_MIN(gfn + n, b->end);

	if (first == gfn && last == gfn + n) {
		if (!rmi_rtt_unmap_unprotected(realm_rd(r), (gfn << PM_PAGE_SHIFT) | top_bit,
					       RTT_PAGE_LEVEL - level, &top))
			realm_count(r, REALM_STAT_UNPROT_UNMAPS, 1);
		return;
	}
	if (realm_ensure_rtt(r, (first << PM_PAGE_SHIFT) | top_bit, RTT_PAGE_LEVEL))
		return;          /* no memory: the RTT keeps more than KVM (harmless) */
	for (gfn_t g = first; g < last; g++)
		if (!rmi_rtt_unmap_unprotected(realm_rd(r), (g << PM_PAGE_SHIFT) | top_bit,
					       RTT_PAGE_LEVEL, &top))
			realm_count(r, REALM_STAT_UNPROT_UNMAPS, 1);
}

static void zap_unprotected(struct pm_vm *vm, struct realm_vm *r, gfn_t start, gfn_t end)
{
	struct unprot_batch b = { .start = start, .end = end };
	const struct pm_walker w = { .visit = unprot_collect, .arg = &b, .flags = PM_WALK_LEAF };

	for (gfn_t from = start; from < end;) {
		int full;

		b.n = 0;
		full = pm_s2_walk(&vm->mmu->s2, from, end, &w) == -ENOSPC;
		for (unsigned int i = 0; i < b.n; i++)
			unprot_unmap(r, &b, b.leaf[i].gfn, b.leaf[i].level);
		if (!full)
			break;
		from = b.leaf[b.n - 1].gfn + pm_s2_level_pages(b.leaf[b.n - 1].level);
	}
}

static void zap_protected(struct realm_vm *r, uint64_t ipa, uint64_t end)
{
	uint64_t rd = realm_rd(r);

	while (ipa < end) {
		uint64_t data, top, res = rmi_data_destroy(rd, ipa, &data, &top);

		if (res == RMI_SUCCESS) {
			realm_count(r, REALM_STAT_DATA_DESTROYS, 1);
			ipa = top;
			continue;
		}
		PM_BUG_ON(rmi_status(res) != RMI_ERROR_RTT);
		if (top > ipa) {
			ipa = top;             /* a hole, skipped in one step */
			continue;
		}
		/* An assigned block: unfold it (a spare granule is there for
		 * it), then destroy page by page. */
		if (realm_ensure_rtt(r, ipa, RTT_PAGE_LEVEL))
			pm_fatal("realm: no memory to unfold a protected block");
	}
}

void realm_inval_zap(struct pm_vm *vm, gfn_t start, gfn_t end, unsigned int filter,
		     enum pm_inval_cause cause, void *ctx)
{
	struct realm_vm *r = to_realm(vm);
	uint64_t top_bit;

	if (!r) {                  /* torn down: only KVM's direct root is left */
		pm_mmu_zap(vm, start, end, filter, cause, ctx);
		return;
	}
	top_bit = atomic_load(&r->top_bit);
	end = PM_MIN(end, top_bit >> PM_PAGE_SHIFT);
	if (start >= end)
		return;
	if (filter & PM_INVAL_SHARED) {
		zap_unprotected(vm, r, start, end);
		pm_mmu_zap(vm, start, end, PM_INVAL_SHARED, cause, ctx);
	}
	if (filter & PM_INVAL_PRIVATE) {
		pm_mmu_write_lock(vm);
		zap_protected(r, start << PM_PAGE_SHIFT, end << PM_PAGE_SHIFT);
		pm_mmu_write_unlock(vm);
	}
}

/* SPDX-License-Identifier: MIT */
/*
 * TDX: the mirror root and its hooks into the TDX module (the design is in
 * tdx.c's header comment and docs/DESIGN.md).
 *
 * Faults change mirror entries under the MMU lock held shared with the
 * frozen-entry protocol (mirror_update): link (SEPT.ADD) and set (PAGE.ADD
 * or PAGE.AUG). Private zaps hold it exclusively and remove leaves (BLOCK,
 * TRACK and kick, REMOVE, clear) or demote 2M leaves a zap covers in part.
 * OPERAND_BUSY: a fault restores and retries; a zap keeps vCPUs out of the
 * module, kicks them and retries once. Anything else bugs the VM; a page
 * whose removal fails is leaked and counted, and guest_memfd's free of its
 * frames is held (tdx_gmem_hold).
 */
#include <inttypes.h>
#include "gmem/pool.h"
#include "mmu/mmu.h"
#include "models/tdx/tdx.h"
#include "vcpu/coro.h"

/* ---- SEAMCALL results ---- */

/* 0; -EAGAIN for OPERAND_BUSY (the caller retries); else the VM is bugged: -EIO. */
static int seamcall_errno(struct tdx_vm *t, uint64_t err)
{
	if (!err)
		return 0;
	tdx_tl_populate.hw_error = err;
	if (err == TDX_OPERAND_BUSY) {
		atomic_fetch_add_explicit(&t->busy_retries, 1, memory_order_relaxed);
		return -EAGAIN;
	}
	atomic_store(&t->last_error, err);
	pm_vm_bug(t->vm);
	return -EIO;
}

/* ---- the mirror hooks: link and set ---- */

struct mirror_change {
	gfn_t gfn;
	int level;
	uint64_t pte;      /* the entry's final value */
};

static int hook_link(struct tdx_vm *t, const struct mirror_change *c)
{
	uint64_t gpa = PM_ALIGN_DOWN(c->gfn, pm_s2_level_pages(c->level)) << PM_PAGE_SHIFT;

	return seamcall_errno(t, tdh_mem_sept_add(tdx_td(t), gpa, c->level));
}

static int hook_set(struct tdx_vm *t, const struct mirror_change *c)
{
	uint64_t gpa = PM_ALIGN_DOWN(c->gfn, pm_s2_level_pages(c->level)) << PM_PAGE_SHIFT;
	pm_pfn_t pfn = pm_pte_addr(c->pte);
	int r;

	if (atomic_load(&t->state) == TDX_STATE_RUNNABLE) {
		r = seamcall_errno(t, tdh_mem_page_aug(tdx_td(t), gpa, c->level, pfn));
		if (!r)
			atomic_fetch_add_explicit(&t->page_augs, 1, memory_order_relaxed);
		return r;
	}
	/* Before FINALIZE only the build adds pages (upstream returns an
	 * error for a vCPU fault then, and vCPUs cannot run yet). */
	if (!tdx_tl_populate.src || c->level)
		return -EIO;
	r = seamcall_errno(t, tdh_mem_page_add(tdx_td(t), gpa, pfn, tdx_tl_populate.src));
	if (!r) {
		tdx_tl_populate.added = true;
		atomic_fetch_add_explicit(&t->page_adds, 1, memory_order_relaxed);
	}
	return r;
}

/* Tests: called between the entry's first change and its hook. */
typedef void (*tdx_pause_fn)(struct pm_vm *vm, gfn_t gfn, int level);
static _Atomic tdx_pause_fn test_hook_pause;

void tdx_test_set_hook_pause(void (*fn)(struct pm_vm *vm, gfn_t gfn, int level))
{
	atomic_store(&test_hook_pause, fn);
}

/*
 * Changes mirror entry *p from `old` to c->pte with `hook` in between:
 * frozen (the protocol), or set first and hooked after (the switch off).
 * 0, or the hook's error (-EAGAIN also when *p changed meanwhile). With the
 * protocol off a failed hook leaves the new value in place: *published.
 */
static int mirror_update(struct tdx_vm *t, _Atomic uint64_t *p, uint64_t old,
			 int (*hook)(struct tdx_vm *, const struct mirror_change *),
			 const struct mirror_change *c, bool *published)
{
	bool frozen = !(atomic_load_explicit(&t->flags, memory_order_relaxed) &
			PM_TDX_NO_FROZEN_PROTOCOL);
	int r;

	*published = false;
	if (!atomic_compare_exchange_strong(p, &old, frozen ? PM_PTE_FROZEN : c->pte))
		return -EAGAIN;
	tdx_pause_fn pause = atomic_load_explicit(&test_hook_pause, memory_order_relaxed);

	if (pause)
		pause(t->vm, c->gfn, c->level);
	r = hook(t, c);
	if (frozen)
		atomic_store_explicit(p, r ? old : c->pte, memory_order_release);
	*published = !frozen || !r;
	return r;
}

static _Atomic uint64_t *mirror_ptes(pm_pfn_t table)
{
	return pm_pfn_to_hva(table);
}

static _Atomic uint64_t *mirror_ptep(pm_pfn_t table, gfn_t gfn, int level)
{
	return &mirror_ptes(table)[(gfn >> (9 * level)) & 511];
}

/* A fault that met a frozen entry retries. */
static int met_frozen(struct tdx_vm *t)
{
	atomic_fetch_add_explicit(&t->frozen_retries, 1, memory_order_relaxed);
	return -EAGAIN;
}

/* Links a new table at the empty level-`level` entry *p. */
static int mirror_link(struct tdx_vm *t, _Atomic uint64_t *p, uint64_t old, gfn_t gfn, int level)
{
	struct mirror_change c = { .gfn = gfn, .level = level };
	bool published;
	pm_pfn_t table;
	int r;

	if (pm_pool_alloc(0, &table))
		return -ENOMEM;
	c.pte = PM_PTE_VALID | (table << PM_PAGE_SHIFT);
	r = mirror_update(t, p, old, hook_link, &c, &published);
	if (published)
		atomic_fetch_add_explicit(&t->mirror.tables, 1, memory_order_relaxed);
	else
		pm_pool_free(table, 0);
	return r;
}

/* model->map_private: the mirror's part of a private fault, under the MMU
 * lock held shared. */
int tdx_map_private(struct pm_vm *vm, gfn_t gfn, int level, uint64_t pte)
{
	struct tdx_vm *t = to_tdx(vm);
	struct mirror_change c = { .gfn = gfn, .level = level, .pte = pte | PM_PTE_VALID | PM_PTE_LEAF };
	pm_pfn_t table = t->mirror.root;
	int max_level = tdx_tl_max_level_owner == pm_coro_current() ? tdx_tl_max_level : -1;
	_Atomic uint64_t *p;
	bool published;
	uint64_t e;
	int r;

	if (!tdx_td(t) || pm_vm_is_bugged(vm))
		return -EIO;
	/* PAGE.ADD is 4K only; so is upstream, and PM_TDX_NO_HUGE. */
	if (level > 0 && (atomic_load(&t->state) != TDX_STATE_RUNNABLE ||
			  (atomic_load(&t->flags) & PM_TDX_NO_HUGE) ||
			  (max_level >= 0 && level > max_level)))
		return -EEXIST;
	for (int l = PM_S2_ROOT_LEVEL; l > level; l--) {
		p = mirror_ptep(table, gfn, l);
		e = atomic_load_explicit(p, memory_order_acquire);
		if (pm_pte_frozen(e))
			return met_frozen(t);
		if (!pm_pte_valid(e)) {
			r = mirror_link(t, p, e, gfn, l);
			if (r)
				return r;
			e = atomic_load_explicit(p, memory_order_acquire);
		}
		if (!pm_pte_is_table(e, l))
			return pm_pte_frozen(e) ? met_frozen(t) : -EEXIST;
		table = pm_pte_addr(e);
	}
	p = mirror_ptep(table, gfn, level);
	e = atomic_load_explicit(p, memory_order_acquire);
	if (pm_pte_frozen(e))
		return met_frozen(t);
	if (pm_pte_valid(e))
		return -EEXIST;
	r = mirror_update(t, p, e, hook_set, &c, &published);
	if (published)
		atomic_fetch_add_explicit(&t->mirror.leaves[level], 1, memory_order_relaxed);
	return r;
}

/* ---- the remove hook and leaks ---- */

/* Kicks every vCPU out of guest mode on the current epoch: the shootdown
 * returns when each vCPU in guest mode has flushed and re-entered. */
static void kick_vcpus(struct tdx_vm *t)
{
	pm_mmu_tlb_shootdown(t->vm);
}

static void tdx_track(struct tdx_vm *t)
{
	PM_BUG_ON(tdh_mem_track(tdx_td(t)) != TDX_SUCCESS);
	atomic_fetch_add_explicit(&t->tracks, 1, memory_order_relaxed);
	kick_vcpus(t);
}

/* The zap path's answer to OPERAND_BUSY (contention with a vCPU inside
 * the module, e.g. an ACCEPT): keep vCPUs out of the module, kick them all
 * (the shootdown returns once each has left it), retry once. */
static void no_vcpu_enter_start(struct tdx_vm *t)
{
	atomic_fetch_add_explicit(&t->busy_retries, 1, memory_order_relaxed);
	atomic_fetch_add(&t->no_vcpu_enter, 1);
	kick_vcpus(t);
}

static void no_vcpu_enter_stop(struct tdx_vm *t)
{
	atomic_fetch_sub(&t->no_vcpu_enter, 1);
}

#define ZAP_SEAMCALL(t, call)                                           \
	({                                                              \
		uint64_t __e = (call);                                  \
		if (__e == TDX_OPERAND_BUSY) {                          \
			no_vcpu_enter_start(t);                         \
			__e = (call);                                   \
			no_vcpu_enter_stop(t);                          \
		}                                                       \
		__e;                                                    \
	})

static void leak_pages(struct tdx_vm *t, pm_pfn_t pfn, int level)
{
	uint64_t n = pm_s2_level_pages(level);

	pthread_mutex_lock(&t->leak_lock);
	if (t->nr_leaked + n > t->cap_leaked) {
		size_t cap = PM_MAX(t->cap_leaked * 2, t->nr_leaked + n);
		pm_pfn_t *a = realloc(t->leaked, cap * sizeof(*a));

		/* Without memory to remember them the pages are still never
		 * freed: the host crashes on the scrub, as it would have. */
		PM_BUG_ON(!a);
		t->leaked = a;
		t->cap_leaked = cap;
	}
	for (uint64_t i = 0; i < n; i++)
		t->leaked[t->nr_leaked++] = pfn + i;
	pthread_mutex_unlock(&t->leak_lock);
	atomic_fetch_add_explicit(&t->leaked_pages, n, memory_order_relaxed);
	pm_vm_bug(t->vm);
}

bool tdx_gmem_hold(struct pm_vm *vm, pm_pfn_t pfn, unsigned int order)
{
	struct tdx_vm *t = to_tdx(vm);
	bool held = false;

	if (!t || !atomic_load(&t->leaked_pages))
		return false;
	pthread_mutex_lock(&t->leak_lock);
	for (size_t i = 0; i < t->nr_leaked && !held; i++)
		held = t->leaked[i] >= pfn && t->leaked[i] < pfn + (1ULL << order);
	pthread_mutex_unlock(&t->leak_lock);
	if (held)
		atomic_fetch_add_explicit(&t->held_frames, 1ULL << order, memory_order_relaxed);
	return held;
}

/* The host writes the page back to a clean state (upstream: MOVDIR64B). */
static void clear_page(pm_pfn_t pfn, int level)
{
	uint64_t n = pm_s2_level_pages(level);

	if (pm_host_access(pfn, n, true))
		pm_fatal("tdx: clearing removed frames %#" PRIx64 " refused", pfn);
	memset(pm_pfn_to_hva(pfn), 0, n << PM_PAGE_SHIFT);
}

/* remove_external_spte: the leaf is gone from the mirror; take it out of
 * the S-EPT. MMU lock held exclusively. */
static void hook_remove(struct tdx_vm *t, gfn_t gfn, int level, pm_pfn_t pfn)
{
	struct tdx_td *td = tdx_td(t);
	uint64_t gpa = gfn << PM_PAGE_SHIFT, err;
	pm_pfn_t removed = PM_PFN_INVALID;

	err = ZAP_SEAMCALL(t, tdh_mem_range_block(td, gpa, level));
	if (!err) {
		tdx_track(t);
		err = ZAP_SEAMCALL(t, tdh_mem_page_remove(td, gpa, level, &removed));
	}
	if (err) {
		atomic_store(&t->last_error, err);
		leak_pages(t, pfn, level);
		return;
	}
	PM_BUG_ON(removed != pfn);
	atomic_fetch_add_explicit(&t->page_removes, 1, memory_order_relaxed);
	clear_page(pfn, level);
}

/* ---- demotion of a 2M private page ---- */

/* A mirror table of 512 4K leaves for the 2M leaf `leaf`. */
static int mirror_split_table(uint64_t leaf, pm_pfn_t *table)
{
	_Atomic uint64_t *ptes;

	if (pm_pool_alloc(0, table))
		return -ENOMEM;
	ptes = mirror_ptes(*table);
	for (uint64_t i = 0; i < 512; i++)
		atomic_init(&ptes[i], (leaf & ~PM_PTE_ADDR_MASK) |
				      ((pm_pte_addr(leaf) + i) << PM_PAGE_SHIFT));
	return 0;
}

/* The zap covers part of the 2M leaf at *p: BLOCK, TRACK, DEMOTE in the
 * module, then a table of 4K leaves in the mirror (the walk descends into
 * it). If the leaf cannot be blocked, the whole 2M page is removed (or
 * leaked, hook_remove); if DEMOTE fails, it is leaked. */
static int mirror_demote(struct tdx_vm *t, _Atomic uint64_t *p, gfn_t gfn, uint64_t leaf)
{
	struct tdx_td *td = tdx_td(t);
	uint64_t gpa = gfn << PM_PAGE_SHIFT, err;
	pm_pfn_t table;

	if (mirror_split_table(leaf, &table))
		goto remove;
	err = ZAP_SEAMCALL(t, tdh_mem_range_block(td, gpa, 1));
	if (err) {
		pm_pool_free(table, 0);
		goto remove;
	}
	tdx_track(t);
	err = ZAP_SEAMCALL(t, tdh_mem_page_demote(td, gpa, 1));
	if (err) {
		/* Blocked and not split, the 2M page can be neither used nor
		 * freed: leaked, with its status, as a failed removal is
		 * (OPERAND_BUSY too: the zap path has retried once). */
		pm_pool_free(table, 0);
		atomic_store(&t->last_error, err);
		leak_pages(t, pm_pte_addr(leaf), 1);
		atomic_store(p, 0);
		atomic_fetch_sub_explicit(&t->mirror.leaves[1], 1, memory_order_relaxed);
		return 0;
	}
	atomic_fetch_add_explicit(&t->demotions, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&t->mirror.tables, 1, memory_order_relaxed);
	atomic_fetch_sub_explicit(&t->mirror.leaves[1], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&t->mirror.leaves[0], 512, memory_order_relaxed);
	atomic_fetch_add_explicit(&t->mirror.splits, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&t->vm->mmu->splits, 1, memory_order_relaxed);
	atomic_store_explicit(p, PM_PTE_VALID | (table << PM_PAGE_SHIFT), memory_order_release);
	return 0;
remove:
	atomic_store(p, 0);
	atomic_fetch_sub_explicit(&t->mirror.leaves[1], 1, memory_order_relaxed);
	hook_remove(t, gfn, 1, pm_pte_addr(leaf));
	return 0;
}

/* ---- private zaps ---- */

struct mirror_zap {
	struct tdx_vm *t;
	gfn_t start, end;
};

static int mirror_zap_visit(struct pm_walk_ctx *ctx)
{
	struct mirror_zap *z = ctx->arg;
	uint64_t n = pm_s2_level_pages(ctx->level), old;

	/* No fault holds the MMU lock: nothing is frozen. */
	PM_BUG_ON(pm_pte_frozen(ctx->old));
	if (!pm_pte_is_leaf(ctx->old, ctx->level))
		return 0;
	if (ctx->gfn < z->start || ctx->gfn + n > z->end)
		return mirror_demote(z->t, ctx->ptep, ctx->gfn, ctx->old);
	old = atomic_exchange(ctx->ptep, 0);
	atomic_fetch_sub_explicit(&z->t->mirror.leaves[ctx->level], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&z->t->vm->mmu->zapped, 1, memory_order_relaxed);
	hook_remove(z->t, ctx->gfn, ctx->level, pm_pte_addr(old));
	return 0;
}

void tdx_inval_zap(struct pm_vm *vm, gfn_t start, gfn_t end, unsigned int filter,
		   enum pm_inval_cause cause, void *ctx)
{
	struct tdx_vm *t = to_tdx(vm);
	struct mirror_zap z = { .t = t, .start = start,
				.end = PM_MIN(end, 1ULL << PM_S2_GFN_BITS) };
	const struct pm_walker w = { .visit = mirror_zap_visit, .arg = &z, .flags = PM_WALK_LEAF };

	if (filter & PM_INVAL_SHARED)
		pm_mmu_zap(vm, start, end, PM_INVAL_SHARED, cause, ctx);
	/* Torn down already (memslots deleted while the VM is destroyed), or
	 * never built: no private mapping. */
	if (!(filter & PM_INVAL_PRIVATE) || !t || !tdx_td(t) || z.start >= z.end)
		return;
	pm_mmu_write_lock(vm);
	pm_s2_walk(&t->mirror, z.start, z.end, &w);
	pm_mmu_write_unlock(vm);
}

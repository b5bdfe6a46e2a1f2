/* SPDX-License-Identifier: MIT */
/*
 * TDX: the mirror root and its hooks into the TDX module (the design is in
 * tdx.c's header comment and docs/DESIGN.md).
 *
 * The mirror is a pgtable.c table like any other; the module hears of every
 * change through pgtable.c's change hooks (pm_s2_hook). Faults change
 * mirror entries under the MMU lock held shared with the frozen-entry
 * protocol (pm_s2_map_hooked): link (SEPT.ADD) and set (PAGE.ADD or
 * PAGE.AUG). Private zaps hold it exclusively and remove leaves (BLOCK,
 * TRACK and kick, REMOVE, clear) or demote 2M leaves a zap covers in part
 * (pm_s2_split_hooked: BLOCK, TRACK and kick, DEMOTE).
 * OPERAND_BUSY: a fault restores and retries; a zap keeps vCPUs out of the
 * module, kicks them and retries once. Anything else bugs the VM; a page
 * whose removal fails is leaked and counted, and guest_memfd's free of its
 * frames is held (tdx_gmem_hold).
 */
#include <inttypes.h>
#include "host/host_guard.h"
#include "host/pool.h"
#include "lib/trace.h"
#include "mmu/mmu.h"
#include "models/tdx/tdx.h"

/* ---- SEAMCALL results ---- */

/* What a fault's change hook needs: the TD, and the build's page source
 * when the fault is INIT_MEM_REGION's (the fault's model_arg). */
struct mirror_fault {
	struct tdx_vm *t;
	struct tdx_populate *pop;
};

/* 0; -EAGAIN for OPERAND_BUSY (the caller retries); else the VM is bugged: -EIO. */
static int seamcall_errno(const struct mirror_fault *mf, uint64_t err)
{
	struct tdx_vm *t = mf->t;

	if (!err)
		return 0;
	if (mf->pop)
		mf->pop->hw_error = err;
	if (err == TDX_OPERAND_BUSY) {
		atomic_fetch_add_explicit(&t->busy_retries, 1, memory_order_relaxed);
		return -EAGAIN;
	}
	atomic_store(&t->last_error, err);
	pm_vm_bug(t->vm);
	return -EIO;
}

/* ---- the mirror's hooks for faults: link and set ---- */

static uint64_t change_gpa(const struct pm_s2_change *c)
{
	return c->gfn << PM_PAGE_SHIFT;
}

static int hook_link(const struct mirror_fault *mf, const struct pm_s2_change *c)
{
	return seamcall_errno(mf, tdh_mem_sept_add(tdx_td(mf->t), change_gpa(c), c->level));
}

static int hook_set(const struct mirror_fault *mf, const struct pm_s2_change *c)
{
	struct tdx_vm *t = mf->t;
	pm_pfn_t pfn = pm_pte_addr(c->new);
	int r;

	if (atomic_load(&t->state) == TDX_STATE_RUNNABLE) {
		r = seamcall_errno(mf, tdh_mem_page_aug(tdx_td(t), change_gpa(c), c->level, pfn));
		if (!r)
			atomic_fetch_add_explicit(&t->page_augs, 1, memory_order_relaxed);
		return r;
	}
	/* Before FINALIZE only the build adds pages, 4K ones (upstream
	 * returns an error for a vCPU fault then, and vCPUs cannot run yet;
	 * tdx_private_max_level keeps the build's faults at 4K). */
	if (!mf->pop || !mf->pop->src || c->level)
		return -EIO;
	r = seamcall_errno(mf, tdh_mem_page_add(tdx_td(t), change_gpa(c), pfn, mf->pop->src));
	if (!r) {
		mf->pop->added = true;
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

/* The fault's pm_s2_hook: runs while the mirror entry is frozen (or, with
 * the protocol off, after it was published). */
static int fault_change(void *arg, const struct pm_s2_change *c)
{
	const struct mirror_fault *mf = arg;
	tdx_pause_fn pause = atomic_load_explicit(&test_hook_pause, memory_order_relaxed);

	if (pause)
		pause(mf->t->vm, c->gfn, c->level);
	switch (c->kind) {
	case PM_S2_LINK:
		return hook_link(mf, c);
	case PM_S2_SET:
		return hook_set(mf, c);
	default:
		PM_BUG_ON(1);
	}
}

/* model->private_max_level: PAGE.ADD is 4K only (before FINALIZE), and so
 * is upstream (PM_TDX_NO_HUGE); otherwise 2M (1G private pages are not
 * mapped: demotion handles 2M leaves only). */
int tdx_private_max_level(struct pm_vm *vm, pm_pfn_t pfn, gfn_t gfn)
{
	struct tdx_vm *t = to_tdx(vm);

	if (atomic_load(&t->state) != TDX_STATE_RUNNABLE || (atomic_load(&t->flags) & PM_TDX_NO_HUGE))
		return 0;
	return 1;
}

/* model->map_private: the mirror's part of a private fault, under the MMU
 * lock held shared, through pgtable.c with the frozen-entry protocol. */
int tdx_map_private(struct pm_vm *vm, struct pm_fault *f, int level, uint64_t pte)
{
	struct tdx_vm *t = to_tdx(vm);
	struct mirror_fault mf = { .t = t, .pop = f->model_arg };
	const struct pm_s2_hook hook = {
		.change = fault_change, .arg = &mf,
		.publish_first = atomic_load_explicit(&t->flags, memory_order_relaxed) &
				 PM_TDX_NO_FROZEN_PROTOCOL,
	};
	int r;

	if (!tdx_td(t) || pm_vm_is_bugged(vm))
		return -EIO;
	r = pm_s2_map_hooked(&t->mirror, f->gfn, level, pte, &hook);
	if (r == -EBUSY) {
		/* Met an entry another fault froze: retry the fault. */
		atomic_fetch_add_explicit(&t->frozen_retries, 1, memory_order_relaxed);
		return -EAGAIN;
	}
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

struct mirror_demotion {
	struct tdx_vm *t;
	bool blocked;        /* BLOCK succeeded: a failure after it leaks the page */
	uint64_t err;        /* the SEAMCALL that failed */
};

/* The split's pm_s2_hook (MMU lock exclusive): BLOCK, TRACK and kick,
 * DEMOTE; the module splits its entry into 512 4K entries in their state. */
static int demote_change(void *arg, const struct pm_s2_change *c)
{
	struct mirror_demotion *d = arg;
	struct tdx_vm *t = d->t;
	struct tdx_td *td = tdx_td(t);

	d->err = ZAP_SEAMCALL(t, tdh_mem_range_block(td, change_gpa(c), c->level));
	if (d->err)
		return -EIO;
	d->blocked = true;
	tdx_track(t);
	d->err = ZAP_SEAMCALL(t, tdh_mem_page_demote(td, change_gpa(c), c->level));
	return d->err ? -EIO : 0;
}

/* The zap covers part of the 2M leaf: demote it (pgtable.c puts a table of
 * 4K leaves in its place, and the walk descends into it). If the leaf
 * cannot be split (no table, or BLOCK failed), the whole 2M page is removed
 * (or leaked, hook_remove); blocked and not split (DEMOTE failed, after a
 * retry on OPERAND_BUSY), the 2M page can be neither used nor freed: leaked,
 * with its status. */
static bool mirror_demote(struct tdx_vm *t, struct pm_walk_ctx *ctx)
{
	struct mirror_demotion d = { .t = t };
	const struct pm_s2_hook hook = { .change = demote_change, .arg = &d };
	pm_pfn_t pfn = pm_pte_addr(ctx->old);

	if (!pm_s2_split_hooked(ctx, &hook)) {
		atomic_fetch_add_explicit(&t->demotions, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&t->vm->mmu->splits, 1, memory_order_relaxed);
		return true;
	}
	PM_BUG_ON(!pm_s2_clear_leaf(ctx));   /* nothing else changes the mirror now */
	if (d.blocked) {
		atomic_store(&t->last_error, d.err);
		leak_pages(t, pfn, ctx->level);
	} else {
		hook_remove(t, ctx->gfn, ctx->level, pfn);
	}
	return false;
}

/* ---- private zaps ---- */

struct mirror_zap {
	struct tdx_vm *t;
	gfn_t start, end;
	uint64_t zapped, split;      /* counted in the MMU's zapped and splits */
};

static int mirror_zap_visit(struct pm_walk_ctx *ctx)
{
	struct mirror_zap *z = ctx->arg;
	uint64_t n = pm_s2_level_pages(ctx->level);

	/* No fault holds the MMU lock: nothing is frozen. */
	PM_BUG_ON(pm_pte_frozen(ctx->old));
	if (!pm_pte_is_leaf(ctx->old, ctx->level))
		return 0;
	if (ctx->gfn < z->start || ctx->gfn + n > z->end) {
		z->split += mirror_demote(z->t, ctx);
		return 0;
	}
	PM_BUG_ON(!pm_s2_clear_leaf(ctx));
	atomic_fetch_add_explicit(&z->t->vm->mmu->zapped, 1, memory_order_relaxed);
	z->zapped++;
	hook_remove(z->t, ctx->gfn, ctx->level, pm_pte_addr(ctx->old));
	return 0;
}

void tdx_inval_zap(struct pm_vm *vm, gfn_t start, gfn_t end, unsigned int filter,
		   enum pm_inval_cause cause, void *ctx)
{
	struct tdx_vm *t = to_tdx(vm);
	struct mirror_zap z = { .t = t, .start = start,
				.end = PM_MIN(end, 1ULL << PM_S2_GFN_BITS) };
	const struct pm_walker w = { .visit = mirror_zap_visit, .arg = &z, .flags = PM_WALK_LEAF };
	uint64_t t0;

	if (filter & PM_INVAL_SHARED)
		pm_mmu_zap(vm, start, end, PM_INVAL_SHARED, cause, ctx);
	/* Torn down already (memslots deleted while the VM is destroyed), or
	 * never built: no private mapping. */
	if (!(filter & PM_INVAL_PRIVATE) || !t || !tdx_td(t) || z.start >= z.end)
		return;
	t0 = pm_trace_begin();
	pm_mmu_write_lock(vm);
	pm_s2_walk(&t->mirror, z.start, z.end, &w);
	pm_mmu_write_unlock(vm);
	pm_trace_end(t0, PM_TRACE_ZAP, "zap", z.start << PM_PAGE_SHIFT, (z.end - z.start) << PM_PAGE_SHIFT,
		     z.zapped, z.split);
}

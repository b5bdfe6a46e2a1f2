/* SPDX-License-Identifier: MIT */
/*
 * pKVM's page-ownership transitions (the state table is in hyp.h, the
 * encoding and the lock rules in hyp_internal.h).
 *
 * Every transition has one shape, run by do_transition():
 *  1. validate the arguments (nothing is locked yet);
 *  2. take the host lock and fill the table reserve with every page-table
 *     page the commit may need (pm_s2_tables_needed of each range the commit
 *     changes), then take the hyp and/or the guest lock;
 *  3. run the checks, one party at a time, in the errno order of the table;
 *     a check only reads;
 *  4. commit: change every party. It cannot fail: the checks proved every
 *     state it relies on, and every new table comes from the reserve; each
 *     page-table call in it is asserted;
 *  5. release the locks in reverse order.
 * If the reserve cannot be filled, the transition returns -ENOMEM after step
 * 5 with nothing changed. Each transition is therefore a row of the table
 * `transitions`: its locks, the ranges it reserves for, its argument check,
 * its party checks and its commit.
 */
#include "models/pkvm/hyp_internal.h"

#include "host/pool.h"
#include "lib/trace.h"

#define GFN_LIMIT (1ULL << PM_S2_GFN_BITS)

/* One call of a transition: its arguments and what the checks found. */
struct op {
	struct pkvm_hyp *hyp;
	struct pkvm_vm *vm;           /* NULL for host <-> hyp */
	pm_pfn_t pfn;                 /* first frame; PM_PFN_INVALID until a guest
				       * check finds the guest's leaf */
	uint64_t nr;                  /* pages, host and guest side alike */
	gfn_t gfn;
	unsigned int prot;
	enum pkvm_page_state guest;   /* the guest's state at gfn (guest checks) */
};

typedef int (*check_fn)(struct op *op);

enum { LOCK_HYP = 1 << 0, LOCK_GUEST = 1 << 1 };          /* host: always */
enum { RESERVE_HOST = 1 << 0, RESERVE_GUEST = 1 << 1 };   /* tables the commit may need */

struct transition {
	unsigned int locks;
	unsigned int reserve;
	int (*validate)(struct op *op);   /* the arguments alone */
	check_fn checks[4];               /* every party; NULL-terminated */
	void (*commit)(struct op *op);    /* cannot fail */
};

/* ---- argument checks ---- */

static bool gfn_range_ok(gfn_t gfn, uint64_t n)
{
	return gfn < GFN_LIMIT && n <= GFN_LIMIT - gfn;
}

/* One page, or one 2M-aligned block (pfn may not be known yet). */
static bool block_ok(pm_pfn_t pfn, gfn_t gfn, uint64_t n)
{
	if (n == 1)
		return true;
	return n == PKVM_BLOCK_PAGES && PM_ALIGNED(gfn, n) &&
	       (pfn == PM_PFN_INVALID || PM_ALIGNED(pfn, n));
}

static int validate_pfns(struct op *op)
{
	return pkvm_pfn_range_ok(op->hyp, op->pfn, op->nr) ? 0 : -EINVAL;
}

static int validate_gfn(struct op *op)
{
	return gfn_range_ok(op->gfn, op->nr) ? 0 : -EINVAL;
}

static int validate_pfn_gfn(struct op *op)
{
	return validate_pfns(op) ?: validate_gfn(op);
}

static int validate_share_guest(struct op *op)
{
	if (op->prot & ~PKVM_PROT_RWX)
		return -EINVAL;
	if (!block_ok(op->pfn, op->gfn, op->nr))
		return -EINVAL;
	return validate_pfn_gfn(op);
}

static int validate_unshare_guest(struct op *op)
{
	return block_ok(PM_PFN_INVALID, op->gfn, op->nr) ? validate_gfn(op) : -EINVAL;
}

static int validate_relax_perms(struct op *op)
{
	if (op->vm->cfg.protected)
		return -EPERM;
	if (op->prot & ~PKVM_PROT_RWX)
		return -EINVAL;
	return validate_gfn(op);
}

/* ---- host checks: every page of [pfn, pfn + nr) in the host stage-2 ---- */

typedef int (*host_page_fn)(struct op *op, pm_pfn_t pfn, enum pkvm_page_state state);

struct host_walk {
	struct op *op;
	host_page_fn ok;
};

static int host_check_visit(struct pm_walk_ctx *ctx)
{
	struct host_walk *hw = ctx->arg;
	struct op *op = hw->op;
	pm_pfn_t first = PM_MAX(ctx->gfn, op->pfn);
	pm_pfn_t end = PM_MIN(ctx->gfn + pm_s2_level_pages(ctx->level), op->pfn + op->nr);
	enum pkvm_page_state state = PKVM_NOPAGE;
	pm_pfn_t p;
	int ret;

	PM_BUG_ON(!pm_pte_valid(ctx->old) && !pm_pte_annotated(ctx->old));
	if (pm_pte_valid(ctx->old))
		state = pkvm_pte_state(ctx->old);
	for (p = first; p < end; p++) {
		ret = hw->ok(op, p, state);
		if (ret)
			return ret;
	}
	return 0;
}

static int host_check_pages(struct op *op, host_page_fn ok)
{
	struct host_walk hw = { .op = op, .ok = ok };
	struct pm_walker w = { .visit = host_check_visit, .arg = &hw, .flags = PM_WALK_LEAF };

	pkvm_lock_assert_held(&op->hyp->host_lock);
	return pm_s2_walk(&op->hyp->host_s2, op->pfn, op->pfn + op->nr, &w);
}

static uint16_t share_count(struct op *op, pm_pfn_t pfn)
{
	return atomic_load_explicit(&op->hyp->pages[pfn].share_count, memory_order_relaxed);
}

static int host_page_owned(struct op *op, pm_pfn_t pfn, enum pkvm_page_state s)
{
	return s == PKVM_PAGE_OWNED ? 0 : -EPERM;
}

static int host_page_nopage(struct op *op, pm_pfn_t pfn, enum pkvm_page_state s)
{
	return s == PKVM_NOPAGE ? 0 : -EPERM;
}

static int host_page_borrowed(struct op *op, pm_pfn_t pfn, enum pkvm_page_state s)
{
	return s == PKVM_PAGE_SHARED_BORROWED ? 0 : -EPERM;
}

/* Shared with the hyp: SHARED_OWNED and no guest counted. */
static int host_page_shared_with_hyp(struct op *op, pm_pfn_t pfn, enum pkvm_page_state s)
{
	return s == PKVM_PAGE_SHARED_OWNED && !share_count(op, pfn) ? 0 : -EPERM;
}

static int host_page_shared_with_guests(struct op *op, pm_pfn_t pfn, enum pkvm_page_state s)
{
	return s == PKVM_PAGE_SHARED_OWNED && share_count(op, pfn) ? 0 : -EPERM;
}

/* The host may lend the page to op->vm: it owns it alone, or (for a
 * non-protected guest only) already lends it to guests, up to the maximum. */
static int host_page_lendable(struct op *op, pm_pfn_t pfn, enum pkvm_page_state s)
{
	if (s == PKVM_PAGE_OWNED)
		return 0;
	if (s != PKVM_PAGE_SHARED_OWNED || !share_count(op, pfn) || op->vm->cfg.protected)
		return -EPERM;
	return share_count(op, pfn) == PKVM_SHARE_GUEST_MAX ? -EBUSY : 0;
}

/* The host's side of the guest's page: NOPAGE if the guest owns it, BORROWED if shared. */
static int host_page_counterpart(struct op *op, pm_pfn_t pfn, enum pkvm_page_state s)
{
	if (op->guest == PKVM_PAGE_OWNED)
		return host_page_nopage(op, pfn, s);
	return host_page_borrowed(op, pfn, s);
}

static int check_host_owned(struct op *op)
{
	return host_check_pages(op, host_page_owned);
}

static int check_host_nopage(struct op *op)
{
	return host_check_pages(op, host_page_nopage);
}

static int check_host_borrowed(struct op *op)
{
	return host_check_pages(op, host_page_borrowed);
}

static int check_host_shared_with_hyp(struct op *op)
{
	return host_check_pages(op, host_page_shared_with_hyp);
}

static int check_host_shared_with_guests(struct op *op)
{
	return host_check_pages(op, host_page_shared_with_guests);
}

static int check_host_lendable(struct op *op)
{
	return host_check_pages(op, host_page_lendable);
}

static int check_host_counterpart(struct op *op)
{
	return host_check_pages(op, host_page_counterpart);
}

/* ---- hyp checks: the page array ---- */

static struct pkvm_page *page_of(struct op *op, pm_pfn_t pfn)
{
	return &op->hyp->pages[pfn];
}

static int hyp_check_state(struct op *op, enum pkvm_page_state want)
{
	pm_pfn_t p;

	pkvm_lock_assert_held(&op->hyp->hyp_lock);
	for (p = op->pfn; p < op->pfn + op->nr; p++)
		if (atomic_load_explicit(&page_of(op, p)->hyp_state, memory_order_relaxed) != want)
			return -EPERM;
	return 0;
}

static int check_hyp_nopage(struct op *op)
{
	return hyp_check_state(op, PKVM_NOPAGE);
}

static int check_hyp_owned(struct op *op)
{
	return hyp_check_state(op, PKVM_PAGE_OWNED);
}

static int check_hyp_borrowed(struct op *op)
{
	return hyp_check_state(op, PKVM_PAGE_SHARED_BORROWED);
}

static int check_hyp_unpinned(struct op *op)
{
	return atomic_load_explicit(&page_of(op, op->pfn)->pins, memory_order_relaxed) ? -EBUSY : 0;
}

/* ---- guest checks: the guest stage-2 ---- */

static void guest_lookup(struct op *op, uint64_t *pte, int *level)
{
	pkvm_lock_assert_held(&op->vm->lock);
	pm_s2_get_leaf(op->vm->s2, op->gfn, pte, level);
	if (pm_pte_valid(*pte))
		op->guest = pkvm_pte_state(*pte);
	else if (pkvm_annot_type(*pte) == PKVM_ANNOT_POISONED)
		op->guest = PKVM_POISONED;
	else
		op->guest = PKVM_NOPAGE;
}

static int guest_range_visit(struct pm_walk_ctx *ctx)
{
	return pm_pte_valid(ctx->old) ? -EPERM : 0;
}

/* No page at any gfn of the range (a POISONED gfn is NOPAGE to the host). */
static int check_guest_nopage(struct op *op)
{
	struct pm_walker w = { .visit = guest_range_visit, .flags = PM_WALK_LEAF };

	pkvm_lock_assert_held(&op->vm->lock);
	return pm_s2_walk(op->vm->s2, op->gfn, op->gfn + op->nr, &w);
}

/* The guest's own 4K page at gfn (its hypercalls): finds its frame. */
static int check_guest_page(struct op *op)
{
	uint64_t pte;
	int level;

	guest_lookup(op, &pte, &level);
	if (op->guest == PKVM_POISONED)
		return -EHWPOISON;
	if (op->guest == PKVM_NOPAGE)
		return -ENOENT;
	if (level != 0)
		return -E2BIG;
	op->pfn = pm_pte_addr(pte);
	return 0;
}

/* A leaf of exactly op->nr pages at gfn (host_unshare_guest): finds its frames. */
static int check_guest_leaf_size(struct op *op)
{
	uint64_t pte;
	int level;

	guest_lookup(op, &pte, &level);
	if (!pm_pte_valid(pte))
		return -ENOENT;
	if (pm_s2_level_pages(level) != op->nr)
		return -E2BIG;
	op->pfn = pm_pte_addr(pte);
	return 0;
}

/* The leaf covering gfn, whatever its size (relax_perms): finds its frames. */
static int check_guest_leaf(struct op *op)
{
	uint64_t pte;
	int level;

	guest_lookup(op, &pte, &level);
	if (!pm_pte_valid(pte))
		return -ENOENT;
	op->nr = pm_s2_level_pages(level);
	op->pfn = pm_pte_addr(pte);
	return 0;
}

/* A page the host may take back: a 4K page the guest owns or shares. */
static int check_guest_reclaimable(struct op *op)
{
	uint64_t pte;
	int level;

	guest_lookup(op, &pte, &level);
	if (level != 0 || (op->guest != PKVM_PAGE_OWNED && op->guest != PKVM_PAGE_SHARED_OWNED))
		return -EPERM;
	op->pfn = pm_pte_addr(pte);
	return 0;
}

static int check_guest_owned(struct op *op)
{
	return op->guest == PKVM_PAGE_OWNED ? 0 : -EPERM;
}

static int check_guest_shared_owned(struct op *op)
{
	return op->guest == PKVM_PAGE_SHARED_OWNED ? 0 : -EPERM;
}

static int check_guest_borrowed(struct op *op)
{
	return op->guest == PKVM_PAGE_SHARED_BORROWED ? 0 : -EPERM;
}

/* ---- commit helpers: none can fail ---- */

/* Pages leave the host's sole ownership: another party may write them now,
 * so the poison mark ("zero since the reclaim") goes. */
static void host_unpoison(struct op *op)
{
	pm_pfn_t p;

	for (p = op->pfn; p < op->pfn + op->nr; p++)
		atomic_store_explicit(&page_of(op, p)->poisoned, 0, memory_order_relaxed);
}

static void host_set_state(struct op *op, pm_pfn_t pfn, uint64_t nr, enum pkvm_page_state s)
{
	struct pkvm_hyp *hyp = op->hyp;

	PM_BUG_ON(pm_s2_update_leaves(&hyp->host_s2, pfn, pfn + nr, PM_PTE_SW_STATE_MASK,
				      PKVM_PTE_STATE(s), &hyp->reserve));
}

/* The host loses the pages: its entries say who owns them now. */
static void host_set_owner(struct op *op, uint64_t annot)
{
	struct pkvm_hyp *hyp = op->hyp;

	PM_BUG_ON(pm_s2_annotate(&hyp->host_s2, op->pfn, op->pfn + op->nr, annot, &hyp->reserve));
}

/* The host gets access to pages it had none to (their entries were annotations). */
static void host_map(struct op *op, enum pkvm_page_state s)
{
	struct pkvm_hyp *hyp = op->hyp;
	pm_pfn_t p;

	for (p = op->pfn; p < op->pfn + op->nr; p++)
		PM_BUG_ON(pm_s2_map_mc(&hyp->host_s2, p, 0, pkvm_host_leaf(p, s), &hyp->reserve));
}

static void hyp_set_state(struct op *op, enum pkvm_page_state s)
{
	pm_pfn_t p;

	for (p = op->pfn; p < op->pfn + op->nr; p++)
		atomic_store_explicit(&page_of(op, p)->hyp_state, s, memory_order_relaxed);
}

static uint64_t pte_perms(unsigned int prot)
{
	return (prot & PKVM_PROT_W ? PM_PTE_WRITE : 0) | (prot & PKVM_PROT_X ? PM_PTE_EXEC : 0);
}

static void guest_map(struct op *op, enum pkvm_page_state s, unsigned int prot)
{
	uint64_t pte = (op->pfn << PM_PAGE_SHIFT) | pte_perms(prot) | PKVM_PTE_STATE(s);
	int level = op->nr == 1 ? 0 : 1;

	PM_BUG_ON(pm_s2_map_mc(op->vm->s2, op->gfn, level, pte, &op->hyp->reserve));
}

static void guest_set_state(struct op *op, enum pkvm_page_state s)
{
	PM_BUG_ON(pm_s2_update_leaves(op->vm->s2, op->gfn, op->gfn + op->nr, PM_PTE_SW_STATE_MASK,
				      PKVM_PTE_STATE(s), &op->hyp->reserve));
}

static void guest_tlb_flush(struct op *op)
{
	const struct pkvm_vm_config *cfg = &op->vm->cfg;

	if (cfg->tlb_flush)
		cfg->tlb_flush(cfg->arg, op->gfn, op->gfn + op->nr);
}

static void guest_unmap(struct op *op)
{
	struct pm_s2_zap_result res;

	PM_BUG_ON(pm_s2_zap(op->vm->s2, op->gfn, op->gfn + op->nr, NULL, NULL, &res));
	PM_BUG_ON(res.zapped != 1 || res.split);
	guest_tlb_flush(op);
}

/* The guest loses a page it owned: its gfn is POISONED and the frame zeroed. */
static void guest_poison(struct op *op)
{
	struct pkvm_hyp *hyp = op->hyp;
	uint64_t annot = pkvm_annot(PKVM_ANNOT_POISONED, 0, 0);

	PM_BUG_ON(pm_s2_annotate(op->vm->s2, op->gfn, op->gfn + 1, annot, &hyp->reserve));
	guest_tlb_flush(op);
	memset(pm_pfn_to_hva(op->pfn), 0, PM_PAGE_SIZE);
	atomic_store_explicit(&page_of(op, op->pfn)->poisoned, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&hyp->stats.pages_poisoned, 1, memory_order_relaxed);
}

static uint64_t guest_annot(struct op *op)
{
	return pkvm_annot(PKVM_ANNOT_GUEST, op->vm->id, op->gfn);
}

/* ---- commits ---- */

static void commit_host_share_hyp(struct op *op)
{
	host_unpoison(op);
	host_set_state(op, op->pfn, op->nr, PKVM_PAGE_SHARED_OWNED);
	hyp_set_state(op, PKVM_PAGE_SHARED_BORROWED);
}

static void commit_host_unshare_hyp(struct op *op)
{
	hyp_set_state(op, PKVM_NOPAGE);
	host_set_state(op, op->pfn, op->nr, PKVM_PAGE_OWNED);
}

static void commit_host_donate_hyp(struct op *op)
{
	host_unpoison(op);
	host_set_owner(op, pkvm_annot(PKVM_ANNOT_HYP, 0, 0));
	hyp_set_state(op, PKVM_PAGE_OWNED);
}

static void commit_hyp_donate_host(struct op *op)
{
	hyp_set_state(op, PKVM_NOPAGE);
	host_map(op, PKVM_PAGE_OWNED);
}

static void commit_host_share_guest(struct op *op)
{
	pm_pfn_t p;

	host_unpoison(op);
	host_set_state(op, op->pfn, op->nr, PKVM_PAGE_SHARED_OWNED);
	for (p = op->pfn; p < op->pfn + op->nr; p++)
		atomic_fetch_add_explicit(&page_of(op, p)->share_count, 1, memory_order_relaxed);
	guest_map(op, PKVM_PAGE_SHARED_BORROWED, op->prot);
}

/* Pages whose last guest share ends go back to host OWNED, a run at a time
 * (so a block returns as one leaf when it can). */
static void commit_host_unshare_guest(struct op *op)
{
	pm_pfn_t p, run = PM_PFN_INVALID;

	guest_unmap(op);
	for (p = op->pfn; p < op->pfn + op->nr; p++) {
		bool last = atomic_fetch_sub_explicit(&page_of(op, p)->share_count, 1,
						      memory_order_relaxed) == 1;

		if (last && run == PM_PFN_INVALID)
			run = p;
		if (!last && run != PM_PFN_INVALID) {
			host_set_state(op, run, p - run, PKVM_PAGE_OWNED);
			run = PM_PFN_INVALID;
		}
	}
	if (run != PM_PFN_INVALID)
		host_set_state(op, run, p - run, PKVM_PAGE_OWNED);
}

static void commit_host_donate_guest(struct op *op)
{
	host_unpoison(op);
	host_set_owner(op, guest_annot(op));
	guest_map(op, PKVM_PAGE_OWNED, PKVM_PROT_RWX);
}

static void commit_guest_share_host(struct op *op)
{
	guest_set_state(op, PKVM_PAGE_SHARED_OWNED);
	host_map(op, PKVM_PAGE_SHARED_BORROWED);
}

static void commit_guest_unshare_host(struct op *op)
{
	host_set_owner(op, guest_annot(op));
	guest_set_state(op, PKVM_PAGE_OWNED);
}

/* The guest loses the page before the host gets it: poisoned if it owned it. */
static void commit_host_reclaim_page_guest(struct op *op)
{
	if (op->guest == PKVM_PAGE_OWNED) {
		guest_poison(op);
		host_map(op, PKVM_PAGE_OWNED);
	} else {
		guest_unmap(op);
		host_set_state(op, op->pfn, op->nr, PKVM_PAGE_OWNED);
	}
}

static void commit_relax_perms(struct op *op)
{
	PM_BUG_ON(pm_s2_relax_perms(op->vm->s2, op->gfn, pte_perms(op->prot)));
}

/* ---- the table ---- */

static const struct transition transitions[] = {
	[PKVM_HOST_SHARE_HYP] = {
		.locks = LOCK_HYP, .reserve = RESERVE_HOST,
		.validate = validate_pfns,
		.checks = { check_host_owned, check_hyp_nopage },
		.commit = commit_host_share_hyp,
	},
	[PKVM_HOST_UNSHARE_HYP] = {
		.locks = LOCK_HYP, .reserve = RESERVE_HOST,
		.validate = validate_pfns,
		.checks = { check_host_shared_with_hyp, check_hyp_borrowed, check_hyp_unpinned },
		.commit = commit_host_unshare_hyp,
	},
	[PKVM_HOST_DONATE_HYP] = {
		.locks = LOCK_HYP, .reserve = RESERVE_HOST,
		.validate = validate_pfns,
		.checks = { check_host_owned, check_hyp_nopage },
		.commit = commit_host_donate_hyp,
	},
	[PKVM_HYP_DONATE_HOST] = {
		.locks = LOCK_HYP, .reserve = RESERVE_HOST,
		.validate = validate_pfns,
		.checks = { check_hyp_owned, check_host_nopage },
		.commit = commit_hyp_donate_host,
	},
	[PKVM_HOST_SHARE_GUEST] = {
		.locks = LOCK_GUEST, .reserve = RESERVE_HOST | RESERVE_GUEST,
		.validate = validate_share_guest,
		.checks = { check_guest_nopage, check_host_lendable },
		.commit = commit_host_share_guest,
	},
	[PKVM_HOST_UNSHARE_GUEST] = {
		.locks = LOCK_GUEST, .reserve = RESERVE_HOST,
		.validate = validate_unshare_guest,
		.checks = { check_guest_leaf_size, check_guest_borrowed,
			    check_host_shared_with_guests },
		.commit = commit_host_unshare_guest,
	},
	[PKVM_HOST_DONATE_GUEST] = {
		.locks = LOCK_GUEST, .reserve = RESERVE_HOST | RESERVE_GUEST,
		.validate = validate_pfn_gfn,
		.checks = { check_host_owned, check_guest_nopage },
		.commit = commit_host_donate_guest,
	},
	[PKVM_GUEST_SHARE_HOST] = {
		.locks = LOCK_GUEST, .reserve = RESERVE_HOST,
		.validate = validate_gfn,
		.checks = { check_guest_page, check_guest_owned, check_host_nopage },
		.commit = commit_guest_share_host,
	},
	[PKVM_GUEST_UNSHARE_HOST] = {
		.locks = LOCK_GUEST, .reserve = RESERVE_HOST,
		.validate = validate_gfn,
		.checks = { check_guest_page, check_guest_shared_owned, check_host_borrowed },
		.commit = commit_guest_unshare_host,
	},
	[PKVM_HOST_RECLAIM_PAGE_GUEST] = {
		.locks = LOCK_GUEST, .reserve = RESERVE_HOST,
		.validate = validate_gfn,
		.checks = { check_guest_reclaimable, check_host_counterpart },
		.commit = commit_host_reclaim_page_guest,
	},
	[PKVM_RELAX_PERMS] = {
		.locks = LOCK_GUEST,
		.validate = validate_relax_perms,
		.checks = { check_guest_leaf, check_guest_borrowed, check_host_shared_with_guests },
		.commit = commit_relax_perms,
	},
};
_Static_assert(PM_ARRAY_SIZE(transitions) == PKVM_NR_TRANSITIONS, "a row for every transition");

/* ---- the one shape ---- */

/* The tables the commit may create: the host range (where it is not known
 * yet it is one page or one aligned block, as the arguments were checked)
 * and the guest range. */
static uint64_t reserve_needed(const struct transition *t, const struct op *op)
{
	pm_pfn_t pfn = op->pfn == PM_PFN_INVALID ? 0 : op->pfn;
	uint64_t n = 0;

	if (t->reserve & RESERVE_HOST)
		n += pm_s2_tables_needed(pfn, pfn + op->nr);
	if (t->reserve & RESERVE_GUEST)
		n += pm_s2_tables_needed(op->gfn, op->gfn + op->nr);
	return n;
}

/* Takes the locks in order; fills the reserve under the host lock. */
static int op_lock(const struct transition *t, struct op *op)
{
	struct pkvm_hyp *hyp = op->hyp;
	int ret;

	pkvm_lock_take(&hyp->host_lock);
	ret = pm_s2_mc_topup(&hyp->reserve, reserve_needed(t, op));
	if (t->locks & LOCK_HYP)
		pkvm_lock_take(&hyp->hyp_lock);
	if (t->locks & LOCK_GUEST)
		pkvm_lock_take(&op->vm->lock);
	return ret;
}

static void op_unlock(const struct transition *t, struct op *op)
{
	if (t->locks & LOCK_GUEST)
		pkvm_lock_drop(&op->vm->lock);
	if (t->locks & LOCK_HYP)
		pkvm_lock_drop(&op->hyp->hyp_lock);
	pkvm_lock_drop(&op->hyp->host_lock);
}

static int do_transition(enum pkvm_transition kind, struct op *op)
{
	const struct transition *t = &transitions[kind];
	uint64_t t0 = pm_trace_begin();
	const check_fn *check;
	int ret = t->validate(op);

	if (!ret) {
		ret = op_lock(t, op);
		for (check = t->checks; !ret && *check; check++)
			ret = (*check)(op);
		if (!ret)
			t->commit(op);
		op_unlock(t, op);
	}
	atomic_fetch_add_explicit(ret ? &op->hyp->stats.refused[kind] : &op->hyp->stats.done[kind],
				  1, memory_order_relaxed);
	pm_trace_end(t0, PM_TRACE_PKVM, pkvm_transition_name(kind), op->pfn, op->gfn, op->nr,
		     (uint64_t)(int64_t)ret);
	return ret;
}

/* ---- the transitions ---- */

int pkvm_host_share_hyp(struct pkvm_hyp *hyp, pm_pfn_t pfn)
{
	struct op op = { .hyp = hyp, .pfn = pfn, .nr = 1 };

	return do_transition(PKVM_HOST_SHARE_HYP, &op);
}

int pkvm_host_unshare_hyp(struct pkvm_hyp *hyp, pm_pfn_t pfn)
{
	struct op op = { .hyp = hyp, .pfn = pfn, .nr = 1 };

	return do_transition(PKVM_HOST_UNSHARE_HYP, &op);
}

int pkvm_host_donate_hyp(struct pkvm_hyp *hyp, pm_pfn_t pfn, uint64_t n)
{
	struct op op = { .hyp = hyp, .pfn = pfn, .nr = n };

	return do_transition(PKVM_HOST_DONATE_HYP, &op);
}

int pkvm_hyp_donate_host(struct pkvm_hyp *hyp, pm_pfn_t pfn, uint64_t n)
{
	struct op op = { .hyp = hyp, .pfn = pfn, .nr = n };

	return do_transition(PKVM_HYP_DONATE_HOST, &op);
}

int pkvm_host_share_guest(struct pkvm_vm *vm, pm_pfn_t pfn, gfn_t gfn, uint64_t n,
			  unsigned int prot)
{
	struct op op = { .hyp = vm->hyp, .vm = vm, .pfn = pfn, .gfn = gfn, .nr = n,
			 .prot = prot };

	return do_transition(PKVM_HOST_SHARE_GUEST, &op);
}

int pkvm_host_unshare_guest(struct pkvm_vm *vm, gfn_t gfn, uint64_t n)
{
	struct op op = { .hyp = vm->hyp, .vm = vm, .pfn = PM_PFN_INVALID, .gfn = gfn, .nr = n };

	return do_transition(PKVM_HOST_UNSHARE_GUEST, &op);
}

int pkvm_host_donate_guest(struct pkvm_vm *vm, pm_pfn_t pfn, gfn_t gfn)
{
	struct op op = { .hyp = vm->hyp, .vm = vm, .pfn = pfn, .gfn = gfn, .nr = 1 };

	return do_transition(PKVM_HOST_DONATE_GUEST, &op);
}

int pkvm_guest_share_host(struct pkvm_vm *vm, gfn_t gfn)
{
	struct op op = { .hyp = vm->hyp, .vm = vm, .pfn = PM_PFN_INVALID, .gfn = gfn, .nr = 1 };

	return do_transition(PKVM_GUEST_SHARE_HOST, &op);
}

int pkvm_guest_unshare_host(struct pkvm_vm *vm, gfn_t gfn)
{
	struct op op = { .hyp = vm->hyp, .vm = vm, .pfn = PM_PFN_INVALID, .gfn = gfn, .nr = 1 };

	return do_transition(PKVM_GUEST_UNSHARE_HOST, &op);
}

int pkvm_host_reclaim_page_guest(struct pkvm_vm *vm, gfn_t gfn)
{
	struct op op = { .hyp = vm->hyp, .vm = vm, .pfn = PM_PFN_INVALID, .gfn = gfn, .nr = 1 };

	return do_transition(PKVM_HOST_RECLAIM_PAGE_GUEST, &op);
}

int pkvm_relax_perms(struct pkvm_vm *vm, gfn_t gfn, unsigned int prot)
{
	struct op op = { .hyp = vm->hyp, .vm = vm, .pfn = PM_PFN_INVALID, .gfn = gfn, .nr = 1,
			 .prot = prot };

	return do_transition(PKVM_RELAX_PERMS, &op);
}

/* ---- the hyp's pins on pages it borrows ---- */

int pkvm_hyp_pin_shared(struct pkvm_hyp *hyp, pm_pfn_t pfn)
{
	struct pkvm_page *page;
	int ret = 0;

	if (!pkvm_pfn_range_ok(hyp, pfn, 1))
		return -EINVAL;
	page = &hyp->pages[pfn];
	pkvm_lock_take(&hyp->hyp_lock);
	if (atomic_load_explicit(&page->hyp_state, memory_order_relaxed) != PKVM_PAGE_SHARED_BORROWED)
		ret = -EPERM;
	else
		PM_BUG_ON(atomic_fetch_add_explicit(&page->pins, 1, memory_order_relaxed) == UINT32_MAX);
	pkvm_lock_drop(&hyp->hyp_lock);
	return ret;
}

void pkvm_hyp_unpin_shared(struct pkvm_hyp *hyp, pm_pfn_t pfn)
{
	PM_BUG_ON(!pkvm_pfn_range_ok(hyp, pfn, 1));
	pkvm_lock_take(&hyp->hyp_lock);
	PM_BUG_ON(atomic_fetch_sub_explicit(&hyp->pages[pfn].pins, 1, memory_order_relaxed) == 0);
	pkvm_lock_drop(&hyp->hyp_lock);
}

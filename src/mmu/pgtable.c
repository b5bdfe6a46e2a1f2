/* SPDX-License-Identifier: MIT */
/*
 * The software stage-2 page table (interface and entry format in pgtable.h).
 *
 * Design
 *  - One generic walker (pm_s2_walk) visits the entries covering a range in
 *    gfn order: LEAF for leaves and empty or frozen entries, TABLE_PRE before
 *    descending into a table and TABLE_POST after its children. It re-reads
 *    an entry after a LEAF or PRE visit, so a visitor may install a table
 *    (map creating its path, a split) or remove one, and the walk follows.
 *    map, zap, split, age, lookup, count and destroy are each a small
 *    visitor over it.
 *  - Every table is one frame-pool frame of 512 entries; the root, allocated
 *    by pm_s2_init, lives until pm_s2_destroy. A table is reachable only
 *    through its parent entry.
 *  - Every entry change is one compare-and-exchange, so a change that lost
 *    a race (including a vCPU's fetch-or of ACCESSED|DIRTY into a leaf) is
 *    seen and re-evaluated, never overwritten.
 *
 * Detaching an empty table (zap) without losing a concurrent install: the
 * zapper first turns every empty entry of the table into the DETACHING
 * marker (a FROZEN entry), one CAS each; if one entry is in use it thaws the
 * ones it froze and keeps the table. Once all 512 are frozen nothing can be
 * installed there any more (installs CAS from empty), so the parent entry is
 * cleared and the frame freed after an RCU grace period: walkers that
 * already hold a pointer to it read a live frame full of markers until they
 * leave their read-side section. A map that meets a marker retries from the
 * root (-EAGAIN inside this file); everything else treats it as FROZEN.
 *
 * "Empty" means neither VALID nor FROZEN: stray ACCESSED/DIRTY bits that a
 * vCPU fetch-ors into an entry just zapped do not make it occupied, and an
 * install may replace an annotation. "Vacant" is stricter: nothing but
 * stray ACCESSED/DIRTY bits. Only a table of vacant entries is detached, so
 * a zap never drops an annotation.
 *
 * Table memory: a new table comes from the pool, or from the caller's
 * reserve (struct pm_s2_mc) for the changes that must not fail halfway.
 *
 * Shared state: the entries (atomic, changed only by CAS as above; tables
 * protected from reuse by RCU), and the counters of struct pm_s2 (atomic,
 * updated by whoever wins the CAS that changes what they count).
 */
#include "mmu/pgtable.h"

#include "host/pool.h"
#include "lib/rcu.h"

#define S2_PTRS          512
#define S2_GFN_LIMIT     (1ULL << PM_S2_GFN_BITS)
#define S2_AD_BITS       (PM_PTE_ACCESSED | PM_PTE_DIRTY)
/* The marker a zapper puts into every entry of a table it is detaching. */
#define S2_DETACHING     (PM_PTE_FROZEN | PM_PTE_ADDR_MASK)

typedef _Atomic uint64_t s2_pte_t;

/* ---- entries ---- */

static bool pte_empty(uint64_t e)
{
	return !(e & (PM_PTE_VALID | PM_PTE_FROZEN));
}

static bool pte_vacant(uint64_t e)
{
	return !(e & ~S2_AD_BITS);
}

static bool pte_detaching(uint64_t e)
{
	return (e & ~S2_AD_BITS) == S2_DETACHING;
}

static uint64_t pte_table(pm_pfn_t pfn)
{
	return PM_PTE_VALID | (pfn << PM_PAGE_SHIFT);
}

static bool pte_is_table_at(uint64_t e, int level, pm_pfn_t pfn)
{
	return pm_pte_is_table(e, level) && pm_pte_addr(e) == pfn;
}

static uint64_t pte_with_addr(uint64_t e, uint64_t addr)
{
	return (e & ~PM_PTE_ADDR_MASK) | (addr << PM_PAGE_SHIFT);
}

static s2_pte_t *table_ptes(pm_pfn_t pfn)
{
	return pm_pfn_to_hva(pfn);
}

static uint64_t pte_read(s2_pte_t *ptep)
{
	return atomic_load_explicit(ptep, memory_order_acquire);
}

/* On failure *old is updated to the current value. */
static bool pte_cas(s2_pte_t *ptep, uint64_t *old, uint64_t new)
{
	return atomic_compare_exchange_strong(ptep, old, new);
}

static bool ctx_inside(const struct pm_walk_ctx *ctx, gfn_t start, gfn_t end)
{
	return ctx->gfn >= start && ctx->gfn + pm_s2_level_pages(ctx->level) <= end;
}

static void s2_count_leaf(struct pm_s2 *s2, int level, int64_t n)
{
	atomic_fetch_add_explicit(&s2->leaves[level], (uint64_t)n, memory_order_relaxed);
}

static void s2_count_table(struct pm_s2 *s2, int64_t n)
{
	atomic_fetch_add_explicit(&s2->tables, (uint64_t)n, memory_order_relaxed);
}

static void assert_range(gfn_t start, gfn_t end)
{
	PM_BUG_ON(start > end);
	PM_BUG_ON(end > S2_GFN_LIMIT);
}

/* ---- table memory ---- */

static _Atomic pm_pfn_t *mc_link(pm_pfn_t pfn)
{
	return pm_pfn_to_hva(pfn);
}

static void mc_push(struct pm_s2_mc *mc, pm_pfn_t pfn)
{
	atomic_store_explicit(mc_link(pfn), mc->head, memory_order_relaxed);
	mc->head = pfn;
	mc->nr++;
}

static pm_pfn_t mc_pop(struct pm_s2_mc *mc)
{
	pm_pfn_t pfn = mc->head;

	PM_BUG_ON(pfn == PM_PFN_INVALID);
	mc->head = atomic_load_explicit(mc_link(pfn), memory_order_relaxed);
	atomic_store_explicit(mc_link(pfn), 0, memory_order_relaxed);
	mc->nr--;
	return pfn;
}

int pm_s2_mc_topup(struct pm_s2_mc *mc, uint64_t min)
{
	pm_pfn_t pfn;

	while (mc->nr < min) {
		if (pm_pool_alloc(0, &pfn))
			return -ENOMEM;
		mc_push(mc, pfn);
	}
	return 0;
}

void pm_s2_mc_move(struct pm_s2_mc *to, struct pm_s2_mc *from)
{
	while (from->nr)
		mc_push(to, mc_pop(from));
	PM_BUG_ON(from->head != PM_PFN_INVALID);
}

void pm_s2_mc_free(struct pm_s2_mc *mc)
{
	while (mc->nr)
		pm_pool_free(mc_pop(mc), 0);
	PM_BUG_ON(mc->head != PM_PFN_INVALID);
}

uint64_t pm_s2_tables_needed(gfn_t start, gfn_t end)
{
	uint64_t n = 0;
	int level;

	if (start >= end)
		return 0;
	for (level = 1; level <= PM_S2_ROOT_LEVEL; level++) {
		uint64_t span = pm_s2_level_pages(level);

		n += (end - 1) / span - start / span + 1;
	}
	return n;
}

/* A zeroed frame for a table: from the reserve if there is one, else the pool. */
static int table_alloc(struct pm_s2_mc *mc, pm_pfn_t *pfn)
{
	if (!mc)
		return pm_pool_alloc(0, pfn) ? -ENOMEM : 0;
	if (!mc->nr)
		return -ENOMEM;
	*pfn = mc_pop(mc);
	return 0;
}

/* A table nobody saw goes back where it came from. */
static void table_unused(struct pm_s2_mc *mc, pm_pfn_t pfn)
{
	if (mc)
		mc_push(mc, pfn);
	else
		pm_pool_free(pfn, 0);
}

/* Fills a fresh table with copies of the not-valid entry it replaces (an
 * annotation stays on every gfn it covered; a vacant entry leaves zeroes). */
static void table_fill_invalid(pm_pfn_t table, uint64_t old)
{
	s2_pte_t *ptes = table_ptes(table);
	int i;

	if (pte_vacant(old))
		return;
	for (i = 0; i < S2_PTRS; i++)
		atomic_store_explicit(&ptes[i], old, memory_order_relaxed);
}

/* ---- the walker ---- */

struct s2_walk {
	struct pm_s2 *s2;
	gfn_t start, end;
	const struct pm_walker *w;
};

static int walk_table(const struct s2_walk *wk, pm_pfn_t table, gfn_t base, int level);

static int walk_visit(const struct s2_walk *wk, struct pm_walk_ctx *ctx, unsigned int visit)
{
	if (!(wk->w->flags & visit))
		return 0;
	ctx->visit = visit;
	return wk->w->visit(ctx);
}

static int walk_entry(const struct s2_walk *wk, s2_pte_t *ptep, gfn_t gfn, int level)
{
	struct pm_walk_ctx ctx = {
		.s2 = wk->s2, .ptep = ptep, .old = pte_read(ptep),
		.gfn = gfn, .level = level, .arg = wk->w->arg,
	};
	bool table = pm_pte_is_table(ctx.old, level);
	int ret = walk_visit(wk, &ctx, table ? PM_WALK_TABLE_PRE : PM_WALK_LEAF);

	if (ret)
		return ret;
	ctx.old = pte_read(ptep);
	if (!pm_pte_is_table(ctx.old, level))
		return 0;
	ret = walk_table(wk, pm_pte_addr(ctx.old), gfn, level - 1);
	if (ret)
		return ret;
	return walk_visit(wk, &ctx, PM_WALK_TABLE_POST);
}

/* Visits the entries of the table (covering from base, at level) that overlap the range. */
static int walk_table(const struct s2_walk *wk, pm_pfn_t table, gfn_t base, int level)
{
	uint64_t span = pm_s2_level_pages(level);
	gfn_t first = PM_MAX(wk->start, base);
	gfn_t last = PM_MIN(wk->end, base + S2_PTRS * span) - 1;
	s2_pte_t *ptes = table_ptes(table);
	uint64_t i;
	int ret;

	PM_BUG_ON(level < 0 || first > last);
	for (i = (first - base) / span; i <= (last - base) / span; i++) {
		ret = walk_entry(wk, &ptes[i], base + i * span, level);
		if (ret)
			return ret;
	}
	return 0;
}

int pm_s2_walk(struct pm_s2 *s2, gfn_t start, gfn_t end, const struct pm_walker *w)
{
	struct s2_walk wk = { .s2 = s2, .start = start, .end = end, .w = w };
	int ret;

	assert_range(start, end);
	if (start == end)
		return 0;
	pm_rcu_read_lock();
	ret = walk_table(&wk, s2->root, 0, PM_S2_ROOT_LEVEL);
	pm_rcu_read_unlock();
	return ret;
}

/* The one-gfn descent (the hot path of translation and of a fault's
 * install): the entry at each level with no visitor, inside the caller's
 * RCU read-side section. Stops at the first entry that is not a table:
 * *level is its level. */
static s2_pte_t *s2_descend(struct pm_s2 *s2, gfn_t gfn, int stop_level, uint64_t *e, int *level)
{
	pm_pfn_t table = s2->root;

	for (int l = PM_S2_ROOT_LEVEL;; l--) {
		s2_pte_t *ptep = &table_ptes(table)[(gfn >> (9 * l)) & (S2_PTRS - 1)];

		*e = pte_read(ptep);
		*level = l;
		if (l == stop_level || !pm_pte_is_table(*e, l))
			return ptep;
		table = pm_pte_addr(*e);
	}
}

/* ---- init and destroy ---- */

int pm_s2_init(struct pm_s2 *s2)
{
	int i;

	memset(s2, 0, sizeof(*s2));
	if (pm_pool_alloc(0, &s2->root))
		return -ENOMEM;
	atomic_init(&s2->tables, 1);
	for (i = 0; i < 3; i++)
		atomic_init(&s2->leaves[i], 0);
	atomic_init(&s2->splits, 0);
	atomic_init(&s2->detached, false);
	return 0;
}

static int destroy_visit(struct pm_walk_ctx *ctx)
{
	pm_pool_free(pm_pte_addr(ctx->old), 0);
	s2_count_table(ctx->s2, -1);
	return 0;
}

void pm_s2_destroy(struct pm_s2 *s2)
{
	struct pm_walker w = { .visit = destroy_visit, .flags = PM_WALK_TABLE_POST };

	/* Tables detached earlier are freed first, so the pool has them back
	 * when the VM is gone. Only an s2 that detached any waits: a barrier
	 * costs liburcu's callback thread's batching delay (~10 ms). */
	if (atomic_load(&s2->detached))
		pm_rcu_barrier();
	pm_s2_walk(s2, 0, S2_GFN_LIMIT, &w);
	PM_BUG_ON(atomic_load(&s2->tables) != 1);
	pm_pool_free(s2->root, 0);
	s2->root = PM_PFN_INVALID;
	atomic_store(&s2->tables, 0);
}

/* ---- map ---- */

struct s2_map_req {
	int level;
	uint64_t pte;
	bool installed;
	struct pm_s2_mc *mc;
	const struct pm_s2_hook *hook;   /* pm_s2_map_hooked */
};

/* Errno for an install that met an occupied entry. */
static int occupied_errno(uint64_t cur)
{
	return pte_detaching(cur) ? -EAGAIN : -EEXIST;
}

static int map_install_leaf(struct pm_walk_ctx *ctx, struct s2_map_req *m)
{
	uint64_t cur = ctx->old;

	while (pte_empty(cur)) {
		if (pte_cas(ctx->ptep, &cur, m->pte)) {
			s2_count_leaf(ctx->s2, ctx->level, 1);
			m->installed = true;
			return 0;
		}
	}
	return occupied_errno(cur);
}

/* Installs a table under an empty entry. A new table nobody saw yet goes
 * back at once if another one won the slot. */
static int install_table(struct pm_walk_ctx *ctx, struct pm_s2_mc *mc)
{
	uint64_t cur = ctx->old;
	pm_pfn_t pfn;

	if (!pte_empty(cur))
		return occupied_errno(cur);
	if (table_alloc(mc, &pfn))
		return -ENOMEM;
	while (pte_empty(cur)) {
		table_fill_invalid(pfn, cur);
		if (pte_cas(ctx->ptep, &cur, pte_table(pfn))) {
			s2_count_table(ctx->s2, 1);
			return 0;
		}
	}
	memset(table_ptes(pfn), 0, PM_PAGE_SIZE);
	table_unused(mc, pfn);
	return pm_pte_is_table(cur, ctx->level) ? 0 : occupied_errno(cur);
}

/* ---- changes through a hook (pm_s2_map_hooked, pm_s2_split_hooked) ---- */

/*
 * Changes the entry at ctx->ptep from c->old to c->new with the hook in
 * between: frozen while it runs, then the new value or the old one back;
 * or, with publish_first, the new value first and the hook after (a
 * failure leaves it). 0, the hook's error, or -EAGAIN if the entry was no
 * longer c->old. *published: c->new is in place.
 */
static int hooked_change(struct pm_walk_ctx *ctx, const struct pm_s2_hook *h,
			 const struct pm_s2_change *c, bool publish_first, bool *published)
{
	uint64_t cur = c->old;
	int r;

	*published = false;
	if (!pte_cas(ctx->ptep, &cur, publish_first ? c->new : PM_PTE_FROZEN))
		return -EAGAIN;
	r = h->change(h->arg, c);
	if (!publish_first)
		atomic_store_explicit(ctx->ptep, r ? c->old : c->new, memory_order_release);
	*published = publish_first || !r;
	return r;
}

/* Errno for a hooked install that met entry `cur` in its way. */
static int hooked_occupied(uint64_t cur)
{
	return pm_pte_frozen(cur) ? -EBUSY : -EEXIST;
}

static int hooked_install_table(struct pm_walk_ctx *ctx, const struct pm_s2_hook *h)
{
	struct pm_s2_change c = { .kind = PM_S2_LINK, .gfn = ctx->gfn, .level = ctx->level,
				  .old = ctx->old };
	bool published;
	pm_pfn_t pfn;
	int r;

	if (!pte_empty(ctx->old))
		return hooked_occupied(ctx->old);
	if (table_alloc(NULL, &pfn))
		return -ENOMEM;
	c.new = pte_table(pfn);
	r = hooked_change(ctx, h, &c, h->publish_first, &published);
	if (published)
		s2_count_table(ctx->s2, 1);
	else
		table_unused(NULL, pfn);
	return r;
}

static int hooked_install_leaf(struct pm_walk_ctx *ctx, struct s2_map_req *m)
{
	struct pm_s2_change c = { .kind = PM_S2_SET, .gfn = ctx->gfn, .level = ctx->level,
				  .old = ctx->old, .new = m->pte };
	bool published;
	int r;

	if (!pte_empty(ctx->old))
		return hooked_occupied(ctx->old);
	r = hooked_change(ctx, m->hook, &c, m->hook->publish_first, &published);
	if (published) {
		s2_count_leaf(ctx->s2, ctx->level, 1);
		m->installed = true;
	}
	return r;
}

static int map_visit(struct pm_walk_ctx *ctx)
{
	struct s2_map_req *m = ctx->arg;

	if (ctx->visit == PM_WALK_TABLE_PRE)
		return ctx->level > m->level ? 0 : -EEXIST;
	if (m->hook)
		return ctx->level == m->level ? hooked_install_leaf(ctx, m)
					      : hooked_install_table(ctx, m->hook);
	if (ctx->level == m->level)
		return map_install_leaf(ctx, m);
	return install_table(ctx, m->mc);
}

int pm_s2_map(struct pm_s2 *s2, gfn_t gfn, int level, uint64_t pte)
{
	return pm_s2_map_mc(s2, gfn, level, pte, NULL);
}

/* One walk installing m's leaf for the block containing gfn at m->level. */
static int s2_map_walk(struct pm_s2 *s2, gfn_t gfn, struct s2_map_req *m)
{
	struct pm_walker w = { .visit = map_visit, .arg = m,
			       .flags = PM_WALK_LEAF | PM_WALK_TABLE_PRE };
	gfn_t first = PM_ALIGN_DOWN(gfn, pm_s2_level_pages(m->level));

	return pm_s2_walk(s2, first, first + pm_s2_level_pages(m->level), &w);
}

/* pm_s2_map's fast path: when the tables down to m->level exist, install
 * the leaf with one compare-and-exchange (what map_visit would do there).
 * -EAGAIN when a table is missing or the path is changing: the walk
 * decides then. */
static int s2_map_direct(struct pm_s2 *s2, gfn_t gfn, struct s2_map_req *m)
{
	struct pm_walk_ctx ctx = { .s2 = s2, .arg = m };
	int ret = -EAGAIN;

	pm_rcu_read_lock();
	ctx.ptep = s2_descend(s2, gfn, m->level, &ctx.old, &ctx.level);
	if (ctx.level == m->level) {
		ctx.gfn = PM_ALIGN_DOWN(gfn, pm_s2_level_pages(m->level));
		ctx.visit = PM_WALK_LEAF;
		ret = map_install_leaf(&ctx, m);
	} else if (!pte_empty(ctx.old)) {
		ret = occupied_errno(ctx.old);   /* a leaf or a frozen entry above */
	}
	pm_rcu_read_unlock();
	return ret;
}

static void s2_map_check(gfn_t gfn, int level, uint64_t pte)
{
	PM_BUG_ON(level < 0 || level >= PM_S2_ROOT_LEVEL);
	PM_BUG_ON(gfn >= S2_GFN_LIMIT);
	PM_BUG_ON(pte & PM_PTE_FROZEN);
}

int pm_s2_map_mc(struct pm_s2 *s2, gfn_t gfn, int level, uint64_t pte, struct pm_s2_mc *mc)
{
	struct s2_map_req m = { .level = level, .pte = pte | PM_PTE_VALID | PM_PTE_LEAF,
				.mc = mc };
	int ret;

	s2_map_check(gfn, level, pte);
	/* The common case, every table on the path present: one descent and
	 * one compare-and-exchange. */
	ret = s2_map_direct(s2, gfn, &m);
	if (ret != -EAGAIN)
		return ret;
	/* Retry when a table on the path was being detached, or was detached
	 * between two reads of its entry (the walk then ends with no install). */
	do
		ret = s2_map_walk(s2, gfn, &m);
	while (ret == -EAGAIN || (!ret && !m.installed));
	return ret;
}

int pm_s2_map_hooked(struct pm_s2 *s2, gfn_t gfn, int level, uint64_t pte,
		     const struct pm_s2_hook *hook)
{
	struct s2_map_req m = { .level = level, .pte = pte | PM_PTE_VALID | PM_PTE_LEAF,
				.hook = hook };
	int ret;

	s2_map_check(gfn, level, pte);
	/* No retry here: the hook's owner decides (a fault starts over). A
	 * walk that ended without installing lost its path meanwhile. */
	ret = s2_map_walk(s2, gfn, &m);
	return !ret && !m.installed ? -EAGAIN : ret;
}

/* ---- split ---- */

/* Fills a fresh table with the 512 leaves one level below huge leaf `huge`. */
static void split_fill(pm_pfn_t table, uint64_t huge, int child_level)
{
	s2_pte_t *ptes = table_ptes(table);
	uint64_t step = pm_s2_level_pages(child_level);
	uint64_t addr = pm_pte_addr(huge);
	int i;

	for (i = 0; i < S2_PTRS; i++)
		atomic_store_explicit(&ptes[i], pte_with_addr(huge, addr + i * step),
				      memory_order_relaxed);
}

/*
 * Replaces the huge leaf *cur at ctx->ptep by a table of 512 leaves of the
 * level below. 0 if done; -EAGAIN if the entry stopped being a leaf (*cur
 * is its new value); -ENOMEM.
 */
static int split_leaf(struct pm_walk_ctx *ctx, uint64_t *cur, struct pm_s2_mc *mc)
{
	pm_pfn_t pfn;

	PM_BUG_ON(ctx->level < 1);
	if (table_alloc(mc, &pfn))
		return -ENOMEM;
	do {
		if (!pm_pte_is_leaf(*cur, ctx->level)) {
			memset(table_ptes(pfn), 0, PM_PAGE_SIZE);
			table_unused(mc, pfn);
			return -EAGAIN;
		}
		split_fill(pfn, *cur, ctx->level - 1);
	} while (!pte_cas(ctx->ptep, cur, pte_table(pfn)));
	s2_count_table(ctx->s2, 1);
	s2_count_leaf(ctx->s2, ctx->level, -1);
	s2_count_leaf(ctx->s2, ctx->level - 1, S2_PTRS);
	atomic_fetch_add_explicit(&ctx->s2->splits, 1, memory_order_relaxed);
	return 0;
}

int pm_s2_split_hooked(struct pm_walk_ctx *ctx, const struct pm_s2_hook *hook)
{
	struct pm_s2_change c = { .kind = PM_S2_SPLIT, .gfn = ctx->gfn, .level = ctx->level,
				  .old = ctx->old };
	bool published;
	pm_pfn_t pfn;
	int r;

	PM_BUG_ON(ctx->level < 1 || !pm_pte_is_leaf(ctx->old, ctx->level));
	if (table_alloc(NULL, &pfn))
		return -ENOMEM;
	split_fill(pfn, ctx->old, ctx->level - 1);
	c.new = pte_table(pfn);
	/* Always frozen: nobody may use the 512 new leaves before the hook
	 * has split the hardware's entry too. */
	r = hooked_change(ctx, hook, &c, false, &published);
	if (!published) {
		memset(table_ptes(pfn), 0, PM_PAGE_SIZE);
		table_unused(NULL, pfn);
		return r;
	}
	s2_count_table(ctx->s2, 1);
	s2_count_leaf(ctx->s2, ctx->level, -1);
	s2_count_leaf(ctx->s2, ctx->level - 1, S2_PTRS);
	atomic_fetch_add_explicit(&ctx->s2->splits, 1, memory_order_relaxed);
	return 0;
}

bool pm_s2_clear_leaf(struct pm_walk_ctx *ctx)
{
	uint64_t cur = ctx->old;

	if (!pm_pte_is_leaf(cur, ctx->level) || !pte_cas(ctx->ptep, &cur, 0))
		return false;
	s2_count_leaf(ctx->s2, ctx->level, -1);
	return true;
}

struct s2_split_req {
	int level;
	bool done;
};

static int split_visit(struct pm_walk_ctx *ctx)
{
	struct s2_split_req *sp = ctx->arg;
	uint64_t cur = ctx->old;
	int ret;

	if (sp->done)
		return 0;         /* the children of the new table */
	if (ctx->level != sp->level || !pm_pte_is_leaf(cur, ctx->level))
		return -ENOENT;
	ret = split_leaf(ctx, &cur, NULL);
	if (ret == -EAGAIN)   /* someone split it first, or it went away */
		return -ENOENT;
	sp->done = !ret;
	return ret;
}

int pm_s2_split(struct pm_s2 *s2, gfn_t gfn, int level)
{
	struct s2_split_req sp = { .level = level };
	struct pm_walker w = { .visit = split_visit, .arg = &sp, .flags = PM_WALK_LEAF };
	int ret;

	PM_BUG_ON(level < 1 || level >= PM_S2_ROOT_LEVEL);
	PM_BUG_ON(gfn >= S2_GFN_LIMIT);
	ret = pm_s2_walk(s2, gfn, gfn + 1, &w);
	return ret || sp.done ? ret : -ENOENT;  /* the path vanished meanwhile */
}

/* ---- zap ---- */

struct s2_zap_req {
	gfn_t start, end;
	pm_s2_filter_fn filter;
	void *arg;
	struct pm_s2_zap_result *res;
};

static bool zap_wants(const struct s2_zap_req *z, uint64_t pte, int level)
{
	return pm_pte_is_leaf(pte, level) && (!z->filter || z->filter(pte, z->arg));
}

/* Removes the leaf, or splits it when only part is in range (the walker
 * then descends into the new table). */
static int zap_leaf(struct pm_walk_ctx *ctx)
{
	struct s2_zap_req *z = ctx->arg;
	uint64_t cur = ctx->old;
	int ret;

	while (zap_wants(z, cur, ctx->level)) {
		bool whole = ctx_inside(ctx, z->start, z->end);

		if (!whole) {
			ret = split_leaf(ctx, &cur, NULL);
			if (ret == 0) {
				z->res->split++;
				return 0;
			}
			/* No frame for the split: remove the whole leaf, more
			 * than was asked (it is faulted in again, smaller);
			 * a zap must not fail. */
			if (ret == -ENOMEM)
				whole = true;
		}
		if (whole && pte_cas(ctx->ptep, &cur, 0)) {
			s2_count_leaf(ctx->s2, ctx->level, -1);
			z->res->zapped++;
			return 0;
		}
	}
	return 0;
}

/* Thaws entries [0, n) of a table this zapper froze. */
static void table_thaw(s2_pte_t *ptes, int n)
{
	int i;

	for (i = 0; i < n; i++)
		PM_BUG_ON(!pte_detaching(atomic_exchange(&ptes[i], 0)));
}

/* Freezes every entry of a table of vacant entries; false (nothing frozen)
 * if one is in use or annotated. */
static bool table_freeze_empty(s2_pte_t *ptes)
{
	uint64_t cur;
	int i;

	for (i = 0; i < S2_PTRS; i++) {
		cur = pte_read(&ptes[i]);
		do {
			if (!pte_vacant(cur)) {
				table_thaw(ptes, i);
				return false;
			}
		} while (!pte_cas(&ptes[i], &cur, S2_DETACHING));
	}
	return true;
}

/* Clears the parent entry of a frozen table; false if a model froze the parent. */
static bool table_unlink(struct pm_walk_ctx *ctx)
{
	pm_pfn_t pfn = pm_pte_addr(ctx->old);
	uint64_t cur = pte_read(ctx->ptep);

	while (pte_is_table_at(cur, ctx->level, pfn)) {
		if (pte_cas(ctx->ptep, &cur, 0))
			return true;
	}
	/* Nobody but us can detach or replace a table whose entries we froze. */
	PM_BUG_ON(!pm_pte_frozen(cur));
	return false;
}

static void table_free_cb(void *arg)
{
	pm_pool_free((pm_pfn_t)(uintptr_t)arg, 0);
}

/* Detaches the table if its span is in range and all its entries are vacant. */
static int zap_table_post(struct pm_walk_ctx *ctx)
{
	struct s2_zap_req *z = ctx->arg;
	pm_pfn_t pfn = pm_pte_addr(ctx->old);
	s2_pte_t *ptes = table_ptes(pfn);

	if (!ctx_inside(ctx, z->start, z->end) || !table_freeze_empty(ptes))
		return 0;
	if (!table_unlink(ctx)) {
		table_thaw(ptes, S2_PTRS);
		return 0;
	}
	atomic_store_explicit(&ctx->s2->detached, true, memory_order_relaxed);
	pm_rcu_call(table_free_cb, (void *)(uintptr_t)pfn);
	s2_count_table(ctx->s2, -1);
	z->res->tables_freed++;
	return 0;
}

static int zap_visit(struct pm_walk_ctx *ctx)
{
	if (ctx->visit == PM_WALK_TABLE_POST)
		return zap_table_post(ctx);
	return zap_leaf(ctx);
}

/* A one-page zap without the walker: the 4K leaf (or nothing) at gfn, as
 * zap_leaf would treat it. false when a huge leaf covers gfn (it must be
 * split: the walk does that). A one-page range covers no whole table, so
 * no table is freed either way. */
static bool s2_zap_one(struct pm_s2 *s2, gfn_t gfn, struct s2_zap_req *z)
{
	struct pm_walk_ctx ctx = { .s2 = s2, .gfn = gfn, .arg = z, .visit = PM_WALK_LEAF };
	bool done = true;

	assert_range(gfn, gfn + 1);
	pm_rcu_read_lock();
	ctx.ptep = s2_descend(s2, gfn, 0, &ctx.old, &ctx.level);
	if (ctx.level == 0)
		zap_leaf(&ctx);
	else
		done = !pm_pte_is_leaf(ctx.old, ctx.level);
	pm_rcu_read_unlock();
	return done;
}

int pm_s2_zap(struct pm_s2 *s2, gfn_t start, gfn_t end, pm_s2_filter_fn filter,
	      void *arg, struct pm_s2_zap_result *res)
{
	struct pm_s2_zap_result local = { 0 };
	struct s2_zap_req z = { .start = start, .end = end, .filter = filter,
				.arg = arg, .res = res ? res : &local };
	struct pm_walker w = { .visit = zap_visit, .arg = &z,
			       .flags = PM_WALK_LEAF | PM_WALK_TABLE_POST };

	if (res)
		memset(res, 0, sizeof(*res));
	/* Only the root, and no leaf in it: nothing to remove or free, no
	 * walk. A map that adds a table or leaf meanwhile is the caller's to
	 * order (see the top of pgtable.h). */
	if (atomic_load_explicit(&s2->tables, memory_order_acquire) == 1 &&
	    !atomic_load_explicit(&s2->leaves[0], memory_order_acquire) &&
	    !atomic_load_explicit(&s2->leaves[1], memory_order_acquire) &&
	    !atomic_load_explicit(&s2->leaves[2], memory_order_acquire))
		return 0;
	if (end - start == 1 && s2_zap_one(s2, start, &z))
		return 0;
	return pm_s2_walk(s2, start, end, &w);
}

/* ---- age, lookup, count ---- */

static int age_visit(struct pm_walk_ctx *ctx)
{
	uint64_t *aged = ctx->arg;
	uint64_t cur = ctx->old;

	while (pm_pte_is_leaf(cur, ctx->level) && (cur & PM_PTE_ACCESSED)) {
		if (pte_cas(ctx->ptep, &cur, cur & ~PM_PTE_ACCESSED)) {
			(*aged)++;
			break;
		}
	}
	return 0;
}

uint64_t pm_s2_age(struct pm_s2 *s2, gfn_t start, gfn_t end)
{
	uint64_t aged = 0;
	struct pm_walker w = { .visit = age_visit, .arg = &aged, .flags = PM_WALK_LEAF };

	pm_s2_walk(s2, start, end, &w);
	return aged;
}

struct s2_lookup {
	uint64_t pte;
	int level;
	bool found;
};

void pm_s2_mark(struct pm_s2 *s2, gfn_t gfn, uint64_t bits)
{
	uint64_t old;
	s2_pte_t *ptep;
	int level;

	PM_BUG_ON(bits & ~S2_AD_BITS);
	pm_rcu_read_lock();
	ptep = s2_descend(s2, gfn, 0, &old, &level);
	/* Never OR into an entry a concurrent zap has just cleared. */
	while (pm_pte_is_leaf(old, level) && (old & bits) != bits && !pte_cas(ptep, &old, old | bits))
		;
	pm_rcu_read_unlock();
}

bool pm_s2_lookup(struct pm_s2 *s2, gfn_t gfn, uint64_t *pte, int *level)
{
	uint64_t e;
	int l;
	bool found;

	PM_BUG_ON(gfn >= S2_GFN_LIMIT);
	pm_rcu_read_lock();
	s2_descend(s2, gfn, 0, &e, &l);
	pm_rcu_read_unlock();
	found = pm_pte_is_leaf(e, l);
	if (found && pte)
		*pte = e;
	if (found && level)
		*level = l;
	return found;
}

static int get_leaf_visit(struct pm_walk_ctx *ctx)
{
	struct s2_lookup *l = ctx->arg;

	l->pte = ctx->old;
	l->level = ctx->level;
	l->found = true;
	return 0;
}

static int count_visit(struct pm_walk_ctx *ctx)
{
	uint64_t *counts = ctx->arg;

	if (pm_pte_is_leaf(ctx->old, ctx->level))
		counts[ctx->level]++;
	return 0;
}

void pm_s2_count(struct pm_s2 *s2, gfn_t start, gfn_t end, uint64_t counts[3])
{
	struct pm_walker w = { .visit = count_visit, .arg = counts, .flags = PM_WALK_LEAF };

	counts[0] = counts[1] = counts[2] = 0;
	pm_s2_walk(s2, start, end, &w);
}

void pm_s2_get_leaf(struct pm_s2 *s2, gfn_t gfn, uint64_t *pte, int *level)
{
	struct s2_lookup l = { .found = false };
	struct pm_walker w = { .visit = get_leaf_visit, .arg = &l, .flags = PM_WALK_LEAF };

	PM_BUG_ON(gfn >= S2_GFN_LIMIT);
	pm_s2_walk(s2, gfn, gfn + 1, &w);
	PM_BUG_ON(!l.found);
	*pte = l.pte;
	*level = l.level;
}

/* ---- set-owner (annotate) ---- */

struct s2_annotate_req {
	uint64_t annot;
	struct pm_s2_mc *mc;
};

static int annotate_visit(struct pm_walk_ctx *ctx)
{
	struct s2_annotate_req *a = ctx->arg;
	uint64_t cur = ctx->old;

	if (ctx->level > 0) {          /* the walker descends into the new table */
		if (pm_pte_is_table(cur, ctx->level))
			return 0;
		if (pm_pte_frozen(cur))
			return -EAGAIN;
		if (pm_pte_is_leaf(cur, ctx->level)) {
			int ret = split_leaf(ctx, &cur, a->mc);

			if (ret != -EAGAIN)
				return ret;
			ctx->old = cur;    /* it changed under us: look again */
			return annotate_visit(ctx);
		}
		return install_table(ctx, a->mc);
	}
	do {
		if (pm_pte_frozen(cur))
			return -EAGAIN;
	} while (!pte_cas(ctx->ptep, &cur, a->annot));
	if (pm_pte_valid(cur))
		s2_count_leaf(ctx->s2, 0, -1);
	return 0;
}

int pm_s2_annotate(struct pm_s2 *s2, gfn_t start, gfn_t end, uint64_t annot, struct pm_s2_mc *mc)
{
	struct s2_annotate_req a = { .annot = annot, .mc = mc };
	struct pm_walker w = { .visit = annotate_visit, .arg = &a, .flags = PM_WALK_LEAF };

	PM_BUG_ON(annot & (PM_PTE_VALID | PM_PTE_FROZEN));
	assert_range(start, end);
	return pm_s2_walk(s2, start, end, &w);
}

/* ---- update leaves (set-state) ---- */

#define S2_UPDATABLE (PM_PTE_WRITE | PM_PTE_EXEC | PM_PTE_PRIVATE | \
		      PM_PTE_SW_STATE_MASK | PM_PTE_SW_MASK)

struct s2_update_req {
	gfn_t start, end;
	uint64_t clear, set;
	struct pm_s2_mc *mc;
};

static int update_visit(struct pm_walk_ctx *ctx)
{
	struct s2_update_req *u = ctx->arg;
	uint64_t cur = ctx->old;
	int ret;

	if (pm_pte_is_table(cur, ctx->level))
		return 0;              /* split meanwhile: the walker descends */
	if (!pm_pte_is_leaf(cur, ctx->level))
		return -ENOENT;
	if (((cur & ~u->clear) | u->set) == cur)
		return 0;              /* nothing to change: no split either */
	if (!ctx_inside(ctx, u->start, u->end)) {
		ret = split_leaf(ctx, &cur, u->mc);  /* the walker descends */
		if (ret != -EAGAIN)
			return ret;
		ctx->old = cur;        /* it changed under us: look again */
		return update_visit(ctx);
	}
	while (!pte_cas(ctx->ptep, &cur, (cur & ~u->clear) | u->set)) {
		if (!pm_pte_is_leaf(cur, ctx->level))
			return -ENOENT;
	}
	return 0;
}

int pm_s2_update_leaves(struct pm_s2 *s2, gfn_t start, gfn_t end, uint64_t clear,
			uint64_t set, struct pm_s2_mc *mc)
{
	struct s2_update_req u = { .start = start, .end = end, .clear = clear,
				   .set = set, .mc = mc };
	struct pm_walker w = { .visit = update_visit, .arg = &u, .flags = PM_WALK_LEAF };

	PM_BUG_ON((clear | set) & ~S2_UPDATABLE);
	assert_range(start, end);
	return pm_s2_walk(s2, start, end, &w);
}

/* ---- relax permissions ---- */

static int relax_visit(struct pm_walk_ctx *ctx)
{
	uint64_t perms = *(uint64_t *)ctx->arg;
	uint64_t cur = ctx->old;

	do {
		if (!pm_pte_is_leaf(cur, ctx->level))
			return -ENOENT;
	} while ((cur & perms) != perms && !pte_cas(ctx->ptep, &cur, cur | perms));
	return 0;
}

int pm_s2_relax_perms(struct pm_s2 *s2, gfn_t gfn, uint64_t perms)
{
	struct pm_walker w = { .visit = relax_visit, .arg = &perms, .flags = PM_WALK_LEAF };

	if (perms & ~(PM_PTE_WRITE | PM_PTE_EXEC))
		return -EINVAL;
	PM_BUG_ON(gfn >= S2_GFN_LIMIT);
	return pm_s2_walk(s2, gfn, gfn + 1, &w);
}

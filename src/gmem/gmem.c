/* SPDX-License-Identifier: MIT */
/*
 * guest_memfd: pages, fallocate, punch hole, bindings and lifetime.
 * See gmem.h for the design (ownership, locks) and gmem_internal.h for the
 * index format.
 */
#include <linux/falloc.h>
#include <privmem/privmem.h>
#include "gmem/gmem_internal.h"
#include "host/pool.h"
#include "kvm/vm.h"
#include "lib/rcu.h"
#include "memslot/memslot.h"

static atomic_uint_fast64_t gmem_next_ino = 1000;

/* ---- lifetime ---- */

static unsigned int gmem_max_order(uint64_t flags)
{
	if (flags & PM_GUEST_MEMFD_FLAG_NO_HUGE)
		return PM_ORDER_4K;
	if (flags & PM_GUEST_MEMFD_FLAG_NO_1G)
		return PM_ORDER_2M;
	return PM_ORDER_1G;
}

/* One stripe per 2M block, up to GMEM_MAX_STRIPES (a power of two); more
 * blocks are hashed over them. */
static void gmem_size_stripes(struct pm_gmem *g)
{
	uint64_t blocks = (g->npages + (1ULL << GE_LEVEL_SHIFT(1)) - 1) >> GE_LEVEL_SHIFT(1);
	unsigned int log2 = 0;

	while ((1ULL << log2) < blocks && (1U << log2) < GMEM_MAX_STRIPES)
		log2++;
	g->nr_stripes = 1U << log2;
	g->stripe_shift = 64 - log2;
	g->stripe_hash = blocks > g->nr_stripes;
}

static struct pm_gmem_stripe *gmem_stripes_new(unsigned int n)
{
	struct pm_gmem_stripe *st = aligned_alloc(_Alignof(struct pm_gmem_stripe), n * sizeof(*st));

	if (!st)
		return NULL;
	memset(st, 0, n * sizeof(*st));
	for (unsigned int i = 0; i < n; i++)
		pthread_rwlock_init(&st[i].lock, NULL);
	return st;
}

int pm_gmem_create(struct pm_vm *vm, uint64_t size, uint64_t flags, struct pm_gmem **out)
{
	struct pm_gmem *g = aligned_alloc(_Alignof(struct pm_gmem), sizeof(*g));
	int r = -ENOMEM;

	if (!g)
		return -ENOMEM;
	memset(g, 0, sizeof(*g));
	g->size = size;
	g->npages = size >> PM_PAGE_SHIFT;
	g->nr_top = (g->npages + (1ULL << GE_LEVEL_SHIFT(2)) - 1) >> GE_LEVEL_SHIFT(2);
	g->top = calloc(g->nr_top, sizeof(g->top[0]));
	g->top_used = calloc((g->nr_top + 63) / 64, sizeof(g->top_used[0]));
	if (!g->top || !g->top_used)
		goto err_free_index;
	gmem_size_stripes(g);
	g->stripes = gmem_stripes_new(g->nr_stripes);
	if (!g->stripes)
		goto err_free_index;
	pm_ref_init(&g->refs, 1);
	g->flags = flags;
	g->max_order = gmem_max_order(flags);
	g->ino = atomic_fetch_add(&gmem_next_ino, 1);
	g->vm = vm;
	r = gmem_attrs_init(g);
	if (r)
		goto err_free_stripes;
	r = gmem_host_init(g);
	if (r)
		goto err_attrs;
	PM_BUG_ON(pm_brlock_init(&g->bindings_lock) != 0);
	pthread_mutex_init(&g->pos_lock, NULL);
	gmem_mpol_init(g);
	pm_vm_get(vm);
	*out = g;
	return 0;

err_attrs:
	gmem_attrs_destroy(g);
err_free_stripes:
	for (unsigned int i = 0; i < g->nr_stripes; i++)
		pthread_rwlock_destroy(&g->stripes[i].lock);
	free(g->stripes);
err_free_index:
	free(g->top_used);
	free(g->top);
	free(g);
	return r;
}

void pm_gmem_get(struct pm_gmem *g)
{
	pm_ref_get(&g->refs);
}

bool pm_gmem_tryget(struct pm_gmem *g)
{
	long n = atomic_load_explicit(&g->refs.n, memory_order_relaxed);

	while (n > 0)
		if (atomic_compare_exchange_weak_explicit(&g->refs.n, &n, n + 1,
							  memory_order_acquire, memory_order_relaxed))
			return true;
	return false;
}

/* The pool's frames for a file, from the nodes its NUMA policy at `first`
 * says (gmem_numa.c): out of the direct map for a file made with
 * GUEST_MEMFD_FLAG_NO_DIRECT_MAP (pm_pool_hide), from the moment they are
 * allocated, before any index entry publishes them, until they are freed. */
static int gmem_alloc_frames(struct pm_gmem *g, uint64_t first, unsigned int order, pm_pfn_t *pfn)
{
	struct pm_node_policy pol;
	int r = pm_pool_alloc_policy(order, gmem_mpol_for(g, first, order, &pol), pfn);

	if (r || !(g->flags & GUEST_MEMFD_FLAG_NO_DIRECT_MAP))
		return r;
	r = pm_pool_hide(*pfn, order);
	if (r)
		pm_pool_free(*pfn, order);
	return r;
}

static void gmem_free_frames(struct pm_gmem *g, pm_pfn_t pfn, unsigned int order)
{
	if (g->flags & GUEST_MEMFD_FLAG_NO_DIRECT_MAP)
		pm_pool_reveal(pfn, order);
	pm_pool_free(pfn, order);
}

/* Returns a run of frames to the pool, after the model took it back. The
 * run is out of the index (and out of the statistics) already. */
static void gmem_free_run(struct pm_gmem *g, pm_pfn_t pfn, unsigned int order)
{
	const struct pm_model_ops *m = g->vm->model;

	/* Frames the hardware still holds are leaked on purpose (the model
	 * counts them): the host must never reuse them. */
	if (m->gmem_hold && m->gmem_hold(g->vm, pfn, order))
		return;
	if (m->gmem_invalidate)
		m->gmem_invalidate(pfn, pfn + (1ULL << order));
	gmem_free_frames(g, pfn, order);
}

/* ---- occupancy bits (gmem_internal.h) ---- */

/* A slot's occupancy bit: the word and the bit in it. */
struct gmem_used {
	_Atomic uint64_t *word;
	uint64_t bit;
};

static struct gmem_used gmem_used_of(_Atomic uint64_t *bits, uint64_t i)
{
	return (struct gmem_used){ .word = &bits[i / 64], .bit = 1ULL << (i % 64) };
}

/* Before the slot may be filled: a read first, so that fills of a range
 * whose bits are set already write nothing shared. The stripe of the slot
 * held, at least shared. */
static void gmem_used_mark(struct gmem_used u)
{
	if (!(atomic_load_explicit(u.word, memory_order_relaxed) & u.bit))
		atomic_fetch_or_explicit(u.word, u.bit, memory_order_relaxed);
}

/* After the slot was emptied; its whole span held exclusively. Atomic: the
 * word's other bits belong to spans other stripes guard. */
static void gmem_used_clear(struct gmem_used u)
{
	atomic_fetch_and_explicit(u.word, ~u.bit, memory_order_relaxed);
}

/* The first i in [i, end) whose bit is set, or end. */
static uint64_t gmem_next_used(_Atomic uint64_t *bits, uint64_t i, uint64_t end)
{
	while (i < end) {
		uint64_t w = atomic_load_explicit(&bits[i / 64], memory_order_relaxed) >> (i % 64);

		if (w)
			return PM_MIN(i + (uint64_t)__builtin_ctzll(w), end);
		i = (i | 63) + 1;
	}
	return end;
}

/* A node with every entry empty and its occupancy bits clear. */
static _Atomic uint64_t *gmem_node_new(void)
{
	return calloc(GE_ENTRIES + GE_USED_WORDS, sizeof(_Atomic uint64_t));
}

/* Frees every page and node below entry e of `level` (release: no other
 * users, and no statistics left to keep). */
static void gmem_free_entry(struct pm_gmem *g, uint64_t e, unsigned int level)
{
	if (ge_is_folio(e)) {
		if (!(e & GE_POISON))   /* a poisoned frame is never reused */
			gmem_free_run(g, ge_pfn(e), GE_LEVEL_SHIFT(level));
	} else if (ge_is_table(e)) {
		_Atomic uint64_t *node = ge_table(e);

		for (uint64_t i = gmem_next_used(ge_node_used(node), 0, GE_ENTRIES); i < GE_ENTRIES;
		     i = gmem_next_used(ge_node_used(node), i + 1, GE_ENTRIES))
			gmem_free_entry(g, atomic_load_explicit(&node[i], memory_order_relaxed), level - 1);
		free(node);
	}
}

/* Clears every binding: the slots live on without their file. */
static void gmem_clear_bindings(struct pm_gmem *g)
{
	struct pm_gmem_binding *b, *next;

	gmem_bindings_write_lock(g);
	for (b = g->bindings; b; b = next) {
		struct pm_memslot *s = b->slot;
		struct pm_inval_ticket t;

		next = b->next;
		pm_inval_begin(g->vm, s->base_gfn, s->base_gfn + s->npages, PM_INVAL_ALL,
			       PM_INVAL_CAUSE_RELEASE, &t);
		pm_rcu_assign_pointer(s->gmem, NULL);
		pm_inval_end(g->vm, &t);
		free(b);
	}
	g->bindings = NULL;
	gmem_bindings_write_unlock(g);
}

static void gmem_release(struct pm_gmem *g)
{
	struct pm_vm *vm = g->vm;

	PM_BUG_ON(g->views);
	gmem_clear_bindings(g);
	/* Faults that found g through a slot have failed pm_gmem_tryget or
	 * dropped their reference; wait until none can still be looking. */
	pm_synchronize_rcu();
	/* After the grace period: a vCPU's translation that found the file
	 * through a slot (pKVM's) is done with the host map and the window. */
	gmem_host_destroy(g);
	gmem_attrs_destroy(g);
	for (uint64_t i = 0; i < g->nr_top; i++)
		gmem_free_entry(g, atomic_load_explicit(&g->top[i], memory_order_relaxed), 2);
	free(g->top);
	free(g->top_used);
	for (unsigned int i = 0; i < g->nr_stripes; i++)
		pthread_rwlock_destroy(&g->stripes[i].lock);
	free(g->stripes);
	pm_brlock_destroy(&g->bindings_lock);
	pthread_mutex_destroy(&g->pos_lock);
	gmem_mpol_destroy(g);
	free(g);
	pm_vm_put(vm);
}

void pm_gmem_put(struct pm_gmem *g)
{
	if (pm_ref_put(&g->refs))
		gmem_release(g);
}

uint64_t pm_gmem_flags(const struct pm_gmem *g) { return g->flags; }
uint64_t pm_gmem_size(const struct pm_gmem *g) { return g->size; }
struct pm_vm *pm_gmem_vm(const struct pm_gmem *g) { return g->vm; }

/* ---- bindings ---- */

int pm_gmem_bind(struct pm_gmem *g, struct pm_vm *vm, struct pm_memslot *slot, uint64_t offset)
{
	uint64_t start = offset >> PM_PAGE_SHIFT, end = start + slot->npages;
	struct pm_gmem_binding *b;

	if (g->vm != vm)
		return -EINVAL;
	if ((int64_t)offset < 0 || !PM_ALIGNED(offset, PM_PAGE_SIZE) ||
	    offset + (slot->npages << PM_PAGE_SHIFT) > g->size)
		return -EINVAL;
	b = pm_zalloc(sizeof(*b));
	if (!b)
		return -ENOMEM;

	gmem_bindings_write_lock(g);
	for (struct pm_gmem_binding *o = g->bindings; o; o = o->next) {
		if (pm_ranges_overlap(start, end, o->start, o->end)) {
			gmem_bindings_write_unlock(g);
			free(b);
			return -EEXIST;
		}
	}
	b->slot = slot;
	b->start = start;
	b->end = end;
	b->next = g->bindings;
	g->bindings = b;
	slot->gmem_pgoff = start;
	/* In-place mode: every guest_memfd slot takes shared pages from the
	 * file too (the later snapshot of the series). */
	slot->gmem_only = (g->flags & GUEST_MEMFD_FLAG_MMAP) || vm->in_place;
	atomic_store_explicit(&slot->gmem, g, memory_order_release);
	gmem_bindings_write_unlock(g);
	return 0;
}

void pm_gmem_unbind(struct pm_memslot *slot)
{
	struct pm_gmem *g;

	/* The file may be releasing concurrently; RCU keeps it readable. */
	pm_rcu_read_lock();
	g = pm_rcu_dereference(slot->gmem);
	if (g) {
		gmem_bindings_write_lock(g);
		for (struct pm_gmem_binding **pb = &g->bindings; *pb; pb = &(*pb)->next) {
			if ((*pb)->slot == slot) {
				struct pm_gmem_binding *b = *pb;

				*pb = b->next;
				free(b);
				break;
			}
		}
		atomic_store_explicit(&slot->gmem, NULL, memory_order_release);
		gmem_bindings_write_unlock(g);
	}
	pm_rcu_read_unlock();
}

/* ---- index locking (see gmem.h) ---- */

/* Fibonacci hashing: neighbouring blocks, and blocks a power of two apart,
 * land on different stripes. */
#define GMEM_STRIPE_MIX 0x9e3779b97f4a7c15ULL

static unsigned int gmem_stripe_of(const struct pm_gmem *g, uint64_t block)
{
	if (!g->stripe_hash)
		return (unsigned int)block;
	return (unsigned int)((block * GMEM_STRIPE_MIX) >> g->stripe_shift);
}

/* The stripe of file page `index` (whose counters count changes to an
 * entry starting at `index`). */
static struct pm_gmem_stripe *gmem_stripe_at(struct pm_gmem *g, uint64_t index)
{
	return &g->stripes[gmem_stripe_of(g, index >> GE_LEVEL_SHIFT(1))];
}

enum gmem_lock_mode {
	GMEM_LOOKUP,            /* shared: read entries */
	GMEM_ALLOC,             /* shared: read entries, fill empty ones */
	GMEM_REMOVE,            /* exclusive: remove and split entries, set POISON */
};

/* The stripes one index operation holds, a bit each. */
struct gmem_locked {
	uint64_t mask;
	bool excl;
};

_Static_assert(GMEM_MAX_STRIPES <= 64, "a stripe mask is one word");

static uint64_t gmem_all_stripes(const struct pm_gmem *g)
{
	return g->nr_stripes == 64 ? ~0ULL : (1ULL << g->nr_stripes) - 1;
}

static bool gmem_holds_all(const struct pm_gmem *g, const struct gmem_locked *lk)
{
	return lk->excl && lk->mask == gmem_all_stripes(g);
}

/* Stripes are taken in ascending order. */
static void gmem_lock_stripes(struct pm_gmem *g, const struct gmem_locked *lk)
{
	for (uint64_t m = lk->mask; m; m &= m - 1) {
		pthread_rwlock_t *l = &g->stripes[__builtin_ctzll(m)].lock;

		if (lk->excl)
			pthread_rwlock_wrlock(l);
		else
			pthread_rwlock_rdlock(l);
	}
}

static void gmem_unlock(struct pm_gmem *g, const struct gmem_locked *lk)
{
	for (uint64_t m = lk->mask; m; m &= m - 1)
		pthread_rwlock_unlock(&g->stripes[__builtin_ctzll(m)].lock);
}

/* May the entry of `level` starting at file page `first` hold a page of its
 * own size (the file's flags allow it and it lies inside the file)? */
static bool gmem_huge_fits(const struct pm_gmem *g, unsigned int level, uint64_t first)
{
	unsigned int order = GE_LEVEL_SHIFT(level);

	return order <= g->max_order && first + (1ULL << order) <= g->npages;
}

/*
 * Would an operation on [start, end) change a 1G entry? An allocation may
 * insert a 1G page into an empty top entry, a removal splits a 1G page it
 * does not wholly cover. With a stripe of each GiB of the range held, the
 * answer "no" cannot change: a top entry is emptied, and a 1G page
 * inserted, only under every stripe held exclusively.
 */
/* Does a removal of [start, end) split a 1G page in top entry t? */
static bool gmem_removal_splits_1g(struct pm_gmem *g, uint64_t t, uint64_t start, uint64_t end)
{
	uint64_t e = atomic_load_explicit(&g->top[t], memory_order_acquire);
	uint64_t first = t << GE_LEVEL_SHIFT(2);

	return ge_is_folio(e) && (start > first || end < first + (1ULL << GE_LEVEL_SHIFT(2)));
}

static bool gmem_changes_1g(struct pm_gmem *g, uint64_t start, uint64_t end,
			    enum gmem_lock_mode mode)
{
	uint64_t t0 = start >> GE_LEVEL_SHIFT(2), t1 = (end - 1) >> GE_LEVEL_SHIFT(2);

	if (mode == GMEM_LOOKUP || g->max_order < PM_ORDER_1G)
		return false;
	/* A removal covers every top entry but the first and the last whole:
	 * a punch of a huge file looks at two. */
	if (mode == GMEM_REMOVE)
		return gmem_removal_splits_1g(g, t0, start, end) || gmem_removal_splits_1g(g, t1, start, end);
	for (uint64_t t = t0; t <= t1; t++)
		if (!atomic_load_explicit(&g->top[t], memory_order_acquire) &&
		    gmem_huge_fits(g, 2, t << GE_LEVEL_SHIFT(2)))
			return true;
	return false;
}

/*
 * Locks file pages [start, end) for `mode`: the stripes of their blocks,
 * shared for lookups and allocations, exclusive for removals; and every
 * stripe exclusively where a 1G entry would change (one racer takes a 1G
 * run from the pool, not each of them), decided under the stripes, which
 * are dropped and all taken before anything changes.
 */
static void gmem_lock(struct pm_gmem *g, struct gmem_locked *lk, uint64_t start, uint64_t end,
		      enum gmem_lock_mode mode)
{
	uint64_t b0 = start >> GE_LEVEL_SHIFT(1), b1 = (end - 1) >> GE_LEVEL_SHIFT(1);

	lk->excl = mode == GMEM_REMOVE;
	if (b0 == b1) {
		lk->mask = 1ULL << gmem_stripe_of(g, b0);
	} else if (b1 - b0 >= g->nr_stripes - 1) {
		lk->mask = gmem_all_stripes(g);
	} else {
		lk->mask = 0;
		for (uint64_t b = b0; b <= b1; b++)
			lk->mask |= 1ULL << gmem_stripe_of(g, b);
	}
	gmem_lock_stripes(g, lk);
	if (!gmem_holds_all(g, lk) && gmem_changes_1g(g, start, end, mode)) {
		gmem_unlock(g, lk);
		lk->mask = gmem_all_stripes(g);
		lk->excl = true;
		gmem_lock_stripes(g, lk);
	}
}

/* The entry of `level` starting at file page `first` may be removed or
 * split: its whole span is locked exclusively. */
static void gmem_assert_span_held(struct pm_gmem *g, const struct gmem_locked *lk,
				  unsigned int level, uint64_t first)
{
	PM_BUG_ON(!lk->excl);
	if (level == 2)
		PM_BUG_ON(!gmem_holds_all(g, lk));
	else
		PM_BUG_ON(!(lk->mask >> gmem_stripe_of(g, first >> GE_LEVEL_SHIFT(1)) & 1));
}

/* ---- pages ---- */

/* Fills the empty entry `slot` of `level` covering page `index`: with a page
 * of the entry's size when the caller allows that size (level <= max_level)
 * and the file and the pool do, else with a node.
 * The stripe of index held, at least shared; all of them exclusively for a
 * 1G page. Racers insert by compare-and-exchange; a loser frees its own.
 * The slot's occupancy bit `used` is set before it (gmem_internal.h). */
static int gmem_fill(struct pm_gmem *g, const struct gmem_locked *lk, _Atomic uint64_t *slot,
		     struct gmem_used used, unsigned int level, unsigned int max_level, uint64_t index)
{
	unsigned int order = GE_LEVEL_SHIFT(level);
	uint64_t first = PM_ALIGN_DOWN(index, 1ULL << order);
	uint64_t expected = 0;
	_Atomic uint64_t *node;
	pm_pfn_t pfn;

	if (level == 0 || (level <= max_level && gmem_huge_fits(g, level, first))) {
		int r;

		PM_BUG_ON(level == 2 && !gmem_holds_all(g, lk));
		r = gmem_alloc_frames(g, first, order, &pfn);
		if (r == 0) {
			gmem_used_mark(used);
			if (atomic_compare_exchange_strong(slot, &expected, ge_make_folio(pfn, 0))) {
				struct pm_gmem_stripe *st = gmem_stripe_at(g, first);

				atomic_fetch_add_explicit(&st->pages, 1ULL << order, memory_order_relaxed);
				atomic_fetch_add_explicit(&st->node_pages[pm_pool_node_of(pfn)], 1ULL << order,
							  memory_order_relaxed);
				atomic_fetch_add_explicit(&st->folios[level], 1, memory_order_relaxed);
			} else {
				gmem_free_frames(g, pfn, order);  /* lost the race: use the winner's */
			}
			return 0;
		}
		if (level == 0)
			return r;
	}
	node = gmem_node_new();
	if (!node)
		return -ENOMEM;
	gmem_used_mark(used);
	if (!atomic_compare_exchange_strong(slot, &expected, ge_make_table(node)))
		free(node);     /* never published */
	return 0;
}

/* Finds (allocating if `alloc`, with pages of at most max_level) the page
 * entry covering index: returns its slot and level, or NULL with *err
 * (-ENOMEM) / 0 when absent and !alloc. The stripe of index held (shared or
 * exclusive). */
#define GMEM_ANY_LEVEL 2u
static _Atomic uint64_t *gmem_walk_max(struct pm_gmem *g, const struct gmem_locked *lk,
				       uint64_t index, bool alloc, unsigned int max_level,
				       unsigned int *level, int *err)
{
	uint64_t i = index >> GE_LEVEL_SHIFT(2);
	_Atomic uint64_t *slot = &g->top[i];
	struct gmem_used used = gmem_used_of(g->top_used, i);
	unsigned int l = 2;

	*err = 0;
	for (;;) {
		uint64_t e = atomic_load_explicit(slot, memory_order_acquire);

		if (ge_is_table(e)) {
			l--;
			i = (index >> GE_LEVEL_SHIFT(l)) & (GE_ENTRIES - 1);
			slot = &ge_table(e)[i];
			used = gmem_used_of(ge_node_used(ge_table(e)), i);
		} else if (ge_is_folio(e)) {
			*level = l;
			return slot;
		} else if (!alloc) {
			return NULL;
		} else {
			*err = gmem_fill(g, lk, slot, used, l, max_level, index);
			if (*err)
				return NULL;
		}
	}
}

static _Atomic uint64_t *gmem_walk(struct pm_gmem *g, const struct gmem_locked *lk, uint64_t index,
				   bool alloc, unsigned int *level, int *err)
{
	return gmem_walk_max(g, lk, index, alloc, GMEM_ANY_LEVEL, level, err);
}

/* The largest page level whose aligned block around index lies within
 * [start, end): an fallocate of 4K populates 4K, not the 2M around it. */
static unsigned int gmem_level_within(uint64_t index, uint64_t start, uint64_t end)
{
	unsigned int l = GMEM_ANY_LEVEL;

	for (; l > 0; l--) {
		uint64_t size = 1ULL << GE_LEVEL_SHIFT(l), first = PM_ALIGN_DOWN(index, size);

		if (first >= start && first + size <= end)
			break;
	}
	return l;
}

pm_pfn_t pm_gmem_peek_pfn(struct pm_gmem *g, uint64_t index)
{
	pm_pfn_t pfn = PM_PFN_INVALID;
	struct gmem_locked lk;
	_Atomic uint64_t *slot;
	unsigned int level;
	uint64_t e;
	int err;

	if (index >= g->npages)
		return PM_PFN_INVALID;
	gmem_lock(g, &lk, index, index + 1, GMEM_LOOKUP);
	slot = gmem_walk(g, &lk, index, false, &level, &err);
	if (slot) {
		e = atomic_load_explicit(slot, memory_order_acquire);
		if (!(e & GE_POISON))
			pfn = ge_pfn(e) + (index & ((1ULL << GE_LEVEL_SHIFT(level)) - 1));
	}
	gmem_unlock(g, &lk);
	return pfn;
}

uint64_t gmem_next_page(struct pm_gmem *g, uint64_t start, uint64_t end)
{
	const uint64_t gib = 1ULL << GE_LEVEL_SHIFT(2), block = 1ULL << GE_LEVEL_SHIFT(1);
	uint64_t i = start;

	end = PM_MIN(end, g->npages);
	while (i < end) {
		uint64_t block_end = PM_MIN(end, PM_ALIGN_DOWN(i, block) + block);
		struct gmem_locked lk;
		unsigned int level;
		int err;

		/* An empty GiB stays empty for the snapshot's purpose. */
		if (!atomic_load_explicit(&g->top[i >> GE_LEVEL_SHIFT(2)], memory_order_acquire)) {
			i = PM_ALIGN_DOWN(i, gib) + gib;
			continue;
		}
		gmem_lock(g, &lk, i, block_end, GMEM_LOOKUP);
		while (i < block_end && !gmem_walk(g, &lk, i, false, &level, &err))
			i++;
		gmem_unlock(g, &lk);
		if (i < block_end)
			return i;
	}
	return end;
}

/* Runs the model's prepare hook on the page in *slot once. The stripe of
 * index held (shared): the entry stays a page while the flag is or-ed in.
 * In-place mode prepares only private pages (12/46): a huge page whose
 * range is not all private is prepared a 4K page at a time, each private
 * fault again (the model skips what it has prepared), and keeps no flag. */
static int gmem_prepare(struct pm_gmem *g, _Atomic uint64_t *slot, uint64_t e,
			unsigned int level, uint64_t index, gfn_t gfn)
{
	const struct pm_model_ops *m = g->vm->model;
	uint64_t off = index & ((1ULL << GE_LEVEL_SHIFT(level)) - 1);
	int r;

	if ((e & GE_PREPARED) || !m->gmem_prepare)
		return 0;
	if (level > 0 && g->in_place && gmem_attrs_mixed(g, index, (int)level))
		return m->gmem_prepare(g->vm, ge_pfn(e) + off, gfn, 0);
	r = m->gmem_prepare(g->vm, ge_pfn(e), gfn - off, GE_LEVEL_SHIFT(level));
	if (!r)
		atomic_fetch_or_explicit(slot, GE_PREPARED, memory_order_release);
	return r;
}

/* A page entry found (or allocated) by gmem_with_page, for its callback. */
struct gmem_page {
	_Atomic uint64_t *slot;
	uint64_t e;                 /* the entry: a page, not poisoned */
	unsigned int level;
	pm_pfn_t pfn;               /* the frame of the file page asked for */
};

/* Runs fn on file page `index`, allocating it if needed, with its stripe
 * held (shared) so that the page stays while fn runs. fn's result, or
 * -EINVAL (past the end), -ENOMEM, -EHWPOISON (a poisoned page). */
static int gmem_with_page(struct pm_gmem *g, uint64_t index,
			  int (*fn)(struct pm_gmem *g, const struct gmem_page *pg, void *arg), void *arg)
{
	struct gmem_locked lk;
	struct gmem_page pg;
	int r;

	if (index >= g->npages)
		return -EINVAL;
	gmem_lock(g, &lk, index, index + 1, GMEM_ALLOC);
	pg.slot = gmem_walk(g, &lk, index, true, &pg.level, &r);
	if (pg.slot) {
		pg.e = atomic_load_explicit(pg.slot, memory_order_acquire);
		pg.pfn = ge_pfn(pg.e) + (index & ((1ULL << GE_LEVEL_SHIFT(pg.level)) - 1));
		r = pg.e & GE_POISON ? -EHWPOISON : fn(g, &pg, arg);
	}
	gmem_unlock(g, &lk);
	return r;
}

struct get_pfn_arg {
	uint64_t index;
	gfn_t gfn;
	bool prepare;
	pm_pfn_t *pfn;
	unsigned int *order;
};

static int get_pfn_page(struct pm_gmem *g, const struct gmem_page *pg, void *arg)
{
	struct get_pfn_arg *a = arg;
	int r = a->prepare ? gmem_prepare(g, pg->slot, pg->e, pg->level, a->index, a->gfn) : 0;

	if (!r) {
		*a->order = GE_LEVEL_SHIFT(pg->level);
		*a->pfn = pg->pfn;
	}
	return r;
}

int pm_gmem_get_pfn(struct pm_gmem *g, uint64_t index, gfn_t gfn, pm_pfn_t *pfn,
		    unsigned int *order)
{
	struct get_pfn_arg a = { .index = index, .gfn = gfn, .prepare = true, .pfn = pfn,
				 .order = order };

	return gmem_with_page(g, index, get_pfn_page, &a);
}

int pm_gmem_get_pfn_shared(struct pm_gmem *g, uint64_t index, pm_pfn_t *pfn,
			   unsigned int *order)
{
	struct get_pfn_arg a = { .index = index, .pfn = pfn, .order = order };

	return gmem_with_page(g, index, get_pfn_page, &a);
}

int pm_gmem_get_pfn_host(struct pm_gmem *g, uint64_t index, pm_pfn_t *pfn)
{
	unsigned int order;
	struct get_pfn_arg a = { .index = index, .pfn = pfn, .order = &order };

	return gmem_with_page(g, index, get_pfn_page, &a);
}

struct frame_arg {
	int (*fn)(void *arg, pm_pfn_t pfn);
	void *arg;
};

static int frame_page(struct pm_gmem *g, const struct gmem_page *pg, void *arg)
{
	struct frame_arg *a = arg;

	return a->fn(a->arg, pg->pfn);
}

int gmem_with_frame(struct pm_gmem *g, uint64_t index, int (*fn)(void *arg, pm_pfn_t pfn),
		    void *arg)
{
	struct frame_arg a = { .fn = fn, .arg = arg };

	return gmem_with_page(g, index, frame_page, &a);
}

struct populate_arg {
	gfn_t gfn;
	int (*fn)(void *arg, pm_pfn_t pfn, gfn_t gfn);
	void *arg;
};

static int populate_page(struct pm_gmem *g, const struct gmem_page *pg, void *arg)
{
	struct populate_arg *a = arg;
	int r;

	if (pg->e & GE_PREPARED)
		return -EEXIST;
	r = a->fn(a->arg, pg->pfn, a->gfn);
	/* A huge page stays unprepared: its other pages still need the hook,
	 * which leaves this one as fn made it. */
	if (!r && pg->level == 0)
		atomic_fetch_or_explicit(pg->slot, GE_PREPARED, memory_order_release);
	return r;
}

int pm_gmem_populate(struct pm_gmem *g, uint64_t index, gfn_t gfn,
		     int (*fn)(void *arg, pm_pfn_t pfn, gfn_t gfn), void *arg)
{
	struct populate_arg a = { .gfn = gfn, .fn = fn, .arg = arg };

	return gmem_with_page(g, index, populate_page, &a);
}

/* The whole range under its stripes: a punch overlapping it runs wholly
 * before or wholly after. */
static int gmem_allocate(struct pm_gmem *g, uint64_t start, uint64_t end)
{
	struct gmem_locked lk;
	int r = 0;

	gmem_lock(g, &lk, start, end, GMEM_ALLOC);
	for (uint64_t i = start; i < end;) {
		unsigned int level;
		_Atomic uint64_t *slot = gmem_walk_max(g, &lk, i, true,
						       gmem_level_within(i, start, end), &level, &r);

		if (!slot)
			break;
		i = PM_ALIGN_DOWN(i, 1ULL << GE_LEVEL_SHIFT(level)) + (1ULL << GE_LEVEL_SHIFT(level));
	}
	gmem_unlock(g, &lk);
	return r;
}

/* ---- pages made shared (in-place conversion) ---- */

void gmem_unprepare(struct pm_gmem *g, uint64_t start, uint64_t end)
{
	const struct pm_model_ops *m = g->vm->model;
	struct gmem_locked lk;

	end = PM_MIN(end, g->npages);
	if (start >= end || !m->gmem_invalidate)
		return;
	gmem_lock(g, &lk, start, end, GMEM_LOOKUP);
	for (uint64_t i = start; i < end;) {
		unsigned int level;
		int err;
		_Atomic uint64_t *slot = gmem_walk(g, &lk, i, false, &level, &err);
		uint64_t span, first, stop, e;

		if (!slot) {            /* level is not set then */
			i++;
			continue;
		}
		span = 1ULL << GE_LEVEL_SHIFT(level);
		first = PM_ALIGN_DOWN(i, span);
		stop = PM_MIN(end, first + span);
		e = atomic_load_explicit(slot, memory_order_acquire);
		if (!(e & GE_POISON)) {
			/* The whole page must be prepared again for its next
			 * private use; the pages that go shared go back to
			 * the host (the model skips frames it never took). */
			atomic_fetch_and_explicit(slot, ~GE_PREPARED, memory_order_release);
			m->gmem_invalidate(ge_pfn(e) + (i - first), ge_pfn(e) + (stop - first));
		}
		i = stop;
	}
	gmem_unlock(g, &lk);
}

/* ---- punch hole ---- */

/* Runs of frames taken out of the index, freed once the stripes are
 * dropped; the first few live on the stack (a conversion punches one or
 * two). */
struct gmem_run { pm_pfn_t pfn; unsigned int order; };
#define GMEM_RUNS_INLINE 16
struct gmem_runs {
	struct gmem_run *v;
	size_t n, cap;
	struct gmem_run inline_v[GMEM_RUNS_INLINE];
};

/* Records a run to free; -ENOMEM if there is no room (nothing recorded). */
static int gmem_runs_add(struct gmem_runs *runs, pm_pfn_t pfn, unsigned int order)
{
	if (!runs->v) {
		runs->v = runs->inline_v;
		runs->cap = GMEM_RUNS_INLINE;
	}
	if (runs->n == runs->cap) {
		size_t cap = runs->cap * 4;
		struct gmem_run *v = runs->v == runs->inline_v ? malloc(cap * sizeof(*v))
							       : realloc(runs->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		if (runs->v == runs->inline_v)
			memcpy(v, runs->inline_v, sizeof(runs->inline_v));
		runs->v = v;
		runs->cap = cap;
	}
	runs->v[runs->n].pfn = pfn;
	runs->v[runs->n].order = order;
	runs->n++;
	return 0;
}

/* Replaces the huge page in *slot (level >= 1, starting at file page
 * `first`) by a node of its sub-pages, published whole: a reader sees the
 * page or the complete node. -ENOMEM leaves it whole. */
static int gmem_split(struct pm_gmem *g, const struct gmem_locked *lk, _Atomic uint64_t *slot,
		      unsigned int level, uint64_t first)
{
	uint64_t e = atomic_load_explicit(slot, memory_order_relaxed);
	_Atomic uint64_t *node = gmem_node_new();
	uint64_t step = 1ULL << GE_LEVEL_SHIFT(level - 1);
	struct pm_gmem_stripe *st = gmem_stripe_at(g, first);

	gmem_assert_span_held(g, lk, level, first);
	if (!node)
		return -ENOMEM;
	for (unsigned int i = 0; i < GE_ENTRIES; i++)
		atomic_init(&node[i], ge_make_folio(ge_pfn(e) + i * step, e & GE_PREPARED));
	for (unsigned int w = 0; w < GE_USED_WORDS; w++)
		atomic_init(&ge_node_used(node)[w], ~0ULL);
	atomic_store_explicit(slot, ge_make_table(node), memory_order_release);
	atomic_fetch_sub_explicit(&st->folios[level], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&st->folios[level - 1], GE_ENTRIES, memory_order_relaxed);
	atomic_fetch_add_explicit(&st->splits, 1, memory_order_relaxed);
	return 0;
}

/* Every entry empty: its occupancy bits say so. */
static bool gmem_node_empty(_Atomic uint64_t *node)
{
	return gmem_next_used(ge_node_used(node), 0, GE_ENTRIES) == GE_ENTRIES;
}

/* Takes the page in *slot (level, starting at `first`; occupancy bit
 * `used`) out of the index: its frames are recorded to be freed, except a
 * poisoned page's. */
static int gmem_remove_folio(struct pm_gmem *g, const struct gmem_locked *lk,
			     _Atomic uint64_t *slot, struct gmem_used used, unsigned int level,
			     uint64_t first, struct gmem_runs *runs)
{
	uint64_t e = atomic_load_explicit(slot, memory_order_relaxed);
	struct pm_gmem_stripe *st = gmem_stripe_at(g, first);

	gmem_assert_span_held(g, lk, level, first);
	/* Recorded first: a page we cannot free later stays in the file. */
	if (!(e & GE_POISON) && gmem_runs_add(runs, ge_pfn(e), GE_LEVEL_SHIFT(level)))
		return -ENOMEM;
	atomic_store_explicit(slot, 0, memory_order_relaxed);
	gmem_used_clear(used);
	atomic_fetch_sub_explicit(&st->pages, 1ULL << GE_LEVEL_SHIFT(level), memory_order_relaxed);
	atomic_fetch_sub_explicit(&st->node_pages[pm_pool_node_of(ge_pfn(e))], 1ULL << GE_LEVEL_SHIFT(level),
				  memory_order_relaxed);
	atomic_fetch_sub_explicit(&st->folios[level], 1, memory_order_relaxed);
	return 0;
}

/* Removes pages [start, end) below *slot, an entry of `level` whose first
 * page is `first` (occupancy bit `used`). The stripes of [start, end) held
 * exclusively (all of them where a 1G page is split). Only entries whose
 * bit is set are visited: an empty node costs its few occupancy words. */
static int gmem_punch_entry(struct pm_gmem *g, const struct gmem_locked *lk, _Atomic uint64_t *slot,
			    struct gmem_used used, unsigned int level, uint64_t first, uint64_t start,
			    uint64_t end, struct gmem_runs *runs)
{
	uint64_t span = 1ULL << GE_LEVEL_SHIFT(level);
	/* Acquire: a top entry may have become a node under another stripe
	 * (an allocation elsewhere in the GiB); entries below it change only
	 * under stripes this punch holds. */
	uint64_t e = atomic_load_explicit(slot, memory_order_acquire);
	bool whole = start <= first && first + span <= end;
	int r = 0;

	if (ge_is_folio(e) && whole)
		return gmem_remove_folio(g, lk, slot, used, level, first, runs);
	if (ge_is_folio(e)) {
		r = gmem_split(g, lk, slot, level, first);
		if (r)
			return r;
		e = atomic_load_explicit(slot, memory_order_relaxed);
	}
	if (ge_is_table(e)) {
		_Atomic uint64_t *node = ge_table(e);
		uint64_t step = span / GE_ENTRIES;
		uint64_t lo = (PM_MAX(start, first) - first) / step;
		uint64_t hi = (PM_MIN(end, first + span) - first + step - 1) / step;

		for (uint64_t i = gmem_next_used(ge_node_used(node), lo, hi); i < hi && !r;
		     i = gmem_next_used(ge_node_used(node), i + 1, hi))
			r = gmem_punch_entry(g, lk, &node[i], gmem_used_of(ge_node_used(node), i), level - 1,
					     first + i * step, start, end, runs);
		/* A node goes only with a punch of its whole span (which may let
		 * a huge page take its place later); a partly punched node stays,
		 * even empty, so that converting page after page does not
		 * allocate and free it each time. */
		if (!r && whole) {
			gmem_assert_span_held(g, lk, level, first);
			PM_BUG_ON(!gmem_node_empty(node));
			atomic_store_explicit(slot, 0, memory_order_relaxed);
			gmem_used_clear(used);
			free(node);     /* no reader: its whole span is locked */
		}
	}
	return r;
}

int gmem_inval_begin(struct pm_gmem *g, uint64_t start, uint64_t end, unsigned int filter,
		     enum pm_inval_cause cause, struct pm_inval_ticket *local,
		     struct pm_inval_ticket **tickets, size_t *n)
{
	size_t cap = 0;

	*n = 0;
	for (struct pm_gmem_binding *b = g->bindings; b; b = b->next)
		cap += pm_ranges_overlap(start, end, b->start, b->end);
	*tickets = cap <= GMEM_TICKETS_INLINE ? local : calloc(cap, sizeof(**tickets));
	if (!*tickets)
		return -ENOMEM;
	for (struct pm_gmem_binding *b = g->bindings; b; b = b->next) {
		struct pm_memslot *s = b->slot;
		uint64_t lo = PM_MAX(start, b->start), hi = PM_MIN(end, b->end);

		if (lo >= hi)
			continue;
		pm_inval_begin(g->vm, s->base_gfn + (lo - b->start), s->base_gfn + (hi - b->start),
			       filter ? filter : (s->gmem_only ? PM_INVAL_ALL : PM_INVAL_PRIVATE),
			       cause, &(*tickets)[(*n)++]);
	}
	return 0;
}

void gmem_inval_end(struct pm_gmem *g, struct pm_inval_ticket *tickets, size_t n,
		    struct pm_inval_ticket *local)
{
	for (size_t i = 0; i < n; i++)
		pm_inval_end(g->vm, &tickets[i]);
	if (tickets != local)
		free(tickets);
}

/* Does the VM pin a page of [start, end) through one of the file's
 * bindings (pKVM: the pages its guest holds)? Inside the punch's
 * invalidation, so no fault maps one meanwhile. bindings_lock held. */
static bool gmem_range_pinned(struct pm_gmem *g, uint64_t start, uint64_t end)
{
	bool (*pinned)(struct pm_vm *, gfn_t, gfn_t) = g->vm->model->gmem_pinned;

	for (struct pm_gmem_binding *b = g->bindings; b && pinned; b = b->next) {
		struct pm_memslot *s = b->slot;
		uint64_t lo = PM_MAX(start, b->start), hi = PM_MIN(end, b->end);

		if (lo < hi && pinned(g->vm, s->base_gfn + (lo - b->start), s->base_gfn + (hi - b->start)))
			return true;
	}
	return false;
}

static int gmem_punch_hole(struct pm_gmem *g, uint64_t start, uint64_t end)
{
	struct pm_inval_ticket local[GMEM_TICKETS_INLINE], *tickets;
	struct gmem_locked lk;
	struct gmem_runs runs;
	unsigned int reader;
	uint64_t t1;
	size_t nt;
	int r;

	runs.v = NULL;
	runs.n = runs.cap = 0;

	end = PM_MIN(end, g->npages);
	if (start >= end)
		return 0;
	reader = gmem_bindings_read_lock(g);
	r = gmem_inval_begin(g, start, end, 0, PM_INVAL_CAUSE_PUNCH, local, &tickets, &nt);
	if (r)
		goto out_unlock;
	if (gmem_range_pinned(g, start, end)) {
		r = -EBUSY;
		goto out_end;
	}

	gmem_lock(g, &lk, start, end, GMEM_REMOVE);
	t1 = ((end - 1) >> GE_LEVEL_SHIFT(2)) + 1;
	for (uint64_t t = gmem_next_used(g->top_used, start >> GE_LEVEL_SHIFT(2), t1); t < t1 && !r;
	     t = gmem_next_used(g->top_used, t + 1, t1))
		r = gmem_punch_entry(g, &lk, &g->top[t], gmem_used_of(g->top_used, t), 2,
				     t << GE_LEVEL_SHIFT(2), start, end, &runs);
	gmem_unlock(g, &lk);

	/* The pages leave the host file, for every mapping of it, and their
	 * pins go (a pin racing the punch is the pinner's own race: it may
	 * stay). No view ever showed a frame, so the frees need not wait for
	 * anything else. */
	gmem_host_punch(g, start, end);
	for (size_t i = 0; i < runs.n; i++)
		gmem_free_run(g, runs.v[i].pfn, runs.v[i].order);
	if (runs.v != runs.inline_v)
		free(runs.v);
	/* An INIT_SHARED file's views show new pages, allocated after the
	 * frees, when the pool has them back. */
	gmem_views_populate(g, start, end);
out_end:
	gmem_inval_end(g, tickets, nt, local);
out_unlock:
	gmem_bindings_read_unlock(g, reader);
	return r;
}

/* ---- fallocate ---- */

int pm_gmem_fallocate(struct pm_gmem *g, int mode, int64_t offset, int64_t len)
{
	if (!(mode & FALLOC_FL_KEEP_SIZE))
		return -EOPNOTSUPP;
	if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE))
		return -EOPNOTSUPP;
	if (!PM_ALIGNED((uint64_t)offset, PM_PAGE_SIZE) || !PM_ALIGNED((uint64_t)len, PM_PAGE_SIZE))
		return -EINVAL;
	if (mode & FALLOC_FL_PUNCH_HOLE)
		return gmem_punch_hole(g, (uint64_t)offset >> PM_PAGE_SHIFT,
				       ((uint64_t)offset + (uint64_t)len) >> PM_PAGE_SHIFT);
	if ((uint64_t)offset + (uint64_t)len > g->size)
		return -EINVAL;
	return gmem_allocate(g, (uint64_t)offset >> PM_PAGE_SHIFT,
			     ((uint64_t)offset + (uint64_t)len) >> PM_PAGE_SHIFT);
}

/* ---- memory failure, stat ---- */

int pm_gmem_poison(struct pm_gmem *g, uint64_t index)
{
	struct pm_inval_ticket local[GMEM_TICKETS_INLINE], *tickets;
	struct gmem_locked lk;
	_Atomic uint64_t *slot;
	unsigned int level, reader;
	size_t nt;
	int r = -ENOENT;

	if (index >= g->npages)
		return -EINVAL;
	r = gmem_host_reserve(g, index, index + 1);
	if (r)
		return r;
	/* As Linux on memory failure: every mapping of the page goes. */
	reader = gmem_bindings_read_lock(g);
	r = gmem_inval_begin(g, index, index + 1, PM_INVAL_ALL, PM_INVAL_CAUSE_PUNCH, local, &tickets,
			     &nt);
	if (r)
		goto out_bindings;
	gmem_lock(g, &lk, index, index + 1, GMEM_REMOVE);
	while ((slot = gmem_walk(g, &lk, index, false, &level, &r)) && level > 0) {
		r = gmem_split(g, &lk, slot, level, PM_ALIGN_DOWN(index, 1ULL << GE_LEVEL_SHIFT(level)));
		if (r)
			goto out;
	}
	if (!slot) {
		r = -ENOENT;
		goto out;
	}
	if (!(atomic_fetch_or(slot, GE_POISON) & GE_POISON))
		atomic_fetch_add_explicit(&gmem_stripe_at(g, index)->poisoned, 1, memory_order_relaxed);
	r = 0;
out:
	gmem_unlock(g, &lk);
	if (!r)         /* and it leaves the host file: views fault there */
		gmem_host_poison(g, index);
	gmem_inval_end(g, tickets, nt, local);
out_bindings:
	gmem_bindings_read_unlock(g, reader);
	return r;
}

/* Sums the stripes' shares: exact when no operation is running. */
void pm_gmem_get_stats(struct pm_gmem *g, struct pm_gmem_stats *st)
{
	memset(st, 0, sizeof(*st));
	for (unsigned int i = 0; i < g->nr_stripes; i++) {
		struct pm_gmem_stripe *s = &g->stripes[i];

		st->pages += atomic_load_explicit(&s->pages, memory_order_relaxed);
		for (int o = 0; o < 3; o++)
			st->folios[o] += atomic_load_explicit(&s->folios[o], memory_order_relaxed);
		st->splits += atomic_load_explicit(&s->splits, memory_order_relaxed);
		st->poisoned += atomic_load_explicit(&s->poisoned, memory_order_relaxed);
		for (int n = 0; n < PM_POOL_MAX_NODES; n++)
			st->node_pages[n] += atomic_load_explicit(&s->node_pages[n], memory_order_relaxed);
	}
}

void pm_gmem_fstat(struct pm_gmem *g, struct stat *st)
{
	struct pm_gmem_stats gs;

	pm_gmem_get_stats(g, &gs);
	memset(st, 0, sizeof(*st));
	st->st_ino = g->ino;
	st->st_mode = S_IFREG | 0600;
	st->st_nlink = 1;
	st->st_size = (off_t)g->size;
	st->st_blksize = PM_PAGE_SIZE;
	st->st_blocks = (blkcnt_t)(gs.pages * (PM_PAGE_SIZE / 512));
}

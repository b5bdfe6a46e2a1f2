/* SPDX-License-Identifier: MIT */
/*
 * The frame pool's buddy allocator (the pool: pool.c; its parts:
 * pool_internal.h).
 *
 * Bookkeeping: one struct pm_frame per frame, in a MAP_NORESERVE array. Only
 * heads of free (or in-transit, or cached) blocks carry state, so untouched
 * parts of the array cost nothing, and an allocated frame does not know
 * which allocation it came from: any naturally aligned sub-run of an
 * allocation can be freed on its own (that is how a huge page is split). A
 * buddy allocator keeps one free list per order, doubly linked through frame
 * indices; taking a block splits off the excess, and a block that comes
 * back merges with its free buddies.
 *
 * Locking: everything here runs under pool_lock, except
 * pool_block_containing(), which pool_frame_in_block() (pool.c) also runs
 * in a pool_seq read section.
 */
#include "host/pool_internal.h"

/* ---- free lists ---- */

static void pool_free_list_add_locked(uint64_t pfn, unsigned int order)
{
	struct pm_frame *f = &pm_pool.frames[pfn];
	uint32_t *list = &pm_pool.free_list[pool_node_of(pfn)][order];
	uint32_t next = *list;

	pool_assert_locked();
	PM_BUG_ON(frame_state(f) != FRAME_PLAIN);
	frame_set(f, FRAME_FREE, order);
	f->prev = FRAME_NIL;
	f->next = next;
	if (next != FRAME_NIL)
		pm_pool.frames[next].prev = (uint32_t)pfn;
	*list = (uint32_t)pfn;
	pm_pool.nr_free[order]++;
}

void pool_free_list_del_locked(uint64_t pfn)
{
	struct pm_frame *f = &pm_pool.frames[pfn];
	uint16_t word = frame_word(f);
	unsigned int order = word >> 8;

	pool_assert_locked();
	PM_BUG_ON(word != FRAME_WORD(FRAME_FREE, order));
	if (f->prev != FRAME_NIL)
		pm_pool.frames[f->prev].next = f->next;
	else
		pm_pool.free_list[pool_node_of(pfn)][order] = f->next;
	if (f->next != FRAME_NIL)
		pm_pool.frames[f->next].prev = f->prev;
	pm_pool.nr_free[order]--;
	frame_set(f, FRAME_PLAIN, 0);
}

/* The largest naturally aligned block at pfn within room frames. */
static unsigned int largest_block_at(uint64_t pfn, uint64_t room)
{
	unsigned int order = PM_POOL_MAX_ORDER;

	while (!PM_ALIGNED(pfn, 1ULL << order) || (1ULL << order) > room)
		order--;
	return order;
}

/* Each node's frames on its own lists, in the largest blocks its range
 * allows. */
void pool_seed_locked(void)
{
	unsigned int order, n;

	pool_assert_locked();
	for (n = 0; n < PM_POOL_MAX_NODES; n++)
		for (order = 0; order <= PM_POOL_MAX_ORDER; order++)
			pm_pool.free_list[n][order] = FRAME_NIL;
	for (n = 0; n < pm_pool.nr_nodes; n++) {
		uint64_t pfn = pool_node_start(n), end = pool_node_end(n);

		while (pfn < end) {
			order = largest_block_at(pfn, end - pfn);
			pool_free_list_add_locked(pfn, order);
			pfn += 1ULL << order;
		}
	}
}

/* ---- allocation ---- */

/* Takes node n's smallest free block of at least `order` and splits off
 * the excess. */
static bool pool_take_block_node_locked(unsigned int n, unsigned int order, uint64_t *pfn)
{
	unsigned int o = order;
	uint64_t head;

	pool_assert_locked();
	while (o <= PM_POOL_MAX_ORDER && pm_pool.free_list[n][o] == FRAME_NIL)
		o++;
	if (o > PM_POOL_MAX_ORDER)
		return false;
	head = pm_pool.free_list[n][o];
	pool_free_list_del_locked(head);
	while (o > order) {
		o--;
		pool_free_list_add_locked(head + (1ULL << o), o);
	}
	*pfn = head;
	return true;
}

/* The preferred node first, then the allowed ones in ascending order. */
bool pool_take_block_policy_locked(unsigned int order, const struct pm_node_policy *p,
				   uint64_t *pfn)
{
	uint32_t allowed = p && p->allowed ? p->allowed : ~0U;
	uint32_t first = p ? p->preferred & allowed : 0;

	for (unsigned int n = 0; n < pm_pool.nr_nodes; n++)
		if ((first >> n & 1) && pool_take_block_node_locked(n, order, pfn))
			return true;
	for (unsigned int n = 0; n < pm_pool.nr_nodes; n++)
		if (!(first >> n & 1) && (allowed >> n & 1) && pool_take_block_node_locked(n, order, pfn))
			return true;
	return false;
}

bool pool_take_block_locked(unsigned int order, uint64_t *pfn)
{
	return pool_take_block_policy_locked(order, NULL, pfn);
}

/* The block at head leaves the lists for a caller (or a cache). */
void pool_commit_alloc_locked(uint64_t head, unsigned int order, uint64_t *todo)
{
	pool_assert_locked();
	pm_pool.nr_allocated += 1ULL << order;
	pm_pool.node_allocated[pool_node_of(head)] += 1ULL << order;
	pool_mark_populated_locked(head, order, todo);
}

/* ---- freeing: checks and merging ---- */

/* The free, in-transit or cached block containing pfn, or PM_PFN_INVALID.
 * Exact under pool_lock; without it, only in a pool_seq read section
 * (pool_frame_in_block). */
uint64_t pool_block_containing(uint64_t pfn)
{
	unsigned int o;

	for (o = 0; o <= PM_POOL_MAX_ORDER; o++) {
		uint64_t head = PM_ALIGN_DOWN(pfn, 1ULL << o);
		uint16_t word = frame_word(&pm_pool.frames[head]);

		unsigned int state = word & 0xff;

		if ((state == FRAME_FREE || state == FRAME_TRANSIT || state == FRAME_CACHED) &&
		    pfn - head < (1ULL << (word >> 8)))
			return head;
	}
	return PM_PFN_INVALID;
}

/* The run must be in the pool, naturally aligned and wholly allocated. */
void pool_check_allocated_locked(uint64_t pfn, unsigned int order)
{
	uint64_t n, i;

	pool_assert_locked();
	PM_BUG_ON(!pm_pool.live);
	PM_BUG_ON(order > PM_POOL_MAX_ORDER);
	n = 1ULL << order;
	PM_BUG_ON(pfn >= pm_pool.nr_frames || n > pm_pool.nr_frames - pfn);
	PM_BUG_ON(!PM_ALIGNED(pfn, n));                               /* misaligned */
	PM_BUG_ON(pool_block_containing(pfn) != PM_PFN_INVALID);        /* double free */
	for (i = 1; i < n; i++)                                       /* partly freed */
		PM_BUG_ON(frame_state(&pm_pool.frames[pfn + i]) != FRAME_PLAIN);
	PM_BUG_ON(pm_pool.nr_allocated < n);
}

/* Puts a zeroed block on the free lists, merged with its free buddies;
 * updates *pfn and *order to the resulting block. */
void pool_merge_locked(uint64_t *pfn, unsigned int *order)
{
	uint64_t head = *pfn, buddy;
	unsigned int o = *order;

	pool_assert_locked();
	for (; o < PM_POOL_MAX_ORDER; o++) {
		buddy = head ^ (1ULL << o);
		if (buddy >= pm_pool.nr_frames || !frame_is_free_block(&pm_pool.frames[buddy], o) ||
		    pool_node_of(buddy) != pool_node_of(head))
			break;
		pool_free_list_del_locked(buddy);
		head = PM_MIN(head, buddy);
	}
	pool_free_list_add_locked(head, o);
	*pfn = head;
	*order = o;
}

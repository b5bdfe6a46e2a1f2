/* SPDX-License-Identifier: MIT */
/*
 * The host map of a guest_memfd: per file page, what the host has of it
 * (its pins, whether its contents live in the host file, poison), in a
 * sparse table whose nodes count what is below them, so that no operation
 * is linear in the file: a page's word is two pointer loads away, and a
 * scan for pinned or marked pages skips every GiB and every 2M block that
 * has none. The word's layout and the locking are in gmem_internal.h.
 *
 * Objects: the top array (one node pointer per GiB, made with the file),
 * nodes (512 leaf pointers and two counts) and leaves (512 words and two
 * counts), made on demand by hm_reserve and freed only by hm_destroy, so a
 * lock-free reader never meets a freed node. Counts are of pages: a
 * leaf's `pinned` is how many of its words have pins, a node's the sum
 * over its leaves, the map's the sum over the file.
 */
#include "gmem/gmem_internal.h"

#define HM_GIB_SHIFT  GE_LEVEL_SHIFT(2)
#define HM_LEAF_SHIFT GE_LEVEL_SHIFT(1)

static uint64_t hm_top_of(uint64_t i) { return i >> HM_GIB_SHIFT; }
static unsigned int hm_leaf_of(uint64_t i) { return (i >> HM_LEAF_SHIFT) & (GE_ENTRIES - 1); }
static unsigned int hm_word_of(uint64_t i) { return i & (GE_ENTRIES - 1); }

int hm_init(struct gmem_hostmap *m, uint64_t npages)
{
	m->nr_top = (npages + (1ULL << HM_GIB_SHIFT) - 1) >> HM_GIB_SHIFT;
	m->top = calloc(m->nr_top ? m->nr_top : 1, sizeof(m->top[0]));
	atomic_init(&m->pinned, 0);
	atomic_init(&m->marked, 0);
	return m->top ? 0 : -ENOMEM;
}

void hm_destroy(struct gmem_hostmap *m)
{
	for (uint64_t t = 0; t < m->nr_top; t++) {
		struct gmem_hnode *n = atomic_load_explicit(&m->top[t], memory_order_relaxed);

		if (!n)
			continue;
		for (unsigned int l = 0; l < GE_ENTRIES; l++)
			free(atomic_load_explicit(&n->leaf[l], memory_order_relaxed));
		free(n);
	}
	free(m->top);
	m->top = NULL;
}

static struct gmem_hleaf *hm_leaf(const struct gmem_hostmap *m, uint64_t i)
{
	struct gmem_hnode *n = atomic_load_explicit(&m->top[hm_top_of(i)], memory_order_acquire);

	return n ? atomic_load_explicit(&n->leaf[hm_leaf_of(i)], memory_order_acquire) : NULL;
}

uint32_t hm_get(const struct gmem_hostmap *m, uint64_t i)
{
	struct gmem_hleaf *l = hm_leaf(m, i);

	return l ? atomic_load_explicit(&l->e[hm_word_of(i)], memory_order_acquire) : 0;
}

/* Nodes and leaves are published whole (calloc'd, then a release store):
 * a reader sees a null pointer or zeroed words. */
int hm_reserve(struct gmem_hostmap *m, uint64_t start, uint64_t end)
{
	for (uint64_t i = start; i < end; i = PM_ALIGN_DOWN(i, 1ULL << HM_LEAF_SHIFT) +
					    (1ULL << HM_LEAF_SHIFT)) {
		_Atomic(struct gmem_hnode *) *tp = &m->top[hm_top_of(i)];
		struct gmem_hnode *n = atomic_load_explicit(tp, memory_order_relaxed);
		struct gmem_hleaf *l;

		if (!n) {
			n = calloc(1, sizeof(*n));
			if (!n)
				return -ENOMEM;
			atomic_store_explicit(tp, n, memory_order_release);
		}
		if (atomic_load_explicit(&n->leaf[hm_leaf_of(i)], memory_order_relaxed))
			continue;
		l = calloc(1, sizeof(*l));
		if (!l)
			return -ENOMEM;
		atomic_store_explicit(&n->leaf[hm_leaf_of(i)], l, memory_order_release);
	}
	return 0;
}

/* +1, -1 or 0: how a count of pages changes when a page stops or starts
 * having what it counts. */
static int hm_delta(bool was, bool is)
{
	return (int)is - (int)was;
}

void hm_store(struct gmem_hostmap *m, uint64_t i, uint32_t w)
{
	struct gmem_hnode *n = atomic_load_explicit(&m->top[hm_top_of(i)], memory_order_relaxed);
	struct gmem_hleaf *l = n ? atomic_load_explicit(&n->leaf[hm_leaf_of(i)], memory_order_relaxed) : NULL;
	uint32_t o;
	int dp, dm;

	PM_BUG_ON(!l);          /* hm_reserve first */
	o = atomic_load_explicit(&l->e[hm_word_of(i)], memory_order_relaxed);
	dp = hm_delta(o & HM_PINS, w & HM_PINS);
	dm = hm_delta(o & HM_MARKS, w & HM_MARKS);
	atomic_store_explicit(&l->e[hm_word_of(i)], w, memory_order_release);
	if (dp) {
		l->pinned += (uint32_t)dp;
		n->pinned += (uint32_t)dp;
		atomic_fetch_add_explicit(&m->pinned, (uint64_t)(int64_t)dp, memory_order_relaxed);
	}
	if (dm) {
		l->marked += (uint32_t)dm;
		n->marked += (uint32_t)dm;
		atomic_fetch_add_explicit(&m->marked, (uint64_t)(int64_t)dm, memory_order_relaxed);
	}
}

static uint32_t hm_count(uint32_t pinned, uint32_t marked, enum hm_which which)
{
	return which == HM_NEXT_PINNED ? pinned : marked;
}

static bool hm_word_is(uint32_t w, enum hm_which which)
{
	return which == HM_NEXT_PINNED ? (w & HM_PINS) : (w & HM_MARKS);
}

uint64_t hm_next(const struct gmem_hostmap *m, uint64_t start, uint64_t end, enum hm_which which)
{
	const _Atomic uint64_t *total = which == HM_NEXT_PINNED ? &m->pinned : &m->marked;
	uint64_t i = start;

	if (!atomic_load_explicit(total, memory_order_relaxed))
		return end;
	while (i < end) {
		struct gmem_hnode *n = atomic_load_explicit(&m->top[hm_top_of(i)], memory_order_relaxed);
		struct gmem_hleaf *l;

		if (!n || !hm_count(n->pinned, n->marked, which)) {
			i = PM_ALIGN_DOWN(i, 1ULL << HM_GIB_SHIFT) + (1ULL << HM_GIB_SHIFT);
			continue;
		}
		l = atomic_load_explicit(&n->leaf[hm_leaf_of(i)], memory_order_relaxed);
		if (!l || !hm_count(l->pinned, l->marked, which)) {
			i = PM_ALIGN_DOWN(i, 1ULL << HM_LEAF_SHIFT) + (1ULL << HM_LEAF_SHIFT);
			continue;
		}
		for (uint64_t stop = PM_MIN(end, PM_ALIGN_DOWN(i, 1ULL << HM_LEAF_SHIFT) +
					       (1ULL << HM_LEAF_SHIFT)); i < stop; i++)
			if (hm_word_is(atomic_load_explicit(&l->e[hm_word_of(i)], memory_order_relaxed), which))
				return i;
	}
	return end;
}

/* SPDX-License-Identifier: MIT */
/*
 * The memory-attribute store: a canonical radix tree over the gfn space.
 *
 * Nodes hold 512 entries; a node whose entries are of level L covers
 * 512^(L+1) gfns. A new store's root is at level 2 (512 GiB); a set that
 * reaches beyond it raises the root (attr_grow_root), up to level 5, which
 * covers the whole 52-bit space; gfns beyond the root read shared. The root
 * node and its level are published together in one word (store->root). An
 * entry is one 64-bit atomic word:
 *  - a value (bit 63 clear): the attributes of every gfn it covers;
 *    attributes are < 1 << 62, so a value never has bit 63 set;
 *  - a node (bit 63 set): the rest is the address of the child node, whose
 *    entries are one level lower. Level-0 entries are always values.
 * A zeroed node is thus a node of shared (0) memory.
 *
 * Invariant (canonical form, relaxed for leaves): no node other than the
 * root and the leaves whose positions are in the stale ring has 512 equal
 * value entries; such a node is replaced by that value in its parent.
 *
 * Why leaves may stay: a 4K conversion in a uniform region splits a leaf
 * (and its parent) and converting back would collapse them at once; every
 * collapse retires nodes, and recycling them costs a grace period (an IPI
 * to every CPU running the process). A leaf that becomes uniform therefore
 * stays linked, marked uniform (node->uniform, which readers use), and its
 * position enters a ring of PM_ATTR_STALE positions; when the ring is full
 * the oldest position is collapsed properly (with its ancestors, if they
 * become uniform). Readers treat a uniform leaf as the value it holds, so an
 * entry of level >= 1 is a node exactly when what it covers is mixed, up to
 * the stale leaves below it: pm_attr_mixed() at 1G looks through them.
 *
 * pm_attr_set: a set inside one existing leaf that leaves it mixed (a 4K
 * conversion's case) changes only that leaf, under the leaf's stripe lock
 * (attr_set_in_leaf), so sets of different leaves run in parallel. Every
 * other set changes the structure: under store->lock and then every
 * stripe, it
 *  1. counts the nodes it will create: a value entry that the range covers
 *     only partly, and whose value differs, must be split into a node; this
 *     happens only on the paths of the two range boundaries;
 *  2. allocates them all, or fails with -ENOMEM having changed nothing;
 *  3. walks the range: fully covered entries are overwritten with the value
 *     (a node there is retired with its whole subtree), partly covered ones
 *     are descended into (splitting a value entry: the new node is filled
 *     and updated before it is published), and a child left uniform on the
 *     way back up is collapsed into its parent entry.
 *
 * Readers take no lock: inside an RCU read-side section they follow entries
 * with acquire loads; the writer publishes nodes with release stores, and
 * never modifies a node once it is unlinked: it is freed after a grace
 * period. A racing reader sees, for each gfn, its old or its new value.
 */
#include "memslot/attr.h"
#include "lib/rcu.h"

#define ATTR_SHIFT         9
#define ATTR_FANOUT        (1u << ATTR_SHIFT)
#define ATTR_ROOT_LEVEL    (PM_ATTR_LEVELS - 1)   /* the highest a root can be */
#define ATTR_FIRST_ROOT    PM_ATTR_LEVEL_1G       /* a new store's root: 512 GiB */
#define ATTR_GFN_LIMIT     (1ULL << 52)
#define ATTR_VALUE_LIMIT   (1ULL << 62)
#define ATTR_ENTRY_NODE    (1ULL << 63)
/* Splits per set: one per level below the root, on each boundary path. */
#define ATTR_MAX_SPLITS    (2 * ATTR_ROOT_LEVEL)
_Static_assert(ATTR_MAX_SPLITS == PM_ATTR_MAX_NODES, "attr.h's bound is the walk's");

struct pm_attr_node {
	/* Written only by the writer holding store->lock; read under RCU. */
	_Atomic uint64_t entries[ATTR_FANOUT];
	/* Writers only (a leaf's: its stripe or all stripes; others': all
	 * stripes, see attr.h): how many entries are not 0 (a nonzero
	 * value or a node). Keeps the uniformity test that every set makes on
	 * its way back up O(1) for the common case: 0 means all shared; only a
	 * node with no 0 entry at all is scanned. All-zero memory is thus a
	 * valid all-shared node. */
	uint32_t nonzero;
	/* Writers only, as nonzero: this leaf's position is in store->stale. */
	uint32_t in_stale;
	/* Leaves only (entries of level 0): 0 while mixed, value + 1 while all
	 * 512 entries hold value (a "stale" uniform leaf kept linked). Written
	 * by the writer after each change of the leaf; read by lock-free
	 * readers, which use it instead of the entries. */
	_Atomic uint64_t uniform;
};

_Static_assert(sizeof(struct pm_attr_node) == PM_ATTR_NODE_BYTES, "node size as documented");

/* store->root packs the root node and its level in one word. */
#define ATTR_ROOT_LEVEL_MASK 7u

static inline uintptr_t attr_root_word(struct pm_attr_node *node, int level)
{
	PM_BUG_ON((uintptr_t)node & ATTR_ROOT_LEVEL_MASK);
	return (uintptr_t)node | (uintptr_t)level;
}

static inline struct pm_attr_node *attr_root_node(uintptr_t w)
{
	return (struct pm_attr_node *)(w & ~(uintptr_t)ATTR_ROOT_LEVEL_MASK);
}

static inline int attr_root_level(uintptr_t w)
{
	return (int)(w & ATTR_ROOT_LEVEL_MASK);
}
_Static_assert(ATTR_GFN_LIMIT >> (ATTR_SHIFT * ATTR_ROOT_LEVEL) <= ATTR_FANOUT,
	       "the root covers the gfn space");

/* One call of pm_attr_set; lives on the writer's stack. */
struct attr_set_op {
	struct pm_attr_store *store;
	gfn_t start, end;          /* the range being set */
	uint64_t attrs;            /* its new value */
	struct pm_attr_node *spare[ATTR_MAX_SPLITS]; /* preallocated, zeroed */
	int nr_spare;              /* how many were allocated */
	int used;                  /* how many splits consumed */
};

/* ---- entries ----------------------------------------------------------- */

static inline bool attr_entry_is_node(uint64_t e)
{
	return e & ATTR_ENTRY_NODE;
}

static inline struct pm_attr_node *attr_entry_node(uint64_t e)
{
	return (struct pm_attr_node *)(uintptr_t)(e & ~ATTR_ENTRY_NODE);
}

static inline uint64_t attr_node_entry(struct pm_attr_node *node)
{
	uint64_t p = (uintptr_t)node;

	PM_BUG_ON(p & ATTR_ENTRY_NODE);
	return p | ATTR_ENTRY_NODE;
}

/* Gfns covered by one entry of level `level`. */
static inline gfn_t attr_span(int level)
{
	return 1ULL << (ATTR_SHIFT * level);
}

static inline unsigned int attr_index(gfn_t gfn, int level)
{
	return (gfn >> (ATTR_SHIFT * level)) & (ATTR_FANOUT - 1);
}

static inline bool attr_covers(const struct attr_set_op *op, gfn_t base, int level)
{
	return op->start <= base && base + attr_span(level) <= op->end;
}

/* ---- node allocation (the one place that can fail) --------------------- */

/* Successes left before allocations fail; < 0: never fail. */
static atomic_int attr_fail_after = -1;

void pm_attr_test_fail_alloc(int n)
{
	atomic_store(&attr_fail_after, n);
}

static bool attr_alloc_should_fail(void)
{
	int left = atomic_load(&attr_fail_after);

	while (left > 0)
		if (atomic_compare_exchange_weak(&attr_fail_after, &left, left - 1))
			return false;
	return left == 0;
}

/* A zeroed node (all shared) counted in store->nodes; NULL on ENOMEM. */
static struct pm_attr_node *attr_node_alloc(struct pm_attr_store *s)
{
	struct pm_attr_node *node;

	if (attr_alloc_should_fail())
		return NULL;
	node = pm_recycler_alloc(&s->recycler);
	if (node)
		atomic_fetch_add(&s->nodes, 1);
	return node;
}

/* Frees a node no reader can have seen. */
static void attr_node_free_unpublished(struct pm_attr_store *s, struct pm_attr_node *node)
{
	atomic_fetch_sub(&s->nodes, 1);
	pm_recycler_free(&s->recycler, node);
}

/* Frees a node just unlinked, once readers that may be in it are gone;
 * `zero` says all its entries are 0 (then it is reused without zeroing). */
static void attr_node_retire(struct pm_attr_store *s, struct pm_attr_node *node, bool zero)
{
	atomic_fetch_sub(&s->nodes, 1);
	pm_recycler_retire(&s->recycler, node, zero);
}

/* Retires node and every node below it (just unlinked; writer only). */
static void attr_tree_retire(struct pm_attr_store *s, struct pm_attr_node *node)
{
	for (unsigned int i = 0; i < ATTR_FANOUT; i++) {
		uint64_t e = atomic_load_explicit(&node->entries[i], memory_order_relaxed);

		if (attr_entry_is_node(e))
			attr_tree_retire(s, attr_entry_node(e));
	}
	attr_node_retire(s, node, false);
}

/* Frees node and every node below it at once: no reader may exist. */
static void attr_tree_free(struct pm_attr_store *s, struct pm_attr_node *node)
{
	for (unsigned int i = 0; i < ATTR_FANOUT; i++) {
		uint64_t e = atomic_load_explicit(&node->entries[i], memory_order_relaxed);

		if (attr_entry_is_node(e))
			attr_tree_free(s, attr_entry_node(e));
	}
	attr_node_free_unpublished(s, node);
}

/* ---- init / destroy ----------------------------------------------------- */

int pm_attr_init(struct pm_attr_store *s)
{
	struct pm_attr_node *root;

	atomic_init(&s->nodes, 0);
	s->stale_head = s->nr_stale = 0;
	/* Up to 256 cached nodes (1 MiB) ready for reuse; nodes retired
	 * beyond that during a grace period go back to malloc. */
	pm_recycler_init(&s->recycler, sizeof(struct pm_attr_node), 256);
	root = attr_node_alloc(s);
	if (!root) {
		pm_recycler_destroy(&s->recycler);
		return -ENOMEM;
	}
	/* Short critical sections: spin a little before sleeping. */
	{
		pthread_mutexattr_t a;

		pthread_mutexattr_init(&a);
		pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ADAPTIVE_NP);
		PM_BUG_ON(pthread_mutex_init(&s->lock, &a) != 0);
		for (unsigned int i = 0; i < PM_ATTR_STRIPES; i++)
			PM_BUG_ON(pthread_mutex_init(&s->stripes[i].lock, &a) != 0);
		pthread_mutexattr_destroy(&a);
	}
	atomic_init(&s->root, attr_root_word(root, ATTR_FIRST_ROOT));
	return 0;
}

void pm_attr_destroy(struct pm_attr_store *s)
{
	attr_tree_free(s, attr_root_node(atomic_load_explicit(&s->root, memory_order_relaxed)));
	atomic_store_explicit(&s->root, 0, memory_order_relaxed);
	PM_BUG_ON(atomic_load(&s->nodes) != 0);
	pm_recycler_destroy(&s->recycler);
	for (unsigned int i = 0; i < PM_ATTR_STRIPES; i++)
		pthread_mutex_destroy(&s->stripes[i].lock);
	pthread_mutex_destroy(&s->lock);
}

int pm_attr_root_level(struct pm_attr_store *s)
{
	int level;

	level = attr_root_level(atomic_load_explicit(&s->root, memory_order_acquire));
	return level;
}

size_t pm_attr_memory(struct pm_attr_store *s)
{
	return atomic_load(&s->nodes) * sizeof(struct pm_attr_node);
}

/* ---- lockless readers --------------------------------------------------- */

/*
 * Follows gfn's path down from the root until a value entry or the entry of
 * level stop_level; returns that entry and stores its level in *level.
 * Caller is in an RCU read-side section.
 */
static uint64_t attr_walk(struct pm_attr_store *s, gfn_t gfn, int stop_level, int *level)
{
	uintptr_t w = pm_rcu_dereference(s->root);
	struct pm_attr_node *node = attr_root_node(w);
	int l = attr_root_level(w);

	/* Beyond the root's span nothing was ever set: one shared value up to
	 * the end of the gfn space (a range walk steps over it at once). */
	if (gfn >= attr_span(l + 1)) {
		*level = PM_ATTR_LEVELS;
		return 0;
	}
	for (;; l--) {
		uint64_t e = pm_rcu_dereference(node->entries[attr_index(gfn, l)]);

		PM_BUG_ON(l == 0 && attr_entry_is_node(e));
		if (attr_entry_is_node(e) && l == 1) {
			/* A stale uniform leaf reads as its value. */
			uint64_t u = atomic_load_explicit(&attr_entry_node(e)->uniform,
							  memory_order_acquire);

			if (u) {
				*level = 1;
				return u - 1;
			}
		}
		if (!attr_entry_is_node(e) || l == stop_level) {
			*level = l;
			return e;
		}
		node = attr_entry_node(e);
	}
}

uint64_t pm_attr_get(struct pm_attr_store *s, gfn_t gfn)
{
	uint64_t e;
	int level;

	PM_BUG_ON(gfn >= ATTR_GFN_LIMIT);
	pm_rcu_read_lock();
	e = attr_walk(s, gfn, 0, &level);
	pm_rcu_read_unlock();
	return e;
}

uint64_t pm_attr_get_run(struct pm_attr_store *s, gfn_t gfn, gfn_t *run_end)
{
	uint64_t e;
	int level;

	PM_BUG_ON(gfn >= ATTR_GFN_LIMIT);
	pm_rcu_read_lock();
	e = attr_walk(s, gfn, 0, &level);
	pm_rcu_read_unlock();
	*run_end = PM_ALIGN_DOWN(gfn, attr_span(level)) + attr_span(level);
	return e;
}

/* Each step skips a whole value entry: O(boundaries in range × levels). */
bool pm_attr_range_is(struct pm_attr_store *s, gfn_t start, gfn_t end, uint64_t attrs)
{
	bool same = true;
	gfn_t gfn = start;

	PM_BUG_ON(start >= end || end > ATTR_GFN_LIMIT);
	PM_BUG_ON(attrs >= ATTR_VALUE_LIMIT);
	pm_rcu_read_lock();
	while (same && gfn < end) {
		int level;

		same = attr_walk(s, gfn, 0, &level) == attrs;
		gfn = PM_ALIGN_DOWN(gfn, attr_span(level)) + attr_span(level);
	}
	pm_rcu_read_unlock();
	return same;
}

/* Reader: do all 512 entries of a level-1 node read as one value (values,
 * or stale leaves holding it)? Caller is in an RCU read-side section. */
static bool attr_node_reads_uniform(struct pm_attr_node *node)
{
	uint64_t first = 0;

	for (unsigned int i = 0; i < ATTR_FANOUT; i++) {
		uint64_t e = pm_rcu_dereference(node->entries[i]);

		if (attr_entry_is_node(e)) {
			e = atomic_load_explicit(&attr_entry_node(e)->uniform, memory_order_acquire);
			if (!e)
				return false;
			e--;
		}
		if (i == 0)
			first = e;
		else if (e != first)
			return false;
	}
	return true;
}

bool pm_attr_mixed(struct pm_attr_store *s, gfn_t gfn, int level)
{
	uint64_t e;
	int found;
	bool mixed;

	PM_BUG_ON(gfn >= ATTR_GFN_LIMIT);
	/* Roots are at least at level 1G, so these entries always exist. */
	PM_BUG_ON(level < PM_ATTR_LEVEL_2M || level > PM_ATTR_LEVEL_1G);
	pm_rcu_read_lock();
	e = attr_walk(s, gfn, level, &found);
	/* A value at or above `level` covers the whole block: not mixed. A
	 * level-1 node below a 1G entry may still be uniform through its
	 * stale leaves: look through them. */
	if (attr_entry_is_node(e) && found == PM_ATTR_LEVEL_1G)
		mixed = !attr_node_reads_uniform(attr_entry_node(e));
	else
		mixed = attr_entry_is_node(e);
	pm_rcu_read_unlock();
	return mixed;
}

/* ---- set: counting the splits ------------------------------------------- */

/*
 * Bases of the entries of level `level`, in the node covering
 * [nbase, nbase + 512 entries), that the range covers only partly: at most
 * the one holding start and the one holding end - 1. Returns their number.
 */
static int attr_partial_entries(const struct attr_set_op *op, int level, gfn_t nbase,
				gfn_t base[2])
{
	gfn_t nend = nbase + attr_span(level + 1);
	gfn_t edge[2] = { op->start, op->end - 1 };
	int n = 0;

	for (int i = 0; i < 2; i++) {
		gfn_t b = PM_ALIGN_DOWN(edge[i], attr_span(level));

		if (edge[i] < nbase || edge[i] >= nend || attr_covers(op, b, level))
			continue;
		if (n == 0 || base[0] != b)
			base[n++] = b;
	}
	return n;
}

/* Nodes needed to split the value entry (level, base): it and its partial
 * descendants, which all inherit its value, different from op->attrs. */
static int attr_count_split(const struct attr_set_op *op, int level, gfn_t base)
{
	gfn_t sub[2];
	int n = 1;
	int k = attr_partial_entries(op, level - 1, base, sub);

	for (int i = 0; i < k; i++)
		n += attr_count_split(op, level - 1, sub[i]);
	return n;
}

/* Nodes pm_attr_set will create below node (entries of `level`, at nbase). */
static int attr_count_node(const struct attr_set_op *op, struct pm_attr_node *node,
			   int level, gfn_t nbase)
{
	gfn_t base[2];
	int n = 0;
	int k = attr_partial_entries(op, level, nbase, base);

	for (int i = 0; i < k; i++) {
		uint64_t e = atomic_load_explicit(&node->entries[attr_index(base[i], level)],
						  memory_order_relaxed);

		if (attr_entry_is_node(e))
			n += attr_count_node(op, attr_entry_node(e), level - 1, base[i]);
		else if (e != op->attrs)
			n += attr_count_split(op, level, base[i]);
	}
	return n;
}

/* Allocates every node the set needs; on -ENOMEM frees them again. */
static int attr_prealloc(struct attr_set_op *op, int needed)
{
	PM_BUG_ON(needed > ATTR_MAX_SPLITS);
	for (op->nr_spare = 0; op->nr_spare < needed; op->nr_spare++) {
		op->spare[op->nr_spare] = attr_node_alloc(op->store);
		if (!op->spare[op->nr_spare])
			goto err_unwind;
	}
	return 0;

err_unwind:
	while (op->nr_spare > 0)
		attr_node_free_unpublished(op->store, op->spare[--op->nr_spare]);
	return -ENOMEM;
}

/* ---- set: applying ------------------------------------------------------ */

static void attr_set_node(struct attr_set_op *op, struct pm_attr_node *node,
			  int level, gfn_t nbase);

/* The writer's plain view of a node's entries: only the writer (holding
 * store->lock) changes entries, so its own reads need not be atomic, and a
 * node not yet published has no reader at all. Plain accesses let the
 * 512-entry scans and fills below run as vector code (memcmp, a store loop)
 * instead of one atomic access per entry. */
static inline uint64_t *attr_plain(struct pm_attr_node *node)
{
	_Static_assert(sizeof(_Atomic uint64_t) == sizeof(uint64_t), "plain view of entries");
	return (uint64_t *)(void *)node->entries;
}

/* True if node holds 512 equal values; stores the value in *value.
 * Writer only. */
static bool attr_node_uniform(struct pm_attr_node *node, uint64_t *value)
{
	const uint64_t *e = attr_plain(node);

	if (node->nonzero == 0) {
		*value = 0;
		return true;
	}
	if (node->nonzero < ATTR_FANOUT || attr_entry_is_node(e[0]))
		return false;
	/* All equal <=> each entry equals its successor. */
	if (memcmp(e, e + 1, (ATTR_FANOUT - 1) * sizeof(e[0])))
		return false;
	*value = e[0];
	return true;
}

/* The writer's store of entry i of a node (published or not, so always an
 * atomic release store: a node entry must be seen after the child's
 * content), keeping node->nonzero. */
static void attr_store(struct pm_attr_node *node, unsigned int i, uint64_t e)
{
	uint64_t old = attr_plain(node)[i];

	node->nonzero += (e != 0) - (old != 0);
	atomic_store_explicit(&node->entries[i], e, memory_order_release);
}

/* ---- stale leaves ------------------------------------------------------- */

/*
 * Collapses the leaf on base's path if it is uniform, then each ancestor
 * that thereby became uniform (never the root). Identifying the leaf by
 * position, not by pointer, keeps the ring valid whatever happened to the
 * node since. store->lock held; not during a set's walk.
 */
static void attr_collapse_at(struct pm_attr_store *s, gfn_t base)
{
	uintptr_t w = atomic_load_explicit(&s->root, memory_order_relaxed);
	struct pm_attr_node *path[PM_ATTR_LEVELS];   /* path[l]: entries of level l */
	struct pm_attr_node *node = attr_root_node(w);
	int top = attr_root_level(w);
	uint64_t value;

	if (base >= attr_span(top + 1))
		return;
	for (int l = top;; l--) {
		uint64_t e;

		path[l] = node;
		if (l == 0)
			break;
		e = attr_plain(node)[attr_index(base, l)];
		if (!attr_entry_is_node(e))
			return;        /* no leaf here any more */
		node = attr_entry_node(e);
	}
	path[0]->in_stale = 0;
	for (int l = 0; l < top && attr_node_uniform(path[l], &value); l++) {
		attr_store(path[l + 1], attr_index(base, l + 1), value);
		/* A leaf's uniform word is set, so only interior nodes of
		 * shared memory are all zero. */
		attr_node_retire(s, path[l], l > 0 && value == 0);
	}
}

/* Records a leaf that became uniform; collapsing waits for
 * attr_stale_trim() after the walk. store->lock held. */
static void attr_stale_push(struct pm_attr_store *s, struct pm_attr_node *leaf, gfn_t base)
{
	if (leaf->in_stale)
		return;
	PM_BUG_ON(s->nr_stale >= PM_ATTR_STALE_RING);
	leaf->in_stale = 1;
	s->stale[(s->stale_head + s->nr_stale) % PM_ATTR_STALE_RING] = base;
	s->nr_stale++;
}

/* Collapses the oldest stale leaves until at most `keep` remain. */
static void attr_stale_trim(struct pm_attr_store *s, unsigned int keep)
{
	while (s->nr_stale > keep) {
		gfn_t base = s->stale[s->stale_head];

		s->stale_head = (s->stale_head + 1) % PM_ATTR_STALE_RING;
		s->nr_stale--;
		attr_collapse_at(s, base);
	}
}

/* An entry the range covers fully: becomes the value, dropping any subtree. */
static void attr_entry_overwrite(struct attr_set_op *op, struct pm_attr_node *node,
				 unsigned int i, uint64_t e)
{
	if (e == op->attrs)
		return;
	attr_store(node, i, op->attrs);
	if (attr_entry_is_node(e))
		attr_tree_retire(op->store, attr_entry_node(e));
}

/* A node entry the range covers partly: update the child, then collapse it
 * if it became uniform. */
static void attr_entry_descend(struct attr_set_op *op, struct pm_attr_node *node,
			       unsigned int i, uint64_t e, int level, gfn_t base)
{
	struct pm_attr_node *child = attr_entry_node(e);
	uint64_t value;

	attr_set_node(op, child, level - 1, base);
	if (!attr_node_uniform(child, &value)) {
		if (level == 1)
			atomic_store_explicit(&child->uniform, 0, memory_order_release);
		return;
	}
	if (level == 1) {       /* a leaf: stays linked, marked (see the top) */
		atomic_store_explicit(&child->uniform, value + 1, memory_order_release);
		attr_stale_push(op->store, child, base);
		return;
	}
	attr_store(node, i, value);
	attr_node_retire(op->store, child, value == 0);   /* a collapsed shared node is all zero */
}

/* A value entry the range covers partly, with another value: replace it by
 * a preallocated node, filled and updated before it is published. */
static void attr_entry_split(struct attr_set_op *op, struct pm_attr_node *node,
			     unsigned int i, uint64_t e, int level, gfn_t base)
{
	struct pm_attr_node *child;
	uint64_t value;

	PM_BUG_ON(level == 0);                 /* level-0 entries are one gfn */
	PM_BUG_ON(op->used >= op->nr_spare);   /* the count missed a split */
	child = op->spare[op->used++];
	/* The node comes zeroed (all shared): only another value needs a fill. */
	if (e) {
		for (unsigned int j = 0; j < ATTR_FANOUT; j++)  /* unpublished: plain stores */
			attr_plain(child)[j] = e;
		child->nonzero = ATTR_FANOUT;
	}
	attr_set_node(op, child, level - 1, base);
	/* Part of it keeps the old value, part has the new one (child->uniform
	 * stays 0: mixed). */
	PM_BUG_ON(attr_node_uniform(child, &value));
	attr_store(node, i, attr_node_entry(child));   /* publishes the filled child */
}

static void attr_set_entry(struct attr_set_op *op, struct pm_attr_node *node, int level,
			   gfn_t base)
{
	unsigned int i = attr_index(base, level);
	uint64_t e = attr_plain(node)[i];

	if (attr_covers(op, base, level))
		attr_entry_overwrite(op, node, i, e);
	else if (attr_entry_is_node(e))
		attr_entry_descend(op, node, i, e, level, base);
	else if (e != op->attrs)
		attr_entry_split(op, node, i, e, level, base);
}

/* Sets the part of the range inside node (entries of `level`, at nbase). */
static void attr_set_node(struct attr_set_op *op, struct pm_attr_node *node,
			  int level, gfn_t nbase)
{
	gfn_t span = attr_span(level);
	gfn_t from = PM_MAX(op->start, nbase);
	gfn_t to = PM_MIN(op->end, nbase + attr_span(level + 1));

	for (gfn_t base = PM_ALIGN_DOWN(from, span); base < to; base += span)
		attr_set_entry(op, node, level, base);
}

/* Raises the root until it covers gfn end - 1: a new root whose first entry
 * is the old root (or its value, if uniform: canonical form). The values
 * of all gfns stay as they were. 0 or -ENOMEM (then the root may have
 * grown part of the way, which changes no value). store->lock held. */
static int attr_grow_root(struct pm_attr_store *s, gfn_t end)
{
	uintptr_t w = atomic_load_explicit(&s->root, memory_order_relaxed);

	while (end > attr_span(attr_root_level(w) + 1)) {
		struct pm_attr_node *root = attr_root_node(w), *top = attr_node_alloc(s);
		uint64_t value;

		if (!top)
			return -ENOMEM;
		if (attr_node_uniform(root, &value)) {
			attr_store(top, 0, value);   /* unpublished */
			w = attr_root_word(top, attr_root_level(w) + 1);
			atomic_store_explicit(&s->root, w, memory_order_release);
			attr_node_retire(s, root, value == 0);
		} else {
			attr_store(top, 0, attr_node_entry(root));   /* unpublished */
			w = attr_root_word(top, attr_root_level(w) + 1);
			atomic_store_explicit(&s->root, w, memory_order_release);
		}
	}
	return 0;
}

/* ---- set: the leaf fast path ------------------------------------------- */

/* Fibonacci hashing of the leaf number: neighbouring leaves, and leaves a
 * fixed distance apart (two threads walking their own regions in step,
 * whatever their offset), rarely share a stripe. */
static struct pm_attr_stripe *attr_stripe(struct pm_attr_store *s, gfn_t gfn)
{
	uint64_t leaf = gfn >> ATTR_SHIFT;

	_Static_assert((PM_ATTR_STRIPES & (PM_ATTR_STRIPES - 1)) == 0, "a power of two");
	return &s->stripes[(leaf * 0x9e3779b97f4a7c15ULL) >> (64 - __builtin_ctz(PM_ATTR_STRIPES))];
}

/* Structural writers exclude the fast path by holding every stripe. */
static void attr_lock_all(struct pm_attr_store *s)
{
	pthread_mutex_lock(&s->lock);
	for (unsigned int i = 0; i < PM_ATTR_STRIPES; i++)
		pthread_mutex_lock(&s->stripes[i].lock);
}

static void attr_unlock_all(struct pm_attr_store *s)
{
	for (unsigned int i = PM_ATTR_STRIPES; i-- > 0;)
		pthread_mutex_unlock(&s->stripes[i].lock);
	pthread_mutex_unlock(&s->lock);
}

/*
 * A set inside one leaf that exists, and that does not leave the leaf
 * newly uniform (which would need the stale ring, or a collapse): only the
 * leaf changes, under its stripe lock, while other threads set other
 * leaves. Nothing is allocated or retired. Returns false, having changed
 * nothing, when the set needs the structural path.
 */
static bool attr_set_in_leaf(struct pm_attr_store *s, gfn_t start, gfn_t end, uint64_t attrs)
{
	struct pm_attr_stripe *st;
	struct pm_attr_node *node, *leaf = NULL;
	uintptr_t w;
	int nonzero;
	bool done = false;

	if ((start >> ATTR_SHIFT) != ((end - 1) >> ATTR_SHIFT))
		return false;
	st = attr_stripe(s, start);
	pthread_mutex_lock(&st->lock);
	/* The structure cannot change while we hold a stripe: plain walk. */
	w = atomic_load_explicit(&s->root, memory_order_relaxed);
	node = attr_root_node(w);
	if (start >= attr_span(attr_root_level(w) + 1))
		goto out;
	for (int l = attr_root_level(w); l > 0; l--) {
		uint64_t e = attr_plain(node)[attr_index(start, l)];

		if (!attr_entry_is_node(e))
			goto out;       /* a value covers the leaf's place: a split */
		node = attr_entry_node(e);
	}
	leaf = node;
	nonzero = (int)leaf->nonzero;
	for (gfn_t g = start; g < end; g++)
		nonzero += (attrs != 0) - (attr_plain(leaf)[attr_index(g, 0)] != 0);
	if (nonzero == ATTR_FANOUT || (nonzero == 0 && !leaf->in_stale))
		goto out;               /* maybe newly uniform: the ring or a collapse */
	for (gfn_t g = start; g < end; g++)
		attr_store(leaf, attr_index(g, 0), attrs);
	PM_BUG_ON((int)leaf->nonzero != nonzero);
	/* 0 < nonzero < 512: mixed; or all shared, already in the ring. */
	atomic_store_explicit(&leaf->uniform, nonzero ? 0 : 1, memory_order_release);
	done = true;
out:
	pthread_mutex_unlock(&st->lock);
	return done;
}

int pm_attr_set(struct pm_attr_store *s, gfn_t start, gfn_t end, uint64_t attrs)
{
	struct attr_set_op op = { .store = s, .start = start, .end = end, .attrs = attrs };
	struct pm_attr_node *root;
	uintptr_t w;
	int err;

	PM_BUG_ON(start >= end || end > ATTR_GFN_LIMIT);
	PM_BUG_ON(attrs >= ATTR_VALUE_LIMIT);
	if (attr_set_in_leaf(s, start, end, attrs))
		return 0;
	attr_lock_all(s);
	err = attr_grow_root(s, end);
	if (err)
		goto out_unlock;
	w = atomic_load_explicit(&s->root, memory_order_relaxed);
	root = attr_root_node(w);
	err = attr_prealloc(&op, attr_count_node(&op, root, attr_root_level(w), 0));
	if (err)
		goto out_unlock;
	attr_set_node(&op, root, attr_root_level(w), 0);
	PM_BUG_ON(op.used != op.nr_spare);     /* the count and the walk agree */
	attr_stale_trim(s, PM_ATTR_STALE);
out_unlock:
	attr_unlock_all(s);
	/* Retired nodes become reusable without holding up other writers. */
	pm_recycler_maintain(&s->recycler);
	return err;
}

/* ---- set with a reservation -------------------------------------------- */

int pm_attr_reach(struct pm_attr_store *s, gfn_t end)
{
	int err;

	PM_BUG_ON(end > ATTR_GFN_LIMIT);
	attr_lock_all(s);
	err = attr_grow_root(s, end);
	attr_unlock_all(s);
	return err;
}

int pm_attr_reserve(struct pm_attr_store *s, gfn_t start, gfn_t end, uint64_t attrs,
		    struct pm_attr_reservation *res)
{
	struct attr_set_op op = { .store = s, .start = start, .end = end, .attrs = attrs };
	uintptr_t w;
	int err = 0, needed = ATTR_MAX_SPLITS;

	PM_BUG_ON(start >= end || end > ATTR_GFN_LIMIT);
	res->nr = 0;
	if (attrs != PM_ATTR_ANY_SET) {
		PM_BUG_ON(attrs >= ATTR_VALUE_LIMIT);
		attr_lock_all(s);
		err = attr_grow_root(s, end);
		w = atomic_load_explicit(&s->root, memory_order_relaxed);
		if (!err)
			needed = attr_count_node(&op, attr_root_node(w), attr_root_level(w), 0);
		attr_unlock_all(s);
		if (err)
			return err;
	}
	err = attr_prealloc(&op, needed);
	if (err)
		return err;
	memcpy(res->node, op.spare, sizeof(op.spare[0]) * (size_t)op.nr_spare);
	res->nr = op.nr_spare;
	return 0;
}

void pm_attr_unreserve(struct pm_attr_store *s, struct pm_attr_reservation *res)
{
	while (res->nr > 0)
		attr_node_free_unpublished(s, res->node[--res->nr]);
}

void pm_attr_set_reserved(struct pm_attr_store *s, gfn_t start, gfn_t end, uint64_t attrs,
			  struct pm_attr_reservation *res)
{
	struct attr_set_op op = { .store = s, .start = start, .end = end, .attrs = attrs };
	uintptr_t w;
	int needed;

	PM_BUG_ON(start >= end || end > ATTR_GFN_LIMIT || attrs >= ATTR_VALUE_LIMIT);
	if (!attr_set_in_leaf(s, start, end, attrs)) {
		attr_lock_all(s);
		w = atomic_load_explicit(&s->root, memory_order_relaxed);
		/* The reservation's promise: the root covers the range, and the
		 * nodes the set needs are reserved. */
		PM_BUG_ON(end > attr_span(attr_root_level(w) + 1));
		needed = attr_count_node(&op, attr_root_node(w), attr_root_level(w), 0);
		PM_BUG_ON(needed > res->nr);
		memcpy(op.spare, res->node + res->nr - needed, sizeof(op.spare[0]) * (size_t)needed);
		op.nr_spare = needed;
		res->nr -= needed;
		attr_set_node(&op, attr_root_node(w), attr_root_level(w), 0);
		PM_BUG_ON(op.used != op.nr_spare);
		attr_stale_trim(s, PM_ATTR_STALE);
		attr_unlock_all(s);
	}
	pm_attr_unreserve(s, res);
	pm_recycler_maintain(&s->recycler);
}

void pm_attr_compact(struct pm_attr_store *s)
{
	attr_lock_all(s);
	attr_stale_trim(s, 0);
	attr_unlock_all(s);
	pm_recycler_maintain(&s->recycler);
}

/* SPDX-License-Identifier: MIT */
/*
 * The memory-attribute store of a VM: gfn -> attributes (KVM_MEMORY_ATTRIBUTE_*).
 *
 * A radix tree of 512-entry nodes over the 52-bit gfn space (up to 6 levels:
 * a level-L entry covers 512^L gfns, so level 1 is 2M and level 2 is 1G).
 * The root starts at level 2 (512 GiB) and is raised when a set reaches
 * beyond it, so a VM's tree is only as tall as its addresses need: a 4K
 * conversion in a uniform region splits (and later collapses) two nodes,
 * not five. An
 * entry is either a value, uniform over everything it covers, or a pointer
 * to a child node. The tree is kept canonical: a node whose 512 entries are
 * the same value is replaced by that value in its parent, except for up to
 * PM_ATTR_STALE uniform leaves kept linked so that 4K conversions back and
 * forth do not allocate and retire nodes each time (attr.c). Hence
 *  - memory grows with the number of range boundaries, not with pages
 *    (a 1 TiB range set in one call is two entries), plus at most
 *    PM_ATTR_STALE leaves;
 *  - whether a 2M (level 1) or 1G (level 2) block is "mixed" is read off
 *    its entry (a value, or a leaf marked uniform) in O(1), and for 1G by
 *    looking through the stale leaves of its node; that is how the MMU
 *    tells whether a huge mapping is allowed.
 *
 * Locking: a set inside one existing leaf (a 2M block's node of 4K
 * entries) that leaves it mixed changes only that leaf, under the leaf's
 * stripe lock (one of PM_ATTR_STRIPES, by leaf address): sets of different
 * leaves run in parallel. Every other set changes the structure (splits,
 * collapses, the stale ring, the root) and takes store->lock and then every
 * stripe in order, excluding all writers. Readers take no lock: they run
 * inside an RCU read-side section (taken by the accessors themselves), see
 * every entry atomically, and nodes are freed after a grace period. A reader
 * racing with a writer may see the old or the new value of any gfn in the
 * range being changed; callers order this with the invalidation protocol.
 */
#ifndef PM_MEMSLOT_ATTR_H
#define PM_MEMSLOT_ATTR_H

#include <pthread.h>
#include "lib/common.h"
#include "lib/recycle.h"

#define PM_ATTR_LEVELS    6  /* levels 0 (4K entries) .. 5 (root) */
#define PM_ATTR_LEVEL_2M  1
#define PM_ATTR_LEVEL_1G  2

/* Uniform leaves kept linked between sets (attr.c: "stale leaves"); a set
 * adds at most two (its boundaries) before trimming. */
#define PM_ATTR_STALE      64
#define PM_ATTR_STALE_RING (PM_ATTR_STALE + 2)

struct pm_attr_node;

#define PM_ATTR_STRIPES 16

struct pm_attr_stripe {
	_Alignas(64) pthread_mutex_t lock;  /* a leaf's fast-path sets; all for structure */
};

struct pm_attr_store {
	pthread_mutex_t lock;              /* serialises structural writers (then: stripes) */
	struct pm_attr_stripe stripes[PM_ATTR_STRIPES];
	_Atomic uintptr_t root;            /* the root node | its level (low 3 bits):
	                                    * one word, so readers always walk a root
	                                    * with its own level; never 0 after init */
	atomic_size_t nodes;               /* live nodes, for memory accounting */
	struct pm_recycler recycler;       /* node allocation; reuse after a grace period */
	/* Positions of leaves kept linked while uniform (see attr.c), oldest
	 * first; all three under lock and every stripe. */
	gfn_t stale[PM_ATTR_STALE_RING];
	unsigned int stale_head, nr_stale;
};

int pm_attr_init(struct pm_attr_store *s);      /* 0 or -ENOMEM */
void pm_attr_destroy(struct pm_attr_store *s);  /* no concurrent users */

/* Attributes of gfn (0 = shared, the initial state of all memory). */
uint64_t pm_attr_get(struct pm_attr_store *s, gfn_t gfn);

/* Sets [start, end) to attrs (start < end <= 1 << 52; attrs < 1 << 62).
 * Either the whole range changes or, on -ENOMEM, nothing does. */
int pm_attr_set(struct pm_attr_store *s, gfn_t start, gfn_t end, uint64_t attrs);

/*
 * A set that cannot fail, for callers that must know before they change
 * anything else (guest_memfd's conversions and pKVM's unshares commit the
 * state last, after irreversible steps): pm_attr_reserve takes the nodes a
 * set of [start, end) to attrs will need (or every node any set could
 * need, PM_ATTR_MAX_NODES, with attrs == PM_ATTR_ANY_SET), -ENOMEM with
 * nothing held; pm_attr_set_reserved makes a set with them and gives the
 * rest back; pm_attr_unreserve gives them all back. An exact reservation
 * stays right only while no other set runs on the store between the two
 * calls (the caller's lock); a PM_ATTR_ANY_SET one for any one set within
 * the root's span (pm_attr_reach). The store's locks are not held between
 * the calls.
 */
#define PM_ATTR_MAX_NODES (2 * (PM_ATTR_LEVELS - 1))
#define PM_ATTR_ANY_SET   (~0ULL)
struct pm_attr_node;
struct pm_attr_reservation {
	struct pm_attr_node *node[PM_ATTR_MAX_NODES];
	int nr;
};
int pm_attr_reserve(struct pm_attr_store *s, gfn_t start, gfn_t end, uint64_t attrs,
		    struct pm_attr_reservation *res);
void pm_attr_set_reserved(struct pm_attr_store *s, gfn_t start, gfn_t end, uint64_t attrs,
			  struct pm_attr_reservation *res);
void pm_attr_unreserve(struct pm_attr_store *s, struct pm_attr_reservation *res);
/* Raises the root to cover [0, end) now, so that no later set within it
 * needs to (sets with a reservation never raise it): 0 or -ENOMEM. */
int pm_attr_reach(struct pm_attr_store *s, gfn_t end);

/* The value of gfn and, in *run_end, a gfn up to which (exclusive) every
 * gfn from gfn on has it too (the end of the entry it came from: a run may
 * continue past it). */
uint64_t pm_attr_get_run(struct pm_attr_store *s, gfn_t gfn, gfn_t *run_end);

/* True if every gfn in [start, end) has exactly attrs. */
bool pm_attr_range_is(struct pm_attr_store *s, gfn_t start, gfn_t end, uint64_t attrs);

/* True if the naturally aligned block of level `level` (1: 2M, 2: 1G; no
 * other) containing gfn does not have one value throughout. */
bool pm_attr_mixed(struct pm_attr_store *s, gfn_t gfn, int level);

/* The root's level: 2 (512 GiB) at first, raised as sets reach higher
 * gfns (never lowered). Gfns beyond the root's span are shared. */
int pm_attr_root_level(struct pm_attr_store *s);

/* Bytes of one node: 512 entries, the writer's counters, the uniform word. */
#define PM_ATTR_NODE_BYTES (512 * 8 + 16)

/* Bytes of memory the store uses (nodes). */
size_t pm_attr_memory(struct pm_attr_store *s);
/* Collapses every stale uniform leaf: the tree becomes fully canonical
 * (memory is then exactly what the boundaries need). Not in a read section. */
void pm_attr_compact(struct pm_attr_store *s);

/* For tests only: after n more successful node allocations (by any store),
 * every further one fails, until called again; n < 0 disarms. */
void pm_attr_test_fail_alloc(int n);

#endif

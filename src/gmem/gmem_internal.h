/* SPDX-License-Identifier: MIT */
/*
 * guest_memfd internals shared by gmem.c (pages, bindings, lifetime) and
 * gmem_mmap.c (views). See gmem.h for ownership and locking.
 */
#ifndef PM_GMEM_INTERNAL_H
#define PM_GMEM_INTERNAL_H

#include <privmem/kvm.h>
#include "gmem/gmem.h"
#include "lib/brlock.h"

/*
 * Index entries (64-bit atomics), three levels: level 2 entries cover 1G of
 * the file (the `top` array), level 1 entries 2M, level 0 entries 4K.
 *   0                              empty
 *   pfn << 12 | GE_FOLIO | flags   a page of order 9 * level starting at pfn
 *   node pointer | GE_TABLE        512 entries of the level below (malloc'd: the
 *                                  two kind bits are free in the pointer)
 *
 * Occupancy: each node ends with GE_USED_WORDS words after its entries, a
 * bit per entry, and the file has top_used for its top entries. A bit is
 * set before its entry may become non-empty (a fill sets it, then installs
 * by compare-and-exchange) and cleared when the entry is emptied, under the
 * entry's whole span held exclusively, so under any stripe held "bit clear"
 * means "entry empty". A punch visits only entries whose bit is set: empty
 * parts of the file cost a word per 64 entries, an empty node a few words.
 */
#define GE_FOLIO     0x1ULL
#define GE_TABLE     0x2ULL
#define GE_PREPARED  0x4ULL  /* the model's prepare hook ran for this page */
#define GE_POISON    0x8ULL  /* memory failure (level 0 only) */
#define GE_KIND_MASK 0x3ULL
#define GE_FLAG_MASK 0xfffULL

#define GE_LEVEL_SHIFT(l) (9u * (l))
#define GE_ENTRIES   512
#define GE_USED_WORDS (GE_ENTRIES / 64)

static inline bool ge_is_folio(uint64_t e) { return (e & GE_KIND_MASK) == GE_FOLIO; }
static inline bool ge_is_table(uint64_t e) { return (e & GE_KIND_MASK) == GE_TABLE; }
static inline pm_pfn_t ge_pfn(uint64_t e) { return e >> PM_PAGE_SHIFT; }
static inline _Atomic uint64_t *ge_table(uint64_t e) { return (_Atomic uint64_t *)(uintptr_t)(e & ~GE_KIND_MASK); }
static inline uint64_t ge_make_folio(pm_pfn_t pfn, uint64_t flags) { return pfn << PM_PAGE_SHIFT | GE_FOLIO | flags; }
static inline uint64_t ge_make_table(_Atomic uint64_t *node) { return (uint64_t)(uintptr_t)node | GE_TABLE; }
/* A node's occupancy bits (see above), after its entries. */
static inline _Atomic uint64_t *ge_node_used(_Atomic uint64_t *node) { return node + GE_ENTRIES; }

struct pm_gmem_binding {
	struct pm_memslot *slot;
	uint64_t start, end;                /* file pages [start, end) */
	struct pm_gmem_binding *next;
};

struct pm_gmem_view;

/*
 * Index stripes (see gmem.h, "Index locking"): file page i lies in 2M block
 * i >> 9, locked by stripe gmem_stripe_of(block). Each stripe is on cache
 * lines of its own, with the share of the file's statistics changed by
 * operations on its blocks, so operations on blocks of different stripes
 * write no common line. A file's totals are the sums over its stripes:
 * exact whenever no operation is running. A share may wrap below zero (a
 * page counted in one stripe can be removed under another: a 1G page), the
 * sum never does. At most 32: an operation may hold them all, and
 * ThreadSanitizer tracks at most 64 locks held by one thread.
 */
#define GMEM_MAX_STRIPES 32

struct pm_gmem_stripe {
	_Alignas(64)
	pthread_rwlock_t lock;              /* the index entries of its blocks */
	/* Statistics: atomics, no lock (shared holders count concurrently). */
	atomic_uint_fast64_t pages;         /* 4K pages in the index */
	atomic_uint_fast64_t folios[3];     /* pages of order 0/9/18 in the index */
	atomic_uint_fast64_t splits;        /* huge pages split */
	atomic_uint_fast64_t poisoned;      /* pages marked POISON */
};

struct pm_gmem {
	/* Written by every file operation (the handle's reference): a line of
	 * its own, away from the fields operations read. */
	_Alignas(64)
	pm_refcount_t refs;
	_Alignas(64)
	struct pm_vm *vm;                   /* referenced; immutable */
	uint64_t size;                      /* bytes; immutable */
	uint64_t npages;                    /* immutable */
	uint64_t flags;                     /* GUEST_MEMFD_FLAG_* | PM_GUEST_MEMFD_FLAG_*; immutable */
	uint64_t ino;                       /* immutable */
	unsigned int max_order;             /* immutable */

	struct pm_gmem_binding *bindings;   /* bindings_lock */

	_Atomic uint64_t *top;              /* nr_top entries of level 2: the stripes
	                                     * (pointer immutable) */
	uint64_t nr_top;                    /* immutable */
	_Atomic uint64_t *top_used;         /* occupancy bits of top (see above; pointer
	                                     * immutable) */
	struct pm_gmem_stripe *stripes;     /* nr_stripes; immutable */
	unsigned int nr_stripes;            /* a power of two <= GMEM_MAX_STRIPES; immutable */
	unsigned int stripe_shift;          /* 64 - log2(nr_stripes), for hashing; immutable */
	bool stripe_hash;                   /* more blocks than stripes; immutable */

	/* views_lock: the views, the pins, and every change of which pages
	 * the host may map (pm_gmem_host_unmap). Lock order: views_lock, then
	 * the model's hardware locks (a pKVM unshare runs under it). */
	pthread_mutex_t views_lock;
	struct pm_gmem_view *views;         /* views_lock */
	atomic_uint nr_views;               /* written under views_lock; read without it */
	struct pm_gmem_pin_rec *pins;       /* views_lock: pinned pages, nr_pins of cap_pins */
	_Atomic size_t nr_pins;             /* views_lock; read without it as a hint */
	size_t cap_pins;                    /* views_lock */

	/* The bindings: a big-reader lock (lib/brlock.h), so punches on
	 * different threads, which hold it shared, write no common line;
	 * bind, unbind and release take it for writing. */
	struct pm_brlock bindings_lock;
};

/* A pinned file page and its pin count (PM_GUEST_MEMFD_PIN). */
struct pm_gmem_pin_rec {
	uint64_t index;
	unsigned int count;
};

/* Is file page `index` accessible to the host through mmap? (INIT_SHARED;
 * a model with gmem_host_mappable decides per frame, see gmem_mmap.c) */
static inline bool pm_gmem_host_shared(const struct pm_gmem *g, uint64_t index)
{
	return (g->flags & GUEST_MEMFD_FLAG_INIT_SHARED) && index < g->npages;
}

/* Drops the pins of [start, end) (punch hole). */
void pm_gmem_pins_drop(struct pm_gmem *g, uint64_t start, uint64_t end);

/* Frame of `index` if allocated (not poisoned), else PM_PFN_INVALID;
 * allocates nothing. Takes the page's stripe, shared. */
pm_pfn_t pm_gmem_peek_pfn(struct pm_gmem *g, uint64_t index);

/* Views: make [start, end) of every view SIGBUS (before frames are freed),
 * and map the current frames again (after), populating shared pages. */
void pm_gmem_views_revoke(struct pm_gmem *g, uint64_t start, uint64_t end);
void pm_gmem_views_refresh(struct pm_gmem *g, uint64_t start, uint64_t end);

#endif

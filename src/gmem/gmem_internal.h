/* SPDX-License-Identifier: MIT */
/*
 * guest_memfd internals shared by gmem.c (pages, bindings, lifetime),
 * gmem_hostmap.c (the per-page record of the host's access), gmem_host.c
 * (the host file and what moves in and out of it) and gmem_mmap.c
 * (views). See gmem.h for ownership and locking.
 */
#ifndef PM_GMEM_INTERNAL_H
#define PM_GMEM_INTERNAL_H

#include <privmem/kvm.h>
#include "gmem/gmem.h"
#include "lib/brlock.h"
#include "memslot/attr.h"
#include "memslot/invalidate.h"

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
struct gmem_mpol_range;
struct pm_node_policy;

/*
 * The host map (gmem_hostmap.c): one 32-bit word per file page saying what
 * the host has of it, in a sparse two-level table under a per-GiB array:
 * a GiB's node holds 512 leaves, a leaf 512 words. Nodes are made on
 * demand (hm_reserve) and freed with the file. Every node counts its
 * pinned and its marked pages (HOST, MOVING or POISON), so "the next pinned page"
 * and "every marked page of a range" skip the empty parts of the file:
 * a pin, an unpin or a lookup costs O(1) per page, a scan the parts of the
 * range that have something.
 *   bits 0-28   pins (PM_GUEST_MEMFD_PIN), nested
 *   HM_POISON   memory failure of an INIT_SHARED page: the host file has a
 *               hole there, so that views fault
 *   HM_MOVING   the page's contents are being copied between the host
 *               file and the frame (pKVM): guest accesses wait (translate
 *               again)
 * Whether the page's contents live in the host file is not here: it is
 * the file's shared/private state (gmem_attrs.c), once H is in use.
 * Writers hold the file's host_lock; readers of a word (the vCPUs'
 * translation) take no lock: nodes are published with release stores and
 * never freed while the file lives.
 */
#define HM_PINS   0x1fffffffu
#define HM_POISON (1u << 29)
#define HM_MOVING (1u << 30)
#define HM_MARKS  (HM_MOVING | HM_POISON)

struct gmem_hleaf {
	_Atomic uint32_t e[GE_ENTRIES];
	uint32_t pinned, marked;            /* host_lock: words with pins / with a mark */
};

struct gmem_hnode {
	struct gmem_hleaf *_Atomic leaf[GE_ENTRIES];
	uint32_t pinned, marked;            /* host_lock: the sums of its leaves' */
};

struct gmem_hostmap {
	struct gmem_hnode *_Atomic *top;    /* one per GiB of file; array immutable */
	uint64_t nr_top;                    /* immutable */
	_Atomic uint64_t pinned, marked;    /* host_lock; read without it as hints */
};

enum hm_which { HM_NEXT_PINNED, HM_NEXT_MARKED };

int hm_init(struct gmem_hostmap *m, uint64_t npages);
void hm_destroy(struct gmem_hostmap *m);
/* The word of page i (0 if none was ever stored); no lock. */
uint32_t hm_get(const struct gmem_hostmap *m, uint64_t i);
/* Makes the words of [start, end) storable: 0 or -ENOMEM. host_lock. */
int hm_reserve(struct gmem_hostmap *m, uint64_t start, uint64_t end);
/* Stores page i's word (reserved), keeping the counts. host_lock. */
void hm_store(struct gmem_hostmap *m, uint64_t i, uint32_t w);
/* The first page of [start, end) that is pinned / marked, or end. host_lock. */
uint64_t hm_next(const struct gmem_hostmap *m, uint64_t start, uint64_t end, enum hm_which which);

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
	atomic_uint_fast64_t node_pages[PM_POOL_MAX_NODES]; /* pages by the node of their frames */
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

	/* The host's side (gmem_host.c). host_lock: every change of what the
	 * host file holds and of the host map (pins included), and the views.
	 * Lock order: host_lock, then the model's hardware locks (a pKVM
	 * unshare runs under it), then the index stripes. */
	pthread_mutex_t host_lock;
	int host_fd;                        /* the host file H (a memfd of the file's
	                                     * size), or -1 without GUEST_MEMFD_FLAG_MMAP;
	                                     * immutable */
	uint8_t *host_win;                  /* the library's own mapping of H (guest
	                                     * accesses to pages whose contents are in
	                                     * H); immutable */
	size_t host_win_len;                /* immutable */
	atomic_bool host_exposed;           /* H holds every page the host may map:
	                                     * from the first view on (an INIT_SHARED
	                                     * file's: from creation); before, nothing
	                                     * can map H and shared pages stay in their
	                                     * frames. Set once, under host_lock */
	struct gmem_hostmap hmap;           /* see above */
	struct pm_gmem_view *views;         /* host_lock */
	atomic_uint nr_views;               /* written under host_lock; read without it */

	/* The bindings: a big-reader lock (lib/brlock.h), so punches on
	 * different threads, which hold it shared, write no common line;
	 * bind, unbind and release take it for writing. */
	struct pm_brlock bindings_lock;

	/* NUMA memory policy (gmem_numa.c): sorted, disjoint ranges of file
	 * pages with their policy, under mpol.lock; nr_ranges lets an
	 * allocation of a file without any skip the lock. */
	struct gmem_mpol {
		pthread_mutex_t lock;
		struct gmem_mpol_range *v;  /* lock */
		size_t n, cap;              /* lock */
		atomic_uint nr_ranges;      /* n, written under lock */
	} mpol;

	/* write()'s file position (f_pos: a guest_memfd has one open file
	 * description, its handle), under pos_lock, which serialises
	 * write() calls as Linux's f_pos_lock does. */
	pthread_mutex_t pos_lock;
	uint64_t pos;                       /* pos_lock */

	/* The shared/private state of every page (gmem_attrs.c): the
	 * attribute store (memslot/attr.h) indexed by file page, holding
	 * each page's attributes XOR attrs_default, so that pages never
	 * converted need no entry (a missing entry is the file's initial
	 * state, the later snapshot's kvm_gmem_get_default_attributes).
	 * Written under host_lock only (conversions, pKVM's shares); read
	 * without a lock (RCU), ordered by the invalidation protocol. */
	struct pm_attr_store attrs;
	uint64_t attrs_default;             /* KVM_MEMORY_ATTRIBUTE_PRIVATE unless
	                                     * INIT_SHARED; immutable */
	bool in_place;                      /* the VM's vm->in_place; immutable */
	/* KVM_SET_MEMORY_ATTRIBUTES2 on this file, one at a time (the
	 * mapping's invalidate lock of the series): outside bindings_lock. */
	pthread_mutex_t conv_lock;
};

/* ---- the bindings lock (a big-reader lock: lib/brlock.h) ---- */

/* Shared; returns the slot to give back to gmem_bindings_read_unlock(). */
static inline unsigned int gmem_bindings_read_lock(struct pm_gmem *g)
{
	return pm_brlock_read_lock(&g->bindings_lock);
}

static inline void gmem_bindings_read_unlock(struct pm_gmem *g, unsigned int slot)
{
	pm_brlock_read_unlock(&g->bindings_lock, slot);
}

static inline void gmem_bindings_write_lock(struct pm_gmem *g)
{
	pm_brlock_write_lock(&g->bindings_lock);
}

static inline void gmem_bindings_write_unlock(struct pm_gmem *g)
{
	pm_brlock_write_unlock(&g->bindings_lock);
}

/* Invalidates the gfns of every binding overlapping file pages [start,
 * end) for `cause` (filter 0: private mappings, or all of them on
 * gmem-only slots); the tickets go in `local` when they fit (the usual one
 * or two slots). bindings_lock held. 0 or -ENOMEM (nothing begun). */
#define GMEM_TICKETS_INLINE 4
int gmem_inval_begin(struct pm_gmem *g, uint64_t start, uint64_t end, unsigned int filter,
		     enum pm_inval_cause cause, struct pm_inval_ticket *local,
		     struct pm_inval_ticket **tickets, size_t *n);
void gmem_inval_end(struct pm_gmem *g, struct pm_inval_ticket *tickets, size_t n,
		    struct pm_inval_ticket *local);

/* ---- the shared/private state (gmem_attrs.c) ---- */

int gmem_attrs_init(struct pm_gmem *g);
void gmem_attrs_destroy(struct pm_gmem *g);
/* Page i is shared (the host may have it). Lock-free. */
bool gmem_page_shared(struct pm_gmem *g, uint64_t i);
/* The state of page i and, in *run_end, a page up to which (exclusive,
 * at most end) every page has it too. Lock-free. */
bool gmem_shared_run(struct pm_gmem *g, uint64_t i, uint64_t end, uint64_t *run_end);
/* The 2M (level 1) or 1G (level 2) block of the file around page i holds
 * both states. Lock-free. */
bool gmem_attrs_mixed(struct pm_gmem *g, uint64_t i, int level);
/* Pages [start, end) become shared (or private). host_lock held; cannot
 * fail: res holds the store's nodes (pm_attr_reserve). */
void gmem_attrs_set_locked(struct pm_gmem *g, uint64_t start, uint64_t end, bool shared,
			   struct pm_attr_reservation *res);
/* The same without a reservation (host_lock; pKVM's shares): 0 or
 * -ENOMEM with nothing changed. */
int gmem_attrs_set(struct pm_gmem *g, uint64_t start, uint64_t end, bool shared);
/* Every page of [start, end) is private. Lock-free. */
bool gmem_range_private(struct pm_gmem *g, uint64_t start, uint64_t end);
/* Reserves the nodes a set of [start, end) to `shared` needs (exact: the
 * caller keeps other writers out until it sets), or, with `any`, what any
 * one set needs: 0 or -ENOMEM. */
int gmem_attrs_reserve(struct pm_gmem *g, uint64_t start, uint64_t end, bool shared, bool any,
		       struct pm_attr_reservation *res);
void gmem_attrs_unreserve(struct pm_gmem *g, struct pm_attr_reservation *res);

/* Pages [start, end) that go shared leave the guest's hardware: their
 * prepared marks go (the next private use prepares again) and the model's
 * invalidate hook takes back the frames (SNP: RMP back to the hypervisor;
 * the arch hook of 15/46). Takes the range's stripes, shared. */
void gmem_unprepare(struct pm_gmem *g, uint64_t start, uint64_t end);

static inline bool gmem_init_shared(const struct pm_gmem *g)
{
	return g->flags & GUEST_MEMFD_FLAG_INIT_SHARED;
}

/* Frame of `index` if allocated (not poisoned), else PM_PFN_INVALID;
 * allocates nothing. Takes the page's stripe, shared. */
pm_pfn_t pm_gmem_peek_pfn(struct pm_gmem *g, uint64_t index);
/* The first page of [start, end) the index holds, or end: a snapshot, each
 * 2M block looked at under its stripe (shared), empty GiBs skipped. */
uint64_t gmem_next_page(struct pm_gmem *g, uint64_t start, uint64_t end);

/* The file's NUMA policy (gmem_numa.c): set up and freed with the file;
 * the pool policy for an allocation of order `order` at file page `first`
 * (filled in *p), or NULL for the pool's default. */
void gmem_mpol_init(struct pm_gmem *g);
void gmem_mpol_destroy(struct pm_gmem *g);
const struct pm_node_policy *gmem_mpol_for(struct pm_gmem *g, uint64_t first, unsigned int order,
					   struct pm_node_policy *p);

/* Runs fn(arg, pfn) on the frame of file page `index` (allocated if
 * needed), with the page's stripe held shared: a punch cannot free the
 * frame meanwhile. fn's result, -EINVAL past the end, -ENOMEM,
 * -EHWPOISON. */
int gmem_with_frame(struct pm_gmem *g, uint64_t index, int (*fn)(void *arg, pm_pfn_t pfn),
		    void *arg);
/* May the host access page i now (host_lock held)? An INIT_SHARED page
 * that is not poisoned (allocated now if it was not), a page in H, or
 * while H is not used a frame the model lets the host map. */
bool gmem_host_may_access_locked(struct pm_gmem *g, uint64_t i);

/* The host's side (gmem_host.c). init: the host map, and H with the
 * library's window on it for a file with GUEST_MEMFD_FLAG_MMAP (0 or
 * -errno); destroy: everything in H goes, for every mapping of it. */
int gmem_host_init(struct pm_gmem *g);
void gmem_host_destroy(struct pm_gmem *g);
/* Makes the host map of [start, end) storable ahead of a change that must
 * not fail (memory failure): 0 or -ENOMEM. */
int gmem_host_reserve(struct pm_gmem *g, uint64_t start, uint64_t end);
/* Pages [start, end) leave the file (punch hole, after the invalidation
 * and the index update, before their frames are freed): their contents
 * leave H, in every mapping of it (an INIT_SHARED file with views: H is
 * zeroed in place, so a racing host access sees old or zero, never a
 * fault), and their marks and pins go. */
void gmem_host_punch(struct pm_gmem *g, uint64_t start, uint64_t end);
/* File page `index` was poisoned: the host loses it (a hole in H, so that
 * views fault); its host map word was reserved. */
void gmem_host_poison(struct pm_gmem *g, uint64_t index);
/* A view is being made (host_lock): from now on H holds every page the
 * host may map; the pages a model shares already come in now. */
void gmem_host_expose_locked(struct pm_gmem *g);
/* H holds the file's shared pages from creation on, and the state is
 * written only by conversions: every file but those of a model that
 * decides per frame (pKVM's: its shares write the state, and H holds the
 * shared pages from the first view on). */
bool gmem_host_by_state(const struct pm_gmem *g);
/* The host may map page i now: shared, not poisoned (state files). */
bool gmem_host_showable(struct pm_gmem *g, uint64_t i);
/* Fills H's holes in [start, end) where the host may map pages (a view is
 * about to show them); failures leave holes (faults, as a host page fault
 * without memory). host_lock. */
void gmem_host_populate_locked(struct pm_gmem *g, uint64_t start, uint64_t end);
/* In-place conversion, host_lock held, inside the conversion's
 * invalidation (no vCPU maps the range):
 * to private: -EAGAIN (*err_index: the first page the host pins), or the
 * shared pages' contents go from H back to their frames and H loses them,
 * in every mapping (-ENOMEM, nothing changed, if a frame is missing);
 * to shared: the private pages' frames are copied into H (-ENOMEM, nothing
 * changed, if H cannot take them), unless the model hides private contents
 * from the host (their H pages read zero), then the frames leave the
 * guest's hardware (gmem_unprepare); *complete: every page that went shared
 * had a frame and is in H now (views need nothing more).
 * The copy comes before the hook: no model both keeps contents and has a
 * hook, and the copies are the simulation's bookkeeping, not host
 * accesses (see gmem_host.c). */
int gmem_host_make_private_locked(struct pm_gmem *g, uint64_t start, uint64_t end,
				  uint64_t *err_index);
int gmem_host_make_shared_locked(struct pm_gmem *g, uint64_t start, uint64_t end, bool *complete);

/* Views (gmem_mmap.c): the shared pages that views show are allocated in
 * the index and H (a host fault would allocate them; privmem has no fault
 * handler, so views populate ahead), again after a punch or a conversion
 * to shared. The _locked variant: host_lock held. */
void gmem_views_populate(struct pm_gmem *g, uint64_t start, uint64_t end);
void gmem_views_populate_locked(struct pm_gmem *g, uint64_t start, uint64_t end);
/* Tests: views made from now on are plain mappings of H (as without
 * userfaultfd): holes read zeros instead of faulting. */
void pm_gmem_views_test_plain(bool plain);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * The frame pool's insides, shared by its files (interface in pool.h):
 *
 *   pool.c          the pool object: pool_lock, configuration, creation and
 *                   teardown, the shared allocation and free paths,
 *                   translation, statistics
 *   pool_buddy.c    the buddy allocator: free lists, splitting, merging,
 *                   which block holds a frame
 *   pool_backing.c  the host memory behind the frames: population, the
 *                   watermark, freed runs in transit (scrub or release to
 *                   the OS), trimming
 *   pool_cache.c    the per-thread caches of 4K frames, their draining, and
 *                   the entry points pm_pool_alloc() and pm_pool_free()
 *
 * State: one struct pool (pm_pool) and one struct pm_frame per frame, both
 * protected by pool_lock (pool.c), which is taken only through
 * pool_lock_take() and pool_lock_drop(); the exceptions (frame words read
 * in a pool_seq read section, a cached frame's word changed under its
 * cache's lock, fields a run's holder may read) are said where they apply.
 * Lock order: pool_caches_lock > a cache's lock > pool_lock (pool.c).
 */
#ifndef PM_HOST_POOL_INTERNAL_H
#define PM_HOST_POOL_INTERNAL_H

#include <assert.h>
#include <inttypes.h>
#include "host/host_guard.h"
#include "host/pool.h"

/* Host memory is populated and released in chunks of 2 MiB. */
#define CHUNK_ORDER  PM_ORDER_2M
#define CHUNK_FRAMES (1ULL << CHUNK_ORDER)
#define CHUNK_SIZE   (CHUNK_FRAMES << PM_PAGE_SHIFT)
/* Chunks a single run can cover (a max-order run). */
#define RUN_MAX_CHUNKS (1u << (PM_POOL_MAX_ORDER - CHUNK_ORDER))

/* Frame indices are uint32_t and FRAME_NIL is none of them. */
#define FRAME_NIL       UINT32_MAX
#define POOL_MAX_FRAMES ((1ULL << 32) - CHUNK_FRAMES)
#define POOL_MAX_SIZE   (POOL_MAX_FRAMES << PM_PAGE_SHIFT)

enum frame_state {
	FRAME_PLAIN = 0, /* allocated, or inside a block without being its head */
	FRAME_FREE,      /* head of a block on the free list of its order */
	FRAME_TRANSIT,   /* head of a run being zeroed, on no list */
	FRAME_CACHED,    /* a free 4K frame in a thread's cache (order 0) */
	FRAME_ALLOC4K,   /* an allocated 4K block handed out by a cache: freeing
	                  * it needs no search for a block containing it */
};

/* A frame's state and, on a head, its block's order, in one word: a reader
 * without pool_lock sees the two consistently. A PLAIN frame's word is 0. */
#define FRAME_WORD(state, order) ((uint16_t)((unsigned int)(state) | (order) << 8))

/* One per frame. next and prev are protected by pool_lock and meaningful on
 * a FREE head only. */
struct pm_frame {
	uint32_t next;  /* FREE: next block on the same list, or FRAME_NIL */
	uint32_t prev;  /* FREE: previous block, or FRAME_NIL */
	/* FRAME_WORD(enum frame_state, order): written under pool_lock, except
	 * PLAIN or ALLOC4K <-> CACHED by the holder of the cache the frame
	 * enters or leaves; read under pool_lock or in a pool_seq read section. */
	_Atomic uint16_t word;
};
static_assert(sizeof(struct pm_frame) <= 16, "struct pm_frame must stay within 16 bytes");

struct pool {
	/* Configuration: what the next pool is created with, and the watermark. */
	bool config_read;     /* the environment has been read */
	uint64_t config_size; /* bytes */
	uint64_t watermark;   /* bytes */

	/* The live pool. base and nr_frames change only when the pool is
	 * created or destroyed, which configure refuses while any run is
	 * allocated or in transit: a thread holding a run may read them without
	 * pool_lock. */
	bool live;
	char *base;
	uint64_t nr_frames;
	struct pm_frame *frames; /* nr_frames entries */
	uint64_t *populated;     /* bitmap, one bit per 2 MiB chunk */
	bool thp;

	/* Simulated NUMA nodes: node n is frames [n * node_frames, ...), the
	 * last up to nr_frames. Immutable while the pool lives, like base. */
	unsigned int nr_nodes;
	uint64_t node_frames;    /* a multiple of CHUNK_FRAMES */
	unsigned int config_nodes; /* what the next pool is created with */
	/* One set of free lists per node: no block spans two nodes. */
	uint32_t free_list[PM_POOL_MAX_NODES][PM_POOL_MAX_ORDER + 1]; /* first block, or FRAME_NIL */
	uint64_t node_allocated[PM_POOL_MAX_NODES]; /* nr_allocated's share of each node */
	uint64_t nr_free[PM_POOL_MAX_ORDER + 1];   /* blocks on each list */
	uint64_t nr_populated; /* chunks whose bit is set */
	uint64_t nr_allocated; /* frames handed out, or cached (off the lists, not in transit) */
	uint64_t nr_scrubbing; /* frames in transit to a memset (still populated) */
	uint64_t nr_transit;   /* runs in transit */

	uint64_t scrubbed;       /* bytes, since creation */
	uint64_t released;       /* bytes, since creation */
	uint64_t alloc_failures; /* since creation */
};

/* A run in transit between pm_pool_free() (or trim) and the free lists.
 * Owned by the thread moving it; the run's head frame is FRAME_TRANSIT. */
struct transit {
	uint64_t pfn;
	unsigned int order;
	bool dirty;                 /* holds a previous owner's data (a freed run) */
	uint64_t scrub_frames;      /* frames to memset (counted in nr_scrubbing) */
	uint64_t release[(RUN_MAX_CHUNKS + 63) / 64]; /* chunks (of the run) to punch */
	uint64_t nr_release;        /* bits set in release; already unpopulated */
	uint64_t scrubbed;          /* out: bytes zeroed by memset */
	uint64_t released;          /* out: bytes returned to the OS */
};

/* Protected by pool_lock (pool.c). */
extern struct pool pm_pool;
/* Whether this thread holds pool_lock, for the _locked assertions. */
extern _Thread_local bool pool_lock_held;
/* Frames of the live pool, for the lock-free checks; written under pool_lock. */
extern _Atomic uint64_t pool_hva_frames;

#define pool_assert_locked() PM_BUG_ON(!pool_lock_held)

/* The node of a frame (the pool lives, the frame is in it). */
static inline unsigned int pool_node_of(uint64_t pfn)
{
	uint64_t n;

	if (pm_pool.nr_nodes <= 1)
		return 0;
	n = pfn / pm_pool.node_frames;
	return n < pm_pool.nr_nodes ? (unsigned int)n : pm_pool.nr_nodes - 1;
}

/* First frame and end of node n. */
static inline uint64_t pool_node_start(unsigned int n)
{
	return n * pm_pool.node_frames;
}

static inline uint64_t pool_node_end(unsigned int n)
{
	return n + 1 == pm_pool.nr_nodes ? pm_pool.nr_frames : (n + 1) * pm_pool.node_frames;
}

/* ---- small helpers ---- */

static inline bool bit_test(const uint64_t *map, uint64_t i)
{
	return (map[i / 64] >> (i % 64)) & 1;
}

static inline void bit_set(uint64_t *map, uint64_t i)
{
	map[i / 64] |= 1ULL << (i % 64);
}

static inline void bit_clear(uint64_t *map, uint64_t i)
{
	map[i / 64] &= ~(1ULL << (i % 64));
}

/* Acquire and release (plain moves on x86): what makes a pool_seq read
 * section work without fences, see pool_seq_enter() in pool.c. */
static inline uint16_t frame_word(struct pm_frame *f)
{
	return atomic_load_explicit(&f->word, memory_order_acquire);
}

static inline enum frame_state frame_state(struct pm_frame *f)
{
	return (enum frame_state)(frame_word(f) & 0xff);
}

static inline void frame_set(struct pm_frame *f, enum frame_state state, unsigned int order)
{
	atomic_store_explicit(&f->word, FRAME_WORD(state, order), memory_order_release);
}

static inline bool frame_is_free_block(struct pm_frame *f, unsigned int order)
{
	return frame_word(f) == FRAME_WORD(FRAME_FREE, order);
}

/* Zeroes freed frames: a host write, checked by the hardware's guards. A
 * refusal means a frame was freed while the hardware still protects it
 * (an SNP page still assigned, a pKVM page the host does not own): on real
 * hardware the host crashes here, so privmem stops too. Inline: every 4K
 * free in a thread's cache asks. */
static inline void pool_scrub_check(uint64_t pfn, uint64_t n)
{
	if (pm_host_access(pfn, n, true))
		pm_fatal("pool: scrub of frames %#" PRIx64 "+%" PRIu64 " refused by the hardware "
			 "(freed while protected)", pfn, n);
}

static inline uint64_t run_first_chunk(uint64_t pfn)
{
	return pfn / CHUNK_FRAMES;
}

static inline uint64_t run_nr_chunks(uint64_t pfn, unsigned int order)
{
	return (pfn + (1ULL << order) - 1) / CHUNK_FRAMES - run_first_chunk(pfn) + 1;
}

/* ---- pool.c: the lock, the pool's life, the shared paths ---- */

void pool_lock_take(void);
void pool_lock_drop(void);
/* A run left transit: counts it and wakes the allocations waiting for one. */
void pool_transit_ended_locked(void);
/* Whether pfn lies in a free, in-transit or cached block, without pool_lock. */
bool pool_frame_in_block(uint64_t pfn);
/* Creates the pool on first use: 0 or -ENOMEM. */
int pool_ensure_locked(void);
/* The lists had no block: drains every cache, waits for the transits
 * pending, then takes one. ENOMEM here means the pool is exhausted. */
int pool_alloc_reclaim(unsigned int order, pm_pfn_t *pfn);
/* The shared paths, under pool_lock: a run of any order from the lists,
 * and back through transit. */
int pool_alloc_run(unsigned int order, pm_pfn_t *pfn);
void pool_free_run(uint64_t pfn, unsigned int order);

/* ---- pool_hidden.c: frames out of the direct map ---- */

/* Whether frame pfn is hidden (only while pool_hidden_frames() != 0). */
bool pool_frame_hidden(uint64_t pfn);
uint64_t pool_hidden_frames(void);
/* A hidden frame's address in the alias; the frame of an alias address,
 * or PM_PFN_INVALID. */
void *pool_hidden_hva(uint64_t pfn);
uint64_t pool_hidden_pfn(uintptr_t a);
/* The pool goes: nothing may be hidden. */
void pool_hidden_destroy_locked(void);

/* ---- pool_buddy.c: free lists, splitting, merging ---- */

void pool_seed_locked(void);
void pool_free_list_del_locked(uint64_t pfn);
bool pool_take_block_locked(unsigned int order, uint64_t *pfn);
/* The same within a node policy (NULL: any node, node 0 first). */
bool pool_take_block_policy_locked(unsigned int order, const struct pm_node_policy *p,
				   uint64_t *pfn);
void pool_commit_alloc_locked(uint64_t head, unsigned int order, uint64_t *todo);
uint64_t pool_block_containing(uint64_t pfn);
void pool_check_allocated_locked(uint64_t pfn, unsigned int order);
void pool_merge_locked(uint64_t *pfn, unsigned int *order);

/* ---- pool_backing.c: population, transit, zeroing, trimming ---- */

void pool_mark_populated_locked(uint64_t pfn, unsigned int order, uint64_t *todo);
void pool_populate(uint64_t chunk, uint64_t n);
void pool_prefault(uint64_t pfn, unsigned int order, const uint64_t *todo);
void pool_begin_free_locked(uint64_t pfn, unsigned int order, struct transit *t);
void pool_zero(struct transit *t);
void pool_end_transit_locked(struct transit *t);
void pool_trim_locked(struct transit *t);

/* ---- pool_cache.c: per-thread caches of 4K frames ---- */

void pool_plain_alloc4k_locked(uint64_t pfn, unsigned int order);
void pool_caches_lock_all(void);
void pool_caches_unlock_all(void);
void pool_drain_caches_locked(void);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * The frame pool's per-thread caches ("magazines") of 4K frames: the common
 * pm_pool_alloc(0) and pm_pool_free(pfn, 0) take no shared lock and write
 * no shared line; the two entry points live here, beside them. The pool:
 * pool.c; its parts: pool_internal.h.
 *
 *   allocated --pm_pool_free(pfn, 0)--> cached (scrubbed, in the freeing
 *                                       thread's cache)
 *   cached --pm_pool_alloc(0) by the cache's thread--> allocated
 *   cached --flush (the cache is full, or drained)--> free (merged at once:
 *                                                   it reads zero already)
 *   free --refill (the cache is empty: CACHE_BATCH frames)--> cached
 *
 * A cached frame is free from every user's point of view: it reads zero
 * (scrubbed as it enters the cache, under the cache's lock, not pool_lock),
 * its head is FRAME_CACHED (freeing it again aborts; a buddy does not merge
 * with it), and it is counted in nr_allocated (off the lists) until flushed.
 *
 * Draining: every cache is on a registry (pool_caches). Whatever must see
 * the whole pool - the statistics, configuration, and an allocation that
 * found the free lists empty - takes pool_caches_lock, every cache's lock,
 * then pool_lock, and flushes every cache. While it holds them no frame
 * enters or leaves a cache, and no free of a 4K frame is half done (the
 * scrub runs under the cache's lock), so statistics read then are exact and
 * ENOMEM then means the pool is exhausted. A thread takes its own cache's
 * lock in the fast path (uncontended: drainers are rare), then pool_lock
 * only to refill or flush. A cache's frames are read or moved only under
 * its lock, so an owner and a drainer never race.
 *
 * Checking a 4K free without pool_lock: pm_pool_free(pfn, 0) must catch a
 * frame that is cached (its own head word, claimed by compare-and-exchange)
 * or inside a free or in-transit block (a head at one of pfn's aligned
 * positions, found in a pool_seq read section: pool_frame_in_block() in
 * pool.c).
 *
 * Locking: pool_caches_lock (the registry) > a cache's lock > pool_lock.
 */
#include "host/pool_internal.h"

#include <pthread.h>
#include <string.h>

/*
 * Sizes. A refill or a flush moves CACHE_BATCH frames in one hold of
 * pool_lock, so a thread streaming 4K allocations (or frees) takes the lock
 * once per 32 of them: the lock's and the lists' cache-line transfers cost a
 * few nanoseconds a frame instead of a few hundred, while the critical
 * section (32 list operations, about a microsecond) stays short for the
 * threads waiting on it. CACHE_MAX is twice the batch, so after a refill
 * (BATCH - 1 frames left) or a flush (BATCH left) a thread has room for a
 * whole batch of either operation before it needs the lock again: a thread
 * alternating allocations and frees never takes it. A cache holds at most
 * 256 KiB, an eighth of a 2 MiB chunk, small against the watermark
 * (256 MiB by default); its frames do keep their 2 MiB blocks from merging
 * (and from being released) until they are flushed or drained.
 */
#define CACHE_BATCH 32
#define CACHE_MAX   (2 * CACHE_BATCH)
/* A cache's lock and counters share no line with other threads' data. */
#define CACHE_ALIGN 64

/* One per thread that has allocated or freed a 4K frame. */
struct pool_cache {
	/* Taken by the owner in its fast path, by drainers under
	 * pool_caches_lock, and by the owner's exit. */
	pthread_mutex_t lock;
	unsigned int nr;           /* lock: frames in pfn[] */
	uint64_t scrubbed;         /* lock: bytes zeroed, not yet in pm_pool.scrubbed */
	uint32_t pfn[CACHE_MAX];   /* lock: FRAME_CACHED frames, oldest first */
	struct pool_cache *next;   /* pool_caches_lock: the registry */
	struct pool_cache **pprev; /* pool_caches_lock */
};

/* The registry, and the first lock a drainer takes. */
static pthread_mutex_t pool_caches_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pool_cache *pool_caches; /* pool_caches_lock */
/* This thread holds pool_caches_lock and every cache's lock (a drainer). */
static _Thread_local bool pool_caches_all_held;
/* The cache whose lock this thread holds as its owner, or NULL. */
static _Thread_local struct pool_cache *pool_cache_held;
/* This thread's cache: NULL until its first 4K alloc or free. */
static _Thread_local struct pool_cache *pool_cache_self;
/* This thread's cache went back at its exit: later 4K frees of the thread
 * (in other exit handlers) take the shared path. */
static _Thread_local bool pool_cache_retired;
/* The key whose destructor returns a thread's cache when it exits. */
static pthread_key_t pool_cache_key;
static pthread_once_t pool_cache_key_once = PTHREAD_ONCE_INIT;
static bool pool_cache_key_ok; /* written once, under pool_cache_key_once */

/* ---- locks: a thread's own cache, and a drainer's ---- */

static void pool_cache_lock(struct pool_cache *c)
{
	PM_BUG_ON(pool_cache_held || pool_caches_all_held);
	pthread_mutex_lock(&c->lock);
	pool_cache_held = c;
}

static void pool_cache_unlock(struct pool_cache *c)
{
	PM_BUG_ON(pool_cache_held != c);
	pool_cache_held = NULL;
	pthread_mutex_unlock(&c->lock);
}

#define cache_assert_locked(c) PM_BUG_ON(pool_cache_held != (c) && !pool_caches_all_held)

/* A drainer's locks: the registry, then every cache in registry order. */
void pool_caches_lock_all(void)
{
	struct pool_cache *c;

	PM_BUG_ON(pool_cache_held || pool_caches_all_held || pool_lock_held);
	pthread_mutex_lock(&pool_caches_lock);
	for (c = pool_caches; c; c = c->next)
		pthread_mutex_lock(&c->lock);
	pool_caches_all_held = true;
}

void pool_caches_unlock_all(void)
{
	struct pool_cache *c;

	PM_BUG_ON(!pool_caches_all_held);
	pool_caches_all_held = false;
	for (c = pool_caches; c; c = c->next)
		pthread_mutex_unlock(&c->lock);
	pthread_mutex_unlock(&pool_caches_lock);
}

/* ---- frames between a cache and the free lists ---- */

/* A cached frame goes back on the lists, merged with its free buddies. It
 * reads zero already, so it needs no transit. */
static void pool_uncache_locked(uint64_t pfn)
{
	struct transit t = { .pfn = pfn, .order = 0 };
	struct pm_frame *f = &pm_pool.frames[pfn];

	pool_assert_locked();
	PM_BUG_ON(frame_word(f) != FRAME_WORD(FRAME_CACHED, 0));
	PM_BUG_ON(!pm_pool.nr_allocated);
	frame_set(f, FRAME_PLAIN, 0);
	pm_pool.nr_allocated--;
	pm_pool.node_allocated[pool_node_of(pfn)]--;
	pool_merge_locked(&t.pfn, &t.order);
	pool_trim_locked(&t);
}

/* Returns the n oldest frames of c to the lists (pool_lock may be dropped
 * meanwhile, to release memory; c's lock is not). */
static void pool_cache_flush_locked(struct pool_cache *c, unsigned int n)
{
	unsigned int i;

	cache_assert_locked(c);
	pool_assert_locked();
	PM_BUG_ON(n > c->nr);
	pm_pool.scrubbed += c->scrubbed;
	c->scrubbed = 0;
	for (i = 0; i < n; i++)
		pool_uncache_locked(c->pfn[i]);
	memmove(c->pfn, c->pfn + n, (c->nr - n) * sizeof(c->pfn[0]));
	c->nr -= n;
}

/* Empties every cache: until the caller drops the caches' locks, every free
 * frame is on the lists (merged as far as it goes) and every counter is
 * exact, as without caches. */
void pool_drain_caches_locked(void)
{
	struct pool_cache *c;

	PM_BUG_ON(!pool_caches_all_held);
	pool_assert_locked();
	for (c = pool_caches; c; c = c->next) {
		/* Caches are drained before the pool is destroyed. */
		PM_BUG_ON(!pm_pool.live && (c->nr || c->scrubbed));
		pool_cache_flush_locked(c, c->nr);
	}
}

static void pool_cache_reverse(struct pool_cache *c)
{
	unsigned int i;
	uint32_t pfn;

	for (i = 0; i < c->nr / 2; i++) {
		pfn = c->pfn[i];
		c->pfn[i] = c->pfn[c->nr - 1 - i];
		c->pfn[c->nr - 1 - i] = pfn;
	}
}

/* Fills the empty cache c with up to CACHE_BATCH frames in one hold of
 * pool_lock, then prefaults the chunks this populated. c stays locked
 * throughout, so no drainer can return those frames to the lists (and their
 * chunk be released) before the prefault ends: see "population" in
 * pool_backing.c. The frame taken first (the lowest of a split block) ends
 * on top. */
static void pool_cache_refill(struct pool_cache *c)
{
	uint64_t chunk[CACHE_BATCH], pfn, todo;
	unsigned int nr_chunks = 0, i;

	cache_assert_locked(c);
	PM_BUG_ON(c->nr);
	pool_lock_take();
	if (!pool_ensure_locked()) {
		while (c->nr < CACHE_BATCH && pool_take_block_locked(0, &pfn)) {
			todo = 0;
			pool_commit_alloc_locked(pfn, 0, &todo);
			if (todo)
				chunk[nr_chunks++] = run_first_chunk(pfn);
			frame_set(&pm_pool.frames[pfn], FRAME_CACHED, 0);
			c->pfn[c->nr++] = (uint32_t)pfn;
		}
	}
	pool_lock_drop();
	for (i = 0; i < nr_chunks; i++)
		pool_populate(chunk[i], 1);
	pool_cache_reverse(c);
}

/* ---- checking a 4K free ---- */

/* pool_check_allocated_locked() for a 4K frame, without pool_lock: the frame
 * must be in the pool and in no free, in-transit or cached block. It becomes
 * CACHED; the compare-and-exchange catches a double free racing this one. */
static void pool_cache_claim(uint64_t pfn)
{
	uint16_t plain = FRAME_WORD(FRAME_PLAIN, 0), alloc4k = FRAME_WORD(FRAME_ALLOC4K, 0);

	/* The pool cannot be re-created under a caller holding a frame. */
	PM_BUG_ON(pfn >= atomic_load_explicit(&pool_hva_frames, memory_order_relaxed));
	/* A 4K block a cache handed out is its own head: no free, in-transit
	 * or cached block contains it (a larger free containing it would have
	 * failed its interior check), so the exchange alone proves it
	 * allocated. Anything else (part of a larger allocation) is searched. */
	if (atomic_compare_exchange_strong_explicit(&pm_pool.frames[pfn].word, &alloc4k,
						    FRAME_WORD(FRAME_CACHED, 0),
						    memory_order_relaxed, memory_order_relaxed))
		return;
	PM_BUG_ON(pool_frame_in_block(pfn));                            /* double free */
	PM_BUG_ON(!atomic_compare_exchange_strong_explicit(&pm_pool.frames[pfn].word, &plain,
							   FRAME_WORD(FRAME_CACHED, 0),
							   memory_order_relaxed,
							   memory_order_relaxed));
}

/* A 4K block a cache handed out, freed on the locked path, is a plain
 * allocated frame from here on. */
void pool_plain_alloc4k_locked(uint64_t pfn, unsigned int order)
{
	struct pm_frame *f;

	if (order || pfn >= pm_pool.nr_frames)
		return;         /* the checks that follow report a bad pfn */
	f = &pm_pool.frames[pfn];
	if (frame_word(f) == FRAME_WORD(FRAME_ALLOC4K, 0))
		frame_set(f, FRAME_PLAIN, 0);
}

/* ---- a thread's cache: creation, exit ---- */

static void pool_cache_exit(void *arg);

static void pool_cache_key_init(void)
{
	pool_cache_key_ok = pthread_key_create(&pool_cache_key, pool_cache_exit) == 0;
}

static struct pool_cache *pool_cache_create(void)
{
	struct pool_cache *c;

	pthread_once(&pool_cache_key_once, pool_cache_key_init);
	if (!pool_cache_key_ok)
		return NULL;
	c = aligned_alloc(CACHE_ALIGN, PM_ALIGN_UP(sizeof(*c), CACHE_ALIGN));
	if (!c)
		return NULL;
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
	if (pthread_setspecific(pool_cache_key, c)) {
		pthread_mutex_destroy(&c->lock);
		free(c);
		return NULL;
	}
	pthread_mutex_lock(&pool_caches_lock);
	c->next = pool_caches;
	c->pprev = &pool_caches;
	if (pool_caches)
		pool_caches->pprev = &c->next;
	pool_caches = c;
	pthread_mutex_unlock(&pool_caches_lock);
	pool_cache_self = c;
	return c;
}

/* This thread's cache, created on first use; NULL if that failed (the
 * thread then uses the shared path) or the thread is exiting. */
static struct pool_cache *pool_cache_get(void)
{
	if (pm_likely(pool_cache_self) || pool_cache_retired)
		return pool_cache_self;
	return pool_cache_create();
}

/* The key's destructor, at thread exit: the frames go back to the lists,
 * then the empty cache leaves the registry (once a drainer that holds the
 * registry lets go: nobody can reach the cache after that). */
static void pool_cache_exit(void *arg)
{
	struct pool_cache *c = arg;

	pool_cache_self = NULL;
	pool_cache_retired = true;
	pool_cache_lock(c);
	pool_lock_take();
	pool_cache_flush_locked(c, c->nr);
	pool_lock_drop();
	pool_cache_unlock(c);

	pthread_mutex_lock(&pool_caches_lock);
	*c->pprev = c->next;
	if (c->next)
		c->next->pprev = c->pprev;
	pthread_mutex_unlock(&pool_caches_lock);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/* ---- 4K allocation and freeing through the cache ---- */

/* 4K from the caller's cache, refilled when empty. */
static int pool_cache_alloc(struct pool_cache *c, pm_pfn_t *pfn)
{
	struct pm_frame *f;
	uint64_t head;

	pool_cache_lock(c);
	if (!c->nr)
		pool_cache_refill(c);
	if (!c->nr) {
		pool_cache_unlock(c);
		return pool_alloc_reclaim(0, pfn);
	}
	head = c->pfn[--c->nr];
	f = &pm_pool.frames[head];
	PM_BUG_ON(frame_word(f) != FRAME_WORD(FRAME_CACHED, 0));
	frame_set(f, FRAME_ALLOC4K, 0);
	pool_cache_unlock(c);
	*pfn = head;
	return 0;
}

/* 4K into the caller's cache: checked, scrubbed (under the cache's lock,
 * so that a drainer finds it cached, not half freed), then pushed; a full
 * cache first flushes its oldest batch. The hardware's guards are asked
 * before the lock: they take locks of their own (pKVM's host lock), under
 * which the hardware allocates frames. */
static void pool_cache_free(struct pool_cache *c, uint64_t pfn)
{
	pool_scrub_check(pfn, 1);
	pool_cache_lock(c);
	pool_cache_claim(pfn);
	memset(pm_pfn_to_direct(pfn), 0, PM_PAGE_SIZE);
	c->scrubbed += PM_PAGE_SIZE;
	if (c->nr == CACHE_MAX) {
		pool_lock_take();
		pool_cache_flush_locked(c, CACHE_BATCH);
		pool_lock_drop();
	}
	c->pfn[c->nr++] = (uint32_t)pfn;
	pool_cache_unlock(c);
}

/* ---- the entry points ---- */

/* Here, beside the caches, so that the common 4K case is one call: 4K
 * frames go through the calling thread's cache; every other order, and a
 * thread without a cache, through the shared path (pool.c). */
int pm_pool_alloc(unsigned int order, pm_pfn_t *pfn)
{
	struct pool_cache *c;

	PM_BUG_ON(order > PM_POOL_MAX_ORDER);
	if (order == 0 && (c = pool_cache_get()))
		return pool_cache_alloc(c, pfn);
	return pool_alloc_run(order, pfn);
}

void pm_pool_free(pm_pfn_t pfn, unsigned int order)
{
	struct pool_cache *c;

	if (order == 0 && (c = pool_cache_get()))
		pool_cache_free(c, pfn);
	else
		pool_free_run(pfn, order);
}

uint64_t pm_pool_cached_frames(void)
{
	struct pool_cache *c;
	uint64_t n = 0;

	pool_caches_lock_all();
	for (c = pool_caches; c; c = c->next)
		n += c->nr;
	pool_caches_unlock_all();
	return n;
}

/* SPDX-License-Identifier: MIT */
/*
 * The frame pool (interface and invariants in pool.h).
 *
 * Backing: one memfd, mapped once MAP_SHARED at a 1 GiB-aligned address, so
 * that a 2M or 1G run is aligned in the library's address space as well as in
 * the file. Frame N is the 4 KiB at file offset N << 12 = base + (N << 12).
 *
 * Bookkeeping: one struct pm_frame per frame, in a MAP_NORESERVE array. Only
 * heads of free (or in-transit) blocks carry state, so untouched parts of the
 * array cost nothing, and an allocated frame does not know which allocation
 * it came from: any naturally aligned sub-run of an allocation can be freed
 * on its own (that is how a huge page is split). A buddy allocator keeps one
 * free list per order, doubly linked through frame indices.
 *
 * Life of a run:
 *
 *   free (on a list, reads zero) --pm_pool_alloc--> allocated
 *   allocated --pm_pool_free--> in transit (off every list, being zeroed)
 *   in transit --> free (merged with its free buddies)
 *   free, >= 2 MiB, pool over the watermark --trim--> in transit (released)
 *
 * Releasing: when a run of 2 MiB or more enters transit (freed, or a free
 * block that merging grew that large: "trim") while the free populated
 * memory exceeds the watermark, just enough of its populated 2 MiB chunks to
 * come back down to the watermark are picked, under pool_lock, to be punched
 * out of the memfd, which returns them to the OS and zeroes them. The rest
 * of a freed run is scrubbed by pool_scrub() (memset). Releasing only the
 * excess keeps the free populated memory near the watermark instead of
 * swinging from above it to zero and paying the population again.
 *
 * Why the slow parts run without pool_lock:
 *  - zeroing: a run in transit is on no free list and owned by no caller, so
 *    only the freeing thread touches it. Its head is marked TRANSIT, so a
 *    second free of it is caught, and its buddy cannot merge with it.
 *  - release: the decision (over the watermark), picking the chunks and
 *    marking them unpopulated, and taking the run off the lists are one
 *    critical section; the run goes back on the lists, and can merge or be
 *    allocated, only after the punch. Nobody can be handed memory that is
 *    about to be punched, and concurrent decisions see each other's picks.
 *  - population: the allocator that first takes frames from a chunk marks
 *    it populated under the lock and prefaults it after unlocking. Others
 *    may meanwhile be handed frames of that chunk and use them: prefaulting
 *    never changes data (it faults pages in, as touching them would), and
 *    the chunk cannot be released before the prefault ends, because it holds
 *    frames of the allocation being prefaulted, which its caller has not
 *    even received yet.
 * An allocation that finds no block while runs are in transit waits for as
 * many transits to end as were pending, so ENOMEM means the pool is really
 * exhausted, not merely busy zeroing.
 *
 * Per-thread caches ("magazines") of 4K frames: the common pm_pool_alloc(0)
 * and pm_pool_free(pfn, 0) take no shared lock and write no shared line.
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
 * positions). Head words are atomic and written under pool_lock (except
 * PLAIN <-> CACHED of a frame, by the thread holding it); pool_lock holders
 * keep pool_seq odd, so a walk of the heads between two equal even reads of
 * pool_seq saw the lists at one instant, as the walk under pool_lock would.
 *
 * Locking: pool_lock protects struct pool and the frame array (but see the
 * cached frames above). Lock order: pool_caches_lock > a cache's lock >
 * pool_lock; nothing takes a cache lock while holding pool_lock. The
 * address translation is lock-free through two atomics written under
 * pool_lock.
 */
#include "host/host_guard.h"
#include "host/pool.h"

#include <assert.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define POOL_DEFAULT_SIZE      (4ULL << 30)
#define POOL_DEFAULT_WATERMARK (256ULL << 20)
#define POOL_MAP_ALIGN         (1ULL << 30)

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

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

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

	/* The live pool. base, memfd and nr_frames change only when the pool is
	 * created or destroyed, which configure refuses while any run is
	 * allocated or in transit: a thread holding a run may read them without
	 * pool_lock. */
	bool live;
	int memfd;
	char *base;
	uint64_t nr_frames;
	struct pm_frame *frames; /* nr_frames entries */
	uint64_t *populated;     /* bitmap, one bit per 2 MiB chunk */
	bool thp;

	uint32_t free_list[PM_POOL_MAX_ORDER + 1]; /* first block, or FRAME_NIL */
	uint64_t nr_free[PM_POOL_MAX_ORDER + 1];   /* blocks on each list */
	uint64_t nr_populated; /* chunks whose bit is set */
	uint64_t nr_allocated; /* frames handed out, or cached (off the lists, not in transit) */
	uint64_t nr_scrubbing; /* frames in transit to a memset (still populated) */
	uint64_t nr_transit;   /* runs in transit */

	uint64_t scrubbed;       /* bytes, since creation */
	uint64_t released;       /* bytes, since creation */
	uint64_t alloc_failures; /* since creation */
};

/* Adaptive: the critical sections are short, so spin a little before sleeping. */
static pthread_mutex_t pool_lock = PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP;
/* Odd while a thread holds pool_lock (written by that thread only): see
 * "checking a 4K free" at the top of the file. */
static _Atomic uint64_t pool_seq;
/* Broadcast under pool_lock whenever a run leaves transit. */
static pthread_cond_t pool_transit_cond = PTHREAD_COND_INITIALIZER;
/* Whether this thread holds pool_lock, for the _locked assertions. */
static _Thread_local bool pool_lock_held;
/* Protected by pool_lock. */
static struct pool pool = { .memfd = -1 };
/* Runs that ever left transit (survives re-creation); pool_lock. */
static uint64_t pool_transits_done;
/* The mapping for the lock-free translations; written under pool_lock. */
static _Atomic uintptr_t pool_hva_base;
static _Atomic uint64_t pool_hva_frames;

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

/* ---- locking ---- */

/* pool_seq: the holder makes it odd on entry and even on exit. Plain
 * load-and-store: only the holder of pool_lock writes it. No fence after
 * the odd store (TSan does not model fences): head words are stored with
 * release order, so a reader that loads (acquire) a head word stored in
 * the section sees the odd value, or later, when it reads pool_seq again. */
static void pool_seq_enter(void)
{
	uint64_t seq = atomic_load_explicit(&pool_seq, memory_order_relaxed);

	atomic_store_explicit(&pool_seq, seq + 1, memory_order_relaxed);
}

static void pool_seq_exit(void)
{
	uint64_t seq = atomic_load_explicit(&pool_seq, memory_order_relaxed);

	atomic_store_explicit(&pool_seq, seq + 1, memory_order_release);
}

static void pool_lock_take(void)
{
	pthread_mutex_lock(&pool_lock);
	pool_lock_held = true;
	pool_seq_enter();
}

static void pool_lock_drop(void)
{
	pool_seq_exit();
	pool_lock_held = false;
	pthread_mutex_unlock(&pool_lock);
}

#define pool_assert_locked() PM_BUG_ON(!pool_lock_held)

/* Waits on pool_transit_cond, which drops pool_lock meanwhile. */
static void pool_lock_wait_transit(void)
{
	pool_assert_locked();
	pool_seq_exit();
	pthread_cond_wait(&pool_transit_cond, &pool_lock);
	pool_seq_enter();
}

/* ---- small helpers ---- */

static bool bit_test(const uint64_t *map, uint64_t i)
{
	return (map[i / 64] >> (i % 64)) & 1;
}

static void bit_set(uint64_t *map, uint64_t i)
{
	map[i / 64] |= 1ULL << (i % 64);
}

static void bit_clear(uint64_t *map, uint64_t i)
{
	map[i / 64] &= ~(1ULL << (i % 64));
}

/* Acquire and release (plain moves on x86): what makes a pool_seq read
 * section work without fences, see pool_seq_enter(). */
static uint16_t frame_word(struct pm_frame *f)
{
	return atomic_load_explicit(&f->word, memory_order_acquire);
}

static enum frame_state frame_state(struct pm_frame *f)
{
	return (enum frame_state)(frame_word(f) & 0xff);
}

static void frame_set(struct pm_frame *f, enum frame_state state, unsigned int order)
{
	atomic_store_explicit(&f->word, FRAME_WORD(state, order), memory_order_release);
}

static bool frame_is_free_block(struct pm_frame *f, unsigned int order)
{
	return frame_word(f) == FRAME_WORD(FRAME_FREE, order);
}

static bool pool_size_ok(uint64_t size)
{
	return size && PM_ALIGNED(size, CHUNK_SIZE) && size <= POOL_MAX_SIZE;
}

/* ---- configuration from the environment ---- */

/* Parses "<digits>[K|M|G]" (binary multiples). */
static bool parse_bytes(const char *s, uint64_t *out)
{
	unsigned int shift = 0;
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return false;
	switch (*end) {
	case 'K': case 'k': shift = 10; end++; break;
	case 'M': case 'm': shift = 20; end++; break;
	case 'G': case 'g': shift = 30; end++; break;
	}
	if (*end != '\0' || v > (UINT64_MAX >> shift))
		return false;
	*out = (uint64_t)v << shift;
	return true;
}

static uint64_t env_bytes(const char *name, uint64_t dflt, bool is_size)
{
	const char *s = getenv(name);
	uint64_t v;

	if (!s)
		return dflt;
	if (parse_bytes(s, &v) && (!is_size || pool_size_ok(v)))
		return v;
	fprintf(stderr, "privmem: ignoring %s=\"%s\" (want bytes%s, optionally with a K/M/G suffix); using %" PRIu64 "\n",
		name, s, is_size ? ", a positive multiple of 2 MiB" : "", dflt);
	return dflt;
}

static void pool_read_config_locked(void)
{
	pool_assert_locked();
	if (pool.config_read)
		return;
	pool.config_size = env_bytes("PRIVMEM_POOL_SIZE", POOL_DEFAULT_SIZE, true);
	pool.watermark = env_bytes("PRIVMEM_POOL_WATERMARK", POOL_DEFAULT_WATERMARK, false);
	pool.config_read = true;
}

/* ---- free lists ---- */

static void free_list_add_locked(uint64_t pfn, unsigned int order)
{
	struct pm_frame *f = &pool.frames[pfn];
	uint32_t next = pool.free_list[order];

	pool_assert_locked();
	PM_BUG_ON(frame_state(f) != FRAME_PLAIN);
	frame_set(f, FRAME_FREE, order);
	f->prev = FRAME_NIL;
	f->next = next;
	if (next != FRAME_NIL)
		pool.frames[next].prev = (uint32_t)pfn;
	pool.free_list[order] = (uint32_t)pfn;
	pool.nr_free[order]++;
}

static void free_list_del_locked(uint64_t pfn)
{
	struct pm_frame *f = &pool.frames[pfn];
	uint16_t word = frame_word(f);
	unsigned int order = word >> 8;

	pool_assert_locked();
	PM_BUG_ON(word != FRAME_WORD(FRAME_FREE, order));
	if (f->prev != FRAME_NIL)
		pool.frames[f->prev].next = f->next;
	else
		pool.free_list[order] = f->next;
	if (f->next != FRAME_NIL)
		pool.frames[f->next].prev = f->prev;
	pool.nr_free[order]--;
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

static void pool_seed_locked(void)
{
	uint64_t pfn = 0;
	unsigned int order;

	pool_assert_locked();
	for (order = 0; order <= PM_POOL_MAX_ORDER; order++)
		pool.free_list[order] = FRAME_NIL;
	while (pfn < pool.nr_frames) {
		order = largest_block_at(pfn, pool.nr_frames - pfn);
		free_list_add_locked(pfn, order);
		pfn += 1ULL << order;
	}
}

/* ---- creation and teardown ---- */

/* Maps the memfd at a 1 GiB-aligned address: reserve more, map inside, trim. */
static char *pool_map_aligned(int fd, uint64_t size)
{
	char *res, *base;
	uint64_t head;

	res = mmap(NULL, size + POOL_MAP_ALIGN, PROT_NONE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (res == MAP_FAILED)
		return NULL;
	base = (char *)PM_ALIGN_UP((uintptr_t)res, POOL_MAP_ALIGN);
	if (mmap(base, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED) {
		munmap(res, size + POOL_MAP_ALIGN);
		return NULL;
	}
	head = (uint64_t)(base - res);
	if (head)
		munmap(res, head);
	if (head != POOL_MAP_ALIGN)
		munmap(base + size, POOL_MAP_ALIGN - head);
	return base;
}

/* MADV_HUGEPAGE only matters for shmem if the host's shmem THP policy honours it. */
static bool shmem_thp_effective(void)
{
	static const char *const honoured[] = { "[always]", "[within_size]", "[advise]", "[force]" };
	char buf[128] = "";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/shmem_enabled", "re");
	size_t i;

	if (!f)
		return false;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	for (i = 0; i < PM_ARRAY_SIZE(honoured); i++)
		if (strstr(buf, honoured[i]))
			return true;
	return false;
}

static void pool_install_locked(int fd, char *base, uint64_t nr_frames,
				struct pm_frame *frames, uint64_t *populated)
{
	struct pool fresh = {
		.config_read = pool.config_read,
		.config_size = pool.config_size,
		.watermark = pool.watermark,
		.live = true,
		.memfd = fd,
		.base = base,
		.nr_frames = nr_frames,
		.frames = frames,
		.populated = populated,
	};

	pool_assert_locked();
	pool = fresh;
	pool.thp = madvise(base, nr_frames << PM_PAGE_SHIFT, MADV_HUGEPAGE) == 0 &&
		   shmem_thp_effective();
	pool_seed_locked();
	atomic_store_explicit(&pool_hva_base, (uintptr_t)base, memory_order_relaxed);
	atomic_store_explicit(&pool_hva_frames, nr_frames, memory_order_relaxed);
}

static int pool_create_locked(uint64_t size)
{
	uint64_t nr_frames = size >> PM_PAGE_SHIFT;
	size_t frames_len = nr_frames * sizeof(struct pm_frame);
	struct pm_frame *frames;
	uint64_t *populated;
	char *base;
	int fd;

	pool_assert_locked();
	PM_BUG_ON(pool.live || !pool_size_ok(size));
	fd = memfd_create("privmem-pool", MFD_CLOEXEC);
	if (fd < 0)
		return -ENOMEM;
	if (ftruncate(fd, (off_t)size))
		goto err_close;
	base = pool_map_aligned(fd, size);
	if (!base)
		goto err_close;
	frames = mmap(NULL, frames_len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (frames == MAP_FAILED)
		goto err_unmap_base;
	populated = calloc((nr_frames / CHUNK_FRAMES + 63) / 64, sizeof(uint64_t));
	if (!populated)
		goto err_unmap_frames;
	pool_install_locked(fd, base, nr_frames, frames, populated);
	return 0;

err_unmap_frames:
	munmap(frames, frames_len);
err_unmap_base:
	munmap(base, size);
err_close:
	close(fd);
	return -ENOMEM;
}

static bool pool_busy_locked(void)
{
	pool_assert_locked();
	return pool.live && (pool.nr_allocated || pool.nr_transit);
}

static void pool_destroy_locked(void)
{
	pool_assert_locked();
	PM_BUG_ON(!pool.live || pool_busy_locked());
	atomic_store_explicit(&pool_hva_frames, 0, memory_order_relaxed);
	atomic_store_explicit(&pool_hva_base, 0, memory_order_relaxed);
	free(pool.populated);
	munmap(pool.frames, pool.nr_frames * sizeof(struct pm_frame));
	munmap(pool.base, pool.nr_frames << PM_PAGE_SHIFT);
	close(pool.memfd);
	pool.live = false;
	pool.memfd = -1;
	pool.base = NULL;
	pool.frames = NULL;
	pool.populated = NULL;
	pool.nr_frames = 0;
}

/* Lazy creation, on first use. */
static int pool_ensure_locked(void)
{
	pool_assert_locked();
	if (pool.live)
		return 0;
	pool_read_config_locked();
	return pool_create_locked(pool.config_size);
}

/* ---- population ---- */

static uint64_t run_first_chunk(uint64_t pfn)
{
	return pfn / CHUNK_FRAMES;
}

static uint64_t run_nr_chunks(uint64_t pfn, unsigned int order)
{
	return (pfn + (1ULL << order) - 1) / CHUNK_FRAMES - run_first_chunk(pfn) + 1;
}

/* Free frames backed by host memory: populated chunks hold every allocated
 * and every scrubbing frame (chunks are unpopulated only when wholly free). */
static uint64_t pool_free_populated_bytes_locked(void)
{
	uint64_t populated = pool.nr_populated * CHUNK_FRAMES;
	uint64_t held = pool.nr_allocated + pool.nr_scrubbing;

	pool_assert_locked();
	PM_BUG_ON(held > populated);
	return (populated - held) << PM_PAGE_SHIFT;
}

/* Marks the chunks of a new allocation populated; sets bit i of todo for
 * each chunk i of the run that this call flipped, for pool_prefault(). */
static void pool_mark_populated_locked(uint64_t pfn, unsigned int order, uint64_t *todo)
{
	uint64_t first = run_first_chunk(pfn), n = run_nr_chunks(pfn, order), i;

	pool_assert_locked();
	for (i = 0; i < n; i++) {
		if (bit_test(pool.populated, first + i))
			continue;
		bit_set(pool.populated, first + i);
		pool.nr_populated++;
		bit_set(todo, i);
	}
}

/* Faults in host memory for chunks [chunk, chunk + n). A failure is left for
 * the first touch to meet, as it would on a host short of memory: the
 * prefault is an optimisation, not a guarantee. */
static void pool_populate(uint64_t chunk, uint64_t n)
{
	void *addr = pm_pfn_to_hva(chunk * CHUNK_FRAMES);
	off_t off = (off_t)(chunk * CHUNK_SIZE);
	off_t len = (off_t)(n * CHUNK_SIZE);

	if (madvise(addr, (size_t)len, MADV_POPULATE_WRITE) == 0 || errno != EINVAL)
		return;
	/* Kernel older than 5.14: allocate the file's pages instead. */
	(void)fallocate(pool.memfd, 0, off, len);
}

/* Without pool_lock: see "population" at the top of the file. */
static void pool_prefault(uint64_t pfn, unsigned int order, const uint64_t *todo)
{
	uint64_t first = run_first_chunk(pfn), n = run_nr_chunks(pfn, order), i = 0, start;

	while (i < n) {
		if (!bit_test(todo, i)) {
			i++;
			continue;
		}
		for (start = i; i < n && bit_test(todo, i); i++)
			;
		pool_populate(first + start, i - start);
	}
}

/* ---- allocation ---- */

/* Takes the smallest free block of at least `order` and splits off the excess. */
static bool pool_take_block_locked(unsigned int order, uint64_t *pfn)
{
	unsigned int o = order;
	uint64_t head;

	pool_assert_locked();
	while (o <= PM_POOL_MAX_ORDER && pool.free_list[o] == FRAME_NIL)
		o++;
	if (o > PM_POOL_MAX_ORDER)
		return false;
	head = pool.free_list[o];
	free_list_del_locked(head);
	while (o > order) {
		o--;
		free_list_add_locked(head + (1ULL << o), o);
	}
	*pfn = head;
	return true;
}

/* Waits for the transits pending now (not for later ones: that could starve)
 * before declaring the pool exhausted. */
static int pool_alloc_block_locked(unsigned int order, uint64_t *pfn)
{
	uint64_t start = pool_transits_done, pending = pool.nr_transit;

	pool_assert_locked();
	while (!pool_take_block_locked(order, pfn)) {
		if (pool_transits_done - start >= pending)
			return -ENOMEM;
		pool_lock_wait_transit();
		if (!pool.live)
			return -ENOMEM;
	}
	return 0;
}

/* The block at head leaves the lists for a caller (or a cache). */
static void pool_commit_alloc_locked(uint64_t head, unsigned int order, uint64_t *todo)
{
	pool_assert_locked();
	pool.nr_allocated += 1ULL << order;
	pool_mark_populated_locked(head, order, todo);
}

/* ---- freeing: transit, zeroing, merging, trimming ---- */

/* The free, in-transit or cached block containing pfn, or PM_PFN_INVALID.
 * Exact under pool_lock; without it, only in a pool_seq read section
 * (pool_frame_in_block). */
static uint64_t pool_block_containing(uint64_t pfn)
{
	unsigned int o;

	for (o = 0; o <= PM_POOL_MAX_ORDER; o++) {
		uint64_t head = PM_ALIGN_DOWN(pfn, 1ULL << o);
		uint16_t word = frame_word(&pool.frames[head]);

		unsigned int state = word & 0xff;

		if ((state == FRAME_FREE || state == FRAME_TRANSIT || state == FRAME_CACHED) &&
		    pfn - head < (1ULL << (word >> 8)))
			return head;
	}
	return PM_PFN_INVALID;
}

/* The run must be in the pool, naturally aligned and wholly allocated. */
static void pool_check_allocated_locked(uint64_t pfn, unsigned int order)
{
	uint64_t n, i;

	pool_assert_locked();
	PM_BUG_ON(!pool.live);
	PM_BUG_ON(order > PM_POOL_MAX_ORDER);
	n = 1ULL << order;
	PM_BUG_ON(pfn >= pool.nr_frames || n > pool.nr_frames - pfn);
	PM_BUG_ON(!PM_ALIGNED(pfn, n));                               /* misaligned */
	PM_BUG_ON(pool_block_containing(pfn) != PM_PFN_INVALID);        /* double free */
	for (i = 1; i < n; i++)                                       /* partly freed */
		PM_BUG_ON(frame_state(&pool.frames[pfn + i]) != FRAME_PLAIN);
	PM_BUG_ON(pool.nr_allocated < n);
}

static void pool_enter_transit_locked(uint64_t pfn, unsigned int order)
{
	struct pm_frame *f = &pool.frames[pfn];

	pool_assert_locked();
	PM_BUG_ON(frame_state(f) != FRAME_PLAIN);
	frame_set(f, FRAME_TRANSIT, order);
	pool.nr_transit++;
}

/* Picks populated chunks of a run of 2 MiB or more (counted as free) to
 * release, as many as the free populated memory exceeds the watermark by,
 * and marks them unpopulated. */
static void pool_pick_release_locked(struct transit *t)
{
	uint64_t first = run_first_chunk(t->pfn), n = run_nr_chunks(t->pfn, t->order);
	uint64_t free_populated = pool_free_populated_bytes_locked(), excess, i;

	pool_assert_locked();
	PM_BUG_ON(t->order < CHUNK_ORDER || t->nr_release);
	if (free_populated <= pool.watermark)
		return;
	excess = free_populated - pool.watermark;
	for (i = 0; i < n && excess; i++) {
		/* A freed run was allocated: all its chunks are populated. */
		PM_BUG_ON(t->dirty && !bit_test(pool.populated, first + i));
		if (!bit_test(pool.populated, first + i))
			continue;
		bit_clear(pool.populated, first + i);
		pool.nr_populated--;
		bit_set(t->release, i);
		t->nr_release++;
		excess -= PM_MIN(excess, CHUNK_SIZE);
	}
}

/* A 4K block a cache handed out, freed on the locked path, is a plain
 * allocated frame from here on. */
static void pool_plain_alloc4k_locked(uint64_t pfn, unsigned int order)
{
	struct pm_frame *f;

	if (order || pfn >= pool.nr_frames)
		return;         /* the checks that follow report a bad pfn */
	f = &pool.frames[pfn];
	if (frame_word(f) == FRAME_WORD(FRAME_ALLOC4K, 0))
		frame_set(f, FRAME_PLAIN, 0);
}

/* A freed run enters transit: chunks beyond the watermark to be released
 * (runs of 2 MiB or more only), the rest to be scrubbed. */
static void pool_begin_free_locked(uint64_t pfn, unsigned int order, struct transit *t)
{
	uint64_t n;

	pool_assert_locked();
	pool_plain_alloc4k_locked(pfn, order);
	pool_check_allocated_locked(pfn, order);
	n = 1ULL << order;
	pool.nr_allocated -= n;
	*t = (struct transit){ .pfn = pfn, .order = order, .dirty = true };
	if (order >= CHUNK_ORDER)
		pool_pick_release_locked(t);
	t->scrub_frames = n - t->nr_release * CHUNK_FRAMES;
	pool.nr_scrubbing += t->scrub_frames;
	pool_enter_transit_locked(pfn, order);
}

/* Zeroes freed frames: a host write, checked by the hardware's guards. A
 * refusal means a frame was freed while the hardware still protects it
 * (an SNP page still assigned, a pKVM page the host does not own): on real
 * hardware the host crashes here, so privmem stops too. */
static void pool_scrub_check(uint64_t pfn, uint64_t n)
{
	if (pm_host_access(pfn, n, true))
		pm_fatal("pool: scrub of frames %#" PRIx64 "+%" PRIu64 " refused by the hardware "
			 "(freed while protected)", pfn, n);
}

static void pool_scrub(uint64_t pfn, unsigned int order)
{
	pool_scrub_check(pfn, 1ULL << order);
	memset(pm_pfn_to_hva(pfn), 0, PM_PAGE_SIZE << order);
}

static void pool_scrub_chunks(struct transit *t, uint64_t chunk, uint64_t n)
{
	uint64_t i;

	for (i = 0; i < n; i++)
		pool_scrub((chunk + i) * CHUNK_FRAMES, CHUNK_ORDER);
	t->scrubbed += n * CHUNK_SIZE;
}

/* A punch that fails leaves the data: a dirty run then gets the scrub. The
 * chunks stay counted as unpopulated; the next allocation from them
 * prefaults them again, which is harmless. */
static void pool_release_chunks(struct transit *t, uint64_t chunk, uint64_t n)
{
	off_t off = (off_t)(chunk * CHUNK_SIZE);
	off_t len = (off_t)(n * CHUNK_SIZE);

	/* Giving memory back to the OS writes it too (it comes back zero). */
	pool_scrub_check(chunk * CHUNK_FRAMES, n * CHUNK_FRAMES);
	if (fallocate(pool.memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len) == 0)
		t->released += n * CHUNK_SIZE;
	else if (t->dirty)
		pool_scrub_chunks(t, chunk, n);
}

/* Without pool_lock: the run is in transit. Each stretch of chunks picked
 * for release is punched out; the rest of a dirty run is scrubbed. */
static void pool_zero(struct transit *t)
{
	uint64_t first = run_first_chunk(t->pfn), n = run_nr_chunks(t->pfn, t->order);
	uint64_t i = 0, start;
	bool release;

	if (!t->nr_release) {
		if (t->dirty) {
			pool_scrub(t->pfn, t->order);
			t->scrubbed = PM_PAGE_SIZE << t->order;
		}
		return;
	}
	while (i < n) {
		release = bit_test(t->release, i);
		for (start = i; i < n && bit_test(t->release, i) == release; i++)
			;
		if (release)
			pool_release_chunks(t, first + start, i - start);
		else if (t->dirty)
			pool_scrub_chunks(t, first + start, i - start);
	}
}

/* Puts a zeroed block on the free lists, merged with its free buddies;
 * updates *pfn and *order to the resulting block. */
static void pool_merge_locked(uint64_t *pfn, unsigned int *order)
{
	uint64_t head = *pfn, buddy;
	unsigned int o = *order;

	pool_assert_locked();
	for (; o < PM_POOL_MAX_ORDER; o++) {
		buddy = head ^ (1ULL << o);
		if (buddy >= pool.nr_frames || !frame_is_free_block(&pool.frames[buddy], o))
			break;
		free_list_del_locked(buddy);
		head = PM_MIN(head, buddy);
	}
	free_list_add_locked(head, o);
	*pfn = head;
	*order = o;
}

/* The zeroed run leaves transit; t becomes the free block it merged into. */
static void pool_end_transit_locked(struct transit *t)
{
	struct pm_frame *f = &pool.frames[t->pfn];

	pool_assert_locked();
	PM_BUG_ON(frame_word(f) != FRAME_WORD(FRAME_TRANSIT, t->order));
	frame_set(f, FRAME_PLAIN, 0);
	PM_BUG_ON(pool.nr_scrubbing < t->scrub_frames);
	pool.nr_scrubbing -= t->scrub_frames;
	pool.scrubbed += t->scrubbed;
	pool.released += t->released;
	pool.nr_transit--;
	pool_transits_done++;
	pool_merge_locked(&t->pfn, &t->order);
	pthread_cond_broadcast(&pool_transit_cond);
}

/* Trim: a free block of 2 MiB or more holding populated chunks while the
 * pool is over the watermark goes back into transit, to release the excess. */
static bool pool_begin_trim_locked(struct transit *t)
{
	pool_assert_locked();
	PM_BUG_ON(!frame_is_free_block(&pool.frames[t->pfn], t->order));
	if (t->order < CHUNK_ORDER)
		return false;
	*t = (struct transit){ .pfn = t->pfn, .order = t->order };
	pool_pick_release_locked(t);
	if (!t->nr_release)
		return false;
	free_list_del_locked(t->pfn);
	pool_enter_transit_locked(t->pfn, t->order);
	return true;
}

/* t is a free block that just grew (merged): while it qualifies for a trim,
 * releases the excess, dropping pool_lock for the punch. */
static void pool_trim_locked(struct transit *t)
{
	pool_assert_locked();
	while (pool_begin_trim_locked(t)) {
		pool_lock_drop();
		pool_zero(t);
		pool_lock_take();
		pool_end_transit_locked(t);
	}
}

/* The shared path: transit, zeroing, merging, trimming. */
static void pool_free_run(uint64_t pfn, unsigned int order)
{
	struct transit t;

	pool_lock_take();
	pool_begin_free_locked(pfn, order, &t);
	pool_lock_drop();
	pool_zero(&t);
	pool_lock_take();
	pool_end_transit_locked(&t);
	pool_trim_locked(&t);
	pool_lock_drop();
}

/* ---- per-thread caches of 4K frames ---- */

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
	uint64_t scrubbed;         /* lock: bytes zeroed, not yet in pool.scrubbed */
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
static void pool_caches_lock_all(void)
{
	struct pool_cache *c;

	PM_BUG_ON(pool_cache_held || pool_caches_all_held || pool_lock_held);
	pthread_mutex_lock(&pool_caches_lock);
	for (c = pool_caches; c; c = c->next)
		pthread_mutex_lock(&c->lock);
	pool_caches_all_held = true;
}

static void pool_caches_unlock_all(void)
{
	struct pool_cache *c;

	PM_BUG_ON(!pool_caches_all_held);
	pool_caches_all_held = false;
	for (c = pool_caches; c; c = c->next)
		pthread_mutex_unlock(&c->lock);
	pthread_mutex_unlock(&pool_caches_lock);
}

/* A cached frame goes back on the lists, merged with its free buddies. It
 * reads zero already, so it needs no transit. */
static void pool_uncache_locked(uint64_t pfn)
{
	struct transit t = { .pfn = pfn, .order = 0 };
	struct pm_frame *f = &pool.frames[pfn];

	pool_assert_locked();
	PM_BUG_ON(frame_word(f) != FRAME_WORD(FRAME_CACHED, 0));
	PM_BUG_ON(!pool.nr_allocated);
	frame_set(f, FRAME_PLAIN, 0);
	pool.nr_allocated--;
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
	pool.scrubbed += c->scrubbed;
	c->scrubbed = 0;
	for (i = 0; i < n; i++)
		pool_uncache_locked(c->pfn[i]);
	memmove(c->pfn, c->pfn + n, (c->nr - n) * sizeof(c->pfn[0]));
	c->nr -= n;
}

/* Empties every cache: until the caller drops the caches' locks, every free
 * frame is on the lists (merged as far as it goes) and every counter is
 * exact, as without caches. */
static void pool_drain_caches_locked(void)
{
	struct pool_cache *c;

	PM_BUG_ON(!pool_caches_all_held);
	pool_assert_locked();
	for (c = pool_caches; c; c = c->next) {
		/* Caches are drained before the pool is destroyed. */
		PM_BUG_ON(!pool.live && (c->nr || c->scrubbed));
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
 * chunk be released) before the prefault ends: see "population" above. The
 * frame taken first (the lowest of a split block) ends on top. */
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
			frame_set(&pool.frames[pfn], FRAME_CACHED, 0);
			c->pfn[c->nr++] = (uint32_t)pfn;
		}
	}
	pool_lock_drop();
	for (i = 0; i < nr_chunks; i++)
		pool_populate(chunk[i], 1);
	pool_cache_reverse(c);
}

/* Whether pfn lies in a free, in-transit or cached block: the walk of
 * pool_block_containing() in a pool_seq read section, retried while
 * pool_lock holders interfere, and under pool_lock as a last resort. */
static bool pool_frame_in_block(uint64_t pfn)
{
	unsigned int tries;
	uint64_t seq;
	bool in;

	for (tries = 0; tries < 16; tries++) {
		seq = atomic_load_explicit(&pool_seq, memory_order_acquire);
		if (seq & 1)
			continue;
		in = pool_block_containing(pfn) != PM_PFN_INVALID;
		/* Not hoisted above the acquire loads of the walk. */
		if (atomic_load_explicit(&pool_seq, memory_order_relaxed) == seq)
			return in;
	}
	pool_lock_take();
	in = pool_block_containing(pfn) != PM_PFN_INVALID;
	pool_lock_drop();
	return in;
}

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
	if (atomic_compare_exchange_strong_explicit(&pool.frames[pfn].word, &alloc4k,
						    FRAME_WORD(FRAME_CACHED, 0),
						    memory_order_relaxed, memory_order_relaxed))
		return;
	PM_BUG_ON(pool_frame_in_block(pfn));                            /* double free */
	PM_BUG_ON(!atomic_compare_exchange_strong_explicit(&pool.frames[pfn].word, &plain,
							   FRAME_WORD(FRAME_CACHED, 0),
							   memory_order_relaxed,
							   memory_order_relaxed));
}

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

/* ---- allocation and freeing: the entry points ---- */

/* The lists had no block: flush every cache and wait for the transits
 * pending, then take one. ENOMEM here means the pool is exhausted. */
static int pool_alloc_reclaim(unsigned int order, pm_pfn_t *pfn)
{
	uint64_t todo[(RUN_MAX_CHUNKS + 63) / 64] = { 0 };
	uint64_t head;
	int ret;

	pool_caches_lock_all();
	pool_lock_take();
	ret = pool_ensure_locked();
	if (!ret) {
		pool_drain_caches_locked();
		ret = pool_alloc_block_locked(order, &head);
	}
	if (ret)
		pool.alloc_failures++;
	else
		pool_commit_alloc_locked(head, order, todo);
	pool_lock_drop();
	pool_caches_unlock_all();
	if (ret)
		return ret;
	pool_prefault(head, order, todo);
	*pfn = head;
	return 0;
}

/* The shared path: from the lists, under pool_lock. */
static int pool_alloc_run(unsigned int order, pm_pfn_t *pfn)
{
	uint64_t todo[(RUN_MAX_CHUNKS + 63) / 64] = { 0 };
	uint64_t head;
	bool ok;

	pool_lock_take();
	ok = !pool_ensure_locked() && pool_take_block_locked(order, &head);
	if (ok)
		pool_commit_alloc_locked(head, order, todo);
	pool_lock_drop();
	if (!ok)
		return pool_alloc_reclaim(order, pfn);
	pool_prefault(head, order, todo);
	*pfn = head;
	return 0;
}

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
	f = &pool.frames[head];
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
	memset(pm_pfn_to_hva(pfn), 0, PM_PAGE_SIZE);
	c->scrubbed += PM_PAGE_SIZE;
	if (c->nr == CACHE_MAX) {
		pool_lock_take();
		pool_cache_flush_locked(c, CACHE_BATCH);
		pool_lock_drop();
	}
	c->pfn[c->nr++] = (uint32_t)pfn;
	pool_cache_unlock(c);
}

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

/* ---- translation ---- */

void *pm_pfn_to_hva(pm_pfn_t pfn)
{
	uintptr_t base = atomic_load_explicit(&pool_hva_base, memory_order_relaxed);

	PM_BUG_ON(pfn >= atomic_load_explicit(&pool_hva_frames, memory_order_relaxed));
	return (void *)(base + (uintptr_t)(pfn << PM_PAGE_SHIFT));
}

/* Racing a re-creation may pair an old base with a new size; only addresses
 * that are no frame's (no frame is allocated then) can be misjudged. */
pm_pfn_t pm_hva_to_pfn(const void *hva)
{
	uintptr_t base = atomic_load_explicit(&pool_hva_base, memory_order_relaxed);
	uint64_t nr = atomic_load_explicit(&pool_hva_frames, memory_order_relaxed);
	uintptr_t a = (uintptr_t)hva;

	if (!base || a < base || (a - base) >> PM_PAGE_SHIFT >= nr)
		return PM_PFN_INVALID;
	return (a - base) >> PM_PAGE_SHIFT;
}

/* ---- queries and configuration ---- */

int pm_pool_memfd(void)
{
	int ret;

	pool_lock_take();
	ret = pool_ensure_locked();
	if (!ret)
		ret = pool.memfd;
	pool_lock_drop();
	return ret;
}

uint64_t pm_pool_nr_frames(void)
{
	uint64_t nr;

	pool_lock_take();
	(void)pool_ensure_locked();
	nr = pool.nr_frames;
	pool_lock_drop();
	return nr;
}

static int pool_reconfigure_locked(uint64_t size, uint64_t watermark)
{
	int ret;

	pool_assert_locked();
	if (!size || !PM_ALIGNED(size, CHUNK_SIZE))
		return -EINVAL;
	if (size > POOL_MAX_SIZE)
		return -ENOMEM;
	if (pool.live)
		pool_drain_caches_locked();
	if (pool_busy_locked())
		return -EBUSY;
	if (pool.live)
		pool_destroy_locked();
	/* On failure the old configuration stays, to be re-created lazily. */
	ret = pool_create_locked(size);
	if (ret)
		return ret;
	pool.config_size = size;
	pool.watermark = watermark;
	return 0;
}

int pm_pool_configure(uint64_t size, uint64_t watermark)
{
	int ret;

	pool_caches_lock_all();
	pool_lock_take();
	pool_read_config_locked();
	ret = pool_reconfigure_locked(size ? size : pool.config_size,
				      watermark ? watermark : pool.watermark);
	pool_lock_drop();
	pool_caches_unlock_all();
	return ret;
}

static void pool_fill_stats_locked(struct pm_pool_stats *st)
{
	unsigned int o;

	pool_assert_locked();
	st->size = pool.nr_frames << PM_PAGE_SHIFT;
	st->in_use = pool.nr_allocated << PM_PAGE_SHIFT;
	st->populated = pool.nr_populated * CHUNK_SIZE;
	st->scrubbed = pool.scrubbed;
	st->released = pool.released;
	st->alloc_failures = pool.alloc_failures;
	st->thp = pool.thp;
	for (o = 0; o <= PM_POOL_MAX_ORDER; o++)
		st->free_blocks[o] = pool.nr_free[o];
}

void pm_pool_get_stats(struct pm_pool_stats *st)
{
	memset(st, 0, sizeof(*st));
	pool_caches_lock_all();
	pool_lock_take();
	(void)pool_ensure_locked();
	st->watermark = pool.watermark;
	if (pool.live) {
		pool_drain_caches_locked();
		pool_fill_stats_locked(st);
	}
	pool_lock_drop();
	pool_caches_unlock_all();
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

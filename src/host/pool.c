/* SPDX-License-Identifier: MIT */
/*
 * The frame pool: the pool object, its lock and its shared paths
 * (interface and invariants in pool.h; the other parts are listed in
 * pool_internal.h).
 *
 * Backing: one region of private anonymous memory at a 1 GiB-aligned
 * address (pool_map_aligned says why anonymous), so that a 2M or 1G run is
 * aligned in the library's address space and the host can back it with huge
 * pages. Frame N is the 4 KiB at base + (N << 12).
 * The pool is created on first use, with PRIVMEM_POOL_SIZE and
 * PRIVMEM_POOL_WATERMARK, and re-created by pm_pool_configure() only while
 * nothing is allocated or in transit.
 *
 * Allocation (pm_pool_alloc, in pool_cache.c): 4K frames come from the
 * calling thread's cache; every other order, and a thread without a cache,
 * takes the shared path here: a block from the buddy lists (pool_buddy.c)
 * under pool_lock, then a prefault of the chunks it was the first to take
 * (pool_backing.c). An allocation that finds no block drains every
 * thread's cache and, while runs are in transit, waits for as many
 * transits to end as were pending, so ENOMEM means the pool is really
 * exhausted, not merely busy zeroing.
 * Freeing (pm_pool_free): a 4K frame goes into the calling thread's cache;
 * any other run goes through transit (pool_backing.c: scrubbed or released
 * to the OS, then merged back onto the lists).
 *
 * Locking: pool_lock protects struct pool and the frame array (but see the
 * cached frames in pool_cache.c). Lock order: pool_caches_lock > a cache's
 * lock > pool_lock; nothing takes a cache lock while holding pool_lock. The
 * address translation is lock-free through two atomics written under
 * pool_lock.
 *
 * pool_seq lets a 4K free check frame states without pool_lock
 * (pool_frame_in_block, for pool_cache.c). Head words are atomic and
 * written under pool_lock (except PLAIN <-> CACHED of a frame, by the
 * thread holding it); pool_lock holders keep pool_seq odd, so a walk of the
 * heads between two equal even reads of pool_seq saw the lists at one
 * instant, as the walk under pool_lock would.
 */
#include "host/pool_internal.h"

#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define POOL_DEFAULT_SIZE      (4ULL << 30)
#define POOL_DEFAULT_WATERMARK (256ULL << 20)
#define POOL_MAP_ALIGN         (1ULL << 30)

/* Adaptive: the critical sections are short, so spin a little before sleeping. */
static pthread_mutex_t pool_lock = PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP;
/* Odd while a thread holds pool_lock (written by that thread only): see
 * pool_seq at the top of the file. */
static _Atomic uint64_t pool_seq;
/* Broadcast under pool_lock whenever a run leaves transit. */
static pthread_cond_t pool_transit_cond = PTHREAD_COND_INITIALIZER;
/* Whether this thread holds pool_lock, for the _locked assertions. */
_Thread_local bool pool_lock_held;
/* Protected by pool_lock. */
struct pool pm_pool;
/* Runs that ever left transit (survives re-creation); pool_lock. */
static uint64_t pool_transits_done;
/* The mapping for the lock-free translations; written under pool_lock. */
static _Atomic uintptr_t pool_hva_base;
_Atomic uint64_t pool_hva_frames;

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

void pool_lock_take(void)
{
	pthread_mutex_lock(&pool_lock);
	pool_lock_held = true;
	pool_seq_enter();
}

void pool_lock_drop(void)
{
	pool_seq_exit();
	pool_lock_held = false;
	pthread_mutex_unlock(&pool_lock);
}

/* Waits on pool_transit_cond, which drops pool_lock meanwhile. */
static void pool_lock_wait_transit(void)
{
	pool_assert_locked();
	pool_seq_exit();
	pthread_cond_wait(&pool_transit_cond, &pool_lock);
	pool_seq_enter();
}

/* A run left transit (pool_end_transit_locked): counted, and the
 * allocations waiting for transits to end are woken. */
void pool_transit_ended_locked(void)
{
	pool_assert_locked();
	pool_transits_done++;
	pthread_cond_broadcast(&pool_transit_cond);
}

/* Whether pfn lies in a free, in-transit or cached block: the walk of
 * pool_block_containing() in a pool_seq read section, retried while
 * pool_lock holders interfere, and under pool_lock as a last resort. */
bool pool_frame_in_block(uint64_t pfn)
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

/* ---- configuration from the environment ---- */

static bool pool_size_ok(uint64_t size)
{
	return size && PM_ALIGNED(size, CHUNK_SIZE) && size <= POOL_MAX_SIZE;
}

/* Parses "<digits>[K|M|G|T]" (binary multiples). */
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
	case 'T': case 't': shift = 40; end++; break;
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
	fprintf(stderr, "privmem: ignoring %s=\"%s\" (want bytes%s, optionally with a K/M/G/T suffix); using %" PRIu64 "\n",
		name, s, is_size ? ", a positive multiple of 2 MiB" : "", dflt);
	return dflt;
}

/* PRIVMEM_POOL_NODES: 1..PM_POOL_MAX_NODES (a pool too small for them is
 * created with as many 2 MiB nodes as fit). */
static unsigned int env_nodes(void)
{
	const char *s = getenv("PRIVMEM_POOL_NODES");
	char *end;
	unsigned long v;

	if (!s)
		return 1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (!errno && *s && !*end && v >= 1 && v <= PM_POOL_MAX_NODES)
		return (unsigned int)v;
	fprintf(stderr, "privmem: ignoring PRIVMEM_POOL_NODES=\"%s\" (want 1..%d); using 1\n", s,
		PM_POOL_MAX_NODES);
	return 1;
}

static void pool_read_config_locked(void)
{
	uint64_t dflt;

	pool_assert_locked();
	if (pm_pool.config_read)
		return;
	pm_pool.config_size = env_bytes("PRIVMEM_POOL_SIZE", POOL_DEFAULT_SIZE, true);
	/* The default is capped at a small pool's size; a watermark set above
	 * the pool's size is as wrong as any other bad value. */
	dflt = PM_MIN(POOL_DEFAULT_WATERMARK, pm_pool.config_size);
	pm_pool.watermark = env_bytes("PRIVMEM_POOL_WATERMARK", dflt, false);
	if (pm_pool.watermark > pm_pool.config_size) {
		fprintf(stderr, "privmem: ignoring PRIVMEM_POOL_WATERMARK=\"%s\" (more than the pool's "
			"size, %" PRIu64 " bytes); using %" PRIu64 "\n", getenv("PRIVMEM_POOL_WATERMARK"),
			pm_pool.config_size, dflt);
		pm_pool.watermark = dflt;
	}
	pm_pool.config_nodes = env_nodes();
	pm_pool.config_read = true;
}

/* ---- creation and teardown ---- */

/* Maps the pool at a 1 GiB-aligned address: reserve more, map inside, trim. */
/* The pool's memory: private anonymous memory (no file behind it since no
 * guest_memfd view maps frames any more: views map their file's host file),
 * so that the host backs it with transparent huge pages where its policy
 * allows (shmem rarely gets them: a random guest access then paid a host
 * TLB miss natively-mapped memory does not), and a fork child gets a
 * copy-on-write copy that cannot write the parent's guest memory. */
static char *pool_map_aligned(uint64_t size)
{
	char *res, *base;
	uint64_t head;

	res = mmap(NULL, size + POOL_MAP_ALIGN, PROT_NONE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (res == MAP_FAILED)
		return NULL;
	base = (char *)PM_ALIGN_UP((uintptr_t)res, POOL_MAP_ALIGN);
	if (mmap(base, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
		 MAP_FIXED, -1, 0) == MAP_FAILED) {
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

/* MADV_HUGEPAGE gives anonymous memory THP unless the host's policy is
 * "never". */
static bool thp_effective(void)
{
	char buf[128] = "";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "re");

	if (!f)
		return false;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	return strstr(buf, "[always]") || strstr(buf, "[madvise]");
}

static void pool_install_locked(char *base, uint64_t nr_frames,
				struct pm_frame *frames, uint64_t *populated)
{
	unsigned int nodes = PM_MAX(1U, PM_MIN(pm_pool.config_nodes, (unsigned int)(nr_frames / CHUNK_FRAMES)));
	struct pool fresh = {
		.config_read = pm_pool.config_read,
		.config_size = pm_pool.config_size,
		.config_nodes = pm_pool.config_nodes,
		.nr_nodes = nodes,
		.node_frames = PM_ALIGN_DOWN(nr_frames / nodes, CHUNK_FRAMES),
		.watermark = pm_pool.watermark,
		.live = true,
		.base = base,
		.nr_frames = nr_frames,
		.frames = frames,
		.populated = populated,
	};

	pool_assert_locked();
	pm_pool = fresh;
	pm_pool.thp = madvise(base, nr_frames << PM_PAGE_SHIFT, MADV_HUGEPAGE) == 0 &&
		   thp_effective();
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

	pool_assert_locked();
	PM_BUG_ON(pm_pool.live || !pool_size_ok(size));
	base = pool_map_aligned(size);
	if (!base)
		return -ENOMEM;
	frames = mmap(NULL, frames_len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (frames == MAP_FAILED)
		goto err_unmap_base;
	populated = calloc((nr_frames / CHUNK_FRAMES + 63) / 64, sizeof(uint64_t));
	if (!populated)
		goto err_unmap_frames;
	pool_install_locked(base, nr_frames, frames, populated);
	return 0;

err_unmap_frames:
	munmap(frames, frames_len);
err_unmap_base:
	munmap(base, size);
	return -ENOMEM;
}

static bool pool_busy_locked(void)
{
	pool_assert_locked();
	return pm_pool.live && (pm_pool.nr_allocated || pm_pool.nr_transit);
}

static void pool_destroy_locked(void)
{
	pool_assert_locked();
	PM_BUG_ON(!pm_pool.live || pool_busy_locked());
	pool_hidden_destroy_locked();
	atomic_store_explicit(&pool_hva_frames, 0, memory_order_relaxed);
	atomic_store_explicit(&pool_hva_base, 0, memory_order_relaxed);
	free(pm_pool.populated);
	munmap(pm_pool.frames, pm_pool.nr_frames * sizeof(struct pm_frame));
	munmap(pm_pool.base, pm_pool.nr_frames << PM_PAGE_SHIFT);
	pm_pool.live = false;
	pm_pool.base = NULL;
	pm_pool.frames = NULL;
	pm_pool.populated = NULL;
	pm_pool.nr_frames = 0;
}

/* Lazy creation, on first use. */
int pool_ensure_locked(void)
{
	pool_assert_locked();
	if (pm_pool.live)
		return 0;
	pool_read_config_locked();
	return pool_create_locked(pm_pool.config_size);
}

/* ---- allocation and freeing: the shared path ---- */

/* Waits for the transits pending now (not for later ones: that could starve)
 * before declaring the pool exhausted. */
static int pool_alloc_block_locked(unsigned int order, const struct pm_node_policy *p,
				   uint64_t *pfn)
{
	uint64_t start = pool_transits_done, pending = pm_pool.nr_transit;

	pool_assert_locked();
	while (!pool_take_block_policy_locked(order, p, pfn)) {
		if (pool_transits_done - start >= pending)
			return -ENOMEM;
		pool_lock_wait_transit();
		if (!pm_pool.live)
			return -ENOMEM;
	}
	return 0;
}

/* The run at head, taken from the lists, goes to the caller: first the
 * chunks its allocation populated are prefaulted, without pool_lock. */
static int pool_hand_out(uint64_t head, unsigned int order, const uint64_t *todo, pm_pfn_t *pfn)
{
	pool_prefault(head, order, todo);
	*pfn = head;
	return 0;
}

/* The lists had no block: flush every cache and wait for the transits
 * pending, then take one. ENOMEM here means the pool is exhausted. */
static int pool_alloc_reclaim_policy(unsigned int order, const struct pm_node_policy *p,
				     pm_pfn_t *pfn)
{
	uint64_t todo[(RUN_MAX_CHUNKS + 63) / 64] = { 0 };
	uint64_t head;
	int ret;

	pool_caches_lock_all();
	pool_lock_take();
	ret = pool_ensure_locked();
	if (!ret) {
		pool_drain_caches_locked();
		ret = pool_alloc_block_locked(order, p, &head);
	}
	if (ret)
		pm_pool.alloc_failures++;
	else
		pool_commit_alloc_locked(head, order, todo);
	pool_lock_drop();
	pool_caches_unlock_all();
	if (ret)
		return ret;
	return pool_hand_out(head, order, todo, pfn);
}

int pool_alloc_reclaim(unsigned int order, pm_pfn_t *pfn)
{
	return pool_alloc_reclaim_policy(order, NULL, pfn);
}

/* The shared path: from the lists, under pool_lock. */
static int pool_alloc_run_policy(unsigned int order, const struct pm_node_policy *p, pm_pfn_t *pfn)
{
	uint64_t todo[(RUN_MAX_CHUNKS + 63) / 64] = { 0 };
	uint64_t head;
	bool ok;

	pool_lock_take();
	ok = !pool_ensure_locked() && pool_take_block_policy_locked(order, p, &head);
	if (ok)
		pool_commit_alloc_locked(head, order, todo);
	pool_lock_drop();
	if (!ok)
		return pool_alloc_reclaim_policy(order, p, pfn);
	return pool_hand_out(head, order, todo, pfn);
}

int pool_alloc_run(unsigned int order, pm_pfn_t *pfn)
{
	return pool_alloc_run_policy(order, NULL, pfn);
}

int pm_pool_alloc_policy(unsigned int order, const struct pm_node_policy *p, pm_pfn_t *pfn)
{
	PM_BUG_ON(order > PM_POOL_MAX_ORDER);
	if (!p)
		return pm_pool_alloc(order, pfn);
	return pool_alloc_run_policy(order, p, pfn);
}

/* Immutable while the frame is allocated (the pool cannot be re-created). */
unsigned int pm_pool_node_of(pm_pfn_t pfn)
{
	return pool_node_of(pfn);
}

unsigned int pm_pool_nr_nodes(void)
{
	unsigned int n;

	pool_lock_take();
	(void)pool_ensure_locked();
	n = pm_pool.live ? pm_pool.nr_nodes : 1;
	pool_lock_drop();
	return n;
}

/* The shared path: transit, zeroing, merging, trimming. */
void pool_free_run(uint64_t pfn, unsigned int order)
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

/* ---- translation ---- */

void *pm_pfn_to_direct(pm_pfn_t pfn)
{
	uintptr_t base = atomic_load_explicit(&pool_hva_base, memory_order_relaxed);

	PM_BUG_ON(pfn >= atomic_load_explicit(&pool_hva_frames, memory_order_relaxed));
	return (void *)(base + (uintptr_t)(pfn << PM_PAGE_SHIFT));
}

void *pm_pfn_to_hva(pm_pfn_t pfn)
{
	if (__builtin_expect(pool_hidden_frames() != 0, 0) && pool_frame_hidden(pfn))
		return pool_hidden_hva(pfn);
	return pm_pfn_to_direct(pfn);
}

/* Racing a re-creation may pair an old base with a new size; only addresses
 * that are no frame's (no frame is allocated then) can be misjudged. */
pm_pfn_t pm_hva_to_pfn(const void *hva)
{
	uintptr_t base = atomic_load_explicit(&pool_hva_base, memory_order_relaxed);
	uint64_t nr = atomic_load_explicit(&pool_hva_frames, memory_order_relaxed);
	uintptr_t a = (uintptr_t)hva;

	if (!base || a < base || (a - base) >> PM_PAGE_SHIFT >= nr)
		return pool_hidden_frames() ? pool_hidden_pfn(a) : PM_PFN_INVALID;
	return (a - base) >> PM_PAGE_SHIFT;
}

/* ---- queries and configuration ---- */

uint64_t pm_pool_nr_frames(void)
{
	uint64_t nr;

	pool_lock_take();
	(void)pool_ensure_locked();
	nr = pm_pool.nr_frames;
	pool_lock_drop();
	return nr;
}

static int pool_reconfigure_locked(uint64_t size, uint64_t watermark, unsigned int nodes)
{
	unsigned int old_nodes = pm_pool.config_nodes;
	int ret;

	pool_assert_locked();
	if (!size || !PM_ALIGNED(size, CHUNK_SIZE) || watermark > size)
		return -EINVAL;
	if (!nodes || nodes > PM_POOL_MAX_NODES)
		return -EINVAL;
	if (size > POOL_MAX_SIZE)
		return -ENOMEM;
	if (pm_pool.live)
		pool_drain_caches_locked();
	if (pool_busy_locked())
		return -EBUSY;
	if (pm_pool.live)
		pool_destroy_locked();
	/* On failure the old configuration stays, to be re-created lazily. */
	pm_pool.config_nodes = nodes;
	ret = pool_create_locked(size);
	if (ret) {
		pm_pool.config_nodes = old_nodes;
		return ret;
	}
	pm_pool.config_size = size;
	pm_pool.watermark = watermark;
	return 0;
}

int pm_pool_configure(uint64_t size, uint64_t watermark)
{
	return pm_pool_configure_nodes(size, watermark, 0);
}

int pm_pool_configure_nodes(uint64_t size, uint64_t watermark, unsigned int nodes)
{
	int ret;

	if (nodes > PM_POOL_MAX_NODES)
		return -EINVAL;
	pool_caches_lock_all();
	pool_lock_take();
	pool_read_config_locked();
	size = size ? size : pm_pool.config_size;
	/* Nodes asked for must fit (2 MiB each); kept ones shrink to fit. A
	 * watermark kept from before is capped at the new size; one given
	 * above it is EINVAL. */
	if (nodes && nodes > size / CHUNK_SIZE)
		ret = -EINVAL;
	else
		ret = pool_reconfigure_locked(size, watermark ? watermark : PM_MIN(pm_pool.watermark, size),
					      nodes ? nodes : pm_pool.config_nodes);
	pool_lock_drop();
	pool_caches_unlock_all();
	return ret;
}

static void pool_fill_stats_locked(struct pm_pool_stats *st)
{
	unsigned int o;

	pool_assert_locked();
	st->size = pm_pool.nr_frames << PM_PAGE_SHIFT;
	st->in_use = pm_pool.nr_allocated << PM_PAGE_SHIFT;
	st->populated = pm_pool.nr_populated * CHUNK_SIZE;
	st->scrubbed = pm_pool.scrubbed;
	st->released = pm_pool.released;
	st->alloc_failures = pm_pool.alloc_failures;
	st->thp = pm_pool.thp;
	for (o = 0; o <= PM_POOL_MAX_ORDER; o++)
		st->free_blocks[o] = pm_pool.nr_free[o];
	st->nr_nodes = pm_pool.nr_nodes;
	for (unsigned int n = 0; n < pm_pool.nr_nodes; n++) {
		st->node_size[n] = (pool_node_end(n) - pool_node_start(n)) << PM_PAGE_SHIFT;
		st->node_in_use[n] = pm_pool.node_allocated[n] << PM_PAGE_SHIFT;
	}
}

void pm_pool_get_stats(struct pm_pool_stats *st)
{
	memset(st, 0, sizeof(*st));
	pool_caches_lock_all();
	pool_lock_take();
	(void)pool_ensure_locked();
	st->watermark = pm_pool.watermark;
	if (pm_pool.live) {
		pool_drain_caches_locked();
		pool_fill_stats_locked(st);
	}
	pool_lock_drop();
	pool_caches_unlock_all();
}

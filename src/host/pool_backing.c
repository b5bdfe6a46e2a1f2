/* SPDX-License-Identifier: MIT */
/*
 * The host memory behind the frame pool: population, the watermark, and a
 * freed run's way back to the free lists (transit, scrub or release to the
 * OS, trim). The pool: pool.c; its parts: pool_internal.h.
 *
 * Life of a run:
 *
 *   free (on a list, reads zero) --pm_pool_alloc--> allocated
 *   allocated --pm_pool_free--> in transit (off every list, being zeroed)
 *   in transit --> free (merged with its free buddies)
 *   free, >= 2 MiB, pool over the watermark --trim--> in transit (released)
 *
 * (4K frames also pass through the threads' caches: pool_cache.c.)
 *
 * Population: host memory is populated in 2 MiB chunks when first
 * allocated from; the populated bitmap says which chunks are backed.
 *
 * Releasing: when a run of 2 MiB or more enters transit (freed, or a free
 * block that merging grew that large: "trim") while the free populated
 * memory exceeds the watermark, just enough of its populated 2 MiB chunks to
 * come back down to the watermark are picked, under pool_lock, to be
 * discarded (MADV_DONTNEED), which returns them to the OS: they read zero
 * when next touched. The rest
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
 *    allocated, only after the discard. Nobody can be handed memory that is
 *    about to be discarded, and concurrent decisions see each other's picks.
 *  - population: the allocator that first takes frames from a chunk marks
 *    it populated under the lock and prefaults it after unlocking. Others
 *    may meanwhile be handed frames of that chunk and use them: prefaulting
 *    never changes data (it faults pages in, as touching them would), and
 *    the chunk cannot be released before the prefault ends, because it holds
 *    frames of the allocation being prefaulted, which its caller has not
 *    even received yet.
 *
 * Every write to frame contents here (the scrub, the release) asks the
 * hardware's host access guards first (host_guard.h).
 */
#include "host/pool_internal.h"

#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* ---- population ---- */

/* Free frames backed by host memory: populated chunks hold every allocated
 * and every scrubbing frame (chunks are unpopulated only when wholly free). */
static uint64_t pool_free_populated_bytes_locked(void)
{
	uint64_t populated = pm_pool.nr_populated * CHUNK_FRAMES;
	uint64_t held = pm_pool.nr_allocated + pm_pool.nr_scrubbing;

	pool_assert_locked();
	PM_BUG_ON(held > populated);
	return (populated - held) << PM_PAGE_SHIFT;
}

/* Marks the chunks of a new allocation populated; sets bit i of todo for
 * each chunk i of the run that this call flipped, for pool_prefault(). */
void pool_mark_populated_locked(uint64_t pfn, unsigned int order, uint64_t *todo)
{
	uint64_t first = run_first_chunk(pfn), n = run_nr_chunks(pfn, order), i;

	pool_assert_locked();
	for (i = 0; i < n; i++) {
		if (bit_test(pm_pool.populated, first + i))
			continue;
		bit_set(pm_pool.populated, first + i);
		pm_pool.nr_populated++;
		bit_set(todo, i);
	}
}

/* Faults in host memory for chunks [chunk, chunk + n). A failure is left for
 * the first touch to meet, as it would on a host short of memory: the
 * prefault is an optimisation, not a guarantee. */
void pool_populate(uint64_t chunk, uint64_t n)
{
	void *addr = pm_pfn_to_direct(chunk * CHUNK_FRAMES);
	off_t len = (off_t)(n * CHUNK_SIZE);

	/* Kernel older than 5.14 (EINVAL): the first touch faults them in. */
	(void)madvise(addr, (size_t)len, MADV_POPULATE_WRITE);
}

/* Without pool_lock: see "population" at the top of the file. */
void pool_prefault(uint64_t pfn, unsigned int order, const uint64_t *todo)
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

/* ---- freeing: transit, zeroing, trimming ---- */

static void pool_enter_transit_locked(uint64_t pfn, unsigned int order)
{
	struct pm_frame *f = &pm_pool.frames[pfn];

	pool_assert_locked();
	PM_BUG_ON(frame_state(f) != FRAME_PLAIN);
	frame_set(f, FRAME_TRANSIT, order);
	pm_pool.nr_transit++;
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
	if (free_populated <= pm_pool.watermark)
		return;
	excess = free_populated - pm_pool.watermark;
	for (i = 0; i < n && excess; i++) {
		/* A freed run was allocated: all its chunks are populated. */
		PM_BUG_ON(t->dirty && !bit_test(pm_pool.populated, first + i));
		if (!bit_test(pm_pool.populated, first + i))
			continue;
		bit_clear(pm_pool.populated, first + i);
		pm_pool.nr_populated--;
		bit_set(t->release, i);
		t->nr_release++;
		excess -= PM_MIN(excess, CHUNK_SIZE);
	}
}

/* A freed run enters transit: chunks beyond the watermark to be released
 * (runs of 2 MiB or more only), the rest to be scrubbed. */
void pool_begin_free_locked(uint64_t pfn, unsigned int order, struct transit *t)
{
	uint64_t n;

	pool_assert_locked();
	pool_plain_alloc4k_locked(pfn, order);
	pool_check_allocated_locked(pfn, order);
	n = 1ULL << order;
	pm_pool.nr_allocated -= n;
	pm_pool.node_allocated[pool_node_of(pfn)] -= n;
	*t = (struct transit){ .pfn = pfn, .order = order, .dirty = true };
	if (order >= CHUNK_ORDER)
		pool_pick_release_locked(t);
	t->scrub_frames = n - t->nr_release * CHUNK_FRAMES;
	pm_pool.nr_scrubbing += t->scrub_frames;
	pool_enter_transit_locked(pfn, order);
}

static void pool_scrub(uint64_t pfn, unsigned int order)
{
	pool_scrub_check(pfn, 1ULL << order);
	memset(pm_pfn_to_direct(pfn), 0, PM_PAGE_SIZE << order);
}

static void pool_scrub_chunks(struct transit *t, uint64_t chunk, uint64_t n)
{
	uint64_t i;

	for (i = 0; i < n; i++)
		pool_scrub((chunk + i) * CHUNK_FRAMES, CHUNK_ORDER);
	t->scrubbed += n * CHUNK_SIZE;
}

/* A discard that fails leaves the data: a dirty run then gets the scrub. The
 * chunks stay counted as unpopulated; the next allocation from them
 * prefaults them again, which is harmless. */
static void pool_release_chunks(struct transit *t, uint64_t chunk, uint64_t n)
{
	off_t len = (off_t)(n * CHUNK_SIZE);

	/* Giving memory back to the OS writes it too (it comes back zero). */
	pool_scrub_check(chunk * CHUNK_FRAMES, n * CHUNK_FRAMES);
	if (madvise(pm_pfn_to_direct(chunk * CHUNK_FRAMES), (size_t)len, MADV_DONTNEED) == 0)
		t->released += n * CHUNK_SIZE;
	else if (t->dirty)
		pool_scrub_chunks(t, chunk, n);
}

/* Without pool_lock: the run is in transit. Each stretch of chunks picked
 * for release is discarded; the rest of a dirty run is scrubbed. */
void pool_zero(struct transit *t)
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

/* The zeroed run leaves transit; t becomes the free block it merged into. */
void pool_end_transit_locked(struct transit *t)
{
	struct pm_frame *f = &pm_pool.frames[t->pfn];

	pool_assert_locked();
	PM_BUG_ON(frame_word(f) != FRAME_WORD(FRAME_TRANSIT, t->order));
	frame_set(f, FRAME_PLAIN, 0);
	PM_BUG_ON(pm_pool.nr_scrubbing < t->scrub_frames);
	pm_pool.nr_scrubbing -= t->scrub_frames;
	pm_pool.scrubbed += t->scrubbed;
	pm_pool.released += t->released;
	pm_pool.nr_transit--;
	pool_merge_locked(&t->pfn, &t->order);
	pool_transit_ended_locked();
}

/* Trim: a free block of 2 MiB or more holding populated chunks while the
 * pool is over the watermark goes back into transit, to release the excess. */
static bool pool_begin_trim_locked(struct transit *t)
{
	pool_assert_locked();
	PM_BUG_ON(!frame_is_free_block(&pm_pool.frames[t->pfn], t->order));
	if (t->order < CHUNK_ORDER)
		return false;
	*t = (struct transit){ .pfn = t->pfn, .order = t->order };
	pool_pick_release_locked(t);
	if (!t->nr_release)
		return false;
	pool_free_list_del_locked(t->pfn);
	pool_enter_transit_locked(t->pfn, t->order);
	return true;
}

/* t is a free block that just grew (merged): while it qualifies for a trim,
 * releases the excess, dropping pool_lock for the discard. */
void pool_trim_locked(struct transit *t)
{
	pool_assert_locked();
	while (pool_begin_trim_locked(t)) {
		pool_lock_drop();
		pool_zero(t);
		pool_lock_take();
		pool_end_transit_locked(t);
	}
}

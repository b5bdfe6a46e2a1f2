/* SPDX-License-Identifier: MIT */
/*
 * Tests of the frame pool (src/host/): buddy allocation, scrubbing,
 * population and release to the OS, statistics, address translation,
 * configuration, misuse detection, concurrent use, and the per-thread caches
 * of 4K frames.
 *
 * Each test configures the small pool it needs (pm_pool_configure), so the
 * tests do not depend on each other, except test_env_* which must run first:
 * the environment is read when the pool is first used.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "lib/testutil.h"

#include "host/host_guard.h"
#include "host/pool.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define KIB (1ULL << 10)
#define MIB (1ULL << 20)
#define GIB (1ULL << 30)
/* A watermark no test exceeds: freed memory is kept populated and scrubbed
 * (fresh_pool sets the pool's size, the largest watermark it takes). */
#define KEEP_ALL UINT64_MAX

static struct pm_pool_stats pool_stats(void)
{
	struct pm_pool_stats st;

	pm_pool_get_stats(&st);
	return st;
}

static void fresh_pool(uint64_t size, uint64_t watermark)
{
	if (watermark == KEEP_ALL)
		watermark = size;
	assert_int_equal(pm_pool_configure(size, watermark), 0);
	assert_int_equal(pool_stats().size, size);
	assert_int_equal(pool_stats().watermark, watermark);
}

static pm_pfn_t alloc_ok(unsigned int order)
{
	pm_pfn_t pfn = PM_PFN_INVALID;

	assert_int_equal(pm_pool_alloc(order, &pfn), 0);
	assert_true(pfn < pm_pool_nr_frames());
	return pfn;
}

static uint64_t run_bytes(unsigned int order)
{
	return PM_PAGE_SIZE << order;
}

static bool is_zero(const void *p, size_t len)
{
	const uint64_t *w = p;
	size_t i;

	for (i = 0; i < len / sizeof(*w); i++)
		if (w[i])
			return false;
	return true;
}

static void fill(pm_pfn_t pfn, unsigned int order, int byte)
{
	memset(pm_pfn_to_hva(pfn), byte, run_bytes(order));
}

/* Frames of [pfn, pfn + count) the host has backed with memory (mincore). */
static uint64_t resident_frames(pm_pfn_t pfn, uint64_t count)
{
	unsigned char *vec = calloc(count, 1);
	uint64_t i, n = 0;

	assert_non_null(vec);
	assert_int_equal(mincore(pm_pfn_to_hva(pfn), count * PM_PAGE_SIZE, vec), 0);
	for (i = 0; i < count; i++)
		n += vec[i] & 1;
	free(vec);
	return n;
}

/* Frees [pfn, pfn + count) as maximal naturally aligned sub-runs. */
static void free_range(pm_pfn_t pfn, uint64_t count)
{
	while (count) {
		unsigned int order = 0;

		while (order < PM_POOL_MAX_ORDER && PM_ALIGNED(pfn, 1ULL << (order + 1)) &&
		       (1ULL << (order + 1)) <= count)
			order++;
		pm_pool_free(pfn, order);
		pfn += 1ULL << order;
		count -= 1ULL << order;
	}
}

struct abort_call {
	void (*fn)(pm_pfn_t);
	pm_pfn_t pfn;
};

static void abort_call_run(void *arg)
{
	struct abort_call *c = arg;

	c->fn(c->pfn);
}

/* fn(arg) must die of SIGABRT (a PM_BUG_ON) in a child. */
static void expect_abort(void (*fn)(pm_pfn_t), pm_pfn_t arg)
{
	struct abort_call c = { fn, arg };

	assert_true(pm_test_aborts(abort_call_run, &c));
}

static void expect_no_abort(void (*fn)(pm_pfn_t), pm_pfn_t arg)
{
	struct abort_call c = { fn, arg };

	assert_false(pm_test_aborts(abort_call_run, &c));
}

/* ---- environment (must run before anything touches the pool) ---- */

/* In a child, whose pool is not created yet: set the variables, read stats. */
static void check_env(const char *size, const char *watermark,
		      uint64_t want_size, uint64_t want_watermark)
{
	int status = 0;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct pm_pool_stats st;
		int devnull = open("/dev/null", O_WRONLY);

		if (devnull >= 0)
			dup2(devnull, STDERR_FILENO);
		setenv("PRIVMEM_POOL_SIZE", size, 1);
		setenv("PRIVMEM_POOL_WATERMARK", watermark, 1);
		pm_pool_get_stats(&st);
		_exit(st.size == want_size && st.watermark == want_watermark ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_env_sets_initial_size_and_watermark(void **state)
{
	check_env("6M", "3M", 6 * MIB, 3 * MIB);
	check_env("6291456", "4096", 6 * MIB, 4096);
	check_env("1g", "1k", GIB, KIB);
	/* Bad values warn and fall back to the defaults (4 GiB, 256 MiB). */
	check_env("5M", "lots", 4 * GIB, 256 * MIB);
	check_env("0", "-1", 4 * GIB, 256 * MIB);
	check_env("2MB", "", 4 * GIB, 256 * MIB);
#ifndef PM_TSAN
	/* Not under TSan: its fixed layout leaves a 1 TiB reservation to
	 * chance (the pool then has size 0); the T suffix is checked in the
	 * other builds. */
	check_env("1T", "1t", 1ULL << 40, 1ULL << 40);
#endif
	/* A watermark above the pool's size is refused; the default is capped
	 * at a pool smaller than it. */
	check_env("6M", "8M", 6 * MIB, 6 * MIB);
	check_env("64M", "", 64 * MIB, 64 * MIB);
	check_env("1G", "2G", GIB, 256 * MIB);
}

/* ---- allocation ---- */

static void test_alloc_each_order_is_naturally_aligned_and_disjoint(void **state)
{
	static const unsigned int orders[] = { 0, 9, 18, 0, 9, 0, 9 };
	pm_pfn_t pfn[PM_ARRAY_SIZE(orders)];
	size_t i, j;

	fresh_pool(2 * GIB, 2 * MIB);
	for (i = 0; i < PM_ARRAY_SIZE(orders); i++) {
		uint64_t n = 1ULL << orders[i];

		pfn[i] = alloc_ok(orders[i]);
		assert_true(PM_ALIGNED(pfn[i], n));
		assert_true(pfn[i] + n <= pm_pool_nr_frames());
		assert_true(PM_ALIGNED((uintptr_t)pm_pfn_to_hva(pfn[i]), run_bytes(orders[i])));
		for (j = 0; j < i; j++)
			assert_false(pm_ranges_overlap(pfn[i], pfn[i] + n,
						       pfn[j], pfn[j] + (1ULL << orders[j])));
	}
	assert_int_equal(pool_stats().in_use, run_bytes(18) + 3 * run_bytes(9) + 3 * run_bytes(0));
	for (i = 0; i < PM_ARRAY_SIZE(orders); i++)
		pm_pool_free(pfn[i], orders[i]);
	assert_int_equal(pool_stats().in_use, 0);
	assert_int_equal(pool_stats().free_blocks[18], 2);
}

/* ---- scrubbing ---- */

static void test_dirty_frames_read_zero_when_handed_out_again(void **state)
{
	const uint64_t nr = 16 * MIB / PM_PAGE_SIZE;
	pm_pfn_t *pfn = calloc(nr, sizeof(*pfn));
	pm_pfn_t extra;
	uint64_t i, scrubbed;

	assert_non_null(pfn);
	fresh_pool(16 * MIB, KEEP_ALL);
	for (i = 0; i < nr; i++) {
		pfn[i] = alloc_ok(0);
		assert_true(is_zero(pm_pfn_to_hva(pfn[i]), PM_PAGE_SIZE));
		fill(pfn[i], 0, 0xa5);
	}
	assert_int_equal(pm_pool_alloc(0, &extra), -ENOMEM);
	scrubbed = pool_stats().scrubbed;
	for (i = 0; i < nr; i++)
		pm_pool_free(pfn[i], 0);
	assert_int_equal(pool_stats().scrubbed - scrubbed, 16 * MIB);
	assert_int_equal(pool_stats().released, 0);
	/* The pool holds nothing else: these are the dirtied frames again. */
	for (i = 0; i < nr; i++) {
		pfn[i] = alloc_ok(0);
		assert_true(is_zero(pm_pfn_to_hva(pfn[i]), PM_PAGE_SIZE));
	}
	for (i = 0; i < nr; i++)
		pm_pool_free(pfn[i], 0);
	free(pfn);
}

/* ---- host access guards ---- */

struct guard_log {
	pm_pfn_t refused;           /* refuse accesses that include this frame */
	unsigned int calls, refusals;
};

static int guard_access(void *arg, pm_pfn_t pfn, uint64_t n, bool write)
{
	struct guard_log *log = arg;

	log->calls++;
	if (write && log->refused >= pfn && log->refused < pfn + n) {
		log->refusals++;
		return -EFAULT;
	}
	return 0;
}

static void free_refused_frame(void *arg)
{
	pm_pool_free(*(pm_pfn_t *)arg, 0);
}

static void test_host_guards_see_every_scrub_and_a_refused_scrub_is_fatal(void **state)
{
	struct guard_log log = { .refused = PM_PFN_INVALID };
	struct pm_host_guard g = { .access = guard_access, .arg = &log };
	struct pm_host_guard others[4];
	pm_pfn_t a, b;

	fresh_pool(16 * MIB, KEEP_ALL);
	assert_int_equal(pm_host_access(0, 1, true), 0);     /* no guard: allowed */
	assert_int_equal(pm_host_guard_register(&g), 0);
	a = alloc_ok(0);
	b = alloc_ok(0);
	pm_pool_free(a, 0);
	assert_true(log.calls >= 1);
	assert_int_equal(log.refusals, 0);
	log.refused = b;
	assert_int_equal(pm_host_access(b, 1, true), -EFAULT);
	assert_int_equal(pm_host_access(b, 1, false), 0);
	/* The library scrubbing a frame the hardware protects: the host would
	 * have crashed, so privmem aborts (and the frame is not written). */
	assert_true(pm_test_aborts(free_refused_frame, &b));
	/* At most 4 guards; an unregistered guard is never called again. */
	for (int i = 0; i < 3; i++) {
		others[i] = g;
		assert_int_equal(pm_host_guard_register(&others[i]), 0);
	}
	others[3] = g;
	assert_int_equal(pm_host_guard_register(&others[3]), -EBUSY);
	for (int i = 0; i < 3; i++)
		pm_host_guard_unregister(&others[i]);
	pm_host_guard_unregister(&g);
	log.calls = 0;
	assert_int_equal(pm_host_access(b, 1, true), 0);
	assert_int_equal(log.calls, 0);
	pm_pool_free(b, 0);
}

/* ---- exhaustion ---- */

static void test_exhaustion_is_enomem_and_pool_is_whole_after(void **state)
{
	pm_pfn_t pfn[32], extra = 7;
	unsigned int o;
	uint64_t failures;
	size_t i;

	fresh_pool(64 * MIB, KEEP_ALL);
	failures = pool_stats().alloc_failures;
	for (i = 0; i < PM_ARRAY_SIZE(pfn); i++)
		pfn[i] = alloc_ok(9);
	assert_int_equal(pm_pool_alloc(9, &extra), -ENOMEM);
	assert_int_equal(pm_pool_alloc(0, &extra), -ENOMEM);
	assert_int_equal(pm_pool_alloc(18, &extra), -ENOMEM);
	assert_int_equal(extra, 7);
	assert_int_equal(pool_stats().alloc_failures - failures, 3);
	assert_int_equal(pool_stats().in_use, 64 * MIB);
	for (o = 0; o <= PM_POOL_MAX_ORDER; o++)
		assert_int_equal(pool_stats().free_blocks[o], 0);

	for (i = 0; i < PM_ARRAY_SIZE(pfn); i++)
		pm_pool_free(pfn[i], 9);
	assert_int_equal(pool_stats().in_use, 0);
	for (o = 0; o <= PM_POOL_MAX_ORDER; o++)
		assert_int_equal(pool_stats().free_blocks[o], o == 14 ? 1 : 0);
	/* 64 MiB is order 14: the whole pool is one block again. */
	assert_int_equal(alloc_ok(14), 0);
	pm_pool_free(0, 14);
}

/* ---- buddies ---- */

static void test_freed_buddies_merge_into_a_2m_block(void **state)
{
	pm_pfn_t big, small[512], lowest = PM_PFN_INVALID, extra;
	size_t i;

	fresh_pool(4 * MIB, KEEP_ALL);
	big = alloc_ok(9);
	for (i = 0; i < 512; i++) {
		small[i] = alloc_ok(0);
		lowest = PM_MIN(lowest, small[i]);
	}
	assert_int_equal(pm_pool_alloc(0, &extra), -ENOMEM);
	for (i = 0; i < 511; i++)
		pm_pool_free(small[i], 0);
	assert_int_equal(pm_pool_alloc(9, &extra), -ENOMEM);
	pm_pool_free(small[511], 0);
	assert_int_equal(alloc_ok(9), lowest);
	assert_int_equal(pool_stats().free_blocks[9], 0);
	pm_pool_free(lowest, 9);
	pm_pool_free(big, 9);
	assert_int_equal(pool_stats().free_blocks[10], 1);
}

static void test_freeing_a_subframe_splits_a_2m_run(void **state)
{
	pm_pfn_t r1, r2, extra;
	const uint64_t sub = 37;

	fresh_pool(4 * MIB, KEEP_ALL);
	r1 = alloc_ok(9);
	r2 = alloc_ok(9);
	fill(r1, 9, 0x5a);
	fill(r2, 9, 0x5b);
	assert_int_equal(pm_pool_alloc(0, &extra), -ENOMEM);

	pm_pool_free(r1 + sub, 0);
	assert_int_equal(pool_stats().in_use, 4 * MIB - PM_PAGE_SIZE);
	assert_int_equal(alloc_ok(0), r1 + sub);
	assert_true(is_zero(pm_pfn_to_hva(r1 + sub), PM_PAGE_SIZE));
	assert_int_equal(*(uint8_t *)pm_pfn_to_hva(r1 + sub + 1), 0x5a);
	assert_int_equal(*(uint8_t *)pm_pfn_to_hva(r2), 0x5b);

	/* Free the run in pieces of every size; it becomes one 2M block again. */
	free_range(r1, sub);
	pm_pool_free(r1 + sub, 0);
	free_range(r1 + sub + 1, 512 - sub - 1);
	assert_int_equal(pool_stats().free_blocks[9], 1);
	assert_int_equal(alloc_ok(9), r1);
	assert_true(is_zero(pm_pfn_to_hva(r1), run_bytes(9)));
	pm_pool_free(r1, 9);
	pm_pool_free(r2, 9);
}

/* ---- release to the OS ---- */

static void test_2m_run_freed_over_watermark_is_released(void **state)
{
	pm_pfn_t run[3], again[8];
	struct pm_pool_stats st0, st;
	size_t i, n = 0;
	bool saw_released_run = false;

	fresh_pool(16 * MIB, 2 * MIB);
	for (i = 0; i < 3; i++) {
		run[i] = alloc_ok(9);
		fill(run[i], 9, 0xaa);
	}
	st0 = pool_stats();
	assert_int_equal(st0.populated, 6 * MIB);

	/* Free populated memory reaches the watermark, not more: scrubbed. */
	pm_pool_free(run[0], 9);
	st = pool_stats();
	assert_int_equal(st.scrubbed - st0.scrubbed, 2 * MIB);
	assert_int_equal(st.released, st0.released);
	assert_int_equal(st.populated, 6 * MIB);

	/* Over the watermark: released instead (no memset). */
	pm_pool_free(run[1], 9);
	st = pool_stats();
	assert_int_equal(st.scrubbed - st0.scrubbed, 2 * MIB);
	assert_int_equal(st.released - st0.released, 2 * MIB);
	assert_int_equal(st.populated, 4 * MIB);
	assert_int_equal(resident_frames(run[1], 512), 0);
	assert_int_equal(resident_frames(run[0], 512), 512);

	/* Everything free, including the released run, reads zero. */
	while (n < PM_ARRAY_SIZE(again) && pm_pool_alloc(9, &again[n]) == 0) {
		assert_true(is_zero(pm_pfn_to_hva(again[n]), run_bytes(9)));
		saw_released_run |= again[n] == run[1];
		n++;
	}
	assert_int_equal(n, 7);
	assert_true(saw_released_run);
	for (i = 0; i < n; i++)
		pm_pool_free(again[i], 9);
	pm_pool_free(run[2], 9);
	assert_true(pool_stats().populated <= 2 * MIB);
}

static void test_only_the_excess_over_watermark_is_released(void **state)
{
	pm_pfn_t run, keep;
	struct pm_pool_stats st0, st;

	fresh_pool(16 * MIB, 2 * MIB);
	run = alloc_ok(10);
	keep = alloc_ok(9);
	fill(run, 10, 0x33);
	st0 = pool_stats();
	assert_int_equal(st0.populated, 6 * MIB);

	/* 4M become free, 2M over the watermark: one chunk goes, one stays. */
	pm_pool_free(run, 10);
	st = pool_stats();
	assert_int_equal(st.released - st0.released, 2 * MIB);
	assert_int_equal(st.scrubbed - st0.scrubbed, 2 * MIB);
	assert_int_equal(st.populated, 4 * MIB);
	assert_int_equal(resident_frames(run, 1024), 512);

	assert_int_equal(alloc_ok(10), run);
	assert_true(is_zero(pm_pfn_to_hva(run), run_bytes(10)));
	pm_pool_free(run, 10);
	pm_pool_free(keep, 9);
}

static void test_merged_block_over_watermark_is_released(void **state)
{
	pm_pfn_t a, b;
	struct pm_pool_stats st0, st;
	uint64_t i;

	fresh_pool(8 * MIB, 2 * MIB);
	a = alloc_ok(9);
	b = alloc_ok(9);
	fill(a, 9, 0x11);
	fill(b, 9, 0x22);
	st0 = pool_stats();
	pm_pool_free(a, 9); /* at the watermark: kept */
	assert_int_equal(pool_stats().populated, 4 * MIB);
	/* b frame by frame: only the last free merges a 2M (then 8M) block,
	 * which holds 2M more free populated memory than the watermark. */
	for (i = 0; i < 511; i++)
		pm_pool_free(b + i, 0);
	assert_int_equal(pool_stats().released, st0.released);
	pm_pool_free(b + 511, 0);
	st = pool_stats();
	assert_int_equal(st.scrubbed - st0.scrubbed, 4 * MIB);
	assert_int_equal(st.released - st0.released, 2 * MIB);
	assert_int_equal(st.populated, 2 * MIB);
	assert_int_equal(resident_frames(0, 1024), 512);
	assert_int_equal(st.free_blocks[11], 1);
	assert_int_equal(alloc_ok(11), 0);
	assert_true(is_zero(pm_pfn_to_hva(0), 8 * MIB));
	pm_pool_free(0, 11);
}

/* ---- statistics ---- */

static uint64_t expected_thp(void)
{
	char buf[128] = "";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");

	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	return strstr(buf, "[always]") || strstr(buf, "[madvise]");
}

static void test_stats_count_blocks_per_order(void **state)
{
	struct pm_pool_stats st;
	unsigned int o;
	pm_pfn_t pfn;

	/* 6 MiB = a 4M block (order 10) then a 2M block (order 9). */
	fresh_pool(6 * MIB, KEEP_ALL);
	st = pool_stats();
	assert_int_equal(st.size, 6 * MIB);
	assert_int_equal(st.in_use, 0);
	assert_int_equal(st.populated, 0);
	assert_int_equal(st.thp, expected_thp());
	for (o = 0; o <= PM_POOL_MAX_ORDER; o++)
		assert_int_equal(st.free_blocks[o], o == 9 || o == 10 ? 1 : 0);

	/* A 4K frame splits the smallest fitting block, the 2M one, and
	 * populates (prefaults) its whole 2M chunk, nothing else. */
	assert_int_equal(resident_frames(0, 1536), 0);
	pfn = alloc_ok(0);
	assert_int_equal(pfn, 1024);
	assert_int_equal(resident_frames(1024, 512), 512);
	assert_int_equal(resident_frames(0, 1024), 0);
	st = pool_stats();
	assert_int_equal(st.in_use, 4 * KIB);
	assert_int_equal(st.populated, 2 * MIB);
	for (o = 0; o <= PM_POOL_MAX_ORDER; o++)
		assert_int_equal(st.free_blocks[o], o <= 8 || o == 10 ? 1 : 0);

	pm_pool_free(pfn, 0);
	st = pool_stats();
	assert_int_equal(st.in_use, 0);
	assert_int_equal(st.populated, 2 * MIB);
	assert_int_equal(st.scrubbed, 4 * KIB);
	for (o = 0; o <= PM_POOL_MAX_ORDER; o++)
		assert_int_equal(st.free_blocks[o], o == 9 || o == 10 ? 1 : 0);
}

/* ---- addresses ---- */

static void test_hva_to_pfn_round_trips_and_rejects_outsiders(void **state)
{
	static const uint64_t offsets[] = { 0, 1, 200, 511 };
	pm_pfn_t pfn;
	char *base;
	size_t i;
	int local = 0;

	fresh_pool(4 * MIB, KEEP_ALL);
	assert_int_equal(pm_pool_nr_frames(), 1024);
	pfn = alloc_ok(9);
	for (i = 0; i < PM_ARRAY_SIZE(offsets); i++) {
		char *hva = pm_pfn_to_hva(pfn + offsets[i]);

		assert_int_equal(pm_hva_to_pfn(hva), pfn + offsets[i]);
		assert_int_equal(pm_hva_to_pfn(hva + PM_PAGE_SIZE - 1), pfn + offsets[i]);
	}
	base = pm_pfn_to_hva(0);
	assert_true(PM_ALIGNED((uintptr_t)base, GIB));
	assert_int_equal(pm_hva_to_pfn(base), 0);
	assert_int_equal(pm_hva_to_pfn(base + 4 * MIB - 1), 1023);
	assert_int_equal(pm_hva_to_pfn(base - 1), PM_PFN_INVALID);
	assert_int_equal(pm_hva_to_pfn(base + 4 * MIB), PM_PFN_INVALID);
	assert_int_equal(pm_hva_to_pfn(&local), PM_PFN_INVALID);
	assert_int_equal(pm_hva_to_pfn(NULL), PM_PFN_INVALID);
	pm_pool_free(pfn, 9);
}

/* ---- configuration ---- */

static void test_configure_refuses_busy_pool_and_bad_size(void **state)
{
	pm_pfn_t pfn;

	fresh_pool(4 * MIB, 2 * MIB);
	pfn = alloc_ok(0);
	assert_int_equal(pm_pool_configure(8 * MIB, 0), -EBUSY);
	assert_int_equal(pm_pool_configure(0, 4 * MIB), -EBUSY);
	assert_int_equal(pool_stats().size, 4 * MIB);
	assert_int_equal(pool_stats().watermark, 2 * MIB);
	pm_pool_free(pfn, 0);
	assert_int_equal(pool_stats().scrubbed, PM_PAGE_SIZE);

	assert_int_equal(pm_pool_configure(3 * MIB, 0), -EINVAL);
	assert_int_equal(pm_pool_configure(8 * MIB + PM_PAGE_SIZE, 0), -EINVAL);
	assert_int_equal(pm_pool_configure(1 * MIB, 0), -EINVAL);
	assert_int_equal(pm_pool_configure(4 * MIB, 4 * MIB + PM_PAGE_SIZE), -EINVAL);
	assert_int_equal(pm_pool_configure(0, 8 * MIB), -EINVAL);
	assert_int_equal(pool_stats().size, 4 * MIB);
	assert_int_equal(pool_stats().watermark, 2 * MIB);

	/* 0 keeps a field; re-creation starts the statistics afresh. */
	assert_int_equal(pm_pool_configure(0, 4 * MIB), 0);
	assert_int_equal(pool_stats().size, 4 * MIB);
	assert_int_equal(pool_stats().watermark, 4 * MIB);
	assert_int_equal(pool_stats().scrubbed, 0);
	assert_int_equal(pm_pool_configure(8 * MIB, 0), 0);
	assert_int_equal(pool_stats().size, 8 * MIB);
	assert_int_equal(pool_stats().watermark, 4 * MIB);
	assert_int_equal(pm_pool_nr_frames(), 2048);
	/* A kept watermark is capped at a smaller size. */
	assert_int_equal(pm_pool_configure(2 * MIB, 0), 0);
	assert_int_equal(pool_stats().watermark, 2 * MIB);
}

/* ---- misuse is caught ---- */

static void free_order0_twice(pm_pfn_t pfn)
{
	pm_pool_free(pfn, 0);
	pm_pool_free(pfn, 0);
}

static void free_2m_after_one_of_its_frames(pm_pfn_t pfn)
{
	pm_pool_free(pfn + 100, 0);
	pm_pool_free(pfn, 9);
}

static void free_2m_run_misaligned(pm_pfn_t pfn)
{
	pm_pool_free(pfn + 1, 9);
}

/* pfn + 9 is no block head, but lies in the free block at pfn + 8. */
static void free_inside_a_free_block(pm_pfn_t pfn)
{
	pm_pool_free(pfn + 8, 2);
	pm_pool_free(pfn + 9, 0);
}

/* Each misuse happens in a child, which must abort. The whole pool is in use,
 * so that each misuse is caught by the check for it, not by a later one. */
static void test_bad_frees_abort(void **state)
{
	pm_pfn_t pfn, other;

	fresh_pool(4 * MIB, KEEP_ALL);
	pfn = alloc_ok(9);
	other = alloc_ok(9);
	assert_int_equal(pfn, 0);
	expect_abort(free_order0_twice, pfn);
	expect_abort(free_2m_after_one_of_its_frames, pfn);
	expect_abort(free_2m_run_misaligned, pfn);
	expect_abort(free_inside_a_free_block, pfn);
	/* The children's bookkeeping was their own (a private copy). */
	assert_int_equal(pool_stats().in_use, 4 * MIB);
	pm_pool_free(pfn, 9);
	pm_pool_free(other, 9);
	assert_int_equal(pool_stats().free_blocks[10], 1);
}

/* ---- concurrency ---- */

#define STRESS_THREADS 4
#define STRESS_ITERS   3000 /* per thread */
#define STRESS_SLOTS   16

struct stress_slot {
	pm_pfn_t pfn; /* PM_PFN_INVALID if empty */
	unsigned int order;
	uint64_t stamp;
};

struct stress_thread {
	pthread_t thread;
	unsigned int id;
	unsigned int seed;
	uint64_t iters;
	bool only_4k;
	unsigned long errors;
	unsigned long allocs;
	struct stress_slot slot[STRESS_SLOTS];
};

/* Tells the helper threads of a cache stress test to stop. */
static atomic_bool cache_stress_done;

static uint64_t frame_stamp(const struct stress_slot *s, uint64_t i)
{
	return s->stamp ^ ((s->pfn + i) * 0x9e3779b97f4a7c15ULL);
}

/* Every frame of the run gets the stamp in its first and last word. */
static void stress_stamp(const struct stress_slot *s)
{
	uint64_t i;

	for (i = 0; i < 1ULL << s->order; i++) {
		uint64_t *w = pm_pfn_to_hva(s->pfn + i);

		w[0] = frame_stamp(s, i);
		w[PM_PAGE_SIZE / sizeof(*w) - 1] = ~frame_stamp(s, i);
	}
}

static unsigned long stress_check(const struct stress_slot *s, bool want_zero)
{
	unsigned long bad = 0;
	uint64_t i;

	for (i = 0; i < 1ULL << s->order; i++) {
		const uint64_t *w = pm_pfn_to_hva(s->pfn + i);
		uint64_t first = want_zero ? 0 : frame_stamp(s, i);
		uint64_t last = want_zero ? 0 : ~frame_stamp(s, i);

		bad += w[0] != first || w[PM_PAGE_SIZE / sizeof(*w) - 1] != last;
	}
	return bad;
}

/* Frees the run whole, or as its two halves (a split). */
static void stress_free(struct stress_thread *t, struct stress_slot *s)
{
	t->errors += stress_check(s, false);
	if (s->order && rand_r(&t->seed) % 2) {
		pm_pool_free(s->pfn, s->order - 1);
		pm_pool_free(s->pfn + (1ULL << (s->order - 1)), s->order - 1);
	} else {
		pm_pool_free(s->pfn, s->order);
	}
	s->pfn = PM_PFN_INVALID;
}

static void stress_alloc(struct stress_thread *t, struct stress_slot *s, uint64_t iter)
{
	static const unsigned int orders[] = { 0, 0, 0, 1, 2, 3, 5, 9, 9, 10 };
	unsigned int order = orders[rand_r(&t->seed) % PM_ARRAY_SIZE(orders)];

	if (t->only_4k)
		order = 0;
	if (pm_pool_alloc(order, &s->pfn)) {
		s->pfn = PM_PFN_INVALID;
		return;
	}
	s->order = order;
	s->stamp = ((uint64_t)t->id << 56) | iter;
	t->errors += stress_check(s, true);
	stress_stamp(s);
	t->allocs++;
}

static void *stress_thread_fn(void *arg)
{
	struct stress_thread *t = arg;
	uint64_t iter;
	size_t i;

	for (i = 0; i < STRESS_SLOTS; i++)
		t->slot[i].pfn = PM_PFN_INVALID;
	for (iter = 0; iter < t->iters; iter++) {
		struct stress_slot *s = &t->slot[rand_r(&t->seed) % STRESS_SLOTS];

		if (s->pfn != PM_PFN_INVALID)
			stress_free(t, s);
		else
			stress_alloc(t, s, iter);
	}
	for (i = 0; i < STRESS_SLOTS; i++)
		if (t->slot[i].pfn != PM_PFN_INVALID)
			stress_free(t, &t->slot[i]);
	return NULL;
}

/* Population and release are slow on some hosts: a low watermark (which
 * makes nearly every big free a release) is given fewer iterations. */
static void run_stress(uint64_t watermark, uint64_t iters)
{
	static struct stress_thread threads[STRESS_THREADS];
	struct pm_pool_stats st;
	unsigned int i, o;

	fresh_pool(64 * MIB, watermark);
	for (i = 0; i < STRESS_THREADS; i++) {
		threads[i] = (struct stress_thread){ .id = i + 1, .seed = 12345 + i, .iters = iters };
		assert_int_equal(pthread_create(&threads[i].thread, NULL, stress_thread_fn,
						&threads[i]), 0);
	}
	for (i = 0; i < STRESS_THREADS; i++) {
		assert_int_equal(pthread_join(threads[i].thread, NULL), 0);
		assert_int_equal(threads[i].errors, 0);
		assert_true(threads[i].allocs > 0);
	}
	st = pool_stats();
	assert_int_equal(st.in_use, 0);
	if (watermark < st.size)
		assert_true(st.populated <= watermark);
	for (o = 0; o <= PM_POOL_MAX_ORDER; o++)
		assert_int_equal(st.free_blocks[o], o == 14 ? 1 : 0);
	assert_true(is_zero(pm_pfn_to_hva(0), 64 * MIB));
}

static void test_concurrent_alloc_free_never_overlaps(void **state)
{
	run_stress(KEEP_ALL, STRESS_ITERS);
}

static void test_concurrent_alloc_free_with_release_never_overlaps(void **state)
{
	run_stress(2 * MIB, STRESS_ITERS / 3);
	assert_true(pool_stats().released > 0);
}

/* ---- per-thread caches of 4K frames ---- */

static uint64_t free_bytes(const struct pm_pool_stats *st)
{
	uint64_t bytes = 0;
	unsigned int o;

	for (o = 0; o <= PM_POOL_MAX_ORDER; o++)
		bytes += st->free_blocks[o] * run_bytes(o);
	return bytes;
}

#define PARKED_MAX 64

/* A thread that allocates nr_alloc 4K frames, frees the first nr_free, then
 * parks (its cache holding frames) until released, frees the rest and exits. */
struct parked {
	pthread_t thread;
	pthread_barrier_t step;
	unsigned int nr_alloc, nr_free;
	pm_pfn_t pfn[PARKED_MAX];
	unsigned long errors;
};

static void *parked_fn(void *arg)
{
	struct parked *p = arg;
	unsigned int i;

	for (i = 0; i < p->nr_alloc; i++)
		p->errors += pm_pool_alloc(0, &p->pfn[i]) != 0;
	for (i = 0; i < p->nr_free; i++)
		pm_pool_free(p->pfn[i], 0);
	pthread_barrier_wait(&p->step); /* parked */
	pthread_barrier_wait(&p->step); /* released */
	for (; i < p->nr_alloc; i++)
		pm_pool_free(p->pfn[i], 0);
	return NULL;
}

/* Returns once the thread is parked. */
static void parked_start(struct parked *p, unsigned int nr_alloc, unsigned int nr_free)
{
	assert_true(nr_free <= nr_alloc && nr_alloc <= PARKED_MAX);
	p->nr_alloc = nr_alloc;
	p->nr_free = nr_free;
	p->errors = 0;
	assert_int_equal(pthread_barrier_init(&p->step, NULL, 2), 0);
	assert_int_equal(pthread_create(&p->thread, NULL, parked_fn, p), 0);
	pthread_barrier_wait(&p->step);
	assert_int_equal(p->errors, 0);
}

/* Lets the thread free what it still holds, exit, and be joined. */
static void parked_finish(struct parked *p)
{
	pthread_barrier_wait(&p->step);
	assert_int_equal(pthread_join(p->thread, NULL), 0);
	pthread_barrier_destroy(&p->step);
}

static void test_stats_stay_exact_while_frames_sit_in_caches(void **state)
{
	struct parked p;
	struct pm_pool_stats st;
	pm_pfn_t mine;

	fresh_pool(4 * MIB, KEEP_ALL);
	parked_start(&p, 40, 25);
	assert_true(pm_pool_cached_frames() >= 25);
	mine = alloc_ok(0);
	st = pool_stats();
	assert_int_equal(st.in_use, 16 * PM_PAGE_SIZE);
	assert_int_equal(st.in_use + free_bytes(&st), 4 * MIB);
	assert_int_equal(pm_pool_cached_frames(), 0); /* the read drained them */

	pm_pool_free(mine, 0);
	assert_true(pm_pool_cached_frames() > 0);
	st = pool_stats();
	assert_int_equal(st.in_use, 15 * PM_PAGE_SIZE);
	assert_int_equal(st.in_use + free_bytes(&st), 4 * MIB);
	/* Freed frames count as scrubbed, cached or not. */
	assert_int_equal(st.scrubbed, 26 * PM_PAGE_SIZE);

	parked_finish(&p);
	st = pool_stats();
	assert_int_equal(st.in_use, 0);
	assert_int_equal(st.scrubbed, 41 * PM_PAGE_SIZE); /* 40 of the thread, 1 here */
	assert_int_equal(st.free_blocks[10], 1);
	assert_int_equal(free_bytes(&st), 4 * MIB);
}

/* A frees frames into its cache and keeps them there; B then gets every
 * frame of the pool, A's included, before its first ENOMEM. */
static void test_enomem_only_after_reclaiming_other_threads_caches(void **state)
{
	const uint64_t nr = 4 * MIB / PM_PAGE_SIZE;
	uint8_t *seen = calloc(nr, 1);
	pm_pfn_t *pfn = calloc(nr, sizeof(*pfn));
	struct parked a;
	uint64_t failures, n = 0, i;
	pm_pfn_t extra;

	assert_non_null(seen);
	assert_non_null(pfn);
	fresh_pool(4 * MIB, KEEP_ALL);
	failures = pool_stats().alloc_failures;
	parked_start(&a, 48, 48);
	assert_true(pm_pool_cached_frames() >= 48);

	while (n < nr && pm_pool_alloc(0, &pfn[n]) == 0) {
		assert_true(pfn[n] < nr);
		assert_false(seen[pfn[n]]);
		seen[pfn[n]] = 1;
		n++;
	}
	assert_int_equal(n, nr);
	assert_int_equal(pm_pool_alloc(0, &extra), -ENOMEM);
	assert_int_equal(pm_pool_cached_frames(), 0);
	assert_int_equal(pool_stats().alloc_failures - failures, 1);
	assert_int_equal(pool_stats().in_use, 4 * MIB);

	for (i = 0; i < n; i++)
		pm_pool_free(pfn[i], 0);
	parked_finish(&a);
	assert_int_equal(pool_stats().in_use, 0);
	assert_int_equal(pool_stats().free_blocks[10], 1);
	free(pfn);
	free(seen);
}

/* A 2M allocation whose only candidate block is incomplete because some
 * of its frames sit in another thread's cache reclaims them. */
static void test_huge_alloc_reclaims_cached_frames_of_its_block(void **state)
{
	struct parked a;
	pm_pfn_t r1, r2, extra;

	fresh_pool(4 * MIB, KEEP_ALL);
	parked_start(&a, 1, 1);
	assert_true(pm_pool_cached_frames() > 0);
	r1 = alloc_ok(9);
	r2 = alloc_ok(9);
	assert_int_equal(PM_MIN(r1, r2), 0);
	assert_int_equal(pm_pool_alloc(0, &extra), -ENOMEM);
	pm_pool_free(r1, 9);
	pm_pool_free(r2, 9);
	parked_finish(&a);
	assert_int_equal(pool_stats().free_blocks[10], 1);
}

static void free_order0_once(pm_pfn_t pfn)
{
	pm_pool_free(pfn, 0);
}

/* The first free leaves the frame in the cache; the read of the statistics
 * drains it into a free block, which the second free must find. */
static void free_order0_twice_across_a_drain(pm_pfn_t pfn)
{
	struct pm_pool_stats st;

	pm_pool_free(pfn, 0);
	pm_pool_get_stats(&st);
	if (pm_pool_cached_frames() != 0)
		_exit(3); /* not drained: not the case under test (and no abort) */
	pm_pool_free(pfn, 0);
}

static void *free_order0_fn(void *arg)
{
	pm_pool_free((pm_pfn_t)(uintptr_t)arg, 0);
	return NULL;
}

/* Freed into this thread's cache, then again by another thread. */
static void free_order0_twice_across_threads(pm_pfn_t pfn)
{
	pthread_t t;

	pm_pool_free(pfn, 0);
	if (pthread_create(&t, NULL, free_order0_fn, (void *)(uintptr_t)pfn) == 0)
		pthread_join(t, NULL);
}

static void test_double_free_of_a_cached_frame_aborts(void **state)
{
	pm_pfn_t pfn;

	fresh_pool(4 * MIB, KEEP_ALL);
	pfn = alloc_ok(0);
	expect_no_abort(free_order0_once, pfn); /* the children can tell */
	expect_abort(free_order0_twice, pfn);
	expect_abort(free_order0_twice_across_a_drain, pfn);
	expect_abort(free_order0_twice_across_threads, pfn);
	assert_int_equal(pool_stats().in_use, PM_PAGE_SIZE);
	pm_pool_free(pfn, 0);
	assert_int_equal(pool_stats().in_use, 0);
}

static void test_exiting_thread_returns_its_cached_frames(void **state)
{
	const uint64_t nr = 4 * MIB / PM_PAGE_SIZE;
	pm_pfn_t *pfn = calloc(nr, sizeof(*pfn));
	struct pm_pool_stats st;
	struct parked a;
	uint64_t i;

	assert_non_null(pfn);
	fresh_pool(4 * MIB, KEEP_ALL);
	parked_start(&a, 48, 48);
	assert_true(pm_pool_cached_frames() >= 48);
	parked_finish(&a);
	/* Counted without a drain: nothing is left in any cache, so the read of
	 * the statistics (which drains) finds the frames on the lists. */
	assert_int_equal(pm_pool_cached_frames(), 0);
	st = pool_stats();
	assert_int_equal(st.in_use, 0);
	assert_int_equal(st.free_blocks[10], 1);
	assert_int_equal(free_bytes(&st), 4 * MIB);
	for (i = 0; i < nr; i++)
		pfn[i] = alloc_ok(0);
	for (i = 0; i < nr; i++)
		pm_pool_free(pfn[i], 0);
	assert_int_equal(pool_stats().in_use, 0);
	free(pfn);
}

static void test_cached_frame_reads_zero_when_handed_out_again(void **state)
{
	pm_pfn_t dirty, got[64];
	uint64_t scrubbed;
	size_t n = 0, i;
	bool again = false;

	fresh_pool(4 * MIB, KEEP_ALL);
	scrubbed = pool_stats().scrubbed;
	dirty = alloc_ok(0);
	fill(dirty, 0, 0xc3);
	pm_pool_free(dirty, 0);
	assert_true(pm_pool_cached_frames() > 0);
	while (!again && n < PM_ARRAY_SIZE(got)) {
		got[n] = alloc_ok(0);
		again = got[n++] == dirty;
	}
	assert_true(again);
	assert_true(is_zero(pm_pfn_to_hva(dirty), PM_PAGE_SIZE));
	assert_int_equal(pool_stats().scrubbed - scrubbed, PM_PAGE_SIZE);
	for (i = 0; i < n; i++)
		pm_pool_free(got[i], 0);
}

#define CACHE_STRESS_THREADS 4

/* The whole pool is free or in use (4K frames do not go through transit). */
static void *stats_reader_fn(void *arg)
{
	struct stress_thread *t = arg;
	struct pm_pool_stats st;

	/* At least once, however late this thread is scheduled. */
	do {
		pm_pool_get_stats(&st);
		t->errors += st.size != 64 * MIB || st.in_use + free_bytes(&st) != st.size;
		t->iters++;
	} while (!atomic_load(&cache_stress_done));
	return NULL;
}

/* Configuring drains every cache: EBUSY while any frame is held, else the
 * pool is re-created under the workers, which hold nothing then. */
static void *reconfigurer_fn(void *arg)
{
	struct stress_thread *t = arg;
	int ret;

	do {
		ret = pm_pool_configure(0, 0);
		t->errors += ret != 0 && ret != -EBUSY;
		t->iters++;
		usleep(100);
	} while (!atomic_load(&cache_stress_done));
	return NULL;
}

static void test_concurrent_cached_alloc_free_with_stats_and_reconfigure(void **state)
{
	static struct stress_thread threads[CACHE_STRESS_THREADS], reader, reconf;
	struct pm_pool_stats st;
	unsigned int i, o;

	fresh_pool(64 * MIB, KEEP_ALL);
	atomic_store(&cache_stress_done, false);
	reader = (struct stress_thread){ .id = 0 };
	reconf = (struct stress_thread){ .id = 0 };
	assert_int_equal(pthread_create(&reader.thread, NULL, stats_reader_fn, &reader), 0);
	assert_int_equal(pthread_create(&reconf.thread, NULL, reconfigurer_fn, &reconf), 0);
	for (i = 0; i < CACHE_STRESS_THREADS; i++) {
		threads[i] = (struct stress_thread){ .id = i + 1, .seed = 777 + i,
						     .iters = STRESS_ITERS, .only_4k = true };
		assert_int_equal(pthread_create(&threads[i].thread, NULL, stress_thread_fn,
						&threads[i]), 0);
	}
	for (i = 0; i < CACHE_STRESS_THREADS; i++) {
		assert_int_equal(pthread_join(threads[i].thread, NULL), 0);
		assert_int_equal(threads[i].errors, 0);
		assert_true(threads[i].allocs > 0);
	}
	atomic_store(&cache_stress_done, true);
	assert_int_equal(pthread_join(reader.thread, NULL), 0);
	assert_int_equal(pthread_join(reconf.thread, NULL), 0);
	assert_int_equal(reader.errors, 0);
	assert_int_equal(reconf.errors, 0);
	assert_true(reader.iters > 0 && reconf.iters > 0);

	assert_int_equal(pm_pool_cached_frames(), 0);
	st = pool_stats();
	assert_int_equal(st.in_use, 0);
	for (o = 0; o <= PM_POOL_MAX_ORDER; o++)
		assert_int_equal(st.free_blocks[o], o == 14 ? 1 : 0);
	assert_true(is_zero(pm_pfn_to_hva(0), 64 * MIB));
}

/* Simulated NUMA nodes: each node's frames are a range of their own, no
 * block spans two nodes, and an allocation's policy picks the node. */
static void test_nodes_split_the_pool_and_policies_pick_them(void **state)
{
	const uint64_t node_frames = 4 * MIB / PM_PAGE_SIZE;
	struct pm_node_policy bind1 = { .allowed = 1U << 1 }, pref1 = { .preferred = 1U << 1 };
	pm_pfn_t a, b, c;
	struct pm_pool_stats st;

	assert_int_equal(pm_pool_configure_nodes(8 * MIB, 0, 2), 0);
	assert_int_equal(pm_pool_nr_nodes(), 2);
	st = pool_stats();
	assert_int_equal(st.nr_nodes, 2);
	assert_int_equal(st.node_size[0], 4 * MIB);
	assert_int_equal(st.node_size[1], 4 * MIB);
	/* Two 4M blocks, not one 8M block: the nodes never merge. */
	assert_int_equal(st.free_blocks[10], 2);
	assert_int_equal(st.free_blocks[11], 0);
	assert_int_equal(pm_pool_alloc_policy(PM_ORDER_2M, &bind1, &a), 0);
	assert_int_equal(pm_pool_alloc_policy(PM_ORDER_2M, &bind1, &b), 0);
	assert_true(a >= node_frames && b >= node_frames && a != b);
	assert_int_equal(pm_pool_node_of(a), 1);
	assert_int_equal(pm_pool_alloc_policy(0, &bind1, &c), -ENOMEM);   /* node 1 is full */
	assert_int_equal(pm_pool_alloc_policy(0, &pref1, &c), 0);         /* preferred: falls back */
	assert_true(c < node_frames);
	assert_int_equal(pm_pool_node_of(c), 0);
	st = pool_stats();
	assert_int_equal(st.node_in_use[0], PM_PAGE_SIZE);
	assert_int_equal(st.node_in_use[1], 4 * MIB);
	pm_pool_free(a, PM_ORDER_2M);
	pm_pool_free(b, PM_ORDER_2M);
	pm_pool_free(c, 0);
	st = pool_stats();
	assert_int_equal(st.node_in_use[0] + st.node_in_use[1], 0);
	assert_int_equal(st.free_blocks[10], 2);
	/* Nodes that do not fit (2 MiB each at least) or too many: EINVAL. */
	assert_int_equal(pm_pool_configure_nodes(4 * MIB, 0, 3), -EINVAL);
	assert_int_equal(pm_pool_configure_nodes(64 * MIB, 0, PM_POOL_MAX_NODES + 1), -EINVAL);
	assert_int_equal(pm_pool_configure_nodes(8 * MIB, 0, 1), 0);
	assert_int_equal(pool_stats().free_blocks[11], 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* First: reads the environment before the pool is created. */
		cmocka_unit_test(test_env_sets_initial_size_and_watermark),
		cmocka_unit_test(test_alloc_each_order_is_naturally_aligned_and_disjoint),
		cmocka_unit_test(test_dirty_frames_read_zero_when_handed_out_again),
		cmocka_unit_test(test_exhaustion_is_enomem_and_pool_is_whole_after),
		cmocka_unit_test(test_freed_buddies_merge_into_a_2m_block),
		cmocka_unit_test(test_freeing_a_subframe_splits_a_2m_run),
		cmocka_unit_test(test_2m_run_freed_over_watermark_is_released),
		cmocka_unit_test(test_only_the_excess_over_watermark_is_released),
		cmocka_unit_test(test_merged_block_over_watermark_is_released),
		cmocka_unit_test(test_stats_count_blocks_per_order),
		cmocka_unit_test(test_hva_to_pfn_round_trips_and_rejects_outsiders),
		cmocka_unit_test(test_configure_refuses_busy_pool_and_bad_size),
		cmocka_unit_test(test_bad_frees_abort),
		cmocka_unit_test(test_concurrent_alloc_free_never_overlaps),
		cmocka_unit_test(test_concurrent_alloc_free_with_release_never_overlaps),
		cmocka_unit_test(test_stats_stay_exact_while_frames_sit_in_caches),
		cmocka_unit_test(test_enomem_only_after_reclaiming_other_threads_caches),
		cmocka_unit_test(test_huge_alloc_reclaims_cached_frames_of_its_block),
		cmocka_unit_test(test_double_free_of_a_cached_frame_aborts),
		cmocka_unit_test(test_exiting_thread_returns_its_cached_frames),
		cmocka_unit_test(test_cached_frame_reads_zero_when_handed_out_again),
		cmocka_unit_test(test_concurrent_cached_alloc_free_with_stats_and_reconfigure),
		cmocka_unit_test(test_host_guards_see_every_scrub_and_a_refused_scrub_is_fatal),
	};

	const struct CMUnitTest nodes[] = {
		cmocka_unit_test(test_nodes_split_the_pool_and_policies_pick_them),
	};

	return cmocka_run_group_tests(tests, NULL, NULL) | cmocka_run_group_tests_name("nodes", nodes, NULL, NULL);
}

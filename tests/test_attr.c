/* SPDX-License-Identifier: MIT */
/*
 * Tests of the memory-attribute store (src/memslot/attr.c): values and
 * boundaries, canonical collapse and memory use, huge-block "mixed" queries,
 * all-or-nothing on ENOMEM, a differential test against a byte array, and
 * lockless readers racing with a writer.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <string.h>

#include <privmem/kvm.h>
#include "memslot/attr.h"

#define GFN_LIMIT   (1ULL << 52)
#define GFNS_2M     (1ULL << 9)
#define GFNS_1G     (1ULL << 18)
#define GFNS_1T     (1ULL << 28)
/* The store keeps any value; the conversion tests use the one KVM sets. */
#define PRIVATE     KVM_MEMORY_ATTRIBUTE_PRIVATE
#define NODE_BYTES  PM_ATTR_NODE_BYTES  /* one 512-entry node */
#define LEVELS_BELOW_ROOT (PM_ATTR_LEVELS - 1)

/* ---- helpers ------------------------------------------------------------ */

static int setup_store(void **state)
{
	struct pm_attr_store *s = calloc(1, sizeof(*s));

	if (!s || pm_attr_init(s) != 0)
		return -1;
	*state = s;
	return 0;
}

static int teardown_store(void **state)
{
	struct pm_attr_store *s = *state;

	pm_attr_test_fail_alloc(-1);
	/* Retired nodes may still wait for their grace period: no barrier
	 * here, as urcu_bp_barrier's internal handoff is invisible to TSan. */
	pm_attr_destroy(s);
	free(s);
	return 0;
}

/* Deterministic PRNG (xorshift64*), so failures reproduce. */
static uint64_t rng_next(uint64_t *st)
{
	*st ^= *st >> 12;
	*st ^= *st << 25;
	*st ^= *st >> 27;
	return *st * 2685821657736338717ULL;
}

static uint64_t rng_below(uint64_t *st, uint64_t n)
{
	return rng_next(st) % n;
}

static void set_ok(struct pm_attr_store *s, gfn_t start, gfn_t end, uint64_t attrs)
{
	assert_int_equal(pm_attr_set(s, start, end, attrs), 0);
}

/* [start, end) has attrs and its two neighbours have `outside`. */
static void assert_range_exact(struct pm_attr_store *s, gfn_t start, gfn_t end,
			       uint64_t attrs, uint64_t outside)
{
	if (start > 0)
		assert_int_equal(pm_attr_get(s, start - 1), outside);
	assert_int_equal(pm_attr_get(s, start), attrs);
	assert_int_equal(pm_attr_get(s, end - 1), attrs);
	if (end < GFN_LIMIT)
		assert_int_equal(pm_attr_get(s, end), outside);
	assert_true(pm_attr_range_is(s, start, end, attrs));
	if (start > 0)
		assert_false(pm_attr_range_is(s, start - 1, end, attrs));
	if (end < GFN_LIMIT)
		assert_false(pm_attr_range_is(s, start, end + 1, attrs));
}

/* ---- basic values ------------------------------------------------------- */

/* Memory of the canonical tree: stale uniform leaves collapsed first. */
static size_t compacted_memory(struct pm_attr_store *s)
{
	pm_attr_compact(s);
	return pm_attr_memory(s);
}

static void test_initial_state_is_all_shared_in_one_node(void **state)
{
	struct pm_attr_store *s = *state;

	assert_int_equal(pm_attr_get(s, 0), 0);
	assert_int_equal(pm_attr_get(s, 12345), 0);
	assert_int_equal(pm_attr_get(s, GFN_LIMIT - 1), 0);
	assert_true(pm_attr_range_is(s, 0, GFN_LIMIT, 0));
	assert_false(pm_attr_range_is(s, 0, GFN_LIMIT, 1));
	assert_false(pm_attr_mixed(s, 0, PM_ATTR_LEVEL_2M));
	assert_false(pm_attr_mixed(s, GFN_LIMIT - 1, PM_ATTR_LEVEL_1G));
	assert_int_equal(pm_attr_memory(s), NODE_BYTES);
}

static void test_set_unaligned_range_exact_boundaries(void **state)
{
	struct pm_attr_store *s = *state;

	set_ok(s, 1000, 5001, 8);
	assert_range_exact(s, 1000, 5001, 8, 0);
	/* One more gfn right after, with another value. */
	set_ok(s, 5001, 5002, 9);
	assert_int_equal(pm_attr_get(s, 5000), 8);
	assert_int_equal(pm_attr_get(s, 5001), 9);
	assert_int_equal(pm_attr_get(s, 5002), 0);
	/* A single gfn in the middle. */
	set_ok(s, 3000, 3001, 1);
	assert_int_equal(pm_attr_get(s, 2999), 8);
	assert_int_equal(pm_attr_get(s, 3000), 1);
	assert_int_equal(pm_attr_get(s, 3001), 8);
}

static void test_set_2m_aligned_range_exact_boundaries(void **state)
{
	struct pm_attr_store *s = *state;
	gfn_t start = 7 * GFNS_2M, end = 12 * GFNS_2M;

	set_ok(s, start, end, 8);
	assert_range_exact(s, start, end, 8, 0);
	assert_false(pm_attr_mixed(s, start - 1, PM_ATTR_LEVEL_2M));
	assert_false(pm_attr_mixed(s, start, PM_ATTR_LEVEL_2M));
	assert_false(pm_attr_mixed(s, end - 1, PM_ATTR_LEVEL_2M));
	assert_false(pm_attr_mixed(s, end, PM_ATTR_LEVEL_2M));
	assert_true(pm_attr_mixed(s, start, PM_ATTR_LEVEL_1G));
}

static void test_set_1g_aligned_range_exact_boundaries(void **state)
{
	struct pm_attr_store *s = *state;
	gfn_t start = 3 * GFNS_1G, end = 6 * GFNS_1G;

	set_ok(s, start, end, (1ULL << 62) - 1);  /* the largest value */
	assert_range_exact(s, start, end, (1ULL << 62) - 1, 0);
	assert_false(pm_attr_mixed(s, start - 1, PM_ATTR_LEVEL_1G));
	assert_false(pm_attr_mixed(s, start, PM_ATTR_LEVEL_1G));
	assert_false(pm_attr_mixed(s, end - 1, PM_ATTR_LEVEL_1G));
	assert_false(pm_attr_mixed(s, end, PM_ATTR_LEVEL_1G));
}

static void test_set_at_both_ends_of_gfn_space(void **state)
{
	struct pm_attr_store *s = *state;

	set_ok(s, 0, 3, 5);
	set_ok(s, GFN_LIMIT - 3, GFN_LIMIT, 6);
	assert_range_exact(s, 0, 3, 5, 0);
	assert_range_exact(s, GFN_LIMIT - 3, GFN_LIMIT, 6, 0);
	assert_true(pm_attr_mixed(s, GFN_LIMIT - 1, PM_ATTR_LEVEL_2M));
	assert_true(pm_attr_range_is(s, 3, GFN_LIMIT - 3, 0));
}

static void test_overlapping_sets_keep_latest_value(void **state)
{
	struct pm_attr_store *s = *state;

	set_ok(s, 100, 1000, 1);
	set_ok(s, 500, 2000, 2);        /* overlaps the tail of the first */
	set_ok(s, 50, 150, 3);          /* overlaps the head of the first */
	set_ok(s, 700, 800, 4);         /* inside the second */
	assert_int_equal(pm_attr_get(s, 49), 0);
	assert_true(pm_attr_range_is(s, 50, 150, 3));
	assert_true(pm_attr_range_is(s, 150, 500, 1));
	assert_true(pm_attr_range_is(s, 500, 700, 2));
	assert_true(pm_attr_range_is(s, 700, 800, 4));
	assert_true(pm_attr_range_is(s, 800, 2000, 2));
	assert_int_equal(pm_attr_get(s, 2000), 0);
	/* A set covering them all replaces everything. */
	set_ok(s, 10, 3000, 7);
	assert_range_exact(s, 10, 3000, 7, 0);
}

/* ---- canonical form and memory ------------------------------------------ */

static void test_setting_back_to_shared_returns_memory(void **state)
{
	struct pm_attr_store *s = *state;
	size_t initial = pm_attr_memory(s);

	set_ok(s, 1000, 5001, 8);
	set_ok(s, 3 * GFNS_1G + 7, 9 * GFNS_1G - 3, 2);
	assert_true(pm_attr_memory(s) > initial);
	set_ok(s, 1000, 5001, 0);
	assert_true(pm_attr_memory(s) > initial);
	set_ok(s, 3 * GFNS_1G + 7, 9 * GFNS_1G - 3, 0);
	assert_int_equal(compacted_memory(s), initial);
	assert_false(pm_attr_mixed(s, 1000, PM_ATTR_LEVEL_2M));
	assert_false(pm_attr_mixed(s, 3 * GFNS_1G, PM_ATTR_LEVEL_1G));
}

/* Sets [0, limit) to attrs as adjacent pieces, in a shuffled order, so that
 * the collapse happens along boundary paths rather than at the root. */
static void cover_in_pieces(struct pm_attr_store *s, uint64_t *rng, uint64_t attrs)
{
	enum { PIECES = 40 };
	gfn_t cut[PIECES + 1];
	int order[PIECES];

	cut[0] = 0;
	cut[PIECES] = GFN_LIMIT;
	for (int i = 1; i < PIECES; i++)   /* increasing cuts at random scales */
		cut[i] = cut[i - 1] + 1 + rng_below(rng, 1ULL << (4 + rng_below(rng, 40)));
	PM_BUG_ON(cut[PIECES - 1] >= GFN_LIMIT);
	for (int i = 0; i < PIECES; i++)
		order[i] = i;
	for (int i = PIECES - 1; i > 0; i--) {
		int j = rng_below(rng, i + 1), t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	for (int i = 0; i < PIECES; i++)
		set_ok(s, cut[order[i]], cut[order[i] + 1], attrs);
}

static void random_sets_anywhere(struct pm_attr_store *s, uint64_t *rng, int n)
{
	for (int i = 0; i < n; i++) {
		gfn_t start = rng_below(rng, GFN_LIMIT - 1);
		gfn_t len = 1 + rng_below(rng, 1ULL << rng_below(rng, 34));
		gfn_t end = PM_MIN(start + len, GFN_LIMIT);

		set_ok(s, start, end, rng_below(rng, 4));
	}
}

static void test_random_sets_then_full_cover_collapse_to_one_node(void **state)
{
	struct pm_attr_store *s = *state;
	size_t initial = pm_attr_memory(s);
	uint64_t rng = 0x9e3779b97f4a7c15ULL;

	random_sets_anywhere(s, &rng, 500);
	assert_true(pm_attr_memory(s) > 10 * initial);
	set_ok(s, 0, GFN_LIMIT, 5);     /* one set over everything */
	assert_int_equal(compacted_memory(s), initial);
	assert_true(pm_attr_range_is(s, 0, GFN_LIMIT, 5));

	random_sets_anywhere(s, &rng, 500);
	cover_in_pieces(s, &rng, 3);    /* adjacent sets covering everything */
	assert_int_equal(compacted_memory(s), initial);
	assert_true(pm_attr_range_is(s, 0, GFN_LIMIT, 3));
	assert_false(pm_attr_mixed(s, 0, PM_ATTR_LEVEL_1G));

	random_sets_anywhere(s, &rng, 500);
	cover_in_pieces(s, &rng, 0);
	assert_int_equal(compacted_memory(s), initial);
	assert_true(pm_attr_range_is(s, 0, GFN_LIMIT, 0));
}

static void test_one_tib_set_uses_few_nodes(void **state)
{
	struct pm_attr_store *s = *state;
	gfn_t start = 5 * GFNS_1T + 3 * GFNS_1G + 17 * GFNS_2M + 9;
	gfn_t end = start + GFNS_1T;
	/* The root plus at most one node per lower level on each boundary
	 * path: 11 nodes, 44 KiB, for 2^28 pages. */
	size_t bound = (1 + 2 * LEVELS_BELOW_ROOT) * NODE_BYTES;

	set_ok(s, start, end, 1);
	assert_true(pm_attr_memory(s) <= bound);
	assert_true(pm_attr_memory(s) < 64 * 1024);
	assert_true(pm_attr_range_is(s, start, end, 1));
	assert_range_exact(s, start, end, 1, 0);
	assert_true(pm_attr_mixed(s, start, PM_ATTR_LEVEL_2M));
	assert_false(pm_attr_mixed(s, start + GFNS_2M, PM_ATTR_LEVEL_2M));
	assert_false(pm_attr_mixed(s, start + 2 * GFNS_1G, PM_ATTR_LEVEL_1G));
	assert_true(pm_attr_mixed(s, end, PM_ATTR_LEVEL_1G));
	/* Clearing it returns to the single root. */
	set_ok(s, start, end, 0);
	assert_int_equal(compacted_memory(s), NODE_BYTES);
}

/* ---- mixed and range_is ------------------------------------------------- */

/* A 4K page converted and converted back leaves its leaf linked but
 * uniform: values, mixed and range_is read through it, the next toggle in
 * the same 2M reuses it (no node allocated), and compaction returns the
 * memory. */
static void test_uniform_leaf_stays_and_reads_as_value(void **state)
{
	struct pm_attr_store *s = *state;
	gfn_t base = 7 * GFNS_1G + 5 * GFNS_2M;
	size_t initial = pm_attr_memory(s), kept;

	set_ok(s, base + 3, base + 4, PRIVATE);
	assert_true(pm_attr_mixed(s, base, PM_ATTR_LEVEL_2M));
	assert_true(pm_attr_mixed(s, base, PM_ATTR_LEVEL_1G));
	set_ok(s, base + 3, base + 4, 0);
	kept = pm_attr_memory(s);
	assert_int_equal(kept, initial + 2 * NODE_BYTES);   /* the leaf and its parent */
	assert_false(pm_attr_mixed(s, base, PM_ATTR_LEVEL_2M));
	assert_false(pm_attr_mixed(s, base, PM_ATTR_LEVEL_1G));
	assert_int_equal(pm_attr_get(s, base + 3), 0);
	assert_true(pm_attr_range_is(s, base - 1, base + GFNS_2M + 1, 0));
	assert_true(pm_attr_range_is(s, 0, 1ULL << 40, 0));
	/* Reuse: another page of the same 2M needs no new node. */
	for (gfn_t g = 0; g < GFNS_2M; g += 37) {
		set_ok(s, base + g, base + g + 1, PRIVATE);
		assert_int_equal(pm_attr_memory(s), kept);
		assert_int_equal(pm_attr_get(s, base + g), PRIVATE);
		assert_false(pm_attr_range_is(s, base, base + GFNS_2M, 0));
		assert_true(pm_attr_mixed(s, base, PM_ATTR_LEVEL_2M));
		set_ok(s, base + g, base + g + 1, 0);
		assert_false(pm_attr_mixed(s, base, PM_ATTR_LEVEL_2M));
	}
	/* A uniform private leaf reads as private. */
	set_ok(s, base, base + GFNS_2M - 1, PRIVATE);
	set_ok(s, base + GFNS_2M - 1, base + GFNS_2M, PRIVATE);
	assert_true(pm_attr_range_is(s, base, base + GFNS_2M, PRIVATE));
	assert_false(pm_attr_mixed(s, base, PM_ATTR_LEVEL_2M));
	assert_true(pm_attr_mixed(s, base, PM_ATTR_LEVEL_1G));
	set_ok(s, 7 * GFNS_1G, base, PRIVATE);
	set_ok(s, base + GFNS_2M, 8 * GFNS_1G, PRIVATE);
	assert_false(pm_attr_mixed(s, base, PM_ATTR_LEVEL_1G));   /* looks through the leaf */
	assert_true(pm_attr_range_is(s, 7 * GFNS_1G, 8 * GFNS_1G, PRIVATE));
	set_ok(s, 7 * GFNS_1G, 8 * GFNS_1G, 0);
	assert_int_equal(compacted_memory(s), initial);
}

/* Uniform leaves kept linked are bounded: toggling one page in each of many
 * 2M blocks keeps at most PM_ATTR_STALE leaves, and every block reads
 * uniform. */
static void test_uniform_leaves_are_bounded(void **state)
{
	struct pm_attr_store *s = *state;
	size_t initial = pm_attr_memory(s);
	enum { BLOCKS = 4 * PM_ATTR_STALE };

	for (gfn_t b = 0; b < BLOCKS; b++) {
		gfn_t g = (b % 3) * GFNS_1G + b * GFNS_2M + b % 512;

		set_ok(s, g, g + 1, PRIVATE);
		set_ok(s, g, g + 1, 0);
		/* The root, a level-1 node per 1G touched (3), the leaves. */
		assert_true(pm_attr_memory(s) <= initial + (3 + PM_ATTR_STALE) * NODE_BYTES);
	}
	for (gfn_t b = 0; b < BLOCKS; b++) {
		gfn_t g = (b % 3) * GFNS_1G + b * GFNS_2M;

		assert_false(pm_attr_mixed(s, g, PM_ATTR_LEVEL_2M));
		assert_false(pm_attr_mixed(s, g, PM_ATTR_LEVEL_1G));
	}
	assert_true(pm_attr_range_is(s, 0, 4 * GFNS_1G, 0));
	assert_int_equal(compacted_memory(s), initial);
}

static void test_mixed_2m_block_with_one_private_page(void **state)
{
	struct pm_attr_store *s = *state;
	gfn_t block = 40 * GFNS_2M, page = block + 77;

	set_ok(s, page, page + 1, 1);
	assert_true(pm_attr_mixed(s, block, PM_ATTR_LEVEL_2M));
	assert_true(pm_attr_mixed(s, block + GFNS_2M - 1, PM_ATTR_LEVEL_2M));
	assert_false(pm_attr_mixed(s, block - 1, PM_ATTR_LEVEL_2M));
	assert_false(pm_attr_mixed(s, block + GFNS_2M, PM_ATTR_LEVEL_2M));
	assert_true(pm_attr_mixed(s, block, PM_ATTR_LEVEL_1G));
	/* Making the whole block private makes it uniform again. */
	set_ok(s, block, block + GFNS_2M, 1);
	assert_false(pm_attr_mixed(s, page, PM_ATTR_LEVEL_2M));
	assert_true(pm_attr_mixed(s, page, PM_ATTR_LEVEL_1G));
}

static void test_mixed_1g_block_containing_mixed_2m_block(void **state)
{
	struct pm_attr_store *s = *state;
	gfn_t g1 = 6 * GFNS_1G;

	/* 1G block 6 all private but for one page. */
	set_ok(s, g1, g1 + GFNS_1G, 2);
	assert_false(pm_attr_mixed(s, g1, PM_ATTR_LEVEL_1G));
	set_ok(s, g1 + GFNS_1G - 1, g1 + GFNS_1G, 0);
	assert_true(pm_attr_mixed(s, g1, PM_ATTR_LEVEL_1G));
	assert_true(pm_attr_mixed(s, g1 + GFNS_1G - 1, PM_ATTR_LEVEL_2M));
	assert_false(pm_attr_mixed(s, g1 + GFNS_1G - 1 - GFNS_2M, PM_ATTR_LEVEL_2M));
	assert_false(pm_attr_mixed(s, g1 - 1, PM_ATTR_LEVEL_1G));
	assert_false(pm_attr_mixed(s, g1 + GFNS_1G, PM_ATTR_LEVEL_1G));
	/* Setting the page back un-mixes both levels. */
	set_ok(s, g1 + GFNS_1G - 1, g1 + GFNS_1G, 2);
	assert_false(pm_attr_mixed(s, g1, PM_ATTR_LEVEL_1G));
	assert_false(pm_attr_mixed(s, g1 + GFNS_1G - 1, PM_ATTR_LEVEL_2M));
}

static void test_range_is_true_and_false_cases(void **state)
{
	struct pm_attr_store *s = *state;
	gfn_t b = 2 * GFNS_1G - 300;    /* spans a 1G boundary */

	set_ok(s, b, b + 1000, 3);
	assert_true(pm_attr_range_is(s, b, b + 1000, 3));
	assert_true(pm_attr_range_is(s, b + 299, b + 301, 3));
	assert_true(pm_attr_range_is(s, b + 10, b + 11, 3));
	assert_false(pm_attr_range_is(s, b, b + 1000, 0));
	assert_false(pm_attr_range_is(s, b - 1, b + 1, 3));      /* spans start */
	assert_false(pm_attr_range_is(s, b + 999, b + 1001, 3)); /* spans end */
	assert_true(pm_attr_range_is(s, 0, b, 0));
	assert_true(pm_attr_range_is(s, b + 1000, GFN_LIMIT, 0));
	assert_false(pm_attr_range_is(s, 0, GFN_LIMIT, 0));
	/* A hole in the middle is found. */
	set_ok(s, b + 500, b + 501, 4);
	assert_false(pm_attr_range_is(s, b, b + 1000, 3));
	assert_true(pm_attr_range_is(s, b, b + 500, 3));
	assert_true(pm_attr_range_is(s, b + 501, b + 1000, 3));
}

/* ---- ENOMEM ------------------------------------------------------------- */

struct probe { gfn_t gfn; uint64_t attrs; };

static void assert_probes(struct pm_attr_store *s, const struct probe *p, int n)
{
	for (int i = 0; i < n; i++)
		assert_int_equal(pm_attr_get(s, p[i].gfn), p[i].attrs);
}

static void test_enomem_set_changes_nothing(void **state)
{
	struct pm_attr_store *s = *state;
	gfn_t a = 3 * GFNS_1G + 5, b = 5 * GFNS_1G + 7;
	const struct probe before[] = {
		{ a - 1, 0 }, { a, 0 }, { a + 999, 0 }, { a + 1000, 2 }, { a + 1099, 2 },
		{ a + 1100, 0 }, { 4 * GFNS_1G, 0 }, { b - 1, 0 }, { b, 0 },
		{ (1ULL << 40) + 3, 4 }, { (1ULL << 40) + 9, 0 },
	};
	const struct probe after[] = {
		{ a - 1, 0 }, { a, 7 }, { a + 1000, 7 }, { a + 1100, 7 }, { b - 1, 7 },
		{ b, 0 }, { (1ULL << 40) + 3, 4 },
	};
	size_t memory;
	int allowed;

	set_ok(s, a + 1000, a + 1100, 2);  /* inside the range, to be replaced */
	set_ok(s, (1ULL << 40) + 3, (1ULL << 40) + 9, 4);
	memory = pm_attr_memory(s);
	/* The set needs 3 new nodes (a 2M node for a's 2M block; a 1G and a 2M
	 * node for b's): each budget below that must fail cleanly. */
	for (allowed = 0; allowed < 100; allowed++) {
		int ret;

		pm_attr_test_fail_alloc(allowed);
		ret = pm_attr_set(s, a, b, 7);
		pm_attr_test_fail_alloc(-1);
		if (ret == 0)
			break;
		assert_int_equal(ret, -ENOMEM);
		assert_probes(s, before, PM_ARRAY_SIZE(before));
		assert_true(pm_attr_range_is(s, a + 1000, a + 1100, 2));
		assert_false(pm_attr_mixed(s, 4 * GFNS_1G, PM_ATTR_LEVEL_1G));
		assert_int_equal(pm_attr_memory(s), memory);
	}
	assert_int_equal(allowed, 3);
	assert_probes(s, after, PM_ARRAY_SIZE(after));
	assert_true(pm_attr_range_is(s, a, b, 7));
}

static void test_enomem_init_fails_cleanly(void **state)
{
	struct pm_attr_store s2;

	(void)state;
	pm_attr_test_fail_alloc(0);
	assert_int_equal(pm_attr_init(&s2), -ENOMEM);
	pm_attr_test_fail_alloc(-1);
}

/* ---- differential test against a byte array ------------------------------ */

#define WIN (1u << 20)   /* 4 GiB of gfns: four 1G blocks, 2048 2M blocks */

struct diff {
	struct pm_attr_store *s;
	gfn_t base;      /* window [base, base + WIN), aligned to WIN */
	uint8_t *ref;    /* expected value of each gfn of the window */
	uint64_t rng;
};

/* Expected value at window offset i, 0 outside the window. */
static uint64_t diff_ref(const struct diff *d, int64_t i)
{
	return i >= 0 && i < (int64_t)WIN ? d->ref[i] : 0;
}

static bool ref_uniform(const struct diff *d, uint64_t off, uint64_t len)
{
	return memcmp(d->ref + off, d->ref + off + 1, len - 1) == 0;
}

static void diff_check_gfn(const struct diff *d, int64_t i)
{
	if (d->base + i < GFN_LIMIT && (int64_t)d->base + i >= 0)
		assert_int_equal(pm_attr_get(d->s, d->base + i), diff_ref(d, i));
}

static void diff_check_block(const struct diff *d, uint64_t off, int level)
{
	uint64_t len = level == PM_ATTR_LEVEL_2M ? GFNS_2M : GFNS_1G;

	off = PM_ALIGN_DOWN(off, len);
	assert_int_equal(pm_attr_mixed(d->s, d->base + off, level), !ref_uniform(d, off, len));
}

static void diff_check_range_is(const struct diff *d, uint64_t a, uint64_t b)
{
	uint64_t v = d->ref[a];
	bool uniform = ref_uniform(d, a, b - a);

	assert_int_equal(pm_attr_range_is(d->s, d->base + a, d->base + b, v), uniform);
	assert_false(pm_attr_range_is(d->s, d->base + a, d->base + b, v + 1));
}

/* Canonical form fixes the node count: the root, the nodes between it and
 * the window's 1G blocks if anything is set (none when the root is at the
 * 1G level itself), one per mixed 1G and 2M block. */
static size_t diff_expected_memory(const struct diff *d)
{
	int chain = pm_attr_root_level(d->s) - PM_ATTR_LEVEL_1G;

	size_t nodes = 1;
	bool any = false;

	for (uint64_t off = 0; off < WIN; off += GFNS_2M)
		nodes += !ref_uniform(d, off, GFNS_2M);
	for (uint64_t off = 0; off < WIN; off += GFNS_1G)
		nodes += !ref_uniform(d, off, GFNS_1G);
	for (uint64_t i = 0; i < WIN && !any; i++)
		any = d->ref[i] != 0;
	return (nodes + (any ? (size_t)chain : 0)) * NODE_BYTES;
}

/* Checks the whole window; every_gfn adds a get of each gfn (slow in TSan:
 * otherwise each run of one value is checked at both ends and by range_is). */
static void diff_check_all(const struct diff *d, bool every_gfn)
{
	uint64_t run = 0;

	for (uint64_t i = 0; every_gfn && i < WIN; i++)
		diff_check_gfn(d, i);
	for (uint64_t off = 0; off < WIN; off += GFNS_2M)
		diff_check_block(d, off, PM_ATTR_LEVEL_2M);
	for (uint64_t off = 0; off < WIN; off += GFNS_1G)
		diff_check_block(d, off, PM_ATTR_LEVEL_1G);
	/* Every maximal run of one value is exactly one range_is-true range. */
	for (uint64_t i = 1; i <= WIN; i++) {
		if (i < WIN && d->ref[i] == d->ref[run])
			continue;
		diff_check_gfn(d, run);
		diff_check_gfn(d, i - 1);
		assert_true(pm_attr_range_is(d->s, d->base + run, d->base + i, d->ref[run]));
		if (i < WIN)
			assert_false(pm_attr_range_is(d->s, d->base + run, d->base + i + 1,
						      d->ref[run]));
		run = i;
	}
	assert_int_equal(compacted_memory(d->s), diff_expected_memory(d));
}

/* A random range in the window: small, medium, 2M-aligned or large. */
static void diff_pick_range(struct diff *d, uint64_t *a, uint64_t *b)
{
	uint64_t kind = rng_below(&d->rng, 4), len;

	*a = rng_below(&d->rng, WIN);
	if (kind == 0)
		len = 1 + rng_below(&d->rng, 1024);
	else if (kind == 1)
		len = 1 + rng_below(&d->rng, GFNS_1G);
	else if (kind == 2) {
		*a = PM_ALIGN_DOWN(*a, GFNS_2M);
		len = GFNS_2M * (1 + rng_below(&d->rng, 64));
	} else
		len = 1 + rng_below(&d->rng, WIN);
	*b = PM_MIN(*a + len, (uint64_t)WIN);
}

static void diff_one_set(struct diff *d)
{
	uint64_t a, b, v = rng_below(&d->rng, 4);
	int64_t edge[4];

	diff_pick_range(d, &a, &b);
	set_ok(d->s, d->base + a, d->base + b, v);
	memset(d->ref + a, (int)v, b - a);
	edge[0] = (int64_t)a - 1, edge[1] = a, edge[2] = (int64_t)b - 1, edge[3] = b;
	for (int i = 0; i < 4; i++) {
		diff_check_gfn(d, edge[i]);
		if (edge[i] >= 0 && edge[i] < (int64_t)WIN) {
			diff_check_block(d, edge[i], PM_ATTR_LEVEL_2M);
			diff_check_block(d, edge[i], PM_ATTR_LEVEL_1G);
		}
	}
	assert_true(pm_attr_range_is(d->s, d->base + a, d->base + b, v));
	diff_pick_range(d, &a, &b);
	diff_check_range_is(d, a, b);
}

static void run_differential(struct pm_attr_store *s, gfn_t base, uint64_t seed)
{
	struct diff d = { .s = s, .base = base, .ref = calloc(WIN, 1), .rng = seed };

	assert_non_null(d.ref);
	for (int i = 1; i <= 4000; i++) {
		diff_one_set(&d);
		if (i % 500 == 0)
			diff_check_all(&d, i == 4000);
	}
	/* Clearing the window collapses everything back to the root. */
	set_ok(s, base, base + WIN, 0);
	memset(d.ref, 0, WIN);
	diff_check_all(&d, false);
	assert_int_equal(pm_attr_memory(s), NODE_BYTES);
	free(d.ref);
}

static void test_differential_at_gfn_zero(void **state)
{
	run_differential(*state, 0, 0x1234567887654321ULL);
}

static void test_differential_at_top_of_gfn_space(void **state)
{
	run_differential(*state, GFN_LIMIT - WIN, 0xdeadbeefcafef00dULL);
}

/* ---- concurrent readers ------------------------------------------------- */

/*
 * A writer flips (parts of) regions of a window between two nonzero values
 * of their own while readers check that every gfn reads as a value it could
 * hold (a 0 in a region would be a node published before it was filled),
 * gaps read as 0, and whole-2M regions (written as single entries) never
 * look mixed. The window straddles a 1G boundary.
 */
#define CW_BASE    (3 * GFNS_1G - 4 * GFNS_2M)
#define CW_LEN     (210 * GFNS_2M)
#define CW_WRITES  20000
#define CW_READERS 2

struct cw_region {
	uint64_t off, end;  /* offsets from CW_BASE */
	bool whole;         /* only ever set whole */
};

static const struct cw_region cw_regions[] = {
	{ 0, GFNS_2M, true },
	{ 2 * GFNS_2M + 17, 2 * GFNS_2M + 300, false },
	{ 3 * GFNS_2M + 100, 5 * GFNS_2M + 7, false },   /* across 1G */
	{ 6 * GFNS_2M, 7 * GFNS_2M, true },
	{ 7 * GFNS_2M, 8 * GFNS_2M, true },
	{ 9 * GFNS_2M + 1, 200 * GFNS_2M + 3, false },
};
#define CW_NR ((int)PM_ARRAY_SIZE(cw_regions))

static const struct cw_region cw_gaps[] = {
	{ GFNS_2M, 2 * GFNS_2M + 17, false },
	{ 2 * GFNS_2M + 300, 3 * GFNS_2M + 100, false },
	{ 5 * GFNS_2M + 7, 6 * GFNS_2M, false },
	{ 8 * GFNS_2M, 9 * GFNS_2M + 1, false },
	{ 200 * GFNS_2M + 3, CW_LEN, false },
};

struct cw_shared {
	struct pm_attr_store *s;
	atomic_bool done;
	atomic_long errors;
	atomic_long reads;
	atomic_uint_fast64_t hot;  /* offset the writer is setting now */
	uint8_t ref[CW_LEN];   /* writer's record, read after join */
};

/* The two values region k takes. */
static uint64_t cw_value(int k, int which)
{
	return 10 * (which + 1) + k;
}

/* Region holding offset off, or -1 for a gap. */
static int cw_region_of(uint64_t off)
{
	for (int k = 0; k < CW_NR; k++)
		if (off >= cw_regions[k].off && off < cw_regions[k].end)
			return k;
	return -1;
}

static void *cw_writer(void *arg)
{
	struct cw_shared *sh = arg;
	uint64_t rng = 42;

	for (int i = 0; i < CW_WRITES; i++) {
		int k = rng_below(&rng, CW_NR);
		const struct cw_region *r = &cw_regions[k];
		uint64_t v = cw_value(k, rng_below(&rng, 2));
		uint64_t a = r->off, b = r->end;

		if (!r->whole) {
			a = r->off + rng_below(&rng, r->end - r->off);
			b = a + 1 + rng_below(&rng, r->end - a);
		}
		atomic_store_explicit(&sh->hot, a, memory_order_relaxed);
		if (pm_attr_set(sh->s, CW_BASE + a, CW_BASE + b, v) != 0)
			atomic_fetch_add(&sh->errors, 1);
		memset(sh->ref + a, (int)v, b - a);
	}
	atomic_store(&sh->done, true);
	return NULL;
}

/* 1 if gfn CW_BASE + off reads as a value it cannot hold. */
static long cw_check_gfn(struct pm_attr_store *s, uint64_t off)
{
	int k = cw_region_of(off);
	uint64_t v = pm_attr_get(s, CW_BASE + off);

	if (k < 0)
		return v != 0;
	return v != cw_value(k, 0) && v != cw_value(k, 1);
}

/* One round of reader checks; returns the number of violations. */
static long cw_read_round(struct cw_shared *sh, uint64_t *rng)
{
	struct pm_attr_store *s = sh->s;
	uint64_t off = rng_below(rng, CW_LEN);
	uint64_t hot = atomic_load_explicit(&sh->hot, memory_order_relaxed);
	const struct cw_region *gap = &cw_gaps[rng_below(rng, PM_ARRAY_SIZE(cw_gaps))];
	long bad = 0;

	bad += cw_check_gfn(s, off);
	/* Where a split may be under way: the set's start and its 2M block. */
	bad += cw_check_gfn(s, hot);
	bad += cw_check_gfn(s, PM_ALIGN_DOWN(hot, GFNS_2M) + rng_below(rng, GFNS_2M));
	bad += !pm_attr_range_is(s, CW_BASE + gap->off, CW_BASE + gap->end, 0);
	bad += pm_attr_range_is(s, CW_BASE + off, CW_BASE + off + 1, 99);
	for (int j = 0; j < CW_NR; j++)
		if (cw_regions[j].whole)
			bad += pm_attr_mixed(s, CW_BASE + cw_regions[j].off, PM_ATTR_LEVEL_2M);
	bad += pm_attr_get(s, CW_BASE - 1) != 0;
	bad += pm_attr_mixed(s, CW_BASE + 2 * GFNS_1G, PM_ATTR_LEVEL_1G);
	return bad;
}

static void *cw_reader(void *arg)
{
	struct cw_shared *sh = arg;
	uint64_t rng = (uint64_t)(uintptr_t)&rng | 1;
	long reads = 0, bad = 0;

	do {
		bad += cw_read_round(sh, &rng);
		reads++;
	} while (!atomic_load(&sh->done));
	atomic_fetch_add(&sh->errors, bad);
	atomic_fetch_add(&sh->reads, reads);
	return NULL;
}

static void test_concurrent_readers_see_only_possible_values(void **state)
{
	struct cw_shared *sh = calloc(1, sizeof(*sh));
	pthread_t writer, readers[CW_READERS];

	assert_non_null(sh);
	sh->s = *state;
	for (int k = 0; k < CW_NR; k++) {
		const struct cw_region *r = &cw_regions[k];

		set_ok(sh->s, CW_BASE + r->off, CW_BASE + r->end, cw_value(k, 0));
		memset(sh->ref + r->off, (int)cw_value(k, 0), r->end - r->off);
	}
	for (int i = 0; i < CW_READERS; i++)
		assert_int_equal(pthread_create(&readers[i], NULL, cw_reader, sh), 0);
	assert_int_equal(pthread_create(&writer, NULL, cw_writer, sh), 0);
	pthread_join(writer, NULL);
	for (int i = 0; i < CW_READERS; i++)
		pthread_join(readers[i], NULL);

	assert_int_equal(atomic_load(&sh->errors), 0);
	assert_true(atomic_load(&sh->reads) >= CW_READERS);
	for (uint64_t off = 0; off < CW_LEN; off++)
		assert_int_equal(pm_attr_get(sh->s, CW_BASE + off), sh->ref[off]);
	free(sh);
}

/* ---- concurrent writers ------------------------------------------------ */

/*
 * Writers in parallel: each of MW_THREADS threads owns the gfns congruent
 * to its number modulo MW_THREADS in a window of MW_LEAVES leaves, so all
 * of them set entries of the same leaves (the fast path's stripe locks and
 * the structural path interleave), and each keeps its own record of what
 * it set; one more thread changes the structure next to the window (large
 * sets, 2M-aligned sets, compaction). Afterwards every gfn holds the value
 * its owner set last, and the tree compacts back to the root.
 */
#define MW_THREADS 3
#define MW_LEAVES  8
#define MW_WINDOW  (MW_LEAVES * GFNS_2M)
#define MW_BASE    (3 * GFNS_1G - 4 * GFNS_2M)     /* straddles a 1G boundary */
#define MW_ROUNDS  20000

struct mw_arg {
	struct pm_attr_store *s;
	int me;
	uint8_t *ref;            /* MW_WINDOW values; this thread's gfns only */
	atomic_bool *stop;
};

static void *mw_owner(void *p)
{
	struct mw_arg *a = p;
	uint64_t rng = 0x1234567ULL * (uint64_t)(a->me + 1);

	for (int i = 0; i < MW_ROUNDS; i++) {
		/* One of my gfns, alone or as the one-gfn ranges a 4K
		 * conversion makes, with a value of 0..3. */
		uint64_t off = rng_below(&rng, MW_WINDOW / MW_THREADS) * MW_THREADS + (uint64_t)a->me;
		uint64_t v = rng_below(&rng, 4);

		if (pm_attr_set(a->s, MW_BASE + off, MW_BASE + off + 1, v))
			return (void *)1;
		a->ref[off] = (uint8_t)v;
	}
	return NULL;
}

static void *mw_structure(void *p)
{
	struct mw_arg *a = p;
	uint64_t rng = 42;
	long bad = 0;

	while (!atomic_load(a->stop)) {
		/* Next to the window, never inside it. */
		gfn_t base = MW_BASE + MW_WINDOW + rng_below(&rng, 4) * GFNS_2M;
		gfn_t start = base + rng_below(&rng, 3 * GFNS_2M), len = 1 + rng_below(&rng, GFNS_2M);

		bad += pm_attr_set(a->s, start, start + len, rng_below(&rng, 4)) != 0;
		bad += pm_attr_set(a->s, base, base + GFNS_2M, rng_below(&rng, 2)) != 0;
		if (rng_below(&rng, 16) == 0)
			pm_attr_compact(a->s);
	}
	return (void *)bad;
}

static void test_concurrent_writers_of_shared_leaves(void **state)
{
	struct pm_attr_store *s = *state;
	uint8_t *ref = calloc(MW_WINDOW, 1);
	struct mw_arg args[MW_THREADS + 1];
	pthread_t t[MW_THREADS + 1];
	atomic_bool stop = false;
	size_t initial = pm_attr_memory(s);
	void *ret;

	assert_non_null(ref);
	for (int i = 0; i <= MW_THREADS; i++) {
		args[i] = (struct mw_arg){ .s = s, .me = i, .ref = ref, .stop = &stop };
		assert_int_equal(pthread_create(&t[i], NULL, i < MW_THREADS ? mw_owner : mw_structure,
						&args[i]), 0);
	}
	for (int i = 0; i < MW_THREADS; i++) {
		pthread_join(t[i], &ret);
		assert_null(ret);
	}
	atomic_store(&stop, true);
	pthread_join(t[MW_THREADS], &ret);
	assert_null(ret);

	for (uint64_t off = 0; off < MW_WINDOW; off++)
		assert_int_equal(pm_attr_get(s, MW_BASE + off), ref[off]);
	/* Mixed-ness agrees with the values, leaf by leaf. */
	for (uint64_t l = 0; l < MW_LEAVES; l++) {
		bool same = true;

		for (uint64_t i = 1; i < GFNS_2M; i++)
			same = same && ref[l * GFNS_2M + i] == ref[l * GFNS_2M];
		assert_int_equal(pm_attr_mixed(s, MW_BASE + l * GFNS_2M, PM_ATTR_LEVEL_2M), !same);
	}
	set_ok(s, MW_BASE - GFNS_1G, MW_BASE + 2 * GFNS_1G, 0);
	assert_int_equal(compacted_memory(s), initial);
	free(ref);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup_store, teardown_store)
	const struct CMUnitTest tests[] = {
		T(test_initial_state_is_all_shared_in_one_node),
		T(test_set_unaligned_range_exact_boundaries),
		T(test_set_2m_aligned_range_exact_boundaries),
		T(test_set_1g_aligned_range_exact_boundaries),
		T(test_set_at_both_ends_of_gfn_space),
		T(test_overlapping_sets_keep_latest_value),
		T(test_setting_back_to_shared_returns_memory),
		T(test_random_sets_then_full_cover_collapse_to_one_node),
		T(test_one_tib_set_uses_few_nodes),
	T(test_uniform_leaf_stays_and_reads_as_value),
	T(test_uniform_leaves_are_bounded),
	T(test_mixed_2m_block_with_one_private_page),
		T(test_mixed_1g_block_containing_mixed_2m_block),
		T(test_range_is_true_and_false_cases),
		T(test_enomem_set_changes_nothing),
		cmocka_unit_test(test_enomem_init_fails_cleanly),
		T(test_differential_at_gfn_zero),
		T(test_differential_at_top_of_gfn_space),
		T(test_concurrent_readers_see_only_possible_values),
		T(test_concurrent_writers_of_shared_leaves),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}

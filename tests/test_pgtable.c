/* SPDX-License-Identifier: MIT */
/*
 * Tests of the software stage-2 page table (src/mmu/pgtable.c): the walker,
 * map/lookup at every level, -EEXIST cases, table creation and freeing,
 * zap with splitting and filters, FROZEN entries, split, age, count,
 * running out of frames, and concurrent map/zap/lookup/access.
 *
 * Leaves map gfn g to address g + ADDR_OFF, so any leaf (also one made by a
 * split) can be checked against the gfn it covers. Every test runs on a
 * fresh table; the teardown destroys it and fails the test if the pool has
 * more frames in use than before the table was created (a leaked table).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "mmu/pgtable.h"
#include "host/pool.h"
#include "lib/rcu.h"

#include <pthread.h>
#include <stdlib.h>

#define MIB       (1ULL << 20)
#define POOL_SIZE (32 * MIB)
#define ADDR_OFF  0x100000ULL        /* address = gfn + ADDR_OFF (1G aligned) */
#define P4K       1ULL
#define P2M       (1ULL << 9)
#define P1G       (1ULL << 18)
#define P512G     (1ULL << 27)
#define GFN_LIMIT (1ULL << PM_S2_GFN_BITS)

struct fixture {
	struct pm_s2 s2;
	uint64_t baseline;   /* pool bytes in use before pm_s2_init */
};

static uint64_t pool_in_use(void)
{
	struct pm_pool_stats st;

	pm_pool_get_stats(&st);
	return st.in_use;
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	pm_rcu_barrier();
	fx->baseline = pool_in_use();
	if (pm_s2_init(&fx->s2)) {
		free(fx);
		return -1;
	}
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	uint64_t baseline = fx->baseline, in_use;

	pm_s2_destroy(&fx->s2);
	free(fx);
	in_use = pool_in_use();
	if (in_use != baseline)
		fprintf(stderr, "pool in_use %llu, baseline %llu: table frames leaked\n",
			(unsigned long long)in_use, (unsigned long long)baseline);
	return in_use == baseline ? 0 : -1;
}

static struct pm_s2 *s2_of(void **state)
{
	return &((struct fixture *)*state)->s2;
}

/* ---- helpers ---- */

static uint64_t leaf(gfn_t gfn, uint64_t bits)
{
	return bits | ((gfn + ADDR_OFF) << PM_PAGE_SHIFT);
}

/* The leaf maps gfn to gfn + ADDR_OFF. */
static bool leaf_maps(uint64_t pte, int level, gfn_t gfn)
{
	return pm_pte_addr(pte) + (gfn & (pm_s2_level_pages(level) - 1)) == gfn + ADDR_OFF;
}

static void map_ok(struct pm_s2 *s2, gfn_t gfn, int level, uint64_t bits)
{
	gfn_t first = gfn & ~(pm_s2_level_pages(level) - 1);

	assert_int_equal(pm_s2_map(s2, gfn, level, leaf(first, bits)), 0);
}

static void expect_leaf(struct pm_s2 *s2, gfn_t gfn, int want_level, uint64_t want_bits)
{
	uint64_t pte = 0;
	int level = -1;

	assert_true(pm_s2_lookup(s2, gfn, &pte, &level));
	assert_int_equal(level, want_level);
	assert_true(leaf_maps(pte, level, gfn));
	assert_int_equal(pte & ~PM_PTE_ADDR_MASK, want_bits | PM_PTE_VALID | PM_PTE_LEAF);
}

static void expect_none(struct pm_s2 *s2, gfn_t gfn)
{
	assert_false(pm_s2_lookup(s2, gfn, NULL, NULL));
}

static void expect_counters(struct pm_s2 *s2, uint64_t l0, uint64_t l1, uint64_t l2)
{
	uint64_t c[3];

	assert_int_equal(atomic_load(&s2->leaves[0]), l0);
	assert_int_equal(atomic_load(&s2->leaves[1]), l1);
	assert_int_equal(atomic_load(&s2->leaves[2]), l2);
	pm_s2_count(s2, 0, GFN_LIMIT, c);
	assert_int_equal(c[0], l0);
	assert_int_equal(c[1], l1);
	assert_int_equal(c[2], l2);
}

/* Reads or writes the entry at `level` covering gfn (the path must exist). */
struct entry_op {
	int level;
	bool write;
	uint64_t value;
	bool seen;
};

static int entry_visit(struct pm_walk_ctx *ctx)
{
	struct entry_op *op = ctx->arg;
	uint64_t old = ctx->old;

	if (ctx->level != op->level)
		return 0;
	op->seen = true;
	if (!op->write) {
		op->value = old;
		return 0;
	}
	return atomic_compare_exchange_strong(ctx->ptep, &old, op->value) ? 0 : -EBUSY;
}

static uint64_t entry_access(struct pm_s2 *s2, gfn_t gfn, int level, bool write, uint64_t v)
{
	struct entry_op op = { .level = level, .write = write, .value = v };
	struct pm_walker w = { .visit = entry_visit, .arg = &op,
			       .flags = PM_WALK_LEAF | PM_WALK_TABLE_PRE };

	assert_int_equal(pm_s2_walk(s2, gfn, gfn + 1, &w), 0);
	assert_true(op.seen);
	return op.value;
}

static uint64_t entry_get(struct pm_s2 *s2, gfn_t gfn, int level)
{
	return entry_access(s2, gfn, level, false, 0);
}

static void entry_set(struct pm_s2 *s2, gfn_t gfn, int level, uint64_t v)
{
	entry_access(s2, gfn, level, true, v);
}

static struct pm_s2_zap_result zap_ok(struct pm_s2 *s2, gfn_t start, gfn_t end)
{
	struct pm_s2_zap_result res;

	assert_int_equal(pm_s2_zap(s2, start, end, NULL, NULL, &res), 0);
	return res;
}

/* ---- map and lookup ---- */

static void check_exact_coverage(struct pm_s2 *s2, gfn_t first, int level)
{
	uint64_t n = pm_s2_level_pages(level);
	uint64_t bits = PM_PTE_WRITE | PM_PTE_PRIVATE;

	map_ok(s2, first, level, bits);
	if (first)
		expect_none(s2, first - 1);
	expect_leaf(s2, first, level, bits);
	expect_leaf(s2, first + n / 2, level, bits);
	expect_leaf(s2, first + n - 1, level, bits);
	if (first + n < GFN_LIMIT)
		expect_none(s2, first + n);
}

static void test_map_4k_covers_exactly_one_gfn(void **state)
{
	struct pm_s2 *s2 = s2_of(state);

	check_exact_coverage(s2, 0x12345, 0);
	check_exact_coverage(s2, 0, 0);
	check_exact_coverage(s2, GFN_LIMIT - 1, 0);
	expect_counters(s2, 3, 0, 0);
}

static void test_map_2m_covers_exactly_512_gfns(void **state)
{
	struct pm_s2 *s2 = s2_of(state);

	check_exact_coverage(s2, 7 * P2M, 1);
	check_exact_coverage(s2, GFN_LIMIT - P2M, 1);
	expect_counters(s2, 0, 2, 0);
}

static void test_map_1g_covers_exactly_a_gigabyte(void **state)
{
	struct pm_s2 *s2 = s2_of(state);

	check_exact_coverage(s2, 3 * P1G, 2);
	check_exact_coverage(s2, GFN_LIMIT - P1G, 2);
	expect_counters(s2, 0, 0, 2);
}

static void test_map_unaligned_gfn_maps_the_containing_block(void **state)
{
	struct pm_s2 *s2 = s2_of(state);

	assert_int_equal(pm_s2_map(s2, 5 * P2M + 77, 1, leaf(5 * P2M, 0)), 0);
	expect_none(s2, 5 * P2M - 1);
	expect_leaf(s2, 5 * P2M, 1, 0);
	expect_leaf(s2, 6 * P2M - 1, 1, 0);
	expect_none(s2, 6 * P2M);
}

static void test_map_same_slot_is_eexist_and_keeps_old_leaf(void **state)
{
	struct pm_s2 *s2 = s2_of(state);

	map_ok(s2, 10, 0, PM_PTE_WRITE);
	assert_int_equal(pm_s2_map(s2, 10, 0, leaf(99, PM_PTE_PRIVATE)), -EEXIST);
	map_ok(s2, 2 * P2M, 1, 0);
	assert_int_equal(pm_s2_map(s2, 2 * P2M + 3, 1, leaf(0, 0)), -EEXIST);
	expect_leaf(s2, 10, 0, PM_PTE_WRITE);
	expect_leaf(s2, 2 * P2M, 1, 0);
	expect_counters(s2, 1, 1, 0);
}

static void test_map_huge_leaf_over_a_table_is_eexist(void **state)
{
	struct pm_s2 *s2 = s2_of(state);
	uint64_t tables;

	map_ok(s2, 5, 0, 0);
	tables = atomic_load(&s2->tables);
	assert_int_equal(pm_s2_map(s2, 0, 1, leaf(0, 0)), -EEXIST);
	assert_int_equal(pm_s2_map(s2, 0, 2, leaf(0, 0)), -EEXIST);
	assert_int_equal(atomic_load(&s2->tables), tables);
	expect_none(s2, 4);
	expect_leaf(s2, 5, 0, 0);
	expect_counters(s2, 1, 0, 0);
}

static void test_map_small_leaf_under_a_huge_leaf_is_eexist(void **state)
{
	struct pm_s2 *s2 = s2_of(state);
	uint64_t tables;

	map_ok(s2, P1G, 2, 0);
	map_ok(s2, 4 * P2M, 1, 0);
	tables = atomic_load(&s2->tables);
	assert_int_equal(pm_s2_map(s2, P1G + P2M, 1, leaf(P1G + P2M, 0)), -EEXIST);
	assert_int_equal(pm_s2_map(s2, P1G + 7, 0, leaf(P1G + 7, 0)), -EEXIST);
	assert_int_equal(pm_s2_map(s2, 4 * P2M + 7, 0, leaf(4 * P2M + 7, 0)), -EEXIST);
	assert_int_equal(atomic_load(&s2->tables), tables);
	expect_leaf(s2, P1G + 7, 2, 0);
	expect_leaf(s2, 4 * P2M + 7, 1, 0);
	expect_counters(s2, 0, 1, 1);
}

static void test_map_over_frozen_entry_is_eexist(void **state)
{
	struct pm_s2 *s2 = s2_of(state);

	map_ok(s2, 0, 0, 0);
	entry_set(s2, 1, 0, PM_PTE_FROZEN);
	assert_int_equal(pm_s2_map(s2, 1, 0, leaf(1, 0)), -EEXIST);
	entry_set(s2, P2M, 1, PM_PTE_FROZEN);
	assert_int_equal(pm_s2_map(s2, P2M, 1, leaf(P2M, 0)), -EEXIST);
	assert_int_equal(pm_s2_map(s2, P2M + 1, 0, leaf(P2M + 1, 0)), -EEXIST);
	expect_none(s2, 1);
	expect_counters(s2, 1, 0, 0);
	entry_set(s2, 1, 0, 0);
	entry_set(s2, P2M, 1, 0);
}

static void test_map_creates_tables_on_demand_and_counts_them(void **state)
{
	struct pm_s2 *s2 = s2_of(state);

	assert_int_equal(atomic_load(&s2->tables), 1);
	assert_int_equal(pool_in_use(), ((struct fixture *)*state)->baseline + PM_PAGE_SIZE);
	map_ok(s2, 0, 0, 0);            /* levels 2, 1, 0 */
	assert_int_equal(atomic_load(&s2->tables), 4);
	map_ok(s2, 1, 0, 0);            /* same 4K table */
	assert_int_equal(atomic_load(&s2->tables), 4);
	map_ok(s2, P2M, 0, 0);          /* a new 4K table */
	assert_int_equal(atomic_load(&s2->tables), 5);
	map_ok(s2, 2 * P2M, 1, 0);      /* a leaf in the existing 2M table */
	map_ok(s2, P1G, 2, 0);          /* a leaf in the existing 1G table */
	assert_int_equal(atomic_load(&s2->tables), 5);
	map_ok(s2, P512G + 3, 0, 0);    /* another root slot: 3 tables */
	assert_int_equal(atomic_load(&s2->tables), 8);
	assert_int_equal(pool_in_use(), ((struct fixture *)*state)->baseline + 8 * PM_PAGE_SIZE);
	expect_counters(s2, 4, 1, 1);
}

/* ---- the walker ---- */

struct visit_rec {
	unsigned int visit;
	gfn_t gfn;
	int level;
	bool valid;
};

struct recorder {
	struct visit_rec v[64];
	int n;
	int fail_at;          /* visit index that returns -EIO, or -1 */
	pm_pfn_t installed;   /* table installed by install_visit */
};

static int record_visit(struct pm_walk_ctx *ctx)
{
	struct recorder *r = ctx->arg;

	assert_true(r->n < (int)PM_ARRAY_SIZE(r->v));
	r->v[r->n] = (struct visit_rec){ ctx->visit, ctx->gfn, ctx->level,
					 pm_pte_valid(ctx->old) };
	return r->n++ == r->fail_at ? -EIO : 0;
}

static void expect_visit(const struct recorder *r, int i, unsigned int visit,
			 gfn_t gfn, int level, bool valid)
{
	assert_true(i < r->n);
	assert_int_equal(r->v[i].visit, visit);
	assert_int_equal(r->v[i].gfn, gfn);
	assert_int_equal(r->v[i].level, level);
	assert_int_equal(r->v[i].valid, valid);
}

static int walk_record(struct pm_s2 *s2, gfn_t start, gfn_t end, unsigned int flags,
		       struct recorder *r)
{
	struct pm_walker w = { .visit = record_visit, .arg = r, .flags = flags };

	r->n = 0;
	return pm_s2_walk(s2, start, end, &w);
}

static void test_walk_visits_pre_children_post_in_gfn_order(void **state)
{
	struct pm_s2 *s2 = s2_of(state);
	struct recorder r = { .fail_at = -1 };
	const unsigned int all = PM_WALK_LEAF | PM_WALK_TABLE_PRE | PM_WALK_TABLE_POST;

	map_ok(s2, 510, 0, 0);
	assert_int_equal(walk_record(s2, 510, 513, all, &r), 0);
	expect_visit(&r, 0, PM_WALK_TABLE_PRE, 0, 3, true);
	expect_visit(&r, 1, PM_WALK_TABLE_PRE, 0, 2, true);
	expect_visit(&r, 2, PM_WALK_TABLE_PRE, 0, 1, true);
	expect_visit(&r, 3, PM_WALK_LEAF, 510, 0, true);
	expect_visit(&r, 4, PM_WALK_LEAF, 511, 0, false);    /* empty entries too */
	expect_visit(&r, 5, PM_WALK_TABLE_POST, 0, 1, true);
	expect_visit(&r, 6, PM_WALK_LEAF, 512, 1, false);    /* no table there */
	expect_visit(&r, 7, PM_WALK_TABLE_POST, 0, 2, true);
	expect_visit(&r, 8, PM_WALK_TABLE_POST, 0, 3, true);
	assert_int_equal(r.n, 9);
}

static void test_walk_makes_only_the_requested_visits(void **state)
{
	struct pm_s2 *s2 = s2_of(state);
	struct recorder r = { .fail_at = -1 };

	map_ok(s2, 510, 0, 0);
	assert_int_equal(walk_record(s2, 510, 513, PM_WALK_LEAF, &r), 0);
	assert_int_equal(r.n, 3);
	expect_visit(&r, 0, PM_WALK_LEAF, 510, 0, true);
	expect_visit(&r, 2, PM_WALK_LEAF, 512, 1, false);
	assert_int_equal(walk_record(s2, 510, 513, PM_WALK_TABLE_POST, &r), 0);
	assert_int_equal(r.n, 3);
	expect_visit(&r, 0, PM_WALK_TABLE_POST, 0, 1, true);
	expect_visit(&r, 2, PM_WALK_TABLE_POST, 0, 3, true);
	assert_int_equal(walk_record(s2, 510, 510, PM_WALK_LEAF, &r), 0);
	assert_int_equal(r.n, 0);
}

static void test_walk_stops_at_the_first_error(void **state)
{
	struct pm_s2 *s2 = s2_of(state);
	struct recorder r = { .fail_at = 4 };

	map_ok(s2, 510, 0, 0);
	assert_int_equal(walk_record(s2, 510, 513, PM_WALK_LEAF | PM_WALK_TABLE_PRE |
				     PM_WALK_TABLE_POST, &r), -EIO);
	assert_int_equal(r.n, 5);
}

/* In a LEAF visit at level 3, installs a fresh table into the empty entry. */
static int install_visit(struct pm_walk_ctx *ctx)
{
	struct recorder *r = ctx->arg;
	uint64_t empty = 0;

	if (ctx->visit == PM_WALK_LEAF && ctx->level == 3) {
		assert_int_equal(pm_pool_alloc(0, &r->installed), 0);
		assert_true(atomic_compare_exchange_strong(ctx->ptep, &empty,
				PM_PTE_VALID | (r->installed << PM_PAGE_SHIFT)));
		atomic_fetch_add(&ctx->s2->tables, 1);
	}
	return record_visit(ctx);
}

static void test_walk_descends_into_a_table_the_visitor_installed(void **state)
{
	struct pm_s2 *s2 = s2_of(state);
	struct recorder r = { .fail_at = -1 };
	struct pm_walker w = { .visit = install_visit, .arg = &r,
			       .flags = PM_WALK_LEAF | PM_WALK_TABLE_POST };

	assert_int_equal(pm_s2_walk(s2, P512G + 5, P512G + 5 + 2 * P1G, &w), 0);
	expect_visit(&r, 0, PM_WALK_LEAF, P512G, 3, false);
	expect_visit(&r, 1, PM_WALK_LEAF, P512G, 2, false);     /* its children */
	expect_visit(&r, 2, PM_WALK_LEAF, P512G + P1G, 2, false);
	expect_visit(&r, 3, PM_WALK_LEAF, P512G + 2 * P1G, 2, false);
	expect_visit(&r, 4, PM_WALK_TABLE_POST, P512G, 3, true);
	assert_int_equal(r.n, 5);
	map_ok(s2, P512G + P1G, 2, 0);  /* the new table is part of the tree */
	expect_leaf(s2, P512G + P1G + 9, 2, 0);
	assert_int_equal(atomic_load(&s2->tables), 2);
}

/* In a PRE visit, removes the table (leaked to the test, freed after). */
static int remove_visit(struct pm_walk_ctx *ctx)
{
	struct recorder *r = ctx->arg;
	uint64_t old = ctx->old;

	if (ctx->visit == PM_WALK_TABLE_PRE && ctx->level == 1) {
		assert_true(atomic_compare_exchange_strong(ctx->ptep, &old, 0));
		r->installed = pm_pte_addr(ctx->old);
	}
	return record_visit(ctx);
}

static void test_walk_skips_a_table_the_visitor_removed(void **state)
{
	struct pm_s2 *s2 = s2_of(state);
	struct recorder r = { .fail_at = -1 };
	struct pm_walker w = { .visit = remove_visit, .arg = &r,
			       .flags = PM_WALK_LEAF | PM_WALK_TABLE_PRE | PM_WALK_TABLE_POST };

	map_ok(s2, 3, 0, 0);
	assert_int_equal(pm_s2_walk(s2, 0, 2, &w), 0);
	expect_visit(&r, 2, PM_WALK_TABLE_PRE, 0, 1, true);
	expect_visit(&r, 3, PM_WALK_TABLE_POST, 0, 2, true);    /* no level-0 visits */
	assert_int_equal(r.n, 5);
	pm_pool_free(r.installed, 0);
	atomic_fetch_sub(&s2->tables, 1);
	atomic_fetch_sub(&s2->leaves[0], 1);
	expect_none(s2, 3);
}

/* ---- zap ---- */

static void test_zap_removes_exactly_the_range(void **state)
{
	struct pm_s2 *s2 = s2_of(state);
	struct pm_s2_zap_result res;
	gfn_t g;

	for (g = 0; g < 10; g++)
		map_ok(s2, g, 0, 0);
	map_ok(s2, P2M, 1, 0);
	map_ok(s2, 2 * P2M, 1, 0);
	res = zap_ok(s2, 3, 7);
	assert_int_equal(res.zapped, 4);
	assert_int_equal(res.split, 0);
	expect_leaf(s2, 2, 0, 0);
	for (g = 3; g < 7; g++)
		expect_none(s2, g);
	expect_leaf(s2, 7, 0, 0);
	res = zap_ok(s2, P2M, 2 * P2M);       /* one whole 2M leaf, no split */
	assert_int_equal(res.zapped, 1);
	assert_int_equal(res.split, 0);
	expect_none(s2, 2 * P2M - 1);
	expect_leaf(s2, 2 * P2M, 1, 0);
	expect_counters(s2, 6, 1, 0);
	assert_int_equal(atomic_load(&s2->splits), 0);
}

static void test_zap_one_4k_page_splits_1g_down_to_4k(void **state)
{
	struct pm_s2 *s2 = s2_of(state);
	uint64_t bits = PM_PTE_PRIVATE | PM_PTE_WRITE | PM_PTE_DIRTY;
	gfn_t g = P1G, hole = P1G + 1000;     /* in the second 2M block */
	struct pm_s2_zap_result res;
	uint64_t c[3];

	map_ok(s2, g, 2, bits);
	res = zap_ok(s2, hole, hole + 1);
	assert_int_equal(res.zapped, 1);
	assert_int_equal(res.split, 2);
	assert_int_equal(res.tables_freed, 0);
	assert_int_equal(atomic_load(&s2->splits), 2);
	assert_int_equal(atomic_load(&s2->tables), 2 + 2);
	expect_none(s2, hole);
	expect_leaf(s2, g, 1, bits);
	expect_leaf(s2, g + P2M - 1, 1, bits);
	expect_leaf(s2, g + P2M, 0, bits);
	expect_leaf(s2, hole - 1, 0, bits);
	expect_leaf(s2, hole + 1, 0, bits);
	expect_leaf(s2, g + 2 * P2M - 1, 0, bits);
	expect_leaf(s2, g + 2 * P2M, 1, bits);
	expect_leaf(s2, g + P1G - 1, 1, bits);
	expect_none(s2, g + P1G);
	expect_counters(s2, 511, 511, 0);
	pm_s2_count(s2, g + P2M, g + 2 * P2M, c);
	assert_int_equal(c[0], 511);
	assert_int_equal(c[1], 0);
}

static void test_zap_across_a_huge_leaf_boundary_splits_only_that_leaf(void **state)
{
	struct pm_s2 *s2 = s2_of(state);
	struct pm_s2_zap_result res;

	map_ok(s2, 0, 1, 0);
	map_ok(s2, P2M, 1, 0);
	res = zap_ok(s2, 500, P2M + P2M);     /* tail of the first, all of the second */
	assert_int_equal(res.split, 1);
	assert_int_equal(res.zapped, 12 + 1);
	expect_leaf(s2, 499, 0, 0);
	expect_none(s2, 500);
	expect_none(s2, P2M + 3);
	expect_counters(s2, 500, 0, 0);
}

static bool only_private(uint64_t pte, void *arg)
{
	(*(int *)arg)++;
	return pte & PM_PTE_PRIVATE;
}

static void test_zap_filter_removes_only_private_leaves(void **state)
{
	struct pm_s2 *s2 = s2_of(state);
	struct pm_s2_zap_result res;
	int calls = 0;
	gfn_t g;

	for (g = 0; g < 8; g++)
		map_ok(s2, g, 0, g % 2 ? PM_PTE_PRIVATE : 0);
	map_ok(s2, P2M, 1, 0);                 /* shared huge leaf, partly in range */
	map_ok(s2, 2 * P2M, 1, PM_PTE_PRIVATE);
	assert_int_equal(pm_s2_zap(s2, 0, P2M + 5, only_private, &calls, &res), 0);
	assert_int_equal(res.zapped, 4);
	assert_int_equal(res.split, 0);       /* the shared 2M leaf is not split */
	assert_true(calls >= 9);
	for (g = 0; g < 8; g++) {
		if (g % 2)
			expect_none(s2, g);
		else
			expect_leaf(s2, g, 0, 0);
	}
	expect_leaf(s2, P2M, 1, 0);
	assert_int_equal(pm_s2_zap(s2, 2 * P2M + 1, 2 * P2M + 2, only_private, &calls, &res), 0);
	assert_int_equal(res.split, 1);       /* the private one is */
	assert_int_equal(res.zapped, 1);
	expect_none(s2, 2 * P2M + 1);
	expect_counters(s2, 4 + 511, 1, 0);
}

static void test_zap_frees_tables_it_empties(void **state)
{
	struct pm_s2 *s2 = s2_of(state);
	uint64_t baseline = ((struct fixture *)*state)->baseline;
	struct pm_s2_zap_result res;

	map_ok(s2, 0, 0, 0);
	map_ok(s2, P512G + 5, 0, 0);
	assert_int_equal(atomic_load(&s2->tables), 7);
	res = zap_ok(s2, 0, P512G);
	assert_int_equal(res.zapped, 1);
	assert_int_equal(res.tables_freed, 3);
	assert_int_equal(atomic_load(&s2->tables), 4);
	pm_rcu_barrier();
	assert_int_equal(pool_in_use(), baseline + 4 * PM_PAGE_SIZE);
	expect_leaf(s2, P512G + 5, 0, 0);
	res = zap_ok(s2, 0, GFN_LIMIT);
	assert_int_equal(res.tables_freed, 3);
	assert_int_equal(atomic_load(&s2->tables), 1);   /* never the root */
	pm_rcu_barrier();
	assert_int_equal(pool_in_use(), baseline + PM_PAGE_SIZE);
	map_ok(s2, 9, 0, 0);                             /* and it still works */
	expect_leaf(s2, 9, 0, 0);
	expect_counters(s2, 1, 0, 0);
}

static void test_zap_keeps_tables_partly_outside_the_range(void **state)
{
	struct pm_s2 *s2 = s2_of(state);
	struct pm_s2_zap_result res;

	map_ok(s2, 0, 0, 0);
	map_ok(s2, 600, 0, 0);
	assert_int_equal(atomic_load(&s2->tables), 5);
	res = zap_ok(s2, 0, P2M);           /* the first 4K table's whole span */
	assert_int_equal(res.tables_freed, 1);
	res = zap_ok(s2, 0, 700);           /* empties the second, not its span */
	assert_int_equal(res.zapped, 1);
	assert_int_equal(res.tables_freed, 0);
	assert_int_equal(atomic_load(&s2->tables), 4);
	res = zap_ok(s2, P2M, 2 * P2M);
	assert_int_equal(res.tables_freed, 1);
	assert_int_equal(atomic_load(&s2->tables), 3);   /* 2M and 1G tables stay */
	expect_counters(s2, 0, 0, 0);
}

static void test_zap_leaves_frozen_entries_alone(void **state)
{
	struct pm_s2 *s2 = s2_of(state);
	uint64_t frozen = PM_PTE_FROZEN | leaf(6, PM_PTE_PRIVATE);
	struct pm_s2_zap_result res;

	map_ok(s2, 5, 0, 0);
	entry_set(s2, 6, 0, frozen);
	entry_set(s2, 2 * P2M, 1, PM_PTE_FROZEN);
	res = zap_ok(s2, 0, P1G);
	assert_int_equal(res.zapped, 1);
	assert_int_equal(res.split, 0);
	assert_int_equal(res.tables_freed, 0);           /* not empty */
	assert_int_equal(entry_get(s2, 6, 0), frozen);
	assert_int_equal(entry_get(s2, 2 * P2M, 1), PM_PTE_FROZEN);
	res = zap_ok(s2, 2 * P2M + 3, 2 * P2M + 4);      /* not split either */
	assert_int_equal(res.split, 0);
	assert_int_equal(atomic_load(&s2->tables), 4);
	entry_set(s2, 6, 0, 0);
	entry_set(s2, 2 * P2M, 1, 0);
	res = zap_ok(s2, 0, GFN_LIMIT);
	assert_int_equal(res.tables_freed, 3);
	expect_counters(s2, 0, 0, 0);
}

/* Takes every free frame of the pool; returns how many runs (of orders[i]). */
static int hog_pool(pm_pfn_t *pfns, unsigned int *orders, int max)
{
	unsigned int order = 9;
	int n = 0;

	for (;;) {
		assert_true(n < max);
		if (!pm_pool_alloc(order, &pfns[n])) {
			orders[n++] = order;
		} else if (order) {
			order = 0;
		} else {
			return n;
		}
	}
}

/* Without frames, split and map fail with ENOMEM and change nothing; a zap
 * that would need a split removes the whole huge leaf instead (a zap must
 * not fail: its caller is about to free the memory). */
static void test_out_of_frames_split_and_map_fail_zap_takes_the_whole_leaf(void **state)
{
	struct pm_s2 *s2 = s2_of(state);
	static pm_pfn_t pfns[POOL_SIZE / PM_PAGE_SIZE];
	static unsigned int orders[POOL_SIZE / PM_PAGE_SIZE];
	struct pm_s2_zap_result res;
	uint64_t pte;
	int n, i, level;

	map_ok(s2, 0, 1, PM_PTE_PRIVATE);
	pm_rcu_barrier();
	n = hog_pool(pfns, orders, (int)PM_ARRAY_SIZE(pfns));
	assert_int_equal(pm_s2_split(s2, 0, 1), -ENOMEM);
	assert_int_equal(pm_s2_map(s2, P1G, 0, leaf(P1G, 0)), -ENOMEM);
	assert_true(pm_s2_lookup(s2, 5, &pte, &level));
	assert_int_equal(level, 1);
	assert_int_equal(pm_s2_zap(s2, 5, 6, NULL, NULL, &res), 0);
	assert_int_equal(res.zapped, 1);
	assert_int_equal(res.split, 0);
	assert_false(pm_s2_lookup(s2, 0, &pte, &level));
	assert_false(pm_s2_lookup(s2, 511, &pte, &level));
	for (i = 0; i < n; i++)
		pm_pool_free(pfns[i], orders[i]);
	expect_none(s2, 5);
	expect_none(s2, P1G);
	expect_counters(s2, 0, 0, 0);
	assert_int_equal(atomic_load(&s2->splits), 0);
	assert_int_equal(atomic_load(&s2->tables), 3);
}

/* ---- split, age, count ---- */

static void test_split_keeps_memory_and_bits(void **state)
{
	struct pm_s2 *s2 = s2_of(state);
	uint64_t bits = PM_PTE_PRIVATE | PM_PTE_ACCESSED | PM_PTE_EXEC |
			(2ULL << PM_PTE_SW_STATE_SHIFT);
	gfn_t g = 5 * P1G;

	map_ok(s2, g, 2, bits);
	assert_int_equal(pm_s2_split(s2, g + 1234, 2), 0);
	assert_int_equal(atomic_load(&s2->splits), 1);
	assert_int_equal(atomic_load(&s2->tables), 3);
	expect_counters(s2, 0, 512, 0);
	expect_leaf(s2, g, 1, bits);
	expect_leaf(s2, g + 1234, 1, bits);
	expect_leaf(s2, g + P1G - 1, 1, bits);
	assert_int_equal(pm_s2_split(s2, g + 1234, 1), 0);
	expect_counters(s2, 512, 511, 0);
	expect_leaf(s2, g + 1023, 1, bits);
	expect_leaf(s2, g + 1024, 0, bits);
	expect_leaf(s2, g + 1234, 0, bits);
	expect_leaf(s2, g + 1535, 0, bits);
	expect_leaf(s2, g + 1536, 1, bits);
	assert_int_equal(atomic_load(&s2->splits), 2);
}

static void test_split_without_a_huge_leaf_is_enoent(void **state)
{
	struct pm_s2 *s2 = s2_of(state);

	assert_int_equal(pm_s2_split(s2, 0, 1), -ENOENT);       /* nothing */
	map_ok(s2, 0, 0, 0);
	assert_int_equal(pm_s2_split(s2, 0, 1), -ENOENT);       /* a table there */
	assert_int_equal(pm_s2_split(s2, 0, 2), -ENOENT);
	map_ok(s2, P1G, 2, 0);
	assert_int_equal(pm_s2_split(s2, P1G, 1), -ENOENT);     /* bigger leaf above */
	map_ok(s2, P2M, 1, 0);
	entry_set(s2, P2M, 1, PM_PTE_FROZEN);
	assert_int_equal(pm_s2_split(s2, P2M, 1), -ENOENT);     /* frozen */
	entry_set(s2, P2M, 1, 0);
	atomic_fetch_sub(&s2->leaves[1], 1);
	assert_int_equal(atomic_load(&s2->splits), 0);
	expect_counters(s2, 1, 0, 1);
}

static void test_age_clears_accessed_and_counts_leaves_that_had_it(void **state)
{
	struct pm_s2 *s2 = s2_of(state);

	map_ok(s2, 0, 0, PM_PTE_ACCESSED);
	map_ok(s2, 1, 0, 0);
	map_ok(s2, 2, 0, PM_PTE_ACCESSED | PM_PTE_DIRTY);
	map_ok(s2, P2M, 1, PM_PTE_ACCESSED);
	map_ok(s2, 3 * P2M, 1, PM_PTE_ACCESSED);
	assert_int_equal(pm_s2_age(s2, 1, P2M + 1), 2);   /* gfn 2 and the 2M leaf */
	expect_leaf(s2, 0, 0, PM_PTE_ACCESSED);
	expect_leaf(s2, 2, 0, PM_PTE_DIRTY);
	expect_leaf(s2, P2M, 1, 0);
	expect_leaf(s2, 3 * P2M, 1, PM_PTE_ACCESSED);
	assert_int_equal(pm_s2_age(s2, 0, P1G), 2);
	assert_int_equal(pm_s2_age(s2, 0, P1G), 0);
	expect_leaf(s2, 0, 0, 0);
}

static void test_count_counts_leaves_overlapping_the_range(void **state)
{
	struct pm_s2 *s2 = s2_of(state);
	uint64_t c[3];

	map_ok(s2, 0, 0, 0);
	map_ok(s2, 1, 0, 0);
	map_ok(s2, 2 * P2M, 1, 0);
	map_ok(s2, P1G, 2, 0);
	pm_s2_count(s2, 1, 2 * P2M + 1, c);
	assert_int_equal(c[0], 1);
	assert_int_equal(c[1], 1);
	assert_int_equal(c[2], 0);
	pm_s2_count(s2, 2, 2 * P2M, c);
	assert_int_equal(c[0] + c[1] + c[2], 0);
	pm_s2_count(s2, P1G + P2M + 5, P1G + P2M + 6, c);
	assert_int_equal(c[2], 1);
	assert_int_equal(c[0] + c[1], 0);
	expect_counters(s2, 2, 1, 1);
}

/* ---- concurrency ---- */

/*
 * Four threads in ROUNDS rounds separated by a barrier, so that whatever the
 * scheduler does each round starts from what earlier rounds built: two
 * mappers (disjoint halves), a zapper (and ager), and a looker that also
 * sets ACCESSED|DIRTY the way a vCPU does. The zapper sits out the last
 * round so that leaves remain to be audited.
 */
#define SPAN       (1ULL << 16)
#define HALF       (SPAN / 2)
#define ROUNDS     50
#ifdef PM_TSAN
#define MAPS_PER_ROUND 150
#else
#define MAPS_PER_ROUND 600
#endif
#define ZAPS_PER_ROUND (MAPS_PER_ROUND / 16)
#define LOOKS_PER_ROUND (MAPS_PER_ROUND * 2)

struct stress {
	struct pm_s2 *s2;
	pthread_barrier_t round;   /* all four threads, between rounds */
	atomic_ulong errors;       /* unexpected results */
	atomic_ulong bad_leaves;   /* leaves seen mapping the wrong address */
	atomic_ulong found;        /* lookups that found a leaf */
	atomic_ulong tables_freed; /* by the zapper */
};

struct stress_thread {
	struct stress *st;
	gfn_t base;
	unsigned int seed;
	void (*round)(struct stress_thread *t, int r);
};

static void map_round(struct stress_thread *t, int r)
{
	int i, level, ret;
	gfn_t gfn;

	for (i = 0; i < MAPS_PER_ROUND; i++) {
		level = rand_r(&t->seed) % 4 == 0;
		gfn = t->base + (rand_r(&t->seed) % HALF);
		gfn &= ~(pm_s2_level_pages(level) - 1);
		ret = pm_s2_map(t->st->s2, gfn, level,
				leaf(gfn, rand_r(&t->seed) % 2 ? PM_PTE_PRIVATE : 0));
		if (ret && ret != -EEXIST)
			atomic_fetch_add(&t->st->errors, 1);
	}
}

/* Random ranges; the whole span every tenth round. */
static void zap_round(struct stress_thread *t, int r)
{
	struct pm_s2_zap_result res;
	gfn_t start, end;
	int i;

	for (i = 0; i < ZAPS_PER_ROUND && r < ROUNDS - 1; i++) {
		bool all = r % 10 == 9 && i == ZAPS_PER_ROUND / 2;

		start = all ? 0 : rand_r(&t->seed) % SPAN;
		end = all ? SPAN : PM_MIN(start + 1 + rand_r(&t->seed) % 2048, SPAN);
		if (pm_s2_zap(t->st->s2, start, end, NULL, NULL, &res))
			atomic_fetch_add(&t->st->errors, 1);
		atomic_fetch_add(&t->st->tables_freed, res.tables_freed);
		if (i % 4 == 0)
			pm_s2_age(t->st->s2, start, end);
	}
}

/* Like a vCPU's TLB fill: fetch-or ACCESSED|DIRTY into the leaf it found. */
static int touch_visit(struct pm_walk_ctx *ctx)
{
	if (pm_pte_is_leaf(ctx->old, ctx->level))
		atomic_fetch_or(ctx->ptep, PM_PTE_ACCESSED | PM_PTE_DIRTY);
	return 0;
}

static void look_round(struct stress_thread *t, int r)
{
	struct pm_walker touch = { .visit = touch_visit, .flags = PM_WALK_LEAF };
	uint64_t pte;
	int level, i;
	gfn_t gfn;

	for (i = 0; i < LOOKS_PER_ROUND; i++) {
		gfn = rand_r(&t->seed) % SPAN;
		if (i % 2)
			pm_s2_walk(t->st->s2, gfn, gfn + 1, &touch);
		if (!pm_s2_lookup(t->st->s2, gfn, &pte, &level))
			continue;
		atomic_fetch_add(&t->st->found, 1);
		if (level > 1 || !leaf_maps(pte, level, gfn))
			atomic_fetch_add(&t->st->bad_leaves, 1);
	}
}

static void *stress_thread(void *p)
{
	struct stress_thread *t = p;
	int r;

	for (r = 0; r < ROUNDS; r++) {
		pthread_barrier_wait(&t->st->round);
		t->round(t, r);
	}
	return NULL;
}

struct audit {
	uint64_t leaves[3];
	uint64_t tables;
	uint64_t bad;
};

static int audit_visit(struct pm_walk_ctx *ctx)
{
	struct audit *a = ctx->arg;

	if (ctx->visit == PM_WALK_TABLE_PRE) {
		a->tables++;
	} else if (pm_pte_is_leaf(ctx->old, ctx->level)) {
		a->leaves[ctx->level]++;
		a->bad += !leaf_maps(ctx->old, ctx->level, ctx->gfn) ||
			  ctx->gfn + pm_s2_level_pages(ctx->level) > SPAN;
	} else {
		a->bad += (ctx->old & (PM_PTE_VALID | PM_PTE_FROZEN)) != 0;
	}
	return 0;
}

static void test_concurrent_map_zap_lookup_stays_consistent(void **state)
{
	struct pm_s2 *s2 = s2_of(state);
	struct stress st = { .s2 = s2 };
	struct stress_thread t[4] = {
		{ &st, 0, 1, map_round }, { &st, HALF, 2, map_round },
		{ &st, 0, 3, zap_round }, { &st, 0, 4, look_round },
	};
	struct audit a;
	struct pm_walker w = { .visit = audit_visit, .arg = &a,
			       .flags = PM_WALK_LEAF | PM_WALK_TABLE_PRE };
	pthread_t th[4];
	int i;

	memset(&a, 0, sizeof(a));
	assert_int_equal(pthread_barrier_init(&st.round, NULL, 4), 0);
	for (i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&th[i], NULL, stress_thread, &t[i]), 0);
	for (i = 0; i < 4; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	pthread_barrier_destroy(&st.round);
	assert_int_equal(atomic_load(&st.errors), 0);
	assert_int_equal(atomic_load(&st.bad_leaves), 0);
	assert_int_equal(pm_s2_walk(s2, 0, GFN_LIMIT, &w), 0);
	if (getenv("PGTABLE_STRESS_VERBOSE"))
		print_message("found %lu, tables freed %lu, splits %lu, leaves %lu/%lu\n",
			      atomic_load(&st.found), atomic_load(&st.tables_freed),
			      (unsigned long)atomic_load(&s2->splits),
			      (unsigned long)a.leaves[0], (unsigned long)a.leaves[1]);
	assert_true(atomic_load(&st.found) > 0);
	assert_true(atomic_load(&st.tables_freed) > 0);
	assert_true(atomic_load(&s2->splits) > 0);
	assert_int_equal(a.bad, 0);
	assert_true(a.leaves[0] + a.leaves[1] > 0);
	assert_int_equal(a.tables + 1, atomic_load(&s2->tables));
	expect_counters(s2, a.leaves[0], a.leaves[1], a.leaves[2]);
	zap_ok(s2, 0, GFN_LIMIT);
	assert_int_equal(atomic_load(&s2->tables), 1);
	expect_counters(s2, 0, 0, 0);
}


static int group_setup(void **state)
{
	return pm_pool_configure(POOL_SIZE, 0);
}

/* ---- changes through a hook (the frozen-entry protocol) ---- */

/* A hook that records each change and what the entry read while it ran,
 * and fails the change of kind fail_kind with fail_err. */
struct hook_log {
	struct pm_s2 *s2;
	int n;
	struct pm_s2_change c[8];
	uint64_t seen[8];            /* the entry as a walker read it during the hook */
	int fail_kind;               /* -1: none */
	int fail_err;
};

static int log_change(void *arg, const struct pm_s2_change *c)
{
	struct hook_log *h = arg;

	assert_true(h->n < 8);
	h->c[h->n] = *c;
	h->seen[h->n] = entry_get(h->s2, c->gfn, c->level);
	h->n++;
	return (int)c->kind == h->fail_kind ? h->fail_err : 0;
}

static void test_hooked_map_announces_tables_then_leaf_while_frozen(void **state)
{
	struct pm_s2 *s2 = s2_of(state);
	struct hook_log h = { .s2 = s2, .fail_kind = -1 };
	struct pm_s2_hook hook = { .change = log_change, .arg = &h };
	gfn_t gfn = P1G + 3 * P2M + 7;

	assert_int_equal(pm_s2_map_hooked(s2, gfn, 0, leaf(gfn, PM_PTE_WRITE), &hook), 0);
	/* Three tables (under the root's, the 1G and the 2M entries), then the leaf. */
	assert_int_equal(h.n, 4);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(h.c[i].kind, PM_S2_LINK);
		assert_int_equal(h.c[i].level, PM_S2_ROOT_LEVEL - i);
		assert_int_equal(h.c[i].gfn, gfn & ~(pm_s2_level_pages(h.c[i].level) - 1));
		assert_true(pm_pte_is_table(h.c[i].new, h.c[i].level));
	}
	assert_int_equal(h.c[3].kind, PM_S2_SET);
	assert_int_equal(h.c[3].gfn, gfn);
	assert_int_equal(h.c[3].old & ~(PM_PTE_ACCESSED | PM_PTE_DIRTY), 0);
	/* While each hook ran, every other walker saw the entry frozen. */
	for (int i = 0; i < 4; i++)
		assert_int_equal(h.seen[i], PM_PTE_FROZEN);
	expect_leaf(s2, gfn, 0, PM_PTE_WRITE);
	assert_int_equal(atomic_load(&s2->tables), 4);
	expect_counters(s2, 1, 0, 0);
}

static void test_hooked_map_failure_puts_the_old_entry_back(void **state)
{
	struct pm_s2 *s2 = s2_of(state);
	struct hook_log h = { .s2 = s2, .fail_kind = PM_S2_SET, .fail_err = -EIO };
	struct pm_s2_hook hook = { .change = log_change, .arg = &h };

	assert_int_equal(pm_s2_map_hooked(s2, 5, 0, leaf(5, 0), &hook), -EIO);
	expect_none(s2, 5);
	assert_int_equal(entry_get(s2, 5, 0), 0);
	expect_counters(s2, 0, 0, 0);
	/* A failed link leaves no table either. */
	h = (struct hook_log){ .s2 = s2, .fail_kind = PM_S2_LINK, .fail_err = -EAGAIN };
	assert_int_equal(pm_s2_map_hooked(s2, P512G + 5, 0, leaf(P512G + 5, 0), &hook), -EAGAIN);
	assert_int_equal(h.n, 1);
	assert_int_equal(entry_get(s2, P512G, PM_S2_ROOT_LEVEL), 0);
	assert_int_equal(atomic_load(&s2->tables), 4);   /* the root and gfn 5's path */
}

static void test_hooked_map_publish_first_leaves_the_new_entry(void **state)
{
	struct pm_s2 *s2 = s2_of(state);
	struct hook_log h = { .s2 = s2, .fail_kind = PM_S2_SET, .fail_err = -EIO };
	struct pm_s2_hook hook = { .change = log_change, .arg = &h, .publish_first = true };

	assert_int_equal(pm_s2_map_hooked(s2, 9, 0, leaf(9, 0), &hook), -EIO);
	/* The protocol off: the walker saw the new values before each hook ran. */
	for (int i = 0; i < h.n; i++)
		assert_int_equal(h.seen[i], h.c[i].new);
	expect_leaf(s2, 9, 0, 0);
	expect_counters(s2, 1, 0, 0);
	zap_ok(s2, 0, GFN_LIMIT);
}

static void test_hooked_map_stops_at_a_frozen_entry(void **state)
{
	struct pm_s2 *s2 = s2_of(state);
	struct hook_log h = { .s2 = s2, .fail_kind = -1 };
	struct pm_s2_hook hook = { .change = log_change, .arg = &h };

	map_ok(s2, 0, 0, 0);
	entry_set(s2, P2M, 1, PM_PTE_FROZEN);
	assert_int_equal(pm_s2_map_hooked(s2, P2M + 1, 0, leaf(P2M + 1, 0), &hook), -EBUSY);
	assert_int_equal(pm_s2_map_hooked(s2, P2M, 1, leaf(P2M, 0), &hook), -EBUSY);
	assert_int_equal(h.n, 0);
	/* A valid entry in the way is -EEXIST, as for pm_s2_map. */
	assert_int_equal(pm_s2_map_hooked(s2, 0, 0, leaf(0, 0), &hook), -EEXIST);
	entry_set(s2, P2M, 1, 0);
}

/* Splits the huge leaf at `level` covering gfn through the hook. */
struct split_op {
	int level;
	const struct pm_s2_hook *hook;
	int ret;
	bool done;
};

static int split_op_visit(struct pm_walk_ctx *ctx)
{
	struct split_op *op = ctx->arg;

	if (op->done || ctx->level != op->level || !pm_pte_is_leaf(ctx->old, ctx->level))
		return 0;
	op->done = true;
	op->ret = pm_s2_split_hooked(ctx, op->hook);
	return 0;
}

static int split_hooked(struct pm_s2 *s2, gfn_t gfn, int level, const struct pm_s2_hook *hook)
{
	struct split_op op = { .level = level, .hook = hook };
	struct pm_walker w = { .visit = split_op_visit, .arg = &op, .flags = PM_WALK_LEAF };

	assert_int_equal(pm_s2_walk(s2, gfn, gfn + 1, &w), 0);
	assert_true(op.done);
	return op.ret;
}

static void test_hooked_split_replaces_the_leaf_only_if_the_hook_agrees(void **state)
{
	struct pm_s2 *s2 = s2_of(state);
	struct hook_log h = { .s2 = s2, .fail_kind = PM_S2_SPLIT, .fail_err = -EIO };
	struct pm_s2_hook hook = { .change = log_change, .arg = &h };

	map_ok(s2, P2M, 1, PM_PTE_WRITE);
	assert_int_equal(split_hooked(s2, P2M, 1, &hook), -EIO);
	assert_int_equal(h.n, 1);
	assert_int_equal(h.seen[0], PM_PTE_FROZEN);
	assert_int_equal(h.c[0].kind, PM_S2_SPLIT);
	assert_int_equal(h.c[0].gfn, P2M);
	expect_leaf(s2, P2M + 3, 1, PM_PTE_WRITE);
	expect_counters(s2, 0, 1, 0);

	h = (struct hook_log){ .s2 = s2, .fail_kind = -1 };
	assert_int_equal(split_hooked(s2, P2M, 1, &hook), 0);
	assert_int_equal(h.seen[0], PM_PTE_FROZEN);
	for (gfn_t g = P2M; g < 2 * P2M; g += 97)
		expect_leaf(s2, g, 0, PM_PTE_WRITE);
	expect_counters(s2, 512, 0, 0);
	assert_int_equal(atomic_load(&s2->splits), 1);
	zap_ok(s2, 0, GFN_LIMIT);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_map_4k_covers_exactly_one_gfn),
		T(test_map_2m_covers_exactly_512_gfns),
		T(test_map_1g_covers_exactly_a_gigabyte),
		T(test_map_unaligned_gfn_maps_the_containing_block),
		T(test_map_same_slot_is_eexist_and_keeps_old_leaf),
		T(test_map_huge_leaf_over_a_table_is_eexist),
		T(test_map_small_leaf_under_a_huge_leaf_is_eexist),
		T(test_map_over_frozen_entry_is_eexist),
		T(test_map_creates_tables_on_demand_and_counts_them),
		T(test_walk_visits_pre_children_post_in_gfn_order),
		T(test_walk_makes_only_the_requested_visits),
		T(test_walk_stops_at_the_first_error),
		T(test_walk_descends_into_a_table_the_visitor_installed),
		T(test_walk_skips_a_table_the_visitor_removed),
		T(test_zap_removes_exactly_the_range),
		T(test_zap_one_4k_page_splits_1g_down_to_4k),
		T(test_zap_across_a_huge_leaf_boundary_splits_only_that_leaf),
		T(test_zap_filter_removes_only_private_leaves),
		T(test_zap_frees_tables_it_empties),
		T(test_zap_keeps_tables_partly_outside_the_range),
		T(test_zap_leaves_frozen_entries_alone),
		T(test_out_of_frames_split_and_map_fail_zap_takes_the_whole_leaf),
		T(test_split_keeps_memory_and_bits),
		T(test_split_without_a_huge_leaf_is_enoent),
		T(test_age_clears_accessed_and_counts_leaves_that_had_it),
		T(test_count_counts_leaves_overlapping_the_range),
		T(test_concurrent_map_zap_lookup_stays_consistent),
		T(test_hooked_map_announces_tables_then_leaf_while_frozen),
		T(test_hooked_map_failure_puts_the_old_entry_back),
		T(test_hooked_map_publish_first_leaves_the_new_entry),
		T(test_hooked_map_stops_at_a_frozen_entry),
		T(test_hooked_split_replaces_the_leaf_only_if_the_hook_agrees),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * Tests of KVM_SET_MEMORY_ATTRIBUTES (src/kvm/vm.c over src/memslot/attr.c
 * and the invalidation protocol): the validation matrix of each VM type,
 * the stored attributes at exact boundaries, which invalidations a change
 * causes (none for a no-op; one over the requested range, zapping the kind
 * of mapping the range leaves), a 1 TiB conversion in one call, 2M/1G
 * "mixed" tracking after partial conversions, and a fault-side reader racing
 * with conversions under the snapshot / retry protocol.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "lib/testutil.h"
#include "lib/zaplog.h"

#include <pthread.h>
#include <time.h>

#include <privmem/privmem.h>
#include "kvm/vm.h"
#include "lib/rcu.h"
#include "memslot/attr.h"
#include "memslot/invalidate.h"
#include "uapi/handle.h"

#define PAGE      4096ULL
#define PRIVATE   KVM_MEMORY_ATTRIBUTE_PRIVATE
#define GFNS_2M   (1ULL << 9)
#define GFNS_1G   (1ULL << 18)
#define TOP       (1ULL << 52)              /* gfns in the 64-bit GPA space */


/* ---- fixture: a VM with a zap consumer that logs invalidations ---------- */

static int setup_default(void **state) { return pm_fx_setup(state, KVM_X86_DEFAULT_VM); }
static int setup_sw(void **state) { return pm_fx_setup(state, KVM_X86_SW_PROTECTED_VM); }

static int teardown(void **state)
{
	atomic_store(&pm_inval_test_disable_retry, false);
	return pm_fx_teardown(state);
}

static long fx_nr_zaps(struct fx *fx)
{
	return (long)pm_zaplog_count(&fx->log);
}

static void assert_zap(struct fx *fx, long i, gfn_t start, gfn_t end, unsigned int filter)
{
	assert_true(i < PM_ZAPLOG_MAX);
	assert_int_equal(fx->log.ev[i].start, start);
	assert_int_equal(fx->log.ev[i].end, end);
	assert_int_equal(fx->log.ev[i].filter, filter);
	assert_int_equal(fx->log.ev[i].cause, PM_INVAL_CAUSE_ATTR);
}

/* ---- helpers ------------------------------------------------------------ */

static int set_attrs(int vmh, uint64_t address, uint64_t size, uint64_t attrs, uint64_t flags)
{
	struct kvm_memory_attributes a = {
		.address = address, .size = size, .attributes = attrs, .flags = flags,
	};

	return pm_kvm_ioctl(vmh, KVM_SET_MEMORY_ATTRIBUTES, &a);
}

/* Sets gfns [start, end) to attrs through the ioctl. */
static void set_gfns(struct fx *fx, gfn_t start, gfn_t end, uint64_t attrs)
{
	assert_int_equal(set_attrs(fx->vmh, start * PAGE, (end - start) * PAGE, attrs, 0), 0);
}

static uint64_t attr_of(struct fx *fx, gfn_t gfn)
{
	return pm_attr_get(&fx->vm->attrs, gfn);
}

/* [start, end) has attrs; the gfn before and the gfn after have `outside`. */
static void assert_gfns(struct fx *fx, gfn_t start, gfn_t end, uint64_t attrs, uint64_t outside)
{
	if (start > 0)
		assert_int_equal(attr_of(fx, start - 1), outside);
	assert_int_equal(attr_of(fx, start), attrs);
	assert_int_equal(attr_of(fx, end - 1), attrs);
	assert_true(pm_attr_range_is(&fx->vm->attrs, start, end, attrs));
	if (end < TOP)
		assert_int_equal(attr_of(fx, end), outside);
}

/* ---- validation --------------------------------------------------------- */

struct attr_case {
	const char *what;
	uint64_t address, size, attrs, flags;
	int err_default, err_sw;    /* errno expected on each VM type, 0: success */
};

static const struct attr_case attr_cases[] = {
	{ "private",               0, PAGE, PRIVATE, 0,     EINVAL, 0 },
	{ "shared",                5 * PAGE, PAGE, 0, 0,    0, 0 },
	{ "flags, private",        0, PAGE, PRIVATE, 1,     EINVAL, EINVAL },
	{ "flags, shared",         0, PAGE, 0, 1,           EINVAL, EINVAL },
	{ "high flag",             0, PAGE, 0, 1ULL << 63,  EINVAL, EINVAL },
	{ "unknown bit 0",         0, PAGE, 1, 0,           EINVAL, EINVAL },
	{ "private and bit 0",     0, PAGE, PRIVATE | 1, 0, EINVAL, EINVAL },
	{ "bit 63",                0, PAGE, 1ULL << 63, 0,  EINVAL, EINVAL },
	{ "size 0, shared",        0, 0, 0, 0,              EINVAL, EINVAL },
	{ "size 0, private",       PAGE, 0, PRIVATE, 0,     EINVAL, EINVAL },
	{ "overflow",              0ULL - PAGE, 2 * PAGE, 0, 0, EINVAL, EINVAL },
	{ "end wraps to 0",        0ULL - PAGE, PAGE, 0, 0, EINVAL, EINVAL },
	{ "huge overflow",         PAGE, 0ULL - PAGE, 0, 0, EINVAL, EINVAL },
	{ "unaligned address",     0x800, PAGE, 0, 0,       EINVAL, EINVAL },
	{ "unaligned address, private", PAGE + 1, PAGE, PRIVATE, 0, EINVAL, EINVAL },
	{ "unaligned size",        0, PAGE + 1, 0, 0,       EINVAL, EINVAL },
	{ "half-page size",        0, PAGE / 2, PRIVATE, 0, EINVAL, EINVAL },
	{ "last page below 2^64",  0ULL - 2 * PAGE, PAGE, PRIVATE, 0, EINVAL, 0 },
	{ "last page, shared",     0ULL - 2 * PAGE, PAGE, 0, 0, 0, 0 },
};

static void run_attr_cases(struct fx *fx, bool sw)
{
	for (size_t i = 0; i < PM_ARRAY_SIZE(attr_cases); i++) {
		const struct attr_case *c = &attr_cases[i];
		int err = sw ? c->err_sw : c->err_default;
		uint64_t seq = pm_inval_snapshot(fx->vm);
		int r;

		print_message("%s\n", c->what);
		errno = 0;
		r = set_attrs(fx->vmh, c->address, c->size, c->attrs, c->flags);
		if (err) {
			assert_int_equal(r, -1);
			assert_int_equal(errno, err);
			/* A refused request invalidates nothing. */
			assert_int_equal(pm_inval_snapshot(fx->vm), seq);
		} else {
			assert_int_equal(r, 0);
		}
	}
}

static void test_validation_on_the_default_vm(void **state)
{
	struct fx *fx = *state;

	assert_int_equal(pm_kvm_ioctl(fx->vmh, KVM_CHECK_EXTENSION, KVM_CAP_MEMORY_ATTRIBUTES), 0);
	run_attr_cases(fx, false);
	/* Nothing ever became private, nothing was invalidated. */
	assert_true(pm_attr_range_is(&fx->vm->attrs, 0, TOP, 0));
	assert_int_equal(fx_nr_zaps(fx), 0);
}

static void test_validation_on_the_sw_protected_vm(void **state)
{
	struct fx *fx = *state;

	assert_int_equal(pm_kvm_ioctl(fx->vmh, KVM_CHECK_EXTENSION, KVM_CAP_MEMORY_ATTRIBUTES),
			 PRIVATE);
	run_attr_cases(fx, true);
	/* The accepted conversions, and only those, are stored: gfn 0 was
	 * made private, the last-but-one gfn private then shared again. */
	assert_gfns(fx, 0, 1, PRIVATE, 0);
	assert_int_equal(attr_of(fx, TOP - 2), 0);
	assert_true(pm_attr_range_is(&fx->vm->attrs, 1, TOP, 0));
}

static void test_null_argument_is_efault(void **state)
{
	struct fx *fx = *state;

	assert_fails(pm_kvm_ioctl(fx->vmh, KVM_SET_MEMORY_ATTRIBUTES, NULL), EFAULT);
}

/* ---- stored values ------------------------------------------------------ */

static void test_set_and_get_at_exact_boundaries(void **state)
{
	struct fx *fx = *state;
	const gfn_t a = 0x12345;

	set_gfns(fx, a, a + 5, PRIVATE);
	assert_gfns(fx, a, a + 5, PRIVATE, 0);
	/* A shared hole in the middle. */
	set_gfns(fx, a + 2, a + 3, 0);
	assert_gfns(fx, a, a + 2, PRIVATE, 0);
	assert_int_equal(attr_of(fx, a + 2), 0);
	assert_gfns(fx, a + 3, a + 5, PRIVATE, 0);
	/* Across a 2M and a 1G boundary. */
	set_gfns(fx, 3 * GFNS_1G - GFNS_2M - 1, 3 * GFNS_1G + 1, PRIVATE);
	assert_gfns(fx, 3 * GFNS_1G - GFNS_2M - 1, 3 * GFNS_1G + 1, PRIVATE, 0);
	/* The topmost gfn a request can reach. */
	set_gfns(fx, TOP - 2, TOP - 1, PRIVATE);
	assert_gfns(fx, TOP - 2, TOP - 1, PRIVATE, 0);
	/* Gfn 0. */
	set_gfns(fx, 0, 1, PRIVATE);
	assert_gfns(fx, 0, 1, PRIVATE, 0);
}

static void test_one_tib_private_in_one_call_stays_small(void **state)
{
	struct fx *fx = *state;
	const gfn_t tib = 1ULL << 28;

	assert_int_equal(set_attrs(fx->vmh, 0, 1ULL << 40, PRIVATE, 0), 0);
	assert_gfns(fx, 0, tib, PRIVATE, 0);
	assert_true(pm_attr_memory(&fx->vm->attrs) < 64 * 1024);
	assert_int_equal(fx_nr_zaps(fx), 1);
	assert_zap(fx, 0, 0, tib, PM_INVAL_SHARED);
	/* Unaligned at both ends: still a handful of nodes. */
	assert_int_equal(set_attrs(fx->vmh, (tib - 3) * PAGE, 1ULL << 40, PRIVATE, 0), 0);
	assert_gfns(fx, 0, 2 * tib - 3, PRIVATE, 0);
	assert_int_equal(set_attrs(fx->vmh, 7 * PAGE, 1ULL << 40, 0, 0), 0);
	assert_gfns(fx, 7, tib + 7, 0, PRIVATE);
	assert_true(pm_attr_memory(&fx->vm->attrs) < 64 * 1024);
	/* Back to all shared. */
	assert_int_equal(set_attrs(fx->vmh, 0, 4ULL << 40, 0, 0), 0);
	assert_true(pm_attr_range_is(&fx->vm->attrs, 0, TOP, 0));
	assert_true(pm_attr_memory(&fx->vm->attrs) < 64 * 1024);
}

/* ---- invalidations ------------------------------------------------------ */

static void test_conversions_invalidate_once_over_the_range(void **state)
{
	struct fx *fx = *state;
	uint64_t seq0 = pm_inval_snapshot(fx->vm);
	uint64_t attr0 = pm_inval_count(&fx->vm->inval, PM_INVAL_CAUSE_ATTR);

	/* Going private zaps shared mappings. */
	set_gfns(fx, 16, 24, PRIVATE);
	assert_int_equal(fx_nr_zaps(fx), 1);
	assert_zap(fx, 0, 16, 24, PM_INVAL_SHARED);

	/* What the range already has: no invalidation. */
	set_gfns(fx, 16, 24, PRIVATE);
	set_gfns(fx, 18, 20, PRIVATE);
	set_gfns(fx, 100, 200, 0);
	assert_int_equal(fx_nr_zaps(fx), 1);

	/* Partly private already: one invalidation over the whole request. */
	set_gfns(fx, 12, 20, PRIVATE);
	assert_int_equal(fx_nr_zaps(fx), 2);
	assert_zap(fx, 1, 12, 20, PM_INVAL_SHARED);
	assert_gfns(fx, 12, 24, PRIVATE, 0);

	/* Going shared zaps private mappings. */
	set_gfns(fx, 14, 18, 0);
	assert_int_equal(fx_nr_zaps(fx), 3);
	assert_zap(fx, 2, 14, 18, PM_INVAL_PRIVATE);
	/* Partly shared already: the whole request again. */
	set_gfns(fx, 10, 30, 0);
	assert_int_equal(fx_nr_zaps(fx), 4);
	assert_zap(fx, 3, 10, 30, PM_INVAL_PRIVATE);
	assert_true(pm_attr_range_is(&fx->vm->attrs, 0, TOP, 0));

	/* Each invalidation ended: one seq step each, none in flight. */
	assert_int_equal(pm_inval_snapshot(fx->vm), seq0 + 4);
	assert_int_equal(pm_inval_count(&fx->vm->inval, PM_INVAL_CAUSE_ATTR), attr0 + 4);
	assert_int_equal(pm_inval_running(&fx->vm->inval), 0);
}

static void test_shared_on_the_default_vm_never_invalidates(void **state)
{
	struct fx *fx = *state;
	uint64_t seq0 = pm_inval_snapshot(fx->vm);

	set_gfns(fx, 0, 1ULL << 20, 0);
	set_gfns(fx, TOP - 2, TOP - 1, 0);
	assert_int_equal(fx_nr_zaps(fx), 0);
	assert_int_equal(pm_inval_snapshot(fx->vm), seq0);
}

/* ---- huge-page mixing --------------------------------------------------- */

static void assert_mixed(struct fx *fx, gfn_t gfn, int level, bool mixed)
{
	assert_int_equal(pm_attr_mixed(&fx->vm->attrs, gfn, level), mixed);
}

static void test_mixed_2m_and_1g_blocks_after_partial_conversions(void **state)
{
	struct fx *fx = *state;
	const gfn_t b = 5 * GFNS_1G;              /* a 1G block */
	const gfn_t blk = b + 3 * GFNS_2M;        /* a 2M block inside it */

	assert_mixed(fx, b, PM_ATTR_LEVEL_1G, false);
	/* One private page makes its 2M and 1G blocks mixed, nothing else. */
	set_gfns(fx, blk + 7, blk + 8, PRIVATE);
	assert_mixed(fx, blk, PM_ATTR_LEVEL_2M, true);
	assert_mixed(fx, blk + GFNS_2M - 1, PM_ATTR_LEVEL_2M, true);
	assert_mixed(fx, blk - 1, PM_ATTR_LEVEL_2M, false);
	assert_mixed(fx, blk + GFNS_2M, PM_ATTR_LEVEL_2M, false);
	assert_mixed(fx, b, PM_ATTR_LEVEL_1G, true);
	assert_mixed(fx, b + GFNS_1G - 1, PM_ATTR_LEVEL_1G, true);
	assert_mixed(fx, b - 1, PM_ATTR_LEVEL_1G, false);
	assert_mixed(fx, b + GFNS_1G, PM_ATTR_LEVEL_1G, false);

	/* The whole 2M block private: it is uniform, its 1G block is not. */
	set_gfns(fx, blk, blk + GFNS_2M, PRIVATE);
	assert_mixed(fx, blk, PM_ATTR_LEVEL_2M, false);
	assert_mixed(fx, b, PM_ATTR_LEVEL_1G, true);

	/* The whole 1G block private: uniform at both levels. */
	set_gfns(fx, b, b + GFNS_1G, PRIVATE);
	assert_mixed(fx, b, PM_ATTR_LEVEL_1G, false);
	assert_mixed(fx, blk, PM_ATTR_LEVEL_2M, false);
	assert_mixed(fx, b + GFNS_1G - 1, PM_ATTR_LEVEL_2M, false);

	/* Its last page shared again: the last 2M block and the 1G block mix. */
	set_gfns(fx, b + GFNS_1G - 1, b + GFNS_1G, 0);
	assert_mixed(fx, b + GFNS_1G - 1, PM_ATTR_LEVEL_2M, true);
	assert_mixed(fx, b + GFNS_1G - GFNS_2M - 1, PM_ATTR_LEVEL_2M, false);
	assert_mixed(fx, b, PM_ATTR_LEVEL_2M, false);
	assert_mixed(fx, b, PM_ATTR_LEVEL_1G, true);

	/* All shared again: nothing mixed. */
	set_gfns(fx, b, b + GFNS_1G, 0);
	assert_mixed(fx, b, PM_ATTR_LEVEL_1G, false);
	assert_mixed(fx, b + GFNS_1G - 1, PM_ATTR_LEVEL_2M, false);
	assert_mixed(fx, blk, PM_ATTR_LEVEL_2M, false);
}

static void test_mixed_blocks_around_a_1g_boundary(void **state)
{
	struct fx *fx = *state;
	const gfn_t edge = 9 * GFNS_1G;

	/* [edge - 2M - 5, edge + 3): ends in two 1G blocks, fully covers the
	 * last 2M block below the edge. */
	set_gfns(fx, edge - GFNS_2M - 5, edge + 3, PRIVATE);
	assert_mixed(fx, edge - 1, PM_ATTR_LEVEL_1G, true);
	assert_mixed(fx, edge, PM_ATTR_LEVEL_1G, true);
	assert_mixed(fx, edge - 1, PM_ATTR_LEVEL_2M, false);
	assert_mixed(fx, edge - GFNS_2M - 1, PM_ATTR_LEVEL_2M, true);
	assert_mixed(fx, edge, PM_ATTR_LEVEL_2M, true);
	assert_mixed(fx, edge + GFNS_2M, PM_ATTR_LEVEL_2M, false);
	assert_gfns(fx, edge - GFNS_2M - 5, edge + 3, PRIVATE, 0);
}

/* ---- faults racing with conversions ------------------------------------- */

/*
 * A writer converts a range containing gfn RACE_GFN, alternately private and
 * shared, through the ioctl; each conversion changes RACE_GFN, so none is a
 * no-op and each makes exactly one invalidation (begin ... end, seq + 1).
 * It is the only source of invalidations in the VM, and the first one makes
 * the gfn private, so after k ended invalidations the gfn's value is
 * value(k) = k odd ? PRIVATE : 0. After each ioctl returns the writer bumps
 * `completed`.
 *
 * Readers act as faults: snap = snapshot; val = attribute; take mmu_lock
 * for reading; retry = pm_inval_retry(gfn, snap). When a fault would NOT
 * retry, it would install a mapping of kind val, so val must be what the
 * gfn is and stays while the lock is held. With the lock held and retry false:
 *  - seq == snap and no invalidation covering the gfn is active. The next
 *    invalidation, number snap + 1, has not touched the store: had it
 *    published its range before we took mmu_lock we would see it, and
 *    after, it waits for us to leave before it zaps and stores; invalidation
 *    snap ended before the snapshot (we read its seq + 1), and its store
 *    happened before its end. Hence (1) val == value(snap - seq0), and
 *    (2) re-reading the attribute now gives val again.
 *  - `completed` is bumped after an invalidation ended and before the next
 *    begins: invalidation snap + 1 has not ended, so completed <= snap; and
 *    invalidation snap - 1 was counted before invalidation snap began, whose
 *    end we observed: (3) snap - 1 <= completed <= snap (relative to seq0).
 *    (3) says that no invalidation ended between the snapshot and the check.
 * A fault path that skipped the retry (pm_inval_test_disable_retry) breaks
 * (1) as soon as a conversion lands between snapshot and read; the last test
 * shows that these checks do catch it.
 */
#define RACE_GFN      0x23456ULL
#define RACE_FLIPS    20000
#define RACE_READERS  2

struct race {
	struct pm_vm *vm;
	int vmh;
	uint64_t seq0;
	long flips;                        /* how many conversions to make */
	atomic_bool stop;                  /* readers stop; the writer too */
	atomic_uint_fast64_t completed;    /* conversions returned by the ioctl */
	atomic_long writer_errors;
	atomic_long checks, retries, violations;
};

static uint64_t race_value(uint64_t k)
{
	return (k & 1) ? PRIVATE : 0;
}

static void *race_writer(void *p)
{
	struct race *rc = p;

	for (long i = 0; i < rc->flips && !atomic_load(&rc->stop); i++) {
		/* Ranges of varying extent, all containing RACE_GFN. */
		gfn_t start = RACE_GFN - (uint64_t)(i % 7), end = RACE_GFN + 1 + (uint64_t)(i % 5);

		if (set_attrs(rc->vmh, start * PAGE, (end - start) * PAGE, race_value((uint64_t)i + 1), 0))
			atomic_fetch_add(&rc->writer_errors, 1);
		atomic_fetch_add_explicit(&rc->completed, 1, memory_order_release);
	}
	return NULL;
}

/* One fault-like check; returns the number of broken invariants. */
static int race_check_once(struct race *rc)
{
	struct pm_vm *vm = rc->vm;
	uint64_t snap, val, k, done;
	unsigned int slot;
	int bad = 0;

	snap = pm_inval_snapshot(vm);
	val = pm_attr_get(&vm->attrs, RACE_GFN);
	slot = pm_mmu_read_lock(vm);
	if (pm_inval_retry(vm, RACE_GFN, RACE_GFN + 1, snap)) {
		atomic_fetch_add_explicit(&rc->retries, 1, memory_order_relaxed);
	} else {
		k = snap - rc->seq0;
		done = atomic_load_explicit(&rc->completed, memory_order_acquire);
		bad += val != race_value(k);                             /* (1) */
		bad += pm_attr_get(&vm->attrs, RACE_GFN) != val;         /* (2) */
		bad += !(done <= k && k <= done + 1);                    /* (3) */
		atomic_fetch_add_explicit(&rc->checks, 1, memory_order_relaxed);
	}
	pm_mmu_read_unlock(vm, slot);
	return bad;
}

static void *race_reader(void *p)
{
	struct race *rc = p;
	long bad = 0;

	while (!atomic_load(&rc->stop))
		bad += race_check_once(rc);
	atomic_fetch_add(&rc->violations, bad);
	return NULL;
}

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs the writer and the readers until the writer is done. */
static void race_run(struct race *rc)
{
	pthread_t w, r[RACE_READERS];

	for (int i = 0; i < RACE_READERS; i++)
		assert_int_equal(pthread_create(&r[i], NULL, race_reader, rc), 0);
	assert_int_equal(pthread_create(&w, NULL, race_writer, rc), 0);
	pthread_join(w, NULL);
	atomic_store(&rc->stop, true);
	for (int i = 0; i < RACE_READERS; i++)
		pthread_join(r[i], NULL);
}

static void test_fault_that_does_not_retry_saw_the_current_attribute(void **state)
{
	struct fx *fx = *state;
	struct race *rc = calloc(1, sizeof(*rc));

	assert_non_null(rc);
	rc->vm = fx->vm;
	rc->vmh = fx->vmh;
	rc->seq0 = pm_inval_snapshot(fx->vm);
	rc->flips = RACE_FLIPS;
	race_run(rc);

	print_message("%ld checks, %ld retries\n", atomic_load(&rc->checks),
		      atomic_load(&rc->retries));
	assert_int_equal(atomic_load(&rc->writer_errors), 0);
	assert_int_equal(atomic_load(&rc->violations), 0);
	assert_true(atomic_load(&rc->checks) > 0);
	/* Every conversion was one invalidation; the final value is known. */
	assert_int_equal(pm_inval_snapshot(fx->vm) - rc->seq0, RACE_FLIPS);
	assert_int_equal(attr_of(fx, RACE_GFN), race_value(RACE_FLIPS));
	assert_int_equal(fx_nr_zaps(fx), RACE_FLIPS);
	free(rc);
}

/* Variant of race_reader for the negative test: counts a violation as soon
 * as it is seen, so the main thread can stop early. */
static void *race_reader_eager(void *p)
{
	struct race *rc = p;

	while (!atomic_load(&rc->stop))
		if (race_check_once(rc))
			atomic_fetch_add(&rc->violations, 1);
	return NULL;
}

static void test_race_checks_catch_a_fault_path_without_retry(void **state)
{
	struct fx *fx = *state;
	struct race *rc = calloc(1, sizeof(*rc));
	pthread_t w, r[RACE_READERS];
	double t0 = now_seconds();

	assert_non_null(rc);
	rc->vm = fx->vm;
	rc->vmh = fx->vmh;
	rc->seq0 = pm_inval_snapshot(fx->vm);
	rc->flips = 1L << 40;      /* until stopped */
	atomic_store(&pm_inval_test_disable_retry, true);
	for (int i = 0; i < RACE_READERS; i++)
		assert_int_equal(pthread_create(&r[i], NULL, race_reader_eager, rc), 0);
	assert_int_equal(pthread_create(&w, NULL, race_writer, rc), 0);
	while (atomic_load(&rc->violations) == 0 && now_seconds() - t0 < 20) {
		struct timespec ms = { 0, 1000000 };

		nanosleep(&ms, NULL);
	}
	atomic_store(&rc->stop, true);
	pthread_join(w, NULL);
	for (int i = 0; i < RACE_READERS; i++)
		pthread_join(r[i], NULL);
	atomic_store(&pm_inval_test_disable_retry, false);

	print_message("violation seen after %.3f s, %lu conversions\n", now_seconds() - t0,
		      (unsigned long)atomic_load(&rc->completed));
	assert_true(atomic_load(&rc->violations) > 0);
	free(rc);
}

int main(void)
{
#define D(f) cmocka_unit_test_setup_teardown(f, setup_default, teardown)
#define S(f) cmocka_unit_test_setup_teardown(f, setup_sw, teardown)
	const struct CMUnitTest tests[] = {
		D(test_validation_on_the_default_vm),
		S(test_validation_on_the_sw_protected_vm),
		S(test_null_argument_is_efault),
		S(test_set_and_get_at_exact_boundaries),
		S(test_one_tib_private_in_one_call_stays_small),
		S(test_conversions_invalidate_once_over_the_range),
		D(test_shared_on_the_default_vm_never_invalidates),
		S(test_mixed_2m_and_1g_blocks_after_partial_conversions),
		S(test_mixed_blocks_around_a_1g_boundary),
		S(test_fault_that_does_not_retry_saw_the_current_attribute),
		S(test_race_checks_catch_a_fault_path_without_retry),
	};
#undef D
#undef S
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * The invalidation protocol: a fault racing with a punch hole, an attribute
 * change, a memslot deletion or a guest_memfd release never leaves a stale
 * mapping behind.
 *
 * A fake MMU stands in for the stage-2 tables: one atomic word per gfn,
 * holding the frame and kind (shared/private) a fault installed, cleared by
 * a zap consumer registered with the protocol. The fault is the reference's
 * fault path cut in two halves, so a test can run an invalidation between
 * them:
 *   fault_prepare: snapshot the sequence, read the attribute, get the frame;
 *   fault_commit:  under the MMU lock, retry if the protocol says so, else
 *                  install.
 * The deterministic tests run every interleaving of interest with the
 * protocol on (the fault must retry or its mapping must be zapped) and off
 * (the test-only switch pm_inval_test_disable_retry: the stale mapping must
 * appear, which shows the check can fail). Others check the parts of the
 * argument in invalidate.h one by one: an invalidation waits for a fault
 * inside mmu_lock before it zaps (case (a)); the sequence counts the ends
 * of invalidations on every range slot, including a slot first used after
 * the fault's snapshot, and of invalidations that found no free slot. The stress test runs faults,
 * punches and conversions concurrently and checks, at quiescent points,
 * that every installed mapping matches the current attribute and frame.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <linux/falloc.h>
#include <privmem/privmem.h>
#include "lib/testutil.h"
#include "gmem/gmem_internal.h"
#include "kvm/vm.h"
#include "lib/rcu.h"
#include "memslot/memslot.h"
#include "uapi/handle.h"

#define NPAGES      4096u             /* 16 MiB of guest memory at gpa 0 */
#define KIND_SHARED 1u
#define KIND_PRIV   2u
#define SHARED_PFN  0xfffffffULL      /* the fake "host mapping" frame */

struct env {
	int kvm, vm, gmem;
	struct pm_vm *pvm;
	struct pm_gmem *g;
	void *shared_mem;
	atomic_uint zaps;                 /* calls of fake_zap */
	_Atomic uint64_t map[NPAGES];     /* the fake stage-2: pfn << 2 | kind */
};

static struct env *E;

static void fake_zap(struct pm_vm *vm, gfn_t start, gfn_t end, unsigned int filter,
		     enum pm_inval_cause cause, void *ctx)
{
	struct env *e = ctx;

	atomic_fetch_add(&e->zaps, 1);
	for (gfn_t gfn = start; gfn < end && gfn < NPAGES; gfn++) {
		uint64_t m = atomic_load(&e->map[gfn]);
		unsigned int kind = m & 3;

		if ((kind == KIND_SHARED && (filter & PM_INVAL_SHARED)) ||
		    (kind == KIND_PRIV && (filter & PM_INVAL_PRIVATE)))
			atomic_compare_exchange_strong(&e->map[gfn], &m, 0);
	}
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	struct kvm_create_guest_memfd cg = { .size = NPAGES * 4096ULL, .flags = PM_GUEST_MEMFD_FLAG_NO_1G };
	struct kvm_userspace_memory_region2 r = { 0 };
	struct pm_inval_consumer c = { .zap = fake_zap };
	struct pm_file f;

	e->kvm = pm_kvm_open();
	e->vm = pm_kvm_ioctl(e->kvm, KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM);
	assert_true(e->vm >= 0);
	pm_test_gmem_page_size_flags(e->vm);
	assert_int_equal(pm_handle_get(e->vm, &f), 0);
	e->pvm = f.obj;                   /* our reference, dropped in teardown */
	c.ctx = e;
	pm_inval_add_consumer(&e->pvm->inval, &c);
	e->gmem = pm_kvm_ioctl(e->vm, KVM_CREATE_GUEST_MEMFD, &cg);
	assert_true(e->gmem >= 0);
	assert_int_equal(pm_handle_get(e->gmem, &f), 0);
	e->g = f.obj;
	pm_gmem_put(e->g);                /* the handle keeps it alive */
	e->shared_mem = aligned_alloc(4096, NPAGES * 4096ULL);
	r.slot = 0;
	r.flags = KVM_MEM_GUEST_MEMFD;
	r.guest_phys_addr = 0;
	r.memory_size = NPAGES * 4096ULL;
	r.userspace_addr = (uintptr_t)e->shared_mem;
	r.guest_memfd = (uint32_t)e->gmem;
	assert_int_equal(pm_kvm_ioctl(e->vm, KVM_SET_USER_MEMORY_REGION2, &r), 0);
	atomic_store(&pm_inval_test_disable_retry, false);
	E = e;
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	struct pm_pool_stats st;

	atomic_store(&pm_inval_test_disable_retry, false);
	if (e->gmem >= 0)
		pm_kvm_close(e->gmem);
	pm_kvm_close(e->vm);
	pm_vm_put(e->pvm);
	pm_kvm_ioctl(e->kvm, PM_KVM_GET_POOL_STATS, &st);
	pm_kvm_close(e->kvm);
	free(e->shared_mem);
	free(e);
	assert_int_equal(st.in_use, 0);   /* nothing leaked */
	return 0;
}

/* ---- the fault, in two halves ---- */

struct fault {
	gfn_t gfn;
	uint64_t snap;
	uint64_t entry;   /* what to install; 0 = nothing to install (error) */
};

static void fault_prepare(struct env *e, gfn_t gfn, struct fault *f)
{
	f->gfn = gfn;
	f->snap = pm_inval_snapshot(e->pvm);
	f->entry = 0;
	if (pm_vm_gfn_is_private(e->pvm, gfn)) {
		struct pm_memslot *s;
		struct pm_gmem *g = NULL;
		pm_pfn_t pfn;
		unsigned int order;

		pm_rcu_read_lock();
		s = pm_memslot_lookup(e->pvm, gfn);
		if (s) {
			g = pm_rcu_dereference(s->gmem);
			if (g && !pm_gmem_tryget(g))
				g = NULL;
		}
		if (g && pm_gmem_get_pfn(g, s->gmem_pgoff + (gfn - s->base_gfn), gfn, &pfn, &order) == 0)
			f->entry = pfn << 2 | KIND_PRIV;
		pm_rcu_read_unlock();
		if (g)
			pm_gmem_put(g);
	} else {
		f->entry = SHARED_PFN << 2 | KIND_SHARED;
	}
}

/* Returns true if the mapping was installed. */
static bool fault_commit(struct env *e, struct fault *f)
{
	bool installed = false;
	unsigned int slot = pm_mmu_read_lock(e->pvm);

	if (f->entry && !pm_inval_retry(e->pvm, f->gfn, f->gfn + 1, f->snap)) {
		atomic_store(&e->map[f->gfn], f->entry);
		installed = true;
	}
	pm_mmu_read_unlock(e->pvm, slot);
	return installed;
}

/* Is the mapping of gfn (if any) consistent with the VM's current state? */
static bool mapping_is_current(struct env *e, gfn_t gfn)
{
	uint64_t m = atomic_load(&e->map[gfn]);
	bool priv = pm_vm_gfn_is_private(e->pvm, gfn);
	pm_pfn_t cur;

	if (!m)
		return true;
	if ((m & 3) != (priv ? KIND_PRIV : KIND_SHARED))
		return false;
	if (!priv)
		return true;
	cur = pm_gmem_peek_pfn(e->g, gfn);
	return cur == (m >> 2);
}

static void set_attr(struct env *e, gfn_t start, gfn_t n, bool priv)
{
	struct kvm_memory_attributes a = {
		.address = start << 12, .size = n << 12,
		.attributes = priv ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0,
	};

	assert_int_equal(pm_kvm_ioctl(e->vm, KVM_SET_MEMORY_ATTRIBUTES, &a), 0);
}

static void punch(struct env *e, gfn_t start, gfn_t n)
{
	assert_int_equal(pm_kvm_fallocate(e->gmem, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					  (off_t)(start << 12), (off_t)(n << 12)), 0);
}

/* ---- deterministic interleavings ---- */

/* fault_prepare | punch | fault_commit: the frame the fault got is freed. */
static void run_fault_across_punch(struct env *e, bool protocol_on)
{
	struct fault f;

	set_attr(e, 0, NPAGES, true);
	atomic_store(&pm_inval_test_disable_retry, !protocol_on);
	fault_prepare(e, 7, &f);
	assert_int_not_equal(f.entry, 0);
	punch(e, 0, 16);
	fault_commit(e, &f);
	atomic_store(&pm_inval_test_disable_retry, false);
	assert_int_equal(mapping_is_current(e, 7), protocol_on);
}

static void test_fault_retries_across_punch_hole(void **state)
{
	run_fault_across_punch(*state, true);
}

static void test_without_protocol_punch_leaves_stale_private_mapping(void **state)
{
	run_fault_across_punch(*state, false);
}

/* fault_prepare (private) | convert to shared | fault_commit */
static void run_fault_across_conversion(struct env *e, bool protocol_on)
{
	struct fault f;

	set_attr(e, 0, NPAGES, true);
	atomic_store(&pm_inval_test_disable_retry, !protocol_on);
	fault_prepare(e, 100, &f);
	set_attr(e, 64, 64, false);
	fault_commit(e, &f);
	atomic_store(&pm_inval_test_disable_retry, false);
	assert_int_equal(mapping_is_current(e, 100), protocol_on);
}

static void test_fault_retries_across_attribute_change(void **state)
{
	run_fault_across_conversion(*state, true);
}

static void test_without_protocol_conversion_leaves_wrong_kind_mapped(void **state)
{
	run_fault_across_conversion(*state, false);
}

/* A fault that commits before the invalidation begins is zapped by it. */
static void test_fault_before_punch_is_zapped(void **state)
{
	struct env *e = *state;
	struct fault f;

	set_attr(e, 0, NPAGES, true);
	fault_prepare(e, 9, &f);
	assert_true(fault_commit(e, &f));
	assert_int_not_equal(atomic_load(&e->map[9]), 0);
	punch(e, 8, 2);
	assert_int_equal(atomic_load(&e->map[9]), 0);
}

/* A fault that starts while an invalidation is in progress retries, even
 * though the sequence number has not moved yet. */
static void test_fault_during_invalidation_retries(void **state)
{
	struct env *e = *state;
	struct pm_inval_ticket t;
	struct fault f;

	set_attr(e, 0, NPAGES, true);
	pm_inval_begin(e->pvm, 200, 300, PM_INVAL_ALL, PM_INVAL_CAUSE_ATTR, &t);
	fault_prepare(e, 250, &f);
	assert_false(fault_commit(e, &f));
	/* A fault on a disjoint range is not held up. */
	fault_prepare(e, 10, &f);
	assert_true(fault_commit(e, &f));
	pm_inval_end(e->pvm, &t);
}

/* fault_prepare | delete the memslot | fault_commit */
static void test_fault_retries_across_memslot_deletion(void **state)
{
	struct env *e = *state;
	struct kvm_userspace_memory_region2 r = { .slot = 0, .flags = KVM_MEM_GUEST_MEMFD,
						  .guest_memfd = (uint32_t)e->gmem };
	struct fault f;

	set_attr(e, 0, NPAGES, true);
	fault_prepare(e, 33, &f);
	assert_int_not_equal(f.entry, 0);
	assert_int_equal(pm_kvm_ioctl(e->vm, KVM_SET_USER_MEMORY_REGION2, &r), 0);
	assert_false(fault_commit(e, &f));
	/* After the deletion a fault finds no slot: nothing to install. */
	fault_prepare(e, 33, &f);
	assert_int_equal(f.entry, 0);
}

/* fault_prepare | close the guest_memfd (release) | fault_commit */
static void test_fault_retries_across_gmem_release(void **state)
{
	struct env *e = *state;
	struct fault f;

	set_attr(e, 0, NPAGES, true);
	fault_prepare(e, 44, &f);
	assert_int_not_equal(f.entry, 0);
	pm_kvm_close(e->gmem);
	e->gmem = -1;
	assert_false(fault_commit(e, &f));
	fault_prepare(e, 44, &f);
	assert_int_equal(f.entry, 0);      /* the slot has no file any more */
}

/* Case (a) of the argument: a fault that checked before the range was
 * published, and is still inside mmu_lock, is waited for; the zap comes
 * after its install and removes the mapping. */
struct inval_thread {
	struct env *e;
	gfn_t start, n;
	atomic_bool done;
};

static void *punch_main(void *arg)
{
	struct inval_thread *it = arg;

	punch(it->e, it->start, it->n);
	atomic_store(&it->done, true);
	return NULL;
}

static void test_invalidation_waits_for_a_fault_inside_mmu_lock(void **state)
{
	struct env *e = *state;
	struct inval_thread it = { .e = e, .start = 5, .n = 1 };
	struct timespec ms50 = { 0, 50 * 1000 * 1000 };
	unsigned int zaps, slot;
	bool zapped_early, ended_early;
	struct fault f;
	pthread_t t;

	set_attr(e, 0, NPAGES, true);
	fault_prepare(e, 5, &f);
	zaps = atomic_load(&e->zaps);
	slot = pm_mmu_read_lock(e->pvm);
	assert_false(pm_inval_retry(e->pvm, 5, 6, f.snap));
	assert_int_equal(pthread_create(&t, NULL, punch_main, &it), 0);
	nanosleep(&ms50, NULL);
	zapped_early = atomic_load(&e->zaps) != zaps;
	ended_early = atomic_load(&it.done);
	atomic_store(&e->map[5], f.entry);              /* the install */
	pm_mmu_read_unlock(e->pvm, slot);
	pthread_join(t, NULL);
	assert_false(zapped_early);                     /* not before we left */
	assert_false(ended_early);
	assert_int_equal(atomic_load(&e->zaps), zaps + 1);
	assert_int_equal(atomic_load(&e->map[5]), 0);   /* zapped */
	assert_true(mapping_is_current(e, 5));
}

/* An invalidation that ends on a range slot no fault has looked at yet (its
 * first use in the VM comes after the snapshot) still makes the fault
 * retry: a new slot adds a term to the sum. The main thread holds a slot so
 * that the other thread's invalidation needs another one. */
static void *convert_main(void *arg)
{
	struct inval_thread *it = arg;

	set_attr(it->e, it->start, it->n, false);
	atomic_store(&it->done, true);
	return NULL;
}

static void test_fault_retries_after_an_end_on_a_slot_first_used_after_its_snapshot(void **state)
{
	struct env *e = *state;
	struct inval_thread it = { .e = e, .start = 1000, .n = 8 };
	struct pm_inval_ticket held;
	uint64_t used0, seq0;
	struct fault f;
	pthread_t t;

	set_attr(e, 0, NPAGES, true);
	pm_inval_begin(e->pvm, 3000, 3001, PM_INVAL_ALL, PM_INVAL_CAUSE_ATTR, &held);
	seq0 = pm_inval_snapshot(e->pvm);
	used0 = atomic_load(&e->pvm->inval.used);
	fault_prepare(e, 3, &f);
	assert_int_equal(pthread_create(&t, NULL, convert_main, &it), 0);
	pthread_join(t, NULL);
	assert_int_not_equal(atomic_load(&e->pvm->inval.used), used0);  /* a new slot */
	assert_int_equal(pm_inval_snapshot(e->pvm), seq0 + 1);
	assert_false(fault_commit(e, &f));      /* disjoint range, but an end since */
	pm_inval_end(e->pvm, &held);
	assert_int_equal(pm_inval_snapshot(e->pvm), seq0 + 2);
	fault_prepare(e, 3, &f);
	assert_true(fault_commit(e, &f));
	assert_int_equal(pm_inval_running(&e->pvm->inval), 0);
}

/* With every range slot taken, an invalidation overflows: while it runs
 * every fault retries, whatever its range; its end is counted like any. */
static void test_overflowing_invalidation_makes_every_fault_retry(void **state)
{
	struct env *e = *state;
	struct pm_inval_ticket held[PM_INVAL_MAX_RANGES], over;
	bool elsewhere_ok, over_slot, during, after_end, later;
	unsigned int running;
	uint64_t seq0, attr0;
	struct fault f;

	set_attr(e, 0, NPAGES, true);
	seq0 = pm_inval_snapshot(e->pvm);
	attr0 = pm_inval_count(&e->pvm->inval, PM_INVAL_CAUSE_ATTR);
	for (unsigned int i = 0; i < PM_INVAL_MAX_RANGES; i++) {
		pm_inval_begin(e->pvm, 2000 + i, 2001 + i, PM_INVAL_ALL, PM_INVAL_CAUSE_ATTR, &held[i]);
		assert_non_null(held[i].range);
	}
	fault_prepare(e, 10, &f);
	elsewhere_ok = fault_commit(e, &f);     /* the held ranges are elsewhere */
	pm_inval_begin(e->pvm, 3000, 3001, PM_INVAL_ALL, PM_INVAL_CAUSE_PUNCH, &over);
	over_slot = over.range != NULL;
	running = pm_inval_running(&e->pvm->inval);
	fault_prepare(e, 11, &f);
	during = fault_commit(e, &f);
	pm_inval_end(e->pvm, &over);
	after_end = fault_commit(e, &f);
	fault_prepare(e, 11, &f);
	later = fault_commit(e, &f);
	for (unsigned int i = 0; i < PM_INVAL_MAX_RANGES; i++)
		pm_inval_end(e->pvm, &held[i]);
	assert_true(elsewhere_ok);
	assert_false(over_slot);
	assert_int_equal(running, PM_INVAL_MAX_RANGES + 1);
	assert_false(during);                   /* overflow: every fault retries */
	assert_false(after_end);                /* it ended since the snapshot */
	assert_true(later);
	assert_int_equal(pm_inval_snapshot(e->pvm), seq0 + PM_INVAL_MAX_RANGES + 1);
	assert_int_equal(pm_inval_count(&e->pvm->inval, PM_INVAL_CAUSE_ATTR),
			 attr0 + PM_INVAL_MAX_RANGES);
	assert_int_equal(pm_inval_running(&e->pvm->inval), 0);
}

/* ---- concurrent stress ---- */

#define STRESS_ROUNDS  40
#define FAULTS_PER_ROUND 4000
#define CHANGES_PER_ROUND 60

struct worker {
	struct env *e;
	unsigned int seed;
	int kind;        /* 0 fault, 1 punch, 2 convert */
};

static void *stress_worker(void *arg)
{
	struct worker *w = arg;
	struct env *e = w->e;
	unsigned int n = w->kind == 0 ? FAULTS_PER_ROUND : CHANGES_PER_ROUND;

	for (unsigned int i = 0; i < n; i++) {
		gfn_t start = rand_r(&w->seed) % NPAGES;
		gfn_t len = 1 + rand_r(&w->seed) % (rand_r(&w->seed) % 2 ? 8 : 600);
		struct fault f;

		len = PM_MIN(len, NPAGES - start);
		if (w->kind == 0) {
			fault_prepare(e, start, &f);
			fault_commit(e, &f);
		} else if (w->kind == 1) {
			punch(e, start, len);
		} else {
			set_attr(e, start, len, rand_r(&w->seed) % 2);
		}
	}
	return NULL;
}

static void test_concurrent_faults_punches_conversions_never_stale(void **state)
{
	struct env *e = *state;
	unsigned long stale = 0, mapped = 0;

	for (unsigned int round = 0; round < STRESS_ROUNDS; round++) {
		struct worker w[5];
		pthread_t t[5];

		for (int i = 0; i < 5; i++) {
			w[i] = (struct worker){ e, 1234u + round * 7u + (unsigned int)i, i < 2 ? 0 : (i < 4 ? 1 : 2) };
			pthread_create(&t[i], NULL, stress_worker, &w[i]);
		}
		for (int i = 0; i < 5; i++)
			pthread_join(t[i], NULL);
		for (gfn_t gfn = 0; gfn < NPAGES; gfn++) {
			mapped += atomic_load(&e->map[gfn]) != 0;
			stale += !mapping_is_current(e, gfn);
		}
	}
	print_message("stress: %lu mappings seen at quiescent points, %lu stale\n", mapped, stale);
	assert_true(mapped > 0);   /* the faults did install mappings */
	assert_int_equal(stale, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fault_retries_across_punch_hole, setup, teardown),
		cmocka_unit_test_setup_teardown(test_without_protocol_punch_leaves_stale_private_mapping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_retries_across_attribute_change, setup, teardown),
		cmocka_unit_test_setup_teardown(test_without_protocol_conversion_leaves_wrong_kind_mapped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_before_punch_is_zapped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_during_invalidation_retries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_retries_across_memslot_deletion, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_retries_across_gmem_release, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalidation_waits_for_a_fault_inside_mmu_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_retries_after_an_end_on_a_slot_first_used_after_its_snapshot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overflowing_invalidation_makes_every_fault_retry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_faults_punches_conversions_never_stale, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * The invalidation protocol (see invalidate.h for the argument why a racing
 * fault always retries).
 */
#include "memslot/invalidate.h"
#include "kvm/vm.h"

int pm_inval_init(struct pm_inval *inv)
{
	pthread_rwlockattr_t attr;
	int r;

	memset(inv, 0, sizeof(*inv));
	pthread_rwlockattr_init(&attr);
	/* Writers (invalidations) must not starve behind a stream of faults. */
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	r = pthread_rwlock_init(&inv->mmu_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	if (r)
		return -r;
	return 0;
}

void pm_inval_destroy(struct pm_inval *inv)
{
	PM_BUG_ON(atomic_load(&inv->in_progress) != 0);
	pthread_rwlock_destroy(&inv->mmu_lock);
}

void pm_inval_add_consumer(struct pm_inval *inv, const struct pm_inval_consumer *c)
{
	PM_BUG_ON(inv->nr_consumers >= PM_INVAL_MAX_CONSUMERS);
	inv->consumers[inv->nr_consumers++] = *c;
}

void pm_mmu_read_lock(struct pm_vm *vm)
{
	PM_BUG_ON(pthread_rwlock_rdlock(&vm->inval.mmu_lock));
}

void pm_mmu_read_unlock(struct pm_vm *vm)
{
	PM_BUG_ON(pthread_rwlock_unlock(&vm->inval.mmu_lock));
}

void pm_mmu_write_lock(struct pm_vm *vm)
{
	PM_BUG_ON(pthread_rwlock_wrlock(&vm->inval.mmu_lock));
}

void pm_mmu_write_unlock(struct pm_vm *vm)
{
	PM_BUG_ON(pthread_rwlock_unlock(&vm->inval.mmu_lock));
}

/* Claims a free range slot (compare-and-exchange: no lock, so
 * invalidations of disjoint ranges do not contend here), or NULL if all
 * PM_INVAL_MAX_RANGES are taken (the caller then overflows; waiting here
 * while holding other slots could deadlock). */
static struct pm_inval_range *inval_claim_slot(struct pm_inval *inv, gfn_t start, gfn_t end)
{
	/* Each thread starts its search at its own slot, so concurrent
	 * invalidations from different threads do not read each other's. */
	static atomic_uint next_home;
	static _Thread_local unsigned int home = UINT32_MAX;

	if (home == UINT32_MAX)
		home = atomic_fetch_add_explicit(&next_home, 1, memory_order_relaxed);
	for (unsigned int k = 0; k < PM_INVAL_MAX_RANGES; k++) {
		struct pm_inval_range *r = &inv->ranges[(home + k) % PM_INVAL_MAX_RANGES];
		bool free_slot = false;

		if (atomic_load_explicit(&r->claimed, memory_order_relaxed) ||
		    !atomic_compare_exchange_strong(&r->claimed, &free_slot, true))
			continue;
		atomic_store_explicit(&r->start, start, memory_order_relaxed);
		atomic_store_explicit(&r->end, end, memory_order_relaxed);
		return r;
	}
	return NULL;
}

static void inval_release_slot(struct pm_inval_range *r)
{
	atomic_store_explicit(&r->claimed, false, memory_order_release);
}

void pm_inval_begin(struct pm_vm *vm, gfn_t start, gfn_t end, unsigned int filter,
		    enum pm_inval_cause cause, struct pm_inval_ticket *t)
{
	struct pm_inval *inv = &vm->inval;

	PM_BUG_ON(start >= end || cause >= PM_INVAL_CAUSE_NR);
	t->start = start;
	t->end = end;
	t->range = inval_claim_slot(inv, start, end);
	atomic_fetch_add_explicit(&inv->count[cause], 1, memory_order_relaxed);

	/* Publish the range, with every fault that checked before it done. */
	pm_mmu_write_lock(vm);
	atomic_fetch_add_explicit(&inv->in_progress, 1, memory_order_relaxed);
	if (t->range)
		atomic_store_explicit(&t->range->active, true, memory_order_release);
	else
		atomic_fetch_add_explicit(&inv->overflow, 1, memory_order_release);
	pm_mmu_write_unlock(vm);

	for (unsigned int i = 0; i < inv->nr_consumers; i++)
		inv->consumers[i].zap(vm, start, end, filter, cause, inv->consumers[i].ctx);
}

void pm_inval_end(struct pm_vm *vm, struct pm_inval_ticket *t)
{
	struct pm_inval *inv = &vm->inval;

	/* The new seq must be visible before the range retires. */
	atomic_fetch_add_explicit(&inv->seq, 1, memory_order_seq_cst);
	if (t->range) {
		atomic_store_explicit(&t->range->active, false, memory_order_seq_cst);
		inval_release_slot(t->range);
	} else {
		atomic_fetch_sub_explicit(&inv->overflow, 1, memory_order_seq_cst);
	}
	atomic_fetch_sub_explicit(&inv->in_progress, 1, memory_order_release);
	t->range = NULL;
}

uint64_t pm_inval_snapshot(struct pm_vm *vm)
{
	return atomic_load_explicit(&vm->inval.seq, memory_order_acquire);
}

atomic_bool pm_inval_test_disable_retry;

bool pm_inval_retry(struct pm_vm *vm, gfn_t start, gfn_t end, uint64_t snap)
{
	struct pm_inval *inv = &vm->inval;

	if (pm_unlikely(atomic_load_explicit(&pm_inval_test_disable_retry, memory_order_relaxed)))
		return false;

	if (atomic_load_explicit(&inv->in_progress, memory_order_acquire)) {
		if (atomic_load_explicit(&inv->overflow, memory_order_acquire))
			return true;
		for (unsigned int i = 0; i < PM_INVAL_MAX_RANGES; i++) {
			struct pm_inval_range *r = &inv->ranges[i];

			if (!atomic_load_explicit(&r->active, memory_order_acquire))
				continue;
			if (pm_ranges_overlap(start, end,
					      atomic_load_explicit(&r->start, memory_order_relaxed),
					      atomic_load_explicit(&r->end, memory_order_relaxed)))
				return true;
		}
	}
	return atomic_load_explicit(&inv->seq, memory_order_acquire) != snap;
}

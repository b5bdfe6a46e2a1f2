/* SPDX-License-Identifier: MIT */
/*
 * The invalidation protocol (see invalidate.h for the argument why a racing
 * fault always retries, and for which accesses must be seq_cst).
 */
#include "memslot/invalidate.h"
#include "kvm/vm.h"

_Static_assert(PM_INVAL_MAX_RANGES <= 64, "`used` has one bit per range slot");
_Static_assert(sizeof(struct pm_inval_range) == 64, "a range slot is one cache line");

int pm_inval_init(struct pm_inval *inv)
{
	memset(inv, 0, sizeof(*inv));
	return pm_brlock_init(&inv->mmu_lock);
}

void pm_inval_destroy(struct pm_inval *inv)
{
	PM_BUG_ON(pm_inval_running(inv) != 0);
	pm_brlock_destroy(&inv->mmu_lock);
}

void pm_inval_add_consumer(struct pm_inval *inv, const struct pm_inval_consumer *c)
{
	PM_BUG_ON(inv->nr_consumers >= PM_INVAL_MAX_CONSUMERS);
	inv->consumers[inv->nr_consumers++] = *c;
}

uint64_t pm_inval_count(struct pm_inval *inv, enum pm_inval_cause cause)
{
	uint64_t n;

	PM_BUG_ON(cause >= PM_INVAL_CAUSE_NR);
	n = atomic_load_explicit(&inv->overflow_count[cause], memory_order_relaxed);
	for (unsigned int i = 0; i < PM_INVAL_MAX_RANGES; i++)
		n += atomic_load_explicit(&inv->ranges[i].count[cause], memory_order_relaxed);
	return n;
}

unsigned int pm_inval_running(struct pm_inval *inv)
{
	unsigned int n = atomic_load_explicit(&inv->overflow, memory_order_acquire);

	for (unsigned int i = 0; i < PM_INVAL_MAX_RANGES; i++)
		n += atomic_load_explicit(&inv->ranges[i].claimed, memory_order_acquire);
	return n;
}

unsigned int pm_mmu_read_lock(struct pm_vm *vm)
{
	return pm_brlock_read_lock(&vm->inval.mmu_lock);
}

void pm_mmu_read_unlock(struct pm_vm *vm, unsigned int slot)
{
	pm_brlock_read_unlock(&vm->inval.mmu_lock, slot);
}

void pm_mmu_write_lock(struct pm_vm *vm)
{
	pm_brlock_write_lock(&vm->inval.mmu_lock);
}

void pm_mmu_write_unlock(struct pm_vm *vm)
{
	pm_brlock_write_unlock(&vm->inval.mmu_lock);
}

/* Takes slot i if it is free (the exchange acquires the previous owner's
 * release) and stores the range in it. */
static bool inval_try_slot(struct pm_inval *inv, unsigned int i, gfn_t start, gfn_t end)
{
	struct pm_inval_range *r = &inv->ranges[i];
	bool free_slot = false;

	if (atomic_load_explicit(&r->claimed, memory_order_relaxed) ||
	    !atomic_compare_exchange_strong(&r->claimed, &free_slot, true))
		return false;
	/* seq_cst, like the load that skips it: a fault whose check follows
	 * our range store in the Dekker order must see the bit, and a seq_cst
	 * load that found it set follows (in that order) the store that set
	 * it. Only a slot's first claim in the VM's life writes `used`. */
	if (!(atomic_load_explicit(&inv->used, memory_order_seq_cst) & (1ULL << i)))
		atomic_fetch_or_explicit(&inv->used, 1ULL << i, memory_order_seq_cst);
	/* Release: a fault that reads these and not our `active` (it read the
	 * previous owner's) must then see the previous owner's seq++ (see
	 * invalidate.h, case (b)). */
	atomic_store_explicit(&r->start, start, memory_order_release);
	atomic_store_explicit(&r->end, end, memory_order_release);
	return true;
}

/*
 * Claims a free range slot (compare-and-exchange: no lock, so invalidations
 * of disjoint ranges do not contend here), or returns NULL if all
 * PM_INVAL_MAX_RANGES are taken (the caller then overflows; waiting here
 * while holding other slots could deadlock).
 *
 * A thread keeps to the slot it last claimed (its `home`), so that
 * concurrent invalidations from different threads do not touch each
 * other's lines. Without one (a new thread) or when another thread holds
 * it, it looks for a free slot among those already used, then takes the
 * lowest unused one: `used`, which faults scan, grows with the number of
 * invalidations that ever ran at the same time, not with the number of
 * threads that came and went.
 */
static struct pm_inval_range *inval_claim_slot(struct pm_inval *inv, gfn_t start, gfn_t end)
{
	static _Thread_local unsigned int home = UINT32_MAX;
	uint64_t used;

	if (home < PM_INVAL_MAX_RANGES && inval_try_slot(inv, home, start, end))
		return &inv->ranges[home];
	used = atomic_load_explicit(&inv->used, memory_order_relaxed);
	for (uint64_t u = used; u; u &= u - 1)
		if (inval_try_slot(inv, (unsigned int)__builtin_ctzll(u), start, end)) {
			home = (unsigned int)__builtin_ctzll(u);
			return &inv->ranges[home];
		}
	for (unsigned int i = 0; i < PM_INVAL_MAX_RANGES; i++)
		if (!(used & (1ULL << i)) && inval_try_slot(inv, i, start, end)) {
			home = i;
			return &inv->ranges[i];
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

	/* Publish the range (seq_cst: our half of the Dekker pair with the
	 * faults' announcements in mmu_lock), then wait out the holders of
	 * mmu_lock that may have checked before it was visible. */
	if (t->range) {
		atomic_fetch_add_explicit(&t->range->count[cause], 1, memory_order_relaxed);
		atomic_store_explicit(&t->range->active, true, memory_order_seq_cst);
	} else {
		atomic_fetch_add_explicit(&inv->overflow_count[cause], 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&inv->overflow, 1, memory_order_seq_cst);
	}
	pm_brlock_sync(&inv->mmu_lock);

	for (unsigned int i = 0; i < inv->nr_consumers; i++)
		inv->consumers[i].zap(vm, start, end, filter, cause, inv->consumers[i].ctx);
}

void pm_inval_end(struct pm_vm *vm, struct pm_inval_ticket *t)
{
	struct pm_inval *inv = &vm->inval;

	/* The end is counted (release: after the change, for snapshots that
	 * read it) before the range retires (release: a fault that reads it
	 * retired, or reused, then counts the end). */
	if (t->range) {
		atomic_fetch_add_explicit(&t->range->seq, 1, memory_order_release);
		atomic_store_explicit(&t->range->active, false, memory_order_release);
		inval_release_slot(t->range);
	} else {
		atomic_fetch_add_explicit(&inv->overflow_seq, 1, memory_order_release);
		atomic_fetch_sub_explicit(&inv->overflow, 1, memory_order_release);
	}
	t->range = NULL;
}

uint64_t pm_inval_snapshot(struct pm_vm *vm)
{
	struct pm_inval *inv = &vm->inval;
	uint64_t used = atomic_load_explicit(&inv->used, memory_order_acquire);
	uint64_t sum = atomic_load_explicit(&inv->overflow_seq, memory_order_acquire);

	/* Acquire: a fault that counts an end reads the state after its change. */
	for (; used; used &= used - 1)
		sum += atomic_load_explicit(&inv->ranges[__builtin_ctzll(used)].seq,
					    memory_order_acquire);
	return sum;
}

atomic_bool pm_inval_test_disable_retry;

/* Does the range published in r overlap [start, end)? Adds its seq to *sum
 * when it does not (read after `active` and the bounds: see invalidate.h). */
static bool inval_range_overlaps(struct pm_inval_range *r, gfn_t start, gfn_t end, uint64_t *sum)
{
	/* seq_cst: the fault's half of the Dekker pair. */
	if (atomic_load_explicit(&r->active, memory_order_seq_cst) &&
	    pm_ranges_overlap(start, end,
			      atomic_load_explicit(&r->start, memory_order_acquire),
			      atomic_load_explicit(&r->end, memory_order_acquire)))
		return true;
	*sum += atomic_load_explicit(&r->seq, memory_order_seq_cst);
	return false;
}

bool pm_inval_retry(struct pm_vm *vm, gfn_t start, gfn_t end, uint64_t snap)
{
	struct pm_inval *inv = &vm->inval;
	uint64_t used, sum;

	if (pm_unlikely(atomic_load_explicit(&pm_inval_test_disable_retry, memory_order_relaxed)))
		return false;

	/* seq_cst: these loads follow our announcement in mmu_lock in the
	 * Dekker order (see invalidate.h). `overflow` before `overflow_seq`:
	 * an overflow we miss because it ended is then counted. */
	used = atomic_load_explicit(&inv->used, memory_order_seq_cst);
	if (atomic_load_explicit(&inv->overflow, memory_order_seq_cst))
		return true;
	sum = atomic_load_explicit(&inv->overflow_seq, memory_order_seq_cst);
	for (; used; used &= used - 1)
		if (inval_range_overlaps(&inv->ranges[__builtin_ctzll(used)], start, end, &sum))
			return true;
	return sum != snap;
}

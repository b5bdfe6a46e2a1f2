/* SPDX-License-Identifier: MIT */
/*
 * The invalidation protocol: how a fault that races with a change of
 * guest memory (guest_memfd punch hole or release, memslot deletion,
 * attribute change) always retries instead of installing a stale mapping.
 *
 * State (per VM):
 *  - seq: bumped at the end of every invalidation;
 *  - a set of in-progress ranges (one slot per running invalidation), so
 *    that invalidations of disjoint ranges do not make each other's
 *    faults retry;
 *  - mmu_lock, a reader/writer lock: faults hold it shared from their
 *    retry check until their mapping is installed; an invalidation takes
 *    it exclusively only for an instant, after publishing its range, to
 *    wait for faults that checked before the range was visible.
 *
 * Invalidator:                       Fault:
 *   pm_inval_begin(range)              snap = pm_inval_snapshot()
 *     publish range (in_progress)      look up attributes, memslot, pfn
 *     wait out faults in flight        pm_mmu_read_lock()
 *     zap via consumers                if pm_inval_retry(range, snap): retry
 *   change memory / attributes         install mapping
 *   pm_inval_end()                     pm_mmu_read_unlock()
 *     seq++, retire the range
 *
 * A fault whose check ran before the range was published finished its
 * install before the exclusive instant, so the zap removes it; a fault
 * that checks later sees the range (or, after end, the new seq). Zaps run
 * under the shared lock, concurrently with faults on other ranges.
 *
 * An invalidation that finds all PM_INVAL_MAX_RANGES slots taken (a punch
 * over a file bound to many memslots claims one per slot) does not wait
 * for one, which could deadlock against another holder of several: it
 * counts itself in `overflow`, and every fault retries until it ends.
 *
 * Consumers (the MMU) register a zap callback; filters say which kind of
 * mapping must go (shared, private or both).
 */
#ifndef PM_MEMSLOT_INVALIDATE_H
#define PM_MEMSLOT_INVALIDATE_H

#include <pthread.h>
#include "lib/common.h"

struct pm_vm;

enum pm_inval_filter {
	PM_INVAL_SHARED = 1 << 0,
	PM_INVAL_PRIVATE = 1 << 1,
	PM_INVAL_ALL = PM_INVAL_SHARED | PM_INVAL_PRIVATE,
};

/* Why memory is being invalidated (for consumers and statistics). */
enum pm_inval_cause {
	PM_INVAL_CAUSE_PUNCH,      /* guest_memfd punch hole */
	PM_INVAL_CAUSE_RELEASE,    /* guest_memfd closed: bindings cleared */
	PM_INVAL_CAUSE_ATTR,       /* KVM_SET_MEMORY_ATTRIBUTES */
	PM_INVAL_CAUSE_MEMSLOT,    /* memslot deleted or moved */
	PM_INVAL_CAUSE_NR,
};

struct pm_inval_consumer {
	/* Removes the mappings of [start, end) selected by filter. Called
	 * after the range is published and in-flight faults are done; may
	 * sleep; must not call back into begin/end. */
	void (*zap)(struct pm_vm *vm, gfn_t start, gfn_t end, unsigned int filter,
		    enum pm_inval_cause cause, void *ctx);
	void *ctx;
};

#define PM_INVAL_MAX_RANGES     64
#define PM_INVAL_MAX_CONSUMERS  4

/* One cache line each: invalidations on different threads use different
 * slots and must not bounce each other's lines. */
struct pm_inval_range {
	_Alignas(64)
	atomic_bool claimed;   /* owned by a running invalidation (compare-and-exchange) */
	_Atomic gfn_t start;   /* written by the owner before `active` */
	_Atomic gfn_t end;
	atomic_bool active;    /* set under mmu_lock (exclusive); cleared at end */
};

struct pm_inval {
	pthread_rwlock_t mmu_lock;           /* see above; writer-preferring */
	atomic_uint_fast64_t seq;            /* bumped by every end */
	struct pm_inval_range ranges[PM_INVAL_MAX_RANGES];
	atomic_uint in_progress;             /* running invalidations */
	atomic_uint overflow;                /* running ones that found no free slot:
	                                      * while non-zero every fault retries */
	struct pm_inval_consumer consumers[PM_INVAL_MAX_CONSUMERS]; /* set before use */
	unsigned int nr_consumers;
	atomic_uint_fast64_t count[PM_INVAL_CAUSE_NR]; /* invalidations by cause */
};

/* A running invalidation (caller storage). */
struct pm_inval_ticket {
	struct pm_inval_range *range;        /* NULL: counted in overflow */
	gfn_t start, end;
};

int pm_inval_init(struct pm_inval *inv);
void pm_inval_destroy(struct pm_inval *inv);
/* Registers a zap consumer; only before the VM is in use. */
void pm_inval_add_consumer(struct pm_inval *inv, const struct pm_inval_consumer *c);

void pm_inval_begin(struct pm_vm *vm, gfn_t start, gfn_t end, unsigned int filter,
		    enum pm_inval_cause cause, struct pm_inval_ticket *t);
void pm_inval_end(struct pm_vm *vm, struct pm_inval_ticket *t);

/* Fault side. */
uint64_t pm_inval_snapshot(struct pm_vm *vm);
void pm_mmu_read_lock(struct pm_vm *vm);
void pm_mmu_read_unlock(struct pm_vm *vm);
void pm_mmu_write_lock(struct pm_vm *vm);
void pm_mmu_write_unlock(struct pm_vm *vm);
/* With mmu_lock held (shared or exclusive): must a fault that snapshotted
 * `snap` and maps [start, end) retry? */
bool pm_inval_retry(struct pm_vm *vm, gfn_t start, gfn_t end, uint64_t snap);

/* For tests only: when set, pm_inval_retry() never asks for a retry, i.e.
 * the protocol is switched off, so tests can show what it prevents. */
extern atomic_bool pm_inval_test_disable_retry;

#endif

/* SPDX-License-Identifier: MIT */
/*
 * The invalidation protocol: how a fault that races with a change of
 * guest memory (guest_memfd punch hole or release, memslot deletion,
 * attribute change) always retries instead of installing a stale mapping.
 *
 * State (per VM):
 *  - range slots (PM_INVAL_MAX_RANGES, one cache line each): a running
 *    invalidation claims one (compare-and-exchange; a thread keeps to the
 *    slot it claimed last, so it mostly reuses one line no other thread
 *    writes) and publishes its range there (`active`). A slot also counts
 *    the invalidations that ended in it (`seq`) and, for statistics, those
 *    begun in it by cause (`count`);
 *  - `used`: one bit per slot ever claimed, never cleared, so that faults
 *    look only at the slots that may matter. A thread without a free slot
 *    of its own takes a free used one before a new one, so `used` grows
 *    with the number of invalidations that ran at once, not with the
 *    number of threads that came and went;
 *  - `overflow`, `overflow_seq`: running and ended invalidations that found
 *    every slot taken;
 *  - mmu_lock, a big-reader lock (lib/brlock.h): faults hold it for reading
 *    from their retry check until their mapping is installed, and write
 *    only their CPU's reader slot to take it. An invalidation does not
 *    take it: after publishing its range it waits for the holders inside
 *    (pm_brlock_sync), which is all the protocol needs.
 *
 * The sequence: pm_inval_snapshot() is the sum of `overflow_seq` and every
 * used slot's `seq`, the number of invalidations ended so far. Each term
 * only grows (and a slot that becomes used in between adds a term >= 0),
 * so a later sum equals an earlier one only if every term read the second
 * time had the value read the first time (0 for a new one): no end was
 * counted in between by any of the terms.
 *
 * Invalidator:                          Fault:
 *   pm_inval_begin(range)                 snap = pm_inval_snapshot()
 *     claim a slot, set its `used` bit    look up attributes, memslot, pfn
 *     publish range (active, seq_cst)     pm_mmu_read_lock()   slot++ (seq_cst)
 *     pm_brlock_sync(mmu_lock)            if pm_inval_retry(range, snap): retry
 *     zap via consumers                   install mapping
 *   change memory / attributes            pm_mmu_read_unlock() slot-- (release)
 *   pm_inval_end()
 *     slot seq++ (release), retire the range (release)
 *
 * Why a fault F that does not retry never leaves a mapping that is stale
 * with respect to an invalidation I of an overlapping range. I's range
 * store (or `overflow` increment) and its loads in pm_brlock_sync, F's
 * announcement in mmu_lock and its loads in pm_inval_retry are seq_cst:
 * they lie in one total order S that agrees with program order.
 *  (a) I's sync reads F's announcement: it waits until F's slot is empty,
 *      i.e. until F has left (F's decrement releases, sync's load
 *      acquires), so F's install happens before I's zap, which removes the
 *      mapping; I changes memory only after its zap.
 *  (b) Otherwise sync's load of F's slot precedes F's announcement in S, and
 *      so do I's `used` bit and range store: F's check sees the bit, hence
 *      looks at I's slot, and reads I's `active` = true or a later value.
 *      - It reads I's true and I's bounds: they overlap, F retries.
 *      - It reads a later value (I's clear, or a later owner's store after
 *        its claim acquired I's release of the slot), or a bound stored by
 *        a later owner (with release, after its claim): either way I's
 *        seq++ happens before F's load of I's slot `seq`, which comes after
 *        those in F's program order, so F's sum counts I's end. F's
 *        snapshot counted it only if it read I's seq++ (acquire of I's
 *        release): then I's change happened before F read the state it
 *        maps, which is new as far as I is concerned. Otherwise the two
 *        sums differ and F retries.
 *  An invalidation without a slot is the same with `overflow` in place of
 *  its range (non-zero: every fault retries; read as zero after I's
 *  decrement: F then reads `overflow_seq`, which I bumped before, with
 *  release) and `overflow_seq` in place of the slot's `seq`.
 *  A fault holding mmu_lock for writing is covered the same way: its flag
 *  store stands for the slot increment, and pm_brlock_sync waits for it.
 * Nothing here serialises invalidations with each other: zaps run without
 * mmu_lock, concurrently with faults on other ranges and with other
 * invalidations.
 *
 * An invalidation that finds all PM_INVAL_MAX_RANGES slots taken (a punch
 * over a file bound to many memslots claims one per slot) does not wait
 * for one, which could deadlock against another holder of several: it
 * counts itself in `overflow`, and every fault retries until it ends.
 *
 * Shared writes. Per invalidation, in the common case (its thread's slot,
 * or a used one, is free): none outside its own slot's line (claim, bounds,
 * count, active, seq, release); it reads the reader slots of mmu_lock (one
 * per CPU) and its writer flag. A slot's first use in the VM sets its
 * `used` bit, once; an invalidation without a slot writes `overflow`,
 * `overflow_seq` and `overflow_count`; pm_brlock_sync takes mmu_lock for
 * writing (its flag and mutex) only if a writer holds it or readers keep a
 * slot busy without a pause. Per fault: its CPU's reader slot, twice
 * (take, release); it reads `used`, `overflow`, `overflow_seq`, the used
 * slots and the writer flag. Invalidations write the slots, so a fault that
 * runs beside them misses on each slot once per invalidation (and makes
 * the invalidation's scan miss on its reader slot): reads, not contended
 * writes.
 *
 * Consumers (the MMU) register a zap callback; filters say which kind of
 * mapping must go (shared, private or both).
 */
#ifndef PM_MEMSLOT_INVALIDATE_H
#define PM_MEMSLOT_INVALIDATE_H

#include "lib/brlock.h"
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
 * slots and must not bounce each other's lines. The claimed slot's owner
 * writes every field; faults read `active`, the bounds and `seq`. */
struct pm_inval_range {
	_Alignas(64)
	atomic_bool claimed;   /* owned by a running invalidation (compare-and-exchange) */
	atomic_bool active;    /* range published (seq_cst, by begin); cleared by end */
	_Atomic gfn_t start;   /* stored by the owner (release) before `active` */
	_Atomic gfn_t end;
	atomic_uint_fast64_t seq;                      /* invalidations ended in this slot */
	atomic_uint_fast64_t count[PM_INVAL_CAUSE_NR]; /* begun in this slot, by cause */
};

struct pm_inval {
	struct pm_brlock mmu_lock;           /* see above */
	struct pm_inval_range ranges[PM_INVAL_MAX_RANGES];
	/* Read by every fault; written only on a slot's first use and by
	 * invalidations that find no free slot. */
	_Alignas(64)
	atomic_uint_fast64_t used;           /* bit i: ranges[i] claimed once; never cleared */
	atomic_uint overflow;                /* running ones that found no free slot:
	                                      * while non-zero every fault retries */
	atomic_uint_fast64_t overflow_seq;   /* ... that ended */
	atomic_uint_fast64_t overflow_count[PM_INVAL_CAUSE_NR]; /* ... begun, by cause */
	struct pm_inval_consumer consumers[PM_INVAL_MAX_CONSUMERS]; /* set before use */
	unsigned int nr_consumers;
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
/* Statistics: invalidations begun, by cause; invalidations running now
 * (between begin and end). Sums over the slots: not a snapshot of one
 * instant while invalidations run. */
uint64_t pm_inval_count(struct pm_inval *inv, enum pm_inval_cause cause);
unsigned int pm_inval_running(struct pm_inval *inv);

void pm_inval_begin(struct pm_vm *vm, gfn_t start, gfn_t end, unsigned int filter,
		    enum pm_inval_cause cause, struct pm_inval_ticket *t);
void pm_inval_end(struct pm_vm *vm, struct pm_inval_ticket *t);

/* Fault side. The number of invalidations ended so far (see above). */
uint64_t pm_inval_snapshot(struct pm_vm *vm);
/* Returns the reader slot to give back to pm_mmu_read_unlock. */
unsigned int pm_mmu_read_lock(struct pm_vm *vm);
void pm_mmu_read_unlock(struct pm_vm *vm, unsigned int slot);
void pm_mmu_write_lock(struct pm_vm *vm);
void pm_mmu_write_unlock(struct pm_vm *vm);
/* With mmu_lock held (for reading or writing): must a fault that
 * snapshotted `snap` and maps [start, end) retry? */
bool pm_inval_retry(struct pm_vm *vm, gfn_t start, gfn_t end, uint64_t snap);

/* For tests only: when set, pm_inval_retry() never asks for a retry, i.e.
 * the protocol is switched off, so tests can show what it prevents. */
extern atomic_bool pm_inval_test_disable_retry;

#endif

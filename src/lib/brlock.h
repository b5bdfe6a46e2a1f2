/* SPDX-License-Identifier: MIT */
/*
 * A big-reader lock: a reader/writer lock whose readers write only their
 * CPU's cache line, for a read side that runs on many threads at once (the
 * fault path) and a write side that is rare or only needs to wait for the
 * holders already inside (pm_brlock_sync).
 *
 * State:
 *  - reader slots, one cache line each. A slot's word counts the readers
 *    inside through it (low 32 bits) and the exits (high 32 bits, wrapping;
 *    read_unlock adds 2^32 - 1: one atomic add). A reader takes the slot of
 *    the CPU it runs on and gives it back to read_unlock (it may have moved
 *    to another CPU meanwhile). So the writers scan as many slots as the
 *    system has CPUs (rounded up to a power of two, at most
 *    PM_BRLOCK_SLOTS), however many threads come and go, and a slot's line
 *    stays with one CPU. Threads that share a CPU (or CPUs beyond
 *    PM_BRLOCK_SLOTS) share a slot: hence a count, not a flag.
 *  - writer: true while a writer holds the lock or is draining the readers
 *    to take it. Read by every reader, written only by writers.
 *  - waiting: readers that backed off for a writer (see fairness below).
 *    Written only on the slow path, when a writer is there anyway.
 *  - wlock: a mutex that serialises the writers.
 *
 *   reader                               writer
 *     slot++              (seq_cst)        lock wlock
 *     if writer           (seq_cst)        writer = true         (seq_cst)
 *       slot--, wait for !writer, again    for each slot:
 *     ... critical section ...               wait for slot == 0   (seq_cst)
 *     slot--              (release)        ... critical section ...
 *                                          writer = false        (seq_cst)
 *                                          wait for waiting == 0
 *                                          unlock wlock
 *
 * Exclusion is a Dekker handshake: each side writes its own word, then reads
 * the other's. The four accesses are seq_cst, so they lie in one total
 * order S that agrees with program order. If the writer's load of the slot
 * comes before the reader's increment in S, so does its store of `writer`,
 * and the reader's load, after its increment, sees the flag and backs off;
 * otherwise the writer's load sees the increment and waits for the
 * decrement. (With release/acquire alone both loads may read the old values:
 * a store buffer lets each load pass its own thread's store.) A slot read as
 * 0 after it was read non-zero means every reader counted then has left:
 * each reader's increment precedes its decrement in the slot's modification
 * order. The decrement releases and the writer's load acquires (the slot's
 * later increments and decrements are read-modify-writes, which continue the
 * release sequence), so every reader's critical section happens before the
 * writer's; `writer = false` releases and a reader's load of it acquires, so
 * the writer's critical section happens before the next readers'. All of it
 * is C11 atomics, which ThreadSanitizer understands.
 *
 * Fairness:
 *  - readers do not starve writers: the flag is set before the writer waits,
 *    so only readers already inside delay it;
 *  - writers do not starve readers: a reader that backs off counts itself
 *    in `waiting` (seq_cst), and a writer releasing the lock clears the
 *    flag (seq_cst) and then waits, still holding wlock (so no other writer
 *    can set the flag again), until `waiting` is 0. Either that load counts
 *    the reader, or the flag was clear before the reader counted itself, so
 *    the reader finds it clear (or set by the next writer, whose release
 *    will count it). From the moment a reader counts itself, at most two
 *    writers' critical sections (the one holding the lock and the next)
 *    run before it enters.
 *
 * Not recursive: a reader that takes the lock again (or a reader that takes
 * it for writing) deadlocks as soon as a writer is waiting, as with a
 * writer-preferring pthread rwlock.
 *
 * pm_brlock_sync() is the cheap writer for a caller that publishes
 * something with a seq_cst store and then must wait only for the holders
 * that may have missed it (those inside at the time): it neither sets the
 * flag nor takes wlock, so it does not exclude other writers or syncs, does
 * not hold new readers back and writes no shared line. It waits for each
 * non-empty slot to empty, then for a writer if the flag is set. The same
 * Dekker pairs give its guarantee: a reader whose increment comes after
 * sync's load of its slot in S, or a writer whose flag store comes after
 * sync's load of the flag, sees the caller's store. A slot kept busy by a
 * stream of overlapping readers (threads sharing a CPU) might never empty:
 * when sync has polled a slot PM_BRLOCK_SYNC_SPINS times and seen readers
 * leave it (the exit count moved) but never seen it empty, it falls back on
 * taking the lock for writing, which drains every slot with new readers
 * held back. One long reader (the exit count does not move) is waited for
 * without holding anyone back. A writer that holds the lock is waited for
 * through wlock, which also orders its critical section before sync's
 * return.
 */
#ifndef PM_LIB_BRLOCK_H
#define PM_LIB_BRLOCK_H

#include <pthread.h>
#include "lib/common.h"

#define PM_BRLOCK_SLOTS       64        /* at most; a power of two */
#define PM_BRLOCK_SYNC_SPINS  256       /* polls of one slot before the fallback */

struct pm_brlock_slot {
	_Alignas(64)
	atomic_uint_fast64_t word;          /* exits << 32 | readers inside */
};

/* Allocate it (or what contains it) aligned to 64: its slots are only
 * lines of their own if it is. */
struct pm_brlock {
	struct pm_brlock_slot slot[PM_BRLOCK_SLOTS];
	_Alignas(64)
	atomic_bool writer;                 /* a writer holds or is taking the lock */
	unsigned int nr_slots;              /* slots in use (a power of two); immutable */
	atomic_uint waiting;                /* readers backed off for a writer */
	_Alignas(64)
	pthread_mutex_t wlock;              /* serialises writers; protects nothing else */
};

int pm_brlock_init(struct pm_brlock *l);
/* No holder, no waiter. */
void pm_brlock_destroy(struct pm_brlock *l);

/* Returns the slot to give back to pm_brlock_read_unlock. */
unsigned int pm_brlock_read_lock(struct pm_brlock *l);
void pm_brlock_read_unlock(struct pm_brlock *l, unsigned int slot);
/* pm_brlock_read_lock through a given slot (< l->nr_slots), for tests that
 * make readers share a slot. */
void pm_brlock_read_lock_slot(struct pm_brlock *l, unsigned int slot);
void pm_brlock_write_lock(struct pm_brlock *l);
void pm_brlock_write_unlock(struct pm_brlock *l);

/* Waits until every holder (reader or writer) that was inside when it was
 * called has left. Publish what holders must see with a seq_cst store
 * before calling. Must not be called with the lock held (it would wait for
 * itself). */
void pm_brlock_sync(struct pm_brlock *l);

#endif

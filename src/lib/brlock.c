/* SPDX-License-Identifier: MIT */
/*
 * The big-reader lock (see brlock.h for the design and the ordering
 * argument). Every access that takes part in a Dekker handshake is seq_cst
 * and says so; the others say why they may be weaker.
 */
#include <sched.h>
#include <unistd.h>
#include "lib/brlock.h"

#define SLOT_ENTER   1ULL                       /* one more reader inside */
#define SLOT_EXIT    ((1ULL << 32) - 1)         /* one fewer inside, one more exit */

static inline uint32_t slot_readers(uint64_t word)
{
	return (uint32_t)word;
}

static inline uint32_t slot_exits(uint64_t word)
{
	return (uint32_t)(word >> 32);
}

/* Slots in use: the CPUs the system may have, rounded up to a power of
 * two (a reader masks its CPU number), at most PM_BRLOCK_SLOTS. */
static unsigned int brlock_nr_slots(void)
{
	static atomic_uint nr;
	unsigned int n = atomic_load_explicit(&nr, memory_order_relaxed);
	long cpus;

	if (pm_likely(n))
		return n;
	cpus = sysconf(_SC_NPROCESSORS_CONF);
	for (n = 1; n < PM_BRLOCK_SLOTS && n < cpus; n *= 2)
		;
	atomic_store_explicit(&nr, n, memory_order_relaxed);   /* racers compute the same */
	return n;
}

/* Waiting: spin briefly (the other side's critical sections are short),
 * then give the CPU away (the other side may be waiting for it). */
static void brlock_relax(unsigned int spins)
{
	if (spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
		__builtin_ia32_pause();
#endif
		return;
	}
	sched_yield();
}

int pm_brlock_init(struct pm_brlock *l)
{
	memset(l, 0, sizeof(*l));
	l->nr_slots = brlock_nr_slots();
	return -pthread_mutex_init(&l->wlock, NULL);
}

void pm_brlock_destroy(struct pm_brlock *l)
{
	PM_BUG_ON(atomic_load(&l->writer) || atomic_load(&l->waiting));
	for (unsigned int i = 0; i < l->nr_slots; i++)
		PM_BUG_ON(slot_readers(atomic_load(&l->slot[i].word)));
	pthread_mutex_destroy(&l->wlock);
}

/* A writer holds the lock or is taking it: step aside until it is done.
 * Counted in `waiting` from before we leave our slot until we are back in,
 * so that a writer releasing the lock lets us in before the next one can
 * set the flag again. */
static void brlock_read_slow(struct pm_brlock *l, atomic_uint_fast64_t *word)
{
	/* seq_cst, like the releasing writer's `writer = false` and load of
	 * `waiting`: either that load counts us, or its store precedes our
	 * increment and our next load of the flag finds it clear (or set by
	 * a writer that took wlock after it). So at most two writers' critical
	 * sections run between this increment and our entry (brlock.h). */
	atomic_fetch_add_explicit(&l->waiting, 1, memory_order_seq_cst);
	do {
		/* Release: every exit is the same (see read_unlock). */
		atomic_fetch_add_explicit(word, SLOT_EXIT, memory_order_release);
		for (unsigned int spins = 0;
		     atomic_load_explicit(&l->writer, memory_order_seq_cst); spins++)
			brlock_relax(spins);
		atomic_fetch_add_explicit(word, SLOT_ENTER, memory_order_seq_cst);  /* Dekker */
	} while (atomic_load_explicit(&l->writer, memory_order_seq_cst));        /* Dekker */
	/* Relaxed: it only tells the releasing writer it may go; exclusion
	 * and ordering come from the slot and the flag. */
	atomic_fetch_sub_explicit(&l->waiting, 1, memory_order_relaxed);
}

void pm_brlock_read_lock_slot(struct pm_brlock *l, unsigned int slot)
{
	atomic_uint_fast64_t *word = &l->slot[slot].word;

	PM_BUG_ON(slot >= l->nr_slots);
	/* Dekker with the writer's flag store and slot loads: announce
	 * ourselves, then look for a writer. Both seq_cst (see brlock.h). The
	 * load also acquires the previous writer's critical section. */
	atomic_fetch_add_explicit(word, SLOT_ENTER, memory_order_seq_cst);
	if (pm_likely(!atomic_load_explicit(&l->writer, memory_order_seq_cst)))
		return;
	brlock_read_slow(l, word);
}

/* The CPU this thread runs on, asked again every BRLOCK_CPU_REFRESH
 * acquisitions: sched_getcpu() costs tens of instructions, and a thread
 * rarely moves. A stale answer only means sharing another CPU's slot for a
 * while: any slot is correct. */
#define BRLOCK_CPU_REFRESH 64

static unsigned int brlock_this_cpu(void)
{
	static _Thread_local unsigned int cpu, uses;

	if (uses-- == 0) {
		cpu = (unsigned int)sched_getcpu();     /* -1 on failure: a slot all the same */
		uses = BRLOCK_CPU_REFRESH - 1;
	}
	return cpu;
}

unsigned int pm_brlock_read_lock(struct pm_brlock *l)
{
	/* Any slot is correct; our CPU's is the one other CPUs do not write. */
	unsigned int slot = brlock_this_cpu() & (l->nr_slots - 1);

	pm_brlock_read_lock_slot(l, slot);
	return slot;
}

void pm_brlock_read_unlock(struct pm_brlock *l, unsigned int slot)
{
	uint64_t old;

	/* Release: our critical section happens before that of a writer (or
	 * the return of a sync) that reads the slot after this. */
	old = atomic_fetch_add_explicit(&l->slot[slot].word, SLOT_EXIT, memory_order_release);
	PM_BUG_ON(slot_readers(old) == 0);
}

/*
 * Waits until slot i has no reader. With `give_up`, returns false instead
 * once it has polled PM_BRLOCK_SYNC_SPINS times and seen readers leave
 * without the slot ever emptying: a stream that may never end.
 */
static bool brlock_wait_slot(struct pm_brlock *l, unsigned int i, bool give_up)
{
	uint64_t first = 0, w;

	/* seq_cst: the load half of the writer's Dekker pair; it also
	 * acquires the critical sections of the readers it waited for. */
	for (unsigned int spins = 0;
	     slot_readers(w = atomic_load_explicit(&l->slot[i].word, memory_order_seq_cst));
	     spins++) {
		if (!spins)
			first = w;
		else if (give_up && spins >= PM_BRLOCK_SYNC_SPINS &&
			 slot_exits(w) != slot_exits(first))
			return false;
		brlock_relax(spins);
	}
	return true;
}

void pm_brlock_write_lock(struct pm_brlock *l)
{
	PM_BUG_ON(pthread_mutex_lock(&l->wlock));
	/* Dekker with the readers' slot increments: flag first (seq_cst), so
	 * no reader enters after our scan of its slot, then drain the slots. */
	atomic_store_explicit(&l->writer, true, memory_order_seq_cst);
	for (unsigned int i = 0; i < l->nr_slots; i++)
		brlock_wait_slot(l, i, false);
}

void pm_brlock_write_unlock(struct pm_brlock *l)
{
	/* Our critical section happens before that of the readers that read
	 * the flag clear (release would do for that); seq_cst for fairness,
	 * with the load of `waiting` (see brlock_read_slow). */
	atomic_store_explicit(&l->writer, false, memory_order_seq_cst);
	/* Let in the readers that waited for us before the next writer (who
	 * needs wlock, still ours) can raise the flag again. */
	for (unsigned int spins = 0;
	     atomic_load_explicit(&l->waiting, memory_order_seq_cst); spins++)
		brlock_relax(spins);
	PM_BUG_ON(pthread_mutex_unlock(&l->wlock));
}

void pm_brlock_sync(struct pm_brlock *l)
{
	/* The caller's seq_cst store and our seq_cst loads of the slots and
	 * the flag are its half of the Dekker pairs (see brlock.h). */
	for (unsigned int i = 0; i < l->nr_slots; i++)
		if (!brlock_wait_slot(l, i, true))
			goto drain;     /* the slots not scanned yet are drained too */
	if (pm_likely(!atomic_load_explicit(&l->writer, memory_order_seq_cst)))
		return;
	/* A writer holds the lock or is taking it: wlock waits for it. */
drain:
	pm_brlock_write_lock(l);
	pm_brlock_write_unlock(l);
}

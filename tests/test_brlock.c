/* SPDX-License-Identifier: MIT */
/*
 * Tests of the big-reader lock (src/lib/brlock.c): writers exclude readers
 * and each other, readers hold it together, readers that share a slot are
 * counted, neither side starves the other, and pm_brlock_sync waits for the
 * holders inside, and only for them.
 *
 * Shared data is plain (non-atomic) where the lock is what must order it,
 * so that under TSan a broken lock is a reported data race, not only a
 * wrong value. Waits for something that must happen have a generous
 * timeout (TSan and a loaded machine are slow); checks that something does
 * not happen look for 50 ms.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "lib/testutil.h"

#include <pthread.h>
#include <sched.h>
#include <time.h>
#include "lib/brlock.h"

#define TIMEOUT_S 20.0

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* Waits until *flag is true; false after TIMEOUT_S. */
static bool wait_true(atomic_bool *flag)
{
	double t0 = now_seconds();

	while (!atomic_load(flag)) {
		if (now_seconds() - t0 > TIMEOUT_S)
			return false;
		sched_yield();
	}
	return true;
}

static struct pm_brlock *new_lock(unsigned int nr_slots)
{
	struct pm_brlock *l = aligned_alloc(64, sizeof(*l));

	assert_non_null(l);
	assert_int_equal(pm_brlock_init(l), 0);
	assert_true(l->nr_slots >= 1 && l->nr_slots <= PM_BRLOCK_SLOTS);
	assert_int_equal(l->nr_slots & (l->nr_slots - 1), 0);
	if (nr_slots)
		l->nr_slots = nr_slots;  /* as on a machine with that many CPUs */
	return l;
}

static void free_lock(struct pm_brlock *l)
{
	pm_brlock_destroy(l);
	free(l);
}

/* ---- a helper thread that holds the lock until told to let go ---- */

enum hold_kind { HOLD_READ, HOLD_WRITE, HOLD_SYNC };

struct holder {
	struct pm_brlock *l;
	enum hold_kind kind;
	int slot;                    /* HOLD_READ: < 0 for the CPU's slot */
	atomic_bool inside;          /* has the lock (HOLD_SYNC: sync returned) */
	atomic_bool release;         /* let go */
	pthread_t thread;
};

static void *holder_main(void *arg)
{
	struct holder *h = arg;
	unsigned int slot = 0;

	switch (h->kind) {
	case HOLD_READ:
		if (h->slot < 0) {
			slot = pm_brlock_read_lock(h->l);
		} else {
			slot = (unsigned int)h->slot;
			pm_brlock_read_lock_slot(h->l, slot);
		}
		break;
	case HOLD_WRITE:
		pm_brlock_write_lock(h->l);
		break;
	case HOLD_SYNC:
		pm_brlock_sync(h->l);
		break;
	}
	atomic_store(&h->inside, true);
	if (h->kind == HOLD_SYNC)
		return NULL;
	while (!atomic_load(&h->release))
		sched_yield();
	if (h->kind == HOLD_READ)
		pm_brlock_read_unlock(h->l, slot);
	else
		pm_brlock_write_unlock(h->l);
	return NULL;
}

static void holder_start(struct holder *h, struct pm_brlock *l, enum hold_kind kind, int slot)
{
	memset(h, 0, sizeof(*h));
	h->l = l;
	h->kind = kind;
	h->slot = slot;
	assert_int_equal(pthread_create(&h->thread, NULL, holder_main, h), 0);
}

static void holder_stop(struct holder *h)
{
	atomic_store(&h->release, true);
	assert_int_equal(pthread_join(h->thread, NULL), 0);
}

/* ---- mutual exclusion ---- */

#define MX_WRITERS     2
#define MX_READERS     3
#define MX_ITERS       3000

struct mx {
	struct pm_brlock *l;
	uint64_t a, b;               /* plain: a == b outside a writer */
	atomic_long torn;            /* readers that saw a != b */
	atomic_long max_readers;     /* most readers seen inside at once */
	atomic_long readers_inside;
};

struct mx_arg {
	struct mx *mx;
	int slot;                    /* readers: < 0 for the CPU's slot */
};

static void *mx_writer(void *p)
{
	struct mx *mx = ((struct mx_arg *)p)->mx;

	for (int i = 0; i < MX_ITERS; i++) {
		pm_brlock_write_lock(mx->l);
		mx->a++;
		if (i % 64 == 0)
			sched_yield();    /* let readers try to come in */
		mx->b++;
		pm_brlock_write_unlock(mx->l);
	}
	return NULL;
}

static void *mx_reader(void *p)
{
	struct mx_arg *arg = p;
	struct mx *mx = arg->mx;

	for (int i = 0; i < MX_ITERS; i++) {
		unsigned int slot;
		long n;

		if (arg->slot < 0) {
			slot = pm_brlock_read_lock(mx->l);
		} else {
			slot = (unsigned int)arg->slot;
			pm_brlock_read_lock_slot(mx->l, slot);
		}
		n = atomic_fetch_add(&mx->readers_inside, 1) + 1;
		if (n > atomic_load(&mx->max_readers))
			atomic_store(&mx->max_readers, n);
		if (mx->a != mx->b)
			atomic_fetch_add(&mx->torn, 1);
		if (i % 64 == 0)
			sched_yield();
		if (mx->a != mx->b)
			atomic_fetch_add(&mx->torn, 1);
		atomic_fetch_sub(&mx->readers_inside, 1);
		pm_brlock_read_unlock(mx->l, slot);
	}
	return NULL;
}

static void run_mutual_exclusion(unsigned int nr_slots, const int *reader_slots)
{
	struct mx mx = { .l = new_lock(nr_slots) };
	struct mx_arg args[MX_WRITERS + MX_READERS];
	pthread_t t[MX_WRITERS + MX_READERS];

	for (int i = 0; i < MX_WRITERS + MX_READERS; i++) {
		args[i].mx = &mx;
		args[i].slot = i < MX_WRITERS ? -1 : reader_slots[i - MX_WRITERS];
		assert_int_equal(pthread_create(&t[i], NULL, i < MX_WRITERS ? mx_writer : mx_reader,
						&args[i]), 0);
	}
	for (int i = 0; i < MX_WRITERS + MX_READERS; i++)
		pthread_join(t[i], NULL);
	print_message("most readers inside at once: %ld\n", atomic_load(&mx.max_readers));
	assert_int_equal(atomic_load(&mx.torn), 0);
	assert_int_equal(mx.a, (uint64_t)MX_WRITERS * MX_ITERS);   /* no lost update */
	assert_int_equal(mx.b, mx.a);
	free_lock(mx.l);
}

static void test_writers_exclude_readers_and_each_other(void **state)
{
	const int cpu_slots[MX_READERS] = { -1, -1, -1 };

	run_mutual_exclusion(0, cpu_slots);
}

/* The writer scans every slot, not only the first ones. */
static void test_writers_exclude_readers_on_any_of_64_slots(void **state)
{
	const int far_slots[MX_READERS] = { 63, 31, 62 };

	run_mutual_exclusion(PM_BRLOCK_SLOTS, far_slots);
}

/* ---- readers together, and readers sharing a slot ---- */

static void run_readers_together(int slot_a, int slot_b)
{
	struct pm_brlock *l = new_lock(PM_BRLOCK_SLOTS);
	struct holder a, b;

	holder_start(&a, l, HOLD_READ, slot_a);
	holder_start(&b, l, HOLD_READ, slot_b);
	/* Both inside at once: a lock that excluded readers would not let
	 * the second in while the first waits to be released. */
	assert_true(wait_true(&a.inside));
	assert_true(wait_true(&b.inside));
	holder_stop(&a);
	holder_stop(&b);
	free_lock(l);
}

static void test_readers_hold_the_lock_together(void **state)
{
	run_readers_together(3, 40);
	run_readers_together(-1, -1);
}

static void test_readers_sharing_a_slot_hold_the_lock_together(void **state)
{
	run_readers_together(5, 5);
}

/* Two readers share slot 7: when one leaves, the slot still counts the
 * other, and a writer must keep waiting (a flag per slot would let it in). */
static void test_writer_waits_for_every_reader_of_a_shared_slot(void **state)
{
	struct pm_brlock *l = new_lock(PM_BRLOCK_SLOTS);
	struct holder r1, r2, w;

	holder_start(&r1, l, HOLD_READ, 7);
	holder_start(&r2, l, HOLD_READ, 7);
	assert_true(wait_true(&r1.inside));
	assert_true(wait_true(&r2.inside));
	holder_start(&w, l, HOLD_WRITE, 0);
	sleep_ms(50);
	assert_false(atomic_load(&w.inside));
	holder_stop(&r1);
	sleep_ms(50);
	assert_false(atomic_load(&w.inside));
	holder_stop(&r2);
	assert_true(wait_true(&w.inside));
	holder_stop(&w);
	free_lock(l);
}

/* ---- writer preference and fairness ---- */

/* A reader that comes while a writer waits for older readers waits too:
 * otherwise a stream of readers could hold the writer off for ever. */
static void test_new_readers_wait_behind_a_waiting_writer(void **state)
{
	struct pm_brlock *l = new_lock(PM_BRLOCK_SLOTS);
	struct holder old, w, young;

	holder_start(&old, l, HOLD_READ, 1);
	assert_true(wait_true(&old.inside));
	holder_start(&w, l, HOLD_WRITE, 0);
	while (!atomic_load(&l->writer))     /* the writer is draining */
		sched_yield();
	holder_start(&young, l, HOLD_READ, 2);
	sleep_ms(50);
	assert_false(atomic_load(&young.inside));
	assert_false(atomic_load(&w.inside));
	holder_stop(&old);
	assert_true(wait_true(&w.inside));
	sleep_ms(20);
	assert_false(atomic_load(&young.inside));
	holder_stop(&w);
	assert_true(wait_true(&young.inside));
	holder_stop(&young);
	free_lock(l);
}

/*
 * Readers that pass a baton through one slot: each stays inside until
 * another reader has entered after it, so the slot never empties while
 * they run, unless a writer raises its flag (then they must let go). A
 * lock whose writers only waited for slots to empty would wait for ever.
 */
#define BATON_READERS 3

struct baton {
	struct pm_brlock *l;
	unsigned int slot;
	atomic_long entries;
	atomic_bool stop;
};

static void *baton_reader(void *p)
{
	struct baton *b = p;

	while (!atomic_load(&b->stop)) {
		long me;

		pm_brlock_read_lock_slot(b->l, b->slot);
		me = atomic_fetch_add(&b->entries, 1) + 1;
		while (atomic_load(&b->entries) == me && !atomic_load(&b->stop) &&
		       !atomic_load(&b->l->writer))
			sched_yield();
		pm_brlock_read_unlock(b->l, b->slot);
	}
	return NULL;
}

static void baton_start(struct baton *b, pthread_t *t, unsigned int slot)
{
	b->l = new_lock(PM_BRLOCK_SLOTS);
	b->slot = slot;
	for (int i = 0; i < BATON_READERS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, baton_reader, b), 0);
	while (atomic_load(&b->entries) < 100)
		sched_yield();
}

static void baton_stop(struct baton *b, pthread_t *t)
{
	atomic_store(&b->stop, true);
	for (int i = 0; i < BATON_READERS; i++)
		pthread_join(t[i], NULL);
	free_lock(b->l);
}

static void test_writer_is_not_starved_by_a_stream_of_readers(void **state)
{
	struct baton b = { 0 };
	pthread_t t[BATON_READERS];
	bool done = true;

	baton_start(&b, t, 9);
	for (int i = 0; i < 20 && done; i++) {
		struct holder w;

		holder_start(&w, b.l, HOLD_WRITE, 0);
		done = wait_true(&w.inside);
		if (!done)
			atomic_store(&b.stop, true);    /* the readers go: it gets in */
		holder_stop(&w);
	}
	baton_stop(&b, t);
	assert_true(done);
}

/*
 * A writer that takes the lock again at once each time it releases it
 * (each critical section lasting 1 ms) leaves a reader only a gap of a few
 * instructions. A reader that waits still gets in: the releasing writer
 * lets the readers that waited for it in first. Precisely, once the reader
 * is seen counted in `waiting` with section c begun, it is in before
 * section c + 2 begins (see brlock_read_slow); it reads the section count
 * inside, where no writer can change it.
 */
#define CHAIN_TRIALS 20

struct chain {
	struct pm_brlock *l;
	atomic_long sections;        /* writer critical sections begun */
	atomic_bool stop;
	atomic_long seen;            /* by the reader, inside */
	atomic_bool inside;
};

static void *chain_writer(void *p)
{
	struct chain *c = p;

	while (!atomic_load(&c->stop)) {
		pm_brlock_write_lock(c->l);
		atomic_fetch_add(&c->sections, 1);
		sleep_ms(1);
		pm_brlock_write_unlock(c->l);
	}
	return NULL;
}

static void *chain_reader(void *p)
{
	struct chain *c = p;
	unsigned int slot = pm_brlock_read_lock(c->l);

	atomic_store(&c->seen, atomic_load(&c->sections));
	atomic_store(&c->inside, true);
	pm_brlock_read_unlock(c->l, slot);
	return NULL;
}

static void test_readers_are_not_starved_by_a_writer_that_relocks_at_once(void **state)
{
	struct chain c = { .l = new_lock(0) };
	pthread_t w, r;
	int checked = 0;
	long worst = 0;

	assert_int_equal(pthread_create(&w, NULL, chain_writer, &c), 0);
	/* A trial counts when we saw the reader wait (it may find a gap, or
	 * we may not run while it waits, on a loaded machine). */
	for (int trial = 0; checked < CHAIN_TRIALS && trial < 10 * CHAIN_TRIALS &&
			    !atomic_load(&c.stop); trial++) {
		double t0 = now_seconds();
		long begun = -1;

		while (!atomic_load(&c.l->writer))
			sched_yield();
		atomic_store(&c.inside, false);
		assert_int_equal(pthread_create(&r, NULL, chain_reader, &c), 0);
		while (!atomic_load(&c.inside)) {
			if (begun < 0 && atomic_load(&c.l->waiting))
				begun = atomic_load(&c.sections);   /* after seeing it counted */
			if (now_seconds() - t0 > TIMEOUT_S)
				atomic_store(&c.stop, true);        /* starved: let it in */
		}
		pthread_join(r, NULL);
		if (begun < 0)
			continue;       /* it came in through a gap without waiting */
		checked++;
		worst = PM_MAX(worst, atomic_load(&c.seen) - begun);
	}
	atomic_store(&c.stop, true);
	pthread_join(w, NULL);
	print_message("%d trials with a waiting reader; it saw at most %ld more sections begin\n",
		      checked, worst);
	assert_true(checked >= CHAIN_TRIALS / 2);
	assert_true(worst <= 1);
	free_lock(c.l);
}

/* ---- pm_brlock_sync ---- */

/* Sync returns only when the readers inside have left, and does not keep
 * new readers out meanwhile (on another slot, or on the same slot while
 * the old reader alone keeps it busy). */
static void test_sync_waits_for_the_readers_inside_only(void **state)
{
	struct pm_brlock *l = new_lock(PM_BRLOCK_SLOTS);
	struct holder old, s, young;

	holder_start(&old, l, HOLD_READ, 4);
	assert_true(wait_true(&old.inside));
	holder_start(&s, l, HOLD_SYNC, 0);
	sleep_ms(50);
	assert_false(atomic_load(&s.inside));
	/* New readers get in and out while sync waits. */
	holder_start(&young, l, HOLD_READ, 11);
	assert_true(wait_true(&young.inside));
	holder_stop(&young);
	holder_start(&young, l, HOLD_READ, 4);
	assert_true(wait_true(&young.inside));
	assert_false(atomic_load(&s.inside));
	holder_stop(&old);
	sleep_ms(50);
	assert_false(atomic_load(&s.inside));   /* the young reader came in first */
	holder_stop(&young);
	assert_true(wait_true(&s.inside));
	pthread_join(s.thread, NULL);
	assert_false(atomic_load(&l->writer));
	free_lock(l);
}

static void test_sync_waits_for_a_writer_inside(void **state)
{
	struct pm_brlock *l = new_lock(0);
	struct holder w, s;

	holder_start(&w, l, HOLD_WRITE, 0);
	assert_true(wait_true(&w.inside));
	holder_start(&s, l, HOLD_SYNC, 0);
	sleep_ms(50);
	assert_false(atomic_load(&s.inside));
	holder_stop(&w);
	assert_true(wait_true(&s.inside));
	pthread_join(s.thread, NULL);
	free_lock(l);
}

/* A slot that never empties: sync falls back on the write lock. */
static void test_sync_is_not_starved_by_a_stream_of_readers(void **state)
{
	struct baton b = { 0 };
	pthread_t t[BATON_READERS];
	bool done = true;

	baton_start(&b, t, 0);
	for (int i = 0; i < 20 && done; i++) {
		struct holder s;

		holder_start(&s, b.l, HOLD_SYNC, 0);
		done = wait_true(&s.inside);
		if (!done)
			atomic_store(&b.stop, true);    /* the slot empties: sync returns */
		pthread_join(s.thread, NULL);
	}
	baton_stop(&b, t);
	assert_true(done);
}

/*
 * What the invalidation protocol does with sync: a publisher marks the data
 * as changing (seq_cst), syncs, then writes it (plain); a reader that finds
 * it not changing (after announcing itself) reads it. Either sync waits for
 * the reader, or the reader sees the mark: never a plain write during a
 * plain read (which TSan would report) or a torn value.
 */
#define PUB_CHANGES 2000
#define PUB_READERS 2

struct pub {
	struct pm_brlock *l;
	atomic_uint_fast64_t gen;     /* odd: data changing */
	uint64_t data[2];             /* plain: both gen / 2 when gen is even */
	atomic_bool stop;
	atomic_long reads, skipped, bad;
};

static void *pub_reader(void *p)
{
	struct pub *pb = p;

	while (!atomic_load(&pb->stop)) {
		unsigned int slot = pm_brlock_read_lock(pb->l);
		uint64_t g = atomic_load(&pb->gen);     /* seq_cst: after our announcement */

		if (g & 1) {
			atomic_fetch_add(&pb->skipped, 1);
			sched_yield();
		} else {
			uint64_t d0 = pb->data[0];

			sched_yield();
			if (d0 != g / 2 || pb->data[1] != g / 2)
				atomic_fetch_add(&pb->bad, 1);
			atomic_fetch_add(&pb->reads, 1);
		}
		pm_brlock_read_unlock(pb->l, slot);
	}
	return NULL;
}

static void test_sync_orders_a_publication_against_readers(void **state)
{
	struct pub pb = { .l = new_lock(0) };
	pthread_t t[PUB_READERS];

	for (int i = 0; i < PUB_READERS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, pub_reader, &pb), 0);
	for (uint64_t k = 0; k < PUB_CHANGES || atomic_load(&pb.reads) < PUB_CHANGES; k++) {
		atomic_store(&pb.gen, 2 * k + 1);      /* seq_cst: before sync's loads */
		pm_brlock_sync(pb.l);
		pb.data[0] = k + 1;
		pb.data[1] = k + 1;
		atomic_store(&pb.gen, 2 * k + 2);
		sched_yield();
	}
	atomic_store(&pb.stop, true);
	for (int i = 0; i < PUB_READERS; i++)
		pthread_join(t[i], NULL);
	print_message("%ld reads, %ld skipped\n", atomic_load(&pb.reads), atomic_load(&pb.skipped));
	assert_true(atomic_load(&pb.reads) > 0);
	assert_int_equal(atomic_load(&pb.bad), 0);
	free_lock(pb.l);
}

/* ---- misuse ---- */

static void unlock_unheld(void *arg)
{
	struct pm_brlock *l = arg;

	pm_brlock_read_unlock(l, 0);
}

static void test_read_unlock_without_the_lock_is_a_bug(void **state)
{
	struct pm_brlock *l = new_lock(0);

	assert_true(pm_test_aborts(unlock_unheld, l));
	free_lock(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_writers_exclude_readers_and_each_other),
		cmocka_unit_test(test_writers_exclude_readers_on_any_of_64_slots),
		cmocka_unit_test(test_readers_hold_the_lock_together),
		cmocka_unit_test(test_readers_sharing_a_slot_hold_the_lock_together),
		cmocka_unit_test(test_writer_waits_for_every_reader_of_a_shared_slot),
		cmocka_unit_test(test_new_readers_wait_behind_a_waiting_writer),
		cmocka_unit_test(test_writer_is_not_starved_by_a_stream_of_readers),
		cmocka_unit_test(test_readers_are_not_starved_by_a_writer_that_relocks_at_once),
		cmocka_unit_test(test_sync_waits_for_the_readers_inside_only),
		cmocka_unit_test(test_sync_waits_for_a_writer_inside),
		cmocka_unit_test(test_sync_is_not_starved_by_a_stream_of_readers),
		cmocka_unit_test(test_sync_orders_a_publication_against_readers),
		cmocka_unit_test(test_read_unlock_without_the_lock_is_a_bug),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

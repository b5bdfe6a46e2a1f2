/* SPDX-License-Identifier: MIT */
/*
 * RCU for privmem, on liburcu's "bulletproof" flavour (urcu-bp), which
 * registers reader threads by itself: a library cannot ask the VMM's threads
 * to register.
 *
 * ThreadSanitizer does not see liburcu's internal synchronisation (the
 * library is not instrumented), so in TSan builds every read-side unlock
 * releases, and every grace period acquires, one sync object: that is the
 * happens-before RCU really provides (a reader's critical section ends
 * before the grace period that follows it).
 *
 * Publication and dereference use C11 atomics so that TSan sees them.
 */
#ifndef PM_LIB_RCU_H
#define PM_LIB_RCU_H

/* Inline read-side primitives (a few instructions on a thread-local
 * counter instead of two calls into the library and a __tls_get_addr per
 * section): liburcu allows this for LGPL-compatible code, which privmem's
 * MIT licence is. Not in sanitizer builds: the inlined code would access
 * the library's reader records under our instrumentation, and liburcu
 * allocates them less aligned than their type asks (UBSan reports it). */
#if !defined(PM_ASAN) && !defined(PM_TSAN) && !defined(_LGPL_SOURCE)
#define _LGPL_SOURCE
#endif
#include <urcu-bp.h>
#include <stdatomic.h>

#if defined(PM_TSAN)
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
extern char pm_rcu_tsan_sync;
#define PM_TSAN_RELEASE(a) __tsan_release(a)
#define PM_TSAN_ACQUIRE(a) __tsan_acquire(a)
#else
#define PM_TSAN_RELEASE(a) ((void)0)
#define PM_TSAN_ACQUIRE(a) ((void)0)
#endif

static inline void pm_rcu_read_lock(void)
{
	urcu_bp_read_lock();
}

static inline void pm_rcu_read_unlock(void)
{
	PM_TSAN_RELEASE(&pm_rcu_tsan_sync);
	urcu_bp_read_unlock();
}

/* Waits until every read-side critical section that began before returns. */
static inline void pm_synchronize_rcu(void)
{
	urcu_bp_synchronize_rcu();
	PM_TSAN_ACQUIRE(&pm_rcu_tsan_sync);
}

/* Frees ptr with free() after a grace period, without blocking. */
void pm_rcu_free(void *ptr);
/* Runs fn(arg) after a grace period, without blocking. */
void pm_rcu_call(void (*fn)(void *arg), void *arg);
/* Waits for every pm_rcu_free/pm_rcu_call queued so far to have run. */
void pm_rcu_barrier(void);

#define pm_rcu_dereference(p) atomic_load_explicit(&(p), memory_order_acquire)
#define pm_rcu_assign_pointer(p, v) atomic_store_explicit(&(p), (v), memory_order_release)

#endif

/* SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <sched.h>
#include "lib/rcu.h"
#include "lib/common.h"

char pm_rcu_tsan_sync;
#if defined(PM_TSAN)
static char pm_rcu_tsan_barrier_sync;   /* callbacks done -> pm_rcu_barrier() */
#endif

#if defined(PM_TSAN)
/* liburcu is not instrumented: TSan cannot see the synchronisation behind
 * the allocations it makes on one thread and frees on its callback thread
 * (urcu_bp_barrier, call_rcu). Ignore the allocator calls made from inside
 * the library; privmem's own accesses stay checked (see rcu.h). */
const char *__tsan_default_suppressions(void);
const char *__tsan_default_suppressions(void)
{
	return "called_from_lib:liburcu-bp.so\n";
}
#endif

struct pm_rcu_cb {
	struct rcu_head head;
	void (*fn)(void *arg);
	void *arg;
	bool reserved;          /* from the reserve below, not malloc */
};

/* Callbacks for when malloc fails: pm_rcu_call may run inside a read-side
 * section (a page-table walk freeing a table), so it must never wait for a
 * grace period itself. reserve_lock protects the stack. */
#define PM_RCU_RESERVE 64
static struct pm_rcu_cb reserve[PM_RCU_RESERVE];
static struct pm_rcu_cb *reserve_free[PM_RCU_RESERVE];
static int reserve_top = -1;    /* -1: not filled yet */
static pthread_mutex_t reserve_lock = PTHREAD_MUTEX_INITIALIZER;

static struct pm_rcu_cb *rcu_cb_reserved(void)
{
	struct pm_rcu_cb *cb = NULL;

	pthread_mutex_lock(&reserve_lock);
	if (reserve_top < 0) {
		for (int i = 0; i < PM_RCU_RESERVE; i++)
			reserve_free[i] = &reserve[i];
		reserve_top = PM_RCU_RESERVE;
	}
	if (reserve_top > 0)
		cb = reserve_free[--reserve_top];
	pthread_mutex_unlock(&reserve_lock);
	if (cb)
		cb->reserved = true;
	return cb;
}

static void rcu_cb_release(struct pm_rcu_cb *cb)
{
	if (!cb->reserved) {
		free(cb);
		return;
	}
	pthread_mutex_lock(&reserve_lock);
	reserve_free[reserve_top++] = cb;
	pthread_mutex_unlock(&reserve_lock);
}

static void pm_rcu_cb_run(struct rcu_head *head)
{
	struct pm_rcu_cb *cb = caa_container_of(head, struct pm_rcu_cb, head);

	PM_TSAN_ACQUIRE(&pm_rcu_tsan_sync);
	cb->fn(cb->arg);
	rcu_cb_release(cb);
	/* What the callback did happens before a pm_rcu_barrier() returns. */
	PM_TSAN_RELEASE(&pm_rcu_tsan_barrier_sync);
}

void pm_rcu_call(void (*fn)(void *arg), void *arg)
{
	struct pm_rcu_cb *cb;

	for (;;) {
		cb = malloc(sizeof(*cb));
		if (cb) {
			cb->reserved = false;
			break;
		}
		cb = rcu_cb_reserved();
		if (cb)
			break;
		sched_yield();  /* callbacks in flight give reserve entries back */
	}
	cb->fn = fn;
	cb->arg = arg;
	/* liburcu hands cb to its callback thread, invisibly to TSan. */
	PM_TSAN_RELEASE(&pm_rcu_tsan_sync);
	urcu_bp_call_rcu(&cb->head, pm_rcu_cb_run);
}

void pm_rcu_free(void *ptr)
{
	if (ptr)
		pm_rcu_call(free, ptr);
}

void pm_rcu_barrier(void)
{
	urcu_bp_barrier();
	PM_TSAN_ACQUIRE(&pm_rcu_tsan_barrier_sync);
}

/* SPDX-License-Identifier: MIT */
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
};

static void pm_rcu_cb_run(struct rcu_head *head)
{
	struct pm_rcu_cb *cb = caa_container_of(head, struct pm_rcu_cb, head);

	PM_TSAN_ACQUIRE(&pm_rcu_tsan_sync);
	cb->fn(cb->arg);
	free(cb);
	/* What the callback did happens before a pm_rcu_barrier() returns. */
	PM_TSAN_RELEASE(&pm_rcu_tsan_barrier_sync);
}

void pm_rcu_call(void (*fn)(void *arg), void *arg)
{
	struct pm_rcu_cb *cb = malloc(sizeof(*cb));

	if (!cb) {
		/* No memory for a callback: fall back to waiting here. */
		pm_synchronize_rcu();
		fn(arg);
		return;
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

/* SPDX-License-Identifier: MIT */
/*
 * The RCU recycler (see recycle.h).
 */
#include "lib/rcu.h"
#include "lib/recycle.h"

#define LIMBO_ZERO ((uintptr_t)1)

void pm_recycler_init(struct pm_recycler *r, size_t size, size_t max_free)
{
	pthread_mutexattr_t attr;

	PM_BUG_ON(size < sizeof(void *));
	memset(r, 0, sizeof(*r));
	r->size = size;
	r->max_free = max_free;
	/* Short critical sections: spin a little before sleeping. */
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
	pthread_mutex_init(&r->lock, &attr);
	pthread_mutexattr_destroy(&attr);
}

/* Caches obj on the list its content says, or frees it when the cache is full. */
static void recycler_put_locked(struct pm_recycler *r, void *obj, bool zero)
{
	void **list = zero ? &r->zero_list : &r->dirty_list;

	if (r->nr_free >= r->max_free) {
		free(obj);
		return;
	}
	*(void **)obj = *list;
	*list = obj;
	r->nr_free++;
}

static void *recycler_pop_locked(struct pm_recycler *r, void **list)
{
	void *obj = *list;

	if (obj) {
		*list = *(void **)obj;
		r->nr_free--;
		*(void **)obj = NULL;   /* the link word */
	}
	return obj;
}

/* Waits for a grace period, then makes every object in the limbo reusable.
 * Takes and drops r->lock; the wait runs without it. */
static void recycler_drain(struct pm_recycler *r)
{
	uintptr_t objs[PM_RECYCLE_LIMBO];
	unsigned int n;

	pthread_mutex_lock(&r->lock);
	n = r->nr_limbo;
	memcpy(objs, r->limbo, n * sizeof(objs[0]));
	r->nr_limbo = 0;
	pthread_mutex_unlock(&r->lock);
	if (!n)
		return;
	/* Readers that could see these objects started before their retire. */
	pm_synchronize_rcu();
	pthread_mutex_lock(&r->lock);
	r->grace_periods++;
	for (unsigned int i = 0; i < n; i++)
		recycler_put_locked(r, (void *)(objs[i] & ~LIMBO_ZERO), objs[i] & LIMBO_ZERO);
	pthread_mutex_unlock(&r->lock);
}

static void recycler_free_list(void *obj)
{
	while (obj) {
		void *next = *(void **)obj;

		free(obj);
		obj = next;
	}
}

void pm_recycler_destroy(struct pm_recycler *r)
{
	recycler_drain(r);
	pthread_mutex_lock(&r->lock);
	recycler_free_list(r->zero_list);
	recycler_free_list(r->dirty_list);
	r->zero_list = r->dirty_list = NULL;
	r->nr_free = 0;
	pthread_mutex_unlock(&r->lock);
	pthread_mutex_destroy(&r->lock);
}

void *pm_recycler_alloc(struct pm_recycler *r)
{
	bool dirty = false;
	void *obj;

	pthread_mutex_lock(&r->lock);
	obj = recycler_pop_locked(r, &r->zero_list);
	if (!obj) {
		obj = recycler_pop_locked(r, &r->dirty_list);
		dirty = obj != NULL;
	}
	pthread_mutex_unlock(&r->lock);
	if (dirty)
		memset(obj, 0, r->size);
	/* None ready: a fresh one. The objects in circulation thus grow to
	 * cover the limbo, and the limbo drains only when a batch is there
	 * (one grace period per batch, never one per allocation). */
	return obj ? obj : calloc(1, r->size);
}

void pm_recycler_free(struct pm_recycler *r, void *obj)
{
	pthread_mutex_lock(&r->lock);
	recycler_put_locked(r, obj, false);
	pthread_mutex_unlock(&r->lock);
}

void pm_recycler_retire(struct pm_recycler *r, void *obj, bool zero)
{
	bool full;

	PM_BUG_ON((uintptr_t)obj & LIMBO_ZERO);
	pthread_mutex_lock(&r->lock);
	r->limbo[r->nr_limbo++] = (uintptr_t)obj | (zero ? LIMBO_ZERO : 0);
	full = r->nr_limbo == PM_RECYCLE_LIMBO;
	pthread_mutex_unlock(&r->lock);
	if (full)           /* maintain() was not called in time: drain here */
		recycler_drain(r);
}

void pm_recycler_maintain(struct pm_recycler *r)
{
	bool batch;

	pthread_mutex_lock(&r->lock);
	batch = r->nr_limbo >= PM_RECYCLE_BATCH;
	pthread_mutex_unlock(&r->lock);
	if (batch)
		recycler_drain(r);
}

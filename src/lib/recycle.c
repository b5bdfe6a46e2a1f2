/* SPDX-License-Identifier: MIT */
/*
 * The RCU recycler (see recycle.h).
 */
#include "lib/rcu.h"
#include "lib/recycle.h"

void pm_recycler_init(struct pm_recycler *r, size_t size, size_t max_free)
{
	PM_BUG_ON(size < sizeof(void *));
	memset(r, 0, sizeof(*r));
	r->size = size;
	r->max_free = max_free;
	pthread_mutex_init(&r->lock, NULL);
}

/* Caches obj (zeroing it) or frees it when the cache is full. */
static void recycler_put_locked(struct pm_recycler *r, void *obj)
{
	if (r->nr_free >= r->max_free) {
		free(obj);
		return;
	}
	memset(obj, 0, r->size);
	*(void **)obj = r->free_list;
	r->free_list = obj;
	r->nr_free++;
}

/* Waits for a grace period, then makes every object in the limbo reusable.
 * Takes and drops r->lock; the wait runs without it. */
static void recycler_drain(struct pm_recycler *r)
{
	void *objs[PM_RECYCLE_BATCH];
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
		recycler_put_locked(r, objs[i]);
	pthread_mutex_unlock(&r->lock);
}

void pm_recycler_destroy(struct pm_recycler *r)
{
	recycler_drain(r);
	pthread_mutex_lock(&r->lock);
	while (r->free_list) {
		void *next = *(void **)r->free_list;

		free(r->free_list);
		r->free_list = next;
	}
	r->nr_free = 0;
	pthread_mutex_unlock(&r->lock);
	pthread_mutex_destroy(&r->lock);
}

void *pm_recycler_alloc(struct pm_recycler *r)
{
	void *obj;

	pthread_mutex_lock(&r->lock);
	obj = r->free_list;
	if (obj) {
		r->free_list = *(void **)obj;
		r->nr_free--;
		*(void **)obj = NULL;   /* the link: the rest is zero already */
	}
	pthread_mutex_unlock(&r->lock);
	/* None ready: a fresh one. The objects in circulation thus grow to
	 * cover the limbo, and the limbo drains only when full (one grace
	 * period per batch, never one per allocation). */
	return obj ? obj : calloc(1, r->size);
}

void pm_recycler_free(struct pm_recycler *r, void *obj)
{
	pthread_mutex_lock(&r->lock);
	recycler_put_locked(r, obj);
	pthread_mutex_unlock(&r->lock);
}

void pm_recycler_retire(struct pm_recycler *r, void *obj)
{
	bool full;

	pthread_mutex_lock(&r->lock);
	r->limbo[r->nr_limbo++] = obj;
	full = r->nr_limbo == PM_RECYCLE_BATCH;
	pthread_mutex_unlock(&r->lock);
	if (full)
		recycler_drain(r);
}

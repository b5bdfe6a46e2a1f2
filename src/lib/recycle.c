/* SPDX-License-Identifier: MIT */
#include "lib/rcu.h"
#include "lib/recycle.h"

struct pm_recycle_batch {
	struct pm_recycler *r;
	unsigned int n;
	void *obj[PM_RECYCLE_BATCH];
};

void pm_recycler_init(struct pm_recycler *r, size_t size, size_t max_free)
{
	PM_BUG_ON(size < sizeof(void *));
	r->size = size;
	r->max_free = max_free;
	pthread_mutex_init(&r->lock, NULL);
	r->free_list = NULL;
	r->nr_free = 0;
	r->batch = NULL;
}

/* obj is zeroed except for its first word, the link. */
static void recycler_put_locked(struct pm_recycler *r, void *obj)
{
	if (r->nr_free >= r->max_free) {
		free(obj);
		return;
	}
	*(void **)obj = r->free_list;
	r->free_list = obj;
	r->nr_free++;
}

/* After a grace period: nobody can be reading the batch's objects. */
static void recycler_batch_done(void *arg)
{
	struct pm_recycle_batch *b = arg;
	struct pm_recycler *r = b->r;

	for (unsigned int i = 0; i < b->n; i++)
		memset(b->obj[i], 0, r->size);   /* here, not on the allocating path */
	pthread_mutex_lock(&r->lock);
	for (unsigned int i = 0; i < b->n; i++)
		recycler_put_locked(r, b->obj[i]);
	pthread_mutex_unlock(&r->lock);
	free(b);
}

void pm_recycler_destroy(struct pm_recycler *r)
{
	pthread_mutex_lock(&r->lock);
	if (r->batch)
		pm_rcu_call(recycler_batch_done, r->batch);
	r->batch = NULL;
	pthread_mutex_unlock(&r->lock);
	pm_rcu_barrier();
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
	}
	pthread_mutex_unlock(&r->lock);
	if (!obj)
		return calloc(1, r->size);
	*(void **)obj = NULL;      /* the link: the rest is zero already */
	return obj;
}

void pm_recycler_free(struct pm_recycler *r, void *obj)
{
	memset(obj, 0, r->size);
	pthread_mutex_lock(&r->lock);
	recycler_put_locked(r, obj);
	pthread_mutex_unlock(&r->lock);
}

void pm_recycler_retire(struct pm_recycler *r, void *obj)
{
	struct pm_recycle_batch *full = NULL;

	pthread_mutex_lock(&r->lock);
	if (!r->batch) {
		r->batch = malloc(sizeof(*r->batch));
		if (!r->batch) {
			pthread_mutex_unlock(&r->lock);
			pm_rcu_free(obj);
			return;
		}
		r->batch->r = r;
		r->batch->n = 0;
	}
	r->batch->obj[r->batch->n++] = obj;
	if (r->batch->n == PM_RECYCLE_BATCH) {
		full = r->batch;
		r->batch = NULL;
	}
	pthread_mutex_unlock(&r->lock);
	if (full) {
		/* Our own accesses to the objects precede the callback. */
		PM_TSAN_RELEASE(&pm_rcu_tsan_sync);
		pm_rcu_call(recycler_batch_done, full);
	}
}

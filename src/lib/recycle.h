/* SPDX-License-Identifier: MIT */
/*
 * An RCU recycler: objects of one size that writers unlink under their own
 * lock and that lock-free readers may still be looking at. Retired objects
 * are collected in batches; one RCU callback per batch (not per object)
 * makes them reusable after a grace period, so a hot path that allocates
 * and retires objects (an attribute change splitting and collapsing radix
 * nodes) neither calls malloc/free nor wakes liburcu's callback thread
 * each time.
 *
 * Objects come back zeroed: the RCU callback zeroes them on liburcu's
 * thread, off the hot path, so a caller that wants a zeroed object (the
 * common case) gets one without paying for it.
 *
 * Locking: r->lock protects every field below it; the RCU callback takes it
 * too. A retired object is never written before its grace period ends
 * (readers may be in it): the batch keeps the pointers, not the objects.
 */
#ifndef PM_LIB_RECYCLE_H
#define PM_LIB_RECYCLE_H

#include <pthread.h>
#include "lib/common.h"

#define PM_RECYCLE_BATCH 32

struct pm_recycle_batch;

struct pm_recycler {
	size_t size;                         /* object size; immutable */
	size_t max_free;                     /* cached objects beyond this are freed */
	pthread_mutex_t lock;
	void *free_list;                     /* reusable, linked through their first word */
	size_t nr_free;
	struct pm_recycle_batch *batch;      /* retired, waiting for a full batch */
};

void pm_recycler_init(struct pm_recycler *r, size_t size, size_t max_free);
/* Hands every retired object to RCU, waits for all callbacks, frees everything. */
void pm_recycler_destroy(struct pm_recycler *r);
/* A zeroed object, or NULL on ENOMEM. */
void *pm_recycler_alloc(struct pm_recycler *r);
/* An object no reader has seen: reusable at once (zeroed here). */
void pm_recycler_free(struct pm_recycler *r, void *obj);
/* An object just unlinked: reusable after a grace period. On ENOMEM for a
 * new batch it falls back to freeing the object through pm_rcu_free. */
void pm_recycler_retire(struct pm_recycler *r, void *obj);

#endif

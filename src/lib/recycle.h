/* SPDX-License-Identifier: MIT */
/*
 * An RCU recycler: objects of one size that a writer unlinks under its own
 * lock while lock-free readers may still be looking at them. Retired
 * objects wait in a small limbo; when the writer needs an object and has
 * none ready (or the limbo is full), it waits for one grace period itself
 * and makes the whole limbo reusable. With no reader inside a read-side
 * section a grace period costs about 2 us, so a hot path that splits and
 * collapses radix nodes (attribute changes) pays one grace period per
 * PM_RECYCLE_BATCH objects, instead of malloc/free per object and waiting
 * milliseconds for liburcu's callback thread.
 *
 * Callers must not be inside an RCU read-side section (they would wait
 * for themselves).
 *
 * Locking: r->lock protects every field below it. A retired object is
 * never written before its grace period ends (readers may be in it).
 */
#ifndef PM_LIB_RECYCLE_H
#define PM_LIB_RECYCLE_H

#include <pthread.h>
#include "lib/common.h"

#define PM_RECYCLE_BATCH 128

struct pm_recycler {
	size_t size;                        /* object size; immutable */
	size_t max_free;                    /* cached objects beyond this are freed */
	pthread_mutex_t lock;
	void *free_list;                    /* reusable, linked through their first word */
	size_t nr_free;
	void *limbo[PM_RECYCLE_BATCH];      /* retired, waiting for a grace period */
	unsigned int nr_limbo;
	uint64_t grace_periods;             /* waited for by the recycler (statistics) */
};

void pm_recycler_init(struct pm_recycler *r, size_t size, size_t max_free);
/* Frees everything (after a grace period for the limbo); no concurrent users. */
void pm_recycler_destroy(struct pm_recycler *r);
/* A zeroed object, or NULL on ENOMEM. */
void *pm_recycler_alloc(struct pm_recycler *r);
/* An object no reader has seen: reusable at once. */
void pm_recycler_free(struct pm_recycler *r, void *obj);
/* An object just unlinked: reusable after a grace period. */
void pm_recycler_retire(struct pm_recycler *r, void *obj);

#endif

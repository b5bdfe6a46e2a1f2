/* SPDX-License-Identifier: MIT */
/*
 * An RCU recycler: objects of one size that a writer unlinks under its own
 * lock while lock-free readers may still be looking at them. Retired
 * objects wait in a limbo; pm_recycler_maintain(), which the writer calls
 * after dropping its own lock, waits for one grace period when a batch has
 * gathered and makes the batch reusable. With no reader inside a read-side
 * section a grace period costs about 2 us, so a hot path that splits and
 * collapses radix nodes (attribute changes) pays one grace period per
 * PM_RECYCLE_BATCH objects, instead of malloc/free per object and waiting
 * milliseconds for liburcu's callback thread.
 *
 * An object retired as "zero" (its content is all zero, e.g. a collapsed
 * radix node whose entries were all 0) is reused as it is; others are
 * zeroed when a zeroed object is asked for. Zeroing 4 KiB nodes on every
 * reuse would cost as much memory traffic as the pages being converted.
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

#define PM_RECYCLE_BATCH 128              /* retired objects per grace period */
#define PM_RECYCLE_LIMBO (2 * PM_RECYCLE_BATCH) /* room while a drain is pending */

struct pm_recycler {
	size_t size;                        /* object size; immutable */
	size_t max_free;                    /* cached objects beyond this are freed */
	pthread_mutex_t lock;
	void *zero_list;                    /* reusable, all zero but the link word */
	void *dirty_list;                   /* reusable, content unknown */
	size_t nr_free;                     /* on both lists */
	uintptr_t limbo[PM_RECYCLE_LIMBO];  /* retired: object | 1 if zero */
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
/* An object just unlinked: reusable after a grace period; `zero` says its
 * content is all zero. Cheap: it only waits for a grace period itself when
 * the limbo is completely full. */
void pm_recycler_retire(struct pm_recycler *r, void *obj, bool zero);
/* Called by the writer after it dropped its own lock: when a batch has
 * gathered, waits for one grace period and makes it reusable. */
void pm_recycler_maintain(struct pm_recycler *r);

#endif

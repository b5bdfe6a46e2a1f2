/* SPDX-License-Identifier: MIT */
/*
 * Common definitions for privmem's internals: address types, page sizes,
 * assertions and small helpers. Nothing here is part of the public API.
 */
#ifndef PM_LIB_COMMON_H
#define PM_LIB_COMMON_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t gfn_t;   /* guest frame number (GPA >> 12) */
typedef uint64_t gpa_t;   /* guest physical address */
typedef uint64_t pm_pfn_t; /* frame number in the frame pool (host "physical") */

#define PM_PAGE_SHIFT   12
#define PM_PAGE_SIZE    (1ULL << PM_PAGE_SHIFT)
#define PM_PAGE_MASK    (~(PM_PAGE_SIZE - 1))
#define PM_ORDER_4K     0
#define PM_ORDER_2M     9
#define PM_ORDER_1G     18
#define PM_PFN_INVALID  UINT64_MAX

#define PM_ALIGNED(x, a)     (((x) & ((a) - 1)) == 0)
#define PM_ALIGN_DOWN(x, a)  ((x) & ~((__typeof__(x))(a) - 1))
#define PM_ALIGN_UP(x, a)    PM_ALIGN_DOWN((x) + (a) - 1, (a))
#define PM_MIN(a, b)         ((a) < (b) ? (a) : (b))
#define PM_MAX(a, b)         ((a) > (b) ? (a) : (b))
#define PM_ARRAY_SIZE(a)     (sizeof(a) / sizeof((a)[0]))

#define pm_container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

#define pm_likely(x)   __builtin_expect(!!(x), 1)
#define pm_unlikely(x) __builtin_expect(!!(x), 0)

/* An internal impossibility: abort with a message. Never compiled out. */
#define PM_BUG_ON(cond)                                                        \
	do {                                                                   \
		if (pm_unlikely(cond))                                         \
			pm_bug(__FILE__, __LINE__, #cond);                     \
	} while (0)

_Noreturn void pm_bug(const char *file, int line, const char *what);
/* An event the simulated hardware treats as fatal for the host (where real
 * hardware would crash it): abort with the message. */
_Noreturn void pm_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Half-open ranges [s1, e1) and [s2, e2) intersect. */
static inline bool pm_ranges_overlap(uint64_t s1, uint64_t e1, uint64_t s2, uint64_t e2)
{
	return s1 < e2 && s2 < e1;
}

/* Reference counts: get on a live object, put returns true on the last put. */
typedef struct { atomic_long n; } pm_refcount_t;

static inline void pm_ref_init(pm_refcount_t *r, long n) { atomic_init(&r->n, n); }
static inline void pm_ref_get(pm_refcount_t *r)
{
	long old = atomic_fetch_add_explicit(&r->n, 1, memory_order_relaxed);
	PM_BUG_ON(old <= 0);
}
static inline bool pm_ref_put(pm_refcount_t *r)
{
	long old = atomic_fetch_sub_explicit(&r->n, 1, memory_order_acq_rel);
	PM_BUG_ON(old <= 0);
	return old == 1;
}
static inline long pm_ref_read(pm_refcount_t *r)
{
	return atomic_load_explicit(&r->n, memory_order_relaxed);
}

/* copy_from_user: copies n bytes from a host address the VMM gave, without
 * trusting it: 0, or -EFAULT (dst then holds anything) where a byte is not
 * readable, instead of crashing the process. One system call. */
int pm_copy_from_user(void *dst, const void *src, size_t n);
/* copy_to_user: 0, or -EFAULT where a byte of dst is not writable (then
 * the bytes before it may have been written, as the kernel's). */
int pm_copy_to_user(void *dst, const void *src, size_t n);

/* Allocation that zeroes; aborts only on impossible sizes, returns NULL on ENOMEM. */
static inline void *pm_zalloc(size_t n) { return calloc(1, n); }

#endif

/* SPDX-License-Identifier: MIT */
/*
 * madvise on guest_memfd views: what Linux's madvise does on a mapping of
 * a guest_memfd (pm_kvm_madvise, and the interposer's madvise on the
 * mappings it recorded).
 *  - MADV_COLLAPSE: EINVAL, with nothing done anywhere in the range: a
 *    guest_memfd mapping is never eligible for a THP collapse (upstream's
 *    guest_memfd_test, test_collapse), its page sizes are the file's own;
 *  - MADV_REMOVE: a hole punch of the file, as Linux's madvise_remove
 *    calls vfs_fallocate (EACCES on a view that is not writable);
 *  - anything else (MADV_HUGEPAGE, which succeeds, MADV_DONTNEED, ...)
 *    goes to the kernel on the view, a real mapping of the file's host
 *    file (gmem_mmap.c).
 * Parts of the range that no view maps go to the kernel as they are. The
 * views met are found under all_views_lock and used with a reference on
 * their file, without it (gmem_mmap.c's pm_gmem_views_in).
 */
#include <sys/mman.h>
#include <linux/falloc.h>
#include "gmem/gmem_internal.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

static int kernel_madvise(uint8_t *lo, uint8_t *hi, int advice)
{
	return lo < hi && madvise(lo, (size_t)(hi - lo), advice) ? -errno : 0;
}

static int view_madvise(const struct pm_gmem_view_part *p, int advice)
{
	if (advice != MADV_REMOVE)
		return kernel_madvise(p->lo, p->hi, advice);
	if (!(p->prot & PROT_WRITE))
		return -EACCES;
	return pm_gmem_fallocate(p->g, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				 (int64_t)(p->start << PM_PAGE_SHIFT),
				 (int64_t)((p->end - p->start) << PM_PAGE_SHIFT));
}

int pm_gmem_madvise(void *addr, size_t len, int advice)
{
	uint8_t *lo = addr, *hi, *at;
	struct pm_gmem_view_part *parts;
	size_t n;
	int r, err = 0;

	if (!PM_ALIGNED((uintptr_t)addr, PM_PAGE_SIZE) || len > UINTPTR_MAX - (uintptr_t)addr - PM_PAGE_SIZE)
		return -EINVAL;
	hi = lo + PM_ALIGN_UP(len, PM_PAGE_SIZE);
	r = pm_gmem_views_in(lo, hi, &parts, &n);
	if (r)
		return r;
	if (!n)
		return madvise(addr, len, advice) ? -errno : 0;
	if (advice == MADV_COLLAPSE) {
		err = -EINVAL;
		goto out;
	}
	/* As the kernel walks the VMAs: every part is advised, the first
	 * error is returned. */
	at = lo;
	for (size_t i = 0; i < n; i++) {
		r = kernel_madvise(at, parts[i].lo, advice);
		err = err ? err : r;
		r = view_madvise(&parts[i], advice);
		err = err ? err : r;
		at = parts[i].hi;
	}
	r = kernel_madvise(at, hi, advice);
	err = err ? err : r;
out:
	pm_gmem_views_put(parts, n);
	return err;
}

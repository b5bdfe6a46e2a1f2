/* SPDX-License-Identifier: MIT */
/*
 * mmap of a guest_memfd: views of the file in the VMM's address space.
 *
 * A view is a MAP_SHARED mapping whose pages are either the pool frames of
 * host-shared file pages (mapped from the pool's memfd, in place: the guest
 * and the VMM see the same memory) or a "SIGBUS backing", a zero-length
 * memfd, so that any access faults with SIGBUS exactly where Linux's
 * guest_memfd faults: pages that are not shared, and pages at or past the
 * end of the file.
 *
 * privmem has no page-fault handler in the host process, so shared pages are
 * populated when a view maps them (at mmap, after fallocate, and again after
 * a punch hole: they read zero, as a freshly faulted page would) rather than
 * on first touch. Before frames are freed, every view stops mapping them.
 *
 * Each view holds a reference on its file. views_lock (per file) protects a
 * file's view list and serialises remapping; all_views_lock protects the
 * process-wide list pm_kvm_munmap() searches.
 */
#include <sys/mman.h>
#include <privmem/privmem.h>
#include "gmem/gmem_internal.h"
#include "gmem/pool.h"

struct pm_gmem_view {
	struct pm_gmem *g;          /* referenced */
	uint8_t *addr;              /* immutable */
	size_t len;                 /* bytes, page multiple; immutable */
	uint64_t pgoff;             /* first file page; immutable */
	int prot;                   /* immutable */
	struct pm_gmem_view *next;      /* g->views_lock */
	struct pm_gmem_view *all_next;  /* all_views_lock */
};

static pthread_mutex_t all_views_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pm_gmem_view *all_views;      /* all_views_lock */

static pthread_once_t sigbus_once = PTHREAD_ONCE_INIT;
static int sigbus_fd = -1;                  /* written once */

static void sigbus_init(void)
{
	sigbus_fd = memfd_create("privmem-sigbus", MFD_CLOEXEC);
}

/* Maps `n` pages at addr: frames from pfn on, or the SIGBUS backing. */
static int view_map(struct pm_gmem_view *v, uint8_t *addr, uint64_t n, pm_pfn_t pfn)
{
	int fd = pfn == PM_PFN_INVALID ? sigbus_fd : pm_pool_memfd();
	off_t off = pfn == PM_PFN_INVALID ? 0 : (off_t)(pfn << PM_PAGE_SHIFT);
	void *p = mmap(addr, n << PM_PAGE_SHIFT, v->prot, MAP_SHARED | MAP_FIXED, fd, off);

	return p == MAP_FAILED ? -errno : 0;
}

/* Frame to show at file page `index`: populates host-shared pages (not
 * prepared: that is the guest's first use). A frame the hardware refuses
 * the host (an SNP page still assigned to the guest) is not mapped: the
 * refusal is counted by the hardware's guard, and the page faults (SIGBUS). */
static pm_pfn_t view_frame(struct pm_gmem_view *v, uint64_t index)
{
	pm_pfn_t pfn;

	if (!pm_gmem_host_shared(v->g, index))
		return PM_PFN_INVALID;
	if (pm_gmem_get_pfn_host(v->g, index, &pfn))
		return PM_PFN_INVALID;   /* no memory: the page faults (SIGBUS) */
	if (pm_host_access(pfn, 1, v->prot & PROT_WRITE))
		return PM_PFN_INVALID;
	return pfn;
}

/* Maps file pages [start, end) ∩ v, coalescing runs of contiguous frames. */
static int view_fill(struct pm_gmem_view *v, uint64_t start, uint64_t end, bool revoke)
{
	uint64_t vend = v->pgoff + (v->len >> PM_PAGE_SHIFT);
	uint64_t lo = PM_MAX(start, v->pgoff), hi = PM_MIN(end, vend);
	int r = 0;

	for (uint64_t i = lo; i < hi && !r;) {
		pm_pfn_t first = revoke ? PM_PFN_INVALID : view_frame(v, i);
		uint64_t n = 1;

		while (i + n < hi) {
			pm_pfn_t next = revoke ? PM_PFN_INVALID : view_frame(v, i + n);

			if (first == PM_PFN_INVALID ? next != PM_PFN_INVALID : next != first + n)
				break;
			n++;
		}
		r = view_map(v, v->addr + ((i - v->pgoff) << PM_PAGE_SHIFT), n, first);
		i += n;
	}
	return r;
}

void pm_gmem_views_revoke(struct pm_gmem *g, uint64_t start, uint64_t end)
{
	if (!atomic_load(&g->nr_views))
		return;
	pthread_mutex_lock(&g->views_lock);
	for (struct pm_gmem_view *v = g->views; v; v = v->next)
		PM_BUG_ON(view_fill(v, start, end, true));   /* MAP_FIXED over our own mapping */
	pthread_mutex_unlock(&g->views_lock);
}

/* A view being created counts itself before it reads the index, so a
 * caller that changed the index and then sees no view loses nothing by
 * skipping the lock: the new view read the changed index. */
void pm_gmem_views_refresh(struct pm_gmem *g, uint64_t start, uint64_t end)
{
	if (!atomic_load(&g->nr_views))
		return;
	pthread_mutex_lock(&g->views_lock);
	for (struct pm_gmem_view *v = g->views; v; v = v->next)
		PM_BUG_ON(view_fill(v, start, end, false));
	pthread_mutex_unlock(&g->views_lock);
}

void *pm_gmem_mmap(struct pm_gmem *g, void *addr, size_t len, int prot, int flags,
		   int64_t offset, int *err)
{
	struct pm_gmem_view *v;
	void *p;

	if (!(g->flags & GUEST_MEMFD_FLAG_MMAP)) {
		*err = -ENODEV;
		return NULL;
	}
	if ((flags & MAP_TYPE) != MAP_SHARED && (flags & MAP_TYPE) != MAP_SHARED_VALIDATE) {
		*err = -EINVAL;
		return NULL;
	}
	pthread_once(&sigbus_once, sigbus_init);
	v = pm_zalloc(sizeof(*v));
	if (!v || sigbus_fd < 0) {
		free(v);
		*err = -ENOMEM;
		return NULL;
	}
	p = mmap(addr, len, prot, MAP_SHARED | (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)), sigbus_fd, 0);
	if (p == MAP_FAILED) {
		*err = -errno;
		free(v);
		return NULL;
	}
	v->g = g;
	v->addr = p;
	v->len = len;
	v->pgoff = (uint64_t)offset >> PM_PAGE_SHIFT;
	v->prot = prot;
	pm_gmem_get(g);

	pthread_mutex_lock(&g->views_lock);
	/* Counted before it reads the index (seq_cst): a punch that then finds
	 * no view removed its pages before this fill read them. */
	atomic_fetch_add(&g->nr_views, 1);
	*err = view_fill(v, v->pgoff, v->pgoff + (len >> PM_PAGE_SHIFT), false);
	if (!*err) {
		v->next = g->views;
		g->views = v;
	} else {
		atomic_fetch_sub(&g->nr_views, 1);
	}
	pthread_mutex_unlock(&g->views_lock);
	if (*err) {
		munmap(p, len);
		pm_gmem_put(g);
		free(v);
		return NULL;
	}
	pthread_mutex_lock(&all_views_lock);
	v->all_next = all_views;
	all_views = v;
	pthread_mutex_unlock(&all_views_lock);
	return p;
}

static struct pm_gmem_view *views_take(void *addr, size_t len)
{
	struct pm_gmem_view *v = NULL;

	pthread_mutex_lock(&all_views_lock);
	for (struct pm_gmem_view **pv = &all_views; *pv; pv = &(*pv)->all_next) {
		if ((*pv)->addr == addr && (*pv)->len == len) {
			v = *pv;
			*pv = v->all_next;
			break;
		}
	}
	pthread_mutex_unlock(&all_views_lock);
	return v;
}

int pm_gmem_munmap(void *addr, size_t len)
{
	struct pm_gmem_view *v = views_take(addr, len);
	struct pm_gmem *g;

	if (!v)
		return -EINVAL;
	g = v->g;
	pthread_mutex_lock(&g->views_lock);
	for (struct pm_gmem_view **pv = &g->views; *pv; pv = &(*pv)->next) {
		if (*pv == v) {
			*pv = v->next;
			atomic_fetch_sub_explicit(&g->nr_views, 1, memory_order_release);
			break;
		}
	}
	munmap(v->addr, v->len);
	pthread_mutex_unlock(&g->views_lock);
	free(v);
	pm_gmem_put(g);
	return 0;
}

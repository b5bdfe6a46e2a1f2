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
#include "host/host_guard.h"
#include "host/pool.h"
#include "kvm/vm.h"
#include "models/model.h"

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

/* Maps `n` pages at addr: frames from pfn on, or the SIGBUS backing. The
 * backing is mapped at the file offset of the page (it has no pages at
 * all): neighbouring SIGBUS stretches then continue each other, and the
 * kernel merges them into one mapping instead of keeping one per page. */
static int view_map(struct pm_gmem_view *v, uint8_t *addr, uint64_t n, pm_pfn_t pfn)
{
	int fd = pfn == PM_PFN_INVALID ? sigbus_fd : pm_pool_memfd();
	off_t off = pfn == PM_PFN_INVALID ? (off_t)(v->pgoff * PM_PAGE_SIZE + (uint64_t)(addr - v->addr))
					  : (off_t)(pfn << PM_PAGE_SHIFT);
	void *p = mmap(addr, n << PM_PAGE_SHIFT, v->prot, MAP_SHARED | MAP_FIXED, fd, off);

	return p == MAP_FAILED ? -errno : 0;
}

/* Frame the host may map at file page `index` now, or PM_PFN_INVALID.
 * With a model that decides per frame (pKVM: the pages its guest shares),
 * the allocated pages it accepts, allocating nothing; otherwise the pages
 * of an INIT_SHARED file, populated (not prepared: that is the guest's
 * first use). Either way the hardware's guards have the last word (an SNP
 * page still assigned to the guest is refused, and the refusal counted). */
static pm_pfn_t host_frame(struct pm_gmem *g, uint64_t index, bool write)
{
	const struct pm_model_ops *model = g->vm->model;
	pm_pfn_t pfn;

	if (model->gmem_host_mappable) {
		pfn = index < g->npages ? pm_gmem_peek_pfn(g, index) : PM_PFN_INVALID;
		if (pfn != PM_PFN_INVALID && !model->gmem_host_mappable(g->vm, pfn))
			pfn = PM_PFN_INVALID;
	} else if (!pm_gmem_host_shared(g, index) || pm_gmem_get_pfn_host(g, index, &pfn)) {
		pfn = PM_PFN_INVALID;   /* no memory: the page faults (SIGBUS) */
	}
	if (pfn != PM_PFN_INVALID && pm_host_access(pfn, 1, write))
		pfn = PM_PFN_INVALID;
	return pfn;
}

/* Frame a view shows at file page `index`: SIGBUS (PM_PFN_INVALID) where
 * the host may not map. */
static pm_pfn_t view_frame(struct pm_gmem_view *v, uint64_t index)
{
	return host_frame(v->g, index, v->prot & PROT_WRITE);
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

static void views_fill_locked(struct pm_gmem *g, uint64_t start, uint64_t end, bool revoke)
{
	for (struct pm_gmem_view *v = g->views; v; v = v->next)
		PM_BUG_ON(view_fill(v, start, end, revoke));   /* MAP_FIXED over our own mapping */
}

void pm_gmem_views_revoke(struct pm_gmem *g, uint64_t start, uint64_t end)
{
	if (!atomic_load(&g->nr_views))
		return;
	pthread_mutex_lock(&g->views_lock);
	views_fill_locked(g, start, end, true);
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
	views_fill_locked(g, start, end, false);
	pthread_mutex_unlock(&g->views_lock);
}

/* ---- pins, and taking pages away from the host ---- */

static struct pm_gmem_pin_rec *pin_find(struct pm_gmem *g, uint64_t index)
{
	for (size_t i = 0; i < g->nr_pins; i++)
		if (g->pins[i].index == index)
			return &g->pins[i];
	return NULL;
}

/* The first pinned page of [start, end), or end. */
static uint64_t first_pinned_locked(struct pm_gmem *g, uint64_t start, uint64_t end)
{
	for (size_t i = 0; i < g->nr_pins; i++)
		if (g->pins[i].index >= start && g->pins[i].index < end)
			end = g->pins[i].index;
	return end;
}

/* Room for n more records. */
static int pins_reserve_locked(struct pm_gmem *g, size_t n)
{
	struct pm_gmem_pin_rec *p;
	size_t cap = g->cap_pins ? g->cap_pins : 8;

	while (cap < g->nr_pins + n)
		cap *= 2;
	if (cap == g->cap_pins)
		return 0;
	p = realloc(g->pins, cap * sizeof(*p));
	if (!p)
		return -ENOMEM;
	g->pins = p;
	g->cap_pins = cap;
	return 0;
}

int pm_gmem_pin(struct pm_gmem *g, uint64_t start, uint64_t end)
{
	int r = 0;

	if (end > g->npages)
		return -EFAULT;
	pthread_mutex_lock(&g->views_lock);
	for (uint64_t i = start; i < end && !r; i++)
		if (host_frame(g, i, true) == PM_PFN_INVALID)
			r = -EFAULT;
	if (!r)
		r = pins_reserve_locked(g, end - start);
	for (uint64_t i = start; i < end && !r; i++) {
		struct pm_gmem_pin_rec *p = pin_find(g, i);

		if (!p) {
			p = &g->pins[g->nr_pins++];
			*p = (struct pm_gmem_pin_rec){ .index = i };
		}
		p->count++;
	}
	pthread_mutex_unlock(&g->views_lock);
	return r;
}

static void pin_remove_locked(struct pm_gmem *g, struct pm_gmem_pin_rec *p)
{
	*p = g->pins[--g->nr_pins];
}

int pm_gmem_unpin(struct pm_gmem *g, uint64_t start, uint64_t end)
{
	int r = 0;

	pthread_mutex_lock(&g->views_lock);
	for (uint64_t i = start; i < end && !r; i++)
		if (!pin_find(g, i))
			r = -EINVAL;
	for (uint64_t i = start; i < end && !r; i++) {
		struct pm_gmem_pin_rec *p = pin_find(g, i);

		if (!--p->count)
			pin_remove_locked(g, p);
	}
	pthread_mutex_unlock(&g->views_lock);
	return r;
}

void pm_gmem_pins_drop(struct pm_gmem *g, uint64_t start, uint64_t end)
{
	pthread_mutex_lock(&g->views_lock);
	for (size_t i = 0; i < g->nr_pins;) {
		if (g->pins[i].index >= start && g->pins[i].index < end)
			pin_remove_locked(g, &g->pins[i]);
		else
			i++;
	}
	pthread_mutex_unlock(&g->views_lock);
}

long pm_gmem_host_unmap(struct pm_gmem *g, uint64_t start, uint64_t end,
			long (*fn)(void *arg, uint64_t n), void *arg)
{
	long r = -EBUSY;

	pthread_mutex_lock(&g->views_lock);
	end = first_pinned_locked(g, start, end);
	if (end > start) {
		views_fill_locked(g, start, end, true);
		r = fn(arg, end - start);
		views_fill_locked(g, start + (uint64_t)(r > 0 ? r : 0), end, false);
	}
	pthread_mutex_unlock(&g->views_lock);
	return r;
}

void pm_gmem_host_remap(struct pm_gmem *g, uint64_t start, uint64_t end)
{
	/* The model's state changed before this fence; a view created
	 * concurrently counts itself before it reads that state (pm_gmem_mmap). */
	atomic_thread_fence(memory_order_seq_cst);
	pm_gmem_views_refresh(g, start, end);
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
	p = mmap(addr, len, prot, MAP_SHARED | (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)), sigbus_fd, (off_t)offset);
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

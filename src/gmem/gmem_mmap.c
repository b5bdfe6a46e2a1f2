/* SPDX-License-Identifier: MIT */
/*
 * mmap of a guest_memfd: views of the file in the VMM's address space.
 *
 * A view is one MAP_SHARED mapping of the file's host file H
 * (gmem_host.c), made once, where the caller asked or the kernel chose,
 * and never touched by the library again: no remapping, so a view never
 * lands on memory the library does not own, and no share pattern can
 * split it into many kernel mappings. What it shows is what H holds: the
 * pages the host may map; H's holes are the pages it may not.
 *
 * SIGBUS where Linux's guest_memfd faults. A page past the end of the file
 * is past the end of H: the kernel raises SIGBUS itself. A hole of H (a
 * page the guest did not share, a poisoned page) would read zeros, so each
 * view is registered with a userfaultfd in MISSING mode with
 * UFFD_FEATURE_SIGBUS: the kernel answers a fault on a hole with SIGBUS
 * (and a system call touching it, vmsplice or process_vm_readv, with
 * EFAULT) and needs no handler thread. One userfaultfd serves the process;
 * an unprivileged process without vm.unprivileged_userfaultfd gets one
 * with UFFD_USER_MODE_ONLY (kernel accesses then fail with EFAULT just the
 * same). Without userfaultfd at all (or with pm_gmem_views_test_plain),
 * views are plain mappings of H: a hole reads zeros, and the first access
 * puts a zero page there, which then every mapping of H shows until the
 * page is next shared or punched. A userfaultfd's registrations do not
 * follow a mapping into a fork child or an mremap duplicate (that needs
 * fork or remap events, which block until a handler reads them): a fork
 * child's copies of the views are registered again with a userfaultfd of
 * the child's own (pthread_atfork), but an mremap duplicate, or a copy in
 * a child made without fork(), reads zeros on a hole, with the same
 * effect. Never the guest's data: that lives in the frame. A view of a
 * file whose model injects an abort there instead (pKVM's protected VMs,
 * pm_model_ops.host_fault_sigsegv) registers the part of it inside the file
 * with host/host_abort.h, which answers those faults with SIGSEGV.
 *
 * Records. Each view holds a reference on its file and is on its file's
 * list (host_lock; a state file populates the shared pages its views show)
 * and on the process-wide list pm_kvm_munmap() searches (all_views_lock, a
 * leaf but for the fork handlers, which take uffd_lock before it). A
 * MAP_FIXED mmap replaces whatever it covers, as in Linux: the records of
 * views wholly under it are dropped with their mappings.
 */
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/userfaultfd.h>
#include <privmem/privmem.h>
#include "gmem/gmem_internal.h"
#include "host/host_abort.h"
#include "kvm/vm.h"

struct pm_gmem_view {
	struct pm_gmem *g;          /* referenced */
	uint8_t *addr;              /* immutable */
	size_t len;                 /* bytes, page multiple; immutable */
	uint64_t pgoff;             /* first file page; immutable */
	int prot;                   /* immutable */
	bool registered;            /* holes fault (userfaultfd); all_views_lock once published */
	int abort_id;               /* its range in host_abort.h (SIGSEGV), or -1; immutable
	                             * until the view goes */
	struct pm_gmem_view *next;      /* g->host_lock */
	struct pm_gmem_view *all_next;  /* all_views_lock */
};

static pthread_mutex_t all_views_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pm_gmem_view *all_views;      /* all_views_lock */

/* ---- the process's userfaultfd ---- */

/*
 * A userfaultfd acts on the memory of the process that made it, even in a
 * fork child that inherited its descriptor (registering there would change
 * the parent's mappings): views_uffd serves views_uffd_pid only, and any
 * other process makes its own. A fork child's copies of the views lost
 * their registration (it was the parent's); fork_child registers them
 * again with the child's own. Lock order: uffd_lock, then all_views_lock
 * (taken together only around fork).
 */
static pthread_mutex_t uffd_lock = PTHREAD_MUTEX_INITIALIZER;
static int views_uffd = -1;                 /* uffd_lock */
static pid_t views_uffd_pid;                /* uffd_lock: whom views_uffd serves */
static atomic_bool views_plain;             /* tests: new views are not registered */
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static int uffd_open(int flags)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | flags);
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_SIGBUS };

	if (fd < 0)
		return -1;
	if (ioctl(fd, UFFDIO_API, &api) || !(api.features & UFFD_FEATURE_SIGBUS)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* This process's userfaultfd, or -1 without one. uffd_lock. An inherited
 * one is left open (closing it from a fork handler could meet an
 * interposer's close): a descriptor per generation. */
static int uffd_get_locked(void)
{
	pid_t me = getpid();

	if (views_uffd_pid != me) {
		views_uffd = uffd_open(0);
		if (views_uffd < 0)
			views_uffd = uffd_open(UFFD_USER_MODE_ONLY);
		views_uffd_pid = me;
	}
	return views_uffd;
}

void pm_gmem_views_test_plain(bool plain)
{
	atomic_store(&views_plain, plain);
}

static int uffd_register(int fd, uint8_t *addr, size_t len)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};

	return ioctl(fd, UFFDIO_REGISTER, &reg) ? -errno : 0;
}

/* Holes of the view fault with SIGBUS from now on: 0 and *registered,
 * or -errno for a failure the caller reports (a kernel that cannot
 * register shared memory leaves the view plain, as without userfaultfd). */
static int view_register(uint8_t *addr, size_t len, bool *registered)
{
	int fd, r = 0;

	*registered = false;
	if (atomic_load(&views_plain))
		return 0;
	pthread_mutex_lock(&uffd_lock);
	fd = uffd_get_locked();
	if (fd >= 0) {
		r = uffd_register(fd, addr, len);
		*registered = !r;
		if (r == -EINVAL)
			r = 0;
	}
	pthread_mutex_unlock(&uffd_lock);
	return r;
}

static void views_fork_prepare(void)
{
	pthread_mutex_lock(&uffd_lock);
	pthread_mutex_lock(&all_views_lock);
}

static void views_fork_parent(void)
{
	pthread_mutex_unlock(&all_views_lock);
	pthread_mutex_unlock(&uffd_lock);
}

/* The child's copies of registered views fault on holes again, with a
 * userfaultfd of its own (system calls only: this is a fork handler). */
static void views_fork_child(void)
{
	int fd = -1;

	for (struct pm_gmem_view *v = all_views; v; v = v->all_next) {
		if (!v->registered)
			continue;
		if (fd < 0)
			fd = uffd_get_locked();
		if (fd < 0 || uffd_register(fd, v->addr, v->len))
			v->registered = false;
	}
	pthread_mutex_unlock(&all_views_lock);
	pthread_mutex_unlock(&uffd_lock);
}

static void views_fork_init(void)
{
	pthread_atfork(views_fork_prepare, views_fork_parent, views_fork_child);
}

/* ---- state files: the shared pages views show are populated ---- */

static void view_populate_locked(struct pm_gmem *g, uint64_t start, uint64_t end)
{
	uint64_t stop;
	pm_pfn_t pfn;

	end = PM_MIN(end, g->npages);
	for (uint64_t i = start; i < end; i = stop) {
		if (!gmem_shared_run(g, i, end, &stop))
			continue;
		for (uint64_t k = i; k < stop; k++)
			if (gmem_host_showable(g, k))
				pm_gmem_get_pfn_host(g, k, &pfn);   /* no memory: the frame is missing, not the page */
	}
	gmem_host_populate_locked(g, start, end);
}

void gmem_views_populate_locked(struct pm_gmem *g, uint64_t start, uint64_t end)
{
	if (!gmem_host_by_state(g) || !atomic_load(&g->nr_views))
		return;
	for (struct pm_gmem_view *v = g->views; v; v = v->next)
		view_populate_locked(g, PM_MAX(start, v->pgoff),
				     PM_MIN(end, v->pgoff + (v->len >> PM_PAGE_SHIFT)));
}

void gmem_views_populate(struct pm_gmem *g, uint64_t start, uint64_t end)
{
	if (!gmem_host_by_state(g) || !atomic_load(&g->nr_views))
		return;
	pthread_mutex_lock(&g->host_lock);
	gmem_views_populate_locked(g, start, end);
	pthread_mutex_unlock(&g->host_lock);
}

/* ---- records ---- */

static void view_unlink(struct pm_gmem_view *v)
{
	struct pm_gmem *g = v->g;

	pthread_mutex_lock(&g->host_lock);
	for (struct pm_gmem_view **pv = &g->views; *pv; pv = &(*pv)->next) {
		if (*pv == v) {
			*pv = v->next;
			atomic_fetch_sub(&g->nr_views, 1);
			break;
		}
	}
	pthread_mutex_unlock(&g->host_lock);
}

/* The model injects an abort where the view would fault (pKVM): SIGSEGV
 * on the pages of the file the view maps (past its end stays SIGBUS). */
static int view_abort_register(struct pm_gmem *g, struct pm_gmem_view *v)
{
	uint64_t pages = v->len >> PM_PAGE_SHIFT;

	v->abort_id = -1;
	if (!g->vm->model->host_fault_sigsegv || v->pgoff >= g->npages)
		return 0;
	pages = PM_MIN(pages, g->npages - v->pgoff);
	return pm_host_abort_register(v->addr, pages << PM_PAGE_SHIFT, &v->abort_id);
}

static void view_abort_unregister(struct pm_gmem_view *v)
{
	pm_host_abort_unregister(v->abort_id);
	v->abort_id = -1;
}

static void view_free(struct pm_gmem_view *v)
{
	struct pm_gmem *g = v->g;

	view_abort_unregister(v);
	view_unlink(v);
	free(v);
	pm_gmem_put(g);
}

/* Takes the records of views lying wholly in [addr, addr + len) off the
 * process list: a MAP_FIXED mmap there has replaced their mappings. */
static struct pm_gmem_view *views_take_under(const uint8_t *addr, size_t len)
{
	struct pm_gmem_view *taken = NULL;

	pthread_mutex_lock(&all_views_lock);
	for (struct pm_gmem_view **pv = &all_views; *pv;) {
		struct pm_gmem_view *v = *pv;

		if (v->addr >= addr && v->addr + v->len <= addr + len) {
			*pv = v->all_next;
			v->all_next = taken;
			taken = v;
		} else {
			pv = &v->all_next;
		}
	}
	pthread_mutex_unlock(&all_views_lock);
	return taken;
}

static void view_publish(struct pm_gmem_view *v)
{
	pthread_mutex_lock(&all_views_lock);
	v->all_next = all_views;
	all_views = v;
	pthread_mutex_unlock(&all_views_lock);
}

/* ---- mmap, munmap ---- */

void *pm_gmem_mmap(struct pm_gmem *g, void *addr, size_t len, int prot, int flags,
		   int64_t offset, int *err)
{
	struct pm_gmem_view *v, *gone;
	void *p;

	if (!(g->flags & GUEST_MEMFD_FLAG_MMAP)) {
		*err = -ENODEV;
		return NULL;
	}
	if ((flags & MAP_TYPE) != MAP_SHARED && (flags & MAP_TYPE) != MAP_SHARED_VALIDATE) {
		*err = -EINVAL;
		return NULL;
	}
	v = pm_zalloc(sizeof(*v));
	if (!v) {
		*err = -ENOMEM;
		return NULL;
	}
	p = mmap(addr, len, prot, MAP_SHARED | (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)),
		 g->host_fd, (off_t)offset);
	if (p == MAP_FAILED) {
		*err = -errno;
		free(v);
		return NULL;
	}
	pthread_once(&fork_once, views_fork_init);
	*err = view_register(p, len, &v->registered);
	if (*err) {
		munmap(p, len);
		free(v);
		return NULL;
	}
	v->g = g;
	v->addr = p;
	v->len = len;
	v->pgoff = (uint64_t)offset >> PM_PAGE_SHIFT;
	v->prot = prot;
	*err = view_abort_register(g, v);
	if (*err) {
		munmap(p, len);
		free(v);
		return NULL;
	}
	pm_gmem_get(g);

	pthread_mutex_lock(&g->host_lock);
	v->next = g->views;
	g->views = v;
	atomic_fetch_add(&g->nr_views, 1);
	gmem_host_expose_locked(g);
	if (gmem_host_by_state(g))
		view_populate_locked(g, v->pgoff, v->pgoff + (len >> PM_PAGE_SHIFT));
	pthread_mutex_unlock(&g->host_lock);

	if (flags & MAP_FIXED) {
		gone = views_take_under(p, len);
		while (gone) {
			struct pm_gmem_view *next = gone->all_next;

			view_free(gone);
			gone = next;
		}
	}
	view_publish(v);
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

	if (!v)
		return -EINVAL;
	view_abort_unregister(v);
	munmap(v->addr, v->len);
	view_free(v);
	return 0;
}

/* ---- calls on address ranges (madvise, mbind) ---- */

static int cmp_part(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)((const struct pm_gmem_view_part *)a)->lo;
	uintptr_t y = (uintptr_t)((const struct pm_gmem_view_part *)b)->lo;

	return x < y ? -1 : x > y;
}

int pm_gmem_views_in(const uint8_t *lo, const uint8_t *hi, struct pm_gmem_view_part **out,
		     size_t *n)
{
	struct pm_gmem_view_part *parts = NULL;
	size_t cap = 0;

	*n = 0;
	pthread_mutex_lock(&all_views_lock);
	for (struct pm_gmem_view *v = all_views; v; v = v->all_next)
		cap += v->addr < hi && lo < v->addr + v->len;
	if (cap && !(parts = calloc(cap, sizeof(*parts)))) {
		pthread_mutex_unlock(&all_views_lock);
		return -ENOMEM;
	}
	for (struct pm_gmem_view *v = all_views; v && cap; v = v->all_next) {
		const uint8_t *a = PM_MAX(lo, (const uint8_t *)v->addr);
		const uint8_t *b = PM_MIN(hi, (const uint8_t *)v->addr + v->len);

		if (a >= b)
			continue;
		parts[*n] = (struct pm_gmem_view_part){
			.g = v->g, .lo = (uint8_t *)a, .hi = (uint8_t *)b, .prot = v->prot,
			.start = v->pgoff + (uint64_t)(a - v->addr) / PM_PAGE_SIZE,
		};
		parts[*n].end = parts[*n].start + (uint64_t)(b - a) / PM_PAGE_SIZE;
		pm_gmem_get(v->g);
		(*n)++;
	}
	pthread_mutex_unlock(&all_views_lock);
	if (*n > 1)
		qsort(parts, *n, sizeof(*parts), cmp_part);
	*out = parts;
	return 0;
}

void pm_gmem_views_put(struct pm_gmem_view_part *parts, size_t n)
{
	for (size_t i = 0; i < n; i++)
		pm_gmem_put(parts[i].g);
	free(parts);
}

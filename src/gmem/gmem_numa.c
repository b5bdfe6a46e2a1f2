/* SPDX-License-Identifier: MIT */
/*
 * NUMA memory policy of a guest_memfd, as Linux 6.19: the VMM calls mbind()
 * on a mapping of the file, the policy is stored with the file for the
 * file pages the mapping covers (a shared policy: every mapping and every
 * VM bound to the file sees it), and later allocations of those pages take
 * their frames from the pool's simulated nodes by it (pages never move).
 * get_mempolicy() with MPOL_F_ADDR reads the policy back, with MPOL_F_NODE
 * | MPOL_F_ADDR the node of the page at the address.
 *
 * Objects: the file's policy table, struct gmem_mpol (gmem_internal.h):
 * sorted, disjoint ranges of file pages, each with a mode and its nodes
 * (the nodes asked for that exist: Linux intersects them with the nodes
 * online), under the file's mpol_lock; nr_ranges (atomic) lets an
 * allocation of a file without any policy skip the lock.
 *
 * Checks, in Linux's order (mm/mempolicy.c: sanitize_mpol_flags,
 * get_nodes, do_mbind, mpol_new, mpol_set_nodemask): a mode past
 * MPOL_WEIGHTED_INTERLEAVE, STATIC with RELATIVE, NUMA_BALANCING outside
 * BIND / PREFERRED_MANY: EINVAL; maxnode past a page of bits, or bits set
 * beyond MAX_NUMNODES (1024): EINVAL; an unreadable nodemask: EFAULT;
 * flags outside STRICT | MOVE | MOVE_ALL: EINVAL; an unaligned start or a
 * wrapping range: EINVAL; an empty range: 0; DEFAULT or LOCAL with nodes,
 * another mode without nodes (PREFERRED without nodes is LOCAL), or nodes
 * none of which exist: EINVAL. Pages never move, so MOVE and STRICT change
 * nothing (guest_memfd's pages are not migrated). Parts of the range that
 * no view maps go to the kernel's mbind (a hole there is EFAULT).
 *
 * What the modes mean for an allocation (pm_node_policy, host/pool.h):
 * BIND: only its nodes; PREFERRED, PREFERRED_MANY: its nodes first, then
 * any; INTERLEAVE, WEIGHTED_INTERLEAVE (weights 1): the n-th of its nodes
 * for the n-th page of the page's size in the file (n modulo the number of
 * nodes) first, then any; LOCAL: node 0, the simulated CPUs' node, first;
 * DEFAULT: any node, as the pool hands them out (node 0 first).
 */
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
#include <linux/mempolicy.h>
#include "gmem/gmem_internal.h"
#include "host/pool.h"

#define GMEM_MPOL_PREFERRED_MANY      5
#define GMEM_MPOL_WEIGHTED_INTERLEAVE 6
#define GMEM_MPOL_MAX                 7     /* Linux 6.9 and later */
#define GMEM_MAX_NUMNODES             1024  /* Debian's CONFIG_NODES_SHIFT 10 */
#define BITS_PER_LONG                 64

struct gmem_mpol_range {
	uint64_t start, end;        /* file pages */
	int mode;                   /* MPOL_* (not DEFAULT: no range is) */
	unsigned short mflags;      /* MPOL_F_STATIC_NODES, ... as asked */
	uint32_t nodes;             /* the nodes that exist of those asked for */
};

void gmem_mpol_init(struct pm_gmem *g)
{
	pthread_mutex_init(&g->mpol.lock, NULL);
	g->mpol.v = NULL;
	g->mpol.n = g->mpol.cap = 0;
	atomic_init(&g->mpol.nr_ranges, 0);
}

void gmem_mpol_destroy(struct pm_gmem *g)
{
	free(g->mpol.v);
	pthread_mutex_destroy(&g->mpol.lock);
}

/* ---- the table ---- */

/* The range holding page i, or NULL. mpol.lock held. */
static const struct gmem_mpol_range *mpol_find_locked(const struct gmem_mpol *m, uint64_t i)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (m->v[mid].end <= i)
			lo = mid + 1;
		else if (m->v[mid].start > i)
			hi = mid;
		else
			return &m->v[mid];
	}
	return NULL;
}

/* Room for `more` ranges: 0 or -ENOMEM. */
static int mpol_reserve_locked(struct gmem_mpol *m, size_t more)
{
	struct gmem_mpol_range *v;
	size_t cap;

	if (m->n + more <= m->cap)
		return 0;
	cap = PM_MAX(m->cap * 2, m->n + more + 4);
	v = realloc(m->v, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	m->v = v;
	m->cap = cap;
	return 0;
}

/* Pages [start, end) get the policy (mode DEFAULT: none); the ranges it
 * overlaps keep their parts outside. All or nothing. */
static int mpol_set(struct pm_gmem *g, uint64_t start, uint64_t end, int mode,
		    unsigned short mflags, uint32_t nodes)
{
	struct gmem_mpol *m = &g->mpol;
	struct gmem_mpol_range *out;
	size_t n = 0;
	int r = -ENOMEM;

	pthread_mutex_lock(&m->lock);
	/* At most one range is split in two, plus the new one. */
	if (mpol_reserve_locked(m, 2))
		goto out;
	out = malloc((m->n + 2) * sizeof(*out));
	if (!out)
		goto out;
	for (size_t i = 0; i < m->n; i++)
		if (m->v[i].end <= start)
			out[n++] = m->v[i];
	for (size_t i = 0; i < m->n; i++)
		if (m->v[i].start < start && m->v[i].end > start) {
			out[n] = m->v[i];
			out[n++].end = start;
		}
	if (mode != MPOL_DEFAULT)
		out[n++] = (struct gmem_mpol_range){ start, end, mode, mflags, nodes };
	for (size_t i = 0; i < m->n; i++)
		if (m->v[i].start < end && m->v[i].end > end) {
			out[n] = m->v[i];
			out[n++].start = end;
		}
	for (size_t i = 0; i < m->n; i++)
		if (m->v[i].start >= end)
			out[n++] = m->v[i];
	memcpy(m->v, out, n * sizeof(*out));
	m->n = n;
	atomic_store_explicit(&m->nr_ranges, (unsigned int)n, memory_order_release);
	free(out);
	r = 0;
out:
	pthread_mutex_unlock(&m->lock);
	return r;
}

/* ---- allocations ---- */

static unsigned int nth_node(uint32_t nodes, uint64_t k)
{
	unsigned int w = (unsigned int)__builtin_popcount(nodes);

	k %= w;
	while (k--)
		nodes &= nodes - 1;
	return (unsigned int)__builtin_ctz(nodes);
}

const struct pm_node_policy *gmem_mpol_for(struct pm_gmem *g, uint64_t first, unsigned int order,
					   struct pm_node_policy *p)
{
	const struct gmem_mpol_range *x;
	bool any = true;

	if (!atomic_load_explicit(&g->mpol.nr_ranges, memory_order_acquire))
		return NULL;
	pthread_mutex_lock(&g->mpol.lock);
	x = mpol_find_locked(&g->mpol, first);
	if (x) {
		any = false;
		switch (x->mode) {
		case MPOL_BIND:
			*p = (struct pm_node_policy){ .allowed = x->nodes, .preferred = 0 };
			break;
		case MPOL_PREFERRED:
		case GMEM_MPOL_PREFERRED_MANY:
			*p = (struct pm_node_policy){ .allowed = 0, .preferred = x->nodes };
			break;
		case MPOL_INTERLEAVE:
		case GMEM_MPOL_WEIGHTED_INTERLEAVE:
			*p = (struct pm_node_policy){
				.allowed = 0, .preferred = 1U << nth_node(x->nodes, first >> order),
			};
			break;
		default:        /* MPOL_LOCAL */
			*p = (struct pm_node_policy){ .allowed = 0, .preferred = 1 };
			break;
		}
	}
	pthread_mutex_unlock(&g->mpol.lock);
	return any ? NULL : p;
}

/* ---- mbind ---- */

/* Linux's get_nodes: maxnode - 1 bits from nmask, and bits past
 * MAX_NUMNODES must be zero. *nodes: those below PM_POOL_MAX_NODES (the
 * only ones that can exist); *empty: no bit set at all. */
static int get_nodes(const unsigned long *nmask, unsigned long maxnode, uint32_t *nodes,
		     bool *empty)
{
	unsigned long bits = maxnode ? maxnode - 1 : 0;

	*nodes = 0;
	*empty = true;
	if (!bits || !nmask)
		return 0;
	if (bits > PM_PAGE_SIZE * 8)
		return -EINVAL;
	for (unsigned long i = 0; i * BITS_PER_LONG < bits; i++) {
		unsigned long w, left = bits - i * BITS_PER_LONG;

		if (pm_copy_from_user(&w, &nmask[i], sizeof(w)))
			return -EFAULT;
		if (left < BITS_PER_LONG)
			w &= (1UL << left) - 1;
		if (w && i * BITS_PER_LONG >= GMEM_MAX_NUMNODES)
			return -EINVAL;
		if (w)
			*empty = false;
		if (i == 0)
			*nodes = (uint32_t)(w & ((1UL << PM_POOL_MAX_NODES) - 1));
	}
	return 0;
}

/* The mode and its flags: sanitize_mpol_flags. */
static int mbind_check_mode(unsigned long mode_arg, int *mode, unsigned short *mflags)
{
	*mflags = (unsigned short)(mode_arg & MPOL_MODE_FLAGS);
	*mode = (int)(mode_arg & ~(unsigned long)MPOL_MODE_FLAGS);
	if ((unsigned long)*mode >= GMEM_MPOL_MAX)
		return -EINVAL;
	if ((*mflags & MPOL_F_STATIC_NODES) && (*mflags & MPOL_F_RELATIVE_NODES))
		return -EINVAL;
	if ((*mflags & MPOL_F_NUMA_BALANCING) && *mode != MPOL_BIND && *mode != GMEM_MPOL_PREFERRED_MANY)
		return -EINVAL;
	return 0;
}

/* mpol_new's and mpol_set_nodemask's checks; PREFERRED without nodes
 * becomes LOCAL. */
static int mbind_check_nodes(int *mode, unsigned short mflags, bool empty, uint32_t online)
{
	if (*mode == MPOL_DEFAULT)
		return empty ? 0 : -EINVAL;
	if (*mode == MPOL_PREFERRED && empty) {
		if (mflags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES))
			return -EINVAL;
		*mode = MPOL_LOCAL;
		return 0;
	}
	if (*mode == MPOL_LOCAL)
		return empty && !(mflags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES)) ? 0 : -EINVAL;
	if (empty || !online)
		return -EINVAL;
	return 0;
}

static long kernel_mbind(uint8_t *lo, uint8_t *hi, unsigned long mode, const unsigned long *nmask,
			 unsigned long maxnode, unsigned int flags)
{
	if (lo >= hi)
		return 0;
	return syscall(SYS_mbind, lo, (unsigned long)(hi - lo), mode, nmask, maxnode, flags) ? -errno : 0;
}

int pm_gmem_mbind(void *addr, unsigned long len, unsigned long mode_arg, const unsigned long *nmask,
		  unsigned long maxnode, unsigned int flags)
{
	uint8_t *lo = addr, *hi, *at;
	struct pm_gmem_view_part *parts;
	unsigned short mflags;
	uint32_t nodes, online;
	bool empty;
	size_t n;
	int mode, r, err = 0;

	r = mbind_check_mode(mode_arg, &mode, &mflags);
	if (!r)
		r = get_nodes(nmask, maxnode, &nodes, &empty);
	if (r)
		return r;
	if (flags & ~(unsigned int)MPOL_MF_VALID)
		return -EINVAL;
	if (!PM_ALIGNED((uintptr_t)addr, PM_PAGE_SIZE))
		return -EINVAL;
	len = PM_ALIGN_UP(len, PM_PAGE_SIZE);
	if ((uintptr_t)addr + len < (uintptr_t)addr)
		return -EINVAL;
	if (!len)
		return 0;
	hi = lo + len;
	r = pm_gmem_views_in(lo, hi, &parts, &n);
	if (r)
		return r;
	if (!n) {
		err = kernel_mbind(lo, hi, mode_arg, nmask, maxnode, flags);
		goto out;
	}
	online = nodes & ((1U << pm_pool_nr_nodes()) - 1);
	r = mbind_check_nodes(&mode, mflags, empty, online);
	if (r) {
		err = r;
		goto out;
	}
	/* As the kernel walks the VMAs; a hole is EFAULT (the kernel's). */
	at = lo;
	for (size_t i = 0; i < n && !err; i++) {
		err = kernel_mbind(at, parts[i].lo, mode_arg, nmask, maxnode, flags);
		if (!err)
			err = mpol_set(parts[i].g, parts[i].start, parts[i].end, mode, mflags,
				       mode == MPOL_LOCAL ? 0 : online);
		at = parts[i].hi;
	}
	if (!err)
		err = kernel_mbind(at, hi, mode_arg, nmask, maxnode, flags);
out:
	pm_gmem_views_put(parts, n);
	return err;
}

/* ---- get_mempolicy ---- */

/* Linux's copy_nodes_to_user for privmem's nodes: whole longs for
 * maxnode - 1 bits, at most a page; copied by the kernel (EFAULT, never a
 * fault). */
static int put_nodes(unsigned long *nmask, unsigned long maxnode, uint32_t nodes)
{
	unsigned long bytes = PM_ALIGN_UP(maxnode ? maxnode - 1 : 0, 64) / 8;
	unsigned long zero[PM_PAGE_SIZE / sizeof(long)] = { nodes };
	struct iovec local, remote;

	if (!nmask || !bytes)
		return 0;
	if (bytes > PM_PAGE_SIZE)
		return -EINVAL;
	local = (struct iovec){ .iov_base = zero, .iov_len = bytes };
	remote = (struct iovec){ .iov_base = nmask, .iov_len = bytes };
	return process_vm_writev(getpid(), &local, 1, &remote, 1, 0) == (ssize_t)bytes ? 0 : -EFAULT;
}

struct node_arg {
	unsigned int node;
};

static int node_of_frame(void *arg, pm_pfn_t pfn)
{
	((struct node_arg *)arg)->node = pm_pool_node_of(pfn);
	return 0;
}

/* The node of file page i: an INIT_SHARED page is faulted in (allocated by
 * the policy), as Linux faults the page in; another page must exist (a
 * private page would SIGBUS the host: EFAULT). */
static int page_node(struct pm_gmem *g, uint64_t i, unsigned int *node)
{
	struct node_arg a;
	pm_pfn_t pfn;
	int r;

	if (gmem_init_shared(g)) {
		r = gmem_with_frame(g, i, node_of_frame, &a);
		*node = a.node;
		return r == -EHWPOISON ? -EFAULT : r;
	}
	pfn = pm_gmem_peek_pfn(g, i);
	if (pfn == PM_PFN_INVALID)
		return -EFAULT;
	*node = pm_pool_node_of(pfn);
	return 0;
}

int pm_gmem_get_mempolicy(int *mode, unsigned long *nmask, unsigned long maxnode, void *addr,
			  unsigned long flags, bool *handled)
{
	uint8_t *a = (uint8_t *)PM_ALIGN_DOWN((uintptr_t)addr, PM_PAGE_SIZE);
	struct pm_gmem_view_part *parts;
	const struct gmem_mpol_range *x;
	struct pm_gmem *g;
	int r, m = MPOL_DEFAULT;
	uint32_t nodes = 0;
	unsigned int node;
	uint64_t i;
	size_t n;

	*handled = false;
	if (flags & ~(unsigned long)(MPOL_F_NODE | MPOL_F_ADDR | MPOL_F_MEMS_ALLOWED))
		return -EINVAL;
	if (!(flags & MPOL_F_ADDR) || (flags & MPOL_F_MEMS_ALLOWED))
		return 0;
	r = pm_gmem_views_in(a, a + PM_PAGE_SIZE, &parts, &n);
	if (r || !n) {
		pm_gmem_views_put(parts, n);
		return r;
	}
	*handled = true;
	g = parts[0].g;
	i = parts[0].start;
	if (flags & MPOL_F_NODE) {
		r = page_node(g, i, &node);
		if (!r && mode)
			*mode = (int)node;
		pm_gmem_views_put(parts, n);
		return r;
	}
	pthread_mutex_lock(&g->mpol.lock);
	x = mpol_find_locked(&g->mpol, i);
	if (x) {
		m = x->mode | x->mflags;
		nodes = x->nodes;
	}
	pthread_mutex_unlock(&g->mpol.lock);
	pm_gmem_views_put(parts, n);
	r = put_nodes(nmask, maxnode, nodes);
	if (!r && mode)
		*mode = m;
	return r;
}

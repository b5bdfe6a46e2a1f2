/* SPDX-License-Identifier: MIT */
/*
 * write() and pwrite() on a guest_memfd: the host fills the pages it may
 * access, allocating them, without mapping the file. This follows the
 * posted series "KVM: guest_memfd: support for write()" (Nikita Kalyazin,
 * v6, 2025-10; not merged), with which Firecracker restores a snapshot into
 * guest_memfd. privmem's reference gives only the series' purpose; where it
 * is silent privmem follows the series' intent and the conventions of a
 * Linux file that cannot grow:
 *  - only a file made with GUEST_MEMFD_FLAG_MMAP (the host's access to a
 *    guest_memfd starts with that flag) can be written; any other is
 *    EINVAL, as every guest_memfd was before the series;
 *  - any byte range at any offset (pwrite's, or write()'s file position,
 *    which write() advances); an existing page is overwritten;
 *  - a write starting at or past the end of the file is ENOSPC (the file's
 *    size is fixed: it never grows); one that crosses the end is short;
 *  - a page the host may not access is EACCES: a private page (every page
 *    of a file without INIT_SHARED on a VM with private memory), a page a
 *    pKVM guest did not share, a poisoned page; the bytes written before
 *    it are returned, as for every error after progress;
 *  - an unreadable source is EFAULT (copied by the kernel, never faulted);
 *  - read() and pread() stay EINVAL (the series adds no read).
 *
 * Where the bytes go: a page whose contents live in the host file H (an
 * INIT_SHARED file with MMAP, a page a pKVM guest shares) through the
 * library's window on H, so every view and the guest see them; any other
 * page the host may access into its frame, after the host access guards
 * (the hardware) agreed.
 *
 * Locks: each page is written under the file's host_lock (which every
 * pKVM unshare holds around its transitions: the answer "the host may
 * access it" stands while the bytes go), and a frame under its index
 * stripe held shared too (a punch cannot free it meanwhile). write()'s
 * position is under pos_lock, taken before host_lock.
 */
#include "gmem/gmem_internal.h"
#include "host/host_guard.h"
#include "host/pool.h"

struct write_chunk {
	const uint8_t *src;
	uint64_t off;               /* in the page */
	size_t n;
};

static int write_frame(void *arg, pm_pfn_t pfn)
{
	const struct write_chunk *c = arg;

	if (pm_host_access(pfn, 1, true))
		return -EACCES;
	return pm_copy_from_user((uint8_t *)pm_pfn_to_hva(pfn) + c->off, c->src, c->n);
}

static int write_page_locked(struct pm_gmem *g, uint64_t i, const struct write_chunk *c)
{
	uint8_t *win;

	if (!gmem_host_may_access_locked(g, i))
		return -EACCES;
	win = pm_gmem_host_page(g, i, NULL);
	if (win)
		return pm_copy_from_user(win + c->off, c->src, c->n);
	return gmem_with_frame(g, i, write_frame, (void *)c);
}

ssize_t pm_gmem_write(struct pm_gmem *g, const void *buf, size_t count, uint64_t off)
{
	size_t done = 0;
	int r = 0;

	if (!(g->flags & GUEST_MEMFD_FLAG_MMAP))
		return -EINVAL;
	if (!count)
		return 0;
	if (off >= g->size)
		return -ENOSPC;
	count = (size_t)PM_MIN((uint64_t)count, g->size - off);
	while (done < count) {
		uint64_t pos = off + done;
		struct write_chunk c = {
			.src = (const uint8_t *)buf + done,
			.off = pos & (PM_PAGE_SIZE - 1),
			.n = (size_t)PM_MIN(PM_PAGE_SIZE - (pos & (PM_PAGE_SIZE - 1)), count - done),
		};

		pthread_mutex_lock(&g->host_lock);
		r = write_page_locked(g, pos >> PM_PAGE_SHIFT, &c);
		pthread_mutex_unlock(&g->host_lock);
		if (r)
			break;
		done += c.n;
	}
	return done ? (ssize_t)done : r;
}

ssize_t pm_gmem_write_at_pos(struct pm_gmem *g, const void *buf, size_t count)
{
	ssize_t r;

	pthread_mutex_lock(&g->pos_lock);
	r = pm_gmem_write(g, buf, count, g->pos);
	if (r > 0)
		g->pos += (uint64_t)r;
	pthread_mutex_unlock(&g->pos_lock);
	return r;
}

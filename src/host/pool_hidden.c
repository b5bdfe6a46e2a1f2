/* SPDX-License-Identifier: MIT */
/*
 * Frames out of the direct map (guest_memfd's GUEST_MEMFD_FLAG_NO_DIRECT_MAP,
 * Firecracker's "secret hiding"): the host's view of the pool, its mapping
 * at base + (pfn << 12), loses them, so a stray host access there faults
 * for real (SIGSEGV), not only when a host access guard is asked, while the
 * simulated hardware and privmem's trusted components (vCPUs, the TDX
 * module, SNP's firmware, pKVM's hypervisor, the copies to and from a host
 * file) still reach them through pm_pfn_to_hva(), which then gives the
 * frame's address in the alias below.
 *
 * Objects (process-wide, made on the first hide, for the live pool):
 *  - the alias file: a memfd of the pool's size; a hidden frame's contents
 *    live at its offset pfn << 12;
 *  - the alias: a reservation of the pool's size where each hidden run's
 *    part of the alias file is mapped (MAP_SHARED, not inherited by a fork
 *    child: MADV_DONTFORK); elsewhere PROT_NONE;
 *  - one bit per frame (hidden), and the number of hidden frames, which
 *    keeps pm_pfn_to_hva() to one load while nothing is hidden.
 * Hiding a run (freshly allocated: it reads zero, so does the alias file's
 * hole) maps the alias, sets the bits, then drops the direct map's pages
 * (MADV_DONTNEED) and makes it PROT_NONE; revealing it (before the run is
 * freed) makes the direct map readable again (zero pages), clears the bits,
 * punches the alias file (the contents go, as a scrub) and puts the
 * reservation back. Runs are disjoint and owned by their allocator: the
 * two need no lock but the kernel's; hide_lock guards the lazy set-up.
 * Translations read the bit with acquire order; a run's bits are set before
 * its frames are published (guest_memfd's index entry, a release), and
 * cleared only once nothing translates them (the run is being freed).
 *
 * The pool's own paths (populate, scrub, release) use the direct map
 * (pm_pfn_to_direct): they only ever touch frames that are not hidden.
 */
#include "host/pool_internal.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/falloc.h>

static pthread_mutex_t hide_lock = PTHREAD_MUTEX_INITIALIZER;
static int hide_fd = -1;                      /* hide_lock; immutable once set */
static _Atomic uintptr_t hide_alias;          /* the alias, 0 before the first hide */
static uint64_t hide_frames;                  /* frames the alias covers: written under hide_lock
                                              * before hide_alias (release), read after it */
static _Atomic(_Atomic uint64_t *) hide_bits; /* one per frame; set once, before hide_alias */
static _Atomic uint64_t hide_count;           /* frames hidden now */

/* The alias and its file, for a pool of nr frames: 0 or -ENOMEM. */
static int hide_setup(uint64_t nr)
{
	size_t len = (size_t)(nr << PM_PAGE_SHIFT);
	_Atomic uint64_t *bits;
	void *alias;
	int fd, r = -ENOMEM;

	pthread_mutex_lock(&hide_lock);
	if (atomic_load(&hide_alias)) {
		r = hide_frames == nr ? 0 : -EBUSY;
		goto out;
	}
	fd = memfd_create("privmem-hidden", MFD_CLOEXEC);
	if (fd < 0)
		goto out;
	if (ftruncate(fd, (off_t)len))
		goto err_close;
	bits = calloc((nr + 63) / 64, sizeof(*bits));
	if (!bits)
		goto err_close;
	alias = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (alias == MAP_FAILED)
		goto err_bits;
	madvise(alias, len, MADV_DONTFORK);
	hide_fd = fd;
	atomic_store_explicit(&hide_bits, bits, memory_order_release);
	hide_frames = nr;
	atomic_store_explicit(&hide_alias, (uintptr_t)alias, memory_order_release);
	r = 0;
	goto out;

err_bits:
	free(bits);
err_close:
	close(fd);
out:
	pthread_mutex_unlock(&hide_lock);
	return r;
}

bool pool_frame_hidden(uint64_t pfn)
{
	_Atomic uint64_t *bits = atomic_load_explicit(&hide_bits, memory_order_acquire);

	return bits && (atomic_load_explicit(&bits[pfn / 64], memory_order_acquire) >> (pfn % 64)) & 1;
}

uint64_t pool_hidden_frames(void)
{
	return atomic_load_explicit(&hide_count, memory_order_relaxed);
}

void *pool_hidden_hva(uint64_t pfn)
{
	return (void *)(atomic_load_explicit(&hide_alias, memory_order_relaxed) +
			(uintptr_t)(pfn << PM_PAGE_SHIFT));
}

uint64_t pool_hidden_pfn(uintptr_t a)
{
	uintptr_t alias = atomic_load_explicit(&hide_alias, memory_order_acquire);

	if (!alias || a < alias || (a - alias) >> PM_PAGE_SHIFT >= hide_frames)
		return PM_PFN_INVALID;
	return (a - alias) >> PM_PAGE_SHIFT;
}

static void bits_set(uint64_t pfn, uint64_t n, bool on)
{
	_Atomic uint64_t *hb = atomic_load_explicit(&hide_bits, memory_order_relaxed);

	for (uint64_t i = pfn; i < pfn + n; i++) {
		uint64_t bit = 1ULL << (i % 64);

		if (on)
			atomic_fetch_or_explicit(&hb[i / 64], bit, memory_order_release);
		else
			atomic_fetch_and_explicit(&hb[i / 64], ~bit, memory_order_release);
	}
}

int pm_pool_hide(pm_pfn_t pfn, unsigned int order)
{
	uint64_t n = 1ULL << order, nr = atomic_load_explicit(&pool_hva_frames, memory_order_relaxed);
	size_t len = (size_t)(n << PM_PAGE_SHIFT);
	off_t off = (off_t)(pfn << PM_PAGE_SHIFT);
	uint8_t *alias;
	int r = hide_setup(nr);

	if (r)
		return r;
	alias = pool_hidden_hva(pfn);
	if (mmap(alias, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, hide_fd, off) == MAP_FAILED)
		return -ENOMEM;
	madvise(alias, len, MADV_DONTFORK);
	atomic_fetch_add_explicit(&hide_count, n, memory_order_relaxed);
	bits_set(pfn, n, true);
	/* The direct map loses the frames: their pages go, any access faults. */
	if (madvise(pm_pfn_to_direct(pfn), len, MADV_DONTNEED) ||
	    mprotect(pm_pfn_to_direct(pfn), len, PROT_NONE)) {
		r = -errno;
		pm_pool_reveal(pfn, order);
	}
	return r;
}

void pm_pool_reveal(pm_pfn_t pfn, unsigned int order)
{
	uint64_t n = 1ULL << order;
	size_t len = (size_t)(n << PM_PAGE_SHIFT);

	/* Zero pages again where the frames were dropped: the pool's
	 * invariant (a free frame reads zero) holds for the direct map. */
	if (mprotect(pm_pfn_to_direct(pfn), len, PROT_READ | PROT_WRITE))
		pm_fatal("pool: frames %#" PRIx64 "+%" PRIu64 " cannot come back to the direct map",
			 pfn, n);
	bits_set(pfn, n, false);
	atomic_fetch_sub_explicit(&hide_count, n, memory_order_relaxed);
	fallocate(hide_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(pfn << PM_PAGE_SHIFT),
		  (off_t)len);
	if (mmap(pool_hidden_hva(pfn), len, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) == MAP_FAILED)
		pm_fatal("pool: the alias of frames %#" PRIx64 "+%" PRIu64 " cannot be reserved again",
			 pfn, n);
}

void pool_hidden_destroy_locked(void)
{
	pool_assert_locked();
	PM_BUG_ON(atomic_load(&hide_count));
	pthread_mutex_lock(&hide_lock);
	if (atomic_load(&hide_alias)) {
		munmap((void *)atomic_load(&hide_alias), (size_t)(hide_frames << PM_PAGE_SHIFT));
		close(hide_fd);
		free((void *)atomic_load(&hide_bits));
		hide_fd = -1;
		atomic_store(&hide_bits, NULL);
		hide_frames = 0;
		atomic_store(&hide_alias, 0);
	}
	pthread_mutex_unlock(&hide_lock);
}

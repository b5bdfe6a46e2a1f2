/* SPDX-License-Identifier: MIT */
/*
 * The host's side of a guest_memfd: the host file, and what moves between
 * it and the guest's frames.
 *
 * Why a file of its own. A view must lose a page for good when the guest
 * takes it back, in every mapping of it: the VMM's views, a fork child's
 * copy, an mremap duplicate. Only the kernel reaches every mapping of a
 * file, and only for a file range it is told to drop. So the host never
 * maps the pool (whose offsets hold other guests' memory later), but a
 * file of this guest_memfd alone, H: a memfd of the file's size (its size
 * sealed). H's page i holds file page i's contents exactly while the host
 * may map the page, and is a hole otherwise. Taking a page away from the
 * host is a hole punch of H (fallocate PUNCH_HOLE), after which the kernel
 * has unmapped it from every process; the guest's data lives in the frame,
 * which nothing of the host maps. What a mapping made before keeps after a
 * punch is H's old page (a pipe that vmsplice'd it, a get_user_pages
 * reference): what the host could read anyway while the page was shared.
 *
 * One page, two places. While its contents are in H (HM_HOST in the host
 * map) the page's frame is stale, and guest accesses must reach H too, or
 * guest and host would not share it in place: the vCPUs translate such a
 * page to the library's own mapping of H, the window (host_win), through
 * pm_gmem_host_page (pKVM's translation hook; the fault path for the
 * gmem-only slots of INIT_SHARED files). The copies between a frame and H
 * are the simulation's bookkeeping of one physical page, not host accesses
 * (no host access guard is asked). A copy runs with the page marked
 * HM_MOVING, after a TLB shootdown, so no vCPU holds a translation of
 * either copy while it runs, and vCPUs that translate the page meanwhile
 * wait (pm_gmem_host_page says "moving": they translate again).
 *
 * Who is in H:
 *  - INIT_SHARED files (default VMs): every page, always (its frame is
 *    allocated for the index and statistics, never used). Views fill H's
 *    holes in their range when they are made (gmem_host_populate_locked),
 *    a poisoned page is a hole (HM_POISON), and a punch zeroes H in place
 *    while views exist (a host read racing it sees old or zero, never a
 *    fault) and punches it otherwise.
 *  - files of a model that decides per frame (pKVM, gmem_host_mappable):
 *    the pages the guest shares. pm_gmem_host_share copies them in after
 *    the model's transition; pm_gmem_host_unshare takes them out (punch)
 *    before the guest gets them back (unless pinned); a punch, poison or
 *    a reclaim by the model (pm_gmem_host_reclaimed) takes them out too.
 *  - everything else (sw, TDX files): nothing; views fault everywhere.
 *
 * Locks: host_lock (gmem_internal.h) around every change of H and of the
 * host map, taken before the model's locks and the index stripes. vCPUs
 * read the host map without it. Shootdowns run under it (the caller's
 * flush): no vCPU in guest mode ever waits for host_lock.
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>
#include <linux/falloc.h>
#include "gmem/gmem_internal.h"
#include "host/pool.h"
#include "kvm/vm.h"
#include "mmu/mmu.h"
#include "models/model.h"

/* Pages copied per system call. */
#define HOST_BATCH 64

/* ---- the host file and the window ---- */

/* The window is aligned like the file's largest pages, so that the
 * stage-2 can map it with leaves as large as the file's pages. */
static size_t host_win_align(const struct pm_gmem *g)
{
	if (g->max_order >= PM_ORDER_1G && g->size >= (PM_PAGE_SIZE << PM_ORDER_1G))
		return PM_PAGE_SIZE << PM_ORDER_1G;
	if (g->max_order >= PM_ORDER_2M && g->size >= (PM_PAGE_SIZE << PM_ORDER_2M))
		return PM_PAGE_SIZE << PM_ORDER_2M;
	return PM_PAGE_SIZE;
}

/* Maps H whole at an aligned address inside a reservation of our own. */
static uint8_t *host_win_map(int fd, size_t len, size_t align)
{
	size_t span = len + align - PM_PAGE_SIZE;
	uint8_t *res = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uint8_t *w;

	if (res == MAP_FAILED)
		return NULL;
	w = (uint8_t *)PM_ALIGN_UP((uintptr_t)res, align);
	if (mmap(w, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED) {
		munmap(res, span);
		return NULL;
	}
	if (w > res)
		munmap(res, (size_t)(w - res));
	if (res + span > w + len)
		munmap(w + len, (size_t)(res + span - (w + len)));
	return w;
}

static int host_file_new(struct pm_gmem *g)
{
	int fd = memfd_create("privmem-gmem-host", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	int r;

	if (fd < 0)
		return -errno;
	/* The window must never lose its pages to a truncation. */
	if (ftruncate(fd, (off_t)g->size) ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)) {
		r = -errno;
		goto err_close;
	}
	g->host_win_len = g->size;
	g->host_win = host_win_map(fd, g->host_win_len, host_win_align(g));
	if (!g->host_win) {
		r = -ENOMEM;
		goto err_close;
	}
	g->host_fd = fd;
	atomic_init(&g->host_exposed, gmem_init_shared(g));
	return 0;

err_close:
	close(fd);
	return r;
}

int gmem_host_init(struct pm_gmem *g)
{
	int r;

	g->host_fd = -1;
	atomic_init(&g->host_exposed, false);
	r = hm_init(&g->hmap, g->npages);
	if (r)
		return r;
	if (g->flags & GUEST_MEMFD_FLAG_MMAP) {
		r = host_file_new(g);
		if (r) {
			hm_destroy(&g->hmap);
			return r;
		}
	}
	pthread_mutex_init(&g->host_lock, NULL);
	return 0;
}

/* Pages [start, end) of H become holes, in every mapping of H in every
 * process. The window's own MADV_REMOVE does the same if the descriptor
 * was closed behind our back; neither can otherwise fail. */
static void host_file_punch(struct pm_gmem *g, uint64_t start, uint64_t end)
{
	off_t off = (off_t)(start << PM_PAGE_SHIFT), len = (off_t)((end - start) << PM_PAGE_SHIFT);

	if (start >= end)
		return;
	if (fallocate(g->host_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len))
		madvise(g->host_win + off, (size_t)len, MADV_REMOVE);
}

static bool host_exposed(struct pm_gmem *g)
{
	return atomic_load_explicit(&g->host_exposed, memory_order_relaxed);
}

/* H may hold pages (it exists and a view was made: see host_exposed). */
static bool host_file_used(struct pm_gmem *g)
{
	return g->host_fd >= 0 && host_exposed(g);
}

/* The release: whatever any mapping of H still shows goes. */
void gmem_host_destroy(struct pm_gmem *g)
{
	if (g->host_fd >= 0) {
		host_file_punch(g, 0, g->npages);
		munmap(g->host_win, g->host_win_len);
		close(g->host_fd);
	}
	hm_destroy(&g->hmap);
	pthread_mutex_destroy(&g->host_lock);
}

int gmem_host_reserve(struct pm_gmem *g, uint64_t start, uint64_t end)
{
	int r;

	pthread_mutex_lock(&g->host_lock);
	r = hm_reserve(&g->hmap, start, end);
	pthread_mutex_unlock(&g->host_lock);
	return r;
}

/* ---- the guest's side ---- */

uint8_t *pm_gmem_host_page(struct pm_gmem *g, uint64_t index, bool *moving)
{
	uint32_t w;

	if (moving)
		*moving = false;
	if (g->host_fd < 0 || index >= g->npages)
		return NULL;
	if (gmem_init_shared(g))
		return g->host_win + (index << PM_PAGE_SHIFT);
	w = hm_get(&g->hmap, index);
	if (w & HM_MOVING) {
		if (moving)
			*moving = true;
		return NULL;
	}
	return w & HM_HOST ? g->host_win + (index << PM_PAGE_SHIFT) : NULL;
}

/* ---- copies between frames and H ---- */

/* Copies the frames pfns[0..n) of pages [i, i + n) into H: how many pages
 * were written whole (fewer only when H can get no memory). */
static uint64_t host_copy_in(struct pm_gmem *g, uint64_t i, uint64_t n, const pm_pfn_t *pfns)
{
	struct iovec iov[HOST_BATCH];
	uint64_t done = 0;

	PM_BUG_ON(n > HOST_BATCH);
	for (uint64_t k = 0; k < n; k++)
		iov[k] = (struct iovec){ .iov_base = pm_pfn_to_hva(pfns[k]), .iov_len = PM_PAGE_SIZE };
	while (done < n) {
		ssize_t w = pwritev(g->host_fd, iov + done, (int)(n - done),
				    (off_t)((i + done) << PM_PAGE_SHIFT));

		if (w < (ssize_t)PM_PAGE_SIZE)
			break;
		done += (uint64_t)w >> PM_PAGE_SHIFT;
	}
	return done;
}

/* Copies H's pages [i, i + n) into their frames pfns[0..n). Through the
 * window where the descriptor fails: the guest must get its data back. */
static void host_copy_out(struct pm_gmem *g, uint64_t i, uint64_t n, const pm_pfn_t *pfns)
{
	struct iovec iov[HOST_BATCH];
	ssize_t r;
	uint64_t done;

	PM_BUG_ON(n > HOST_BATCH);
	for (uint64_t k = 0; k < n; k++)
		iov[k] = (struct iovec){ .iov_base = pm_pfn_to_hva(pfns[k]), .iov_len = PM_PAGE_SIZE };
	r = preadv(g->host_fd, iov, (int)n, (off_t)(i << PM_PAGE_SHIFT));
	done = r > 0 ? (uint64_t)r >> PM_PAGE_SHIFT : 0;
	for (uint64_t k = done; k < n; k++)
		memcpy(pm_pfn_to_hva(pfns[k]), g->host_win + ((i + k) << PM_PAGE_SHIFT), PM_PAGE_SIZE);
}

/* A run of up to HOST_BATCH pages from i that are moving and still have
 * their frame (in pfns); a moving page whose frame a punch took stops the
 * run and stops moving (it leaves the file). */
static uint64_t host_moving_run(struct pm_gmem *g, uint64_t i, uint64_t end, pm_pfn_t *pfns)
{
	uint64_t n = 0;

	while (i + n < end && n < HOST_BATCH) {
		uint32_t w = hm_get(&g->hmap, i + n);

		if (!(w & HM_MOVING))
			break;
		pfns[n] = pm_gmem_peek_pfn(g, i + n);
		if (pfns[n] == PM_PFN_INVALID) {
			hm_store(&g->hmap, i + n, w & ~(HM_MOVING | HM_HOST));
			break;
		}
		n++;
	}
	return n;
}

/* The moving pages of [start, end) come in: their frames' contents into H,
 * then they are the host's (HM_HOST). A page H has no memory for stays
 * out: the host faults on it, as on a page it could not fault in. */
static void host_move_in(struct pm_gmem *g, uint64_t start, uint64_t end)
{
	pm_pfn_t pfns[HOST_BATCH];

	for (uint64_t i = hm_next(&g->hmap, start, end, HM_NEXT_MARKED); i < end;) {
		uint64_t n = host_moving_run(g, i, end, pfns), done;

		if (!n) {
			i = hm_next(&g->hmap, i + 1, end, HM_NEXT_MARKED);
			continue;
		}
		done = host_copy_in(g, i, n, pfns);
		if (done < n)
			host_file_punch(g, i + done, i + n);
		for (uint64_t k = 0; k < n; k++) {
			uint32_t w = hm_get(&g->hmap, i + k) & ~HM_MOVING;

			hm_store(&g->hmap, i + k, k < done ? w | HM_HOST : w);
		}
		i = hm_next(&g->hmap, i + n, end, HM_NEXT_MARKED);
	}
}

/* The moving pages of [start, end) go out: those below `taken` back to
 * their frames and out of H (every mapping), the others stay in H. */
static void host_move_out(struct pm_gmem *g, uint64_t start, uint64_t end, uint64_t taken)
{
	pm_pfn_t pfns[HOST_BATCH];

	for (uint64_t i = hm_next(&g->hmap, start, taken, HM_NEXT_MARKED); i < taken;) {
		uint64_t n = host_moving_run(g, i, taken, pfns);

		if (n)
			host_copy_out(g, i, n, pfns);
		i = hm_next(&g->hmap, i + (n ? n : 1), taken, HM_NEXT_MARKED);
	}
	host_file_punch(g, start, taken);
	for (uint64_t i = hm_next(&g->hmap, start, end, HM_NEXT_MARKED); i < end;
	     i = hm_next(&g->hmap, i + 1, end, HM_NEXT_MARKED)) {
		uint32_t w = hm_get(&g->hmap, i);

		if (w & HM_MOVING)
			hm_store(&g->hmap, i, i < taken ? w & ~(HM_MOVING | HM_HOST) : w & ~HM_MOVING);
	}
}

/* ---- pages moving between the guest and the host (pKVM) ---- */

/* Every page of [start, end) whose frame the model lets the host map and
 * that is not in H yet comes in. host_lock. */
static void host_share_locked(struct pm_gmem *g, uint64_t start, uint64_t end)
{
	const struct pm_model_ops *model = g->vm->model;
	bool any = false;

	for (uint64_t i = gmem_next_page(g, start, end); i < end; i = gmem_next_page(g, i + 1, end)) {
		uint32_t w = hm_get(&g->hmap, i);
		pm_pfn_t pfn;

		if (w & HM_HOST)
			continue;
		/* Asked under host_lock, which every unshare holds around the
		 * model's transitions: a page the guest took back is refused. */
		pfn = pm_gmem_peek_pfn(g, i);
		if (pfn == PM_PFN_INVALID || !model->gmem_host_mappable(g->vm, pfn))
			continue;
		/* No memory for the host map: the host never sees the page,
		 * as a host fault that finds no memory. */
		if (hm_reserve(&g->hmap, i, i + 1))
			continue;
		hm_store(&g->hmap, i, w | HM_MOVING);
		any = true;
	}
	if (any) {
		pm_mmu_tlb_shootdown(g->vm);   /* no vCPU still uses a frame being copied */
		host_move_in(g, start, end);
	}
}

void pm_gmem_host_share(struct pm_gmem *g, uint64_t start, uint64_t end)
{
	end = PM_MIN(end, g->npages);
	if (g->host_fd < 0 || !g->vm->model->gmem_host_mappable || start >= end)
		return;
	pthread_mutex_lock(&g->host_lock);
	if (host_exposed(g))
		host_share_locked(g, start, end);
	pthread_mutex_unlock(&g->host_lock);
}

void gmem_host_expose_locked(struct pm_gmem *g)
{
	if (host_exposed(g))
		return;
	atomic_store_explicit(&g->host_exposed, true, memory_order_relaxed);
	if (g->vm->model->gmem_host_mappable)
		host_share_locked(g, 0, g->npages);
}

long pm_gmem_host_unshare(struct pm_gmem *g, uint64_t start, uint64_t end,
			  long (*take)(void *arg, uint64_t n), void *arg)
{
	bool any = false;
	long r = -EBUSY;

	pthread_mutex_lock(&g->host_lock);
	end = hm_next(&g->hmap, start, end, HM_NEXT_PINNED);
	if (end == start)
		goto out;
	for (uint64_t i = hm_next(&g->hmap, start, end, HM_NEXT_MARKED); i < end;
	     i = hm_next(&g->hmap, i + 1, end, HM_NEXT_MARKED)) {
		uint32_t w = hm_get(&g->hmap, i);

		if (w & HM_HOST) {
			hm_store(&g->hmap, i, w | HM_MOVING);
			any = true;
		}
	}
	/* From here until host_move_out no vCPU reaches the pages: the
	 * guest cannot write a secret where the host still sees the page. */
	if (any)
		pm_mmu_tlb_shootdown(g->vm);
	r = take(arg, end - start);
	if (any)
		host_move_out(g, start, end, r > 0 ? start + (uint64_t)r : start);
	else if (r > 0 && host_file_used(g))
		host_file_punch(g, start, start + (uint64_t)r);   /* whatever a stranger left */
out:
	pthread_mutex_unlock(&g->host_lock);
	return r;
}

void pm_gmem_host_reclaimed(struct pm_gmem *g, uint64_t start, uint64_t end)
{
	const struct pm_model_ops *model = g->vm->model;

	end = PM_MIN(end, g->npages);
	/* Always under the lock: a share that saw the page still shared may
	 * be marking it right now (host_lock orders the two). */
	if (g->host_fd < 0)
		return;
	pthread_mutex_lock(&g->host_lock);
	for (uint64_t i = hm_next(&g->hmap, start, end, HM_NEXT_MARKED); i < end;
	     i = hm_next(&g->hmap, i + 1, end, HM_NEXT_MARKED)) {
		uint32_t w = hm_get(&g->hmap, i);
		pm_pfn_t pfn;

		if (!(w & HM_HOST))
			continue;
		pfn = pm_gmem_peek_pfn(g, i);
		if (pfn != PM_PFN_INVALID && model->gmem_host_mappable &&
		    model->gmem_host_mappable(g->vm, pfn))
			continue;
		/* The guest lost its mapping in the reclaim (its TLBs were
		 * shot down): the contents go back to the frame, which keeps
		 * them for whoever gets the page next. */
		if (pfn != PM_PFN_INVALID)
			host_copy_out(g, i, 1, &pfn);
		host_file_punch(g, i, i + 1);
		hm_store(&g->hmap, i, w & ~HM_HOST);
	}
	pthread_mutex_unlock(&g->host_lock);
}

/* ---- pages leaving the file ---- */

/* Zeroes [start, end) of H where it has pages, through the window: a host
 * access racing it sees the old page or zero, never a hole. */
static void host_file_zero(struct pm_gmem *g, uint64_t start, uint64_t end)
{
	off_t pos = (off_t)(start << PM_PAGE_SHIFT), stop = (off_t)(end << PM_PAGE_SHIFT);

	while (pos < stop) {
		off_t data = lseek(g->host_fd, pos, SEEK_DATA), hole;

		if (data < 0 || data >= stop)
			break;
		hole = lseek(g->host_fd, data, SEEK_HOLE);
		if (hole < 0 || hole > stop)
			hole = stop;
		memset(g->host_win + data, 0, (size_t)(hole - data));
		pos = hole;
	}
}

bool gmem_host_init_shared_page(struct pm_gmem *g, uint64_t i)
{
	return !(hm_get(&g->hmap, i) & HM_POISON);
}

void gmem_host_populate_locked(struct pm_gmem *g, uint64_t start, uint64_t end)
{
	end = PM_MIN(end, g->npages);
	if (g->host_fd < 0 || !gmem_init_shared(g))
		return;
	while (start < end) {
		uint64_t stop = hm_next(&g->hmap, start, end, HM_NEXT_MARKED);

		if (stop > start)
			fallocate(g->host_fd, 0, (off_t)(start << PM_PAGE_SHIFT),
				  (off_t)((stop - start) << PM_PAGE_SHIFT));
		start = stop + 1;
	}
}

void gmem_host_punch(struct pm_gmem *g, uint64_t start, uint64_t end)
{
	bool zero;

	end = PM_MIN(end, g->npages);
	/* A file whose host file nothing maps, with no pins or marks, has
	 * nothing here: concurrent punches then share no lock. A view being
	 * made meanwhile (host_exposed set, then pages swept in) cannot bring
	 * in a page this punch removes: if our load missed the store, the
	 * sweep's look at the page (under its stripe) came after our removal,
	 * or the store would happen before the load through that stripe. */
	if (start >= end || (!host_file_used(g) && !atomic_load(&g->hmap.pinned) &&
			     !atomic_load(&g->hmap.marked)))
		return;
	pthread_mutex_lock(&g->host_lock);
	zero = gmem_init_shared(g) && atomic_load(&g->nr_views);
	if (host_file_used(g)) {
		if (zero)
			host_file_zero(g, start, end);
		else
			host_file_punch(g, start, end);
	}
	/* Marks and pins go with the pages; a poisoned page of an
	 * INIT_SHARED file that views show becomes a fresh (zero) page. */
	for (uint64_t i = hm_next(&g->hmap, start, end, HM_NEXT_MARKED); i < end;
	     i = hm_next(&g->hmap, i + 1, end, HM_NEXT_MARKED)) {
		uint32_t w = hm_get(&g->hmap, i);

		hm_store(&g->hmap, i, w & ~HM_MARKS);
		if (zero && (w & HM_POISON))
			gmem_host_populate_locked(g, i, i + 1);
	}
	for (uint64_t i = hm_next(&g->hmap, start, end, HM_NEXT_PINNED); i < end;
	     i = hm_next(&g->hmap, i + 1, end, HM_NEXT_PINNED))
		hm_store(&g->hmap, i, hm_get(&g->hmap, i) & ~HM_PINS);
	pthread_mutex_unlock(&g->host_lock);
}

void gmem_host_poison(struct pm_gmem *g, uint64_t index)
{
	uint32_t w;

	pthread_mutex_lock(&g->host_lock);
	w = hm_get(&g->hmap, index) & ~HM_HOST;
	if (gmem_init_shared(g))
		w |= HM_POISON;
	if (host_file_used(g))
		host_file_punch(g, index, index + 1);
	hm_store(&g->hmap, index, w);
	pthread_mutex_unlock(&g->host_lock);
}

/* ---- pins ---- */

/* Pinning faults an INIT_SHARED page in, as writing one populates it. */
bool gmem_host_may_access_locked(struct pm_gmem *g, uint64_t i)
{
	const struct pm_model_ops *model = g->vm->model;
	pm_pfn_t pfn;

	if (gmem_init_shared(g))
		return !(hm_get(&g->hmap, i) & HM_POISON) && !pm_gmem_get_pfn_host(g, i, &pfn);
	if (host_file_used(g))
		return hm_get(&g->hmap, i) & HM_HOST;
	if (!model->gmem_host_mappable)
		return false;
	pfn = pm_gmem_peek_pfn(g, i);
	return pfn != PM_PFN_INVALID && model->gmem_host_mappable(g->vm, pfn);
}

int pm_gmem_pin(struct pm_gmem *g, uint64_t start, uint64_t end)
{
	int r;

	if (end > g->npages)
		return -EFAULT;
	pthread_mutex_lock(&g->host_lock);
	r = hm_reserve(&g->hmap, start, end);
	for (uint64_t i = start; i < end && !r; i++) {
		uint32_t w = hm_get(&g->hmap, i);

		if (!gmem_host_may_access_locked(g, i))
			r = -EFAULT;
		else if ((w & HM_PINS) == HM_PINS)
			r = -ENOMEM;        /* as get_user_pages on a count at its limit */
	}
	for (uint64_t i = start; i < end && !r; i++)
		hm_store(&g->hmap, i, hm_get(&g->hmap, i) + 1);
	pthread_mutex_unlock(&g->host_lock);
	return r;
}

int pm_gmem_unpin(struct pm_gmem *g, uint64_t start, uint64_t end)
{
	int r = 0;

	end = PM_MIN(end, g->npages);
	pthread_mutex_lock(&g->host_lock);
	for (uint64_t i = start; i < end && !r; i++)
		if (!(hm_get(&g->hmap, i) & HM_PINS))
			r = -EINVAL;
	for (uint64_t i = start; i < end && !r; i++)
		hm_store(&g->hmap, i, hm_get(&g->hmap, i) - 1);
	pthread_mutex_unlock(&g->host_lock);
	return r;
}

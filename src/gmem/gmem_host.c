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
 * One page, two places. While its contents are in H (the page is shared,
 * in the file's state, and H in use) the page's frame is stale, and guest accesses must reach H too, or
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
 *  - files whose state decides (gmem_host_by_state: all but pKVM's): the
 *    shared pages of the file's shared/private state (gmem_attrs.c), from
 *    creation on; their frames are allocated for the index and the
 *    statistics, and hold the page's contents only while it is private.
 *    INIT_SHARED files of default VMs: every page; sw, SNP and TDX files
 *    before in-place mode: none (views fault everywhere); in in-place mode
 *    what KVM_SET_MEMORY_ATTRIBUTES2 made shared: a conversion to private
 *    copies a page's contents from H back to its frame and punches it out
 *    of H (every mapping, every process: the next host access faults), one
 *    to shared copies the frame into H (zeroes, on models that hide
 *    private contents). Views fill H's holes in their range when they are
 *    made (gmem_host_populate_locked), a poisoned page is a hole
 *    (HM_POISON), and a punch zeroes H in place while views exist (a host
 *    read racing it sees old or zero, never a fault) and punches it
 *    otherwise.
 *  - files of a model that decides per frame (pKVM, gmem_host_mappable):
 *    the pages the guest shares. pm_gmem_host_share copies them in after
 *    the model's transition; pm_gmem_host_unshare takes them out (punch)
 *    before the guest gets them back (unless pinned); a punch, poison or
 *    a reclaim by the model (pm_gmem_host_reclaimed) takes them out too.
 *
 * Locks: host_lock (gmem_internal.h) around every change of H and of the
 * host map, taken before the model's locks and the index stripes. vCPUs
 * read the host map without it. Shootdowns run under it (the caller's
 * flush): no vCPU in guest mode ever waits for host_lock.
 */
#include <fcntl.h>
#include <sched.h>
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
	/* A state file's H holds its shared pages from the start; pKVM's
	 * only from its first view. */
	atomic_init(&g->host_exposed, gmem_host_by_state(g));
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

/* Page i's contents are in H: a shared page of a file whose H is in use
 * (state files: from creation; pKVM: from its first view). Lock-free. */
static bool host_holds(struct pm_gmem *g, uint64_t i)
{
	return host_file_used(g) && gmem_page_shared(g, i);
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

bool gmem_host_by_state(const struct pm_gmem *g)
{
	return !g->vm->model->gmem_host_mappable;
}

/* ---- the guest's side ---- */

uint8_t *pm_gmem_host_page(struct pm_gmem *g, uint64_t index, bool *moving)
{
	uint32_t w;

	if (moving)
		*moving = false;
	if (g->host_fd < 0 || index >= g->npages)
		return NULL;
	/* A page moving between its frame and H (pKVM): translate again. */
	w = hm_get(&g->hmap, index);
	if (w & HM_MOVING) {
		if (moving)
			*moving = true;
		return NULL;
	}
	/* A shared page's contents are in H (state files: the fault path
	 * reads the state after its invalidation snapshot, and conversions
	 * move contents inside an invalidation; pKVM: shares and unshares
	 * move them with the page marked moving). */
	return host_holds(g, index) ? g->host_win + (index << PM_PAGE_SHIFT) : NULL;
}

/* ---- pKVM: the state, written by shares, unshares and reclaims ---- */

/* Sets the state of [a, b) (host_lock): making pages the host's may fail
 * (no memory: they stay the guest's alone, as a host fault that finds no
 * memory), taking them from the host must not, and waits for memory. */
static bool host_state_set_locked(struct pm_gmem *g, uint64_t a, uint64_t b, bool shared)
{
	if (a >= b)
		return true;
	while (gmem_attrs_set(g, a, b, shared)) {
		if (shared)
			return false;
		sched_yield();
	}
	return true;
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
			hm_store(&g->hmap, i + n, w & ~HM_MOVING);
			host_state_set_locked(g, i + n, i + n + 1, false);
			break;
		}
		n++;
	}
	return n;
}

/* The moving pages of [start, end) come in: their frames' contents into H,
 * then they are the host's (the state says shared). A page H, or the
 * state, has no memory for stays out (private): the host faults on it,
 * as on a page it could not fault in. */
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
		if (done && !host_state_set_locked(g, i, i + done, true))
			done = 0;
		if (done < n) {
			host_file_punch(g, i + done, i + n);
			host_state_set_locked(g, i + done, i + n, false);
		}
		for (uint64_t k = 0; k < n; k++)
			hm_store(&g->hmap, i + k, hm_get(&g->hmap, i + k) & ~HM_MOVING);
		i = hm_next(&g->hmap, i + n, end, HM_NEXT_MARKED);
	}
}

/* The moving pages of [start, end) go out: those below `taken` back to
 * their frames and out of H (every mapping), and [start, taken) is the
 * guest's alone again (private); the others stay in H. */
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
	host_state_set_locked(g, start, taken, false);
	for (uint64_t i = hm_next(&g->hmap, start, end, HM_NEXT_MARKED); i < end;
	     i = hm_next(&g->hmap, i + 1, end, HM_NEXT_MARKED)) {
		uint32_t w = hm_get(&g->hmap, i);

		if (w & HM_MOVING)
			hm_store(&g->hmap, i, w & ~HM_MOVING);
	}
}

/* ---- pages moving between the guest and the host (pKVM) ---- */

/* Page i's frame is one the model lets the host map (host_lock: every
 * unshare holds it around the model's transitions, so a page the guest
 * took back is refused). */
static bool host_frame_mappable(struct pm_gmem *g, uint64_t i)
{
	pm_pfn_t pfn = pm_gmem_peek_pfn(g, i);

	return pfn != PM_PFN_INVALID && g->vm->model->gmem_host_mappable(g->vm, pfn);
}

/* Marks page i moving (its contents are about to enter H): false if the
 * host map has no memory for it (the host never sees the page, as a host
 * fault that finds no memory). */
static bool host_mark_moving(struct pm_gmem *g, uint64_t i)
{
	if (hm_reserve(&g->hmap, i, i + 1))
		return false;
	hm_store(&g->hmap, i, hm_get(&g->hmap, i) | HM_MOVING);
	return true;
}

/* The pages of [start, end) the model let the host have (a share) become
 * shared; once a view exposed H their contents move in. host_lock. */
static void host_share_locked(struct pm_gmem *g, uint64_t start, uint64_t end)
{
	bool exposed = host_file_used(g), any = false;
	uint64_t run = end, run_end = end;   /* unexposed: pages to make shared */

	for (uint64_t i = gmem_next_page(g, start, end); i < end; i = gmem_next_page(g, i + 1, end)) {
		if (gmem_page_shared(g, i) || !host_frame_mappable(g, i))
			continue;
		if (exposed) {
			any |= host_mark_moving(g, i);
			continue;
		}
		/* Nothing maps H yet: the state alone (the frame keeps the
		 * contents until the first view), a run at a time. */
		if (i != run_end) {
			host_state_set_locked(g, run, run_end, true);
			run = i;
		}
		run_end = i + 1;
	}
	if (!exposed)
		host_state_set_locked(g, run, run_end, true);
	if (any) {
		pm_mmu_tlb_shootdown(g->vm);   /* no vCPU still uses a frame being copied */
		host_move_in(g, start, end);
	}
}

void pm_gmem_host_share(struct pm_gmem *g, uint64_t start, uint64_t end)
{
	end = PM_MIN(end, g->npages);
	if (!g->vm->model->gmem_host_mappable || start >= end)
		return;
	pthread_mutex_lock(&g->host_lock);
	host_share_locked(g, start, end);
	pthread_mutex_unlock(&g->host_lock);
}

/* The first view: H takes the contents of every page the state says is
 * the host's (still in its frame). host_lock. */
static void host_sweep_in_locked(struct pm_gmem *g)
{
	uint64_t stop;
	bool any = false;

	for (uint64_t a = 0; a < g->npages; a = stop) {
		if (!gmem_shared_run(g, a, g->npages, &stop))
			continue;
		for (uint64_t i = gmem_next_page(g, a, stop); i < stop; i = gmem_next_page(g, i + 1, stop))
			if (!host_frame_mappable(g, i) || !host_mark_moving(g, i))
				host_state_set_locked(g, i, i + 1, false);
			else
				any = true;
	}
	if (any) {
		pm_mmu_tlb_shootdown(g->vm);
		host_move_in(g, 0, g->npages);
	}
}

void gmem_host_expose_locked(struct pm_gmem *g)
{
	if (host_exposed(g))
		return;
	atomic_store_explicit(&g->host_exposed, true, memory_order_relaxed);
	if (g->vm->model->gmem_host_mappable)
		host_sweep_in_locked(g);
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
	for (uint64_t i = start, stop; host_file_used(g) && i < end; i = stop) {
		if (!gmem_shared_run(g, i, end, &stop))
			continue;
		/* The reservation was made with the pin check: a page the host
		 * map holds no word for is not in H either. */
		for (uint64_t k = i; k < stop; k++)
			any |= host_mark_moving(g, k);
	}
	/* From here until host_move_out no vCPU reaches the pages: the
	 * guest cannot write a secret where the host still sees the page. */
	if (any)
		pm_mmu_tlb_shootdown(g->vm);
	r = take(arg, end - start);
	if (any) {
		host_move_out(g, start, end, r > 0 ? start + (uint64_t)r : start);
	} else if (r > 0) {
		if (host_file_used(g))
			host_file_punch(g, start, start + (uint64_t)r);   /* whatever a stranger left */
		host_state_set_locked(g, start, start + (uint64_t)r, false);
	}
out:
	pthread_mutex_unlock(&g->host_lock);
	return r;
}

void pm_gmem_host_reclaimed(struct pm_gmem *g, uint64_t start, uint64_t end)
{
	uint64_t stop;

	end = PM_MIN(end, g->npages);
	/* Always under the lock: a share that saw the page still shared may
	 * be recording it right now (host_lock orders the two). */
	pthread_mutex_lock(&g->host_lock);
	for (uint64_t a = start; a < end; a = stop) {
		if (!gmem_shared_run(g, a, end, &stop))
			continue;
		for (uint64_t i = a; i < stop; i++) {
			pm_pfn_t pfn = pm_gmem_peek_pfn(g, i);

			if (pfn != PM_PFN_INVALID && g->vm->model->gmem_host_mappable &&
			    g->vm->model->gmem_host_mappable(g->vm, pfn))
				continue;
			/* The guest lost its mapping in the reclaim (its TLBs
			 * were shot down): the contents go back to the frame,
			 * which keeps them for whoever gets the page next. */
			if (host_holds(g, i)) {
				if (pfn != PM_PFN_INVALID)
					host_copy_out(g, i, 1, &pfn);
				host_file_punch(g, i, i + 1);
			}
			host_state_set_locked(g, i, i + 1, false);
		}
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

bool gmem_host_showable(struct pm_gmem *g, uint64_t i)
{
	return gmem_page_shared(g, i) && !(hm_get(&g->hmap, i) & HM_POISON);
}

/* Allocates H's pages [start, end), except marked (poisoned) ones: 0, or
 * -ENOMEM at the first failure. */
static int host_file_fill(struct pm_gmem *g, uint64_t start, uint64_t end)
{
	while (start < end) {
		uint64_t stop = hm_next(&g->hmap, start, end, HM_NEXT_MARKED);

		if (stop > start && fallocate(g->host_fd, 0, (off_t)(start << PM_PAGE_SHIFT),
					      (off_t)((stop - start) << PM_PAGE_SHIFT)))
			return -ENOMEM;
		start = stop + 1;
	}
	return 0;
}

void gmem_host_populate_locked(struct pm_gmem *g, uint64_t start, uint64_t end)
{
	uint64_t stop;

	end = PM_MIN(end, g->npages);
	if (g->host_fd < 0 || !gmem_host_by_state(g))
		return;
	for (; start < end; start = stop)
		if (gmem_shared_run(g, start, end, &stop))
			(void)host_file_fill(g, start, stop);
}

/* ---- in-place conversion ---- */

/* Frames for the pages of [start, end) whose contents H holds: 0 or
 * -ENOMEM (the frames allocated so far stay, unused: harmless). A page
 * with a frame (the usual case: views and the guest's faults allocate
 * them) costs no system call. */
static int host_frames_for_data(struct pm_gmem *g, uint64_t start, uint64_t end)
{
	for (uint64_t i = start; i < end; i++) {
		off_t off = (off_t)(i << PM_PAGE_SHIFT);
		pm_pfn_t pfn;

		if ((hm_get(&g->hmap, i) & HM_POISON) || pm_gmem_peek_pfn(g, i) != PM_PFN_INVALID)
			continue;
		if (lseek(g->host_fd, off, SEEK_DATA) == off && pm_gmem_get_pfn_host(g, i, &pfn) == -ENOMEM)
			return -ENOMEM;
	}
	return 0;
}

/* Runs of up to HOST_BATCH pages of [i, end) that have frames: the first
 * page at or after i with one, its run in *n and frames in pfns. */
static uint64_t host_frame_run(struct pm_gmem *g, uint64_t i, uint64_t end, pm_pfn_t *pfns,
			       uint64_t *n)
{
	i = gmem_next_page(g, i, end);
	for (*n = 0; i + *n < end && *n < HOST_BATCH; (*n)++) {
		pfns[*n] = pm_gmem_peek_pfn(g, i + *n);
		if (pfns[*n] == PM_PFN_INVALID)
			break;
	}
	return i;
}

int gmem_host_make_private_locked(struct pm_gmem *g, uint64_t start, uint64_t end,
				  uint64_t *err_index)
{
	uint64_t pinned = hm_next(&g->hmap, start, end, HM_NEXT_PINNED), stop;
	pm_pfn_t pfns[HOST_BATCH];
	int r;

	/* The host still holds a page (get_user_pages): nothing changes. */
	if (pinned < end) {
		*err_index = pinned;
		return -EAGAIN;
	}
	if (!host_file_used(g))
		return 0;       /* no H: the frames hold the pages either way */
	for (uint64_t i = start; i < end; i = stop)
		if (gmem_shared_run(g, i, end, &stop) && (r = host_frames_for_data(g, i, stop)))
			return r;
	/* The contents come back from H (holes read zero), then H loses the
	 * pages in every mapping: the next host access anywhere faults. */
	for (uint64_t i = start; i < end; i = stop) {
		if (!gmem_shared_run(g, i, end, &stop))
			continue;
		for (uint64_t k = i, n; (k = host_frame_run(g, k, stop, pfns, &n)) < stop; k += n ? n : 1)
			if (n)
				host_copy_out(g, k, n, pfns);
		host_file_punch(g, i, stop);
	}
	return 0;
}

int gmem_host_make_shared_locked(struct pm_gmem *g, uint64_t start, uint64_t end, bool *complete)
{
	bool keep = !g->vm->model->convert_hides_private && host_file_used(g);
	pm_pfn_t pfns[HOST_BATCH];
	uint64_t stop, moved = 0, pages = 0;
	int r = 0;

	/* The frames' contents go into H first, allocating its pages: the
	 * only step that can fail, taken back if it does (nothing else has
	 * changed yet). */
	for (uint64_t i = start; i < end && keep && !r; i = stop) {
		if (gmem_shared_run(g, i, end, &stop))
			continue;
		pages += stop - i;
		for (uint64_t k = i, n; !r && (k = host_frame_run(g, k, stop, pfns, &n)) < stop;
		     k += n ? n : 1) {
			if (n && host_copy_in(g, k, n, pfns) < n)
				r = -ENOMEM;
			moved += n;
		}
	}
	if (r) {
		for (uint64_t i = start; i < end; i = stop)
			if (!gmem_shared_run(g, i, end, &stop))
				host_file_punch(g, i, stop);
		return r;
	}
	/* Then the guest's hardware lets the frames go (the arch hook). */
	for (uint64_t i = start; i < end; i = stop)
		if (!gmem_shared_run(g, i, end, &stop))
			gmem_unprepare(g, i, stop);
	*complete = keep && moved == pages;
	return 0;
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
			     !atomic_load(&g->hmap.marked) &&
			     (gmem_host_by_state(g) || gmem_range_private(g, start, end))))
		return;
	pthread_mutex_lock(&g->host_lock);
	zero = gmem_host_by_state(g) && atomic_load(&g->nr_views);
	if (host_file_used(g) && zero)
		host_file_zero(g, start, end);     /* private pages are holes: left so */
	else if (host_file_used(g))
		host_file_punch(g, start, end);
	/* A state file keeps its pages' state (v8, 36/46); pKVM's pages the
	 * guest shared leave the file, and the host with them. */
	if (!gmem_host_by_state(g))
		host_state_set_locked(g, start, end, false);
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
	w = hm_get(&g->hmap, index);
	if (gmem_host_by_state(g))
		w |= HM_POISON;
	else
		host_state_set_locked(g, index, index + 1, false);
	if (host_file_used(g))
		host_file_punch(g, index, index + 1);
	hm_store(&g->hmap, index, w);
	pthread_mutex_unlock(&g->host_lock);
}

/* ---- pins ---- */

/* May the host hold page i now (host_lock)? A shared page: of a state
 * file, not poisoned (allocated now if it was not: pinning and write()
 * fault it in, as writing an INIT_SHARED page populates it); of pKVM's,
 * one whose frame the hyp lets the host map. */
bool gmem_host_may_access_locked(struct pm_gmem *g, uint64_t i)
{
	pm_pfn_t pfn;

	if (gmem_host_by_state(g))
		return gmem_host_showable(g, i) && !pm_gmem_get_pfn_host(g, i, &pfn);
	return gmem_page_shared(g, i) && host_frame_mappable(g, i);
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

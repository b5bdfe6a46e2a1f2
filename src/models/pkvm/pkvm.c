/* SPDX-License-Identifier: MIT */
/*
 * PM_VM_TYPE_PKVM: a protected VM under pKVM's hypervisor (hyp.h).
 *
 * What the type is:
 *  - Every guest page is private and comes from guest_memfd: every memslot
 *    must be a guest_memfd slot (EINVAL otherwise; userspace_addr is never
 *    used). KVM_SET_MEMORY_ATTRIBUTES supports no attribute (PRIVATE is
 *    EINVAL, 0 is a no-op) and KVM_CAP_MEMORY_ATTRIBUTES is 0 on such a VM:
 *    pKVM converts only when the guest asks (share/unshare hypercalls), never
 *    from the host's side. No INIT_SHARED guest_memfd, no read-only slots.
 *  - The hyp: one per process, created with the first pkvm VM over the pool
 *    as it is then, destroyed with the last (it holds pool frames for its
 *    tables, so the pool cannot be resized meanwhile: EBUSY).
 *  - The guest's stage-2 is the VM's MMU stage-2 (vm->mmu->s2), built by
 *    the hyp (pkvm_vm_config.s2): vCPUs fill their TLBs from it as on any VM,
 *    and only the hyp writes it. Every removal by the hyp shoots down the
 *    vCPUs' TLBs (pkvm_vm_config.tlb_flush) before the frame changes hands.
 *  - Fault: the guest_memfd frame of the gfn is donated to the guest
 *    (host_donate_guest) under the MMU lock, after the invalidation retry
 *    check, so a punch or a memslot deletion that raced is a retry.
 *  - Invalidation (guest_memfd release, memslot deletion): the hyp takes
 *    every page of the range back (host_reclaim_page_guest: a page the
 *    guest owned is poisoned, zeroed) before guest_memfd frees or reuses it.
 *    There is no plain zap of the guest stage-2. A punch takes nothing:
 *    the guest's pages are pinned and guest_memfd refused a punch over one
 *    (frozen.c).
 *  - Destruction: pkvm_vm_teardown reclaims whatever is left.
 *  - Memory for reclaims: a transition first fills the hyp's table reserve
 *    for the worst case (pm_s2_tables_needed), even where its commit
 *    needs no new table, as a reclaim of a page mapped at 4K. Reclaims run
 *    while guest_memfd frees (a punch, a release) and must not fail, so
 *    with the pool exhausted they would wait for memory only they can give
 *    back. The type keeps RECLAIM_SPARE frames (reclaim_spare, taken when
 *    the hyp is created, refilled when memory allows) and hands them to the
 *    hyp's reserve when a reclaim finds the pool empty; only a reclaim that
 *    really splits tables with both gone waits (yields and retries).
 *  - Sharing: the guest's MEM_SHARE / MEM_UNSHARE hypercalls (hypercalls.c,
 *    one granule each) run the hyp's guest_share_host / guest_unshare_host
 *    (a page not mapped yet is faulted in first); nothing exits to the VMM
 *    (upstream's hypervisor handles them). The host
 *    maps a page only while the guest shares it: guest_memfd views map the
 *    file's host file, which holds exactly the pages whose host state is
 *    SHARED_BORROWED (gmem_host_mappable): a share copies them in
 *    (pm_gmem_host_share), and while they are there the vCPUs reach them
 *    there too (guest_hva), in place. An unshare runs under the file's
 *    host_lock (pm_gmem_host_unshare): it fails with EBUSY while the host
 *    pins the page; otherwise the vCPUs stop reaching the page, the hyp
 *    takes it, and it leaves the host file (every mapping of it, in every
 *    process) with its contents back in the frame before the guest can
 *    touch it again. A memslot's deletion gives shared pages back to the
 *    host; they leave the host file the same way (inval_zap).
 *  - Host accesses: the hyp is a host access guard (host/host_guard.h): every
 *    host path that touches a frame asks the host stage-2
 *    (pkvm_host_access); a refusal is a counted host stage-2 fault.
 *  - Statistics (PM_KVM_GET_MODEL_STATS on the system handle, named by the
 *    hyp): the live hyp's, plus those of the hyps destroyed before it
 *    (retired), so a report can read what a VM's teardown did after the VM
 *    is gone; then the guest interface's (pkvm_internal.h).
 *  - The rest of upstream's protected-VM interface (about 7.1) has files of
 *    its own: the guest's hypercalls (hypercalls.c, pkvm_guest.c), the
 *    MMIO guard (mmio_guard.c), frozen memslots and pinned pages
 *    (frozen.c); a host fault on guest memory through a view is SIGSEGV
 *    (host_fault_sigsegv). The VM's state is struct pkvm_guest
 *    (pkvm_internal.h), vm->model_data.
 */
#include <sched.h>
#include <privmem/privmem.h>
#include "gmem/gmem.h"
#include "host/host_guard.h"
#include "host/pool.h"
#include "kvm/vm.h"
#include "lib/rcu.h"
#include "memslot/memslot.h"
#include "models/pkvm/hyp.h"
#include "models/pkvm/pkvm.h"
#include "models/pkvm/pkvm_internal.h"
#include "vcpu/vcpu.h"

/* ---- the process-wide hyp ---- */

static pthread_mutex_t hyp_ref_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pkvm_hyp *the_hyp;     /* hyp_ref_lock; NULL without a pkvm VM */
static unsigned int hyp_users;       /* hyp_ref_lock: live pkvm VMs */
static struct pkvm_stats retired;    /* hyp_ref_lock: of the hyps destroyed */
static atomic_uint_fast64_t unshare_busy; /* unshares refused for a host pin */

/* Frames for the hyp's reserve when a reclaim finds the pool empty (see
 * the top). Twice a transition's worst case. spare_lock is a leaf, taken
 * before the hyp's host_lock; the frames are the pool's, in use. */
#define RECLAIM_SPARE 12
static pthread_mutex_t spare_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pm_s2_mc reclaim_spare = PM_S2_MC_INIT;   /* spare_lock */

/* The host stage-2 as a pool guard: every host access to frames. */
static int hyp_guard_access(void *arg, pm_pfn_t pfn, uint64_t n, bool write)
{
	for (uint64_t i = 0; i < n; i++)
		if (pkvm_host_access(arg, pfn + i, write) == -EFAULT)
			return -EFAULT;
	return 0;
}

static struct pm_host_guard hyp_guard = { .access = hyp_guard_access };  /* hyp_ref_lock */

static void stats_add(struct pkvm_stats *to, const struct pkvm_stats *st)
{
	for (int t = 0; t < PKVM_NR_TRANSITIONS; t++) {
		to->done[t] += st->done[t];
		to->refused[t] += st->refused[t];
	}
	to->host_s2_faults += st->host_s2_faults;
	to->pages_poisoned += st->pages_poisoned;
}

static int hyp_get(struct pkvm_hyp **out)
{
	int r = 0;

	pthread_mutex_lock(&hyp_ref_lock);
	if (!the_hyp) {
		r = pkvm_hyp_create(&the_hyp);
		if (!r) {
			hyp_guard.arg = the_hyp;
			r = pm_host_guard_register(&hyp_guard);
			if (r) {
				pkvm_hyp_destroy(the_hyp);
				the_hyp = NULL;
			}
		}
		if (!r) {
			pthread_mutex_lock(&spare_lock);
			r = pm_s2_mc_topup(&reclaim_spare, RECLAIM_SPARE);
			if (r)
				pm_s2_mc_free(&reclaim_spare);
			pthread_mutex_unlock(&spare_lock);
			if (r) {
				pm_host_guard_unregister(&hyp_guard);
				pkvm_hyp_destroy(the_hyp);
				the_hyp = NULL;
			}
		}
	}
	if (!r) {
		hyp_users++;
		*out = the_hyp;
	}
	pthread_mutex_unlock(&hyp_ref_lock);
	return r;
}

/* Unregistering the guard waits for accesses in flight (an RCU grace
 * period); none of them takes hyp_ref_lock, so it may be held. */
static void hyp_put(void)
{
	struct pkvm_stats st;

	pthread_mutex_lock(&hyp_ref_lock);
	PM_BUG_ON(!hyp_users);
	if (!--hyp_users) {
		pthread_mutex_lock(&spare_lock);
		pm_s2_mc_free(&reclaim_spare);
		pthread_mutex_unlock(&spare_lock);
		pm_host_guard_unregister(&hyp_guard);
		pkvm_hyp_get_stats(the_hyp, &st);
		stats_add(&retired, &st);
		pkvm_hyp_destroy(the_hyp);
		the_hyp = NULL;
	}
	pthread_mutex_unlock(&hyp_ref_lock);
}

/* PM_KVM_GET_MODEL_STATS on the system handle (privmem.h): every hyp of the
 * process, live or destroyed, under the names the hyp gives its
 * transitions. */
static int pkvm_get_process_stats(struct pm_model_stats *out)
{
	struct pkvm_stats sum, st;
	char name[sizeof(out->v[0].name)];

	pthread_mutex_lock(&hyp_ref_lock);
	sum = retired;
	if (the_hyp) {
		pkvm_hyp_get_stats(the_hyp, &st);
		stats_add(&sum, &st);
	}
	pthread_mutex_unlock(&hyp_ref_lock);
	for (int t = 0; t < PKVM_NR_TRANSITIONS; t++)
		pm_model_stats_put(out, pkvm_transition_name(t), sum.done[t]);
	for (int t = 0; t < PKVM_NR_TRANSITIONS; t++) {
		snprintf(name, sizeof(name), "%s_refused", pkvm_transition_name(t));
		pm_model_stats_put(out, name, sum.refused[t]);
	}
	pm_model_stats_put(out, "host_s2_faults", sum.host_s2_faults);
	pm_model_stats_put(out, "pages_poisoned", sum.pages_poisoned);
	pm_model_stats_put(out, "unshare_busy", atomic_load_explicit(&unshare_busy, memory_order_relaxed));
	pkvm_iface_stats_put(out);
	return 0;
}
_Static_assert(2 * PKVM_NR_TRANSITIONS + 3 + PKVM_IFACE_NR_STATS <= PM_MODEL_STATS_MAX,
	       "the hyp's counters and the guest interface's fit");

struct pkvm_hyp *pkvm_model_hyp(void)
{
	struct pkvm_hyp *hyp;

	pthread_mutex_lock(&hyp_ref_lock);
	hyp = the_hyp;
	pthread_mutex_unlock(&hyp_ref_lock);
	return hyp;
}

struct pkvm_vm *pkvm_model_vm(struct pm_vm *vm)
{
	struct pkvm_guest *pg = vm->model_data;

	PM_BUG_ON(vm->model != &pm_model_pkvm);
	return pg ? pg->pvm : NULL;
}

/* ---- VM lifetime ---- */

int pkvm_guest_new(struct pkvm_guest **out)
{
	struct pkvm_guest *pg = pm_zalloc(sizeof(*pg));

	if (!pg)
		return -ENOMEM;
	atomic_init(&pg->ran, false);
	pkvm_mmio_guard_init(&pg->guard);
	*out = pg;
	return 0;
}

void pkvm_guest_free(struct pkvm_guest *pg)
{
	pkvm_mmio_guard_destroy(&pg->guard);
	free(pg);
}

/* Called by the hyp, locks held, after it removed guest mappings. */
static void pkvm_tlb_flush(void *arg, gfn_t start, gfn_t end)
{
	pm_mmu_tlb_shootdown(arg);
}

static int pkvm_vm_init(struct pm_vm *vm)
{
	struct pkvm_vm_config cfg = {
		.protected = true, .tlb_flush = pkvm_tlb_flush, .arg = vm, .s2 = &vm->mmu->s2,
	};
	struct pkvm_guest *pg;
	struct pkvm_hyp *hyp;
	int r;

	r = pkvm_guest_new(&pg);
	if (r)
		return r;
	r = hyp_get(&hyp);
	if (r)
		goto err_free;
	r = pkvm_vm_create(hyp, &cfg, &pg->pvm);
	if (r)
		goto err_put;
	vm->model_data = pg;
	return 0;

err_put:
	hyp_put();
err_free:
	pkvm_guest_free(pg);
	return r;
}

/* Hands the spare frames to the hyp's reserve; false if there were none. */
static bool spare_give(struct pkvm_vm *pvm)
{
	bool gave;

	pthread_mutex_lock(&spare_lock);
	gave = reclaim_spare.nr > 0;
	if (gave)
		pkvm_hyp_reserve_add(pkvm_vm_hyp(pvm), &reclaim_spare);
	pthread_mutex_unlock(&spare_lock);
	return gave;
}

/* The hyp needs frames for page tables to take pages back (annotations);
 * when the pool has none, the spare ones go to it (see the top), and only
 * without those it waits for memory rather than leave pages behind. */
static void reclaim_range(struct pkvm_vm *pvm, gfn_t start, gfn_t end)
{
	bool used_spare = false;

	while (pkvm_vm_reclaim_range(pvm, start, end) == -ENOMEM) {
		if (spare_give(pvm))
			used_spare = true;
		else
			sched_yield();
	}
	if (used_spare) {               /* refill for the next one, if memory allows */
		pthread_mutex_lock(&spare_lock);
		(void)pm_s2_mc_topup(&reclaim_spare, RECLAIM_SPARE);
		pthread_mutex_unlock(&spare_lock);
	}
}

static void pkvm_vm_destroy(struct pm_vm *vm)
{
	struct pkvm_guest *pg = vm->model_data;

	reclaim_range(pg->pvm, 0, 1ULL << PM_S2_GFN_BITS);
	PM_BUG_ON(pkvm_vm_teardown(pg->pvm));
	vm->model_data = NULL;
	pkvm_guest_free(pg);
	hyp_put();
}

/* ---- invalidation: the hyp takes the pages back ---- */

/* A memslot's deletion gave the host back the pages the guest shared in
 * [start, end) (one slot's range): their file keeps them, so they leave
 * its host file with their contents back in their frames (a punch or a
 * release empties the host file itself). The file is found under RCU:
 * this runs inside an invalidation, where a last put must not happen. */
static void host_file_reclaimed(struct pm_vm *vm, gfn_t start, gfn_t end)
{
	struct pm_memslot *s;
	struct pm_gmem *g;

	pm_rcu_read_lock();
	s = pm_memslot_lookup(vm, start);
	g = s ? pm_rcu_dereference(s->gmem) : NULL;
	if (g) {
		uint64_t first = s->gmem_pgoff + (start - s->base_gfn);

		pm_gmem_host_reclaimed(g, first, first + (PM_MIN(end, s->base_gfn + s->npages) - start));
	}
	pm_rcu_read_unlock();
}

static void pkvm_inval_zap(struct pm_vm *vm, gfn_t start, gfn_t end, unsigned int filter,
			   enum pm_inval_cause cause, void *ctx)
{
	struct pkvm_vm *pvm = pkvm_model_vm(vm);

	/* Memslots deleted while the VM is destroyed: torn down already.
	 * A punch takes nothing: every page the guest holds is pinned, and
	 * guest_memfd refused a punch over one (pkvm_gmem_pinned). */
	if (!pvm || cause == PM_INVAL_CAUSE_PUNCH)
		return;
	reclaim_range(pvm, start, end);
	if (cause == PM_INVAL_CAUSE_MEMSLOT)
		host_file_reclaimed(vm, start, end);
}

/* ---- the fault path ---- */

/* Where a gfn's page lives (pm_memslot_get); every pkvm slot has a
 * guest_memfd (gmem_slots_only), so ref.gmem is NULL only while its file
 * goes. */
struct gfn_file {
	bool in_slot;
	struct pm_slot_ref ref;
};

static struct gfn_file gfn_file_get(struct pm_vm *vm, gfn_t gfn)
{
	struct gfn_file gf = { 0 };

	gf.in_slot = pm_memslot_get(vm, gfn, true, &gf.ref);
	return gf;
}

/* The guest_memfd frame of f->gfn: PM_FAULT_MAPPED and *pfn, or how the
 * fault ends. */
static enum pm_fault_result fault_frame(struct pm_vm *vm, struct pm_fault *f, pm_pfn_t *pfn)
{
	struct gfn_file gf = gfn_file_get(vm, f->gfn);
	unsigned int order;
	int err;

	if (!gf.in_slot)
		return PM_FAULT_MMIO;   /* pKVM: outside memslots is MMIO */
	if (!gf.ref.gmem) {
		f->err = EFAULT;
		return PM_FAULT_EXIT;
	}
	err = pm_gmem_get_pfn(gf.ref.gmem, gf.ref.index, f->gfn, pfn, &order);
	pm_gmem_put(gf.ref.gmem);
	return pm_mmu_gmem_error(f, err);
}

/* Donation refused: another vCPU's fault mapped the gfn (retry the
 * access), or the frame is not the host's to give (a bug in the caller's
 * bookkeeping, or a hostile VMM): a memory fault exit. No memory for the
 * hyp's tables is ENOMEM. */
static enum pm_fault_result donate_refused(struct pkvm_vm *pvm, struct pm_fault *f, int err)
{
	enum pkvm_page_state s = pkvm_guest_state(pvm, f->gfn, NULL);

	if (err == -EPERM && (s == PKVM_PAGE_OWNED || s == PKVM_PAGE_SHARED_OWNED))
		return PM_FAULT_RETRY;
	if (err == -ENOMEM) {
		f->err = ENOMEM;
		return PM_FAULT_ERROR;
	}
	f->err = EFAULT;
	return PM_FAULT_EXIT;
}

static enum pm_fault_result pkvm_mmu_fault(struct pm_vm *vm, struct pm_fault *f)
{
	struct pkvm_vm *pvm = pkvm_model_vm(vm);
	uint64_t snap = pm_inval_snapshot(vm);
	enum pm_fault_result r;
	bool raced = false;
	unsigned int rd;
	pm_pfn_t pfn;
	int err = 0;

	f->private_access = true;   /* all guest memory is private */
	r = fault_frame(vm, f, &pfn);
	if (r != PM_FAULT_MAPPED)
		return r;
	rd = pm_mmu_read_lock(vm);
	raced = pm_inval_retry(vm, f->gfn, f->gfn + 1, snap);
	if (!raced)
		err = pkvm_host_donate_guest(pvm, pfn, f->gfn);
	pm_mmu_read_unlock(vm, rd);
	if (err)
		return donate_refused(pvm, f, err);
	if (raced)
		return PM_FAULT_RETRY;
	f->level = 0;
	f->hva = pm_pfn_to_hva(pfn);
	f->writable = true;
	return PM_FAULT_MAPPED;
}

/* ---- sharing: the guest's hypercalls ---- */

/* Shares one page; a page the guest has not touched yet (no leaf) is
 * faulted in (donated) first, as the guest's own access would. */
static int share_one(struct pm_vcpu *v, struct pkvm_vm *pvm, gfn_t gfn)
{
	int r = pkvm_guest_share_host(pvm, gfn);

	if (r == -ENOENT) {
		struct pm_fault f = pm_fault_init(gfn, PM_ACCESS_WRITE);

		enum pm_fault_result fr;

		while ((fr = pm_mmu_fault(v->vm, &f)) == PM_FAULT_RETRY)
			sched_yield();
		switch (fr) {
		case PM_FAULT_MAPPED:
			break;
		case PM_FAULT_ERROR:
			return -f.err;
		default:
			return -EFAULT;
		}
		r = pkvm_guest_share_host(pvm, gfn);
	}
	return r;
}

/* Shares n pages from gfn, all in one file run (gf); then they come into
 * the host file, in one pass. Pages shared, or -errno for the first. */
static long share_run(struct pm_vcpu *v, struct pkvm_vm *pvm, gfn_t gfn, uint64_t n,
		      const struct gfn_file *gf)
{
	uint64_t k = 0;
	int r = 0;

	while (k < n && !(r = share_one(v, pvm, gfn + k)))
		k++;
	if (k && gf->ref.gmem)
		pm_gmem_host_share(gf->ref.gmem, gf->ref.index, gf->ref.index + k);
	return k ? (long)k : r;
}

struct unshare_ctx {
	struct pkvm_vm *pvm;
	gfn_t gfn;
	int err;                 /* why the run stopped early */
};

/* Under host_lock, the pages out of the vCPUs' reach: the transitions. */
static long unshare_take(void *arg, uint64_t n)
{
	struct unshare_ctx *c = arg;
	uint64_t k = 0;

	while (k < n && !(c->err = pkvm_guest_unshare_host(c->pvm, c->gfn + k)))
		k++;
	return k ? (long)k : c->err;
}

/* Unshares n pages from gfn in one file run (gf): the hyp takes them and
 * they leave the host file; it stops before a page the host pins (EBUSY).
 * Pages unshared, or -errno for the first. */
static long unshare_run(struct pkvm_vm *pvm, gfn_t gfn, uint64_t n, const struct gfn_file *gf)
{
	struct unshare_ctx c = { .pvm = pvm, .gfn = gfn };
	long r;

	if (!gf->ref.gmem)
		return -EFAULT;
	r = pm_gmem_host_unshare(gf->ref.gmem, gf->ref.index, gf->ref.index + n, unshare_take, &c);
	if (r == -EBUSY || (r > 0 && (uint64_t)r < n && !c.err))
		atomic_fetch_add_explicit(&unshare_busy, 1, memory_order_relaxed);
	return r;
}

/* The work of MEM_SHARE / MEM_UNSHARE (hypercalls.c). The guest's HVC
 * leaves guest mode: the hyp's transitions take locks under which other
 * threads shoot down this vCPU's TLB, which they could not while it stayed
 * in guest mode. */
long pkvm_guest_share(struct pm_vcpu *v, bool share, uint64_t gpa, uint64_t n)
{
	struct pkvm_vm *pvm = pkvm_model_vm(v->vm);
	uint64_t done = 0;
	long r = 0;

	PM_BUG_ON(!PM_ALIGNED(gpa, PM_PAGE_SIZE) || !n || (gpa >> PM_PAGE_SHIFT) + n < n);
	pm_vcpu_exit_guest_mode(v);
	/* Run by run of one guest_memfd, each page through the hyp. */
	while (done < n) {
		gfn_t gfn = (gpa >> PM_PAGE_SHIFT) + done;
		struct gfn_file gf = gfn_file_get(v->vm, gfn);
		uint64_t run = PM_MIN(n - done, gf.ref.run);

		if (!gf.in_slot)
			r = -EFAULT;
		else
			r = share ? share_run(v, pvm, gfn, run, &gf) : unshare_run(pvm, gfn, run, &gf);
		if (gf.ref.gmem)
			pm_gmem_put(gf.ref.gmem);
		if (r <= 0)
			break;
		done += (uint64_t)r;
		if ((uint64_t)r < run)
			break;
	}
	pm_vcpu_enter_guest_mode(v);
	return done ? (long)done : r;
}

/* guest_memfd's host file holds the pages the guest shares with the host. */
static bool pkvm_gmem_host_mappable(struct pm_vm *vm, pm_pfn_t pfn)
{
	struct pkvm_vm *pvm = pkvm_model_vm(vm);

	return pvm && pkvm_host_state(pkvm_vm_hyp(pvm), pfn) == PKVM_PAGE_SHARED_BORROWED;
}

/*
 * Where a vCPU reaches the page its leaf maps: a page the guest shares
 * lives in its guest_memfd's host file while the host may map it (the
 * hyp still accounts the frame), every other page in its frame. The file
 * is found through the slot under RCU, without a reference: this runs in
 * guest mode, where a last put (which invalidates, and so waits for this
 * vCPU) must not happen; the file's release waits for a grace period
 * before it unmaps the host file.
 */
static uint8_t *pkvm_guest_hva(struct pm_vm *vm, gfn_t gfn, uint64_t pte, pm_pfn_t pfn)
{
	struct pm_memslot *s;
	struct pm_gmem *g;
	uint8_t *hva = NULL;
	bool moving = false;

	if (pkvm_guest_leaf_state(pte) != PKVM_PAGE_SHARED_OWNED)
		return pm_pfn_to_hva(pfn);
	pm_rcu_read_lock();
	s = pm_memslot_lookup(vm, gfn);
	g = s ? pm_rcu_dereference(s->gmem) : NULL;
	if (g)
		hva = pm_gmem_host_page(g, s->gmem_pgoff + (gfn - s->base_gfn), &moving);
	pm_rcu_read_unlock();
	if (moving)
		return NULL;
	return hva ? hva : pm_pfn_to_hva(pfn);
}

const struct pm_model_ops pm_model_pkvm = {
	.name = "pkvm",
	.type = PM_VM_TYPE_PKVM,
	.private_mem = false,       /* no attribute: explicit conversion only */
	.readonly_mem = false,
	.gmem_init_shared = false,
	.gmem_slots_only = true,
	.vm_init = pkvm_vm_init,
	.vm_destroy = pkvm_vm_destroy,
	.mmu_fault = pkvm_mmu_fault,
	.inval_zap = pkvm_inval_zap,
	.guest_call = pkvm_hvc,
	.gmem_host_mappable = pkvm_gmem_host_mappable,
	.guest_hva = pkvm_guest_hva,
	.get_process_stats = pkvm_get_process_stats,
	.vcpu_pre_run = pkvm_vcpu_pre_run,
	.prepare_memory_region = pkvm_prepare_memory_region,
	.gmem_pinned = pkvm_gmem_pinned,
	.mmio_allowed = pkvm_mmio_allowed,
	.host_fault_sigsegv = true,
};

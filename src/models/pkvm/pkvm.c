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
 *  - Invalidation (guest_memfd punch or release, memslot deletion): the hyp
 *    takes every page of the range back (host_reclaim_page_guest: a page the
 *    guest owned is poisoned, zeroed) before guest_memfd frees or reuses it.
 *    There is no plain zap of the guest stage-2.
 *  - Destruction: pkvm_vm_teardown reclaims whatever is left.
 */
#include <sched.h>
#include <privmem/privmem.h>
#include "gmem/gmem.h"
#include "gmem/pool.h"
#include "kvm/vm.h"
#include "lib/rcu.h"
#include "memslot/memslot.h"
#include "models/pkvm/hyp.h"
#include "models/pkvm/pkvm.h"

/* ---- the process-wide hyp ---- */

static pthread_mutex_t hyp_ref_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pkvm_hyp *the_hyp;     /* hyp_ref_lock; NULL without a pkvm VM */
static unsigned int hyp_users;       /* hyp_ref_lock: live pkvm VMs */

static int hyp_get(struct pkvm_hyp **out)
{
	int r = 0;

	pthread_mutex_lock(&hyp_ref_lock);
	if (!the_hyp)
		r = pkvm_hyp_create(&the_hyp);
	if (!r) {
		hyp_users++;
		*out = the_hyp;
	}
	pthread_mutex_unlock(&hyp_ref_lock);
	return r;
}

static void hyp_put(void)
{
	pthread_mutex_lock(&hyp_ref_lock);
	PM_BUG_ON(!hyp_users);
	if (!--hyp_users) {
		pkvm_hyp_destroy(the_hyp);
		the_hyp = NULL;
	}
	pthread_mutex_unlock(&hyp_ref_lock);
}

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
	PM_BUG_ON(vm->model != &pm_model_pkvm);
	return vm->model_data;
}

/* ---- VM lifetime ---- */

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
	struct pkvm_hyp *hyp;
	struct pkvm_vm *pvm;
	int r;

	r = hyp_get(&hyp);
	if (r)
		return r;
	r = pkvm_vm_create(hyp, &cfg, &pvm);
	if (r) {
		hyp_put();
		return r;
	}
	vm->model_data = pvm;
	return 0;
}

/* The hyp needs frames for page tables to take pages back (annotations);
 * when the pool has none, wait for some rather than leave pages behind. */
static void reclaim_range(struct pkvm_vm *pvm, gfn_t start, gfn_t end)
{
	while (pkvm_vm_reclaim_range(pvm, start, end) == -ENOMEM)
		sched_yield();
}

static void pkvm_vm_destroy(struct pm_vm *vm)
{
	struct pkvm_vm *pvm = vm->model_data;

	reclaim_range(pvm, 0, 1ULL << PM_S2_GFN_BITS);
	PM_BUG_ON(pkvm_vm_teardown(pvm));
	vm->model_data = NULL;
	hyp_put();
}

/* ---- invalidation: the hyp takes the pages back ---- */

static void pkvm_inval_zap(struct pm_vm *vm, gfn_t start, gfn_t end, unsigned int filter,
			   enum pm_inval_cause cause, void *ctx)
{
	struct pkvm_vm *pvm = vm->model_data;

	/* Memslots deleted while the VM is destroyed: torn down already. */
	if (!pvm)
		return;
	reclaim_range(pvm, start, end);
}

/* ---- the fault path ---- */

/* The guest_memfd frame of f->gfn: PM_FAULT_MAPPED and *pfn, or the exit. */
static enum pm_fault_result fault_frame(struct pm_vm *vm, struct pm_fault *f, pm_pfn_t *pfn)
{
	struct pm_memslot *slot;
	struct pm_gmem *g = NULL;
	unsigned int order;
	uint64_t index = 0;
	int err;

	pm_rcu_read_lock();
	slot = pm_memslot_lookup(vm, f->gfn);
	if (slot) {
		PM_BUG_ON(!pm_memslot_has_gmem(slot));    /* gmem_slots_only */
		index = slot->gmem_pgoff + (f->gfn - slot->base_gfn);
		g = pm_rcu_dereference(slot->gmem);
		if (g && !pm_gmem_tryget(g))
			g = NULL;
	}
	pm_rcu_read_unlock();
	if (!slot)
		return PM_FAULT_MMIO;   /* pKVM: outside memslots is MMIO */
	if (!g) {
		f->err = EFAULT;
		return PM_FAULT_MEMORY;
	}
	err = pm_gmem_get_pfn(g, index, f->gfn, pfn, &order);
	pm_gmem_put(g);
	if (err) {
		f->err = err == -EHWPOISON ? EHWPOISON : EFAULT;
		return PM_FAULT_MEMORY;
	}
	return PM_FAULT_MAPPED;
}

/* Donation refused: another vCPU's fault mapped the gfn (retry the
 * access), or the frame is not the host's to give (a bug in the caller's
 * bookkeeping, or a hostile VMM): a memory fault exit. */
static enum pm_fault_result donate_refused(struct pkvm_vm *pvm, struct pm_fault *f, int err)
{
	enum pkvm_page_state s = pkvm_guest_state(pvm, f->gfn, NULL);

	if (err == -EPERM && (s == PKVM_PAGE_OWNED || s == PKVM_PAGE_SHARED_OWNED)) {
		f->level = -1;
		return PM_FAULT_MAPPED;
	}
	f->err = err == -ENOMEM ? ENOMEM : EFAULT;
	return PM_FAULT_MEMORY;
}

static enum pm_fault_result pkvm_mmu_fault(struct pm_vm *vm, struct pm_fault *f)
{
	struct pkvm_vm *pvm = vm->model_data;
	uint64_t snap = pm_inval_snapshot(vm);
	enum pm_fault_result r;
	unsigned int rd;
	pm_pfn_t pfn;
	int err = 0;

	f->private_access = true;   /* all guest memory is private */
	r = fault_frame(vm, f, &pfn);
	if (r != PM_FAULT_MAPPED)
		return r;
	rd = pm_mmu_read_lock(vm);
	if (pm_inval_retry(vm, f->gfn, f->gfn + 1, snap))
		f->level = -1;
	else
		err = pkvm_host_donate_guest(pvm, pfn, f->gfn);
	pm_mmu_read_unlock(vm, rd);
	if (err)
		return donate_refused(pvm, f, err);
	if (f->level == -1)
		return PM_FAULT_MAPPED;
	f->level = 0;
	f->hva = pm_pfn_to_hva(pfn);
	f->writable = true;
	return PM_FAULT_MAPPED;
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
};

/* SPDX-License-Identifier: MIT */
/*
 * A protected VM's memory stays where its guest put it (upstream pKVM,
 * merged about 7.1: "memslots are frozen once the VM has run", "guest
 * memory is pinned"; Documentation/virt/kvm/arm/pkvm.rst).
 *
 *  - Frozen memslots. From the VM's first KVM_RUN (the first time a vCPU
 *    is about to enter the guest: vcpu_pre_run) every KVM_SET_USER_
 *    MEMORY_REGION(2) that would create, delete, move or change a slot
 *    fails with EPERM, after all of KVM's own checks of the request, from
 *    kvm_arch_prepare_memory_region's place (prepare_memory_region). The
 *    reference names no errno: EPERM is privmem's choice (Android's pKVM
 *    returns EPERM there, as far as we know; not checked against 7.1's
 *    sources). Every pkvm slot is a guest_memfd slot, which
 *    KVM lets only be created or deleted (anything else is its EINVAL,
 *    first), so those two are what the freeze refuses. `ran` is set under
 *    slots_lock: a change runs wholly before the first run, or is refused.
 *  - Pinned pages. A page the guest holds (a leaf of its stage-2: owned,
 *    or owned and shared with the host) is pinned from its donation (the
 *    guest's first access) until the VM is destroyed, as upstream pins the
 *    VMM's page at the guest's fault. A guest_memfd punch over such a page
 *    fails with EBUSY and punches nothing (gmem_pinned, which guest_memfd
 *    asks inside the punch's invalidation, so no fault maps a page of the
 *    range meanwhile); a page the guest never touched punches as before.
 *    Upstream's punch of a pinned page would succeed for the host and
 *    leave the page with the guest until the VM dies (a deferred free);
 *    privmem refuses instead, so the file never loses track of a frame
 *    the guest still uses. The file's release (its last close while the
 *    VM lives) cannot be refused: it takes the pages back through the
 *    hyp (poisoned), as before.
 * Counters: memslot_frozen_refusals, punch_pinned_refusals
 * (pkvm_internal.h).
 */
#include "kvm/vm.h"
#include "mmu/mmu.h"
#include "mmu/pgtable.h"
#include "models/pkvm/pkvm.h"
#include "models/pkvm/pkvm_internal.h"
#include "vcpu/vcpu.h"

/* Lock order: the vCPU's run_lock, then the VM's slots_lock (nothing
 * takes a run_lock under slots_lock). */
int pkvm_vcpu_pre_run(struct pm_vcpu *v)
{
	struct pm_vm *vm = v->vm;
	struct pkvm_guest *pg = pkvm_guest_of(vm);

	if (pm_likely(atomic_load_explicit(&pg->ran, memory_order_acquire)))
		return 0;
	pthread_mutex_lock(&vm->slots_lock);
	atomic_store_explicit(&pg->ran, true, memory_order_release);
	pthread_mutex_unlock(&vm->slots_lock);
	return 0;
}

/* slots_lock held. No state while the VM is destroyed (its memslots go
 * without asking). */
int pkvm_prepare_memory_region(struct pm_vm *vm)
{
	struct pkvm_guest *pg = pkvm_guest_of(vm);

	if (!pg || !atomic_load_explicit(&pg->ran, memory_order_relaxed))
		return 0;
	pkvm_iface_count(&pkvm_iface_stats.memslot_frozen_refusals);
	return -EPERM;
}

/* The guest's stage-2 has a leaf exactly where the guest holds a page
 * (the hyp maps nothing else there): one walk that skips empty tables.
 * Upstream's host keeps its own tree of pinned pages; privmem reads what
 * the hyp built. */
bool pkvm_gmem_pinned(struct pm_vm *vm, gfn_t start, gfn_t end)
{
	uint64_t leaves[3];

	if (!pkvm_model_vm(vm))
		return false;
	end = PM_MIN(end, 1ULL << PM_S2_GFN_BITS);
	if (start >= end)
		return false;
	pm_s2_count(&vm->mmu->s2, start, end, leaves);
	if (!(leaves[0] | leaves[1] | leaves[2]))
		return false;
	pkvm_iface_count(&pkvm_iface_stats.punch_pinned_refusals);
	return true;
}

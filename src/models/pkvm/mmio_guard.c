/* SPDX-License-Identifier: MIT */
/*
 * The MMIO guard of a protected VM (upstream's MMIO_GUARD hypercall,
 * Documentation/virt/kvm/arm/hypercalls.rst): the guest says, one granule
 * at a time, which addresses are MMIO it wants the host to emulate.
 *
 * Before the guest's first grant every MMIO access (an access where no
 * memslot is) exits to the VMM as KVM_EXIT_MMIO, as on any VM; the first
 * grant enables the guard for the whole VM, and from then on an MMIO
 * access exits only inside a granted granule: anywhere else the guest gets
 * a data abort (the core's mmio_allowed hook; guest.h says what a C guest
 * sees) and the VMM nothing. A grant is never revoked (upstream has no
 * call for it). Granting a granule inside a memslot is refused (memory is
 * not MMIO), as is an address that is not granule aligned or lies beyond
 * the guest's 48-bit IPA space; granting a granule twice succeeds.
 * Memslots cannot change once the VM has run (frozen.c), so what a grant
 * checked stays true.
 *
 * Upstream the hypervisor records a grant as an annotation in the guest's
 * stage-2; privmem keeps a sorted array of granted gfns beside it (same
 * behaviour, no stage-2 memory): `lock` (a leaf) guards it; vCPUs look up
 * under it in guest mode, which is safe because nothing under it waits
 * for a shootdown. `enabled` lets every access skip the lock until the
 * first grant.
 * Counters: mmio_guard_grants, mmio_guard_refusals (counted by the
 * hypercall), mmio_aborts (here).
 */
#include <stdlib.h>
#include <string.h>
#include "lib/rcu.h"
#include "memslot/memslot.h"
#include "mmu/pgtable.h"
#include "models/pkvm/pkvm_internal.h"
#include "vcpu/vcpu.h"

void pkvm_mmio_guard_init(struct pkvm_mmio_guard *mg)
{
	pthread_mutex_init(&mg->lock, NULL);
	atomic_init(&mg->enabled, false);
	mg->gfns = NULL;
	mg->nr = mg->cap = 0;
}

void pkvm_mmio_guard_destroy(struct pkvm_mmio_guard *mg)
{
	free(mg->gfns);
	pthread_mutex_destroy(&mg->lock);
}

/* The first index whose gfn is >= gfn. lock held. */
static size_t guard_lower_bound_locked(const struct pkvm_mmio_guard *mg, gfn_t gfn)
{
	size_t lo = 0, hi = mg->nr;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (mg->gfns[mid] < gfn)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static bool guard_has_locked(const struct pkvm_mmio_guard *mg, gfn_t gfn)
{
	size_t i = guard_lower_bound_locked(mg, gfn);

	return i < mg->nr && mg->gfns[i] == gfn;
}

/* Inserts gfn (absent) at its place. 0 or -ENOMEM. lock held. */
static int guard_insert_locked(struct pkvm_mmio_guard *mg, gfn_t gfn)
{
	size_t i = guard_lower_bound_locked(mg, gfn);

	if (mg->nr == mg->cap) {
		size_t cap = mg->cap ? 2 * mg->cap : 16;
		gfn_t *n = realloc(mg->gfns, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		mg->gfns = n;
		mg->cap = cap;
	}
	memmove(&mg->gfns[i + 1], &mg->gfns[i], (mg->nr - i) * sizeof(mg->gfns[0]));
	mg->gfns[i] = gfn;
	mg->nr++;
	return 0;
}

static bool gfn_is_memory(struct pm_vm *vm, gfn_t gfn)
{
	bool memory;

	pm_rcu_read_lock();
	memory = pm_memslot_lookup(vm, gfn) != NULL;
	pm_rcu_read_unlock();
	return memory;
}

int pkvm_mmio_guard_grant(struct pm_vm *vm, uint64_t ipa)
{
	struct pkvm_mmio_guard *mg = &pkvm_guest_of(vm)->guard;
	gfn_t gfn = ipa >> PM_PAGE_SHIFT;
	int r = 0;

	if (!PM_ALIGNED(ipa, PM_PAGE_SIZE) || gfn >= (1ULL << PM_S2_GFN_BITS))
		return -EINVAL;
	if (gfn_is_memory(vm, gfn))
		return -EINVAL;
	pthread_mutex_lock(&mg->lock);
	if (!guard_has_locked(mg, gfn))
		r = guard_insert_locked(mg, gfn);
	if (!r)
		atomic_store_explicit(&mg->enabled, true, memory_order_release);
	pthread_mutex_unlock(&mg->lock);
	return r;
}

bool pkvm_mmio_allowed(struct pm_vcpu *v, uint64_t gpa, unsigned int len)
{
	struct pkvm_mmio_guard *mg = &pkvm_guest_of(v->vm)->guard;
	uint64_t end = gpa + (len ? len - 1 : 0);
	gfn_t first = gpa >> PM_PAGE_SHIFT, last = (end < gpa ? UINT64_MAX : end) >> PM_PAGE_SHIFT;
	bool ok = true;

	if (!atomic_load_explicit(&mg->enabled, memory_order_acquire))
		return true;
	pthread_mutex_lock(&mg->lock);
	for (gfn_t gfn = first; gfn <= last && ok; gfn++)
		ok = guard_has_locked(mg, gfn);
	pthread_mutex_unlock(&mg->lock);
	if (!ok)
		pkvm_iface_count(&pkvm_iface_stats.mmio_aborts);
	return ok;
}

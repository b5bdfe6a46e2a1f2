/* SPDX-License-Identifier: MIT */
/*
 * A protected guest's calls to pKVM's hypervisor, as upstream documents
 * them (Documentation/virt/kvm/arm/hypercalls.rst; the hypervisor side
 * merged about 7.1): HVCs in the vendor-specific hypervisor service range,
 * SMCCC 1.1 convention (function id in W0, arguments in X1-X3, the result
 * in X0; privmem's pm_guest_model_call passes X1-X3 as a0-a2 and returns
 * X0). Each call works on one granule, the size HYP_MEMINFO reports:
 *
 *   call         id          arguments              X0
 *   FEATURES     0x86000000  none                   bitmap of the calls offered
 *                                                   (function numbers 0, 2, 3, 4, 7)
 *   HYP_MEMINFO  0xC6000002  X1-X3 must be 0        4096, or INVALID_PARAMETER
 *   MEM_SHARE    0xC6000003  X1 granule IPA;        SUCCESS, or INVALID_PARAMETER
 *   MEM_UNSHARE  0xC6000004    X2, X3 must be 0     (one per refusal: unaligned,
 *   MMIO_GUARD   0xC6000007                         not memory / memory, state)
 *   any other fast call (bit 31 set)                NOT_SUPPORTED (-1)
 *   anything else: -KVM_ENOSYS, as pm_guest_model_call answers a call the
 *   VM type lacks (the other models' calls have bit 31 clear)
 *
 * INVALID_PARAMETER (-3) covers every refusal, as upstream's hypervisor
 * answers any error of its transition with it; the reason is in the
 * counters (the hyp's <transition>_refused, unshare_busy, and
 * mmio_guard_refusals). A page the guest shares before touching it is
 * faulted in first (upstream exits to the host to map it and retries the
 * call: the same result). The hyp's want of memory for its tables is not
 * the guest's error: KVM_RUN fails with ENOMEM and the call is retried
 * when the vCPU runs again (upstream's host tops up the hyp's memcache).
 *
 * What reaches the VMM: nothing. Upstream's hypervisor handles all four
 * calls itself and returns to the guest (only a page to fault in goes to
 * the host kernel). privmem before 7.1's interface exited to the VMM after
 * each share and unshare (KVM_EXIT_HYPERCALL as a notice); it no longer
 * does. A VMM sees their effects: pages shared appear in guest_memfd's
 * views, unshared ones leave them before the call returns, and MMIO
 * outside the guest's grants never exits.
 *
 * Dispatch: a table indexed by call, checked at compile time to name each
 * call once. Counters: hyp_meminfo_calls, mmio_guard_grants and
 * mmio_guard_refusals (here, for every pkvm VM of the process).
 */
#include <privmem/guest.h>
#include "models/pkvm/pkvm.h"
#include "models/pkvm/pkvm_internal.h"
#include "vcpu/vcpu.h"

struct pkvm_iface_stats pkvm_iface_stats;

void pkvm_iface_stats_put(struct pm_model_stats *out)
{
	static const struct {
		const char *name;
		atomic_uint_fast64_t *c;
	} all[] = {
		{ "hyp_meminfo_calls", &pkvm_iface_stats.hyp_meminfo_calls },
		{ "mmio_guard_grants", &pkvm_iface_stats.mmio_guard_grants },
		{ "mmio_guard_refusals", &pkvm_iface_stats.mmio_guard_refusals },
		{ "mmio_aborts", &pkvm_iface_stats.mmio_aborts },
		{ "memslot_frozen_refusals", &pkvm_iface_stats.memslot_frozen_refusals },
		{ "punch_pinned_refusals", &pkvm_iface_stats.punch_pinned_refusals },
	};
	_Static_assert(sizeof(all) / sizeof(all[0]) == PKVM_IFACE_NR_STATS, "a name per counter");

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		pm_model_stats_put(out, all[i].name, atomic_load_explicit(all[i].c, memory_order_relaxed));
}

/* ---- the calls ---- */

/* X1-X3 of a call. */
struct hvc_args {
	uint64_t x1, x2, x3;
};

/* Discovery (kvm_arm_hyp_service_available in a guest): bit n says
 * function number n (the id's low 16 bits) is offered. X1-X3 of the
 * answer (numbers 32-127) would be 0: privmem returns X0 only. */
static long hvc_features(struct pm_vcpu *v, const struct hvc_args *a)
{
	return (long)PM_PKVM_FEATURES;
}

static long hvc_hyp_meminfo(struct pm_vcpu *v, const struct hvc_args *a)
{
	pkvm_iface_count(&pkvm_iface_stats.hyp_meminfo_calls);
	if (a->x1 || a->x2 || a->x3)
		return PM_SMCCC_RET_INVALID_PARAMETER;
	return PM_PKVM_GRANULE;
}

static long hvc_share(struct pm_vcpu *v, const struct hvc_args *a, bool share)
{
	long r;

	if (a->x2 || a->x3 || !PM_ALIGNED(a->x1, PM_PKVM_GRANULE))
		return PM_SMCCC_RET_INVALID_PARAMETER;
	while ((r = pkvm_guest_share(v, share, a->x1, 1)) == -ENOMEM)
		pm_vcpu_guest_error_exit(v, ENOMEM);
	return r == 1 ? PM_SMCCC_RET_SUCCESS : PM_SMCCC_RET_INVALID_PARAMETER;
}

static long hvc_mem_share(struct pm_vcpu *v, const struct hvc_args *a)
{
	return hvc_share(v, a, true);
}

static long hvc_mem_unshare(struct pm_vcpu *v, const struct hvc_args *a)
{
	return hvc_share(v, a, false);
}

static long hvc_mmio_guard(struct pm_vcpu *v, const struct hvc_args *a)
{
	int r = -EINVAL;

	if (!a->x2 && !a->x3)
		while ((r = pkvm_mmio_guard_grant(v->vm, a->x1)) == -ENOMEM)
			pm_vcpu_guest_error_exit(v, ENOMEM);
	pkvm_iface_count(r ? &pkvm_iface_stats.mmio_guard_refusals : &pkvm_iface_stats.mmio_guard_grants);
	return r ? PM_SMCCC_RET_INVALID_PARAMETER : PM_SMCCC_RET_SUCCESS;
}

/* ---- dispatch ---- */

enum pkvm_hvc {
	PKVM_HVC_FEATURES,
	PKVM_HVC_HYP_MEMINFO,
	PKVM_HVC_MEM_SHARE,
	PKVM_HVC_MEM_UNSHARE,
	PKVM_HVC_MMIO_GUARD,
	PKVM_NR_HVC
};

static const struct hvc_call {
	uint64_t id;
	long (*fn)(struct pm_vcpu *v, const struct hvc_args *a);
} hvc_calls[] = {
	[PKVM_HVC_FEATURES] = { PM_HC_PKVM_FEATURES, hvc_features },
	[PKVM_HVC_HYP_MEMINFO] = { PM_HC_PKVM_HYP_MEMINFO, hvc_hyp_meminfo },
	[PKVM_HVC_MEM_SHARE] = { PM_HC_PKVM_MEM_SHARE, hvc_mem_share },
	[PKVM_HVC_MEM_UNSHARE] = { PM_HC_PKVM_MEM_UNSHARE, hvc_mem_unshare },
	[PKVM_HVC_MMIO_GUARD] = { PM_HC_PKVM_MMIO_GUARD, hvc_mmio_guard },
};
_Static_assert(sizeof(hvc_calls) / sizeof(hvc_calls[0]) == PKVM_NR_HVC, "a handler per call");
_Static_assert(PM_PKVM_FEATURES == (1u << (PM_HC_PKVM_FEATURES & 0xffff) | 1u << (PM_HC_PKVM_HYP_MEMINFO & 0xffff) |
				    1u << (PM_HC_PKVM_MEM_SHARE & 0xffff) | 1u << (PM_HC_PKVM_MEM_UNSHARE & 0xffff) |
				    1u << (PM_HC_PKVM_MMIO_GUARD & 0xffff)),
	       "FEATURES names every call of the table");

/* Bit 31 of an SMCCC function id: a fast call, as all of these are. */
#define SMCCC_FAST_CALL 0x80000000u

long pkvm_hvc(struct pm_vcpu *v, uint64_t id, uint64_t x1, uint64_t x2, uint64_t x3)
{
	const struct hvc_args a = { x1, x2, x3 };

	/* Not an SMCCC fast call: one of another VM type's model calls
	 * (pm_guest_model_call's numbers are shared), which a pKVM guest
	 * cannot make: "no such call", as on a type without calls. */
	if (!((uint32_t)id & SMCCC_FAST_CALL))
		return -KVM_ENOSYS;

	for (int i = 0; i < PKVM_NR_HVC; i++) {
		PM_BUG_ON(!hvc_calls[i].fn);
		if (hvc_calls[i].id == (uint32_t)id)      /* W0: the id is 32 bits */
			return hvc_calls[i].fn(v, &a);
	}
	return PM_SMCCC_RET_NOT_SUPPORTED;
}

/* SPDX-License-Identifier: MIT */
/*
 * Guest code (privmem/guest.h): a pKVM protected guest's hypercalls, each
 * an HVC (pm_guest_model_call, served by hypercalls.c), and the loops a
 * guest kernel makes of them over a range (Linux's pKVM guest driver,
 * drivers/virt/coco/pkvm-guest, shares a buffer granule by granule and
 * stops at the first refusal). On
 * another VM type the guest ends: an HVC that hypervisor does not know.
 */
#include <privmem/guest.h>
#include "vcpu/vcpu.h"

static void require_pkvm(struct pm_guest *g, const char *call)
{
	pm_guest_require_vm_type(g, PM_VM_TYPE_PKVM, call, "a pKVM");
}

long pm_guest_hyp_meminfo(struct pm_guest *g)
{
	require_pkvm(g, "pm_guest_hyp_meminfo");
	return pm_guest_model_call(g, PM_HC_PKVM_HYP_MEMINFO, 0, 0, 0);
}

long pm_guest_mem_share(struct pm_guest *g, uint64_t ipa)
{
	require_pkvm(g, "pm_guest_mem_share");
	return pm_guest_model_call(g, PM_HC_PKVM_MEM_SHARE, ipa, 0, 0);
}

long pm_guest_mem_unshare(struct pm_guest *g, uint64_t ipa)
{
	require_pkvm(g, "pm_guest_mem_unshare");
	return pm_guest_model_call(g, PM_HC_PKVM_MEM_UNSHARE, ipa, 0, 0);
}

long pm_guest_mmio_guard(struct pm_guest *g, uint64_t ipa)
{
	require_pkvm(g, "pm_guest_mmio_guard");
	return pm_guest_model_call(g, PM_HC_PKVM_MMIO_GUARD, ipa, 0, 0);
}

uint64_t pm_guest_mem_share_range(struct pm_guest *g, uint64_t gpa, uint64_t npages)
{
	uint64_t k = 0;

	require_pkvm(g, "pm_guest_mem_share_range");
	while (k < npages && pm_guest_mem_share(g, gpa + k * PM_PKVM_GRANULE) == PM_SMCCC_RET_SUCCESS)
		k++;
	return k;
}

uint64_t pm_guest_mem_unshare_range(struct pm_guest *g, uint64_t gpa, uint64_t npages)
{
	uint64_t k = 0;

	require_pkvm(g, "pm_guest_mem_unshare_range");
	while (k < npages && pm_guest_mem_unshare(g, gpa + k * PM_PKVM_GRANULE) == PM_SMCCC_RET_SUCCESS)
		k++;
	return k;
}

/* SPDX-License-Identifier: MIT */
/*
 * KVM_X86_SW_PROTECTED_VM: private memory without hardware. Whether an
 * access is private comes from the gfn's attribute, so only explicit
 * conversion exists (KVM_HC_MAP_GPA_RANGE); no page needs preparing or
 * returning, so the model has no guest_memfd hooks.
 */
#include <privmem/kvm.h>
#include "models/model.h"

const struct pm_model_ops pm_model_sw = {
	.name = "sw",
	.type = KVM_X86_SW_PROTECTED_VM,
	.private_mem = true,
	.readonly_mem = true,
	.gmem_init_shared = false,
};

/* SPDX-License-Identifier: MIT */
/*
 * KVM_X86_DEFAULT_VM: no private memory. guest_memfd may still back memory
 * (gmem-only slots, GUEST_MEMFD_FLAG_INIT_SHARED), all of it shared.
 */
#include <privmem/kvm.h>
#include "models/model.h"

const struct pm_model_ops pm_model_default = {
	.name = "default",
	.type = KVM_X86_DEFAULT_VM,
	.private_mem = false,
	.readonly_mem = true,
	.gmem_init_shared = true,
};

/* SPDX-License-Identifier: MIT */
/*
 * The CLI's VMM, TDX part (vmm.h): the build ioctls a TDX VMM issues before
 * its vCPUs run, shared by `privmem run --vm-type tdx` and `privmem bench tdx`.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "vmm.h"

long vmm_tdx_op(int fd, uint32_t id, uint32_t flags, void *data)
{
	struct kvm_tdx_cmd cmd = { .id = id, .flags = flags, .data = (uint64_t)(uintptr_t)data };

	return pm_kvm_ioctl(fd, KVM_MEMORY_ENCRYPT_OP, &cmd);
}

int vmm_tdx_init(struct vmm *m, const struct pm_tdx_config *cfg)
{
	union {
		struct kvm_tdx_init_vm vm;
		uint8_t bytes[sizeof(struct kvm_tdx_init_vm) + sizeof(struct kvm_cpuid_entry2)];
	} init = { .bytes = { 0 } };
	struct kvm_memory_attributes a = { .size = m->mem_size,
					   .attributes = KVM_MEMORY_ATTRIBUTE_PRIVATE };
	const char *what = NULL;

	/* One CPUID leaf: 0x80000008, 48 guest physical address bits. */
	init.vm.cpuid.nent = 1;
	init.vm.cpuid.entries[0].function = 0x80000008;
	init.vm.cpuid.entries[0].eax = 48 << 16 | 46;
	if (pm_kvm_ioctl(m->vm, PM_KVM_TDX_CONFIG, cfg))
		what = "PM_KVM_TDX_CONFIG";
	else if (vmm_tdx_op(m->vm, KVM_TDX_INIT_VM, 0, &init))
		what = "KVM_TDX_INIT_VM";
	for (int i = 0; !what && i < m->nr_vcpus; i++)
		if (vmm_tdx_op(m->vcpu[i], KVM_TDX_INIT_VCPU, 0, NULL))
			what = "KVM_TDX_INIT_VCPU";
	if (!what && pm_kvm_ioctl(m->vm, KVM_SET_MEMORY_ATTRIBUTES, &a))
		what = "KVM_SET_MEMORY_ATTRIBUTES";
	if (what)
		fprintf(stderr, "privmem: %s: %s\n", what, strerror(errno));
	return what ? -1 : 0;
}

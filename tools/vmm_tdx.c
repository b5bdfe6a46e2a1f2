/* SPDX-License-Identifier: MIT */
/*
 * The CLI's VMM, TDX part (vmm.h): the build ioctls a TDX VMM issues before
 * its vCPUs run, shared by `privmem run --vm-type tdx` and `privmem bench tdx`.
 * The build runs under the watchdog (vmm_watch.c): a module that answers
 * OPERAND_BUSY to every SEAMCALL makes no progress, and the ioctl that
 * retries inside privmem ends with EINTR once the watchdog kicks.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "vmm.h"

long vmm_tdx_op(struct vmm *m, int fd, uint32_t id, uint32_t flags, void *data)
{
	struct kvm_tdx_cmd cmd = { .id = id, .flags = flags, .data = (uint64_t)(uintptr_t)data };
	long r;

	/* EINTR: a signal; the command goes on from where it stopped (INIT_MEM_REGION
	 * updates its argument), unless the watchdog gave up. */
	do
		r = pm_kvm_ioctl(fd, KVM_MEMORY_ENCRYPT_OP, &cmd);
	while (r && errno == EINTR && !vmm_gave_up(m));
	return r;
}

void vmm_tdx_build_error(struct vmm *m, const char *what)
{
	struct pm_model_stats ms = { .vm_type = KVM_X86_TDX_VM };
	int err = errno;

	if (err != EINTR || !vmm_gave_up(m)) {
		fprintf(stderr, "privmem: %s: %s\n", what, strerror(err));
		return;
	}
	if (pm_kvm_ioctl(m->vm, PM_KVM_GET_MODEL_STATS, &ms))
		ms.nr = 0;
	fprintf(stderr, "privmem: %s: no progress for %u s, gave up (the TDX module answered "
		"OPERAND_BUSY %llu times: see --busy-rate)\n", what, m->stall_s,
		(unsigned long long)vmm_model_stat(&ms, "busy_injected"));
}

int vmm_tdx_init(struct vmm *m, const struct pm_tdx_config *cfg)
{
	union {
		struct kvm_tdx_init_vm vm;
		uint8_t bytes[sizeof(struct kvm_tdx_init_vm) + sizeof(struct kvm_cpuid_entry2)];
	} init = { .bytes = { 0 } };
	const char *what = NULL;
	int r;

	/* One CPUID leaf: 0x80000008, 48 guest physical address bits. */
	init.vm.cpuid.nent = 1;
	init.vm.cpuid.entries[0].function = 0x80000008;
	init.vm.cpuid.entries[0].eax = 48 << 16 | 46;
	if (pm_kvm_ioctl(m->vm, PM_KVM_TDX_CONFIG, cfg))
		what = "PM_KVM_TDX_CONFIG";
	else if (vmm_tdx_op(m, m->vm, KVM_TDX_INIT_VM, 0, &init))
		what = "KVM_TDX_INIT_VM";
	for (int i = 0; !what && i < m->nr_vcpus; i++)
		if (vmm_tdx_op(m, m->vcpu[i], KVM_TDX_INIT_VCPU, 0, NULL))
			what = "KVM_TDX_INIT_VCPU";
	if (!what && (r = vmm_set_private(m, 0, m->mem_size, true))) {
		errno = -r;
		what = m->in_place ? "KVM_SET_MEMORY_ATTRIBUTES2" : "KVM_SET_MEMORY_ATTRIBUTES";
	}
	if (!what)
		vmm_mark_private(m, 0, m->mem_size, true);
	if (what)
		vmm_tdx_build_error(m, what);
	return what ? -1 : 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * vCPUs. A vCPU belongs to its VM (freed when the VM is destroyed, as in
 * KVM); its handle holds a reference on the VM. The vCPU's struct kvm_run
 * is one page, mapped into the VMM by pm_kvm_mmap() of the vCPU handle.
 */
#ifndef PM_VCPU_VCPU_H
#define PM_VCPU_VCPU_H

#include <privmem/kvm.h>
#include "lib/common.h"

struct pm_vm;

struct pm_vcpu {
	struct pm_vm *vm;        /* owner; immutable */
	unsigned int id;         /* KVM vCPU id; immutable */
	unsigned int idx;        /* index in vm->vcpus; immutable */
	struct kvm_run *run;     /* one page; shared with the VMM */
};

#define PM_VCPU_MMAP_SIZE 4096   /* KVM_GET_VCPU_MMAP_SIZE: struct kvm_run only */

/* KVM_CREATE_VCPU. */
int pm_vcpu_create(struct pm_vm *vm, unsigned long id, struct pm_vcpu **out);
/* Called by VM destruction only. */
void pm_vcpu_destroy(struct pm_vcpu *vcpu);

#endif

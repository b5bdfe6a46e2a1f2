/* SPDX-License-Identifier: MIT */
/*
 * vCPU creation and destruction (see vcpu.h).
 */
#include <pthread.h>
#include <sys/mman.h>
#include "kvm/vm.h"
#include "mmu/mmu.h"
#include "vcpu/coro.h"
#include "vcpu/vcpu.h"
#include "vcpu/x86/x86.h"

_Static_assert(sizeof(struct kvm_run) <= PM_VCPU_MMAP_SIZE, "kvm_run fits its page");

static bool vcpu_id_taken(struct pm_vm *vm, unsigned long id)
{
	for (unsigned int i = 0; i < atomic_load(&vm->nr_vcpus); i++)
		if (vm->vcpus[i]->id == id)
			return true;
	return false;
}

static struct pm_vcpu *vcpu_alloc(struct pm_vm *vm, unsigned long id)
{
	struct pm_vcpu *vcpu = pm_zalloc(sizeof(*vcpu));

	if (!vcpu)
		return NULL;
	/* Shared memory: each mmap of the vCPU is a mapping of its own of
	 * this page (uapi's vcpu_mmap), which the VMM may replace without
	 * the library's kvm_run going anywhere. */
	vcpu->run = mmap(NULL, PM_VCPU_MMAP_SIZE, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (vcpu->run == MAP_FAILED) {
		free(vcpu);
		return NULL;
	}
	vcpu->x86 = pm_x86_cpu_create(&pm_vcpu_x86_ops, vcpu);
	if (!vcpu->x86) {
		munmap(vcpu->run, PM_VCPU_MMAP_SIZE);
		free(vcpu);
		return NULL;
	}
	vcpu->vm = vm;
	vcpu->id = (unsigned int)id;
	vcpu->tlb_gen = (_Atomic uint64_t *)&vm->mmu->tlb_gen;
	pthread_mutex_init(&vcpu->run_lock, NULL);
	pm_vcpu_tlb_flush(vcpu);
	return vcpu;
}

int pm_vcpu_create(struct pm_vm *vm, unsigned long id, struct pm_vcpu **out)
{
	struct pm_vcpu *vcpu;
	int r = 0;

	if (id >= PM_MAX_VCPU_IDS)
		return -EINVAL;
	pthread_mutex_lock(&vm->lock);
	if (atomic_load(&vm->nr_vcpus) >= PM_MAX_VCPUS) {
		r = -EINVAL;
		goto out;
	}
	/* The first vCPU fixes KVM_CAP_MAX_VCPU_ID's bound (KVM's precreate). */
	if (!vm->max_vcpu_ids)
		vm->max_vcpu_ids = PM_MAX_VCPU_IDS;
	if (id >= vm->max_vcpu_ids) {
		r = -EINVAL;
		goto out;
	}
	if (vcpu_id_taken(vm, id)) {
		r = -EEXIST;
		goto out;
	}
	vcpu = vcpu_alloc(vm, id);
	if (!vcpu) {
		r = -ENOMEM;
		goto out;
	}
	/* The VM's TSC counts from its first vCPU's creation, on every vCPU. */
	if (!atomic_load(&vm->nr_vcpus))
		vm->tsc_zero = pm_x86_host_tsc(vcpu->x86);
	pm_x86_set_tsc_offset(vcpu->x86, -vm->tsc_zero);
	vcpu->idx = atomic_load(&vm->nr_vcpus);
	vm->vcpus[vcpu->idx] = vcpu;
	atomic_store_explicit(&vm->nr_vcpus, vcpu->idx + 1, memory_order_release);
	*out = vcpu;
out:
	pthread_mutex_unlock(&vm->lock);
	return r;
}

void pm_vcpu_destroy(struct pm_vcpu *vcpu)
{
	if (vcpu->coro)
		pm_coro_destroy(vcpu->coro);   /* cancels a guest that has not finished */
	pthread_mutex_destroy(&vcpu->run_lock);
	pm_x86_cpu_free(vcpu->x86);
	munmap(vcpu->run, PM_VCPU_MMAP_SIZE);
	free(vcpu);
}

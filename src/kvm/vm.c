/* SPDX-License-Identifier: MIT */
/*
 * The VM object: creation for a type, lifetime, capabilities, and
 * KVM_SET_MEMORY_ATTRIBUTES (the attribute flow around the invalidation
 * protocol). See vm.h for ownership and the lock order.
 */
#include <unistd.h>
#include <privmem/privmem.h>
#include <stdlib.h>
#include <string.h>
#include "kvm/vm.h"
#include "lib/rcu.h"
#include "lib/trace.h"
#include "memslot/memslot.h"
#include "mmu/mmu.h"
#include "vcpu/vcpu.h"

#define PM_EXIT_HYPERCALL_VALID_MASK (1ULL << KVM_HC_MAP_GPA_RANGE)

int pm_vm_create(unsigned long type, struct pm_vm **out)
{
	const struct pm_model_ops *model = pm_model_for_type(type);
	struct pm_vm *vm;
	int r;

	if (!model)
		return -EINVAL;
	/* As aligned as its type: the invalidation state gives each range and
	 * reader slot a cache line of its own (calloc aligns to 16 only). */
	vm = aligned_alloc(_Alignof(struct pm_vm), sizeof(*vm));
	if (!vm)
		return -ENOMEM;
	memset(vm, 0, sizeof(*vm));
	pm_ref_init(&vm->refs, 1);
	vm->model = model;
	vm->type = type;
	/* A model without guest_memfd mmap (realms) has no in-place mode:
	 * the host could not map the pages it shares. */
	vm->in_place = model->private_mem && !model->gmem_no_mmap && pm_gmem_in_place_conversion();
	pthread_mutex_init(&vm->lock, NULL);
	r = pm_memslots_init(vm);
	if (r)
		goto err_free;
	r = pm_attr_init(&vm->attrs);
	if (r)
		goto err_slots;
	r = pm_inval_init(&vm->inval);
	if (r)
		goto err_attrs;
	r = pm_mmu_init(vm);
	if (r)
		goto err_inval;
	r = model->vm_init ? model->vm_init(vm) : 0;
	if (r)
		goto err_mmu;
	*out = vm;
	return 0;

err_mmu:
	pm_mmu_destroy(vm);
err_inval:
	pm_inval_destroy(&vm->inval);
err_attrs:
	pm_attr_destroy(&vm->attrs);
err_slots:
	pm_memslots_destroy(vm);
err_free:
	pthread_mutex_destroy(&vm->lock);
	free(vm);
	return r;
}

static void vm_destroy(struct pm_vm *vm)
{
	if (vm->model->vm_destroy)
		vm->model->vm_destroy(vm);
	pm_memslots_destroy(vm);
	for (unsigned int i = 0; i < atomic_load(&vm->nr_vcpus); i++)
		pm_vcpu_destroy(vm->vcpus[i]);
	pm_mmu_destroy(vm);
	/* Attribute nodes may still sit in RCU callbacks; they free themselves. */
	pm_attr_destroy(&vm->attrs);
	pm_inval_destroy(&vm->inval);
	pthread_mutex_destroy(&vm->lock);
	free(vm);
}

void pm_vm_get(struct pm_vm *vm)
{
	pm_ref_get(&vm->refs);
}

void pm_vm_put(struct pm_vm *vm)
{
	if (pm_ref_put(&vm->refs))
		vm_destroy(vm);
}

/* Online CPUs, read once: sysconf() parses /sys each time (microseconds). */
static long vm_online_cpus(void)
{
	static atomic_long online;
	long n = atomic_load_explicit(&online, memory_order_relaxed);

	if (!n) {
		n = sysconf(_SC_NPROCESSORS_ONLN);
		n = n > 0 ? n : 1;
		atomic_store_explicit(&online, n, memory_order_relaxed);
	}
	return n;
}

int pm_kvm_version(void)
{
	static atomic_int version;
	int v = atomic_load_explicit(&version, memory_order_relaxed);

	if (!v) {
		const char *e = getenv("PRIVMEM_KVM_VERSION");

		v = e && !strcmp(e, "6.12") ? 612 : PM_KVM_VERSION_LATEST;
		atomic_store_explicit(&version, v, memory_order_relaxed);
	}
	return v;
}

bool pm_gmem_in_place_conversion(void)
{
	/* 0: not read yet, 1: off, 2: on. */
	static atomic_int mode;
	int v = atomic_load_explicit(&mode, memory_order_relaxed);

	if (!v) {
		const char *e = getenv("PRIVMEM_GMEM_IN_PLACE");

		v = e && (!strcmp(e, "1") || !strcmp(e, "y") || !strcmp(e, "Y")) ? 2 : 1;
		atomic_store_explicit(&mode, v, memory_order_relaxed);
	}
	return v == 2;
}

#define PM_GMEM_PAGE_SIZE_FLAGS (PM_GUEST_MEMFD_FLAG_NO_1G | PM_GUEST_MEMFD_FLAG_NO_HUGE)

uint64_t pm_vm_gmem_valid_flags(struct pm_vm *vm)
{
	return (uint64_t)pm_check_extension(vm, KVM_CAP_GUEST_MEMFD_FLAGS) |
	       (atomic_load_explicit(&vm->gmem_page_size_flags, memory_order_relaxed) ?
		PM_GMEM_PAGE_SIZE_FLAGS : 0);
}

long pm_check_extension(struct pm_vm *vm, unsigned long cap)
{
	switch (cap) {
	case KVM_CAP_USER_MEMORY:
	case KVM_CAP_USER_MEMORY2:
	case KVM_CAP_SYNC_MMU:
	case KVM_CAP_MEMORY_FAULT_INFO:
	case KVM_CAP_IMMEDIATE_EXIT:
	case KVM_CAP_GUEST_MEMFD:
	case KVM_CAP_PRE_FAULT_MEMORY:
	/* x86 vCPU state and set-up (the x86 engine, regs.c, pm_vm_x86_ioctl) */
	case KVM_CAP_IRQCHIP:
	case KVM_CAP_SET_TSS_ADDR:
	case KVM_CAP_SET_IDENTITY_MAP_ADDR:
	case KVM_CAP_EXT_CPUID:
	case KVM_CAP_MP_STATE:
	case KVM_CAP_GET_TSC_KHZ:
	case KVM_CAP_GET_MSR_FEATURES:
		return 1;
	case KVM_CAP_NR_VCPUS:
		return PM_MIN(vm_online_cpus(), PM_MAX_VCPUS);
	case KVM_CAP_MAX_VCPUS:
		return PM_MAX_VCPUS;
	case KVM_CAP_MAX_VCPU_ID:
		return PM_MAX_VCPU_IDS;
	case KVM_CAP_NR_MEMSLOTS:
		return PM_USER_MEM_SLOTS;
	case KVM_CAP_MEMORY_ATTRIBUTES:
		/* In-place mode: no VM takes PRIVATE (guest_memfd keeps it). */
		if (!vm)
			return pm_gmem_in_place_conversion() ? 0 : (long)KVM_MEMORY_ATTRIBUTE_PRIVATE;
		return (long)pm_vm_supported_attrs(vm);
	case KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES:
		/* v8's rule: 0 unless in-place mode is on and the VM has
		 * private memory (the system handle: "has" is true). */
		if (!pm_gmem_in_place_conversion() || (vm && !vm->in_place))
			return 0;
		return KVM_MEMORY_ATTRIBUTE_PRIVATE;
	case KVM_CAP_GUEST_MEMFD_FLAGS:
		if (pm_kvm_version() < 618)
			return 0;       /* 6.12's guest_memfd takes no flags */
		/* MMAP on every VM type (upstream's "Allow mmap() on guest_memfd
		 * for x86 VMs with private memory"): a private page still faults
		 * in every host mapping. In-place mode: a VM with private memory
		 * also starts shared (kvm_arch_supports_gmem_init_shared, 25/46).
		 * Realms (arm64) excepted: model.h's gmem_no_mmap. */
		if (vm && vm->in_place)
			return GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_NO_DIRECT_MAP |
			       GUEST_MEMFD_FLAG_INIT_SHARED;
		return ((!vm || !vm->model->gmem_no_mmap) ? GUEST_MEMFD_FLAG_MMAP : 0) |
		       GUEST_MEMFD_FLAG_NO_DIRECT_MAP |
		       ((!vm || vm->model->gmem_init_shared) ? GUEST_MEMFD_FLAG_INIT_SHARED : 0);
	case KVM_CAP_VM_TYPES:
		return pm_model_vm_types();
	case KVM_CAP_EXIT_HYPERCALL:
		return PM_EXIT_HYPERCALL_VALID_MASK;
	case PM_CAP_GUEST_MEMFD_PAGE_SIZE:
		return 1;
	case KVM_CAP_ARM_RMI:
		return vm ? vm->type == PM_VM_TYPE_REALM
			  : !!(pm_model_vm_types() & (1 << PM_VM_TYPE_REALM));
	default:
		return 0;
	}
}

long pm_vm_x86_ioctl(struct pm_vm *vm, unsigned long req, unsigned long arg)
{
	switch (req) {
	case KVM_CREATE_IRQCHIP: {
		bool no = false;
		long r = 0;

		/* Before any vCPU, once (KVM's order of checks). */
		pthread_mutex_lock(&vm->lock);
		if (atomic_load(&vm->irqchip))
			r = -EEXIST;
		else if (atomic_load(&vm->nr_vcpus))
			r = -EINVAL;
		else if (!atomic_compare_exchange_strong(&vm->irqchip, &no, true))
			r = -EEXIST;
		pthread_mutex_unlock(&vm->lock);
		return r;
	}
	case KVM_SET_TSS_ADDR:
		/* The TSS KVM keeps for real mode, below 4G minus 3 pages. */
		return arg > 0xffffffffUL - 3 * PM_PAGE_SIZE ? -EINVAL : 0;
	case KVM_SET_IDENTITY_MAP_ADDR:
		return arg ? 0 : -EFAULT;
	case KVM_SET_NR_MMU_PAGES:
		return arg < 64 ? -EINVAL : 0;
	case KVM_GET_NR_MMU_PAGES:
		return 0;
	case KVM_GET_TSC_KHZ:           /* the VM's default rate (KVM_CAP_VM_TSC_CONTROL) */
		return arg ? -EINVAL : pm_x86_tsc_khz();
	default:
		return -ENOTTY;
	}
}

/* KVM_CAP_MAX_VCPU_ID: the bound on vCPU ids, set once, before the first
 * vCPU fixes it at the maximum (setting the same value again succeeds). */
static int vm_set_max_vcpu_ids(struct pm_vm *vm, uint64_t max)
{
	int r = -EINVAL;

	if (max > PM_MAX_VCPU_IDS)
		return -EINVAL;
	pthread_mutex_lock(&vm->lock);
	if (vm->max_vcpu_ids == max) {
		r = 0;
	} else if (!vm->max_vcpu_ids) {
		vm->max_vcpu_ids = (unsigned int)max;
		r = 0;
	}
	pthread_mutex_unlock(&vm->lock);
	return r;
}

int pm_vm_enable_cap(struct pm_vm *vm, const void *arg)
{
	const struct kvm_enable_cap *cap = arg;

	if (cap->flags)
		return -EINVAL;
	switch (cap->cap) {
	case KVM_CAP_EXIT_HYPERCALL:
		if (cap->args[0] & ~PM_EXIT_HYPERCALL_VALID_MASK)
			return -EINVAL;
		atomic_store(&vm->hypercall_exit_enabled, cap->args[0]);
		return 0;
	case PM_CAP_GUEST_MEMFD_PAGE_SIZE:
		if (cap->args[0] > 1)
			return -EINVAL;
		atomic_store(&vm->gmem_page_size_flags, cap->args[0] == 1);
		return 0;
	case KVM_CAP_MAX_VCPU_ID:
		return vm_set_max_vcpu_ids(vm, cap->args[0]);
	default:
		return -EINVAL;
	}
}

int pm_vm_set_memory_attributes(struct pm_vm *vm, const void *arg)
{
	const struct kvm_memory_attributes *a = arg;
	struct pm_inval_ticket t;
	gfn_t start, end;
	uint64_t t0;
	int r;

	if (a->flags)
		return -EINVAL;
	if (a->attributes & ~pm_vm_supported_attrs(vm))
		return -EINVAL;
	if (a->size == 0 || a->address + a->size < a->address)
		return -EINVAL;
	if (!PM_ALIGNED(a->address, PM_PAGE_SIZE) || !PM_ALIGNED(a->size, PM_PAGE_SIZE))
		return -EINVAL;
	start = a->address >> PM_PAGE_SHIFT;
	end = (a->address + a->size) >> PM_PAGE_SHIFT;
	t0 = pm_trace_begin();
	if (pm_attr_range_is(&vm->attrs, start, end, a->attributes)) {
		r = 0;
		goto out;
	}

	/* Zap the kind of mapping the range is leaving. */
	pm_inval_begin(vm, start, end,
		       (a->attributes & KVM_MEMORY_ATTRIBUTE_PRIVATE) ? PM_INVAL_SHARED : PM_INVAL_PRIVATE,
		       PM_INVAL_CAUSE_ATTR, &t);
	r = pm_attr_set(&vm->attrs, start, end, a->attributes);
	pm_inval_end(vm, &t);
out:
	pm_trace_end(t0, PM_TRACE_CONVERT,
		     (a->attributes & KVM_MEMORY_ATTRIBUTE_PRIVATE) ? "to_private" : "to_shared", a->address,
		     a->size, a->attributes, (uint64_t)(int64_t)r);
	return r;
}

void pm_vm_get_stats(struct pm_vm *vm, void *out)
{
	struct pm_vm_stats *st = out;
	struct pm_mmu *mmu = vm->mmu;
	unsigned int n;

	memset(st, 0, sizeof(*st));
	/* Exit counts are per-vCPU atomics: reading them never waits for a
	 * vCPU that is running its guest. */
	n = atomic_load_explicit(&vm->nr_vcpus, memory_order_acquire);
	for (unsigned int i = 0; i < n; i++)
		for (int e = 0; e < PM_STAT_NR_EXITS; e++)
			st->exits[e] += atomic_load_explicit(&vm->vcpus[i]->exits[e], memory_order_relaxed);
	st->faults = atomic_load(&mmu->faults);
	st->fault_retries = atomic_load(&mmu->retries);
	for (int l = 0; l < 3; l++) {
		st->mapped[l] = atomic_load(&mmu->mapped[l]);
		st->mappings[l] = atomic_load(&mmu->s2.leaves[l]) +
				  (mmu->mirror ? atomic_load(&mmu->mirror->leaves[l]) : 0);
	}
	st->zapped = atomic_load(&mmu->zapped);
	st->splits = atomic_load(&mmu->splits);
	st->tlb_shootdowns = atomic_load(&mmu->shootdowns);
	for (int c = 0; c < PM_INVAL_CAUSE_NR && c < PM_STAT_NR_INVAL; c++)
		st->invalidations[c] = pm_inval_count(&vm->inval, c);
	st->table_pages = atomic_load(&mmu->s2.tables) +
			  (mmu->mirror ? atomic_load(&mmu->mirror->tables) : 0);
}

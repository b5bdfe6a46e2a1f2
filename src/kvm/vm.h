/* SPDX-License-Identifier: MIT */
/*
 * The VM object.
 *
 * Ownership: a VM is reference counted. Its handle holds one reference,
 * every guest_memfd created on it holds one (the file pins the VM, not the
 * other way round), and so does every vCPU handle. The VM is destroyed at
 * the last put: memslots are deleted, vCPUs freed, the model torn down.
 *
 * Locks, in the order they nest:
 *   slots_lock (mutex)      memslot updates (KVM's slots_lock)
 *   gmem bindings_lock      a guest_memfd's bindings (gmem.h)
 *   inval.mmu_lock          see memslot/invalidate.h
 *   attrs.lock              attribute-store writers (memslot/attr.h)
 *   lock (mutex)            vCPU creation, enabled capabilities
 */
#ifndef PM_KVM_VM_H
#define PM_KVM_VM_H

#include <pthread.h>
#include <privmem/kvm.h>
#include "lib/common.h"
#include "memslot/attr.h"
#include "memslot/invalidate.h"
#include "models/model.h"

#define PM_USER_MEM_SLOTS   32764   /* KVM_USER_MEM_SLOTS on x86 */
#define PM_MAX_VCPUS        1024
#define PM_MAX_VCPU_IDS     4096

struct pm_memslot;
struct pm_vcpu;
struct pm_mmu;

struct pm_vm {
	pm_refcount_t refs;
	const struct pm_model_ops *model;    /* immutable */
	unsigned long type;                  /* immutable */
	bool in_place;                       /* immutable: in-place conversion
	                                      * (pm_gmem_in_place_conversion) and
	                                      * private memory: guest_memfd keeps the
	                                      * shared/private state (gmem_attrs.c) */

	pthread_mutex_t slots_lock;
	struct pm_attr_store slot_index;     /* gfn -> slot id + 1 (0: none); written
	                                      * under slots_lock, read under RCU */
	struct pm_memslot *_Atomic *slot_by_id; /* PM_USER_MEM_SLOTS entries: RCU,
	                                      * published under slots_lock */
	uint64_t nr_memslot_pages;           /* slots_lock */

	struct pm_attr_store attrs;
	struct pm_inval inval;
	struct pm_mmu *mmu;                  /* immutable after creation */

	pthread_mutex_t lock;
	struct pm_vcpu *vcpus[PM_MAX_VCPUS]; /* lock; published entries immutable */
	atomic_uint nr_vcpus;                /* written under lock */
	uint64_t tsc_zero;                   /* lock; the host TSC when the first vCPU was
	                                      * created: every vCPU's TSC starts at 0
	                                      * there (KVM's matched TSC writes) */
	unsigned int max_vcpu_ids;           /* lock; KVM_CAP_MAX_VCPU_ID: 0 until
	                                      * enabled or the first vCPU (then
	                                      * PM_MAX_VCPU_IDS), set once */
	atomic_uint_fast64_t hypercall_exit_enabled; /* KVM_CAP_EXIT_HYPERCALL mask */
	atomic_bool gmem_page_size_flags;    /* PM_CAP_GUEST_MEMFD_PAGE_SIZE enabled */
	atomic_bool irqchip;                 /* KVM_CREATE_IRQCHIP done (set once): HLT
	                                      * waits in KVM_RUN for an interrupt (none
	                                      * comes: a signal ends it) */

	void *model_data;                    /* owned by the model */
	atomic_bool bugged;                  /* KVM_BUG_ON: set once, never cleared;
	                                      * KVM ioctls on the VM and its vCPUs
	                                      * then fail with EIO */
};

/* KVM_CREATE_VM: returns 0 and a VM with one reference, or -errno. */
int pm_vm_create(unsigned long type, struct pm_vm **out);
void pm_vm_get(struct pm_vm *vm);
void pm_vm_put(struct pm_vm *vm);

/* The Linux version whose uAPI privmem presents (PRIVMEM_KVM_VERSION, read
 * once: 612 for "6.12"; the newest privmem implements otherwise). */
int pm_kvm_version(void);
#define PM_KVM_VERSION_LATEST 618

/*
 * In-place conversion (series "guest_memfd: In-place conversion support",
 * v8), KVM's read-only module parameter gmem_in_place_conversion: chosen
 * once per process, from PRIVMEM_GMEM_IN_PLACE (1/y/Y: on; read at the
 * library's first use, never again; `privmem exec|run --gmem-in-place`
 * set it). Off: privmem behaves as before it (VM attributes). On: every
 * VM with private memory takes private-ness from its guest_memfds
 * (KVM_SET_MEMORY_ATTRIBUTES2 on the file), KVM_CAP_MEMORY_ATTRIBUTES is
 * 0 and INIT_SHARED is allowed on SW_PROTECTED, SNP and TDX VMs.
 */
bool pm_gmem_in_place_conversion(void);

/* The guest_memfd creation flags a VM accepts now: KVM's
 * (KVM_CAP_GUEST_MEMFD_FLAGS) and privmem's page-size flags once enabled. */
uint64_t pm_vm_gmem_valid_flags(struct pm_vm *vm);

/* The x86 VM ioctls a VMM makes while it sets a VM up (KVM_CREATE_IRQCHIP,
 * KVM_SET_TSS_ADDR, KVM_SET_IDENTITY_MAP_ADDR, KVM_SET/GET_NR_MMU_PAGES):
 * accepted with KVM's checks; privmem's engine needs none of them (see
 * docs/DESIGN.md for what each does not do). */
long pm_vm_x86_ioctl(struct pm_vm *vm, unsigned long req, unsigned long arg);

/* KVM_CHECK_EXTENSION on a system (vm == NULL) or VM handle. */
long pm_check_extension(struct pm_vm *vm, unsigned long cap);
/* KVM_ENABLE_CAP on a VM handle. */
int pm_vm_enable_cap(struct pm_vm *vm, const void *arg);
/* PM_KVM_GET_VM_STATS. */
void pm_vm_get_stats(struct pm_vm *vm, void *out);
/* KVM_SET_MEMORY_ATTRIBUTES. */
int pm_vm_set_memory_attributes(struct pm_vm *vm, const void *arg);

/* Marks the VM bugged (KVM_BUG_ON): a model's hardware failed in a way KVM
 * cannot repair. The VM can still be torn down. */
static inline void pm_vm_bug(struct pm_vm *vm)
{
	atomic_store(&vm->bugged, true);
}

static inline bool pm_vm_is_bugged(struct pm_vm *vm)
{
	return atomic_load_explicit(&vm->bugged, memory_order_relaxed);
}

/* Attributes KVM_SET_MEMORY_ATTRIBUTES takes on this VM (KVM_MEMORY_
 * ATTRIBUTE_*): none in in-place mode, where guest_memfd keeps them. */
static inline uint64_t pm_vm_supported_attrs(const struct pm_vm *vm)
{
	return vm->model->private_mem && !vm->in_place ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0;
}

/* Is gfn private? The VM's attribute, or in in-place mode the state of
 * the page in its slot's guest_memfd (no slot, or no guest_memfd: shared).
 * Lock-free; callers order it with the invalidation protocol. */
bool pm_memslot_gfn_is_private(struct pm_vm *vm, gfn_t gfn);
static inline bool pm_vm_gfn_is_private(struct pm_vm *vm, gfn_t gfn)
{
	if (vm->in_place)
		return pm_memslot_gfn_is_private(vm, gfn);
	return pm_attr_get(&vm->attrs, gfn) & KVM_MEMORY_ATTRIBUTE_PRIVATE;
}

#endif

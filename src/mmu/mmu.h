/* SPDX-License-Identifier: MIT */
/*
 * The stage-2 MMU of a VM: its page table, the private fault path, the
 * vCPUs' software TLBs and TLB shootdown.
 *
 * Fault path (the reference's order): snapshot the invalidation sequence;
 * decide whether the access is private; a mismatch with the gfn's attribute,
 * a private access without guest_memfd or a guest_memfd error is a
 * memory-fault exit; private pages come from guest_memfd, shared ones from
 * the slot's userspace mapping (or guest_memfd for gmem-only slots); the
 * level is the largest the page, the slot's alignment and the attributes
 * allow; under mmu_lock (shared) retry if an invalidation raced, else
 * install with compare-and-exchange. Faults run in parallel.
 *
 * TLB: each vCPU caches gpa page -> host address (and whether writes are
 * allowed) in a direct-mapped software TLB checked on every guest access.
 * Shootdown: a zap bumps the VM's TLB generation and waits until every vCPU
 * that is in guest mode has seen it (flushing its TLB); vCPUs outside guest
 * mode flush when they enter it. A vCPU leaves guest mode for every exit
 * and while its own fault is handled (as a hardware vCPU exits to KVM on an
 * EPT violation), so a shootdown never waits for a fault.
 * When a zap returns, no vCPU can read or write the old page any more.
 */
#ifndef PM_MMU_MMU_H
#define PM_MMU_MMU_H

#include "lib/common.h"
#include "memslot/invalidate.h"
#include "mmu/pgtable.h"

struct pm_vm;
struct pm_vcpu;

struct pm_mmu {
	struct pm_s2 s2;                        /* the page table (sw, default); with a
	                                         * mirror, the direct root (shared) */
	struct pm_s2 *mirror;                   /* a model's private root (TDX's mirror),
	                                         * owned by the model, set before the VM
	                                         * is used; NULL: one root for both */
	atomic_uint_fast64_t tlb_gen;           /* bumped by every shootdown */
	atomic_uint zaps_in_flight;             /* zaps between their first entry change
	                                         * and the end of their shootdown */
	atomic_uint_fast64_t shootdowns;
	atomic_uint_fast64_t faults;            /* faults handled */
	atomic_uint_fast64_t mapped[3];         /* mappings installed by level */
	atomic_uint_fast64_t retries;           /* faults retried (raced an invalidation) */
	atomic_uint_fast64_t zapped;            /* leaves zapped */
	atomic_uint_fast64_t splits;            /* huge leaves split by zaps */
};

int pm_mmu_init(struct pm_vm *vm);
void pm_mmu_destroy(struct pm_vm *vm);

/*
 * A fault, as KVM's struct kvm_page_fault: everything the fault path and a
 * model's hooks need travels here, from the vCPU (or KVM_PRE_FAULT_MEMORY,
 * or a model's build) down to the install, so no hook reads a thread-local.
 * Make one with pm_fault_init(), which sets every limit to "none".
 */
enum {
	PM_ACCESS_READ  = 0,
	PM_ACCESS_WRITE = 1 << 0,
	PM_ACCESS_EXEC  = 1 << 1,
};

#define PM_FAULT_MAX_LEVEL 2     /* 1G: the largest leaf the stage-2 maps */

struct pm_fault {
	/* The access (the caller's). */
	gfn_t gfn;               /* kind bits (SNP's C-bit, TDX's shared bit) stripped */
	unsigned int access;     /* PM_ACCESS_* */
	unsigned int size;       /* bytes accessed (0: not an access, e.g. a pre-fault) */
	bool private_access;     /* the access is private (an output with kind_from_attr) */
	bool kind_from_attr;     /* the access is private exactly when the gfn's
	                          * attribute is (software-protected and default
	                          * VMs): the fault reads the attribute itself,
	                          * after its snapshot, and sets private_access */
	int max_level;           /* the largest mapping this fault may install
	                          * (TDX: an ACCEPT's EPT violation maps at most
	                          * the level accepted) */
	void *model_arg;         /* opaque, for the model's hooks (TDX: the build's
	                          * page source, struct tdx_populate) */

	/* What it found. */
	int err;                 /* PM_FAULT_EXIT and PM_FAULT_ERROR: the errno */
	int level;               /* PM_FAULT_MAPPED: the level installed */
	uint8_t *hva;            /* PM_FAULT_MAPPED: the page's host address, if this
	                          * fault installed the mapping (else NULL) */
	bool writable;           /* ... and whether the mapping allows writes */
};

static inline struct pm_fault pm_fault_init(gfn_t gfn, unsigned int access)
{
	return (struct pm_fault){ .gfn = gfn, .access = access, .max_level = PM_FAULT_MAX_LEVEL };
}

static inline bool pm_fault_is_write(const struct pm_fault *f)
{
	return f->access & PM_ACCESS_WRITE;
}

/* How a fault ended. */
enum pm_fault_result {
	PM_FAULT_MAPPED,         /* a mapping covers gfn now (this fault's: level, hva) */
	PM_FAULT_RETRY,          /* an attempt raced an invalidation or another fault:
	                          * look again (a model's mmu_fault hook returns it;
	                          * pm_mmu_fault retries, and returns it only after
	                          * PM_FAULT_ATTEMPTS attempts: the caller checks for
	                          * a kick (a signal) and faults again) */
	PM_FAULT_EXIT,           /* KVM_EXIT_MEMORY_FAULT to the VMM, KVM_RUN fails
	                          * with err: EFAULT (a conversion request, no
	                          * guest_memfd) or EHWPOISON */
	PM_FAULT_MMIO,           /* no memslot (shared access), or a write to a
	                          * read-only slot: KVM_EXIT_MMIO */
	PM_FAULT_ERROR,          /* KVM_RUN fails with err, no exit: ENOMEM (no memory
	                          * for the page or a table), EIO (the VM is bugged) */
};

#define PM_FAULT_ATTEMPTS 256

/* Resolves a fault; never takes an exit itself. */
enum pm_fault_result pm_mmu_fault(struct pm_vm *vm, struct pm_fault *f);

/* For models' fault hooks: a guest_memfd lookup's error (pm_gmem_get_pfn)
 * as the fault's outcome: MAPPED for 0, ERROR for ENOMEM, else the memory
 * fault exit (EHWPOISON, or EFAULT). */
enum pm_fault_result pm_mmu_gmem_error(struct pm_fault *f, int err);

/* The host address of gfn's page for a read (or write), from the page
 * table (and, for a frame, the model's guest_hva: where the frame's
 * contents are); NULL if not mapped (or not writable), or while the page
 * moves (translate again). Sets ACCESSED (and DIRTY). */
uint8_t *pm_mmu_translate(struct pm_vm *vm, gfn_t gfn, bool write);
/* The same for an access of a known kind: NULL also when the mapping is of
 * the other kind (private vs shared); private_access NULL: any kind. */
uint8_t *pm_mmu_translate_kind(struct pm_vm *vm, gfn_t gfn, bool write, const bool *private_access);
/* The same, with the level of the leaf that maps it in *level (if not NULL). */
uint8_t *pm_mmu_translate_level(struct pm_vm *vm, gfn_t gfn, bool write, const bool *private_access,
				int *level);

/* The root that maps accesses of this kind. */
static inline struct pm_s2 *pm_mmu_root(struct pm_mmu *mmu, bool private_access)
{
	return private_access && mmu->mirror ? mmu->mirror : &mmu->s2;
}

/* The MMU's invalidation consumer on the direct root (memslot/invalidate.h's
 * zap contract), for models that handle their private root themselves. */
void pm_mmu_zap(struct pm_vm *vm, gfn_t start, gfn_t end, unsigned int filter,
		enum pm_inval_cause cause, void *ctx);

/* Shoots down every vCPU's TLB (see above). */
void pm_mmu_tlb_shootdown(struct pm_vm *vm);

/* Mappings by level over [start, end) (for reports and tests). */
void pm_mmu_count(struct pm_vm *vm, gfn_t start, gfn_t end, uint64_t counts[3]);

#endif

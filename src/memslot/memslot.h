/* SPDX-License-Identifier: MIT */
/*
 * Memslots: the guest physical address space of a VM.
 *
 * A memslot maps [base_gfn, base_gfn + npages) to the VMM's memory at
 * userspace_addr (shared pages) and, with KVM_MEM_GUEST_MEMFD, to a
 * guest_memfd at gmem_pgoff (private pages; shared pages too when the slot
 * is gmem-only, i.e. its guest_memfd was created with GUEST_MEMFD_FLAG_MMAP).
 *
 * The slots are found through an index (vm->slot_index): the attribute
 * store's radix tree (attr.h), whose value for a gfn is its slot's id + 1
 * (0: no slot), and the slot of each id (vm->slot_by_id, RCU-published).
 * An update changes O(log n) of the index's nodes along the range's edges,
 * never copies the set of slots (32764 slots: creating the last one costs
 * about what creating the first does), and frees a replaced slot after a
 * grace period. Readers (faults) take no lock and never block on writers.
 * A slot itself is immutable once published, except for `gmem`, which
 * guest_memfd's release clears (RCU) while the slot lives on, and its
 * hva_checked bits.
 */
#ifndef PM_MEMSLOT_MEMSLOT_H
#define PM_MEMSLOT_MEMSLOT_H

#include <privmem/kvm.h>
#include "lib/common.h"

struct pm_vm;
struct pm_gmem;
struct kvm_userspace_memory_region2;

struct pm_memslot {
	uint32_t id;                       /* as_id << 16 | slot; as_id is 0 */
	uint32_t flags;                    /* KVM_MEM_* */
	gfn_t base_gfn;
	uint64_t npages;
	uint64_t userspace_addr;
	struct pm_gmem *_Atomic gmem;      /* RCU; NULL once the file is released */
	uint64_t gmem_pgoff;               /* file page of base_gfn */
	bool gmem_only;                    /* shared faults served by guest_memfd */
	_Atomic uint64_t *hva_checked;     /* one bit per 2M gfn block the slot touches:
	                                    * the VMM's memory behind it passed
	                                    * pm_memslot_check_hva; set once, never
	                                    * cleared (atomic) */
};

/* KVM_SET_USER_MEMORY_REGION(2): mem already copied in (v1 zero-extended).
 * The facade resolves mem->guest_memfd to a referenced gmem, or to the errno
 * resolving gave (-EBADF not a handle, -EINVAL not a guest_memfd); the
 * error is reported at the point of validation where Linux reports it. */
int pm_memslot_set(struct pm_vm *vm, const struct kvm_userspace_memory_region2 *mem,
		   struct pm_gmem *gmem, int gmem_err);

int pm_memslots_init(struct pm_vm *vm);

/* The slot containing gfn, or NULL. Call inside an RCU read-side section;
 * the slot stays valid until its end. */
struct pm_memslot *pm_memslot_lookup(struct pm_vm *vm, gfn_t gfn);

/*
 * What a fault or a model needs of the slot holding gfn, copied inside an
 * RCU read-side section (the slot may be freed after it). When the page
 * comes from guest_memfd (private_page, or any page of a gmem-only slot),
 * `gmem` holds a reference on the slot's file (pm_gmem_put when done); it
 * is NULL otherwise, when the slot has none, or while its file is being
 * released.
 */
struct pm_slot_ref {
	gfn_t base_gfn;
	uint64_t npages;
	uint64_t userspace_addr;
	uint32_t flags;                    /* KVM_MEM_* */
	uint64_t gmem_pgoff;
	bool gmem_only;
	struct pm_gmem *gmem;              /* referenced, or NULL */
	uint64_t index;                    /* gfn's page in the file */
	uint64_t run;                      /* pages from gfn to the slot's end */
	bool hva_block_checked;            /* gfn's 2M block of the VMM's memory is
	                                    * known to be mapped (pm_memslot_check_hva) */
};

/* false if no slot holds gfn. Takes no lock; may run in any context. */
bool pm_memslot_get(struct pm_vm *vm, gfn_t gfn, bool private_page, struct pm_slot_ref *ref);

/*
 * The VMM's memory behind gfn (the slot's userspace_addr) is checked before
 * the stage-2 maps it, the way a user-space program can: MADV_POPULATE_WRITE
 * (MADV_POPULATE_READ for a read-only slot) faults the pages in as the
 * guest's access would, and fails where nothing is mapped or the mapping
 * does not allow the access (KVM's get_user_pages fails there too). The 2M
 * block around gfn (within the slot) is tried first: if it passes it is
 * remembered in the slot and may be mapped 2M (*max_level 1); otherwise
 * only gfn's page is tried (*max_level 0, nothing remembered). 0, or
 * -EFAULT (the access must fail: a memory-fault exit), or -EAGAIN when gfn's
 * slot is no longer the one `ref` copied (deleted or moved since the fault
 * looked it up, as the VMM may do at any time: the fault retries, as KVM's
 * does when its invalidation sequence moved).
 * Page 0 is refused: a host address of 0 is never the VMM's memory.
 */
int pm_memslot_check_hva(struct pm_vm *vm, const struct pm_slot_ref *ref, gfn_t gfn,
			 int *max_level);

/* In-place launch data (KVM_SEV_SNP_LAUNCH_UPDATE's uaddr, KVM_TDX_INIT_
 * MEM_REGION's source_addr 0 in in-place mode, 22/46 and 23/46): copies
 * the guest_memfd page behind gfn (allocated if it was not: it reads zero
 * then) into buf. 0, -EINVAL (no guest_memfd slot), -ENOMEM, -EHWPOISON. */
int pm_memslot_read_gmem_page(struct pm_vm *vm, gfn_t gfn, void *buf);

/* Deletes every slot (VM destruction). */
void pm_memslots_destroy(struct pm_vm *vm);

static inline bool pm_memslot_has_gmem(const struct pm_memslot *s)
{
	return s->flags & KVM_MEM_GUEST_MEMFD;
}

#endif

/* SPDX-License-Identifier: MIT */
/*
 * The hyp's data structures and their encoding in the page tables: for
 * hyp.c and for tests that check the hyp from its page tables alone. The
 * rest of privmem uses hyp.h.
 *
 * State encoding
 *  - Host stage-2 (struct pkvm_hyp.host_s2): identity map gfn == pfn of
 *    the pool, leaves RWX. A page the host owns or borrows is a valid leaf
 *    whose SW_STATE bits hold the host's state (OWNED, SHARED_OWNED,
 *    SHARED_BORROWED); huge leaves while a whole block is in one state,
 *    split when part of it changes. A page the host does not own is an
 *    invalid 4K entry annotated with its owner: PKVM_ANNOT_HYP, or
 *    PKVM_ANNOT_GUEST with the VM id and the gfn. An empty entry inside
 *    the pool is impossible.
 *  - Guest stage-2 (*struct pkvm_vm.s2): gfn -> pfn, the guest's state in
 *    the SW_STATE bits of its valid leaves (OWNED and SHARED_OWNED only on
 *    4K leaves; SHARED_BORROWED on 4K or 2M leaves). A gfn without a valid
 *    leaf is NOPAGE, or POISONED if annotated PKVM_ANNOT_POISONED.
 *  - Hyp (struct pkvm_page, one per pool frame, like pKVM's vmemmap): the
 *    hyp's state (OWNED, SHARED_BORROWED or NOPAGE), its pin count, the
 *    number of guests the host shares the frame with, and the poison mark.
 *
 * Annotation layout (not-valid entries; VALID, FROZEN, and the ACCESSED and
 * DIRTY bits a vCPU may fetch-or into a just-zapped entry, are never used):
 *   bits 1-3    type: PKVM_ANNOT_HYP, PKVM_ANNOT_GUEST, PKVM_ANNOT_POISONED
 *   bits 12-47  gfn (GUEST)
 *   bits 52-61  VM id (GUEST)
 *
 * Locks (order: host, then hyp, then guest VMs by increasing id; every
 * acquisition checks it against what the thread already holds):
 *  - host_lock: changes to the host stage-2; pkvm_page.share_count and
 *    .poisoned; the table reserve.
 *  - hyp_lock: pkvm_page.hyp_state and .pins; the VM table.
 *  - pkvm_vm.lock: changes to that VM's stage-2.
 * Fields read by lock-free queries are atomics, written under their lock.
 */
#ifndef PM_MODELS_PKVM_HYP_INTERNAL_H
#define PM_MODELS_PKVM_HYP_INTERNAL_H

#include <pthread.h>
#include "mmu/pgtable.h"
#include "models/pkvm/hyp.h"

/* ---- encoding ---- */

#define PKVM_PTE_STATE(s)      ((uint64_t)(s) << PM_PTE_SW_STATE_SHIFT)

enum pkvm_annot_type {
	PKVM_ANNOT_HYP = 1,
	PKVM_ANNOT_GUEST = 2,
	PKVM_ANNOT_POISONED = 3,
};
#define PKVM_ANNOT_TYPE_SHIFT  1
#define PKVM_ANNOT_TYPE_MASK   (7ULL << PKVM_ANNOT_TYPE_SHIFT)
#define PKVM_ANNOT_GFN_SHIFT   12
#define PKVM_ANNOT_GFN_MASK    (((1ULL << PM_S2_GFN_BITS) - 1) << PKVM_ANNOT_GFN_SHIFT)
#define PKVM_ANNOT_VM_SHIFT    52
#define PKVM_ANNOT_VM_MASK     (0x3ffULL << PKVM_ANNOT_VM_SHIFT)

_Static_assert(PKVM_MAX_VMS <= 0x400, "VM ids must fit the annotation");
_Static_assert(!(PKVM_ANNOT_TYPE_MASK & (PM_PTE_VALID | PM_PTE_ACCESSED | PM_PTE_DIRTY)),
	       "annotation type overlaps bits a vCPU may set");
_Static_assert(!(PKVM_ANNOT_VM_MASK & PM_PTE_FROZEN), "annotation overlaps FROZEN");

static inline uint64_t pkvm_annot(enum pkvm_annot_type type, unsigned int vm_id, gfn_t gfn)
{
	return ((uint64_t)type << PKVM_ANNOT_TYPE_SHIFT) |
	       ((uint64_t)vm_id << PKVM_ANNOT_VM_SHIFT) | (gfn << PKVM_ANNOT_GFN_SHIFT);
}

static inline enum pkvm_annot_type pkvm_annot_type(uint64_t e)
{
	return (enum pkvm_annot_type)((e & PKVM_ANNOT_TYPE_MASK) >> PKVM_ANNOT_TYPE_SHIFT);
}

static inline unsigned int pkvm_annot_vm(uint64_t e)
{
	return (unsigned int)((e & PKVM_ANNOT_VM_MASK) >> PKVM_ANNOT_VM_SHIFT);
}

static inline gfn_t pkvm_annot_gfn(uint64_t e)
{
	return (e & PKVM_ANNOT_GFN_MASK) >> PKVM_ANNOT_GFN_SHIFT;
}

/* The state in the SW_STATE bits of a valid leaf. */
static inline enum pkvm_page_state pkvm_pte_state(uint64_t pte)
{
	return (enum pkvm_page_state)((pte & PM_PTE_SW_STATE_MASK) >> PM_PTE_SW_STATE_SHIFT);
}

/* ---- structures ---- */

/* A lock with its place in the lock order. */
struct pkvm_lock {
	pthread_mutex_t mutex;
	unsigned int rank;              /* immutable: host < hyp < guest VMs */
	_Atomic(const void *) holder;   /* the holding thread's token, or NULL */
	unsigned int prev_top;          /* holder's previous top rank (holder only) */
};

/* Per pool frame (the hyp's vmemmap). */
struct pkvm_page {
	_Atomic uint8_t hyp_state;       /* hyp_lock: OWNED, SHARED_BORROWED, NOPAGE */
	_Atomic uint8_t poisoned;        /* host_lock: zeroed by a reclaim, host
					  * OWNED and not written since (a host
					  * write or a transition clears it) */
	_Atomic uint16_t share_count;    /* host_lock: guests the host shares it with */
	_Atomic uint32_t pins;           /* hyp_lock: hyp uses of a page it borrows */
};

struct pkvm_counters {
	atomic_uint_fast64_t done[PKVM_NR_TRANSITIONS];
	atomic_uint_fast64_t refused[PKVM_NR_TRANSITIONS];
	atomic_uint_fast64_t host_s2_faults;
	atomic_uint_fast64_t pages_poisoned;
};

struct pkvm_hyp {
	struct pkvm_lock host_lock;
	struct pkvm_lock hyp_lock;
	struct pm_s2 host_s2;                 /* changed under host_lock */
	uint64_t nr_frames;                   /* immutable: the pool's size */
	struct pkvm_page *pages;              /* nr_frames entries */
	struct pm_s2_mc reserve;              /* host_lock: tables for commits */
	struct pkvm_vm *vms[PKVM_MAX_VMS];    /* hyp_lock */
	struct pkvm_counters stats;
};

struct pkvm_vm {
	struct pkvm_hyp *hyp;                 /* immutable */
	unsigned int id;                      /* immutable: index in hyp->vms */
	struct pkvm_vm_config cfg;            /* immutable */
	struct pkvm_lock lock;
	struct pm_s2 *s2;                     /* immutable pointer: cfg.s2 or &own_s2;
					       * the table is changed under lock */
	struct pm_s2 own_s2;                  /* used when cfg.s2 is NULL */
};

/* Lock ranks: a thread takes locks in increasing rank only. */
#define PKVM_RANK_HOST   1u
#define PKVM_RANK_HYP    2u
#define PKVM_RANK_GUEST  3u   /* + VM id */

void pkvm_lock_init(struct pkvm_lock *l, unsigned int rank);
void pkvm_lock_destroy(struct pkvm_lock *l);
/* Abort if the calling thread holds a lock of equal or higher rank. */
void pkvm_lock_take(struct pkvm_lock *l);
/* Locks are released in the reverse order of taking. */
void pkvm_lock_drop(struct pkvm_lock *l);
/* Abort unless the calling thread holds l (lockdep_assert_held). */
void pkvm_lock_assert_held(const struct pkvm_lock *l);

/* Takes every lock in order (host, hyp, each VM by id) / releases them: a
 * consistent view of every party, for checkers. */
void pkvm_hyp_lock_all(struct pkvm_hyp *hyp);
void pkvm_hyp_unlock_all(struct pkvm_hyp *hyp);

/* Shared by hyp.c and mem_protect.c. */
bool pkvm_pfn_range_ok(const struct pkvm_hyp *hyp, pm_pfn_t pfn, uint64_t n);
uint64_t pkvm_host_leaf(pm_pfn_t pfn, enum pkvm_page_state state);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * The pkvm VM type's per-VM state and what its files share:
 *  - pkvm.c: the type, the hyp's lifetime, faults, invalidation, sharing;
 *  - hypercalls.c: the guest's SMCCC calls (upstream's hypercalls.rst);
 *  - mmio_guard.c: which MMIO the guest lets exit (MMIO_GUARD);
 *  - frozen.c: memslots frozen once the VM ran, guest pages pinned.
 *
 * struct pkvm_guest is vm->model_data, made by vm_init and freed by
 * vm_destroy. Its hyp VM is immutable in between. `ran` is set once, at the
 * VM's first KVM_RUN, under the VM's slots_lock (so a memslot change either
 * completes before it or sees it); the guard has its own lock (a leaf).
 */
#ifndef PM_MODELS_PKVM_PKVM_INTERNAL_H
#define PM_MODELS_PKVM_PKVM_INTERNAL_H

#include <pthread.h>
#include <privmem/privmem.h>
#include "kvm/vm.h"
#include "lib/common.h"
#include "models/pkvm/hyp.h"

struct pm_vcpu;

/* The guest's grants (MMIO_GUARD): once it made one, an MMIO access exits
 * only inside a granted granule. lock is a leaf, taken in guest mode:
 * nothing under it waits for a shootdown. */
struct pkvm_mmio_guard {
	pthread_mutex_t lock;
	atomic_bool enabled;        /* set once, under lock, by the first grant */
	gfn_t *gfns;                /* lock: granted granules, sorted, each once */
	size_t nr, cap;             /* lock */
};

struct pkvm_guest {
	struct pkvm_vm *pvm;        /* the hyp's VM; immutable while the VM lives */
	atomic_bool ran;            /* a vCPU entered the guest: memslots frozen;
	                             * set once under the VM's slots_lock */
	struct pkvm_mmio_guard guard;
};

/* A pkvm VM's state (NULL once its teardown began). */
static inline struct pkvm_guest *pkvm_guest_of(struct pm_vm *vm)
{
	return vm->model_data;
}

int pkvm_guest_new(struct pkvm_guest **out);   /* 0 or -ENOMEM */
void pkvm_guest_free(struct pkvm_guest *pg);

/* pkvm.c: MEM_SHARE (share) / MEM_UNSHARE of n pages from gpa (page
 * aligned, n >= 1) through the hyp, in guest context: how many changed
 * hands from the first, or -errno for the first (EFAULT: not guest
 * memory; EPERM: not in a state for it; EHWPOISON; EBUSY: unshare of a
 * page the host pins; ENOMEM: no memory for the hyp's tables). */
long pkvm_guest_share(struct pm_vcpu *v, bool share, uint64_t gpa, uint64_t n);

/* hypercalls.c: the guest_call hook, the guest's HVC (function id, R1-R3;
 * returns R0). */
long pkvm_hvc(struct pm_vcpu *v, uint64_t fn, uint64_t a1, uint64_t a2, uint64_t a3);

/* mmio_guard.c */
void pkvm_mmio_guard_init(struct pkvm_mmio_guard *mg);
void pkvm_mmio_guard_destroy(struct pkvm_mmio_guard *mg);
/* MMIO_GUARD of the granule at ipa: 0; -EINVAL (not a granule of the
 * guest's address space, or memory: inside a memslot); -ENOMEM. */
int pkvm_mmio_guard_grant(struct pm_vm *vm, uint64_t ipa);
/* The mmio_allowed hook. */
bool pkvm_mmio_allowed(struct pm_vcpu *v, uint64_t gpa, unsigned int len);

/* frozen.c: the vcpu_pre_run, prepare_memory_region and gmem_pinned hooks. */
int pkvm_vcpu_pre_run(struct pm_vcpu *v);
int pkvm_prepare_memory_region(struct pm_vm *vm);
bool pkvm_gmem_pinned(struct pm_vm *vm, gfn_t start, gfn_t end);

/* The guest interface's counters, process-wide (every pkvm VM, live or
 * gone), appended to the hyp's in PM_KVM_GET_MODEL_STATS in this order:
 *   hyp_meminfo_calls        HYP_MEMINFO calls answered
 *   mmio_guard_grants        MMIO_GUARD calls that granted a granule
 *   mmio_guard_refusals      ... that were refused (INVALID_PARAMETER)
 *   mmio_aborts              MMIO accesses answered with a data abort
 *   memslot_frozen_refusals  memslot changes refused (the VM had run)
 *   punch_pinned_refusals    punches refused (pages the guest holds) */
struct pkvm_iface_stats {
	atomic_uint_fast64_t hyp_meminfo_calls;
	atomic_uint_fast64_t mmio_guard_grants;
	atomic_uint_fast64_t mmio_guard_refusals;
	atomic_uint_fast64_t mmio_aborts;
	atomic_uint_fast64_t memslot_frozen_refusals;
	atomic_uint_fast64_t punch_pinned_refusals;
};
#define PKVM_IFACE_NR_STATS 6
extern struct pkvm_iface_stats pkvm_iface_stats;

static inline void pkvm_iface_count(atomic_uint_fast64_t *c)
{
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

void pkvm_iface_stats_put(struct pm_model_stats *out);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * PM_VM_TYPE_REALM: KVM's side of Arm CCA (realm.c: the VM type, the build
 * and activation; realm_mmu.c: protected and unprotected mappings, zaps,
 * guest_memfd page lifetime; realm_guest.c: RSI and the realm's access
 * rules), over the simulated RMM (rmm.h), reached only through RMI.
 *
 * Per VM (struct realm_vm, vm->model_data):
 *  - build_lock (mutex): the build ioctls (config, INIT_RIPAS, populate)
 *    and activation at the first KVM_RUN; protects cfg, rd, root, recs and
 *    the move of state from NONE to NEW to ACTIVE (read without it as an
 *    atomic). Taken outside every lock the fault path takes.
 *  - spare_lock (mutex, a leaf): delegated granules kept for new RTTs (one
 *    comes back from every RTT_FOLD, so unfolding a 2M block on a partial
 *    zap needs no new memory), each first in a limbo for an RCU grace
 *    period: a vCPU's lock-free walk may still read the table it was.
 *  - the MMU lock: faults (shared) call RTT_CREATE, DATA_CREATE_UNKNOWN,
 *    RTT_FOLD, RTT_MAP_UNPROTECTED; private zaps hold it exclusively and
 *    DATA_DESTROY (unfolding blocks first); shared zaps take no lock and
 *    RTT_UNMAP_UNPROTECTED what KVM's direct root maps.
 * Lock order: build_lock > the MMU lock > spare_lock > the RMM's granule
 * locks (the RMM takes none of KVM's).
 */
#ifndef PM_MODELS_CCA_REALM_H
#define PM_MODELS_CCA_REALM_H

#include <pthread.h>
#include <privmem/privmem.h>
#include "kvm/vm.h"
#include "models/cca/rmm.h"
#include "models/model.h"

enum realm_kvm_state { REALM_KVM_NONE, REALM_KVM_NEW, REALM_KVM_ACTIVE };

enum realm_stat {
	REALM_STAT_POPULATED,         /* pages DATA_CREATEd by KVM_ARM_RMI_POPULATE */
	REALM_STAT_FAULT_DATA,        /* DATA_CREATE_UNKNOWNs by faults */
	REALM_STAT_FOLDS,             /* 2M blocks folded */
	REALM_STAT_UNFOLDS,           /* blocks unfolded (partial zap or RIPAS change) */
	REALM_STAT_DATA_DESTROYS,
	REALM_STAT_DELEGATES,         /* GRANULE_DELEGATEs by KVM */
	REALM_STAT_UNDELEGATES,
	REALM_STAT_RTT_CREATES,
	REALM_STAT_UNPROT_MAPS,
	REALM_STAT_UNPROT_UNMAPS,
	REALM_STAT_RIPAS_EXITS,       /* RMI_EXIT_RIPAS_CHANGE handled */
	REALM_STAT_RIPAS_PAGES,       /* pages whose RIPAS changed by them */
	REALM_STAT_RIPAS_REJECTED,    /* requests the VMM refused */
	REALM_STAT_SEA,               /* accesses to RIPAS EMPTY (an abort in the realm) */
	REALM_STAT_DESTROYED_ACCESS,  /* accesses to RIPAS DESTROYED (the realm ends) */
	REALM_STAT_HELD_FRAMES,       /* frames guest_memfd freed while still DATA: kept */
	REALM_NR_STATS,
};

struct realm_vm {
	struct pm_vm *vm;                  /* immutable */
	pthread_mutex_t build_lock;
	struct pm_realm_config cfg;        /* build_lock; fixed once the build began */
	atomic_uint flags, ipa_bits;       /* cfg's, for readers without build_lock */
	_Atomic int state;                 /* enum realm_kvm_state; written under build_lock */
	_Atomic uint64_t rd;               /* PA of the RD; set once (build_lock) */
	uint64_t root;                     /* PA of the starting RTT (build_lock) */
	_Atomic uint64_t top_bit;          /* the unprotected bit: 1 << (ipa_bits - 1) */
	uint64_t rec[PM_MAX_VCPUS];        /* REC per vCPU index; set at activation */
	unsigned int nr_recs;              /* build_lock */

	pthread_mutex_t spare_lock;
	pm_pfn_t *spares;                  /* spare_lock: delegated granules to reuse */
	size_t nr_spares, cap_spares;      /* spare_lock */
	pm_pfn_t *limbo;                   /* spare_lock: released tables waiting for a
	                                    * grace period before they are spares */
	size_t nr_limbo, cap_limbo;        /* spare_lock */

	atomic_uint_fast64_t stats[REALM_NR_STATS];
};

static inline struct realm_vm *to_realm(struct pm_vm *vm)
{
	return vm->model_data;
}

static inline uint64_t realm_rd(struct realm_vm *r)
{
	return atomic_load_explicit(&r->rd, memory_order_acquire);
}

static inline void realm_count(struct realm_vm *r, enum realm_stat st, uint64_t n)
{
	atomic_fetch_add_explicit(&r->stats[st], n, memory_order_relaxed);
}

/* realm_mmu.c */
/* A delegated granule for an RTT (a spare, or a new pool frame delegated):
 * 0 or -ENOMEM. realm_put_granule keeps it for later. */
int realm_get_granule(struct realm_vm *r, uint64_t *addr);
void realm_put_granule(struct realm_vm *r, uint64_t addr);
/* Makes sure an RTT of `level` covers ipa, creating the missing ones (and
 * unfolding a block in the way): 0 or -ENOMEM. */
int realm_ensure_rtt(struct realm_vm *r, uint64_t ipa, int level);
/* Every spare granule back to the host. */
void realm_free_spares(struct realm_vm *r);
/* Teardown: every RTT below the root destroyed, granules given back. */
void realm_destroy_rtts(struct realm_vm *r);
int realm_map_private(struct pm_vm *vm, struct pm_fault *f, int level, uint64_t pte);
int realm_map_shared(struct pm_vm *vm, struct pm_fault *f, int level, uint64_t pte);
int realm_private_max_level(struct pm_vm *vm, pm_pfn_t pfn, gfn_t gfn);
void realm_inval_zap(struct pm_vm *vm, gfn_t start, gfn_t end, unsigned int filter,
		     enum pm_inval_cause cause, void *ctx);
int realm_gmem_prepare(struct pm_vm *vm, pm_pfn_t pfn, gfn_t gfn, unsigned int order);
void realm_gmem_invalidate(pm_pfn_t start, pm_pfn_t end);
bool realm_gmem_hold(struct pm_vm *vm, pm_pfn_t pfn, unsigned int order);

/* realm_guest.c */
void realm_gpa_decode(struct pm_vm *vm, uint64_t gpa, gfn_t *gfn, bool *private_access);
void realm_guest_pre_fault(struct pm_vcpu *v, uint64_t gpa, gfn_t gfn);
int realm_guest_access(struct pm_vcpu *v, uint64_t gpa, gfn_t gfn, pm_pfn_t pfn, uint32_t *event);
long realm_guest_call(struct pm_vcpu *v, uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2);

#endif

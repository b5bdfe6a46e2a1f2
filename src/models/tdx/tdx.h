/* SPDX-License-Identifier: MIT */
/*
 * KVM_X86_TDX_VM (type 5): KVM's side of TDX (tdx.c), and the guest side
 * of its TDCALLs (tdx_guest.c). The TDX module is module.h.
 */
#ifndef PM_MODELS_TDX_TDX_H
#define PM_MODELS_TDX_TDX_H

#include <pthread.h>
#include <privmem/privmem.h>
#include "kvm/vm.h"
#include "mmu/mmu.h"
#include "mmu/pgtable.h"
#include "models/tdx/module.h"

/* TD build states (tdx->state). */
enum tdx_state {
	TDX_STATE_UNINIT,      /* created; only INIT_VM is allowed */
	TDX_STATE_INIT,        /* INIT_VM done: vCPUs and the image are built */
	TDX_STATE_RUNNABLE,    /* FINALIZE_VM done: MRTD fixed, vCPUs may run */
};

struct tdx_vm {
	struct pm_vm *vm;                  /* immutable */
	struct pm_s2 mirror;               /* the mirror root: private GPAs; its
	                                    * entries change under the MMU lock:
	                                    * shared with the frozen-entry protocol
	                                    * (faults), exclusive (zaps) */
	struct tdx_td *_Atomic td;         /* set once by INIT_VM (build_lock) */
	_Atomic int state;                 /* enum tdx_state; written under build_lock */
	atomic_uint shared_bit;            /* 47, or 51 (set by INIT_VM) */
	atomic_int vp_of[PM_MAX_VCPUS];    /* module VP of vCPU idx; -1 before INIT_VCPU */

	pthread_mutex_t build_lock;        /* the build ioctls, one at a time */
	atomic_uint no_vcpu_enter;         /* zaps retrying after OPERAND_BUSY: vCPUs
	                                    * stay out of the module meanwhile */

	pthread_mutex_t leak_lock;         /* leaf lock: the pages leaked on purpose */
	pm_pfn_t *leaked;                  /* leak_lock */
	size_t nr_leaked, cap_leaked;      /* leak_lock */

	atomic_uint busy_rate;             /* PM_KVM_TDX_CONFIG */
	atomic_uint flags;                 /* PM_TDX_* */
	atomic_uint_fast64_t busy_retries, frozen_retries, leaked_pages, fatal_events;
	atomic_uint_fast64_t page_adds, page_augs, page_removes, mr_extends, tracks, demotions;
	atomic_uint_fast64_t held_frames, last_error;
};

static inline struct tdx_vm *to_tdx(struct pm_vm *vm)
{
	return vm->model_data;
}

static inline struct tdx_td *tdx_td(struct tdx_vm *t)
{
	return atomic_load_explicit(&t->td, memory_order_acquire);
}

/* The mirror (mirror.c): model->map_private, model->private_max_level, the
 * invalidation consumer, and model->gmem_hold. */
int tdx_map_private(struct pm_vm *vm, struct pm_fault *f, int level, uint64_t pte);
int tdx_private_max_level(struct pm_vm *vm, pm_pfn_t pfn, gfn_t gfn);
void tdx_inval_zap(struct pm_vm *vm, gfn_t start, gfn_t end, unsigned int filter,
		   enum pm_inval_cause cause, void *ctx);
bool tdx_gmem_hold(struct pm_vm *vm, pm_pfn_t pfn, unsigned int order);

/* The build's page being added: INIT_MEM_REGION's fault carries it (the
 * fault's model_arg); the set hook does PAGE.ADD from src and says so. */
struct tdx_populate {
	const void *src;
	bool added;
	uint64_t hw_error;         /* the last failed SEAMCALL's status */
};

/* Guest side (tdx_guest.c): the pending-page check before a TLB fill, and
 * the guest's TDCALLs (model->guest_call). */
int tdx_guest_access(struct pm_vcpu *vcpu, uint64_t gpa, gfn_t gfn, pm_pfn_t pfn, uint32_t *event);
long tdx_guest_call(struct pm_vcpu *vcpu, uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2);

/* A TD's statistics (PM_KVM_GET_MODEL_STATS gives them by name). */
struct tdx_stats {
	uint64_t sept_entries[4];    /* S-EPT now: 4K leaves, 2M leaves, 1G leaves, tables */
	uint64_t busy_retries;       /* OPERAND_BUSY answered by a retry (fault) or kick (zap) */
	uint64_t busy_injected;      /* OPERAND_BUSY injected by the module */
	uint64_t frozen_retries;     /* faults that met a frozen mirror entry and retried */
	uint64_t demotions;          /* 2M private pages demoted to 4K (BLOCK, TRACK, DEMOTE) */
	uint64_t leaked_pages;       /* 4K pages whose removal failed: leaked on purpose */
	uint64_t fatal_events;       /* guest accesses to pending pages (TD fatal) */
	uint64_t pending;            /* pages AUG'd and not accepted yet */
	uint64_t page_adds, page_augs, page_removes, mr_extends, tracks;
	uint64_t held_frames;        /* frames guest_memfd freed and the model kept back
	                              * (they held leaked pages): never reused */
	uint64_t last_error;         /* the SEAMCALL status that bugged the VM, or 0 */
};
void tdx_vm_stats(struct pm_vm *vm, struct tdx_stats *st);

/* Tests: fn runs between a mirror entry's first change and its hook. */
void tdx_test_set_hook_pause(void (*fn)(struct pm_vm *vm, gfn_t gfn, int level));

#endif

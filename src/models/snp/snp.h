/* SPDX-License-Identifier: MIT */
/*
 * KVM_X86_SNP_VM: the KVM side of SEV-SNP (snp.c, launch.c, psc.c), which
 * reaches the simulated hardware and firmware only through rmp.h and psp.h.
 *
 * Per VM (struct snp_vm, vm->model_data):
 *  - asid: immutable; from a process-wide allocator (asid_lock in snp.c);
 *  - fw: the firmware's launch context (its own lock, psp.h);
 *  - launch_lock (mutex): serialises KVM_MEMORY_ENCRYPT_OP; protects
 *    started, finished and the VMSA frames. Order: launch_lock > guest_memfd
 *    stripe (populate) > fw.lock > RMP stripe, and launch_lock > a vCPU's
 *    run_lock (LAUNCH_FINISH syncs the VMSAs from the vCPUs, vmsa.h);
 *  - stats: atomics, by enum snp_stat.
 */
#ifndef PM_MODELS_SNP_SNP_H
#define PM_MODELS_SNP_SNP_H

#include <pthread.h>
#include "models/model.h"
#include "kvm/vm.h"
#include "models/snp/psp.h"

struct pm_vm;
struct pm_vcpu;

enum snp_stat {
	SNP_STAT_PREPARE_2M,          /* 2M RMP entries made by gmem prepare */
	SNP_STAT_PREPARE_4K,          /* 4K RMP entries made by gmem prepare */
	SNP_STAT_SMASH_ON_FAULT,      /* PSMASH: 4K PVALIDATE in a 2M entry */
	SNP_STAT_PSC_REQUESTS,        /* GHCB PSC requests */
	SNP_STAT_PSC_ENTRIES,         /* ... entries processed */
	SNP_STAT_PSC_EXITS,           /* ... KVM_HC_MAP_GPA_RANGE exits (merged ranges) */
	SNP_STAT_PSC_PAGES,           /* ... 4K pages converted through them */
	SNP_STAT_PSC_ERRORS,          /* ... requests that failed */
	SNP_STAT_PSC_MSR,             /* MSR-protocol page state changes */
	SNP_STAT_PVALIDATE,           /* PVALIDATEs that changed the bit */
	SNP_STAT_PVALIDATE_FAILED,    /* ... that failed (SIZEMISMATCH, NOUPDATE, INPUT) */
	SNP_STAT_UNVALIDATED_ACCESS,  /* guest-fatal accesses to unvalidated pages */
	SNP_STAT_LAUNCH_PAGES,        /* pages measured by LAUNCH_UPDATE */
	SNP_NR_STATS,
};

struct snp_vm {
	struct pm_vm *vm;                       /* immutable */
	unsigned int asid;                      /* immutable */
	struct psp_guest fw;
	pthread_mutex_t launch_lock;
	bool started, finished;                 /* launch_lock */
	pm_pfn_t *vmsa;                         /* launch_lock: one per vCPU, after FINISH */
	unsigned int nr_vmsa;                   /* launch_lock */
	atomic_uint_fast64_t stats[SNP_NR_STATS];
};

static inline struct snp_vm *to_snp(struct pm_vm *vm)
{
	return vm->model_data;
}

static inline void snp_count(struct snp_vm *s, enum snp_stat st, uint64_t n)
{
	atomic_fetch_add_explicit(&s->stats[st], n, memory_order_relaxed);
}

/* launch.c: KVM_MEMORY_ENCRYPT_OP and PM_KVM_GET_MEASUREMENT. */
long snp_mem_enc_op(struct pm_vm *vm, unsigned long arg);
int snp_get_measurement(struct pm_vm *vm, uint8_t *digest, size_t size);
void snp_launch_teardown(struct snp_vm *s);

/* psc.c: the GHCB page state change (descriptor at desc_gpa, shared) and
 * the MSR protocol's; run on the vCPU in guest context. */
long snp_psc_request(struct pm_vcpu *v, uint64_t desc_gpa);
long snp_psc_msr(struct pm_vcpu *v, uint64_t gpa, uint64_t op);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * The SEV-ES save area (VMSA) of an SNP vCPU: the page the firmware
 * measures at LAUNCH_FINISH, one per vCPU (AMD APM vol. 2, "VMSA layout";
 * Linux's struct sev_es_save_area). snp_vmsa_build lays a struct
 * snp_vmsa_state out at the hardware's offsets, every other byte zero.
 *
 * Two callers fill the state: KVM's side of the model (launch.c) from each
 * vCPU's registers as KVM_SET_REGS / SREGS / FPU left them, with what KVM's
 * VMCB adds (snp_vmsa_from_vcpu: EFER.SVME, CR0 without CD/NW, CR4.MCE,
 * SEV_FEATURES), and `privmem measure snp` from the values a VMM and KVM
 * give a vCPU at reset. The state is a plain value: no locks.
 */
#ifndef PM_MODELS_SNP_VMSA_H
#define PM_MODELS_SNP_VMSA_H

#include <stdint.h>

#define SNP_VMSA_SIZE         4096
#define SNP_SEV_FEAT_SNP_ACTIVE 1ULL      /* SEV_FEATURES bit 0: set by KVM for SNP */

/* A segment as the VMCB holds it: attrib = type | S << 4 | DPL << 5 |
 * P << 7 | AVL << 8 | L << 9 | DB << 10 | G << 11. */
struct snp_vmsa_seg {
	uint16_t selector, attrib;
	uint32_t limit;
	uint64_t base;
};

enum { SNP_SEG_ES, SNP_SEG_CS, SNP_SEG_SS, SNP_SEG_DS, SNP_SEG_FS, SNP_SEG_GS, SNP_SEG_GDTR,
       SNP_SEG_LDTR, SNP_SEG_IDTR, SNP_SEG_TR, SNP_NR_SEGS };

struct snp_vmsa_state {
	struct snp_vmsa_seg seg[SNP_NR_SEGS];   /* in the VMSA's order */
	uint64_t efer, cr0, cr2, cr3, cr4, dr6, dr7, rflags, rip, g_pat, xcr0, sev_features;
	uint64_t gpr[16];                      /* RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8-R15 */
	uint32_t mxcsr;
	uint16_t x87_fcw, x87_fsw, x87_ftw, x87_fop;
};

/* The 4096-byte page of s. */
void snp_vmsa_build(uint8_t page[SNP_VMSA_SIZE], const struct snp_vmsa_state *s);

struct pm_vcpu;
/* s from vcpu's architectural state (taken under its run_lock, as KVM
 * takes vcpu->mutex to sync the VMSA) and the VM's SEV features. */
void snp_vmsa_from_vcpu(struct pm_vcpu *vcpu, uint64_t sev_features, struct snp_vmsa_state *s);

#endif

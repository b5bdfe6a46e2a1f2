/* SPDX-License-Identifier: MIT */
/*
 * The VMSA page (vmsa.h): the save area's offsets, and the state KVM syncs
 * into it from a vCPU at LAUNCH_FINISH (sev_es_sync_vmsa's part that a
 * launch measures).
 */
#include <string.h>
#include "models/snp/vmsa.h"
#include "vcpu/vcpu.h"
#include "vcpu/x86/x86.h"

/* Offsets in the save area (struct sev_es_save_area). */
#define VMSA_SEGS     0x000     /* ES, CS, SS, DS, FS, GS, GDTR, LDTR, IDTR, TR: 16 bytes each */
#define VMSA_EFER     0x0d0
#define VMSA_CR4      0x148
#define VMSA_CR3      0x150
#define VMSA_CR0      0x158
#define VMSA_DR7      0x160
#define VMSA_DR6      0x168
#define VMSA_RFLAGS   0x170
#define VMSA_RIP      0x178
#define VMSA_RSP      0x1d8
#define VMSA_RAX      0x1f8
#define VMSA_CR2      0x240
#define VMSA_G_PAT    0x268
#define VMSA_RCX      0x308     /* then RDX, RBX, a hole (RSP is at 0x1d8), RBP ... R15 */
#define VMSA_SEV_FEATURES 0x3b0
#define VMSA_XCR0     0x3e8
#define VMSA_MXCSR    0x408
#define VMSA_X87_FTW  0x40c
#define VMSA_X87_FSW  0x40e
#define VMSA_X87_FCW  0x410
#define VMSA_X87_FOP  0x412

#define CR0_NW        (1ULL << 29)
#define CR0_CD        (1ULL << 30)
#define CR4_MCE       (1ULL << 6)
#define EFER_SVME     (1ULL << 12)

static void put(uint8_t *page, unsigned int off, uint64_t v, unsigned int bytes)
{
	for (unsigned int i = 0; i < bytes; i++)
		page[off + i] = (uint8_t)(v >> (8 * i));
}

void snp_vmsa_build(uint8_t page[SNP_VMSA_SIZE], const struct snp_vmsa_state *s)
{
	memset(page, 0, SNP_VMSA_SIZE);
	for (unsigned int i = 0; i < SNP_NR_SEGS; i++) {
		unsigned int off = VMSA_SEGS + 16 * i;

		put(page, off, s->seg[i].selector, 2);
		put(page, off + 2, s->seg[i].attrib, 2);
		put(page, off + 4, s->seg[i].limit, 4);
		put(page, off + 8, s->seg[i].base, 8);
	}
	put(page, VMSA_EFER, s->efer, 8);
	put(page, VMSA_CR4, s->cr4, 8);
	put(page, VMSA_CR3, s->cr3, 8);
	put(page, VMSA_CR0, s->cr0, 8);
	put(page, VMSA_DR7, s->dr7, 8);
	put(page, VMSA_DR6, s->dr6, 8);
	put(page, VMSA_RFLAGS, s->rflags, 8);
	put(page, VMSA_RIP, s->rip, 8);
	put(page, VMSA_RSP, s->gpr[4], 8);
	put(page, VMSA_RAX, s->gpr[0], 8);
	put(page, VMSA_CR2, s->cr2, 8);
	put(page, VMSA_G_PAT, s->g_pat, 8);
	put(page, VMSA_RCX, s->gpr[1], 8);
	put(page, VMSA_RCX + 8, s->gpr[2], 8);
	put(page, VMSA_RCX + 16, s->gpr[3], 8);
	for (unsigned int r = 5; r < 16; r++)      /* RBP at 0x328 ... R15 at 0x378 */
		put(page, VMSA_RCX + 8 * (r - 1), s->gpr[r], 8);
	put(page, VMSA_SEV_FEATURES, s->sev_features, 8);
	put(page, VMSA_XCR0, s->xcr0, 8);
	put(page, VMSA_MXCSR, s->mxcsr, 4);
	put(page, VMSA_X87_FTW, s->x87_ftw, 2);
	put(page, VMSA_X87_FSW, s->x87_fsw, 2);
	put(page, VMSA_X87_FCW, s->x87_fcw, 2);
	put(page, VMSA_X87_FOP, s->x87_fop, 2);
}

static struct snp_vmsa_seg vmcb_seg(const struct pm_x86_seg *s)
{
	uint16_t attrib = 0;

	if (!s->unusable)
		attrib = (uint16_t)((s->type & 0xf) | (s->s & 1) << 4 | (s->dpl & 3) << 5 |
				    (s->present & 1) << 7 | (s->avl & 1) << 8 | (s->l & 1) << 9 |
				    (s->db & 1) << 10 | (s->g & 1) << 11);
	return (struct snp_vmsa_seg){ s->selector, attrib, s->limit, s->base };
}

static struct snp_vmsa_seg vmcb_dtable(const struct pm_x86_dtable *d)
{
	return (struct snp_vmsa_seg){ 0, 0, d->limit, d->base };
}

/* The VMCB's view of the registers: KVM runs every SVM guest with
 * EFER.SVME set, clears CR0.CD/NW (its CD_NW_CLEARED quirk, on by
 * default) and keeps the host's CR4.MCE; the VMSA starts as a copy of that
 * save area. */
void snp_vmsa_from_vcpu(struct pm_vcpu *vcpu, uint64_t sev_features, struct snp_vmsa_state *s)
{
	static const int segs[PM_X86_NSEG] = {
		[PM_X86_ES] = SNP_SEG_ES, [PM_X86_CS] = SNP_SEG_CS, [PM_X86_SS] = SNP_SEG_SS,
		[PM_X86_DS] = SNP_SEG_DS, [PM_X86_FS] = SNP_SEG_FS, [PM_X86_GS] = SNP_SEG_GS,
	};
	const struct pm_x86_cpu *c = vcpu->x86;

	memset(s, 0, sizeof(*s));
	pthread_mutex_lock(&vcpu->run_lock);
	for (int i = 0; i < PM_X86_NSEG; i++)
		s->seg[segs[i]] = vmcb_seg(&c->seg[i]);
	s->seg[SNP_SEG_LDTR] = vmcb_seg(&c->ldtr);
	s->seg[SNP_SEG_TR] = vmcb_seg(&c->tr);
	s->seg[SNP_SEG_GDTR] = vmcb_dtable(&c->gdtr);
	s->seg[SNP_SEG_IDTR] = vmcb_dtable(&c->idtr);
	s->efer = c->efer | EFER_SVME;
	s->cr0 = c->cr0 & ~(CR0_CD | CR0_NW);
	s->cr2 = c->cr2;
	s->cr3 = c->cr3;
	s->cr4 = c->cr4 | CR4_MCE;
	s->dr6 = c->dr[6];
	s->dr7 = c->dr[7];
	s->rflags = c->rflags;
	s->rip = c->rip;
	memcpy(s->gpr, c->gpr, sizeof(s->gpr));
	s->g_pat = c->pat;
	s->xcr0 = c->xcr0;
	s->mxcsr = c->mxcsr;
	s->x87_fcw = c->fcw;
	s->x87_fsw = c->fsw;
	s->x87_ftw = c->ftwx;
	s->x87_fop = c->fop;
	pthread_mutex_unlock(&vcpu->run_lock);
	s->sev_features = sev_features;
}

/* SPDX-License-Identifier: MIT */
/*
 * Architectural state: KVM's reset values, the conversions to and from
 * KVM's structs (kvm_regs, kvm_sregs, kvm_fpu, kvm_msr_entry,
 * kvm_mp_state), control-register and EFER writes with their checks, and
 * the MSRs. Every change that alters translations (CR0, CR3, CR4, EFER,
 * segments through SREGS) flushes the TLB; none alters decoded code, which
 * is keyed by physical address.
 *
 * Deliberately not modelled: the interrupt bitmap of kvm_sregs (no
 * interrupt controller: it reads as zero and is ignored when set),
 * debug-register breakpoints (DR0-7 are stored only), MTRRs (MTRRCAP reads
 * 0: no variable or fixed ranges).
 */
#include <x86intrin.h>
#include "vcpu/x86/internal.h"

#define CR0_VALID (PM_X86_CR0_PE | PM_X86_CR0_MP | PM_X86_CR0_EM | PM_X86_CR0_TS | \
		   PM_X86_CR0_ET | PM_X86_CR0_NE | PM_X86_CR0_WP | PM_X86_CR0_AM | \
		   PM_X86_CR0_NW | PM_X86_CR0_CD | PM_X86_CR0_PG)
#define CR4_VME (1ULL << 0)
#define CR4_TSD (1ULL << 2)
#define CR4_DE  (1ULL << 3)
#define CR4_MCE (1ULL << 6)
#define CR4_PCE (1ULL << 8)
/* The CR4 bits of the CPU model (no UMIP, XSAVE, SMEP, SMAP, PCID, LA57,
 * PKE: CPUID does not offer them). VME and PVI are accepted whatever CPUID
 * says, as KVM does: VME acts only in virtual-8086 mode, which the engine
 * never runs; PVI makes CLI/STI at CPL 3 change VIF (sys.c). */
#define CR4_VALID (CR4_VME | PM_X86_CR4_PVI | CR4_TSD | CR4_DE | PM_X86_CR4_PSE | \
		   PM_X86_CR4_PAE | CR4_MCE | PM_X86_CR4_PGE | CR4_PCE | PM_X86_CR4_OSFXSR | \
		   PM_X86_CR4_OSXMMEXCPT | PM_X86_CR4_FSGSBASE)
/* IA32_APIC_BASE's reserved bits: 0-7, 9, x2APIC enable (CPUID offers no
 * x2APIC) and those above the model's 52 physical address bits. */
#define APIC_BASE_RESERVED (0x6ffULL | ~((1ULL << 52) - 1))
#define EFER_VALID (PM_X86_EFER_SCE | PM_X86_EFER_LME | PM_X86_EFER_LMA | PM_X86_EFER_NXE)
#define MXCSR_VALID 0xffffu

static void real_mode_seg(struct pm_x86_seg *s, uint16_t sel, uint64_t base, uint8_t type)
{
	memset(s, 0, sizeof(*s));
	s->selector = sel;
	s->base = base;
	s->limit = 0xffff;
	s->type = type;
	s->s = 1;
	s->present = 1;
}

void x86_reset(struct pm_x86_cpu *c)
{
	uint32_t id[4];

	memset(c->gpr, 0, sizeof(c->gpr));
	pm_x86_cpuid_lookup(c, 1, 0, id);
	c->gpr[PM_X86_RDX] = id[0]; /* family/model/stepping, as at reset */
	c->rip = 0xfff0;
	c->rflags = 2;
	for (int s = 0; s < PM_X86_NSEG; s++)
		real_mode_seg(&c->seg[s], 0, 0, 3);
	real_mode_seg(&c->seg[PM_X86_CS], 0xf000, 0xffff0000, 0xb);
	memset(&c->ldtr, 0, sizeof(c->ldtr));
	c->ldtr.type = 2;
	c->ldtr.present = 1;
	c->ldtr.limit = 0xffff;
	memset(&c->tr, 0, sizeof(c->tr));
	c->tr.type = 0xb;
	c->tr.present = 1;
	c->tr.limit = 0xffff;
	c->gdtr = (struct pm_x86_dtable){ .base = 0, .limit = 0xffff };
	c->idtr = (struct pm_x86_dtable){ .base = 0, .limit = 0xffff };
	c->cr0 = PM_X86_CR0_CD | PM_X86_CR0_NW | PM_X86_CR0_ET;
	c->cr2 = c->cr3 = c->cr4 = c->cr8 = c->efer = 0;
	memset(c->dr, 0, sizeof(c->dr));
	c->dr[6] = 0xffff0ff0;
	c->dr[7] = 0x400;
	c->xcr0 = 1;
	c->cpl = 0;
	c->apic_base = 0xfee00000ULL | (1u << 11) | (1u << 8);
	c->pat = 0x0007040600070406ULL;
	c->misc_enable = (1u << 11) | (1u << 12); /* BTS and PEBS unavailable */
	c->ucode_rev = PM_X86_UCODE_REV;
	c->hwcr = 0;
	c->tsc_adjust = 0;
	c->mxcsr = 0x1f80;
	c->fcw = 0x37f;
	c->fsw = 0;
	c->ftwx = 0;
	x86_tlb_flush(c);
}

/* ---- kvm_regs ---- */
void pm_x86_get_regs(const struct pm_x86_cpu *c, struct kvm_regs *r)
{
	const uint64_t *g = c->gpr;

	r->rax = g[PM_X86_RAX]; r->rbx = g[PM_X86_RBX]; r->rcx = g[PM_X86_RCX];
	r->rdx = g[PM_X86_RDX]; r->rsi = g[PM_X86_RSI]; r->rdi = g[PM_X86_RDI];
	r->rsp = g[PM_X86_RSP]; r->rbp = g[PM_X86_RBP];
	r->r8 = g[8]; r->r9 = g[9]; r->r10 = g[10]; r->r11 = g[11];
	r->r12 = g[12]; r->r13 = g[13]; r->r14 = g[14]; r->r15 = g[15];
	r->rip = c->rip;
	r->rflags = c->rflags;
}

void pm_x86_set_regs(struct pm_x86_cpu *c, const struct kvm_regs *r)
{
	uint64_t *g = c->gpr;

	g[PM_X86_RAX] = r->rax; g[PM_X86_RBX] = r->rbx; g[PM_X86_RCX] = r->rcx;
	g[PM_X86_RDX] = r->rdx; g[PM_X86_RSI] = r->rsi; g[PM_X86_RDI] = r->rdi;
	g[PM_X86_RSP] = r->rsp; g[PM_X86_RBP] = r->rbp;
	g[8] = r->r8; g[9] = r->r9; g[10] = r->r10; g[11] = r->r11;
	g[12] = r->r12; g[13] = r->r13; g[14] = r->r14; g[15] = r->r15;
	c->rip = r->rip;
	/* Bit 1 always reads as 1; reserved bits are dropped (KVM's VMX
	 * entry would fail on them). */
	c->rflags = (r->rflags & 0x3f7fd7ULL) | 2;
	c->end_block = true;
}

/* ---- kvm_sregs ---- */
static void seg_to_kvm(const struct pm_x86_seg *s, struct kvm_segment *k)
{
	memset(k, 0, sizeof(*k));
	k->base = s->base;
	k->limit = s->limit;
	k->selector = s->selector;
	k->type = s->type;
	k->present = s->present;
	k->dpl = s->dpl;
	k->db = s->db;
	k->s = s->s;
	k->l = s->l;
	k->g = s->g;
	k->avl = s->avl;
	k->unusable = s->unusable;
}

static void seg_from_kvm(const struct kvm_segment *k, struct pm_x86_seg *s)
{
	s->base = k->base;
	s->limit = k->limit;
	s->selector = k->selector;
	s->type = k->type & 0xf;
	s->present = k->present;
	s->dpl = k->dpl & 3;
	s->db = k->db;
	s->s = k->s;
	s->l = k->l;
	s->g = k->g;
	s->avl = k->avl;
	s->unusable = k->unusable;
}

void pm_x86_get_sregs(const struct pm_x86_cpu *c, struct kvm_sregs *s)
{
	memset(s, 0, sizeof(*s));
	seg_to_kvm(&c->seg[PM_X86_CS], &s->cs);
	seg_to_kvm(&c->seg[PM_X86_DS], &s->ds);
	seg_to_kvm(&c->seg[PM_X86_ES], &s->es);
	seg_to_kvm(&c->seg[PM_X86_FS], &s->fs);
	seg_to_kvm(&c->seg[PM_X86_GS], &s->gs);
	seg_to_kvm(&c->seg[PM_X86_SS], &s->ss);
	seg_to_kvm(&c->tr, &s->tr);
	seg_to_kvm(&c->ldtr, &s->ldt);
	s->gdt.base = c->gdtr.base;
	s->gdt.limit = c->gdtr.limit;
	s->idt.base = c->idtr.base;
	s->idt.limit = c->idtr.limit;
	s->cr0 = c->cr0;
	s->cr2 = c->cr2;
	s->cr3 = c->cr3;
	s->cr4 = c->cr4;
	s->cr8 = c->cr8;
	s->efer = c->efer;
	s->apic_base = c->apic_base;
}

/* KVM's kvm_is_valid_sregs() and the CR/EFER checks it implies. */
static bool sregs_valid(const struct kvm_sregs *s)
{
	if (s->cr0 & ~CR0_VALID)
		return false;
	if ((s->cr0 & PM_X86_CR0_PG) && !(s->cr0 & PM_X86_CR0_PE))
		return false;
	if ((s->cr0 & PM_X86_CR0_NW) && !(s->cr0 & PM_X86_CR0_CD))
		return false;
	if (s->cr4 & ~CR4_VALID)
		return false;
	if (s->efer & ~EFER_VALID)
		return false;
	if (s->apic_base & APIC_BASE_RESERVED)
		return false;
	if ((s->efer & PM_X86_EFER_LME) && (s->cr0 & PM_X86_CR0_PG)) {
		if (!(s->cr4 & PM_X86_CR4_PAE) || !(s->efer & PM_X86_EFER_LMA))
			return false;
		if (s->cr3 & ~0x000ffffffffff000ULL & ~0x18ULL)
			return false;
	} else if (s->efer & PM_X86_EFER_LMA) {
		return false;
	}
	return true;
}

int pm_x86_set_sregs(struct pm_x86_cpu *c, const struct kvm_sregs *s)
{
	if (!sregs_valid(s))
		return -EINVAL;
	seg_from_kvm(&s->cs, &c->seg[PM_X86_CS]);
	seg_from_kvm(&s->ds, &c->seg[PM_X86_DS]);
	seg_from_kvm(&s->es, &c->seg[PM_X86_ES]);
	seg_from_kvm(&s->fs, &c->seg[PM_X86_FS]);
	seg_from_kvm(&s->gs, &c->seg[PM_X86_GS]);
	seg_from_kvm(&s->ss, &c->seg[PM_X86_SS]);
	seg_from_kvm(&s->tr, &c->tr);
	seg_from_kvm(&s->ldt, &c->ldtr);
	c->gdtr.base = s->gdt.base;
	c->gdtr.limit = s->gdt.limit;
	c->idtr.base = s->idt.base;
	c->idtr.limit = s->idt.limit;
	c->cr0 = s->cr0;
	c->cr2 = s->cr2;
	c->cr3 = s->cr3;
	c->cr4 = s->cr4;
	c->cr8 = s->cr8 & 0xf;
	c->efer = s->efer;
	c->apic_base = s->apic_base;
	/* CPL is CS's DPL (the code segment a VMM loads is not conforming). */
	c->cpl = c->seg[PM_X86_CS].dpl;
	c->end_block = true;
	x86_tlb_flush(c);
	return 0;
}

void pm_x86_set_segment(struct pm_x86_cpu *c, int seg, const struct pm_x86_seg *s)
{
	PM_BUG_ON(seg < 0 || seg >= PM_X86_NSEG);
	c->seg[seg] = *s;
	if (seg == PM_X86_CS)
		c->cpl = s->dpl;
	c->end_block = true;
}

/* ---- kvm_fpu ---- */
void pm_x86_get_fpu(const struct pm_x86_cpu *c, struct kvm_fpu *f)
{
	memset(f, 0, sizeof(*f));
	memcpy(f->fpr, c->fpr, sizeof(f->fpr));
	f->fcw = c->fcw;
	f->fsw = c->fsw;
	f->ftwx = c->ftwx;
	f->last_opcode = c->fop;
	f->last_ip = c->fip;
	f->last_dp = c->fdp;
	for (int k = 0; k < 16; k++)
		memcpy(f->xmm[k], c->xmm[k].b, 16);
	f->mxcsr = c->mxcsr;
}

int pm_x86_set_fpu(struct pm_x86_cpu *c, const struct kvm_fpu *f)
{
	if (f->mxcsr & ~MXCSR_VALID)
		return -EINVAL;
	memcpy(c->fpr, f->fpr, sizeof(c->fpr));
	c->fcw = f->fcw;
	c->fsw = f->fsw;
	c->ftwx = f->ftwx;
	c->fop = f->last_opcode;
	c->fip = f->last_ip;
	c->fdp = f->last_dp;
	for (int k = 0; k < 16; k++)
		memcpy(c->xmm[k].b, f->xmm[k], 16);
	c->mxcsr = f->mxcsr;
	return 0;
}

/* ---- kvm_mp_state ---- */
void pm_x86_get_mp_state(const struct pm_x86_cpu *c, struct kvm_mp_state *mp)
{
	mp->mp_state = c->halted ? KVM_MP_STATE_HALTED : KVM_MP_STATE_RUNNABLE;
}

int pm_x86_set_mp_state(struct pm_x86_cpu *c, const struct kvm_mp_state *mp)
{
	switch (mp->mp_state) {
	case KVM_MP_STATE_RUNNABLE:
		c->halted = false;
		return 0;
	case KVM_MP_STATE_HALTED:
		c->halted = true;
		return 0;
	default:
		/* INIT/SIPI need a local APIC, which the engine has not. */
		return -EINVAL;
	}
}

/* ---- control registers and EFER ---- */
bool x86_set_cr0(struct pm_x86_cpu *c, uint64_t v)
{
	v |= PM_X86_CR0_ET;
	if (v & ~CR0_VALID)
		return false;
	if ((v & PM_X86_CR0_NW) && !(v & PM_X86_CR0_CD))
		return false;
	/* Leaving long mode or paging is not implemented (nor allowed from
	 * 64-bit code: the SDM's #GP). */
	if ((c->efer & PM_X86_EFER_LMA) && (!(v & PM_X86_CR0_PG) || !(v & PM_X86_CR0_PE)))
		return false;
	if ((v ^ c->cr0) & (PM_X86_CR0_PG | PM_X86_CR0_WP | PM_X86_CR0_PE))
		x86_tlb_flush(c);
	c->cr0 = v;
	c->end_block = true;
	return true;
}

bool x86_set_cr4(struct pm_x86_cpu *c, uint64_t v)
{
	if (v & ~CR4_VALID)
		return false;
	if ((c->efer & PM_X86_EFER_LMA) && !(v & PM_X86_CR4_PAE))
		return false;
	if ((v ^ c->cr4) & (PM_X86_CR4_PAE | PM_X86_CR4_PGE | PM_X86_CR4_PSE))
		x86_tlb_flush(c);
	c->cr4 = v;
	c->end_block = true;
	return true;
}

void x86_set_cr3(struct pm_x86_cpu *c, uint64_t v)
{
	c->cr3 = v;
	x86_tlb_flush(c);
	c->end_block = true;
}

bool x86_set_efer(struct pm_x86_cpu *c, uint64_t v)
{
	if (v & ~EFER_VALID)
		return false;
	/* LMA follows LME and paging; LME may not change while paging is on. */
	if ((c->cr0 & PM_X86_CR0_PG) && ((v ^ c->efer) & PM_X86_EFER_LME))
		return false;
	v = (v & ~PM_X86_EFER_LMA) | (c->efer & PM_X86_EFER_LMA);
	if ((v ^ c->efer) & PM_X86_EFER_NXE)
		x86_tlb_flush(c);
	c->efer = v;
	c->end_block = true;
	return true;
}

/* ---- MSRs ---- */
uint64_t pm_x86_host_tsc(const struct pm_x86_cpu *c)
{
	return c->ops->rdtsc ? c->ops->rdtsc(c->env) : __rdtsc();
}

void pm_x86_set_tsc_offset(struct pm_x86_cpu *c, uint64_t offset)
{
	c->tsc_offset = offset;
}

uint64_t x86_read_tsc(struct pm_x86_cpu *c)
{
	return pm_x86_host_tsc(c) + c->tsc_offset;
}

/* IA32_TSC_ADJUST exists when the vCPU's CPUID says so (leaf 7, EBX bit
 * 1); KVM ignores writes to it otherwise. */
static bool has_tsc_adjust(const struct pm_x86_cpu *c)
{
	uint32_t id[4];

	pm_x86_cpuid_lookup(c, 7, 0, id);
	return id[1] & (1u << 1);
}

static bool canonical_msr(uint64_t v)
{
	return is_canonical(v);
}

bool x86_msr_read(struct pm_x86_cpu *c, uint32_t idx, uint64_t *v)
{
	switch (idx) {
	case PM_MSR_TSC: *v = x86_read_tsc(c); return true;
	case PM_MSR_TSC_ADJUST: *v = c->tsc_adjust; return true;
	case PM_MSR_APIC_BASE: *v = c->apic_base; return true;
	case PM_MSR_MTRRCAP: *v = 0; return true;
	case PM_MSR_SYSENTER_CS: *v = c->sysenter_cs; return true;
	case PM_MSR_SYSENTER_ESP: *v = c->sysenter_esp; return true;
	case PM_MSR_SYSENTER_EIP: *v = c->sysenter_eip; return true;
	case PM_MSR_MISC_ENABLE: *v = c->misc_enable; return true;
	case PM_MSR_PAT: *v = c->pat; return true;
	case PM_MSR_MTRR_DEF_TYPE: *v = c->mtrr_def_type; return true;
	case PM_MSR_EFER: *v = c->efer; return true;
	case PM_MSR_STAR: *v = c->star; return true;
	case PM_MSR_LSTAR: *v = c->lstar; return true;
	case PM_MSR_CSTAR: *v = c->cstar; return true;
	case PM_MSR_SFMASK: *v = c->sfmask; return true;
	case PM_MSR_FS_BASE: *v = c->seg[PM_X86_FS].base; return true;
	case PM_MSR_GS_BASE: *v = c->seg[PM_X86_GS].base; return true;
	case PM_MSR_KERNEL_GS_BASE: *v = c->kernel_gs_base; return true;
	case PM_MSR_TSC_AUX: *v = c->tsc_aux; return true;
	case PM_MSR_UCODE_REV: *v = c->ucode_rev; return true;
	case PM_MSR_K7_HWCR: *v = c->hwcr; return true;
	default: return false;
	}
}

static bool pat_valid(uint64_t v)
{
	for (int k = 0; k < 8; k++) {
		unsigned int t = (v >> (8 * k)) & 0xff;

		if (t > 7 || t == 2 || t == 3)
			return false;
	}
	return true;
}

bool x86_msr_write(struct pm_x86_cpu *c, uint32_t idx, uint64_t v)
{
	switch (idx) {
	case PM_MSR_TSC: {
		/* The guest's write moves its TSC and IA32_TSC_ADJUST alike
		 * (the SDM's; KVM's l1 offset). */
		uint64_t adj = v - x86_read_tsc(c);

		c->tsc_offset += adj;
		c->tsc_adjust += adj;
		return true;
	}
	case PM_MSR_TSC_ADJUST:
		if (has_tsc_adjust(c)) {
			c->tsc_offset += v - c->tsc_adjust;
			c->tsc_adjust = v;
		}
		return true;
	case PM_MSR_APIC_BASE:
		if (v & APIC_BASE_RESERVED)
			return false;
		c->apic_base = v;
		return true;
	case PM_MSR_SYSENTER_CS: c->sysenter_cs = v & 0xffff; return true;
	case PM_MSR_SYSENTER_ESP:
		if (!canonical_msr(v))
			return false;
		c->sysenter_esp = v;
		return true;
	case PM_MSR_SYSENTER_EIP:
		if (!canonical_msr(v))
			return false;
		c->sysenter_eip = v;
		return true;
	case PM_MSR_MISC_ENABLE: c->misc_enable = v; return true;
	case PM_MSR_PAT:
		if (!pat_valid(v))
			return false;
		c->pat = v;
		return true;
	case PM_MSR_MTRR_DEF_TYPE:
		if (v & ~0xcffULL)
			return false;
		c->mtrr_def_type = v;
		return true;
	case PM_MSR_EFER: return x86_set_efer(c, v);
	case PM_MSR_STAR: c->star = v; return true;
	case PM_MSR_LSTAR:
	case PM_MSR_CSTAR:
	case PM_MSR_FS_BASE:
	case PM_MSR_GS_BASE:
	case PM_MSR_KERNEL_GS_BASE:
		if (!canonical_msr(v))
			return false;
		if (idx == PM_MSR_LSTAR)
			c->lstar = v;
		else if (idx == PM_MSR_CSTAR)
			c->cstar = v;
		else if (idx == PM_MSR_FS_BASE)
			c->seg[PM_X86_FS].base = v;
		else if (idx == PM_MSR_GS_BASE)
			c->seg[PM_X86_GS].base = v;
		else
			c->kernel_gs_base = v;
		return true;
	case PM_MSR_SFMASK: c->sfmask = v & 0xffffffffULL; return true;
	case PM_MSR_TSC_AUX:
		if (v >> 32)
			return false;
		c->tsc_aux = v;
		return true;
	case PM_MSR_UCODE_REV:          /* the guest's write is ignored */
		return true;
	case PM_MSR_K7_HWCR:
		/* KVM's: flush-filter (6), IGNNE (8) and TLB-cache (3) disable
		 * are ignored; McStatusWrEn (18) and TscFreqSel (24) are kept
		 * (stored only); any other bit is refused. */
		v &= ~((1ULL << 3) | (1ULL << 6) | (1ULL << 8));
		if (v & ~((1ULL << 18) | (1ULL << 24)))
			return false;
		c->hwcr = v;
		return true;
	default:
		return false;
	}
}

int pm_x86_get_msrs(struct pm_x86_cpu *c, struct kvm_msr_entry *e, unsigned int n)
{
	unsigned int k;

	for (k = 0; k < n; k++) {
		uint64_t v;

		if (!x86_msr_read(c, e[k].index, &v))
			break;
		e[k].data = v;
	}
	return (int)k;
}

int pm_x86_set_msrs(struct pm_x86_cpu *c, const struct kvm_msr_entry *e, unsigned int n)
{
	unsigned int k;

	for (k = 0; k < n; k++) {
		/* Only the host sets the microcode revision. */
		if (e[k].index == PM_MSR_UCODE_REV) {
			c->ucode_rev = e[k].data;
			continue;
		}
		/* The host's TSC write sets the offset alone, its TSC_ADJUST
		 * write the MSR alone (KVM's host-initiated writes). */
		if (e[k].index == PM_MSR_TSC) {
			c->tsc_offset = e[k].data - pm_x86_host_tsc(c);
			continue;
		}
		if (e[k].index == PM_MSR_TSC_ADJUST) {
			if (has_tsc_adjust(c))
				c->tsc_adjust = e[k].data;
			continue;
		}
		/* The host may set EFER.LMA along with LME (KVM's host write). */
		if (e[k].index == PM_MSR_EFER) {
			if (e[k].data & ~EFER_VALID)
				break;
			c->efer = e[k].data;
			x86_tlb_flush(c);
			continue;
		}
		if (!x86_msr_write(c, e[k].index, e[k].data))
			break;
	}
	c->end_block = true;
	return (int)k;
}

/* ---- CPUID table ---- */
int pm_x86_set_cpuid(struct pm_x86_cpu *c, const struct kvm_cpuid_entry2 *e, unsigned int n)
{
	if (n > PM_X86_MAX_CPUID)
		return -E2BIG;
	memcpy(c->cpuid, e, n * sizeof(*e));
	c->nr_cpuid = n;
	return 0;
}

int pm_x86_get_cpuid(const struct pm_x86_cpu *c, struct kvm_cpuid_entry2 *e, unsigned int max,
		     unsigned int *n)
{
	*n = c->nr_cpuid;
	if (max < c->nr_cpuid)
		return -E2BIG;
	memcpy(e, c->cpuid, c->nr_cpuid * sizeof(*e));
	return 0;
}

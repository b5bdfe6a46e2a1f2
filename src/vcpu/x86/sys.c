/* SPDX-License-Identifier: MIT */
/*
 * System instructions: CPUID, RDTSC(P), RDPID, RDMSR/WRMSR, MOV to and from
 * control and debug registers, descriptor tables (LGDT, LIDT, SGDT, SIDT,
 * LLDT, SLDT, LTR, STR), segment loads, INVLPG, cache maintenance (no-ops),
 * port I/O, HLT, software interrupts, IRET, SYSCALL/SYSRET, SWAPGS,
 * FS/GS base access, fences, CLI/STI, CLTS, LMSW/SMSW, FXSAVE/FXRSTOR,
 * hypercalls (VMCALL/VMMCALL) and the protection models' instructions
 * (PVALIDATE, TDCALL, VMGEXIT), which go to the embedder's hook.
 *
 * Privileged instructions at CPL 3 are #GP(0). Instructions that change
 * what later instructions assume (paging, segments, IF) end their block.
 */
#include <Zydis/Zydis.h>
#include "vcpu/x86/internal.h"

static void need_cpl0(struct pm_x86_cpu *c)
{
	if (c->cpl != 0)
		x86_gp(c, 0);
}

static void cpuid(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	uint32_t out[4];

	(void)i;
	x86_cpuid(c, (uint32_t)c->gpr[PM_X86_RAX], (uint32_t)c->gpr[PM_X86_RCX], out);
	c->gpr[PM_X86_RAX] = out[0];
	c->gpr[PM_X86_RBX] = out[1];
	c->gpr[PM_X86_RCX] = out[2];
	c->gpr[PM_X86_RDX] = out[3];
}

static void rdtsc(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	uint64_t t;

	if ((c->cr4 & (1ULL << 2)) && c->cpl != 0) /* CR4.TSD */
		x86_gp(c, 0);
	t = x86_read_tsc(c);
	c->gpr[PM_X86_RAX] = (uint32_t)t;
	c->gpr[PM_X86_RDX] = t >> 32;
	if (i->mnemonic == ZYDIS_MNEMONIC_RDTSCP)
		c->gpr[PM_X86_RCX] = (uint32_t)c->tsc_aux;
}

static void rdpid(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	reg_write(c, i->op[0].reg, 8, c->tsc_aux);
}

static void rdmsr(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	uint64_t v;

	(void)i;
	need_cpl0(c);
	if (!x86_msr_read(c, (uint32_t)c->gpr[PM_X86_RCX], &v))
		x86_gp(c, 0);
	c->gpr[PM_X86_RAX] = (uint32_t)v;
	c->gpr[PM_X86_RDX] = v >> 32;
}

static void wrmsr(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	uint64_t v = (c->gpr[PM_X86_RDX] << 32) | (uint32_t)c->gpr[PM_X86_RAX];

	(void)i;
	need_cpl0(c);
	if (!x86_msr_write(c, (uint32_t)c->gpr[PM_X86_RCX], v))
		x86_gp(c, 0);
	c->end_block = true;
}

/* MOV r64, CRn / MOV CRn, r64 (operands: op0 destination). */
static void mov_cr(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	need_cpl0(c);
	if (i->op[1].kind == OP_CR) {
		uint64_t v;

		switch (i->op[1].reg) {
		case 0: v = c->cr0; break;
		case 2: v = c->cr2; break;
		case 3: v = c->cr3; break;
		case 4: v = c->cr4; break;
		case 8: v = c->cr8; break;
		default: x86_ud(c);
		}
		c->gpr[i->op[0].reg] = v;
		return;
	}
	{
		uint64_t v = c->gpr[i->op[1].reg];
		bool ok = true;

		switch (i->op[0].reg) {
		case 0: ok = x86_set_cr0(c, v); break;
		case 2: c->cr2 = v; break;
		case 3:
			if (v & 0xfff0000000000000ULL)
				x86_gp(c, 0);
			x86_set_cr3(c, v);
			break;
		case 4: ok = x86_set_cr4(c, v); break;
		case 8:
			if (v & ~0xfULL)
				x86_gp(c, 0);
			c->cr8 = v;
			break;
		default: x86_ud(c);
		}
		if (!ok)
			x86_gp(c, 0);
	}
}

static void mov_dr(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	bool to_dr = i->op[0].kind == OP_DR;
	unsigned int n = to_dr ? i->op[0].reg : i->op[1].reg;

	need_cpl0(c);
	if (n == 4 || n == 5) {
		if (c->cr4 & (1ULL << 3)) /* CR4.DE */
			x86_ud(c);
		n += 2;
	}
	if (n > 7)
		x86_ud(c);
	if (to_dr) {
		uint64_t v = c->gpr[i->op[1].reg];

		if (n >= 6 && (v >> 32))
			x86_gp(c, 0);
		c->dr[n] = n == 6 ? (v | 0xffff0ff0ULL) : n == 7 ? (v | 0x400) : v;
	} else {
		c->gpr[i->op[0].reg] = c->dr[n];
	}
}

static void dtable(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	uint64_t ea = insn_ea(c, i);
	bool idt = i->mnemonic == ZYDIS_MNEMONIC_LIDT || i->mnemonic == ZYDIS_MNEMONIC_SIDT;
	struct pm_x86_dtable *t = idt ? &c->idtr : &c->gdtr;
	uint8_t buf[10];

	if (i->mnemonic == ZYDIS_MNEMONIC_SGDT || i->mnemonic == ZYDIS_MNEMONIC_SIDT) {
		memcpy(buf, &t->limit, 2);
		memcpy(buf + 2, &t->base, 8);
		x86_write_buf(c, ea, buf, 10, acc_user(c));
		return;
	}
	need_cpl0(c);
	x86_read_buf(c, ea, buf, 10, acc_user(c));
	{
		uint16_t limit;
		uint64_t base;

		memcpy(&limit, buf, 2);
		memcpy(&base, buf + 2, 8);
		if (!is_canonical(base))
			x86_gp(c, 0);
		t->limit = limit;
		t->base = base;
	}
}

static void store_selector(struct pm_x86_cpu *c, const struct x86_insn *i, uint16_t sel)
{
	if (i->op[0].kind == OP_REG)
		reg_write(c, i->op[0].reg, i->op[0].size, sel);
	else
		mem_write(c, insn_ea(c, i), 2, sel);
}

static void lldt_ltr(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	bool tr = i->mnemonic == ZYDIS_MNEMONIC_LTR;
	uint16_t sel = (uint16_t)op_read(c, i, 0);
	struct pm_x86_seg s;
	uint64_t d[2];

	need_cpl0(c);
	if ((sel & ~3u) == 0) {
		if (tr)
			x86_gp(c, 0);
		memset(&c->ldtr, 0, sizeof(c->ldtr));
		c->ldtr.unusable = 1;
		return;
	}
	if (sel & 4)
		x86_gp(c, sel & ~3u);
	x86_read_descriptor(c, sel, d, true);
	x86_desc_to_seg(d, sel, &s);
	if (s.s || s.type != (tr ? 9 : 2))
		x86_gp(c, sel & ~3u);
	if (!s.present)
		x86_raise(c, PM_X86_EXC_NP, true, sel & ~3u);
	if (tr) {
		/* Mark the descriptor busy, as LTR does. */
		sys_write(c, c->gdtr.base + (sel & ~7u), 8, d[0] | (1ULL << 41));
		s.type = 0xb;
	}
	if (tr)
		c->tr = s;
	else
		c->ldtr = s;
}

static void sldt_str(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	store_selector(c, i, i->mnemonic == ZYDIS_MNEMONIC_STR ? c->tr.selector
							      : c->ldtr.selector);
}

void x86_load_seg(struct pm_x86_cpu *c, int seg, uint16_t sel)
{
	struct pm_x86_seg s;
	uint64_t d[2];

	if (seg == PM_X86_CS)
		x86_ud(c);
	if ((sel & ~3u) == 0) {
		/* A null selector: allowed for SS only below CPL 3 in 64-bit
		 * mode; FS and GS keep their base. */
		if (seg == PM_X86_SS && (c->cpl == 3 || (sel & 3) != c->cpl))
			x86_gp(c, 0);
		if (seg == PM_X86_FS || seg == PM_X86_GS) {
			c->seg[seg].selector = sel;
			return;
		}
		memset(&s, 0, sizeof(s));
		s.selector = sel;
		s.unusable = 1;
		if (seg == PM_X86_SS) {
			s.unusable = 0;
			s.type = 3;
			s.s = 1;
			s.present = 1;
			s.dpl = (uint8_t)c->cpl;
			s.db = 1;
		}
		c->seg[seg] = s;
		return;
	}
	x86_read_descriptor(c, sel, d, false);
	x86_desc_to_seg(d, sel, &s);
	if (!s.s)
		x86_gp(c, sel & ~3u);
	if (seg == PM_X86_SS) {
		if ((sel & 3) != c->cpl || s.dpl != c->cpl || (s.type & 8) || !(s.type & 2))
			x86_gp(c, sel & ~3u);
		if (!s.present)
			x86_raise(c, PM_X86_EXC_SS, true, sel & ~3u);
	} else {
		/* Data, or readable code; DPL checks for non-conforming. */
		if ((s.type & 8) && !(s.type & 2))
			x86_gp(c, sel & ~3u);
		if ((!(s.type & 8) || !(s.type & 4)) && (s.dpl < c->cpl || s.dpl < (sel & 3)))
			x86_gp(c, sel & ~3u);
		if (!s.present)
			x86_raise(c, PM_X86_EXC_NP, true, sel & ~3u);
	}
	if (seg == PM_X86_FS || seg == PM_X86_GS)
		s.base = (uint32_t)s.base;
	c->seg[seg] = s;
}

static void mov_seg(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	if (i->op[0].kind == OP_SEG) {
		x86_load_seg(c, i->op[0].reg, (uint16_t)op_read(c, i, 1));
		if (i->op[0].reg == PM_X86_SS)
			c->interrupt_shadow = true;
		c->end_block = true;
	} else {
		store_selector(c, i, c->seg[i->op[1].reg].selector);
	}
}

static void invlpg(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	need_cpl0(c);
	x86_tlb_flush_page(c, insn_ea(c, i));
	c->end_block = true;
}

static void priv_nop(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	(void)i;
	need_cpl0(c); /* WBINVD, INVD */
}

static void clflush(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	uint64_t gpa;

	/* The line must be readable; the hardware faults like a load. */
	x86_translate(c, insn_ea(c, i), acc_user(c), &gpa);
}

static void fence(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	/* The host is x86 (TSO): only MFENCE needs anything, a full barrier,
	 * here a locked RMW (which TSan understands, unlike a bare fence). */
	if (i->mnemonic == ZYDIS_MNEMONIC_MFENCE)
		__atomic_fetch_or(&c->fence_word, 0, __ATOMIC_SEQ_CST);
}

/* ---- port I/O ---- */
static void io(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	bool in = i->mnemonic == ZYDIS_MNEMONIC_IN;
	const struct x86_op *port_op = in ? &i->op[1] : &i->op[0];
	const struct x86_op *data_op = in ? &i->op[0] : &i->op[1];
	uint16_t port = port_op->kind == OP_IMM ? (uint16_t)(i->imm & 0xff)
						 : (uint16_t)c->gpr[PM_X86_RDX];
	unsigned int sz = data_op->size;
	uint64_t rip = c->rip;
	uint32_t data;

	if (c->cpl > ((c->rflags & PM_X86_IOPL) >> 12))
		x86_gp(c, 0); /* no I/O permission bitmap */
	if (in) {
		data = 0xffffffffu;
		if (c->ops->pio_in) {
			c->ops->pio_in(c->env, port, sz, 1, &data);
			x86_after_hook(c, rip);
		}
		reg_write(c, PM_X86_RAX, sz, data);
	} else {
		data = (uint32_t)reg_read(c, PM_X86_RAX, sz);
		if (c->ops->pio_out) {
			c->ops->pio_out(c->env, port, sz, 1, &data);
			x86_after_hook(c, rip);
		}
	}
}

static void hlt(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	(void)i;
	need_cpl0(c);
	c->rip = c->next_rip;
	c->halted = true;
	if (c->ops->hlt) {
		c->ops->hlt(c->env);
		c->halted = false;
		c->next_rip = c->rip; /* the hook may have moved it */
	}
	c->end_block = true;
}

static void soft_int(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	switch (i->mnemonic) {
	case ZYDIS_MNEMONIC_INT3: x86_soft_int(c, PM_X86_EXC_BP, true);
	case ZYDIS_MNEMONIC_INT1: x86_soft_int(c, PM_X86_EXC_DB, false);
	default: x86_soft_int(c, (int)(i->imm & 0xff), true);
	}
}

static void iret(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	x86_iret(c, i->osz);
}

static void syscall_insn(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	(void)i;
	x86_syscall(c);
}

static void sysret_insn(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	x86_sysret(c, i->osz);
}

static void model_insn(struct pm_x86_cpu *c, enum pm_x86_model_insn which)
{
	uint64_t rip = c->rip;
	enum pm_x86_insn_result r;

	if (!c->ops->model_insn)
		x86_ud(c);
	r = c->ops->model_insn(c->env, c, which);
	x86_after_hook(c, rip);
	if (r == PM_X86_INSN_UD)
		x86_ud(c);
	if (r == PM_X86_INSN_GP)
		x86_gp(c, 0);
	c->end_block = true;
}

static void hypercall(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	uint64_t rip = c->rip;

	if (i->mnemonic == ZYDIS_MNEMONIC_VMMCALL && (i->flags & IF_REP)) {
		model_insn(c, PM_X86_VMGEXIT);
		return;
	}
	if (c->cpl != 0) {
		c->gpr[PM_X86_RAX] = (uint64_t)-(int64_t)KVM_EPERM;
		return;
	}
	if (!c->ops->hypercall) {
		c->gpr[PM_X86_RAX] = (uint64_t)-(int64_t)KVM_ENOSYS;
		return;
	}
	c->ops->hypercall(c->env, c);
	x86_after_hook(c, rip);
}

static void pvalidate(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	(void)i;
	model_insn(c, PM_X86_PVALIDATE);
}

static void tdcall(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	(void)i;
	model_insn(c, PM_X86_TDCALL);
}

static void swapgs(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	uint64_t t;

	(void)i;
	need_cpl0(c);
	t = c->seg[PM_X86_GS].base;
	c->seg[PM_X86_GS].base = c->kernel_gs_base;
	c->kernel_gs_base = t;
}

static void fsgsbase(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	unsigned int sz = i->op[0].size;
	bool gs = i->mnemonic == ZYDIS_MNEMONIC_RDGSBASE || i->mnemonic == ZYDIS_MNEMONIC_WRGSBASE;
	struct pm_x86_seg *s = &c->seg[gs ? PM_X86_GS : PM_X86_FS];

	if (!(c->cr4 & PM_X86_CR4_FSGSBASE))
		x86_ud(c);
	if (i->mnemonic == ZYDIS_MNEMONIC_RDFSBASE || i->mnemonic == ZYDIS_MNEMONIC_RDGSBASE) {
		reg_write(c, i->op[0].reg, sz, s->base);
	} else {
		uint64_t v = reg_read(c, i->op[0].reg, sz);

		if (!is_canonical(v))
			x86_gp(c, 0);
		s->base = v;
	}
}

/* With CR4.PVI, CPL 3 below IOPL changes the virtual interrupt flag
 * instead of faulting (the SDM's protected-mode virtual interrupts); STI
 * with an interrupt pending (VIP) still faults. */
static void cli_sti_virtual(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	if (c->cpl != 3 || !(c->cr4 & PM_X86_CR4_PVI))
		x86_gp(c, 0);
	if (i->mnemonic == ZYDIS_MNEMONIC_CLI) {
		c->rflags &= ~PM_X86_VIF;
	} else {
		if (c->rflags & PM_X86_VIP)
			x86_gp(c, 0);
		c->rflags |= PM_X86_VIF;
	}
}

static void cli_sti(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	if (c->cpl > ((c->rflags & PM_X86_IOPL) >> 12)) {
		cli_sti_virtual(c, i);
		return;
	}
	if (i->mnemonic == ZYDIS_MNEMONIC_CLI) {
		c->rflags &= ~PM_X86_IF;
	} else {
		if (!(c->rflags & PM_X86_IF))
			c->interrupt_shadow = true;
		c->rflags |= PM_X86_IF;
	}
	c->end_block = true;
}

static void clts(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	(void)i;
	need_cpl0(c);
	c->cr0 &= ~PM_X86_CR0_TS;
}

static void msw(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	if (i->mnemonic == ZYDIS_MNEMONIC_SMSW) {
		if (i->op[0].kind == OP_REG)
			reg_write(c, i->op[0].reg, i->op[0].size, c->cr0);
		else
			mem_write(c, insn_ea(c, i), 2, c->cr0 & 0xffff);
		return;
	}
	need_cpl0(c);
	{
		/* LMSW: PE, MP, EM, TS; PE cannot be cleared. */
		uint64_t v = op_read(c, i, 0) & 0xf;

		if (!x86_set_cr0(c, (c->cr0 & ~0xeULL) | v | (c->cr0 & 1)))
			x86_gp(c, 0);
	}
}

/* FXSAVE/FXRSTOR: the 512-byte image (64-bit layout). */
static void fxsave(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	uint64_t ea = insn_ea(c, i);
	uint8_t img[512];
	uint32_t mxcsr_mask = 0xffff;

	if (c->cr0 & (PM_X86_CR0_EM))
		x86_ud(c);
	if (c->cr0 & PM_X86_CR0_TS)
		x86_raise(c, PM_X86_EXC_NM, false, 0);
	if (ea & 15)
		x86_gp(c, 0);
	if (i->mnemonic == ZYDIS_MNEMONIC_FXSAVE || i->mnemonic == ZYDIS_MNEMONIC_FXSAVE64) {
		memset(img, 0, sizeof(img));
		memcpy(img + 0, &c->fcw, 2);
		memcpy(img + 2, &c->fsw, 2);
		img[4] = c->ftwx;
		memcpy(img + 6, &c->fop, 2);
		memcpy(img + 8, &c->fip, 8);
		memcpy(img + 16, &c->fdp, 8);
		memcpy(img + 24, &c->mxcsr, 4);
		memcpy(img + 28, &mxcsr_mask, 4);
		for (int k = 0; k < 8; k++)
			memcpy(img + 32 + 16 * k, c->fpr[k], 16);
		for (int k = 0; k < 16; k++)
			memcpy(img + 160 + 16 * k, c->xmm[k].b, 16);
		x86_write_buf(c, ea, img, 512, acc_user(c));
		return;
	}
	x86_read_buf(c, ea, img, 512, acc_user(c));
	{
		uint32_t mxcsr;

		memcpy(&mxcsr, img + 24, 4);
		if (mxcsr & ~0xffffu)
			x86_gp(c, 0);
		c->mxcsr = mxcsr;
	}
	memcpy(&c->fcw, img + 0, 2);
	memcpy(&c->fsw, img + 2, 2);
	c->ftwx = img[4];
	memcpy(&c->fop, img + 6, 2);
	memcpy(&c->fip, img + 8, 8);
	memcpy(&c->fdp, img + 16, 8);
	for (int k = 0; k < 8; k++)
		memcpy(c->fpr[k], img + 32 + 16 * k, 16);
	for (int k = 0; k < 16; k++)
		memcpy(c->xmm[k].b, img + 160 + 16 * k, 16);
}

static void ud(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	(void)i;
	x86_ud(c);
}

x86_exec_fn x86_select_sys(struct x86_insn *i)
{
	x86_exec_fn fn;
	bool ends = true;

	switch (i->mnemonic) {
	case ZYDIS_MNEMONIC_CPUID: fn = cpuid; ends = false; break;
	case ZYDIS_MNEMONIC_RDTSC: case ZYDIS_MNEMONIC_RDTSCP: fn = rdtsc; ends = false; break;
	case ZYDIS_MNEMONIC_RDPID: fn = rdpid; ends = false; break;
	case ZYDIS_MNEMONIC_RDMSR: fn = rdmsr; ends = false; break;
	case ZYDIS_MNEMONIC_WRMSR: fn = wrmsr; break;
	case ZYDIS_MNEMONIC_MOV:
		if (i->op[0].kind == OP_CR || i->op[1].kind == OP_CR)
			fn = mov_cr;
		else if (i->op[0].kind == OP_DR || i->op[1].kind == OP_DR)
			fn = mov_dr;
		else if (i->op[0].kind == OP_SEG || i->op[1].kind == OP_SEG)
			fn = mov_seg;
		else
			return NULL;
		break;
	case ZYDIS_MNEMONIC_LGDT: case ZYDIS_MNEMONIC_LIDT: case ZYDIS_MNEMONIC_SGDT:
	case ZYDIS_MNEMONIC_SIDT:
		fn = dtable;
		break;
	case ZYDIS_MNEMONIC_LLDT: case ZYDIS_MNEMONIC_LTR: fn = lldt_ltr; break;
	case ZYDIS_MNEMONIC_SLDT: case ZYDIS_MNEMONIC_STR: fn = sldt_str; ends = false; break;
	case ZYDIS_MNEMONIC_INVLPG: fn = invlpg; break;
	case ZYDIS_MNEMONIC_WBINVD: case ZYDIS_MNEMONIC_INVD: fn = priv_nop; ends = false; break;
	case ZYDIS_MNEMONIC_CLFLUSH: fn = clflush; ends = false; break;
	case ZYDIS_MNEMONIC_MFENCE: case ZYDIS_MNEMONIC_LFENCE: case ZYDIS_MNEMONIC_SFENCE:
		fn = fence;
		ends = false;
		break;
	case ZYDIS_MNEMONIC_IN: case ZYDIS_MNEMONIC_OUT: fn = io; break;
	case ZYDIS_MNEMONIC_HLT: fn = hlt; break;
	case ZYDIS_MNEMONIC_INT: case ZYDIS_MNEMONIC_INT3: case ZYDIS_MNEMONIC_INT1:
		fn = soft_int;
		break;
	case ZYDIS_MNEMONIC_UD0: case ZYDIS_MNEMONIC_UD1: case ZYDIS_MNEMONIC_UD2: fn = ud; break;
	case ZYDIS_MNEMONIC_IRETQ: case ZYDIS_MNEMONIC_IRETD: fn = iret; break;
	case ZYDIS_MNEMONIC_SYSCALL: fn = syscall_insn; break;
	case ZYDIS_MNEMONIC_SYSRET: fn = sysret_insn; break;
	case ZYDIS_MNEMONIC_VMCALL: case ZYDIS_MNEMONIC_VMMCALL: fn = hypercall; break;
	case ZYDIS_MNEMONIC_PVALIDATE: fn = pvalidate; break;
	case ZYDIS_MNEMONIC_TDCALL: fn = tdcall; break;
	case ZYDIS_MNEMONIC_SWAPGS: fn = swapgs; break;
	case ZYDIS_MNEMONIC_RDFSBASE: case ZYDIS_MNEMONIC_RDGSBASE: case ZYDIS_MNEMONIC_WRFSBASE:
	case ZYDIS_MNEMONIC_WRGSBASE:
		fn = fsgsbase;
		ends = false;
		break;
	case ZYDIS_MNEMONIC_CLI: case ZYDIS_MNEMONIC_STI: fn = cli_sti; break;
	case ZYDIS_MNEMONIC_CLTS: fn = clts; break;
	case ZYDIS_MNEMONIC_LMSW: case ZYDIS_MNEMONIC_SMSW: fn = msw; break;
	case ZYDIS_MNEMONIC_FXSAVE: case ZYDIS_MNEMONIC_FXSAVE64: case ZYDIS_MNEMONIC_FXRSTOR:
	case ZYDIS_MNEMONIC_FXRSTOR64:
		fn = fxsave;
		ends = false;
		break;
	default:
		return NULL;
	}
	if (ends)
		i->flags |= IF_ENDS;
	return fn;
}

/* SPDX-License-Identifier: MIT */
/*
 * Exceptions and privilege changes: delivery through the 64-bit IDT
 * (interrupt and trap gates, IST, the stack switch through the TSS's RSPn
 * on a change to a more privileged level, error codes), IRET, SYSCALL and
 * SYSRET, and the descriptor-table reads they need.
 *
 * Delivery runs from the run loop. A fault while delivering comes back
 * there through the same longjmp as any fault, with `delivering` still
 * naming the first event: the pair is combined as the SDM's table says
 * (combine(): a contributory fault during a contributory fault, or a #PF or
 * contributory fault during a #PF, is #DF; other pairs are delivered one
 * after the other), and any fault while delivering #DF is a triple fault,
 * the embedder's shutdown.
 */
#include "vcpu/x86/internal.h"

static bool contributory(int v)
{
	return v == PM_X86_EXC_DE || (v >= PM_X86_EXC_TS && v <= PM_X86_EXC_GP);
}

void x86_read_descriptor(struct pm_x86_cpu *c, uint16_t sel, uint64_t d[2], bool system)
{
	uint64_t base, limit, off = (uint64_t)(sel & ~7u);

	if (sel & 4) {
		if (c->ldtr.unusable || !c->ldtr.present)
			x86_gp(c, sel & ~3u);
		base = c->ldtr.base;
		limit = c->ldtr.limit;
	} else {
		base = c->gdtr.base;
		limit = c->gdtr.limit;
	}
	if (off + (system ? 15 : 7) > limit)
		x86_gp(c, sel & ~3u);
	d[0] = sys_read(c, base + off, 8);
	d[1] = system ? sys_read(c, base + off + 8, 8) : 0;
}

void x86_desc_to_seg(const uint64_t d[2], uint16_t sel, struct pm_x86_seg *s)
{
	uint64_t lo = d[0];

	memset(s, 0, sizeof(*s));
	s->selector = sel;
	s->base = ((lo >> 16) & 0xffffff) | (((lo >> 56) & 0xff) << 24);
	s->limit = (uint32_t)((lo & 0xffff) | (((lo >> 48) & 0xf) << 16));
	s->type = (lo >> 40) & 0xf;
	s->s = (lo >> 44) & 1;
	s->dpl = (lo >> 45) & 3;
	s->present = (lo >> 47) & 1;
	s->avl = (lo >> 52) & 1;
	s->l = (lo >> 53) & 1;
	s->db = (lo >> 54) & 1;
	s->g = (lo >> 55) & 1;
	if (s->g)
		s->limit = (s->limit << 12) | 0xfff;
	if (!s->s)
		s->base |= (d[1] & 0xffffffffULL) << 32;
}

/* The hidden part of SS after an interrupt or SYSCALL into `cpl`: a null
 * selector whose RPL is the new CPL (64-bit mode allows it). */
static void load_null_ss(struct pm_x86_cpu *c, unsigned int cpl)
{
	struct pm_x86_seg *ss = &c->seg[PM_X86_SS];

	memset(ss, 0, sizeof(*ss));
	ss->selector = (uint16_t)cpl;
	ss->type = 3;
	ss->s = 1;
	ss->present = 1;
	ss->dpl = (uint8_t)cpl;
	ss->db = 1;
	ss->g = 1;
	ss->limit = 0xffffffff;
}

static void flat_seg(struct pm_x86_seg *s, uint16_t sel, unsigned int dpl, bool code)
{
	memset(s, 0, sizeof(*s));
	s->selector = sel;
	s->limit = 0xffffffff;
	s->g = 1;
	s->s = 1;
	s->present = 1;
	s->dpl = (uint8_t)dpl;
	if (code) {
		s->type = 0xb;
		s->l = 1;
	} else {
		s->type = 3;
		s->db = 1;
	}
}

/* A 64-bit code segment for sel, checked as a gate's or IRET's target. */
static void load_code_desc(struct pm_x86_cpu *c, uint16_t sel, struct pm_x86_seg *cs, bool ext)
{
	uint64_t d[2];

	if ((sel & ~3u) == 0)
		x86_gp(c, ext);
	x86_read_descriptor(c, sel, d, false);
	x86_desc_to_seg(d, sel, cs);
	if (!cs->s || !(cs->type & 8) || !cs->l || cs->db)
		x86_gp(c, (sel & ~3u) | ext);
	if (!cs->present)
		x86_raise(c, PM_X86_EXC_NP, true, (sel & ~3u) | ext);
}

static uint64_t tss_read(struct pm_x86_cpu *c, unsigned int off, uint32_t ext)
{
	if (!c->tr.present || c->tr.limit < off + 7)
		x86_raise(c, PM_X86_EXC_TS, true, (c->tr.selector & ~3u) | ext);
	return sys_read(c, c->tr.base + off, 8);
}

static void deliver(struct pm_x86_cpu *c, int vec, bool has_err, uint32_t err, uint64_t rip,
		    bool soft)
{
	uint32_t ext = soft ? 0 : 1, gate_err = (uint32_t)vec * 8 + 2 + ext;
	uint64_t lo, hi, target, rsp = c->gpr[PM_X86_RSP], frame[6];
	unsigned int type, ist, new_cpl, n = 0;
	struct pm_x86_seg cs;
	uint16_t sel;

	if ((uint64_t)vec * 16 + 15 > c->idtr.limit)
		x86_gp(c, gate_err);
	lo = sys_read(c, c->idtr.base + (uint64_t)vec * 16, 8);
	hi = sys_read(c, c->idtr.base + (uint64_t)vec * 16 + 8, 8);
	type = (lo >> 40) & 0xf;
	if (type != 0xe && type != 0xf)
		x86_gp(c, gate_err);
	if (soft && ((lo >> 45) & 3) < c->cpl)
		x86_gp(c, gate_err);
	if (!((lo >> 47) & 1))
		x86_raise(c, PM_X86_EXC_NP, true, gate_err);
	sel = (uint16_t)(lo >> 16);
	target = (lo & 0xffff) | (((lo >> 48) & 0xffff) << 16) | ((hi & 0xffffffffULL) << 32);
	ist = (lo >> 32) & 7;
	load_code_desc(c, sel, &cs, ext);
	new_cpl = (cs.type & 4) ? c->cpl : cs.dpl; /* conforming keeps CPL */
	if (new_cpl > c->cpl)
		x86_gp(c, (sel & ~3u) | ext);
	if (!is_canonical(target))
		x86_gp(c, ext);
	if (new_cpl < c->cpl)
		rsp = tss_read(c, 4 + 8 * new_cpl, ext);
	if (ist)
		rsp = tss_read(c, 0x24 + 8 * (ist - 1), ext);
	rsp &= ~0xfULL;

	/* The frame, lowest address first: [error], RIP, CS, RFLAGS, RSP, SS. */
	if (has_err)
		frame[n++] = err;
	frame[n++] = rip;
	frame[n++] = c->seg[PM_X86_CS].selector;
	frame[n++] = c->rflags;
	frame[n++] = c->gpr[PM_X86_RSP];
	frame[n++] = c->seg[PM_X86_SS].selector;
	rsp -= n * 8;
	x86_write_buf(c, rsp, frame, n * 8, new_cpl == 3 ? ACC_USER : 0);

	/* Commit. */
	if (new_cpl != c->cpl)
		load_null_ss(c, new_cpl);
	cs.selector = (uint16_t)((sel & ~3u) | new_cpl);
	c->seg[PM_X86_CS] = cs;
	c->cpl = new_cpl;
	c->gpr[PM_X86_RSP] = rsp;
	c->rip = target;
	c->rflags &= ~(PM_X86_TF | PM_X86_NT | PM_X86_RF | PM_X86_VM);
	if (type == 0xe)
		c->rflags &= ~PM_X86_IF;
}

/* The event to deliver when `second` is raised while delivering `first`;
 * -1 for a triple fault. */
static int combine(int first, int second)
{
	if (first == PM_X86_EXC_DF)
		return -1;
	if (contributory(first) && contributory(second))
		return PM_X86_EXC_DF;
	if (first == PM_X86_EXC_PF && (second == PM_X86_EXC_PF || contributory(second)))
		return PM_X86_EXC_DF;
	return second;
}

void x86_deliver_pending(struct pm_x86_cpu *c)
{
	int vec = c->pending_vector;
	bool has_err = c->pending_has_error, soft = c->pending_soft;
	uint32_t err = c->pending_error;
	uint64_t rip = c->pending_trap ? c->next_rip : c->rip;

	if (c->delivering >= 0) {
		int v = combine(c->delivering, vec);

		if (v < 0)
			x86_shutdown(c, PM_X86_SHUTDOWN_TRIPLE_FAULT);
		if (v == PM_X86_EXC_DF) {
			has_err = true;
			err = 0;
			soft = false;
			rip = c->rip;
		}
		vec = v;
	}
	c->pending_vector = -1;
	c->delivering = vec;
	c->halted = false;
	deliver(c, vec, has_err, err, rip, soft);
	c->delivering = -1;
}

/* ---- IRET ---- */
void x86_iret(struct pm_x86_cpu *c, unsigned int osz)
{
	uint64_t sp = c->gpr[PM_X86_RSP], rip, fl, rsp, mask;
	uint16_t cs_sel, ss_sel;
	unsigned int new_cpl;
	struct pm_x86_seg cs, ss;

	rip = mem_read(c, sp, osz);
	cs_sel = (uint16_t)mem_read(c, sp + osz, osz);
	fl = mem_read(c, sp + 2 * osz, osz);
	rsp = mem_read(c, sp + 3 * osz, osz);
	ss_sel = (uint16_t)mem_read(c, sp + 4 * osz, osz);
	if (osz == 4)
		fl = (c->rflags & ~0xffffffffULL) | fl;
	if (fl & PM_X86_NT)
		x86_gp(c, 0); /* task return: not in long mode */
	new_cpl = cs_sel & 3;
	if (new_cpl < c->cpl)
		x86_gp(c, cs_sel & ~3u);
	load_code_desc(c, cs_sel, &cs, 0);
	if (!(cs.type & 4) && cs.dpl != new_cpl)
		x86_gp(c, cs_sel & ~3u);
	if ((ss_sel & ~3u) == 0) {
		/* A null SS is allowed in 64-bit mode below CPL 3. */
		if (new_cpl == 3 || (ss_sel & 3) != new_cpl)
			x86_gp(c, 0);
		memset(&ss, 0, sizeof(ss));
		ss.selector = ss_sel;
		ss.type = 3;
		ss.s = 1;
		ss.present = 1;
		ss.dpl = (uint8_t)new_cpl;
		ss.db = 1;
		ss.g = 1;
		ss.limit = 0xffffffff;
	} else {
		uint64_t d[2];

		x86_read_descriptor(c, ss_sel, d, false);
		x86_desc_to_seg(d, ss_sel, &ss);
		if ((ss_sel & 3) != new_cpl || !ss.s || (ss.type & 8) || !(ss.type & 2) ||
		    ss.dpl != new_cpl)
			x86_gp(c, ss_sel & ~3u);
		if (!ss.present)
			x86_raise(c, PM_X86_EXC_SS, true, ss_sel & ~3u);
	}
	if (!is_canonical(rip))
		x86_gp(c, 0);

	mask = PM_X86_ARITH | PM_X86_TF | PM_X86_DF | PM_X86_NT | PM_X86_RF | PM_X86_AC_F |
	       PM_X86_ID;
	if (c->cpl == 0)
		mask |= PM_X86_IOPL | PM_X86_VIF | PM_X86_VIP | PM_X86_IF;
	else if (c->cpl <= ((c->rflags & PM_X86_IOPL) >> 12))
		mask |= PM_X86_IF;
	c->rflags = (c->rflags & ~mask) | (fl & mask) | 2;
	c->seg[PM_X86_CS] = cs;
	c->seg[PM_X86_SS] = ss;
	if (new_cpl > c->cpl) {
		/* Data segments the outer level may not use become null. */
		for (int s = PM_X86_ES; s <= PM_X86_DS; s += PM_X86_DS - PM_X86_ES) {
			struct pm_x86_seg *d = &c->seg[s];

			if (d->dpl < new_cpl && (!(d->type & 8) || !(d->type & 4))) {
				d->selector = 0;
				d->unusable = 1;
			}
		}
	}
	c->cpl = new_cpl;
	c->gpr[PM_X86_RSP] = rsp;
	c->next_rip = rip;
	c->end_block = true;
}

/* ---- SYSCALL / SYSRET ---- */
void x86_syscall(struct pm_x86_cpu *c)
{
	uint16_t sel = (uint16_t)(c->star >> 32) & ~3u;

	if (!(c->efer & PM_X86_EFER_SCE))
		x86_ud(c);
	c->gpr[PM_X86_RCX] = c->next_rip;
	c->gpr[PM_X86_R11] = c->rflags & ~PM_X86_RF;
	flat_seg(&c->seg[PM_X86_CS], sel, 0, true);
	flat_seg(&c->seg[PM_X86_SS], (uint16_t)(sel + 8), 0, false);
	c->cpl = 0;
	c->rflags = (c->rflags & ~c->sfmask & ~PM_X86_RF) | 2;
	c->next_rip = c->lstar;
	c->end_block = true;
}

void x86_sysret(struct pm_x86_cpu *c, unsigned int osz)
{
	uint16_t sel = (uint16_t)(c->star >> 48);

	if (!(c->efer & PM_X86_EFER_SCE))
		x86_ud(c);
	if (c->cpl != 0)
		x86_gp(c, 0);
	if (osz != 8) /* to compatibility mode: not implemented */
		x86_ud(c);
	if (!is_canonical(c->gpr[PM_X86_RCX]))
		x86_gp(c, 0);
	flat_seg(&c->seg[PM_X86_CS], (uint16_t)((sel + 16) | 3), 3, true);
	flat_seg(&c->seg[PM_X86_SS], (uint16_t)((sel + 8) | 3), 3, false);
	c->cpl = 3;
	c->rflags = (c->gpr[PM_X86_R11] & 0x3c7fd7ULL) | 2;
	c->next_rip = c->gpr[PM_X86_RCX];
	c->end_block = true;
}

/* A software interrupt (INT n, INT3, INT1): delivered after the
 * instruction, with the next RIP pushed. */
_Noreturn void x86_soft_int(struct pm_x86_cpu *c, int vector, bool check_dpl)
{
	c->pending_vector = vector;
	c->pending_has_error = false;
	c->pending_error = 0;
	c->pending_trap = true;
	c->pending_soft = check_dpl;
	x86_unwind(c);
}

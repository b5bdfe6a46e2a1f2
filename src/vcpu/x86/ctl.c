/* SPDX-License-Identifier: MIT */
/*
 * Control transfer and the stack: JMP, Jcc, CALL, RET (near and far
 * same-privilege), LOOP/LOOPE/LOOPNE, JRCXZ/JECXZ, PUSH, POP, ENTER,
 * LEAVE, PUSHF, POPF, far JMP/CALL through memory (m16:64/m16:32) to a
 * code segment of the same privilege (call gates and task switches are
 * #GP). Every one of them ends its block (IF_ENDS). A target that is not
 * canonical is #GP(0) at the branch, as on the hardware.
 */
#include <Zydis/Zydis.h>
#include "vcpu/x86/internal.h"

static inline void branch_to(struct pm_x86_cpu *c, uint64_t target)
{
	if (pm_unlikely(!is_canonical(target)))
		x86_gp(c, 0);
	c->next_rip = target;
}

static void jcc(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	if (cond_true(c->rflags, i->cond))
		c->next_rip = i->imm;
}

static void jmp_rel(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	c->next_rip = i->imm;
}

static void jmp_ind(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	branch_to(c, op_read(c, i, 0));
}

static void call_rel(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	push64(c, c->next_rip);
	c->next_rip = i->imm;
}

static void call_ind(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	uint64_t target = op_read(c, i, 0); /* before the push: it may use RSP */

	if (!is_canonical(target))
		x86_gp(c, 0);
	push64(c, c->next_rip);
	c->next_rip = target;
}

static void ret(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	uint64_t target = mem_read(c, c->gpr[PM_X86_RSP], 8);

	if (!is_canonical(target))
		x86_gp(c, 0);
	c->gpr[PM_X86_RSP] += 8 + (i->nops ? (i->imm & 0xffff) : 0);
	c->next_rip = target;
}

/* RETF to the same privilege level (how 64-bit code reloads CS). */
static void retf(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	unsigned int osz = i->osz;
	uint64_t sp = c->gpr[PM_X86_RSP], target = mem_read(c, sp, osz), d[2];
	uint16_t sel = (uint16_t)mem_read(c, sp + osz, osz);
	struct pm_x86_seg cs;

	if ((sel & 3) != c->cpl || (sel & ~3u) == 0)
		x86_gp(c, sel & ~3u);
	x86_read_descriptor(c, sel, d, false);
	x86_desc_to_seg(d, sel, &cs);
	if (!cs.s || !(cs.type & 8) || !cs.l || cs.db || (!(cs.type & 4) && cs.dpl != c->cpl))
		x86_gp(c, sel & ~3u);
	if (!cs.present)
		x86_raise(c, PM_X86_EXC_NP, true, sel & ~3u);
	if (!is_canonical(target))
		x86_gp(c, 0);
	c->seg[PM_X86_CS] = cs;
	c->gpr[PM_X86_RSP] = sp + 2 * osz + (i->nops ? (i->imm & 0xffff) : 0);
	c->next_rip = target;
}

/* The 64-bit code segment a far transfer to sel at CPL lands in. */
static void far_target(struct pm_x86_cpu *c, uint16_t sel, struct pm_x86_seg *cs)
{
	uint64_t d[2];

	if ((sel & ~3u) == 0)
		x86_gp(c, 0);
	x86_read_descriptor(c, sel, d, false);
	x86_desc_to_seg(d, sel, cs);
	if (!cs->s || !(cs->type & 8) || !cs->l || cs->db)
		x86_gp(c, sel & ~3u);
	if ((cs->type & 4) ? cs->dpl > c->cpl : (cs->dpl != c->cpl || (sel & 3) > c->cpl))
		x86_gp(c, sel & ~3u);
	if (!cs->present)
		x86_raise(c, PM_X86_EXC_NP, true, sel & ~3u);
	cs->selector = (uint16_t)((sel & ~3u) | c->cpl);
}

/* JMP/CALL m16:64 (REX.W) or m16:32: the offset, then the selector. */
static void far_jmp_call(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	unsigned int osz = i->osz == 8 ? 8 : 4;
	uint64_t ea = insn_ea(c, i), target = mem_read(c, ea, osz), sp;
	uint16_t sel = (uint16_t)mem_read(c, ea + osz, 2);
	struct pm_x86_seg cs;

	far_target(c, sel, &cs);
	if (!is_canonical(target))
		x86_gp(c, 0);
	if (i->mnemonic == ZYDIS_MNEMONIC_CALL) {
		sp = c->gpr[PM_X86_RSP] - 2 * osz;
		mem_write(c, sp + osz, osz, c->seg[PM_X86_CS].selector);
		mem_write(c, sp, osz, c->next_rip);
		c->gpr[PM_X86_RSP] = sp;
	}
	c->seg[PM_X86_CS] = cs;
	c->next_rip = target;
}

static uint64_t count_reg(const struct pm_x86_cpu *c, const struct x86_insn *i)
{
	return i->asz == 4 ? (uint32_t)c->gpr[PM_X86_RCX] : c->gpr[PM_X86_RCX];
}

static void loop(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	uint64_t n = count_reg(c, i) - 1;
	bool take = n != 0;

	reg_write(c, PM_X86_RCX, i->asz, n);
	if (i->mnemonic == ZYDIS_MNEMONIC_LOOPE)
		take = take && (c->rflags & PM_X86_ZF);
	else if (i->mnemonic == ZYDIS_MNEMONIC_LOOPNE)
		take = take && !(c->rflags & PM_X86_ZF);
	if (take)
		c->next_rip = i->imm;
}

static void jrcxz(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	if (count_reg(c, i) == 0)
		c->next_rip = i->imm;
}

/* ---- the stack ---- */
static void push(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	unsigned int osz = i->osz;
	uint64_t v, sp;

	if (i->op[0].kind == OP_SEG)
		v = c->seg[i->op[0].reg].selector;
	else
		v = op_read(c, i, 0);
	sp = c->gpr[PM_X86_RSP] - osz;
	mem_write(c, sp, osz, v);
	c->gpr[PM_X86_RSP] = sp;
}

static void pop(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	unsigned int osz = i->osz;
	uint64_t old = c->gpr[PM_X86_RSP], v = mem_read(c, old, osz);

	if (i->op[0].kind == OP_SEG) {
		x86_load_seg(c, i->op[0].reg, (uint16_t)v);
		c->gpr[PM_X86_RSP] = old + osz;
		return;
	}
	if (i->op[0].kind == OP_MEM) {
		/* The address is computed with RSP already incremented. */
		uint64_t ea;

		c->gpr[PM_X86_RSP] = old + osz;
		ea = insn_ea(c, i);
		c->gpr[PM_X86_RSP] = old;
		mem_write(c, ea, osz, v);
		c->gpr[PM_X86_RSP] = old + osz;
		return;
	}
	c->gpr[PM_X86_RSP] = old + osz;
	reg_write(c, i->op[0].reg, osz, v); /* POP RSP: the value wins */
}

static void leave(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	uint64_t v = mem_read(c, c->gpr[PM_X86_RBP], i->osz);

	c->gpr[PM_X86_RSP] = c->gpr[PM_X86_RBP] + i->osz;
	reg_write(c, PM_X86_RBP, i->osz, v);
}

static void enter(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	unsigned int level = i->imm2 & 31, osz = i->osz;
	uint64_t size = i->imm & 0xffff, sp = c->gpr[PM_X86_RSP], bp = c->gpr[PM_X86_RBP], frame;

	/* Check the whole new frame is writable before changing anything. */
	sp -= osz;
	mem_write(c, sp, osz, bp);
	frame = sp;
	for (unsigned int k = 1; k < level; k++) {
		bp -= osz;
		sp -= osz;
		mem_write(c, sp, osz, mem_read(c, bp, osz));
	}
	if (level > 0) {
		sp -= osz;
		mem_write(c, sp, osz, frame);
	}
	sp -= size;
	if (size)
		mem_write(c, sp, 1, mem_read(c, sp, 1)); /* the frame's bottom is writable */
	reg_write(c, PM_X86_RBP, osz, frame);
	c->gpr[PM_X86_RSP] = sp;
}

static void pushf(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	uint64_t sp = c->gpr[PM_X86_RSP] - i->osz;

	mem_write(c, sp, i->osz, c->rflags & ~(PM_X86_VM | PM_X86_RF));
	c->gpr[PM_X86_RSP] = sp;
}

static void popf(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	uint64_t v = mem_read(c, c->gpr[PM_X86_RSP], i->osz);
	uint64_t mask = PM_X86_ARITH | PM_X86_TF | PM_X86_DF | PM_X86_NT | PM_X86_AC_F | PM_X86_ID;
	unsigned int iopl = (c->rflags & PM_X86_IOPL) >> 12;

	if (c->cpl == 0)
		mask |= PM_X86_IOPL | PM_X86_IF;
	else if (c->cpl <= iopl)
		mask |= PM_X86_IF;
	if (i->osz == 2)
		mask &= 0xffff;
	c->gpr[PM_X86_RSP] += i->osz;
	c->rflags = (c->rflags & ~mask) | (v & mask) | 2;
	c->end_block = true;
}

x86_exec_fn x86_select_ctl(struct x86_insn *i)
{
	x86_exec_fn fn = NULL;

	switch (i->mnemonic) {
	case ZYDIS_MNEMONIC_JMP:
		if (i->flags & IF_FAR) {
			if (i->op[0].kind == OP_MEM)
				fn = far_jmp_call;
			break;
		}
		if (i->op[0].kind == OP_IMM)
			fn = jmp_rel;
		else if (i->op[0].kind == OP_REG || (i->op[0].kind == OP_MEM && i->op[0].size == 8))
			fn = jmp_ind;
		break;
	case ZYDIS_MNEMONIC_CALL:
		if (i->flags & IF_FAR) {
			if (i->op[0].kind == OP_MEM)
				fn = far_jmp_call;
			break;
		}
		if (i->op[0].kind == OP_IMM)
			fn = call_rel;
		else if (i->op[0].kind == OP_REG || (i->op[0].kind == OP_MEM && i->op[0].size == 8))
			fn = call_ind;
		break;
	case ZYDIS_MNEMONIC_RET: fn = (i->flags & IF_FAR) ? retf : ret; break;
	case ZYDIS_MNEMONIC_LOOP: case ZYDIS_MNEMONIC_LOOPE: case ZYDIS_MNEMONIC_LOOPNE:
		fn = loop;
		break;
	case ZYDIS_MNEMONIC_JRCXZ: case ZYDIS_MNEMONIC_JECXZ: fn = jrcxz; break;
	case ZYDIS_MNEMONIC_PUSH:
		if (i->op[0].kind != OP_SEG || i->op[0].reg >= PM_X86_FS)
			return push;
		return NULL; /* PUSH ES/CS/SS/DS are invalid in 64-bit mode */
	case ZYDIS_MNEMONIC_POP:
		if (i->op[0].kind != OP_SEG)
			return pop;
		if (i->op[0].reg >= PM_X86_FS) {
			i->flags |= IF_ENDS;
			return pop;
		}
		return NULL;
	case ZYDIS_MNEMONIC_LEAVE: return leave;
	case ZYDIS_MNEMONIC_ENTER: return enter;
	case ZYDIS_MNEMONIC_PUSHF: case ZYDIS_MNEMONIC_PUSHFQ: return pushf;
	case ZYDIS_MNEMONIC_POPF: case ZYDIS_MNEMONIC_POPFQ: fn = popf; break;
	default:
		if (i->cond != COND_NONE && i->nops == 1 && i->op[0].kind == OP_IMM &&
		    ZydisMnemonicGetString((ZydisMnemonic)i->mnemonic)[0] == 'j')
			fn = jcc;
		break;
	}
	if (fn)
		i->flags |= IF_ENDS;
	return fn;
}


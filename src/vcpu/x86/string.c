/* SPDX-License-Identifier: MIT */
/*
 * String instructions: MOVS, STOS, LODS, CMPS, SCAS, INS, OUTS, with
 * REP/REPE/REPNE, DF, 32- or 64-bit addressing, and an FS/GS override of
 * the source.
 *
 * Each iteration commits (RSI, RDI, RCX updated) before the next, so a
 * fault in the middle leaves the registers where the hardware would. A REP
 * instruction runs at most REP_CHUNK bytes per execution and then
 * re-executes itself (RIP unchanged, block ended) so that polls, stop
 * requests and the budget are honoured during a long REP. Forward REP
 * STOS and REP MOVS (without overlap) work a page at a time on the host
 * pages, forward REP INS/OUTS pass a page's worth of items to one hook
 * call; everything else goes element by element.
 */
#include <Zydis/Zydis.h>
#include "vcpu/x86/internal.h"

#define REP_CHUNK (64u << 10)

static uint64_t areg(const struct pm_x86_cpu *c, const struct x86_insn *i, int r)
{
	return i->asz == 4 ? (uint32_t)c->gpr[r] : c->gpr[r];
}

static void set_areg(struct pm_x86_cpu *c, const struct x86_insn *i, int r, uint64_t v)
{
	reg_write(c, (unsigned int)r, i->asz, v);
}

static uint64_t src_addr(const struct pm_x86_cpu *c, const struct x86_insn *i)
{
	uint64_t a = areg(c, i, PM_X86_RSI);

	if (i->flags & (IF_SEGFS | IF_SEGGS))
		a += c->seg[(i->flags & IF_SEGFS) ? PM_X86_FS : PM_X86_GS].base;
	return a;
}

static unsigned int elem_size(const struct x86_insn *i)
{
	switch (i->mnemonic) {
	case ZYDIS_MNEMONIC_MOVSB: case ZYDIS_MNEMONIC_STOSB: case ZYDIS_MNEMONIC_LODSB:
	case ZYDIS_MNEMONIC_CMPSB: case ZYDIS_MNEMONIC_SCASB: case ZYDIS_MNEMONIC_INSB:
	case ZYDIS_MNEMONIC_OUTSB:
		return 1;
	case ZYDIS_MNEMONIC_MOVSW: case ZYDIS_MNEMONIC_STOSW: case ZYDIS_MNEMONIC_LODSW:
	case ZYDIS_MNEMONIC_CMPSW: case ZYDIS_MNEMONIC_SCASW: case ZYDIS_MNEMONIC_INSW:
	case ZYDIS_MNEMONIC_OUTSW:
		return 2;
	case ZYDIS_MNEMONIC_MOVSQ: case ZYDIS_MNEMONIC_STOSQ: case ZYDIS_MNEMONIC_LODSQ:
	case ZYDIS_MNEMONIC_CMPSQ: case ZYDIS_MNEMONIC_SCASQ:
		return 8;
	default:
		return 4;
	}
}

enum { S_MOVS, S_STOS, S_LODS, S_CMPS, S_SCAS, S_INS, S_OUTS };

static bool port_allowed(const struct pm_x86_cpu *c)
{
	/* No I/O permission bitmap: CPL above IOPL is refused outright. */
	return c->cpl <= ((c->rflags & PM_X86_IOPL) >> 12);
}

/* One element; returns false when REPE/REPNE stops. */
static bool string_one(struct pm_x86_cpu *c, const struct x86_insn *i, unsigned int sz,
		       int kind)
{
	int64_t step = (c->rflags & PM_X86_DF) ? -(int64_t)sz : (int64_t)sz;
	uint64_t v, w, fl;

	switch (kind) {
	case S_MOVS:
		v = mem_read(c, src_addr(c, i), sz);
		mem_write(c, areg(c, i, PM_X86_RDI), sz, v);
		set_areg(c, i, PM_X86_RSI, areg(c, i, PM_X86_RSI) + (uint64_t)step);
		set_areg(c, i, PM_X86_RDI, areg(c, i, PM_X86_RDI) + (uint64_t)step);
		return true;
	case S_STOS:
		mem_write(c, areg(c, i, PM_X86_RDI), sz, c->gpr[PM_X86_RAX]);
		set_areg(c, i, PM_X86_RDI, areg(c, i, PM_X86_RDI) + (uint64_t)step);
		return true;
	case S_LODS:
		v = mem_read(c, src_addr(c, i), sz);
		reg_write(c, PM_X86_RAX, sz, v);
		set_areg(c, i, PM_X86_RSI, areg(c, i, PM_X86_RSI) + (uint64_t)step);
		return true;
	case S_CMPS:
		v = mem_read(c, src_addr(c, i), sz);
		w = mem_read(c, areg(c, i, PM_X86_RDI), sz);
		fl = flags_sub(v, w, v - w, 0, sz);
		set_areg(c, i, PM_X86_RSI, areg(c, i, PM_X86_RSI) + (uint64_t)step);
		set_areg(c, i, PM_X86_RDI, areg(c, i, PM_X86_RDI) + (uint64_t)step);
		flags_set(c, PM_X86_ARITH, fl);
		break;
	case S_SCAS:
		v = reg_read(c, PM_X86_RAX, sz);
		w = mem_read(c, areg(c, i, PM_X86_RDI), sz);
		fl = flags_sub(v, w, v - w, 0, sz);
		set_areg(c, i, PM_X86_RDI, areg(c, i, PM_X86_RDI) + (uint64_t)step);
		flags_set(c, PM_X86_ARITH, fl);
		break;
	case S_INS: {
		uint64_t rip = c->rip, d = areg(c, i, PM_X86_RDI);
		uint32_t data = 0xffffffffu;

		/* Check the destination first: the port is read once. */
		mem_write(c, d, sz, mem_read(c, d, sz));
		if (c->ops->pio_in) {
			c->ops->pio_in(c->env, (uint16_t)c->gpr[PM_X86_RDX], sz, 1, &data);
			x86_after_hook(c, rip);
		}
		mem_write(c, d, sz, data);
		set_areg(c, i, PM_X86_RDI, d + (uint64_t)step);
		return true;
	}
	default: { /* OUTS */
		uint64_t rip = c->rip;
		uint32_t data = (uint32_t)mem_read(c, src_addr(c, i), sz);

		set_areg(c, i, PM_X86_RSI, areg(c, i, PM_X86_RSI) + (uint64_t)step);
		if (c->ops->pio_out) {
			c->ops->pio_out(c->env, (uint16_t)c->gpr[PM_X86_RDX], sz, 1, &data);
			x86_after_hook(c, rip);
		}
		return true;
	}
	}
	if (i->flags & IF_REP)
		return c->rflags & PM_X86_ZF;
	if (i->flags & IF_REPNE)
		return !(c->rflags & PM_X86_ZF);
	return true;
}

/* Forward REP STOS / MOVS over whole host pages: returns the elements
 * done (0 when the fast path does not apply). */
static uint64_t string_bulk(struct pm_x86_cpu *c, const struct x86_insn *i, unsigned int sz,
			    int kind, uint64_t count)
{
	uint64_t d = areg(c, i, PM_X86_RDI), s = 0, dg, sg, n;
	unsigned int acc = acc_user(c);
	uint8_t *dh, *sh = NULL;

	if ((c->rflags & PM_X86_DF) || i->asz != 8)
		return 0;
	n = (4096 - (d & 0xfff)) / sz;
	if (kind == S_MOVS) {
		s = src_addr(c, i);
		n = PM_MIN(n, (4096 - (s & 0xfff)) / sz);
	}
	n = PM_MIN(n, count);
	if (n < 2)
		return 0;
	if (kind == S_MOVS) {
		sh = x86_translate(c, s, acc, &sg);
		if (!sh)
			return 0;
	}
	dh = x86_translate(c, d, acc | ACC_WRITE, &dg);
	if (!dh || x86_code_page_has_code(c, dg))
		return 0;
	if (kind == S_STOS) {
		uint64_t v = c->gpr[PM_X86_RAX];

		if (sz == 1) {
			memset(dh, (int)(v & 0xff), n);
		} else {
			for (uint64_t k = 0; k < n; k++)
				memcpy(dh + k * sz, &v, sz);
		}
	} else {
		/* A forward copy onto itself a little further on repeats a
		 * pattern, which memmove would not: go element by element. */
		if (dh > sh && dh < sh + n * sz)
			return 0;
		memmove(dh, sh, n * sz);
		set_areg(c, i, PM_X86_RSI, s + n * sz);
	}
	set_areg(c, i, PM_X86_RDI, d + n * sz);
	return n;
}

/* Forward REP INS/OUTS: as many items as fit the page go to the hook in
 * one call (one exit for the embedder). Returns the items done, 0 when
 * the batch does not apply. The destination of INS is checked writable
 * before the port is read. A hook that lowers RCX (the VMM, during its
 * I/O exit) completes only that many of the items, as KVM's emulator
 * resumes the instruction with the count the VMM left. */
static uint64_t string_pio_batch(struct pm_x86_cpu *c, const struct x86_insn *i, unsigned int sz,
				 int kind, uint64_t count)
{
	bool in = kind == S_INS;
	uint64_t a = in ? areg(c, i, PM_X86_RDI) : src_addr(c, i), rip = c->rip, n;
	uint8_t buf[4096];

	if ((c->rflags & PM_X86_DF) || i->asz != 8 || (in ? !c->ops->pio_in : !c->ops->pio_out))
		return 0;
	n = PM_MIN(count, (4096 - (a & 0xfff)) / sz);
	if (n < 2)
		return 0;
	if (in) {
		if (!x86_locked_slow_prepare(c, a, (unsigned int)(n * sz)))
			return 0; /* MMIO destination: one item at a time */
		c->ops->pio_in(c->env, (uint16_t)c->gpr[PM_X86_RDX], sz, (unsigned int)n, buf);
		x86_after_hook(c, rip);
		n = PM_MIN(n, areg(c, i, PM_X86_RCX));
		x86_write_buf(c, a, buf, (unsigned int)(n * sz), acc_user(c));
		set_areg(c, i, PM_X86_RDI, a + n * sz);
	} else {
		x86_read_buf(c, a, buf, (unsigned int)(n * sz), acc_user(c));
		c->ops->pio_out(c->env, (uint16_t)c->gpr[PM_X86_RDX], sz, (unsigned int)n, buf);
		x86_after_hook(c, rip);
		n = PM_MIN(n, areg(c, i, PM_X86_RCX));
		set_areg(c, i, PM_X86_RSI, areg(c, i, PM_X86_RSI) + n * sz);
	}
	return n;
}

static void string_op(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	unsigned int sz = elem_size(i);
	int kind = i->imm2;
	uint64_t count, budget = REP_CHUNK / sz;

	if ((kind == S_INS || kind == S_OUTS) && !port_allowed(c))
		x86_gp(c, 0);
	if (!(i->flags & (IF_REP | IF_REPNE))) {
		string_one(c, i, sz, kind);
		return;
	}
	count = areg(c, i, PM_X86_RCX);
	while (count && budget) {
		uint64_t n = 0;
		bool more = true;

		if (kind == S_STOS || kind == S_MOVS)
			n = string_bulk(c, i, sz, kind, PM_MIN(count, budget));
		else if (kind == S_INS || kind == S_OUTS)
			n = string_pio_batch(c, i, sz, kind, PM_MIN(count, budget));
		if (!n) {
			more = string_one(c, i, sz, kind);
			n = 1;
		}
		/* A hook may have changed RCX (an I/O exit): the VMM's count
		 * goes on (KVM resumes with it; the batch completed at most
		 * that many items). */
		if (areg(c, i, PM_X86_RCX) != count)
			count = PM_MAX(areg(c, i, PM_X86_RCX), n);
		count -= n;
		budget -= PM_MIN(n, budget);
		set_areg(c, i, PM_X86_RCX, count);
		if (!more)
			return;
	}
	if (count) {
		/* Not finished: run this instruction again after a poll. */
		c->next_rip = c->rip;
		c->end_block = true;
	}
}

x86_exec_fn x86_select_string(struct x86_insn *i)
{
	switch (i->mnemonic) {
	case ZYDIS_MNEMONIC_MOVSB: case ZYDIS_MNEMONIC_MOVSW: case ZYDIS_MNEMONIC_MOVSQ:
		i->imm2 = S_MOVS;
		break;
	case ZYDIS_MNEMONIC_MOVSD:
		if (i->nops) /* SSE2's MOVSD xmm, xmm/m64 shares the name */
			return NULL;
		i->imm2 = S_MOVS;
		break;
	case ZYDIS_MNEMONIC_STOSB: case ZYDIS_MNEMONIC_STOSW: case ZYDIS_MNEMONIC_STOSD:
	case ZYDIS_MNEMONIC_STOSQ:
		i->imm2 = S_STOS;
		break;
	case ZYDIS_MNEMONIC_LODSB: case ZYDIS_MNEMONIC_LODSW: case ZYDIS_MNEMONIC_LODSD:
	case ZYDIS_MNEMONIC_LODSQ:
		i->imm2 = S_LODS;
		break;
	case ZYDIS_MNEMONIC_CMPSB: case ZYDIS_MNEMONIC_CMPSW: case ZYDIS_MNEMONIC_CMPSQ:
		i->imm2 = S_CMPS;
		break;
	case ZYDIS_MNEMONIC_CMPSD:
		if (i->nops) /* SSE2's CMPSD */
			return NULL;
		i->imm2 = S_CMPS;
		break;
	case ZYDIS_MNEMONIC_SCASB: case ZYDIS_MNEMONIC_SCASW: case ZYDIS_MNEMONIC_SCASD:
	case ZYDIS_MNEMONIC_SCASQ:
		i->imm2 = S_SCAS;
		break;
	case ZYDIS_MNEMONIC_INSB: case ZYDIS_MNEMONIC_INSW: case ZYDIS_MNEMONIC_INSD:
		i->imm2 = S_INS;
		break;
	case ZYDIS_MNEMONIC_OUTSB: case ZYDIS_MNEMONIC_OUTSW: case ZYDIS_MNEMONIC_OUTSD:
		i->imm2 = S_OUTS;
		break;
	default:
		return NULL;
	}
	/* Only CMPS and SCAS tell REPE from REPNE; for the others F2 is REP. */
	if (i->imm2 != S_CMPS && i->imm2 != S_SCAS && (i->flags & IF_REPNE))
		i->flags = (uint16_t)((i->flags & ~IF_REPNE) | IF_REP);
	return string_op;
}

/* SPDX-License-Identifier: MIT */
/*
 * SSE: the data movement and integer instructions of SSE, SSE2, SSE3,
 * SSSE3 and SSE4.1 (the ones gcc emits for integer code: MOVAPS in varargs
 * prologues, PXOR, MOVD/MOVQ, PINSRQ, PMAXSD, PCMPEQB/PMOVMSKB, PSHUFD,
 * PUNPCK*, PSHUFB...), bitwise logic on packed floats (ANDPS, XORPS...),
 * shuffles, blends, PTEST, LDMXCSR/STMXCSR.
 *
 * Floating-point arithmetic, comparison and conversion are in sse_fp.c.
 * Not implemented (#UD): SSE4.2, AES, PCLMULQDQ, MMX registers.
 *
 * Legacy SSE rules: CR4.OSFXSR clear or CR0.EM set is #UD, CR0.TS is #NM,
 * and a 16-byte memory operand must be 16-byte aligned (#GP(0)) except
 * for the unaligned moves (MOVUPS, MOVDQU, LDDQU...).
 */
#include <Zydis/Zydis.h>
#include "vcpu/x86/internal.h"

typedef union pm_x86_xmm vec;

static void sse_check(struct pm_x86_cpu *c)
{
	if (!(c->cr4 & PM_X86_CR4_OSFXSR) || (c->cr0 & PM_X86_CR0_EM))
		x86_ud(c);
	if (c->cr0 & PM_X86_CR0_TS)
		x86_raise(c, PM_X86_EXC_NM, false, 0);
}

static bool unaligned_ok(uint16_t m)
{
	return m == ZYDIS_MNEMONIC_MOVUPS || m == ZYDIS_MNEMONIC_MOVUPD ||
	       m == ZYDIS_MNEMONIC_MOVDQU || m == ZYDIS_MNEMONIC_LDDQU;
}

/* Operand n as a vector: an XMM register, memory (its size; zero-filled
 * above it) or a GPR (MOVD/MOVQ, PINSR*). */
static void vec_read(struct pm_x86_cpu *c, const struct x86_insn *i, unsigned int n, vec *v)
{
	const struct x86_op *o = &i->op[n];

	memset(v, 0, sizeof(*v));
	switch (o->kind) {
	case OP_XMM:
		*v = c->xmm[o->reg];
		return;
	case OP_REG:
		v->q[0] = reg_read(c, o->reg, o->size);
		return;
	case OP_MEM: {
		uint64_t ea = insn_ea(c, i);

		if (o->size == 16 && (ea & 15) && !unaligned_ok(i->mnemonic))
			x86_gp(c, 0);
		if (o->size <= 8)
			v->q[0] = mem_read(c, ea, o->size);
		else
			x86_read_buf(c, ea, v->b, o->size, acc_user(c));
		return;
	}
	default:
		x86_ud(c);
	}
}

/* Store the low `size` bytes of v to operand n (an XMM register takes all
 * 16 bytes; a GPR is zero-extended by reg_write's rules). */
static void vec_write(struct pm_x86_cpu *c, const struct x86_insn *i, unsigned int n,
		      const vec *v)
{
	const struct x86_op *o = &i->op[n];

	switch (o->kind) {
	case OP_XMM:
		c->xmm[o->reg] = *v;
		return;
	case OP_REG:
		reg_write(c, o->reg, o->size, v->q[0]);
		return;
	case OP_MEM: {
		uint64_t ea = insn_ea(c, i);

		if (o->size == 16 && (ea & 15) && !unaligned_ok(i->mnemonic))
			x86_gp(c, 0);
		if (o->size <= 8)
			mem_write(c, ea, o->size, v->q[0]);
		else
			x86_write_buf(c, ea, v->b, o->size, acc_user(c));
		return;
	}
	default:
		x86_ud(c);
	}
}

/* ---- moves ---- */
static void mov_full(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	vec v;

	sse_check(c);
	vec_read(c, i, 1, &v);
	vec_write(c, i, 0, &v);
}

/* MOVD/MOVQ: to an XMM register the rest is zeroed; MOVQ xmm, xmm too. */
static void movdq(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	vec v;

	sse_check(c);
	vec_read(c, i, 1, &v);
	if (i->op[0].kind == OP_XMM) {
		unsigned int sz = i->op[1].kind == OP_XMM ? 8 : i->op[1].size;

		if (sz == 4)
			v.q[0] &= 0xffffffffULL;
		v.q[1] = 0;
		c->xmm[i->op[0].reg] = v;
	} else {
		vec_write(c, i, 0, &v);
	}
}

/* MOVSS/MOVSD (scalar): register to register merges the low element;
 * a load zeroes the rest; a store writes the element. */
static void movs_scalar(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	unsigned int es = i->mnemonic == ZYDIS_MNEMONIC_MOVSS ? 4 : 8;
	vec v, d;

	sse_check(c);
	vec_read(c, i, 1, &v);
	if (i->op[0].kind == OP_XMM && i->op[1].kind == OP_XMM) {
		d = c->xmm[i->op[0].reg];
		memcpy(d.b, v.b, es);
		c->xmm[i->op[0].reg] = d;
	} else {
		vec_write(c, i, 0, &v); /* loads zero-fill in vec_read */
	}
}

/* MOVLPS/MOVLPD/MOVHPS/MOVHPD/MOVHLPS/MOVLHPS: 8-byte halves. */
static void mov_half(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	bool high = i->mnemonic == ZYDIS_MNEMONIC_MOVHPS || i->mnemonic == ZYDIS_MNEMONIC_MOVHPD;
	vec v;

	sse_check(c);
	vec_read(c, i, 1, &v);
	if (i->mnemonic == ZYDIS_MNEMONIC_MOVHLPS) {
		c->xmm[i->op[0].reg].q[0] = v.q[1];
	} else if (i->mnemonic == ZYDIS_MNEMONIC_MOVLHPS) {
		c->xmm[i->op[0].reg].q[1] = v.q[0];
	} else if (i->op[0].kind == OP_XMM) {
		c->xmm[i->op[0].reg].q[high] = v.q[0];
	} else {
		vec w;

		memset(&w, 0, sizeof(w));
		w.q[0] = v.q[high];
		vec_write(c, i, 0, &w);
	}
}

static void movnti(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	mem_write(c, insn_ea(c, i), i->op[0].size, reg_read(c, i->op[1].reg, i->op[0].size));
}

static void mxcsr_op(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	uint64_t ea = insn_ea(c, i);

	sse_check(c);
	if (i->mnemonic == ZYDIS_MNEMONIC_STMXCSR) {
		mem_write(c, ea, 4, c->mxcsr);
	} else {
		uint32_t v = (uint32_t)mem_read(c, ea, 4);

		if (v & ~0xffffu)
			x86_gp(c, 0);
		c->mxcsr = v;
	}
}

/* ---- lane helpers ---- */
static int64_t sat(int64_t v, int64_t lo, int64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

static void shift_lanes(vec *d, unsigned int es, uint64_t cnt, int kind)
{
	unsigned int bits = es * 8, n = 16 / es;

	for (unsigned int k = 0; k < n; k++) {
		uint64_t x = 0;
		int64_t s;

		memcpy(&x, d->b + k * es, es);
		switch (kind) {
		case 0: x = cnt >= bits ? 0 : x << cnt; break;          /* left */
		case 1: x = cnt >= bits ? 0 : x >> cnt; break;          /* logical right */
		default:                                                 /* arithmetic right */
			s = (int64_t)sext(x, es);
			x = (uint64_t)(s >> (cnt >= bits ? bits - 1 : cnt));
			break;
		}
		memcpy(d->b + k * es, &x, es);
	}
}

/* The packed integer, logic, shuffle and insert/extract operations: op0
 * is the destination (and first source), op1 the source, imm the third. */
static void packed(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	vec a, b, r;
	uint8_t imm = (uint8_t)i->imm;
	unsigned int k;

	sse_check(c);
	if (i->op[0].kind == OP_XMM)
		a = c->xmm[i->op[0].reg];
	else
		memset(&a, 0, sizeof(a));
	if (i->op[1].kind == OP_IMM)
		memset(&b, 0, sizeof(b)); /* shifts by an immediate */
	else
		vec_read(c, i, 1, &b);
	r = a;

	switch (i->mnemonic) {
	/* logic */
	case ZYDIS_MNEMONIC_PAND: case ZYDIS_MNEMONIC_ANDPS: case ZYDIS_MNEMONIC_ANDPD:
		r.q[0] = a.q[0] & b.q[0]; r.q[1] = a.q[1] & b.q[1]; break;
	case ZYDIS_MNEMONIC_PANDN: case ZYDIS_MNEMONIC_ANDNPS: case ZYDIS_MNEMONIC_ANDNPD:
		r.q[0] = ~a.q[0] & b.q[0]; r.q[1] = ~a.q[1] & b.q[1]; break;
	case ZYDIS_MNEMONIC_POR: case ZYDIS_MNEMONIC_ORPS: case ZYDIS_MNEMONIC_ORPD:
		r.q[0] = a.q[0] | b.q[0]; r.q[1] = a.q[1] | b.q[1]; break;
	case ZYDIS_MNEMONIC_PXOR: case ZYDIS_MNEMONIC_XORPS: case ZYDIS_MNEMONIC_XORPD:
		r.q[0] = a.q[0] ^ b.q[0]; r.q[1] = a.q[1] ^ b.q[1]; break;
	/* add, subtract */
	case ZYDIS_MNEMONIC_PADDB: for (k = 0; k < 16; k++) r.b[k] = (uint8_t)(a.b[k] + b.b[k]); break;
	case ZYDIS_MNEMONIC_PADDW: for (k = 0; k < 8; k++) r.w[k] = (uint16_t)(a.w[k] + b.w[k]); break;
	case ZYDIS_MNEMONIC_PADDD: for (k = 0; k < 4; k++) r.d[k] = a.d[k] + b.d[k]; break;
	case ZYDIS_MNEMONIC_PADDQ: for (k = 0; k < 2; k++) r.q[k] = a.q[k] + b.q[k]; break;
	case ZYDIS_MNEMONIC_PSUBB: for (k = 0; k < 16; k++) r.b[k] = (uint8_t)(a.b[k] - b.b[k]); break;
	case ZYDIS_MNEMONIC_PSUBW: for (k = 0; k < 8; k++) r.w[k] = (uint16_t)(a.w[k] - b.w[k]); break;
	case ZYDIS_MNEMONIC_PSUBD: for (k = 0; k < 4; k++) r.d[k] = a.d[k] - b.d[k]; break;
	case ZYDIS_MNEMONIC_PSUBQ: for (k = 0; k < 2; k++) r.q[k] = a.q[k] - b.q[k]; break;
	case ZYDIS_MNEMONIC_PADDSB:
		for (k = 0; k < 16; k++) r.sb[k] = (int8_t)sat(a.sb[k] + b.sb[k], -128, 127);
		break;
	case ZYDIS_MNEMONIC_PADDSW:
		for (k = 0; k < 8; k++) r.sw[k] = (int16_t)sat(a.sw[k] + b.sw[k], -32768, 32767);
		break;
	case ZYDIS_MNEMONIC_PSUBSB:
		for (k = 0; k < 16; k++) r.sb[k] = (int8_t)sat(a.sb[k] - b.sb[k], -128, 127);
		break;
	case ZYDIS_MNEMONIC_PSUBSW:
		for (k = 0; k < 8; k++) r.sw[k] = (int16_t)sat(a.sw[k] - b.sw[k], -32768, 32767);
		break;
	case ZYDIS_MNEMONIC_PADDUSB:
		for (k = 0; k < 16; k++) r.b[k] = (uint8_t)sat(a.b[k] + b.b[k], 0, 255);
		break;
	case ZYDIS_MNEMONIC_PADDUSW:
		for (k = 0; k < 8; k++) r.w[k] = (uint16_t)sat(a.w[k] + b.w[k], 0, 65535);
		break;
	case ZYDIS_MNEMONIC_PSUBUSB:
		for (k = 0; k < 16; k++) r.b[k] = (uint8_t)sat(a.b[k] - b.b[k], 0, 255);
		break;
	case ZYDIS_MNEMONIC_PSUBUSW:
		for (k = 0; k < 8; k++) r.w[k] = (uint16_t)sat(a.w[k] - b.w[k], 0, 65535);
		break;
	/* multiply */
	case ZYDIS_MNEMONIC_PMULLW: for (k = 0; k < 8; k++) r.w[k] = (uint16_t)(a.sw[k] * b.sw[k]); break;
	case ZYDIS_MNEMONIC_PMULHW:
		for (k = 0; k < 8; k++) r.w[k] = (uint16_t)((a.sw[k] * b.sw[k]) >> 16);
		break;
	case ZYDIS_MNEMONIC_PMULHUW:
		for (k = 0; k < 8; k++) r.w[k] = (uint16_t)(((uint32_t)a.w[k] * b.w[k]) >> 16);
		break;
	case ZYDIS_MNEMONIC_PMULLD:
		for (k = 0; k < 4; k++) r.d[k] = (uint32_t)((int64_t)a.sd[k] * b.sd[k]);
		break;
	case ZYDIS_MNEMONIC_PMULUDQ:
		r.q[0] = (uint64_t)a.d[0] * b.d[0];
		r.q[1] = (uint64_t)a.d[2] * b.d[2];
		break;
	case ZYDIS_MNEMONIC_PMULDQ:
		r.sq[0] = (int64_t)a.sd[0] * b.sd[0];
		r.sq[1] = (int64_t)a.sd[2] * b.sd[2];
		break;
	case ZYDIS_MNEMONIC_PMADDWD:
		for (k = 0; k < 4; k++)
			r.d[k] = (uint32_t)(a.sw[2 * k] * b.sw[2 * k] + a.sw[2 * k + 1] * b.sw[2 * k + 1]);
		break;
	case ZYDIS_MNEMONIC_PMADDUBSW:
		for (k = 0; k < 8; k++)
			r.sw[k] = (int16_t)sat(a.b[2 * k] * b.sb[2 * k] + a.b[2 * k + 1] * b.sb[2 * k + 1],
					       -32768, 32767);
		break;
	case ZYDIS_MNEMONIC_PMULHRSW:
		for (k = 0; k < 8; k++)
			r.w[k] = (uint16_t)((((int32_t)a.sw[k] * b.sw[k] >> 14) + 1) >> 1);
		break;
	case ZYDIS_MNEMONIC_PAVGB:
		for (k = 0; k < 16; k++) r.b[k] = (uint8_t)((a.b[k] + b.b[k] + 1) >> 1);
		break;
	case ZYDIS_MNEMONIC_PAVGW:
		for (k = 0; k < 8; k++) r.w[k] = (uint16_t)((a.w[k] + b.w[k] + 1) >> 1);
		break;
	case ZYDIS_MNEMONIC_PSADBW:
		for (k = 0; k < 2; k++) {
			uint64_t s = 0;

			for (unsigned int j = 0; j < 8; j++)
				s += (uint64_t)abs(a.b[8 * k + j] - b.b[8 * k + j]);
			r.q[k] = s;
		}
		break;
	/* min, max */
	case ZYDIS_MNEMONIC_PMAXUB: for (k = 0; k < 16; k++) r.b[k] = PM_MAX(a.b[k], b.b[k]); break;
	case ZYDIS_MNEMONIC_PMINUB: for (k = 0; k < 16; k++) r.b[k] = PM_MIN(a.b[k], b.b[k]); break;
	case ZYDIS_MNEMONIC_PMAXSB: for (k = 0; k < 16; k++) r.sb[k] = PM_MAX(a.sb[k], b.sb[k]); break;
	case ZYDIS_MNEMONIC_PMINSB: for (k = 0; k < 16; k++) r.sb[k] = PM_MIN(a.sb[k], b.sb[k]); break;
	case ZYDIS_MNEMONIC_PMAXUW: for (k = 0; k < 8; k++) r.w[k] = PM_MAX(a.w[k], b.w[k]); break;
	case ZYDIS_MNEMONIC_PMINUW: for (k = 0; k < 8; k++) r.w[k] = PM_MIN(a.w[k], b.w[k]); break;
	case ZYDIS_MNEMONIC_PMAXSW: for (k = 0; k < 8; k++) r.sw[k] = PM_MAX(a.sw[k], b.sw[k]); break;
	case ZYDIS_MNEMONIC_PMINSW: for (k = 0; k < 8; k++) r.sw[k] = PM_MIN(a.sw[k], b.sw[k]); break;
	case ZYDIS_MNEMONIC_PMAXUD: for (k = 0; k < 4; k++) r.d[k] = PM_MAX(a.d[k], b.d[k]); break;
	case ZYDIS_MNEMONIC_PMINUD: for (k = 0; k < 4; k++) r.d[k] = PM_MIN(a.d[k], b.d[k]); break;
	case ZYDIS_MNEMONIC_PMAXSD: for (k = 0; k < 4; k++) r.sd[k] = PM_MAX(a.sd[k], b.sd[k]); break;
	case ZYDIS_MNEMONIC_PMINSD: for (k = 0; k < 4; k++) r.sd[k] = PM_MIN(a.sd[k], b.sd[k]); break;
	/* absolute value, sign */
	case ZYDIS_MNEMONIC_PABSB: for (k = 0; k < 16; k++) r.b[k] = (uint8_t)abs(b.sb[k]); break;
	case ZYDIS_MNEMONIC_PABSW: for (k = 0; k < 8; k++) r.w[k] = (uint16_t)abs(b.sw[k]); break;
	case ZYDIS_MNEMONIC_PABSD:
		for (k = 0; k < 4; k++) r.d[k] = b.sd[k] < 0 ? 0u - (uint32_t)b.sd[k] : (uint32_t)b.sd[k];
		break;
	case ZYDIS_MNEMONIC_PSIGNB:
		for (k = 0; k < 16; k++) r.b[k] = b.sb[k] < 0 ? (uint8_t)-a.b[k] : b.sb[k] ? a.b[k] : 0;
		break;
	case ZYDIS_MNEMONIC_PSIGNW:
		for (k = 0; k < 8; k++) r.w[k] = b.sw[k] < 0 ? (uint16_t)-a.w[k] : b.sw[k] ? a.w[k] : 0;
		break;
	case ZYDIS_MNEMONIC_PSIGND:
		for (k = 0; k < 4; k++) r.d[k] = b.sd[k] < 0 ? 0u - a.d[k] : b.sd[k] ? a.d[k] : 0;
		break;
	case ZYDIS_MNEMONIC_PHADDW: case ZYDIS_MNEMONIC_PHSUBW: {
		bool sub = i->mnemonic == ZYDIS_MNEMONIC_PHSUBW;

		for (k = 0; k < 4; k++) {
			r.w[k] = (uint16_t)(sub ? a.w[2 * k] - a.w[2 * k + 1] : a.w[2 * k] + a.w[2 * k + 1]);
			r.w[k + 4] = (uint16_t)(sub ? b.w[2 * k] - b.w[2 * k + 1] : b.w[2 * k] + b.w[2 * k + 1]);
		}
		break;
	}
	case ZYDIS_MNEMONIC_PHADDD: case ZYDIS_MNEMONIC_PHSUBD: {
		bool sub = i->mnemonic == ZYDIS_MNEMONIC_PHSUBD;

		for (k = 0; k < 2; k++) {
			r.d[k] = sub ? a.d[2 * k] - a.d[2 * k + 1] : a.d[2 * k] + a.d[2 * k + 1];
			r.d[k + 2] = sub ? b.d[2 * k] - b.d[2 * k + 1] : b.d[2 * k] + b.d[2 * k + 1];
		}
		break;
	}
	/* compare */
	case ZYDIS_MNEMONIC_PCMPEQB: for (k = 0; k < 16; k++) r.b[k] = a.b[k] == b.b[k] ? 0xff : 0; break;
	case ZYDIS_MNEMONIC_PCMPEQW: for (k = 0; k < 8; k++) r.w[k] = a.w[k] == b.w[k] ? 0xffff : 0; break;
	case ZYDIS_MNEMONIC_PCMPEQD: for (k = 0; k < 4; k++) r.d[k] = a.d[k] == b.d[k] ? ~0u : 0; break;
	case ZYDIS_MNEMONIC_PCMPEQQ: for (k = 0; k < 2; k++) r.q[k] = a.q[k] == b.q[k] ? ~0ULL : 0; break;
	case ZYDIS_MNEMONIC_PCMPGTB: for (k = 0; k < 16; k++) r.b[k] = a.sb[k] > b.sb[k] ? 0xff : 0; break;
	case ZYDIS_MNEMONIC_PCMPGTW: for (k = 0; k < 8; k++) r.w[k] = a.sw[k] > b.sw[k] ? 0xffff : 0; break;
	case ZYDIS_MNEMONIC_PCMPGTD: for (k = 0; k < 4; k++) r.d[k] = a.sd[k] > b.sd[k] ? ~0u : 0; break;
	/* shifts: by an immediate (op1 is IMM) or by the low quadword of op1 */
	case ZYDIS_MNEMONIC_PSLLW: case ZYDIS_MNEMONIC_PSLLD: case ZYDIS_MNEMONIC_PSLLQ:
	case ZYDIS_MNEMONIC_PSRLW: case ZYDIS_MNEMONIC_PSRLD: case ZYDIS_MNEMONIC_PSRLQ:
	case ZYDIS_MNEMONIC_PSRAW: case ZYDIS_MNEMONIC_PSRAD: {
		uint16_t m = i->mnemonic;
		unsigned int es = (m == ZYDIS_MNEMONIC_PSLLW || m == ZYDIS_MNEMONIC_PSRLW ||
				   m == ZYDIS_MNEMONIC_PSRAW) ? 2 :
				  (m == ZYDIS_MNEMONIC_PSLLQ || m == ZYDIS_MNEMONIC_PSRLQ) ? 8 : 4;
		int kind = (m == ZYDIS_MNEMONIC_PSLLW || m == ZYDIS_MNEMONIC_PSLLD ||
			    m == ZYDIS_MNEMONIC_PSLLQ) ? 0 :
			   (m == ZYDIS_MNEMONIC_PSRAW || m == ZYDIS_MNEMONIC_PSRAD) ? 2 : 1;
		uint64_t cnt = i->op[1].kind == OP_IMM ? (i->imm & 0xff) : b.q[0];

		shift_lanes(&r, es, cnt, kind);
		break;
	}
	case ZYDIS_MNEMONIC_PSLLDQ: case ZYDIS_MNEMONIC_PSRLDQ: {
		unsigned int n = (unsigned int)(i->imm & 0xff);

		memset(&r, 0, sizeof(r));
		if (n < 16) {
			if (i->mnemonic == ZYDIS_MNEMONIC_PSLLDQ)
				memcpy(r.b + n, a.b, 16 - n);
			else
				memcpy(r.b, a.b + n, 16 - n);
		}
		break;
	}
	/* shuffles, unpacks, packs */
	case ZYDIS_MNEMONIC_PSHUFD:
		for (k = 0; k < 4; k++) r.d[k] = b.d[(imm >> (2 * k)) & 3];
		break;
	case ZYDIS_MNEMONIC_PSHUFLW:
		r = b;
		for (k = 0; k < 4; k++) r.w[k] = b.w[(imm >> (2 * k)) & 3];
		break;
	case ZYDIS_MNEMONIC_PSHUFHW:
		r = b;
		for (k = 0; k < 4; k++) r.w[4 + k] = b.w[4 + ((imm >> (2 * k)) & 3)];
		break;
	case ZYDIS_MNEMONIC_SHUFPS:
		r.d[0] = a.d[imm & 3]; r.d[1] = a.d[(imm >> 2) & 3];
		r.d[2] = b.d[(imm >> 4) & 3]; r.d[3] = b.d[(imm >> 6) & 3];
		break;
	case ZYDIS_MNEMONIC_SHUFPD:
		r.q[0] = a.q[imm & 1]; r.q[1] = b.q[(imm >> 1) & 1];
		break;
	case ZYDIS_MNEMONIC_PSHUFB:
		for (k = 0; k < 16; k++) r.b[k] = (b.b[k] & 0x80) ? 0 : a.b[b.b[k] & 15];
		break;
	case ZYDIS_MNEMONIC_PALIGNR: {
		uint8_t cat[32];

		memcpy(cat, b.b, 16);
		memcpy(cat + 16, a.b, 16);
		for (k = 0; k < 16; k++) r.b[k] = k + imm < 32 ? cat[k + imm] : 0;
		break;
	}
	case ZYDIS_MNEMONIC_PUNPCKLBW: for (k = 0; k < 8; k++) { r.b[2 * k] = a.b[k]; r.b[2 * k + 1] = b.b[k]; } break;
	case ZYDIS_MNEMONIC_PUNPCKHBW: for (k = 0; k < 8; k++) { r.b[2 * k] = a.b[8 + k]; r.b[2 * k + 1] = b.b[8 + k]; } break;
	case ZYDIS_MNEMONIC_PUNPCKLWD: for (k = 0; k < 4; k++) { r.w[2 * k] = a.w[k]; r.w[2 * k + 1] = b.w[k]; } break;
	case ZYDIS_MNEMONIC_PUNPCKHWD: for (k = 0; k < 4; k++) { r.w[2 * k] = a.w[4 + k]; r.w[2 * k + 1] = b.w[4 + k]; } break;
	case ZYDIS_MNEMONIC_PUNPCKLDQ: case ZYDIS_MNEMONIC_UNPCKLPS:
		r.d[0] = a.d[0]; r.d[1] = b.d[0]; r.d[2] = a.d[1]; r.d[3] = b.d[1];
		break;
	case ZYDIS_MNEMONIC_PUNPCKHDQ: case ZYDIS_MNEMONIC_UNPCKHPS:
		r.d[0] = a.d[2]; r.d[1] = b.d[2]; r.d[2] = a.d[3]; r.d[3] = b.d[3];
		break;
	case ZYDIS_MNEMONIC_PUNPCKLQDQ: case ZYDIS_MNEMONIC_UNPCKLPD:
		r.q[0] = a.q[0]; r.q[1] = b.q[0];
		break;
	case ZYDIS_MNEMONIC_PUNPCKHQDQ: case ZYDIS_MNEMONIC_UNPCKHPD:
		r.q[0] = a.q[1]; r.q[1] = b.q[1];
		break;
	case ZYDIS_MNEMONIC_PACKSSWB:
		for (k = 0; k < 8; k++) {
			r.sb[k] = (int8_t)sat(a.sw[k], -128, 127);
			r.sb[8 + k] = (int8_t)sat(b.sw[k], -128, 127);
		}
		break;
	case ZYDIS_MNEMONIC_PACKUSWB:
		for (k = 0; k < 8; k++) {
			r.b[k] = (uint8_t)sat(a.sw[k], 0, 255);
			r.b[8 + k] = (uint8_t)sat(b.sw[k], 0, 255);
		}
		break;
	case ZYDIS_MNEMONIC_PACKSSDW:
		for (k = 0; k < 4; k++) {
			r.sw[k] = (int16_t)sat(a.sd[k], -32768, 32767);
			r.sw[4 + k] = (int16_t)sat(b.sd[k], -32768, 32767);
		}
		break;
	case ZYDIS_MNEMONIC_PACKUSDW:
		for (k = 0; k < 4; k++) {
			r.w[k] = (uint16_t)sat(a.sd[k], 0, 65535);
			r.w[4 + k] = (uint16_t)sat(b.sd[k], 0, 65535);
		}
		break;
	/* SSE3 moves with duplication */
	case ZYDIS_MNEMONIC_MOVDDUP: r.q[0] = r.q[1] = b.q[0]; break;
	case ZYDIS_MNEMONIC_MOVSHDUP: r.d[0] = r.d[1] = b.d[1]; r.d[2] = r.d[3] = b.d[3]; break;
	case ZYDIS_MNEMONIC_MOVSLDUP: r.d[0] = r.d[1] = b.d[0]; r.d[2] = r.d[3] = b.d[2]; break;
	/* SSE4.1 blends, zero/sign extension */
	case ZYDIS_MNEMONIC_PBLENDW: for (k = 0; k < 8; k++) if (imm & (1u << k)) r.w[k] = b.w[k]; break;
	case ZYDIS_MNEMONIC_BLENDPS: for (k = 0; k < 4; k++) if (imm & (1u << k)) r.d[k] = b.d[k]; break;
	case ZYDIS_MNEMONIC_BLENDPD: for (k = 0; k < 2; k++) if (imm & (1u << k)) r.q[k] = b.q[k]; break;
	case ZYDIS_MNEMONIC_PBLENDVB:
		for (k = 0; k < 16; k++) if (c->xmm[0].b[k] & 0x80) r.b[k] = b.b[k];
		break;
	case ZYDIS_MNEMONIC_BLENDVPS:
		for (k = 0; k < 4; k++) if (c->xmm[0].d[k] & 0x80000000u) r.d[k] = b.d[k];
		break;
	case ZYDIS_MNEMONIC_BLENDVPD:
		for (k = 0; k < 2; k++) if (c->xmm[0].q[k] >> 63) r.q[k] = b.q[k];
		break;
	case ZYDIS_MNEMONIC_PMOVZXBW: for (k = 0; k < 8; k++) r.w[k] = b.b[k]; break;
	case ZYDIS_MNEMONIC_PMOVZXBD: for (k = 0; k < 4; k++) r.d[k] = b.b[k]; break;
	case ZYDIS_MNEMONIC_PMOVZXBQ: for (k = 0; k < 2; k++) r.q[k] = b.b[k]; break;
	case ZYDIS_MNEMONIC_PMOVZXWD: for (k = 0; k < 4; k++) r.d[k] = b.w[k]; break;
	case ZYDIS_MNEMONIC_PMOVZXWQ: for (k = 0; k < 2; k++) r.q[k] = b.w[k]; break;
	case ZYDIS_MNEMONIC_PMOVZXDQ: for (k = 0; k < 2; k++) r.q[k] = b.d[k]; break;
	case ZYDIS_MNEMONIC_PMOVSXBW: for (k = 0; k < 8; k++) r.sw[k] = b.sb[k]; break;
	case ZYDIS_MNEMONIC_PMOVSXBD: for (k = 0; k < 4; k++) r.sd[k] = b.sb[k]; break;
	case ZYDIS_MNEMONIC_PMOVSXBQ: for (k = 0; k < 2; k++) r.sq[k] = b.sb[k]; break;
	case ZYDIS_MNEMONIC_PMOVSXWD: for (k = 0; k < 4; k++) r.sd[k] = b.sw[k]; break;
	case ZYDIS_MNEMONIC_PMOVSXWQ: for (k = 0; k < 2; k++) r.sq[k] = b.sw[k]; break;
	case ZYDIS_MNEMONIC_PMOVSXDQ: for (k = 0; k < 2; k++) r.sq[k] = b.sd[k]; break;
	case ZYDIS_MNEMONIC_MOVNTDQA: r = b; break;
	/* inserts */
	case ZYDIS_MNEMONIC_PINSRB: r.b[imm & 15] = b.b[0]; break;
	case ZYDIS_MNEMONIC_PINSRW: r.w[imm & 7] = b.w[0]; break;
	case ZYDIS_MNEMONIC_PINSRD: r.d[imm & 3] = b.d[0]; break;
	case ZYDIS_MNEMONIC_PINSRQ: r.q[imm & 1] = b.q[0]; break;
	case ZYDIS_MNEMONIC_INSERTPS: {
		uint32_t v = i->op[1].kind == OP_XMM ? b.d[(imm >> 6) & 3] : b.d[0];

		r.d[(imm >> 4) & 3] = v;
		for (k = 0; k < 4; k++)
			if (imm & (1u << k))
				r.d[k] = 0;
		break;
	}
	default:
		x86_ud(c);
	}
	c->xmm[i->op[0].reg] = r;
}

/* Extracts and masks into a GPR or memory: op0 destination, op1 XMM. */
static void extract(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	vec s, r;
	uint8_t imm = (uint8_t)i->imm;

	sse_check(c);
	s = c->xmm[i->op[1].reg];
	memset(&r, 0, sizeof(r));
	switch (i->mnemonic) {
	case ZYDIS_MNEMONIC_PEXTRB: r.q[0] = s.b[imm & 15]; break;
	case ZYDIS_MNEMONIC_PEXTRW: r.q[0] = s.w[imm & 7]; break;
	case ZYDIS_MNEMONIC_PEXTRD: case ZYDIS_MNEMONIC_EXTRACTPS: r.q[0] = s.d[imm & 3]; break;
	case ZYDIS_MNEMONIC_PEXTRQ: r.q[0] = s.q[imm & 1]; break;
	case ZYDIS_MNEMONIC_PMOVMSKB:
		for (unsigned int k = 0; k < 16; k++)
			r.q[0] |= (uint64_t)(s.b[k] >> 7) << k;
		break;
	case ZYDIS_MNEMONIC_MOVMSKPS:
		for (unsigned int k = 0; k < 4; k++)
			r.q[0] |= (uint64_t)(s.d[k] >> 31) << k;
		break;
	default: /* MOVMSKPD */
		r.q[0] = (s.q[0] >> 63) | ((s.q[1] >> 63) << 1);
		break;
	}
	vec_write(c, i, 0, &r);
}

static void ptest(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	vec a, b;
	uint64_t f = 0;

	sse_check(c);
	a = c->xmm[i->op[0].reg];
	vec_read(c, i, 1, &b);
	if (!((a.q[0] & b.q[0]) | (a.q[1] & b.q[1])))
		f |= PM_X86_ZF;
	if (!((~a.q[0] & b.q[0]) | (~a.q[1] & b.q[1])))
		f |= PM_X86_CF;
	flags_set(c, PM_X86_ARITH, f);
}

x86_exec_fn x86_select_sse(struct x86_insn *i)
{
	switch (i->mnemonic) {
	case ZYDIS_MNEMONIC_MOVAPS: case ZYDIS_MNEMONIC_MOVAPD: case ZYDIS_MNEMONIC_MOVUPS:
	case ZYDIS_MNEMONIC_MOVUPD: case ZYDIS_MNEMONIC_MOVDQA: case ZYDIS_MNEMONIC_MOVDQU:
	case ZYDIS_MNEMONIC_LDDQU: case ZYDIS_MNEMONIC_MOVNTDQ: case ZYDIS_MNEMONIC_MOVNTPS:
	case ZYDIS_MNEMONIC_MOVNTPD:
		return mov_full;
	case ZYDIS_MNEMONIC_MOVD: case ZYDIS_MNEMONIC_MOVQ: return movdq;
	case ZYDIS_MNEMONIC_MOVSS: return movs_scalar;
	case ZYDIS_MNEMONIC_MOVSD: return i->nops == 2 ? movs_scalar : NULL;
	case ZYDIS_MNEMONIC_MOVLPS: case ZYDIS_MNEMONIC_MOVLPD: case ZYDIS_MNEMONIC_MOVHPS:
	case ZYDIS_MNEMONIC_MOVHPD: case ZYDIS_MNEMONIC_MOVHLPS: case ZYDIS_MNEMONIC_MOVLHPS:
		return mov_half;
	case ZYDIS_MNEMONIC_MOVNTI: return movnti;
	case ZYDIS_MNEMONIC_LDMXCSR: case ZYDIS_MNEMONIC_STMXCSR: return mxcsr_op;
	case ZYDIS_MNEMONIC_PEXTRB: case ZYDIS_MNEMONIC_PEXTRW: case ZYDIS_MNEMONIC_PEXTRD:
	case ZYDIS_MNEMONIC_PEXTRQ: case ZYDIS_MNEMONIC_EXTRACTPS: case ZYDIS_MNEMONIC_PMOVMSKB:
	case ZYDIS_MNEMONIC_MOVMSKPS: case ZYDIS_MNEMONIC_MOVMSKPD:
		return i->op[1].kind == OP_XMM ? extract : NULL;
	case ZYDIS_MNEMONIC_PTEST: return ptest;
	default:
		break;
	}
	/* The packed operations: only with an XMM destination (MMX forms
	 * have already failed to decode). */
	if (i->nops >= 2 && i->op[0].kind == OP_XMM)
		return packed;
	return NULL;
}

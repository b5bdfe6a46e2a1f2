/* SPDX-License-Identifier: MIT */
/*
 * SSE floating point: the arithmetic, comparison and conversion
 * instructions of SSE, SSE2, SSE3 (ADDSUB, HADD, HSUB) and SSE4.1 (ROUND,
 * DP), packed and scalar, in single and double precision.
 *
 * The arithmetic is C's IEEE 754 binary32/binary64 in round-to-nearest,
 * with x86's rules written out where C does not fix them: a NaN operand
 * (the first one when both are) is returned quieted; MIN/MAX return the
 * second operand when either is a NaN or both are zero; conversions to
 * integers out of range (or of a NaN) give the "integer indefinite" value
 * (the sign bit alone); comparisons and (U)COMIS follow the SDM's tables.
 * Not modelled (documented in docs/DESIGN.md): MXCSR's rounding control,
 * DAZ and FTZ (the engine always rounds to nearest and keeps denormals), and
 * its exception flags (never set; #XM is never raised). RCPPS/RSQRTPS and
 * their scalar forms return the exact quotient and root (within the
 * hardware's ±1.5*2^-12 bound).
 */
#include <math.h>
#include <Zydis/Zydis.h>
#include "vcpu/x86/internal.h"

typedef union pm_x86_xmm vec;

static void fp_check(struct pm_x86_cpu *c)
{
	if (!(c->cr4 & PM_X86_CR4_OSFXSR) || (c->cr0 & PM_X86_CR0_EM))
		x86_ud(c);
	if (c->cr0 & PM_X86_CR0_TS)
		x86_raise(c, PM_X86_EXC_NM, false, 0);
}

/* Operand n as a vector (XMM or memory of the operand's size); a GPR or
 * 32/64-bit memory integer for the CVTSI2S* forms. */
static void fp_src(struct pm_x86_cpu *c, const struct x86_insn *i, unsigned int n, vec *v)
{
	const struct x86_op *o = &i->op[n];

	memset(v, 0, sizeof(*v));
	if (o->kind == OP_XMM) {
		*v = c->xmm[o->reg];
	} else if (o->kind == OP_REG) {
		v->q[0] = reg_read(c, o->reg, o->size);
	} else if (o->kind == OP_MEM) {
		uint64_t ea = insn_ea(c, i);

		if (o->size == 16 && (ea & 15))
			x86_gp(c, 0);
		if (o->size <= 8)
			v->q[0] = mem_read(c, ea, o->size);
		else
			x86_read_buf(c, ea, v->b, 16, acc_user(c));
	} else {
		x86_ud(c);
	}
}

/* ---- scalar helpers with x86's NaN rules ---- */
static bool nan_f(float x) { return x != x; }
static bool nan_d(double x) { return x != x; }

static float quiet_f(float x)
{
	uint32_t u;

	memcpy(&u, &x, 4);
	u |= 0x00400000u;
	memcpy(&x, &u, 4);
	return x;
}

static double quiet_d(double x)
{
	uint64_t u;

	memcpy(&u, &x, 8);
	u |= 0x0008000000000000ULL;
	memcpy(&x, &u, 8);
	return x;
}

enum { FOP_ADD, FOP_SUB, FOP_MUL, FOP_DIV, FOP_MIN, FOP_MAX, FOP_SQRT, FOP_RCP, FOP_RSQRT };

static float op_f(int op, float a, float b)
{
	if (op == FOP_MIN)
		return a < b ? a : b;
	if (op == FOP_MAX)
		return a > b ? a : b;
	if (op >= FOP_SQRT) {
		if (nan_f(b))
			return quiet_f(b);
		return op == FOP_SQRT ? sqrtf(b) : op == FOP_RCP ? 1.0f / b : 1.0f / sqrtf(b);
	}
	if (nan_f(a))
		return quiet_f(a);
	if (nan_f(b))
		return quiet_f(b);
	switch (op) {
	case FOP_ADD: return a + b;
	case FOP_SUB: return a - b;
	case FOP_MUL: return a * b;
	default: return a / b;
	}
}

static double op_d(int op, double a, double b)
{
	if (op == FOP_MIN)
		return a < b ? a : b;
	if (op == FOP_MAX)
		return a > b ? a : b;
	if (op >= FOP_SQRT) {
		if (nan_d(b))
			return quiet_d(b);
		return sqrt(b);
	}
	if (nan_d(a))
		return quiet_d(a);
	if (nan_d(b))
		return quiet_d(b);
	switch (op) {
	case FOP_ADD: return a + b;
	case FOP_SUB: return a - b;
	case FOP_MUL: return a * b;
	default: return a / b;
	}
}

/* CMPccPS/PD/SS/SD predicates 0-7. */
static bool cmp_pred(unsigned int p, bool lt, bool eq, bool unord)
{
	switch (p & 7) {
	case 0: return eq;
	case 1: return lt;
	case 2: return lt || eq;
	case 3: return unord;
	case 4: return !eq;
	case 5: return !lt;
	case 6: return !(lt || eq);
	default: return !unord;
	}
}

/* Integer conversion with x86's out-of-range result. */
static int64_t cvt_i(double x, unsigned int bits, bool truncate)
{
	double lim = bits == 64 ? 9223372036854775808.0 : 2147483648.0;
	int64_t indef = bits == 64 ? INT64_MIN : INT32_MIN;

	x = truncate ? trunc(x) : nearbyint(x);
	if (x != x || x >= lim || x < -lim)
		return indef;
	return (int64_t)x;
}

static double round_mode(double x, unsigned int imm)
{
	if (nan_d(x))
		return quiet_d(x); /* libm's floor/ceil keep a signalling NaN */
	switch (imm & 4 ? 0 : imm & 3) { /* bit 2: MXCSR.RC, modelled as nearest */
	case 0: return nearbyint(x);
	case 1: return floor(x);
	case 2: return ceil(x);
	default: return trunc(x);
	}
}

static void fp_arith(struct pm_x86_cpu *c, const struct x86_insn *i, int op, bool dbl,
		     bool scalar)
{
	vec a = c->xmm[i->op[0].reg], b, r;

	fp_src(c, i, 1, &b);
	r = a;
	if (dbl) {
		for (unsigned int k = 0; k < (scalar ? 1u : 2u); k++)
			r.fd[k] = op_d(op, a.fd[k], b.fd[k]);
	} else {
		for (unsigned int k = 0; k < (scalar ? 1u : 4u); k++)
			r.f[k] = op_f(op, a.f[k], b.f[k]);
	}
	c->xmm[i->op[0].reg] = r;
}

static void fp(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	uint16_t m = i->mnemonic;
	vec a, b, r;
	unsigned int k, imm = (unsigned int)(i->imm & 0xff);

	fp_check(c);
	switch (m) {
	case ZYDIS_MNEMONIC_ADDPS: fp_arith(c, i, FOP_ADD, false, false); return;
	case ZYDIS_MNEMONIC_ADDPD: fp_arith(c, i, FOP_ADD, true, false); return;
	case ZYDIS_MNEMONIC_ADDSS: fp_arith(c, i, FOP_ADD, false, true); return;
	case ZYDIS_MNEMONIC_ADDSD: fp_arith(c, i, FOP_ADD, true, true); return;
	case ZYDIS_MNEMONIC_SUBPS: fp_arith(c, i, FOP_SUB, false, false); return;
	case ZYDIS_MNEMONIC_SUBPD: fp_arith(c, i, FOP_SUB, true, false); return;
	case ZYDIS_MNEMONIC_SUBSS: fp_arith(c, i, FOP_SUB, false, true); return;
	case ZYDIS_MNEMONIC_SUBSD: fp_arith(c, i, FOP_SUB, true, true); return;
	case ZYDIS_MNEMONIC_MULPS: fp_arith(c, i, FOP_MUL, false, false); return;
	case ZYDIS_MNEMONIC_MULPD: fp_arith(c, i, FOP_MUL, true, false); return;
	case ZYDIS_MNEMONIC_MULSS: fp_arith(c, i, FOP_MUL, false, true); return;
	case ZYDIS_MNEMONIC_MULSD: fp_arith(c, i, FOP_MUL, true, true); return;
	case ZYDIS_MNEMONIC_DIVPS: fp_arith(c, i, FOP_DIV, false, false); return;
	case ZYDIS_MNEMONIC_DIVPD: fp_arith(c, i, FOP_DIV, true, false); return;
	case ZYDIS_MNEMONIC_DIVSS: fp_arith(c, i, FOP_DIV, false, true); return;
	case ZYDIS_MNEMONIC_DIVSD: fp_arith(c, i, FOP_DIV, true, true); return;
	case ZYDIS_MNEMONIC_MINPS: fp_arith(c, i, FOP_MIN, false, false); return;
	case ZYDIS_MNEMONIC_MINPD: fp_arith(c, i, FOP_MIN, true, false); return;
	case ZYDIS_MNEMONIC_MINSS: fp_arith(c, i, FOP_MIN, false, true); return;
	case ZYDIS_MNEMONIC_MINSD: fp_arith(c, i, FOP_MIN, true, true); return;
	case ZYDIS_MNEMONIC_MAXPS: fp_arith(c, i, FOP_MAX, false, false); return;
	case ZYDIS_MNEMONIC_MAXPD: fp_arith(c, i, FOP_MAX, true, false); return;
	case ZYDIS_MNEMONIC_MAXSS: fp_arith(c, i, FOP_MAX, false, true); return;
	case ZYDIS_MNEMONIC_MAXSD: fp_arith(c, i, FOP_MAX, true, true); return;
	case ZYDIS_MNEMONIC_SQRTPS: fp_arith(c, i, FOP_SQRT, false, false); return;
	case ZYDIS_MNEMONIC_SQRTPD: fp_arith(c, i, FOP_SQRT, true, false); return;
	case ZYDIS_MNEMONIC_SQRTSS: fp_arith(c, i, FOP_SQRT, false, true); return;
	case ZYDIS_MNEMONIC_SQRTSD: fp_arith(c, i, FOP_SQRT, true, true); return;
	case ZYDIS_MNEMONIC_RCPPS: fp_arith(c, i, FOP_RCP, false, false); return;
	case ZYDIS_MNEMONIC_RCPSS: fp_arith(c, i, FOP_RCP, false, true); return;
	case ZYDIS_MNEMONIC_RSQRTPS: fp_arith(c, i, FOP_RSQRT, false, false); return;
	case ZYDIS_MNEMONIC_RSQRTSS: fp_arith(c, i, FOP_RSQRT, false, true); return;
	default:
		break;
	}

	fp_src(c, i, 1, &b);
	a = i->op[0].kind == OP_XMM ? c->xmm[i->op[0].reg] : b;
	r = a;
	switch (m) {
	case ZYDIS_MNEMONIC_CMPPS: case ZYDIS_MNEMONIC_CMPSS:
		for (k = 0; k < (m == ZYDIS_MNEMONIC_CMPSS ? 1u : 4u); k++) {
			bool un = nan_f(a.f[k]) || nan_f(b.f[k]);

			r.d[k] = cmp_pred(imm, !un && a.f[k] < b.f[k], !un && a.f[k] == b.f[k], un)
				 ? ~0u : 0;
		}
		break;
	case ZYDIS_MNEMONIC_CMPPD: case ZYDIS_MNEMONIC_CMPSD:
		for (k = 0; k < (m == ZYDIS_MNEMONIC_CMPSD ? 1u : 2u); k++) {
			bool un = nan_d(a.fd[k]) || nan_d(b.fd[k]);

			r.q[k] = cmp_pred(imm, !un && a.fd[k] < b.fd[k], !un && a.fd[k] == b.fd[k], un)
				 ? ~0ULL : 0;
		}
		break;
	case ZYDIS_MNEMONIC_COMISS: case ZYDIS_MNEMONIC_UCOMISS:
	case ZYDIS_MNEMONIC_COMISD: case ZYDIS_MNEMONIC_UCOMISD: {
		bool d = m == ZYDIS_MNEMONIC_COMISD || m == ZYDIS_MNEMONIC_UCOMISD;
		double x = d ? a.fd[0] : a.f[0], y = d ? b.fd[0] : b.f[0];
		uint64_t f;

		if (x != x || y != y)
			f = PM_X86_ZF | PM_X86_PF | PM_X86_CF;
		else if (x < y)
			f = PM_X86_CF;
		else if (x == y)
			f = PM_X86_ZF;
		else
			f = 0;
		flags_set(c, PM_X86_ARITH, f);
		return;
	}
	/* conversions */
	case ZYDIS_MNEMONIC_CVTSI2SS:
		r.f[0] = i->op[1].size == 8 ? (float)(int64_t)b.q[0] : (float)(int32_t)b.d[0];
		break;
	case ZYDIS_MNEMONIC_CVTSI2SD:
		r.fd[0] = i->op[1].size == 8 ? (double)(int64_t)b.q[0] : (double)(int32_t)b.d[0];
		break;
	case ZYDIS_MNEMONIC_CVTSS2SD: r.fd[0] = (double)b.f[0]; break;
	case ZYDIS_MNEMONIC_CVTSD2SS: r.f[0] = (float)b.fd[0]; break;
	case ZYDIS_MNEMONIC_CVTTSS2SI: case ZYDIS_MNEMONIC_CVTSS2SI:
	case ZYDIS_MNEMONIC_CVTTSD2SI: case ZYDIS_MNEMONIC_CVTSD2SI: {
		bool d = m == ZYDIS_MNEMONIC_CVTTSD2SI || m == ZYDIS_MNEMONIC_CVTSD2SI;
		bool t = m == ZYDIS_MNEMONIC_CVTTSS2SI || m == ZYDIS_MNEMONIC_CVTTSD2SI;
		unsigned int bits = i->op[0].size * 8;

		reg_write(c, i->op[0].reg, i->op[0].size,
			  (uint64_t)cvt_i(d ? b.fd[0] : (double)b.f[0], bits, t));
		return;
	}
	case ZYDIS_MNEMONIC_CVTDQ2PS: for (k = 0; k < 4; k++) r.f[k] = (float)b.sd[k]; break;
	case ZYDIS_MNEMONIC_CVTPS2DQ: case ZYDIS_MNEMONIC_CVTTPS2DQ:
		for (k = 0; k < 4; k++)
			r.sd[k] = (int32_t)cvt_i(b.f[k], 32, m == ZYDIS_MNEMONIC_CVTTPS2DQ);
		break;
	case ZYDIS_MNEMONIC_CVTDQ2PD: r.fd[0] = b.sd[0]; r.fd[1] = b.sd[1]; break;
	case ZYDIS_MNEMONIC_CVTPD2DQ: case ZYDIS_MNEMONIC_CVTTPD2DQ:
		for (k = 0; k < 2; k++)
			r.sd[k] = (int32_t)cvt_i(b.fd[k], 32, m == ZYDIS_MNEMONIC_CVTTPD2DQ);
		r.q[1] = 0;
		break;
	case ZYDIS_MNEMONIC_CVTPS2PD: r.fd[1] = b.f[1]; r.fd[0] = b.f[0]; break;
	case ZYDIS_MNEMONIC_CVTPD2PS:
		r.f[0] = (float)b.fd[0];
		r.f[1] = (float)b.fd[1];
		r.q[1] = 0;
		break;
	/* SSE3 */
	case ZYDIS_MNEMONIC_ADDSUBPS:
		for (k = 0; k < 4; k++) r.f[k] = op_f(k & 1 ? FOP_ADD : FOP_SUB, a.f[k], b.f[k]);
		break;
	case ZYDIS_MNEMONIC_ADDSUBPD:
		r.fd[0] = op_d(FOP_SUB, a.fd[0], b.fd[0]);
		r.fd[1] = op_d(FOP_ADD, a.fd[1], b.fd[1]);
		break;
	case ZYDIS_MNEMONIC_HADDPS: case ZYDIS_MNEMONIC_HSUBPS: {
		int o = m == ZYDIS_MNEMONIC_HADDPS ? FOP_ADD : FOP_SUB;

		r.f[0] = op_f(o, a.f[0], a.f[1]);
		r.f[1] = op_f(o, a.f[2], a.f[3]);
		r.f[2] = op_f(o, b.f[0], b.f[1]);
		r.f[3] = op_f(o, b.f[2], b.f[3]);
		break;
	}
	case ZYDIS_MNEMONIC_HADDPD: case ZYDIS_MNEMONIC_HSUBPD: {
		int o = m == ZYDIS_MNEMONIC_HADDPD ? FOP_ADD : FOP_SUB;

		r.fd[0] = op_d(o, a.fd[0], a.fd[1]);
		r.fd[1] = op_d(o, b.fd[0], b.fd[1]);
		break;
	}
	/* SSE4.1 */
	case ZYDIS_MNEMONIC_ROUNDPS: for (k = 0; k < 4; k++) r.f[k] = (float)round_mode(b.f[k], imm); break;
	case ZYDIS_MNEMONIC_ROUNDSS: r.f[0] = (float)round_mode(b.f[0], imm); break;
	case ZYDIS_MNEMONIC_ROUNDPD: for (k = 0; k < 2; k++) r.fd[k] = round_mode(b.fd[k], imm); break;
	case ZYDIS_MNEMONIC_ROUNDSD: r.fd[0] = round_mode(b.fd[0], imm); break;
	case ZYDIS_MNEMONIC_DPPS: {
		float t[4], s;

		for (k = 0; k < 4; k++)
			t[k] = (imm & (0x10u << k)) ? op_f(FOP_MUL, a.f[k], b.f[k]) : 0.0f;
		s = op_f(FOP_ADD, op_f(FOP_ADD, t[0], t[1]), op_f(FOP_ADD, t[2], t[3]));
		for (k = 0; k < 4; k++)
			r.f[k] = (imm & (1u << k)) ? s : 0.0f;
		break;
	}
	case ZYDIS_MNEMONIC_DPPD: {
		double t0 = (imm & 0x10) ? op_d(FOP_MUL, a.fd[0], b.fd[0]) : 0.0;
		double t1 = (imm & 0x20) ? op_d(FOP_MUL, a.fd[1], b.fd[1]) : 0.0, s = op_d(FOP_ADD, t0, t1);

		r.fd[0] = (imm & 1) ? s : 0.0;
		r.fd[1] = (imm & 2) ? s : 0.0;
		break;
	}
	default:
		x86_ud(c);
	}
	if (i->op[0].kind != OP_XMM)
		x86_ud(c);
	c->xmm[i->op[0].reg] = r;
}

x86_exec_fn x86_select_sse_fp(struct x86_insn *i)
{
	switch (i->mnemonic) {
	case ZYDIS_MNEMONIC_ADDPS: case ZYDIS_MNEMONIC_ADDPD: case ZYDIS_MNEMONIC_ADDSS:
	case ZYDIS_MNEMONIC_ADDSD: case ZYDIS_MNEMONIC_SUBPS: case ZYDIS_MNEMONIC_SUBPD:
	case ZYDIS_MNEMONIC_SUBSS: case ZYDIS_MNEMONIC_SUBSD: case ZYDIS_MNEMONIC_MULPS:
	case ZYDIS_MNEMONIC_MULPD: case ZYDIS_MNEMONIC_MULSS: case ZYDIS_MNEMONIC_MULSD:
	case ZYDIS_MNEMONIC_DIVPS: case ZYDIS_MNEMONIC_DIVPD: case ZYDIS_MNEMONIC_DIVSS:
	case ZYDIS_MNEMONIC_DIVSD: case ZYDIS_MNEMONIC_MINPS: case ZYDIS_MNEMONIC_MINPD:
	case ZYDIS_MNEMONIC_MINSS: case ZYDIS_MNEMONIC_MINSD: case ZYDIS_MNEMONIC_MAXPS:
	case ZYDIS_MNEMONIC_MAXPD: case ZYDIS_MNEMONIC_MAXSS: case ZYDIS_MNEMONIC_MAXSD:
	case ZYDIS_MNEMONIC_SQRTPS: case ZYDIS_MNEMONIC_SQRTPD: case ZYDIS_MNEMONIC_SQRTSS:
	case ZYDIS_MNEMONIC_SQRTSD: case ZYDIS_MNEMONIC_RCPPS: case ZYDIS_MNEMONIC_RCPSS:
	case ZYDIS_MNEMONIC_RSQRTPS: case ZYDIS_MNEMONIC_RSQRTSS: case ZYDIS_MNEMONIC_CMPPS:
	case ZYDIS_MNEMONIC_CMPSS: case ZYDIS_MNEMONIC_CMPPD: case ZYDIS_MNEMONIC_COMISS:
	case ZYDIS_MNEMONIC_UCOMISS: case ZYDIS_MNEMONIC_COMISD: case ZYDIS_MNEMONIC_UCOMISD:
	case ZYDIS_MNEMONIC_CVTSI2SS: case ZYDIS_MNEMONIC_CVTSI2SD: case ZYDIS_MNEMONIC_CVTSS2SD:
	case ZYDIS_MNEMONIC_CVTSD2SS: case ZYDIS_MNEMONIC_CVTTSS2SI: case ZYDIS_MNEMONIC_CVTSS2SI:
	case ZYDIS_MNEMONIC_CVTTSD2SI: case ZYDIS_MNEMONIC_CVTSD2SI: case ZYDIS_MNEMONIC_CVTDQ2PS:
	case ZYDIS_MNEMONIC_CVTPS2DQ: case ZYDIS_MNEMONIC_CVTTPS2DQ: case ZYDIS_MNEMONIC_CVTDQ2PD:
	case ZYDIS_MNEMONIC_CVTPD2DQ: case ZYDIS_MNEMONIC_CVTTPD2DQ: case ZYDIS_MNEMONIC_CVTPS2PD:
	case ZYDIS_MNEMONIC_CVTPD2PS: case ZYDIS_MNEMONIC_ADDSUBPS: case ZYDIS_MNEMONIC_ADDSUBPD:
	case ZYDIS_MNEMONIC_HADDPS: case ZYDIS_MNEMONIC_HSUBPS: case ZYDIS_MNEMONIC_HADDPD:
	case ZYDIS_MNEMONIC_HSUBPD: case ZYDIS_MNEMONIC_ROUNDPS: case ZYDIS_MNEMONIC_ROUNDSS:
	case ZYDIS_MNEMONIC_ROUNDPD: case ZYDIS_MNEMONIC_ROUNDSD: case ZYDIS_MNEMONIC_DPPS:
	case ZYDIS_MNEMONIC_DPPD:
		return fp;
	case ZYDIS_MNEMONIC_CMPSD:
		return i->nops == 3 ? fp : NULL; /* SSE2's, not the string one */
	default:
		return NULL;
	}
}

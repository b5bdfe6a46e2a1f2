/* SPDX-License-Identifier: MIT */
/*
 * Integer instructions: data movement (MOV, MOVZX/SX, LEA, XCHG, CMOVcc,
 * SETcc, BSWAP, CBW...), arithmetic and logic with their flags, shifts and
 * rotates, multiply and divide (#DE), bit tests and scans, and the atomic
 * read-modify-writes (LOCK'ed forms, XCHG, XADD, CMPXCHG, CMPXCHG8B/16B).
 *
 * Flags follow the SDM. Where it calls a flag undefined, the engine's
 * choice is fixed and documented at the instruction (the differential
 * tests mask exactly those): logic ops clear AF; shifts and rotates by more
 * than one compute OF with the count-1 formula and clear AF; MUL/IMUL set
 * SF, ZF, PF from the low half and clear AF; DIV/IDIV, BT*, BSF/BSR,
 * TZCNT/LZCNT leave their undefined flags unchanged.
 *
 * The common forms (register/register, register/immediate,
 * register/memory, memory/register, memory/immediate) of the eight ALU ops
 * and MOV have their own handlers so that the hot path makes no operand-kind
 * decision; everything else goes through op_read/op_write.
 *
 * Read-modify-write of memory (rmw() below): a LOCK'ed op is a
 * compare-and-exchange loop on the host page; an unlocked one a plain load
 * and store; an access crossing a page, to MMIO or to a page holding code
 * goes through the slow path (a LOCK'ed page-crossing one under
 * split_lock).
 */
#include <Zydis/Zydis.h>
#include "vcpu/x86/internal.h"

enum { ALU_ADD, ALU_OR, ALU_ADC, ALU_SBB, ALU_AND, ALU_SUB, ALU_XOR, ALU_CMP, ALU_TEST };

static inline __attribute__((always_inline)) uint64_t
alu(uint64_t fl_in, int op, uint64_t a, uint64_t b, unsigned int sz, uint64_t *fl)
{
	uint64_t m = sz_mask(sz), r;
	unsigned int cf = fl_in & PM_X86_CF;

	a &= m;
	b &= m;
	switch (op) {
	case ALU_ADD: r = (a + b) & m; *fl = flags_add(a, b, r, 0, sz); break;
	case ALU_ADC: r = (a + b + cf) & m; *fl = flags_add(a, b, r, cf, sz); break;
	case ALU_SUB:
	case ALU_CMP: r = (a - b) & m; *fl = flags_sub(a, b, r, 0, sz); break;
	case ALU_SBB: r = (a - b - cf) & m; *fl = flags_sub(a, b, r, cf, sz); break;
	case ALU_OR: r = a | b; *fl = flags_szp(r, sz); break;
	case ALU_XOR: r = a ^ b; *fl = flags_szp(r, sz); break;
	default: r = a & b; *fl = flags_szp(r, sz); break; /* AND, TEST */
	}
	return r;
}

/* ---- read-modify-write of a memory operand ---- */
typedef uint64_t (*rmw_fn)(struct pm_x86_cpu *c, const struct x86_insn *i, uint64_t old,
			   uint64_t src, uint64_t *fl);

static bool cas(uint8_t *p, unsigned int sz, uint64_t *old, uint64_t new)
{
	switch (sz) {
	case 1: {
		uint8_t o = (uint8_t)*old;
		bool ok = __atomic_compare_exchange_n(p, &o, (uint8_t)new, false,
						      __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
		*old = o;
		return ok;
	}
	case 2: {
		uint16_t o = (uint16_t)*old;
		bool ok = __atomic_compare_exchange_n((uint16_t *)p, &o, (uint16_t)new, false,
						      __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
		*old = o;
		return ok;
	}
	case 4: {
		uint32_t o = (uint32_t)*old;
		bool ok = __atomic_compare_exchange_n((uint32_t *)p, &o, (uint32_t)new, false,
						      __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
		*old = o;
		return ok;
	}
	default:
		return __atomic_compare_exchange_n((uint64_t *)p, old, new, false,
						   __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
	}
}

/* Host atomics need natural alignment; a misaligned LOCK inside a page
 * takes split_lock like a page-crossing one. */
static inline __attribute__((always_inline)) uint64_t
rmw(struct pm_x86_cpu *c, const struct x86_insn *i, uint64_t ea, unsigned int sz, uint64_t src,
    bool lock, rmw_fn f, uint64_t *fl, bool write)
{
	uint8_t *p = x86_rmw_ptr(c, ea, sz);
	uint64_t old, new;

	if (p && lock && ((uintptr_t)p & (sz - 1)) == 0) {
		old = host_load(p, sz);
		do {
			new = f(c, i, old, src, fl);
		} while (!cas(p, sz, &old, new));
		return old;
	}
	if (p && !lock) {
		old = host_load(p, sz);
		new = f(c, i, old, src, fl);
		if (write)
			host_store(p, sz, new);
		return old;
	}
	/* Crossing a page, MMIO, a code page, or LOCKed and misaligned. */
	lock = lock && x86_locked_slow_prepare(c, ea, sz);
	if (lock)
		x86_split_lock();
	old = x86_read_slow(c, ea, sz, acc_user(c) | ACC_WRITE);
	new = f(c, i, old, src, fl);
	if (write)
		x86_write_slow(c, ea, sz, new, acc_user(c));
	if (lock)
		x86_split_unlock();
	return old;
}

/* ---- the eight ALU ops and TEST ---- */
#define ALU_HANDLERS(NAME, OP, WRITES)                                                       \
static uint64_t NAME##_f(struct pm_x86_cpu *c, const struct x86_insn *i, uint64_t a,        \
			 uint64_t b, uint64_t *fl)                                             \
{                                                                                            \
	return alu(c->rflags, OP, a, b, i->op[0].size, fl);                                  \
}                                                                                            \
static void NAME##_rr(struct pm_x86_cpu *c, const struct x86_insn *i)                        \
{                                                                                            \
	unsigned int sz = i->op[0].size;                                                     \
	uint64_t fl, r = alu(c->rflags, OP, reg_read(c, i->op[0].reg, sz),                   \
			     reg_read(c, i->op[1].reg, sz), sz, &fl);                        \
	if (WRITES)                                                                          \
		reg_write(c, i->op[0].reg, sz, r);                                           \
	flags_set(c, PM_X86_ARITH, fl);                                                      \
}                                                                                            \
static void NAME##_ri(struct pm_x86_cpu *c, const struct x86_insn *i)                        \
{                                                                                            \
	unsigned int sz = i->op[0].size;                                                     \
	uint64_t fl, r = alu(c->rflags, OP, reg_read(c, i->op[0].reg, sz), i->imm, sz, &fl); \
	if (WRITES)                                                                          \
		reg_write(c, i->op[0].reg, sz, r);                                           \
	flags_set(c, PM_X86_ARITH, fl);                                                      \
}                                                                                            \
static void NAME##_rm(struct pm_x86_cpu *c, const struct x86_insn *i)                        \
{                                                                                            \
	unsigned int sz = i->op[0].size;                                                     \
	uint64_t b = mem_read(c, insn_ea(c, i), sz);                                         \
	uint64_t fl, r = alu(c->rflags, OP, reg_read(c, i->op[0].reg, sz), b, sz, &fl);      \
	if (WRITES)                                                                          \
		reg_write(c, i->op[0].reg, sz, r);                                           \
	flags_set(c, PM_X86_ARITH, fl);                                                      \
}                                                                                            \
static void NAME##_mx(struct pm_x86_cpu *c, const struct x86_insn *i)                        \
{                                                                                            \
	unsigned int sz = i->op[0].size;                                                     \
	uint64_t fl = 0, ea = insn_ea(c, i);                                                 \
	uint64_t b = i->op[1].kind == OP_REG ? reg_read(c, i->op[1].reg, sz) : i->imm;       \
	if (!(WRITES)) {                                                                     \
		alu(c->rflags, OP, mem_read(c, ea, sz), b, sz, &fl);                         \
	} else {                                                                             \
		rmw(c, i, ea, sz, b, i->flags & IF_LOCK, NAME##_f, &fl, true);               \
	}                                                                                    \
	flags_set(c, PM_X86_ARITH, fl);                                                      \
}

ALU_HANDLERS(add, ALU_ADD, 1)
ALU_HANDLERS(or, ALU_OR, 1)
ALU_HANDLERS(adc, ALU_ADC, 1)
ALU_HANDLERS(sbb, ALU_SBB, 1)
ALU_HANDLERS(and, ALU_AND, 1)
ALU_HANDLERS(sub, ALU_SUB, 1)
ALU_HANDLERS(xor, ALU_XOR, 1)
ALU_HANDLERS(cmp, ALU_CMP, 0)
ALU_HANDLERS(test, ALU_TEST, 0)

/* Forms: rr, ri, rm, mx (memory destination with a register or an
 * immediate source). */
static x86_exec_fn alu_form(const struct x86_insn *i, x86_exec_fn rr, x86_exec_fn ri,
			    x86_exec_fn rm, x86_exec_fn mx)
{
	if (i->nops != 2)
		return NULL;
	if (i->op[0].kind == OP_REG) {
		if (i->op[1].kind == OP_REG)
			return rr;
		if (i->op[1].kind == OP_IMM)
			return ri;
		if (i->op[1].kind == OP_MEM)
			return rm;
	} else if (i->op[0].kind == OP_MEM &&
		   (i->op[1].kind == OP_REG || i->op[1].kind == OP_IMM)) {
		return mx;
	}
	return NULL;
}

/* TEST has only r/m, reg|imm forms; an r, m encoding does not exist. */

/* ---- INC, DEC, NEG, NOT ---- */
static uint64_t inc_f(struct pm_x86_cpu *c, const struct x86_insn *i, uint64_t a, uint64_t b,
		      uint64_t *fl)
{
	unsigned int sz = i->op[0].size;
	uint64_t r = (a + 1) & sz_mask(sz);

	(void)b;
	*fl = (flags_add(a & sz_mask(sz), 1, r, 0, sz) & ~PM_X86_CF) | (c->rflags & PM_X86_CF);
	return r;
}

static uint64_t dec_f(struct pm_x86_cpu *c, const struct x86_insn *i, uint64_t a, uint64_t b,
		      uint64_t *fl)
{
	unsigned int sz = i->op[0].size;
	uint64_t r = (a - 1) & sz_mask(sz);

	(void)b;
	*fl = (flags_sub(a & sz_mask(sz), 1, r, 0, sz) & ~PM_X86_CF) | (c->rflags & PM_X86_CF);
	return r;
}

static uint64_t neg_f(struct pm_x86_cpu *c, const struct x86_insn *i, uint64_t a, uint64_t b,
		      uint64_t *fl)
{
	unsigned int sz = i->op[0].size;
	uint64_t r = (0 - a) & sz_mask(sz);

	(void)c;
	(void)b;
	*fl = flags_sub(0, a & sz_mask(sz), r, 0, sz);
	return r;
}

static uint64_t not_f(struct pm_x86_cpu *c, const struct x86_insn *i, uint64_t a, uint64_t b,
		      uint64_t *fl)
{
	(void)b;
	*fl = c->rflags;
	return ~a & sz_mask(i->op[0].size);
}

#define UNARY_HANDLER(NAME, MASK)                                                            \
static void NAME(struct pm_x86_cpu *c, const struct x86_insn *i)                            \
{                                                                                            \
	unsigned int sz = i->op[0].size;                                                     \
	uint64_t fl = 0;                                                                     \
	if (i->op[0].kind == OP_REG) {                                                       \
		reg_write(c, i->op[0].reg, sz,                                               \
			  NAME##_f(c, i, reg_read(c, i->op[0].reg, sz), 0, &fl));            \
	} else {                                                                             \
		rmw(c, i, insn_ea(c, i), sz, 0, i->flags & IF_LOCK, NAME##_f, &fl, true);    \
	}                                                                                    \
	flags_set(c, MASK, fl);                                                              \
}

UNARY_HANDLER(inc, PM_X86_ARITH)
UNARY_HANDLER(dec, PM_X86_ARITH)
UNARY_HANDLER(neg, PM_X86_ARITH)
UNARY_HANDLER(not, 0)

/* ---- MOV and friends ---- */
static void mov_rr(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	reg_write(c, i->op[0].reg, i->op[0].size, reg_read(c, i->op[1].reg, i->op[0].size));
}

static void mov_ri(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	reg_write(c, i->op[0].reg, i->op[0].size, i->imm);
}

static void mov_rm(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	reg_write(c, i->op[0].reg, i->op[0].size, mem_read(c, insn_ea(c, i), i->op[0].size));
}

static void mov_mr(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	mem_write(c, insn_ea(c, i), i->op[0].size, reg_read(c, i->op[1].reg, i->op[0].size));
}

static void mov_mi(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	mem_write(c, insn_ea(c, i), i->op[0].size, i->imm);
}

static void movzx(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	reg_write(c, i->op[0].reg, i->op[0].size, op_read(c, i, 1));
}

static void movsx(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	reg_write(c, i->op[0].reg, i->op[0].size, sext(op_read(c, i, 1), i->op[1].size));
}

static void lea(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	reg_write(c, i->op[0].reg, i->op[0].size, insn_ea(c, i));
}

static uint64_t xchg_f(struct pm_x86_cpu *c, const struct x86_insn *i, uint64_t a, uint64_t b,
		       uint64_t *fl)
{
	(void)c;
	(void)i;
	(void)a;
	*fl = 0;
	return b;
}

static void xchg(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	unsigned int sz = i->op[0].size;
	uint64_t fl;

	if (i->op[0].kind == OP_REG && i->op[1].kind == OP_REG) {
		uint64_t a = reg_read(c, i->op[0].reg, sz), b = reg_read(c, i->op[1].reg, sz);

		reg_write(c, i->op[0].reg, sz, b);
		reg_write(c, i->op[1].reg, sz, a);
		return;
	}
	/* With memory: always locked. The memory operand is op 0 or 1. */
	{
		const struct x86_op *r = i->op[0].kind == OP_REG ? &i->op[0] : &i->op[1];
		uint64_t old = rmw(c, i, insn_ea(c, i), sz, reg_read(c, r->reg, sz), true, xchg_f,
				   &fl, true);

		reg_write(c, r->reg, sz, old);
	}
}

static void cmovcc(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	uint64_t v = op_read(c, i, 1); /* a memory source is read (and may fault) always */

	if (cond_true(c->rflags, i->cond))
		reg_write(c, i->op[0].reg, i->op[0].size, v);
	else if (i->op[0].size == 4)
		reg_write(c, i->op[0].reg, 4, reg_read(c, i->op[0].reg, 4));
}

static void setcc(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	op_write(c, i, 0, cond_true(c->rflags, i->cond));
}

static void bswap(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	unsigned int sz = i->op[0].size;
	uint64_t v = reg_read(c, i->op[0].reg, sz);

	if (sz == 8)
		v = __builtin_bswap64(v);
	else if (sz == 4)
		v = __builtin_bswap32((uint32_t)v);
	else
		v = 0; /* 16-bit BSWAP is undefined; hardware clears the word */
	reg_write(c, i->op[0].reg, sz, v);
}

static void sign_extend_acc(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	uint64_t *a = &c->gpr[PM_X86_RAX], *d = &c->gpr[PM_X86_RDX];

	switch (i->mnemonic) {
	case ZYDIS_MNEMONIC_CBW: reg_write(c, PM_X86_RAX, 2, sext(*a, 1)); break;
	case ZYDIS_MNEMONIC_CWDE: reg_write(c, PM_X86_RAX, 4, sext(*a, 2)); break;
	case ZYDIS_MNEMONIC_CDQE: *a = sext(*a, 4); break;
	case ZYDIS_MNEMONIC_CWD: reg_write(c, PM_X86_RDX, 2, (*a & 0x8000) ? 0xffff : 0); break;
	case ZYDIS_MNEMONIC_CDQ: reg_write(c, PM_X86_RDX, 4, (*a & 0x80000000u) ? ~0ULL : 0); break;
	default: *d = (*a >> 63) ? ~0ULL : 0; break; /* CQO */
	}
}

static void nop(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	(void)c;
	(void)i;
}

static void flagop(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	switch (i->mnemonic) {
	case ZYDIS_MNEMONIC_CLC: c->rflags &= ~PM_X86_CF; break;
	case ZYDIS_MNEMONIC_STC: c->rflags |= PM_X86_CF; break;
	case ZYDIS_MNEMONIC_CMC: c->rflags ^= PM_X86_CF; break;
	case ZYDIS_MNEMONIC_CLD: c->rflags &= ~PM_X86_DF; break;
	case ZYDIS_MNEMONIC_STD: c->rflags |= PM_X86_DF; break;
	case ZYDIS_MNEMONIC_LAHF:
		reg_write(c, REG_AH, 1, (c->rflags & (PM_X86_SF | PM_X86_ZF | PM_X86_AF |
						      PM_X86_PF | PM_X86_CF)) | 2);
		break;
	default: /* SAHF */
		flags_set(c, PM_X86_SF | PM_X86_ZF | PM_X86_AF | PM_X86_PF | PM_X86_CF,
			  reg_read(c, REG_AH, 1));
		break;
	}
}

static void xlat(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	uint64_t a = c->gpr[PM_X86_RBX] + (c->gpr[PM_X86_RAX] & 0xff);

	if (i->asz == 4)
		a = (uint32_t)a;
	if (i->flags & (IF_SEGFS | IF_SEGGS))
		a += c->seg[(i->flags & IF_SEGFS) ? PM_X86_FS : PM_X86_GS].base;
	reg_write(c, PM_X86_RAX, 1, mem_read(c, a, 1));
}

/* ---- shifts and rotates ---- */
enum { SH_ROL, SH_ROR, SH_RCL, SH_RCR, SH_SHL, SH_SHR, SH_SAR };

static uint64_t shift_f(struct pm_x86_cpu *c, const struct x86_insn *i, uint64_t a,
			uint64_t count, uint64_t *fl)
{
	unsigned int sz = i->op[0].size, n = sz * 8;
	uint64_t m = sz_mask(sz), msb = sz_sign(sz), r, f = c->rflags;
	unsigned int cnt = (unsigned int)count & (sz == 8 ? 63 : 31), cf;
	int kind = i->imm2;

	a &= m;
	*fl = f;
	if (cnt == 0)
		return a;
	switch (kind) {
	case SH_SHL:
		r = cnt >= n ? 0 : (a << cnt) & m;
		cf = cnt <= n ? (a >> (n - cnt)) & 1 : 0;
		f = flags_szp(r, sz) | (cf ? PM_X86_CF : 0);
		if (!!(r & msb) != cf)
			f |= PM_X86_OF;
		break;
	case SH_SHR:
		r = cnt >= n ? 0 : a >> cnt;
		cf = cnt <= n ? (a >> (cnt - 1)) & 1 : 0;
		f = flags_szp(r, sz) | (cf ? PM_X86_CF : 0) | ((a & msb) ? PM_X86_OF : 0);
		break;
	case SH_SAR: {
		int64_t s = (int64_t)sext(a, sz);

		r = (uint64_t)(s >> (cnt >= n ? n - 1 : cnt)) & m;
		cf = (uint64_t)(s >> (cnt - 1 >= n ? n - 1 : cnt - 1)) & 1;
		f = flags_szp(r, sz) | (cf ? PM_X86_CF : 0);
		break;
	}
	case SH_ROL: {
		unsigned int k = cnt % n;

		r = k ? ((a << k) | (a >> (n - k))) & m : a;
		f &= ~(PM_X86_CF | PM_X86_OF);
		if (r & 1)
			f |= PM_X86_CF;
		if (!!(r & msb) != !!(r & 1))
			f |= PM_X86_OF;
		break;
	}
	case SH_ROR: {
		unsigned int k = cnt % n;

		r = k ? ((a >> k) | (a << (n - k))) & m : a;
		f &= ~(PM_X86_CF | PM_X86_OF);
		if (r & msb)
			f |= PM_X86_CF;
		if (!!(r & msb) != !!(r & (msb >> 1)))
			f |= PM_X86_OF;
		break;
	}
	case SH_RCL:
	case SH_RCR: {
		unsigned int k = sz == 1 ? cnt % 9 : sz == 2 ? cnt % 17 : cnt;
		unsigned int carry = f & PM_X86_CF;

		r = a;
		for (unsigned int s = 0; s < k; s++) {
			unsigned int out;

			if (kind == SH_RCL) {
				out = !!(r & msb);
				r = ((r << 1) | carry) & m;
			} else {
				out = r & 1;
				r = (r >> 1) | (carry ? msb : 0);
			}
			carry = out;
		}
		f &= ~(PM_X86_CF | PM_X86_OF);
		if (carry)
			f |= PM_X86_CF;
		if (kind == SH_RCL ? (!!(r & msb) != carry) : (!!(r & msb) != !!(r & (msb >> 1))))
			f |= PM_X86_OF;
		break;
	}
	default:
		r = a;
	}
	*fl = f;
	return r;
}

static void shift(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	unsigned int sz = i->op[0].size;
	uint64_t count, fl;

	if (i->nops < 2)
		count = 1;
	else if (i->op[1].kind == OP_IMM)
		count = i->imm;
	else
		count = reg_read(c, i->op[1].reg, 1);
	if (i->op[0].kind == OP_REG)
		reg_write(c, i->op[0].reg, sz, shift_f(c, i, reg_read(c, i->op[0].reg, sz), count,
						       &fl));
	else
		rmw(c, i, insn_ea(c, i), sz, count, false, shift_f, &fl, true);
	c->rflags = (c->rflags & ~PM_X86_ARITH) | (fl & PM_X86_ARITH);
}

/* SHLD/SHRD: op0 dest, op1 source register, op2 count. */
static uint64_t shxd_f(struct pm_x86_cpu *c, const struct x86_insn *i, uint64_t a,
		       uint64_t b, uint64_t *fl)
{
	unsigned int sz = i->op[0].size, n = sz * 8;
	uint64_t m = sz_mask(sz), msb = sz_sign(sz), r, f;
	unsigned int cnt, cf;
	bool left = i->mnemonic == ZYDIS_MNEMONIC_SHLD;

	cnt = (unsigned int)(i->op[2].kind == OP_IMM ? i->imm : reg_read(c, PM_X86_RCX, 1));
	cnt &= sz == 8 ? 63 : 31;
	a &= m;
	b &= m;
	*fl = c->rflags;
	if (cnt == 0)
		return a;
	if (n == 16 && cnt > 16) {
		/* Undefined: the engine shifts through the 32-bit b:a:b. */
		unsigned __int128 w = left ? ((unsigned __int128)a << 32 | (uint64_t)b << 16 | a)
					   : ((unsigned __int128)b << 32 | (uint64_t)a << 16 | b);
		r = left ? (uint64_t)(w >> (48 - cnt)) & m : (uint64_t)(w >> cnt) & m;
		cf = left ? (uint64_t)(w >> (48 - cnt + 16)) & 1 : (uint64_t)(w >> (cnt - 1)) & 1;
	} else if (left) {
		r = ((a << cnt) | (cnt == n ? b : b >> (n - cnt))) & m;
		if (cnt == n)
			r = b;
		cf = (a >> (n - cnt)) & 1;
	} else {
		r = ((a >> cnt) | (b << (n - cnt))) & m;
		if (cnt == n)
			r = b;
		cf = (a >> (cnt - 1)) & 1;
	}
	f = flags_szp(r, sz) | (cf ? PM_X86_CF : 0);
	if ((r ^ a) & msb)
		f |= PM_X86_OF;
	*fl = f;
	return r;
}

static void shxd(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	unsigned int sz = i->op[0].size;
	uint64_t b = reg_read(c, i->op[1].reg, sz), fl;

	if (i->op[0].kind == OP_REG)
		reg_write(c, i->op[0].reg, sz, shxd_f(c, i, reg_read(c, i->op[0].reg, sz), b, &fl));
	else
		rmw(c, i, insn_ea(c, i), sz, b, false, shxd_f, &fl, true);
	c->rflags = (c->rflags & ~PM_X86_ARITH) | (fl & PM_X86_ARITH);
}

/* ---- multiply and divide ---- */
static uint64_t mul_flags(uint64_t lo, unsigned int sz, bool overflow)
{
	return flags_szp(lo, sz) | (overflow ? PM_X86_CF | PM_X86_OF : 0);
}

static void mul1(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	unsigned int sz = i->op[0].size;
	uint64_t src = op_read(c, i, 0), a = reg_read(c, PM_X86_RAX, sz), lo, hi;
	bool sgn = i->mnemonic == ZYDIS_MNEMONIC_IMUL;

	if (sz == 8) {
		if (sgn) {
			__int128 p = (__int128)(int64_t)a * (int64_t)src;

			lo = (uint64_t)p;
			hi = (uint64_t)(p >> 64);
		} else {
			unsigned __int128 p = (unsigned __int128)a * src;

			lo = (uint64_t)p;
			hi = (uint64_t)(p >> 64);
		}
	} else {
		uint64_t p = sgn ? (uint64_t)((int64_t)sext(a, sz) * (int64_t)sext(src, sz)) : a * src;

		lo = p & sz_mask(sz);
		hi = (p >> (sz * 8)) & sz_mask(sz);
	}
	if (sz == 1) {
		reg_write(c, PM_X86_RAX, 2, lo | (hi << 8));
	} else {
		reg_write(c, PM_X86_RAX, sz, lo);
		reg_write(c, PM_X86_RDX, sz, hi);
	}
	flags_set(c, PM_X86_ARITH, mul_flags(lo, sz, sgn ? hi != ((lo & sz_sign(sz)) ? sz_mask(sz) : 0)
							: hi != 0));
}

/* IMUL r, r/m and IMUL r, r/m, imm: the truncated product. */
static void imul2(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	unsigned int sz = i->op[0].size;
	int64_t a = (int64_t)sext(i->nops == 3 ? op_read(c, i, 1) : reg_read(c, i->op[0].reg, sz), sz);
	int64_t b = (int64_t)sext(i->nops == 3 ? i->imm : op_read(c, i, 1), sz);
	uint64_t lo;
	bool ovf;

	if (sz == 8) {
		__int128 p = (__int128)a * b;

		lo = (uint64_t)p;
		ovf = p != (__int128)(int64_t)lo;
	} else {
		int64_t p = a * b;

		lo = (uint64_t)p & sz_mask(sz);
		ovf = p != (int64_t)sext(lo, sz);
	}
	reg_write(c, i->op[0].reg, sz, lo);
	flags_set(c, PM_X86_ARITH, mul_flags(lo, sz, ovf));
}

static void divide(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	unsigned int sz = i->op[0].size;
	uint64_t d = op_read(c, i, 0), q, r;
	bool sgn = i->mnemonic == ZYDIS_MNEMONIC_IDIV;

	if ((d & sz_mask(sz)) == 0)
		x86_raise(c, PM_X86_EXC_DE, false, 0);
	if (sz == 8) {
		unsigned __int128 n = ((unsigned __int128)c->gpr[PM_X86_RDX] << 64) | c->gpr[PM_X86_RAX];

		if (sgn) {
			__int128 sn = (__int128)n, sq;

			if ((int64_t)d == -1 && sn == (__int128)((unsigned __int128)1 << 127))
				x86_raise(c, PM_X86_EXC_DE, false, 0);
			sq = sn / (int64_t)d;
			if (sq > INT64_MAX || sq < INT64_MIN)
				x86_raise(c, PM_X86_EXC_DE, false, 0);
			q = (uint64_t)sq;
			r = (uint64_t)(sn % (int64_t)d);
		} else {
			if (c->gpr[PM_X86_RDX] >= d)
				x86_raise(c, PM_X86_EXC_DE, false, 0);
			q = (uint64_t)(n / d);
			r = (uint64_t)(n % d);
		}
	} else {
		unsigned int bits = sz * 8;
		uint64_t n = sz == 1 ? reg_read(c, PM_X86_RAX, 2)
				     : (reg_read(c, PM_X86_RDX, sz) << bits) | reg_read(c, PM_X86_RAX, sz);

		if (sgn) {
			int64_t sn = (int64_t)sext(n, sz * 2), sd = (int64_t)sext(d, sz), sq;

			sq = sn / sd;
			if (sq > (int64_t)(sz_sign(sz) - 1) || sq < -(int64_t)sz_sign(sz))
				x86_raise(c, PM_X86_EXC_DE, false, 0);
			q = (uint64_t)sq & sz_mask(sz);
			r = (uint64_t)(sn % sd) & sz_mask(sz);
		} else {
			q = n / d;
			if (q > sz_mask(sz))
				x86_raise(c, PM_X86_EXC_DE, false, 0);
			r = n % d;
		}
	}
	if (sz == 1) {
		reg_write(c, PM_X86_RAX, 2, (q & 0xff) | ((r & 0xff) << 8));
	} else {
		reg_write(c, PM_X86_RAX, sz, q);
		reg_write(c, PM_X86_RDX, sz, r);
	}
}

/* ---- bit test, scan, count ---- */
static uint64_t bt_f(struct pm_x86_cpu *c, const struct x86_insn *i, uint64_t a, uint64_t bit,
		     uint64_t *fl)
{
	uint64_t mask = 1ULL << bit;

	*fl = (c->rflags & ~PM_X86_CF) | ((a & mask) ? PM_X86_CF : 0);
	switch (i->mnemonic) {
	case ZYDIS_MNEMONIC_BTS: return a | mask;
	case ZYDIS_MNEMONIC_BTR: return a & ~mask;
	case ZYDIS_MNEMONIC_BTC: return a ^ mask;
	default: return a;
	}
}

static void bt(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	unsigned int sz = i->op[0].size, n = sz * 8;
	uint64_t off = i->op[1].kind == OP_IMM ? i->imm : reg_read(c, i->op[1].reg, sz), fl;
	bool write = i->mnemonic != ZYDIS_MNEMONIC_BT;

	if (i->op[0].kind == OP_REG) {
		uint64_t r = bt_f(c, i, reg_read(c, i->op[0].reg, sz), off & (n - 1), &fl);

		if (write)
			reg_write(c, i->op[0].reg, sz, r);
	} else {
		uint64_t ea = insn_ea(c, i);

		if (i->op[1].kind == OP_REG) {
			/* A register offset addresses beyond the operand (signed). */
			int64_t so = (int64_t)sext(off, sz);

			ea += (uint64_t)((so >> (sz == 8 ? 6 : sz == 4 ? 5 : 4)) * (int64_t)sz);
		}
		if (write)
			rmw(c, i, ea, sz, off & (n - 1), i->flags & IF_LOCK, bt_f, &fl, true);
		else
			bt_f(c, i, mem_read(c, ea, sz), off & (n - 1), &fl);
	}
	c->rflags = fl;
}

static void bitscan(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	unsigned int sz = i->op[0].size, n = sz * 8;
	uint64_t src = op_read(c, i, 1) & sz_mask(sz), r;

	switch (i->mnemonic) {
	case ZYDIS_MNEMONIC_BSF:
	case ZYDIS_MNEMONIC_BSR:
		if (!src) {
			c->rflags |= PM_X86_ZF;
			return; /* destination unchanged */
		}
		r = i->mnemonic == ZYDIS_MNEMONIC_BSF ? (uint64_t)__builtin_ctzll(src)
						       : 63 - (uint64_t)__builtin_clzll(src);
		c->rflags &= ~PM_X86_ZF;
		reg_write(c, i->op[0].reg, sz, r);
		return;
	case ZYDIS_MNEMONIC_TZCNT:
		r = src ? (uint64_t)__builtin_ctzll(src) : n;
		break;
	case ZYDIS_MNEMONIC_LZCNT:
		r = src ? (uint64_t)__builtin_clzll(src) - (64 - n) : n;
		break;
	default: /* POPCNT */
		r = (uint64_t)__builtin_popcountll(src);
		reg_write(c, i->op[0].reg, sz, r);
		flags_set(c, PM_X86_ARITH, src ? 0 : PM_X86_ZF);
		return;
	}
	reg_write(c, i->op[0].reg, sz, r);
	flags_set(c, PM_X86_CF | PM_X86_ZF, (src ? 0 : PM_X86_CF) | (r ? 0 : PM_X86_ZF));
}

/* ---- XADD, CMPXCHG ---- */
static uint64_t xadd_f(struct pm_x86_cpu *c, const struct x86_insn *i, uint64_t a, uint64_t b,
		       uint64_t *fl)
{
	return alu(c->rflags, ALU_ADD, a, b, i->op[0].size, fl);
}

static void xadd(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	unsigned int sz = i->op[0].size;
	uint64_t b = reg_read(c, i->op[1].reg, sz), fl, old;

	if (i->op[0].kind == OP_REG) {
		old = reg_read(c, i->op[0].reg, sz);
		reg_write(c, i->op[1].reg, sz, old);
		reg_write(c, i->op[0].reg, sz, xadd_f(c, i, old, b, &fl));
	} else {
		old = rmw(c, i, insn_ea(c, i), sz, b, i->flags & IF_LOCK, xadd_f, &fl, true);
		reg_write(c, i->op[1].reg, sz, old);
	}
	flags_set(c, PM_X86_ARITH, fl);
}

static uint64_t cmpxchg_f(struct pm_x86_cpu *c, const struct x86_insn *i, uint64_t a,
			  uint64_t b, uint64_t *fl)
{
	unsigned int sz = i->op[0].size;
	uint64_t acc = reg_read(c, PM_X86_RAX, sz);

	alu(c->rflags, ALU_CMP, acc, a, sz, fl);
	return (a & sz_mask(sz)) == acc ? b : a; /* memory is always written */
}

static void cmpxchg(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	unsigned int sz = i->op[0].size;
	uint64_t b = reg_read(c, i->op[1].reg, sz), fl, old;

	if (i->op[0].kind == OP_REG) {
		/* A register destination is written only when equal (a 32-bit
		 * one keeps its upper half otherwise, as the host CPUs do). */
		old = reg_read(c, i->op[0].reg, sz);
		cmpxchg_f(c, i, old, b, &fl);
		if (fl & PM_X86_ZF)
			reg_write(c, i->op[0].reg, sz, b);
	} else {
		old = rmw(c, i, insn_ea(c, i), sz, b, i->flags & IF_LOCK, cmpxchg_f, &fl, true);
	}
	if (!(fl & PM_X86_ZF))
		reg_write(c, PM_X86_RAX, sz, old);
	flags_set(c, PM_X86_ARITH, fl);
}

static bool cas16(uint8_t *p, uint64_t *lo, uint64_t *hi, uint64_t nlo, uint64_t nhi)
{
	bool ok;

	__asm__ __volatile__("lock cmpxchg16b %1\n\tsete %0"
			     : "=q"(ok), "+m"(*(unsigned __int128 *)p), "+a"(*lo), "+d"(*hi)
			     : "b"(nlo), "c"(nhi)
			     : "memory", "cc");
	return ok;
}

static void cmpxchg8b16b(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	bool wide = i->mnemonic == ZYDIS_MNEMONIC_CMPXCHG16B;
	unsigned int half = wide ? 8 : 4;
	uint64_t ea = insn_ea(c, i), m = sz_mask(half);
	uint64_t elo = c->gpr[PM_X86_RAX] & m, ehi = c->gpr[PM_X86_RDX] & m;
	uint64_t nlo = c->gpr[PM_X86_RBX] & m, nhi = c->gpr[PM_X86_RCX] & m;
	uint64_t olo, ohi;
	uint8_t *p;
	bool eq;

	if (wide && (ea & 15))
		x86_gp(c, 0);
	p = x86_rmw_ptr(c, ea, 2 * half);
	if (p && !((uintptr_t)p & (2 * half - 1))) {
		if (wide) {
			olo = elo;
			ohi = ehi;
			eq = cas16(p, &olo, &ohi, nlo, nhi);
		} else {
			uint64_t o = elo | (ehi << 32);

			eq = __atomic_compare_exchange_n((uint64_t *)p, &o, nlo | (nhi << 32), false,
							 __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
			olo = o & m;
			ohi = o >> 32;
		}
	} else {
		bool locked = x86_locked_slow_prepare(c, ea, 2 * half);

		if (locked)
			x86_split_lock();
		olo = x86_read_slow(c, ea, half, acc_user(c) | ACC_WRITE);
		ohi = x86_read_slow(c, ea + half, half, acc_user(c) | ACC_WRITE);
		eq = olo == elo && ohi == ehi;
		x86_write_slow(c, ea, half, eq ? nlo : olo, acc_user(c));
		x86_write_slow(c, ea + half, half, eq ? nhi : ohi, acc_user(c));
		if (locked)
			x86_split_unlock();
	}
	if (eq) {
		c->rflags |= PM_X86_ZF;
	} else {
		c->rflags &= ~PM_X86_ZF;
		reg_write(c, PM_X86_RAX, half, olo);
		reg_write(c, PM_X86_RDX, half, ohi);
	}
}

x86_exec_fn x86_select_alu(struct x86_insn *i)
{
	switch (i->mnemonic) {
	case ZYDIS_MNEMONIC_ADD: return alu_form(i, add_rr, add_ri, add_rm, add_mx);
	case ZYDIS_MNEMONIC_OR: return alu_form(i, or_rr, or_ri, or_rm, or_mx);
	case ZYDIS_MNEMONIC_ADC: return alu_form(i, adc_rr, adc_ri, adc_rm, adc_mx);
	case ZYDIS_MNEMONIC_SBB: return alu_form(i, sbb_rr, sbb_ri, sbb_rm, sbb_mx);
	case ZYDIS_MNEMONIC_AND: return alu_form(i, and_rr, and_ri, and_rm, and_mx);
	case ZYDIS_MNEMONIC_SUB: return alu_form(i, sub_rr, sub_ri, sub_rm, sub_mx);
	case ZYDIS_MNEMONIC_XOR: return alu_form(i, xor_rr, xor_ri, xor_rm, xor_mx);
	case ZYDIS_MNEMONIC_CMP: return alu_form(i, cmp_rr, cmp_ri, cmp_rm, cmp_mx);
	case ZYDIS_MNEMONIC_TEST: return alu_form(i, test_rr, test_ri, test_rm, test_mx);
	case ZYDIS_MNEMONIC_INC: return inc;
	case ZYDIS_MNEMONIC_DEC: return dec;
	case ZYDIS_MNEMONIC_NEG: return neg;
	case ZYDIS_MNEMONIC_NOT: return not;
	case ZYDIS_MNEMONIC_MOV:
		if (i->op[0].kind == OP_REG && i->op[1].kind == OP_REG)
			return mov_rr;
		if (i->op[0].kind == OP_REG && i->op[1].kind == OP_IMM)
			return mov_ri;
		if (i->op[0].kind == OP_REG && i->op[1].kind == OP_MEM)
			return mov_rm;
		if (i->op[0].kind == OP_MEM && i->op[1].kind == OP_REG)
			return mov_mr;
		if (i->op[0].kind == OP_MEM && i->op[1].kind == OP_IMM)
			return mov_mi;
		return NULL; /* segment, control and debug registers: sys.c */
	case ZYDIS_MNEMONIC_MOVZX: return movzx;
	case ZYDIS_MNEMONIC_MOVSX:
	case ZYDIS_MNEMONIC_MOVSXD: return movsx;
	case ZYDIS_MNEMONIC_LEA:
		i->flags &= ~(IF_SEGFS | IF_SEGGS); /* an offset, not an address */
		return lea;
	case ZYDIS_MNEMONIC_XCHG: return xchg;
	case ZYDIS_MNEMONIC_BSWAP: return bswap;
	case ZYDIS_MNEMONIC_CBW: case ZYDIS_MNEMONIC_CWDE: case ZYDIS_MNEMONIC_CDQE:
	case ZYDIS_MNEMONIC_CWD: case ZYDIS_MNEMONIC_CDQ: case ZYDIS_MNEMONIC_CQO:
		return sign_extend_acc;
	case ZYDIS_MNEMONIC_NOP: case ZYDIS_MNEMONIC_ENDBR64: case ZYDIS_MNEMONIC_PREFETCH:
	case ZYDIS_MNEMONIC_PREFETCHNTA: case ZYDIS_MNEMONIC_PREFETCHT0:
	case ZYDIS_MNEMONIC_PREFETCHT1: case ZYDIS_MNEMONIC_PREFETCHT2:
	case ZYDIS_MNEMONIC_PREFETCHW: case ZYDIS_MNEMONIC_PAUSE:
		return nop;
	case ZYDIS_MNEMONIC_CLC: case ZYDIS_MNEMONIC_STC: case ZYDIS_MNEMONIC_CMC:
	case ZYDIS_MNEMONIC_CLD: case ZYDIS_MNEMONIC_STD: case ZYDIS_MNEMONIC_LAHF:
	case ZYDIS_MNEMONIC_SAHF:
		return flagop;
	case ZYDIS_MNEMONIC_XLAT: return xlat;
	case ZYDIS_MNEMONIC_ROL: i->imm2 = SH_ROL; return shift;
	case ZYDIS_MNEMONIC_ROR: i->imm2 = SH_ROR; return shift;
	case ZYDIS_MNEMONIC_RCL: i->imm2 = SH_RCL; return shift;
	case ZYDIS_MNEMONIC_RCR: i->imm2 = SH_RCR; return shift;
	case ZYDIS_MNEMONIC_SHL: i->imm2 = SH_SHL; return shift;
	case ZYDIS_MNEMONIC_SHR: i->imm2 = SH_SHR; return shift;
	case ZYDIS_MNEMONIC_SAR: i->imm2 = SH_SAR; return shift;
	case ZYDIS_MNEMONIC_SHLD: case ZYDIS_MNEMONIC_SHRD: return shxd;
	case ZYDIS_MNEMONIC_MUL: return mul1;
	case ZYDIS_MNEMONIC_IMUL: return i->nops == 1 ? mul1 : imul2;
	case ZYDIS_MNEMONIC_DIV: case ZYDIS_MNEMONIC_IDIV: return divide;
	case ZYDIS_MNEMONIC_BT: case ZYDIS_MNEMONIC_BTS: case ZYDIS_MNEMONIC_BTR:
	case ZYDIS_MNEMONIC_BTC:
		return bt;
	case ZYDIS_MNEMONIC_BSF: case ZYDIS_MNEMONIC_BSR: case ZYDIS_MNEMONIC_TZCNT:
	case ZYDIS_MNEMONIC_LZCNT: case ZYDIS_MNEMONIC_POPCNT:
		return bitscan;
	case ZYDIS_MNEMONIC_XADD: return xadd;
	case ZYDIS_MNEMONIC_CMPXCHG: return cmpxchg;
	case ZYDIS_MNEMONIC_CMPXCHG8B: case ZYDIS_MNEMONIC_CMPXCHG16B: return cmpxchg8b16b;
	default:
		break;
	}
	if (i->cond != COND_NONE) {
		const char *name = ZydisMnemonicGetString((ZydisMnemonic)i->mnemonic);

		if (!strncmp(name, "set", 3))
			return setcc;
		if (!strncmp(name, "cmov", 4))
			return cmovcc;
	}
	return NULL;
}

/* SPDX-License-Identifier: MIT */
/*
 * Decoding: Zydis' full decode of one instruction, turned into the
 * engine's compact `struct x86_insn` (internal.h) with its handler chosen
 * once. Only the explicit operands are kept: each handler knows its
 * implicit ones (RAX for MUL, RSI/RDI for MOVS, the stack for PUSH).
 *
 * An encoding Zydis rejects, an operand kind the engine has no registers
 * for (MMX, x87, YMM, masks, bounds) and a mnemonic no handler claims all
 * decode to x86_exec_ud: the guest takes #UD, never a silent wrong result.
 *
 * The decoder is a process-wide constant set up once (pthread_once) and
 * only read afterwards.
 */
#include <pthread.h>
#include <Zydis/Zydis.h>
#include "vcpu/x86/internal.h"

static ZydisDecoder decoder;
static pthread_once_t decoder_once = PTHREAD_ONCE_INIT;

static void decoder_setup(void)
{
	ZyanStatus st = ZydisDecoderInit(&decoder, ZYDIS_MACHINE_MODE_LONG_64,
					 ZYDIS_STACK_WIDTH_64);

	PM_BUG_ON(!ZYAN_SUCCESS(st));
}

void x86_decoder_init(void)
{
	pthread_once(&decoder_once, decoder_setup);
}

void x86_exec_ud(struct pm_x86_cpu *c, const struct x86_insn *i)
{
	(void)i;
	x86_ud(c);
}

/* A GPR in the engine's numbering; false for any other register. */
static bool map_gpr(ZydisRegister r, uint8_t *out, uint8_t *size)
{
	ZydisRegisterClass cls = ZydisRegisterGetClass(r);
	int id = ZydisRegisterGetId(r);

	switch (cls) {
	case ZYDIS_REGCLASS_GPR8:
		*size = 1;
		if (id < 4)
			*out = (uint8_t)id;
		else if (id < 8)
			*out = (uint8_t)(REG_AH + id - 4);
		else
			*out = (uint8_t)(id - 4);
		return true;
	case ZYDIS_REGCLASS_GPR16: *size = 2; *out = (uint8_t)id; return true;
	case ZYDIS_REGCLASS_GPR32: *size = 4; *out = (uint8_t)id; return true;
	case ZYDIS_REGCLASS_GPR64: *size = 8; *out = (uint8_t)id; return true;
	default: return false;
	}
}

static bool map_reg_operand(ZydisRegister r, struct x86_op *o)
{
	ZydisRegisterClass cls = ZydisRegisterGetClass(r);

	if (map_gpr(r, &o->reg, &o->size)) {
		o->kind = OP_REG;
		return true;
	}
	o->reg = (uint8_t)ZydisRegisterGetId(r);
	switch (cls) {
	case ZYDIS_REGCLASS_XMM: o->kind = OP_XMM; o->size = 16; return true;
	case ZYDIS_REGCLASS_SEGMENT: o->kind = OP_SEG; o->size = 2; return true;
	case ZYDIS_REGCLASS_CONTROL: o->kind = OP_CR; o->size = 8; return true;
	case ZYDIS_REGCLASS_DEBUG: o->kind = OP_DR; o->size = 8; return true;
	default: return false;
	}
}

static bool map_mem_operand(const ZydisDecodedOperand *zo, struct x86_insn *i, struct x86_op *o)
{
	uint8_t sz;

	if (zo->mem.type != ZYDIS_MEMOP_TYPE_MEM && zo->mem.type != ZYDIS_MEMOP_TYPE_AGEN)
		return false;
	o->kind = OP_MEM;
	o->size = (uint8_t)(zo->size / 8 > 255 ? 0 : zo->size / 8);
	if (zo->mem.base == ZYDIS_REGISTER_NONE)
		i->base = REG_NONE;
	else if (zo->mem.base == ZYDIS_REGISTER_RIP)
		i->base = REG_RIP;
	else if (!map_gpr(zo->mem.base, &i->base, &sz) || sz < 4)
		return false;
	if (zo->mem.index == ZYDIS_REGISTER_NONE)
		i->index = REG_NONE;
	else if (!map_gpr(zo->mem.index, &i->index, &sz) || sz < 4)
		return false;
	i->scale = zo->mem.scale == 8 ? 3 : zo->mem.scale == 4 ? 2 : zo->mem.scale == 2 ? 1 : 0;
	if (zo->mem.disp.value > INT32_MAX || zo->mem.disp.value < INT32_MIN) {
		/* The moffs forms (MOV AL, [imm64]) have no base, no index
		 * and no immediate: the address goes in imm. */
		if (i->base != REG_NONE || i->index != REG_NONE)
			return false;
		i->flags |= IF_ABS64;
		i->imm = (uint64_t)zo->mem.disp.value;
	} else {
		i->disp = (int32_t)zo->mem.disp.value;
	}
	if (zo->mem.segment == ZYDIS_REGISTER_FS)
		i->flags |= IF_SEGFS;
	else if (zo->mem.segment == ZYDIS_REGISTER_GS)
		i->flags |= IF_SEGGS;
	return true;
}

/* The condition code of Jcc/SETcc/CMOVcc mnemonics: Zydis orders each
 * family O, NO, B, NB, BE, NBE... differently from the encoding, so map by
 * name suffix instead of by offset. */
static int cond_of(ZydisMnemonic m)
{
	static const struct { ZydisMnemonic j, s, c; } tab[16] = {
		{ ZYDIS_MNEMONIC_JO, ZYDIS_MNEMONIC_SETO, ZYDIS_MNEMONIC_CMOVO },
		{ ZYDIS_MNEMONIC_JNO, ZYDIS_MNEMONIC_SETNO, ZYDIS_MNEMONIC_CMOVNO },
		{ ZYDIS_MNEMONIC_JB, ZYDIS_MNEMONIC_SETB, ZYDIS_MNEMONIC_CMOVB },
		{ ZYDIS_MNEMONIC_JNB, ZYDIS_MNEMONIC_SETNB, ZYDIS_MNEMONIC_CMOVNB },
		{ ZYDIS_MNEMONIC_JZ, ZYDIS_MNEMONIC_SETZ, ZYDIS_MNEMONIC_CMOVZ },
		{ ZYDIS_MNEMONIC_JNZ, ZYDIS_MNEMONIC_SETNZ, ZYDIS_MNEMONIC_CMOVNZ },
		{ ZYDIS_MNEMONIC_JBE, ZYDIS_MNEMONIC_SETBE, ZYDIS_MNEMONIC_CMOVBE },
		{ ZYDIS_MNEMONIC_JNBE, ZYDIS_MNEMONIC_SETNBE, ZYDIS_MNEMONIC_CMOVNBE },
		{ ZYDIS_MNEMONIC_JS, ZYDIS_MNEMONIC_SETS, ZYDIS_MNEMONIC_CMOVS },
		{ ZYDIS_MNEMONIC_JNS, ZYDIS_MNEMONIC_SETNS, ZYDIS_MNEMONIC_CMOVNS },
		{ ZYDIS_MNEMONIC_JP, ZYDIS_MNEMONIC_SETP, ZYDIS_MNEMONIC_CMOVP },
		{ ZYDIS_MNEMONIC_JNP, ZYDIS_MNEMONIC_SETNP, ZYDIS_MNEMONIC_CMOVNP },
		{ ZYDIS_MNEMONIC_JL, ZYDIS_MNEMONIC_SETL, ZYDIS_MNEMONIC_CMOVL },
		{ ZYDIS_MNEMONIC_JNL, ZYDIS_MNEMONIC_SETNL, ZYDIS_MNEMONIC_CMOVNL },
		{ ZYDIS_MNEMONIC_JLE, ZYDIS_MNEMONIC_SETLE, ZYDIS_MNEMONIC_CMOVLE },
		{ ZYDIS_MNEMONIC_JNLE, ZYDIS_MNEMONIC_SETNLE, ZYDIS_MNEMONIC_CMOVNLE },
	};

	for (int cc = 0; cc < 16; cc++)
		if (tab[cc].j == m || tab[cc].s == m || tab[cc].c == m)
			return cc;
	return -1;
}

static bool has_prefix(const ZydisDecodedInstruction *zi, uint8_t byte)
{
	for (unsigned int k = 0; k < zi->raw.prefix_count; k++)
		if (zi->raw.prefixes[k].value == byte)
			return true;
	return false;
}

static x86_exec_fn select_handler(struct x86_insn *i)
{
	x86_exec_fn fn;

	if ((fn = x86_select_alu(i)) || (fn = x86_select_ctl(i)) ||
	    (fn = x86_select_string(i)) || (fn = x86_select_sys(i)) ||
	    (fn = x86_select_sse_fp(i)) || (fn = x86_select_sse(i)))
		return fn;
	return NULL;
}

int x86_decode(const uint8_t *bytes, unsigned int avail, uint64_t rip, struct x86_insn *i)
{
	ZydisDecodedInstruction zi;
	ZydisDecodedOperand zo[ZYDIS_MAX_OPERAND_COUNT];
	ZyanStatus st;
	unsigned int n = 0;
	int cc;

	x86_decoder_init();
	memset(i, 0, sizeof(*i));
	i->base = i->index = REG_NONE;
	st = ZydisDecoderDecodeFull(&decoder, bytes, avail, &zi, zo);
	if (st == ZYDIS_STATUS_NO_MORE_DATA)
		return avail >= 15 ? -1 : 0;
	if (!ZYAN_SUCCESS(st) || zi.machine_mode != ZYDIS_MACHINE_MODE_LONG_64)
		return -1;
	i->len = zi.length;
	i->mnemonic = (uint16_t)zi.mnemonic;
	i->osz = (uint8_t)(zi.operand_width / 8);
	i->asz = (uint8_t)(zi.address_width / 8);
	if (zi.attributes & ZYDIS_ATTRIB_HAS_LOCK)
		i->flags |= IF_LOCK;
	if (zi.attributes & (ZYDIS_ATTRIB_HAS_REP | ZYDIS_ATTRIB_HAS_REPE))
		i->flags |= IF_REP;
	if (zi.attributes & ZYDIS_ATTRIB_HAS_REPNE)
		i->flags |= IF_REPNE;
	/* VMGEXIT is REP VMMCALL; Zydis 4.0 names it VMMCALL. */
	if (zi.mnemonic == ZYDIS_MNEMONIC_VMMCALL && has_prefix(&zi, 0xf3))
		i->flags |= IF_REP;
	/* VEX, EVEX, XOP, 3DNow!: AVX, AVX-512 and BMI are not in the CPU
	 * model, so their encodings are #UD. */
	if (zi.encoding != ZYDIS_INSTRUCTION_ENCODING_LEGACY)
		goto unsupported;
	/* Segment overrides matter for FS/GS bases even on implicit
	 * memory operands (string instructions' source). */
	if (zi.attributes & ZYDIS_ATTRIB_HAS_SEGMENT_FS)
		i->flags |= IF_SEGFS;
	else if (zi.attributes & ZYDIS_ATTRIB_HAS_SEGMENT_GS)
		i->flags |= IF_SEGGS;

	for (unsigned int k = 0; k < zi.operand_count_visible && n < 4; k++) {
		const ZydisDecodedOperand *o = &zo[k];
		struct x86_op *x = &i->op[n];

		switch (o->type) {
		case ZYDIS_OPERAND_TYPE_REGISTER:
			if (!map_reg_operand(o->reg.value, x))
				goto unsupported;
			break;
		case ZYDIS_OPERAND_TYPE_MEMORY:
			if (!map_mem_operand(o, i, x))
				goto unsupported;
			break;
		case ZYDIS_OPERAND_TYPE_IMMEDIATE:
			x->kind = OP_IMM;
			x->size = i->osz ? i->osz : 8;
			if (n > 0 && i->op[n - 1].kind == OP_IMM) {
				/* ENTER's nesting level, EXTRQ's second byte */
				i->imm2 = (uint8_t)o->imm.value.u;
				x->size = 1;
				break;
			}
			if (o->imm.is_relative)
				i->imm = rip + zi.length + (uint64_t)o->imm.value.s;
			else if (o->imm.is_signed)
				i->imm = (uint64_t)o->imm.value.s;
			else
				i->imm = o->imm.value.u;
			break;
		default:
			goto unsupported;
		}
		n++;
	}
	i->nops = (uint8_t)n;
	cc = cond_of(zi.mnemonic);
	i->cond = cc < 0 ? COND_NONE : (uint8_t)cc;
	if (zi.meta.branch_type == ZYDIS_BRANCH_TYPE_FAR)
		i->flags |= IF_FAR;
	i->fn = select_handler(i);
	if (!i->fn)
		goto unsupported;
	return i->len;

unsupported:
	i->len = zi.length;
	i->fn = x86_exec_ud;
	i->flags |= IF_ENDS;
	return i->len;
}

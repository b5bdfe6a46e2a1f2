/* SPDX-License-Identifier: MIT */
/*
 * test_x86_alu: differential tests of the engine's integer and SSE
 * instructions against the host CPU.
 *
 * Each case is an assembly stub in this binary: it loads registers, flags,
 * a memory slot and two XMM registers from a `struct io`, executes one
 * instruction, and stores everything back. The same machine code runs
 * natively (called from C) and in the engine (through a `call; hlt`
 * trampoline in tests/lib/x86_env's identity mapping), on the same random
 * and edge inputs and input flags; results and the defined flags must be
 * equal.
 *
 * Flags the SDM calls undefined are masked, per instruction and input:
 * AF after AND/OR/XOR/TEST and shifts/rotates by a non-zero count; OF after
 * shifts and rotates by more than one (SHL/SHR/SAR/ROL/ROR/RCL/RCR/SHLD/
 * SHRD); CF after SHL/SHR by at least the operand size; SF, ZF, AF, PF
 * after MUL/IMUL; everything after DIV/IDIV; all but CF after BT*; all but
 * ZF after BSF/BSR; all but CF and ZF after TZCNT/LZCNT. SHLD/SHRD results
 * for counts above 16 at 16 bits are undefined and not compared; inputs
 * that would raise #DE natively are skipped.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "lib/x86_env.h"

struct io {
	uint64_t rdi, rsi, rax, rdx, rcx, rbx, flags, pad;   /* 0..63 in */
	uint64_t mem, mem2;                                  /* 64: memory slot (16-aligned) */
	uint8_t xmm0[16], xmm1[16];                          /* 80, 96 */
	uint64_t o_rdi, o_rsi, o_rax, o_rdx, o_rcx, o_rbx, o_flags, o_mem, o_mem2, pad2; /* 112.. */
	uint8_t o_xmm0[16];                                  /* 192 */
} __attribute__((aligned(16)));

_Static_assert(offsetof(struct io, mem) == 64, "io layout");
_Static_assert(offsetof(struct io, xmm0) == 80, "io layout");
_Static_assert(offsetof(struct io, o_rdi) == 112, "io layout");
_Static_assert(offsetof(struct io, o_xmm0) == 192, "io layout");

#define PRO "push %rbx\n push %rbp\n mov %rdi, %r11\n mov 0(%r11), %rdi\n mov 8(%r11), %rsi\n" \
	    "mov 16(%r11), %rax\n mov 24(%r11), %rdx\n mov 32(%r11), %rcx\n mov 40(%r11), %rbx\n" \
	    "movdqu 80(%r11), %xmm0\n movdqu 96(%r11), %xmm1\n pushq 48(%r11)\n popfq\n"
#define EPI "\npushfq\n popq 160(%r11)\n mov %rdi, 112(%r11)\n mov %rsi, 120(%r11)\n"      \
	    "mov %rax, 128(%r11)\n mov %rdx, 136(%r11)\n mov %rcx, 144(%r11)\n"                \
	    "mov %rbx, 152(%r11)\n mov 64(%r11), %rbp\n mov %rbp, 168(%r11)\n"                  \
	    "mov 72(%r11), %rbp\n mov %rbp, 176(%r11)\n movdqu %xmm0, 192(%r11)\n"             \
	    "pop %rbp\n pop %rbx\n ret\n"

#define STUB(name, insn)                                                         \
	extern const char name[];                                                \
	__asm__(".pushsection .text\n.p2align 4\n" #name ":\n" PRO insn EPI ".popsection\n");

#define A (PM_X86_CF | PM_X86_PF | PM_X86_AF | PM_X86_ZF | PM_X86_SF | PM_X86_OF)

/* The flags whose values are defined for this input. */
typedef uint64_t (*mask_fn)(const struct io *in, unsigned int sz);

static uint64_t m_all(const struct io *in, unsigned int sz) { (void)in; (void)sz; return A; }
static uint64_t m_logic(const struct io *in, unsigned int sz) { (void)in; (void)sz; return A & ~PM_X86_AF; }
static uint64_t m_mul(const struct io *in, unsigned int sz) { (void)in; (void)sz; return PM_X86_CF | PM_X86_OF; }
static uint64_t m_none(const struct io *in, unsigned int sz) { (void)in; (void)sz; return 0; }
static uint64_t m_cf(const struct io *in, unsigned int sz) { (void)in; (void)sz; return PM_X86_CF; }
static uint64_t m_zf(const struct io *in, unsigned int sz) { (void)in; (void)sz; return PM_X86_ZF; }
static uint64_t m_cfzf(const struct io *in, unsigned int sz) { (void)in; (void)sz; return PM_X86_CF | PM_X86_ZF; }

static unsigned int shift_count(const struct io *in, unsigned int sz)
{
	return (unsigned int)(in->rcx & (sz == 8 ? 63 : 31));
}

static uint64_t m_shift(const struct io *in, unsigned int sz)
{
	unsigned int n = shift_count(in, sz);

	if (n == 0)
		return A;
	return (A & ~PM_X86_AF & ~(n == 1 ? 0 : PM_X86_OF)) & ~(n >= sz * 8 ? PM_X86_CF : 0);
}

/* Rotates leave SF, ZF, AF and PF alone: only OF (past a count of one)
 * is undefined. */
static uint64_t m_rot(const struct io *in, unsigned int sz)
{
	unsigned int n = shift_count(in, sz);

	return A & ~(n <= 1 ? 0 : PM_X86_OF);
}

static uint64_t m_sh_gt1(const struct io *in, unsigned int sz)
{
	(void)in;
	(void)sz;
	return A & ~PM_X86_AF & ~PM_X86_OF;
}

static uint64_t m_shxd(const struct io *in, unsigned int sz)
{
	unsigned int n = shift_count(in, sz);

	if (n == 0)
		return A;
	return A & ~PM_X86_AF & ~(n == 1 ? 0 : PM_X86_OF);
}

/* Skip inputs whose native execution faults or whose result is undefined. */
typedef bool (*skip_fn)(const struct io *in, unsigned int sz);

static bool no_skip(const struct io *in, unsigned int sz) { (void)in; (void)sz; return false; }

static bool skip_div(const struct io *in, unsigned int sz)
{
	uint64_t m = sz == 8 ? ~0ULL : (1ULL << (sz * 8)) - 1, d = in->rsi & m;
	uint64_t hi = sz == 1 ? (in->rax >> 8) & 0xff : in->rdx & m;

	return d == 0 || hi >= d;
}

static bool skip_idiv(const struct io *in, unsigned int sz)
{
	int64_t d;
	__int128 n, q;

	switch (sz) {
	case 1: d = (int8_t)in->rsi; n = (int16_t)in->rax; break;
	case 2: d = (int16_t)in->rsi; n = (int32_t)(((uint32_t)(uint16_t)in->rdx << 16) | (uint16_t)in->rax); break;
	case 4: d = (int32_t)in->rsi; n = (int64_t)(((uint64_t)(uint32_t)in->rdx << 32) | (uint32_t)in->rax); break;
	default: d = (int64_t)in->rsi; n = (__int128)(((unsigned __int128)in->rdx << 64) | in->rax); break;
	}
	if (d == 0)
		return true;
	if (sz == 8 && d == -1 && n == (__int128)((unsigned __int128)1 << 127))
		return true;
	q = n / d;
	return q > (__int128)(((uint64_t)1 << (sz * 8 - 1)) - 1) || q < -(__int128)((uint64_t)1 << (sz * 8 - 1));
}

static bool skip_shxd16(const struct io *in, unsigned int sz)
{
	return sz == 2 && shift_count(in, sz) > 16;
}

static bool skip_cx16(const struct io *in, unsigned int sz)
{
	(void)in;
	(void)sz;
	return false;
}

/* ---- the stubs ---- */
#define BIN4(op)                                                                       \
	STUB(s_##op##8, #op "b %sil, %dil") STUB(s_##op##16, #op "w %si, %di")        \
	STUB(s_##op##32, #op "l %esi, %edi") STUB(s_##op##64, #op "q %rsi, %rdi")    \
	STUB(s_##op##m64, #op "q %rsi, 64(%r11)") STUB(s_##op##rm32, #op "l 64(%r11), %edi") \
	STUB(s_##op##i8, #op "b $0x85, %dil") STUB(s_##op##i64, #op "q $-0x1234567, %rdi")
#define UN4(op)                                                                        \
	STUB(s_##op##8, #op "b %dil") STUB(s_##op##16, #op "w %di")                      \
	STUB(s_##op##32, #op "l %edi") STUB(s_##op##64, #op "q %rdi")                    \
	STUB(s_##op##m32, #op "l 64(%r11)")
#define SH4(op)                                                                        \
	STUB(s_##op##8, #op "b %cl, %dil") STUB(s_##op##16, #op "w %cl, %di")            \
	STUB(s_##op##32, #op "l %cl, %edi") STUB(s_##op##64, #op "q %cl, %rdi")          \
	STUB(s_##op##m16, #op "w %cl, 64(%r11)")
#define MUL4(op)                                                                       \
	STUB(s_##op##8, #op "b %sil") STUB(s_##op##16, #op "w %si")                      \
	STUB(s_##op##32, #op "l %esi") STUB(s_##op##64, #op "q %rsi")

BIN4(add) BIN4(adc) BIN4(sub) BIN4(sbb) BIN4(and) BIN4(or) BIN4(xor) BIN4(cmp)
STUB(s_test8, "testb %sil, %dil") STUB(s_test16, "testw %si, %di")
STUB(s_test32, "testl %esi, %edi") STUB(s_test64, "testq %rsi, %rdi")
STUB(s_testm64, "testq %rsi, 64(%r11)") STUB(s_testi32, "testl $0x80000001, %edi")
UN4(inc) UN4(dec) UN4(neg) UN4(not)
SH4(shl) SH4(shr) SH4(sar) SH4(rol) SH4(ror) SH4(rcl) SH4(rcr)
STUB(s_shl1_32, "shll $1, %edi") STUB(s_sar7_64, "sarq $7, %rdi") STUB(s_rol1_8, "rolb $1, %dil")
STUB(s_shld16, "shldw %cl, %si, %di") STUB(s_shld32, "shldl %cl, %esi, %edi")
STUB(s_shld64, "shldq %cl, %rsi, %rdi") STUB(s_shrd16, "shrdw %cl, %si, %di")
STUB(s_shrd32, "shrdl %cl, %esi, %edi") STUB(s_shrd64, "shrdq %cl, %rsi, %rdi")
STUB(s_shrdi64, "shrdq $13, %rsi, %rdi")
MUL4(mul) MUL4(imul) MUL4(div) MUL4(idiv)
STUB(s_imul2_16, "imulw %si, %di") STUB(s_imul2_32, "imull %esi, %edi")
STUB(s_imul2_64, "imulq %rsi, %rdi") STUB(s_imul3_32, "imull $-77, %esi, %edi")
STUB(s_imul3_64, "imulq $0x12345, %rsi, %rdi") STUB(s_imul3_16, "imulw $300, %si, %di")
STUB(s_bt16, "btw %si, %di") STUB(s_bt32, "btl %esi, %edi") STUB(s_bt64, "btq %rsi, %rdi")
STUB(s_bts32, "btsl %esi, %edi") STUB(s_btr64, "btrq %rsi, %rdi") STUB(s_btc16, "btcw %si, %di")
STUB(s_bti64, "btsq $45, %rdi") STUB(s_btm32, "andl $255, %esi\n btcl %esi, 64(%r11)")
STUB(s_lockbts, "andl $63, %esi\n lock btsq %rsi, 64(%r11)")
STUB(s_bsf16, "bsfw %si, %di") STUB(s_bsf32, "bsfl %esi, %edi") STUB(s_bsf64, "bsfq %rsi, %rdi")
STUB(s_bsr16, "bsrw %si, %di") STUB(s_bsr32, "bsrl %esi, %edi") STUB(s_bsr64, "bsrq %rsi, %rdi")
STUB(s_tzcnt16, "tzcntw %si, %di") STUB(s_tzcnt32, "tzcntl %esi, %edi") STUB(s_tzcnt64, "tzcntq %rsi, %rdi")
STUB(s_lzcnt16, "lzcntw %si, %di") STUB(s_lzcnt32, "lzcntl %esi, %edi") STUB(s_lzcnt64, "lzcntq %rsi, %rdi")
STUB(s_popcnt16, "popcntw %si, %di") STUB(s_popcnt32, "popcntl %esi, %edi") STUB(s_popcnt64, "popcntq %rsi, %rdi")
STUB(s_bswap32, "bswapl %edi") STUB(s_bswap64, "bswapq %rdi")
STUB(s_xadd8, "xaddb %sil, %dil") STUB(s_xadd16, "xaddw %si, %di") STUB(s_xadd32, "xaddl %esi, %edi")
STUB(s_xadd64, "xaddq %rsi, %rdi") STUB(s_lockxadd, "lock xaddq %rsi, 64(%r11)")
STUB(s_cmpxchg8, "cmpxchgb %sil, %dil") STUB(s_cmpxchg16, "cmpxchgw %si, %di")
STUB(s_cmpxchg32, "cmpxchgl %esi, %edi") STUB(s_cmpxchg64, "cmpxchgq %rsi, %rdi")
STUB(s_lockcmpxchg, "lock cmpxchgl %esi, 64(%r11)")
STUB(s_cmpxchg16b, "lock cmpxchg16b 64(%r11)") STUB(s_cmpxchg8b, "cmpxchg8b 64(%r11)")
STUB(s_xchgm, "xchgq %rsi, 64(%r11)")
STUB(s_cbw, "cbw") STUB(s_cwde, "cwde") STUB(s_cdqe, "cdqe")
STUB(s_cwd, "cwd") STUB(s_cdq, "cdq") STUB(s_cqo, "cqo")
STUB(s_movzbl, "movzbl %sil, %edi") STUB(s_movzwq, "movzwq %si, %rdi")
STUB(s_movsbq, "movsbq %sil, %rdi") STUB(s_movslq, "movslq %esi, %rdi")
STUB(s_movswl_m, "movswl 64(%r11), %edi") STUB(s_movh, "movb %ah, %bl\n movb %dh, %ch")
STUB(s_lea, "leal 7(%rsi,%rdi,4), %edi") STUB(s_lahf, "lahf") STUB(s_sahf, "sahf")
STUB(s_cmc, "cmc") STUB(s_adcm8, "adcb %sil, 65(%r11)")

#define CC16(X) X(o) X(no) X(b) X(ae) X(e) X(ne) X(be) X(a) X(s) X(ns) X(p) X(np) X(l) X(ge) X(le) X(g)
#define CMOV(cc) STUB(s_cmov##cc##16, "cmov" #cc "w %si, %di") STUB(s_cmov##cc##32, "cmov" #cc "l %esi, %edi") \
	STUB(s_cmov##cc##64, "cmov" #cc "q 64(%r11), %rdi") STUB(s_set##cc, "set" #cc " %dil\n set" #cc " 65(%r11)")
CC16(CMOV)

/* SSE (xmm0 op= xmm1) */
#define SSE(name, insn) STUB(s_##name, insn)
SSE(pxor, "pxor %xmm1, %xmm0") SSE(por, "por %xmm1, %xmm0") SSE(pand, "pand %xmm1, %xmm0")
SSE(pandn, "pandn %xmm1, %xmm0") SSE(xorps, "xorps %xmm1, %xmm0")
SSE(paddb, "paddb %xmm1, %xmm0") SSE(paddw, "paddw %xmm1, %xmm0") SSE(paddd, "paddd %xmm1, %xmm0")
SSE(paddq, "paddq %xmm1, %xmm0") SSE(psubb, "psubb %xmm1, %xmm0") SSE(psubq, "psubq %xmm1, %xmm0")
SSE(paddusb, "paddusb %xmm1, %xmm0") SSE(psubsw, "psubsw %xmm1, %xmm0")
SSE(pmullw, "pmullw %xmm1, %xmm0") SSE(pmulhw, "pmulhw %xmm1, %xmm0") SSE(pmuludq, "pmuludq %xmm1, %xmm0")
SSE(pmulld, "pmulld %xmm1, %xmm0") SSE(pmaddwd, "pmaddwd %xmm1, %xmm0") SSE(psadbw, "psadbw %xmm1, %xmm0")
SSE(pmaxsd, "pmaxsd %xmm1, %xmm0") SSE(pminsd, "pminsd %xmm1, %xmm0") SSE(pmaxub, "pmaxub %xmm1, %xmm0")
SSE(pminuw, "pminuw %xmm1, %xmm0") SSE(pmaxsb, "pmaxsb %xmm1, %xmm0") SSE(pminud, "pminud %xmm1, %xmm0")
SSE(pcmpeqb, "pcmpeqb %xmm1, %xmm0") SSE(pcmpeqd, "pcmpeqd %xmm1, %xmm0") SSE(pcmpeqq, "pcmpeqq %xmm1, %xmm0")
SSE(pcmpgtb, "pcmpgtb %xmm1, %xmm0") SSE(pcmpgtd, "pcmpgtd %xmm1, %xmm0")
SSE(pmovmskb, "pmovmskb %xmm1, %edi") SSE(movmskps, "movmskps %xmm1, %esi")
SSE(pshufd, "pshufd $0x1b, %xmm1, %xmm0") SSE(pshuflw, "pshuflw $0x72, %xmm1, %xmm0")
SSE(pshufhw, "pshufhw $0xd8, %xmm1, %xmm0") SSE(pshufb, "pshufb %xmm1, %xmm0")
SSE(palignr, "palignr $5, %xmm1, %xmm0") SSE(shufps, "shufps $0x9c, %xmm1, %xmm0")
SSE(punpcklbw, "punpcklbw %xmm1, %xmm0") SSE(punpckhwd, "punpckhwd %xmm1, %xmm0")
SSE(punpckldq, "punpckldq %xmm1, %xmm0") SSE(punpckhqdq, "punpckhqdq %xmm1, %xmm0")
SSE(packsswb, "packsswb %xmm1, %xmm0") SSE(packuswb, "packuswb %xmm1, %xmm0")
SSE(packusdw, "packusdw %xmm1, %xmm0")
SSE(psllw, "psllw $3, %xmm0") SSE(psrad, "psrad $9, %xmm0") SSE(psrlq, "psrlq %xmm1, %xmm0")
SSE(pslldq, "pslldq $5, %xmm0") SSE(psrldq, "psrldq $11, %xmm0")
SSE(pinsrq, "pinsrq $1, %rsi, %xmm0") SSE(pinsrb, "pinsrb $9, %esi, %xmm0")
SSE(pextrd, "pextrd $2, %xmm1, %edi") SSE(pextrw, "pextrw $5, %xmm1, %edi")
SSE(movd_to, "movd %esi, %xmm0") SSE(movq_to, "movq %rsi, %xmm0") SSE(movq_from, "movq %xmm1, %rdi")
SSE(movq_xx, "movq %xmm1, %xmm0") SSE(movss, "movss %xmm1, %xmm0") SSE(movsd_x, "movsd %xmm1, %xmm0")
SSE(pmovzxbw, "pmovzxbw %xmm1, %xmm0") SSE(pmovsxdq, "pmovsxdq %xmm1, %xmm0")
SSE(pblendw, "pblendw $0x5a, %xmm1, %xmm0") SSE(ptest, "ptest %xmm1, %xmm0")
SSE(pabsw, "pabsw %xmm1, %xmm0") SSE(psignb, "psignb %xmm1, %xmm0") SSE(phaddd, "phaddd %xmm1, %xmm0")
SSE(pavgb, "pavgb %xmm1, %xmm0") SSE(movaps_m, "movaps %xmm1, 64(%r11)\n movaps 64(%r11), %xmm0")
SSE(movups_m, "movups 68(%r11), %xmm0") SSE(movhps, "movhps 64(%r11), %xmm0")
SSE(unpcklpd, "unpcklpd %xmm1, %xmm0") SSE(movddup, "movddup %xmm1, %xmm0")

/* SSE floating point (random bit patterns, with NaNs, infinities,
 * denormals and zeros mixed in by fill()) */
SSE(addps, "addps %xmm1, %xmm0") SSE(addsd, "addsd %xmm1, %xmm0") SSE(subpd, "subpd %xmm1, %xmm0")
SSE(subss, "subss %xmm1, %xmm0") SSE(mulps, "mulps %xmm1, %xmm0") SSE(mulsd, "mulsd %xmm1, %xmm0")
SSE(divpd, "divpd %xmm1, %xmm0") SSE(divss, "divss %xmm1, %xmm0") SSE(minps, "minps %xmm1, %xmm0")
SSE(maxsd, "maxsd %xmm1, %xmm0") SSE(minsd, "minsd %xmm1, %xmm0") SSE(maxps, "maxps %xmm1, %xmm0")
SSE(sqrtps, "sqrtps %xmm1, %xmm0") SSE(sqrtsd, "sqrtsd %xmm1, %xmm0")
SSE(cmpltps, "cmpltps %xmm1, %xmm0") SSE(cmpunordsd, "cmpunordsd %xmm1, %xmm0")
SSE(cmpnlepd, "cmpnlepd %xmm1, %xmm0") SSE(cmpeqss, "cmpeqss %xmm1, %xmm0")
SSE(ucomisd, "ucomisd %xmm1, %xmm0") SSE(comiss, "comiss %xmm1, %xmm0")
SSE(cvtsi2sdq, "cvtsi2sdq %rsi, %xmm0") SSE(cvtsi2ssl, "cvtsi2ssl %esi, %xmm0")
SSE(cvttsd2si, "cvttsd2si %xmm1, %rdi") SSE(cvtsd2si, "cvtsd2si %xmm1, %edi")
SSE(cvttss2si, "cvttss2si %xmm1, %edi") SSE(cvtss2sd, "cvtss2sd %xmm1, %xmm0")
SSE(cvtsd2ss, "cvtsd2ss %xmm1, %xmm0") SSE(cvtdq2ps, "cvtdq2ps %xmm1, %xmm0")
SSE(cvttps2dq, "cvttps2dq %xmm1, %xmm0") SSE(cvtps2dq, "cvtps2dq %xmm1, %xmm0")
SSE(cvtdq2pd, "cvtdq2pd %xmm1, %xmm0") SSE(cvtpd2ps, "cvtpd2ps %xmm1, %xmm0")
SSE(cvtps2pd, "cvtps2pd %xmm1, %xmm0") SSE(cvttpd2dq, "cvttpd2dq %xmm1, %xmm0")
SSE(addsubps, "addsubps %xmm1, %xmm0") SSE(haddpd, "haddpd %xmm1, %xmm0") SSE(hsubps, "hsubps %xmm1, %xmm0")
SSE(roundps, "roundps $1, %xmm1, %xmm0") SSE(roundsd, "roundsd $2, %xmm1, %xmm0")
SSE(roundpd, "roundpd $3, %xmm1, %xmm0") SSE(roundss, "roundss $0, %xmm1, %xmm0")
SSE(dpps, "dpps $0xf3, %xmm1, %xmm0") SSE(dppd, "dppd $0x31, %xmm1, %xmm0")
SSE(addsd_m, "addsd 64(%r11), %xmm0") SSE(mulps_m, "movaps %xmm1, 64(%r11)\n mulps 64(%r11), %xmm0")

struct alu_case {
	const char *name;
	const char *stub;
	unsigned int sz;
	mask_fn mask;
	skip_fn skipper;
	bool xmm;
};

#define C4(op, m, k) { #op "8", s_##op##8, 1, m, k, false }, { #op "16", s_##op##16, 2, m, k, false }, \
	{ #op "32", s_##op##32, 4, m, k, false }, { #op "64", s_##op##64, 8, m, k, false }
#define CB(op, m) C4(op, m, no_skip), { #op " m64,r", s_##op##m64, 8, m, no_skip, false }, \
	{ #op " r32,m", s_##op##rm32, 4, m, no_skip, false }, { #op " r8,i", s_##op##i8, 1, m, no_skip, false }, \
	{ #op " r64,i", s_##op##i64, 8, m, no_skip, false }
#define CU(op, m) C4(op, m, no_skip), { #op " m32", s_##op##m32, 4, m, no_skip, false }
#define CS(op, m) C4(op, m, no_skip), { #op " m16", s_##op##m16, 2, m, no_skip, false }
#define C1(name, sz, m, k) { #name, s_##name, sz, m, k, false }
#define CX(name) { #name, s_##name, 16, m_all, no_skip, true }
#define CCC(cc) C1(cmov##cc##16, 2, m_all, no_skip), C1(cmov##cc##32, 4, m_all, no_skip), \
	C1(cmov##cc##64, 8, m_all, no_skip), C1(set##cc, 1, m_all, no_skip),

static const struct alu_case cases[] = {
	CB(add, m_all), CB(adc, m_all), CB(sub, m_all), CB(sbb, m_all), CB(cmp, m_all),
	CB(and, m_logic), CB(or, m_logic), CB(xor, m_logic),
	C1(test8, 1, m_logic, no_skip), C1(test16, 2, m_logic, no_skip),
	C1(test32, 4, m_logic, no_skip), C1(test64, 8, m_logic, no_skip),
	C1(testm64, 8, m_logic, no_skip), C1(testi32, 4, m_logic, no_skip),
	CU(inc, m_all), CU(dec, m_all), CU(neg, m_all), CU(not, m_all),
	CS(shl, m_shift), CS(shr, m_shift), CS(sar, m_shift), CS(rol, m_rot), CS(ror, m_rot),
	CS(rcl, m_rot), CS(rcr, m_rot),
	C1(shl1_32, 4, m_logic, no_skip), C1(sar7_64, 8, m_sh_gt1, no_skip),
	C1(rol1_8, 1, m_all, no_skip),
	C1(shld16, 2, m_shxd, skip_shxd16), C1(shld32, 4, m_shxd, no_skip), C1(shld64, 8, m_shxd, no_skip),
	C1(shrd16, 2, m_shxd, skip_shxd16), C1(shrd32, 4, m_shxd, no_skip), C1(shrd64, 8, m_shxd, no_skip),
	C1(shrdi64, 8, m_sh_gt1, no_skip),
	C4(mul, m_mul, no_skip), C4(imul, m_mul, no_skip), C4(div, m_none, skip_div),
	C4(idiv, m_none, skip_idiv),
	C1(imul2_16, 2, m_mul, no_skip), C1(imul2_32, 4, m_mul, no_skip), C1(imul2_64, 8, m_mul, no_skip),
	C1(imul3_16, 2, m_mul, no_skip), C1(imul3_32, 4, m_mul, no_skip), C1(imul3_64, 8, m_mul, no_skip),
	C1(bt16, 2, m_cf, no_skip), C1(bt32, 4, m_cf, no_skip), C1(bt64, 8, m_cf, no_skip),
	C1(bts32, 4, m_cf, no_skip), C1(btr64, 8, m_cf, no_skip), C1(btc16, 2, m_cf, no_skip),
	C1(bti64, 8, m_cf, no_skip), C1(btm32, 4, m_cf, no_skip), C1(lockbts, 8, m_cf, no_skip),
	C1(bsf16, 2, m_zf, no_skip), C1(bsf32, 4, m_zf, no_skip), C1(bsf64, 8, m_zf, no_skip),
	C1(bsr16, 2, m_zf, no_skip), C1(bsr32, 4, m_zf, no_skip), C1(bsr64, 8, m_zf, no_skip),
	C1(tzcnt16, 2, m_cfzf, no_skip), C1(tzcnt32, 4, m_cfzf, no_skip), C1(tzcnt64, 8, m_cfzf, no_skip),
	C1(lzcnt16, 2, m_cfzf, no_skip), C1(lzcnt32, 4, m_cfzf, no_skip), C1(lzcnt64, 8, m_cfzf, no_skip),
	C1(popcnt16, 2, m_all, no_skip), C1(popcnt32, 4, m_all, no_skip), C1(popcnt64, 8, m_all, no_skip),
	C1(bswap32, 4, m_all, no_skip), C1(bswap64, 8, m_all, no_skip),
	C1(xadd8, 1, m_all, no_skip), C1(xadd16, 2, m_all, no_skip), C1(xadd32, 4, m_all, no_skip),
	C1(xadd64, 8, m_all, no_skip), C1(lockxadd, 8, m_all, no_skip),
	C1(cmpxchg8, 1, m_all, no_skip), C1(cmpxchg16, 2, m_all, no_skip),
	C1(cmpxchg32, 4, m_all, no_skip), C1(cmpxchg64, 8, m_all, no_skip),
	C1(lockcmpxchg, 4, m_all, no_skip), C1(cmpxchg16b, 8, m_all, skip_cx16),
	C1(cmpxchg8b, 4, m_all, no_skip), C1(xchgm, 8, m_all, no_skip),
	C1(cbw, 2, m_all, no_skip), C1(cwde, 4, m_all, no_skip), C1(cdqe, 8, m_all, no_skip),
	C1(cwd, 2, m_all, no_skip), C1(cdq, 4, m_all, no_skip), C1(cqo, 8, m_all, no_skip),
	C1(movzbl, 4, m_all, no_skip), C1(movzwq, 8, m_all, no_skip), C1(movsbq, 8, m_all, no_skip),
	C1(movslq, 8, m_all, no_skip), C1(movswl_m, 4, m_all, no_skip), C1(movh, 1, m_all, no_skip),
	C1(lea, 4, m_all, no_skip), C1(lahf, 1, m_all, no_skip), C1(sahf, 1, m_all, no_skip),
	C1(cmc, 1, m_all, no_skip), C1(adcm8, 1, m_all, no_skip),
	CC16(CCC)
	CX(pxor), CX(por), CX(pand), CX(pandn), CX(xorps), CX(paddb), CX(paddw), CX(paddd), CX(paddq),
	CX(psubb), CX(psubq), CX(paddusb), CX(psubsw), CX(pmullw), CX(pmulhw), CX(pmuludq), CX(pmulld),
	CX(pmaddwd), CX(psadbw), CX(pmaxsd), CX(pminsd), CX(pmaxub), CX(pminuw), CX(pmaxsb), CX(pminud),
	CX(pcmpeqb), CX(pcmpeqd), CX(pcmpeqq), CX(pcmpgtb), CX(pcmpgtd), CX(pmovmskb), CX(movmskps),
	CX(pshufd), CX(pshuflw), CX(pshufhw), CX(pshufb), CX(palignr), CX(shufps), CX(punpcklbw),
	CX(punpckhwd), CX(punpckldq), CX(punpckhqdq), CX(packsswb), CX(packuswb), CX(packusdw),
	CX(psllw), CX(psrad), CX(psrlq), CX(pslldq), CX(psrldq), CX(pinsrq), CX(pinsrb), CX(pextrd),
	CX(pextrw), CX(movd_to), CX(movq_to), CX(movq_from), CX(movq_xx), CX(movss), CX(movsd_x),
	CX(pmovzxbw), CX(pmovsxdq), CX(pblendw), CX(ptest), CX(pabsw), CX(psignb), CX(phaddd),
	CX(pavgb), CX(movaps_m), CX(movups_m), CX(movhps), CX(unpcklpd), CX(movddup),
	CX(addps), CX(addsd), CX(subpd), CX(subss), CX(mulps), CX(mulsd), CX(divpd), CX(divss),
	CX(minps), CX(maxsd), CX(minsd), CX(maxps), CX(sqrtps), CX(sqrtsd), CX(cmpltps),
	CX(cmpunordsd), CX(cmpnlepd), CX(cmpeqss), CX(ucomisd), CX(comiss), CX(cvtsi2sdq),
	CX(cvtsi2ssl), CX(cvttsd2si), CX(cvtsd2si), CX(cvttss2si), CX(cvtss2sd), CX(cvtsd2ss),
	CX(cvtdq2ps), CX(cvttps2dq), CX(cvtps2dq), CX(cvtdq2pd), CX(cvtpd2ps), CX(cvtps2pd),
	CX(cvttpd2dq), CX(addsubps), CX(haddpd), CX(hsubps), CX(roundps), CX(roundsd), CX(roundpd),
	CX(roundss), CX(dpps), CX(dppd), CX(addsd_m), CX(mulps_m),
};

/* The host runs the stub through this pointer (the stubs are functions). */
typedef void (*stub_fn)(struct io *);

extern const char g_alu_call[];
__asm__(".pushsection .text\n.p2align 4\ng_alu_call: call *%r10\n hlt\n.popsection\n");

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static const uint64_t edges[] = {
	0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff,
	0x80000000, 0xffffffff, 0x100000000ULL, 0x7fffffffffffffffULL, 0x8000000000000000ULL,
	~0ULL, ~0ULL - 1, 0x5555555555555555ULL, 0xaaaaaaaaaaaaaaaaULL,
};

static uint64_t pick(unsigned int k)
{
	switch (rnd() % 4) {
	case 0: return edges[rnd() % (sizeof(edges) / sizeof(edges[0]))];
	case 1: return rnd() & 0xff;
	default: (void)k; return rnd();
	}
}

static void fill(struct io *in, unsigned int iter)
{
	memset(in, 0, sizeof(*in));
	in->rdi = pick(iter);
	in->rsi = pick(iter);
	in->rax = pick(iter);
	in->rdx = pick(iter);
	in->rcx = rnd() % 4 == 0 ? pick(iter) : rnd() % 70;
	in->rbx = pick(iter);
	in->mem = pick(iter);
	in->mem2 = pick(iter);
	/* equal operands now and then, so compare-exchange takes both paths */
	if (rnd() % 3 == 0)
		in->rax = in->rdi;
	if (rnd() % 3 == 0)
		in->rax = in->mem;
	if (rnd() % 4 == 0) {
		in->rax = in->mem;
		in->rdx = in->mem2;
	}
	for (int k = 0; k < 16; k++) {
		in->xmm0[k] = (uint8_t)rnd();
		in->xmm1[k] = (uint8_t)(rnd() % 5 == 0 ? in->xmm0[k] : rnd());
	}
	/* floating-point specials in some lanes: zeros, infinities, NaNs
	 * (quiet and signalling), denormals, small integers, 0.5 steps */
	for (int k = 0; k < 4; k++) {
		static const uint32_t fs[] = { 0, 0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00000u,
					       0x7f800001u, 0xffc12345u, 0x00000001u, 0x807fffffu,
					       0x3f800000u, 0x40400000u, 0x3fc00000u, 0xc0200000u,
					       0x4f000000u, 0xdf000000u, 0x3f000000u };
		static const uint64_t ds[] = { 0, 0x8000000000000000ULL, 0x7ff0000000000000ULL,
					       0x7ff8000000000000ULL, 0x7ff0000000000001ULL,
					       0x0000000000000001ULL, 0x3ff0000000000000ULL,
					       0x3ff8000000000000ULL, 0xc004000000000000ULL,
					       0x43e0000000000000ULL, 0x41e0000000000000ULL,
					       0xc1e0000000200000ULL, 0x3fe0000000000000ULL };
		uint8_t *lane0 = in->xmm0 + 4 * k, *lane1 = in->xmm1 + 4 * k;

		if (rnd() % 3 == 0)
			memcpy(lane0, &fs[rnd() % 16], 4);
		if (rnd() % 3 == 0)
			memcpy(lane1, &fs[rnd() % 16], 4);
		if (k < 2 && rnd() % 3 == 0)
			memcpy(in->xmm0 + 8 * k, &ds[rnd() % 13], 8);
		if (k < 2 && rnd() % 3 == 0)
			memcpy(in->xmm1 + 8 * k, &ds[rnd() % 13], 8);
	}
	if (rnd() % 2)
		memcpy(&in->mem, in->xmm1, 8);
	/* arithmetic input flags only (no TF, IF, DF, AC) */
	in->flags = (rnd() & A) | 2;
}

static const char *flag_names(uint64_t f)
{
	static char buf[64];

	snprintf(buf, sizeof(buf), "%s%s%s%s%s%s", f & PM_X86_CF ? "C" : "", f & PM_X86_PF ? "P" : "",
		 f & PM_X86_AF ? "A" : "", f & PM_X86_ZF ? "Z" : "", f & PM_X86_SF ? "S" : "",
		 f & PM_X86_OF ? "O" : "");
	return buf;
}

static unsigned int compare(const struct alu_case *c, const struct io *in, const struct io *n,
			    const struct io *g)
{
	uint64_t m = c->mask(in, c->sz);
	unsigned int bad = 0;

#define CMPF(f)                                                                              \
	if (n->f != g->f) {                                                                  \
		print_error("%s: " #f " native 0x%llx engine 0x%llx (rdi 0x%llx rsi 0x%llx "     \
			    "rax 0x%llx rdx 0x%llx rcx 0x%llx mem 0x%llx flags %s)\n", c->name,     \
			    (unsigned long long)n->f, (unsigned long long)g->f,                      \
			    (unsigned long long)in->rdi, (unsigned long long)in->rsi,                \
			    (unsigned long long)in->rax, (unsigned long long)in->rdx,                \
			    (unsigned long long)in->rcx, (unsigned long long)in->mem,                \
			    flag_names(in->flags));                                                  \
		bad++;                                                                       \
	}
	CMPF(o_rdi) CMPF(o_rsi) CMPF(o_rax) CMPF(o_rdx) CMPF(o_rcx) CMPF(o_rbx)
	CMPF(o_mem) CMPF(o_mem2)
	if (memcmp(n->o_xmm0, g->o_xmm0, 16)) {
		print_error("%s: xmm0 differs: native %016llx:%016llx engine %016llx:%016llx "
			    "(in %016llx:%016llx, %016llx:%016llx)\n", c->name,
			    (unsigned long long)((const uint64_t *)n->o_xmm0)[1],
			    (unsigned long long)((const uint64_t *)n->o_xmm0)[0],
			    (unsigned long long)((const uint64_t *)g->o_xmm0)[1],
			    (unsigned long long)((const uint64_t *)g->o_xmm0)[0],
			    (unsigned long long)((const uint64_t *)in->xmm0)[1],
			    (unsigned long long)((const uint64_t *)in->xmm0)[0],
			    (unsigned long long)((const uint64_t *)in->xmm1)[1],
			    (unsigned long long)((const uint64_t *)in->xmm1)[0]);
		bad++;
	}
	if ((n->o_flags & m) != (g->o_flags & m)) {
		print_error("%s: flags native %s", c->name, flag_names(n->o_flags & m));
		print_error(" engine %s (defined %s; rdi 0x%llx rsi 0x%llx rcx 0x%llx in %s)\n",
			    flag_names(g->o_flags & m), flag_names(m), (unsigned long long)in->rdi,
			    (unsigned long long)in->rsi, (unsigned long long)in->rcx,
			    flag_names(in->flags));
		bad++;
	}
	return bad;
}

#define ITERS 1500

static size_t case_index(const char *name)
{
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++)
		if (!strcmp(cases[k].name, name))
			return k;
	fail_msg("no case %s", name);
	return 0;
}

/* Run cases [first, last) natively and in the engine. */
static void run_cases(size_t first, size_t last)
{
	struct x86_env *e = malloc(sizeof(*e));
	struct io *gio, in, nat;
	unsigned int bad = 0, ran = 0;

	assert_non_null(e);
	x86_env_init(e);
	gio = x86_env_alloc(e, sizeof(*gio), 4096);
	for (size_t k = first; k < last && bad < 20; k++) {
		const struct alu_case *c = &cases[k];

		for (unsigned int it = 0; it < ITERS && bad < 20; it++) {
			fill(&in, it);
			if (c->skipper(&in, c->sz))
				continue;
			nat = in;
			((stub_fn)(uintptr_t)c->stub)(&nat);
			*gio = in;
			e->cpu->gpr[PM_X86_R10] = (uint64_t)(uintptr_t)c->stub;
			e->cpu->gpr[PM_X86_RDI] = (uint64_t)(uintptr_t)gio;
			e->cpu->gpr[PM_X86_RSP] = e->kstack_top - 20 * 4096;
			if (x86_env_run(e, (uint64_t)(uintptr_t)g_alu_call, 1000) != PM_X86_STOP_REQUEST ||
			    x86_env_last_fault.count) {
				print_error("%s: the engine did not complete (fault vector %llu at 0x%llx)\n",
					    c->name, (unsigned long long)x86_env_last_fault.vector,
					    (unsigned long long)x86_env_last_fault.rip);
				bad++;
				break;
			}
			bad += compare(c, &in, &nat, gio);
			ran++;
		}
	}
	x86_env_fini(e);
	free(e);
	print_message("%zu instruction forms, %u runs compared\n", last - first, ran);
	assert_true(ran > (last - first) * ITERS / 2);
	assert_int_equal(bad, 0);
}

static void test_integer_instructions_match_the_host(void **state)
{
	(void)state;
	run_cases(0, case_index("pxor"));
}

static void test_sse_integer_and_moves_match_the_host(void **state)
{
	(void)state;
	run_cases(case_index("pxor"), case_index("addps"));
}

static void test_sse_floating_point_matches_the_host(void **state)
{
	(void)state;
	run_cases(case_index("addps"), sizeof(cases) / sizeof(cases[0]));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_integer_instructions_match_the_host),
		cmocka_unit_test(test_sse_integer_and_moves_match_the_host),
		cmocka_unit_test(test_sse_floating_point_matches_the_host),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * The engine's internals, shared by its files (nothing here is seen by
 * the embedder).
 *
 * Decoded instructions. decode.c turns Zydis' output into a compact
 * `struct x86_insn`: the handler to call, the explicit operands (register
 * numbers, the memory operand's parts, the immediate) and the sizes. Blocks
 * of them are cached per guest-physical address (code.c), so Zydis runs
 * once per instruction until the code changes.
 *
 * Faults. An instruction that faults calls x86_raise(), which records the
 * exception and longjmps to the run loop (run.c): handlers make every
 * access that can fault before they change architectural state, so a
 * faulting instruction has no effect (string instructions commit per
 * iteration, as the hardware does). Hooks may yield the vCPU's coroutine;
 * the jump target lives on the same stack, so that is safe.
 *
 * Memory. Guest-virtual accesses go through a direct-mapped TLB per
 * privilege (supervisor, user); a hit is a tag compare and a host access.
 * Misses walk the guest's page tables (paging.c) through the embedder's
 * `page` hook. Every page the engine has decoded code from is in the code
 * cache's page set: the TLB never holds a fast write tag for such a page,
 * so every write to it takes the slow path, which drops the page's code.
 */
#ifndef PM_VCPU_X86_INTERNAL_H
#define PM_VCPU_X86_INTERNAL_H

#include "vcpu/x86/x86.h"

struct x86_insn;
typedef void (*x86_exec_fn)(struct pm_x86_cpu *c, const struct x86_insn *i);

/* Operand kinds. */
enum { OP_NONE, OP_REG, OP_MEM, OP_IMM, OP_XMM, OP_SEG, OP_CR, OP_DR };

/* Register numbers in operands: 0-15 GPRs, 16-19 AH, CH, DH, BH. In memory
 * operands: REG_NONE (no base/index) and REG_RIP. */
#define REG_AH   16
#define REG_NONE 32
#define REG_RIP  33

struct x86_op {
	uint8_t kind;
	uint8_t reg;
	uint8_t size; /* bytes */
};

/* Instruction flags. */
#define IF_LOCK  (1u << 0)
#define IF_REP   (1u << 1) /* F3: REP / REPE */
#define IF_REPNE (1u << 2) /* F2 */
#define IF_SEGFS (1u << 3) /* FS: override (its base applies) */
#define IF_SEGGS (1u << 4)
#define IF_ENDS  (1u << 5) /* ends a block (control transfer, system state) */
#define IF_CROSS (1u << 6) /* crosses a page: never cached */
#define IF_ABS64 (1u << 7) /* the address is imm (MOV's moffs64 forms) */
#define IF_FAR   (1u << 8) /* far branch (RETF, far JMP/CALL) */
#define COND_NONE 0xff

struct x86_insn {
	x86_exec_fn fn;
	uint64_t imm;    /* immediate, sign-extended; branch target for relative branches */
	int32_t disp;
	uint16_t mnemonic; /* ZydisMnemonic */
	uint8_t len;
	uint8_t osz;     /* operand size in bytes */
	uint8_t asz;     /* address size: 4 or 8 */
	uint8_t base, index, scale; /* memory operand; scale is a shift */
	uint16_t flags;
	uint8_t cond;    /* condition code (Jcc, SETcc, CMOVcc), else COND_NONE */
	uint8_t imm2;    /* ENTER's nesting level; second immediate */
	uint8_t nops;
	struct x86_op op[4];
};

/* ---- sizes and registers ---- */
static inline uint64_t sz_mask(unsigned int sz)
{
	return sz >= 8 ? ~0ULL : (1ULL << (sz * 8)) - 1;
}

static inline uint64_t sz_sign(unsigned int sz)
{
	return 1ULL << (sz * 8 - 1);
}

static inline uint64_t sext(uint64_t v, unsigned int sz)
{
	switch (sz) {
	case 1: return (uint64_t)(int64_t)(int8_t)v;
	case 2: return (uint64_t)(int64_t)(int16_t)v;
	case 4: return (uint64_t)(int64_t)(int32_t)v;
	default: return v;
	}
}

static inline uint64_t reg_read(const struct pm_x86_cpu *c, unsigned int r, unsigned int sz)
{
	if (r >= REG_AH)
		return (c->gpr[r - REG_AH] >> 8) & 0xff;
	return c->gpr[r] & sz_mask(sz);
}

/* 32-bit writes zero the upper half; 8- and 16-bit writes keep the rest. */
static inline void reg_write(struct pm_x86_cpu *c, unsigned int r, unsigned int sz, uint64_t v)
{
	if (r >= REG_AH) {
		uint64_t *g = &c->gpr[r - REG_AH];
		*g = (*g & ~0xff00ULL) | ((v & 0xff) << 8);
		return;
	}
	switch (sz) {
	case 1: c->gpr[r] = (c->gpr[r] & ~0xffULL) | (v & 0xff); break;
	case 2: c->gpr[r] = (c->gpr[r] & ~0xffffULL) | (v & 0xffff); break;
	case 4: c->gpr[r] = (uint32_t)v; break;
	default: c->gpr[r] = v; break;
	}
}

/* ---- flags (computed eagerly; undefined flags get fixed values that the
 * tests mask, see tests/test_x86_alu.c) ---- */
static inline uint64_t flags_szp(uint64_t res, unsigned int sz)
{
	uint64_t f = 0;

	res &= sz_mask(sz);
	if (res == 0)
		f |= PM_X86_ZF;
	if (res & sz_sign(sz))
		f |= PM_X86_SF;
	if (!__builtin_parity((unsigned int)(res & 0xff)))
		f |= PM_X86_PF;
	return f;
}

static inline void flags_set(struct pm_x86_cpu *c, uint64_t mask, uint64_t f)
{
	c->rflags = (c->rflags & ~mask) | (f & mask);
}

/* a + b + cin (a, b masked to sz). */
static inline uint64_t flags_add(uint64_t a, uint64_t b, uint64_t res, unsigned int cin,
				 unsigned int sz)
{
	uint64_t m = sz_mask(sz), f;

	res &= m;
	f = flags_szp(res, sz);
	if (cin ? res <= a : res < a)
		f |= PM_X86_CF;
	if ((a ^ res) & (b ^ res) & sz_sign(sz))
		f |= PM_X86_OF;
	f |= (a ^ b ^ res) & PM_X86_AF;
	return f;
}

/* a - b - bin (a, b masked to sz). */
static inline uint64_t flags_sub(uint64_t a, uint64_t b, uint64_t res, unsigned int bin,
				 unsigned int sz)
{
	uint64_t m = sz_mask(sz), f;

	res &= m;
	f = flags_szp(res, sz);
	if (bin ? a <= b : a < b)
		f |= PM_X86_CF;
	if ((a ^ b) & (a ^ res) & sz_sign(sz))
		f |= PM_X86_OF;
	f |= (a ^ b ^ res) & PM_X86_AF;
	return f;
}

/* Condition codes 0-15 (O, NO, B, AE, E, NE, BE, A, S, NS, P, NP, L, GE, LE, G). */
static inline bool cond_true(uint64_t fl, unsigned int cc)
{
	bool r;

	switch (cc >> 1) {
	case 0: r = fl & PM_X86_OF; break;
	case 1: r = fl & PM_X86_CF; break;
	case 2: r = fl & PM_X86_ZF; break;
	case 3: r = fl & (PM_X86_CF | PM_X86_ZF); break;
	case 4: r = fl & PM_X86_SF; break;
	case 5: r = fl & PM_X86_PF; break;
	case 6: r = !(fl & PM_X86_SF) != !(fl & PM_X86_OF); break;
	default: r = (fl & PM_X86_ZF) || (!(fl & PM_X86_SF) != !(fl & PM_X86_OF)); break;
	}
	return r ^ (cc & 1);
}

/* ---- faults (run.c) ---- */
_Noreturn void x86_raise(struct pm_x86_cpu *c, int vector, bool has_error, uint32_t error);
_Noreturn void x86_ud(struct pm_x86_cpu *c);
_Noreturn void x86_gp(struct pm_x86_cpu *c, uint32_t error);
/* Leave the run loop at once (shutdown, abandoned instruction). */
_Noreturn void x86_unwind(struct pm_x86_cpu *c);
/* Called after a hook: true when the hook moved RIP (the instruction in
 * flight is then abandoned: the caller unwinds). */
static inline void x86_after_hook(struct pm_x86_cpu *c, uint64_t rip)
{
	if (c->rip != rip || c->stop_requested) {
		c->end_block = true;
		if (c->rip != rip)
			x86_unwind(c);
	}
}

/* ---- paging and memory (paging.c, mem.c) ---- */
/* Access kinds for translation. */
#define ACC_WRITE (1u << 0)
#define ACC_USER  (1u << 1) /* a CPL 3 access (implicit supervisor accesses clear it) */
#define ACC_FETCH (1u << 2)

/* gva -> host address of the byte, or NULL for MMIO (*gpa set). Faults
 * (#PF, #GP for a non-canonical address) do not return. */
uint8_t *x86_translate(struct pm_x86_cpu *c, uint64_t gva, unsigned int acc, uint64_t *gpa);
void x86_tlb_flush(struct pm_x86_cpu *c);
void x86_tlb_flush_page(struct pm_x86_cpu *c, uint64_t gva);

static inline bool is_canonical(uint64_t a)
{
	return (uint64_t)((int64_t)(a << 16) >> 16) == a;
}

static inline unsigned int acc_user(const struct pm_x86_cpu *c)
{
	return c->cpl == 3 ? ACC_USER : 0;
}

uint64_t x86_read_slow(struct pm_x86_cpu *c, uint64_t gva, unsigned int sz, unsigned int acc);
void x86_write_slow(struct pm_x86_cpu *c, uint64_t gva, unsigned int sz, uint64_t v,
		    unsigned int acc);

static inline uint64_t host_load(const uint8_t *p, unsigned int sz)
{
	/* Aligned accesses are single atomic loads (acquire: x86's ordering),
	 * so engines on other threads and TSan see one access. */
	if (pm_likely(((uintptr_t)p & (sz - 1)) == 0)) {
		switch (sz) {
		case 1: return __atomic_load_n(p, __ATOMIC_ACQUIRE);
		case 2: return __atomic_load_n((const uint16_t *)p, __ATOMIC_ACQUIRE);
		case 4: return __atomic_load_n((const uint32_t *)p, __ATOMIC_ACQUIRE);
		default: return __atomic_load_n((const uint64_t *)p, __ATOMIC_ACQUIRE);
		}
	} else {
		uint64_t v = 0;

		memcpy(&v, p, sz);
		return v;
	}
}

static inline void host_store(uint8_t *p, unsigned int sz, uint64_t v)
{
	if (pm_likely(((uintptr_t)p & (sz - 1)) == 0)) {
		switch (sz) {
		case 1: __atomic_store_n(p, (uint8_t)v, __ATOMIC_RELEASE); break;
		case 2: __atomic_store_n((uint16_t *)p, (uint16_t)v, __ATOMIC_RELEASE); break;
		case 4: __atomic_store_n((uint32_t *)p, (uint32_t)v, __ATOMIC_RELEASE); break;
		default: __atomic_store_n((uint64_t *)p, v, __ATOMIC_RELEASE); break;
		}
	} else {
		memcpy(p, &v, sz);
	}
}

static inline struct pm_x86_tlb_entry *tlb_entry(struct pm_x86_cpu *c, uint64_t gva,
						  unsigned int acc)
{
	return &c->tlb[(acc & ACC_USER) ? 1 : 0][(gva >> 12) & (PM_X86_TLB_SIZE - 1)];
}

/* Data accesses of 1, 2, 4 or 8 bytes at a guest-virtual address. */
/* The TLB tag of gva's page in the current epoch. */
static inline uint64_t x86_tlb_tag(const struct pm_x86_cpu *c, uint64_t gva)
{
	return (gva & ~0xfffULL) | c->tlb_epoch;
}

static inline uint64_t mem_read(struct pm_x86_cpu *c, uint64_t gva, unsigned int sz)
{
	unsigned int acc = acc_user(c);
	struct pm_x86_tlb_entry *e = tlb_entry(c, gva, acc);

	if (pm_likely(e->tag_r == x86_tlb_tag(c, gva) && (gva & 0xfff) <= 4096 - sz))
		return host_load(e->host + (gva & 0xfff), sz);
	return x86_read_slow(c, gva, sz, acc);
}

static inline void mem_write(struct pm_x86_cpu *c, uint64_t gva, unsigned int sz, uint64_t v)
{
	unsigned int acc = acc_user(c) | ACC_WRITE;
	struct pm_x86_tlb_entry *e = tlb_entry(c, gva, acc);

	if (pm_likely(e->tag_w == x86_tlb_tag(c, gva) && (gva & 0xfff) <= 4096 - sz)) {
		host_store(e->host + (gva & 0xfff), sz, v);
		return;
	}
	x86_write_slow(c, gva, sz, v, acc);
}

/* Supervisor accesses the CPU makes for itself (descriptor tables, the
 * TSS, the stack of an interrupt into CPL 0). */
static inline uint64_t sys_read(struct pm_x86_cpu *c, uint64_t gva, unsigned int sz)
{
	return x86_read_slow(c, gva, sz, 0);
}

static inline void sys_write(struct pm_x86_cpu *c, uint64_t gva, unsigned int sz, uint64_t v)
{
	x86_write_slow(c, gva, sz, v, ACC_WRITE);
}

/* Reads/writes of any length (vector operands, descriptor tables): every
 * page is translated before the first byte is written. */
void x86_read_buf(struct pm_x86_cpu *c, uint64_t gva, void *buf, unsigned int len,
		  unsigned int acc);
void x86_write_buf(struct pm_x86_cpu *c, uint64_t gva, const void *buf, unsigned int len,
		   unsigned int acc);
/* Host address for a read-modify-write of sz bytes that stays in one page
 * (write permission checked, D bit set), or NULL when the access crosses a
 * page or is MMIO: the caller then reads and writes through the slow path. */
uint8_t *x86_rmw_ptr(struct pm_x86_cpu *c, uint64_t gva, unsigned int sz);
/* Before a LOCKed access that cannot be one host atomic (crossing a page,
 * misaligned): translate every page for writing, so that faults happen
 * before split_lock is taken; true when it is all RAM (take the lock),
 * false when MMIO is involved (no lock: hooks may yield). */
bool x86_locked_slow_prepare(struct pm_x86_cpu *c, uint64_t gva, unsigned int sz);

/* The effective address of the instruction's memory operand. */
static inline uint64_t insn_ea(const struct pm_x86_cpu *c, const struct x86_insn *i)
{
	uint64_t a = (uint64_t)(int64_t)i->disp;

	if (i->base == REG_RIP)
		a += c->next_rip;
	else if (i->base != REG_NONE)
		a += c->gpr[i->base];
	if (i->index != REG_NONE)
		a += c->gpr[i->index] << i->scale;
	if (pm_unlikely(i->asz == 4))
		a = (uint32_t)a;
	if (pm_unlikely(i->flags & (IF_SEGFS | IF_SEGGS | IF_ABS64))) {
		if (i->flags & IF_ABS64)
			a = i->imm;
		if (i->flags & (IF_SEGFS | IF_SEGGS))
			a += c->seg[(i->flags & IF_SEGFS) ? PM_X86_FS : PM_X86_GS].base;
	}
	return a;
}

/* Generic operand access (the specialised handlers avoid these). */
static inline uint64_t op_read(struct pm_x86_cpu *c, const struct x86_insn *i, unsigned int n)
{
	const struct x86_op *o = &i->op[n];

	switch (o->kind) {
	case OP_REG: return reg_read(c, o->reg, o->size);
	case OP_MEM: return mem_read(c, insn_ea(c, i), o->size);
	case OP_IMM: return i->imm & sz_mask(o->size);
	default: x86_ud(c);
	}
}

static inline void op_write(struct pm_x86_cpu *c, const struct x86_insn *i, unsigned int n,
			    uint64_t v)
{
	const struct x86_op *o = &i->op[n];

	if (o->kind == OP_REG)
		reg_write(c, o->reg, o->size, v);
	else if (o->kind == OP_MEM)
		mem_write(c, insn_ea(c, i), o->size, v);
	else
		x86_ud(c);
}

/* ---- stack ---- */
static inline void push64(struct pm_x86_cpu *c, uint64_t v)
{
	uint64_t sp = c->gpr[PM_X86_RSP] - 8;

	mem_write(c, sp, 8, v);
	c->gpr[PM_X86_RSP] = sp;
}

static inline uint64_t pop64(struct pm_x86_cpu *c)
{
	uint64_t v = mem_read(c, c->gpr[PM_X86_RSP], 8);

	c->gpr[PM_X86_RSP] += 8;
	return v;
}

/* ---- code cache (code.c) ---- */
struct x86_block;
struct pm_x86_code_cache *x86_code_create(void);
void x86_code_free(struct pm_x86_code_cache *cc);
/* The block starting at the current RIP (decoded now if needed). */
const struct x86_block *x86_code_lookup(struct pm_x86_cpu *c);
bool x86_code_page_has_code(struct pm_x86_cpu *c, uint64_t gpa);
/* A write to gpa's page that holds decoded code: drop it. */
void x86_code_invalidate_page(struct pm_x86_cpu *c, uint64_t gpa);
void x86_code_flush(struct pm_x86_cpu *c, unsigned int what);

struct x86_block {
	uint64_t gpa;        /* of the first byte */
	uint64_t gva;        /* RIP it was decoded at (for the fast re-entry check) */
	struct x86_block *next; /* hash chain */
	uint64_t verify_gen; /* equal to the cache's: known to match memory */
	uint16_t ninsn;
	uint16_t nbytes;
	uint8_t *bytes;      /* the code bytes decoded (checked after FLUSH_CODE) */
	struct x86_insn insn[];
};

/* ---- decoding (decode.c) ---- */
void x86_decoder_init(void);
/* Decode one instruction from `bytes` (avail bytes readable) into *i.
 * Returns the length, 0 when more bytes are needed, -1 when invalid. */
int x86_decode(const uint8_t *bytes, unsigned int avail, uint64_t rip, struct x86_insn *i);

/* ---- handlers, by file ---- */
/* Select the handler for a decoded instruction (its mnemonic and operand
 * forms): each file's selector returns NULL when it has none. */
x86_exec_fn x86_select_alu(struct x86_insn *i);
x86_exec_fn x86_select_ctl(struct x86_insn *i);
x86_exec_fn x86_select_string(struct x86_insn *i);
x86_exec_fn x86_select_sys(struct x86_insn *i);
x86_exec_fn x86_select_sse_fp(struct x86_insn *i);
x86_exec_fn x86_select_sse(struct x86_insn *i);
void x86_exec_ud(struct pm_x86_cpu *c, const struct x86_insn *i);

/* ---- exceptions, system state (except.c, sys.c) ---- */
/* Deliver c->pending_* through the IDT; faults while delivering combine
 * into #DF and a triple fault. */
void x86_deliver_pending(struct pm_x86_cpu *c);
_Noreturn void x86_shutdown(struct pm_x86_cpu *c, enum pm_x86_shutdown why);
/* The state of a new vCPU (KVM's reset values). */
void x86_reset(struct pm_x86_cpu *c);
uint64_t x86_read_tsc(struct pm_x86_cpu *c);
/* MSR access as RDMSR/WRMSR do it: false for #GP. */
bool x86_msr_read(struct pm_x86_cpu *c, uint32_t idx, uint64_t *v);
bool x86_msr_write(struct pm_x86_cpu *c, uint32_t idx, uint64_t v);
/* CR writes with their checks (false: #GP) and cache flushes. */
bool x86_set_cr0(struct pm_x86_cpu *c, uint64_t v);
bool x86_set_cr4(struct pm_x86_cpu *c, uint64_t v);
void x86_set_cr3(struct pm_x86_cpu *c, uint64_t v);
bool x86_set_efer(struct pm_x86_cpu *c, uint64_t v);
/* Load a segment register from a selector (descriptor tables), as MOV
 * Sreg/POP Sreg do; faults do not return. */
void x86_load_seg(struct pm_x86_cpu *c, int seg, uint16_t sel);
/* Read the 8-byte (or 16-byte system) descriptor for sel; faults #GP(sel). */
void x86_read_descriptor(struct pm_x86_cpu *c, uint16_t sel, uint64_t d[2], bool system);
void x86_desc_to_seg(const uint64_t d[2], uint16_t sel, struct pm_x86_seg *s);
void x86_iret(struct pm_x86_cpu *c, unsigned int osz);
void x86_syscall(struct pm_x86_cpu *c);
void x86_sysret(struct pm_x86_cpu *c, unsigned int osz);
_Noreturn void x86_soft_int(struct pm_x86_cpu *c, int vector, bool check_dpl);
uint32_t x86_cpuid_feature(const struct pm_x86_cpu *c, uint32_t leaf, int reg);
void x86_cpuid(struct pm_x86_cpu *c, uint32_t leaf, uint32_t sub, uint32_t out[4]);
/* Lock for LOCKed accesses that cross a page. */
void x86_split_lock(void);
void x86_split_unlock(void);

#endif

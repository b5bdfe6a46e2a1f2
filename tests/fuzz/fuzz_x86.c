/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the x86-64 instruction engine (src/vcpu/x86/) behind
 * KVM_RUN, on input bytes as guest code.
 *
 * Each input makes a VM (default, or software-protected with a guest_memfd
 * behind its RAM) with one vCPU in 64-bit long mode, built by the loader of
 * tests/lib/x86_guest.h (compiled in: the framework links a target with
 * libprivmem alone): 2 MiB of RAM at gpa 0 identity mapped, a GDT, an IDT
 * whose stubs report every exception with an OUT to XG_PORT_EXC, a stack.
 * Beside it, at CANARY_GPA, a read-only memslot (KVM_MEM_READONLY) mapped
 * writable in the guest's page tables, and an MMIO window with no memslot.
 *
 * The input: a 12-byte header, then the code (copied to XG_CODE, followed
 * by an OUT to XG_PORT_DONE):
 *   [0]      configuration: CFG_SW (software-protected VM), CFG_CONVERT
 *            (the VMM grants conversions: memory faults and
 *            KVM_HC_MAP_GPA_RANGE), CFG_PRIVATE (the data area starts
 *            private), CFG_IRQCHIP (HLT waits for a kick);
 *   [1..8]   one nibble per GPR (RAX..R15, RSP's ignored): an index into
 *            seed_values, pointers into each region among them;
 *   [9]      arithmetic flags and DF;
 *   [10..11] a salt mixed into some of the values.
 *
 * Checked after every exit (a failure aborts, which libFuzzer reports):
 *  - KVM_RUN returns 0 with a known exit reason, or -1 with EFAULT and
 *    KVM_EXIT_MEMORY_FAULT (a software-protected VM only; a page of a
 *    memslot, flags PRIVATE at most) or EINTR with KVM_EXIT_INTR (the
 *    target's CPU-time kick);
 *  - IO exits: size 1, 2 or 4, count >= 1, the data page after kvm_run;
 *    MMIO exits: 1 to 8 bytes, never inside the RAM slot, inside the
 *    read-only slot only for a write; hypercalls are MAP_GPA_RANGE;
 *  - KVM_EXIT_SHUTDOWN and KVM_EXIT_INTERNAL_ERROR (emulation) end the
 *    guest: the next KVM_RUN reports the same exit;
 *  - the read-only slot's memory is untouched whatever the guest did;
 *  - after teardown the frame pool's in_use is back to its baseline and
 *    the next handle is the one handed out before (nothing leaked);
 *    ASan, UBSan and LeakSanitizer watch the rest.
 * Each input ends: at most MAX_RUNS KVM_RUNs, each kicked (a blocked
 * real-time signal from a timer: the engine's poll sees it pending) after
 * RUN_CPU_NS of the thread's CPU time or RUN_WALL_NS (a HLT waiting for an
 * interrupt uses no CPU); the stop point of a guest that spins is thus
 * timing dependent, nothing else is.
 *
 * Differential part: the longest prefix of the code made of register-only
 * integer instructions whose flags are all defined (an allowlist checked
 * with Zydis: no memory access, no RSP, no control transfer, no LOCK) also
 * runs natively, in this process, from the same registers and flags; the
 * engine runs the same prefix first (followed by the OUT), and every GPR
 * but RSP, and CF, PF, ZF, SF, OF, DF (AF where the last instruction that
 * wrote it defined it) must be equal. tests/test_x86_alu.c covers
 * instruction forms with undefined flags one at a time; here, sequences.
 *
 * Built by the fuzzing framework (make fuzz) or linked with replay.c
 * (make check replays tests/fuzz/corpus/x86/); gen_x86_seeds.c writes the
 * seeds. FUZZ_TRACE=1 prints every exit.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cpuid.h>
#include <Zydis/Zydis.h>
#include <privmem/privmem.h>
#include "lib/rcu.h"
#include "../lib/x86_guest.c"

#define HEADER       12
#define MAX_CODE     (XG_STACKS - XG_CODE - 16)
#define MAX_RUNS     48
#define RUN_CPU_NS   (4 * 1000 * 1000)   /* thread CPU time before a kick */
#define RUN_WALL_NS  (40 * 1000 * 1000)  /* or time (a HLT waiting, with an irqchip) */
#define KICK_SIGNAL  (SIGRTMIN + 3)

#define RAM_SIZE     XG_MIN_MEM            /* 2 MiB at gpa 0 */
#define CANARY_GPA   0x200000ULL           /* the read-only slot */
#define CANARY_SIZE  0x10000ULL
#define MMIO_GPA     0x300000ULL           /* mapped by the guest, no memslot */
#define MMIO_SIZE    0x4000ULL
#define UNMAPPED_GVA 0x40000000ULL
#define DATA_PRIVATE 0x40000ULL            /* CFG_PRIVATE: XG_DATA + this much */
#define POOL_SIZE    (64ULL << 20)

enum {
	CFG_SW = 1 << 0,
	CFG_CONVERT = 1 << 1,
	CFG_PRIVATE = 1 << 2,
	CFG_IRQCHIP = 1 << 3,
};

#define RFLAGS_CF (1ULL << 0)
#define RFLAGS_PF (1ULL << 2)
#define RFLAGS_AF (1ULL << 4)
#define RFLAGS_ZF (1ULL << 6)
#define RFLAGS_SF (1ULL << 7)
#define RFLAGS_DF (1ULL << 10)
#define RFLAGS_OF (1ULL << 11)

static bool trace;
static int kvm = -1;                    /* the target's own system handle, kept */
static uint64_t pool_baseline;
static int next_handle;
static timer_t kick_cpu, kick_wall;
static uint8_t *canary;                 /* the read-only slot's memory */
static uint8_t *native_page;            /* the differential part's code */
static bool host_popcnt;
static ZydisDecoder decoder;

static _Noreturn __attribute__((format(printf, 1, 2))) void fx_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "fuzz_x86: invariant broken: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	abort();
}

static uint8_t canary_byte(uint64_t off)
{
	return (uint8_t)(0xa5 ^ (off * 7) ^ (off >> 8));
}

/* ---- register seeds ---- */

static uint64_t seed_value(unsigned int sel, uint16_t salt)
{
	switch (sel & 15) {
	case 0: return 0;
	case 1: return 1;
	case 2: return ~0ULL;
	case 3: return XG_DATA + (salt & 0xfff8);
	case 4: return XG_DATA + 0xffd;                 /* accesses cross a page */
	case 5: return CANARY_GPA + (salt & 0xfff);
	case 6: return MMIO_GPA + (salt & 0xff);
	case 7: return 1ULL << 63;
	case 8: return ~0ULL >> 1;
	case 9: return UNMAPPED_GVA + salt;
	case 10: return 1ULL << 47;                     /* not canonical */
	case 11: return salt;
	case 12: return salt * 0x9e3779b97f4a7c15ULL;
	case 13: return 0x80000000ULL;
	case 14: return XG_CODE;
	default: return 0xffffffff00000000ULL | salt;
	}
}

static void seed_regs(const uint8_t *hdr, struct kvm_regs *r, uint64_t rsp)
{
	uint64_t gpr[16];
	uint16_t salt = (uint16_t)(hdr[10] | hdr[11] << 8);
	uint8_t f = hdr[9];

	for (int i = 0; i < 16; i++)
		gpr[i] = seed_value(hdr[1 + i / 2] >> (4 * (i & 1)), (uint16_t)(salt + i));
	gpr[4] = rsp;
	memset(r, 0, sizeof(*r));
	r->rax = gpr[0]; r->rcx = gpr[1]; r->rdx = gpr[2]; r->rbx = gpr[3];
	r->rsp = gpr[4]; r->rbp = gpr[5]; r->rsi = gpr[6]; r->rdi = gpr[7];
	r->r8 = gpr[8]; r->r9 = gpr[9]; r->r10 = gpr[10]; r->r11 = gpr[11];
	r->r12 = gpr[12]; r->r13 = gpr[13]; r->r14 = gpr[14]; r->r15 = gpr[15];
	r->rip = XG_CODE;
	r->rflags = 2 | ((f & 1) ? RFLAGS_CF : 0) | ((f & 2) ? RFLAGS_PF : 0) |
		    ((f & 4) ? RFLAGS_AF : 0) | ((f & 8) ? RFLAGS_ZF : 0) |
		    ((f & 16) ? RFLAGS_SF : 0) | ((f & 32) ? RFLAGS_OF : 0) |
		    ((f & 64) ? RFLAGS_DF : 0);
}

static void regs_to_array(const struct kvm_regs *r, uint64_t g[16])
{
	g[0] = r->rax; g[1] = r->rcx; g[2] = r->rdx; g[3] = r->rbx;
	g[4] = r->rsp; g[5] = r->rbp; g[6] = r->rsi; g[7] = r->rdi;
	g[8] = r->r8; g[9] = r->r9; g[10] = r->r10; g[11] = r->r11;
	g[12] = r->r12; g[13] = r->r13; g[14] = r->r14; g[15] = r->r15;
}

/* ---- the differential part: native execution ---- */

/* fx_native_run(struct native *n): loads every GPR but RSP and the flags
 * from n, calls n->code (which returns with RET), stores them back. */
struct native {
	uint64_t gpr[16];       /* x86 order; [4] unused */
	uint64_t rflags;        /* offset 128 */
	uint64_t code;          /* offset 136 */
};
void fx_native_run(struct native *n);
__asm__(".pushsection .text\n"
	".globl fx_native_run\n"
	".type fx_native_run, @function\n"
	"fx_native_run:\n"
	"push %rbx\n push %rbp\n push %r12\n push %r13\n push %r14\n push %r15\n"
	"push %rdi\n"                    /* [rsp + 8]: n */
	"pushq 136(%rdi)\n"              /* [rsp]: the code */
	"pushq 128(%rdi)\n popfq\n"
	"mov 0(%rdi), %rax\n mov 8(%rdi), %rcx\n mov 16(%rdi), %rdx\n mov 24(%rdi), %rbx\n"
	"mov 40(%rdi), %rbp\n mov 48(%rdi), %rsi\n"
	"mov 64(%rdi), %r8\n mov 72(%rdi), %r9\n mov 80(%rdi), %r10\n mov 88(%rdi), %r11\n"
	"mov 96(%rdi), %r12\n mov 104(%rdi), %r13\n mov 112(%rdi), %r14\n mov 120(%rdi), %r15\n"
	"mov 56(%rdi), %rdi\n"
	"call *(%rsp)\n"
	"push %rdi\n"                    /* [rsp + 16]: n */
	"mov 16(%rsp), %rdi\n"
	"pushfq\n popq 128(%rdi)\n"
	"mov %rax, 0(%rdi)\n mov %rcx, 8(%rdi)\n mov %rdx, 16(%rdi)\n mov %rbx, 24(%rdi)\n"
	"mov %rbp, 40(%rdi)\n mov %rsi, 48(%rdi)\n"
	"mov %r8, 64(%rdi)\n mov %r9, 72(%rdi)\n mov %r10, 80(%rdi)\n mov %r11, 88(%rdi)\n"
	"mov %r12, 96(%rdi)\n mov %r13, 104(%rdi)\n mov %r14, 112(%rdi)\n mov %r15, 120(%rdi)\n"
	"popq 56(%rdi)\n"
	"add $16, %rsp\n"
	"cld\n"
	"pop %r15\n pop %r14\n pop %r13\n pop %r12\n pop %rbp\n pop %rbx\n"
	"ret\n"
	".size fx_native_run, . - fx_native_run\n"
	".popsection\n");

/* How an allowlisted instruction leaves AF. */
enum af_effect { AF_KEEPS, AF_DEFINES, AF_UNDEFINES };

static bool mnemonic_allowed(ZydisMnemonic m, enum af_effect *af)
{
	*af = AF_KEEPS;
	switch (m) {
	case ZYDIS_MNEMONIC_ADD: case ZYDIS_MNEMONIC_ADC: case ZYDIS_MNEMONIC_SUB:
	case ZYDIS_MNEMONIC_SBB: case ZYDIS_MNEMONIC_CMP: case ZYDIS_MNEMONIC_INC:
	case ZYDIS_MNEMONIC_DEC: case ZYDIS_MNEMONIC_NEG: case ZYDIS_MNEMONIC_XADD:
		*af = AF_DEFINES;
		return true;
	case ZYDIS_MNEMONIC_AND: case ZYDIS_MNEMONIC_OR: case ZYDIS_MNEMONIC_XOR:
	case ZYDIS_MNEMONIC_TEST:
		*af = AF_UNDEFINES;
		return true;
	case ZYDIS_MNEMONIC_POPCNT:
		*af = AF_DEFINES;       /* cleared */
		return host_popcnt;
	case ZYDIS_MNEMONIC_NOT: case ZYDIS_MNEMONIC_MOV: case ZYDIS_MNEMONIC_MOVZX:
	case ZYDIS_MNEMONIC_MOVSX: case ZYDIS_MNEMONIC_MOVSXD: case ZYDIS_MNEMONIC_XCHG:
	case ZYDIS_MNEMONIC_BSWAP: case ZYDIS_MNEMONIC_NOP: case ZYDIS_MNEMONIC_LEA:
	case ZYDIS_MNEMONIC_CBW: case ZYDIS_MNEMONIC_CWDE: case ZYDIS_MNEMONIC_CDQE:
	case ZYDIS_MNEMONIC_CWD: case ZYDIS_MNEMONIC_CDQ: case ZYDIS_MNEMONIC_CQO:
	case ZYDIS_MNEMONIC_CLC: case ZYDIS_MNEMONIC_STC: case ZYDIS_MNEMONIC_CMC:
	case ZYDIS_MNEMONIC_CMOVB: case ZYDIS_MNEMONIC_CMOVBE: case ZYDIS_MNEMONIC_CMOVL:
	case ZYDIS_MNEMONIC_CMOVLE: case ZYDIS_MNEMONIC_CMOVNB: case ZYDIS_MNEMONIC_CMOVNBE:
	case ZYDIS_MNEMONIC_CMOVNL: case ZYDIS_MNEMONIC_CMOVNLE: case ZYDIS_MNEMONIC_CMOVNO:
	case ZYDIS_MNEMONIC_CMOVNP: case ZYDIS_MNEMONIC_CMOVNS: case ZYDIS_MNEMONIC_CMOVNZ:
	case ZYDIS_MNEMONIC_CMOVO: case ZYDIS_MNEMONIC_CMOVP: case ZYDIS_MNEMONIC_CMOVS:
	case ZYDIS_MNEMONIC_CMOVZ:
	case ZYDIS_MNEMONIC_SETB: case ZYDIS_MNEMONIC_SETBE: case ZYDIS_MNEMONIC_SETL:
	case ZYDIS_MNEMONIC_SETLE: case ZYDIS_MNEMONIC_SETNB: case ZYDIS_MNEMONIC_SETNBE:
	case ZYDIS_MNEMONIC_SETNL: case ZYDIS_MNEMONIC_SETNLE: case ZYDIS_MNEMONIC_SETNO:
	case ZYDIS_MNEMONIC_SETNP: case ZYDIS_MNEMONIC_SETNS: case ZYDIS_MNEMONIC_SETNZ:
	case ZYDIS_MNEMONIC_SETO: case ZYDIS_MNEMONIC_SETP: case ZYDIS_MNEMONIC_SETS:
	case ZYDIS_MNEMONIC_SETZ:
		return true;
	default:
		return false;
	}
}

static bool reg_allowed(ZydisRegister r)
{
	switch (ZydisRegisterGetClass(r)) {
	case ZYDIS_REGCLASS_GPR8: case ZYDIS_REGCLASS_GPR16:
	case ZYDIS_REGCLASS_GPR32: case ZYDIS_REGCLASS_GPR64:
		return r != ZYDIS_REGISTER_RSP && r != ZYDIS_REGISTER_ESP &&
		       r != ZYDIS_REGISTER_SP && r != ZYDIS_REGISTER_SPL;
	case ZYDIS_REGCLASS_FLAGS:
		return true;
	default:
		return false;
	}
}

/* One instruction a native run can execute safely and the engine must
 * agree on: register and immediate operands only (LEA's address
 * computation from GPRs), no LOCK. */
static bool insn_allowed(const ZydisDecodedInstruction *in, const ZydisDecodedOperand *ops,
			 enum af_effect *af)
{
	if (!mnemonic_allowed(in->mnemonic, af) || (in->attributes & ZYDIS_ATTRIB_HAS_LOCK))
		return false;
	/* BSWAP of a 16-bit register is undefined. */
	if (in->mnemonic == ZYDIS_MNEMONIC_BSWAP && in->operand_width == 16)
		return false;
	for (unsigned int i = 0; i < in->operand_count; i++) {
		const ZydisDecodedOperand *o = &ops[i];

		switch (o->type) {
		case ZYDIS_OPERAND_TYPE_REGISTER:
			if (!reg_allowed(o->reg.value))
				return false;
			break;
		case ZYDIS_OPERAND_TYPE_IMMEDIATE:
			break;
		case ZYDIS_OPERAND_TYPE_MEMORY:
			if (in->mnemonic != ZYDIS_MNEMONIC_LEA || o->mem.type != ZYDIS_MEMOP_TYPE_AGEN ||
			    (o->mem.base != ZYDIS_REGISTER_NONE && !reg_allowed(o->mem.base)) ||
			    (o->mem.index != ZYDIS_REGISTER_NONE && !reg_allowed(o->mem.index)) ||
			    o->mem.segment == ZYDIS_REGISTER_FS || o->mem.segment == ZYDIS_REGISTER_GS)
				return false;
			break;
		default:
			return false;
		}
	}
	return true;
}

/* The length of the allowlisted prefix of code; *af_defined: whether the
 * last instruction that wrote AF defined it (true if none did). */
static size_t allowed_prefix(const uint8_t *code, size_t len, bool *af_defined)
{
	size_t off = 0;

	*af_defined = true;
	while (off < len) {
		ZydisDecodedInstruction in;
		ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
		enum af_effect af;

		if (ZYAN_FAILED(ZydisDecoderDecodeFull(&decoder, code + off, len - off, &in, ops)) ||
		    !insn_allowed(&in, ops, &af))
			break;
		if (af != AF_KEEPS)
			*af_defined = af == AF_DEFINES;
		off += in.length;
	}
	return off;
}

/* ---- the VM ---- */

struct fx_vm {
	struct xg_vm g;
	uint8_t cfg;
	bool dead;              /* shutdown or internal error seen */
};

static void fx_create(struct fx_vm *v, uint8_t cfg)
{
	struct xg_cfg xc = {
		.type = (cfg & CFG_SW) ? KVM_X86_SW_PROTECTED_VM : KVM_X86_DEFAULT_VM,
		.mem_size = RAM_SIZE, .gmem = cfg & CFG_SW, .irqchip = cfg & CFG_IRQCHIP,
	};
	struct kvm_userspace_memory_region2 ro = {
		.slot = 1, .flags = KVM_MEM_READONLY, .guest_phys_addr = CANARY_GPA,
		.memory_size = CANARY_SIZE, .userspace_addr = (uintptr_t)canary,
	};

	memset(v, 0, sizeof(*v));
	v->cfg = cfg;
	xg_create(&v->g, &xc);
	if (pm_kvm_ioctl(v->g.vm, KVM_SET_USER_MEMORY_REGION2, &ro))
		fx_fail("the read-only slot: %s", strerror(errno));
	xg_map(&v->g, CANARY_GPA, CANARY_GPA, CANARY_SIZE, XG_PTE_RW);
	xg_map(&v->g, MMIO_GPA, MMIO_GPA, MMIO_SIZE, XG_PTE_RW);
	for (uint64_t i = 0; i < 0x10000; i += 8) {
		uint64_t x = (XG_DATA + i) * 0x9e3779b97f4a7c15ULL;

		memcpy(xg_host(&v->g, XG_DATA + i), &x, 8);
	}
	if (cfg & CFG_SW) {
		struct kvm_enable_cap cap = { .cap = KVM_CAP_EXIT_HYPERCALL,
					      .args = { 1ULL << KVM_HC_MAP_GPA_RANGE } };
		struct kvm_memory_attributes a = { .address = XG_DATA, .size = DATA_PRIVATE,
						   .attributes = KVM_MEMORY_ATTRIBUTE_PRIVATE };

		if (pm_kvm_ioctl(v->g.vm, KVM_ENABLE_CAP, &cap))
			fx_fail("KVM_CAP_EXIT_HYPERCALL: %s", strerror(errno));
		if ((cfg & CFG_PRIVATE) && pm_kvm_ioctl(v->g.vm, KVM_SET_MEMORY_ATTRIBUTES, &a))
			fx_fail("KVM_SET_MEMORY_ATTRIBUTES: %s", strerror(errno));
	}
}

static void canary_check(void)
{
	for (uint64_t i = 0; i < CANARY_SIZE; i++)
		if (canary[i] != canary_byte(i))
			fx_fail("the read-only slot changed at gpa %#" PRIx64 ": %#x", (uint64_t)(CANARY_GPA + i),
				canary[i]);
}

/* KVM_RUN, kicked after RUN_CPU_NS of this thread's CPU time or
 * RUN_WALL_NS. */
static int run_kicked(struct fx_vm *v, int *err)
{
	struct itimerspec cpu = { .it_value = { .tv_nsec = RUN_CPU_NS } },
			  wall = { .it_value = { .tv_nsec = RUN_WALL_NS } }, off = { 0 };
	const struct timespec zero = { 0 };
	sigset_t set;
	int r;

	if (timer_settime(kick_cpu, 0, &cpu, NULL) || timer_settime(kick_wall, 0, &wall, NULL))
		fx_fail("timer_settime: %s", strerror(errno));
	r = xg_run(&v->g, 0);
	*err = errno;
	timer_settime(kick_cpu, 0, &off, NULL);
	timer_settime(kick_wall, 0, &off, NULL);
	sigemptyset(&set);
	sigaddset(&set, KICK_SIGNAL);
	while (sigtimedwait(&set, NULL, &zero) > 0)
		;
	canary_check();
	return r;
}

static bool gpa_in(uint64_t gpa, uint64_t len, uint64_t base, uint64_t size)
{
	return gpa < base + size && gpa + len > base;
}

static void set_attr(struct fx_vm *v, uint64_t gpa, uint64_t size, bool private)
{
	struct kvm_memory_attributes a = {
		.address = gpa, .size = size, .attributes = private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0,
	};

	if (pm_kvm_ioctl(v->g.vm, KVM_SET_MEMORY_ATTRIBUTES, &a))
		fx_fail("converting %#" PRIx64 "+%#" PRIx64 ": %s", gpa, size, strerror(errno));
}

/* A KVM_RUN that failed: only a memory fault (answered) or a kick.
 * Returns false when the input ends. */
static bool failed_run(struct fx_vm *v, int err)
{
	struct kvm_run *run = v->g.run[0];
	uint64_t gpa = run->memory_fault.gpa;

	if (err == EINTR) {
		if (run->exit_reason != KVM_EXIT_INTR)
			fx_fail("EINTR with exit reason %u", run->exit_reason);
		return false;
	}
	if (err != EFAULT)
		fx_fail("KVM_RUN failed with errno %d (%s)", err, strerror(err));
	if (run->exit_reason != KVM_EXIT_MEMORY_FAULT)
		fx_fail("EFAULT with exit reason %u", run->exit_reason);
	if (!(v->cfg & CFG_SW))
		fx_fail("a memory fault on a VM without private memory at %#" PRIx64, gpa);
	if (run->memory_fault.flags & ~KVM_MEMORY_EXIT_FLAG_PRIVATE)
		fx_fail("memory fault flags %#llx", (unsigned long long)run->memory_fault.flags);
	if (gpa % PAGE || run->memory_fault.size != PAGE ||
	    !(gpa_in(gpa, PAGE, 0, RAM_SIZE) || gpa_in(gpa, PAGE, CANARY_GPA, CANARY_SIZE)))
		fx_fail("memory fault at %#" PRIx64 "+%#llx", gpa,
			(unsigned long long)run->memory_fault.size);
	/* The read-only slot has no guest_memfd: its pages never convert. */
	if (!(v->cfg & CFG_CONVERT) || gpa >= RAM_SIZE)
		return false;
	set_attr(v, gpa, PAGE, run->memory_fault.flags & KVM_MEMORY_EXIT_FLAG_PRIVATE);
	return true;
}

static void io_exit(struct fx_vm *v, size_t code_len, bool *done)
{
	struct kvm_run *run = v->g.run[0];
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	struct xg_exc *exc = xg_exc(&v->g);
	unsigned int bytes = (unsigned int)run->io.size * run->io.count;

	if ((run->io.size != 1 && run->io.size != 2 && run->io.size != 4) || !run->io.count ||
	    run->io.direction > KVM_EXIT_IO_OUT || run->io.data_offset != PAGE || bytes > PAGE)
		fx_fail("IO exit: size %u count %u direction %u data_offset %llu", run->io.size,
			run->io.count, run->io.direction, (unsigned long long)run->io.data_offset);
	if (run->io.direction == KVM_EXIT_IO_IN) {
		for (unsigned int i = 0; i < bytes; i++)
			data[i] = (uint8_t)(run->io.port + i);
		return;
	}
	if (run->io.port == XG_PORT_DONE)
		*done = true;
	/* An exception: resume one byte further, to decode on (the stub
	 * restarts the instruction otherwise, for ever). */
	if (run->io.port == XG_PORT_EXC && run->io.size == 4) {
		if (exc->rip >= XG_CODE && exc->rip < XG_CODE + code_len)
			exc->resume_rip = exc->rip + 1;
		else
			*done = true;
	}
}

static void mmio_exit(struct fx_vm *v)
{
	struct kvm_run *run = v->g.run[0];
	uint64_t gpa = run->mmio.phys_addr;

	if (!run->mmio.len || run->mmio.len > 8 || gpa >= 1ULL << 52 ||
	    gpa_in(gpa, run->mmio.len, 0, RAM_SIZE) ||
	    (gpa_in(gpa, run->mmio.len, CANARY_GPA, CANARY_SIZE) && !run->mmio.is_write))
		fx_fail("MMIO exit at %#" PRIx64 " len %u write %u", gpa, run->mmio.len,
			run->mmio.is_write);
	if (!run->mmio.is_write)
		memset(run->mmio.data, 0x5a, sizeof(run->mmio.data));
}

static void hypercall_exit(struct fx_vm *v)
{
	struct kvm_run *run = v->g.run[0];
	uint64_t gpa = run->hypercall.args[0], n = run->hypercall.args[1];

	if (!(v->cfg & CFG_SW) || run->hypercall.nr != KVM_HC_MAP_GPA_RANGE)
		fx_fail("hypercall exit %llu", (unsigned long long)run->hypercall.nr);
	if (!(v->cfg & CFG_CONVERT) || gpa % PAGE || !n || n > RAM_SIZE / PAGE ||
	    gpa + n * PAGE > RAM_SIZE) {
		run->hypercall.ret = (uint64_t)-KVM_EINVAL;
		return;
	}
	set_attr(v, gpa, n * PAGE, run->hypercall.args[2] & KVM_MAP_GPA_RANGE_ENCRYPTED);
	run->hypercall.ret = 0;
}

/* Runs until XG_PORT_DONE, the end of the guest, or the budget. */
static void run_guest(struct fx_vm *v, size_t code_len)
{
	bool done = false;

	for (int runs = 0; runs < MAX_RUNS && !done && !v->dead; runs++) {
		struct kvm_run *run = v->g.run[0];
		int err, r = run_kicked(v, &err);

		if (trace)
			fprintf(stderr, "KVM_RUN -> %d (%s), exit %u\n", r, r ? strerror(err) : "",
				run->exit_reason);
		if (r) {
			if (r != -1)
				fx_fail("KVM_RUN returned %d", r);
			if (!failed_run(v, err))
				return;
			continue;
		}
		switch (run->exit_reason) {
		case KVM_EXIT_IO:
			io_exit(v, code_len, &done);
			break;
		case KVM_EXIT_MMIO:
			mmio_exit(v);
			break;
		case KVM_EXIT_HYPERCALL:
			hypercall_exit(v);
			break;
		case KVM_EXIT_HLT:
			break;
		case KVM_EXIT_INTERNAL_ERROR:
			if (run->internal.suberror != KVM_INTERNAL_ERROR_EMULATION)
				fx_fail("internal error, suberror %u", run->internal.suberror);
			/* fall through */
		case KVM_EXIT_SHUTDOWN: {
			uint32_t why = run->exit_reason;

			v->dead = true;
			if (run_kicked(v, &err) || run->exit_reason != why)
				fx_fail("KVM_RUN after exit %u: %d, exit %u", why, r, run->exit_reason);
			break;
		}
		default:
			fx_fail("unknown exit reason %u", run->exit_reason);
		}
	}
}

/* The allowlisted prefix in the engine and natively: same registers. */
static void differential(struct fx_vm *v, const uint8_t *hdr, const uint8_t *code, size_t len)
{
	static const uint8_t out_done[] = { 0xe6, XG_PORT_DONE };   /* out %al, $XG_PORT_DONE */
	struct kvm_run *run = v->g.run[0];
	uint64_t eng[16], eng_flags, mask = RFLAGS_CF | RFLAGS_PF | RFLAGS_ZF | RFLAGS_SF | RFLAGS_OF | RFLAGS_DF;
	struct kvm_regs r;
	struct native n;
	bool af_defined;
	size_t plen = allowed_prefix(code, len, &af_defined);
	int err;

	if (trace)
		fprintf(stderr, "differential: %zu of %zu bytes\n", plen, len);
	if (!plen)
		return;
	if (af_defined)
		mask |= RFLAGS_AF;
	/* The engine. */
	memcpy(xg_host(&v->g, XG_CODE), code, plen);
	memcpy(xg_host(&v->g, XG_CODE + plen), out_done, sizeof(out_done));
	seed_regs(hdr, &r, XG_STACKS + 0x4000);
	xg_set_regs(&v->g, 0, &r);
	/* Straight-line code: a kick (the wall-clock timer, on a loaded
	 * machine) only delays it. */
	for (int k = 0; run_kicked(v, &err) && err == EINTR && k < 100; k++)
		;
	if (run->exit_reason != KVM_EXIT_IO || run->io.port != XG_PORT_DONE)
		fx_fail("the register-only prefix of %zu bytes did not reach its OUT (exit %u)", plen,
			run->exit_reason);
	xg_get_regs(&v->g, 0, &r);
	regs_to_array(&r, eng);
	eng_flags = r.rflags;
	/* Natively. */
	memset(&n, 0, sizeof(n));
	seed_regs(hdr, &r, 0);
	regs_to_array(&r, n.gpr);
	n.rflags = r.rflags;
	if (mprotect(native_page, PAGE, PROT_READ | PROT_WRITE))
		fx_fail("mprotect: %s", strerror(errno));
	memcpy(native_page, code, plen);
	native_page[plen] = 0xc3;        /* ret */
	if (mprotect(native_page, PAGE, PROT_READ | PROT_EXEC))
		fx_fail("mprotect: %s", strerror(errno));
	n.code = (uintptr_t)native_page;
	fx_native_run(&n);
	for (int i = 0; i < 16; i++)
		if (i != 4 && eng[i] != n.gpr[i])
			fx_fail("GPR %d after %zu bytes: engine %#" PRIx64 ", native %#" PRIx64, i, plen,
				eng[i], n.gpr[i]);
	if ((eng_flags & mask) != (n.rflags & mask))
		fx_fail("RFLAGS after %zu bytes: engine %#" PRIx64 ", native %#" PRIx64 " (mask %#"
			PRIx64 ")", plen, eng_flags, n.rflags, mask);
}

/* ---- set-up and teardown ---- */

static uint64_t pool_in_use(void)
{
	struct pm_pool_stats ps;

	if (pm_kvm_ioctl(kvm, PM_KVM_GET_POOL_STATS, &ps))
		fx_fail("PM_KVM_GET_POOL_STATS: %s", strerror(errno));
	return ps.in_use;
}

static void setup_once(void)
{
	struct pm_pool_config cfg = { .size = POOL_SIZE, .watermark = POOL_SIZE / 8 };
	struct sigevent sev = { .sigev_notify = SIGEV_THREAD_ID, .sigev_signo = KICK_SIGNAL };
	unsigned int a, b, c, d;
	sigset_t set;

	trace = getenv("FUZZ_TRACE") != NULL;
	host_popcnt = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_POPCNT);
	if (ZYAN_FAILED(ZydisDecoderInit(&decoder, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64)))
		fx_fail("ZydisDecoderInit");
	kvm = pm_kvm_open();
	if (kvm < 0 || pm_kvm_ioctl(kvm, PM_KVM_SET_POOL_CONFIG, &cfg))
		fx_fail("setting up the pool: %s", strerror(errno));
	sigemptyset(&set);
	sigaddset(&set, KICK_SIGNAL);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL))
		fx_fail("blocking the kick signal");
	sev._sigev_un._tid = gettid();   /* sigev_notify_thread_id, which glibc 2.36 lacks */
	if (timer_create(CLOCK_THREAD_CPUTIME_ID, &sev, &kick_cpu) ||
	    timer_create(CLOCK_MONOTONIC, &sev, &kick_wall))
		fx_fail("timer_create: %s", strerror(errno));
	canary = mmap(NULL, CANARY_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	native_page = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (canary == MAP_FAILED || native_page == MAP_FAILED)
		fx_fail("mmap: %s", strerror(errno));
	for (uint64_t i = 0; i < CANARY_SIZE; i++)
		canary[i] = canary_byte(i);
	pool_baseline = pool_in_use();
	next_handle = pm_kvm_open();
	pm_kvm_close(next_handle);
}

static void teardown(struct fx_vm *v)
{
	uint64_t in_use;
	int h;

	xg_destroy(&v->g);
	in_use = pool_in_use();
	if (in_use != pool_baseline) {
		pm_rcu_barrier();       /* frees deferred by a grace period */
		in_use = pool_in_use();
	}
	if (in_use != pool_baseline)
		fx_fail("the pool has %" PRIu64 " bytes in use after teardown, %" PRIu64 " before",
			in_use, pool_baseline);
	h = pm_kvm_open();
	if (h != next_handle)
		fx_fail("a new handle is %d, %d before: a handle leaked", h, next_handle);
	pm_kvm_close(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t tail[] = {
		0xe6, XG_PORT_DONE,     /* out %al, $XG_PORT_DONE */
		0xf4,                   /* hlt */
		0xeb, 0xfb,             /* jmp back to the out */
	};
	struct fx_vm v;
	struct kvm_regs r;
	const uint8_t *code = data + HEADER;
	size_t len;

	if (size < HEADER || size - HEADER > MAX_CODE)
		return 0;
	if (kvm < 0)
		setup_once();
	len = size - HEADER;
	fx_create(&v, data[0]);
	differential(&v, data, code, len);
	memcpy(xg_host(&v.g, XG_CODE), code, len);
	memcpy(xg_host(&v.g, XG_CODE + len), tail, sizeof(tail));
	seed_regs(data, &r, XG_STACKS + 0x4000);
	xg_set_regs(&v.g, 0, &r);
	run_guest(&v, len);
	teardown(&v);
	return 0;
}

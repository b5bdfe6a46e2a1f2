/* SPDX-License-Identifier: MIT */
/*
 * The x86-64 instruction engine: one `struct pm_x86_cpu` is the
 * architectural state of one vCPU and the caches that make executing its
 * guest code fast. The engine runs real x86-64 machine code in 64-bit long
 * mode (4-level paging, CPL 0 and 3); real mode, compatibility mode and
 * virtual-8086 mode are not implemented (a VMM such as kvm_util enters the
 * guest in 64-bit mode with KVM_SET_SREGS).
 *
 * Objects and ownership. The embedder (privmem's vCPU, or a test) allocates
 * a cpu with pm_x86_cpu_create(ops, env) and owns it; the cpu owns its
 * decoded-code cache and TLBs. The engine touches guest memory only through
 * `ops` (below): it never sees privmem's memslots, stage-2 tables or vCPU
 * internals, and its only other dependencies are Zydis (decoding) and
 * src/lib/common.h.
 *
 * Threads. A cpu is used by one thread at a time (its vCPU's); nothing in it
 * is shared. Engines on different threads share guest memory: LOCKed
 * instructions (and XCHG with memory) are host atomics on the guest page,
 * aligned loads and stores are single acquire/release accesses (x86's TSO),
 * and a LOCKed access that crosses a page takes one process-wide mutex
 * (`split_lock`, a leaf lock).
 *
 * Hooks are called with the architectural state consistent: RIP at the
 * instruction in flight, every earlier instruction complete. A hook may read
 * and change registers (as KVM_GET/SET_REGS during an exit); if it moves
 * RIP, the instruction in flight is abandoned and execution resumes at the
 * new RIP (as KVM drops a PIO completion when RIP changed).
 */
#ifndef PM_VCPU_X86_H
#define PM_VCPU_X86_H

#include <setjmp.h>
#include <privmem/kvm.h>
#include "lib/common.h"

struct pm_x86_cpu;

enum pm_x86_shutdown {
	PM_X86_SHUTDOWN_TRIPLE_FAULT = 1,
	PM_X86_SHUTDOWN_INTERNAL_ERROR = 2, /* page tables or the IDT outside memory */
};

enum pm_x86_model_insn {
	PM_X86_PVALIDATE = 1,
	PM_X86_TDCALL = 2,
	PM_X86_VMGEXIT = 3,
};

enum pm_x86_insn_result {
	PM_X86_INSN_DONE = 0, /* completed: RIP moves past it */
	PM_X86_INSN_UD = 1,   /* raise #UD */
	PM_X86_INSN_GP = 2,   /* raise #GP(0) */
};

/* Why pm_x86_run() returned. */
enum pm_x86_stop {
	PM_X86_STOP_BUDGET = 0,   /* ran the instructions it was allowed */
	PM_X86_STOP_REQUEST = 1,  /* pm_x86_request_stop() (from a hook or poll) */
	PM_X86_STOP_HLT = 2,      /* HLT without an hlt hook */
	PM_X86_STOP_SHUTDOWN = 3, /* triple fault or internal error */
};

/* What the engine asks of its embedder. Every hook but `page` is optional. */
struct pm_x86_ops {
	/* Host address of the guest-physical page containing gpa (the page
	 * base), NULL when no memory is there (MMIO). gpa carries every
	 * physical-address bit the guest's page tables gave (up to bit 51):
	 * the embedder decodes or strips them. May take exits and return
	 * later; may call pm_x86_flush() before returning. Page-table reads and
	 * A/D updates go through it too (write = true for an A/D update). */
	uint8_t *(*page)(void *env, uint64_t gpa, bool write);
	/* MMIO of 1..8 bytes (wider or page-crossing accesses are split). */
	uint64_t (*mmio_read)(void *env, uint64_t gpa, unsigned int len);
	void (*mmio_write)(void *env, uint64_t gpa, unsigned int len, uint64_t val);
	/* Port I/O of `count` items of `size` (1, 2, 4) bytes: IN/OUT have
	 * count 1; INS/OUTS pass as many items as fit the current pages
	 * (the data buffer holds count * size bytes). */
	void (*pio_in)(void *env, uint16_t port, unsigned int size, unsigned int count, void *data);
	void (*pio_out)(void *env, uint16_t port, unsigned int size, unsigned int count,
			const void *data);
	/* VMCALL/VMMCALL: the embedder reads the registers and sets RAX.
	 * Without it, RAX = -KVM_ENOSYS. */
	void (*hypercall)(void *env, struct pm_x86_cpu *cpu);
	/* HLT (RIP already past it, `halted` set): returns when the vCPU
	 * runs again. Without it, pm_x86_run() returns PM_X86_STOP_HLT. */
	void (*hlt)(void *env);
	/* Triple fault or an internal error (page tables outside memory):
	 * the vCPU is dead; pm_x86_run() returns PM_X86_STOP_SHUTDOWN. */
	void (*shutdown)(void *env, enum pm_x86_shutdown why);
	/* The confidential-computing instructions of a protection model
	 * (PVALIDATE, TDCALL, VMGEXIT): never executed by the engine. The
	 * hook does the work on the registers; without it they are #UD. */
	enum pm_x86_insn_result (*model_insn)(void *env, struct pm_x86_cpu *cpu,
					      enum pm_x86_model_insn which);
	/* CPUID: return true after filling out[4] (eax..edx) to override
	 * the engine's table. */
	bool (*cpuid)(void *env, uint32_t leaf, uint32_t subleaf, uint32_t out[4]);
	/* The TSC before the guest's offset (default: the host's TSC). */
	uint64_t (*rdtsc)(void *env);
	/* Called at least every PM_X86_POLL_INTERVAL instructions, at a
	 * block boundary: acknowledge shootdowns (pm_x86_flush), notice a
	 * kick (pm_x86_request_stop). May yield and return later. */
	void (*poll)(void *env);
};

#define PM_X86_POLL_INTERVAL 4096

/* Exception vectors. */
enum {
	PM_X86_EXC_DE = 0, PM_X86_EXC_DB = 1, PM_X86_EXC_NMI = 2, PM_X86_EXC_BP = 3,
	PM_X86_EXC_OF = 4, PM_X86_EXC_BR = 5, PM_X86_EXC_UD = 6, PM_X86_EXC_NM = 7,
	PM_X86_EXC_DF = 8, PM_X86_EXC_TS = 10, PM_X86_EXC_NP = 11, PM_X86_EXC_SS = 12,
	PM_X86_EXC_GP = 13, PM_X86_EXC_PF = 14, PM_X86_EXC_MF = 16, PM_X86_EXC_AC = 17,
	PM_X86_EXC_MC = 18, PM_X86_EXC_XM = 19,
};

/* GPR numbers (the encoding's order). */
enum {
	PM_X86_RAX, PM_X86_RCX, PM_X86_RDX, PM_X86_RBX, PM_X86_RSP, PM_X86_RBP, PM_X86_RSI,
	PM_X86_RDI, PM_X86_R8, PM_X86_R9, PM_X86_R10, PM_X86_R11, PM_X86_R12, PM_X86_R13,
	PM_X86_R14, PM_X86_R15,
};

/* Segment registers (the encoding's order). */
enum { PM_X86_ES, PM_X86_CS, PM_X86_SS, PM_X86_DS, PM_X86_FS, PM_X86_GS, PM_X86_NSEG };

/* RFLAGS bits. */
#define PM_X86_CF   (1ULL << 0)
#define PM_X86_PF   (1ULL << 2)
#define PM_X86_AF   (1ULL << 4)
#define PM_X86_ZF   (1ULL << 6)
#define PM_X86_SF   (1ULL << 7)
#define PM_X86_TF   (1ULL << 8)
#define PM_X86_IF   (1ULL << 9)
#define PM_X86_DF   (1ULL << 10)
#define PM_X86_OF   (1ULL << 11)
#define PM_X86_IOPL (3ULL << 12)
#define PM_X86_NT   (1ULL << 14)
#define PM_X86_RF   (1ULL << 16)
#define PM_X86_VM   (1ULL << 17)
#define PM_X86_AC_F (1ULL << 18)
#define PM_X86_VIF  (1ULL << 19)
#define PM_X86_VIP  (1ULL << 20)
#define PM_X86_ID   (1ULL << 21)
#define PM_X86_ARITH (PM_X86_CF | PM_X86_PF | PM_X86_AF | PM_X86_ZF | PM_X86_SF | PM_X86_OF)

/* Control registers and EFER. */
#define PM_X86_CR0_PE (1ULL << 0)
#define PM_X86_CR0_MP (1ULL << 1)
#define PM_X86_CR0_EM (1ULL << 2)
#define PM_X86_CR0_TS (1ULL << 3)
#define PM_X86_CR0_ET (1ULL << 4)
#define PM_X86_CR0_NE (1ULL << 5)
#define PM_X86_CR0_WP (1ULL << 16)
#define PM_X86_CR0_AM (1ULL << 18)
#define PM_X86_CR0_NW (1ULL << 29)
#define PM_X86_CR0_CD (1ULL << 30)
#define PM_X86_CR0_PG (1ULL << 31)
#define PM_X86_CR4_PSE        (1ULL << 4)
#define PM_X86_CR4_PAE        (1ULL << 5)
#define PM_X86_CR4_PGE        (1ULL << 7)
#define PM_X86_CR4_OSFXSR     (1ULL << 9)
#define PM_X86_CR4_OSXMMEXCPT (1ULL << 10)
#define PM_X86_CR4_FSGSBASE   (1ULL << 16)
#define PM_X86_EFER_SCE (1ULL << 0)
#define PM_X86_EFER_LME (1ULL << 8)
#define PM_X86_EFER_LMA (1ULL << 10)
#define PM_X86_EFER_NXE (1ULL << 11)

/* MSRs the engine implements (pm_x86_msr_index_list() lists them). */
#define PM_MSR_TSC              0x00000010
#define PM_MSR_APIC_BASE        0x0000001b
#define PM_MSR_MTRRCAP          0x000000fe
#define PM_MSR_SYSENTER_CS      0x00000174
#define PM_MSR_SYSENTER_ESP     0x00000175
#define PM_MSR_SYSENTER_EIP     0x00000176
#define PM_MSR_MISC_ENABLE      0x000001a0
#define PM_MSR_PAT              0x00000277
#define PM_MSR_MTRR_DEF_TYPE    0x000002ff
#define PM_MSR_EFER             0xc0000080
#define PM_MSR_STAR             0xc0000081
#define PM_MSR_LSTAR            0xc0000082
#define PM_MSR_CSTAR            0xc0000083
#define PM_MSR_SFMASK           0xc0000084
#define PM_MSR_FS_BASE          0xc0000100
#define PM_MSR_GS_BASE          0xc0000101
#define PM_MSR_KERNEL_GS_BASE   0xc0000102
#define PM_MSR_TSC_AUX          0xc0000103

/* A segment register with its hidden part (the fields of kvm_segment). */
struct pm_x86_seg {
	uint64_t base;
	uint32_t limit;
	uint16_t selector;
	uint8_t type, present, dpl, db, s, l, g, avl, unusable;
};

struct pm_x86_dtable {
	uint64_t base;
	uint16_t limit;
};

union pm_x86_xmm {
	uint8_t b[16];
	uint16_t w[8];
	uint32_t d[4];
	uint64_t q[2];
	int8_t sb[16];
	int16_t sw[8];
	int32_t sd[4];
	int64_t sq[2];
	float f[4];
	double fd[2];
};

/* The CPUID table a VMM sets (KVM_SET_CPUID2). */
#define PM_X86_MAX_CPUID 64

struct pm_x86_tlb_entry {
	uint64_t tag_r, tag_w, tag_x; /* gva page | the TLB's epoch, or PM_X86_TLB_INVALID */
	uint8_t *host;                /* host address of the page */
	uint64_t gpa;                 /* gpa of the page (with every PTE bit 12..51) */
};
#define PM_X86_TLB_BITS 8
#define PM_X86_TLB_SIZE (1u << PM_X86_TLB_BITS)
#define PM_X86_TLB_INVALID 1ULL /* never a page address | epoch (epochs are even) */

struct pm_x86_code_cache;

struct pm_x86_cpu {
	/* ---- architectural state (the embedder may read and write it
	 * between runs and from hooks; use the setters for CRs, EFER and
	 * segments so that caches follow) ---- */
	uint64_t gpr[16];
	uint64_t rip;
	uint64_t rflags;  /* always current: flags are computed eagerly */
	struct pm_x86_seg seg[PM_X86_NSEG];
	struct pm_x86_seg ldtr, tr;
	struct pm_x86_dtable gdtr, idtr;
	uint64_t cr0, cr2, cr3, cr4, cr8, efer;
	uint64_t dr[8];   /* DR0-3, DR6 at [6], DR7 at [7]; no breakpoints */
	uint64_t xcr0;
	unsigned int cpl;

	/* MSRs */
	uint64_t star, lstar, cstar, sfmask, kernel_gs_base, tsc_aux, tsc_offset;
	uint64_t apic_base, pat, misc_enable, sysenter_cs, sysenter_esp, sysenter_eip;
	uint64_t mtrr_def_type;

	/* SSE and the x87 state KVM_GET/SET_FPU carries (no x87 execution) */
	union pm_x86_xmm xmm[16];
	uint32_t mxcsr;
	uint8_t fpr[8][16];
	uint16_t fcw, fsw, fop;
	uint8_t ftwx;
	uint64_t fip, fdp;

	/* CPUID as the VMM set it */
	struct kvm_cpuid_entry2 cpuid[PM_X86_MAX_CPUID];
	unsigned int nr_cpuid;

	/* run state */
	bool halted;          /* HLT executed; cleared by the next run */
	bool shut_down;       /* triple fault: never runs again */
	bool interrupt_shadow; /* after STI / MOV SS (no interrupts are injected) */
	uint64_t icount;      /* instructions retired */

	/* ---- engine internals ---- */
	const struct pm_x86_ops *ops;
	void *env;
	uint64_t next_rip;    /* of the instruction in flight */
	bool stop_requested;
	bool end_block;       /* the instruction changed what the block assumed */
	int delivering;       /* vector being delivered, -1 when none */
	uint64_t flush_gen;   /* bumped by every TLB flush (host pointers stale) */
	uint64_t tlb_epoch;   /* in bits 1-11 of every valid TLB tag: a flush moves to
	                       * the next epoch, so it touches no entry (O(1)) but
	                       * every 2047th, which clears them all */
	uint64_t fence_word;  /* MFENCE's locked RMW target */
	uint64_t next_poll;
	jmp_buf *fault_jmp;   /* where a fault unwinds to (the run loop) */
	int pending_vector;   /* raised and not yet delivered, -1 when none */
	uint32_t pending_error;
	bool pending_has_error;
	bool pending_trap;    /* pushes the next RIP (INT n, INT3) */
	bool pending_soft;    /* INT n / INT3 / INTO: gate DPL checked */
	struct pm_x86_tlb_entry tlb[2][PM_X86_TLB_SIZE]; /* [user] */
	struct pm_x86_code_cache *code;
};

/* Create and free. The cpu starts in the state KVM gives a new vCPU (real
 * mode values; a VMM sets long mode through pm_x86_set_sregs) with the
 * engine's own CPU model as its CPUID table. NULL with errno ENOMEM. */
struct pm_x86_cpu *pm_x86_cpu_create(const struct pm_x86_ops *ops, void *env);
void pm_x86_cpu_free(struct pm_x86_cpu *cpu);

/* Run until `budget` instructions retired, a stop request, HLT (without a
 * hook) or a shutdown. */
enum pm_x86_stop pm_x86_run(struct pm_x86_cpu *cpu, uint64_t budget);
void pm_x86_request_stop(struct pm_x86_cpu *cpu);
/* From a `page` hook that took an exit during which the VMM moved RIP
 * (KVM_SET_REGS): abandon the instruction in flight, as KVM re-executes
 * from the RIP it finds after a memory-fault exit; execution resumes at
 * the new RIP. It does not return, except while an exception is being
 * delivered (the event is not dropped): then it returns false and the hook
 * goes on. */
bool pm_x86_abandon(struct pm_x86_cpu *cpu);

/* Flushes. PM_X86_FLUSH_TLB drops every gva translation and host pointer
 * (a stage-2 shootdown; every KVM_RUN may do it); PM_X86_FLUSH_CODE makes
 * the decoded-code cache check each block against memory before it runs
 * again (the VMM or another vCPU wrote guest code). */
#define PM_X86_FLUSH_TLB  (1u << 0)
#define PM_X86_FLUSH_CODE (1u << 1)
void pm_x86_flush(struct pm_x86_cpu *cpu, unsigned int what);

/* Queue an exception to be delivered through the IDT before the next
 * instruction (KVM_SET_VCPU_EVENTS; a model hook raising #VE/#VC). */
void pm_x86_queue_exception(struct pm_x86_cpu *cpu, int vector, bool has_error, uint32_t error);

/* ---- KVM's register structs (state.c). Setters return 0 or -errno
 * (EINVAL: a state KVM refuses). ---- */
void pm_x86_get_regs(const struct pm_x86_cpu *cpu, struct kvm_regs *regs);
void pm_x86_set_regs(struct pm_x86_cpu *cpu, const struct kvm_regs *regs);
void pm_x86_get_sregs(const struct pm_x86_cpu *cpu, struct kvm_sregs *sregs);
int pm_x86_set_sregs(struct pm_x86_cpu *cpu, const struct kvm_sregs *sregs);
void pm_x86_get_fpu(const struct pm_x86_cpu *cpu, struct kvm_fpu *fpu);
int pm_x86_set_fpu(struct pm_x86_cpu *cpu, const struct kvm_fpu *fpu);
void pm_x86_get_mp_state(const struct pm_x86_cpu *cpu, struct kvm_mp_state *mp);
int pm_x86_set_mp_state(struct pm_x86_cpu *cpu, const struct kvm_mp_state *mp);
/* KVM_GET/SET_MSRS: the number of entries processed (stops at the first
 * MSR the engine refuses, as KVM does). */
int pm_x86_get_msrs(struct pm_x86_cpu *cpu, struct kvm_msr_entry *e, unsigned int n);
int pm_x86_set_msrs(struct pm_x86_cpu *cpu, const struct kvm_msr_entry *e, unsigned int n);
/* KVM_SET_CPUID2 (-E2BIG past PM_X86_MAX_CPUID entries) and KVM_GET_CPUID2
 * (-E2BIG when `max` is too small; *n = the number of entries). */
int pm_x86_set_cpuid(struct pm_x86_cpu *cpu, const struct kvm_cpuid_entry2 *e, unsigned int n);
int pm_x86_get_cpuid(const struct pm_x86_cpu *cpu, struct kvm_cpuid_entry2 *e, unsigned int max,
		     unsigned int *n);

/* ---- the CPU model (cpuid.c) ---- */
/* KVM_GET_SUPPORTED_CPUID: what the engine implements, one consistent
 * GenuineIntel model. -E2BIG when `max` is too small; *n = entries. */
int pm_x86_supported_cpuid(struct kvm_cpuid_entry2 *e, unsigned int max, unsigned int *n);
/* KVM_GET_MSR_INDEX_LIST: -E2BIG when `max` is too small; *n = entries. */
int pm_x86_msr_index_list(uint32_t *indices, unsigned int max, unsigned int *n);
/* The answer of the cpu's table to CPUID(leaf, subleaf), as KVM answers
 * from the VMM's table (a leaf past the maximum gets the highest basic
 * leaf, Intel's rule; a missing one zeroes). */
void pm_x86_cpuid_lookup(const struct pm_x86_cpu *cpu, uint32_t leaf, uint32_t subleaf,
			 uint32_t out[4]);

/* Segment and system-register setters that keep the engine's caches
 * right (state.c). */
void pm_x86_set_segment(struct pm_x86_cpu *cpu, int seg, const struct pm_x86_seg *s);

/* ---- benchmark (bench.c) ---- */
struct pm_x86_bench_result {
	const char *name;
	double guest_ips;  /* guest instructions per second */
	double native_ips; /* the same loop run natively, instructions per second */
	double guest_bytes_per_s, native_bytes_per_s; /* memset only */
};
/* Runs the three loops (register-only, load/store over a TLB-resident
 * working set, memset of 64 MiB) in the engine and natively; `scale`
 * multiplies the iteration counts (1 = about a second in all). Returns
 * 0 or -errno (ENOMEM). */
int pm_x86_bench(struct pm_x86_bench_result out[3], double scale);

#endif

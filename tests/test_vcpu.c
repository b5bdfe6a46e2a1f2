/* SPDX-License-Identifier: MIT */
/*
 * The vCPU engine seen from a VMM: KVM_RUN, its exits and the guest API.
 *
 * Every test builds a VM the way tools/vmm.c does (software-protected type
 * unless it says otherwise; one memslot at gpa 0 backed by an anonymous
 * shared mapping and, where private memory is needed, a guest_memfd), sets
 * guest code with PM_KVM_SET_GUEST and drives KVM_RUN from the test thread
 * (or from worker threads where the test is about concurrency). Guest code
 * reports what it saw with pm_guest_sync (the VMM asserts on it) and checks
 * its own expectations with PM_GUEST_ASSERT (an ABORT ucall fails the test
 * with the guest's message).
 *
 * Covered: ucalls (SYNC, DONE by return and by pm_guest_done, ABORT with
 * "file:line: cond", NONE on other exits, DONE repeated after the end), the
 * KVM_RUN and PM_KVM_SET_GUEST argument errors, guest memory accesses of
 * any length and alignment, KVM_EXIT_MEMORY_FAULT (private access without
 * guest_memfd, poisoned page, memslot deleted under a suspended and under a
 * running vCPU), KVM_EXIT_HYPERCALL (MAP_GPA_RANGE exit and its in-kernel
 * errors), KVM_EXIT_MMIO (reads, writes, 8-byte chunks, read-only slots),
 * immediate_exit and pending signals, several vCPUs on several threads,
 * KVM_PRE_FAULT_MEMORY, and every model-specific guest call (TDX, SEV-SNP,
 * pKVM) on every other VM type (the guest ends with an abort naming it).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "lib/testutil.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <linux/falloc.h>

#include <privmem/guest.h>
#include <privmem/privmem.h>
#include "gmem/gmem.h"
#include "kvm/vm.h"
#include "vcpu/vcpu.h"
#include "uapi/handle.h"

#define PAGE      4096ULL
#define MIB       (1ULL << 20)
#define MEM_SIZE  (4 * MIB)          /* guest RAM at gpa 0 */
#define MMIO_GPA  (1ULL << 40)       /* outside every memslot */
#define MAX_VCPUS 4


/* ---- the VMM ------------------------------------------------------------ */

struct vmm {
	int kvm, vm, gmem;
	int vcpu[MAX_VCPUS];
	struct kvm_run *run[MAX_VCPUS];
	int nr_vcpus;
	uint8_t *shared;                 /* the VMM's mapping of guest RAM */
	uint64_t size;
};

struct vmm_cfg {
	unsigned long type;
	bool gmem;                       /* bind a guest_memfd to the slot */
	uint64_t gmem_flags;
	int vcpus;
};

static void vmm_set_slot(struct vmm *m, bool present)
{
	struct kvm_userspace_memory_region2 r = {
		.slot = 0,
		.memory_size = present ? m->size : 0,
		.userspace_addr = (uintptr_t)m->shared,
	};

	if (m->gmem >= 0) {
		r.flags = KVM_MEM_GUEST_MEMFD;
		r.guest_memfd = (uint32_t)m->gmem;
	}
	assert_int_equal(pm_kvm_ioctl(m->vm, KVM_SET_USER_MEMORY_REGION2, &r), 0);
}

static void vmm_open(struct vmm *m, const struct vmm_cfg *cfg)
{
	memset(m, 0, sizeof(*m));
	m->gmem = -1;
	m->size = MEM_SIZE;
	m->kvm = pm_kvm_open();
	assert_true(m->kvm >= 0);
	m->vm = pm_kvm_ioctl(m->kvm, KVM_CREATE_VM, cfg->type);
	assert_true(m->vm >= 0);
	pm_test_gmem_page_size_flags(m->vm);
	m->shared = mmap(NULL, m->size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	assert_true(m->shared != MAP_FAILED);
	if (cfg->gmem) {
		struct kvm_create_guest_memfd cg = { .size = m->size, .flags = cfg->gmem_flags };

		m->gmem = pm_kvm_ioctl(m->vm, KVM_CREATE_GUEST_MEMFD, &cg);
		assert_true(m->gmem >= 0);
	}
	vmm_set_slot(m, true);
	for (int i = 0; i < (cfg->vcpus ? cfg->vcpus : 1); i++) {
		m->vcpu[i] = pm_kvm_ioctl(m->vm, KVM_CREATE_VCPU, i);
		assert_true(m->vcpu[i] >= 0);
		m->run[i] = pm_kvm_mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, m->vcpu[i], 0);
		assert_true(m->run[i] != MAP_FAILED);
		m->nr_vcpus = i + 1;
	}
}

static void vmm_open_sw(struct vmm *m)
{
	const struct vmm_cfg cfg = { .type = KVM_X86_SW_PROTECTED_VM, .gmem = true };

	vmm_open(m, &cfg);
}

static void vmm_close(struct vmm *m)
{
	for (int i = 0; i < m->nr_vcpus; i++) {
		assert_int_equal(pm_kvm_munmap(m->run[i], PAGE), 0);
		assert_int_equal(pm_kvm_close(m->vcpu[i]), 0);
	}
	if (m->gmem >= 0)
		assert_int_equal(pm_kvm_close(m->gmem), 0);
	assert_int_equal(pm_kvm_close(m->vm), 0);
	assert_int_equal(pm_kvm_close(m->kvm), 0);
	munmap(m->shared, m->size);
}

static void vmm_guest(struct vmm *m, int i, void (*fn)(struct pm_guest *, void *), void *arg)
{
	struct pm_guest_entry e = { .fn = fn, .arg = arg };

	assert_int_equal(pm_kvm_ioctl(m->vcpu[i], PM_KVM_SET_GUEST, &e), 0);
}

static void vmm_set_attr(struct vmm *m, uint64_t gpa, uint64_t size, bool private)
{
	struct kvm_memory_attributes a = {
		.address = gpa, .size = size,
		.attributes = private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0,
	};

	assert_int_equal(pm_kvm_ioctl(m->vm, KVM_SET_MEMORY_ATTRIBUTES, &a), 0);
}

static void vmm_stats(struct vmm *m, struct pm_vm_stats *st)
{
	assert_int_equal(pm_kvm_ioctl(m->vm, PM_KVM_GET_VM_STATS, st), 0);
}

static void vmm_enable_map_gpa_exit(struct vmm *m, bool on)
{
	struct kvm_enable_cap cap = { .cap = KVM_CAP_EXIT_HYPERCALL,
				      .args = { on ? 1ULL << KVM_HC_MAP_GPA_RANGE : 0 } };

	assert_int_equal(pm_kvm_ioctl(m->vm, KVM_ENABLE_CAP, &cap), 0);
}

/* KVM_RUN that must succeed with a ucall exit; returns the ucall. */
static uint64_t run_ucall(struct vmm *m, int i, struct pm_ucall *uc)
{
	struct pm_ucall local;
	int r;

	errno = 0;
	r = pm_kvm_ioctl(m->vcpu[i], KVM_RUN, 0);
	if (r)
		fail_msg("KVM_RUN: %d errno %d (%s), exit_reason %u", r, errno, strerror(errno),
			 m->run[i]->exit_reason);
	assert_int_equal(m->run[i]->exit_reason, PM_EXIT_UCALL);
	if (!uc)
		uc = &local;
	return pm_get_ucall(m->vcpu[i], uc);
}

static uint64_t expect_sync(struct vmm *m, int i)
{
	struct pm_ucall uc;
	uint64_t cmd = run_ucall(m, i, &uc);

	if (cmd == PM_UCALL_ABORT)
		fail_msg("guest aborted: %s", uc.msg);
	assert_int_equal(cmd, PM_UCALL_SYNC);
	return uc.args[0];
}

static void expect_done(struct vmm *m, int i)
{
	struct pm_ucall uc;
	uint64_t cmd = run_ucall(m, i, &uc);

	if (cmd == PM_UCALL_ABORT)
		fail_msg("guest aborted: %s", uc.msg);
	assert_int_equal(cmd, PM_UCALL_DONE);
}

/* KVM_RUN that must fail with errno err and a memory-fault exit for gpa. */
static void expect_memory_fault(struct vmm *m, int i, int err, uint64_t gpa, bool private)
{
	struct kvm_run *run = m->run[i];

	assert_fails(pm_kvm_ioctl(m->vcpu[i], KVM_RUN, 0), err);
	assert_int_equal(run->exit_reason, KVM_EXIT_MEMORY_FAULT);
	assert_int_equal(run->exit_reason, 39);
	assert_int_equal(run->memory_fault.gpa, gpa);
	assert_int_equal(run->memory_fault.size, PAGE);
	assert_int_equal(run->memory_fault.flags, private ? KVM_MEMORY_EXIT_FLAG_PRIVATE : 0);
	assert_int_equal(pm_get_ucall(m->vcpu[i], NULL), PM_UCALL_NONE);
}

static uint64_t pattern(uint64_t gpa, uint64_t seed)
{
	return (gpa * 0x9E3779B97F4A7C15ULL) ^ (seed * 0xC2B2AE3D27D4EB4FULL) ^ 0x5555;
}

static uint8_t byte_pattern(uint64_t gpa, uint64_t seed)
{
	return (uint8_t)(pattern(gpa, seed) >> 24);
}

/* ---- ucalls --------------------------------------------------------------- */

static void guest_sync_twice(struct pm_guest *g, void *arg)
{
	pm_guest_sync(g, 0x1234);
	pm_guest_sync(g, 0xfedcba9876543210ULL);
}

static void test_ucall_sync_carries_its_argument_and_return_is_done(void **state)
{
	struct vmm m;
	struct pm_ucall uc;
	struct pm_vm_stats st;

	vmm_open_sw(&m);
	vmm_guest(&m, 0, guest_sync_twice, NULL);
	assert_int_equal(run_ucall(&m, 0, &uc), PM_UCALL_SYNC);
	assert_int_equal(uc.cmd, PM_UCALL_SYNC);
	assert_int_equal(uc.args[0], 0x1234);
	assert_int_equal(expect_sync(&m, 0), 0xfedcba9876543210ULL);
	assert_int_equal(pm_get_ucall(m.vcpu[0], NULL), PM_UCALL_SYNC);   /* still the last exit */
	expect_done(&m, 0);
	vmm_stats(&m, &st);
	assert_int_equal(st.exits[PM_STAT_EXITS_UCALL], 3);
	vmm_close(&m);
}

struct counter_arg {
	atomic_int before, after;
};

static void guest_done_early(struct pm_guest *g, void *arg)
{
	struct counter_arg *a = arg;

	atomic_fetch_add(&a->before, 1);
	pm_guest_done(g);
	atomic_fetch_add(&a->after, 1);         /* never reached */
}

static void test_ucall_done_via_pm_guest_done_and_repeated_after_the_end(void **state)
{
	struct counter_arg a = { 0 };
	struct vmm m;

	vmm_open_sw(&m);
	vmm_guest(&m, 0, guest_done_early, &a);
	expect_done(&m, 0);
	assert_int_equal(atomic_load(&a.before), 1);
	/* KVM_RUN after the end reports DONE again without running the guest. */
	for (int i = 0; i < 3; i++)
		expect_done(&m, 0);
	assert_int_equal(atomic_load(&a.before), 1);
	assert_int_equal(atomic_load(&a.after), 0);
	vmm_close(&m);
}

static void guest_return_at_once(struct pm_guest *g, void *arg)
{
	atomic_fetch_add(&((struct counter_arg *)arg)->before, 1);
}

static void test_run_after_guest_returned_keeps_reporting_done(void **state)
{
	struct counter_arg a = { 0 };
	struct vmm m;

	vmm_open_sw(&m);
	vmm_guest(&m, 0, guest_return_at_once, &a);
	for (int i = 0; i < 4; i++) {
		expect_done(&m, 0);
		assert_int_equal(atomic_load(&a.before), 1);
	}
	vmm_close(&m);
}

static int abort_line;

static void guest_failing_assert(struct pm_guest *g, void *arg)
{
	int value = *(int *)arg;

	pm_guest_sync(g, 1);
	abort_line = __LINE__; PM_GUEST_ASSERT(g, value == 2);
	pm_guest_sync(g, 2);                    /* never reached */
}

static void test_ucall_abort_from_guest_assert_says_file_line_and_condition(void **state)
{
	char want[256];
	struct pm_ucall uc;
	struct vmm m;
	int value = 1;

	vmm_open_sw(&m);
	vmm_guest(&m, 0, guest_failing_assert, &value);
	assert_int_equal(expect_sync(&m, 0), 1);
	assert_int_equal(run_ucall(&m, 0, &uc), PM_UCALL_ABORT);
	snprintf(want, sizeof(want), "%s:%d: %s", __FILE__, abort_line, "value == 2");
	assert_string_equal(uc.msg, want);
	/* The guest never runs again: ABORT is reported again. */
	memset(&uc, 0, sizeof(uc));
	assert_int_equal(run_ucall(&m, 0, &uc), PM_UCALL_ABORT);
	assert_string_equal(uc.msg, want);
	vmm_close(&m);
}

static void guest_mmio_read_then_sync(struct pm_guest *g, void *arg)
{
	uint64_t v = pm_guest_read64(g, MMIO_GPA);

	pm_guest_sync(g, v);
}

static void test_get_ucall_on_a_non_ucall_exit_is_none(void **state)
{
	struct pm_ucall uc = { .cmd = 77 };
	struct vmm m;

	vmm_open_sw(&m);
	assert_int_equal(pm_get_ucall(m.vcpu[0], &uc), PM_UCALL_NONE);    /* before any run */
	vmm_guest(&m, 0, guest_mmio_read_then_sync, NULL);
	assert_int_equal(pm_kvm_ioctl(m.vcpu[0], KVM_RUN, 0), 0);
	assert_int_equal(m.run[0]->exit_reason, KVM_EXIT_MMIO);
	assert_int_equal(pm_get_ucall(m.vcpu[0], &uc), PM_UCALL_NONE);
	assert_int_equal(uc.cmd, 77);                                     /* not copied */
	assert_int_equal(pm_get_ucall(m.vm, NULL), PM_UCALL_NONE);        /* not a vCPU */
	assert_int_equal(pm_get_ucall(-1, NULL), PM_UCALL_NONE);
	expect_sync(&m, 0);
	expect_done(&m, 0);
	vmm_close(&m);
}

/* ---- KVM_RUN and PM_KVM_SET_GUEST errors ------------------------------------ */

static void guest_count_and_sync(struct pm_guest *g, void *arg)
{
	struct counter_arg *a = arg;

	atomic_fetch_add(&a->before, 1);
	pm_guest_sync(g, 0);
	atomic_fetch_add(&a->after, 1);
}

static void guest_sync_7(struct pm_guest *g, void *arg)
{
	pm_guest_sync(g, 7);
}

/* Without C guest code a vCPU runs the guest's machine code from its
 * registers: at reset that is real mode, which the engine does not run, an
 * emulation failure as KVM reports one, and reported again. */
static void test_run_without_guest_code_runs_the_reset_state(void **state)
{
	struct vmm m;

	vmm_open_sw(&m);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pm_kvm_ioctl(m.vcpu[0], KVM_RUN, 0), 0);
		assert_int_equal(m.run[0]->exit_reason, KVM_EXIT_INTERNAL_ERROR);
		assert_int_equal(m.run[0]->internal.suberror, KVM_INTERNAL_ERROR_EMULATION);
	}
	vmm_close(&m);
}

static void test_set_guest_null_fn_is_einval_and_replaces_until_first_run(void **state)
{
	struct pm_guest_entry e = { .fn = NULL };
	struct counter_arg a = { 0 };
	struct vmm m;

	vmm_open_sw(&m);
	assert_fails(pm_kvm_ioctl(m.vcpu[0], PM_KVM_SET_GUEST, &e), EINVAL);
	assert_fails(pm_kvm_ioctl(m.vcpu[0], PM_KVM_SET_GUEST, NULL), EFAULT);
	/* Before the first KVM_RUN the guest code can be replaced. */
	vmm_guest(&m, 0, guest_sync_7, NULL);
	vmm_guest(&m, 0, guest_count_and_sync, &a);
	assert_int_equal(expect_sync(&m, 0), 0);
	assert_int_equal(atomic_load(&a.before), 1);
	vmm_close(&m);
}

static void test_set_guest_after_first_run_is_ebusy(void **state)
{
	struct pm_guest_entry e = { .fn = guest_sync_7 };
	struct counter_arg a = { 0 };
	struct vmm m;

	vmm_open_sw(&m);
	vmm_guest(&m, 0, guest_count_and_sync, &a);
	assert_int_equal(expect_sync(&m, 0), 0);
	assert_fails(pm_kvm_ioctl(m.vcpu[0], PM_KVM_SET_GUEST, &e), EBUSY);
	/* The original guest goes on. */
	expect_done(&m, 0);
	assert_int_equal(atomic_load(&a.after), 1);
	assert_fails(pm_kvm_ioctl(m.vcpu[0], PM_KVM_SET_GUEST, &e), EBUSY);
	vmm_close(&m);
}

static void test_run_with_nonzero_arg_is_einval_and_does_not_run(void **state)
{
	struct counter_arg a = { 0 };
	struct vmm m;

	vmm_open_sw(&m);
	vmm_guest(&m, 0, guest_count_and_sync, &a);
	assert_fails(pm_kvm_ioctl(m.vcpu[0], KVM_RUN, 1UL), EINVAL);
	assert_int_equal(atomic_load(&a.before), 0);
	assert_int_equal(expect_sync(&m, 0), 0);
	assert_fails(pm_kvm_ioctl(m.vcpu[0], KVM_RUN, (unsigned long)&a), EINVAL);
	assert_int_equal(atomic_load(&a.after), 0);
	expect_done(&m, 0);
	vmm_close(&m);
}

/* ---- guest memory ------------------------------------------------------------ */

/* (offset, length) pairs: every length class at every alignment class,
 * crossing 0, 1 and several page boundaries. */
static const struct { uint64_t gpa, len; } access_cases[] = {
	{ 0, 1 }, { 1, 3 }, { 7, 8 }, { 8, 8 }, { 4093, 5 }, { 4095, 2 }, { 4090, 7 },
	{ 4096 + 17, 4096 }, { 3 * 4096 - 1, 4097 }, { 5 * 4096, 4096 }, { 8 * 4096 + 100, 3 * 4096 + 5 },
	{ 2 * MIB - 13, 29 }, { 2 * MIB - 3 * 4096 - 1, 6 * 4096 + 2 }, { 3 * MIB + 4000, 9000 },
};
#define NR_ACCESS_CASES (sizeof(access_cases) / sizeof(access_cases[0]))

static void guest_read_cases(struct pm_guest *g, void *arg)
{
	uint8_t *buf = malloc(8 * 4096);

	PM_GUEST_ASSERT(g, buf != NULL);
	for (size_t c = 0; c < NR_ACCESS_CASES; c++) {
		uint64_t gpa = access_cases[c].gpa, len = access_cases[c].len;

		/* Guard bytes around the buffer catch an overlong copy. */
		memset(buf, 0xee, len + 16);
		pm_guest_read(g, gpa, buf + 8, len);
		PM_GUEST_ASSERT(g, buf[0] == 0xee && buf[7] == 0xee);
		PM_GUEST_ASSERT(g, buf[8 + len] == 0xee && buf[15 + len] == 0xee);
		for (uint64_t i = 0; i < len; i++)
			PM_GUEST_ASSERT(g, buf[8 + i] == byte_pattern(gpa + i, 1));
	}
	free(buf);
}

static void guest_write_cases(struct pm_guest *g, void *arg)
{
	uint8_t *buf = malloc(8 * 4096);

	PM_GUEST_ASSERT(g, buf != NULL);
	for (size_t c = 0; c < NR_ACCESS_CASES; c++) {
		uint64_t gpa = access_cases[c].gpa, len = access_cases[c].len;

		for (uint64_t i = 0; i < len; i++)
			buf[i] = byte_pattern(gpa + i, 2 + c);
		pm_guest_write(g, gpa, buf, len);
		pm_guest_sync(g, c);            /* the VMM checks its mapping */
	}
	free(buf);
}

static void test_guest_read_any_length_and_alignment_sees_the_host_mapping(void **state)
{
	struct vmm m;

	vmm_open_sw(&m);
	for (uint64_t i = 0; i < MEM_SIZE; i++)
		m.shared[i] = byte_pattern(i, 1);
	vmm_guest(&m, 0, guest_read_cases, NULL);
	expect_done(&m, 0);
	vmm_close(&m);
}

static void test_guest_write_any_length_and_alignment_lands_in_the_host_mapping(void **state)
{
	struct vmm m;

	vmm_open_sw(&m);
	memset(m.shared, 0xa5, MEM_SIZE);
	vmm_guest(&m, 0, guest_write_cases, NULL);
	for (size_t c = 0; c < NR_ACCESS_CASES; c++) {
		uint64_t gpa = access_cases[c].gpa, len = access_cases[c].len;

		assert_int_equal(expect_sync(&m, 0), c);
		for (uint64_t i = 0; i < len; i++)
			if (m.shared[gpa + i] != byte_pattern(gpa + i, 2 + c))
				fail_msg("case %zu: byte %#llx is %#x", c, (unsigned long long)(gpa + i),
					 m.shared[gpa + i]);
		/* Nothing outside the range was touched. */
		if (gpa > 0)
			assert_int_equal(m.shared[gpa - 1], 0xa5);
		assert_int_equal(m.shared[gpa + len], 0xa5);
		memset(m.shared + gpa, 0xa5, len);
	}
	expect_done(&m, 0);
	vmm_close(&m);
}

/* Private memory: what the guest writes it reads back, at any length and
 * alignment, and none of it reaches the host's shared mapping. */
static void guest_private_roundtrip(struct pm_guest *g, void *arg)
{
	uint8_t *buf = malloc(8 * 4096);

	PM_GUEST_ASSERT(g, buf != NULL);
	for (size_t c = 0; c < NR_ACCESS_CASES; c++) {
		uint64_t gpa = access_cases[c].gpa, len = access_cases[c].len;

		for (uint64_t i = 0; i < len; i++)
			buf[i] = byte_pattern(gpa + i, 100 + c);
		pm_guest_write(g, gpa, buf, len);
		memset(buf, 0, len);
		pm_guest_read(g, gpa, buf, len);
		for (uint64_t i = 0; i < len; i++)
			PM_GUEST_ASSERT(g, buf[i] == byte_pattern(gpa + i, 100 + c));
	}
	free(buf);
}

static void test_guest_private_access_any_length_reads_back_and_stays_private(void **state)
{
	struct vmm m;

	vmm_open_sw(&m);
	memset(m.shared, 0x5a, MEM_SIZE);
	vmm_set_attr(&m, 0, MEM_SIZE, true);
	vmm_guest(&m, 0, guest_private_roundtrip, NULL);
	expect_done(&m, 0);
	for (uint64_t i = 0; i < MEM_SIZE; i++)
		if (m.shared[i] != 0x5a)
			fail_msg("private data reached the host mapping at %#llx", (unsigned long long)i);
	vmm_close(&m);
}

static void guest_word_ops(struct pm_guest *g, void *arg)
{
	uint64_t exp;

	/* Aligned, unaligned, and across a page boundary. */
	pm_guest_write64(g, 0x1000, 0x1122334455667788ULL);
	pm_guest_write64(g, 0x2003, 0x0102030405060708ULL);
	pm_guest_write64(g, 0x3ffc, 0xa1a2a3a4a5a6a7a8ULL);
	PM_GUEST_ASSERT(g, pm_guest_read64(g, 0x1000) == 0x1122334455667788ULL);
	PM_GUEST_ASSERT(g, pm_guest_read64(g, 0x2003) == 0x0102030405060708ULL);
	PM_GUEST_ASSERT(g, pm_guest_read64(g, 0x3ffc) == 0xa1a2a3a4a5a6a7a8ULL);
	PM_GUEST_ASSERT(g, pm_guest_read64(g, 0x5ffd) == 0xc0c0c0c0c0c0c0c0ULL);  /* host's */
	pm_guest_sync(g, 1);
	/* memset across three pages, exactly the range. */
	pm_guest_memset(g, 0x6ff0, 0x3c, 2 * 4096 + 0x20);
	pm_guest_sync(g, 2);
	/* cmpxchg64: success stores, failure loads the current value. */
	exp = 0x1122334455667788ULL;
	PM_GUEST_ASSERT(g, pm_guest_cmpxchg64(g, 0x1000, &exp, 42));
	PM_GUEST_ASSERT(g, exp == 0x1122334455667788ULL);
	PM_GUEST_ASSERT(g, pm_guest_read64(g, 0x1000) == 42);
	exp = 41;
	PM_GUEST_ASSERT(g, !pm_guest_cmpxchg64(g, 0x1000, &exp, 99));
	PM_GUEST_ASSERT(g, exp == 42);
	PM_GUEST_ASSERT(g, pm_guest_read64(g, 0x1000) == 42);
	exp = 0xdeadbeef;
	PM_GUEST_ASSERT(g, !pm_guest_cmpxchg64(g, 0x4ff8, &exp, 1));   /* host wrote 77 */
	PM_GUEST_ASSERT(g, exp == 77);
	PM_GUEST_ASSERT(g, pm_guest_cmpxchg64(g, 0x4ff8, &exp, 78));
	pm_guest_sync(g, 3);
}

static uint64_t host_read64(const struct vmm *m, uint64_t gpa)
{
	uint64_t v;

	memcpy(&v, m->shared + gpa, 8);
	return v;
}

static void test_guest_read64_write64_memset_cmpxchg64(void **state)
{
	uint64_t v = 77;
	struct vmm m;

	vmm_open_sw(&m);
	memset(m.shared + 0x5000, 0xc0, 0x2000);
	memcpy(m.shared + 0x4ff8, &v, 8);
	vmm_guest(&m, 0, guest_word_ops, NULL);
	assert_int_equal(expect_sync(&m, 0), 1);
	assert_int_equal(host_read64(&m, 0x1000), 0x1122334455667788ULL);
	assert_int_equal(host_read64(&m, 0x2003), 0x0102030405060708ULL);
	assert_int_equal(host_read64(&m, 0x3ffc), 0xa1a2a3a4a5a6a7a8ULL);
	assert_int_equal(m.shared[0x2002], 0);
	assert_int_equal(m.shared[0x200b], 0);
	assert_int_equal(expect_sync(&m, 0), 2);
	assert_int_equal(m.shared[0x6fef], 0xc0);
	for (uint64_t i = 0x6ff0; i < 0x6ff0 + 2 * 4096 + 0x20; i++)
		assert_int_equal(m.shared[i], 0x3c);
	assert_int_equal(m.shared[0x6ff0 + 2 * 4096 + 0x20], 0);
	assert_int_equal(expect_sync(&m, 0), 3);
	assert_int_equal(host_read64(&m, 0x1000), 42);
	assert_int_equal(host_read64(&m, 0x4ff8), 78);
	expect_done(&m, 0);
	vmm_close(&m);
}

/* ---- KVM_EXIT_MEMORY_FAULT ------------------------------------------------------ */

static void guest_touch_private_pages(struct pm_guest *g, void *arg)
{
	uint64_t v;

	pm_guest_sync(g, pm_guest_read64(g, 3 * PAGE + 0x100));
	pm_guest_write64(g, 5 * PAGE + 8, 0xabcdef);
	pm_guest_sync(g, 5);
	pm_guest_read(g, 7 * PAGE - 4, &v, sizeof(v));  /* crosses into page 7 */
	pm_guest_sync(g, v);
}

static void test_private_access_without_guest_memfd_is_memory_fault_then_retried(void **state)
{
	const struct vmm_cfg cfg = { .type = KVM_X86_SW_PROTECTED_VM, .gmem = false };
	struct pm_vm_stats st;
	uint64_t v = 0x0706050403020100ULL;
	struct vmm m;

	vmm_open(&m, &cfg);
	memcpy(m.shared + 3 * PAGE + 0x100, &(uint64_t){ 0x5151 }, 8);
	memcpy(m.shared + 7 * PAGE - 4, &v, 8);
	vmm_set_attr(&m, 3 * PAGE, PAGE, true);
	vmm_set_attr(&m, 5 * PAGE, PAGE, true);
	vmm_set_attr(&m, 7 * PAGE, PAGE, true);
	vmm_guest(&m, 0, guest_touch_private_pages, NULL);

	/* A read: the exit names the page, not the byte; re-running without a
	 * fix faults again (the access is retried). */
	expect_memory_fault(&m, 0, EFAULT, 3 * PAGE, true);
	expect_memory_fault(&m, 0, EFAULT, 3 * PAGE, true);
	vmm_set_attr(&m, 3 * PAGE, PAGE, false);
	assert_int_equal(expect_sync(&m, 0), 0x5151);

	/* A write lands where it was aimed once the page is shared. */
	expect_memory_fault(&m, 0, EFAULT, 5 * PAGE, true);
	vmm_set_attr(&m, 5 * PAGE, PAGE, false);
	assert_int_equal(expect_sync(&m, 0), 5);
	assert_int_equal(host_read64(&m, 5 * PAGE + 8), 0xabcdef);

	/* An access crossing into a private page faults on that page. */
	expect_memory_fault(&m, 0, EFAULT, 7 * PAGE, true);
	vmm_set_attr(&m, 7 * PAGE, PAGE, false);
	assert_int_equal(expect_sync(&m, 0), v);
	expect_done(&m, 0);
	vmm_stats(&m, &st);
	assert_int_equal(st.exits[PM_STAT_EXITS_MEMORY_FAULT], 4);
	vmm_close(&m);
}

static void guest_read_page7(struct pm_guest *g, void *arg)
{
	pm_guest_sync(g, pm_guest_read64(g, 7 * PAGE + 16));
}

static void test_poisoned_guest_memfd_page_is_memory_fault_ehwpoison(void **state)
{
	const struct vmm_cfg cfg = { .type = KVM_X86_SW_PROTECTED_VM, .gmem = true,
				     .gmem_flags = PM_GUEST_MEMFD_FLAG_NO_HUGE };
	struct pm_file f;
	struct vmm m;

	vmm_open(&m, &cfg);
	assert_int_equal(pm_kvm_fallocate(m.gmem, FALLOC_FL_KEEP_SIZE, 7 * PAGE, PAGE), 0);
	assert_int_equal(pm_handle_get(m.gmem, &f), 0);
	assert_int_equal(f.kind, PM_HANDLE_GMEM);
	assert_int_equal(pm_gmem_poison(f.obj, 7), 0);
	pm_file_put(&f);
	vmm_set_attr(&m, 7 * PAGE, PAGE, true);
	memcpy(m.shared + 7 * PAGE + 16, &(uint64_t){ 0x77 }, 8);
	vmm_guest(&m, 0, guest_read_page7, NULL);
	expect_memory_fault(&m, 0, EHWPOISON, 7 * PAGE, true);
	expect_memory_fault(&m, 0, EHWPOISON, 7 * PAGE, true);   /* still poisoned */
	/* The VMM gives the guest the page as shared instead. */
	vmm_set_attr(&m, 7 * PAGE, PAGE, false);
	assert_int_equal(expect_sync(&m, 0), 0x77);
	expect_done(&m, 0);
	vmm_close(&m);
}

static void guest_read_page7_twice(struct pm_guest *g, void *arg)
{
	pm_guest_sync(g, pm_guest_read64(g, 7 * PAGE + 16));   /* maps the page */
	pm_guest_sync(g, pm_guest_read64(g, 7 * PAGE + 16));   /* after the poison */
}

/* Poisoning a page the guest has mapped removes the mapping (as Linux
 * invalidates on memory failure): the next access exits with EHWPOISON
 * instead of reading the poisoned frame through the old mapping. */
static void test_poisoning_a_mapped_page_unmaps_it(void **state)
{
	const struct vmm_cfg cfg = { .type = KVM_X86_SW_PROTECTED_VM, .gmem = true,
				     .gmem_flags = PM_GUEST_MEMFD_FLAG_NO_1G };
	struct pm_file f;
	struct vmm m;

	vmm_open(&m, &cfg);
	vmm_set_attr(&m, 0, 2 * MIB, true);
	vmm_guest(&m, 0, guest_read_page7_twice, NULL);
	assert_int_equal(expect_sync(&m, 0), 0);       /* a 2M private page, zero */
	assert_int_equal(pm_handle_get(m.gmem, &f), 0);
	assert_int_equal(pm_gmem_poison(f.obj, 7), 0);
	pm_file_put(&f);
	expect_memory_fault(&m, 0, EHWPOISON, 7 * PAGE, true);
	vmm_close(&m);
}

#define SLOT_PAGE (9 * PAGE)
#define SLOT_MAGIC 0x5106deadbeef0001ULL

static void guest_private_across_slot_delete(struct pm_guest *g, void *arg)
{
	pm_guest_write64(g, SLOT_PAGE + 8, SLOT_MAGIC);
	pm_guest_sync(g, 1);                    /* the VMM deletes the slot */
	pm_guest_sync(g, pm_guest_read64(g, SLOT_PAGE + 8));
}

static void test_slot_deleted_while_suspended_gives_private_memory_fault(void **state)
{
	struct vmm m;

	vmm_open_sw(&m);
	vmm_set_attr(&m, 0, MEM_SIZE, true);
	vmm_guest(&m, 0, guest_private_across_slot_delete, NULL);
	assert_int_equal(expect_sync(&m, 0), 1);
	vmm_set_slot(&m, false);
	expect_memory_fault(&m, 0, EFAULT, SLOT_PAGE, true);
	/* The memory stayed in the file: a new slot on it gives it back. */
	vmm_set_slot(&m, true);
	assert_int_equal(expect_sync(&m, 0), SLOT_MAGIC);
	expect_done(&m, 0);
	vmm_close(&m);
}

struct loop_arg {
	atomic_uint_fast64_t reads;
	atomic_bool stop;
};

static void guest_read_loop(struct pm_guest *g, void *arg)
{
	struct loop_arg *a = arg;

	pm_guest_write64(g, SLOT_PAGE + 8, SLOT_MAGIC);
	while (!atomic_load(&a->stop)) {
		PM_GUEST_ASSERT(g, pm_guest_read64(g, SLOT_PAGE + 8) == SLOT_MAGIC);
		atomic_fetch_add(&a->reads, 1);
	}
}

struct run_thread {
	struct vmm *m;
	int i;
	int r, err;
	uint32_t exit_reason;
	atomic_bool returned;
};

static void *run_once_main(void *arg)
{
	struct run_thread *t = arg;

	errno = 0;
	t->r = pm_kvm_ioctl(t->m->vcpu[t->i], KVM_RUN, 0);
	t->err = errno;
	t->exit_reason = t->m->run[t->i]->exit_reason;
	atomic_store(&t->returned, true);
	return NULL;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool wait_for_u64(atomic_uint_fast64_t *v, uint64_t at_least, double seconds)
{
	double end = now_s() + seconds;

	while (atomic_load(v) < at_least)
		if (now_s() > end)
			return false;
		else
			sched_yield();
	return true;
}

static bool wait_for_bool(atomic_bool *b, double seconds)
{
	double end = now_s() + seconds;

	while (!atomic_load(b))
		if (now_s() > end)
			return false;
		else
			sched_yield();
	return true;
}

static void test_slot_deleted_under_a_running_vcpu_gives_private_memory_fault(void **state)
{
	struct loop_arg a = { 0 };
	struct run_thread t = { 0 };
	pthread_t tid;
	struct vmm m;
	bool exited;

	vmm_open_sw(&m);
	vmm_set_attr(&m, 0, MEM_SIZE, true);
	vmm_guest(&m, 0, guest_read_loop, &a);
	t.m = &m;
	assert_int_equal(pthread_create(&tid, NULL, run_once_main, &t), 0);
	assert_true(wait_for_u64(&a.reads, 1000, 30));
	vmm_set_slot(&m, false);                  /* the guest is in its loop */
	exited = wait_for_bool(&t.returned, 30);
	atomic_store(&a.stop, true);              /* lets a guest that missed it finish */
	pthread_join(tid, NULL);
	assert_true(exited);
	assert_int_equal(t.r, -1);
	assert_int_equal(t.err, EFAULT);
	assert_int_equal(t.exit_reason, KVM_EXIT_MEMORY_FAULT);
	assert_int_equal(m.run[0]->memory_fault.gpa, SLOT_PAGE);
	assert_int_equal(m.run[0]->memory_fault.size, PAGE);
	assert_int_equal(m.run[0]->memory_fault.flags, KVM_MEMORY_EXIT_FLAG_PRIVATE);
	vmm_set_slot(&m, true);
	expect_done(&m, 0);                       /* the retried read saw the data */
	vmm_close(&m);
}

/* ---- KVM_EXIT_HYPERCALL ----------------------------------------------------------- */

static void guest_map_gpa_range_calls(struct pm_guest *g, void *arg)
{
	pm_guest_sync(g, (uint64_t)pm_guest_hypercall(g, KVM_HC_MAP_GPA_RANGE, 0x200000, 512,
						      KVM_MAP_GPA_RANGE_ENCRYPTED |
						      KVM_MAP_GPA_RANGE_PAGE_SZ_2M, 0));
	pm_guest_sync(g, (uint64_t)pm_guest_hypercall(g, KVM_HC_MAP_GPA_RANGE, 0x3000, 1,
						      KVM_MAP_GPA_RANGE_DECRYPTED, 0));
}

static void test_map_gpa_range_exits_when_enabled_and_guest_gets_ret(void **state)
{
	struct kvm_run *run;
	struct pm_vm_stats st;
	struct vmm m;

	vmm_open_sw(&m);
	run = m.run[0];
	vmm_enable_map_gpa_exit(&m, true);
	vmm_guest(&m, 0, guest_map_gpa_range_calls, NULL);
	assert_int_equal(pm_kvm_ioctl(m.vcpu[0], KVM_RUN, 0), 0);
	assert_int_equal(run->exit_reason, KVM_EXIT_HYPERCALL);
	assert_int_equal(run->hypercall.nr, KVM_HC_MAP_GPA_RANGE);
	assert_int_equal(run->hypercall.args[0], 0x200000);
	assert_int_equal(run->hypercall.args[1], 512);
	assert_int_equal(run->hypercall.args[2], KVM_MAP_GPA_RANGE_ENCRYPTED | KVM_MAP_GPA_RANGE_PAGE_SZ_2M);
	assert_int_equal(run->hypercall.flags, KVM_EXIT_HYPERCALL_LONG_MODE);
	assert_int_equal(pm_get_ucall(m.vcpu[0], NULL), PM_UCALL_NONE);
	run->hypercall.ret = 0x1234;
	assert_int_equal(expect_sync(&m, 0), 0x1234);

	assert_int_equal(pm_kvm_ioctl(m.vcpu[0], KVM_RUN, 0), 0);
	assert_int_equal(run->exit_reason, KVM_EXIT_HYPERCALL);
	assert_int_equal(run->hypercall.ret, 0);      /* KVM clears it at the exit */
	assert_int_equal(run->hypercall.args[0], 0x3000);
	assert_int_equal(run->hypercall.args[1], 1);
	assert_int_equal(run->hypercall.args[2], KVM_MAP_GPA_RANGE_DECRYPTED);
	run->hypercall.ret = (uint64_t)-KVM_EINVAL;
	assert_int_equal(expect_sync(&m, 0), (uint64_t)-KVM_EINVAL);
	expect_done(&m, 0);
	vmm_stats(&m, &st);
	assert_int_equal(st.exits[PM_STAT_EXITS_HYPERCALL], 2);
	vmm_close(&m);
}

static void guest_map_gpa_range_once(struct pm_guest *g, void *arg)
{
	pm_guest_sync(g, (uint64_t)pm_guest_hypercall(g, KVM_HC_MAP_GPA_RANGE, 0x1000, 1,
						      KVM_MAP_GPA_RANGE_ENCRYPTED, 0));
	pm_guest_sync(g, (uint64_t)pm_guest_hypercall(g, KVM_HC_MAP_GPA_RANGE, 0x1000, 1,
						      KVM_MAP_GPA_RANGE_ENCRYPTED, 0));
}

static void test_map_gpa_range_not_enabled_is_enosys_without_exit(void **state)
{
	struct pm_vm_stats st;
	struct vmm m;

	vmm_open_sw(&m);
	vmm_guest(&m, 0, guest_map_gpa_range_once, NULL);
	/* The first KVM_RUN stops at the SYNC: there was no hypercall exit. */
	assert_int_equal(expect_sync(&m, 0), (uint64_t)-KVM_ENOSYS);
	/* Enabled, then disabled again (ENABLE_CAP with an empty mask). */
	vmm_enable_map_gpa_exit(&m, true);
	vmm_enable_map_gpa_exit(&m, false);
	assert_int_equal(expect_sync(&m, 0), (uint64_t)-KVM_ENOSYS);
	expect_done(&m, 0);
	vmm_stats(&m, &st);
	assert_int_equal(st.exits[PM_STAT_EXITS_HYPERCALL], 0);
	vmm_close(&m);
}

static void guest_bad_hypercalls(struct pm_guest *g, void *arg)
{
	const uint64_t enc = KVM_MAP_GPA_RANGE_ENCRYPTED;

	pm_guest_sync(g, (uint64_t)pm_guest_hypercall(g, KVM_HC_MAP_GPA_RANGE, 0x1001, 1, enc, 0));
	pm_guest_sync(g, (uint64_t)pm_guest_hypercall(g, KVM_HC_MAP_GPA_RANGE, 0x1800, 1, enc, 0));
	pm_guest_sync(g, (uint64_t)pm_guest_hypercall(g, KVM_HC_MAP_GPA_RANGE, 0x1000, 0, enc, 0));
	pm_guest_sync(g, (uint64_t)pm_guest_hypercall(g, KVM_HC_MAP_GPA_RANGE, 0x1000, UINT64_MAX,
						      enc, 0));
	/* gfn 2^52 - 1 plus npages is exactly 2^64: wraps to 0. */
	pm_guest_sync(g, (uint64_t)pm_guest_hypercall(g, KVM_HC_MAP_GPA_RANGE,
						      0xfffffffffffff000ULL,
						      0ULL - 0xfffffffffffffULL, enc, 0));
	pm_guest_sync(g, (uint64_t)pm_guest_hypercall(g, 9999, 0x1000, 1, enc, 0));
	pm_guest_sync(g, (uint64_t)pm_guest_hypercall(g, 0, 0, 0, 0, 0));
}

static void test_map_gpa_range_bad_args_are_einval_and_unknown_nr_enosys_without_exit(void **state)
{
	struct pm_vm_stats st;
	struct vmm m;

	vmm_open_sw(&m);
	vmm_enable_map_gpa_exit(&m, true);
	vmm_guest(&m, 0, guest_bad_hypercalls, NULL);
	assert_int_equal(expect_sync(&m, 0), (uint64_t)-KVM_EINVAL);   /* unaligned gpa */
	assert_int_equal(expect_sync(&m, 0), (uint64_t)-KVM_EINVAL);   /* unaligned gpa */
	assert_int_equal(expect_sync(&m, 0), (uint64_t)-KVM_EINVAL);   /* npages 0 */
	assert_int_equal(expect_sync(&m, 0), (uint64_t)-KVM_EINVAL);   /* gfn + npages wraps */
	assert_int_equal(expect_sync(&m, 0), (uint64_t)-KVM_EINVAL);   /* wraps at the top */
	assert_int_equal(expect_sync(&m, 0), (uint64_t)-KVM_ENOSYS);   /* unknown nr */
	assert_int_equal(expect_sync(&m, 0), (uint64_t)-KVM_ENOSYS);   /* nr 0 */
	expect_done(&m, 0);
	vmm_stats(&m, &st);
	assert_int_equal(st.exits[PM_STAT_EXITS_HYPERCALL], 0);
	vmm_close(&m);
}

/* ---- KVM_EXIT_MMIO ---------------------------------------------------------------- */

static void guest_mmio_small(struct pm_guest *g, void *arg)
{
	uint8_t b3[3] = { 0xa1, 0xb2, 0xc3 };
	uint16_t h = 0;
	uint8_t one = 0;

	pm_guest_write64(g, MMIO_GPA, 0x0123456789abcdefULL);
	pm_guest_write(g, MMIO_GPA + 0x105, b3, sizeof(b3));
	pm_guest_sync(g, pm_guest_read64(g, MMIO_GPA + 0x10));
	pm_guest_read(g, MMIO_GPA + 0x21, &h, sizeof(h));
	pm_guest_read(g, MMIO_GPA + 0x30, &one, 1);
	pm_guest_sync(g, (uint64_t)h << 8 | one);
}

static void expect_mmio(struct vmm *m, uint64_t gpa, uint32_t len, bool write)
{
	struct kvm_run *run = m->run[0];

	assert_int_equal(pm_kvm_ioctl(m->vcpu[0], KVM_RUN, 0), 0);
	assert_int_equal(run->exit_reason, KVM_EXIT_MMIO);
	assert_int_equal(run->mmio.phys_addr, gpa);
	assert_int_equal(run->mmio.len, len);
	assert_int_equal(run->mmio.is_write, write);
}

static void test_mmio_reads_and_writes_outside_memslots_exit_with_the_data(void **state)
{
	const uint8_t want8[8] = { 0xef, 0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01 };
	struct kvm_run *run;
	struct pm_vm_stats st;
	struct vmm m;

	vmm_open_sw(&m);
	run = m.run[0];
	vmm_guest(&m, 0, guest_mmio_small, NULL);
	expect_mmio(&m, MMIO_GPA, 8, true);
	assert_memory_equal(run->mmio.data, want8, 8);
	expect_mmio(&m, MMIO_GPA + 0x105, 3, true);
	assert_memory_equal(run->mmio.data, ((uint8_t[]){ 0xa1, 0xb2, 0xc3 }), 3);
	expect_mmio(&m, MMIO_GPA + 0x10, 8, false);
	memcpy(run->mmio.data, &(uint64_t){ 0x1122334455667788ULL }, 8);
	assert_int_equal(expect_sync(&m, 0), 0x1122334455667788ULL);
	expect_mmio(&m, MMIO_GPA + 0x21, 2, false);
	run->mmio.data[0] = 0x34;
	run->mmio.data[1] = 0x12;
	memset(run->mmio.data + 2, 0xff, 6);    /* beyond len: must not be copied */
	expect_mmio(&m, MMIO_GPA + 0x30, 1, false);
	run->mmio.data[0] = 0x56;
	run->mmio.data[1] = 0xff;
	assert_int_equal(expect_sync(&m, 0), 0x123456);
	expect_done(&m, 0);
	vmm_stats(&m, &st);
	assert_int_equal(st.exits[PM_STAT_EXITS_MMIO], 5);
	vmm_close(&m);
}

static void guest_mmio_20(struct pm_guest *g, void *arg)
{
	uint8_t buf[24];
	uint64_t sum = 0;

	memset(buf, 0xee, sizeof(buf));
	pm_guest_read(g, MMIO_GPA + 0x40, buf, 20);
	PM_GUEST_ASSERT(g, buf[20] == 0xee);
	for (int i = 0; i < 20; i++)
		PM_GUEST_ASSERT(g, buf[i] == (uint8_t)(i + 1));
	for (int i = 0; i < 20; i++)
		sum += buf[i];
	pm_guest_sync(g, sum);
	for (int i = 0; i < 20; i++)
		buf[i] = (uint8_t)(0x80 + i);
	pm_guest_write(g, MMIO_GPA + 0x80, buf, 20);
}

static void test_mmio_20_byte_access_is_split_8_8_4(void **state)
{
	struct kvm_run *run;
	struct vmm m;
	uint8_t b = 1;

	vmm_open_sw(&m);
	run = m.run[0];
	vmm_guest(&m, 0, guest_mmio_20, NULL);
	for (uint32_t off = 0; off < 20; off += 8) {
		uint32_t len = off < 16 ? 8 : 4;

		expect_mmio(&m, MMIO_GPA + 0x40 + off, len, false);
		for (uint32_t i = 0; i < len; i++)
			run->mmio.data[i] = b++;
	}
	assert_int_equal(expect_sync(&m, 0), 20 * 21 / 2);
	for (uint32_t off = 0; off < 20; off += 8) {
		uint32_t len = off < 16 ? 8 : 4;

		expect_mmio(&m, MMIO_GPA + 0x80 + off, len, true);
		for (uint32_t i = 0; i < len; i++)
			assert_int_equal(run->mmio.data[i], 0x80 + off + i);
	}
	expect_done(&m, 0);
	vmm_close(&m);
}

/* The length of an MMIO read is the guest's: like Linux (which copies its
 * own fragment length, not run->mmio.len), a VMM that rewrites
 * run->mmio.len neither overflows the guest's buffer nor truncates the read. */
static void guest_mmio_len_rewritten(struct pm_guest *g, void *arg)
{
	uint8_t buf[16];

	memset(buf, 0xee, sizeof(buf));
	pm_guest_read(g, MMIO_GPA + 0x200, buf + 4, 2);
	PM_GUEST_ASSERT(g, buf[4] == 0x11 && buf[5] == 0x22);
	for (int i = 0; i < 16; i++)
		if (i < 4 || i > 5)
			PM_GUEST_ASSERT(g, buf[i] == 0xee);
	memset(buf, 0xee, sizeof(buf));
	pm_guest_read(g, MMIO_GPA + 0x300, buf + 4, 4);
	PM_GUEST_ASSERT(g, buf[4] == 0x31 && buf[5] == 0x32 && buf[6] == 0x33 && buf[7] == 0x34);
	PM_GUEST_ASSERT(g, buf[3] == 0xee && buf[8] == 0xee);
}

static void test_mmio_read_length_is_the_guests_not_run_mmio_len(void **state)
{
	struct kvm_run *run;
	struct vmm m;

	vmm_open_sw(&m);
	run = m.run[0];
	vmm_guest(&m, 0, guest_mmio_len_rewritten, NULL);
	expect_mmio(&m, MMIO_GPA + 0x200, 2, false);
	memcpy(run->mmio.data, (uint8_t[8]){ 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88 }, 8);
	run->mmio.len = 8;
	expect_mmio(&m, MMIO_GPA + 0x300, 4, false);
	memcpy(run->mmio.data, (uint8_t[8]){ 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38 }, 8);
	run->mmio.len = 1;
	expect_done(&m, 0);
	vmm_close(&m);
}

/* An access that runs off the end of guest RAM: the RAM part is memory,
 * the rest an MMIO exit for exactly the bytes past the slot. */
static void guest_ram_then_mmio(struct pm_guest *g, void *arg)
{
	uint64_t v;

	pm_guest_write64(g, MEM_SIZE - 4, 0x8877665544332211ULL);
	v = pm_guest_read64(g, MEM_SIZE - 4);
	pm_guest_sync(g, v);
}

static void test_access_crossing_from_ram_into_mmio_exits_for_the_mmio_part(void **state)
{
	struct kvm_run *run;
	struct vmm m;

	vmm_open_sw(&m);
	run = m.run[0];
	vmm_guest(&m, 0, guest_ram_then_mmio, NULL);
	expect_mmio(&m, MEM_SIZE, 4, true);
	assert_memory_equal(run->mmio.data, ((uint8_t[]){ 0x55, 0x66, 0x77, 0x88 }), 4);
	assert_int_equal(*(uint32_t *)(m.shared + MEM_SIZE - 4), 0x44332211);
	expect_mmio(&m, MEM_SIZE, 4, false);
	memcpy(run->mmio.data, (uint8_t[4]){ 0xaa, 0xbb, 0xcc, 0xdd }, 4);
	assert_int_equal(expect_sync(&m, 0), 0xddccbbaa44332211ULL);
	expect_done(&m, 0);
	vmm_close(&m);
}

static void guest_readonly_slot(struct pm_guest *g, void *arg)
{
	pm_guest_sync(g, pm_guest_read64(g, 0x2000));
	pm_guest_write64(g, 0x2000, 0x600d);
	pm_guest_sync(g, pm_guest_read64(g, 0x2000));
}

static void test_write_to_readonly_slot_is_mmio_while_reads_work(void **state)
{
	struct kvm_userspace_memory_region r = { .slot = 0, .flags = KVM_MEM_READONLY,
						 .memory_size = MEM_SIZE };
	struct pm_guest_entry e = { .fn = guest_readonly_slot };
	struct kvm_run *run;
	uint8_t *mem;
	int kvm, vm, vcpu;

	kvm = pm_kvm_open();
	vm = pm_kvm_ioctl(kvm, KVM_CREATE_VM, KVM_X86_DEFAULT_VM);
	assert_true(vm >= 0);
	mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(mem != MAP_FAILED);
	memcpy(mem + 0x2000, &(uint64_t){ 0xfeed }, 8);
	r.userspace_addr = (uintptr_t)mem;
	assert_int_equal(pm_kvm_ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r), 0);
	vcpu = pm_kvm_ioctl(vm, KVM_CREATE_VCPU, 0);
	assert_true(vcpu >= 0);
	run = pm_kvm_mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	assert_true(run != MAP_FAILED);
	assert_int_equal(pm_kvm_ioctl(vcpu, PM_KVM_SET_GUEST, &e), 0);

	assert_int_equal(pm_kvm_ioctl(vcpu, KVM_RUN, 0), 0);
	assert_int_equal(pm_get_ucall(vcpu, NULL), PM_UCALL_SYNC);
	assert_int_equal(pm_kvm_ioctl(vcpu, KVM_RUN, 0), 0);
	assert_int_equal(run->exit_reason, KVM_EXIT_MMIO);
	assert_int_equal(run->mmio.phys_addr, 0x2000);
	assert_int_equal(run->mmio.len, 8);
	assert_int_equal(run->mmio.is_write, 1);
	assert_memory_equal(run->mmio.data, &(uint64_t){ 0x600d }, 8);
	assert_int_equal(pm_kvm_ioctl(vcpu, KVM_RUN, 0), 0);
	{
		struct pm_ucall uc;

		assert_int_equal(pm_get_ucall(vcpu, &uc), PM_UCALL_SYNC);
		assert_int_equal(uc.args[0], 0xfeed);   /* the write did not land */
	}
	assert_int_equal(*(uint64_t *)(mem + 0x2000), 0xfeed);
	assert_int_equal(pm_kvm_ioctl(vcpu, KVM_RUN, 0), 0);
	assert_int_equal(pm_get_ucall(vcpu, NULL), PM_UCALL_DONE);
	assert_int_equal(pm_kvm_munmap(run, PAGE), 0);
	pm_kvm_close(vcpu);
	pm_kvm_close(vm);
	pm_kvm_close(kvm);
	munmap(mem, MEM_SIZE);
}

/* ---- the vCPU TLB ------------------------------------------------------------------- */

/* A flush is O(1) (the next epoch); an entry of an older epoch never hits,
 * single entries can be forgotten, and the wrap of the epoch clears all. */
static void test_tlb_flush_and_forget_make_entries_miss_even_across_the_epoch_wrap(void **state)
{
	struct vmm m;
	struct pm_vcpu *v;
	static uint8_t page[4096];

	vmm_open_sw(&m);
	v = pm_test_vm_of(m.vm)->vcpus[0];
	for (int round = 0; round < 2; round++) {
		struct pm_tlb_entry *e = &v->tlb[(0x5000 >> 12) & (PM_TLB_ENTRIES - 1)];

		if (round)
			v->tlb_epoch = UINT32_MAX;       /* the next flush wraps */
		*e = (struct pm_tlb_entry){ .tag = 0x5, .epoch = v->tlb_epoch, .hva = page };
		assert_ptr_equal(pm_vcpu_tlb_hit(v, 0x5000), e);
		assert_null(pm_vcpu_tlb_hit(v, 0x5000 + (PM_TLB_ENTRIES << 12)));  /* same set */
		pm_vcpu_tlb_flush(v);
		assert_int_not_equal(v->tlb_epoch, 0);
		assert_null(pm_vcpu_tlb_hit(v, 0x5000));
		if (round)
			assert_int_equal(e->epoch, 0);     /* the wrap cleared it */
		e->epoch = v->tlb_epoch;
		assert_ptr_equal(pm_vcpu_tlb_hit(v, 0x5000), e);
		pm_vcpu_tlb_forget(v, 0x5000);
		assert_null(pm_vcpu_tlb_hit(v, 0x5000));
	}
	vmm_close(&m);
}

/* A 2M stage-2 leaf fills the 2M TLB: the block's other pages are served
 * from it (each then from a 4K entry filled from it); a conversion of one of them (a zap, a shootdown) drops it, and
 * the guest then reads the converted page's new memory. */
static void guest_reads_two_pages_of_a_block(struct pm_guest *g, void *arg)
{
	pm_guest_write64(g, 0, 0x1111);
	pm_guest_write64(g, 5 * PAGE, 0x5555);
	pm_guest_sync(g, pm_guest_read64(g, 0));
	pm_guest_sync(g, pm_guest_read64(g, 5 * PAGE));
}

static void test_2m_leaf_fills_the_huge_tlb_and_a_conversion_drops_it(void **state)
{
	struct vmm m;
	struct pm_vcpu *v;

	vmm_open_sw(&m);
	v = pm_test_vm_of(m.vm)->vcpus[0];
	vmm_set_attr(&m, 0, 2 * 1024 * 1024, true);
	vmm_guest(&m, 0, guest_reads_two_pages_of_a_block, NULL);
	assert_int_equal(expect_sync(&m, 0), 0x1111);
	assert_non_null(pm_vcpu_tlb_huge_hit(v, 0));
	assert_non_null(pm_vcpu_tlb_huge_hit(v, 9 * PAGE));          /* same 2M page */
	assert_null(pm_vcpu_tlb_huge_hit(v, 2 * 1024 * 1024));       /* the next one */
	/* Page 5, reached through the 2M entry, got its own 4K entry from
	 * it; the shootdown below must end that one too. */
	assert_non_null(pm_vcpu_tlb_hit(v, 5 * PAGE));
	assert_ptr_equal(pm_vcpu_tlb_hit(v, 5 * PAGE)->hva, pm_vcpu_tlb_huge_hit(v, 0)->hva + 5 * PAGE);
	/* Page 5 goes shared: the VMM's memory behind it holds 0x77. The
	 * vCPU, outside guest mode, flushes when it enters it again (the
	 * shootdown's protocol): the stale 2M entry is never used. */
	memset(m.shared + 5 * PAGE, 0x77, 8);
	vmm_set_attr(&m, 5 * PAGE, PAGE, false);
	assert_int_equal(expect_sync(&m, 0), 0x7777777777777777ULL);
	assert_null(pm_vcpu_tlb_huge_hit(v, 0));   /* the 2M leaf was split: 4K now */
	vmm_close(&m);
}

/* ---- immediate_exit and signals ------------------------------------------------------ */

static void test_immediate_exit_is_eintr_without_running_the_guest(void **state)
{
	struct counter_arg a = { 0 };
	struct vmm m;

	vmm_open_sw(&m);
	vmm_guest(&m, 0, guest_count_and_sync, &a);
	m.run[0]->immediate_exit = 1;
	assert_fails(pm_kvm_ioctl(m.vcpu[0], KVM_RUN, 0), EINTR);
	assert_int_equal(atomic_load(&a.before), 0);
	m.run[0]->immediate_exit = 0;
	assert_int_equal(expect_sync(&m, 0), 0);
	assert_int_equal(atomic_load(&a.before), 1);
	m.run[0]->immediate_exit = 1;
	assert_fails(pm_kvm_ioctl(m.vcpu[0], KVM_RUN, 0), EINTR);
	assert_int_equal(atomic_load(&a.after), 0);         /* not resumed */
	m.run[0]->immediate_exit = 0;
	expect_done(&m, 0);
	assert_int_equal(atomic_load(&a.after), 1);
	vmm_close(&m);
}

static void test_pending_signal_is_eintr_with_exit_intr_until_consumed(void **state)
{
	struct timespec zero = { 0, 0 };
	struct counter_arg a = { 0 };
	struct pm_vm_stats st;
	sigset_t set, old;
	struct vmm m;

	vmm_open_sw(&m);
	vmm_guest(&m, 0, guest_count_and_sync, &a);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	assert_int_equal(pthread_sigmask(SIG_BLOCK, &set, &old), 0);
	assert_int_equal(pthread_kill(pthread_self(), SIGUSR1), 0);
	m.run[0]->exit_reason = KVM_EXIT_UNKNOWN;
	assert_fails(pm_kvm_ioctl(m.vcpu[0], KVM_RUN, 0), EINTR);
	assert_int_equal(m.run[0]->exit_reason, KVM_EXIT_INTR);
	assert_fails(pm_kvm_ioctl(m.vcpu[0], KVM_RUN, 0), EINTR);   /* still pending */
	assert_int_equal(atomic_load(&a.before), 0);
	assert_int_equal(sigtimedwait(&set, NULL, &zero), SIGUSR1);
	assert_int_equal(expect_sync(&m, 0), 0);
	assert_int_equal(atomic_load(&a.before), 1);
	/* Pending while the guest is suspended at a SYNC: not resumed. */
	assert_int_equal(pthread_kill(pthread_self(), SIGUSR1), 0);
	assert_fails(pm_kvm_ioctl(m.vcpu[0], KVM_RUN, 0), EINTR);
	assert_int_equal(m.run[0]->exit_reason, KVM_EXIT_INTR);
	assert_int_equal(atomic_load(&a.after), 0);
	assert_int_equal(sigtimedwait(&set, NULL, &zero), SIGUSR1);
	expect_done(&m, 0);
	assert_int_equal(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
	vmm_stats(&m, &st);
	assert_int_equal(st.exits[PM_STAT_EXITS_INTR], 3);
	vmm_close(&m);
}

/* VMMs kick vCPU threads with real-time signals too (SIGRTMIN + n): a
 * pending one of them stops KVM_RUN as SIGUSR1 does (glibc's sigisemptyset
 * missed signals 33-64). */
static void test_pending_realtime_signal_is_eintr(void **state)
{
	struct timespec zero = { 0, 0 };
	struct counter_arg a = { 0 };
	sigset_t set, old;
	struct vmm m;

	vmm_open_sw(&m);
	vmm_guest(&m, 0, guest_count_and_sync, &a);
	sigemptyset(&set);
	sigaddset(&set, SIGRTMIN + 2);
	sigaddset(&set, SIGRTMAX);
	assert_int_equal(pthread_sigmask(SIG_BLOCK, &set, &old), 0);
	for (int k = 0; k < 2; k++) {
		int sig = k ? SIGRTMAX : SIGRTMIN + 2;

		assert_int_equal(pthread_kill(pthread_self(), sig), 0);
		m.run[0]->exit_reason = KVM_EXIT_UNKNOWN;
		assert_fails(pm_kvm_ioctl(m.vcpu[0], KVM_RUN, 0), EINTR);
		assert_int_equal(m.run[0]->exit_reason, KVM_EXIT_INTR);
		assert_int_equal(atomic_load(&a.before), 0);
		assert_int_equal(sigtimedwait(&set, NULL, &zero), sig);
	}
	assert_int_equal(expect_sync(&m, 0), 0);
	expect_done(&m, 0);
	assert_int_equal(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
	vmm_close(&m);
}

/* ---- several vCPUs on several threads --------------------------------------------------- */

#define SUM_REGION (MEM_SIZE / MAX_VCPUS)     /* 1 MiB per vCPU */

struct sum_arg {
	uint64_t base;
	uint64_t seed;
};

static void guest_sum_region(struct pm_guest *g, void *arg)
{
	const struct sum_arg *a = arg;
	uint64_t sum = 0;

	PM_GUEST_ASSERT(g, pm_guest_vcpu_id(g) == a->seed);
	/* The first half is shared (the VMM filled it), the second private. */
	for (uint64_t off = 0; off < SUM_REGION / 2; off += 8)
		sum += pm_guest_read64(g, a->base + off);
	pm_guest_sync(g, sum);
	for (uint64_t off = SUM_REGION / 2; off < SUM_REGION; off += 8)
		pm_guest_write64(g, a->base + off, pattern(a->base + off, a->seed));
	sum = 0;
	for (uint64_t off = SUM_REGION / 2; off < SUM_REGION; off += 8)
		sum += pm_guest_read64(g, a->base + off);
	pm_guest_sync(g, sum);
}

struct loop_thread {
	struct vmm *m;
	int i;
	uint64_t syncs[8];
	int nr_syncs;
	uint64_t end;                   /* PM_UCALL_DONE, _ABORT, or NONE on error */
	int err;
	char msg[256];
};

/* Runs vCPU i until its guest ends, recording SYNC arguments. */
static void *loop_thread_main(void *arg)
{
	struct loop_thread *t = arg;

	for (;;) {
		struct pm_ucall uc;

		if (pm_kvm_ioctl(t->m->vcpu[t->i], KVM_RUN, 0)) {
			t->err = errno;
			return NULL;
		}
		if (t->m->run[t->i]->exit_reason != PM_EXIT_UCALL)
			return NULL;
		switch (pm_get_ucall(t->m->vcpu[t->i], &uc)) {
		case PM_UCALL_SYNC:
			if (t->nr_syncs < 8)
				t->syncs[t->nr_syncs++] = uc.args[0];
			break;
		default:
			t->end = uc.cmd;
			memcpy(t->msg, uc.msg, sizeof(t->msg));
			return NULL;
		}
	}
}

static void test_vcpus_on_several_threads_each_sum_their_region(void **state)
{
	const struct vmm_cfg cfg = { .type = KVM_X86_SW_PROTECTED_VM, .gmem = true, .vcpus = MAX_VCPUS };
	struct loop_thread t[MAX_VCPUS];
	struct sum_arg a[MAX_VCPUS];
	pthread_t tid[MAX_VCPUS];
	struct vmm m;

	vmm_open(&m, &cfg);
	for (int i = 0; i < MAX_VCPUS; i++) {
		a[i] = (struct sum_arg){ .base = (uint64_t)i * SUM_REGION, .seed = (uint64_t)i };
		for (uint64_t off = 0; off < SUM_REGION / 2; off += 8)
			memcpy(m.shared + a[i].base + off, &(uint64_t){ pattern(a[i].base + off, 1000) }, 8);
		vmm_set_attr(&m, a[i].base + SUM_REGION / 2, SUM_REGION / 2, true);
		vmm_guest(&m, i, guest_sum_region, &a[i]);
	}
	for (int i = 0; i < MAX_VCPUS; i++) {
		t[i] = (struct loop_thread){ .m = &m, .i = i };
		assert_int_equal(pthread_create(&tid[i], NULL, loop_thread_main, &t[i]), 0);
	}
	for (int i = 0; i < MAX_VCPUS; i++)
		pthread_join(tid[i], NULL);
	for (int i = 0; i < MAX_VCPUS; i++) {
		uint64_t shared_sum = 0, private_sum = 0;

		for (uint64_t off = 0; off < SUM_REGION / 2; off += 8)
			shared_sum += pattern(a[i].base + off, 1000);
		for (uint64_t off = SUM_REGION / 2; off < SUM_REGION; off += 8)
			private_sum += pattern(a[i].base + off, (uint64_t)i);
		if (t[i].end != PM_UCALL_DONE)
			fail_msg("vCPU %d: end %llu errno %d %s", i, (unsigned long long)t[i].end,
				 t[i].err, t[i].msg);
		assert_int_equal(t[i].nr_syncs, 2);
		assert_int_equal(t[i].syncs[0], shared_sum);
		assert_int_equal(t[i].syncs[1], private_sum);
		/* The private half never reached the host mapping. */
		for (uint64_t off = SUM_REGION / 2; off < SUM_REGION; off += 8)
			assert_int_equal(host_read64(&m, a[i].base + off), 0);
	}
	vmm_close(&m);
}

/* ---- KVM_PRE_FAULT_MEMORY ----------------------------------------------------------------- */

static void test_pre_fault_bad_ranges_are_einval_and_no_memslot_enoent(void **state)
{
	struct kvm_pre_fault_memory p;
	struct vmm m;

	vmm_open_sw(&m);
	p = (struct kvm_pre_fault_memory){ .gpa = 0, .size = PAGE, .flags = 1 };
	assert_fails(pm_kvm_ioctl(m.vcpu[0], KVM_PRE_FAULT_MEMORY, &p), EINVAL);
	p = (struct kvm_pre_fault_memory){ .gpa = 0x800, .size = PAGE };
	assert_fails(pm_kvm_ioctl(m.vcpu[0], KVM_PRE_FAULT_MEMORY, &p), EINVAL);
	p = (struct kvm_pre_fault_memory){ .gpa = 0, .size = PAGE + 1 };
	assert_fails(pm_kvm_ioctl(m.vcpu[0], KVM_PRE_FAULT_MEMORY, &p), EINVAL);
	p = (struct kvm_pre_fault_memory){ .gpa = PAGE, .size = 0 };
	assert_fails(pm_kvm_ioctl(m.vcpu[0], KVM_PRE_FAULT_MEMORY, &p), EINVAL);
	p = (struct kvm_pre_fault_memory){ .gpa = 0xfffffffffffff000ULL, .size = 2 * PAGE };
	assert_fails(pm_kvm_ioctl(m.vcpu[0], KVM_PRE_FAULT_MEMORY, &p), EINVAL);
	assert_fails(pm_kvm_ioctl(m.vcpu[0], KVM_PRE_FAULT_MEMORY, NULL), EFAULT);
	p = (struct kvm_pre_fault_memory){ .gpa = 1ULL << 32, .size = 4 * PAGE };
	assert_fails(pm_kvm_ioctl(m.vcpu[0], KVM_PRE_FAULT_MEMORY, &p), ENOENT);
	assert_int_equal(p.gpa, 1ULL << 32);     /* nothing done, nothing written back */
	assert_int_equal(p.size, 4 * PAGE);
	vmm_close(&m);
}

static void guest_read_pages(struct pm_guest *g, void *arg)
{
	const uint64_t *range = arg;
	uint64_t sum = 0;

	for (uint64_t gpa = range[0]; gpa < range[0] + range[1]; gpa += PAGE)
		sum += pm_guest_read64(g, gpa);
	pm_guest_sync(g, sum);
}

static void test_pre_fault_maps_the_range_and_writes_back_the_end(void **state)
{
	uint64_t range[2] = { 16 * PAGE, 32 * PAGE };
	struct pm_vm_stats before, after;
	struct kvm_pre_fault_memory p = { .gpa = range[0], .size = range[1] };
	uint64_t want = 0;
	struct vmm m;

	vmm_open_sw(&m);
	for (uint64_t gpa = range[0]; gpa < range[0] + range[1]; gpa += PAGE) {
		memcpy(m.shared + gpa, &gpa, 8);
		want += gpa;
	}
	vmm_stats(&m, &before);
	assert_int_equal(pm_kvm_ioctl(m.vcpu[0], KVM_PRE_FAULT_MEMORY, &p), 0);
	assert_int_equal(p.gpa, range[0] + range[1]);
	assert_int_equal(p.size, 0);
	vmm_stats(&m, &after);
	assert_true(after.mapped[0] + after.mapped[1] + after.mapped[2] >
		    before.mapped[0] + before.mapped[1] + before.mapped[2]);
	assert_true(after.mappings[0] + after.mappings[1] + after.mappings[2] > 0);
	/* The guest reads every page without a fault. */
	vmm_guest(&m, 0, guest_read_pages, range);
	assert_int_equal(expect_sync(&m, 0), want);
	vmm_stats(&m, &before);
	assert_int_equal(before.faults, after.faults);
	expect_done(&m, 0);
	vmm_close(&m);
}

static void test_pre_fault_into_a_hole_returns_0_with_the_rest_written_back(void **state)
{
	struct kvm_pre_fault_memory p = { .gpa = MEM_SIZE - 2 * PAGE, .size = 5 * PAGE };
	struct vmm m;

	vmm_open_sw(&m);
	assert_int_equal(pm_kvm_ioctl(m.vcpu[0], KVM_PRE_FAULT_MEMORY, &p), 0);
	assert_int_equal(p.gpa, MEM_SIZE);        /* the hole */
	assert_int_equal(p.size, 3 * PAGE);
	/* Continuing from the hole maps nothing: ENOENT, range unchanged. */
	assert_fails(pm_kvm_ioctl(m.vcpu[0], KVM_PRE_FAULT_MEMORY, &p), ENOENT);
	assert_int_equal(p.gpa, MEM_SIZE);
	assert_int_equal(p.size, 3 * PAGE);
	vmm_close(&m);
}

static void test_pre_fault_private_range_on_2m_guest_memfd_maps_2m(void **state)
{
	struct kvm_pre_fault_memory p = { .gpa = 2 * MIB, .size = 2 * MIB };
	struct pm_vm_stats before, after;
	struct vmm m;

	vmm_open_sw(&m);
	vmm_set_attr(&m, 0, MEM_SIZE, true);
	vmm_stats(&m, &before);
	assert_int_equal(pm_kvm_ioctl(m.vcpu[0], KVM_PRE_FAULT_MEMORY, &p), 0);
	assert_int_equal(p.gpa, 4 * MIB);
	assert_int_equal(p.size, 0);
	vmm_stats(&m, &after);
	assert_int_equal(after.mapped[1], before.mapped[1] + 1);
	assert_int_equal(after.mapped[0], before.mapped[0]);
	assert_int_equal(after.mappings[1], 1);
	/* A sub-range of a fresh 2M block maps the block and stops at its end
	 * of the range. */
	p = (struct kvm_pre_fault_memory){ .gpa = 5 * PAGE, .size = 2 * PAGE };
	assert_int_equal(pm_kvm_ioctl(m.vcpu[0], KVM_PRE_FAULT_MEMORY, &p), 0);
	assert_int_equal(p.gpa, 7 * PAGE);
	assert_int_equal(p.size, 0);
	vmm_stats(&m, &after);
	assert_int_equal(after.mapped[1], before.mapped[1] + 2);
	assert_int_equal(after.mappings[1], 2);
	vmm_close(&m);
}

static void test_pre_fault_with_a_pending_signal_is_eintr_without_progress(void **state)
{
	struct kvm_pre_fault_memory p = { .gpa = 0, .size = 8 * PAGE };
	struct timespec zero = { 0, 0 };
	struct pm_vm_stats st;
	sigset_t set, old;
	struct vmm m;

	vmm_open_sw(&m);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	assert_int_equal(pthread_sigmask(SIG_BLOCK, &set, &old), 0);
	assert_int_equal(pthread_kill(pthread_self(), SIGUSR1), 0);
	assert_fails(pm_kvm_ioctl(m.vcpu[0], KVM_PRE_FAULT_MEMORY, &p), EINTR);
	assert_int_equal(p.gpa, 0);
	assert_int_equal(p.size, 8 * PAGE);
	assert_int_equal(sigtimedwait(&set, NULL, &zero), SIGUSR1);
	assert_int_equal(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
	vmm_stats(&m, &st);
	assert_int_equal(st.mapped[0] + st.mapped[1] + st.mapped[2], 0);
	vmm_close(&m);
}

/* ---- model-specific guest calls on the wrong VM type ---------------------- */

/* A VM of `type` ready to run guest code: SEV-SNP launched, TDX built and
 * finalized, pKVM with all its RAM in the guest_memfd. */
static void vmm_open_runnable(struct vmm *m, unsigned long type)
{
	const struct vmm_cfg cfg = {
		.type = type, .gmem = type != KVM_X86_DEFAULT_VM,
		.gmem_flags = type == PM_VM_TYPE_PKVM ? GUEST_MEMFD_FLAG_MMAP : 0,
	};

	vmm_open(m, &cfg);
	if (type == KVM_X86_SNP_VM) {
		struct kvm_sev_snp_launch_start start = { .policy = 0x30000 };
		struct kvm_sev_snp_launch_finish finish = { 0 };
		struct kvm_sev_cmd c = { .id = KVM_SEV_SNP_LAUNCH_START, .data = (uintptr_t)&start };

		assert_int_equal(pm_kvm_ioctl(m->vm, KVM_MEMORY_ENCRYPT_OP, &c), 0);
		c = (struct kvm_sev_cmd){ .id = KVM_SEV_SNP_LAUNCH_FINISH, .data = (uintptr_t)&finish };
		assert_int_equal(pm_kvm_ioctl(m->vm, KVM_MEMORY_ENCRYPT_OP, &c), 0);
	} else if (type == KVM_X86_TDX_VM) {
		union {
			struct kvm_tdx_init_vm vm;
			uint8_t bytes[sizeof(struct kvm_tdx_init_vm) + sizeof(struct kvm_cpuid_entry2)];
		} init = { .bytes = { 0 } };
		struct kvm_tdx_cmd c = { .id = KVM_TDX_INIT_VM, .data = (uintptr_t)&init };

		init.vm.cpuid.nent = 1;
		init.vm.cpuid.entries[0].function = 0x80000008;
		init.vm.cpuid.entries[0].eax = 48 << 16 | 46;
		assert_int_equal(pm_kvm_ioctl(m->vm, KVM_MEMORY_ENCRYPT_OP, &c), 0);
		c = (struct kvm_tdx_cmd){ .id = KVM_TDX_INIT_VCPU };
		assert_int_equal(pm_kvm_ioctl(m->vcpu[0], KVM_MEMORY_ENCRYPT_OP, &c), 0);
		c = (struct kvm_tdx_cmd){ .id = KVM_TDX_FINALIZE_VM };
		assert_int_equal(pm_kvm_ioctl(m->vm, KVM_MEMORY_ENCRYPT_OP, &c), 0);
	}
}

/* Each guest makes one model-specific call; returning from it is the
 * failure (the VMM sees a SYNC instead of the abort). */
static void call_tdx_shared_bit(struct pm_guest *g) { (void)pm_guest_tdx_shared_bit(g); }
static void call_tdx_accept(struct pm_guest *g) { (void)pm_guest_tdx_accept(g, 0, PM_TDX_LEVEL_4K); }
static void call_tdx_accept_range(struct pm_guest *g) { (void)pm_guest_tdx_accept_range(g, 0, 2 * MIB); }
static void call_tdx_map_gpa(struct pm_guest *g)
{
	uint64_t next;

	(void)pm_guest_tdx_map_gpa(g, 0, PAGE, &next);
}
static void call_snp_pvalidate(struct pm_guest *g) { (void)pm_guest_snp_pvalidate(g, PM_SNP_C_BIT, false, true); }
static void call_snp_psc(struct pm_guest *g) { (void)pm_guest_snp_psc(g, PAGE); }
static void call_snp_psc_msr(struct pm_guest *g) { (void)pm_guest_snp_psc_msr(g, 0, PM_SNP_PSC_OP_PRIVATE); }
static void call_snp_make_private(struct pm_guest *g) { (void)pm_guest_snp_make_private(g, 0, 1, PAGE, 0); }
static void call_snp_make_shared(struct pm_guest *g) { (void)pm_guest_snp_make_shared(g, 0, 1, PAGE, 0); }
static void call_mem_share(struct pm_guest *g) { (void)pm_guest_mem_share(g, 0); }
static void call_mem_unshare(struct pm_guest *g) { (void)pm_guest_mem_unshare(g, 0); }
static void call_hyp_meminfo(struct pm_guest *g) { (void)pm_guest_hyp_meminfo(g); }
static void call_mmio_guard(struct pm_guest *g) { (void)pm_guest_mmio_guard(g, 0); }
static void call_mem_share_range(struct pm_guest *g) { (void)pm_guest_mem_share_range(g, 0, 1); }
static void call_mem_unshare_range(struct pm_guest *g) { (void)pm_guest_mem_unshare_range(g, 0, 1); }

static const struct model_call {
	void (*call)(struct pm_guest *g);
	unsigned long type;             /* the only VM type it is for */
	const char *msg;                /* what the abort says */
} model_calls[] = {
	{ call_tdx_shared_bit, KVM_X86_TDX_VM, "pm_guest_tdx_shared_bit: not a TDX VM" },
	{ call_tdx_accept, KVM_X86_TDX_VM, "pm_guest_tdx_accept: not a TDX VM" },
	{ call_tdx_accept_range, KVM_X86_TDX_VM, "pm_guest_tdx_accept: not a TDX VM" },
	{ call_tdx_map_gpa, KVM_X86_TDX_VM, "pm_guest_tdx_map_gpa: not a TDX VM" },
	{ call_snp_pvalidate, KVM_X86_SNP_VM, "pm_guest_snp_pvalidate: not an SEV-SNP VM" },
	{ call_snp_psc, KVM_X86_SNP_VM, "pm_guest_snp_psc: not an SEV-SNP VM" },
	{ call_snp_psc_msr, KVM_X86_SNP_VM, "pm_guest_snp_psc_msr: not an SEV-SNP VM" },
	{ call_snp_make_private, KVM_X86_SNP_VM, "pm_guest_snp_make_private: not an SEV-SNP VM" },
	{ call_snp_make_shared, KVM_X86_SNP_VM, "pm_guest_snp_make_shared: not an SEV-SNP VM" },
	{ call_mem_share, PM_VM_TYPE_PKVM, "pm_guest_mem_share: not a pKVM VM" },
	{ call_mem_unshare, PM_VM_TYPE_PKVM, "pm_guest_mem_unshare: not a pKVM VM" },
	{ call_hyp_meminfo, PM_VM_TYPE_PKVM, "pm_guest_hyp_meminfo: not a pKVM VM" },
	{ call_mmio_guard, PM_VM_TYPE_PKVM, "pm_guest_mmio_guard: not a pKVM VM" },
	{ call_mem_share_range, PM_VM_TYPE_PKVM, "pm_guest_mem_share_range: not a pKVM VM" },
	{ call_mem_unshare_range, PM_VM_TYPE_PKVM, "pm_guest_mem_unshare_range: not a pKVM VM" },
};

static void guest_model_call_then_sync(struct pm_guest *g, void *arg)
{
	const struct model_call *c = arg;

	c->call(g);
	pm_guest_sync(g, 0xbad);
}

/* Every model-specific guest call, on every VM type that is not its own,
 * ends the guest with an ABORT naming the call; nothing crashes, and the
 * VM is torn down normally. */
static void test_model_specific_guest_calls_on_other_vm_types_abort_the_guest(void **state)
{
	static const unsigned long types[] = {
		KVM_X86_DEFAULT_VM, KVM_X86_SW_PROTECTED_VM, KVM_X86_SNP_VM, KVM_X86_TDX_VM, PM_VM_TYPE_PKVM,
	};
	int aborts = 0;

	for (size_t t = 0; t < PM_ARRAY_SIZE(types); t++) {
		for (size_t c = 0; c < PM_ARRAY_SIZE(model_calls); c++) {
			struct pm_ucall uc;
			struct vmm m;

			if (model_calls[c].type == types[t])
				continue;
			vmm_open_runnable(&m, types[t]);
			vmm_guest(&m, 0, guest_model_call_then_sync, (void *)&model_calls[c]);
			if (run_ucall(&m, 0, &uc) != PM_UCALL_ABORT || !strstr(uc.msg, model_calls[c].msg))
				fail_msg("VM type %lu, call %zu: ucall %llu \"%s\", want an abort with \"%s\"",
					 types[t], c, (unsigned long long)uc.cmd, uc.msg, model_calls[c].msg);
			aborts++;
			vmm_close(&m);
		}
	}
	/* 15 calls, each on the 4 types that are not its own. */
	assert_int_equal(aborts, 15 * 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_model_specific_guest_calls_on_other_vm_types_abort_the_guest),
		cmocka_unit_test(test_ucall_sync_carries_its_argument_and_return_is_done),
		cmocka_unit_test(test_ucall_done_via_pm_guest_done_and_repeated_after_the_end),
		cmocka_unit_test(test_run_after_guest_returned_keeps_reporting_done),
		cmocka_unit_test(test_ucall_abort_from_guest_assert_says_file_line_and_condition),
		cmocka_unit_test(test_get_ucall_on_a_non_ucall_exit_is_none),
		cmocka_unit_test(test_run_without_guest_code_runs_the_reset_state),
		cmocka_unit_test(test_set_guest_null_fn_is_einval_and_replaces_until_first_run),
		cmocka_unit_test(test_set_guest_after_first_run_is_ebusy),
		cmocka_unit_test(test_run_with_nonzero_arg_is_einval_and_does_not_run),
		cmocka_unit_test(test_guest_read_any_length_and_alignment_sees_the_host_mapping),
		cmocka_unit_test(test_guest_write_any_length_and_alignment_lands_in_the_host_mapping),
		cmocka_unit_test(test_guest_private_access_any_length_reads_back_and_stays_private),
		cmocka_unit_test(test_guest_read64_write64_memset_cmpxchg64),
		cmocka_unit_test(test_private_access_without_guest_memfd_is_memory_fault_then_retried),
		cmocka_unit_test(test_poisoned_guest_memfd_page_is_memory_fault_ehwpoison),
		cmocka_unit_test(test_poisoning_a_mapped_page_unmaps_it),
		cmocka_unit_test(test_slot_deleted_while_suspended_gives_private_memory_fault),
		cmocka_unit_test(test_slot_deleted_under_a_running_vcpu_gives_private_memory_fault),
		cmocka_unit_test(test_map_gpa_range_exits_when_enabled_and_guest_gets_ret),
		cmocka_unit_test(test_map_gpa_range_not_enabled_is_enosys_without_exit),
		cmocka_unit_test(test_map_gpa_range_bad_args_are_einval_and_unknown_nr_enosys_without_exit),
		cmocka_unit_test(test_mmio_reads_and_writes_outside_memslots_exit_with_the_data),
		cmocka_unit_test(test_mmio_20_byte_access_is_split_8_8_4),
		cmocka_unit_test(test_mmio_read_length_is_the_guests_not_run_mmio_len),
		cmocka_unit_test(test_access_crossing_from_ram_into_mmio_exits_for_the_mmio_part),
		cmocka_unit_test(test_write_to_readonly_slot_is_mmio_while_reads_work),
		cmocka_unit_test(test_immediate_exit_is_eintr_without_running_the_guest),
		cmocka_unit_test(test_pending_signal_is_eintr_with_exit_intr_until_consumed),
		cmocka_unit_test(test_pending_realtime_signal_is_eintr),
		cmocka_unit_test(test_tlb_flush_and_forget_make_entries_miss_even_across_the_epoch_wrap),
		cmocka_unit_test(test_2m_leaf_fills_the_huge_tlb_and_a_conversion_drops_it),
		cmocka_unit_test(test_vcpus_on_several_threads_each_sum_their_region),
		cmocka_unit_test(test_pre_fault_bad_ranges_are_einval_and_no_memslot_enoent),
		cmocka_unit_test(test_pre_fault_maps_the_range_and_writes_back_the_end),
		cmocka_unit_test(test_pre_fault_into_a_hole_returns_0_with_the_rest_written_back),
		cmocka_unit_test(test_pre_fault_private_range_on_2m_guest_memfd_maps_2m),
		cmocka_unit_test(test_pre_fault_with_a_pending_signal_is_eintr_without_progress),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

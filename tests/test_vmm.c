/* SPDX-License-Identifier: MIT */
/*
 * The CLI's VMM (tools/vmm.c, vmm_watch.c, vmm_tdx.c), linked in and run
 * in-process: the ways a run that cannot make progress must end, each with
 * its message, where the CLI's own scenarios cannot reach them (they are
 * run under an alarm: before these fixes each looped for ever).
 *
 * Covered: a memory-fault exit that comes back for the same page after the
 * conversion that answered it (a shared page whose host mapping is gone),
 * the watchdog ending a KVM_RUN that retries for ever (a TDX module that
 * answers OPERAND_BUSY to every SEAMCALL) with the vCPU thread kicked, and
 * a VM larger than the simulated host memory refused at creation.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../tools/vmm.h"

#define MIB (1ULL << 20)

static void expect_abort_saying(struct vmm *m, const char *needle)
{
	alarm(60);
	assert_int_equal(vmm_run_all(m, NULL, NULL), -1);
	alarm(0);
	if (!strstr(m->abort_msg, needle))
		fail_msg("abort \"%s\" lacks \"%s\"", m->abort_msg, needle);
}

static void guest_reads_1m(struct pm_guest *g, void *arg)
{
	(void)pm_guest_read64(g, MIB);
}

/* The guest reads a shared page the VMM has unmapped: each KVM_RUN is an
 * EFAULT memory-fault exit for it, the VMM's conversion (to shared, what it
 * is already) changes nothing, and the same exit comes back. */
static void test_memory_fault_that_comes_back_after_its_conversion_stops_the_vcpu(void **state)
{
	struct vmm m;

	assert_int_equal(vmm_create(&m, KVM_X86_SW_PROTECTED_VM, 4 * MIB, 1, 0), 0);
	assert_int_equal(munmap(m.shared + MIB, 4096), 0);
	assert_int_equal(vmm_set_guest(&m, guest_reads_1m, NULL), 0);
	expect_abort_saying(&m, "comes back after its conversion");
	assert_int_equal(atomic_load(&m.implicit_conversions), VMM_FAULT_REPEATS);
	vmm_destroy(&m);
}

static void guest_accepts(struct pm_guest *g, void *arg)
{
	(void)pm_guest_tdx_accept_range(g, 0, 4096);
}

/* Every SEAMCALL busy once the TD runs: the vCPU's fault retries inside
 * privmem; after stall_s seconds without progress the watchdog kicks the
 * vCPU thread, KVM_RUN ends with EINTR and the vCPU gives up. */
static void test_watchdog_ends_a_kvm_run_that_makes_no_progress(void **state)
{
	struct pm_tdx_config cfg = { 0 }, busy = { .busy_per_million = 1000000 };
	struct vmm m;
	int slot;

	assert_int_equal(vmm_create(&m, KVM_X86_TDX_VM, 4 * MIB, 1, 0), 0);
	m.stall_s = 1;
	slot = vmm_watch_enter(&m);
	assert_int_equal(vmm_tdx_init(&m, &cfg), 0);
	assert_int_equal(vmm_tdx_op(&m, m.vm, KVM_TDX_FINALIZE_VM, 0, NULL), 0);
	vmm_watch_leave(&m, slot);
	assert_int_equal(pm_kvm_ioctl(m.vm, PM_KVM_TDX_CONFIG, &busy), 0);
	assert_int_equal(vmm_set_guest(&m, guest_accepts, NULL), 0);
	expect_abort_saying(&m, "no progress for 1 s");
	assert_true(vmm_gave_up(&m));
	vmm_destroy(&m);
}

/* Guest memory that cannot fit in the pool: refused before anything runs. */
static void test_vm_larger_than_host_memory_is_refused(void **state)
{
	struct vmm m;
	uint64_t host = vmm_host_memory();

	assert_true(host > 0);
	assert_int_equal(vmm_create(&m, KVM_X86_SW_PROTECTED_VM, host + 2 * MIB, 1, 0), -ENOMEM);
	vmm_destroy(&m);
	/* A default VM's memory is the VMM's own mapping. */
	assert_int_equal(vmm_create(&m, KVM_X86_DEFAULT_VM, host + 2 * MIB, 1, 0), 0);
	vmm_destroy(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_memory_fault_that_comes_back_after_its_conversion_stops_the_vcpu),
		cmocka_unit_test(test_watchdog_ends_a_kvm_run_that_makes_no_progress),
		cmocka_unit_test(test_vm_larger_than_host_memory_is_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

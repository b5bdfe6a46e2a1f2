/* SPDX-License-Identifier: MIT */
/*
 * test_kvm_abi: include/privmem/kvm.h against the KVM ABI.
 *
 *  - Everything privmem's header shares with the system's <linux/kvm.h>
 *    (Debian 12: Linux 6.1) is compared value by value with the table that
 *    tests/lib/linux_kvm_abi.c builds from the Linux headers (the two headers
 *    cannot share a translation unit).
 *  - What Linux 6.1 lacks (guest_memfd, memory attributes, memory-fault exits,
 *    KVM_PRE_FAULT_MEMORY, SEV-SNP, TDX) is pinned to the literal values and
 *    layouts of current Linux.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <privmem/kvm.h>

#include "lib/kvm_abi.h"

static const struct pm_abi_item pm_privmem_abi[] = {
#include "lib/kvm_abi_items.h"
};

static const size_t pm_privmem_abi_len = sizeof(pm_privmem_abi) / sizeof(pm_privmem_abi[0]);

/* Everything both headers define has the same value in privmem's as in 6.1's. */
static void test_matches_linux_6_1(void **state)
{
	size_t n = pm_privmem_abi_len < pm_linux_abi_len ? pm_privmem_abi_len : pm_linux_abi_len;
	unsigned int bad = 0;

	if (pm_privmem_abi_len != pm_linux_abi_len) {
		print_error("table length: privmem %zu, linux %zu (tables out of sync)\n",
			    pm_privmem_abi_len, pm_linux_abi_len);
		bad++;
	}
	for (size_t i = 0; i < n; i++) {
		const struct pm_abi_item *p = &pm_privmem_abi[i];
		const struct pm_abi_item *l = &pm_linux_abi[i];

		if (strcmp(p->name, l->name) != 0) {
			print_error("item %zu: tables out of sync: privmem \"%s\", linux \"%s\"\n",
				    i, p->name, l->name);
			bad++;
		} else if (p->value != l->value) {
			print_error("MISMATCH %s: privmem 0x%" PRIx64 " (%" PRIu64 "), "
				    "linux 0x%" PRIx64 " (%" PRIu64 ")\n",
				    p->name, p->value, p->value, l->value, l->value);
			bad++;
		}
	}
	assert_true(n > 150); /* the table really was built */
	assert_int_equal(bad, 0);
}

static unsigned int pm_pin(const char *what, uint64_t got, uint64_t want)
{
	if (got == want)
		return 0;
	print_error("MISMATCH %s: privmem 0x%" PRIx64 " (%" PRIu64 "), "
		    "Linux 0x%" PRIx64 " (%" PRIu64 ")\n", what, got, got, want, want);
	return 1;
}

/* Check every pin of a test, report each failing one by name, then fail. */
#define PIN(expr, want)        bad += pm_pin(#expr, (uint64_t)(expr), (uint64_t)(want))
#define PIN_OFF(T, m, want)    PIN(offsetof(T, m), want)
#define PIN_MSZ(T, m, want)    PIN(sizeof(((T *)0)->m), want)

/* _IOC by hand (asm-generic/ioctl.h: nr bits 0-7, type 8-15, size 16-29, dir 30-31). */
#define PM_IOC_WRITE 1u
#define PM_IOC_READ  2u
#define PM_IOC(dir, type, nr, size) \
	(((uint32_t)(dir) << 30) | ((uint32_t)(size) << 16) | ((uint32_t)(type) << 8) | (uint32_t)(nr))

/* What 6.1 lacks: guest_memfd, memory attributes, memory-fault exits, pre-fault. */
static void test_current_linux_memory_abi(void **state)
{
	unsigned int bad = 0;

	/* struct kvm_userspace_memory_region2 (Linux 6.8) */
	PIN(sizeof(struct kvm_userspace_memory_region2), 160);
	PIN_OFF(struct kvm_userspace_memory_region2, slot, 0);
	PIN_OFF(struct kvm_userspace_memory_region2, flags, 4);
	PIN_OFF(struct kvm_userspace_memory_region2, guest_phys_addr, 8);
	PIN_OFF(struct kvm_userspace_memory_region2, memory_size, 16);
	PIN_OFF(struct kvm_userspace_memory_region2, userspace_addr, 24);
	PIN_OFF(struct kvm_userspace_memory_region2, guest_memfd_offset, 32);
	PIN_OFF(struct kvm_userspace_memory_region2, guest_memfd, 40);
	PIN_MSZ(struct kvm_userspace_memory_region2, guest_memfd, 4);
	PIN_OFF(struct kvm_userspace_memory_region2, pad1, 44);
	PIN_OFF(struct kvm_userspace_memory_region2, pad2, 48);
	PIN_MSZ(struct kvm_userspace_memory_region2, pad2, 112);
	/* The first five fields are struct kvm_userspace_memory_region. */
	PIN(offsetof(struct kvm_userspace_memory_region2, guest_memfd_offset),
	    sizeof(struct kvm_userspace_memory_region));

	/* struct kvm_memory_attributes */
	PIN(sizeof(struct kvm_memory_attributes), 32);
	PIN_OFF(struct kvm_memory_attributes, address, 0);
	PIN_OFF(struct kvm_memory_attributes, size, 8);
	PIN_OFF(struct kvm_memory_attributes, attributes, 16);
	PIN_OFF(struct kvm_memory_attributes, flags, 24);

	/* struct kvm_create_guest_memfd */
	PIN(sizeof(struct kvm_create_guest_memfd), 64);
	PIN_OFF(struct kvm_create_guest_memfd, size, 0);
	PIN_OFF(struct kvm_create_guest_memfd, flags, 8);
	PIN_OFF(struct kvm_create_guest_memfd, reserved, 16);
	PIN_MSZ(struct kvm_create_guest_memfd, reserved, 48);

	/* struct kvm_pre_fault_memory */
	PIN(sizeof(struct kvm_pre_fault_memory), 64);
	PIN_OFF(struct kvm_pre_fault_memory, gpa, 0);
	PIN_OFF(struct kvm_pre_fault_memory, size, 8);
	PIN_OFF(struct kvm_pre_fault_memory, flags, 16);
	PIN_OFF(struct kvm_pre_fault_memory, padding, 24);
	PIN_MSZ(struct kvm_pre_fault_memory, padding, 40);

	/* struct kvm_run: memory_fault, hypercall.flags, overall size */
	PIN(sizeof(struct kvm_run), 2352);
	PIN_OFF(struct kvm_run, memory_fault, 32);
	PIN_OFF(struct kvm_run, memory_fault.flags, 32);
	PIN_OFF(struct kvm_run, memory_fault.gpa, 40);
	PIN_OFF(struct kvm_run, memory_fault.size, 48);
	PIN_MSZ(struct kvm_run, memory_fault, 24);
	PIN_OFF(struct kvm_run, hypercall.flags, 96);
	PIN_MSZ(struct kvm_run, hypercall.flags, 8);
	PIN_OFF(struct kvm_run, padding, 32);
	PIN_MSZ(struct kvm_run, padding, 256);
	PIN_OFF(struct kvm_run, kvm_valid_regs, 288);
	PIN_OFF(struct kvm_run, kvm_dirty_regs, 296);
	PIN_OFF(struct kvm_run, s, 304);
	PIN_MSZ(struct kvm_run, s, 2048);

	/*
	 * ioctl numbers. KVM_SET_USER_MEMORY_REGION2 = _IOW(0xAE, 0x49, 160 bytes)
	 * = 1 << 30 | 0xa0 << 16 | 0xae << 8 | 0x49 = 0x40a0ae49.
	 */
	PIN(PM_IOC(PM_IOC_WRITE, 0xAE, 0x49, 160), 0x40a0ae49);
	PIN(_IOW(0xAE, 0x49, struct kvm_userspace_memory_region2), 0x40a0ae49);
	PIN(KVM_SET_USER_MEMORY_REGION2, 0x40a0ae49);
	/* _IOW(0xAE, 0xd2, 32 bytes) */
	PIN(PM_IOC(PM_IOC_WRITE, 0xAE, 0xd2, 32), 0x4020aed2);
	PIN(KVM_SET_MEMORY_ATTRIBUTES, 0x4020aed2);
	/* _IOWR(0xAE, 0xd4, 64 bytes) */
	PIN(PM_IOC(PM_IOC_READ | PM_IOC_WRITE, 0xAE, 0xd4, 64), 0xc040aed4);
	PIN(KVM_CREATE_GUEST_MEMFD, 0xc040aed4);
	/* _IOWR(0xAE, 0xd5, 64 bytes) */
	PIN(PM_IOC(PM_IOC_READ | PM_IOC_WRITE, 0xAE, 0xd5, 64), 0xc040aed5);
	PIN(KVM_PRE_FAULT_MEMORY, 0xc040aed5);

	/* constants */
	PIN(KVM_EXIT_MEMORY_FAULT, 39);
	PIN(KVM_MEMORY_EXIT_FLAG_PRIVATE, 8);
	PIN(KVM_MEMORY_ATTRIBUTE_PRIVATE, 8);
	PIN(GUEST_MEMFD_FLAG_MMAP, 1);
	PIN(GUEST_MEMFD_FLAG_INIT_SHARED, 2);
	PIN(KVM_MEM_GUEST_MEMFD, 4);
	PIN(KVM_CAP_USER_MEMORY2, 231);
	PIN(KVM_CAP_MEMORY_FAULT_INFO, 232);
	PIN(KVM_CAP_MEMORY_ATTRIBUTES, 233);
	PIN(KVM_CAP_GUEST_MEMFD, 234);
	PIN(KVM_CAP_VM_TYPES, 235);
	PIN(KVM_CAP_PRE_FAULT_MEMORY, 236);
	PIN(KVM_CAP_GUEST_MEMFD_FLAGS, 244);
	PIN(KVM_X86_DEFAULT_VM, 0);
	PIN(KVM_X86_SW_PROTECTED_VM, 1);
	PIN(KVM_X86_SEV_VM, 2);
	PIN(KVM_X86_SEV_ES_VM, 3);
	PIN(KVM_X86_SNP_VM, 4);
	PIN(KVM_X86_TDX_VM, 5);
	PIN(KVM_HC_MAP_GPA_RANGE, 12);

	assert_int_equal(bad, 0);
}

/* What 6.1 lacks for KVM_MEMORY_ENCRYPT_OP: SEV INIT2, SEV-SNP launch, TDX. */
static void test_current_linux_encrypt_op_abi(void **state)
{
	unsigned int bad = 0;

	/* struct kvm_sev_cmd with current Linux's explicit pad0 */
	PIN(sizeof(struct kvm_sev_cmd), 24);
	PIN_OFF(struct kvm_sev_cmd, id, 0);
	PIN_OFF(struct kvm_sev_cmd, pad0, 4);
	PIN_OFF(struct kvm_sev_cmd, data, 8);
	PIN_OFF(struct kvm_sev_cmd, error, 16);
	PIN_OFF(struct kvm_sev_cmd, sev_fd, 20);

	/* enum sev_cmd_id: INIT2 follows 6.1's last command (KVM_SEV_NR_MAX == 22 there) */
	PIN(KVM_SEV_INIT2, 22);
	PIN(KVM_SEV_SNP_LAUNCH_START, 100);
	PIN(KVM_SEV_SNP_LAUNCH_UPDATE, 101);
	PIN(KVM_SEV_SNP_LAUNCH_FINISH, 102);

	PIN(sizeof(struct kvm_sev_init), 48);
	PIN_OFF(struct kvm_sev_init, vmsa_features, 0);
	PIN_OFF(struct kvm_sev_init, flags, 8);
	PIN_OFF(struct kvm_sev_init, ghcb_version, 12);
	PIN_OFF(struct kvm_sev_init, pad1, 14);
	PIN_OFF(struct kvm_sev_init, pad2, 16);

	PIN(sizeof(struct kvm_sev_snp_launch_start), 64);
	PIN_OFF(struct kvm_sev_snp_launch_start, policy, 0);
	PIN_OFF(struct kvm_sev_snp_launch_start, gosvw, 8);
	PIN_MSZ(struct kvm_sev_snp_launch_start, gosvw, 16);
	PIN_OFF(struct kvm_sev_snp_launch_start, flags, 24);
	PIN_OFF(struct kvm_sev_snp_launch_start, pad0, 26);
	PIN_OFF(struct kvm_sev_snp_launch_start, pad1, 32);

	PIN(sizeof(struct kvm_sev_snp_launch_update), 64);
	PIN_OFF(struct kvm_sev_snp_launch_update, gfn_start, 0);
	PIN_OFF(struct kvm_sev_snp_launch_update, uaddr, 8);
	PIN_OFF(struct kvm_sev_snp_launch_update, len, 16);
	PIN_OFF(struct kvm_sev_snp_launch_update, type, 24);
	PIN_OFF(struct kvm_sev_snp_launch_update, pad0, 25);
	PIN_OFF(struct kvm_sev_snp_launch_update, flags, 26);
	PIN_OFF(struct kvm_sev_snp_launch_update, pad1, 28);
	PIN_OFF(struct kvm_sev_snp_launch_update, pad2, 32);

	PIN(KVM_SEV_SNP_FINISH_DATA_SIZE, 32);
	PIN(KVM_SEV_SNP_ID_BLOCK_SIZE, 96);
	PIN(KVM_SEV_SNP_ID_AUTH_SIZE, 4096);
	PIN(sizeof(struct kvm_sev_snp_launch_finish), 88);
	PIN_OFF(struct kvm_sev_snp_launch_finish, id_block_uaddr, 0);
	PIN_OFF(struct kvm_sev_snp_launch_finish, id_auth_uaddr, 8);
	PIN_OFF(struct kvm_sev_snp_launch_finish, id_block_en, 16);
	PIN_OFF(struct kvm_sev_snp_launch_finish, auth_key_en, 17);
	PIN_OFF(struct kvm_sev_snp_launch_finish, vcek_disabled, 18);
	PIN_OFF(struct kvm_sev_snp_launch_finish, host_data, 19);
	PIN_MSZ(struct kvm_sev_snp_launch_finish, host_data, 32);
	PIN_OFF(struct kvm_sev_snp_launch_finish, pad0, 51);
	PIN_OFF(struct kvm_sev_snp_launch_finish, flags, 54);
	PIN_OFF(struct kvm_sev_snp_launch_finish, pad1, 56);

	PIN(KVM_SEV_SNP_PAGE_TYPE_NORMAL, 1);
	PIN(KVM_SEV_SNP_PAGE_TYPE_VMSA, 2);
	PIN(KVM_SEV_SNP_PAGE_TYPE_ZERO, 3);
	PIN(KVM_SEV_SNP_PAGE_TYPE_UNMEASURED, 4);
	PIN(KVM_SEV_SNP_PAGE_TYPE_SECRETS, 5);
	PIN(KVM_SEV_SNP_PAGE_TYPE_CPUID, 6);

	/* TDX (Linux 6.16) */
	PIN(KVM_TDX_CAPABILITIES, 0);
	PIN(KVM_TDX_INIT_VM, 1);
	PIN(KVM_TDX_INIT_VCPU, 2);
	PIN(KVM_TDX_INIT_MEM_REGION, 3);
	PIN(KVM_TDX_FINALIZE_VM, 4);
	PIN(KVM_TDX_GET_CPUID, 5);
	PIN(KVM_TDX_CMD_NR_MAX, 6);
	PIN(sizeof(struct kvm_tdx_cmd), 24);
	PIN_OFF(struct kvm_tdx_cmd, id, 0);
	PIN_OFF(struct kvm_tdx_cmd, flags, 4);
	PIN_OFF(struct kvm_tdx_cmd, data, 8);
	PIN_OFF(struct kvm_tdx_cmd, hw_error, 16);
	PIN(sizeof(struct kvm_tdx_init_mem_region), 24);
	PIN_OFF(struct kvm_tdx_init_mem_region, source_addr, 0);
	PIN_OFF(struct kvm_tdx_init_mem_region, gpa, 8);
	PIN_OFF(struct kvm_tdx_init_mem_region, nr_pages, 16);
	PIN(KVM_TDX_MEASURE_MEMORY_REGION, 1);
	PIN(KVM_EXIT_TDX, 40);
	PIN(KVM_SYSTEM_EVENT_TDX_FATAL, 7);

	assert_int_equal(bad, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_matches_linux_6_1),
		cmocka_unit_test(test_current_linux_memory_abi),
		cmocka_unit_test(test_current_linux_encrypt_op_abi),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

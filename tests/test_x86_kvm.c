/* SPDX-License-Identifier: MIT */
/*
 * test_x86_kvm: KVM's x86 ioctls on privmem (src/vcpu/regs.c, the x86 part
 * of src/kvm/vm.c) as a VMM calls them through pm_kvm_ioctl: the CPUID and
 * MSR lists of /dev/kvm, a vCPU's CPUID table, sregs and MSRs, and the VM
 * capabilities Linux's KVM selftests rely on. Expected values are KVM's
 * documented answers (Documentation/virt/kvm/api.rst), written out here.
 *
 * Covered: KVM_GET_CPUID2 and KVM_GET_SUPPORTED_CPUID leave nent alone on
 * E2BIG and write it on success; KVM_SET_SREGS takes the CR4 bits KVM
 * always takes, refuses the model's absent ones, PG without PE and a bad
 * IA32_APIC_BASE (also through KVM_SET_MSRS), changing nothing then; the
 * feature-MSR list and its reads from /dev/kvm; the microcode revision and
 * HWCR on a vCPU; the TSC starting at 0 with the VM's first vCPU, and the
 * host's writes of the TSC and IA32_TSC_ADJUST.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "lib/testutil.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <privmem/privmem.h>

struct x86_vm {
	int kvm, vm, vcpu;
};

static void vm_open(struct x86_vm *m)
{
	m->kvm = pm_kvm_open();
	assert_true(m->kvm >= 0);
	m->vm = pm_kvm_ioctl(m->kvm, KVM_CREATE_VM, KVM_X86_DEFAULT_VM);
	assert_true(m->vm >= 0);
	m->vcpu = pm_kvm_ioctl(m->vm, KVM_CREATE_VCPU, 0);
	assert_true(m->vcpu >= 0);
}

static void vm_close(struct x86_vm *m)
{
	assert_int_equal(pm_kvm_close(m->vcpu), 0);
	assert_int_equal(pm_kvm_close(m->vm), 0);
	assert_int_equal(pm_kvm_close(m->kvm), 0);
}

static struct kvm_cpuid2 *cpuid_alloc(unsigned int nent)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + nent * sizeof(c->entries[0]));

	assert_non_null(c);
	c->nent = nent;
	return c;
}

/* ---- CPUID tables ---------------------------------------------------------- */

static void test_get_cpuid2_leaves_nent_alone_on_e2big(void **state)
{
	struct kvm_cpuid2 *sup = cpuid_alloc(256), *c = cpuid_alloc(256);
	struct x86_vm m;
	unsigned int n;

	vm_open(&m);
	assert_int_equal(pm_kvm_ioctl(m.kvm, KVM_GET_SUPPORTED_CPUID, sup), 0);
	n = sup->nent;
	assert_true(n >= 2);
	assert_int_equal(pm_kvm_ioctl(m.vcpu, KVM_SET_CPUID2, sup), 0);

	for (unsigned int i = 0; i < n; i++) {
		c->nent = i;
		assert_fails(pm_kvm_ioctl(m.vcpu, KVM_GET_CPUID2, c), E2BIG);
		assert_int_equal(c->nent, i);
	}
	c->nent = n + 1;
	assert_int_equal(pm_kvm_ioctl(m.vcpu, KVM_GET_CPUID2, c), 0);
	assert_int_equal(c->nent, n);
	assert_memory_equal(c->entries, sup->entries, n * sizeof(c->entries[0]));

	/* /dev/kvm's table follows the same rule. */
	c->nent = n - 1;
	assert_fails(pm_kvm_ioctl(m.kvm, KVM_GET_SUPPORTED_CPUID, c), E2BIG);
	assert_int_equal(c->nent, n - 1);
	vm_close(&m);
	free(sup);
	free(c);
}

/* ---- sregs ------------------------------------------------------------------ */

/* KVM_SET_SREGS fails with EINVAL and changes nothing. */
static void assert_sregs_refused(int vcpu, const struct kvm_sregs *bad)
{
	struct kvm_sregs before, after;

	assert_int_equal(pm_kvm_ioctl(vcpu, KVM_GET_SREGS, &before), 0);
	assert_fails(pm_kvm_ioctl(vcpu, KVM_SET_SREGS, bad), EINVAL);
	assert_int_equal(pm_kvm_ioctl(vcpu, KVM_GET_SREGS, &after), 0);
	assert_memory_equal(&before, &after, sizeof(before));
}

static void test_set_sregs_takes_kvms_cr4_bits_and_checks_apic_base(void **state)
{
	/* VME PVI TSD DE PSE PAE MCE PGE PCE OSFXSR OSXMMEXCPT: KVM takes them
	 * whatever the CPU model; FSGSBASE is in privmem's model. */
	const uint64_t cr4 = 0x7ffULL | (1ULL << 16);
	/* UMIP LA57 VMXE SMXE PCIDE OSXSAVE SMEP SMAP PKE: not in the model. */
	const int absent[] = { 11, 12, 13, 14, 17, 18, 20, 21, 22 };
	struct kvm_msrs *msrs = calloc(1, sizeof(*msrs) + sizeof(msrs->entries[0]));
	struct kvm_sregs s, bad;
	struct x86_vm m;

	assert_non_null(msrs);
	vm_open(&m);
	assert_int_equal(pm_kvm_ioctl(m.vcpu, KVM_GET_SREGS, &s), 0);
	s.cr0 = 0;
	s.cr4 |= cr4;
	assert_int_equal(pm_kvm_ioctl(m.vcpu, KVM_SET_SREGS, &s), 0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(pm_kvm_ioctl(m.vcpu, KVM_GET_SREGS, &s), 0);
	assert_int_equal(s.cr4, cr4);

	for (unsigned int i = 0; i < sizeof(absent) / sizeof(absent[0]); i++) {
		bad = s;
		bad.cr4 |= 1ULL << absent[i];
		assert_sregs_refused(m.vcpu, &bad);
	}
	bad = s;
	bad.cr0 |= 1ULL << 32;
	assert_sregs_refused(m.vcpu, &bad);
	bad = s;
	bad.cr0 |= 1ULL << 31;                          /* PG without PE */
	assert_sregs_refused(m.vcpu, &bad);

	/* IA32_APIC_BASE: x2APIC (bit 10) is not offered, bit 11 enables,
	 * bits above the 52 physical address bits are reserved. */
	bad = s;
	bad.apic_base = 1ULL << 10;
	assert_sregs_refused(m.vcpu, &bad);
	bad.apic_base = (1ULL << 52) | (1ULL << 11);
	assert_sregs_refused(m.vcpu, &bad);
	s.apic_base = 1ULL << 11;
	assert_int_equal(pm_kvm_ioctl(m.vcpu, KVM_SET_SREGS, &s), 0);
	msrs->nmsrs = 1;
	msrs->entries[0].index = 0x1b;
	msrs->entries[0].data = (1ULL << 52) | (1ULL << 11);
	assert_int_equal(pm_kvm_ioctl(m.vcpu, KVM_SET_MSRS, msrs), 0);   /* none set */
	msrs->entries[0].data = 0;
	assert_int_equal(pm_kvm_ioctl(m.vcpu, KVM_GET_MSRS, msrs), 1);
	assert_int_equal(msrs->entries[0].data, 1ULL << 11);
	vm_close(&m);
	free(msrs);
}

/* ---- MSRs ------------------------------------------------------------------- */

#define MSR_IA32_UCODE_REV 0x8b
#define MSR_K7_HWCR        0xc0010015

static struct kvm_msrs *msrs_alloc(unsigned int n)
{
	struct kvm_msrs *m = calloc(1, sizeof(*m) + n * sizeof(m->entries[0]));

	assert_non_null(m);
	m->nmsrs = n;
	return m;
}

static bool list_has(const struct kvm_msr_list *l, uint32_t index)
{
	for (unsigned int i = 0; i < l->nmsrs; i++)
		if (l->indices[i] == index)
			return true;
	return false;
}

/* The feature list is never empty (KVM's has the microcode revision at
 * least): an empty buffer is E2BIG with the count; each listed MSR reads
 * from /dev/kvm, an unlisted one stops KVM_GET_MSRS. */
static void test_feature_msrs_list_and_read_from_dev_kvm(void **state)
{
	struct kvm_msr_list *l = calloc(1, sizeof(*l) + 64 * sizeof(l->indices[0]));
	struct kvm_msrs *m = msrs_alloc(2);
	int kvm = pm_kvm_open();
	unsigned int n;

	assert_non_null(l);
	assert_fails(pm_kvm_ioctl(kvm, KVM_GET_MSR_FEATURE_INDEX_LIST, l), E2BIG);
	n = l->nmsrs;
	assert_true(n >= 1);
	assert_int_equal(pm_kvm_ioctl(kvm, KVM_GET_MSR_FEATURE_INDEX_LIST, l), 0);
	assert_int_equal(l->nmsrs, n);
	assert_true(list_has(l, MSR_IA32_UCODE_REV));
	for (unsigned int i = 0; i < n; i++) {
		m->nmsrs = 1;
		m->entries[0].index = l->indices[i];
		assert_int_equal(pm_kvm_ioctl(kvm, KVM_GET_MSRS, m), 1);
	}
	m->nmsrs = 2;
	m->entries[0].index = MSR_IA32_UCODE_REV;
	m->entries[1].index = 0x10;                    /* the TSC: not a feature */
	assert_int_equal(pm_kvm_ioctl(kvm, KVM_GET_MSRS, m), 1);
	assert_int_equal(m->entries[0].data, 0x100000000ULL);   /* KVM's vCPU default */
	assert_int_equal(pm_kvm_close(kvm), 0);
	free(l);
	free(m);
}

/* The vCPU's list has both; HWCR as KVM's hwcr_msr_test expects: bits 3, 6
 * and 8 are accepted and ignored, 18 and 24 kept, every other refused. */
static void test_vcpu_ucode_rev_and_hwcr(void **state)
{
	const uint64_t ignored = (1ULL << 3) | (1ULL << 6) | (1ULL << 8);
	const uint64_t kept = (1ULL << 18) | (1ULL << 24);
	struct kvm_msr_list *l = calloc(1, sizeof(*l) + 256 * sizeof(l->indices[0]));
	struct kvm_msrs *m = msrs_alloc(1);
	struct x86_vm v;

	assert_non_null(l);
	vm_open(&v);
	l->nmsrs = 256;
	assert_int_equal(pm_kvm_ioctl(v.kvm, KVM_GET_MSR_INDEX_LIST, l), 0);
	assert_true(list_has(l, MSR_IA32_UCODE_REV));
	assert_true(list_has(l, MSR_K7_HWCR));

	m->entries[0].index = MSR_IA32_UCODE_REV;
	assert_int_equal(pm_kvm_ioctl(v.vcpu, KVM_GET_MSRS, m), 1);
	assert_int_equal(m->entries[0].data, 0x100000000ULL);
	m->entries[0].data = 0x1234;
	assert_int_equal(pm_kvm_ioctl(v.vcpu, KVM_SET_MSRS, m), 1);
	m->entries[0].data = 0;
	assert_int_equal(pm_kvm_ioctl(v.vcpu, KVM_GET_MSRS, m), 1);
	assert_int_equal(m->entries[0].data, 0x1234);

	for (unsigned int bit = 0; bit < 64; bit++) {
		uint64_t val = 1ULL << bit;
		bool legal = val & (ignored | kept);

		m->entries[0].index = MSR_K7_HWCR;
		m->entries[0].data = val;
		assert_int_equal(pm_kvm_ioctl(v.vcpu, KVM_SET_MSRS, m), legal ? 1 : 0);
		m->entries[0].data = ~0ULL;
		assert_int_equal(pm_kvm_ioctl(v.vcpu, KVM_GET_MSRS, m), 1);
		assert_int_equal(m->entries[0].data, val & kept);
		m->entries[0].data = 0;
		assert_int_equal(pm_kvm_ioctl(v.vcpu, KVM_SET_MSRS, m), 1);
	}
	vm_close(&v);
	free(l);
	free(m);
}

/* ---- the TSC ------------------------------------------------------------------ */

#define MSR_IA32_TSC        0x10
#define MSR_IA32_TSC_ADJUST 0x3b
#define UNITY               (1ULL << 30)       /* tsc_msrs_test's rounding unit */
#define ROUND(x)            (((x) + UNITY / 2) & ~(UNITY - 1))

static uint64_t get_msr(int vcpu, uint32_t index)
{
	struct kvm_msrs *m = msrs_alloc(1);
	uint64_t v;

	m->entries[0].index = index;
	assert_int_equal(pm_kvm_ioctl(vcpu, KVM_GET_MSRS, m), 1);
	v = m->entries[0].data;
	free(m);
	return v;
}

static void set_msr(int vcpu, uint32_t index, uint64_t v)
{
	struct kvm_msrs *m = msrs_alloc(1);

	m->entries[0].index = index;
	m->entries[0].data = v;
	assert_int_equal(pm_kvm_ioctl(vcpu, KVM_SET_MSRS, m), 1);
	free(m);
}

/* A VM's TSC starts at 0 when its first vCPU is created and runs on every
 * vCPU from there; the host's writes set the TSC without touching
 * IA32_TSC_ADJUST and IA32_TSC_ADJUST without moving the TSC. */
static void test_tsc_starts_at_zero_and_host_writes_keep_tsc_adjust_apart(void **state)
{
	struct x86_vm m;
	struct timespec ms100 = { .tv_nsec = 100 * 1000 * 1000 };
	uint64_t khz, tsc1;
	int vcpu1;

	vm_open(&m);
	khz = (uint64_t)pm_kvm_ioctl(m.vcpu, KVM_GET_TSC_KHZ, 0);
	assert_true(khz > 0);
	assert_int_equal(ROUND(get_msr(m.vcpu, MSR_IA32_TSC)), 0);
	assert_int_equal(get_msr(m.vcpu, MSR_IA32_TSC_ADJUST), 0);

	/* A vCPU created later counts from the first one's creation. */
	nanosleep(&ms100, NULL);
	vcpu1 = pm_kvm_ioctl(m.vm, KVM_CREATE_VCPU, 1);
	assert_true(vcpu1 >= 0);
	tsc1 = get_msr(vcpu1, MSR_IA32_TSC);
	assert_true(tsc1 >= khz * 1000 / 20);                /* at least 50 ms */

	set_msr(m.vcpu, MSR_IA32_TSC, 64 * UNITY);
	assert_int_equal(ROUND(get_msr(m.vcpu, MSR_IA32_TSC)), 64 * UNITY);
	assert_int_equal(get_msr(m.vcpu, MSR_IA32_TSC_ADJUST), 0);
	set_msr(m.vcpu, MSR_IA32_TSC_ADJUST, 123 * UNITY);
	assert_int_equal(ROUND(get_msr(m.vcpu, MSR_IA32_TSC)), 64 * UNITY);
	assert_int_equal(get_msr(m.vcpu, MSR_IA32_TSC_ADJUST), 123 * UNITY);
	assert_int_equal(pm_kvm_close(vcpu1), 0);
	vm_close(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get_cpuid2_leaves_nent_alone_on_e2big),
		cmocka_unit_test(test_set_sregs_takes_kvms_cr4_bits_and_checks_apic_base),
		cmocka_unit_test(test_feature_msrs_list_and_read_from_dev_kvm),
		cmocka_unit_test(test_vcpu_ucode_rev_and_hwcr),
		cmocka_unit_test(test_tsc_starts_at_zero_and_host_writes_keep_tsc_adjust_apart),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

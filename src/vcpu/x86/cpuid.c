/* SPDX-License-Identifier: MIT */
/*
 * The CPU model: what KVM_GET_SUPPORTED_CPUID and KVM_GET_MSR_INDEX_LIST
 * answer, and CPUID answered from a vCPU's table.
 *
 * One GenuineIntel model (family 6, model 0x55, a Skylake-SP signature),
 * offering what the engine implements: long mode, NX, 1G pages, SYSCALL,
 * RDTSCP, FXSR with SSE and SSE2, the x86-64-v2 set that code built with
 * -march=x86-64-v2 assumes without asking (SSE3, SSSE3, SSE4.1, POPCNT,
 * CMPXCHG16B, LAHF in long mode), LZCNT, FSGSBASE, RDPID and ERMS.
 * Their instructions are implemented (SSE floating point rounds to nearest
 * whatever MXCSR.RC says, and keeps no exception flags: sse_fp.c; SSE3's
 * FISTTP is x87 and #UD like all of x87). Not
 * offered: x87 (FPU bit), MMX, XSAVE/AVX, SSE4.2, BMI1/2, SMEP/SMAP, PCID,
 * an APIC (no interrupt controller), MTRR, SYSENTER. The hypervisor bit
 * is set and KVM's leaves 0x40000000/0x40000001 read "KVMKVMKVM" with no
 * paravirtual features. 0x80000008 gives 48 linear and 52 physical address
 * bits (what kvm_util reads).
 */
#include "vcpu/x86/internal.h"

#define MODEL_SIGNATURE 0x00050657u /* family 6, model 0x55, stepping 7 */

/* Leaf 1 */
#define F1_ECX (1u << 0 /* SSE3 */ | 1u << 9 /* SSSE3 */ | 1u << 13 /* CX16 */ | \
		1u << 19 /* SSE4.1 */ | 1u << 23 /* POPCNT */ | 1u << 31 /* hypervisor */)
#define F1_EDX (1u << 3 /* PSE */ | 1u << 4 /* TSC */ | 1u << 5 /* MSR */ | \
		1u << 6 /* PAE */ | 1u << 8 /* CX8 */ | 1u << 13 /* PGE */ | \
		1u << 15 /* CMOV */ | 1u << 16 /* PAT */ | 1u << 19 /* CLFSH */ | \
		1u << 24 /* FXSR */ | 1u << 25 /* SSE */ | 1u << 26 /* SSE2 */)
/* Leaf 7.0 */
#define F7_EBX (1u << 0 /* FSGSBASE */ | 1u << 1 /* TSC_ADJUST */ | 1u << 9 /* ERMS */)
#define F7_ECX (1u << 22 /* RDPID */)
/* Leaf 0x80000001 */
#define FX_ECX (1u << 0 /* LAHF/SAHF */ | 1u << 5 /* LZCNT */ | 1u << 8 /* PREFETCHW */)
#define FX_EDX (1u << 11 /* SYSCALL */ | 1u << 20 /* NX */ | 1u << 26 /* 1G pages */ | \
		1u << 27 /* RDTSCP */ | 1u << 29 /* long mode */)

static const struct kvm_cpuid_entry2 model[] = {
	/* max basic leaf 7, "GenuineIntel" in ebx, edx, ecx */
	{ .function = 0, .eax = 7, .ebx = 0x756e6547, .edx = 0x49656e69, .ecx = 0x6c65746e },
	/* 64-byte CLFLUSH lines in ebx[15:8]; the VMM fills the APIC ID */
	{ .function = 1, .eax = MODEL_SIGNATURE, .ebx = 8u << 8, .ecx = F1_ECX, .edx = F1_EDX },
	{ .function = 7, .index = 0, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
	  .eax = 0, .ebx = F7_EBX, .ecx = F7_ECX, .edx = 0 },
	/* KVM's signature leaf and its (empty) paravirtual feature leaf */
	{ .function = 0x40000000, .eax = 0x40000001, .ebx = 0x4b4d564b, .ecx = 0x564b4d56,
	  .edx = 0x4d },
	{ .function = 0x40000001 },
	{ .function = 0x80000000, .eax = 0x80000008 },
	{ .function = 0x80000001, .ecx = FX_ECX, .edx = FX_EDX },
	/* brand string: "privmem x86-64 engine" */
	{ .function = 0x80000002, .eax = 0x76697270, .ebx = 0x206d656d, .ecx = 0x2d363878,
	  .edx = 0x65203436 },
	{ .function = 0x80000003, .eax = 0x6e69676e, .ebx = 0x00000065 },
	{ .function = 0x80000004 },
	{ .function = 0x80000006, .ecx = 0x01006040 }, /* 256K L2, 64-byte lines */
	{ .function = 0x80000007 },
	/* 52 physical, 48 linear address bits; guest MAXPHYADDR 0 = the same */
	{ .function = 0x80000008, .eax = 0x3034 },
};

int pm_x86_supported_cpuid(struct kvm_cpuid_entry2 *e, unsigned int max, unsigned int *n)
{
	*n = PM_ARRAY_SIZE(model);
	if (max < PM_ARRAY_SIZE(model))
		return -E2BIG;
	memcpy(e, model, sizeof(model));
	return 0;
}

static const uint32_t msr_list[] = {
	PM_MSR_TSC, PM_MSR_APIC_BASE, PM_MSR_MTRRCAP, PM_MSR_SYSENTER_CS, PM_MSR_SYSENTER_ESP,
	PM_MSR_SYSENTER_EIP, PM_MSR_MISC_ENABLE, PM_MSR_PAT, PM_MSR_MTRR_DEF_TYPE, PM_MSR_EFER,
	PM_MSR_STAR, PM_MSR_LSTAR, PM_MSR_CSTAR, PM_MSR_SFMASK, PM_MSR_FS_BASE, PM_MSR_GS_BASE,
	PM_MSR_KERNEL_GS_BASE, PM_MSR_TSC_AUX, PM_MSR_UCODE_REV, PM_MSR_K7_HWCR, PM_MSR_TSC_ADJUST,
};

/* MSR-based features a VMM may read from /dev/kvm before it sets a vCPU's
 * (KVM always has some: its list is never empty). */
static const uint32_t feature_msr_list[] = { PM_MSR_UCODE_REV };

int pm_x86_msr_index_list(uint32_t *indices, unsigned int max, unsigned int *n)
{
	*n = PM_ARRAY_SIZE(msr_list);
	if (max < PM_ARRAY_SIZE(msr_list))
		return -E2BIG;
	memcpy(indices, msr_list, sizeof(msr_list));
	return 0;
}

int pm_x86_feature_msr_index_list(uint32_t *indices, unsigned int max, unsigned int *n)
{
	*n = PM_ARRAY_SIZE(feature_msr_list);
	if (max < PM_ARRAY_SIZE(feature_msr_list))
		return -E2BIG;
	memcpy(indices, feature_msr_list, sizeof(feature_msr_list));
	return 0;
}

bool pm_x86_feature_msr(uint32_t index, uint64_t *value)
{
	switch (index) {
	case PM_MSR_UCODE_REV:
		*value = PM_X86_UCODE_REV;
		return true;
	default:
		return false;
	}
}

static const struct kvm_cpuid_entry2 *find(const struct pm_x86_cpu *c, uint32_t leaf,
					   uint32_t sub)
{
	for (unsigned int k = 0; k < c->nr_cpuid; k++) {
		const struct kvm_cpuid_entry2 *e = &c->cpuid[k];

		if (e->function == leaf &&
		    (!(e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || e->index == sub))
			return e;
	}
	return NULL;
}

void pm_x86_cpuid_lookup(const struct pm_x86_cpu *c, uint32_t leaf, uint32_t sub,
			 uint32_t out[4])
{
	const struct kvm_cpuid_entry2 *e, *max;
	uint32_t class_base = leaf & 0xffff0000u;

	/* Intel's rule (KVM's kvm_cpuid): a leaf above its class's maximum
	 * answers as the highest basic leaf. */
	max = find(c, class_base, 0);
	if (class_base != 0x40000000u && (!max || leaf > max->eax)) {
		const struct kvm_cpuid_entry2 *basic = find(c, 0, 0);

		leaf = basic ? basic->eax : 0;
	}
	e = find(c, leaf, sub);
	if (!e) {
		out[0] = out[1] = out[2] = out[3] = 0;
		return;
	}
	out[0] = e->eax;
	out[1] = e->ebx;
	out[2] = e->ecx;
	out[3] = e->edx;
}

void x86_cpuid(struct pm_x86_cpu *c, uint32_t leaf, uint32_t sub, uint32_t out[4])
{
	if (c->ops->cpuid && c->ops->cpuid(c->env, leaf, sub, out))
		return;
	pm_x86_cpuid_lookup(c, leaf, sub, out);
	/* Dynamic bits: OSXSAVE never (no XSAVE); the APIC ID is the VMM's. */
}

uint32_t x86_cpuid_feature(const struct pm_x86_cpu *c, uint32_t leaf, int reg)
{
	uint32_t out[4];

	pm_x86_cpuid_lookup(c, leaf, 0, out);
	return out[reg];
}

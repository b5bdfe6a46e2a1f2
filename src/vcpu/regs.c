/* SPDX-License-Identifier: MIT */
/*
 * KVM's x86 vCPU state ioctls (KVM_GET/SET_REGS, SREGS, FPU, MSRS, CPUID2,
 * MP_STATE, KVM_GET_TSC_KHZ) on a vCPU, and the system handle's CPU model
 * (KVM_GET_SUPPORTED_CPUID, KVM_GET_MSR_INDEX_LIST,
 * KVM_GET_MSR_FEATURE_INDEX_LIST, KVM_GET_MSRS of feature MSRs).
 *
 * The state is the x86 engine's (vcpu->x86, src/vcpu/x86/x86.h). Every
 * vCPU ioctl here takes run_lock, as KVM takes vcpu->mutex: it waits for a
 * KVM_RUN in progress, and between two KVM_RUNs it sees the state the last
 * exit left (RIP at an I/O instruction in flight, as KVM's). The engine
 * honours what the VMM changes there.
 *
 * Errors are KVM's: EFAULT for a NULL argument, E2BIG for a CPUID or MSR
 * list that does not fit (the count written back where KVM writes it: the
 * MSR index lists; the CPUID lists keep the caller's nent),
 * EINVAL for a state KVM refuses, and KVM_SET_CPUID2 after the first
 * KVM_RUN is EINVAL unless it sets the same table again (as 6.x).
 */
#include <time.h>
#include <privmem/kvm.h>
#include "lib/common.h"
#include "vcpu/vcpu.h"
#include "vcpu/x86/x86.h"

#define KVM_MAX_CPUID_ENTRIES_X86 256     /* KVM_SET_CPUID2's limit */

/* ---- the TSC's rate ---- */

static uint64_t tsc_read(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

static uint64_t ns_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* The host TSC's kHz, measured once against the monotonic clock over 10 ms
 * (the engine's RDTSC is the host's). */
long pm_x86_tsc_khz(void)
{
	static atomic_long khz;
	long k = atomic_load_explicit(&khz, memory_order_relaxed);

	if (!k) {
		const struct timespec ten_ms = { .tv_nsec = 10 * 1000 * 1000 };
		uint64_t t0 = ns_now(), c0 = tsc_read(), t1, c1;

		nanosleep(&ten_ms, NULL);
		c1 = tsc_read();
		t1 = ns_now();
		k = (long)((c1 - c0) * 1000000ULL / PM_MAX(t1 - t0, 1) / 1000);
		/* Round to 1 MHz, as firmware-reported rates are. */
		k = PM_MAX((k + 500) / 1000 * 1000, 1000);
		atomic_store_explicit(&khz, k, memory_order_relaxed);
	}
	return k;
}

/* ---- CPUID and MSR lists ---- */

/* E2BIG leaves nent as the caller gave it: KVM checks the room before it
 * sets nent (kvm_vcpu_ioctl_get_cpuid2), and copies the struct back
 * unchanged. */
static long get_cpuid2(struct pm_vcpu *vcpu, struct kvm_cpuid2 *c)
{
	unsigned int n = 0;
	int r = pm_x86_get_cpuid(vcpu->x86, c->entries, c->nent, &n);

	if (!r)
		c->nent = n;
	return r;
}

static long set_cpuid2(struct pm_vcpu *vcpu, const struct kvm_cpuid2 *c)
{
	struct kvm_cpuid_entry2 cur[PM_X86_MAX_CPUID];
	unsigned int n = 0;

	if (c->nent > KVM_MAX_CPUID_ENTRIES_X86)
		return -E2BIG;
	/* Once the vCPU ran, only the same table again (KVM 6.x). */
	if (vcpu->coro) {
		if (pm_x86_get_cpuid(vcpu->x86, cur, PM_X86_MAX_CPUID, &n) || n != c->nent ||
		    memcmp(cur, c->entries, n * sizeof(cur[0])))
			return -EINVAL;
		return 0;
	}
	return pm_x86_set_cpuid(vcpu->x86, c->entries, c->nent);
}

static long get_msrs(struct pm_vcpu *vcpu, struct kvm_msrs *m)
{
	return pm_x86_get_msrs(vcpu->x86, m->entries, m->nmsrs);
}

static long set_msrs(struct pm_vcpu *vcpu, const struct kvm_msrs *m)
{
	return pm_x86_set_msrs(vcpu->x86, m->entries, m->nmsrs);
}

/* ---- the vCPU ioctls ---- */

static long vcpu_state_locked(struct pm_vcpu *vcpu, unsigned long req, void *p)
{
	switch (req) {
	case KVM_GET_REGS:
		pm_x86_get_regs(vcpu->x86, p);
		return 0;
	case KVM_SET_REGS:
		pm_x86_set_regs(vcpu->x86, p);
		return 0;
	case KVM_GET_SREGS:
		pm_x86_get_sregs(vcpu->x86, p);
		return 0;
	case KVM_SET_SREGS:
		return pm_x86_set_sregs(vcpu->x86, p);
	case KVM_GET_FPU:
		pm_x86_get_fpu(vcpu->x86, p);
		return 0;
	case KVM_SET_FPU:
		return pm_x86_set_fpu(vcpu->x86, p);
	case KVM_GET_MSRS:
		return get_msrs(vcpu, p);
	case KVM_SET_MSRS:
		return set_msrs(vcpu, p);
	case KVM_GET_CPUID2:
		return get_cpuid2(vcpu, p);
	case KVM_SET_CPUID2:
		return set_cpuid2(vcpu, p);
	case KVM_GET_MP_STATE:
		pm_x86_get_mp_state(vcpu->x86, p);
		return 0;
	case KVM_SET_MP_STATE:
		return pm_x86_set_mp_state(vcpu->x86, p);
	default:
		return -ENOTTY;
	}
}

long pm_vcpu_x86_ioctl(struct pm_vcpu *vcpu, unsigned long req, unsigned long arg)
{
	long r;

	if (req == KVM_GET_TSC_KHZ)
		return arg ? -EINVAL : pm_x86_tsc_khz();
	switch (req) {
	case KVM_GET_REGS: case KVM_SET_REGS: case KVM_GET_SREGS: case KVM_SET_SREGS:
	case KVM_GET_FPU: case KVM_SET_FPU: case KVM_GET_MSRS: case KVM_SET_MSRS:
	case KVM_GET_CPUID2: case KVM_SET_CPUID2: case KVM_GET_MP_STATE: case KVM_SET_MP_STATE:
		break;
	default:
		return -ENOTTY;
	}
	if (!arg)
		return -EFAULT;
	pthread_mutex_lock(&vcpu->run_lock);
	r = vcpu_state_locked(vcpu, req, (void *)arg);
	pthread_mutex_unlock(&vcpu->run_lock);
	return r;
}

/* ---- the system handle: the CPU model ---- */

/* Writes the list's count back, then E2BIG if it did not fit (KVM's order). */
static long msr_list(struct kvm_msr_list *l, bool features)
{
	unsigned int room = l->nmsrs, n = 0;
	int r = features ? 0 : pm_x86_msr_index_list(l->indices, room, &n);

	l->nmsrs = n;
	return r;
}

long pm_x86_sys_ioctl(unsigned long req, unsigned long arg)
{
	struct kvm_cpuid2 *c = (void *)arg;
	unsigned int n = 0;
	int r;

	switch (req) {
	case KVM_GET_SUPPORTED_CPUID:
		if (!arg)
			return -EFAULT;
		r = pm_x86_supported_cpuid(c->entries, c->nent, &n);
		if (!r)
			c->nent = n;
		return r;
	case KVM_GET_MSR_INDEX_LIST:
	case KVM_GET_MSR_FEATURE_INDEX_LIST:
		if (!arg)
			return -EFAULT;
		return msr_list((void *)arg, req == KVM_GET_MSR_FEATURE_INDEX_LIST);
	case KVM_GET_MSRS:
		/* Feature MSRs: none is offered, so none is read. */
		return arg ? 0 : -EFAULT;
	default:
		return -ENOTTY;
	}
}

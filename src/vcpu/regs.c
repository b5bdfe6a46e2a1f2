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
 * Arguments are copied in and out as KVM copies them (copy_from_user and
 * copy_to_user: the struct, then the entries of a list its header counts),
 * so a pointer the process cannot read or write is EFAULT, never a crash.
 *
 * Errors are KVM's: EFAULT for a bad argument, E2BIG for a CPUID or MSR
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
#define KVM_MAX_IO_MSRS 256               /* KVM_GET/SET_MSRS' (MAX_IO_MSRS) */
#define KVM_MAX_MSR_LIST 256              /* more than the index lists hold */

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

/* A list's header, then its n entries of `size` bytes, copied in: a buffer
 * the caller frees, or NULL with *err (EFAULT, ENOMEM). */
static void *list_copy_in(const void *user, size_t header, unsigned int n, size_t size, int *err)
{
	uint8_t *buf = malloc(header + (size_t)n * size + 1);

	*err = -ENOMEM;
	if (!buf)
		return NULL;
	*err = -EFAULT;
	if (pm_copy_from_user(buf, user, header + (size_t)n * size)) {
		free(buf);
		return NULL;
	}
	*err = 0;
	return buf;
}

/* E2BIG leaves nent as the caller gave it: KVM checks the room before it
 * sets nent (kvm_vcpu_ioctl_get_cpuid2), and copies the struct back
 * unchanged. */
static long get_cpuid2(struct pm_vcpu *vcpu, void *user)
{
	struct kvm_cpuid_entry2 e[PM_X86_MAX_CPUID];
	struct kvm_cpuid2 c;
	unsigned int n = 0;
	int r;

	if (pm_copy_from_user(&c, user, sizeof(c)))
		return -EFAULT;
	r = pm_x86_get_cpuid(vcpu->x86, e, PM_MIN(c.nent, PM_X86_MAX_CPUID), &n);
	if (r)
		return r;
	c.nent = n;
	if (pm_copy_to_user((uint8_t *)user + sizeof(c), e, n * sizeof(e[0])) ||
	    pm_copy_to_user(user, &c, sizeof(c)))
		return -EFAULT;
	return 0;
}

static long set_cpuid2(struct pm_vcpu *vcpu, const void *user)
{
	struct kvm_cpuid_entry2 cur[PM_X86_MAX_CPUID];
	struct kvm_cpuid2 hdr, *c;
	unsigned int n = 0;
	int r;

	if (pm_copy_from_user(&hdr, user, sizeof(hdr)))
		return -EFAULT;
	if (hdr.nent > KVM_MAX_CPUID_ENTRIES_X86)
		return -E2BIG;
	c = list_copy_in(user, sizeof(hdr), hdr.nent, sizeof(c->entries[0]), &r);
	if (!c)
		return r;
	c->nent = hdr.nent;     /* as read first: another thread may change it */
	/* Once the vCPU ran, only the same table again (KVM 6.x). */
	if (vcpu->coro) {
		if (pm_x86_get_cpuid(vcpu->x86, cur, PM_X86_MAX_CPUID, &n) || n != c->nent ||
		    memcmp(cur, c->entries, n * sizeof(cur[0])))
			r = -EINVAL;
	} else {
		r = pm_x86_set_cpuid(vcpu->x86, c->entries, c->nent);
	}
	free(c);
	return r;
}

/* KVM_GET/SET_MSRS: the entries processed (up to the first it refuses). */
static long msrs_io(struct pm_vcpu *vcpu, void *user, bool set)
{
	struct kvm_msrs hdr, *m;
	int r;

	if (pm_copy_from_user(&hdr, user, sizeof(hdr)))
		return -EFAULT;
	if (hdr.nmsrs >= KVM_MAX_IO_MSRS)
		return -E2BIG;
	m = list_copy_in(user, sizeof(hdr), hdr.nmsrs, sizeof(m->entries[0]), &r);
	if (!m)
		return r;
	if (set) {
		r = pm_x86_set_msrs(vcpu->x86, m->entries, hdr.nmsrs);
	} else {
		/* Every entry goes back, as KVM's msr_io copies them. */
		r = pm_x86_get_msrs(vcpu->x86, m->entries, hdr.nmsrs);
		if (pm_copy_to_user((uint8_t *)user + sizeof(hdr), m->entries,
				    (size_t)hdr.nmsrs * sizeof(m->entries[0])))
			r = -EFAULT;
	}
	free(m);
	return r;
}

/* ---- the vCPU ioctls ---- */

/* The fixed-size state structs: read or written whole. */
static long vcpu_state_locked(struct pm_vcpu *vcpu, unsigned long req, void *user)
{
	union {
		struct kvm_regs regs;
		struct kvm_sregs sregs;
		struct kvm_fpu fpu;
		struct kvm_mp_state mp;
	} u;
	size_t size = _IOC_SIZE(req);
	long r = 0;

	PM_BUG_ON(size > sizeof(u));
	memset(&u, 0, sizeof(u));
	if ((_IOC_DIR(req) & _IOC_WRITE) && pm_copy_from_user(&u, user, size))
		return -EFAULT;
	switch (req) {
	case KVM_GET_REGS:
		pm_x86_get_regs(vcpu->x86, &u.regs);
		break;
	case KVM_SET_REGS:
		pm_x86_set_regs(vcpu->x86, &u.regs);
		break;
	case KVM_GET_SREGS:
		pm_x86_get_sregs(vcpu->x86, &u.sregs);
		break;
	case KVM_SET_SREGS:
		r = pm_x86_set_sregs(vcpu->x86, &u.sregs);
		break;
	case KVM_GET_FPU:
		pm_x86_get_fpu(vcpu->x86, &u.fpu);
		break;
	case KVM_SET_FPU:
		r = pm_x86_set_fpu(vcpu->x86, &u.fpu);
		break;
	case KVM_GET_MP_STATE:
		pm_x86_get_mp_state(vcpu->x86, &u.mp);
		break;
	case KVM_SET_MP_STATE:
		r = pm_x86_set_mp_state(vcpu->x86, &u.mp);
		break;
	case KVM_GET_MSRS:
		return msrs_io(vcpu, user, false);
	case KVM_SET_MSRS:
		return msrs_io(vcpu, user, true);
	case KVM_GET_CPUID2:
		return get_cpuid2(vcpu, user);
	case KVM_SET_CPUID2:
		return set_cpuid2(vcpu, user);
	default:
		return -ENOTTY;
	}
	if (!r && _IOC_DIR(req) == _IOC_READ && pm_copy_to_user(user, &u, size))
		r = -EFAULT;
	return r;
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
static long msr_list(void *user, bool features)
{
	uint32_t indices[KVM_MAX_MSR_LIST];
	struct kvm_msr_list l;
	unsigned int room, n = 0;
	int r;

	if (pm_copy_from_user(&l, user, sizeof(l)))
		return -EFAULT;
	room = PM_MIN(l.nmsrs, KVM_MAX_MSR_LIST);
	r = features ? pm_x86_feature_msr_index_list(indices, room, &n)
		     : pm_x86_msr_index_list(indices, room, &n);
	l.nmsrs = n;
	if (pm_copy_to_user(user, &l, sizeof(l)))
		return -EFAULT;
	if (!r && pm_copy_to_user((uint8_t *)user + sizeof(l), indices, n * sizeof(indices[0])))
		return -EFAULT;
	return r;
}

/* KVM_GET_MSRS on /dev/kvm: feature MSRs, up to the first unknown one;
 * returns how many were read. */
static long get_feature_msrs(void *user)
{
	struct kvm_msrs hdr, *m;
	unsigned int k;
	uint64_t v;
	int r;

	if (pm_copy_from_user(&hdr, user, sizeof(hdr)))
		return -EFAULT;
	if (hdr.nmsrs >= KVM_MAX_IO_MSRS)
		return -E2BIG;
	m = list_copy_in(user, sizeof(hdr), hdr.nmsrs, sizeof(m->entries[0]), &r);
	if (!m)
		return r;
	for (k = 0; k < hdr.nmsrs; k++) {
		if (!pm_x86_feature_msr(m->entries[k].index, &v))
			break;
		m->entries[k].data = v;
	}
	r = pm_copy_to_user((uint8_t *)user + sizeof(hdr), m->entries,
			    (size_t)hdr.nmsrs * sizeof(m->entries[0])) ? -EFAULT : (int)k;
	free(m);
	return r;
}

/* KVM_GET_SUPPORTED_CPUID: nent is KVM's room (at most 256 used). */
static long supported_cpuid(void *user)
{
	struct kvm_cpuid_entry2 *e;
	struct kvm_cpuid2 c;
	unsigned int n = 0;
	int r;

	if (pm_copy_from_user(&c, user, sizeof(c)))
		return -EFAULT;
	e = calloc(KVM_MAX_CPUID_ENTRIES_X86, sizeof(*e));
	if (!e)
		return -ENOMEM;
	r = pm_x86_supported_cpuid(e, PM_MIN(c.nent, KVM_MAX_CPUID_ENTRIES_X86), &n);
	if (!r) {
		c.nent = n;
		if (pm_copy_to_user((uint8_t *)user + sizeof(c), e, n * sizeof(*e)) ||
		    pm_copy_to_user(user, &c, sizeof(c)))
			r = -EFAULT;
	}
	free(e);
	return r;
}

long pm_x86_sys_ioctl(unsigned long req, unsigned long arg)
{
	switch (req) {
	case KVM_GET_SUPPORTED_CPUID:
		return supported_cpuid((void *)arg);
	case KVM_GET_MSR_INDEX_LIST:
	case KVM_GET_MSR_FEATURE_INDEX_LIST:
		return msr_list((void *)arg, req == KVM_GET_MSR_FEATURE_INDEX_LIST);
	case KVM_GET_MSRS:
		return get_feature_msrs((void *)arg);
	default:
		return -ENOTTY;
	}
}

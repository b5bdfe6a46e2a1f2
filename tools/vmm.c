/* SPDX-License-Identifier: MIT */
/*
 * The CLI's VMM (see vmm.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <linux/falloc.h>
#include "cli.h"
#include "vmm.h"

static int fail(const char *what)
{
	int err = errno;

	fprintf(stderr, "privmem: %s: %s\n", what, strerror(err));
	return -err;
}

static int vmm_add_vcpus(struct vmm *m, int nr_vcpus)
{
	for (int i = 0; i < nr_vcpus; i++) {
		m->vcpu[i] = pm_kvm_ioctl(m->vm, KVM_CREATE_VCPU, i);
		if (m->vcpu[i] < 0)
			return fail("KVM_CREATE_VCPU");
		m->run[i] = pm_kvm_mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, m->vcpu[i], 0);
		if (m->run[i] == MAP_FAILED)
			return fail("mmap(vcpu)");
		m->nr_vcpus = i + 1;
	}
	return 0;
}

/* pKVM and in-place mode: all guest memory in a guest_memfd, and the
 * VMM's view of it is the file's mmap, which shows the pages the host may
 * have (pKVM: those its guest shares; in-place mode: the shared ones). */
static int vmm_add_view_memory(struct vmm *m, uint64_t gmem_flags)
{
	struct kvm_create_guest_memfd cg = { .size = m->mem_size,
					     .flags = gmem_flags | GUEST_MEMFD_FLAG_MMAP };
	struct kvm_userspace_memory_region2 r = { .slot = 0, .memory_size = m->mem_size,
						  .flags = KVM_MEM_GUEST_MEMFD };

	m->gmem = pm_kvm_ioctl(m->vm, KVM_CREATE_GUEST_MEMFD, &cg);
	if (m->gmem < 0)
		return fail("KVM_CREATE_GUEST_MEMFD");
	r.guest_memfd = (uint32_t)m->gmem;
	if (pm_kvm_ioctl(m->vm, KVM_SET_USER_MEMORY_REGION2, &r))
		return fail("KVM_SET_USER_MEMORY_REGION2");
	m->shared = pm_kvm_mmap(NULL, m->mem_size, PROT_READ | PROT_WRITE, MAP_SHARED, m->gmem, 0);
	if (m->shared == MAP_FAILED) {
		m->shared = NULL;
		return fail("mmap(guest_memfd)");
	}
	m->shared_is_view = true;
	return 0;
}

static int vmm_add_memory(struct vmm *m, uint64_t gmem_flags)
{
	struct kvm_create_guest_memfd cg = { .size = m->mem_size, .flags = gmem_flags };
	struct kvm_userspace_memory_region2 r = { .slot = 0, .memory_size = m->mem_size };

	if (m->type == PM_VM_TYPE_PKVM)
		return vmm_add_view_memory(m, gmem_flags);
	if (m->in_place)
		return vmm_add_view_memory(m, gmem_flags | GUEST_MEMFD_FLAG_INIT_SHARED);
	m->shared = mmap(NULL, m->mem_size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m->shared == MAP_FAILED) {
		m->shared = NULL;
		return fail("mmap(guest RAM)");
	}
	r.userspace_addr = (uintptr_t)m->shared;
	if (m->private_mem) {
		m->gmem = pm_kvm_ioctl(m->vm, KVM_CREATE_GUEST_MEMFD, &cg);
		if (m->gmem < 0)
			return fail("KVM_CREATE_GUEST_MEMFD");
		r.flags = KVM_MEM_GUEST_MEMFD;
		r.guest_memfd = (uint32_t)m->gmem;
	}
	if (pm_kvm_ioctl(m->vm, KVM_SET_USER_MEMORY_REGION2, &r))
		return fail("KVM_SET_USER_MEMORY_REGION2");
	return 0;
}

static const struct vmm_observer *observer;

void vmm_set_observer(const struct vmm_observer *obs)
{
	observer = obs;
}

void vmm_mark_private(struct vmm *m, uint64_t gpa, uint64_t size, bool private)
{
	uint64_t first = gpa >> 12, end = PM_MIN_U64((gpa + size) >> 12, m->mem_size >> 12);

	if (!m->private_map)
		return;
	for (uint64_t p = first; p < end;) {
		uint64_t bits = 64 - (p & 63), mask;
		uint64_t n = PM_MIN_U64(bits, end - p), old;

		mask = (n == 64 ? ~0ULL : ((1ULL << n) - 1)) << (p & 63);
		old = private ? atomic_fetch_or(&m->private_map[p >> 6], mask)
			      : atomic_fetch_and(&m->private_map[p >> 6], ~mask);
		n = (uint64_t)__builtin_popcountll(private ? ~old & mask : old & mask);
		if (private)
			atomic_fetch_add(&m->private_pages, n);
		else
			atomic_fetch_sub(&m->private_pages, n);
		p += PM_MIN_U64(bits, end - p);
	}
}

int vmm_create(struct vmm *m, unsigned long type, uint64_t mem_size, int nr_vcpus,
	       uint64_t gmem_flags)
{
	struct kvm_enable_cap cap = { .cap = KVM_CAP_EXIT_HYPERCALL,
				      .args = { 1ULL << KVM_HC_MAP_GPA_RANGE } };
	/* privmem's page-size flags (PM_GUEST_MEMFD_FLAG_NO_*) for --no-huge etc. */
	struct kvm_enable_cap page_size = { .cap = PM_CAP_GUEST_MEMFD_PAGE_SIZE, .args = { 1 } };
	int r;

	memset(m, 0, sizeof(*m));
	m->gmem = m->vm = m->kvm = m->flash_gmem = -1;
	m->stall_s = VMM_STALL_DEFAULT_S;
	pthread_mutex_init(&m->abort_lock, NULL);
	m->type = type;
	m->mem_size = mem_size;
	if (nr_vcpus < 1 || nr_vcpus > VMM_MAX_VCPUS) {
		fprintf(stderr, "privmem: --vcpus must be 1..%d\n", VMM_MAX_VCPUS);
		return -EINVAL;
	}
	m->kvm = pm_kvm_open();
	m->vm = pm_kvm_ioctl(m->kvm, KVM_CREATE_VM, type);
	if (m->vm < 0)
		return fail("KVM_CREATE_VM");
	m->in_place = pm_kvm_ioctl(m->vm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES) &
		      KVM_MEMORY_ATTRIBUTE_PRIVATE;
	m->private_mem = m->in_place || (pm_kvm_ioctl(m->vm, KVM_CHECK_EXTENSION, KVM_CAP_MEMORY_ATTRIBUTES) &
					 KVM_MEMORY_ATTRIBUTE_PRIVATE);
	if ((m->private_mem || type == PM_VM_TYPE_PKVM) && vmm_check_host_memory(mem_size, "guest memory"))
		return -ENOMEM;
	if (pm_kvm_ioctl(m->vm, KVM_ENABLE_CAP, &cap))
		return fail("KVM_ENABLE_CAP(EXIT_HYPERCALL)");
	if (pm_kvm_ioctl(m->vm, KVM_ENABLE_CAP, &page_size))
		return fail("KVM_ENABLE_CAP(PM_CAP_GUEST_MEMFD_PAGE_SIZE)");
	m->private_map = calloc((mem_size >> 12) / 64 + 1, sizeof(m->private_map[0]));
	if (!m->private_map)
		return fail("the VMM's map of private pages");
	r = vmm_add_memory(m, gmem_flags);
	/* A pKVM guest owns all its memory until it shares some. */
	if (!r && type == PM_VM_TYPE_PKVM)
		vmm_mark_private(m, 0, mem_size, true);
	if (!r)
		r = vmm_add_vcpus(m, nr_vcpus);
	if (!r) {
		r = vmm_watch_start(m);
		if (r)
			fprintf(stderr, "privmem: the watchdog thread: %s\n", strerror(-r));
	}
	if (!r && observer && observer->created) {
		observer->created(m, observer->arg);
	}
	return r;
}

bool vmm_gmem_in_place(void)
{
	int sys = pm_kvm_open();
	bool on = sys >= 0 && pm_kvm_ioctl(sys, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES) > 0;

	if (sys >= 0)
		pm_kvm_close(sys);
	return on;
}

uint64_t vmm_host_memory(void)
{
	struct pm_pool_stats ps = { 0 };
	int sys = pm_kvm_open();

	if (sys < 0)
		return 0;
	if (pm_kvm_ioctl(sys, PM_KVM_GET_POOL_STATS, &ps))
		ps.size = 0;
	pm_kvm_close(sys);
	return ps.size;
}

int vmm_check_host_memory(uint64_t bytes, const char *what)
{
	uint64_t host = vmm_host_memory();

	if (!host || bytes <= host)
		return 0;
	fprintf(stderr,
		"privmem: %s (%llu MiB) is more than privmem's simulated host memory (%llu MiB);\n"
		"privmem: set PRIVMEM_POOL_SIZE to at least %lluM, or ask for less\n", what,
		(unsigned long long)(bytes >> 20), (unsigned long long)(host >> 20),
		(unsigned long long)((bytes + (2 << 20) - 1) >> 21 << 1));
	return 2;
}

void vmm_destroy(struct vmm *m)
{
	if (m->observer_ctx && observer && observer->destroying)
		observer->destroying(m, observer->arg);
	vmm_watch_stop(m);              /* it reads the VM's statistics */
	for (int i = 0; i < m->nr_vcpus; i++) {
		pm_kvm_munmap(m->run[i], 4096);
		pm_kvm_close(m->vcpu[i]);
	}
	if (m->shared && m->shared_is_view)
		pm_kvm_munmap(m->shared, m->mem_size);
	else if (m->shared)
		munmap(m->shared, m->mem_size);
	if (m->gmem >= 0)
		pm_kvm_close(m->gmem);
	if (m->flash_shared)
		munmap(m->flash_shared, m->flash_size);
	if (m->flash_gmem >= 0)
		pm_kvm_close(m->flash_gmem);
	if (m->vm >= 0)
		pm_kvm_close(m->vm);
	if (m->kvm >= 0)
		pm_kvm_close(m->kvm);
	free(m->private_map);
	m->private_map = NULL;
	pthread_mutex_destroy(&m->abort_lock);
}

int vmm_add_flash(struct vmm *m, uint64_t gpa, uint64_t size)
{
	struct kvm_create_guest_memfd cg = { .size = size };
	struct kvm_userspace_memory_region2 r = { .slot = 1, .guest_phys_addr = gpa,
						  .memory_size = size, .flags = KVM_MEM_GUEST_MEMFD };
	struct kvm_memory_attributes a = { .address = gpa, .size = size,
					   .attributes = KVM_MEMORY_ATTRIBUTE_PRIVATE };

	if (m->flash_gmem >= 0 || gpa < m->mem_size)
		return -EINVAL;
	m->flash_shared = mmap(NULL, size, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m->flash_shared == MAP_FAILED) {
		m->flash_shared = NULL;
		return fail("mmap(flash)");
	}
	m->flash_size = size;
	m->flash_gpa = gpa;
	m->flash_gmem = pm_kvm_ioctl(m->vm, KVM_CREATE_GUEST_MEMFD, &cg);
	if (m->flash_gmem < 0)
		return fail("KVM_CREATE_GUEST_MEMFD(flash)");
	r.userspace_addr = (uintptr_t)m->flash_shared;
	r.guest_memfd = (uint32_t)m->flash_gmem;
	if (pm_kvm_ioctl(m->vm, KVM_SET_USER_MEMORY_REGION2, &r))
		return fail("KVM_SET_USER_MEMORY_REGION2(flash)");
	/* In-place mode: the file starts private and the VM-wide call
	 * takes no PRIVATE. */
	if (!m->in_place && pm_kvm_ioctl(m->vm, KVM_SET_MEMORY_ATTRIBUTES, &a))
		return fail("KVM_SET_MEMORY_ATTRIBUTES(flash)");
	return 0;
}

int vmm_set_private(struct vmm *m, uint64_t gpa, uint64_t size, bool to_private)
{
	uint64_t attrs = to_private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0;
	struct kvm_memory_attributes a = { .address = gpa, .size = size, .attributes = attrs };
	/* RAM is the file from offset 0: the offset is the gpa. */
	struct kvm_memory_attributes2 a2 = { .offset = gpa, .size = size, .attributes = attrs };

	if (gpa + size > m->mem_size || gpa + size < gpa)
		return -EINVAL;
	if (pm_kvm_ioctl(m->in_place ? m->gmem : m->vm,
			 m->in_place ? KVM_SET_MEMORY_ATTRIBUTES2 : KVM_SET_MEMORY_ATTRIBUTES,
			 m->in_place ? (void *)&a2 : (void *)&a))
		return -errno;
	return 0;
}

int vmm_host_read(struct vmm *m, uint64_t gpa, void *buf, size_t len)
{
	struct iovec local = { .iov_base = buf, .iov_len = len };
	struct iovec remote = { .iov_base = m->shared + gpa, .iov_len = len };

	return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == (ssize_t)len ? 0 : -EFAULT;
}

int vmm_convert(struct vmm *m, uint64_t gpa, uint64_t size, bool to_private)
{
	int r = vmm_set_private(m, gpa, size, to_private);

	if (r)
		return r;
	/* Discard the copy the range left, as QEMU does; in place there is
	 * one copy, which stays. */
	if (m->in_place) {
		/* nothing */
	} else if (to_private) {
		madvise(m->shared + gpa, size, MADV_DONTNEED);
	} else if (pm_kvm_fallocate(m->gmem, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				    (off_t)gpa, (off_t)size)) {
		return -errno;
	}
	vmm_mark_private(m, gpa, size, to_private);
	atomic_fetch_add(to_private ? &m->to_private_pages : &m->to_shared_pages, size >> 12);
	atomic_fetch_add(&m->conversions, 1);
	return 0;
}

int vmm_set_guest(struct vmm *m, void (*fn)(struct pm_guest *g, void *arg), void **args)
{
	for (int i = 0; i < m->nr_vcpus; i++) {
		struct pm_guest_entry e = { .fn = fn, .arg = args ? args[i] : NULL };

		if (pm_kvm_ioctl(m->vcpu[i], PM_KVM_SET_GUEST, &e))
			return fail("PM_KVM_SET_GUEST");
	}
	return 0;
}

static void vmm_record_abort(struct vmm *m, int i, const char *msg)
{
	pthread_mutex_lock(&m->abort_lock);
	if (!atomic_fetch_add(&m->aborts, 1))
		snprintf(m->abort_msg, sizeof(m->abort_msg), "vCPU %d: %s", i, msg);
	pthread_mutex_unlock(&m->abort_lock);
}

/* KVM_HC_MAP_GPA_RANGE (a pKVM guest's MEM_SHARE and MEM_UNSHARE never
 * exit: its hypervisor handles them). */
static void vmm_hypercall(struct vmm *m, struct kvm_run *run)
{
	uint64_t gpa = run->hypercall.args[0], npages = run->hypercall.args[1];
	bool to_private = run->hypercall.args[2] & KVM_MAP_GPA_RANGE_ENCRYPTED;
	int r = run->hypercall.nr == KVM_HC_MAP_GPA_RANGE && npages < (1ULL << 40)
		? vmm_convert(m, gpa, npages << 12, to_private) : -EINVAL;

	run->hypercall.ret = r ? (uint64_t)(int64_t)-KVM_EINVAL : 0;
}

/* A KVM_RUN that failed without an exit the VMM can answer. */
static void vmm_run_failed(struct vmm *m, int i, int err)
{
	char msg[256];

	if (err == EINTR && vmm_gave_up(m))
		snprintf(msg, sizeof(msg), "no progress for %u s: gave up (KVM_RUN interrupted by the "
			 "watchdog)", m->stall_s);
	else if (err == ENOMEM)
		snprintf(msg, sizeof(msg), "KVM_RUN: out of memory: privmem's simulated host memory "
			 "(%llu MiB) is used up; raise PRIVMEM_POOL_SIZE or give the guest less",
			 (unsigned long long)(vmm_host_memory() >> 20));
	else
		snprintf(msg, sizeof(msg), "KVM_RUN: %s (exit %u)", strerror(err), m->run[i]->exit_reason);
	vmm_record_abort(m, i, msg);
}

/* The last memory fault a vCPU answered, to tell a fault that comes back
 * after its conversion (no progress) from a new one. */
struct fault_seen {
	uint64_t gpa, size, flags;
	unsigned int repeats;
};

/* Answers a KVM_EXIT_MEMORY_FAULT (an implicit conversion request: SNP's
 * C-bit did not match the attribute) by converting as the access asked,
 * as QEMU does: 0 to run again, -1 after an abort. */
static int vmm_memory_fault(struct vmm *m, int i, struct fault_seen *seen)
{
	const struct kvm_run *run = m->run[i];
	bool to_private = run->memory_fault.flags & KVM_MEMORY_EXIT_FLAG_PRIVATE;
	char msg[256];
	int r;

	if (seen->repeats && seen->gpa == run->memory_fault.gpa && seen->size == run->memory_fault.size &&
	    seen->flags == run->memory_fault.flags) {
		if (++seen->repeats > VMM_FAULT_REPEATS) {
			snprintf(msg, sizeof(msg), "memory fault at gpa %#llx (%s) comes back after its "
				 "conversion: no progress, gave up",
				 (unsigned long long)run->memory_fault.gpa, to_private ? "private" : "shared");
			vmm_record_abort(m, i, msg);
			return -1;
		}
	} else {
		*seen = (struct fault_seen){ .gpa = run->memory_fault.gpa, .size = run->memory_fault.size,
					     .flags = run->memory_fault.flags, .repeats = 1 };
	}
	r = vmm_convert(m, run->memory_fault.gpa, run->memory_fault.size, to_private);
	if (r) {
		snprintf(msg, sizeof(msg), "memory fault at gpa %#llx: conversion to %s: %s",
			 (unsigned long long)run->memory_fault.gpa, to_private ? "private" : "shared",
			 strerror(-r));
		vmm_record_abort(m, i, msg);
		return -1;
	}
	atomic_fetch_add(&m->implicit_conversions, 1);
	return 0;
}

/* One vCPU's loop: 0 when its guest is done, -1 on abort or failure. */
static int vmm_run_vcpu(struct vmm *m, int i)
{
	struct kvm_run *run = m->run[i];
	struct fault_seen seen = { 0 };
	struct pm_ucall uc;

	for (;;) {
		int r = pm_kvm_ioctl(m->vcpu[i], KVM_RUN, 0);

		if (r && errno == EFAULT && run->exit_reason == KVM_EXIT_MEMORY_FAULT) {
			if (vmm_memory_fault(m, i, &seen))
				return -1;
			continue;
		}
		seen.repeats = 0;               /* anything else: the guest moved on */
		if (r && (errno != EINTR || vmm_gave_up(m))) {
			vmm_run_failed(m, i, errno);
			return -1;
		}
		switch (run->exit_reason) {
		case KVM_EXIT_HYPERCALL:
			vmm_hypercall(m, run);
			break;
		case KVM_EXIT_MMIO:
			if (m->mmio)
				m->mmio(m, i, run);
			break;
		case PM_EXIT_UCALL:
			switch (pm_get_ucall(m->vcpu[i], &uc)) {
			case PM_UCALL_SYNC:
				atomic_fetch_add(&m->progress, 1);
				if (m->sync)
					m->sync(m, i, &uc);
				break;
			case PM_UCALL_DONE:
				return 0;
			default:
				vmm_record_abort(m, i, uc.msg);
				return -1;
			}
			break;
		case KVM_EXIT_INTR:
			break;
		case KVM_EXIT_SYSTEM_EVENT: {
			char msg[128];

			snprintf(msg, sizeof(msg), "system event %u (gpa %#llx)", run->system_event.type,
				 (unsigned long long)run->system_event.data[0]);
			vmm_record_abort(m, i, msg);
			return -1;
		}
		default:
			vmm_record_abort(m, i, "unexpected exit");
			return -1;
		}
	}
}

struct vcpu_thread {
	struct vmm *m;
	int i;
	int result;
	atomic_bool done;
};

static void *vcpu_thread_main(void *arg)
{
	struct vcpu_thread *t = arg;
	int slot = vmm_watch_enter(t->m);

	t->result = vmm_run_vcpu(t->m, t->i);
	vmm_watch_leave(t->m, slot);
	atomic_store(&t->done, true);
	return NULL;
}

static bool vcpus_done(struct vcpu_thread *t, int n)
{
	for (int i = 0; i < n; i++)
		if (!atomic_load(&t[i].done))
			return false;
	return true;
}

int vmm_run_all(struct vmm *m, void (*tick)(struct vmm *m, void *ctx), void *ctx)
{
	struct vcpu_thread t[VMM_MAX_VCPUS];
	pthread_t tid[VMM_MAX_VCPUS];
	int result = 0;

	for (int i = 0; i < m->nr_vcpus; i++) {
		t[i] = (struct vcpu_thread){ .m = m, .i = i };
		pthread_create(&tid[i], NULL, vcpu_thread_main, &t[i]);
	}
	if (tick)
		tick(m, ctx);                   /* at once, then every 200 ms */
	while (tick && !vcpus_done(t, m->nr_vcpus)) {
		struct timespec ts = { 0, 200 * 1000 * 1000 };

		nanosleep(&ts, NULL);
		tick(m, ctx);
	}
	for (int i = 0; i < m->nr_vcpus; i++) {
		pthread_join(tid[i], NULL);
		result |= t[i].result;
	}
	return result;
}

int vmm_vm_stats(struct vmm *m, struct pm_vm_stats *st)
{
	return pm_kvm_ioctl(m->vm, PM_KVM_GET_VM_STATS, st);
}

int vmm_pool_stats(struct vmm *m, struct pm_pool_stats *st)
{
	return pm_kvm_ioctl(m->kvm, PM_KVM_GET_POOL_STATS, st);
}

uint64_t vmm_model_stat(const struct pm_model_stats *st, const char *name)
{
	for (unsigned int i = 0; i < st->nr && i < PM_MODEL_STATS_MAX; i++)
		if (!strcmp(st->v[i].name, name))
			return st->v[i].value;
	return 0;
}

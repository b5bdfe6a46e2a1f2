/* SPDX-License-Identifier: MIT */
/*
 * The fault path and the stage-2 MMU, driven through KVM's uAPI by guest
 * code on vCPUs.
 *
 * Covered:
 *  - mapping level: private faults map the largest page guest_memfd, the
 *    slot's alignment and bounds and the attributes allow (2M, 1G, 4K with
 *    NO_HUGE, 4K when the slot is misaligned against its file offset or
 *    smaller than the huge page, 4K in a mixed 2M range), with control
 *    cases in the same VM that do map huge, so a wrong level in either
 *    direction fails;
 *  - splitting: converting one page of a 2M private mapping splits it; the
 *    other 511 pages stay mapped (no new faults) and the converted page is
 *    served from the shared mapping;
 *  - punch hole under a guest: the punched private page reads zero, private
 *    data never reaches the VMM's shared mapping, host writes reach the
 *    guest once the page is shared;
 *  - the default VM: no private attribute; a gmem-only slot serves shared
 *    faults from guest_memfd in place (the data is the mmap view's), and a
 *    punch unmaps them;
 *  - TLB shootdown: a zap does not return while a vCPU in guest mode may
 *    still use the old page (deterministic check), and a guest reading a
 *    page while it is converted never observes what the VMM writes into the
 *    old page after the conversion returned (stress check); an access that
 *    races a conversion follows the new attribute without an exit;
 *  - two vCPUs stamping and checking their own pages, converting them
 *    through KVM_HC_MAP_GPA_RANGE, while two VMM threads convert and punch
 *    the pages between them; every frame goes back to the pool at the end.
 *
 * Statistics come from PM_KVM_GET_VM_STATS, read only while no vCPU is in
 * KVM_RUN (the ioctl takes every vCPU's run lock).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "kvm/vm.h"
#include "lib/testutil.h"
#include "mmu/mmu.h"
#include "uapi/handle.h"
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <linux/falloc.h>

#include <privmem/guest.h>
#include <privmem/privmem.h>

#define PAGE      4096ULL
#define MIB       (1ULL << 20)
#define GIB       (1ULL << 30)
#define MAX_SLOTS 4
#define MAX_VCPUS 2

#define PUNCH     (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)

/* ---- the VMM ------------------------------------------------------------ */

struct slot {
	uint64_t gpa, size;
	uint8_t *shared;          /* the VMM's (userspace_addr) mapping, 2M aligned */
	uint64_t map_len;
	int gmem;                 /* -1: no guest_memfd */
};

struct vmm {
	int kvm, vm;
	int vcpu[MAX_VCPUS];
	struct kvm_run *run[MAX_VCPUS];
	int nr_vcpus;
	struct slot slot[MAX_SLOTS];
	int nr_slots;
};

static void vmm_create(struct vmm *m, unsigned long type, int vcpus)
{
	memset(m, 0, sizeof(*m));
	m->kvm = pm_kvm_open();
	assert_true(m->kvm >= 0);
	m->vm = pm_kvm_ioctl(m->kvm, KVM_CREATE_VM, type);
	assert_true(m->vm >= 0);
	pm_test_gmem_page_size_flags(m->vm);
	for (int i = 0; i < vcpus; i++) {
		m->vcpu[i] = pm_kvm_ioctl(m->vm, KVM_CREATE_VCPU, i);
		assert_true(m->vcpu[i] >= 0);
		m->run[i] = pm_kvm_mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, m->vcpu[i], 0);
		assert_true(m->run[i] != MAP_FAILED);
		m->nr_vcpus = i + 1;
	}
}

/* Anonymous memory aligned to 2 MiB, so shared mappings can be huge too. */
static uint8_t *alloc_shared(uint64_t size, uint64_t *map_len)
{
	uint64_t len = size + 2 * MIB;
	uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uint8_t *a;

	assert_true(p != MAP_FAILED);
	a = (uint8_t *)(((uintptr_t)p + 2 * MIB - 1) & ~(uintptr_t)(2 * MIB - 1));
	if (a > p)
		munmap(p, (size_t)(a - p));
	munmap(a + size, (size_t)(p + len - (a + size)));
	*map_len = size;
	return a;
}

static int vmm_create_gmem(struct vmm *m, uint64_t size, uint64_t flags)
{
	struct kvm_create_guest_memfd cg = { .size = size, .flags = flags };
	int fd = pm_kvm_ioctl(m->vm, KVM_CREATE_GUEST_MEMFD, &cg);

	assert_true(fd >= 0);
	return fd;
}

/* Adds slot m->nr_slots at gpa; bound to guest_memfd `gmem` at `offset`
 * unless gmem < 0. Returns the slot. */
static struct slot *vmm_add_slot(struct vmm *m, uint64_t gpa, uint64_t size, int gmem,
				 uint64_t offset, void *userspace)
{
	struct slot *s = &m->slot[m->nr_slots];
	struct kvm_userspace_memory_region2 r = {
		.slot = (uint32_t)m->nr_slots, .guest_phys_addr = gpa, .memory_size = size,
		.guest_memfd_offset = offset,
	};

	s->gpa = gpa;
	s->size = size;
	s->gmem = gmem;
	if (userspace) {
		s->shared = userspace;
		s->map_len = 0;            /* not ours */
	} else {
		s->shared = alloc_shared(size, &s->map_len);
	}
	r.userspace_addr = (uintptr_t)s->shared;
	if (gmem >= 0) {
		r.flags = KVM_MEM_GUEST_MEMFD;
		r.guest_memfd = (uint32_t)gmem;
	}
	assert_int_equal(pm_kvm_ioctl(m->vm, KVM_SET_USER_MEMORY_REGION2, &r), 0);
	m->nr_slots++;
	return s;
}

static void vmm_destroy(struct vmm *m)
{
	for (int i = 0; i < m->nr_vcpus; i++) {
		assert_int_equal(pm_kvm_munmap(m->run[i], PAGE), 0);
		assert_int_equal(pm_kvm_close(m->vcpu[i]), 0);
	}
	for (int i = 0; i < m->nr_slots; i++) {
		if (m->slot[i].gmem >= 0)
			pm_kvm_close(m->slot[i].gmem);   /* a file may back two slots */
		if (m->slot[i].map_len)
			munmap(m->slot[i].shared, m->slot[i].map_len);
	}
	assert_int_equal(pm_kvm_close(m->vm), 0);
	assert_int_equal(pm_kvm_close(m->kvm), 0);
}

static void vmm_guest(struct vmm *m, int i, void (*fn)(struct pm_guest *, void *), void *arg)
{
	struct pm_guest_entry e = { .fn = fn, .arg = arg };

	assert_int_equal(pm_kvm_ioctl(m->vcpu[i], PM_KVM_SET_GUEST, &e), 0);
}

static int set_attr(int vm, uint64_t gpa, uint64_t size, bool private)
{
	struct kvm_memory_attributes a = {
		.address = gpa, .size = size,
		.attributes = private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0,
	};

	return pm_kvm_ioctl(vm, KVM_SET_MEMORY_ATTRIBUTES, &a);
}

static void vmm_set_attr(struct vmm *m, uint64_t gpa, uint64_t size, bool private)
{
	assert_int_equal(set_attr(m->vm, gpa, size, private), 0);
}

static void vmm_stats(struct vmm *m, struct pm_vm_stats *st)
{
	assert_int_equal(pm_kvm_ioctl(m->vm, PM_KVM_GET_VM_STATS, st), 0);
}

static uint64_t pool_in_use(int kvm)
{
	struct pm_pool_stats ps;

	assert_int_equal(pm_kvm_ioctl(kvm, PM_KVM_GET_POOL_STATS, &ps), 0);
	return ps.in_use;
}

/* 4K pages the stage-2 table maps now. */
static uint64_t pages_mapped(const struct pm_vm_stats *st)
{
	return st->mappings[0] + 512 * st->mappings[1] + 512 * 512 * st->mappings[2];
}

static uint64_t expect_sync(struct vmm *m, int i)
{
	struct pm_ucall uc;
	int r;

	errno = 0;
	r = pm_kvm_ioctl(m->vcpu[i], KVM_RUN, 0);
	if (r)
		fail_msg("KVM_RUN: errno %d (%s), exit_reason %u, gpa %#llx", errno, strerror(errno),
			 m->run[i]->exit_reason, (unsigned long long)m->run[i]->memory_fault.gpa);
	assert_int_equal(m->run[i]->exit_reason, PM_EXIT_UCALL);
	switch (pm_get_ucall(m->vcpu[i], &uc)) {
	case PM_UCALL_SYNC:
		return uc.args[0];
	case PM_UCALL_ABORT:
		fail_msg("guest aborted: %s", uc.msg);
		break;
	default:
		fail_msg("unexpected ucall %llu", (unsigned long long)uc.cmd);
	}
	return 0;
}

static void expect_done(struct vmm *m, int i)
{
	struct pm_ucall uc;

	assert_int_equal(pm_kvm_ioctl(m->vcpu[i], KVM_RUN, 0), 0);
	assert_int_equal(m->run[i]->exit_reason, PM_EXIT_UCALL);
	if (pm_get_ucall(m->vcpu[i], &uc) == PM_UCALL_ABORT)
		fail_msg("guest aborted: %s", uc.msg);
	assert_int_equal(uc.cmd, PM_UCALL_DONE);
}

static uint64_t pattern(uint64_t gpa, uint64_t seed)
{
	return ((gpa >> 3) * 0x9E3779B97F4A7C15ULL ^ seed * 0xC2B2AE3D27D4EB4FULL) | 1;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- guest code driven by a list of gpas ------------------------------------ */

/* Touches (writes, then reads back) one word in each listed page, syncing
 * after each with the page's index in the list. */
struct touch_list {
	uint64_t gpa[16];
	int n;
};

static void guest_touch(struct pm_guest *g, void *arg)
{
	const struct touch_list *t = arg;

	for (int i = 0; i < t->n; i++) {
		pm_guest_write64(g, t->gpa[i] + 64, pattern(t->gpa[i], 7));
		PM_GUEST_ASSERT(g, pm_guest_read64(g, t->gpa[i] + 64) == pattern(t->gpa[i], 7));
		pm_guest_sync(g, (uint64_t)i);
	}
}

/* Runs guest_touch over t and checks, touch by touch, that exactly one
 * mapping of level want_level[i] was installed (-1: none at all). */
static void touch_expect_levels(struct vmm *m, struct touch_list *t, const int *want_level)
{
	struct pm_vm_stats before, after;

	vmm_guest(m, 0, guest_touch, t);
	vmm_stats(m, &before);
	for (int i = 0; i < t->n; i++) {
		uint64_t d[3];

		assert_int_equal(expect_sync(m, 0), (uint64_t)i);
		vmm_stats(m, &after);
		for (int l = 0; l < 3; l++)
			d[l] = after.mapped[l] - before.mapped[l];
		for (int l = 0; l < 3; l++)
			if (d[l] != (uint64_t)(l == want_level[i]))
				fail_msg("touch %d (gpa %#llx): new mappings 4K %llu, 2M %llu, 1G %llu; "
					 "want one of level %d", i, (unsigned long long)t->gpa[i],
					 (unsigned long long)d[0], (unsigned long long)d[1],
					 (unsigned long long)d[2], want_level[i]);
		before = after;
	}
	expect_done(m, 0);
}

/* ---- mapping level ------------------------------------------------------------ */

static void test_private_fault_on_2m_guest_memfd_maps_2m(void **state)
{
	struct touch_list t = { .gpa = { GIB + 5 * PAGE, GIB + 2 * MIB + 511 * PAGE,
					 GIB + 6 * MIB + 100 * PAGE, GIB + 5 * PAGE + PAGE }, .n = 4 };
	const int want[] = { 1, 1, 1, -1 };        /* the last one is already mapped */
	struct pm_vm_stats st;
	struct vmm m;
	int gmem;

	vmm_create(&m, KVM_X86_SW_PROTECTED_VM, 1);
	gmem = vmm_create_gmem(&m, 8 * MIB, 0);
	vmm_add_slot(&m, GIB, 8 * MIB, gmem, 0, NULL);
	vmm_set_attr(&m, GIB, 8 * MIB, true);
	touch_expect_levels(&m, &t, want);
	vmm_stats(&m, &st);
	assert_int_equal(st.mappings[1], 3);
	assert_int_equal(st.mappings[0], 0);
	assert_int_equal(st.faults, 3);
	vmm_destroy(&m);
}

static void test_private_fault_on_1g_guest_memfd_maps_1g(void **state)
{
	struct touch_list t = { .gpa = { GIB + 5 * PAGE, GIB + 1000 * MIB + 3 * PAGE }, .n = 2 };
	const int want[] = { 2, -1 };
	struct pm_pool_config cfg = { .size = 4 * GIB };
	struct pm_pool_stats ps;
	struct pm_vm_stats st;
	struct vmm m;
	uint64_t old_size;
	int kvm, gmem;

	/* The pool can only be resized while nothing is allocated. */
	kvm = pm_kvm_open();
	assert_int_equal(pm_kvm_ioctl(kvm, PM_KVM_GET_POOL_STATS, &ps), 0);
	assert_int_equal(ps.in_use, 0);
	old_size = ps.size;
	assert_int_equal(pm_kvm_ioctl(kvm, PM_KVM_SET_POOL_CONFIG, &cfg), 0);

	vmm_create(&m, KVM_X86_SW_PROTECTED_VM, 1);
	gmem = vmm_create_gmem(&m, GIB, 0);
	vmm_add_slot(&m, GIB, GIB, gmem, 0, NULL);
	vmm_set_attr(&m, GIB, GIB, true);
	touch_expect_levels(&m, &t, want);
	vmm_stats(&m, &st);
	assert_int_equal(st.mappings[2], 1);
	assert_int_equal(st.faults, 1);
	vmm_destroy(&m);

	assert_int_equal(pool_in_use(kvm), 0);
	cfg.size = old_size;
	assert_int_equal(pm_kvm_ioctl(kvm, PM_KVM_SET_POOL_CONFIG, &cfg), 0);
	pm_kvm_close(kvm);
}

/* A small pool for the exhaustion tests; pool_restore puts the old one back
 * (nothing may be allocated then). */
struct small_pool {
	int kvm;
	uint64_t size, watermark;
};

static void pool_shrink(struct small_pool *p, uint64_t size)
{
	struct pm_pool_config cfg = { .size = size, .watermark = 1 * MIB };
	struct pm_pool_stats ps;

	p->kvm = pm_kvm_open();
	assert_int_equal(pm_kvm_ioctl(p->kvm, PM_KVM_GET_POOL_STATS, &ps), 0);
	p->size = ps.size;
	p->watermark = ps.watermark;
	assert_int_equal(pm_kvm_ioctl(p->kvm, PM_KVM_SET_POOL_CONFIG, &cfg), 0);
}

static void pool_restore(struct small_pool *p)
{
	struct pm_pool_config cfg = { .size = p->size, .watermark = p->watermark };

	assert_int_equal(pool_in_use(p->kvm), 0);
	assert_int_equal(pm_kvm_ioctl(p->kvm, PM_KVM_SET_POOL_CONFIG, &cfg), 0);
	pm_kvm_close(p->kvm);
}

/* A guest_memfd that takes every frame left (4K at a time); ENOMEM at the end. */
static int pool_hog(struct vmm *m, uint64_t size)
{
	int hog = vmm_create_gmem(m, size, PM_GUEST_MEMFD_FLAG_NO_HUGE), n = 0;

	while (pm_kvm_fallocate(hog, FALLOC_FL_KEEP_SIZE, (off_t)n * PAGE, PAGE) == 0)
		n++;
	assert_int_equal(errno, ENOMEM);
	return hog;
}

/* With the pool exhausted, converting 4K inside a 2M private mapping has no
 * frame to split the mapping with: the conversion still completes, removing
 * the whole 2M mapping (it used to retry the split forever). */
static void test_conversion_with_the_pool_exhausted_unmaps_the_whole_huge_page(void **state)
{
	struct small_pool pool;
	struct pm_vm_stats st;
	struct vmm m;
	int gmem, hog;

	pool_shrink(&pool, 8 * MIB);
	vmm_create(&m, KVM_X86_SW_PROTECTED_VM, 1);
	gmem = vmm_create_gmem(&m, 2 * MIB, PM_GUEST_MEMFD_FLAG_NO_1G);
	vmm_add_slot(&m, 0, 2 * MIB, gmem, 0, NULL);
	vmm_set_attr(&m, 0, 2 * MIB, true);
	{
		struct kvm_pre_fault_memory pf = { .gpa = 0, .size = PAGE };

		assert_int_equal(pm_kvm_ioctl(m.vcpu[0], KVM_PRE_FAULT_MEMORY, &pf), 0);
	}
	vmm_stats(&m, &st);
	assert_int_equal(st.mappings[1], 1);
	/* Every remaining frame goes to another file. */
	hog = pool_hog(&m, 8 * MIB);
	vmm_set_attr(&m, PAGE, PAGE, false);
	vmm_stats(&m, &st);
	assert_int_equal(st.mappings[1], 0);
	assert_int_equal(st.mappings[0], 0);
	pm_kvm_close(hog);
	vmm_destroy(&m);
	pool_restore(&pool);
}

/* A guest fault that finds no memory for its page fails KVM_RUN with
 * ENOMEM, as Linux does, rather than asking the VMM to convert a page whose
 * attribute already matches (EFAULT), which a VMM would retry for ever.
 * The access is retried when the vCPU runs again. */
static void test_guest_fault_with_the_pool_exhausted_is_enomem(void **state)
{
	struct touch_list t = { .gpa = { 0 }, .n = 1 };
	struct small_pool pool;
	struct pm_vm_stats st;
	struct vmm m;
	int gmem, hog;

	pool_shrink(&pool, 8 * MIB);
	vmm_create(&m, KVM_X86_SW_PROTECTED_VM, 1);
	gmem = vmm_create_gmem(&m, 2 * MIB, PM_GUEST_MEMFD_FLAG_NO_HUGE);
	vmm_add_slot(&m, 0, 2 * MIB, gmem, 0, NULL);
	vmm_set_attr(&m, 0, 2 * MIB, true);
	/* The tables the fault needs exist; then every frame goes elsewhere. */
	{
		struct kvm_pre_fault_memory pf = { .gpa = PAGE, .size = PAGE };

		assert_int_equal(pm_kvm_ioctl(m.vcpu[0], KVM_PRE_FAULT_MEMORY, &pf), 0);
	}
	hog = pool_hog(&m, 8 * MIB);
	vmm_guest(&m, 0, guest_touch, &t);
	errno = 0;
	assert_int_equal(pm_kvm_ioctl(m.vcpu[0], KVM_RUN, 0), -1);
	assert_int_equal(errno, ENOMEM);
	assert_int_not_equal(m.run[0]->exit_reason, KVM_EXIT_MEMORY_FAULT);
	vmm_stats(&m, &st);
	assert_int_equal(st.exits[PM_STAT_EXITS_ERROR], 1);
	assert_int_equal(st.exits[PM_STAT_EXITS_MEMORY_FAULT], 0);
	/* With a page back the same access completes. */
	assert_int_equal(pm_kvm_fallocate(hog, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, PAGE), 0);
	assert_int_equal(expect_sync(&m, 0), 0);
	expect_done(&m, 0);
	pm_kvm_close(hog);
	vmm_destroy(&m);
	pool_restore(&pool);
}

/* A shared access whose page the VMM's memory does not back the way the
 * access needs (address 0, unmapped, PROT_NONE, read-only for a write)
 * fails KVM_RUN with EFAULT and a memory-fault exit, as KVM's
 * get_user_pages failure does; it neither loops nor crashes, and the access
 * completes once the VMM maps the memory. */
static void expect_efault_exit(struct vmm *m, uint64_t gpa)
{
	errno = 0;
	assert_int_equal(pm_kvm_ioctl(m->vcpu[0], KVM_RUN, 0), -1);
	assert_int_equal(errno, EFAULT);
	assert_int_equal(m->run[0]->exit_reason, KVM_EXIT_MEMORY_FAULT);
	assert_int_equal(m->run[0]->memory_fault.gpa, gpa);
	assert_int_equal(m->run[0]->memory_fault.flags, 0);
}

static void test_bad_host_addresses_are_efault_exits(void **state)
{
	struct touch_list t = { .gpa = { 0, 2 * MIB, 4 * MIB, 6 * MIB }, .n = 4 };
	uint8_t *mem = mmap(NULL, 8 * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct kvm_userspace_memory_region2 r = { .slot = 0, .memory_size = 2 * MIB };
	struct vmm m;

	assert_true(mem != MAP_FAILED);
	vmm_create(&m, KVM_X86_SW_PROTECTED_VM, 1);
	/* Slot 0: userspace_addr 0. */
	assert_int_equal(pm_kvm_ioctl(m.vm, KVM_SET_USER_MEMORY_REGION2, &r), 0);
	/* Slot 1: memory that is gone (unmapped below, once the vCPU has
	 * run: nothing may take the hole meanwhile); 2: PROT_NONE; 3:
	 * read-only. */
	assert_int_equal(mprotect(mem + 4 * MIB, 2 * MIB, PROT_NONE), 0);
	assert_int_equal(mprotect(mem + 6 * MIB, 2 * MIB, PROT_READ), 0);
	for (uint32_t i = 1; i < 4; i++) {
		r.slot = i;
		r.guest_phys_addr = 2 * MIB * i;
		r.userspace_addr = (uintptr_t)mem + 2 * MIB * i;
		assert_int_equal(pm_kvm_ioctl(m.vm, KVM_SET_USER_MEMORY_REGION2, &r), 0);
	}
	vmm_guest(&m, 0, guest_touch, &t);
	expect_efault_exit(&m, 0);
	expect_efault_exit(&m, 0);             /* again: nothing changed */
	assert_int_equal(munmap(mem + 2 * MIB, 2 * MIB), 0);
	r.slot = 0;
	r.guest_phys_addr = 0;
	r.memory_size = 0;
	assert_int_equal(pm_kvm_ioctl(m.vm, KVM_SET_USER_MEMORY_REGION2, &r), 0);
	r.memory_size = 2 * MIB;
	r.userspace_addr = (uintptr_t)mem;
	assert_int_equal(pm_kvm_ioctl(m.vm, KVM_SET_USER_MEMORY_REGION2, &r), 0);
	assert_int_equal(expect_sync(&m, 0), 0);
	expect_efault_exit(&m, 2 * MIB);
	assert_true(mmap(mem + 2 * MIB, 2 * MIB, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED);
	assert_int_equal(expect_sync(&m, 0), 1);
	expect_efault_exit(&m, 4 * MIB);
	assert_int_equal(mprotect(mem + 4 * MIB, 2 * MIB, PROT_READ | PROT_WRITE), 0);
	assert_int_equal(expect_sync(&m, 0), 2);
	expect_efault_exit(&m, 6 * MIB);        /* a write to read-only memory */
	assert_int_equal(mprotect(mem + 6 * MIB, 2 * MIB, PROT_READ | PROT_WRITE), 0);
	assert_int_equal(expect_sync(&m, 0), 3);
	expect_done(&m, 0);
	vmm_destroy(&m);
	munmap(mem, 8 * MIB);
}

static void test_private_fault_on_no_huge_guest_memfd_maps_4k(void **state)
{
	struct touch_list t = { .gpa = { GIB, GIB + 2 * MIB + 7 * PAGE, GIB + PAGE }, .n = 3 };
	const int want[] = { 0, 0, 0 };
	struct vmm m;
	int gmem;

	vmm_create(&m, KVM_X86_SW_PROTECTED_VM, 1);
	gmem = vmm_create_gmem(&m, 4 * MIB, PM_GUEST_MEMFD_FLAG_NO_HUGE);
	vmm_add_slot(&m, GIB, 4 * MIB, gmem, 0, NULL);
	vmm_set_attr(&m, GIB, 4 * MIB, true);
	touch_expect_levels(&m, &t, want);
	vmm_destroy(&m);
}

static void test_slot_misaligned_with_its_file_or_smaller_than_the_huge_page_maps_4k(void **state)
{
	/* Slot 0: gpa 2M-aligned, file offset 4K. Slot 1: gpa off by 4K, file
	 * offset 0. Slot 2 (the control): both aligned. In each, the touched
	 * page lies in a 2M block the slot covers entirely and the file backs
	 * with a 2M page. Slot 3: aligned, but only 1M of the file's 2M page:
	 * a 2M mapping would reach past the slot. */
	struct touch_list t = { .gpa = { GIB + 3 * MIB, 2 * GIB + 4 * MIB + 5 * PAGE,
					 3 * GIB + 2 * MIB + 9 * PAGE, 4 * GIB + 3 * PAGE }, .n = 4 };
	const int want[] = { 0, 0, 1, 0 };
	struct vmm m;
	int g0, g1, g2, g3;

	vmm_create(&m, KVM_X86_SW_PROTECTED_VM, 1);
	g0 = vmm_create_gmem(&m, 8 * MIB, 0);
	g1 = vmm_create_gmem(&m, 8 * MIB, 0);
	g2 = vmm_create_gmem(&m, 8 * MIB, 0);
	g3 = vmm_create_gmem(&m, 2 * MIB, 0);
	vmm_add_slot(&m, GIB, 6 * MIB, g0, PAGE, NULL);
	vmm_add_slot(&m, 2 * GIB + PAGE, 6 * MIB, g1, 0, NULL);
	vmm_add_slot(&m, 3 * GIB, 6 * MIB, g2, 0, NULL);
	vmm_add_slot(&m, 4 * GIB, MIB, g3, 0, NULL);
	vmm_set_attr(&m, GIB, 6 * MIB, true);
	vmm_set_attr(&m, 2 * GIB + PAGE, 6 * MIB, true);
	vmm_set_attr(&m, 3 * GIB, 6 * MIB, true);
	vmm_set_attr(&m, 4 * GIB, 2 * MIB, true);
	touch_expect_levels(&m, &t, want);
	vmm_destroy(&m);
}

static void test_mixed_2m_range_maps_its_private_pages_4k(void **state)
{
	/* Block 0 is private but for page 5; block 1 is wholly private. */
	struct touch_list t = { .gpa = { GIB + 100 * PAGE, GIB + 5 * PAGE, GIB + 2 * MIB + 3 * PAGE },
				.n = 3 };
	const int want[] = { 0, 0, 1 };
	struct slot *s;
	struct vmm m;
	int gmem;

	vmm_create(&m, KVM_X86_SW_PROTECTED_VM, 1);
	gmem = vmm_create_gmem(&m, 4 * MIB, 0);
	s = vmm_add_slot(&m, GIB, 4 * MIB, gmem, 0, NULL);
	vmm_set_attr(&m, GIB, 4 * MIB, true);
	vmm_set_attr(&m, GIB + 5 * PAGE, PAGE, false);
	touch_expect_levels(&m, &t, want);
	/* The shared page's data went to the VMM's mapping, the private ones' did not. */
	assert_int_equal(*(uint64_t *)(s->shared + 5 * PAGE + 64), pattern(GIB + 5 * PAGE, 7));
	assert_int_equal(*(uint64_t *)(s->shared + 100 * PAGE + 64), 0);
	assert_int_equal(*(uint64_t *)(s->shared + 2 * MIB + 3 * PAGE + 64), 0);
	vmm_destroy(&m);
}

/* ---- splitting ------------------------------------------------------------------- */

#define SPLIT_BASE GIB
#define SPLIT_PAGE 37

static void guest_split(struct pm_guest *g, void *arg)
{
	for (uint64_t p = 0; p < 512; p++)
		pm_guest_write64(g, SPLIT_BASE + p * PAGE + 8 * (p % 512), pattern(p, 3));
	pm_guest_sync(g, 1);                    /* the VMM converts SPLIT_PAGE */
	for (uint64_t p = 0; p < 512; p++)
		if (p != SPLIT_PAGE)
			PM_GUEST_ASSERT(g, pm_guest_read64(g, SPLIT_BASE + p * PAGE + 8 * p) == pattern(p, 3));
	pm_guest_sync(g, 2);
	pm_guest_sync(g, pm_guest_read64(g, SPLIT_BASE + SPLIT_PAGE * PAGE + 8 * SPLIT_PAGE));
}

static void test_converting_one_page_splits_the_2m_mapping_and_keeps_the_rest(void **state)
{
	struct pm_vm_stats s1, s2, s3;
	struct slot *s;
	struct vmm m;
	int gmem;

	vmm_create(&m, KVM_X86_SW_PROTECTED_VM, 1);
	gmem = vmm_create_gmem(&m, 4 * MIB, 0);
	s = vmm_add_slot(&m, SPLIT_BASE, 4 * MIB, gmem, 0, NULL);
	vmm_set_attr(&m, SPLIT_BASE, 4 * MIB, true);
	vmm_guest(&m, 0, guest_split, NULL);
	assert_int_equal(expect_sync(&m, 0), 1);
	vmm_stats(&m, &s1);
	assert_int_equal(s1.mappings[1], 1);
	assert_int_equal(s1.mapped[1], 1);
	assert_int_equal(s1.faults, 1);

	/* Convert one page to shared as a VMM does: attribute, then discard. */
	vmm_set_attr(&m, SPLIT_BASE + SPLIT_PAGE * PAGE, PAGE, false);
	assert_int_equal(pm_kvm_fallocate(gmem, PUNCH, SPLIT_PAGE * PAGE, PAGE), 0);
	memcpy(s->shared + SPLIT_PAGE * PAGE + 8 * SPLIT_PAGE, &(uint64_t){ 0x5a5a0037 }, 8);
	vmm_stats(&m, &s2);
	assert_true(s2.splits > s1.splits);
	assert_int_equal(s2.mappings[1], 0);
	assert_int_equal(s2.mappings[0], 511);

	assert_int_equal(expect_sync(&m, 0), 2);
	vmm_stats(&m, &s3);
	assert_int_equal(s3.faults, s2.faults);       /* the 511 were still mapped */
	assert_int_equal(s3.mappings[0], 511);

	assert_int_equal(expect_sync(&m, 0), 0x5a5a0037);
	vmm_stats(&m, &s3);
	assert_int_equal(s3.faults, s2.faults + 1);
	assert_int_equal(s3.mappings[0], 512);
	expect_done(&m, 0);
	vmm_destroy(&m);
}

/* ---- punch hole under the guest -------------------------------------------------- */

#define PUNCH_GPA (GIB + 2 * MIB + 10 * PAGE)
#define SECRET    0x5ec2e75ec2e75ec2ULL
#define REUSE_GPA (2 * GIB)

static void guest_punch(struct pm_guest *g, void *arg)
{
	uint64_t buf[512];
	uint64_t nonzero = 0;

	for (int i = 0; i < 512; i++)
		buf[i] = SECRET ^ (uint64_t)i;
	pm_guest_write(g, PUNCH_GPA, buf, sizeof(buf));
	pm_guest_sync(g, 1);                    /* the VMM punches the page */
	/* A private page elsewhere, likely on the frame the punch freed: a
	 * mapping left behind by the punch would show this data. */
	pm_guest_memset(g, REUSE_GPA, 0x77, PAGE);
	pm_guest_read(g, PUNCH_GPA, buf, sizeof(buf));
	for (int i = 0; i < 512; i++)
		nonzero += buf[i] != 0;
	pm_guest_sync(g, nonzero);
	for (int i = 0; i < 512; i++)
		buf[i] = SECRET ^ (uint64_t)(i + 1000);
	pm_guest_write(g, PUNCH_GPA, buf, sizeof(buf));
	pm_guest_sync(g, 3);                    /* the VMM converts it to shared */
	pm_guest_read(g, PUNCH_GPA, buf, sizeof(buf));
	for (int i = 0; i < 512; i++)
		PM_GUEST_ASSERT(g, buf[i] == 0x4057000000000000ULL + (uint64_t)i);
}

static void host_never_sees_secret(const uint8_t *page)
{
	for (int i = 0; i < 512; i++) {
		uint64_t w;

		memcpy(&w, page + 8 * i, 8);
		if ((w ^ SECRET) < 2000)
			fail_msg("private data at word %d of the host's mapping", i);
	}
}

static void test_punched_private_page_reads_zero_and_never_reaches_the_host(void **state)
{
	struct pm_vm_stats before, after;
	struct slot *s;
	uint8_t *host;
	struct vmm m;
	int gmem;

	vmm_create(&m, KVM_X86_SW_PROTECTED_VM, 1);
	gmem = vmm_create_gmem(&m, 4 * MIB, 0);
	s = vmm_add_slot(&m, GIB, 4 * MIB, gmem, 0, NULL);
	vmm_add_slot(&m, REUSE_GPA, 2 * MIB, vmm_create_gmem(&m, 2 * MIB, PM_GUEST_MEMFD_FLAG_NO_HUGE), 0,
		     NULL);
	host = s->shared + (PUNCH_GPA - GIB);
	vmm_set_attr(&m, GIB, 4 * MIB, true);
	vmm_set_attr(&m, REUSE_GPA, 2 * MIB, true);
	vmm_guest(&m, 0, guest_punch, NULL);
	assert_int_equal(expect_sync(&m, 0), 1);
	host_never_sees_secret(host);
	vmm_stats(&m, &before);
	assert_int_equal(pm_kvm_fallocate(gmem, PUNCH, PUNCH_GPA - GIB, PAGE), 0);
	vmm_stats(&m, &after);
	/* Exactly the punched page was unmapped (its 2M mapping split). */
	assert_int_equal(pages_mapped(&after), pages_mapped(&before) - 1);
	assert_true(after.zapped > before.zapped);
	assert_int_equal(after.invalidations[PM_STAT_INVAL_PUNCH], before.invalidations[PM_STAT_INVAL_PUNCH] + 1);
	assert_int_equal(expect_sync(&m, 0), 0);      /* no non-zero word: destroyed */
	assert_int_equal(expect_sync(&m, 0), 3);
	host_never_sees_secret(host);
	/* Shared again (attribute, then discard the private copy). */
	vmm_set_attr(&m, PUNCH_GPA, PAGE, false);
	assert_int_equal(pm_kvm_fallocate(gmem, PUNCH, PUNCH_GPA - GIB, PAGE), 0);
	host_never_sees_secret(host);
	for (int i = 0; i < 512; i++)
		memcpy(host + 8 * i, &(uint64_t){ 0x4057000000000000ULL + (uint64_t)i }, 8);
	expect_done(&m, 0);
	vmm_destroy(&m);
}

/* ---- the default VM: gmem-only slots ------------------------------------------------ */

static void test_default_vm_refuses_the_private_attribute(void **state)
{
	struct vmm m;

	vmm_create(&m, KVM_X86_DEFAULT_VM, 1);
	vmm_add_slot(&m, 0, 2 * MIB, -1, 0, NULL);
	errno = 0;
	assert_int_equal(set_attr(m.vm, 0, PAGE, true), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(set_attr(m.vm, 0, PAGE, false), 0);
	vmm_destroy(&m);
}

#define GO_PAGES 1024                  /* 4 MiB gmem-only slot at gpa 0 */

static void guest_gmem_only(struct pm_guest *g, void *arg)
{
	for (uint64_t p = 0; p < GO_PAGES; p++)
		pm_guest_write64(g, p * PAGE + 16, pattern(p * PAGE, 11));
	pm_guest_sync(g, 1);                   /* the VMM reads, then writes its own */
	for (uint64_t p = 0; p < GO_PAGES; p++)
		PM_GUEST_ASSERT(g, pm_guest_read64(g, p * PAGE + 16) == pattern(p * PAGE, 12));
	pm_guest_sync(g, 2);                   /* the VMM punches page 3 */
	PM_GUEST_ASSERT(g, pm_guest_read64(g, 3 * PAGE + 16) == 0);
	PM_GUEST_ASSERT(g, pm_guest_read64(g, 4 * PAGE + 16) == pattern(4 * PAGE, 12));
}

static void test_gmem_only_slot_serves_shared_faults_in_place_from_guest_memfd(void **state)
{
	uint64_t decoy_len;
	uint8_t *decoy = alloc_shared(GO_PAGES * PAGE, &decoy_len);
	struct pm_vm_stats before, after;
	uint8_t *view;
	struct vmm m;
	int gmem;

	vmm_create(&m, KVM_X86_DEFAULT_VM, 1);
	gmem = vmm_create_gmem(&m, GO_PAGES * PAGE, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED);
	view = pm_kvm_mmap(NULL, GO_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, gmem, 0);
	assert_true(view != MAP_FAILED);
	/* userspace_addr is a decoy: a gmem-only slot must not use it. */
	vmm_add_slot(&m, 0, GO_PAGES * PAGE, gmem, 0, decoy);
	vmm_guest(&m, 0, guest_gmem_only, NULL);
	assert_int_equal(expect_sync(&m, 0), 1);
	for (uint64_t p = 0; p < GO_PAGES; p++) {
		assert_int_equal(*(uint64_t *)(view + p * PAGE + 16), pattern(p * PAGE, 11));
		assert_int_equal(*(uint64_t *)(decoy + p * PAGE + 16), 0);
		*(uint64_t *)(view + p * PAGE + 16) = pattern(p * PAGE, 12);
	}
	assert_int_equal(expect_sync(&m, 0), 2);
	vmm_stats(&m, &before);
	assert_int_equal(pm_kvm_fallocate(gmem, PUNCH, 3 * PAGE, PAGE), 0);
	vmm_stats(&m, &after);
	assert_int_equal(pages_mapped(&after), pages_mapped(&before) - 1);   /* shared, yet unmapped */
	expect_done(&m, 0);
	assert_int_equal(*(uint64_t *)(view + 3 * PAGE + 16), 0);
	assert_int_equal(pm_kvm_munmap(view, GO_PAGES * PAGE), 0);
	vmm_destroy(&m);
	munmap(decoy, decoy_len);
}

/* ---- TLB shootdown ------------------------------------------------------------------ */


#define OLD_VALUE(p)  (0x01d0000000000000ULL | (p))
#define UNMAPPED_PAGE (512 + 1)
#define FORBIDDEN     0xf0bdf0bdf0bdf0bdULL

/*
 * Deterministic part. The guest reads a shared page (its TLB now caches the
 * VMM's mapping of it) and then spins in guest mode without touching guest
 * memory, as a vCPU executing instructions would. A VMM thread converts the
 * page to private. The shootdown must wait for this vCPU, which may still
 * be using its TLB entry, so KVM_SET_MEMORY_ATTRIBUTES cannot return while
 * the guest spins: we give it 200 ms and require it to be still blocked.
 * A shootdown that did not wait returns at once and fails the check.
 */
struct hold_arg {
	atomic_bool holding, release;
};

static void guest_hold_tlb_entry(struct pm_guest *g, void *arg)
{
	struct hold_arg *a = arg;

	PM_GUEST_ASSERT(g, pm_guest_read64(g, 0) == OLD_VALUE(0));
	atomic_store(&a->holding, true);
	while (!atomic_load(&a->release))
		sched_yield();                  /* in guest mode, no guest memory access */
	pm_guest_sync(g, pm_guest_read64(g, 0));
}

struct thread_run {
	struct vmm *m;
	int r, err;
	uint64_t ucall;
	uint64_t arg0;
	char msg[256];
};

static void *run_to_ucall(void *arg)
{
	struct thread_run *t = arg;
	struct pm_ucall uc = { 0 };

	t->r = pm_kvm_ioctl(t->m->vcpu[0], KVM_RUN, 0);
	t->err = errno;
	if (t->r)
		snprintf(t->msg, sizeof(t->msg), "KVM_RUN: %s, exit %u, gpa %#llx", strerror(t->err),
			 t->m->run[0]->exit_reason, (unsigned long long)t->m->run[0]->memory_fault.gpa);
	t->ucall = pm_get_ucall(t->m->vcpu[0], &uc);
	t->arg0 = uc.args[0];
	if (t->ucall != PM_UCALL_NONE)
		memcpy(t->msg, uc.msg, sizeof(t->msg));
	return NULL;
}

struct convert_thread {
	struct vmm *m;
	struct slot *s;
	uint64_t page;           /* which page of the slot to convert */
	int r;
	atomic_bool returned;
};

static void *convert_page0(void *arg)
{
	struct convert_thread *c = arg;

	c->r = set_attr(c->m->vm, c->s->gpa + c->page * PAGE, PAGE, true);
	atomic_store(&c->returned, true);
	/* After the conversion returned, the VMM reuses its copy of the page. */
	for (int i = 0; i < 512; i++)
		atomic_store_explicit(&((_Atomic uint64_t *)(c->s->shared + c->page * PAGE))[i],
				      FORBIDDEN, memory_order_relaxed);
	return NULL;
}

/* The guest holds page 0 in its TLB while a VMM thread converts the page to
 * private; the guest is released 200 ms later. */
struct hold_result {
	bool returned_early;             /* the conversion returned before the release */
	int convert_r;
	struct thread_run t;             /* the KVM_RUN that ran while converting */
	struct pm_vm_stats st;
};

/* page: the page converted (0 is the one the guest holds; UNMAPPED_PAGE,
 * in the slot's other 2M, was never mapped, even by a huge mapping of page
 * 0); in_flight: pretend another zap is between its first entry
 * change and the end of its shootdown. */
static void hold_and_convert_page(struct hold_result *res, uint64_t page, bool in_flight)
{
	struct hold_arg a = { 0 };
	struct convert_thread c = { 0 };
	pthread_t vt, ct;
	struct slot *s;
	struct vmm m;
	double end;
	int gmem;

	memset(res, 0, sizeof(*res));
	vmm_create(&m, KVM_X86_SW_PROTECTED_VM, 1);
	gmem = vmm_create_gmem(&m, 4 * MIB, 0);
	s = vmm_add_slot(&m, 0, 4 * MIB, gmem, 0, NULL);
	*(uint64_t *)s->shared = OLD_VALUE(0);
	vmm_guest(&m, 0, guest_hold_tlb_entry, &a);
	res->t.m = &m;
	assert_int_equal(pthread_create(&vt, NULL, run_to_ucall, &res->t), 0);
	end = now_s() + 30;
	while (!atomic_load(&a.holding) && now_s() < end)
		sched_yield();
	c.m = &m;
	c.s = s;
	c.page = page;
	if (in_flight)
		atomic_fetch_add(&pm_test_vm_of(m.vm)->mmu->zaps_in_flight, 1);
	assert_int_equal(pthread_create(&ct, NULL, convert_page0, &c), 0);
	usleep(200 * 1000);
	/* A conversion that must not wait gets as long as a loaded machine
	 * needs; one that must wait is still blocked after any time. */
	end = now_s() + 20;
	while (page == UNMAPPED_PAGE && !in_flight && !atomic_load(&c.returned) && now_s() < end)
		usleep(1000);
	res->returned_early = atomic_load(&c.returned);
	atomic_store(&a.release, true);
	pthread_join(ct, NULL);
	pthread_join(vt, NULL);
	if (in_flight)
		atomic_fetch_sub(&pm_test_vm_of(m.vm)->mmu->zaps_in_flight, 1);
	res->convert_r = c.r;
	assert_true(atomic_load(&a.holding));
	vmm_stats(&m, &res->st);
	/* Let the guest finish if it is only suspended at its SYNC. */
	if (res->t.r == 0 && res->t.ucall == PM_UCALL_SYNC)
		expect_done(&m, 0);
	vmm_destroy(&m);
}

static void hold_and_convert(struct hold_result *res)
{
	hold_and_convert_page(res, 0, false);
}

static void test_zap_waits_for_a_vcpu_in_guest_mode(void **state)
{
	struct hold_result res;

	hold_and_convert(&res);
	assert_false(res.returned_early);
	assert_int_equal(res.convert_r, 0);
	assert_true(res.st.tlb_shootdowns > 0);
}

/* A conversion of a page no TLB can hold (never mapped) zaps nothing and
 * shoots nothing down: it returns while the guest spins. */
static void test_zap_of_nothing_does_not_wait(void **state)
{
	struct hold_result res;

	hold_and_convert_page(&res, UNMAPPED_PAGE, false);
	assert_true(res.returned_early);
	assert_int_equal(res.convert_r, 0);
	assert_int_equal(res.st.tlb_shootdowns, 0);
}

/* ... unless another zap may have emptied the entry and not finished its
 * shootdown: then it waits for the vCPUs like that zap. */
static void test_zap_of_nothing_waits_while_another_zap_is_in_flight(void **state)
{
	struct hold_result res;

	hold_and_convert_page(&res, UNMAPPED_PAGE, true);
	assert_false(res.returned_early);
	assert_int_equal(res.convert_r, 0);
	assert_true(res.st.tlb_shootdowns > 0);
}

/* Released, the guest's next access faults while the conversion is still
 * in progress (the zap was waiting for this very vCPU): it read the
 * attribute before the conversion stored it. The access must follow the
 * new attribute - the fresh private page - rather than end in a memory-
 * fault exit for a "shared" access the guest never made. */
static void test_access_racing_a_conversion_follows_the_new_attribute_without_exit(void **state)
{
	struct hold_result res;

	hold_and_convert(&res);
	if (res.t.r)
		fail_msg("%s", res.t.msg);
	if (res.t.ucall == PM_UCALL_ABORT)
		fail_msg("guest aborted: %s", res.t.msg);
	assert_int_equal(res.t.ucall, PM_UCALL_SYNC);
	assert_int_equal(res.t.arg0, 0);              /* the fresh private page */
	assert_int_equal(res.st.exits[PM_STAT_EXITS_MEMORY_FAULT], 0);
}

/*
 * Stress part. Round r: the guest reads page r again and again (whole-page
 * reads, to widen the window in which an access uses a TLB entry); the VMM
 * converts page r to private and then writes FORBIDDEN over its own copy of
 * the page. Every word the guest reads must be the page's old value (read
 * before the zap) or zero (the fresh private page, after it). Seeing
 * FORBIDDEN means an access used the VMM's page after the conversion had
 * returned, i.e. the shootdown did not wait for that access to finish.
 */
#define TLB_ROUNDS 64

struct tlb_stress {
	atomic_uint cur;
	atomic_uint_fast64_t reads;
	atomic_bool stop;
};

static void guest_tlb_stress(struct pm_guest *g, void *arg)
{
	struct tlb_stress *a = arg;
	uint64_t buf[512];

	while (!atomic_load(&a->stop)) {
		uint64_t p = atomic_load(&a->cur);

		pm_guest_read(g, p * PAGE, buf, sizeof(buf));
		for (int i = 0; i < 512; i++)
			PM_GUEST_ASSERT(g, buf[i] == OLD_VALUE(p) || buf[i] == 0);
		atomic_fetch_add(&a->reads, 1);
	}
}

static bool wait_reads(struct tlb_stress *a, uint64_t at_least)
{
	double end = now_s() + 30;

	while (atomic_load(&a->reads) < at_least)
		if (now_s() > end)
			return false;
		else
			sched_yield();
	return true;
}

static void test_guest_never_sees_the_old_page_after_a_zap_returned(void **state)
{
	struct tlb_stress a = { 0 };
	struct thread_run t = { 0 };
	struct pm_vm_stats st;
	bool ok = true;
	struct slot *s;
	pthread_t vt;
	struct vmm m;
	int gmem, r = 0;

	vmm_create(&m, KVM_X86_SW_PROTECTED_VM, 1);
	gmem = vmm_create_gmem(&m, 2 * MIB, 0);
	s = vmm_add_slot(&m, 0, 2 * MIB, gmem, 0, NULL);
	for (uint64_t p = 0; p < TLB_ROUNDS; p++)
		for (int i = 0; i < 512; i++)
			((uint64_t *)(s->shared + p * PAGE))[i] = OLD_VALUE(p);
	vmm_guest(&m, 0, guest_tlb_stress, &a);
	t.m = &m;
	assert_int_equal(pthread_create(&vt, NULL, run_to_ucall, &t), 0);
	for (unsigned int p = 0; p < TLB_ROUNDS && ok; p++) {
		atomic_store(&a.cur, p);
		ok = wait_reads(&a, atomic_load(&a.reads) + 20);   /* page p is in the TLB */
		r |= set_attr(m.vm, p * PAGE, PAGE, true);
		for (int i = 0; i < 512; i++)
			atomic_store_explicit(&((_Atomic uint64_t *)(s->shared + p * PAGE))[i], FORBIDDEN,
					      memory_order_relaxed);
		ok = ok && wait_reads(&a, atomic_load(&a.reads) + 20);
	}
	atomic_store(&a.stop, true);
	pthread_join(vt, NULL);
	if (t.ucall == PM_UCALL_ABORT)
		fail_msg("guest saw the VMM's page after the zap: %s", t.msg);
	if (t.r)
		fail_msg("%s", t.msg);
	assert_int_equal(t.ucall, PM_UCALL_DONE);
	assert_true(ok);
	assert_int_equal(r, 0);
	vmm_stats(&m, &st);
	assert_true(st.tlb_shootdowns >= TLB_ROUNDS);
	vmm_destroy(&m);
}

/* ---- concurrent faults, conversions and punches ------------------------------------------- */

/*
 * Layout of the 8 MiB region: page p belongs to vCPU p % 4 if p % 4 < 2
 * (its owner), else to the VMM's chaos threads (pairs p % 4 == 2, 3).
 *
 * Invariant, per owned page: only its owner changes it, by writing stamps
 * and by asking the VMM to convert it (MAP_GPA_RANGE, handled vmm-style on
 * the owner's own thread: attribute, then discard the copy left behind).
 * So the owner knows its exact content at any time: the last stamp it
 * wrote since the last conversion, or zero after a conversion (the copy of
 * the new kind was discarded at the previous conversion, or never
 * written). Chaos conversions and punches of the pages around it (same 2M
 * blocks, same guest_memfd huge pages) must never change it: a read that
 * differs is another page's data, stale data or lost data.
 *
 * Chaos pages are never written by the guest. Their VMM copy holds 0 or
 * the page's chaos pattern while they are shared; after a conversion to
 * private has returned, the VMM writes FORBIDDEN into its copy (it reuses
 * the memory), and overwrites it with the pattern before converting back.
 * A chaos thread owns a pair for the whole of one operation, so the guest
 * may read 0 or the pattern, never FORBIDDEN: that would be an access
 * through a shared mapping that the conversion should have zapped (and
 * shot down) before returning. A vCPU's access to a chaos page may race a
 * conversion; the VMM re-runs after a memory-fault exit on a chaos page.
 */
#define ST_PAGES   2048
#define ST_OWNED   (ST_PAGES / 4)
#define ST_ITERS   3000
#define ST_HOT     8                  /* chaos pairs the vCPUs read */

static uint64_t stamp(unsigned int vcpu, unsigned int it, uint64_t k)
{
	return 0x5700000000000000ULL | (uint64_t)vcpu << 48 | (uint64_t)it << 16 | k;
}

static uint64_t chaos_pattern(uint64_t page)
{
	return 0xc4a0500000000000ULL | page;
}

struct stress_vcpu {
	unsigned int id;
	unsigned int seed;
	uint64_t expected[ST_OWNED];     /* written by the guest, read by the VMM at the end */
	bool private[ST_OWNED];
	uint64_t conversions, chaos_reads;
};

static uint64_t owned_gpa(unsigned int vcpu, uint64_t k)
{
	return (4 * k + vcpu) * PAGE;
}

static void guest_check_owned(struct pm_guest *g, struct stress_vcpu *a, uint64_t k)
{
	uint64_t gpa = owned_gpa(a->id, k);

	PM_GUEST_ASSERT(g, pm_guest_read64(g, gpa) == a->expected[k]);
	PM_GUEST_ASSERT(g, pm_guest_read64(g, gpa + PAGE - 8) == a->expected[k]);
}

static void guest_stress(struct pm_guest *g, void *arg)
{
	struct stress_vcpu *a = arg;

	for (unsigned int it = 1; it <= ST_ITERS; it++) {
		uint64_t k = (uint64_t)rand_r(&a->seed) % ST_OWNED;
		uint64_t gpa = owned_gpa(a->id, k);
		unsigned int op = (unsigned int)rand_r(&a->seed) % 8;

		if (op < 5) {                    /* stamp both ends, read back */
			uint64_t s = stamp(a->id, it, k);

			pm_guest_write64(g, gpa, s);
			pm_guest_write64(g, gpa + PAGE - 8, s);
			a->expected[k] = s;
			guest_check_owned(g, a, k);
		} else if (op == 5) {
			guest_check_owned(g, a, k);
		} else if (op == 6) {            /* convert it to the other kind */
			bool to_private = !a->private[k];
			long r = pm_guest_hypercall(g, KVM_HC_MAP_GPA_RANGE, gpa, 1,
						    to_private ? KVM_MAP_GPA_RANGE_ENCRYPTED
							       : KVM_MAP_GPA_RANGE_DECRYPTED, 0);

			PM_GUEST_ASSERT(g, r == 0);
			a->private[k] = to_private;
			a->expected[k] = 0;
			a->conversions++;
			guest_check_owned(g, a, k);
		} else {                         /* a hot chaos page, a few times */
			uint64_t c = 4 * (k % ST_HOT) + 2 + (uint64_t)(it & 1);

			for (int i = 0; i < 8; i++) {
				uint64_t v = pm_guest_read64(g, c * PAGE);

				PM_GUEST_ASSERT(g, v == 0 || v == chaos_pattern(c));
				a->chaos_reads++;
			}
		}
		if (it % 500 == 0) {
			for (uint64_t j = 0; j < ST_OWNED; j++)
				guest_check_owned(g, a, j);
			pm_guest_sync(g, it);
		}
	}
}

struct stress_ctx {
	struct vmm *m;
	struct slot *s;
	int gmem;
	atomic_bool stop;
	atomic_bool pair_busy[ST_OWNED];     /* a chaos thread is converting the pair */
	atomic_uint_fast64_t chaos_ops, owner_faults, chaos_faults;
};

/* vmm_convert of tools/vmm.c: attribute, then discard the copy left behind. */
static int vmm_convert(struct stress_ctx *x, uint64_t gpa, uint64_t size, bool to_private)
{
	if (set_attr(x->m->vm, gpa, size, to_private))
		return -errno;
	if (to_private)
		return madvise(x->s->shared + gpa, size, MADV_DONTNEED) ? -errno : 0;
	return pm_kvm_fallocate(x->gmem, PUNCH, (off_t)gpa, (off_t)size) ? -errno : 0;
}

struct stress_thread {
	struct stress_ctx *x;
	int i;
	int err;
	char msg[300];
};

static void *stress_vcpu_main(void *arg)
{
	struct stress_thread *t = arg;
	struct stress_ctx *x = t->x;
	struct kvm_run *run = x->m->run[t->i];

	for (;;) {
		struct pm_ucall uc;

		if (pm_kvm_ioctl(x->m->vcpu[t->i], KVM_RUN, 0)) {
			uint64_t page = run->memory_fault.gpa / PAGE;

			if (errno == EFAULT && run->exit_reason == KVM_EXIT_MEMORY_FAULT && page % 4 >= 2) {
				atomic_fetch_add(&x->chaos_faults, 1);
				continue;       /* a chaos page changed under the fault: retry */
			}
			atomic_fetch_add(&x->owner_faults, 1);
			snprintf(t->msg, sizeof(t->msg), "KVM_RUN: %s, exit %u, gpa %#llx", strerror(errno),
				 run->exit_reason, (unsigned long long)run->memory_fault.gpa);
			return NULL;
		}
		switch (run->exit_reason) {
		case KVM_EXIT_HYPERCALL:
			run->hypercall.ret = vmm_convert(x, run->hypercall.args[0],
							 run->hypercall.args[1] * PAGE,
							 run->hypercall.args[2] & KVM_MAP_GPA_RANGE_ENCRYPTED)
					     ? (uint64_t)-KVM_EINVAL : 0;
			break;
		case PM_EXIT_UCALL:
			switch (pm_get_ucall(x->m->vcpu[t->i], &uc)) {
			case PM_UCALL_SYNC:
				break;
			case PM_UCALL_DONE:
				return NULL;
			default:
				snprintf(t->msg, sizeof(t->msg), "guest: %s", uc.msg);
				return NULL;
			}
			break;
		default:
			snprintf(t->msg, sizeof(t->msg), "unexpected exit %u", run->exit_reason);
			return NULL;
		}
	}
}

static void *stress_chaos_main(void *arg)
{
	struct stress_thread *t = arg;
	struct stress_ctx *x = t->x;
	unsigned int seed = 977u * (unsigned int)(t->i + 1);

	while (!atomic_load(&x->stop)) {
		/* Half the operations on the few pairs the vCPUs read. */
		uint64_t pair = (uint64_t)rand_r(&seed) % (rand_r(&seed) & 1 ? ST_HOT : ST_OWNED);
		uint64_t c = 4 * pair + 2;                   /* the pair's first page */
		/* The guest may read the copy meanwhile (a shared page): atomics. */
		_Atomic uint64_t *copy = (_Atomic uint64_t *)(x->s->shared + c * PAGE);
		int r = 0;

		if (atomic_exchange(&x->pair_busy[pair], true))
			continue;
		switch (rand_r(&seed) % 3) {
		case 0:
			r = vmm_convert(x, c * PAGE, 2 * PAGE, true);
			atomic_store_explicit(&copy[0], FORBIDDEN, memory_order_relaxed);
			atomic_store_explicit(&copy[512], FORBIDDEN, memory_order_relaxed);
			break;
		case 1:
			atomic_store_explicit(&copy[0], chaos_pattern(c), memory_order_relaxed);
			atomic_store_explicit(&copy[512], chaos_pattern(c + 1), memory_order_relaxed);
			r = vmm_convert(x, c * PAGE, 2 * PAGE, false);
			break;
		default:
			r = pm_kvm_fallocate(x->gmem, PUNCH, (off_t)(c * PAGE), 2 * PAGE) ? -errno : 0;
			break;
		}
		atomic_store(&x->pair_busy[pair], false);
		if (r) {
			t->err = -r;
			return NULL;
		}
		atomic_fetch_add(&x->chaos_ops, 1);
	}
	return NULL;
}

static void test_vcpus_fault_while_vmm_threads_convert_and_punch(void **state)
{
	struct stress_vcpu *sv = calloc(MAX_VCPUS, sizeof(*sv));
	struct stress_thread vt[MAX_VCPUS], ct[2];
	pthread_t vtid[MAX_VCPUS], ctid[2];
	struct stress_ctx x = { 0 };
	struct pm_vm_stats st;
	uint64_t baseline;
	struct vmm m;
	int kvm;

	assert_non_null(sv);
	kvm = pm_kvm_open();
	baseline = pool_in_use(kvm);
	vmm_create(&m, KVM_X86_SW_PROTECTED_VM, MAX_VCPUS);
	x.m = &m;
	x.gmem = vmm_create_gmem(&m, ST_PAGES * PAGE, 0);
	x.s = vmm_add_slot(&m, 0, ST_PAGES * PAGE, x.gmem, 0, NULL);
	{
		struct kvm_enable_cap cap = { .cap = KVM_CAP_EXIT_HYPERCALL,
					      .args = { 1ULL << KVM_HC_MAP_GPA_RANGE } };

		assert_int_equal(pm_kvm_ioctl(m.vm, KVM_ENABLE_CAP, &cap), 0);
	}
	for (int i = 0; i < MAX_VCPUS; i++) {
		sv[i].id = (unsigned int)i;
		sv[i].seed = 12345u + (unsigned int)i;
		vmm_guest(&m, i, guest_stress, &sv[i]);
	}
	for (int i = 0; i < 2; i++) {
		ct[i] = (struct stress_thread){ .x = &x, .i = i };
		assert_int_equal(pthread_create(&ctid[i], NULL, stress_chaos_main, &ct[i]), 0);
	}
	for (int i = 0; i < MAX_VCPUS; i++) {
		vt[i] = (struct stress_thread){ .x = &x, .i = i };
		assert_int_equal(pthread_create(&vtid[i], NULL, stress_vcpu_main, &vt[i]), 0);
	}
	for (int i = 0; i < MAX_VCPUS; i++)
		pthread_join(vtid[i], NULL);
	atomic_store(&x.stop, true);
	for (int i = 0; i < 2; i++)
		pthread_join(ctid[i], NULL);

	for (int i = 0; i < MAX_VCPUS; i++)
		if (vt[i].msg[0])
			fail_msg("vCPU %d: %s", i, vt[i].msg);
	for (int i = 0; i < 2; i++)
		assert_int_equal(ct[i].err, 0);
	assert_int_equal(atomic_load(&x.owner_faults), 0);
	assert_true(atomic_load(&x.chaos_ops) > 0);
	/* Quiescent: shared owned pages hold the owner's data in the VMM's copy;
	 * private ones left nothing there. */
	for (int i = 0; i < MAX_VCPUS; i++) {
		assert_true(sv[i].conversions > 0);
		for (uint64_t k = 0; k < ST_OWNED; k++) {
			const uint8_t *host = x.s->shared + owned_gpa((unsigned int)i, k);
			uint64_t want = sv[i].private[k] ? 0 : sv[i].expected[k];

			assert_int_equal(*(const uint64_t *)host, want);
			assert_int_equal(*(const uint64_t *)(host + PAGE - 8), want);
		}
	}
	vmm_stats(&m, &st);
	assert_true(st.invalidations[PM_STAT_INVAL_ATTR] > 0);
	assert_true(st.invalidations[PM_STAT_INVAL_PUNCH] > 0);
	print_message("stress: %llu chaos ops, %llu chaos memory faults, %llu faults (%llu retried), "
		      "%llu shootdowns, %llu splits\n", (unsigned long long)atomic_load(&x.chaos_ops),
		      (unsigned long long)atomic_load(&x.chaos_faults), (unsigned long long)st.faults,
		      (unsigned long long)st.fault_retries, (unsigned long long)st.tlb_shootdowns,
		      (unsigned long long)st.splits);
	vmm_destroy(&m);
	assert_int_equal(pool_in_use(kvm), baseline);     /* no frame leaked */
	pm_kvm_close(kvm);
	free(sv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_private_fault_on_2m_guest_memfd_maps_2m),
		cmocka_unit_test(test_private_fault_on_1g_guest_memfd_maps_1g),
		cmocka_unit_test(test_private_fault_on_no_huge_guest_memfd_maps_4k),
		cmocka_unit_test(test_conversion_with_the_pool_exhausted_unmaps_the_whole_huge_page),
		cmocka_unit_test(test_guest_fault_with_the_pool_exhausted_is_enomem),
		cmocka_unit_test(test_bad_host_addresses_are_efault_exits),
		cmocka_unit_test(test_slot_misaligned_with_its_file_or_smaller_than_the_huge_page_maps_4k),
		cmocka_unit_test(test_mixed_2m_range_maps_its_private_pages_4k),
		cmocka_unit_test(test_converting_one_page_splits_the_2m_mapping_and_keeps_the_rest),
		cmocka_unit_test(test_punched_private_page_reads_zero_and_never_reaches_the_host),
		cmocka_unit_test(test_default_vm_refuses_the_private_attribute),
		cmocka_unit_test(test_gmem_only_slot_serves_shared_faults_in_place_from_guest_memfd),
		cmocka_unit_test(test_zap_waits_for_a_vcpu_in_guest_mode),
		cmocka_unit_test(test_zap_of_nothing_does_not_wait),
		cmocka_unit_test(test_zap_of_nothing_waits_while_another_zap_is_in_flight),
		cmocka_unit_test(test_access_racing_a_conversion_follows_the_new_attribute_without_exit),
		cmocka_unit_test(test_guest_never_sees_the_old_page_after_a_zap_returned),
		cmocka_unit_test(test_vcpus_fault_while_vmm_threads_convert_and_punch),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

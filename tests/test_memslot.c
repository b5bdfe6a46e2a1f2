/* SPDX-License-Identifier: MIT */
/*
 * Tests of KVM_SET_USER_MEMORY_REGION(2) (src/memslot/memslot.c through the
 * uAPI): every validation rule with the errno Linux gives, requests with two
 * faults answered in Linux's order, create / move / flags-only / delete as
 * pm_memslot_lookup() sees them at the first, last and one-past gfns, GPA
 * overlap, the invalidation a deletion causes, guest_memfd binding and
 * unbinding, the full 32764 slots, gmem-only slots, lookups racing with
 * slot updates, and the fault's check of the VMM's memory when the slot it
 * looked up has moved or gone since.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "lib/testutil.h"
#include "lib/zaplog.h"

#include <pthread.h>
#include <sys/mman.h>

#include <privmem/privmem.h>
#include "kvm/vm.h"
#include "lib/rcu.h"
#include "memslot/invalidate.h"
#include "memslot/memslot.h"
#include "uapi/handle.h"

#define PAGE        4096ULL
#define NR_SLOTS    32764u
#define TASK_MAX    0x00007ffffffff000ULL     /* x86-64 TASK_SIZE_MAX */
#define UADDR       0x10000000ULL             /* any page-aligned user address */
#define NO_FD       0xffffffffu               /* never an open handle */
#define GMEM        KVM_MEM_GUEST_MEMFD
#define LOG_DIRTY   KVM_MEM_LOG_DIRTY_PAGES
#define READONLY    KVM_MEM_READONLY


/* ---- fixture: a VM with a zap consumer that logs invalidations ---------- */

static int setup_default(void **state) { return pm_fx_setup(state, KVM_X86_DEFAULT_VM); }
static int setup_sw(void **state) { return pm_fx_setup(state, KVM_X86_SW_PROTECTED_VM); }

static int teardown(void **state)
{
	return pm_fx_teardown(state);
}

static int fx_nr_zaps(struct fx *fx)
{
	return (int)pm_zaplog_count(&fx->log);
}

/* ---- helpers ------------------------------------------------------------ */

static int set_mem2(int vmh, uint32_t slot, uint32_t flags, uint64_t gpa, uint64_t size,
		    uint64_t uaddr, uint32_t gfd, uint64_t off)
{
	struct kvm_userspace_memory_region2 m = {
		.slot = slot, .flags = flags, .guest_phys_addr = gpa, .memory_size = size,
		.userspace_addr = uaddr, .guest_memfd = gfd, .guest_memfd_offset = off,
	};

	return pm_kvm_ioctl(vmh, KVM_SET_USER_MEMORY_REGION2, &m);
}

/* A normal (non-guest_memfd) slot. */
static int set_mem(int vmh, uint32_t slot, uint32_t flags, uint64_t gpa, uint64_t size,
		   uint64_t uaddr)
{
	return set_mem2(vmh, slot, flags, gpa, size, uaddr, 0, 0);
}

static int set_mem1(int vmh, uint32_t slot, uint32_t flags, uint64_t gpa, uint64_t size,
		    uint64_t uaddr)
{
	struct kvm_userspace_memory_region m = {
		.slot = slot, .flags = flags, .guest_phys_addr = gpa, .memory_size = size,
		.userspace_addr = uaddr,
	};

	return pm_kvm_ioctl(vmh, KVM_SET_USER_MEMORY_REGION, &m);
}

static int create_gmem(int vmh, uint64_t size, uint64_t flags)
{
	struct kvm_create_guest_memfd args = { .size = size, .flags = flags };
	int h = pm_kvm_ioctl(vmh, KVM_CREATE_GUEST_MEMFD, &args);

	assert_true(h >= 0);
	return h;
}

static void *gmem_obj(int h)
{
	struct pm_file f;

	assert_int_equal(pm_handle_get(h, &f), 0);
	assert_int_equal(f.kind, PM_HANDLE_GMEM);
	pm_file_put(&f);        /* the handle keeps it alive */
	return f.obj;
}

/* A copy of the slot containing gfn, taken inside an RCU read section. */
struct slot_view {
	bool found;
	uint32_t id, flags;
	gfn_t base_gfn;
	uint64_t npages, userspace_addr, gmem_pgoff;
	void *gmem;
	bool gmem_only;
};

static struct slot_view lookup(struct pm_vm *vm, gfn_t gfn)
{
	struct slot_view v = { 0 };
	struct pm_memslot *s;

	pm_rcu_read_lock();
	s = pm_memslot_lookup(vm, gfn);
	if (s) {
		v = (struct slot_view){
			.found = true, .id = s->id, .flags = s->flags, .base_gfn = s->base_gfn,
			.npages = s->npages, .userspace_addr = s->userspace_addr,
			.gmem_pgoff = s->gmem_pgoff,
			.gmem = atomic_load_explicit(&s->gmem, memory_order_acquire),
			.gmem_only = s->gmem_only,
		};
	}
	pm_rcu_read_unlock();
	return v;
}

static void assert_no_slot_at(struct pm_vm *vm, gfn_t gfn)
{
	assert_false(lookup(vm, gfn).found);
}

/* Slot `id` spans exactly [gpa, gpa + size): found at its first and last
 * gfn with these fields, absent just before and just after. */
static void assert_slot_spans(struct pm_vm *vm, uint32_t id, uint32_t flags, uint64_t gpa,
			      uint64_t size, uint64_t uaddr)
{
	gfn_t first = gpa / PAGE, last = (gpa + size) / PAGE - 1;
	gfn_t probes[] = { first, last };

	for (size_t i = 0; i < PM_ARRAY_SIZE(probes); i++) {
		struct slot_view v = lookup(vm, probes[i]);

		assert_true(v.found);
		assert_int_equal(v.id, id);
		assert_int_equal(v.flags, flags);
		assert_int_equal(v.base_gfn, first);
		assert_int_equal(v.npages, size / PAGE);
		assert_int_equal(v.userspace_addr, uaddr);
	}
	if (first > 0)
		assert_no_slot_at(vm, first - 1);
	assert_no_slot_at(vm, last + 1);
}

/* ---- validation, one rule at a time ------------------------------------- */

static void test_slot_id_at_or_past_32764_is_einval(void **state)
{
	struct fx *fx = *state;

	assert_fails(set_mem(fx->vmh, NR_SLOTS, 0, 0, PAGE, UADDR), EINVAL);
	assert_fails(set_mem(fx->vmh, 0xffff, 0, 0, PAGE, UADDR), EINVAL);
	assert_int_equal(set_mem(fx->vmh, NR_SLOTS - 1, 0, 0, PAGE, UADDR), 0);
}

static void test_address_space_other_than_zero_is_einval(void **state)
{
	struct fx *fx = *state;

	assert_fails(set_mem(fx->vmh, 1u << 16, 0, 0, PAGE, UADDR), EINVAL);
	assert_fails(set_mem(fx->vmh, (1u << 16) | 5, 0, 0, PAGE, UADDR), EINVAL);
	assert_fails(set_mem(fx->vmh, 0xffff0000u, 0, 0, PAGE, UADDR), EINVAL);
	assert_no_slot_at(fx->vm, 0);
}

static void test_unknown_flag_is_einval(void **state)
{
	struct fx *fx = *state;

	assert_fails(set_mem(fx->vmh, 0, 1u << 3, 0, PAGE, UADDR), EINVAL);
	assert_fails(set_mem(fx->vmh, 0, 1u << 31, 0, PAGE, UADDR), EINVAL);
}

static void test_log_dirty_and_readonly_slots_are_accepted(void **state)
{
	struct fx *fx = *state;

	assert_int_equal(set_mem(fx->vmh, 0, LOG_DIRTY, 0, PAGE, UADDR), 0);
	assert_int_equal(set_mem(fx->vmh, 1, READONLY, PAGE, PAGE, UADDR), 0);
	assert_int_equal(set_mem(fx->vmh, 2, LOG_DIRTY | READONLY, 2 * PAGE, PAGE, UADDR), 0);
	assert_int_equal(lookup(fx->vm, 2).flags, LOG_DIRTY | READONLY);
}

static void test_guest_memfd_with_log_dirty_or_readonly_is_einval(void **state)
{
	struct fx *fx = *state;
	int g = create_gmem(fx->vmh, 16 * PAGE, 0);

	assert_fails(set_mem2(fx->vmh, 0, GMEM | LOG_DIRTY, 0, PAGE, UADDR, g, 0), EINVAL);
	assert_fails(set_mem2(fx->vmh, 0, GMEM | READONLY, 0, PAGE, UADDR, g, 0), EINVAL);
	assert_no_slot_at(fx->vm, 0);
	assert_int_equal(pm_kvm_close(g), 0);
}

static void test_v1_ioctl_with_guest_memfd_flag_is_einval(void **state)
{
	struct fx *fx = *state;
	int g = create_gmem(fx->vmh, 16 * PAGE, 0);

	/* v1 has no guest_memfd field: the flag alone is refused. */
	assert_fails(set_mem1(fx->vmh, 0, GMEM, 0, PAGE, UADDR), EINVAL);
	assert_no_slot_at(fx->vm, 0);
	/* v1 still creates normal slots. */
	assert_int_equal(set_mem1(fx->vmh, 0, LOG_DIRTY, 0, PAGE, UADDR), 0);
	assert_slot_spans(fx->vm, 0, LOG_DIRTY, 0, PAGE, UADDR);
	assert_int_equal(pm_kvm_close(g), 0);
}

static void test_unaligned_size_is_einval(void **state)
{
	struct fx *fx = *state;

	assert_fails(set_mem(fx->vmh, 0, 0, 0, PAGE + 1, UADDR), EINVAL);
	assert_fails(set_mem(fx->vmh, 0, 0, 0, PAGE / 2, UADDR), EINVAL);
}

static void test_unaligned_gpa_is_einval(void **state)
{
	struct fx *fx = *state;

	assert_fails(set_mem(fx->vmh, 0, 0, 0x800, PAGE, UADDR), EINVAL);
	assert_fails(set_mem(fx->vmh, 0, 0, PAGE + 1, PAGE, UADDR), EINVAL);
}

static void test_unaligned_userspace_addr_is_einval(void **state)
{
	struct fx *fx = *state;

	assert_fails(set_mem(fx->vmh, 0, 0, 0, PAGE, UADDR + 8), EINVAL);
}

static void test_userspace_range_past_task_size_is_einval(void **state)
{
	struct fx *fx = *state;

	/* Ends exactly at the limit: fine; one page further: not. */
	assert_int_equal(set_mem(fx->vmh, 0, 0, 0, PAGE, TASK_MAX - PAGE), 0);
	assert_fails(set_mem(fx->vmh, 1, 0, PAGE, PAGE, TASK_MAX), EINVAL);
	assert_fails(set_mem(fx->vmh, 1, 0, PAGE, 2 * PAGE, TASK_MAX - PAGE), EINVAL);
	/* A kernel address, and a range that wraps. */
	assert_fails(set_mem(fx->vmh, 1, 0, PAGE, PAGE, 0xffff800000000000ULL), EINVAL);
	assert_fails(set_mem(fx->vmh, 1, 0, PAGE, 2 * PAGE, 0ULL - PAGE), EINVAL);
}

static void test_null_userspace_addr_is_accepted(void **state)
{
	struct fx *fx = *state;

	assert_int_equal(set_mem(fx->vmh, 0, 0, 0, 4 * PAGE, 0), 0);
	assert_slot_spans(fx->vm, 0, 0, 0, 4 * PAGE, 0);
}

static void test_unaligned_guest_memfd_offset_is_einval(void **state)
{
	struct fx *fx = *state;
	int g = create_gmem(fx->vmh, 16 * PAGE, 0);

	assert_fails(set_mem2(fx->vmh, 0, GMEM, 0, PAGE, UADDR, g, 8), EINVAL);
	assert_no_slot_at(fx->vm, 0);
	assert_int_equal(pm_kvm_close(g), 0);
}

static void test_guest_memfd_offset_plus_size_overflow_is_einval(void **state)
{
	struct fx *fx = *state;
	int g = create_gmem(fx->vmh, 16 * PAGE, 0);

	assert_fails(set_mem2(fx->vmh, 0, GMEM, 0, 2 * PAGE, UADDR, g, 0ULL - PAGE), EINVAL);
	assert_no_slot_at(fx->vm, 0);
	assert_int_equal(pm_kvm_close(g), 0);
}

static void test_gpa_plus_size_overflow_is_einval(void **state)
{
	struct fx *fx = *state;

	assert_fails(set_mem(fx->vmh, 0, 0, 0ULL - PAGE, 2 * PAGE, UADDR), EINVAL);
}

static void test_more_than_max_nr_pages_is_einval(void **state)
{
	struct fx *fx = *state;

	/* KVM_MEM_MAX_NR_PAGES is 2^31 - 1. */
	assert_fails(set_mem(fx->vmh, 0, 0, 0, (1ULL << 31) * PAGE, 0), EINVAL);
}

static void test_deleting_a_slot_that_does_not_exist_is_einval(void **state)
{
	struct fx *fx = *state;

	assert_fails(set_mem(fx->vmh, 7, 0, 0, 0, UADDR), EINVAL);
	assert_int_equal(set_mem(fx->vmh, 7, 0, 0, PAGE, UADDR), 0);
	assert_int_equal(set_mem(fx->vmh, 7, 0, 0, 0, UADDR), 0);
	assert_fails(set_mem(fx->vmh, 7, 0, 0, 0, UADDR), EINVAL);
}

static void test_modifying_uaddr_size_or_readonly_of_a_slot_is_einval(void **state)
{
	struct fx *fx = *state;

	assert_int_equal(set_mem(fx->vmh, 3, 0, 16 * PAGE, 4 * PAGE, UADDR), 0);
	assert_fails(set_mem(fx->vmh, 3, 0, 16 * PAGE, 4 * PAGE, UADDR + PAGE), EINVAL);
	assert_fails(set_mem(fx->vmh, 3, 0, 16 * PAGE, 8 * PAGE, UADDR), EINVAL);
	assert_fails(set_mem(fx->vmh, 3, 0, 16 * PAGE, 2 * PAGE, UADDR), EINVAL);
	assert_fails(set_mem(fx->vmh, 3, READONLY, 16 * PAGE, 4 * PAGE, UADDR), EINVAL);
	/* A normal slot cannot become a guest_memfd slot either. */
	{
		int g = create_gmem(fx->vmh, 16 * PAGE, 0);

		assert_fails(set_mem2(fx->vmh, 3, GMEM, 16 * PAGE, 4 * PAGE, UADDR, g, 0), EINVAL);
		assert_int_equal(pm_kvm_close(g), 0);
	}
	assert_slot_spans(fx->vm, 3, 0, 16 * PAGE, 4 * PAGE, UADDR);
	/* Setting what is already there changes nothing and succeeds. */
	assert_int_equal(set_mem(fx->vmh, 3, 0, 16 * PAGE, 4 * PAGE, UADDR), 0);
	assert_slot_spans(fx->vm, 3, 0, 16 * PAGE, 4 * PAGE, UADDR);
}

static void test_guest_memfd_slot_can_only_be_deleted(void **state)
{
	struct fx *fx = *state;
	int g = create_gmem(fx->vmh, 16 * PAGE, 0);

	assert_int_equal(set_mem2(fx->vmh, 2, GMEM, 0, 4 * PAGE, UADDR, g, 0), 0);
	/* Identical, moved, flags dropped, log-dirty added: all refused. */
	assert_fails(set_mem2(fx->vmh, 2, GMEM, 0, 4 * PAGE, UADDR, g, 0), EINVAL);
	assert_fails(set_mem2(fx->vmh, 2, GMEM, 64 * PAGE, 4 * PAGE, UADDR, g, 0), EINVAL);
	assert_fails(set_mem(fx->vmh, 2, 0, 0, 4 * PAGE, UADDR), EINVAL);
	assert_fails(set_mem(fx->vmh, 2, LOG_DIRTY, 0, 4 * PAGE, UADDR), EINVAL);
	assert_slot_spans(fx->vm, 2, GMEM, 0, 4 * PAGE, UADDR);
	assert_int_equal(set_mem(fx->vmh, 2, 0, 0, 0, 0), 0);
	assert_no_slot_at(fx->vm, 0);
	assert_int_equal(pm_kvm_close(g), 0);
}

/* ---- guest_memfd binding errors ----------------------------------------- */

static void test_guest_memfd_handle_not_open_is_ebadf(void **state)
{
	struct fx *fx = *state;
	int g = create_gmem(fx->vmh, 16 * PAGE, 0);

	assert_fails(set_mem2(fx->vmh, 0, GMEM, 0, PAGE, UADDR, NO_FD, 0), EBADF);
	assert_fails(set_mem2(fx->vmh, 0, GMEM, 0, PAGE, UADDR, (uint32_t)g + 1000, 0), EBADF);
	assert_int_equal(pm_kvm_close(g), 0);
	assert_fails(set_mem2(fx->vmh, 0, GMEM, 0, PAGE, UADDR, g, 0), EBADF);
	assert_no_slot_at(fx->vm, 0);
}

static void test_guest_memfd_handle_of_another_kind_is_einval(void **state)
{
	struct fx *fx = *state;
	int vcpu = pm_kvm_ioctl(fx->vmh, KVM_CREATE_VCPU, 0UL);

	assert_true(vcpu >= 0);
	assert_fails(set_mem2(fx->vmh, 0, GMEM, 0, PAGE, UADDR, fx->sys, 0), EINVAL);
	assert_fails(set_mem2(fx->vmh, 0, GMEM, 0, PAGE, UADDR, fx->vmh, 0), EINVAL);
	assert_fails(set_mem2(fx->vmh, 0, GMEM, 0, PAGE, UADDR, vcpu, 0), EINVAL);
	assert_no_slot_at(fx->vm, 0);
	assert_int_equal(pm_kvm_close(vcpu), 0);
}

static void test_guest_memfd_of_another_vm_is_einval(void **state)
{
	struct fx *fx = *state;
	int other = pm_kvm_ioctl(fx->sys, KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM);
	int g;

	assert_true(other >= 0);
	g = create_gmem(other, 16 * PAGE, 0);
	assert_fails(set_mem2(fx->vmh, 0, GMEM, 0, PAGE, UADDR, g, 0), EINVAL);
	assert_no_slot_at(fx->vm, 0);
	/* Its own VM binds it. */
	assert_int_equal(set_mem2(other, 0, GMEM, 0, PAGE, UADDR, g, 0), 0);
	assert_int_equal(pm_kvm_close(g), 0);
	assert_int_equal(pm_kvm_close(other), 0);
}

static void test_guest_memfd_range_past_file_end_is_einval(void **state)
{
	struct fx *fx = *state;
	int g = create_gmem(fx->vmh, 16 * PAGE, 0);

	assert_fails(set_mem2(fx->vmh, 0, GMEM, 0, 17 * PAGE, UADDR, g, 0), EINVAL);
	assert_fails(set_mem2(fx->vmh, 0, GMEM, 0, 2 * PAGE, UADDR, g, 15 * PAGE), EINVAL);
	assert_fails(set_mem2(fx->vmh, 0, GMEM, 0, PAGE, UADDR, g, 16 * PAGE), EINVAL);
	assert_no_slot_at(fx->vm, 0);
	/* The last page, exactly. */
	assert_int_equal(set_mem2(fx->vmh, 0, GMEM, 0, PAGE, UADDR, g, 15 * PAGE), 0);
	assert_int_equal(lookup(fx->vm, 0).gmem_pgoff, 15);
	assert_int_equal(pm_kvm_close(g), 0);
}

static void test_overlapping_guest_memfd_offsets_are_eexist(void **state)
{
	struct fx *fx = *state;
	int g = create_gmem(fx->vmh, 16 * PAGE, 0);

	assert_int_equal(set_mem2(fx->vmh, 0, GMEM, 0, 4 * PAGE, UADDR, g, 4 * PAGE), 0);
	/* File pages [4, 8) are taken: overlap at either end, or containment. */
	assert_fails(set_mem2(fx->vmh, 1, GMEM, 64 * PAGE, 2 * PAGE, UADDR, g, 3 * PAGE), EEXIST);
	assert_fails(set_mem2(fx->vmh, 1, GMEM, 64 * PAGE, 2 * PAGE, UADDR, g, 7 * PAGE), EEXIST);
	assert_fails(set_mem2(fx->vmh, 1, GMEM, 64 * PAGE, 8 * PAGE, UADDR, g, 2 * PAGE), EEXIST);
	assert_no_slot_at(fx->vm, 64);
	/* Adjacent ranges on both sides are free. */
	assert_int_equal(set_mem2(fx->vmh, 1, GMEM, 64 * PAGE, 4 * PAGE, UADDR, g, 0), 0);
	assert_int_equal(set_mem2(fx->vmh, 2, GMEM, 128 * PAGE, 8 * PAGE, UADDR, g, 8 * PAGE), 0);
	assert_int_equal(lookup(fx->vm, 128).gmem_pgoff, 8);
	assert_int_equal(pm_kvm_close(g), 0);
}

/* ---- two faults: Linux's order decides the errno ------------------------- */

static void test_order_slot_id_before_overlap(void **state)
{
	struct fx *fx = *state;

	assert_int_equal(set_mem(fx->vmh, 0, 0, 0, 4 * PAGE, UADDR), 0);
	assert_fails(set_mem(fx->vmh, NR_SLOTS, 0, 0, 4 * PAGE, UADDR), EINVAL);
	assert_fails(set_mem(fx->vmh, 1u << 16 | 1, 0, 0, 4 * PAGE, UADDR), EINVAL);
}

static void test_order_sanity_checks_before_bad_guest_memfd_handle(void **state)
{
	struct fx *fx = *state;

	/* Each request also names a handle that is not open (EBADF), which
	 * Linux only looks at when binding, after every other check. */
	assert_fails(set_mem2(fx->vmh, NR_SLOTS, GMEM, 0, PAGE, UADDR, NO_FD, 0), EINVAL);
	assert_fails(set_mem2(fx->vmh, 0, GMEM | READONLY, 0, PAGE, UADDR, NO_FD, 0), EINVAL);
	assert_fails(set_mem2(fx->vmh, 0, GMEM, 0, PAGE + 1, UADDR, NO_FD, 0), EINVAL);
	assert_fails(set_mem2(fx->vmh, 0, GMEM, 1, PAGE, UADDR, NO_FD, 0), EINVAL);
	assert_fails(set_mem2(fx->vmh, 0, GMEM, 0, PAGE, UADDR + 1, NO_FD, 0), EINVAL);
	assert_fails(set_mem2(fx->vmh, 0, GMEM, 0, PAGE, UADDR, NO_FD, 1), EINVAL);
	assert_fails(set_mem2(fx->vmh, 1u << 16, GMEM, 0, PAGE, UADDR, NO_FD, 0), EINVAL);
	assert_fails(set_mem2(fx->vmh, 0, GMEM, 0ULL - PAGE, 2 * PAGE, UADDR, NO_FD, 0), EINVAL);
	/* Deleting a slot that does not exist. */
	assert_fails(set_mem2(fx->vmh, 0, GMEM, 0, 0, UADDR, NO_FD, 0), EINVAL);
}

static void test_order_modify_check_before_bad_guest_memfd_handle(void **state)
{
	struct fx *fx = *state;

	assert_int_equal(set_mem(fx->vmh, 0, 0, 0, PAGE, UADDR), 0);
	assert_fails(set_mem2(fx->vmh, 0, GMEM, 0, PAGE, UADDR, NO_FD, 0), EINVAL);
}

static void test_order_overlap_before_bad_guest_memfd_handle(void **state)
{
	struct fx *fx = *state;

	assert_int_equal(set_mem(fx->vmh, 0, 0, 0, 4 * PAGE, UADDR), 0);
	assert_fails(set_mem2(fx->vmh, 1, GMEM, 2 * PAGE, 4 * PAGE, UADDR, NO_FD, 0), EEXIST);
	assert_fails(set_mem2(fx->vmh, 1, GMEM, 2 * PAGE, 4 * PAGE, UADDR, fx->vmh, 0), EEXIST);
}

static void test_order_overlap_after_sanity_and_modify_checks(void **state)
{
	struct fx *fx = *state;

	assert_int_equal(set_mem(fx->vmh, 0, 0, 0, 4 * PAGE, UADDR), 0);
	assert_int_equal(set_mem(fx->vmh, 1, 0, 16 * PAGE, 4 * PAGE, UADDR), 0);
	/* Overlapping slot 0 and unaligned: EINVAL. */
	assert_fails(set_mem(fx->vmh, 2, 0, 2 * PAGE, 4 * PAGE, UADDR + 1), EINVAL);
	/* Moving slot 1 onto slot 0 while changing its size: EINVAL. */
	assert_fails(set_mem(fx->vmh, 1, 0, 0, 8 * PAGE, UADDR), EINVAL);
	/* Moving slot 1 onto slot 0, nothing else wrong: EEXIST. */
	assert_fails(set_mem(fx->vmh, 1, 0, 2 * PAGE, 4 * PAGE, UADDR), EEXIST);
	assert_slot_spans(fx->vm, 1, 0, 16 * PAGE, 4 * PAGE, UADDR);
}

static void test_order_file_range_before_file_overlap(void **state)
{
	struct fx *fx = *state;
	int g = create_gmem(fx->vmh, 8 * PAGE, 0);

	assert_int_equal(set_mem2(fx->vmh, 0, GMEM, 0, 2 * PAGE, UADDR, g, 0), 0);
	/* Overlaps file pages [0, 2) and runs past the end: EINVAL. */
	assert_fails(set_mem2(fx->vmh, 1, GMEM, 64 * PAGE, 8 * PAGE, UADDR, g, PAGE), EINVAL);
	assert_int_equal(pm_kvm_close(g), 0);
}

static void test_order_other_vm_before_file_overlap(void **state)
{
	struct fx *fx = *state;
	int other = pm_kvm_ioctl(fx->sys, KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM);
	int g;

	assert_true(other >= 0);
	g = create_gmem(other, 8 * PAGE, 0);
	assert_int_equal(set_mem2(other, 0, GMEM, 0, 4 * PAGE, UADDR, g, 0), 0);
	/* Another VM's file, at offsets its own slot holds: EINVAL. */
	assert_fails(set_mem2(fx->vmh, 0, GMEM, 0, 4 * PAGE, UADDR, g, 0), EINVAL);
	assert_int_equal(pm_kvm_close(g), 0);
	assert_int_equal(pm_kvm_close(other), 0);
}

/* ---- happy paths -------------------------------------------------------- */

static void test_create_move_flags_delete_seen_by_lookup(void **state)
{
	struct fx *fx = *state;
	const uint64_t a = 0x100000, b = 0x40000000, size = 8 * PAGE;

	assert_int_equal(set_mem(fx->vmh, 5, 0, a, size, UADDR), 0);
	assert_slot_spans(fx->vm, 5, 0, a, size, UADDR);

	/* Move. */
	assert_int_equal(set_mem(fx->vmh, 5, 0, b, size, UADDR), 0);
	assert_slot_spans(fx->vm, 5, 0, b, size, UADDR);
	assert_no_slot_at(fx->vm, a / PAGE);
	assert_no_slot_at(fx->vm, (a + size) / PAGE - 1);

	/* Flags only, both ways. */
	assert_int_equal(set_mem(fx->vmh, 5, LOG_DIRTY, b, size, UADDR), 0);
	assert_slot_spans(fx->vm, 5, LOG_DIRTY, b, size, UADDR);
	assert_int_equal(set_mem(fx->vmh, 5, 0, b, size, UADDR), 0);
	assert_slot_spans(fx->vm, 5, 0, b, size, UADDR);

	/* Move with a flag change: the move carries the new flags. */
	assert_int_equal(set_mem(fx->vmh, 5, LOG_DIRTY, a, size, UADDR), 0);
	assert_slot_spans(fx->vm, 5, LOG_DIRTY, a, size, UADDR);
	assert_no_slot_at(fx->vm, b / PAGE);

	/* Delete, then the id is free for a new slot. */
	assert_int_equal(set_mem(fx->vmh, 5, 0, a, 0, UADDR), 0);
	assert_no_slot_at(fx->vm, a / PAGE);
	assert_no_slot_at(fx->vm, (a + size) / PAGE - 1);
	assert_int_equal(set_mem(fx->vmh, 5, 0, b, 2 * PAGE, UADDR + PAGE), 0);
	assert_slot_spans(fx->vm, 5, 0, b, 2 * PAGE, UADDR + PAGE);
	assert_int_equal(fx->vm->nr_memslot_pages, 2);
}

/* A fault copies its slot (pm_memslot_get), then checks the VMM's memory
 * behind it: if the VMM moved or deleted the slot in between, the check says
 * -EAGAIN (the fault retries) instead of failing the access. */
static void test_hva_check_of_a_slot_moved_or_deleted_since_the_lookup_is_eagain(void **state)
{
	struct fx *fx = *state;
	const uint64_t a = 0x200000, b = 0x40000000, size = 2 * 1024 * 1024;
	uint8_t *mem = mmap(NULL, 2 * size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			    -1, 0);
	uint64_t uaddr = (uint64_t)(uintptr_t)mem;
	struct pm_slot_ref ref, ref_b;
	int level;

	assert_true(mem != MAP_FAILED);
	assert_int_equal(set_mem(fx->vmh, 5, 0, a, size, uaddr), 0);
	assert_true(pm_memslot_get(fx->vm, a / PAGE, false, &ref));
	level = -1;
	assert_int_equal(pm_memslot_check_hva(fx->vm, &ref, a / PAGE + 3, &level), 0);
	assert_true(level == 0 || level == 1);

	/* Moved away: nothing at the gfn any more. */
	assert_int_equal(set_mem(fx->vmh, 5, 0, b, size, uaddr), 0);
	assert_int_equal(pm_memslot_check_hva(fx->vm, &ref, a / PAGE + 3, &level), -EAGAIN);
	assert_true(pm_memslot_get(fx->vm, b / PAGE, false, &ref_b));
	assert_int_equal(pm_memslot_check_hva(fx->vm, &ref_b, b / PAGE + 3, &level), 0);

	/* Another slot over the gfn, backed elsewhere. */
	assert_int_equal(set_mem(fx->vmh, 6, 0, a, size, uaddr + size), 0);
	assert_int_equal(pm_memslot_check_hva(fx->vm, &ref, a / PAGE + 3, &level), -EAGAIN);

	/* Deleted. */
	assert_int_equal(set_mem(fx->vmh, 5, 0, b, 0, uaddr), 0);
	assert_int_equal(pm_memslot_check_hva(fx->vm, &ref_b, b / PAGE + 3, &level), -EAGAIN);
	assert_int_equal(set_mem(fx->vmh, 6, 0, a, 0, uaddr + size), 0);
	munmap(mem, 2 * size);
}

static void test_adjacent_slots_are_told_apart(void **state)
{
	struct fx *fx = *state;

	assert_int_equal(set_mem(fx->vmh, 0, 0, 0, 4 * PAGE, UADDR), 0);
	assert_int_equal(set_mem(fx->vmh, 1, 0, 4 * PAGE, 4 * PAGE, UADDR), 0);
	assert_int_equal(set_mem(fx->vmh, 2, 0, 12 * PAGE, PAGE, UADDR), 0);
	assert_int_equal(lookup(fx->vm, 0).id, 0);
	assert_int_equal(lookup(fx->vm, 3).id, 0);
	assert_int_equal(lookup(fx->vm, 4).id, 1);
	assert_int_equal(lookup(fx->vm, 7).id, 1);
	assert_no_slot_at(fx->vm, 8);
	assert_no_slot_at(fx->vm, 11);
	assert_int_equal(lookup(fx->vm, 12).id, 2);
	assert_no_slot_at(fx->vm, 13);
	assert_int_equal(fx->vm->nr_memslot_pages, 9);
}

static void test_slot_at_the_top_of_the_gpa_space(void **state)
{
	struct fx *fx = *state;
	const uint64_t gpa = 0ULL - 4 * PAGE;

	assert_int_equal(set_mem(fx->vmh, 0, 0, gpa, 3 * PAGE, UADDR), 0);
	assert_slot_spans(fx->vm, 0, 0, gpa, 3 * PAGE, UADDR);
	/* The very last page: gpa + size wraps to exactly 0: EINVAL in Linux. */
	assert_fails(set_mem(fx->vmh, 1, 0, 0ULL - PAGE, PAGE, UADDR), EINVAL);
}

static void test_gpa_overlap_is_eexist_at_both_ends_and_containment(void **state)
{
	struct fx *fx = *state;

	assert_int_equal(set_mem(fx->vmh, 0, 0, 16 * PAGE, 8 * PAGE, UADDR), 0);  /* [16, 24) */
	assert_fails(set_mem(fx->vmh, 1, 0, 12 * PAGE, 5 * PAGE, UADDR), EEXIST);  /* [12, 17) */
	assert_fails(set_mem(fx->vmh, 1, 0, 23 * PAGE, 4 * PAGE, UADDR), EEXIST);  /* [23, 27) */
	assert_fails(set_mem(fx->vmh, 1, 0, 18 * PAGE, 2 * PAGE, UADDR), EEXIST);  /* inside */
	assert_fails(set_mem(fx->vmh, 1, 0, 8 * PAGE, 32 * PAGE, UADDR), EEXIST);  /* around */
	assert_fails(set_mem(fx->vmh, 1, 0, 16 * PAGE, 8 * PAGE, UADDR), EEXIST);  /* equal */
	assert_no_slot_at(fx->vm, 12);
	assert_no_slot_at(fx->vm, 26);
	/* Touching at either end is no overlap. */
	assert_int_equal(set_mem(fx->vmh, 1, 0, 12 * PAGE, 4 * PAGE, UADDR), 0);
	assert_int_equal(set_mem(fx->vmh, 2, 0, 24 * PAGE, 4 * PAGE, UADDR), 0);
	/* A move onto another slot is refused; onto its own range, fine. */
	assert_fails(set_mem(fx->vmh, 2, 0, 22 * PAGE, 4 * PAGE, UADDR), EEXIST);
	assert_int_equal(set_mem(fx->vmh, 2, 0, 26 * PAGE, 4 * PAGE, UADDR), 0);
	assert_slot_spans(fx->vm, 2, 0, 26 * PAGE, 4 * PAGE, UADDR);
}

/* ---- invalidation ------------------------------------------------------- */

static void test_deleting_a_slot_invalidates_its_range(void **state)
{
	struct fx *fx = *state;
	uint64_t before = pm_inval_count(&fx->vm->inval, PM_INVAL_CAUSE_MEMSLOT);

	assert_int_equal(set_mem(fx->vmh, 0, 0, 32 * PAGE, 8 * PAGE, UADDR), 0);
	assert_int_equal(set_mem(fx->vmh, 1, 0, 64 * PAGE, 8 * PAGE, UADDR), 0);
	assert_int_equal(set_mem(fx->vmh, 1, LOG_DIRTY, 64 * PAGE, 8 * PAGE, UADDR), 0);
	/* Creation and a flags-only change invalidate nothing. */
	assert_int_equal(fx_nr_zaps(fx), 0);

	assert_int_equal(set_mem(fx->vmh, 0, 0, 32 * PAGE, 0, UADDR), 0);
	assert_int_equal(fx_nr_zaps(fx), 1);
	assert_int_equal(fx->log.ev[0].start, 32);
	assert_int_equal(fx->log.ev[0].end, 40);
	assert_int_equal(fx->log.ev[0].filter, PM_INVAL_ALL);
	assert_int_equal(fx->log.ev[0].cause, PM_INVAL_CAUSE_MEMSLOT);
	assert_int_equal(pm_inval_count(&fx->vm->inval, PM_INVAL_CAUSE_MEMSLOT), before + 1);
	assert_int_equal(pm_inval_running(&fx->vm->inval), 0);
}

static void test_moving_a_slot_invalidates_its_old_range(void **state)
{
	struct fx *fx = *state;

	assert_int_equal(set_mem(fx->vmh, 0, 0, 32 * PAGE, 8 * PAGE, UADDR), 0);
	assert_int_equal(set_mem(fx->vmh, 0, 0, 128 * PAGE, 8 * PAGE, UADDR), 0);
	assert_int_equal(fx_nr_zaps(fx), 1);
	assert_int_equal(fx->log.ev[0].start, 32);
	assert_int_equal(fx->log.ev[0].end, 40);
	assert_int_equal(fx->log.ev[0].filter, PM_INVAL_ALL);
	assert_int_equal(fx->log.ev[0].cause, PM_INVAL_CAUSE_MEMSLOT);
}

/* The slot index (a radix tree of slot ids) clears a moved slot's old range
 * after the move; a clear that finds no memory for a split leaves the old
 * id there, which neither a lookup nor the next slot's overlap check takes
 * for a slot: the slot of that id no longer holds those gfns. */
static void test_a_stale_index_run_after_a_failed_clear_is_no_slot(void **state)
{
	struct fx *fx = *state;

	assert_int_equal(set_mem(fx->vmh, 0, 0, 0, 1024 * PAGE, UADDR), 0);
	/* The set of the new range splits one entry (at gfn 1024); the clear
	 * of [0, 3) would split [0, 512): that allocation fails. */
	pm_attr_test_fail_alloc(1);
	assert_int_equal(set_mem(fx->vmh, 0, 0, 3 * PAGE, 1024 * PAGE, UADDR), 0);
	pm_attr_test_fail_alloc(-1);
	assert_int_equal(pm_attr_get(&fx->vm->slot_index, 0), 1);     /* stale: slot 0's id */
	assert_no_slot_at(fx->vm, 0);
	assert_no_slot_at(fx->vm, 2);
	assert_slot_spans(fx->vm, 0, 0, 3 * PAGE, 1024 * PAGE, UADDR);
	/* The stale run does not block a new slot there, which replaces it. */
	assert_int_equal(set_mem(fx->vmh, 1, 0, 0, 3 * PAGE, UADDR + 8 * 1024 * PAGE), 0);
	assert_int_equal(lookup(fx->vm, 0).id, 1);
	assert_int_equal(lookup(fx->vm, 2).id, 1);
	assert_int_equal(lookup(fx->vm, 3).id, 0);
	assert_fails(set_mem(fx->vmh, 2, 0, 2 * PAGE, 2 * PAGE, UADDR), EEXIST);
}

static void test_refused_requests_invalidate_nothing(void **state)
{
	struct fx *fx = *state;

	assert_int_equal(set_mem(fx->vmh, 0, 0, 32 * PAGE, 8 * PAGE, UADDR), 0);
	assert_int_equal(set_mem(fx->vmh, 1, 0, 64 * PAGE, 8 * PAGE, UADDR), 0);
	assert_fails(set_mem(fx->vmh, 0, 0, 64 * PAGE, 8 * PAGE, UADDR), EEXIST);
	assert_fails(set_mem(fx->vmh, 0, 0, 32 * PAGE, 4 * PAGE, UADDR), EINVAL);
	assert_fails(set_mem(fx->vmh, 2, 0, 0, 0, UADDR), EINVAL);
	assert_int_equal(set_mem(fx->vmh, 0, 0, 32 * PAGE, 8 * PAGE, UADDR), 0); /* no-op */
	assert_int_equal(fx_nr_zaps(fx), 0);
}

static void test_deleting_a_guest_memfd_slot_invalidates_and_unbinds_it(void **state)
{
	struct fx *fx = *state;
	int g = create_gmem(fx->vmh, 16 * PAGE, 0);

	assert_int_equal(set_mem2(fx->vmh, 0, GMEM, 32 * PAGE, 8 * PAGE, UADDR, g, 0), 0);
	assert_fails(set_mem2(fx->vmh, 1, GMEM, 64 * PAGE, 8 * PAGE, UADDR, g, 0), EEXIST);

	assert_int_equal(set_mem(fx->vmh, 0, 0, 0, 0, 0), 0);
	assert_int_equal(fx_nr_zaps(fx), 1);
	assert_int_equal(fx->log.ev[0].start, 32);
	assert_int_equal(fx->log.ev[0].end, 40);
	assert_int_equal(fx->log.ev[0].cause, PM_INVAL_CAUSE_MEMSLOT);
	/* The file offsets are free again: a new slot binds them. */
	assert_int_equal(set_mem2(fx->vmh, 1, GMEM, 64 * PAGE, 8 * PAGE, UADDR, g, 0), 0);
	assert_ptr_equal(lookup(fx->vm, 64).gmem, gmem_obj(g));
	assert_int_equal(lookup(fx->vm, 64).gmem_pgoff, 0);
	/* And so is the slot id, for the same offsets. */
	assert_int_equal(set_mem(fx->vmh, 1, 0, 0, 0, 0), 0);
	assert_int_equal(set_mem2(fx->vmh, 0, GMEM, 32 * PAGE, 16 * PAGE, UADDR, g, 0), 0);
	assert_int_equal(pm_kvm_close(g), 0);
}

/* ---- guest_memfd bindings ---------------------------------------------- */

static void test_gmem_only_recorded_for_a_guest_memfd_with_mmap(void **state)
{
	struct fx *fx = *state;
	int plain = create_gmem(fx->vmh, 16 * PAGE, 0);
	int mappable = create_gmem(fx->vmh, 16 * PAGE, GUEST_MEMFD_FLAG_MMAP);
	struct slot_view v;

	assert_int_equal(set_mem2(fx->vmh, 0, GMEM, 0, 4 * PAGE, UADDR, plain, 2 * PAGE), 0);
	assert_int_equal(set_mem2(fx->vmh, 1, GMEM, 16 * PAGE, 4 * PAGE, UADDR, mappable, 0), 0);
	assert_int_equal(set_mem(fx->vmh, 2, 0, 32 * PAGE, 4 * PAGE, UADDR), 0);

	v = lookup(fx->vm, 3);
	assert_int_equal(v.id, 0);
	assert_ptr_equal(v.gmem, gmem_obj(plain));
	assert_int_equal(v.gmem_pgoff, 2);
	assert_false(v.gmem_only);

	v = lookup(fx->vm, 16);
	assert_int_equal(v.id, 1);
	assert_ptr_equal(v.gmem, gmem_obj(mappable));
	assert_true(v.gmem_only);

	v = lookup(fx->vm, 32);
	assert_null(v.gmem);
	assert_false(v.gmem_only);
	assert_int_equal(pm_kvm_close(plain), 0);
	assert_int_equal(pm_kvm_close(mappable), 0);
}

static void test_gmem_only_on_the_default_vm(void **state)
{
	struct fx *fx = *state;
	int g = create_gmem(fx->vmh, 16 * PAGE, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED);

	assert_int_equal(set_mem2(fx->vmh, 0, GMEM, 0, 16 * PAGE, 0, g, 0), 0);
	assert_true(lookup(fx->vm, 15).gmem_only);
	assert_int_equal(pm_kvm_close(g), 0);
}

/* ---- every slot --------------------------------------------------------- */

static void test_all_32764_slots_can_be_created_and_found(void **state)
{
	struct fx *fx = *state;

	assert_int_equal(pm_kvm_ioctl(fx->sys, KVM_CHECK_EXTENSION, KVM_CAP_NR_MEMSLOTS), NR_SLOTS);
	/* One page each, with a one-page hole after each (gfn 2 * id). */
	for (uint32_t id = 0; id < NR_SLOTS; id++)
		if (set_mem(fx->vmh, id, 0, 2ULL * id * PAGE, PAGE, UADDR + (uint64_t)id * PAGE))
			fail_msg("slot %u: errno %d", id, errno);
	assert_fails(set_mem(fx->vmh, NR_SLOTS, 0, 2ULL * NR_SLOTS * PAGE, PAGE, UADDR), EINVAL);
	for (uint32_t id = 0; id < NR_SLOTS; id++) {
		struct slot_view v = lookup(fx->vm, 2ULL * id);

		if (!v.found || v.id != id || v.npages != 1 ||
		    v.userspace_addr != UADDR + (uint64_t)id * PAGE)
			fail_msg("slot %u: lookup found %d id %u", id, v.found, v.id);
		if (lookup(fx->vm, 2ULL * id + 1).found)
			fail_msg("hole after slot %u is not empty", id);
	}
	assert_int_equal(fx->vm->nr_memslot_pages, NR_SLOTS);
	/* A few deletions in the middle of the full array. */
	assert_int_equal(set_mem(fx->vmh, 0, 0, 0, 0, 0), 0);
	assert_int_equal(set_mem(fx->vmh, 16000, 0, 0, 0, 0), 0);
	assert_int_equal(set_mem(fx->vmh, NR_SLOTS - 1, 0, 0, 0, 0), 0);
	assert_no_slot_at(fx->vm, 0);
	assert_no_slot_at(fx->vm, 32000);
	assert_no_slot_at(fx->vm, 2ULL * (NR_SLOTS - 1));
	assert_int_equal(lookup(fx->vm, 2).id, 1);
	assert_int_equal(lookup(fx->vm, 31998).id, 15999);
	assert_int_equal(lookup(fx->vm, 32002).id, 16001);
	assert_int_equal(lookup(fx->vm, 2ULL * (NR_SLOTS - 2)).id, NR_SLOTS - 2);
	/* The VM is destroyed with the remaining slots in teardown. */
}

/* ---- lookups racing with updates ---------------------------------------- */

#define RC_IDS      8
#define RC_READERS  2
#define RC_ROUNDS   300
#define RC_SPAN     0x1000ULL            /* gfns per id */
#define RC_MOVE     0x800ULL             /* where a slot moves to, within its span */

/* Slot `id` is either at gfn id * RC_SPAN or id * RC_SPAN + RC_MOVE, has
 * rc_npages(id) pages at rc_uaddr(id), and flags 0 or LOG_DIRTY. */
static uint64_t rc_npages(uint32_t id) { return 16 + 37 * id; }
static uint64_t rc_uaddr(uint32_t id) { return (uint64_t)(id + 1) << 32; }

struct rc_shared {
	struct pm_vm *vm;
	int vmh;
	atomic_bool done;
	atomic_long errors, lookups, hits;
};

static long rc_check(gfn_t gfn, const struct pm_memslot *s)
{
	uint32_t id = s->id;
	gfn_t home = id * RC_SPAN;

	if (id >= RC_IDS)
		return 1;
	return !(gfn >= s->base_gfn && gfn - s->base_gfn < s->npages) +
	       (s->npages != rc_npages(id)) + (s->userspace_addr != rc_uaddr(id)) +
	       !(s->base_gfn == home || s->base_gfn == home + RC_MOVE) +
	       ((s->flags & ~LOG_DIRTY) != 0);
}

static void *rc_reader(void *p)
{
	struct rc_shared *sh = p;
	uint64_t rng = (uint64_t)(uintptr_t)&rng | 1;
	long bad = 0, n = 0, hits = 0;

	do {
		for (int i = 0; i < 64; i++, n++) {
			gfn_t gfn;
			struct pm_memslot *s;

			rng ^= rng << 13;
			rng ^= rng >> 7;
			rng ^= rng << 17;
			gfn = rng % (RC_IDS * RC_SPAN + 16);
			pm_rcu_read_lock();
			s = pm_memslot_lookup(sh->vm, gfn);
			if (s) {
				hits++;
				bad += rc_check(gfn, s);
			}
			pm_rcu_read_unlock();
		}
	} while (!atomic_load(&sh->done));
	atomic_fetch_add(&sh->errors, bad);
	atomic_fetch_add(&sh->lookups, n);
	atomic_fetch_add(&sh->hits, hits);
	return NULL;
}

static long rc_write_round(struct rc_shared *sh, uint32_t id)
{
	uint64_t home = id * RC_SPAN * PAGE, away = home + RC_MOVE * PAGE;
	uint64_t size = rc_npages(id) * PAGE;
	long bad = 0;

	bad += set_mem(sh->vmh, id, 0, home, size, rc_uaddr(id)) != 0;          /* create */
	bad += set_mem(sh->vmh, id, 0, away, size, rc_uaddr(id)) != 0;          /* move */
	bad += set_mem(sh->vmh, id, LOG_DIRTY, away, size, rc_uaddr(id)) != 0;  /* flags */
	bad += set_mem(sh->vmh, id, LOG_DIRTY, home, size, rc_uaddr(id)) != 0;  /* move back */
	bad += set_mem(sh->vmh, id, 0, 0, 0, 0) != 0;                           /* delete */
	return bad;
}

static void test_lookups_racing_with_updates_see_only_real_slots(void **state)
{
	struct fx *fx = *state;
	struct rc_shared sh = { .vm = fx->vm, .vmh = fx->vmh };
	pthread_t readers[RC_READERS];
	long bad = 0;

	/* Half the ids stay put, so that readers also hit stable slots. */
	for (uint32_t id = RC_IDS / 2; id < RC_IDS; id++)
		assert_int_equal(set_mem(fx->vmh, id, 0, id * RC_SPAN * PAGE, rc_npages(id) * PAGE,
					 rc_uaddr(id)), 0);
	for (int i = 0; i < RC_READERS; i++)
		assert_int_equal(pthread_create(&readers[i], NULL, rc_reader, &sh), 0);
	for (int round = 0; round < RC_ROUNDS; round++)
		for (uint32_t id = 0; id < RC_IDS / 2; id++)
			bad += rc_write_round(&sh, id);
	atomic_store(&sh.done, true);
	for (int i = 0; i < RC_READERS; i++)
		pthread_join(readers[i], NULL);

	assert_int_equal(bad, 0);
	assert_int_equal(atomic_load(&sh.errors), 0);
	assert_true(atomic_load(&sh.hits) > 0);
	print_message("%ld lookups, %ld hits\n", atomic_load(&sh.lookups), atomic_load(&sh.hits));
	for (uint32_t id = 0; id < RC_IDS / 2; id++)
		assert_no_slot_at(fx->vm, id * RC_SPAN);
}

int main(void)
{
#define D(f) cmocka_unit_test_setup_teardown(f, setup_default, teardown)
#define S(f) cmocka_unit_test_setup_teardown(f, setup_sw, teardown)
	const struct CMUnitTest tests[] = {
		D(test_slot_id_at_or_past_32764_is_einval),
		D(test_address_space_other_than_zero_is_einval),
		D(test_unknown_flag_is_einval),
		D(test_log_dirty_and_readonly_slots_are_accepted),
		S(test_log_dirty_and_readonly_slots_are_accepted),
		S(test_guest_memfd_with_log_dirty_or_readonly_is_einval),
		S(test_v1_ioctl_with_guest_memfd_flag_is_einval),
		D(test_unaligned_size_is_einval),
		D(test_unaligned_gpa_is_einval),
		D(test_unaligned_userspace_addr_is_einval),
		D(test_userspace_range_past_task_size_is_einval),
		D(test_null_userspace_addr_is_accepted),
		S(test_unaligned_guest_memfd_offset_is_einval),
		S(test_guest_memfd_offset_plus_size_overflow_is_einval),
		D(test_gpa_plus_size_overflow_is_einval),
		D(test_more_than_max_nr_pages_is_einval),
		D(test_deleting_a_slot_that_does_not_exist_is_einval),
		D(test_modifying_uaddr_size_or_readonly_of_a_slot_is_einval),
		S(test_guest_memfd_slot_can_only_be_deleted),
		S(test_guest_memfd_handle_not_open_is_ebadf),
		S(test_guest_memfd_handle_of_another_kind_is_einval),
		S(test_guest_memfd_of_another_vm_is_einval),
		S(test_guest_memfd_range_past_file_end_is_einval),
		S(test_overlapping_guest_memfd_offsets_are_eexist),
		D(test_order_slot_id_before_overlap),
		S(test_order_sanity_checks_before_bad_guest_memfd_handle),
		S(test_order_modify_check_before_bad_guest_memfd_handle),
		S(test_order_overlap_before_bad_guest_memfd_handle),
		D(test_order_overlap_after_sanity_and_modify_checks),
		S(test_order_file_range_before_file_overlap),
		S(test_order_other_vm_before_file_overlap),
		D(test_create_move_flags_delete_seen_by_lookup),
		D(test_hva_check_of_a_slot_moved_or_deleted_since_the_lookup_is_eagain),
		D(test_adjacent_slots_are_told_apart),
		D(test_slot_at_the_top_of_the_gpa_space),
		D(test_gpa_overlap_is_eexist_at_both_ends_and_containment),
		D(test_deleting_a_slot_invalidates_its_range),
		D(test_moving_a_slot_invalidates_its_old_range),
		D(test_refused_requests_invalidate_nothing),
		S(test_deleting_a_guest_memfd_slot_invalidates_and_unbinds_it),
		S(test_gmem_only_recorded_for_a_guest_memfd_with_mmap),
		D(test_gmem_only_on_the_default_vm),
		D(test_all_32764_slots_can_be_created_and_found),
		D(test_a_stale_index_run_after_a_failed_clear_is_no_slot),
		S(test_lookups_racing_with_updates_see_only_real_slots),
	};
#undef D
#undef S
	return cmocka_run_group_tests(tests, NULL, NULL);
}

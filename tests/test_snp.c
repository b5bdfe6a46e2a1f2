/* SPDX-License-Identifier: MIT */
/*
 * Tests of the KVM_X86_SNP_VM type (src/models/snp/) through the KVM uAPI
 * and guest code: measured launch (every error, partial progress, the
 * digest against one computed here from the PAGE_INFO bytes), C-bit
 * accesses and implicit conversion, PVALIDATE and the unvalidated-access
 * rule, guest_memfd prepare / invalidate in the RMP (2M entries, PSMASH on
 * a partial free, 2M mappings split), the GHCB page state change (errors,
 * merging, resume) and the MSR protocol. The RMP is read through rmp.h;
 * frames are found through the pool's direct map, never privmem's own
 * bookkeeping of the model.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <linux/falloc.h>

#include <privmem/guest.h>
#include <privmem/privmem.h>
#include "gmem/gmem_internal.h"   /* pm_gmem_peek_pfn */
#include "host/pool.h"
#include "models/snp/rmp.h"
#include "lib/testutil.h"

#define PAGE   4096ULL
#define MIB    (1ULL << 20)
#define MEM    (8 * MIB)             /* guest RAM [0, MEM), one slot */
#define DESC   (MEM - PAGE)          /* the PSC descriptor page (shared) */
#define C      PM_SNP_C_BIT
#define PUNCH  (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)
#define MAX_EXITS 64

struct t {
	int kvm, vm, gmem, vcpu;
	struct kvm_run *run;
	uint8_t *shared;
	/* MAP_GPA_RANGE exits seen, and which one (1-based) the VMM fails. */
	unsigned int nr_exits, fail_exit;
	struct { uint64_t gpa, npages, attrs; } exits[MAX_EXITS];
	unsigned int memory_faults;
	uint64_t last_fault_flags, last_fault_gpa;
	bool convert_on_fault;
};

static struct t *T;   /* the current test's VM (guest code reaches it) */

static void t_create(struct t *t, uint64_t gmem_flags)
{
	struct kvm_create_guest_memfd cg = { .size = MEM, .flags = gmem_flags };
	struct kvm_enable_cap cap = { .cap = KVM_CAP_EXIT_HYPERCALL,
				      .args = { 1ULL << KVM_HC_MAP_GPA_RANGE } };
	struct kvm_userspace_memory_region2 r = { .slot = 0, .memory_size = MEM, .flags = KVM_MEM_GUEST_MEMFD };

	memset(t, 0, sizeof(*t));
	t->kvm = pm_kvm_open();
	t->vm = pm_kvm_ioctl(t->kvm, KVM_CREATE_VM, KVM_X86_SNP_VM);
	assert_true(t->vm >= 0);
	pm_test_gmem_page_size_flags(t->vm);
	assert_int_equal(pm_kvm_ioctl(t->vm, KVM_ENABLE_CAP, &cap), 0);
	t->gmem = pm_kvm_ioctl(t->vm, KVM_CREATE_GUEST_MEMFD, &cg);
	assert_true(t->gmem >= 0);
	t->shared = mmap(NULL, MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(t->shared != MAP_FAILED);
	r.userspace_addr = (uintptr_t)t->shared;
	r.guest_memfd = (uint32_t)t->gmem;
	assert_int_equal(pm_kvm_ioctl(t->vm, KVM_SET_USER_MEMORY_REGION2, &r), 0);
	t->vcpu = pm_kvm_ioctl(t->vm, KVM_CREATE_VCPU, 0);
	assert_true(t->vcpu >= 0);
	t->run = pm_kvm_mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, t->vcpu, 0);
	assert_true(t->run != MAP_FAILED);
	T = t;
}

static void t_destroy(struct t *t)
{
	pm_kvm_munmap(t->run, 4096);
	pm_kvm_close(t->vcpu);
	pm_kvm_close(t->gmem);
	pm_kvm_close(t->vm);
	pm_kvm_close(t->kvm);
	munmap(t->shared, MEM);
}

/* The VMM's conversion, as QEMU's: attributes, then discard the other copy. */
static int t_convert(struct t *t, uint64_t gpa, uint64_t size, bool to_private)
{
	struct kvm_memory_attributes a = {
		.address = gpa, .size = size, .attributes = to_private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0,
	};

	if (pm_kvm_ioctl(t->vm, KVM_SET_MEMORY_ATTRIBUTES, &a))
		return -errno;
	if (to_private)
		return madvise(t->shared + gpa, size, MADV_DONTNEED);
	return pm_kvm_fallocate(t->gmem, PUNCH, (off_t)gpa, (off_t)size);
}

static void t_hypercall(struct t *t)
{
	struct kvm_run *run = t->run;
	unsigned int n = t->nr_exits++;

	assert_int_equal(run->hypercall.nr, KVM_HC_MAP_GPA_RANGE);
	if (n < MAX_EXITS) {
		t->exits[n].gpa = run->hypercall.args[0];
		t->exits[n].npages = run->hypercall.args[1];
		t->exits[n].attrs = run->hypercall.args[2];
	}
	if (t->fail_exit == n + 1) {
		run->hypercall.ret = (uint64_t)(int64_t)-KVM_EINVAL;
		return;
	}
	run->hypercall.ret = t_convert(t, run->hypercall.args[0], run->hypercall.args[1] * PAGE,
				       run->hypercall.args[2] & KVM_MAP_GPA_RANGE_ENCRYPTED) ? 1 : 0;
}

/* Runs the guest until it ends: returns the final exit reason (PM_EXIT_UCALL
 * with DONE asserted, or KVM_EXIT_SYSTEM_EVENT); memory faults are
 * converted as flagged when convert_on_fault, else they end the run too. */
static unsigned int t_run(struct t *t, void (*fn)(struct pm_guest *, void *), void *arg)
{
	struct pm_guest_entry e = { .fn = fn, .arg = arg };
	struct pm_ucall uc;

	assert_int_equal(pm_kvm_ioctl(t->vcpu, PM_KVM_SET_GUEST, &e), 0);
	for (;;) {
		int r = pm_kvm_ioctl(t->vcpu, KVM_RUN, 0);

		if (r && errno == EFAULT && t->run->exit_reason == KVM_EXIT_MEMORY_FAULT) {
			t->memory_faults++;
			t->last_fault_flags = t->run->memory_fault.flags;
			t->last_fault_gpa = t->run->memory_fault.gpa;
			if (!t->convert_on_fault)
				return KVM_EXIT_MEMORY_FAULT;
			assert_int_equal(t_convert(t, t->run->memory_fault.gpa, t->run->memory_fault.size,
						   t->run->memory_fault.flags & KVM_MEMORY_EXIT_FLAG_PRIVATE), 0);
			continue;
		}
		assert_int_equal(r, 0);
		switch (t->run->exit_reason) {
		case KVM_EXIT_HYPERCALL:
			t_hypercall(t);
			break;
		case KVM_EXIT_SYSTEM_EVENT:
			return KVM_EXIT_SYSTEM_EVENT;
		case PM_EXIT_UCALL:
			if (pm_get_ucall(t->vcpu, &uc) == PM_UCALL_SYNC)
				break;
			if (uc.cmd != PM_UCALL_DONE)
				fail_msg("guest: %s", uc.msg);
			return PM_EXIT_UCALL;
		default:
			fail_msg("unexpected exit %u", t->run->exit_reason);
		}
	}
}

static uint64_t model_stat(struct t *t, const char *name)
{
	struct pm_model_stats st;

	assert_int_equal(pm_kvm_ioctl(t->vm, PM_KVM_GET_MODEL_STATS, &st), 0);
	for (unsigned int i = 0; i < st.nr; i++)
		if (!strcmp(st.v[i].name, name))
			return st.v[i].value;
	fail_msg("no statistic %s", name);
	return 0;
}

/* The frame backing a private gpa, from the guest's point of view: the
 * guest stores its address... we look it up through the RMP instead: the
 * frame whose entry says this ASID and gpa. Only the gmem file knows; the
 * test peeks through the pool's direct map by scanning a small window. */

/* ---- launch ---- */

static int sev_cmd(struct t *t, uint32_t id, void *data, uint32_t *error)
{
	struct kvm_sev_cmd c = { .id = id, .data = (uintptr_t)data };
	int r = pm_kvm_ioctl(t->vm, KVM_MEMORY_ENCRYPT_OP, &c);

	if (error)
		*error = c.error;
	return r;
}

static struct kvm_sev_snp_launch_start good_start = { .policy = 0x30000 };

static void test_launch_start_errors(void **state)
{
	struct t t;
	struct kvm_sev_snp_launch_start s = good_start;
	struct kvm_sev_snp_launch_update u = { .gfn_start = 0, .len = PAGE, .type = 1 };
	struct kvm_sev_snp_launch_finish f = { 0 };
	struct pm_measurement m;

	t_create(&t, 0);
	assert_fails(pm_kvm_ioctl(t.vm, PM_KVM_GET_MEASUREMENT, &m), EINVAL);
	assert_fails(sev_cmd(&t, KVM_SEV_SNP_LAUNCH_UPDATE, &u, NULL), EINVAL);   /* before START */
	assert_fails(sev_cmd(&t, KVM_SEV_SNP_LAUNCH_FINISH, &f, NULL), EINVAL);
	assert_fails(sev_cmd(&t, 99, &s, NULL), EINVAL);                          /* unknown id */
	s.policy = 0x10000;                                                      /* no MBO bit 17 */
	assert_fails(sev_cmd(&t, KVM_SEV_SNP_LAUNCH_START, &s, NULL), EINVAL);
	s.policy = 0x30000 | (1ULL << 40);                                       /* unknown bit */
	assert_fails(sev_cmd(&t, KVM_SEV_SNP_LAUNCH_START, &s, NULL), EINVAL);
	s = good_start;
	s.flags = 1;
	assert_fails(sev_cmd(&t, KVM_SEV_SNP_LAUNCH_START, &s, NULL), EINVAL);
	assert_fails(sev_cmd(&t, KVM_SEV_SNP_LAUNCH_START, NULL, NULL), EFAULT);
	s = good_start;
	assert_int_equal(sev_cmd(&t, KVM_SEV_SNP_LAUNCH_START, &s, NULL), 0);
	assert_fails(sev_cmd(&t, KVM_SEV_SNP_LAUNCH_START, &s, NULL), EINVAL);    /* twice */
	assert_fails(pm_kvm_ioctl(t.vm, PM_KVM_GET_MEASUREMENT, &m), EINVAL);
	f.flags = 1;
	assert_fails(sev_cmd(&t, KVM_SEV_SNP_LAUNCH_FINISH, &f, NULL), EINVAL);
	f.flags = 0;
	assert_int_equal(sev_cmd(&t, KVM_SEV_SNP_LAUNCH_FINISH, &f, NULL), 0);
	assert_fails(sev_cmd(&t, KVM_SEV_SNP_LAUNCH_FINISH, &f, NULL), EINVAL);   /* twice */
	assert_fails(sev_cmd(&t, KVM_SEV_SNP_LAUNCH_UPDATE, &u, NULL), EINVAL);   /* after FINISH */
	assert_int_equal(pm_kvm_ioctl(t.vm, PM_KVM_GET_MEASUREMENT, &m), 0);
	t_destroy(&t);
}

static void test_launch_update_errors(void **state)
{
	static uint8_t src[4 * PAGE];
	struct t t;
	struct kvm_sev_snp_launch_start s = good_start;
	struct kvm_sev_snp_launch_update u = { .gfn_start = 16, .uaddr = (uintptr_t)src, .len = PAGE,
					       .type = KVM_SEV_SNP_PAGE_TYPE_NORMAL };

	t_create(&t, PM_GUEST_MEMFD_FLAG_NO_HUGE);
	assert_int_equal(sev_cmd(&t, KVM_SEV_SNP_LAUNCH_START, &s, NULL), 0);
	/* The range is shared: EINVAL, nothing done. */
	assert_fails(sev_cmd(&t, KVM_SEV_SNP_LAUNCH_UPDATE, &u, NULL), EINVAL);
	assert_int_equal(u.gfn_start, 16);
	assert_int_equal(t_convert(&t, 16 * PAGE, 4 * PAGE, true), 0);
	u.type = KVM_SEV_SNP_PAGE_TYPE_VMSA;
	assert_fails(sev_cmd(&t, KVM_SEV_SNP_LAUNCH_UPDATE, &u, NULL), EINVAL);
	u.type = 7;
	assert_fails(sev_cmd(&t, KVM_SEV_SNP_LAUNCH_UPDATE, &u, NULL), EINVAL);
	u.type = KVM_SEV_SNP_PAGE_TYPE_NORMAL;
	u.flags = 1;
	assert_fails(sev_cmd(&t, KVM_SEV_SNP_LAUNCH_UPDATE, &u, NULL), EINVAL);
	u.flags = 0;
	u.len = 100;
	assert_fails(sev_cmd(&t, KVM_SEV_SNP_LAUNCH_UPDATE, &u, NULL), EINVAL);
	u.len = 0;                                                   /* an empty range, as Linux */
	assert_fails(sev_cmd(&t, KVM_SEV_SNP_LAUNCH_UPDATE, &u, NULL), EINVAL);
	u.len = PAGE;
	u.gfn_start = MEM / PAGE + 5;                                /* no memslot */
	assert_fails(sev_cmd(&t, KVM_SEV_SNP_LAUNCH_UPDATE, &u, NULL), EINVAL);
	u.gfn_start = 16;
	u.uaddr = 0;
	assert_fails(sev_cmd(&t, KVM_SEV_SNP_LAUNCH_UPDATE, &u, NULL), EFAULT);
	{
		/* A source the VMM has not mapped, or cannot read: EFAULT,
		 * as copy_from_user, not a crash; nothing populated. */
		uint8_t *gone = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE,
				     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		assert_true(gone != MAP_FAILED);
		assert_int_equal(mprotect(gone + PAGE, PAGE, PROT_NONE), 0);
		assert_int_equal(munmap(gone, PAGE), 0);
		u.uaddr = (uintptr_t)gone;
		assert_fails(sev_cmd(&t, KVM_SEV_SNP_LAUNCH_UPDATE, &u, NULL), EFAULT);
		u.uaddr = (uintptr_t)gone + PAGE;
		assert_fails(sev_cmd(&t, KVM_SEV_SNP_LAUNCH_UPDATE, &u, NULL), EFAULT);
		assert_int_equal(u.len, PAGE);
		munmap(gone + PAGE, PAGE);
	}
	u.uaddr = (uintptr_t)src;
	assert_int_equal(sev_cmd(&t, KVM_SEV_SNP_LAUNCH_UPDATE, &u, NULL), 0);
	assert_int_equal(u.len, 0);
	/* Populated already: EEXIST, as kvm_gmem_populate. */
	u.gfn_start = 16;
	u.len = PAGE;
	u.uaddr = (uintptr_t)src;
	assert_fails(sev_cmd(&t, KVM_SEV_SNP_LAUNCH_UPDATE, &u, NULL), EEXIST);
	t_destroy(&t);
}

static void test_launch_update_partial_progress(void **state)
{
	static uint8_t src[4 * PAGE];
	struct t t;
	struct kvm_sev_snp_launch_start s = good_start;
	struct kvm_sev_snp_launch_update u = { .gfn_start = 32, .uaddr = (uintptr_t)src, .len = 4 * PAGE,
					       .type = KVM_SEV_SNP_PAGE_TYPE_UNMEASURED };

	t_create(&t, 0);
	assert_int_equal(sev_cmd(&t, KVM_SEV_SNP_LAUNCH_START, &s, NULL), 0);
	assert_int_equal(t_convert(&t, 32 * PAGE, 2 * PAGE, true), 0);   /* pages 34, 35 stay shared */
	assert_int_equal(sev_cmd(&t, KVM_SEV_SNP_LAUNCH_UPDATE, &u, NULL), 0);
	assert_int_equal(u.gfn_start, 34);
	assert_int_equal(u.len, 2 * PAGE);
	assert_int_equal(u.uaddr, (uintptr_t)src + 2 * PAGE);
	assert_fails(sev_cmd(&t, KVM_SEV_SNP_LAUNCH_UPDATE, &u, NULL), EINVAL);
	assert_int_equal(u.gfn_start, 34);
	/* ZERO pages do not advance uaddr. */
	assert_int_equal(t_convert(&t, 34 * PAGE, 2 * PAGE, true), 0);
	u.type = KVM_SEV_SNP_PAGE_TYPE_ZERO;
	assert_int_equal(sev_cmd(&t, KVM_SEV_SNP_LAUNCH_UPDATE, &u, NULL), 0);
	assert_int_equal(u.len, 0);
	assert_int_equal(u.gfn_start, 36);
	assert_int_equal(u.uaddr, (uintptr_t)src + 2 * PAGE);
	assert_int_equal(model_stat(&t, "launch_pages"), 4);
	t_destroy(&t);
}

static uint8_t launch_image[3 * PAGE];

static void guest_reads_launch_image(struct pm_guest *g, void *arg)
{
	uint8_t buf[PAGE];

	/* Firmware-validated pages are readable at once (no PVALIDATE). */
	pm_guest_read(g, (40 * PAGE) | C, buf, PAGE);
	PM_GUEST_ASSERT(g, !memcmp(buf, launch_image, PAGE));
	pm_guest_read(g, (41 * PAGE) | C, buf, PAGE);
	PM_GUEST_ASSERT(g, !memcmp(buf, launch_image + PAGE, PAGE));
	pm_guest_read(g, (42 * PAGE) | C, buf, PAGE);   /* ZERO */
	for (int i = 0; i < 64; i++)
		PM_GUEST_ASSERT(g, buf[i * 64] == 0);
}

static void test_launch_digest_and_guest_view(void **state)
{
	struct t t;
	struct kvm_sev_snp_launch_start s = good_start;
	struct kvm_sev_snp_launch_update u = { .gfn_start = 40, .uaddr = (uintptr_t)launch_image,
					       .len = 2 * PAGE, .type = KVM_SEV_SNP_PAGE_TYPE_NORMAL };
	struct kvm_sev_snp_launch_update z = { .gfn_start = 42, .len = PAGE,
					       .type = KVM_SEV_SNP_PAGE_TYPE_ZERO };
	struct kvm_sev_snp_launch_finish f = { 0 };
	static const uint8_t zero[PAGE];
	uint8_t want[48] = { 0 }, vmsa[PAGE];
	struct pm_measurement m;
	struct kvm_sregs sregs;
	struct kvm_regs regs;

	for (unsigned int i = 0; i < sizeof(launch_image); i++)
		launch_image[i] = (uint8_t)(i * 13 + 1);
	t_create(&t, 0);
	/* The VMM moves the vCPU as QEMU moves an AP to its reset block. */
	assert_int_equal(pm_kvm_ioctl(t.vcpu, KVM_GET_SREGS, &sregs), 0);
	assert_int_equal(pm_kvm_ioctl(t.vcpu, KVM_GET_REGS, &regs), 0);
	sregs.cs.base = 0x800000;
	regs.rip = 0xb004;
	regs.rdx = 0x00800f12;
	assert_int_equal(pm_kvm_ioctl(t.vcpu, KVM_SET_SREGS, &sregs), 0);
	assert_int_equal(pm_kvm_ioctl(t.vcpu, KVM_SET_REGS, &regs), 0);
	assert_int_equal(t_convert(&t, 40 * PAGE, 3 * PAGE, true), 0);
	assert_int_equal(sev_cmd(&t, KVM_SEV_SNP_LAUNCH_START, &s, NULL), 0);
	assert_int_equal(sev_cmd(&t, KVM_SEV_SNP_LAUNCH_UPDATE, &u, NULL), 0);
	assert_int_equal(sev_cmd(&t, KVM_SEV_SNP_LAUNCH_UPDATE, &z, NULL), 0);
	assert_int_equal(sev_cmd(&t, KVM_SEV_SNP_LAUNCH_FINISH, &f, NULL), 0);
	assert_int_equal(pm_kvm_ioctl(t.vm, PM_KVM_GET_MEASUREMENT, &m), 0);
	pm_test_snp_page_info(want, launch_image, 1, 40 * PAGE);
	pm_test_snp_page_info(want, launch_image + PAGE, 1, 41 * PAGE);
	pm_test_snp_page_info(want, zero, 3, 42 * PAGE);
	pm_test_snp_reset_vmsa(vmsa, 0xf000, 0x800000, 0xb004, 0x00800f12);
	pm_test_snp_page_info(want, vmsa, 2, 0xFFFFFFFFF000ULL);    /* the vCPU's VMSA */
	assert_memory_equal(m.digest, want, 48);
	assert_int_equal(t_run(&t, guest_reads_launch_image, NULL), PM_EXIT_UCALL);
	t_destroy(&t);
}

/* ---- accesses, PVALIDATE, conversions ---- */

static void guest_touches_unvalidated(struct pm_guest *g, void *arg)
{
	/* PSC only, no PVALIDATE: the access must end the guest. */
	pm_guest_write64(g, DESC, 0);
	pm_guest_write64(g, DESC + 8, pm_snp_psc_entry(100, PM_SNP_PSC_OP_PRIVATE, false));
	PM_GUEST_ASSERT(g, pm_guest_snp_psc(g, DESC) == 0);
	pm_guest_read64(g, (100 * PAGE) | C);
	PM_GUEST_ASSERT(g, false);   /* never reached */
}

static void test_unvalidated_access_is_fatal(void **state)
{
	struct t t;

	t_create(&t, 0);
	assert_int_equal(t_run(&t, guest_touches_unvalidated, NULL), KVM_EXIT_SYSTEM_EVENT);
	assert_int_equal(t.run->system_event.type, KVM_SYSTEM_EVENT_SEV_TERM);
	assert_int_equal(t.run->system_event.data[0], (100 * PAGE) | C);
	assert_int_equal(model_stat(&t, "unvalidated_access"), 1);
	/* The guest is over: KVM_RUN reports the event again. */
	assert_int_equal(pm_kvm_ioctl(t.vcpu, KVM_RUN, 0), 0);
	assert_int_equal(t.run->exit_reason, KVM_EXIT_SYSTEM_EVENT);
	assert_int_equal(t.run->system_event.type, KVM_SYSTEM_EVENT_SEV_TERM);
	t_destroy(&t);
}

static void guest_private_access_while_shared(struct pm_guest *g, void *arg)
{
	pm_guest_read64(g, (200 * PAGE) | C);
}

static void guest_shared_access_while_private(struct pm_guest *g, void *arg)
{
	pm_guest_read64(g, 200 * PAGE);
}

static void test_cbit_mismatch_is_implicit_conversion(void **state)
{
	struct t t;

	t_create(&t, 0);
	assert_int_equal(t_run(&t, guest_private_access_while_shared, NULL), KVM_EXIT_MEMORY_FAULT);
	assert_int_equal(t.last_fault_flags, KVM_MEMORY_EXIT_FLAG_PRIVATE);
	assert_int_equal(t.last_fault_gpa, 200 * PAGE);    /* without the C-bit */
	t_destroy(&t);

	t_create(&t, 0);
	assert_int_equal(t_convert(&t, 200 * PAGE, PAGE, true), 0);
	assert_int_equal(t_run(&t, guest_shared_access_while_private, NULL), KVM_EXIT_MEMORY_FAULT);
	assert_int_equal(t.last_fault_flags, 0);
	assert_int_equal(t.last_fault_gpa, 200 * PAGE);
	t_destroy(&t);
}

static void guest_pvalidate_cases(struct pm_guest *g, void *arg)
{
	uint64_t gpa = (300 * PAGE) | C;

	PM_GUEST_ASSERT(g, pm_guest_snp_pvalidate(g, 300 * PAGE, false, true) ==
			   PM_SNP_PVALIDATE_FAIL_INPUT);          /* no C-bit */
	PM_GUEST_ASSERT(g, pm_guest_snp_pvalidate(g, gpa, true, true) ==
			   PM_SNP_PVALIDATE_FAIL_INPUT);          /* 2M, misaligned */
	PM_GUEST_ASSERT(g, pm_guest_snp_psc_msr(g, 300 * PAGE, PM_SNP_PSC_OP_PRIVATE) == 0);
	PM_GUEST_ASSERT(g, pm_guest_snp_pvalidate(g, gpa, false, false) == PM_SNP_PVALIDATE_NOUPDATE);
	PM_GUEST_ASSERT(g, pm_guest_snp_pvalidate(g, gpa, false, true) == 0);
	PM_GUEST_ASSERT(g, pm_guest_snp_pvalidate(g, gpa, false, true) == PM_SNP_PVALIDATE_NOUPDATE);
	pm_guest_write64(g, gpa, 42);
	PM_GUEST_ASSERT(g, pm_guest_read64(g, gpa) == 42);
	/* Rescinded: the next access ends the guest. */
	PM_GUEST_ASSERT(g, pm_guest_snp_pvalidate(g, gpa, false, false) == 0);
	pm_guest_read64(g, gpa);
}

static void test_pvalidate(void **state)
{
	struct t t;

	t_create(&t, 0);
	assert_int_equal(t_run(&t, guest_pvalidate_cases, NULL), KVM_EXIT_SYSTEM_EVENT);
	assert_int_equal(t.run->system_event.data[0], (300 * PAGE) | C);
	assert_int_equal(model_stat(&t, "psc_msr"), 1);
	/* Two changes; two FAIL_INPUTs and two NOUPDATEs (snp.h's count). */
	assert_int_equal(model_stat(&t, "pvalidate"), 2);
	assert_int_equal(model_stat(&t, "pvalidate_failed"), 4);
	assert_int_equal(t.nr_exits, 1);
	assert_int_equal(t.exits[0].npages, 1);
	t_destroy(&t);
}

static void guest_2m_sizes(struct pm_guest *g, void *arg)
{
	uint64_t base = 2 * MIB;

	/* Whole 2M: a 2M PSC entry, a 2M PVALIDATE. */
	PM_GUEST_ASSERT(g, pm_guest_snp_make_private(g, base, 512, DESC, 64) == 0);
	pm_guest_write64(g, (base + 5 * PAGE) | C, 5);
	pm_guest_write64(g, (base + 511 * PAGE) | C, 511);
	pm_guest_sync(g, 1);   /* the host looks at the RMP and the stage-2 */
	/* One 4K page back to shared: PSMASH on free, the mapping split. */
	PM_GUEST_ASSERT(g, pm_guest_snp_make_shared(g, base + 7 * PAGE, 1, DESC, 64) == 0);
	pm_guest_write64(g, base + 7 * PAGE, 77);
	PM_GUEST_ASSERT(g, pm_guest_read64(g, (base + 5 * PAGE) | C) == 5);
	PM_GUEST_ASSERT(g, pm_guest_read64(g, (base + 511 * PAGE) | C) == 511);
	pm_guest_sync(g, 2);
}

static uint64_t mappings(struct t *t, int level)
{
	struct pm_vm_stats st;

	assert_int_equal(pm_kvm_ioctl(t->vm, PM_KVM_GET_VM_STATS, &st), 0);
	return st.mappings[level];
}

static void test_2m_private_pages(void **state)
{
	struct t t;
	struct pm_guest_entry e = { .fn = guest_2m_sizes };
	struct pm_ucall uc;
	uint64_t smash0, rmp2m0, m2m = 0;

	t_create(&t, 0);
	rmp2m0 = model_stat(&t, "rmp_assigned_2m");
	smash0 = model_stat(&t, "psmash_on_free");
	assert_int_equal(pm_kvm_ioctl(t.vcpu, PM_KVM_SET_GUEST, &e), 0);
	for (int stage = 1; stage <= 2;) {
		assert_int_equal(pm_kvm_ioctl(t.vcpu, KVM_RUN, 0), 0);
		if (t.run->exit_reason == KVM_EXIT_HYPERCALL) {
			t_hypercall(&t);
			continue;
		}
		assert_int_equal(t.run->exit_reason, PM_EXIT_UCALL);
		assert_int_equal(pm_get_ucall(t.vcpu, &uc), PM_UCALL_SYNC);
		if (uc.args[0] == 1) {
			assert_int_equal(model_stat(&t, "rmp_assigned_2m"), rmp2m0 + 1);
			assert_int_equal(model_stat(&t, "prepare_2m_entries"), 1);
			m2m = mappings(&t, 1);
			assert_true(m2m >= 1);                         /* a 2M stage-2 leaf */
			assert_int_equal(t.exits[0].npages, 512);
			assert_int_equal(t.exits[0].attrs, KVM_MAP_GPA_RANGE_ENCRYPTED |
							   KVM_MAP_GPA_RANGE_PAGE_SZ_2M);
		} else {
			/* The guest's 4K rescind met the 2M entry: KVM smashed it
			 * on the fault, and the free found 4K entries. */
			assert_int_equal(model_stat(&t, "rmp_assigned_2m"), rmp2m0);
			assert_int_equal(model_stat(&t, "psmash_on_fault"), 1);
			assert_int_equal(model_stat(&t, "psmash_on_free"), smash0);
			assert_int_equal(mappings(&t, 1), m2m - 1);    /* split */
			assert_true(mappings(&t, 0) >= 2);
			assert_int_equal(*(uint64_t *)(t.shared + 2 * MIB + 7 * PAGE), 77);
		}
		stage++;
	}
	assert_int_equal(model_stat(&t, "rmp_violations"), 0);
	t_destroy(&t);
}

static void guest_2m_then_sync(struct pm_guest *g, void *arg)
{
	PM_GUEST_ASSERT(g, pm_guest_snp_make_private(g, 4 * MIB, 512, DESC, 64) == 0);
	pm_guest_write64(g, (4 * MIB + 8 * PAGE) | C, 8);
	pm_guest_write64(g, (4 * MIB + 9 * PAGE) | C, 9);
	pm_guest_write64(g, (4 * MIB + 10 * PAGE) | C, 10);
	pm_guest_sync(g, 0);
	/* The host took page 9 away; the rest of the 2M page kept its data
	 * (and stays validated: the PSMASH kept VALIDATED in the 4K entries). */
	PM_GUEST_ASSERT(g, pm_guest_read64(g, (4 * MIB + 8 * PAGE) | C) == 8);
	PM_GUEST_ASSERT(g, pm_guest_read64(g, (4 * MIB + 10 * PAGE) | C) == 10);
	pm_guest_write64(g, (4 * MIB + 511 * PAGE) | C, 511);
}

static void test_partial_free_of_2m_entry_smashes(void **state)
{
	struct t t;
	struct pm_guest_entry e = { .fn = guest_2m_then_sync };
	uint64_t free0;
	int r;

	t_create(&t, 0);
	free0 = model_stat(&t, "psmash_on_free");
	assert_int_equal(pm_kvm_ioctl(t.vcpu, PM_KVM_SET_GUEST, &e), 0);
	while (!(r = pm_kvm_ioctl(t.vcpu, KVM_RUN, 0)) && t.run->exit_reason == KVM_EXIT_HYPERCALL)
		t_hypercall(&t);
	assert_int_equal(r, 0);
	assert_int_equal(pm_get_ucall(t.vcpu, NULL), PM_UCALL_SYNC);
	assert_int_equal(model_stat(&t, "prepare_2m_entries"), 1);
	/* The VMM converts one 4K page of the 2M private page on its own. */
	assert_int_equal(t_convert(&t, 4 * MIB + 9 * PAGE, PAGE, false), 0);
	assert_int_equal(model_stat(&t, "psmash_on_free"), free0 + 1);
	assert_int_equal(model_stat(&t, "rmp_assigned_2m"), 0);
	assert_int_equal(pm_kvm_ioctl(t.vcpu, KVM_RUN, 0), 0);
	assert_int_equal(pm_get_ucall(t.vcpu, NULL), PM_UCALL_DONE);
	assert_int_equal(model_stat(&t, "rmp_violations"), 0);
	t_destroy(&t);
}

static void guest_4k_pvalidate_in_2m(struct pm_guest *g, void *arg)
{
	uint64_t base = 4 * MIB;

	pm_guest_write64(g, DESC, 0);
	pm_guest_write64(g, DESC + 8, pm_snp_psc_entry(base >> 12, PM_SNP_PSC_OP_PRIVATE, true));
	PM_GUEST_ASSERT(g, pm_guest_snp_psc(g, DESC) == 0);
	/* 4K inside a 2M RMP entry: KVM smashes it, the PVALIDATE succeeds. */
	PM_GUEST_ASSERT(g, pm_guest_snp_pvalidate(g, (base + 3 * PAGE) | C, false, true) == 0);
	pm_guest_write64(g, (base + 3 * PAGE) | C, 3);
	/* The rest of the range is now 4K: a 2M PVALIDATE mismatches. */
	PM_GUEST_ASSERT(g, pm_guest_snp_pvalidate(g, base | C, true, true) ==
			   PM_SNP_PVALIDATE_FAIL_SIZEMISMATCH);
}

static void test_4k_pvalidate_in_2m_entry_smashes(void **state)
{
	struct t t;
	uint64_t smash0;

	t_create(&t, 0);
	smash0 = model_stat(&t, "rmp_psmash");
	assert_int_equal(t_run(&t, guest_4k_pvalidate_in_2m, NULL), PM_EXIT_UCALL);
	assert_int_equal(model_stat(&t, "psmash_on_fault"), 1);
	assert_int_equal(model_stat(&t, "rmp_psmash"), smash0 + 1);
	assert_int_equal(model_stat(&t, "prepare_2m_entries"), 1);
	assert_int_equal(model_stat(&t, "rmp_assigned_2m"), 0);
	t_destroy(&t);
}

static void guest_no_huge_sizemismatch(struct pm_guest *g, void *arg)
{
	/* 4K guest_memfd pages: 4K RMP entries; make_private falls back. */
	PM_GUEST_ASSERT(g, pm_guest_snp_make_private(g, 2 * MIB, 512, DESC, 0) == 0);
	pm_guest_write64(g, (2 * MIB + 100 * PAGE) | C, 1);
	PM_GUEST_ASSERT(g, pm_guest_snp_make_shared(g, 2 * MIB, 512, DESC, 0) == 0);
}

static void test_4k_gmem_pages_get_4k_entries(void **state)
{
	struct t t;

	t_create(&t, PM_GUEST_MEMFD_FLAG_NO_HUGE);
	assert_int_equal(t_run(&t, guest_no_huge_sizemismatch, NULL), PM_EXIT_UCALL);
	assert_int_equal(model_stat(&t, "prepare_2m_entries"), 0);
	assert_int_equal(model_stat(&t, "prepare_4k_entries"), 512);
	assert_int_equal(model_stat(&t, "pvalidate_failed"), 2);   /* 2M validate and rescind */
	assert_int_equal(model_stat(&t, "pvalidate"), 1024);
	t_destroy(&t);
}

/* ---- PSC ---- */

struct psc_case {
	unsigned int nr;
	uint64_t hdr;
	uint64_t entries[8];
	long want;
	uint64_t after_hdr;       /* cur_entry expected after */
};

static void guest_psc_case(struct pm_guest *g, void *arg)
{
	struct psc_case *c = arg;

	pm_guest_write64(g, DESC, c->hdr);
	for (unsigned int i = 0; i < c->nr; i++)
		pm_guest_write64(g, DESC + 8 + 8 * i, c->entries[i]);
	PM_GUEST_ASSERT(g, pm_guest_snp_psc(g, DESC) == c->want);
	for (unsigned int i = 0; i < c->nr; i++)
		c->entries[i] = pm_guest_read64(g, DESC + 8 + 8 * i);
	c->after_hdr = pm_guest_read64(g, DESC);
}

static void run_psc(struct t *t, struct psc_case *c)
{
	assert_int_equal(t_run(t, guest_psc_case, c), PM_EXIT_UCALL);
}

#define HDR(cur, end) ((uint64_t)(cur) | ((uint64_t)(end) << 16))
#define E4K(gfn, op) pm_snp_psc_entry((gfn), (op), false)
#define E2M(gfn, op) pm_snp_psc_entry((gfn), (op), true)
#define PRIV PM_SNP_PSC_OP_PRIVATE
#define SHRD PM_SNP_PSC_OP_SHARED

static void test_psc_validation_errors(void **state)
{
	const struct psc_case cases[] = {
		{ 1, HDR(0, 253), { E4K(10, PRIV) }, PM_SNP_PSC_ERROR_INVALID_HDR, 0 },
		{ 1, HDR(0, 0), { E4K(10, PRIV) | 2 }, PM_SNP_PSC_ERROR_INVALID_ENTRY, 0 },   /* cur_page > 1 */
		{ 1, HDR(0, 0), { E2M(513, PRIV) }, PM_SNP_PSC_ERROR_INVALID_ENTRY, 0 },      /* misaligned */
		{ 1, HDR(0, 0), { E2M(512, PRIV) | 513 }, PM_SNP_PSC_ERROR_INVALID_ENTRY, 0 },
		{ 1, HDR(0, 0), { E4K(10, 0) }, PM_SNP_PSC_ERROR_INVALID_ENTRY, 0 },          /* no operation */
		{ 1, HDR(0, 0), { E4K(10, 5) }, PM_SNP_PSC_ERROR_INVALID_ENTRY, 0 },
		{ 2, HDR(1, 0), { E4K(10, 0), E4K(11, 0) }, 0, 0 },   /* cur > end: nothing to do */
	};

	for (unsigned int i = 0; i < PM_ARRAY_SIZE(cases); i++) {
		struct t t;
		struct psc_case c = cases[i];

		t_create(&t, 0);
		run_psc(&t, &c);
		assert_int_equal(t.nr_exits, 0);
		t_destroy(&t);
	}
}

static void test_psc_merges_adjacent_entries(void **state)
{
	struct t t;
	struct psc_case c = {
		7, HDR(0, 6),
		{ E4K(10, PRIV), E4K(11, PRIV), E4K(12, PRIV),      /* one exit of 3 pages */
		  E4K(14, PRIV),                                    /* not contiguous */
		  E2M(512, SHRD), E2M(1024, SHRD),                  /* one exit of 1024 pages */
		  E4K(1536, PM_SNP_PSC_OP_PSMASH) },                /* complete, no exit */
		0, 0,
	};

	t_create(&t, 0);
	run_psc(&t, &c);
	assert_int_equal(t.nr_exits, 3);
	assert_int_equal(t.exits[0].gpa, 10 * PAGE);
	assert_int_equal(t.exits[0].npages, 3);
	assert_int_equal(t.exits[0].attrs, KVM_MAP_GPA_RANGE_ENCRYPTED | KVM_MAP_GPA_RANGE_PAGE_SZ_4K);
	assert_int_equal(t.exits[1].gpa, 14 * PAGE);
	assert_int_equal(t.exits[1].npages, 1);
	assert_int_equal(t.exits[2].gpa, 512 * PAGE);
	assert_int_equal(t.exits[2].npages, 1024);
	assert_int_equal(t.exits[2].attrs, KVM_MAP_GPA_RANGE_DECRYPTED | KVM_MAP_GPA_RANGE_PAGE_SZ_2M);
	assert_int_equal(c.after_hdr & 0xffff, 7);
	for (int i = 0; i < 7; i++)
		assert_int_equal(pm_snp_psc_cur_page(c.entries[i]), pm_snp_psc_2m(c.entries[i]) ? 512 : 1);
	assert_int_equal(model_stat(&t, "psc_entries"), 7);
	assert_int_equal(model_stat(&t, "psc_exits"), 3);
	t_destroy(&t);
}

/* Issues the case, then the same descriptor again as the hypervisor left it. */
static void guest_psc_twice(struct pm_guest *g, void *arg)
{
	struct psc_case *c = arg;

	guest_psc_case(g, c);
	c[1].entries[0] = c->after_hdr;
	for (unsigned int i = 0; i < c->nr; i++)
		c[1].entries[1 + i] = c->entries[i];
	PM_GUEST_ASSERT(g, pm_guest_snp_psc(g, DESC) == 0);
	c[1].after_hdr = pm_guest_read64(g, DESC);
}

static void test_psc_resumes_after_failure(void **state)
{
	struct t t;
	struct psc_case c[2] = { {
		4, HDR(0, 3),
		{ E4K(10, PRIV), E4K(20, PRIV), E4K(21, PRIV), E4K(30, PRIV) },
		PM_SNP_PSC_ERROR_GENERIC, 0,
	} };

	t_create(&t, 0);
	t.fail_exit = 2;      /* the VMM fails the second range (entries 1-2) */
	assert_int_equal(t_run(&t, guest_psc_twice, c), PM_EXIT_UCALL);
	/* After the failure: stopped at entry 1, entry 0 complete. */
	assert_int_equal(c[1].entries[0] & 0xffff, 1);
	assert_int_equal(pm_snp_psc_cur_page(c[1].entries[1]), 1);
	assert_int_equal(pm_snp_psc_cur_page(c[1].entries[2]), 0);
	/* Re-issued, only the rest was done. */
	assert_int_equal(c[1].after_hdr & 0xffff, 4);
	assert_int_equal(t.nr_exits, 4);
	assert_int_equal(t.exits[2].gpa, 20 * PAGE);
	assert_int_equal(t.exits[2].npages, 2);
	assert_int_equal(t.exits[3].gpa, 30 * PAGE);
	assert_int_equal(model_stat(&t, "psc_errors"), 1);
	t_destroy(&t);
}

static void test_psc_partial_2m_entry_continues_as_4k(void **state)
{
	struct t t;
	struct psc_case c = {
		3, HDR(0, 2),
		{ E4K(5, PRIV) | 1,                        /* done already: skipped */
		  E2M(512, PRIV) | 100,                    /* 412 pages left, as 4K */
		  E2M(1024, PRIV) },                       /* 2M: not merged with 4K */
		0, 0,
	};

	t_create(&t, 0);
	run_psc(&t, &c);
	assert_int_equal(t.nr_exits, 2);
	assert_int_equal(t.exits[0].gpa, 612 * PAGE);
	assert_int_equal(t.exits[0].npages, 412);
	assert_int_equal(t.exits[0].attrs, KVM_MAP_GPA_RANGE_ENCRYPTED | KVM_MAP_GPA_RANGE_PAGE_SZ_4K);
	assert_int_equal(t.exits[1].gpa, 1024 * PAGE);
	assert_int_equal(t.exits[1].npages, 512);
	assert_int_equal(pm_snp_psc_cur_page(c.entries[1]), 512);
	t_destroy(&t);
}

static void test_psc_without_hypercall_exit_is_generic(void **state)
{
	struct t t;
	struct kvm_enable_cap cap = { .cap = KVM_CAP_EXIT_HYPERCALL };
	struct psc_case c = { 1, HDR(0, 0), { E4K(10, PRIV) }, PM_SNP_PSC_ERROR_GENERIC, 0 };

	t_create(&t, 0);
	assert_int_equal(pm_kvm_ioctl(t.vm, KVM_ENABLE_CAP, &cap), 0);
	run_psc(&t, &c);
	assert_int_equal(t.nr_exits, 0);
	t_destroy(&t);
}

static void guest_psc_msr_cases(struct pm_guest *g, void *arg)
{
	PM_GUEST_ASSERT(g, pm_guest_snp_psc_msr(g, 50 * PAGE, 0) == (long)PM_SNP_PSC_ERROR_GENERIC);
	PM_GUEST_ASSERT(g, pm_guest_snp_psc_msr(g, 50 * PAGE, PM_SNP_PSC_OP_PSMASH) ==
			   (long)PM_SNP_PSC_ERROR_GENERIC);
	PM_GUEST_ASSERT(g, pm_guest_snp_psc_msr(g, 50 * PAGE + 123, PM_SNP_PSC_OP_PRIVATE) == 0);
	PM_GUEST_ASSERT(g, pm_guest_snp_psc_msr(g, 51 * PAGE, PM_SNP_PSC_OP_SHARED) == 0);
	PM_GUEST_ASSERT(g, pm_guest_snp_psc_msr(g, 52 * PAGE, PM_SNP_PSC_OP_PRIVATE) ==
			   (long)PM_SNP_PSC_ERROR_GENERIC);      /* the VMM fails the third exit */
	PM_GUEST_ASSERT(g, pm_guest_model_call(g, PM_SNP_NR_CALLS, 0, 0, 0) == -KVM_ENOSYS);
}

static void test_psc_msr_protocol(void **state)
{
	struct t t;

	t_create(&t, 0);
	t.fail_exit = 3;
	assert_int_equal(t_run(&t, guest_psc_msr_cases, NULL), PM_EXIT_UCALL);
	assert_int_equal(t.nr_exits, 3);                   /* one 4K page per exit */
	assert_int_equal(t.exits[0].gpa, 50 * PAGE);
	assert_int_equal(t.exits[0].npages, 1);
	assert_int_equal(t.exits[0].attrs, KVM_MAP_GPA_RANGE_ENCRYPTED | KVM_MAP_GPA_RANGE_PAGE_SZ_4K);
	assert_int_equal(t.exits[1].attrs, KVM_MAP_GPA_RANGE_DECRYPTED | KVM_MAP_GPA_RANGE_PAGE_SZ_4K);
	assert_int_equal(model_stat(&t, "psc_msr"), 5);
	t_destroy(&t);
}

static void test_other_types_have_no_snp_ioctls(void **state)
{
	int kvm = pm_kvm_open(), vm = pm_kvm_ioctl(kvm, KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM);
	struct pm_model_stats st;
	struct kvm_sev_cmd c = { .id = KVM_SEV_SNP_LAUNCH_START };

	assert_fails(pm_kvm_ioctl(vm, PM_KVM_GET_MODEL_STATS, &st), ENOTTY);
	assert_fails(pm_kvm_ioctl(vm, KVM_MEMORY_ENCRYPT_OP, &c), ENOTTY);
	pm_kvm_close(vm);
	pm_kvm_close(kvm);
}

static void test_vm_type_offers_gmem_mmap_but_not_init_shared(void **state)
{
	int kvm = pm_kvm_open(), vm, fd;
	struct kvm_create_guest_memfd cg = { .size = MEM, .flags = GUEST_MEMFD_FLAG_MMAP };

	assert_true(pm_kvm_ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_VM_TYPES) & (1 << KVM_X86_SNP_VM));
	vm = pm_kvm_ioctl(kvm, KVM_CREATE_VM, KVM_X86_SNP_VM);
	assert_true(vm >= 0);
	/* Upstream's "Allow mmap() on guest_memfd for x86 VMs with private
	 * memory": MMAP is listed; pages never start shared. */
	assert_true(pm_kvm_ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_FLAGS) &
		    GUEST_MEMFD_FLAG_MMAP);
	assert_false(pm_kvm_ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_FLAGS) &
		     GUEST_MEMFD_FLAG_INIT_SHARED);
	fd = pm_kvm_ioctl(vm, KVM_CREATE_GUEST_MEMFD, &cg);
	assert_true(fd >= 0);
	pm_kvm_close(fd);
	cg.flags |= GUEST_MEMFD_FLAG_INIT_SHARED;
	assert_fails(pm_kvm_ioctl(vm, KVM_CREATE_GUEST_MEMFD, &cg), EINVAL);
	assert_int_equal(pm_kvm_ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_MEMORY_ATTRIBUTES),
			 KVM_MEMORY_ATTRIBUTE_PRIVATE);
	pm_kvm_close(vm);
	pm_kvm_close(kvm);
}

#define MMAP_PRIV   (100 * PAGE)
#define MMAP_SHARED (101 * PAGE)
#define MMAP_SECRET 0x5ec2e7c0ffee0001ULL

static void guest_private_and_shared_pages_in_gmem(struct pm_guest *g, void *arg)
{
	PM_GUEST_ASSERT(g, pm_guest_snp_make_private(g, MMAP_PRIV, 1, DESC, 1) == 0);
	pm_guest_write64(g, MMAP_PRIV | C, MMAP_SECRET);
	/* A shared page of a gmem-only slot comes from the file too. */
	pm_guest_write64(g, MMAP_SHARED, 0x5a5a);
	PM_GUEST_ASSERT(g, pm_guest_read64(g, MMAP_PRIV | C) == MMAP_SECRET);
	PM_GUEST_ASSERT(g, pm_guest_read64(g, MMAP_SHARED) == 0x5a5a);
}

/* An SNP VM's guest_memfd mapped by the VMM: its private page faults in
 * the mapping (and the RMP refuses the host its frame), its shared page
 * serves the guest from a frame the RMP leaves to the hypervisor. */
static void test_mmap_private_page_faults_shared_page_works(void **state)
{
	struct pm_gmem *gm;
	pm_pfn_t priv, shared;
	uint8_t *view;
	struct t t;

	/* 4K pages: prepare hands the guest a whole guest_memfd page, and a 2M
	 * one would take the shared page into the private RMP entry too (the
	 * per-page state of in-place conversion is what separates them). */
	t_create(&t, GUEST_MEMFD_FLAG_MMAP | PM_GUEST_MEMFD_FLAG_NO_HUGE);
	assert_int_equal(t_run(&t, guest_private_and_shared_pages_in_gmem, NULL), PM_EXIT_UCALL);
	view = pm_kvm_mmap(NULL, MEM, PROT_READ | PROT_WRITE, MAP_SHARED, t.gmem, 0);
	assert_true(view != MAP_FAILED);
	assert_true(pm_test_sigbus(view + MMAP_PRIV, false, NULL));
	assert_true(pm_test_sigbus(view + MMAP_PRIV, true, NULL));
	/* No INIT_SHARED: the host sees no page of the file. */
	assert_true(pm_test_sigbus(view + MMAP_SHARED, false, NULL));
	/* The shared write went to the file, not the VMM's memory. */
	assert_int_equal(*(uint64_t *)(t.shared + MMAP_SHARED), 0);
	gm = pm_test_gmem_of(t.gmem);
	priv = pm_gmem_peek_pfn(gm, MMAP_PRIV / PAGE);
	shared = pm_gmem_peek_pfn(gm, MMAP_SHARED / PAGE);
	assert_true(priv != PM_PFN_INVALID && shared != PM_PFN_INVALID);
	assert_true(rmp_is_assigned(rmp_effective(priv)));
	assert_false(rmp_is_assigned(rmp_effective(shared)));
	assert_int_equal(*(uint64_t *)pm_pfn_to_hva(shared), 0x5a5a);
	assert_int_equal(pm_kvm_munmap(view, MEM), 0);
	t_destroy(&t);
}

/* NO_DIRECT_MAP on an SNP VM: the private page's frame faults at its
 * direct-map address; the firmware's and the RMP's paths (PVALIDATE finds
 * the frame from the vCPU's translation) still work through the alias. */
static void test_no_direct_map_private_page(void **state)
{
	pm_pfn_t priv;
	struct t t;

	t_create(&t, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_NO_DIRECT_MAP |
		 PM_GUEST_MEMFD_FLAG_NO_HUGE);
	assert_int_equal(t_run(&t, guest_private_and_shared_pages_in_gmem, NULL), PM_EXIT_UCALL);
	priv = pm_gmem_peek_pfn(pm_test_gmem_of(t.gmem), MMAP_PRIV / PAGE);
	assert_true(rmp_is_assigned(rmp_effective(priv)));
	assert_int_equal(pm_test_read_faults(pm_pfn_to_direct(priv)), 1);
	assert_true(pm_pfn_to_hva(priv) != pm_pfn_to_direct(priv));
	assert_int_equal(model_stat(&t, "unvalidated_access"), 0);
	t_destroy(&t);
}

static int teardown_all(void **state)
{
	/* Every SNP VM is gone: nothing may be left assigned (rmp_put checks),
	 * and no test may have caused an RMP violation. */
	assert_int_equal(rmp_users(), 0);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vm_type_offers_gmem_mmap_but_not_init_shared),
		cmocka_unit_test(test_mmap_private_page_faults_shared_page_works),
		cmocka_unit_test(test_no_direct_map_private_page),
		cmocka_unit_test(test_launch_start_errors),
		cmocka_unit_test(test_launch_update_errors),
		cmocka_unit_test(test_launch_update_partial_progress),
		cmocka_unit_test(test_launch_digest_and_guest_view),
		cmocka_unit_test(test_unvalidated_access_is_fatal),
		cmocka_unit_test(test_cbit_mismatch_is_implicit_conversion),
		cmocka_unit_test(test_pvalidate),
		cmocka_unit_test(test_2m_private_pages),
		cmocka_unit_test(test_partial_free_of_2m_entry_smashes),
		cmocka_unit_test(test_4k_pvalidate_in_2m_entry_smashes),
		cmocka_unit_test(test_4k_gmem_pages_get_4k_entries),
		cmocka_unit_test(test_psc_validation_errors),
		cmocka_unit_test(test_psc_merges_adjacent_entries),
		cmocka_unit_test(test_psc_resumes_after_failure),
		cmocka_unit_test(test_psc_partial_2m_entry_continues_as_4k),
		cmocka_unit_test(test_psc_without_hypercall_exit_is_generic),
		cmocka_unit_test(test_psc_msr_protocol),
		cmocka_unit_test(test_other_types_have_no_snp_ioctls),
	};

	return cmocka_run_group_tests(tests, NULL, teardown_all);
}

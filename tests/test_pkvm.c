/* SPDX-License-Identifier: MIT */
/*
 * Tests of the pkvm VM type (src/models/pkvm/pkvm.c) through the KVM uAPI:
 * creation and destruction of VM type 16 with its hyp; what the type
 * accepts (guest_memfd memslots only, no memory attributes); a guest
 * writing and reading its private memory, which the host cannot reach (host
 * stage-2 fault, SIGBUS through guest_memfd mmap); memslot deletion, punch
 * hole and VM teardown taking the pages back through the hyp (poisoned:
 * zeroed, and counted).
 *
 * The hyp is looked at through its check-state queries (hyp.h); a guest
 * page's frame is found from the host stage-2 annotations (who owns each
 * pool frame), not from privmem's own bookkeeping.
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
#include "gmem/pool.h"
#include "models/pkvm/hyp_internal.h"
#include "models/pkvm/pkvm.h"
#include "lib/testutil.h"

#define PAGE      4096ULL
#define MIB       (1ULL << 20)
#define GPA       (1ULL << 30)       /* the guest memory slot */
#define GMEM_SIZE (2 * MIB)
#define NPAGES    16                 /* pages the guests touch */
#define PUNCH     (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)

struct vmm {
	int kvm, vm, gmem, vcpu;
	struct kvm_run *run;
};

static uint64_t pattern(uint64_t gpa, uint64_t seed)
{
	return ((gpa >> 3) * 0x9E3779B97F4A7C15ULL ^ seed * 0xC2B2AE3D27D4EB4FULL) | 1;
}

static int set_slot(struct vmm *m, uint64_t size)
{
	struct kvm_userspace_memory_region2 r = {
		.slot = 0, .flags = KVM_MEM_GUEST_MEMFD, .guest_phys_addr = GPA,
		.memory_size = size, .guest_memfd = (uint32_t)m->gmem,
	};

	return pm_kvm_ioctl(m->vm, KVM_SET_USER_MEMORY_REGION2, &r);
}

static void vmm_create(struct vmm *m)
{
	struct kvm_create_guest_memfd cg = { .size = GMEM_SIZE, .flags = GUEST_MEMFD_FLAG_MMAP };

	m->kvm = pm_kvm_open();
	assert_true(m->kvm >= 0);
	m->vm = pm_kvm_ioctl(m->kvm, KVM_CREATE_VM, PM_VM_TYPE_PKVM);
	assert_true(m->vm >= 0);
	m->gmem = pm_kvm_ioctl(m->vm, KVM_CREATE_GUEST_MEMFD, &cg);
	assert_true(m->gmem >= 0);
	assert_int_equal(set_slot(m, GMEM_SIZE), 0);
	m->vcpu = pm_kvm_ioctl(m->vm, KVM_CREATE_VCPU, 0);
	assert_true(m->vcpu >= 0);
	m->run = pm_kvm_mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, m->vcpu, 0);
	assert_true(m->run != MAP_FAILED);
}

static void vmm_destroy(struct vmm *m)
{
	assert_int_equal(pm_kvm_munmap(m->run, PAGE), 0);
	assert_int_equal(pm_kvm_close(m->vcpu), 0);
	assert_int_equal(pm_kvm_close(m->gmem), 0);
	assert_int_equal(pm_kvm_close(m->vm), 0);
	assert_int_equal(pm_kvm_close(m->kvm), 0);
}

static void vmm_guest(struct vmm *m, void (*fn)(struct pm_guest *, void *), void *arg)
{
	struct pm_guest_entry e = { .fn = fn, .arg = arg };

	assert_int_equal(pm_kvm_ioctl(m->vcpu, PM_KVM_SET_GUEST, &e), 0);
}

/* Runs the vCPU to its next ucall; returns the ucall's command. */
static uint64_t vmm_run(struct vmm *m, struct pm_ucall *uc)
{
	assert_int_equal(pm_kvm_ioctl(m->vcpu, KVM_RUN, 0), 0);
	assert_int_equal(m->run->exit_reason, PM_EXIT_UCALL);
	pm_get_ucall(m->vcpu, uc);
	if (uc->cmd == PM_UCALL_ABORT)
		fail_msg("guest aborted: %s", uc->msg);
	return uc->cmd;
}

/* ---- guest code ---- */

/* Writes a pattern (seed) in every word of NPAGES pages, syncs; then counts
 * the words that read `expect_seed`'s pattern (0: zero) and syncs that. */
struct wr_args {
	uint64_t seed;
	uint64_t expect_seed;     /* after the first sync; 0: expect zeroes */
};

static uint64_t guest_check(struct pm_guest *g, uint64_t seed)
{
	uint64_t good = 0;

	for (uint64_t gpa = GPA; gpa < GPA + NPAGES * PAGE; gpa += 8)
		good += pm_guest_read64(g, gpa) == (seed ? pattern(gpa, seed) : 0);
	return good;
}

static void guest_write_then_check(struct pm_guest *g, void *arg)
{
	struct wr_args *a = arg;

	for (uint64_t gpa = GPA; gpa < GPA + NPAGES * PAGE; gpa += 8)
		pm_guest_write64(g, gpa, pattern(gpa, a->seed));
	pm_guest_sync(g, guest_check(g, a->seed));
	pm_guest_sync(g, guest_check(g, a->expect_seed));
}

#define WORDS (NPAGES * PAGE / 8)

/* ---- host side queries ---- */

/* The frame the hyp records as owned by VM `vm_id` at gfn, or PM_PFN_INVALID. */
static pm_pfn_t guest_frame(struct pkvm_hyp *hyp, unsigned int vm_id, gfn_t gfn)
{
	struct pkvm_owner o;

	for (pm_pfn_t pfn = 0; pfn < hyp->nr_frames; pfn++) {
		if (pkvm_host_state(hyp, pfn) != PKVM_NOPAGE)
			continue;
		pkvm_host_owner(hyp, pfn, &o);
		if (o.id == PKVM_ID_GUEST && o.vm_id == vm_id && o.gfn == gfn)
			return pfn;
	}
	return PM_PFN_INVALID;
}

static uint64_t frames_owned_by(struct pkvm_hyp *hyp, unsigned int vm_id)
{
	struct pkvm_owner o;
	uint64_t n = 0;

	for (pm_pfn_t pfn = 0; pfn < hyp->nr_frames; pfn++) {
		if (pkvm_host_state(hyp, pfn) != PKVM_NOPAGE)
			continue;
		pkvm_host_owner(hyp, pfn, &o);
		n += o.id == PKVM_ID_GUEST && o.vm_id == vm_id;
	}
	return n;
}

static bool frame_is_zero(pm_pfn_t pfn)
{
	const uint8_t *p = pm_pfn_to_hva(pfn);

	for (size_t i = 0; i < PAGE; i++)
		if (p[i])
			return false;
	return true;
}

static struct pkvm_stats hyp_stats(struct pkvm_hyp *hyp)
{
	struct pkvm_stats st;

	pkvm_hyp_get_stats(hyp, &st);
	return st;
}

/* The VM owning guest page gfn (one scan of the host stage-2). */
static unsigned int owner_of_gfn(struct pkvm_hyp *hyp, gfn_t gfn)
{
	struct pkvm_owner o;

	for (pm_pfn_t pfn = 0; pfn < hyp->nr_frames; pfn++) {
		if (pkvm_host_state(hyp, pfn) != PKVM_NOPAGE)
			continue;
		pkvm_host_owner(hyp, pfn, &o);
		if (o.id == PKVM_ID_GUEST && o.gfn == gfn)
			return o.vm_id;
	}
	return PKVM_MAX_VMS;
}

/* Runs guest_write_then_check to its first sync (the pages written, by
 * the only VM that touched guest memory); that VM's id in the hyp. */
static unsigned int write_pages(struct vmm *m, struct pkvm_hyp *hyp, struct wr_args *a)
{
	struct pm_ucall uc;
	unsigned int id;

	vmm_guest(m, guest_write_then_check, a);
	assert_int_equal(vmm_run(m, &uc), PM_UCALL_SYNC);
	assert_int_equal(uc.args[0], WORDS);
	id = owner_of_gfn(hyp, GPA / PAGE);
	assert_int_not_equal(id, PKVM_MAX_VMS);
	assert_int_equal(frames_owned_by(hyp, id), NPAGES);
	return id;
}

/* ---- tests ---- */

static void test_vm_type_16_creates_and_destroys_its_hyp_vm(void **state)
{
	int kvm = pm_kvm_open(), vm;

	assert_true(kvm >= 0);
	assert_true(pm_kvm_ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_VM_TYPES) & (1 << PM_VM_TYPE_PKVM));
	assert_null(pkvm_model_hyp());
	vm = pm_kvm_ioctl(kvm, KVM_CREATE_VM, PM_VM_TYPE_PKVM);
	assert_true(vm >= 0);
	assert_non_null(pkvm_model_hyp());
	assert_int_equal(pm_kvm_close(vm), 0);
	assert_null(pkvm_model_hyp());   /* the last pkvm VM takes the hyp with it */
	assert_int_equal(pm_kvm_close(kvm), 0);
}

static void test_pkvm_accepts_guest_memfd_slots_only_and_no_attributes(void **state)
{
	struct kvm_create_guest_memfd shared = { .size = GMEM_SIZE,
		.flags = GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED };
	struct kvm_memory_attributes priv = { .address = GPA, .size = PAGE,
		.attributes = KVM_MEMORY_ATTRIBUTE_PRIVATE };
	struct kvm_memory_attributes none = { .address = GPA, .size = PAGE };
	static uint8_t anon[4 * PAGE] __attribute__((aligned(4096)));
	struct kvm_userspace_memory_region2 r = {
		.slot = 1, .guest_phys_addr = 0, .memory_size = sizeof(anon),
		.userspace_addr = (uintptr_t)anon,
	};
	struct vmm m;

	vmm_create(&m);
	assert_fails(pm_kvm_ioctl(m.vm, KVM_SET_USER_MEMORY_REGION2, &r), EINVAL);
	r.flags = KVM_MEM_READONLY;
	assert_fails(pm_kvm_ioctl(m.vm, KVM_SET_USER_MEMORY_REGION2, &r), EINVAL);
	assert_int_equal(pm_kvm_ioctl(m.vm, KVM_CHECK_EXTENSION, KVM_CAP_MEMORY_ATTRIBUTES), 0);
	assert_fails(pm_kvm_ioctl(m.vm, KVM_SET_MEMORY_ATTRIBUTES, &priv), EINVAL);
	assert_int_equal(pm_kvm_ioctl(m.vm, KVM_SET_MEMORY_ATTRIBUTES, &none), 0);
	assert_fails(pm_kvm_ioctl(m.vm, KVM_CREATE_GUEST_MEMFD, &shared), EINVAL);
	vmm_destroy(&m);
}

static void test_guest_private_memory_is_kept_and_unreachable_by_the_host(void **state)
{
	struct wr_args a = { .seed = 7, .expect_seed = 7 };
	struct pkvm_stats before, after;
	struct pkvm_hyp *hyp;
	struct pm_ucall uc;
	struct vmm m;
	uint8_t *view, byte = 0;
	unsigned int id;
	pm_pfn_t pfn;

	vmm_create(&m);
	hyp = pkvm_model_hyp();
	before = hyp_stats(hyp);
	id = write_pages(&m, hyp, &a);
	after = hyp_stats(hyp);
	assert_int_equal(after.done[PKVM_HOST_DONATE_GUEST] - before.done[PKVM_HOST_DONATE_GUEST],
			 NPAGES);

	/* The frame holds the guest's data, and the host is refused. */
	pfn = guest_frame(hyp, id, GPA / PAGE + 3);
	assert_int_not_equal(pfn, PM_PFN_INVALID);
	assert_int_equal(pkvm_host_state(hyp, pfn), PKVM_NOPAGE);
	assert_int_equal(pkvm_guest_state(hyp->vms[id], GPA / PAGE + 3, NULL),
			 PKVM_PAGE_OWNED);
	assert_memory_equal((uint64_t[]){ pattern(GPA + 3 * PAGE, 7) }, pm_pfn_to_hva(pfn), 8);
	assert_int_equal(pkvm_host_access(hyp, pfn, false), -EFAULT);
	assert_int_equal(pkvm_host_access(hyp, pfn, true), -EFAULT);
	assert_int_equal(hyp_stats(hyp).host_s2_faults - after.host_s2_faults, 2);
	view = pm_kvm_mmap(NULL, GMEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, m.gmem, 0);
	assert_true(view != MAP_FAILED);
	assert_true(pm_test_sigbus(view + 3 * PAGE, false, &byte));
	assert_true(pm_test_sigbus(view + 3 * PAGE, true, &byte));
	assert_int_equal(pm_kvm_munmap(view, GMEM_SIZE), 0);

	/* The guest reads back what it wrote. */
	assert_int_equal(vmm_run(&m, &uc), PM_UCALL_SYNC);
	assert_int_equal(uc.args[0], WORDS);
	vmm_destroy(&m);
}

/* A pkvm VM whose guest wrote its NPAGES pages (seed), with their frames
 * and the hypervisor's statistics just after. */
struct written {
	struct wr_args a;        /* the guest's argument: lives as long as the VM */
	struct vmm m;
	struct pkvm_hyp *hyp;
	unsigned int id;
	pm_pfn_t pfn[NPAGES];
	struct pkvm_stats before;
};

static void written_start(struct written *w, uint64_t seed, uint64_t expect_seed)
{
	w->a = (struct wr_args){ .seed = seed, .expect_seed = expect_seed };
	vmm_create(&w->m);
	w->hyp = pkvm_model_hyp();
	w->id = write_pages(&w->m, w->hyp, &w->a);
	for (unsigned int i = 0; i < NPAGES; i++)
		w->pfn[i] = guest_frame(w->hyp, w->id, GPA / PAGE + i);
	w->before = hyp_stats(w->hyp);
}

/* Every page the guest owned was poisoned, and its frame went back to the
 * host, zeroed. */
static void assert_all_poisoned(struct written *w)
{
	assert_int_equal(hyp_stats(w->hyp).pages_poisoned - w->before.pages_poisoned, NPAGES);
	assert_int_equal(frames_owned_by(w->hyp, w->id), 0);
	for (unsigned int i = 0; i < NPAGES; i++)
		assert_int_equal(pkvm_host_state(w->hyp, w->pfn[i]), PKVM_PAGE_OWNED);
}

/* The guest runs again and reads zeroes in place of what it wrote. */
static void assert_guest_reads_zero(struct written *w)
{
	struct pm_ucall uc;

	assert_int_equal(vmm_run(&w->m, &uc), PM_UCALL_SYNC);
	assert_int_equal(uc.args[0], WORDS);
}

static void test_memslot_deletion_reclaims_and_poisons_guest_pages(void **state)
{
	struct written w;

	written_start(&w, 9, 0);
	assert_int_equal(set_slot(&w.m, 0), 0);   /* delete */
	assert_all_poisoned(&w);
	for (unsigned int i = 0; i < NPAGES; i++) {
		/* guest_memfd still holds the frame: the hyp zeroed it. */
		assert_true(pkvm_page_poisoned(w.hyp, w.pfn[i]));
		assert_true(frame_is_zero(w.pfn[i]));
		assert_int_equal(pkvm_host_access(w.hyp, w.pfn[i], false), 0);
	}
	/* The slot again: the guest gets its pages back, zeroed. */
	assert_int_equal(set_slot(&w.m, GMEM_SIZE), 0);
	assert_guest_reads_zero(&w);
	vmm_destroy(&w.m);
}

static void test_punch_hole_reclaims_through_the_hyp(void **state)
{
	struct written w;

	written_start(&w, 11, 0);
	assert_int_equal(pm_kvm_fallocate(w.m.gmem, PUNCH, 0, NPAGES * PAGE), 0);
	assert_int_equal(hyp_stats(w.hyp).done[PKVM_HOST_RECLAIM_PAGE_GUEST] -
			 w.before.done[PKVM_HOST_RECLAIM_PAGE_GUEST], NPAGES);
	assert_all_poisoned(&w);
	assert_guest_reads_zero(&w);            /* new pages: zero */
	vmm_destroy(&w.m);
}

/* A second pkvm VM keeps the hyp alive while the first is destroyed. */
static void test_vm_destruction_poisons_every_guest_page(void **state)
{
	struct written w;
	struct vmm keep;

	vmm_create(&keep);
	written_start(&w, 13, 13);
	vmm_destroy(&w.m);
	assert_ptr_equal(pkvm_model_hyp(), w.hyp);
	assert_all_poisoned(&w);
	vmm_destroy(&keep);
	assert_null(pkvm_model_hyp());
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vm_type_16_creates_and_destroys_its_hyp_vm),
		cmocka_unit_test(test_pkvm_accepts_guest_memfd_slots_only_and_no_attributes),
		cmocka_unit_test(test_guest_private_memory_is_kept_and_unreachable_by_the_host),
		cmocka_unit_test(test_memslot_deletion_reclaims_and_poisons_guest_pages),
		cmocka_unit_test(test_punch_hole_reclaims_through_the_hyp),
		cmocka_unit_test(test_vm_destruction_poisons_every_guest_page),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * Tests of the pkvm VM type (src/models/pkvm/pkvm.c) through the KVM uAPI:
 * creation and destruction of VM type 16 with its hyp; what the type
 * accepts (guest_memfd memslots only, no memory attributes); a guest
 * writing and reading its private memory, which the host cannot reach (host
 * stage-2 fault, SIGSEGV through guest_memfd mmap); pages the guest holds
 * pinned against punches and memslots frozen once the VM ran; memslot
 * deletion before the first run, the file's release and VM teardown taking
 * the pages back through the hyp (poisoned: zeroed, and counted); sharing
 * in place through MEM_SHARE / MEM_UNSHARE, one granule per hypercall and
 * no exit. (test_pkvm_iface.c has the rest of the guest interface.)
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
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <linux/falloc.h>

#include <privmem/guest.h>
#include <privmem/privmem.h>
#include "host/host_guard.h"
#include "gmem/gmem_internal.h"   /* pm_gmem_views_test_plain */
#include "host/pool.h"
#include "models/pkvm/pkvm.h"
#include "lib/pkvm_check.h"
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
	assert_true(pm_test_sigsegv(view + 3 * PAGE, false, &byte));
	assert_true(pm_test_sigsegv(view + 3 * PAGE, true, &byte));
	assert_int_equal(byte, 0);              /* nothing was read */
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

/* The guest runs again and reads back what it wrote (expect_seed ==
 * seed): nothing was taken from it. */
static void assert_guest_reads_back(struct written *w)
{
	struct pm_ucall uc;

	assert_int_equal(w->a.expect_seed, w->a.seed);
	assert_int_equal(vmm_run(&w->m, &uc), PM_UCALL_SYNC);
	assert_int_equal(uc.args[0], WORDS);
}

/* The guest's counters of the model (PM_KVM_GET_MODEL_STATS on the
 * system handle) by name; defined with the sharing tests below. */
static uint64_t model_count(const char *name);

static int add_slot(struct vmm *m, uint32_t slot, uint64_t gpa, uint64_t size, int gmem)
{
	struct kvm_userspace_memory_region2 r = {
		.slot = slot, .flags = KVM_MEM_GUEST_MEMFD, .guest_phys_addr = gpa,
		.memory_size = size, .guest_memfd = (uint32_t)gmem,
	};

	return pm_kvm_ioctl(m->vm, KVM_SET_USER_MEMORY_REGION2, &r);
}

/*
 * Once the VM has run, every memslot change fails with EPERM (after KVM's
 * own checks: a bad request keeps its own errno, and a guest_memfd slot,
 * which KVM lets only be deleted, is EINVAL to anything else) and changes
 * nothing: the guest keeps its pages and data.
 */
static void test_memslots_are_frozen_once_the_vm_has_run(void **state)
{
	struct kvm_create_guest_memfd cg = { .size = PAGE };
	uint64_t refused = model_count("memslot_frozen_refusals");
	struct written w;
	int gmem2;

	written_start(&w, 9, 9);
	gmem2 = pm_kvm_ioctl(w.m.vm, KVM_CREATE_GUEST_MEMFD, &cg);
	assert_true(gmem2 >= 0);
	assert_fails(set_slot(&w.m, 0), EPERM);                                /* delete */
	assert_fails(add_slot(&w.m, 1, 2 * GPA, PAGE, gmem2), EPERM);          /* create */
	assert_fails(add_slot(&w.m, 1, 2 * GPA, PAGE + 1, gmem2), EINVAL);     /* KVM's check first */
	assert_fails(add_slot(&w.m, 1, GPA, PAGE, gmem2), EEXIST);             /* overlap first */
	assert_fails(set_slot(&w.m, GMEM_SIZE), EINVAL);                       /* immutable, KVM says first */
	assert_int_equal(model_count("memslot_frozen_refusals") - refused, 2);
	assert_int_equal(pm_kvm_close(gmem2), 0);
	assert_int_equal(frames_owned_by(w.hyp, w.id), NPAGES);
	assert_int_equal(hyp_stats(w.hyp).done[PKVM_HOST_RECLAIM_PAGE_GUEST],
			 w.before.done[PKVM_HOST_RECLAIM_PAGE_GUEST]);
	assert_guest_reads_back(&w);
	vmm_destroy(&w.m);
}

/* KVM_PRE_FAULT_MEMORY of the first NPAGES pages (no KVM_RUN). */
static void pre_fault(struct vmm *m)
{
	struct kvm_pre_fault_memory range = { .gpa = GPA, .size = NPAGES * PAGE };

	assert_int_equal(pm_kvm_ioctl(m->vcpu, KVM_PRE_FAULT_MEMORY, &range), 0);
	assert_int_equal(range.size, 0);
}

/*
 * Before the first run the memslots may change: deleting one takes back
 * what the guest was given (pre-faulted pages: donated, then poisoned and
 * zeroed by the reclaim), and the slot can come back. Those pages are
 * pinned already (a punch is refused), as upstream pins at the fault.
 */
static void test_before_the_first_run_slot_deletion_reclaims_and_poisons(void **state)
{
	struct pkvm_stats before;
	struct pkvm_hyp *hyp;
	unsigned int id;
	struct vmm m;

	vmm_create(&m);
	hyp = pkvm_model_hyp();
	pre_fault(&m);
	id = owner_of_gfn(hyp, GPA / PAGE);
	assert_int_not_equal(id, PKVM_MAX_VMS);
	assert_int_equal(frames_owned_by(hyp, id), NPAGES);
	assert_fails(pm_kvm_fallocate(m.gmem, PUNCH, 0, PAGE), EBUSY);
	before = hyp_stats(hyp);
	assert_int_equal(set_slot(&m, 0), 0);
	assert_int_equal(hyp_stats(hyp).pages_poisoned - before.pages_poisoned, NPAGES);
	assert_int_equal(frames_owned_by(hyp, id), 0);
	assert_int_equal(pm_kvm_fallocate(m.gmem, PUNCH, 0, GMEM_SIZE), 0);  /* nothing pinned now */
	assert_int_equal(set_slot(&m, GMEM_SIZE), 0);
	vmm_destroy(&m);
}

/*
 * The file's release (its last close while the VM lives) cannot be
 * refused: the hyp takes the guest's pages back, poisoned and zeroed.
 */
static void test_closing_the_guest_memfd_takes_the_guest_pages_back_poisoned(void **state)
{
	struct written w;

	written_start(&w, 10, 10);
	assert_int_equal(pm_kvm_close(w.m.gmem), 0);
	assert_all_poisoned(&w);
	for (unsigned int i = 0; i < NPAGES; i++)
		assert_true(frame_is_zero(w.pfn[i]));
	assert_int_equal(pm_kvm_munmap(w.m.run, PAGE), 0);
	assert_int_equal(pm_kvm_close(w.m.vcpu), 0);
	assert_int_equal(pm_kvm_close(w.m.vm), 0);
	assert_int_equal(pm_kvm_close(w.m.kvm), 0);
}

/*
 * A page the guest holds is pinned: a punch over one fails with EBUSY and
 * takes nothing (the guest reads its data back), whether it comes from
 * fallocate or from madvise(MADV_REMOVE) on a view (a punch too); the
 * pages it never touched punch as before.
 */
static void test_punch_over_pages_the_guest_holds_is_ebusy_and_takes_nothing(void **state)
{
	uint64_t refused = model_count("punch_pinned_refusals");
	struct written w;
	uint8_t *view;

	written_start(&w, 11, 11);
	assert_fails(pm_kvm_fallocate(w.m.gmem, PUNCH, 0, NPAGES * PAGE), EBUSY);
	assert_fails(pm_kvm_fallocate(w.m.gmem, PUNCH, (NPAGES - 1) * PAGE, 2 * PAGE), EBUSY);
	assert_int_equal(pm_kvm_fallocate(w.m.gmem, PUNCH, NPAGES * PAGE, GMEM_SIZE - NPAGES * PAGE), 0);
	view = pm_kvm_mmap(NULL, GMEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, w.m.gmem, 0);
	assert_true(view != MAP_FAILED);
	assert_fails(pm_kvm_madvise(view + PAGE, PAGE, MADV_REMOVE), EBUSY);
	assert_int_equal(pm_kvm_madvise(view + NPAGES * PAGE, PAGE, MADV_REMOVE), 0);
	assert_int_equal(pm_kvm_munmap(view, GMEM_SIZE), 0);
	assert_int_equal(model_count("punch_pinned_refusals") - refused, 3);
	assert_int_equal(hyp_stats(w.hyp).done[PKVM_HOST_RECLAIM_PAGE_GUEST],
			 w.before.done[PKVM_HOST_RECLAIM_PAGE_GUEST]);
	for (unsigned int i = 0; i < NPAGES; i++)
		assert_int_equal(guest_frame(w.hyp, w.id, GPA / PAGE + i), w.pfn[i]);
	assert_guest_reads_back(&w);
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

/* ---- sharing ---- */

/* Runs the vCPU to its next exit; returns the exit reason. */
static uint32_t vmm_run_exit(struct vmm *m)
{
	assert_int_equal(pm_kvm_ioctl(m->vcpu, KVM_RUN, 0), 0);
	if (m->run->exit_reason == PM_EXIT_UCALL) {
		struct pm_ucall uc;

		if (pm_get_ucall(m->vcpu, &uc) == PM_UCALL_ABORT)
			fail_msg("guest aborted: %s", uc.msg);
	}
	return m->run->exit_reason;
}

/* The next exit is a SYNC with argument `want` (a result the guest reports). */
static void expect_sync(struct vmm *m, uint64_t want)
{
	struct pm_ucall uc;

	assert_int_equal(vmm_run(m, &uc), PM_UCALL_SYNC);
	assert_int_equal((int64_t)uc.args[0], (int64_t)want);
}

/* The VM's exits of one reason, every vCPU's (PM_KVM_GET_VM_STATS). */
static uint64_t vmm_exits(struct vmm *m, int reason)
{
	struct pm_vm_stats st;

	assert_int_equal(pm_kvm_ioctl(m->vm, PM_KVM_GET_VM_STATS, &st), 0);
	return st.exits[reason];
}

/* The hyp's counters: PM_KVM_GET_MODEL_STATS on the system handle. */
static struct pm_model_stats pkvm_stats_of(int kvm)
{
	struct pm_model_stats st = { .vm_type = PM_VM_TYPE_PKVM };

	assert_int_equal(pm_kvm_ioctl(kvm, PM_KVM_GET_MODEL_STATS, &st), 0);
	return st;
}

static struct pm_model_stats pkvm_stats(struct vmm *m)
{
	return pkvm_stats_of(m->kvm);
}

/* One counter by the name the hyp gives it; a name it lacks fails. */
static uint64_t count(const struct pm_model_stats *st, const char *name)
{
	for (unsigned int i = 0; i < st->nr; i++)
		if (!strcmp(st->v[i].name, name))
			return st->v[i].value;
	fail_msg("the hyp reports no counter %s", name);
	return 0;
}

static uint64_t model_count(const char *name)
{
	int kvm = pm_kvm_open();
	struct pm_model_stats st;

	assert_true(kvm >= 0);
	st = pkvm_stats_of(kvm);
	assert_int_equal(pm_kvm_close(kvm), 0);
	return count(&st, name);
}

static uint8_t *map_view(struct vmm *m)
{
	uint8_t *view = pm_kvm_mmap(NULL, GMEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, m->gmem, 0);

	assert_true(view != MAP_FAILED);
	return view;
}

/* A page the host may not map faults with SIGSEGV (pKVM's abort). */
static bool view_readable(uint8_t *view, uint64_t page)
{
	uint8_t byte;

	return !pm_test_sigsegv(view + page * PAGE, false, &byte);
}

#define HOST_MARK 0x484f53544d41524bULL   /* what the host writes into a shared page */

/* Writes NPAGES pages; shares pages 2-3 (reporting the result); reads
 * what the host wrote into page 2; unshares 2-3; checks that pages 2-3
 * kept the host's mark and its own pattern elsewhere (count of good words). */
static void guest_share_in_place(struct pm_guest *g, void *arg)
{
	const uint64_t seed = 21, s = GPA + 2 * PAGE;
	uint64_t good = 0;

	for (uint64_t gpa = GPA; gpa < GPA + NPAGES * PAGE; gpa += 8)
		pm_guest_write64(g, gpa, pattern(gpa, seed));
	pm_guest_sync(g, pm_guest_mem_share_range(g, s, 2));
	pm_guest_sync(g, pm_guest_read64(g, s) == HOST_MARK);
	pm_guest_sync(g, pm_guest_mem_unshare_range(g, s, 2));
	for (uint64_t gpa = GPA; gpa < GPA + NPAGES * PAGE; gpa += 8)
		good += pm_guest_read64(g, gpa) == (gpa == s ? HOST_MARK : pattern(gpa, seed));
	pm_guest_sync(g, good);
}

static void test_share_is_in_place_and_unshare_takes_the_host_mapping_away(void **state)
{
	struct pm_model_stats st0, st1;
	struct pkvm_hyp *hyp;
	struct vmm m;
	uint8_t *view;
	unsigned int id;
	pm_pfn_t pfn2;

	vmm_create(&m);
	hyp = pkvm_model_hyp();
	st0 = pkvm_stats(&m);
	view = map_view(&m);
	vmm_guest(&m, guest_share_in_place, NULL);
	expect_sync(&m, 2);                      /* no exit before: the hyp answered */
	id = owner_of_gfn(hyp, GPA / PAGE);
	/* In place: the view shows the guest's own frames, with its data. */
	for (uint64_t p = 0; p < NPAGES; p++)
		assert_int_equal(view_readable(view, p), p == 2 || p == 3);
	assert_memory_equal(view + 2 * PAGE, (uint64_t[]){ pattern(GPA + 2 * PAGE, 21) }, 8);
	assert_memory_equal(view + 3 * PAGE + 8, (uint64_t[]){ pattern(GPA + 3 * PAGE + 8, 21) }, 8);
	assert_int_equal(pkvm_guest_state(hyp->vms[id], GPA / PAGE + 2, NULL), PKVM_PAGE_SHARED_OWNED);
	memcpy(view + 2 * PAGE, &(uint64_t){ HOST_MARK }, 8);
	expect_sync(&m, 1);                      /* the guest saw the host's write */
	expect_sync(&m, 2);
	/* Gone from the host before the guest got the pages back. */
	for (uint64_t p = 0; p < NPAGES; p++)
		assert_false(view_readable(view, p));
	pfn2 = guest_frame(hyp, id, GPA / PAGE + 2);
	assert_int_not_equal(pfn2, PM_PFN_INVALID);
	assert_int_equal(pkvm_host_state(hyp, pfn2), PKVM_NOPAGE);
	assert_int_equal(pkvm_guest_state(hyp->vms[id], GPA / PAGE + 2, NULL), PKVM_PAGE_OWNED);
	expect_sync(&m, WORDS);                  /* nothing lost either way */
	st1 = pkvm_stats(&m);
	assert_int_equal(count(&st1, "guest_share_host") - count(&st0, "guest_share_host"), 2);
	assert_int_equal(count(&st1, "guest_unshare_host") - count(&st0, "guest_unshare_host"), 2);
	assert_int_equal(count(&st1, "host_s2_faults"), count(&st0, "host_s2_faults"));
	assert_int_equal(vmm_exits(&m, PM_STAT_EXITS_HYPERCALL), 0);
	assert_int_equal(pm_kvm_munmap(view, GMEM_SIZE), 0);
	vmm_destroy(&m);
}

/* Shares pages 2-3, then reports what the host wrote into each (after a
 * sync for each write). */
static void guest_shares_for_write(struct pm_guest *g, void *arg)
{
	const uint64_t s = GPA + 2 * PAGE;

	for (uint64_t gpa = GPA; gpa < GPA + NPAGES * PAGE; gpa += 8)
		pm_guest_write64(g, gpa, pattern(gpa, 5));
	pm_guest_sync(g, pm_guest_mem_share_range(g, s, 2));    /* a granule per call, no exit */
	pm_guest_sync(g, pm_guest_read64(g, s + 8) == HOST_MARK);
	pm_guest_sync(g, pm_guest_read64(g, s + PAGE + 16) == HOST_MARK);
	pm_guest_sync(g, pm_guest_read64(g, GPA + 5 * PAGE) == pattern(GPA + 5 * PAGE, 5));
}

/* pwrite on a pKVM guest's file: a shared page takes the bytes (in its
 * frame before any view, through the host file after), a page the guest
 * keeps is EACCES and keeps its data. */
static void test_pwrite_reaches_shared_pages_only(void **state)
{
	const uint64_t mark = HOST_MARK;
	struct vmm m;
	uint8_t *view;

	vmm_create(&m);
	vmm_guest(&m, guest_shares_for_write, NULL);
	expect_sync(&m, 2);                                                       /* both shared */
	assert_int_equal(pm_kvm_pwrite(m.gmem, &mark, 8, 2 * PAGE + 8), 8);       /* the frame */
	assert_fails(pm_kvm_pwrite(m.gmem, &mark, 8, 5 * PAGE), EACCES);
	expect_sync(&m, 1);
	view = map_view(&m);
	assert_int_equal(pm_kvm_pwrite(m.gmem, &mark, 8, 3 * PAGE + 16), 8);      /* the host file */
	assert_memory_equal(view + 3 * PAGE + 16, &mark, 8);
	expect_sync(&m, 1);
	expect_sync(&m, 1);
	assert_int_equal(pm_kvm_munmap(view, GMEM_SIZE), 0);
	vmm_destroy(&m);
}

/* Shares page 0, then tries to unshare it until that works, reporting
 * each result; the VMM pins and unpins in between. */
static void guest_unshare_pinned(struct pm_guest *g, void *arg)
{
	pm_guest_write64(g, GPA, 0x1234);
	pm_guest_sync(g, (uint64_t)pm_guest_mem_share(g, GPA));
	pm_guest_sync(g, (uint64_t)pm_guest_mem_unshare(g, GPA));
	pm_guest_sync(g, (uint64_t)pm_guest_mem_unshare(g, GPA));
	pm_guest_sync(g, pm_guest_read64(g, GPA));
}

static int gmem_pin(struct vmm *m, unsigned long req, uint64_t off, uint64_t size)
{
	struct pm_gmem_pin pin = { .offset = off, .size = size };

	return pm_kvm_ioctl(m->gmem, req, &pin);
}

static void test_unshare_fails_cleanly_while_the_host_pins_the_page(void **state)
{
	struct pm_model_stats st0, st1;
	struct vmm m;
	uint8_t *view;

	vmm_create(&m);
	view = map_view(&m);
	st0 = pkvm_stats(&m);
	assert_fails(gmem_pin(&m, PM_GUEST_MEMFD_PIN, 0, PAGE), EFAULT);   /* not shared yet */
	vmm_guest(&m, guest_unshare_pinned, NULL);
	expect_sync(&m, PM_SMCCC_RET_SUCCESS);
	assert_int_equal(gmem_pin(&m, PM_GUEST_MEMFD_PIN, 0, PAGE), 0);
	assert_int_equal(gmem_pin(&m, PM_GUEST_MEMFD_PIN, 0, PAGE), 0);   /* pins nest */
	assert_fails(gmem_pin(&m, PM_GUEST_MEMFD_PIN, 0, 2 * PAGE), EFAULT); /* all or nothing */
	assert_fails(gmem_pin(&m, PM_GUEST_MEMFD_PIN, 1, PAGE), EINVAL);
	assert_fails(gmem_pin(&m, PM_GUEST_MEMFD_PIN, GMEM_SIZE, PAGE), EFAULT);
	assert_fails(gmem_pin(&m, PM_GUEST_MEMFD_UNPIN, PAGE, PAGE), EINVAL); /* not pinned */
	expect_sync(&m, (uint64_t)PM_SMCCC_RET_INVALID_PARAMETER);   /* the pin is why: */
	assert_true(view_readable(view, 0));
	st1 = pkvm_stats(&m);
	assert_int_equal(count(&st1, "unshare_busy") - count(&st0, "unshare_busy"), 1);
	assert_int_equal(count(&st1, "guest_unshare_host_refused"), count(&st0, "guest_unshare_host_refused"));
	assert_int_equal(gmem_pin(&m, PM_GUEST_MEMFD_UNPIN, 0, PAGE), 0);
	assert_int_equal(gmem_pin(&m, PM_GUEST_MEMFD_UNPIN, 0, PAGE), 0);
	assert_fails(gmem_pin(&m, PM_GUEST_MEMFD_UNPIN, 0, PAGE), EINVAL);
	expect_sync(&m, PM_SMCCC_RET_SUCCESS);
	assert_false(view_readable(view, 0));
	expect_sync(&m, 0x1234);
	assert_int_equal(pm_kvm_munmap(view, GMEM_SIZE), 0);
	vmm_destroy(&m);
}

/* Shares pages 0-3, then unshares 0-3 and 1-3, reporting each result
 * (granules done, from the first). */
static void guest_unshare_stops_at_pin(struct pm_guest *g, void *arg)
{
	pm_guest_sync(g, pm_guest_mem_share_range(g, GPA, 4));
	pm_guest_sync(g, pm_guest_mem_unshare_range(g, GPA, 4));
	pm_guest_sync(g, pm_guest_mem_unshare_range(g, GPA + PAGE, 3));
	pm_guest_sync(g, pm_guest_mem_unshare_range(g, GPA + PAGE, 3));
}

/* A loop of unshares stops at the first pinned page: the pages before it
 * change hands, the rest stay shared and mapped. */
static void test_a_batch_unshare_stops_before_a_pinned_page(void **state)
{
	struct vmm m;
	uint8_t *view;

	vmm_create(&m);
	view = map_view(&m);
	vmm_guest(&m, guest_unshare_stops_at_pin, NULL);
	expect_sync(&m, 4);
	assert_int_equal(gmem_pin(&m, PM_GUEST_MEMFD_PIN, PAGE, PAGE), 0);
	expect_sync(&m, 1);
	for (uint64_t p = 0; p < 4; p++)
		assert_int_equal(view_readable(view, p), p > 0);
	expect_sync(&m, 0);
	assert_int_equal(gmem_pin(&m, PM_GUEST_MEMFD_UNPIN, PAGE, PAGE), 0);
	expect_sync(&m, 3);
	for (uint64_t p = 0; p < 4; p++)
		assert_false(view_readable(view, p));
	assert_consistent(pkvm_model_hyp());
	assert_int_equal(pm_kvm_munmap(view, GMEM_SIZE), 0);
	vmm_destroy(&m);
}

/* Every refusal the guest can meet, each reported by a SYNC: X0 of the
 * HVC (pm_guest_model_call is the raw call, with X1-X3). */
static void guest_share_errors(struct pm_guest *g, void *arg)
{
	pm_guest_write64(g, GPA, 1);
	pm_guest_sync(g, (uint64_t)pm_guest_mem_share(g, GPA + 8));                     /* unaligned */
	pm_guest_sync(g, (uint64_t)pm_guest_model_call(g, PM_HC_PKVM_MEM_SHARE, GPA, 1, 0)); /* X2 */
	pm_guest_sync(g, (uint64_t)pm_guest_model_call(g, PM_HC_PKVM_MEM_SHARE, GPA, 0, 1)); /* X3 */
	pm_guest_sync(g, (uint64_t)pm_guest_model_call(g, PM_HC_PKVM_MEM_UNSHARE, GPA, 0, 1));
	pm_guest_sync(g, (uint64_t)pm_guest_mem_share(g, 0));                            /* not memory */
	pm_guest_sync(g, (uint64_t)pm_guest_mem_unshare(g, GPA));                        /* not shared */
	pm_guest_sync(g, (uint64_t)pm_guest_mem_share(g, GPA + PAGE));                   /* untouched: ok */
	pm_guest_sync(g, (uint64_t)pm_guest_mem_share(g, GPA + PAGE));                   /* twice */
	pm_guest_sync(g, pm_guest_mem_share_range(g, GPA, 3));                           /* stops at page 1 */
	pm_guest_sync(g, pm_guest_read64(g, GPA + PAGE));
	pm_guest_sync(g, (uint64_t)pm_guest_model_call(g, 0xC6000005, GPA, 0, 0));      /* Android's RELINQUISH */
	pm_guest_sync(g, (uint64_t)pm_guest_model_call(g, 0xC6000008, 0, 0, 0));        /* unknown */
	pm_guest_sync(g, (uint64_t)pm_guest_model_call(g, 0x7d000006, GPA, 0, 0));      /* not an SMCCC call */
	pm_guest_sync(g, (uint64_t)pm_guest_hypercall(g, PM_HC_PKVM_MEM_SHARE + 7, 0, 0, 0, 0));
}

/* Each refusal is INVALID_PARAMETER and changes nothing; the reason shows
 * in the hyp's counters: two shares and one unshare refused by the hyp
 * (state), the others refused before it (arguments, not memory). The
 * untouched page's share is refused once too (no leaf: ENOENT), then
 * faulted in and shared. */
static void test_share_and_unshare_refusals_are_exact_and_change_nothing(void **state)
{
	const uint64_t inval = (uint64_t)PM_SMCCC_RET_INVALID_PARAMETER;
	struct pm_model_stats st0, st1;
	struct vmm m;

	vmm_create(&m);
	st0 = pkvm_stats(&m);
	vmm_guest(&m, guest_share_errors, NULL);
	for (int i = 0; i < 6; i++)
		expect_sync(&m, inval);
	expect_sync(&m, PM_SMCCC_RET_SUCCESS);
	expect_sync(&m, inval);
	expect_sync(&m, 1);                      /* page 0 shared, page 1 refused */
	expect_sync(&m, 0);                      /* the untouched page read zero */
	expect_sync(&m, (uint64_t)PM_SMCCC_RET_NOT_SUPPORTED);
	expect_sync(&m, (uint64_t)PM_SMCCC_RET_NOT_SUPPORTED);
	expect_sync(&m, (uint64_t)-KVM_ENOSYS);
	expect_sync(&m, (uint64_t)-KVM_ENOSYS);
	st1 = pkvm_stats(&m);
	assert_int_equal(count(&st1, "guest_share_host") - count(&st0, "guest_share_host"), 2);
	assert_int_equal(count(&st1, "guest_share_host_refused") - count(&st0, "guest_share_host_refused"), 3);
	assert_int_equal(count(&st1, "guest_unshare_host_refused") - count(&st0, "guest_unshare_host_refused"),
			 1);
	assert_int_equal(count(&st1, "guest_unshare_host"), count(&st0, "guest_unshare_host"));
	assert_int_equal(count(&st1, "host_s2_faults"), count(&st0, "host_s2_faults"));
	assert_int_equal(vmm_exits(&m, PM_STAT_EXITS_HYPERCALL), 0);
	assert_consistent(pkvm_model_hyp());
	vmm_destroy(&m);
}

/* The library's own host accesses go through the host stage-2: the hyp is
 * a pool guard, a refusal is a counted host stage-2 fault. */
static void test_host_accesses_are_checked_by_the_host_stage2(void **state)
{
	struct pm_model_stats st0, st1;
	struct written w;

	written_start(&w, 17, 17);
	st0 = pkvm_stats(&w.m);
	assert_int_equal(pm_host_access(w.pfn[0], 1, false), -EFAULT);
	assert_int_equal(pm_host_access(w.pfn[0], 1, true), -EFAULT);
	st1 = pkvm_stats(&w.m);
	assert_int_equal(count(&st1, "host_s2_faults") - count(&st0, "host_s2_faults"), 2);
	/* A frame the host owns is fine (and counts nothing). */
	assert_int_equal(pm_host_access(w.hyp->nr_frames - 1, 1, true),
			 pkvm_host_state(w.hyp, w.hyp->nr_frames - 1) == PKVM_NOPAGE ? -EFAULT : 0);
	vmm_destroy(&w.m);
	assert_null(pkvm_model_hyp());
	assert_int_equal(pm_host_access(w.pfn[0], 1, true), 0);   /* no hyp, no guard */
}

static void test_statistics_outlive_the_vm_and_its_hyp(void **state)
{
	struct pm_model_stats st0, st1;
	struct written w;
	int kvm = pm_kvm_open();

	assert_true(kvm >= 0);
	st0 = pkvm_stats_of(kvm);
	assert_fails(pm_kvm_ioctl(kvm, PM_KVM_GET_MODEL_STATS, NULL), EFAULT);
	written_start(&w, 19, 19);
	vmm_destroy(&w.m);
	assert_null(pkvm_model_hyp());
	st1 = pkvm_stats_of(kvm);
	assert_int_equal(count(&st1, "pages_poisoned") - count(&st0, "pages_poisoned"), NPAGES);
	assert_int_equal(count(&st1, "host_donate_guest") - count(&st0, "host_donate_guest"), NPAGES);
	assert_int_equal(pm_kvm_close(kvm), 0);
}

/* The system handle reports the hyp's counters under the hyp's own names:
 * every transition done, then refused, then the three others; each is what
 * the hyps destroyed before had counted (read while none lives) plus the
 * live hyp's count. A type privmem does not offer is EINVAL, a model
 * without such counters ENOTTY, and a pkvm VM has no per-VM counters. */
static void test_process_stats_carry_the_hyp_names_and_counts(void **state)
{
	const int n = PKVM_NR_TRANSITIONS;
	struct pm_model_stats retired, st;
	struct pkvm_stats live;
	struct written w;
	char name[64];
	int kvm = pm_kvm_open();

	assert_true(kvm >= 0);
	assert_null(pkvm_model_hyp());
	retired = pkvm_stats_of(kvm);
	written_start(&w, 23, 23);
	pkvm_hyp_get_stats(w.hyp, &live);
	st = pkvm_stats_of(kvm);
	assert_int_equal(st.vm_type, PM_VM_TYPE_PKVM);
	assert_int_equal(st.nr, 2 * n + 3 + 6);
	assert_int_equal(retired.nr, st.nr);
	for (int t = 0; t < n; t++) {
		assert_string_equal(st.v[t].name, pkvm_transition_name(t));
		assert_int_equal(st.v[t].value, retired.v[t].value + live.done[t]);
		snprintf(name, sizeof(name), "%s_refused", pkvm_transition_name(t));
		assert_string_equal(st.v[n + t].name, name);
		assert_int_equal(st.v[n + t].value, retired.v[n + t].value + live.refused[t]);
	}
	assert_string_equal(st.v[2 * n].name, "host_s2_faults");
	assert_int_equal(st.v[2 * n].value, retired.v[2 * n].value + live.host_s2_faults);
	assert_string_equal(st.v[2 * n + 1].name, "pages_poisoned");
	assert_int_equal(st.v[2 * n + 1].value, retired.v[2 * n + 1].value + live.pages_poisoned);
	assert_string_equal(st.v[2 * n + 2].name, "unshare_busy");
	assert_int_equal(st.v[2 * n + 2].value, retired.v[2 * n + 2].value);
	/* Then the guest interface's, process-wide (nothing here used it). */
	{
		static const char *const iface[] = {
			"hyp_meminfo_calls", "mmio_guard_grants", "mmio_guard_refusals", "mmio_aborts",
			"memslot_frozen_refusals", "punch_pinned_refusals",
		};

		for (int i = 0; i < 6; i++) {
			assert_string_equal(st.v[2 * n + 3 + i].name, iface[i]);
			assert_int_equal(st.v[2 * n + 3 + i].value, retired.v[2 * n + 3 + i].value);
		}
	}
	/* The guest's pages were donated to it one by one. */
	assert_int_equal(live.done[PKVM_HOST_DONATE_GUEST], NPAGES);

	st = (struct pm_model_stats){ .vm_type = KVM_X86_SEV_ES_VM };
	assert_fails(pm_kvm_ioctl(kvm, PM_KVM_GET_MODEL_STATS, &st), EINVAL);
	st = (struct pm_model_stats){ .vm_type = KVM_X86_SW_PROTECTED_VM };
	assert_fails(pm_kvm_ioctl(kvm, PM_KVM_GET_MODEL_STATS, &st), ENOTTY);
	assert_fails(pm_kvm_ioctl(w.m.vm, PM_KVM_GET_MODEL_STATS, &st), ENOTTY);
	vmm_destroy(&w.m);
	assert_int_equal(pm_kvm_close(kvm), 0);
}

/* ---- reclaim with the pool exhausted ---- */

static void guest_touch_one(struct pm_guest *g, void *arg)
{
	pm_guest_write64(g, GPA, 0x5eed);
	pm_guest_sync(g, 0);
}

static atomic_bool watchdog_done;

/* Aborts the test program if the test does not finish in 30 s (a hang). */
static void *watchdog(void *arg)
{
	for (int ms = 0; ms < 30000 && !atomic_load(&watchdog_done); ms += 10)
		usleep(10000);
	if (!atomic_load(&watchdog_done)) {
		fprintf(stderr, "%s: still running after 30 s\n", (const char *)arg);
		abort();
	}
	return NULL;
}

/*
 * The release of the guest_memfd (a punch, before pinning: see below) with
 * the pool exhausted still takes the page back and frees it. The guest's first page leaves the hyp's reserve below
 * a reclaim's worst case (its donation built tables on both stage-2s), the
 * pool then has no frame left, and the reclaim, which needs no new table,
 * cannot fill the reserve: it waited for memory that only the punch would
 * free. Found by the uAPI fuzzer (corpus: crash-pkvm-reclaim-exhausted-pool),
 * through a punch, which the guest's pin now refuses (EBUSY); the release
 * reclaims the same way.
 */
static void test_reclaim_with_the_pool_exhausted_finishes(void **state)
{
	struct pm_pool_config small = { .size = 8 * MIB }, old = { 0 };
	struct kvm_enable_cap page_size_cap = { .cap = PM_CAP_GUEST_MEMFD_PAGE_SIZE, .args = { 1 } };
	struct kvm_create_guest_memfd cg = { .size = 16 * MIB, .flags = PM_GUEST_MEMFD_FLAG_NO_HUGE };
	struct pm_pool_stats ps;
	struct pm_ucall uc;
	struct vmm m;
	pthread_t dog;
	int kvm = pm_kvm_open(), sw, hog;

	assert_int_equal(pm_kvm_ioctl(kvm, PM_KVM_GET_POOL_STATS, &ps), 0);
	old.size = ps.size;
	assert_int_equal(pm_kvm_ioctl(kvm, PM_KVM_SET_POOL_CONFIG, &small), 0);
	atomic_store(&watchdog_done, false);
	assert_int_equal(pthread_create(&dog, NULL, watchdog, (void *)__func__), 0);

	vmm_create(&m);
	vmm_guest(&m, guest_touch_one, NULL);
	assert_int_equal(vmm_run(&m, &uc), PM_UCALL_SYNC);
	/* Every frame left goes to another VM's file, 4K at a time. */
	sw = pm_kvm_ioctl(kvm, KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM);
	assert_true(sw >= 0);
	assert_int_equal(pm_kvm_ioctl(sw, KVM_ENABLE_CAP, &page_size_cap), 0);    /* for NO_HUGE */
	hog = pm_kvm_ioctl(sw, KVM_CREATE_GUEST_MEMFD, &cg);
	assert_true(hog >= 0);
	for (off_t off = 0; off < (off_t)cg.size; off += PAGE)
		if (pm_kvm_fallocate(hog, FALLOC_FL_KEEP_SIZE, off, PAGE))
			break;
	assert_int_equal(errno, ENOMEM);

	/* The page is pinned (the guest holds it): the punch is refused
	 * without reclaiming; the file's release reclaims it. */
	assert_fails(pm_kvm_fallocate(m.gmem, PUNCH, 0, PAGE), EBUSY);
	assert_int_equal(pm_kvm_close(m.gmem), 0);
	assert_int_equal(pm_kvm_munmap(m.run, PAGE), 0);
	assert_int_equal(pm_kvm_close(m.vcpu), 0);
	assert_int_equal(pm_kvm_close(m.vm), 0);
	assert_int_equal(pm_kvm_close(m.kvm), 0);
	atomic_store(&watchdog_done, true);
	pthread_join(dog, NULL);

	assert_int_equal(pm_kvm_close(hog), 0);
	assert_int_equal(pm_kvm_close(sw), 0);
	assert_int_equal(pm_kvm_ioctl(kvm, PM_KVM_GET_POOL_STATS, &ps), 0);
	assert_int_equal(ps.in_use, 0);
	assert_int_equal(pm_kvm_ioctl(kvm, PM_KVM_SET_POOL_CONFIG, &old), 0);
	assert_int_equal(pm_kvm_close(kvm), 0);
}

/* A shared page is still the guest's: a punch over it is refused (EBUSY)
 * and takes nothing, not the page, not the host's pins on it. */
static void guest_share_page0(struct pm_guest *g, void *arg)
{
	pm_guest_write64(g, GPA, 5);
	pm_guest_sync(g, (uint64_t)pm_guest_mem_share(g, GPA));
	pm_guest_sync(g, pm_guest_read64(g, GPA));
}

static void test_a_punch_over_a_shared_page_is_refused_and_keeps_its_pins(void **state)
{
	struct pm_model_stats st0, st1;
	struct vmm m;
	uint8_t *view;

	vmm_create(&m);
	view = map_view(&m);
	vmm_guest(&m, guest_share_page0, NULL);
	expect_sync(&m, PM_SMCCC_RET_SUCCESS);
	assert_int_equal(gmem_pin(&m, PM_GUEST_MEMFD_PIN, 0, PAGE), 0);
	st0 = pkvm_stats(&m);
	assert_fails(pm_kvm_fallocate(m.gmem, PUNCH, 0, PAGE), EBUSY);
	st1 = pkvm_stats(&m);
	assert_int_equal(count(&st1, "host_reclaim_page_guest"), count(&st0, "host_reclaim_page_guest"));
	assert_int_equal(count(&st1, "punch_pinned_refusals") - count(&st0, "punch_pinned_refusals"), 1);
	assert_true(view_readable(view, 0));
	assert_memory_equal(view, (uint64_t[]){ 5 }, 8);
	assert_int_equal(gmem_pin(&m, PM_GUEST_MEMFD_UNPIN, 0, PAGE), 0);
	expect_sync(&m, 5);                      /* the same page */
	assert_consistent(pkvm_model_hyp());
	assert_int_equal(pm_kvm_munmap(view, GMEM_SIZE), 0);
	vmm_destroy(&m);
}

/* ---- copies of a view: revocation reaches every one ---- */

#define CP_PAGE   5                               /* the page the guest shares */
#define CP_GPA    (GPA + CP_PAGE * PAGE)
#define CP_PUBLIC 0x7075626c69630a01ULL           /* what it holds while shared */
#define CP_SECRET 0x7365637265740a02ULL           /* what it holds once private again */

/* Shares CP_PAGE holding CP_PUBLIC, waits, unshares it and writes CP_SECRET. */
static void guest_share_then_keep_a_secret(struct pm_guest *g, void *arg)
{
	pm_guest_write64(g, CP_GPA, CP_PUBLIC);
	pm_guest_sync(g, (uint64_t)pm_guest_mem_share(g, CP_GPA));
	pm_guest_sync(g, (uint64_t)pm_guest_mem_unshare(g, CP_GPA));
	pm_guest_write64(g, CP_GPA, CP_SECRET);
	pm_guest_sync(g, pm_guest_read64(g, CP_GPA));
}

/* Runs the guest to where CP_PAGE is shared (its result seen). */
static void cp_shared(struct vmm *m)
{
	vmm_guest(m, guest_share_then_keep_a_secret, NULL);
	expect_sync(m, PM_SMCCC_RET_SUCCESS);
}

/* ... then to where it is private again and holds the secret. */
static void cp_secret(struct vmm *m)
{
	expect_sync(m, PM_SMCCC_RET_SUCCESS);
	expect_sync(m, CP_SECRET);
}

/* Reads the word at p byte by byte; false if any byte faulted (SIGSEGV,
 * pKVM's abort). */
static bool probe_word(const uint8_t *p, uint64_t *word)
{
	uint8_t b[8];

	for (int i = 0; i < 8; i++)
		if (pm_test_sigsegv((void *)(p + i), false, &b[i]))
			return false;
	memcpy(word, b, 8);
	return true;
}

/*
 * A fork child inherits the view. After the guest unshares the page and
 * writes a secret into it, the child's copy faults there as the parent's
 * view does: the page left the host file, which the kernel unmapped from
 * every process, and the child's copy is registered for faults again at
 * the fork (SIGSEGV: the child inherits privmem's SIGBUS handler). (Without
 * that it would read zeros, never the secret.)
 */
static void test_a_fork_child_never_reads_a_page_unshared_after_the_fork(void **state)
{
	int go[2], result[2], status;
	struct { bool read; uint64_t word; } seen = { 0 };
	uint64_t word;
	uint8_t *view;
	struct vmm m;
	pid_t child;

	vmm_create(&m);
	view = map_view(&m);
	cp_shared(&m);
	assert_true(probe_word(view + CP_PAGE * PAGE, &word));
	assert_int_equal(word, CP_PUBLIC);
	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(result), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		char c;

		if (read(go[0], &c, 1) == 1)
			seen.read = probe_word(view + CP_PAGE * PAGE, &seen.word);
		_exit(write(result[1], &seen, sizeof(seen)) == sizeof(seen) ? 0 : 1);
	}
	cp_secret(&m);
	assert_int_equal(write(go[1], "x", 1), 1);
	assert_int_equal(read(result[0], &seen, sizeof(seen)), sizeof(seen));
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_false(seen.read);
	assert_int_not_equal(seen.word, CP_SECRET);
	assert_false(view_readable(view, CP_PAGE));   /* and the parent's view still faults */
	for (int i = 0; i < 2; i++) {
		close(go[i]);
		close(result[i]);
	}
	assert_int_equal(pm_kvm_munmap(view, GMEM_SIZE), 0);
	vmm_destroy(&m);
}

/*
 * mremap(view, 0, len, MREMAP_MAYMOVE) makes a second mapping of the same
 * pages, which privmem never hears of. The unshare reaches it too: it
 * reads zeros afterwards (a mapping privmem did not make is not registered
 * for SIGBUS, and its read puts a zero page where the page was: the
 * library's own view then reads that zero page too, until the page is
 * shared again).
 */
static void test_an_mremap_copy_of_a_view_never_reads_a_page_after_its_unshare(void **state)
{
	uint8_t *view, *copy;
	uint64_t word;
	struct vmm m;

	vmm_create(&m);
	view = map_view(&m);
	cp_shared(&m);
	copy = mremap(view + CP_PAGE * PAGE, 0, PAGE, MREMAP_MAYMOVE);
	assert_ptr_not_equal(copy, MAP_FAILED);
	assert_true(probe_word(copy, &word));
	assert_int_equal(word, CP_PUBLIC);
	cp_secret(&m);
	assert_true(probe_word(copy, &word));
	assert_int_equal(word, 0);
	assert_true(probe_word(view + CP_PAGE * PAGE, &word));
	assert_int_equal(word, 0);
	assert_int_equal(munmap(copy, PAGE), 0);
	assert_int_equal(pm_kvm_munmap(view, GMEM_SIZE), 0);
	vmm_destroy(&m);
}

/* A pipe that took the shared page by vmsplice() holds what the host could
 * read while the page was shared, never what the guest wrote after. */
static void test_a_pipe_filled_by_vmsplice_holds_only_what_was_shared(void **state)
{
	struct iovec iov;
	uint8_t buf[PAGE];
	uint64_t word;
	uint8_t *view;
	struct vmm m;
	int fds[2];

	vmm_create(&m);
	view = map_view(&m);
	cp_shared(&m);
	assert_int_equal(pipe(fds), 0);
	iov = (struct iovec){ .iov_base = view + CP_PAGE * PAGE, .iov_len = PAGE };
	assert_int_equal(vmsplice(fds[1], &iov, 1, 0), PAGE);
	cp_secret(&m);
	assert_int_equal(read(fds[0], buf, PAGE), PAGE);
	memcpy(&word, buf, 8);
	assert_int_equal(word, CP_PUBLIC);
	/* And a private page cannot be spliced at all: the view faults. */
	assert_fails(vmsplice(fds[1], &iov, 1, 0), EFAULT);
	close(fds[0]);
	close(fds[1]);
	assert_int_equal(pm_kvm_munmap(view, GMEM_SIZE), 0);
	vmm_destroy(&m);
}

/*
 * A file nobody has mapped keeps shared pages in their frames (no copies);
 * the first view brings in what is shared at that moment, in place, and
 * from then on pages come and go through the host file. Pins work either
 * way (the model says what is shared).
 */
static void test_the_first_view_shows_what_was_shared_before_it(void **state)
{
	uint8_t *view;
	uint64_t word;
	struct vmm m;

	vmm_create(&m);
	cp_shared(&m);
	assert_int_equal(gmem_pin(&m, PM_GUEST_MEMFD_PIN, CP_PAGE * PAGE, PAGE), 0);
	assert_fails(gmem_pin(&m, PM_GUEST_MEMFD_PIN, (CP_PAGE + 1) * PAGE, PAGE), EFAULT);
	view = map_view(&m);
	assert_true(probe_word(view + CP_PAGE * PAGE, &word));
	assert_int_equal(word, CP_PUBLIC);
	assert_false(view_readable(view, CP_PAGE + 1));
	expect_sync(&m, (uint64_t)PM_SMCCC_RET_INVALID_PARAMETER);   /* the unshare meets the pin */
	assert_int_equal(gmem_pin(&m, PM_GUEST_MEMFD_UNPIN, CP_PAGE * PAGE, PAGE), 0);
	assert_int_equal(pm_kvm_munmap(view, GMEM_SIZE), 0);
	vmm_destroy(&m);
}

/*
 * Without userfaultfd (forced here) a view is a plain mapping of the host
 * file: a page the host may not map reads zeros instead of faulting, and
 * still never the guest's data.
 */
static void test_a_view_without_userfaultfd_reads_zeros_where_it_would_fault(void **state)
{
	uint8_t *view;
	uint64_t word;
	struct vmm m;

	vmm_create(&m);
	pm_gmem_views_test_plain(true);
	view = map_view(&m);
	pm_gmem_views_test_plain(false);
	cp_shared(&m);
	assert_true(probe_word(view + CP_PAGE * PAGE, &word));
	assert_int_equal(word, CP_PUBLIC);
	assert_true(probe_word(view + (CP_PAGE + 1) * PAGE, &word));   /* private: zeros */
	assert_int_equal(word, 0);
	cp_secret(&m);
	assert_true(probe_word(view + CP_PAGE * PAGE, &word));
	assert_int_equal(word, 0);
	assert_int_equal(pm_kvm_munmap(view, GMEM_SIZE), 0);
	/* A view made now faults again. */
	view = map_view(&m);
	assert_false(view_readable(view, CP_PAGE + 2));
	assert_int_equal(pm_kvm_munmap(view, GMEM_SIZE), 0);
	vmm_destroy(&m);
}

/* Shares CP_PAGE, waits while the VMM tries to delete the slot, then
 * reads it. */
static void guest_share_across_slot_deletion(struct pm_guest *g, void *arg)
{
	pm_guest_write64(g, CP_GPA, CP_PUBLIC);
	pm_guest_sync(g, (uint64_t)pm_guest_mem_share(g, CP_GPA));
	pm_guest_sync(g, pm_guest_read64(g, CP_GPA));
}

/*
 * The slot of a page the guest shares cannot be deleted once the VM ran
 * (EPERM): the page stays shared, in place, the view keeps showing it, and
 * the guest reads the host's write.
 */
static void test_a_shared_page_stays_shared_when_slot_deletion_is_refused(void **state)
{
	uint8_t *view;
	struct vmm m;

	vmm_create(&m);
	view = map_view(&m);
	vmm_guest(&m, guest_share_across_slot_deletion, NULL);
	expect_sync(&m, PM_SMCCC_RET_SUCCESS);
	memcpy(view + CP_PAGE * PAGE, &(uint64_t){ HOST_MARK }, 8);
	assert_fails(set_slot(&m, 0), EPERM);
	assert_true(view_readable(view, CP_PAGE));
	expect_sync(&m, HOST_MARK);
	assert_consistent(pkvm_model_hyp());
	assert_int_equal(pm_kvm_munmap(view, GMEM_SIZE), 0);
	vmm_destroy(&m);
}

/* ---- a share pattern can never split a view ---- */

#define EO_SIZE  (256 * MIB)
#define EO_PAGES (EO_SIZE / PAGE)

/* Writes every page (its number), shares every other one, one call each. */
static void guest_share_every_other_page(struct pm_guest *g, void *arg)
{
	for (uint64_t p = 0; p < EO_PAGES; p++)
		pm_guest_write64(g, GPA + p * PAGE, p);
	for (uint64_t p = 1; p < EO_PAGES; p += 2)
		PM_GUEST_ASSERT(g, pm_guest_mem_share(g, GPA + p * PAGE) == PM_SMCCC_RET_SUCCESS);
	pm_guest_sync(g, 0);
	for (uint64_t p = 1; p < EO_PAGES; p += 2)
		PM_GUEST_ASSERT(g, pm_guest_mem_unshare(g, GPA + p * PAGE) == PM_SMCCC_RET_SUCCESS);
}

/* The kernel mappings (VMAs) of this process that meet [p, p + len). */
static unsigned int vmas_in(const uint8_t *p, size_t len)
{
	FILE *f = fopen("/proc/self/maps", "r");
	unsigned long s, e;
	unsigned int n = 0;
	char line[512];

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx-%lx", &s, &e) == 2 && s < (uintptr_t)p + len && (uintptr_t)p < e)
			n++;
	fclose(f);
	return n;
}

/*
 * A guest shares every other page of a 256 MiB file while the host has a
 * view: the view stays one kernel mapping (a share pattern cannot make the
 * host run out of mappings, let alone abort it), showing exactly the shared
 * pages, in place.
 */
static void test_sharing_every_other_page_of_256m_under_a_view_keeps_one_mapping(void **state)
{
	struct kvm_create_guest_memfd cg = { .size = EO_SIZE, .flags = GUEST_MEMFD_FLAG_MMAP };
	uint64_t shares = model_count("guest_share_host"), word;
	struct vmm m;
	uint8_t *view;

	m.kvm = pm_kvm_open();
	assert_true(m.kvm >= 0);
	m.vm = pm_kvm_ioctl(m.kvm, KVM_CREATE_VM, PM_VM_TYPE_PKVM);
	assert_true(m.vm >= 0);
	m.gmem = pm_kvm_ioctl(m.vm, KVM_CREATE_GUEST_MEMFD, &cg);
	assert_true(m.gmem >= 0);
	assert_int_equal(set_slot(&m, EO_SIZE), 0);
	m.vcpu = pm_kvm_ioctl(m.vm, KVM_CREATE_VCPU, 0);
	assert_true(m.vcpu >= 0);
	m.run = pm_kvm_mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, m.vcpu, 0);
	assert_true(m.run != MAP_FAILED);
	view = pm_kvm_mmap(NULL, EO_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, m.gmem, 0);
	assert_true(view != MAP_FAILED);
	vmm_guest(&m, guest_share_every_other_page, NULL);
	expect_sync(&m, 0);                     /* one hypercall a page, no exit */
	assert_int_equal(model_count("guest_share_host") - shares, EO_PAGES / 2);
	assert_int_equal(vmas_in(view, EO_SIZE), 1);
	/* Shared pages read in place (a fault here would kill the test),
	 * the others fault. */
	for (uint64_t p = 0; p < EO_PAGES; p++) {
		if (p % 2) {
			memcpy(&word, view + p * PAGE, 8);
			assert_int_equal(word, p);
		} else {
			assert_false(view_readable(view, p));
		}
	}
	assert_int_equal(vmm_run_exit(&m), PM_EXIT_UCALL);
	assert_int_equal(pm_get_ucall(m.vcpu, NULL), PM_UCALL_DONE);
	assert_int_equal(vmm_exits(&m, PM_STAT_EXITS_HYPERCALL), 0);
	assert_int_equal(vmas_in(view, EO_SIZE), 1);
	for (uint64_t p = 1; p < EO_PAGES; p += 1024)
		assert_false(view_readable(view, p));
	assert_int_equal(pm_kvm_munmap(view, EO_SIZE), 0);
	vmm_destroy(&m);
}

/* ---- concurrency: vCPUs sharing while the host maps, pins and punches ---- */

#define C_VCPUS      4
#define C_SLOT_PAGES (GMEM_SIZE / PAGE)       /* 512 */
#define C_OWN_PAGES  64                        /* per vCPU: pages it shares and unshares */
#define C_PUNCH_BASE (C_VCPUS * C_OWN_PAGES)   /* pages only written, which the host tries to
                                                * punch: it may until the guest touches one */
#define PUBLIC(gpa)  (0x5055424cULL << 32 | ((gpa) >> 12))   /* what a shared page holds */
#define SECRET(gpa)  (0x53454352ULL << 32 | ((gpa) >> 12))   /* what a private page holds */

#if defined(PM_ASAN) || defined(PM_TSAN)
#define C_STEPS 400
#else
#define C_STEPS 3000
#endif

struct c_vcpu {
	unsigned int idx;
	unsigned long steps;
	int handle;
	struct kvm_run *run;
	uint64_t shares, unshares, busy;
	bool failed;
};

struct c_world {
	struct vmm m;
	uint8_t *view;
	struct c_vcpu v[C_VCPUS];
	atomic_bool stop;
	atomic_uint_fast64_t secrets_seen, public_seen, violations, checks, pins, punches, punches_refused;
};

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* A vCPU's own pages are private holding SECRET, or shared holding PUBLIC;
 * it flips random ones, and writes random pages of the punched range and
 * reads each back: a page it touched is pinned, so no punch may take it
 * between the write and the read. An unshare refused is the host's pin
 * (the reader's): counted, and checked against unshare_busy. */
static void guest_flip_pages(struct pm_guest *g, void *arg)
{
	struct c_vcpu *c = arg;
	uint64_t base = GPA + (uint64_t)c->idx * C_OWN_PAGES * PAGE, rng = c->idx * 7919 + 1;
	bool shared[C_OWN_PAGES] = { false };

	for (uint64_t p = 0; p < C_OWN_PAGES; p++)
		pm_guest_write64(g, base + p * PAGE, SECRET(base + p * PAGE));
	for (unsigned long i = 0; i < c->steps; i++) {
		uint64_t p = xorshift(&rng) % C_OWN_PAGES, gpa = base + p * PAGE;
		long r;

		uint64_t w;

		if (!shared[p]) {
			PM_GUEST_ASSERT(g, pm_guest_read64(g, gpa) == SECRET(gpa));
			pm_guest_write64(g, gpa, PUBLIC(gpa));
			r = pm_guest_mem_share(g, gpa);
			PM_GUEST_ASSERT(g, r == PM_SMCCC_RET_SUCCESS);
			shared[p] = true;
			c->shares++;
		} else {
			PM_GUEST_ASSERT(g, pm_guest_read64(g, gpa) == PUBLIC(gpa));
			r = pm_guest_mem_unshare(g, gpa);
			PM_GUEST_ASSERT(g, r == PM_SMCCC_RET_SUCCESS || r == PM_SMCCC_RET_INVALID_PARAMETER);
			if (r == PM_SMCCC_RET_SUCCESS) {
				pm_guest_write64(g, gpa, SECRET(gpa));
				shared[p] = false;
				c->unshares++;
			} else {
				c->busy++;
			}
		}
		w = GPA + (C_PUNCH_BASE + xorshift(&rng) % (C_SLOT_PAGES - C_PUNCH_BASE)) * PAGE + 8 * c->idx;
		pm_guest_write64(g, w, i);
		PM_GUEST_ASSERT(g, pm_guest_read64(g, w) == i);
	}
}

static void *c_vcpu_main(void *arg)
{
	struct c_vcpu *c = arg;

	for (;;) {
		struct pm_ucall uc;

		if (pm_kvm_ioctl(c->handle, KVM_RUN, 0)) {
			c->failed = true;
			break;
		}
		if (c->run->exit_reason != PM_EXIT_UCALL) {      /* no hypercall exits */
			c->failed = true;
			break;
		}
		if (pm_get_ucall(c->handle, &uc) == PM_UCALL_DONE)
			break;
		if (uc.cmd == PM_UCALL_ABORT) {
			fprintf(stderr, "guest %u: %s\n", c->idx, uc.msg);
			c->failed = true;
			break;
		}
	}
	return NULL;
}

/* The host reads guest pages through its view (PUBLIC only, else a
 * secret leaked), and pins and unpins what it finds shared. */
static void *c_reader_main(void *arg)
{
	struct c_world *w = arg;
	uint64_t rng = 99;

	while (!atomic_load(&w->stop)) {
		uint64_t p = xorshift(&rng) % C_PUNCH_BASE, gpa = GPA + p * PAGE, val = 0;
		uint8_t b[8];
		bool fault = false;

		for (int i = 0; i < 8 && !fault; i++)
			fault = pm_test_sigsegv(w->view + p * PAGE + i, false, &b[i]);
		if (!fault) {
			memcpy(&val, b, 8);
			atomic_fetch_add(val == PUBLIC(gpa) ? &w->public_seen : &w->secrets_seen, 1);
		}
		if (gmem_pin(&w->m, PM_GUEST_MEMFD_PIN, p * PAGE, PAGE) == 0) {
			atomic_fetch_add(&w->pins, 1);
			sched_yield();
			if (gmem_pin(&w->m, PM_GUEST_MEMFD_UNPIN, p * PAGE, PAGE))
				atomic_fetch_add(&w->violations, 1);  /* its pin is gone */
		}
	}
	return NULL;
}

/* Punches while the vCPUs run, and after they stop until one punch was
 * refused (at most 4096 more tries): a loaded host may not schedule this
 * thread before the vCPUs are done, and the guest, alive, still holds the
 * pages it wrote then. */
static void *c_puncher_main(void *arg)
{
	struct c_world *w = arg;
	uint64_t rng = 12345;
	unsigned int after = 0;

	while (!atomic_load(&w->stop) || (!atomic_load(&w->punches_refused) && after++ < 4096)) {
		uint64_t p = C_PUNCH_BASE + xorshift(&rng) % (C_SLOT_PAGES - C_PUNCH_BASE);

		if (!pm_kvm_fallocate(w->m.gmem, PUNCH, (off_t)(p * PAGE), PAGE))
			atomic_fetch_add(&w->punches, 1);
		else if (errno == EBUSY)
			atomic_fetch_add(&w->punches_refused, 1);     /* the guest holds it */
		else
			atomic_fetch_add(&w->violations, 1);
		sched_yield();
	}
	return NULL;
}

/* The independent checker, again and again, under every hyp lock. */
static void *c_checker_main(void *arg)
{
	struct c_world *w = arg;
	struct pkvm_hyp *hyp = pkvm_model_hyp();

	while (!atomic_load(&w->stop)) {
		struct world cw;

		atomic_fetch_add(&w->violations, check_world(hyp, &cw));
		world_free(&cw);
		atomic_fetch_add(&w->checks, 1);
		usleep(2000);
	}
	return NULL;
}

static void test_concurrent_sharing_keeps_every_invariant_and_every_secret(void **state)
{
	static struct c_world w;
	pthread_t vt[C_VCPUS], reader, puncher, checker;
	uint64_t shares = 0, unshares = 0, busy = 0, busy0 = model_count("unshare_busy");
	unsigned long steps = C_STEPS;
	const char *env = getenv("PKVM_SHARE_STEPS");

	if (env)
		steps = strtoul(env, NULL, 0);
	memset(&w, 0, sizeof(w));
	vmm_create(&w.m);
	w.view = map_view(&w.m);
	for (unsigned int i = 0; i < C_VCPUS; i++) {
		struct c_vcpu *c = &w.v[i];
		struct pm_guest_entry e = { .fn = guest_flip_pages, .arg = c };

		*c = (struct c_vcpu){ .idx = i, .steps = steps };
		c->handle = i ? pm_kvm_ioctl(w.m.vm, KVM_CREATE_VCPU, i) : w.m.vcpu;
		assert_true(c->handle >= 0);
		c->run = i ? pm_kvm_mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, c->handle, 0)
			   : w.m.run;
		assert_true(c->run != MAP_FAILED);
		assert_int_equal(pm_kvm_ioctl(c->handle, PM_KVM_SET_GUEST, &e), 0);
	}
	assert_int_equal(pthread_create(&reader, NULL, c_reader_main, &w), 0);
	assert_int_equal(pthread_create(&puncher, NULL, c_puncher_main, &w), 0);
	assert_int_equal(pthread_create(&checker, NULL, c_checker_main, &w), 0);
	for (unsigned int i = 0; i < C_VCPUS; i++)
		assert_int_equal(pthread_create(&vt[i], NULL, c_vcpu_main, &w.v[i]), 0);
	for (unsigned int i = 0; i < C_VCPUS; i++)
		pthread_join(vt[i], NULL);
	atomic_store(&w.stop, true);
	pthread_join(reader, NULL);
	pthread_join(puncher, NULL);
	pthread_join(checker, NULL);

	for (unsigned int i = 0; i < C_VCPUS; i++) {
		assert_false(w.v[i].failed);
		shares += w.v[i].shares;
		unshares += w.v[i].unshares;
		busy += w.v[i].busy;
	}
	fprintf(stderr, "concurrent sharing: %lu steps per vCPU; %" PRIu64 " shares, %" PRIu64
		" unshares, %" PRIu64 " refused as pinned; host: %" PRIu64 " public reads, %" PRIu64
		" pins, %" PRIu64 " punches, %" PRIu64 " refused; %" PRIu64 " checker runs\n", steps, shares,
		unshares, busy, (uint64_t)w.public_seen, (uint64_t)w.pins, (uint64_t)w.punches,
		(uint64_t)w.punches_refused, (uint64_t)w.checks);
	assert_int_equal(shares + unshares + busy, C_VCPUS * steps);
	assert_int_equal(model_count("unshare_busy") - busy0, busy);   /* every refusal was a pin */
	assert_true(atomic_load(&w.punches_refused) > 0);
	assert_int_equal(atomic_load(&w.secrets_seen), 0);
	assert_int_equal(atomic_load(&w.violations), 0);
	assert_true(atomic_load(&w.checks) > 0);
	/* At rest: the view shows exactly the pages the host borrows. */
	for (uint64_t p = 0; p < C_SLOT_PAGES; p++) {
		pm_pfn_t pfn = PM_PFN_INVALID;
		struct pkvm_guest_page gp;
		struct pkvm_hyp *hyp = pkvm_model_hyp();

		for (unsigned int id = 0; id < PKVM_MAX_VMS && pfn == PM_PFN_INVALID; id++)
			if (hyp->vms[id] && pkvm_guest_state(hyp->vms[id], GPA / PAGE + p, &gp) != PKVM_NOPAGE)
				pfn = gp.pfn;
		assert_int_equal(view_readable(w.view, p),
				 pfn != PM_PFN_INVALID && pkvm_host_state(hyp, pfn) == PKVM_PAGE_SHARED_BORROWED);
	}
	assert_consistent(pkvm_model_hyp());
	assert_int_equal(pm_kvm_munmap(w.view, GMEM_SIZE), 0);
	for (unsigned int i = 1; i < C_VCPUS; i++) {
		assert_int_equal(pm_kvm_munmap(w.v[i].run, PAGE), 0);
		assert_int_equal(pm_kvm_close(w.v[i].handle), 0);
	}
	vmm_destroy(&w.m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vm_type_16_creates_and_destroys_its_hyp_vm),
		cmocka_unit_test(test_pkvm_accepts_guest_memfd_slots_only_and_no_attributes),
		cmocka_unit_test(test_guest_private_memory_is_kept_and_unreachable_by_the_host),
		cmocka_unit_test(test_memslots_are_frozen_once_the_vm_has_run),
		cmocka_unit_test(test_before_the_first_run_slot_deletion_reclaims_and_poisons),
		cmocka_unit_test(test_closing_the_guest_memfd_takes_the_guest_pages_back_poisoned),
		cmocka_unit_test(test_punch_over_pages_the_guest_holds_is_ebusy_and_takes_nothing),
		cmocka_unit_test(test_vm_destruction_poisons_every_guest_page),
		cmocka_unit_test(test_share_is_in_place_and_unshare_takes_the_host_mapping_away),
		cmocka_unit_test(test_pwrite_reaches_shared_pages_only),
		cmocka_unit_test(test_unshare_fails_cleanly_while_the_host_pins_the_page),
		cmocka_unit_test(test_a_batch_unshare_stops_before_a_pinned_page),
		cmocka_unit_test(test_share_and_unshare_refusals_are_exact_and_change_nothing),
		cmocka_unit_test(test_host_accesses_are_checked_by_the_host_stage2),
		cmocka_unit_test(test_statistics_outlive_the_vm_and_its_hyp),
		cmocka_unit_test(test_process_stats_carry_the_hyp_names_and_counts),
		cmocka_unit_test(test_a_punch_over_a_shared_page_is_refused_and_keeps_its_pins),
		cmocka_unit_test(test_a_fork_child_never_reads_a_page_unshared_after_the_fork),
		cmocka_unit_test(test_an_mremap_copy_of_a_view_never_reads_a_page_after_its_unshare),
		cmocka_unit_test(test_a_pipe_filled_by_vmsplice_holds_only_what_was_shared),
		cmocka_unit_test(test_the_first_view_shows_what_was_shared_before_it),
		cmocka_unit_test(test_a_view_without_userfaultfd_reads_zeros_where_it_would_fault),
		cmocka_unit_test(test_a_shared_page_stays_shared_when_slot_deletion_is_refused),
		cmocka_unit_test(test_sharing_every_other_page_of_256m_under_a_view_keeps_one_mapping),
		cmocka_unit_test(test_reclaim_with_the_pool_exhausted_finishes),
		cmocka_unit_test(test_concurrent_sharing_keeps_every_invariant_and_every_secret),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

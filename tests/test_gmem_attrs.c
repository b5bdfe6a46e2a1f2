/* SPDX-License-Identifier: MIT */
/*
 * Tests of in-place conversion on guest_memfd (src/gmem/gmem_attrs.c,
 * the host file's rule in gmem_host.c, the fault path's use of the state):
 * KVM_SET_MEMORY_ATTRIBUTES2 and the capabilities of v8 of the series
 * "guest_memfd: In-place conversion support", in both of privmem's modes.
 *
 * The program runs twice: first as started (mode off: PRIVMEM_GMEM_IN_PLACE
 * unset), then again with the mode on (pm_test_rerun_in_place), since the
 * mode is read once per process as the module parameter is.
 *
 * In-place mode mirrors every test of v8's guest_memfd_conversions_test
 * with a real guest (a C guest run by KVM_RUN) on a KVM_X86_SW_PROTECTED_VM
 * whose slot at 4 GiB is a guest_memfd with GUEST_MEMFD_FLAG_MMAP, the
 * VMM's view of it an mmap of the file: init_private, init_shared,
 * indexing, before_allocation_shared/private, unallocated_folios, truncate,
 * forked_accesses (a child process) and elevated_refcount (a pin, privmem's
 * stand-in for get_user_pages); then every argument check and its errno,
 * EAGAIN and error_offset, what private_mem_conversions_test and
 * private_mem_kvm_exits_test change in v8 (SIGBUS reading private ranges
 * of conversions the guest asked for, MMIO after a slot's deletion), SNP's
 * and TDX's launch from the guest_memfd page itself, and a concurrent run
 * of conversions racing vCPU faults and host reads through the view, in
 * which the host never reads a value the guest wrote while the page was
 * private.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <linux/falloc.h>

#include <privmem/guest.h>
#include <privmem/privmem.h>
#include "gmem/gmem.h"
#include "kvm/vm.h"
#include "uapi/handle.h"
#include "lib/testutil.h"

#define PAGE      4096ULL
#define GPA_BASE  (4ULL << 30)          /* v8's fixture: slot 1 at 4 GiB */
#define PRIVATE   KVM_MEMORY_ATTRIBUTE_PRIVATE
#define PUNCH     (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)
#define MMAP      GUEST_MEMFD_FLAG_MMAP
#define INIT_SHARED GUEST_MEMFD_FLAG_INIT_SHARED
#define NDMAP     GUEST_MEMFD_FLAG_NO_DIRECT_MAP

/* ---- the fixture: a VM, a vCPU with a C guest, a guest_memfd and its view ---- */

/* What the guest does at the host's request (the guest code runs on the
 * thread of KVM_RUN, so plain memory carries the request). */
enum gop { G_NONE, G_RMW, G_READ, G_WRITE, G_CONVERT, G_SHARE, G_UNSHARE, G_DONE };

struct gcmd {
	enum gop op;
	uint64_t gpa, expected, val;
	uint64_t result;
};

struct fx {
	int kvm, vm, gmem, vcpu;
	unsigned long type;
	struct kvm_run *run;
	uint8_t *mem;                  /* the view: mmap of the whole file */
	uint64_t npages;
	struct gcmd cmd;
	unsigned int mmio_exits, hypercalls, memory_faults;
	bool convert_on_fault;         /* answer memory faults on the file (implicit) */
	uint64_t last_fault_flags;
	uint64_t last_mmio_gpa;
};

static void guest_loop(struct pm_guest *g, void *arg)
{
	struct fx *fx = arg;

	for (;;) {
		struct gcmd *c = &fx->cmd;

		switch (c->op) {
		case G_RMW:
			c->result = pm_guest_read64(g, c->gpa);
			PM_GUEST_ASSERT(g, c->result == c->expected);
			pm_guest_write64(g, c->gpa, c->val);
			break;
		case G_READ:
			c->result = pm_guest_read64(g, c->gpa);
			break;
		case G_WRITE:
			pm_guest_write64(g, c->gpa, c->val);
			break;
		case G_CONVERT:       /* expected: pages; val: to private */
			c->result = (uint64_t)pm_guest_hypercall(
				g, KVM_HC_MAP_GPA_RANGE, c->gpa, c->expected,
				c->val ? KVM_MAP_GPA_RANGE_ENCRYPTED : KVM_MAP_GPA_RANGE_DECRYPTED, 0);
			break;
		case G_SHARE:         /* pKVM's hypercalls, a granule each: expected: pages */
			c->result = pm_guest_mem_share_range(g, c->gpa, c->expected);
			break;
		case G_UNSHARE:
			c->result = pm_guest_mem_unshare_range(g, c->gpa, c->expected);
			break;
		case G_DONE:
			pm_guest_done(g);
		default:
			break;
		}
		pm_guest_sync(g, 0);
	}
}

static int attrs2(int gmem, uint64_t offset, uint64_t size, uint64_t attrs, uint64_t *error_offset)
{
	struct kvm_memory_attributes2 a = { .offset = offset, .size = size, .attributes = attrs,
					    .error_offset = 0xdeadULL };
	int r = pm_kvm_ioctl(gmem, KVM_SET_MEMORY_ATTRIBUTES2, &a);

	if (error_offset)
		*error_offset = a.error_offset;
	return r;
}

static void set_private(struct fx *fx, uint64_t page, uint64_t n)
{
	assert_int_equal(attrs2(fx->gmem, page * PAGE, n * PAGE, PRIVATE, NULL), 0);
}

static void set_shared(struct fx *fx, uint64_t page, uint64_t n)
{
	assert_int_equal(attrs2(fx->gmem, page * PAGE, n * PAGE, 0, NULL), 0);
}

static void fx_map(struct fx *fx)
{
	fx->mem = pm_kvm_mmap(NULL, fx->npages * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fx->gmem, 0);
	assert_true(fx->mem != MAP_FAILED);
}

/* A VM of `type` with a guest_memfd of npages (flags) in slot 1 at 4 GiB;
 * the view is made unless `map` is false (fx_map later). */
static void fx_create_type(struct fx *fx, unsigned long type, uint64_t npages, uint64_t flags, bool map)
{
	struct kvm_create_guest_memfd cg = { .size = npages * PAGE, .flags = flags };
	struct kvm_enable_cap cap = { .cap = KVM_CAP_EXIT_HYPERCALL,
				      .args = { 1ULL << KVM_HC_MAP_GPA_RANGE } };
	struct kvm_userspace_memory_region2 r = { .slot = 1, .flags = KVM_MEM_GUEST_MEMFD,
						  .guest_phys_addr = GPA_BASE,
						  .memory_size = npages * PAGE };
	struct pm_guest_entry e = { .fn = guest_loop, .arg = fx };

	memset(fx, 0, sizeof(*fx));
	fx->type = type;
	fx->npages = npages;
	fx->kvm = pm_kvm_open();
	fx->vm = pm_kvm_ioctl(fx->kvm, KVM_CREATE_VM, type);
	assert_true(fx->vm >= 0);
	assert_int_equal(pm_kvm_ioctl(fx->vm, KVM_ENABLE_CAP, &cap), 0);
	fx->gmem = pm_kvm_ioctl(fx->vm, KVM_CREATE_GUEST_MEMFD, &cg);
	assert_true(fx->gmem >= 0);
	if (map)
		fx_map(fx);
	/* As v8's fixture: the slot's memory is the view (unused: the slot
	 * is gmem-only in in-place mode). */
	r.userspace_addr = map ? (uintptr_t)fx->mem : 0;
	r.guest_memfd = (uint32_t)fx->gmem;
	assert_int_equal(pm_kvm_ioctl(fx->vm, KVM_SET_USER_MEMORY_REGION2, &r), 0);
	fx->vcpu = pm_kvm_ioctl(fx->vm, KVM_CREATE_VCPU, 0);
	assert_true(fx->vcpu >= 0);
	fx->run = pm_kvm_mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fx->vcpu, 0);
	assert_true(fx->run != MAP_FAILED);
	assert_int_equal(pm_kvm_ioctl(fx->vcpu, PM_KVM_SET_GUEST, &e), 0);
}

static void fx_create(struct fx *fx, uint64_t npages, uint64_t flags)
{
	fx_create_type(fx, KVM_X86_SW_PROTECTED_VM, npages, flags, true);
}

static void fx_destroy(struct fx *fx)
{
	if (fx->mem)
		assert_int_equal(pm_kvm_munmap(fx->mem, fx->npages * PAGE), 0);
	assert_int_equal(pm_kvm_munmap(fx->run, PAGE), 0);
	assert_int_equal(pm_kvm_close(fx->vcpu), 0);
	assert_int_equal(pm_kvm_close(fx->gmem), 0);
	assert_int_equal(pm_kvm_close(fx->vm), 0);
	assert_int_equal(pm_kvm_close(fx->kvm), 0);
}

/* The VMM's answer to the guest's KVM_HC_MAP_GPA_RANGE: in-place mode
 * converts on the guest_memfd (offset = gpa - 4 GiB, slot at offset 0). */
static void fx_hypercall(struct fx *fx)
{
	struct kvm_run *run = fx->run;
	bool to_private = run->hypercall.args[2] & KVM_MAP_GPA_RANGE_ENCRYPTED;

	fx->hypercalls++;
	/* pKVM's share and unshare never exit (its hyp handles them). */
	assert_int_equal(run->hypercall.nr, KVM_HC_MAP_GPA_RANGE);
	run->hypercall.ret = attrs2(fx->gmem, run->hypercall.args[0] - GPA_BASE,
				    run->hypercall.args[1] * PAGE, to_private ? PRIVATE : 0, NULL)
			     ? (uint64_t)(int64_t)-KVM_EINVAL : 0;
}

/* Has the guest do one command; returns its result. */
static uint64_t guest_do(struct fx *fx, enum gop op, uint64_t gpa, uint64_t expected, uint64_t val)
{
	struct pm_ucall uc;

	fx->cmd = (struct gcmd){ .op = op, .gpa = gpa, .expected = expected, .val = val };
	/* The first KVM_RUN starts the guest at its loop: the command is
	 * already there. Every later one resumes it after its last sync. */
	for (;;) {
		int r = pm_kvm_ioctl(fx->vcpu, KVM_RUN, 0);

		if (r && errno == EFAULT && fx->run->exit_reason == KVM_EXIT_MEMORY_FAULT) {
			const struct kvm_run *run = fx->run;

			fx->memory_faults++;
			fx->last_fault_flags = run->memory_fault.flags;
			if (!fx->convert_on_fault)
				fail_msg("unexpected memory fault at %#llx", (unsigned long long)run->memory_fault.gpa);
			/* The VMM converts as the access asked, on the file. */
			assert_int_equal(attrs2(fx->gmem, run->memory_fault.gpa - GPA_BASE, run->memory_fault.size,
						run->memory_fault.flags & KVM_MEMORY_EXIT_FLAG_PRIVATE ? PRIVATE : 0,
						NULL), 0);
			continue;
		}
		assert_int_equal(r, 0);
		switch (fx->run->exit_reason) {
		case KVM_EXIT_HYPERCALL:
			fx_hypercall(fx);
			continue;
		case KVM_EXIT_MMIO:
			fx->mmio_exits++;
			fx->last_mmio_gpa = fx->run->mmio.phys_addr;
			memset(fx->run->mmio.data, 0xab, sizeof(fx->run->mmio.data));
			continue;
		case PM_EXIT_UCALL:
			break;
		default:
			fail_msg("unexpected exit %u", fx->run->exit_reason);
		}
		switch (pm_get_ucall(fx->vcpu, &uc)) {
		case PM_UCALL_SYNC:
			return fx->cmd.result;
		case PM_UCALL_DONE:
			return 0;
		default:
			fail_msg("guest: %s", uc.msg);
		}
	}
}

static uint64_t gpa_of(uint64_t page)
{
	return GPA_BASE + page * PAGE;
}

/* v8's helpers. guest_do_rmw: the guest reads `expected` and writes
 * `val`; host_do_rmw the same through the view. */
static void guest_do_rmw(struct fx *fx, uint64_t page, uint64_t expected, uint64_t val)
{
	guest_do(fx, G_RMW, gpa_of(page), expected, val);
}

static void host_do_rmw(struct fx *fx, uint64_t page, uint64_t expected, uint64_t val)
{
	uint64_t *p = (uint64_t *)(fx->mem + page * PAGE);

	assert_int_equal(*p, expected);
	*p = val;
}

/* The host's accesses to the page fault (read and write), SIGBUS. */
static void assert_host_sigbus(struct fx *fx, uint64_t page)
{
	uint8_t v = 0x5a;

	assert_true(pm_test_sigbus(fx->mem + page * PAGE, true, &v));
	assert_true(pm_test_sigbus(fx->mem + page * PAGE + PAGE - 1, false, &v));
}

/* A pKVM view answers the host with SIGSEGV (an injected abort) where the
 * other VM types' views raise SIGBUS. */
static void assert_host_segv(struct fx *fx, uint64_t page)
{
	uint8_t v = 0x5a;

	assert_true(pm_test_sigsegv(fx->mem + page * PAGE, true, &v));
	assert_true(pm_test_sigsegv(fx->mem + page * PAGE + PAGE - 1, false, &v));
}

static void assert_host_reads(struct fx *fx, uint64_t page, uint64_t expected)
{
	uint8_t v;

	assert_false(pm_test_sigbus(fx->mem + page * PAGE, false, &v));
	assert_int_equal(*(volatile uint64_t *)(fx->mem + page * PAGE), expected);
}

/* test_private: host write SIGBUS, guest rmw, host read SIGBUS. */
static void test_private(struct fx *fx, uint64_t page, uint64_t expected, uint64_t val)
{
	assert_host_sigbus(fx, page);
	guest_do_rmw(fx, page, expected, val);
	assert_host_sigbus(fx, page);
}

/* test_shared: host rmw, guest rmw, host reads the guest's value. */
static void test_shared(struct fx *fx, uint64_t page, uint64_t expected, uint64_t host_val,
			uint64_t guest_val)
{
	host_do_rmw(fx, page, expected, host_val);
	guest_do_rmw(fx, page, host_val, guest_val);
	assert_host_reads(fx, page, guest_val);
}

static void test_convert_to_private(struct fx *fx, uint64_t page, uint64_t expected, uint64_t val)
{
	set_private(fx, page, 1);
	test_private(fx, page, expected, val);
}

static void test_convert_to_shared(struct fx *fx, uint64_t page, uint64_t expected, uint64_t host_val,
				   uint64_t guest_val)
{
	set_shared(fx, page, 1);
	test_shared(fx, page, expected, host_val, guest_val);
}

/* The file's allocated pages: fstat's st_blocks, in 512-byte blocks. */
static uint64_t gmem_pages(struct fx *fx)
{
	struct stat sb;

	assert_int_equal(pm_kvm_fstat(fx->gmem, &sb), 0);
	return (uint64_t)sb.st_blocks / (PAGE / 512);
}

static uint64_t vm_attr_invalidations(struct fx *fx)
{
	struct pm_vm_stats st;

	assert_int_equal(pm_kvm_ioctl(fx->vm, PM_KVM_GET_VM_STATS, &st), 0);
	return st.invalidations[PM_STAT_INVAL_ATTR];
}

static long check_cap(int fd, long cap)
{
	return pm_kvm_ioctl(fd, KVM_CHECK_EXTENSION, cap);
}

/* ======================= mode off ======================= */

static void test_off_set_attributes2_is_enotty(void **state)
{
	struct kvm_memory_attributes2 a = { .offset = 0, .size = PAGE, .attributes = PRIVATE };
	struct fx fx;

	fx_create_type(&fx, KVM_X86_SW_PROTECTED_VM, 4, MMAP, false);
	/* Before every other check, the argument's included. */
	assert_fails(pm_kvm_ioctl(fx.gmem, KVM_SET_MEMORY_ATTRIBUTES2, &a), ENOTTY);
	assert_fails(pm_kvm_ioctl(fx.gmem, KVM_SET_MEMORY_ATTRIBUTES2, NULL), ENOTTY);
	a.flags = 1;
	assert_fails(pm_kvm_ioctl(fx.gmem, KVM_SET_MEMORY_ATTRIBUTES2, &a), ENOTTY);
	assert_fails(pm_kvm_ioctl(fx.vm, KVM_SET_MEMORY_ATTRIBUTES2, &a), ENOTTY);
	fx_destroy(&fx);
}

static void test_off_capabilities_are_as_before(void **state)
{
	int kvm = pm_kvm_open();
	int sw = pm_kvm_ioctl(kvm, KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM);
	int snp = pm_kvm_ioctl(kvm, KVM_CREATE_VM, KVM_X86_SNP_VM);
	struct kvm_create_guest_memfd cg = { .size = 16 * PAGE, .flags = INIT_SHARED | MMAP };

	assert_true(sw >= 0 && snp >= 0);
	assert_int_equal(check_cap(kvm, KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES), 0);
	assert_int_equal(check_cap(sw, KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES), 0);
	assert_int_equal(check_cap(kvm, KVM_CAP_MEMORY_ATTRIBUTES), PRIVATE);
	assert_int_equal(check_cap(sw, KVM_CAP_MEMORY_ATTRIBUTES), PRIVATE);
	assert_int_equal(check_cap(sw, KVM_CAP_GUEST_MEMFD_FLAGS), MMAP | NDMAP);
	assert_int_equal(check_cap(snp, KVM_CAP_GUEST_MEMFD_FLAGS), MMAP | NDMAP);
	assert_fails(pm_kvm_ioctl(sw, KVM_CREATE_GUEST_MEMFD, &cg), EINVAL);
	pm_kvm_close(snp);
	pm_kvm_close(sw);
	pm_kvm_close(kvm);
}

/* The VM's attributes decide; a view of a sw file faults everywhere,
 * whatever the attribute (the host never maps sw memory in place). */
static void test_off_vm_attributes_decide(void **state)
{
	struct kvm_memory_attributes a = { .address = GPA_BASE, .size = PAGE, .attributes = PRIVATE };
	struct fx fx;

	fx_create(&fx, 2, MMAP);
	assert_host_sigbus(&fx, 0);
	assert_int_equal(pm_kvm_ioctl(fx.vm, KVM_SET_MEMORY_ATTRIBUTES, &a), 0);
	guest_do_rmw(&fx, 0, 0, 0x1111);
	assert_host_sigbus(&fx, 0);
	a.attributes = 0;
	assert_int_equal(pm_kvm_ioctl(fx.vm, KVM_SET_MEMORY_ATTRIBUTES, &a), 0);
	assert_host_sigbus(&fx, 0);
	assert_host_sigbus(&fx, 1);
	fx_destroy(&fx);
}

/* pKVM (either mode): the file's state is the one record of what the
 * host may have: the guest's MEM_SHARE makes its pages shared in the file
 * (the view shows them, the host may pin them), MEM_UNSHARE private again
 * (the view faults, pins are refused), and a punch of a shared page takes
 * it from the host too. The hyp decides first, each time. */
static bool file_private(struct fx *fx, uint64_t page)
{
	struct pm_file f;
	bool priv;

	assert_int_equal(pm_handle_get(fx->gmem, &f), 0);
	priv = pm_gmem_is_private(f.obj, page);
	pm_file_put(&f);
	return priv;
}

static bool pin_refused(struct fx *fx, uint64_t page)
{
	struct pm_gmem_pin p = { .offset = page * PAGE, .size = PAGE };

	if (pm_kvm_ioctl(fx->gmem, PM_GUEST_MEMFD_PIN, &p) == 0) {
		assert_int_equal(pm_kvm_ioctl(fx->gmem, PM_GUEST_MEMFD_UNPIN, &p), 0);
		return false;
	}
	assert_int_equal(errno, EFAULT);
	return true;
}

static void test_pkvm_shares_write_the_file_state(void **state)
{
	struct fx fx;

	fx_create_type(&fx, PM_VM_TYPE_PKVM, 4, MMAP, false);
	guest_do(&fx, G_WRITE, gpa_of(1), 0, 0x51);
	assert_true(file_private(&fx, 1));
	/* Before any view: the state changes, the contents stay in the
	 * frame; the first view brings them in. */
	assert_int_equal(guest_do(&fx, G_SHARE, gpa_of(1), 2, 0), 2);
	assert_false(file_private(&fx, 1));
	assert_false(file_private(&fx, 2));
	assert_true(file_private(&fx, 0));
	assert_false(pin_refused(&fx, 1));
	fx_map(&fx);
	assert_host_reads(&fx, 1, 0x51);
	assert_host_segv(&fx, 0);
	/* With the view: an unshare takes the page from every mapping. */
	assert_int_equal(guest_do(&fx, G_UNSHARE, gpa_of(1), 1, 0), 1);
	assert_true(file_private(&fx, 1));
	assert_host_segv(&fx, 1);
	assert_true(pin_refused(&fx, 1));
	assert_int_equal(guest_do(&fx, G_READ, gpa_of(1), 0, 0), 0x51);
	/* A share again, then a punch: the guest holds the page (shared pages
	 * are still its own), so it is pinned and the punch is refused; the
	 * page stays shared, state and contents. */
	assert_int_equal(guest_do(&fx, G_SHARE, gpa_of(3), 1, 0), 1);
	assert_false(file_private(&fx, 3));
	assert_host_reads(&fx, 3, 0);
	assert_int_equal(pm_kvm_fallocate(fx.gmem, PUNCH, 3 * PAGE, PAGE), -1);
	assert_int_equal(errno, EBUSY);
	assert_false(file_private(&fx, 3));
	assert_host_reads(&fx, 3, 0);
	assert_false(file_private(&fx, 2));
	fx_destroy(&fx);
}

/* ======================= mode on: the uAPI ======================= */

static void test_uapi_numbers_and_layout(void **state)
{
	assert_int_equal(KVM_SET_MEMORY_ATTRIBUTES2, 0xc080aed2UL);
	assert_int_equal(KVM_SET_MEMORY_ATTRIBUTES, 0x4020aed2UL);
	assert_int_equal(sizeof(struct kvm_memory_attributes2), 128);
	assert_int_equal(offsetof(struct kvm_memory_attributes2, offset), 0);
	assert_int_equal(offsetof(struct kvm_memory_attributes2, address), 0);
	assert_int_equal(offsetof(struct kvm_memory_attributes2, size), 8);
	assert_int_equal(offsetof(struct kvm_memory_attributes2, attributes), 16);
	assert_int_equal(offsetof(struct kvm_memory_attributes2, flags), 24);
	assert_int_equal(offsetof(struct kvm_memory_attributes2, error_offset), 32);
	assert_int_equal(offsetof(struct kvm_memory_attributes2, reserved), 40);
	assert_int_equal(KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES, 250);
}

static void test_capabilities(void **state)
{
	static const struct { unsigned long type; long attrs2, flags; } want[] = {
		{ KVM_X86_DEFAULT_VM, 0, MMAP | NDMAP | INIT_SHARED },
		{ KVM_X86_SW_PROTECTED_VM, PRIVATE, MMAP | NDMAP | INIT_SHARED },
		{ KVM_X86_SNP_VM, PRIVATE, MMAP | NDMAP | INIT_SHARED },
		{ KVM_X86_TDX_VM, PRIVATE, MMAP | NDMAP | INIT_SHARED },
		{ PM_VM_TYPE_PKVM, 0, MMAP | NDMAP },
	};
	int kvm = pm_kvm_open();

	assert_int_equal(check_cap(kvm, KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES), PRIVATE);
	assert_int_equal(check_cap(kvm, KVM_CAP_MEMORY_ATTRIBUTES), 0);
	for (size_t i = 0; i < PM_ARRAY_SIZE(want); i++) {
		int vm = pm_kvm_ioctl(kvm, KVM_CREATE_VM, want[i].type);
		struct kvm_create_guest_memfd cg = { .size = 8 * PAGE, .flags = want[i].flags };
		int g;

		assert_true(vm >= 0);
		assert_int_equal(check_cap(vm, KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES), want[i].attrs2);
		assert_int_equal(check_cap(vm, KVM_CAP_MEMORY_ATTRIBUTES), 0);
		assert_int_equal(check_cap(vm, KVM_CAP_GUEST_MEMFD_FLAGS), want[i].flags);
		g = pm_kvm_ioctl(vm, KVM_CREATE_GUEST_MEMFD, &cg);
		assert_true(g >= 0);
		pm_kvm_close(g);
		pm_kvm_close(vm);
	}
	pm_kvm_close(kvm);
}

/* The per-VM attributes take PRIVATE no more (v8: EINVAL when the per-VM
 * code is built); shared stays a no-op. */
static void test_vm_attributes_refuse_private(void **state)
{
	struct kvm_memory_attributes a = { .address = GPA_BASE, .size = PAGE, .attributes = PRIVATE };
	struct fx fx;

	fx_create(&fx, 1, MMAP);
	assert_fails(pm_kvm_ioctl(fx.vm, KVM_SET_MEMORY_ATTRIBUTES, &a), EINVAL);
	a.attributes = 0;
	assert_int_equal(pm_kvm_ioctl(fx.vm, KVM_SET_MEMORY_ATTRIBUTES, &a), 0);
	/* The VM handle does not take KVM_SET_MEMORY_ATTRIBUTES2. */
	assert_fails(pm_kvm_ioctl(fx.vm, KVM_SET_MEMORY_ATTRIBUTES2, &a), ENOTTY);
	/* A guest_memfd starts private: the guest's access is private
	 * (no conversion needed first), the host's faults. */
	test_private(&fx, 0, 0, 0x77);
	fx_destroy(&fx);
}

struct arg_case {
	const char *what;
	uint64_t offset, size, attrs, flags;
	int reserved;               /* index of a reserved word set, or -1 */
};

static void test_argument_checks(void **state)
{
	const uint64_t size = 8 * PAGE;
	static const struct arg_case cases[] = {
		{ "flags bit 0",       0, PAGE, PRIVATE, 1, -1 },
		{ "flags bit 63",      0, PAGE, 0, 1ULL << 63, -1 },
		{ "attribute bit 0",   0, PAGE, 1, 0, -1 },
		{ "attribute bit 63",  0, PAGE, 1ULL << 63, 0, -1 },
		{ "private and more",  0, PAGE, PRIVATE | 2, 0, -1 },
		{ "size 0",            0, 0, PRIVATE, 0, -1 },
		{ "overflow",          0ULL - PAGE, 2 * PAGE, PRIVATE, 0, -1 },
		{ "huge overflow",     PAGE, 0ULL - PAGE, 0, 0, -1 },
		{ "unaligned offset",  0x800, PAGE, PRIVATE, 0, -1 },
		{ "unaligned size",    0, PAGE + 1, PRIVATE, 0, -1 },
		{ "offset at the end", 8 * PAGE, PAGE, PRIVATE, 0, -1 },
		{ "offset past it",    9 * PAGE, PAGE, 0, 0, -1 },
		{ "end past the end",  7 * PAGE, 2 * PAGE, PRIVATE, 0, -1 },
		{ "reserved[0]",       0, PAGE, PRIVATE, 0, 0 },
		{ "reserved[10]",      0, PAGE, PRIVATE, 0, 10 },
	};
	struct kvm_memory_attributes2 a;
	struct fx fx;

	fx_create(&fx, size / PAGE, MMAP);
	assert_fails(pm_kvm_ioctl(fx.gmem, KVM_SET_MEMORY_ATTRIBUTES2, NULL), EFAULT);
	for (size_t i = 0; i < PM_ARRAY_SIZE(cases); i++) {
		const struct arg_case *c = &cases[i];

		memset(&a, 0, sizeof(a));
		a.offset = c->offset;
		a.size = c->size;
		a.attributes = c->attrs;
		a.flags = c->flags;
		a.error_offset = 0x1234;
		if (c->reserved >= 0)
			a.reserved[c->reserved] = 1;
		errno = 0;
		if (pm_kvm_ioctl(fx.gmem, KVM_SET_MEMORY_ATTRIBUTES2, &a) != -1 || errno != EINVAL)
			fail_msg("%s: want EINVAL, got errno %d", c->what, errno);
		/* error_offset is written back only after the checks. */
		assert_int_equal(a.error_offset, 0x1234);
	}
	/* Every reserved word is checked. */
	for (int i = 0; i < 11; i++) {
		memset(&a, 0, sizeof(a));
		a.size = PAGE;
		a.reserved[i] = 1ULL << 40;
		assert_fails(pm_kvm_ioctl(fx.gmem, KVM_SET_MEMORY_ATTRIBUTES2, &a), EINVAL);
	}
	/* The whole file, each page alone, and the last page are valid. */
	assert_int_equal(attrs2(fx.gmem, 0, size, 0, NULL), 0);
	assert_int_equal(attrs2(fx.gmem, size - PAGE, PAGE, PRIVATE, NULL), 0);
	fx_destroy(&fx);
}

/* Check 4 (no private memory) comes before the argument's own: a default
 * VM's or a pKVM VM's file refuses even a good request, and a request that
 * fails several checks is EINVAL. */
static void test_files_without_private_memory_refuse(void **state)
{
	static const unsigned long types[] = { KVM_X86_DEFAULT_VM, PM_VM_TYPE_PKVM };
	int kvm = pm_kvm_open();

	for (size_t i = 0; i < PM_ARRAY_SIZE(types); i++) {
		int vm = pm_kvm_ioctl(kvm, KVM_CREATE_VM, types[i]);
		struct kvm_create_guest_memfd cg = { .size = 4 * PAGE, .flags = MMAP };
		int g;
		uint64_t eo = 0;

		assert_true(vm >= 0);
		g = pm_kvm_ioctl(vm, KVM_CREATE_GUEST_MEMFD, &cg);
		assert_true(g >= 0);
		errno = 0;
		assert_int_equal(attrs2(g, 0, PAGE, PRIVATE, &eo), -1);
		assert_int_equal(errno, EINVAL);
		assert_int_equal(eo, 0xdead);
		assert_int_equal(attrs2(g, 0, PAGE, 0, NULL), -1);
		assert_int_equal(errno, EINVAL);
		pm_kvm_close(g);
		pm_kvm_close(vm);
	}
	pm_kvm_close(kvm);
}

/* A range that already has the attributes: 0, nothing done (no
 * invalidation, error_offset untouched). */
static void test_noop_when_already_so(void **state)
{
	struct fx fx;
	uint64_t inval, eo = 0;

	fx_create(&fx, 4, MMAP);
	inval = vm_attr_invalidations(&fx);
	assert_int_equal(attrs2(fx.gmem, 0, 4 * PAGE, PRIVATE, &eo), 0);
	assert_int_equal(eo, 0xdead);
	assert_int_equal(vm_attr_invalidations(&fx), inval);
	set_shared(&fx, 1, 2);
	assert_int_equal(vm_attr_invalidations(&fx), inval + 1);
	set_shared(&fx, 1, 1);
	assert_int_equal(vm_attr_invalidations(&fx), inval + 1);
	/* A mixed range is converted (one invalidation). */
	set_shared(&fx, 0, 4);
	assert_int_equal(vm_attr_invalidations(&fx), inval + 2);
	fx_destroy(&fx);
}

/* ======================= mode on: v8's conversion tests ======================= */

static void test_init_private(void **state)
{
	struct fx fx;

	fx_create(&fx, 1, MMAP);
	test_private(&fx, 0, 0, 'A');
	assert_true(pin_refused(&fx, 0));       /* the host may not hold it */
	test_convert_to_shared(&fx, 0, 'A', 'B', 'C');
	assert_false(pin_refused(&fx, 0));
	test_convert_to_private(&fx, 0, 'C', 'E');
	assert_true(pin_refused(&fx, 0));
	fx_destroy(&fx);
}

static void test_init_shared(void **state)
{
	struct fx fx;

	fx_create(&fx, 1, MMAP | INIT_SHARED);
	test_shared(&fx, 0, 0, 'A', 'B');
	test_convert_to_private(&fx, 0, 'B', 'C');
	test_convert_to_shared(&fx, 0, 'C', 'D', 'E');
	fx_destroy(&fx);
}

/* Converting one page leaves the others as they were. */
static void test_indexing(void **state)
{
	const uint64_t n = 4;

	for (uint64_t test_page = 0; test_page < n; test_page++) {
		struct fx fx;

		fx_create(&fx, n, MMAP | INIT_SHARED);
		for (uint64_t i = 0; i < n; i++)
			test_shared(&fx, i, 0, 'A', 'B');
		test_convert_to_private(&fx, test_page, 'B', 'C');
		for (uint64_t i = 0; i < n; i++)
			if (i != test_page)
				test_shared(&fx, i, 'B', 'C', 'D');
		test_convert_to_shared(&fx, test_page, 'C', 'D', 'E');
		for (uint64_t i = 0; i < n; i++)
			if (i != test_page)
				test_shared(&fx, i, 'D', 'E', 'F');
		fx_destroy(&fx);
	}
}

/* A conversion before any page exists is recorded. */
static void test_before_allocation_shared(void **state)
{
	struct fx fx;

	fx_create_type(&fx, KVM_X86_SW_PROTECTED_VM, 1, MMAP, false);
	assert_int_equal(gmem_pages(&fx), 0);
	set_shared(&fx, 0, 1);
	assert_int_equal(gmem_pages(&fx), 0);
	fx_map(&fx);
	test_shared(&fx, 0, 0, 'A', 'B');
	fx_destroy(&fx);
}

static void test_before_allocation_private(void **state)
{
	struct fx fx;

	fx_create_type(&fx, KVM_X86_SW_PROTECTED_VM, 1, MMAP | INIT_SHARED, false);
	assert_int_equal(gmem_pages(&fx), 0);
	set_private(&fx, 0, 1);
	assert_int_equal(gmem_pages(&fx), 0);
	fx_map(&fx);
	test_private(&fx, 0, 0, 'A');
	fx_destroy(&fx);
}

/* The whole range to private while one page is allocated: that page keeps
 * its data in place, the others read zero, all are private. */
static void test_unallocated_folios(void **state)
{
	const uint64_t n = 8;

	for (uint64_t test_page = 0; test_page < n; test_page++) {
		struct fx fx;

		fx_create(&fx, n, MMAP);
		set_shared(&fx, test_page, 1);
		test_shared(&fx, test_page, 0, 'A', 'B');
		assert_int_equal(gmem_pages(&fx), 1);
		set_private(&fx, 0, n);
		for (uint64_t i = 0; i < n; i++)
			test_private(&fx, i, i == test_page ? 'B' : 0, 'C');
		fx_destroy(&fx);
	}
}

/* PUNCH_HOLE zeroes and keeps the state, shared or private. */
static void test_truncate(void **state)
{
	struct fx fx;

	fx_create(&fx, 2, MMAP | INIT_SHARED);
	test_shared(&fx, 0, 0, 'A', 'B');
	assert_int_equal(pm_kvm_fallocate(fx.gmem, PUNCH, 0, PAGE), 0);
	assert_host_reads(&fx, 0, 0);
	test_shared(&fx, 0, 0, 'C', 'D');
	test_convert_to_private(&fx, 1, 0, 'E');
	assert_int_equal(pm_kvm_fallocate(fx.gmem, PUNCH, PAGE, PAGE), 0);
	test_private(&fx, 1, 0, 'F');
	fx_destroy(&fx);
}

/* A fork child's copy of the view: it sees shared data and writes; once
 * the parent converts the page to private, the child's read and write
 * fault. */
static void test_forked_accesses(void **state)
{
	int to_child[2], to_parent[2];
	struct fx fx;
	char c = 0;
	int status;
	pid_t pid;

	fx_create(&fx, 1, MMAP | INIT_SHARED);
	host_do_rmw(&fx, 0, 0, 'A');
	assert_int_equal(pipe(to_child), 0);
	assert_int_equal(pipe(to_parent), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* The child never calls into privmem. */
		volatile uint64_t *p = (uint64_t *)fx.mem;
		uint8_t v = 1;
		int bad = 0;

		bad |= *p != 'A';
		*p = 'B';
		bad |= write(to_parent[1], "w", 1) != 1;
		bad |= read(to_child[0], &c, 1) != 1;
		bad |= !pm_test_sigbus(fx.mem, false, &v) << 1;
		bad |= !pm_test_sigbus(fx.mem, true, &v) << 2;
		_exit(bad);
	}
	assert_int_equal(read(to_parent[0], &c, 1), 1);
	assert_host_reads(&fx, 0, 'B');
	test_convert_to_private(&fx, 0, 'B', 'C');
	assert_int_equal(write(to_child[1], "c", 1), 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	close(to_child[0]);
	close(to_child[1]);
	close(to_parent[0]);
	close(to_parent[1]);
	fx_destroy(&fx);
}

static void pin(struct fx *fx, uint64_t page, bool on)
{
	struct pm_gmem_pin p = { .offset = page * PAGE, .size = PAGE };

	assert_int_equal(pm_kvm_ioctl(fx->gmem, on ? PM_GUEST_MEMFD_PIN : PM_GUEST_MEMFD_UNPIN, &p), 0);
}

/* A page the host holds (pinned) refuses to-private with EAGAIN and
 * error_offset = that page, nothing converted; the other pages convert
 * alone; after the unpin all of them do. */
static void test_elevated_refcount(void **state)
{
	const uint64_t n = 4;

	for (uint64_t test_page = 0; test_page < n; test_page++) {
		uint64_t inval, eo;
		struct fx fx;

		fx_create(&fx, n, MMAP | INIT_SHARED);
		for (uint64_t i = 0; i < n; i++)
			test_shared(&fx, i, 0, 'A', 'B');
		pin(&fx, test_page, true);
		inval = vm_attr_invalidations(&fx);
		errno = 0;
		assert_int_equal(attrs2(fx.gmem, 0, n * PAGE, PRIVATE, &eo), -1);
		assert_int_equal(errno, EAGAIN);
		assert_int_equal(eo, test_page * PAGE);
		/* All or nothing: every page is still shared. */
		for (uint64_t i = 0; i < n; i++)
			assert_host_reads(&fx, i, 'B');
		assert_int_equal(attrs2(fx.gmem, test_page * PAGE, PAGE, PRIVATE, &eo), -1);
		assert_int_equal(errno, EAGAIN);
		assert_int_equal(eo, test_page * PAGE);
		/* error_offset goes back with copy_to_user: into a struct
		 * the process can read but not write, EFAULT. */
		if (test_page == 0) {
			struct kvm_memory_attributes2 *ro = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
								 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

			assert_true(ro != MAP_FAILED);
			*ro = (struct kvm_memory_attributes2){ .size = n * PAGE, .attributes = PRIVATE };
			assert_int_equal(mprotect(ro, PAGE, PROT_READ), 0);
			errno = 0;
			assert_int_equal(pm_kvm_ioctl(fx.gmem, KVM_SET_MEMORY_ATTRIBUTES2, ro), -1);
			assert_int_equal(errno, EFAULT);
			munmap(ro, PAGE);
		}
		/* The range from the page after: no pin there. */
		if (test_page + 1 < n)
			set_private(&fx, test_page + 1, n - test_page - 1);
		for (uint64_t i = 0; i < n; i++) {
			if (i <= test_page)
				assert_host_reads(&fx, i, 'B');
			else
				test_private(&fx, i, 'B', 'C');
		}
		assert_true(vm_attr_invalidations(&fx) > inval);
		pin(&fx, test_page, false);
		set_private(&fx, 0, n);
		for (uint64_t i = 0; i < n; i++)
			test_private(&fx, i, i <= test_page ? 'B' : 'C', 'D');
		fx_destroy(&fx);
	}
}

/* ======================= mode on: the other selftests' changes ======================= */

/* private_mem_conversions_test in v8: the guest asks for conversions
 * (KVM_HC_MAP_GPA_RANGE), the VMM converts on the guest_memfd, and the
 * host reading any page of a range the guest made private gets SIGBUS;
 * data the guest wrote survives both directions. */
static void test_guest_requested_conversions(void **state)
{
	const uint64_t n = 16;
	struct fx fx;

	fx_create(&fx, n, MMAP | INIT_SHARED);
	for (uint64_t i = 0; i < n; i++)
		guest_do(&fx, G_WRITE, gpa_of(i), 0, 0x1000 + i);
	for (uint64_t first = 0; first < n; first += 4) {
		assert_int_equal(guest_do(&fx, G_CONVERT, gpa_of(first), 4, 1), 0);
		for (uint64_t i = first; i < first + 4; i++) {
			assert_host_sigbus(&fx, i);
			guest_do_rmw(&fx, i, 0x1000 + i, 0x2000 + i);
		}
		if (first + 4 < n)      /* the rest is still shared */
			assert_host_reads(&fx, first + 4, 0x1000 + first + 4);
	}
	assert_int_equal(guest_do(&fx, G_CONVERT, gpa_of(0), n, 0), 0);
	for (uint64_t i = 0; i < n; i++)
		assert_host_reads(&fx, i, 0x2000 + i);
	/* After a punch the guest writes its pattern again (v8's order). */
	assert_int_equal(pm_kvm_fallocate(fx.gmem, PUNCH, 0, n * PAGE), 0);
	for (uint64_t i = 0; i < n; i++) {
		assert_host_reads(&fx, i, 0);
		guest_do_rmw(&fx, i, 0, 0x3000 + i);
		assert_host_reads(&fx, i, 0x3000 + i);
	}
	assert_int_equal(fx.hypercalls, n / 4 + 1);
	fx_destroy(&fx);
}

/* private_mem_kvm_exits_test in v8: no conversion first (a guest_memfd
 * starts private), and with the memslot deleted the access is MMIO (the
 * gfn has no slot: shared), not a memory fault. */
static void test_deleted_slot_is_mmio(void **state)
{
	struct kvm_userspace_memory_region2 r = { .slot = 1, .flags = KVM_MEM_GUEST_MEMFD,
						  .guest_phys_addr = GPA_BASE };
	struct fx fx;
	uint64_t v;

	fx_create(&fx, 1, MMAP);
	guest_do(&fx, G_WRITE, gpa_of(0), 0, 0x42);
	assert_host_sigbus(&fx, 0);
	r.guest_memfd = (uint32_t)fx.gmem;
	assert_int_equal(pm_kvm_ioctl(fx.vm, KVM_SET_USER_MEMORY_REGION2, &r), 0);
	v = guest_do(&fx, G_READ, gpa_of(0), 0, 0);
	assert_int_equal(fx.mmio_exits, 1);
	assert_int_equal(fx.last_mmio_gpa, gpa_of(0));
	assert_int_equal(v, 0xababababababababULL);
	assert_int_equal(fx.memory_faults, 0);
	fx_destroy(&fx);
}

/* The state is the file's: a second file bound beside the first starts
 * private and converts on its own, without MMAP (its shared pages live in
 * their frames, which keep the data both ways), while the first file's
 * pages stay as they were. */
static void test_state_is_per_file(void **state)
{
	struct kvm_userspace_memory_region2 r2 = { .slot = 2, .flags = KVM_MEM_GUEST_MEMFD,
						   .guest_phys_addr = 8ULL << 30, .memory_size = 2 * PAGE,
						   .guest_memfd_offset = 2 * PAGE };
	struct fx fx;

	fx_create(&fx, 2, MMAP | INIT_SHARED);
	/* A second file bound beside: the state is its own. */
	{
		struct kvm_create_guest_memfd cg = { .size = 4 * PAGE };
		int g2 = pm_kvm_ioctl(fx.vm, KVM_CREATE_GUEST_MEMFD, &cg);

		assert_true(g2 >= 0);
		r2.guest_memfd = (uint32_t)g2;
		assert_int_equal(pm_kvm_ioctl(fx.vm, KVM_SET_USER_MEMORY_REGION2, &r2), 0);
		/* Private from the start: the guest's write is private. */
		guest_do(&fx, G_WRITE, 8ULL << 30, 0, 0x99);
		assert_int_equal(attrs2(g2, 2 * PAGE, PAGE, 0, NULL), 0);
		assert_int_equal(guest_do(&fx, G_READ, 8ULL << 30, 0, 0), 0x99);
		assert_int_equal(attrs2(g2, 2 * PAGE, PAGE, PRIVATE, NULL), 0);
		assert_int_equal(guest_do(&fx, G_READ, 8ULL << 30, 0, 0), 0x99);
		r2.memory_size = 0;
		assert_int_equal(pm_kvm_ioctl(fx.vm, KVM_SET_USER_MEMORY_REGION2, &r2), 0);
		pm_kvm_close(g2);
	}
	test_shared(&fx, 0, 0, 'A', 'B');
	fx_destroy(&fx);
}

/* 2M pages: a 4K conversion inside a 2M guest_memfd page splits the
 * mapping and keeps both halves' data; converting back lets 2M return. */
static void test_huge_page_partial_conversion(void **state)
{
	const uint64_t n = 1024;
	struct fx fx;

	fx_create(&fx, n, MMAP | INIT_SHARED);
	for (uint64_t i = 0; i < n; i += 97)
		host_do_rmw(&fx, i, 0, 0x500 + i);
	set_private(&fx, 0, 512);
	set_shared(&fx, 100, 1);
	for (uint64_t i = 0; i < n; i += 97) {
		bool priv = i < 512 && i != 100;

		if (priv) {
			assert_host_sigbus(&fx, i);
			guest_do_rmw(&fx, i, 0x500 + i, 0x600 + i);
		} else {
			test_shared(&fx, i, 0x500 + i, 0x600 + i, 0x700 + i);
		}
	}
	set_shared(&fx, 0, n);
	for (uint64_t i = 0; i < n; i += 97) {
		bool priv = i < 512 && i != 100;

		assert_host_reads(&fx, i, (priv ? 0x600 : 0x700) + i);
	}
	fx_destroy(&fx);
}

/* ======================= mode on: SNP and TDX ======================= */

static uint8_t image[2][PAGE] __attribute__((aligned(4096)));

static void fill_image(void)
{
	for (int p = 0; p < 2; p++)
		for (unsigned int i = 0; i < PAGE; i++)
			image[p][i] = (uint8_t)(i * 7 + p * 31 + (i >> 8) + 1);
}

struct snp_read {
	uint64_t gpa;
	const uint8_t *want;
};

static void guest_snp_reads(struct pm_guest *g, void *arg)
{
	const struct snp_read *r = arg;
	uint8_t buf[PAGE];

	for (int p = 0; p < 2; p++) {
		pm_guest_read(g, (r->gpa + p * PAGE) | PM_SNP_C_BIT, buf, PAGE);
		PM_GUEST_ASSERT(g, !memcmp(buf, r->want + p * PAGE, PAGE));
	}
	pm_guest_done(g);
}

static int sev_cmd(int vm, uint32_t id, void *data)
{
	struct kvm_sev_cmd c = { .id = id, .data = (uintptr_t)data };

	return pm_kvm_ioctl(vm, KVM_MEMORY_ENCRYPT_OP, &c);
}

static void run_until_done(int vcpu)
{
	struct pm_ucall uc;

	for (;;) {
		assert_int_equal(pm_kvm_ioctl(vcpu, KVM_RUN, 0), 0);
		assert_int_equal(pm_get_ucall(vcpu, &uc) != PM_UCALL_NONE, true);
		if (uc.cmd == PM_UCALL_DONE)
			return;
		if (uc.cmd == PM_UCALL_ABORT)
			fail_msg("guest: %s", uc.msg);
	}
}

/* SNP in-place: the VMM writes the image into the guest_memfd page while
 * it is shared, converts it to private, and LAUNCH_UPDATE with uaddr 0
 * takes it from there (the digest and the guest's view say so); a page
 * made shared again reaches the host zeroed (the hardware keeps private
 * contents from it), and its frame is the hypervisor's again. */
static void test_snp_launch_in_place(void **state)
{
	struct kvm_sev_snp_launch_start s = { .policy = 0x30000 };
	struct kvm_sev_snp_launch_update u = { .gfn_start = GPA_BASE >> 12, .uaddr = 0, .len = 2 * PAGE,
					       .type = KVM_SEV_SNP_PAGE_TYPE_NORMAL };
	struct kvm_sev_snp_launch_finish f = { 0 };
	struct snp_read rd = { .gpa = GPA_BASE, .want = image[0] };
	struct pm_guest_entry e = { .fn = guest_snp_reads, .arg = &rd };
	uint8_t want[48] = { 0 }, vmsa[PAGE];
	struct pm_measurement m;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct fx fx;

	fill_image();
	fx_create_type(&fx, KVM_X86_SNP_VM, 4, MMAP | INIT_SHARED, true);
	memcpy(fx.mem, image, sizeof(image));
	set_private(&fx, 0, 2);
	assert_host_sigbus(&fx, 0);
	assert_host_sigbus(&fx, 1);
	assert_int_equal(sev_cmd(fx.vm, KVM_SEV_SNP_LAUNCH_START, &s), 0);
	assert_int_equal(sev_cmd(fx.vm, KVM_SEV_SNP_LAUNCH_UPDATE, &u), 0);
	assert_int_equal(u.len, 0);
	assert_int_equal(u.uaddr, 0);
	assert_int_equal(u.gfn_start, (GPA_BASE >> 12) + 2);
	assert_int_equal(pm_kvm_ioctl(fx.vcpu, KVM_GET_SREGS, &sregs), 0);
	assert_int_equal(pm_kvm_ioctl(fx.vcpu, KVM_GET_REGS, &regs), 0);
	assert_int_equal(sev_cmd(fx.vm, KVM_SEV_SNP_LAUNCH_FINISH, &f), 0);
	assert_int_equal(pm_kvm_ioctl(fx.vm, PM_KVM_GET_MEASUREMENT, &m), 0);
	pm_test_snp_page_info(want, image[0], KVM_SEV_SNP_PAGE_TYPE_NORMAL, GPA_BASE);
	pm_test_snp_page_info(want, image[1], KVM_SEV_SNP_PAGE_TYPE_NORMAL, GPA_BASE + PAGE);
	pm_test_snp_reset_vmsa(vmsa, sregs.cs.selector, sregs.cs.base, regs.rip, regs.rdx);
	pm_test_snp_page_info(want, vmsa, 2, 0xFFFFFFFFF000ULL);     /* the VMSA */
	assert_memory_equal(m.digest, want, 48);
	assert_int_equal(pm_kvm_ioctl(fx.vcpu, PM_KVM_SET_GUEST, &e), 0);
	run_until_done(fx.vcpu);
	/* Back to shared: the host gets zeroes, not the guest's page. */
	set_shared(&fx, 0, 1);
	assert_host_reads(&fx, 0, 0);
	for (unsigned int i = 0; i < PAGE; i += 512)
		assert_int_equal(fx.mem[i], 0);
	fx_destroy(&fx);
}

/* Without the mode's source 0, LAUNCH_UPDATE's uaddr 0 is EFAULT (a source
 * the VMM has not mapped): tested in mode off by test_snp.c. Here a page
 * the VMM never made private is refused (not private: EINVAL). */
static void test_snp_launch_needs_private(void **state)
{
	struct kvm_sev_snp_launch_start s = { .policy = 0x30000 };
	struct kvm_sev_snp_launch_update u = { .gfn_start = GPA_BASE >> 12, .uaddr = 0, .len = PAGE,
					       .type = KVM_SEV_SNP_PAGE_TYPE_NORMAL };
	struct fx fx;

	fx_create_type(&fx, KVM_X86_SNP_VM, 2, MMAP | INIT_SHARED, true);
	assert_int_equal(sev_cmd(fx.vm, KVM_SEV_SNP_LAUNCH_START, &s), 0);
	assert_fails(sev_cmd(fx.vm, KVM_SEV_SNP_LAUNCH_UPDATE, &u), EINVAL);
	fx_destroy(&fx);
}

/* Implicit conversion in in-place mode: an SNP guest's shared access (no
 * C-bit) to a page the file says is private is KVM_EXIT_MEMORY_FAULT
 * (flags 0); the VMM answers with KVM_SET_MEMORY_ATTRIBUTES2 and the
 * access completes on the shared page, which the host sees. */
static void test_snp_implicit_conversion_on_the_file(void **state)
{
	struct fx fx;

	fx_create_type(&fx, KVM_X86_SNP_VM, 2, MMAP | INIT_SHARED, true);
	set_private(&fx, 0, 1);
	assert_host_sigbus(&fx, 0);
	fx.convert_on_fault = true;
	guest_do(&fx, G_WRITE, gpa_of(0), 0, 0x7777);
	assert_int_equal(fx.memory_faults, 1);
	assert_int_equal(fx.last_fault_flags, 0);
	assert_host_reads(&fx, 0, 0x7777);
	/* Page 1 was shared all along: no exit. */
	guest_do(&fx, G_WRITE, gpa_of(1), 0, 0x8888);
	assert_int_equal(fx.memory_faults, 1);
	assert_host_reads(&fx, 1, 0x8888);
	fx_destroy(&fx);
}

static long tdx_cmd(int fd, uint32_t id, void *data)
{
	struct kvm_tdx_cmd cmd = { .id = id, .data = (uint64_t)(uintptr_t)data };

	return pm_kvm_ioctl(fd, KVM_MEMORY_ENCRYPT_OP, &cmd);
}

static void guest_tdx_reads(struct pm_guest *g, void *arg)
{
	uint8_t buf[PAGE];

	for (int p = 0; p < 2; p++) {
		pm_guest_read(g, GPA_BASE + p * PAGE, buf, PAGE);
		PM_GUEST_ASSERT(g, !memcmp(buf, image[p], PAGE));
	}
	pm_guest_done(g);
}

/* TDX in-place: INIT_MEM_REGION with source_addr 0 adds the guest_memfd
 * page's own contents (the guest reads the image), and source_addr stays
 * 0 as the region advances. */
static void test_tdx_build_in_place(void **state)
{
	union {
		struct kvm_tdx_init_vm vm;
		uint8_t bytes[sizeof(struct kvm_tdx_init_vm) + sizeof(struct kvm_cpuid_entry2)];
	} b;
	struct kvm_tdx_init_mem_region r = { .source_addr = 0, .gpa = GPA_BASE, .nr_pages = 2 };
	struct pm_guest_entry e = { .fn = guest_tdx_reads };
	struct fx fx;

	fill_image();
	fx_create_type(&fx, KVM_X86_TDX_VM, 4, MMAP | INIT_SHARED, true);
	memset(&b, 0, sizeof(b));
	b.vm.cpuid.nent = 1;
	b.vm.cpuid.entries[0].function = 0x80000008;
	b.vm.cpuid.entries[0].eax = 48 << 16 | 46;
	assert_int_equal(tdx_cmd(fx.vm, KVM_TDX_INIT_VM, &b), 0);
	assert_int_equal(tdx_cmd(fx.vcpu, KVM_TDX_INIT_VCPU, NULL), 0);
	memcpy(fx.mem, image, sizeof(image));
	set_private(&fx, 0, 2);
	assert_host_sigbus(&fx, 1);
	assert_int_equal(tdx_cmd(fx.vcpu, KVM_TDX_INIT_MEM_REGION, &r), 0);
	assert_int_equal(r.nr_pages, 0);
	assert_int_equal(r.source_addr, 0);
	assert_int_equal(r.gpa, GPA_BASE + 2 * PAGE);
	assert_int_equal(tdx_cmd(fx.vm, KVM_TDX_FINALIZE_VM, NULL), 0);
	assert_int_equal(pm_kvm_ioctl(fx.vcpu, PM_KVM_SET_GUEST, &e), 0);
	run_until_done(fx.vcpu);
	fx_destroy(&fx);
}

/* ======================= mode on: concurrency ======================= */

#define RACE_PAGES      16
#define RACE_VCPUS      2
#define RACE_OWN        4               /* pages each vCPU's protocol uses */
#define RACE_FLIPPED    (RACE_VCPUS * RACE_OWN)   /* the converter's from here */
#define SECRET          0x5e5e5e5e5e5e5e5eULL
#define SECRET_BYTE     0x5e

static uint64_t public_value(uint64_t page, uint64_t k)
{
	return 0x0101010101010101ULL * ((page * 7 + k) % 64 + 1);   /* bytes 1..64 */
}

struct race {
	struct fx fx;                          /* vCPU 0's fixture: the VM, file and view */
	int vcpu[RACE_VCPUS];
	struct kvm_run *run[RACE_VCPUS];
	atomic_bool stop;
	/* vCPU 1's pages are converted by its partner thread: it publishes
	 * round k of page p in made_private[p] once p is private, the guest
	 * answers in scrubbed[p] once its secret is gone. */
	_Atomic uint64_t made_private[RACE_PAGES], scrubbed[RACE_PAGES];
	atomic_uint_fast64_t host_reads, host_faults, secrets_seen, conversions, guest_rounds;
	atomic_uint_fast64_t errors;
};

struct race_vcpu {
	struct race *r;
	int i;
	char failure[300];
};

/* The secret's life in page p (private now): written, held a while (a
 * host reader has time to find it wherever it landed), read back, and
 * overwritten with round k's public value. */
static void guest_secret(struct pm_guest *g, uint64_t p, uint64_t k)
{
	uint64_t a = gpa_of(p);

	PM_GUEST_ASSERT(g, pm_guest_read64(g, a) == public_value(p, k - 1));   /* kept in place */
	pm_guest_write64(g, a, SECRET);
	pm_guest_write64(g, a + PAGE - 8, SECRET);
	for (int spin = 0; spin < 64; spin++)
		PM_GUEST_ASSERT(g, pm_guest_read64(g, a) == SECRET);
	pm_guest_write64(g, a, public_value(p, k));
	pm_guest_write64(g, a + PAGE - 8, public_value(p, k));
}

/* vCPU 0: asks for each conversion itself (a hypercall the VMM answers). */
static void guest_race_asks(struct pm_guest *g, struct race *r, uint64_t first, uint64_t k)
{
	for (uint64_t p = first; p < first + RACE_OWN; p++) {
		uint64_t a = gpa_of(p);

		PM_GUEST_ASSERT(g, pm_guest_hypercall(g, KVM_HC_MAP_GPA_RANGE, a, 1,
						      KVM_MAP_GPA_RANGE_ENCRYPTED, 0) == 0);
		guest_secret(g, p, k);
		PM_GUEST_ASSERT(g, pm_guest_hypercall(g, KVM_HC_MAP_GPA_RANGE, a, 1,
						      KVM_MAP_GPA_RANGE_DECRYPTED, 0) == 0);
		PM_GUEST_ASSERT(g, pm_guest_read64(g, a) == public_value(p, k));
	}
}

/* vCPU 1: its partner thread converts while the guest keeps touching the
 * page (its faults race the conversion); the secret goes in once the
 * partner says the page is private. */
static void guest_race_told(struct pm_guest *g, struct race *r, uint64_t first, uint64_t k)
{
	for (uint64_t p = first; p < first + RACE_OWN; p++) {
		uint64_t a = gpa_of(p);

		while (atomic_load(&r->made_private[p]) != k) {
			if (atomic_load(&r->stop))
				return;
			PM_GUEST_ASSERT(g, pm_guest_read64(g, a) == public_value(p, k - 1));
			pm_guest_write64(g, a, public_value(p, k - 1));
		}
		guest_secret(g, p, k);
		atomic_store(&r->scrubbed[p], k);
	}
}

/* Both vCPUs also touch the converter's pages (public values only)
 * between rounds: their faults race its conversions. */
static void guest_race(struct pm_guest *g, void *arg)
{
	struct race_vcpu *rv = arg;
	struct race *r = rv->r;
	uint64_t first = (uint64_t)rv->i * RACE_OWN;

	for (uint64_t p = first; p < first + RACE_OWN; p++)
		pm_guest_write64(g, gpa_of(p), public_value(p, 0));
	for (uint64_t k = 1; !atomic_load(&r->stop); k++) {
		if (rv->i == 0)
			guest_race_asks(g, r, first, k);
		else
			guest_race_told(g, r, first, k);
		for (uint64_t p = RACE_FLIPPED; p < RACE_PAGES; p++) {
			uint64_t a = gpa_of(p) + 8 * (uint64_t)rv->i;

			pm_guest_write64(g, a, public_value(p, k));
			PM_GUEST_ASSERT(g, pm_guest_read64(g, a) == public_value(p, k));
		}
		atomic_fetch_add(&r->guest_rounds, 1);
		pm_guest_sync(g, k);
	}
	pm_guest_done(g);
}

static void *race_vcpu_main(void *arg)
{
	struct race_vcpu *rv = arg;
	struct race *r = rv->r;
	struct kvm_run *run = r->run[rv->i];
	struct pm_guest_entry e = { .fn = guest_race, .arg = rv };
	struct pm_ucall uc;

	if (pm_kvm_ioctl(r->vcpu[rv->i], PM_KVM_SET_GUEST, &e)) {
		snprintf(rv->failure, sizeof(rv->failure), "PM_KVM_SET_GUEST: %d", errno);
		return NULL;
	}
	for (;;) {
		if (pm_kvm_ioctl(r->vcpu[rv->i], KVM_RUN, 0)) {
			snprintf(rv->failure, sizeof(rv->failure), "KVM_RUN: errno %d exit %u", errno,
				 run->exit_reason);
			break;
		}
		if (run->exit_reason == KVM_EXIT_HYPERCALL) {
			bool to_private = run->hypercall.args[2] & KVM_MAP_GPA_RANGE_ENCRYPTED;
			int res = attrs2(r->fx.gmem, run->hypercall.args[0] - GPA_BASE,
					 run->hypercall.args[1] * PAGE, to_private ? PRIVATE : 0, NULL);

			run->hypercall.ret = res ? (uint64_t)(int64_t)-KVM_EINVAL : 0;
			atomic_fetch_add(&r->conversions, 1);
			continue;
		}
		if (run->exit_reason != PM_EXIT_UCALL) {
			snprintf(rv->failure, sizeof(rv->failure), "exit %u", run->exit_reason);
			break;
		}
		uc.cmd = pm_get_ucall(r->vcpu[rv->i], &uc);
		if (uc.cmd == PM_UCALL_SYNC)
			continue;
		if (uc.cmd != PM_UCALL_DONE)
			snprintf(rv->failure, sizeof(rv->failure), "guest: %s", uc.msg);
		break;
	}
	atomic_store(&r->stop, true);
	return NULL;
}

static bool race_convert(struct race *r, uint64_t first, uint64_t n, bool to_private)
{
	atomic_fetch_add(&r->conversions, 1);
	if (attrs2(r->fx.gmem, first * PAGE, n * PAGE, to_private ? PRIVATE : 0, NULL)) {
		atomic_fetch_add(&r->errors, 1);
		return false;
	}
	return true;
}

/* vCPU 1's partner: page after page, private, tell the guest, wait for
 * its scrub, shared again. */
static void *race_partner(void *arg)
{
	struct race *r = arg;
	const uint64_t first = RACE_OWN;

	for (uint64_t k = 1; !atomic_load(&r->stop); k++) {
		for (uint64_t p = first; p < first + RACE_OWN && !atomic_load(&r->stop); p++) {
			if (!race_convert(r, p, 1, true))
				return NULL;
			atomic_store(&r->made_private[p], k);
			while (atomic_load(&r->scrubbed[p]) != k && !atomic_load(&r->stop))
				sched_yield();
			if (!race_convert(r, p, 1, false))
				return NULL;
		}
	}
	return NULL;
}

/* The converter: flips the pages no vCPU owns between private and shared,
 * one page and ranges, while the vCPUs touch them. */
static void *race_converter(void *arg)
{
	struct race *r = arg;
	unsigned int seed = 7;
	const uint64_t n = RACE_PAGES - RACE_FLIPPED;

	while (!atomic_load(&r->stop)) {
		uint64_t first = RACE_FLIPPED + (uint64_t)rand_r(&seed) % n;
		uint64_t len = 1 + (uint64_t)rand_r(&seed) % (RACE_PAGES - first);

		if (!race_convert(r, first, len, rand_r(&seed) & 1))
			return NULL;
	}
	return NULL;
}

/* The host: reads every page through the view, over and over; a page
 * that is private faults; no read ever sees the secret. */
static void *race_reader(void *arg)
{
	struct race *r = arg;

	while (!atomic_load(&r->stop)) {
		for (uint64_t p = 0; p < RACE_PAGES; p++) {
			for (uint64_t off = 0; off < PAGE; off += PAGE - 8) {
				uint8_t v = 0;

				if (pm_test_sigbus(r->fx.mem + p * PAGE + off, false, &v)) {
					atomic_fetch_add(&r->host_faults, 1);
				} else {
					atomic_fetch_add(&r->host_reads, 1);
					if (v == SECRET_BYTE)
						atomic_fetch_add(&r->secrets_seen, 1);
				}
			}
		}
	}
	return NULL;
}

static double race_seconds(void)
{
	const char *e = getenv("PRIVMEM_GMEM_ATTRS_STRESS_SECONDS");

	return e ? atof(e) : 1.0;
}

static void test_conversions_race_faults_and_host_reads(void **state)
{
	struct race *r = calloc(1, sizeof(*r));
	struct race_vcpu rv[RACE_VCPUS];
	pthread_t vt[RACE_VCPUS], conv, partner, reader;
	struct timespec ts = { 0, 0 };
	double secs = race_seconds();

	assert_non_null(r);
	fx_create(&r->fx, RACE_PAGES, MMAP | INIT_SHARED);
	r->vcpu[0] = r->fx.vcpu;
	r->run[0] = r->fx.run;
	for (int i = 1; i < RACE_VCPUS; i++) {
		r->vcpu[i] = pm_kvm_ioctl(r->fx.vm, KVM_CREATE_VCPU, i);
		assert_true(r->vcpu[i] >= 0);
		r->run[i] = pm_kvm_mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, r->vcpu[i], 0);
		assert_true(r->run[i] != MAP_FAILED);
	}
	for (int i = 0; i < RACE_VCPUS; i++) {
		rv[i] = (struct race_vcpu){ .r = r, .i = i };
		pthread_create(&vt[i], NULL, race_vcpu_main, &rv[i]);
	}
	pthread_create(&conv, NULL, race_converter, r);
	pthread_create(&partner, NULL, race_partner, r);
	pthread_create(&reader, NULL, race_reader, r);
	ts.tv_sec = (time_t)secs;
	ts.tv_nsec = (long)((secs - (double)ts.tv_sec) * 1e9);
	nanosleep(&ts, NULL);
	atomic_store(&r->stop, true);
	for (int i = 0; i < RACE_VCPUS; i++)
		pthread_join(vt[i], NULL);
	pthread_join(conv, NULL);
	pthread_join(partner, NULL);
	pthread_join(reader, NULL);
	for (int i = 0; i < RACE_VCPUS; i++)
		if (rv[i].failure[0])
			fail_msg("vCPU %d: %s", i, rv[i].failure);
	print_message("race: %llu conversions, %llu guest rounds, %llu host reads, %llu host faults\n",
		      (unsigned long long)atomic_load(&r->conversions),
		      (unsigned long long)atomic_load(&r->guest_rounds),
		      (unsigned long long)atomic_load(&r->host_reads),
		      (unsigned long long)atomic_load(&r->host_faults));
	assert_int_equal(atomic_load(&r->secrets_seen), 0);
	assert_int_equal(atomic_load(&r->errors), 0);
	assert_true(atomic_load(&r->guest_rounds) > 0);
	assert_true(atomic_load(&r->host_faults) > 0);
	assert_true(atomic_load(&r->host_reads) > 0);
	for (int i = 1; i < RACE_VCPUS; i++) {
		pm_kvm_munmap(r->run[i], PAGE);
		pm_kvm_close(r->vcpu[i]);
	}
	fx_destroy(&r->fx);
	free(r);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest off[] = {
		cmocka_unit_test(test_off_set_attributes2_is_enotty),
		cmocka_unit_test(test_off_capabilities_are_as_before),
		cmocka_unit_test(test_off_vm_attributes_decide),
		cmocka_unit_test(test_pkvm_shares_write_the_file_state),
	};
	const struct CMUnitTest on[] = {
		cmocka_unit_test(test_uapi_numbers_and_layout),
		cmocka_unit_test(test_capabilities),
		cmocka_unit_test(test_vm_attributes_refuse_private),
		cmocka_unit_test(test_argument_checks),
		cmocka_unit_test(test_files_without_private_memory_refuse),
		cmocka_unit_test(test_noop_when_already_so),
		cmocka_unit_test(test_init_private),
		cmocka_unit_test(test_init_shared),
		cmocka_unit_test(test_indexing),
		cmocka_unit_test(test_before_allocation_shared),
		cmocka_unit_test(test_before_allocation_private),
		cmocka_unit_test(test_unallocated_folios),
		cmocka_unit_test(test_truncate),
		cmocka_unit_test(test_forked_accesses),
		cmocka_unit_test(test_elevated_refcount),
		cmocka_unit_test(test_guest_requested_conversions),
		cmocka_unit_test(test_deleted_slot_is_mmio),
		cmocka_unit_test(test_state_is_per_file),
		cmocka_unit_test(test_huge_page_partial_conversion),
		cmocka_unit_test(test_snp_launch_in_place),
		cmocka_unit_test(test_snp_launch_needs_private),
		cmocka_unit_test(test_snp_implicit_conversion_on_the_file),
		cmocka_unit_test(test_tdx_build_in_place),
		cmocka_unit_test(test_conversions_race_faults_and_host_reads),
		cmocka_unit_test(test_pkvm_shares_write_the_file_state),
	};
	int r;

	(void)argc;
	if (pm_gmem_in_place_conversion())
		return cmocka_run_group_tests_name("in-place mode", on, NULL, NULL);
	r = cmocka_run_group_tests_name("mode off", off, NULL, NULL);
	return pm_test_rerun_in_place(argv) | r;
}

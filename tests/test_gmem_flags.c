/* SPDX-License-Identifier: MIT */
/*
 * guest_memfd's creation flags and the behaviour of 2025-2026 (issue 15):
 * the flag rule on every VM type (every bit KVM_CAP_GUEST_MEMFD_FLAGS does
 * not list is EINVAL, walked over all 64 bits as upstream's
 * test_guest_memfd_flags does), MADV_COLLAPSE / MADV_HUGEPAGE on a
 * mapping, write() / pwrite() populating shared pages,
 * GUEST_MEMFD_FLAG_NO_DIRECT_MAP, and NUMA placement through mbind().
 * What each VM type must list is written here, not asked of privmem.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/falloc.h>
#include <linux/mempolicy.h>

#include <privmem/guest.h>
#include <privmem/privmem.h>
#include "gmem/gmem_internal.h"   /* pm_gmem_peek_pfn */
#include "host/pool.h"
#include "lib/common.h"
#include "lib/testutil.h"

#define PAGE  4096ULL
#define MIB   (1ULL << 20)
#define PUNCH (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)

/* The flags each VM type must accept (upstream: MMAP on every x86 type,
 * INIT_SHARED only where there is no private memory; privmem adds
 * NO_DIRECT_MAP everywhere). */
struct type_flags {
	unsigned long type;
	uint64_t flags;
};

#define NDM GUEST_MEMFD_FLAG_NO_DIRECT_MAP
static const struct type_flags expected_flags[] = {
	{ KVM_X86_DEFAULT_VM, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED | NDM },
	{ KVM_X86_SW_PROTECTED_VM, GUEST_MEMFD_FLAG_MMAP | NDM },
	{ KVM_X86_SNP_VM, GUEST_MEMFD_FLAG_MMAP | NDM },
	{ KVM_X86_TDX_VM, GUEST_MEMFD_FLAG_MMAP | NDM },
	{ PM_VM_TYPE_PKVM, GUEST_MEMFD_FLAG_MMAP | NDM },
	{ PM_VM_TYPE_REALM, NDM },   /* arm64, not x86: no MMAP (model.h) */
};

static int gmem_create(int vm, uint64_t size, uint64_t flags)
{
	struct kvm_create_guest_memfd cg = { .size = size, .flags = flags };

	return pm_kvm_ioctl(vm, KVM_CREATE_GUEST_MEMFD, &cg);
}

/* Every one of the 64 bits alone: accepted exactly when `valid` has it. */
static void walk_64_bits(int vm, uint64_t valid)
{
	for (unsigned int bit = 0; bit < 64; bit++) {
		uint64_t flag = 1ULL << bit;
		int fd = gmem_create(vm, 2 * MIB, flag);

		if (flag & valid) {
			if (fd < 0)
				fail_msg("flag bit %u refused (errno %d)", bit, errno);
			assert_int_equal(pm_kvm_close(fd), 0);
		} else {
			if (fd >= 0 || errno != EINVAL)
				fail_msg("flag bit %u: %d, errno %d (want EINVAL)", bit, fd, errno);
		}
	}
}

static void test_every_flag_not_listed_is_einval_on_every_vm_type(void **state)
{
	int kvm = pm_kvm_open();
	long types = pm_kvm_ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_VM_TYPES);
	const uint64_t page_size_flags = PM_GUEST_MEMFD_FLAG_NO_1G | PM_GUEST_MEMFD_FLAG_NO_HUGE;

	for (size_t i = 0; i < PM_ARRAY_SIZE(expected_flags); i++) {
		const struct type_flags *t = &expected_flags[i];
		int vm;

		if (t->type < 32 && !(types & (1L << t->type)))
			fail_msg("VM type %lu not offered", t->type);
		vm = pm_kvm_ioctl(kvm, KVM_CREATE_VM, t->type);
		assert_true(vm >= 0);
		assert_int_equal(pm_kvm_ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_FLAGS),
				 t->flags);
		walk_64_bits(vm, t->flags);
		/* privmem's page-size bits only once the VM enabled them. */
		pm_test_gmem_page_size_flags(vm);
		walk_64_bits(vm, t->flags | page_size_flags);
		assert_int_equal(pm_kvm_ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_FLAGS),
				 t->flags);
		assert_int_equal(pm_kvm_close(vm), 0);
	}
	/* The system handle lists every flag some type takes. */
	assert_int_equal(pm_kvm_ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_FLAGS),
			 GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED | NDM);
	pm_kvm_close(kvm);
}

/* ---- madvise on a mapping ---- */

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

struct vm_file {
	int kvm, vm, gmem;
	uint8_t *view;
	size_t len;
};

static void vm_file_open(struct vm_file *f, unsigned long type, uint64_t size, uint64_t flags)
{
	f->kvm = pm_kvm_open();
	f->vm = pm_kvm_ioctl(f->kvm, KVM_CREATE_VM, type);
	assert_true(f->vm >= 0);
	pm_test_gmem_page_size_flags(f->vm);
	f->gmem = gmem_create(f->vm, size, flags);
	assert_true(f->gmem >= 0);
	f->len = size;
	f->view = NULL;
	if (flags & GUEST_MEMFD_FLAG_MMAP) {
		f->view = pm_kvm_mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, f->gmem, 0);
		assert_true(f->view != MAP_FAILED);
	}
}

static void vm_file_close(struct vm_file *f)
{
	if (f->view)
		assert_int_equal(pm_kvm_munmap(f->view, f->len), 0);
	assert_int_equal(pm_kvm_close(f->gmem), 0);
	assert_int_equal(pm_kvm_close(f->vm), 0);
	assert_int_equal(pm_kvm_close(f->kvm), 0);
}

static uint64_t file_pages(int gmem)
{
	struct stat st;

	assert_int_equal(pm_kvm_fstat(gmem, &st), 0);
	return (uint64_t)st.st_blocks * 512 / PAGE;
}

static void check_collapse_and_hugepage(unsigned long type, uint64_t flags)
{
	struct vm_file f;

	vm_file_open(&f, type, 4 * MIB, flags);
	assert_fails(pm_kvm_madvise(f.view, f.len, MADV_COLLAPSE), EINVAL);
	assert_fails(pm_kvm_madvise(f.view + 2 * MIB, PAGE, MADV_COLLAPSE), EINVAL);
	assert_int_equal(pm_kvm_madvise(f.view, f.len, MADV_HUGEPAGE), 0);
	assert_int_equal(pm_kvm_madvise(f.view, f.len, MADV_NOHUGEPAGE), 0);
	/* The kernel's checks stay: an unaligned start is EINVAL. */
	assert_fails(pm_kvm_madvise(f.view + 1, PAGE, MADV_HUGEPAGE), EINVAL);
	vm_file_close(&f);
}

static void test_madv_collapse_is_einval_and_madv_hugepage_succeeds(void **state)
{
	check_collapse_and_hugepage(KVM_X86_DEFAULT_VM, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED);
	check_collapse_and_hugepage(KVM_X86_SW_PROTECTED_VM, GUEST_MEMFD_FLAG_MMAP);
	check_collapse_and_hugepage(KVM_X86_SNP_VM, GUEST_MEMFD_FLAG_MMAP);
}

/* A range over anonymous memory and a view: the collapse is refused as a
 * whole; other advice reaches both parts. */
static void test_madvise_over_a_view_and_other_memory(void **state)
{
	struct vm_file f;
	uint8_t *area, *view;

	vm_file_open(&f, KVM_X86_DEFAULT_VM, 2 * MIB, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED);
	assert_int_equal(pm_kvm_munmap(f.view, f.len), 0);
	f.view = NULL;
	area = mmap(NULL, 4 * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(area != MAP_FAILED);
	memset(area, 0x11, 2 * MIB);
	view = pm_kvm_mmap(area + 2 * MIB, 2 * MIB, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
			   f.gmem, 0);
	assert_true(view == area + 2 * MIB);
	assert_fails(pm_kvm_madvise(area, 4 * MIB, MADV_COLLAPSE), EINVAL);
	assert_int_equal(area[0], 0x11);
	assert_int_equal(pm_kvm_madvise(area, 4 * MIB, MADV_HUGEPAGE), 0);
	/* MADV_DONTNEED reaches the anonymous part (it reads zero after). */
	assert_int_equal(pm_kvm_madvise(area, 4 * MIB, MADV_DONTNEED), 0);
	assert_int_equal(area[0], 0);
	assert_int_equal(pm_kvm_munmap(view, 2 * MIB), 0);
	munmap(area, 4 * MIB);
	vm_file_close(&f);
}

/* MADV_REMOVE punches the file, as Linux's madvise_remove. */
static void test_madv_remove_punches_the_file(void **state)
{
	struct vm_file f;
	uint8_t *ro;

	vm_file_open(&f, KVM_X86_DEFAULT_VM, 8 * PAGE,
		     GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED | PM_GUEST_MEMFD_FLAG_NO_HUGE);
	for (int i = 0; i < 8; i++)
		f.view[i * PAGE] = (uint8_t)(0x20 + i);
	assert_int_equal(pm_kvm_madvise(f.view + 2 * PAGE, 2 * PAGE, MADV_REMOVE), 0);
	assert_int_equal(f.view[2 * PAGE], 0);
	assert_int_equal(f.view[3 * PAGE], 0);
	assert_int_equal(f.view[4 * PAGE], 0x24);
	ro = pm_kvm_mmap(NULL, PAGE, PROT_READ, MAP_SHARED, f.gmem, 0);
	assert_true(ro != MAP_FAILED);
	assert_fails(pm_kvm_madvise(ro, PAGE, MADV_REMOVE), EACCES);
	assert_int_equal(ro[0], 0x20);
	assert_int_equal(pm_kvm_munmap(ro, PAGE), 0);
	vm_file_close(&f);

	/* A private file: the punch shows in its allocated pages. */
	vm_file_open(&f, KVM_X86_SW_PROTECTED_VM, 8 * PAGE,
		     GUEST_MEMFD_FLAG_MMAP | PM_GUEST_MEMFD_FLAG_NO_HUGE);
	assert_int_equal(pm_kvm_fallocate(f.gmem, FALLOC_FL_KEEP_SIZE, 0, 8 * PAGE), 0);
	assert_int_equal(file_pages(f.gmem), 8);
	assert_int_equal(pm_kvm_madvise(f.view + 2 * PAGE, 3 * PAGE, MADV_REMOVE), 0);
	assert_int_equal(file_pages(f.gmem), 5);
	vm_file_close(&f);
}

/* ---- a C guest over a guest_memfd slot ---- */

/* Binds f's file at gpa 0 (a gmem-only slot: MMAP files) and makes vCPU 0
 * run fn. */
static int guest_setup(struct vm_file *f, void (*fn)(struct pm_guest *, void *), void *arg)
{
	struct kvm_userspace_memory_region2 r = {
		.slot = 0, .flags = KVM_MEM_GUEST_MEMFD, .memory_size = f->len,
		.userspace_addr = 0, .guest_memfd = (uint32_t)f->gmem,
	};
	struct pm_guest_entry e = { .fn = fn, .arg = arg };
	int vcpu;

	assert_int_equal(pm_kvm_ioctl(f->vm, KVM_SET_USER_MEMORY_REGION2, &r), 0);
	vcpu = pm_kvm_ioctl(f->vm, KVM_CREATE_VCPU, 0);
	assert_true(vcpu >= 0);
	assert_int_equal(pm_kvm_ioctl(vcpu, PM_KVM_SET_GUEST, &e), 0);
	return vcpu;
}

/* Runs the vCPU to its next ucall: SYNC's argument; fails on anything else
 * but DONE (which returns UINT64_MAX). */
static uint64_t guest_next(int vcpu)
{
	struct pm_ucall uc;

	assert_int_equal(pm_kvm_ioctl(vcpu, KVM_RUN, 0), 0);
	pm_get_ucall(vcpu, &uc);
	if (uc.cmd == PM_UCALL_ABORT)
		fail_msg("guest: %s", uc.msg);
	assert_true(uc.cmd == PM_UCALL_SYNC || uc.cmd == PM_UCALL_DONE);
	return uc.cmd == PM_UCALL_SYNC ? uc.args[0] : UINT64_MAX;
}

/* ---- write() / pwrite() ---- */

static uint8_t pattern_byte(uint64_t off)
{
	return (uint8_t)(off * 7 + (off >> 12) * 13 + 1);
}

/* The guest checks every byte of [a[0], a[1]) against the pattern, and
 * that [a[1], a[1] + a[2]) reads zero. */
static void guest_checks_pattern(struct pm_guest *g, void *arg)
{
	const uint64_t *a = arg;
	uint64_t bad = 0;
	uint8_t b;

	for (uint64_t off = a[0]; off < a[1]; off++) {
		pm_guest_read(g, off, &b, 1);
		bad += b != pattern_byte(off);
	}
	for (uint64_t off = a[1]; off < a[1] + a[2]; off += 8)
		bad += pm_guest_read64(g, off) != 0;
	pm_guest_sync(g, bad);
}

static void test_pwrite_and_write_populate_pages_a_guest_reads(void **state)
{
	static uint8_t buf[32 * PAGE];
	uint64_t args[3] = { 3 * PAGE + 100, 20 * PAGE, 4 * PAGE };
	struct vm_file f;
	uint64_t n;
	int vcpu;

	for (uint64_t off = args[0]; off < args[1]; off++)
		buf[off - args[0]] = pattern_byte(off);
	n = args[1] - args[0];
	vm_file_open(&f, KVM_X86_DEFAULT_VM, 4 * MIB,
		     GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED);
	/* A partial first page with pwrite, the rest with two write()s from
	 * the file position, which pwrite leaves alone. */
	assert_int_equal(pm_kvm_pwrite(f.gmem, buf, PAGE - 100, (off_t)args[0]), PAGE - 100);
	assert_int_equal(pm_kvm_pwrite(f.gmem, buf, 0, 0), 0);
	assert_int_equal(pm_kvm_write(f.gmem, buf, 0), 0);
	/* write() starts at position 0: fill up to args[0] with zeros first. */
	{
		static uint8_t zero[3 * PAGE];

		assert_int_equal(pm_kvm_write(f.gmem, zero, sizeof(zero)), 3 * PAGE);
		assert_int_equal(pm_kvm_write(f.gmem, zero, 100), 100);
	}
	assert_int_equal(pm_kvm_write(f.gmem, buf, PAGE - 100), PAGE - 100);
	assert_int_equal(pm_kvm_write(f.gmem, buf + PAGE - 100, n - (PAGE - 100)),
			 n - (PAGE - 100));
	/* The host's view shows the bytes too. */
	for (uint64_t off = args[0]; off < args[1]; off += 997)
		assert_int_equal(f.view[off], pattern_byte(off));
	vcpu = guest_setup(&f, guest_checks_pattern, args);
	assert_int_equal(guest_next(vcpu), 0);
	assert_int_equal(guest_next(vcpu), UINT64_MAX);
	assert_int_equal(pm_kvm_close(vcpu), 0);
	vm_file_close(&f);
}

static void test_write_errors(void **state)
{
	uint8_t buf[2 * PAGE] = { 1 };
	uint8_t *holey;
	struct vm_file f;
	int vm2, g;

	vm_file_open(&f, KVM_X86_DEFAULT_VM, 4 * PAGE,
		     GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED | PM_GUEST_MEMFD_FLAG_NO_HUGE);
	/* The end of the file: ENOSPC at or past it, short across it. */
	assert_fails(pm_kvm_pwrite(f.gmem, buf, 1, (off_t)(4 * PAGE)), ENOSPC);
	assert_fails(pm_kvm_pwrite(f.gmem, buf, 1, (off_t)(1ULL << 40)), ENOSPC);
	assert_int_equal(pm_kvm_pwrite(f.gmem, buf, 2 * PAGE, (off_t)(3 * PAGE)), PAGE);
	assert_fails(pm_kvm_pwrite(f.gmem, buf, 1, -1), EINVAL);
	/* The source: EFAULT, or short after progress. */
	assert_fails(pm_kvm_pwrite(f.gmem, NULL, 8, 0), EFAULT);
	holey = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(holey != MAP_FAILED);
	memset(holey, 0x42, 2 * PAGE);
	assert_int_equal(mprotect(holey + PAGE, PAGE, PROT_NONE), 0);
	assert_fails(pm_kvm_pwrite(f.gmem, holey + PAGE, 8, 0), EFAULT);
	assert_int_equal(pm_kvm_pwrite(f.gmem, holey, 2 * PAGE, 0), PAGE);
	assert_int_equal(f.view[PAGE - 1], 0x42);
	munmap(holey, 2 * PAGE);
	/* A poisoned page is not the host's. */
	assert_int_equal(pm_gmem_poison(pm_test_gmem_of(f.gmem), 2), 0);
	assert_fails(pm_kvm_pwrite(f.gmem, buf, 8, (off_t)(2 * PAGE)), EACCES);
	assert_int_equal(pm_kvm_pwrite(f.gmem, buf, 2 * PAGE, (off_t)PAGE), PAGE);
	vm_file_close(&f);

	/* A private file: EACCES, nothing allocated. */
	vm_file_open(&f, KVM_X86_SW_PROTECTED_VM, 4 * PAGE,
		     GUEST_MEMFD_FLAG_MMAP | PM_GUEST_MEMFD_FLAG_NO_HUGE);
	assert_fails(pm_kvm_pwrite(f.gmem, buf, 8, 0), EACCES);
	assert_fails(pm_kvm_write(f.gmem, buf, 8), EACCES);
	assert_int_equal(file_pages(f.gmem), 0);
	/* A file without MMAP has no write at all; nor has a VM. */
	vm2 = f.vm;
	g = gmem_create(vm2, 4 * PAGE, 0);
	assert_true(g >= 0);
	assert_fails(pm_kvm_pwrite(g, buf, 8, 0), EINVAL);
	assert_fails(pm_kvm_write(g, buf, 8), EINVAL);
	assert_fails(pm_kvm_write(vm2, buf, 8), EINVAL);
	assert_int_equal(pm_kvm_close(g), 0);
	vm_file_close(&f);
}

/* ---- GUEST_MEMFD_FLAG_NO_DIRECT_MAP ---- */

static bool read_faults_in_child(const volatile uint8_t *addr)
{
	int r = pm_test_read_faults((const void *)addr);

	assert_true(r >= 0);
	return r;
}

#define NDM_PAGES 16

/* The guest writes each page's own value, syncs, then checks them. */
static void guest_writes_then_checks(struct pm_guest *g, void *arg)
{
	uint64_t bad = 0;

	for (uint64_t i = 0; i < NDM_PAGES; i++)
		pm_guest_write64(g, i * PAGE, 0xd00d0000 + i);
	pm_guest_sync(g, 0);
	for (uint64_t i = 0; i < NDM_PAGES; i++)
		bad += pm_guest_read64(g, i * PAGE) != 0xd00d0000 + i;
	pm_guest_sync(g, bad);
}

static void set_private(int vm, uint64_t gpa, uint64_t size)
{
	struct kvm_memory_attributes a = { .address = gpa, .size = size,
					   .attributes = KVM_MEMORY_ATTRIBUTE_PRIVATE };

	assert_int_equal(pm_kvm_ioctl(vm, KVM_SET_MEMORY_ATTRIBUTES, &a), 0);
}

/* A guest's private pages on a NO_DIRECT_MAP file: their frames fault at
 * their direct-map address (a stray host read dies), the trusted path
 * (pm_pfn_to_hva) still reaches them, the guest runs on; punched, a frame
 * is back in the direct map, zero. Without the flag the same read works. */
static void check_direct_map(uint64_t flags, bool hidden)
{
	struct pm_gmem *g;
	struct vm_file f;
	pm_pfn_t pfn;
	int vcpu;

	vm_file_open(&f, KVM_X86_SW_PROTECTED_VM, 2 * MIB, flags);
	set_private(f.vm, 0, 2 * MIB);
	vcpu = guest_setup(&f, guest_writes_then_checks, NULL);
	assert_int_equal(guest_next(vcpu), 0);
	g = pm_test_gmem_of(f.gmem);
	for (uint64_t i = 0; i < NDM_PAGES; i++) {
		pfn = pm_gmem_peek_pfn(g, i);
		assert_true(pfn != PM_PFN_INVALID);
		assert_int_equal(read_faults_in_child(pm_pfn_to_direct(pfn)), hidden);
		assert_int_equal(pm_hva_to_pfn(pm_pfn_to_hva(pfn)), pfn);
		assert_int_equal(*(uint64_t *)pm_pfn_to_hva(pfn), 0xd00d0000 + i);
		assert_int_equal(pm_pfn_to_hva(pfn) != pm_pfn_to_direct(pfn), hidden);
	}
	assert_int_equal(guest_next(vcpu), 0);
	pfn = pm_gmem_peek_pfn(g, 3);
	assert_int_equal(pm_kvm_fallocate(f.gmem, PUNCH, 3 * PAGE, PAGE), 0);
	assert_false(read_faults_in_child(pm_pfn_to_direct(pfn)));
	assert_int_equal(*(volatile uint64_t *)pm_pfn_to_direct(pfn), 0);
	assert_int_equal(pm_kvm_close(vcpu), 0);
	vm_file_close(&f);
}

static void test_no_direct_map_frames_fault_for_a_stray_host_read(void **state)
{
	check_direct_map(NDM | PM_GUEST_MEMFD_FLAG_NO_HUGE, true);
	check_direct_map(NDM, true);                 /* one 2M page */
	check_direct_map(PM_GUEST_MEMFD_FLAG_NO_HUGE, false);
}

/* Firecracker's case: a default VM's MMAP | INIT_SHARED | NO_DIRECT_MAP
 * file shared with the VMM through its mapping; the frames stay hidden,
 * the pool gets every frame back. */
static void test_no_direct_map_with_a_shared_mapping(void **state)
{
	struct pm_pool_stats before, after;
	struct vm_file f;
	uint64_t pages = 0;
	int vcpu;

	pm_pool_get_stats(&before);
	vm_file_open(&f, KVM_X86_DEFAULT_VM, 2 * MIB,
		     GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED | NDM);
	vcpu = guest_setup(&f, guest_writes_then_checks, NULL);
	assert_int_equal(guest_next(vcpu), 0);
	for (uint64_t i = 0; i < NDM_PAGES; i++) {
		pm_pfn_t pfn = pm_gmem_peek_pfn(pm_test_gmem_of(f.gmem), i);

		pages += *(uint64_t *)(f.view + i * PAGE) == 0xd00d0000 + i;
		assert_true(read_faults_in_child(pm_pfn_to_direct(pfn)));
	}
	assert_int_equal(pages, NDM_PAGES);
	assert_int_equal(guest_next(vcpu), 0);
	assert_int_equal(pm_kvm_close(vcpu), 0);
	vm_file_close(&f);
	pm_pool_get_stats(&after);
	assert_int_equal(after.in_use, before.in_use);
}

/* ---- NUMA placement ---- */

#define NUMA_POOL  (64 * MIB)
#define NUMA_NODES 4
#define NODE_FRAMES (NUMA_POOL / NUMA_NODES / PAGE)    /* the layout, computed here */

static void pool_config(uint64_t size, uint64_t nodes)
{
	int kvm = pm_kvm_open();
	struct pm_pool_config cfg = { .size = size, .nodes = nodes };

	assert_int_equal(pm_kvm_ioctl(kvm, PM_KVM_SET_POOL_CONFIG, &cfg), 0);
	pm_kvm_close(kvm);
}

static int numa_setup(void **state)
{
	pool_config(NUMA_POOL, NUMA_NODES);
	return 0;
}

static int numa_teardown(void **state)
{
	pool_config(4ULL << 30, 1);
	return 0;
}

/* The node of file page i's frame, from the pool's layout (not privmem's
 * answer). */
static unsigned int node_of_page(int gmem, uint64_t i)
{
	pm_pfn_t pfn = pm_gmem_peek_pfn(pm_test_gmem_of(gmem), i);

	assert_true(pfn != PM_PFN_INVALID);
	return (unsigned int)(pfn / NODE_FRAMES);
}

static long do_mbind(void *addr, unsigned long len, int mode, unsigned long mask)
{
	return pm_kvm_mbind(addr, len, mode, mask ? &mask : NULL, mask ? 64 : 0, 0);
}

static void test_pool_nodes_and_their_statistics(void **state)
{
	struct pm_pool_stats st;
	int kvm = pm_kvm_open();

	assert_int_equal(pm_kvm_ioctl(kvm, PM_KVM_GET_POOL_STATS, &st), 0);
	assert_int_equal(st.nr_nodes, NUMA_NODES);
	for (unsigned int n = 0; n < NUMA_NODES; n++) {
		assert_int_equal(st.node_size[n], NUMA_POOL / NUMA_NODES);
		assert_int_equal(st.node_in_use[n], 0);
	}
	/* Bad node counts: EINVAL, nothing changed. */
	{
		struct pm_pool_config cfg = { .size = NUMA_POOL, .nodes = PM_POOL_MAX_NODES + 1 };

		assert_fails(pm_kvm_ioctl(kvm, PM_KVM_SET_POOL_CONFIG, &cfg), EINVAL);
		cfg = (struct pm_pool_config){ .size = 4 * MIB, .nodes = 3 };   /* 2 MiB each at least */
		assert_fails(pm_kvm_ioctl(kvm, PM_KVM_SET_POOL_CONFIG, &cfg), EINVAL);
	}
	assert_int_equal(pm_kvm_ioctl(kvm, PM_KVM_GET_POOL_STATS, &st), 0);
	assert_int_equal(st.nr_nodes, NUMA_NODES);
	pm_kvm_close(kvm);
}

/* mbind on a mapping: BIND, PREFERRED, INTERLEAVE and DEFAULT over four
 * parts of a file; allocations follow, the statistics say where from. */
static void test_mbind_places_later_allocations(void **state)
{
	const uint64_t part = 2 * MIB / PAGE;
	uint64_t expect[PM_POOL_MAX_NODES] = { 0 };
	struct pm_gmem_file_stats fs;
	struct pm_pool_stats ps;
	struct vm_file f;
	unsigned long mask;
	int mode;

	vm_file_open(&f, KVM_X86_SW_PROTECTED_VM, 8 * MIB,
		     GUEST_MEMFD_FLAG_MMAP | PM_GUEST_MEMFD_FLAG_NO_HUGE);
	assert_int_equal(do_mbind(f.view, 2 * MIB, MPOL_BIND, 1UL << 2), 0);
	assert_int_equal(do_mbind(f.view + 2 * MIB, 2 * MIB, MPOL_PREFERRED, 1UL << 1), 0);
	assert_int_equal(do_mbind(f.view + 4 * MIB, 2 * MIB, MPOL_INTERLEAVE, 1UL << 0 | 1UL << 3), 0);
	assert_int_equal(pm_kvm_fallocate(f.gmem, FALLOC_FL_KEEP_SIZE, 0, 8 * MIB), 0);
	for (uint64_t i = 0; i < 4 * part; i++) {
		unsigned int want = i < part ? 2 : i < 2 * part ? 1 : i < 3 * part ? (i % 2 ? 3 : 0) : 0;
		unsigned int got = node_of_page(f.gmem, i);
		int node = -1;

		if (got != want)
			fail_msg("page %lu on node %u, want %u", (unsigned long)i, got, want);
		expect[got]++;
		assert_int_equal(pm_kvm_get_mempolicy(&node, NULL, 0, f.view + i * PAGE,
						      MPOL_F_NODE | MPOL_F_ADDR), 0);
		assert_int_equal(node, want);
	}
	assert_int_equal(pm_kvm_ioctl(f.gmem, PM_GUEST_MEMFD_GET_STATS, &fs), 0);
	assert_int_equal(fs.pages, 4 * part);
	pm_pool_get_stats(&ps);
	for (unsigned int n = 0; n < NUMA_NODES; n++) {
		assert_int_equal(fs.node_pages[n], expect[n]);
		assert_true(ps.node_in_use[n] >= expect[n] * PAGE);
	}
	/* The policy reads back; DEFAULT removes it. */
	mask = ~0UL;
	assert_int_equal(pm_kvm_get_mempolicy(&mode, &mask, 65, f.view + PAGE, MPOL_F_ADDR), 0);
	assert_int_equal(mode, MPOL_BIND);
	assert_int_equal(mask, 1UL << 2);
	assert_int_equal(pm_kvm_get_mempolicy(&mode, &mask, 65, f.view + 4 * MIB, MPOL_F_ADDR), 0);
	assert_int_equal(mode, MPOL_INTERLEAVE);
	assert_int_equal(mask, 1UL << 0 | 1UL << 3);
	assert_int_equal(do_mbind(f.view, 2 * MIB, MPOL_DEFAULT, 0), 0);
	assert_int_equal(pm_kvm_get_mempolicy(&mode, &mask, 65, f.view + PAGE, MPOL_F_ADDR), 0);
	assert_int_equal(mode, MPOL_DEFAULT);
	assert_int_equal(mask, 0);
	/* PREFERRED without nodes is LOCAL. */
	assert_int_equal(do_mbind(f.view + 6 * MIB, PAGE, MPOL_PREFERRED, 0), 0);
	assert_int_equal(pm_kvm_get_mempolicy(&mode, NULL, 0, f.view + 6 * MIB, MPOL_F_ADDR), 0);
	assert_int_equal(mode, MPOL_LOCAL);
	vm_file_close(&f);
	pm_pool_get_stats(&ps);
	for (unsigned int n = 0; n < NUMA_NODES; n++)
		assert_int_equal(ps.node_in_use[n], 0);
}

/* Pages never move: a policy set over allocated pages applies to the
 * pages allocated there later (after a punch). */
static void test_mbind_never_moves_pages(void **state)
{
	struct vm_file f;

	vm_file_open(&f, KVM_X86_SW_PROTECTED_VM, 2 * MIB,
		     GUEST_MEMFD_FLAG_MMAP | PM_GUEST_MEMFD_FLAG_NO_HUGE);
	assert_int_equal(pm_kvm_fallocate(f.gmem, FALLOC_FL_KEEP_SIZE, 0, 4 * PAGE), 0);
	for (uint64_t i = 0; i < 4; i++)
		assert_int_equal(node_of_page(f.gmem, i), 0);
	assert_int_equal(do_mbind(f.view, 4 * PAGE, MPOL_BIND, 1UL << 3), 0);
	for (uint64_t i = 0; i < 4; i++)
		assert_int_equal(node_of_page(f.gmem, i), 0);
	assert_int_equal(pm_kvm_fallocate(f.gmem, PUNCH, PAGE, PAGE), 0);
	assert_int_equal(pm_kvm_fallocate(f.gmem, FALLOC_FL_KEEP_SIZE, 0, 4 * PAGE), 0);
	assert_int_equal(node_of_page(f.gmem, 0), 0);
	assert_int_equal(node_of_page(f.gmem, 1), 3);
	/* BIND to a node that is full: ENOMEM, no other node used. */
	vm_file_close(&f);
	vm_file_open(&f, KVM_X86_SW_PROTECTED_VM, 32 * MIB, GUEST_MEMFD_FLAG_MMAP);
	assert_int_equal(do_mbind(f.view, 32 * MIB, MPOL_BIND, 1UL << 1), 0);
	assert_fails(pm_kvm_fallocate(f.gmem, FALLOC_FL_KEEP_SIZE, 0, 32 * MIB), ENOMEM);
	assert_true(file_pages(f.gmem) <= NODE_FRAMES);
	for (uint64_t i = 0; i < 32 * MIB / PAGE; i += 512)
		if (pm_gmem_peek_pfn(pm_test_gmem_of(f.gmem), i) != PM_PFN_INVALID)
			assert_int_equal(node_of_page(f.gmem, i), 1);
	vm_file_close(&f);
}

static void test_mbind_errors(void **state)
{
	unsigned long big[64] = { 0 }, m = 1;
	struct vm_file f;
	uint8_t *hole;
	int mode;

	vm_file_open(&f, KVM_X86_SW_PROTECTED_VM, 2 * MIB, GUEST_MEMFD_FLAG_MMAP);
	assert_fails(pm_kvm_mbind(f.view, PAGE, 7, &m, 64, 0), EINVAL);              /* no such mode */
	assert_fails(pm_kvm_mbind(f.view, PAGE, MPOL_BIND | MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES,
				  &m, 64, 0), EINVAL);
	assert_fails(pm_kvm_mbind(f.view, PAGE, MPOL_INTERLEAVE | MPOL_F_NUMA_BALANCING, &m, 64, 0), EINVAL);
	assert_fails(pm_kvm_mbind(f.view, PAGE, MPOL_BIND, &m, PAGE * 8 + 2, 0), EINVAL);  /* maxnode */
	big[1500 / 64] = 1UL << (1500 % 64);                                          /* past MAX_NUMNODES */
	assert_fails(pm_kvm_mbind(f.view, PAGE, MPOL_BIND, big, 2048, 0), EINVAL);
	assert_fails(pm_kvm_mbind(f.view, PAGE, MPOL_BIND, (unsigned long *)8, 64, 0), EFAULT);
	assert_fails(pm_kvm_mbind(f.view, PAGE, MPOL_BIND, &m, 64, 8), EINVAL);       /* flags */
	assert_fails(pm_kvm_mbind(f.view + 1, PAGE, MPOL_BIND, &m, 64, 0), EINVAL);   /* unaligned */
	assert_fails(pm_kvm_mbind(f.view, UINTPTR_MAX - PAGE, MPOL_BIND, &m, 64, 0), EINVAL);
	assert_int_equal(pm_kvm_mbind(f.view, 0, MPOL_BIND, &m, 64, 0), 0);
	assert_fails(do_mbind(f.view, PAGE, MPOL_BIND, 0), EINVAL);                    /* no nodes */
	assert_fails(do_mbind(f.view, PAGE, MPOL_DEFAULT, 1), EINVAL);                 /* nodes */
	assert_fails(do_mbind(f.view, PAGE, MPOL_LOCAL, 1), EINVAL);
	assert_fails(do_mbind(f.view, PAGE, MPOL_BIND, 1UL << 5), EINVAL);             /* not a node */
	assert_int_equal(do_mbind(f.view, PAGE, MPOL_BIND, 1UL << 5 | 1UL << 1), 0);   /* 5 dropped */
	assert_int_equal(pm_kvm_get_mempolicy(&mode, &m, 65, f.view, MPOL_F_ADDR), 0);
	assert_int_equal(m, 1UL << 1);
	/* MOVE and STRICT are taken; nothing moves. */
	assert_int_equal(pm_kvm_mbind(f.view, PAGE, MPOL_BIND, &m, 64, MPOL_MF_MOVE | MPOL_MF_STRICT), 0);
	/* A hole after the mapping: EFAULT, as the kernel. */
	hole = mmap(NULL, 2 * PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(hole != MAP_FAILED);
	assert_int_equal(munmap(hole + PAGE, PAGE), 0);
	assert_fails(pm_kvm_mbind(hole, 2 * PAGE, MPOL_BIND, &(unsigned long){ 1 }, 64, 0), EFAULT);
	munmap(hole, PAGE);
	/* get_mempolicy: a private page not allocated cannot be looked at. */
	assert_fails(pm_kvm_get_mempolicy(&mode, NULL, 0, f.view, MPOL_F_NODE | MPOL_F_ADDR), EFAULT);
	assert_fails(pm_kvm_get_mempolicy(&mode, NULL, 0, f.view, 8), EINVAL);
	vm_file_close(&f);
}

/* A guest's faults follow the policy: interleaved over two nodes. */
static void guest_touches_pages(struct pm_guest *g, void *arg)
{
	for (uint64_t i = 0; i < 64; i++)
		pm_guest_write64(g, i * PAGE, i);
	pm_guest_sync(g, 0);
}

static void test_guest_faults_follow_the_policy(void **state)
{
	struct pm_gmem_file_stats fs;
	struct vm_file f;
	int vcpu;

	vm_file_open(&f, KVM_X86_SW_PROTECTED_VM, 2 * MIB,
		     GUEST_MEMFD_FLAG_MMAP | PM_GUEST_MEMFD_FLAG_NO_HUGE);
	assert_int_equal(do_mbind(f.view, 2 * MIB, MPOL_INTERLEAVE, 1UL << 1 | 1UL << 2), 0);
	set_private(f.vm, 0, 2 * MIB);
	vcpu = guest_setup(&f, guest_touches_pages, NULL);
	assert_int_equal(guest_next(vcpu), 0);
	for (uint64_t i = 0; i < 64; i++)
		assert_int_equal(node_of_page(f.gmem, i), i % 2 ? 2 : 1);
	assert_int_equal(pm_kvm_ioctl(f.gmem, PM_GUEST_MEMFD_GET_STATS, &fs), 0);
	assert_int_equal(fs.node_pages[1], 32);
	assert_int_equal(fs.node_pages[2], 32);
	assert_int_equal(pm_kvm_close(vcpu), 0);
	vm_file_close(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_flag_not_listed_is_einval_on_every_vm_type),
		cmocka_unit_test(test_madv_collapse_is_einval_and_madv_hugepage_succeeds),
		cmocka_unit_test(test_madvise_over_a_view_and_other_memory),
		cmocka_unit_test(test_madv_remove_punches_the_file),
		cmocka_unit_test(test_pwrite_and_write_populate_pages_a_guest_reads),
		cmocka_unit_test(test_write_errors),
		cmocka_unit_test(test_no_direct_map_frames_fault_for_a_stray_host_read),
		cmocka_unit_test(test_no_direct_map_with_a_shared_mapping),
	};

	const struct CMUnitTest numa[] = {
		cmocka_unit_test(test_pool_nodes_and_their_statistics),
		cmocka_unit_test(test_mbind_places_later_allocations),
		cmocka_unit_test(test_mbind_never_moves_pages),
		cmocka_unit_test(test_mbind_errors),
		cmocka_unit_test(test_guest_faults_follow_the_policy),
	};

	/* NUMA first: it re-creates the pool, which a poisoned page (never
	 * freed) would keep busy. */
	return cmocka_run_group_tests_name("numa", numa, numa_setup, numa_teardown) |
	       cmocka_run_group_tests(tests, NULL, NULL);
}

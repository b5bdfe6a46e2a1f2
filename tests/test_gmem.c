/* SPDX-License-Identifier: MIT */
/*
 * Tests of guest_memfd (src/gmem/) through the KVM uAPI privmem serves, as
 * Linux's guest_memfd behaves (../shared/reference/upstream-kvm.md):
 * creation, stat, the refused file operations, mmap (in place, SIGBUS where
 * the host may not touch), fallocate and punch hole, page sizes and splits,
 * pool exhaustion, lifetime (the file pins the VM; release clears bindings),
 * invalidation of bound gfns, memory failure, and concurrent use (including
 * host reads through a view racing punch hole).
 *
 * Internal state is read where the uAPI cannot show it: the struct pm_gmem /
 * pm_vm behind a handle (pm_handle_get), page statistics, frames
 * (pm_gmem_get_pfn, pm_pfn_to_hva) and zaps (a consumer on the VM).
 *
 * Every test leaves the pool idle (in_use == 0 once its VMs are gone: a VM
 * holds page-table frames of its own), which the tests that reconfigure it
 * rely on, except the memory-failure tests at the end: a poisoned frame
 * never returns to the pool.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <linux/falloc.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <privmem/guest.h>
#include <privmem/privmem.h>
#include "gmem/gmem.h"
#include "gmem/gmem_internal.h"   /* pm_gmem_peek_pfn */
#include "host/pool.h"
#include "kvm/vm.h"
#include "lib/rcu.h"
#include "memslot/invalidate.h"
#include "memslot/memslot.h"
#include "uapi/handle.h"
#include "lib/testutil.h"   /* tests/lib/ */
#include "lib/zaplog.h"

#define MIB (1ULL << 20)
#define GIB (1ULL << 30)
#define PAGE PM_PAGE_SIZE

#define POOL_SIZE      (4 * GIB)
#define POOL_WATERMARK (64 * MIB)

#define DEFAULT_VM KVM_X86_DEFAULT_VM
#define SW_VM      KVM_X86_SW_PROTECTED_VM
#define MMAP       GUEST_MEMFD_FLAG_MMAP
#define SHARED     (GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED)
#define KEEP       FALLOC_FL_KEEP_SIZE
#define PUNCH      (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)

static int sys_handle = -1;

/* ---- helpers ------------------------------------------------------------ */


#define assert_mmap_fails(expr, err) do {                               \
		errno = 0;                                              \
		assert_ptr_equal((expr), MAP_FAILED);                   \
		assert_int_equal(errno, (err));                         \
	} while (0)

static struct pm_pool_stats pool_stats(void)
{
	struct pm_pool_stats st;

	assert_int_equal(pm_kvm_ioctl(sys_handle, PM_KVM_GET_POOL_STATS, &st), 0);
	return st;
}

static uint64_t pool_in_use(void)
{
	return pool_stats().in_use;
}

/* Resizes the (idle) pool. */
static void pool_configure(uint64_t size)
{
	struct pm_pool_config cfg = { .size = size, .watermark = size < POOL_WATERMARK ? size : POOL_WATERMARK };

	assert_int_equal(pm_kvm_ioctl(sys_handle, PM_KVM_SET_POOL_CONFIG, &cfg), 0);
	assert_int_equal(pool_stats().size, size);
}

/* A VM as a KVM client creates it: privmem's page-size flags are EINVAL. */
static int vm_new_plain(unsigned long type)
{
	int vm = pm_kvm_ioctl(sys_handle, KVM_CREATE_VM, type);

	assert_true(vm >= 0);
	return vm;
}

/* A VM with privmem's page-size flags enabled, as these tests use them. */
static int vm_new(unsigned long type)
{
	return pm_test_gmem_page_size_flags(vm_new_plain(type));
}

static int gmem_try_create(int vm, uint64_t size, uint64_t flags)
{
	struct kvm_create_guest_memfd args = { .size = size, .flags = flags };

	return pm_kvm_ioctl(vm, KVM_CREATE_GUEST_MEMFD, &args);
}

static int gmem_new(int vm, uint64_t size, uint64_t flags)
{
	int h = gmem_try_create(vm, size, flags);

	assert_true(h >= 0);
	return h;
}

static void close_ok(int h)
{
	assert_int_equal(pm_kvm_close(h), 0);
}

/* The object behind a handle, referenced: drop it with pm_gmem_put/pm_vm_put. */
static void *handle_obj(int h, enum pm_handle_kind kind)
{
	struct pm_file f;

	assert_int_equal(pm_handle_get(h, &f), 0);
	assert_int_equal(f.kind, kind);
	return f.obj;
}

static struct pm_gmem *gmem_ref(int h)
{
	return handle_obj(h, PM_HANDLE_GMEM);
}

static struct pm_vm *vm_ref(int h)
{
	return handle_obj(h, PM_HANDLE_VM);
}

static struct pm_gmem_stats gmem_stats(struct pm_gmem *g)
{
	struct pm_gmem_stats st;

	pm_gmem_get_stats(g, &st);
	return st;
}

static void alloc_ok(int h, uint64_t off, uint64_t len)
{
	assert_int_equal(pm_kvm_fallocate(h, KEEP, (off_t)off, (off_t)len), 0);
}

static void punch_ok(int h, uint64_t off, uint64_t len)
{
	if (pm_kvm_fallocate(h, PUNCH, (off_t)off, (off_t)len))
		fail_msg("punch %#llx+%#llx: %s", (unsigned long long)off, (unsigned long long)len, strerror(errno));
}

static pm_pfn_t pfn_ok(struct pm_gmem *g, uint64_t index, unsigned int *order)
{
	pm_pfn_t pfn = PM_PFN_INVALID;
	unsigned int o = ~0u;

	assert_int_equal(pm_gmem_get_pfn(g, index, index, &pfn, &o), 0);
	assert_true(pfn < pm_pool_nr_frames());
	if (order)
		*order = o;
	return pfn;
}

/* The library's address of file page `index`'s contents (allocating the
 * page): its frame (the direct map), or the library's mapping of the host
 * file where the page lives there (an INIT_SHARED file's pages). */
static uint8_t *page_hva(struct pm_gmem *g, uint64_t index)
{
	pm_pfn_t pfn = pfn_ok(g, index, NULL);
	uint8_t *host = pm_gmem_host_page(g, index, NULL);

	return host ? host : pm_pfn_to_hva(pfn);
}

static uint8_t *map_ok(int h, size_t len, off_t off)
{
	void *p = pm_kvm_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, h, off);

	assert_ptr_not_equal(p, MAP_FAILED);
	return p;
}

static void unmap_ok(void *p, size_t len)
{
	assert_int_equal(pm_kvm_munmap(p, len), 0);
}

static bool read_sigbuses(uint8_t *p)
{
	return pm_test_sigbus(p, false, NULL);
}

static bool write_sigbuses(uint8_t *p)
{
	uint8_t v = 0x5a;

	return pm_test_sigbus(p, true, &v);
}

static bool is_zero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

static bool is_filled(const uint8_t *p, size_t len, uint8_t byte)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != byte)
			return false;
	return true;
}

/* Binds [gpa, gpa + size) as slot `slot` to guest_memfd `gmem` at `offset`. */
static void bind_ok(int vm, uint32_t slot, uint64_t gpa, uint64_t size, int gmem, uint64_t offset)
{
	struct kvm_userspace_memory_region2 r = {
		.slot = slot,
		.flags = KVM_MEM_GUEST_MEMFD,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.guest_memfd_offset = offset,
		.guest_memfd = (uint32_t)gmem,
	};

	assert_int_equal(pm_kvm_ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &r), 0);
}

/* Deterministic PRNG (xorshift64*), so failures reproduce. */
static uint64_t rng_next(uint64_t *st)
{
	*st ^= *st >> 12;
	*st ^= *st << 25;
	*st ^= *st >> 27;
	return *st * 2685821657736338717ULL;
}

/* ---- zap recording ------------------------------------------------------ */

/* Registers log as a zap consumer of the (fresh) VM behind handle vm. */
static void zap_log_attach(struct pm_zaplog *log, int vm)
{
	struct pm_vm *v = vm_ref(vm);

	pm_zaplog_attach(log, v);
	pm_vm_put(v);
}

/* ---- creation ----------------------------------------------------------- */

/* Upstream's flag test: every bit KVM_CAP_GUEST_MEMFD_FLAGS does not list
 * is EINVAL, privmem's own included, on a VM that did not enable them. */
static void check_flag_bits(unsigned long type, uint64_t expected_mask)
{
	int vm = vm_new_plain(type);
	long mask = pm_kvm_ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_FLAGS);

	assert_int_equal(mask, expected_mask);
	for (unsigned int bit = 0; bit < 64; bit++) {
		uint64_t flag = 1ULL << bit;

		if (mask & flag) {
			close_ok(gmem_new(vm, PAGE, flag));
			continue;
		}
		assert_fails(gmem_try_create(vm, PAGE, flag), EINVAL);
		/* Also next to every supported flag. */
		assert_fails(gmem_try_create(vm, PAGE, flag | (uint64_t)mask), EINVAL);
	}
	close_ok(vm);
}

static void test_create_rejects_every_flag_bit_outside_the_reported_mask(void **state)
{
	check_flag_bits(DEFAULT_VM, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED |
				    GUEST_MEMFD_FLAG_NO_DIRECT_MAP);
	check_flag_bits(SW_VM, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_NO_DIRECT_MAP);
}

static void test_page_size_flags_are_einval_until_the_vm_enables_them(void **state)
{
	int vm = vm_new_plain(SW_VM);
	struct kvm_enable_cap cap = { .cap = PM_CAP_GUEST_MEMFD_PAGE_SIZE, .args = { 2 } };

	assert_int_equal(pm_kvm_ioctl(vm, KVM_CHECK_EXTENSION, PM_CAP_GUEST_MEMFD_PAGE_SIZE), 1);
	assert_fails(gmem_try_create(vm, PAGE, PM_GUEST_MEMFD_FLAG_NO_HUGE), EINVAL);
	assert_fails(pm_kvm_ioctl(vm, KVM_ENABLE_CAP, &cap), EINVAL);
	cap.args[0] = 1;
	assert_int_equal(pm_kvm_ioctl(vm, KVM_ENABLE_CAP, &cap), 0);
	close_ok(gmem_new(vm, PAGE, PM_GUEST_MEMFD_FLAG_NO_HUGE));
	cap.args[0] = 0;
	assert_int_equal(pm_kvm_ioctl(vm, KVM_ENABLE_CAP, &cap), 0);
	assert_fails(gmem_try_create(vm, PAGE, PM_GUEST_MEMFD_FLAG_NO_1G), EINVAL);
	close_ok(vm);
}

static void test_create_accepts_the_reported_mask_with_the_page_size_extensions(void **state)
{
	unsigned long types[] = { DEFAULT_VM, SW_VM };

	for (size_t i = 0; i < PM_ARRAY_SIZE(types); i++) {
		int vm = vm_new(types[i]);
		uint64_t mask = (uint64_t)pm_kvm_ioctl(vm, KVM_CHECK_EXTENSION,
						       KVM_CAP_GUEST_MEMFD_FLAGS);

		close_ok(gmem_new(vm, PAGE, mask));
		close_ok(gmem_new(vm, PAGE, mask | PM_GUEST_MEMFD_FLAG_NO_1G));
		close_ok(gmem_new(vm, PAGE, mask | PM_GUEST_MEMFD_FLAG_NO_HUGE));
		close_ok(gmem_new(vm, PAGE, PM_GUEST_MEMFD_FLAG_NO_1G | PM_GUEST_MEMFD_FLAG_NO_HUGE));
		close_ok(vm);
	}
}

static void test_create_init_shared_on_sw_vm_is_einval(void **state)
{
	int vm = vm_new(SW_VM);

	assert_fails(gmem_try_create(vm, PAGE, GUEST_MEMFD_FLAG_INIT_SHARED), EINVAL);
	assert_fails(gmem_try_create(vm, PAGE, SHARED), EINVAL);
	close_ok(vm);
}

static void test_create_rejects_zero_unaligned_and_negative_sizes(void **state)
{
	static const uint64_t bad[] = {
		0, 1, PAGE - 1, PAGE + 1, 3 * PAGE + 512,
		1ULL << 63,                      /* a negative loff_t */
		(1ULL << 63) | PAGE,
		UINT64_MAX & PM_PAGE_MASK,       /* -4096 */
	};
	int vm = vm_new(SW_VM);

	for (size_t i = 0; i < PM_ARRAY_SIZE(bad); i++)
		assert_fails(gmem_try_create(vm, bad[i], 0), EINVAL);
	close_ok(vm);
}

static void test_create_ignores_reserved_fields(void **state)
{
	int vm = vm_new(SW_VM);
	struct kvm_create_guest_memfd args = { .size = 2 * PAGE };
	struct stat st;
	int h;

	for (size_t i = 0; i < PM_ARRAY_SIZE(args.reserved); i++)
		args.reserved[i] = ~0ULL - i;
	h = pm_kvm_ioctl(vm, KVM_CREATE_GUEST_MEMFD, &args);
	assert_true(h >= 0);
	assert_int_equal(pm_kvm_fstat(h, &st), 0);
	assert_int_equal(st.st_size, 2 * PAGE);
	close_ok(h);
	close_ok(vm);
}

static void test_create_with_null_argument_is_efault(void **state)
{
	int vm = vm_new(SW_VM);

	assert_fails(pm_kvm_ioctl(vm, KVM_CREATE_GUEST_MEMFD, NULL), EFAULT);
	close_ok(vm);
}

static void test_create_returns_a_new_handle_each_time(void **state)
{
	int vm = vm_new(SW_VM);
	int a = gmem_new(vm, PAGE, 0), b = gmem_new(vm, 2 * PAGE, 0), c = gmem_new(vm, PAGE, 0);
	struct stat st;

	assert_true(a != b && b != c && a != c && a != vm && b != vm && c != vm);
	/* Each handle is its own file: closing one leaves the others. */
	close_ok(b);
	assert_fails(pm_kvm_fstat(b, &st), EBADF);
	assert_int_equal(pm_kvm_fstat(a, &st), 0);
	assert_int_equal(st.st_size, PAGE);
	assert_int_equal(pm_kvm_fstat(c, &st), 0);
	close_ok(a);
	close_ok(c);
	close_ok(vm);
}

/* ---- stat --------------------------------------------------------------- */

static void test_fstat_gives_distinct_inodes_size_blksize_and_blocks(void **state)
{
	int vm = vm_new(SW_VM);
	int a = gmem_new(vm, 16 * PAGE, PM_GUEST_MEMFD_FLAG_NO_HUGE);
	int b = gmem_new(vm, 4 * MIB, 0);
	struct stat sa, sb;

	assert_int_equal(pm_kvm_fstat(a, &sa), 0);
	assert_int_equal(pm_kvm_fstat(b, &sb), 0);
	assert_true(S_ISREG(sa.st_mode));
	assert_true(sa.st_ino != sb.st_ino);
	assert_int_equal(sa.st_size, 16 * PAGE);
	assert_int_equal(sb.st_size, 4 * MIB);
	assert_int_equal(sa.st_blksize, 4096);
	assert_int_equal(sb.st_blksize, 4096);
	assert_int_equal(sa.st_blocks, 0);

	/* st_blocks counts 512-byte blocks of allocated pages. */
	alloc_ok(a, 2 * PAGE, 3 * PAGE);
	assert_int_equal(pm_kvm_fstat(a, &sa), 0);
	assert_int_equal(sa.st_blocks, 3 * PAGE / 512);
	punch_ok(a, 3 * PAGE, PAGE);
	assert_int_equal(pm_kvm_fstat(a, &sa), 0);
	assert_int_equal(sa.st_blocks, 2 * PAGE / 512);
	/* A 4K fallocate in a 2M-capable file allocates 4K; a fault in the
	 * next 2M block allocates a whole 2M page. */
	alloc_ok(b, 0, PAGE);
	assert_int_equal(pm_kvm_fstat(b, &sb), 0);
	assert_int_equal(sb.st_blocks, PAGE / 512);
	{
		struct pm_gmem *g = gmem_ref(b);

		pfn_ok(g, 2 * MIB / PAGE + 3, NULL);
		pm_gmem_put(g);
	}
	assert_int_equal(pm_kvm_fstat(b, &sb), 0);
	assert_int_equal(sb.st_blocks, (PAGE + 2 * MIB) / 512);

	close_ok(a);
	close_ok(b);
	close_ok(vm);
	assert_int_equal(pool_in_use(), 0);
}

/* ---- read/write, bad handles ------------------------------------------ */

/* A file without GUEST_MEMFD_FLAG_MMAP can be neither read nor written;
 * one with it can be written (test_gmem_flags.c), never read. */
static void test_read_write_pread_pwrite_are_einval(void **state)
{
	int vm = vm_new(DEFAULT_VM);
	int h = gmem_new(vm, 4 * PAGE, 0), s = gmem_new(vm, 4 * PAGE, SHARED);
	char buf[64] = { 0 };

	assert_fails(pm_kvm_read(s, buf, sizeof(buf)), EINVAL);
	assert_fails(pm_kvm_pread(s, buf, sizeof(buf), 0), EINVAL);
	close_ok(s);
	alloc_ok(h, 0, 4 * PAGE);
	assert_fails(pm_kvm_read(h, buf, sizeof(buf)), EINVAL);
	assert_fails(pm_kvm_write(h, buf, sizeof(buf)), EINVAL);
	assert_fails(pm_kvm_pread(h, buf, sizeof(buf), 0), EINVAL);
	assert_fails(pm_kvm_pwrite(h, buf, sizeof(buf), 0), EINVAL);
	assert_fails(pm_kvm_pread(h, buf, sizeof(buf), -1), EINVAL);
	assert_fails(pm_kvm_pwrite(h, buf, sizeof(buf), -4096), EINVAL);
	assert_fails(pm_kvm_read(h, buf, 0), EINVAL);
	close_ok(h);
	close_ok(vm);
}

static void check_ebadf_everywhere(int h)
{
	char buf[16];
	struct stat st;

	assert_fails(pm_kvm_read(h, buf, sizeof(buf)), EBADF);
	assert_fails(pm_kvm_write(h, buf, sizeof(buf)), EBADF);
	assert_fails(pm_kvm_pread(h, buf, sizeof(buf), 0), EBADF);
	assert_fails(pm_kvm_pwrite(h, buf, sizeof(buf), 0), EBADF);
	assert_fails(pm_kvm_fallocate(h, KEEP, 0, PAGE), EBADF);
	assert_fails(pm_kvm_fallocate(h, PUNCH, 0, PAGE), EBADF);
	assert_mmap_fails(pm_kvm_mmap(NULL, PAGE, PROT_READ, MAP_SHARED, h, 0), EBADF);
	assert_fails(pm_kvm_fstat(h, &st), EBADF);
	assert_fails(pm_kvm_ioctl(h, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD), EBADF);
	assert_fails(pm_kvm_close(h), EBADF);
}

static void test_file_ops_on_closed_or_bogus_handles_are_ebadf(void **state)
{
	int vm = vm_new(DEFAULT_VM);
	int h = gmem_new(vm, PAGE, SHARED);

	close_ok(h);
	check_ebadf_everywhere(h);
	check_ebadf_everywhere(-1);
	check_ebadf_everywhere(PM_MAX_HANDLES);
	check_ebadf_everywhere(0x7fffffff);
	close_ok(vm);
}

/* ---- mmap --------------------------------------------------------------- */

static void test_mmap_without_mmap_flag_is_enodev(void **state)
{
	int sw = vm_new(SW_VM), dflt = vm_new(DEFAULT_VM);
	int a = gmem_new(sw, 4 * PAGE, 0);
	int b = gmem_new(dflt, 4 * PAGE, GUEST_MEMFD_FLAG_INIT_SHARED);

	assert_mmap_fails(pm_kvm_mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, a, 0), ENODEV);
	assert_mmap_fails(pm_kvm_mmap(NULL, PAGE, PROT_READ, MAP_SHARED, b, 0), ENODEV);
	close_ok(a);
	close_ok(b);
	close_ok(sw);
	close_ok(dflt);
}

static void test_mmap_private_is_einval(void **state)
{
	int vm = vm_new(DEFAULT_VM);
	int h = gmem_new(vm, 4 * PAGE, SHARED);

	assert_mmap_fails(pm_kvm_mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, h, 0), EINVAL);
	assert_mmap_fails(pm_kvm_mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, h, 0), EINVAL);
	close_ok(h);
	close_ok(vm);
	assert_int_equal(pool_in_use(), 0);
}

static void test_mmap_zero_length_is_einval(void **state)
{
	int vm = vm_new(DEFAULT_VM);
	int h = gmem_new(vm, 4 * PAGE, SHARED);

	assert_mmap_fails(pm_kvm_mmap(NULL, 0, PROT_READ | PROT_WRITE, MAP_SHARED, h, 0), EINVAL);
	close_ok(h);
	close_ok(vm);
}

static void test_mmap_unaligned_offset_is_einval(void **state)
{
	int vm = vm_new(DEFAULT_VM);
	int h = gmem_new(vm, 4 * PAGE, SHARED);

	assert_mmap_fails(pm_kvm_mmap(NULL, PAGE, PROT_READ, MAP_SHARED, h, 1), EINVAL);
	assert_mmap_fails(pm_kvm_mmap(NULL, PAGE, PROT_READ, MAP_SHARED, h, PAGE + 512), EINVAL);
	close_ok(h);
	close_ok(vm);
}

/* Every page of a view of a file without INIT_SHARED faults, allocated or not. */
static void check_private_view_sigbuses(unsigned long type)
{
	int vm = vm_new(type);
	int h = gmem_new(vm, 8 * PAGE, MMAP);
	uint8_t *p = map_ok(h, 8 * PAGE, 0);

	for (int i = 0; i < 8; i++) {
		assert_true(read_sigbuses(p + i * PAGE));
		assert_true(write_sigbuses(p + i * PAGE + 123));
	}
	alloc_ok(h, 0, 8 * PAGE);
	for (int i = 0; i < 8; i++) {
		assert_true(read_sigbuses(p + i * PAGE + PAGE - 1));
		assert_true(write_sigbuses(p + i * PAGE));
	}
	unmap_ok(p, 8 * PAGE);
	close_ok(h);
	close_ok(vm);
	assert_int_equal(pool_in_use(), 0);
}

static void test_mmap_without_init_shared_sigbuses_on_read_and_write(void **state)
{
	check_private_view_sigbuses(SW_VM);
	check_private_view_sigbuses(DEFAULT_VM);
}

static void test_mmap_init_shared_fresh_pages_read_zero_and_take_writes(void **state)
{
	int vm = vm_new(DEFAULT_VM);
	int h = gmem_new(vm, 4 * MIB, SHARED);
	uint8_t *p = map_ok(h, 4 * MIB, 0);
	uint8_t v = 0xff;

	for (uint64_t off = 0; off < 4 * MIB; off += PAGE) {
		assert_false(pm_test_sigbus(p + off, false, &v));
		assert_int_equal(v, 0);
	}
	assert_true(is_zero(p, 4 * MIB));
	memset(p + 5 * PAGE, 0xa5, PAGE);
	assert_true(is_filled(p + 5 * PAGE, PAGE, 0xa5));
	assert_false(write_sigbuses(p + 4 * MIB - 1));
	unmap_ok(p, 4 * MIB);
	close_ok(h);
	close_ok(vm);
	assert_int_equal(pool_in_use(), 0);
}

static void test_mmap_access_at_or_past_end_of_file_sigbuses(void **state)
{
	int vm = vm_new(DEFAULT_VM);
	int h = gmem_new(vm, 2 * PAGE, SHARED);
	uint8_t *p = map_ok(h, 5 * PAGE, 0);
	uint8_t *q = map_ok(h, 2 * PAGE, 2 * PAGE);   /* wholly past the end */

	assert_false(read_sigbuses(p));
	assert_false(write_sigbuses(p + 2 * PAGE - 1));
	for (int i = 2; i < 5; i++) {
		assert_true(read_sigbuses(p + i * PAGE));
		assert_true(write_sigbuses(p + i * PAGE + 7));
	}
	assert_true(read_sigbuses(q));
	assert_true(write_sigbuses(q + PAGE));
	unmap_ok(p, 5 * PAGE);
	unmap_ok(q, 2 * PAGE);
	close_ok(h);
	close_ok(vm);
	assert_int_equal(pool_in_use(), 0);
}

static void test_mmap_views_share_memory_in_place(void **state)
{
	int vm = vm_new(DEFAULT_VM);
	int h = gmem_new(vm, 64 * PAGE, SHARED);
	struct pm_gmem *g = gmem_ref(h);
	uint8_t *a = map_ok(h, 64 * PAGE, 0);
	uint8_t *b = map_ok(h, 16 * PAGE, 32 * PAGE);   /* pages 32..47 */

	assert_true(a != b);
	memset(a + 33 * PAGE, 0x3c, PAGE);
	assert_true(is_filled(b + PAGE, PAGE, 0x3c));
	assert_true(is_filled(page_hva(g, 33), PAGE, 0x3c));
	/* And back: the frame, seen by both views. */
	memset(page_hva(g, 40), 0xc3, PAGE);
	assert_true(is_filled(a + 40 * PAGE, PAGE, 0xc3));
	assert_true(is_filled(b + 8 * PAGE, PAGE, 0xc3));
	b[15 * PAGE + 9] = 0x77;
	assert_int_equal(a[47 * PAGE + 9], 0x77);
	assert_int_equal(page_hva(g, 47)[9], 0x77);

	unmap_ok(a, 64 * PAGE);
	unmap_ok(b, 16 * PAGE);
	pm_gmem_put(g);
	close_ok(h);
	close_ok(vm);
	assert_int_equal(pool_in_use(), 0);
}

/* ---- fallocate ---------------------------------------------------------- */

static void test_fallocate_without_keep_size_is_eopnotsupp(void **state)
{
	int vm = vm_new(SW_VM);
	int h = gmem_new(vm, 16 * PAGE, 0);

	assert_fails(pm_kvm_fallocate(h, 0, 0, PAGE), EOPNOTSUPP);
	assert_fails(pm_kvm_fallocate(h, FALLOC_FL_PUNCH_HOLE, 0, PAGE), EOPNOTSUPP);
	/* vfs_fallocate checks offset and len before the mode. */
	assert_fails(pm_kvm_fallocate(h, 0, -PAGE, PAGE), EINVAL);
	close_ok(h);
	close_ok(vm);
	assert_int_equal(pool_in_use(), 0);
}

static void test_fallocate_unknown_modes_are_eopnotsupp(void **state)
{
	static const int modes[] = {
		FALLOC_FL_ZERO_RANGE | KEEP,
		FALLOC_FL_ZERO_RANGE,
		FALLOC_FL_COLLAPSE_RANGE,
		FALLOC_FL_INSERT_RANGE,
		FALLOC_FL_UNSHARE_RANGE | KEEP,
		FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE | KEEP,
		0x100 | KEEP,                    /* no such mode bit */
	};
	int vm = vm_new(SW_VM);
	int h = gmem_new(vm, 16 * PAGE, 0);

	for (size_t i = 0; i < PM_ARRAY_SIZE(modes); i++)
		assert_fails(pm_kvm_fallocate(h, modes[i], 0, PAGE), EOPNOTSUPP);
	close_ok(h);
	close_ok(vm);
	assert_int_equal(pool_in_use(), 0);
}

static void test_fallocate_negative_offset_or_nonpositive_len_is_einval(void **state)
{
	int vm = vm_new(SW_VM);
	int h = gmem_new(vm, 16 * PAGE, 0);
	const int modes[] = { KEEP, PUNCH };

	for (size_t i = 0; i < PM_ARRAY_SIZE(modes); i++) {
		assert_fails(pm_kvm_fallocate(h, modes[i], -PAGE, PAGE), EINVAL);
		assert_fails(pm_kvm_fallocate(h, modes[i], -1, PAGE), EINVAL);
		assert_fails(pm_kvm_fallocate(h, modes[i], 0, 0), EINVAL);
		assert_fails(pm_kvm_fallocate(h, modes[i], 0, -PAGE), EINVAL);
	}
	close_ok(h);
	close_ok(vm);
	assert_int_equal(pool_in_use(), 0);
}

static void test_fallocate_unaligned_offset_or_len_is_einval(void **state)
{
	int vm = vm_new(SW_VM);
	int h = gmem_new(vm, 16 * PAGE, 0);
	const int modes[] = { KEEP, PUNCH };
	struct stat st;

	for (size_t i = 0; i < PM_ARRAY_SIZE(modes); i++) {
		assert_fails(pm_kvm_fallocate(h, modes[i], 1, PAGE), EINVAL);
		assert_fails(pm_kvm_fallocate(h, modes[i], PAGE + 512, PAGE), EINVAL);
		assert_fails(pm_kvm_fallocate(h, modes[i], 0, 100), EINVAL);
		assert_fails(pm_kvm_fallocate(h, modes[i], PAGE, PAGE + 1), EINVAL);
	}
	assert_int_equal(pm_kvm_fstat(h, &st), 0);
	assert_int_equal(st.st_blocks, 0);
	close_ok(h);
	close_ok(vm);
	assert_int_equal(pool_in_use(), 0);
}

static void test_fallocate_allocating_past_end_is_einval(void **state)
{
	int vm = vm_new(SW_VM);
	int h = gmem_new(vm, 16 * PAGE, PM_GUEST_MEMFD_FLAG_NO_HUGE);
	struct stat st;

	assert_fails(pm_kvm_fallocate(h, KEEP, 15 * PAGE, 2 * PAGE), EINVAL);
	assert_fails(pm_kvm_fallocate(h, KEEP, 16 * PAGE, PAGE), EINVAL);
	assert_fails(pm_kvm_fallocate(h, KEEP, 0, 17 * PAGE), EINVAL);
	assert_fails(pm_kvm_fallocate(h, KEEP, 1ULL << 40, PAGE), EINVAL);
	assert_int_equal(pm_kvm_fstat(h, &st), 0);
	assert_int_equal(st.st_blocks, 0);     /* nothing allocated on the way */
	assert_int_equal(st.st_size, 16 * PAGE);
	alloc_ok(h, 0, 16 * PAGE);             /* exactly up to the end is fine */
	close_ok(h);
	close_ok(vm);
	assert_int_equal(pool_in_use(), 0);
}

static void test_fallocate_punching_past_end_succeeds(void **state)
{
	int vm = vm_new(SW_VM);
	int h = gmem_new(vm, 16 * PAGE, PM_GUEST_MEMFD_FLAG_NO_HUGE);
	struct stat st;

	alloc_ok(h, 0, 16 * PAGE);
	punch_ok(h, 16 * PAGE, PAGE);
	punch_ok(h, 1ULL << 40, 1ULL << 30);
	punch_ok(h, 14 * PAGE, 1ULL << 30);    /* straddles the end */
	assert_int_equal(pm_kvm_fstat(h, &st), 0);
	assert_int_equal(st.st_blocks, 14 * PAGE / 512);
	assert_int_equal(st.st_size, 16 * PAGE);
	close_ok(h);
	close_ok(vm);
	assert_int_equal(pool_in_use(), 0);
}

static void test_punched_page_reads_zero_while_neighbours_keep_data(void **state)
{
	int vm = vm_new(DEFAULT_VM);
	int h = gmem_new(vm, 8 * MIB, SHARED);
	uint8_t *p = map_ok(h, 8 * MIB, 0);

	alloc_ok(h, 0, 8 * MIB);
	for (uint64_t i = 0; i < 8 * MIB / PAGE; i++)
		memset(p + i * PAGE, (int)(i % 251) + 1, PAGE);
	punch_ok(h, 700 * PAGE, PAGE);         /* inside the second 2M page */
	punch_ok(h, 4 * MIB, 2 * MIB);         /* a whole 2M page */
	for (uint64_t i = 0; i < 8 * MIB / PAGE; i++) {
		bool punched = i == 700 || (i >= 1024 && i < 1536);

		assert_false(read_sigbuses(p + i * PAGE));
		if (punched)
			assert_true(is_zero(p + i * PAGE, PAGE));
		else
			assert_true(is_filled(p + i * PAGE, PAGE, (uint8_t)(i % 251) + 1));
	}
	unmap_ok(p, 8 * MIB);
	close_ok(h);
	close_ok(vm);
	assert_int_equal(pool_in_use(), 0);
}

static void test_fallocate_on_vm_or_system_handle_is_enodev(void **state)
{
	int vm = vm_new(SW_VM);

	assert_fails(pm_kvm_fallocate(vm, KEEP, 0, PAGE), ENODEV);
	assert_fails(pm_kvm_fallocate(vm, PUNCH, 0, PAGE), ENODEV);
	assert_fails(pm_kvm_fallocate(sys_handle, KEEP, 0, PAGE), ENODEV);
	assert_fails(pm_kvm_fallocate(sys_handle, PUNCH, 0, PAGE), ENODEV);
	close_ok(vm);
}

/* ---- page sizes --------------------------------------------------------- */

/* The first fault on page `off` of a 2 GiB file with `flags` allocates one
 * page of `order`, containing it, naturally aligned. */
static void check_page_size_for_fault(uint64_t flags, uint64_t off, unsigned int order)
{
	int vm = vm_new(SW_VM);
	int h = gmem_new(vm, 2 * GIB, flags);
	struct pm_gmem *g = gmem_ref(h);
	uint64_t before = pool_in_use();
	struct pm_gmem_stats st;
	unsigned int got;
	pm_pfn_t pfn;

	pfn = pfn_ok(g, off / PAGE, &got);
	st = gmem_stats(g);
	assert_int_equal(st.pages, 1ULL << order);
	assert_int_equal(st.folios[0], order == PM_ORDER_4K);
	assert_int_equal(st.folios[1], order == PM_ORDER_2M);
	assert_int_equal(st.folios[2], order == PM_ORDER_1G);
	assert_int_equal(pool_in_use() - before, PAGE << order);
	assert_int_equal(got, order);
	assert_true(PM_ALIGNED(pfn - (off / PAGE % (1ULL << order)), 1ULL << order));
	/* Another page of the same huge page allocates nothing more, by
	 * fault or by fallocate. */
	if (order) {
		alloc_ok(h, PM_ALIGN_DOWN(off, PAGE << order), PAGE);
		pfn_ok(g, PM_ALIGN_DOWN(off, PAGE << order) / PAGE + 1, NULL);
		assert_int_equal(gmem_stats(g).pages, 1ULL << order);
	}
	pm_gmem_put(g);
	close_ok(h);
	close_ok(vm);
	assert_int_equal(pool_in_use(), 0);
}

static void test_fault_in_1g_aligned_file_gets_a_1g_page(void **state)
{
	check_page_size_for_fault(0, 0, PM_ORDER_1G);
	check_page_size_for_fault(0, GIB + 12345 * PAGE, PM_ORDER_1G);
}

static void test_no_1g_flag_caps_pages_at_2m(void **state)
{
	check_page_size_for_fault(PM_GUEST_MEMFD_FLAG_NO_1G, 0, PM_ORDER_2M);
	check_page_size_for_fault(PM_GUEST_MEMFD_FLAG_NO_1G, GIB + 7 * PAGE, PM_ORDER_2M);
}

static void test_no_huge_flag_gives_4k_pages(void **state)
{
	check_page_size_for_fault(PM_GUEST_MEMFD_FLAG_NO_HUGE, 0, PM_ORDER_4K);
	check_page_size_for_fault(PM_GUEST_MEMFD_FLAG_NO_HUGE | PM_GUEST_MEMFD_FLAG_NO_1G,
				  3 * MIB, PM_ORDER_4K);
}

/* fallocate populates what it is asked for: the largest pages whose aligned
 * blocks lie within the range, never a huge page around a smaller range. */
static void check_fallocate_pages(uint64_t off, uint64_t len, uint64_t n4k, uint64_t n2m,
				  uint64_t n1g)
{
	int vm = vm_new(SW_VM);
	int h = gmem_new(vm, 4 * GIB, 0);
	struct pm_gmem *g = gmem_ref(h);
	uint64_t before = pool_in_use();
	struct pm_gmem_stats st;

	alloc_ok(h, off, len);
	st = gmem_stats(g);
	assert_int_equal(st.folios[0], n4k);
	assert_int_equal(st.folios[1], n2m);
	assert_int_equal(st.folios[2], n1g);
	assert_int_equal(st.pages, len / PAGE);
	assert_int_equal(pool_in_use() - before, len);
	/* Every page of the range is there: a fault finds it, allocating
	 * nothing. */
	for (uint64_t i = off / PAGE; i < (off + len) / PAGE; i += 509)
		pfn_ok(g, i, NULL);
	pfn_ok(g, (off + len) / PAGE - 1, NULL);
	assert_int_equal(gmem_stats(g).pages, len / PAGE);
	pm_gmem_put(g);
	close_ok(h);
	close_ok(vm);
	assert_int_equal(pool_in_use(), 0);
}

static void test_fallocate_populates_what_it_covers(void **state)
{
	check_fallocate_pages(0, PAGE, 1, 0, 0);
	check_fallocate_pages(GIB + 12345 * PAGE, PAGE, 1, 0, 0);
	check_fallocate_pages(2 * MIB, 2 * MIB, 0, 1, 0);
	check_fallocate_pages(GIB, GIB, 0, 0, 1);
	/* 4K up to a 2M boundary, 2M blocks, then 4K again. */
	check_fallocate_pages(2 * MIB - 3 * PAGE, 4 * MIB + 5 * PAGE, 5, 2, 0);
	/* A 2M block short of a GiB, a GiB, a 4K past it. */
	check_fallocate_pages(GIB - 2 * MIB, 2 * MIB + GIB + PAGE, 1, 1, 1);
}

static void test_3m_file_gets_a_2m_page_and_4k_pages_for_the_tail(void **state)
{
	int vm = vm_new(SW_VM);
	int h = gmem_new(vm, 3 * MIB, 0);
	struct pm_gmem *g = gmem_ref(h);
	uint64_t before = pool_in_use();
	struct pm_gmem_stats st;
	unsigned int order;

	alloc_ok(h, 0, 3 * MIB);
	st = gmem_stats(g);
	assert_int_equal(st.folios[2], 0);
	assert_int_equal(st.folios[1], 1);
	assert_int_equal(st.folios[0], 256);
	assert_int_equal(st.pages, 768);
	assert_int_equal(pool_in_use() - before, 3 * MIB);
	pfn_ok(g, 511, &order);
	assert_int_equal(order, PM_ORDER_2M);
	pfn_ok(g, 512, &order);
	assert_int_equal(order, PM_ORDER_4K);
	pfn_ok(g, 767, &order);
	assert_int_equal(order, PM_ORDER_4K);
	pm_gmem_put(g);
	close_ok(h);
	close_ok(vm);
	assert_int_equal(pool_in_use(), 0);
}

static void test_get_pfn_past_end_of_file_is_einval(void **state)
{
	int vm = vm_new(SW_VM);
	int h = gmem_new(vm, 3 * PAGE, 0);
	struct pm_gmem *g = gmem_ref(h);
	pm_pfn_t pfn;
	unsigned int order;

	assert_int_equal(pm_gmem_get_pfn(g, 3, 3, &pfn, &order), -EINVAL);
	assert_int_equal(pm_gmem_get_pfn(g, UINT64_MAX, 0, &pfn, &order), -EINVAL);
	assert_int_equal(gmem_stats(g).pages, 0);
	pm_gmem_put(g);
	close_ok(h);
	close_ok(vm);
	assert_int_equal(pool_in_use(), 0);
}

static void test_punching_4k_of_a_2m_page_splits_it_and_keeps_the_rest(void **state)
{
	int vm = vm_new(SW_VM);
	int h = gmem_new(vm, 4 * MIB, 0);
	struct pm_gmem *g = gmem_ref(h);
	uint64_t before = pool_in_use();
	struct pm_gmem_stats st;
	unsigned int order;
	pm_pfn_t head;

	alloc_ok(h, 0, 2 * MIB);
	head = pfn_ok(g, 0, &order);
	assert_int_equal(order, PM_ORDER_2M);
	for (uint64_t i = 0; i < 512; i++)
		memset(pm_pfn_to_hva(head + i), (int)(i & 0xff) ^ 0x5a, PAGE);

	punch_ok(h, 5 * PAGE, PAGE);
	st = gmem_stats(g);
	assert_int_equal(st.splits, 1);
	assert_int_equal(st.pages, 511);
	assert_int_equal(st.folios[1], 0);
	assert_int_equal(st.folios[0], 511);
	assert_int_equal(pool_in_use() - before, 511 * PAGE);
	for (uint64_t i = 0; i < 512; i++) {
		if (i == 5)
			continue;
		assert_int_equal(pfn_ok(g, i, &order), head + i);   /* same frames, in place */
		assert_int_equal(order, PM_ORDER_4K);
		assert_true(is_filled(pm_pfn_to_hva(head + i), PAGE, (uint8_t)(i & 0xff) ^ 0x5a));
	}
	/* The hole is refilled with a zeroed 4K page. */
	assert_true(is_zero(page_hva(g, 5), PAGE));
	assert_int_equal(gmem_stats(g).pages, 512);

	pm_gmem_put(g);
	close_ok(h);
	close_ok(vm);
	assert_int_equal(pool_in_use(), 0);
}

/* Punching an empty file skips its empty parts a word of occupancy bits at
 * a time: 200 punches of a 64 PiB file end in well under a second. (When
 * punch looked at every top entry, each took over half a second; the alarm
 * ends the test long before 200 would.) */
static void test_punch_of_a_huge_empty_file_skips_its_empty_parts(void **state)
{
	int vm = vm_new(SW_VM);
	uint64_t size = 1ULL << 56;
	int h = gmem_new(vm, size, 0);
	struct pm_gmem *g = gmem_ref(h);

	alarm(60);
	for (int i = 0; i < 200; i++)
		punch_ok(h, (uint64_t)i * PAGE, size - (uint64_t)i * PAGE);
	/* One page near the end: the punches find it, and only it. */
	pfn_ok(g, (size - 3 * GIB) / PAGE, NULL);
	assert_int_equal(gmem_stats(g).pages, 512 * 512);    /* a 1G page */
	punch_ok(h, 0, size - 3 * GIB);
	assert_int_equal(gmem_stats(g).pages, 512 * 512);
	punch_ok(h, size - 3 * GIB + PAGE, size);
	assert_int_equal(gmem_stats(g).pages, 1);
	punch_ok(h, 0, size);
	assert_int_equal(gmem_stats(g).pages, 0);
	alarm(0);
	pm_gmem_put(g);
	close_ok(h);
	close_ok(vm);
	assert_int_equal(pool_in_use(), 0);
}

/* Pages scattered over a 4 TiB file (4K only: nodes at every level), then
 * random punches and allocations: after each, the file holds exactly the
 * pages a model of it says, and every page comes back to the pool. */
static void test_punches_of_a_sparse_file_free_exactly_the_pages_in_range(void **state)
{
	enum { NPAGES = 256 };
	int vm = vm_new(SW_VM);
	uint64_t size = 4096 * GIB, rng = 0x5eed;
	int h = gmem_new(vm, size, PM_GUEST_MEMFD_FLAG_NO_HUGE);
	struct pm_gmem *g = gmem_ref(h);
	uint64_t off[NPAGES];
	bool present[NPAGES];

	for (int i = 0; i < NPAGES; i++) {
		/* Clustered in a few GiBs and 2M blocks, and spread. */
		uint64_t gib = rng_next(&rng) % (i % 2 ? 4 : 4096);

		off[i] = gib * GIB + (rng_next(&rng) % (i % 3 ? 8 : 512)) * 2 * MIB +
			 (rng_next(&rng) % 512) * PAGE;
		present[i] = false;
	}
	for (int round = 0; round < 300; round++) {
		uint64_t n = 0, start, len;

		for (int i = 0; i < NPAGES; i++)
			if (!present[i] && rng_next(&rng) % 4 == 0) {
				alloc_ok(h, off[i], PAGE);
				present[i] = true;
			}
		switch (rng_next(&rng) % 3) {
		case 0: len = PAGE * (1 + rng_next(&rng) % 1024); break;
		case 1: len = GIB * (1 + rng_next(&rng) % 8); break;
		default: len = PM_ALIGN_DOWN(size / (1 + rng_next(&rng) % 4), PAGE); break;
		}
		start = PM_ALIGN_DOWN(rng_next(&rng) % size, PAGE);
		if (round % 5 == 0)       /* right on a page, a block or a GiB */
			start = off[rng_next(&rng) % NPAGES] & ~(rng_next(&rng) % 2 ? GIB - 1 : 2 * MIB - 1);
		punch_ok(h, start, len);
		for (int i = 0; i < NPAGES; i++) {
			if (off[i] >= start && off[i] < start + len)
				present[i] = false;
			n += present[i];
		}
		/* Offsets may repeat: count the distinct pages the model holds. */
		for (int i = 0; i < NPAGES; i++)
			for (int j = 0; j < i && present[i]; j++)
				if (present[j] && off[j] == off[i]) {
					n--;
					break;
				}
		assert_int_equal(gmem_stats(g).pages, n);
	}
	punch_ok(h, 0, size);
	assert_int_equal(gmem_stats(g).pages, 0);
	pm_gmem_put(g);
	close_ok(h);
	close_ok(vm);
	assert_int_equal(pool_in_use(), 0);
}

/* A block emptied page by page keeps its node; a punch of the whole block
 * frees it, so the block takes a 2M page again. */
static void test_whole_block_punch_frees_an_emptied_node_for_a_2m_page(void **state)
{
	int vm = vm_new(SW_VM);
	int h = gmem_new(vm, 4 * MIB, PM_GUEST_MEMFD_FLAG_NO_1G);
	struct pm_gmem *g = gmem_ref(h);
	struct pm_gmem_stats st;

	alloc_ok(h, 2 * MIB, 2 * MIB);
	for (uint64_t p = 0; p < 512; p++)
		punch_ok(h, 2 * MIB + p * PAGE, PAGE);
	st = gmem_stats(g);
	assert_int_equal(st.splits, 1);
	assert_int_equal(st.pages, 0);
	punch_ok(h, 0, 4 * MIB);
	pfn_ok(g, (2 * MIB + 5 * PAGE) / PAGE, NULL);
	st = gmem_stats(g);
	assert_int_equal(st.folios[1], 1);
	assert_int_equal(st.pages, 512);
	pm_gmem_put(g);
	close_ok(h);
	close_ok(vm);
	assert_int_equal(pool_in_use(), 0);
}

static void test_punching_a_whole_2m_page_frees_it(void **state)
{
	int vm = vm_new(SW_VM);
	int h = gmem_new(vm, 4 * MIB, 0);
	struct pm_gmem *g = gmem_ref(h);
	uint64_t before = pool_in_use();
	struct pm_gmem_stats st;

	alloc_ok(h, 0, 4 * MIB);
	assert_int_equal(gmem_stats(g).folios[1], 2);
	assert_int_equal(pool_in_use() - before, 4 * MIB);
	punch_ok(h, 2 * MIB, 2 * MIB);
	st = gmem_stats(g);
	assert_int_equal(st.splits, 0);
	assert_int_equal(st.folios[1], 1);
	assert_int_equal(st.pages, 512);
	assert_int_equal(pool_in_use() - before, 2 * MIB);
	/* A split page punched piece by piece is freed as well. */
	punch_ok(h, PAGE, PAGE);
	punch_ok(h, 0, PAGE);
	punch_ok(h, 2 * PAGE, 2 * MIB - 2 * PAGE);
	st = gmem_stats(g);
	assert_int_equal(st.splits, 1);
	assert_int_equal(st.pages, 0);
	assert_int_equal(st.folios[0] + st.folios[1] + st.folios[2], 0);
	assert_int_equal(pool_in_use(), before);
	pm_gmem_put(g);
	close_ok(h);
	close_ok(vm);
	assert_int_equal(pool_in_use(), 0);
}

/* ---- exhaustion --------------------------------------------------------- */

static void test_exhausted_pool_gives_enomem_leaks_nothing_and_recovers(void **state)
{
	uint64_t vm_mem;
	int vm, h;
	struct pm_gmem *g;

	pool_configure(8 * MIB);
	vm = vm_new(SW_VM);
	vm_mem = pool_in_use();                 /* the VM's own frames (page tables) */
	h = gmem_new(vm, 16 * MIB, 0);
	g = gmem_ref(h);

	assert_fails(pm_kvm_fallocate(h, KEEP, 0, 16 * MIB), ENOMEM);
	/* What was allocated before the pool ran dry stays in the file. */
	assert_int_equal(pool_in_use(), 8 * MIB);
	assert_int_equal(gmem_stats(g).pages * PAGE, pool_in_use() - vm_mem);
	assert_fails(pm_kvm_fallocate(h, KEEP, 15 * MIB, PAGE), ENOMEM);
	assert_true(pool_stats().alloc_failures > 0);

	punch_ok(h, 0, 16 * MIB);
	assert_int_equal(pool_in_use(), vm_mem);
	alloc_ok(h, 8 * MIB, 4 * MIB);        /* the pool works again */
	assert_int_equal(pool_in_use() - vm_mem, 4 * MIB);

	pm_gmem_put(g);
	close_ok(h);
	assert_int_equal(pool_in_use(), vm_mem);
	h = gmem_new(vm, 8 * MIB, PM_GUEST_MEMFD_FLAG_NO_HUGE);
	alloc_ok(h, 0, 8 * MIB - PM_ALIGN_UP(vm_mem, PAGE));
	close_ok(h);
	close_ok(vm);
	assert_int_equal(pool_in_use(), 0);
	pool_configure(POOL_SIZE);
}

/* ---- lifetime ----------------------------------------------------------- */

static void test_file_pins_the_vm_after_its_handle_is_closed(void **state)
{
	int vm = vm_new(DEFAULT_VM);
	struct pm_vm *v = vm_ref(vm);
	int h = gmem_new(vm, 4 * MIB, SHARED);
	uint64_t before = pool_in_use();
	uint8_t *p;

	assert_int_equal(pm_ref_read(&v->refs), 3);   /* handle, file, ours */
	close_ok(vm);
	assert_int_equal(pm_ref_read(&v->refs), 2);   /* file, ours */

	alloc_ok(h, 0, 2 * MIB);
	p = map_ok(h, 4 * MIB, 0);
	p[3 * MIB] = 0x42;
	assert_int_equal(p[3 * MIB], 0x42);
	punch_ok(h, 0, PAGE);
	assert_true(pool_in_use() > before);
	unmap_ok(p, 4 * MIB);

	close_ok(h);
	assert_int_equal(pm_ref_read(&v->refs), 1);   /* the file let go */
	assert_int_equal(pool_in_use(), before);      /* only the VM's own frames */
	pm_vm_put(v);
	assert_int_equal(pool_in_use(), 0);
}

/* Reads slot s's state at gfn under RCU: present, and its file. */
static bool slot_at(struct pm_vm *vm, gfn_t gfn, struct pm_gmem **gmem)
{
	struct pm_memslot *s;

	pm_rcu_read_lock();
	s = pm_memslot_lookup(vm, gfn);
	if (s)
		*gmem = atomic_load(&s->gmem);
	pm_rcu_read_unlock();
	return s != NULL;
}

static void test_release_clears_bindings_and_zaps_the_slot(void **state)
{
	const uint64_t gpa = 64 * MIB, size = 2 * MIB;
	const gfn_t gfn = gpa / PAGE, npages = size / PAGE;
	int vm = vm_new(SW_VM);
	struct pm_vm *v = vm_ref(vm);
	uint64_t vm_mem = pool_in_use();        /* the VM's own frames */
	int h = gmem_new(vm, 4 * MIB, 0);
	struct pm_gmem *g = gmem_ref(h), *bound = NULL;
	uint64_t releases = pm_inval_count(&v->inval, PM_INVAL_CAUSE_RELEASE);
	struct pm_zaplog log;
	struct kvm_userspace_memory_region2 del = { .slot = 3, .flags = KVM_MEM_GUEST_MEMFD,
						    .guest_phys_addr = gpa };

	zap_log_attach(&log, vm);
	bind_ok(vm, 3, gpa, size, h, 2 * MIB);
	alloc_ok(h, 0, 4 * MIB);
	assert_true(slot_at(v, gfn, &bound));
	assert_ptr_equal(bound, g);
	pm_zaplog_reset(&log);

	pm_gmem_put(g);
	close_ok(h);                        /* the last reference: release */

	assert_true(slot_at(v, gfn + npages - 1, &bound));
	assert_null(bound);
	assert_int_equal(pm_zaplog_count(&log), 1);
	assert_true(pm_zaplog_seen(&log, gfn, gfn + npages, PM_INVAL_ALL, PM_INVAL_CAUSE_RELEASE));
	assert_int_equal(pm_inval_count(&v->inval, PM_INVAL_CAUSE_RELEASE), releases + 1);
	assert_int_equal(pool_in_use(), vm_mem);

	/* The orphaned slot can still be deleted. */
	assert_int_equal(pm_kvm_ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &del), 0);
	assert_false(slot_at(v, gfn, &bound));
	pm_vm_put(v);
	close_ok(vm);
	assert_int_equal(pool_in_use(), 0);
}

/* ---- punch hole invalidation -------------------------------------------- */

/* Two slots on one 1 MiB file: A = file pages [0, 64) at gfn 256,
 * B = file pages [128, 192) at gfn 4096. */
static void check_punch_zaps_bound_gfns(uint64_t flags, unsigned int filter)
{
	int vm = vm_new(SW_VM);
	int h = gmem_new(vm, 1 * MIB, flags);
	struct pm_zaplog log;

	zap_log_attach(&log, vm);
	bind_ok(vm, 1, 256 * PAGE, 64 * PAGE, h, 0);
	bind_ok(vm, 2, 4096 * PAGE, 64 * PAGE, h, 128 * PAGE);
	alloc_ok(h, 0, 1 * MIB);
	pm_zaplog_reset(&log);

	punch_ok(h, 32 * PAGE, 128 * PAGE);   /* file pages [32, 160) */
	assert_int_equal(pm_zaplog_count(&log), 2);
	assert_true(pm_zaplog_seen(&log, 256 + 32, 256 + 64, filter, PM_INVAL_CAUSE_PUNCH));
	assert_true(pm_zaplog_seen(&log, 4096, 4096 + 32, filter, PM_INVAL_CAUSE_PUNCH));

	pm_zaplog_reset(&log);
	punch_ok(h, 64 * PAGE, 64 * PAGE);    /* between the bindings */
	punch_ok(h, 192 * PAGE, 64 * PAGE);   /* after them */
	punch_ok(h, 1 * MIB, 1 * MIB);        /* past the end */
	assert_int_equal(pm_zaplog_count(&log), 0);

	/* Unallocated pages are invalidated all the same. */
	punch_ok(h, 191 * PAGE, 2 * PAGE);
	assert_int_equal(pm_zaplog_count(&log), 1);
	assert_true(pm_zaplog_seen(&log, 4096 + 63, 4096 + 64, filter, PM_INVAL_CAUSE_PUNCH));

	close_ok(h);
	close_ok(vm);
	assert_int_equal(pool_in_use(), 0);
}

static void test_punch_zaps_private_mappings_of_exactly_the_bound_gfns(void **state)
{
	check_punch_zaps_bound_gfns(0, PM_INVAL_PRIVATE);
}

static void test_punch_of_mmap_file_zaps_all_mappings_of_exactly_the_bound_gfns(void **state)
{
	check_punch_zaps_bound_gfns(MMAP, PM_INVAL_ALL);
}

/* A punch over a file bound to more memslots than there are invalidation
 * range slots (64) completes and zaps every binding (it used to wait for a
 * free slot while holding all the others). */
static void test_punch_over_more_bindings_than_range_slots_completes(void **state)
{
	enum { N = PM_INVAL_MAX_RANGES + 6 };
	int vm = vm_new(SW_VM);
	int h = gmem_new(vm, N * PAGE, 0);
	struct pm_zaplog log;

	zap_log_attach(&log, vm);
	for (int i = 0; i < N; i++)
		bind_ok(vm, (uint32_t)i, (uint64_t)i * 2 * MIB, PAGE, h, (uint64_t)i * PAGE);
	alloc_ok(h, 0, N * PAGE);
	pm_zaplog_reset(&log);
	punch_ok(h, 0, N * PAGE);
	assert_int_equal(pm_zaplog_count(&log), N);
	for (int i = 0; i < PM_ZAPLOG_MAX; i++)
		assert_int_equal(log.ev[i].end - log.ev[i].start, 1);
	close_ok(h);
	close_ok(vm);
	assert_int_equal(pool_in_use(), 0);
}

/* ---- concurrency -------------------------------------------------------- */

struct stress {
	int handle;
	int iters;
	struct pm_gmem *g;
	uint64_t npages;
	uint64_t seed;
	int mode;               /* KEEP, PUNCH, or -1 for the get_pfn reader */
	unsigned long errors;   /* calls that failed */
};

/* A random range of up to 1024 pages starting inside the file (punches may
 * run past the end). */
static void stress_range(struct stress *s, uint64_t *off, uint64_t *len)
{
	uint64_t first = rng_next(&s->seed) % s->npages;
	uint64_t n = 1 + rng_next(&s->seed) % 1024;

	if (s->mode == KEEP)
		n = PM_MIN(n, s->npages - first);
	*off = first * PAGE;
	*len = n * PAGE;
}

static void *stress_thread(void *arg)
{
	struct stress *s = arg;

	for (int i = 0; i < s->iters; i++) {
		uint64_t off, len;

		if (s->mode < 0) {
			pm_pfn_t pfn;
			unsigned int order;

			for (int j = 0; j < 16; j++) {
				uint64_t index = rng_next(&s->seed) % s->npages;

				if (pm_gmem_get_pfn(s->g, index, index, &pfn, &order) ||
				    pfn >= pm_pool_nr_frames() ||
				    (order != PM_ORDER_4K && order != PM_ORDER_2M))
					s->errors++;
			}
			continue;
		}
		stress_range(s, &off, &len);
		if (pm_kvm_fallocate(s->handle, s->mode, (off_t)off, (off_t)len))
			s->errors++;
	}
	return NULL;
}

/* 2 punchers, 2 allocators and a get_pfn reader on one file, `iters` calls
 * (of 16 lookups for the reader) each. */
static void run_stress(int h, uint64_t size, int iters, uint64_t seed)
{
	static const int modes[] = { PUNCH, PUNCH, KEEP, KEEP, -1 };
	struct stress s[PM_ARRAY_SIZE(modes)];
	pthread_t t[PM_ARRAY_SIZE(modes)];
	struct pm_gmem *g = gmem_ref(h);
	struct pm_gmem_stats st;
	struct stat sb;

	for (size_t i = 0; i < PM_ARRAY_SIZE(modes); i++) {
		s[i] = (struct stress){ .handle = h, .iters = iters, .g = g, .npages = size / PAGE,
					.seed = seed * 131 + i + 1, .mode = modes[i] };
		assert_int_equal(pthread_create(&t[i], NULL, stress_thread, &s[i]), 0);
	}
	for (size_t i = 0; i < PM_ARRAY_SIZE(modes); i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(s[i].errors, 0);
	}
	st = gmem_stats(g);
	assert_int_equal(st.pages, st.folios[0] + (st.folios[1] << 9) + (st.folios[2] << 18));
	assert_int_equal(pm_kvm_fstat(h, &sb), 0);
	assert_int_equal(sb.st_blocks, st.pages * (PAGE / 512));
	pm_gmem_put(g);
}

static void test_concurrent_punch_and_allocate_leak_nothing(void **state)
{
	int vm = vm_new(SW_VM);
	uint64_t vm_mem = pool_in_use();        /* the VM's own frames */
	int h = gmem_new(vm, 32 * MIB, 0);
	struct pm_gmem *g = gmem_ref(h);
	struct pm_zaplog log;

	zap_log_attach(&log, vm);
	bind_ok(vm, 0, 0, 16 * MIB, h, 8 * MIB);
	run_stress(h, 32 * MIB, 300, 1);
	assert_int_equal(gmem_stats(g).pages * PAGE, pool_in_use() - vm_mem);
	assert_true(pm_zaplog_count(&log) > 0);
	pm_gmem_put(g);
	close_ok(h);
	close_ok(vm);
	assert_int_equal(pool_in_use(), 0);
}

static void test_concurrent_punch_and_allocate_under_a_view_leak_nothing(void **state)
{
	const uint64_t size = 16 * MIB;
	int vm = vm_new(DEFAULT_VM);
	uint64_t vm_mem = pool_in_use();        /* the VM's own frames */
	int h = gmem_new(vm, size, SHARED);
	struct pm_gmem *g = gmem_ref(h);
	uint8_t *p = map_ok(h, size, 0);

	run_stress(h, size, 150, 2);   /* every allocation remaps the view: slower */
	/* Afterwards the view shows exactly the file's frames. */
	for (uint64_t i = 0; i < size / PAGE; i++) {
		uint8_t v = 0;

		page_hva(g, i)[i % PAGE] = (uint8_t)(i | 1);
		assert_false(pm_test_sigbus(p + i * PAGE + i % PAGE, false, &v));
		assert_int_equal(v, (uint8_t)(i | 1));
	}
	assert_int_equal(gmem_stats(g).pages * PAGE, pool_in_use() - vm_mem);
	unmap_ok(p, size);
	pm_gmem_put(g);
	close_ok(h);
	close_ok(vm);
	assert_int_equal(pool_in_use(), 0);
}

/* Threads racing punch hole on an INIT_SHARED file A, whose pages are never
 * written: a reader of A's view, an allocator of A, and a writer filling the
 * pages of another file B with 0xee (frames A frees may become B's). */
struct punch_race {
	int a, b;                       /* handles */
	const uint8_t *view;            /* of A */
	size_t len;                     /* of A */
	atomic_bool stop;
	atomic_ulong rounds;                     /* written by the reader only */
	unsigned long sigbus, nonzero;           /* the reader's; read after join */
	unsigned long errors;                    /* written by the writer only */
	unsigned long alloc_errors;              /* written by the allocator only */
};

static void *race_reader(void *arg)
{
	struct punch_race *r = arg;

	while (!atomic_load(&r->stop)) {
		for (size_t off = 0; off < r->len; off += PAGE) {
			uint8_t v = 0;

			if (pm_test_sigbus((void *)(r->view + off + (off / PAGE) % PAGE), false, &v))
				r->sigbus++;
			else if (v)
				r->nonzero++;
		}
		atomic_fetch_add(&r->rounds, 1);
	}
	return NULL;
}

static void *race_allocator(void *arg)
{
	struct punch_race *r = arg;

	while (!atomic_load(&r->stop))
		if (pm_kvm_fallocate(r->a, KEEP, 0, (off_t)r->len))
			r->alloc_errors++;
	return NULL;
}

static void *race_writer(void *arg)
{
	struct punch_race *r = arg;
	struct pm_file f;
	struct stat st;

	if (pm_handle_get(r->b, &f) || pm_kvm_fstat(r->b, &st)) {
		r->errors++;
		return NULL;
	}
	while (!atomic_load(&r->stop)) {
		for (uint64_t i = 0; i < (uint64_t)st.st_size / PAGE; i++) {
			pm_pfn_t pfn;
			unsigned int order;

			if (pm_gmem_get_pfn(f.obj, i, i, &pfn, &order))
				r->errors++;
			else
				memset(pm_pfn_to_hva(pfn), 0xee, PAGE);
		}
		if (pm_kvm_fallocate(r->b, PUNCH, 0, st.st_size))
			r->errors++;
	}
	pm_file_put(&f);
	return NULL;
}

/*
 * Linux: a host access to a shared page while the page is punched sees the
 * old page or a new zeroed one (the fault allocates it): never SIGBUS, and
 * never a frame that was freed and handed to someone else.
 */
static void test_host_reads_racing_punch_hole_see_zero_never_sigbus_nor_foreign_data(void **state)
{
	void *(*const fns[])(void *) = { race_reader, race_allocator, race_writer };
	int vm = vm_new(DEFAULT_VM);
	struct punch_race r = { .len = 2 * MIB };
	pthread_t t[PM_ARRAY_SIZE(fns)];

	r.a = gmem_new(vm, r.len, SHARED);
	r.b = gmem_new(vm, 4 * MIB, PM_GUEST_MEMFD_FLAG_NO_HUGE);
	r.view = map_ok(r.a, r.len, 0);
	for (size_t i = 0; i < PM_ARRAY_SIZE(fns); i++)
		assert_int_equal(pthread_create(&t[i], NULL, fns[i], &r), 0);
	for (int i = 0; i < 300 || (i < 100000 && atomic_load(&r.rounds) < 5); i++)
		punch_ok(r.a, (i % 2) * MIB, MIB + (i % 3) * MIB);
	atomic_store(&r.stop, true);
	for (size_t i = 0; i < PM_ARRAY_SIZE(fns); i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	unmap_ok((void *)r.view, r.len);
	close_ok(r.a);
	close_ok(r.b);
	close_ok(vm);
	assert_int_equal(pool_in_use(), 0);
	assert_int_equal(r.errors + r.alloc_errors, 0);
	assert_true(atomic_load(&r.rounds) > 0);
	if (r.nonzero || r.sigbus)
		print_message("%lu rounds of reads: %lu SIGBUS, %lu non-zero bytes\n",
			      atomic_load(&r.rounds), r.sigbus, r.nonzero);
	assert_int_equal(r.nonzero, 0);
	assert_int_equal(r.sigbus, 0);
}

/* ---- concurrency: the index under its stripes --------------------------- */

#define CONC_THREADS 4
#define BLOCK_PAGES  512        /* 4K pages in a 2M block */

static bool page_present(struct pm_gmem *g, uint64_t index)
{
	return pm_gmem_peek_pfn(g, index) != PM_PFN_INVALID;
}

/*
 * Threads owning disjoint 4K chunks (chunk c belongs to thread c % threads,
 * so every 2M block, index node and cache line of entries is shared by all
 * of them) allocate and punch ranges of their own chunks.
 */
#define OWN_CHUNK 8

struct chunk_owner {
	int handle;
	unsigned int id;
	uint64_t nchunks;       /* of the file */
	uint64_t seed;
	int iters;
	uint8_t *want;          /* per page, allocated; a thread writes its own pages only */
	unsigned long errors;
};

static void *chunk_owner_thread(void *arg)
{
	struct chunk_owner *o = arg;

	for (int i = 0; i < o->iters; i++) {
		uint64_t c = rng_next(&o->seed) % (o->nchunks / CONC_THREADS) * CONC_THREADS + o->id;
		uint64_t a = rng_next(&o->seed) % OWN_CHUNK;
		uint64_t n = 1 + rng_next(&o->seed) % (OWN_CHUNK - a);
		bool alloc = rng_next(&o->seed) & 1;
		uint64_t first = c * OWN_CHUNK + a;

		if (pm_kvm_fallocate(o->handle, alloc ? KEEP : PUNCH, (off_t)(first * PAGE),
				     (off_t)(n * PAGE)))
			o->errors++;
		memset(&o->want[first], alloc, n);
	}
	return NULL;
}

static void test_concurrent_4k_allocate_and_punch_of_disjoint_ranges_leave_the_exact_index(void **state)
{
	const uint64_t npages = 8 * MIB / PAGE;
	int vm = vm_new(SW_VM);
	uint64_t before = pool_in_use();
	int h = gmem_new(vm, npages * PAGE, PM_GUEST_MEMFD_FLAG_NO_HUGE);
	struct pm_gmem *g = gmem_ref(h);
	uint8_t *want = calloc(npages, 1);
	struct chunk_owner o[CONC_THREADS];
	pthread_t t[CONC_THREADS];
	struct pm_gmem_stats st;
	uint64_t count = 0;

	assert_non_null(want);
	for (unsigned int i = 0; i < CONC_THREADS; i++) {
		o[i] = (struct chunk_owner){ .handle = h, .id = i, .nchunks = npages / OWN_CHUNK,
					     .seed = 77 + i, .iters = 3000, .want = want };
		assert_int_equal(pthread_create(&t[i], NULL, chunk_owner_thread, &o[i]), 0);
	}
	for (unsigned int i = 0; i < CONC_THREADS; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(o[i].errors, 0);
	}
	for (uint64_t i = 0; i < npages; i++) {
		assert_int_equal(page_present(g, i), want[i]);
		count += want[i];
	}
	assert_true(count > 0 && count < npages);
	st = gmem_stats(g);
	assert_int_equal(st.pages, count);
	assert_int_equal(st.folios[0], count);
	assert_int_equal(st.folios[1] + st.folios[2] + st.splits, 0);
	assert_int_equal(pool_in_use() - before, count * PAGE);
	free(want);
	pm_gmem_put(g);
	close_ok(h);
	close_ok(vm);
	assert_int_equal(pool_in_use(), 0);
}

/*
 * A 2M block of a file that allows 2M pages, as gmem.h specifies it: empty,
 * one 2M page (an fallocate of the whole empty block), or a node of 4K
 * entries (a smaller fallocate of it; the node stays when partly punched,
 * even empty, and goes with a punch of the whole block).
 */
enum block_state { BLOCK_EMPTY, BLOCK_FOLIO, BLOCK_NODE };

struct block_model {
	enum block_state state;
	uint8_t present[BLOCK_PAGES];
	unsigned long splits;
};

static void block_allocate(struct block_model *b, unsigned int a, unsigned int e)
{
	if (b->state == BLOCK_EMPTY && a == 0 && e == BLOCK_PAGES) {
		b->state = BLOCK_FOLIO;
		memset(b->present, 1, BLOCK_PAGES);
	} else if (b->state != BLOCK_FOLIO) {
		b->state = BLOCK_NODE;
		memset(&b->present[a], 1, e - a);
	}
}

static void block_punch(struct block_model *b, unsigned int a, unsigned int e)
{
	bool whole = a == 0 && e == BLOCK_PAGES;

	if (b->state == BLOCK_EMPTY)
		return;
	if (b->state == BLOCK_FOLIO && !whole) {
		b->state = BLOCK_NODE;
		b->splits++;
	}
	memset(&b->present[a], 0, e - a);
	if (whole)
		b->state = BLOCK_EMPTY;
}

struct block_owner {
	int handle;
	unsigned int id;
	uint64_t nblocks;       /* of the file */
	uint64_t seed;
	int iters;
	struct block_model *model;  /* per block; a thread writes its own blocks only */
	unsigned long errors;
};

static void *block_owner_thread(void *arg)
{
	struct block_owner *o = arg;

	for (int i = 0; i < o->iters; i++) {
		uint64_t bl = rng_next(&o->seed) % (o->nblocks / CONC_THREADS) * CONC_THREADS + o->id;
		unsigned int kind = (unsigned int)(rng_next(&o->seed) % 8);
		unsigned int a = (unsigned int)(rng_next(&o->seed) % BLOCK_PAGES);
		unsigned int e = a + 1 + (unsigned int)(rng_next(&o->seed) % (BLOCK_PAGES - a));
		bool alloc = kind % 2;

		if (kind < 2) {         /* the whole block */
			a = 0;
			e = BLOCK_PAGES;
		}
		if (pm_kvm_fallocate(o->handle, alloc ? KEEP : PUNCH,
				     (off_t)((bl * BLOCK_PAGES + a) * PAGE), (off_t)((e - a) * PAGE)))
			o->errors++;
		if (alloc)
			block_allocate(&o->model[bl], a, e);
		else
			block_punch(&o->model[bl], a, e);
	}
	return NULL;
}

/* Threads owning disjoint 2M blocks (neighbours: their entries share index
 * nodes and cache lines) allocate, split and punch them; afterwards every
 * page, page size and statistic is exactly what the model says. */
static void test_statistics_are_exact_after_concurrent_huge_page_conversions(void **state)
{
	const uint64_t nblocks = 16;
	int vm = vm_new(SW_VM);
	uint64_t before = pool_in_use();
	int h = gmem_new(vm, nblocks * 2 * MIB, PM_GUEST_MEMFD_FLAG_NO_1G);
	struct pm_gmem *g = gmem_ref(h);
	struct block_model *model = calloc(nblocks, sizeof(*model));
	struct block_owner o[CONC_THREADS];
	pthread_t t[CONC_THREADS];
	struct pm_gmem_stats st;
	uint64_t pages = 0, folios0 = 0, folios1 = 0, splits = 0;

	assert_non_null(model);
	for (unsigned int i = 0; i < CONC_THREADS; i++) {
		o[i] = (struct block_owner){ .handle = h, .id = i, .nblocks = nblocks,
					     .seed = 991 + i, .iters = 600, .model = model };
		assert_int_equal(pthread_create(&t[i], NULL, block_owner_thread, &o[i]), 0);
	}
	for (unsigned int i = 0; i < CONC_THREADS; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(o[i].errors, 0);
	}
	for (uint64_t bl = 0; bl < nblocks; bl++) {
		struct block_model *b = &model[bl];

		for (unsigned int i = 0; i < BLOCK_PAGES; i++) {
			uint64_t index = bl * BLOCK_PAGES + i;
			unsigned int order;

			assert_int_equal(page_present(g, index), b->present[i]);
			if (!b->present[i])
				continue;
			pfn_ok(g, index, &order);
			assert_int_equal(order, b->state == BLOCK_FOLIO ? PM_ORDER_2M : PM_ORDER_4K);
			pages++;
			folios0 += b->state == BLOCK_NODE;
		}
		folios1 += b->state == BLOCK_FOLIO;
		splits += b->splits;
	}
	assert_true(folios1 > 0 && folios0 > 0 && splits > 0);
	st = gmem_stats(g);
	assert_int_equal(st.pages, pages);
	assert_int_equal(st.folios[0], folios0);
	assert_int_equal(st.folios[1], folios1);
	assert_int_equal(st.folios[2], 0);
	assert_int_equal(st.splits, splits);
	assert_int_equal(pool_in_use() - before, pages * PAGE);
	free(model);
	pm_gmem_put(g);
	close_ok(h);
	close_ok(vm);
	assert_int_equal(pool_in_use(), 0);
}

/*
 * Rounds of three threads starting together, each allocating or punching a
 * random range (the ranges overlap and cross a 2M boundary). After each
 * round the index must be what one of the six serial orders of the three
 * calls gives: a call is atomic with respect to the others.
 */
#define OVL_THREADS 3

struct ovl_op {
	int mode;               /* KEEP or PUNCH */
	uint64_t first, n;      /* pages */
};

struct ovl {
	int handle;
	pthread_barrier_t start, done;
	struct ovl_op op[OVL_THREADS];  /* written by the main thread between rounds */
	bool stop;                      /* likewise */
	unsigned long errors[OVL_THREADS];
};

struct ovl_thread_arg {
	struct ovl *o;
	unsigned int id;
};

static void *ovl_thread(void *arg)
{
	struct ovl_thread_arg *a = arg;
	struct ovl *o = a->o;

	for (;;) {
		const struct ovl_op *op = &o->op[a->id];

		pthread_barrier_wait(&o->start);
		if (o->stop)
			return NULL;
		if (pm_kvm_fallocate(o->handle, op->mode, (off_t)(op->first * PAGE), (off_t)(op->n * PAGE)))
			o->errors[a->id]++;
		pthread_barrier_wait(&o->done);
	}
}

static void ovl_apply(uint8_t *pages, const struct ovl_op *op)
{
	memset(&pages[op->first], op->mode == KEEP, op->n);
}

/* `rounds` rounds on a NO_HUGE file of `npages`, each op starting in the
 * file's first half and `len_max` pages long at most. */
static void check_overlapping_rounds(uint64_t npages, uint64_t len_max, int rounds, uint64_t seed)
{
	static const unsigned int orders[6][OVL_THREADS] = {
		{ 0, 1, 2 }, { 0, 2, 1 }, { 1, 0, 2 }, { 1, 2, 0 }, { 2, 0, 1 }, { 2, 1, 0 },
	};
	int vm = vm_new(SW_VM);
	uint64_t before = pool_in_use();
	int h = gmem_new(vm, npages * PAGE, PM_GUEST_MEMFD_FLAG_NO_HUGE);
	struct pm_gmem *g = gmem_ref(h);
	uint8_t *cur = calloc(npages, 1), *got = malloc(npages), *serial = malloc(npages);
	struct ovl_thread_arg args[OVL_THREADS];
	pthread_t t[OVL_THREADS];
	struct ovl o = { .handle = h };
	struct pm_gmem_stats st;
	uint64_t count = 0;

	assert_true(cur && got && serial);
	pthread_barrier_init(&o.start, NULL, OVL_THREADS + 1);
	pthread_barrier_init(&o.done, NULL, OVL_THREADS + 1);
	for (unsigned int i = 0; i < OVL_THREADS; i++) {
		args[i] = (struct ovl_thread_arg){ .o = &o, .id = i };
		assert_int_equal(pthread_create(&t[i], NULL, ovl_thread, &args[i]), 0);
	}
	for (int round = 0; round < rounds; round++) {
		bool serialisable = false;

		for (unsigned int i = 0; i < OVL_THREADS; i++) {
			struct ovl_op *op = &o.op[i];
			uint64_t n = 1 + rng_next(&seed) % len_max;

			op->mode = rng_next(&seed) % 2 ? KEEP : PUNCH;
			op->first = rng_next(&seed) % (npages / 2);
			op->n = PM_MIN(n, npages - op->first);
		}
		pthread_barrier_wait(&o.start);
		pthread_barrier_wait(&o.done);
		for (uint64_t i = 0; i < npages; i++)
			got[i] = page_present(g, i);
		for (size_t k = 0; k < PM_ARRAY_SIZE(orders) && !serialisable; k++) {
			memcpy(serial, cur, npages);
			for (unsigned int i = 0; i < OVL_THREADS; i++)
				ovl_apply(serial, &o.op[orders[k][i]]);
			serialisable = !memcmp(serial, got, npages);
		}
		assert_true(serialisable);
		memcpy(cur, got, npages);
	}
	o.stop = true;
	pthread_barrier_wait(&o.start);
	for (unsigned int i = 0; i < OVL_THREADS; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(o.errors[i], 0);
	}
	pthread_barrier_destroy(&o.start);
	pthread_barrier_destroy(&o.done);
	for (uint64_t i = 0; i < npages; i++)
		count += cur[i];
	st = gmem_stats(g);
	assert_int_equal(st.pages, count);
	assert_int_equal(st.folios[0], count);
	assert_int_equal(pool_in_use() - before, count * PAGE);
	free(cur);
	free(got);
	free(serial);
	pm_gmem_put(g);
	close_ok(h);
	close_ok(vm);
	assert_int_equal(pool_in_use(), 0);
}

static void test_concurrent_allocate_and_punch_of_overlapping_ranges_serialise(void **state)
{
	/* Ranges of one or two 2M blocks: each call locks its blocks' stripes. */
	check_overlapping_rounds(2 * BLOCK_PAGES, BLOCK_PAGES, 300, 4242);
	/* 48 blocks hashed over the stripes; calls over 32 blocks or more
	 * take every stripe, and meet calls that take a few. */
	check_overlapping_rounds(48 * BLOCK_PAGES, 40 * BLOCK_PAGES, 25, 4343);
}

/*
 * Punches racing a memslot bound to and unbound from the file again and
 * again: every call completes, and a punch invalidates gfns of the slot
 * only (a punch holds the bindings for its whole duration, so it never
 * reads a binding being changed).
 */
struct bind_race {
	int handle;
	uint64_t npages;
	uint64_t seed;
	atomic_bool *stop;
	atomic_ulong punches;
	unsigned long errors;   /* this puncher's */
};

static void *bind_race_puncher(void *arg)
{
	struct bind_race *r = arg;

	while (!atomic_load(r->stop)) {
		uint64_t first = rng_next(&r->seed) % r->npages;
		uint64_t n = 1 + rng_next(&r->seed) % (r->npages / 2);

		if (pm_kvm_fallocate(r->handle, PUNCH, (off_t)(first * PAGE), (off_t)(n * PAGE)))
			r->errors++;
		atomic_fetch_add(&r->punches, 1);
	}
	return NULL;
}

static unsigned long bind_race_punches(struct bind_race *r, size_t n)
{
	unsigned long sum = 0;

	for (size_t i = 0; i < n; i++)
		sum += atomic_load(&r[i].punches);
	return sum;
}

static void test_punches_racing_memslot_bind_and_unbind_zap_only_the_slot(void **state)
{
	const uint64_t npages = 2048, gfn = 0x10000, slot_pages = 1024, offset = 512 * PAGE;
	struct kvm_userspace_memory_region2 del = { .slot = 0, .flags = KVM_MEM_GUEST_MEMFD,
						    .guest_phys_addr = gfn * PAGE };
	int vm = vm_new(SW_VM);
	int h = gmem_new(vm, npages * PAGE, PM_GUEST_MEMFD_FLAG_NO_HUGE);
	struct bind_race r[2];
	pthread_t t[PM_ARRAY_SIZE(r)];
	atomic_bool stop = false;
	unsigned int punch_zaps = 0;
	struct pm_zaplog log;

	zap_log_attach(&log, vm);
	alloc_ok(h, 0, npages * PAGE);
	for (size_t i = 0; i < PM_ARRAY_SIZE(r); i++) {
		r[i] = (struct bind_race){ .handle = h, .npages = npages, .seed = 600 + i, .stop = &stop };
		assert_int_equal(pthread_create(&t[i], NULL, bind_race_puncher, &r[i]), 0);
	}
	for (int round = 0; round < 200; round++) {
		unsigned long seen;

		bind_ok(vm, 0, gfn * PAGE, slot_pages * PAGE, h, offset);
		/* Three punches end: at least one began after the bind. */
		seen = bind_race_punches(r, PM_ARRAY_SIZE(r));
		while (bind_race_punches(r, PM_ARRAY_SIZE(r)) < seen + 3)
			sched_yield();
		assert_int_equal(pm_kvm_ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &del), 0);
	}
	atomic_store(&stop, true);
	for (size_t i = 0; i < PM_ARRAY_SIZE(r); i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(r[i].errors, 0);
	}
	pthread_mutex_lock(&log.lock);
	for (unsigned int i = 0; i < PM_MIN(log.n, (unsigned int)PM_ZAPLOG_MAX); i++) {
		const struct pm_zap *z = &log.ev[i];

		if (z->cause != PM_INVAL_CAUSE_PUNCH)
			continue;
		punch_zaps++;
		assert_true(z->start >= gfn && z->start < z->end && z->end <= gfn + slot_pages);
	}
	pthread_mutex_unlock(&log.lock);
	assert_true(punch_zaps > 0);
	close_ok(h);
	close_ok(vm);
	assert_int_equal(pool_in_use(), 0);
}

/*
 * Rounds of threads allocating pages of one empty huge block at once (half
 * through a fault's pm_gmem_get_pfn, half through fallocate): they all end
 * up in the one page of the block's size that was allocated, nothing leaks.
 */
struct same_block {
	int handle;
	struct pm_gmem *g;
	pthread_barrier_t start, done;
	uint64_t index[CONC_THREADS];   /* written by the main thread between rounds */
	uint64_t span;                  /* pages of the page size raced for; likewise */
	bool stop;                      /* likewise */
	pm_pfn_t pfn[CONC_THREADS];     /* written by thread i, read after `done` */
	unsigned long errors[CONC_THREADS];
};

struct same_block_arg {
	struct same_block *s;
	unsigned int id;
};

static void *same_block_thread(void *arg)
{
	struct same_block_arg *a = arg;
	struct same_block *s = a->s;

	for (;;) {
		uint64_t index;
		unsigned int order;

		pthread_barrier_wait(&s->start);
		if (s->stop)
			return NULL;
		index = s->index[a->id];
		if (a->id % 2) {
			/* The whole page raced for: a smaller fallocate
			 * would populate 4K pages. */
			if (pm_kvm_fallocate(s->handle, KEEP,
					     (off_t)(PM_ALIGN_DOWN(index, s->span) * PAGE),
					     (off_t)(s->span * PAGE)))
				s->errors[a->id]++;
			s->pfn[a->id] = pm_gmem_peek_pfn(s->g, index);
		} else if (pm_gmem_get_pfn(s->g, index, index, &s->pfn[a->id], &order)) {
			s->errors[a->id]++;
		}
		pthread_barrier_wait(&s->done);
	}
}

static void check_same_block_race(uint64_t size, uint64_t flags, unsigned int order, int rounds)
{
	const uint64_t span = 1ULL << order;
	int vm = vm_new(SW_VM);
	uint64_t before = pool_in_use();
	int h = gmem_new(vm, size, flags);
	struct same_block s = { .handle = h, .g = gmem_ref(h), .span = span };
	struct same_block_arg args[CONC_THREADS];
	pthread_t t[CONC_THREADS];
	uint64_t seed = 5 + order;

	pthread_barrier_init(&s.start, NULL, CONC_THREADS + 1);
	pthread_barrier_init(&s.done, NULL, CONC_THREADS + 1);
	for (unsigned int i = 0; i < CONC_THREADS; i++) {
		args[i] = (struct same_block_arg){ .s = &s, .id = i };
		assert_int_equal(pthread_create(&t[i], NULL, same_block_thread, &args[i]), 0);
	}
	for (int round = 0; round < rounds; round++) {
		uint64_t base = rng_next(&seed) % (size / PAGE / span) * span;
		uint64_t page = rng_next(&seed) % span;
		struct pm_gmem_stats st;

		/* 4K: all on one page; huge: on pages of different 2M blocks. */
		for (unsigned int i = 0; i < CONC_THREADS; i++)
			s.index[i] = base + (order ? (page + i * BLOCK_PAGES * 3) % span : page);
		pthread_barrier_wait(&s.start);
		pthread_barrier_wait(&s.done);
		for (unsigned int i = 0; i < CONC_THREADS; i++) {
			unsigned int got;

			assert_int_equal(s.errors[i], 0);
			assert_int_equal(s.pfn[i] - (s.index[i] - base), s.pfn[0] - (s.index[0] - base));
			assert_int_equal(pfn_ok(s.g, s.index[i], &got), s.pfn[i]);
			assert_int_equal(got, order);
		}
		st = gmem_stats(s.g);
		assert_int_equal(st.pages, span);
		assert_int_equal(st.folios[order / 9], 1);
		assert_int_equal(st.folios[0] + st.folios[1] + st.folios[2], 1);
		assert_int_equal(pool_in_use() - before, span * PAGE);
		punch_ok(h, 0, size);
	}
	s.stop = true;
	pthread_barrier_wait(&s.start);
	for (unsigned int i = 0; i < CONC_THREADS; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	pthread_barrier_destroy(&s.start);
	pthread_barrier_destroy(&s.done);
	assert_int_equal(gmem_stats(s.g).pages, 0);
	pm_gmem_put(s.g);
	close_ok(h);
	close_ok(vm);
	assert_int_equal(pool_in_use(), 0);
}

static void test_concurrent_allocations_of_one_page_give_one_page(void **state)
{
	check_same_block_race(4 * MIB, PM_GUEST_MEMFD_FLAG_NO_HUGE, PM_ORDER_4K, 200);
	check_same_block_race(8 * MIB, PM_GUEST_MEMFD_FLAG_NO_1G, PM_ORDER_2M, 100);
	/* A 1G page is inserted under every stripe of the file. */
	check_same_block_race(GIB, 0, PM_ORDER_1G, 1);
}

/*
 * A punch of part of a huge page (which splits it) races an allocator
 * asking for pages inside and outside the hole and a reader looking up
 * pages outside it: a lookup sees the huge page or the finished node, never
 * a half-built one, so pages outside the hole keep their frame all along;
 * an allocation inside the hole comes wholly before the punch (it gets the
 * old frame, which the punch then removes) or wholly after (a new, zeroed
 * 4K page, which stays).
 */
#define SPLIT_LOOKS 8           /* pages the allocator asks for, inside and outside */

struct split_race {
	int handle;
	struct pm_gmem *g;
	pthread_barrier_t start;
	uint64_t first, n;                      /* the hole, in pages */
	uint64_t inside[SPLIT_LOOKS], outside[SPLIT_LOOKS];
	unsigned int nr_inside;
	pm_pfn_t head;                          /* of the huge page, at file page 0 */
	pm_pfn_t got[SPLIT_LOOKS];              /* the allocator's, for inside[] */
	unsigned int got_order[SPLIT_LOOKS];
	atomic_bool punched;
	unsigned long punch_errors, alloc_errors;   /* the puncher's, the allocator's */
	unsigned long reader_errors, reader_rounds; /* the reader's */
};

static void *split_puncher(void *arg)
{
	struct split_race *r = arg;

	pthread_barrier_wait(&r->start);
	if (pm_kvm_fallocate(r->handle, PUNCH, (off_t)(r->first * PAGE), (off_t)(r->n * PAGE)))
		r->punch_errors++;
	atomic_store(&r->punched, true);
	return NULL;
}

static void *split_allocator(void *arg)
{
	struct split_race *r = arg;

	pthread_barrier_wait(&r->start);
	for (unsigned int j = 0; j < SPLIT_LOOKS; j++) {
		pm_pfn_t pfn;
		unsigned int order;

		if (j < r->nr_inside &&
		    pm_gmem_get_pfn(r->g, r->inside[j], r->inside[j], &r->got[j], &r->got_order[j]))
			r->alloc_errors++;
		if (pm_gmem_get_pfn(r->g, r->outside[j], r->outside[j], &pfn, &order) ||
		    pfn != r->head + r->outside[j])
			r->alloc_errors++;
	}
	return NULL;
}

static void *split_reader(void *arg)
{
	struct split_race *r = arg;
	bool last;

	pthread_barrier_wait(&r->start);
	do {
		last = atomic_load(&r->punched);
		for (unsigned int j = 0; j < SPLIT_LOOKS; j++)
			if (pm_gmem_peek_pfn(r->g, r->outside[j]) != r->head + r->outside[j])
				r->reader_errors++;
		r->reader_rounds++;
	} while (!last);
	return NULL;
}

static bool split_listed(const uint64_t *v, unsigned int n, uint64_t x)
{
	for (unsigned int i = 0; i < n; i++)
		if (v[i] == x)
			return true;
	return false;
}

/* Picks a hole inside one 2M block of the huge page (not all of it) and the
 * pages to look at, all distinct. */
static void split_pick(struct split_race *r, uint64_t span, uint64_t *seed)
{
	uint64_t block = rng_next(seed) % (span / BLOCK_PAGES) * BLOCK_PAGES;
	uint64_t a = rng_next(seed) % BLOCK_PAGES;

	r->first = block + a;
	r->n = 1 + rng_next(seed) % (BLOCK_PAGES - a);
	if (r->n == BLOCK_PAGES)
		r->n--;
	r->nr_inside = 0;
	while (r->nr_inside < PM_MIN(r->n, SPLIT_LOOKS)) {
		uint64_t p = r->first + rng_next(seed) % r->n;

		if (!split_listed(r->inside, r->nr_inside, p))
			r->inside[r->nr_inside++] = p;
	}
	for (unsigned int j = 0; j < SPLIT_LOOKS;) {
		/* Half of them next to the hole, in its 2M block. */
		uint64_t p = j % 2 ? rng_next(seed) % span : block + rng_next(seed) % BLOCK_PAGES;

		if ((p < r->first || p >= r->first + r->n) && !split_listed(r->outside, j, p))
			r->outside[j++] = p;
	}
}

static void check_split_race(uint64_t flags, unsigned int order, int rounds)
{
	void *(*const fns[])(void *) = { split_puncher, split_allocator, split_reader };
	const uint64_t span = 1ULL << order;
	int vm = vm_new(SW_VM);
	uint64_t before = pool_in_use();
	int h = gmem_new(vm, span * PAGE, flags);
	struct split_race r = { .handle = h, .g = gmem_ref(h) };
	pthread_t t[PM_ARRAY_SIZE(fns)];
	uint64_t seed = 31 + order;

	for (int round = 0; round < rounds; round++) {
		uint64_t after = 0;
		struct pm_gmem_stats st;
		unsigned int got;

		r.head = pfn_ok(r.g, 0, &got);
		assert_int_equal(got, order);
		split_pick(&r, span, &seed);
		for (unsigned int j = 0; j < SPLIT_LOOKS; j++) {
			*(uint8_t *)pm_pfn_to_hva(r.head + r.outside[j]) = 0xa5;
			if (j < r.nr_inside)
				*(uint8_t *)pm_pfn_to_hva(r.head + r.inside[j]) = 0xa5;
		}
		atomic_store(&r.punched, false);
		r.reader_rounds = 0;
		pthread_barrier_init(&r.start, NULL, PM_ARRAY_SIZE(fns));
		for (size_t i = 0; i < PM_ARRAY_SIZE(fns); i++)
			assert_int_equal(pthread_create(&t[i], NULL, fns[i], &r), 0);
		for (size_t i = 0; i < PM_ARRAY_SIZE(fns); i++)
			assert_int_equal(pthread_join(t[i], NULL), 0);
		pthread_barrier_destroy(&r.start);
		assert_int_equal(r.punch_errors + r.alloc_errors + r.reader_errors, 0);
		assert_true(r.reader_rounds > 0);

		for (unsigned int j = 0; j < SPLIT_LOOKS; j++) {
			assert_int_equal(pm_gmem_peek_pfn(r.g, r.outside[j]), r.head + r.outside[j]);
			assert_int_equal(*(uint8_t *)pm_pfn_to_hva(r.head + r.outside[j]), 0xa5);
		}
		for (unsigned int j = 0; j < r.nr_inside; j++) {
			uint64_t p = r.inside[j];

			if (r.got_order[j] == order) {          /* before the punch */
				assert_int_equal(r.got[j], r.head + p);
				assert_false(page_present(r.g, p));
			} else {        /* after it (perhaps the frame just freed) */
				assert_int_equal(r.got_order[j], PM_ORDER_4K);
				assert_int_equal(pm_gmem_peek_pfn(r.g, p), r.got[j]);
				assert_true(is_zero(pm_pfn_to_hva(r.got[j]), PAGE));
				after++;
			}
		}
		for (uint64_t p = r.first; p < r.first + r.n; p++)
			if (!split_listed(r.inside, r.nr_inside, p))
				assert_false(page_present(r.g, p));
		/* One split per level down to 4K; the other 2M blocks of a 1G
		 * page stay 2M pages. */
		st = gmem_stats(r.g);
		assert_int_equal(st.splits, order / 9);
		assert_int_equal(st.pages, span - r.n + after);
		assert_int_equal(st.folios[0], BLOCK_PAGES - r.n + after);
		assert_int_equal(st.folios[1], order == PM_ORDER_1G ? span / BLOCK_PAGES - 1 : 0);
		assert_int_equal(st.folios[2], 0);
		assert_int_equal(pool_in_use() - before, st.pages * PAGE);
		punch_ok(h, 0, span * PAGE);
		/* A new file each round would do as well; the counters restart. */
		pm_gmem_put(r.g);
		close_ok(h);
		h = gmem_new(vm, span * PAGE, flags);
		r.handle = h;
		r.g = gmem_ref(h);
	}
	pm_gmem_put(r.g);
	close_ok(h);
	close_ok(vm);
	assert_int_equal(pool_in_use(), 0);
}

static void test_punch_splitting_a_huge_page_races_allocations_and_lookups_in_it(void **state)
{
	check_split_race(PM_GUEST_MEMFD_FLAG_NO_1G, PM_ORDER_2M, 40);
	/* A 1G page is split under every stripe of the file. */
	check_split_race(0, PM_ORDER_1G, 1);
}

/* ---- memory failure (last: a poisoned frame never returns to the pool) -- */

static void test_poisoning_an_unallocated_page_is_enoent(void **state)
{
	int vm = vm_new(SW_VM);
	int h = gmem_new(vm, 4 * MIB, 0);
	struct pm_gmem *g = gmem_ref(h);

	assert_int_equal(pm_gmem_poison(g, 0), -ENOENT);
	assert_int_equal(pm_gmem_poison(g, 1023), -ENOENT);
	alloc_ok(h, 0, 2 * MIB);
	assert_int_equal(pm_gmem_poison(g, 512), -ENOENT);   /* the other 2M half */
	assert_int_equal(gmem_stats(g).poisoned, 0);
	assert_int_equal(gmem_stats(g).splits, 0);
	pm_gmem_put(g);
	close_ok(h);
	close_ok(vm);
	assert_int_equal(pool_in_use(), 0);
}

static void test_poisoned_page_gives_ehwpoison_and_its_frame_is_never_freed(void **state)
{
	uint64_t base = pool_in_use();
	int vm = vm_new(SW_VM);
	int h = gmem_new(vm, 4 * MIB, 0);
	struct pm_gmem *g = gmem_ref(h);
	uint64_t before = pool_in_use();
	struct pm_gmem_stats st;
	unsigned int order;
	pm_pfn_t head, pfn;

	alloc_ok(h, 0, 2 * MIB);
	head = pfn_ok(g, 0, &order);
	assert_int_equal(order, PM_ORDER_2M);

	assert_int_equal(pm_gmem_poison(g, 3), 0);
	assert_int_equal(pm_gmem_get_pfn(g, 3, 3, &pfn, &order), -EHWPOISON);
	assert_int_equal(pfn_ok(g, 2, &order), head + 2);      /* neighbours are fine */
	assert_int_equal(order, PM_ORDER_4K);
	assert_int_equal(pfn_ok(g, 4, NULL), head + 4);
	st = gmem_stats(g);
	assert_int_equal(st.poisoned, 1);
	assert_int_equal(st.splits, 1);
	assert_int_equal(st.pages, 512);

	/* Punching takes the page out of the file but not back to the pool. */
	punch_ok(h, 3 * PAGE, PAGE);
	st = gmem_stats(g);
	assert_int_equal(st.pages, 511);
	assert_int_equal(pool_in_use() - before, 2 * MIB);
	/* The hole gets a new, healthy frame. */
	pfn = pfn_ok(g, 3, NULL);
	assert_true(pfn != head + 3);
	assert_true(is_zero(pm_pfn_to_hva(pfn), PAGE));
	punch_ok(h, 0, 4 * MIB);
	assert_int_equal(pool_in_use() - before, PAGE);

	pm_gmem_put(g);
	close_ok(h);
	close_ok(vm);
	assert_int_equal(pool_in_use() - base, PAGE);
}

static void test_poisoned_page_of_a_closed_file_is_never_freed(void **state)
{
	uint64_t base = pool_in_use();
	int vm = vm_new(SW_VM);
	int h = gmem_new(vm, 8 * PAGE, PM_GUEST_MEMFD_FLAG_NO_HUGE);
	struct pm_gmem *g = gmem_ref(h);

	alloc_ok(h, 0, 8 * PAGE);
	assert_int_equal(pm_gmem_poison(g, 7), 0);
	assert_int_equal(pm_gmem_poison(g, 7), 0);             /* idempotent */
	assert_int_equal(gmem_stats(g).poisoned, 1);
	pm_gmem_put(g);
	close_ok(h);
	close_ok(vm);
	assert_int_equal(pool_in_use() - base, PAGE);
}

static void test_host_access_to_a_poisoned_shared_page_sigbuses(void **state)
{
	uint64_t base = pool_in_use();
	int vm = vm_new(DEFAULT_VM);
	int h = gmem_new(vm, 8 * PAGE, SHARED | PM_GUEST_MEMFD_FLAG_NO_HUGE);
	struct pm_gmem *g = gmem_ref(h);
	uint8_t *p = map_ok(h, 8 * PAGE, 0);

	memset(p, 0x11, 8 * PAGE);
	assert_int_equal(pm_gmem_poison(g, 2), 0);
	assert_true(read_sigbuses(p + 2 * PAGE));
	assert_true(write_sigbuses(p + 2 * PAGE + 5));
	assert_false(read_sigbuses(p + PAGE));
	assert_true(is_filled(p + 3 * PAGE, PAGE, 0x11));
	/* After a punch the page is a fresh one again. */
	punch_ok(h, 2 * PAGE, PAGE);
	assert_false(read_sigbuses(p + 2 * PAGE));
	assert_true(is_zero(p + 2 * PAGE, PAGE));

	unmap_ok(p, 8 * PAGE);
	pm_gmem_put(g);
	close_ok(h);
	close_ok(vm);
	assert_int_equal(pool_in_use() - base, PAGE);
}

/* ---- views own their addresses ------------------------------------------ */

/*
 * The library never maps anything over an address after the mmap that
 * returned it. A view mapped with MAP_FIXED over another view replaces it
 * (as in Linux): the replaced view is gone, its record with it, so one
 * pm_kvm_munmap unmaps the range and a second one is EINVAL. What the VMM
 * then maps there is its own: no later punch, allocation or mmap of the
 * file maps guest memory over it, and the file is released at its close.
 */
static void test_map_fixed_over_a_view_replaces_it_and_the_vmm_keeps_the_range(void **state)
{
	int vm = vm_new(DEFAULT_VM);
	int h = gmem_new(vm, 16 * PAGE, SHARED | PM_GUEST_MEMFD_FLAG_NO_HUGE);
	uint8_t *a = map_ok(h, 16 * PAGE, 0), *b, *vmm, *c;

	memset(a, 0x11, 16 * PAGE);
	b = pm_kvm_mmap(a, 16 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, h, 0);
	assert_ptr_equal(b, a);
	assert_true(is_filled(b, 16 * PAGE, 0x11));        /* the same file pages */
	unmap_ok(a, 16 * PAGE);
	assert_fails(pm_kvm_munmap(a, 16 * PAGE), EINVAL); /* one mapping, unmapped once */

	/* The VMM's own memory at the old address. */
	vmm = mmap(a, 16 * PAGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	assert_ptr_equal(vmm, a);
	memset(vmm, 0x77, 16 * PAGE);
	punch_ok(h, 2 * PAGE, 3 * PAGE);
	alloc_ok(h, 0, 16 * PAGE);
	c = map_ok(h, 16 * PAGE, 0);
	assert_true(is_filled(vmm, 16 * PAGE, 0x77));      /* untouched by the library */
	assert_true(is_zero(c + 2 * PAGE, 3 * PAGE));      /* the file never saw it */
	assert_true(is_filled(c + 5 * PAGE, 11 * PAGE, 0x11));
	assert_fails(pm_kvm_munmap(vmm, 16 * PAGE), EINVAL);
	unmap_ok(c, 16 * PAGE);
	assert_int_equal(munmap(vmm, 16 * PAGE), 0);
	close_ok(h);
	close_ok(vm);
	assert_int_equal(pool_in_use(), 0);                /* no mapping record kept the file */
}

/* ---- kvm_run ------------------------------------------------------------ */

static void guest_exit_twice(struct pm_guest *g, void *arg)
{
	pm_guest_sync(g, 0x5eed);
}

/*
 * A view mapped with MAP_FIXED over the VMM's kvm_run mapping replaces that
 * mapping, as in Linux: KVM's own kvm_run page is not the VMM's mapping of
 * it, so exits are never written into guest memory, and a new mmap of the
 * vCPU shows them.
 */
static void test_a_view_over_the_kvm_run_mapping_never_receives_kvm_run(void **state)
{
	int vm = vm_new(DEFAULT_VM);
	int h = gmem_new(vm, 4 * PAGE, SHARED | PM_GUEST_MEMFD_FLAG_NO_HUGE);
	int vcpu = pm_kvm_ioctl(vm, KVM_CREATE_VCPU, 0);
	struct pm_guest_entry e = { .fn = guest_exit_twice };
	struct kvm_run *run, *again;
	struct pm_ucall uc;
	uint8_t *view, *other;

	assert_true(vcpu >= 0);
	run = pm_kvm_mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	assert_ptr_not_equal(run, MAP_FAILED);
	view = pm_kvm_mmap(run, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, h, 0);
	assert_ptr_equal(view, run);
	assert_int_equal(pm_kvm_ioctl(vcpu, PM_KVM_SET_GUEST, &e), 0);
	assert_int_equal(pm_kvm_ioctl(vcpu, KVM_RUN, 0), 0);
	assert_int_equal(pm_get_ucall(vcpu, &uc), PM_UCALL_SYNC);
	assert_int_equal(uc.args[0], 0x5eed);
	/* The guest_memfd page holds nothing of the exit. */
	other = map_ok(h, 4 * PAGE, 0);
	assert_true(is_zero(other, 4 * PAGE));
	assert_true(is_zero(view, PAGE));
	again = pm_kvm_mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	assert_ptr_not_equal(again, MAP_FAILED);
	assert_int_equal(again->exit_reason, PM_EXIT_UCALL);
	unmap_ok(other, 4 * PAGE);
	unmap_ok(view, PAGE);
	assert_int_equal(pm_kvm_munmap(run, PAGE), 0);     /* the replaced kvm_run mapping's record */
	assert_int_equal(pm_kvm_munmap(again, PAGE), 0);
	close_ok(vcpu);
	close_ok(h);
	close_ok(vm);
	assert_int_equal(pool_in_use(), 0);
}

/* ---- pins --------------------------------------------------------------- */

/* Pins are indexed by file page: pinning and unpinning every page of a
 * 256 MiB file is linear (a scan per page would take tens of seconds; the
 * alarm only catches that, it times nothing). */
static void test_pinning_and_unpinning_256m_completes(void **state)
{
	const uint64_t size = 256 * MIB;
	int vm = vm_new(DEFAULT_VM);
	int h = gmem_new(vm, size, SHARED);
	struct pm_gmem_pin all = { .offset = 0, .size = size };
	struct pm_gmem_pin one = { .offset = 4095 * PAGE, .size = PAGE };

	alarm(10);
	assert_int_equal(pm_kvm_ioctl(h, PM_GUEST_MEMFD_PIN, &all), 0);
	assert_int_equal(pm_kvm_ioctl(h, PM_GUEST_MEMFD_PIN, &one), 0);    /* pins nest */
	assert_int_equal(pm_kvm_ioctl(h, PM_GUEST_MEMFD_UNPIN, &all), 0);
	assert_int_equal(pm_kvm_ioctl(h, PM_GUEST_MEMFD_UNPIN, &one), 0);
	assert_fails(pm_kvm_ioctl(h, PM_GUEST_MEMFD_UNPIN, &one), EINVAL);
	assert_int_equal(pm_kvm_ioctl(h, PM_GUEST_MEMFD_PIN, &all), 0);
	punch_ok(h, 0, size);                  /* drops every pin */
	assert_fails(pm_kvm_ioctl(h, PM_GUEST_MEMFD_UNPIN, &one), EINVAL);
	alarm(0);
	close_ok(h);
	close_ok(vm);
	assert_int_equal(pool_in_use(), 0);
}

/* ---- main --------------------------------------------------------------- */


static int group_setup(void **state)
{
	struct pm_pool_config cfg = { .size = POOL_SIZE, .watermark = POOL_WATERMARK };

	sys_handle = pm_kvm_open();
	if (sys_handle < 0)
		return -1;
	return pm_kvm_ioctl(sys_handle, PM_KVM_SET_POOL_CONFIG, &cfg) ? -1 : 0;
}

static int group_teardown(void **state)
{
	return pm_kvm_close(sys_handle) ? -1 : 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_rejects_every_flag_bit_outside_the_reported_mask),
		cmocka_unit_test(test_create_accepts_the_reported_mask_with_the_page_size_extensions),
		cmocka_unit_test(test_page_size_flags_are_einval_until_the_vm_enables_them),
		cmocka_unit_test(test_create_init_shared_on_sw_vm_is_einval),
		cmocka_unit_test(test_create_rejects_zero_unaligned_and_negative_sizes),
		cmocka_unit_test(test_create_ignores_reserved_fields),
		cmocka_unit_test(test_create_with_null_argument_is_efault),
		cmocka_unit_test(test_create_returns_a_new_handle_each_time),
		cmocka_unit_test(test_fstat_gives_distinct_inodes_size_blksize_and_blocks),
		cmocka_unit_test(test_read_write_pread_pwrite_are_einval),
		cmocka_unit_test(test_file_ops_on_closed_or_bogus_handles_are_ebadf),
		cmocka_unit_test(test_mmap_without_mmap_flag_is_enodev),
		cmocka_unit_test(test_mmap_private_is_einval),
		cmocka_unit_test(test_mmap_zero_length_is_einval),
		cmocka_unit_test(test_mmap_unaligned_offset_is_einval),
		cmocka_unit_test(test_mmap_without_init_shared_sigbuses_on_read_and_write),
		cmocka_unit_test(test_mmap_init_shared_fresh_pages_read_zero_and_take_writes),
		cmocka_unit_test(test_mmap_access_at_or_past_end_of_file_sigbuses),
		cmocka_unit_test(test_mmap_views_share_memory_in_place),
		cmocka_unit_test(test_fallocate_without_keep_size_is_eopnotsupp),
		cmocka_unit_test(test_fallocate_unknown_modes_are_eopnotsupp),
		cmocka_unit_test(test_fallocate_negative_offset_or_nonpositive_len_is_einval),
		cmocka_unit_test(test_fallocate_unaligned_offset_or_len_is_einval),
		cmocka_unit_test(test_fallocate_allocating_past_end_is_einval),
		cmocka_unit_test(test_fallocate_punching_past_end_succeeds),
		cmocka_unit_test(test_punched_page_reads_zero_while_neighbours_keep_data),
		cmocka_unit_test(test_fallocate_on_vm_or_system_handle_is_enodev),
		cmocka_unit_test(test_fault_in_1g_aligned_file_gets_a_1g_page),
		cmocka_unit_test(test_fallocate_populates_what_it_covers),
		cmocka_unit_test(test_no_1g_flag_caps_pages_at_2m),
		cmocka_unit_test(test_no_huge_flag_gives_4k_pages),
		cmocka_unit_test(test_3m_file_gets_a_2m_page_and_4k_pages_for_the_tail),
		cmocka_unit_test(test_get_pfn_past_end_of_file_is_einval),
		cmocka_unit_test(test_punching_4k_of_a_2m_page_splits_it_and_keeps_the_rest),
		cmocka_unit_test(test_punching_a_whole_2m_page_frees_it),
		cmocka_unit_test(test_punch_of_a_huge_empty_file_skips_its_empty_parts),
		cmocka_unit_test(test_punches_of_a_sparse_file_free_exactly_the_pages_in_range),
		cmocka_unit_test(test_whole_block_punch_frees_an_emptied_node_for_a_2m_page),
		cmocka_unit_test(test_exhausted_pool_gives_enomem_leaks_nothing_and_recovers),
		cmocka_unit_test(test_file_pins_the_vm_after_its_handle_is_closed),
		cmocka_unit_test(test_release_clears_bindings_and_zaps_the_slot),
		cmocka_unit_test(test_punch_zaps_private_mappings_of_exactly_the_bound_gfns),
		cmocka_unit_test(test_punch_of_mmap_file_zaps_all_mappings_of_exactly_the_bound_gfns),
		cmocka_unit_test(test_punch_over_more_bindings_than_range_slots_completes),
		cmocka_unit_test(test_concurrent_punch_and_allocate_leak_nothing),
		cmocka_unit_test(test_concurrent_punch_and_allocate_under_a_view_leak_nothing),
		cmocka_unit_test(test_host_reads_racing_punch_hole_see_zero_never_sigbus_nor_foreign_data),
		cmocka_unit_test(test_concurrent_4k_allocate_and_punch_of_disjoint_ranges_leave_the_exact_index),
		cmocka_unit_test(test_statistics_are_exact_after_concurrent_huge_page_conversions),
		cmocka_unit_test(test_concurrent_allocate_and_punch_of_overlapping_ranges_serialise),
		cmocka_unit_test(test_concurrent_allocations_of_one_page_give_one_page),
		cmocka_unit_test(test_punches_racing_memslot_bind_and_unbind_zap_only_the_slot),
		cmocka_unit_test(test_punch_splitting_a_huge_page_races_allocations_and_lookups_in_it),
		cmocka_unit_test(test_map_fixed_over_a_view_replaces_it_and_the_vmm_keeps_the_range),
		cmocka_unit_test(test_a_view_over_the_kvm_run_mapping_never_receives_kvm_run),
		cmocka_unit_test(test_pinning_and_unpinning_256m_completes),
		/* Last: they leave poisoned frames allocated for good. */
		cmocka_unit_test(test_poisoning_an_unallocated_page_is_enoent),
		cmocka_unit_test(test_poisoned_page_gives_ehwpoison_and_its_frame_is_never_freed),
		cmocka_unit_test(test_poisoned_page_of_a_closed_file_is_never_freed),
		cmocka_unit_test(test_host_access_to_a_poisoned_shared_page_sigbuses),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

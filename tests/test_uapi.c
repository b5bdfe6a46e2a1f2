/* SPDX-License-Identifier: MIT */
/*
 * Tests of the uAPI facade (src/uapi/): the handle table (distinct handles,
 * lowest-first reuse, EBADF everywhere for a handle that is not open), the
 * 200,000 handles and the EMFILE limit, the lowest free number after random
 * opens and closes against a model), the
 * system, VM, vCPU and guest_memfd ioctls as Linux answers them (API
 * version, capabilities, VM types, unknown ioctls, vCPU creation,
 * KVM_ENABLE_CAP including KVM_CAP_MAX_VCPU_ID, NULL arguments), the kvm_run
 * mapping, fstat of every kind,
 * VM lifetime through a vCPU handle, and handles opened and closed from
 * several threads at once.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "lib/testutil.h"

#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sys/sysmacros.h>

#include <privmem/privmem.h>
#include "kvm/vm.h"
#include "uapi/handle.h"
#include "vcpu/vcpu.h"

#define PAGE 4096ULL
/* An ioctl number no privmem file knows (KVM type, unused number). */
#define UNKNOWN_IOCTL _IO(KVMIO, 0xfe)


#define assert_mmap_fails(call, err)                    \
	do {                                            \
		errno = 0;                              \
		assert_ptr_equal((call), MAP_FAILED);   \
		assert_int_equal(errno, (err));         \
	} while (0)

/* ---- helpers ------------------------------------------------------------ */

static int open_sys(void)
{
	int h = pm_kvm_open();

	assert_true(h >= 0);
	return h;
}

static int create_vm(int sys, unsigned long type)
{
	int h = pm_kvm_ioctl(sys, KVM_CREATE_VM, type);

	assert_true(h >= 0);
	return h;
}

static int create_vcpu(int vm, unsigned long id)
{
	int h = pm_kvm_ioctl(vm, KVM_CREATE_VCPU, id);

	assert_true(h >= 0);
	return h;
}

static int create_gmem(int vm, uint64_t size, uint64_t flags)
{
	struct kvm_create_guest_memfd args = { .size = size, .flags = flags };
	int h = pm_kvm_ioctl(vm, KVM_CREATE_GUEST_MEMFD, &args);

	assert_true(h >= 0);
	return h;
}

static void close_ok(int h)
{
	assert_int_equal(pm_kvm_close(h), 0);
}

static long check_ext(int h, unsigned long cap)
{
	return pm_kvm_ioctl(h, KVM_CHECK_EXTENSION, cap);
}

static int enable_cap(int vm, uint32_t cap, uint32_t flags, uint64_t arg0)
{
	struct kvm_enable_cap c = { .cap = cap, .flags = flags, .args = { arg0 } };

	return pm_kvm_ioctl(vm, KVM_ENABLE_CAP, &c);
}

/* Every handle-taking entry point answers EBADF for h. */
static void assert_every_call_ebadf(int h)
{
	struct stat st;
	char buf[8];

	assert_fails(pm_kvm_ioctl(h, KVM_GET_API_VERSION, 0), EBADF);
	assert_fails(pm_kvm_ioctl(h, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY), EBADF);
	assert_fails(pm_kvm_fallocate(h, 0, 0, PAGE), EBADF);
	assert_fails(pm_kvm_read(h, buf, sizeof(buf)), EBADF);
	assert_fails(pm_kvm_write(h, buf, sizeof(buf)), EBADF);
	assert_fails(pm_kvm_pread(h, buf, sizeof(buf), 0), EBADF);
	assert_fails(pm_kvm_pwrite(h, buf, sizeof(buf), 0), EBADF);
	assert_mmap_fails(pm_kvm_mmap(NULL, PAGE, PROT_READ, MAP_SHARED, h, 0), EBADF);
	assert_fails(pm_kvm_fstat(h, &st), EBADF);
	assert_fails(pm_kvm_close(h), EBADF);
}

/* ---- the handle table --------------------------------------------------- */

/* Runs first: nothing is open yet, so the lowest free handle is 0. */
static void test_first_handle_is_zero(void **state)
{
	int h = open_sys();

	assert_int_equal(h, 0);
	close_ok(h);
	assert_int_equal(pm_kvm_open(), 0);
	close_ok(0);
}

static void test_open_gives_distinct_handles(void **state)
{
	int h[8];

	for (int i = 0; i < 8; i++) {
		h[i] = open_sys();
		for (int j = 0; j < i; j++)
			assert_int_not_equal(h[i], h[j]);
	}
	for (int i = 0; i < 8; i++)
		close_ok(h[i]);
}

static void test_closed_handles_are_reused_lowest_first(void **state)
{
	int a = open_sys(), b = open_sys(), c = open_sys();

	assert_true(a < b && b < c);
	close_ok(b);
	close_ok(a);
	assert_int_equal(pm_kvm_open(), a);
	assert_int_equal(pm_kvm_open(), b);
	/* A VM handle takes the lowest free number too. */
	close_ok(a);
	assert_int_equal(create_vm(c, KVM_X86_DEFAULT_VM), a);
	close_ok(a);
	close_ok(b);
	close_ok(c);
}

static void test_every_call_on_a_handle_not_open_is_ebadf(void **state)
{
	int sys = open_sys();
	int vm = create_vm(sys, KVM_X86_SW_PROTECTED_VM);
	int vcpu = create_vcpu(vm, 0);
	int gmem = create_gmem(vm, 16 * PAGE, 0);

	assert_every_call_ebadf(-1);
	assert_every_call_ebadf(INT_MIN);
	assert_every_call_ebadf(INT_MAX);
	assert_every_call_ebadf(PM_MAX_HANDLES - 1);   /* never opened */
	assert_every_call_ebadf(vcpu + 1000);           /* never opened */

	close_ok(gmem);
	close_ok(vcpu);
	close_ok(vm);
	close_ok(sys);
	/* Closed handles of every kind. */
	assert_every_call_ebadf(gmem);
	assert_every_call_ebadf(vcpu);
	assert_every_call_ebadf(vm);
	assert_every_call_ebadf(sys);
}

/* A model of the handle numbers: open[h] for each handle the test holds;
 * the lowest free number is found by scanning it (the test's own answer,
 * not the library's). The tests below start with no handle open. */
static int model_lowest_free(const bool *open, int n)
{
	int h = 0;

	while (h < n && open[h])
		h++;
	return h;
}

/* 200,000 handles: each open takes the next number, each close frees it,
 * and the whole run finishes (it took about 20 s when install scanned the
 * table for a free slot; the alarm kills the test long before a quadratic
 * scan of this many would end on a loaded machine). */
#define MANY_HANDLES 200000

static void test_two_hundred_thousand_handles_open_and_close(void **state)
{
	int *h = malloc(MANY_HANDLES * sizeof(*h));

	assert_non_null(h);
	alarm(120);
	for (int i = 0; i < MANY_HANDLES; i++) {
		h[i] = pm_kvm_open();
		assert_int_equal(h[i], i);
	}
	/* Every other one closed, then reopened lowest first. */
	for (int i = 0; i < MANY_HANDLES; i += 2)
		close_ok(h[i]);
	for (int i = 0; i < MANY_HANDLES; i += 2)
		assert_int_equal(pm_kvm_open(), i);
	for (int i = 0; i < MANY_HANDLES; i++)
		close_ok(i);
	alarm(0);
	assert_int_equal(pm_kvm_open(), 0);
	close_ok(0);
	free(h);
}

/* Random closes and opens across word boundaries of any bitmap: every open
 * gets the lowest number the model says is free. */
static void test_random_open_close_always_gives_the_lowest_free_number(void **state)
{
	enum { N = 20000 };
	bool *open = calloc(N + 1, sizeof(*open));
	unsigned int seed = 12;

	assert_non_null(open);
	for (int i = 0; i < N / 2; i++) {
		assert_int_equal(pm_kvm_open(), i);
		open[i] = true;
	}
	for (int step = 0; step < 200000; step++) {
		int want = model_lowest_free(open, N);

		if (rand_r(&seed) % 2 && want < N) {
			assert_int_equal(pm_kvm_open(), want);
			open[want] = true;
		} else {
			int victim = rand_r(&seed) % N;

			if (open[victim]) {
				close_ok(victim);
				open[victim] = false;
			} else {
				assert_fails(pm_kvm_close(victim), EBADF);
			}
		}
	}
	for (int i = 0; i < N; i++)
		if (open[i])
			close_ok(i);
	free(open);
}

/* At PM_MAX_HANDLES open handles the next open is EMFILE; a close makes
 * room for exactly one, at the number closed. */
static void test_open_at_the_handle_limit_is_emfile(void **state)
{
	alarm(120);
	for (int i = 0; i < PM_MAX_HANDLES; i++)
		if (pm_kvm_open() != i)
			fail_msg("handle %d: %s", i, strerror(errno));
	assert_fails(pm_kvm_open(), EMFILE);
	close_ok(PM_MAX_HANDLES / 2 + 65);
	close_ok(PM_MAX_HANDLES - 1);
	assert_int_equal(pm_kvm_open(), PM_MAX_HANDLES / 2 + 65);
	assert_int_equal(pm_kvm_open(), PM_MAX_HANDLES - 1);
	assert_fails(pm_kvm_open(), EMFILE);
	for (int i = 0; i < PM_MAX_HANDLES; i++)
		close_ok(i);
	alarm(0);
}

/* ---- system ioctls ------------------------------------------------------ */

static void test_api_version_is_12_and_takes_no_argument(void **state)
{
	int sys = open_sys();

	assert_int_equal(pm_kvm_ioctl(sys, KVM_GET_API_VERSION, 0), 12);
	assert_fails(pm_kvm_ioctl(sys, KVM_GET_API_VERSION, 1), EINVAL);
	close_ok(sys);
}

static void test_vcpu_mmap_size_holds_kvm_run_and_takes_no_argument(void **state)
{
	int sys = open_sys();
	int size = pm_kvm_ioctl(sys, KVM_GET_VCPU_MMAP_SIZE, 0);

	assert_true(size >= (int)sizeof(struct kvm_run));
	assert_true(size % (int)PAGE == 0);
	assert_fails(pm_kvm_ioctl(sys, KVM_GET_VCPU_MMAP_SIZE, 1), EINVAL);
	close_ok(sys);
}

/* Every VM type privmem offers, and the one hypercall exit it offers, as
 * KVM_CAP_VM_TYPES and KVM_CAP_EXIT_HYPERCALL report them: bit N for N. */
#define ALL_VM_TYPES ((1 << KVM_X86_DEFAULT_VM) | (1 << KVM_X86_SW_PROTECTED_VM) | \
		      (1 << KVM_X86_SNP_VM) | (1 << KVM_X86_TDX_VM) | (1 << PM_VM_TYPE_PKVM) | \
		      (1 << PM_VM_TYPE_REALM))
#define MAP_GPA_EXIT (1 << KVM_HC_MAP_GPA_RANGE)

struct cap_row {
	unsigned long cap;
	long sys, default_vm, sw_vm;   /* expected KVM_CHECK_EXTENSION value */
};

static const struct cap_row cap_table[] = {
	{ KVM_CAP_MEMORY_ATTRIBUTES, KVM_MEMORY_ATTRIBUTE_PRIVATE, 0, KVM_MEMORY_ATTRIBUTE_PRIVATE },
	{ KVM_CAP_GUEST_MEMFD_FLAGS,
	  GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED | GUEST_MEMFD_FLAG_NO_DIRECT_MAP,
	  GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED | GUEST_MEMFD_FLAG_NO_DIRECT_MAP,
	  GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_NO_DIRECT_MAP },
	{ KVM_CAP_VM_TYPES, ALL_VM_TYPES, ALL_VM_TYPES, ALL_VM_TYPES },
	{ KVM_CAP_NR_MEMSLOTS, 32764, 32764, 32764 },
	{ KVM_CAP_EXIT_HYPERCALL, MAP_GPA_EXIT, MAP_GPA_EXIT, MAP_GPA_EXIT },
	{ KVM_CAP_USER_MEMORY2, 1, 1, 1 },
	{ KVM_CAP_GUEST_MEMFD, 1, 1, 1 },
	{ KVM_CAP_MEMORY_FAULT_INFO, 1, 1, 1 },
	{ 100000, 0, 0, 0 },             /* unknown */
	{ 0x7fffffff, 0, 0, 0 },         /* unknown */
};

static void test_capabilities_on_system_and_vm_handles(void **state)
{
	int sys = open_sys();
	int dvm = create_vm(sys, KVM_X86_DEFAULT_VM);
	int svm = create_vm(sys, KVM_X86_SW_PROTECTED_VM);

	for (size_t i = 0; i < PM_ARRAY_SIZE(cap_table); i++) {
		const struct cap_row *row = &cap_table[i];

		print_message("cap %lu\n", row->cap);
		assert_int_equal(check_ext(sys, row->cap), row->sys);
		assert_int_equal(check_ext(dvm, row->cap), row->default_vm);
		assert_int_equal(check_ext(svm, row->cap), row->sw_vm);
	}
	close_ok(svm);
	close_ok(dvm);
	close_ok(sys);
}

static void test_create_vm_accepts_exactly_the_offered_types(void **state)
{
	static const unsigned long refused[] = {
		KVM_X86_SEV_VM, KVM_X86_SEV_ES_VM,
		6, 99, ~0UL,
	};
	int sys = open_sys();
	int dvm = create_vm(sys, KVM_X86_DEFAULT_VM);
	int svm = create_vm(sys, KVM_X86_SW_PROTECTED_VM);

	assert_int_not_equal(dvm, svm);
	/* The type is the one asked for: only the SW VM has private memory. */
	assert_int_equal(check_ext(dvm, KVM_CAP_MEMORY_ATTRIBUTES), 0);
	assert_int_equal(check_ext(svm, KVM_CAP_MEMORY_ATTRIBUTES), KVM_MEMORY_ATTRIBUTE_PRIVATE);
	close_ok(create_vm(sys, PM_VM_TYPE_PKVM));    /* tests/test_pkvm.c tests the type */
	close_ok(create_vm(sys, KVM_X86_SNP_VM));     /* tests/test_snp.c tests the type */
	close_ok(create_vm(sys, KVM_X86_TDX_VM));     /* tests/test_tdx.c tests the type */
	for (size_t i = 0; i < PM_ARRAY_SIZE(refused); i++) {
		print_message("type %lu\n", refused[i]);
		assert_fails(pm_kvm_ioctl(sys, KVM_CREATE_VM, refused[i]), EINVAL);
	}
	close_ok(svm);
	close_ok(dvm);
	close_ok(sys);
}

/* ---- unknown ioctls ----------------------------------------------------- */

/* ---- argument pointers ------------------------------------------------- */

/* Memory a process can hand an ioctl: a page it can write, then a page it
 * cannot touch (PROT_NONE), then a read-only page. */
struct arg_pages {
	uint8_t *rw, *none, *ro;
};

static void arg_pages_map(struct arg_pages *a)
{
	uint8_t *p = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(p != MAP_FAILED);
	a->rw = p;
	a->none = p + PAGE;
	a->ro = p + 2 * PAGE;
	assert_int_equal(mprotect(a->none, PAGE, PROT_NONE), 0);
	/* Read-only contents that get every call as far as writing back: a
	 * room of 200 list entries, a type with process-wide model stats. */
	((uint32_t *)a->ro)[0] = 200;
	((uint32_t *)a->ro)[1] = PM_VM_TYPE_PKVM;
	assert_int_equal(mprotect(a->ro, PAGE, PROT_READ), 0);
}

struct ptr_row {
	int kind;               /* 0 system, 1 VM, 2 vCPU, 3 guest_memfd, 4 SNP VM, 5 realm */
	unsigned long req;
	size_t size;            /* what the kernel copies first */
	bool writes;            /* the struct is written back */
};

static const struct ptr_row ptr_table[] = {
	{ 0, PM_KVM_GET_POOL_STATS, sizeof(struct pm_pool_stats), true },
	{ 0, PM_KVM_SET_POOL_CONFIG, sizeof(struct pm_pool_config), false },
	{ 0, PM_KVM_GET_MODEL_STATS, sizeof(struct pm_model_stats), true },
	{ 0, KVM_GET_SUPPORTED_CPUID, sizeof(struct kvm_cpuid2), true },
	{ 0, KVM_GET_MSR_INDEX_LIST, sizeof(struct kvm_msr_list), true },
	{ 0, KVM_GET_MSR_FEATURE_INDEX_LIST, sizeof(struct kvm_msr_list), true },
	{ 0, KVM_GET_MSRS, sizeof(struct kvm_msrs), true },
	{ 1, KVM_SET_USER_MEMORY_REGION, sizeof(struct kvm_userspace_memory_region), false },
	{ 1, KVM_SET_USER_MEMORY_REGION2, sizeof(struct kvm_userspace_memory_region2), false },
	{ 1, KVM_SET_MEMORY_ATTRIBUTES, sizeof(struct kvm_memory_attributes), false },
	{ 1, KVM_CREATE_GUEST_MEMFD, sizeof(struct kvm_create_guest_memfd), false },
	{ 1, KVM_ENABLE_CAP, sizeof(struct kvm_enable_cap), false },
	{ 1, PM_KVM_GET_VM_STATS, sizeof(struct pm_vm_stats), true },
	{ 4, PM_KVM_GET_MODEL_STATS, sizeof(struct pm_model_stats), true },
	{ 4, KVM_MEMORY_ENCRYPT_OP, sizeof(struct kvm_sev_cmd), true },
	{ 5, PM_KVM_REALM_CONFIG, sizeof(struct pm_realm_config), false },
	{ 5, PM_KVM_REALM_INIT_RIPAS, sizeof(struct pm_realm_ripas_range), false },
	{ 5, KVM_ARM_RMI_POPULATE, sizeof(struct kvm_arm_rmi_populate), true },
	{ 2, KVM_GET_REGS, sizeof(struct kvm_regs), true },
	{ 2, KVM_SET_REGS, sizeof(struct kvm_regs), false },
	{ 2, KVM_GET_SREGS, sizeof(struct kvm_sregs), true },
	{ 2, KVM_SET_SREGS, sizeof(struct kvm_sregs), false },
	{ 2, KVM_GET_FPU, sizeof(struct kvm_fpu), true },
	{ 2, KVM_SET_FPU, sizeof(struct kvm_fpu), false },
	{ 2, KVM_GET_MP_STATE, sizeof(struct kvm_mp_state), true },
	{ 2, KVM_SET_MP_STATE, sizeof(struct kvm_mp_state), false },
	{ 2, KVM_GET_MSRS, sizeof(struct kvm_msrs), true },
	{ 2, KVM_SET_MSRS, sizeof(struct kvm_msrs), false },
	{ 2, KVM_GET_CPUID2, sizeof(struct kvm_cpuid2), true },
	{ 2, KVM_SET_CPUID2, sizeof(struct kvm_cpuid2), false },
	{ 2, KVM_PRE_FAULT_MEMORY, sizeof(struct kvm_pre_fault_memory), true },
	{ 3, PM_GUEST_MEMFD_PIN, sizeof(struct pm_gmem_pin), false },
	{ 3, PM_GUEST_MEMFD_UNPIN, sizeof(struct pm_gmem_pin), false },
	{ 3, PM_GUEST_MEMFD_GET_STATS, sizeof(struct pm_gmem_file_stats), true },
};

/* Linux copies an ioctl's struct with copy_from_user / copy_to_user: a
 * pointer the process cannot read (or, for a struct written back, write)
 * is EFAULT, as is one whose struct runs into such a page, and the
 * process goes on. */
static void test_bad_argument_pointers_are_efault(void **state)
{
	int sys = open_sys(), vm = create_vm(sys, KVM_X86_SW_PROTECTED_VM);
	int snp = create_vm(sys, KVM_X86_SNP_VM), vcpu = create_vcpu(vm, 0);
	int gmem = create_gmem(vm, 2 * 1024 * 1024, 0);
	int realm = create_vm(sys, PM_VM_TYPE_REALM);
	int h[6] = { sys, vm, vcpu, gmem, snp, realm };
	struct arg_pages a;

	arg_pages_map(&a);
	for (size_t i = 0; i < sizeof(ptr_table) / sizeof(ptr_table[0]); i++) {
		const struct ptr_row *row = &ptr_table[i];
		uint8_t *bad[4] = { a.none, a.none - row->size / 2, (uint8_t *)(uintptr_t)8,
				    (uint8_t *)(uintptr_t)0x8000000000000000ULL };

		for (int k = 0; k < 4; k++) {
			errno = 0;
			if (pm_kvm_ioctl(h[row->kind], row->req, bad[k]) != -1 || errno != EFAULT)
				fail_msg("ioctl %#lx on kind %d, pointer %d: not EFAULT (errno %d)",
					 row->req, row->kind, k, errno);
		}
		/* A read-only struct serves what is only read. */
		errno = 0;
		if (row->writes && (pm_kvm_ioctl(h[row->kind], row->req, a.ro) != -1 || errno != EFAULT))
			fail_msg("ioctl %#lx on kind %d into a read-only page: not EFAULT (errno %d)",
				 row->req, row->kind, errno);
	}
	/* The entries of a list: read past the header, written back. */
	memset(a.rw, 0, PAGE);
	*(uint32_t *)(a.none - 8) = 4;                       /* nmsrs, entries in none */
	assert_fails(pm_kvm_ioctl(vcpu, KVM_SET_MSRS, a.none - 8), EFAULT);
	assert_fails(pm_kvm_ioctl(vcpu, KVM_GET_MSRS, a.none - 8), EFAULT);
	assert_fails(pm_kvm_ioctl(vcpu, KVM_SET_CPUID2, a.none - 8), EFAULT);
	/* A command's data pointer (SEV's LAUNCH_START) likewise. */
	{
		struct kvm_sev_cmd c = { .id = KVM_SEV_SNP_LAUNCH_START, .data = (uintptr_t)a.none };

		assert_fails(pm_kvm_ioctl(snp, KVM_MEMORY_ENCRYPT_OP, &c), EFAULT);
	}
	{
		struct stat st;

		assert_fails(pm_kvm_fstat(vm, (struct stat *)(void *)a.none), EFAULT);
		assert_fails(pm_kvm_fstat(vm, (struct stat *)(void *)a.ro), EFAULT);
		assert_int_equal(pm_kvm_fstat(vm, &st), 0);
	}
	munmap(a.rw, 3 * PAGE);
	close_ok(gmem);
	close_ok(vcpu);
	close_ok(snp);
	close_ok(realm);
	close_ok(vm);
	close_ok(sys);
}

static void test_unknown_ioctl_errno_depends_on_the_handle_kind(void **state)
{
	int sys = open_sys();
	int vm = create_vm(sys, KVM_X86_SW_PROTECTED_VM);
	int vcpu = create_vcpu(vm, 0);
	int gmem = create_gmem(vm, 16 * PAGE, 0);

	assert_fails(pm_kvm_ioctl(sys, UNKNOWN_IOCTL, 0), EINVAL);
	assert_fails(pm_kvm_ioctl(vm, UNKNOWN_IOCTL, 0), ENOTTY);
	assert_fails(pm_kvm_ioctl(vcpu, UNKNOWN_IOCTL, 0), EINVAL);
	assert_fails(pm_kvm_ioctl(gmem, UNKNOWN_IOCTL, 0), ENOTTY);
	/* An ioctl of another kind is unknown too. */
	assert_fails(pm_kvm_ioctl(sys, KVM_CREATE_VCPU, 0), EINVAL);
	assert_fails(pm_kvm_ioctl(vm, KVM_CREATE_VM, 0), ENOTTY);
	assert_fails(pm_kvm_ioctl(vm, KVM_GET_VCPU_MMAP_SIZE, 0), ENOTTY);
	assert_fails(pm_kvm_ioctl(vcpu, KVM_CREATE_VCPU, 1), EINVAL);
	assert_fails(pm_kvm_ioctl(vcpu, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY), EINVAL);
	assert_fails(pm_kvm_ioctl(gmem, KVM_CREATE_VCPU, 1), ENOTTY);
	assert_fails(pm_kvm_ioctl(gmem, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY), ENOTTY);
	close_ok(gmem);
	close_ok(vcpu);
	close_ok(vm);
	close_ok(sys);
}

/* VM types that launch nothing measured have neither KVM_MEMORY_ENCRYPT_OP
 * (ENOTTY, as KVM without a mem_enc_ioctl) nor a measurement. */
static void test_encrypt_op_and_measurement_are_enotty_without_a_model_that_has_them(void **state)
{
	unsigned long types[] = { KVM_X86_DEFAULT_VM, KVM_X86_SW_PROTECTED_VM };
	int sys = open_sys();

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		int vm = create_vm(sys, types[i]);
		int vcpu = create_vcpu(vm, 0);
		struct pm_measurement m;
		struct kvm_sev_cmd cmd = { .id = KVM_SEV_SNP_LAUNCH_START };

		assert_fails(pm_kvm_ioctl(vm, KVM_MEMORY_ENCRYPT_OP, (unsigned long)&cmd), ENOTTY);
		assert_fails(pm_kvm_ioctl(vcpu, KVM_MEMORY_ENCRYPT_OP, (unsigned long)&cmd), ENOTTY);
		assert_fails(pm_kvm_ioctl(vm, PM_KVM_GET_MEASUREMENT, (unsigned long)&m), ENOTTY);
		assert_fails(pm_kvm_ioctl(vm, PM_KVM_GET_MEASUREMENT, 0), ENOTTY);
		close_ok(vcpu);
		close_ok(vm);
	}
	close_ok(sys);
}

/* ---- vCPUs -------------------------------------------------------------- */

static void test_create_vcpu_rejects_large_and_duplicate_ids(void **state)
{
	int sys = open_sys();
	int vm = create_vm(sys, KVM_X86_DEFAULT_VM);
	long max_id = check_ext(vm, KVM_CAP_MAX_VCPU_ID);
	int v0, vlast;

	assert_true(max_id > 1);
	v0 = create_vcpu(vm, 0);
	vlast = create_vcpu(vm, (unsigned long)max_id - 1);
	assert_int_not_equal(v0, vlast);
	assert_fails(pm_kvm_ioctl(vm, KVM_CREATE_VCPU, (unsigned long)max_id), EINVAL);
	assert_fails(pm_kvm_ioctl(vm, KVM_CREATE_VCPU, ~0UL), EINVAL);
	assert_fails(pm_kvm_ioctl(vm, KVM_CREATE_VCPU, 0UL), EEXIST);
	assert_fails(pm_kvm_ioctl(vm, KVM_CREATE_VCPU, (unsigned long)max_id - 1), EEXIST);
	/* A duplicate stays a duplicate after its handle is closed: the vCPU
	 * belongs to the VM. */
	close_ok(v0);
	assert_fails(pm_kvm_ioctl(vm, KVM_CREATE_VCPU, 0UL), EEXIST);
	close_ok(vlast);
	close_ok(vm);
	close_ok(sys);
}

static void test_vcpu_mmap_gives_one_shared_writable_kvm_run(void **state)
{
	int sys = open_sys();
	int vm = create_vm(sys, KVM_X86_DEFAULT_VM);
	int vcpu = create_vcpu(vm, 3);
	size_t size = (size_t)pm_kvm_ioctl(sys, KVM_GET_VCPU_MMAP_SIZE, 0);
	struct kvm_run *a, *b;

	a = pm_kvm_mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	assert_ptr_not_equal(a, MAP_FAILED);
	b = pm_kvm_mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	assert_ptr_not_equal(b, MAP_FAILED);
	/* Writable, and both mappings are the same kvm_run. */
	a->immediate_exit = 1;
	a->request_interrupt_window = 7;
	b->s.padding[SYNC_REGS_SIZE_BYTES - 1] = 42;   /* the last byte */
	assert_int_equal(b->immediate_exit, 1);
	assert_int_equal(b->request_interrupt_window, 7);
	assert_int_equal(a->s.padding[SYNC_REGS_SIZE_BYTES - 1], 42);

	assert_int_equal(pm_kvm_munmap(a, size), 0);
	assert_int_equal(pm_kvm_munmap(b, size), 0);
	/* Both mappings are gone: unmapping again finds nothing. */
	assert_fails(pm_kvm_munmap(a, size), EINVAL);
	close_ok(vcpu);
	close_ok(vm);
	close_ok(sys);
}

static void test_second_munmap_of_the_kvm_run_mapping_is_einval(void **state)
{
	int sys = open_sys();
	int vm = create_vm(sys, KVM_X86_DEFAULT_VM);
	int vcpu = create_vcpu(vm, 0);
	size_t size = (size_t)pm_kvm_ioctl(sys, KVM_GET_VCPU_MMAP_SIZE, 0);
	void *p = pm_kvm_mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);

	assert_ptr_not_equal(p, MAP_FAILED);
	assert_int_equal(pm_kvm_munmap(p, size), 0);
	assert_fails(pm_kvm_munmap(p, size), EINVAL);
	close_ok(vcpu);
	close_ok(vm);
	close_ok(sys);
}

/* munmap of part of a kvm_run mapping, as of part of a VMA: the rest stays
 * mapped and is the vCPU's page still, each part can go on its own, and
 * the last part gives the VM's reference back. */
static void test_partial_munmap_of_kvm_run_keeps_the_rest(void **state)
{
	int sys = open_sys();
	int vm = create_vm(sys, KVM_X86_DEFAULT_VM);
	int vcpu = create_vcpu(vm, 0);
	size_t size = (size_t)pm_kvm_ioctl(sys, KVM_GET_VCPU_MMAP_SIZE, 0);
	uint8_t *a = pm_kvm_mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	uint8_t *b = pm_kvm_mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	struct pm_file f;
	struct pm_vm *v;

	assert_true(size == 2 * PAGE);
	assert_ptr_not_equal(a, MAP_FAILED);
	assert_ptr_not_equal(b, MAP_FAILED);
	assert_int_equal(pm_handle_get(vcpu, &f), 0);
	v = ((struct pm_vcpu *)f.obj)->vm;
	pm_file_put(&f);
	/* a loses its second page, b its first. */
	assert_int_equal(pm_kvm_munmap(a + PAGE, PAGE), 0);
	assert_int_equal(pm_kvm_munmap(b, PAGE), 0);
	/* What is left is still the vCPU's pages: a write through one part
	 * of b's second page shows in a fresh mapping, a's first page in b's
	 * sibling mapping. */
	((struct kvm_run *)a)->immediate_exit = 1;
	b[PAGE + 8] = 0x5a;
	{
		uint8_t *c = pm_kvm_mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);

		assert_ptr_not_equal(c, MAP_FAILED);
		assert_int_equal(((struct kvm_run *)c)->immediate_exit, 1);
		assert_int_equal(c[PAGE + 8], 0x5a);
		assert_int_equal(pm_kvm_munmap(c, size), 0);
	}
	/* The parts gone are gone; the whole of the old ranges is not a
	 * mapping any more. */
	assert_fails(pm_kvm_munmap(a + PAGE, PAGE), EINVAL);
	assert_fails(pm_kvm_munmap(b, PAGE), EINVAL);
	assert_fails(pm_kvm_munmap(a, size), EINVAL);
	close_ok(vcpu);
	close_ok(vm);
	/* Each part holds the VM. */
	assert_int_equal(pm_ref_read(&v->refs), 2);
	assert_int_equal(pm_kvm_munmap(a, PAGE), 0);
	assert_int_equal(pm_ref_read(&v->refs), 1);
	assert_int_equal(pm_kvm_munmap(b + PAGE, PAGE), 0);   /* last reference: VM destroyed */
	close_ok(sys);
}

/* The kvm_run page cannot be placed: MAP_FIXED and MAP_FIXED_NOREPLACE
 * are EINVAL (privmem's documented difference), never a mapping at
 * another address than the one the VMM demanded. */
static void test_kvm_run_mapping_cannot_be_placed(void **state)
{
	int sys = open_sys();
	int vm = create_vm(sys, KVM_X86_DEFAULT_VM);
	int vcpu = create_vcpu(vm, 0);
	size_t size = (size_t)pm_kvm_ioctl(sys, KVM_GET_VCPU_MMAP_SIZE, 0);
	uint8_t *area = mmap(NULL, 2 * size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_ptr_not_equal(area, MAP_FAILED);
	assert_int_equal(munmap(area + size, size), 0);          /* a free address */
	assert_mmap_fails(pm_kvm_mmap(area, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, vcpu, 0),
			  EINVAL);
	assert_mmap_fails(pm_kvm_mmap(area, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED_NOREPLACE,
				      vcpu, 0), EINVAL);
	assert_mmap_fails(pm_kvm_mmap(area + size, size, PROT_READ | PROT_WRITE,
				      MAP_SHARED | MAP_FIXED_NOREPLACE, vcpu, 0), EINVAL);
	munmap(area, size);
	close_ok(vcpu);
	close_ok(vm);
	close_ok(sys);
}

static void test_mmap_of_system_or_vm_handle_is_enodev(void **state)
{
	int sys = open_sys();
	int vm = create_vm(sys, KVM_X86_DEFAULT_VM);

	assert_mmap_fails(pm_kvm_mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, sys, 0),
			  ENODEV);
	assert_mmap_fails(pm_kvm_mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, vm, 0),
			  ENODEV);
	close_ok(vm);
	close_ok(sys);
}

/* ---- KVM_ENABLE_CAP ----------------------------------------------------- */

static void test_enable_cap_rules(void **state)
{
	int sys = open_sys();
	int vm = create_vm(sys, KVM_X86_SW_PROTECTED_VM);
	const uint64_t map_gpa = 1ULL << KVM_HC_MAP_GPA_RANGE;
	struct pm_file f;
	struct pm_vm *v;

	assert_int_equal(pm_handle_get(vm, &f), 0);
	v = f.obj;
	assert_fails(enable_cap(vm, KVM_CAP_EXIT_HYPERCALL, 1, map_gpa), EINVAL);
	assert_fails(enable_cap(vm, 12345, 0, 0), EINVAL);
	assert_fails(enable_cap(vm, KVM_CAP_USER_MEMORY2, 0, 0), EINVAL);
	assert_fails(enable_cap(vm, KVM_CAP_EXIT_HYPERCALL, 0, map_gpa | 1), EINVAL);
	assert_fails(enable_cap(vm, KVM_CAP_EXIT_HYPERCALL, 0, 1ULL << 63), EINVAL);
	/* Refused requests changed nothing. */
	assert_int_equal(atomic_load(&v->hypercall_exit_enabled), 0);

	assert_int_equal(enable_cap(vm, KVM_CAP_EXIT_HYPERCALL, 0, map_gpa), 0);
	assert_int_equal(atomic_load(&v->hypercall_exit_enabled), map_gpa);
	assert_int_equal(enable_cap(vm, KVM_CAP_EXIT_HYPERCALL, 0, 0), 0);
	assert_int_equal(atomic_load(&v->hypercall_exit_enabled), 0);
	/* KVM_ENABLE_CAP is a VM ioctl: the system handle does not know it. */
	{
		struct kvm_enable_cap c = { .cap = KVM_CAP_EXIT_HYPERCALL, .args = { map_gpa } };

		assert_fails(pm_kvm_ioctl(sys, KVM_ENABLE_CAP, &c), EINVAL);
	}
	pm_file_put(&f);
	close_ok(vm);
	close_ok(sys);
}

/* KVM_CAP_MAX_VCPU_ID: at most the reported maximum, once, before the first
 * vCPU; it then bounds KVM_CREATE_VCPU's id. */
static void test_enable_cap_max_vcpu_id_bounds_vcpu_ids_once(void **state)
{
	int sys = open_sys();
	int vm = create_vm(sys, KVM_X86_DEFAULT_VM);
	int vm2 = create_vm(sys, KVM_X86_DEFAULT_VM);
	long max = check_ext(vm, KVM_CAP_MAX_VCPU_ID);
	int vcpu;

	assert_true(max > 2);
	assert_fails(enable_cap(vm, KVM_CAP_MAX_VCPU_ID, 0, (uint64_t)max + 1), EINVAL);
	assert_int_equal(enable_cap(vm, KVM_CAP_MAX_VCPU_ID, 0, 2), 0);
	assert_int_equal(enable_cap(vm, KVM_CAP_MAX_VCPU_ID, 0, 2), 0);   /* same value */
	assert_fails(enable_cap(vm, KVM_CAP_MAX_VCPU_ID, 0, 3), EINVAL);
	assert_fails(pm_kvm_ioctl(vm, KVM_CREATE_VCPU, 2), EINVAL);
	assert_fails(pm_kvm_ioctl(vm, KVM_CREATE_VCPU, 1UL << 32), EINVAL);
	vcpu = pm_kvm_ioctl(vm, KVM_CREATE_VCPU, 1);
	assert_true(vcpu >= 0);
	close_ok(vcpu);

	/* The first vCPU fixes the bound at the maximum. */
	vcpu = pm_kvm_ioctl(vm2, KVM_CREATE_VCPU, 0);
	assert_true(vcpu >= 0);
	assert_fails(enable_cap(vm2, KVM_CAP_MAX_VCPU_ID, 0, 2), EINVAL);
	assert_int_equal(enable_cap(vm2, KVM_CAP_MAX_VCPU_ID, 0, (uint64_t)max), 0);
	close_ok(vcpu);
	close_ok(vm2);
	close_ok(vm);
	close_ok(sys);
}

/* ---- NULL arguments ----------------------------------------------------- */

static void test_null_pointer_arguments_are_efault(void **state)
{
	int sys = open_sys();
	int vm = create_vm(sys, KVM_X86_SW_PROTECTED_VM);

	assert_fails(pm_kvm_ioctl(vm, KVM_SET_USER_MEMORY_REGION, NULL), EFAULT);
	assert_fails(pm_kvm_ioctl(vm, KVM_SET_USER_MEMORY_REGION2, NULL), EFAULT);
	assert_fails(pm_kvm_ioctl(vm, KVM_SET_MEMORY_ATTRIBUTES, NULL), EFAULT);
	assert_fails(pm_kvm_ioctl(vm, KVM_CREATE_GUEST_MEMFD, NULL), EFAULT);
	assert_fails(pm_kvm_ioctl(vm, KVM_ENABLE_CAP, NULL), EFAULT);
	close_ok(vm);
	close_ok(sys);
}

/* ---- fstat -------------------------------------------------------------- */

static void test_fstat_of_every_handle_kind(void **state)
{
	int sys = open_sys();
	int vm = create_vm(sys, KVM_X86_SW_PROTECTED_VM);
	int vcpu = create_vcpu(vm, 0);
	int g1 = create_gmem(vm, 16 * PAGE, 0);
	int g2 = create_gmem(vm, 2 * 1024 * 1024, 0);
	struct stat s_sys, s_vm, s_vcpu, s_g1, s_g2;

	assert_int_equal(pm_kvm_fstat(sys, &s_sys), 0);
	assert_int_equal(pm_kvm_fstat(vm, &s_vm), 0);
	assert_int_equal(pm_kvm_fstat(vcpu, &s_vcpu), 0);
	assert_int_equal(pm_kvm_fstat(g1, &s_g1), 0);
	assert_int_equal(pm_kvm_fstat(g2, &s_g2), 0);

	/* /dev/kvm: the misc character device 10:232. */
	assert_true(S_ISCHR(s_sys.st_mode));
	assert_int_equal(major(s_sys.st_rdev), 10);
	assert_int_equal(minor(s_sys.st_rdev), 232);
	/* VM and vCPU files: the one anonymous inode, owner read/write. */
	assert_false(S_ISCHR(s_vm.st_mode));
	assert_int_equal(s_vm.st_mode & 0777, 0600);
	assert_int_equal(s_vcpu.st_mode & 0777, 0600);
	assert_int_equal(s_vm.st_ino, s_vcpu.st_ino);
	/* guest_memfd: a regular file of its own, sized at creation. */
	assert_true(S_ISREG(s_g1.st_mode));
	assert_true(S_ISREG(s_g2.st_mode));
	assert_int_equal(s_g1.st_size, 16 * PAGE);
	assert_int_equal(s_g2.st_size, 2 * 1024 * 1024);
	assert_int_equal(s_g1.st_blksize, PAGE);
	assert_int_not_equal(s_g1.st_ino, s_g2.st_ino);
	assert_int_not_equal(s_g1.st_ino, s_vm.st_ino);

	assert_fails(pm_kvm_fstat(sys, NULL), EFAULT);
	close_ok(g2);
	close_ok(g1);
	close_ok(vcpu);
	close_ok(vm);
	close_ok(sys);
}

/* ---- lifetime ----------------------------------------------------------- */

static void test_vm_lives_while_a_vcpu_handle_or_run_mapping_remains(void **state)
{
	int sys = open_sys();
	int vm = create_vm(sys, KVM_X86_SW_PROTECTED_VM);
	int vcpu = create_vcpu(vm, 5);
	size_t size = (size_t)pm_kvm_ioctl(sys, KVM_GET_VCPU_MMAP_SIZE, 0);
	struct pm_file f;
	struct pm_vcpu *vc;
	struct pm_vm *v;
	struct kvm_run *run;

	assert_int_equal(pm_handle_get(vcpu, &f), 0);
	assert_int_equal(f.kind, PM_HANDLE_VCPU);
	vc = f.obj;
	v = vc->vm;
	pm_file_put(&f);
	assert_int_equal(pm_ref_read(&v->refs), 2);   /* VM handle + vCPU handle */

	close_ok(vm);
	assert_fails(pm_kvm_ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY), EBADF);
	/* The vCPU handle alone keeps the VM, and the vCPU, alive. */
	assert_int_equal(pm_ref_read(&v->refs), 1);
	assert_int_equal(v->type, KVM_X86_SW_PROTECTED_VM);
	assert_int_equal(vc->id, 5);
	assert_int_equal(pm_kvm_fstat(vcpu, &(struct stat){ 0 }), 0);
	run = pm_kvm_mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	assert_ptr_not_equal(run, MAP_FAILED);
	run->immediate_exit = 1;
	assert_int_equal(pm_ref_read(&v->refs), 2);   /* the mapping holds one */

	/* With the vCPU handle closed the mapping still works. */
	close_ok(vcpu);
	assert_int_equal(pm_ref_read(&v->refs), 1);
	assert_int_equal(run->immediate_exit, 1);
	run->immediate_exit = 0;
	assert_int_equal(pm_kvm_munmap(run, size), 0);   /* last reference: VM destroyed */
	close_ok(sys);
}

static void test_gmem_of_a_closed_vm_still_answers(void **state)
{
	int sys = open_sys();
	int vm = create_vm(sys, KVM_X86_SW_PROTECTED_VM);
	int gmem = create_gmem(vm, 16 * PAGE, 0);
	struct stat st;

	close_ok(vm);
	assert_int_equal(pm_kvm_fstat(gmem, &st), 0);
	assert_int_equal(st.st_size, 16 * PAGE);
	assert_fails(pm_kvm_ioctl(gmem, UNKNOWN_IOCTL, 0), ENOTTY);
	close_ok(gmem);
	close_ok(sys);
}

/* ---- threads ------------------------------------------------------------ */

#define OC_THREADS   4
#define OC_ROUNDS    2000
#define OC_MAX_H     4096

struct oc_shared {
	atomic_int owner[OC_MAX_H];   /* thread id + 1 holding the handle, or 0 */
	atomic_long errors;
};

/* Takes ownership of h: fails if another thread holds the same handle. */
static bool oc_claim(struct oc_shared *sh, int h, int me)
{
	int none = 0;

	return h >= 0 && h < OC_MAX_H &&
	       atomic_compare_exchange_strong(&sh->owner[h], &none, me + 1);
}

static long oc_round(struct oc_shared *sh, int me, int i)
{
	int sys = pm_kvm_open();
	long bad = 0;

	if (!oc_claim(sh, sys, me))
		return 1;
	bad += pm_kvm_ioctl(sys, KVM_GET_API_VERSION, 0) != KVM_API_VERSION;
	if (i % 8 == 0) {
		int vm = pm_kvm_ioctl(sys, KVM_CREATE_VM, (unsigned long)(i / 8 % 2));
		int vcpu;

		if (!oc_claim(sh, vm, me))
			return bad + 1;
		vcpu = pm_kvm_ioctl(vm, KVM_CREATE_VCPU, 0UL);
		if (!oc_claim(sh, vcpu, me))
			return bad + 1;
		/* Close the VM first half of the time: the vCPU keeps it. */
		int first = i % 16 ? vm : vcpu, second = i % 16 ? vcpu : vm;

		atomic_store(&sh->owner[first], 0);
		bad += pm_kvm_close(first) != 0;
		bad += pm_kvm_ioctl(second, UNKNOWN_IOCTL, 0) != -1;
		atomic_store(&sh->owner[second], 0);
		bad += pm_kvm_close(second) != 0;
	}
	atomic_store(&sh->owner[sys], 0);
	bad += pm_kvm_close(sys) != 0;
	return bad;
}

struct oc_arg {
	struct oc_shared *sh;
	int me;
};

static void *oc_thread(void *p)
{
	struct oc_arg *a = p;
	long bad = 0;

	for (int i = 0; i < OC_ROUNDS; i++)
		bad += oc_round(a->sh, a->me, i);
	atomic_fetch_add(&a->sh->errors, bad);
	return NULL;
}

static void test_concurrent_open_close_never_hands_out_a_handle_twice(void **state)
{
	struct oc_shared *sh = calloc(1, sizeof(*sh));
	struct oc_arg args[OC_THREADS];
	pthread_t t[OC_THREADS];
	int probe;

	assert_non_null(sh);
	for (int i = 0; i < OC_THREADS; i++) {
		args[i] = (struct oc_arg){ .sh = sh, .me = i };
		assert_int_equal(pthread_create(&t[i], NULL, oc_thread, &args[i]), 0);
	}
	for (int i = 0; i < OC_THREADS; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(atomic_load(&sh->errors), 0);
	/* Everything was closed: the table is empty again from its start. */
	probe = open_sys();
	for (int h = 0; h < probe; h++)
		assert_int_equal(atomic_load(&sh->owner[h]), 0);
	close_ok(probe);
	free(sh);
}

/* Lookups racing close and table growth: a thread hammers ioctls on
 * handles another thread closes, reopens and pushes up through table
 * growth; every call either works on a live object or fails with EBADF
 * (ASan/TSan see any use of a freed object or table). */
struct lc_shared {
	atomic_int vm;            /* the handle the reader uses; -1 at the end */
	atomic_long ok, ebadf, other;
};

static void *lc_reader(void *p)
{
	struct lc_shared *sh = p;
	int h;

	while ((h = atomic_load(&sh->vm)) >= 0) {
		int r = pm_kvm_ioctl(h, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY);

		if (r == 1)
			atomic_fetch_add(&sh->ok, 1);
		else if (r == -1 && errno == EBADF)
			atomic_fetch_add(&sh->ebadf, 1);
		else if (r != -1 || errno != EINVAL)   /* a reused handle of another kind */
			atomic_fetch_add(&sh->other, 1);
	}
	return NULL;
}

static void test_lookups_race_close_and_table_growth(void **state)
{
	struct lc_shared sh = { .vm = -1 };
	enum { ROUNDS = 200, EXTRA = 150 };
	int sys = open_sys(), extra[EXTRA];
	pthread_t t;

	atomic_store(&sh.vm, pm_kvm_ioctl(sys, KVM_CREATE_VM, 0));
	assert_true(atomic_load(&sh.vm) >= 0);
	assert_int_equal(pthread_create(&t, NULL, lc_reader, &sh), 0);
	for (int round = 0; round < ROUNDS; round++) {
		int old = atomic_load(&sh.vm), vm;

		/* Now and then let the reader succeed on the live handle
		 * first (closes are quick: without this it may never run
		 * while a handle is live on a loaded machine). */
		if (round % 20 == 0) {
			long seen = atomic_load(&sh.ok);

			for (int spin = 0; spin < 100000 && atomic_load(&sh.ok) == seen; spin++)
				sched_yield();
		}
		/* Grow the table past its current size now and then. */
		for (int i = 0; round % 50 == 0 && i < EXTRA; i++)
			extra[i] = open_sys();
		close_ok(old);          /* the reader may be inside a call on it */
		vm = pm_kvm_ioctl(sys, KVM_CREATE_VM, 0);
		assert_true(vm >= 0);
		atomic_store(&sh.vm, vm);
		for (int i = 0; round % 50 == 0 && i < EXTRA; i++)
			close_ok(extra[i]);
	}
	close_ok(atomic_load(&sh.vm));
	atomic_store(&sh.vm, -1);
	pthread_join(t, NULL);
	close_ok(sys);
	assert_int_equal(atomic_load(&sh.other), 0);
	assert_true(atomic_load(&sh.ok) > 0);
}

/* A pinned call (no reference) keeps its object: a close of the handle
 * waits until the call is out, then drops the table's reference. */
struct close_arg {
	int h, r;
	atomic_bool returned;
};

static void *close_thread(void *p)
{
	struct close_arg *c = p;

	c->r = pm_kvm_close(c->h);
	atomic_store(&c->returned, true);
	return NULL;
}

static void test_close_waits_for_a_pinned_call(void **state)
{
	int sys = open_sys(), vm = pm_kvm_ioctl(sys, KVM_CREATE_VM, 0);
	struct close_arg c = { .h = vm };
	struct pm_file f;
	unsigned int slot;
	pthread_t t;

	assert_true(vm >= 0);
	assert_int_equal(pm_handle_pin(vm, &f, &slot), 0);
	assert_int_equal(f.kind, PM_HANDLE_VM);
	assert_int_equal(pthread_create(&t, NULL, close_thread, &c), 0);
	usleep(100 * 1000);
	assert_false(atomic_load(&c.returned));
	/* The object is alive and usable by the pinned call meanwhile. */
	assert_int_equal(pm_check_extension(f.obj, KVM_CAP_USER_MEMORY), 1);
	pm_handle_unpin(slot);
	pthread_join(t, NULL);
	assert_int_equal(c.r, 0);
	assert_int_equal(pm_handle_pin(vm, &f, &slot), -EBADF);
	close_ok(sys);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_handle_is_zero),
		cmocka_unit_test(test_open_gives_distinct_handles),
		cmocka_unit_test(test_closed_handles_are_reused_lowest_first),
		cmocka_unit_test(test_every_call_on_a_handle_not_open_is_ebadf),
		cmocka_unit_test(test_two_hundred_thousand_handles_open_and_close),
		cmocka_unit_test(test_random_open_close_always_gives_the_lowest_free_number),
		cmocka_unit_test(test_open_at_the_handle_limit_is_emfile),
		cmocka_unit_test(test_api_version_is_12_and_takes_no_argument),
		cmocka_unit_test(test_vcpu_mmap_size_holds_kvm_run_and_takes_no_argument),
		cmocka_unit_test(test_capabilities_on_system_and_vm_handles),
		cmocka_unit_test(test_create_vm_accepts_exactly_the_offered_types),
		cmocka_unit_test(test_unknown_ioctl_errno_depends_on_the_handle_kind),
		cmocka_unit_test(test_bad_argument_pointers_are_efault),
		cmocka_unit_test(test_create_vcpu_rejects_large_and_duplicate_ids),
		cmocka_unit_test(test_vcpu_mmap_gives_one_shared_writable_kvm_run),
		cmocka_unit_test(test_second_munmap_of_the_kvm_run_mapping_is_einval),
		cmocka_unit_test(test_partial_munmap_of_kvm_run_keeps_the_rest),
		cmocka_unit_test(test_kvm_run_mapping_cannot_be_placed),
		cmocka_unit_test(test_mmap_of_system_or_vm_handle_is_enodev),
		cmocka_unit_test(test_enable_cap_rules),
		cmocka_unit_test(test_enable_cap_max_vcpu_id_bounds_vcpu_ids_once),
		cmocka_unit_test(test_null_pointer_arguments_are_efault),
		cmocka_unit_test(test_fstat_of_every_handle_kind),
		cmocka_unit_test(test_vm_lives_while_a_vcpu_handle_or_run_mapping_remains),
		cmocka_unit_test(test_gmem_of_a_closed_vm_still_answers),
		cmocka_unit_test(test_concurrent_open_close_never_hands_out_a_handle_twice),
		cmocka_unit_test(test_lookups_race_close_and_table_growth),
		cmocka_unit_test(test_close_waits_for_a_pinned_call),
		cmocka_unit_test(test_encrypt_op_and_measurement_are_enotty_without_a_model_that_has_them),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * Tests of KVM_X86_TDX_VM (src/models/tdx/tdx.c) through the KVM uAPI:
 * the build ioctls and their errors, the MRTD of a measured image (known
 * answer computed here from the reference algorithm), the shared bit and
 * the two roots, pending pages and ACCEPT (4K and 2M), the TD-fatal access
 * to a pending page, MapGPA chunking and its RETRY, conversions removing
 * pages from the S-EPT, and 2M private pages demoted by a partial
 * conversion. The concurrency proofs (seed 003's race, BUSY injection) are
 * at the end; TDX_STRESS_SECONDS makes them longer (default: short).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <linux/falloc.h>
#include <openssl/evp.h>

#include <privmem/guest.h>
#include <privmem/privmem.h>
#include "gmem/gmem_internal.h"   /* pm_gmem_peek_pfn */
#include "host/pool.h"
#include "models/tdx/tdx.h"
#include "uapi/handle.h"
#include "lib/testutil.h"

#define PAGE      4096ULL
#define MIB       (1ULL << 20)
#define GPA       (1ULL << 30)        /* the memslot */
#define MEM_SIZE  (16 * MIB)
#define SHARED47  (1ULL << 47)
#define PUNCH     (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)

struct vmm {
	int kvm, vm, gmem, vcpu;
	struct kvm_run *run;
	uint8_t *shared;                 /* the slot's userspace memory */
	long map_gpa_ret;                /* the VMM's answer to MAP_GPA_RANGE */
	bool kick_on_map_gpa;            /* set immediate_exit while answering */
	unsigned int map_gpa_exits;
	uint64_t map_gpa_args[8][3];
	unsigned int memory_faults;
};

/* ---- the VMM ---- */

static long tdx_cmd(int fd, uint32_t id, uint32_t flags, void *data, uint64_t *hw_error)
{
	struct kvm_tdx_cmd cmd = { .id = id, .flags = flags, .data = (uint64_t)(uintptr_t)data };
	long r = pm_kvm_ioctl(fd, KVM_MEMORY_ENCRYPT_OP, &cmd);

	if (hw_error)
		*hw_error = cmd.hw_error;
	return r;
}

/* INIT_VM's argument with one CPUID entry: 0x80000008 with `bits`. */
union init_vm_buf {
	struct kvm_tdx_init_vm vm;
	uint8_t bytes[sizeof(struct kvm_tdx_init_vm) + sizeof(struct kvm_cpuid_entry2)];
};

static void init_vm_arg(union init_vm_buf *b, unsigned int bits)
{
	memset(b, 0, sizeof(*b));
	b->vm.cpuid.nent = 1;
	b->vm.cpuid.entries[0].function = 0x80000008;
	b->vm.cpuid.entries[0].eax = bits << 16 | 46;
}

static int set_attr(struct vmm *m, uint64_t gpa, uint64_t size, bool private_mem)
{
	struct kvm_memory_attributes a = {
		.address = gpa, .size = size,
		.attributes = private_mem ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0,
	};

	return pm_kvm_ioctl(m->vm, KVM_SET_MEMORY_ATTRIBUTES, &a);
}

static void vmm_create_flags(struct vmm *m, unsigned int gpa_bits, uint64_t gmem_flags)
{
	struct kvm_create_guest_memfd cg = { .size = MEM_SIZE, .flags = gmem_flags };
	struct kvm_enable_cap cap = { .cap = KVM_CAP_EXIT_HYPERCALL,
				      .args = { 1ULL << KVM_HC_MAP_GPA_RANGE } };
	union init_vm_buf b;
	struct kvm_userspace_memory_region2 r = {
		.slot = 0, .flags = KVM_MEM_GUEST_MEMFD, .guest_phys_addr = GPA,
		.memory_size = MEM_SIZE,
	};

	memset(m, 0, sizeof(*m));
	m->kvm = pm_kvm_open();
	m->vm = pm_kvm_ioctl(m->kvm, KVM_CREATE_VM, KVM_X86_TDX_VM);
	assert_true(m->vm >= 0);
	m->gmem = pm_kvm_ioctl(m->vm, KVM_CREATE_GUEST_MEMFD, &cg);
	assert_true(m->gmem >= 0);
	m->shared = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(m->shared != MAP_FAILED);
	r.userspace_addr = (uint64_t)(uintptr_t)m->shared;
	r.guest_memfd = (uint32_t)m->gmem;
	assert_int_equal(pm_kvm_ioctl(m->vm, KVM_SET_USER_MEMORY_REGION2, &r), 0);
	assert_int_equal(pm_kvm_ioctl(m->vm, KVM_ENABLE_CAP, &cap), 0);
	assert_int_equal(set_attr(m, GPA, MEM_SIZE, true), 0);
	m->vcpu = pm_kvm_ioctl(m->vm, KVM_CREATE_VCPU, 0);
	assert_true(m->vcpu >= 0);
	m->run = pm_kvm_mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, m->vcpu, 0);
	assert_true(m->run != MAP_FAILED);
	if (gpa_bits) {
		init_vm_arg(&b, gpa_bits);
		assert_int_equal(tdx_cmd(m->vm, KVM_TDX_INIT_VM, 0, &b, NULL), 0);
		assert_int_equal(tdx_cmd(m->vcpu, KVM_TDX_INIT_VCPU, 0, NULL, NULL), 0);
	}
}

static void vmm_create(struct vmm *m, unsigned int gpa_bits)
{
	vmm_create_flags(m, gpa_bits, 0);
}

static void vmm_destroy(struct vmm *m)
{
	assert_int_equal(pm_kvm_munmap(m->run, PAGE), 0);
	assert_int_equal(pm_kvm_close(m->vcpu), 0);
	assert_int_equal(pm_kvm_close(m->gmem), 0);
	assert_int_equal(pm_kvm_close(m->vm), 0);
	assert_int_equal(pm_kvm_close(m->kvm), 0);
	munmap(m->shared, MEM_SIZE);
}

static void vmm_finalize(struct vmm *m)
{
	assert_int_equal(tdx_cmd(m->vm, KVM_TDX_FINALIZE_VM, 0, NULL, NULL), 0);
}

static void vmm_guest(struct vmm *m, void (*fn)(struct pm_guest *, void *), void *arg)
{
	struct pm_guest_entry e = { .fn = fn, .arg = arg };

	assert_int_equal(pm_kvm_ioctl(m->vcpu, PM_KVM_SET_GUEST, &e), 0);
}

/* The uAPI's name/value statistics, read back into the typed struct. */
static struct tdx_stats tdx_stats(struct vmm *m)
{
	static const struct { const char *name; size_t off; } fields[] = {
#define F(n, f) { n, offsetof(struct tdx_stats, f) }
		F("sept_4k", sept_entries[0]), F("sept_2m", sept_entries[1]),
		F("sept_1g", sept_entries[2]), F("sept_tables", sept_entries[3]),
		F("busy_retries", busy_retries), F("busy_injected", busy_injected),
		F("frozen_retries", frozen_retries), F("demotions", demotions),
		F("leaked_pages", leaked_pages), F("fatal_events", fatal_events),
		F("pending", pending), F("page_adds", page_adds), F("page_augs", page_augs),
		F("page_removes", page_removes), F("mr_extends", mr_extends), F("tracks", tracks),
		F("held_frames", held_frames), F("last_error", last_error),
#undef F
	};
	struct pm_model_stats ms;
	struct tdx_stats st;

	assert_int_equal(pm_kvm_ioctl(m->vm, PM_KVM_GET_MODEL_STATS, &ms), 0);
	assert_int_equal(ms.nr, PM_ARRAY_SIZE(fields));
	for (size_t i = 0; i < PM_ARRAY_SIZE(fields); i++) {
		assert_string_equal(ms.v[i].name, fields[i].name);
		memcpy((char *)&st + fields[i].off, &ms.v[i].value, sizeof(uint64_t));
	}
	return st;
}

/* Answers a MAP_GPA_RANGE exit: converts, records, replies. */
static void vmm_map_gpa(struct vmm *m)
{
	__u64 *a = m->run->hypercall.args;

	assert_int_equal(m->run->hypercall.nr, KVM_HC_MAP_GPA_RANGE);
	if (m->map_gpa_exits < 8)
		memcpy(m->map_gpa_args[m->map_gpa_exits], a, 3 * sizeof(*a));
	m->map_gpa_exits++;
	assert_int_equal(set_attr(m, a[0], a[1] * PAGE, a[2] & KVM_MAP_GPA_RANGE_ENCRYPTED), 0);
	m->run->hypercall.ret = (uint64_t)m->map_gpa_ret;
	if (m->kick_on_map_gpa)
		m->run->immediate_exit = 1;
}

/* Runs to the next ucall or system event, answering memory faults
 * (implicit conversion) and MAP_GPA_RANGE. Returns the exit reason. */
static uint32_t vmm_run(struct vmm *m, struct pm_ucall *uc)
{
	for (;;) {
		int r = pm_kvm_ioctl(m->vcpu, KVM_RUN, 0);

		if (r < 0 && errno == EINTR) {
			m->run->immediate_exit = 0;
			continue;
		}
		if (m->run->exit_reason == KVM_EXIT_MEMORY_FAULT) {
			assert_int_equal(r, -1);
			m->memory_faults++;
			assert_int_equal(set_attr(m, m->run->memory_fault.gpa, PAGE,
						  m->run->memory_fault.flags & KVM_MEMORY_EXIT_FLAG_PRIVATE), 0);
			continue;
		}
		assert_int_equal(r, 0);
		if (m->run->exit_reason == KVM_EXIT_HYPERCALL) {
			vmm_map_gpa(m);
			continue;
		}
		if (m->run->exit_reason == PM_EXIT_UCALL) {
			pm_get_ucall(m->vcpu, uc);
			if (uc->cmd == PM_UCALL_ABORT)
				fail_msg("guest aborted: %s", uc->msg);
		}
		return m->run->exit_reason;
	}
}

static uint64_t vmm_sync(struct vmm *m)
{
	struct pm_ucall uc;

	assert_int_equal(vmm_run(m, &uc), PM_EXIT_UCALL);
	assert_int_equal(uc.cmd, PM_UCALL_SYNC);
	return uc.args[0];
}

/* ---- the build ---- */

static uint8_t image[4][4096] __attribute__((aligned(4096)));

static void fill_image(void)
{
	for (int p = 0; p < 4; p++)
		for (int i = 0; i < 4096; i++)
			image[p][i] = (uint8_t)(i * 13 + p * 71 + (i >> 9));
}

static long init_mem(struct vmm *m, uint64_t src, uint64_t gpa, uint64_t n, uint32_t flags)
{
	struct kvm_tdx_init_mem_region r = { .source_addr = src, .gpa = gpa, .nr_pages = n };

	return tdx_cmd(m->vcpu, KVM_TDX_INIT_MEM_REGION, flags, &r, NULL);
}

static void test_init_vm_errors_and_the_shared_bit(void **state)
{
	union init_vm_buf b;
	struct kvm_tdx_cmd cmd = { .id = KVM_TDX_INIT_VM, .hw_error = 1 };
	uint8_t digest[48];
	struct vmm m;

	vmm_create(&m, 0);
	init_vm_arg(&b, 48);
	cmd.data = (uint64_t)(uintptr_t)&b;
	assert_fails(pm_kvm_ioctl(m.vm, KVM_MEMORY_ENCRYPT_OP, &cmd), EINVAL);     /* hw_error in */
	assert_fails(tdx_cmd(m.vm, KVM_TDX_INIT_VM, 1, &b, NULL), EINVAL);         /* flags */
	assert_fails(tdx_cmd(m.vm, KVM_TDX_CMD_NR_MAX, 0, &b, NULL), EINVAL);      /* id */
	assert_fails(tdx_cmd(m.vm, KVM_TDX_INIT_MEM_REGION, 0, &b, NULL), EINVAL); /* vCPU cmd */
	assert_fails(tdx_cmd(m.vcpu, KVM_TDX_INIT_VCPU, 0, NULL, NULL), EINVAL);   /* no INIT_VM */
	b.vm.cpuid.nent = KVM_MAX_CPUID_ENTRIES + 1;
	assert_fails(tdx_cmd(m.vm, KVM_TDX_INIT_VM, 0, &b, NULL), E2BIG);
	init_vm_arg(&b, 48);
	b.vm.reserved[11] = 1;
	assert_fails(tdx_cmd(m.vm, KVM_TDX_INIT_VM, 0, &b, NULL), EINVAL);
	init_vm_arg(&b, 50);
	assert_fails(tdx_cmd(m.vm, KVM_TDX_INIT_VM, 0, &b, NULL), EINVAL);         /* GPAW */
	init_vm_arg(&b, 48);
	b.vm.cpuid.nent = 0;
	assert_fails(tdx_cmd(m.vm, KVM_TDX_INIT_VM, 0, &b, NULL), EINVAL);         /* no leaf */
	assert_fails(tdx_cmd(m.vm, KVM_TDX_FINALIZE_VM, 0, NULL, NULL), EINVAL);
	assert_fails(pm_kvm_ioctl(m.vm, PM_KVM_GET_MEASUREMENT, digest), EINVAL);
	init_vm_arg(&b, 48);
	assert_int_equal(tdx_cmd(m.vm, KVM_TDX_INIT_VM, 0, &b, NULL), 0);
	assert_fails(tdx_cmd(m.vm, KVM_TDX_INIT_VM, 0, &b, NULL), EINVAL);         /* twice */
	assert_fails(tdx_cmd(m.vcpu, KVM_TDX_INIT_VCPU, 1, NULL, NULL), EINVAL);
	assert_int_equal(tdx_cmd(m.vcpu, KVM_TDX_INIT_VCPU, 0, NULL, NULL), 0);
	assert_fails(tdx_cmd(m.vcpu, KVM_TDX_INIT_VCPU, 0, NULL, NULL), EINVAL);   /* twice */
	assert_fails(pm_kvm_ioctl(m.vm, PM_KVM_GET_MEASUREMENT, digest), EINVAL);  /* not final */
	/* Not runnable before FINALIZE. */
	assert_fails(pm_kvm_ioctl(m.vcpu, KVM_RUN, 0), EINVAL);
	vmm_destroy(&m);
}

static void put_block(uint8_t *out, const char *tag, uint64_t gpa)
{
	memset(out, 0, 128);
	memcpy(out, tag, strlen(tag));
	for (int i = 0; i < 8; i++)
		out[16 + i] = (uint8_t)(gpa >> (8 * i));
}

/* The MRTD of: pages 0-1 measured at GPA, page 2 unmeasured at GPA + 2
 * pages, as the reference algorithm lays it out. */
static void expected_mrtd(uint8_t out[48])
{
	static uint8_t stream[2 * (128 + 16 * 384) + 128];
	unsigned int len;
	size_t off = 0;

	for (int p = 0; p < 2; p++) {
		put_block(stream + off, "MEM.PAGE.ADD", GPA + p * PAGE);
		off += 128;
		for (int c = 0; c < 16; c++) {
			put_block(stream + off, "MR.EXTEND", GPA + p * PAGE + c * 256);
			memcpy(stream + off + 128, image[p] + c * 256, 256);
			off += 384;
		}
	}
	put_block(stream + off, "MEM.PAGE.ADD", GPA + 2 * PAGE);
	off += 128;
	assert_int_equal(off, sizeof(stream));
	assert_int_equal(EVP_Digest(stream, off, out, &len, EVP_sha384(), NULL), 1);
}

static void guest_reads_image(struct pm_guest *g, void *arg)
{
	uint8_t buf[4096];
	uint64_t good = 0;

	for (int p = 0; p < 3; p++) {
		pm_guest_read(g, GPA + p * PAGE, buf, sizeof(buf));
		good += !memcmp(buf, image[p], sizeof(buf));
	}
	pm_guest_sync(g, good);
}

static void test_measured_build_and_its_errors(void **state)
{
	uint64_t src = (uint64_t)(uintptr_t)image[0], hw = 0;
	struct kvm_tdx_init_mem_region r;
	uint8_t digest[48], want[48];
	struct tdx_stats st;
	struct vmm m;

	fill_image();
	vmm_create(&m, 48);
	assert_fails(init_mem(&m, src, GPA, 2, 2), EINVAL);                 /* flags */
	assert_fails(init_mem(&m, src + 1, GPA, 2, 0), EINVAL);             /* source */
	assert_fails(init_mem(&m, src, GPA + 8, 2, 0), EINVAL);             /* gpa */
	assert_fails(init_mem(&m, src, GPA, 0, 0), EINVAL);                 /* empty */
	assert_fails(init_mem(&m, src, GPA | SHARED47, 1, 0), EINVAL);      /* shared GPA */
	assert_fails(init_mem(&m, src, SHARED47 - PAGE, 2, 0), EINVAL);     /* crosses the bit */
	assert_int_equal(set_attr(&m, GPA + 8 * PAGE, PAGE, false), 0);
	assert_fails(init_mem(&m, src, GPA + 8 * PAGE, 1, 0), EINVAL);      /* not private */
	assert_fails(init_mem(&m, src, 0, 1, 0), EINVAL);                   /* no memslot */
	assert_int_equal(init_mem(&m, src, GPA, 2, KVM_TDX_MEASURE_MEMORY_REGION), 0);
	assert_int_equal(init_mem(&m, src + 2 * PAGE, GPA + 2 * PAGE, 1, 0), 0);
	/* A page already added: EEXIST, the region left as it stood. */
	r = (struct kvm_tdx_init_mem_region){ .source_addr = src, .gpa = GPA + PAGE, .nr_pages = 2 };
	assert_fails(tdx_cmd(m.vcpu, KVM_TDX_INIT_MEM_REGION, 0, &r, &hw), EEXIST);
	assert_int_equal(r.gpa, GPA + PAGE);
	assert_int_equal(r.nr_pages, 2);
	st = tdx_stats(&m);
	assert_int_equal(st.page_adds, 3);
	assert_int_equal(st.mr_extends, 32);
	assert_int_equal(st.sept_entries[0], 3);
	vmm_finalize(&m);
	assert_fails(tdx_cmd(m.vm, KVM_TDX_FINALIZE_VM, 0, NULL, NULL), EINVAL);
	assert_fails(init_mem(&m, src + 3 * PAGE, GPA + 3 * PAGE, 1, 0), EINVAL);
	assert_int_equal(pm_kvm_ioctl(m.vm, PM_KVM_GET_MEASUREMENT, digest), 0);
	expected_mrtd(want);
	assert_memory_equal(digest, want, 48);
	/* The guest finds its image in place (PAGE.ADD pages need no accept). */
	vmm_guest(&m, guest_reads_image, NULL);
	assert_int_equal(vmm_sync(&m), 3);
	assert_int_equal(tdx_stats(&m).fatal_events, 0);
	vmm_destroy(&m);
}

/* A PAGE.ADD that met OPERAND_BUSY once (another caller held its S-EPT
 * entry) is retried and succeeds: the ioctl succeeds with hw_error 0, not
 * the status of the retried attempt. */
static int busy_once_state;

static void busy_once_pause(struct pm_vm *vm, gfn_t gfn, int level)
{
	struct tdx_td *td = tdx_td(to_tdx(vm));

	if (level)
		return;
	if (busy_once_state == 0) {
		assert_int_equal(tdx_module_test_hold_entry(td, gfn << PM_PAGE_SHIFT, 0, true), 0);
		busy_once_state = 1;
	} else if (busy_once_state == 1) {
		assert_int_equal(tdx_module_test_hold_entry(td, gfn << PM_PAGE_SHIFT, 0, false), 0);
		busy_once_state = 2;
	}
}

/* A source the VMM has not mapped, or cannot read, is EFAULT (KVM's
 * get_user_pages fails there), not a crash; nothing is added. */
static void test_build_from_an_unmapped_source_is_efault(void **state)
{
	struct kvm_tdx_init_mem_region r = { .gpa = GPA, .nr_pages = 1 };
	struct vmm m;
	uint8_t *gone;

	vmm_create(&m, 48);   /* first: its own mappings must not fill the hole below */
	gone = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(gone != MAP_FAILED);
	assert_int_equal(mprotect(gone + PAGE, PAGE, PROT_NONE), 0);
	assert_int_equal(munmap(gone, PAGE), 0);
	r.source_addr = (uintptr_t)gone;
	assert_fails(tdx_cmd(m.vcpu, KVM_TDX_INIT_MEM_REGION, 0, &r, NULL), EFAULT);
	r.source_addr = (uintptr_t)gone + PAGE;
	assert_fails(tdx_cmd(m.vcpu, KVM_TDX_INIT_MEM_REGION, 0, &r, NULL), EFAULT);
	assert_int_equal(r.nr_pages, 1);
	assert_int_equal(tdx_stats(&m).page_adds, 0);
	/* The same page from a readable source goes in. */
	fill_image();
	r.source_addr = (uintptr_t)image[0];
	assert_int_equal(tdx_cmd(m.vcpu, KVM_TDX_INIT_MEM_REGION, 0, &r, NULL), 0);
	assert_int_equal(tdx_stats(&m).page_adds, 1);
	vmm_destroy(&m);
	munmap(gone + PAGE, PAGE);
}

static void test_build_retried_after_busy_reports_no_hw_error(void **state)
{
	uint64_t src = (uint64_t)(uintptr_t)image[0], hw = ~0ULL;
	struct kvm_tdx_init_mem_region r = { .source_addr = src, .gpa = GPA, .nr_pages = 1 };
	struct vmm m;

	fill_image();
	vmm_create(&m, 48);
	busy_once_state = 0;
	tdx_test_set_hook_pause(busy_once_pause);
	assert_int_equal(tdx_cmd(m.vcpu, KVM_TDX_INIT_MEM_REGION, 0, &r,
				 &hw), 0);
	tdx_test_set_hook_pause(NULL);
	assert_int_equal(busy_once_state, 2);
	assert_true(tdx_stats(&m).busy_retries >= 1);
	assert_int_equal(hw, 0);
	assert_int_equal(r.nr_pages, 0);
	vmm_destroy(&m);
}

/* ---- pending pages and ACCEPT ---- */

struct acc_args {
	uint64_t gpa, size;
};

static void guest_accepts_and_uses(struct pm_guest *g, void *arg)
{
	struct acc_args *a = arg;
	uint64_t good = 0;

	/* Nothing is mapped 1G: the VMM maps at most 2M, the accept mismatches. */
	if (PM_ALIGNED(a->gpa, 1ULL << 30))
		PM_GUEST_ASSERT(g, pm_guest_tdx_accept(g, a->gpa, PM_TDX_LEVEL_1G) ==
				   PM_TDX_PAGE_SIZE_MISMATCH);
	PM_GUEST_ASSERT(g, pm_guest_tdx_accept_range(g, a->gpa, a->size) == PM_TDX_SUCCESS);
	for (uint64_t gpa = a->gpa; gpa < a->gpa + a->size; gpa += PAGE)
		good += pm_guest_read64(g, gpa) == 0;       /* accepted pages read zero */
	for (uint64_t gpa = a->gpa; gpa < a->gpa + a->size; gpa += PAGE)
		pm_guest_write64(g, gpa, gpa ^ 0x5A5A);
	for (uint64_t gpa = a->gpa; gpa < a->gpa + a->size; gpa += PAGE)
		good += pm_guest_read64(g, gpa) == (gpa ^ 0x5A5A);
	pm_guest_sync(g, good);
	/* Accepting again is no error; the pages keep their data. */
	PM_GUEST_ASSERT(g, pm_guest_tdx_accept(g, a->gpa, PM_TDX_LEVEL_4K) ==
			   PM_TDX_PAGE_ALREADY_ACCEPTED ||
			   pm_guest_tdx_accept(g, a->gpa, PM_TDX_LEVEL_2M) == PM_TDX_PAGE_ALREADY_ACCEPTED);
	pm_guest_sync(g, pm_guest_read64(g, a->gpa) == (a->gpa ^ 0x5A5A));
}

static void test_accept_4k_then_use(void **state)
{
	struct acc_args a = { .gpa = GPA + 3 * PAGE, .size = 5 * PAGE };
	struct tdx_stats st;
	struct vmm m;

	vmm_create(&m, 48);
	vmm_finalize(&m);
	vmm_guest(&m, guest_accepts_and_uses, &a);
	assert_int_equal(vmm_sync(&m), 10);
	assert_int_equal(vmm_sync(&m), 1);
	st = tdx_stats(&m);
	assert_int_equal(st.page_augs, 5);
	assert_int_equal(st.pending, 0);
	assert_int_equal(st.sept_entries[0], 5);
	assert_int_equal(st.sept_entries[1], 0);
	assert_int_equal(st.fatal_events, 0);
	vmm_destroy(&m);
}

/* NO_DIRECT_MAP on a TD: accepted pages' frames fault at their direct-map
 * address; the TDX module (AUG, the guest's accesses) reaches them. */
static void test_no_direct_map_accepted_pages(void **state)
{
	struct acc_args a = { .gpa = GPA + 3 * PAGE, .size = 5 * PAGE };
	struct vmm m;

	vmm_create_flags(&m, 48, GUEST_MEMFD_FLAG_NO_DIRECT_MAP);
	vmm_finalize(&m);
	vmm_guest(&m, guest_accepts_and_uses, &a);
	assert_int_equal(vmm_sync(&m), 10);
	for (uint64_t i = 3; i < 8; i++) {
		struct pm_gmem *g = pm_test_gmem_of(m.gmem);
		pm_pfn_t pfn = pm_gmem_peek_pfn(g, i);

		assert_true(pfn != PM_PFN_INVALID);
		assert_int_equal(pm_test_read_faults(pm_pfn_to_direct(pfn)), 1);
	}
	assert_int_equal(vmm_sync(&m), 1);
	vmm_destroy(&m);
}

static void accept_2m(bool huge)
{
	struct acc_args a = { .gpa = GPA, .size = 2 * MIB };
	struct pm_tdx_config cfg = { .flags = huge ? 0 : PM_TDX_NO_HUGE };
	struct tdx_stats st;
	struct vmm m;

	vmm_create(&m, 48);
	assert_int_equal(pm_kvm_ioctl(m.vm, PM_KVM_TDX_CONFIG, &cfg), 0);
	vmm_finalize(&m);
	vmm_guest(&m, guest_accepts_and_uses, &a);
	assert_int_equal(vmm_sync(&m), 1024);
	assert_int_equal(vmm_sync(&m), 1);
	st = tdx_stats(&m);
	assert_int_equal(st.sept_entries[1], huge ? 1 : 0);
	assert_int_equal(st.sept_entries[0], huge ? 0 : 512);
	assert_int_equal(st.page_augs, huge ? 1 : 512);
	assert_int_equal(st.pending, 0);
	vmm_destroy(&m);
}

static void test_accept_2m_maps_one_2m_page(void **state)
{
	accept_2m(true);
}

static void test_accept_2m_without_huge_pages_falls_back_to_4k(void **state)
{
	accept_2m(false);
}

/* A 4K accept whose EPT violation became an implicit conversion exit: the
 * "at most the level accepted" limit of that fault must not stay on the
 * thread while the guest is out, capping the VMM's own faults. */
static int pre_fault(int vcpu, uint64_t gpa, uint64_t size);

static void guest_accepts_a_shared_page(struct pm_guest *g, void *arg)
{
	pm_guest_sync(g, pm_guest_tdx_accept(g, GPA + 3 * PAGE, PM_TDX_LEVEL_4K));
}

static void test_accept_level_limit_ends_with_the_exit(void **state)
{
	struct tdx_stats st;
	struct vmm m;

	vmm_create(&m, 48);
	vmm_finalize(&m);
	assert_int_equal(set_attr(&m, GPA + 3 * PAGE, PAGE, false), 0);
	vmm_guest(&m, guest_accepts_a_shared_page, NULL);
	assert_fails(pm_kvm_ioctl(m.vcpu, KVM_RUN, 0), EFAULT);
	assert_int_equal(m.run->exit_reason, KVM_EXIT_MEMORY_FAULT);
	/* The VMM, on the same thread, pre-faults a uniformly private 2M
	 * block: nothing asked for 4K there. */
	assert_int_equal(pre_fault(m.vcpu, GPA + 4 * MIB, 2 * MIB), 0);
	st = tdx_stats(&m);
	assert_int_equal(st.sept_entries[1], 1);
	assert_int_equal(st.sept_entries[0], 0);
	/* The guest's accept completes once the page is private. */
	assert_int_equal(set_attr(&m, GPA + 3 * PAGE, PAGE, true), 0);
	assert_int_equal(vmm_sync(&m), PM_TDX_SUCCESS);
	st = tdx_stats(&m);
	assert_int_equal(st.sept_entries[0], 1);
	vmm_destroy(&m);
}

static void guest_accepts_4k_in_a_2m_block(struct pm_guest *g, void *arg)
{
	pm_guest_sync(g, pm_guest_tdx_accept(g, GPA + 8 * MIB + 5 * PAGE, PM_TDX_LEVEL_4K));
}

struct run_on_thread {
	struct vmm *m;
	uint64_t sync;
};

static void *vcpu_thread_syncs(void *p)
{
	struct run_on_thread *r = p;

	r->sync = vmm_sync(r->m);
	return NULL;
}

/* The accept's "at most 4K" limit lives in the vCPU's fault, not in the
 * thread: the vCPU exits to the VMM (the page is shared), and its next
 * KVM_RUN, on another thread, maps the page 4K although the whole 2M block
 * is private by then and its guest_memfd page is 2M. */
static void test_accept_level_limit_survives_a_run_on_another_thread(void **state)
{
	struct run_on_thread r;
	struct tdx_stats st;
	pthread_t t;
	struct vmm m;

	vmm_create(&m, 48);
	vmm_finalize(&m);
	assert_int_equal(set_attr(&m, GPA + 8 * MIB + 5 * PAGE, PAGE, false), 0);
	vmm_guest(&m, guest_accepts_4k_in_a_2m_block, NULL);
	assert_fails(pm_kvm_ioctl(m.vcpu, KVM_RUN, 0), EFAULT);
	assert_int_equal(m.run->exit_reason, KVM_EXIT_MEMORY_FAULT);
	assert_int_equal(m.run->memory_fault.gpa, GPA + 8 * MIB + 5 * PAGE);
	assert_int_equal(set_attr(&m, GPA + 8 * MIB + 5 * PAGE, PAGE, true), 0);
	r = (struct run_on_thread){ .m = &m };
	assert_int_equal(pthread_create(&t, NULL, vcpu_thread_syncs, &r), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(r.sync, PM_TDX_SUCCESS);
	st = tdx_stats(&m);
	assert_int_equal(st.sept_entries[0], 1);
	assert_int_equal(st.sept_entries[1], 0);
	/* Control: without the limit the same block maps 2M. */
	assert_int_equal(pre_fault(m.vcpu, GPA + 10 * MIB, PAGE), 0);
	assert_int_equal(tdx_stats(&m).sept_entries[1], 1);
	vmm_destroy(&m);
}

static void guest_touches_unaccepted(struct pm_guest *g, void *arg)
{
	pm_guest_read64(g, GPA + 7 * PAGE + 16);
	pm_guest_sync(g, 1);           /* never reached */
}

static void test_touching_a_pending_page_is_fatal_for_the_td(void **state)
{
	struct pm_ucall uc;
	struct vmm m;

	vmm_create(&m, 48);
	vmm_finalize(&m);
	vmm_guest(&m, guest_touches_unaccepted, NULL);
	assert_int_equal(vmm_run(&m, &uc), KVM_EXIT_SYSTEM_EVENT);
	assert_int_equal(m.run->system_event.type, KVM_SYSTEM_EVENT_TDX_FATAL);
	assert_int_equal(m.run->system_event.data[0], GPA + 7 * PAGE + 16);
	assert_int_equal(tdx_stats(&m).fatal_events, 1);
	assert_int_equal(tdx_stats(&m).pending, 1);
	/* The TD never runs again. */
	assert_int_equal(pm_kvm_ioctl(m.vcpu, KVM_RUN, 0), 0);
	assert_int_equal(m.run->exit_reason, KVM_EXIT_SYSTEM_EVENT);
	vmm_destroy(&m);
}

/* ---- the shared bit, the two roots, conversions ---- */

static void guest_private_then_shared(struct pm_guest *g, void *arg)
{
	uint64_t gpa = GPA + 9 * PAGE;

	PM_GUEST_ASSERT(g, pm_guest_tdx_accept(g, gpa, PM_TDX_LEVEL_4K) == PM_TDX_SUCCESS);
	pm_guest_write64(g, gpa, 0x1111);
	pm_guest_sync(g, pm_guest_read64(g, gpa));
	/* The same gfn through the shared bit: an implicit conversion. */
	pm_guest_write64(g, gpa | pm_guest_tdx_shared_bit(g), 0x2222);
	pm_guest_sync(g, pm_guest_read64(g, gpa | pm_guest_tdx_shared_bit(g)));
}

static void test_shared_bit_selects_the_direct_root_and_converts(void **state)
{
	struct tdx_stats st;
	struct vmm m;

	vmm_create(&m, 48);
	vmm_finalize(&m);
	vmm_guest(&m, guest_private_then_shared, NULL);
	assert_int_equal(vmm_sync(&m), 0x1111);
	assert_int_equal(m.memory_faults, 0);
	assert_int_equal(vmm_sync(&m), 0x2222);
	assert_int_equal(m.memory_faults, 1);
	/* The shared write went to the VMM's memory... */
	assert_int_equal(*(uint64_t *)(m.shared + 9 * PAGE), 0x2222);
	/* ... and the private page left the S-EPT through BLOCK, TRACK, REMOVE. */
	st = tdx_stats(&m);
	assert_int_equal(st.page_removes, 1);
	assert_int_equal(st.tracks, 1);
	assert_int_equal(st.sept_entries[0], 0);
	vmm_destroy(&m);
}

static void guest_shared_write(struct pm_guest *g, void *arg)
{
	uint64_t bit = pm_guest_tdx_shared_bit(g);

	pm_guest_sync(g, bit);
	pm_guest_write64(g, (GPA + 3 * PAGE) | bit, 0x3333);
	pm_guest_sync(g, 0);
}

static void shared_bit_case(unsigned int gpa_bits, uint64_t bit)
{
	struct vmm m;

	vmm_create(&m, gpa_bits);
	vmm_finalize(&m);
	vmm_guest(&m, guest_shared_write, NULL);
	assert_int_equal(vmm_sync(&m), bit);
	vmm_sync(&m);
	assert_int_equal(m.memory_faults, 1);       /* shared access to a private gfn */
	assert_int_equal(*(uint64_t *)(m.shared + 3 * PAGE), 0x3333);
	vmm_destroy(&m);
}

#define MMAP_SECRET 0x5ec2e7c0ffee0002ULL

static void guest_private_and_shared_pages_in_gmem(struct pm_guest *g, void *arg)
{
	uint64_t bit = pm_guest_tdx_shared_bit(g);

	PM_GUEST_ASSERT(g, pm_guest_tdx_accept(g, GPA + 3 * PAGE, PM_TDX_LEVEL_4K) == PM_TDX_SUCCESS);
	pm_guest_write64(g, GPA + 3 * PAGE, MMAP_SECRET);
	/* A shared page: an implicit conversion, then the page comes from
	 * the file (a gmem-only slot). */
	pm_guest_write64(g, (GPA + 700 * PAGE) | bit, 0x4444);
	pm_guest_sync(g, pm_guest_read64(g, GPA + 3 * PAGE) == MMAP_SECRET &&
			 pm_guest_read64(g, (GPA + 700 * PAGE) | bit) == 0x4444);
}

/* A TD's guest_memfd mapped by the VMM (MMAP on every x86 type): the
 * private page faults in the mapping, the shared page works for the guest. */
static void test_mmap_private_page_faults_shared_page_works(void **state)
{
	int kvm = pm_kvm_open(), vm = pm_kvm_ioctl(kvm, KVM_CREATE_VM, KVM_X86_TDX_VM);
	uint8_t *view;
	struct vmm m;

	assert_int_equal(pm_kvm_ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_FLAGS) &
			 (GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED), GUEST_MEMFD_FLAG_MMAP);
	pm_kvm_close(vm);
	pm_kvm_close(kvm);
	vmm_create_flags(&m, 48, GUEST_MEMFD_FLAG_MMAP);
	vmm_finalize(&m);
	vmm_guest(&m, guest_private_and_shared_pages_in_gmem, NULL);
	assert_int_equal(vmm_sync(&m), 1);
	assert_int_equal(m.memory_faults, 1);
	view = pm_kvm_mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, m.gmem, 0);
	assert_true(view != MAP_FAILED);
	assert_true(pm_test_sigbus(view + 3 * PAGE, false, NULL));
	assert_true(pm_test_sigbus(view + 3 * PAGE, true, NULL));
	assert_true(pm_test_sigbus(view + 700 * PAGE, false, NULL));
	/* The shared write went to the file, not the VMM's memory. */
	assert_int_equal(*(uint64_t *)(m.shared + 700 * PAGE), 0);
	assert_int_equal(pm_kvm_munmap(view, MEM_SIZE), 0);
	vmm_destroy(&m);
}

static void test_5_level_gpaw_moves_the_shared_bit_to_51(void **state)
{
	shared_bit_case(48, 1ULL << 47);
	shared_bit_case(52, 1ULL << 51);
}

/* ---- MapGPA ---- */

struct map_args {
	uint64_t gpa, size;
};

static void guest_map_gpa(struct pm_guest *g, void *arg)
{
	struct map_args *a = arg;
	uint64_t next = 0, status;

	for (;;) {
		status = pm_guest_tdx_map_gpa(g, a->gpa, a->size, &next);
		pm_guest_sync(g, status);
		pm_guest_sync(g, next);
	}
}

static void test_map_gpa_exits_in_2m_chunks_with_retry(void **state)
{
	struct map_args a = { .gpa = GPA | SHARED47, .size = 5 * MIB };
	struct vmm m;

	vmm_create(&m, 48);
	vmm_finalize(&m);
	vmm_guest(&m, guest_map_gpa, &a);
	assert_int_equal(vmm_sync(&m), PM_TDVMCALL_SUCCESS);
	assert_int_equal(vmm_sync(&m), (GPA | SHARED47) + 5 * MIB);
	assert_int_equal(m.map_gpa_exits, 3);
	for (unsigned int i = 0; i < 3; i++) {
		assert_int_equal(m.map_gpa_args[i][0], GPA + i * 2 * MIB);    /* bit stripped */
		assert_int_equal(m.map_gpa_args[i][1], i < 2 ? 512 : 256);
		assert_int_equal(m.map_gpa_args[i][2], KVM_MAP_GPA_RANGE_DECRYPTED);
	}
	/* Back to private; the VMM kicks the vCPU while it answers: RETRY
	 * after the first chunk, resuming at the second. */
	a.gpa = GPA;
	m.map_gpa_exits = 0;
	m.kick_on_map_gpa = true;
	assert_int_equal(vmm_sync(&m), PM_TDVMCALL_RETRY);
	assert_int_equal(vmm_sync(&m), GPA + 2 * MIB);
	assert_int_equal(m.map_gpa_exits, 1);
	assert_int_equal(m.map_gpa_args[0][2], KVM_MAP_GPA_RANGE_ENCRYPTED);
	/* The VMM refuses: INVALID_OPERAND at the refused chunk. */
	m.kick_on_map_gpa = false;
	m.map_gpa_ret = -KVM_EINVAL;
	assert_int_equal(vmm_sync(&m), PM_TDVMCALL_INVALID_OPERAND);
	assert_int_equal(vmm_sync(&m), GPA);
	/* Bad ranges: no exit at all. */
	m.map_gpa_exits = 0;
	a.gpa = GPA + 1;
	assert_int_equal(vmm_sync(&m), PM_TDVMCALL_INVALID_OPERAND);
	vmm_sync(&m);
	a.gpa = SHARED47 - MIB;         /* private start, shared end */
	a.size = 2 * MIB;
	assert_int_equal(vmm_sync(&m), PM_TDVMCALL_INVALID_OPERAND);
	vmm_sync(&m);
	assert_int_equal(m.map_gpa_exits, 0);
	vmm_destroy(&m);
}

/* ---- 2M private pages and demotion ---- */

static void guest_accept_2m_then_sync(struct pm_guest *g, void *arg)
{
	uint64_t base = GPA + 4 * MIB, good = 0;

	PM_GUEST_ASSERT(g, pm_guest_tdx_accept(g, base, PM_TDX_LEVEL_2M) == PM_TDX_SUCCESS);
	for (uint64_t gpa = base; gpa < base + 2 * MIB; gpa += PAGE)
		pm_guest_write64(g, gpa, gpa * 3);
	pm_guest_sync(g, 0);
	/* One 4K page was converted to shared: the other 511 keep data. */
	for (uint64_t gpa = base; gpa < base + 2 * MIB; gpa += PAGE)
		if (gpa != base + 5 * PAGE)
			good += pm_guest_read64(g, gpa) == gpa * 3;
	pm_guest_sync(g, good);
}

static void test_partial_conversion_demotes_a_2m_page(void **state)
{
	struct tdx_stats st;
	struct vmm m;

	vmm_create(&m, 48);
	vmm_finalize(&m);
	vmm_guest(&m, guest_accept_2m_then_sync, NULL);
	assert_int_equal(vmm_sync(&m), 0);
	st = tdx_stats(&m);
	assert_int_equal(st.sept_entries[1], 1);
	assert_int_equal(set_attr(&m, GPA + 4 * MIB + 5 * PAGE, PAGE, false), 0);
	st = tdx_stats(&m);
	assert_int_equal(st.demotions, 1);
	assert_int_equal(st.sept_entries[1], 0);
	assert_int_equal(st.sept_entries[0], 511);
	assert_int_equal(st.page_removes, 1);
	assert_int_equal(vmm_sync(&m), 511);
	assert_int_equal(tdx_stats(&m).fatal_events, 0);
	vmm_destroy(&m);
}

/* ---- seed 003: the 2M/4K populate race ---- */

static unsigned int stress_seconds(void)
{
	const char *e = getenv("TDX_STRESS_SECONDS");

	return e ? (unsigned int)atoi(e) : 0;
}

static int add_vcpu(struct vmm *m, unsigned int id)
{
	int v = pm_kvm_ioctl(m->vm, KVM_CREATE_VCPU, id);

	assert_true(v >= 0);
	assert_int_equal(tdx_cmd(v, KVM_TDX_INIT_VCPU, 0, NULL, NULL), 0);
	return v;
}

static int pre_fault(int vcpu, uint64_t gpa, uint64_t size)
{
	struct kvm_pre_fault_memory r = { .gpa = gpa, .size = size };

	return pm_kvm_ioctl(vcpu, KVM_PRE_FAULT_MEMORY, &r) ? errno : 0;
}

/* KVM_PRE_FAULT_MEMORY's fault of one page, mapping at most at max_level,
 * as the fault of a vCPU accepting at that level does (the limit travels
 * in the fault). An errno, or 0. */
static int fault_at_most(struct vmm *m, uint64_t gpa, int max_level)
{
	struct pm_fault f = pm_fault_init(gpa >> PM_PAGE_SHIFT, PM_ACCESS_READ);

	f.kind_from_attr = true;
	f.max_level = max_level;
	switch (pm_mmu_fault(pm_test_vm_of(m->vm), &f)) {
	case PM_FAULT_MAPPED:
		return 0;
	case PM_FAULT_MMIO:
		return ENOENT;
	default:
		return f.err;
	}
}

static void set_config(struct vmm *m, unsigned int busy, unsigned int flags)
{
	struct pm_tdx_config cfg = { .busy_per_million = busy, .flags = flags };

	assert_int_equal(pm_kvm_ioctl(m->vm, PM_KVM_TDX_CONFIG, &cfg), 0);
}

struct race {
	struct vmm *m;
	int vcpu_a, vcpu_b;
	uint64_t block;             /* the 2M block both fault into */
	atomic_int a_paused, b_done;
	int a_err, b_err;
};
static struct race *the_race;
static _Thread_local bool tl_pause_here;

/* Vcpu A stops after its first change of the level-1 mirror entry (a new
 * table), before the hook tells the module, until B has met it. */
static void race_pause(struct pm_vm *vm, gfn_t gfn, int level)
{
	struct tdx_vm *t = to_tdx(vm);

	if (!tl_pause_here || level != 1)
		return;
	tl_pause_here = false;
	atomic_store(&the_race->a_paused, 1);
	while (!atomic_load(&the_race->b_done) && !atomic_load(&t->frozen_retries))
		sched_yield();
}

static void *race_a(void *p)
{
	struct race *r = p;

	tl_pause_here = true;
	r->a_err = fault_at_most(r->m, r->block, 0);   /* as a vCPU accepting at 4K */
	return NULL;
}

static void *race_b(void *p)
{
	struct race *r = p;

	while (!atomic_load(&r->a_paused))
		sched_yield();
	r->b_err = pre_fault(r->vcpu_b, r->block + 2 * MIB - PAGE, PAGE);   /* wants 2M */
	atomic_store(&r->b_done, 1);
	return NULL;
}

static void populate_race(bool frozen_protocol)
{
	struct race r = { .block = GPA + 6 * MIB };
	struct tdx_stats st;
	pthread_t a, b;
	struct vmm m;

	vmm_create(&m, 48);
	r.vcpu_b = add_vcpu(&m, 1);
	vmm_finalize(&m);
	set_config(&m, 0, frozen_protocol ? 0 : PM_TDX_NO_FROZEN_PROTOCOL);
	r.m = &m;
	r.vcpu_a = m.vcpu;
	the_race = &r;
	tdx_test_set_hook_pause(race_pause);
	pthread_create(&a, NULL, race_a, &r);
	pthread_create(&b, NULL, race_b, &r);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	tdx_test_set_hook_pause(NULL);
	st = tdx_stats(&m);
	if (frozen_protocol) {
		/* B met the frozen entry, retried, then mapped its page at 4K
		 * under A's table: nothing failed. */
		assert_int_equal(r.a_err, 0);
		assert_int_equal(r.b_err, 0);
		assert_true(st.frozen_retries > 0);
		assert_int_equal(st.sept_entries[0], 2);
		assert_int_equal(st.last_error, 0);
		assert_int_equal(set_attr(&m, GPA, PAGE, true), 0);  /* not bugged */
	} else {
		/* B walked under A's table before SEPT.ADD: its 4K AUG fails
		 * and the VM is bugged, as the seed describes. */
		assert_int_equal(r.a_err, 0);
		assert_int_equal(r.b_err, EIO);
		assert_int_equal(st.last_error, TDX_EPT_WALK_FAILED);
		assert_fails(set_attr(&m, GPA, PAGE, true), EIO);
	}
	assert_int_equal(pm_kvm_close(r.vcpu_b), 0);
	vmm_destroy(&m);
}

static void test_seed003_race_fails_without_the_frozen_protocol(void **state)
{
	populate_race(false);
}

static void test_seed003_race_is_a_retry_with_the_frozen_protocol(void **state)
{
	populate_race(true);
}

/* The long run: two threads fault 4K and 2M into fresh 2M blocks at the
 * same moment, over and over, with the protocol on; never a failure. */
struct storm {
	struct vmm *m;
	int vcpu[2];
	pthread_barrier_t go, done;
	uint64_t block;             /* this round's block; written between barriers */
	bool stop;
	int errs;
};

static void *storm_thread(void *p, int who)
{
	struct storm *s = p;

	for (;;) {
		pthread_barrier_wait(&s->go);
		if (s->stop)
			return NULL;
		for (int i = 0; i < 8; i++) {
			uint64_t gpa = s->block + (uint64_t)((i * 67 + who * 131) % 512) * PAGE;
			/* Thread 0 maps 4K as an accepting vCPU does, thread 1 2M. */
			int err = who == 0 ? fault_at_most(s->m, gpa, 0) : pre_fault(s->vcpu[who], gpa, PAGE);

			if (err)
				__atomic_add_fetch(&s->errs, 1, __ATOMIC_RELAXED);
		}
		pthread_barrier_wait(&s->done);
	}
}

static void *storm_4k(void *p) { return storm_thread(p, 0); }
static void *storm_2m(void *p) { return storm_thread(p, 1); }

static void test_populate_storm_never_fails_with_the_protocol(void **state)
{
	struct storm s = { 0 };
	unsigned int secs = stress_seconds();
	time_t until = time(NULL) + secs;
	struct tdx_stats st;
	pthread_t t[2];
	struct vmm m;
	int round = 0;

	vmm_create(&m, 48);
	s.vcpu[1] = add_vcpu(&m, 1);
	vmm_finalize(&m);
	s.m = &m;
	s.vcpu[0] = m.vcpu;
	pthread_barrier_init(&s.go, NULL, 3);
	pthread_barrier_init(&s.done, NULL, 3);
	pthread_create(&t[0], NULL, storm_4k, &s);
	pthread_create(&t[1], NULL, storm_2m, &s);
	for (; round < 200 || (secs && time(NULL) < until); round++) {
		s.block = GPA + (uint64_t)(round % 8) * 2 * MIB;
		pthread_barrier_wait(&s.go);
		pthread_barrier_wait(&s.done);
		/* Take the block back: every private page leaves the S-EPT. */
		assert_int_equal(set_attr(&m, s.block, 2 * MIB, false), 0);
		assert_int_equal(pm_kvm_fallocate(m.gmem, PUNCH, s.block - GPA, 2 * MIB), 0);
		assert_int_equal(set_attr(&m, s.block, 2 * MIB, true), 0);
		st = tdx_stats(&m);
		assert_int_equal(st.sept_entries[0] + st.sept_entries[1], 0);
	}
	s.stop = true;
	pthread_barrier_wait(&s.go);
	pthread_join(t[0], NULL);
	pthread_join(t[1], NULL);
	st = tdx_stats(&m);
	assert_int_equal(s.errs, 0);
	assert_int_equal(st.last_error, 0);
	assert_int_equal(st.leaked_pages, 0);
	assert_true(st.page_augs > 0);
	print_message("%d rounds, %llu frozen retries, %llu AUGs\n", round,
		      (unsigned long long)st.frozen_retries, (unsigned long long)st.page_augs);
	pthread_barrier_destroy(&s.go);
	pthread_barrier_destroy(&s.done);
	assert_int_equal(pm_kvm_close(s.vcpu[1]), 0);
	vmm_destroy(&m);
}

/* ---- TLB tracking against a vCPU that stays in guest mode ---- */

#define SPIN_PRIVATE (GPA + 11 * PAGE)   /* accepted, then converted by the VMM */
#define SPIN_FLAG    (GPA + 12 * PAGE)   /* shared: the guest's counter, the VMM's stop */

static void guest_spins(struct pm_guest *g, void *arg)
{
	uint64_t flag = SPIN_FLAG | pm_guest_tdx_shared_bit(g);

	PM_GUEST_ASSERT(g, pm_guest_tdx_accept(g, SPIN_PRIVATE, PM_TDX_LEVEL_4K) == PM_TDX_SUCCESS);
	pm_guest_write64(g, SPIN_PRIVATE, 7);
	pm_guest_write64(g, flag, 0);
	pm_guest_sync(g, 0);
	/* In guest mode from here on, until the VMM says stop. */
	for (uint64_t n = 1; pm_guest_read64(g, flag + 8) == 0; n++)
		pm_guest_write64(g, flag, n);
	pm_guest_sync(g, 1);
}

static void *spin_runner(void *p)
{
	struct vmm *m = p;

	assert_int_equal(vmm_sync(m), 1);
	return NULL;
}

static void test_removal_waits_for_a_vcpu_running_in_guest_mode(void **state)
{
	volatile uint64_t *counter;
	struct tdx_stats st;
	pthread_t t;
	struct vmm m;

	vmm_create(&m, 48);
	vmm_finalize(&m);
	assert_int_equal(set_attr(&m, SPIN_FLAG, PAGE, false), 0);
	counter = (volatile uint64_t *)(m.shared + (SPIN_FLAG - GPA));
	vmm_guest(&m, guest_spins, NULL);
	assert_int_equal(vmm_sync(&m), 0);
	pthread_create(&t, NULL, spin_runner, &m);
	while (__atomic_load_n(counter, __ATOMIC_ACQUIRE) < 100)
		sched_yield();
	/* The guest is in guest mode on the current epoch: the removal's
	 * kick must make it re-enter on the next before REMOVE. */
	assert_int_equal(set_attr(&m, SPIN_PRIVATE, PAGE, false), 0);
	st = tdx_stats(&m);
	assert_int_equal(st.page_removes, 1);
	assert_int_equal(st.leaked_pages, 0);
	assert_int_equal(st.last_error, 0);
	assert_true(__atomic_load_n(counter, __ATOMIC_ACQUIRE) > 100);   /* still running */
	__atomic_store_n((volatile uint64_t *)(m.shared + (SPIN_FLAG - GPA) + 8), 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	vmm_destroy(&m);
}

/* ---- BUSY injection ---- */

/* vmm_destroy that also returns the frames the model held back when the
 * guest_memfd was released (read before the VM goes). */
static uint64_t vmm_destroy_held(struct vmm *m)
{
	struct tdx_stats st;

	assert_int_equal(pm_kvm_munmap(m->run, PAGE), 0);
	assert_int_equal(pm_kvm_close(m->vcpu), 0);
	assert_int_equal(pm_kvm_close(m->gmem), 0);
	st = tdx_stats(m);
	assert_int_equal(pm_kvm_close(m->vm), 0);
	assert_int_equal(pm_kvm_close(m->kvm), 0);
	munmap(m->shared, MEM_SIZE);
	if (st.leaked_pages)
		assert_true(st.held_frames >= st.leaked_pages);
	else
		assert_int_equal(st.held_frames, 0);
	return st.held_frames;
}

static uint64_t pool_in_use(void)
{
	struct pm_pool_stats ps;
	int kvm = pm_kvm_open();

	assert_int_equal(pm_kvm_ioctl(kvm, PM_KVM_GET_POOL_STATS, &ps), 0);
	pm_kvm_close(kvm);
	return ps.in_use;
}

/* A zap whose BLOCK meets BUSY twice leaks the page on purpose: the VM is
 * bugged, the page counted, and guest_memfd never frees its frames. */
static void test_a_failed_removal_leaks_the_page_and_counts_it(void **state)
{
	struct acc_args a = { .gpa = GPA + 3 * PAGE, .size = PAGE };
	uint64_t before = pool_in_use(), held;
	struct tdx_stats st;
	struct vmm m;

	vmm_create(&m, 48);
	set_config(&m, 0, PM_TDX_NO_HUGE);
	vmm_finalize(&m);
	vmm_guest(&m, guest_accepts_and_uses, &a);
	assert_int_equal(vmm_sync(&m), 2);
	set_config(&m, 1000000, PM_TDX_NO_HUGE);          /* every SEAMCALL is BUSY */
	assert_int_equal(set_attr(&m, a.gpa, PAGE, false), 0);
	st = tdx_stats(&m);
	assert_int_equal(st.leaked_pages, 1);
	assert_int_equal(st.last_error, TDX_OPERAND_BUSY);
	assert_true(st.busy_retries >= 1);                 /* kicked, retried once */
	assert_fails(pm_kvm_ioctl(m.vcpu, KVM_RUN, 0), EIO);
	/* Releasing the file keeps back the guest_memfd run that holds the
	 * page (here the file's 2M page)... */
	held = vmm_destroy_held(&m);
	assert_int_equal(held, 512);
	/* ... which is all that is missing from the pool afterwards. */
	assert_int_equal(pool_in_use() - before, held * PAGE);
}

/* A partial conversion under OPERAND_BUSY at 50%: whichever SEAMCALL of
 * the demotion or removal meets BUSY twice, the page is leaked, counted
 * and its status kept in last_error, and nothing else is lost. */
static void test_a_failed_demotion_is_a_counted_leak_with_its_status(void **state)
{
	unsigned int leaks = 0, runs = 0;

	while (leaks < 20 && runs++ < 1000) {
		uint64_t before = pool_in_use(), held;
		struct tdx_stats st;
		struct vmm m;

		vmm_create(&m, 48);
		vmm_finalize(&m);
		vmm_guest(&m, guest_accept_2m_then_sync, NULL);
		assert_int_equal(vmm_sync(&m), 0);
		set_config(&m, 500000, 0);
		assert_int_equal(set_attr(&m, GPA + 4 * MIB + 5 * PAGE, PAGE, false), 0);
		st = tdx_stats(&m);
		/* Leaked: the 2M page (BLOCK, or DEMOTE, or the removal after a
		 * failed BLOCK met BUSY twice) or, once demoted, the 4K page. */
		if (st.leaked_pages) {
			leaks++;
			assert_true(st.leaked_pages == 512 || (st.leaked_pages == 1 && st.demotions == 1));
			assert_int_equal(st.last_error, TDX_OPERAND_BUSY);
		} else {
			assert_int_equal(st.last_error, 0);
		}
		set_config(&m, 0, 0);
		held = vmm_destroy_held(&m);       /* >= the pages leaked */
		assert_int_equal(pool_in_use() - before, held * PAGE);
	}
	assert_int_equal(leaks, 20);
}


static void guest_accepts_until_stopped(struct pm_guest *g, void *arg)
{
	uint64_t flag = SPIN_FLAG | pm_guest_tdx_shared_bit(g);

	PM_GUEST_ASSERT(g, pm_guest_tdx_accept(g, SPIN_PRIVATE, PM_TDX_LEVEL_4K) == PM_TDX_SUCCESS);
	pm_guest_write64(g, flag, 0);
	pm_guest_sync(g, 0);
	for (uint64_t n = 1; pm_guest_read64(g, flag + 8) == 0; n++) {
		pm_guest_tdx_accept(g, SPIN_PRIVATE, PM_TDX_LEVEL_4K);
		pm_guest_write64(g, flag, n);
	}
	pm_guest_sync(g, 1);
}

struct accept_runner {
	int vcpu;
	int r;
	atomic_bool done;
};

static void *accept_runner(void *p)
{
	struct accept_runner *a = p;

	a->r = pm_kvm_ioctl(a->vcpu, KVM_RUN, 0);
	atomic_store(&a->done, true);
	return NULL;
}

/* A removal whose PAGE.REMOVE fails (a vCPU the kick cannot reach stays on
 * the old epoch) leaks the page, blocked in the S-EPT, and bugs the VM. A
 * guest that then accepts the page meets the blocked entry: an EPT
 * violation, so the vCPU leaves for KVM (and the VMM learns the VM is
 * bugged) instead of spinning in ACCEPT for ever. */
static void test_accept_of_a_leaked_blocked_page_exits(void **state)
{
	struct accept_runner a = { 0 };
	volatile uint64_t *counter;
	struct tdx_stats st;
	struct tdx_td *td;
	time_t until;
	pthread_t t;
	struct vmm m;
	int vp;

	vmm_create(&m, 48);
	set_config(&m, 0, PM_TDX_NO_HUGE);
	vmm_finalize(&m);
	assert_int_equal(set_attr(&m, SPIN_FLAG, PAGE, false), 0);
	counter = (volatile uint64_t *)(m.shared + (SPIN_FLAG - GPA));
	vmm_guest(&m, guest_accepts_until_stopped, NULL);
	assert_int_equal(vmm_sync(&m), 0);
	td = tdx_td(to_tdx(pm_test_vm_of(m.vm)));
	vp = tdx_module_vp_create(td);
	assert_true(vp >= 0);
	tdx_module_vp_enter(td, vp);
	a.vcpu = m.vcpu;
	pthread_create(&t, NULL, accept_runner, &a);
	while (__atomic_load_n(counter, __ATOMIC_ACQUIRE) < 100)
		sched_yield();
	assert_int_equal(set_attr(&m, SPIN_PRIVATE, PAGE, false), 0);
	st = tdx_stats(&m);
	assert_int_equal(st.leaked_pages, 1);
	assert_int_equal(st.last_error, TDX_TLB_TRACKING_NOT_DONE);
	until = time(NULL) + 10;
	while (!atomic_load(&a.done) && time(NULL) < until)
		sched_yield();
	if (!atomic_load(&a.done))
		fail_msg("the vCPU spins in ACCEPT on the leaked page");
	pthread_join(t, NULL);
	assert_int_equal(a.r, -1);
	assert_fails(pm_kvm_ioctl(m.vcpu, KVM_RUN, 0), EIO);
	tdx_module_vp_exit(td, vp);
	vmm_destroy_held(&m);
}

/* vCPUs write and verify their own memory while the VMM converts and
 * punches other pages, with OPERAND_BUSY injected into every S-EPT call. */
struct busy_run {
	struct vmm *m;
	int vcpu[2];
	atomic_bool stop;
	atomic_ulong conversions;
	uint64_t good[2], want[2];
};

#define OWN_PAGES 64

static void guest_own_region(struct pm_guest *g, void *arg)
{
	uint64_t base = GPA + (uint64_t)pm_guest_vcpu_id(g) * MIB;

	PM_GUEST_ASSERT(g, pm_guest_tdx_accept_range(g, base, OWN_PAGES * PAGE) == PM_TDX_SUCCESS);
	for (uint64_t iter = 1;; iter++) {
		uint64_t good = 0;

		for (uint64_t p = 0; p < OWN_PAGES; p++)
			pm_guest_write64(g, base + p * PAGE + (iter % 512) * 8, iter * 1000 + p);
		for (uint64_t p = 0; p < OWN_PAGES; p++)
			good += pm_guest_read64(g, base + p * PAGE + (iter % 512) * 8) == iter * 1000 + p;
		pm_guest_sync(g, good);
	}
}

struct busy_vcpu {
	struct busy_run *b;
	int who;
	struct kvm_run *run;
};

static void *busy_vcpu_thread(void *p)
{
	struct busy_vcpu *bv = p;
	struct busy_run *b = bv->b;
	struct pm_ucall uc;

	while (!atomic_load(&b->stop)) {
		if (pm_kvm_ioctl(b->vcpu[bv->who], KVM_RUN, 0))
			break;                     /* EIO: the VM is bugged (a leak) */
		if (bv->run->exit_reason != PM_EXIT_UCALL)
			break;
		pm_get_ucall(b->vcpu[bv->who], &uc);
		if (uc.cmd != PM_UCALL_SYNC)
			break;
		b->good[bv->who] += uc.args[0];
		b->want[bv->who] += OWN_PAGES;
	}
	return NULL;
}

static void busy_converter(struct busy_run *b, unsigned int rounds)
{
	struct vmm *m = b->m;

	for (unsigned int i = 0; i < rounds; i++) {
		uint64_t gpa = GPA + 8 * MIB + (uint64_t)(i * 37 % 1024) * PAGE;

		if (pre_fault(b->vcpu[0] == m->vcpu ? m->vcpu : b->vcpu[0], gpa, PAGE) == EIO)
			return;
		if (set_attr(m, gpa, PAGE, false))
			return;                    /* EIO */
		if (i % 5 == 0 && pm_kvm_fallocate(m->gmem, PUNCH, gpa - GPA, PAGE))
			return;
		if (set_attr(m, gpa, PAGE, true))
			return;
		atomic_fetch_add(&b->conversions, 1);
	}
}

static void busy_injection(unsigned int per_million)
{
	uint64_t before = pool_in_use(), held;
	struct busy_run b = { 0 };
	struct busy_vcpu bv[2];
	unsigned int secs = stress_seconds(), rounds = secs ? secs * 2000 : 400, total = 0;
	struct tdx_stats st;
	pthread_t t[2];
	struct vmm m;

	vmm_create(&m, 48);
	b.vcpu[1] = add_vcpu(&m, 1);
	vmm_finalize(&m);
	set_config(&m, per_million, 0);
	b.m = &m;
	b.vcpu[0] = m.vcpu;
	for (int i = 0; i < 2; i++) {
		struct pm_guest_entry e = { .fn = guest_own_region };

		assert_int_equal(pm_kvm_ioctl(b.vcpu[i], PM_KVM_SET_GUEST, &e), 0);
		bv[i] = (struct busy_vcpu){ .b = &b, .who = i };
		bv[i].run = i ? pm_kvm_mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, b.vcpu[1], 0)
			      : m.run;
		pthread_create(&t[i], NULL, busy_vcpu_thread, &bv[i]);
	}
	/* At a low rate a short run may see no injection at all (a few hundred
	 * S-EPT calls at 0.5%): go on until one happened (or a leak). */
	do {
		busy_converter(&b, rounds);
		total += rounds;
		st = tdx_stats(&m);
	} while (!st.busy_injected && !st.last_error && total < 50 * rounds);
	atomic_store(&b.stop, true);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	st = tdx_stats(&m);
	print_message("conversions %lu, busy injected %llu, retries %llu, leaked %llu\n",
		      atomic_load(&b.conversions), (unsigned long long)st.busy_injected,
		      (unsigned long long)st.busy_retries, (unsigned long long)st.leaked_pages);
	/* No corruption: every value a vCPU wrote read back. */
	assert_int_equal(b.good[0], b.want[0]);
	assert_int_equal(b.good[1], b.want[1]);
	assert_true(st.busy_injected > 0);
	assert_int_equal(st.fatal_events, 0);
	/* Every failure is a counted leak of a BUSY-twice removal. */
	if (st.last_error) {
		assert_int_equal(st.last_error, TDX_OPERAND_BUSY);
		assert_true(st.leaked_pages > 0);
	} else {
		assert_int_equal(st.leaked_pages, 0);
		assert_int_equal(atomic_load(&b.conversions), total);
	}
	assert_int_equal(pm_kvm_munmap(bv[1].run, PAGE), 0);
	assert_int_equal(pm_kvm_close(b.vcpu[1]), 0);
	/* No lost page: all the pool misses is what was held back. */
	held = vmm_destroy_held(&m);
	assert_int_equal(pool_in_use() - before, held * PAGE);
}

/* 0.5%: a run usually ends without a leak; 5%: usually with one. */
static void test_busy_injection_under_concurrent_faults_conversions_and_zaps(void **state)
{
	busy_injection(5000);
	busy_injection(50000);
}

#define T(f) cmocka_unit_test(f)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_init_vm_errors_and_the_shared_bit),
		T(test_mmap_private_page_faults_shared_page_works),
		T(test_no_direct_map_accepted_pages),
		T(test_measured_build_and_its_errors),
		T(test_build_retried_after_busy_reports_no_hw_error),
		T(test_build_from_an_unmapped_source_is_efault),
		T(test_accept_4k_then_use),
		T(test_accept_2m_maps_one_2m_page),
		T(test_accept_2m_without_huge_pages_falls_back_to_4k),
		T(test_accept_level_limit_ends_with_the_exit),
		T(test_accept_level_limit_survives_a_run_on_another_thread),
		T(test_touching_a_pending_page_is_fatal_for_the_td),
		T(test_shared_bit_selects_the_direct_root_and_converts),
		T(test_5_level_gpaw_moves_the_shared_bit_to_51),
		T(test_map_gpa_exits_in_2m_chunks_with_retry),
		T(test_partial_conversion_demotes_a_2m_page),
		T(test_seed003_race_fails_without_the_frozen_protocol),
		T(test_seed003_race_is_a_retry_with_the_frozen_protocol),
		T(test_populate_storm_never_fails_with_the_protocol),
		T(test_removal_waits_for_a_vcpu_running_in_guest_mode),
		T(test_a_failed_removal_leaks_the_page_and_counts_it),
		T(test_a_failed_demotion_is_a_counted_leak_with_its_status),
		T(test_accept_of_a_leaked_blocked_page_exits),
		T(test_busy_injection_under_concurrent_faults_conversions_and_zaps),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

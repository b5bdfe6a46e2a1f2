/* SPDX-License-Identifier: MIT */
/*
 * Realms through KVM's uAPI (PM_VM_TYPE_REALM, src/models/cca/realm.c):
 * the VM type and KVM_CAP_ARM_RMI, the configuration, KVM_ARM_RMI_POPULATE
 * and the RIM against known answers computed by scripts/cca_rim_kat.py
 * (SHA-256 and SHA-512, 48- and 64-byte reads), lazy faults (delegate,
 * DATA_CREATE_UNKNOWN, a 2M fold), RSI_IPA_STATE_SET through the
 * MAP_GPA_RANGE exit both ways with the unprotected alias (RTT_MAP_
 * UNPROTECTED) and the split of a folded block, RIPAS EMPTY (an abort in
 * the realm) and DESTROYED (the realm ends), the realm calls on another VM
 * type, and, after each scenario, the independent checker's recomputation
 * of every granule's state from the RTTs and no granule protection fault.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <linux/falloc.h>

#include <privmem/guest.h>
#include <privmem/privmem.h>
#include "gmem/gmem_internal.h"   /* pm_gmem_peek_pfn */
#include "host/pool.h"
#include "models/cca/realm.h"
#include "lib/cca_check.h"
#include "lib/testutil.h"

#define PAGE   4096ULL
#define MIB    (1ULL << 20)
#define MEM    (8 * MIB)
#define TOP    (1ULL << 39)          /* the unprotected bit of a 40-bit realm */
#define PUNCH  (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)

struct realm {
	int kvm, vm, gmem, vcpu;
	struct kvm_run *run;
	uint8_t *shared;
};

static uint8_t pattern[PAGE] __attribute__((aligned(4096))), ab[PAGE] __attribute__((aligned(4096)));

static void realm_open_flags(struct realm *t, const struct pm_realm_config *cfg, uint64_t gmem_flags)
{
	struct kvm_create_guest_memfd cg = { .size = MEM, .flags = gmem_flags };
	struct kvm_enable_cap cap = { .cap = KVM_CAP_EXIT_HYPERCALL,
				      .args = { 1ULL << KVM_HC_MAP_GPA_RANGE } };
	struct kvm_userspace_memory_region2 r = { .slot = 0, .memory_size = MEM,
						  .flags = KVM_MEM_GUEST_MEMFD };
	struct kvm_memory_attributes a = { .address = 0, .size = MEM,
					   .attributes = KVM_MEMORY_ATTRIBUTE_PRIVATE };

	t->kvm = pm_kvm_open();
	t->vm = pm_kvm_ioctl(t->kvm, KVM_CREATE_VM, PM_VM_TYPE_REALM);
	assert_true(t->vm >= 0);
	if (cfg)
		assert_int_equal(pm_kvm_ioctl(t->vm, PM_KVM_REALM_CONFIG, cfg), 0);
	assert_int_equal(pm_kvm_ioctl(t->vm, KVM_ENABLE_CAP, &cap), 0);
	t->gmem = pm_kvm_ioctl(t->vm, KVM_CREATE_GUEST_MEMFD, &cg);
	assert_true(t->gmem >= 0);
	t->shared = mmap(NULL, MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(t->shared != MAP_FAILED);
	r.userspace_addr = (uintptr_t)t->shared;
	r.guest_memfd = (uint32_t)t->gmem;
	assert_int_equal(pm_kvm_ioctl(t->vm, KVM_SET_USER_MEMORY_REGION2, &r), 0);
	assert_int_equal(pm_kvm_ioctl(t->vm, KVM_SET_MEMORY_ATTRIBUTES, &a), 0);
	t->vcpu = pm_kvm_ioctl(t->vm, KVM_CREATE_VCPU, 0);
	assert_true(t->vcpu >= 0);
	t->run = pm_kvm_mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, t->vcpu, 0);
	assert_true(t->run != MAP_FAILED);
}

static void realm_open(struct realm *t, const struct pm_realm_config *cfg)
{
	realm_open_flags(t, cfg, 0);
}

static uint64_t mstat(const struct realm *t, const char *name)
{
	struct pm_model_stats st;

	assert_int_equal(pm_kvm_ioctl(t->vm, PM_KVM_GET_MODEL_STATS, &st), 0);
	for (unsigned int i = 0; i < st.nr; i++)
		if (!strcmp(st.v[i].name, name))
			return st.v[i].value;
	fail_msg("no statistic %s", name);
	return 0;
}

/* The independent checker over this realm (its RD from the VM, its REC). */
static void check_granules(const struct realm *t)
{
	struct realm_vm *r = to_realm(pm_test_vm_of(t->vm));
	struct cca_check_realm c = { .rd = realm_rd(r), .s2sz = r->cfg.ipa_bits, .recs = r->rec,
				     .nr_recs = r->nr_recs };
	struct cca_check_result res;

	if (!cca_check(&c, 1, &res))
		fail_msg("checker: %s", res.error);
}

static void realm_close(struct realm *t)
{
	check_granules(t);
	assert_int_equal(mstat(t, "gpf"), 0);
	pm_kvm_munmap(t->run, 4096);
	pm_kvm_close(t->vcpu);
	pm_kvm_close(t->gmem);
	pm_kvm_close(t->vm);
	pm_kvm_close(t->kvm);
	munmap(t->shared, MEM);
}

/* The VMM's side of conversions: attributes, then the other copy dropped. */
static int convert(struct realm *t, uint64_t gpa, uint64_t size, bool to_private)
{
	struct kvm_memory_attributes a = { .address = gpa, .size = size,
					   .attributes = to_private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0 };

	if (pm_kvm_ioctl(t->vm, KVM_SET_MEMORY_ATTRIBUTES, &a))
		return -errno;
	if (to_private)
		return madvise(t->shared + gpa, size, MADV_DONTNEED);
	return pm_kvm_fallocate(t->gmem, PUNCH, (off_t)gpa, (off_t)size);
}

/* Runs the vCPU, answering conversions, until a ucall (its command) or a
 * system event (KVM_EXIT_SYSTEM_EVENT << 16). */
static uint64_t run_loop(struct realm *t, struct pm_ucall *uc)
{
	for (;;) {
		int r = pm_kvm_ioctl(t->vcpu, KVM_RUN, 0);

		if (r && errno == EFAULT && t->run->exit_reason == KVM_EXIT_MEMORY_FAULT) {
			assert_int_equal(convert(t, t->run->memory_fault.gpa, t->run->memory_fault.size,
						 t->run->memory_fault.flags & KVM_MEMORY_EXIT_FLAG_PRIVATE), 0);
			continue;
		}
		assert_int_equal(r, 0);
		if (t->run->exit_reason == KVM_EXIT_HYPERCALL) {
			assert_int_equal(t->run->hypercall.nr, KVM_HC_MAP_GPA_RANGE);
			t->run->hypercall.ret = convert(t, t->run->hypercall.args[0],
							t->run->hypercall.args[1] * PAGE,
							t->run->hypercall.args[2] & KVM_MAP_GPA_RANGE_ENCRYPTED) ? 1 : 0;
			continue;
		}
		if (t->run->exit_reason == KVM_EXIT_SYSTEM_EVENT)
			return KVM_EXIT_SYSTEM_EVENT << 16;
		assert_int_equal(t->run->exit_reason, PM_EXIT_UCALL);
		return pm_get_ucall(t->vcpu, uc);
	}
}

static uint64_t run_guest(struct realm *t, void (*fn)(struct pm_guest *, void *), void *arg,
			  struct pm_ucall *uc)
{
	struct pm_guest_entry e = { .fn = fn, .arg = arg };

	assert_int_equal(pm_kvm_ioctl(t->vcpu, PM_KVM_SET_GUEST, &e), 0);
	return run_loop(t, uc);
}

static void populate(struct realm *t, uint64_t base, const void *src, uint32_t flags, int err)
{
	struct kvm_arm_rmi_populate p = { .base = base, .size = PAGE, .source_uaddr = (uintptr_t)src,
					  .flags = flags };

	if (err)
		assert_fails(pm_kvm_ioctl(t->vm, KVM_ARM_RMI_POPULATE, &p), err);
	else
		assert_int_equal(pm_kvm_ioctl(t->vm, KVM_ARM_RMI_POPULATE, &p), 0);
}

/* ---- the VM type ---- */

static void test_vm_type_and_cap_arm_rmi(void **state)
{
	int kvm = pm_kvm_open(), sw;
	struct realm t;

	assert_true(pm_kvm_ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_VM_TYPES) & (1 << PM_VM_TYPE_REALM));
	assert_int_equal(pm_kvm_ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_ARM_RMI), 1);
	sw = pm_kvm_ioctl(kvm, KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM);
	assert_int_equal(pm_kvm_ioctl(sw, KVM_CHECK_EXTENSION, KVM_CAP_ARM_RMI), 0);
	assert_fails(pm_kvm_ioctl(sw, KVM_ARM_RMI_POPULATE, &t), ENOTTY);
	pm_kvm_close(sw);
	pm_kvm_close(kvm);
	realm_open(&t, NULL);
	assert_int_equal(pm_kvm_ioctl(t.vm, KVM_CHECK_EXTENSION, KVM_CAP_ARM_RMI), 1);
	/* No measurement before the first KVM_RUN activates the realm. */
	struct pm_measurement m;

	assert_fails(pm_kvm_ioctl(t.vm, PM_KVM_GET_MEASUREMENT, &m), EINVAL);
	realm_close(&t);
}

static void test_config_is_checked_and_fixed_by_the_build(void **state)
{
	struct pm_realm_config c = { .hash_algo = 2, .ipa_bits = 40, .rim_version = 1,
				     .num_bps = 1, .num_wps = 1 };
	struct realm t;

	realm_open(&t, NULL);
	assert_fails(pm_kvm_ioctl(t.vm, PM_KVM_REALM_CONFIG, &c), EINVAL);
	c.hash_algo = PM_REALM_HASH_SHA512;
	c.ipa_bits = 52;
	assert_fails(pm_kvm_ioctl(t.vm, PM_KVM_REALM_CONFIG, &c), EINVAL);
	c.ipa_bits = 40;
	c.num_bps = 0;
	assert_fails(pm_kvm_ioctl(t.vm, PM_KVM_REALM_CONFIG, &c), EINVAL);
	c.num_bps = 1;
	c.reserved[2] = 1;
	assert_fails(pm_kvm_ioctl(t.vm, PM_KVM_REALM_CONFIG, &c), EINVAL);
	c.reserved[2] = 0;
	assert_int_equal(pm_kvm_ioctl(t.vm, PM_KVM_REALM_CONFIG, &c), 0);
	populate(&t, 0x1000, pattern, KVM_ARM_RMI_POPULATE_FLAGS_MEASURE, 0);
	assert_fails(pm_kvm_ioctl(t.vm, PM_KVM_REALM_CONFIG, &c), EBUSY);
	realm_close(&t);
}

static void test_populate_errors(void **state)
{
	struct kvm_arm_rmi_populate p = { .base = 0x1010, .size = PAGE, .source_uaddr = (uintptr_t)pattern };
	struct realm t;

	realm_open(&t, NULL);
	assert_fails(pm_kvm_ioctl(t.vm, KVM_ARM_RMI_POPULATE, &p), EINVAL);   /* unaligned */
	p.base = 0x1000;
	p.flags = 2;
	assert_fails(pm_kvm_ioctl(t.vm, KVM_ARM_RMI_POPULATE, &p), EINVAL);   /* flags */
	p.flags = 0;
	p.base = TOP;
	assert_fails(pm_kvm_ioctl(t.vm, KVM_ARM_RMI_POPULATE, &p), EINVAL);   /* unprotected */
	p.base = MEM;
	assert_fails(pm_kvm_ioctl(t.vm, KVM_ARM_RMI_POPULATE, &p), EINVAL);   /* no memslot */
	p.base = 0x3000;
	p.source_uaddr = (uintptr_t)mmap(NULL, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_fails(pm_kvm_ioctl(t.vm, KVM_ARM_RMI_POPULATE, &p), EFAULT);   /* unreadable source */
	munmap((void *)(uintptr_t)p.source_uaddr, PAGE);
	populate(&t, 0x1000, pattern, 0, 0);
	populate(&t, 0x1000, pattern, 0, EINVAL);   /* RIPAS RAM and assigned already */
	realm_close(&t);
}

/* ---- the RIM through the uAPI (scenario C of scripts/cca_rim_kat.py) ---- */

static void guest_done(struct pm_guest *g, void *arg)
{
	(void)g;
	(void)arg;
}

static void hex(const char *s, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sscanf(s + 2 * i, "%2hhx", &out[i]);
}

static void build_scenario_c_flags(struct realm *t, const struct pm_realm_config *cfg, uint64_t gmem_flags)
{
	struct pm_ucall uc;

	realm_open_flags(t, cfg, gmem_flags);
	populate(t, 0x1000, pattern, KVM_ARM_RMI_POPULATE_FLAGS_MEASURE, 0);
	populate(t, 0x2000, ab, 0, 0);
	assert_int_equal(run_guest(t, guest_done, NULL, &uc), PM_UCALL_DONE);
}

static void build_scenario_c(struct realm *t, const struct pm_realm_config *cfg)
{
	build_scenario_c_flags(t, cfg, 0);
}

static void test_rim_sha256_known_answer(void **state)
{
	uint8_t want[64] = { 0 };
	struct pm_measurement m;
	struct pm_measurement64 m64;
	struct realm t;

	build_scenario_c(&t, NULL);
	hex("55ae9dbbc84030defd28b2472b3efee7b968cf1c9c255659a1f87265c8b1f1ee", want, 32);
	assert_int_equal(pm_kvm_ioctl(t.vm, PM_KVM_GET_MEASUREMENT, &m), 0);
	assert_memory_equal(m.digest, want, 48);
	assert_int_equal(pm_kvm_ioctl(t.vm, PM_KVM_GET_MEASUREMENT64, &m64), 0);
	assert_memory_equal(m64.digest, want, 64);
	assert_int_equal(mstat(&t, "populated"), 2);
	realm_close(&t);
}

static void test_rim_sha512_known_answer(void **state)
{
	const struct pm_realm_config cfg = { .hash_algo = PM_REALM_HASH_SHA512, .ipa_bits = 40,
					     .rim_version = 1, .num_bps = 1, .num_wps = 1 };
	uint8_t want[64];
	struct pm_measurement m;
	struct pm_measurement64 m64;
	struct realm t;

	build_scenario_c(&t, &cfg);
	hex("80e1a10576a367aa7c015738c115f1b7b689feb7e4ce9afe93d569cb92738588"
	    "e2c39af7d75f0e121b29384faae130ffc75d2cfff309786bcde4270b749b6bfb", want, 64);
	assert_fails(pm_kvm_ioctl(t.vm, PM_KVM_GET_MEASUREMENT, &m), E2BIG);
	assert_int_equal(pm_kvm_ioctl(t.vm, PM_KVM_GET_MEASUREMENT64, &m64), 0);
	assert_memory_equal(m64.digest, want, 64);
	realm_close(&t);
}

/* ---- guest_memfd's flags on realms ---- */

static void guest_reads_populated_and_faults_one(struct pm_guest *g, void *arg)
{
	PM_GUEST_ASSERT(g, pm_guest_read64(g, 0x1000) == ((uint64_t *)pattern)[0]);
	PM_GUEST_ASSERT(g, pm_guest_read64(g, 0x2000 + 8) == 0xababababababababULL);
	/* RIPAS RAM by the VMM's INIT_RIPAS: a lazy fault (DATA_CREATE_UNKNOWN). */
	pm_guest_write64(g, 0x5000, 0x77);
	pm_guest_sync(g, pm_guest_read64(g, 0x5000) == 0x77);
}

/* NO_DIRECT_MAP on a realm: the same RIM (the RMM copies and measures
 * through its own alias of the frames), the realm reads its pages, and
 * the frames fault at their direct-map address. */
static void test_no_direct_map_realm(void **state)
{
	struct pm_realm_ripas_range rr = { .base = 0x5000, .size = PAGE };
	struct pm_guest_entry e = { .fn = guest_reads_populated_and_faults_one };
	uint8_t want[48] = { 0 };
	struct pm_measurement m;
	struct pm_ucall uc;
	struct realm t;

	realm_open_flags(&t, NULL, GUEST_MEMFD_FLAG_NO_DIRECT_MAP);
	populate(&t, 0x1000, pattern, KVM_ARM_RMI_POPULATE_FLAGS_MEASURE, 0);
	populate(&t, 0x2000, ab, 0, 0);
	assert_int_equal(pm_kvm_ioctl(t.vm, PM_KVM_REALM_INIT_RIPAS, &rr), 0);
	assert_int_equal(pm_kvm_ioctl(t.vcpu, PM_KVM_SET_GUEST, &e), 0);
	assert_int_equal(run_loop(&t, &uc), PM_UCALL_SYNC);
	assert_int_equal(uc.args[0], 1);
	for (uint64_t i = 1; i <= 5; i += (i == 2 ? 3 : 1)) {   /* pages 1, 2, 5 */
		pm_pfn_t pfn = pm_gmem_peek_pfn(pm_test_gmem_of(t.gmem), i);

		assert_true(pfn != PM_PFN_INVALID);
		assert_int_equal(pm_test_read_faults(pm_pfn_to_direct(pfn)), 1);
	}
	assert_int_equal(run_loop(&t, &uc), PM_UCALL_DONE);
	realm_close(&t);
	/* Scenario C built on a NO_DIRECT_MAP file: C's known answer. */
	build_scenario_c_flags(&t, NULL, GUEST_MEMFD_FLAG_NO_DIRECT_MAP);
	hex("55ae9dbbc84030defd28b2472b3efee7b968cf1c9c255659a1f87265c8b1f1ee", want, 32);
	assert_int_equal(pm_kvm_ioctl(t.vm, PM_KVM_GET_MEASUREMENT, &m), 0);
	assert_memory_equal(m.digest, want, 48);
	realm_close(&t);
}

/* guest_memfd MMAP is not offered on realms (upstream offers it on
 * every x86 type; realms are arm64 and keep shared memory in the VMM's
 * memory): the capability lacks it and the flag is EINVAL. */
static void test_mmap_is_not_offered_on_realms(void **state)
{
	struct kvm_create_guest_memfd cg = { .size = MEM, .flags = GUEST_MEMFD_FLAG_MMAP };
	struct realm t;

	realm_open(&t, NULL);
	assert_int_equal(pm_kvm_ioctl(t.vm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_FLAGS) &
			 GUEST_MEMFD_FLAG_MMAP, 0);
	assert_fails(pm_kvm_ioctl(t.vm, KVM_CREATE_GUEST_MEMFD, &cg), EINVAL);
	realm_close(&t);
}

/* ---- faults, conversions, RIPAS ---- */

struct conv_arg {
	uint64_t top;              /* what the guest found as the unprotected bit */
	uint64_t shared_val;
};

/* Touches a 2M protected block (mapped 2M: a fold), converts its second
 * page to shared and back (the block is split, the alias mapped
 * unprotected), and checks the contents the architecture promises. */
static void guest_convert(struct pm_guest *g, void *arg)
{
	struct conv_arg *a = arg;
	uint64_t base = 2 * MIB, page = base + PAGE;

	a->top = 1ULL << (pm_guest_realm_ipa_width(g) - 1);
	for (uint64_t p = base; p < base + 2 * MIB; p += PAGE)
		pm_guest_write64(g, p, p ^ 0x5a5a);
	PM_GUEST_ASSERT(g, pm_guest_read64(g, page) == (page ^ 0x5a5a));
	pm_guest_sync(g, 1);
	PM_GUEST_ASSERT(g, pm_guest_realm_ipa_state_get(g, page) == PM_RIPAS_RAM);
	PM_GUEST_ASSERT(g, pm_guest_realm_set_ripas(g, page, page + PAGE, PM_RIPAS_EMPTY) == 0);
	PM_GUEST_ASSERT(g, pm_guest_realm_ipa_state_get(g, page) == PM_RIPAS_EMPTY);
	pm_guest_write64(g, page | a->top, a->shared_val);
	PM_GUEST_ASSERT(g, pm_guest_read64(g, page | a->top) == a->shared_val);
	/* The rest of the block is still protected and intact. */
	PM_GUEST_ASSERT(g, pm_guest_read64(g, base) == (base ^ 0x5a5a));
	pm_guest_sync(g, 2);
	PM_GUEST_ASSERT(g, pm_guest_realm_set_ripas(g, page, page + PAGE, PM_RIPAS_RAM) == 0);
	PM_GUEST_ASSERT(g, pm_guest_read64(g, page) == 0);   /* a new, zeroed page */
}

static void test_fault_fold_convert_split(void **state)
{
	struct conv_arg a = { .shared_val = 0x1234abcd5678ef00ULL };
	struct pm_guest_entry e = { .fn = guest_convert, .arg = &a };
	struct pm_realm_ripas_range rr = { .base = 0, .size = MEM };
	struct realm t;
	struct pm_ucall uc;
	int r;

	realm_open(&t, NULL);
	assert_int_equal(pm_kvm_ioctl(t.vm, PM_KVM_REALM_INIT_RIPAS, &rr), 0);
	assert_int_equal(pm_kvm_ioctl(t.vcpu, PM_KVM_SET_GUEST, &e), 0);
	for (;;) {
		r = pm_kvm_ioctl(t.vcpu, KVM_RUN, 0);
		assert_int_equal(r, 0);
		if (t.run->exit_reason == KVM_EXIT_HYPERCALL) {
			t.run->hypercall.ret = convert(&t, t.run->hypercall.args[0],
						       t.run->hypercall.args[1] * PAGE,
						       t.run->hypercall.args[2] & KVM_MAP_GPA_RANGE_ENCRYPTED) ? 1 : 0;
			continue;
		}
		assert_int_equal(t.run->exit_reason, PM_EXIT_UCALL);
		uint64_t cmd = pm_get_ucall(t.vcpu, &uc);

		if (cmd == PM_UCALL_SYNC && uc.args[0] == 1) {
			assert_int_equal(mstat(&t, "folds"), 1);
			assert_int_equal(mstat(&t, "fault_data_create"), 512);
			check_granules(&t);
		} else if (cmd == PM_UCALL_SYNC && uc.args[0] == 2) {
			uint64_t v;

			memcpy(&v, t.shared + 2 * MIB + PAGE, 8);
			assert_int_equal(v, a.shared_val);       /* the VMM sees the shared page */
			assert_true(mstat(&t, "unfolds") >= 1);    /* the block was split */
			assert_int_equal(mstat(&t, "unprotected_maps"), 1);
			check_granules(&t);
		} else {
			if (cmd != PM_UCALL_DONE)
				fail_msg("guest: %s", uc.msg);
			break;
		}
	}
	assert_int_equal(a.top, TOP);
	assert_int_equal(mstat(&t, "ripas_change_exits"), 2);
	assert_int_equal(mstat(&t, "ripas_change_pages"), 2);
	assert_true(mstat(&t, "data_destroys") >= 1);
	assert_true(mstat(&t, "unprotected_unmaps") >= 1);
	realm_close(&t);
}

static void guest_touch_empty(struct pm_guest *g, void *arg)
{
	pm_guest_read64(g, 4 * MIB);
	PM_GUEST_ASSERT(g, !"the access to RIPAS EMPTY returned");
}

static void test_empty_ripas_access_is_an_abort_in_the_realm(void **state)
{
	struct realm t;
	struct pm_ucall uc;
	struct pm_vm_stats vs;

	realm_open(&t, NULL);
	assert_int_equal(run_guest(&t, guest_touch_empty, NULL, &uc), PM_UCALL_ABORT);
	assert_non_null(strstr(uc.msg, "synchronous external abort"));
	assert_int_equal(mstat(&t, "sea_injected"), 1);
	/* The RMM answered alone: the host saw no fault and mapped nothing. */
	assert_int_equal(pm_kvm_ioctl(t.vm, PM_KVM_GET_VM_STATS, &vs), 0);
	assert_int_equal(vs.faults, 0);
	assert_int_equal(mstat(&t, "fault_data_create"), 0);
	realm_close(&t);
}

static void guest_touch_populated(struct pm_guest *g, void *arg)
{
	PM_GUEST_ASSERT(g, pm_guest_read64(g, 0x1000) == ((uint64_t *)pattern)[0]);
	pm_guest_sync(g, 0);
	pm_guest_read64(g, 0x1000);
	PM_GUEST_ASSERT(g, !"the access to RIPAS DESTROYED returned");
}

/* The VMM punches a page the realm has (DATA_DESTROY: RIPAS RAM ->
 * DESTROYED); the realm's next access cannot go on. */
static void test_destroyed_ripas_access_ends_the_realm(void **state)
{
	struct realm t;
	struct pm_ucall uc;

	realm_open(&t, NULL);
	populate(&t, 0x1000, pattern, KVM_ARM_RMI_POPULATE_FLAGS_MEASURE, 0);
	assert_int_equal(run_guest(&t, guest_touch_populated, NULL, &uc), PM_UCALL_SYNC);
	assert_int_equal(pm_kvm_fallocate(t.gmem, PUNCH, 0x1000, PAGE), 0);
	assert_int_equal(mstat(&t, "granules_data"), 0);
	assert_int_equal(run_loop(&t, &uc), KVM_EXIT_SYSTEM_EVENT << 16);
	assert_int_equal(t.run->system_event.type, KVM_SYSTEM_EVENT_CRASH);
	assert_int_equal(t.run->system_event.data[0], 0x1000);
	assert_int_equal(mstat(&t, "destroyed_access"), 1);
	realm_close(&t);
}

static void guest_realm_call(struct pm_guest *g, void *arg)
{
	pm_guest_realm_ipa_width(g);
}

static void test_realm_calls_end_other_guests(void **state)
{
	struct kvm_userspace_memory_region r = { .slot = 0, .memory_size = MIB };
	struct pm_guest_entry e = { .fn = guest_realm_call };
	int kvm = pm_kvm_open(), vm, vcpu;
	struct pm_ucall uc;
	void *mem = mmap(NULL, MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	vm = pm_kvm_ioctl(kvm, KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM);
	r.userspace_addr = (uintptr_t)mem;
	assert_int_equal(pm_kvm_ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r), 0);
	vcpu = pm_kvm_ioctl(vm, KVM_CREATE_VCPU, 0);
	assert_int_equal(pm_kvm_ioctl(vcpu, PM_KVM_SET_GUEST, &e), 0);
	assert_int_equal(pm_kvm_ioctl(vcpu, KVM_RUN, 0), 0);
	assert_int_equal(pm_get_ucall(vcpu, &uc), PM_UCALL_ABORT);
	assert_non_null(strstr(uc.msg, "pm_guest_realm_ipa_width: not an Arm CCA realm VM"));
	pm_kvm_close(vcpu);
	pm_kvm_close(vm);
	pm_kvm_close(kvm);
	munmap(mem, MIB);
}

/* A vCPU created after the first KVM_RUN has no REC: its KVM_RUN fails. */
static void test_vcpu_after_activation_cannot_run(void **state)
{
	struct pm_guest_entry e = { .fn = guest_done };
	struct realm t;
	struct pm_ucall uc;
	int late;

	realm_open(&t, NULL);
	assert_int_equal(run_guest(&t, guest_done, NULL, &uc), PM_UCALL_DONE);
	late = pm_kvm_ioctl(t.vm, KVM_CREATE_VCPU, 1);
	assert_true(late >= 0);
	assert_int_equal(pm_kvm_ioctl(late, PM_KVM_SET_GUEST, &e), 0);
	assert_fails(pm_kvm_ioctl(late, KVM_RUN, 0), EINVAL);
	populate(&t, 0x1000, pattern, 0, EINVAL);            /* the build is over */
	pm_kvm_close(late);
	realm_close(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vm_type_and_cap_arm_rmi),
		cmocka_unit_test(test_config_is_checked_and_fixed_by_the_build),
		cmocka_unit_test(test_populate_errors),
		cmocka_unit_test(test_rim_sha256_known_answer),
		cmocka_unit_test(test_rim_sha512_known_answer),
		cmocka_unit_test(test_no_direct_map_realm),
		cmocka_unit_test(test_mmap_is_not_offered_on_realms),
		cmocka_unit_test(test_fault_fold_convert_split),
		cmocka_unit_test(test_empty_ripas_access_is_an_abort_in_the_realm),
		cmocka_unit_test(test_destroyed_ripas_access_ends_the_realm),
		cmocka_unit_test(test_realm_calls_end_other_guests),
		cmocka_unit_test(test_vcpu_after_activation_cannot_run),
	};

	for (size_t i = 0; i < PAGE; i++)
		pattern[i] = (uint8_t)i;
	memset(ab, 0xab, sizeof(ab));
	setenv("PRIVMEM_POOL_SIZE", "256M", 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

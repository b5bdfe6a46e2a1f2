/* SPDX-License-Identifier: MIT */
/*
 * The punch-hole race of the SNP seed (tests/test_snp_stress.c) re-run
 * against the realm model: guest_memfd punch hole, attribute changes,
 * KVM_PRE_FAULT_MEMORY, the realm's RIPAS changes and unprotected accesses
 * at full speed, for PRIVMEM_CCA_STRESS_SECONDS (default 2).
 *
 * A granule returned to the host while still DATA must be impossible: the
 * realm model follows page lifetime (delegate on first use, DATA_DESTROY
 * in the zap that precedes every free, undelegate when the frame is
 * freed), whatever the attributes and RIPAS say meanwhile. So:
 *  - the pool's scrub of a freed frame never meets a granule that is not
 *    NS (it would stop the test: pm_fatal), and guest_memfd never has to
 *    hold a frame back because it was still DATA (held_frames stays 0);
 *  - the host never reads the realm's data: a reader thread reads random
 *    pool frames whenever the granule protection check lets it and never
 *    finds the secret vCPU 0 keeps in a protected region the chaos never
 *    touches; after the VM is gone no frame holds it;
 *  - with everything stopped, the independent checker's recomputation of
 *    every granule's state from the RTTs agrees with the RMM's, and when
 *    the VM is gone every granule is NS again (rmm_put checks, fatally).
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
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <linux/falloc.h>

#include <privmem/guest.h>
#include <privmem/privmem.h>
#include "host/host_guard.h"
#include "host/pool.h"
#include "models/cca/realm.h"
#include "lib/cca_check.h"
#include "lib/testutil.h"

#define PAGE     4096ULL
#define MIB      (1ULL << 20)
#define MEM      (32 * MIB)
#define SECRET   (0ULL)                 /* [0, 2M): vCPU 0's secret pages */
#define SECRET_PAGES 512
#define CHAOS_LO (2 * MIB)              /* [2M, 30M): everything races here */
#define CHAOS_HI (30 * MIB)
#define NR_RUN   2                      /* vCPUs running guests */
#define PREFAULT_VCPU 2                 /* a vCPU only KVM_PRE_FAULT_MEMORY uses */
#define PUNCH    (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)

static int vm, gmem, vcpus[NR_RUN + 1];
static struct kvm_run *runs[NR_RUN];
static uint8_t *shared;
static atomic_bool stop, secret_ready;
static uint64_t marker;
static atomic_uint_fast64_t ops[8];
static atomic_uint_fast64_t secret_seen, reads_allowed, reads_refused;

static uint64_t rnd(unsigned int *seed, uint64_t n)
{
	return ((uint64_t)rand_r(seed) << 16 ^ (uint64_t)rand_r(seed)) % n;
}

static void chaos_range(unsigned int *seed, uint64_t *gpa, uint64_t *npages)
{
	uint64_t span = (CHAOS_HI - CHAOS_LO) / PAGE;

	switch (rnd(seed, 3)) {
	case 0:
		*npages = 1;
		break;
	case 1:
		*npages = 1 + rnd(seed, 16);
		break;
	default:
		*npages = 512;
		break;
	}
	*gpa = CHAOS_LO + PM_ALIGN_DOWN(rnd(seed, span - *npages), *npages == 512 ? 512 : 1) * PAGE;
}

static int convert(uint64_t gpa, uint64_t size, bool to_private)
{
	struct kvm_memory_attributes a = {
		.address = gpa, .size = size, .attributes = to_private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0,
	};

	if (pm_kvm_ioctl(vm, KVM_SET_MEMORY_ATTRIBUTES, &a))
		return -errno;
	if (to_private)
		return madvise(shared + gpa, size, MADV_DONTNEED);
	return pm_kvm_fallocate(gmem, PUNCH, (off_t)gpa, (off_t)size);
}

/* ---- guest code ---- */

static void guest_chaos_step(struct pm_guest *g, unsigned int *seed, uint64_t top)
{
	struct pm_realm_ipa_state req;
	uint64_t gpa, n;

	chaos_range(seed, &gpa, &n);
	switch (rnd(seed, 3)) {
	case 0:
		/* Any answer is fine: the host changes everything meanwhile. */
		req = (struct pm_realm_ipa_state){
			.base = gpa, .top = gpa + n * PAGE,
			.ripas = rnd(seed, 2) ? PM_RIPAS_RAM : PM_RIPAS_EMPTY,
			.flags = rnd(seed, 2) ? PM_RSI_CHANGE_DESTROYED : PM_RSI_NO_CHANGE_DESTROYED,
		};
		PM_GUEST_ASSERT(g, pm_guest_realm_ipa_state_set(g, &req) == PM_RSI_SUCCESS);
		break;
	case 1:
		/* The unprotected alias: shared memory, never fatal. */
		pm_guest_write64(g, (gpa + rnd(seed, n) * PAGE) | top, marker ^ 1);
		break;
	default:
		PM_GUEST_ASSERT(g, pm_guest_realm_ipa_state_get(g, gpa) <= PM_RIPAS_DESTROYED);
		break;
	}
}

static void guest_main(struct pm_guest *g, void *arg)
{
	unsigned int id = pm_guest_vcpu_id(g), seed = 4321 + id;
	uint64_t top = 1ULL << (pm_guest_realm_ipa_width(g) - 1);

	if (id == 0) {
		for (uint64_t a = SECRET; a < SECRET + SECRET_PAGES * PAGE; a += 8)
			pm_guest_write64(g, a, marker ^ a);
		pm_guest_sync(g, 0);
	}
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		guest_chaos_step(g, &seed, top);
		if (id == 0) {
			uint64_t a = SECRET + rnd(&seed, SECRET_PAGES) * PAGE + rnd(&seed, 512) * 8;

			PM_GUEST_ASSERT(g, pm_guest_read64(g, a) == (marker ^ a));
		}
		atomic_fetch_add_explicit(&ops[0], 1, memory_order_relaxed);
	}
}

/* ---- the VMM's threads ---- */

static void *vcpu_thread(void *arg)
{
	int i = (int)(intptr_t)arg;
	struct kvm_run *run = runs[i];
	struct pm_ucall uc;

	for (;;) {
		int r = pm_kvm_ioctl(vcpus[i], KVM_RUN, 0);

		if (r && errno == EFAULT && run->exit_reason == KVM_EXIT_MEMORY_FAULT) {
			convert(run->memory_fault.gpa, run->memory_fault.size,
				run->memory_fault.flags & KVM_MEMORY_EXIT_FLAG_PRIVATE);
			atomic_fetch_add_explicit(&ops[1], 1, memory_order_relaxed);
			continue;
		}
		if (r)
			return (void *)"KVM_RUN failed";
		switch (run->exit_reason) {
		case KVM_EXIT_HYPERCALL:
			run->hypercall.ret = convert(run->hypercall.args[0], run->hypercall.args[1] * PAGE,
						     run->hypercall.args[2] & KVM_MAP_GPA_RANGE_ENCRYPTED) ? 1 : 0;
			atomic_fetch_add_explicit(&ops[2], 1, memory_order_relaxed);
			break;
		case PM_EXIT_UCALL:
			switch (pm_get_ucall(vcpus[i], &uc)) {
			case PM_UCALL_SYNC:
				atomic_store(&secret_ready, true);
				break;
			case PM_UCALL_DONE:
				return NULL;
			default:
				fprintf(stderr, "guest %d: %s\n", i, uc.msg);
				return (void *)"guest aborted";
			}
			break;
		case KVM_EXIT_SYSTEM_EVENT:
			fprintf(stderr, "guest %d: system event %u at %#llx\n", i, run->system_event.type,
				(unsigned long long)run->system_event.data[0]);
			return (void *)"guest ended by a system event";
		default:
			return (void *)"unexpected exit";
		}
	}
}

static void *punch_thread(void *arg)
{
	unsigned int seed = 99;

	while (!atomic_load(&stop)) {
		uint64_t gpa, n;

		chaos_range(&seed, &gpa, &n);
		pm_kvm_fallocate(gmem, PUNCH, (off_t)gpa, (off_t)(n * PAGE));
		atomic_fetch_add_explicit(&ops[3], 1, memory_order_relaxed);
	}
	return NULL;
}

static void *attr_thread(void *arg)
{
	unsigned int seed = 77;

	while (!atomic_load(&stop)) {
		uint64_t gpa, n;
		struct kvm_memory_attributes a;

		chaos_range(&seed, &gpa, &n);
		a = (struct kvm_memory_attributes){
			.address = gpa, .size = n * PAGE,
			.attributes = rnd(&seed, 2) ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0,
		};
		pm_kvm_ioctl(vm, KVM_SET_MEMORY_ATTRIBUTES, &a);
		atomic_fetch_add_explicit(&ops[4], 1, memory_order_relaxed);
	}
	return NULL;
}

/* Faults protected pages in from the host's side (delegate on first use,
 * DATA_CREATE_UNKNOWN, folds), racing the punches that destroy them. */
static void *prefault_thread(void *arg)
{
	unsigned int seed = 33;

	while (!atomic_load(&stop)) {
		struct kvm_pre_fault_memory p = { 0 };
		uint64_t gpa, n;

		chaos_range(&seed, &gpa, &n);
		p.gpa = gpa;
		p.size = n * PAGE;
		pm_kvm_ioctl(vcpus[PREFAULT_VCPU], KVM_PRE_FAULT_MEMORY, &p);
		atomic_fetch_add_explicit(&ops[5], 1, memory_order_relaxed);
	}
	return NULL;
}

static bool frame_has_marker(pm_pfn_t pfn)
{
	const uint64_t *w = pm_pfn_to_hva(pfn);

	for (unsigned int i = 0; i < PAGE / 8; i++) {
		uint64_t v = __atomic_load_n(&w[i], __ATOMIC_RELAXED);

		if ((v ^ marker) < SECRET_PAGES * PAGE && v != 0)
			return true;
	}
	return false;
}

static void *reader_thread(void *arg)
{
	unsigned int seed = 55;
	uint64_t nr = pm_pool_nr_frames();

	while (!atomic_load(&stop)) {
		pm_pfn_t pfn = rnd(&seed, nr);

		if (pm_host_access(pfn, 1, false)) {
			atomic_fetch_add_explicit(&reads_refused, 1, memory_order_relaxed);
			continue;
		}
		atomic_fetch_add_explicit(&reads_allowed, 1, memory_order_relaxed);
#ifndef PM_TSAN
		/* See test_snp_stress.c: plain scrubs and copies race these
		 * reads on purpose; TSan builds only count. */
		if (frame_has_marker(pfn))
			atomic_fetch_add(&secret_seen, 1);
#endif
	}
	return NULL;
}

static uint64_t model_stat(const char *name)
{
	struct pm_model_stats st;

	assert_int_equal(pm_kvm_ioctl(vm, PM_KVM_GET_MODEL_STATS, &st), 0);
	for (unsigned int i = 0; i < st.nr; i++)
		if (!strcmp(st.v[i].name, name))
			return st.v[i].value;
	fail_msg("no statistic %s", name);
	return 0;
}

static void setup_vm(void)
{
	struct kvm_create_guest_memfd cg = { .size = MEM };
	struct kvm_enable_cap cap = { .cap = KVM_CAP_EXIT_HYPERCALL,
				      .args = { 1ULL << KVM_HC_MAP_GPA_RANGE } };
	struct kvm_userspace_memory_region2 r = { .slot = 0, .memory_size = MEM, .flags = KVM_MEM_GUEST_MEMFD };
	struct kvm_memory_attributes a = { .address = 0, .size = MEM,
					   .attributes = KVM_MEMORY_ATTRIBUTE_PRIVATE };
	struct pm_realm_ripas_range rr = { .base = 0, .size = MEM };
	int kvm = pm_kvm_open();

	vm = pm_kvm_ioctl(kvm, KVM_CREATE_VM, PM_VM_TYPE_REALM);
	assert_true(vm >= 0);
	pm_kvm_close(kvm);
	assert_int_equal(pm_kvm_ioctl(vm, KVM_ENABLE_CAP, &cap), 0);
	gmem = pm_kvm_ioctl(vm, KVM_CREATE_GUEST_MEMFD, &cg);
	shared = mmap(NULL, MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(gmem >= 0 && shared != MAP_FAILED);
	r.userspace_addr = (uintptr_t)shared;
	r.guest_memfd = (uint32_t)gmem;
	assert_int_equal(pm_kvm_ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &r), 0);
	assert_int_equal(pm_kvm_ioctl(vm, KVM_SET_MEMORY_ATTRIBUTES, &a), 0);
	assert_int_equal(pm_kvm_ioctl(vm, PM_KVM_REALM_INIT_RIPAS, &rr), 0);
	for (int i = 0; i <= NR_RUN; i++) {
		struct pm_guest_entry e = { .fn = guest_main };

		vcpus[i] = pm_kvm_ioctl(vm, KVM_CREATE_VCPU, i);
		assert_true(vcpus[i] >= 0);
		if (i < NR_RUN) {
			runs[i] = pm_kvm_mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, vcpus[i], 0);
			assert_int_equal(pm_kvm_ioctl(vcpus[i], PM_KVM_SET_GUEST, &e), 0);
		}
	}
}

static void teardown_vm(void)
{
	for (int i = 0; i <= NR_RUN; i++) {
		if (i < NR_RUN)
			pm_kvm_munmap(runs[i], 4096);
		pm_kvm_close(vcpus[i]);
	}
	pm_kvm_close(gmem);
	pm_kvm_close(vm);
	munmap(shared, MEM);
}

static void check_granules(void)
{
	struct realm_vm *r = to_realm(pm_test_vm_of(vm));
	struct cca_check_realm c = { .rd = realm_rd(r), .s2sz = r->cfg.ipa_bits, .recs = r->rec,
				     .nr_recs = r->nr_recs };
	struct cca_check_result res;

	if (!cca_check(&c, 1, &res))
		fail_msg("checker: %s", res.error);
	print_message("granules: %" PRIu64 " RTT, %" PRIu64 " DATA, %" PRIu64 " DELEGATED\n",
		      res.rtt, res.data, res.delegated);
}

static void test_punch_attr_fault_ripas_race(void **state)
{
	const char *env = getenv("PRIVMEM_CCA_STRESS_SECONDS");
	double seconds = env ? atof(env) : 2.0;
	pthread_t vt[NR_RUN], punch, attr, prefault, reader;
	struct timespec ts = { (time_t)seconds, (long)((seconds - (time_t)seconds) * 1e9) };
	void *res[NR_RUN];
	uint64_t nr;

	marker = 0x5EC2E7000000000ULL ^ ((uint64_t)getpid() << 32);
	setup_vm();
	for (int i = 0; i < NR_RUN; i++)
		pthread_create(&vt[i], NULL, vcpu_thread, (void *)(intptr_t)i);
	while (!atomic_load(&secret_ready))
		sched_yield();
	pthread_create(&punch, NULL, punch_thread, NULL);
	pthread_create(&attr, NULL, attr_thread, NULL);
	pthread_create(&prefault, NULL, prefault_thread, NULL);
	pthread_create(&reader, NULL, reader_thread, NULL);
	nanosleep(&ts, NULL);
	atomic_store(&stop, true);
	for (int i = 0; i < NR_RUN; i++)
		pthread_join(vt[i], &res[i]);
	pthread_join(punch, NULL);
	pthread_join(attr, NULL);
	pthread_join(prefault, NULL);
	pthread_join(reader, NULL);
	print_message("%.1f s: guest steps %" PRIu64 ", implicit conversions %" PRIu64
		      ", RIPAS exits %" PRIu64 ", punches %" PRIu64 ", attribute sets %" PRIu64
		      ", pre-faults %" PRIu64 ", host reads %" PRIu64 " allowed / %" PRIu64 " refused\n",
		      seconds, (uint64_t)ops[0], (uint64_t)ops[1], (uint64_t)ops[2], (uint64_t)ops[3],
		      (uint64_t)ops[4], (uint64_t)ops[5], (uint64_t)reads_allowed,
		      (uint64_t)reads_refused);
	print_message("DATA_CREATE_UNKNOWN %" PRIu64 ", DATA_DESTROY %" PRIu64 ", folds %" PRIu64
		      ", unfolds %" PRIu64 ", RIPAS pages %" PRIu64 ", unprotected maps %" PRIu64 "\n",
		      model_stat("fault_data_create"), model_stat("data_destroys"), model_stat("folds"),
		      model_stat("unfolds"), model_stat("ripas_change_pages"),
		      model_stat("unprotected_maps"));
	for (int i = 0; i < NR_RUN; i++)
		assert_null(res[i]);
	assert_true(ops[0] > 0 && ops[3] > 0 && ops[4] > 0 && ops[5] > 0);
	assert_true(model_stat("data_destroys") > 0);
	assert_int_equal(model_stat("held_frames"), 0);
	assert_int_equal(atomic_load(&secret_seen), 0);
	assert_true(reads_refused > 0);
	check_granules();
	teardown_vm();
	nr = pm_pool_nr_frames();
	for (pm_pfn_t pfn = 0; pfn < nr; pfn++)
		assert_false(frame_has_marker(pfn));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_punch_attr_fault_ripas_race),
	};

	setenv("PRIVMEM_POOL_SIZE", "256M", 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

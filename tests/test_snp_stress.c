/* SPDX-License-Identifier: MIT */
/*
 * Seed 002's race under stress: guest_memfd punch hole, attribute changes,
 * guest faults and page state changes at full speed on an SNP VM, for
 * PRIVMEM_SNP_STRESS_SECONDS (default 2).
 *
 * In the design seed 002 criticises, the RMP followed attribute changes, so
 * a punch racing a conversion could free (and scrub) a frame the RMP still
 * gave the guest: the host "blows up". Here the RMP follows page lifetime
 * only (prepare / invalidate), so whatever the interleaving:
 *  - no RMP violation happens (a scrub of an assigned frame would abort the
 *    test: pm_fatal), and the counter stays 0;
 *  - no frame is freed while assigned, and nothing is left assigned when
 *    the VM is gone (rmp_put checks it, fatally);
 *  - the host never reads private data: a reader thread reads random pool
 *    frames whenever the RMP lets it and never finds the guest's secret,
 *    which lives in a private region the chaos never touches; after the VM
 *    is gone no pool frame holds it (freed frames were scrubbed).
 *
 * Threads: two vCPUs, each running guest code that converts random chaos
 * ranges with PSC (GHCB and MSR) and PVALIDATE (whose translation faults
 * pages in, running prepare), the VMM answering their exits on the same
 * threads; a VMM thread punching random chaos ranges; one changing their
 * attributes; the host reader. vCPU 0 also checks its secret region.
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
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <linux/falloc.h>

#include <privmem/guest.h>
#include <privmem/privmem.h>
#include "host/host_guard.h"
#include "host/pool.h"
#include "models/snp/rmp.h"

#define PAGE     4096ULL
#define MIB      (1ULL << 20)
#define MEM      (32 * MIB)
#define SECRET   (0ULL)                 /* [0, 2M): vCPU 0's secret pages */
#define SECRET_PAGES 512
#define CHAOS_LO (2 * MIB)              /* [2M, 30M): everything races here */
#define CHAOS_HI (30 * MIB)
#define DESC(i)  (31 * MIB + (i) * PAGE)
#define NR_VCPUS 2
#define PUNCH    (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)

static int vm, gmem, vcpus[NR_VCPUS];
static struct kvm_run *runs[NR_VCPUS];
static uint8_t *shared;
static atomic_bool stop;
static uint64_t marker;                 /* the secret's 64-bit pattern */
static atomic_uint_fast64_t ops[8];     /* per kind of operation, for the log */
static atomic_uint_fast64_t secret_seen, reads_allowed, reads_refused, guest_errors;

static uint64_t rnd(unsigned int *seed, uint64_t n)
{
	return ((uint64_t)rand_r(seed) << 16 ^ (uint64_t)rand_r(seed)) % n;
}

/* A random chaos range: a 4K page, a few pages, or a whole 2M block. */
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

static void guest_chaos_step(struct pm_guest *g, unsigned int *seed, uint64_t desc)
{
	uint64_t gpa, n;
	long r = 0;

	chaos_range(seed, &gpa, &n);
	switch (rnd(seed, 4)) {
	case 0:
		r = pm_guest_snp_make_private(g, gpa, n, desc, 1 + (unsigned int)rnd(seed, 64));
		break;
	case 1:
		r = pm_guest_snp_make_shared(g, gpa, n, desc, 1 + (unsigned int)rnd(seed, 64));
		break;
	case 2:
		r = pm_guest_snp_psc_msr(g, gpa, rnd(seed, 2) ? PM_SNP_PSC_OP_PRIVATE : PM_SNP_PSC_OP_SHARED);
		break;
	default:
		r = pm_guest_snp_pvalidate(g, gpa | PM_SNP_C_BIT, n == 512, rnd(seed, 2));
		break;
	}
	/* Failures are expected (the host changes everything under the
	 * guest); only the guest's survival and the host's safety count. */
	if (r)
		atomic_fetch_add_explicit(&guest_errors, 1, memory_order_relaxed);
}

static void guest_secret_check(struct pm_guest *g, unsigned int *seed)
{
	uint64_t p = rnd(seed, SECRET_PAGES);
	uint64_t gpa = (SECRET + p * PAGE + rnd(seed, 512) * 8) | PM_SNP_C_BIT;

	PM_GUEST_ASSERT(g, pm_guest_read64(g, gpa) == (marker ^ (gpa & ~PM_SNP_C_BIT)));
}

static void guest_main(struct pm_guest *g, void *arg)
{
	unsigned int id = pm_guest_vcpu_id(g), seed = 1234 + id;

	if (id == 0) {
		PM_GUEST_ASSERT(g, pm_guest_snp_make_private(g, SECRET, SECRET_PAGES, DESC(0), 64) == 0);
		for (uint64_t a = SECRET; a < SECRET + SECRET_PAGES * PAGE; a += 8)
			pm_guest_write64(g, a | PM_SNP_C_BIT, marker ^ a);
		pm_guest_sync(g, 0);   /* the secret is in place */
	}
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		guest_chaos_step(g, &seed, DESC(id));
		if (id == 0)
			guest_secret_check(g, &seed);
		atomic_fetch_add_explicit(&ops[0], 1, memory_order_relaxed);
	}
}

/* ---- the VMM's threads ---- */

static atomic_bool secret_ready;

static void *vcpu_thread(void *arg)
{
	int i = (int)(intptr_t)arg;
	struct kvm_run *run = runs[i];
	struct pm_ucall uc;

	for (;;) {
		int r = pm_kvm_ioctl(vcpus[i], KVM_RUN, 0);

		if (r && errno == EFAULT && run->exit_reason == KVM_EXIT_MEMORY_FAULT) {
			/* Implicit conversion: done as asked (it may race). */
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

/* Reads random frames whenever the RMP lets the host, looking for the secret. */
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
		/* A frame the host may read can be scrubbed or filled meanwhile
		 * by plain memset/memcpy: a real race TSan would (rightly) name,
		 * and harmless for this check, so TSan builds only count. */
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
	int kvm = pm_kvm_open();

	vm = pm_kvm_ioctl(kvm, KVM_CREATE_VM, KVM_X86_SNP_VM);
	assert_true(vm >= 0);
	pm_kvm_close(kvm);
	assert_int_equal(pm_kvm_ioctl(vm, KVM_ENABLE_CAP, &cap), 0);
	gmem = pm_kvm_ioctl(vm, KVM_CREATE_GUEST_MEMFD, &cg);
	shared = mmap(NULL, MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(gmem >= 0 && shared != MAP_FAILED);
	r.userspace_addr = (uintptr_t)shared;
	r.guest_memfd = (uint32_t)gmem;
	assert_int_equal(pm_kvm_ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &r), 0);
	for (int i = 0; i < NR_VCPUS; i++) {
		struct pm_guest_entry e = { .fn = guest_main };

		vcpus[i] = pm_kvm_ioctl(vm, KVM_CREATE_VCPU, i);
		runs[i] = pm_kvm_mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, vcpus[i], 0);
		assert_int_equal(pm_kvm_ioctl(vcpus[i], PM_KVM_SET_GUEST, &e), 0);
	}
}

static void teardown_vm(void)
{
	for (int i = 0; i < NR_VCPUS; i++) {
		pm_kvm_munmap(runs[i], 4096);
		pm_kvm_close(vcpus[i]);
	}
	pm_kvm_close(gmem);
	pm_kvm_close(vm);
	munmap(shared, MEM);
}

static void test_punch_attr_fault_psc_race(void **state)
{
	const char *env = getenv("PRIVMEM_SNP_STRESS_SECONDS");
	double seconds = env ? atof(env) : 2.0;
	pthread_t vt[NR_VCPUS], punch, attr, reader;
	struct timespec ts = { (time_t)seconds, (long)((seconds - (time_t)seconds) * 1e9) };
	void *res[NR_VCPUS];
	uint64_t nr;

	marker = 0x5EC2E7000000000ULL ^ ((uint64_t)getpid() << 32);
	setup_vm();
	for (int i = 0; i < NR_VCPUS; i++)
		pthread_create(&vt[i], NULL, vcpu_thread, (void *)(intptr_t)i);
	while (!atomic_load(&secret_ready))
		sched_yield();
	pthread_create(&punch, NULL, punch_thread, NULL);
	pthread_create(&attr, NULL, attr_thread, NULL);
	pthread_create(&reader, NULL, reader_thread, NULL);
	nanosleep(&ts, NULL);
	atomic_store(&stop, true);
	for (int i = 0; i < NR_VCPUS; i++)
		pthread_join(vt[i], &res[i]);
	pthread_join(punch, NULL);
	pthread_join(attr, NULL);
	pthread_join(reader, NULL);
	print_message("%.1f s: guest steps %" PRIu64 ", implicit conversions %" PRIu64 ", PSC exits %"
		      PRIu64 ", punches %" PRIu64 ", attribute sets %" PRIu64 ", host reads %" PRIu64
		      " allowed / %" PRIu64 " refused, guest-visible failures %" PRIu64 "\n", seconds,
		      (uint64_t)ops[0], (uint64_t)ops[1], (uint64_t)ops[2], (uint64_t)ops[3],
		      (uint64_t)ops[4], (uint64_t)reads_allowed, (uint64_t)reads_refused,
		      (uint64_t)guest_errors);
	print_message("prepare 2M %" PRIu64 " 4K %" PRIu64 ", psmash on free %" PRIu64 " on fault %"
		      PRIu64 ", invalidated pages %" PRIu64 "\n",
		      model_stat("prepare_2m_entries"), model_stat("prepare_4k_entries"),
		      model_stat("psmash_on_free"), model_stat("psmash_on_fault"),
		      model_stat("invalidated_pages"));
	for (int i = 0; i < NR_VCPUS; i++)
		assert_null(res[i]);
	assert_true(ops[0] > 0 && ops[3] > 0 && ops[4] > 0);
	assert_int_equal(model_stat("rmp_violations"), 0);
	assert_int_equal(atomic_load(&secret_seen), 0);
	assert_true(reads_refused > 0);      /* the secret was there to refuse */
	teardown_vm();
	/* Gone with the VM: nothing assigned (rmp_put would have aborted),
	 * and no frame of the pool still holds the secret. */
	assert_int_equal(rmp_users(), 0);
	nr = pm_pool_nr_frames();
	for (pm_pfn_t pfn = 0; pfn < nr; pfn++)
		assert_false(frame_has_marker(pfn));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_punch_attr_fault_psc_race),
	};

	/* A small pool, so that the final scan of every frame is quick. */
	setenv("PRIVMEM_POOL_SIZE", "256M", 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

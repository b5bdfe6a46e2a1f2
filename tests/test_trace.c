/* SPDX-License-Identifier: MIT */
/*
 * Tracing (pm_trace_start / pm_trace_stop, lib/trace.h), through the
 * public API as a VMM uses it: a software-protected VM whose vCPUs, each
 * on a thread of its own, convert memory by hypercall and touch it; the
 * trace is read back independently (tests/lib/trace_check.c checks its
 * structure as Perfetto reads it) and every event the VM counted
 * (PM_KVM_GET_VM_STATS) and the VMM did is in it, on the right thread:
 * exits by reason, faults and the level each mapped, conversions,
 * zaps with what they removed and split, shootdowns, KVM_RUNs. Also:
 * per-thread buffers that overflow and threads that exit before the end
 * lose nothing, a forked child does not write its parent's trace, and the
 * API's errors.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <privmem/guest.h>
#include <privmem/privmem.h>
#include "lib/trace_check.h"
#include "lib/testutil.h"

#define PAGE     4096ULL
#define MIB      (1ULL << 20)
#define MEM      (64 * MIB)
#define VCPUS    2
#define CHUNK    (MEM / VCPUS)

struct vm {
	int kvm, vm, gmem;
	int vcpu[VCPUS];
	struct kvm_run *run[VCPUS];
	uint8_t *shared;
	uint64_t runs[VCPUS], conversions[VCPUS];   /* what the VMM did, per vCPU thread */
};

struct job {
	struct vm *m;
	int i;
	unsigned int rounds;
};

static char trace_path[] = "/tmp/privmem_test_trace_XXXXXX";

/* A VM of MEM bytes, 4K pages only if small_pages. */
static void vm_open_pages(struct vm *m, bool small_pages)
{
	struct kvm_create_guest_memfd cg = { .size = MEM,
					     .flags = small_pages ? PM_GUEST_MEMFD_FLAG_NO_HUGE : 0 };
	struct kvm_enable_cap cap = { .cap = KVM_CAP_EXIT_HYPERCALL, .args = { 1ULL << KVM_HC_MAP_GPA_RANGE } };
	struct kvm_userspace_memory_region2 r = { .slot = 0, .memory_size = MEM, .flags = KVM_MEM_GUEST_MEMFD };

	memset(m, 0, sizeof(*m));
	m->kvm = pm_kvm_open();
	m->vm = pm_kvm_ioctl(m->kvm, KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM);
	assert_true(m->vm >= 0);
	assert_int_equal(pm_kvm_ioctl(m->vm, KVM_ENABLE_CAP, &cap), 0);
	pm_test_gmem_page_size_flags(m->vm);
	m->gmem = pm_kvm_ioctl(m->vm, KVM_CREATE_GUEST_MEMFD, &cg);
	assert_true(m->gmem >= 0);
	m->shared = mmap(NULL, MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	assert_true(m->shared != MAP_FAILED);
	r.userspace_addr = (uintptr_t)m->shared;
	r.guest_memfd = (uint32_t)m->gmem;
	assert_int_equal(pm_kvm_ioctl(m->vm, KVM_SET_USER_MEMORY_REGION2, &r), 0);
	for (int i = 0; i < VCPUS; i++) {
		m->vcpu[i] = pm_kvm_ioctl(m->vm, KVM_CREATE_VCPU, i);
		assert_true(m->vcpu[i] >= 0);
		m->run[i] = pm_kvm_mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, m->vcpu[i], 0);
		assert_true(m->run[i] != MAP_FAILED);
	}
}

static void vm_open(struct vm *m)
{
	vm_open_pages(m, false);
}

static void vm_close(struct vm *m)
{
	for (int i = 0; i < VCPUS; i++) {
		pm_kvm_munmap(m->run[i], PAGE);
		pm_kvm_close(m->vcpu[i]);
	}
	munmap(m->shared, MEM);
	pm_kvm_close(m->gmem);
	pm_kvm_close(m->vm);
	pm_kvm_close(m->kvm);
}

/* ---- the guest: convert a range, touch it, convert it back ---- */

static long guest_convert(struct pm_guest *g, uint64_t gpa, uint64_t npages, bool to_private)
{
	return pm_guest_hypercall(g, KVM_HC_MAP_GPA_RANGE, gpa, npages,
				  to_private ? KVM_MAP_GPA_RANGE_ENCRYPTED : KVM_MAP_GPA_RANGE_DECRYPTED, 0);
}

static void guest_main(struct pm_guest *g, void *arg)
{
	struct job *j = arg;
	uint64_t base = (uint64_t)j->i * CHUNK;

	for (unsigned int r = 0; r < j->rounds; r++) {
		uint64_t gpa = base + (r % 8) * 2 * MIB, n = r % 2 ? 512 : 1 + r % 7;

		PM_GUEST_ASSERT(g, guest_convert(g, gpa, n, true) == 0);
		for (uint64_t p = 0; p < n; p++)
			pm_guest_write64(g, gpa + p * PAGE, r);
		PM_GUEST_ASSERT(g, guest_convert(g, gpa, n, false) == 0);
		pm_guest_write64(g, gpa, r);
		pm_guest_sync(g, r);
	}
}

/* ---- the VMM: one thread per vCPU ---- */

static void vmm_hypercall(struct vm *m, int i, struct kvm_run *run)
{
	struct kvm_memory_attributes a = {
		.address = run->hypercall.args[0], .size = run->hypercall.args[1] * PAGE,
		.attributes = (run->hypercall.args[2] & KVM_MAP_GPA_RANGE_ENCRYPTED) ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0,
	};

	run->hypercall.ret = (uint64_t)pm_kvm_ioctl(m->vm, KVM_SET_MEMORY_ATTRIBUTES, &a);
	m->conversions[i]++;
	if (!a.attributes)
		pm_kvm_fallocate(m->gmem, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)a.address,
				 (off_t)a.size);
}

static void *vcpu_thread(void *arg)
{
	struct job *j = arg;
	struct vm *m = j->m;
	struct kvm_run *run = m->run[j->i];
	struct pm_ucall uc;

	for (;;) {
		int r = pm_kvm_ioctl(m->vcpu[j->i], KVM_RUN, 0);

		m->runs[j->i]++;
		assert_int_equal(r, 0);
		if (run->exit_reason == KVM_EXIT_HYPERCALL) {
			vmm_hypercall(m, j->i, run);
			continue;
		}
		assert_int_equal(run->exit_reason, PM_EXIT_UCALL);
		if (pm_get_ucall(m->vcpu[j->i], &uc) == PM_UCALL_DONE)
			return NULL;
		assert_int_equal(uc.cmd, PM_UCALL_SYNC);
	}
}

/* Runs `rounds` rounds on every vCPU, each on a thread that exits after. */
static void vm_run(struct vm *m, struct job *jobs, unsigned int rounds)
{
	pthread_t t[VCPUS];

	for (int i = 0; i < VCPUS; i++) {
		struct pm_guest_entry e = { .fn = guest_main, .arg = &jobs[i] };

		jobs[i] = (struct job){ .m = m, .i = i, .rounds = rounds };
		assert_int_equal(pm_kvm_ioctl(m->vcpu[i], PM_KVM_SET_GUEST, &e), 0);
	}
	for (int i = 0; i < VCPUS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, vcpu_thread, &jobs[i]), 0);
	for (int i = 0; i < VCPUS; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
}

static void trace_fresh_path(void)
{
	int fd;

	strcpy(trace_path, "/tmp/privmem_test_trace_XXXXXX");
	fd = mkstemp(trace_path);
	assert_true(fd >= 0);
	close(fd);
}

static void load(struct trace *t)
{
	if (trace_load(t, trace_path))
		fail_msg("%s", t->error);
}

static void expect_count(uint64_t trace, uint64_t counted, const char *what)
{
	if (trace != counted)
		fail_msg("%s: %llu in the trace, %llu counted", what, (unsigned long long)trace,
			 (unsigned long long)counted);
}

/* Every event the VM counted is in the trace, as many times. */
static void expect_trace_matches_stats(const struct trace *t, const struct pm_vm_stats *st)
{
	static const struct { int stat; const char *name; } exits[] = {
		{ PM_STAT_EXITS_UCALL, "ucall" }, { PM_STAT_EXITS_HYPERCALL, "hypercall" },
		{ PM_STAT_EXITS_MEMORY_FAULT, "memory_fault" }, { PM_STAT_EXITS_MMIO, "mmio" },
		{ PM_STAT_EXITS_INTR, "intr" },
	};
	static const char *const levels[] = { "0", "1", "2" };

	for (size_t e = 0; e < sizeof(exits) / sizeof(exits[0]); e++)
		expect_count(trace_count(t, "exit", exits[e].name, NULL, NULL, 0), st->exits[exits[e].stat],
			     exits[e].name);
	expect_count(trace_count(t, "mmu", "fault", NULL, NULL, 0), st->faults, "faults");
	for (int l = 0; l < 3; l++)
		expect_count(trace_count(t, "mmu", "fault", "level", levels[l], 0), st->mapped[l],
			     "mappings installed at a level");
	expect_count(trace_sum(t, "mmu", "zap", "zapped", 0), st->zapped, "mappings zapped");
	expect_count(trace_sum(t, "mmu", "zap", "split", 0), st->splits, "huge mappings split");
	expect_count(trace_count(t, "mmu", "tlb_shootdown", NULL, NULL, 0), st->tlb_shootdowns,
		     "TLB shootdowns");
}

/* ---- tests ---- */

static void test_trace_holds_every_counted_event_on_its_vcpu_thread(void **state)
{
	struct job jobs[VCPUS];
	struct pm_vm_stats st;
	struct trace t;
	struct vm m;
	char name[32];

	trace_fresh_path();
	vm_open(&m);
	assert_int_equal(pm_trace_start(trace_path), 0);
	vm_run(&m, jobs, 24);
	assert_int_equal(pm_kvm_ioctl(m.vm, PM_KVM_GET_VM_STATS, &st), 0);
	assert_int_equal(pm_trace_stop(), 0);
	vm_close(&m);
	load(&t);
	expect_trace_matches_stats(&t, &st);
	assert_true(st.faults > 0 && st.zapped > 0 && st.tlb_shootdowns > 0 && st.mapped[1] > 0);
	/* The VMM's conversions and KVM_RUNs, each on the vCPU's thread. */
	expect_count(trace_count(&t, "convert", "to_private", NULL, NULL, 0) +
		     trace_count(&t, "convert", "to_shared", NULL, NULL, 0),
		     m.conversions[0] + m.conversions[1], "conversions");
	expect_count(trace_count(&t, "convert", "to_private", "ret", "0", 0), 24 * VCPUS,
		     "conversions to private that succeeded");
	expect_count(trace_count(&t, "vcpu", "KVM_RUN", NULL, NULL, 0), m.runs[0] + m.runs[1], "KVM_RUNs");
	for (int i = 0; i < VCPUS; i++) {
		char vcpu[16];

		snprintf(name, sizeof(name), "vCPU %d", i);
		snprintf(vcpu, sizeof(vcpu), "%d", i);
		assert_true(trace_on_thread(&t, name, "KVM_RUN", "vcpu", vcpu));
		expect_count(trace_count(&t, "vcpu", "KVM_RUN", "vcpu", vcpu, 0), m.runs[i], "KVM_RUNs of a vCPU");
	}
	trace_free(&t);
	unlink(trace_path);
}

/* Many more events than a thread's buffer holds (8192: faults of 4K
 * pages, one at a time), from threads that have exited when the trace
 * stops. */
static void test_full_buffers_and_exited_threads_lose_nothing(void **state)
{
	struct job jobs[VCPUS];
	struct pm_vm_stats st;
	struct trace t;
	struct vm m;

	trace_fresh_path();
	vm_open_pages(&m, true);
	assert_int_equal(pm_trace_start(trace_path), 0);
	vm_run(&m, jobs, 80);
	assert_int_equal(pm_kvm_ioctl(m.vm, PM_KVM_GET_VM_STATS, &st), 0);
	assert_int_equal(pm_trace_stop(), 0);
	vm_close(&m);
	load(&t);
	assert_true(trace_count(&t, "mmu", "fault", NULL, NULL, 0) > 2 * 8192);
	expect_trace_matches_stats(&t, &st);
	trace_free(&t);
	unlink(trace_path);
}

/* Tracing stopped: nothing more is recorded; started again: a new file. */
static void test_restart_writes_only_the_new_session(void **state)
{
	struct job jobs[VCPUS];
	struct pm_vm_stats before, after;
	struct trace t;
	struct vm m;

	trace_fresh_path();
	vm_open(&m);
	vm_run(&m, jobs, 4);           /* not traced */
	assert_int_equal(pm_kvm_ioctl(m.vm, PM_KVM_GET_VM_STATS, &before), 0);
	vm_close(&m);
	vm_open(&m);
	assert_int_equal(pm_trace_start(trace_path), 0);
	vm_run(&m, jobs, 4);
	assert_int_equal(pm_kvm_ioctl(m.vm, PM_KVM_GET_VM_STATS, &after), 0);
	assert_int_equal(pm_trace_stop(), 0);
	vm_close(&m);
	load(&t);
	assert_true(before.faults > 0);
	expect_count(trace_count(&t, "mmu", "fault", NULL, NULL, 0), after.faults, "faults");
	trace_free(&t);
	unlink(trace_path);
}

static void test_api_errors(void **state)
{
	trace_fresh_path();
	assert_fails(pm_trace_stop(), EINVAL);
	assert_fails(pm_trace_start(NULL), EINVAL);
	assert_fails(pm_trace_start(""), EINVAL);
	assert_fails(pm_trace_start("/nonexistent-dir/trace.json"), ENOENT);
	assert_int_equal(pm_trace_start(trace_path), 0);
	assert_fails(pm_trace_start(trace_path), EBUSY);
	assert_int_equal(pm_trace_stop(), 0);
	assert_fails(pm_trace_stop(), EINVAL);
	unlink(trace_path);
}

/* A child forked while tracing converts memory many times and exits: the
 * parent's file is whole, and has none of the child's events. */
static void test_forked_child_does_not_write_the_trace(void **state)
{
	struct kvm_memory_attributes a = { .size = PAGE };
	struct trace t;
	pid_t pid;
	int status;

	trace_fresh_path();
	assert_int_equal(pm_trace_start(trace_path), 0);
	pid = fork();
	if (pid < 0)
		fail_msg("fork: %s", strerror(errno));
	if (pid == 0) {
		/* Nothing is closed: liburcu's grace periods do not work in a
		 * forked child (its call_rcu thread stays with the parent). */
		int kvm = pm_kvm_open(), vm = pm_kvm_ioctl(kvm, KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM);
		bool ok = vm >= 0;

		/* More conversions than a buffer holds: a child that traced
		 * would flush them into the parent's file. */
		for (int i = 0; ok && i < 3 * 8192; i++) {
			a.attributes = i % 2 ? 0 : KVM_MEMORY_ATTRIBUTE_PRIVATE;
			ok = pm_kvm_ioctl(vm, KVM_SET_MEMORY_ATTRIBUTES, &a) == 0;
		}
		/* _exit: the VM stays open (see above), which LeakSanitizer
		 * would report at exit(). */
		_exit(ok && pm_trace_stop() == -1 && errno == EINVAL ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(pm_trace_stop(), 0);
	load(&t);
	assert_int_equal(trace_count(&t, "convert", NULL, NULL, NULL, 0), 0);
	trace_free(&t);
	unlink(trace_path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_api_errors),
		cmocka_unit_test(test_trace_holds_every_counted_event_on_its_vcpu_thread),
		cmocka_unit_test(test_full_buffers_and_exited_threads_lose_nothing),
		cmocka_unit_test(test_restart_writes_only_the_new_session),
		cmocka_unit_test(test_forked_child_does_not_write_the_trace),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * Tests of pKVM's protected-VM interface as upstream documents it
 * (src/models/pkvm/hypercalls.c, mmio_guard.c, frozen.c; host/host_abort.c):
 *  - every hypercall's X0, bad arguments included, against the values of
 *    Documentation/virt/kvm/arm/hypercalls.rst written out here;
 *  - the MMIO guard: every MMIO exits before the guest's first grant, then
 *    only inside granted granules; elsewhere the guest gets a data abort
 *    (it ends, or records it when it catches aborts) and the VMM nothing;
 *    per VM;
 *  - frozen memslots racing the first KVM_RUN;
 *  - SIGSEGV for a host access through a view to a page the guest owns,
 *    in a child process (nothing of the guest's data read), SIGBUS kept on
 *    the other models and past the file's end, and chained to the VMM's
 *    own SIGBUS handler;
 *  - concurrency: grants racing MMIO accesses from several vCPUs.
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
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <linux/falloc.h>

#include <privmem/guest.h>
#include <privmem/privmem.h>
#include "lib/testutil.h"

#define PAGE      4096ULL
#define MIB       (1ULL << 20)
#define GPA       (1ULL << 30)       /* the guest memory slot */
#define GMEM_SIZE (2 * MIB)
#define MMIO_BASE (1ULL << 32)       /* no memslot there */
#define INVAL     ((uint64_t)PM_SMCCC_RET_INVALID_PARAMETER)

/* hypercalls.rst's function ids and values, written out (not privmem's
 * constants: these are what a guest built against upstream would use). */
#define HVC_FEATURES    0x86000000ULL
#define HVC_HYP_MEMINFO 0xC6000002ULL
#define HVC_MEM_SHARE   0xC6000003ULL
#define HVC_MEM_UNSHARE 0xC6000004ULL
#define HVC_MMIO_GUARD  0xC6000007ULL
#define SMCCC_SUCCESS   0ULL
#define SMCCC_NOT_SUPP  ((uint64_t)-1)
#define SMCCC_INVALID   ((uint64_t)-3)

struct vmm {
	int kvm, vm, gmem, vcpu;
	struct kvm_run *run;
};

static int set_slot(struct vmm *m, uint32_t slot, uint64_t gpa, uint64_t size, uint64_t offset)
{
	struct kvm_userspace_memory_region2 r = {
		.slot = slot, .flags = KVM_MEM_GUEST_MEMFD, .guest_phys_addr = gpa,
		.memory_size = size, .guest_memfd = (uint32_t)m->gmem, .guest_memfd_offset = offset,
	};

	return pm_kvm_ioctl(m->vm, KVM_SET_USER_MEMORY_REGION2, &r);
}

static void vmm_create_type(struct vmm *m, unsigned long type)
{
	struct kvm_create_guest_memfd cg = { .size = GMEM_SIZE, .flags = GUEST_MEMFD_FLAG_MMAP };

	m->kvm = pm_kvm_open();
	assert_true(m->kvm >= 0);
	m->vm = pm_kvm_ioctl(m->kvm, KVM_CREATE_VM, type);
	assert_true(m->vm >= 0);
	m->gmem = pm_kvm_ioctl(m->vm, KVM_CREATE_GUEST_MEMFD, &cg);
	assert_true(m->gmem >= 0);
	assert_int_equal(set_slot(m, 0, GPA, GMEM_SIZE, 0), 0);
	m->vcpu = pm_kvm_ioctl(m->vm, KVM_CREATE_VCPU, 0);
	assert_true(m->vcpu >= 0);
	m->run = pm_kvm_mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, m->vcpu, 0);
	assert_true(m->run != MAP_FAILED);
}

static void vmm_create(struct vmm *m)
{
	vmm_create_type(m, PM_VM_TYPE_PKVM);
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

/* Runs the vCPU to its next exit; returns the exit reason (a ucall's
 * command in *uc). */
static uint32_t vmm_run(struct vmm *m, struct pm_ucall *uc)
{
	assert_int_equal(pm_kvm_ioctl(m->vcpu, KVM_RUN, 0), 0);
	if (m->run->exit_reason == PM_EXIT_UCALL)
		pm_get_ucall(m->vcpu, uc);
	return m->run->exit_reason;
}

static void expect_sync(struct vmm *m, uint64_t want)
{
	struct pm_ucall uc;

	assert_int_equal(vmm_run(m, &uc), PM_EXIT_UCALL);
	if (uc.cmd == PM_UCALL_ABORT)
		fail_msg("guest aborted: %s", uc.msg);
	assert_int_equal(uc.cmd, PM_UCALL_SYNC);
	assert_int_equal(uc.args[0], want);
}

static void expect_mmio(struct vmm *m, uint64_t gpa, bool write)
{
	struct pm_ucall uc;

	assert_int_equal(vmm_run(m, &uc), KVM_EXIT_MMIO);
	assert_int_equal(m->run->mmio.phys_addr, gpa);
	assert_int_equal(m->run->mmio.is_write, write);
}

static void expect_done(struct vmm *m)
{
	struct pm_ucall uc;

	assert_int_equal(vmm_run(m, &uc), PM_EXIT_UCALL);
	if (uc.cmd == PM_UCALL_ABORT)
		fail_msg("guest aborted: %s", uc.msg);
	assert_int_equal(uc.cmd, PM_UCALL_DONE);
}

static uint64_t vm_exits(struct vmm *m, int reason)
{
	struct pm_vm_stats st;

	assert_int_equal(pm_kvm_ioctl(m->vm, PM_KVM_GET_VM_STATS, &st), 0);
	return st.exits[reason];
}

/* The model's counter `name` (PM_KVM_GET_MODEL_STATS, system handle). */
static uint64_t model_count(const char *name)
{
	struct pm_model_stats st = { .vm_type = PM_VM_TYPE_PKVM };
	int kvm = pm_kvm_open();

	assert_true(kvm >= 0);
	assert_int_equal(pm_kvm_ioctl(kvm, PM_KVM_GET_MODEL_STATS, &st), 0);
	assert_int_equal(pm_kvm_close(kvm), 0);
	for (unsigned int i = 0; i < st.nr; i++)
		if (!strcmp(st.v[i].name, name))
			return st.v[i].value;
	fail_msg("no counter %s", name);
	return 0;
}

static uint64_t hvc(struct pm_guest *g, uint64_t id, uint64_t x1, uint64_t x2, uint64_t x3)
{
	return (uint64_t)pm_guest_model_call(g, id, x1, x2, x3);
}

/* ---- every hypercall's results ---- */

/* Each call with good and bad arguments; each X0 reported by a SYNC, in
 * the order of the table in the test. */
static void guest_every_call(struct pm_guest *g, void *arg)
{
	pm_guest_write64(g, GPA, 1);                         /* page 0: the guest's */
	/* FEATURES and HYP_MEMINFO */
	pm_guest_sync(g, hvc(g, HVC_FEATURES, 0, 0, 0));
	pm_guest_sync(g, (uint64_t)pm_guest_hyp_meminfo(g));
	pm_guest_sync(g, hvc(g, HVC_HYP_MEMINFO, 1, 0, 0));
	pm_guest_sync(g, hvc(g, HVC_HYP_MEMINFO, 0, 1, 0));
	pm_guest_sync(g, hvc(g, HVC_HYP_MEMINFO, 0, 0, 1));
	/* MEM_SHARE */
	pm_guest_sync(g, hvc(g, HVC_MEM_SHARE, GPA + 1, 0, 0));     /* unaligned */
	pm_guest_sync(g, hvc(g, HVC_MEM_SHARE, GPA + 2048, 0, 0));  /* half a granule */
	pm_guest_sync(g, hvc(g, HVC_MEM_SHARE, GPA, 1, 0));         /* X2 */
	pm_guest_sync(g, hvc(g, HVC_MEM_SHARE, GPA, 0, ~0ULL));     /* X3 */
	pm_guest_sync(g, hvc(g, HVC_MEM_SHARE, MMIO_BASE, 0, 0));   /* not memory */
	pm_guest_sync(g, hvc(g, HVC_MEM_SHARE, GPA, 0, 0));         /* ok */
	pm_guest_sync(g, hvc(g, HVC_MEM_SHARE, GPA, 0, 0));         /* shared already */
	/* MEM_UNSHARE */
	pm_guest_sync(g, hvc(g, HVC_MEM_UNSHARE, GPA + 8, 0, 0));   /* unaligned */
	pm_guest_sync(g, hvc(g, HVC_MEM_UNSHARE, GPA, 0, 1));       /* X3 */
	pm_guest_sync(g, hvc(g, HVC_MEM_UNSHARE, MMIO_BASE, 0, 0)); /* not memory */
	pm_guest_sync(g, hvc(g, HVC_MEM_UNSHARE, GPA + PAGE, 0, 0));/* not shared */
	pm_guest_sync(g, hvc(g, HVC_MEM_UNSHARE, GPA, 0, 0));       /* ok */
	pm_guest_sync(g, hvc(g, HVC_MEM_UNSHARE, GPA, 0, 0));       /* not shared any more */
	/* MMIO_GUARD */
	pm_guest_sync(g, hvc(g, HVC_MMIO_GUARD, MMIO_BASE + 4, 0, 0));  /* unaligned */
	pm_guest_sync(g, hvc(g, HVC_MMIO_GUARD, MMIO_BASE, 2, 0));      /* X2 */
	pm_guest_sync(g, hvc(g, HVC_MMIO_GUARD, MMIO_BASE, 0, 2));      /* X3 */
	pm_guest_sync(g, hvc(g, HVC_MMIO_GUARD, GPA + 5 * PAGE, 0, 0)); /* memory */
	pm_guest_sync(g, hvc(g, HVC_MMIO_GUARD, 1ULL << 48, 0, 0));     /* past the IPA space */
	pm_guest_sync(g, (uint64_t)pm_guest_mmio_guard(g, MMIO_BASE)); /* ok */
	pm_guest_sync(g, (uint64_t)pm_guest_mmio_guard(g, MMIO_BASE)); /* again: ok */
	/* other ids */
	pm_guest_sync(g, hvc(g, 0xC6000005ULL, GPA, 0, 0));             /* MEM_RELINQUISH: Android only */
	pm_guest_sync(g, hvc(g, 0xC6000040ULL, 0, 0, 0));
	pm_guest_sync(g, hvc(g, 0xFFFFFFFF00000000ULL | HVC_HYP_MEMINFO, 0, 0, 0)); /* W0: 32 bits */
	pm_guest_sync(g, hvc(g, 0x46000002ULL, 0, 0, 0));               /* a yielding id: no such call */
}

static void test_every_hypercall_answers_as_hypercalls_rst_says(void **state)
{
	static const uint64_t want[] = {
		/* FEATURES: function numbers 0, 2, 3, 4, 7 */
		(1 << 0) | (1 << 2) | (1 << 3) | (1 << 4) | (1 << 7),
		4096, SMCCC_INVALID, SMCCC_INVALID, SMCCC_INVALID,
		SMCCC_INVALID, SMCCC_INVALID, SMCCC_INVALID, SMCCC_INVALID, SMCCC_INVALID, SMCCC_SUCCESS,
		SMCCC_INVALID,
		SMCCC_INVALID, SMCCC_INVALID, SMCCC_INVALID, SMCCC_INVALID, SMCCC_SUCCESS, SMCCC_INVALID,
		SMCCC_INVALID, SMCCC_INVALID, SMCCC_INVALID, SMCCC_INVALID, SMCCC_INVALID, SMCCC_SUCCESS,
		SMCCC_SUCCESS,
		SMCCC_NOT_SUPP, SMCCC_NOT_SUPP, 4096, (uint64_t)-KVM_ENOSYS,
	};
	uint64_t meminfo = model_count("hyp_meminfo_calls"), grants = model_count("mmio_guard_grants");
	uint64_t refusals = model_count("mmio_guard_refusals");
	uint64_t shares = model_count("guest_share_host"), unshares = model_count("guest_unshare_host");
	struct vmm m;

	vmm_create(&m);
	vmm_guest(&m, guest_every_call, NULL);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		struct pm_ucall uc;

		assert_int_equal(vmm_run(&m, &uc), PM_EXIT_UCALL);
		if (uc.cmd != PM_UCALL_SYNC || uc.args[0] != want[i])
			fail_msg("call %zu: ucall %" PRIu64 ", X0 %#" PRIx64 ", want %#" PRIx64 " (%s)", i,
				 uc.cmd, uc.args[0], want[i], uc.msg);
	}
	expect_done(&m);
	assert_int_equal(model_count("hyp_meminfo_calls") - meminfo, 5);
	assert_int_equal(model_count("mmio_guard_grants") - grants, 2);
	assert_int_equal(model_count("mmio_guard_refusals") - refusals, 5);
	assert_int_equal(model_count("guest_share_host") - shares, 1);
	assert_int_equal(model_count("guest_unshare_host") - unshares, 1);
	assert_int_equal(vm_exits(&m, PM_STAT_EXITS_HYPERCALL), 0);   /* none reached the VMM */
	vmm_destroy(&m);
}

/* A page the host took back before the first run (slot deleted after
 * KVM_PRE_FAULT_MEMORY donated it: poisoned) cannot be shared. */
static void guest_share_poisoned(struct pm_guest *g, void *arg)
{
	pm_guest_sync(g, (uint64_t)pm_guest_mem_share(g, GPA));
	pm_guest_sync(g, (uint64_t)pm_guest_mem_share(g, GPA + PAGE));
}

static void test_sharing_a_poisoned_page_is_invalid_parameter(void **state)
{
	struct kvm_pre_fault_memory range = { .gpa = GPA, .size = PAGE };
	uint64_t refused = model_count("guest_share_host_refused");
	struct vmm m;

	vmm_create(&m);
	assert_int_equal(pm_kvm_ioctl(m.vcpu, KVM_PRE_FAULT_MEMORY, &range), 0);
	assert_int_equal(set_slot(&m, 0, GPA, 0, 0), 0);              /* before any run: allowed */
	assert_int_equal(set_slot(&m, 0, GPA, GMEM_SIZE, 0), 0);
	vmm_guest(&m, guest_share_poisoned, NULL);
	expect_sync(&m, INVAL);
	expect_sync(&m, PM_SMCCC_RET_SUCCESS);                         /* its neighbour is fine */
	assert_int_equal(model_count("guest_share_host_refused") - refused, 2);  /* EHWPOISON; ENOENT */
	vmm_destroy(&m);
}

/* ---- the MMIO guard ---- */

/* MMIO before any grant, a grant, MMIO inside it, then outside it. */
static void guest_guard_then_stray(struct pm_guest *g, void *arg)
{
	pm_guest_write64(g, MMIO_BASE + 2 * PAGE, 1);     /* no grant yet: exits */
	pm_guest_sync(g, (uint64_t)pm_guest_mmio_guard(g, MMIO_BASE));
	pm_guest_write64(g, MMIO_BASE + 8, 2);            /* granted: exits */
	pm_guest_sync(g, pm_guest_read64(g, MMIO_BASE + 16));
	pm_guest_write64(g, MMIO_BASE + 2 * PAGE, 3);     /* not granted: aborts, the guest ends */
	pm_guest_sync(g, 0xbad);
}

static void test_after_a_grant_mmio_exits_only_inside_it_and_aborts_elsewhere(void **state)
{
	uint64_t aborts = model_count("mmio_aborts"), mmio;
	struct pm_ucall uc;
	struct vmm m;

	vmm_create(&m);
	vmm_guest(&m, guest_guard_then_stray, NULL);
	expect_mmio(&m, MMIO_BASE + 2 * PAGE, true);
	expect_sync(&m, PM_SMCCC_RET_SUCCESS);
	expect_mmio(&m, MMIO_BASE + 8, true);
	expect_mmio(&m, MMIO_BASE + 16, false);
	memcpy(m.run->mmio.data, &(uint64_t){ 0x5eed }, 8);
	expect_sync(&m, 0x5eed);
	mmio = vm_exits(&m, PM_STAT_EXITS_MMIO);
	assert_int_equal(vmm_run(&m, &uc), PM_EXIT_UCALL);
	assert_int_equal(uc.cmd, PM_UCALL_ABORT);
	assert_non_null(strstr(uc.msg, "data abort: MMIO write at 0x100002000"));
	assert_int_equal(vm_exits(&m, PM_STAT_EXITS_MMIO), mmio);    /* the VMM saw nothing */
	assert_int_equal(model_count("mmio_aborts") - aborts, 1);
	/* The guest never runs again. */
	assert_int_equal(vmm_run(&m, &uc), PM_EXIT_UCALL);
	assert_int_equal(uc.cmd, PM_UCALL_ABORT);
	vmm_destroy(&m);
}

/* A guest that catches aborts: reads yield zeros, writes do nothing, each
 * is recorded with its address; granted MMIO still exits. */
static void guest_catches_aborts(struct pm_guest *g, void *arg)
{
	uint64_t far = 0, n;

	pm_guest_catch_aborts(g, true);
	PM_GUEST_ASSERT(g, pm_guest_mmio_guard(g, MMIO_BASE + PAGE) == PM_SMCCC_RET_SUCCESS);
	pm_guest_sync(g, pm_guest_take_aborts(g, NULL));                 /* none yet */
	pm_guest_sync(g, pm_guest_read64(g, MMIO_BASE + 24));            /* not granted: 0 */
	pm_guest_write64(g, MMIO_BASE + 2 * PAGE + 8, 7);                /* not granted */
	n = pm_guest_take_aborts(g, &far);
	pm_guest_sync(g, n);
	pm_guest_sync(g, far);
	pm_guest_sync(g, pm_guest_take_aborts(g, &far));                 /* forgotten */
	pm_guest_sync(g, pm_guest_read64(g, MMIO_BASE + PAGE + 32));     /* granted: exits */
	pm_guest_sync(g, pm_guest_take_aborts(g, NULL));
}

static void test_a_guest_that_catches_aborts_sees_them_recorded(void **state)
{
	struct vmm m;

	vmm_create(&m);
	vmm_guest(&m, guest_catches_aborts, NULL);
	expect_sync(&m, 0);
	expect_sync(&m, 0);
	expect_sync(&m, 2);
	expect_sync(&m, MMIO_BASE + 2 * PAGE + 8);
	expect_sync(&m, 0);
	expect_mmio(&m, MMIO_BASE + PAGE + 32, false);
	memcpy(m.run->mmio.data, &(uint64_t){ 0x77 }, 8);
	expect_sync(&m, 0x77);
	expect_sync(&m, 0);
	expect_done(&m);
	assert_int_equal(vm_exits(&m, PM_STAT_EXITS_MMIO), 1);
	vmm_destroy(&m);
}

/* The guard is the VM's: another pkvm VM, which granted nothing, and a
 * software-protected VM see every MMIO access exit. */
static void guest_one_mmio_write(struct pm_guest *g, void *arg)
{
	pm_guest_write64(g, MMIO_BASE + 5 * PAGE, 9);
}

static void test_the_guard_belongs_to_its_vm(void **state)
{
	struct vmm a, b, sw;
	struct pm_ucall uc;

	vmm_create(&a);
	vmm_create(&b);
	vmm_create_type(&sw, KVM_X86_SW_PROTECTED_VM);
	vmm_guest(&a, guest_catches_aborts, NULL);
	expect_sync(&a, 0);                                             /* a granted */
	vmm_guest(&b, guest_one_mmio_write, NULL);
	expect_mmio(&b, MMIO_BASE + 5 * PAGE, true);
	expect_done(&b);
	vmm_guest(&sw, guest_one_mmio_write, NULL);
	expect_mmio(&sw, MMIO_BASE + 5 * PAGE, true);
	expect_done(&sw);
	assert_int_equal(vmm_run(&a, &uc), PM_EXIT_UCALL);
	vmm_destroy(&sw);
	vmm_destroy(&b);
	vmm_destroy(&a);
}

/* ---- frozen memslots racing the first KVM_RUN ---- */

#define RACE_SLOTS 512

struct slot_race {
	struct vmm *m;
	int created;                 /* slots 1.. created before the first refusal */
	int first_error;
};

static void *slot_creator(void *arg)
{
	struct slot_race *r = arg;

	for (int i = 1; i <= RACE_SLOTS; i++) {
		struct kvm_userspace_memory_region2 mr = {
			.slot = (uint32_t)i, .flags = KVM_MEM_GUEST_MEMFD,
			.guest_phys_addr = 2 * GPA + (uint64_t)i * PAGE, .memory_size = PAGE,
			.guest_memfd = (uint32_t)r->m->gmem, .guest_memfd_offset = (uint64_t)(i - 1) * PAGE,
		};

		if (pm_kvm_ioctl(r->m->vm, KVM_SET_USER_MEMORY_REGION2, &mr)) {
			r->first_error = errno;
			break;
		}
		r->created = i;
	}
	return NULL;
}

static void guest_sync_once(struct pm_guest *g, void *arg)
{
	pm_guest_sync(g, 1);
}

/*
 * Slots being created (each a page of a second file) while the first
 * KVM_RUN begins: the creations succeed up to some point and the first
 * one refused is EPERM; once the guest has run, every later one is
 * refused too. (Run under TSan, this is the freeze's locking.)
 */
static void test_slot_changes_racing_the_first_run_land_wholly_before_it_or_fail(void **state)
{
	struct kvm_create_guest_memfd cg = { .size = (RACE_SLOTS + 1) * PAGE };
	int created[8];

	for (int round = 0; round < 8; round++) {
		struct slot_race r = { 0 };
		pthread_t t;
		struct vmm m;
		int main_gmem;

		vmm_create(&m);
		main_gmem = m.gmem;
		m.gmem = pm_kvm_ioctl(m.vm, KVM_CREATE_GUEST_MEMFD, &cg);
		assert_true(m.gmem >= 0);
		r.m = &m;
		vmm_guest(&m, guest_sync_once, NULL);
		assert_int_equal(pthread_create(&t, NULL, slot_creator, &r), 0);
		usleep((useconds_t)round * 100);          /* the run begins later each round */
		expect_sync(&m, 1);
		pthread_join(t, NULL);
		if (r.created < RACE_SLOTS)
			assert_int_equal(r.first_error, EPERM);
		created[round] = r.created;
		/* After the run: nothing more. */
		{
			struct kvm_userspace_memory_region2 mr = {
				.slot = RACE_SLOTS + 1, .flags = KVM_MEM_GUEST_MEMFD,
				.guest_phys_addr = 3 * GPA, .memory_size = PAGE, .guest_memfd = (uint32_t)m.gmem,
				.guest_memfd_offset = RACE_SLOTS * PAGE,
			};

			assert_fails(pm_kvm_ioctl(m.vm, KVM_SET_USER_MEMORY_REGION2, &mr), EPERM);
		}
		assert_int_equal(pm_kvm_close(m.gmem), 0);
		m.gmem = main_gmem;
		vmm_destroy(&m);
	}
	fprintf(stderr, "slot race: slots created before the freeze, by round: %d %d %d %d %d %d %d %d\n",
		created[0], created[1], created[2], created[3], created[4], created[5], created[6], created[7]);
}

/* ---- SIGSEGV for the host ---- */

#define SECRET 0x5ec7e75ec7e75ec7ULL

static void guest_keeps_a_secret(struct pm_guest *g, void *arg)
{
	for (uint64_t a = GPA; a < GPA + PAGE; a += 8)
		pm_guest_write64(g, a, SECRET);
	pm_guest_sync(g, 1);
}

/* Runs fn(arg) in a child with SIGSEGV at its default action; SIGBUS
 * too if default_bus, else the handler the child inherits (privmem's,
 * once a pKVM view exists: its answer is what the test is about). Returns
 * the signal that killed the child, or 0 if it exited. */
static int child_dies_of(void (*fn)(void *), void *arg, bool default_bus)
{
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		signal(SIGSEGV, SIG_DFL);
		if (default_bus)
			signal(SIGBUS, SIG_DFL);
		fn(arg);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

struct host_read {
	const volatile uint8_t *src;
	uint8_t *dst;                /* MAP_SHARED with the parent */
	size_t len;
};

static void host_reads(void *arg)
{
	struct host_read *h = arg;

	for (size_t i = 0; i < h->len; i++)
		h->dst[i] = h->src[i];
}

static void host_writes(void *arg)
{
	struct host_read *h = arg;

	((volatile uint8_t *)h->src)[0] = 0x42;
}

/*
 * A host read of a page the guest owns, through a view, kills the VMM with
 * SIGSEGV (not SIGBUS) before a byte reaches it; a write too. The guest's
 * data is intact afterwards.
 */
static void test_a_host_access_to_an_owned_page_is_sigsegv_and_reads_nothing(void **state)
{
	uint8_t *view, *dst = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct host_read h;
	struct vmm m;

	assert_true(dst != MAP_FAILED);
	memset(dst, 0xa5, PAGE);
	vmm_create(&m);
	vmm_guest(&m, guest_keeps_a_secret, NULL);
	expect_sync(&m, 1);
	view = pm_kvm_mmap(NULL, GMEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, m.gmem, 0);
	assert_true(view != MAP_FAILED);
	h = (struct host_read){ .src = view, .dst = dst, .len = PAGE };
	assert_int_equal(child_dies_of(host_reads, &h, false), SIGSEGV);
	for (size_t i = 0; i < PAGE; i++)
		assert_int_equal(dst[i], 0xa5);                 /* nothing was read */
	assert_int_equal(child_dies_of(host_writes, &h, false), SIGSEGV);
	/* A page never touched is not the host's either. */
	h.src = view + 7 * PAGE;
	assert_int_equal(child_dies_of(host_reads, &h, false), SIGSEGV);
	/* In this process, with a handler: the signal is SIGSEGV at the address. */
	assert_true(pm_test_sigsegv(view + 100, false, dst));
	assert_int_equal(dst[0], 0xa5);
	assert_int_equal(pm_kvm_munmap(view, GMEM_SIZE), 0);
	vmm_destroy(&m);
	munmap(dst, PAGE);
}

/* The other models keep SIGBUS: a software-protected VM's page the host
 * may not map. */
static void test_other_models_keep_sigbus(void **state)
{
	uint8_t *view;
	struct host_read h;
	struct vmm m;
	uint8_t dst;

	vmm_create_type(&m, KVM_X86_SW_PROTECTED_VM);
	view = pm_kvm_mmap(NULL, GMEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, m.gmem, 0);
	assert_true(view != MAP_FAILED);
	h = (struct host_read){ .src = view, .dst = &dst, .len = 1 };
	assert_int_equal(child_dies_of(host_reads, &h, true), SIGBUS);
	assert_int_equal(pm_kvm_munmap(view, GMEM_SIZE), 0);
	vmm_destroy(&m);
}

/* A SIGBUS that is not a pKVM view's goes to the handler the VMM had
 * installed (privmem chains to it), with its address. */
static sigjmp_buf chain_env;
static void *volatile chain_addr;

static void chain_handler(int sig, siginfo_t *si, void *uc)
{
	chain_addr = si->si_addr;
	siglongjmp(chain_env, 1);
}

static void test_privmem_chains_other_sigbus_to_the_vmm_handler(void **state)
{
	struct sigaction sa, old;
	uint8_t *pview, *sview;
	volatile uint8_t sink;
	struct vmm p, s;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = chain_handler;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGBUS, &sa, &old), 0);
	vmm_create(&p);
	vmm_create_type(&s, KVM_X86_SW_PROTECTED_VM);
	pview = pm_kvm_mmap(NULL, GMEM_SIZE, PROT_READ, MAP_SHARED, p.gmem, 0);   /* installs privmem's */
	sview = pm_kvm_mmap(NULL, GMEM_SIZE, PROT_READ, MAP_SHARED, s.gmem, 0);
	assert_true(pview != MAP_FAILED && sview != MAP_FAILED);
	chain_addr = NULL;
	if (sigsetjmp(chain_env, 1) == 0) {
		sink = sview[3 * PAGE];
		fail_msg("read %u", sink);
	}
	assert_ptr_equal(chain_addr, sview + 3 * PAGE);
	assert_true(pm_test_sigsegv(pview + 3 * PAGE, false, NULL));
	assert_int_equal(pm_kvm_munmap(sview, GMEM_SIZE), 0);
	assert_int_equal(pm_kvm_munmap(pview, GMEM_SIZE), 0);
	vmm_destroy(&s);
	vmm_destroy(&p);
	sigaction(SIGBUS, &old, NULL);
}

/* ---- concurrency: grants racing MMIO accesses ---- */

#define G_VCPUS    4                  /* vCPU 0 grants, the others access */
#define G_GRANULES 64
#define G_DOOR(i)  (MMIO_BASE + (uint64_t)(i) * PAGE)
#define G_NEVER    (MMIO_BASE + G_GRANULES * PAGE)   /* never granted */
#define G_COUNT    GPA                /* guest memory: granules granted so far */
#if defined(PM_ASAN) || defined(PM_TSAN)
#define G_ACCESSES 1500
#else
#define G_ACCESSES 6000
#endif

struct g_vcpu {
	unsigned int idx;
	int handle;
	struct kvm_run *run;
	uint64_t accesses, aborts, early_aborts, never_exits;
	bool failed;
};

struct g_world {
	struct vmm m;
	struct g_vcpu v[G_VCPUS];
	atomic_uint_fast64_t exits_at[G_GRANULES + 1];   /* the VMM's MMIO exits, by granule */
};

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* vCPU 0 grants the granules one by one, publishing how many in guest
 * memory after each; the others write to random granules meanwhile. A
 * granule counted as granted before an access must never abort; one not
 * granted yet may exit or abort; the never-granted one always aborts
 * once the guard is on. After the last grant, a pass over all of them
 * aborts nowhere. */
static void guest_grant_or_access(struct pm_guest *g, void *arg)
{
	struct g_vcpu *c = arg;
	uint64_t rng = c->idx * 0x9E3779B97F4A7C15ULL + 1, far;

	if (c->idx == 0) {
		for (uint64_t i = 0; i < G_GRANULES; i++) {
			PM_GUEST_ASSERT(g, pm_guest_mmio_guard(g, G_DOOR(i)) == PM_SMCCC_RET_SUCCESS);
			pm_guest_write64(g, G_COUNT, i + 1);
		}
		return;
	}
	pm_guest_catch_aborts(g, true);
	while (pm_guest_read64(g, G_COUNT) == 0)
		sched_yield();                            /* the guard is on from here */
	for (uint64_t k = 0; k < G_ACCESSES; k++) {
		uint64_t granted = pm_guest_read64(g, G_COUNT), i = xorshift(&rng) % (G_GRANULES + 1);
		uint64_t n;

		pm_guest_write64(g, i == G_GRANULES ? G_NEVER : G_DOOR(i), k);
		n = pm_guest_take_aborts(g, &far);
		c->accesses++;
		c->aborts += n;
		if (n && i < granted)
			c->early_aborts++;                /* granted before, aborted: a bug */
		if (!n && i == G_GRANULES)
			c->never_exits++;                 /* the never-granted one got through */
		PM_GUEST_ASSERT(g, n <= 1 && (!n || far == (i == G_GRANULES ? G_NEVER : G_DOOR(i))));
	}
	while (pm_guest_read64(g, G_COUNT) != G_GRANULES)
		sched_yield();
	for (uint64_t i = 0; i < G_GRANULES; i++) {
		pm_guest_write64(g, G_DOOR(i), i);
		c->early_aborts += pm_guest_take_aborts(g, NULL);
		c->accesses++;
	}
}

static void *g_vcpu_main(void *arg)
{
	struct g_vcpu *c = arg;
	struct g_world *w = (struct g_world *)((char *)(c - c->idx) - offsetof(struct g_world, v));

	for (;;) {
		struct pm_ucall uc;

		if (pm_kvm_ioctl(c->handle, KVM_RUN, 0)) {
			c->failed = true;
			break;
		}
		if (c->run->exit_reason == KVM_EXIT_MMIO) {
			uint64_t a = c->run->mmio.phys_addr;

			if (a < MMIO_BASE || a > G_NEVER || (a - MMIO_BASE) % PAGE) {
				c->failed = true;
				break;
			}
			atomic_fetch_add(&w->exits_at[(a - MMIO_BASE) / PAGE], 1);
			continue;
		}
		if (c->run->exit_reason != PM_EXIT_UCALL) {
			c->failed = true;
			break;
		}
		if (pm_get_ucall(c->handle, &uc) == PM_UCALL_DONE)
			break;
		fprintf(stderr, "vCPU %u: ucall %" PRIu64 " %s\n", c->idx, uc.cmd, uc.msg);
		c->failed = true;
		break;
	}
	return NULL;
}

static void test_grants_racing_mmio_from_several_vcpus(void **state)
{
	static struct g_world w;
	pthread_t t[G_VCPUS];
	uint64_t accesses = 0, aborts = 0, exits = 0, aborts0 = model_count("mmio_aborts");

	memset(&w, 0, sizeof(w));
	vmm_create(&w.m);
	for (unsigned int i = 0; i < G_VCPUS; i++) {
		struct g_vcpu *c = &w.v[i];
		struct pm_guest_entry e = { .fn = guest_grant_or_access, .arg = c };

		c->idx = i;
		c->handle = i ? pm_kvm_ioctl(w.m.vm, KVM_CREATE_VCPU, i) : w.m.vcpu;
		assert_true(c->handle >= 0);
		c->run = i ? pm_kvm_mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, c->handle, 0) : w.m.run;
		assert_true(c->run != MAP_FAILED);
		assert_int_equal(pm_kvm_ioctl(c->handle, PM_KVM_SET_GUEST, &e), 0);
	}
	for (unsigned int i = 0; i < G_VCPUS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, g_vcpu_main, &w.v[i]), 0);
	for (unsigned int i = 0; i < G_VCPUS; i++)
		pthread_join(t[i], NULL);
	for (unsigned int i = 0; i < G_VCPUS; i++) {
		assert_false(w.v[i].failed);
		assert_int_equal(w.v[i].early_aborts, 0);
		assert_int_equal(w.v[i].never_exits, 0);
		accesses += w.v[i].accesses;
		aborts += w.v[i].aborts;
	}
	for (unsigned int i = 0; i <= G_GRANULES; i++)
		exits += atomic_load(&w.exits_at[i]);
	fprintf(stderr, "grants racing MMIO: %" PRIu64 " accesses, %" PRIu64 " exits, %" PRIu64 " aborts\n",
		accesses, exits, aborts);
	assert_int_equal(accesses, (G_VCPUS - 1) * (G_ACCESSES + G_GRANULES));
	assert_int_equal(atomic_load(&w.exits_at[G_GRANULES]), 0);   /* never granted: never exits */
	assert_int_equal(exits + aborts, accesses);                     /* each access one or the other */
	assert_int_equal(model_count("mmio_aborts") - aborts0, aborts);
	assert_true(aborts > 0);
	for (unsigned int i = 1; i < G_VCPUS; i++) {
		assert_int_equal(pm_kvm_munmap(w.v[i].run, PAGE), 0);
		assert_int_equal(pm_kvm_close(w.v[i].handle), 0);
	}
	vmm_destroy(&w.m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_hypercall_answers_as_hypercalls_rst_says),
		cmocka_unit_test(test_sharing_a_poisoned_page_is_invalid_parameter),
		cmocka_unit_test(test_after_a_grant_mmio_exits_only_inside_it_and_aborts_elsewhere),
		cmocka_unit_test(test_a_guest_that_catches_aborts_sees_them_recorded),
		cmocka_unit_test(test_the_guard_belongs_to_its_vm),
		cmocka_unit_test(test_slot_changes_racing_the_first_run_land_wholly_before_it_or_fail),
		cmocka_unit_test(test_a_host_access_to_an_owned_page_is_sigsegv_and_reads_nothing),
		cmocka_unit_test(test_other_models_keep_sigbus),
		cmocka_unit_test(test_privmem_chains_other_sigbus_to_the_vmm_handler),
		cmocka_unit_test(test_grants_racing_mmio_from_several_vcpus),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

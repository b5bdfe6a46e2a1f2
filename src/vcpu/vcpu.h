/* SPDX-License-Identifier: MIT */
/*
 * vCPUs. A vCPU belongs to its VM (freed when the VM is destroyed, as in
 * KVM); its handle holds a reference on the VM. Its struct kvm_run is one
 * page, mapped into the VMM by pm_kvm_mmap() of the vCPU handle.
 *
 * Guest code runs as a coroutine (coro.h) on the thread that calls KVM_RUN.
 * The guest side fills in an exit (run->exit_reason and its fields, the
 * return value of KVM_RUN) and yields; the next KVM_RUN completes what the
 * exit left pending (MMIO read data, a hypercall's return value) and
 * resumes it.
 *
 * Locking: run_lock serialises KVM_RUN, PM_KVM_SET_GUEST and
 * pm_get_ucall; every field below it is protected by it (the guest side
 * runs while the KVM_RUN caller holds it). The TLB is private to the
 * vCPU; in_guest and tlb_ack are read by shootdowns on other threads.
 */
#ifndef PM_VCPU_VCPU_H
#define PM_VCPU_VCPU_H

#include <pthread.h>
#include <privmem/guest.h>
#include <privmem/kvm.h>
#include "lib/common.h"

struct pm_vm;
struct pm_coro;
struct pm_x86_cpu;

#define PM_TLB_ENTRIES 256       /* direct mapped, by gpa page */
#define PM_TLB_HUGE_ENTRIES 32   /* 2M translations, direct mapped by gpa >> 21 */

struct pm_tlb_entry {
	uint64_t tag;                /* gpa >> 12 (with the model's kind bits) */
	uint32_t epoch;              /* the TLB's epoch when filled; 0: empty */
	uint8_t *hva;                /* host address of the page */
	bool writable;
};

/* What an exit left for the next KVM_RUN to complete. */
enum pm_vcpu_pending {
	PM_PENDING_NONE,
	PM_PENDING_MMIO_READ,        /* copy run->mmio.data to mmio_dst */
	PM_PENDING_HYPERCALL,        /* hand run->hypercall.ret to the guest */
};

struct pm_vcpu {
	struct pm_vm *vm;            /* owner; immutable */
	unsigned int id;             /* KVM vCPU id; immutable */
	unsigned int idx;            /* index in vm->vcpus; immutable */
	struct kvm_run *run;         /* one page of shared memory, the library's own
	                              * mapping; the VMM's mmaps map it again */

	pthread_mutex_t run_lock;
	struct pm_guest_entry entry; /* run_lock */
	struct pm_coro *coro;        /* run_lock; NULL until the first KVM_RUN */
	bool finished;               /* run_lock: the guest returned or aborted */
	int exit_ret;                /* run_lock: KVM_RUN's result for this exit */
	enum pm_vcpu_pending pending;/* run_lock */
	void *mmio_dst;              /* run_lock: PM_PENDING_MMIO_READ */
	long hypercall_ret;          /* run_lock: PM_PENDING_HYPERCALL result */
	struct pm_ucall ucall;       /* run_lock: valid if exit_reason is PM_EXIT_UCALL */
	uint32_t fatal_event;        /* run_lock: the KVM_SYSTEM_EVENT_* that ended the
	                              * guest (pm_vcpu_guest_fatal), 0 if none */
	uint64_t fatal_data;         /* run_lock: its data[0] */
	bool event_pending;          /* run_lock: KVM_RUN was interrupted (immediate_exit
	                              * or a signal: the VMM kicked the vCPU) since the
	                              * guest last looked (pm_vcpu_guest_take_event) */
	bool catch_aborts;           /* run_lock: the C guest takes injected aborts
	                              * itself (pm_guest_catch_aborts) */
	uint64_t aborts;             /* run_lock: aborts caught since it last looked */
	uint64_t abort_far;          /* run_lock: the address of the last one */
	atomic_uint_fast64_t exits[PM_STAT_NR_EXITS]; /* by PM_STAT_EXITS_*; read without run_lock */

	/* The x86 engine (x86_guest.c): the vCPU's architectural state, which
	 * KVM_GET/SET_REGS and friends read and write, and which runs real
	 * guest code when no C guest is set (PM_KVM_SET_GUEST). The pointer is
	 * immutable; the state is run_lock's. */
	struct pm_x86_cpu *x86;
	uint32_t dead_exit;          /* run_lock: KVM_EXIT_SHUTDOWN or _INTERNAL_ERROR that
	                              * ended the x86 guest (reported again), 0 if none */
	unsigned int x86_polls;      /* run_lock: the engine's polls, to space signal checks */
	uint64_t kick_gen, kick_ns;  /* run_lock: the signal generation and time of the
	                              * last pending-signal question (kick.c) */
	bool x86_in_exit;            /* run_lock: suspended in an exit that the next KVM_RUN
	                              * completes (I/O, MMIO, hypercall): the instruction is
	                              * in flight */
	bool x86_completing;         /* run_lock: KVM_RUN resumed the engine only to finish
	                              * that instruction (immediate_exit or a kick) */
	uint64_t x86_access_rip;     /* run_lock: RIP when the engine's page hook began (a
	                              * VMM that moves it during an exit there drops the
	                              * instruction) */

	/* TLB and shootdown. */
	_Atomic uint64_t *tlb_gen;   /* &vm->mmu->tlb_gen; immutable */
	atomic_bool in_guest;        /* the vCPU may be using TLB entries */
	atomic_uint_fast64_t tlb_ack;/* the last TLB generation flushed */
	uint64_t tlb_seen;           /* vCPU-private copy of tlb_ack */
	uint32_t tlb_epoch;          /* vCPU-private: the epoch of every valid entry; a
	                              * flush moves to the next, so old entries miss
	                              * without being touched (O(1)); never 0 */
	struct pm_tlb_entry tlb[PM_TLB_ENTRIES];
	struct pm_tlb_entry tlb_huge[PM_TLB_HUGE_ENTRIES]; /* tag gpa >> 21: the 2M
	                              * stage-2 leaves of models without an access
	                              * check, as a hardware TLB keeps large pages */
};

/* KVM_GET_VCPU_MMAP_SIZE: struct kvm_run, then the page KVM_EXIT_IO's data
 * is in (io.data_offset; KVM_PIO_PAGE_OFFSET). No coalesced-MMIO ring. */
/* The TLB entry of gpa's page, if it is valid. */
static inline struct pm_tlb_entry *pm_vcpu_tlb_hit(struct pm_vcpu *v, uint64_t gpa)
{
	struct pm_tlb_entry *e = &v->tlb[(gpa >> PM_PAGE_SHIFT) & (PM_TLB_ENTRIES - 1)];

	return e->tag == gpa >> PM_PAGE_SHIFT && e->epoch == v->tlb_epoch ? e : NULL;
}

/* The 2M TLB entry covering gpa, if it is valid (hva: the 2M page's base). */
static inline struct pm_tlb_entry *pm_vcpu_tlb_huge_hit(struct pm_vcpu *v, uint64_t gpa)
{
	struct pm_tlb_entry *e = &v->tlb_huge[(gpa >> 21) & (PM_TLB_HUGE_ENTRIES - 1)];

	return e->tag == gpa >> 21 && e->epoch == v->tlb_epoch ? e : NULL;
}

#define PM_VCPU_PIO_OFFSET 4096
#define PM_VCPU_MMAP_SIZE  (2 * 4096)

/* KVM_CREATE_VCPU. */
int pm_vcpu_create(struct pm_vm *vm, unsigned long id, struct pm_vcpu **out);
/* Called by VM destruction only. */
void pm_vcpu_destroy(struct pm_vcpu *vcpu);

/* KVM_RUN: 0, or -errno (with the exit described in run). */
int pm_vcpu_run(struct pm_vcpu *vcpu);
/* PM_KVM_SET_GUEST. */
int pm_vcpu_set_guest(struct pm_vcpu *vcpu, const struct pm_guest_entry *e);
/* KVM's x86 vCPU state ioctls (regs.c): -ENOTTY for another request. */
long pm_vcpu_x86_ioctl(struct pm_vcpu *vcpu, unsigned long req, unsigned long arg);
/* KVM_GET_TSC_KHZ on a vCPU or a VM: the host TSC's rate (regs.c). */
long pm_x86_tsc_khz(void);
/* The system handle's x86 CPU model ioctls (regs.c): -ENOTTY for another. */
long pm_x86_sys_ioctl(unsigned long req, unsigned long arg);
/* KVM_PRE_FAULT_MEMORY. */
int pm_vcpu_pre_fault(struct pm_vcpu *vcpu, struct kvm_pre_fault_memory *range);
/* pm_get_ucall. */
uint64_t pm_vcpu_get_ucall(struct pm_vcpu *vcpu, struct pm_ucall *uc);

/* Guest side (on the vCPU's coroutine): exits to the VMM with
 * KVM_EXIT_HYPERCALL nr(a0, a1, a2); returns the VMM's hypercall.ret. */
long pm_vcpu_exit_hypercall(struct pm_vcpu *v, uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2);

/* Is a signal pending for the calling thread (KVM_RUN's EINTR)? One system
 * call (kick.c). pm_vcpu_kicked asks only when the answer may have changed
 * since this vCPU last asked (a signal sent in the process since, or 100 us
 * passed): KVM_RUN's check. */
bool pm_vcpu_signal_pending(void);
bool pm_vcpu_kicked(struct pm_vcpu *vcpu);
/* The guest coroutine's body: a C guest (guest.c), or the x86 engine
 * running the guest's machine code (x86_guest.c). */
void pm_guest_main(void *arg);
void pm_x86_guest_main(void *arg);
/* After an exit taken inside the x86 engine's page hook (a memory fault, an
 * error, a kick; guest.c): abandons the instruction if the VMM moved RIP
 * meanwhile (x86_guest.c). */
void pm_x86_guest_resumed_in_access(struct pm_vcpu *v);
/* KVM_RUN with immediate_exit or a pending signal while the x86 guest is
 * in an I/O, MMIO or hypercall exit: finishes that instruction first, as
 * KVM completes userspace I/O before it looks at either, so that the state
 * the VMM then reads is consistent. 1 when finished (KVM_RUN goes on to
 * its EINTR), or KVM_RUN's result for a new exit the instruction took. */
int pm_x86_guest_complete(struct pm_vcpu *v);
/* The x86 engine's ops over this vCPU (x86_guest.c). */
extern const struct pm_x86_ops pm_vcpu_x86_ops;

/* For models' guest-side calls (on the vCPU's coroutine): whether the VMM
 * kicked the vCPU since the last call (an event is pending for the guest:
 * long operations stop and ask to be retried, as TDX's MapGPA does). */
static inline bool pm_vcpu_guest_take_event(struct pm_vcpu *v)
{
	bool e = v->event_pending;

	v->event_pending = false;
	return e;
}

/* Guest mode: a vCPU in guest mode uses its TLB; entering flushes it if a
 * shootdown happened meanwhile. */
void pm_vcpu_enter_guest_mode(struct pm_vcpu *vcpu);
void pm_vcpu_exit_guest_mode(struct pm_vcpu *vcpu);
/* In guest mode: acknowledge a pending shootdown (flush) if there is one. */
void pm_vcpu_tlb_check(struct pm_vcpu *vcpu);
void pm_vcpu_tlb_flush(struct pm_vcpu *vcpu);

/* For the guest API's model-specific calls (guest context): returns if
 * g's VM is of `type`; otherwise ends the guest with PM_UCALL_ABORT and
 * "call: not <model> VM (VM type N)", as the instruction or hypercall
 * would fail outside that kind of VM. */
void pm_guest_require_vm_type(struct pm_guest *g, unsigned long type, const char *call,
			      const char *model);

/* For models' guest_call hooks, which run in guest context (guest.c):
 *  - pm_vcpu_guest_page: the host address of gpa's page as the guest's
 *    access translates it (faulting it in, taking exits, mapping at most
 *    at max_level: PM_FAULT_MAX_LEVEL for no limit), without the model's
 *    access check and without caching it; NULL for MMIO;
 *  - pm_vcpu_tlb_forget: drop this vCPU's TLB entry of gpa's page;
 *  - pm_vcpu_map_gpa_range_exit: a KVM_HC_MAP_GPA_RANGE exit to the VMM
 *    (-KVM_ENOSYS unless enabled, -KVM_EINVAL for a bad range), returning
 *    the VMM's answer;
 *  - pm_vcpu_guest_fatal: ends the guest with KVM_EXIT_SYSTEM_EVENT of
 *    `type` (data[0] = data); KVM_RUN reports it again after. */
uint8_t *pm_vcpu_guest_page(struct pm_vcpu *vcpu, uint64_t gpa, bool write, int max_level);

/* For the engines that run on the vCPU's coroutine (guest.c, x86_guest.c):
 *  - pm_vcpu_guest_exit: takes an exit whose kvm_run fields are filled in
 *    (KVM_RUN returns ret; counted as exit stat); returns when re-run;
 *  - pm_vcpu_count_exit: counts an exit of reason stat (PM_STAT_EXITS_*)
 *    whose kvm_run is filled in, and traces it;
 *  - pm_vcpu_guest_intr_exit: a kick (KVM_EXIT_INTR, EINTR);
 *  - pm_vcpu_guest_access_page: the host address of the page holding gpa
 *    for an access of size bytes, through the vCPU TLB, the fault path and
 *    the model's access check, taking exits until it can answer; NULL when
 *    no memory is there (MMIO);
 *  - pm_vcpu_guest_mmio: len bytes at gpa as KVM_EXIT_MMIO exits (8 at a time),
 *    unless the model refuses the access (mmio_allowed): then a data abort
 *    is injected (the guest ends, or a C guest that catches aborts records
 *    it, its read yielding zeros). */
void pm_vcpu_guest_exit(struct pm_vcpu *vcpu, int ret, int stat);
void pm_vcpu_count_exit(struct pm_vcpu *vcpu, int stat);
void pm_vcpu_guest_intr_exit(struct pm_vcpu *vcpu);
/* KVM_RUN fails with -err (ENOMEM, EIO) and no exit to describe; the
 * guest goes on when the vCPU runs again (a model call retries). */
void pm_vcpu_guest_error_exit(struct pm_vcpu *vcpu, int err);
uint8_t *pm_vcpu_guest_access_page(struct pm_vcpu *vcpu, uint64_t gpa, unsigned int size, bool write);
void pm_vcpu_guest_mmio(struct pm_vcpu *vcpu, uint64_t gpa, uint8_t *buf, size_t len, bool write);
void pm_vcpu_tlb_forget(struct pm_vcpu *vcpu, uint64_t gpa);
long pm_vcpu_map_gpa_range_exit(struct pm_vcpu *vcpu, uint64_t gpa, uint64_t npages, uint64_t attrs);
_Noreturn void pm_vcpu_guest_fatal(struct pm_vcpu *vcpu, uint32_t type, uint64_t data);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * KVM_RUN and the other vCPU ioctls: the host side of the vCPU engine.
 *
 * KVM_RUN completes what the previous exit left pending (MMIO read data, a
 * hypercall's return value), honours immediate_exit and pending signals,
 * then enters guest mode and resumes the guest coroutine until it exits
 * again. See vcpu.h for the locking and guest.c for the guest side.
 */
#include <signal.h>
#include <privmem/guest.h>
#include "kvm/vm.h"
#include "lib/trace.h"
#include "mmu/mmu.h"
#include "vcpu/coro.h"
#include "vcpu/vcpu.h"
#include "vcpu/x86/x86.h"

/* ---- guest mode and the TLB ---- */

/* O(1): the next epoch; the entries are cleared only when the epochs wrap. */
void pm_vcpu_tlb_flush(struct pm_vcpu *vcpu)
{
	if (++vcpu->tlb_epoch == 0) {
		for (unsigned int i = 0; i < PM_TLB_ENTRIES; i++)
			vcpu->tlb[i].epoch = 0;
		for (unsigned int i = 0; i < PM_TLB_HUGE_ENTRIES; i++)
			vcpu->tlb_huge[i].epoch = 0;
		vcpu->tlb_epoch = 1;
	}
}

/* Flushes for shootdown generation gen and acknowledges it. The model
 * hears of the flush first (as a re-entry: TDX's TLB tracking), so a
 * shootdown that returns has every vCPU in guest mode past it. */
static void vcpu_flush_ack(struct pm_vcpu *vcpu, uint64_t gen)
{
	const struct pm_model_ops *m = vcpu->vm->model;

	pm_vcpu_tlb_flush(vcpu);
	/* The engine caches host addresses of guest pages too. */
	pm_x86_flush(vcpu->x86, PM_X86_FLUSH_TLB);
	if (m->vcpu_enter)
		m->vcpu_enter(vcpu);
	vcpu->tlb_seen = gen;
	atomic_store_explicit(&vcpu->tlb_ack, gen, memory_order_release);
}

void pm_vcpu_tlb_check(struct pm_vcpu *vcpu)
{
	uint64_t gen = atomic_load_explicit(vcpu->tlb_gen, memory_order_acquire);

	if (pm_likely(gen == vcpu->tlb_seen))
		return;
	vcpu_flush_ack(vcpu, gen);
}

void pm_vcpu_enter_guest_mode(struct pm_vcpu *vcpu)
{
	uint64_t gen;

	/* Dekker with pm_mmu_tlb_shootdown: either it sees us in guest mode
	 * and waits for our ack, or we see its new generation and flush. */
	atomic_store(&vcpu->in_guest, true);
	if (vcpu->vm->model->vcpu_enter)
		vcpu->vm->model->vcpu_enter(vcpu);
	gen = atomic_load(vcpu->tlb_gen);
	if (gen != vcpu->tlb_seen)
		vcpu_flush_ack(vcpu, gen);
}

void pm_vcpu_exit_guest_mode(struct pm_vcpu *vcpu)
{
	if (vcpu->vm->model->vcpu_exit)
		vcpu->vm->model->vcpu_exit(vcpu);
	atomic_store_explicit(&vcpu->in_guest, false, memory_order_release);
}

/* ---- KVM_RUN ---- */

/* Completes the previous exit with what the VMM wrote into kvm_run. */
static void vcpu_complete_exit(struct pm_vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;

	switch (vcpu->pending) {
	case PM_PENDING_MMIO_READ:
		/* mmio_dst is a buffer of sizeof(run->mmio.data) (guest.c). */
		memcpy(vcpu->mmio_dst, run->mmio.data, sizeof(run->mmio.data));
		break;
	case PM_PENDING_HYPERCALL:
		vcpu->hypercall_ret = (long)run->hypercall.ret;
		break;
	case PM_PENDING_NONE:
		break;
	}
	vcpu->pending = PM_PENDING_NONE;
}

/* The x86 guest ended with a shutdown or an internal error: the same exit
 * again, as KVM would meet the same state again. */
static int vcpu_report_dead(struct pm_vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;

	run->exit_reason = vcpu->dead_exit;
	if (vcpu->dead_exit == KVM_EXIT_INTERNAL_ERROR) {
		memset(&run->internal, 0, sizeof(run->internal));
		run->internal.suberror = KVM_INTERNAL_ERROR_EMULATION;
	}
	return 0;
}

static int vcpu_run_locked(struct pm_vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	bool x86 = !vcpu->entry.fn;     /* no C guest: the guest's machine code */
	bool alive;

	vcpu_complete_exit(vcpu);
	/* KVM finishes an instruction that exited to userspace before it
	 * looks at immediate_exit or signals: the state is then consistent. */
	bool kicked = pm_vcpu_kicked(vcpu);

	if (x86 && vcpu->x86_in_exit && (run->immediate_exit || kicked)) {
		int r = pm_x86_guest_complete(vcpu);

		if (r != 1)
			return r;
	}
	if (run->immediate_exit) {
		vcpu->event_pending = true;
		return -EINTR;
	}
	if (kicked) {
		vcpu->event_pending = true;
		run->exit_reason = KVM_EXIT_INTR;
		pm_vcpu_count_exit(vcpu, PM_STAT_EXITS_INTR);
		return -EINTR;
	}
	if (vcpu->finished && vcpu->fatal_event) {   /* report the fatal event again */
		run->exit_reason = KVM_EXIT_SYSTEM_EVENT;
		memset(&run->system_event, 0, sizeof(run->system_event));
		run->system_event.type = vcpu->fatal_event;
		run->system_event.ndata = 1;
		run->system_event.data[0] = vcpu->fatal_data;
		return 0;
	}
	if (vcpu->finished && vcpu->dead_exit)
		return vcpu_report_dead(vcpu);
	if (vcpu->finished) {           /* report the end again */
		run->exit_reason = PM_EXIT_UCALL;
		return 0;
	}
	if (vcpu->vm->model->vcpu_pre_run) {
		int r = vcpu->vm->model->vcpu_pre_run(vcpu);

		if (r)
			return r;
	}
	if (!vcpu->coro && pm_coro_create(&vcpu->coro, PM_CORO_DEFAULT_STACK,
					  x86 ? pm_x86_guest_main : pm_guest_main, vcpu))
		return -ENOMEM;
	/* The VMM may have written guest code since the last exit. */
	if (x86)
		pm_x86_flush(vcpu->x86, PM_X86_FLUSH_CODE);
	run->exit_reason = KVM_EXIT_UNKNOWN;
	vcpu->exit_ret = 0;
	pm_vcpu_enter_guest_mode(vcpu);
	alive = pm_coro_resume(vcpu->coro);
	pm_vcpu_exit_guest_mode(vcpu);
	if (!alive)
		vcpu->finished = true;
	return vcpu->exit_ret;
}

/* A trace shows KVM_RUN on the track of the thread that called it,
 * named after the vCPU it last ran. */
static void vcpu_trace_thread(struct pm_vcpu *vcpu)
{
	char name[32];

	snprintf(name, sizeof(name), "vCPU %u", vcpu->id);
	pm_trace_record_thread_name(name);
}

int pm_vcpu_run(struct pm_vcpu *vcpu)
{
	uint64_t t0 = pm_trace_begin();
	int r;

	if (t0)
		vcpu_trace_thread(vcpu);
	pthread_mutex_lock(&vcpu->run_lock);
	r = vcpu_run_locked(vcpu);
	pthread_mutex_unlock(&vcpu->run_lock);
	pm_trace_end(t0, PM_TRACE_RUN, "KVM_RUN", vcpu->id, vcpu->run->exit_reason, (uint64_t)(int64_t)r, 0);
	return r;
}

int pm_vcpu_set_guest(struct pm_vcpu *vcpu, const struct pm_guest_entry *e)
{
	int r = 0;

	if (!e->fn)
		return -EINVAL;
	pthread_mutex_lock(&vcpu->run_lock);
	if (vcpu->coro)
		r = -EBUSY;             /* the guest has started */
	else
		vcpu->entry = *e;
	pthread_mutex_unlock(&vcpu->run_lock);
	return r;
}

uint64_t pm_vcpu_get_ucall(struct pm_vcpu *vcpu, struct pm_ucall *uc)
{
	uint64_t cmd = PM_UCALL_NONE;

	pthread_mutex_lock(&vcpu->run_lock);
	if (vcpu->run->exit_reason == PM_EXIT_UCALL) {
		cmd = vcpu->ucall.cmd;
		if (uc)
			*uc = vcpu->ucall;
	}
	pthread_mutex_unlock(&vcpu->run_lock);
	return cmd;
}

/* ---- KVM_PRE_FAULT_MEMORY ---- */

/* Maps the page at range->gpa; returns the bytes covered or -errno. */
static int64_t pre_fault_one(struct pm_vcpu *vcpu, const struct kvm_pre_fault_memory *range)
{
	struct pm_vm *vm = vcpu->vm;
	struct pm_fault f = pm_fault_init(range->gpa >> PM_PAGE_SHIFT, PM_ACCESS_READ);
	uint64_t span, end;

	f.kind_from_attr = true;
	switch (pm_mmu_fault(vm, &f)) {
	case PM_FAULT_MMIO:
		return -ENOENT;
	case PM_FAULT_EXIT:
	case PM_FAULT_ERROR:
		return -f.err;
	case PM_FAULT_RETRY:
		return 0;               /* no progress: the caller checks for a signal */
	case PM_FAULT_MAPPED:
		break;
	default:
		PM_BUG_ON(1);
	}
	span = pm_s2_level_pages(f.level) << PM_PAGE_SHIFT;
	end = PM_ALIGN_DOWN(range->gpa, span) + span;
	return (int64_t)PM_MIN(end - range->gpa, range->size);
}

int pm_vcpu_pre_fault(struct pm_vcpu *vcpu, struct kvm_pre_fault_memory *range)
{
	uint64_t start = range->gpa;
	int64_t r = 0;

	if (range->flags)
		return -EINVAL;
	if (!PM_ALIGNED(range->gpa, PM_PAGE_SIZE) || !PM_ALIGNED(range->size, PM_PAGE_SIZE) ||
	    range->gpa + range->size <= range->gpa)
		return -EINVAL;
	pthread_mutex_lock(&vcpu->run_lock);
	while (range->size) {
		if (pm_vcpu_signal_pending()) {
			r = -EINTR;
			break;
		}
		r = pre_fault_one(vcpu, range);
		if (r < 0)
			break;
		range->gpa += (uint64_t)r;
		range->size -= (uint64_t)r;
	}
	pthread_mutex_unlock(&vcpu->run_lock);
	return range->gpa != start ? 0 : (int)r;
}

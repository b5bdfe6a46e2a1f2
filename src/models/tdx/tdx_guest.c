/* SPDX-License-Identifier: MIT */
/*
 * The TD guest's side (privmem/guest.h): TDG.MEM.PAGE.ACCEPT, MapGPA, and
 * the check that a private access does not touch a pending page. Runs on
 * the vCPU's coroutine, in guest mode.
 */
#include <sched.h>
#include <privmem/guest.h>
#include <privmem/kvm.h>
#include "models/tdx/tdx.h"
#include "vcpu/vcpu.h"

#define MAP_GPA_MAX_LEN (2ULL << 20)

/* A stall the hardware turns into an EPT violation: out of guest mode for
 * a moment (shootdowns go on), then back. */
static void guest_stall(struct pm_vcpu *v)
{
	pm_vcpu_exit_guest_mode(v);
	sched_yield();
	pm_vcpu_enter_guest_mode(v);
}

int tdx_guest_access(struct pm_vcpu *vcpu, uint64_t gpa, gfn_t gfn, pm_pfn_t pfn, uint32_t *event)
{
	struct tdx_vm *t = to_tdx(vcpu->vm);
	pm_pfn_t spfn = PM_PFN_INVALID;

	switch (tdx_module_guest_lookup(tdx_td(t), gfn << PM_PAGE_SHIFT, &spfn)) {
	case TDX_GPA_MAPPED:
		/* The mirror and the S-EPT must agree on the page. */
		PM_BUG_ON(spfn != pfn);
		return PM_GUEST_ACCESS_OK;
	case TDX_GPA_PENDING:
		atomic_fetch_add_explicit(&t->fatal_events, 1, memory_order_relaxed);
		*event = KVM_SYSTEM_EVENT_TDX_FATAL;
		return PM_GUEST_ACCESS_FATAL;
	case TDX_GPA_NONE:
	default:
		/* Blocked or not added yet: the mirror is ahead of the S-EPT
		 * for a moment (a zap or a fault in flight). */
		guest_stall(vcpu);
		return PM_GUEST_ACCESS_RETRY;
	}
}

/* ---- the TDCALLs, behind model->guest_call ---- */

static uint64_t shared_bit(struct pm_vcpu *v)
{
	return 1ULL << atomic_load(&to_tdx(v->vm)->shared_bit);
}

/* TDG.MEM.PAGE.ACCEPT. A page not mapped is the EPT violation: KVM maps it
 * (AUG) at most at the level being accepted, and the guest retries. The
 * limit travels in the fault (pm_vcpu_guest_page), so it holds whichever
 * thread runs the vCPU after an exit the fault takes. */
static uint64_t tdx_accept(struct pm_vcpu *v, uint64_t gpa, int level)
{
	struct tdx_td *td = tdx_td(to_tdx(v->vm));
	uint64_t err;

	if (gpa & shared_bit(v))
		return PM_TDX_OPERAND_INVALID;
	for (;;) {
		/* A zap retrying after OPERAND_BUSY keeps vCPUs out. */
		if (atomic_load(&to_tdx(v->vm)->no_vcpu_enter)) {
			guest_stall(v);
			continue;
		}
		err = tdg_mem_page_accept(td, gpa, level);
		if (err == TDX_OPERAND_BUSY) {
			guest_stall(v);
			/* Blocked for good (a leaked page; the VM is bugged):
			 * the EPT violation goes to KVM, which stops the vCPU,
			 * where a removal in flight would have finished. */
			if (!pm_vm_is_bugged(v->vm))
				continue;
		} else if (err != TDX_NOT_MAPPED) {
			return err;
		}
		/* The module checked the level: 4K, 2M or 1G. */
		if (!pm_vcpu_guest_page(v, gpa, true, level))
			return PM_TDX_OPERAND_INVALID;   /* not memory */
	}
}

static bool map_gpa_range_ok(struct pm_vcpu *v, uint64_t gpa, uint64_t size)
{
	uint64_t shared = shared_bit(v);
	uint64_t limit = shared << 1;    /* the TD's guest physical address width */

	return PM_ALIGNED(gpa, PM_PAGE_SIZE) && PM_ALIGNED(size, PM_PAGE_SIZE) &&
	       gpa + size > gpa && gpa + size <= limit &&
	       !(gpa & shared) == !((gpa + size - 1) & shared);
}

/* TDG.VP.VMCALL<MapGPA>. */
static uint64_t tdx_map_gpa(struct pm_vcpu *v, uint64_t gpa, uint64_t size, uint64_t *next)
{
	uint64_t shared = shared_bit(v);
	uint64_t attrs = (gpa & shared) ? KVM_MAP_GPA_RANGE_DECRYPTED : KVM_MAP_GPA_RANGE_ENCRYPTED;

	*next = gpa;
	if (!map_gpa_range_ok(v, gpa, size))
		return PM_TDVMCALL_INVALID_OPERAND;
	pm_vcpu_guest_take_event(v);
	for (uint64_t off = 0; off < size; off += MAP_GPA_MAX_LEN) {
		uint64_t n = PM_MIN(size - off, MAP_GPA_MAX_LEN);

		*next = gpa + off;
		/* A kick after a chunk: stop, the guest retries from here. */
		if (off && pm_vcpu_guest_take_event(v))
			return PM_TDVMCALL_RETRY;
		if (pm_vcpu_map_gpa_range_exit(v, (gpa + off) & ~shared, n >> PM_PAGE_SHIFT, attrs))
			return PM_TDVMCALL_INVALID_OPERAND;
	}
	*next = gpa + size;
	return PM_TDVMCALL_SUCCESS;
}

long tdx_guest_call(struct pm_vcpu *v, uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2)
{
	switch (nr) {
	case PM_TDX_CALL_VP_INFO:
		return (long)shared_bit(v);
	case PM_TDX_CALL_ACCEPT:
		return (long)tdx_accept(v, a0, (int)a1);
	case PM_TDX_CALL_MAP_GPA:
		return (long)tdx_map_gpa(v, a0, a1, (uint64_t *)(uintptr_t)a2);
	default:
		return -KVM_ENOSYS;
	}
}

/* ---- the guest API (privmem/guest.h): calls through the model ---- */

/* A TDCALL on a VM that is not a TD ends the guest, as the instruction
 * would fault (#UD) outside a TD. */
static long tdcall(struct pm_guest *g, const char *what, uint64_t nr, uint64_t a0, uint64_t a1,
		   uint64_t a2)
{
	long r = pm_guest_model_call(g, nr, a0, a1, a2);

	if (r == -KVM_ENOSYS)
		pm_guest_abort(g, __FILE__, __LINE__, what);
	return r;
}

uint64_t pm_guest_tdx_shared_bit(struct pm_guest *g)
{
	return (uint64_t)tdcall(g, "pm_guest_tdx_shared_bit: not a TDX VM", PM_TDX_CALL_VP_INFO,
				0, 0, 0);
}

uint64_t pm_guest_tdx_accept(struct pm_guest *g, uint64_t gpa, int level)
{
	return (uint64_t)tdcall(g, "pm_guest_tdx_accept: not a TDX VM", PM_TDX_CALL_ACCEPT, gpa,
				(uint64_t)level, 0);
}

static bool accepted(uint64_t err)
{
	return err == PM_TDX_SUCCESS || err == PM_TDX_PAGE_ALREADY_ACCEPTED;
}

uint64_t pm_guest_tdx_accept_range(struct pm_guest *g, uint64_t gpa, uint64_t size)
{
	const uint64_t huge = 2ULL << 20;
	uint64_t end = gpa + size, err;

	while (gpa < end) {
		if (PM_ALIGNED(gpa, huge) && end - gpa >= huge) {
			err = pm_guest_tdx_accept(g, gpa, PM_TDX_LEVEL_2M);
			if (accepted(err)) {
				gpa += huge;
				continue;
			}
			if (err != PM_TDX_PAGE_SIZE_MISMATCH)
				return err;
		}
		err = pm_guest_tdx_accept(g, gpa, PM_TDX_LEVEL_4K);
		if (!accepted(err))
			return err;
		gpa += PM_PAGE_SIZE;
	}
	return PM_TDX_SUCCESS;
}

uint64_t pm_guest_tdx_map_gpa(struct pm_guest *g, uint64_t gpa, uint64_t size, uint64_t *next)
{
	return (uint64_t)tdcall(g, "pm_guest_tdx_map_gpa: not a TDX VM", PM_TDX_CALL_MAP_GPA, gpa,
				size, (uint64_t)(uintptr_t)next);
}

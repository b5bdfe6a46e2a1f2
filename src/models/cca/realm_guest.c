/* SPDX-License-Identifier: MIT */
/*
 * A realm's guest side (KVM's and the RMM's parts), run on the vCPU in
 * guest context:
 *  - addresses: the top IPA bit set is unprotected (shared), clear is
 *    protected (private), as TDX's shared bit;
 *  - a protected access whose RTT entry is not a valid RAM mapping is
 *    decided by the RMM before the host hears of it (guest_pre_fault) or
 *    after a fault mapped it (guest_access): RIPAS EMPTY is a synchronous
 *    external abort taken by the realm (a C guest has no vector: it ends
 *    with PM_UCALL_ABORT), DESTROYED means the realm cannot go on
 *    (KVM_EXIT_SYSTEM_EVENT, KVM_SYSTEM_EVENT_CRASH); RAM not yet assigned
 *    is the host's stage-2 fault (the page is mapped on first use);
 *  - RSI_IPA_STATE_SET: the RMM records the request in the REC, the REC
 *    exits with RMI_EXIT_RIPAS_CHANGE, KVM asks the VMM with the same
 *    KVM_HC_MAP_GPA_RANGE exit every model uses and, if the VMM converted
 *    the range, commits it with RTT_SET_RIPAS (creating or unfolding RTTs
 *    where an entry covers more than the range: split on partial
 *    conversion) before the realm runs again.
 */
#include <privmem/guest.h>
#include "models/cca/realm.h"
#include "vcpu/vcpu.h"

void realm_gpa_decode(struct pm_vm *vm, uint64_t gpa, gfn_t *gfn, bool *private_access)
{
	uint64_t top = atomic_load_explicit(&to_realm(vm)->top_bit, memory_order_relaxed);

	*private_access = !(gpa & top);
	*gfn = (gpa & ~top) >> PM_PAGE_SHIFT;
}

_Noreturn static void realm_sea(struct pm_vcpu *v, uint64_t gpa)
{
	char what[96];

	realm_count(to_realm(v->vm), REALM_STAT_SEA, 1);
	snprintf(what, sizeof(what), "synchronous external abort at IPA %#llx (RIPAS EMPTY)",
		 (unsigned long long)gpa);
	pm_guest_abort((struct pm_guest *)v, __FILE__, __LINE__, what);
}

/* What the RMM makes of a protected access: OK, RETRY (the host's fault:
 * not assigned yet, or changed meanwhile), or it ends the guest. */
static int realm_decide(struct pm_vcpu *v, uint64_t gpa, gfn_t gfn, pm_pfn_t pfn, uint32_t *event)
{
	struct realm_vm *r = to_realm(v->vm);
	enum hipas h;
	enum ripas rp;
	pm_pfn_t mapped;

	rmm_realm_translate(realm_rd(r), gfn << PM_PAGE_SHIFT, &h, &rp, &mapped);
	if (rp == RIPAS_EMPTY)
		realm_sea(v, gpa);
	if (rp == RIPAS_DESTROYED) {
		realm_count(r, REALM_STAT_DESTROYED_ACCESS, 1);
		*event = KVM_SYSTEM_EVENT_CRASH;
		return PM_GUEST_ACCESS_FATAL;
	}
	return h == HIPAS_ASSIGNED && (pfn == PM_PFN_INVALID || mapped == pfn) ? PM_GUEST_ACCESS_OK
									      : PM_GUEST_ACCESS_RETRY;
}

void realm_guest_pre_fault(struct pm_vcpu *v, uint64_t gpa, gfn_t gfn)
{
	uint32_t event = 0;

	if (realm_decide(v, gpa, gfn, PM_PFN_INVALID, &event) == PM_GUEST_ACCESS_FATAL)
		pm_vcpu_guest_fatal(v, event, gpa);
}

int realm_guest_access(struct pm_vcpu *v, uint64_t gpa, gfn_t gfn, pm_pfn_t pfn, uint32_t *event)
{
	return realm_decide(v, gpa, gfn, pfn, event);
}

/* ---- RSI_IPA_STATE_SET ---- */

/* KVM's answer to RMI_EXIT_RIPAS_CHANGE once the VMM agreed: RTT_SET_RIPAS
 * until the request is done or stops; returns where it stopped. */
static uint64_t commit_ripas(struct realm_vm *r, uint64_t rec, uint64_t base, uint64_t top)
{
	uint64_t addr = base;

	while (addr < top) {
		uint64_t out, res = rmi_rtt_set_ripas(realm_rd(r), rec, addr, top, &out);

		if (res == RMI_SUCCESS) {
			if (out == addr)
				break;             /* a DESTROYED entry the realm keeps */
			realm_count(r, REALM_STAT_RIPAS_PAGES, (out - addr) >> PM_PAGE_SHIFT);
			addr = out;
			continue;
		}
		if (rmi_status(res) != RMI_ERROR_RTT || rmi_index(res) >= RTT_PAGE_LEVEL ||
		    realm_ensure_rtt(r, addr, (int)rmi_index(res) + 1))
			break;
	}
	return addr;
}

static uint64_t rsi_ipa_state_set(struct pm_vcpu *v, struct pm_realm_ipa_state *req)
{
	struct realm_vm *r = to_realm(v->vm);
	uint64_t rec = r->rec[v->idx], res;
	long ret;

	res = rmm_rsi_ipa_state_set(rec, req->base, req->top, (enum ripas)req->ripas, req->flags);
	if (res)
		return res;
	/* REC exit: RMI_EXIT_RIPAS_CHANGE; KVM asks the VMM. */
	realm_count(r, REALM_STAT_RIPAS_EXITS, 1);
	ret = pm_vcpu_map_gpa_range_exit(v, req->base, (req->top - req->base) >> PM_PAGE_SHIFT,
					 (req->ripas == RIPAS_RAM ? KVM_MAP_GPA_RANGE_ENCRYPTED
								  : KVM_MAP_GPA_RANGE_DECRYPTED) |
					 KVM_MAP_GPA_RANGE_PAGE_SZ_4K);
	if (ret) {
		realm_count(r, REALM_STAT_RIPAS_REJECTED, 1);
		req->new_base = req->base;
		req->response = RSI_REJECT;
		return RSI_SUCCESS;
	}
	/* The REC enters again: KVM commits first, outside guest mode (the
	 * RMM's TLB invalidation waits for vCPUs in it). */
	pm_vcpu_exit_guest_mode(v);
	req->new_base = commit_ripas(r, rec, req->base, req->top);
	pm_vcpu_enter_guest_mode(v);
	req->response = RSI_ACCEPT;
	return RSI_SUCCESS;
}

long realm_guest_call(struct pm_vcpu *v, uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2)
{
	struct realm_vm *r = to_realm(v->vm);
	enum hipas h;
	enum ripas rp;
	pm_pfn_t pfn;

	switch (nr) {
	case PM_CCA_CALL_REALM_CONFIG:
		return (long)atomic_load(&r->ipa_bits);
	case PM_CCA_CALL_IPA_STATE_SET:
		return (long)rsi_ipa_state_set(v, (struct pm_realm_ipa_state *)(uintptr_t)a0);
	case PM_CCA_CALL_IPA_STATE_GET:
		if (!PM_ALIGNED(a0, PM_PAGE_SIZE) || a0 >= atomic_load(&r->top_bit))
			return -(long)RSI_ERROR_INPUT;
		rmm_realm_translate(realm_rd(r), a0, &h, &rp, &pfn);
		return rp;
	default:
		return -KVM_ENOSYS;
	}
}

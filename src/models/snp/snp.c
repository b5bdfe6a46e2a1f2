/* SPDX-License-Identifier: MIT */
/*
 * KVM_X86_SNP_VM (4): SEV-SNP's KVM side, as upstream does it (svm/sev.c),
 * with the simulated RMP and PSP underneath (rmp.h, psp.h).
 *
 *  - Address kinds: the guest sets the C-bit (gpa bit 51) for private
 *    memory; a mismatch with the gfn's attribute is an implicit conversion
 *    request (KVM_EXIT_MEMORY_FAULT, PRIVATE as the access was).
 *  - guest_memfd page lifetime: prepare (the guest's first use of a page)
 *    makes it guest-owned with RMPUPDATE: one 2M entry when the page is 2M
 *    (or 1G: per 2M) and its whole region is unassigned, else 4K entries;
 *    invalidate (frames really freed, before any scrub or reuse) gives them
 *    back to the hypervisor, PSMASHing a 2M entry first when only part of it
 *    goes. No hook on attribute changes: that placement closes seed 002's
 *    race (a page can only be freed, and so scrubbed, after it was given
 *    back, whatever the attributes say meanwhile).
 *  - Stage-2: a private mapping is never larger than its RMP entry
 *    (private_max_level); a 4K PVALIDATE inside a 2M entry is the RMP
 *    size-mismatch fault: KVM PSMASHes and zaps the 2M range.
 *  - Guest side: PVALIDATE (pm_guest_snp_pvalidate) and the rule that an
 *    access to a private page the guest has not validated ends the guest
 *    (KVM_SYSTEM_EVENT_SEV_TERM); PSC through the GHCB and the MSR protocol
 *    (psc.c); launch (launch.c).
 */
#include <inttypes.h>
#include <privmem/guest.h>
#include "host/pool.h"
#include "models/snp/rmp.h"
#include "models/snp/snp.h"
#include "vcpu/vcpu.h"

/* ---- ASIDs ---- */

static pthread_mutex_t asid_lock = PTHREAD_MUTEX_INITIALIZER;
static bool asid_used[RMP_MAX_ASID + 1];   /* asid_lock; 0 is never handed out */

static int asid_alloc(unsigned int *asid)
{
	int r = -EBUSY;   /* upstream: no SNP ASID left */

	pthread_mutex_lock(&asid_lock);
	for (unsigned int a = 1; a <= RMP_MAX_ASID; a++) {
		if (!asid_used[a]) {
			asid_used[a] = true;
			*asid = a;
			r = 0;
			break;
		}
	}
	pthread_mutex_unlock(&asid_lock);
	return r;
}

static void asid_free(unsigned int asid)
{
	pthread_mutex_lock(&asid_lock);
	PM_BUG_ON(!asid_used[asid]);
	asid_used[asid] = false;
	pthread_mutex_unlock(&asid_lock);
}

/* ---- VM lifetime ---- */

static int snp_vm_init(struct pm_vm *vm)
{
	struct snp_vm *s = pm_zalloc(sizeof(*s));
	int r;

	if (!s)
		return -ENOMEM;
	r = rmp_get();
	if (r)
		goto err_free;
	r = asid_alloc(&s->asid);
	if (r)
		goto err_rmp;
	s->vm = vm;
	psp_guest_init(&s->fw, s->asid);
	pthread_mutex_init(&s->launch_lock, NULL);
	vm->model_data = s;
	return 0;

err_rmp:
	rmp_put();
err_free:
	free(s);
	return r;
}

static void snp_vm_destroy(struct pm_vm *vm)
{
	struct snp_vm *s = vm->model_data;

	snp_launch_teardown(s);
	pthread_mutex_destroy(&s->launch_lock);
	psp_guest_destroy(&s->fw);
	asid_free(s->asid);
	free(s);
	vm->model_data = NULL;
	rmp_put();
}

/* ---- guest_memfd hooks ---- */

/* A 4K page of a prepared range: assigned already (a launch page, or a
 * racing prepare of the same page made it) or made so now. */
static int prepare_4k(struct snp_vm *s, pm_pfn_t pfn, gfn_t gfn)
{
	struct rmp_state st = { .assigned = true, .gpa = gfn << PM_PAGE_SHIFT, .asid = s->asid };
	enum rmp_result r;

	for (;;) {
		uint64_t e = rmp_effective(pfn);

		if (rmp_is_assigned(e))
			return rmp_asid(e) == s->asid && rmp_gpa(e) == st.gpa ? 0 : -EIO;
		r = rmp_update(pfn, &st);
		if (r == RMP_OK) {
			snp_count(s, SNP_STAT_PREPARE_4K, 1);
			return 0;
		}
		if (r != RMP_FAIL_OVERLAP)      /* a racer's 2M entry: look again */
			return -EIO;
	}
}

/* A 2M block: one 2M entry if the whole region is unassigned. */
static int prepare_2m(struct snp_vm *s, pm_pfn_t pfn, gfn_t gfn)
{
	struct rmp_state st = {
		.assigned = true, .size_2m = true, .gpa = gfn << PM_PAGE_SHIFT, .asid = s->asid,
	};
	int r = 0;

	if (PM_ALIGNED(gfn, RMP_PAGES_2M) && rmp_region_unassigned(pfn) &&
	    rmp_update(pfn, &st) == RMP_OK) {
		snp_count(s, SNP_STAT_PREPARE_2M, 1);
		return 0;
	}
	for (uint64_t i = 0; i < RMP_PAGES_2M && !r; i++)
		r = prepare_4k(s, pfn + i, gfn + i);
	return r;
}

static int snp_gmem_prepare(struct pm_vm *vm, pm_pfn_t pfn, gfn_t gfn, unsigned int order)
{
	struct snp_vm *s = to_snp(vm);
	uint64_t n = 1ULL << order;
	int r = 0;

	if (order < PM_ORDER_2M)
		for (uint64_t i = 0; i < n && !r; i++)
			r = prepare_4k(s, pfn + i, gfn + i);
	else
		for (uint64_t i = 0; i < n && !r; i += RMP_PAGES_2M)
			r = prepare_2m(s, pfn + i, gfn + i);
	return r;
}

static atomic_uint_fast64_t invalidated_pages, smash_on_free;  /* all SNP VMs */

/* A 4K frame back to the hypervisor: a failure would leave a freed frame
 * assigned, which the host would then write: fatal, as on hardware. (No
 * 2M entry can appear over a frame being freed: prepare makes one only
 * over a whole unassigned region of one guest_memfd page.) */
static void make_shared_4k(pm_pfn_t pfn)
{
	struct rmp_state st = { 0 };
	uint64_t e = rmp_entry(pfn);
	enum rmp_result r;

	if ((rmp_is_immutable(e) || rmp_is_vmsa(e)) && psp_page_reclaim(pfn) != PSP_SUCCESS)
		pm_fatal("snp: SNP_PAGE_RECLAIM of frame %#" PRIx64 " failed", pfn);
	r = rmp_update(pfn, &st);
	if (r != RMP_OK)
		pm_fatal("snp: RMPUPDATE to shared of frame %#" PRIx64 " failed (%d)", pfn, r);
	atomic_fetch_add_explicit(&invalidated_pages, 1, memory_order_relaxed);
}

/* A whole 2M entry back in one RMPUPDATE; false if it is no longer a 2M
 * entry (a vCPU's 4K PVALIDATE smashed it meanwhile): go on at 4K. */
static bool make_shared_2m(pm_pfn_t region)
{
	struct rmp_state st = { .size_2m = true };

	if (rmp_update(region, &st) != RMP_OK)
		return false;
	atomic_fetch_add_explicit(&invalidated_pages, RMP_PAGES_2M, memory_order_relaxed);
	return true;
}

static void snp_gmem_invalidate(pm_pfn_t start, pm_pfn_t end)
{
	for (pm_pfn_t p = start; p < end;) {
		pm_pfn_t region = PM_ALIGN_DOWN(p, RMP_PAGES_2M);
		uint64_t head = rmp_entry(region);

		if (rmp_is_assigned(head) && rmp_is_2m(head)) {
			if (region >= start && region + RMP_PAGES_2M <= end && make_shared_2m(region)) {
				p = region + RMP_PAGES_2M;
				continue;
			}
			/* Only part of the 2M entry goes: split it first (or a
			 * racing PSMASH did). */
			if (rmp_psmash(region) == RMP_OK)
				atomic_fetch_add_explicit(&smash_on_free, 1, memory_order_relaxed);
		}
		if (rmp_is_assigned(rmp_entry(p)))
			make_shared_4k(p);
		p++;
	}
}

static int snp_private_max_level(struct pm_vm *vm, pm_pfn_t pfn, gfn_t gfn)
{
	uint64_t head = rmp_entry(PM_ALIGN_DOWN(pfn, RMP_PAGES_2M));

	return rmp_is_assigned(head) && rmp_is_2m(head) ? 1 : 0;
}

/* ---- the guest side ---- */

static void snp_gpa_decode(struct pm_vm *vm, uint64_t gpa, gfn_t *gfn, bool *private_access)
{
	*private_access = gpa & PM_SNP_C_BIT;
	*gfn = (gpa & ~PM_SNP_C_BIT) >> PM_PAGE_SHIFT;
}

static int snp_guest_access(struct pm_vcpu *v, uint64_t gpa, gfn_t gfn, pm_pfn_t pfn, uint32_t *event)
{
	struct snp_vm *s = to_snp(v->vm);

	if (rmp_guest_may_access(pfn, s->asid, gfn << PM_PAGE_SHIFT))
		return PM_GUEST_ACCESS_OK;
	snp_count(s, SNP_STAT_UNVALIDATED_ACCESS, 1);
	*event = KVM_SYSTEM_EVENT_SEV_TERM;
	return PM_GUEST_ACCESS_FATAL;
}

/* The RMP size-mismatch #NPF: PSMASH the 2M entry and zap the 2M range's
 * private mappings, so the page refaults at 4K. Outside guest mode, as KVM
 * handles an #NPF (the zap's shootdown waits for vCPUs in guest mode). */
static void smash_on_fault(struct pm_vcpu *v, pm_pfn_t pfn, gfn_t gfn)
{
	struct snp_vm *s = to_snp(v->vm);
	gfn_t base = PM_ALIGN_DOWN(gfn, RMP_PAGES_2M);
	pm_pfn_t region = PM_ALIGN_DOWN(pfn, RMP_PAGES_2M);
	struct pm_inval_ticket t;
	uint64_t head;

	pm_vcpu_exit_guest_mode(v);
	pm_inval_begin(v->vm, base, base + RMP_PAGES_2M, PM_INVAL_PRIVATE, PM_INVAL_CAUSE_ATTR, &t);
	/* The frame came from a translation that a punch may have made stale
	 * since: smash only this guest's 2M entry of this range. */
	head = rmp_entry(region);
	if (rmp_is_assigned(head) && rmp_is_2m(head) && rmp_asid(head) == s->asid &&
	    rmp_gpa(head) == base << PM_PAGE_SHIFT && rmp_psmash(region) == RMP_OK)
		snp_count(s, SNP_STAT_SMASH_ON_FAULT, 1);
	pm_inval_end(v->vm, &t);
	pm_vcpu_enter_guest_mode(v);
}

/* The instruction on the page gpa translates to, handling the #NPFs. */
static enum pvalidate_result pvalidate_page(struct pm_vcpu *v, uint64_t gpa, bool size_2m, bool validate)
{
	struct snp_vm *s = to_snp(v->vm);
	enum pvalidate_result r;

	if (!(gpa & PM_SNP_C_BIT) || (size_2m && !PM_ALIGNED(gpa, RMP_PAGES_2M << PM_PAGE_SHIFT)))
		return PVALIDATE_FAIL_INPUT;
	for (int tries = 0;; tries++) {
		uint8_t *hva = pm_vcpu_guest_page(v, gpa & ~(PM_PAGE_SIZE - 1), false, PM_FAULT_MAX_LEVEL);
		gfn_t gfn = (gpa & ~PM_SNP_C_BIT) >> PM_PAGE_SHIFT;
		pm_pfn_t pfn;

		if (!hva)
			return PVALIDATE_FAIL_INPUT;        /* not memory */
		pfn = pm_hva_to_pfn(hva);
		r = rmp_pvalidate(pfn, s->asid, gfn << PM_PAGE_SHIFT, size_2m, validate);
		if (r == RMP_FAULT_SIZE) {
			smash_on_fault(v, pfn, gfn);
			continue;
		}
		/* The page changed under the translation (freed and refaulted):
		 * translate again; a page that stays foreign is the guest's end. */
		if (r == RMP_FAULT_OWNER && tries < 8)
			continue;
		if (r == RMP_FAULT_OWNER)
			pm_vcpu_guest_fatal(v, KVM_SYSTEM_EVENT_SEV_TERM, gpa);
		return r;
	}
}

static long snp_pvalidate(struct pm_vcpu *v, uint64_t gpa, uint64_t size_2m, uint64_t validate)
{
	struct snp_vm *s = to_snp(v->vm);
	enum pvalidate_result r = pvalidate_page(v, gpa, size_2m, validate);

	if (r == PVALIDATE_OK) {
		snp_count(s, SNP_STAT_PVALIDATE, 1);
		/* The TLB caches the RMP check: drop what this vCPU holds. */
		if (size_2m)
			pm_vcpu_tlb_flush(v);
		else
			pm_vcpu_tlb_forget(v, gpa);
	} else {
		snp_count(s, SNP_STAT_PVALIDATE_FAILED, 1);
	}
	return r;
}

static long guest_pvalidate(struct pm_vcpu *v, uint64_t a0, uint64_t a1, uint64_t a2)
{
	return snp_pvalidate(v, a0, a1, a2);
}

static long guest_psc(struct pm_vcpu *v, uint64_t a0, uint64_t a1, uint64_t a2)
{
	return snp_psc_request(v, a0);
}

static long guest_psc_msr(struct pm_vcpu *v, uint64_t a0, uint64_t a1, uint64_t a2)
{
	return snp_psc_msr(v, a0, a1);
}

typedef long (*snp_call_fn)(struct pm_vcpu *v, uint64_t a0, uint64_t a1, uint64_t a2);
static const snp_call_fn snp_calls[] = {
	[PM_SNP_CALL_PVALIDATE] = guest_pvalidate,
	[PM_SNP_CALL_PSC] = guest_psc,
	[PM_SNP_CALL_PSC_MSR] = guest_psc_msr,
};
_Static_assert(PM_ARRAY_SIZE(snp_calls) == PM_SNP_NR_CALLS, "every SNP guest call has a handler");

static long snp_guest_call(struct pm_vcpu *v, uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2)
{
	if (nr >= PM_ARRAY_SIZE(snp_calls) || !snp_calls[nr])
		return -KVM_ENOSYS;
	return snp_calls[nr](v, a0, a1, a2);
}

/* ---- statistics ---- */

static const char *const snp_stat_names[] = {
	[SNP_STAT_PREPARE_2M] = "prepare_2m_entries",
	[SNP_STAT_PREPARE_4K] = "prepare_4k_entries",
	[SNP_STAT_SMASH_ON_FAULT] = "psmash_on_fault",
	[SNP_STAT_PSC_REQUESTS] = "psc_requests",
	[SNP_STAT_PSC_ENTRIES] = "psc_entries",
	[SNP_STAT_PSC_EXITS] = "psc_exits",
	[SNP_STAT_PSC_PAGES] = "psc_pages",
	[SNP_STAT_PSC_ERRORS] = "psc_errors",
	[SNP_STAT_PSC_MSR] = "psc_msr",
	[SNP_STAT_PVALIDATE] = "pvalidate",
	[SNP_STAT_PVALIDATE_FAILED] = "pvalidate_failed",
	[SNP_STAT_UNVALIDATED_ACCESS] = "unvalidated_access",
	[SNP_STAT_LAUNCH_PAGES] = "launch_pages",
};
_Static_assert(PM_ARRAY_SIZE(snp_stat_names) == SNP_NR_STATS, "every SNP statistic has a name");

static int snp_get_stats(struct pm_vm *vm, struct pm_model_stats *st)
{
	struct snp_vm *s = to_snp(vm);
	struct rmp_stats r;

	for (int i = 0; i < SNP_NR_STATS; i++)
		pm_model_stats_put(st, snp_stat_names[i], atomic_load(&s->stats[i]));
	/* Frees have no VM (upstream's hook neither): counted for all. */
	pm_model_stats_put(st, "invalidated_pages", atomic_load(&invalidated_pages));
	pm_model_stats_put(st, "psmash_on_free", atomic_load(&smash_on_free));
	rmp_get_stats(&r);
	pm_model_stats_put(st, "rmp_assigned_4k", r.assigned_4k);
	pm_model_stats_put(st, "rmp_assigned_2m", r.assigned_2m);
	pm_model_stats_put(st, "rmp_updates", r.rmpupdates);
	pm_model_stats_put(st, "rmp_update_failures", r.rmpupdate_fails);
	pm_model_stats_put(st, "rmp_psmash", r.psmash);
	pm_model_stats_put(st, "rmp_violations", r.violations);
	pm_model_stats_put(st, "rmp_host_reads_refused", r.reads_refused);
	pm_model_stats_put(st, "asid", s->asid);
	return 0;
}

const struct pm_model_ops pm_model_snp = {
	.name = "snp",
	.type = KVM_X86_SNP_VM,
	.private_mem = true,
	.readonly_mem = false,
	.gmem_init_shared = false,
	.convert_hides_private = true,
	.vm_init = snp_vm_init,
	.vm_destroy = snp_vm_destroy,
	.gmem_prepare = snp_gmem_prepare,
	.gmem_invalidate = snp_gmem_invalidate,
	.gpa_decode = snp_gpa_decode,
	.mem_enc_op = snp_mem_enc_op,
	.get_measurement = snp_get_measurement,
	.private_max_level = snp_private_max_level,
	.guest_access = snp_guest_access,
	.guest_call = snp_guest_call,
	.get_stats = snp_get_stats,
};

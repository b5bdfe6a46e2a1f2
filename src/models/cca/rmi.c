/* SPDX-License-Identifier: MIT */
/*
 * The RMM's realm, REC and DATA commands, RSI_IPA_STATE_SET, and the
 * hardware's reads of a realm (states, locks and order in rmm.h). Each
 * command: operand checks that need no lock, the external granules locked
 * in address order, the checks in the specification's order, the commit.
 */
#include <string.h>
#include "lib/trace.h"
#include "models/cca/rmm_internal.h"

uint64_t rd_lock(uint64_t addr)
{
	if (!granule_addr_ok(addr) || !granule_lock(granule_pfn(addr), GRANULE_RD))
		return RMI_ERROR_INPUT;
	return RMI_SUCCESS;
}

/* ---- REALM_CREATE / ACTIVATE / DESTROY ---- */

#define REALM_FLAGS_VALID   0x6ULL     /* SVE, PMU; LPA2 (bit 0) is not supported */
#define S2SZ_MIN            32
#define S2SZ_MAX            (PM_S2_GFN_BITS + PM_PAGE_SHIFT)

static bool realm_params_ok(const struct rmi_realm_params *p)
{
	return rim_hash_size(p->algorithm) && !(p->flags & ~REALM_FLAGS_VALID) &&
	       p->s2sz >= S2SZ_MIN && p->s2sz <= S2SZ_MAX && p->num_bps && p->num_wps &&
	       p->num_bps < 16 && p->num_wps < 16 && p->rtt_level_start == RTT_START_LEVEL &&
	       p->rtt_num_start == 1 && p->sve_vl < 16 && p->pmu_num_ctrs < 32;
}

static void realm_init_rim(struct rmm_rd *rd, const struct rmi_realm_params *p)
{
	struct rim_realm_params m = {
		.flags = p->flags, .s2sz = (uint32_t)p->s2sz, .sve_vl = (uint32_t)p->sve_vl,
		.num_bps = (uint32_t)p->num_bps, .num_wps = (uint32_t)p->num_wps,
		.pmu_num_ctrs = (uint32_t)p->pmu_num_ctrs, .algorithm = p->algorithm,
	};

	rim_realm_params(&m, rd->rim);
}

static uint64_t realm_create(uint64_t rd_addr, const struct rmi_realm_params *params, int version,
			     const struct rmm_tlbi *tlbi)
{
	struct rmi_realm_params p;
	pm_pfn_t rdp = granule_pfn(rd_addr), root;
	struct rmm_rd *rd;
	uint64_t r;

	if (!params || (version != RMM_RIM_V1 && version != RMM_RIM_V2))
		return RMI_ERROR_INPUT;
	memcpy(&p, params, sizeof(p));           /* the RMM reads the host's page once */
	if (!realm_params_ok(&p))
		return RMI_ERROR_INPUT;
	r = granule_lock_two(rd_addr, GRANULE_DELEGATED, p.rtt_base, GRANULE_DELEGATED);
	if (r)
		return r;
	root = granule_pfn(p.rtt_base);
	if (!rmm_vmid_claim(p.vmid)) {
		r = RMI_ERROR_INPUT;
		goto out;
	}
	granule_set_state(rdp, GRANULE_RD);
	granule_set_state(root, GRANULE_RTT);
	rd = rd_of(rdp);
	rd->state = REALM_NEW;
	rd->algo = p.algorithm;
	rd->s2sz = (uint32_t)p.s2sz;
	rd->rim_version = version;
	rd->vmid = p.vmid;
	rd->rtt.root = root;
	atomic_init(&rd->rtt.tables, 1);
	if (tlbi)
		rd->tlbi = *tlbi;
	realm_init_rim(rd, &p);
	rmm_count_rim();
out:
	granule_unlock(root);
	granule_unlock(rdp);
	return r;
}

uint64_t rmi_realm_create(uint64_t rd, const struct rmi_realm_params *params, int rim_version,
			  const struct rmm_tlbi *tlbi)
{
	uint64_t t0 = pm_trace_begin(), r = realm_create(rd, params, rim_version, tlbi);

	rmm_done(RMI_CMD_REALM_CREATE, t0, rd, 0, -1, r);
	return r;
}

static uint64_t realm_activate(uint64_t rd_addr)
{
	uint64_t r = rd_lock(rd_addr);
	struct rmm_rd *rd;

	if (r)
		return r;
	rd = rd_of(granule_pfn(rd_addr));
	if (rd->state != REALM_NEW)
		r = RMI_ERROR_REALM;
	else
		rd->state = REALM_ACTIVE;
	granule_unlock(granule_pfn(rd_addr));
	return r;
}

uint64_t rmi_realm_activate(uint64_t rd)
{
	uint64_t t0 = pm_trace_begin(), r = realm_activate(rd);

	rmm_done(RMI_CMD_REALM_ACTIVATE, t0, rd, 0, -1, r);
	return r;
}

static uint64_t realm_destroy(uint64_t rd_addr)
{
	pm_pfn_t rdp = granule_pfn(rd_addr), root;
	uint64_t r = rd_lock(rd_addr);
	struct rmm_rd *rd;

	if (r)
		return r;
	rd = rd_of(rdp);
	root = rd->rtt.root;
	PM_BUG_ON(!granule_lock(root, GRANULE_RTT));
	/* No REC left, and no live entry in the starting-level RTT. */
	if (granule_refcount_locked(rdp) || granule_refcount_locked(root)) {
		granule_unlock(root);
		granule_unlock(rdp);
		return RMI_ERROR_REALM;
	}
	rmm_vmid_release(rd->vmid);
	granule_zero(root);
	granule_set_state(root, GRANULE_DELEGATED);
	granule_unlock(root);
	granule_zero(rdp);
	granule_set_state(rdp, GRANULE_DELEGATED);
	granule_unlock(rdp);
	return RMI_SUCCESS;
}

uint64_t rmi_realm_destroy(uint64_t rd)
{
	uint64_t t0 = pm_trace_begin(), r = realm_destroy(rd);

	rmm_done(RMI_CMD_REALM_DESTROY, t0, rd, 0, -1, r);
	return r;
}

/* ---- REC_CREATE / DESTROY ---- */

static uint64_t rec_create(uint64_t rd_addr, uint64_t rec_addr, const struct rmi_rec_params *p)
{
	pm_pfn_t rdp = granule_pfn(rd_addr), recp = granule_pfn(rec_addr);
	struct rmm_rd *rd;
	struct rmm_rec *rec;
	uint64_t r;

	if (!p || p->flags & ~RMI_REC_FLAG_RUNNABLE)
		return RMI_ERROR_INPUT;
	r = granule_lock_two(rec_addr, GRANULE_DELEGATED, rd_addr, GRANULE_RD);
	if (r)
		return r;
	rd = rd_of(rdp);
	if (rd->state != REALM_NEW) {
		r = RMI_ERROR_REALM;
		goto out;
	}
	granule_set_state(recp, GRANULE_REC);
	rec = rec_of(recp);
	rec->rd = rdp;
	rec->runnable = p->flags & RMI_REC_FLAG_RUNNABLE;
	rec->mpidr = p->mpidr;
	granule_refcount_inc(rdp, 1);
	if (rec->runnable) {
		struct rim_rec_params m = { .flags = p->flags, .pc = p->pc };

		memcpy(m.gprs, p->gprs, sizeof(m.gprs));
		rim_extend_rec(rd->algo, rd->rim, &m);
		rmm_count_rim();
	}
out:
	granule_unlock(recp);
	granule_unlock(rdp);
	return r;
}

uint64_t rmi_rec_create(uint64_t rd, uint64_t rec, const struct rmi_rec_params *params)
{
	uint64_t t0 = pm_trace_begin(), r = rec_create(rd, rec, params);

	rmm_done(RMI_CMD_REC_CREATE, t0, rec, 0, -1, r);
	return r;
}

static uint64_t rec_destroy(uint64_t rec_addr)
{
	pm_pfn_t recp = granule_pfn(rec_addr), rdp;

	if (!granule_addr_ok(rec_addr) || !granule_lock(recp, GRANULE_REC))
		return RMI_ERROR_INPUT;
	rdp = rec_of(recp)->rd;
	/* The RD is internal here: after the REC, as TF-RMM takes it. */
	PM_BUG_ON(!granule_lock(rdp, GRANULE_RD));
	granule_refcount_inc(rdp, -1);
	granule_unlock(rdp);
	granule_zero(recp);
	granule_set_state(recp, GRANULE_DELEGATED);
	granule_unlock(recp);
	return RMI_SUCCESS;
}

uint64_t rmi_rec_destroy(uint64_t rec)
{
	uint64_t t0 = pm_trace_begin(), r = rec_destroy(rec);

	rmm_done(RMI_CMD_REC_DESTROY, t0, rec, 0, -1, r);
	return r;
}

/* ---- DATA_CREATE / CREATE_UNKNOWN / DESTROY ---- */

/* The level-3 entry for a new DATA granule at ipa: RMI_SUCCESS with its
 * table locked, or an error with none. */
static uint64_t data_walk(struct rmm_rd *rd, uint64_t ipa, bool measured, pm_pfn_t *table)
{
	uint64_t e;
	int reached;

	rtt_walk_lock(rd, ipa, RTT_PAGE_LEVEL, table, &reached);
	if (reached != RTT_PAGE_LEVEL) {
		granule_unlock(*table);
		return rmi_error(RMI_ERROR_RTT, reached);
	}
	e = atomic_load(rtt_entry(*table, RTT_PAGE_LEVEL, ipa));
	if (!s2tte_is_unassigned(e, RTT_PAGE_LEVEL) || (measured && s2tte_ripas(e) == RIPAS_DESTROYED)) {
		granule_unlock(*table);
		return rmi_error(RMI_ERROR_RTT, RTT_PAGE_LEVEL);
	}
	return RMI_SUCCESS;
}

static uint64_t data_create(uint64_t rd_addr, uint64_t data_addr, uint64_t ipa, const void *src,
			    uint64_t flags, bool unknown)
{
	pm_pfn_t rdp = granule_pfn(rd_addr), data = granule_pfn(data_addr), table;
	_Atomic uint64_t *p;
	struct rmm_rd *rd;
	uint64_t r, old, new;

	if (!unknown && ((flags != RMI_MEASURE_CONTENT && flags != RMI_NO_MEASURE_CONTENT) || !src))
		return RMI_ERROR_INPUT;
	r = granule_lock_two(data_addr, GRANULE_DELEGATED, rd_addr, GRANULE_RD);
	if (r)
		return r;
	rd = rd_of(rdp);
	if (!PM_ALIGNED(ipa, PM_PAGE_SIZE) || !rtt_ipa_ok(rd, ipa) || rtt_unprotected(rd, ipa)) {
		r = RMI_ERROR_INPUT;
		goto out;
	}
	if (!unknown && rd->state != REALM_NEW) {
		r = RMI_ERROR_REALM;
		goto out;
	}
	r = data_walk(rd, ipa, !unknown, &table);
	if (r)
		goto out;
	if (!unknown) {
		memcpy(granule_map(data), src, PM_PAGE_SIZE);
		rim_extend_data(rd->algo, rd->rim, ipa, flags, granule_map(data));
		rmm_count_rim();
	}
	granule_set_state(data, GRANULE_DATA);
	p = rtt_entry(table, RTT_PAGE_LEVEL, ipa);
	old = atomic_load(p);
	new = s2tte_protected(HIPAS_ASSIGNED, s2tte_ripas(old), data);
	atomic_store_explicit(p, new, memory_order_release);
	rtt_account(rd, ipa, RTT_PAGE_LEVEL, old, new, 1);
	granule_refcount_inc(table, 1);
	granule_unlock(table);
out:
	granule_unlock(data);
	granule_unlock(rdp);
	return r;
}

uint64_t rmi_data_create(uint64_t rd, uint64_t data, uint64_t ipa, const void *src, uint64_t flags)
{
	uint64_t t0 = pm_trace_begin(), r = data_create(rd, data, ipa, src, flags, false);

	rmm_done(RMI_CMD_DATA_CREATE, t0, data, ipa, 3, r);
	return r;
}

uint64_t rmi_data_create_unknown(uint64_t rd, uint64_t data, uint64_t ipa)
{
	uint64_t t0 = pm_trace_begin(), r = data_create(rd, data, ipa, NULL, 0, true);

	rmm_done(RMI_CMD_DATA_CREATE_UNKNOWN, t0, data, ipa, 3, r);
	return r;
}

static uint64_t data_destroy(uint64_t rd_addr, uint64_t ipa, uint64_t *out_data, uint64_t *out_top)
{
	pm_pfn_t rdp = granule_pfn(rd_addr), table, data;
	_Atomic uint64_t *p;
	struct rmm_rd *rd;
	uint64_t r = rd_lock(rd_addr), e;
	enum ripas ripas;
	int reached;

	if (r)
		return r;
	rd = rd_of(rdp);
	if (!PM_ALIGNED(ipa, PM_PAGE_SIZE) || !rtt_ipa_ok(rd, ipa) || rtt_unprotected(rd, ipa)) {
		r = RMI_ERROR_INPUT;
		goto out;
	}
	rtt_walk_lock(rd, ipa, RTT_PAGE_LEVEL, &table, &reached);
	p = rtt_entry(table, reached, ipa);
	e = atomic_load(p);
	if (reached != RTT_PAGE_LEVEL || !s2tte_is_assigned(e)) {
		/* The specification's `top`: where the next live entry may be,
		 * so the host skips a hole in one step. */
		*out_top = rtt_nonlive_top(table, reached, ipa);
		r = rmi_error(RMI_ERROR_RTT, reached);
		goto out_table;
	}
	data = s2tte_pfn(e);
	PM_BUG_ON(!granule_lock(data, GRANULE_DATA));   /* the chain's last link */
	/* v1.0: RAM the realm could still see becomes DESTROYED. */
	ripas = s2tte_ripas(e) == RIPAS_RAM ? RIPAS_DESTROYED : s2tte_ripas(e);
	atomic_store_explicit(p, s2tte_protected(HIPAS_UNASSIGNED, ripas, 0), memory_order_release);
	rtt_account(rd, ipa, RTT_PAGE_LEVEL, e, 0, 1);
	granule_refcount_inc(table, -1);
	if (e & PM_PTE_VALID)
		rtt_tlbi(rd);         /* no vCPU may write it once it is zeroed */
	granule_zero(data);
	granule_set_state(data, GRANULE_DELEGATED);
	granule_unlock(data);
	*out_data = granule_addr(data);
	*out_top = ipa + PM_PAGE_SIZE;
out_table:
	granule_unlock(table);
out:
	granule_unlock(rdp);
	return r;
}

uint64_t rmi_data_destroy(uint64_t rd, uint64_t ipa, uint64_t *out_data, uint64_t *out_top)
{
	uint64_t t0 = pm_trace_begin(), r = data_destroy(rd, ipa, out_data, out_top);

	rmm_done(RMI_CMD_DATA_DESTROY, t0, rd, ipa, 3, r);
	return r;
}

/* ---- RSI ---- */

uint64_t rmm_rsi_ipa_state_set(uint64_t rec_addr, uint64_t base, uint64_t top, enum ripas ripas,
			       uint64_t flags)
{
	pm_pfn_t recp = granule_pfn(rec_addr);
	struct rmm_rec *rec;
	struct rmm_rd *rd;
	uint64_t t0 = pm_trace_begin(), r = RSI_SUCCESS;

	PM_BUG_ON(!granule_addr_ok(rec_addr) || !granule_lock(recp, GRANULE_REC));
	rec = rec_of(recp);
	rd = rd_of(rec->rd);          /* s2sz is immutable: no RD lock */
	if (!PM_ALIGNED(base, PM_PAGE_SIZE) || !PM_ALIGNED(top, PM_PAGE_SIZE) || base >= top ||
	    !rtt_ipa_ok(rd, top - 1) || rtt_unprotected(rd, top - 1) ||
	    (ripas != RIPAS_EMPTY && ripas != RIPAS_RAM) ||
	    (flags != RSI_CHANGE_DESTROYED && flags != RSI_NO_CHANGE_DESTROYED)) {
		r = RSI_ERROR_INPUT;
	} else {
		rec->ripas_addr = base;
		rec->ripas_top = top;
		rec->ripas_value = ripas;
		rec->ripas_flags = flags;
	}
	granule_unlock(recp);
	pm_trace_end(t0, PM_TRACE_CCA, "RSI_IPA_STATE_SET", rec_addr, base, -1, r);
	return r;
}

void rmm_rec_ripas_progress(uint64_t rec_addr, uint64_t *addr, uint64_t *top)
{
	pm_pfn_t recp = granule_pfn(rec_addr);

	PM_BUG_ON(!granule_lock(recp, GRANULE_REC));
	*addr = rec_of(recp)->ripas_addr;
	*top = rec_of(recp)->ripas_top;
	granule_unlock(recp);
}

/* ---- the hardware's view ---- */

void rmm_realm_translate(uint64_t rd_addr, uint64_t ipa, enum hipas *hipas, enum ripas *ripas,
			 pm_pfn_t *pfn)
{
	struct rmm_rd *rd = rd_of(granule_pfn(rd_addr));
	uint64_t e;
	int level;

	pm_s2_get_leaf(&rd->rtt, ipa >> PM_PAGE_SHIFT, &e, &level);
	*hipas = s2tte_is_assigned(e) ? HIPAS_ASSIGNED : HIPAS_UNASSIGNED;
	*ripas = s2tte_ripas(e);
	*pfn = s2tte_is_assigned(e) ? s2tte_pfn(e) + ((ipa >> PM_PAGE_SHIFT) & (pm_s2_level_pages(level) - 1))
				    : PM_PFN_INVALID;
}

struct pm_s2 *rmm_realm_rtt(uint64_t rd_addr)
{
	return &rd_of(granule_pfn(rd_addr))->rtt;
}

void rmm_realm_rim(uint64_t rd_addr, uint8_t rim[RIM_MAX_SIZE], unsigned int *algo, int *state)
{
	pm_pfn_t rdp = granule_pfn(rd_addr);

	PM_BUG_ON(!granule_lock(rdp, GRANULE_RD));
	memcpy(rim, rd_of(rdp)->rim, RIM_MAX_SIZE);
	*algo = rd_of(rdp)->algo;
	*state = (int)rd_of(rdp)->state;
	granule_unlock(rdp);
}

/* SPDX-License-Identifier: MIT */
/*
 * The independent granule-state checker (cca_check.h). It knows the RTT
 * entry format from its documentation: pgtable.c's VALID / LEAF bits and
 * address, bit 56 HIPAS ASSIGNED; a table entry is VALID without LEAF
 * above level 3.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "host/pool.h"
#include "mmu/pgtable.h"
#include "models/cca/rmm.h"
#include "cca_check.h"

#define ASSIGNED_BIT (1ULL << 56)
#define UNKNOWN      0xff

struct walk {
	uint8_t *want;               /* expected state per frame, UNKNOWN if NS or DELEGATED */
	uint64_t nr;
	uint64_t unprot_gfn;         /* first gfn of the unprotected half */
	struct cca_check_result *res;
	uint64_t valid[3];           /* valid protected leaves by size, in this realm */
};

static bool expect(struct walk *w, pm_pfn_t pfn, enum granule_state st, const char *what)
{
	if (pfn >= w->nr) {
		snprintf(w->res->error, sizeof(w->res->error), "%s frame %#lx outside the pool", what,
			 (unsigned long)pfn);
		return false;
	}
	if (w->want[pfn] != UNKNOWN) {
		snprintf(w->res->error, sizeof(w->res->error), "frame %#lx is used twice (%s)",
			 (unsigned long)pfn, what);
		return false;
	}
	w->want[pfn] = (uint8_t)st;
	return true;
}

/* Live entries of the table at pgtable level `pm_level`. */
static unsigned int live_entries(pm_pfn_t table, int pm_level)
{
	const uint64_t *e = pm_pfn_to_hva(table);
	unsigned int n = 0;

	for (int i = 0; i < 512; i++) {
		bool is_table = pm_level > 0 && (e[i] & PM_PTE_VALID) && !(e[i] & PM_PTE_LEAF);

		n += is_table || (e[i] & ASSIGNED_BIT);
	}
	return n;
}

static bool check_table(struct walk *w, pm_pfn_t table, int pm_level)
{
	unsigned int live = live_entries(table, pm_level);

	if (!expect(w, table, GRANULE_RTT, "RTT"))
		return false;
	if (rmm_granule_refcount(table) != live) {
		snprintf(w->res->error, sizeof(w->res->error), "RTT %#lx: refcount %u, %u live entries",
			 (unsigned long)table, rmm_granule_refcount(table), live);
		return false;
	}
	return true;
}

static int visit(struct pm_walk_ctx *ctx)
{
	struct walk *w = ctx->arg;
	uint64_t e = ctx->old;

	if (ctx->visit == PM_WALK_TABLE_PRE) {
		if (!check_table(w, pm_pte_addr(e), ctx->level - 1))
			return -1;
		return 0;
	}
	/* A leaf: assigned protected entries map DATA granules. */
	if (!(e & ASSIGNED_BIT) || ctx->gfn >= w->unprot_gfn)
		return 0;
	if (e & PM_PTE_VALID)
		w->valid[ctx->level]++;
	for (uint64_t i = 0; i < pm_s2_level_pages(ctx->level); i++)
		if (!expect(w, pm_pte_addr(e) + i, GRANULE_DATA, "DATA"))
			return -1;
	return 0;
}

static bool walk_realm(struct walk *w, const struct cca_check_realm *r)
{
	struct pm_s2 *rtt = rmm_realm_rtt(r->rd);
	const struct pm_walker pw = { .visit = visit, .arg = w,
				      .flags = PM_WALK_LEAF | PM_WALK_TABLE_PRE };
	pm_pfn_t rd = r->rd >> PM_PAGE_SHIFT;

	w->unprot_gfn = 1ULL << (r->s2sz - 1 - PM_PAGE_SHIFT);
	if (!expect(w, rd, GRANULE_RD, "RD") || !check_table(w, rtt->root, PM_S2_ROOT_LEVEL))
		return false;
	if (rmm_granule_refcount(rd) != r->nr_recs) {
		snprintf(w->res->error, sizeof(w->res->error), "RD %#lx: refcount %u, %u RECs",
			 (unsigned long)rd, rmm_granule_refcount(rd), r->nr_recs);
		return false;
	}
	for (unsigned int i = 0; i < r->nr_recs; i++)
		if (!expect(w, r->recs[i] >> PM_PAGE_SHIFT, GRANULE_REC, "REC"))
			return false;
	memset(w->valid, 0, sizeof(w->valid));
	if (pm_s2_walk(rtt, 0, 1ULL << (r->s2sz - PM_PAGE_SHIFT), &pw))
		return false;
	for (int l = 0; l < 3; l++) {
		if (atomic_load(&rtt->leaves[l]) != w->valid[l]) {
			snprintf(w->res->error, sizeof(w->res->error),
				 "RTT of RD %#lx: %lu valid leaves of level %d counted, %lu found",
				 (unsigned long)rd, (unsigned long)atomic_load(&rtt->leaves[l]), l,
				 (unsigned long)w->valid[l]);
			return false;
		}
	}
	return true;
}

static bool all_zero(pm_pfn_t pfn)
{
	const uint64_t *p = pm_pfn_to_hva(pfn);

	for (size_t i = 0; i < PM_PAGE_SIZE / 8; i++)
		if (p[i])
			return false;
	return true;
}

static bool compare(struct walk *w)
{
	for (pm_pfn_t p = 0; p < w->nr; p++) {
		enum granule_state got = rmm_granule_state(p);

		if (w->want[p] == UNKNOWN && got == GRANULE_DELEGATED && !all_zero(p)) {
			snprintf(w->res->error, sizeof(w->res->error),
				 "DELEGATED granule %#lx is not zero", (unsigned long)p);
			return false;
		}
		if (w->want[p] == UNKNOWN ? (got != GRANULE_NS && got != GRANULE_DELEGATED)
					  : got != (enum granule_state)w->want[p]) {
			snprintf(w->res->error, sizeof(w->res->error),
				 "granule %#lx: state %d, the tables say %d", (unsigned long)p, got,
				 w->want[p] == UNKNOWN ? -1 : w->want[p]);
			return false;
		}
		w->res->rtt += got == GRANULE_RTT;
		w->res->data += got == GRANULE_DATA;
		w->res->delegated += got == GRANULE_DELEGATED;
		w->res->ns += got == GRANULE_NS;
	}
	return true;
}

bool cca_check(const struct cca_check_realm *realms, unsigned int nr, struct cca_check_result *res)
{
	struct walk w = { .nr = pm_pool_nr_frames(), .res = res };
	bool ok = true;

	memset(res, 0, sizeof(*res));
	w.want = malloc(w.nr);
	if (!w.want) {
		snprintf(res->error, sizeof(res->error), "out of memory");
		return false;
	}
	memset(w.want, UNKNOWN, w.nr);
	for (unsigned int i = 0; i < nr && ok; i++)
		ok = walk_realm(&w, &realms[i]);
	ok = ok && compare(&w);
	free(w.want);
	return ok;
}

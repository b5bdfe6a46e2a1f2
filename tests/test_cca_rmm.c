/* SPDX-License-Identifier: MIT */
/*
 * Tests of the simulated Arm CCA RMM (src/models/cca/rmm.h):
 *  - every RMI command's preconditions and result codes, row by row as a
 *    state table: each row names the command, its operands, the result the
 *    RMM specification gives, and the state a granule must be in after;
 *    after every row the independent checker (tests/lib/cca_check.c)
 *    recomputes every granule's state from the translation tables;
 *  - contents: DATA_CREATE copies, DATA_DESTROY and the *_DESTROYs zero,
 *    RIPAS after DATA_DESTROY (RAM -> DESTROYED), fold and unfold;
 *  - the RIM against known answers computed by scripts/cca_rim_kat.py
 *    (Python hashlib over descriptors laid out by hand), SHA-256 and
 *    SHA-512, the v1.0 and v2.0 rules;
 *  - the host access guard: a host access to a granule that is not NS is
 *    refused and counted;
 *  - random runs of commands on two realms, checked after each step.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "host/host_guard.h"
#include "host/pool.h"
#include "models/cca/rmm.h"
#include "lib/cca_check.h"
#include "lib/testutil.h"

#define NR_G 20
#define G(i) (0x8000000000000000ULL | (i))    /* operand: granule i's address */
#define GOFF(i, off) (G(i) | ((uint64_t)(off) << 16))  /* ... plus off bytes */
#define S2SZ 40
#define UNPROT (1ULL << (S2SZ - 1))

enum { RD, ROOT, REC0, REC1, L1, L2, L3, D0, D1, D2, SPARE, NSPAGE, RD2, ROOT2, L3B, D3, L2B, L3C };

struct world {
	pm_pfn_t g[NR_G];
	uint64_t recs[4];
	unsigned int nr_recs;
	bool realm;                 /* RD is a realm */
};

static uint64_t ga(const struct world *w, unsigned int i)
{
	return w->g[i] << PM_PAGE_SHIFT;
}

static uint64_t arg(const struct world *w, uint64_t a)
{
	return a & G(0) ? ga(w, (unsigned int)(a & 0xff)) + ((a >> 16) & 0xfff) : a;
}

static int setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));

	assert_int_equal(rmm_get(), 0);
	for (int i = 0; i < NR_G; i++)
		assert_int_equal(pm_pool_alloc(0, &w->g[i]), 0);
	*state = w;
	return 0;
}

static void check(const struct world *w)
{
	struct cca_check_realm r = { .rd = ga(w, RD), .s2sz = S2SZ, .recs = w->recs,
				     .nr_recs = w->nr_recs };
	struct cca_check_result res;

	if (!cca_check(&r, w->realm, &res))
		fail_msg("checker: %s", res.error);
}

/* ---- tearing a realm down, as KVM does ---- */

static void undelegate_if(pm_pfn_t pfn)
{
	if (rmm_granule_state(pfn) == GRANULE_DELEGATED)
		assert_int_equal(rmi_granule_undelegate(pfn << PM_PAGE_SHIFT), RMI_SUCCESS);
}

/* Destroys every table under [ipa, ipa + size) of `level`'s tables, bottom up. */
static void destroy_rtts(uint64_t rd, uint64_t ipa, uint64_t size, int level)
{
	for (uint64_t a = ipa; a < ipa + size; a += rtt_entry_size(level)) {
		struct rmi_rtt_entry e;
		uint64_t out_rtt, out_top, out_data;

		assert_int_equal(rmi_rtt_read_entry(rd, a, level, &e), RMI_SUCCESS);
		if (e.walk_level != level)
			continue;
		if (e.table) {
			destroy_rtts(rd, a, rtt_entry_size(level), level + 1);
			assert_int_equal(rmi_rtt_destroy(rd, a, level + 1, &out_rtt, &out_top), RMI_SUCCESS);
			assert_int_equal(rmi_granule_undelegate(out_rtt), RMI_SUCCESS);
		} else if (e.state == HIPAS_ASSIGNED && !(a & UNPROT)) {
			if (level < RTT_PAGE_LEVEL) {
				pm_pfn_t spare;

				assert_int_equal(pm_pool_alloc(0, &spare), 0);
				assert_int_equal(rmi_granule_delegate(spare << 12), RMI_SUCCESS);
				assert_int_equal(rmi_rtt_create(rd, spare << 12, a, level + 1), RMI_SUCCESS);
				destroy_rtts(rd, a, rtt_entry_size(level), level + 1);
				assert_int_equal(rmi_rtt_destroy(rd, a, level + 1, &out_rtt, &out_top),
						 RMI_SUCCESS);
				assert_int_equal(rmi_granule_undelegate(out_rtt), RMI_SUCCESS);
				pm_pool_free(spare, 0);
				continue;
			}
			assert_int_equal(rmi_data_destroy(rd, a, &out_data, &out_top), RMI_SUCCESS);
			assert_int_equal(rmi_granule_undelegate(out_data), RMI_SUCCESS);
		} else if (e.state == HIPAS_ASSIGNED) {
			assert_int_equal(rmi_rtt_unmap_unprotected(rd, a, level, &out_top), RMI_SUCCESS);
		}
	}
}

static void realm_teardown(uint64_t rd, const uint64_t *recs, unsigned int nr_recs)
{
	for (unsigned int i = 0; i < nr_recs; i++)
		assert_int_equal(rmi_rec_destroy(recs[i]), RMI_SUCCESS);
	destroy_rtts(rd, 0, 1ULL << S2SZ, RTT_START_LEVEL);
	assert_int_equal(rmi_realm_destroy(rd), RMI_SUCCESS);
}

static int teardown(void **state)
{
	struct world *w = *state;

	if (w->realm)
		realm_teardown(ga(w, RD), w->recs, w->nr_recs);
	for (int i = 0; i < NR_G; i++) {
		if (rmm_granule_state(w->g[i]) == GRANULE_RD)
			realm_teardown(ga(w, i), NULL, 0);
	}
	for (int i = 0; i < NR_G; i++) {
		undelegate_if(w->g[i]);
		assert_int_equal(rmm_granule_state(w->g[i]), GRANULE_NS);
		pm_pool_free(w->g[i], 0);
	}
	rmm_put();
	free(w);
	return 0;
}

/* ---- the state table ---- */

enum op {
	DELEGATE, UNDELEGATE, REALM_CREATE, ACTIVATE, REALM_DESTROY, REC_CREATE, REC_DESTROY,
	RTT_CREATE, RTT_DESTROY, RTT_FOLD, INIT_RIPAS, SET_RIPAS, RSI_SET, DATA_CREATE,
	DATA_UNKNOWN, DATA_DESTROY, MAP_UNPROT, UNMAP_UNPROT, READ_ENTRY,
};

/* REALM_CREATE's parameter variants (a[2]). */
enum { P_OK, P_ALGO, P_BPS0, P_S2SZ, P_LEVEL, P_VMID1 };

struct row {
	const char *what;
	enum op op;
	uint64_t a[4];
	uint64_t expect;
	int g;                       /* granule checked after (-1: none) */
	enum granule_state st;
};

static void realm_params(const struct world *w, struct rmi_realm_params *p, uint64_t root, int variant)
{
	memset(p, 0, sizeof(*p));
	p->s2sz = S2SZ;
	p->num_bps = 1;
	p->num_wps = 1;
	p->algorithm = RMI_HASH_SHA_256;
	p->vmid = 1;
	p->rtt_base = root;
	p->rtt_num_start = 1;
	switch (variant) {
	case P_ALGO: p->algorithm = 2; break;
	case P_BPS0: p->num_bps = 0; break;
	case P_S2SZ: p->s2sz = 52; break;
	case P_LEVEL: p->rtt_level_start = 1; break;
	default: break;
	}
}

static uint64_t page_pattern[512];

static uint64_t run(struct world *w, const struct row *r)
{
	uint64_t a0 = arg(w, r->a[0]), a1 = arg(w, r->a[1]), a2 = arg(w, r->a[2]), a3 = arg(w, r->a[3]);
	struct rmi_realm_params p;
	struct rmi_rec_params rp = { .flags = a2 };
	uint64_t o1, o2, res;

	switch (r->op) {
	case DELEGATE: return rmi_granule_delegate(a0);
	case UNDELEGATE: return rmi_granule_undelegate(a0);
	case REALM_CREATE:
		realm_params(w, &p, a1, (int)r->a[2]);
		res = rmi_realm_create(a0, &p, RMM_RIM_V1, NULL);
		if (!res && a0 == ga(w, RD))
			w->realm = true;
		return res;
	case ACTIVATE: return rmi_realm_activate(a0);
	case REALM_DESTROY:
		res = rmi_realm_destroy(a0);
		if (!res && a0 == ga(w, RD))
			w->realm = false;
		return res;
	case REC_CREATE:
		res = rmi_rec_create(a0, a1, &rp);
		if (!res)
			w->recs[w->nr_recs++] = a1;
		return res;
	case REC_DESTROY:
		res = rmi_rec_destroy(a0);
		if (!res)
			w->nr_recs--;        /* rows destroy the last REC made */
		return res;
	case RTT_CREATE: return rmi_rtt_create(a0, a1, a2, (int)a3);
	case RTT_DESTROY: return rmi_rtt_destroy(a0, a1, (int)a2, &o1, &o2);
	case RTT_FOLD: return rmi_rtt_fold(a0, a1, (int)a2, &o1);
	case INIT_RIPAS: return rmi_rtt_init_ripas(a0, a1, a2, &o1);
	case SET_RIPAS: return rmi_rtt_set_ripas(a0, a1, a2, a3, &o1);
	case RSI_SET: return rmm_rsi_ipa_state_set(a0, a1, a2, (enum ripas)(a3 & 0xff), a3 >> 8);
	case DATA_CREATE: return rmi_data_create(a0, a1, a2, page_pattern, a3);
	case DATA_UNKNOWN: return rmi_data_create_unknown(a0, a1, a2);
	case DATA_DESTROY: return rmi_data_destroy(a0, a1, &o1, &o2);
	case MAP_UNPROT: return rmi_rtt_map_unprotected(a0, a1, (int)a2, a3);
	case UNMAP_UNPROT: return rmi_rtt_unmap_unprotected(a0, a1, (int)a2, &o1);
	case READ_ENTRY: {
		struct rmi_rtt_entry e;

		return rmi_rtt_read_entry(a0, a1, (int)a2, &e);
	}
	}
	return ~0ULL;
}

#define RTT(l) (RMI_ERROR_RTT | ((uint64_t)(l) << 8))   /* the status, the level in bits 8-15 */
#define NONE -1, GRANULE_NS

static const struct row rows[] = {
	/* GRANULE_DELEGATE / UNDELEGATE */
	{ "delegate an NS granule", DELEGATE, { G(RD) }, RMI_SUCCESS, RD, GRANULE_DELEGATED },
	{ "delegate it again", DELEGATE, { G(RD) }, RMI_ERROR_INPUT, RD, GRANULE_DELEGATED },
	{ "delegate an unaligned address", DELEGATE, { GOFF(ROOT, 8) }, RMI_ERROR_INPUT, ROOT, GRANULE_NS },
	{ "delegate past the pool", DELEGATE, { 1ULL << 50 }, RMI_ERROR_INPUT, NONE },
	{ "undelegate an NS granule", UNDELEGATE, { G(ROOT) }, RMI_ERROR_INPUT, ROOT, GRANULE_NS },
	{ "undelegate a delegated one", UNDELEGATE, { G(RD) }, RMI_SUCCESS, RD, GRANULE_NS },
	{ "delegate RD", DELEGATE, { G(RD) }, RMI_SUCCESS, RD, GRANULE_DELEGATED },
	/* REALM_CREATE */
	{ "create with an NS starting RTT", REALM_CREATE, { G(RD), G(ROOT), P_OK }, RMI_ERROR_INPUT, RD, GRANULE_DELEGATED },
	{ "delegate ROOT", DELEGATE, { G(ROOT) }, RMI_SUCCESS, ROOT, GRANULE_DELEGATED },
	{ "create with an NS RD", REALM_CREATE, { G(RD2), G(ROOT), P_OK }, RMI_ERROR_INPUT, ROOT, GRANULE_DELEGATED },
	{ "create with the RTT as RD", REALM_CREATE, { G(ROOT), G(ROOT), P_OK }, RMI_ERROR_INPUT, ROOT, GRANULE_DELEGATED },
	{ "create with algorithm 2", REALM_CREATE, { G(RD), G(ROOT), P_ALGO }, RMI_ERROR_INPUT, RD, GRANULE_DELEGATED },
	{ "create with num_bps 0 (reserved)", REALM_CREATE, { G(RD), G(ROOT), P_BPS0 }, RMI_ERROR_INPUT, RD, GRANULE_DELEGATED },
	{ "create with s2sz 52", REALM_CREATE, { G(RD), G(ROOT), P_S2SZ }, RMI_ERROR_INPUT, RD, GRANULE_DELEGATED },
	{ "create starting at level 1", REALM_CREATE, { G(RD), G(ROOT), P_LEVEL }, RMI_ERROR_INPUT, RD, GRANULE_DELEGATED },
	{ "create", REALM_CREATE, { G(RD), G(ROOT), P_OK }, RMI_SUCCESS, RD, GRANULE_RD },
	{ "... the starting RTT is RTT", REALM_CREATE, { G(RD), G(ROOT), P_OK }, RMI_ERROR_INPUT, ROOT, GRANULE_RTT },
	{ "delegate RD2", DELEGATE, { G(RD2) }, RMI_SUCCESS, RD2, GRANULE_DELEGATED },
	{ "delegate ROOT2", DELEGATE, { G(ROOT2) }, RMI_SUCCESS, ROOT2, GRANULE_DELEGATED },
	{ "create a second realm with VMID 1 in use", REALM_CREATE, { G(RD2), G(ROOT2), P_VMID1 }, RMI_ERROR_INPUT, RD2, GRANULE_DELEGATED },
	{ "undelegate the RD", UNDELEGATE, { G(RD) }, RMI_ERROR_INPUT, RD, GRANULE_RD },
	/* RTT_CREATE */
	{ "delegate L1", DELEGATE, { G(L1) }, RMI_SUCCESS, L1, GRANULE_DELEGATED },
	{ "delegate L2", DELEGATE, { G(L2) }, RMI_SUCCESS, L2, GRANULE_DELEGATED },
	{ "delegate L3", DELEGATE, { G(L3) }, RMI_SUCCESS, L3, GRANULE_DELEGATED },
	{ "RTT at level 0", RTT_CREATE, { G(RD), G(L1), 0, 0 }, RMI_ERROR_INPUT, L1, GRANULE_DELEGATED },
	{ "RTT at an unaligned IPA", RTT_CREATE, { G(RD), G(L1), 0x1000, 1 }, RMI_ERROR_INPUT, L1, GRANULE_DELEGATED },
	{ "RTT past s2sz", RTT_CREATE, { G(RD), G(L1), 1ULL << S2SZ, 1 }, RMI_ERROR_INPUT, L1, GRANULE_DELEGATED },
	{ "RTT from an NS granule", RTT_CREATE, { G(RD), G(SPARE), 0, 1 }, RMI_ERROR_INPUT, SPARE, GRANULE_NS },
	{ "RTT with an RTT as the RD", RTT_CREATE, { G(ROOT), G(L1), 0, 1 }, RMI_ERROR_INPUT, L1, GRANULE_DELEGATED },
	{ "level 2 under no level 1", RTT_CREATE, { G(RD), G(L2), 0, 2 }, RTT(0), L2, GRANULE_DELEGATED },
	{ "level 1", RTT_CREATE, { G(RD), G(L1), 0, 1 }, RMI_SUCCESS, L1, GRANULE_RTT },
	{ "level 1 again", RTT_CREATE, { G(RD), G(L2), 0, 1 }, RTT(0), L2, GRANULE_DELEGATED },
	{ "level 3 under no level 2", RTT_CREATE, { G(RD), G(L3), 0, 3 }, RTT(1), L3, GRANULE_DELEGATED },
	{ "level 2", RTT_CREATE, { G(RD), G(L2), 0, 2 }, RMI_SUCCESS, L2, GRANULE_RTT },
	/* RTT_INIT_RIPAS (the realm is NEW) */
	{ "INIT_RIPAS unaligned", INIT_RIPAS, { G(RD), 0x10, 0x1000 }, RMI_ERROR_INPUT, NONE },
	{ "INIT_RIPAS empty", INIT_RIPAS, { G(RD), 0x1000, 0x1000 }, RMI_ERROR_INPUT, NONE },
	{ "INIT_RIPAS unprotected", INIT_RIPAS, { G(RD), UNPROT, UNPROT + 0x1000 }, RMI_ERROR_INPUT, NONE },
	{ "INIT_RIPAS 4K in a 2M entry", INIT_RIPAS, { G(RD), 0, 0x1000 }, RTT(2), NONE },
	{ "INIT_RIPAS where only the root is", INIT_RIPAS, { G(RD), 1ULL << 30, (1ULL << 30) + 0x1000 }, RTT(1), NONE },
	{ "level 3", RTT_CREATE, { G(RD), G(L3), 0, 3 }, RMI_SUCCESS, L3, GRANULE_RTT },
	{ "INIT_RIPAS 3 pages", INIT_RIPAS, { G(RD), 0, 0x3000 }, RMI_SUCCESS, NONE },
	/* DATA_CREATE */
	{ "delegate D0", DELEGATE, { G(D0) }, RMI_SUCCESS, D0, GRANULE_DELEGATED },
	{ "DATA with flags 2", DATA_CREATE, { G(RD), G(D0), 0x1000, 2 }, RMI_ERROR_INPUT, D0, GRANULE_DELEGATED },
	{ "DATA from an NS granule", DATA_CREATE, { G(RD), G(SPARE), 0x1000, 1 }, RMI_ERROR_INPUT, SPARE, GRANULE_NS },
	{ "DATA at an unaligned IPA", DATA_CREATE, { G(RD), G(D0), 0x1010, 1 }, RMI_ERROR_INPUT, D0, GRANULE_DELEGATED },
	{ "DATA unprotected", DATA_CREATE, { G(RD), G(D0), UNPROT, 1 }, RMI_ERROR_INPUT, D0, GRANULE_DELEGATED },
	{ "DATA under no level-3 RTT", DATA_CREATE, { G(RD), G(D0), 0x200000, 1 }, RTT(2), D0, GRANULE_DELEGATED },
	{ "DATA", DATA_CREATE, { G(RD), G(D0), 0x1000, 1 }, RMI_SUCCESS, D0, GRANULE_DATA },
	{ "delegate D1", DELEGATE, { G(D1) }, RMI_SUCCESS, D1, GRANULE_DELEGATED },
	{ "DATA over assigned", DATA_CREATE, { G(RD), G(D1), 0x1000, 1 }, RTT(3), D1, GRANULE_DELEGATED },
	{ "DATA again from a DATA granule", DATA_CREATE, { G(RD), G(D0), 0x2000, 1 }, RMI_ERROR_INPUT, D0, GRANULE_DATA },
	{ "undelegate a DATA granule", UNDELEGATE, { G(D0) }, RMI_ERROR_INPUT, D0, GRANULE_DATA },
	{ "RTT_DESTROY a live level 3", RTT_DESTROY, { G(RD), 0, 3 }, RTT(3), L3, GRANULE_RTT },
	/* REC_CREATE */
	{ "delegate REC0", DELEGATE, { G(REC0) }, RMI_SUCCESS, REC0, GRANULE_DELEGATED },
	{ "REC with unknown flags", REC_CREATE, { G(RD), G(REC0), 2 }, RMI_ERROR_INPUT, REC0, GRANULE_DELEGATED },
	{ "REC from an NS granule", REC_CREATE, { G(RD), G(REC1), 1 }, RMI_ERROR_INPUT, REC1, GRANULE_NS },
	{ "REC", REC_CREATE, { G(RD), G(REC0), 1 }, RMI_SUCCESS, REC0, GRANULE_REC },
	{ "destroy the realm with a REC", REALM_DESTROY, { G(RD) }, RMI_ERROR_REALM, RD, GRANULE_RD },
	{ "SET_RIPAS while NEW", SET_RIPAS, { G(RD), G(REC0), 0, 0x1000 }, RMI_ERROR_REALM, NONE },
	/* REALM_ACTIVATE */
	{ "activate", ACTIVATE, { G(RD) }, RMI_SUCCESS, RD, GRANULE_RD },
	{ "activate again", ACTIVATE, { G(RD) }, RMI_ERROR_REALM, RD, GRANULE_RD },
	{ "activate an RTT", ACTIVATE, { G(L1) }, RMI_ERROR_INPUT, L1, GRANULE_RTT },
	{ "delegate REC1", DELEGATE, { G(REC1) }, RMI_SUCCESS, REC1, GRANULE_DELEGATED },
	{ "REC while ACTIVE", REC_CREATE, { G(RD), G(REC1), 1 }, RMI_ERROR_REALM, REC1, GRANULE_DELEGATED },
	{ "DATA while ACTIVE", DATA_CREATE, { G(RD), G(D1), 0x2000, 1 }, RMI_ERROR_REALM, D1, GRANULE_DELEGATED },
	{ "INIT_RIPAS while ACTIVE", INIT_RIPAS, { G(RD), 0x3000, 0x4000 }, RMI_ERROR_REALM, NONE },
	/* DATA_CREATE_UNKNOWN and DATA_DESTROY */
	{ "DATA_UNKNOWN", DATA_UNKNOWN, { G(RD), G(D1), 0x2000 }, RMI_SUCCESS, D1, GRANULE_DATA },
	{ "delegate D2", DELEGATE, { G(D2) }, RMI_SUCCESS, D2, GRANULE_DELEGATED },
	{ "DATA_UNKNOWN over assigned", DATA_UNKNOWN, { G(RD), G(D2), 0x2000 }, RTT(3), D2, GRANULE_DELEGATED },
	{ "DATA_UNKNOWN with RIPAS EMPTY", DATA_UNKNOWN, { G(RD), G(D2), 0x5000 }, RMI_SUCCESS, D2, GRANULE_DATA },
	{ "DATA_DESTROY unassigned", DATA_DESTROY, { G(RD), 0x4000 }, RTT(3), NONE },
	{ "DATA_DESTROY under no level 3", DATA_DESTROY, { G(RD), 0x400000 }, RTT(2), NONE },
	{ "DATA_DESTROY unprotected", DATA_DESTROY, { G(RD), UNPROT }, RMI_ERROR_INPUT, NONE },
	{ "DATA_DESTROY", DATA_DESTROY, { G(RD), 0x5000 }, RMI_SUCCESS, D2, GRANULE_DELEGATED },
	/* RSI_IPA_STATE_SET then RTT_SET_RIPAS */
	{ "RSI: unaligned", RSI_SET, { G(REC0), 0x10, 0x1000, RIPAS_EMPTY }, RSI_ERROR_INPUT, NONE },
	{ "RSI: unprotected", RSI_SET, { G(REC0), UNPROT, UNPROT + 0x1000, RIPAS_EMPTY }, RSI_ERROR_INPUT, NONE },
	{ "RSI: DESTROYED is no target", RSI_SET, { G(REC0), 0, 0x1000, RIPAS_DESTROYED }, RSI_ERROR_INPUT, NONE },
	{ "RSI: [0, 0x3000) to EMPTY", RSI_SET, { G(REC0), 0, 0x3000, RIPAS_EMPTY | (RSI_CHANGE_DESTROYED << 8) }, RSI_SUCCESS, NONE },
	{ "SET_RIPAS not from the REC's address", SET_RIPAS, { G(RD), G(REC0), 0x1000, 0x3000 }, RMI_ERROR_INPUT, NONE },
	{ "SET_RIPAS past the request", SET_RIPAS, { G(RD), G(REC0), 0, 0x4000 }, RMI_ERROR_INPUT, NONE },
	{ "SET_RIPAS with an RTT as REC", SET_RIPAS, { G(RD), G(L3), 0, 0x3000 }, RMI_ERROR_INPUT, NONE },
	{ "SET_RIPAS", SET_RIPAS, { G(RD), G(REC0), 0, 0x3000 }, RMI_SUCCESS, D0, GRANULE_DATA },
	{ "SET_RIPAS once more: nothing left", SET_RIPAS, { G(RD), G(REC0), 0x3000, 0x3000 }, RMI_ERROR_INPUT, NONE },
	/* RTT_FOLD and RTT_DESTROY */
	{ "fold a mixed level 3", RTT_FOLD, { G(RD), 0, 3 }, RTT(3), L3, GRANULE_RTT },
	{ "fold level 1 (no level-0 blocks)", RTT_FOLD, { G(RD), 0, 1 }, RMI_ERROR_INPUT, L1, GRANULE_RTT },
	{ "fold where no level 3 is", RTT_FOLD, { G(RD), 0x200000, 3 }, RTT(2), NONE },
	{ "DATA_DESTROY D0", DATA_DESTROY, { G(RD), 0x1000 }, RMI_SUCCESS, D0, GRANULE_DELEGATED },
	{ "DATA_DESTROY D1", DATA_DESTROY, { G(RD), 0x2000 }, RMI_SUCCESS, D1, GRANULE_DELEGATED },
	{ "destroy a level 2 with a live level 3", RTT_DESTROY, { G(RD), 0, 2 }, RTT(2), L2, GRANULE_RTT },
	{ "destroy level 3", RTT_DESTROY, { G(RD), 0, 3 }, RMI_SUCCESS, L3, GRANULE_DELEGATED },
	{ "destroy level 3 again", RTT_DESTROY, { G(RD), 0, 3 }, RTT(2), L3, GRANULE_DELEGATED },
	/* the unprotected half */
	{ "delegate L3B", DELEGATE, { G(L3B) }, RMI_SUCCESS, L3B, GRANULE_DELEGATED },
	{ "delegate L2B", DELEGATE, { G(L2B) }, RMI_SUCCESS, L2B, GRANULE_DELEGATED },
	{ "delegate L3C", DELEGATE, { G(L3C) }, RMI_SUCCESS, L3C, GRANULE_DELEGATED },
	{ "unprotected level 1", RTT_CREATE, { G(RD), G(L3C), UNPROT, 1 }, RMI_SUCCESS, L3C, GRANULE_RTT },
	{ "unprotected level 2", RTT_CREATE, { G(RD), G(L2B), UNPROT, 2 }, RMI_SUCCESS, L2B, GRANULE_RTT },
	{ "map protected IPA unprotected", MAP_UNPROT, { G(RD), 0x200000, 2, G(NSPAGE) }, RMI_ERROR_INPUT, NONE },
	{ "map a realm granule unprotected", MAP_UNPROT, { G(RD), UNPROT, 3, G(D0) }, RMI_ERROR_INPUT, NONE },
	{ "map at level 3 under no level 3", MAP_UNPROT, { G(RD), UNPROT, 3, G(NSPAGE) }, RTT(2), NONE },
	{ "unprotected level 3", RTT_CREATE, { G(RD), G(L3B), UNPROT, 3 }, RMI_SUCCESS, L3B, GRANULE_RTT },
	{ "map unprotected", MAP_UNPROT, { G(RD), UNPROT, 3, G(NSPAGE) }, RMI_SUCCESS, NSPAGE, GRANULE_NS },
	{ "map it again", MAP_UNPROT, { G(RD), UNPROT, 3, G(NSPAGE) }, RTT(3), NONE },
	{ "unmap a hole", UNMAP_UNPROT, { G(RD), UNPROT + 0x1000, 3 }, RTT(3), NONE },
	{ "destroy a live unprotected level 3", RTT_DESTROY, { G(RD), UNPROT, 3 }, RTT(3), L3B, GRANULE_RTT },
	{ "unmap", UNMAP_UNPROT, { G(RD), UNPROT, 3 }, RMI_SUCCESS, NONE },
	{ "fold the empty unprotected level 3", RTT_FOLD, { G(RD), UNPROT, 3 }, RMI_SUCCESS, L3B, GRANULE_DELEGATED },
	/* REC_DESTROY and REALM_DESTROY */
	{ "destroy the realm with live RTTs", REALM_DESTROY, { G(RD) }, RMI_ERROR_REALM, RD, GRANULE_RD },
	{ "destroy a REC that is no REC", REC_DESTROY, { G(D0) }, RMI_ERROR_INPUT, D0, GRANULE_DELEGATED },
	{ "destroy the REC", REC_DESTROY, { G(REC0) }, RMI_SUCCESS, REC0, GRANULE_DELEGATED },
	/* RTT_READ_ENTRY */
	{ "read an entry at level 4", READ_ENTRY, { G(RD), 0, 4 }, RMI_ERROR_INPUT, NONE },
	{ "read an unaligned entry", READ_ENTRY, { G(RD), 0x1000, 2 }, RMI_ERROR_INPUT, NONE },
	{ "read past s2sz", READ_ENTRY, { G(RD), 1ULL << S2SZ, 1 }, RMI_ERROR_INPUT, NONE },
	{ "read with an RTT as RD", READ_ENTRY, { G(L1), 0, 1 }, RMI_ERROR_INPUT, NONE },
	{ "read an entry", READ_ENTRY, { G(RD), 0x1000, 3 }, RMI_SUCCESS, NONE },
	/* the end of the realm */
	{ "destroy protected level 2", RTT_DESTROY, { G(RD), 0, 2 }, RMI_SUCCESS, L2, GRANULE_DELEGATED },
	{ "destroy protected level 1", RTT_DESTROY, { G(RD), 0, 1 }, RMI_SUCCESS, L1, GRANULE_DELEGATED },
	{ "destroy unprotected level 2", RTT_DESTROY, { G(RD), UNPROT, 2 }, RMI_SUCCESS, L2B, GRANULE_DELEGATED },
	{ "destroy with a live level 1", REALM_DESTROY, { G(RD) }, RMI_ERROR_REALM, ROOT, GRANULE_RTT },
	{ "destroy unprotected level 1", RTT_DESTROY, { G(RD), UNPROT, 1 }, RMI_SUCCESS, L3C, GRANULE_DELEGATED },
	{ "destroy an RTT as realm", REALM_DESTROY, { G(ROOT) }, RMI_ERROR_INPUT, ROOT, GRANULE_RTT },
	{ "destroy the realm", REALM_DESTROY, { G(RD) }, RMI_SUCCESS, ROOT, GRANULE_DELEGATED },
	{ "... the RD is delegated", UNDELEGATE, { G(RD) }, RMI_SUCCESS, RD, GRANULE_NS },
	{ "destroy it again", REALM_DESTROY, { G(RD) }, RMI_ERROR_INPUT, RD, GRANULE_NS },
};

static void test_rmi_state_table(void **state)
{
	struct world *w = *state;

	for (size_t i = 0; i < PM_ARRAY_SIZE(rows); i++) {
		const struct row *r = &rows[i];
		uint64_t got = run(w, r);

		if (got != r->expect)
			fail_msg("row %zu (%s): result %#lx, want %#lx", i, r->what, (unsigned long)got,
				 (unsigned long)r->expect);
		if (r->g >= 0 && rmm_granule_state(w->g[r->g]) != r->st)
			fail_msg("row %zu (%s): granule %d in state %d, want %d", i, r->what, r->g,
				 rmm_granule_state(w->g[r->g]), r->st);
		check(w);
	}
}

/* ---- contents ---- */

static bool page_is_zero(pm_pfn_t pfn)
{
	const uint8_t *p = pm_pfn_to_hva(pfn);

	for (size_t i = 0; i < PM_PAGE_SIZE; i++)
		if (p[i])
			return false;
	return true;
}

static void make_realm(struct world *w, int algo, int version)
{
	struct rmi_realm_params p;

	assert_int_equal(rmi_granule_delegate(ga(w, RD)), RMI_SUCCESS);
	assert_int_equal(rmi_granule_delegate(ga(w, ROOT)), RMI_SUCCESS);
	realm_params(w, &p, ga(w, ROOT), P_OK);
	p.algorithm = (uint8_t)algo;
	assert_int_equal(rmi_realm_create(ga(w, RD), &p, version, NULL), RMI_SUCCESS);
	w->realm = true;
}

static void make_rtt(struct world *w, unsigned int g, uint64_t ipa, int level)
{
	assert_int_equal(rmi_granule_delegate(ga(w, g)), RMI_SUCCESS);
	assert_int_equal(rmi_rtt_create(ga(w, RD), ga(w, g), ipa, level), RMI_SUCCESS);
}

static void test_data_contents_and_zeroing(void **state)
{
	struct world *w = *state;
	uint64_t out, top, garbage = 0x5a5a5a5a5a5a5a5aULL;
	struct rmi_rtt_entry e;

	make_realm(w, RMI_HASH_SHA_256, RMM_RIM_V1);
	make_rtt(w, L1, 0, 1);
	make_rtt(w, L2, 0, 2);
	make_rtt(w, L3, 0, 3);
	assert_int_equal(rmi_rtt_init_ripas(ga(w, RD), 0, 0x2000, &top), RMI_SUCCESS);
	assert_int_equal(top, 0x2000);
	assert_int_equal(rmi_granule_delegate(ga(w, D0)), RMI_SUCCESS);
	assert_true(page_is_zero(w->g[D0]));
	assert_int_equal(rmi_data_create(ga(w, RD), ga(w, D0), 0x1000, page_pattern, RMI_MEASURE_CONTENT),
			 RMI_SUCCESS);
	assert_memory_equal(pm_pfn_to_hva(w->g[D0]), page_pattern, PM_PAGE_SIZE);
	assert_int_equal(rmi_rtt_read_entry(ga(w, RD), 0x1000, 3, &e), RMI_SUCCESS);
	assert_int_equal(e.walk_level, 3);
	assert_int_equal(e.state, HIPAS_ASSIGNED);
	assert_int_equal(e.ripas, RIPAS_RAM);
	assert_int_equal(e.desc, ga(w, D0));
	/* The realm's translation sees it (a valid leaf the vCPU may use). */
	enum hipas h;
	enum ripas rp;
	pm_pfn_t pfn;

	rmm_realm_translate(ga(w, RD), 0x1000, &h, &rp, &pfn);
	assert_int_equal(h, HIPAS_ASSIGNED);
	assert_int_equal(rp, RIPAS_RAM);
	assert_int_equal(pfn, w->g[D0]);
	memcpy(pm_pfn_to_hva(w->g[D0]), &garbage, 8);   /* the realm writes */
	assert_int_equal(rmi_data_destroy(ga(w, RD), 0x1000, &out, &top), RMI_SUCCESS);
	assert_int_equal(out, ga(w, D0));
	assert_true(page_is_zero(w->g[D0]));
	assert_int_equal(rmi_rtt_read_entry(ga(w, RD), 0x1000, 3, &e), RMI_SUCCESS);
	assert_int_equal(e.state, HIPAS_UNASSIGNED);
	assert_int_equal(e.ripas, RIPAS_DESTROYED);   /* v1.0: RAM -> DESTROYED */
	/* A hole: `top` is where the next live entry may be (skip it at once). */
	assert_int_equal(rmi_data_destroy(ga(w, RD), 0, &out, &top), RTT(3));
	assert_int_equal(top, 0x200000);               /* the end of the level-3 table */
	assert_int_equal(rmi_granule_delegate(ga(w, D1)), RMI_SUCCESS);
	assert_int_equal(rmi_data_create_unknown(ga(w, RD), ga(w, D1), 0x3000), RMI_SUCCESS);
	assert_int_equal(rmi_data_destroy(ga(w, RD), 0, &out, &top), RTT(3));
	assert_int_equal(top, 0x3000);                 /* the next assigned page */
	assert_int_equal(rmi_data_destroy(ga(w, RD), 0x400000, &out, &top), RTT(2));
	assert_int_equal(top, 1ULL << 30);             /* the rest of the level-2 table */
	check(w);
}

/* 512 DATA granules at contiguous, aligned frames fold into a 2M block
 * and unfold back (RTT_CREATE under an assigned block). */
static void test_fold_and_unfold(void **state)
{
	struct world *w = *state;
	pm_pfn_t run2m;
	uint64_t out_rtt, out, top;
	struct rmi_rtt_entry e;

	assert_int_equal(pm_pool_alloc(9, &run2m), 0);
	make_realm(w, RMI_HASH_SHA_256, RMM_RIM_V1);
	make_rtt(w, L1, 0, 1);
	make_rtt(w, L2, 0, 2);
	make_rtt(w, L3, 0x200000, 3);
	for (uint64_t i = 0; i < 512; i++) {
		assert_int_equal(rmi_granule_delegate((run2m + i) << 12), RMI_SUCCESS);
		assert_int_equal(rmi_data_create_unknown(ga(w, RD), (run2m + i) << 12, 0x200000 + i * 4096),
				 RMI_SUCCESS);
	}
	assert_int_equal(rmm_granule_refcount(w->g[L3]), 512);
	assert_int_equal(rmi_rtt_fold(ga(w, RD), 0x200000, 3, &out_rtt), RMI_SUCCESS);
	assert_int_equal(out_rtt, ga(w, L3));
	assert_int_equal(rmm_granule_state(w->g[L3]), GRANULE_DELEGATED);
	assert_true(page_is_zero(w->g[L3]));
	assert_int_equal(rmi_rtt_read_entry(ga(w, RD), 0x200000, 2, &e), RMI_SUCCESS);
	assert_int_equal(e.walk_level, 2);
	assert_int_equal(e.state, HIPAS_ASSIGNED);
	assert_int_equal(e.desc, run2m << 12);
	check(w);
	/* A DATA_DESTROY of one page needs the level-3 table back. */
	assert_int_equal(rmi_data_destroy(ga(w, RD), 0x201000, &out, &top), RTT(2));
	assert_int_equal(rmi_rtt_create(ga(w, RD), ga(w, L3), 0x200000, 3), RMI_SUCCESS);
	assert_int_equal(rmm_granule_refcount(w->g[L3]), 512);
	assert_int_equal(rmi_data_destroy(ga(w, RD), 0x201000, &out, &top), RMI_SUCCESS);
	assert_int_equal(out, (run2m + 1) << 12);
	check(w);
	/* Not homogeneous any more. */
	assert_int_equal(rmi_rtt_fold(ga(w, RD), 0x200000, 3, &out_rtt), RTT(3));
	realm_teardown(ga(w, RD), NULL, 0);
	w->realm = false;
	for (uint64_t i = 0; i < 512; i++)
		undelegate_if(run2m + i);
	pm_pool_free(run2m, 9);
}

/* ---- the RIM against scripts/cca_rim_kat.py ---- */

static void hex(const char *s, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sscanf(s + 2 * i, "%2hhx", &out[i]);
}

static void assert_rim(const struct world *w, const char *want_hex)
{
	uint8_t want[RIM_MAX_SIZE] = { 0 }, got[RIM_MAX_SIZE];
	unsigned int algo;
	int st;

	hex(want_hex, want, strlen(want_hex) / 2);
	rmm_realm_rim(ga(w, RD), got, &algo, &st);
	assert_memory_equal(got, want, RIM_MAX_SIZE);
}

/* Scenario A of the script: RIPAS [0, 0x3000) as 4K entries, DATA 0x1000
 * measured (the pattern page), DATA 0x2000 not measured (0xAB bytes), a
 * runnable REC and one that is not. */
static void scenario_a(struct world *w, int algo, int version)
{
	static uint8_t ab[PM_PAGE_SIZE];
	struct rmi_rec_params run = { .flags = RMI_REC_FLAG_RUNNABLE, .pc = 0x80000000,
				      .gprs = { 0x1234, 0, 0, 0, 0, 0, 0, 7 } };
	struct rmi_rec_params off = { .flags = 0, .pc = 0x1000 };
	uint64_t top;

	memset(ab, 0xab, sizeof(ab));
	make_realm(w, algo, version);
	make_rtt(w, L1, 0, 1);
	make_rtt(w, L2, 0, 2);
	make_rtt(w, L3, 0, 3);
	assert_int_equal(rmi_rtt_init_ripas(ga(w, RD), 0, 0x3000, &top), RMI_SUCCESS);
	assert_int_equal(rmi_granule_delegate(ga(w, D0)), RMI_SUCCESS);
	assert_int_equal(rmi_granule_delegate(ga(w, D1)), RMI_SUCCESS);
	assert_int_equal(rmi_data_create(ga(w, RD), ga(w, D0), 0x1000, page_pattern, 1), RMI_SUCCESS);
	assert_int_equal(rmi_data_create(ga(w, RD), ga(w, D1), 0x2000, ab, 0), RMI_SUCCESS);
	assert_int_equal(rmi_granule_delegate(ga(w, REC0)), RMI_SUCCESS);
	assert_int_equal(rmi_granule_delegate(ga(w, REC1)), RMI_SUCCESS);
	assert_int_equal(rmi_rec_create(ga(w, RD), ga(w, REC0), &run), RMI_SUCCESS);
	assert_int_equal(rmi_rec_create(ga(w, RD), ga(w, REC1), &off), RMI_SUCCESS);
	w->recs[0] = ga(w, REC0);
	w->recs[1] = ga(w, REC1);
	w->nr_recs = 2;
	assert_int_equal(rmi_realm_activate(ga(w, RD)), RMI_SUCCESS);
	check(w);
}

static void test_rim_known_answers_sha256_v1(void **state)
{
	scenario_a(*state, RMI_HASH_SHA_256, RMM_RIM_V1);
	assert_rim(*state, "6c1aecfb3e0ab62e4f71b88f62edea9d356e411156a71b7927abc6c2acb4cdbc");
}

static void test_rim_known_answers_sha512_v1(void **state)
{
	scenario_a(*state, RMI_HASH_SHA_512, RMM_RIM_V1);
	assert_rim(*state, "eb14b1a9b7aae2d9b23aea7ec98de8f2821ab5a3ce72f606cfea304e7d81f6c2"
			   "83c7e91b715629c637ad998dc05a976b279fcdb9b8a2d84646288917457f3afe");
}

static void test_rim_known_answers_sha256_v2(void **state)
{
	scenario_a(*state, RMI_HASH_SHA_256, RMM_RIM_V2);
	assert_rim(*state, "c5d9f98c1b55bab1aa14b8fd5798ac40560df25222da75e4d6a201d4ed5581f9");
}

static void test_rim0_known_answers(void **state)
{
	struct world *w = *state;

	make_realm(w, RMI_HASH_SHA_512, RMM_RIM_V1);
	assert_rim(w, "066e19aa2c3418dadc20ef31b5595907c612991952553e1e99731a677b5797c9"
		      "898dffb6e3963a20b8e1af6d136cd2fe6fe25f048577dc3d7e5bf3a79a4b1e81");
}

/* Scenario B: two 2M RIPAS entries (only a level-2 RTT exists), then
 * DATA_CREATE below them once a level-3 RTT is made. */
static void test_rim_known_answers_2m_ripas(void **state)
{
	struct world *w = *state;
	uint64_t top;

	make_realm(w, RMI_HASH_SHA_256, RMM_RIM_V1);
	make_rtt(w, L1, 0, 1);
	make_rtt(w, L2, 0, 2);
	assert_int_equal(rmi_rtt_init_ripas(ga(w, RD), 0x200000, 0x600000, &top), RMI_SUCCESS);
	assert_int_equal(top, 0x600000);
	/* The level-3 table inherits RIPAS RAM and is not measured. */
	make_rtt(w, L3, 0x200000, 3);
	assert_int_equal(rmi_granule_delegate(ga(w, D0)), RMI_SUCCESS);
	assert_int_equal(rmi_data_create(ga(w, RD), ga(w, D0), 0x200000, page_pattern, 1), RMI_SUCCESS);
	assert_rim(w, "cda379b910e19604a8aa4d4dc157b2191b7d96a8a41916c9eed3e7b96dfed885");
}

/* rim_ripas_blocks, the offline calculator's split, against the RMM's own
 * walk on fresh RTTs made the way KVM makes them. */
static void test_offline_blocks_match_scenario_b(void **state)
{
	struct rim_realm_params p = { .s2sz = S2SZ, .num_bps = 1, .num_wps = 1 };
	uint8_t rim[RIM_MAX_SIZE], want[RIM_MAX_SIZE] = { 0 };

	(void)state;
	rim_realm_params(&p, rim);
	rim_extend_ripas(0, rim, 0x200000, 0x400000);
	rim_extend_ripas(0, rim, 0x400000, 0x600000);
	rim_extend_data(0, rim, 0x200000, 1, page_pattern);
	hex("cda379b910e19604a8aa4d4dc157b2191b7d96a8a41916c9eed3e7b96dfed885", want, 32);
	assert_memory_equal(rim, want, RIM_MAX_SIZE);
}

/* ---- the host access guard ---- */

static void test_host_access_to_realm_granules_faults(void **state)
{
	struct world *w = *state;
	struct rmm_stats before, after;

	make_realm(w, RMI_HASH_SHA_256, RMM_RIM_V1);
	rmm_get_stats(&before);
	assert_int_equal(pm_host_access(w->g[SPARE], 1, true), 0);        /* NS */
	assert_int_equal(pm_host_access(w->g[RD], 1, false), -EFAULT);     /* RD */
	assert_int_equal(pm_host_access(w->g[ROOT], 1, true), -EFAULT);    /* RTT */
	assert_int_equal(rmi_granule_delegate(ga(w, D0)), RMI_SUCCESS);
	assert_int_equal(pm_host_access(w->g[D0], 1, true), -EFAULT);      /* DELEGATED */
	rmm_get_stats(&after);
	assert_int_equal(after.gpf - before.gpf, 3);
}

/* Freeing a granule that is still DATA to the pool stops privmem: the
 * pool's scrub is a host write the granule protection check refuses. */
static void free_data_granule(void *arg)
{
	struct world *w = arg;

	make_realm(w, RMI_HASH_SHA_256, RMM_RIM_V1);
	make_rtt(w, L1, 0, 1);
	make_rtt(w, L2, 0, 2);
	make_rtt(w, L3, 0, 3);
	assert_int_equal(rmi_granule_delegate(ga(w, D0)), RMI_SUCCESS);
	assert_int_equal(rmi_data_create_unknown(ga(w, RD), ga(w, D0), 0), RMI_SUCCESS);
	pm_pool_free(w->g[D0], 0);
}

static void test_freeing_a_data_granule_is_fatal(void **state)
{
	assert_true(pm_test_aborts(free_data_granule, *state));
}

/* ---- random runs, checked after each step ---- */

struct rnd {
	uint64_t s;
};

static uint64_t rnd_next(struct rnd *r)
{
	r->s ^= r->s << 13;
	r->s ^= r->s >> 7;
	r->s ^= r->s << 17;
	return r->s;
}

#define POOL_G 48

/* Random commands with random operands over two realms (RD, RD2) and a
 * pool of granules; whatever each returns, the checker must agree with
 * the granule states after it. */
static void test_random_runs_keep_states_consistent(void **state)
{
	struct world *w = *state;
	struct rnd rg = { 0x9e3779b97f4a7c15ULL };
	pm_pfn_t g[POOL_G];
	struct rmi_realm_params p;
	uint64_t rds[2] = { ga(w, RD), ga(w, RD2) }, recs[2][8];
	unsigned int nrec[2] = { 0, 0 };
	uint64_t successes = 0;

	for (int i = 0; i < POOL_G; i++)
		assert_int_equal(pm_pool_alloc(0, &g[i]), 0);
	make_realm(w, RMI_HASH_SHA_256, RMM_RIM_V1);
	assert_int_equal(rmi_granule_delegate(ga(w, RD2)), RMI_SUCCESS);
	assert_int_equal(rmi_granule_delegate(ga(w, ROOT2)), RMI_SUCCESS);
	realm_params(w, &p, ga(w, ROOT2), P_OK);
	p.vmid = 2;
	assert_int_equal(rmi_realm_create(ga(w, RD2), &p, RMM_RIM_V1, NULL), RMI_SUCCESS);
	for (int step = 0; step < 4000; step++) {
		unsigned int ri = rnd_next(&rg) % 2;
		uint64_t rd = rds[ri], x = g[rnd_next(&rg) % POOL_G] << 12, o1, o2, r = 0;
		/* IPAs in a small window, both halves, so commands meet each other. */
		uint64_t ipa = (rnd_next(&rg) % 4) * 0x200000 + (rnd_next(&rg) % 4) * 0x1000;
		int level = 1 + (int)(rnd_next(&rg) % 3);
		struct rmi_rec_params rp = { .flags = rnd_next(&rg) & 1 };

		if (rnd_next(&rg) % 4 == 0)
			ipa |= UNPROT;
		switch (rnd_next(&rg) % 12) {
		case 0: r = rmi_granule_delegate(x); break;
		case 1: r = rmi_granule_undelegate(x); break;
		case 2: r = rmi_rtt_create(rd, x, PM_ALIGN_DOWN(ipa, rtt_entry_size(level - 1)), level); break;
		case 3: r = rmi_rtt_destroy(rd, PM_ALIGN_DOWN(ipa, rtt_entry_size(level - 1)), level, &o1, &o2);
			break;
		case 4: r = rmi_rtt_fold(rd, PM_ALIGN_DOWN(ipa, rtt_entry_size(level - 1)), level, &o1); break;
		case 5: r = rmi_rtt_init_ripas(rd, ipa, ipa + 0x1000 * (1 + rnd_next(&rg) % 600), &o1); break;
		case 6: r = rmi_data_create(rd, x, ipa, page_pattern, rnd_next(&rg) & 1); break;
		case 7: r = rmi_data_create_unknown(rd, x, ipa); break;
		case 8: r = rmi_data_destroy(rd, ipa, &o1, &o2); break;
		case 9: r = rmi_rtt_map_unprotected(rd, PM_ALIGN_DOWN(ipa, rtt_entry_size(level)), level,
						     (g[rnd_next(&rg) % POOL_G] << 12) & ~(rtt_entry_size(level) - 1));
			break;
		case 10: r = rmi_rtt_unmap_unprotected(rd, PM_ALIGN_DOWN(ipa, rtt_entry_size(level)), level, &o1);
			break;
		case 11:
			if (nrec[ri] < 8) {
				r = rmi_rec_create(rd, x, &rp);
				if (!r)
					recs[ri][nrec[ri]++] = x;
			}
			break;
		}
		successes += r == RMI_SUCCESS;
		struct cca_check_realm realms[2] = {
			{ .rd = rds[0], .s2sz = S2SZ, .recs = recs[0], .nr_recs = nrec[0] },
			{ .rd = rds[1], .s2sz = S2SZ, .recs = recs[1], .nr_recs = nrec[1] },
		};
		struct cca_check_result res;

		if (!cca_check(realms, 2, &res))
			fail_msg("step %d: %s", step, res.error);
	}
	assert_true(successes > 400);   /* the run did things, not only fail */
	realm_teardown(rds[0], recs[0], nrec[0]);
	realm_teardown(rds[1], recs[1], nrec[1]);
	w->realm = false;
	for (int i = 0; i < POOL_G; i++) {
		undelegate_if(g[i]);
		pm_pool_free(g[i], 0);
	}
}

int main(void)
{
	for (int i = 0; i < 4096; i++)
		((uint8_t *)page_pattern)[i] = (uint8_t)i;
	setenv("PRIVMEM_POOL_SIZE", "256M", 0);
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_rmi_state_table),
		T(test_data_contents_and_zeroing),
		T(test_fold_and_unfold),
		T(test_rim_known_answers_sha256_v1),
		T(test_rim_known_answers_sha512_v1),
		T(test_rim_known_answers_sha256_v2),
		T(test_rim0_known_answers),
		T(test_rim_known_answers_2m_ripas),
		cmocka_unit_test(test_offline_blocks_match_scenario_b),
		T(test_host_access_to_realm_granules_faults),
		T(test_freeing_a_data_granule_is_fatal),
		T(test_random_runs_keep_states_consistent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

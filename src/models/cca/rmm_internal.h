/* SPDX-License-Identifier: MIT */
/*
 * What the RMM's files share (granule.c, rtt.c, rmi.c): granule locks and
 * states, the realm and REC descriptors kept inside their granules, RTT
 * entries. States, locks and their order are documented in rmm.h.
 */
#ifndef PM_MODELS_CCA_RMM_INTERNAL_H
#define PM_MODELS_CCA_RMM_INTERNAL_H

#include <stdatomic.h>
#include "host/pool.h"
#include "mmu/pgtable.h"
#include "models/cca/rmm.h"

/* ---- granules (granule.c) ---- */

/* An address the RMM can name a granule by: 4K aligned, inside the pool. */
bool granule_addr_ok(uint64_t addr);
static inline pm_pfn_t granule_pfn(uint64_t addr) { return addr >> PM_PAGE_SHIFT; }
static inline uint64_t granule_addr(pm_pfn_t pfn) { return pfn << PM_PAGE_SHIFT; }

/* Locks the granule and checks its state: true with the lock held, false
 * (unlocked) on a mismatch. */
bool granule_lock(pm_pfn_t pfn, enum granule_state expected);
void granule_unlock(pm_pfn_t pfn);
/* With the lock held and the refcount 0. */
void granule_set_state(pm_pfn_t pfn, enum granule_state st);
/* With the lock held. */
void granule_refcount_inc(pm_pfn_t pfn, int delta);
unsigned int granule_refcount_locked(pm_pfn_t pfn);
/* Two external granules, in ascending address order (the lock order):
 * RMI_SUCCESS with both held, or RMI_ERROR_INPUT (none held) if either
 * address is bad, they are the same, or a state does not match. */
uint64_t granule_lock_two(uint64_t a, enum granule_state sa, uint64_t b, enum granule_state sb);
/* Zeroes a locked granule's memory (the RMM's own access: not the host's). */
void granule_zero(pm_pfn_t pfn);
static inline void *granule_map(pm_pfn_t pfn) { return pm_pfn_to_hva(pfn); }

/* VMIDs in use (a leaf lock inside granule.c). */
bool rmm_vmid_claim(uint16_t vmid);
void rmm_vmid_release(uint16_t vmid);

/* A command's end: counted by result, and traced (a span from t0,
 * pm_trace_begin's) with its first address, IPA and level (-1: none). */
void rmm_done(enum rmi_cmd cmd, uint64_t t0, uint64_t addr, uint64_t ipa, int level, uint64_t result);
void rmm_count_rim(void);
void rmm_count_tlbi(void);

/* ---- descriptors inside granules ---- */

/* The Realm Descriptor, in its RD granule. Everything but `rtt` (whose
 * entries follow their tables' locks) is protected by the RD's lock;
 * s2sz, algo, rim_version, rtt_root and tlbi are immutable after CREATE. */
struct rmm_rd {
	uint32_t state;              /* enum realm_state */
	uint32_t algo;               /* RMI_HASH_* */
	uint32_t s2sz;
	int rim_version;             /* RMM_RIM_V1 or _V2 */
	uint16_t vmid;
	uint8_t rim[RIM_MAX_SIZE];
	struct pm_s2 rtt;            /* root = the starting-level RTT */
	struct rmm_tlbi tlbi;
};

/* The REC, in its REC granule; its lock protects it. */
struct rmm_rec {
	pm_pfn_t rd;                 /* immutable */
	bool runnable;
	uint64_t mpidr;
	uint64_t ripas_addr, ripas_top;   /* the pending RIPAS change */
	uint32_t ripas_value;             /* enum ripas */
	uint64_t ripas_flags;             /* RSI_(NO_)CHANGE_DESTROYED */
};

static inline struct rmm_rd *rd_of(pm_pfn_t rd) { return granule_map(rd); }
static inline struct rmm_rec *rec_of(pm_pfn_t rec) { return granule_map(rec); }

/* Locks the RD named by addr: RMI_SUCCESS or RMI_ERROR_INPUT. */
uint64_t rd_lock(uint64_t addr);

/* ---- RTT entries (rtt.c) ---- */

#define RTT_RIPAS_SHIFT   54
#define RTT_RIPAS_MASK    (3ULL << RTT_RIPAS_SHIFT)
#define RTT_ASSIGNED      (1ULL << 56)
/* Valid leaves always carry ACCESSED and DIRTY: a vCPU's walk never has
 * to write them into the RMM's tables. */
#define RTT_LEAF_BITS     (PM_PTE_VALID | PM_PTE_LEAF | PM_PTE_WRITE | PM_PTE_EXEC | \
			   PM_PTE_ACCESSED | PM_PTE_DIRTY)

static inline bool rtt_unprotected(const struct rmm_rd *rd, uint64_t ipa)
{
	return ipa & (1ULL << (rd->s2sz - 1));
}
static inline bool rtt_ipa_ok(const struct rmm_rd *rd, uint64_t ipa)
{
	return ipa < (1ULL << rd->s2sz);
}
static inline bool s2tte_is_table(uint64_t e, int level)
{
	return level < RTT_PAGE_LEVEL && (e & PM_PTE_VALID) && !(e & PM_PTE_LEAF);
}
static inline bool s2tte_is_assigned(uint64_t e) { return e & RTT_ASSIGNED; }
static inline bool s2tte_is_unassigned(uint64_t e, int level)
{
	return !s2tte_is_table(e, level) && !s2tte_is_assigned(e);
}
static inline enum ripas s2tte_ripas(uint64_t e)
{
	return (enum ripas)((e & RTT_RIPAS_MASK) >> RTT_RIPAS_SHIFT);
}
static inline pm_pfn_t s2tte_pfn(uint64_t e) { return pm_pte_addr(e); }
/* Live entries count in their table's refcount. */
static inline bool s2tte_is_live(uint64_t e, int level)
{
	return s2tte_is_table(e, level) || s2tte_is_assigned(e);
}
/* Entry constructors. */
uint64_t s2tte_protected(enum hipas h, enum ripas r, pm_pfn_t pfn);
uint64_t s2tte_unprotected(bool assigned, uint64_t desc);
uint64_t s2tte_table(pm_pfn_t rtt);

/* The entry of table `table` (at level) covering ipa. */
_Atomic uint64_t *rtt_entry(pm_pfn_t table, int level, uint64_t ipa);
/* Walks rd's RTT toward ipa, hand over hand, down to at most `level`:
 * stops early at an entry that is no table. The RD locked; returns with
 * the table holding the entry locked, and its level. */
void rtt_walk_lock(struct rmm_rd *rd, uint64_t ipa, int level, pm_pfn_t *table, int *reached);
/* Keeps rd->rtt.leaves (valid protected leaves by size, the vCPUs'
 * mappings) in step with an entry of `level` at ipa going from old to new,
 * for n entries alike. */
void rtt_account(struct rmm_rd *rd, uint64_t ipa, int level, uint64_t old, uint64_t new, uint64_t n);
/* The top of the run of entries that are not live from ipa's (at level)
 * to the end of the table: ipa itself if its entry is live. */
uint64_t rtt_nonlive_top(pm_pfn_t table, int level, uint64_t ipa);
/* The realm's broadcast TLBI. */
void rtt_tlbi(struct rmm_rd *rd);

#endif

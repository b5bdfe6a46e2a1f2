/* SPDX-License-Identifier: MIT */
/*
 * The simulated Arm CCA Realm Management Monitor (RMM): a trusted component,
 * like the TDX module, that KVM's realm side (realm.c) reaches only through
 * the RMI commands below, as the host reaches TF-RMM through SMCs; the
 * realm reaches it through RSI (rmm_rsi_*). Result codes are the RMM
 * specification's (v1.0): RMI_SUCCESS, or a status with an index (the RTT
 * level for RMI_ERROR_RTT) in bits 8-15.
 *
 * ---- Granules (granule.c) ----
 * One descriptor per pool frame (a 4K granule), process-wide, created with
 * the first realm over the pool as it is then. A descriptor is one atomic
 * word: a lock bit, the state, a reference count.
 *
 *   NS         the host's (Non-secure PAS): every frame starts here. The
 *              only state in which the host may read or write the frame:
 *              a host access to a granule in any other state is refused
 *              and counted (a granule protection fault, rmm_host_access).
 *   DELEGATED  given to the Realm world (GRANULE_DELEGATE), unused. The
 *              invariant: an unlocked DELEGATED granule contains only
 *              zeroes (DELEGATE zeroes it; every command that returns a
 *              granule to DELEGATED zeroes it before unlocking).
 *   RD         a Realm Descriptor: the realm's state, parameters, RIM and
 *              RTT root live in the granule itself. refcount: the realm's
 *              RECs (REALM_DESTROY needs 0).
 *   REC        a Realm Execution Context (a vCPU): its parameters and its
 *              pending RIPAS change live in the granule. refcount 0.
 *   DATA       a protected page of a realm, mapped by exactly one RTT entry
 *              (HIPAS ASSIGNED). refcount 0.
 *   RTT        a realm translation table (pgtable.c's format: 512 entries,
 *              a table entry VALID with the next table's frame). refcount:
 *              its live entries (a table, or HIPAS ASSIGNED); RTT_DESTROY
 *              needs 0.
 * Locks: the lock bit, taken by compare-and-exchange (spinning, then
 * yielding); a state changes only with the granule locked and its refcount
 * 0. Lock order (TF-RMM's): first the command's external granules (the
 * addresses it is given) in ascending address order; then the chain
 * RD -> RTT (starting level) -> ... -> RTT (level 3) hand over hand; last a
 * DATA granule found through an RTT entry. A state that does not match
 * after locking means unlock and fail. The RD stays locked for the whole of
 * a command that names it, so the commands on one realm are serialised, as
 * the realm's measurement and state require. Reads of a state without the
 * lock (the host-access check, the checker) see a committed state.
 *
 * ---- RTT entries (rtt.c) ----
 * pgtable.c's entry format with the RMM's software bits: HIPAS (ASSIGNED
 * or UNASSIGNED) and, in the protected half, RIPAS (EMPTY, RAM,
 * DESTROYED). An entry is VALID (the realm may use it: the vCPU's walk
 * finds it) exactly when it is ASSIGNED with RIPAS RAM (protected) or
 * ASSIGNED (unprotected: ASSIGNED_NS); other assigned entries keep their
 * frame in a not-valid entry. A fresh table is all UNASSIGNED EMPTY
 * (zeroes). Levels are Arm's: 0 (512G per entry, the starting level), 1
 * (1G), 2 (2M), 3 (4K). The protected half of the IPA space is
 * [0, 2^(s2sz-1)), the unprotected half [2^(s2sz-1), 2^s2sz).
 * Entries change under their table's granule lock (atomic stores: the
 * vCPUs' walks read them without locks); after removing a valid entry the
 * RMM invalidates the realm's TLBs (the broadcast TLBI: the realm's
 * tlbi callback) before it reuses or zeroes the frame.
 *
 * ---- Realms ----
 * State NEW (REALM_CREATE) -> ACTIVE (REALM_ACTIVATE). DATA_CREATE,
 * RTT_INIT_RIPAS and REC_CREATE need NEW; RTT_SET_RIPAS needs ACTIVE.
 * The RIM (rim.h) is extended by DATA_CREATE, REC_CREATE (runnable RECs)
 * and, with the v1.0 rule, by RTT_INIT_RIPAS (one descriptor per entry).
 *
 * What is not simulated: the GPT itself (a granule's PAS is its state),
 * auxiliary RECs, REC_ENTER's register file (the REC runs privmem's C
 * guest), PSCI, planes, devices, RMI_BUSY and attestation tokens.
 */
#ifndef PM_MODELS_CCA_RMM_H
#define PM_MODELS_CCA_RMM_H

#include "lib/common.h"
#include "models/cca/rim.h"

/* ---- result codes (RMM v1.0, RmiCommandReturnCode) ---- */
#define RMI_SUCCESS        0ULL
#define RMI_ERROR_INPUT    1ULL
#define RMI_ERROR_REALM    2ULL
#define RMI_ERROR_REC      3ULL
#define RMI_ERROR_RTT      4ULL

static inline uint64_t rmi_error(uint64_t status, unsigned int index)
{
	return status | ((uint64_t)index << 8);
}
static inline uint64_t rmi_status(uint64_t r) { return r & 0xff; }
static inline unsigned int rmi_index(uint64_t r) { return (unsigned int)(r >> 8) & 0xff; }

/* RSI results (RsiCommandReturnCode) and RSI_IPA_STATE_SET's response. */
#define RSI_SUCCESS        0ULL
#define RSI_ERROR_INPUT    1ULL
#define RSI_ERROR_STATE    2ULL
#define RSI_ACCEPT         0ULL
#define RSI_REJECT         1ULL
#define RSI_NO_CHANGE_DESTROYED 0ULL
#define RSI_CHANGE_DESTROYED    1ULL

enum granule_state {
	GRANULE_NS = 0,
	GRANULE_DELEGATED,
	GRANULE_RD,
	GRANULE_REC,
	GRANULE_DATA,
	GRANULE_RTT,
	GRANULE_NR_STATES,
};

enum ripas { RIPAS_EMPTY = 0, RIPAS_RAM = 1, RIPAS_DESTROYED = 2 };
enum hipas { HIPAS_UNASSIGNED = 0, HIPAS_ASSIGNED = 1 };

enum realm_state { REALM_NEW = 1, REALM_ACTIVE = 2 };

#define RTT_PAGE_LEVEL     3
#define RTT_MIN_BLOCK_LEVEL 1
#define RTT_START_LEVEL    0

/* The size of an entry at Arm level `level` (0..3). */
static inline uint64_t rtt_entry_size(int level)
{
	return PM_PAGE_SIZE << (9 * (RTT_PAGE_LEVEL - level));
}

/* RmiRealmParams (4096 bytes; the offsets of the specification). */
struct rmi_realm_params {
	uint64_t flags;                  /* 0x000 */
	uint64_t s2sz;                   /* 0x008 (u32 in an 8-byte slot) */
	uint64_t sve_vl;                 /* 0x010 */
	uint64_t num_bps;                /* 0x018 */
	uint64_t num_wps;                /* 0x020 */
	uint64_t pmu_num_ctrs;           /* 0x028 */
	uint8_t algorithm;               /* 0x030 */
	uint8_t pad0[0x400 - 0x31];
	uint8_t rpv[64];                 /* 0x400 */
	uint8_t pad1[0x800 - 0x440];
	uint16_t vmid;                   /* 0x800 */
	uint8_t pad2[6];
	uint64_t rtt_base;               /* 0x808: PA of the starting-level RTT */
	int64_t rtt_level_start;         /* 0x810 */
	uint32_t rtt_num_start;          /* 0x818 */
	uint8_t pad3[0x1000 - 0x81c];
};
_Static_assert(sizeof(struct rmi_realm_params) == 4096, "RmiRealmParams is 4 KiB");

/* RmiRecParams, the fields privmem reads (flags, mpidr, pc, gprs). */
struct rmi_rec_params {
	uint64_t flags;                  /* RMI_REC_FLAG_RUNNABLE */
	uint64_t mpidr;
	uint64_t pc;
	uint64_t gprs[8];
};

/* RMI_RTT_READ_ENTRY's outputs. */
struct rmi_rtt_entry {
	int walk_level;                  /* the level the walk reached */
	enum hipas state;
	enum ripas ripas;                /* protected half only */
	uint64_t desc;                   /* the output address (PA) for ASSIGNED */
	bool table;                      /* the entry is a table */
};

/* The machine's broadcast TLB invalidation for one realm (the simulated
 * hardware of the realm's VM provides it: privmem's TLB shootdown). */
struct rmm_tlbi {
	void (*fn)(void *arg);
	void *arg;
};

/* The RMM's simulated implementation version: 1 (RMM v1.0's RIM rule,
 * RTT_INIT_RIPAS measured) or 2 (v2.0's: not measured). Per realm, so both
 * can be tested in one process. */
#define RMM_RIM_V1 1
#define RMM_RIM_V2 2

/* ---- lifetime (granule.c) ----
 * The process-wide RMM: created with the first user over the pool as it
 * is then, destroyed with the last (which must find every granule NS).
 * While it exists it is registered as the pool's host access guard. */
int rmm_get(void);
void rmm_put(void);

/* ---- RMI commands ---- addresses are PAs (pfn << 12) */
uint64_t rmi_granule_delegate(uint64_t addr);
uint64_t rmi_granule_undelegate(uint64_t addr);
uint64_t rmi_realm_create(uint64_t rd, const struct rmi_realm_params *params, int rim_version,
			  const struct rmm_tlbi *tlbi);
uint64_t rmi_realm_activate(uint64_t rd);
uint64_t rmi_realm_destroy(uint64_t rd);
uint64_t rmi_rec_create(uint64_t rd, uint64_t rec, const struct rmi_rec_params *params);
uint64_t rmi_rec_destroy(uint64_t rec);
uint64_t rmi_rtt_create(uint64_t rd, uint64_t rtt, uint64_t ipa, int level);
uint64_t rmi_rtt_destroy(uint64_t rd, uint64_t ipa, int level, uint64_t *out_rtt, uint64_t *out_top);
uint64_t rmi_rtt_fold(uint64_t rd, uint64_t ipa, int level, uint64_t *out_rtt);
uint64_t rmi_rtt_init_ripas(uint64_t rd, uint64_t base, uint64_t top, uint64_t *out_top);
uint64_t rmi_rtt_set_ripas(uint64_t rd, uint64_t rec, uint64_t base, uint64_t top, uint64_t *out_top);
uint64_t rmi_rtt_read_entry(uint64_t rd, uint64_t ipa, int level, struct rmi_rtt_entry *out);
/* src: the host's source page (an NS granule on hardware; here any host
 * memory the RMM may read), copied into the granule, then measured. */
uint64_t rmi_data_create(uint64_t rd, uint64_t data, uint64_t ipa, const void *src, uint64_t flags);
uint64_t rmi_data_create_unknown(uint64_t rd, uint64_t data, uint64_t ipa);
/* out_top: ipa + 4K; on RMI_ERROR_RTT, the top of the non-live entries
 * from the one the walk ended at (ipa itself when that one is live: an
 * assigned block, which must be unfolded first). */
uint64_t rmi_data_destroy(uint64_t rd, uint64_t ipa, uint64_t *out_data, uint64_t *out_top);
/* desc: the output address (a PA) and privmem's PM_PTE_HVA bit when the
 * memory is the VMM's (a host virtual page, never a realm granule). */
uint64_t rmi_rtt_map_unprotected(uint64_t rd, uint64_t ipa, int level, uint64_t desc);
uint64_t rmi_rtt_unmap_unprotected(uint64_t rd, uint64_t ipa, int level, uint64_t *out_top);

/* ---- RSI (the realm's calls, on its REC) ----
 * RSI_IPA_STATE_SET: records the request in the REC (the REC then exits
 * with RMI_EXIT_RIPAS_CHANGE; the host answers with RTT_SET_RIPAS) and
 * returns RSI_SUCCESS, or RSI_ERROR_INPUT for a bad range (not aligned,
 * empty, outside the protected half) or value. */
uint64_t rmm_rsi_ipa_state_set(uint64_t rec, uint64_t base, uint64_t top, enum ripas ripas,
			       uint64_t flags);
/* Where the REC's pending RIPAS change stands (after RTT_SET_RIPAS). */
void rmm_rec_ripas_progress(uint64_t rec, uint64_t *addr, uint64_t *top);

/* ---- the hardware's view (lock-free reads, as the MMU walks) ---- */
/* What a realm access to protected ipa finds: HIPAS, RIPAS and frame. */
void rmm_realm_translate(uint64_t rd, uint64_t ipa, enum hipas *hipas, enum ripas *ripas,
			 pm_pfn_t *pfn);
/* The realm's RTT as a pgtable.c table (the vCPUs' protected walks). */
struct pm_s2 *rmm_realm_rtt(uint64_t rd);
/* The RIM (rim_hash_size bytes of it), its algorithm and the realm state:
 * the value an attestation token carries; not readable by the host. */
void rmm_realm_rim(uint64_t rd, uint8_t rim[RIM_MAX_SIZE], unsigned int *algo, int *state);

/* ---- granule states, for the host guard, reports and the checker ---- */
enum granule_state rmm_granule_state(pm_pfn_t pfn);
unsigned int rmm_granule_refcount(pm_pfn_t pfn);
/* Granules now in each state, over the pool (all 0 while no realm exists,
 * the RMM with them). */
void rmm_granule_counts(uint64_t counts[GRANULE_NR_STATES]);
/* A host access to frames [pfn, pfn + n): 0, or -EFAULT when one is not NS
 * (a granule protection fault: counted). */
int rmm_host_access(pm_pfn_t pfn, uint64_t n, bool write);

 /* The machine's counters, since the process started (no RMM needed). */
struct rmm_stats {
	uint64_t gpf;                    /* granule protection faults (host accesses refused) */
	uint64_t commands[32];           /* RMI commands that succeeded, by enum rmi_cmd */
	uint64_t failed[32];             /* ... that returned an error */
	uint64_t rim_extends;
	uint64_t tlbis;
};
enum rmi_cmd {
	RMI_CMD_GRANULE_DELEGATE, RMI_CMD_GRANULE_UNDELEGATE, RMI_CMD_REALM_CREATE,
	RMI_CMD_REALM_ACTIVATE, RMI_CMD_REALM_DESTROY, RMI_CMD_REC_CREATE, RMI_CMD_REC_DESTROY,
	RMI_CMD_RTT_CREATE, RMI_CMD_RTT_DESTROY, RMI_CMD_RTT_FOLD, RMI_CMD_RTT_INIT_RIPAS,
	RMI_CMD_RTT_SET_RIPAS, RMI_CMD_RTT_READ_ENTRY, RMI_CMD_DATA_CREATE,
	RMI_CMD_DATA_CREATE_UNKNOWN, RMI_CMD_DATA_DESTROY, RMI_CMD_RTT_MAP_UNPROTECTED,
	RMI_CMD_RTT_UNMAP_UNPROTECTED, RMI_NR_CMDS,
};
extern const char *const rmi_cmd_names[RMI_NR_CMDS];
void rmm_get_stats(struct rmm_stats *st);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * The simulated Intel TDX module: a trusted component that owns each TD's
 * secure EPT (S-EPT), its measurement (MRTD) and its TLB-tracking epoch.
 * KVM's side (tdx.c) reaches it only through the SEAMCALLs below, as the
 * host kernel reaches the real module; the guest through the TDG calls.
 *
 * S-EPT entries (per level: 0 = 4K leaf, 1 = 2M, 2 = 1G, 3 = the root's
 * entries), the states of one entry:
 *   FREE      nothing there
 *   TABLE     points to a table of the level below (TDH.MEM.SEPT.ADD)
 *   MAPPED    a leaf the guest may use (PAGE.ADD, or AUG then ACCEPT)
 *   PENDING   a leaf added by AUG, unusable until the guest accepts it;
 *             a guest access to it is fatal for the TD
 * and a BLOCKED flag on a leaf (RANGE.BLOCK: no new translation through
 * it; it records the TD epoch at blocking). Transitions:
 *   SEPT.ADD(gpa, L)       L in 1..3, gpa aligned to L's span (OPERAND_INVALID);
 *                          the walk down to L finds tables (EPT_WALK_FAILED);
 *                          entry FREE (EPT_ENTRY_STATE_INCORRECT) -> TABLE
 *   PAGE.ADD(gpa, pfn, src) TD not finalized (OP_STATE_INCORRECT); gpa 4K;
 *                          walk; entry FREE; the frame not a TD page
 *                          (PAGE_METADATA_INCORRECT) -> MAPPED; copies the 4K
 *                          of src into the page and measures (MEM.PAGE.ADD)
 *   PAGE.AUG(gpa, L, pfn)  L 0 or 1, gpa and pfn aligned; TD finalized
 *                          (OP_STATE_INCORRECT); walk; FREE; frames not TD
 *                          pages -> PENDING
 *   RANGE.BLOCK(gpa, L)    walk; leaf MAPPED or PENDING, not blocked
 *                          (EPT_ENTRY_STATE_INCORRECT) -> BLOCKED at epoch e
 *   TRACK                  epoch++ (every vCPU must then re-enter)
 *   PAGE.REMOVE(gpa, L)    walk; BLOCKED leaf of that level (STATE_INCORRECT);
 *                          an epoch after e and no vCPU in guest mode on an
 *                          epoch <= e (TLB_TRACKING_NOT_DONE) -> FREE
 *   PAGE.DEMOTE(gpa, 1)    BLOCKED 2M leaf, tracking done as for REMOVE
 *                          -> TABLE of 512 4K leaves in its unblocked state
 *   MR.EXTEND(gpa)         not finalized; gpa 256-aligned; a MAPPED 4K leaf
 *                          (EPT_ENTRY_STATE_INCORRECT); measures its 256 bytes
 *   MR.FINALIZE            not finalized (OP_STATE_INCORRECT) -> finalized;
 *                          the MRTD is the SHA-384 of everything measured
 *   TDG.MEM.PAGE.ACCEPT(gpa, L)  (guest) no leaf: NOT_MAPPED (the VMM must
 *                          map it); leaf of another level: PAGE_SIZE_MISMATCH;
 *                          MAPPED: PAGE_ALREADY_ACCEPTED; PENDING -> MAPPED,
 *                          the page zeroed
 * Every call that changes an S-EPT entry first locks that entry (a lock bit
 * in it, taken by compare-and-exchange); finding it locked, the call fails
 * with TDX_OPERAND_BUSY and changes nothing, as the real module does when
 * two callers contend for one entry. With busy injection on, such calls
 * also fail with OPERAND_BUSY at random, before any check.
 *
 * Locks (all the module's own; it takes none of KVM's):
 *   entry lock bits   one S-EPT entry each; never waited for (BUSY)
 *   td->mr_lock       the MRTD hash context and the finalized flag's
 *                     transition; held for PAGE.ADD's and MR.EXTEND's hashing
 *   td->epoch, vp states   atomics (see tdx_module_vp_enter)
 * Tables are never freed before the TD is destroyed, so walks take no lock.
 *
 * Memory: S-EPT tables are the module's own allocations (the real module
 * takes pages the host donates), freed with the TD. TD pages are pool
 * frames the host hands in; the module writes them (PAGE.ADD's copy,
 * ACCEPT's zeroing) through the library's direct map.
 *
 * PAMT: one process-wide byte per pool frame says whether the frame is a TD
 * page (from PAGE.ADD / PAGE.AUG until PAGE.REMOVE, or until its TD is torn
 * down). ADD and AUG of a frame that is a TD page already fail with
 * TDX_OPERAND_PAGE_METADATA_INCORRECT. While a TD exists the module is a
 * host guard (host/host_guard.h): a host access to a TD page is refused, so
 * freeing one to the pool (whose scrub writes it) stops privmem, as the
 * machine check would stop the host. pamt_lock (a leaf) guards allocating
 * the table with the first TD and freeing it with the last; its bytes are
 * atomics.
 */
#ifndef PM_MODELS_TDX_MODULE_H
#define PM_MODELS_TDX_MODULE_H

#include "lib/common.h"

/* Status codes: the TDX module's values for the ones Linux names (class in
 * bits 63-32); TDX_TLB_TRACKING_NOT_DONE, TDX_NOT_MAPPED are privmem's in
 * the same format. Bit 63 set: an error; bit 62 clear: recoverable. */
#define TDX_SUCCESS                     0ULL
#define TDX_OPERAND_BUSY                0x8000020000000000ULL
#define TDX_OPERAND_INVALID             0xC000010000000000ULL
#define TDX_OP_STATE_INCORRECT          0xC000060000000000ULL
#define TDX_EPT_WALK_FAILED             0xC0000B0000000000ULL
#define TDX_TLB_TRACKING_NOT_DONE       0xC0000B0800000000ULL
#define TDX_PAGE_ALREADY_ACCEPTED       0x00000B0A00000000ULL
#define TDX_PAGE_SIZE_MISMATCH          0xC0000B0B00000000ULL
#define TDX_EPT_ENTRY_STATE_INCORRECT   0xC0000B0D00000000ULL
#define TDX_NOT_MAPPED                  0xC0000B0F00000000ULL
#define TDX_OPERAND_PAGE_METADATA_INCORRECT 0xC000030000000000ULL

#define TDX_MAX_VPS       1024
#define TDX_MRTD_SIZE     48

struct tdx_td;

/* What a guest access finds in the S-EPT (tdx_module_guest_lookup). */
enum tdx_gpa_state {
	TDX_GPA_NONE,        /* no leaf (or a blocked one): an EPT violation */
	TDX_GPA_PENDING,     /* AUG'd, not accepted: fatal for the TD */
	TDX_GPA_MAPPED,
};

/* TDH.MNG.CREATE + INIT: a TD whose private GPAs are below 2^gpa_bits. */
int tdx_module_td_create(unsigned int gpa_bits, struct tdx_td **out);
/* Tears the TD down, reclaiming every S-EPT table. */
void tdx_module_td_destroy(struct tdx_td *td);

/* TDH.VP.CREATE: a vCPU index, or -ENOSPC. */
int tdx_module_vp_create(struct tdx_td *td);
/* TDH.VP.ENTER / the exit: a vCPU runs the guest (on the TD's current
 * epoch) or stops. A vCPU that flushed its TLB in guest mode re-enters. */
void tdx_module_vp_enter(struct tdx_td *td, int vp);
void tdx_module_vp_exit(struct tdx_td *td, int vp);

uint64_t tdh_mem_sept_add(struct tdx_td *td, uint64_t gpa, int level);
uint64_t tdh_mem_page_add(struct tdx_td *td, uint64_t gpa, pm_pfn_t pfn, const void *src);
uint64_t tdh_mem_page_aug(struct tdx_td *td, uint64_t gpa, int level, pm_pfn_t pfn);
uint64_t tdh_mem_range_block(struct tdx_td *td, uint64_t gpa, int level);
uint64_t tdh_mem_track(struct tdx_td *td);
/* *pfn: the removed page. */
uint64_t tdh_mem_page_remove(struct tdx_td *td, uint64_t gpa, int level, pm_pfn_t *pfn);
uint64_t tdh_mem_page_demote(struct tdx_td *td, uint64_t gpa, int level);
uint64_t tdh_mr_extend(struct tdx_td *td, uint64_t gpa);
uint64_t tdh_mr_finalize(struct tdx_td *td);

/* Guest side. */
uint64_t tdg_mem_page_accept(struct tdx_td *td, uint64_t gpa, int level);
/* The state of the 4K page at gpa and its frame (for MAPPED and PENDING). */
enum tdx_gpa_state tdx_module_guest_lookup(struct tdx_td *td, uint64_t gpa, pm_pfn_t *pfn);

/* The MRTD after MR.FINALIZE: 0, or -EINVAL before. */
int tdx_module_mrtd(struct tdx_td *td, uint8_t mrtd[TDX_MRTD_SIZE]);
bool tdx_module_finalized(struct tdx_td *td);

/* Statistics and test switches. */
struct tdx_module_stats {
	uint64_t sept_entries[4];   /* present now: [0] 4K leaves, [1] 2M leaves,
	                             * [2] 1G leaves, [3] tables (SEPT.ADD'd) */
	uint64_t busy;              /* OPERAND_BUSY returned (contention) */
	uint64_t busy_injected;     /* OPERAND_BUSY injected */
	uint64_t demotions;
	uint64_t pending;           /* leaves AUG'd and not accepted yet */
};
void tdx_module_stats(struct tdx_td *td, struct tdx_module_stats *st);
/* Injects OPERAND_BUSY into the entry-changing SEAMCALLs at `per_million`
 * of calls (0: off). */
void tdx_module_set_busy_rate(struct tdx_td *td, unsigned int per_million);
/* Tests: holds (or releases) the lock of the entry at `level` covering gpa,
 * as a SEAMCALL in flight on another CPU would. 0, or -ENOENT (walk failed)
 * or -EBUSY (held already). */
int tdx_module_test_hold_entry(struct tdx_td *td, uint64_t gpa, int level, bool hold);

#endif

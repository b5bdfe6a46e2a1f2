/* SPDX-License-Identifier: MIT */
/*
 * The simulated SEV-SNP hardware: the Reverse Map Table (RMP) and the
 * instructions that read and write it (RMPUPDATE, PSMASH, PVALIDATE), plus
 * the RMP check on every host write into a frame.
 *
 * One RMP per process (the machine), one entry per frame of the pool as it
 * was when the RMP was created. An entry (one 64-bit word, states below):
 *
 *   bit 0  ASSIGNED   the frame belongs to a guest (or the firmware); the
 *                     host may not write it (RMP violation)
 *   bit 1  SIZE_2M    a 2M entry: only at a 2M-aligned frame; it governs the
 *                     whole 2M region (the other 511 entries are unassigned
 *                     and unused while it exists)
 *   bit 2  IMMUTABLE  only the firmware may change it (launch pages between
 *                     RMPUPDATE and LAUNCH_UPDATE; VMSA pages)
 *   bit 3  VALIDATED  the guest has PVALIDATEd it; cleared by every RMPUPDATE
 *   bit 4  VMSA       a vCPU's save area (in use: RMPUPDATE gives FAIL_INUSE)
 *   bits 12-51        the guest physical address (page aligned)
 *   bits 52-63        the ASID of the owning guest
 *
 * States of a frame (the "effective" entry is the 2M entry of its region
 * when there is one, else its own):
 *   hypervisor         unassigned: the host may use it
 *   pre-guest          assigned, immutable (a launch page before the
 *                      firmware measured it)
 *   guest-invalid      assigned, not validated (after RMPUPDATE)
 *   guest-valid        assigned, validated (after PVALIDATE or LAUNCH_UPDATE)
 *   vmsa               assigned, immutable, validated, VMSA
 *
 * Locking: one mutex per 2M region of frames, hashed over RMP_LOCKS
 * stripes (rmp.c). RMPUPDATE, PSMASH and PVALIDATE take the stripe of
 * their frame's region, so the 4K/2M overlap checks see a region that
 * cannot change under them. Reads (the host-write check, the guest's
 * access check, queries) take no lock: entries are atomic words, as the
 * hardware reads them. No other lock is taken inside a stripe; the callers
 * hold theirs (guest_memfd stripes, the MMU lock) around these calls, so
 * the RMP's locks are innermost.
 */
#ifndef PM_MODELS_SNP_RMP_H
#define PM_MODELS_SNP_RMP_H

#include "lib/common.h"

#define RMP_ASSIGNED   (1ULL << 0)
#define RMP_SIZE_2M    (1ULL << 1)
#define RMP_IMMUTABLE  (1ULL << 2)
#define RMP_VALIDATED  (1ULL << 3)
#define RMP_VMSA       (1ULL << 4)
#define RMP_GPA_MASK   0x000FFFFFFFFFF000ULL
#define RMP_ASID_SHIFT 52
#define RMP_MAX_ASID   0xFFFU

#define RMP_PAGES_2M   512ULL

/* Return codes of RMPUPDATE and PSMASH (as the instructions report them). */
enum rmp_result {
	RMP_OK = 0,
	RMP_FAIL_INPUT = 1,        /* bad operand: alignment, frame outside the RMP, ASID */
	RMP_FAIL_PERMISSION = 2,   /* invalid transition: the entry is immutable */
	RMP_FAIL_INUSE = 3,        /* the page is in use (a VMSA of a vCPU) */
	RMP_FAIL_OVERLAP = 4,      /* a 4K update inside a 2M entry, or a 2M update
	                            * over assigned 4K entries */
	RMP_FAIL_BADADDR = 5,      /* PSMASH of a frame that is not a 2M entry */
};

/* Results of PVALIDATE (the instruction sets rFLAGS.CF for NOUPDATE; here
 * it is a code of its own). RMP_FAULT_* are not instruction results but the
 * #NPF the access takes, which KVM handles (rmp.c explains). */
enum pvalidate_result {
	PVALIDATE_OK = 0,
	PVALIDATE_FAIL_INPUT = 1,          /* a 2M request at a gpa not 2M-aligned */
	PVALIDATE_FAIL_SIZEMISMATCH = 6,   /* 2M request on 4K entries (or on a frame
	                                    * no 2M entry can start at) */
	PVALIDATE_NOUPDATE = 255,          /* the bit already had that value */
	RMP_FAULT_SIZE = 0x100,            /* 4K request inside a 2M entry: #NPF
	                                    * (RMP size mismatch); KVM smashes */
	RMP_FAULT_OWNER = 0x101,           /* not assigned to this guest at this
	                                    * gpa: #NPF (RMP violation) */
};

/* What RMPUPDATE writes. */
struct rmp_state {
	bool assigned;
	bool size_2m;
	bool immutable;
	uint64_t gpa;
	unsigned int asid;
};

struct rmp_stats {
	uint64_t assigned_4k;      /* assigned entries now, by size */
	uint64_t assigned_2m;
	uint64_t rmpupdates;       /* successful RMPUPDATEs */
	uint64_t rmpupdate_fails;
	uint64_t psmash;           /* successful PSMASHes */
	uint64_t pvalidates;       /* successful PVALIDATEs (validate or rescind) */
	uint64_t violations;       /* host writes to assigned frames */
	uint64_t reads_refused;    /* host reads of assigned frames (ciphertext) */
	pm_pfn_t first_violation;  /* frame of the first violation, or PM_PFN_INVALID */
};

/* The process-wide RMP: created with the first user over the pool as it is
 * then, destroyed with the last (which must find nothing assigned). While
 * it exists it is registered as the pool's host guard. 0 or -ENOMEM/-EBUSY. */
int rmp_get(void);
void rmp_put(void);
/* Live users of the RMP (tests). */
unsigned int rmp_users(void);

/* The instructions. */
enum rmp_result rmp_update(pm_pfn_t pfn, const struct rmp_state *st);
enum rmp_result rmp_psmash(pm_pfn_t pfn);
/* PVALIDATE by guest `asid` of its page gpa (4K or 2M) backed by pfn. */
enum pvalidate_result rmp_pvalidate(pm_pfn_t pfn, unsigned int asid, uint64_t gpa, bool size_2m,
				    bool validate);

/* The hardware check of a host access to frames [pfn, pfn + n): 0, or
 * -EFAULT when one is assigned (a write is an RMP violation: counted, and
 * the first one's frame recorded; a read would give ciphertext: counted). */
int rmp_host_access(pm_pfn_t pfn, uint64_t n, bool write);

/* Queries (lock-free reads, like the hardware's RMP lookups). */
uint64_t rmp_entry(pm_pfn_t pfn);            /* the frame's own entry */
uint64_t rmp_effective(pm_pfn_t pfn);        /* the entry that governs it */
bool rmp_region_unassigned(pm_pfn_t pfn2m);  /* all 512 entries of the region */
/* May guest asid access its private page gpa in frame pfn (assigned to it
 * at that gpa and validated)? */
bool rmp_guest_may_access(pm_pfn_t pfn, unsigned int asid, uint64_t gpa);
void rmp_get_stats(struct rmp_stats *st);

/* Firmware-only transitions (psp.c): set VALIDATED and clear IMMUTABLE
 * (LAUNCH_UPDATE: pre-guest -> guest-valid); make a page a VMSA; reclaim
 * an immutable page (SNP_PAGE_RECLAIM: back to hypervisor-owned). */
enum rmp_result rmp_fw_launch_validate(pm_pfn_t pfn);
enum rmp_result rmp_fw_make_vmsa(pm_pfn_t pfn, uint64_t gpa, unsigned int asid);
enum rmp_result rmp_fw_reclaim(pm_pfn_t pfn);

static inline bool rmp_is_assigned(uint64_t e) { return e & RMP_ASSIGNED; }
static inline bool rmp_is_2m(uint64_t e) { return e & RMP_SIZE_2M; }
static inline bool rmp_is_immutable(uint64_t e) { return e & RMP_IMMUTABLE; }
static inline bool rmp_is_validated(uint64_t e) { return e & RMP_VALIDATED; }
static inline bool rmp_is_vmsa(uint64_t e) { return e & RMP_VMSA; }
static inline uint64_t rmp_gpa(uint64_t e) { return e & RMP_GPA_MASK; }
static inline unsigned int rmp_asid(uint64_t e) { return (unsigned int)(e >> RMP_ASID_SHIFT); }

#endif

/* SPDX-License-Identifier: MIT */
/*
 * The simulated AMD Secure Processor (PSP) firmware: an SNP guest's launch
 * context (SNP_LAUNCH_START, SNP_LAUNCH_UPDATE, SNP_LAUNCH_FINISH, the
 * VMSA at launch end, SNP_PAGE_RECLAIM) and the launch digest.
 *
 * The digest is AMD's PAGE_INFO chain (SNP firmware ABI, recomputed by the
 * public tool sev-snp-measure): it starts as 48 zero bytes, and for every
 * 4K page measured, in order,
 *   digest = SHA-384(PAGE_INFO), PAGE_INFO = 112 bytes:
 *     [0,48)    the current digest
 *     [48,96)   CONTENTS: SHA-384 of the 4096 page bytes for NORMAL and VMSA
 *               pages, 48 zero bytes for ZERO, UNMEASURED, SECRETS, CPUID
 *     [96,98)   LENGTH = 0x70, little endian
 *     98        PAGE_TYPE
 *     99        IMI_PAGE = 0
 *     100-102   VMPL3, VMPL2, VMPL1 permissions = 0
 *     103       reserved = 0
 *     [104,112) the page's GPA, little endian
 * (psp_measure_page computes one step; tests check it against bytes built
 * by hand.)
 *
 * States of a launch context:
 *   NONE --launch_start--> LAUNCH --launch_finish--> RUNNING
 * LAUNCH_UPDATE only in LAUNCH; the digest is final (readable) in RUNNING.
 *
 * Locking: each context has its own mutex, taken by every command on it
 * (the firmware runs one command at a time per guest); the RMP's stripes
 * nest inside it. The firmware writes guest pages itself (ZERO, SECRETS,
 * VMSA): it is not the host, and its writes are not RMP-checked.
 */
#ifndef PM_MODELS_SNP_PSP_H
#define PM_MODELS_SNP_PSP_H

#include <pthread.h>
#include "lib/common.h"

#define PSP_DIGEST_SIZE 48
#define PSP_VMSA_GPA    0xFFFFFFFFF000ULL   /* where VMSAs are measured */

/* Firmware status codes (SEV_RET_*, include/uapi/linux/psp-sev.h). */
enum psp_status {
	PSP_SUCCESS = 0,
	PSP_INVALID_GUEST_STATE = 2,
	PSP_POLICY_FAILURE = 7,
	PSP_INVALID_PARAM = 22,
	PSP_INVALID_PAGE_STATE = 26,
	PSP_INVALID_PAGE_OWNER = 28,
};

/* Page types of SNP_LAUNCH_UPDATE (as KVM_SEV_SNP_PAGE_TYPE_*). */
enum psp_page_type {
	PSP_PAGE_NORMAL = 1, PSP_PAGE_VMSA = 2, PSP_PAGE_ZERO = 3, PSP_PAGE_UNMEASURED = 4,
	PSP_PAGE_SECRETS = 5, PSP_PAGE_CPUID = 6,
};

enum psp_launch_state { PSP_GUEST_NONE, PSP_GUEST_LAUNCH, PSP_GUEST_RUNNING };

struct psp_guest {
	pthread_mutex_t lock;
	unsigned int asid;                 /* immutable */
	enum psp_launch_state state;       /* lock */
	uint64_t policy;                   /* lock */
	uint8_t digest[PSP_DIGEST_SIZE];   /* lock */
	uint64_t pages_measured;           /* lock: PAGE_INFO steps */
};

void psp_guest_init(struct psp_guest *g, unsigned int asid);
void psp_guest_destroy(struct psp_guest *g);

/* One PAGE_INFO step: digest = SHA-384(digest | contents | ... | gpa);
 * page is the page's 4096 bytes (read only for NORMAL and VMSA). */
void psp_measure_page(uint8_t digest[PSP_DIGEST_SIZE], const void *page, uint8_t type, uint64_t gpa);

/* SNP_LAUNCH_START. */
enum psp_status psp_launch_start(struct psp_guest *g, uint64_t policy);
/* SNP_LAUNCH_UPDATE of one 4K page: frame pfn must be assigned to the
 * guest at gpa, immutable, not validated (pre-guest). ZERO pages are
 * zeroed, SECRETS pages filled by the firmware; the page is measured and
 * becomes guest-valid. */
enum psp_status psp_launch_update(struct psp_guest *g, pm_pfn_t pfn, uint64_t gpa, uint8_t type);
/* The VMSA of one vCPU at launch end: frame pfn (hypervisor-owned) becomes
 * a VMSA page of the guest and is measured at PSP_VMSA_GPA. */
enum psp_status psp_launch_vmsa(struct psp_guest *g, pm_pfn_t pfn);
/* SNP_LAUNCH_FINISH. */
enum psp_status psp_launch_finish(struct psp_guest *g);
/* The launch digest: PSP_SUCCESS in RUNNING, else PSP_INVALID_GUEST_STATE. */
enum psp_status psp_get_digest(struct psp_guest *g, uint8_t out[PSP_DIGEST_SIZE]);
/* SNP_PAGE_RECLAIM: an immutable (failed launch) or VMSA page loses those
 * bits, still assigned; KVM then makes it hypervisor-owned. */
enum psp_status psp_page_reclaim(pm_pfn_t pfn);

#endif

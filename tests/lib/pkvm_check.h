/* SPDX-License-Identifier: MIT */
/*
 * The independent checker of pKVM's ownership state, for tests: it knows
 * the encoding documented in src/models/pkvm/hyp_internal.h and nothing of
 * hyp.c. It recomputes who owns each frame from the host stage-2, the
 * hyp's page array and every guest stage-2, and checks the invariants: one
 * owner per page; a SHARED_OWNED page is SHARED_BORROWED on exactly the
 * other side; no host or guest mapping of a page that side neither owns nor
 * borrows; poisoned pages read zero.
 */
#ifndef PM_TESTS_PKVM_CHECK_H
#define PM_TESTS_PKVM_CHECK_H

#include "models/pkvm/hyp_internal.h"

/* Short names for the tests' state tables. */
#define GFN_LIMIT  (1ULL << PM_S2_GFN_BITS)
#define O          PKVM_PAGE_OWNED
#define SO         PKVM_PAGE_SHARED_OWNED
#define SB         PKVM_PAGE_SHARED_BORROWED
#define NP         PKVM_NOPAGE
#define PSN        PKVM_POISONED

/* One frame, as the page tables say. */
struct fview {
	int8_t host;              /* the host's state; NOPAGE for an annotation */
	int8_t owner;             /* the annotation's owner (PKVM_ID_*), if NOPAGE */
	uint16_t owner_vm;
	gfn_t owner_gfn;
	int8_t hyp;
	uint32_t pins;
	uint16_t count;
	bool poisoned;
	uint16_t g_owned, g_shared_owned, g_borrowed;  /* guest leaves mapping it */
	uint16_t g_vm;            /* the guest that owns it (g_owned + g_shared_owned == 1) */
	gfn_t g_gfn;
	int8_t g_level;
};

/* A guest stage-2 entry that is not empty: a leaf, or a POISONED mark. */
struct gleaf {
	unsigned int vm;
	gfn_t gfn;
	uint64_t nr;
	pm_pfn_t pfn;             /* PM_PFN_INVALID for POISONED */
	int state;
	unsigned int prot;
};

struct world {
	uint64_t nr_frames;
	struct fview *f;
	struct gleaf *leaves;
	size_t nleaves, cap;
	unsigned int violations;
};

/* Quiet: violations are counted but not printed (a test that breaks
 * invariants on purpose). */
extern bool checker_quiet;

/* Fills *w and returns the number of violations; check_world takes every
 * hyp lock, check_world_locked needs them held. world_free releases *w. */
unsigned int check_world_locked(struct pkvm_hyp *hyp, struct world *w);
unsigned int check_world(struct pkvm_hyp *hyp, struct world *w);
void world_free(struct world *w);
/* Asserts (cmocka) that the checker finds no violation now. */
void assert_consistent(struct pkvm_hyp *hyp);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * An independent checker of the simulated RMM's granule states: it
 * recomputes what every granule must be from the realms' translation tables
 * alone (walked with pgtable.c's walker, decoded from the entry format
 * documented in src/models/cca/rmm.h, not with the RMM's own helpers) and
 * from the RDs and RECs the caller says exist, then compares with the
 * RMM's granule descriptors:
 *  - a table of a realm's RTT is RTT, and its refcount is the number of its
 *    live entries (tables and assigned entries);
 *  - every 4K page an assigned protected entry maps is DATA, mapped once;
 *    the RTT's count of valid protected leaves by size (the mappings the
 *    VM's statistics report) is what the walk finds;
 *  - each listed RD is RD with one reference per listed REC of it; each
 *    listed REC is REC;
 *  - every other granule of [first, first + n) is NS, or DELEGATED and all
 *    zero (the invariant of an unlocked DELEGATED granule).
 * Call it while no RMI command runs.
 */
#ifndef PM_TESTS_CCA_CHECK_H
#define PM_TESTS_CCA_CHECK_H

#include <stdint.h>
#include "lib/common.h"

struct cca_check_realm {
	uint64_t rd;             /* PA of the RD */
	unsigned int s2sz;
	const uint64_t *recs;    /* PAs of its RECs */
	unsigned int nr_recs;
};

struct cca_check_result {
	uint64_t rtt, data, delegated, ns;   /* granules found in each state */
	char error[256];                     /* empty when consistent */
};

/* Checks every granule of the pool against the realms; true if consistent. */
bool cca_check(const struct cca_check_realm *realms, unsigned int nr, struct cca_check_result *res);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * The data the SNP and realm run scenarios write into guest pages and
 * check there: a value per 8-byte address and seed, at the first and last
 * word of each page, reached through an alias bit of the model (SNP's
 * C-bit, the realm's unprotected half). Pure functions over the guest API;
 * no state.
 */
#include <privmem/guest.h>
#include "run.h"

#define PAGE 4096ULL

uint64_t run_pattern(uint64_t a, uint64_t seed)
{
	return ((a >> 3) * 0x9E3779B97F4A7C15ULL ^ seed * 0xC2B2AE3D27D4EB4FULL) | 1;
}

void run_guest_stamp(struct pm_guest *g, uint64_t gpa, uint64_t n, uint64_t seed, uint64_t alias)
{
	for (uint64_t p = 0; p < n; p++) {
		uint64_t a = gpa + p * PAGE;

		pm_guest_write64(g, a | alias, run_pattern(a, seed));
		pm_guest_write64(g, (a + PAGE - 8) | alias, run_pattern(a + PAGE - 8, seed));
	}
}

bool run_guest_pages_hold(struct pm_guest *g, uint64_t gpa, uint64_t n, uint64_t seed, bool zero,
			  uint64_t alias)
{
	for (uint64_t p = 0; p < n; p++) {
		uint64_t a = gpa + p * PAGE;

		if (pm_guest_read64(g, a | alias) != (zero ? 0 : run_pattern(a, seed)) ||
		    pm_guest_read64(g, (a + PAGE - 8) | alias) !=
			    (zero ? 0 : run_pattern(a + PAGE - 8, seed)))
			return false;
	}
	return true;
}

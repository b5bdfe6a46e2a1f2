/* SPDX-License-Identifier: MIT */
/*
 * Guest code (privmem/guest.h): an SNP guest's conversions in the order
 * Linux guests follow (arch/x86/coco/sev): to private, PSC then PVALIDATE;
 * to shared, PVALIDATE (rescind) then PSC. Ranges are cut into PSC
 * requests of up to `batch` entries, 2M entries where a 2M-aligned block
 * lies inside the range; a 2M PVALIDATE that meets 4K RMP entries
 * (SIZEMISMATCH) is retried as 512 4K ones.
 */
#include <privmem/guest.h>
#include "vcpu/vcpu.h"

#define PVALIDATE_ERROR (1ULL << 63)

/* ---- the SNP guest calls: on another VM type the guest ends ---- */

static void require_snp(struct pm_guest *g, const char *call)
{
	pm_guest_require_vm_type(g, KVM_X86_SNP_VM, call, "an SEV-SNP");
}

long pm_guest_snp_pvalidate(struct pm_guest *g, uint64_t gpa, bool size_2m, bool validate)
{
	require_snp(g, "pm_guest_snp_pvalidate");
	return pm_guest_model_call(g, PM_SNP_CALL_PVALIDATE, gpa, size_2m, validate);
}

long pm_guest_snp_psc(struct pm_guest *g, uint64_t desc_gpa)
{
	require_snp(g, "pm_guest_snp_psc");
	return pm_guest_model_call(g, PM_SNP_CALL_PSC, desc_gpa, 0, 0);
}

long pm_guest_snp_psc_msr(struct pm_guest *g, uint64_t gpa, unsigned int op)
{
	require_snp(g, "pm_guest_snp_psc_msr");
	return pm_guest_model_call(g, PM_SNP_CALL_PSC_MSR, gpa, op, 0);
}

/* ---- conversions ---- */

/* The entry covering gfn in [gfn, end): 2M where possible. */
static bool chunk_is_2m(uint64_t gfn, uint64_t end)
{
	return (gfn & 511) == 0 && gfn + 512 <= end;
}

static long pvalidate_range(struct pm_guest *g, uint64_t gfn, uint64_t end, bool validate)
{
	while (gfn < end) {
		bool huge = chunk_is_2m(gfn, end);
		long r = pm_guest_snp_pvalidate(g, (gfn << 12) | PM_SNP_C_BIT, huge, validate);

		if (r == PM_SNP_PVALIDATE_FAIL_SIZEMISMATCH && huge) {
			r = 0;
			for (uint64_t i = 0; i < 512 && !r; i++)
				r = pm_guest_snp_pvalidate(g, ((gfn + i) << 12) | PM_SNP_C_BIT, false, validate);
		}
		if (r)
			return (long)(PVALIDATE_ERROR | (uint64_t)r);
		gfn += huge ? 512 : 1;
	}
	return 0;
}

/* Writes one PSC request for [*gfn, end) (up to batch entries), sends it,
 * and advances *gfn past what it covered. */
static long psc_batch(struct pm_guest *g, uint64_t *gfn, uint64_t end, unsigned int op,
		      uint64_t desc, unsigned int batch)
{
	unsigned int n = 0;

	while (*gfn < end && n < batch) {
		bool huge = chunk_is_2m(*gfn, end);

		pm_guest_write64(g, desc + 8 + 8ULL * n++, pm_snp_psc_entry(*gfn, op, huge));
		*gfn += huge ? 512 : 1;
	}
	pm_guest_write64(g, desc, (uint64_t)(n - 1) << 16);   /* cur_entry 0, end_entry */
	return pm_guest_snp_psc(g, desc);
}

static long convert(struct pm_guest *g, uint64_t gpa, uint64_t npages, uint64_t desc,
		    unsigned int batch, bool to_private)
{
	uint64_t gfn = gpa >> 12, end = gfn + npages;

	if (!batch || batch > PM_SNP_PSC_MAX_ENTRIES)
		batch = PM_SNP_PSC_MAX_ENTRIES;
	while (gfn < end) {
		uint64_t first = gfn;
		long r;

		if (!to_private) {
			/* Find the batch's extent, rescind, then change state. */
			uint64_t probe = gfn;

			for (unsigned int n = 0; probe < end && n < batch; n++)
				probe += chunk_is_2m(probe, end) ? 512 : 1;
			r = pvalidate_range(g, first, probe, false);
			if (r)
				return r;
		}
		r = psc_batch(g, &gfn, end, to_private ? PM_SNP_PSC_OP_PRIVATE : PM_SNP_PSC_OP_SHARED,
			      desc, batch);
		if (r)
			return r;
		if (to_private) {
			r = pvalidate_range(g, first, gfn, true);
			if (r)
				return r;
		}
	}
	return 0;
}

/* The type is checked before the first descriptor is written: on another
 * VM type that write could itself end the guest in another way. */
long pm_guest_snp_make_private(struct pm_guest *g, uint64_t gpa, uint64_t npages, uint64_t desc_gpa,
			       unsigned int batch)
{
	require_snp(g, "pm_guest_snp_make_private");
	return convert(g, gpa, npages, desc_gpa, batch, true);
}

long pm_guest_snp_make_shared(struct pm_guest *g, uint64_t gpa, uint64_t npages, uint64_t desc_gpa,
			      unsigned int batch)
{
	require_snp(g, "pm_guest_snp_make_shared");
	return convert(g, gpa, npages, desc_gpa, batch, false);
}

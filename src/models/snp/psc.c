/* SPDX-License-Identifier: MIT */
/*
 * Page State Change requests from SNP guests (KVM's side, as upstream's
 * snp_begin_psc / snp_complete_one_psc), run on the vCPU in guest context.
 *
 * The descriptor lives in a shared guest page, as on hardware: a header
 * {u16 cur_entry, u16 end_entry, u32 reserved} and entries {cur_page:12,
 * gfn:40, operation:4, pagesize:1} (privmem/guest.h). KVM reads it from
 * guest memory and writes its progress back there:
 *  - end_entry >= 253 is INVALID_HDR; an entry whose cur_page exceeds its
 *    size, whose gfn is not aligned to its size, or whose operation is none
 *    of PRIVATE, SHARED, PSMASH, UNSMASH is INVALID_ENTRY; KVM_HC_MAP_GPA_
 *    RANGE exits not enabled, or the VMM failing one, is GENERIC;
 *  - from cur_entry on, entries already complete are skipped (cur_entry
 *    advances over them); a partly done 2M entry (cur_page != 0) goes on as
 *    4K pages from cur_page; the entries after it that continue the range
 *    (same operation, contiguous gfns, same size, not started) are merged
 *    into one KVM_HC_MAP_GPA_RANGE exit (args: gpa, pages, ENCRYPTED or
 *    DECRYPTED | the 2M or 4K hint);
 *  - when the VMM completes the exit, each merged entry's cur_page becomes
 *    its size and cur_entry moves past them, so a request the VMM failed
 *    half way (or that the guest re-issues) resumes where it stopped;
 *  - PSMASH and UNSMASH entries are completed without an exit (KVM leaves
 *    page sizes to the RMP's own faults).
 * The MSR protocol converts one 4K page per exit.
 */
#include <privmem/guest.h>
#include "models/snp/snp.h"
#include "vcpu/vcpu.h"

#define PSC_ENTRY_CUR_PAGE 0xfffULL

struct psc_range {
	unsigned int first, count;   /* entries [first, first + count) */
	uint64_t gfn, npages;
	unsigned int op;
	bool size_2m;
};

static inline struct pm_guest *as_guest(struct pm_vcpu *v)
{
	return (struct pm_guest *)v;
}

static uint64_t psc_read_entry(struct pm_vcpu *v, uint64_t desc, unsigned int idx)
{
	return pm_guest_read64(as_guest(v), desc + 8 + 8ULL * idx);
}

static void psc_set_cur_entry(struct pm_vcpu *v, uint64_t desc, unsigned int cur)
{
	uint64_t hdr = pm_guest_read64(as_guest(v), desc);

	pm_guest_write64(as_guest(v), desc, (hdr & ~0xffffULL) | cur);
}

static bool psc_op_valid(unsigned int op)
{
	return op >= PM_SNP_PSC_OP_PRIVATE && op <= PM_SNP_PSC_OP_UNSMASH;
}

/* The remaining pages of entry e: its gfn and count from cur_page on (a
 * partly done 2M entry continues as 4K); 0, or INVALID_ENTRY. */
static uint64_t psc_entry_rest(uint64_t e, uint64_t *gfn, uint64_t *npages, bool *size_2m)
{
	uint64_t size = pm_snp_psc_2m(e) ? 512 : 1, cur = pm_snp_psc_cur_page(e);

	if (cur > size || !PM_ALIGNED(pm_snp_psc_gfn(e), size) || !psc_op_valid(pm_snp_psc_op(e)))
		return PM_SNP_PSC_ERROR_INVALID_ENTRY;
	*gfn = pm_snp_psc_gfn(e) + cur;
	*npages = size - cur;
	*size_2m = pm_snp_psc_2m(e) && !cur;
	return 0;
}

/* Finds the next range from *cur (skipping complete entries, advancing
 * cur_entry over them); r->count == 0 when none is left. */
static uint64_t psc_next_range(struct pm_vcpu *v, uint64_t desc, unsigned int *cur, unsigned int end,
			       struct psc_range *r)
{
	uint64_t e = 0, err;

	r->count = 0;
	for (; *cur <= end; (*cur)++, psc_set_cur_entry(v, desc, *cur)) {
		e = psc_read_entry(v, desc, *cur);
		err = psc_entry_rest(e, &r->gfn, &r->npages, &r->size_2m);
		if (err)
			return err;
		if (r->npages)
			break;
	}
	if (*cur > end)
		return 0;
	r->first = *cur;
	r->count = 1;
	r->op = pm_snp_psc_op(e);
	for (unsigned int i = *cur + 1; i <= end; i++) {
		uint64_t n = psc_read_entry(v, desc, i);

		if (pm_snp_psc_op(n) != r->op || pm_snp_psc_gfn(n) != r->gfn + r->npages ||
		    pm_snp_psc_cur_page(n) || pm_snp_psc_2m(n) != r->size_2m)
			break;
		r->count++;
		r->npages += r->size_2m ? 512 : 1;
	}
	return 0;
}

/* The range is done: each entry's cur_page is its size, cur_entry past it. */
static void psc_complete_range(struct pm_vcpu *v, uint64_t desc, const struct psc_range *r,
			       unsigned int *cur)
{
	for (unsigned int i = r->first; i < r->first + r->count; i++) {
		uint64_t e = psc_read_entry(v, desc, i);

		e = (e & ~PSC_ENTRY_CUR_PAGE) | (pm_snp_psc_2m(e) ? 512 : 1);
		pm_guest_write64(as_guest(v), desc + 8 + 8ULL * i, e);
	}
	*cur = r->first + r->count;
	psc_set_cur_entry(v, desc, *cur);
}

static long psc_convert(struct pm_vcpu *v, const struct psc_range *r)
{
	uint64_t attrs = (r->op == PM_SNP_PSC_OP_PRIVATE ? KVM_MAP_GPA_RANGE_ENCRYPTED
						       : KVM_MAP_GPA_RANGE_DECRYPTED) |
			 (r->size_2m ? KVM_MAP_GPA_RANGE_PAGE_SZ_2M : KVM_MAP_GPA_RANGE_PAGE_SZ_4K);

	snp_count(to_snp(v->vm), SNP_STAT_PSC_EXITS, 1);
	snp_count(to_snp(v->vm), SNP_STAT_PSC_PAGES, r->npages);
	return pm_vcpu_map_gpa_range_exit(v, r->gfn << PM_PAGE_SHIFT, r->npages, attrs);
}

static uint64_t psc_run(struct pm_vcpu *v, uint64_t desc)
{
	struct snp_vm *s = to_snp(v->vm);
	uint64_t hdr = pm_guest_read64(as_guest(v), desc), err;
	unsigned int cur = hdr & 0xffff, end = (hdr >> 16) & 0xffff;
	struct psc_range r;

	if (!(atomic_load(&v->vm->hypercall_exit_enabled) & (1ULL << KVM_HC_MAP_GPA_RANGE)))
		return PM_SNP_PSC_ERROR_GENERIC;
	if (end >= PM_SNP_PSC_MAX_ENTRIES)
		return PM_SNP_PSC_ERROR_INVALID_HDR;
	for (;;) {
		err = psc_next_range(v, desc, &cur, end, &r);
		if (err || !r.count)
			return err;
		snp_count(s, SNP_STAT_PSC_ENTRIES, r.count);
		if ((r.op == PM_SNP_PSC_OP_PRIVATE || r.op == PM_SNP_PSC_OP_SHARED) && psc_convert(v, &r))
			return PM_SNP_PSC_ERROR_GENERIC;
		psc_complete_range(v, desc, &r, &cur);
	}
}

long snp_psc_request(struct pm_vcpu *v, uint64_t desc_gpa)
{
	struct snp_vm *s = to_snp(v->vm);
	uint64_t r;

	snp_count(s, SNP_STAT_PSC_REQUESTS, 1);
	r = psc_run(v, desc_gpa & ~PM_SNP_C_BIT);
	if (r)
		snp_count(s, SNP_STAT_PSC_ERRORS, 1);
	return (long)r;
}

long snp_psc_msr(struct pm_vcpu *v, uint64_t gpa, uint64_t op)
{
	struct psc_range r = {
		.gfn = (gpa & ~PM_SNP_C_BIT) >> PM_PAGE_SHIFT, .npages = 1, .op = (unsigned int)op,
	};

	snp_count(to_snp(v->vm), SNP_STAT_PSC_MSR, 1);
	if (op != PM_SNP_PSC_OP_PRIVATE && op != PM_SNP_PSC_OP_SHARED)
		return PM_SNP_PSC_ERROR_GENERIC;
	return psc_convert(v, &r) ? PM_SNP_PSC_ERROR_GENERIC : 0;
}

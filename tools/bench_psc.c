/* SPDX-License-Identifier: MIT */
/*
 * privmem bench psc: SEV-SNP page state changes end to end, with full
 * 253-entry PSC requests (the most the hypervisor accepts): the guest
 * writes the descriptor into a shared page and issues the request, KVM
 * validates and merges it into KVM_HC_MAP_GPA_RANGE exits, the VMM converts
 * (attributes, and a discard of the other copy), the guest resumes.
 *
 * Figures, for 4K entries (4K guest_memfd pages) and 2M entries (2M pages),
 * in pages per second, over SIZE (default 506 MiB = 253 x 2M):
 *  - psc: PSC requests to private, then back to shared (no page is touched,
 *    so no frame is allocated: the protocol and the conversions alone);
 *    for 4K also with no two entries adjacent (one exit per entry);
 *  - accept: to private with PVALIDATE (pages are faulted in, made
 *    guest-owned in the RMP, validated), then rescinded and back to shared
 *    (the VMM's discard gives the frames back in the RMP and scrubs them);
 *  - zeroing: memset of the same memory, the limit of any conversion that
 *    must scrub what it frees.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "bench.h"

enum { PH_PSC, PH_SCATTERED, PH_ACCEPT, PH_NR };

struct psc_job {
	uint64_t size;           /* the region [0, size) */
	uint64_t desc;           /* the descriptor page, shared, after the region */
	bool huge;               /* 2M entries (and 2M pages), else 4K */
	unsigned int reps;
	struct bench_marks mk;
	uint64_t requests, exits;
};

/* A range in PSC requests of 253 entries: 2M entries where the range
 * allows (if huge), else 4K ones; stride 2 takes every other page, so no
 * two entries merge (one exit each). No PVALIDATE. */
static long psc_range(struct pm_guest *g, struct psc_job *j, unsigned int op, uint64_t stride)
{
	uint64_t gfn = 0, end = j->size >> 12;

	while (gfn < end) {
		unsigned int n = 0;
		long r;

		while (gfn < end && n < PM_SNP_PSC_MAX_ENTRIES) {
			bool huge = j->huge && stride == 1 && !(gfn & 511) && gfn + 512 <= end;

			pm_guest_write64(g, j->desc + 8 + 8ULL * n++, pm_snp_psc_entry(gfn, op, huge));
			gfn += huge ? 512 : stride;
		}
		pm_guest_write64(g, j->desc, (uint64_t)(n - 1) << 16);
		r = pm_guest_snp_psc(g, j->desc);
		if (r)
			return r;
	}
	return 0;
}

/* PVALIDATE (or rescind) the whole range in pages of the entries' size. */
static long pvalidate_all(struct pm_guest *g, struct psc_job *j, bool validate)
{
	uint64_t step = j->huge ? PAGE_2M : PAGE_4K;

	for (uint64_t a = 0; a < j->size; a += step) {
		long r = pm_guest_snp_pvalidate(g, a | PM_SNP_C_BIT, j->huge, validate);

		if (r)
			return r;
	}
	return 0;
}

static void guest_psc_main(struct pm_guest *g, void *arg)
{
	struct psc_job *j = arg;

	for (unsigned int rep = 0; rep < j->reps; rep++) {
		pm_guest_sync(g, BENCH_MARK(PH_PSC, 0));
		PM_GUEST_ASSERT(g, psc_range(g, j, PM_SNP_PSC_OP_PRIVATE, 1) == 0);
		PM_GUEST_ASSERT(g, psc_range(g, j, PM_SNP_PSC_OP_SHARED, 1) == 0);
		pm_guest_sync(g, BENCH_MARK(PH_PSC, 1));
		if (!j->huge) {
			pm_guest_sync(g, BENCH_MARK(PH_SCATTERED, 0));
			PM_GUEST_ASSERT(g, psc_range(g, j, PM_SNP_PSC_OP_PRIVATE, 2) == 0);
			PM_GUEST_ASSERT(g, psc_range(g, j, PM_SNP_PSC_OP_SHARED, 2) == 0);
			pm_guest_sync(g, BENCH_MARK(PH_SCATTERED, 1));
		}
		/* Linux's order: PSC then validate; rescind then PSC. */
		pm_guest_sync(g, BENCH_MARK(PH_ACCEPT, 0));
		PM_GUEST_ASSERT(g, psc_range(g, j, PM_SNP_PSC_OP_PRIVATE, 1) == 0);
		PM_GUEST_ASSERT(g, pvalidate_all(g, j, true) == 0);
		PM_GUEST_ASSERT(g, pvalidate_all(g, j, false) == 0);
		PM_GUEST_ASSERT(g, psc_range(g, j, PM_SNP_PSC_OP_SHARED, 1) == 0);
		pm_guest_sync(g, BENCH_MARK(PH_ACCEPT, 1));
	}
}

static int psc_series(struct result *r, struct psc_job *j, uint64_t gmem_flags)
{
	struct pm_model_stats st;
	struct vmm m;
	int ret;

	/* Guest RAM: the region, then a 2M block for the descriptor. */
	if (bench_vm_create(r, &m, KVM_X86_SNP_VM, j->size + PAGE_2M, gmem_flags))
		return -1;
	ret = bench_vm_run(r, &m, guest_psc_main, j, &j->mk);
	if (pm_kvm_ioctl(m.vm, PM_KVM_GET_MODEL_STATS, &st) == 0) {
		j->requests = vmm_model_stat(&st, "psc_requests");
		j->exits = vmm_model_stat(&st, "psc_exits");
		if (vmm_model_stat(&st, "rmp_violations"))
			result_fail(r, "RMP violations during the benchmark");
	}
	vmm_destroy(&m);
	return ret;
}

void bench_psc(const struct bench_opts *o, struct result *r)
{
	static const struct { const char *name; uint64_t flags; } g[2] = {
		{ "4K", PM_GUEST_MEMFD_FLAG_NO_HUGE }, { "2M", PM_GUEST_MEMFD_FLAG_NO_1G },
	};
	uint64_t size = r->size & ~(PAGE_2M - 1);
	uint8_t *zbuf = buffer_new(size);
	struct samples sz = { .n = 0 };
	char key[48], label[96];
	struct figure *fz, *fa_fig[2] = { NULL, NULL };

	snprintf(r->title, sizeof(r->title), "SEV-SNP page state changes, 253-entry PSC requests");
	if (!zbuf) {
		result_fail(r, "mmap of the zeroing buffer: %s", strerror(errno));
		return;
	}
	/* Keep the region's memory populated between passes: measure the
	 * conversions, not the OS giving memory back and faulting it in. */
	if (bench_pool_watermark(2 * size + 64 * MIB))
		note(r, "could not raise the pool watermark: passes include returning memory to the OS");
	for (int i = 0; i < 2 && !r->failed; i++) {
		struct psc_job j = { .size = size, .desc = size, .reps = r->reps, .huge = i == 1 };
		double pages = 2.0 * (double)(size >> 12);   /* there and back */
		struct figure *fp, *fs = NULL, *fa;

		snprintf(key, sizeof(key), "psc_%s", g[i].name);
		snprintf(label, sizeof(label), "PSC private + shared, %s entries", g[i].name);
		fp = figure_add(r, key, label, "page", pages, 0);
		if (!j.huge)
			fs = figure_add(r, "psc_4K_scattered", "PSC, 4K entries, none adjacent", "page",
					pages / 2, 0);
		snprintf(key, sizeof(key), "accept_%s", g[i].name);
		snprintf(label, sizeof(label), "PSC + PVALIDATE there and back, %s", g[i].name);
		fa = figure_add(r, key, label, "page", pages, 2.0 * (double)size);
		fa_fig[i] = fa;
		if (psc_series(r, &j, g[i].flags))
			break;
		figure_set(fp, &j.mk.t[PH_PSC]);
		if (fs)
			figure_set(fs, &j.mk.t[PH_SCATTERED]);
		figure_set(fa, &j.mk.t[PH_ACCEPT]);
		snprintf(key, sizeof(key), "exits_per_request_%s", g[i].name);
		snprintf(label, sizeof(label), "exits per PSC request, %s (all kinds above)", g[i].name);
		info_add(r, key, label, j.requests ? (double)j.exits / (double)j.requests : 0, "");
	}
	fz = figure_add(r, "zeroing", "zeroing (memset) the same pages twice", "page",
			2.0 * (double)(size >> 12), 2.0 * (double)size);
	for (unsigned int rep = 0; rep < r->reps; rep++) {
		uint64_t t0 = now_ns();

		memset(zbuf, 0, size);
		clobber(zbuf);
		memset(zbuf, 0, size);
		clobber(zbuf);
		samples_add(&sz, secs_since(t0));
	}
	figure_set(fz, &sz);
	if (!r->failed) {
		ratio_add(r, "accept_4K_vs_zeroing", "PSC + PVALIDATE 4K / zeroing", fa_fig[0], fz, false);
		ratio_add(r, "accept_2M_vs_zeroing", "PSC + PVALIDATE 2M / zeroing", fa_fig[1], fz, false);
	}
	note(r, "PSC: the guest touches no page, so no frame is allocated: the protocol, exits and "
		"attribute changes alone; contiguous entries merge into one exit, scattered ones take "
		"one exit each. PSC + PVALIDATE: to private then validate (fault, prepare: RMPUPDATE), "
		"rescind then to shared (discard: RMPUPDATE to shared, scrub), as Linux guests do.");
	bench_pool_watermark(0);
	buffer_free(zbuf, size);
}

/* SPDX-License-Identifier: MIT */
/*
 * privmem bench tdx: what a TD's lazy acceptance and its conversions cost
 * on the simulated TDX module.
 *  - accept: a fresh TD accepts SIZE of RAM (the EPT violation maps each
 *    page with PAGE.AUG, then TDG.MEM.PAGE.ACCEPT zeroes it), at 4K only
 *    (PM_TDX_NO_HUGE, as upstream) and with 2M private pages, timed around
 *    KVM_RUN; figures per 4K page accepted;
 *  - convert: a 4K private page to shared and back (two MapGPA exits, the
 *    removal through BLOCK, TRACK, a shootdown and REMOVE, then AUG and
 *    ACCEPT again), per round trip.
 * The zeroing reference is memset over the same size.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench.h"
#include "cli.h"

#define CONVERT_ROUNDS 2000

struct tdx_gjob {
	uint64_t size;
	unsigned int rounds;
	bool convert;
	uint64_t t_ns;          /* written by the guest before its last sync */
};

static void guest_tdx_main(struct pm_guest *g, void *arg)
{
	struct tdx_gjob *j = arg;
	uint64_t shared = pm_guest_tdx_shared_bit(g), next, t0 = now_ns();

	if (!j->convert) {
		PM_GUEST_ASSERT(g, pm_guest_tdx_accept_range(g, 0, j->size) == PM_TDX_SUCCESS);
		j->t_ns = now_ns() - t0;
		return;
	}
	PM_GUEST_ASSERT(g, pm_guest_tdx_accept_range(g, 0, PAGE_4K) == PM_TDX_SUCCESS);
	t0 = now_ns();
	for (unsigned int i = 0; i < j->rounds; i++) {
		PM_GUEST_ASSERT(g, pm_guest_tdx_map_gpa(g, shared, PAGE_4K, &next) == PM_TDVMCALL_SUCCESS);
		pm_guest_write64(g, shared, i);
		PM_GUEST_ASSERT(g, pm_guest_tdx_map_gpa(g, 0, PAGE_4K, &next) == PM_TDVMCALL_SUCCESS);
		PM_GUEST_ASSERT(g, pm_guest_tdx_accept(g, 0, PM_TDX_LEVEL_4K) == PM_TDX_SUCCESS);
		pm_guest_write64(g, 0, i);
	}
	j->t_ns = now_ns() - t0;
}

/* One fresh TD of `size` running the job: 0, or -1 (r->error). */
static int tdx_run_once(struct result *r, uint64_t size, bool huge, struct tdx_gjob *j,
			struct pm_model_stats *ts)
{
	struct pm_tdx_config cfg = { .flags = huge ? 0 : PM_TDX_NO_HUGE };
	struct vmm m;
	int ret = -1;

	if (bench_td_create(r, &m, size, 0, &cfg))
		return -1;
	if (!bench_vm_run(r, &m, guest_tdx_main, j, NULL)) {
		pm_kvm_ioctl(m.vm, PM_KVM_GET_MODEL_STATS, ts);
		ret = 0;
	}
	vmm_destroy(&m);
	return ret;
}

static void series(struct result *r, struct figure *f, uint64_t size, bool huge, bool convert,
		   struct pm_model_stats *ts)
{
	struct samples s = { .n = 0 };

	for (unsigned int rep = 0; rep < r->reps && !r->failed; rep++) {
		struct tdx_gjob j = { .size = size, .rounds = CONVERT_ROUNDS, .convert = convert };

		if (tdx_run_once(r, convert ? 2 * MIB : size, huge, &j, ts))
			return;
		samples_add(&s, (double)j.t_ns / 1e9);
	}
	figure_set(f, &s);
}

void bench_tdx(const struct bench_opts *o, struct result *r)
{
	uint64_t size = r->size;
	double pages = (double)(size >> 12);
	struct pm_model_stats ts4 = { 0 }, ts2 = { 0 }, tsc = { 0 };
	struct samples sz = { .n = 0 };
	struct figure *f4, *f2, *fz, *fc;
	uint8_t *zbuf = buffer_new(size);

	snprintf(r->title, sizeof(r->title), "TDX: lazy acceptance and 4K conversions on the simulated module");
	if (!zbuf) {
		result_fail(r, "mmap of the zeroing buffer: %s", strerror(errno));
		return;
	}
	f4 = figure_add(r, "accept_4k", "accept, 4K private pages (NO_HUGE, as upstream)", "page",
			pages, (double)size);
	f2 = figure_add(r, "accept_2m", "accept, 2M private pages where possible", "page", pages,
			(double)size);
	fz = figure_add(r, "zeroing", "zeroing (memset)", "page", pages, (double)size);
	fc = figure_add(r, "convert_4k", "4K private -> shared -> private (MapGPA x2, REMOVE, AUG, ACCEPT)",
			"round trip", CONVERT_ROUNDS, 0);
	series(r, f4, size, false, false, &ts4);
	series(r, f2, size, true, false, &ts2);
	series(r, fc, 0, true, true, &tsc);
	for (unsigned int rep = 0; rep < r->reps; rep++) {
		uint64_t t0 = now_ns();

		memset(zbuf, (int)rep + 1, size);
		clobber(zbuf);
		samples_add(&sz, secs_since(t0));
	}
	figure_set(fz, &sz);
	buffer_free(zbuf, size);
	if (r->failed)
		return;
	ratio_add(r, "accept_2m_vs_4k", "accept: 2M pages vs 4K pages (speedup)", f4, f2, false);
	ratio_add(r, "accept_4k_vs_zeroing", "accept 4K vs zeroing (cost)", f4, fz, false);
	info_add(r, "augs_4k", "4K: PAGE.AUG calls", (double)vmm_model_stat(&ts4, "page_augs"),
		 "");
	info_add(r, "augs_2m", "2M: PAGE.AUG calls", (double)vmm_model_stat(&ts2, "page_augs"), "");
	info_add(r, "sept_2m_leaves", "2M: S-EPT 2M leaves at the end",
		 (double)vmm_model_stat(&ts2, "sept_2m"), "");
	info_add(r, "convert_tracks", "convert: TRACKs (one shootdown each)",
		 (double)vmm_model_stat(&tsc, "tracks"), "");
	note(r, "accept figures include the EPT-violation fault, AUG, ACCEPT's zeroing and the "
		"guest's loop; the convert round trip has two MAP_GPA_RANGE exits to the VMM");
	(void)o;
}

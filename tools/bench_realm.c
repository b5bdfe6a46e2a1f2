/* SPDX-License-Identifier: MIT */
/*
 * privmem bench realm: what an Arm CCA realm's memory costs on the
 * simulated RMM, beside the other models.
 *  - fault: a fresh realm (all RAM private, RIPAS RAM) touches SIZE of
 *    protected memory: each first touch faults, KVM delegates the page's
 *    granules (guest_memfd's prepare) and DATA_CREATE_UNKNOWNs them, at 4K
 *    only (PM_REALM_NO_HUGE and 4K guest_memfd pages) and with 2M folds;
 *    timed in the guest; per 4K page, beside memset of SIZE;
 *  - convert: bench e2e's round trip (bench_e2e.h) of 1 and of 512 pages per
 *    exit on every model, realm's being RSI_IPA_STATE_SET to EMPTY and back
 *    (the MAP_GPA_RANGE exit, DATA_DESTROY in the zap, RTT_SET_RIPAS, and
 *    the touches through the unprotected alias and the refault); per page.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench_e2e.h"
#include "cli.h"

#define CONVERT_REGION (2 * MIB)

struct fault_job {
	uint64_t size;
	uint64_t t_ns;
};

static void guest_fault_main(struct pm_guest *g, void *arg)
{
	struct fault_job *j = arg;
	uint64_t t0 = now_ns();

	for (uint64_t a = 0; a < j->size; a += PAGE_4K)
		pm_guest_write64(g, a, a);
	j->t_ns = now_ns() - t0;
}

/* One fresh realm touching `size`: 0, or -1 (r->error). */
static int fault_once(struct result *r, uint64_t size, bool huge, struct fault_job *j,
		      struct pm_model_stats *st)
{
	const struct pm_realm_config cfg = {
		.hash_algo = PM_REALM_HASH_SHA256, .ipa_bits = 40, .rim_version = 1, .num_bps = 1,
		.num_wps = 1, .flags = huge ? 0 : PM_REALM_NO_HUGE,
	};
	struct pm_realm_ripas_range rr = { .base = 0, .size = size };
	struct vmm m;
	int ret = -1;

	if (bench_vm_create(r, &m, PM_VM_TYPE_REALM, size, huge ? 0 : PM_GUEST_MEMFD_FLAG_NO_HUGE))
		return -1;
	if (pm_kvm_ioctl(m.vm, PM_KVM_REALM_CONFIG, &cfg) || vmm_convert(&m, 0, size, true) ||
	    pm_kvm_ioctl(m.vm, PM_KVM_REALM_INIT_RIPAS, &rr)) {
		result_fail(r, "building the realm: %s", strerror(errno));
	} else if (!bench_vm_run(r, &m, guest_fault_main, j, NULL)) {
		pm_kvm_ioctl(m.vm, PM_KVM_GET_MODEL_STATS, st);
		ret = 0;
	}
	vmm_destroy(&m);
	return ret;
}

static void fault_series(struct result *r, struct figure *f, bool huge, struct pm_model_stats *st)
{
	struct samples s = { .n = 0 };

	for (unsigned int rep = 0; rep < r->reps && !r->failed; rep++) {
		struct fault_job j = { .size = r->size };

		if (fault_once(r, r->size, huge, &j, st))
			return;
		samples_add(&s, (double)j.t_ns / 1e9);
	}
	figure_set(f, &s);
}

/* ---- convert: bench e2e's round trip on every model ---- */

struct convert_job {
	struct conv_vm cv;
	unsigned int reps;
	uint64_t batch;
	struct bench_marks mk;
};

static void guest_convert_main(struct pm_guest *g, void *arg)
{
	struct convert_job *j = arg;
	uint64_t npages = j->cv.size >> 12;

	conv_prepare(g, &j->cv);
	for (unsigned int rep = 0; rep < j->reps; rep++) {
		pm_guest_sync(g, BENCH_MARK(0, 0));
		for (uint64_t p = 0; p < npages; p += j->batch)
			conv_round_trip(g, &j->cv, p << 12, j->batch);
		pm_guest_sync(g, BENCH_MARK(0, 1));
	}
}

static void convert_series(struct result *r, const struct conv_model *model, uint64_t batch,
			   struct figure *f)
{
	struct convert_job *j = calloc(1, sizeof(*j));
	struct vmm m;

	if (!j) {
		result_fail(r, "out of memory");
		return;
	}
	j->reps = r->reps;
	j->batch = batch;
	if (!conv_vm_create(r, &m, model, CONVERT_REGION, &j->cv)) {
		if (!bench_vm_run(r, &m, guest_convert_main, j, &j->mk)) {
			figure_set(f, &j->mk.t[0]);
			figure_set_cpu(f, &j->mk.cpu[0]);
		}
		vmm_destroy(&m);
	}
	free(j);
}

void bench_realm(const struct bench_opts *o, struct result *r)
{
	static const uint64_t batches[] = { 1, 512 };
	double pages = (double)(r->size >> 12);
	struct pm_model_stats st4 = { 0 }, st2 = { 0 };
	struct figure *f4, *f2, *fz, *fc[CONV_NR][2];
	struct samples sz = { .n = 0 };
	uint8_t *zbuf = buffer_new(r->size);
	char key[48], label[96];

	snprintf(r->title, sizeof(r->title), "Arm CCA realm: faults and conversions on the simulated RMM");
	if (!zbuf) {
		result_fail(r, "mmap of the zeroing buffer: %s", strerror(errno));
		return;
	}
	section_begin(r, "fault");
	f4 = figure_add(r, "fault_4k", "first touch, 4K (delegate, DATA_CREATE_UNKNOWN)", "page", pages,
			(double)r->size);
	f2 = figure_add(r, "fault_2m", "first touch, 2M pages (512 granules, RTT_FOLD)", "page", pages,
			(double)r->size);
	fz = figure_add(r, "zeroing", "zeroing (memset)", "page", pages, (double)r->size);
	fault_series(r, f4, false, &st4);
	fault_series(r, f2, true, &st2);
	for (unsigned int rep = 0; rep < r->reps; rep++) {
		uint64_t t0 = now_ns();

		memset(zbuf, (int)rep + 1, r->size);
		clobber(zbuf);
		samples_add(&sz, secs_since(t0));
	}
	figure_set(fz, &sz);
	buffer_free(zbuf, r->size);
	ratio_add(r, "fault_2m_vs_4k", "first touch: 2M vs 4K (speedup)", f4, f2, false);
	ratio_add(r, "fault_4k_vs_zeroing", "first touch 4K vs zeroing (cost)", f4, fz, false);
	info_add(r, "folds_2m", "2M: blocks folded", (double)vmm_model_stat(&st2, "folds"), "");
	info_add(r, "delegates_4k", "4K: granules delegated", (double)vmm_model_stat(&st4, "delegates"), "");

	section_begin(r, "convert");
	for (int i = 0; i < CONV_NR; i++) {
		for (int b = 0; b < 2; b++) {
			snprintf(key, sizeof(key), "convert_%s_%" PRIu64, conv_models[i].name, batches[b]);
			snprintf(label, sizeof(label), "%s, %" PRIu64 " page%s per exit", conv_models[i].name,
				 batches[b], batches[b] > 1 ? "s" : "");
			fc[i][b] = figure_add(r, key, label, "page", (double)(CONVERT_REGION >> 12), 0);
			if (!r->failed)
				convert_series(r, &conv_models[i], batches[b], fc[i][b]);
		}
	}
	if (r->failed)
		return;
	for (int i = 0; i < CONV_NR; i++) {
		if (i == CONV_REALM)
			continue;
		for (int b = 0; b < 2; b++) {
			snprintf(key, sizeof(key), "realm_%" PRIu64 "_vs_%s", batches[b], conv_models[i].name);
			snprintf(label, sizeof(label), "realm vs %s, %" PRIu64 " per exit (cost)",
				 conv_models[i].name, batches[b]);
			ratio_add(r, key, label, fc[CONV_REALM][b], fc[i][b], false);
		}
	}
	note(r, "a round trip: to shared (one exit), an 8-byte write and read of each page, back to "
		"private (one exit) and the same touch, as in bench e2e; realm's refault delegates "
		"nothing (the page stays delegated in guest_memfd) but DATA_CREATE_UNKNOWNs again");
	(void)o;
}

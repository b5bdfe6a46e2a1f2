/* SPDX-License-Identifier: MIT */
/*
 * privmem bench e2e: a user's conversions end to end, through real exits,
 * on every protection model, each figure beside the limit the core is to
 * meet, measured in the same run (issue 14). The round trip and the models'
 * ways are in bench_e2e.h. Sections:
 *  - exit: an empty exit round trip (a SYNC ucall that the VMM answers with
 *    nothing but reading it) beside privmem's coroutine switch
 *    (pm_coro_resume and pm_coro_yield of an empty coroutine: the pair of
 *    switches every exit makes); an MMIO write with no device behind it,
 *    for information;
 *  - convert: the round trip at 1, 8, 64 and 512 pages per exit on sw,
 *    tdx, snp, pkvm and realm, in ns per page, beside memset of each 4K page of a
 *    buffer of the region's size;
 *  - tlb, scale, memslot: bench_e2e_mem.c.
 * The figures are privmem as it is: nothing here tunes it.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench_e2e.h"
#include "cli.h"
#include "vcpu/coro.h"     /* privmem's own coroutines: the exit's reference */

/* ==================================================================== */
/* The conversion round trip on each model                              */
/* ==================================================================== */

void touch_pages(struct pm_guest *g, uint64_t addr, uint64_t n, uint64_t tag)
{
	for (uint64_t p = 0; p < n; p++) {
		uint64_t a = addr + (p << 12);

		pm_guest_write64(g, a, tag + p);
		PM_GUEST_ASSERT(g, pm_guest_read64(g, a) == tag + p);
	}
}

static void sw_prepare(struct pm_guest *g, struct conv_vm *cv)
{
	PM_GUEST_ASSERT(g, guest_map_gpa_range(g, 0, cv->size >> 12, true) == 0);
	touch_pages(g, 0, cv->size >> 12, 1);
}

static long sw_to_shared(struct pm_guest *g, const struct conv_vm *cv, uint64_t gpa, uint64_t n)
{
	return guest_map_gpa_range(g, gpa, n, false);
}

static long sw_to_private(struct pm_guest *g, const struct conv_vm *cv, uint64_t gpa, uint64_t n)
{
	return guest_map_gpa_range(g, gpa, n, true);
}

static void tdx_prepare(struct pm_guest *g, struct conv_vm *cv)
{
	cv->shared_bit = pm_guest_tdx_shared_bit(g);
	PM_GUEST_ASSERT(g, pm_guest_tdx_accept_range(g, 0, cv->size) == PM_TDX_SUCCESS);
	touch_pages(g, 0, cv->size >> 12, 1);
}

static long tdx_to_shared(struct pm_guest *g, const struct conv_vm *cv, uint64_t gpa, uint64_t n)
{
	uint64_t next;

	return (long)pm_guest_tdx_map_gpa(g, gpa | cv->shared_bit, n << 12, &next);
}

static long tdx_to_private(struct pm_guest *g, const struct conv_vm *cv, uint64_t gpa, uint64_t n)
{
	uint64_t next, r = pm_guest_tdx_map_gpa(g, gpa, n << 12, &next);

	return (long)(r ? r : pm_guest_tdx_accept_range(g, gpa, n << 12));
}

static void snp_prepare(struct pm_guest *g, struct conv_vm *cv)
{
	cv->private_bit = PM_SNP_C_BIT;
	PM_GUEST_ASSERT(g, pm_guest_snp_make_private(g, 0, cv->size >> 12, cv->desc,
						     PM_SNP_PSC_MAX_ENTRIES) == 0);
	touch_pages(g, PM_SNP_C_BIT, cv->size >> 12, 1);
}

static long snp_to_shared(struct pm_guest *g, const struct conv_vm *cv, uint64_t gpa, uint64_t n)
{
	return pm_guest_snp_make_shared(g, gpa, n, cv->desc, PM_SNP_PSC_MAX_ENTRIES);
}

static long snp_to_private(struct pm_guest *g, const struct conv_vm *cv, uint64_t gpa, uint64_t n)
{
	return pm_guest_snp_make_private(g, gpa, n, cv->desc, PM_SNP_PSC_MAX_ENTRIES);
}

static void pkvm_prepare(struct pm_guest *g, struct conv_vm *cv)
{
	touch_pages(g, 0, cv->size >> 12, 1);      /* donated to the guest on first touch */
}

static long pkvm_to_shared(struct pm_guest *g, const struct conv_vm *cv, uint64_t gpa, uint64_t n)
{
	return pm_guest_mem_share_range(g, gpa, n) != n;
}

static long pkvm_to_private(struct pm_guest *g, const struct conv_vm *cv, uint64_t gpa, uint64_t n)
{
	return pm_guest_mem_unshare_range(g, gpa, n) != n;
}

static void realm_prepare(struct pm_guest *g, struct conv_vm *cv)
{
	cv->shared_bit = 1ULL << (pm_guest_realm_ipa_width(g) - 1);
	PM_GUEST_ASSERT(g, pm_guest_realm_set_ripas(g, 0, cv->size, PM_RIPAS_RAM) == 0);
	touch_pages(g, 0, cv->size >> 12, 1);
}

static long realm_to_shared(struct pm_guest *g, const struct conv_vm *cv, uint64_t gpa, uint64_t n)
{
	return (long)pm_guest_realm_set_ripas(g, gpa, gpa + (n << 12), PM_RIPAS_EMPTY);
}

static long realm_to_private(struct pm_guest *g, const struct conv_vm *cv, uint64_t gpa, uint64_t n)
{
	return (long)pm_guest_realm_set_ripas(g, gpa, gpa + (n << 12), PM_RIPAS_RAM);
}

const struct conv_model conv_models[CONV_NR] = {
	[CONV_SW] = { "sw", KVM_X86_SW_PROTECTED_VM, sw_prepare, sw_to_shared, sw_to_private, 1 },
	[CONV_TDX] = { "tdx", KVM_X86_TDX_VM, tdx_prepare, tdx_to_shared, tdx_to_private, 1 },
	[CONV_SNP] = { "snp", KVM_X86_SNP_VM, snp_prepare, snp_to_shared, snp_to_private, 1 },
	[CONV_PKVM] = { "pkvm", PM_VM_TYPE_PKVM, pkvm_prepare, pkvm_to_shared, pkvm_to_private, 0 },
	[CONV_REALM] = { "realm", PM_VM_TYPE_REALM, realm_prepare, realm_to_shared, realm_to_private, 1 },
};

int conv_vm_create(struct result *r, struct vmm *m, const struct conv_model *model, uint64_t size,
		   struct conv_vm *cv)
{
	const struct pm_tdx_config cfg = { .flags = PM_TDX_NO_HUGE };
	bool snp = model->type == KVM_X86_SNP_VM;

	*cv = (struct conv_vm){ .model = model, .size = size, .desc = size };
	if (model->type == KVM_X86_TDX_VM)
		return bench_td_create(r, m, size, PM_GUEST_MEMFD_FLAG_NO_HUGE, &cfg);
	return bench_vm_create(r, m, model->type, size + (snp ? PAGE_2M : 0), PM_GUEST_MEMFD_FLAG_NO_HUGE);
}

void conv_prepare(struct pm_guest *g, struct conv_vm *cv)
{
	cv->model->prepare(g, cv);
}

void conv_round_trip(struct pm_guest *g, const struct conv_vm *cv, uint64_t gpa, uint64_t n)
{
	PM_GUEST_ASSERT(g, cv->model->to_shared(g, cv, gpa, n) == 0);
	touch_pages(g, gpa | cv->shared_bit, n, gpa);
	PM_GUEST_ASSERT(g, cv->model->to_private(g, cv, gpa, n) == 0);
	touch_pages(g, gpa | cv->private_bit, n, ~gpa);
}

/* ==================================================================== */
/* exit                                                                 */
/* ==================================================================== */

/* A few ms per measurement (see bench_e2e's region). */
#define EXITS_PER_RUN   4000
#define SWITCHES_PER_RUN 50000
#define MMIO_GPA        (1ULL << 30)     /* no memslot there: an MMIO exit */

enum { PH_EXIT_EMPTY, PH_EXIT_MMIO };

struct exit_job {
	unsigned int reps;
	struct bench_marks mk;
};

static void guest_exit_main(struct pm_guest *g, void *arg)
{
	const struct exit_job *j = arg;

	for (unsigned int rep = 0; rep < j->reps; rep++) {
		pm_guest_sync(g, BENCH_MARK(PH_EXIT_EMPTY, 0));
		for (unsigned int i = 0; i < EXITS_PER_RUN; i++)
			pm_guest_sync(g, 0);               /* no mark: the VMM reads it, that is all */
		pm_guest_sync(g, BENCH_MARK(PH_EXIT_EMPTY, 1));
		pm_guest_sync(g, BENCH_MARK(PH_EXIT_MMIO, 0));
		for (unsigned int i = 0; i < EXITS_PER_RUN; i++)
			pm_guest_write64(g, MMIO_GPA, i);
		pm_guest_sync(g, BENCH_MARK(PH_EXIT_MMIO, 1));
	}
}

struct coro_box {
	struct pm_coro *c;
};

static void coro_empty(void *arg)
{
	struct coro_box *b = arg;

	for (;;)
		pm_coro_yield(b->c);
}

/* reps measurements of SWITCHES_PER_RUN resume + yield pairs: 0 or -errno. */
static int coro_switches(unsigned int reps, struct samples *s, struct samples *cpu)
{
	struct coro_box b;
	int e = pm_coro_create(&b.c, PM_CORO_DEFAULT_STACK, coro_empty, &b);

	if (e)
		return e;
	for (unsigned int rep = 0; rep < reps; rep++) {
		struct stopwatch w;

		stopwatch_start(&w);
		for (unsigned int i = 0; i < SWITCHES_PER_RUN; i++)
			pm_coro_resume(b.c);
		stopwatch_stop(&w, s, cpu);
	}
	pm_coro_destroy(b.c);          /* cancels it at its yield */
	return 0;
}

void e2e_exit(struct result *r)
{
	struct exit_job *j = calloc(1, sizeof(*j));
	struct samples sc = { .n = 0 }, scpu = { .n = 0 };
	struct figure *fc, *fe, *fm;
	struct vmm m;
	int e;

	section_begin(r, "exit");
	fc = figure_add(r, "coro_switch", "coroutine switch (resume + yield, empty)", "switch",
			SWITCHES_PER_RUN, 0);
	fe = figure_add(r, "exit_empty", "empty exit round trip (SYNC ucall)", "exit", EXITS_PER_RUN, 0);
	fm = figure_add(r, "exit_mmio", "info: MMIO write exit round trip, no device", "exit",
			EXITS_PER_RUN, 0);
	if (!j) {
		result_fail(r, "out of memory");
		return;
	}
	e = coro_switches(r->reps, &sc, &scpu);
	if (e)
		result_fail(r, "pm_coro_create: %s", strerror(-e));
	figure_set(fc, &sc);
	figure_set_cpu(fc, &scpu);
	j->reps = r->reps;
	if (!r->failed && !bench_vm_create(r, &m, KVM_X86_SW_PROTECTED_VM, PAGE_2M, 0)) {
		if (!bench_vm_run(r, &m, guest_exit_main, j, &j->mk)) {
			figure_set(fe, &j->mk.t[PH_EXIT_EMPTY]);
			figure_set_cpu(fe, &j->mk.cpu[PH_EXIT_EMPTY]);
			figure_set(fm, &j->mk.t[PH_EXIT_MMIO]);
			figure_set_cpu(fm, &j->mk.cpu[PH_EXIT_MMIO]);
		}
		vmm_destroy(&m);
	}
	target_vs(r, "exit_vs_coro_switch", "empty exit round trip <= 5x coroutine switch", fe, fc, 5.0);
	free(j);
}

/* ==================================================================== */
/* convert                                                              */
/* ==================================================================== */

static const uint64_t batches[] = { 1, 8, 64, 512 };
#define NR_BATCH ((int)(sizeof(batches) / sizeof(batches[0])))

struct convert_job {
	struct conv_vm cv;
	unsigned int reps;
	struct bench_marks mk;      /* phase b: batches[b] pages per exit */
};

static void guest_convert_main(struct pm_guest *g, void *arg)
{
	struct convert_job *j = arg;
	uint64_t npages = j->cv.size >> 12;

	conv_prepare(g, &j->cv);
	/* Batch sizes take turns, so that a slow moment of the host does not
	 * fall on one of them only. */
	for (unsigned int rep = 0; rep < j->reps; rep++) {
		for (int b = 0; b < NR_BATCH; b++) {
			pm_guest_sync(g, BENCH_MARK(b, 0));
			for (uint64_t p = 0; p < npages; p += batches[b])
				conv_round_trip(g, &j->cv, p << 12, batches[b]);
			pm_guest_sync(g, BENCH_MARK(b, 1));
		}
	}
}

/* One model's VM through every batch size: figures f[b]; 0 or -1. */
static int convert_model(struct result *r, const struct conv_model *model, uint64_t region,
			 struct figure *f[NR_BATCH])
{
	struct convert_job *j = calloc(1, sizeof(*j));
	double exits = 0, expected = 0;
	char key[48], label[96];
	struct vmm m;
	int ret = -1;

	if (!j) {
		result_fail(r, "out of memory");
		return -1;
	}
	j->reps = r->reps;
	if (conv_vm_create(r, &m, model, region, &j->cv))
		goto out;
	ret = bench_vm_run(r, &m, guest_convert_main, j, &j->mk);
	vmm_destroy(&m);
	for (int b = 0; b < NR_BATCH && !ret; b++) {
		/* The model's exits per batch and direction, as the round trip
		 * says (one; none on pkvm). */
		double rounds = 2.0 * (double)(region >> 12) / (double)batches[b] * j->mk.t[b].n;
		double want = model->exits * rounds;

		figure_set(f[b], &j->mk.t[b]);
		figure_set_cpu(f[b], &j->mk.cpu[b]);
		exits += (double)j->mk.hypercalls[b];
		expected += rounds;
		if ((double)j->mk.hypercalls[b] != want)
			note(r, "%s, %" PRIu64 " pages per batch: %.3g exits per batch and direction, not %u",
			     model->name, batches[b], (double)j->mk.hypercalls[b] / rounds, model->exits);
	}
	if (!ret) {
		snprintf(key, sizeof(key), "exits_per_batch_%s", model->name);
		snprintf(label, sizeof(label), "%s: hypercall exits per batch and direction", model->name);
		info_add(r, key, label, exits / expected, "");
	}
out:
	free(j);
	return ret;
}

/* What privmem adds to a figure beside the host kernel's part of it (per
 * page, best figures): information, not a target. */
static void own_part(struct result *r, const char *key, const char *label, const struct figure *f,
		     const struct figure *kernel, const struct figure *limit)
{
	double own = ns_per_op(f, false) - ns_per_op(kernel, false);
	char k[48];

	info_add(r, key, label, own, "ns/page");
	snprintf(k, sizeof(k), "%s_vs_memset", key);
	info_add(r, k, "  the same, as a multiple of memset 4K", own / ns_per_op(limit, false), "x");
}

void e2e_convert(struct result *r, uint64_t region)
{
	struct figure *f[CONV_NR][NR_BATCH], *fz, *fd[2];
	uint8_t *zbuf = buffer_new(region);
	struct samples sz = { .n = 0 }, szcpu = { .n = 0 };
	struct samples sd[2] = { { .n = 0 }, { .n = 0 } }, sdcpu[2] = { { .n = 0 }, { .n = 0 } };
	char key[48], label[96];

	section_begin(r, "convert");
	for (int i = 0; i < CONV_NR; i++) {
		for (int b = 0; b < NR_BATCH; b++) {
			snprintf(key, sizeof(key), "convert_%s_%" PRIu64, conv_models[i].name, batches[b]);
			snprintf(label, sizeof(label), "%s, %" PRIu64 " page%s per exit", conv_models[i].name,
				 batches[b], batches[b] > 1 ? "s" : "");
			f[i][b] = figure_add(r, key, label, "page", (double)(region >> 12), 0);
		}
	}
	fz = figure_add(r, "memset_4k", "memset 4K", "page", (double)(region >> 12), (double)region);
	fd[0] = figure_add(r, "discard_1", "kernel: VMM discard + refault, 1 page", "page",
			   (double)(region >> 12), 0);
	fd[1] = figure_add(r, "discard_512", "kernel: VMM discard + refault, 512 pages", "page",
			   (double)(region >> 12), 0);
	if (!zbuf) {
		result_fail(r, "mmap of the zeroing buffer: %s", strerror(errno));
		return;
	}
	for (int i = 0; i < CONV_NR && !r->failed; i++) {
		/* The reference between the models: in the same run, at the
		 * same moments of the host's load. */
		for (unsigned int rep = 0; rep < r->reps; rep++) {
			struct stopwatch w;

			stopwatch_start(&w);
			zero_pass(zbuf, region, PAGE_4K);
			stopwatch_stop(&w, &sz, &szcpu);
			for (int d = 0; d < 2; d++) {
				stopwatch_start(&w);
				discard_pass(zbuf, region, d ? 512 : 1);
				stopwatch_stop(&w, &sd[d], &sdcpu[d]);
			}
		}
		convert_model(r, &conv_models[i], region, f[i]);
	}
	buffer_free(zbuf, region);
	figure_set(fz, &sz);
	figure_set_cpu(fz, &szcpu);
	for (int d = 0; d < 2; d++) {
		figure_set(fd[d], &sd[d]);
		figure_set_cpu(fd[d], &sdcpu[d]);
	}
	target_vs(r, "sw_1_vs_memset", "sw, 1 page per exit <= 5x memset 4K", f[CONV_SW][0], fz, 5.0);
	target_vs(r, "sw_512_vs_memset", "sw, 512 pages per exit <= 1.2x memset 4K", f[CONV_SW][NR_BATCH - 1],
		  fz, 1.2);
	for (int i = 0; i < CONV_NR; i++) {
		if (i == CONV_SW)
			continue;
		for (int b = 0; b < NR_BATCH; b++) {
			snprintf(key, sizeof(key), "%s_%" PRIu64 "_vs_sw", conv_models[i].name, batches[b]);
			snprintf(label, sizeof(label), "%s, %" PRIu64 " per exit <= 2x sw", conv_models[i].name,
				 batches[b]);
			target_vs(r, key, label, f[i][b], f[CONV_SW][b], 2.0);
		}
	}
	if (!r->failed) {
		own_part(r, "sw_1_own_ns", "sw, 1 page per exit, less the kernel's part", f[CONV_SW][0],
			 fd[0], fz);
		own_part(r, "sw_512_own_ns", "sw, 512 pages per exit, less the kernel's part",
			 f[CONV_SW][NR_BATCH - 1], fd[1], fz);
	}
	note(r, "convert: per page of a %" PRIu64 " MiB region (4K guest_memfd pages; TDX 4K private "
		"pages), private and touched before timing; a round trip of n pages = to shared (one "
		"exit), an 8-byte write and read of each page, to private (one exit), the same touch; the "
		"time is the KVM_RUNs between two SYNC exits, taken by the VMM",
	     region / MIB);
	note(r, "the models' ways: sw KVM_HC_MAP_GPA_RANGE (attributes + punch / discard); tdx MapGPA, "
		"ACCEPT back to private; snp PVALIDATE + PSC, PSC + PVALIDATE (253-entry requests); pkvm "
		"MEM_SHARE / MEM_UNSHARE in place, one hypercall per page and no exit (as upstream), "
		"with the VMM's guest_memfd view mapped");
	note(r, "kernel: the host kernel's part of a sw round trip, which privmem does not do and "
		"cannot avoid: the VMM's madvise(MADV_DONTNEED) of its shared copy at each conversion to "
		"private, in batches of 1 or 512 pages, and the fresh zeroed page the kernel faults in at "
		"the guest's next shared touch; \"less the kernel's part\" subtracts it");
}

/* ==================================================================== */
/* The benchmark                                                        */
/* ==================================================================== */

void bench_e2e(const struct bench_opts *o, struct result *r)
{
	/* The convert region: SIZE / 32 (2 MiB by default), whole 2 MiB
	 * blocks, so that every batch size divides it. One pass over it is
	 * one measurement: a few ms, which a host busy with other work
	 * preempts less often than longer ones. */
	uint64_t region = PM_ALIGN_DOWN_U64(r->size / 32, PAGE_2M);


	if (region < PAGE_2M)
		region = PAGE_2M;
	snprintf(r->title, sizeof(r->title), "conversions end to end through real exits, beside "
		 "the limits measured in the same run");
	e2e_exit(r);
	if (!r->failed)
		e2e_convert(r, region);
	if (!r->failed)
		e2e_tlb(r, r->size);
	if (!r->failed)
		e2e_scale(r, r->size);
	/* Last: filling the memslots leaves the RCU thread freeing tens of
	 * thousands of old slot arrays for a while after. */
	if (!r->failed)
		e2e_memslot(r);
	(void)o;
}

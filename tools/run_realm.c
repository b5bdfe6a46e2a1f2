/* SPDX-License-Identifier: MIT */
/*
 * privmem run --vm-type realm: an Arm CCA realm's life on the simulated RMM.
 *
 *  1. Build: all RAM private; an "image" of IMAGE_PAGES pages populated at
 *     IPA 0 and measured (KVM_ARM_RMI_POPULATE with MEASURE: RTT_INIT_RIPAS
 *     then DATA_CREATE), the rest of RAM given RIPAS RAM
 *     (PM_KVM_REALM_INIT_RIPAS); the first KVM_RUN creates one REC per
 *     vCPU and activates the realm. The RIM is read with
 *     PM_KVM_GET_MEASUREMENT64 and checked against the same build measured
 *     offline (rim.h, as `privmem measure realm` does).
 *  2. Boot: each vCPU touches its chunk of protected RAM (faults: delegate,
 *     DATA_CREATE_UNKNOWN, 2M folds), checking that it starts zero; vCPU 0
 *     first checks the image.
 *  3. Work: random conversions, as Linux realms make them: a range goes
 *     RIPAS EMPTY (RSI_IPA_STATE_SET, the VMM converts it to shared), the
 *     guest writes it through its unprotected alias (RTT_MAP_UNPROTECTED),
 *     the host reads that and writes back, the guest sees it, the range
 *     comes back RAM and reads zero, and is stamped and read back.
 * The report adds the realm figures: the RIM, RMI commands by kind (the
 * RMM's counters: PM_KVM_GET_MODEL_STATS on the system handle), granule
 * states, RIPAS changes, folds and unfolds, and granule protection faults
 * (a check: 0); its JSON has every counter, under the model's names, in
 * "realm" (the VM's) and "rmm" (the machine's).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cli.h"
#include "run.h"
#include "models/cca/rim.h"

#define MIB          ((uint64_t)1 << 20)
#define PAGE         4096ULL
#define IMAGE_PAGES  16
#define IPA_BITS     40
#define TOP_BIT      (1ULL << (IPA_BITS - 1))

enum realm_check {
	RK_IMAGE, RK_FAULT_ZERO, RK_FAULT_READBACK, RK_HOST_SEES_SHARED, RK_GUEST_SEES_HOST,
	RK_RECONVERT_ZERO, RK_PRIVATE_READBACK, RK_RIM_OFFLINE, RK_NO_GPF, RK_NR,
};
static const char *const realm_check_names[] = {
	"image_intact", "faulted_page_starts_zero", "faulted_page_readback",
	"host_sees_guest_shared_write", "guest_sees_host_write", "reconverted_page_starts_zero",
	"private_readback", "rim_matches_offline_measurement", "no_granule_protection_fault",
};
_Static_assert(sizeof(realm_check_names) / sizeof(realm_check_names[0]) == RK_NR, "a name per check");

enum { SYNC_HOST = 1 };

struct realm_job {
	int id;
	uint64_t lo, hi;             /* the vCPU's protected chunk (IPA) */
	unsigned int iterations, seed;
	struct { uint64_t gpa, len, seq; } req;
	uint64_t passed[RK_NR], failed[RK_NR];
	const uint8_t *image;
};

static void check(struct realm_job *j, enum realm_check c, bool ok)
{
	if (ok)
		j->passed[c]++;
	else
		j->failed[c]++;
}

/* ---- guest side ---- */

static void guest_check_image(struct pm_guest *g, struct realm_job *j)
{
	uint8_t page[PAGE];
	bool ok = true;

	for (unsigned int p = 0; p < IMAGE_PAGES; p++) {
		pm_guest_read(g, p * PAGE, page, PAGE);
		ok &= !memcmp(page, j->image + p * PAGE, PAGE);
	}
	check(j, RK_IMAGE, ok);
}

static void pick(struct realm_job *j, unsigned int *seed, uint64_t *gpa, uint64_t *n)
{
	uint64_t lo = j->lo / PAGE, hi = j->hi / PAGE;

	*n = (rand_r(seed) & 1) && hi - lo >= 1024 ? 512 : 1 + (uint64_t)rand_r(seed) % 16;
	*gpa = lo + (uint64_t)rand_r(seed) % (hi - lo - *n);
	if (*n == 512)
		*gpa = (*gpa + 511) & ~511ULL;
	if (*gpa + *n > hi)
		*gpa = hi - *n;
	*gpa *= PAGE;
}

static void guest_convert(struct pm_guest *g, struct realm_job *j, unsigned int *seed, uint64_t seq)
{
	uint64_t gpa, n;

	pick(j, seed, &gpa, &n);
	PM_GUEST_ASSERT(g, pm_guest_realm_set_ripas(g, gpa, gpa + n * PAGE, PM_RIPAS_EMPTY) == 0);
	run_guest_stamp(g, gpa, n, seq, TOP_BIT);                 /* through the unprotected alias */
	j->req.gpa = gpa;
	j->req.len = n * PAGE;
	j->req.seq = seq;
	pm_guest_sync(g, SYNC_HOST);                    /* the host checks, then writes */
	check(j, RK_GUEST_SEES_HOST, run_guest_pages_hold(g, gpa, n, seq + 1, false, TOP_BIT));
	PM_GUEST_ASSERT(g, pm_guest_realm_set_ripas(g, gpa, gpa + n * PAGE, PM_RIPAS_RAM) == 0);
	check(j, RK_RECONVERT_ZERO, run_guest_pages_hold(g, gpa, n, 0, true, 0));
	run_guest_stamp(g, gpa, n, j->seed, 0);
	check(j, RK_PRIVATE_READBACK, run_guest_pages_hold(g, gpa, n, j->seed, false, 0));
}

static void realm_guest_main(struct pm_guest *g, void *arg)
{
	struct realm_job *j = arg;
	unsigned int seed = j->seed;
	uint64_t n = (j->hi - j->lo) / PAGE;

	PM_GUEST_ASSERT(g, pm_guest_realm_ipa_width(g) == IPA_BITS);
	if (j->id == 0)
		guest_check_image(g, j);
	check(j, RK_FAULT_ZERO, run_guest_pages_hold(g, j->lo, n, 0, true, 0));
	run_guest_stamp(g, j->lo, n, j->seed, 0);
	check(j, RK_FAULT_READBACK, run_guest_pages_hold(g, j->lo, n, j->seed, false, 0));
	for (unsigned int it = 0; it < j->iterations; it++)
		guest_convert(g, j, &seed, 2 * it + 100);
}

/* ---- VMM side ---- */

struct realm_ctx {
	struct realm_job jobs[VMM_MAX_VCPUS];
};

static void realm_sync(struct vmm *m, int vcpu, const struct pm_ucall *uc)
{
	struct realm_ctx *ctx = m->ctx;
	struct realm_job *j = &ctx->jobs[vcpu];
	bool ok = true;

	for (uint64_t p = 0; p < j->req.len / PAGE; p++) {
		uint64_t a = j->req.gpa + p * PAGE, *w = (uint64_t *)(m->shared + a);
		uint64_t *last = (uint64_t *)(m->shared + a + PAGE - 8);

		ok &= *w == run_pattern(a, j->req.seq) && *last == run_pattern(a + PAGE - 8, j->req.seq);
		*w = run_pattern(a, j->req.seq + 1);
		*last = run_pattern(a + PAGE - 8, j->req.seq + 1);
	}
	check(j, RK_HOST_SEES_SHARED, ok);
}

static void offline_ripas(void *rim, uint64_t base, uint64_t top)
{
	rim_extend_ripas(RMI_HASH_SHA_256, rim, base, top);
}

/* The build (1.), and the RIM the same build gives offline. */
static int realm_build(struct vmm *m, uint8_t *image, uint8_t rim[RIM_MAX_SIZE], int vcpus)
{
	struct kvm_arm_rmi_populate pop = {
		.base = 0, .size = IMAGE_PAGES * PAGE, .source_uaddr = (uintptr_t)image,
		.flags = KVM_ARM_RMI_POPULATE_FLAGS_MEASURE,
	};
	struct pm_realm_ripas_range rest = { .base = IMAGE_PAGES * PAGE,
					     .size = m->mem_size - IMAGE_PAGES * PAGE };
	struct rim_realm_params p = { .s2sz = IPA_BITS, .num_bps = 1, .num_wps = 1 };
	struct rim_rec_params rec = { .flags = RMI_REC_FLAG_RUNNABLE };

	for (uint64_t i = 0; i < IMAGE_PAGES * PAGE; i++)
		image[i] = (uint8_t)(i * 131 + (i >> 12));
	if (vmm_convert(m, 0, m->mem_size, true)) {
		perror("privmem: converting guest RAM to private");
		return -1;
	}
	if (pm_kvm_ioctl(m->vm, KVM_ARM_RMI_POPULATE, &pop) ||
	    pm_kvm_ioctl(m->vm, PM_KVM_REALM_INIT_RIPAS, &rest)) {
		perror("privmem: building the realm");
		return -1;
	}
	/* Offline: what `privmem measure realm` computes from "ripas 0 IMAGE;
	 * data 0 image measure; ripas IMAGE MEM; rec" once per vCPU. */
	rim_realm_params(&p, rim);
	rim_ripas_blocks(0, IMAGE_PAGES * PAGE, offline_ripas, rim);
	for (uint64_t i = 0; i < IMAGE_PAGES; i++)
		rim_extend_data(RMI_HASH_SHA_256, rim, i * PAGE, RMI_MEASURE_CONTENT, image + i * PAGE);
	rim_ripas_blocks(rest.base, rest.base + rest.size, offline_ripas, rim);
	for (int i = 0; i < vcpus; i++)
		rim_extend_rec(RMI_HASH_SHA_256, rim, &rec);
	return 0;
}

static void jobs_init(struct realm_ctx *ctx, uint64_t mem, int vcpus, unsigned int seed,
		      unsigned int iterations, const uint8_t *image)
{
	uint64_t chunk = (mem / (uint64_t)vcpus) & ~(2 * MIB - 1);

	for (int i = 0; i < vcpus; i++) {
		struct realm_job *j = &ctx->jobs[i];

		j->id = i;
		j->lo = (uint64_t)i * chunk + (i == 0 ? 2 * MIB : 0);   /* vCPU 0: past the image */
		j->hi = (uint64_t)(i + 1) * chunk;
		j->seed = seed * 1000003u + (unsigned int)i;
		j->iterations = iterations ? iterations : 100;
		j->image = image;
	}
}

/* ---- the report ---- */

static void hex(char *buf, const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sprintf(buf + 2 * i, "%02x", b[i]);
}

static void report_stats(struct report *rep, const char *section, const struct pm_model_stats *ms)
{
	report_section(rep, "%s", section);
	for (unsigned int i = 0; i < ms->nr; i++)
		report_u64(rep, ms->v[i].name, ms->v[i].value);
	report_top(rep);
}

static void report_realm(struct report *rep, const struct pm_model_stats *vm_st,
			 const struct pm_model_stats *rmm_st)
{
	report_stats(rep, "realm", vm_st);
	report_stats(rep, "rmm", rmm_st);
	report_line(rep, "rmi calls      delegate {rmm.rmi_granule_delegate}, undelegate "
		    "{rmm.rmi_granule_undelegate}, realm create {rmm.rmi_realm_create} / activate "
		    "{rmm.rmi_realm_activate}, rec create {rmm.rmi_rec_create}");
	report_line(rep, "               rtt create {rmm.rmi_rtt_create}, fold {rmm.rmi_rtt_fold}, "
		    "init ripas {rmm.rmi_rtt_init_ripas}, set ripas {rmm.rmi_rtt_set_ripas}, "
		    "read entry {rmm.rmi_rtt_read_entry}");
	report_line(rep, "               data create {rmm.rmi_data_create}, create unknown "
		    "{rmm.rmi_data_create_unknown}, destroy {rmm.rmi_data_destroy}, map unprotected "
		    "{rmm.rmi_rtt_map_unprotected}, unmap {rmm.rmi_rtt_unmap_unprotected}; errors "
		    "{rmm.rmi_errors}");
	report_line(rep, "granules       at the end: data {realm.granules_data}, rtt {realm.granules_rtt}, "
		    "delegated {realm.granules_delegated}, rec {realm.granules_rec}, rd {realm.granules_rd}");
	report_line(rep, "ripas changes  {realm.ripas_change_exits} exits, {realm.ripas_change_pages} pages, "
		    "{realm.ripas_change_rejected} rejected; 2M folds {realm.folds}, unfolds {realm.unfolds}");
	report_line(rep, "gpf            {realm.gpf} granule protection faults; RIM extensions "
		    "{rmm.rim_extends}, RMM TLB invalidations {rmm.rmm_tlbis}");
}

static int read_stats(struct vmm *m, struct pm_model_stats *vm_st, struct pm_model_stats *rmm_st)
{
	if (pm_kvm_ioctl(m->vm, PM_KVM_GET_MODEL_STATS, vm_st)) {
		perror("privmem: PM_KVM_GET_MODEL_STATS");
		return -1;
	}
	memset(rmm_st, 0, sizeof(*rmm_st));
	rmm_st->vm_type = PM_VM_TYPE_REALM;
	if (pm_kvm_ioctl(m->kvm, PM_KVM_GET_MODEL_STATS, rmm_st)) {
		perror("privmem: PM_KVM_GET_MODEL_STATS (system)");
		return -1;
	}
	return 0;
}

static int report_run(struct report *rep, struct vmm *m, const uint8_t rim[64], double elapsed,
		      struct pm_model_stats *vm_st, struct pm_model_stats *rmm_st)
{
	char rim_hex[2 * 32 + 1];

	if (read_stats(m, vm_st, rmm_st))
		return -1;
	hex(rim_hex, rim, 32);
	report_str(rep, "rim", rim_hex);
	report_str(rep, "rim_hash", "sha256");
	report_real(rep, "elapsed_s", elapsed);
	run_report_vm(rep, m);
	run_report_header(rep, "");
	report_line(rep, "rim            {rim} ({rim_hash}, RMM v1.0 rule)");
	report_line(rep, "elapsed        {elapsed_s:.3} s");
	report_line(rep, "exits          ucall {exits.ucall}, memory_fault {exits.memory_fault}, "
		    "hypercall {exits.hypercall}");
	report_line(rep, "conversions    {conversions} (pages to private {pages_to_private}, "
		    "to shared {pages_to_shared}, implicit {implicit_conversions})");
	report_line(rep, "mapped         4K {mapped.4K}, 2M {mapped.2M}  (present at the end: "
		    "4K {mappings_present.4K}, 2M {mappings_present.2M})");
	report_realm(rep, vm_st, rmm_st);
	return 0;
}

static void report_checks(struct report *rep, const struct realm_ctx *ctx, int vcpus,
			  const struct pm_model_stats *vm_st, bool rim_ok, const char *guest_failure)
{
	uint64_t passed[RK_NR] = { 0 }, failed[RK_NR] = { 0 };

	for (int i = 0; i < vcpus; i++)
		for (int c = 0; c < RK_NR; c++) {
			passed[c] += ctx->jobs[i].passed[c];
			failed[c] += ctx->jobs[i].failed[c];
		}
	(rim_ok ? passed : failed)[RK_RIM_OFFLINE]++;
	(vmm_model_stat(vm_st, "gpf") ? failed : passed)[RK_NO_GPF]++;
	run_report_checks(rep, realm_check_names, passed, failed, RK_NR, guest_failure, false);
}

/* ---- the runner ---- */

int run_realm(const struct run_opts *o, struct report *rep)
{
	struct realm_ctx *ctx = calloc(1, sizeof(*ctx));
	uint8_t *image = aligned_alloc(PAGE, IMAGE_PAGES * PAGE);   /* populate wants 4K-aligned sources */
	const struct pm_realm_config cfg = {
		.hash_algo = PM_REALM_HASH_SHA256, .ipa_bits = IPA_BITS, .rim_version = 1,
		.num_bps = 1, .num_wps = 1, .flags = o->no_huge ? PM_REALM_NO_HUGE : 0,
	};
	struct pm_model_stats vm_st, rmm_st;
	struct pm_measurement64 meas;
	uint8_t offline[RIM_MAX_SIZE];
	void *args[VMM_MAX_VCPUS];
	struct timespec t0;
	double elapsed;
	struct vmm m;
	int r = 1, run_result;

	if (!ctx || !image)
		goto out_free;
	if ((o->mem / (uint64_t)o->vcpus) < 4 * MIB) {
		fprintf(stderr, "privmem: --vm-type realm needs at least 4 MiB per vCPU\n");
		r = 2;
		goto out_free;
	}
	if (vmm_create(&m, PM_VM_TYPE_REALM, o->mem, o->vcpus, 0))
		goto out_vmm;
	m.stall_s = o->stall_s;
	if (pm_kvm_ioctl(m.vm, PM_KVM_REALM_CONFIG, &cfg)) {
		perror("privmem: PM_KVM_REALM_CONFIG");
		goto out_vmm;
	}
	if (realm_build(&m, image, offline, o->vcpus))
		goto out_vmm;
	jobs_init(ctx, o->mem, o->vcpus, o->seed, o->iterations, image);
	for (int i = 0; i < o->vcpus; i++)
		args[i] = &ctx->jobs[i];
	m.ctx = ctx;
	m.sync = realm_sync;
	vmm_set_guest(&m, realm_guest_main, args);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	run_result = vmm_run_all(&m, NULL, NULL);
	elapsed = cli_elapsed(&t0);
	if (pm_kvm_ioctl(m.vm, PM_KVM_GET_MEASUREMENT64, &meas)) {
		perror("privmem: PM_KVM_GET_MEASUREMENT64");
		goto out_vmm;
	}
	if (report_run(rep, &m, meas.digest, elapsed, &vm_st, &rmm_st))
		goto out_vmm;
	report_checks(rep, ctx, o->vcpus, &vm_st, !memcmp(meas.digest, offline, RIM_MAX_SIZE),
		      run_result ? m.abort_msg : NULL);
	r = 0;
out_vmm:
	vmm_destroy(&m);
out_free:
	free(image);
	free(ctx);
	return r;
}

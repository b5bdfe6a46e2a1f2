/* SPDX-License-Identifier: MIT */
/*
 * privmem run --vm-type tdx: a TD's life on the simulated TDX module.
 *
 * The VMM builds a measured image (KVM_TDX_INIT_MEM_REGION with
 * MEASURE_MEMORY_REGION) in the last 2 MiB of guest RAM, finalizes the TD
 * and reads its MRTD. Each vCPU then, in its chunk of RAM:
 *  - accepts the chunk (2M pages where the VMM maps 2M, else 4K) and checks
 *    that accepted pages read zero and keep what it writes;
 *  - does bounce-buffer I/O: it converts a buffer to shared with MapGPA,
 *    writes a request through the shared GPA, and the VMM (at a SYNC)
 *    checks it and answers through the same memory; the guest copies the
 *    answer into private memory and checks it;
 *  - converts random 4K and 2M ranges to shared and back (MapGPA, then
 *    ACCEPT), checking the host sees shared writes and private pages come
 *    back zeroed;
 * vCPU 0 also checks the image it was built with. The report adds the TDX
 * figures: S-EPT entries by level, BUSY retries, demotions, leaked pages,
 * fatal events (0 expected) and the MRTD.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cli.h"
#include "vmm.h"

#define MIB          ((uint64_t)1 << 20)
#define PAGE         4096ULL
#define IMAGE_PAGES  64
#define BOUNCE_PAGES 4

enum tdx_check {
	TC_IMAGE, TC_ACCEPT_ZERO, TC_ACCEPT_READBACK, TC_BOUNCE_REQUEST, TC_BOUNCE_REPLY,
	TC_HOST_SEES_SHARED, TC_PRIVATE_BACK_ZERO, TC_PRIVATE_READBACK, TC_NR,
};
static const char *const tdx_check_names[] = {
	"image_intact", "accepted_page_starts_zero", "accepted_page_readback",
	"bounce_request_seen_by_host", "bounce_reply_intact", "host_sees_shared_write",
	"private_again_reads_zero", "private_readback",
};

enum { SYNC_CHECK_REQUEST, SYNC_HOST_CHECK_SHARED };

struct tdx_job {
	uint64_t base, size;        /* the vCPU's chunk */
	uint64_t image;             /* the image's gpa */
	unsigned int iterations, seed, idx;
	struct { uint64_t gpa, npages, seed; } req;
	uint64_t passed[TC_NR], failed[TC_NR];
};

static uint8_t image_bytes[IMAGE_PAGES][4096] __attribute__((aligned(4096)));

/* Of the gpa without its shared bit: the host sees the same value. */
static uint64_t pattern(uint64_t gpa, uint64_t seed)
{
	gpa &= (1ULL << 47) - 1;
	return ((gpa >> 12) * 0x9E3779B97F4A7C15ULL ^ seed * 0xC2B2AE3D27D4EB4FULL) | 1;
}

static void tcheck(struct tdx_job *j, enum tdx_check c, bool ok)
{
	if (ok)
		j->passed[c]++;
	else
		j->failed[c]++;
}

static unsigned int rnd(unsigned int *s)
{
	*s = *s * 1103515245u + 12345u;
	return *s >> 8;
}

/* ---- guest side ---- */

static void guest_map(struct pm_guest *g, uint64_t gpa, uint64_t size)
{
	uint64_t next = gpa, st;

	do {
		st = pm_guest_tdx_map_gpa(g, next, size - (next - gpa), &next);
	} while (st == PM_TDVMCALL_RETRY);
	PM_GUEST_ASSERT(g, st == PM_TDVMCALL_SUCCESS);
}

static void guest_stamp(struct pm_guest *g, uint64_t gpa, uint64_t npages, uint64_t seed)
{
	for (uint64_t p = 0; p < npages; p++)
		pm_guest_write64(g, gpa + p * PAGE, pattern(gpa + p * PAGE, seed));
}

static bool guest_has(struct pm_guest *g, uint64_t gpa, uint64_t npages, uint64_t seed)
{
	for (uint64_t p = 0; p < npages; p++)
		if (pm_guest_read64(g, gpa + p * PAGE) != (seed ? pattern(gpa + p * PAGE, seed) : 0))
			return false;
	return true;
}

static void guest_request(struct pm_guest *g, struct tdx_job *j, int cmd, uint64_t gpa,
			  uint64_t npages, uint64_t seed)
{
	j->req.gpa = gpa;
	j->req.npages = npages;
	j->req.seed = seed;
	pm_guest_sync(g, (uint64_t)cmd);
}

static void guest_accept_chunk(struct pm_guest *g, struct tdx_job *j, uint64_t gpa, uint64_t size)
{
	PM_GUEST_ASSERT(g, pm_guest_tdx_accept_range(g, gpa, size) == PM_TDX_SUCCESS);
	tcheck(j, TC_ACCEPT_ZERO, guest_has(g, gpa, size / PAGE, 0));
	guest_stamp(g, gpa, size / PAGE, j->seed);
	tcheck(j, TC_ACCEPT_READBACK, guest_has(g, gpa, size / PAGE, j->seed));
}

static void guest_bounce(struct pm_guest *g, struct tdx_job *j, uint64_t buf, uint64_t priv,
			 uint64_t seed)
{
	uint64_t shared = pm_guest_tdx_shared_bit(g);
	uint8_t page[4096];

	guest_stamp(g, buf | shared, BOUNCE_PAGES, seed);
	guest_request(g, j, SYNC_CHECK_REQUEST, buf, BOUNCE_PAGES, seed);
	/* The reply: the host wrote seed + 1 over the buffer; it is copied
	 * into private memory and checked there. */
	bool ok = true;

	for (uint64_t p = 0; p < BOUNCE_PAGES; p++) {
		pm_guest_read(g, (buf + p * PAGE) | shared, page, sizeof(page));
		pm_guest_write(g, priv + p * PAGE, page, sizeof(page));
		ok &= pm_guest_read64(g, priv + p * PAGE) == pattern(buf + p * PAGE, seed + 1);
	}
	tcheck(j, TC_BOUNCE_REPLY, ok);
}

static void guest_convert_cycle(struct pm_guest *g, struct tdx_job *j, uint64_t gpa,
				uint64_t npages, uint64_t seed)
{
	uint64_t shared = pm_guest_tdx_shared_bit(g);

	guest_map(g, gpa | shared, npages * PAGE);
	guest_stamp(g, gpa | shared, npages, seed);
	guest_request(g, j, SYNC_HOST_CHECK_SHARED, gpa, npages, seed);
	guest_map(g, gpa, npages * PAGE);
	PM_GUEST_ASSERT(g, pm_guest_tdx_accept_range(g, gpa, npages * PAGE) == PM_TDX_SUCCESS);
	tcheck(j, TC_PRIVATE_BACK_ZERO, guest_has(g, gpa, npages, 0));
	guest_stamp(g, gpa, npages, seed);
	tcheck(j, TC_PRIVATE_READBACK, guest_has(g, gpa, npages, seed));
}

static void guest_main(struct pm_guest *g, void *arg)
{
	struct tdx_job *j = arg;
	uint64_t bounce = j->base, priv = j->base + BOUNCE_PAGES * PAGE;
	uint64_t area = j->base + 2 * MIB, area_size = j->size - 2 * MIB;
	unsigned int s = j->seed;
	uint8_t page[4096];

	if (j->idx == 0)
		for (unsigned int p = 0; p < IMAGE_PAGES; p++) {
			pm_guest_read(g, j->image + p * PAGE, page, sizeof(page));
			tcheck(j, TC_IMAGE, !memcmp(page, image_bytes[p], sizeof(page)));
		}
	guest_accept_chunk(g, j, j->base, j->size);
	guest_map(g, bounce | pm_guest_tdx_shared_bit(g), BOUNCE_PAGES * PAGE);
	for (unsigned int i = 0; i < j->iterations; i++) {
		guest_bounce(g, j, bounce, priv, j->seed + i * 2);
		if (!area_size)
			continue;
		if (rnd(&s) % 4 == 0 && area_size >= 2 * MIB) {
			uint64_t blk = rnd(&s) % (area_size / (2 * MIB));

			guest_convert_cycle(g, j, area + blk * 2 * MIB, 512, j->seed + i);
		} else {
			uint64_t pg = rnd(&s) % (area_size / PAGE), n = 1 + rnd(&s) % 4;

			n = PM_MIN_U64(n, area_size / PAGE - pg);
			guest_convert_cycle(g, j, area + pg * PAGE, n, j->seed + i);
		}
	}
}

/* ---- VMM side ---- */

struct tdx_ctx {
	struct tdx_job jobs[VMM_MAX_VCPUS];
};

static bool host_has(struct vmm *m, uint64_t gpa, uint64_t npages, uint64_t seed)
{
	for (uint64_t p = 0; p < npages; p++) {
		uint64_t v;

		memcpy(&v, m->shared + gpa + p * PAGE, sizeof(v));
		if (v != pattern(gpa + p * PAGE, seed))
			return false;
	}
	return true;
}

static void tdx_sync(struct vmm *m, int vcpu, const struct pm_ucall *uc)
{
	struct tdx_job *j = &((struct tdx_ctx *)m->ctx)->jobs[vcpu];

	if (uc->args[0] == SYNC_HOST_CHECK_SHARED) {
		tcheck(j, TC_HOST_SEES_SHARED, host_has(m, j->req.gpa, j->req.npages, j->req.seed));
		return;
	}
	/* The device: check the request, answer in place. */
	tcheck(j, TC_BOUNCE_REQUEST, host_has(m, j->req.gpa, j->req.npages, j->req.seed));
	for (uint64_t p = 0; p < j->req.npages; p++) {
		uint64_t gpa = j->req.gpa + p * PAGE, v = pattern(gpa, j->req.seed + 1);

		memcpy(m->shared + gpa, &v, sizeof(v));
	}
}

/* The build: INIT_VM, INIT_VCPU, all RAM private, the measured image,
 * FINALIZE. 0 or -1 with a message. */
static int tdx_build(struct vmm *m, uint64_t image, const struct run_tdx_opts *o)
{
	struct kvm_tdx_init_mem_region r = { .source_addr = (uintptr_t)image_bytes, .gpa = image,
					     .nr_pages = IMAGE_PAGES };
	struct pm_tdx_config cfg = { .busy_per_million = o->busy_per_million,
				     .flags = o->no_huge ? PM_TDX_NO_HUGE : 0 };

	for (unsigned int p = 0; p < IMAGE_PAGES; p++)
		for (unsigned int i = 0; i < 4096; i++)
			image_bytes[p][i] = (uint8_t)(i * 7 + p * 131 + o->seed);
	if (vmm_tdx_init(m, &cfg))
		return -1;
	if (vmm_tdx_op(m->vcpu[0], KVM_TDX_INIT_MEM_REGION, KVM_TDX_MEASURE_MEMORY_REGION, &r)) {
		perror("KVM_TDX_INIT_MEM_REGION");
		return -1;
	}
	if (vmm_tdx_op(m->vm, KVM_TDX_FINALIZE_VM, 0, NULL)) {
		perror("KVM_TDX_FINALIZE_VM");
		return -1;
	}
	return 0;
}

struct tdx_report {
	const struct run_tdx_opts *o;
	struct tdx_ctx *ctx;
	struct pm_vm_stats vs;
	struct pm_model_stats ms;    /* the TDX model's counters */
	struct pm_pool_stats ps;
	uint8_t mrtd[48];
	double elapsed;
	uint64_t passed[TC_NR], failed[TC_NR], total_passed, total_failed;
	int run_result;
	const char *abort_msg;
};

static void report_collect(struct tdx_report *r, struct vmm *m)
{
	struct pm_measurement meas;

	for (int i = 0; i < r->o->vcpus; i++)
		for (int c = 0; c < TC_NR; c++) {
			r->passed[c] += r->ctx->jobs[i].passed[c];
			r->failed[c] += r->ctx->jobs[i].failed[c];
		}
	for (int c = 0; c < TC_NR; c++) {
		r->total_passed += r->passed[c];
		r->total_failed += r->failed[c];
	}
	vmm_vm_stats(m, &r->vs);
	vmm_pool_stats(m, &r->ps);
	pm_kvm_ioctl(m->vm, PM_KVM_GET_MODEL_STATS, &r->ms);
	if (!pm_kvm_ioctl(m->vm, PM_KVM_GET_MEASUREMENT, &meas))
		memcpy(r->mrtd, meas.digest, sizeof(r->mrtd));
	r->abort_msg = m->abort_msg;
}

static void hex(const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		printf("%02x", b[i]);
}

static bool report_failed(const struct tdx_report *r)
{
	return r->total_failed || r->run_result || vmm_model_stat(&r->ms, "fatal_events") ||
	       vmm_model_stat(&r->ms, "leaked_pages");
}

static void report_text(const struct tdx_report *r)
{
	const struct pm_model_stats *t = &r->ms;

	printf("privmem run: vm-type tdx, %" PRIu64 " MiB, %d vCPUs, seed %u, busy %u/1e6%s\n",
	       r->o->mem / MIB, r->o->vcpus, r->o->seed, r->o->busy_per_million,
	       r->o->no_huge ? ", 4K only" : "");
	printf("elapsed        %.3f s\n", r->elapsed);
	printf("exits          ucall %" PRIu64 ", memory_fault %" PRIu64 ", hypercall %" PRIu64
	       ", system_event %" PRIu64 "\n", (uint64_t)r->vs.exits[0], (uint64_t)r->vs.exits[1],
	       (uint64_t)r->vs.exits[2], (uint64_t)r->vs.exits[5]);
	printf("faults         %" PRIu64 " (retried %" PRIu64 ")\n", (uint64_t)r->vs.faults,
	       (uint64_t)r->vs.fault_retries);
	printf("mapped         4K %" PRIu64 ", 2M %" PRIu64 " (present: 4K %" PRIu64 ", 2M %" PRIu64 ")\n",
	       (uint64_t)r->vs.mapped[0], (uint64_t)r->vs.mapped[1], (uint64_t)r->vs.mappings[0],
	       (uint64_t)r->vs.mappings[1]);
	printf("tlb shootdowns %" PRIu64 "\n", (uint64_t)r->vs.tlb_shootdowns);
	printf("S-EPT          4K %" PRIu64 ", 2M %" PRIu64 ", 1G %" PRIu64 ", tables %" PRIu64 "\n",
	       vmm_model_stat(t, "sept_4k"), vmm_model_stat(t, "sept_2m"),
	       vmm_model_stat(t, "sept_1g"), vmm_model_stat(t, "sept_tables"));
	printf("SEAMCALLs      PAGE.ADD %" PRIu64 ", MR.EXTEND %" PRIu64 ", PAGE.AUG %" PRIu64
	       ", PAGE.REMOVE %" PRIu64 ", TRACK %" PRIu64 "\n", vmm_model_stat(t, "page_adds"),
	       vmm_model_stat(t, "mr_extends"), vmm_model_stat(t, "page_augs"),
	       vmm_model_stat(t, "page_removes"), vmm_model_stat(t, "tracks"));
	printf("busy retries   %" PRIu64 " (injected %" PRIu64 "), frozen-entry retries %" PRIu64 "\n",
	       vmm_model_stat(t, "busy_retries"), vmm_model_stat(t, "busy_injected"),
	       vmm_model_stat(t, "frozen_retries"));
	printf("demotions      %" PRIu64 "\n", vmm_model_stat(t, "demotions"));
	printf("leaked pages   %" PRIu64 "\n", vmm_model_stat(t, "leaked_pages"));
	printf("fatal events   %" PRIu64 "\n", vmm_model_stat(t, "fatal_events"));
	printf("MRTD           ");
	hex(r->mrtd, sizeof(r->mrtd));
	printf("\nframe pool     in use %.1f MiB, scrubbed %.1f MiB\n", (double)r->ps.in_use / MIB,
	       (double)r->ps.scrubbed / MIB);
	cli_report_checks(tdx_check_names, r->passed, r->failed, TC_NR, r->run_result ? r->abort_msg : NULL,
			  report_failed(r), false);
}

static void report_json(const struct tdx_report *r)
{
	const struct pm_model_stats *t = &r->ms;

	printf("{\"vm_type\":\"tdx\",\"mem_bytes\":%" PRIu64 ",\"vcpus\":%d,\"seed\":%u,"
	       "\"busy_per_million\":%u,\"elapsed_s\":%.6f", r->o->mem, r->o->vcpus, r->o->seed,
	       r->o->busy_per_million, r->elapsed);
	printf(",\"exits\":{\"ucall\":%" PRIu64 ",\"memory_fault\":%" PRIu64 ",\"hypercall\":%" PRIu64
	       ",\"system_event\":%" PRIu64 "}", (uint64_t)r->vs.exits[0], (uint64_t)r->vs.exits[1],
	       (uint64_t)r->vs.exits[2], (uint64_t)r->vs.exits[5]);
	printf(",\"sept_entries\":{\"4K\":%" PRIu64 ",\"2M\":%" PRIu64 ",\"1G\":%" PRIu64
	       ",\"tables\":%" PRIu64 "}", vmm_model_stat(t, "sept_4k"), vmm_model_stat(t, "sept_2m"),
	       vmm_model_stat(t, "sept_1g"), vmm_model_stat(t, "sept_tables"));
	printf(",\"page_adds\":%" PRIu64 ",\"mr_extends\":%" PRIu64 ",\"page_augs\":%" PRIu64
	       ",\"page_removes\":%" PRIu64 ",\"tracks\":%" PRIu64, vmm_model_stat(t, "page_adds"),
	       vmm_model_stat(t, "mr_extends"), vmm_model_stat(t, "page_augs"),
	       vmm_model_stat(t, "page_removes"), vmm_model_stat(t, "tracks"));
	printf(",\"busy_retries\":%" PRIu64 ",\"busy_injected\":%" PRIu64 ",\"frozen_retries\":%" PRIu64
	       ",\"demotions\":%" PRIu64 ",\"leaked_pages\":%" PRIu64 ",\"fatal_events\":%" PRIu64,
	       vmm_model_stat(t, "busy_retries"), vmm_model_stat(t, "busy_injected"),
	       vmm_model_stat(t, "frozen_retries"), vmm_model_stat(t, "demotions"),
	       vmm_model_stat(t, "leaked_pages"), vmm_model_stat(t, "fatal_events"));
	printf(",\"mrtd\":\"");
	hex(r->mrtd, sizeof(r->mrtd));
	printf("\"");
	cli_report_checks(tdx_check_names, r->passed, r->failed, TC_NR, r->run_result ? r->abort_msg : NULL,
			  report_failed(r), true);
}

static void jobs_init(struct tdx_ctx *ctx, const struct run_tdx_opts *o, uint64_t image)
{
	uint64_t chunk = PM_ALIGN_DOWN_U64((o->mem - 2 * MIB) / (uint64_t)o->vcpus, 2 * MIB);

	for (int i = 0; i < o->vcpus; i++) {
		struct tdx_job *j = &ctx->jobs[i];

		j->base = (uint64_t)i * chunk;
		j->size = chunk;
		j->image = image;
		j->idx = (unsigned int)i;
		j->seed = o->seed * 1000003u + (unsigned int)i;
		j->iterations = o->iterations ? o->iterations : 100;
	}
}

int run_tdx(const struct run_tdx_opts *o)
{
	struct tdx_ctx *ctx = calloc(1, sizeof(*ctx));
	uint64_t image = o->mem - 2 * MIB;
	struct tdx_report rep = { .o = o };
	void *args[VMM_MAX_VCPUS];
	struct timespec t0;
	struct vmm m;
	int r = 1;

	if (!ctx)
		return 1;
	if ((o->mem - 2 * MIB) / (uint64_t)o->vcpus < 2 * MIB) {
		fprintf(stderr, "privmem: tdx needs 2 MiB per vCPU plus 2 MiB for the image\n");
		free(ctx);
		return 2;
	}
	if (vmm_create(&m, KVM_X86_TDX_VM, o->mem, o->vcpus, 0) || tdx_build(&m, image, o))
		goto out;
	jobs_init(ctx, o, image);
	for (int i = 0; i < o->vcpus; i++)
		args[i] = &ctx->jobs[i];
	m.ctx = ctx;
	m.sync = tdx_sync;
	vmm_set_guest(&m, guest_main, args);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rep.run_result = vmm_run_all(&m, NULL, NULL);
	rep.elapsed = cli_elapsed(&t0);
	rep.ctx = ctx;
	report_collect(&rep, &m);
	if (o->json)
		report_json(&rep);
	else
		report_text(&rep);
	r = report_failed(&rep) ? 1 : 0;
out:
	vmm_destroy(&m);
	free(ctx);
	return r;
}

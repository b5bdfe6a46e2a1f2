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
 * vCPU 0 also checks the image it was built with. With --firmware, the
 * build is QEMU's of that OVMF image instead of the small image: the image
 * in a flash memslot ending at 4 GiB, then one KVM_TDX_INIT_MEM_REGION per
 * TDVF section in metadata order (BFV and CFV from the image, TD_HOB and
 * TempMem zero pages; MEASURE_MEMORY_REGION where the section has
 * MR_EXTEND; PAGE_AUG sections left out), so the MRTD is `privmem measure
 * tdx`'s; vCPU 0 checks every section's pages, and the vCPUs work in RAM
 * above the sections. The vCPUs do not execute the firmware. The report adds the TDX
 * figures: S-EPT entries by level, BUSY retries, demotions, leaked pages,
 * fatal events (0 expected) and the MRTD; its JSON has every counter of
 * the model, under the model's names. The run fails on a failed check, a
 * guest that did not finish, a fatal event or a leaked page.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cli.h"
#include "fw_image.h"
#include "run.h"

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
_Static_assert(sizeof(tdx_check_names) / sizeof(tdx_check_names[0]) == TC_NR, "a name per check");

enum { SYNC_CHECK_REQUEST, SYNC_HOST_CHECK_SHARED };

struct tdx_job {
	uint64_t base, size;        /* the vCPU's chunk */
	uint64_t image;             /* the image's gpa */
	const struct run_fw *fw;    /* --firmware (NULL: the image above) */
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

/* The content section s of the firmware was added with: its bytes in the
 * image for BFV and CFV (zero past them), else zero. */
static void fw_section_page(const struct run_fw *fw, const struct fw_tdx_section *s, uint64_t off,
			    uint8_t page[PAGE])
{
	uint64_t left = s->raw_size > off ? s->raw_size - off : 0;

	memset(page, 0, PAGE);
	if (s->type <= FW_TDX_CFV && left)
		memcpy(page, fw->data + s->data_offset + off, PM_MIN_U64(left, PAGE));
}

/* vCPU 0, with --firmware: every page the build added holds its content. */
static void guest_check_firmware(struct pm_guest *g, struct tdx_job *j)
{
	const struct fw_image *img = j->fw->img;
	uint8_t page[4096], want[4096];

	for (unsigned int i = 0; i < img->nr_tdx; i++) {
		const struct fw_tdx_section *s = &img->tdx[i];
		bool ok = true;

		for (uint64_t off = 0; !(s->attributes & FW_TDX_PAGE_AUG) && off < s->mem_size; off += PAGE) {
			pm_guest_read(g, s->gpa + off, page, sizeof(page));
			fw_section_page(j->fw, s, off, want);
			ok &= !memcmp(page, want, sizeof(page));
		}
		tcheck(j, TC_IMAGE, ok);
	}
}

static void guest_main(struct pm_guest *g, void *arg)
{
	struct tdx_job *j = arg;
	uint64_t bounce = j->base, priv = j->base + BOUNCE_PAGES * PAGE;
	uint64_t area = j->base + 2 * MIB, area_size = j->size - 2 * MIB;
	unsigned int s = j->seed;
	uint8_t page[4096];

	if (j->idx == 0 && j->fw)
		guest_check_firmware(g, j);
	else if (j->idx == 0)
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

/* One KVM_TDX_INIT_MEM_REGION on vCPU 0: 0 or -1 with a message. */
static int add_region(struct vmm *m, const void *src, uint64_t gpa, uint64_t npages, bool measure)
{
	struct kvm_tdx_init_mem_region r = { .source_addr = (uintptr_t)src, .gpa = gpa,
					     .nr_pages = npages };

	if (vmm_tdx_op(m, m->vcpu[0], KVM_TDX_INIT_MEM_REGION,
		       measure ? KVM_TDX_MEASURE_MEMORY_REGION : 0, &r)) {
		vmm_tdx_build_error(m, "KVM_TDX_INIT_MEM_REGION");
		return -1;
	}
	return 0;
}

/* --firmware: the flash, then each TDVF section in metadata order from a
 * page-aligned copy of its content, as QEMU's TD build. */
static int add_firmware(struct vmm *m, const struct run_fw *fw)
{
	const struct fw_image *img = fw->img;

	if (vmm_add_flash(m, img->gpa, img->size))
		return -1;
	for (unsigned int i = 0; i < img->nr_tdx; i++) {
		const struct fw_tdx_section *s = &img->tdx[i];
		uint8_t *buf = NULL;
		int r;

		if (s->attributes & FW_TDX_PAGE_AUG)
			continue;
		if (posix_memalign((void **)&buf, PAGE, s->mem_size)) {
			fprintf(stderr, "privmem: out of memory for TDX section %u\n", i);
			return -1;
		}
		for (uint64_t off = 0; off < s->mem_size; off += PAGE)
			fw_section_page(fw, s, off, buf + off);
		r = add_region(m, buf, s->gpa, s->mem_size / PAGE, s->attributes & FW_TDX_MR_EXTEND);
		free(buf);
		if (r)
			return r;
	}
	return 0;
}

/* The build: INIT_VM, INIT_VCPU, all RAM private, the measured image (or
 * the firmware), FINALIZE. 0 or -1 with a message. */
static int tdx_build(struct vmm *m, uint64_t image, const struct run_opts *o, const struct run_fw *fw)
{
	struct pm_tdx_config cfg = { .busy_per_million = o->busy_per_million,
				     .flags = o->no_huge ? PM_TDX_NO_HUGE : 0 };

	const void *src = image_bytes;
	int slot, ret = -1;

	for (unsigned int p = 0; p < IMAGE_PAGES; p++)
		for (unsigned int i = 0; i < 4096; i++)
			image_bytes[p][i] = (uint8_t)(i * 7 + p * 131 + o->seed);
	/* In place: the image goes into the guest_memfd pages while they are
	 * shared (RAM starts so), and INIT_MEM_REGION takes it from there
	 * (source_addr 0, 23/46) once the build made RAM private. */
	if (m->in_place) {
		memcpy(m->shared + image, image_bytes, sizeof(image_bytes));
		src = NULL;
	}
	slot = vmm_watch_enter(m);      /* a module that is always busy: no progress */
	if (vmm_tdx_init(m, &cfg))
		goto out;
	if (fw ? add_firmware(m, fw) : add_region(m, src, image, IMAGE_PAGES, true))
		goto out;
	if (vmm_tdx_op(m, m->vm, KVM_TDX_FINALIZE_VM, 0, NULL)) {
		vmm_tdx_build_error(m, "KVM_TDX_FINALIZE_VM");
		goto out;
	}
	ret = 0;
out:
	vmm_watch_leave(m, slot);
	return ret;
}

/* The vCPUs' chunks of RAM: [lo, hi) split in 2M-aligned shares. */
static void jobs_init(struct tdx_ctx *ctx, const struct run_opts *o, uint64_t lo, uint64_t hi,
		      uint64_t image, const struct run_fw *fw)
{
	uint64_t chunk = PM_ALIGN_DOWN_U64((hi - lo) / (uint64_t)o->vcpus, 2 * MIB);

	for (int i = 0; i < o->vcpus; i++) {
		struct tdx_job *j = &ctx->jobs[i];

		j->base = lo + (uint64_t)i * chunk;
		j->size = chunk;
		j->image = image;
		j->fw = fw;
		j->idx = (unsigned int)i;
		j->seed = o->seed * 1000003u + (unsigned int)i;
		j->iterations = o->iterations ? o->iterations : 100;
	}
}

/* ---- the report ---- */

static void hex(char *buf, const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sprintf(buf + 2 * i, "%02x", b[i]);
}

/* The model's counters under its names, at the top level, except the
 * S-EPT's entries by level: in "sept_entries", by level. */
static void report_tdx(struct report *rep, const struct pm_model_stats *ms)
{
	static const struct { const char *stat, *key; } sept[] = {
		{ "sept_4k", "4K" }, { "sept_2m", "2M" }, { "sept_1g", "1G" }, { "sept_tables", "tables" },
	};
	bool in_sept;

	report_section(rep, "sept_entries");
	for (size_t k = 0; k < sizeof(sept) / sizeof(sept[0]); k++)
		report_u64(rep, sept[k].key, vmm_model_stat(ms, sept[k].stat));
	report_top(rep);
	for (unsigned int i = 0; i < ms->nr; i++) {
		in_sept = false;
		for (size_t k = 0; k < sizeof(sept) / sizeof(sept[0]); k++)
			in_sept |= !strcmp(ms->v[i].name, sept[k].stat);
		if (!in_sept)
			report_u64(rep, ms->v[i].name, ms->v[i].value);
	}
}

static void report_lines(struct report *rep, const struct run_opts *o)
{
	char more[64];

	snprintf(more, sizeof(more), ", busy {busy_per_million}/1e6%s", o->no_huge ? ", 4K only" : "");
	run_report_header(rep, more);
	report_line(rep, "elapsed        {elapsed_s:.3} s");
	report_line(rep, "exits          ucall {exits.ucall}, memory_fault {exits.memory_fault}, "
		    "hypercall {exits.hypercall}, system_event {exits.system_event}");
	report_line(rep, "faults         {faults} (retried {fault_retries})");
	report_line(rep, "mapped         4K {mapped.4K}, 2M {mapped.2M} (present: 4K {mappings_present.4K}, "
		    "2M {mappings_present.2M})");
	report_line(rep, "tlb shootdowns {tlb_shootdowns}");
	report_line(rep, "S-EPT          4K {sept_entries.4K}, 2M {sept_entries.2M}, 1G {sept_entries.1G}, "
		    "tables {sept_entries.tables}");
	report_line(rep, "SEAMCALLs      PAGE.ADD {page_adds}, MR.EXTEND {mr_extends}, PAGE.AUG {page_augs}, "
		    "PAGE.REMOVE {page_removes}, TRACK {tracks}");
	report_line(rep, "busy retries   {busy_retries} (injected {busy_injected}), "
		    "frozen-entry retries {frozen_retries}");
	report_line(rep, "demotions      {demotions}");
	report_line(rep, "leaked pages   {leaked_pages}");
	report_line(rep, "fatal events   {fatal_events}");
	report_line(rep, "MRTD           {mrtd}");
	if (o->firmware)
		report_line(rep, "firmware       {firmware} (built as QEMU does; not executed)");
	report_line(rep, "frame pool     in use {pool.in_use:MiB.1} MiB, scrubbed {pool.scrubbed:MiB.1} MiB");
}

/* Everything, read before the VM goes. The run fails on a failed check, a
 * guest that did not finish, a fatal event or a leaked page. */
static int report_run(struct report *rep, const struct run_opts *o, const struct tdx_ctx *ctx,
		      struct vmm *m, double elapsed, int run_result)
{
	uint64_t passed[TC_NR] = { 0 }, failed[TC_NR] = { 0 };
	struct pm_measurement meas = { { 0 } };
	char mrtd[2 * sizeof(meas.digest) + 1];
	struct pm_model_stats ms;

	if (pm_kvm_ioctl(m->vm, PM_KVM_GET_MODEL_STATS, &ms)) {
		perror("privmem: PM_KVM_GET_MODEL_STATS");
		return -1;
	}
	if (pm_kvm_ioctl(m->vm, PM_KVM_GET_MEASUREMENT, &meas))
		memset(&meas, 0, sizeof(meas));        /* a build that failed: no MRTD */
	hex(mrtd, meas.digest, sizeof(meas.digest));
	for (int i = 0; i < o->vcpus; i++)
		for (int c = 0; c < TC_NR; c++) {
			passed[c] += ctx->jobs[i].passed[c];
			failed[c] += ctx->jobs[i].failed[c];
		}
	report_u64(rep, "busy_per_million", o->busy_per_million);
	report_bool(rep, "no_huge", o->no_huge);
	report_real(rep, "elapsed_s", elapsed);
	run_report_vm(rep, m);
	report_tdx(rep, &ms);
	report_str(rep, "mrtd", mrtd);
	if (o->firmware)
		report_str(rep, "firmware", o->firmware);
	report_lines(rep, o);
	run_report_checks(rep, tdx_check_names, passed, failed, TC_NR, run_result ? m->abort_msg : NULL,
			  run_result || vmm_model_stat(&ms, "fatal_events") ||
			  vmm_model_stat(&ms, "leaked_pages"));
	return 0;
}

/* ---- the runner ---- */

int run_tdx(const struct run_opts *o, struct report *rep)
{
	struct tdx_ctx *ctx = calloc(1, sizeof(*ctx));
	uint64_t image = o->mem - 2 * MIB, lo = 0, hi = image;
	struct run_fw fw = { 0 };
	void *args[VMM_MAX_VCPUS];
	struct timespec t0;
	struct vmm m;
	double elapsed;
	int r = 1, run_result;

	if (!ctx)
		return 1;
	if (o->firmware) {          /* no image of the runner's: RAM above the sections */
		r = run_fw_load(o, true, &fw);
		if (r) {
			free(ctx);
			return r;
		}
		r = 1;
		lo = fw.ram_end;
		hi = o->mem;
	}
	if (hi < lo + 2 * MIB * (uint64_t)o->vcpus) {
		fprintf(stderr, "privmem: tdx needs 2 MiB per vCPU plus %s\n",
			o->firmware ? "the firmware's sections in RAM" : "2 MiB for the image");
		run_fw_free(&fw);
		free(ctx);
		return 2;
	}
	if (vmm_create(&m, KVM_X86_TDX_VM, o->mem, o->vcpus, 0))
		goto out;
	m.stall_s = o->stall_s;
	if (tdx_build(&m, image, o, o->firmware ? &fw : NULL))
		goto out;
	jobs_init(ctx, o, lo, hi, image, o->firmware ? &fw : NULL);
	for (int i = 0; i < o->vcpus; i++)
		args[i] = &ctx->jobs[i];
	m.ctx = ctx;
	m.sync = tdx_sync;
	vmm_set_guest(&m, guest_main, args);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	run_result = vmm_run_all(&m, o->progress ? run_progress_tick : NULL, &t0);
	elapsed = cli_elapsed(&t0);
	if (o->progress)
		run_progress_clear();
	if (!report_run(rep, o, ctx, &m, elapsed, run_result))
		r = 0;
out:
	vmm_destroy(&m);
	run_fw_free(&fw);
	free(ctx);
	return r;
}

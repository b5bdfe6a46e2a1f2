/* SPDX-License-Identifier: MIT */
/*
 * privmem run --vm-type snp: an SEV-SNP guest's life on the simulated
 * hardware.
 *
 *  1. Measured launch: the VMM makes the first pages private and loads a
 *     "firmware" image (NORMAL pages), a SECRETS page, a CPUID page and ZERO
 *     pages with KVM_SEV_SNP_LAUNCH_UPDATE, then LAUNCH_FINISH; the launch
 *     digest is read with PM_KVM_GET_MEASUREMENT. With --firmware, the
 *     launch is QEMU's of that OVMF image instead: the image into a flash
 *     memslot ending at 4 GiB (NORMAL pages), its SEV metadata sections in
 *     order (ZERO, SECRETS, CPUID pages; the kernel hashes page ZERO: no
 *     kernel), each vCPU at its reset vector (the BSP at 0xFFFFFFF0, the
 *     APs at the SEV-ES reset block's EIP, RDX the EPYC-v4 signature), so
 *     the digest is `privmem measure snp`'s for the same vCPU count. The
 *     vCPUs do not execute the firmware: they run the guests below.
 *  2. Boot: each vCPU accepts its chunk of RAM as Linux guests do (PSC of
 *     up to 64 entries, 2M where a 2M block lies inside, then PVALIDATE),
 *     but for its last part (an eighth, at most 1 MiB), which it accepts by
 *     implicit conversion: it PVALIDATEs each page with the C-bit set
 *     without asking first; the access faults on a shared page, KVM exits
 *     with KVM_EXIT_MEMORY_FAULT (PRIVATE), the VMM converts the page and
 *     the instruction completes. vCPU 0 first checks the launch image it
 *     finds in private memory.
 *  3. Work: bounce-buffer I/O (the VMM, as a device, fills a shared buffer;
 *     the guest copies it into private memory) and random conversions (a
 *     range goes shared, the host writes it, it comes back private), each
 *     way by PSC or, one time in two, implicitly (to shared: the guest
 *     rescinds the pages' validation and its first shared access faults,
 *     a KVM_EXIT_MEMORY_FAULT the VMM answers by converting), with data
 *     checks at every step.
 * The report adds the SNP figures: RMP entries by size (the 2M entries that
 * survive the run), PSMASHes, PSC requests, entries and exits, PVALIDATEs,
 * RMP violations (a check: must be 0) and the launch digest; its JSON has
 * every counter of the model, under the model's names, in "snp". This is
 * the VM type `privmem run` runs by default: it shows every headline
 * feature, the private fault path's implicit conversions included.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cli.h"
#include "fw_image.h"
#include "measure.h"
#include "run.h"

#define MIB        ((uint64_t)1 << 20)
#define PAGE       4096ULL
#define C          PM_SNP_C_BIT
#define IMAGE_PAGES   16                 /* NORMAL pages of the launch image */
#define LAUNCH_PAGES  (IMAGE_PAGES + 2 + 4) /* + SECRETS, CPUID, 4 ZERO */
#define IO_LEN     (64 * 1024)           /* per vCPU, at the end of its chunk: shared */
#define BOUNCE_MAX (IO_LEN - 2 * PAGE)
#define PSC_BATCH  64                    /* entries per PSC request, as Linux */

enum snp_check {
	SK_LAUNCH_IMAGE, SK_ACCEPT_ZERO, SK_ACCEPT_READBACK, SK_BOUNCE, SK_HOST_WRITE_SEEN,
	SK_RECONVERT_ZERO, SK_PRIVATE_READBACK, SK_NO_RMP_VIOLATION, SK_RECONVERT_KEEPS, SK_NR,
};
static const char *const snp_check_names[] = {
	"launch_image_intact", "accepted_page_starts_zero", "accepted_page_readback",
	"bounce_data_intact", "guest_sees_host_write_after_share", "reconverted_page_starts_zero",
	"private_readback", "no_rmp_violation", "reconverted_page_keeps_shared_data",
};
_Static_assert(sizeof(snp_check_names) / sizeof(snp_check_names[0]) == SK_NR, "a name per check");

enum { SYNC_IO = 1, SYNC_HOST_WRITE = 2 };

struct snp_job {
	int id;
	uint64_t base, size;         /* the vCPU's chunk */
	uint64_t acc_lo, acc_hi;     /* accepted (private) part */
	uint64_t io;                 /* PSC descriptor page, then the bounce buffer */
	unsigned int iterations, seed;
	struct { uint64_t gpa, len, seq; } req;
	uint64_t passed[SK_NR], failed[SK_NR];
	uint8_t *image;              /* vCPU 0: what was loaded at launch */
	const struct run_fw *fw;     /* --firmware (NULL: the image above) */
	bool in_place;               /* in-place conversion: pages keep their data */
};

static void check(struct snp_job *j, enum snp_check c, bool ok)
{
	if (ok)
		j->passed[c]++;
	else
		j->failed[c]++;
}

static uint32_t rnd(unsigned int *seed)
{
	return (uint32_t)rand_r(seed);
}

/* ---- guest side ---- */

static void guest_check_launch(struct pm_guest *g, struct snp_job *j)
{
	uint8_t page[PAGE];
	bool ok = true;

	for (unsigned int p = 0; p < IMAGE_PAGES + 2; p++) {
		pm_guest_read(g, (p * PAGE) | C, page, PAGE);
		if (p == IMAGE_PAGES)            /* SECRETS: the firmware's, not the VMM's */
			ok &= memcmp(page, j->image + p * PAGE, PAGE) != 0;
		else
			ok &= !memcmp(page, j->image + p * PAGE, PAGE);
	}
	for (unsigned int p = IMAGE_PAGES + 2; p < LAUNCH_PAGES; p++)
		ok &= pm_guest_read64(g, (p * PAGE + 256) | C) == 0;
	check(j, SK_LAUNCH_IMAGE, ok);
}

/* --firmware: the flash holds the image, the SNP_SEC_MEM pages read zero. */
static void guest_check_firmware(struct pm_guest *g, struct snp_job *j)
{
	const struct fw_image *img = j->fw->img;
	uint8_t page[PAGE];
	bool ok = true;

	for (uint64_t p = 0; p < img->size; p += PAGE) {
		pm_guest_read(g, (img->gpa + p) | C, page, PAGE);
		ok &= !memcmp(page, j->fw->data + p, PAGE);
	}
	for (unsigned int i = 0; i < img->nr_sev; i++)
		for (uint64_t p = 0; img->sev[i].type == FW_SEV_SEC_MEM && p < img->sev[i].size; p += PAGE)
			ok &= pm_guest_read64(g, (img->sev[i].gpa + p + 256) | C) == 0;
	check(j, SK_LAUNCH_IMAGE, ok);
}

/* Implicit conversion to private, page by page: PVALIDATE of the private
 * GPA faults on a shared page; KVM exits (KVM_EXIT_MEMORY_FAULT, PRIVATE),
 * the VMM converts the page, and the instruction completes. */
static void guest_implicit_private(struct pm_guest *g, uint64_t gpa, uint64_t npages)
{
	for (uint64_t p = 0; p < npages; p++)
		PM_GUEST_ASSERT(g, pm_guest_snp_pvalidate(g, (gpa + p * PAGE) | C, false, true) == 0);
}

/* And to shared: the guest rescinds each page's validation, then its first
 * shared access faults on the private page, and the VMM converts it. */
static void guest_implicit_shared(struct pm_guest *g, uint64_t gpa, uint64_t npages)
{
	for (uint64_t p = 0; p < npages; p++) {
		PM_GUEST_ASSERT(g, pm_guest_snp_pvalidate(g, (gpa + p * PAGE) | C, false, false) == 0);
		pm_guest_write64(g, gpa + p * PAGE, 0);
	}
}

static void guest_accept(struct pm_guest *g, struct snp_job *j)
{
	uint64_t n = (j->acc_hi - j->acc_lo) / PAGE, implicit = PM_MIN_U64(n / 8, MIB / PAGE);

	PM_GUEST_ASSERT(g, pm_guest_snp_make_private(g, j->acc_lo, n - implicit, j->io, PSC_BATCH) == 0);
	guest_implicit_private(g, j->acc_hi - implicit * PAGE, implicit);
	check(j, SK_ACCEPT_ZERO, run_guest_pages_hold(g, j->acc_lo, n, 0, true, C));
	run_guest_stamp(g, j->acc_lo, n, j->seed, C);
	check(j, SK_ACCEPT_READBACK, run_guest_pages_hold(g, j->acc_lo, n, j->seed, false, C));
}

/* A random range of the accepted part: 1-16 pages, or a 2M block. */
static void guest_pick(struct snp_job *j, unsigned int *seed, uint64_t *gpa, uint64_t *n)
{
	uint64_t lo = j->acc_lo / PAGE, hi = j->acc_hi / PAGE;

	*n = (rnd(seed) & 1) && hi - lo >= 1024 ? 512 : 1 + rnd(seed) % 16;
	*gpa = lo + rnd(seed) % (hi - lo - *n);
	if (*n == 512)
		*gpa = (*gpa + 511) & ~511ULL;
	if (*gpa + *n > hi)
		*gpa = hi - *n;
	*gpa *= PAGE;
}

static void guest_bounce(struct pm_guest *g, struct snp_job *j, unsigned int *seed, uint64_t seq)
{
	uint64_t len = 8 * (1 + rnd(seed) % (BOUNCE_MAX / 8)), buf[64];
	uint64_t gpa, n, dst;
	bool ok = true;

	guest_pick(j, seed, &gpa, &n);
	len = len > n * PAGE ? n * PAGE : len;
	j->req.len = len;
	j->req.seq = seq;
	pm_guest_sync(g, SYNC_IO);                  /* the device fills the bounce buffer */
	for (uint64_t off = 0; off < len; off += sizeof(buf)) {
		uint64_t c = len - off < sizeof(buf) ? len - off : sizeof(buf);

		pm_guest_read(g, j->io + 2 * PAGE + off, buf, c);     /* shared */
		pm_guest_write(g, (gpa + off) | C, buf, c);           /* private */
	}
	for (dst = 0; dst < len; dst += 8)
		ok &= pm_guest_read64(g, (gpa + dst) | C) == run_pattern(dst, seq);
	check(j, SK_BOUNCE, ok);
	run_guest_stamp(g, gpa, n, j->seed, C);          /* restore what the checks expect */
}

static void guest_convert(struct pm_guest *g, struct snp_job *j, unsigned int *seed, uint64_t seq)
{
	uint64_t gpa, n;

	guest_pick(j, seed, &gpa, &n);
	if (rnd(seed) & 1)
		guest_implicit_shared(g, gpa, n);
	else
		PM_GUEST_ASSERT(g, pm_guest_snp_make_shared(g, gpa, n, j->io, PSC_BATCH) == 0);
	j->req.gpa = gpa;
	j->req.len = n * PAGE;
	j->req.seq = seq;
	pm_guest_sync(g, SYNC_HOST_WRITE);
	check(j, SK_HOST_WRITE_SEEN, run_guest_pages_hold(g, gpa, n, seq, false, 0));
	if (rnd(seed) & 1)
		guest_implicit_private(g, gpa, n);
	else
		PM_GUEST_ASSERT(g, pm_guest_snp_make_private(g, gpa, n, j->io, PSC_BATCH) == 0);
	/* Destructive conversion gives a fresh page; in place, privmem's
	 * page keeps what the host wrote (a real guest would read it
	 * through its key: the firmware's business, v8's api.rst says). */
	if (j->in_place)
		check(j, SK_RECONVERT_KEEPS, run_guest_pages_hold(g, gpa, n, seq, false, C));
	else
		check(j, SK_RECONVERT_ZERO, run_guest_pages_hold(g, gpa, n, 0, true, C));
	run_guest_stamp(g, gpa, n, j->seed, C);
	check(j, SK_PRIVATE_READBACK, run_guest_pages_hold(g, gpa, n, j->seed, false, C));
}

static void snp_guest_main(struct pm_guest *g, void *arg)
{
	struct snp_job *j = arg;
	unsigned int seed = j->seed;

	if (j->id == 0 && j->fw)
		guest_check_firmware(g, j);
	else if (j->id == 0)
		guest_check_launch(g, j);
	guest_accept(g, j);
	for (unsigned int it = 0; it < j->iterations; it++) {
		if (rnd(&seed) & 1)
			guest_bounce(g, j, &seed, it + 1);
		else
			guest_convert(g, j, &seed, it + 1);
	}
}

/* ---- VMM side ---- */

struct snp_ctx {
	struct snp_job jobs[VMM_MAX_VCPUS];
};

static void snp_sync(struct vmm *m, int vcpu, const struct pm_ucall *uc)
{
	struct snp_ctx *ctx = m->ctx;
	struct snp_job *j = &ctx->jobs[vcpu];

	if (uc->args[0] == SYNC_IO) {           /* the device writes the bounce buffer */
		uint64_t *d = (uint64_t *)(m->shared + j->io + 2 * PAGE);

		for (uint64_t off = 0; off < j->req.len; off += 8)
			d[off / 8] = run_pattern(off, j->req.seq);
	} else if (uc->args[0] == SYNC_HOST_WRITE) {
		for (uint64_t p = 0; p < j->req.len / PAGE; p++) {
			uint64_t a = j->req.gpa + p * PAGE;

			*(uint64_t *)(m->shared + a) = run_pattern(a, j->req.seq);
			*(uint64_t *)(m->shared + a + PAGE - 8) = run_pattern(a + PAGE - 8, j->req.seq);
		}
	}
}

static int sev(struct vmm *m, uint32_t id, void *data)
{
	struct kvm_sev_cmd c = { .id = id, .data = (uintptr_t)data };

	if (pm_kvm_ioctl(m->vm, KVM_MEMORY_ENCRYPT_OP, &c)) {
		fprintf(stderr, "privmem: KVM_MEMORY_ENCRYPT_OP %u: %s (firmware error %u)\n", id,
			strerror(errno), c.error);
		return -1;
	}
	return 0;
}

static int launch_update(struct vmm *m, uint64_t gfn, const void *src, uint64_t npages, uint8_t type)
{
	struct kvm_sev_snp_launch_update u = {
		.gfn_start = gfn, .uaddr = (uintptr_t)src, .len = npages * PAGE, .type = type,
	};

	while (u.len)   /* partial progress: go on from where it stopped */
		if (sev(m, KVM_SEV_SNP_LAUNCH_UPDATE, &u))
			return -1;
	return 0;
}

/* The measured launch: image, SECRETS, CPUID and ZERO pages at gpa 0. */
static int snp_launch(struct vmm *m, uint8_t *image, uint8_t digest[48])
{
	struct kvm_sev_snp_launch_start start = { .policy = 0x30000 };
	struct kvm_sev_snp_launch_finish finish = { 0 };
	struct pm_measurement meas;

	const uint8_t *src = image;

	for (uint64_t i = 0; i < (IMAGE_PAGES + 2) * PAGE; i++)
		image[i] = (uint8_t)(i * 31 + (i >> 12));
	/* In place: the image goes into the guest_memfd pages while they are
	 * shared, and LAUNCH_UPDATE takes it from there (uaddr 0, 22/46). */
	if (m->in_place) {
		memcpy(m->shared, image, IMAGE_PAGES * PAGE);
		src = NULL;
	}
	if (vmm_convert(m, 0, LAUNCH_PAGES * PAGE, true) || sev(m, KVM_SEV_SNP_LAUNCH_START, &start) ||
	    launch_update(m, 0, src, IMAGE_PAGES, KVM_SEV_SNP_PAGE_TYPE_NORMAL) ||
	    launch_update(m, IMAGE_PAGES, image + IMAGE_PAGES * PAGE, 1, KVM_SEV_SNP_PAGE_TYPE_SECRETS) ||
	    launch_update(m, IMAGE_PAGES + 1, image + (IMAGE_PAGES + 1) * PAGE, 1,
			  KVM_SEV_SNP_PAGE_TYPE_CPUID) ||
	    launch_update(m, IMAGE_PAGES + 2, NULL, 4, KVM_SEV_SNP_PAGE_TYPE_ZERO) ||
	    sev(m, KVM_SEV_SNP_LAUNCH_FINISH, &finish))
		return -1;
	if (pm_kvm_ioctl(m->vm, PM_KVM_GET_MEASUREMENT, &meas))
		return -1;
	memcpy(digest, meas.digest, 48);
	return 0;
}

/* ---- the launch of --firmware, as QEMU's ---- */

/* Each vCPU where QEMU puts it before LAUNCH_FINISH: the BSP at the reset
 * vector, the APs at the reset block's EIP (CS 0xF000 with the EIP's upper
 * half as base, IP its lower half); RDX the vCPU type's signature. */
static int snp_set_reset_vectors(struct vmm *m, const struct fw_image *img)
{
	uint32_t sig = 0;

	measure_vcpu_sig("EPYC-v4", &sig);
	for (int i = 0; i < m->nr_vcpus; i++) {
		uint32_t eip = i ? img->ap_reset_eip : MEASURE_BSP_EIP;
		struct kvm_sregs sregs;
		struct kvm_regs regs;

		if (pm_kvm_ioctl(m->vcpu[i], KVM_GET_SREGS, &sregs) ||
		    pm_kvm_ioctl(m->vcpu[i], KVM_GET_REGS, &regs)) {
			perror("privmem: KVM_GET_SREGS / KVM_GET_REGS");
			return -1;
		}
		sregs.cs.selector = 0xf000;
		sregs.cs.base = eip & 0xffff0000u;
		regs.rip = eip & 0xffff;
		regs.rdx = sig;
		if (pm_kvm_ioctl(m->vcpu[i], KVM_SET_SREGS, &sregs) ||
		    pm_kvm_ioctl(m->vcpu[i], KVM_SET_REGS, &regs)) {
			perror("privmem: KVM_SET_SREGS / KVM_SET_REGS");
			return -1;
		}
	}
	return 0;
}

/* The page type of a SEV metadata section, launched without a kernel. */
static uint8_t sev_section_page_type(uint32_t type)
{
	switch (type) {
	case FW_SEV_SECRETS: return KVM_SEV_SNP_PAGE_TYPE_SECRETS;
	case FW_SEV_CPUID: return KVM_SEV_SNP_PAGE_TYPE_CPUID;
	default: return KVM_SEV_SNP_PAGE_TYPE_ZERO;    /* SEC_MEM, SVSM_CAA, KERNEL_HASHES */
	}
}

static int snp_launch_firmware(struct vmm *m, const struct run_fw *fw, uint8_t digest[48])
{
	/* The SECRETS and CPUID pages' source: the firmware writes the
	 * secrets; privmem's PSP checks no CPUID table (both measure as zero). */
	static uint8_t blank[PAGE] __attribute__((aligned(PAGE)));
	struct kvm_sev_snp_launch_start start = { .policy = 0x30000 };
	struct kvm_sev_snp_launch_finish finish = { 0 };
	const struct fw_image *img = fw->img;
	struct pm_measurement meas;

	if (vmm_add_flash(m, img->gpa, img->size))
		return -1;
	for (unsigned int i = 0; i < img->nr_sev; i++)
		if (vmm_convert(m, img->sev[i].gpa, img->sev[i].size, true))
			return -1;
	if (snp_set_reset_vectors(m, img) || sev(m, KVM_SEV_SNP_LAUNCH_START, &start) ||
	    launch_update(m, img->gpa / PAGE, fw->data, img->size / PAGE, KVM_SEV_SNP_PAGE_TYPE_NORMAL))
		return -1;
	for (unsigned int i = 0; i < img->nr_sev; i++) {
		uint8_t type = sev_section_page_type(img->sev[i].type);

		if (launch_update(m, img->sev[i].gpa / PAGE, type == KVM_SEV_SNP_PAGE_TYPE_ZERO ? NULL : blank,
				  img->sev[i].size / PAGE, type))
			return -1;
	}
	if (sev(m, KVM_SEV_SNP_LAUNCH_FINISH, &finish) ||
	    pm_kvm_ioctl(m->vm, PM_KVM_GET_MEASUREMENT, &meas))
		return -1;
	memcpy(digest, meas.digest, 48);
	return 0;
}

static void jobs_init(struct snp_ctx *ctx, const struct vmm *m, uint64_t mem, int vcpus,
		      unsigned int seed, unsigned int iterations, uint8_t *image,
		      const struct run_fw *fw)
{
	uint64_t chunk = (mem / (uint64_t)vcpus) & ~(2 * MIB - 1);

	for (int i = 0; i < vcpus; i++) {
		struct snp_job *j = &ctx->jobs[i];

		j->id = i;
		j->base = (uint64_t)i * chunk;
		j->size = chunk;
		j->acc_lo = j->base + (i > 0 ? 0 : fw ? fw->ram_end : LAUNCH_PAGES * PAGE);
		j->acc_hi = j->base + chunk - IO_LEN;
		j->io = j->acc_hi;
		j->seed = seed * 1000003u + (unsigned int)i;
		j->iterations = iterations ? iterations : 100;
		j->image = image;
		j->fw = fw;
		j->in_place = m->in_place;
	}
}

/* ---- the report ---- */

static void hex(char *buf, const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sprintf(buf + 2 * i, "%02x", b[i]);
}

/* The SNP figures: every counter of the model (its names) in "snp". */
static void report_snp(struct report *rep, const struct pm_model_stats *ms)
{
	report_section(rep, "snp");
	for (unsigned int i = 0; i < ms->nr; i++)
		report_u64(rep, ms->v[i].name, ms->v[i].value);
	report_top(rep);
	report_line(rep, "rmp entries    at the end: 2M {snp.rmp_assigned_2m}, 4K {snp.rmp_assigned_4k}; "
		    "made by prepare: 2M {snp.prepare_2m_entries}, 4K {snp.prepare_4k_entries}");
	report_line(rep, "psmash         {snp.rmp_psmash} (on partial free {snp.psmash_on_free}, "
		    "on 4K PVALIDATE {snp.psmash_on_fault})");
	report_line(rep, "psc            {snp.psc_requests} requests, {snp.psc_entries} entries, "
		    "{snp.psc_exits} exits, {snp.psc_pages} pages, {snp.psc_errors} errors");
	report_line(rep, "pvalidate      {snp.pvalidate} (failed {snp.pvalidate_failed}: 2M on 4K entries, "
		    "retried as 4K)");
	report_line(rep, "rmp violations {snp.rmp_violations}, host reads refused {snp.rmp_host_reads_refused}");
}

/* Everything but the checks, read before the VM goes. */
static int report_run(struct report *rep, struct vmm *m, const uint8_t digest[48], double elapsed,
		      struct pm_model_stats *ms, const char *firmware)
{
	char digest_hex[2 * 48 + 1];

	if (pm_kvm_ioctl(m->vm, PM_KVM_GET_MODEL_STATS, ms)) {
		perror("privmem: PM_KVM_GET_MODEL_STATS");
		return -1;
	}
	hex(digest_hex, digest, 48);
	report_str(rep, "launch_digest", digest_hex);
	report_real(rep, "elapsed_s", elapsed);
	run_report_vm(rep, m);
	run_report_header(rep, "");
	report_line(rep, "launch digest  {launch_digest}");
	if (firmware) {
		report_str(rep, "firmware", firmware);
		report_line(rep, "firmware       {firmware} (launched as QEMU does; not executed)");
	}
	report_line(rep, "elapsed        {elapsed_s:.3} s");
	report_line(rep, "exits          ucall {exits.ucall}, memory_fault {exits.memory_fault}, "
		    "hypercall {exits.hypercall}");
	report_line(rep, "conversions    {conversions} (pages to private {pages_to_private}, "
		    "to shared {pages_to_shared}, implicit {implicit_conversions})");
	report_line(rep, "faults         {faults} (retried {fault_retries})");
	report_line(rep, "mapped         4K {mapped.4K}, 2M {mapped.2M}  (present at the end: "
		    "4K {mappings_present.4K}, 2M {mappings_present.2M}), huge mappings split {splits}");
	report_line(rep, "zaps           {zapped} mappings removed");
	report_line(rep, "tlb shootdowns {tlb_shootdowns}");
	report_line(rep, "frame pool     in use {pool.in_use:MiB.1} MiB, populated {pool.populated:MiB.1} MiB, "
		    "scrubbed {pool.scrubbed:MiB.1} MiB, released {pool.released:MiB.1} MiB");
	report_snp(rep, ms);
	return 0;
}

static void report_checks(struct report *rep, const struct snp_ctx *ctx, int vcpus,
			  const struct pm_model_stats *ms, const char *guest_failure)
{
	uint64_t passed[SK_NR] = { 0 }, failed[SK_NR] = { 0 };

	for (int i = 0; i < vcpus; i++)
		for (int c = 0; c < SK_NR; c++) {
			passed[c] += ctx->jobs[i].passed[c];
			failed[c] += ctx->jobs[i].failed[c];
		}
	if (vmm_model_stat(ms, "rmp_violations"))
		failed[SK_NO_RMP_VIOLATION]++;
	else
		passed[SK_NO_RMP_VIOLATION]++;
	run_report_checks(rep, snp_check_names, passed, failed, SK_NR, guest_failure, false);
}

/* ---- the runner ---- */

int run_snp(const struct run_opts *o, struct report *rep)
{
	struct snp_ctx *ctx = calloc(1, sizeof(*ctx));
	uint8_t *image = calloc(IMAGE_PAGES + 2, PAGE);
	struct run_fw fw = { 0 };
	struct pm_model_stats ms;
	void *args[VMM_MAX_VCPUS];
	uint8_t digest[48];
	struct timespec t0;
	double elapsed;
	struct vmm m;
	int r = 1, run_result;

	if (!ctx || !image)
		goto out_free;
	if ((o->mem / (uint64_t)o->vcpus) < 4 * MIB) {
		fprintf(stderr, "privmem: --vm-type snp needs at least 4 MiB per vCPU\n");
		r = 2;
		goto out_free;
	}
	if (o->firmware) {
		r = run_fw_load(o, false, &fw);
		if (r)
			goto out_free;
		r = 1;
		if (((o->mem / (uint64_t)o->vcpus) & ~(2 * MIB - 1)) < fw.ram_end + 4 * MIB) {
			fprintf(stderr, "privmem: --firmware: vCPU 0's share of --mem must hold the "
				"firmware's sections (up to %llu MiB) and 4 MiB more\n",
				(unsigned long long)(fw.ram_end / MIB));
			r = 2;
			goto out_free;
		}
	}
	if (vmm_create(&m, KVM_X86_SNP_VM, o->mem, o->vcpus, 0))
		goto out_vmm;
	m.stall_s = o->stall_s;
	if (o->firmware ? snp_launch_firmware(&m, &fw, digest) : snp_launch(&m, image, digest))
		goto out_vmm;
	jobs_init(ctx, &m, o->mem, o->vcpus, o->seed, o->iterations, image, o->firmware ? &fw : NULL);
	for (int i = 0; i < o->vcpus; i++)
		args[i] = &ctx->jobs[i];
	m.ctx = ctx;
	m.sync = snp_sync;
	vmm_set_guest(&m, snp_guest_main, args);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	run_result = vmm_run_all(&m, o->progress ? run_progress_tick : NULL, &t0);
	elapsed = cli_elapsed(&t0);
	if (o->progress)
		run_progress_clear();
	if (report_run(rep, &m, digest, elapsed, &ms, o->firmware))
		goto out_vmm;
	report_checks(rep, ctx, o->vcpus, &ms, run_result ? m.abort_msg : NULL);
	r = 0;
out_vmm:
	vmm_destroy(&m);
out_free:
	run_fw_free(&fw);
	free(image);
	free(ctx);
	return r;
}

/* SPDX-License-Identifier: MIT */
/*
 * privmem run: run a protected VM scenario and report on it.
 *
 * Scenarios (one per vCPU; the default mixes them):
 *  - convert: the vCPU converts regions of its chunk back and forth in 4K
 *    and 2M patterns, checking data at every step (the host sees shared
 *    writes, private pages start zeroed, private data never reaches the
 *    host, host writes reach the guest after a page is shared again);
 *  - bounce: a virtio-like device thread in the VMM fills a shared bounce
 *    buffer on request (doorbell: an MMIO write); the guest copies the data
 *    into private memory and checks it;
 *  - accept: the vCPU converts its whole chunk to private in 2M batches and
 *    touches every page, as a booting guest accepts memory;
 *  - virtio (pKVM VMs, where it is the only scenario): the guest writes a
 *    request into its own buffer pages and shares them in place (MEM_SHARE),
 *    rings the doorbell; the device thread reads the request through the
 *    VMM's guest_memfd view, pins the pages as DMA would, writes its
 *    response in place and unpins; the guest unshares the buffer (in place,
 *    no copy) and checks the response, and the VMM checks it can no longer
 *    reach the pages, nor ever the guest's private data.
 * Data checks are counted per kind; the exit status is 1 if any failed.
 */
#include <getopt.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"
#include "vmm.h"

enum scenario { SC_CONVERT, SC_BOUNCE, SC_ACCEPT, SC_VIRTIO, SC_NR, SC_DEFAULT = SC_NR };
static const char *const scenario_names[] = { "convert", "bounce", "accept", "virtio" };
#define SC_MIX_NR SC_VIRTIO      /* the default mix on VMs with attributes */

enum check {
	CK_HOST_SEES_SHARED, CK_PRIVATE_STARTS_ZERO, CK_PRIVATE_READBACK, CK_HOST_NEVER_SEES_PRIVATE,
	CK_GUEST_SEES_HOST_WRITE, CK_BOUNCE_DATA, CK_ACCEPT_ZERO, CK_ACCEPT_READBACK,
	CK_DEVICE_SEES_REQUEST, CK_GUEST_KEEPS_RESPONSE, CK_HOST_LOSES_UNSHARED, CK_HOST_CANNOT_MAP_PRIVATE,
	CK_NO_HOST_S2_FAULT, CK_NR,
};
static const char *const check_names[] = {
	"host_sees_shared_write", "private_page_starts_zero", "private_readback",
	"host_never_sees_private", "guest_sees_host_write_after_share", "bounce_data_intact",
	"accepted_page_starts_zero", "accepted_page_readback",
	"device_reads_request_in_place", "guest_keeps_response_after_unshare",
	"host_cannot_map_after_unshare", "host_cannot_map_private", "no_host_stage2_fault",
};

#define MIB ((uint64_t)1 << 20)
#define BOUNCE_HDR_SEQ    0
#define BOUNCE_HDR_LEN    8
#define BOUNCE_HDR_SUM    16
#define BOUNCE_HDR_STATUS 24
#define BOUNCE_DATA_MAX   (256 * 1024)
#define DOORBELL_GPA      (1ULL << 40)   /* outside every memslot: MMIO */

/* Requests from guest code to the VMM at a SYNC (the guest is suspended). */
enum sync_cmd { SYNC_PROGRESS, SYNC_HOST_CHECK_SHARED, SYNC_HOST_CHECK_NOT_PRIVATE, SYNC_HOST_WRITE,
		SYNC_HOST_CHECK_UNMAPPABLE };

/* virtio: a vCPU's chunk holds its ring page (shared for good), its buffer
 * pages (shared for each request) and its private pages. */
#define VIRTIO_BUF_OFF     4096
#define VIRTIO_BUF_PAGES   64
#define VIRTIO_PRIV_OFF    MIB
#define VIRTIO_PRIV_PAGES  64

/* One vCPU's job: parameters, and the check counters its guest code and
 * the VMM's SYNC handler update (the guest is suspended during a SYNC). */
struct job {
	struct vmm *m;
	enum scenario sc;
	uint64_t base, size;        /* the vCPU's chunk of guest RAM */
	unsigned int iterations;
	unsigned int seed;
	struct { uint64_t gpa, npages, pattern; } req;
	uint64_t passed[CK_NR], failed[CK_NR];
};

static void check(struct job *j, enum check c, bool ok)
{
	if (ok)
		j->passed[c]++;
	else
		j->failed[c]++;
}

static uint64_t pattern(uint64_t gpa, uint64_t seed)
{
	return ((gpa >> 12) * 0x9E3779B97F4A7C15ULL ^ seed * 0xC2B2AE3D27D4EB4FULL) | 1;
}

/* ---- guest side ---- */

static void guest_stamp(struct pm_guest *g, uint64_t gpa, uint64_t npages, uint64_t seed)
{
	for (uint64_t p = 0; p < npages; p++) {
		uint64_t a = gpa + (p << 12);

		pm_guest_write64(g, a, pattern(a, seed));
		pm_guest_write64(g, a + 4088, pattern(a, seed) ^ 1);
	}
}

static bool guest_has(struct pm_guest *g, uint64_t gpa, uint64_t npages, uint64_t seed, bool zero)
{
	for (uint64_t p = 0; p < npages; p++) {
		uint64_t a = gpa + (p << 12);
		uint64_t w0 = zero ? 0 : pattern(a, seed), w1 = zero ? 0 : pattern(a, seed) ^ 1;

		if (pm_guest_read64(g, a) != w0 || pm_guest_read64(g, a + 4088) != w1)
			return false;
	}
	return true;
}

static void guest_sync(struct pm_guest *g, struct job *j, enum sync_cmd cmd, uint64_t gpa,
		       uint64_t npages, uint64_t seed)
{
	j->req.gpa = gpa;
	j->req.npages = npages;
	j->req.pattern = seed;
	pm_guest_sync(g, cmd);
}

static long guest_convert(struct pm_guest *g, uint64_t gpa, uint64_t npages, bool to_private)
{
	uint64_t attrs = (to_private ? KVM_MAP_GPA_RANGE_ENCRYPTED : KVM_MAP_GPA_RANGE_DECRYPTED) |
			 (npages >= 512 ? KVM_MAP_GPA_RANGE_PAGE_SZ_2M : KVM_MAP_GPA_RANGE_PAGE_SZ_4K);

	return pm_guest_hypercall(g, KVM_HC_MAP_GPA_RANGE, gpa, npages, attrs, 0);
}

static void guest_convert_cycle(struct pm_guest *g, struct job *j, uint64_t gpa, uint64_t npages,
				uint64_t seed)
{
	guest_stamp(g, gpa, npages, seed);
	guest_sync(g, j, SYNC_HOST_CHECK_SHARED, gpa, npages, seed);
	PM_GUEST_ASSERT(g, guest_convert(g, gpa, npages, true) == 0);
	check(j, CK_PRIVATE_STARTS_ZERO, guest_has(g, gpa, npages, 0, true));
	guest_stamp(g, gpa, npages, seed + 1);
	check(j, CK_PRIVATE_READBACK, guest_has(g, gpa, npages, seed + 1, false));
	guest_sync(g, j, SYNC_HOST_CHECK_NOT_PRIVATE, gpa, npages, seed + 1);
	PM_GUEST_ASSERT(g, guest_convert(g, gpa, npages, false) == 0);
	guest_sync(g, j, SYNC_HOST_WRITE, gpa, npages, seed + 2);
	check(j, CK_GUEST_SEES_HOST_WRITE, guest_has(g, gpa, npages, seed + 2, false));
}

static void guest_convert_main(struct pm_guest *g, struct job *j)
{
	unsigned int seed = j->seed;

	for (unsigned int it = 0; it < j->iterations; it++) {
		bool huge = (it & 1) && j->size >= 2 * MIB;
		uint64_t npages = huge ? 512 : 1 + (uint64_t)rand_r(&seed) % 16;
		uint64_t span = (j->size >> 12) - npages;
		uint64_t page = span ? (uint64_t)rand_r(&seed) % span : 0;

		if (huge)
			page &= ~511ULL;
		guest_convert_cycle(g, j, j->base + (page << 12), npages, (uint64_t)it << 8 | j->seed);
		if (it % 16 == 15)
			guest_sync(g, j, SYNC_PROGRESS, 0, 0, 0);
	}
}

static uint64_t checksum(const uint8_t *p, size_t n)
{
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ULL;
	return h;
}

static void guest_bounce_main(struct pm_guest *g, struct job *j)
{
	uint64_t hdr = j->base, data = j->base + 4096;
	uint64_t priv = j->base + MIB;
	uint8_t *buf = malloc(BOUNCE_DATA_MAX);

	PM_GUEST_ASSERT(g, buf != NULL);
	if (j->m->private_mem)
		PM_GUEST_ASSERT(g, guest_convert(g, priv, MIB >> 12, true) == 0);
	for (unsigned int seq = 1; seq <= j->iterations; seq++) {
		uint64_t len = 4096 + (uint64_t)(seq * 7919u % (BOUNCE_DATA_MAX - 4096));

		pm_guest_write64(g, hdr + BOUNCE_HDR_SEQ, seq);
		pm_guest_write64(g, hdr + BOUNCE_HDR_LEN, len);
		pm_guest_write64(g, DOORBELL_GPA, seq);           /* kick the device */
		while (pm_guest_read64(g, hdr + BOUNCE_HDR_STATUS) != seq)
			sched_yield();                            /* the device runs on the host */
		pm_guest_read(g, data, buf, len);                 /* bounce buffer -> private */
		pm_guest_write(g, priv, buf, len);
		memset(buf, 0, len);
		pm_guest_read(g, priv, buf, len);
		check(j, CK_BOUNCE_DATA, checksum(buf, len) == pm_guest_read64(g, hdr + BOUNCE_HDR_SUM));
		if (seq % 16 == 0)
			guest_sync(g, j, SYNC_PROGRESS, 0, 0, 0);
	}
	free(buf);
}

static void guest_accept_main(struct pm_guest *g, struct job *j)
{
	for (uint64_t gpa = j->base; gpa < j->base + j->size; gpa += 2 * MIB) {
		uint64_t npages = PM_MIN_U64(512, (j->base + j->size - gpa) >> 12);

		PM_GUEST_ASSERT(g, guest_convert(g, gpa, npages, true) == 0);
		for (uint64_t p = 0; p < npages; p++) {
			uint64_t a = gpa + (p << 12);

			check(j, CK_ACCEPT_ZERO, pm_guest_read64(g, a) == 0);
			pm_guest_write64(g, a, pattern(a, j->seed));
			check(j, CK_ACCEPT_READBACK, pm_guest_read64(g, a) == pattern(a, j->seed));
		}
		guest_sync(g, j, SYNC_PROGRESS, 0, 0, 0);
	}
}

/* Request bytes: what the guest puts in its buffer; the device answers
 * with each byte complemented. */
static uint8_t virtio_byte(uint64_t seq, uint64_t i)
{
	return (uint8_t)(seq * 131 + i * 7 + (i >> 12));
}

static void guest_virtio_request(struct pm_guest *g, struct job *j, uint64_t seq, uint8_t *buf)
{
	uint64_t ring = j->base, data = j->base + VIRTIO_BUF_OFF, priv = j->base + VIRTIO_PRIV_OFF;
	uint64_t npages = 1 + seq * 7919u % VIRTIO_BUF_PAGES, len = npages << 12;
	bool ok = true;

	for (uint64_t i = 0; i < len; i++)
		buf[i] = virtio_byte(seq, i);
	pm_guest_write(g, data, buf, len);              /* private until shared */
	PM_GUEST_ASSERT(g, pm_guest_mem_share(g, data, npages) == (long)npages);
	pm_guest_write64(g, ring + BOUNCE_HDR_LEN, len);
	pm_guest_write64(g, ring + BOUNCE_HDR_SEQ, seq);
	pm_guest_write64(g, DOORBELL_GPA, seq);         /* kick the device */
	while (pm_guest_read64(g, ring + BOUNCE_HDR_STATUS) != seq)
		sched_yield();                          /* the device runs on the host */
	PM_GUEST_ASSERT(g, pm_guest_mem_unshare(g, data, npages) == (long)npages);
	pm_guest_read(g, data, buf, len);               /* private again, in place */
	for (uint64_t i = 0; i < len && ok; i++) {
		uint8_t want = virtio_byte(seq, i) ^ 0xff;

		ok = buf[i] == want;
	}
	check(j, CK_GUEST_KEEPS_RESPONSE, ok);
	guest_sync(g, j, SYNC_HOST_CHECK_UNMAPPABLE, data, npages, 0);
	/* The response goes on into private memory, never seen by the host. */
	pm_guest_write(g, priv + (seq % VIRTIO_PRIV_PAGES) * 4096, buf, 4096);
	check(j, CK_PRIVATE_READBACK,
	      pm_guest_read64(g, priv + (seq % VIRTIO_PRIV_PAGES) * 4096) == *(uint64_t *)buf);
}

static void guest_virtio_main(struct pm_guest *g, struct job *j)
{
	uint8_t *buf = malloc(VIRTIO_BUF_PAGES * 4096);

	PM_GUEST_ASSERT(g, buf != NULL);
	pm_guest_write64(g, j->base + BOUNCE_HDR_STATUS, 0);
	PM_GUEST_ASSERT(g, pm_guest_mem_share(g, j->base, 1) == 1);     /* the ring */
	for (unsigned int seq = 1; seq <= j->iterations; seq++) {
		guest_virtio_request(g, j, seq, buf);
		if (seq % 16 == 0) {
			guest_sync(g, j, SYNC_HOST_CHECK_UNMAPPABLE, j->base + VIRTIO_PRIV_OFF,
				   VIRTIO_PRIV_PAGES, 1);
			guest_sync(g, j, SYNC_PROGRESS, 0, 0, 0);
		}
	}
	PM_GUEST_ASSERT(g, pm_guest_mem_unshare(g, j->base, 1) == 1);
	free(buf);
}

static void guest_main(struct pm_guest *g, void *arg)
{
	struct job *j = arg;

	switch (j->sc) {
	case SC_CONVERT:
		guest_convert_main(g, j);
		break;
	case SC_BOUNCE:
		guest_bounce_main(g, j);
		break;
	case SC_VIRTIO:
		guest_virtio_main(g, j);
		break;
	default:
		guest_accept_main(g, j);
		break;
	}
}

/* ---- VMM side ---- */

static bool host_has(struct vmm *m, uint64_t gpa, uint64_t npages, uint64_t seed, bool absent)
{
	for (uint64_t p = 0; p < npages; p++) {
		uint64_t a = gpa + (p << 12), w0, w1;

		memcpy(&w0, m->shared + a, 8);
		memcpy(&w1, m->shared + a + 4088, 8);
		if (absent ? (w0 == pattern(a, seed) || w1 == (pattern(a, seed) ^ 1))
			   : (w0 != pattern(a, seed) || w1 != (pattern(a, seed) ^ 1)))
			return false;
	}
	return true;
}

/* The bounce device: a thread serving doorbells from a queue. */
struct device {
	struct vmm *m;
	struct job *jobs;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int queue[VMM_MAX_VCPUS];       /* vCPUs with a request (each has at most one) */
	unsigned int head, tail;        /* lock */
	bool stop;                      /* lock */
	pthread_t thread;
};

struct run_ctx {
	struct job jobs[VMM_MAX_VCPUS];
	struct device dev;
};

static void vmm_sync(struct vmm *m, int vcpu, const struct pm_ucall *uc)
{
	struct job *j = &((struct run_ctx *)m->ctx)->jobs[vcpu];

	switch (uc->args[0]) {
	case SYNC_HOST_CHECK_SHARED:
		check(j, CK_HOST_SEES_SHARED, host_has(m, j->req.gpa, j->req.npages, j->req.pattern, false));
		break;
	case SYNC_HOST_CHECK_NOT_PRIVATE:
		check(j, CK_HOST_NEVER_SEES_PRIVATE,
		      host_has(m, j->req.gpa, j->req.npages, j->req.pattern, true));
		break;
	case SYNC_HOST_CHECK_UNMAPPABLE:
		/* The host cannot even pin them: they are not its to map. */
		for (uint64_t p = 0; p < j->req.npages; p++) {
			struct pm_gmem_pin pin = { .offset = j->req.gpa + (p << 12), .size = 4096 };
			bool refused = pm_kvm_ioctl(m->gmem, PM_GUEST_MEMFD_PIN, &pin) && errno == EFAULT;

			check(j, j->req.pattern ? CK_HOST_CANNOT_MAP_PRIVATE : CK_HOST_LOSES_UNSHARED, refused);
		}
		break;
	case SYNC_HOST_WRITE:
		for (uint64_t p = 0; p < j->req.npages; p++) {
			uint64_t a = j->req.gpa + (p << 12), w0 = pattern(a, j->req.pattern), w1 = w0 ^ 1;

			memcpy(m->shared + a, &w0, 8);
			memcpy(m->shared + a + 4088, &w1, 8);
		}
		break;
	default:
		break;
	}
}

static void device_mmio(struct vmm *m, int vcpu, struct kvm_run *run)
{
	struct device *d = &((struct run_ctx *)m->ctx)->dev;

	if (!run->mmio.is_write || run->mmio.phys_addr != DOORBELL_GPA)
		return;                       /* reads of unknown MMIO return zero */
	pthread_mutex_lock(&d->lock);
	d->queue[d->tail++ % VMM_MAX_VCPUS] = vcpu;
	pthread_cond_signal(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

/* virtio: the request in the guest's buffer, pinned while in use (DMA). */
static void device_serve_virtio(struct device *d, int vcpu)
{
	struct vmm *m = d->m;
	struct job *j = &d->jobs[vcpu];
	uint8_t *ring = m->shared + j->base, *buf = ring + VIRTIO_BUF_OFF;
	struct pm_gmem_pin pin = { .offset = j->base + VIRTIO_BUF_OFF };
	uint64_t seq, len;
	bool ok = true;

	memcpy(&seq, ring + BOUNCE_HDR_SEQ, 8);
	memcpy(&len, ring + BOUNCE_HDR_LEN, 8);
	len = PM_MIN_U64(len, VIRTIO_BUF_PAGES * 4096);
	pin.size = len;
	if (pm_kvm_ioctl(m->gmem, PM_GUEST_MEMFD_PIN, &pin)) {
		check(j, CK_DEVICE_SEES_REQUEST, false);
	} else {
		for (uint64_t i = 0; i < len; i++) {
			ok &= buf[i] == virtio_byte(seq, i);
			buf[i] ^= 0xff;
		}
		check(j, CK_DEVICE_SEES_REQUEST, ok);
		pm_kvm_ioctl(m->gmem, PM_GUEST_MEMFD_UNPIN, &pin);
	}
	atomic_store_explicit((_Atomic uint64_t *)(ring + BOUNCE_HDR_STATUS), seq, memory_order_release);
}

static void device_serve(struct device *d, int vcpu)
{
	struct vmm *m = d->m;
	uint8_t *hdr = m->shared + d->jobs[vcpu].base;
	uint64_t seq, len, sum;

	memcpy(&seq, hdr + BOUNCE_HDR_SEQ, 8);
	memcpy(&len, hdr + BOUNCE_HDR_LEN, 8);
	len = PM_MIN_U64(len, BOUNCE_DATA_MAX);
	for (uint64_t i = 0; i < len; i++)
		hdr[4096 + i] = (uint8_t)((seq * 131 + i * 7) ^ (i >> 9));
	sum = checksum(hdr + 4096, len);
	memcpy(hdr + BOUNCE_HDR_SUM, &sum, 8);
	atomic_store_explicit((_Atomic uint64_t *)(hdr + BOUNCE_HDR_STATUS), seq, memory_order_release);
}

static void *device_main(void *arg)
{
	struct device *d = arg;

	pthread_mutex_lock(&d->lock);
	for (;;) {
		int vcpu;

		while (d->head == d->tail && !d->stop)
			pthread_cond_wait(&d->cond, &d->lock);
		if (d->head == d->tail)
			break;
		vcpu = d->queue[d->head++ % VMM_MAX_VCPUS];
		pthread_mutex_unlock(&d->lock);
		if (d->jobs[vcpu].sc == SC_VIRTIO)
			device_serve_virtio(d, vcpu);
		else
			device_serve(d, vcpu);
		pthread_mutex_lock(&d->lock);
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

static void device_start(struct device *d, struct vmm *m, struct job *jobs)
{
	d->m = m;
	d->jobs = jobs;
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->cond, NULL);
	pthread_create(&d->thread, NULL, device_main, d);
}

static void device_stop(struct device *d)
{
	pthread_mutex_lock(&d->lock);
	d->stop = true;
	pthread_cond_signal(&d->cond);
	pthread_mutex_unlock(&d->lock);
	pthread_join(d->thread, NULL);
	pthread_cond_destroy(&d->cond);
	pthread_mutex_destroy(&d->lock);
}

/* ---- options, setup, report ---- */

struct run_opts {
	unsigned long type;
	const char *type_name;
	uint64_t mem;
	int vcpus;
	enum scenario sc;
	unsigned int seed;
	unsigned int iterations;   /* 0: the scenario's default */
	bool json;
	unsigned int busy_per_million;  /* tdx only */
	bool no_huge;                   /* tdx only */
};

static void run_usage(FILE *out)
{
	fprintf(out,
		"usage: privmem run [--vm-type sw|default|snp|tdx|pkvm] [--mem SIZE] [--vcpus N]\n"
		"                   [--scenario convert|bounce|accept|virtio|default] [--seed N]\n"
		"                   [--iterations N] [--busy-rate N] [--no-huge] [--json]\n"
		"\n"
		"Runs a protected VM scenario and reports exits, conversions, faults and\n"
		"mappings by level, TLB shootdowns, frame-pool use, time and every data\n"
		"check. Exit status 1 if any check failed, 2 for bad usage.\n"
		"\n"
		"  --vm-type TYPE    sw (software-protected, default), default (no private memory),\n"
		"                    snp (SEV-SNP: measured launch, 2M PSC boot, bounce I/O,\n"
		"                    random conversions; --scenario does not apply),\n"
		"                    tdx (a TD on the simulated TDX module: measured build,\n"
		"                    accept, bounce buffers, conversions; its own scenario),\n"
		"                    or pkvm (protected VM under pKVM's hypervisor: privmem type 16)\n"
		"  --mem SIZE        guest RAM, e.g. 512M or 2G (default 512M; multiple of 2M per vCPU)\n"
		"  --vcpus N         vCPUs, 1..%d (default 4)\n"
		"  --scenario NAME   convert, bounce, accept, or default (all of them, one per vCPU);\n"
		"                    virtio (in-place sharing for device I/O) is pkvm's scenario\n"
		"  --seed N          seed for the random choices (default 1)\n"
		"  --iterations N    conversions / requests per vCPU (default 200 / 100)\n"
		"  --busy-rate N     tdx: OPERAND_BUSY injected per million S-EPT SEAMCALLs\n"
		"  --no-huge         tdx: private pages at 4K only (as upstream)\n"
		"  --json            print the report as one JSON object\n", VMM_MAX_VCPUS);
}

static int run_parse(int argc, char **argv, struct run_opts *o)
{
	static const struct option opts[] = {
		{ "vm-type", required_argument, NULL, 't' }, { "mem", required_argument, NULL, 'm' },
		{ "vcpus", required_argument, NULL, 'c' }, { "scenario", required_argument, NULL, 's' },
		{ "seed", required_argument, NULL, 'S' }, { "iterations", required_argument, NULL, 'i' },
		{ "json", no_argument, NULL, 'j' }, { "help", no_argument, NULL, 'h' },
		{ "busy-rate", required_argument, NULL, 'b' }, { "no-huge", no_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*o = (struct run_opts){ .type = KVM_X86_SW_PROTECTED_VM, .type_name = "sw", .mem = 512 * MIB,
				.vcpus = 4, .sc = SC_DEFAULT, .seed = 1 };
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (cli_parse_vm_type(optarg, &o->type))
				return cli_bad_arg("--vm-type", optarg);
			o->type_name = optarg;
			break;
		case 'm':
			if (cli_parse_size(optarg, &o->mem) || o->mem < 2 * MIB)
				return cli_bad_arg("--mem", optarg);
			break;
		case 'c':
			if (cli_parse_uint(optarg, 1, VMM_MAX_VCPUS, (unsigned int *)&o->vcpus))
				return cli_bad_arg("--vcpus", optarg);
			break;
		case 's':
			for (o->sc = 0; o->sc < SC_NR && strcmp(optarg, scenario_names[o->sc]); o->sc++)
				;
			if (o->sc == SC_NR && strcmp(optarg, "default"))
				return cli_bad_arg("--scenario", optarg);
			break;
		case 'S':
			if (cli_parse_uint(optarg, 0, UINT32_MAX, &o->seed))
				return cli_bad_arg("--seed", optarg);
			break;
		case 'i':
			if (cli_parse_uint(optarg, 1, 1000000, &o->iterations))
				return cli_bad_arg("--iterations", optarg);
			break;
		case 'j':
			o->json = true;
			break;
		case 'b':
			if (cli_parse_uint(optarg, 0, 1000000, &o->busy_per_million))
				return cli_bad_arg("--busy-rate", optarg);
			break;
		case 'n':
			o->no_huge = true;
			break;
		case 'h':
			run_usage(stdout);
			exit(0);
		default:
			run_usage(stderr);
			return 2;
		}
	}
	if (optind < argc)
		return cli_bad_arg("argument", argv[optind]);
	if ((o->mem / (uint64_t)o->vcpus) < 2 * MIB) {
		fprintf(stderr, "privmem: --mem must give each vCPU at least 2 MiB\n");
		return 2;
	}
	if ((o->type == PM_VM_TYPE_PKVM) != (o->sc == SC_VIRTIO) && o->sc != SC_DEFAULT) {
		fprintf(stderr, "privmem: scenario %s runs on %s\n", scenario_names[o->sc],
			o->sc == SC_VIRTIO ? "--vm-type pkvm only" : "sw and default VMs, not pkvm");
		return 2;
	}
	return 0;
}

static void jobs_init(struct run_ctx *ctx, struct vmm *m, const struct run_opts *o)
{
	uint64_t chunk = PM_ALIGN_DOWN_U64(o->mem / (uint64_t)o->vcpus, 2 * MIB);

	for (int i = 0; i < o->vcpus; i++) {
		struct job *j = &ctx->jobs[i];

		j->m = m;
		j->sc = o->sc == SC_DEFAULT ? (enum scenario)(i % SC_MIX_NR) : o->sc;
		/* pKVM guests convert by sharing, in place; without private
		 * memory only the bounce device makes sense. */
		if (m->type == PM_VM_TYPE_PKVM)
			j->sc = SC_VIRTIO;
		else if (!m->private_mem)
			j->sc = SC_BOUNCE;
		j->base = (uint64_t)i * chunk;
		j->size = chunk;
		j->seed = o->seed * 1000003u + (unsigned int)i;
		j->iterations = o->iterations ? o->iterations
					      : (j->sc == SC_BOUNCE || j->sc == SC_VIRTIO ? 100 : 200);
	}
}

static void progress_tick(struct vmm *m, void *arg)
{
	const struct timespec *t0 = arg;

	fprintf(stderr, "\r  running: %.1f s, %" PRIu64 " conversions, %" PRIu64 " progress marks   ",
		cli_elapsed(t0), (uint64_t)atomic_load(&m->conversions), (uint64_t)atomic_load(&m->progress));
	fflush(stderr);
}

struct report {
	const struct run_opts *o;
	struct run_ctx *ctx;
	struct vmm *m;
	struct pm_vm_stats vs;
	struct pm_pool_stats ps;
	/* pKVM: the hyp's statistics at the start, just before teardown and
	 * after (PM_KVM_GET_MODEL_STATS on the system handle, named by the hyp) */
	bool pkvm;
	struct pm_model_stats pk_start, pk_run_end, pk_end;
	double elapsed;
	uint64_t passed[CK_NR], failed[CK_NR], total_passed, total_failed;
	int run_result;
};

static void pkvm_stats(int sys, struct pm_model_stats *st)
{
	*st = (struct pm_model_stats){ .vm_type = PM_VM_TYPE_PKVM };
	pm_kvm_ioctl(sys, PM_KVM_GET_MODEL_STATS, st);
}

static uint64_t pk_delta(const struct report *r, const char *name)
{
	return vmm_model_stat(&r->pk_end, name) - vmm_model_stat(&r->pk_start, name);
}

/* The hyp's transitions are the counters that have a <name>_refused. */
static bool pk_is_transition(const struct report *r, const char *name)
{
	char refused[sizeof(r->pk_end.v[0].name) + 8];

	snprintf(refused, sizeof(refused), "%s_refused", name);
	for (unsigned int i = 0; i < r->pk_end.nr; i++)
		if (!strcmp(r->pk_end.v[i].name, refused))
			return true;
	return false;
}

static uint64_t pk_refused(const struct report *r, const char *name)
{
	char refused[sizeof(r->pk_end.v[0].name) + 8];

	snprintf(refused, sizeof(refused), "%s_refused", name);
	return pk_delta(r, refused);
}

static void report_text_pkvm(const struct report *r)
{
	printf("pkvm hyp       transitions (refused):");
	for (unsigned int i = 0, n = 0; i < r->pk_end.nr; i++) {
		const char *t = r->pk_end.v[i].name;

		if (!pk_is_transition(r, t) || (!pk_delta(r, t) && !pk_refused(r, t)))
			continue;
		printf("%s %s %" PRIu64 " (%" PRIu64 ")", n++ % 2 ? "," : "\n              ",
		       t, pk_delta(r, t), pk_refused(r, t));
	}
	printf("\n               host stage-2 faults %" PRIu64 ", pages poisoned at teardown %" PRIu64
	       ", unshares refused while pinned %" PRIu64 "\n", pk_delta(r, "host_s2_faults"),
	       vmm_model_stat(&r->pk_end, "pages_poisoned") - vmm_model_stat(&r->pk_run_end, "pages_poisoned"),
	       pk_delta(r, "unshare_busy"));
}

static void report_json_pkvm(const struct report *r)
{
	bool first = true;

	printf(",\"pkvm\":{\"transitions\":{");
	for (unsigned int i = 0; i < r->pk_end.nr; i++) {
		const char *t = r->pk_end.v[i].name;

		if (pk_is_transition(r, t)) {
			printf("%s\"%s\":%" PRIu64, first ? "" : ",", t, pk_delta(r, t));
			first = false;
		}
	}
	printf("},\"refused\":{");
	first = true;
	for (unsigned int i = 0; i < r->pk_end.nr; i++) {
		const char *t = r->pk_end.v[i].name;

		if (pk_is_transition(r, t)) {
			printf("%s\"%s\":%" PRIu64, first ? "" : ",", t, pk_refused(r, t));
			first = false;
		}
	}
	printf("},\"host_stage2_faults\":%" PRIu64 ",\"pages_poisoned_at_teardown\":%" PRIu64
	       ",\"unshares_refused_pinned\":%" PRIu64 "}", pk_delta(r, "host_s2_faults"),
	       vmm_model_stat(&r->pk_end, "pages_poisoned") - vmm_model_stat(&r->pk_run_end, "pages_poisoned"),
	       pk_delta(r, "unshare_busy"));
}

static void report_text(const struct report *r)
{
	static const char *const exit_names[] = { "ucall", "memory_fault", "hypercall", "mmio", "intr" };
	const struct run_opts *o = r->o;

	printf("privmem run: vm-type %s, %" PRIu64 " MiB, %d vCPUs, seed %u\n", o->type_name,
	       o->mem / MIB, o->vcpus, o->seed);
	for (int i = 0; i < o->vcpus; i++)
		printf("  vCPU %d: %-8s %" PRIu64 " MiB at 0x%" PRIx64 "\n", i,
		       scenario_names[r->ctx->jobs[i].sc], r->ctx->jobs[i].size / MIB, r->ctx->jobs[i].base);
	printf("elapsed        %.3f s\n", r->elapsed);
	printf("exits         ");
	for (int e = 0; e < 5; e++)
		printf(" %s %" PRIu64 "%s", exit_names[e], (uint64_t)r->vs.exits[e], e < 4 ? "," : "\n");
	printf("conversions    %" PRIu64 " (pages to private %" PRIu64 ", to shared %" PRIu64 ")\n",
	       (uint64_t)atomic_load(&r->m->conversions), (uint64_t)atomic_load(&r->m->to_private_pages),
	       (uint64_t)atomic_load(&r->m->to_shared_pages));
	printf("faults         %" PRIu64 " (retried %" PRIu64 ")\n", (uint64_t)r->vs.faults,
	       (uint64_t)r->vs.fault_retries);
	printf("mapped         4K %" PRIu64 ", 2M %" PRIu64 ", 1G %" PRIu64 "  (present at the end: 4K %"
	       PRIu64 ", 2M %" PRIu64 ", 1G %" PRIu64 ")\n", (uint64_t)r->vs.mapped[0],
	       (uint64_t)r->vs.mapped[1], (uint64_t)r->vs.mapped[2], (uint64_t)r->vs.mappings[0],
	       (uint64_t)r->vs.mappings[1], (uint64_t)r->vs.mappings[2]);
	printf("zaps           %" PRIu64 " mappings removed, %" PRIu64 " huge mappings split\n",
	       (uint64_t)r->vs.zapped, (uint64_t)r->vs.splits);
	printf("tlb shootdowns %" PRIu64 "\n", (uint64_t)r->vs.tlb_shootdowns);
	printf("frame pool     in use %.1f MiB, populated %.1f MiB, scrubbed %.1f MiB, released %.1f MiB\n",
	       (double)r->ps.in_use / MIB, (double)r->ps.populated / MIB, (double)r->ps.scrubbed / MIB,
	       (double)r->ps.released / MIB);
	if (r->pkvm)
		report_text_pkvm(r);
	cli_report_checks(check_names, r->passed, r->failed, CK_NR, r->run_result ? r->m->abort_msg : NULL,
			  r->total_failed || r->run_result, false);
}

static void report_json(const struct report *r)
{
	static const char *const exit_names[] = { "ucall", "memory_fault", "hypercall", "mmio", "intr" };
	const struct run_opts *o = r->o;

	printf("{\"vm_type\":\"%s\",\"mem_bytes\":%" PRIu64 ",\"vcpus\":%d,\"seed\":%u,",
	       o->type_name, o->mem, o->vcpus, o->seed);
	printf("\"scenarios\":[");
	for (int i = 0; i < o->vcpus; i++)
		printf("%s\"%s\"", i ? "," : "", scenario_names[r->ctx->jobs[i].sc]);
	printf("],\"elapsed_s\":%.6f,\"exits\":{", r->elapsed);
	for (int e = 0; e < 5; e++)
		printf("%s\"%s\":%" PRIu64, e ? "," : "", exit_names[e], (uint64_t)r->vs.exits[e]);
	printf("},\"conversions\":%" PRIu64 ",\"pages_to_private\":%" PRIu64 ",\"pages_to_shared\":%" PRIu64,
	       (uint64_t)atomic_load(&r->m->conversions), (uint64_t)atomic_load(&r->m->to_private_pages),
	       (uint64_t)atomic_load(&r->m->to_shared_pages));
	printf(",\"faults\":%" PRIu64 ",\"fault_retries\":%" PRIu64, (uint64_t)r->vs.faults,
	       (uint64_t)r->vs.fault_retries);
	printf(",\"mapped\":{\"4K\":%" PRIu64 ",\"2M\":%" PRIu64 ",\"1G\":%" PRIu64 "}",
	       (uint64_t)r->vs.mapped[0], (uint64_t)r->vs.mapped[1], (uint64_t)r->vs.mapped[2]);
	printf(",\"mappings_present\":{\"4K\":%" PRIu64 ",\"2M\":%" PRIu64 ",\"1G\":%" PRIu64 "}",
	       (uint64_t)r->vs.mappings[0], (uint64_t)r->vs.mappings[1], (uint64_t)r->vs.mappings[2]);
	printf(",\"zapped\":%" PRIu64 ",\"splits\":%" PRIu64 ",\"tlb_shootdowns\":%" PRIu64,
	       (uint64_t)r->vs.zapped, (uint64_t)r->vs.splits, (uint64_t)r->vs.tlb_shootdowns);
	printf(",\"pool\":{\"in_use\":%" PRIu64 ",\"populated\":%" PRIu64 ",\"scrubbed\":%" PRIu64
	       ",\"released\":%" PRIu64 "}", (uint64_t)r->ps.in_use, (uint64_t)r->ps.populated,
	       (uint64_t)r->ps.scrubbed, (uint64_t)r->ps.released);
	if (r->pkvm)
		report_json_pkvm(r);
	cli_report_checks(check_names, r->passed, r->failed, CK_NR, r->run_result ? r->m->abort_msg : NULL,
			  r->total_failed || r->run_result, true);
}

static void report_collect(struct report *r)
{
	for (int i = 0; i < r->o->vcpus; i++)
		for (int c = 0; c < CK_NR; c++) {
			r->passed[c] += r->ctx->jobs[i].passed[c];
			r->failed[c] += r->ctx->jobs[i].failed[c];
		}
	for (int c = 0; c < CK_NR; c++) {
		r->total_passed += r->passed[c];
		r->total_failed += r->failed[c];
	}
	vmm_vm_stats(r->m, &r->vs);
	vmm_pool_stats(r->m, &r->ps);
}

int cmd_run(int argc, char **argv)
{
	struct run_ctx *ctx = calloc(1, sizeof(*ctx));
	void *args[VMM_MAX_VCPUS];
	struct report rep = { 0 };
	struct run_opts o;
	struct timespec t0;
	struct vmm m;
	int r = run_parse(argc, argv, &o), sys = -1;

	if (r || !ctx) {
		free(ctx);
		return r ? r : 1;
	}
	if (o.type == KVM_X86_SNP_VM) {
		free(ctx);
		return run_snp(o.mem, o.vcpus, o.seed, o.iterations, o.json);
	}
	if (o.type == KVM_X86_TDX_VM) {
		struct run_tdx_opts t = { .mem = o.mem, .vcpus = o.vcpus, .seed = o.seed,
					  .iterations = o.iterations, .busy_per_million = o.busy_per_million,
					  .no_huge = o.no_huge, .json = o.json };

		free(ctx);
		return run_tdx(&t);
	}
	rep.pkvm = o.type == PM_VM_TYPE_PKVM;
	if (rep.pkvm) {
		sys = pm_kvm_open();
		pkvm_stats(sys, &rep.pk_start);
	}
	if (vmm_create(&m, o.type, o.mem, o.vcpus, 0)) {
		vmm_destroy(&m);
		pm_kvm_close(sys);
		free(ctx);
		return 1;
	}
	jobs_init(ctx, &m, &o);
	for (int i = 0; i < o.vcpus; i++)
		args[i] = &ctx->jobs[i];
	m.ctx = ctx;
	m.sync = vmm_sync;
	m.mmio = device_mmio;
	device_start(&ctx->dev, &m, ctx->jobs);
	vmm_set_guest(&m, guest_main, args);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	rep.run_result = vmm_run_all(&m, isatty(STDERR_FILENO) && !o.json ? progress_tick : NULL, &t0);
	rep.elapsed = cli_elapsed(&t0);
	if (isatty(STDERR_FILENO) && !o.json)
		fprintf(stderr, "\r%70s\r", "");
	device_stop(&ctx->dev);

	rep.o = &o;
	rep.ctx = ctx;
	rep.m = &m;
	report_collect(&rep);
	if (rep.pkvm)
		pkvm_stats(sys, &rep.pk_run_end);
	vmm_destroy(&m);                /* pKVM: teardown poisons what the guest owned */
	if (rep.pkvm) {
		pkvm_stats(sys, &rep.pk_end);
		pm_kvm_close(sys);
		/* Correct code never makes the host touch what it does not own. */
		check(&ctx->jobs[0], CK_NO_HOST_S2_FAULT, !pk_delta(&rep, "host_s2_faults"));
		rep.passed[CK_NO_HOST_S2_FAULT] = ctx->jobs[0].passed[CK_NO_HOST_S2_FAULT];
		rep.failed[CK_NO_HOST_S2_FAULT] = ctx->jobs[0].failed[CK_NO_HOST_S2_FAULT];
		rep.total_passed += rep.passed[CK_NO_HOST_S2_FAULT];
		rep.total_failed += rep.failed[CK_NO_HOST_S2_FAULT];
	}
	if (o.json)
		report_json(&rep);
	else
		report_text(&rep);
	r = rep.total_failed || rep.run_result ? 1 : 0;
	free(ctx);
	return r;
}

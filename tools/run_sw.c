/* SPDX-License-Identifier: MIT */
/*
 * privmem run on software-protected, default and pKVM VMs (run.h's
 * run_sw): scenarios where the VMM converts memory (or, on pKVM, the guest
 * shares it in place), and their report.
 *
 * Scenarios (one per vCPU; the default mixes them):
 *  - convert: the vCPU converts regions of its chunk back and forth in 4K
 *    and 2M patterns, checking data at every step (the host sees shared
 *    writes, private pages start zeroed, or in in-place mode keep what was
 *    shared, private data never reaches the host, whose reads of private
 *    pages fail in in-place mode, host writes reach the guest after a page
 *    is shared again);
 *  - bounce: a virtio-like device thread in the VMM fills a shared bounce
 *    buffer on request (doorbell: an MMIO write); the guest copies the data
 *    into private memory and checks it;
 *  - accept: the vCPU converts its whole chunk to private in 2M batches and
 *    touches every page, as a booting guest accepts memory;
 *  - virtio (pKVM VMs, where it is the only scenario): the guest grants
 *    the device's doorbell granule with MMIO_GUARD (after which MMIO
 *    elsewhere aborts: it checks that once, catching the abort), writes a
 *    request into its own buffer pages and shares them in place (MEM_SHARE,
 *    a granule per call), rings the doorbell; the device thread reads the request through the
 *    VMM's guest_memfd view, pins the pages as DMA would, writes its
 *    response in place and unpins; the guest unshares the buffer (in place,
 *    no copy) and checks the response, and the VMM checks it can no longer
 *    reach the pages, nor ever the guest's private data.
 * Data checks are counted per kind; the run fails if any failed. The
 * report adds to the VM's figures each vCPU's scenario and chunk and, on
 * pKVM, what the hypervisor did (its transitions under the names the
 * library gives them).
 */
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cli.h"
#include "run.h"

const char *const run_scenario_names[SC_NR] = { "convert", "bounce", "accept", "virtio" };
#define SC_MIX_NR SC_VIRTIO      /* the default mix on VMs with attributes */

enum check {
	CK_HOST_SEES_SHARED, CK_PRIVATE_STARTS_ZERO, CK_PRIVATE_READBACK, CK_HOST_NEVER_SEES_PRIVATE,
	CK_GUEST_SEES_HOST_WRITE, CK_BOUNCE_DATA, CK_ACCEPT_ZERO, CK_ACCEPT_READBACK,
	CK_DEVICE_SEES_REQUEST, CK_GUEST_KEEPS_RESPONSE, CK_HOST_LOSES_UNSHARED, CK_HOST_CANNOT_MAP_PRIVATE,
	CK_NO_HOST_S2_FAULT, CK_MMIO_OUTSIDE_GUARD_ABORTS, CK_PRIVATE_KEEPS_DATA, CK_NR,
};
static const char *const check_names[] = {
	"host_sees_shared_write", "private_page_starts_zero", "private_readback",
	"host_never_sees_private", "guest_sees_host_write_after_share", "bounce_data_intact",
	"accepted_page_starts_zero", "accepted_page_readback",
	"device_reads_request_in_place", "guest_keeps_response_after_unshare",
	"host_cannot_map_after_unshare", "host_cannot_map_private", "no_host_stage2_fault",
	"mmio_outside_guard_aborts", "private_page_keeps_shared_data",
};
_Static_assert(sizeof(check_names) / sizeof(check_names[0]) == CK_NR, "a name per check");

#define MIB ((uint64_t)1 << 20)
#define BOUNCE_HDR_SEQ    0
#define BOUNCE_HDR_LEN    8
#define BOUNCE_HDR_SUM    16
#define BOUNCE_HDR_STATUS 24
#define BOUNCE_DATA_MAX   (256 * 1024)
#define DOORBELL_GPA      (1ULL << 40)   /* outside every memslot: MMIO */
#define UNGUARDED_GPA     (DOORBELL_GPA + 4096) /* pKVM: MMIO the guest never grants */

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
	enum run_scenario sc;
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
	/* Destructive conversion gives a fresh page; in place the page keeps
	 * what it held (the guest's to clear, if it wants). */
	if (j->m->in_place)
		check(j, CK_PRIVATE_KEEPS_DATA, guest_has(g, gpa, npages, seed, false));
	else
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

/* pKVM's shares never exit, so the VMM's map of private pages (its memory
 * plot) cannot follow them from exits: the guest, this program too, tells
 * it what it shared, as a driver tells its device. */
static void guest_tells_vmm(struct job *j, uint64_t gpa, uint64_t len, bool private)
{
	vmm_mark_private(j->m, gpa, len, private);
}

static void guest_virtio_request(struct pm_guest *g, struct job *j, uint64_t seq, uint8_t *buf)
{
	uint64_t ring = j->base, data = j->base + VIRTIO_BUF_OFF, priv = j->base + VIRTIO_PRIV_OFF;
	uint64_t npages = 1 + seq * 7919u % VIRTIO_BUF_PAGES, len = npages << 12;
	bool ok = true;

	for (uint64_t i = 0; i < len; i++)
		buf[i] = virtio_byte(seq, i);
	pm_guest_write(g, data, buf, len);              /* private until shared */
	PM_GUEST_ASSERT(g, pm_guest_mem_share_range(g, data, npages) == npages);
	guest_tells_vmm(j, data, len, false);
	pm_guest_write64(g, ring + BOUNCE_HDR_LEN, len);
	pm_guest_write64(g, ring + BOUNCE_HDR_SEQ, seq);
	pm_guest_write64(g, DOORBELL_GPA, seq);         /* kick the device */
	while (pm_guest_read64(g, ring + BOUNCE_HDR_STATUS) != seq)
		sched_yield();                          /* the device runs on the host */
	PM_GUEST_ASSERT(g, pm_guest_mem_unshare_range(g, data, npages) == npages);
	guest_tells_vmm(j, data, len, true);
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

/* The device window is the doorbell's granule, granted with MMIO_GUARD
 * (every vCPU grants it: a second grant is fine). From then on MMIO
 * anywhere else aborts, and never reaches the VMM: a write one granule
 * further must be recorded as an abort at its address. */
static void guest_virtio_guard(struct pm_guest *g, struct job *j)
{
	uint64_t far = 0;

	PM_GUEST_ASSERT(g, pm_guest_hyp_meminfo(g) == PM_PKVM_GRANULE);
	PM_GUEST_ASSERT(g, pm_guest_mmio_guard(g, DOORBELL_GPA) == PM_SMCCC_RET_SUCCESS);
	pm_guest_catch_aborts(g, true);
	pm_guest_write64(g, UNGUARDED_GPA, 1);
	check(j, CK_MMIO_OUTSIDE_GUARD_ABORTS, pm_guest_take_aborts(g, &far) == 1 && far == UNGUARDED_GPA);
	pm_guest_catch_aborts(g, false);
}

static void guest_virtio_main(struct pm_guest *g, struct job *j)
{
	uint8_t *buf = malloc(VIRTIO_BUF_PAGES * 4096);

	PM_GUEST_ASSERT(g, buf != NULL);
	guest_virtio_guard(g, j);
	pm_guest_write64(g, j->base + BOUNCE_HDR_STATUS, 0);
	PM_GUEST_ASSERT(g, pm_guest_mem_share(g, j->base) == PM_SMCCC_RET_SUCCESS);   /* the ring */
	guest_tells_vmm(j, j->base, 4096, false);
	for (unsigned int seq = 1; seq <= j->iterations; seq++) {
		guest_virtio_request(g, j, seq, buf);
		if (seq % 16 == 0) {
			guest_sync(g, j, SYNC_HOST_CHECK_UNMAPPABLE, j->base + VIRTIO_PRIV_OFF,
				   VIRTIO_PRIV_PAGES, 1);
			guest_sync(g, j, SYNC_PROGRESS, 0, 0, 0);
		}
	}
	PM_GUEST_ASSERT(g, pm_guest_mem_unshare(g, j->base) == PM_SMCCC_RET_SUCCESS);
	guest_tells_vmm(j, j->base, 4096, true);
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

/* Does the host see the pattern (or, `absent`, never see it) in each
 * page? Read as a system call reads: a page the host may not map (in
 * place, a private one: SIGBUS for a plain read) sees nothing. */
static bool host_has(struct vmm *m, uint64_t gpa, uint64_t npages, uint64_t seed, bool absent)
{
	for (uint64_t p = 0; p < npages; p++) {
		uint64_t a = gpa + (p << 12), w0, w1;
		bool seen = !vmm_host_read(m, a, &w0, 8) && !vmm_host_read(m, a + 4088, &w1, 8);

		if (absent ? seen && (w0 == pattern(a, seed) || w1 == (pattern(a, seed) ^ 1))
			   : !seen || w0 != pattern(a, seed) || w1 != (pattern(a, seed) ^ 1))
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

	if (run->mmio.phys_addr == UNGUARDED_GPA)   /* pKVM: the guard lets none through */
		check(&((struct run_ctx *)m->ctx)->jobs[vcpu], CK_MMIO_OUTSIDE_GUARD_ABORTS, false);
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

/* ---- setup ---- */

static void jobs_init(struct run_ctx *ctx, struct vmm *m, const struct run_opts *o)
{
	uint64_t chunk = PM_ALIGN_DOWN_U64(o->mem / (uint64_t)o->vcpus, 2 * MIB);

	for (int i = 0; i < o->vcpus; i++) {
		struct job *j = &ctx->jobs[i];

		j->m = m;
		j->sc = o->scenario == SC_DEFAULT ? (enum run_scenario)(i % SC_MIX_NR) : o->scenario;
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

/* pKVM: what the hyp has done (PM_KVM_GET_MODEL_STATS on the system
 * handle), at the start, just before teardown and after it. */
struct pkvm_snapshots {
	int sys;
	struct pm_model_stats start, run_end, end;
};

static void pkvm_snapshot(const struct pkvm_snapshots *pk, struct pm_model_stats *st)
{
	*st = (struct pm_model_stats){ .vm_type = PM_VM_TYPE_PKVM };
	if (pm_kvm_ioctl(pk->sys, PM_KVM_GET_MODEL_STATS, st))
		st->nr = 0;
}

static uint64_t pk_delta(const struct pkvm_snapshots *pk, const char *name)
{
	return vmm_model_stat(&pk->end, name) - vmm_model_stat(&pk->start, name);
}

/* The hyp's transitions are its counters that have a <name>_refused. */
static bool pk_refused_name(const struct pkvm_snapshots *pk, const char *name, char *refused,
			    size_t size)
{
	snprintf(refused, size, "%s_refused", name);
	for (unsigned int i = 0; i < pk->end.nr; i++)
		if (!strcmp(pk->end.v[i].name, refused))
			return true;
	return false;
}

/* ---- the report ---- */

static void report_jobs(struct report *rep, const struct run_opts *o, const struct run_ctx *ctx)
{
	char idx[16];

	report_section(rep, "scenarios");
	for (int i = 0; i < o->vcpus; i++) {
		snprintf(idx, sizeof(idx), "%d", i);
		report_str(rep, idx, run_scenario_names[ctx->jobs[i].sc]);
	}
	for (int i = 0; i < o->vcpus; i++) {
		report_section(rep, "chunks.%d", i);
		report_u64(rep, "base", ctx->jobs[i].base);
		report_u64(rep, "mem_bytes", ctx->jobs[i].size);
		report_line(rep, "  vCPU %d: {scenarios.%d:-8} {chunks.%d.mem_bytes:MiB} MiB at 0x{chunks.%d.base:x}",
			    i, i, i, i);
	}
	report_top(rep);
}

static void report_vm_lines(struct report *rep)
{
	report_line(rep, "elapsed        {elapsed_s:.3} s");
	report_line(rep, "exits          ucall {exits.ucall}, memory_fault {exits.memory_fault}, "
		    "hypercall {exits.hypercall}, mmio {exits.mmio}, intr {exits.intr}");
	report_line(rep, "conversions    {conversions} (pages to private {pages_to_private}, "
		    "to shared {pages_to_shared})");
	report_line(rep, "faults         {faults} (retried {fault_retries})");
	report_line(rep, "mapped         4K {mapped.4K}, 2M {mapped.2M}, 1G {mapped.1G}  (present at the end: "
		    "4K {mappings_present.4K}, 2M {mappings_present.2M}, 1G {mappings_present.1G})");
	report_line(rep, "zaps           {zapped} mappings removed, {splits} huge mappings split");
	report_line(rep, "tlb shootdowns {tlb_shootdowns}");
	report_line(rep, "frame pool     in use {pool.in_use:MiB.1} MiB, populated {pool.populated:MiB.1} MiB, "
		    "scrubbed {pool.scrubbed:MiB.1} MiB, released {pool.released:MiB.1} MiB");
}

/* The hyp's work during the run: every transition done and refused, and
 * the text lists those that happened, two to a line. */
static void report_pkvm(struct report *rep, const struct pkvm_snapshots *pk)
{
	char refused[sizeof(pk->end.v[0].name) + 16], first[3 * sizeof(pk->end.v[0].name) + 64];
	int shown = 0;

	report_section(rep, "pkvm.transitions");
	for (unsigned int i = 0; i < pk->end.nr; i++)
		if (pk_refused_name(pk, pk->end.v[i].name, refused, sizeof(refused)))
			report_u64(rep, pk->end.v[i].name, pk_delta(pk, pk->end.v[i].name));
	report_section(rep, "pkvm.refused");
	for (unsigned int i = 0; i < pk->end.nr; i++)
		if (pk_refused_name(pk, pk->end.v[i].name, refused, sizeof(refused)))
			report_u64(rep, pk->end.v[i].name, pk_delta(pk, refused));
	report_section(rep, "pkvm");
	report_u64(rep, "host_stage2_faults", pk_delta(pk, "host_s2_faults"));
	report_u64(rep, "pages_poisoned_at_teardown", vmm_model_stat(&pk->end, "pages_poisoned") -
						      vmm_model_stat(&pk->run_end, "pages_poisoned"));
	report_u64(rep, "unshares_refused_pinned", pk_delta(pk, "unshare_busy"));
	report_u64(rep, "hyp_meminfo_calls", pk_delta(pk, "hyp_meminfo_calls"));
	report_u64(rep, "mmio_guard_grants", pk_delta(pk, "mmio_guard_grants"));
	report_u64(rep, "mmio_guard_refusals", pk_delta(pk, "mmio_guard_refusals"));
	report_u64(rep, "mmio_aborts", pk_delta(pk, "mmio_aborts"));
	report_u64(rep, "memslot_frozen_refusals", pk_delta(pk, "memslot_frozen_refusals"));
	report_u64(rep, "punch_pinned_refusals", pk_delta(pk, "punch_pinned_refusals"));
	report_top(rep);

	report_line(rep, "pkvm hyp       transitions (refused):");
	for (unsigned int i = 0; i < pk->end.nr; i++) {
		const char *t = pk->end.v[i].name;

		if (!pk_refused_name(pk, t, refused, sizeof(refused)) ||
		    (!pk_delta(pk, t) && !pk_delta(pk, refused)))
			continue;
		if (shown++ % 2)
			report_line(rep, "               %s, %s {pkvm.transitions.%s} ({pkvm.refused.%s})", first,
				    t, t, t);
		else
			snprintf(first, sizeof(first), "%s {pkvm.transitions.%s} ({pkvm.refused.%s})", t, t, t);
	}
	if (shown % 2)
		report_line(rep, "               %s", first);
	report_line(rep, "               host stage-2 faults {pkvm.host_stage2_faults}, pages poisoned at "
		    "teardown {pkvm.pages_poisoned_at_teardown}, unshares refused while pinned "
		    "{pkvm.unshares_refused_pinned}");
	report_line(rep, "pkvm guest     HYP_MEMINFO {pkvm.hyp_meminfo_calls}; the device window by MMIO_GUARD: "
		    "grants {pkvm.mmio_guard_grants} (refused {pkvm.mmio_guard_refusals}), MMIO aborted "
		    "outside it {pkvm.mmio_aborts}");
	report_line(rep, "pkvm memory    memslot changes refused (frozen) {pkvm.memslot_frozen_refusals}, "
		    "punches refused (pinned) {pkvm.punch_pinned_refusals}");
}

/* pKVM's shares and unshares never exit: the VM's conversion figures are
 * the hyp's, one page per call. */
static void pkvm_count_conversions(struct vmm *m, const struct pkvm_snapshots *pk)
{
	uint64_t shared = vmm_model_stat(&pk->run_end, "guest_share_host") -
			  vmm_model_stat(&pk->start, "guest_share_host");
	uint64_t unshared = vmm_model_stat(&pk->run_end, "guest_unshare_host") -
			    vmm_model_stat(&pk->start, "guest_unshare_host");

	atomic_store(&m->to_shared_pages, shared);
	atomic_store(&m->to_private_pages, unshared);
	atomic_store(&m->conversions, shared + unshared);
}

static void report_checks(struct report *rep, const struct run_opts *o, const struct run_ctx *ctx,
			  const char *guest_failure)
{
	uint64_t passed[CK_NR] = { 0 }, failed[CK_NR] = { 0 };

	for (int i = 0; i < o->vcpus; i++)
		for (int c = 0; c < CK_NR; c++) {
			passed[c] += ctx->jobs[i].passed[c];
			failed[c] += ctx->jobs[i].failed[c];
		}
	run_report_checks(rep, check_names, passed, failed, CK_NR, guest_failure, false);
}

/* ---- the runner ---- */

int run_sw(const struct run_opts *o, struct report *rep)
{
	struct run_ctx *ctx = calloc(1, sizeof(*ctx));
	struct pkvm_snapshots pk = { .sys = -1 };
	bool pkvm = o->type == PM_VM_TYPE_PKVM;
	void *args[VMM_MAX_VCPUS];
	struct timespec t0;
	struct vmm m;
	double elapsed;
	int run_result;

	if (!ctx)
		return 1;
	if (pkvm) {
		pk.sys = pm_kvm_open();
		pkvm_snapshot(&pk, &pk.start);
	}
	if (vmm_create(&m, o->type, o->mem, o->vcpus, 0)) {
		vmm_destroy(&m);
		pm_kvm_close(pk.sys);
		free(ctx);
		return 1;
	}
	m.stall_s = o->stall_s;
	jobs_init(ctx, &m, o);
	for (int i = 0; i < o->vcpus; i++)
		args[i] = &ctx->jobs[i];
	m.ctx = ctx;
	m.sync = vmm_sync;
	m.mmio = device_mmio;
	device_start(&ctx->dev, &m, ctx->jobs);
	vmm_set_guest(&m, guest_main, args);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	run_result = vmm_run_all(&m, o->progress ? run_progress_tick : NULL, &t0);
	elapsed = cli_elapsed(&t0);
	if (o->progress)
		run_progress_clear();
	device_stop(&ctx->dev);
	if (pkvm) {
		pkvm_snapshot(&pk, &pk.run_end);
		pkvm_count_conversions(&m, &pk);
	}

	run_report_header(rep, "");
	report_jobs(rep, o, ctx);
	report_real(rep, "elapsed_s", elapsed);
	run_report_vm(rep, &m);
	report_vm_lines(rep);
	vmm_destroy(&m);                /* pKVM: teardown poisons what the guest owned */
	if (pkvm) {
		pkvm_snapshot(&pk, &pk.end);
		pm_kvm_close(pk.sys);
		/* Correct code never makes the host touch what it does not own. */
		check(&ctx->jobs[0], CK_NO_HOST_S2_FAULT, pk.end.nr && !pk_delta(&pk, "host_s2_faults"));
		report_pkvm(rep, &pk);
	}
	report_checks(rep, o, ctx, run_result ? m.abort_msg : NULL);
	free(ctx);
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * privmem bench convert, fault, access and scale: privmem's memory paths
 * on software-protected VMs (see bench.c for what each measures).
 *
 * Guest code (fault, access) follows tools/run.c: a struct passed as the
 * guest's argument, PM_GUEST_ASSERT for sanity, pm_guest_sync marks that the
 * VMM's SYNC handler timestamps: the handler runs on the vCPU thread between
 * two KVM_RUNs, so [start mark, end mark] is exactly one KVM_RUN.
 *
 * The kernel reference uses the real ioctl(2) with the numbers from
 * privmem/kvm.h (which match Linux's); this file must not include
 * <linux/kvm.h>.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <linux/falloc.h>
#include "cli.h"
#include "vmm.h"

#include "bench.h"

/* ---- the phases guest code marks (bench.h's marks) ---- */

enum phase { PH_FAULT, PH_BULK, PH_RAND_SMALL, PH_RAND_LARGE, PH_NR };

/* A guest's job: parameters, and what the VMM's SYNC handler records
 * (the guest is suspended while it runs). */
struct gjob {
	uint64_t size;                     /* guest RAM used, bytes */
	unsigned int reps;
	/* access */
	const uint8_t *src;                /* the data the guest writes into private memory */
	uint8_t *dst;                      /* where bulk reads go */
	const uint32_t *idx_small, *idx_large;
	size_t n_small, n_large;           /* index array lengths */
	unsigned int loops_small, loops_large;
	uint64_t sum_small, sum_large;
	/* VMM side */
	struct bench_marks mk;
};

/* Runs one VM with one vCPU on guest code fn(j). 0, or -1 with r->error. */
static int run_guest(struct result *r, uint64_t gmem_flags, void (*fn)(struct pm_guest *g, void *arg),
		     struct gjob *j)
{
	struct vmm m;
	int ret;

	if (bench_vm_create(r, &m, KVM_X86_SW_PROTECTED_VM, j->size, gmem_flags))
		return -1;
	ret = bench_vm_run(r, &m, fn, j, &j->mk);
	vmm_destroy(&m);
	return ret;
}

/* ==================================================================== */
/* convert                                                              */
/* ==================================================================== */

/* The Linux kernel's guest_memfd, through the real /dev/kvm. */
struct kref {
	int kvm, vm, gmem;
};

static int kref_open(struct kref *k, uint64_t size, char *why, size_t n)
{
	struct kvm_create_guest_memfd cg = { .size = size };

	k->kvm = k->vm = k->gmem = -1;
	k->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (k->kvm < 0) {
		snprintf(why, n, "open /dev/kvm: %s", strerror(errno));
		return -1;
	}
	do
		k->vm = ioctl(k->kvm, KVM_CREATE_VM, KVM_X86_DEFAULT_VM);
	while (k->vm < 0 && errno == EINTR);
	if (k->vm < 0) {
		snprintf(why, n, "KVM_CREATE_VM: %s", strerror(errno));
		return -1;
	}
	k->gmem = ioctl(k->vm, KVM_CREATE_GUEST_MEMFD, &cg);
	if (k->gmem < 0) {
		snprintf(why, n, "KVM_CREATE_GUEST_MEMFD: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static void kref_close(struct kref *k)
{
	if (k->gmem >= 0)
		close(k->gmem);
	if (k->vm >= 0)
		close(k->vm);
	if (k->kvm >= 0)
		close(k->kvm);
}

/* One pass of the kernel's allocate + punch over [0, size): 0 or -errno. */
static int kref_pass(struct kref *k, uint64_t size, uint64_t gran)
{
	for (uint64_t off = 0; off < size; off += gran) {
		if (fallocate(k->gmem, FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)gran) ||
		    fallocate(k->gmem, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)gran))
			return -errno;
	}
	return 0;
}

/* The steps of privmem's 4K pair, timed one by one over [0, size) (the same
 * operations vmm_convert and privmem_pair make, with a clock read between
 * them): mean ns per step into ns[], 0 or -errno. */
enum { STEP_ATTR_PRIVATE, STEP_FALLOCATE, STEP_DISCARD, STEP_ATTR_SHARED, STEP_PUNCH, STEP_NR };
static const char *const step_names[STEP_NR] = {
	"KVM_SET_MEMORY_ATTRIBUTES private", "fallocate (allocate)", "madvise(DONTNEED) shared copy",
	"KVM_SET_MEMORY_ATTRIBUTES shared", "fallocate(PUNCH_HOLE)",
};
static const char *const step_keys[STEP_NR] = {
	"step_attr_private_ns", "step_fallocate_ns", "step_discard_ns", "step_attr_shared_ns",
	"step_punch_ns",
};

static int convert_breakdown(struct vmm *m, uint64_t size, double ns[STEP_NR])
{
	uint64_t acc[STEP_NR] = { 0 };

	for (uint64_t off = 0; off < size; off += PAGE_4K) {
		struct kvm_memory_attributes a = { .address = off, .size = PAGE_4K,
						   .attributes = KVM_MEMORY_ATTRIBUTE_PRIVATE };
		uint64_t t[STEP_NR + 1];

		t[0] = now_ns();
		if (pm_kvm_ioctl(m->vm, KVM_SET_MEMORY_ATTRIBUTES, &a))
			return -errno;
		t[1] = now_ns();
		if (pm_kvm_fallocate(m->gmem, FALLOC_FL_KEEP_SIZE, (off_t)off, PAGE_4K))
			return -errno;
		t[2] = now_ns();
		madvise(m->shared + off, PAGE_4K, MADV_DONTNEED);
		t[3] = now_ns();
		a.attributes = 0;
		if (pm_kvm_ioctl(m->vm, KVM_SET_MEMORY_ATTRIBUTES, &a))
			return -errno;
		t[4] = now_ns();
		if (pm_kvm_fallocate(m->gmem, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, PAGE_4K))
			return -errno;
		t[5] = now_ns();
		for (int i = 0; i < STEP_NR; i++)
			acc[i] += t[i + 1] - t[i];
	}
	for (int i = 0; i < STEP_NR; i++)
		ns[i] = (double)acc[i] / (double)(size / PAGE_4K);
	return 0;
}

#define BREAKDOWN_SIZE (64 * MIB)

void bench_convert(const struct bench_opts *o, struct result *r)
{
	static const struct { uint64_t gran; const char *name; uint64_t flags; const char *fl; } g[2] = {
		{ PAGE_4K, "4K", PM_GUEST_MEMFD_FLAG_NO_HUGE, "NO_HUGE" },
		{ PAGE_2M, "2M", PM_GUEST_MEMFD_FLAG_NO_1G, "NO_1G" },
	};
	uint64_t size = r->size;
	uint8_t *zbuf = buffer_new(size);
	char key[48], label[96], why[192] = "";
	struct figure *fp[2], *fk[2], *fz[2];

	snprintf(r->title, sizeof(r->title), "destructive conversion shared -> private -> shared");
	if (!zbuf) {
		result_fail(r, "mmap of the zeroing buffer: %s", strerror(errno));
		return;
	}
	for (int i = 0; i < 2 && !r->failed; i++) {
		struct samples sp = { .n = 0 }, sk = { .n = 0 }, sz = { .n = 0 };
		double pairs = (double)(size / g[i].gran);
		struct kref k = { -1, -1, -1 };
		struct vmm m;
		bool kok;

		snprintf(key, sizeof(key), "privmem_%s", g[i].name);
		snprintf(label, sizeof(label), "privmem, %s granules", g[i].name);
		fp[i] = figure_add(r, key, label, "pair", pairs, (double)size);
		snprintf(key, sizeof(key), "kernel_%s", g[i].name);
		snprintf(label, sizeof(label), "kernel guest_memfd, %s", g[i].name);
		fk[i] = figure_add(r, key, label, "pair", pairs, (double)size);
		snprintf(key, sizeof(key), "zeroing_%s", g[i].name);
		snprintf(label, sizeof(label), "zeroing (memset), %s", g[i].name);
		fz[i] = figure_add(r, key, label, "granule", pairs, (double)size);

		if (vmm_create(&m, KVM_X86_SW_PROTECTED_VM, size, 1, g[i].flags)) {
			vmm_destroy(&m);
			result_fail(r, "cannot create the VM (see above)");
			break;
		}
		kok = !why[0] && kref_open(&k, size, why, sizeof(why)) == 0;
		for (unsigned int rep = 0; rep < r->reps && !r->failed; rep++) {
			uint64_t t0 = now_ns();
			int e = privmem_pass(&m, size, g[i].gran);

			if (e) {
				result_fail(r, "privmem conversion (%s): %s", g[i].name, strerror(-e));
				break;
			}
			samples_add(&sp, secs_since(t0));
			if (kok) {
				t0 = now_ns();
				e = kref_pass(&k, size, g[i].gran);
				if (e) {
					snprintf(why, sizeof(why), "fallocate: %s", strerror(-e));
					kok = false;
				} else {
					samples_add(&sk, secs_since(t0));
				}
			}
			t0 = now_ns();
			zero_pass(zbuf, size, g[i].gran);
			samples_add(&sz, secs_since(t0));
		}
		if (i == 0 && !r->failed) {
			double ns[STEP_NR];
			int e = convert_breakdown(&m, PM_MIN_U64(size, BREAKDOWN_SIZE), ns);

			if (e)
				result_fail(r, "privmem conversion (breakdown): %s", strerror(-e));
			for (int st = 0; st < STEP_NR && !e; st++) {
				snprintf(label, sizeof(label), "4K pair step: %s", step_names[st]);
				info_add(r, step_keys[st], label, ns[st], "ns");
			}
		}
		kref_close(&k);
		vmm_destroy(&m);
		figure_set(fp[i], &sp);
		figure_set(fz[i], &sz);
		if (kok)
			figure_set(fk[i], &sk);
		else
			figure_skip(fk[i], why);
	}
	buffer_free(zbuf, size);
	if (r->failed)
		return;
	for (int i = 0; i < 2; i++) {
		snprintf(key, sizeof(key), "privmem_over_zeroing_%s", g[i].name);
		snprintf(label, sizeof(label), "privmem / zeroing, %s (time per granule)", g[i].name);
		double pz = ratio_add(r, key, label, fp[i], fz[i], false);
		snprintf(key, sizeof(key), "kernel_over_privmem_%s", g[i].name);
		snprintf(label, sizeof(label), "kernel / privmem, %s (privmem's speedup)", g[i].name);
		double kp = ratio_add(r, key, label, fk[i], fp[i], false);

		if (i == 0) {
			target_add(r, "privmem_within_1.5x_of_zeroing_4k",
				   "4K: privmem within 1.5x of zeroing", pz, 1.5, false, NULL);
			target_add(r, "privmem_5x_faster_than_kernel_4k",
				   "4K: privmem at least 5x faster than the kernel", kp, 5.0, true,
				   "kernel reference skipped");
		}
	}
	if (fk[0]->skipped)
		note(r, "kernel reference: skipped (%s)", fk[0]->why);
	note(r, "a pair = attributes private + fallocate(KEEP_SIZE) the granule, then attributes "
		"shared + punch hole (the VMM's discard of its own shared copy, a madvise it makes with "
		"or without privmem, is timed only in the step breakdown); guest_memfd flags %s (4K), %s (2M) "
		"so each granule gets one page of its size", g[0].fl, g[1].fl);
	note(r, "kernel: KVM_CREATE_VM type 0 + KVM_CREATE_GUEST_MEMFD on /dev/kvm, per granule "
		"fallocate(KEEP_SIZE) + fallocate(PUNCH_HOLE|KEEP_SIZE); guest_memfd refuses mode 0 "
		"(EOPNOTSUPP) in Linux and privmem alike");
	note(r, "zeroing: memset of each granule of a pre-faulted anonymous buffer of the same size "
		"(it streams through the buffer; privmem's pool reuses, and scrubs, the same cache-hot "
		"frames)");
	note(r, "4K pair steps: a separate pass over the first %" PRIu64 " MiB with a clock read "
		"between steps (information, not part of the figures)", PM_MIN_U64(size, BREAKDOWN_SIZE) / MIB);
}

/* ==================================================================== */
/* fault                                                                */
/* ==================================================================== */

#define FAULT_STAMP 0xF0F0000000000000ULL

static void guest_fault_main(struct pm_guest *g, void *arg)
{
	struct gjob *j = arg;
	uint64_t npages = j->size >> 12;

	PM_GUEST_ASSERT(g, guest_map_gpa_range(g, 0, j->size >> 12, true) == 0);
	pm_guest_sync(g, BENCH_MARK(PH_FAULT, 0));
	for (uint64_t p = 0; p < npages; p++)
		pm_guest_write64(g, p << 12, p | FAULT_STAMP);
	pm_guest_sync(g, BENCH_MARK(PH_FAULT, 1));
	/* Sanity, untimed: every page kept its word and started zeroed. */
	for (uint64_t p = 0; p < npages; p++) {
		PM_GUEST_ASSERT(g, pm_guest_read64(g, p << 12) == (p | FAULT_STAMP));
		PM_GUEST_ASSERT(g, pm_guest_read64(g, (p << 12) + 8) == 0);
	}
}

/* What a series of fault runs saw in its best run. */
struct fault_best {
	struct pm_vm_stats vs;     /* faults and mapped[]: during the loop; mappings[]: after it */
	uint64_t populated;        /* pool bytes faulted in from the OS during the loop */
};

/* `reps` runs of a fresh VM of `size` bytes touching its RAM: their times
 * into *s, the best run's statistics into *best. 0 or -1 (r->error). */
static int fault_series(struct result *r, unsigned int reps, uint64_t size, uint64_t gmem_flags,
			struct samples *s, struct fault_best *best)
{
	struct gjob *j = calloc(1, sizeof(*j));
	double best_t = INFINITY;
	int ret = 0;

	if (!j) {
		result_fail(r, "out of memory");
		return -1;
	}
	for (unsigned int rep = 0; rep < reps && !ret; rep++) {
		struct samples *t = &j->mk.t[PH_FAULT];

		memset(j, 0, sizeof(*j));
		j->size = size;
		ret = run_guest(r, gmem_flags, guest_fault_main, j);
		if (ret || t->n != 1)
			continue;
		samples_add(s, t->v[0]);
		if (t->v[0] < best_t) {
			best_t = t->v[0];
			const struct bench_marks *mk = &j->mk;

			best->vs = mk->vs_end[PH_FAULT];
			for (int l = 0; l < 3; l++)
				best->vs.mapped[l] -= mk->vs_start[PH_FAULT].mapped[l];
			best->vs.faults -= mk->vs_start[PH_FAULT].faults;
			best->vs.fault_retries -= mk->vs_start[PH_FAULT].fault_retries;
			best->populated = mk->ps_end[PH_FAULT].populated - mk->ps_start[PH_FAULT].populated;
		}
	}
	free(j);
	return ret;
}

#define FAULT_WARM_SIZE (128 * MIB)

void bench_fault(const struct bench_opts *o, struct result *r)
{
	static const struct { const char *name, *key; uint64_t flags; const char *fl; } g[2] = {
		{ "4K", "4k", PM_GUEST_MEMFD_FLAG_NO_HUGE, "NO_HUGE" },
		{ "2M", "2m", PM_GUEST_MEMFD_FLAG_NO_1G, "NO_1G" },
	};
	static const char *const LV[3] = { "4K", "2M", "1G" };
	uint64_t size = r->size, warm = PM_MIN_U64(size, FAULT_WARM_SIZE);
	double pages = (double)(size >> 12);
	uint8_t *zbuf = buffer_new(size);
	struct samples sz = { .n = 0 };
	struct figure *fp[2], *fw[2], *fz;
	char key[48], label[96];

	snprintf(r->title, sizeof(r->title), "first-touch private faults, one write per 4K page");
	if (!zbuf) {
		result_fail(r, "mmap of the zeroing buffer: %s", strerror(errno));
		return;
	}
	/* The zeroing reference writes a pre-faulted buffer; likewise let the
	 * pool keep the frames it frees populated between runs (watermark
	 * above the size), so the best run measures privmem's fault path,
	 * not the host kernel populating memory. */
	if (bench_pool_watermark(2 * size))
		note(r, "could not raise the pool watermark (frames in use); runs may populate memory");
	fp[0] = figure_add(r, "privmem_4k", "privmem, 4K pages (NO_HUGE)", "page", pages, (double)size);
	fp[1] = figure_add(r, "privmem_2m", "privmem, 2M pages (NO_1G)", "page", pages, (double)size);
	fz = figure_add(r, "zeroing", "zeroing (memset)", "page", pages, (double)size);
	for (int i = 0; i < 2 && !r->failed; i++) {
		struct samples s = { .n = 0 };
		struct fault_best best = { 0 };

		if (fault_series(r, r->reps, size, g[i].flags, &s, &best))
			break;
		figure_set(fp[i], &s);
		fp[i]->event = "fault";
		fp[i]->events = (double)best.vs.faults;
		snprintf(key, sizeof(key), "faults_%s", g[i].key);
		snprintf(label, sizeof(label), "%s: stage-2 faults in the touch loop", g[i].name);
		info_add(r, key, label, (double)best.vs.faults, "");
		for (int l = 0; l < 3; l++) {
			snprintf(key, sizeof(key), "mapped_%s_%s", g[i].key, LV[l]);
			snprintf(label, sizeof(label), "%s: %s mappings installed by the loop", g[i].name, LV[l]);
			info_add(r, key, label, (double)best.vs.mapped[l], "");
		}
		snprintf(key, sizeof(key), "host_populated_mib_%s", g[i].key);
		snprintf(label, sizeof(label), "%s: pool memory faulted in from the OS", g[i].name);
		info_add(r, key, label, (double)best.populated / (double)MIB, "MiB");
	}
	/* Information: the same loop on a RAM the pool holds populated already. */
	for (int i = 0; i < 2 && !r->failed; i++) {
		struct samples s = { .n = 0 }, warmup = { .n = 0 };
		struct fault_best best = { 0 };

		snprintf(key, sizeof(key), "privmem_%s_populated_pool", g[i].key);
		snprintf(label, sizeof(label), "info: privmem %s, %" PRIu64 " MiB, pool warm", g[i].name,
			 warm / MIB);
		fw[i] = figure_add(r, key, label, "page", (double)(warm >> 12), (double)warm);
		if (fault_series(r, 1, warm, g[i].flags, &warmup, &best) ||
		    fault_series(r, r->reps, warm, g[i].flags, &s, &best))
			break;
		figure_set(fw[i], &s);
		fw[i]->event = "fault";
		fw[i]->events = (double)best.vs.faults;
		snprintf(key, sizeof(key), "host_populated_mib_%s_warm", g[i].key);
		snprintf(label, sizeof(label), "info %s, pool warm: pool memory faulted in from the OS",
			 g[i].name);
		info_add(r, key, label, (double)best.populated / (double)MIB, "MiB");
	}
	for (unsigned int rep = 0; rep < r->reps && !r->failed; rep++) {
		uint64_t t0 = now_ns();

		memset(zbuf, 0, size);
		clobber(zbuf);
		samples_add(&sz, secs_since(t0));
	}
	buffer_free(zbuf, size);
	bench_pool_watermark(0);
	if (r->failed)
		return;
	figure_set(fz, &sz);
	target_add(r, "privmem_4k_within_2x_of_zeroing", "4K: privmem within 2x of zeroing",
		   ratio_add(r, "privmem_4k_over_zeroing", "privmem 4K / zeroing (time per 4K page)",
			     fp[0], fz, false), 2.0, false, NULL);
	target_add(r, "privmem_2m_within_2x_of_zeroing", "2M: privmem within 2x of zeroing",
		   ratio_add(r, "privmem_2m_over_zeroing", "privmem 2M / zeroing (time per 4K page)",
			     fp[1], fz, false), 2.0, false, NULL);
	ratio_add(r, "privmem_4k_warm_over_zeroing", "info: privmem 4K, pool warm / zeroing",
		  fw[0], fz, false);
	ratio_add(r, "privmem_2m_warm_over_zeroing", "info: privmem 2M, pool warm / zeroing",
		  fw[1], fz, false);
	note(r, "each run: a fresh VM (one vCPU) converts its RAM to private (untimed), then writes one "
		"word per 4K page; the time is the KVM_RUN between two SYNC exits, taken by the VMM; "
		"counts are from the best run");
	note(r, "zeroing: one memset of a pre-faulted anonymous buffer of the same size");
	note(r, "privmem's pool zeroes frames when they are freed; for this benchmark its watermark "
		"is raised to twice the size, so frames stay populated between runs (as the zeroing "
		"buffer is pre-faulted): the first run of each series populates them from the OS, the "
		"best run shows the fault path itself");
	note(r, "info figures (\"pool warm\"): the loop on %" PRIu64 " MiB after an untimed run of the same "
		"size, so the pool hands out populated frames; no target", warm / MIB);
}

/* ==================================================================== */
/* access                                                               */
/* ==================================================================== */

#define SMALL_PAGES 128                  /* 512 KiB: half the vCPU TLB's 256 entries */
#define SMALL_IDX   (64 * 1024)
#define SMALL_LOOPS 128                  /* 8M reads */
#define LARGE_IDX   (1024 * 1024)
#define LARGE_LOOPS 1                    /* 1M reads */

static void guest_access_main(struct pm_guest *g, void *arg)
{
	struct gjob *j = arg;

	PM_GUEST_ASSERT(g, guest_map_gpa_range(g, 0, j->size >> 12, true) == 0);
	pm_guest_write(g, 0, j->src, j->size);       /* fill, and fault everything in */
	for (unsigned int rep = 0; rep < j->reps; rep++) {
		pm_guest_sync(g, BENCH_MARK(PH_BULK, 0));
		pm_guest_read(g, 0, j->dst, j->size);
		pm_guest_sync(g, BENCH_MARK(PH_BULK, 1));
	}
	for (unsigned int rep = 0; rep < j->reps; rep++) {
		pm_guest_sync(g, BENCH_MARK(PH_RAND_SMALL, 0));
		j->sum_small = guest_random_reads(g, 0, j->idx_small, j->n_small, j->loops_small);
		pm_guest_sync(g, BENCH_MARK(PH_RAND_SMALL, 1));
	}
	for (unsigned int rep = 0; rep < j->reps; rep++) {
		pm_guest_sync(g, BENCH_MARK(PH_RAND_LARGE, 0));
		j->sum_large = guest_random_reads(g, 0, j->idx_large, j->n_large, j->loops_large);
		pm_guest_sync(g, BENCH_MARK(PH_RAND_LARGE, 1));
	}
}

void bench_access(const struct bench_opts *o, struct result *r)
{
	uint64_t size = r->size, seed = 0x9E3779B97F4A7C15ULL;
	uint8_t *src = buffer_new(size), *dst = buffer_new(size);
	uint32_t *idx_small = calloc(SMALL_IDX, sizeof(uint32_t));
	uint32_t *idx_large = calloc(LARGE_IDX, sizeof(uint32_t));
	struct gjob *j = calloc(1, sizeof(*j));
	struct samples s_copy = { .n = 0 }, s_small = { .n = 0 }, s_large = { .n = 0 };
	uint64_t nat_small = 0, nat_large = 0;
	double small_reads = (double)SMALL_IDX * SMALL_LOOPS, large_reads = (double)LARGE_IDX * LARGE_LOOPS;
	struct figure *pc, *nc, *ps, *ns, *pl, *nl;

	snprintf(r->title, sizeof(r->title), "guest accesses to private memory vs plain memory");
	if (!src || !dst || !idx_small || !idx_large || !j) {
		result_fail(r, "out of memory");
		goto out;
	}
	if (size < SMALL_PAGES * PAGE_4K || size > (1ULL << 32)) {
		result_fail(r, "access needs 512K <= SIZE <= 4G");
		goto out;
	}
	fill_words(src, size);
	random_offsets(idx_small, SMALL_IDX, SMALL_PAGES * PAGE_4K, &seed);
	random_offsets(idx_large, LARGE_IDX, size, &seed);

	pc = figure_add(r, "privmem_copy", "privmem pm_guest_read (bulk)", "MiB", (double)size / MIB,
			(double)size);
	nc = figure_add(r, "native_copy", "native memcpy", "MiB", (double)size / MIB, (double)size);
	pc->gb = nc->gb = true;
	ps = figure_add(r, "privmem_random_512k", "privmem read64, 512 KiB random", "read", small_reads, 0);
	ns = figure_add(r, "native_random_512k", "native load, 512 KiB random", "read", small_reads, 0);
	pl = figure_add(r, "privmem_random_large", "privmem read64, SIZE random", "read", large_reads, 0);
	nl = figure_add(r, "native_random_large", "native load, SIZE random", "read", large_reads, 0);
	snprintf(pl->label, sizeof(pl->label), "privmem read64, %" PRIu64 " MiB random", size / MIB);
	snprintf(nl->label, sizeof(nl->label), "native load, %" PRIu64 " MiB random", size / MIB);

	/* The references, on plain memory. */
	for (unsigned int rep = 0; rep < r->reps; rep++) {
		uint64_t t0 = now_ns();

		memcpy(dst, src, size);
		clobber(dst);
		samples_add(&s_copy, secs_since(t0));
	}
	for (unsigned int rep = 0; rep < r->reps; rep++) {
		uint64_t t0 = now_ns();

		nat_small = native_random_reads(src, idx_small, SMALL_IDX, SMALL_LOOPS);
		samples_add(&s_small, secs_since(t0));
	}
	for (unsigned int rep = 0; rep < r->reps; rep++) {
		uint64_t t0 = now_ns();

		nat_large = native_random_reads(src, idx_large, LARGE_IDX, LARGE_LOOPS);
		samples_add(&s_large, secs_since(t0));
	}
	sink = nat_small + nat_large;
	figure_set(nc, &s_copy);
	figure_set(ns, &s_small);
	figure_set(nl, &s_large);

	/* privmem. */
	memset(dst, 0, size);
	*j = (struct gjob){ .size = size, .reps = r->reps, .src = src, .dst = dst,
			    .idx_small = idx_small, .idx_large = idx_large, .n_small = SMALL_IDX,
			    .n_large = LARGE_IDX, .loops_small = SMALL_LOOPS, .loops_large = LARGE_LOOPS };
	if (run_guest(r, 0, guest_access_main, j))
		goto out;
	if (memcmp(dst, src, size)) {
		result_fail(r, "the guest's bulk read returned wrong data");
		goto out;
	}
	if (j->sum_small != nat_small || j->sum_large != nat_large) {
		result_fail(r, "guest and native random reads disagree");
		goto out;
	}
	figure_set(pc, &j->mk.t[PH_BULK]);
	figure_set(ps, &j->mk.t[PH_RAND_SMALL]);
	figure_set(pl, &j->mk.t[PH_RAND_LARGE]);

	target_add(r, "bulk_read_80pct_of_native", "bulk: privmem >= 80% of native (GB/s ratio)",
		   ratio_add(r, "bulk_privmem_over_native", "bulk copy: privmem / native (GB/s)",
			     pc, nc, true), 0.8, true, NULL);
	target_add(r, "random_512k_within_4x", "random 512 KiB: privmem within 4x of native",
		   ratio_add(r, "random_512k_privmem_over_native", "random 512 KiB: privmem / native (ns/read)",
			     ps, ns, false), 4.0, false, NULL);
	ratio_add(r, "random_large_privmem_over_native", "random SIZE: privmem / native (ns/read, no target)",
		  pl, nl, false);
	note(r, "bulk: one pm_guest_read of the whole private buffer (pre-faulted) into a pre-faulted host "
		"buffer vs one memcpy between two plain pre-faulted buffers; default guest_memfd flags");
	note(r, "random: 8-byte aligned offsets from a precomputed index array (512 KiB = 128 pages, "
		"TLB-resident in the vCPU's 256-entry TLB); sums checked equal");
	note(r, "host pages: plain buffers are anonymous memory (THP as the host allows), privmem's "
		"pool is a memfd (THP only if shmem_enabled allows)");
out:
	buffer_free(src, size);
	buffer_free(dst, size);
	free(idx_small);
	free(idx_large);
	free(j);
}

/* ==================================================================== */
/* scale                                                                */
/* ==================================================================== */

#define SCALE_PASSES 1

struct scale_thread {
	struct vmm *m;
	uint64_t base, size;
	pthread_barrier_t *start;
	int err;
	pthread_t tid;
};

static void *scale_thread_main(void *arg)
{
	struct scale_thread *t = arg;

	pthread_barrier_wait(t->start);
	for (unsigned int pass = 0; pass < SCALE_PASSES && !t->err; pass++)
		for (uint64_t off = 0; off < t->size && !t->err; off += PAGE_4K)
			t->err = privmem_pair(t->m, t->base + off, PAGE_4K);
	return NULL;
}

/* One measurement with n threads: seconds, or a negative value on error. */
static double scale_once(struct vmm *m, uint64_t region, int n, int *err)
{
	struct scale_thread t[2];
	pthread_barrier_t start;
	uint64_t t0;

	pthread_barrier_init(&start, NULL, (unsigned int)n + 1);
	for (int i = 0; i < n; i++) {
		t[i] = (struct scale_thread){ .m = m, .base = (uint64_t)i * region, .size = region,
					      .start = &start };
		pthread_create(&t[i].tid, NULL, scale_thread_main, &t[i]);
	}
	pthread_barrier_wait(&start);
	t0 = now_ns();
	for (int i = 0; i < n; i++)
		pthread_join(t[i].tid, NULL);
	double secs = secs_since(t0);

	pthread_barrier_destroy(&start);
	*err = 0;
	for (int i = 0; i < n; i++)
		if (t[i].err)
			*err = t[i].err;
	return secs;
}

/* The machine's own scaling: each thread zeroes 4K pages of its own
 * cache-resident buffer, as many as it makes conversions, sharing
 * nothing. What 2 threads give over 1 here is the ceiling any shared-memory
 * code reaches on this machine (2 vCPUs of a VM may share a core, a host
 * may be busy). */
#define SCALE_REF_BUF (64 * PAGE_4K)
/* About as long as the conversions: zeroing 4K takes ~1/5 of one. */
#define SCALE_REF_PAGES(conv) ((uint64_t)(conv) * 5)

struct scale_ref_thread {
	uint64_t pages;
	pthread_barrier_t *start;
	pthread_t tid;
};

static void *scale_ref_main(void *arg)
{
	struct scale_ref_thread *t = arg;
	uint8_t *buf = aligned_alloc(PAGE_4K, SCALE_REF_BUF);

	pthread_barrier_wait(t->start);
	for (uint64_t i = 0; buf && i < t->pages; i++) {
		memset(buf + (i % (SCALE_REF_BUF / PAGE_4K)) * PAGE_4K, 0, PAGE_4K);
		clobber(buf);
	}
	free(buf);
	return NULL;
}

static double scale_ref_once(uint64_t pages, int n)
{
	struct scale_ref_thread t[2];
	pthread_barrier_t start;
	uint64_t t0;

	pthread_barrier_init(&start, NULL, (unsigned int)n + 1);
	for (int i = 0; i < n; i++) {
		t[i] = (struct scale_ref_thread){ .pages = pages, .start = &start };
		pthread_create(&t[i].tid, NULL, scale_ref_main, &t[i]);
	}
	pthread_barrier_wait(&start);
	t0 = now_ns();
	for (int i = 0; i < n; i++)
		pthread_join(t[i].tid, NULL);
	pthread_barrier_destroy(&start);
	return secs_since(t0);
}

void bench_scale(const struct bench_opts *o, struct result *r)
{
	uint64_t region = r->size;
	double conv = 2.0 * (double)(region / PAGE_4K) * SCALE_PASSES;   /* per thread */
	struct samples s1 = { .n = 0 }, s2 = { .n = 0 }, z1 = { .n = 0 }, z2 = { .n = 0 };
	struct figure *f1, *f2, *g1, *g2;
	struct vmm m;
	int err = 0;

	snprintf(r->title, sizeof(r->title), "4K conversions of disjoint ranges, 1 and 2 threads");
	f1 = figure_add(r, "threads_1", "privmem, 1 thread", "conversion", conv, 0);
	f2 = figure_add(r, "threads_2", "privmem, 2 threads", "conversion", 2 * conv, 0);
	g1 = figure_add(r, "independent_1", "independent work (zero 4K), 1 thread", "page",
			(double)SCALE_REF_PAGES(conv), 0);
	g2 = figure_add(r, "independent_2", "independent work (zero 4K), 2 threads", "page",
			2.0 * (double)SCALE_REF_PAGES(conv), 0);
	if (vmm_create(&m, KVM_X86_SW_PROTECTED_VM, 2 * region, 1, PM_GUEST_MEMFD_FLAG_NO_HUGE)) {
		vmm_destroy(&m);
		result_fail(r, "cannot create the VM (see above)");
		return;
	}
	/* Untimed warm-up over both regions: the allocators' first growth (the
	 * pool's population, malloc's arenas) would otherwise land on 1 thread. */
	scale_once(&m, region, 2, &err);
	for (unsigned int rep = 0; rep < r->reps && !err; rep++) {
		double secs = scale_once(&m, region, 1, &err);

		if (!err) {
			samples_add(&s1, secs);
			secs = scale_once(&m, region, 2, &err);
		}
		if (!err)
			samples_add(&s2, secs);
		samples_add(&z1, scale_ref_once(SCALE_REF_PAGES(conv), 1));
		samples_add(&z2, scale_ref_once(SCALE_REF_PAGES(conv), 2));
	}
	vmm_destroy(&m);
	if (err) {
		result_fail(r, "conversion: %s", strerror(-err));
		return;
	}
	figure_set(f1, &s1);
	figure_set(f2, &s2);
	figure_set(g1, &z1);
	figure_set(g2, &z2);
	/* Speedup in conversions/s: (2 conv / t2) / (conv / t1). */
	ratio_add(r, "speedup_2_threads", "speedup, 2 threads over 1 (conversions/s)", f2, f1, true);
	ratio_add(r, "machine_speedup_2_threads",
		  "machine: independent work, 2 threads over 1 (the ceiling here)", g2, g1, true);
	/* The machine's speed drifts between measurements (the independent
	 * work's own time moves by tens of percent here), which the ratio of
	 * two bests does not cancel: a fast moment during one 1-thread run
	 * sets its best. Each 2-thread run follows its 1-thread run at once,
	 * so the median of the per-pair speedups is the drift-free figure. */
	{
		struct samples pairs = { .n = 0 }, mpairs = { .n = 0 };
		double paired, mpaired;

		for (unsigned int i = 0; i < s1.n && i < s2.n; i++)
			samples_add(&pairs, 2.0 * s1.v[i] / s2.v[i]);
		for (unsigned int i = 0; i < z1.n && i < z2.n; i++)
			samples_add(&mpairs, 2.0 * z1.v[i] / z2.v[i]);
		paired = samples_median(&pairs);
		mpaired = samples_median(&mpairs);
		info_add(r, "speedup_2_threads_paired",
			 "speedup, 2 threads over 1, median of paired runs", paired, "x");
		info_add(r, "machine_speedup_2_threads_paired",
			 "machine: independent work, median of paired runs", mpaired, "x");
		target_add(r, "speedup_2_threads", "2 threads: speedup >= 1.7x (median of paired runs)",
			   paired, 1.7, true, NULL);
	}
	info_add(r, "online_cpus", "online CPUs", (double)sysconf(_SC_NPROCESSORS_ONLN), "");
	note(r, "VMM-side ioctls, no vCPUs: each thread converts its own %" PRIu64 " MiB region "
		"(4K granules, guest_memfd NO_HUGE) of one VM, shared -> private -> shared, once over "
		"the region per measurement, after one untimed pass; both thread counts do the same work "
		"per thread; ns/conversion is wall time over all threads' conversions", region / MIB);
	note(r, "a conversion = one granule changing attribute with its side of the work (to private: "
		"attributes + fallocate; to shared: attributes + punch hole); "
		"a round trip is 2 conversions");
	note(r, "independent work: each thread zeroes 4K pages of its own cache-resident 256 KiB buffer "
		"(5 per conversion), sharing nothing: its speedup is what this machine gives any two "
		"threads, the ceiling for the conversions' speedup");
}


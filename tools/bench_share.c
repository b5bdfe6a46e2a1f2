/* SPDX-License-Identifier: MIT */
/*
 * privmem bench share: in-place conversion (pKVM) beside destructive
 * conversion (software-protected VMs) of the same pages, and beside zeroing.
 *
 * The seed thread argued about exactly this trade-off: pKVM shares a page
 * in place (its owner changes, its contents stay), the guest_memfd way of
 * software-protected VMs discards the page on every conversion (the next
 * private access faults in a new, zeroed one). Both are measured the same
 * way: one vCPU takes its pages private -> shared -> private and then reads
 * one word of each, so that each path pays what it needs before the guest
 * can use the page again; single pages (one call per page and direction)
 * and 2M batches (one per 512 pages and direction on sw; on pKVM, whose
 * hypercalls take one granule each, as upstream's, 512 hypercalls in a
 * row).
 *  - in place (pKVM): MEM_SHARE, MEM_UNSHARE, answered by the hyp without
 *    an exit to the VMM; the read hits the vCPU's TLB;
 *  - destructive (sw): KVM_HC_MAP_GPA_RANGE to shared (the VMM sets the
 *    attribute and punches the private page out), back to private (the
 *    attribute; the VMM drops its shared copy), and the read faults in a
 *    new private page, zeroed;
 *  - zeroing: memset of the same 4K pages, the least a destructive round
 *    trip pays.
 * The guest's time is the KVM_RUN between two SYNC marks, taken by the VMM.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench.h"

enum share_path { SP_INPLACE, SP_DESTRUCTIVE, SP_NR };

struct share_job {
	enum share_path path;
	uint64_t size;
	uint64_t batch;             /* pages per hypercall */
	bool no_view;               /* in place: the VMM maps no guest_memfd view */
	unsigned int reps;
	struct bench_marks mk;      /* one phase: the round trips */
};

/* One round trip of n pages at gpa, and the read that uses them again. */
static void round_trip(struct pm_guest *g, const struct share_job *j, uint64_t gpa, uint64_t n)
{
	if (j->path == SP_INPLACE) {
		PM_GUEST_ASSERT(g, pm_guest_mem_share_range(g, gpa, n) == n);
		PM_GUEST_ASSERT(g, pm_guest_mem_unshare_range(g, gpa, n) == n);
	} else {
		PM_GUEST_ASSERT(g, guest_map_gpa_range(g, gpa, n, false) == 0);
		PM_GUEST_ASSERT(g, guest_map_gpa_range(g, gpa, n, true) == 0);
	}
	for (uint64_t p = 0; p < n; p++)
		sink += pm_guest_read64(g, gpa + (p << 12));
}

static void guest_share_main(struct pm_guest *g, void *arg)
{
	const struct share_job *j = arg;
	uint64_t npages = j->size >> 12;

	/* Untimed: every page private and in use (donated / allocated). */
	if (j->path == SP_DESTRUCTIVE)
		PM_GUEST_ASSERT(g, guest_map_gpa_range(g, 0, npages, true) == 0);
	for (uint64_t p = 0; p < npages; p++)
		pm_guest_write64(g, p << 12, p + 1);
	for (unsigned int rep = 0; rep < j->reps; rep++) {
		pm_guest_sync(g, BENCH_MARK(0, 0));
		for (uint64_t p = 0; p < npages; p += j->batch)
			round_trip(g, j, p << 12, j->batch);
		pm_guest_sync(g, BENCH_MARK(0, 1));
	}
	/* Sanity, untimed: in place keeps every page's word, destructive
	 * conversion gives zeroed pages. */
	for (uint64_t p = 0; p < npages; p++)
		PM_GUEST_ASSERT(g, pm_guest_read64(g, p << 12) == (j->path == SP_INPLACE ? p + 1 : 0));
}

/* Runs one VM of the path's type through j->reps measurements. */
static int share_series(struct result *r, struct share_job *j)
{
	unsigned long type = j->path == SP_INPLACE ? PM_VM_TYPE_PKVM : KVM_X86_SW_PROTECTED_VM;
	struct vmm m;
	int ret;

	if (bench_vm_create(r, &m, type, j->size, PM_GUEST_MEMFD_FLAG_NO_HUGE))
		return -1;
	if (j->no_view && m.shared) {
		pm_kvm_munmap(m.shared, m.mem_size);
		m.shared = NULL;
	}
	ret = bench_vm_run(r, &m, guest_share_main, j, &j->mk);
	vmm_destroy(&m);
	return ret;
}

void bench_share(const struct bench_opts *o, struct result *r)
{
	static const struct {
		const char *key, *label;
		enum share_path path;
		uint64_t batch;
		bool no_view;
	} runs[] = {
		{ "inplace_4k", "in place (pKVM), one page per batch", SP_INPLACE, 1, false },
		{ "inplace_2m", "in place (pKVM), 512 pages per batch", SP_INPLACE, 512, false },
		{ "destructive_4k", "destructive (sw), one page per call", SP_DESTRUCTIVE, 1, false },
		{ "destructive_2m", "destructive (sw), 512 pages per call", SP_DESTRUCTIVE, 512, false },
		{ "inplace_4k_no_view", "info: in place, single, VMM maps nothing", SP_INPLACE, 1, true },
		{ "inplace_2m_no_view", "info: in place, 2M, VMM maps nothing", SP_INPLACE, 512, true },
	};
	double pages = (double)(r->size >> 12);
	struct figure *f[6], *fz;
	struct samples sz = { .n = 0 };
	uint8_t *zbuf = buffer_new(r->size);

	snprintf(r->title, sizeof(r->title), "conversion round trips private -> shared -> private, "
		 "then one read per 4K page");
	if (!zbuf) {
		result_fail(r, "mmap of the zeroing buffer: %s", strerror(errno));
		return;
	}
	for (int i = 0; i < 6 && !r->failed; i++) {
		struct share_job j = { .path = runs[i].path, .size = r->size, .batch = runs[i].batch,
				       .reps = r->reps, .no_view = runs[i].no_view };

		f[i] = figure_add(r, runs[i].key, runs[i].label, "page", pages, (double)r->size);
		if (!share_series(r, &j))
			figure_set(f[i], &j.mk.t[0]);
	}
	fz = figure_add(r, "zeroing", "zeroing (memset)", "page", pages, (double)r->size);
	for (unsigned int rep = 0; rep < r->reps && !r->failed; rep++) {
		uint64_t t0 = now_ns();

		memset(zbuf, 0, r->size);
		clobber(zbuf);
		samples_add(&sz, secs_since(t0));
	}
	buffer_free(zbuf, r->size);
	if (r->failed)
		return;
	figure_set(fz, &sz);
	ratio_add(r, "destructive_4k_over_inplace_4k", "destructive / in place, single pages", f[2], f[0],
		  false);
	ratio_add(r, "destructive_2m_over_inplace_2m", "destructive / in place, 2M batches", f[3], f[1],
		  false);
	ratio_add(r, "inplace_4k_over_zeroing", "in place, single pages / zeroing", f[0], fz, false);
	ratio_add(r, "inplace_2m_over_zeroing", "in place, 2M batches / zeroing", f[1], fz, false);
	ratio_add(r, "destructive_4k_over_zeroing", "destructive, single pages / zeroing", f[2], fz, false);
	ratio_add(r, "destructive_2m_over_zeroing", "destructive, 2M batches / zeroing", f[3], fz, false);
	ratio_add(r, "inplace_4k_no_view_over_zeroing", "info: in place, single, no view / zeroing", f[4],
		  fz, false);
	ratio_add(r, "inplace_2m_no_view_over_zeroing", "info: in place, 2M, no view / zeroing", f[5], fz,
		  false);
	note(r, "one vCPU, %" PRIu64 " MiB of 4K guest_memfd pages (NO_HUGE), private and touched "
		"before timing; a round trip is private -> shared -> private of each page, then one "
		"8-byte read of it; the time is the KVM_RUN between two SYNC exits, taken by the VMM",
	     r->size / MIB);
	note(r, "in place: MEM_SHARE + MEM_UNSHARE hypercalls, one per page (the hyp changes owners, "
		"no exit), contents kept; destructive: KVM_HC_MAP_GPA_RANGE both ways, the "
		"VMM sets the attribute and punches the private page (to shared) or drops its shared "
		"copy (to private), and the read faults in a new zeroed page");
	note(r, "zeroing: one memset of a pre-faulted anonymous buffer of the same size, the least a "
		"destructive round trip pays");
}

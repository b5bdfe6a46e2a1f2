/* SPDX-License-Identifier: MIT */
/*
 * privmem bench: the pieces several benchmarks share (declared in bench.h).
 *
 *  - host side: pre-faulted buffers, zeroing them granule by granule, a
 *    PRNG, the pool's watermark, attribute changes and privmem's
 *    destructive conversion pair of a granule;
 *  - VMs: a one-vCPU VM, a TD built and finalized, running guest code to
 *    its end with the SYNC marks below;
 *  - guest code: KVM_HC_MAP_GPA_RANGE of a page range, random 8-byte reads
 *    (and the same reads on plain memory, their native reference).
 *
 * Marks: guest code brackets a timed phase with two pm_guest_sync calls
 * (BENCH_MARK(phase, 0) and (phase, 1)); the VMM's SYNC handler, on the
 * vCPU thread between two KVM_RUNs, takes the time just before the KVM_RUN
 * after the first and just after the one that returns the second, so a
 * phase is exactly the KVM_RUNs between them. The handler also keeps VM and
 * pool statistics around each phase. A struct bench_marks belongs to the
 * one vCPU thread that runs the guest; the VMM reads it after the run.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <linux/falloc.h>
#include "bench.h"
#include "cli.h"

/* ==================================================================== */
/* Host memory                                                          */
/* ==================================================================== */

/* Sets the pool's watermark (0: back to the default); 0 or -errno. */
int bench_pool_watermark(uint64_t bytes)
{
	static uint64_t saved;
	struct pm_pool_stats st;
	struct pm_pool_config cfg = { 0 };
	int kvm = pm_kvm_open(), r;

	pm_kvm_ioctl(kvm, PM_KVM_GET_POOL_STATS, &st);
	if (bytes && !saved)
		saved = st.watermark;
	cfg.watermark = bytes ? PM_MIN_U64(bytes, st.size) : saved;
	r = cfg.watermark ? pm_kvm_ioctl(kvm, PM_KVM_SET_POOL_CONFIG, &cfg) : 0;
	pm_kvm_close(kvm);
	return r ? -errno : 0;
}

/* A pre-faulted anonymous buffer (NULL on failure). */
uint8_t *buffer_new(uint64_t size)
{
	uint8_t *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	memset(p, 0x5a, size);
	return p;
}

void buffer_free(uint8_t *p, uint64_t size)
{
	if (p)
		munmap(p, size);
}

/* memset of each granule of buf in turn: what zeroing the pages a
 * conversion frees costs, one call per page as the pool scrubs them. */
void zero_pass(uint8_t *buf, uint64_t size, uint64_t gran)
{
	for (uint64_t off = 0; off < size; off += gran)
		memset(buf + off, 0, gran);
	clobber(buf);
}

/* The host kernel's part of a software-protected conversion, as the VMM
 * and guest of bench e2e make it: per batch of `batch` pages, the VMM's
 * discard of its shared copy (madvise(MADV_DONTNEED), as QEMU does on a
 * conversion to private) and the first touch of each page after it, which
 * the kernel answers with a fresh zeroed page (the guest's next shared
 * access). */
void discard_pass(uint8_t *buf, uint64_t size, uint64_t batch)
{
	for (uint64_t off = 0; off < size; off += batch * PAGE_4K) {
		madvise(buf + off, batch * PAGE_4K, MADV_DONTNEED);
		for (uint64_t p = 0; p < batch; p++)
			*(volatile uint64_t *)(buf + off + p * PAGE_4K) = off + p;
	}
	clobber(buf);
}

volatile uint64_t sink;

uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

int set_attrs(struct vmm *m, uint64_t gpa, uint64_t len, bool priv)
{
	struct kvm_memory_attributes a = {
		.address = gpa, .size = len, .attributes = priv ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0,
	};

	return pm_kvm_ioctl(m->vm, KVM_SET_MEMORY_ATTRIBUTES, &a) ? -errno : 0;
}

/* One granule's round trip through privmem: attributes private and the
 * private page allocated (fallocate, as a VMM that pre-allocates does), then
 * attributes shared and the private page punched out. The VMM's discard of
 * its own shared copy (madvise) is the same syscall with or without
 * privmem, and is not in the kernel reference either, so it is not timed.
 * 0 or -errno. */
int privmem_pair(struct vmm *m, uint64_t gpa, uint64_t len)
{
	int r = set_attrs(m, gpa, len, true);

	if (!r && pm_kvm_fallocate(m->gmem, FALLOC_FL_KEEP_SIZE, (off_t)gpa, (off_t)len))
		r = -errno;
	if (!r)
		r = set_attrs(m, gpa, len, false);
	if (!r && pm_kvm_fallocate(m->gmem, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				   (off_t)gpa, (off_t)len))
		r = -errno;
	return r;
}

int privmem_pass(struct vmm *m, uint64_t size, uint64_t gran)
{
	for (uint64_t off = 0; off < size; off += gran) {
		int r = privmem_pair(m, off, gran);

		if (r)
			return r;
	}
	return 0;
}

/* ==================================================================== */
/* VMs and guest code                                                   */
/* ==================================================================== */

int bench_vm_create(struct result *r, struct vmm *m, unsigned long type, uint64_t size,
		    uint64_t gmem_flags)
{
	if (!vmm_create(m, type, size, 1, gmem_flags))
		return 0;
	vmm_destroy(m);
	result_fail(r, "cannot create the VM (see above)");
	return -1;
}

int bench_td_create(struct result *r, struct vmm *m, uint64_t size, uint64_t gmem_flags,
		    const struct pm_tdx_config *cfg)
{
	int slot;

	if (bench_vm_create(r, m, KVM_X86_TDX_VM, size, gmem_flags))
		return -1;
	slot = vmm_watch_enter(m);
	if (vmm_tdx_init(m, cfg) || vmm_tdx_op(m, m->vm, KVM_TDX_FINALIZE_VM, 0, NULL)) {
		result_fail(r, "building the TD: %s", vmm_gave_up(m) ? "no progress, gave up" : strerror(errno));
		vmm_watch_leave(m, slot);
		vmm_destroy(m);
		return -1;
	}
	vmm_watch_leave(m, slot);
	return 0;
}

/* The SYNC handler of marked phases (m->ctx: the struct bench_marks). */
void bench_mark_sync(struct vmm *m, int vcpu, const struct pm_ucall *uc)
{
	struct bench_marks *mk = m->ctx;
	unsigned int phase = (unsigned int)(uc->args[0] >> 1) & 0xffff;

	if (!(uc->args[0] & BENCH_MARK_FLAG) || phase >= BENCH_PHASES)
		return;
	if (!(uc->args[0] & 1)) {
		vmm_vm_stats(m, &mk->vs_start[phase]);
		vmm_pool_stats(m, &mk->ps_start[phase]);
		mk->cpu_start = thread_cpu_ns();
		mk->t_start = now_ns();          /* last thing before KVM_RUN */
		return;
	}
	samples_add(&mk->t[phase], secs_since(mk->t_start));
	samples_add(&mk->cpu[phase], (double)(thread_cpu_ns() - mk->cpu_start) / 1e9);
	vmm_vm_stats(m, &mk->vs_end[phase]);
	vmm_pool_stats(m, &mk->ps_end[phase]);
	mk->hypercalls[phase] += mk->vs_end[phase].exits[PM_STAT_EXITS_HYPERCALL] -
				 mk->vs_start[phase].exits[PM_STAT_EXITS_HYPERCALL];
	mk->released[phase] += mk->ps_end[phase].released - mk->ps_start[phase].released;
	mk->populated[phase] += (int64_t)(mk->ps_end[phase].populated - mk->ps_start[phase].populated);
}

int bench_vm_run(struct result *r, struct vmm *m, void (*fn)(struct pm_guest *g, void *arg), void *arg,
		 struct bench_marks *marks)
{
	void *args[1] = { arg };
	int ret;

	m->ctx = marks;
	m->sync = marks ? bench_mark_sync : NULL;
	ret = vmm_set_guest(m, fn, args);
	if (!ret)
		ret = vmm_run_all(m, NULL, NULL);
	if (ret)
		result_fail(r, "guest failed: %s", m->abort_msg[0] ? m->abort_msg : "PM_KVM_SET_GUEST");
	return ret ? -1 : 0;
}

long guest_map_gpa_range(struct pm_guest *g, uint64_t gpa, uint64_t npages, bool to_private)
{
	uint64_t attrs = (to_private ? KVM_MAP_GPA_RANGE_ENCRYPTED : KVM_MAP_GPA_RANGE_DECRYPTED) |
			 (npages >= 512 ? KVM_MAP_GPA_RANGE_PAGE_SZ_2M : KVM_MAP_GPA_RANGE_PAGE_SZ_4K);

	return pm_guest_hypercall(g, KVM_HC_MAP_GPA_RANGE, gpa, npages, attrs, 0);
}

/* ==================================================================== */
/* Random reads                                                         */
/* ==================================================================== */

void fill_words(uint8_t *buf, uint64_t size)
{
	for (uint64_t i = 0; i < size / 8; i++) {
		uint64_t v = i * 0x9E3779B97F4A7C15ULL + 1;

		memcpy(buf + i * 8, &v, 8);
	}
}

void random_offsets(uint32_t *idx, size_t n, uint64_t span, uint64_t *seed)
{
	for (size_t i = 0; i < n; i++)
		idx[i] = (uint32_t)(rng_next(seed) % (span / 8)) * 8;
}

__attribute__((noinline)) uint64_t guest_random_reads(struct pm_guest *g, uint64_t base,
						       const uint32_t *idx, size_t n, unsigned int loops)
{
	uint64_t sum = 0;

	for (unsigned int l = 0; l < loops; l++)
		for (size_t i = 0; i < n; i++)
			sum += pm_guest_read64(g, base + idx[i]);
	return sum;
}

__attribute__((noinline)) uint64_t native_random_reads(const uint8_t *base, const uint32_t *idx,
							size_t n, unsigned int loops)
{
	uint64_t sum = 0;

	for (unsigned int l = 0; l < loops; l++) {
		for (size_t i = 0; i < n; i++) {
			uint64_t v;

			memcpy(&v, base + idx[i], sizeof(v));
			sum += v;
		}
	}
	return sum;
}

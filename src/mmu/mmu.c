/* SPDX-License-Identifier: MIT */
/*
 * The stage-2 MMU: fault path, translation, zaps and TLB shootdown.
 * See mmu.h for the design.
 */
#include <sched.h>
#include <privmem/kvm.h>
#include "gmem/gmem.h"
#include "host/pool.h"
#include "kvm/vm.h"
#include "lib/rcu.h"
#include "lib/trace.h"
#include "memslot/memslot.h"
#include "mmu/mmu.h"
#include "vcpu/vcpu.h"

/* ---- zaps and shootdown ---- */

void pm_mmu_tlb_shootdown(struct pm_vm *vm)
{
	struct pm_mmu *mmu = vm->mmu;
	unsigned int n = atomic_load_explicit(&vm->nr_vcpus, memory_order_acquire);
	uint64_t gen, t0;

	/* No vCPU, no TLB: one created later flushes when it first enters
	 * guest mode (its generation differs from the VM's). */
	if (!n)
		return;
	t0 = pm_trace_begin();
	gen = atomic_fetch_add(&mmu->tlb_gen, 1) + 1;
	atomic_fetch_add_explicit(&mmu->shootdowns, 1, memory_order_relaxed);
	for (unsigned int i = 0; i < n; i++) {
		struct pm_vcpu *v = vm->vcpus[i];

		/* seq_cst pairs with the vCPU's in_guest store / tlb_gen load. */
		while (atomic_load(&v->in_guest) && atomic_load(&v->tlb_ack) < gen)
			sched_yield();
	}
	pm_trace_end(t0, PM_TRACE_SHOOTDOWN, "tlb_shootdown", gen, n, 0, 0);
}

struct zap_arg {
	struct pm_mmu *mmu;
	unsigned int filter;
	bool announced;         /* counted in mmu->zaps_in_flight */
};

/* Called for each leaf before the zap removes or splits it: the first
 * accepted leaf announces this zap in zaps_in_flight, before any entry
 * changes (see mmu_zap). */
static bool zap_filter(uint64_t pte, void *arg)
{
	struct zap_arg *z = arg;
	bool take = (pte & PM_PTE_PRIVATE) ? (z->filter & PM_INVAL_PRIVATE) :
					     (z->filter & PM_INVAL_SHARED);

	if (take && !z->announced) {
		atomic_fetch_add(&z->mmu->zaps_in_flight, 1);
		z->announced = true;
	}
	return take;
}

/*
 * The invalidation consumer: zap, then shoot down, before memory changes.
 *
 * A zap that changed no entry need not shoot down, as KVM flushes remote
 * TLBs only when a zap found something, with one exception: another zap
 * of an overlapping range may have removed the entry and not finished its
 * own shootdown yet, and our caller frees the memory when we return. Every
 * zap that changes entries is counted in zaps_in_flight from before its
 * first change until its shootdown is done, so a zap that found nothing
 * and reads 0 there knows no TLB can still hold a removed entry of its
 * range: the entry it found empty was emptied by a zap whose increment
 * happens before that (the entry's release/acquire), and whose decrement
 * comes only after its shootdown.
 */
void pm_mmu_zap(struct pm_vm *vm, gfn_t start, gfn_t end, unsigned int filter,
		enum pm_inval_cause cause, void *ctx)
{
	struct pm_mmu *mmu = vm->mmu;
	struct pm_s2_zap_result res = { 0 };
	struct zap_arg z = { .mmu = mmu, .filter = filter };
	uint64_t t0;

	start = PM_MIN(start, 1ULL << PM_S2_GFN_BITS);
	end = PM_MIN(end, 1ULL << PM_S2_GFN_BITS);
	if (start >= end)
		return;
	t0 = pm_trace_begin();
	/* Cannot fail: without a frame to split a huge leaf it removes it
	 * whole. On a table with nothing but its root (no vCPU has faulted
	 * anything in, as KVM has no root before a vCPU runs) it does not
	 * even walk; that is exact here: a fault that may map into our range
	 * either saw it published and retries, or was inside the MMU lock
	 * when the invalidation began and was waited for, its tables and leaf
	 * counted. */
	PM_BUG_ON(pm_s2_zap(&mmu->s2, start, end, zap_filter, &z, &res) != 0);
	/* Statistics are shared lines: written only when there is news. */
	if (res.zapped)
		atomic_fetch_add_explicit(&mmu->zapped, res.zapped, memory_order_relaxed);
	if (res.split)
		atomic_fetch_add_explicit(&mmu->splits, res.split, memory_order_relaxed);
	if (z.announced) {
		pm_mmu_tlb_shootdown(vm);
		atomic_fetch_sub(&mmu->zaps_in_flight, 1);
	} else if (atomic_load(&mmu->zaps_in_flight)) {
		pm_mmu_tlb_shootdown(vm);
	}
	pm_trace_end(t0, PM_TRACE_ZAP, "zap", start << PM_PAGE_SHIFT, (end - start) << PM_PAGE_SHIFT,
		     res.zapped, res.split);
}

int pm_mmu_init(struct pm_vm *vm)
{
	struct pm_mmu *mmu = pm_zalloc(sizeof(*mmu));
	struct pm_inval_consumer c = { .zap = vm->model->inval_zap ? vm->model->inval_zap : pm_mmu_zap };
	int r;

	if (!mmu)
		return -ENOMEM;
	r = pm_s2_init(&mmu->s2);
	if (r) {
		free(mmu);
		return r;
	}
	vm->mmu = mmu;
	pm_inval_add_consumer(&vm->inval, &c);
	return 0;
}

void pm_mmu_destroy(struct pm_vm *vm)
{
	if (!vm->mmu)
		return;
	pm_s2_destroy(&vm->mmu->s2);
	free(vm->mmu);
	vm->mmu = NULL;
}

/* ---- translation (TLB fill) ---- */

uint8_t *pm_mmu_translate_kind(struct pm_vm *vm, gfn_t gfn, bool write, const bool *private_access)
{
	return pm_mmu_translate_level(vm, gfn, write, private_access, NULL);
}

uint8_t *pm_mmu_translate_level(struct pm_vm *vm, gfn_t gfn, bool write, const bool *private_access,
				int *level_out)
{
	uint64_t want = PM_PTE_ACCESSED | (write ? PM_PTE_DIRTY : 0);
	uint64_t pte;
	int level;
	gfn_t off;

	struct pm_s2 *s2 = pm_mmu_root(vm->mmu, private_access && *private_access);

	if (gfn >> PM_S2_GFN_BITS || !pm_s2_lookup(s2, gfn, &pte, &level))
		return NULL;
	if (write && !(pte & PM_PTE_WRITE))
		return NULL;
	if (private_access && *private_access != !!(pte & PM_PTE_PRIVATE))
		return NULL;
	if ((pte & want) != want)
		pm_s2_mark(s2, gfn, want);
	if (level_out)
		*level_out = level;
	off = gfn & (pm_s2_level_pages(level) - 1);
	if (pte & PM_PTE_HVA)
		return (uint8_t *)(uintptr_t)((pm_pte_addr(pte) + off) << PM_PAGE_SHIFT);
	if (vm->model->guest_hva)       /* the frame's contents may live elsewhere (pKVM) */
		return vm->model->guest_hva(vm, gfn, pte, pm_pte_addr(pte) + off);
	return pm_pfn_to_hva(pm_pte_addr(pte) + off);
}

uint8_t *pm_mmu_translate(struct pm_vm *vm, gfn_t gfn, bool write)
{
	return pm_mmu_translate_kind(vm, gfn, write, NULL);
}

/* ---- the fault path ---- */

/* Where the fault's page comes from. */
struct fault_source {
	uint64_t addr;           /* pfn, or host virtual page number if hva */
	bool hva;
	unsigned int order;      /* the largest mapping the source allows */
	bool writable;
};

static enum pm_fault_result fault_exit(struct pm_fault *f, int err)
{
	f->err = err;
	return PM_FAULT_EXIT;
}

enum pm_fault_result pm_mmu_gmem_error(struct pm_fault *f, int err)
{
	switch (err) {
	case 0:
		return PM_FAULT_MAPPED;
	case -ENOMEM:
		f->err = ENOMEM;
		return PM_FAULT_ERROR;
	case -EHWPOISON:
		return fault_exit(f, EHWPOISON);
	default:
		return fault_exit(f, EFAULT);
	}
}

/* The largest level <= the fault's limit and the source's that the slot's
 * alignment and the attributes allow for gfn. */
static int fault_max_level(struct pm_vm *vm, const struct pm_slot_ref *slot,
			   const struct pm_fault *f, const struct fault_source *src)
{
	int top = PM_MIN((int)src->order / 9, f->max_level);

	for (int level = top; level > 0; level--) {
		uint64_t n = pm_s2_level_pages(level);
		gfn_t base = PM_ALIGN_DOWN(f->gfn, n);
		/* The backing address of `base` must be aligned like base. */
		uint64_t backing = (src->hva ? src->addr : slot->index) - (f->gfn - base);

		if (base < slot->base_gfn || base + n > slot->base_gfn + slot->npages)
			continue;
		if (!PM_ALIGNED(backing, n))
			continue;
		/* In-place mode: the file's state, over the file's block that
		 * the gfn's block maps (aligned alike, as just checked). */
		if (vm->in_place ? slot->gmem && pm_gmem_attrs_mixed(slot->gmem, slot->index, level)
				 : pm_attr_mixed(&vm->attrs, f->gfn, level))
			continue;
		return level;
	}
	return 0;
}

/* The page from guest_memfd (private accesses, and every access to a
 * gmem-only slot). A shared page whose contents live in the file's host
 * file (an INIT_SHARED file's) is mapped there, where the VMM's views see
 * it: an HVA leaf into the library's window on it (the retry check covers
 * the window as it covers the frame: punch, release and conversions
 * invalidate first). The allocation and the prepare hook run outside any
 * RCU read-side section: they may block. The caller puts the file. */
static enum pm_fault_result fault_gmem_page(struct pm_fault *f, const struct pm_slot_ref *slot,
					    struct fault_source *src)
{
	unsigned int order;
	uint8_t *hva = NULL;
	pm_pfn_t pfn;
	int err;

	if (!slot->gmem)
		return fault_exit(f, EFAULT);
	/* Only private pages are prepared for the guest's hardware. */
	if (f->private_access)
		err = pm_gmem_get_pfn(slot->gmem, slot->index, f->gfn, &pfn, &order);
	else
		err = pm_gmem_get_pfn_shared(slot->gmem, slot->index, &pfn, &order);
	if (!err && !f->private_access)
		hva = pm_gmem_host_page(slot->gmem, slot->index, NULL);
	if (err)
		return pm_mmu_gmem_error(f, err);
	if (hva)
		*src = (struct fault_source){ .addr = (uintptr_t)hva >> PM_PAGE_SHIFT, .hva = true,
					      .order = order, .writable = true };
	else
		*src = (struct fault_source){ .addr = pfn, .hva = false, .order = order,
					      .writable = true };
	return PM_FAULT_MAPPED;
}

/* The page from the VMM's memory (the slot's userspace_addr), once it is
 * known to be mapped for the access (pm_memslot_check_hva): at most 2M, as
 * the host maps anonymous memory with transparent huge pages. */
static enum pm_fault_result fault_hva_page(struct pm_vm *vm, struct pm_fault *f,
					   const struct pm_slot_ref *slot, struct fault_source *src)
{
	int level = 1;

	if (!slot->hva_block_checked) {
		int r = pm_memslot_check_hva(vm, slot, f->gfn, &level);

		if (r == -EAGAIN)
			return PM_FAULT_RETRY;     /* the slot moved or went meanwhile */
		if (r)
			return fault_exit(f, EFAULT);
	}
	*src = (struct fault_source){
		.addr = (slot->userspace_addr >> PM_PAGE_SHIFT) + (f->gfn - slot->base_gfn),
		.hva = true, .order = level ? PM_ORDER_2M : 0,
		.writable = !(slot->flags & KVM_MEM_READONLY),
	};
	return PM_FAULT_MAPPED;
}

/* The access's kind against the page's state, read after the fault's
 * invalidation snapshot: a mismatch is the implicit conversion request
 * (KVM_EXIT_MEMORY_FAULT); kinds taken from the state always match. */
static enum pm_fault_result fault_check_kind(struct pm_fault *f, bool attr_private)
{
	if (f->kind_from_attr)
		f->private_access = attr_private;
	return f->private_access != attr_private ? fault_exit(f, EFAULT) : PM_FAULT_MAPPED;
}

/* Looks the page up: the first half of a fault, before the race check. In
 * in-place mode the page's state comes from the slot's guest_memfd, read
 * here (no slot, or one without guest_memfd: shared). */
static enum pm_fault_result fault_lookup(struct pm_vm *vm, struct pm_fault *f,
					 struct fault_source *src, int *level)
{
	struct pm_slot_ref slot;
	enum pm_fault_result r;

	if (!pm_memslot_get(vm, f->gfn, f->private_access, &slot)) {
		if (vm->in_place && fault_check_kind(f, false) != PM_FAULT_MAPPED)
			return PM_FAULT_EXIT;
		return f->private_access ? fault_exit(f, EFAULT) : PM_FAULT_MMIO;
	}
	if (vm->in_place) {
		r = fault_check_kind(f, slot.gmem && pm_gmem_is_private(slot.gmem, slot.index));
		if (r != PM_FAULT_MAPPED)
			goto out;
	}
	if (f->private_access && !(slot.flags & KVM_MEM_GUEST_MEMFD))
		r = fault_exit(f, EFAULT);
	else if (f->private_access || slot.gmem_only)
		r = fault_gmem_page(f, &slot, src);
	else
		r = fault_hva_page(vm, f, &slot, src);
	if (r != PM_FAULT_MAPPED)
		goto out;
	if (pm_fault_is_write(f) && !src->writable) {
		r = PM_FAULT_MMIO;      /* a write to a read-only slot */
		goto out;
	}
	*level = fault_max_level(vm, &slot, f, src);
	if (!src->hva && f->private_access && vm->model->private_max_level)
		*level = PM_MIN(*level, vm->model->private_max_level(vm, src->addr, f->gfn));
out:
	/* The last put may release the file: outside any read-side section. */
	if (slot.gmem)
		pm_gmem_put(slot.gmem);
	return r;
}

static uint64_t fault_pte(const struct fault_source *src, const struct pm_fault *f, int level)
{
	uint64_t n = pm_s2_level_pages(level);
	uint64_t addr = src->addr - (f->gfn & (n - 1));

	/* ACCESSED (and DIRTY) as the hardware walk of the faulting access
	 * would set them, so the access needs no second walk to mark them. */
	return (addr << PM_PAGE_SHIFT) | PM_PTE_EXEC | (src->writable ? PM_PTE_WRITE : 0) |
	       (src->hva ? PM_PTE_HVA : 0) | (f->private_access ? PM_PTE_PRIVATE : 0) |
	       PM_PTE_ACCESSED | (pm_fault_is_write(f) ? PM_PTE_DIRTY : 0);
}

/* One install: a private one goes to the model's copy of the private
 * mappings where it keeps one (map_private), anything else to the table. */
static int fault_map(struct pm_vm *vm, struct pm_fault *f, int level, uint64_t pte)
{
	if (f->private_access && vm->model->map_private)
		return vm->model->map_private(vm, f, level, pte);
	if (!f->private_access && vm->model->map_shared)
		return vm->model->map_shared(vm, f, level, pte);
	return pm_s2_map(&vm->mmu->s2, f->gfn, level, pte);
}

/* Installs the mapping at `level` or, if smaller mappings are in the way,
 * below it: MAPPED (f->level), RETRY when the gfn is mapped already or a
 * concurrent change is in flight, ERROR without memory (ENOMEM) or when the
 * model bugged the VM (EIO). */
static enum pm_fault_result fault_install(struct pm_vm *vm, const struct fault_source *src,
					  struct pm_fault *f, int level)
{
	struct pm_s2 *s2 = pm_mmu_root(vm->mmu, f->private_access);

	for (; level >= 0; level--) {
		int r = fault_map(vm, f, level, fault_pte(src, f, level));

		switch (r) {
		case 0:
			f->level = level;
			return PM_FAULT_MAPPED;
		case -EAGAIN:
			return PM_FAULT_RETRY;
		case -EEXIST:
			/* Something is there: another fault mapped the gfn, or
			 * a smaller level may still be free. */
			if (pm_s2_lookup(s2, f->gfn, NULL, NULL))
				return PM_FAULT_RETRY;
			break;
		default:
			PM_BUG_ON(r != -ENOMEM && r != -EIO);
			f->err = -r;
			return PM_FAULT_ERROR;
		}
	}
	return PM_FAULT_RETRY;
}

/* One attempt (the contract of the model's mmu_fault hook). */
static enum pm_fault_result fault_once(struct pm_vm *vm, struct pm_fault *f)
{
	struct fault_source src = { 0 };
	uint64_t snap = pm_inval_snapshot(vm);
	enum pm_fault_result r;
	int level = 0;

	if (!vm->in_place && fault_check_kind(f, pm_vm_gfn_is_private(vm, f->gfn)) != PM_FAULT_MAPPED)
		return PM_FAULT_EXIT;
	r = fault_lookup(vm, f, &src, &level);
	if (r != PM_FAULT_MAPPED)
		return r;

	uint64_t n = pm_s2_level_pages(level);
	gfn_t base = PM_ALIGN_DOWN(f->gfn, n);
	unsigned int slot = pm_mmu_read_lock(vm);

	if (pm_inval_retry(vm, base, base + n, snap))
		r = PM_FAULT_RETRY;
	else
		r = fault_install(vm, &src, f, level);
	pm_mmu_read_unlock(vm, slot);
	if (r == PM_FAULT_MAPPED) {
		f->hva = src.hva ? (uint8_t *)(uintptr_t)(src.addr << PM_PAGE_SHIFT)
				 : pm_pfn_to_hva(src.addr);
		f->writable = src.writable;
	}
	return r;
}

/* A trace's names of the outcomes. */
static const char *const fault_result_names[] = {
	[PM_FAULT_MAPPED] = "mapped", [PM_FAULT_RETRY] = "retry", [PM_FAULT_EXIT] = "exit",
	[PM_FAULT_MMIO] = "mmio", [PM_FAULT_ERROR] = "error",
};

static enum pm_fault_result mmu_fault_counted(struct pm_vm *vm, struct pm_fault *f, bool *counted);

enum pm_fault_result pm_mmu_fault(struct pm_vm *vm, struct pm_fault *f)
{
	enum pm_fault_result r;
	bool counted = false;
	uint64_t t0;

	PM_BUG_ON(f->max_level < 0 || f->max_level > PM_FAULT_MAX_LEVEL);
	if (f->gfn >> PM_S2_GFN_BITS)
		return f->private_access ? fault_exit(f, EFAULT) : PM_FAULT_MMIO;
	atomic_fetch_add_explicit(&vm->mmu->faults, 1, memory_order_relaxed);
	t0 = pm_trace_begin();
	r = mmu_fault_counted(vm, f, &counted);
	/* level: what this fault mapped and counted in mapped[], else -1. */
	pm_trace_end(t0, PM_TRACE_FAULT, "fault", f->gfn << PM_PAGE_SHIFT,
		     counted ? (uint64_t)f->level : (uint64_t)-1, PM_TRACE_STR(fault_result_names[r]),
		     f->private_access);
	return r;
}

/* The attempts of a fault counted in faults; *counted when it mapped a
 * leaf of its own (counted in mapped[f->level]). */
static enum pm_fault_result mmu_fault_counted(struct pm_vm *vm, struct pm_fault *f, bool *counted)
{
	struct pm_mmu *mmu = vm->mmu;
	enum pm_fault_result r;

	f->hva = NULL;
	for (unsigned int attempt = 0;; attempt++) {
		r = vm->model->mmu_fault ? vm->model->mmu_fault(vm, f) : fault_once(vm, f);
		if (r != PM_FAULT_RETRY)
			break;
		/* Still racing after many attempts (a TDX module answering
		 * OPERAND_BUSY again and again): the caller decides, after
		 * checking whether the VMM wants the vCPU back. */
		if (attempt == PM_FAULT_ATTEMPTS)
			return PM_FAULT_RETRY;
		/* Raced an invalidation (or another fault): look again. A
		 * mapping found now is another fault's: MAPPED, level 0, no
		 * hva (the caller translates). */
		atomic_fetch_add_explicit(&mmu->retries, 1, memory_order_relaxed);
		if (pm_mmu_translate_kind(vm, f->gfn, pm_fault_is_write(f),
					  mmu->mirror ? &f->private_access : NULL)) {
			f->level = 0;
			f->hva = NULL;
			return PM_FAULT_MAPPED;
		}
		sched_yield();
	}
	if (r == PM_FAULT_MAPPED) {
		atomic_fetch_add_explicit(&mmu->mapped[f->level], 1, memory_order_relaxed);
		*counted = true;
	}
	return r;
}

void pm_mmu_count(struct pm_vm *vm, gfn_t start, gfn_t end, uint64_t counts[3])
{
	end = PM_MIN(end, 1ULL << PM_S2_GFN_BITS);
	pm_s2_count(&vm->mmu->s2, start, end, counts);
	if (vm->mmu->mirror) {
		uint64_t m[3];

		pm_s2_count(vm->mmu->mirror, start, end, m);
		for (int i = 0; i < 3; i++)
			counts[i] += m[i];
	}
}

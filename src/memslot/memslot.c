/* SPDX-License-Identifier: MIT */
/*
 * KVM_SET_USER_MEMORY_REGION(2): validation in Linux's order (so that a
 * request with several faults gets the errno Linux gives), then the
 * publication of the change in the slot index (memslot.h: a radix tree from
 * gfn to slot id, and the RCU-published slot of each id).
 */
#include <sys/mman.h>
#include <privmem/kvm.h>
#include "gmem/gmem.h"
#include "host/pool.h"
#include "kvm/vm.h"
#include "lib/rcu.h"
#include "memslot/memslot.h"

/* x86-64 user address-space limit (access_ok): TASK_SIZE_MAX. */
#define PM_TASK_SIZE_MAX      0x00007ffffffff000ULL
/* Linux's KVM_MEM_MAX_NR_PAGES. */
#define PM_MEM_MAX_NR_PAGES   ((1ULL << 31) - 1)

enum memslot_change { MR_CREATE, MR_DELETE, MR_MOVE, MR_FLAGS_ONLY };

static int memslot_check_flags(struct pm_vm *vm, const struct kvm_userspace_memory_region2 *mem)
{
	uint32_t valid = KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_GUEST_MEMFD;

	/* Dirty logging of private memory is not supported. */
	if (mem->flags & KVM_MEM_GUEST_MEMFD)
		valid &= ~KVM_MEM_LOG_DIRTY_PAGES;
	/* guest_memfd is incompatible with read-only slots. */
	if (vm->model->readonly_mem && !(mem->flags & KVM_MEM_GUEST_MEMFD))
		valid |= KVM_MEM_READONLY;
	/* The guest's memory is private, from guest_memfd (pKVM). */
	if (vm->model->gmem_slots_only && mem->memory_size && !(mem->flags & KVM_MEM_GUEST_MEMFD))
		return -EINVAL;
	return (mem->flags & ~valid) ? -EINVAL : 0;
}

static int memslot_check_sanity(const struct kvm_userspace_memory_region2 *mem)
{
	if (!PM_ALIGNED(mem->memory_size, PM_PAGE_SIZE))
		return -EINVAL;
	if (!PM_ALIGNED(mem->guest_phys_addr, PM_PAGE_SIZE))
		return -EINVAL;
	if (!PM_ALIGNED(mem->userspace_addr, PM_PAGE_SIZE) ||
	    mem->userspace_addr + mem->memory_size < mem->userspace_addr ||
	    mem->userspace_addr + mem->memory_size > PM_TASK_SIZE_MAX)
		return -EINVAL;
	if ((mem->flags & KVM_MEM_GUEST_MEMFD) &&
	    (!PM_ALIGNED(mem->guest_memfd_offset, PM_PAGE_SIZE) ||
	     mem->guest_memfd_offset + mem->memory_size < mem->guest_memfd_offset))
		return -EINVAL;
	if ((mem->slot >> 16) != 0)     /* one address space: no SMM */
		return -EINVAL;
	if (mem->guest_phys_addr + mem->memory_size < mem->guest_phys_addr)
		return -EINVAL;
	if ((mem->memory_size >> PM_PAGE_SHIFT) > PM_MEM_MAX_NR_PAGES)
		return -EINVAL;
	return 0;
}

/* The slot of id (slot_by_id), under RCU. */
static struct pm_memslot *memslot_of_id(struct pm_vm *vm, uint64_t id)
{
	return pm_rcu_dereference(vm->slot_by_id[id]);
}

struct pm_memslot *pm_memslot_lookup(struct pm_vm *vm, gfn_t gfn)
{
	uint64_t v = pm_attr_get(&vm->slot_index, gfn);
	struct pm_memslot *s;

	if (!v)
		return NULL;
	/* The index and the slot of an id change one after the other: a slot
	 * that does not hold gfn is one that moved or went meanwhile. */
	s = memslot_of_id(vm, v - 1);
	return s && gfn - s->base_gfn < s->npages ? s : NULL;
}

/* ---- the VMM's memory behind a slot ---- */

static uint64_t memslot_block(const struct pm_memslot *slot, gfn_t gfn)
{
	return (gfn >> 9) - (slot->base_gfn >> 9);
}

static uint64_t memslot_nr_blocks(const struct pm_memslot *slot)
{
	return memslot_block(slot, slot->base_gfn + slot->npages - 1) + 1;
}

static bool memslot_block_checked(const struct pm_memslot *slot, gfn_t gfn)
{
	uint64_t b = memslot_block(slot, gfn);

	return atomic_load_explicit(&slot->hva_checked[b / 64], memory_order_relaxed) &
	       (1ULL << (b % 64));
}

/* Faults [first, end) of the slot's userspace memory in for the access the
 * stage-2 will allow. */
static bool memslot_populate(const struct pm_memslot *slot, gfn_t first, gfn_t end)
{
	uint64_t hva = slot->userspace_addr + ((first - slot->base_gfn) << PM_PAGE_SHIFT);
	int advice = slot->flags & KVM_MEM_READONLY ? MADV_POPULATE_READ : MADV_POPULATE_WRITE;

	if (hva < PM_PAGE_SIZE)
		return false;
	return madvise((void *)(uintptr_t)hva, (end - first) << PM_PAGE_SHIFT, advice) == 0;
}

int pm_memslot_check_hva(struct pm_vm *vm, const struct pm_slot_ref *ref, gfn_t gfn,
			 int *max_level)
{
	struct pm_memslot *slot;
	int r = 0;

	pm_rcu_read_lock();
	slot = pm_memslot_lookup(vm, gfn);
	if (!slot || slot->base_gfn != ref->base_gfn || slot->npages != ref->npages ||
	    slot->userspace_addr != ref->userspace_addr) {
		r = -EAGAIN;
	} else if (memslot_block_checked(slot, gfn)) {
		*max_level = 1;
	} else {
		gfn_t first = PM_MAX(PM_ALIGN_DOWN(gfn, 512), slot->base_gfn);
		gfn_t end = PM_MIN(PM_ALIGN_DOWN(gfn, 512) + 512, slot->base_gfn + slot->npages);
		uint64_t b = memslot_block(slot, gfn);

		/* Inside the read-side section, as KVM holds its SRCU across
		 * get_user_pages: a slot deletion waits for the populate. */
		if (memslot_populate(slot, first, end)) {
			atomic_fetch_or_explicit(&slot->hva_checked[b / 64], 1ULL << (b % 64),
						 memory_order_relaxed);
			*max_level = 1;
		} else if (memslot_populate(slot, gfn, gfn + 1)) {
			*max_level = 0;
		} else {
			r = -EFAULT;
		}
	}
	pm_rcu_read_unlock();
	return r;
}

bool pm_memslot_get(struct pm_vm *vm, gfn_t gfn, bool private_page, struct pm_slot_ref *ref)
{
	struct pm_memslot *slot;
	struct pm_gmem *g = NULL;

	pm_rcu_read_lock();
	slot = pm_memslot_lookup(vm, gfn);
	if (slot) {
		*ref = (struct pm_slot_ref){
			.base_gfn = slot->base_gfn, .npages = slot->npages,
			.userspace_addr = slot->userspace_addr, .flags = slot->flags,
			.gmem_pgoff = slot->gmem_pgoff, .gmem_only = slot->gmem_only,
			.index = slot->gmem_pgoff + (gfn - slot->base_gfn),
			.run = slot->base_gfn + slot->npages - gfn,
		};
		if ((private_page || slot->gmem_only) && pm_memslot_has_gmem(slot))
			g = pm_rcu_dereference(slot->gmem);
		else
			ref->hva_block_checked = memslot_block_checked(slot, gfn);
		ref->gmem = g && pm_gmem_tryget(g) ? g : NULL;
	}
	pm_rcu_read_unlock();
	return slot != NULL;
}

int pm_memslot_read_gmem_page(struct pm_vm *vm, gfn_t gfn, void *buf)
{
	struct pm_slot_ref ref;
	pm_pfn_t pfn;
	int r;

	if (!pm_memslot_get(vm, gfn, true, &ref) || !ref.gmem) {
		if (ref.gmem)
			pm_gmem_put(ref.gmem);
		return -EINVAL;
	}
	r = pm_gmem_get_pfn_host(ref.gmem, ref.index, &pfn);
	if (!r)
		memcpy(buf, pm_pfn_to_hva(pfn), PM_PAGE_SIZE);
	pm_gmem_put(ref.gmem);
	return r;
}

bool pm_memslot_gfn_is_private(struct pm_vm *vm, gfn_t gfn)
{
	struct pm_memslot *slot;
	struct pm_gmem *g;
	bool private = false;

	/* The file is freed only after a grace period past its release,
	 * which clears slot->gmem first: reading its state here is safe. */
	pm_rcu_read_lock();
	slot = pm_memslot_lookup(vm, gfn);
	g = slot && pm_memslot_has_gmem(slot) ? pm_rcu_dereference(slot->gmem) : NULL;
	if (g)
		private = pm_gmem_is_private(g, slot->gmem_pgoff + (gfn - slot->base_gfn));
	pm_rcu_read_unlock();
	return private;
}

/* Does [start, end) overlap a slot other than `except`? (slots_lock held.)
 * Each run of one value of the index in the range names a slot (or none);
 * the slot itself says whether it is there: a run left over by a clear that
 * found no memory names a slot elsewhere, or none. */
static bool memslots_overlap(struct pm_vm *vm, gfn_t start, gfn_t end,
			     const struct pm_memslot *except)
{
	for (gfn_t gfn = start, run_end; gfn < end; gfn = run_end) {
		uint64_t v = pm_attr_get_run(&vm->slot_index, gfn, &run_end);
		const struct pm_memslot *s = v ? atomic_load_explicit(&vm->slot_by_id[v - 1],
									memory_order_relaxed) : NULL;

		if (s && s != except &&
		    pm_ranges_overlap(gfn, PM_MIN(run_end, end), s->base_gfn, s->base_gfn + s->npages))
			return true;
	}
	return false;
}

/* Sets [start, end) of the index to "no slot" if it is not empty. A clear
 * that finds no memory for a split leaves the old id there: harmless, since
 * that id's slot no longer holds those gfns (lookups check it, and so does
 * memslots_overlap), and the next set of the range replaces it. */
static void memslots_clear(struct pm_vm *vm, gfn_t start, gfn_t end)
{
	if (start < end)
		(void)pm_attr_set(&vm->slot_index, start, end, 0);
}

/* Publishes the change of slot id from `old` to `new` (either may be NULL;
 * both have the same id): the new range in the index first (the one step
 * that may fail, with nothing changed), then the slot, then the old range
 * that the new one does not cover back to "no slot". A reader between two
 * steps finds, for each gfn, the old slot, the new one, or none, and only a
 * slot that holds the gfn (pm_memslot_lookup): what a reader of one array
 * replaced by another would find before or after. O(log) in the number of
 * slots: the index's nodes along the ranges' edges. */
static int memslots_replace(struct pm_vm *vm, struct pm_memslot *old, struct pm_memslot *new)
{
	uint16_t id = (uint16_t)(new ? new->id : old->id);
	int r;

	if (new) {
		r = pm_attr_set(&vm->slot_index, new->base_gfn, new->base_gfn + new->npages,
				(uint64_t)id + 1);
		if (r)
			return r;
	}
	pm_rcu_assign_pointer(vm->slot_by_id[id], new);
	if (old) {
		gfn_t os = old->base_gfn, oe = old->base_gfn + old->npages;
		gfn_t ns = new ? new->base_gfn : oe, ne = new ? new->base_gfn + new->npages : oe;

		memslots_clear(vm, os, PM_MIN(ns, oe));
		memslots_clear(vm, PM_MAX(ne, os), oe);
	}
	return 0;
}

static void memslot_free(struct pm_memslot *slot)
{
	if (pm_memslot_has_gmem(slot))
		pm_gmem_unbind(slot);
	free(slot->hva_checked);
	free(slot);
}

/* Publishes the change; for a delete or a move, zaps the old range while
 * the array changes. Then frees `old` once no fault can still use it. */
static int memslot_commit(struct pm_vm *vm, struct pm_memslot *old, struct pm_memslot *new,
			  enum memslot_change change)
{
	struct pm_inval_ticket t;
	int r;

	/* The model's say, after every check of the request, as KVM's
	 * kvm_arch_prepare_memory_region (pKVM: frozen once the VM ran). */
	if (vm->model->prepare_memory_region) {
		r = vm->model->prepare_memory_region(vm);
		if (r)
			return r;
	}
	if (change == MR_DELETE || change == MR_MOVE) {
		pm_inval_begin(vm, old->base_gfn, old->base_gfn + old->npages, PM_INVAL_ALL,
			       PM_INVAL_CAUSE_MEMSLOT, &t);
		r = memslots_replace(vm, old, new);
		pm_inval_end(vm, &t);
	} else {
		r = memslots_replace(vm, old, new);
	}
	if (r)
		return r;
	/* Unsigned arithmetic: moves and flag changes add and remove the same. */
	vm->nr_memslot_pages += (new ? new->npages : 0) - (old ? old->npages : 0);
	if (old) {
		pm_synchronize_rcu();
		memslot_free(old);
	}
	return 0;
}

/* Decides what the request changes; 0 with *change, 1 for "nothing", or -errno. */
static int memslot_classify(struct pm_vm *vm, const struct kvm_userspace_memory_region2 *mem,
			    struct pm_memslot *old, enum memslot_change *change)
{
	gfn_t base_gfn = mem->guest_phys_addr >> PM_PAGE_SHIFT;
	uint64_t npages = mem->memory_size >> PM_PAGE_SHIFT;

	if (!mem->memory_size) {
		if (!old)
			return -EINVAL;
		*change = MR_DELETE;
		return 0;
	}
	if (!old) {
		if (vm->nr_memslot_pages + npages < vm->nr_memslot_pages)
			return -EINVAL;
		*change = MR_CREATE;
		return 0;
	}
	/* guest_memfd slots are immutable: they can only be deleted. */
	if ((mem->flags | old->flags) & KVM_MEM_GUEST_MEMFD)
		return -EINVAL;
	if (mem->userspace_addr != old->userspace_addr || npages != old->npages ||
	    ((mem->flags ^ old->flags) & KVM_MEM_READONLY))
		return -EINVAL;
	if (base_gfn != old->base_gfn)
		*change = MR_MOVE;
	else if (mem->flags != old->flags)
		*change = MR_FLAGS_ONLY;
	else
		return 1;
	return 0;
}

static struct pm_memslot *memslot_new(const struct kvm_userspace_memory_region2 *mem)
{
	struct pm_memslot *s = pm_zalloc(sizeof(*s));

	if (!s)
		return NULL;
	s->id = mem->slot;
	s->flags = mem->flags;
	s->base_gfn = mem->guest_phys_addr >> PM_PAGE_SHIFT;
	s->npages = mem->memory_size >> PM_PAGE_SHIFT;
	s->userspace_addr = mem->userspace_addr;
	s->hva_checked = calloc((memslot_nr_blocks(s) + 63) / 64, sizeof(s->hva_checked[0]));
	if (!s->hva_checked) {
		free(s);
		return NULL;
	}
	return s;
}

static int memslot_set_locked(struct pm_vm *vm, const struct kvm_userspace_memory_region2 *mem,
			      struct pm_gmem *gmem, int gmem_err)
{
	struct pm_memslot *old = atomic_load_explicit(&vm->slot_by_id[(uint16_t)mem->slot],
						      memory_order_relaxed);
	enum memslot_change change;
	struct pm_memslot *new;
	int r;

	r = memslot_check_flags(vm, mem);
	if (!r)
		r = memslot_check_sanity(mem);
	if (!r)
		r = memslot_classify(vm, mem, old, &change);
	if (r)
		return r > 0 ? 0 : r;
	if (change == MR_DELETE)
		return memslot_commit(vm, old, NULL, change);
	if ((change == MR_CREATE || change == MR_MOVE) &&
	    memslots_overlap(vm, mem->guest_phys_addr >> PM_PAGE_SHIFT,
			     (mem->guest_phys_addr + mem->memory_size) >> PM_PAGE_SHIFT, old))
		return -EEXIST;

	new = memslot_new(mem);
	if (!new)
		return -ENOMEM;
	if (mem->flags & KVM_MEM_GUEST_MEMFD) {
		r = gmem_err ? gmem_err : pm_gmem_bind(gmem, vm, new, mem->guest_memfd_offset);
		if (r)
			goto out_free;
	}
	r = memslot_commit(vm, old, new, change);
	if (r)
		goto out_unbind;
	return 0;

out_unbind:
	if (mem->flags & KVM_MEM_GUEST_MEMFD)
		pm_gmem_unbind(new);
out_free:
	free(new->hva_checked);
	free(new);
	return r;
}

int pm_memslot_set(struct pm_vm *vm, const struct kvm_userspace_memory_region2 *mem,
		   struct pm_gmem *gmem, int gmem_err)
{
	int r;

	if ((uint16_t)mem->slot >= PM_USER_MEM_SLOTS)
		return -EINVAL;
	pthread_mutex_lock(&vm->slots_lock);
	r = memslot_set_locked(vm, mem, gmem, gmem_err);
	pthread_mutex_unlock(&vm->slots_lock);
	return r;
}

int pm_memslots_init(struct pm_vm *vm)
{
	vm->slot_by_id = calloc(PM_USER_MEM_SLOTS, sizeof(vm->slot_by_id[0]));
	if (!vm->slot_by_id)
		return -ENOMEM;
	if (pm_attr_init(&vm->slot_index)) {
		free(vm->slot_by_id);
		return -ENOMEM;
	}
	pthread_mutex_init(&vm->slots_lock, NULL);
	return 0;
}

void pm_memslots_destroy(struct pm_vm *vm)
{
	/* The VM is unreachable: no fault runs, no guest_memfd is bound. */
	for (unsigned int i = 0; i < PM_USER_MEM_SLOTS; i++) {
		struct pm_memslot *s = atomic_load_explicit(&vm->slot_by_id[i], memory_order_relaxed);

		if (s)
			memslot_free(s);
	}
	pm_attr_destroy(&vm->slot_index);
	free(vm->slot_by_id);
	pthread_mutex_destroy(&vm->slots_lock);
}

/* SPDX-License-Identifier: MIT */
/*
 * KVM_SET_USER_MEMORY_REGION(2): validation in Linux's order (so that a
 * request with several faults gets the errno Linux gives), then a
 * copy-on-update of the RCU-published slot array.
 */
#include <sys/mman.h>
#include <privmem/kvm.h>
#include "gmem/gmem.h"
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

/* Index of the first slot whose base_gfn is > gfn. */
static uint32_t memslots_upper_bound(const struct pm_memslots *ms, gfn_t gfn)
{
	uint32_t lo = 0, hi = ms->nr;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (ms->slots[mid]->base_gfn <= gfn)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

struct pm_memslot *pm_memslot_lookup(struct pm_vm *vm, gfn_t gfn)
{
	struct pm_memslots *ms = pm_rcu_dereference(vm->slots);
	uint32_t i = memslots_upper_bound(ms, gfn);
	struct pm_memslot *s;

	if (i == 0)
		return NULL;
	s = ms->slots[i - 1];
	return gfn - s->base_gfn < s->npages ? s : NULL;
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

/* Does [start, end) overlap a slot other than `except`? (slots_lock held) */
static bool memslots_overlap(const struct pm_memslots *ms, gfn_t start, gfn_t end,
			     const struct pm_memslot *except)
{
	uint32_t i = memslots_upper_bound(ms, start);

	/* The candidate slots are the one before start and those starting before end. */
	for (uint32_t j = i ? i - 1 : 0; j < ms->nr && ms->slots[j]->base_gfn < end; j++) {
		const struct pm_memslot *s = ms->slots[j];

		if (s != except && pm_ranges_overlap(start, end, s->base_gfn, s->base_gfn + s->npages))
			return true;
	}
	return false;
}

/* Position of slot s in the array (it must be there). */
static uint32_t memslots_index(const struct pm_memslots *ms, const struct pm_memslot *s)
{
	uint32_t i = memslots_upper_bound(ms, s->base_gfn);

	PM_BUG_ON(i == 0 || ms->slots[i - 1] != s);
	return i - 1;
}

/* Publishes a copy of the slot array with `old` removed and `new` added
 * (either may be NULL); the previous array is freed after a grace period.
 * Bulk copies: filling all 32764 slots copies arrays, not elements. */
static int memslots_replace(struct pm_vm *vm, struct pm_memslot *old, struct pm_memslot *new)
{
	struct pm_memslots *cur = atomic_load_explicit(&vm->slots, memory_order_relaxed);
	uint32_t nr = cur->nr - (old != NULL) + (new != NULL);
	struct pm_memslots *next = malloc(sizeof(*next) + (size_t)nr * sizeof(next->slots[0]));
	uint32_t n = cur->nr, del = old ? memslots_index(cur, old) : n;

	if (!next)
		return -ENOMEM;
	next->generation = cur->generation + 1;
	/* The old array without `old`... */
	memcpy(next->slots, cur->slots, del * sizeof(cur->slots[0]));
	if (del < n) {
		memcpy(next->slots + del, cur->slots + del + 1, (n - del - 1) * sizeof(cur->slots[0]));
		n--;
	}
	/* ...then `new` at its sorted place. */
	if (new) {
		next->nr = n;
		uint32_t ins = memslots_upper_bound(next, new->base_gfn);

		memmove(next->slots + ins + 1, next->slots + ins, (n - ins) * sizeof(next->slots[0]));
		next->slots[ins] = new;
		n++;
	}
	PM_BUG_ON(n != nr);
	next->nr = nr;
	pm_rcu_assign_pointer(vm->slots, next);
	pm_rcu_free(cur);
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
	uint16_t id = (uint16_t)(new ? new->id : old->id);
	struct pm_inval_ticket t;
	int r;

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
	vm->slot_by_id[id] = new;
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
	struct pm_memslot *old = vm->slot_by_id[(uint16_t)mem->slot];
	struct pm_memslots *ms = atomic_load_explicit(&vm->slots, memory_order_relaxed);
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
	    memslots_overlap(ms, mem->guest_phys_addr >> PM_PAGE_SHIFT,
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
	struct pm_memslots *ms = pm_zalloc(sizeof(*ms));

	vm->slot_by_id = calloc(PM_USER_MEM_SLOTS, sizeof(vm->slot_by_id[0]));
	if (!ms || !vm->slot_by_id) {
		free(ms);
		free(vm->slot_by_id);
		return -ENOMEM;
	}
	atomic_init(&vm->slots, ms);
	pthread_mutex_init(&vm->slots_lock, NULL);
	return 0;
}

void pm_memslots_destroy(struct pm_vm *vm)
{
	struct pm_memslots *ms = atomic_load_explicit(&vm->slots, memory_order_relaxed);

	/* The VM is unreachable: no fault runs, no guest_memfd is bound. */
	for (uint32_t i = 0; i < ms->nr; i++)
		memslot_free(ms->slots[i]);
	free(ms);
	free(vm->slot_by_id);
	pthread_mutex_destroy(&vm->slots_lock);
}

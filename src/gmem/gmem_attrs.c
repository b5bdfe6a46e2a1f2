/* SPDX-License-Identifier: MIT */
/*
 * A guest_memfd's shared/private state and in-place conversion
 * (KVM_SET_MEMORY_ATTRIBUTES2), following v8 of the series "guest_memfd:
 * In-place conversion support" (2026-06-18), with the later snapshot's
 * default state for pages never converted.
 *
 * The state. Per file, not per VM: every slot bound to the file (every VM
 * that could be) sees the same state, and a conversion recorded before a
 * page exists holds when the page is allocated; a punch hole frees pages
 * and keeps their state. It lives in the attribute store of memslot/attr.h
 * (a radix tree of ranges: memory grows with the number of state
 * boundaries, not with pages), indexed by file page, whose value is the
 * page's attributes XOR the file's initial ones (attrs_default: PRIVATE
 * unless the file was made with GUEST_MEMFD_FLAG_INIT_SHARED), so that a
 * page never converted has no entry of its own.
 *
 * Who uses it:
 *  - in in-place mode (vm->in_place), the fault path (private-ness of a
 *    gfn is the state of its page in its slot's file) and the models'
 *    launch checks, through pm_vm_gfn_is_private;
 *  - always, the host's side (gmem_host.c): the host file H holds exactly
 *    the shared pages (except on pKVM, whose hyp decides per frame), so
 *    a private page is a hole, and views fault there (SIGBUS).
 * Before in-place mode, or on a VM without it, a file's state is its
 * initial one for ever: INIT_SHARED files (default VMs) all shared, the
 * others (sw, SNP, TDX in the old mode) all private, as they were.
 *
 * Locks. Readers take none (RCU, inside the store's accessors). Writers
 * hold the file's host_lock. A conversion (one at a time per file:
 * conv_lock, taken before bindings_lock) must not fail once it has moved
 * pages, so it reserves the store's nodes before it starts (the exact
 * count: conv_lock keeps every other writer out, since conversions are the
 * only writers of a file whose VM has private memory), then, with
 * bindings_lock shared: begins an invalidation of the range in every slot
 * bound to the file (zapping the kind of mapping the range leaves), takes
 * host_lock (pins cannot change), checks the pins, moves the contents
 * (gmem_host.c), stores the state, and ends the invalidation. A fault
 * racing it retries (the invalidation protocol), so no vCPU maps a page of
 * the range while its contents move, and none maps it by its old state
 * afterwards. host_lock cannot be held across the invalidation's begin:
 * zaps take the MMU lock for writing (TDX) and shoot down vCPUs, which
 * come after host_lock in the lock order.
 */
#include <privmem/kvm.h>
#include "gmem/gmem_internal.h"
#include "kvm/vm.h"

/* The store's value for the state `shared`. */
static uint64_t attrs_value(const struct pm_gmem *g, bool shared)
{
	return (shared ? 0 : KVM_MEMORY_ATTRIBUTE_PRIVATE) ^ g->attrs_default;
}

int gmem_attrs_init(struct pm_gmem *g)
{
	int r = pm_attr_init(&g->attrs);

	if (r)
		return r;
	/* Sets within the file never raise the root (reservations rely on
	 * it), so it covers the file now. */
	r = g->npages ? pm_attr_reach(&g->attrs, g->npages) : 0;
	if (r) {
		pm_attr_destroy(&g->attrs);
		return r;
	}
	g->attrs_default = gmem_init_shared(g) ? 0 : KVM_MEMORY_ATTRIBUTE_PRIVATE;
	g->in_place = g->vm->in_place;
	pthread_mutex_init(&g->conv_lock, NULL);
	return 0;
}

void gmem_attrs_destroy(struct pm_gmem *g)
{
	pthread_mutex_destroy(&g->conv_lock);
	pm_attr_destroy(&g->attrs);
}

bool gmem_page_shared(struct pm_gmem *g, uint64_t i)
{
	return !((pm_attr_get(&g->attrs, i) ^ g->attrs_default) & KVM_MEMORY_ATTRIBUTE_PRIVATE);
}

bool gmem_shared_run(struct pm_gmem *g, uint64_t i, uint64_t end, uint64_t *run_end)
{
	gfn_t e;
	uint64_t v = pm_attr_get_run(&g->attrs, i, &e);

	*run_end = PM_MIN(e, end);
	return !((v ^ g->attrs_default) & KVM_MEMORY_ATTRIBUTE_PRIVATE);
}

bool gmem_attrs_mixed(struct pm_gmem *g, uint64_t i, int level)
{
	return pm_attr_mixed(&g->attrs, i, level);
}

bool pm_gmem_is_private(struct pm_gmem *g, uint64_t index)
{
	return !gmem_page_shared(g, index);
}

bool pm_gmem_attrs_mixed(struct pm_gmem *g, uint64_t index, int level)
{
	return gmem_attrs_mixed(g, index, level);
}

int gmem_attrs_reserve(struct pm_gmem *g, uint64_t start, uint64_t end, bool shared, bool any,
		       struct pm_attr_reservation *res)
{
	return pm_attr_reserve(&g->attrs, start, end, any ? PM_ATTR_ANY_SET : attrs_value(g, shared),
			       res);
}

void gmem_attrs_unreserve(struct pm_gmem *g, struct pm_attr_reservation *res)
{
	pm_attr_unreserve(&g->attrs, res);
}

void gmem_attrs_set_locked(struct pm_gmem *g, uint64_t start, uint64_t end, bool shared,
			   struct pm_attr_reservation *res)
{
	pm_attr_set_reserved(&g->attrs, start, end, attrs_value(g, shared), res);
}

int gmem_attrs_set(struct pm_gmem *g, uint64_t start, uint64_t end, bool shared)
{
	return pm_attr_set(&g->attrs, start, end, attrs_value(g, shared));
}

bool gmem_range_private(struct pm_gmem *g, uint64_t start, uint64_t end)
{
	return pm_attr_range_is(&g->attrs, start, end, attrs_value(g, false));
}

/* ---- KVM_SET_MEMORY_ATTRIBUTES2 ---- */

/* v8's checks (kvm_gmem_set_attributes, 13/46), in its order; the ioctl's
 * own (EFAULT for the argument, ENOTTY when the mode is off) come before. */
static int attrs2_check(struct pm_gmem *g, const struct kvm_memory_attributes2 *a)
{
	if (a->flags)
		return -EINVAL;
	for (size_t i = 0; i < PM_ARRAY_SIZE(a->reserved); i++)
		if (a->reserved[i])
			return -EINVAL;
	if (!g->vm->model->private_mem)
		return -EINVAL;
	if (a->attributes & ~KVM_MEMORY_ATTRIBUTE_PRIVATE)
		return -EINVAL;
	if (!a->size || a->offset + a->size < a->offset)
		return -EINVAL;
	if (!PM_ALIGNED(a->offset, PM_PAGE_SIZE) || !PM_ALIGNED(a->size, PM_PAGE_SIZE))
		return -EINVAL;
	if (a->offset >= g->size || a->offset + a->size > g->size)
		return -EINVAL;
	return 0;
}

/* The conversion proper (see the top of the file); *err_index: the page
 * error_offset names on failure. */
static int gmem_convert(struct pm_gmem *g, uint64_t start, uint64_t end, bool to_private,
			uint64_t *err_index)
{
	struct pm_inval_ticket local[GMEM_TICKETS_INLINE], *tickets;
	struct pm_attr_reservation res;
	bool complete = false;
	unsigned int reader;
	size_t nt;
	int r;

	*err_index = start;
	pthread_mutex_lock(&g->conv_lock);
	reader = gmem_bindings_read_lock(g);
	/* Already so: nothing to do (16/46). */
	if (pm_attr_range_is(&g->attrs, start, end, attrs_value(g, !to_private))) {
		r = 0;
		goto out_unlock;
	}
	r = gmem_attrs_reserve(g, start, end, !to_private, false, &res);
	if (r)
		goto out_unlock;
	r = gmem_inval_begin(g, start, end, to_private ? PM_INVAL_SHARED : PM_INVAL_PRIVATE,
			     PM_INVAL_CAUSE_ATTR, local, &tickets, &nt);
	if (r)
		goto out_unreserve;

	pthread_mutex_lock(&g->host_lock);
	r = to_private ? gmem_host_make_private_locked(g, start, end, err_index)
		       : gmem_host_make_shared_locked(g, start, end, &complete);
	if (!r) {
		gmem_attrs_set_locked(g, start, end, !to_private, &res);
		/* The views show the new shared pages (populated ahead, as
		 * INIT_SHARED files' are), unless they are all in H already. */
		if (!to_private && !complete)
			gmem_views_populate_locked(g, start, end);
	}
	pthread_mutex_unlock(&g->host_lock);
	gmem_inval_end(g, tickets, nt, local);
out_unreserve:
	if (r)
		gmem_attrs_unreserve(g, &res);
out_unlock:
	gmem_bindings_read_unlock(g, reader);
	pthread_mutex_unlock(&g->conv_lock);
	return r;
}

int pm_gmem_set_attributes(struct pm_gmem *g, struct kvm_memory_attributes2 *a)
{
	uint64_t err_index;
	int r = attrs2_check(g, a);

	if (r)
		return r;
	r = gmem_convert(g, a->offset >> PM_PAGE_SHIFT, (a->offset + a->size) >> PM_PAGE_SHIFT,
			 a->attributes & KVM_MEMORY_ATTRIBUTE_PRIVATE, &err_index);
	if (r == -EAGAIN || r == -ENOMEM)
		a->error_offset = err_index << PM_PAGE_SHIFT;
	return r;
}

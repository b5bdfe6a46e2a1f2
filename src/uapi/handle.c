/* SPDX-License-Identifier: MIT */
#include <pthread.h>
#include "gmem/gmem.h"
#include "kvm/vm.h"
#include "lib/brlock.h"
#include "lib/rcu.h"
#include "uapi/handle.h"
#include "vcpu/vcpu.h"

/*
 * The table is an array of pointers to immutable struct pm_file, published
 * with RCU: a lookup reads one entry inside a read-side section and takes
 * its reference on the object there, writing no shared line but the
 * object's own refcount (as Linux's fdget on a shared file table). Install
 * and close serialise on table_lock. Close clears the entry, waits for a
 * grace period (every lookup that could have read the entry has taken its
 * reference by then) and only then drops the table's reference, so the
 * object outlives every such lookup and close is synchronous, as close()
 * is for the caller.
 *
 * Short calls (pm_handle_pin) take no reference at all: they hold the
 * big-reader lock `users` for reading while they run, writing only their
 * CPU's slot, and close, after clearing the entry, waits for the calls
 * inside (pm_brlock_sync) before it drops the table's reference. Calls that
 * may block indefinitely (KVM_RUN) take a reference instead.
 *
 * Which numbers are taken is kept apart from the table, under table_lock
 * (lookups never read it): a bitmap of the handles in use and, above it,
 * two summary levels whose bits say "every handle under this word is in
 * use". The lowest free handle is then three word scans from the top (a
 * few words at most: the levels cover PM_MAX_HANDLES), not a scan of the
 * table, as Linux's fd allocator keeps full_fds_bits beside open_fds.
 */
struct handle_table {
	int size;                               /* immutable */
	_Atomic(struct pm_file *) entry[];      /* written under table_lock */
};

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pm_brlock users;                 /* pinned calls (see above) */
static pthread_once_t users_once = PTHREAD_ONCE_INIT;
static _Atomic(struct handle_table *) table;   /* replaced under table_lock */

/* used[0]: a bit per handle, set while it is open (installed, not yet
 * closed). used[l + 1]: a bit per word of used[l], set while that word is
 * full. All under table_lock. */
#define USED_L0_WORDS (PM_MAX_HANDLES / 64)
#define USED_L1_WORDS (USED_L0_WORDS / 64)
#define USED_L2_WORDS (USED_L1_WORDS / 64)
_Static_assert(PM_MAX_HANDLES % (64 * 64 * 64) == 0, "each summary level covers whole words");
static uint64_t used_l0[USED_L0_WORDS], used_l1[USED_L1_WORDS], used_l2[USED_L2_WORDS];

/* The lowest handle not in use, or -EMFILE. table_lock held. */
static int used_first_free_locked(void)
{
	unsigned int w2, w1, w0;

	for (w2 = 0; w2 < USED_L2_WORDS && used_l2[w2] == ~0ULL; w2++)
		;
	if (w2 == USED_L2_WORDS)
		return -EMFILE;
	w1 = w2 * 64 + (unsigned int)__builtin_ctzll(~used_l2[w2]);
	w0 = w1 * 64 + (unsigned int)__builtin_ctzll(~used_l1[w1]);
	return (int)(w0 * 64 + (unsigned int)__builtin_ctzll(~used_l0[w0]));
}

/* Marks h in use, and the words it fills full. table_lock held. */
static void used_set_locked(int h)
{
	unsigned int w0 = (unsigned int)h / 64, w1 = w0 / 64;

	used_l0[w0] |= 1ULL << (h % 64);
	if (used_l0[w0] != ~0ULL)
		return;
	used_l1[w1] |= 1ULL << (w0 % 64);
	if (used_l1[w1] == ~0ULL)
		used_l2[w1 / 64] |= 1ULL << (w1 % 64);
}

/* Marks h free: no word above it is full any more. table_lock held. */
static void used_clear_locked(int h)
{
	unsigned int w0 = (unsigned int)h / 64, w1 = w0 / 64;

	used_l0[w0] &= ~(1ULL << (h % 64));
	used_l1[w1] &= ~(1ULL << (w0 % 64));
	used_l2[w1 / 64] &= ~(1ULL << (w1 % 64));
}

static void users_init(void)
{
	PM_BUG_ON(pm_brlock_init(&users) != 0);
}

void pm_file_get(const struct pm_file *f)
{
	switch (f->kind) {
	case PM_HANDLE_VM:
		pm_vm_get(f->obj);
		break;
	case PM_HANDLE_VCPU:
		pm_vm_get(((struct pm_vcpu *)f->obj)->vm);
		break;
	case PM_HANDLE_GMEM:
		pm_gmem_get(f->obj);
		break;
	default:
		break;
	}
}

void pm_file_put(const struct pm_file *f)
{
	switch (f->kind) {
	case PM_HANDLE_VM:
		pm_vm_put(f->obj);
		break;
	case PM_HANDLE_VCPU:
		pm_vm_put(((struct pm_vcpu *)f->obj)->vm);
		break;
	case PM_HANDLE_GMEM:
		pm_gmem_put(f->obj);
		break;
	default:
		break;
	}
}

/* A table large enough for handle h (doubling) with the same entries; the
 * old one is freed after a grace period (lookups may still be reading it). */
static int table_grow_locked(struct handle_table **tp, int h)
{
	struct handle_table *old = *tp, *t;
	int size = old ? old->size : 64;

	while (size <= h)
		size *= 2;
	PM_BUG_ON(size > PM_MAX_HANDLES);
	t = calloc(1, sizeof(*t) + (size_t)size * sizeof(t->entry[0]));
	if (!t)
		return -ENOMEM;
	t->size = size;
	for (int i = 0; old && i < old->size; i++)
		atomic_init(&t->entry[i], atomic_load_explicit(&old->entry[i],
							       memory_order_relaxed));
	pm_rcu_assign_pointer(table, t);
	pm_rcu_free(old);
	*tp = t;
	return 0;
}

int pm_handle_install(const struct pm_file *f)
{
	struct pm_file *copy = malloc(sizeof(*copy));
	struct handle_table *t;
	int h, r = 0;

	if (!copy)
		return -ENOMEM;
	*copy = *f;
	pthread_once(&users_once, users_init);
	pthread_mutex_lock(&table_lock);
	t = atomic_load_explicit(&table, memory_order_relaxed);
	h = used_first_free_locked();
	if (h < 0)
		r = h;
	else if (!t || h >= t->size)
		r = table_grow_locked(&t, h);
	if (!r) {
		used_set_locked(h);
		pm_rcu_assign_pointer(t->entry[h], copy);
	}
	pthread_mutex_unlock(&table_lock);
	if (r)
		free(copy);
	return r ? r : h;
}

/* Copies the entry of handle into *f, if open; with ref, takes a reference
 * inside the read-side section (the table's reference is dropped only a
 * grace period after close cleared the entry). */
static bool table_lookup(int handle, struct pm_file *f, bool ref)
{
	struct handle_table *t;
	struct pm_file *e = NULL;

	pm_rcu_read_lock();
	t = pm_rcu_dereference(table);
	if (handle >= 0 && t && handle < t->size)
		e = pm_rcu_dereference(t->entry[handle]);
	if (e) {
		*f = *e;
		if (ref)
			pm_file_get(f);
	}
	pm_rcu_read_unlock();
	return e != NULL;
}

int pm_handle_get(int handle, struct pm_file *f)
{
	return table_lookup(handle, f, true) ? 0 : -EBADF;
}

int pm_handle_pin(int handle, struct pm_file *f, unsigned int *slot)
{
	if (handle < 0)
		return -EBADF;
	pthread_once(&users_once, users_init);
	*slot = pm_brlock_read_lock(&users);
	if (table_lookup(handle, f, false))
		return 0;
	pm_brlock_read_unlock(&users, *slot);
	return -EBADF;
}

void pm_handle_unpin(unsigned int slot)
{
	pm_brlock_read_unlock(&users, slot);
}

int pm_handle_close(int handle)
{
	struct handle_table *t;
	struct pm_file *e = NULL;

	if (handle < 0)
		return -EBADF;
	pthread_mutex_lock(&table_lock);
	t = atomic_load_explicit(&table, memory_order_relaxed);
	if (t && handle < t->size) {
		e = atomic_load_explicit(&t->entry[handle], memory_order_relaxed);
		atomic_store_explicit(&t->entry[handle], NULL, memory_order_relaxed);
		if (e)
			used_clear_locked(handle);
	}
	pthread_mutex_unlock(&table_lock);
	if (!e)
		return -EBADF;
	/* Lookups that read the entry have their references after this, and
	 * pinned calls that may have read it have returned. */
	pm_synchronize_rcu();
	pm_brlock_sync(&users);
	pm_file_put(e);
	free(e);
	return 0;
}

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
 */
struct handle_table {
	int size;                               /* immutable */
	_Atomic(struct pm_file *) entry[];      /* written under table_lock */
};

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pm_brlock users;                 /* pinned calls (see above) */
static pthread_once_t users_once = PTHREAD_ONCE_INIT;
static _Atomic(struct handle_table *) table;   /* replaced under table_lock */

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

/* A table twice as large with the same entries; the old one is freed after
 * a grace period (lookups may still be reading it). */
static int table_grow_locked(struct handle_table **tp)
{
	struct handle_table *old = *tp, *t;
	int size = old ? old->size * 2 : 64;

	if (size > PM_MAX_HANDLES)
		return -EMFILE;
	t = calloc(1, sizeof(*t) + (size_t)size * sizeof(t->entry[0]));
	if (!t)
		return -ENOMEM;
	t->size = size;
	for (int h = 0; old && h < old->size; h++)
		atomic_init(&t->entry[h], atomic_load_explicit(&old->entry[h],
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
	for (h = 0; t && h < t->size; h++)
		if (!atomic_load_explicit(&t->entry[h], memory_order_relaxed))
			break;
	if (!t || h == t->size)
		r = table_grow_locked(&t);
	if (!r)
		pm_rcu_assign_pointer(t->entry[h], copy);
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

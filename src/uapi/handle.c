/* SPDX-License-Identifier: MIT */
#include <pthread.h>
#include "gmem/gmem.h"
#include "kvm/vm.h"
#include "uapi/handle.h"
#include "vcpu/vcpu.h"

/* Readers (every call resolving a handle) share it; open and close take it exclusively. */
static pthread_rwlock_t table_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct pm_file *table;      /* table_lock */
static int table_size;             /* table_lock */

static void file_get(const struct pm_file *f)
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

static int table_grow_locked(void)
{
	int size = table_size ? table_size * 2 : 64;
	struct pm_file *t;

	if (size > PM_MAX_HANDLES)
		return -EMFILE;
	t = realloc(table, (size_t)size * sizeof(*t));
	if (!t)
		return -ENOMEM;
	memset(t + table_size, 0, (size_t)(size - table_size) * sizeof(*t));
	table = t;
	table_size = size;
	return 0;
}

int pm_handle_install(const struct pm_file *f)
{
	int h, r = 0;

	pthread_rwlock_wrlock(&table_lock);
	for (h = 0; h < table_size && table[h].kind != PM_HANDLE_NONE; h++)
		;
	if (h == table_size)
		r = table_grow_locked();
	if (!r)
		table[h] = *f;
	pthread_rwlock_unlock(&table_lock);
	return r ? r : h;
}

int pm_handle_get(int handle, struct pm_file *f)
{
	int r = -EBADF;

	pthread_rwlock_rdlock(&table_lock);
	if (handle >= 0 && handle < table_size && table[handle].kind != PM_HANDLE_NONE) {
		*f = table[handle];
		file_get(f);
		r = 0;
	}
	pthread_rwlock_unlock(&table_lock);
	return r;
}

int pm_handle_close(int handle)
{
	struct pm_file f = { 0 };

	pthread_rwlock_wrlock(&table_lock);
	if (handle >= 0 && handle < table_size) {
		f = table[handle];
		table[handle].kind = PM_HANDLE_NONE;
		table[handle].obj = NULL;
	}
	pthread_rwlock_unlock(&table_lock);
	if (f.kind == PM_HANDLE_NONE)
		return -EBADF;
	pm_file_put(&f);
	return 0;
}

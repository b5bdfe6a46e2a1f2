/* SPDX-License-Identifier: MIT */
/*
 * The handle table: privmem's file descriptors. A handle names an object of
 * one kind (the system, a VM, a vCPU, a guest_memfd) and holds one
 * reference on it (a vCPU handle references the vCPU's VM). Handles are
 * the lowest free small integers, like file descriptors.
 *
 * Locking: lookups are lock-free (RCU: they write no shared line except
 * the object's refcount); install and close serialise on table_lock
 * (handle.c). pm_handle_get() takes a reference on the object inside its
 * read-side section, and close drops the table's reference only after a
 * grace period, so a concurrent close cannot free the object under a
 * running call. Close must not be called inside a read-side section.
 */
#ifndef PM_UAPI_HANDLE_H
#define PM_UAPI_HANDLE_H

#include "lib/common.h"

enum pm_handle_kind {
	PM_HANDLE_NONE,
	PM_HANDLE_SYSTEM,
	PM_HANDLE_VM,
	PM_HANDLE_VCPU,
	PM_HANDLE_GMEM,
	PM_HANDLE_NR_KINDS,
};

struct pm_file {
	enum pm_handle_kind kind;
	void *obj;              /* NULL, pm_vm, pm_vcpu, pm_gmem */
};

#define PM_MAX_HANDLES (1 << 20)

/* Installs f (whose reference passes to the table): handle or -EMFILE/-ENOMEM. */
int pm_handle_install(const struct pm_file *f);
/* Looks up a handle and takes a reference: 0 or -EBADF. */
int pm_handle_get(int handle, struct pm_file *f);
/* Drops a reference taken by pm_handle_get (or owned by the caller). */
void pm_file_put(const struct pm_file *f);
/* Closes a handle: 0 or -EBADF. */
int pm_handle_close(int handle);

#endif

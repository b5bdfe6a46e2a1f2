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
 * running call. Short calls pin the handle instead of taking a reference
 * (pm_handle_pin: a big-reader lock, writing only the CPU's slot), and
 * close waits for the pinned calls inside. Close must not be called inside
 * a read-side section or a pinned call.
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
/* Looks up a handle for a call that returns soon, without a reference:
 * the object stays alive until pm_handle_unpin(slot), and a close of the
 * handle waits for it. 0 or -EBADF. Must not be held across anything that
 * may block indefinitely (take a reference with pm_file_get instead), nor
 * across pm_handle_close. */
int pm_handle_pin(int handle, struct pm_file *f, unsigned int *slot);
void pm_handle_unpin(unsigned int slot);
/* Takes a further reference on f's object. */
void pm_file_get(const struct pm_file *f);
/* Drops a reference taken by pm_handle_get (or owned by the caller). */
void pm_file_put(const struct pm_file *f);
/* Closes a handle: 0 or -EBADF. */
int pm_handle_close(int handle);

#endif

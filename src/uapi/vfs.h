/* SPDX-License-Identifier: MIT */
/*
 * What the VFS does for every file before the file's own operation runs
 * (Linux's vfs_fallocate() and the like), so that each kind of privmem file
 * sees a call only after the checks, and with the errno, that Linux makes
 * for all files. The facade (kvm_api.c) calls these, then the kind's file
 * operation (guest_memfd's fallocate: gmem/gmem.h). No state, no locks.
 */
#ifndef PM_UAPI_VFS_H
#define PM_UAPI_VFS_H

#include "lib/common.h"

/* The checks vfs_fallocate() makes for every file, in its order: 0, or
 * -EINVAL / -EOPNOTSUPP / -ENODEV / -EFBIG. `regular` is false for files
 * that are not regular (everything but guest_memfd). */
int pm_vfs_fallocate_check(int mode, int64_t offset, int64_t len, bool regular);

#endif

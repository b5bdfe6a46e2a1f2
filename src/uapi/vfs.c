/* SPDX-License-Identifier: MIT */
/*
 * The VFS's checks for every file (vfs.h). Stateless.
 */
#include <linux/falloc.h>
#include "uapi/vfs.h"

#define PM_FALLOC_MODE_MASK (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_COLLAPSE_RANGE | \
			     FALLOC_FL_ZERO_RANGE | FALLOC_FL_INSERT_RANGE | \
			     FALLOC_FL_UNSHARE_RANGE)

/* The checks vfs_fallocate() makes before any file system sees the call,
 * in its order. Those that cannot fail on a privmem file are left out:
 * every handle is open for writing (EBADF), none is append-only, immutable
 * or a swap file (EPERM, ETXTBSY), a FIFO (ESPIPE) or a directory (EISDIR),
 * and no security module or fanotify listener watches them. The last
 * check, a file without fallocate (EOPNOTSUPP), is the facade's: its ops
 * table knows which kinds have one. */
int pm_vfs_fallocate_check(int mode, int64_t offset, int64_t len, bool regular)
{
	if (offset < 0 || len <= 0)
		return -EINVAL;
	if (mode & ~(PM_FALLOC_MODE_MASK | FALLOC_FL_KEEP_SIZE))
		return -EOPNOTSUPP;
	switch (mode & PM_FALLOC_MODE_MASK) {
	case 0:
	case FALLOC_FL_UNSHARE_RANGE:
	case FALLOC_FL_ZERO_RANGE:
		break;
	case FALLOC_FL_PUNCH_HOLE:
		if (!(mode & FALLOC_FL_KEEP_SIZE))
			return -EOPNOTSUPP;
		break;
	case FALLOC_FL_COLLAPSE_RANGE:
	case FALLOC_FL_INSERT_RANGE:
		if (mode & FALLOC_FL_KEEP_SIZE)
			return -EOPNOTSUPP;
		break;
	default:
		return -EOPNOTSUPP;
	}
	if (!regular)           /* not a regular file (/dev/kvm, anon inodes) */
		return -ENODEV;
	if ((uint64_t)offset + (uint64_t)len > INT64_MAX)  /* past the largest file size */
		return -EFBIG;
	return 0;
}

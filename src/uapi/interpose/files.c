/* SPDX-License-Identifier: MIT */
/*
 * The interposed file calls: opening /dev/kvm (open, open64, openat,
 * openat64, the fortified __open*_2, fopen, fopen64), descriptor life
 * (close, close_range, dup, dup2, dup3, fcntl F_DUPFD*), and the calls
 * that act on a KVM file (fstat, fstatat, statx, fallocate, ftruncate,
 * read, write, pread, pwrite, each with its 64-bit name). A descriptor that
 * is not one of ours goes to libc untouched.
 *
 * Each call on one of ours holds a reference on the file for its duration
 * (ipose_fd_get), so a concurrent close cannot close the handle under it.
 * Dead files (fork, exec: interpose.h) never reach privmem.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <privmem/privmem.h>
#include "uapi/interpose/interpose.h"

/* ---- paths ---- */

/* Lexical normalisation of an absolute path into out ("//", "." and ".."
 * resolved, no symlinks): false if it does not fit. */
static bool path_normalize(const char *in, char *out, size_t size)
{
	size_t n = 0;

	while (*in) {
		const char *c = in, *end;
		size_t len;

		while (*c == '/')
			c++;
		end = strchrnul(c, '/');
		len = (size_t)(end - c);
		in = end;
		if (len == 0 || (len == 1 && c[0] == '.'))
			continue;
		if (len == 2 && c[0] == '.' && c[1] == '.') {
			while (n > 0 && out[n - 1] != '/')
				n--;
			if (n > 0)
				n--;
			continue;
		}
		if (n + 1 + len + 1 > size)
			return false;
		out[n++] = '/';
		memcpy(out + n, c, len);
		n += len;
	}
	if (n == 0)
		out[n++] = '/';
	out[n] = '\0';
	return true;
}

bool ipose_path_absolute(int dirfd, const char *path, char *out, size_t size)
{
	char buf[PATH_MAX * 2], link[64];
	ssize_t n;

	if (path[0] == '/')
		return path_normalize(path, out, size);
	if (dirfd == AT_FDCWD) {
		if (!getcwd(buf, PATH_MAX))
			return false;
		n = (ssize_t)strlen(buf);
	} else {
		snprintf(link, sizeof(link), "/proc/self/fd/%d", dirfd);
		n = readlink(link, buf, PATH_MAX - 1);
		if (n <= 0 || buf[0] != '/')
			return false;
	}
	if ((size_t)n + 1 + strlen(path) + 1 > sizeof(buf))
		return false;
	buf[n] = '/';
	strcpy(buf + n + 1, path);
	return path_normalize(buf, out, size);
}

/* Cheap first: the last component must be "kvm". */
bool ipose_path_is_kvm(int dirfd, const char *path)
{
	const char *base = strrchr(path, '/');
	char abs[PATH_MAX];

	base = base ? base + 1 : path;
	if (strcmp(base, "kvm"))
		return false;
	return ipose_path_absolute(dirfd, path, abs, sizeof(abs)) && !strcmp(abs, "/dev/kvm");
}

/* ---- open ---- */

int ipose_open_kvm(int flags)
{
	int accmode = flags & O_ACCMODE, handle = -1;

	if (flags & O_DIRECTORY) {
		errno = ENOTDIR;
		return -1;
	}
	if ((flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL)) {
		errno = EEXIST;
		return -1;
	}
	/* A forked child never calls into privmem (interpose.h): its /dev/kvm
	 * answers what needs no state. */
	if (!atomic_load(&ipose_forked)) {
		handle = IPOSE_CALL(pm_kvm_open());
		if (handle < 0)
			return -1;
	}
	return ipose_fd_install(handle, IPOSE_SYS, accmode, flags & O_CLOEXEC);
}

static int open_common(int dirfd, const char *path, int flags, mode_t mode)
{
	int fd;

	if (!ipose_inside && path && !(flags & O_PATH)) {
		if (ipose_path_is_kvm(dirfd, path))
			return ipose_open_kvm(flags);
		fd = ipose_sysfs_open(dirfd, path, flags);
		if (fd != -2)
			return fd;
	}
	fd = LIBC(openat)(dirfd, path, flags, mode);
	if (fd >= 0 && !ipose_inside)
		ipose_fd_forget_stale(fd);
	return fd;
}

static mode_t open_mode(int flags, va_list ap)
{
	return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? va_arg(ap, mode_t) : 0;
}

int open(const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = open_mode(flags, ap);
	va_end(ap);
	return open_common(AT_FDCWD, path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = open_mode(flags, ap);
	va_end(ap);
	return open_common(AT_FDCWD, path, flags | O_LARGEFILE, mode);
}

int openat(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = open_mode(flags, ap);
	va_end(ap);
	return open_common(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = open_mode(flags, ap);
	va_end(ap);
	return open_common(dirfd, path, flags | O_LARGEFILE, mode);
}

/* _FORTIFY_SOURCE's entry points (no mode: O_CREAT is refused at compile
 * time without one). */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);

int __open_2(const char *path, int flags) { return open_common(AT_FDCWD, path, flags, 0); }
int __open64_2(const char *path, int flags)
{
	return open_common(AT_FDCWD, path, flags | O_LARGEFILE, 0);
}
int __openat_2(int dirfd, const char *path, int flags) { return open_common(dirfd, path, flags, 0); }
int __openat64_2(int dirfd, const char *path, int flags)
{
	return open_common(dirfd, path, flags | O_LARGEFILE, 0);
}

/* fopen's mode string as open flags (glibc's rules: r, w, a, then '+',
 * 'e' for O_CLOEXEC, 'x' for O_EXCL; other letters ignored). */
static int fopen_flags(const char *mode)
{
	int flags;

	switch (mode[0]) {
	case 'r': flags = O_RDONLY; break;
	case 'w': flags = O_WRONLY | O_CREAT | O_TRUNC; break;
	case 'a': flags = O_WRONLY | O_CREAT | O_APPEND; break;
	default: return -1;
	}
	for (const char *m = mode + 1; *m; m++) {
		if (*m == '+')
			flags = (flags & ~O_ACCMODE) | O_RDWR;
		else if (*m == 'e')
			flags |= O_CLOEXEC;
		else if (*m == 'x')
			flags |= O_EXCL;
	}
	return flags;
}

static FILE *fopen_common(const char *path, const char *mode, FILE *(*libc_fopen)(const char *, const char *))
{
	int flags, fd;
	FILE *fp;

	if (ipose_inside || !path || !mode)
		return libc_fopen(path, mode);
	flags = fopen_flags(mode);
	if (flags < 0)
		return libc_fopen(path, mode);
	if (ipose_path_is_kvm(AT_FDCWD, path))
		fd = ipose_open_kvm(flags);
	else if ((fd = ipose_sysfs_open(AT_FDCWD, path, flags)) == -2)
		return libc_fopen(path, mode);
	if (fd < 0)
		return NULL;
	fp = fdopen(fd, mode);
	if (!fp) {
		int err = errno;

		close(fd);
		errno = err;
	}
	return fp;
}

FILE *fopen(const char *path, const char *mode) { return fopen_common(path, mode, LIBC(fopen)); }
FILE *fopen64(const char *path, const char *mode) { return fopen_common(path, mode, LIBC(fopen64)); }

/* ---- descriptors ---- */

int close(int fd)
{
	if (ipose_inside || !ipose_fd_maybe_ours(fd))
		return LIBC(close)(fd);
	return ipose_fd_close(fd);
}

int close_range(unsigned int first, unsigned int last, int flags)
{
	if (ipose_inside)
		return LIBC(close_range)(first, last, flags);
	return ipose_fd_close_range(first, last, flags);
}

int dup(int fd)
{
	if (ipose_inside || !ipose_fd_maybe_ours(fd))
		return LIBC(dup)(fd);
	return ipose_fd_dup(0, fd, -1, 0);
}

int dup2(int oldfd, int newfd)
{
	if (ipose_inside || (!ipose_fd_maybe_ours(oldfd) && !ipose_fd_maybe_ours(newfd)))
		return LIBC(dup2)(oldfd, newfd);
	return ipose_fd_dup(1, oldfd, newfd, 0);
}

int dup3(int oldfd, int newfd, int flags)
{
	if (ipose_inside || (!ipose_fd_maybe_ours(oldfd) && !ipose_fd_maybe_ours(newfd)))
		return LIBC(dup3)(oldfd, newfd, flags);
	return ipose_fd_dup(2, oldfd, newfd, flags);
}

static int fcntl_common(int fd, int cmd, void *arg)
{
	struct ipose_file *f;
	int r;

	if (ipose_inside || !ipose_fd_maybe_ours(fd))
		return LIBC(fcntl)(fd, cmd, arg);
	if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)
		return ipose_fd_dup(cmd == F_DUPFD ? 3 : 4, fd, (int)(long)arg, 0);
	r = LIBC(fcntl)(fd, cmd, arg);
	if (cmd == F_GETFL && r >= 0 && (f = ipose_fd_get(fd))) {
		/* The placeholder is a memfd (always O_RDWR): the mode the
		 * program opened /dev/kvm with. */
		r = (r & ~O_ACCMODE) | f->accmode;
		ipose_file_put(f);
	}
	return r;
}

int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	return fcntl_common(fd, cmd, arg);
}

int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	return fcntl_common(fd, cmd, arg);
}

/* ---- calls on a KVM file ---- */

/* What Linux shows for a KVM file, without privmem (dead files). */
static void dead_fstat(const struct ipose_file *f, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_nlink = 1;
	st->st_blksize = 4096;
	switch (f->kind) {
	case IPOSE_SYS:
		st->st_mode = S_IFCHR | 0660;
		st->st_rdev = makedev(10, 232);
		break;
	case IPOSE_GMEM:
		st->st_mode = S_IFREG | 0600;
		break;
	default:
		st->st_mode = 0600;
		st->st_ino = 1;
		break;
	}
}

/* st is the program's: copied out as the kernel does (EFAULT where the
 * program cannot write). */
static int file_fstat(struct ipose_file *f, struct stat *st)
{
	struct stat kst;

	if (!f->dead)
		return IPOSE_CALL(pm_kvm_fstat(f->handle, st));
	dead_fstat(f, &kst);
	if (pm_copy_to_user(st, &kst, sizeof(kst))) {
		errno = EFAULT;
		return -1;
	}
	return 0;
}

/* Runs `call` on fd's file if it is ours (with a reference), else `libc`. */
#define ON_FILE(fd, call, libc) ({                                   \
		struct ipose_file *f_ = ipose_inside || !ipose_fd_maybe_ours(fd) ? \
					NULL : ipose_fd_get(fd);     \
		__typeof__(libc) r_;                                 \
		if (f_) {                                            \
			struct ipose_file *f = f_;                   \
			r_ = (call);                                 \
			ipose_file_put(f_);                          \
		} else {                                             \
			r_ = (libc);                                 \
		}                                                    \
		r_; })

int fstat(int fd, struct stat *st) { return ON_FILE(fd, file_fstat(f, st), LIBC(fstat)(fd, st)); }
int fstat64(int fd, struct stat64 *st)
{
	return ON_FILE(fd, file_fstat(f, (struct stat *)st), LIBC(fstat)(fd, (struct stat *)st));
}

/* glibc's pre-2.33 entry points (the version argument is _STAT_VER,
 * whose struct stat is the one above on x86-64). */
int __fxstat(int ver, int fd, struct stat *st);
int __fxstat64(int ver, int fd, struct stat64 *st);
int __fxstatat(int ver, int dirfd, const char *path, struct stat *st, int flags);
int __fxstatat64(int ver, int dirfd, const char *path, struct stat64 *st, int flags);

static int libc_fxstat(int ver, int fd, struct stat *st)
{
	if (!LIBC(fxstat)) {
		errno = ENOSYS;
		return -1;
	}
	return ipose_libc.fxstat(ver, fd, st);
}

static int libc_fxstatat(int ver, int dirfd, const char *path, struct stat *st, int flags)
{
	if (!LIBC(fxstatat)) {
		errno = ENOSYS;
		return -1;
	}
	return ipose_libc.fxstatat(ver, dirfd, path, st, flags);
}

int __fxstat(int ver, int fd, struct stat *st)
{
	return ON_FILE(fd, file_fstat(f, st), libc_fxstat(ver, fd, st));
}

int __fxstat64(int ver, int fd, struct stat64 *st) { return __fxstat(ver, fd, (struct stat *)st); }

static bool empty_path(const char *path, int flags)
{
	return (flags & AT_EMPTY_PATH) && path && !path[0];
}

int fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
	if (!empty_path(path, flags))
		return LIBC(fstatat)(dirfd, path, st, flags);
	return ON_FILE(dirfd, file_fstat(f, st), LIBC(fstatat)(dirfd, path, st, flags));
}

int __fxstatat(int ver, int dirfd, const char *path, struct stat *st, int flags)
{
	if (!empty_path(path, flags))
		return libc_fxstatat(ver, dirfd, path, st, flags);
	return ON_FILE(dirfd, file_fstat(f, st), libc_fxstatat(ver, dirfd, path, st, flags));
}

int __fxstatat64(int ver, int dirfd, const char *path, struct stat64 *st, int flags)
{
	return __fxstatat(ver, dirfd, path, (struct stat *)st, flags);
}

int fstatat64(int dirfd, const char *path, struct stat64 *st, int flags)
{
	return fstatat(dirfd, path, (struct stat *)st, flags);
}

static int file_statx(struct ipose_file *f, unsigned int mask, struct statx *stx)
{
	struct statx kstx;
	struct stat st;

	if (file_fstat(f, &st))
		return -1;
	memset(&kstx, 0, sizeof(kstx));
	kstx.stx_mask = STATX_BASIC_STATS;
	kstx.stx_blksize = (__u32)st.st_blksize;
	kstx.stx_nlink = (__u32)st.st_nlink;
	kstx.stx_mode = (__u16)st.st_mode;
	kstx.stx_ino = st.st_ino;
	kstx.stx_size = (__u64)st.st_size;
	kstx.stx_blocks = (__u64)st.st_blocks;
	kstx.stx_rdev_major = major(st.st_rdev);
	kstx.stx_rdev_minor = minor(st.st_rdev);
	if (pm_copy_to_user(stx, &kstx, sizeof(kstx))) {
		errno = EFAULT;
		return -1;
	}
	return 0;
}

int statx(int dirfd, const char *path, int flags, unsigned int mask, struct statx *stx)
{
	if (!empty_path(path, flags))
		return LIBC(statx)(dirfd, path, flags, mask, stx);
	return ON_FILE(dirfd, file_statx(f, mask, stx), LIBC(statx)(dirfd, path, flags, mask, stx));
}

static int file_fallocate(struct ipose_file *f, int mode, off_t off, off_t len)
{
	if (!f->dead)
		return IPOSE_CALL(pm_kvm_fallocate(f->handle, mode, off, len));
	/* vfs_fallocate: no fallocate on a character device or an anonymous
	 * inode; a dead guest_memfd's pages are another process's. */
	errno = f->kind == IPOSE_GMEM ? EIO : ENODEV;
	return -1;
}

int fallocate(int fd, int mode, off_t off, off_t len)
{
	return ON_FILE(fd, file_fallocate(f, mode, off, len), LIBC(fallocate)(fd, mode, off, len));
}

int fallocate64(int fd, int mode, off_t off, off_t len) { return fallocate(fd, mode, off, len); }

/* No KVM file can be truncated: /dev/kvm and the anonymous VM and vCPU
 * files are not regular files, and guest_memfd's setattr refuses sizes. */
static int file_ftruncate(const struct ipose_file *f)
{
	errno = EINVAL;
	return -1;
}

int ftruncate(int fd, off_t len) { return ON_FILE(fd, file_ftruncate(f), LIBC(ftruncate)(fd, len)); }
int ftruncate64(int fd, off_t len) { return ftruncate(fd, len); }

/* vfs_read/vfs_write check the open mode first (EBADF), then that the
 * file can be read at all (no KVM file can: EINVAL, privmem's answer). */
static ssize_t file_rw(struct ipose_file *f, bool write, void *buf, size_t count, off_t off,
		       bool positioned)
{
	int want = write ? O_WRONLY : O_RDONLY;

	if (positioned && off < 0) {
		errno = EINVAL;
		return -1;
	}
	if (f->accmode != O_RDWR && f->accmode != want) {
		errno = EBADF;
		return -1;
	}
	if (f->dead) {
		errno = EINVAL;
		return -1;
	}
	if (positioned)
		return write ? IPOSE_CALL(pm_kvm_pwrite(f->handle, buf, count, off))
			     : IPOSE_CALL(pm_kvm_pread(f->handle, buf, count, off));
	return write ? IPOSE_CALL(pm_kvm_write(f->handle, buf, count))
		     : IPOSE_CALL(pm_kvm_read(f->handle, buf, count));
}

ssize_t read(int fd, void *buf, size_t n)
{
	return ON_FILE(fd, file_rw(f, false, buf, n, 0, false), LIBC(read)(fd, buf, n));
}

ssize_t write(int fd, const void *buf, size_t n)
{
	return ON_FILE(fd, file_rw(f, true, (void *)buf, n, 0, false), LIBC(write)(fd, buf, n));
}

ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
	return ON_FILE(fd, file_rw(f, false, buf, n, off, true), LIBC(pread)(fd, buf, n, off));
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	return ON_FILE(fd, file_rw(f, true, (void *)buf, n, off, true), LIBC(pwrite)(fd, buf, n, off));
}

ssize_t pread64(int fd, void *buf, size_t n, off_t off) { return pread(fd, buf, n, off); }
ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) { return pwrite(fd, buf, n, off); }

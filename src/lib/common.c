/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <sys/uio.h>
#include <unistd.h>
#include "lib/common.h"

void pm_bug(const char *file, int line, const char *what)
{
	fprintf(stderr, "privmem: BUG at %s:%d: %s\n", file, line, what);
	fflush(stderr);
	abort();
}

void pm_fatal(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "privmem: fatal: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	abort();
}

int pm_copy_from_user(void *dst, const void *src, size_t n)
{
	struct iovec local = { .iov_base = dst, .iov_len = n };
	struct iovec remote = { .iov_base = (void *)(uintptr_t)src, .iov_len = n };

	if (!n)
		return 0;
	if (!src)
		return -EFAULT;
	/* The kernel copies, and fails instead of faulting where the address
	 * is not readable: a copy_from_user for a user-space library. */
	return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == (ssize_t)n ? 0 : -EFAULT;
}

int pm_copy_to_user(void *dst, const void *src, size_t n)
{
	struct iovec local = { .iov_base = (void *)(uintptr_t)src, .iov_len = n };
	struct iovec remote = { .iov_base = dst, .iov_len = n };

	if (!n)
		return 0;
	if (!dst)
		return -EFAULT;
	return process_vm_writev(getpid(), &local, 1, &remote, 1, 0) == (ssize_t)n ? 0 : -EFAULT;
}

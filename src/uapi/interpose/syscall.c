/* SPDX-License-Identifier: MIT */
/*
 * syscall(2): programs that make the system calls privmem serves through
 * libc's syscall() (KVM's selftests call mbind and get_mempolicy that way,
 * having no libnuma) reach the interposed functions; every other number
 * goes to libc's syscall() unchanged.
 *
 * libc's syscall() is resolved here on its own, with dlsym and no
 * pthread_once: libc.c's resolution itself may call syscall() (its
 * last-resort message), which must not wait for that resolution.
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>       /* syscall() prototype */
#include "uapi/interpose/interpose.h"

typedef long (*syscall_fn)(long, ...);
static _Atomic(syscall_fn) libc_syscall;

static syscall_fn real_syscall(void)
{
	syscall_fn fn = atomic_load_explicit(&libc_syscall, memory_order_acquire);

	if (!fn) {
		fn = (syscall_fn)dlsym(RTLD_NEXT, "syscall");
		atomic_store_explicit(&libc_syscall, fn, memory_order_release);
	}
	return fn;
}

/* Six arguments are always read, as libc's syscall() passes six to the
 * kernel whatever the number: the ones a caller did not pass are whatever
 * its registers and stack slots hold, which the kernel ignores. That read
 * is not a bug, so AddressSanitizer is told not to check it. */
#if defined(__clang__) || defined(__GNUC__)
#define NO_ASAN __attribute__((no_sanitize_address))
#else
#define NO_ASAN
#endif

NO_ASAN long syscall(long nr, ...)
{
	long a[6];
	va_list ap;

	va_start(ap, nr);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (!ipose_inside) {
		switch (nr) {
		case SYS_madvise:
			return madvise((void *)a[0], (size_t)a[1], (int)a[2]);
		case SYS_mbind:
			return ipose_mbind((void *)a[0], (unsigned long)a[1], (int)a[2],
					   (const unsigned long *)a[3], (unsigned long)a[4],
					   (unsigned int)a[5]);
		case SYS_get_mempolicy:
			return ipose_get_mempolicy((int *)a[0], (unsigned long *)a[1],
						   (unsigned long)a[2], (void *)a[3],
						   (unsigned long)a[4]);
		default:
			break;
		}
	}
	return real_syscall()(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

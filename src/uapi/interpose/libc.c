/* SPDX-License-Identifier: MIT */
/*
 * libc's own versions of the interposed functions, found with
 * dlsym(RTLD_NEXT) once. Any interposed function may be the first one
 * called (by another library's constructor, before ours ran), so each one
 * asks for this initialisation itself; pthread_once makes concurrent first
 * calls wait for one resolution. dlsym allocates with malloc, which is not
 * interposed, so it cannot recurse into this library.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "uapi/interpose/interpose.h"

struct ipose_libc ipose_libc;
__thread int ipose_inside;

static pthread_once_t libc_once = PTHREAD_ONCE_INIT;

static void *libc_sym(const char *name, const char *fallback)
{
	void *p = dlsym(RTLD_NEXT, name);

	if (!p && fallback)
		p = dlsym(RTLD_NEXT, fallback);
	if (!p) {
		static const char msg[] = "libprivmem-kvm: libc lacks a function it needs\n";

		/* write(2) through the kernel: the interposed write may be
		 * the missing one. */
		(void)!syscall(SYS_write, 2, msg, sizeof(msg) - 1);
		abort();
	}
	return p;
}

static void libc_resolve(void)
{
	struct ipose_libc *l = &ipose_libc;

	l->open = libc_sym("open", NULL);
	l->openat = libc_sym("openat", NULL);
	l->fopen = libc_sym("fopen", NULL);
	l->fopen64 = libc_sym("fopen64", "fopen");
	l->close = libc_sym("close", NULL);
	l->dup = libc_sym("dup", NULL);
	l->dup2 = libc_sym("dup2", NULL);
	l->dup3 = libc_sym("dup3", NULL);
	l->fcntl = libc_sym("fcntl64", "fcntl");
	l->ioctl = libc_sym("ioctl", NULL);
	l->mmap = libc_sym("mmap", NULL);
	l->munmap = libc_sym("munmap", NULL);
	l->madvise = libc_sym("madvise", NULL);
	l->fstat = libc_sym("fstat", NULL);
	l->fstatat = libc_sym("fstatat", NULL);
	l->statx = libc_sym("statx", NULL);
	l->fallocate = libc_sym("fallocate", NULL);
	l->ftruncate = libc_sym("ftruncate", NULL);
	l->read = libc_sym("read", NULL);
	l->write = libc_sym("write", NULL);
	l->pread = libc_sym("pread", NULL);
	l->pwrite = libc_sym("pwrite", NULL);
	l->close_range = libc_sym("close_range", NULL);
	l->fxstat = dlvsym(RTLD_NEXT, "__fxstat", "GLIBC_2.2.5");
	l->fxstatat = dlvsym(RTLD_NEXT, "__fxstatat", "GLIBC_2.4");
}

void ipose_libc_init(void)
{
	pthread_once(&libc_once, libc_resolve);
}

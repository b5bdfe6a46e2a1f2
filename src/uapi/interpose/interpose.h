/* SPDX-License-Identifier: MIT */
/*
 * The LD_PRELOAD interposer (build/libprivmem-kvm.so): Linux programs that
 * use KVM through open/ioctl/mmap run on privmem unmodified.
 *
 * Objects:
 *  - struct ipose_file: one open KVM file (what Linux calls a struct file):
 *    a privmem handle and its kind. Every descriptor that refers to it
 *    (dup, dup2, dup3, F_DUPFD), every mapping made from it and every call
 *    in flight holds one reference; the last put closes the handle
 *    (pm_kvm_close), as the last fput releases a KVM file.
 *  - the fd table (fdtable.c): descriptor number -> ipose_file. Every
 *    descriptor in it is a real kernel descriptor, a "placeholder" memfd
 *    named privmem-kvm:KIND:MODE that this library created, so numbers never
 *    collide with the program's own files and poll/close by number work.
 *  - mapping records (mmap.c): the ranges pm_kvm_mmap returned, for munmap
 *    and madvise; mbind and get_mempolicy (numa.c) go to privmem while any
 *    exists; syscall() (syscall.c) sends SYS_madvise, SYS_mbind and
 *    SYS_get_mempolicy to those, every other number to libc.
 *
 * Locks (all leaves with respect to privmem's own locks, which are only
 * taken inside pm_kvm_* calls made with none of these held, except that
 * table_lock is held around pm_kvm_open/close of placeholders' handles):
 *    table_lock (fdtable.c, mutex) > maps_lock (mmap.c, mutex)
 *  - table_lock: every change of the table, together with the system call
 *    that changes the descriptor (memfd_create, close, dup*), so the table
 *    and the kernel's descriptor table agree.
 *  - lookups take no lock: they load the entry inside a big-reader lock
 *    section (files_users) and take a reference if the count is not zero;
 *    a file is freed only after its last put and a pm_brlock_sync.
 *
 * Recursion: privmem's own code calls mmap/close/fstat... which resolve to
 * this library too. ipose_inside (thread-local) is set around every call
 * into privmem; while it is set every interposed function goes straight to
 * libc.
 *
 * fork: the child's privmem state is a copy that shares the frame pool (a
 * MAP_SHARED memfd) with the parent, so the child never calls into privmem:
 * every KVM descriptor it inherited is dead (VM and vCPU ioctls: EIO, as
 * KVM answers a process whose mm is not the VM's), KVM_CREATE_VM there is
 * EIO, closing only drops the placeholder. exec: placeholders opened with
 * O_CLOEXEC vanish; the others are found at start-up (their memfd name):
 * /dev/kvm works again, VM/vCPU/guest_memfd descriptors are dead.
 */
#ifndef PM_UAPI_INTERPOSE_H
#define PM_UAPI_INTERPOSE_H

#include <dirent.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/types.h>
#include "lib/common.h"

enum ipose_kind {
	IPOSE_SYS,      /* /dev/kvm */
	IPOSE_VM,
	IPOSE_VCPU,
	IPOSE_GMEM,
	IPOSE_NR_KINDS,
};

struct ipose_file {
	int handle;             /* privmem handle; immutable; -1 if dead */
	enum ipose_kind kind;   /* immutable */
	int accmode;            /* O_RDONLY, O_WRONLY or O_RDWR; immutable */
	bool dead;              /* owned by another process (fork, exec); set once,
	                         * under table_lock, never cleared */
	atomic_long refs;       /* descriptors + mappings + calls in flight */
};

/* ---- libc (libc.c) ---- */
struct ipose_libc {
	int (*open)(const char *, int, ...);
	int (*openat)(int, const char *, int, ...);
	FILE *(*fopen)(const char *, const char *);
	FILE *(*fopen64)(const char *, const char *);
	int (*close)(int);
	int (*dup)(int);
	int (*dup2)(int, int);
	int (*dup3)(int, int, int);
	int (*fcntl)(int, int, ...);
	int (*ioctl)(int, unsigned long, ...);
	void *(*mmap)(void *, size_t, int, int, int, off_t);
	int (*munmap)(void *, size_t);
	int (*madvise)(void *, size_t, int);
	int (*fstat)(int, struct stat *);
	int (*fstatat)(int, const char *, struct stat *, int);
	int (*statx)(int, const char *, int, unsigned int, struct statx *);
	int (*fallocate)(int, int, off_t, off_t);
	int (*ftruncate)(int, off_t);
	ssize_t (*read)(int, void *, size_t);
	ssize_t (*write)(int, const void *, size_t);
	ssize_t (*pread)(int, void *, size_t, off_t);
	ssize_t (*pwrite)(int, const void *, size_t, off_t);
	int (*close_range)(unsigned int, unsigned int, int);
	/* glibc's old stat entry points (compat symbols since 2.33, still
	 * called by older binaries and by sanitizer runtimes' fstat); NULL if
	 * this libc has none. */
	int (*fxstat)(int, int, struct stat *);
	int (*fxstatat)(int, int, const char *, struct stat *, int);
};
extern struct ipose_libc ipose_libc;
/* Resolves libc's functions once (callable before constructors ran). */
void ipose_libc_init(void);
#define LIBC(fn) (ipose_libc_init(), ipose_libc.fn)

/* Set while this thread is inside privmem: interposed calls go to libc. */
extern __thread int ipose_inside;
#define IPOSE_CALL(expr) ({ __typeof__(expr) r__; ipose_inside++; r__ = (expr); ipose_inside--; r__; })

/* ---- the fd table (fdtable.c) ---- */
/* Cheap test: is fd (possibly) one of ours? No lock, no reference. */
bool ipose_fd_maybe_ours(int fd);
/* The file behind fd with a reference, or NULL (not ours, or closing). */
struct ipose_file *ipose_fd_get(int fd);
void ipose_file_get(struct ipose_file *f);
void ipose_file_put(struct ipose_file *f);
/* Wraps a fresh privmem handle (whose ownership passes) in a placeholder
 * descriptor: the fd, or -1 with errno (the handle is closed then). */
int ipose_fd_install(int handle, enum ipose_kind kind, int accmode, bool cloexec);
int ipose_fd_close(int fd);
/* dup family: `how` is 0 (dup), 1 (dup2), 2 (dup3), 3 (F_DUPFD), 4 (F_DUPFD_CLOEXEC). */
int ipose_fd_dup(int how, int oldfd, int newfd, int flags);
int ipose_fd_close_range(unsigned int first, unsigned int last, int flags);
/* A descriptor the kernel gave to the program for a foreign file: an entry
 * still at that number was closed behind our back (raw syscall). */
void ipose_fd_forget_stale(int fd);
/* true in a forked child (until exec). */
extern atomic_bool ipose_forked;

/* ---- KVM files (files.c) ---- */
/* The absolute, lexically normalised form of (dirfd, path): false if it
 * cannot be had (no cwd, too long). */
bool ipose_path_absolute(int dirfd, const char *path, char *out, size_t size);
bool ipose_path_is_kvm(int dirfd, const char *path);
int ipose_open_kvm(int flags);

/* ---- sysfs (sysfs.c) ---- */
/* For a module parameter path privmem answers: an fd (a memfd holding the
 * value), or -1 with errno (ENOENT for parameters KVM would not have,
 * EACCES for writes). Returns -2 for any other path. */
int ipose_sysfs_open(int dirfd, const char *path, int flags);

/* ---- mappings (mmap.c) ---- */
/* Drops privmem's mappings in [addr, addr+len) (whole or split), as the
 * kernel does before MAP_FIXED or munmap; the rest of the range is left to
 * the caller. */
void ipose_maps_unmap_range(void *addr, size_t len);
bool ipose_maps_any(void);

/* ---- NUMA policy (numa.c) ----
 * mbind and get_mempolicy (libnuma's names and prototypes; also reached
 * from syscall()). */
long ipose_mbind(void *addr, unsigned long len, int mode, const unsigned long *nmask,
		 unsigned long maxnode, unsigned int flags);
long ipose_get_mempolicy(int *mode, unsigned long *nmask, unsigned long maxnode, void *addr,
			 unsigned long flags);
long mbind(void *addr, unsigned long len, int mode, const unsigned long *nmask,
	   unsigned long maxnode, unsigned int flags);
long get_mempolicy(int *mode, unsigned long *nmask, unsigned long maxnode, void *addr,
		   unsigned long flags);

#endif

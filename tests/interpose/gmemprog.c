/* SPDX-License-Identifier: MIT */
/*
 * A program written for Linux KVM's guest_memfd of 2025-2026, NOT linked
 * with privmem (only its headers, for KVM's constants): run by
 * tests/test_interpose.c under `privmem exec`, it checks with plain system
 * calls (madvise, write, pwrite, mbind through syscall(2), get_mempolicy)
 * that the interposer gives it Linux's answers on guest_memfd descriptors
 * and mappings. One scenario per argument; prints "ok" and exits 0, or
 * prints what failed and exits 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <privmem/privmem.h>

#define MB (1UL << 20)
#define PAGE 4096UL

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

#define CHECK(cond) do {                                                     \
		if (!(cond)) {                                               \
			printf("FAIL %s:%d: %s (errno %d %s)\n", __FILE__, __LINE__, \
			       #cond, errno, strerror(errno));               \
			exit(1);                                             \
		}                                                            \
	} while (0)
#define FAILS(call, e) do {                                                  \
		errno = 0;                                                   \
		long r_ = (long)(call);                                      \
		if (r_ != -1 || errno != (e)) {                              \
			printf("FAIL %s:%d: %s = %ld errno %d (%s), want -1 errno %d (%s)\n", \
			       __FILE__, __LINE__, #call, r_, errno, strerror(errno), \
			       (e), strerror(e));                            \
			exit(1);                                             \
		}                                                            \
	} while (0)

static int open_kvm(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	CHECK(fd >= 0);
	return fd;
}

static int create_vm(int kvm, unsigned long type)
{
	int vm = ioctl(kvm, KVM_CREATE_VM, type);

	CHECK(vm >= 0);
	return vm;
}

static int create_gmem(int vm, uint64_t size, uint64_t flags)
{
	struct kvm_create_guest_memfd g = { .size = size, .flags = flags };
	int fd = ioctl(vm, KVM_CREATE_GUEST_MEMFD, &g);

	CHECK(fd >= 0);
	return fd;
}

static uint64_t file_pages(int gmem)
{
	struct stat st;

	CHECK(fstat(gmem, &st) == 0);
	return (uint64_t)st.st_blocks * 512 / PAGE;
}

/* ---- scenarios ---- */

/* upstream guest_memfd_test's test_collapse, on a default and a
 * software-protected VM: MADV_COLLAPSE is EINVAL, MADV_HUGEPAGE works,
 * through libc's madvise and the raw system call. */
static void s_madvise(void)
{
	static const unsigned long types[] = { KVM_X86_DEFAULT_VM, KVM_X86_SW_PROTECTED_VM };
	int kvm = open_kvm();

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		uint64_t flags = GUEST_MEMFD_FLAG_MMAP |
				 (types[i] == KVM_X86_DEFAULT_VM ? GUEST_MEMFD_FLAG_INIT_SHARED : 0);
		int vm = create_vm(kvm, types[i]), g = create_gmem(vm, 4 * MB, flags);
		char *p = mmap(NULL, 4 * MB, PROT_READ | PROT_WRITE, MAP_SHARED, g, 0);

		CHECK(p != MAP_FAILED);
		FAILS(madvise(p, 4 * MB, MADV_COLLAPSE), EINVAL);
		FAILS(syscall(SYS_madvise, p, 2 * MB, MADV_COLLAPSE), EINVAL);
		CHECK(madvise(p, 4 * MB, MADV_HUGEPAGE) == 0);
		CHECK(syscall(SYS_madvise, p, 4 * MB, MADV_NOHUGEPAGE) == 0);
		if (flags & GUEST_MEMFD_FLAG_INIT_SHARED) {
			p[0] = 1;
			CHECK(syscall(SYS_madvise, p, PAGE, MADV_REMOVE) == 0);   /* punches */
			CHECK(p[0] == 0);
		} else {
			CHECK(fallocate(g, FALLOC_FL_KEEP_SIZE, 0, 2 * MB) == 0);
			CHECK(file_pages(g) == 512);
			CHECK(madvise(p, 2 * MB, MADV_REMOVE) == 0);            /* punches */
			CHECK(file_pages(g) == 0);
		}
		CHECK(munmap(p, 4 * MB) == 0);
		close(g);
		close(vm);
	}
	close(kvm);
}

/* write() and pwrite() populate a guest_memfd (the posted write() series):
 * bytes land where the mapping shows them; Linux's errno otherwise. */
static void s_write(void)
{
	int kvm = open_kvm(), vm = create_vm(kvm, KVM_X86_DEFAULT_VM), sw, g, p;
	char buf[3 * PAGE], *m;

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (char)(i * 3 + 1);
	g = create_gmem(vm, 4 * PAGE, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED);
	m = mmap(NULL, 4 * PAGE, PROT_READ, MAP_SHARED, g, 0);
	CHECK(m != MAP_FAILED);
	CHECK(pwrite(g, buf, 2 * PAGE, PAGE) == (ssize_t)(2 * PAGE));
	CHECK(memcmp(m + PAGE, buf, 2 * PAGE) == 0);
	CHECK(write(g, buf + 5, 10) == 10 && write(g, buf, 10) == 10);   /* from position 0 */
	CHECK(memcmp(m, buf + 5, 10) == 0 && memcmp(m + 10, buf, 10) == 0);
	CHECK(pwrite(g, buf, 2 * PAGE, 3 * PAGE) == (ssize_t)PAGE);      /* short at the end */
	FAILS(pwrite(g, buf, 1, 4 * PAGE), ENOSPC);
	FAILS(pwrite(g, buf, 1, -1), EINVAL);
	{
		char *volatile nowhere = NULL;

		FAILS(pwrite(g, nowhere, 1, 0), EFAULT);
	}
	FAILS(read(g, buf, 1), EINVAL);
	CHECK(munmap(m, 4 * PAGE) == 0);
	close(g);
	close(vm);
	vm = create_vm(kvm, KVM_X86_SW_PROTECTED_VM);
	sw = create_gmem(vm, 4 * PAGE, GUEST_MEMFD_FLAG_MMAP);
	FAILS(pwrite(sw, buf, 8, 0), EACCES);                          /* private pages */
	p = create_gmem(vm, 4 * PAGE, 0);
	FAILS(write(p, buf, 8), EINVAL);                               /* no MMAP: no write */
	close(p);
	close(sw);
	close(vm);
	close(kvm);
}

/* Linux 6.19's NUMA policy on guest_memfd, as its selftests set it: the raw
 * mbind and get_mempolicy system calls on a mapping (no libnuma). Run with
 * PRIVMEM_POOL_NODES=4 and a 64M pool: nodes of 16M. */
#define MPOL_DEFAULT    0
#define MPOL_BIND       2
#define MPOL_INTERLEAVE 3
#define MPOL_F_NODE     (1 << 0)
#define MPOL_F_ADDR     (1 << 1)

static void s_mbind(void)
{
	int kvm = open_kvm(), vm = create_vm(kvm, KVM_X86_SW_PROTECTED_VM), node, mode;
	int g = create_gmem(vm, 4 * MB, GUEST_MEMFD_FLAG_MMAP);
	unsigned long mask = 1UL << 3;
	struct pm_pool_stats st;
	struct pm_gmem_file_stats fs;
	char *p = mmap(NULL, 4 * MB, PROT_READ | PROT_WRITE, MAP_SHARED, g, 0);

	CHECK(p != MAP_FAILED);
	CHECK(ioctl(kvm, PM_KVM_GET_POOL_STATS, &st) == 0 && st.nr_nodes == 4);
	CHECK(syscall(SYS_mbind, p, 2 * MB, MPOL_BIND, &mask, 64, 0) == 0);
	mask = 1UL << 1 | 1UL << 2;
	CHECK(syscall(SYS_mbind, p + 2 * MB, 2 * MB, MPOL_INTERLEAVE, &mask, 64, 0) == 0);
	CHECK(fallocate(g, FALLOC_FL_KEEP_SIZE, 0, 4 * MB) == 0);
	CHECK(syscall(SYS_get_mempolicy, &node, NULL, 0, p + PAGE, MPOL_F_NODE | MPOL_F_ADDR) == 0);
	CHECK(node == 3);
	CHECK(syscall(SYS_get_mempolicy, &node, NULL, 0, p + 2 * MB, MPOL_F_NODE | MPOL_F_ADDR) == 0);
	CHECK(node == 1 || node == 2);
	CHECK(syscall(SYS_get_mempolicy, &mode, &mask, 65, p, MPOL_F_ADDR) == 0);
	CHECK(mode == MPOL_BIND && mask == 1UL << 3);
	CHECK(ioctl(g, PM_GUEST_MEMFD_GET_STATS, &fs) == 0);
	CHECK(fs.pages == 1024 && fs.node_pages[3] == 512 && fs.node_pages[1] + fs.node_pages[2] == 512);
	mask = 1UL << 9;                                         /* no such node */
	FAILS(syscall(SYS_mbind, p, 2 * MB, MPOL_BIND, &mask, 64, 0), EINVAL);
	FAILS(syscall(SYS_mbind, p, 2 * MB, 9, &mask, 64, 0), EINVAL);
	FAILS(syscall(SYS_mbind, p, 2 * MB, MPOL_DEFAULT, &mask, 64, 0), EINVAL);
	CHECK(munmap(p, 4 * MB) == 0);
	close(g);
	close(vm);
	close(kvm);
}

int main(int argc, char **argv)
{
	static const struct { const char *name; void (*fn)(void); } scenarios[] = {
		{ "madvise", s_madvise }, { "write", s_write }, { "mbind", s_mbind },
	};

	setvbuf(stdout, NULL, _IONBF, 0);
	for (size_t i = 0; argc == 2 && i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
		if (!strcmp(argv[1], scenarios[i].name)) {
			scenarios[i].fn();
			printf("ok\n");
			return 0;
		}
	}
	fprintf(stderr, "usage: gmemprog SCENARIO\n");
	return 2;
}

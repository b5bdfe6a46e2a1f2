/* SPDX-License-Identifier: MIT */
/*
 * mbind(2) and get_mempolicy(2) (libnuma's wrappers, and the raw system
 * calls through syscall.c): on guest_memfd mappings the policy is the
 * file's (pm_kvm_mbind, Linux 6.19's guest_memfd), and MPOL_F_ADDR reads
 * it back; everything else, or a process without KVM mappings, goes to
 * the kernel unchanged. The system call itself is made through syscall()
 * with ipose_inside set, so syscall.c passes it on.
 */
#include <sys/syscall.h>
#include <unistd.h>
#include <privmem/privmem.h>
#include "uapi/interpose/interpose.h"

long ipose_mbind(void *addr, unsigned long len, int mode, const unsigned long *nmask,
		 unsigned long maxnode, unsigned int flags)
{
	if (ipose_inside || !ipose_maps_any())
		return IPOSE_CALL(syscall(SYS_mbind, addr, len, mode, nmask, maxnode, flags));
	return IPOSE_CALL(pm_kvm_mbind(addr, len, mode, nmask, maxnode, flags));
}

long ipose_get_mempolicy(int *mode, unsigned long *nmask, unsigned long maxnode, void *addr,
			 unsigned long flags)
{
	if (ipose_inside || !ipose_maps_any())
		return IPOSE_CALL(syscall(SYS_get_mempolicy, mode, nmask, maxnode, addr, flags));
	return IPOSE_CALL(pm_kvm_get_mempolicy(mode, nmask, maxnode, addr, flags));
}

long mbind(void *addr, unsigned long len, int mode, const unsigned long *nmask,
	   unsigned long maxnode, unsigned int flags)
{
	return ipose_mbind(addr, len, mode, nmask, maxnode, flags);
}

long get_mempolicy(int *mode, unsigned long *nmask, unsigned long maxnode, void *addr,
		   unsigned long flags)
{
	return ipose_get_mempolicy(mode, nmask, maxnode, addr, flags);
}

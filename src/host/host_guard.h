/* SPDX-License-Identifier: MIT */
/*
 * Host access guards: the simulated host machine's hardware checks of host
 * accesses to frame contents (host_guard.c).
 *
 * Simulated hardware that can refuse the host a frame (pKVM's host stage-2,
 * SNP's RMP, the TDX module's PAMT) registers a guard; every host path that
 * reads or writes frames outside the guest (the pool's scrub on free and its
 * release of memory to the OS, guest_memfd population and mmap views, device
 * emulation through shared memory) calls pm_host_access() first.
 * access() returns 0 or -EFAULT (refused; the guard records the event: a
 * host stage-2 fault, an RMP violation). A refused scrub is fatal: the
 * library itself wrote a frame the hardware protects, where real hardware
 * would have crashed the host.
 *
 * Locking: guards are published under RCU and called inside a read-side
 * section, without any pool lock held (a guard takes the hardware's locks,
 * under which the hardware allocates frames from the pool).
 */
#ifndef PM_HOST_HOST_GUARD_H
#define PM_HOST_HOST_GUARD_H

#include "lib/common.h"

struct pm_host_guard {
	int (*access)(void *arg, pm_pfn_t pfn, uint64_t n, bool write);
	void *arg;
};
/* 0, or -EBUSY when 4 guards are registered already. */
int pm_host_guard_register(const struct pm_host_guard *g);
/* Waits until no call of g is in flight; call it without locks. */
void pm_host_guard_unregister(const struct pm_host_guard *g);
/* May the host access frames [pfn, pfn + n)? 0 or -EFAULT. */
int pm_host_access(pm_pfn_t pfn, uint64_t n, bool write);

#endif

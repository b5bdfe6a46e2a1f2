/* SPDX-License-Identifier: MIT */
/*
 * The host's abort on guest memory (host_abort.c): what a VMM's access to a
 * page it may not map gets when the simulated hardware injects an abort
 * into the host instead of the kernel raising SIGBUS.
 *
 * Upstream pKVM answers a host access to a protected guest's memory with an
 * abort injected by the hypervisor (SIGSEGV to an EL0 VMM), where Linux's
 * guest_memfd answers SIGBUS for a page the host may not map. privmem's
 * views fault with SIGBUS (userfaultfd's UFFD_FEATURE_SIGBUS, gmem_mmap.c);
 * a view whose model wants the abort (pm_model_ops.host_fault_sigsegv)
 * registers its range here, and the SIGBUS handler this file installs turns
 * a fault there into SIGSEGV (si_code SEGV_ACCERR, si_addr the address),
 * delivered to the thread that faulted. Every other SIGBUS goes to the
 * handler that was there before (or kills the process, as without privmem).
 *
 * The table of ranges is a fixed array of seqcount-protected slots: the
 * signal handler reads it without a lock; register/unregister write it
 * under ranges_lock (a leaf). The SIGBUS handler is (re)installed on every
 * registration if someone replaced it since, chaining to whatever it
 * replaces; a handler installed after the last registration replaces it
 * (that process then sees SIGBUS, as on the other models).
 */
#ifndef PM_HOST_HOST_ABORT_H
#define PM_HOST_HOST_ABORT_H

#include "lib/common.h"

#define PM_HOST_ABORT_MAX_RANGES 4096   /* views of such files at once, per process */

/* Faults in [addr, addr + len) are answered with SIGSEGV from now on:
 * 0 and *id (for unregister), or -ENOMEM when the table is full, or -errno
 * of sigaction. */
int pm_host_abort_register(const void *addr, size_t len, int *id);
/* Forgets range id (before its mapping goes). */
void pm_host_abort_unregister(int id);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * privmem/guest.h: guest code.
 *
 * privmem has no instruction set to emulate: guest code is a C function
 * that runs on a vCPU (as a coroutine on the thread that calls KVM_RUN) and
 * touches guest memory only through these calls, each of which goes through
 * the vCPU's TLB and the stage-2 MMU exactly as a hardware access goes
 * through EPT/NPT. A fault the MMU cannot resolve becomes an exit to the VMM
 * (KVM_EXIT_MEMORY_FAULT, KVM_EXIT_MMIO, ...); the next KVM_RUN resumes the
 * guest, which retries the access.
 *
 * Addresses are guest physical addresses as the guest issues them: on SNP
 * with the C-bit (bit 51) set for private memory, on TDX with the shared bit
 * (47, or 51 with 5-level paging) set for shared memory; on software-
 * protected and default VMs plain GPAs (private-ness comes from attributes).
 *
 * Guest code registers with the extension ioctl PM_KVM_SET_GUEST on a vCPU
 * handle; returning from the function is pm_guest_done().
 */
#ifndef PRIVMEM_GUEST_H
#define PRIVMEM_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <privmem/privmem.h>

#ifdef __cplusplus
extern "C" {
#endif

struct pm_guest;   /* the vCPU as guest code sees it */

struct pm_guest_entry {
	void (*fn)(struct pm_guest *g, void *arg);
	void *arg;
};

/* vCPU handle: set the guest code (before the first KVM_RUN; EBUSY after). */
#define PM_KVM_SET_GUEST _IOW(PMIO, 0x01, struct pm_guest_entry)

/* KVM_RUN returned 0 because the guest called the VMM (KVM's exit reasons
 * are below 64; this is privmem's). Read the call with pm_get_ucall(). */
#define PM_EXIT_UCALL 0x10000

enum {
	PM_UCALL_NONE = 0,   /* the last exit was not a ucall */
	PM_UCALL_SYNC = 1,   /* pm_guest_sync(): args[0] is its argument */
	PM_UCALL_DONE = 2,   /* the guest finished */
	PM_UCALL_ABORT = 3,  /* PM_GUEST_ASSERT failed: msg says where and what */
};

struct pm_ucall {
	uint64_t cmd;
	uint64_t args[4];
	char msg[256];
};

/* The ucall of vCPU handle `vcpu`'s last exit (copied to *uc if uc != NULL). */
uint64_t pm_get_ucall(int vcpu, struct pm_ucall *uc);

/* ---- memory ----
 * read64/write64 on an 8-byte aligned gpa and cmpxchg64 are single atomic
 * accesses with x86's ordering (loads acquire, stores release); the other
 * calls copy bytes. */
void pm_guest_read(struct pm_guest *g, uint64_t gpa, void *buf, size_t len);
void pm_guest_write(struct pm_guest *g, uint64_t gpa, const void *buf, size_t len);
uint64_t pm_guest_read64(struct pm_guest *g, uint64_t gpa);
void pm_guest_write64(struct pm_guest *g, uint64_t gpa, uint64_t val);
void pm_guest_memset(struct pm_guest *g, uint64_t gpa, int c, size_t len);
/* Atomic on an 8-byte aligned gpa: if *gpa == *expected store desired and
 * return true, else load *gpa into *expected and return false. */
bool pm_guest_cmpxchg64(struct pm_guest *g, uint64_t gpa, uint64_t *expected, uint64_t desired);

/* ---- calls to the hypervisor and the VMM ---- */
/* A hypercall (KVM_HC_*): returns its result, e.g. 0 or -KVM_ENOSYS. */
long pm_guest_hypercall(struct pm_guest *g, uint64_t nr, uint64_t a0, uint64_t a1,
			uint64_t a2, uint64_t a3);
/* pKVM guests (PM_VM_TYPE_PKVM): share / unshare npages pages from gpa
 * with the host, in place (the pages keep their contents; the guest keeps
 * using them either way). Page by page through the hyp; a page the guest
 * has not touched yet is faulted in first. Then one exit to the VMM
 * (PM_HC_PKVM_MEM_SHARE / _UNSHARE, see privmem.h) for the pages that
 * changed hands. Returns how many did, from the first: npages, or fewer
 * when a page was refused; -errno when the first page was refused:
 * EINVAL (gpa not page aligned, npages 0), EFAULT (not guest memory),
 * EPERM (not in a state for it: sharing a page shared already, unsharing
 * one that is not shared), EBUSY (unshare: the host pins the page),
 * EHWPOISON (the host took the page back). -KVM_ENOSYS on other VM types. */
long pm_guest_mem_share(struct pm_guest *g, uint64_t gpa, uint64_t npages);
long pm_guest_mem_unshare(struct pm_guest *g, uint64_t gpa, uint64_t npages);
/* Exits to the VMM with PM_UCALL_SYNC and args[0] = arg; returns when re-run. */
void pm_guest_sync(struct pm_guest *g, uint64_t arg);
/* Exits with PM_UCALL_DONE; the guest never runs again. */
_Noreturn void pm_guest_done(struct pm_guest *g);
/* Exits with PM_UCALL_ABORT and "file:line: what"; the guest never runs again. */
_Noreturn void pm_guest_abort(struct pm_guest *g, const char *file, int line, const char *what);

#define PM_GUEST_ASSERT(g, cond)                                               \
	do {                                                                   \
		if (!(cond))                                                   \
			pm_guest_abort((g), __FILE__, __LINE__, #cond);        \
	} while (0)

/* The KVM vCPU id this guest code runs on. */
unsigned int pm_guest_vcpu_id(struct pm_guest *g);

#ifdef __cplusplus
}
#endif

#endif /* PRIVMEM_GUEST_H */

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

/* ---- TDX guests (KVM_X86_TDX_VM) ----
 * Private GPAs have the shared bit clear, shared ones set
 * (pm_guest_tdx_shared_bit). Private pages the VMM adds after the build are
 * *pending* until the guest accepts them; touching a pending page is fatal
 * for the TD (KVM_EXIT_SYSTEM_EVENT, KVM_SYSTEM_EVENT_TDX_FATAL, data[0] the
 * gpa; the guest never runs again). */
#define PM_TDX_LEVEL_4K 0
#define PM_TDX_LEVEL_2M 1
#define PM_TDX_LEVEL_1G 2
/* TDX module status codes a guest sees (the module's values). */
#define PM_TDX_SUCCESS               0ULL
#define PM_TDX_OPERAND_INVALID       0xC000010000000000ULL
#define PM_TDX_PAGE_ALREADY_ACCEPTED 0x00000B0A00000000ULL
#define PM_TDX_PAGE_SIZE_MISMATCH    0xC0000B0B00000000ULL
/* TDG.VP.VMCALL status codes. */
#define PM_TDVMCALL_SUCCESS          0ULL
#define PM_TDVMCALL_RETRY            1ULL
#define PM_TDVMCALL_INVALID_OPERAND  0x8000000000000000ULL

/* The shared-bit mask of this TD's GPAs (bit 47, or 51 with MAX_GPAW). */
uint64_t pm_guest_tdx_shared_bit(struct pm_guest *g);
/* TDG.MEM.PAGE.ACCEPT of the private page of `level` at gpa: a status
 * above. A page not mapped yet is mapped by the VMM first (at most at
 * `level`), as on the EPT violation the real call causes. */
uint64_t pm_guest_tdx_accept(struct pm_guest *g, uint64_t gpa, int level);
/* Accepts [gpa, gpa + size) (4K aligned): 2M pages where aligned and the
 * VMM maps them 2M, else 4K; pages accepted already are fine. Returns
 * PM_TDX_SUCCESS or the first other status. */
uint64_t pm_guest_tdx_accept_range(struct pm_guest *g, uint64_t gpa, uint64_t size);
/* TDG.VP.VMCALL<MapGPA>: converts [gpa, gpa + size) to the kind gpa's
 * shared bit says, through KVM_HC_MAP_GPA_RANGE exits of at most 2 MiB
 * each. PM_TDVMCALL_RETRY when the VMM kicked the vCPU meanwhile (*next:
 * where to resume); PM_TDVMCALL_INVALID_OPERAND for a bad range, an exit
 * the VMM did not enable or refused (*next: the chunk refused). */
uint64_t pm_guest_tdx_map_gpa(struct pm_guest *g, uint64_t gpa, uint64_t size, uint64_t *next);

#ifdef __cplusplus
}
#endif

#endif /* PRIVMEM_GUEST_H */

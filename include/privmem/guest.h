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

/* A function that never returns, in C11 and in C++. */
#ifdef __cplusplus
#define PM_NORETURN [[noreturn]]
#else
#define PM_NORETURN _Noreturn
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
/* A guest instruction or call of the VM type's own (SNP: PVALIDATE, the
 * GHCB page-state-change protocol; pKVM: an HVC; see the helpers below):
 * returns its result; -KVM_ENOSYS on types without any. */
long pm_guest_model_call(struct pm_guest *g, uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2);
/* Exits to the VMM with PM_UCALL_SYNC and args[0] = arg; returns when re-run. */
void pm_guest_sync(struct pm_guest *g, uint64_t arg);
/* Exits with PM_UCALL_DONE; the guest never runs again. */
PM_NORETURN void pm_guest_done(struct pm_guest *g);
/* Exits with PM_UCALL_ABORT and "file:line: what"; the guest never runs again. */
PM_NORETURN void pm_guest_abort(struct pm_guest *g, const char *file, int line, const char *what);

#define PM_GUEST_ASSERT(g, cond)                                               \
	do {                                                                   \
		if (!(cond))                                                   \
			pm_guest_abort((g), __FILE__, __LINE__, #cond);        \
	} while (0)

/* ---- aborts the hypervisor injects ----
 * A hypervisor may answer an access with a data abort instead of an exit
 * (pKVM: MMIO outside the ranges the guest granted with MMIO_GUARD). By
 * default the abort ends the guest, as an unhandled synchronous exception
 * would: PM_UCALL_ABORT, msg "data abort: MMIO <read|write> at 0x<gpa>
 * refused by the hypervisor"; the guest never runs again. A guest that
 * handles aborts itself (as a kernel's exception fixup) calls
 * pm_guest_catch_aborts(g, true): then the access that aborts does
 * nothing (a read yields zeros) and is recorded, and
 * pm_guest_take_aborts returns how many were recorded since it was last
 * called, with the address of the last one in *far (if far is not NULL;
 * as FAR_EL1), and forgets them. */
void pm_guest_catch_aborts(struct pm_guest *g, bool on);
uint64_t pm_guest_take_aborts(struct pm_guest *g, uint64_t *far);

/* The KVM vCPU id this guest code runs on. */
unsigned int pm_guest_vcpu_id(struct pm_guest *g);

/* ---- pKVM protected guests (PM_VM_TYPE_PKVM) ----
 * The hypercalls of upstream's Documentation/virt/kvm/arm/hypercalls.rst
 * (SMCCC 1.1, HVC64): pm_guest_model_call(g, function id (PM_HC_PKVM_*,
 * privmem.h), X1, X2, X3) is the HVC and returns X0. Each call works on
 * one granule, PM_PKVM_GRANULE bytes (HYP_MEMINFO's answer); arguments
 * the documentation reserves must be 0. None of them exits to the VMM.
 * X0 is one of: */
#define PM_SMCCC_RET_SUCCESS            0L
#define PM_SMCCC_RET_NOT_SUPPORTED      (-1L)   /* a function id the hypervisor does not know */
#define PM_SMCCC_RET_INVALID_PARAMETER  (-3L)   /* any refusal */
#define PM_PKVM_GRANULE                 4096L

/* HYP_MEMINFO: the memory protection granule in bytes (4096). */
long pm_guest_hyp_meminfo(struct pm_guest *g);
/* MEM_SHARE: share the granule at ipa with the host, in place (it keeps
 * its contents, and the guest keeps using it); a page the guest has not
 * touched yet is faulted in first. SUCCESS, or INVALID_PARAMETER: ipa not
 * granule aligned, not guest memory, or the page not the guest's own
 * private page (shared already, or taken back by the host: poisoned). */
long pm_guest_mem_share(struct pm_guest *g, uint64_t ipa);
/* MEM_UNSHARE: the granule at ipa is the guest's alone again; it is gone
 * from every host mapping before the call returns, contents kept.
 * SUCCESS, or INVALID_PARAMETER: not aligned, not memory, not shared, or
 * pinned by the host (PM_GUEST_MEMFD_PIN, as DMA would). */
long pm_guest_mem_unshare(struct pm_guest *g, uint64_t ipa);
/* MMIO_GUARD: the granule at ipa is MMIO the guest wants the host to
 * emulate. Once the guest has made a grant, an MMIO access (no memory
 * there) exits to the VMM (KVM_EXIT_MMIO) only inside a granted granule;
 * anywhere else it aborts (see pm_guest_catch_aborts). Before the first
 * grant every MMIO access exits. SUCCESS (granting twice is fine; grants
 * are never revoked), or INVALID_PARAMETER: not aligned, beyond the
 * 48-bit IPA space, or memory (inside a memslot). */
long pm_guest_mmio_guard(struct pm_guest *g, uint64_t ipa);
/* MEM_SHARE / MEM_UNSHARE of npages granules from gpa, one call each,
 * stopping at the first refused (as a Linux guest's set_memory_decrypted
 * does): how many succeeded, from the first. */
uint64_t pm_guest_mem_share_range(struct pm_guest *g, uint64_t gpa, uint64_t npages);
uint64_t pm_guest_mem_unshare_range(struct pm_guest *g, uint64_t gpa, uint64_t npages);
/* These pKVM calls end the guest (PM_UCALL_ABORT, "<call>: not a pKVM VM
 * ...") on any other VM type. */

/* ---- AMD SEV-SNP guests (VM type KVM_X86_SNP_VM) ----
 * Private memory is addressed with the C-bit set, shared memory without.
 * A private page must be validated (PVALIDATE) before the guest touches
 * it: an access to one that is not ends the guest (KVM_EXIT_SYSTEM_EVENT,
 * KVM_SYSTEM_EVENT_SEV_TERM, data[0] = the gpa). Conversions go through the
 * GHCB's Page State Change (PSC) request, whose descriptor the guest writes
 * into a shared page, or the GHCB MSR protocol (one 4K page per exit). */
#define PM_SNP_C_BIT (1ULL << 51)

enum pm_snp_call {
	PM_SNP_CALL_PVALIDATE = 1,   /* a0 = gpa (C-bit set), a1 = 2M?, a2 = validate? */
	PM_SNP_CALL_PSC = 2,         /* a0 = gpa of the PSC descriptor (shared) */
	PM_SNP_CALL_PSC_MSR = 3,     /* a0 = gpa of the 4K page, a1 = PM_SNP_PSC_OP_* */
	PM_SNP_NR_CALLS,
};

/* PVALIDATE results (the instruction's codes; NOUPDATE is its CF=1). */
#define PM_SNP_PVALIDATE_FAIL_INPUT        1
#define PM_SNP_PVALIDATE_FAIL_SIZEMISMATCH 6
#define PM_SNP_PVALIDATE_NOUPDATE          255

/* The PSC descriptor: header, then up to 253 entries of 64 bits:
 * cur_page 0-11, gfn 12-51, operation 52-55, page size 56 (1 = 2M). The
 * hypervisor advances cur_entry and the entries' cur_page as it goes. */
struct pm_snp_psc_hdr {
	uint16_t cur_entry;
	uint16_t end_entry;
	uint32_t reserved;
};
#define PM_SNP_PSC_MAX_ENTRIES 253
#define PM_SNP_PSC_OP_PRIVATE  1
#define PM_SNP_PSC_OP_SHARED   2
#define PM_SNP_PSC_OP_PSMASH   3
#define PM_SNP_PSC_OP_UNSMASH  4
/* PSC results (the GHCB's SW_EXITINFO2); 0 on success. */
#define PM_SNP_PSC_ERROR_GENERIC       (0x100ULL << 32)
#define PM_SNP_PSC_ERROR_INVALID_HDR   ((1ULL << 32) | 1)
#define PM_SNP_PSC_ERROR_INVALID_ENTRY ((1ULL << 32) | 2)

static inline uint64_t pm_snp_psc_entry(uint64_t gfn, unsigned int op, bool size_2m)
{
	return ((gfn & ((1ULL << 40) - 1)) << 12) | ((uint64_t)(op & 0xf) << 52) |
	       ((uint64_t)size_2m << 56);
}
static inline unsigned int pm_snp_psc_cur_page(uint64_t e) { return (unsigned int)(e & 0xfff); }
static inline uint64_t pm_snp_psc_gfn(uint64_t e) { return (e >> 12) & ((1ULL << 40) - 1); }
static inline unsigned int pm_snp_psc_op(uint64_t e) { return (unsigned int)(e >> 52) & 0xf; }
static inline bool pm_snp_psc_2m(uint64_t e) { return (e >> 56) & 1; }

/* The SNP guest instructions and requests below end the guest
 * (PM_UCALL_ABORT, "<call>: not an SEV-SNP VM ...") on any other VM type. */
/* PVALIDATE: 0 or PM_SNP_PVALIDATE_*. */
long pm_guest_snp_pvalidate(struct pm_guest *g, uint64_t gpa, bool size_2m, bool validate);
/* A PSC request (VMGEXIT) with the descriptor at desc_gpa: 0 or PM_SNP_PSC_ERROR_*. */
long pm_guest_snp_psc(struct pm_guest *g, uint64_t desc_gpa);
/* The MSR protocol's page state change of one 4K page: 0, or non-zero. */
long pm_guest_snp_psc_msr(struct pm_guest *g, uint64_t gpa, unsigned int op);

/* The guest's conversions in the order Linux guests follow, over pages
 * [gpa, gpa + npages * 4K) (gpa without the C-bit), with 2M entries where
 * the range allows, in PSC requests of up to `batch` (<= 253) entries whose
 * descriptor goes to the shared page at desc_gpa:
 *  - to private: PSC, then PVALIDATE (2M, or 512 x 4K on SIZEMISMATCH);
 *  - to shared: PVALIDATE to rescind, then PSC.
 * 0, a PSC error, or a PVALIDATE error | (1ULL << 63). */
long pm_guest_snp_make_private(struct pm_guest *g, uint64_t gpa, uint64_t npages, uint64_t desc_gpa,
			       unsigned int batch);
long pm_guest_snp_make_shared(struct pm_guest *g, uint64_t gpa, uint64_t npages, uint64_t desc_gpa,
			      unsigned int batch);
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
/* The TDCALLs, as model calls (pm_guest_model_call; privmem's numbers, in
 * a range of their own: TDX's leaf numbers would collide with other
 * models'). The functions below wrap them; on a VM that is not a TD they
 * end the guest (PM_UCALL_ABORT). */
enum pm_tdx_call {
	PM_TDX_CALL_VP_INFO = 0x7d000001,   /* TDG.VP.INFO: returns the shared-bit mask */
	PM_TDX_CALL_ACCEPT  = 0x7d000006,   /* TDG.MEM.PAGE.ACCEPT: a0 = gpa, a1 = level */
	PM_TDX_CALL_MAP_GPA = 0x7d010001,   /* TDG.VP.VMCALL<MapGPA>: a0 = gpa, a1 = size,
	                                     * a2 = (uint64_t *)next */
};
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

/* ---- Arm CCA realms (PM_VM_TYPE_REALM) ----
 * Protected IPAs have the top IPA bit clear, unprotected (shared) ones set:
 * the bit is 1 << (pm_guest_realm_ipa_width(g) - 1). A protected IPA's
 * RIPAS decides what an access does: RAM works (KVM maps the page on
 * first use); EMPTY is a synchronous external abort taken by the realm,
 * which a C guest cannot handle: the guest ends (PM_UCALL_ABORT, "...
 * synchronous external abort ..."); DESTROYED means the realm cannot
 * continue (KVM_EXIT_SYSTEM_EVENT, KVM_SYSTEM_EVENT_CRASH, data[0] the
 * IPA; the guest never runs again). The RSI calls below are model calls
 * with privmem's numbers; on another VM type they end the guest
 * (PM_UCALL_ABORT). */
enum pm_cca_call {
	PM_CCA_CALL_REALM_CONFIG  = 0x7c000001,   /* RSI_REALM_CONFIG: the IPA width */
	PM_CCA_CALL_IPA_STATE_SET = 0x7c000002,   /* RSI_IPA_STATE_SET: a0 = struct
	                                           * pm_realm_ipa_state * (in/out) */
	PM_CCA_CALL_IPA_STATE_GET = 0x7c000003,   /* RSI_IPA_STATE_GET: a0 = ipa; the RIPAS */
};
#define PM_RSI_SUCCESS             0ULL
#define PM_RSI_ERROR_INPUT         1ULL
#define PM_RSI_ACCEPT              0ULL     /* the host made the change */
#define PM_RSI_REJECT              1ULL     /* the host refused it */
#define PM_RIPAS_EMPTY             0
#define PM_RIPAS_RAM               1
#define PM_RIPAS_DESTROYED         2
#define PM_RSI_NO_CHANGE_DESTROYED 0U
#define PM_RSI_CHANGE_DESTROYED    1U

/* RSI_IPA_STATE_SET: asks to change the RIPAS of [base, top) (protected,
 * 4K aligned) to ripas (EMPTY or RAM); flags says whether DESTROYED
 * entries may change. The REC exits to KVM (RMI_EXIT_RIPAS_CHANGE), which
 * asks the VMM with a KVM_HC_MAP_GPA_RANGE exit (ENCRYPTED for RAM,
 * DECRYPTED for EMPTY, the whole range) and, if it agrees, makes the
 * change with RMI_RTT_SET_RIPAS. Out: new_base (where the change stopped:
 * top when done) and response (ACCEPT or REJECT). */
struct pm_realm_ipa_state {
	uint64_t base, top;
	uint32_t ripas, flags;
	uint64_t new_base, response;
};
/* The realm's IPA width (RSI_REALM_CONFIG's ipa_width). */
uint64_t pm_guest_realm_ipa_width(struct pm_guest *g);
/* RSI_IPA_STATE_SET: PM_RSI_SUCCESS or PM_RSI_ERROR_INPUT. */
uint64_t pm_guest_realm_ipa_state_set(struct pm_guest *g, struct pm_realm_ipa_state *req);
/* RSI_IPA_STATE_GET: the RIPAS of the page at ipa (PM_RIPAS_*). */
int pm_guest_realm_ipa_state_get(struct pm_guest *g, uint64_t ipa);
/* As Linux's realm guests convert memory: RSI_IPA_STATE_SET over [base,
 * top) until done, going on from new_base (to EMPTY with
 * CHANGE_DESTROYED, to RAM without). 0, PM_RSI_ERROR_INPUT, or
 * (1ULL << 63) | new_base when the host rejects it or it stops. */
uint64_t pm_guest_realm_set_ripas(struct pm_guest *g, uint64_t base, uint64_t top, int ripas);

#ifdef __cplusplus
}
#endif

#endif /* PRIVMEM_GUEST_H */

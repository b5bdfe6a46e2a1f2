/* SPDX-License-Identifier: MIT */
/*
 * Protection models behind one ops table.
 *
 * A VM type (KVM_X86_DEFAULT_VM, KVM_X86_SW_PROTECTED_VM, ...) selects a
 * model: what the type supports (private memory, read-only slots, which
 * guest_memfd flags) and the hooks through which the model's "hardware"
 * (the TDX module, SNP's RMP, pKVM's hypervisor) follows guest memory.
 * Every hook is optional; a NULL hook means the model needs nothing there.
 *
 * Hooks tied to guest_memfd page lifetime (as upstream):
 *  - gmem_prepare: a page is handed to the guest for the first time;
 *  - gmem_invalidate: frames are really freed (before any scrub or reuse).
 * There is deliberately no hook on attribute changes (see seed 002).
 *
 * Hooks for a model whose "hardware" owns the guest's stage-2 (pKVM's
 * hypervisor): nothing else may write that table, so
 *  - mmu_fault replaces the MMU's fault attempt (fault_once): the model
 *    finds the page and has its hardware map it;
 *  - inval_zap replaces the MMU's invalidation consumer (mmu_zap): the
 *    model's hardware takes the pages back, never a plain zap.
 *
 * Hooks for models whose guests say in the address which kind of memory
 * they mean (SNP's C-bit, TDX's shared bit) and for launch/measurement:
 *  - gpa_decode splits a guest physical address into the gfn and whether
 *    the access is private; without it the kind of an access follows the
 *    gfn's attribute (software-protected and default VMs);
 *  - mem_enc_op / vcpu_mem_enc_op serve KVM_MEMORY_ENCRYPT_OP on the VM /
 *    vCPU handle (arg is the user pointer; ENOTTY without the hook);
 *  - get_measurement serves PM_KVM_GET_MEASUREMENT and _MEASUREMENT64 (the
 *    launch digest, the MRTD, a realm's RIM) into size bytes, zero-padded;
 *    -E2BIG when the measurement is longer (ENOTTY without the hook).
 *
 * Hooks for models whose hardware checks private accesses beyond the
 * stage-2 (SNP's RMP, TDX's pending pages):
 *  - private_max_level caps the stage-2 level of a private mapping of frame
 *    pfn (SNP: no 2M mapping over 4K RMP entries); without it the page
 *    order, the slot and the attributes decide;
 *  - guest_access checks every private access the MMU translated to pfn
 *    before the vCPU caches it: PM_GUEST_ACCESS_OK, _RETRY (translate
 *    again) or _FATAL (a guest-fatal event: SNP's access to an unvalidated
 *    page, TDX's to a pending one; the guest is stopped with
 *    KVM_EXIT_SYSTEM_EVENT of type *event, data[0] the gpa);
 *  - guest_pre_fault runs, in guest context, before the stage-2 fault of a
 *    private access that found no translation: hardware that decides such
 *    an access itself, without the host (CCA's RMM: RIPAS EMPTY is an
 *    exception to the realm, DESTROYED ends it), ends the guest there;
 *  - guest_call serves pm_guest_model_call(): the model's own guest
 *    instructions and exits (PVALIDATE, the GHCB protocol, TDG.MEM.PAGE.
 *    ACCEPT, pKVM's hypercalls), run on the vCPU in guest context (it may
 *    take exits through vcpu.h's helpers); -KVM_ENOSYS without it;
 *  - get_stats serves PM_KVM_GET_MODEL_STATS on the VM handle (ENOTTY
 *    without it);
 *  - get_process_stats serves it on the system handle: the counters the
 *    model keeps for the whole process, over every VM of its type, live or
 *    destroyed (pKVM's hypervisor's), named by the model (ENOTTY without
 *    it). uapi/ reaches every model's counters through these two hooks.
 *
 * Hooks for models whose hardware decides what the host may map:
 *  - gmem_host_mappable: with it, a guest_memfd's host file (what views
 *    show) takes exactly the pages whose frame it accepts when the model
 *    shares them (pm_gmem_host_share), and allocates nothing; without it,
 *    the host file holds every page of an INIT_SHARED file;
 *  - guest_hva: where a vCPU reaches the page a valid leaf (not an HVA
 *    leaf) maps: pfn is the frame of gfn; the direct map of the frame,
 *    another address holding the page's contents (pKVM: a page the guest
 *    shares lives in guest_memfd's host file, pm_gmem_host_page), or NULL
 *    (translate again: the page is moving). Called by every translation
 *    in guest mode: it must take no lock a shootdown waits behind, and no
 *    reference whose last put could invalidate. Without it: the direct
 *    map.
 *
 * Hooks for a model whose hardware keeps its own copy of the private
 * mappings (TDX's secure EPT behind KVM's mirror root, mmu->mirror):
 *  - map_private installs a private leaf for fault f in place of pm_s2_map
 *    (the generic fault path calls it under the MMU lock held shared, after
 *    the retry check; f->model_arg is the model's): 0, -EEXIST (something
 *    is there: a smaller level may be free), -EAGAIN (a concurrent update
 *    is in flight: retry the fault), -ENOMEM, -EIO (the VM is bugged);
 *  - map_shared installs a shared leaf in place of pm_s2_map, under the
 *    same lock and contract as map_private: for hardware whose own tables
 *    map shared memory too (CCA's RTT_MAP_UNPROTECTED), which must hear of
 *    every shared mapping the MMU installs;
 *  - vm_ioctl serves privmem's extension ioctls of the model (PMIO) on the
 *    VM handle (TDX: its test and tuning switches);
 *  - vcpu_pre_run may refuse KVM_RUN (-errno) before the VM can run;
 *  - vcpu_enter / vcpu_exit: the vCPU enters guest mode (also after every
 *    TLB flush it does in guest mode, before it acknowledges the shootdown)
 *    or leaves it; the hardware's TLB tracking follows them;
 *  - gmem_hold: guest_memfd is about to free a run of frames the hardware
 *    may still hold (a removal that failed): true leaks it on purpose, it
 *    is never freed.
 *
 * Hooks for a model whose guests' memory the host may not take back or
 * reach (pKVM's protected VMs: memslots frozen once the VM has run, guest
 * pages pinned, MMIO only where the guest allows it):
 *  - prepare_memory_region: KVM_SET_USER_MEMORY_REGION(2) is about to
 *    change a slot (create, delete, move, flags), every check of the
 *    request passed, under slots_lock (KVM's kvm_arch_prepare_memory_
 *    region): -errno refuses it with nothing changed;
 *  - gmem_pinned: does the VM pin a page of gfns [start, end), which a
 *    guest_memfd punch would take? Asked inside the punch's invalidation
 *    (no fault maps a page of the range meanwhile); true fails the punch
 *    with EBUSY, nothing punched;
 *  - mmio_allowed: may this MMIO access (no memslot at gpa, len bytes)
 *    exit to the VMM? false answers it with a data abort injected into
 *    the guest (guest.h, pm_guest_catch_aborts). Called in guest mode: it
 *    must not wait for a shootdown;
 *  - host_fault_sigsegv: a host access through a guest_memfd view to a
 *    page the host may not map gets SIGSEGV (an abort the hardware
 *    injects), not SIGBUS (host/host_abort.h).
 */
#ifndef PM_MODELS_MODEL_H
#define PM_MODELS_MODEL_H

#include <privmem/privmem.h>
#include "lib/common.h"
#include "memslot/invalidate.h"
#include "mmu/mmu.h"

struct pm_vm;
struct pm_vcpu;

struct pm_model_ops {
	const char *name;           /* "default", "sw", ... */
	unsigned long type;         /* KVM VM type number */
	bool private_mem;           /* KVM_MEMORY_ATTRIBUTE_PRIVATE is supported */
	bool readonly_mem;          /* KVM_MEM_READONLY is supported */
	bool gmem_init_shared;      /* GUEST_MEMFD_FLAG_INIT_SHARED is supported */
	bool gmem_slots_only;       /* every memslot must have KVM_MEM_GUEST_MEMFD */
	bool gmem_no_mmap;          /* GUEST_MEMFD_FLAG_MMAP is not offered, nor in-place
	                             * conversion, which needs it (Arm CCA realms: not an
	                             * x86 type; a gmem-only slot's shared page would be a
	                             * frame the RMM may hold delegated) */
	bool convert_hides_private; /* in-place conversion to shared gives the host a
	                             * zeroed page: the hardware keeps private contents
	                             * from it (SNP: ciphertext; TDX: the page is
	                             * cleared after its removal) */

	int (*vm_init)(struct pm_vm *vm);
	void (*vm_destroy)(struct pm_vm *vm);
	int (*gmem_prepare)(struct pm_vm *vm, pm_pfn_t pfn, gfn_t gfn, unsigned int order);
	void (*gmem_invalidate)(pm_pfn_t start, pm_pfn_t end);

	/* One attempt at a fault, with fault_once's contract (mmu.c):
	 * PM_FAULT_MAPPED (f->level installed), PM_FAULT_RETRY, or how the
	 * fault ends (EXIT, MMIO, ERROR with f->err). */
	enum pm_fault_result (*mmu_fault)(struct pm_vm *vm, struct pm_fault *f);
	/* The invalidation consumer (memslot/invalidate.h's zap contract). */
	void (*inval_zap)(struct pm_vm *vm, gfn_t start, gfn_t end, unsigned int filter,
			  enum pm_inval_cause cause, void *ctx);

	void (*gpa_decode)(struct pm_vm *vm, uint64_t gpa, gfn_t *gfn, bool *private_access);
	long (*mem_enc_op)(struct pm_vm *vm, unsigned long arg);
	long (*vcpu_mem_enc_op)(struct pm_vcpu *vcpu, unsigned long arg);
	int (*get_measurement)(struct pm_vm *vm, uint8_t *digest, size_t size);

	int (*private_max_level)(struct pm_vm *vm, pm_pfn_t pfn, gfn_t gfn);
	int (*guest_access)(struct pm_vcpu *vcpu, uint64_t gpa, gfn_t gfn, pm_pfn_t pfn, uint32_t *event);
	void (*guest_pre_fault)(struct pm_vcpu *vcpu, uint64_t gpa, gfn_t gfn);
	long (*guest_call)(struct pm_vcpu *vcpu, uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2);
	int (*get_stats)(struct pm_vm *vm, struct pm_model_stats *st);
	int (*get_process_stats)(struct pm_model_stats *st);
	bool (*gmem_host_mappable)(struct pm_vm *vm, pm_pfn_t pfn);
	uint8_t *(*guest_hva)(struct pm_vm *vm, gfn_t gfn, uint64_t pte, pm_pfn_t pfn);
	int (*map_private)(struct pm_vm *vm, struct pm_fault *f, int level, uint64_t pte);
	int (*map_shared)(struct pm_vm *vm, struct pm_fault *f, int level, uint64_t pte);
	int (*vcpu_pre_run)(struct pm_vcpu *vcpu);
	void (*vcpu_enter)(struct pm_vcpu *vcpu);
	void (*vcpu_exit)(struct pm_vcpu *vcpu);
	bool (*gmem_hold)(struct pm_vm *vm, pm_pfn_t pfn, unsigned int order);
	/* privmem's extension ioctls for this model (PMIO) on the VM handle. */
	long (*vm_ioctl)(struct pm_vm *vm, unsigned long req, unsigned long arg);
	int (*prepare_memory_region)(struct pm_vm *vm);
	bool (*gmem_pinned)(struct pm_vm *vm, gfn_t start, gfn_t end);
	bool (*mmio_allowed)(struct pm_vcpu *vcpu, uint64_t gpa, unsigned int len);
	bool host_fault_sigsegv;
};

enum { PM_GUEST_ACCESS_OK, PM_GUEST_ACCESS_RETRY, PM_GUEST_ACCESS_FATAL };

/* For get_stats: appends name = v (at most PM_MODEL_STATS_MAX entries). */
void pm_model_stats_put(struct pm_model_stats *st, const char *name, uint64_t v);

/* The model of a VM type, or NULL if privmem does not offer that type (yet). */
const struct pm_model_ops *pm_model_for_type(unsigned long type);
/* Bitmask of supported VM types (KVM_CAP_VM_TYPES). */
int pm_model_vm_types(void);
/* The types a PRIVMEM_VM_TYPES list names ("sw,snp,4": model names or
 * numbers, comma separated; unknown entries ignored) that privmem has, and
 * the default type always: a bitmask. */
int pm_model_parse_types(const char *list);

extern const struct pm_model_ops pm_model_default;
extern const struct pm_model_ops pm_model_sw;
extern const struct pm_model_ops pm_model_pkvm;
extern const struct pm_model_ops pm_model_snp;
extern const struct pm_model_ops pm_model_tdx;
extern const struct pm_model_ops pm_model_realm;

#endif

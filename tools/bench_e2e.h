/* SPDX-License-Identifier: MIT */
/*
 * privmem bench e2e: conversions end to end, shared by its two files
 * (bench_e2e.c: the exit and convert sections and the command's table
 * entry; bench_e2e_mem.c: the tlb, memslot and scale sections).
 *
 * A conversion round trip of n pages, one definition for every model
 * (conv_round_trip): the guest asks private -> shared for the n pages (one
 * exit, the model's way; none on pkvm), touches each page (an 8-byte write
 * and a read back), asks shared -> private (one exit; none on pkvm) and
 * touches each page again.
 * The models' ways (conv_models[]):
 *  - sw: KVM_HC_MAP_GPA_RANGE, answered by the VMM with
 *    KVM_SET_MEMORY_ATTRIBUTES and a punch of the private copy (to shared)
 *    or a discard of its shared copy (to private); the touch after it
 *    faults a new zeroed private page in;
 *  - tdx: TDG.VP.VMCALL<MapGPA> (the same exit; KVM removes the page from
 *    the secure EPT: BLOCK, TRACK, shootdown, REMOVE), and back to private
 *    MapGPA then TDG.MEM.PAGE.ACCEPT of each page (AUG on its EPT
 *    violation, the module zeroes it);
 *  - snp: PVALIDATE to rescind and a PSC request to shared, a PSC request
 *    and PVALIDATE back (Linux's order; KVM merges contiguous entries into
 *    one exit);
 *  - pkvm: MEM_SHARE / MEM_UNSHARE in place, one hypercall per page (the
 *    hyp changes the owner and returns to the guest: no exit, as upstream;
 *    "n pages per exit" reads "n pages per batch" there);
 *  - realm: RSI_IPA_STATE_SET to RIPAS EMPTY and back to RAM (one
 *    KVM_HC_MAP_GPA_RANGE exit each, the VMM converting as for sw; KVM
 *    DATA_DESTROYs in the zap and commits with RTT_SET_RIPAS); shared
 *    pages are touched through the unprotected alias (the top IPA bit).
 * The guest's view of the VM (struct conv_vm) is written by the guest's
 * conv_prepare and read by its conversions: guest code only, one vCPU.
 */
#ifndef PM_TOOLS_BENCH_E2E_H
#define PM_TOOLS_BENCH_E2E_H

#include "bench.h"

enum conv_model_id { CONV_SW, CONV_TDX, CONV_SNP, CONV_PKVM, CONV_REALM, CONV_NR };

struct conv_vm;

struct conv_model {
	const char *name;
	unsigned long type;       /* KVM_CREATE_VM's */
	/* Guest code. prepare: the whole region private, accepted or
	 * validated, and touched (untimed). to_shared / to_private: n pages
	 * from gpa (no kind bits), 0 or non-zero. */
	void (*prepare)(struct pm_guest *g, struct conv_vm *cv);
	long (*to_shared)(struct pm_guest *g, const struct conv_vm *cv, uint64_t gpa, uint64_t n);
	long (*to_private)(struct pm_guest *g, const struct conv_vm *cv, uint64_t gpa, uint64_t n);
	unsigned int exits;       /* hypercall exits per batch and direction (1; pkvm 0) */
};

extern const struct conv_model conv_models[CONV_NR];

/* The guest's view of a VM it converts memory of: the region [0, size),
 * then (SNP) a 2 MiB block whose first page holds the PSC descriptor. */
struct conv_vm {
	const struct conv_model *model;
	uint64_t size;
	uint64_t desc;                     /* SNP: the descriptor page (shared) */
	uint64_t shared_bit, private_bit;  /* kind bits of the addresses (prepare sets them) */
};

/* VMM: a one-vCPU VM of the model for a region of `size` bytes, 4K
 * guest_memfd pages (TDX: also 4K private pages only); cv describes it.
 * 0, or -1 with r->error (nothing left to destroy). */
int conv_vm_create(struct result *r, struct vmm *m, const struct conv_model *model, uint64_t size,
		   struct conv_vm *cv);
/* Guest code: prepare, and the round trip of n pages from gpa. */
void conv_prepare(struct pm_guest *g, struct conv_vm *cv);
void conv_round_trip(struct pm_guest *g, const struct conv_vm *cv, uint64_t gpa, uint64_t n);
/* Guest code: an 8-byte write then a read back of the first word of each
 * of n pages from addr (kind bits included); values tag + page. */
void touch_pages(struct pm_guest *g, uint64_t addr, uint64_t n, uint64_t tag);

/* The sections (each begins its own section of r). */
void e2e_exit(struct result *r);
void e2e_convert(struct result *r, uint64_t region);
void e2e_tlb(struct result *r, uint64_t size);
void e2e_memslot(struct result *r);
void e2e_scale(struct result *r, uint64_t size);

#endif

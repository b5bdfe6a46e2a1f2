/* SPDX-License-Identifier: MIT */
/*
 * pKVM's trusted hypervisor ("hyp"): who owns every frame of the pool, and
 * the only code that changes a stage-2 page table of the host or of a guest.
 *
 * pKVM protects guests with the MMU alone. The host (privmem's library and
 * the VMM) reaches memory only through the host stage-2, an identity map of
 * the frame pool that the hyp keeps; each guest reaches memory only through
 * its own guest stage-2, also kept by the hyp. A page changes hands only by
 * one of the transitions below, each of which checks every party's state
 * under the locks and then commits, or changes nothing.
 *
 * Page states (per page and per party; the reference's 2-bit encoding):
 *   OWNED            the party owns the page and nobody else may touch it
 *   SHARED_OWNED     it owns the page and has shared it with another party
 *   SHARED_BORROWED  it may access the page, which another party owns
 *   NOPAGE           no access (meta state)
 *   POISONED         (guest only) the host reclaimed the page while the
 *                    guest still owned it: the frame was zeroed, and the gfn
 *                    is dead to the guest (guest_share_host says EHWPOISON).
 *                    To the host the gfn is NOPAGE: it may put a new page there.
 * The frame itself carries a poison mark while the host alone holds it and
 * has not written it (pkvm_page_poisoned): it reads zero until then.
 *
 * Transitions (all return 0 or a negative errno; "host" acts on behalf of the
 * VMM and the library, "guest" on behalf of a vCPU's hypercall):
 *
 *   host_share_hyp(pfn)        host OWNED, hyp NOPAGE (EPERM)
 *                              -> host SHARED_OWNED, hyp SHARED_BORROWED
 *   host_unshare_hyp(pfn)      host SHARED_OWNED, hyp SHARED_BORROWED (EPERM);
 *                              pinned by the hyp (EBUSY) -> host OWNED, hyp NOPAGE
 *   host_donate_hyp(pfn, n)    range in the pool (EINVAL); host OWNED, hyp NOPAGE
 *                              (EPERM) -> hyp OWNED, host NOPAGE (owner hyp)
 *   hyp_donate_host(pfn, n)    range (EINVAL); hyp OWNED, host NOPAGE (EPERM)
 *                              -> host OWNED, hyp NOPAGE
 *   host_share_guest(vm, pfn, gfn, n, prot)
 *                              prot only RWX (EINVAL); n 1, or 512 with pfn and
 *                              gfn 2M-aligned (EINVAL); guest NOPAGE on every
 *                              gfn (EPERM); host OWNED, or for a non-protected
 *                              guest SHARED_OWNED with guests (EPERM); share
 *                              count at its maximum (EBUSY)
 *                              -> host SHARED_OWNED, count++, guest
 *                              SHARED_BORROWED (one 4K or 2M leaf, prot)
 *   host_unshare_guest(vm, gfn, n)
 *                              n and gfn as above (EINVAL); no leaf (ENOENT);
 *                              leaf of another size (E2BIG); guest not
 *                              SHARED_BORROWED or host not SHARED_OWNED (EPERM)
 *                              -> guest NOPAGE, count--, host OWNED at 0
 *   host_donate_guest(vm, pfn, gfn)
 *                              host OWNED, guest NOPAGE (EPERM)
 *                              -> host NOPAGE (owner vm, gfn), guest OWNED (RWX)
 *   guest_share_host(vm, gfn)  POISONED (EHWPOISON); no leaf (ENOENT); not a 4K
 *                              leaf (E2BIG); guest OWNED, host NOPAGE (EPERM)
 *                              -> guest SHARED_OWNED, host SHARED_BORROWED,
 *                              in place: the frame and its contents stay
 *   guest_unshare_host(vm, gfn)
 *                              the same lookup errors; guest SHARED_OWNED, host
 *                              SHARED_BORROWED (EPERM)
 *                              -> guest OWNED, host NOPAGE (owner vm, gfn)
 *   host_reclaim_page_guest(vm, gfn)
 *                              guest OWNED: the frame is poisoned (zeroed),
 *                              guest POISONED; guest SHARED_OWNED: guest NOPAGE;
 *                              anything else (EPERM) -> host OWNED
 *   relax_perms(vm, gfn, prot) protected VM (EPERM); prot outside RWX, state
 *                              bits included (EINVAL); no leaf (ENOENT); not a
 *                              page the host shares with it (EPERM)
 *                              -> permissions added, never removed; the state
 *                              bits never change
 *   Every transition first fills a reserve with the page-table pages its
 *   commit may need: if it cannot, it returns -ENOMEM, before any state
 *   check, with nothing changed. Only argument errors come before (EINVAL;
 *   for relax_perms, EPERM for a protected VM and then EINVAL).
 *
 * Frames are pool frames; gfns are below 2^36 (EINVAL otherwise). "prot"
 * is PKVM_PROT_*: a privmem stage-2 leaf is always readable, so R is implied.
 *
 * Host accesses: the library and the VMM call pkvm_host_access() before they
 * touch a frame; an access to a frame the host neither owns nor borrows is
 * refused and counted as a host stage-2 fault, as the hardware would.
 *
 * Locks: the host lock, the hyp lock, one lock per guest VM, always taken in
 * that order (checked on every acquisition). The functions here take what
 * they need and return with nothing held.
 *
 * Lifetimes: the hyp outlives its VMs; a VM is used by no transition once
 * pkvm_vm_teardown() is called on it. Frames the hyp uses for page tables
 * come from the pool and are outside the ownership model (in pKVM they are
 * hyp memory the host never sees): the host must transition only frames it
 * got for guest memory (guest_memfd frames), never the hyp's. The host
 * stage-2 is split as pages change hands and never merged again.
 *
 * For the integration (VM type, fault path, hypercalls, guest_memfd mmap):
 *  - a protected guest's first fault on a gfn: host_donate_guest(the
 *    guest_memfd frame, gfn); a non-protected guest's: host_share_guest;
 *  - the guest's share/unshare hypercalls: guest_share_host/_unshare_host,
 *    answered without an exit to the VMM; the host's mappings are
 *    guest_memfd's host file, which a page enters after its share and
 *    leaves (for every
 *    mapping) after its unshare, with no vCPU reaching it in between; an
 *    unshare is refused while the host pins the page;
 *  - every host access to guest memory: pkvm_host_access (a -EFAULT there is
 *    the SIGSEGV / -EFAULT the VMM sees);
 *  - the guest stage-2 (struct pkvm_vm's) is what vCPUs translate through;
 *    removals call cfg.tlb_flush so that no vCPU TLB keeps a stale entry;
 *  - VM destruction: pkvm_vm_teardown, then the frames go back to
 *    guest_memfd as host pages.
 */
#ifndef PM_MODELS_PKVM_HYP_H
#define PM_MODELS_PKVM_HYP_H

#include "lib/common.h"

struct pkvm_hyp;
struct pm_s2_mc;
struct pkvm_vm;

enum pkvm_page_state {
	PKVM_PAGE_OWNED = 0,
	PKVM_PAGE_SHARED_OWNED = 1,
	PKVM_PAGE_SHARED_BORROWED = 2,
	PKVM_NOPAGE = 3,
	PKVM_POISONED = 4,
};

/* Who owns a page, as the host stage-2 records it. */
enum pkvm_owner_id {
	PKVM_ID_HOST = 0,
	PKVM_ID_HYP = 1,
	PKVM_ID_GUEST = 2,
};

enum {
	PKVM_PROT_R = 1 << 0,
	PKVM_PROT_W = 1 << 1,
	PKVM_PROT_X = 1 << 2,
	PKVM_PROT_RWX = PKVM_PROT_R | PKVM_PROT_W | PKVM_PROT_X,
};

#define PKVM_MAX_VMS          256       /* VM ids 0..255 */
#define PKVM_SHARE_GUEST_MAX  UINT16_MAX /* guests sharing one host page */
#define PKVM_BLOCK_PAGES      512        /* the one block size: 2M */

enum pkvm_transition {
	PKVM_HOST_SHARE_HYP,
	PKVM_HOST_UNSHARE_HYP,
	PKVM_HOST_DONATE_HYP,
	PKVM_HYP_DONATE_HOST,
	PKVM_HOST_SHARE_GUEST,
	PKVM_HOST_UNSHARE_GUEST,
	PKVM_HOST_DONATE_GUEST,
	PKVM_GUEST_SHARE_HOST,
	PKVM_GUEST_UNSHARE_HOST,
	PKVM_HOST_RECLAIM_PAGE_GUEST,
	PKVM_RELAX_PERMS,
	PKVM_NR_TRANSITIONS
};

struct pkvm_stats {
	uint64_t done[PKVM_NR_TRANSITIONS];    /* transitions that happened */
	uint64_t refused[PKVM_NR_TRANSITIONS]; /* calls that returned an error */
	uint64_t host_s2_faults;               /* refused host accesses */
	uint64_t pages_poisoned;               /* reclaimed from a guest that owned them */
};

/* ---- the hypervisor ---- */

/* Takes over the pool as it is now (pm_pool_nr_frames): every frame host
 * OWNED, mapped with the largest leaves that fit. 0 or -ENOMEM. */
int pkvm_hyp_create(struct pkvm_hyp **out);
/* No VM may be left. Pages still donated or shared are simply forgotten. */
void pkvm_hyp_destroy(struct pkvm_hyp *hyp);
const char *pkvm_transition_name(enum pkvm_transition t);
void pkvm_hyp_get_stats(struct pkvm_hyp *hyp, struct pkvm_stats *st);
/* Gives the hyp every frame of mc for its table reserve (takes host_lock):
 * a caller's spare frames for transitions that find the pool exhausted. */
void pkvm_hyp_reserve_add(struct pkvm_hyp *hyp, struct pm_s2_mc *mc);

/* ---- guest VMs ---- */

struct pkvm_vm_config {
	bool protected;          /* a protected VM: no multi-sharing, no relax_perms */
	/* Called, with the hyp's locks held, after a guest mapping was
	 * removed, before the frame changes hands: the integration
	 * shoots down vCPU TLBs there (it must not call back into the hyp).
	 * NULL if nothing caches the guest stage-2. */
	void (*tlb_flush)(void *arg, gfn_t start, gfn_t end);
	void *arg;
	/* The stage-2 to build the VM on (initialised, empty, and written by
	 * nobody else from now on: the integration passes its MMU's, so that
	 * vCPUs translate through what the hyp maintains); NULL: the VM gets a
	 * stage-2 of its own. The VM's teardown empties it but does not free it. */
	struct pm_s2 *s2;
};

/* 0 and *out; -ENOSPC (PKVM_MAX_VMS live VMs); -ENOMEM. */
int pkvm_vm_create(struct pkvm_hyp *hyp, const struct pkvm_vm_config *cfg,
		   struct pkvm_vm **out);
/* Reclaims every page of the VM (guest-owned ones are poisoned: zeroed
 * before the host owns them again; shared ones return), then frees its
 * stage-2 and the VM. 0, or -ENOMEM with the VM alive and consistent (call
 * again later). No transition may run on the VM meanwhile or afterwards. */
int pkvm_vm_teardown(struct pkvm_vm *vm);
/* Gives back every page the guest has in [start, end) as teardown does
 * (the host owns them all afterwards; guest-owned ones poisoned, their gfn
 * POISONED), while the VM stays alive: the integration's path for a
 * guest_memfd punch or a memslot deletion. A page another caller gives
 * back meanwhile is skipped. 0 or -ENOMEM (part may be done: call again). */
int pkvm_vm_reclaim_range(struct pkvm_vm *vm, gfn_t start, gfn_t end);
unsigned int pkvm_vm_id(const struct pkvm_vm *vm);
struct pkvm_hyp *pkvm_vm_hyp(const struct pkvm_vm *vm);

/* ---- transitions (see the table above) ---- */

int pkvm_host_share_hyp(struct pkvm_hyp *hyp, pm_pfn_t pfn);
int pkvm_host_unshare_hyp(struct pkvm_hyp *hyp, pm_pfn_t pfn);
int pkvm_host_donate_hyp(struct pkvm_hyp *hyp, pm_pfn_t pfn, uint64_t n);
int pkvm_hyp_donate_host(struct pkvm_hyp *hyp, pm_pfn_t pfn, uint64_t n);
int pkvm_host_share_guest(struct pkvm_vm *vm, pm_pfn_t pfn, gfn_t gfn, uint64_t n,
			  unsigned int prot);
int pkvm_host_unshare_guest(struct pkvm_vm *vm, gfn_t gfn, uint64_t n);
int pkvm_host_donate_guest(struct pkvm_vm *vm, pm_pfn_t pfn, gfn_t gfn);
int pkvm_guest_share_host(struct pkvm_vm *vm, gfn_t gfn);
int pkvm_guest_unshare_host(struct pkvm_vm *vm, gfn_t gfn);
int pkvm_host_reclaim_page_guest(struct pkvm_vm *vm, gfn_t gfn);
int pkvm_relax_perms(struct pkvm_vm *vm, gfn_t gfn, unsigned int prot);

/* The hyp's own use of a page the host shares with it: while pinned,
 * host_unshare_hyp says EBUSY. pin: 0, -EINVAL (not a pool frame), -EPERM
 * (hyp not SHARED_BORROWED). unpin: the page must be pinned. */
int pkvm_hyp_pin_shared(struct pkvm_hyp *hyp, pm_pfn_t pfn);
void pkvm_hyp_unpin_shared(struct pkvm_hyp *hyp, pm_pfn_t pfn);

/* ---- host accesses ---- */

/* An access by the host (VMM or library) to a frame: 0 if the host owns or
 * borrows it; -EFAULT otherwise (a host stage-2 fault, counted); -EINVAL
 * for a frame outside the pool. Lock-free on the common path: it reads the
 * host stage-2 as the MMU would, so an access racing a transition that
 * revokes the page sees either side of it. The first write to a poisoned
 * page clears the poison mark. */
int pkvm_host_access(struct pkvm_hyp *hyp, pm_pfn_t pfn, bool write);

/* ---- check-state queries (read from the page tables and the page array;
 * lock-free, each a snapshot of one party) ---- */

/* The host's state of a pool frame (NOPAGE also for one outside the pool). */
enum pkvm_page_state pkvm_host_state(struct pkvm_hyp *hyp, pm_pfn_t pfn);
struct pkvm_owner {
	enum pkvm_owner_id id;
	unsigned int vm_id;  /* PKVM_ID_GUEST: the VM and gfn that own it */
	gfn_t gfn;
};
/* Who owns pool frame pfn: the host if its entry is valid and not
 * SHARED_BORROWED (then the borrower's guest owns it: id GUEST, vm_id and
 * gfn unknown, left 0), otherwise the annotation's owner. */
void pkvm_host_owner(struct pkvm_hyp *hyp, pm_pfn_t pfn, struct pkvm_owner *o);
enum pkvm_page_state pkvm_hyp_state(struct pkvm_hyp *hyp, pm_pfn_t pfn);
unsigned int pkvm_hyp_pins(struct pkvm_hyp *hyp, pm_pfn_t pfn);
unsigned int pkvm_host_share_count(struct pkvm_hyp *hyp, pm_pfn_t pfn);
bool pkvm_page_poisoned(struct pkvm_hyp *hyp, pm_pfn_t pfn);

struct pkvm_guest_page {
	pm_pfn_t pfn;        /* the frame gfn maps (PM_PFN_INVALID if none) */
	uint64_t nr;         /* pages of the leaf: 1 or 512 */
	unsigned int prot;   /* PKVM_PROT_* */
};
/* The guest's state in pte, a leaf of its stage-2 as a walker read it
 * (NOPAGE if not valid). */
enum pkvm_page_state pkvm_guest_leaf_state(uint64_t pte);
/* The guest's state at gfn; *page (if not NULL) describes its leaf. */
enum pkvm_page_state pkvm_guest_state(struct pkvm_vm *vm, gfn_t gfn,
				      struct pkvm_guest_page *page);

#endif

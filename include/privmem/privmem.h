/* SPDX-License-Identifier: MIT */
/*
 * privmem/privmem.h: the KVM uAPI served by a library.
 *
 * privmem's public API is KVM's: pm_kvm_open() stands for open("/dev/kvm"),
 * pm_kvm_ioctl() for ioctl(2), and the pm_kvm_* file operations for the
 * system calls on the files KVM hands out (VM, vCPU, guest_memfd). Handles
 * are small integers from a table the library owns, not OS file descriptors;
 * a handle that is not open is EBADF. Every call returns as its system call
 * does: -1 (MAP_FAILED for mmap) with errno set to what Linux gives.
 *
 * Extensions KVM has no equivalent for are ioctls with type PMIO (0xAF,
 * outside KVM's 0xAE) and constants outside KVM's ranges, all listed below.
 */
#ifndef PRIVMEM_PRIVMEM_H
#define PRIVMEM_PRIVMEM_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <privmem/kvm.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the file operations ---- */
int pm_kvm_open(void);
int pm_kvm_close(int handle);
int pm_kvm_ioctl(int handle, unsigned long request, ...);
int pm_kvm_fallocate(int handle, int mode, off_t offset, off_t len);
ssize_t pm_kvm_read(int handle, void *buf, size_t count);
ssize_t pm_kvm_write(int handle, const void *buf, size_t count);
ssize_t pm_kvm_pread(int handle, void *buf, size_t count, off_t offset);
ssize_t pm_kvm_pwrite(int handle, const void *buf, size_t count, off_t offset);
void *pm_kvm_mmap(void *addr, size_t length, int prot, int flags, int handle, off_t offset);
int pm_kvm_munmap(void *addr, size_t length);
/* madvise(2) on a range that guest_memfd mappings may cover, with what
 * Linux does there: MADV_COLLAPSE is EINVAL (a guest_memfd mapping is
 * never collapsed), MADV_REMOVE punches the file; everything else, and
 * the parts of the range that are not guest_memfd mappings, goes to the
 * kernel. */
int pm_kvm_madvise(void *addr, size_t length, int advice);
/* mbind(2) and get_mempolicy(2) on guest_memfd mappings, as Linux 6.19:
 * the policy applies to the file pages the mapping covers, for their later
 * allocations from privmem's simulated NUMA nodes (PM_POOL_MAX_NODES);
 * get_mempolicy(MPOL_F_NODE | MPOL_F_ADDR) gives a page's node. Linux's
 * errno; what is not a guest_memfd mapping goes to the kernel. */
int pm_kvm_mbind(void *addr, unsigned long len, int mode, const unsigned long *nodemask,
		 unsigned long maxnode, unsigned int flags);
int pm_kvm_get_mempolicy(int *mode, unsigned long *nodemask, unsigned long maxnode, void *addr,
			 unsigned long flags);
int pm_kvm_fstat(int handle, struct stat *st);

/* The library version, e.g. "0.1.0". */
const char *pm_version(void);

/* ---- tracing ----
 * pm_trace_start(path) records what privmem does from then on (per
 * thread: KVM_RUN and its exits, faults with the level they mapped,
 * conversions with their range and direction, zaps, TLB shootdowns, and
 * the protection models' firmware calls: SEAMCALLs, RMPUPDATE / PSMASH /
 * PVALIDATE, pKVM's hypervisor transitions), with timestamps, into a
 * Chrome / Perfetto JSON trace written to path by pm_trace_stop() or at
 * exit (it opens in https://ui.perfetto.dev). 0, or -1 with errno: EBUSY
 * (a trace is being recorded already), EINVAL (no path), or open(2)'s.
 * pm_trace_stop: 0, or -1 with EINVAL (no trace is being recorded) or EIO
 * (the file could not be written). The environment variable
 * PRIVMEM_TRACE=FILE starts a trace when the library is loaded. Tracing
 * off costs each trace point one predictable branch. */
int pm_trace_start(const char *path);
int pm_trace_stop(void);

#define PMIO 0xAF   /* the ioctl type of privmem's extensions */

/* ---- extension: VM types ----
 * PM_VM_TYPE_PKVM: a pKVM protected VM (Arm's protected KVM page ownership
 * model). Upstream asks for it with KVM_VM_TYPE_ARM_PROTECTED, bit 31 of
 * arm64's machine type (beside the IPA size in bits 0-7); x86's KVM_CREATE_VM
 * takes a type number, and the number is privmem's: 16 (bit 4 of
 * KVM_CAP_VM_TYPES). */
#define PM_VM_TYPE_PKVM 16

/* PM_VM_TYPE_REALM: an Arm CCA realm (the simulated RMM's granules, RTTs
 * and RIPAS; upstream's KVM_VM_TYPE_ARM_REALM, from Steven Price's series,
 * v15, not merged: the number is privmem's). Realm VMs answer
 * KVM_CHECK_EXTENSION(KVM_CAP_ARM_RMI) with 1 (so does the system handle
 * while realms are offered). Their guests' protected IPAs have the top IPA
 * bit clear, unprotected ones set (privmem/guest.h). The realm is built
 * before its first KVM_RUN with the ioctls below; the first KVM_RUN creates
 * one REC per vCPU (all runnable, measured) and activates the realm. */
#define PM_VM_TYPE_REALM 17
#define KVM_CAP_ARM_RMI  (PM_CAP_BASE + 2)    /* privmem's number: upstream's is not fixed */

/* VM handle of a realm: its parameters, before the first build step
 * (EBUSY after; EINVAL for values the RMM refuses). Defaults: SHA-256,
 * 40 IPA bits, the v1.0 RIM rule, num_bps = num_wps = 1 (the raw fields:
 * two breakpoints, two watchpoints). */
struct pm_realm_config {
	__u32 hash_algo;      /* PM_REALM_HASH_SHA256 or _SHA512 */
	__u32 ipa_bits;       /* s2sz: 32..48 */
	__u32 rim_version;    /* 1: RMM v1.0 (RTT_INIT_RIPAS measured), 2: v2.0 */
	__u32 num_bps, num_wps, pmu_num_ctrs, sve_vl;
	__u32 flags;          /* PM_REALM_NO_HUGE: protected memory mapped 4K only */
	__u64 reserved[4];    /* must be zero */
};
#define PM_REALM_HASH_SHA256 0
#define PM_REALM_HASH_SHA512 1
#define PM_REALM_NO_HUGE     (1U << 0)
#define PM_KVM_REALM_CONFIG _IOW(PMIO, 0x26, struct pm_realm_config)

/* KVM_ARM_RMI_POPULATE (the series' populate call; privmem's number):
 * copies [source_uaddr, + size) into the realm's protected memory at
 * [base, base + size) (private, guest_memfd-backed; every argument 4 KiB
 * aligned), setting RIPAS RAM over it first (RTT_INIT_RIPAS) and then one
 * DATA_CREATE per page, measured with KVM_ARM_RMI_POPULATE_FLAGS_MEASURE.
 * Only before the first KVM_RUN (EINVAL after); EINVAL too for a page that
 * is shared, outside a guest_memfd slot, or populated already (its RIPAS
 * cannot be initialised twice); EFAULT for an unreadable source; partial
 * progress is written back into base/size/source_uaddr. */
struct kvm_arm_rmi_populate {
	__u64 base;
	__u64 size;
	__u64 source_uaddr;
	__u32 flags;
	__u32 reserved;
};
#define KVM_ARM_RMI_POPULATE_FLAGS_MEASURE (1U << 0)
#define KVM_ARM_RMI_POPULATE _IOWR(PMIO, 0x27, struct kvm_arm_rmi_populate)
/* RIPAS RAM over [base, base + size) without contents (the series'
 * INIT_IPA_REALM step; measured by the v1.0 rule), before the first
 * KVM_RUN: memory the realm will fault in lazily. */
struct pm_realm_ripas_range {
	__u64 base;
	__u64 size;
};
#define PM_KVM_REALM_INIT_RIPAS _IOW(PMIO, 0x28, struct pm_realm_ripas_range)

/* pKVM guests call the hypervisor with the SMCCC vendor-hypervisor calls
 * of upstream's Documentation/virt/kvm/arm/hypercalls.rst (the guest side
 * is in privmem/guest.h): HYP_MEMINFO, MEM_SHARE, MEM_UNSHARE, MMIO_GUARD,
 * one granule (4 KiB) per call, and KVM's FEATURES call that lists them. The hypervisor handles them all: none
 * exits to the VMM, as upstream. The VMM sees their effects: a page the
 * guest shares appears in guest_memfd's views (mmap), one it unshares is
 * gone from every mapping before the call returns, and once the guest has
 * granted MMIO ranges an MMIO access exits (KVM_EXIT_MMIO) only inside
 * them. (privmem before this interface exited with KVM_EXIT_HYPERCALL
 * after each share and unshare; it no longer does.) */
#define PM_HC_PKVM_FEATURES    0x86000000ULL   /* discovery: X0 = PM_PKVM_FEATURES */
#define PM_HC_PKVM_HYP_MEMINFO 0xC6000002ULL
#define PM_HC_PKVM_MEM_SHARE   0xC6000003ULL
#define PM_HC_PKVM_MEM_UNSHARE 0xC6000004ULL
#define PM_HC_PKVM_MMIO_GUARD  0xC6000007ULL
/* FEATURES' bitmap: bit n for function number n offered (0, 2, 3, 4, 7). */
#define PM_PKVM_FEATURES       0x9dULL

/* A protected VM (upstream pKVM, merged about 7.1; see docs/DESIGN.md):
 *  - its memslots are frozen once it has run (a vCPU's first KVM_RUN):
 *    KVM_SET_USER_MEMORY_REGION(2) that would create, delete, move or
 *    change a slot fails with EPERM;
 *  - a page its guest holds (touched, shared or not) is pinned until the
 *    VM is destroyed: fallocate(PUNCH_HOLE) over one fails with EBUSY and
 *    punches nothing;
 *  - a host access through a guest_memfd mapping to a page the host may
 *    not map gets SIGSEGV (an abort injected by the hypervisor), where
 *    the other VM types get SIGBUS. */

/* What pKVM's hypervisor has done in this process (every pkvm VM, live or
 * destroyed) is read with PM_KVM_GET_MODEL_STATS on the system handle,
 * vm_type PM_VM_TYPE_PKVM: for each of its transitions (host_share_hyp,
 * guest_share_host, ..., as the hypervisor names them) the number done,
 * named after the transition, and the number refused (an error returned),
 * named <transition>_refused; then host_s2_faults (host accesses refused by
 * the host stage-2), pages_poisoned (pages reclaimed while a guest owned
 * them) and unshare_busy (guest unshares refused: the host pinned the page);
 * then the guest interface's: hyp_meminfo_calls, mmio_guard_grants,
 * mmio_guard_refusals, mmio_aborts (MMIO accesses answered with an abort),
 * memslot_frozen_refusals and punch_pinned_refusals. */

/* ---- extension: guest_memfd creation flags ----
 * guest_memfd hands out the largest naturally aligned page (1G, 2M, 4K) that
 * fits the file and the pool. These flags cap it, for 2M-vs-4K comparisons.
 * A KVM client never meets them: they are EINVAL, as every flag
 * KVM_CAP_GUEST_MEMFD_FLAGS does not list, until the VM enables privmem's
 * capability PM_CAP_GUEST_MEMFD_PAGE_SIZE (KVM_ENABLE_CAP, args[0] = 1; 0
 * disables them again); KVM_CHECK_EXTENSION of it is 1. */
#define PM_GUEST_MEMFD_FLAG_NO_1G   (1ULL << 62) /* at most 2M pages */
#define PM_GUEST_MEMFD_FLAG_NO_HUGE (1ULL << 63) /* 4K pages only */

/* privmem's capabilities (KVM_CHECK_EXTENSION, KVM_ENABLE_CAP), numbered
 * far above KVM's. */
#define PM_CAP_BASE                   0x504d0000
#define PM_CAP_GUEST_MEMFD_PAGE_SIZE  (PM_CAP_BASE + 1)

/* ---- the KVM version privmem presents ----
 * privmem serves the newest uAPI it implements (KVM_CAP_GUEST_MEMFD_FLAGS
 * with GUEST_MEMFD_FLAG_MMAP and _INIT_SHARED, as Linux 6.18). Programs
 * written for an older kernel may expect its answers: the environment
 * variable PRIVMEM_KVM_VERSION=6.12 (read at start-up) presents Linux
 * 6.12's guest_memfd instead, which takes no creation flags (every flag is
 * EINVAL, KVM_CAP_GUEST_MEMFD_FLAGS and KVM_CAP_GUEST_MEMFD_MMAP are 0, and
 * so mmap of a guest_memfd is ENODEV). */

/* ---- in-place conversion ----
 * KVM's read-only module parameter gmem_in_place_conversion (v8 of the
 * series "guest_memfd: In-place conversion support") is the environment
 * variable PRIVMEM_GMEM_IN_PLACE here: 1 (or y, Y) turns it on, read once at
 * the library's first use. On: guest_memfd keeps the shared/private state
 * of VMs with private memory (KVM_SET_MEMORY_ATTRIBUTES2 on the file,
 * KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES; KVM_CAP_MEMORY_ATTRIBUTES reads 0).
 * Off (the default): the VM's attributes, as before. */

/* ---- extension: guest_memfd pins ----
 * The host holding pages of a guest_memfd, as get_user_pages would for DMA:
 * only pages the host can map now (shared pages: INIT_SHARED files', pages
 * made shared in place, pages a pKVM guest shared), else EFAULT, with
 * nothing pinned. While a page is pinned a pKVM guest cannot unshare it
 * (its unshare fails with EBUSY) and KVM_SET_MEMORY_ATTRIBUTES2 cannot make
 * it private (EAGAIN, error_offset: the page). Pins nest; a
 * punch hole drops the pins of the pages it removes; unpinning a page that
 * is not pinned is EINVAL. offset and size: page multiples (EINVAL). */
struct pm_gmem_pin {
	__u64 offset;
	__u64 size;
};
#define PM_GUEST_MEMFD_PIN   _IOW(PMIO, 0x30, struct pm_gmem_pin)
#define PM_GUEST_MEMFD_UNPIN _IOW(PMIO, 0x31, struct pm_gmem_pin)

/* ---- extension ioctls ---- */

/* The frame pool: privmem's simulated host physical memory. */
#define PM_POOL_MAX_ORDER 18 /* 1 GiB runs */
/* The pool's simulated NUMA nodes: the frames are split in equal parts,
 * node 0 first (each a multiple of 2 MiB; the last takes the rest).
 * PRIVMEM_POOL_NODES sets how many (default 1). A guest_memfd's pages come
 * from the nodes of the policy a VMM sets with mbind() on a mapping of it
 * (pm_kvm_mbind): for later allocations only, as Linux 6.19; the others
 * from node 0 first (the simulated CPUs' node). */
#define PM_POOL_MAX_NODES 16

struct pm_pool_stats {
	__u64 size;           /* bytes the pool manages */
	__u64 in_use;         /* bytes handed out */
	__u64 populated;      /* bytes backed by host memory (in use or free) */
	__u64 watermark;      /* free populated bytes kept before returning memory to the OS */
	__u64 scrubbed;       /* bytes zeroed on free, since the pool was configured */
	__u64 released;       /* bytes returned to the OS, since the pool was configured */
	__u64 alloc_failures; /* allocations refused with ENOMEM */
	__u64 thp;            /* 1 if the host backs the pool with transparent huge pages */
	__u64 free_blocks[PM_POOL_MAX_ORDER + 1]; /* free runs per order (4K << order) */
	__u64 nr_nodes;       /* simulated NUMA nodes */
	__u64 node_size[PM_POOL_MAX_NODES];   /* bytes of each node */
	__u64 node_in_use[PM_POOL_MAX_NODES]; /* bytes handed out from each node */
};

struct pm_pool_config {
	__u64 size;      /* bytes, a multiple of 2 MiB; 0 keeps the current size */
	__u64 watermark; /* bytes, at most the size; 0 keeps the current watermark
	                  * (capped at the new size) */
	__u64 nodes;     /* simulated NUMA nodes, 1..PM_POOL_MAX_NODES, each at least
	                  * 2 MiB; 0 keeps the current number */
};

/* System handle: read the pool statistics. */
#define PM_KVM_GET_POOL_STATS _IOR(PMIO, 0x10, struct pm_pool_stats)
/* System handle: resize the pool. EBUSY while any frame is in use, EINVAL
 * for a size that is not a multiple of 2 MiB or a watermark above the size.
 * The initial size comes from the environment variable PRIVMEM_POOL_SIZE
 * (bytes, or with a K/M/G/T suffix), default 4 GiB; the watermark from
 * PRIVMEM_POOL_WATERMARK, default 256 MiB or the size if smaller. */
#define PM_KVM_SET_POOL_CONFIG _IOW(PMIO, 0x11, struct pm_pool_config)

/* guest_memfd handle: where the file's pages came from. */
struct pm_gmem_file_stats {
	__u64 pages;                          /* 4K pages allocated */
	__u64 node_pages[PM_POOL_MAX_NODES];  /* of which on each node */
};
#define PM_GUEST_MEMFD_GET_STATS _IOR(PMIO, 0x32, struct pm_gmem_file_stats)

/* VM handle: statistics of the VM since creation. */
enum {
	PM_STAT_EXITS_UCALL, PM_STAT_EXITS_MEMORY_FAULT, PM_STAT_EXITS_HYPERCALL,
	PM_STAT_EXITS_MMIO, PM_STAT_EXITS_INTR, PM_STAT_EXITS_SYSTEM_EVENT,
	PM_STAT_EXITS_ERROR,                /* KVM_RUN failed with no exit (ENOMEM, EIO) */
	PM_STAT_EXITS_IO,                   /* KVM_EXIT_IO (an x86 guest's in/out) */
	PM_STAT_EXITS_HLT,                  /* KVM_EXIT_HLT */
	PM_STAT_EXITS_SHUTDOWN,             /* KVM_EXIT_SHUTDOWN, KVM_EXIT_INTERNAL_ERROR */
	PM_STAT_NR_EXITS = 16,
};
enum {
	PM_STAT_INVAL_PUNCH, PM_STAT_INVAL_RELEASE, PM_STAT_INVAL_ATTR, PM_STAT_INVAL_MEMSLOT,
	PM_STAT_NR_INVAL = 4,
};
struct pm_vm_stats {
	__u64 exits[PM_STAT_NR_EXITS];      /* KVM_RUN exits by reason (all vCPUs) */
	__u64 faults;                       /* stage-2 faults handled */
	__u64 fault_retries;                /* faults that raced an invalidation */
	__u64 mapped[3];                    /* mappings installed: 4K, 2M, 1G */
	__u64 mappings[3];                  /* mappings present now: 4K, 2M, 1G */
	__u64 zapped;                       /* mappings removed */
	__u64 splits;                       /* huge mappings split by partial zaps */
	__u64 tlb_shootdowns;
	__u64 invalidations[PM_STAT_NR_INVAL]; /* by cause */
	__u64 table_pages;                  /* stage-2 page-table pages */
	__u64 reserved[8];
};
#define PM_KVM_GET_VM_STATS _IOR(PMIO, 0x20, struct pm_vm_stats)

/* VM handle: the launch measurement of a confidential VM, 48 bytes of
 * SHA-384: SNP's launch digest (PAGE_INFO chain), TDX's MRTD. The argument
 * is a pointer to a 48-byte buffer. ENOTTY for VM types that measure
 * nothing; EINVAL before the measurement is final (SNP: LAUNCH_FINISH, TDX:
 * KVM_TDX_FINALIZE_VM). */
#define PM_MEASUREMENT_SIZE 48
struct pm_measurement {
	__u8 digest[PM_MEASUREMENT_SIZE];
};
#define PM_KVM_GET_MEASUREMENT _IOR(PMIO, 0x21, struct pm_measurement)
/* The same into a 64-byte buffer, for measurements longer than 48 bytes (a
 * realm's RIM with SHA-512; PM_KVM_GET_MEASUREMENT gives E2BIG for it).
 * Shorter measurements are zero-padded: a realm's SHA-256 RIM is its first
 * 32 bytes in both. Realms: EINVAL before the first KVM_RUN activated it. */
struct pm_measurement64 {
	__u8 digest[64];
};
#define PM_KVM_GET_MEASUREMENT64 _IOR(PMIO, 0x21, struct pm_measurement64)

/* A protection model's own counters, as name/value pairs: nr entries are
 * filled, each named by the model. The names are listed in docs/DESIGN.md.
 *  - VM handle: the VM's model's counters (vm_type is not read). SNP: RMP
 *    entries by size, PSMASHes, PSC requests, validations, RMP violations,
 *    ...; TDX: S-EPT entries by level, SEAMCALLs, BUSY retries, demotions,
 *    leaked pages, fatal events, ... ENOTTY for models without any.
 *  - System handle: the counters a model keeps for the whole process (its
 *    simulated hardware's, over every VM of the type, live or destroyed) of
 *    the model of vm_type, which the caller sets. pKVM: its hypervisor's
 *    (above). EINVAL for a type privmem does not offer, ENOTTY for a model
 *    that keeps none. */
#define PM_MODEL_STATS_MAX 32
struct pm_model_stats {
	__u32 nr;
	__u32 vm_type;
	struct {
		char name[40];
		__u64 value;
	} v[PM_MODEL_STATS_MAX];
};
#define PM_KVM_GET_MODEL_STATS _IOWR(PMIO, 0x22, struct pm_model_stats)
/* VM handle of a TDX VM: test and tuning switches (see docs/DESIGN.md). */
#define PM_TDX_NO_FROZEN_PROTOCOL (1U << 0) /* tests only: a mirror entry is set
                                             * before the module is told, not
                                             * frozen while it is (a fault racing
                                             * a fault of the same table fails) */
#define PM_TDX_NO_HUGE            (1U << 1) /* private pages at 4K only (upstream) */
struct pm_tdx_config {
	__u32 busy_per_million;   /* OPERAND_BUSY injected into S-EPT SEAMCALLs */
	__u32 flags;              /* PM_TDX_* */
};
#define PM_KVM_TDX_CONFIG _IOW(PMIO, 0x24, struct pm_tdx_config)

#ifdef __cplusplus
}
#endif

#endif /* PRIVMEM_PRIVMEM_H */

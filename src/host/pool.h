/* SPDX-License-Identifier: MIT */
/*
 * The frame pool: privmem's simulated host physical memory.
 *
 * One region of private anonymous memory (the library's "direct map"); frame
 * N is the 4 KiB at base + (N << 12), unless it is hidden (below). The host may back it with transparent
 * huge pages; nothing maps a frame at a second address (guest_memfd's views
 * map their file's host file, gmem_mmap.c), and a fork child gets a
 * copy-on-write copy.
 * A buddy allocator hands out naturally aligned runs of 4K << order frames,
 * order 0..PM_POOL_MAX_ORDER (4K, 2M = order 9, 1G = order 18).
 *
 * Invariants:
 *  - every free frame reads zero: frames are scrubbed when freed (memset, or
 *    released to the OS, which also zeroes), so no data passes between owners;
 *    that includes the 4K frames a thread keeps in its cache (below);
 *  - host memory is populated in 2 MiB chunks when first allocated from, and
 *    free 2 MiB (or larger) runs are returned to the OS while the free
 *    populated memory exceeds the watermark;
 *  - bookkeeping is struct pm_frame, at most 16 bytes per frame.
 *
 * Per-thread caches: each thread that allocates or frees 4K frames keeps up
 * to 64 free ones of its own, so that the common 4K alloc and free take no
 * shared lock; it refills and flushes them 32 at a time, and returns them
 * when it exits. Frames in a cache are free to every user: they read zero,
 * freeing one again aborts, statistics and reconfiguration drain every
 * cache first, and an allocation reclaims every thread's cache before it
 * fails with ENOMEM.
 *
 * Simulated NUMA nodes: the frames are split in equal parts (node 0 first,
 * each a multiple of 2 MiB); each node has its own free lists and no block
 * spans two. An allocation may carry a policy (pm_pool_alloc_policy).
 *
 * Frames out of the direct map (pool_hidden.c): a run can be hidden from
 * the pool's mapping (a stray access faults) while pm_pfn_to_hva() gives
 * the simulated hardware and the trusted paths an alias of it.
 *
 * Locking: pool_lock (private to the pool's files, pool*.c) protects the
 * free lists, the frame flags and the statistics. Scrubbing happens outside
 * it. A cache has a lock of its own, which only its thread takes outside a
 * drain.
 */
#ifndef PM_HOST_POOL_H
#define PM_HOST_POOL_H

#include "lib/common.h"
#include <privmem/privmem.h>

/* Allocates 4K << order contiguous, naturally aligned frames (zeroed).
 * Returns 0 and *pfn, or -ENOMEM. Initialises the pool on first use. */
int pm_pool_alloc(unsigned int order, pm_pfn_t *pfn);

/* Simulated NUMA nodes (PM_POOL_MAX_NODES in privmem.h). An allocation's
 * policy: the nodes it may use and the one it tries first. */
struct pm_node_policy {
	uint32_t allowed;       /* a bit per node; 0: any node */
	uint32_t preferred;     /* nodes tried first (ascending); then the allowed
	                         * ones, ascending */
};
/* pm_pool_alloc within a policy (NULL: as pm_pool_alloc): -ENOMEM when no
 * allowed node has the run. Runs with a policy bypass the per-thread
 * caches (they hold frames of any node). */
int pm_pool_alloc_policy(unsigned int order, const struct pm_node_policy *p, pm_pfn_t *pfn);
/* The node of an allocated frame; the pool's number of nodes. */
unsigned int pm_pool_node_of(pm_pfn_t pfn);
unsigned int pm_pool_nr_nodes(void);

/* Frees frames [pfn, pfn + (1 << order)): scrubs them, then returns them to
 * the buddy lists (merging with free buddies), or a 4K frame to the calling
 * thread's cache. The run must be naturally aligned and allocated; it may be
 * part of a larger allocation (a huge page being split). */
void pm_pool_free(pm_pfn_t pfn, unsigned int order);

/* Library address of a frame (valid while allocated): the direct map, or
 * for a hidden frame its alias (the path of the simulated hardware and
 * privmem's trusted components, who ask the host access guards first). */
void *pm_pfn_to_hva(pm_pfn_t pfn);
/* The frame's address in the direct map, the host's view of the pool: a
 * hidden frame faults there. */
void *pm_pfn_to_direct(pm_pfn_t pfn);

/* Takes freshly allocated frames [pfn, pfn + (1 << order)) out of the
 * direct map (GUEST_MEMFD_FLAG_NO_DIRECT_MAP, pool_hidden.c): 0, -ENOMEM,
 * -EBUSY (the pool was re-created with another size while frames were
 * hidden). reveal puts them back, before they are freed. */
int pm_pool_hide(pm_pfn_t pfn, unsigned int order);
void pm_pool_reveal(pm_pfn_t pfn, unsigned int order);
/* Frame of a library address inside the pool, or PM_PFN_INVALID. */
pm_pfn_t pm_hva_to_pfn(const void *hva);
/* Number of frames the pool manages. */
uint64_t pm_pool_nr_frames(void);

/* Resizes the pool and sets its number of nodes (see PM_KVM_SET_POOL_CONFIG;
 * 0 keeps a setting), after draining every thread's cache. 0 or -EBUSY /
 * -EINVAL / -ENOMEM. */
int pm_pool_configure(uint64_t size, uint64_t watermark);
int pm_pool_configure_nodes(uint64_t size, uint64_t watermark, unsigned int nodes);
/* Drains every thread's cache into the buddy lists, then reads the
 * statistics: they are exact, as if there were no caches. */
void pm_pool_get_stats(struct pm_pool_stats *st);
/* Frames sitting in threads' caches now, without draining them (for tests). */
uint64_t pm_pool_cached_frames(void);

#endif

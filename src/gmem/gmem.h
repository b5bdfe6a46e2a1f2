/* SPDX-License-Identifier: MIT */
/*
 * guest_memfd: the file that holds a VM's private memory.
 *
 * Ownership: a guest_memfd is reference counted (its handle, each mmap
 * view, and faults in flight hold references). It holds a reference on its
 * VM: the file pins the VM, not the other way round. Memslots bind to it
 * without a reference; the last put releases the file: every binding is
 * cleared (slot->gmem = NULL, mappings zapped), then, after an RCU grace
 * period, the pages go back to the pool and the VM reference is dropped.
 *
 * Pages: a three-level index (1G, 2M, 4K entries) maps file pages to pool
 * frames. A page is allocated on first use (a fault) with the largest
 * naturally aligned order (1G, 2M, 4K) that lies inside the file, is wholly
 * unpopulated and the pool can give; fallocate allocates the largest whose
 * aligned blocks lie inside its range too, so that a 4K fallocate costs 4K.
 * Huge pages are split when partly punched. Frames are scrubbed by the pool when freed, so punched pages
 * read zero afterwards. A punch over a page the VM pins (pm_model_ops.
 * gmem_pinned: a pKVM guest's pages) fails with EBUSY and punches nothing.
 *
 * The host's side (gmem_host.c): a file made with GUEST_MEMFD_FLAG_MMAP
 * has a host file H, which views map and which holds exactly the pages
 * the host may map; taking a page from the host punches it out of H, so
 * the kernel unmaps it from every mapping in every process. While a
 * page's contents are in H, the guest's accesses go there too (see
 * pm_gmem_host_page).
 *
 * The shared/private state (gmem_attrs.c): an attribute store indexed by
 * file page, the record of in-place conversion (KVM_SET_MEMORY_ATTRIBUTES2)
 * and of what a pKVM guest shares; the host file holds exactly the shared
 * pages.
 *
 * Locks (order: conv_lock, bindings_lock, the VM's mmu_lock, host_lock,
 * the index stripes in ascending order, the pool; views being made and
 * pins allocate pages under host_lock; invalidations, the host file's
 * updates and the freeing of punched frames run with no stripe held):
 *   conv_lock (mutex): one KVM_SET_MEMORY_ATTRIBUTES2 at a time.
 *   bindings_lock (big-reader lock, gmem_internal.h): the bindings list.
 *     Exclusive: bind, unbind, release. Shared: punch hole and memory
 *     failure, for their whole duration, so the set of slots they
 *     invalidate cannot change under them. A shared hold writes only the
 *     calling thread's slot of the lock.
 *   index stripes (rwlocks, each on cache lines of its own): the page
 *     index, see below.
 *   host_lock (mutex): what the host file holds, the host map (which
 *     pages are in it, pins), the shared/private state, the file's views.
 *   pos_lock (mutex, gmem_write.c): write()'s file position, taken before
 *     everything else.
 *   mpol.lock (mutex, a leaf, gmem_numa.c): the file's NUMA policy ranges,
 *     read by allocations under their stripe.
 *
 * Index locking. File page i lies in 2M block i >> 9; block b is locked by
 * stripe gmem_stripe_of(b): a file has one stripe per block up to 32, and
 * beyond that the blocks are hashed over 32 stripes. An operation on pages
 * [start, end) holds the stripes of every block the range touches (all of
 * them for a large range), taken in ascending order, for its whole index
 * update, so an allocation and a punch of overlapping ranges run one after
 * the other, while operations on blocks of different stripes share no lock
 * and write no common cache line:
 *   shared: lookups (get_pfn, peek) and allocations (fallocate, get_pfn).
 *     An empty entry is filled by compare-and-exchange (a loser frees what
 *     it allocated and uses the winner's); PREPARED is or-ed into a page.
 *   exclusive: punch hole and memory failure: removal, splitting, POISON,
 *     freeing of index nodes.
 * An entry that is not empty is removed or split only with every stripe of
 * its span held exclusively (a 4K or 2M entry: its block's stripe; a 1G
 * entry: every stripe), and a 1G page is inserted only with every stripe
 * held exclusively; an empty top entry becomes a node under any stripe of
 * its blocks. So a block's stripe pins the entries and nodes on the path to
 * it (only empty entries change under a shared holder), a split is never
 * seen half built, and a node is freed with no reader in it. An operation
 * that will insert or split a 1G page finds out under its stripes, drops
 * them and takes them all, before changing anything.
 *
 * Statistics are counted per stripe (in the stripe of the changed entry's
 * first page) and summed on read: exact when no operation runs.
 */
#ifndef PM_GMEM_GMEM_H
#define PM_GMEM_GMEM_H

#include <pthread.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <privmem/privmem.h>
#include "lib/common.h"

struct pm_vm;
struct pm_memslot;
struct pm_gmem;

int pm_gmem_create(struct pm_vm *vm, uint64_t size, uint64_t flags, struct pm_gmem **out);
void pm_gmem_get(struct pm_gmem *g);
/* Takes a reference unless the file is being released; false then. */
bool pm_gmem_tryget(struct pm_gmem *g);
void pm_gmem_put(struct pm_gmem *g);

/* Binds slot (not yet published) to g at byte offset. -EINVAL, -EEXIST. */
int pm_gmem_bind(struct pm_gmem *g, struct pm_vm *vm, struct pm_memslot *slot, uint64_t offset);
/* Removes slot's binding, if the file still has it (slots_lock held). */
void pm_gmem_unbind(struct pm_memslot *slot);

/* guest_memfd's fallocate: called after vfs_fallocate()'s checks
 * (uapi/vfs.h) passed. A punch over a page the VM pins is EBUSY. */
int pm_gmem_fallocate(struct pm_gmem *g, int mode, int64_t offset, int64_t len);
void pm_gmem_fstat(struct pm_gmem *g, struct stat *st);
uint64_t pm_gmem_flags(const struct pm_gmem *g);
uint64_t pm_gmem_size(const struct pm_gmem *g);
struct pm_vm *pm_gmem_vm(const struct pm_gmem *g);

/* The frame backing file page `index`, allocating it if needed; calls the
 * model's prepare hook on first use. *order is the order of the huge page
 * the frame belongs to; *pfn is the frame of `index` itself.
 * 0, -ENOMEM, -EHWPOISON, -EINVAL (index past the end). */
int pm_gmem_get_pfn(struct pm_gmem *g, uint64_t index, gfn_t gfn, pm_pfn_t *pfn,
		    unsigned int *order);

/* The same for a shared access of the guest (a gmem-only slot): no prepare
 * hook, which hands a page to the guest as private (SNP's RMPUPDATE) and
 * which only private pages get (in-place conversion, 12/46). */
int pm_gmem_get_pfn_shared(struct pm_gmem *g, uint64_t index, pm_pfn_t *pfn,
			   unsigned int *order);

/* The same for host use (mmap views): no prepare hook, which only the
 * guest's first use runs. */
int pm_gmem_get_pfn_host(struct pm_gmem *g, uint64_t index, pm_pfn_t *pfn);
/* Populates file page `index` (for gfn) before the guest's first use, as
 * kvm_gmem_populate: fn(arg, pfn, gfn) fills the frame and hands it to the
 * guest (SNP's LAUNCH_UPDATE), under the page's stripe held shared; a 4K
 * page then counts as prepared. -EEXIST if it was prepared already,
 * -ENOMEM, -EHWPOISON, -EINVAL (index past the end), or fn's error. */
int pm_gmem_populate(struct pm_gmem *g, uint64_t index, gfn_t gfn,
		     int (*fn)(void *arg, pm_pfn_t pfn, gfn_t gfn), void *arg);

/* Marks file page `index` as hardware-poisoned (memory failure): a later
 * pm_gmem_get_pfn gives -EHWPOISON and the frame is never reused. */
int pm_gmem_poison(struct pm_gmem *g, uint64_t index);

/* mmap / munmap of a guest_memfd (views), see gmem_mmap.c. */
void *pm_gmem_mmap(struct pm_gmem *g, void *addr, size_t len, int prot, int flags,
		   int64_t offset, int *err);
/* Unmaps the view starting exactly at addr; -EINVAL if there is none. */
int pm_gmem_munmap(void *addr, size_t len);

/* The parts of [lo, hi) that views of guest_memfds map, in address order,
 * each with a reference on its file: what a call on an address range
 * (madvise, mbind) applies to a file. 0 or -ENOMEM. */
struct pm_gmem_view_part {
	struct pm_gmem *g;          /* referenced */
	uint8_t *lo, *hi;           /* the addresses */
	uint64_t start, end;        /* the file pages they map */
	int prot;                   /* the view's */
};
int pm_gmem_views_in(const uint8_t *lo, const uint8_t *hi, struct pm_gmem_view_part **parts,
		     size_t *n);
void pm_gmem_views_put(struct pm_gmem_view_part *parts, size_t n);

/* write() / pwrite() of a guest_memfd (gmem_write.c): bytes written, or
 * -ENOSPC (at or past the end), -EACCES (a page the host may not access),
 * -EFAULT (the source), -ENOMEM; short after progress. write_at_pos uses
 * and advances the file's position. */
ssize_t pm_gmem_write(struct pm_gmem *g, const void *buf, size_t count, uint64_t off);
ssize_t pm_gmem_write_at_pos(struct pm_gmem *g, const void *buf, size_t count);

/* mbind / get_mempolicy on a range that views may map (gmem_numa.c):
 * Linux's arguments and errno; parts no view maps go to the kernel.
 * get_mempolicy answers (*handled) only for MPOL_F_ADDR on a view. */
int pm_gmem_mbind(void *addr, unsigned long len, unsigned long mode, const unsigned long *nmask,
		  unsigned long maxnode, unsigned int flags);
int pm_gmem_get_mempolicy(int *mode, unsigned long *nmask, unsigned long maxnode, void *addr,
			  unsigned long flags, bool *handled);

/* madvise on a range that views of guest_memfds may map (gmem_madvise.c). */
int pm_gmem_madvise(void *addr, size_t len, int advice);

/* PM_GUEST_MEMFD_PIN / _UNPIN of file pages [start, end): 0, -EFAULT (a
 * page the host cannot map now), -EINVAL (unpin: a page not pinned),
 * -ENOMEM; all or nothing. O(1) per page. */
int pm_gmem_pin(struct pm_gmem *g, uint64_t start, uint64_t end);
int pm_gmem_unpin(struct pm_gmem *g, uint64_t start, uint64_t end);

/*
 * Where the guest's accesses to file page `index` go: the library's own
 * mapping of the host file when the page's contents are there (the host
 * may map it: an INIT_SHARED file's pages, a page a pKVM guest shares),
 * else NULL (the frame; *moving set if the contents are between the two
 * right now: translate again). Takes no lock; the caller keeps the file
 * alive (a reference, or an RCU read-side section on a slot's file).
 */
uint8_t *pm_gmem_host_page(struct pm_gmem *g, uint64_t index, bool *moving);

/* The model let the host have file pages [start, end) (a pKVM share):
 * every page whose frame the model accepts (gmem_host_mappable) comes into
 * the host file, so views show it, in place (from the file's first view
 * on: before, nothing maps the host file and shared pages stay in their
 * frames). A page the host file has no memory for stays out (the host
 * faults there, as without memory). The VM's vCPUs are shot down while
 * pages move. */
void pm_gmem_host_share(struct pm_gmem *g, uint64_t start, uint64_t end);
/* The guest takes file pages [start, end) back (a pKVM unshare), up to the
 * first page the host pins (-EBUSY if that is the first): under host_lock
 * its pages in the host file are marked moving and the vCPUs shot down
 * (none reaches them now), take(arg, n) runs (the model's transitions: how
 * many pages from start it took, or -errno), and the pages it took leave
 * the host file (every mapping of it) with their contents back in their
 * frames before any vCPU reaches them again; the rest stay. Returns
 * take's result. */
long pm_gmem_host_unshare(struct pm_gmem *g, uint64_t start, uint64_t end,
			  long (*take)(void *arg, uint64_t n), void *arg);
/* The model took pages of [start, end) back for the host on its own (a
 * memslot's deletion): those whose frames it no longer lets the host map
 * leave the host file, their contents back in their frames. */
void pm_gmem_host_reclaimed(struct pm_gmem *g, uint64_t start, uint64_t end);

/*
 * The file's shared/private state (gmem_attrs.c), the record of in-place
 * conversion: pm_gmem_is_private and pm_gmem_attrs_mixed (the 2M, level
 * 1, or 1G, level 2, block of the file around `index` holds both states)
 * take no lock; the fault path orders them with the invalidation protocol.
 * pm_gmem_set_attributes is KVM_SET_MEMORY_ATTRIBUTES2 (v8's checks in
 * v8's order; 0 or -errno; a->error_offset set for -EAGAIN and -ENOMEM,
 * the cases whose struct the caller copies back).
 */
bool pm_gmem_is_private(struct pm_gmem *g, uint64_t index);
bool pm_gmem_attrs_mixed(struct pm_gmem *g, uint64_t index, int level);
struct kvm_memory_attributes2;
int pm_gmem_set_attributes(struct pm_gmem *g, struct kvm_memory_attributes2 *a);

/* Statistics for tests and reports. */
struct pm_gmem_stats {
	uint64_t pages;         /* 4K pages allocated */
	uint64_t folios[3];     /* allocated huge pages by size: 4K, 2M, 1G */
	uint64_t splits;        /* huge pages split by punch hole */
	uint64_t poisoned;      /* pages lost to memory failure */
	uint64_t node_pages[PM_POOL_MAX_NODES]; /* pages by the node of their frames */
};
void pm_gmem_get_stats(struct pm_gmem *g, struct pm_gmem_stats *st);

#endif

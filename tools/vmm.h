/* SPDX-License-Identifier: MIT */
/*
 * A small VMM on privmem's KVM uAPI, shared by `privmem run` and
 * `privmem bench`: it creates a VM with one memslot covering guest RAM at
 * gpa 0 (shared pages in an anonymous mapping, private pages in a
 * guest_memfd), runs vCPU threads and answers their exits the way QEMU
 * does: KVM_HC_MAP_GPA_RANGE sets the attribute and discards the other copy
 * (destructive conversion), KVM_EXIT_MEMORY_FAULT converts as the access
 * asked (SNP's implicit conversion), MMIO goes to a device callback, and a
 * KVM_EXIT_SYSTEM_EVENT (a guest-fatal event) ends the run as an abort. It
 * gives up, with a message, where a run makes no progress: KVM_RUN failing
 * with ENOMEM (the simulated host memory is used up), a memory fault that
 * comes back for the same page after its conversion, and (the watchdog,
 * vmm_watch.c) no progress at all for stall_s seconds. A
 * pKVM VM (PM_VM_TYPE_PKVM) has all its RAM in the guest_memfd, and
 * `shared` is the file's mmap: the pages its guest shares, in place.
 *
 * In privmem's in-place mode (PRIVMEM_GMEM_IN_PLACE, `--gmem-in-place`;
 * the VM reports KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES), a VM with private
 * memory has all its RAM in a guest_memfd made with GUEST_MEMFD_FLAG_MMAP
 * and INIT_SHARED (all shared at first, as the VM attributes start), its
 * `shared` is the file's mmap, and a conversion is KVM_SET_MEMORY_ATTRIBUTES2
 * on the file: nothing to discard, the data stays in place (vmm_convert
 * picks the call of the mode).
 */
#ifndef PM_TOOLS_VMM_H
#define PM_TOOLS_VMM_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <privmem/guest.h>

#define VMM_MAX_VCPUS 64

/* The watchdog (vmm_watch.c): the signal that kicks a thread out of a
 * call retrying inside privmem, and the default time without progress
 * after which it does. */
#define VMM_KICK_SIGNAL SIGUSR1
#define VMM_STALL_DEFAULT_S 10
#define VMM_WATCH_SLOTS (VMM_MAX_VCPUS + 1)   /* the vCPU threads and the builder */

/* A memory-fault exit that comes back this many times in a row, for the
 * same page, after the conversion it asked for: no progress. */
#define VMM_FAULT_REPEATS 8

struct vmm;

struct vmm_watch {
	pthread_t tid;
	bool initialised, running;    /* lifetime of lock and thread (the creator's) */
	pthread_mutex_t lock;
	bool stop;                    /* lock */
	pthread_t thread[VMM_WATCH_SLOTS];   /* lock: the threads inside watched calls */
	bool in[VMM_WATCH_SLOTS];     /* lock */
	int nr_in;                    /* lock */
};

/* Called on the vCPU thread for an MMIO exit; fills run->mmio.data for reads. */
typedef void (*vmm_mmio_fn)(struct vmm *m, int vcpu, struct kvm_run *run);
/* Called on the vCPU thread for a PM_UCALL_SYNC. */
typedef void (*vmm_sync_fn)(struct vmm *m, int vcpu, const struct pm_ucall *uc);

struct vmm {
	int kvm, vm, gmem;
	unsigned long type;
	bool private_mem;             /* the VM type has private memory */
	uint64_t mem_size;            /* guest RAM [0, mem_size) */
	uint8_t *shared;              /* the VMM's mapping of shared pages */
	/* A firmware flash (vmm_add_flash): slot 1, private memory at
	 * [flash_gpa, flash_gpa + flash_size); flash_gmem -1 without one. */
	int flash_gmem;
	uint8_t *flash_shared;
	uint64_t flash_gpa, flash_size;
	bool shared_is_view;          /* pKVM, in-place mode: shared is guest_memfd's
	                               * mmap (in place) */
	bool in_place;                /* conversions: KVM_SET_MEMORY_ATTRIBUTES2 on gmem */
	int nr_vcpus;
	int vcpu[VMM_MAX_VCPUS];
	struct kvm_run *run[VMM_MAX_VCPUS];
	vmm_mmio_fn mmio;
	vmm_sync_fn sync;
	void *ctx;                    /* for the callbacks */

	/* Which pages the VMM made private (a bit per 4K page, atomics): what
	 * it asked of the VM (conversions, pKVM's shares) and so knows. */
	_Atomic uint64_t *private_map;
	atomic_uint_fast64_t private_pages;

	/* Counters (atomics: several vCPU threads update them). */
	atomic_uint_fast64_t to_private_pages, to_shared_pages;
	atomic_uint_fast64_t conversions;
	atomic_uint_fast64_t implicit_conversions;  /* KVM_EXIT_MEMORY_FAULT answered */
	atomic_uint_fast64_t progress;   /* SYNC ucalls: guest progress marks */
	atomic_uint_fast64_t aborts;
	char abort_msg[320];             /* first abort (under abort_lock) */
	pthread_mutex_t abort_lock;

	/* The watchdog: give up after stall_s seconds without progress (set
	 * before the vCPUs run; vmm_create sets VMM_STALL_DEFAULT_S). */
	unsigned int stall_s;
	atomic_bool stalled;             /* the watchdog kicked the VM's threads */
	struct vmm_watch watch;
	void *observer_ctx;              /* the observer's, while the VM lives */
};

/* An observer of every VM vmm_create sets up (privmem run --plot): created
 * once it has its memory and vCPUs, destroying when vmm_destroy begins. */
struct vmm_observer {
	void (*created)(struct vmm *m, void *arg);
	void (*destroying)(struct vmm *m, void *arg);
	void *arg;
};
/* Sets (or with NULL clears) the observer; before any VM is created. */
void vmm_set_observer(const struct vmm_observer *obs);

/* Records that [gpa, gpa + size) is now private (or shared): private_map
 * and private_pages. */
void vmm_mark_private(struct vmm *m, uint64_t gpa, uint64_t size, bool private);

/* Creates the VM; gmem_flags are extra guest_memfd flags (e.g. 4K only).
 * Blocks VMM_KICK_SIGNAL in the calling thread (the threads it starts
 * later inherit that) and starts the watchdog. Refuses a VM whose guest
 * memory cannot fit in privmem's simulated host memory (ENOMEM). Returns 0
 * or -errno (with a message on stderr). */
int vmm_create(struct vmm *m, unsigned long type, uint64_t mem_size, int nr_vcpus,
	       uint64_t gmem_flags);
void vmm_destroy(struct vmm *m);

/* The library's mode (PRIVMEM_GMEM_IN_PLACE, --gmem-in-place) as a VMM
 * learns it: KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES on /dev/kvm. */
bool vmm_gmem_in_place(void);

/* privmem's simulated host memory (the frame pool, PRIVMEM_POOL_SIZE), in
 * bytes; 0 if it cannot be read. */
uint64_t vmm_host_memory(void);
/* 0 if `bytes` of guest memory fit in it; else a message that names
 * `what` (the option asking for them) and PRIVMEM_POOL_SIZE, and 2 (the
 * CLI's status for refused options). */
int vmm_check_host_memory(uint64_t bytes, const char *what);

/* The watchdog (vmm_watch.c). vmm_watch_enter/leave bracket a call that
 * may retry inside privmem (KVM_RUN, a TDX build ioctl) on the calling
 * thread: while inside, the thread is kicked with VMM_KICK_SIGNAL after
 * stall_s seconds without progress, and the call ends with EINTR. enter
 * returns the slot to give back to leave (-1: not watched); leave drains a
 * kick still pending. vmm_gave_up: the watchdog has kicked. */
int vmm_watch_start(struct vmm *m);
void vmm_watch_stop(struct vmm *m);
int vmm_watch_enter(struct vmm *m);
void vmm_watch_leave(struct vmm *m, int slot);
bool vmm_gave_up(struct vmm *m);

/* A second memslot (slot 1) for a firmware flash at gpa, above guest RAM,
 * backed by a guest_memfd of its own and made private (KVM_SET_MEMORY_
 * ATTRIBUTES), as QEMU maps a confidential VM's flash: 0 or -errno (with a
 * message). */
int vmm_add_flash(struct vmm *m, uint64_t gpa, uint64_t size);

/* Conversion of [gpa, gpa + size) as the VMM answers a guest: in-place
 * mode's KVM_SET_MEMORY_ATTRIBUTES2 on the guest_memfd, or else
 * KVM_SET_MEMORY_ATTRIBUTES and a discard of the other copy (destructive);
 * counted. 0 or -errno. */
int vmm_convert(struct vmm *m, uint64_t gpa, uint64_t size, bool to_private);
/* The attribute change alone, in the mode's call, not counted (a build
 * making its RAM private): 0 or -errno. */
int vmm_set_private(struct vmm *m, uint64_t gpa, uint64_t size, bool to_private);
/* Reads len bytes of shared guest memory at gpa as a system call would
 * (process_vm_readv): 0, or -EFAULT where the host may not map the page
 * (in-place mode's private pages: where a plain read gets SIGBUS). */
int vmm_host_read(struct vmm *m, uint64_t gpa, void *buf, size_t len);

/* Sets guest code on every vCPU: fn(g, args[i]). */
int vmm_set_guest(struct vmm *m, void (*fn)(struct pm_guest *g, void *arg), void **args);

/* Runs every vCPU on its own thread until its guest is done; 0 if all
 * finished with DONE, -1 if any aborted or KVM_RUN failed. The calling
 * thread calls tick(m, ctx) at once and then about every 200 ms meanwhile
 * (if not NULL). */
int vmm_run_all(struct vmm *m, void (*tick)(struct vmm *m, void *ctx), void *ctx);

/* TDX (vmm_tdx.c): KVM_MEMORY_ENCRYPT_OP with a kvm_tdx_cmd on fd (m's VM
 * or one of its vCPUs), going on after EINTR unless the watchdog gave up;
 * the message for a build step `what` that failed (errno), which says so
 * when the watchdog gave up; and the build before an image is added: the
 * config, INIT_VM (48-bit GPAW), INIT_VCPU on every vCPU, all RAM private,
 * 0 or -1 (with a message on stderr). Build steps run between
 * vmm_watch_enter and vmm_watch_leave. */
long vmm_tdx_op(struct vmm *m, int fd, uint32_t id, uint32_t flags, void *data);
void vmm_tdx_build_error(struct vmm *m, const char *what);
int vmm_tdx_init(struct vmm *m, const struct pm_tdx_config *cfg);

/* Statistics. */
int vmm_vm_stats(struct vmm *m, struct pm_vm_stats *st);
int vmm_pool_stats(struct vmm *m, struct pm_pool_stats *st);
/* One of the model's counters (PM_KVM_GET_MODEL_STATS) by name; 0 if the
 * model has no such counter. */
uint64_t vmm_model_stat(const struct pm_model_stats *st, const char *name);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the interposer's inputs, what libprivmem-kvm.so takes from
 * an untrusted program.
 *
 * The level: the interposer's objects (those of src/uapi/interpose/) are linked
 * into this target (the Makefile adds them for this one target), so its
 * open, ioctl, mmap, close... are this process's, exactly as under
 * LD_PRELOAD: the target calls them as a program would, and every other
 * descriptor and call (libFuzzer's, the sanitizers' runtime's) goes through
 * them to libc untouched. (dlopen'ing the built library instead would give
 * its calls a second copy of privmem and coverage libFuzzer does not see
 * from the start; this keeps one copy, the ASan/UBSan build of both.)
 *
 * The input is a stream of one-byte operations with small operands:
 *  - open of /dev/kvm (also as //dev/./kvm, relative to a /dev
 *    descriptor, with fopen) and of KVM module parameters, with any
 *    open mode;
 *  - ioctl(fd, cmd, arg) on /dev/kvm, VM, vCPU, guest_memfd and foreign
 *    descriptors (or closed numbers), cmd among KVM's and privmem's real
 *    numbers, the same with wrong sizes or directions, or any number; the
 *    argument an integer or a pointer: into a buffer of input bytes (or a
 *    template filled with the target's descriptors and addresses), at the
 *    end of a page before a PROT_NONE guard so that the struct fits or
 *    straddles it, into a read-only page, NULL, unmapped, not canonical,
 *    into a kvm_run or guest_memfd mapping; nested pointers (SEV and TDX
 *    command data, sources) likewise;
 *  - mmap (MAP_FIXED only inside a region the target reserved), munmap
 *    and madvise of whole or partial mappings, fallocate, read, write,
 *    pread, pwrite, fstat, fstatat and statx (AT_EMPTY_PATH) with those
 *    pointers, close, dup, dup2, dup3 and F_DUPFD (new numbers only in a
 *    reserved range), close_range over it, fcntl;
 *  - KVM_RUN (a vCPU without a guest: the engine on its reset state, or
 *    whatever state the input set), kicked after some CPU time;
 *  - the parsers of what the interposer reads besides calls, driven with
 *    input strings: the exec-time placeholder link (ipose_placeholder_parse),
 *    path normalisation and the /dev/kvm and module-parameter matches,
 *    PRIVMEM_POOL_SIZE sizes, PRIVMEM_VM_TYPES lists.
 * Checked: every call returns a result or -1 with an errno Linux gives for
 * it; a call whose argument pointer cannot be read (or, for a call that
 * writes back, written) fails with EFAULT (or EIO on a VM that is bugged),
 * never succeeds, never crashes; once the input's descriptors and mappings
 * are gone no placeholder descriptor remains (/proc/self/fd), the fd table
 * has no entry, the pool is back to its baseline and the next privmem
 * handle is the one handed out before. ASan, UBSan and LeakSanitizer watch
 * the rest.
 *
 * Built by the fuzzing framework (make fuzz) or linked with replay.c
 * (make check replays tests/fuzz/corpus/interpose/). FUZZ_TRACE=1 prints
 * every call; FUZZ_GMEM_IN_PLACE=1 runs with in-place conversion on (a
 * process-wide mode: KVM_SET_MEMORY_ATTRIBUTES2 on guest_memfd then
 * works); FUZZ_HISTORY_DIR keeps the last inputs (history.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <linux/falloc.h>
#include <linux/mempolicy.h>
#include <privmem/guest.h>
#include <privmem/privmem.h>
#include "host/pool.h"
#include "lib/rcu.h"
#include "models/model.h"
#include "uapi/interpose/interpose.h"
#include "history.h"

#define PAGE      4096UL
#define MAX_FDS   16
#define MAX_MAPS  12
#define FD_LO     900                   /* dup2/dup3/F_DUPFD/close_range targets */
#define FD_N      16
#define REGION_PAGES 512                /* MAP_FIXED only here (2 MiB) */
#define GUEST_MEM (4UL << 20)           /* memory templates give memslots */
#define POOL_SIZE (64ULL << 20)
#define RUN_CPU_NS (4 * 1000 * 1000)
#define KICK_SIGNAL (SIGRTMIN + 4)

enum kind { K_SYS, K_VM, K_VCPU, K_GMEM, K_FOREIGN, K_NONE };

struct fz_fd {
	int fd;
	enum kind kind;
};

struct fz_map {
	uint8_t *addr;
	size_t len;
	enum kind kind;
};

static struct {
	struct fz_fd fds[MAX_FDS];
	int nfds;
	struct fz_map maps[MAX_MAPS];
	int closed_fd;                  /* a number the input closed, or -1 */
	bool pool_changed;
} S;

enum page_state { PG_RESERVED, PG_OURS, PG_FOREIGN };

static bool trace;
static int devnull = -1, devdir = -1;
static uint8_t *region;                 /* REGION_PAGES reserved for MAP_FIXED */
static uint8_t page_state[REGION_PAGES];
static uint8_t *argbuf;                 /* 2 pages, then a PROT_NONE guard */
static uint8_t *guard;
static uint8_t *ro_page;
static uint8_t *guest_mem;
static uint64_t pool_baseline;
static int next_handle;
static timer_t kick_timer;

static const uint8_t *in_data;
static size_t in_len, in_pos;

static uint8_t u8(void)
{
	return in_pos < in_len ? in_data[in_pos++] : 0;
}

static uint64_t u64(void)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v |= (uint64_t)u8() << (8 * i);
	return v;
}

static _Noreturn __attribute__((format(printf, 1, 2))) void fz_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "fuzz_interpose: invariant broken: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	abort();
}

/* The errnos the calls may give (Linux's for KVM files, with privmem's
 * documented answers), 0-terminated. */
#define ERRS(...) ((const int[]){ __VA_ARGS__, 0 })
static const int *const e_ioctl = ERRS(EFAULT, EINVAL, ENOTTY, EBADF, EEXIST, ENOMEM, EIO, E2BIG,
				       ENOENT, EPERM, EBUSY, EAGAIN, EINTR, ENOSPC, EOPNOTSUPP,
				       ENXIO, EMFILE, ENODEV, EHWPOISON, EACCES, EFBIG);
static const int *const e_open = ERRS(ENOENT, EACCES, EINVAL, ENOMEM, EMFILE, ENXIO, EISDIR,
				      ENOTDIR, ELOOP, ENAMETOOLONG);
static const int *const e_mmap = ERRS(EINVAL, ENODEV, ENOMEM, EACCES, EPERM, EIO, EBADF, EEXIST,
				      EOVERFLOW);
static const int *const e_munmap = ERRS(EINVAL);
/* EFAULT and EHWPOISON: MADV_POPULATE_* on a page the host may not map
 * (a SIGBUS on access), as Linux's. */
static const int *const e_madvise = ERRS(EINVAL, EOPNOTSUPP, ENOMEM, EIO, EACCES, EBADF, EAGAIN,
					 EPERM, EFAULT, EHWPOISON, EBUSY);
/* EBUSY: a punch over pinned pages (PM_GUEST_MEMFD_PIN, a pKVM guest's),
 * fallocate's or MADV_REMOVE's. */
static const int *const e_falloc = ERRS(EINVAL, EOPNOTSUPP, ENOMEM, ENOSPC, EFBIG, EIO, EINTR,
					ENODEV, EBADF, ESPIPE, EPERM, EBUSY);
static const int *const e_rw = ERRS(EINVAL, EBADF, EFAULT, ESPIPE, EACCES, ENOSPC);
static const int *const e_close = ERRS(EBADF);
static const int *const e_dup = ERRS(EBADF, EINVAL, EMFILE, EBUSY);
static const int *const e_stat = ERRS(EBADF, EFAULT, EINVAL, ENOENT, ENOTDIR);
static const int *const e_fcntl = ERRS(EBADF, EINVAL);
static const int *const e_mbind = ERRS(EFAULT, EINVAL, ENOMEM, EIO, EPERM);
static const int *const e_getpol = ERRS(EFAULT, EINVAL);

static bool in_set(const int *set, int e)
{
	for (; *set; set++)
		if (*set == e)
			return true;
	return false;
}

static long check(const char *what, long r, const int *allowed)
{
	int e = errno;

	if (trace)
		fprintf(stderr, "  %-32s -> %ld%s%s\n", what, r, r < 0 ? " " : "", r < 0 ? strerror(e) : "");
	if (r >= 0)
		return r;
	if (r != -1)
		fz_fail("%s returned %ld", what, r);
	if (!in_set(allowed, e))
		fz_fail("%s failed with errno %d (%s), which Linux does not give there", what, e,
			strerror(e));
	errno = e;
	return r;
}

/* ---- descriptors ---- */

static void fd_add(int fd, enum kind k)
{
	if (fd < 0)
		return;
	for (int i = 0; i < S.nfds; i++)
		if (S.fds[i].fd == fd) {        /* dup2 onto one we hold */
			S.fds[i].kind = k;
			return;
		}
	if (S.nfds == MAX_FDS) {
		close(fd);
		return;
	}
	S.fds[S.nfds].fd = fd;
	S.fds[S.nfds++].kind = k;
}

static void fd_forget(int fd)
{
	for (int i = 0; i < S.nfds; i++)
		if (S.fds[i].fd == fd) {
			S.fds[i] = S.fds[--S.nfds];
			S.closed_fd = fd;
			return;
		}
}

static enum kind fd_kind(int fd)
{
	for (int i = 0; i < S.nfds; i++)
		if (S.fds[i].fd == fd)
			return S.fds[i].kind;
	return K_NONE;
}

/* A descriptor operand: one of the input's, of the kind wanted if there is
 * one, or a number that is not open, or a foreign file. */
static int pick_fd(uint8_t b, enum kind want)
{
	int n = 0, idx;

	switch (b >> 5) {
	case 0:
		return -1;
	case 1:
		return S.closed_fd >= 0 ? S.closed_fd : 100000;
	case 2:
		return devnull;
	default:
		break;
	}
	for (int i = 0; i < S.nfds; i++)
		n += S.fds[i].kind == want;
	if (n) {
		idx = (b & 31) % n;
		for (int i = 0; i < S.nfds; i++)
			if (S.fds[i].kind == want && idx-- == 0)
				return S.fds[i].fd;
	}
	return S.nfds ? S.fds[(b & 31) % S.nfds].fd : devnull;
}

/* ---- pointers ---- */

enum ptr_kind {
	P_BUF, P_FITS, P_STRADDLE, P_NULL, P_GUARD, P_RO, P_UNMAPPED, P_NONCANON,
	P_KERNEL, P_MAPPING, P_NR
};

/* Can the kernel read (write) `size` bytes there? */
static bool ptr_readable(enum ptr_kind k)
{
	return k == P_BUF || k == P_FITS || k == P_RO;
}

static bool ptr_writable(enum ptr_kind k)
{
	return k == P_BUF || k == P_FITS;
}

/* A pointer of kind k for an object of `size` bytes (the P_BUF and P_FITS
 * ones lie in argbuf, filled by the caller). */
static uint8_t *make_ptr(enum ptr_kind k, size_t size)
{
	size = size ? size : 1;
	switch (k) {
	case P_BUF: return argbuf;
	case P_FITS: return size <= 2 * PAGE ? guard - size : argbuf;
	case P_STRADDLE: return guard - (size + 1) / 2;
	case P_NULL: return NULL;
	case P_GUARD: return guard;
	case P_RO: return ro_page;
	case P_UNMAPPED: return (uint8_t *)(uintptr_t)0x10000;
	case P_NONCANON: return (uint8_t *)(uintptr_t)0x8000000000000000ULL;
	case P_KERNEL: return (uint8_t *)(uintptr_t)0xffffffffff600000ULL - PAGE;
	default:
		for (int m = 0; m < MAX_MAPS; m++)
			if (S.maps[m].addr && S.maps[m].len >= size)
				return S.maps[m].addr;
		return guard;
	}
}

/* A P_MAPPING pointer may be readable (a kvm_run page, a shared
 * guest_memfd page) or not (a private one): only "bad" kinds are sure. */
static bool ptr_surely_bad(enum ptr_kind k, bool writes)
{
	if (k == P_MAPPING)
		return false;
	return writes ? !ptr_writable(k) : !ptr_readable(k);
}

/* ---- the commands ---- */

#define F_IN   1        /* the kernel reads the struct */
#define F_OUT  2        /* the kernel writes it */
#define F_INT  4        /* the argument is a number */
#define F_FIRST 8       /* it copies the argument before any other check
                         * (a bad pointer is EFAULT; EIO on a bugged VM) */
#define F_MAYBE 16      /* F_OUT only once the input's values pass (list
                         * entries, a count of 0, an error first): a
                         * read-only page is not surely EFAULT */

struct cmd {
	unsigned long nr;
	enum kind kind;
	unsigned int flags;
	size_t size;            /* what the kernel copies (headers of lists) */
};

static const struct cmd cmds[] = {
	{ KVM_GET_API_VERSION, K_SYS, F_INT, 0 },
	{ KVM_CREATE_VM, K_SYS, F_INT, 0 },
	{ KVM_CHECK_EXTENSION, K_SYS, F_INT, 0 },
	{ KVM_GET_VCPU_MMAP_SIZE, K_SYS, F_INT, 0 },
	{ KVM_GET_SUPPORTED_CPUID, K_SYS, F_IN | F_OUT | F_FIRST | F_MAYBE, sizeof(struct kvm_cpuid2) },
	{ KVM_GET_MSR_INDEX_LIST, K_SYS, F_IN | F_OUT | F_FIRST, sizeof(struct kvm_msr_list) },
	{ KVM_GET_MSR_FEATURE_INDEX_LIST, K_SYS, F_IN | F_OUT | F_FIRST, sizeof(struct kvm_msr_list) },
	{ KVM_GET_MSRS, K_SYS, F_IN | F_OUT | F_FIRST | F_MAYBE, sizeof(struct kvm_msrs) },
	{ PM_KVM_GET_POOL_STATS, K_SYS, F_OUT | F_FIRST, sizeof(struct pm_pool_stats) },
	{ PM_KVM_SET_POOL_CONFIG, K_SYS, F_IN | F_FIRST, sizeof(struct pm_pool_config) },
	{ PM_KVM_GET_MODEL_STATS, K_SYS, F_IN | F_OUT | F_FIRST | F_MAYBE, sizeof(struct pm_model_stats) },
	{ KVM_CREATE_VCPU, K_VM, F_INT, 0 },
	{ KVM_CHECK_EXTENSION, K_VM, F_INT, 0 },
	{ KVM_SET_USER_MEMORY_REGION, K_VM, F_IN | F_FIRST, sizeof(struct kvm_userspace_memory_region) },
	{ KVM_SET_USER_MEMORY_REGION2, K_VM, F_IN | F_FIRST, sizeof(struct kvm_userspace_memory_region2) },
	{ KVM_SET_MEMORY_ATTRIBUTES, K_VM, F_IN | F_FIRST, sizeof(struct kvm_memory_attributes) },
	{ KVM_CREATE_GUEST_MEMFD, K_VM, F_IN | F_FIRST, sizeof(struct kvm_create_guest_memfd) },
	{ KVM_ENABLE_CAP, K_VM, F_IN | F_FIRST, sizeof(struct kvm_enable_cap) },
	{ KVM_MEMORY_ENCRYPT_OP, K_VM, F_IN | F_OUT, 0 },    /* sized by the model */
	{ PM_KVM_GET_VM_STATS, K_VM, F_OUT | F_FIRST, sizeof(struct pm_vm_stats) },
	{ PM_KVM_GET_MEASUREMENT, K_VM, F_OUT, sizeof(struct pm_measurement) },
	{ PM_KVM_GET_MODEL_STATS, K_VM, F_OUT, sizeof(struct pm_model_stats) },
	{ PM_KVM_TDX_CONFIG, K_VM, F_IN, sizeof(struct pm_tdx_config) },
	{ KVM_CREATE_IRQCHIP, K_VM, F_INT, 0 },
	{ KVM_SET_TSS_ADDR, K_VM, F_INT, 0 },
	{ KVM_SET_IDENTITY_MAP_ADDR, K_VM, F_INT, 0 },
	{ KVM_SET_NR_MMU_PAGES, K_VM, F_INT, 0 },
	{ KVM_GET_TSC_KHZ, K_VM, F_INT, 0 },
	{ KVM_RUN, K_VCPU, F_INT, 0 },
	{ KVM_PRE_FAULT_MEMORY, K_VCPU, F_IN | F_OUT | F_FIRST, sizeof(struct kvm_pre_fault_memory) },
	{ KVM_GET_REGS, K_VCPU, F_OUT | F_FIRST, sizeof(struct kvm_regs) },
	{ KVM_SET_REGS, K_VCPU, F_IN | F_FIRST, sizeof(struct kvm_regs) },
	{ KVM_GET_SREGS, K_VCPU, F_OUT | F_FIRST, sizeof(struct kvm_sregs) },
	{ KVM_SET_SREGS, K_VCPU, F_IN | F_FIRST, sizeof(struct kvm_sregs) },
	{ KVM_GET_FPU, K_VCPU, F_OUT | F_FIRST, sizeof(struct kvm_fpu) },
	{ KVM_SET_FPU, K_VCPU, F_IN | F_FIRST, sizeof(struct kvm_fpu) },
	{ KVM_GET_MSRS, K_VCPU, F_IN | F_OUT | F_FIRST | F_MAYBE, sizeof(struct kvm_msrs) },
	{ KVM_SET_MSRS, K_VCPU, F_IN | F_FIRST, sizeof(struct kvm_msrs) },
	{ KVM_GET_CPUID2, K_VCPU, F_IN | F_OUT | F_FIRST | F_MAYBE, sizeof(struct kvm_cpuid2) },
	{ KVM_SET_CPUID2, K_VCPU, F_IN | F_FIRST, sizeof(struct kvm_cpuid2) },
	{ KVM_GET_MP_STATE, K_VCPU, F_OUT | F_FIRST, sizeof(struct kvm_mp_state) },
	{ KVM_SET_MP_STATE, K_VCPU, F_IN | F_FIRST, sizeof(struct kvm_mp_state) },
	{ KVM_GET_TSC_KHZ, K_VCPU, F_INT, 0 },
	{ KVM_MEMORY_ENCRYPT_OP, K_VCPU, F_IN | F_OUT, 0 },
	{ PM_GUEST_MEMFD_PIN, K_GMEM, F_IN | F_FIRST, sizeof(struct pm_gmem_pin) },
	{ PM_GUEST_MEMFD_UNPIN, K_GMEM, F_IN | F_FIRST, sizeof(struct pm_gmem_pin) },
	{ PM_GUEST_MEMFD_GET_STATS, K_GMEM, F_OUT | F_FIRST, sizeof(struct pm_gmem_file_stats) },
	/* ENOTTY before the copy unless in-place mode is on (FUZZ_GMEM_IN_PLACE) */
	{ KVM_SET_MEMORY_ATTRIBUTES2, K_GMEM, F_IN | F_OUT | F_MAYBE, sizeof(struct kvm_memory_attributes2) },
};
#define NR_CMDS (sizeof(cmds) / sizeof(cmds[0]))

static const uint64_t ints[16] = {
	0, 1, 2, 3, 4, 5, 16, 31, 64, 0x1000, 0xfffbd000, 0xffffffff, 1ULL << 32, ~0ULL, 255, 1ULL << 63,
};
static const uint64_t sizes[8] = { 0x1000, 0x2000, 0x200000, 0x400000, 0, 0x1001, 1ULL << 40, ~0xfffULL };
static const uint64_t gpas[8] = { 0, 0x1000, 0x200000, 0x1ff000, 0x400000, 1ULL << 40, 0xfee00000, ~0xfffULL };

/* Fills argbuf for `c` (a template from the input's operands, or raw
 * input bytes) with nested pointers of the kinds the input picks. */
static void fill_arg(const struct cmd *c, bool raw)
{
	uint8_t *b = argbuf;

	memset(b, 0, 2 * PAGE);
	if (raw || !c) {
		size_t n = u8() * 2u;

		for (size_t i = 0; i < n && in_pos < in_len; i++)
			b[i] = u8();
		return;
	}
	switch (c->nr) {
	case KVM_SET_USER_MEMORY_REGION:
	case KVM_SET_USER_MEMORY_REGION2: {
		struct kvm_userspace_memory_region2 *m = (void *)b;
		uint8_t o = u8();

		m->slot = o & 7;
		m->flags = (o & 8) ? KVM_MEM_GUEST_MEMFD : 0;
		m->guest_phys_addr = gpas[(o >> 4) & 7];
		m->memory_size = sizes[u8() & 7];
		m->userspace_addr = (o & 0x80) ? (uintptr_t)guest_mem : u64();
		m->guest_memfd = (uint32_t)pick_fd(u8(), K_GMEM);
		m->guest_memfd_offset = sizes[u8() & 7] & ~0x3fffffULL;
		break;
	}
	case KVM_SET_MEMORY_ATTRIBUTES:
	case KVM_SET_MEMORY_ATTRIBUTES2: {      /* the same first four fields */
		struct kvm_memory_attributes *a = (void *)b;
		uint8_t o = u8();

		a->address = gpas[o & 7];
		a->size = sizes[(o >> 3) & 7];
		a->attributes = (o & 0x40) ? KVM_MEMORY_ATTRIBUTE_PRIVATE : (o & 0x80) ? 1 : 0;
		break;
	}
	case KVM_CREATE_GUEST_MEMFD: {
		struct kvm_create_guest_memfd *g = (void *)b;
		uint8_t o = u8();

		g->size = sizes[o & 7];
		g->flags = (o & 8) ? GUEST_MEMFD_FLAG_MMAP : 0;
		g->flags |= (o & 16) ? GUEST_MEMFD_FLAG_INIT_SHARED : 0;
		g->flags |= (o & 32) ? 1ULL << (u8() & 63) : 0;
		break;
	}
	case KVM_ENABLE_CAP: {
		struct kvm_enable_cap *e = (void *)b;

		e->cap = (uint32_t)ints[u8() & 15] | (uint32_t)u8() << 8;
		e->args[0] = ints[u8() & 15];
		break;
	}
	case KVM_MEMORY_ENCRYPT_OP: {
		/* SEV's and TDX's command structs share the id and data. */
		struct kvm_tdx_cmd *t = (void *)b;
		uint8_t o = u8();
		enum ptr_kind pk = (enum ptr_kind)((o >> 4) % P_NR);
		uint8_t *data = pk == P_BUF ? argbuf + PAGE : make_ptr(pk, 64);

		t->id = (o & 8) ? 100 + (o & 3) : (o & 7);
		t->flags = (o & 0x80) ? 1 : 0;
		t->data = (uintptr_t)data;
		if (pk == P_BUF) {
			uint64_t *d = (uint64_t *)(argbuf + PAGE);

			/* An SNP LAUNCH_UPDATE / TDX INIT_MEM_REGION source
			 * and sizes, or a TDX INIT_VM CPUID count. */
			d[0] = (o & 1) ? (uintptr_t)make_ptr((enum ptr_kind)(u8() % P_NR), PAGE) : 0x1000;
			d[1] = (o & 2) ? (uintptr_t)make_ptr((enum ptr_kind)(u8() % P_NR), PAGE) : 0;
			d[2] = ints[u8() & 15];
			d[3] = u8();
			d[3 + 12 + 18] = u8() % 4;          /* init_vm.cpuid.nent */
		}
		break;
	}
	case PM_KVM_SET_POOL_CONFIG: {
		struct pm_pool_config *p = (void *)b;

		p->size = (u8() & 1) ? POOL_SIZE : sizes[u8() & 7];
		p->watermark = ints[u8() & 15];
		break;
	}
	case KVM_SET_MSRS:
	case KVM_GET_MSRS:
	case KVM_GET_CPUID2:
	case KVM_SET_CPUID2:
	case KVM_GET_SUPPORTED_CPUID:
	case KVM_GET_MSR_INDEX_LIST:
	case KVM_GET_MSR_FEATURE_INDEX_LIST: {
		uint32_t *n = (void *)b;

		*n = (uint32_t)ints[u8() & 15];
		for (size_t i = 8; i < 64; i++)
			b[i] = u8();
		break;
	}
	default:
		/* What the kernel only writes needs no bytes. */
		for (size_t i = 0; (c->flags & F_IN) && i < c->size && i < 64; i++)
			b[i] = u8();
		break;
	}
}

/* ---- KVM_RUN, kicked ---- */

static long run_kicked(int fd)
{
	struct itimerspec arm = { .it_value = { .tv_nsec = RUN_CPU_NS } }, off = { 0 };
	const struct timespec zero = { 0 };
	sigset_t set;
	long r;

	timer_settime(kick_timer, 0, &arm, NULL);
	r = ioctl(fd, KVM_RUN, 0);
	timer_settime(kick_timer, 0, &off, NULL);
	sigemptyset(&set);
	sigaddset(&set, KICK_SIGNAL);
	while (sigtimedwait(&set, NULL, &zero) > 0)
		;
	return r;
}

/* ---- mappings ---- */

static bool in_region(const uint8_t *p, size_t len)
{
	return p >= region && p + len <= region + REGION_PAGES * PAGE && p + len >= p;
}

/* Re-reserves what a munmap or a failed MAP_FIXED left of [p, p+len) in
 * the region, page by page; a page something else took meanwhile is
 * never touched again. */
static void region_refill(uint8_t *p, size_t len)
{
	for (size_t off = 0; off < len; off += PAGE) {
		size_t i = (size_t)(p + off - region) / PAGE;
		void *q;

		if (page_state[i] == PG_FOREIGN)
			continue;
		q = mmap(p + off, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
			 MAP_FIXED_NOREPLACE, -1, 0);
		if (q == p + off)
			page_state[i] = PG_RESERVED;
		else if (q != MAP_FAILED)
			munmap(q, PAGE);       /* a kernel without NOREPLACE */
		else if (page_state[i] == PG_RESERVED)
			page_state[i] = PG_FOREIGN;  /* taken by someone else */
	}
}

static void map_record(uint8_t *p, size_t len, enum kind k)
{
	for (int m = 0; m < MAX_MAPS; m++)
		if (!S.maps[m].addr) {
			S.maps[m] = (struct fz_map){ p, len, k };
			return;
		}
	/* No room: give it back now. */
	if (check("munmap(no room)", munmap(p, len), e_munmap) == 0 && in_region(p, len))
		region_refill(p, len);
}

/* [p, p+len) is gone: trim or split the records it overlapped. */
static void map_forget(const uint8_t *p, size_t len)
{
	for (int m = 0; m < MAX_MAPS; m++) {
		struct fz_map *r = &S.maps[m];
		uint8_t *s = r->addr, *e;

		if (!s)
			continue;
		e = s + r->len;
		if (p >= e || p + len <= s)
			continue;
		r->addr = NULL;
		if (s < p)
			map_record(s, (size_t)(p - s), r->kind);
		if (p + len < e)
			map_record((uint8_t *)p + len, (size_t)(e - (p + len)), r->kind);
	}
}

static void op_mmap(void)
{
	static const size_t lens[8] = { PAGE, 2 * PAGE, 0x200000, 3 * PAGE, 0, 0x1001, 1UL << 40, 8 * PAGE };
	static const int prots[4] = { PROT_READ | PROT_WRITE, PROT_READ, PROT_NONE, PROT_READ | PROT_EXEC };
	static const int flagss[8] = { MAP_SHARED, MAP_PRIVATE, MAP_SHARED | MAP_FIXED,
				       MAP_SHARED | MAP_FIXED_NOREPLACE, MAP_SHARED | MAP_POPULATE,
				       MAP_SHARED_VALIDATE, MAP_SHARED | MAP_FIXED, MAP_PRIVATE | MAP_FIXED };
	uint8_t a = u8(), b = u8();
	int fd = pick_fd(u8(), (a & 1) ? K_VCPU : K_GMEM);
	size_t len = lens[a >> 5];
	int flags = flagss[b & 7];
	off_t off = (off_t)sizes[(b >> 3) & 7] & ~0x3fffffLL;
	uint8_t *want = NULL, *p;

	if (b & 0x40)
		off = (b & 0x80) ? 1 : -(off_t)PAGE;
	if (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) {
		size_t first = u8() % REGION_PAGES;

		want = region + first * PAGE;
		if (!len || !in_region(want, len))
			return;
		for (size_t i = 0; i < len / PAGE + !!(len % PAGE); i++)
			if (page_state[first + i] == PG_FOREIGN)
				return;
	}
	p = mmap(want, len, prots[(a >> 1) & 3], flags, fd, off);
	if (p == MAP_FAILED) {
		check("mmap", -1, e_mmap);
		if (want && (flags & MAP_FIXED)) {       /* the old range may be gone */
			map_forget(want, len);
			region_refill(want, PM_ALIGN_UP(len, PAGE));
		}
		return;
	}
	check("mmap", 0, e_mmap);
	if (want && p != want)
		fz_fail("MAP_FIXED mmap at %p returned %p", (void *)want, (void *)p);
	len = PM_ALIGN_UP(len, PAGE);
	if (want) {
		map_forget(p, len);
		for (size_t i = 0; i < len / PAGE; i++)
			page_state[(size_t)(p - region) / PAGE + i] = PG_OURS;
	}
	map_record(p, len, fd_kind(fd));
}

/* munmap or madvise of a recorded mapping, whole or in part. */
static void op_munmap(bool advise)
{
	static const int advice[8] = { MADV_REMOVE, MADV_DONTNEED, MADV_WILLNEED, MADV_NORMAL,
				       MADV_POPULATE_WRITE, MADV_FREE, MADV_HUGEPAGE, 12345 };
	uint8_t a = u8(), b = u8();
	struct fz_map *m = &S.maps[a % MAX_MAPS];
	uint8_t *p;
	size_t len;
	long r;

	if (!m->addr)
		return;
	switch (b & 3) {
	case 0: p = m->addr; len = m->len; break;
	case 1: p = m->addr; len = PAGE; break;
	case 2: p = m->addr + m->len - PAGE; len = PAGE; break;
	default:
		p = m->addr + ((b >> 2) % (m->len / PAGE)) * PAGE;
		len = (b & 0x80) ? PAGE / 2 : PAGE;
		if (b & 0x40)
			p += 8;         /* not page aligned: EINVAL */
		break;
	}
	if (advise) {
		errno = 0;
		check("madvise", madvise(p, len, advice[(b >> 2) & 7]), e_madvise);
		return;
	}
	r = check("munmap", munmap(p, len), e_munmap);
	if (r == 0) {
		uint8_t *start = (uint8_t *)PM_ALIGN_DOWN((uintptr_t)p, PAGE);
		size_t l = PM_ALIGN_UP((size_t)(p + len - start), PAGE);

		map_forget(start, l);
		if (in_region(start, l))
			region_refill(start, l);
	}
}

/* ---- the other calls ---- */

static void op_open(void)
{
	static const char *const paths[8] = {
		"/dev/kvm", "//dev/./kvm", "/dev/../dev/kvm", "/sys/module/kvm/parameters/tdp_mmu",
		"/sys/module/kvm_amd/parameters/sev_snp", "/sys/module/kvm_intel/parameters/tdx",
		"/sys/module/kvm/parameters/nope", "/dev/null",
	};
	static const int modes[8] = { O_RDWR | O_CLOEXEC, O_RDONLY, O_WRONLY, O_RDWR,
				      O_RDWR | O_NONBLOCK, O_RDONLY | O_CLOEXEC, O_WRONLY | O_TRUNC,
				      O_RDWR | O_DIRECTORY };
	uint8_t a = u8(), how = u8() & 3;
	const char *path = paths[a & 7];
	int flags = modes[(a >> 3) & 7], fd;
	bool kvm = (a & 7) < 3;

	if (how == 1) {
		fd = openat(devdir, kvm ? "kvm" : "null", flags);
	} else if (how == 2 && !kvm) {
		/* fclose closes inside libc, behind the interposer's back (a
		 * documented limit): fopen of /dev/kvm would leave a stale
		 * entry, so module parameters only. */
		FILE *f = fopen(path, (flags & O_ACCMODE) == O_RDONLY ? "re" : "r+e");

		if (!f) {
			check("fopen", -1, e_open);
			return;
		}
		check("fopen", 0, e_open);
		fclose(f);
		return;
	} else {
		fd = open(path, flags);
	}
	if (check("open", fd, e_open) < 0)
		return;
	fd_add(fd, kvm ? K_SYS : K_FOREIGN);
}

static void op_ioctl(void)
{
	uint8_t a = u8(), b = u8(), c8 = u8();
	const struct cmd *c = &cmds[a % NR_CMDS];
	unsigned long nr = c->nr;
	int fd = pick_fd(b, c->kind);
	enum kind k = fd_kind(fd);
	enum ptr_kind pk = (enum ptr_kind)(c8 % P_NR);
	bool expect_efault;
	unsigned long arg;
	char what[64];
	long r;
	int e;

	switch (c8 >> 5) {
	case 6:         /* KVM's number with another size or direction */
		nr = (nr & ~((unsigned long)_IOC_SIZEMASK << _IOC_SIZESHIFT)) | ((unsigned long)u8() << _IOC_SIZESHIFT);
		break;
	case 7:
		nr = (nr & ~((unsigned long)_IOC_DIRMASK << _IOC_DIRSHIFT)) | ((unsigned long)(u8() & 3) << _IOC_DIRSHIFT);
		break;
	default:
		break;
	}
	if ((a & 0x80) && (c8 >> 5) == 5)
		nr = (unsigned long)u64() & 0xffffffffUL;     /* any number */
	/* privmem's C-guest entry takes a code pointer: a program's own. */
	if (nr == PM_KVM_SET_GUEST)
		return;
	if (c->flags & F_INT) {
		arg = (c8 & 0x10) ? (unsigned long)u64() : ints[c8 & 15];
		pk = P_NR;
	} else {
		fill_arg(c, (a & 0x40) != 0);
		if (pk == P_FITS)
			memmove(guard - PM_MAX(c->size, 1), argbuf, PM_MIN(PM_MAX(c->size, 1), 2 * PAGE));
		arg = (uintptr_t)make_ptr(pk, c->size);
	}
	expect_efault = nr == c->nr && (c->flags & F_FIRST) && k == c->kind && pk != P_NR &&
			ptr_surely_bad(pk, (c->flags & F_OUT) && !(c->flags & F_MAYBE));
	snprintf(what, sizeof(what), "ioctl(%d, %#lx, ptr %d)", fd, nr, (int)pk);
	if (trace)
		fprintf(stderr, "  %s arg %#lx\n", what, arg);
	errno = 0;
	r = nr == KVM_RUN && !arg ? run_kicked(fd) : ioctl(fd, nr, arg);
	e = errno;
	check(what, r, e_ioctl);
	if (expect_efault && (r >= 0 || (e != EFAULT && e != EIO)))
		fz_fail("%s with a bad pointer: %ld (%s), not EFAULT", what, r, r < 0 ? strerror(e) : "");
	if (r < 0 || nr != c->nr)
		return;
	if (nr == KVM_CREATE_VM)
		fd_add((int)r, K_VM);
	else if (nr == KVM_CREATE_VCPU)
		fd_add((int)r, K_VCPU);
	else if (nr == KVM_CREATE_GUEST_MEMFD)
		fd_add((int)r, K_GMEM);
	else if (nr == PM_KVM_SET_POOL_CONFIG)
		S.pool_changed = true;
}

static void op_fallocate(void)
{
	static const int modes[8] = { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
				      FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE, FALLOC_FL_COLLAPSE_RANGE,
				      FALLOC_FL_INSERT_RANGE, -1 };
	uint8_t a = u8(), b = u8();

	check("fallocate", fallocate(pick_fd(u8(), K_GMEM), modes[a & 7], (off_t)sizes[(a >> 3) & 7] & ~0xfffLL,
				     (off_t)sizes[b & 7]), e_falloc);
}

/* Called through pointers: libc declares their buffers non-null, and a
 * program may pass NULL anyway (UBSan would flag the call itself). */
static int (*volatile call_fstat)(int, struct stat *) = fstat;
static int (*volatile call_fstatat)(int, const char *, struct stat *, int) = fstatat;
static int (*volatile call_statx)(int, const char *, int, unsigned int, struct statx *) = statx;
static ssize_t (*volatile call_read)(int, void *, size_t) = read;
static ssize_t (*volatile call_write)(int, const void *, size_t) = write;
static ssize_t (*volatile call_pread)(int, void *, size_t, off_t) = pread;
static ssize_t (*volatile call_pwrite)(int, const void *, size_t, off_t) = pwrite;

static void op_rw(void)
{
	uint8_t a = u8(), b = u8();
	int fd = pick_fd(u8(), (enum kind)(a & 3));
	enum ptr_kind pk = (enum ptr_kind)(b % P_NR);
	size_t n = (size_t)ints[a >> 4] & 0xffff;
	void *buf = make_ptr(pk, n);
	off_t off = (b & 0x80) ? -1 : 0;

	switch ((a >> 2) & 3) {
	case 0: check("read", call_read(fd, buf, n), e_rw); break;
	case 1: check("write", call_write(fd, buf, n), e_rw); break;
	case 2: check("pread", call_pread(fd, buf, n, off), e_rw); break;
	default: check("pwrite", call_pwrite(fd, buf, n, off), e_rw); break;
	}
}

static void op_stat(void)
{
	uint8_t a = u8();
	int fd = pick_fd(u8(), (enum kind)(a & 3));
	enum ptr_kind pk = (enum ptr_kind)((a >> 2) % P_NR);
	bool ours = fd_kind(fd) <= K_GMEM;
	long r;
	int e;

	errno = 0;
	switch (a >> 6) {
	case 0: r = call_fstat(fd, (struct stat *)make_ptr(pk, sizeof(struct stat))); break;
	case 1: r = call_fstatat(fd, "", (struct stat *)make_ptr(pk, sizeof(struct stat)), AT_EMPTY_PATH); break;
	case 2: r = call_statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS,
			       (struct statx *)make_ptr(pk, sizeof(struct statx))); break;
	default: r = call_fstat(fd, (struct stat *)make_ptr(pk, sizeof(struct stat))); break;
	}
	e = errno;
	check("fstat", r, e_stat);
	if (ours && ptr_surely_bad(pk, true) && (r >= 0 || e != EFAULT))
		fz_fail("fstat of a KVM file into a bad pointer: %ld (%s)", r, r < 0 ? strerror(e) : "");
}

static void op_close(void)
{
	uint8_t a = u8();
	int fd = (a & 0x80) ? FD_LO + (a & (FD_N - 1)) : pick_fd(a, (enum kind)((a >> 5) & 3));

	if (fd == devnull || fd == devdir)
		return;
	check("close", close(fd), e_close);
	fd_forget(fd);
}

static void op_dup(void)
{
	uint8_t a = u8();
	int old = pick_fd(u8(), (enum kind)(a & 3)), newfd = FD_LO + ((a >> 2) & (FD_N - 1)), r;
	enum kind k = fd_kind(old);

	if (old == devdir)
		return;
	if (k == K_NONE && old == devnull)
		k = K_FOREIGN;
	switch (a >> 6) {
	case 0: r = dup(old); break;
	case 1: r = dup2(old, newfd); break;
	case 2: r = dup3(old, newfd, (a & 1) ? O_CLOEXEC : 0); break;
	default: r = fcntl(old, (a & 1) ? F_DUPFD_CLOEXEC : F_DUPFD, newfd); break;
	}
	if (check("dup", r, e_dup) < 0)
		return;
	if (r >= FD_LO && r < FD_LO + FD_N && fd_kind(r) != K_NONE && r != old)
		fd_forget(r);           /* dup2/dup3 closed what it was */
	if (k == K_NONE)
		close(r);               /* a closed number cannot dup: never here */
	else
		fd_add(r, k);
}

static void op_close_range(void)
{
	uint8_t a = u8();
	unsigned int first = FD_LO + (a & (FD_N - 1)), last = first + (a >> 4);

	if (check("close_range", close_range(first, last, (a & 0x80) ? CLOSE_RANGE_CLOEXEC : 0),
		  ERRS(EINVAL)) == 0 && !(a & 0x80))
		for (unsigned int fd = first; fd <= last; fd++)
			fd_forget((int)fd);
}

static void op_fcntl(void)
{
	static const int cmdv[4] = { F_GETFL, F_GETFD, F_SETFD, F_SETFL };
	uint8_t a = u8();

	check("fcntl", fcntl(pick_fd(u8(), (enum kind)(a & 3)), cmdv[(a >> 2) & 3], (a & 0x10) ? FD_CLOEXEC : O_NONBLOCK),
	      e_fcntl);
}

/* A compound step: /dev/kvm, a VM of the type picked, a guest_memfd that
 * can be mapped, a memslot, a vCPU and its kvm_run mapping. */
static void op_setup(void)
{
	static const unsigned long types[4] = { KVM_X86_SW_PROTECTED_VM, KVM_X86_DEFAULT_VM,
						KVM_X86_SNP_VM, KVM_X86_TDX_VM };
	uint8_t a = u8();
	struct kvm_create_guest_memfd cg = { .size = 0x400000, .flags = GUEST_MEMFD_FLAG_MMAP };
	struct kvm_userspace_memory_region2 m = {
		.slot = 0, .flags = KVM_MEM_GUEST_MEMFD, .memory_size = 0x400000,
		.userspace_addr = (uintptr_t)guest_mem,
	};
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC), vm, g, v;
	void *run;

	if (check("open(setup)", kvm, e_open) < 0)
		return;
	fd_add(kvm, K_SYS);
	vm = (int)check("KVM_CREATE_VM(setup)", ioctl(kvm, KVM_CREATE_VM, types[a & 3]), e_ioctl);
	if (vm < 0)
		return;
	fd_add(vm, K_VM);
	g = (int)check("KVM_CREATE_GUEST_MEMFD(setup)", ioctl(vm, KVM_CREATE_GUEST_MEMFD, &cg), e_ioctl);
	if (g < 0)
		cg.flags = 0, g = (int)check("KVM_CREATE_GUEST_MEMFD(setup)", ioctl(vm, KVM_CREATE_GUEST_MEMFD, &cg), e_ioctl);
	if (g >= 0) {
		fd_add(g, K_GMEM);
		m.guest_memfd = (uint32_t)g;
		check("KVM_SET_USER_MEMORY_REGION2(setup)", ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &m), e_ioctl);
	}
	v = (int)check("KVM_CREATE_VCPU(setup)", ioctl(vm, KVM_CREATE_VCPU, a >> 4), e_ioctl);
	if (v < 0)
		return;
	fd_add(v, K_VCPU);
	run = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, v, 0);
	if (run == MAP_FAILED)
		check("mmap(kvm_run)", -1, e_mmap);
	else
		map_record(run, 2 * PAGE, K_VCPU);
}

/* A string of the input for the parsers (NUL-terminated, at most 255). */
static void op_parse(void)
{
	char s[256], out[4096];
	uint8_t a = u8(), n = u8();
	enum ipose_kind kind;
	uint64_t v;
	int mode, fd;

	for (int i = 0; i < n; i++)
		s[i] = (char)u8();
	s[n] = '\0';
	switch (a & 7) {
	case 0:
		if (ipose_placeholder_parse(s, &kind, &mode) &&
		    (kind >= IPOSE_NR_KINDS || (mode != O_RDONLY && mode != O_WRONLY && mode != O_RDWR) ||
		     strncmp(s, "/memfd:privmem-kvm:", 19)))
			fz_fail("placeholder link \"%s\" parsed to kind %d mode %d", s, kind, mode);
		break;
	case 1:
	case 2: {
		int dirfd = (a & 8) ? devdir : AT_FDCWD;

		if (ipose_path_absolute(dirfd, s, out, sizeof(out)) &&
		    (out[0] != '/' || strstr(out, "//") || strstr(out, "/./") || strstr(out, "/../")))
			fz_fail("\"%s\" normalised to \"%s\"", s, out);
		(void)ipose_path_is_kvm(dirfd, s);
		break;
	}
	case 3:
		/* Module parameters only: any other path is -2 (not opened). */
		fd = ipose_sysfs_open((a & 8) ? devdir : AT_FDCWD, s, (a & 16) ? O_RDWR : O_RDONLY);
		if (fd >= 0)
			close(fd);
		else if (fd != -2)
			check("sysfs open", fd, ERRS(ENOENT, EACCES, ENOMEM, EMFILE, EINVAL));
		break;
	case 4:
		if (pm_pool_parse_bytes(s, &v) && (s[0] < '0' || s[0] > '9'))
			fz_fail("size \"%s\" parsed to %" PRIu64, s, v);
		break;
	default:
		mode = pm_model_parse_types(s);
		if (!(mode & (1 << KVM_X86_DEFAULT_VM)) || (mode & ~pm_model_parse_types("0,1,2,3,4,5,16")))
			fz_fail("type list \"%s\" parsed to %#x", s, mode);
		break;
	}
}

/* mbind / get_mempolicy on an address of a recorded mapping (a
 * guest_memfd view: the file's policy), of the target's own memory or of
 * nothing (the kernel's answer), nodemask and mode pointers of any kind. */
static void op_numa(void)
{
	static const int modes[8] = { MPOL_DEFAULT, MPOL_PREFERRED, MPOL_BIND, MPOL_INTERLEAVE, MPOL_LOCAL,
				      5 /* PREFERRED_MANY */, 7, MPOL_BIND | MPOL_F_STATIC_NODES };
	static const unsigned long gflags[8] = { 0, MPOL_F_ADDR, MPOL_F_ADDR | MPOL_F_NODE, MPOL_F_MEMS_ALLOWED,
						 MPOL_F_NODE, 8, MPOL_F_ADDR, MPOL_F_ADDR | MPOL_F_NODE };
	static const unsigned int mflags[4] = { 0, MPOL_MF_STRICT, MPOL_MF_MOVE, 0x100 };
	static const unsigned long maxnodes[4] = { 0, 2, 64, 1025 };
	uint8_t a = u8(), b = u8(), c = u8();
	struct fz_map *m = &S.maps[b % MAX_MAPS];
	enum ptr_kind pk = (enum ptr_kind)((c >> 2) % P_NR);
	uint8_t *addr;
	size_t len = (b & 0x80) ? 2 * PAGE : PAGE;
	unsigned long *nmask;
	long r;
	int e;

	if (m->addr && !(b & 0x40))
		addr = m->addr + ((a >> 4) % (m->len / PAGE)) * PAGE;
	else
		addr = (b & 0x20) ? argbuf : region;   /* the target's memory, or reserved */
	memset(argbuf, 0, 64);
	argbuf[0] = u8() & 3;                           /* nodes 0 and 1 */
	nmask = (unsigned long *)make_ptr(pk, 8);
	errno = 0;
	if (a & 1) {
		r = mbind(addr, len, modes[(a >> 1) & 7], nmask, maxnodes[c & 3], mflags[(c >> 6) & 3]);
		check("mbind", r, e_mbind);
		return;
	}
	/* get_mempolicy writes the mode where it is asked to (NULL: not
	 * wanted): a mode pointer that cannot be written is never a success. */
	{
		enum ptr_kind mk = (enum ptr_kind)((a >> 4) % P_NR);
		int *modep = (int *)make_ptr(mk, sizeof(int));

		r = get_mempolicy(modep, (c & 2) ? nmask : NULL, maxnodes[c & 3], addr, gflags[(a >> 1) & 7]);
		e = errno;
		check("get_mempolicy", r, e_getpol);
		if (r == 0 && mk != P_NULL && ptr_surely_bad(mk, true))
			fz_fail("get_mempolicy with mode pointer kind %d at %p: success", (int)mk, (void *)modep);
		errno = e;
	}
}

static void op_run(void)
{
	check("KVM_RUN", run_kicked(pick_fd(u8(), K_VCPU)), e_ioctl);
}

static void (*const ops[])(void) = {
	op_open, op_ioctl, op_ioctl, op_ioctl, op_mmap, op_fallocate, op_rw, op_stat, op_close,
	op_dup, op_close_range, op_fcntl, op_setup, op_parse, op_run, op_numa,
};
#define NR_OPS (sizeof(ops) / sizeof(ops[0]))

static void op_unmap(void) { op_munmap(false); }
static void op_advise(void) { op_munmap(true); }

/* make check replays the corpus in both modes (replay.c). */
const char *const fuzz_replay_rerun_env = "FUZZ_GMEM_IN_PLACE=1";

/* ---- set-up and teardown ---- */

static uint64_t pool_in_use(void)
{
	struct pm_pool_stats ps;
	int h = pm_kvm_open();

	if (h < 0 || pm_kvm_ioctl(h, PM_KVM_GET_POOL_STATS, &ps))
		fz_fail("PM_KVM_GET_POOL_STATS: %s", strerror(errno));
	pm_kvm_close(h);
	return ps.in_use;
}

static void setup_once(void)
{
	struct pm_pool_config cfg = { .size = POOL_SIZE, .watermark = POOL_SIZE / 8 };
	struct sigevent sev = { .sigev_notify = SIGEV_THREAD_ID, .sigev_signo = KICK_SIGNAL };
	sigset_t set;
	uint8_t *p;
	int h;

	trace = getenv("FUZZ_TRACE") != NULL;
	history_init();
	/* In-place conversion is a process-wide mode, read once: on for a
	 * whole run when asked. */
	if (getenv("FUZZ_GMEM_IN_PLACE"))
		setenv("PRIVMEM_GMEM_IN_PLACE", "1", 1);
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	devdir = open("/dev", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	h = pm_kvm_open();
	if (devnull < 0 || devdir < 0 || h < 0 || pm_kvm_ioctl(h, PM_KVM_SET_POOL_CONFIG, &cfg))
		fz_fail("setting up: %s", strerror(errno));
	pm_kvm_close(h);
	p = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	region = mmap(NULL, REGION_PAGES * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		      -1, 0);
	guest_mem = mmap(NULL, GUEST_MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS |
			 MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED || region == MAP_FAILED || guest_mem == MAP_FAILED)
		fz_fail("mmap: %s", strerror(errno));
	argbuf = p;
	guard = p + 2 * PAGE;
	ro_page = p + 3 * PAGE;
	if (mprotect(guard, PAGE, PROT_NONE) || mprotect(ro_page, PAGE, PROT_READ))
		fz_fail("mprotect: %s", strerror(errno));
	sigemptyset(&set);
	sigaddset(&set, KICK_SIGNAL);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	sev._sigev_un._tid = gettid();   /* sigev_notify_thread_id, which glibc 2.36 lacks */
	if (timer_create(CLOCK_THREAD_CPUTIME_ID, &sev, &kick_timer))
		fz_fail("timer_create: %s", strerror(errno));
	pool_baseline = pool_in_use();
	next_handle = pm_kvm_open();
	pm_kvm_close(next_handle);
}

/* Placeholder descriptors still open (their memfd name). */
static int placeholders_open(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		fz_fail("/proc/self/fd: %s", strerror(errno));
	while ((e = readdir(d))) {
		char path[300], link[128];
		ssize_t len;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		len = readlink(path, link, sizeof(link) - 1);
		if (len <= 0)
			continue;
		link[len] = '\0';
		if (strstr(link, "privmem-kvm:")) {
			fprintf(stderr, "still open: fd %s -> %s\n", e->d_name, link);
			n++;
		}
	}
	closedir(d);
	return n;
}

static void teardown(void)
{
	struct pm_pool_config cfg = { .size = POOL_SIZE, .watermark = POOL_SIZE / 8 };
	uint64_t in_use;
	int h;

	for (int m = 0; m < MAX_MAPS; m++) {
		struct fz_map *r = &S.maps[m];

		if (!r->addr)
			continue;
		if (munmap(r->addr, r->len))
			fz_fail("munmap at teardown: %s", strerror(errno));
		if (in_region(r->addr, r->len))
			region_refill(r->addr, r->len);
		r->addr = NULL;
	}
	while (S.nfds)
		if (close(S.fds[--S.nfds].fd))
			fz_fail("close at teardown: %s", strerror(errno));
	close_range(FD_LO, FD_LO + FD_N - 1, 0);
	if (placeholders_open())
		fz_fail("placeholder descriptors left open");
	for (int fd = 0; fd < 1024; fd++)
		if (ipose_fd_maybe_ours(fd))
			fz_fail("fd %d is still in the interposer's table", fd);
	in_use = pool_in_use();
	if (in_use != pool_baseline) {
		pm_rcu_barrier();
		in_use = pool_in_use();
	}
	if (in_use != pool_baseline)
		fz_fail("the pool has %" PRIu64 " bytes in use after teardown, %" PRIu64 " before",
			in_use, pool_baseline);
	h = pm_kvm_open();
	if (h != next_handle)
		fz_fail("a new handle is %d, %d before: a handle leaked", h, next_handle);
	if (S.pool_changed && pm_kvm_ioctl(h, PM_KVM_SET_POOL_CONFIG, &cfg))
		fz_fail("restoring the pool: %s", strerror(errno));
	pm_kvm_close(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!region)
		setup_once();
	memset(&S, 0, sizeof(S));
	S.closed_fd = -1;
	history_add(data, size);
	in_data = data;
	in_len = size;
	in_pos = 0;
	while (in_pos < in_len) {
		uint8_t op = u8();

		if (trace)
			fprintf(stderr, "op %u at byte %zu\n", (unsigned int)(op % (NR_OPS + 2)), in_pos - 1);
		if (op % (NR_OPS + 2) == NR_OPS)
			op_unmap();
		else if (op % (NR_OPS + 2) == NR_OPS + 1)
			op_advise();
		else
			ops[op % (NR_OPS + 2)]();
	}
	teardown();
	return 0;
}

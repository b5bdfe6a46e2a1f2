/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: privmem's KVM uAPI, every VM type, driven as a VMM would.
 *
 * LLVMFuzzerTestOneInput() reads its input as a stream of operations
 * (uapi_ops.h): VMs, guest_memfd, memslots, attributes, fallocate and
 * punch, mmap views and pins, vCPUs running guest code, SNP launch and TDX
 * build commands, pre-fault, closes in any order. The target is its own
 * VMM: it keeps a table of the handles it holds (state `S`, reset every
 * input), answers its guests' exits (memory faults and KVM_HC_MAP_GPA_RANGE
 * by converting, or not, as the operation's policy byte says) and checks
 * after every step:
 *  - a failing call returns -1 with an errno from the set Linux can give
 *    for that call (errno_ok), a succeeding one what the call returns;
 *  - exits carry what their reason promises (reason set, memory-fault
 *    range, hypercall number);
 *  - data a guest wrote to a private page reads back the same later: the
 *    guest records each value it wrote in its VM's shadow, every operation
 *    that may change that page drops the record (fz_drop_*), and
 *    FZ_G_CHECK has the guest read every recorded value back; a mismatch
 *    aborts the guest with "FZCHECK", which aborts the process;
 *  - once every handle and mapping of the input is gone, the frame pool's
 *    in_use is what it was before, and the handle table hands out the
 *    number it handed out before (no handle leaked);
 *  - LeakSanitizer checks the heap (libFuzzer's -detect_leaks).
 * Each input is bounded: at most 24 KVM_RUNs per guest operation, small
 * guest loops, a small frame pool (64 MiB unless an input resizes it), so
 * exhaustion paths are reached.
 *
 * Guest code: every vCPU runs fz_guest(), which executes the command its
 * VMM posted (v->cmd) and then syncs; a command cut short by the run
 * budget simply continues at the next run.
 *
 * The target runs single-threaded; it is built with libFuzzer (make fuzz)
 * or linked with replay.c (make check replays the checked-in corpus).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>
#include <linux/falloc.h>
#include <privmem/guest.h>
#include <privmem/privmem.h>
#include "lib/common.h"
#include "lib/rcu.h"
#include "history.h"
#include "uapi_ops.h"

#define KIB 1024ULL
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)
#define PAGE 4096ULL

#define MAX_VMS    6
#define MAX_GMEMS  8
#define MAX_VCPUS  8
#define MAX_MAPS   8
#define MAX_SYS    3
#define MAX_SLOTS  6
#define MAX_SHADOW 16
#define NR_GPAS    16
#define RUN_BUDGET 24

#define POOL_SIZE      (64 * MIB)
#define POOL_WATERMARK (8 * MIB)
#define REGION_RW      (16 * MIB)          /* the VMM's memory for shared pages */
#define REGION_RO      (2 * MIB)           /* then read-only */
#define REGION_SPAN    (16 * GIB)          /* reserved, the rest PROT_NONE */

/* ---- value tables: what operands index ---- */

static const uint64_t gpas[NR_GPAS] = {
	0, 0x1000, 0x2000, 0x1ff000, 0x200000, 0x201000, 0x3ff000, 0x400000,
	0x600000, 0x7ff000, 0x800000, 0x3ffff000, 0x40000000, 0x40200000, 0x100000000, 0xfee00000,
};
static const uint64_t sizes[16] = {
	0x1000, 0x2000, 0x200000, 0x400000, 0x800000, 0x1ff000, 0x201000, 0x40000000,
	0x3000, 0x600000, 0, 0x1001, 1ULL << 40, ~0xfffULL, 0x40200000, 0x100000,
};
static const uint64_t offsets[8] = { 0, 0x1000, 0x200000, 0x400000, 0x40000000, 0x1ff000, 1, 1ULL << 62 };
static const uint32_t vm_types[8] = {
	KVM_X86_SW_PROTECTED_VM, KVM_X86_SNP_VM, KVM_X86_TDX_VM, PM_VM_TYPE_PKVM,
	KVM_X86_DEFAULT_VM, KVM_X86_SW_PROTECTED_VM, KVM_X86_SEV_VM, 99,
};
static const uint64_t gmem_flags[8] = {
	0, GUEST_MEMFD_FLAG_MMAP, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED,
	GUEST_MEMFD_FLAG_INIT_SHARED, PM_GUEST_MEMFD_FLAG_NO_1G, PM_GUEST_MEMFD_FLAG_NO_HUGE,
	GUEST_MEMFD_FLAG_MMAP | PM_GUEST_MEMFD_FLAG_NO_HUGE, 1ULL << 5,
};
static const uint32_t slot_ids[8] = { 0, 1, 2, 3, 32763, 32764, 1U << 16, 7 };
static const uint32_t slot_flags[8] = {
	0, KVM_MEM_GUEST_MEMFD, KVM_MEM_READONLY, KVM_MEM_LOG_DIRTY_PAGES,
	KVM_MEM_GUEST_MEMFD | KVM_MEM_READONLY, 1U << 3, KVM_MEM_GUEST_MEMFD | KVM_MEM_LOG_DIRTY_PAGES,
	KVM_MEM_GUEST_MEMFD,
};
static const int falloc_modes[8] = {
	FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, FALLOC_FL_PUNCH_HOLE,
	FALLOC_FL_ZERO_RANGE, FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, -1,
};
static const uint64_t npages_tab[8] = { 1, 2, 512, 3, 0, 1024, 513, 1ULL << 20 };
static const uint64_t small_lens[4] = { 8, PAGE, 2 * PAGE, 2 * MIB };
/* One entry in 16 makes room for a 1G page: populating and releasing it
 * costs about 2 s, so it stays rare. */
static const uint64_t pool_sizes[16] = {
	POOL_SIZE, 4 * MIB, 2 * MIB, GIB + 4 * MIB, 16 * MIB, 3 * MIB, 0, 6 * MIB,
	POOL_SIZE, 8 * MIB, POOL_SIZE, 32 * MIB, POOL_SIZE, 2 * MIB, POOL_SIZE, 12 * MIB,
};

/* ---- the VMM's state (reset every input) ---- */

enum { SH_SHARED, SH_PRIVATE, SH_UNKNOWN };
enum { VC_IDLE, VC_BUSY, VC_DEAD };

struct fz_shadow {
	bool valid;
	uint32_t gen;           /* bumped on every drop: a check in flight ignores it */
	uint64_t gfn, gpa, val; /* gpa: as the guest addressed it (kind bits) */
};

struct fz_slot {
	bool valid;
	uint32_t id;
	uint64_t gpa, size, goff;
	int gmem;               /* index into S.gmems, -1 for none */
};

struct fz_vm {
	bool used;
	int fd;                 /* -1 once closed */
	int refs;               /* handles of ours that keep it alive */
	uint32_t type;
	uint64_t tdx_shared;    /* the TD's shared bit (INIT_VM's GPAW) */
	bool tdx_busy;          /* busy injection was on: frames may be held */
	uint8_t attr[NR_GPAS];  /* SH_*: the attribute of each gpas[] page, as set */
	struct fz_slot slots[MAX_SLOTS];
	struct fz_shadow shadow[MAX_SHADOW];
	unsigned int next_shadow;
};

struct fz_gmem {
	bool used;
	int fd;
	int vm;
	uint64_t size, flags;
};

struct fz_cmd {
	uint8_t op, a, b, c;
	uint32_t seq;
};

struct fz_vcpu {
	bool used;
	int fd;
	int vm;
	unsigned int state;     /* VC_*: the guest waits for a command, runs one, or ended */
	struct kvm_run *run;
	struct fz_cmd cmd;      /* posted by the VMM while the guest is idle */
	bool mmio;              /* an MMIO exit happened (the access reached no memory) */
	bool c_guest;           /* PM_KVM_SET_GUEST succeeded: not the guest's machine code */
};

struct fz_map {
	bool used;
	void *addr;
	size_t len;
	int vm;                 /* the VM whose file it maps (a reference), -1: a kvm_run page */
};

static struct {
	struct fz_vm vms[MAX_VMS];
	struct fz_gmem gmems[MAX_GMEMS];
	struct fz_vcpu vcpus[MAX_VCPUS];
	struct fz_map maps[MAX_MAPS];
	int sys[MAX_SYS];
	uint32_t seq;
	uint64_t counter;
	bool pool_changed;
} S;

static int kvm = -1;                   /* the target's own system handle, kept */
static uint8_t *region;                /* the VMM's memory (REGION_SPAN reserved) */
static uint64_t pool_baseline;
static int next_handle;                /* what pm_kvm_open returns with nothing else open */
static struct { uint8_t buf[sizeof(struct kvm_tdx_init_vm) + 257 * sizeof(struct kvm_cpuid_entry2)]; }
	tdx_init_buf __attribute__((aligned(16)));

/* ---- the input ---- */

static const uint8_t *in_data;
static size_t in_len, in_pos;

static uint8_t u8(void)
{
	return in_pos < in_len ? in_data[in_pos++] : 0;
}

/* ---- invariants ---- */

static _Noreturn __attribute__((format(printf, 1, 2))) void fz_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "fuzz_uapi: invariant broken: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	abort();
}

/* The errnos Linux can give for each call (privmem's documented
 * differences included), 0-terminated. */
#define ERRS(...) ((const int[]){ __VA_ARGS__, 0 })
static const int *const e_create_vm = ERRS(EINVAL, ENOMEM, EMFILE);
static const int *const e_close = ERRS(EBADF);
static const int *const e_create_gmem = ERRS(EINVAL, ENOMEM, EMFILE, EIO);
static const int *const e_slot = ERRS(EINVAL, EEXIST, EBADF, ENOMEM, EIO,
				      EPERM);            /* pKVM: frozen once the VM ran */
static const int *const e_attr = ERRS(EINVAL, ENOMEM, EIO, EAGAIN, EINTR);
static const int *const e_falloc = ERRS(EINVAL, EOPNOTSUPP, ENOMEM, ENOSPC, EFBIG, EIO, EINTR,
					EBUSY);          /* pKVM: a page the guest holds */
static const int *const e_vcpu = ERRS(EINVAL, EEXIST, ENOMEM, EMFILE, EIO);
static const int *const e_run = ERRS(EFAULT, EHWPOISON, EINVAL, EINTR, ENOMEM, EIO, ENOEXEC);
static const int *const e_pre_fault = ERRS(EINVAL, ENOENT, EFAULT, EHWPOISON, ENOMEM, EIO, EINTR,
					    EOPNOTSUPP, EAGAIN);
static const int *const e_cap = ERRS(EINVAL, EIO);
static const int *const e_enc = ERRS(EINVAL, EFAULT, EEXIST, EIO, ENOMEM, EINTR, E2BIG, ENOTTY,
				      EBUSY, EAGAIN, ENOSPC, EPERM);
static const int *const e_mmap = ERRS(EINVAL, ENODEV, ENOMEM, EACCES, EPERM, EIO);
static const int *const e_munmap = ERRS(EINVAL);
static const int *const e_pin = ERRS(EINVAL, EFAULT, ENOMEM, EBUSY);
static const int *const e_info = ERRS(EINVAL, ENOTTY, EFAULT);
static const int *const e_pool = ERRS(EBUSY, EINVAL, ENOMEM);
static const int *const e_guest = ERRS(EINVAL, EBUSY);
/* What any call may also give when handed a handle of the wrong kind. */
static const int *const e_odd = ERRS(EBADF, ENOTTY, EINVAL, ENODEV, EOPNOTSUPP, EFAULT);

/* FUZZ_TRACE=1 in the environment prints every call and exit (to read
 * what a reproducer does). */
static bool trace;

static bool in_set(const int *set, int e)
{
	for (; *set; set++)
		if (*set == e)
			return true;
	return false;
}

/* Checks a call's result: 0 or more, or -1 with an allowed errno. Returns r. */
static long errno_ok(const char *what, long r, const int *allowed, bool odd)
{
	int e = errno;

	if (trace)
		fprintf(stderr, "  %-28s -> %ld%s%s\n", what, r, r < 0 ? " " : "", r < 0 ? strerror(e) : "");
	if (r >= 0)
		return r;
	if (r != -1)
		fz_fail("%s returned %ld", what, r);
	if (!in_set(allowed, e) && !(odd && in_set(e_odd, e)))
		fz_fail("%s failed with errno %d (%s), which Linux does not give there", what, e,
			strerror(e));
	errno = e;
	return r;
}

/* ---- handles: operands pick among the live ones ---- */

enum { K_SYS, K_VM, K_GMEM, K_VCPU };

static int kind_max(int kind)
{
	return kind == K_VM ? MAX_VMS : kind == K_GMEM ? MAX_GMEMS : kind == K_VCPU ? MAX_VCPUS : MAX_SYS;
}

static int count_kind(int kind)
{
	int n = 0;

	for (int i = 0; i < kind_max(kind); i++)
		switch (kind) {
		case K_VM: n += S.vms[i].used && S.vms[i].fd >= 0; break;
		case K_GMEM: n += S.gmems[i].used && S.gmems[i].fd >= 0; break;
		case K_VCPU: n += S.vcpus[i].used && S.vcpus[i].fd >= 0; break;
		default: n += S.sys[i] >= 0; break;
		}
	return n;
}

static int nth_index(int kind, int n)
{
	for (int i = 0; i < kind_max(kind); i++) {
		bool live;

		switch (kind) {
		case K_VM: live = S.vms[i].used && S.vms[i].fd >= 0; break;
		case K_GMEM: live = S.gmems[i].used && S.gmems[i].fd >= 0; break;
		case K_VCPU: live = S.vcpus[i].used && S.vcpus[i].fd >= 0; break;
		default: live = S.sys[i] >= 0; break;
		}
		if (live && n-- == 0)
			return i;
	}
	return -1;
}

static int fd_of(int kind, int i)
{
	switch (kind) {
	case K_VM: return S.vms[i].fd;
	case K_GMEM: return S.gmems[i].fd;
	case K_VCPU: return S.vcpus[i].fd;
	default: return S.sys[i];
	}
}

/* A handle that is not of `kind`: another kind's, or none at all. */
static int odd_handle(int kind, uint8_t b)
{
	int other = (kind + 1 + (b % 3)) % 4, n = count_kind(other);

	switch ((b >> 2) & 1) {
	case 0:
		if (n)
			return fd_of(other, nth_index(other, b % n));
		return kvm;
	default:
		return (b & 8) ? -1 : 4095;
	}
}

/* Picks a live handle of `kind` from operand b; *idx its index (-1 if the
 * handle is odd), *odd whether it is. */
static int pick(int kind, uint8_t b, int *idx, bool *odd)
{
	int n = count_kind(kind);

	*idx = -1;
	*odd = true;
	if (kind == K_SYS && !n && b < FZ_H_ODD) {
		*odd = false;
		return kvm;             /* the target's own */
	}
	if (b >= FZ_H_ODD || !n)
		return odd_handle(kind, b);
	*odd = false;
	*idx = nth_index(kind, b % n);
	return fd_of(kind, *idx);
}

/* ---- the shadow of guest private data ---- */

static void drop_range(struct fz_vm *vm, uint64_t gfn, uint64_t npages)
{
	for (int i = 0; i < MAX_SHADOW; i++) {
		struct fz_shadow *s = &vm->shadow[i];

		if (s->valid && s->gfn - gfn < npages) {
			s->valid = false;
			s->gen++;
		}
	}
}

static void drop_all(struct fz_vm *vm)
{
	drop_range(vm, 0, UINT64_MAX);
}

static void shadow_record(struct fz_vm *vm, uint64_t gpa, uint64_t gfn, uint64_t val)
{
	struct fz_shadow *s = &vm->shadow[vm->next_shadow++ % MAX_SHADOW];

	drop_range(vm, gfn, 1);
	s->gen++;
	s->valid = true;
	s->gfn = gfn;
	s->gpa = gpa;
	s->val = val;
}

/* The attribute of the gpas[] pages after a KVM_SET_MEMORY_ATTRIBUTES. */
static void attr_note(struct fz_vm *vm, uint64_t addr, uint64_t size, int state)
{
	for (int i = 0; i < NR_GPAS; i++)
		if (gpas[i] - addr < size)
			vm->attr[i] = (uint8_t)state;
	drop_range(vm, addr >> 12, size >> 12 ? size >> 12 : 1);
}

/* ---- guest code ---- */

static struct fz_vm *vm_of_vcpu(const struct fz_vcpu *v)
{
	return &S.vms[v->vm];
}

/* The gpa an access of kind `shared` to gpas[i] uses on this VM type. */
static uint64_t access_gpa(const struct fz_vm *vm, unsigned int i, bool shared)
{
	uint64_t gpa = gpas[i % NR_GPAS];

	switch (vm->type) {
	case KVM_X86_SNP_VM:
		return shared ? gpa : gpa | PM_SNP_C_BIT;
	case KVM_X86_TDX_VM:
		return shared ? gpa | vm->tdx_shared : gpa;
	default:
		return gpa;
	}
}

/* Whether a completed access of that kind reached the VM's private memory. */
static bool access_private(const struct fz_vm *vm, unsigned int i, bool shared)
{
	switch (vm->type) {
	case KVM_X86_SNP_VM:
	case KVM_X86_TDX_VM:
		return !shared;
	case PM_VM_TYPE_PKVM:
		return true;
	case KVM_X86_SW_PROTECTED_VM:
		return vm->attr[i % NR_GPAS] == SH_PRIVATE;
	default:
		return false;
	}
}

static void guest_check(struct pm_guest *g, struct fz_vm *vm)
{
	for (int i = 0; i < MAX_SHADOW; i++) {
		struct fz_shadow *s = &vm->shadow[i];
		uint32_t gen = s->gen;
		uint64_t want = s->val, got;
		char msg[160];

		if (!s->valid)
			continue;
		got = pm_guest_read64(g, s->gpa);
		/* The VMM may have converted the page while the read exited. */
		if (s->valid && s->gen == gen && got != want) {
			snprintf(msg, sizeof(msg), "FZCHECK private data at gpa %#" PRIx64
				 " reads %#" PRIx64 ", the guest wrote %#" PRIx64, s->gpa, got, want);
			pm_guest_abort(g, __FILE__, __LINE__, msg);
		}
	}
}

static void guest_psc(struct pm_guest *g, struct fz_vm *vm, const struct fz_cmd *c)
{
	struct {
		struct pm_snp_psc_hdr h;
		uint64_t e[4];
	} d = { .h = { .cur_entry = 0, .end_entry = (uint16_t)(c->b & 3) } };
	uint64_t desc = gpas[9 - ((c->c >> 6) & 3)];   /* a shared page in the first 8M */

	if (c->b & 0x80)
		d.h.end_entry = 253;            /* INVALID_HDR */
	for (unsigned int i = 0; i < 4; i++)
		d.e[i] = pm_snp_psc_entry(gpas[(c->a + i) % NR_GPAS] >> 12, 1 + ((c->c >> (2 * i)) & 3),
					  (c->b >> (2 + i)) & 1);
	pm_guest_write(g, desc, &d, sizeof(d));
	drop_all(vm);
	pm_guest_snp_psc(g, desc);
	drop_all(vm);
}

static void guest_exec(struct pm_guest *g, struct fz_vcpu *v, const struct fz_cmd *c)
{
	struct fz_vm *vm = vm_of_vcpu(v);
	unsigned int i = c->a & 15;
	bool shared = c->a & 16;
	uint64_t gpa = access_gpa(vm, i, shared), val, next;
	uint64_t np = npages_tab[c->b & 7];

	switch (c->op % FZ_G_NR) {
	case FZ_G_WRITE:
		val = 0x5eed000000000000ULL | (++S.counter << 8) | c->c;
		drop_range(vm, gpas[i] >> 12, 1);
		v->mmio = false;
		pm_guest_write64(g, gpa, val);
		if (!v->mmio && access_private(vm, i, shared))
			shadow_record(vm, gpa, gpas[i] >> 12, val);
		break;
	case FZ_G_READ:
		if (c->b & 1) {         /* a copy of up to two pages */
			uint8_t buf[2 * PAGE];

			pm_guest_read(g, gpa + (c->c & 0xff8), buf, PM_MIN(small_lens[(c->b >> 1) & 3], sizeof(buf)));
		} else {
			(void)pm_guest_read64(g, gpa);
		}
		break;
	case FZ_G_CHECK:
		guest_check(g, vm);
		break;
	case FZ_G_MEMSET:
		drop_range(vm, gpas[i] >> 12, (small_lens[c->b & 3] + PAGE - 1) / PAGE);
		pm_guest_memset(g, gpa, c->c, small_lens[c->b & 3]);
		drop_range(vm, gpas[i] >> 12, (small_lens[c->b & 3] + PAGE - 1) / PAGE);
		break;
	case FZ_G_MAP_GPA:
		pm_guest_hypercall(g, KVM_HC_MAP_GPA_RANGE, gpas[i], np,
				   ((c->c & 1) ? KVM_MAP_GPA_RANGE_ENCRYPTED : 0) | ((c->c >> 1) & 3), 0);
		break;
	case FZ_G_SHARE:
		if (vm->type == PM_VM_TYPE_PKVM)
			pm_guest_mem_share_range(g, gpas[i] + (c->c & 1), np);
		break;
	case FZ_G_UNSHARE:
		if (vm->type != PM_VM_TYPE_PKVM)
			break;
		if (c->c & 2) {         /* any of pKVM's calls, reserved arguments too */
			static const uint64_t ids[4] = { PM_HC_PKVM_HYP_MEMINFO, PM_HC_PKVM_MEM_SHARE,
							 PM_HC_PKVM_MMIO_GUARD, PM_HC_PKVM_FEATURES };

			pm_guest_model_call(g, ids[c->b & 3], gpas[i] + (c->c & 1), (c->b >> 2) & 1, 0);
			drop_all(vm);
		} else {
			pm_guest_mem_unshare_range(g, gpas[i] + (c->c & 1), np);
		}
		break;
	case FZ_G_PVALIDATE:
		if (vm->type == KVM_X86_SNP_VM)
			pm_guest_snp_pvalidate(g, gpa, c->b & 1, !(c->b & 2));
		break;
	case FZ_G_PSC:
		if (vm->type == KVM_X86_SNP_VM)
			guest_psc(g, vm, c);
		break;
	case FZ_G_PSC_MSR:
		if (vm->type != KVM_X86_SNP_VM)
			break;
		drop_all(vm);
		pm_guest_snp_psc_msr(g, gpas[i], c->c % 5);
		drop_all(vm);
		break;
	case FZ_G_SNP_CONVERT:
		if (vm->type != KVM_X86_SNP_VM)
			break;
		drop_all(vm);
		next = gpas[9 - ((c->c >> 6) & 3)];   /* the descriptor's shared page */
		if (c->c & 1)
			pm_guest_snp_make_shared(g, gpas[i], PM_MIN(np, 1024), next, (c->c & 2) ? 253 : 1);
		else
			pm_guest_snp_make_private(g, gpas[i], PM_MIN(np, 1024), next, (c->c & 2) ? 253 : 1);
		drop_all(vm);
		break;
	case FZ_G_TDX_ACCEPT:
		if (vm->type == KVM_X86_TDX_VM)
			pm_guest_tdx_accept(g, gpas[i], c->b % 3);
		break;
	case FZ_G_TDX_ACCEPT_RANGE:
		if (vm->type == KVM_X86_TDX_VM)
			pm_guest_tdx_accept_range(g, gpas[i], small_lens[c->b & 3] & ~(PAGE - 1));
		break;
	case FZ_G_TDX_MAP_GPA:
		if (vm->type != KVM_X86_TDX_VM)
			break;
		drop_all(vm);
		pm_guest_tdx_map_gpa(g, shared ? gpas[i] | pm_guest_tdx_shared_bit(g) : gpas[i],
				     np * PAGE, &next);
		drop_all(vm);
		break;
	case FZ_G_HYPERCALL: {
		static const uint64_t nrs[4] = { KVM_HC_MAP_GPA_RANGE, 0, 9999, PM_HC_PKVM_MEM_SHARE };

		pm_guest_hypercall(g, nrs[c->b & 3], gpas[i] + (c->c & 0xfff), np, c->c, 0);
		drop_all(vm);
		break;
	}
	case FZ_G_CMPXCHG:
		val = 0;
		drop_range(vm, gpas[i] >> 12, 1);
		pm_guest_cmpxchg64(g, gpa, &val, 0xc0ffee00ULL | c->c);
		break;
	case FZ_G_DONE:
		pm_guest_done(g);
	default:
		break;
	}
}

static void fz_guest(struct pm_guest *g, void *arg)
{
	struct fz_vcpu *v = arg;

	for (;;) {
		struct fz_cmd c = v->cmd;

		guest_exec(g, v, &c);
		pm_guest_sync(g, c.seq);
	}
}

/* ---- the VMM's answers to exits ---- */

static void vm_set_attr(int vi, uint64_t addr, uint64_t size, bool private, const char *what)
{
	struct fz_vm *vm = &S.vms[vi];
	struct kvm_memory_attributes a = {
		.address = addr, .size = size, .attributes = private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0,
	};
	long r;

	drop_range(vm, addr >> 12, size >> 12);
	r = errno_ok(what, pm_kvm_ioctl(vm->fd, KVM_SET_MEMORY_ATTRIBUTES, &a), e_attr, false);
	attr_note(vm, addr, size, r ? SH_UNKNOWN : private ? SH_PRIVATE : SH_SHARED);
}

/* The VMM's conversion: attributes, then (to shared) discard the private copy. */
static bool vm_convert(int vi, uint64_t gpa, uint64_t size, bool private, unsigned int policy)
{
	struct fz_vm *vm = &S.vms[vi];

	if (vm->fd < 0)
		return false;
	vm_set_attr(vi, gpa, size, private, "KVM_SET_MEMORY_ATTRIBUTES (exit)");
	if (private || (policy & FZ_POL_NO_DISCARD))
		return true;
	for (int s = 0; s < MAX_SLOTS; s++) {
		struct fz_slot *sl = &vm->slots[s];
		uint64_t lo, hi;

		if (!sl->valid || sl->gmem < 0 || S.gmems[sl->gmem].fd < 0)
			continue;
		lo = PM_MAX(gpa, sl->gpa);
		hi = PM_MIN(gpa + size, sl->gpa + sl->size);
		if (lo >= hi)
			continue;
		errno_ok("punch (exit)", pm_kvm_fallocate(S.gmems[sl->gmem].fd,
							   FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
							   (off_t)(lo - sl->gpa + sl->goff), (off_t)(hi - lo)),
			 e_falloc, false);
	}
	return true;
}

static void check_exit_fault(const struct kvm_run *run)
{
	if (run->memory_fault.flags & ~KVM_MEMORY_EXIT_FLAG_PRIVATE)
		fz_fail("memory fault exit with flags %#llx", (unsigned long long)run->memory_fault.flags);
	if (!run->memory_fault.size || (run->memory_fault.size | run->memory_fault.gpa) & (PAGE - 1))
		fz_fail("memory fault exit of %#llx bytes at %#llx", (unsigned long long)run->memory_fault.size,
			(unsigned long long)run->memory_fault.gpa);
}

/* Runs vCPU v for at most `budget` KVM_RUNs, until its guest finishes the
 * posted command. */
static void vcpu_run(struct fz_vcpu *v, unsigned int budget, unsigned int policy, bool immediate)
{
	struct kvm_run *run = v->run;
	struct pm_ucall uc;

	for (unsigned int n = 0; n < budget && v->state != VC_DEAD; n++) {
		long r;

		if (!run)
			return;
		run->immediate_exit = immediate && n == 0;
		errno = 0;
		r = errno_ok("KVM_RUN", pm_kvm_ioctl(v->fd, KVM_RUN, 0), e_run, false);
		run->immediate_exit = 0;
		if (r < 0) {
			if (trace && run->exit_reason == KVM_EXIT_MEMORY_FAULT)
				fprintf(stderr, "    memory fault %#llx +%#llx flags %#llx\n",
					(unsigned long long)run->memory_fault.gpa,
					(unsigned long long)run->memory_fault.size,
					(unsigned long long)run->memory_fault.flags);
			if ((errno == EFAULT || errno == EHWPOISON) && run->exit_reason == KVM_EXIT_MEMORY_FAULT) {
				check_exit_fault(run);
				if (errno == EFAULT && !(policy & FZ_POL_NO_CONVERT) &&
				    vm_convert(v->vm, run->memory_fault.gpa, run->memory_fault.size,
					       run->memory_fault.flags & KVM_MEMORY_EXIT_FLAG_PRIVATE, policy))
					continue;
			}
			if (errno == EINTR)
				continue;
			return;
		}
		if (r != 0)
			fz_fail("KVM_RUN returned %ld", r);
		if (trace)
			fprintf(stderr, "    exit %#x (hc %#llx, ucall %" PRIu64 ")\n", run->exit_reason,
				(unsigned long long)run->hypercall.nr, pm_get_ucall(v->fd, NULL));
		switch (run->exit_reason) {
		case PM_EXIT_UCALL:
			switch (pm_get_ucall(v->fd, &uc)) {
			case PM_UCALL_SYNC:
				if (uc.args[0] == v->cmd.seq) {
					v->state = VC_IDLE;
					return;
				}
				break;
			case PM_UCALL_DONE:
				v->state = VC_DEAD;
				return;
			case PM_UCALL_ABORT:
				if (strstr(uc.msg, "FZCHECK"))
					fz_fail("guest: %s", uc.msg);
				if (trace)
					fprintf(stderr, "    guest abort: %s\n", uc.msg);
				v->state = VC_DEAD;   /* the library's guest side ended it */
				return;
			default:
				fz_fail("ucall exit without a ucall");
			}
			break;
		case KVM_EXIT_HYPERCALL:
			if (run->hypercall.nr == KVM_HC_MAP_GPA_RANGE) {
				uint64_t gpa = run->hypercall.args[0], np = run->hypercall.args[1];
				bool ok;

				if ((gpa & (PAGE - 1)) || !np || gpa + np * PAGE < gpa)
					fz_fail("MAP_GPA_RANGE exit for %#" PRIx64 " x %" PRIu64, gpa, np);
				ok = !(policy & FZ_POL_REFUSE_HC) && np <= 4096 &&
				     vm_convert(v->vm, gpa, np * PAGE,
						run->hypercall.args[2] & KVM_MAP_GPA_RANGE_ENCRYPTED, policy);
				run->hypercall.ret = ok ? 0 : (uint64_t)-KVM_EINVAL;
			} else {         /* pKVM's calls never exit: its hyp answers them */
				fz_fail("hypercall exit %#llx", (unsigned long long)run->hypercall.nr);
			}
			break;
		case KVM_EXIT_MMIO:
			v->mmio = true;
			if (!run->mmio.is_write)
				memset(run->mmio.data, 0xab, sizeof(run->mmio.data));
			break;
		case KVM_EXIT_SYSTEM_EVENT:
			if (run->system_event.type != KVM_SYSTEM_EVENT_SEV_TERM &&
			    run->system_event.type != KVM_SYSTEM_EVENT_TDX_FATAL)
				fz_fail("system event %u", run->system_event.type);
			v->state = VC_DEAD;
			return;
		case KVM_EXIT_INTR:
			break;
		case KVM_EXIT_SHUTDOWN:
		case KVM_EXIT_INTERNAL_ERROR:
			/* A vCPU without a C guest runs the guest's machine
			 * code (whatever its memory holds): the x86 engine
			 * ends it so, for good. */
			if (v->c_guest)
				fz_fail("exit reason %u from a C guest", run->exit_reason);
			if (run->exit_reason == KVM_EXIT_INTERNAL_ERROR &&
			    run->internal.suberror != KVM_INTERNAL_ERROR_EMULATION)
				fz_fail("internal error, suberror %u", run->internal.suberror);
			v->state = VC_DEAD;
			return;
		default:
			fz_fail("exit reason %u", run->exit_reason);
		}
	}
}

/* Posts a guest command (if the guest waits for one) and runs it. */
static void vcpu_command(int ci, const struct fz_cmd *c, unsigned int policy)
{
	struct fz_vcpu *v = &S.vcpus[ci];

	if (v->state == VC_IDLE) {
		v->cmd = *c;
		v->cmd.seq = ++S.seq;
		v->state = VC_BUSY;
	}
	vcpu_run(v, (policy & FZ_POL_SHORT) ? 2 : RUN_BUDGET, policy, false);
}

/* ---- operations ---- */

static int new_vcpu_record(int vi, int fd, bool with_guest)
{
	struct pm_guest_entry e = { .fn = fz_guest };
	int ci;

	for (ci = 0; ci < MAX_VCPUS && S.vcpus[ci].used; ci++)
		;
	if (ci == MAX_VCPUS)
		return -1;
	memset(&S.vcpus[ci], 0, sizeof(S.vcpus[ci]));
	S.vcpus[ci].used = true;
	S.vcpus[ci].fd = fd;
	S.vcpus[ci].vm = vi;
	S.vms[vi].refs++;
	if (with_guest) {
		e.arg = &S.vcpus[ci];
		S.vcpus[ci].c_guest = errno_ok("PM_KVM_SET_GUEST", pm_kvm_ioctl(fd, PM_KVM_SET_GUEST, &e),
					       e_guest, false) == 0;
	}
	S.vcpus[ci].run = pm_kvm_mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (S.vcpus[ci].run == MAP_FAILED) {
		errno_ok("mmap(vcpu)", -1, e_mmap, false);
		S.vcpus[ci].run = NULL;
	}
	return ci;
}

static int create_vcpu(int vi, uint32_t id, bool with_guest)
{
	int fd;

	if (S.vms[vi].fd < 0)
		return -1;
	fd = (int)errno_ok("KVM_CREATE_VCPU", pm_kvm_ioctl(S.vms[vi].fd, KVM_CREATE_VCPU, id), e_vcpu, false);
	if (fd < 0)
		return -1;
	if (new_vcpu_record(vi, fd, with_guest) < 0) {
		pm_kvm_close(fd);       /* the table is full: the vCPU stays with its VM */
		return -1;
	}
	return fd;
}

static void op_create_vm(void)
{
	uint32_t type = vm_types[u8() & 7];
	int vi, fd, h;

	for (vi = 0; vi < MAX_VMS && S.vms[vi].used; vi++)
		;
	h = S.sys[0] >= 0 ? S.sys[0] : kvm;
	fd = (int)errno_ok("KVM_CREATE_VM", pm_kvm_ioctl(h, KVM_CREATE_VM, type), e_create_vm, false);
	if (fd < 0)
		return;
	if (vi == MAX_VMS) {
		pm_kvm_close(fd);
		return;
	}
	memset(&S.vms[vi], 0, sizeof(S.vms[vi]));
	S.vms[vi].used = true;
	S.vms[vi].fd = fd;
	S.vms[vi].refs = 1;
	S.vms[vi].type = type;
	S.vms[vi].tdx_shared = 1ULL << 47;
}

static void vm_unref(int vi)
{
	if (--S.vms[vi].refs == 0)
		S.vms[vi].used = false;
}

static void close_index(int kind, int i)
{
	int fd = fd_of(kind, i);

	errno_ok("close", pm_kvm_close(fd), e_close, false);
	switch (kind) {
	case K_VM:
		S.vms[i].fd = -1;
		vm_unref(i);
		break;
	case K_GMEM:
		drop_all(&S.vms[S.gmems[i].vm]);
		/* The record may be reused for another file: slots forget it. */
		for (int vi = 0; vi < MAX_VMS; vi++)
			for (int sl = 0; sl < MAX_SLOTS; sl++)
				if (S.vms[vi].slots[sl].gmem == i)
					S.vms[vi].slots[sl].gmem = -1;
		S.gmems[i].fd = -1;
		/* Mappings of the file keep it; their records stay. */
		S.gmems[i].used = false;
		vm_unref(S.gmems[i].vm);
		break;
	case K_VCPU:
		S.vcpus[i].fd = -1;
		break;
	default:
		S.sys[i] = -1;
		break;
	}
}

static void op_close(void)
{
	uint8_t b = u8();
	int total = count_kind(K_SYS) + count_kind(K_VM) + count_kind(K_GMEM) + count_kind(K_VCPU);
	int n;

	if (b >= FZ_H_ODD || !total) {
		errno_ok("close(none)", pm_kvm_close((b & 1) ? -1 : 4095), e_close, false);
		return;
	}
	n = b % total;
	for (int kind = K_SYS; kind <= K_VCPU; kind++) {
		int c = count_kind(kind);

		if (n < c) {
			close_index(kind, nth_index(kind, n));
			return;
		}
		n -= c;
	}
}

static int new_gmem(int vi, uint64_t size, uint64_t flags, bool odd, int fd_vm)
{
	struct kvm_create_guest_memfd cg = { .size = size, .flags = flags };
	int gi, fd;

	fd = (int)errno_ok("KVM_CREATE_GUEST_MEMFD", pm_kvm_ioctl(fd_vm, KVM_CREATE_GUEST_MEMFD, &cg),
			   e_create_gmem, odd);
	if (fd < 0 || odd)
		return fd < 0 ? -1 : (pm_kvm_close(fd), -1);
	for (gi = 0; gi < MAX_GMEMS && S.gmems[gi].used; gi++)
		;
	if (gi == MAX_GMEMS) {
		pm_kvm_close(fd);
		return -1;
	}
	S.gmems[gi] = (struct fz_gmem){ .used = true, .fd = fd, .vm = vi, .size = size, .flags = flags };
	S.vms[vi].refs++;
	return gi;
}

static void op_create_gmem(void)
{
	int vi, fd;
	bool odd;
	uint64_t size, flags;

	fd = pick(K_VM, u8(), &vi, &odd);
	size = sizes[u8() & 15];
	flags = gmem_flags[u8() & 7];
	new_gmem(vi, size, flags, odd, fd);
}

static void slot_note(int vi, const struct kvm_userspace_memory_region2 *r, int gi)
{
	struct fz_vm *vm = &S.vms[vi];
	struct fz_slot *free_slot = NULL;

	for (int s = 0; s < MAX_SLOTS; s++) {
		if (vm->slots[s].valid && vm->slots[s].id == r->slot) {
			if (!r->memory_size) {
				vm->slots[s].valid = false;
				return;
			}
			vm->slots[s].gpa = r->guest_phys_addr;   /* a move */
			return;
		}
		if (!vm->slots[s].valid && !free_slot)
			free_slot = &vm->slots[s];
	}
	if (r->memory_size && free_slot)
		*free_slot = (struct fz_slot){ .valid = true, .id = r->slot, .gpa = r->guest_phys_addr,
					      .size = r->memory_size, .goff = r->guest_memfd_offset,
					      .gmem = (r->flags & KVM_MEM_GUEST_MEMFD) ? gi : -1 };
}

static uint64_t uaddr_of(uint8_t b)
{
	switch (b & 7) {
	case 0: return (uintptr_t)region;
	case 1: return (uintptr_t)region + 2 * MIB;
	case 2: return (uintptr_t)region + PAGE;
	case 3: return 0;
	case 4: return (uintptr_t)region + REGION_RW;                 /* read-only */
	case 5: return (uintptr_t)region + REGION_RW + REGION_RO;     /* PROT_NONE */
	case 6: return 0x7ffffffff000ULL;
	default: return (uintptr_t)region + 1;
	}
}

static void set_slot(int vi, int vfd, bool odd, uint32_t id, uint32_t flags, uint64_t gpa, uint64_t size,
		     uint64_t uaddr, int gi, int gfd, uint64_t goff, bool v1)
{
	struct kvm_userspace_memory_region2 r = {
		.slot = id, .flags = flags, .guest_phys_addr = gpa, .memory_size = size,
		.userspace_addr = uaddr, .guest_memfd_offset = goff, .guest_memfd = (uint32_t)gfd,
	};
	long ret;

	if (!odd)
		drop_all(&S.vms[vi]);
	ret = errno_ok("KVM_SET_USER_MEMORY_REGION", pm_kvm_ioctl(vfd, v1 ? KVM_SET_USER_MEMORY_REGION :
							      KVM_SET_USER_MEMORY_REGION2, &r),
		       e_slot, odd);
	if (!ret && !odd)
		slot_note(vi, &r, gi);
}

static void op_set_slot(void)
{
	int vi, vfd, gi = -1, gfd;
	bool odd, godd;
	uint8_t fl = u8(), gb;
	uint32_t id, flags;
	uint64_t gpa, size, uaddr, goff;

	vfd = pick(K_VM, fl & 0x80 ? FZ_H_ODD | fl : fl & 7, &vi, &odd);
	fl = u8();
	id = slot_ids[fl & 7];
	flags = slot_flags[(fl >> 3) & 7];
	gpa = gpas[u8() & 15];
	size = sizes[u8() & 15];
	uaddr = uaddr_of(u8());
	gb = u8();
	gfd = pick(K_GMEM, gb, &gi, &godd);
	goff = offsets[u8() & 7];
	set_slot(vi, vfd, odd, id, flags, gpa, size, uaddr, gi, gfd, goff, fl & 0x40);
}

static void op_set_attr(void)
{
	int vi, fd;
	bool odd;
	uint8_t a, b, c;
	struct kvm_memory_attributes at;
	long r;

	fd = pick(K_VM, u8(), &vi, &odd);
	a = u8();
	b = u8();
	c = u8();
	at = (struct kvm_memory_attributes){
		.address = gpas[a & 15] + ((a & 0x80) ? 1 : 0), .size = sizes[b & 15],
		.attributes = (c & 1) ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0,
		.flags = (c & 0x80) ? 1 : 0,
	};
	if (c & 0x40)
		at.attributes |= 1;     /* not an attribute */
	if (!odd)
		drop_range(&S.vms[vi], at.address >> 12, at.size >> 12 ? at.size >> 12 : 1);
	r = errno_ok("KVM_SET_MEMORY_ATTRIBUTES", pm_kvm_ioctl(fd, KVM_SET_MEMORY_ATTRIBUTES, &at), e_attr, odd);
	if (!odd)
		attr_note(&S.vms[vi], at.address, at.size,
			  r ? SH_UNKNOWN : (at.attributes & KVM_MEMORY_ATTRIBUTE_PRIVATE) ? SH_PRIVATE : SH_SHARED);
}

static void op_fallocate(void)
{
	int gi, fd, mode;
	bool odd;
	uint64_t off, len;

	fd = pick(K_GMEM, u8(), &gi, &odd);
	mode = falloc_modes[u8() & 7];
	off = offsets[u8() & 7];
	len = sizes[u8() & 15];
	if (!odd && (mode & ~FALLOC_FL_KEEP_SIZE))
		drop_all(&S.vms[S.gmems[gi].vm]);
	errno_ok("fallocate", pm_kvm_fallocate(fd, mode, (off_t)off, (off_t)len), e_falloc, odd);
}

static void op_create_vcpu(void)
{
	static const uint32_t ids[4] = { 0, 1, 2, 4096 };
	int vi, fd, r;
	bool odd;
	uint8_t b;

	fd = pick(K_VM, u8(), &vi, &odd);
	b = u8();
	if (odd) {
		r = (int)errno_ok("KVM_CREATE_VCPU(odd)", pm_kvm_ioctl(fd, KVM_CREATE_VCPU, ids[b & 3]),
				  e_vcpu, true);
		if (r >= 0)
			pm_kvm_close(r);
		return;
	}
	create_vcpu(vi, ids[b & 3], !(b & 0x80));
}

static void op_guest(void)
{
	int ci;
	bool odd;
	struct fz_cmd c;
	uint8_t pol;

	pick(K_VCPU, u8(), &ci, &odd);
	c.op = u8();
	c.a = u8();
	c.b = u8();
	c.c = u8();
	pol = u8();
	if (!odd)
		vcpu_command(ci, &c, pol);
}

static void op_run(void)
{
	int ci, fd;
	bool odd;
	uint8_t fl;

	fd = pick(K_VCPU, u8(), &ci, &odd);
	fl = u8();
	if (odd) {
		errno_ok("KVM_RUN(odd)", pm_kvm_ioctl(fd, KVM_RUN, 0), e_run, true);
		return;
	}
	if (S.vcpus[ci].state == VC_IDLE) {
		struct fz_cmd nop = { .op = FZ_G_NOP };

		S.vcpus[ci].cmd = nop;
		S.vcpus[ci].cmd.seq = ++S.seq;
		S.vcpus[ci].state = VC_BUSY;
	}
	vcpu_run(&S.vcpus[ci], 1 + ((fl >> 1) & 3), fl >> 3, fl & 1);
}

static void op_pre_fault(void)
{
	int ci, fd;
	bool odd;
	struct kvm_pre_fault_memory p;
	uint8_t a, b;

	fd = pick(K_VCPU, u8(), &ci, &odd);
	a = u8();
	b = u8();
	p = (struct kvm_pre_fault_memory){ .gpa = gpas[a & 15], .size = sizes[b & 15], .flags = (a >> 7) };
	errno_ok("KVM_PRE_FAULT_MEMORY", pm_kvm_ioctl(fd, KVM_PRE_FAULT_MEMORY, &p), e_pre_fault, odd);
}

static void op_enable_cap(void)
{
	static const uint64_t args[4] = { 1ULL << KVM_HC_MAP_GPA_RANGE, 0, 1, ~0ULL };
	int vi, fd;
	bool odd;
	uint8_t b;
	struct kvm_enable_cap cap;

	fd = pick(K_VM, u8(), &vi, &odd);
	b = u8();
	cap = (struct kvm_enable_cap){ .cap = (b & 4) ? KVM_CAP_MEMORY_ATTRIBUTES : KVM_CAP_EXIT_HYPERCALL,
				       .flags = (b >> 3) & 1, .args = { args[b & 3] } };
	errno_ok("KVM_ENABLE_CAP", pm_kvm_ioctl(fd, KVM_ENABLE_CAP, &cap), e_cap, odd);
}

/* ---- SEV-SNP and TDX commands ---- */

static long sev_cmd(int fd, uint32_t id, void *data, bool odd)
{
	struct kvm_sev_cmd c = { .id = id, .data = (uint64_t)(uintptr_t)data };

	return errno_ok("KVM_MEMORY_ENCRYPT_OP(SEV)", pm_kvm_ioctl(fd, KVM_MEMORY_ENCRYPT_OP, &c), e_enc, odd);
}

static void snp_start(int fd, uint8_t a, bool odd)
{
	static const uint64_t policies[4] = { 0x30000, 0x10000, 0x30000 | (1ULL << 40), 0x30000 | 1 };
	struct kvm_sev_snp_launch_start s = { .policy = policies[a & 3], .flags = (a >> 7) & 1 };

	sev_cmd(fd, KVM_SEV_SNP_LAUNCH_START, (a & 0x40) ? NULL : &s, odd);
}

static void snp_update(int vi, int fd, uint8_t a, uint8_t b, bool odd)
{
	static const uint8_t types[8] = {
		KVM_SEV_SNP_PAGE_TYPE_NORMAL, KVM_SEV_SNP_PAGE_TYPE_ZERO, KVM_SEV_SNP_PAGE_TYPE_UNMEASURED,
		KVM_SEV_SNP_PAGE_TYPE_SECRETS, KVM_SEV_SNP_PAGE_TYPE_CPUID, KVM_SEV_SNP_PAGE_TYPE_VMSA, 0,
		KVM_SEV_SNP_PAGE_TYPE_NORMAL,
	};
	static const uint64_t lens[4] = { PAGE, 2 * PAGE, 2 * MIB, 0 };
	struct kvm_sev_snp_launch_update u = {
		.gfn_start = gpas[b & 15] >> 12, .uaddr = uaddr_of(a >> 5), .len = lens[(b >> 4) & 3],
		.type = types[(a >> 2) & 7], .flags = (b >> 7) & 1,
	};

	if (!odd)
		drop_all(&S.vms[vi]);
	sev_cmd(fd, KVM_SEV_SNP_LAUNCH_UPDATE, &u, odd);
}

static void snp_finish(int fd, uint8_t c, bool odd)
{
	struct kvm_sev_snp_launch_finish f = { .flags = c & 1 };

	sev_cmd(fd, KVM_SEV_SNP_LAUNCH_FINISH, &f, odd);
}

static void op_snp(void)
{
	int vi, fd;
	bool odd;
	uint8_t cmd, a, b, c;

	fd = pick(K_VM, u8(), &vi, &odd);
	cmd = u8();
	a = u8();
	b = u8();
	c = u8();
	switch (cmd & 3) {
	case 0: snp_start(fd, a, odd); break;
	case 1: snp_update(vi, fd, a, b, odd); break;
	case 2: snp_finish(fd, c, odd); break;
	default: sev_cmd(fd, (b & 1) ? KVM_SEV_INIT2 : 200, NULL, odd); break;
	}
}

static void op_snp_launch(void)
{
	int vi, fd;
	bool odd;
	uint8_t a, b;

	fd = pick(K_VM, u8(), &vi, &odd);
	a = u8();
	b = u8();
	snp_start(fd, a & 3, odd);
	snp_update(vi, fd, a, b, odd);
	if (!odd && (a & 0x20) && count_kind(K_VCPU) < MAX_VCPUS)
		create_vcpu(vi, 8 + (uint32_t)count_kind(K_VCPU), true);
	if (!(a & 0x40))
		snp_finish(fd, 0, odd);
}

static long tdx_cmd(int fd, uint32_t id, uint32_t flags, void *data, bool odd)
{
	struct kvm_tdx_cmd c = { .id = id, .flags = flags, .data = (uint64_t)(uintptr_t)data };

	return errno_ok("KVM_MEMORY_ENCRYPT_OP(TDX)", pm_kvm_ioctl(fd, KVM_MEMORY_ENCRYPT_OP, &c), e_enc, odd);
}

static void tdx_init_vm(int vi, int fd, uint8_t a, bool odd)
{
	static const uint32_t gpaw[4] = { 48, 52, 40, 48 };
	struct kvm_tdx_init_vm *init = (struct kvm_tdx_init_vm *)tdx_init_buf.buf;

	memset(&tdx_init_buf, 0, sizeof(tdx_init_buf));
	init->cpuid.nent = (a & 4) ? 257 : (a & 8) ? 0 : 1;
	init->cpuid.entries[0].function = 0x80000008;
	init->cpuid.entries[0].eax = gpaw[a & 3] << 16 | 46;
	if (a & 0x10)
		init->reserved[0] = 1;
	if (!tdx_cmd(fd, KVM_TDX_INIT_VM, (a >> 5) & 1, init, odd) && !odd)
		S.vms[vi].tdx_shared = gpaw[a & 3] == 52 ? 1ULL << 51 : 1ULL << 47;
}

static void tdx_mem_region(int vi, int vcpu_fd, uint8_t a, uint8_t b, bool odd)
{
	static const uint64_t pages[4] = { 1, 2, 512, 0 };
	struct kvm_tdx_init_mem_region r = {
		.source_addr = uaddr_of(a >> 5), .gpa = gpas[b & 15], .nr_pages = pages[(b >> 4) & 3],
	};

	if (vi >= 0)
		drop_all(&S.vms[vi]);
	tdx_cmd(vcpu_fd, KVM_TDX_INIT_MEM_REGION, (a >> 1) & 1 ? KVM_TDX_MEASURE_MEMORY_REGION : 0, &r, odd);
}

static void op_tdx(void)
{
	int i, fd;
	bool odd;
	uint8_t h, cmd, a, b, c;

	h = u8();
	cmd = u8();
	a = u8();
	b = u8();
	c = u8();
	switch (cmd % 7) {
	case 0:
		fd = pick(K_VM, h, &i, &odd);
		tdx_init_vm(i, fd, a, odd);
		break;
	case 1:
		fd = pick(K_VCPU, h, &i, &odd);
		tdx_cmd(fd, KVM_TDX_INIT_VCPU, c & 1, NULL, odd);
		break;
	case 2:
		fd = pick(K_VCPU, h, &i, &odd);
		tdx_mem_region(odd ? -1 : S.vcpus[i].vm, fd, a, b, odd);
		break;
	case 3:
		fd = pick(K_VM, h, &i, &odd);
		tdx_cmd(fd, KVM_TDX_FINALIZE_VM, c & 1, NULL, odd);
		break;
	case 4:
		fd = pick(K_VM, h, &i, &odd);
		tdx_cmd(fd, KVM_TDX_CAPABILITIES, 0, tdx_init_buf.buf, odd);
		break;
	case 5:
		fd = pick(K_VCPU, h, &i, &odd);
		tdx_cmd(fd, KVM_TDX_GET_CPUID, 0, tdx_init_buf.buf, odd);
		break;
	default:
		fd = pick(K_VM, h, &i, &odd);
		tdx_cmd(fd, KVM_TDX_CMD_NR_MAX + (c & 3), 0, NULL, odd);
		break;
	}
}

static void op_tdx_build(void)
{
	int vi, fd, first = -1;
	bool odd;
	uint8_t a, b;

	fd = pick(K_VM, u8(), &vi, &odd);
	a = u8();
	b = u8();
	tdx_init_vm(vi, fd, a & 1, odd);
	if (odd)
		return;
	for (int ci = 0; ci < MAX_VCPUS; ci++)
		if (S.vcpus[ci].used && S.vcpus[ci].vm == vi && S.vcpus[ci].fd >= 0) {
			tdx_cmd(S.vcpus[ci].fd, KVM_TDX_INIT_VCPU, 0, NULL, false);
			if (first < 0)
				first = S.vcpus[ci].fd;
		}
	if (first < 0 && (first = create_vcpu(vi, 0, true)) >= 0)
		tdx_cmd(first, KVM_TDX_INIT_VCPU, 0, NULL, false);
	if (first >= 0 && !(a & 0x40))
		tdx_mem_region(vi, first, a & 0x9e, b, false);
	if (!(a & 0x80))
		tdx_cmd(fd, KVM_TDX_FINALIZE_VM, 0, NULL, false);
}

/* TDX's OPERAND_BUSY injection draws from a thread-local generator that
 * no input resets, so what it injects depends on every input before: a
 * failure with it on does not reproduce from its input. It is off unless
 * FUZZ_TDX_BUSY is set (to hunt by hand; the history directory then holds
 * the inputs, not the generator's state). */
static bool tdx_busy_allowed;

static void op_tdx_config(void)
{
	static const uint32_t rates[4] = { 0, 0, 20000, 1000 };
	int vi, fd;
	bool odd;
	uint8_t a, b;
	struct pm_tdx_config cfg;

	fd = pick(K_VM, u8(), &vi, &odd);
	a = u8();
	b = u8();
	cfg = (struct pm_tdx_config){ .busy_per_million = tdx_busy_allowed ? rates[a & 3] : 0, .flags = b & 7 };
	if (!odd && S.vms[vi].type == KVM_X86_TDX_VM && cfg.busy_per_million)
		S.vms[vi].tdx_busy = true;
	errno_ok("PM_KVM_TDX_CONFIG", pm_kvm_ioctl(fd, PM_KVM_TDX_CONFIG, &cfg), e_info, odd);
}

/* ---- mappings ---- */

static int new_map(void *addr, size_t len, int vi)
{
	for (int m = 0; m < MAX_MAPS; m++)
		if (!S.maps[m].used) {
			S.maps[m] = (struct fz_map){ .used = true, .addr = addr, .len = len, .vm = vi };
			if (vi >= 0)
				S.vms[vi].refs++;
			return m;
		}
	return -1;
}

static void op_mmap(void)
{
	static const uint64_t lens[4] = { PAGE, 2 * MIB, 3 * PAGE, 4 * MIB };
	int i, fd;
	bool odd;
	uint8_t h, a, b, c;
	void *p;
	size_t len;

	h = u8();
	a = u8();
	b = u8();
	c = u8();
	fd = pick((c & 0x80) ? K_VCPU : K_GMEM, h, &i, &odd);
	len = (c & 0x80) ? PAGE : lens[b & 3];
	p = pm_kvm_mmap(NULL, len, (c & 1) ? PROT_READ : PROT_READ | PROT_WRITE,
			(c & 2) ? MAP_PRIVATE : MAP_SHARED, fd, (off_t)offsets[a & 7]);
	if (p == MAP_FAILED) {
		errno_ok("mmap", -1, e_mmap, odd);
		return;
	}
	if ((odd || new_map(p, len, (c & 0x80) ? -1 : S.gmems[i].vm) < 0) && pm_kvm_munmap(p, len))
		fz_fail("munmap of a new mapping failed: %s", strerror(errno));
}

static void op_munmap(void)
{
	int m = u8() % MAX_MAPS;
	uint8_t how = u8();
	long r;

	if (!S.maps[m].used) {
		errno_ok("munmap(none)", pm_kvm_munmap(region, PAGE), e_munmap, false);
		return;
	}
	if (how & 1) {                  /* half a page: the whole of a one-page mapping */
		r = errno_ok("munmap(part)", pm_kvm_munmap(S.maps[m].addr, PAGE / 2), e_munmap, false);
		if (!r != (S.maps[m].len == PAGE))
			fz_fail("munmap of %zu bytes of a %zu-byte mapping returned %ld", (size_t)PAGE / 2,
				S.maps[m].len, r);
		if (r)
			return;
	} else {
		r = errno_ok("munmap", pm_kvm_munmap(S.maps[m].addr, S.maps[m].len), e_munmap, false);
		if (r)
			fz_fail("munmap of a whole mapping failed");
	}
	S.maps[m].used = false;
	if (S.maps[m].vm >= 0)
		vm_unref(S.maps[m].vm);
}

/* The host touches a mapping through the kernel (process_vm_*v), which
 * reports EFAULT for a page the mapping cannot show, where a load would
 * take SIGBUS. */
static void op_host_rw(void)
{
	int m = u8() % MAX_MAPS;
	uint8_t a = u8(), w = u8();
	uint64_t val = 0x4057000000000000ULL | w, off;
	struct iovec local = { &val, sizeof(val) }, remote;

	if (!S.maps[m].used)
		return;
	off = (offsets[a & 7] + (a >> 3) * PAGE) % S.maps[m].len;
	remote = (struct iovec){ (uint8_t *)S.maps[m].addr + (off & ~7ULL), sizeof(val) };
	if (S.maps[m].vm < 0)
		return;                 /* a kvm_run page: ours anyway */
	if (w & 1) {
		drop_all(&S.vms[S.maps[m].vm]);
		(void)process_vm_writev(getpid(), &local, 1, &remote, 1, 0);
	} else {
		(void)process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
	}
}

static void op_pin(void)
{
	int gi, fd;
	bool odd;
	uint8_t a, b, c;
	struct pm_gmem_pin p;

	fd = pick(K_GMEM, u8(), &gi, &odd);
	a = u8();
	b = u8();
	c = u8();
	p = (struct pm_gmem_pin){ .offset = offsets[a & 7], .size = sizes[b & 15] };
	errno_ok("PM_GUEST_MEMFD_PIN", pm_kvm_ioctl(fd, (c & 1) ? PM_GUEST_MEMFD_UNPIN : PM_GUEST_MEMFD_PIN, &p),
		 e_pin, odd);
}

/* ---- read-only calls ---- */

static void op_info(void)
{
	static const int kinds[4] = { K_SYS, K_VM, K_GMEM, K_VCPU };
	static const long caps[8] = {
		KVM_CAP_GUEST_MEMFD_FLAGS, KVM_CAP_VM_TYPES, KVM_CAP_MEMORY_ATTRIBUTES, KVM_CAP_MAX_VCPUS,
		KVM_CAP_PRE_FAULT_MEMORY, KVM_CAP_NR_VCPUS, KVM_CAP_NR_MEMSLOTS, 99999,
	};
	uint8_t h = u8(), which = u8();
	int i, fd;
	bool odd;
	union {
		struct stat st;
		struct pm_vm_stats vs;
		struct pm_pool_stats ps;
		struct pm_model_stats ms;
		struct pm_measurement m;
		char buf[64];
	} u;

	fd = pick(kinds[which & 3], h, &i, &odd);
	memset(&u, 0, sizeof(u));
	switch ((which >> 2) % 11) {
	case 0:
		errno_ok("fstat", pm_kvm_fstat(fd, &u.st), ERRS(EBADF), odd);
		break;
	case 1:
		errno_ok("read", pm_kvm_read(fd, u.buf, sizeof(u.buf)), ERRS(EINVAL, EBADF), odd);
		break;
	case 2:
		if (h & 0x10)
			errno_ok("pread", pm_kvm_pread(fd, u.buf, 8, (which & 0x80) ? -1 : 0), ERRS(EINVAL, EBADF), odd);
		else
			errno_ok("pwrite", pm_kvm_pwrite(fd, u.buf, 8, (which & 0x80) ? -1 : 0), ERRS(EINVAL, EBADF),
				 odd);
		break;
	case 3:
		errno_ok("KVM_CHECK_EXTENSION", pm_kvm_ioctl(fd, KVM_CHECK_EXTENSION, caps[(h >> 5) & 7]),
			 e_info, odd);
		break;
	case 4:
		errno_ok("PM_KVM_GET_VM_STATS", pm_kvm_ioctl(fd, PM_KVM_GET_VM_STATS, &u.vs), e_info, odd);
		break;
	case 5:
		errno_ok("PM_KVM_GET_POOL_STATS", pm_kvm_ioctl(fd, PM_KVM_GET_POOL_STATS, &u.ps), e_info, odd);
		break;
	case 6:
		u.ms.vm_type = vm_types[(h >> 5) & 7];
		errno_ok("PM_KVM_GET_MODEL_STATS", pm_kvm_ioctl(fd, PM_KVM_GET_MODEL_STATS, &u.ms), e_info, odd);
		if (u.ms.nr > PM_MODEL_STATS_MAX)
			fz_fail("PM_KVM_GET_MODEL_STATS filled %u entries", u.ms.nr);
		break;
	case 7:
		errno_ok("PM_KVM_GET_MEASUREMENT", pm_kvm_ioctl(fd, PM_KVM_GET_MEASUREMENT, &u.m), e_info, odd);
		break;
	case 8:
		errno_ok("KVM_GET_VCPU_MMAP_SIZE", pm_kvm_ioctl(fd, KVM_GET_VCPU_MMAP_SIZE, 0), e_info, odd);
		break;
	case 9: {                       /* a NULL argument: EFAULT where the ioctl is known */
		static const unsigned long reqs[8] = {
			KVM_SET_MEMORY_ATTRIBUTES, KVM_CREATE_GUEST_MEMFD, KVM_SET_USER_MEMORY_REGION2,
			KVM_ENABLE_CAP, KVM_PRE_FAULT_MEMORY, PM_KVM_GET_VM_STATS, PM_KVM_SET_POOL_CONFIG,
			PM_GUEST_MEMFD_PIN,
		};

		errno_ok("ioctl(NULL)", pm_kvm_ioctl(fd, reqs[(h >> 5) & 7], NULL),
			 ERRS(EFAULT, EINVAL, ENOTTY, EIO), odd);
		break;
	}
	default:
		errno_ok("unknown ioctl", pm_kvm_ioctl(fd, _IO(KVMIO, 0xff), 0), ERRS(EINVAL, ENOTTY), odd);
		break;
	}
}

static void op_pool_config(void)
{
	struct pm_pool_config cfg = { .size = pool_sizes[u8() & 15], .watermark = POOL_WATERMARK };

	if (!errno_ok("PM_KVM_SET_POOL_CONFIG", pm_kvm_ioctl(kvm, PM_KVM_SET_POOL_CONFIG, &cfg), e_pool, false))
		S.pool_changed = true;
}

static void op_open(void)
{
	for (int i = 0; i < MAX_SYS; i++)
		if (S.sys[i] < 0) {
			S.sys[i] = (int)errno_ok("open", pm_kvm_open(), ERRS(EMFILE, ENOMEM), false);
			return;
		}
}

/* Many 4K attribute sets in distinct 2M blocks (or next to each other),
 * then back unless `how` says keep: past the attribute tree's 64 kept
 * uniform leaves, so collapses and the node recycler run. */
static void op_attr_storm(void)
{
	static const unsigned int counts[4] = { 8, 70, 130, 300 };
	int vi;
	bool odd;
	uint8_t a, how;
	unsigned int n;

	pick(K_VM, u8(), &vi, &odd);
	a = u8();
	how = u8();
	if (odd)
		return;
	n = counts[a & 3];
	for (int pass = 0; pass < ((how & 2) ? 1 : 2); pass++)
		for (unsigned int i = 0; i < n; i++) {
			uint64_t gpa = (how & 1) ? i * 2 * MIB + ((a >> 2) & 7) * PAGE : i * 3 * PAGE;

			vm_set_attr(vi, gpa, PAGE, pass == 0, "KVM_SET_MEMORY_ATTRIBUTES (storm)");
		}
}

/* ---- compound operations: a VM ready to run in a few bytes ---- */

static void op_setup(void)
{
	static const struct { uint64_t gpa, size, flags; uint32_t slot; } layouts[4] = {
		{ 0, 8 * MIB, 0, 0 },
		{ GIB, GIB, 0, 1 },
		{ 0, 4 * MIB, PM_GUEST_MEMFD_FLAG_NO_HUGE, 2 },
		{ 4 * MIB, 4 * MIB, PM_GUEST_MEMFD_FLAG_NO_1G, 3 },
	};
	int vi, fd, gi = -1;
	bool odd, has_vcpu = false;
	uint8_t b;
	struct kvm_enable_cap cap = { .cap = KVM_CAP_EXIT_HYPERCALL, .args = { 1ULL << KVM_HC_MAP_GPA_RANGE } };
	uint64_t gflags;
	uint32_t type;

	fd = pick(K_VM, u8(), &vi, &odd);
	b = u8();
	if (odd)
		return;
	type = S.vms[vi].type;
	gflags = layouts[b & 3].flags;
	if (type == PM_VM_TYPE_PKVM)
		gflags |= GUEST_MEMFD_FLAG_MMAP;
	else if (type == KVM_X86_DEFAULT_VM)
		gflags |= GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED;
	if (!(b & 0x10))
		gi = new_gmem(vi, layouts[b & 3].size, gflags, false, fd);
	set_slot(vi, fd, false, layouts[b & 3].slot, gi >= 0 ? KVM_MEM_GUEST_MEMFD : 0, layouts[b & 3].gpa,
		 layouts[b & 3].size, (uintptr_t)region, gi, gi >= 0 ? S.gmems[gi].fd : -1, 0, false);
	if (type != KVM_X86_DEFAULT_VM && type != PM_VM_TYPE_PKVM && !(b & 0x20))
		vm_set_attr(vi, layouts[b & 3].gpa, layouts[b & 3].size, true, "KVM_SET_MEMORY_ATTRIBUTES");
	errno_ok("KVM_ENABLE_CAP", pm_kvm_ioctl(fd, KVM_ENABLE_CAP, &cap), e_cap, false);
	for (int ci = 0; ci < MAX_VCPUS; ci++)
		has_vcpu |= S.vcpus[ci].used && S.vcpus[ci].vm == vi;
	if (!has_vcpu && !(b & 0x40))
		create_vcpu(vi, 0, true);
}

/* ---- one input ---- */

typedef void (*op_fn)(void);
static const op_fn ops[FZ_OP_NR] = {
	[FZ_OP_CREATE_VM] = op_create_vm,     [FZ_OP_CLOSE] = op_close,
	[FZ_OP_CREATE_GMEM] = op_create_gmem, [FZ_OP_SET_SLOT] = op_set_slot,
	[FZ_OP_SET_ATTR] = op_set_attr,       [FZ_OP_FALLOCATE] = op_fallocate,
	[FZ_OP_CREATE_VCPU] = op_create_vcpu, [FZ_OP_GUEST] = op_guest,
	[FZ_OP_RUN] = op_run,                 [FZ_OP_PRE_FAULT] = op_pre_fault,
	[FZ_OP_ENABLE_CAP] = op_enable_cap,   [FZ_OP_SNP] = op_snp,
	[FZ_OP_TDX] = op_tdx,                 [FZ_OP_MMAP] = op_mmap,
	[FZ_OP_MUNMAP] = op_munmap,           [FZ_OP_HOST_RW] = op_host_rw,
	[FZ_OP_PIN] = op_pin,                 [FZ_OP_INFO] = op_info,
	[FZ_OP_POOL_CONFIG] = op_pool_config, [FZ_OP_TDX_CONFIG] = op_tdx_config,
	[FZ_OP_SETUP] = op_setup,             [FZ_OP_SNP_LAUNCH] = op_snp_launch,
	[FZ_OP_TDX_BUILD] = op_tdx_build,     [FZ_OP_OPEN] = op_open,
	[FZ_OP_ATTR_STORM] = op_attr_storm,
};
_Static_assert(sizeof(ops) / sizeof(ops[0]) == FZ_OP_NR, "one function per operation");

static uint64_t pool_in_use(void)
{
	struct pm_pool_stats ps;

	if (pm_kvm_ioctl(kvm, PM_KVM_GET_POOL_STATS, &ps))
		fz_fail("PM_KVM_GET_POOL_STATS: %s", strerror(errno));
	return ps.in_use;
}

static void setup_once(void)
{
	struct pm_pool_config cfg = { .size = POOL_SIZE, .watermark = POOL_WATERMARK };
	void *p;

	trace = getenv("FUZZ_TRACE") != NULL;
	history_init();
	tdx_busy_allowed = getenv("FUZZ_TDX_BUSY") != NULL;
	kvm = pm_kvm_open();
	if (kvm < 0 || pm_kvm_ioctl(kvm, PM_KVM_SET_POOL_CONFIG, &cfg))
		fz_fail("setting up the pool: %s", strerror(errno));
	p = mmap(NULL, REGION_SPAN + 2 * MIB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		fz_fail("reserving the VMM's memory: %s", strerror(errno));
	region = (uint8_t *)PM_ALIGN_UP((uintptr_t)p, 2 * MIB);
	if (mprotect(region, REGION_RW, PROT_READ | PROT_WRITE) ||
	    mprotect(region + REGION_RW, REGION_RO, PROT_READ))
		fz_fail("mprotect: %s", strerror(errno));
	pool_baseline = pool_in_use();
	next_handle = pm_kvm_open();
	pm_kvm_close(next_handle);
}

/* Every mapping and handle of the input goes; then nothing may remain. */
static void teardown(uint8_t order)
{
	struct pm_pool_config cfg = { .size = POOL_SIZE, .watermark = POOL_WATERMARK };
	bool tdx_busy = false;
	uint64_t in_use;
	int h;

	for (int m = 0; m < MAX_MAPS; m++)
		if (S.maps[m].used && pm_kvm_munmap(S.maps[m].addr, S.maps[m].len))
			fz_fail("munmap at teardown: %s", strerror(errno));
	for (int ci = 0; ci < MAX_VCPUS; ci++)
		if (S.vcpus[ci].used && S.vcpus[ci].run && pm_kvm_munmap(S.vcpus[ci].run, PAGE))
			fz_fail("munmap(kvm_run) at teardown: %s", strerror(errno));
	for (int vi = 0; vi < MAX_VMS; vi++)
		tdx_busy |= S.vms[vi].used && S.vms[vi].tdx_busy;
	/* Close in the order the input's first byte picks. */
	for (int pass = 0; pass < 4; pass++) {
		int kind = (order & 1) ? 3 - pass : pass;

		if (order & 2)
			kind = (kind + 1) % 4;
		for (int i = 0; i < MAX_VCPUS; i++) {
			int n = count_kind(kind);

			if (!n)
				break;
			close_index(kind, nth_index(kind, (order >> 2) % n));
		}
	}
	in_use = pool_in_use();
	if (in_use != pool_baseline) {
		pm_rcu_barrier();       /* frees deferred by a grace period */
		in_use = pool_in_use();
	}
	if (in_use != pool_baseline) {
		if (!tdx_busy) {
			struct pm_pool_stats ps;

			pm_kvm_ioctl(kvm, PM_KVM_GET_POOL_STATS, &ps);
			for (int o = 0; o <= PM_POOL_MAX_ORDER; o++)
				fprintf(stderr, "free runs of order %d: %llu\n", o, (unsigned long long)ps.free_blocks[o]);
			fz_fail("the pool has %" PRIu64 " bytes in use after every handle closed, %" PRIu64
				" before (pool of %llu bytes)", in_use, pool_baseline, (unsigned long long)ps.size);
		}
		pool_baseline = in_use; /* a bugged TD's frames are held for good */
	}
	h = pm_kvm_open();
	if (h != next_handle)
		fz_fail("a new handle is %d, %d before: a handle leaked", h, next_handle);
	pm_kvm_close(h);
	for (h = 0; h < 64; h++) {      /* the input's handles are all below 64 */
		struct stat st;

		if (h != kvm && pm_kvm_fstat(h, &st) == 0)
			fz_fail("handle %d is still open after every handle of the input closed", h);
	}
	if (S.pool_changed && !tdx_busy && pm_kvm_ioctl(kvm, PM_KVM_SET_POOL_CONFIG, &cfg))
		fz_fail("restoring the pool: %s", strerror(errno));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t order;

	if (kvm < 0)
		setup_once();
	memset(&S, 0, sizeof(S));
	for (int i = 0; i < MAX_SYS; i++)
		S.sys[i] = -1;
	history_add(data, size);
	in_data = data;
	in_len = size;
	in_pos = 0;
	order = u8();
	while (in_pos < in_len) {
		uint8_t op = u8() % FZ_OP_NR;

		if (trace)
			fprintf(stderr, "op %u at byte %zu\n", op, in_pos - 1);
		ops[op]();
	}
	teardown(order);
	return 0;
}

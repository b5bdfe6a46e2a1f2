/* SPDX-License-Identifier: MIT */
/*
 * A guest loader for machine-code guests run through privmem's uAPI (the
 * x86 engine behind KVM_RUN): what kvm_util does for the KVM selftests,
 * written for privmem's tests.
 *
 * xg_create() makes a VM of the type asked for with one memslot of guest
 * RAM at gpa 0, backed by the VMM's anonymous mapping (`mem`, the shared
 * copy) and, if asked, a guest_memfd (private pages), and its vCPUs with
 * their kvm_run mapped. It builds, in the shared copy of guest RAM, every
 * structure 64-bit long mode needs, at the fixed gpas below: 4-level page
 * tables identity-mapping all of RAM (4K pages for the first 2 MiB, so that
 * a test can edit single PTEs, 2M pages above), a GDT (kernel code and
 * data, a TSS), an IDT whose 256 gates point at exception stubs loaded at
 * XG_STUBS, and a stack per vCPU; then it sets each vCPU's SREGS (CR0.PG|PE,
 * CR4.PAE, EFER.LME|LMA|NXE, 64-bit CS) and REGS with KVM_SET_SREGS and
 * KVM_SET_REGS, as a VMM does. Guest code is assembled into the test
 * binary (XG_BLOB blobs) and copied into guest memory by xg_load(); it
 * must be position independent (it uses absolute addresses only for the
 * fixed gpas of this header, which are identity mapped).
 *
 * Exceptions: every stub records the vector, error code, CR2, the frame's
 * RIP and CS and a count in the record at XG_EXC, then exits with an OUT
 * of the vector (4 bytes) to port XG_PORT_EXC. When the VMM runs the vCPU
 * again the stub returns with IRETQ, to the faulting instruction (a
 * restart) or, if the VMM wrote record.resume_rip, there.
 *
 * Ownership: struct xg_vm holds every handle and mapping it made;
 * xg_destroy() closes them. Setup failures abort with a message (these
 * are tests' fixtures); the tests assert on what they run.
 */
#ifndef PM_TESTS_X86_GUEST_H
#define PM_TESTS_X86_GUEST_H

#include <stdbool.h>
#include <stdint.h>
#include <privmem/kvm.h>

#define XG_MAX_VCPUS 4

/* Fixed guest-physical (= guest-virtual) layout (no suffixes: guest code
 * uses them in assembly). */
#define XG_PML4      0x1000
#define XG_TABLES    0x2000   /* page-table pages up to XG_GDT */
#define XG_GDT       0x10000
#define XG_IDT       0x11000
#define XG_TSS       0x12000
#define XG_STUBS     0x13000  /* the exception stubs (two pages) */
#define XG_EXC       0x15000  /* struct xg_exc */
#define XG_CODE      0x20000  /* guest code, up to 64 KiB */
#define XG_STACKS    0x40000  /* vCPU i's stack: 16 KiB ending at XG_STACKS + 16K * (i + 1) */
#define XG_DATA      0x100000 /* free for tests */
#define XG_MIN_MEM   0x200000

#define XG_PORT_EXC  0xe0        /* the stubs' OUT */
#define XG_PORT_DONE 0xe4        /* tests' convention for "finished" */

#define XG_SEL_KCODE 0x08
#define XG_SEL_KDATA 0x10
#define XG_SEL_TSS   0x18

/* Page-table entry bits. */
#define XG_PTE_P  (1ULL << 0)
#define XG_PTE_RW (1ULL << 1)
#define XG_PTE_US (1ULL << 2)
#define XG_PTE_A  (1ULL << 5)
#define XG_PTE_D  (1ULL << 6)
#define XG_PTE_PS (1ULL << 7)
#define XG_PTE_NX (1ULL << 63)
#define XG_PTE_ADDR 0x000ffffffffff000ULL

/* What the stubs record (at XG_EXC). */
struct xg_exc {
	uint64_t vector, error, cr2, rip, cs;
	uint64_t count;       /* exceptions taken */
	uint64_t resume_rip;  /* set by the VMM: IRETQ there instead (cleared) */
};

struct xg_cfg {
	unsigned long type;   /* VM type */
	uint64_t mem_size;    /* guest RAM; at least XG_MIN_MEM, a multiple of 2M */
	bool gmem;            /* a guest_memfd behind the slot */
	int vcpus;            /* 0 = 1 */
	bool irqchip;         /* KVM_CREATE_IRQCHIP */
};

struct xg_vm {
	int kvm, vm, gmem;
	int vcpu[XG_MAX_VCPUS];
	struct kvm_run *run[XG_MAX_VCPUS];
	int nr_vcpus;
	size_t run_size;      /* KVM_GET_VCPU_MMAP_SIZE */
	uint8_t *mem;         /* the VMM's (shared) copy of guest RAM */
	uint64_t mem_size;
	unsigned int tables_used;
};

/* Creates the VM and its vCPUs in 64-bit mode (RIP = XG_CODE, RSP = the
 * vCPU's stack top); aborts on failure. */
void xg_create(struct xg_vm *g, const struct xg_cfg *cfg);
void xg_destroy(struct xg_vm *g);

/* Copies the bytes [start, end) of a code blob to gpa (in the shared copy). */
void xg_load(struct xg_vm *g, uint64_t gpa, const void *start, const void *end);
/* The host address of gpa in the shared copy. */
void *xg_host(struct xg_vm *g, uint64_t gpa);
/* The record at XG_EXC (in the shared copy). */
struct xg_exc *xg_exc(struct xg_vm *g);

/* Sets vCPU i's RIP (and RSP to its stack top, RFLAGS to 2, the other
 * GPRs to zero) with KVM_SET_REGS. */
void xg_start(struct xg_vm *g, int i, uint64_t rip);
/* KVM_GET_REGS / KVM_SET_REGS of vCPU i (abort on failure). */
void xg_get_regs(struct xg_vm *g, int i, struct kvm_regs *r);
void xg_set_regs(struct xg_vm *g, int i, const struct kvm_regs *r);
/* KVM_RUN on vCPU i: 0 or -1 with errno, as the ioctl. */
int xg_run(struct xg_vm *g, int i);

/* Maps [gva, gva + size) to gpa (which may carry bits up to 51, e.g.
 * SNP's C-bit) with 4K pages and the leaf flags given (P is added);
 * returns the first leaf's host address. Tables come from XG_TABLES. */
uint64_t *xg_map(struct xg_vm *g, uint64_t gva, uint64_t gpa, uint64_t size, uint64_t flags);
/* The leaf entry for gva (host address), NULL when unmapped. */
uint64_t *xg_pte(struct xg_vm *g, uint64_t gva);

/* The set-up SREGS the loader gives every vCPU (for tests that compare or
 * restore it). */
void xg_sregs(struct xg_vm *g, int i, struct kvm_sregs *s);

/* Guest code blobs: XG_BLOB(name, "asm") defines name[] and name_end[]
 * in .text, to be copied with xg_load(g, gpa, name, name_end). */
#define XG_BLOB(name, body)                                                    \
	extern const char name[], name##_end[];                                \
	__asm__(".pushsection .text\n.p2align 4\n" #name ":\n" body "\n" #name "_end:\n" \
		".popsection\n")
#define XG_LOAD(g, gpa, name) xg_load((g), (gpa), name, name##_end)
#define XG_STR_(x) #x
#define XG_STR(x) XG_STR_(x)

#endif

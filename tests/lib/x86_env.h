/* SPDX-License-Identifier: MIT */
/*
 * A flat test environment for the x86 engine (src/vcpu/x86/), standing in
 * for privmem's vCPU: guest-physical memory is a list of regions backed by
 * host buffers; most are identity regions (gpa == host address), so the
 * guest can run code assembled into the test binary where it lies and
 * share the test's globals. A gpa in no region is MMIO, logged. Port I/O,
 * hypercalls, HLT and shutdown are logged too.
 *
 * x86_env_init() builds a 64-bit long-mode vCPU: 4-level page tables
 * (identity for the test binary's image and every identity region, user
 * accessible, writable, executable), a GDT with kernel and user code and
 * data and a TSS, an IDT whose 256 gates point at `x86_env_default_handler`
 * unless a test sets them, and a 64 KiB kernel stack.
 */
#ifndef PM_TESTS_X86_ENV_H
#define PM_TESTS_X86_ENV_H

#include <stdbool.h>
#include <stdint.h>
#include "vcpu/x86/x86.h"

#define X86_ENV_REGIONS 32
#define X86_ENV_LOG     64

#define X86_SEL_KCODE 0x08
#define X86_SEL_KDATA 0x10
#define X86_SEL_UDATA 0x1b /* 0x18 | 3: SYSRET's SS (STAR[63:48] + 8) */
#define X86_SEL_UCODE 0x23 /* 0x20 | 3: SYSRET's CS (STAR[63:48] + 16) */
#define X86_SEL_TSS   0x28

struct x86_env_io {
	uint64_t addr;   /* gpa or port */
	uint64_t val;
	unsigned int len;
	bool write;
};

struct x86_env {
	struct pm_x86_cpu *cpu;
	struct { uint64_t gpa, size; uint8_t *host; bool owned; } region[X86_ENV_REGIONS];
	unsigned int nregion;
	uint8_t *tables;        /* page-table pages (an identity region) */
	unsigned int tables_used;
	uint64_t pml4;
	uint8_t *sys;           /* GDT, IDT, TSS, kernel stack (identity) */
	uint64_t gdt, idt, tss, kstack_top;
	/* logs */
	struct x86_env_io mmio[X86_ENV_LOG], pio[X86_ENV_LOG];
	unsigned int nmmio, npio, nhypercall, nhlt, nshutdown, npoll;
	int shutdown_reason;
	uint64_t mmio_read_value;  /* what MMIO reads return */
	uint32_t pio_in_value;     /* what IN returns */
	bool hlt_stops;            /* the hlt hook requests a stop */
	uint64_t last_pio_rdi;     /* RDI when the last PIO exit happened (ucall) */
	uint64_t hypercall_ret;
	uint64_t hypercall_nr;
	unsigned int flush_every;  /* the page hook flushes every n-th call */
	uint64_t npage;
	struct pm_x86_ops ops;
};

void x86_env_init(struct x86_env *e);
void x86_env_fini(struct x86_env *e);

/* An identity-mapped (gpa == host address) zeroed buffer of `size` bytes
 * aligned to `align`, mapped in the page tables with 4K pages. */
void *x86_env_alloc(struct x86_env *e, size_t size, size_t align);
/* Register [gpa, gpa + size) backed by host (not identity). */
void x86_env_add_region(struct x86_env *e, uint64_t gpa, uint64_t size, uint8_t *host);

#define X86_PTE_P  (1ULL << 0)
#define X86_PTE_RW (1ULL << 1)
#define X86_PTE_US (1ULL << 2)
#define X86_PTE_A  (1ULL << 5)
#define X86_PTE_D  (1ULL << 6)
#define X86_PTE_PS (1ULL << 7)
#define X86_PTE_NX (1ULL << 63)
/* Map [gva, gva + size) to gpa with pages of `page_size` (4K, 2M, 1G) and
 * the leaf flags given (P is added). Returns the leaf's host address of
 * the first page's entry (for A/D checks). */
uint64_t *x86_env_map(struct x86_env *e, uint64_t gva, uint64_t gpa, uint64_t size,
		      uint64_t page_size, uint64_t flags);
/* The leaf entry for gva (NULL when unmapped). */
uint64_t *x86_env_pte(struct x86_env *e, uint64_t gva);

/* Point IDT vector `vec` at `handler` (an interrupt gate, DPL dpl, IST ist). */
void x86_env_set_gate(struct x86_env *e, int vec, uint64_t handler, unsigned int dpl,
		      unsigned int ist);
/* Run from rip with rsp, until HLT (the default) or the budget; returns
 * the stop reason. */
enum pm_x86_stop x86_env_run(struct x86_env *e, uint64_t rip, uint64_t budget);

/* The exception log the default handler (x86_env_default_handler, an
 * assembly stub) fills: vector, error code, CR2, RIP of the frame. It then
 * halts. Tests with their own handlers write their own records. */
struct x86_env_fault {
	uint64_t vector, error, cr2, rip, cs, count;
};
extern volatile struct x86_env_fault x86_env_last_fault;

#endif

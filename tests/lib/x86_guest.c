/* SPDX-License-Identifier: MIT */
/*
 * The machine-code guest loader of tests/lib/x86_guest.h: a VM through
 * pm_kvm_*, its long-mode structures built in the VMM's copy of guest RAM,
 * and the vCPUs' registers set as a VMM sets them.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <privmem/privmem.h>
#include "x86_guest.h"

#define PAGE 4096ULL
#define SZ_2M (2ULL << 20)
#define SZ_1G (1ULL << 30)
#define STACK_SIZE 0x4000ULL

/* 256 exception stubs, 16 bytes apart: push a zero error code where the
 * CPU pushes none, push the vector, then the common part records the frame
 * at XG_EXC and exits to the VMM with OUT; when resumed it returns with
 * IRETQ (to resume_rip if the VMM set it). Absolute operands are the fixed
 * gpas (identity mapped, below 2 GiB: disp32 addressing). */
#define EXC_FIELD(off) XG_STR(XG_EXC) "+" #off
__asm__(".pushsection .text\n"
	".p2align 4\n"
	"xg_stubs:\n"
	".set vec, 0\n"
	".rept 256\n"
	".p2align 4\n"
	".if (vec == 8) || (vec >= 10 && vec <= 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)\n"
	".else\n"
	"pushq $0\n"
	".endif\n"
	"pushq $vec\n"
	"jmp xg_common\n"
	".set vec, vec + 1\n"
	".endr\n"
	"xg_common:\n"
	"pushq %rax\n"
	"pushq %rdx\n"
	"movq 16(%rsp), %rax\n movq %rax, " EXC_FIELD(0) "\n"
	"movq 24(%rsp), %rax\n movq %rax, " EXC_FIELD(8) "\n"
	"movq %cr2, %rax\n movq %rax, " EXC_FIELD(16) "\n"
	"movq 32(%rsp), %rax\n movq %rax, " EXC_FIELD(24) "\n"
	"movq 40(%rsp), %rax\n movq %rax, " EXC_FIELD(32) "\n"
	"incq " EXC_FIELD(40) "\n"
	"movl 16(%rsp), %eax\n"
	"outl %eax, $" XG_STR(XG_PORT_EXC) "\n"
	"movq " EXC_FIELD(48) ", %rax\n"
	"testq %rax, %rax\n"
	"jz 1f\n"
	"movq %rax, 32(%rsp)\n"
	"movq $0, " EXC_FIELD(48) "\n"
	"1: popq %rdx\n"
	"popq %rax\n"
	"addq $16, %rsp\n"
	"iretq\n"
	"xg_stubs_end:\n"
	".popsection\n");
extern const char xg_stubs[], xg_stubs_end[];

static _Noreturn __attribute__((format(printf, 1, 2))) void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "x86_guest: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	abort();
}

void *xg_host(struct xg_vm *g, uint64_t gpa)
{
	if (gpa >= g->mem_size)
		die("gpa %#llx outside guest RAM", (unsigned long long)gpa);
	return g->mem + gpa;
}

struct xg_exc *xg_exc(struct xg_vm *g)
{
	return xg_host(g, XG_EXC);
}

void xg_load(struct xg_vm *g, uint64_t gpa, const void *start, const void *end)
{
	size_t n = (size_t)((const char *)end - (const char *)start);

	if (gpa + n > g->mem_size)
		die("code of %zu bytes does not fit at %#llx", n, (unsigned long long)gpa);
	memcpy(xg_host(g, gpa), start, n);
}

/* ---- page tables ---- */

static uint64_t table_alloc(struct xg_vm *g)
{
	uint64_t gpa = XG_TABLES + (uint64_t)g->tables_used * PAGE;

	if (gpa >= XG_GDT)
		die("out of page-table pages");
	g->tables_used++;
	memset(xg_host(g, gpa), 0, PAGE);
	return gpa;
}

/* The entry for gva at `level` (4 = PML4 ... 1 = PT), creating tables. */
static uint64_t *walk_create(struct xg_vm *g, uint64_t gva, int level)
{
	uint64_t table = XG_PML4;

	for (int l = 4;; l--) {
		uint64_t *ent = (uint64_t *)xg_host(g, table) + ((gva >> (12 + 9 * (l - 1))) & 511);

		if (l == level)
			return ent;
		if (!(*ent & XG_PTE_P))
			*ent = table_alloc(g) | XG_PTE_P | XG_PTE_RW | XG_PTE_US;
		if (*ent & XG_PTE_PS)
			die("a 4K mapping inside a large page at %#llx", (unsigned long long)gva);
		table = *ent & XG_PTE_ADDR;
	}
}

static void map_level(struct xg_vm *g, uint64_t gva, uint64_t gpa, uint64_t size,
		      uint64_t page, uint64_t flags)
{
	int level = page == SZ_2M ? 2 : 1;

	for (uint64_t off = 0; off < size; off += page)
		*walk_create(g, gva + off, level) = ((gpa + off) & XG_PTE_ADDR) | flags | XG_PTE_P |
						    (level > 1 ? XG_PTE_PS : 0);
}

uint64_t *xg_map(struct xg_vm *g, uint64_t gva, uint64_t gpa, uint64_t size, uint64_t flags)
{
	map_level(g, gva, gpa, size, PAGE, flags);
	return xg_pte(g, gva);
}

uint64_t *xg_pte(struct xg_vm *g, uint64_t gva)
{
	uint64_t table = XG_PML4;

	for (int l = 4;; l--) {
		uint64_t *ent = (uint64_t *)xg_host(g, table) + ((gva >> (12 + 9 * (l - 1))) & 511);

		if (!(*ent & XG_PTE_P))
			return NULL;
		if (l == 1 || (*ent & XG_PTE_PS))
			return ent;
		table = *ent & XG_PTE_ADDR;
	}
}

/* ---- descriptors ---- */

static uint64_t seg_desc(unsigned int type, bool code)
{
	/* base 0, limit 0xfffff with G (flat), present, DPL 0; L for 64-bit
	 * code, D/B for data */
	uint64_t d = 0xffffULL | (0xfULL << 48) | (1ULL << 55);

	d |= (uint64_t)type << 40 | 1ULL << 44 | 1ULL << 47;
	d |= code ? 1ULL << 53 : 1ULL << 54;
	return d;
}

static void build_tables(struct xg_vm *g)
{
	uint64_t *gdt = xg_host(g, XG_GDT), *idt = xg_host(g, XG_IDT);
	uint64_t rsp0 = XG_STACKS + STACK_SIZE;   /* vCPU 0's stack */
	uint64_t tss = XG_TSS;

	memset(xg_host(g, XG_PML4), 0, PAGE);
	/* RAM identity mapped: 4K pages below 2 MiB (PTEs a test can edit),
	 * 2M pages above. Not user accessible. */
	map_level(g, 0, 0, SZ_2M, PAGE, XG_PTE_RW);
	map_level(g, SZ_2M, SZ_2M, g->mem_size - SZ_2M, SZ_2M, XG_PTE_RW);

	memset(gdt, 0, PAGE);
	gdt[XG_SEL_KCODE / 8] = seg_desc(0xb, true);
	gdt[XG_SEL_KDATA / 8] = seg_desc(0x3, false);
	gdt[XG_SEL_TSS / 8] = 0x67 | ((tss & 0xffffff) << 16) | (0xbULL << 40) | (1ULL << 47) |
			      (((tss >> 24) & 0xff) << 56);
	gdt[XG_SEL_TSS / 8 + 1] = tss >> 32;
	memset(xg_host(g, XG_TSS), 0, PAGE);
	memcpy((uint8_t *)xg_host(g, XG_TSS) + 4, &rsp0, 8);

	memset(idt, 0, PAGE);
	for (uint64_t v = 0; v < 256; v++) {
		uint64_t h = XG_STUBS + 16 * v;

		/* 64-bit interrupt gate, DPL 0, present */
		idt[2 * v] = (h & 0xffff) | ((uint64_t)XG_SEL_KCODE << 16) | (0xeULL << 40) |
			     (1ULL << 47) | ((h >> 16) & 0xffff) << 48;
		idt[2 * v + 1] = h >> 32;
	}
	if ((uint64_t)(xg_stubs_end - xg_stubs) > XG_EXC - XG_STUBS)
		die("exception stubs too large");
	xg_load(g, XG_STUBS, xg_stubs, xg_stubs_end);
	memset(xg_exc(g), 0, sizeof(struct xg_exc));
}

static void seg_kvm(struct kvm_segment *s, uint16_t sel, unsigned int type, bool code)
{
	memset(s, 0, sizeof(*s));
	s->selector = sel;
	s->limit = 0xffffffff;
	s->type = (uint8_t)type;
	s->present = 1;
	s->s = 1;
	s->g = 1;
	s->l = code;
	s->db = !code;
}

void xg_sregs(struct xg_vm *g, int i, struct kvm_sregs *s)
{
	if (pm_kvm_ioctl(g->vcpu[i], KVM_GET_SREGS, s))
		die("KVM_GET_SREGS: %m");
	seg_kvm(&s->cs, XG_SEL_KCODE, 0xb, true);
	seg_kvm(&s->ds, XG_SEL_KDATA, 0x3, false);
	s->es = s->fs = s->gs = s->ss = s->ds;
	memset(&s->tr, 0, sizeof(s->tr));
	s->tr.selector = XG_SEL_TSS;
	s->tr.base = XG_TSS;
	s->tr.limit = 0x67;
	s->tr.type = 0xb;
	s->tr.present = 1;
	memset(&s->ldt, 0, sizeof(s->ldt));
	s->ldt.unusable = 1;
	s->gdt.base = XG_GDT;
	s->gdt.limit = (XG_SEL_TSS + 16) - 1;
	s->idt.base = XG_IDT;
	s->idt.limit = 256 * 16 - 1;
	s->cr0 = 1ULL << 0 /* PE */ | 1ULL << 5 /* NE */ | 1ULL << 16 /* WP */ | 1ULL << 31 /* PG */;
	s->cr3 = XG_PML4;
	s->cr4 = 1ULL << 5 /* PAE */ | 1ULL << 9 /* OSFXSR */ | 1ULL << 10 /* OSXMMEXCPT */;
	s->efer = 1ULL << 8 /* LME */ | 1ULL << 10 /* LMA */ | 1ULL << 11 /* NXE */;
}

void xg_get_regs(struct xg_vm *g, int i, struct kvm_regs *r)
{
	if (pm_kvm_ioctl(g->vcpu[i], KVM_GET_REGS, r))
		die("KVM_GET_REGS: %m");
}

void xg_set_regs(struct xg_vm *g, int i, const struct kvm_regs *r)
{
	if (pm_kvm_ioctl(g->vcpu[i], KVM_SET_REGS, r))
		die("KVM_SET_REGS: %m");
}

void xg_start(struct xg_vm *g, int i, uint64_t rip)
{
	struct kvm_regs r = { .rip = rip, .rflags = 2 };

	r.rsp = XG_STACKS + STACK_SIZE * (uint64_t)(i + 1);
	xg_set_regs(g, i, &r);
}

int xg_run(struct xg_vm *g, int i)
{
	return pm_kvm_ioctl(g->vcpu[i], KVM_RUN, 0);
}

/* ---- the VM ---- */

static void set_slot(struct xg_vm *g)
{
	struct kvm_userspace_memory_region2 r = {
		.slot = 0, .memory_size = g->mem_size, .userspace_addr = (uintptr_t)g->mem,
	};

	if (g->gmem >= 0) {
		r.flags = KVM_MEM_GUEST_MEMFD;
		r.guest_memfd = (uint32_t)g->gmem;
	}
	if (pm_kvm_ioctl(g->vm, KVM_SET_USER_MEMORY_REGION2, &r))
		die("KVM_SET_USER_MEMORY_REGION2: %m");
}

static void create_vcpu(struct xg_vm *g, int i)
{
	struct kvm_sregs s;

	g->vcpu[i] = pm_kvm_ioctl(g->vm, KVM_CREATE_VCPU, i);
	if (g->vcpu[i] < 0)
		die("KVM_CREATE_VCPU: %m");
	g->run[i] = pm_kvm_mmap(NULL, g->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, g->vcpu[i], 0);
	if (g->run[i] == MAP_FAILED)
		die("mmap of kvm_run: %m");
	g->nr_vcpus = i + 1;
	xg_sregs(g, i, &s);
	if (pm_kvm_ioctl(g->vcpu[i], KVM_SET_SREGS, &s))
		die("KVM_SET_SREGS: %m");
	xg_start(g, i, XG_CODE);
}

void xg_create(struct xg_vm *g, const struct xg_cfg *cfg)
{
	int n = cfg->vcpus ? cfg->vcpus : 1;
	long sz;

	memset(g, 0, sizeof(*g));
	g->gmem = -1;
	g->mem_size = cfg->mem_size ? cfg->mem_size : XG_MIN_MEM;
	if (g->mem_size < XG_MIN_MEM || g->mem_size % SZ_2M || n > XG_MAX_VCPUS)
		die("bad configuration");
	g->kvm = pm_kvm_open();
	if (g->kvm < 0)
		die("pm_kvm_open: %m");
	sz = pm_kvm_ioctl(g->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (sz <= 0)
		die("KVM_GET_VCPU_MMAP_SIZE: %m");
	g->run_size = (size_t)sz;
	g->vm = pm_kvm_ioctl(g->kvm, KVM_CREATE_VM, cfg->type);
	if (g->vm < 0)
		die("KVM_CREATE_VM(%lu): %m", cfg->type);
	if (cfg->irqchip && pm_kvm_ioctl(g->vm, KVM_CREATE_IRQCHIP, 0))
		die("KVM_CREATE_IRQCHIP: %m");
	g->mem = mmap(NULL, g->mem_size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (g->mem == MAP_FAILED)
		die("mmap: %m");
	if (cfg->gmem) {
		struct kvm_create_guest_memfd cg = { .size = g->mem_size };

		g->gmem = pm_kvm_ioctl(g->vm, KVM_CREATE_GUEST_MEMFD, &cg);
		if (g->gmem < 0)
			die("KVM_CREATE_GUEST_MEMFD: %m");
	}
	set_slot(g);
	build_tables(g);
	for (int i = 0; i < n; i++)
		create_vcpu(g, i);
}

void xg_destroy(struct xg_vm *g)
{
	for (int i = 0; i < g->nr_vcpus; i++) {
		pm_kvm_munmap(g->run[i], g->run_size);
		pm_kvm_close(g->vcpu[i]);
	}
	if (g->gmem >= 0)
		pm_kvm_close(g->gmem);
	pm_kvm_close(g->vm);
	pm_kvm_close(g->kvm);
	munmap(g->mem, g->mem_size);
}

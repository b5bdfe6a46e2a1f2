/* SPDX-License-Identifier: MIT */
/*
 * The flat test environment of the x86 engine: see x86_env.h.
 */
#include <stdlib.h>
#include <string.h>
#include "x86_env.h"

extern const char __executable_start[], end[];
extern const char x86_env_stubs[];

volatile struct x86_env_fault x86_env_last_fault;

/* 256 exception stubs, 16 bytes apart: push a zero error code where the
 * CPU pushes none, push the vector, record the frame, halt. */
__asm__(".pushsection .text\n"
	".globl x86_env_stubs\n"
	".p2align 4\n"
	"x86_env_stubs:\n"
	".set vec, 0\n"
	".rept 256\n"
	".p2align 4\n"
	".if (vec == 8) || (vec >= 10 && vec <= 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)\n"
	".else\n"
	"pushq $0\n"
	".endif\n"
	"pushq $vec\n"
	"jmp x86_env_common\n"
	".set vec, vec + 1\n"
	".endr\n"
	"x86_env_common:\n"
	"pushq %rax\n"
	"movq 8(%rsp), %rax\n movq %rax, x86_env_last_fault+0(%rip)\n"
	"movq 16(%rsp), %rax\n movq %rax, x86_env_last_fault+8(%rip)\n"
	"movq %cr2, %rax\n movq %rax, x86_env_last_fault+16(%rip)\n"
	"movq 24(%rsp), %rax\n movq %rax, x86_env_last_fault+24(%rip)\n"
	"movq 32(%rsp), %rax\n movq %rax, x86_env_last_fault+32(%rip)\n"
	"incq x86_env_last_fault+40(%rip)\n"
	"popq %rax\n"
	"1: hlt\n"
	"jmp 1b\n"
	".popsection\n");

static struct x86_env *env_of(void *p)
{
	return p;
}

static uint8_t *env_page(void *p, uint64_t gpa, bool write)
{
	struct x86_env *e = env_of(p);

	(void)write;
	/* A shootdown while the engine waits in the hook (every n-th call). */
	if (e->flush_every && ++e->npage % e->flush_every == 0)
		pm_x86_flush(e->cpu, PM_X86_FLUSH_TLB | PM_X86_FLUSH_CODE);
	for (unsigned int k = 0; k < e->nregion; k++)
		if (gpa >= e->region[k].gpa && gpa - e->region[k].gpa < e->region[k].size)
			return e->region[k].host + ((gpa & ~0xfffULL) - e->region[k].gpa);
	return NULL;
}

static void log_io(struct x86_env_io *log, unsigned int *n, uint64_t addr, uint64_t val,
		   unsigned int len, bool write)
{
	if (*n < X86_ENV_LOG)
		log[*n] = (struct x86_env_io){ .addr = addr, .val = val, .len = len, .write = write };
	(*n)++;
}

static uint64_t env_mmio_read(void *p, uint64_t gpa, unsigned int len)
{
	struct x86_env *e = env_of(p);

	log_io(e->mmio, &e->nmmio, gpa, e->mmio_read_value, len, false);
	return e->mmio_read_value;
}

static void env_mmio_write(void *p, uint64_t gpa, unsigned int len, uint64_t val)
{
	struct x86_env *e = env_of(p);

	log_io(e->mmio, &e->nmmio, gpa, val, len, true);
}

static void env_pio_in(void *p, uint16_t port, unsigned int size, unsigned int count, void *data)
{
	struct x86_env *e = env_of(p);

	e->last_pio_rdi = e->cpu->gpr[PM_X86_RDI];
	for (unsigned int k = 0; k < count; k++) {
		memcpy((uint8_t *)data + k * size, &e->pio_in_value, size);
		log_io(e->pio, &e->npio, port, e->pio_in_value, size, false);
	}
}

static void env_pio_out(void *p, uint16_t port, unsigned int size, unsigned int count,
			const void *data)
{
	struct x86_env *e = env_of(p);

	e->last_pio_rdi = e->cpu->gpr[PM_X86_RDI];
	for (unsigned int k = 0; k < count; k++) {
		uint32_t v = 0;

		memcpy(&v, (const uint8_t *)data + k * size, size);
		log_io(e->pio, &e->npio, port, v, size, true);
	}
}

static void env_hypercall(void *p, struct pm_x86_cpu *cpu)
{
	struct x86_env *e = env_of(p);

	e->nhypercall++;
	e->hypercall_nr = cpu->gpr[PM_X86_RAX];
	cpu->gpr[PM_X86_RAX] = e->hypercall_ret;
}

static void env_hlt(void *p)
{
	struct x86_env *e = env_of(p);

	e->nhlt++;
	if (e->hlt_stops)
		pm_x86_request_stop(e->cpu);
}

static void env_shutdown(void *p, enum pm_x86_shutdown why)
{
	struct x86_env *e = env_of(p);

	e->nshutdown++;
	e->shutdown_reason = (int)why;
}

static void env_poll(void *p)
{
	env_of(p)->npoll++;
}

void x86_env_add_region(struct x86_env *e, uint64_t gpa, uint64_t size, uint8_t *host)
{
	if (e->nregion >= X86_ENV_REGIONS)
		abort();
	e->region[e->nregion].gpa = gpa;
	e->region[e->nregion].size = size;
	e->region[e->nregion].host = host;
	e->region[e->nregion].owned = false;
	e->nregion++;
}

static uint64_t *table_alloc(struct x86_env *e)
{
	uint8_t *p;

	if (e->tables_used >= 256)
		abort();
	p = e->tables + (size_t)e->tables_used++ * 4096;
	memset(p, 0, 4096);
	return (uint64_t *)p;
}

/* The entry for gva at `level` (4 = PML4 ... 1 = PT), creating tables. */
static uint64_t *walk_create(struct x86_env *e, uint64_t gva, int level)
{
	uint64_t *table = (uint64_t *)(uintptr_t)e->pml4;

	for (int l = 4;; l--) {
		uint64_t *ent = &table[(gva >> (12 + 9 * (l - 1))) & 511];

		if (l == level)
			return ent;
		if (!(*ent & X86_PTE_P))
			*ent = (uint64_t)(uintptr_t)table_alloc(e) | X86_PTE_P | X86_PTE_RW | X86_PTE_US;
		if (*ent & X86_PTE_PS)
			abort(); /* a test mapped over a large page */
		table = (uint64_t *)(uintptr_t)(*ent & 0x000ffffffffff000ULL);
	}
}

uint64_t *x86_env_map(struct x86_env *e, uint64_t gva, uint64_t gpa, uint64_t size,
		      uint64_t page_size, uint64_t flags)
{
	int level = page_size == (1ULL << 30) ? 3 : page_size == (2ULL << 20) ? 2 : 1;
	uint64_t *first = NULL;

	for (uint64_t off = 0; off < size; off += page_size) {
		uint64_t *ent = walk_create(e, gva + off, level);

		*ent = ((gpa + off) & 0x000ffffffffff000ULL) | flags | X86_PTE_P |
		       (level > 1 ? X86_PTE_PS : 0);
		if (!first)
			first = ent;
	}
	return first;
}

uint64_t *x86_env_pte(struct x86_env *e, uint64_t gva)
{
	uint64_t *table = (uint64_t *)(uintptr_t)e->pml4;

	for (int l = 4;; l--) {
		uint64_t *ent = &table[(gva >> (12 + 9 * (l - 1))) & 511];

		if (!(*ent & X86_PTE_P))
			return NULL;
		if (l == 1 || (*ent & X86_PTE_PS))
			return ent;
		table = (uint64_t *)(uintptr_t)(*ent & 0x000ffffffffff000ULL);
	}
}

static void identity(struct x86_env *e, uint64_t start, uint64_t len, bool region)
{
	start &= ~0xfffULL;
	len = (len + 0xfff + (start & 0xfff)) & ~0xfffULL;
	if (region)
		x86_env_add_region(e, start, len, (uint8_t *)(uintptr_t)start);
	x86_env_map(e, start, start, len, 4096, X86_PTE_RW | X86_PTE_US);
}

void *x86_env_alloc(struct x86_env *e, size_t size, size_t align)
{
	size_t sz = (size + 4095) & ~(size_t)4095;
	uint8_t *p = aligned_alloc(align < 4096 ? 4096 : align, sz);

	if (!p)
		abort();
	memset(p, 0, sz);
	identity(e, (uint64_t)(uintptr_t)p, sz, true);
	e->region[e->nregion - 1].owned = true;
	return p;
}

static uint64_t seg_desc(unsigned int type, unsigned int dpl, bool code)
{
	/* base 0, limit 0xfffff with G: flat; L for 64-bit code, D/B for data */
	uint64_t d = 0xffffULL | (0xfULL << 48) | (1ULL << 55);

	d |= (uint64_t)type << 40 | 1ULL << 44 | (uint64_t)dpl << 45 | 1ULL << 47;
	d |= code ? 1ULL << 53 : 1ULL << 54;
	return d;
}

void x86_env_set_gate(struct x86_env *e, int vec, uint64_t handler, unsigned int dpl,
		      unsigned int ist)
{
	uint64_t *g = (uint64_t *)(uintptr_t)(e->idt + (uint64_t)vec * 16);

	g[0] = (handler & 0xffff) | ((uint64_t)X86_SEL_KCODE << 16) | ((uint64_t)ist << 32) |
	       (0xeULL << 40) | ((uint64_t)dpl << 45) | (1ULL << 47) |
	       ((handler >> 16) & 0xffff) << 48;
	g[1] = handler >> 32;
}

static void seg_kvm(struct kvm_segment *s, uint16_t sel, unsigned int type, bool code,
		    unsigned int dpl)
{
	memset(s, 0, sizeof(*s));
	s->selector = sel;
	s->limit = 0xffffffff;
	s->type = (uint8_t)type;
	s->present = 1;
	s->dpl = (uint8_t)dpl;
	s->s = 1;
	s->g = 1;
	s->l = code;
	s->db = !code;
}

void x86_env_init(struct x86_env *e)
{
	struct kvm_sregs s;
	uint64_t *gdt;

	memset(e, 0, sizeof(*e));
	e->ops = (struct pm_x86_ops){
		.page = env_page, .mmio_read = env_mmio_read, .mmio_write = env_mmio_write,
		.pio_in = env_pio_in, .pio_out = env_pio_out, .hypercall = env_hypercall,
		.hlt = env_hlt, .shutdown = env_shutdown, .poll = env_poll,
	};
	e->hlt_stops = true;
	e->cpu = pm_x86_cpu_create(&e->ops, e);
	if (!e->cpu)
		abort();
	e->tables = aligned_alloc(4096, 256 * 4096);
	if (!e->tables)
		abort();
	x86_env_add_region(e, (uint64_t)(uintptr_t)e->tables, 256 * 4096, e->tables);
	e->pml4 = (uint64_t)(uintptr_t)table_alloc(e);
	/* the tables themselves, so that guest code can edit its PTEs */
	identity(e, (uint64_t)(uintptr_t)e->tables, 256 * 4096, false);
	/* The test binary's image: code, rodata, data and bss. */
	identity(e, (uint64_t)(uintptr_t)__executable_start,
		 (uint64_t)(uintptr_t)end - (uint64_t)(uintptr_t)__executable_start, true);
	e->sys = x86_env_alloc(e, 32 * 4096, 4096);
	e->gdt = (uint64_t)(uintptr_t)e->sys;
	e->idt = e->gdt + 4096;
	e->tss = e->gdt + 2 * 4096;
	e->kstack_top = e->gdt + 32 * 4096;

	gdt = (uint64_t *)(uintptr_t)e->gdt;
	gdt[1] = seg_desc(0xb, 0, true);
	gdt[2] = seg_desc(0x3, 0, false);
	gdt[3] = seg_desc(0x3, 3, false);
	gdt[4] = seg_desc(0xb, 3, true);
	gdt[5] = 0x67 | ((e->tss & 0xffffff) << 16) | (0xbULL << 40) | (1ULL << 47) |
		 (((e->tss >> 24) & 0xff) << 56);
	gdt[6] = e->tss >> 32;
	/* TSS: RSP0 = the top of the kernel stack, IST1 = 16 KiB below it. */
	memcpy((uint8_t *)(uintptr_t)e->tss + 4, &e->kstack_top, 8);
	{
		uint64_t ist1 = e->kstack_top - 16 * 4096;

		memcpy((uint8_t *)(uintptr_t)e->tss + 0x24, &ist1, 8);
	}
	for (int v = 0; v < 256; v++)
		x86_env_set_gate(e, v, (uint64_t)(uintptr_t)x86_env_stubs + 16 * (uint64_t)v, 0, 0);

	pm_x86_get_sregs(e->cpu, &s);
	seg_kvm(&s.cs, X86_SEL_KCODE, 0xb, true, 0);
	seg_kvm(&s.ds, X86_SEL_KDATA, 0x3, false, 0);
	s.es = s.fs = s.gs = s.ss = s.ds;
	memset(&s.tr, 0, sizeof(s.tr));
	s.tr.selector = X86_SEL_TSS;
	s.tr.base = e->tss;
	s.tr.limit = 0x67;
	s.tr.type = 0xb;
	s.tr.present = 1;
	memset(&s.ldt, 0, sizeof(s.ldt));
	s.ldt.unusable = 1;
	s.gdt.base = e->gdt;
	s.gdt.limit = 7 * 8 - 1;
	s.idt.base = e->idt;
	s.idt.limit = 256 * 16 - 1;
	s.cr0 = PM_X86_CR0_PE | PM_X86_CR0_NE | PM_X86_CR0_PG;
	s.cr3 = e->pml4;
	s.cr4 = PM_X86_CR4_PAE | PM_X86_CR4_OSFXSR | PM_X86_CR4_OSXMMEXCPT;
	s.efer = PM_X86_EFER_LME | PM_X86_EFER_LMA | PM_X86_EFER_NXE | PM_X86_EFER_SCE;
	if (pm_x86_set_sregs(e->cpu, &s))
		abort();
	e->cpu->star = ((uint64_t)0x10 << 48) | ((uint64_t)X86_SEL_KCODE << 32);
	memset((void *)&x86_env_last_fault, 0, sizeof(x86_env_last_fault));
}

void x86_env_fini(struct x86_env *e)
{
	for (unsigned int k = 0; k < e->nregion; k++)
		if (e->region[k].owned)
			free(e->region[k].host);
	free(e->tables);
	pm_x86_cpu_free(e->cpu);
}

enum pm_x86_stop x86_env_run(struct x86_env *e, uint64_t rip, uint64_t budget)
{
	e->cpu->rip = rip;
	if (!e->cpu->gpr[PM_X86_RSP])
		e->cpu->gpr[PM_X86_RSP] = e->kstack_top - 32 * 4096 + 15 * 4096;
	return pm_x86_run(e->cpu, budget);
}

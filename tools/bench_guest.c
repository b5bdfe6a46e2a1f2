/* SPDX-License-Identifier: MIT */
/*
 * privmem bench guest: how fast privmem's vCPUs run real x86-64 machine
 * code (the x86 engine behind KVM_RUN), beside the same loops run natively
 * in the same run, and beside the engine alone (pm_x86_bench: no VM, no
 * memslots, no stage-2), so the VM's own overhead shows.
 *
 * The loops are assembly functions in this file (the SysV ABI, so the
 * native runs call them from C). For the VM they are copied into guest
 * memory of a software-protected VM (shared memory, the VMM's mapping)
 * with a trampoline `call *%r10; out %al, $0xe4`: every measurement is one
 * KVM_RUN from the trampoline to its OUT (the only exit), timed around the
 * ioctl. The guest runs in 64-bit mode on 2M pages identity-mapping its
 * RAM, set up here with KVM_SET_SREGS/REGS (no IDT: a fault would be a
 * triple fault, reported as an error).
 *
 *   register:   ADD/XOR/DEC/JNZ on registers, 4 instructions an iteration
 *   load/store: read-modify-write of a 16 KiB array (TLB-resident), 7
 *   memset:     SIZE bytes with REP STOSB (one instruction), and with a
 *               loop of 8-byte stores (4 instructions per 8 bytes)
 *
 * The loops' iteration counts are proportional to SIZE (10 M and 5 M at
 * the default 64 MiB), and so is the engine's run. Guest instruction
 * counts are the loops' own (computed from the
 * iteration counts, the call, the return and the OUT). Each memory loop
 * runs once unmeasured first, so the measured runs find the decoded code
 * and the stage-2 mappings in place, as the native runs find the pages.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench.h"
#include "vcpu/x86/x86.h"       /* pm_x86_bench: the engine alone */

/* Iterations at the default SIZE (64 MiB); they scale with SIZE, so that a
 * small SIZE makes a short run (the CLI's smoke test). */
#define REG_ITERS   (10 * 1000 * 1000ULL)
#define LDST_ITERS  (5 * 1000 * 1000ULL)
#define ENGINE_SCALE 0.3                /* pm_x86_bench: about 0.3 s a call */
#define DEFAULT_SIZE (64 * MIB)
#define DONE_PORT   0xe4

/* Guest layout (gpa = gva). */
#define G_PML4      0x1000ULL
#define G_PDPT      0x2000ULL
#define G_PD        0x3000ULL           /* one page per GiB, up to G_CODE */
#define G_CODE      0x20000ULL
#define G_STACK_TOP 0x100000ULL
#define G_DATA      0x200000ULL         /* the load/store array */
#define G_MEMSET    (16 * MIB)          /* the memset region, SIZE bytes */
#define G_MAX_GIB   ((G_CODE - G_PD) / PAGE_4K)

extern const char bg_reg[], bg_ldst[], bg_stosb[], bg_stores[], bg_trampoline[], bg_end[];

/* uint64_t reg(uint64_t iters); uint64_t ldst(uint64_t iters, uint64_t *buf);
 * void stosb(void *dst, uint64_t len); void stores(void *dst, uint64_t len). */
__asm__(".pushsection .text\n"
	".p2align 6\n"
	"bg_reg:\n"
	"  mov %rdi, %rcx\n"
	"  xor %eax, %eax\n"
	"1: add %rcx, %rax\n"
	"  xor $0x55, %rax\n"
	"  dec %rcx\n"
	"  jnz 1b\n"
	"  ret\n"
	".p2align 6\n"
	"bg_ldst:\n"
	"  xor %edx, %edx\n"
	"1: mov (%rsi,%rdx,8), %rax\n"
	"  add $1, %rax\n"
	"  mov %rax, (%rsi,%rdx,8)\n"
	"  add $1, %edx\n"
	"  and $2047, %edx\n"
	"  dec %rdi\n"
	"  jnz 1b\n"
	"  ret\n"
	".p2align 6\n"
	"bg_stosb:\n"
	"  mov %rsi, %rcx\n"
	"  mov $0x5a, %eax\n"
	"  rep stosb\n"
	"  ret\n"
	".p2align 6\n"
	"bg_stores:\n"
	"  shr $3, %rsi\n"
	"  movabs $0x5a5a5a5a5a5a5a5a, %rax\n"
	"1: mov %rax, (%rdi)\n"
	"  add $8, %rdi\n"
	"  dec %rsi\n"
	"  jnz 1b\n"
	"  ret\n"
	".p2align 6\n"
	"bg_trampoline:\n"
	"  call *%r10\n"
	"  out %al, $" "0xe4" "\n"
	"bg_end:\n"
	".popsection\n");

/* Guest instructions of one run (the call, the function, the OUT). */
static double reg_insns(uint64_t n) { return 5.0 + 4.0 * (double)n; }
static double ldst_insns(uint64_t n) { return 4.0 + 7.0 * (double)n; }
static double stores_insns(uint64_t len) { return 5.0 + 4.0 * (double)(len / 8); }

static uint64_t code_gpa(const char *fn)
{
	return G_CODE + (uint64_t)(fn - bg_reg);
}

static void seg64(struct kvm_segment *s, uint16_t sel, bool code)
{
	memset(s, 0, sizeof(*s));
	s->selector = sel;
	s->limit = 0xffffffff;
	s->type = code ? 0xb : 0x3;
	s->present = s->s = s->g = 1;
	s->l = code;
	s->db = !code;
}

/* Page tables, code and 64-bit mode for the VM's vCPU: 0 or -1 (r->error). */
static int guest_setup(struct result *r, struct vmm *m)
{
	uint64_t *pml4 = (uint64_t *)(m->shared + G_PML4), *pdpt = (uint64_t *)(m->shared + G_PDPT);
	uint64_t *pd = (uint64_t *)(m->shared + G_PD);
	uint64_t gib = (m->mem_size + GIB - 1) / GIB;
	struct kvm_sregs s;

	if (gib > G_MAX_GIB) {
		result_fail(r, "guest memory too large for the page tables");
		return -1;
	}
	pml4[0] = G_PDPT | 3;
	for (uint64_t k = 0; k < gib; k++)
		pdpt[k] = (G_PD + k * PAGE_4K) | 3;
	for (uint64_t k = 0; k < m->mem_size / PAGE_2M; k++)
		pd[k] = (k * PAGE_2M) | 0x83;              /* P, RW, PS */
	memcpy(m->shared + G_CODE, bg_reg, (size_t)(bg_end - bg_reg));
	if (pm_kvm_ioctl(m->vcpu[0], KVM_GET_SREGS, &s))
		goto fail;
	seg64(&s.cs, 8, true);
	seg64(&s.ds, 16, false);
	s.es = s.fs = s.gs = s.ss = s.ds;
	s.idt.base = 0;
	s.idt.limit = 0;
	s.cr0 = PM_X86_CR0_PE | PM_X86_CR0_NE | PM_X86_CR0_PG;
	s.cr3 = G_PML4;
	s.cr4 = PM_X86_CR4_PAE | PM_X86_CR4_OSFXSR;
	s.efer = PM_X86_EFER_LME | PM_X86_EFER_LMA | PM_X86_EFER_NXE;
	if (pm_kvm_ioctl(m->vcpu[0], KVM_SET_SREGS, &s))
		goto fail;
	return 0;
fail:
	result_fail(r, "setting up the vCPU: %s", strerror(errno));
	return -1;
}

/* One KVM_RUN of fn(rdi, rsi) from the trampoline to its OUT: the seconds
 * it took, or -1 (r->error). */
static double guest_call(struct result *r, struct vmm *m, const char *fn, uint64_t rdi,
			 uint64_t rsi)
{
	struct kvm_regs regs = { .rip = code_gpa(bg_trampoline), .rsp = G_STACK_TOP, .rflags = 2,
				 .rdi = rdi, .rsi = rsi, .r10 = code_gpa(fn) };
	struct kvm_run *run = m->run[0];
	uint64_t t0;
	int ret, slot;

	if (pm_kvm_ioctl(m->vcpu[0], KVM_SET_REGS, &regs)) {
		result_fail(r, "KVM_SET_REGS: %s", strerror(errno));
		return -1;
	}
	slot = vmm_watch_enter(m);
	t0 = now_ns();
	ret = pm_kvm_ioctl(m->vcpu[0], KVM_RUN, 0);
	t0 = now_ns() - t0;
	vmm_watch_leave(m, slot);
	if (ret || run->exit_reason != KVM_EXIT_IO || run->io.port != DONE_PORT) {
		result_fail(r, "the guest loop did not reach its OUT: KVM_RUN %d (%s), exit %u%s", ret,
			    ret ? strerror(errno) : "ok", run->exit_reason,
			    vmm_gave_up(m) ? ", no progress: gave up" : "");
		return -1;
	}
	return (double)t0 / 1e9;
}

/* reps measurements of fn in the VM after one unmeasured run. */
static void guest_series(struct result *r, struct vmm *m, struct figure *f, const char *fn,
			 uint64_t rdi, uint64_t rsi)
{
	struct samples s = { .n = 0 };

	if (guest_call(r, m, fn, rdi, rsi) < 0)
		return;
	for (unsigned int rep = 0; rep < r->reps; rep++) {
		double t = guest_call(r, m, fn, rdi, rsi);

		if (t < 0)
			return;
		samples_add(&s, t);
	}
	figure_set(f, &s);
}

struct native_figs {
	struct figure *reg, *ldst, *stosb, *stores;
};

static void native_series(struct result *r, const struct native_figs *nf, uint64_t reg_iters,
			  uint64_t ldst_iters, uint8_t *buf, uint64_t *arr)
{
	uint64_t (*reg)(uint64_t) = (uint64_t (*)(uint64_t))(uintptr_t)bg_reg;
	uint64_t (*ldst)(uint64_t, uint64_t *) = (uint64_t (*)(uint64_t, uint64_t *))(uintptr_t)bg_ldst;
	void (*stosb)(void *, uint64_t) = (void (*)(void *, uint64_t))(uintptr_t)bg_stosb;
	void (*stores)(void *, uint64_t) = (void (*)(void *, uint64_t))(uintptr_t)bg_stores;
	struct samples s[4] = { { .n = 0 } };

	for (unsigned int rep = 0; rep < r->reps + 1; rep++) {
		uint64_t t0 = now_ns();

		sink = reg(reg_iters);
		if (rep)
			samples_add(&s[0], secs_since(t0));
		t0 = now_ns();
		sink = ldst(ldst_iters, arr);
		if (rep)
			samples_add(&s[1], secs_since(t0));
		t0 = now_ns();
		stosb(buf, r->size);
		clobber(buf);
		if (rep)
			samples_add(&s[2], secs_since(t0));
		t0 = now_ns();
		stores(buf, r->size);
		clobber(buf);
		if (rep)
			samples_add(&s[3], secs_since(t0));
	}
	figure_set(nf->reg, &s[0]);
	figure_set(nf->ldst, &s[1]);
	figure_set(nf->stosb, &s[2]);
	figure_set(nf->stores, &s[3]);
}

/* The engine alone: pm_x86_bench's rates, as figures of 1e6 instructions
 * (1 MiB for memset) at the rate measured. */
static void engine_series(struct result *r, double engine_scale, struct figure *reg,
			  struct figure *ldst, struct figure *stosb)
{
	struct samples s[3] = { { .n = 0 } };

	for (unsigned int rep = 0; rep < r->reps; rep++) {
		struct pm_x86_bench_result b[3];
		int ret = pm_x86_bench(b, engine_scale);

		if (ret) {
			result_fail(r, "pm_x86_bench: %s", strerror(-ret));
			return;
		}
		samples_add(&s[0], 1e6 / b[0].guest_ips);
		samples_add(&s[1], 1e6 / b[1].guest_ips);
		samples_add(&s[2], (double)MIB / b[2].guest_bytes_per_s);
	}
	figure_set(reg, &s[0]);
	figure_set(ldst, &s[1]);
	figure_set(stosb, &s[2]);
}

void bench_guest(const struct bench_opts *o, struct result *r)
{
	uint64_t size = r->size, mem = G_MEMSET + size;
	struct figure *vreg, *vldst, *vstosb, *vstores, *ereg, *eldst, *estosb;
	struct native_figs nf;
	struct pm_vm_stats st0, st1;
	uint8_t *buf = buffer_new(size);
	uint64_t *arr = calloc(2048, sizeof(uint64_t));
	struct vmm m;
	bool vm = false;
	double scale = (double)size / (double)DEFAULT_SIZE;
	uint64_t reg_iters = (uint64_t)((double)REG_ITERS * scale) + 1;
	uint64_t ldst_iters = (uint64_t)((double)LDST_ITERS * scale) + 1;
	snprintf(r->title, sizeof(r->title),
		 "guest machine code in a VM (x86 engine behind KVM_RUN), natively, and in the engine alone");
	vreg = figure_add(r, "vm_register", "VM: register loop", "insn", reg_insns(reg_iters), 0);
	nf.reg = figure_add(r, "native_register", "native: register loop", "insn",
			    reg_insns(reg_iters), 0);
	ereg = figure_add(r, "engine_register", "engine alone: register loop", "insn", 1e6, 0);
	vldst = figure_add(r, "vm_load_store", "VM: load/store, 16 KiB", "insn", ldst_insns(ldst_iters), 0);
	nf.ldst = figure_add(r, "native_load_store", "native: load/store, 16 KiB", "insn",
			     ldst_insns(ldst_iters), 0);
	eldst = figure_add(r, "engine_load_store", "engine alone: load/store, 16 KiB", "insn", 1e6, 0);
	vstosb = figure_add(r, "vm_memset_rep_stosb", "VM: memset, REP STOSB", "byte", (double)size,
			    (double)size);
	nf.stosb = figure_add(r, "native_memset_rep_stosb", "native: memset, REP STOSB", "byte",
			      (double)size, (double)size);
	estosb = figure_add(r, "engine_memset_rep_stosb", "engine alone: REP STOSB of 64 MiB", "byte",
			    (double)MIB, (double)MIB);
	vstores = figure_add(r, "vm_memset_store_loop", "VM: memset, 8-byte store loop", "insn",
			     stores_insns(size), (double)size);
	nf.stores = figure_add(r, "native_memset_store_loop", "native: memset, 8-byte store loop",
			       "insn", stores_insns(size), (double)size);
	for (struct figure *f = vstosb; f <= nf.stores; f++)
		f->gb = true;
	if (!buf || !arr) {
		result_fail(r, "out of memory for the native buffers");
		goto out;
	}
	if (bench_vm_create(r, &m, KVM_X86_SW_PROTECTED_VM, mem, 0))
		goto out;
	vm = true;
	if (guest_setup(r, &m))
		goto out;
	vmm_vm_stats(&m, &st0);
	guest_series(r, &m, vreg, bg_reg, reg_iters, 0);
	guest_series(r, &m, vldst, bg_ldst, ldst_iters, G_DATA);
	guest_series(r, &m, vstosb, bg_stosb, G_MEMSET, size);
	guest_series(r, &m, vstores, bg_stores, G_MEMSET, size);
	vmm_vm_stats(&m, &st1);
	if (r->failed)
		goto out;
	if (m.shared[G_MEMSET + size - 1] != 0x5a)
		result_fail(r, "the guest's memset did not reach the end of its region");
	native_series(r, &nf, reg_iters, ldst_iters, buf, arr);
	engine_series(r, ENGINE_SCALE * scale, ereg, eldst, estosb);
	if (r->failed)
		goto out;
	ratio_add(r, "register_vm_vs_native", "register: VM vs native (slowdown)", vreg, nf.reg, false);
	ratio_add(r, "load_store_vm_vs_native", "load/store: VM vs native (slowdown)", vldst, nf.ldst,
		  false);
	ratio_add(r, "stosb_vm_vs_native", "memset REP STOSB: VM vs native (slowdown)", vstosb,
		  nf.stosb, false);
	ratio_add(r, "store_loop_vm_vs_native", "memset store loop: VM vs native (slowdown)", vstores,
		  nf.stores, false);
	ratio_add(r, "register_vm_vs_engine", "register: VM vs engine alone (VM overhead)", vreg, ereg,
		  false);
	ratio_add(r, "load_store_vm_vs_engine", "load/store: VM vs engine alone (VM overhead)", vldst,
		  eldst, false);
	ratio_add(r, "stosb_vm_vs_engine", "REP STOSB: VM vs engine alone (VM overhead)", vstosb, estosb,
		  false);
	target_add(r, "register_mips", "VM register loop: M guest instructions/s >= 50",
		   vreg->ops / vreg->best / 1e6, 50, true, NULL);
	target_add(r, "load_store_mips", "VM load/store loop: M guest instructions/s >= 20",
		   vldst->ops / vldst->best / 1e6, 20, true, NULL);
	info_add(r, "vm_register_mips_median", "VM register loop, median (M instructions/s)",
		 vreg->ops / vreg->median / 1e6, "");
	info_add(r, "vm_load_store_mips_median", "VM load/store loop, median (M instructions/s)",
		 vldst->ops / vldst->median / 1e6, "");
	info_add(r, "exits_per_run", "VM exits per measured KVM_RUN (the final OUT)",
		 (double)(st1.exits[PM_STAT_EXITS_IO] + st1.exits[PM_STAT_EXITS_INTR] -
			  st0.exits[PM_STAT_EXITS_IO] - st0.exits[PM_STAT_EXITS_INTR]) /
			 (4.0 * (r->reps + 1)), "");
	note(r, "the VM is software-protected with its RAM shared (the VMM's memory); each memory "
		"loop runs once unmeasured first (decoded code and stage-2 mappings in place)");
	note(r, "engine alone: pm_x86_bench(), the same register and load/store loops and REP STOSB "
		"of 64 MiB on a flat guest with no VM around the engine");
out:
	if (vm)
		vmm_destroy(&m);
	free(arr);
	buffer_free(buf, size);
	(void)o;
}

/* SPDX-License-Identifier: MIT */
/*
 * The run loop: look up the block at RIP, run its instructions, deliver
 * exceptions, poll the embedder, stop when asked.
 *
 * Faults unwind here with longjmp (internal.h explains why that leaves a
 * consistent state). The jump buffer lives in pm_x86_run's frame and is
 * published in cpu->fault_jmp only while the loop runs; a hook that
 * yields the coroutine keeps the frame alive. Locals changed after setjmp
 * are not relied on after a jump: the loop keeps its state in the cpu.
 */
#include "vcpu/x86/internal.h"

struct pm_x86_cpu *pm_x86_cpu_create(const struct pm_x86_ops *ops, void *env)
{
	struct pm_x86_cpu *c;
	unsigned int n;

	PM_BUG_ON(!ops || !ops->page);
	x86_decoder_init();
	c = calloc(1, sizeof(*c));
	if (!c)
		goto err;
	c->code = x86_code_create();
	if (!c->code)
		goto err_cpu;
	c->ops = ops;
	c->env = env;
	c->delivering = -1;
	c->pending_vector = -1;
	x86_tlb_flush(c);
	if (pm_x86_supported_cpuid(c->cpuid, PM_X86_MAX_CPUID, &n) == 0)
		c->nr_cpuid = n;
	x86_reset(c);
	return c;

err_cpu:
	free(c);
err:
	errno = ENOMEM;
	return NULL;
}

void pm_x86_cpu_free(struct pm_x86_cpu *c)
{
	if (!c)
		return;
	x86_code_free(c->code);
	free(c);
}

_Noreturn void x86_unwind(struct pm_x86_cpu *c)
{
	PM_BUG_ON(!c->fault_jmp);
	longjmp(*c->fault_jmp, 1);
}

void pm_x86_request_stop(struct pm_x86_cpu *c)
{
	c->stop_requested = true;
	c->end_block = true;
}

void pm_x86_flush(struct pm_x86_cpu *c, unsigned int what)
{
	if (what & PM_X86_FLUSH_TLB)
		x86_tlb_flush(c);
	if (what & PM_X86_FLUSH_CODE)
		x86_code_flush(c, what);
	c->end_block = true;
}

void pm_x86_queue_exception(struct pm_x86_cpu *c, int vector, bool has_error, uint32_t error)
{
	c->pending_vector = vector;
	c->pending_has_error = has_error;
	c->pending_error = error;
	c->pending_trap = false;
	c->pending_soft = false;
	c->end_block = true;
}

bool pm_x86_abandon(struct pm_x86_cpu *c)
{
	if (c->delivering >= 0)
		return false;
	c->end_block = true;
	x86_unwind(c);
}

_Noreturn void x86_raise(struct pm_x86_cpu *c, int vector, bool has_error, uint32_t error)
{
	c->pending_vector = vector;
	c->pending_has_error = has_error;
	c->pending_error = error;
	c->pending_trap = false;
	c->pending_soft = false;
	x86_unwind(c);
}

_Noreturn void x86_ud(struct pm_x86_cpu *c)
{
	x86_raise(c, PM_X86_EXC_UD, false, 0);
}

_Noreturn void x86_gp(struct pm_x86_cpu *c, uint32_t error)
{
	x86_raise(c, PM_X86_EXC_GP, true, error);
}

_Noreturn void x86_shutdown(struct pm_x86_cpu *c, enum pm_x86_shutdown why)
{
	c->shut_down = true;
	c->pending_vector = -1;
	c->delivering = -1;
	if (c->ops->shutdown)
		c->ops->shutdown(c->env, why);
	x86_unwind(c);
}

/* Only 64-bit long mode with paging runs; anything else is what KVM
 * reports as an emulation failure on a CPU without unrestricted guest. */
static bool mode_supported(const struct pm_x86_cpu *c)
{
	return (c->cr0 & PM_X86_CR0_PG) && (c->cr0 & PM_X86_CR0_PE) &&
	       (c->efer & PM_X86_EFER_LMA) && c->seg[PM_X86_CS].l;
}

static void run_block(struct pm_x86_cpu *c, const struct x86_block *b)
{
	const struct x86_insn *i = b->insn, *end = i + b->ninsn;

	c->end_block = false;
	for (; i < end; i++) {
		c->next_rip = c->rip + i->len;
		i->fn(c, i);
		c->rip = c->next_rip;
		c->icount++;
		if (pm_unlikely(c->end_block))
			break;
	}
}

enum pm_x86_stop pm_x86_run(struct pm_x86_cpu *c, uint64_t budget)
{
	jmp_buf jb;
	jmp_buf *outer = c->fault_jmp;
	uint64_t end = budget > UINT64_MAX - c->icount ? UINT64_MAX : c->icount + budget;
	enum pm_x86_stop why;

	if (c->shut_down)
		return PM_X86_STOP_SHUTDOWN;
	c->halted = false;
	c->stop_requested = false;
	c->fault_jmp = &jb;
	if (setjmp(jb)) {
		/* A fault, an abandoned instruction, or a shutdown. */
		c->end_block = false;
	}
	for (;;) {
		if (c->shut_down) {
			why = PM_X86_STOP_SHUTDOWN;
			break;
		}
		if (c->pending_vector >= 0)
			x86_deliver_pending(c);
		if (c->stop_requested) {
			why = PM_X86_STOP_REQUEST;
			break;
		}
		if (c->halted) {
			why = PM_X86_STOP_HLT;
			break;
		}
		if (c->icount >= end) {
			why = PM_X86_STOP_BUDGET;
			break;
		}
		if (c->icount >= c->next_poll) {
			c->next_poll = c->icount + PM_X86_POLL_INTERVAL;
			if (c->ops->poll) {
				c->ops->poll(c->env);
				continue;
			}
		}
		if (!mode_supported(c)) {
			x86_shutdown(c, PM_X86_SHUTDOWN_INTERNAL_ERROR);
			continue;
		}
		/* STI and MOV SS end their block: their shadow ends with the
		 * next instruction (nothing injects interrupts; the flag is
		 * state for KVM's vCPU events). */
		c->interrupt_shadow = false;
		run_block(c, x86_code_lookup(c));
	}
	c->fault_jmp = outer;
	return why;
}

/* SPDX-License-Identifier: MIT */
/*
 * The x86 guest: a vCPU running the guest's own machine code with the
 * instruction engine (src/vcpu/x86/), behind the same KVM_RUN, TLB, fault
 * path and exits as the C guests of guest.c.
 *
 * A vCPU whose VMM set no C guest (PM_KVM_SET_GUEST) runs, at its first
 * KVM_RUN, a coroutine whose body is the engine's run loop; the engine's
 * hooks below are its only way to the rest of privmem:
 *  - guest memory goes through pm_vcpu_guest_access_page, page by page:
 *    the vCPU TLB, the stage-2 walk, the fault path (taking memory-fault
 *    exits and retrying, so the faulting instruction completes once the
 *    VMM has converted, or is dropped if the VMM moved RIP meanwhile, as
 *    KVM re-executes from the RIP it finds) and the model's access check.
 *    The gpa carries the physical-address bits of the guest's page
 *    tables, so SNP's C-bit and TDX's shared bit reach the model's
 *    gpa_decode as they are;
 *  - no memory there: KVM_EXIT_MMIO (pm_vcpu_guest_mmio);
 *  - in/out: KVM_EXIT_IO, the data in the page after kvm_run
 *    (PM_VCPU_PIO_OFFSET); an IN's data is read back when the VMM runs the
 *    vCPU again. The engine keeps RIP at the instruction meanwhile, as KVM
 *    does, and drops the instruction if the VMM moved RIP;
 *  - VMCALL / VMMCALL: KVM's hypercall ABI (nr in RAX, arguments in RBX,
 *    RCX, RDX, RSI, the result in RAX): KVM_HC_MAP_GPA_RANGE becomes
 *    KVM_EXIT_HYPERCALL when the VMM enabled it, anything else -KVM_ENOSYS;
 *  - HLT: KVM_EXIT_HLT, or, with an in-kernel irqchip (KVM_CREATE_IRQCHIP),
 *    a wait in KVM_RUN for an interrupt that never comes: a signal ends it;
 *  - a triple fault is KVM_EXIT_SHUTDOWN and the engine's internal errors
 *    (code or page tables outside memory, a mode it does not run) are
 *    KVM_EXIT_INTERNAL_ERROR (emulation); either ends the guest, and later
 *    KVM_RUNs report the same exit;
 *  - the poll hook, every few thousand instructions, acknowledges TLB
 *    shootdowns (the engine's cached host addresses are dropped with the
 *    vCPU TLB: run.c's flush) and takes a kick (a pending signal:
 *    KVM_EXIT_INTR), so a guest that spins never holds up a conversion or
 *    its VMM for long;
 *  - the models' instructions (PVALIDATE, TDCALL, VMGEXIT) are #UD: no
 *    model implements them for machine code yet.
 * Everything runs on the vCPU's coroutine under run_lock, as C guests do.
 */
#include <signal.h>
#include <time.h>
#include <privmem/kvm.h>
#include "kvm/vm.h"
#include "vcpu/coro.h"
#include "vcpu/vcpu.h"
#include "vcpu/x86/x86.h"

#define X86_SIGNAL_POLLS 4        /* check for a kick every 4th poll */

static inline struct pm_vcpu *env_vcpu(void *env)
{
	return env;
}

/* ---- memory ---- */

static uint8_t *x86_page(void *env, uint64_t gpa, bool write)
{
	struct pm_vcpu *v = env_vcpu(env);

	v->x86_access_rip = v->x86->rip;
	return pm_vcpu_guest_access_page(v, PM_ALIGN_DOWN(gpa, PM_PAGE_SIZE), 0, write);
}

/* The access took an exit (guest.c); KVM would run the guest again from
 * whatever RIP the VMM left, so a moved RIP drops the instruction (its
 * faulting access comes before any change of state). */
void pm_x86_guest_resumed_in_access(struct pm_vcpu *v)
{
	if (v->x86->rip != v->x86_access_rip)
		pm_x86_abandon(v->x86);
}

static uint64_t x86_mmio_read(void *env, uint64_t gpa, unsigned int len)
{
	struct pm_vcpu *v = env_vcpu(env);
	uint64_t val = 0;

	v->x86_in_exit = true;
	pm_vcpu_guest_mmio(v, gpa, (uint8_t *)&val, len, false);
	v->x86_in_exit = false;
	return val;
}

static void x86_mmio_write(void *env, uint64_t gpa, unsigned int len, uint64_t val)
{
	struct pm_vcpu *v = env_vcpu(env);

	v->x86_in_exit = true;
	pm_vcpu_guest_mmio(v, gpa, (uint8_t *)&val, len, true);
	v->x86_in_exit = false;
}

/* ---- port I/O ---- */

static uint8_t *pio_data(struct pm_vcpu *v)
{
	return (uint8_t *)v->run + PM_VCPU_PIO_OFFSET;
}

/* One KVM_EXIT_IO of n items (n * size fits the data page). */
static void pio_exit(struct pm_vcpu *v, uint16_t port, unsigned int size, unsigned int n, bool in)
{
	struct kvm_run *run = v->run;

	run->exit_reason = KVM_EXIT_IO;
	run->io.direction = in ? KVM_EXIT_IO_IN : KVM_EXIT_IO_OUT;
	run->io.size = (uint8_t)size;
	run->io.port = port;
	run->io.count = n;
	run->io.data_offset = PM_VCPU_PIO_OFFSET;
	v->x86_in_exit = true;
	pm_vcpu_guest_exit(v, 0, PM_STAT_EXITS_IO);
	v->x86_in_exit = false;
}

static void x86_pio_in(void *env, uint16_t port, unsigned int size, unsigned int count, void *data)
{
	struct pm_vcpu *v = env_vcpu(env);
	unsigned int per_exit = (PM_PAGE_SIZE - PM_VCPU_PIO_OFFSET % PM_PAGE_SIZE) / size;

	for (unsigned int done = 0; done < count;) {
		unsigned int n = PM_MIN(count - done, per_exit);

		memset(pio_data(v), 0, (size_t)n * size);
		pio_exit(v, port, size, n, true);
		memcpy((uint8_t *)data + (size_t)done * size, pio_data(v), (size_t)n * size);
		done += n;
	}
}

static void x86_pio_out(void *env, uint16_t port, unsigned int size, unsigned int count,
			const void *data)
{
	struct pm_vcpu *v = env_vcpu(env);
	unsigned int per_exit = (PM_PAGE_SIZE - PM_VCPU_PIO_OFFSET % PM_PAGE_SIZE) / size;

	for (unsigned int done = 0; done < count;) {
		unsigned int n = PM_MIN(count - done, per_exit);

		memcpy(pio_data(v), (const uint8_t *)data + (size_t)done * size, (size_t)n * size);
		pio_exit(v, port, size, n, false);
		done += n;
	}
}

/* ---- hypercalls, HLT, shutdown ---- */

static void x86_hypercall(void *env, struct pm_x86_cpu *cpu)
{
	struct pm_vcpu *v = env_vcpu(env);
	uint64_t nr = cpu->gpr[PM_X86_RAX];
	long ret = -KVM_ENOSYS;

	if (nr == KVM_HC_MAP_GPA_RANGE) {
		v->x86_in_exit = true;
		ret = pm_vcpu_map_gpa_range_exit(v, cpu->gpr[PM_X86_RBX], cpu->gpr[PM_X86_RCX],
						 cpu->gpr[PM_X86_RDX]);
		v->x86_in_exit = false;
	}
	cpu->gpr[PM_X86_RAX] = (uint64_t)ret;
}

static void x86_hlt(void *env)
{
	struct pm_vcpu *v = env_vcpu(env);
	const struct timespec ms = { .tv_nsec = 1000000 };

	if (!atomic_load(&v->vm->irqchip)) {
		v->run->exit_reason = KVM_EXIT_HLT;
		pm_vcpu_guest_exit(v, 0, PM_STAT_EXITS_HLT);
		return;
	}
	/* Halted in KVM_RUN until an interrupt, which nothing raises: only
	 * the VMM's kick ends the wait (and the next KVM_RUN waits again).
	 * Shootdowns are acknowledged meanwhile. */
	for (;;) {
		pm_vcpu_tlb_check(v);
		if (pm_vcpu_signal_pending())
			pm_vcpu_guest_intr_exit(v);
		else
			nanosleep(&ms, NULL);
	}
}

static void x86_shutdown(void *env, enum pm_x86_shutdown why)
{
	struct pm_vcpu *v = env_vcpu(env);

	v->dead_exit = why == PM_X86_SHUTDOWN_TRIPLE_FAULT ? KVM_EXIT_SHUTDOWN : KVM_EXIT_INTERNAL_ERROR;
}

static enum pm_x86_insn_result x86_model_insn(void *env, struct pm_x86_cpu *cpu,
					      enum pm_x86_model_insn which)
{
	return PM_X86_INSN_UD;
}

/* ---- the poll: shootdowns and kicks ---- */

static void x86_poll(void *env)
{
	struct pm_vcpu *v = env_vcpu(env);

	pm_vcpu_tlb_check(v);
	if (++v->x86_polls % X86_SIGNAL_POLLS == 0 && pm_vcpu_signal_pending())
		pm_vcpu_guest_intr_exit(v);
}

const struct pm_x86_ops pm_vcpu_x86_ops = {
	.page = x86_page,
	.mmio_read = x86_mmio_read,
	.mmio_write = x86_mmio_write,
	.pio_in = x86_pio_in,
	.pio_out = x86_pio_out,
	.hypercall = x86_hypercall,
	.hlt = x86_hlt,
	.shutdown = x86_shutdown,
	.model_insn = x86_model_insn,
	.poll = x86_poll,
};

/* ---- completing an exit without running on ---- */

int pm_x86_guest_complete(struct pm_vcpu *v)
{
	uint32_t reason = v->run->exit_reason;
	bool alive;

	v->x86_completing = true;
	pm_x86_request_stop(v->x86);
	v->exit_ret = 0;
	pm_vcpu_enter_guest_mode(v);
	alive = pm_coro_resume(v->coro);
	pm_vcpu_exit_guest_mode(v);
	PM_BUG_ON(!alive);              /* the engine's coroutine never returns */
	if (v->x86_completing) {
		/* The instruction took another exit (a fragment of MMIO, the
		 * next batch of string I/O, a memory fault): that is
		 * KVM_RUN's answer, as KVM's completion returns it. The stop
		 * request stays and is ignored at the next boundary. */
		v->x86_completing = false;
		return v->exit_ret;
	}
	v->run->exit_reason = reason;
	return 1;
}

/* The coroutine's body: the engine runs until the guest dies; a stop it
 * was asked for by pm_x86_guest_complete hands control back to KVM_RUN. */
void pm_x86_guest_main(void *arg)
{
	struct pm_vcpu *v = arg;
	enum pm_x86_stop why;

	while ((why = pm_x86_run(v->x86, UINT64_MAX)) != PM_X86_STOP_SHUTDOWN) {
		if (why == PM_X86_STOP_REQUEST && v->x86_completing) {
			v->x86_completing = false;
			pm_coro_yield(v->coro);
		}
	}
	if (!v->dead_exit)
		v->dead_exit = KVM_EXIT_INTERNAL_ERROR;
	v->finished = true;
	v->run->exit_reason = v->dead_exit;
	if (v->dead_exit == KVM_EXIT_INTERNAL_ERROR) {
		memset(&v->run->internal, 0, sizeof(v->run->internal));
		v->run->internal.suberror = KVM_INTERNAL_ERROR_EMULATION;
	}
	pm_vcpu_guest_exit(v, 0, PM_STAT_EXITS_SHUTDOWN);
	for (;;)
		pm_coro_yield(v->coro);
}

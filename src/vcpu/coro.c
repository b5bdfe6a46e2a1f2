/* SPDX-License-Identifier: MIT */
/*
 * Coroutines for guest code, with a hand-written x86-64 context switch.
 *
 * A context is just a stack pointer: pm__coro_switch() pushes the SysV
 * callee-saved state (rbp, rbx, r12-r15, MXCSR and the x87 control word) on
 * the current stack, stores rsp, loads the other context's rsp and pops the
 * same state from there. Everything else is caller-saved, so the compiler
 * already spilled it around the call. No signal mask is touched (unlike
 * swapcontext), which keeps a KVM_RUN exit to a couple of dozen instructions.
 *
 * A new coroutine's stack is pre-loaded with a frame that the first switch
 * "returns" into: pm__coro_start, which calls coro_main(c), which runs
 * fn(arg), marks the coroutine finished and switches away for good.
 *
 * Cancelling (destroying a suspended coroutine) longjmps from its pending
 * yield straight to coro_main: nothing in the skipped guest frames runs, so
 * guest code must not hold resources of its own across a yield.
 *
 * Ownership: the caller owns the struct pm_coro, which owns its stack
 * mapping (and, under TSan, its fiber). The struct's fields are written by whoever currently holds the CPU for the
 * coroutine: the resuming host before the switch in, the coroutine itself
 * until it switches out. The caller serialises resumes (the vCPU run lock),
 * and each switch orders these accesses, so no field needs a lock.
 *
 * The coroutine may be resumed by a different thread each time. Code here
 * never keeps a thread-local address across a switch on the coroutine side:
 * pm_coro_current()'s variable is written only by pm_coro_resume(), which
 * stays on the host thread throughout. (Guest code must not keep TLS
 * addresses, or the result of pthread_self(), which glibc declares const,
 * across a yield either: the compiler may reuse them on the new thread.)
 *
 * Sanitizers: both ASan and TSan must be told about every stack switch.
 * ASan learns the target stack bounds before the switch and reports the
 * stack we came from after it; the coroutine records the resumer's bounds on
 * every arrival, since the resumer may be a different thread each time.
 * TSan gets one fiber per coroutine; the resumer's fiber is looked up anew
 * on every resume for the same reason.
 */
#include "vcpu/coro.h"
#include "lib/common.h"

#include <setjmp.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#if !defined(__x86_64__) || !defined(__linux__)
#error "src/vcpu/coro.c: the context switch is written for x86-64 Linux only"
#endif

#if defined(PM_ASAN) && PM_ASAN
#define PM_CORO_ASAN 1
#elif defined(__SANITIZE_ADDRESS__)
#define PM_CORO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PM_CORO_ASAN 1
#endif
#endif
#ifndef PM_CORO_ASAN
#define PM_CORO_ASAN 0
#endif

#if defined(PM_TSAN) && PM_TSAN
#define PM_CORO_TSAN 1
#elif defined(__SANITIZE_THREAD__)
#define PM_CORO_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PM_CORO_TSAN 1
#endif
#endif
#ifndef PM_CORO_TSAN
#define PM_CORO_TSAN 0
#endif

#if PM_CORO_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if PM_CORO_TSAN
#include <sanitizer/tsan_interface.h>
#endif

enum pm_coro_state {
	PM_CORO_NEW,       /* created; fn not entered yet */
	PM_CORO_RUNNING,   /* between a resume and the matching yield/finish */
	PM_CORO_SUSPENDED, /* yielded; sp holds its context */
	PM_CORO_FINISHED,  /* fn returned or was cancelled; never runs again */
};

struct pm_coro {
	void *sp;                 /* the coroutine's context while it is not running */
	void *host_sp;            /* the resumer's context while the coroutine runs */
	enum pm_coro_state state;
	bool cancel;              /* set by destroy: the next return from yield unwinds */
	pm_coro_fn fn;
	void *arg;
	void *map;                /* guard page + stack, as mmap'ed */
	size_t map_size;
	void *stack_lo;           /* lowest usable stack byte (just above the guard) */
	size_t stack_size;        /* usable bytes from stack_lo up */
	jmp_buf unwind;           /* set in coro_main: where a cancelled yield lands */
#if PM_CORO_ASAN
	void *host_fake_stack;    /* resumer's fake stack, saved while c runs */
	void *coro_fake_stack;    /* c's fake stack, saved while c is suspended */
	const void *host_stack_lo; /* resumer's stack, as reported on arrival */
	size_t host_stack_size;
#endif
#if PM_CORO_TSAN
	void *fiber;              /* c's TSan fiber */
	void *host_fiber;         /* resumer's fiber, looked up on each resume */
#endif
};

/* The coroutine running on this thread; written only on the host side. */
static __thread struct pm_coro *tls_current;

/* ---- the context switch ---- */

/* Saves the current context at *save_sp and continues the one at load_sp. */
void pm__coro_switch(void **save_sp, void *load_sp);
/* First return target of a new context: calls r13(r12) and never returns. */
void pm__coro_start(void);

/*
 * Context frame, from the saved rsp up: MXCSR (4 bytes) and x87 CW (2 bytes)
 * in one slot, then r15, r14, r13, r12, rbx, rbp and the return address.
 * The CFI says where each register is, so debuggers unwind through a switch.
 */
__asm__(
	".pushsection .text\n"
	".globl pm__coro_switch\n"
	".hidden pm__coro_switch\n"
	".type pm__coro_switch, @function\n"
	".p2align 4\n"
	"pm__coro_switch:\n"
	"	.cfi_startproc\n"
	"	pushq %rbp\n"
	"	.cfi_adjust_cfa_offset 8\n"
	"	.cfi_rel_offset %rbp, 0\n"
	"	pushq %rbx\n"
	"	.cfi_adjust_cfa_offset 8\n"
	"	.cfi_rel_offset %rbx, 0\n"
	"	pushq %r12\n"
	"	.cfi_adjust_cfa_offset 8\n"
	"	.cfi_rel_offset %r12, 0\n"
	"	pushq %r13\n"
	"	.cfi_adjust_cfa_offset 8\n"
	"	.cfi_rel_offset %r13, 0\n"
	"	pushq %r14\n"
	"	.cfi_adjust_cfa_offset 8\n"
	"	.cfi_rel_offset %r14, 0\n"
	"	pushq %r15\n"
	"	.cfi_adjust_cfa_offset 8\n"
	"	.cfi_rel_offset %r15, 0\n"
	"	subq $8, %rsp\n"
	"	.cfi_adjust_cfa_offset 8\n"
	"	stmxcsr (%rsp)\n"
	"	fnstcw 4(%rsp)\n"
	"	movq %rsp, (%rdi)\n"
	/* Same frame layout on the other stack: the CFI stays valid. */
	"	movq %rsi, %rsp\n"
	"	ldmxcsr (%rsp)\n"
	"	fldcw 4(%rsp)\n"
	"	addq $8, %rsp\n"
	"	.cfi_adjust_cfa_offset -8\n"
	"	popq %r15\n"
	"	.cfi_adjust_cfa_offset -8\n"
	"	.cfi_restore %r15\n"
	"	popq %r14\n"
	"	.cfi_adjust_cfa_offset -8\n"
	"	.cfi_restore %r14\n"
	"	popq %r13\n"
	"	.cfi_adjust_cfa_offset -8\n"
	"	.cfi_restore %r13\n"
	"	popq %r12\n"
	"	.cfi_adjust_cfa_offset -8\n"
	"	.cfi_restore %r12\n"
	"	popq %rbx\n"
	"	.cfi_adjust_cfa_offset -8\n"
	"	.cfi_restore %rbx\n"
	"	popq %rbp\n"
	"	.cfi_adjust_cfa_offset -8\n"
	"	.cfi_restore %rbp\n"
	"	ret\n"
	"	.cfi_endproc\n"
	".size pm__coro_switch, .-pm__coro_switch\n"
	"\n"
	".globl pm__coro_start\n"
	".hidden pm__coro_start\n"
	".type pm__coro_start, @function\n"
	".p2align 4\n"
	"pm__coro_start:\n"
	"	.cfi_startproc\n"
	/* The outermost frame of the coroutine: unwinders stop here. */
	"	.cfi_undefined %rip\n"
	"	movq %r12, %rdi\n"
	"	callq *%r13\n"
	"	ud2\n"
	"	.cfi_endproc\n"
	".size pm__coro_start, .-pm__coro_start\n"
	".popsection\n");

/* Slots of the frame pm__coro_switch pops, in 8-byte words from the saved rsp. */
enum coro_frame_slot {
	FRAME_FPCTL, FRAME_R15, FRAME_R14, FRAME_R13, FRAME_R12, FRAME_RBX,
	FRAME_RBP, FRAME_RET,
	FRAME_PAD0, FRAME_PAD1, /* pm__coro_start then has rsp % 16 == 0 */
	FRAME_WORDS
};
_Static_assert(FRAME_WORDS * 8 % 16 == 0, "the saved rsp is 16-byte aligned");

#define MXCSR_DEFAULT 0x1f80u /* all SSE exceptions masked, round to nearest */
#define X87_CW_DEFAULT 0x037fu /* all x87 exceptions masked, 64-bit precision */

/* ---- sanitizer annotations (empty without sanitizers) ---- */

/*
 * Always inlined: between __tsan_switch_to_fiber() and pm__coro_switch() no
 * instrumented function may return, or TSan pops its shadow call stack entry
 * from the other fiber's stack (and both stacks drift until one overflows).
 */
#define SAN_INLINE static inline __attribute__((always_inline))

/* Host side, right before switching into c. */
SAN_INLINE void san_host_leave(struct pm_coro *c)
{
#if PM_CORO_TSAN
	c->host_fiber = __tsan_get_current_fiber();
#endif
#if PM_CORO_ASAN
	__sanitizer_start_switch_fiber(&c->host_fake_stack, c->stack_lo, c->stack_size);
#endif
#if PM_CORO_TSAN
	__tsan_switch_to_fiber(c->fiber, 0);
#endif
}

/* Host side, right after c switched back. */
SAN_INLINE void san_host_arrive(struct pm_coro *c)
{
#if PM_CORO_ASAN
	__sanitizer_finish_switch_fiber(c->host_fake_stack, NULL, NULL);
#endif
}

/* Coroutine side, right before switching to the host; for_good on finish. */
SAN_INLINE void san_coro_leave(struct pm_coro *c, bool for_good)
{
#if PM_CORO_ASAN
	__sanitizer_start_switch_fiber(for_good ? NULL : &c->coro_fake_stack,
				       c->host_stack_lo, c->host_stack_size);
#endif
#if PM_CORO_TSAN
	__tsan_switch_to_fiber(c->host_fiber, 0);
#endif
}

/* Coroutine side, on every arrival: the resumer may be a new thread. */
SAN_INLINE void san_coro_arrive(struct pm_coro *c)
{
#if PM_CORO_ASAN
	__sanitizer_finish_switch_fiber(c->coro_fake_stack, &c->host_stack_lo,
					&c->host_stack_size);
#endif
}

/* ---- the two directions of a switch ---- */

/* Returns when c yields or finishes. */
static void host_switch_to_coro(struct pm_coro *c)
{
	san_host_leave(c);
	pm__coro_switch(&c->host_sp, c->sp);
	san_host_arrive(c);
}

/* Returns when c is resumed again, possibly on another thread. */
static void coro_switch_to_host(struct pm_coro *c)
{
	san_coro_leave(c, false);
	pm__coro_switch(&c->sp, c->host_sp);
	san_coro_arrive(c);
}

static _Noreturn void coro_exit(struct pm_coro *c)
{
	c->state = PM_CORO_FINISHED;
	san_coro_leave(c, true);
	pm__coro_switch(&c->sp, c->host_sp);
	pm_bug(__FILE__, __LINE__, "a finished coroutine was resumed");
}

/* Called by pm__coro_start on the coroutine's first resume. */
static _Noreturn void coro_main(struct pm_coro *c)
{
	san_coro_arrive(c);
	/* A cancelled pm_coro_yield() longjmps here: the whole stack unwinds. */
	if (setjmp(c->unwind) == 0)
		c->fn(c->arg);
	coro_exit(c);
}

/* ---- stacks ---- */

/* Maps the stack with a PROT_NONE guard page below it; 0 or -ENOMEM. */
static int coro_map_stack(struct pm_coro *c, size_t stack_size)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	void *map;

	if (stack_size > SIZE_MAX / 2)
		return -ENOMEM;
	stack_size = PM_ALIGN_UP(stack_size, page);
	map = mmap(NULL, page + stack_size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (map == MAP_FAILED)
		return -ENOMEM;
	if (mprotect(map, page, PROT_NONE)) {
		munmap(map, page + stack_size);
		return -ENOMEM;
	}
	c->map = map;
	c->map_size = page + stack_size;
	c->stack_lo = (char *)map + page;
	c->stack_size = stack_size;
	return 0;
}

static void coro_unmap_stack(struct pm_coro *c)
{
#if PM_CORO_ASAN
	/* Frames that never returned (ours, at least) leave redzones behind;
	 * do not let them haunt whatever is mapped here next. */
	ASAN_UNPOISON_MEMORY_REGION(c->stack_lo, c->stack_size);
#endif
	PM_BUG_ON(munmap(c->map, c->map_size));
}

/* The frame that the first switch into c pops: it "returns" to pm__coro_start. */
static void coro_push_start_frame(struct pm_coro *c)
{
	uintptr_t top = PM_ALIGN_DOWN((uintptr_t)c->stack_lo + c->stack_size, 16);
	uint64_t *frame = (uint64_t *)(top - FRAME_WORDS * sizeof(uint64_t));

	memset(frame, 0, FRAME_WORDS * sizeof(uint64_t)); /* rbp = 0 ends frame chains */
	frame[FRAME_FPCTL] = MXCSR_DEFAULT | (uint64_t)X87_CW_DEFAULT << 32;
	frame[FRAME_R12] = (uintptr_t)c;
	frame[FRAME_R13] = (uintptr_t)coro_main;
	frame[FRAME_RET] = (uintptr_t)pm__coro_start;
	c->sp = frame;
}

/* ---- the interface ---- */

/* A stack_size of 0 means PM_CORO_DEFAULT_STACK; others round up to pages. */
int pm_coro_create(struct pm_coro **out, size_t stack_size, pm_coro_fn fn, void *arg)
{
	struct pm_coro *c;

	PM_BUG_ON(!fn);
	c = pm_zalloc(sizeof(*c));
	if (!c)
		return -ENOMEM;
	if (coro_map_stack(c, stack_size ? stack_size : PM_CORO_DEFAULT_STACK))
		goto err_free;
#if PM_CORO_TSAN
	c->fiber = __tsan_create_fiber(0);
#endif
	c->fn = fn;
	c->arg = arg;
	c->state = PM_CORO_NEW;
	coro_push_start_frame(c);
	*out = c;
	return 0;

err_free:
	free(c);
	return -ENOMEM;
}

void pm_coro_destroy(struct pm_coro *c)
{
	if (!c)
		return;
	PM_BUG_ON(c->state == PM_CORO_RUNNING); /* destroyed from inside */
	if (c->state == PM_CORO_SUSPENDED) {
		c->cancel = true;
		/* Its pending yield unwinds to coro_main, which finishes. */
		PM_BUG_ON(pm_coro_resume(c));
	}
	coro_unmap_stack(c);
#if PM_CORO_TSAN
	__tsan_destroy_fiber(c->fiber);
#endif
	free(c);
}

bool pm_coro_resume(struct pm_coro *c)
{
	struct pm_coro *outer = tls_current;

	PM_BUG_ON(c->state != PM_CORO_NEW && c->state != PM_CORO_SUSPENDED);
	c->state = PM_CORO_RUNNING;
	tls_current = c;
	host_switch_to_coro(c);
	tls_current = outer;
	PM_BUG_ON(c->state != PM_CORO_SUSPENDED && c->state != PM_CORO_FINISHED);
	return c->state == PM_CORO_SUSPENDED;
}

void pm_coro_yield(struct pm_coro *c)
{
	PM_BUG_ON(c != pm_coro_current());
	PM_BUG_ON(c->state != PM_CORO_RUNNING);
	c->state = PM_CORO_SUSPENDED;
	coro_switch_to_host(c);
	if (c->cancel)
		longjmp(c->unwind, 1);
}

bool pm_coro_finished(const struct pm_coro *c)
{
	return c->state == PM_CORO_FINISHED;
}

struct pm_coro *pm_coro_current(void)
{
	return tls_current;
}

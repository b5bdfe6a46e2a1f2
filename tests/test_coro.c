/* SPDX-License-Identifier: MIT */
/*
 * Tests of the coroutines (src/vcpu/coro.c): values through yields, stack and
 * register state across switches, pm_coro_current, finishing, cancellation,
 * the guard page, misuse, many coroutines, and use from several threads.
 *
 * Run them under ASan+UBSan and TSan too: the sanitizer annotations of every
 * switch are part of what is tested (an unannotated switch makes them report).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "lib/testutil.h"

#include "vcpu/coro.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define KIB 1024u
#define NOINLINE __attribute__((noinline))
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static struct pm_coro *create_ok(size_t stack, pm_coro_fn fn, void *arg)
{
	struct pm_coro *c = NULL;

	assert_int_equal(pm_coro_create(&c, stack, fn, arg), 0);
	assert_non_null(c);
	assert_false(pm_coro_finished(c));
	return c;
}

/* ---- a generator: values in and out through yields ---- */

struct pingpong {
	struct pm_coro *self;
	int64_t in;   /* host -> coroutine */
	int64_t out;  /* coroutine -> host */
	bool stop;
};

/* Yields in*in + previous out, until told to stop. */
static void squares_fn(void *arg)
{
	struct pingpong *pp = arg;
	int64_t acc = 0;

	while (!pp->stop) {
		acc += pp->in * pp->in;
		pp->out = acc;
		pm_coro_yield(pp->self);
	}
	pp->out = -1;
}

static void test_generator_pingpongs_values_through_yields(void **state)
{
	struct pingpong pp = { 0 };
	int64_t want = 0;

	pp.self = create_ok(PM_CORO_DEFAULT_STACK, squares_fn, &pp);
	for (int64_t i = 1; i <= 100; i++) {
		pp.in = i;
		assert_true(pm_coro_resume(pp.self));
		want += i * i;
		assert_int_equal(pp.out, want);
		assert_false(pm_coro_finished(pp.self));
	}
	pp.stop = true;
	assert_false(pm_coro_resume(pp.self));
	assert_int_equal(pp.out, -1);
	assert_true(pm_coro_finished(pp.self));
	pm_coro_destroy(pp.self);
}

/* ---- stack contents survive switches ---- */

#define DEPTH 1000
#define FRAME_BYTES 64
/* Sanitizers more than quadruple the 64-byte frames: 1000 of them need room. */
#define DEEP_STACK (1024 * KIB)

struct deep {
	struct pm_coro *self;
	unsigned int yields;
	unsigned int bad;  /* locals found changed after a switch */
	unsigned int done;
};

/* Each frame holds 64 bytes of its own pattern; yields every 100 levels. */
static NOINLINE void recurse_and_yield(struct deep *d, unsigned int depth)
{
	volatile uint8_t mine[FRAME_BYTES];

	for (unsigned int i = 0; i < FRAME_BYTES; i++)
		mine[i] = (uint8_t)(depth * 7 + i);
	if (depth % 100 == 0) {
		d->yields++;
		pm_coro_yield(d->self);
	}
	if (depth < DEPTH)
		recurse_and_yield(d, depth + 1);
	for (unsigned int i = 0; i < FRAME_BYTES; i++)
		if (mine[i] != (uint8_t)(depth * 7 + i))
			d->bad++;
}

static void deep_fn(void *arg)
{
	struct deep *d = arg;
	volatile uint32_t big[1024]; /* 4 KiB of locals */

	for (unsigned int i = 0; i < ARRAY_LEN(big); i++)
		big[i] = i * 2654435761u;
	pm_coro_yield(d->self);
	recurse_and_yield(d, 1);
	for (unsigned int i = 0; i < ARRAY_LEN(big); i++)
		if (big[i] != i * 2654435761u)
			d->bad++;
	d->done = 1;
}

/* The host scribbles over its own stack between resumes. */
static NOINLINE unsigned int host_scribble(unsigned int depth)
{
	volatile uint8_t junk[FRAME_BYTES];

	for (unsigned int i = 0; i < FRAME_BYTES; i++)
		junk[i] = (uint8_t)~i;
	return depth ? host_scribble(depth - 1) + junk[depth % FRAME_BYTES] : 0;
}

static void test_locals_and_deep_recursion_survive_switches(void **state)
{
	struct deep d = { 0 };
	unsigned int resumes = 0;

	d.self = create_ok(DEEP_STACK, deep_fn, &d);
	while (pm_coro_resume(d.self)) {
		resumes++;
		host_scribble(200);
	}
	assert_int_equal(d.yields, DEPTH / 100);
	assert_int_equal(resumes, DEPTH / 100 + 1);
	assert_int_equal(d.done, 1);
	assert_int_equal(d.bad, 0);
	pm_coro_destroy(d.self);
}

/* ---- register state survives switches ---- */

struct regs {
	struct pm_coro *self;
	double x;         /* host -> coroutine */
	double result;    /* coroutine -> host */
	uint64_t iresult;
};

static inline uint32_t read_mxcsr(void)
{
	uint32_t v;

	__asm__ volatile("stmxcsr %0" : "=m"(v));
	return v;
}

static inline void write_mxcsr(uint32_t v)
{
	__asm__ volatile("ldmxcsr %0" : : "m"(v));
}

static inline uint16_t read_x87_cw(void)
{
	uint16_t v;

	__asm__ volatile("fnstcw %0" : "=m"(v));
	return v;
}

static inline void write_x87_cw(uint16_t v)
{
	__asm__ volatile("fldcw %0" : : "m"(v));
}

#define MXCSR_RC_MASK 0x6000u
#define MXCSR_RC_UP   0x4000u
#define MXCSR_RC_DOWN 0x2000u
#define X87_RC_MASK   0x0c00u
#define X87_RC_UP     0x0800u
#define X87_RC_ZERO   0x0c00u

/*
 * Many integer and double values live across a yield: the compiler keeps
 * some in callee-saved registers and spills the rest; all must come back.
 */
static NOINLINE uint64_t ints_across_yield(struct pm_coro *c, uint64_t s)
{
	uint64_t a = s * 3, b = s ^ 0x55, d = s + 17, e = s * s, f = s << 3;
	uint64_t g = ~s, h = s * 7 + 1, i = s >> 1, j = s | 0x100, k = s - 9;
	uint64_t l = s * 11, m = s ^ 0xabcdef;

	pm_coro_yield(c);
	return a + 3 * b + 5 * d + 7 * e + 11 * f + 13 * g + 17 * h + 19 * i +
	       23 * j + 29 * k + 31 * l + 37 * m;
}

static uint64_t ints_expected(uint64_t s)
{
	return s * 3 + 3 * (s ^ 0x55) + 5 * (s + 17) + 7 * (s * s) + 11 * (s << 3) +
	       13 * ~s + 17 * (s * 7 + 1) + 19 * (s >> 1) + 23 * (s | 0x100) +
	       29 * (s - 9) + 31 * (s * 11) + 37 * (s ^ 0xabcdef);
}

static double poly(double x)
{
	return ((1.5 * x - 2.25) * x + 0.125) * x / (x * x + 1.0);
}

static NOINLINE double doubles_across_yield(struct pm_coro *c, double x)
{
	double a = x * 1.5, b = x - 2.0, d = x * x, e = 1.0 / (x + 3.0);
	double f = a * b, g = d - e, h = x * 0.25, i = a + d;

	pm_coro_yield(c);
	return a + 2 * b + 3 * d + 4 * e + 5 * f + 6 * g + 7 * h + 8 * i + poly(x);
}

static double doubles_expected(double x)
{
	double a = x * 1.5, b = x - 2.0, d = x * x, e = 1.0 / (x + 3.0);
	double f = a * b, g = d - e, h = x * 0.25, i = a + d;

	return a + 2 * b + 3 * d + 4 * e + 5 * f + 6 * g + 7 * h + 8 * i + poly(x);
}

static void regs_fn(void *arg)
{
	struct regs *r = arg;

	/* The coroutine's own rounding modes must survive the host's changes. */
	write_mxcsr((read_mxcsr() & ~MXCSR_RC_MASK) | MXCSR_RC_UP);
	write_x87_cw((uint16_t)((read_x87_cw() & ~X87_RC_MASK) | X87_RC_UP));
	pm_coro_yield(r->self);
	r->iresult = ((read_mxcsr() & MXCSR_RC_MASK) == MXCSR_RC_UP) +
		     ((read_x87_cw() & X87_RC_MASK) == X87_RC_UP);
	/* Back to the defaults for the arithmetic below. */
	write_mxcsr(read_mxcsr() & ~MXCSR_RC_MASK);
	write_x87_cw((uint16_t)(read_x87_cw() & ~X87_RC_MASK));

	for (int n = 0; n < 20; n++) {
		double x;
		uint64_t s;

		pm_coro_yield(r->self); /* wait for the next x */
		x = r->x;
		s = (uint64_t)x * 1000003u;
		r->result = doubles_across_yield(r->self, x);
		r->iresult = ints_across_yield(r->self, s);
	}
}

static void test_fp_state_and_live_values_survive_switches(void **state)
{
	struct regs r = { 0 };
	uint32_t mxcsr = read_mxcsr();
	uint16_t cw = read_x87_cw();

	r.self = create_ok(PM_CORO_DEFAULT_STACK, regs_fn, &r);

	/* Control registers: each side keeps its own. */
	assert_true(pm_coro_resume(r.self));
	assert_int_equal(read_mxcsr(), mxcsr);
	assert_int_equal(read_x87_cw(), cw);
	write_mxcsr((mxcsr & ~MXCSR_RC_MASK) | MXCSR_RC_DOWN);
	write_x87_cw((uint16_t)((cw & ~X87_RC_MASK) | X87_RC_ZERO));
	assert_true(pm_coro_resume(r.self));
	assert_int_equal(r.iresult, 2);
	assert_int_equal(read_mxcsr() & MXCSR_RC_MASK, MXCSR_RC_DOWN);
	assert_int_equal(read_x87_cw() & X87_RC_MASK, X87_RC_ZERO);
	write_mxcsr(mxcsr);
	write_x87_cw(cw);

	/* Live values on both sides. */
	for (int n = 0; n < 20; n++) {
		double x = 0.5 + n * 1.75;
		double h1 = x * 3.0, h2 = x - 0.5, h3 = x * x, h4 = 2.0 / (x + 1.0);
		uint64_t s = (uint64_t)x * 1000003u;
		uint64_t k1 = s * 5, k2 = s ^ 0x77, k3 = s + 99, k4 = s * s;

		r.x = x;
		assert_true(pm_coro_resume(r.self));
		/* The double result is complete once the int half is running. */
		assert_true(pm_coro_resume(r.self));
		assert_true(r.result == doubles_expected(x));
		assert_true(pm_coro_resume(r.self) == (n < 19));
		assert_int_equal(r.iresult, ints_expected(s));
		assert_true(h1 == x * 3.0 && h2 == x - 0.5 && h3 == x * x &&
			    h4 == 2.0 / (x + 1.0));
		assert_true(k1 == s * 5 && k2 == (s ^ 0x77) && k3 == s + 99 && k4 == s * s);
	}
	assert_true(pm_coro_finished(r.self));
	assert_int_equal(read_mxcsr(), mxcsr);
	assert_int_equal(read_x87_cw(), cw);
	pm_coro_destroy(r.self);
}

/*
 * uint64_t pm_test_call_with_pattern(fn, arg, seed): puts seed+1 .. seed+6 in
 * rbx, rbp, r12, r13, r14 and r15, calls fn(arg), and returns a mask of the
 * registers (bit 0 = rbx ... bit 5 = r15) that lost their value. Compiled
 * code cannot be trusted to keep distinct values in all six across a switch.
 */
uint64_t pm_test_call_with_pattern(void (*fn)(void *), void *arg, uint64_t seed);
__asm__(
	".pushsection .text\n"
	".globl pm_test_call_with_pattern\n"
	".hidden pm_test_call_with_pattern\n"
	".type pm_test_call_with_pattern, @function\n"
	"pm_test_call_with_pattern:\n"
	"	.cfi_startproc\n"
	"	pushq %rbp\n"
	"	.cfi_adjust_cfa_offset 8\n"
	"	pushq %rbx\n"
	"	.cfi_adjust_cfa_offset 8\n"
	"	pushq %r12\n"
	"	.cfi_adjust_cfa_offset 8\n"
	"	pushq %r13\n"
	"	.cfi_adjust_cfa_offset 8\n"
	"	pushq %r14\n"
	"	.cfi_adjust_cfa_offset 8\n"
	"	pushq %r15\n"
	"	.cfi_adjust_cfa_offset 8\n"
	"	pushq %rdx\n" /* 7 pushes: the call below is 16-byte aligned */
	"	.cfi_adjust_cfa_offset 8\n"
	"	leaq 1(%rdx), %rbx\n"
	"	leaq 2(%rdx), %rbp\n"
	"	leaq 3(%rdx), %r12\n"
	"	leaq 4(%rdx), %r13\n"
	"	leaq 5(%rdx), %r14\n"
	"	leaq 6(%rdx), %r15\n"
	"	movq %rdi, %rax\n"
	"	movq %rsi, %rdi\n"
	"	callq *%rax\n"
	"	popq %rdx\n"
	"	.cfi_adjust_cfa_offset -8\n"
	"	xorl %eax, %eax\n"
	"	leaq 1(%rdx), %rcx\n"
	"	cmpq %rcx, %rbx\n"
	"	je 1f\n"
	"	orl $1, %eax\n"
	"1:	leaq 2(%rdx), %rcx\n"
	"	cmpq %rcx, %rbp\n"
	"	je 1f\n"
	"	orl $2, %eax\n"
	"1:	leaq 3(%rdx), %rcx\n"
	"	cmpq %rcx, %r12\n"
	"	je 1f\n"
	"	orl $4, %eax\n"
	"1:	leaq 4(%rdx), %rcx\n"
	"	cmpq %rcx, %r13\n"
	"	je 1f\n"
	"	orl $8, %eax\n"
	"1:	leaq 5(%rdx), %rcx\n"
	"	cmpq %rcx, %r14\n"
	"	je 1f\n"
	"	orl $16, %eax\n"
	"1:	leaq 6(%rdx), %rcx\n"
	"	cmpq %rcx, %r15\n"
	"	je 1f\n"
	"	orl $32, %eax\n"
	"1:	popq %r15\n"
	"	.cfi_adjust_cfa_offset -8\n"
	"	popq %r14\n"
	"	.cfi_adjust_cfa_offset -8\n"
	"	popq %r13\n"
	"	.cfi_adjust_cfa_offset -8\n"
	"	popq %r12\n"
	"	.cfi_adjust_cfa_offset -8\n"
	"	popq %rbx\n"
	"	.cfi_adjust_cfa_offset -8\n"
	"	popq %rbp\n"
	"	.cfi_adjust_cfa_offset -8\n"
	"	ret\n"
	"	.cfi_endproc\n"
	".size pm_test_call_with_pattern, .-pm_test_call_with_pattern\n"
	".popsection\n");

struct pattern {
	struct pm_coro *self;
	uint64_t coro_lost;  /* registers the coroutine lost across yields */
};

static void yield_thunk(void *arg)
{
	pm_coro_yield(arg);
}

static void resume_thunk(void *arg)
{
	pm_coro_resume(arg);
}

static void pattern_fn(void *arg)
{
	struct pattern *p = arg;

	for (uint64_t i = 0; i < 4; i++)
		p->coro_lost |= pm_test_call_with_pattern(yield_thunk, p->self,
							   0xc0c0c0c0c0c00000ull + i * 16);
}

static void test_callee_saved_registers_survive_switches(void **state)
{
	struct pattern p = { 0 };
	uint64_t host_lost = 0;

	p.self = create_ok(PM_CORO_DEFAULT_STACK, pattern_fn, &p);
	for (uint64_t i = 0; i < 5; i++)
		host_lost |= pm_test_call_with_pattern(resume_thunk, p.self,
							0x4040404040400000ull + i * 16);
	assert_true(pm_coro_finished(p.self));
	assert_int_equal(host_lost, 0);
	assert_int_equal(p.coro_lost, 0);
	pm_coro_destroy(p.self);
}

/* The SysV ABI wants rsp % 16 == 8 at every function entry. */
static NOINLINE bool frame_is_aligned(void)
{
	/* With a frame pointer, rbp = entry rsp - 8. */
	return (uintptr_t)__builtin_frame_address(0) % 16 == 0;
}

/* Called through a pointer the compiler cannot see through: had it known
 * the callee, it could skip aligning the call (gcc's IPA does). */
static bool (*volatile check_frame_alignment)(void) = frame_is_aligned;

static void aligned_fn(void *arg)
{
	*(bool *)arg = check_frame_alignment();
}

static void test_coroutine_stack_is_abi_aligned(void **state)
{
	bool aligned = false;
	struct pm_coro *c = create_ok(PM_CORO_DEFAULT_STACK, aligned_fn, &aligned);

	assert_true(check_frame_alignment());
	assert_false(pm_coro_resume(c));
	assert_true(aligned);
	pm_coro_destroy(c);
}

/* ---- pm_coro_current ---- */

struct whoami {
	struct pm_coro *self;
	struct pm_coro *seen[2];
};

static void whoami_fn(void *arg)
{
	struct whoami *w = arg;

	w->seen[0] = pm_coro_current();
	pm_coro_yield(w->self);
	w->seen[1] = pm_coro_current();
}

static void test_current_is_self_inside_and_null_on_host(void **state)
{
	struct whoami w = { 0 };

	assert_null(pm_coro_current());
	w.self = create_ok(PM_CORO_DEFAULT_STACK, whoami_fn, &w);
	assert_null(pm_coro_current());
	assert_true(pm_coro_resume(w.self));
	assert_ptr_equal(w.seen[0], w.self);
	assert_null(pm_coro_current());
	assert_false(pm_coro_resume(w.self));
	assert_ptr_equal(w.seen[1], w.self);
	assert_null(pm_coro_current());
	pm_coro_destroy(w.self);
}

/* ---- finishing ---- */

static void count_fn(void *arg)
{
	(*(int *)arg)++;
}

static void test_returning_fn_finishes_the_coroutine(void **state)
{
	int runs = 0;
	struct pm_coro *c = create_ok(PM_CORO_DEFAULT_STACK, count_fn, &runs);

	assert_false(pm_coro_finished(c));
	assert_false(pm_coro_resume(c));
	assert_int_equal(runs, 1);
	assert_true(pm_coro_finished(c));
	pm_coro_destroy(c);
	assert_int_equal(runs, 1);
}

/* ---- cancellation ---- */

struct cancel {
	struct pm_coro *self;
	int entered;
	int resumed_after_yield;  /* the normal path after a yield */
	int returned;             /* fn returned normally */
	uintptr_t stack_addr;     /* a byte on the coroutine's stack */
};

static NOINLINE void nest_then_yield_in_loop(struct cancel *cx, int depth)
{
	volatile char pad[128];

	pad[0] = (char)depth;
	if (depth > 0) {
		nest_then_yield_in_loop(cx, depth - 1);
	} else {
		cx->stack_addr = (uintptr_t)__builtin_frame_address(0);
		while (cx->resumed_after_yield < 1000) { /* in effect forever */
			pm_coro_yield(cx->self);
			cx->resumed_after_yield++;
		}
	}
	pad[1] = pad[0];
}

static void cancel_fn(void *arg)
{
	struct cancel *cx = arg;

	cx->entered++;
	nest_then_yield_in_loop(cx, 50);
	cx->returned++;
}

static bool page_is_mapped(uintptr_t addr)
{
	uintptr_t page = addr & ~(uintptr_t)(sysconf(_SC_PAGESIZE) - 1);

	return msync((void *)page, 1, MS_ASYNC) == 0;
}

static void test_destroy_suspended_unwinds_and_frees_stack(void **state)
{
	struct cancel cx = { 0 };

	cx.self = create_ok(PM_CORO_DEFAULT_STACK, cancel_fn, &cx);
	assert_true(pm_coro_resume(cx.self));
	assert_true(pm_coro_resume(cx.self));
	assert_int_equal(cx.resumed_after_yield, 1);
	assert_true(cx.stack_addr != 0);
	assert_true(page_is_mapped(cx.stack_addr));

	pm_coro_destroy(cx.self);
	assert_int_equal(cx.entered, 1);
	assert_int_equal(cx.resumed_after_yield, 1);
	assert_int_equal(cx.returned, 0);
	assert_false(page_is_mapped(cx.stack_addr));
	assert_null(pm_coro_current());
}

static void test_destroy_unstarted_never_runs_fn(void **state)
{
	int runs = 0;
	struct pm_coro *c = create_ok(PM_CORO_DEFAULT_STACK, count_fn, &runs);

	pm_coro_destroy(c);
	assert_int_equal(runs, 0);
	pm_coro_destroy(NULL);
}

/* Reusing the address range of cancelled stacks must be clean (ASan shadow). */
static void test_cancel_then_new_coroutines_run_cleanly(void **state)
{
	for (int round = 0; round < 20; round++) {
		struct cancel cx = { 0 };
		struct deep d = { 0 };

		cx.self = create_ok(64 * KIB, cancel_fn, &cx);
		assert_true(pm_coro_resume(cx.self));
		pm_coro_destroy(cx.self);
		assert_int_equal(cx.resumed_after_yield, 0);

		d.self = create_ok(DEEP_STACK, deep_fn, &d);
		while (pm_coro_resume(d.self))
			;
		assert_int_equal(d.bad, 0);
		assert_int_equal(d.done, 1);
		pm_coro_destroy(d.self);
	}
}

/* ---- the stack ---- */

/* The frame address, not a local's: ASan may put locals on a fake stack. */
static void where_fn(void *arg)
{
	*(uintptr_t *)arg = (uintptr_t)__builtin_frame_address(0);
}

/* The mapping holding address a starts right above a PROT_NONE mapping. */
static bool has_guard_below(uintptr_t a)
{
	uintptr_t prev_end = 0, start, end;
	char perms[8], line[512];
	bool prev_none = false, found = false;
	FILE *f = fopen("/proc/self/maps", "r");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %7s", &start, &end, perms) != 3)
			continue;
		if (a >= start && a < end) {
			found = prev_none && prev_end == start;
			break;
		}
		prev_none = strncmp(perms, "---p", 4) == 0;
		prev_end = end;
	}
	fclose(f);
	return found;
}

static void test_stack_has_guard_page_below(void **state)
{
	uintptr_t addr = 0;
	struct pm_coro *c = create_ok(64 * KIB, where_fn, &addr);

	assert_false(pm_coro_resume(c));
	assert_true(addr != 0);
	assert_true(has_guard_below(addr));
	assert_false(has_guard_below((uintptr_t)&addr)); /* the main thread's stack has none */
	pm_coro_destroy(c);
}

/* ---- misuse ---- */

/* fn(arg) must die of SIGABRT (a PM_BUG_ON) in a child. */
static void expect_abort(void (*fn)(void *), void *arg)
{
	assert_true(pm_test_aborts(fn, arg));
}

static void resume_finished(void *arg)
{
	struct pm_coro *c = NULL;
	int runs = 0;

	if (pm_coro_create(&c, 0, count_fn, &runs) || pm_coro_resume(c))
		_exit(1);
	pm_coro_resume(c);
}

static void destroy_self_fn(void *arg)
{
	pm_coro_destroy(pm_coro_current());
}

static void destroy_from_inside(void *arg)
{
	struct pm_coro *c = NULL;

	if (pm_coro_create(&c, 0, destroy_self_fn, NULL))
		_exit(1);
	pm_coro_resume(c);
}

static void yield_on_host(void *arg)
{
	struct pm_coro *c = NULL;
	int runs = 0;

	if (pm_coro_create(&c, 0, count_fn, &runs))
		_exit(1);
	pm_coro_yield(c);
}

static void test_misuse_is_a_bug(void **state)
{
	expect_abort(resume_finished, NULL);
	expect_abort(destroy_from_inside, NULL);
	expect_abort(yield_on_host, NULL);
}

/* ---- many coroutines ---- */

#define NR_MANY 200
#define MANY_STEPS 50

struct many {
	struct pm_coro *self;
	unsigned int id;
	unsigned int *log;   /* shared: who ran, in order */
	unsigned int *nlog;
	uint64_t sum;        /* a local total kept across yields */
};

static void many_fn(void *arg)
{
	struct many *m = arg;
	uint64_t sum = 0;

	for (unsigned int step = 0; step < MANY_STEPS; step++) {
		m->log[(*m->nlog)++] = m->id * 1000 + step;
		sum += m->id * step;
		pm_coro_yield(m->self);
	}
	m->sum = sum;
}

static void test_many_coroutines_interleave_round_robin(void **state)
{
	static struct many ms[NR_MANY];
	unsigned int *log = calloc(NR_MANY * MANY_STEPS, sizeof(*log));
	unsigned int nlog = 0, live = NR_MANY;

	assert_non_null(log);
	for (unsigned int i = 0; i < NR_MANY; i++) {
		ms[i] = (struct many){ .id = i, .log = log, .nlog = &nlog };
		ms[i].self = create_ok(64 * KIB, many_fn, &ms[i]);
	}
	for (unsigned int round = 0; live; round++) {
		for (unsigned int i = 0; i < NR_MANY; i++) {
			if (pm_coro_finished(ms[i].self))
				continue;
			if (!pm_coro_resume(ms[i].self)) {
				assert_int_equal(round, MANY_STEPS);
				live--;
			}
		}
	}
	assert_int_equal(nlog, NR_MANY * MANY_STEPS);
	for (unsigned int n = 0; n < nlog; n++)
		assert_int_equal(log[n], (n % NR_MANY) * 1000 + n / NR_MANY);
	for (unsigned int i = 0; i < NR_MANY; i++) {
		assert_int_equal(ms[i].sum, (uint64_t)i * (MANY_STEPS - 1) * MANY_STEPS / 2);
		pm_coro_destroy(ms[i].self);
	}
	free(log);
}

/* ---- threads ---- */

struct migrate {
	struct pm_coro *self;
	uint64_t in, out;
	pid_t ran_on[8];         /* kernel thread id the coroutine ran on */
	pid_t resumer;           /* kernel thread id of the latest resumer */
	struct pm_coro *current_seen[8];
	unsigned int steps;
	char trail[64];  /* written by the coroutine on every thread */
};

#define THREAD_STACK (1024 * KIB)

static void migrate_fn(void *arg)
{
	struct migrate *mg = arg;
	uint64_t acc = 1;
	char local[32];

	memset(local, 0, sizeof(local));
	for (;;) {
		unsigned int n = mg->steps++;

		/* Not pthread_self(): glibc declares it const, so the compiler
		 * may reuse a value from before the yield, i.e. another thread. */
		mg->ran_on[n] = (pid_t)syscall(SYS_gettid);
		mg->current_seen[n] = pm_coro_current();
		acc = acc * 31 + mg->in;
		local[n] = (char)('a' + n);
		memcpy(mg->trail, local, sizeof(local));
		mg->out = acc;
		pm_coro_yield(mg->self);
	}
}

#if (defined(PM_ASAN) && PM_ASAN) || defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
/* After a switch back, ASan must know the stack this thread is on: had the
 * coroutine handed it the bounds of the thread it ran on before, they would
 * be wrong now (the two threads' stacks differ), and ASan would mistake this
 * frame for a wild address. */
static bool asan_knows_this_stack(void)
{
	char name[64];
	void *region = NULL;
	size_t size = 0;
	const char *kind = __asan_locate_address(__builtin_frame_address(0), name,
						 sizeof(name), &region, &size);

	return kind && strcmp(kind, "stack") == 0;
}
#else
static bool asan_knows_this_stack(void)
{
	return true;
}
#endif

static void *resume_once(void *arg)
{
	struct migrate *mg = arg;

	mg->resumer = (pid_t)syscall(SYS_gettid);
	if (pm_coro_current() != NULL || !pm_coro_resume(mg->self) ||
	    pm_coro_current() != NULL)
		return (void *)1;
	if (!asan_knows_this_stack())
		return (void *)3;
	return NULL;
}

static void test_coroutine_migrates_between_threads(void **state)
{
	struct migrate mg = { 0 };
	pthread_t threads[6];
	pthread_attr_t attr[2];
	void *stacks[2];
	uint64_t acc = 1;

	/* Two stacks of our own, so that consecutive threads surely differ
	 * (glibc would hand a joined thread's cached stack to the next one). */
	for (unsigned int i = 0; i < 2; i++) {
		stacks[i] = mmap(NULL, THREAD_STACK, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
		assert_true(stacks[i] != MAP_FAILED);
		assert_int_equal(pthread_attr_init(&attr[i]), 0);
		assert_int_equal(pthread_attr_setstack(&attr[i], stacks[i], THREAD_STACK), 0);
	}
	mg.self = create_ok(PM_CORO_DEFAULT_STACK, migrate_fn, &mg);
	for (unsigned int n = 0; n < 6; n++) {
		void *ret = (void *)2;

		/* One thread at a time, on alternating stacks. */
		mg.in = 1000 + n;
		assert_int_equal(pthread_create(&threads[n], &attr[n % 2], resume_once, &mg), 0);
		assert_int_equal(pthread_join(threads[n], &ret), 0);
		assert_null(ret);
		acc = acc * 31 + 1000 + n;
		assert_int_equal(mg.out, acc);
		assert_int_equal(mg.steps, n + 1);
		assert_int_equal(mg.ran_on[n], mg.resumer);
		assert_int_not_equal(mg.resumer, (pid_t)syscall(SYS_gettid));
		assert_ptr_equal(mg.current_seen[n], mg.self);
		assert_int_equal(mg.trail[n], 'a' + n);
		assert_int_equal(strlen(mg.trail), n + 1);
	}
	/* Cancelled from yet another thread (main) than the one it last ran on. */
	pm_coro_destroy(mg.self);
	assert_int_equal(mg.steps, 6);
	assert_true(asan_knows_this_stack());
	for (unsigned int i = 0; i < 2; i++) {
		pthread_attr_destroy(&attr[i]);
		munmap(stacks[i], THREAD_STACK);
	}
}

#define NR_PER_THREAD 8
#define THREAD_STEPS 500

struct worker {
	pthread_barrier_t *start;
	uint64_t seed;
	uint64_t total;   /* sum of what the thread's coroutines produced */
	int bad;
};

struct counter {
	struct pm_coro *self;
	uint64_t next;    /* coroutine -> host */
};

static void counter_fn(void *arg)
{
	struct counter *ct = arg;
	uint64_t v = ct->next;

	for (unsigned int i = 0; i < THREAD_STEPS; i++) {
		ct->next = v + i;
		pm_coro_yield(ct->self);
	}
}

static void *worker_fn(void *arg)
{
	struct worker *w = arg;
	struct counter cts[NR_PER_THREAD];

	for (unsigned int i = 0; i < NR_PER_THREAD; i++) {
		cts[i].next = w->seed + i * 100000;
		if (pm_coro_create(&cts[i].self, 64 * KIB, counter_fn, &cts[i]))
			w->bad++;
	}
	pthread_barrier_wait(w->start);
	for (unsigned int step = 0; step <= THREAD_STEPS; step++) {
		for (unsigned int i = 0; i < NR_PER_THREAD; i++) {
			bool more = pm_coro_resume(cts[i].self);

			if (more != (step < THREAD_STEPS))
				w->bad++;
			if (more)
				w->total += cts[i].next;
			if (pm_coro_current() != NULL)
				w->bad++;
		}
	}
	for (unsigned int i = 0; i < NR_PER_THREAD; i++)
		pm_coro_destroy(cts[i].self);
	return NULL;
}

static void test_threads_run_own_coroutines_concurrently(void **state)
{
	pthread_barrier_t start;
	struct worker w[2];
	pthread_t t[2];

	assert_int_equal(pthread_barrier_init(&start, NULL, 2), 0);
	for (unsigned int i = 0; i < 2; i++) {
		w[i] = (struct worker){ .start = &start, .seed = (i + 1) * 10000000ull };
		assert_int_equal(pthread_create(&t[i], NULL, worker_fn, &w[i]), 0);
	}
	for (unsigned int i = 0; i < 2; i++) {
		uint64_t want = 0;

		assert_int_equal(pthread_join(t[i], NULL), 0);
		for (unsigned int k = 0; k < NR_PER_THREAD; k++)
			for (unsigned int s = 0; s < THREAD_STEPS; s++)
				want += w[i].seed + k * 100000 + s;
		assert_int_equal(w[i].bad, 0);
		assert_int_equal(w[i].total, want);
	}
	pthread_barrier_destroy(&start);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_generator_pingpongs_values_through_yields),
		cmocka_unit_test(test_locals_and_deep_recursion_survive_switches),
		cmocka_unit_test(test_fp_state_and_live_values_survive_switches),
		cmocka_unit_test(test_callee_saved_registers_survive_switches),
		cmocka_unit_test(test_coroutine_stack_is_abi_aligned),
		cmocka_unit_test(test_current_is_self_inside_and_null_on_host),
		cmocka_unit_test(test_returning_fn_finishes_the_coroutine),
		cmocka_unit_test(test_destroy_suspended_unwinds_and_frees_stack),
		cmocka_unit_test(test_destroy_unstarted_never_runs_fn),
		cmocka_unit_test(test_cancel_then_new_coroutines_run_cleanly),
		cmocka_unit_test(test_stack_has_guard_page_below),
		cmocka_unit_test(test_misuse_is_a_bug),
		cmocka_unit_test(test_many_coroutines_interleave_round_robin),
		cmocka_unit_test(test_coroutine_migrates_between_threads),
		cmocka_unit_test(test_threads_run_own_coroutines_concurrently),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

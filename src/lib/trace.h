/* SPDX-License-Identifier: MIT */
/*
 * Trace points: what privmem did, when, on which thread, for a Chrome /
 * Perfetto JSON trace (pm_trace_start / pm_trace_stop in privmem.h, or the
 * environment variable PRIVMEM_TRACE=FILE).
 *
 * A trace point is a span (pm_trace_begin at its start, pm_trace_end at
 * its end) or an instant (pm_trace_instant), of a category (below: which
 * names its four arguments) and a name, a static string. When tracing is
 * off a trace point costs one load of the global pm_trace_on and a branch
 * predicted not taken (a span: that, and a test of its local start time);
 * nothing else is evaluated in the slow path's place.
 *
 * Recording (trace.c): each thread appends to a buffer of its own, under
 * the buffer's lock, which only the tracer takes (the owner on every
 * event, uncontended; pm_trace_stop and a thread's exit to flush it). A
 * full buffer is flushed by its owner into the output, under the output's
 * lock. Lock order, all the tracer's own and taken inside whatever the
 * traced path holds: trace list lock > a buffer's lock > output lock.
 * The tracer calls nothing of privmem's and takes no lock a traced path
 * may hold, so a trace point is safe under any of privmem's locks (and
 * in a coroutine: the buffer is the OS thread's).
 */
#ifndef PM_LIB_TRACE_H
#define PM_LIB_TRACE_H

#include "lib/common.h"

/* Categories: the argument names of their events (trace.c's table). */
enum pm_trace_cat {
	PM_TRACE_RUN,        /* "KVM_RUN": vcpu, exit_reason, ret */
	PM_TRACE_EXIT,       /* an exit counted by reason (name: the reason): vcpu, exit_reason,
	                      * detail (the gpa of a memory fault or MMIO, a hypercall's nr,
	                      * an I/O port, a ucall's command) */
	PM_TRACE_FAULT,      /* "fault": gpa, level mapped (-1: none), result, private */
	PM_TRACE_CONVERT,    /* "to_private" / "to_shared": gpa, size, attributes, ret */
	PM_TRACE_ZAP,        /* "zap": gpa, size, zapped, split */
	PM_TRACE_SHOOTDOWN,  /* "tlb_shootdown": generation, vcpus */
	PM_TRACE_TDX,        /* a SEAMCALL or TDCALL (its name): gpa, level, status */
	PM_TRACE_SNP,        /* "RMPUPDATE", "PSMASH", "PVALIDATE": pfn, gpa, size_2m, result */
	PM_TRACE_PKVM,       /* a hyp transition (its name): pfn, gfn, pages, ret */
	PM_TRACE_CCA,        /* an RMI command or RSI call of CCA's RMM (its name): addr (its
	                      * first address: the granule or the RD), ipa, level, result */
	PM_TRACE_NR_CATS,
};

/* Tracing is on: read (relaxed) by every trace point. */
extern atomic_bool pm_trace_on;

uint64_t pm_trace_clock(void);
void pm_trace_record(uint64_t t0, enum pm_trace_cat cat, const char *name, uint64_t a0,
		     uint64_t a1, uint64_t a2, uint64_t a3);
/* Names the calling thread in the trace (e.g. "vCPU 3"). */
void pm_trace_record_thread_name(const char *name);

static inline bool pm_tracing(void)
{
	return pm_unlikely(atomic_load_explicit(&pm_trace_on, memory_order_relaxed));
}

/* The start of a span: 0 when tracing is off. */
static inline uint64_t pm_trace_begin(void)
{
	return pm_tracing() ? pm_trace_clock() : 0;
}

/* The end of a span begun at t0 (nothing if t0 is 0). `name` is a string
 * that lives as long as the process (a literal or a table's entry). */
static inline void pm_trace_end(uint64_t t0, enum pm_trace_cat cat, const char *name, uint64_t a0,
				uint64_t a1, uint64_t a2, uint64_t a3)
{
	if (pm_unlikely(t0))
		pm_trace_record(t0, cat, name, a0, a1, a2, a3);
}

/* An instant event. */
static inline void pm_trace_instant(enum pm_trace_cat cat, const char *name, uint64_t a0, uint64_t a1,
				    uint64_t a2, uint64_t a3)
{
	if (pm_tracing())
		pm_trace_record(0, cat, name, a0, a1, a2, a3);
}

/* An argument that is a static string (printed as a string). */
#define PM_TRACE_STR(s) ((uint64_t)(uintptr_t)(s))

#endif

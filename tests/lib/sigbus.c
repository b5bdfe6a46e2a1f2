/* SPDX-License-Identifier: MIT */
/*
 * SIGBUS and SIGSEGV probing for tests (see testutil.h): sigaction around
 * one access, and siglongjmp out of the handler when the access faults.
 */
#include <setjmp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* Per thread: a probe only catches a fault of its own thread. */
static _Thread_local sigjmp_buf probe_env;
static _Thread_local volatile sig_atomic_t probe_armed;
static _Thread_local void *volatile probe_fault_addr;

static void probe_handler(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (!probe_armed) {
		/* Not a probe of this thread: let the fault kill the process,
		 * as it would have without the probe. */
		signal(sig, SIG_DFL);
		return;
	}
	probe_armed = 0;
	probe_fault_addr = si->si_addr;
	siglongjmp(probe_env, 1);
}

/*
 * The access itself, hidden from TSan: a probe observes what a mapping does
 * (tests race it against remaps on purpose, which TSan models as writes);
 * it is not a data access whose synchronisation TSan should check.
 */
#if defined(__clang__)
#define PROBE_NO_TSAN __attribute__((no_sanitize("thread"), noinline))
#else
#define PROBE_NO_TSAN __attribute__((no_sanitize_thread, noinline))
#endif

PROBE_NO_TSAN static void probe_access(volatile uint8_t *p, bool write, uint8_t *val)
{
	if (write) {
		*p = val ? *val : 0;
	} else {
		uint8_t v = *p;

		if (val)
			*val = v;
	}
}

static bool probe(int sig, void *addr, bool write, uint8_t *val)
{
	volatile uint8_t *p = addr;
	struct sigaction sa, old;
	bool faulted;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = probe_handler;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (sigaction(sig, &sa, &old))
		return false;
	probe_fault_addr = NULL;
	if (sigsetjmp(probe_env, 1) == 0) {
		probe_armed = 1;
		probe_access(p, write, val);
		probe_armed = 0;
		faulted = false;
	} else {
		faulted = true;
	}
	sigaction(sig, &old, NULL);
	if (faulted && probe_fault_addr != addr) {
		fprintf(stderr, "pm_test_sigbus: %s at %p while probing %p\n", strsignal(sig),
			probe_fault_addr, addr);
		abort();
	}
	return faulted;
}

bool pm_test_sigbus(void *addr, bool write, uint8_t *val)
{
	return probe(SIGBUS, addr, write, val);
}

bool pm_test_sigsegv(void *addr, bool write, uint8_t *val)
{
	return probe(SIGSEGV, addr, write, val);
}

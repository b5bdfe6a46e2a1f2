/* SPDX-License-Identifier: MIT */
/*
 * The host's abort on guest memory: SIGBUS on a registered range becomes
 * SIGSEGV (see host_abort.h for why).
 *
 * Objects: `slots`, a fixed table of ranges, of which the handler scans
 * the first `hiwater` (slots ever used). A slot is free when its end is 0.
 * Writers (register, unregister) hold ranges_lock and bracket their
 * stores with the slot's seqcount (odd while they write); the signal
 * handler reads a slot's range between two equal, even seqcount loads, so
 * it never matches a range made of one registration's start and another's
 * end. `prev_bus`, the SIGBUS disposition the handler replaced, is written
 * under ranges_lock before the handler is installed, read by the handler.
 *
 * The handler, for a fault (BUS_ADRERR) inside a range: sends the faulting
 * thread SIGSEGV with SEGV_ACCERR and the address (rt_tgsigqueueinfo: a
 * process may give its own threads a kernel-like siginfo), after making
 * sure it cannot be blocked or ignored (as the kernel forces a fault
 * signal): if it is, SIGSEGV goes back to its default action and is
 * unblocked in the context the handler returns to. The SIGSEGV arrives
 * while the handler runs (or as it returns); a handler of SIGSEGV that
 * returns makes the access fault again, as a real SIGSEGV would.
 * Anything else: the previous disposition (its handler, or the default
 * action, raised again so that the process dies of SIGBUS as it would
 * have).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>
#include "host/host_abort.h"

struct abort_slot {
	atomic_uint seq;                 /* odd while a writer changes the slot */
	_Atomic uintptr_t start, end;    /* end 0: free */
};

static pthread_mutex_t ranges_lock = PTHREAD_MUTEX_INITIALIZER;
static struct abort_slot slots[PM_HOST_ABORT_MAX_RANGES];
static unsigned int nr_used;         /* ranges_lock: slots in use */
static atomic_uint hiwater;          /* written under ranges_lock: slots ever used */
static struct sigaction prev_bus;    /* ranges_lock; read by the handler */
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

/* ---- the table ---- */

/* Every access to a slot is sequentially consistent (no fences, which
 * ThreadSanitizer does not model): a reader whose two seqcount loads read
 * the same even value read the range between them, and so before the
 * writer's first store or after its last. */
static void slot_write(struct abort_slot *s, uintptr_t start, uintptr_t end)
{
	unsigned int seq = atomic_load(&s->seq);

	atomic_store(&s->seq, seq + 1);
	atomic_store(&s->start, start);
	atomic_store(&s->end, end);
	atomic_store(&s->seq, seq + 2);
}

/* Async-signal-safe: loads only. */
static bool in_ranges(uintptr_t a)
{
	unsigned int n = atomic_load(&hiwater);

	for (unsigned int i = 0; i < n; i++) {
		struct abort_slot *s = &slots[i];
		unsigned int seq;
		uintptr_t start, end;

		do {
			seq = atomic_load(&s->seq);
			start = atomic_load(&s->start);
			end = atomic_load(&s->end);
		} while ((seq & 1) || atomic_load(&s->seq) != seq);
		if (end && a >= start && a < end)
			return true;
	}
	return false;
}

/* ---- the handler ---- */

static void send_segv(void *addr, ucontext_t *uc)
{
	struct sigaction cur;
	siginfo_t info;

	if (sigaction(SIGSEGV, NULL, &cur) == 0 &&
	    (cur.sa_handler == SIG_IGN || sigismember(&uc->uc_sigmask, SIGSEGV))) {
		struct sigaction dfl;

		memset(&dfl, 0, sizeof(dfl));
		dfl.sa_handler = SIG_DFL;
		sigaction(SIGSEGV, &dfl, NULL);
		sigdelset(&uc->uc_sigmask, SIGSEGV);
	}
	memset(&info, 0, sizeof(info));
	info.si_signo = SIGSEGV;
	info.si_code = SEGV_ACCERR;
	info.si_addr = addr;
	syscall(SYS_rt_tgsigqueueinfo, getpid(), (pid_t)syscall(SYS_gettid), SIGSEGV, &info);
}

/* The disposition we replaced. A default (or ignored, for a fault the
 * kernel would force) SIGBUS kills the process: restore the default and
 * raise it again, delivered when the handler returns. */
static void chain_bus(int sig, siginfo_t *si, void *uc)
{
	struct sigaction p = prev_bus;

	if ((p.sa_flags & SA_SIGINFO) && p.sa_sigaction) {
		p.sa_sigaction(sig, si, uc);
	} else if (p.sa_handler != SIG_DFL && p.sa_handler != SIG_IGN) {
		p.sa_handler(sig);
	} else if (p.sa_handler == SIG_DFL || si->si_code > 0) {
		struct sigaction dfl;

		memset(&dfl, 0, sizeof(dfl));
		dfl.sa_handler = SIG_DFL;
		sigaction(SIGBUS, &dfl, NULL);
		syscall(SYS_tgkill, getpid(), (pid_t)syscall(SYS_gettid), SIGBUS);
	}
}

static void abort_handler(int sig, siginfo_t *si, void *uc)
{
	int saved_errno = errno;

	if (si->si_code == BUS_ADRERR && in_ranges((uintptr_t)si->si_addr))
		send_segv(si->si_addr, uc);
	else
		chain_bus(sig, si, uc);
	errno = saved_errno;
}

/* Installs the handler unless it is the current one. ranges_lock. */
static int handler_install_locked(void)
{
	struct sigaction cur, sa;

	if (sigaction(SIGBUS, NULL, &cur))
		return -errno;
	if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == abort_handler)
		return 0;
	prev_bus = cur;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = abort_handler;
	sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	return sigaction(SIGBUS, &sa, NULL) ? -errno : 0;
}

/* ---- fork: the child's table is a copy; its lock must be free ---- */

static void abort_fork_prepare(void)
{
	pthread_mutex_lock(&ranges_lock);
}

static void abort_fork_release(void)
{
	pthread_mutex_unlock(&ranges_lock);
}

static void abort_fork_init(void)
{
	pthread_atfork(abort_fork_prepare, abort_fork_release, abort_fork_release);
}

/* ---- register, unregister ---- */

int pm_host_abort_register(const void *addr, size_t len, int *id)
{
	int r;

	pthread_once(&fork_once, abort_fork_init);
	*id = -1;
	if (!len)
		return 0;
	pthread_mutex_lock(&ranges_lock);
	r = handler_install_locked();
	if (!r && nr_used == PM_HOST_ABORT_MAX_RANGES)
		r = -ENOMEM;
	for (int i = 0; !r && i < PM_HOST_ABORT_MAX_RANGES; i++) {
		if (atomic_load_explicit(&slots[i].end, memory_order_relaxed))
			continue;
		slot_write(&slots[i], (uintptr_t)addr, (uintptr_t)addr + len);
		if ((unsigned int)i >= atomic_load(&hiwater))
			atomic_store(&hiwater, (unsigned int)i + 1);
		nr_used++;
		*id = i;
		break;
	}
	pthread_mutex_unlock(&ranges_lock);
	return r;
}

void pm_host_abort_unregister(int id)
{
	if (id < 0)
		return;
	PM_BUG_ON(id >= PM_HOST_ABORT_MAX_RANGES);
	pthread_mutex_lock(&ranges_lock);
	PM_BUG_ON(!atomic_load_explicit(&slots[id].end, memory_order_relaxed));
	slot_write(&slots[id], 0, 0);
	nr_used--;
	pthread_mutex_unlock(&ranges_lock);
}

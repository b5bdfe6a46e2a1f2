/* SPDX-License-Identifier: MIT */
/*
 * Kicks: is a signal pending for the thread entering KVM_RUN?
 *
 * KVM_RUN returns EINTR (KVM_EXIT_INTR) when a signal is pending as it
 * starts: that is how a VMM kicks a vCPU thread (it blocks the signal there
 * and sends it). The kernel reads a flag; user space must ask with
 * rt_sigpending, a system call (0.3-0.9 us on the machines privmem runs on,
 * several times a whole exit round trip). So the question is asked only
 * when the answer may have changed:
 *  - every signal sent from inside the process goes through libc's senders
 *    (pthread_kill, pthread_sigqueue, tgkill, raise, kill, sigqueue), which
 *    this file wraps: each bumps `kick_gen` *after* the signal is queued, so
 *    a KVM_RUN that starts after the sender returned sees the new
 *    generation and asks; this is exact for a VMM kicking its own vCPU
 *    threads (and for a thread signalling itself);
 *  - a signal from elsewhere (another process, a timer, a raw syscall) is
 *    seen by the first KVM_RUN at least KICK_RECHECK_NS after the last
 *    question (by the coarse clock: a few milliseconds at most): a kick's
 *    latency is bounded, and its guest still exits at its next exit
 *    meanwhile.
 * Built with a sanitizer (whose runtime intercepts the same functions) the
 * wrappers are left out and every KVM_RUN asks.
 *
 * kick_gen is a process-wide atomic counter; each vCPU keeps the generation
 * and the time of its last question (run_lock's, in struct pm_vcpu).
 */
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "vcpu/vcpu.h"

#define KICK_RECHECK_NS 100000ULL          /* 100 us */

#if defined(PM_ASAN) || defined(PM_TSAN) || defined(__SANITIZE_ADDRESS__) || \
	defined(__SANITIZE_THREAD__)
#define PM_KICK_WRAPPERS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
	__has_feature(memory_sanitizer)
#define PM_KICK_WRAPPERS 0
#endif
#endif
#ifndef PM_KICK_WRAPPERS
#define PM_KICK_WRAPPERS 1
#endif

static atomic_uint_fast64_t kick_gen = 1;  /* bumped after every in-process send */

/* rt_sigpending itself, into the kernel's 64-bit set: glibc 2.36's
 * sigisemptyset folds each word of a sigset_t into an int, so it calls a
 * set holding only signals 33-64 (every real-time signal, which VMMs use
 * for kicks) empty. */
bool pm_vcpu_signal_pending(void)
{
	uint64_t set = 0;

	return syscall(SYS_rt_sigpending, &set, sizeof(set)) == 0 && set != 0;
}

/* The coarse clock (a load from the vDSO page, no TSC read): its 1-4 ms
 * ticks are fine for a recheck interval. */
static uint64_t kick_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

bool pm_vcpu_kicked(struct pm_vcpu *vcpu)
{
	uint64_t gen = atomic_load_explicit(&kick_gen, memory_order_acquire);
	uint64_t now;

	if (!PM_KICK_WRAPPERS)
		return pm_vcpu_signal_pending();
	now = kick_now_ns();
	if (gen == vcpu->kick_gen && now - vcpu->kick_ns < KICK_RECHECK_NS)
		return false;
	/* Read before asking: a send that bumps after this read makes the
	 * next KVM_RUN ask again. A signal found pending stays so until the
	 * VMM consumes it, which no send tells us: then ask every time. */
	vcpu->kick_gen = gen;
	if (pm_vcpu_signal_pending()) {
		vcpu->kick_ns = now - KICK_RECHECK_NS;
		return true;
	}
	vcpu->kick_ns = now;
	return false;
}

#if PM_KICK_WRAPPERS

static void kick_sent(void)
{
	atomic_fetch_add_explicit(&kick_gen, 1, memory_order_release);
}

/* libc's function `name`, found once (the next definition after ours). */
#define REAL(name, type)                                                        \
	({                                                                      \
		static type _Atomic real_;                                      \
		type f_ = atomic_load_explicit(&real_, memory_order_relaxed);   \
		if (!f_) {                                                      \
			f_ = (type)dlsym(RTLD_NEXT, #name);                     \
			PM_BUG_ON(!f_);                                         \
			atomic_store_explicit(&real_, f_, memory_order_relaxed);\
		}                                                               \
		f_;                                                             \
	})

typedef int (*pthread_kill_fn)(pthread_t, int);
typedef int (*pthread_sigqueue_fn)(pthread_t, int, const union sigval);
typedef int (*tgkill_fn)(pid_t, pid_t, int);
typedef int (*raise_fn)(int);
typedef int (*kill_fn)(pid_t, int);
typedef int (*sigqueue_fn)(pid_t, int, const union sigval);

int pthread_kill(pthread_t thread, int sig)
{
	int r = REAL(pthread_kill, pthread_kill_fn)(thread, sig);

	kick_sent();
	return r;
}

int pthread_sigqueue(pthread_t thread, int sig, const union sigval value)
{
	int r = REAL(pthread_sigqueue, pthread_sigqueue_fn)(thread, sig, value);

	kick_sent();
	return r;
}

int tgkill(pid_t tgid, pid_t tid, int sig)
{
	int r = REAL(tgkill, tgkill_fn)(tgid, tid, sig);

	kick_sent();
	return r;
}

int raise(int sig)
{
	int r = REAL(raise, raise_fn)(sig);

	kick_sent();
	return r;
}

int kill(pid_t pid, int sig)
{
	int r = REAL(kill, kill_fn)(pid, sig);

	kick_sent();
	return r;
}

int sigqueue(pid_t pid, int sig, const union sigval value)
{
	int r = REAL(sigqueue, sigqueue_fn)(pid, sig, value);

	kick_sent();
	return r;
}

#endif

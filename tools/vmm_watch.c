/* SPDX-License-Identifier: MIT */
/*
 * The CLI's VMM, its watchdog (vmm.h): a run that makes no progress ends
 * with a clear failure instead of spinning for ever.
 *
 * A VM whose every fault is refused (a TDX module answering OPERAND_BUSY
 * to every SEAMCALL, say) leaves its vCPUs, or the build ioctl, retrying
 * inside privmem. privmem ends such a retry loop with EINTR when a signal
 * is pending for the thread, as Linux does; so the VMM blocks VMM_KICK_SIGNAL
 * in every thread (vmm_create blocks it in the creating thread, and the
 * threads it starts inherit the mask), and the watchdog, a thread of its
 * own for the VM's lifetime, sends it to every thread inside a watched
 * call once the VM has made no progress for `stall_s` seconds. Progress is
 * anything the guest or the VMM got done: an exit other than INTR or an
 * error, a page mapped, a conversion, a SYNC. A kicked thread sees EINTR
 * with m->stalled set and gives up with a message.
 *
 * Objects: struct vmm_watch inside struct vmm. Locks: watch.lock guards
 * the watched threads, and kicks are sent under it, so a thread that
 * leaves (and drains its pending kick) is never kicked after. stalled is an
 * atomic: set by the watchdog, read by the threads it kicks.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "vmm.h"

#define WATCH_TICK_MS 100

/* Everything the VM and the VMM count as getting something done. */
static uint64_t vmm_progress_mark(struct vmm *m)
{
	struct pm_vm_stats vs = { 0 };
	uint64_t sum = atomic_load(&m->conversions) + atomic_load(&m->progress);

	if (vmm_vm_stats(m, &vs))
		return sum;
	for (int e = 0; e < PM_STAT_NR_EXITS; e++)
		if (e != PM_STAT_EXITS_INTR && e != PM_STAT_EXITS_ERROR)
			sum += vs.exits[e];
	for (int l = 0; l < 3; l++)
		sum += vs.mapped[l];
	return sum;
}

static void watch_kick_locked(struct vmm_watch *w)
{
	for (int i = 0; i < VMM_WATCH_SLOTS; i++)
		if (w->in[i])
			pthread_kill(w->thread[i], VMM_KICK_SIGNAL);
}

static void *watch_main(void *arg)
{
	struct vmm *m = arg;
	struct vmm_watch *w = &m->watch;
	uint64_t last = vmm_progress_mark(m), still = 0;
	const struct timespec tick = { 0, WATCH_TICK_MS * 1000 * 1000 };

	pthread_mutex_lock(&w->lock);
	while (!w->stop) {
		uint64_t now;

		pthread_mutex_unlock(&w->lock);
		nanosleep(&tick, NULL);
		now = vmm_progress_mark(m);
		pthread_mutex_lock(&w->lock);
		if (now != last || !w->nr_in) {
			last = now;
			still = 0;
			continue;
		}
		still += WATCH_TICK_MS;
		if (still < (uint64_t)m->stall_s * 1000)
			continue;
		/* Kicked again each tick: a thread may be between two checks. */
		atomic_store(&m->stalled, true);
		watch_kick_locked(w);
		if (still >= 4ULL * m->stall_s * 1000 + 5000) {
			/* Nothing came back: a guest computing without exits. */
			fprintf(stderr, "privmem: no progress for %llu s and the vCPUs did not stop "
				"when kicked; giving up\n", (unsigned long long)(still / 1000));
			_exit(1);
		}
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

int vmm_watch_start(struct vmm *m)
{
	struct vmm_watch *w = &m->watch;
	sigset_t kick;
	int r;

	sigemptyset(&kick);
	sigaddset(&kick, VMM_KICK_SIGNAL);
	pthread_sigmask(SIG_BLOCK, &kick, NULL);
	pthread_mutex_init(&w->lock, NULL);
	w->initialised = true;
	r = pthread_create(&w->tid, NULL, watch_main, m);
	if (r)
		return -r;
	w->running = true;
	return 0;
}

void vmm_watch_stop(struct vmm *m)
{
	struct vmm_watch *w = &m->watch;

	if (w->running) {
		pthread_mutex_lock(&w->lock);
		w->stop = true;
		pthread_mutex_unlock(&w->lock);
		pthread_join(w->tid, NULL);
		w->running = false;
	}
	if (w->initialised)
		pthread_mutex_destroy(&w->lock);
	w->initialised = false;
}

int vmm_watch_enter(struct vmm *m)
{
	struct vmm_watch *w = &m->watch;
	int slot = -1;

	pthread_mutex_lock(&w->lock);
	for (int i = 0; i < VMM_WATCH_SLOTS && slot < 0; i++)
		if (!w->in[i])
			slot = i;
	if (slot >= 0) {
		w->thread[slot] = pthread_self();
		w->in[slot] = true;
		w->nr_in++;
	}
	pthread_mutex_unlock(&w->lock);
	return slot;
}

void vmm_watch_leave(struct vmm *m, int slot)
{
	struct vmm_watch *w = &m->watch;
	const struct timespec zero = { 0, 0 };
	sigset_t kick;

	if (slot < 0)
		return;
	pthread_mutex_lock(&w->lock);
	w->in[slot] = false;
	w->nr_in--;
	pthread_mutex_unlock(&w->lock);
	/* A kick sent while we were inside stays pending: drain it. */
	sigemptyset(&kick);
	sigaddset(&kick, VMM_KICK_SIGNAL);
	while (sigtimedwait(&kick, NULL, &zero) == VMM_KICK_SIGNAL)
		;
}

bool vmm_gave_up(struct vmm *m)
{
	return atomic_load(&m->stalled);
}

/* SPDX-License-Identifier: MIT */
/*
 * Host accesses to frames, checked by the simulated hardware (host_guard.h).
 *
 * Hardware that can refuse the host an access to a frame registers a guard:
 * pKVM's hypervisor (the host stage-2) and SEV-SNP's RMP (a host write to an
 * assigned frame is an RMP violation). Every host path that touches frame
 * contents asks pm_host_access() first; with no guard registered that is
 * one load.
 *
 * Guards are published under RCU: an access calls them inside a read-side
 * section (a guard may block on its own locks there), and unregistering
 * waits for a grace period, after which no call is in flight and the
 * guard's argument may be freed. guards_lock serialises (un)registration.
 */
#include "host/host_guard.h"
#include "lib/rcu.h"

#define MAX_GUARDS 4

static pthread_mutex_t guards_lock = PTHREAD_MUTEX_INITIALIZER;
static const struct pm_host_guard *_Atomic guards[MAX_GUARDS]; /* RCU; written under guards_lock */
static atomic_uint nr_guards;                           /* guards_lock; read without it */

int pm_host_guard_register(const struct pm_host_guard *g)
{
	int r = -EBUSY;

	pthread_mutex_lock(&guards_lock);
	for (unsigned int i = 0; i < MAX_GUARDS; i++) {
		if (!guards[i]) {
			pm_rcu_assign_pointer(guards[i], g);
			atomic_fetch_add(&nr_guards, 1);
			r = 0;
			break;
		}
	}
	pthread_mutex_unlock(&guards_lock);
	return r;
}

void pm_host_guard_unregister(const struct pm_host_guard *g)
{
	bool found = false;

	pthread_mutex_lock(&guards_lock);
	for (unsigned int i = 0; i < MAX_GUARDS; i++) {
		if (guards[i] == g) {
			pm_rcu_assign_pointer(guards[i], NULL);
			atomic_fetch_sub(&nr_guards, 1);
			found = true;
		}
	}
	pthread_mutex_unlock(&guards_lock);
	PM_BUG_ON(!found);
	pm_synchronize_rcu();
}

int pm_host_access(pm_pfn_t pfn, uint64_t n, bool write)
{
	int r = 0;

	if (pm_likely(!atomic_load_explicit(&nr_guards, memory_order_relaxed)))
		return 0;
	pm_rcu_read_lock();
	for (unsigned int i = 0; i < MAX_GUARDS && !r; i++) {
		const struct pm_host_guard *g = pm_rcu_dereference(guards[i]);

		if (g)
			r = g->access(g->arg, pfn, n, write);
	}
	pm_rcu_read_unlock();
	return r;
}

/* SPDX-License-Identifier: MIT */
/*
 * The RMM's granule descriptors (states, locks, invariants in rmm.h), the
 * delegation commands, and the host access guard: a host access to a
 * granule that is not NS is a granule protection fault (GPC), refused and
 * counted, as the RMP refuses the host for SNP.
 *
 * A descriptor is one 32-bit atomic word: bit 0 the lock, bits 1-3 the
 * state, bits 8-31 the refcount. One process-wide table (struct rmm),
 * reference counted by the realm VMs; vmid_lock (a leaf) guards the VMIDs
 * in use. The counters (commands by kind, faults, extensions) are the
 * machine's: process-wide atomics that outlive the RMM.
 */
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include "host/host_guard.h"
#include "host/pool.h"
#include "lib/trace.h"
#include "models/cca/rmm_internal.h"

#define GR_LOCK         1u
#define GR_STATE_SHIFT  1
#define GR_STATE_MASK   (7u << GR_STATE_SHIFT)
#define GR_REF_SHIFT    8
#define GR_REF_ONE      (1u << GR_REF_SHIFT)

struct rmm {
	_Atomic uint32_t *g;             /* one word per frame */
	uint64_t nr;                     /* frames covered; immutable */
	struct pm_host_guard guard;
	pthread_mutex_t vmid_lock;       /* a leaf */
	uint64_t vmids[65536 / 64];      /* vmid_lock */
};

/* The machine's counters: for the whole process, they outlive the RMM. */
static atomic_uint_fast64_t stat_gpf, stat_rim_extends, stat_tlbis;
static atomic_uint_fast64_t stat_ok[RMI_NR_CMDS], stat_failed[RMI_NR_CMDS];

static pthread_mutex_t rmm_ref_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rmm *the_rmm;          /* rmm_ref_lock to create/destroy; immutable while used */
static unsigned int rmm_users;       /* rmm_ref_lock */

const char *const rmi_cmd_names[RMI_NR_CMDS] = {
	[RMI_CMD_GRANULE_DELEGATE] = "granule_delegate",
	[RMI_CMD_GRANULE_UNDELEGATE] = "granule_undelegate",
	[RMI_CMD_REALM_CREATE] = "realm_create",
	[RMI_CMD_REALM_ACTIVATE] = "realm_activate",
	[RMI_CMD_REALM_DESTROY] = "realm_destroy",
	[RMI_CMD_REC_CREATE] = "rec_create",
	[RMI_CMD_REC_DESTROY] = "rec_destroy",
	[RMI_CMD_RTT_CREATE] = "rtt_create",
	[RMI_CMD_RTT_DESTROY] = "rtt_destroy",
	[RMI_CMD_RTT_FOLD] = "rtt_fold",
	[RMI_CMD_RTT_INIT_RIPAS] = "rtt_init_ripas",
	[RMI_CMD_RTT_SET_RIPAS] = "rtt_set_ripas",
	[RMI_CMD_RTT_READ_ENTRY] = "rtt_read_entry",
	[RMI_CMD_DATA_CREATE] = "data_create",
	[RMI_CMD_DATA_CREATE_UNKNOWN] = "data_create_unknown",
	[RMI_CMD_DATA_DESTROY] = "data_destroy",
	[RMI_CMD_RTT_MAP_UNPROTECTED] = "rtt_map_unprotected",
	[RMI_CMD_RTT_UNMAP_UNPROTECTED] = "rtt_unmap_unprotected",
};

static int rmm_guard_access(void *arg, pm_pfn_t pfn, uint64_t n, bool write)
{
	return rmm_host_access(pfn, n, write);
}

static struct rmm *rmm_create(void)
{
	struct rmm *r = pm_zalloc(sizeof(*r));

	if (!r)
		return NULL;
	r->nr = pm_pool_nr_frames();
	r->g = calloc(r->nr, sizeof(r->g[0]));      /* all NS, unlocked */
	if (!r->g) {
		free(r);
		return NULL;
	}
	pthread_mutex_init(&r->vmid_lock, NULL);
	r->guard.access = rmm_guard_access;
	return r;
}

static void rmm_free(struct rmm *r)
{
	pthread_mutex_destroy(&r->vmid_lock);
	free(r->g);
	free(r);
}

static void granule_counts(struct rmm *r, uint64_t counts[GRANULE_NR_STATES]);

int rmm_get(void)
{
	int err = 0;

	pthread_mutex_lock(&rmm_ref_lock);
	if (!the_rmm) {
		struct rmm *r = rmm_create();

		err = r ? 0 : -ENOMEM;
		if (r) {
			the_rmm = r;     /* published before the guard can call in */
			err = pm_host_guard_register(&r->guard);
			if (err) {
				the_rmm = NULL;
				rmm_free(r);
			}
		}
	}
	if (!err)
		rmm_users++;
	pthread_mutex_unlock(&rmm_ref_lock);
	return err;
}

void rmm_put(void)
{
	struct rmm *r = NULL;

	pthread_mutex_lock(&rmm_ref_lock);
	PM_BUG_ON(!rmm_users);
	if (!--rmm_users) {
		uint64_t counts[GRANULE_NR_STATES];

		r = the_rmm;
		granule_counts(r, counts);
		if (counts[GRANULE_NS] != r->nr)
			pm_fatal("rmm: %" PRIu64 " granules not NS when the last realm went",
				 r->nr - counts[GRANULE_NS]);
		pm_host_guard_unregister(&r->guard);   /* waits for calls in flight */
		the_rmm = NULL;
	}
	pthread_mutex_unlock(&rmm_ref_lock);
	if (r)
		rmm_free(r);
}

static inline struct rmm *rmm(void)
{
	PM_BUG_ON(!the_rmm);
	return the_rmm;
}

/* ---- descriptors ---- */

static inline _Atomic uint32_t *gw(pm_pfn_t pfn)
{
	return &rmm()->g[pfn];
}

static inline enum granule_state word_state(uint32_t w)
{
	return (enum granule_state)((w & GR_STATE_MASK) >> GR_STATE_SHIFT);
}

bool granule_addr_ok(uint64_t addr)
{
	return PM_ALIGNED(addr, PM_PAGE_SIZE) && granule_pfn(addr) < rmm()->nr;
}

bool granule_lock(pm_pfn_t pfn, enum granule_state expected)
{
	_Atomic uint32_t *w = gw(pfn);

	for (unsigned int spins = 0;; spins++) {
		uint32_t old = atomic_load_explicit(w, memory_order_relaxed);

		if (!(old & GR_LOCK) &&
		    atomic_compare_exchange_weak_explicit(w, &old, old | GR_LOCK, memory_order_acquire,
							  memory_order_relaxed))
			break;
		if (spins > 64)
			sched_yield();    /* the holder may be preempted: 2 cores, many threads */
	}
	if (word_state(atomic_load_explicit(w, memory_order_relaxed)) == expected)
		return true;
	granule_unlock(pfn);
	return false;
}

void granule_unlock(pm_pfn_t pfn)
{
	PM_BUG_ON(!(atomic_load(gw(pfn)) & GR_LOCK));
	atomic_fetch_and_explicit(gw(pfn), ~GR_LOCK, memory_order_release);
}

void granule_set_state(pm_pfn_t pfn, enum granule_state st)
{
	uint32_t w = atomic_load(gw(pfn));

	PM_BUG_ON(!(w & GR_LOCK));
	PM_BUG_ON(w >> GR_REF_SHIFT);    /* a state changes only with no references */
	atomic_store_explicit(gw(pfn), GR_LOCK | ((uint32_t)st << GR_STATE_SHIFT), memory_order_release);
}

void granule_refcount_inc(pm_pfn_t pfn, int delta)
{
	uint32_t w = atomic_load(gw(pfn));

	PM_BUG_ON(!(w & GR_LOCK));
	PM_BUG_ON(delta < 0 && (w >> GR_REF_SHIFT) < (uint32_t)-delta);
	atomic_fetch_add_explicit(gw(pfn), (uint32_t)delta * GR_REF_ONE, memory_order_relaxed);
}

unsigned int granule_refcount_locked(pm_pfn_t pfn)
{
	return atomic_load(gw(pfn)) >> GR_REF_SHIFT;
}

uint64_t granule_lock_two(uint64_t a, enum granule_state sa, uint64_t b, enum granule_state sb)
{
	uint64_t lo = a < b ? a : b, hi = a < b ? b : a;
	enum granule_state slo = a < b ? sa : sb, shi = a < b ? sb : sa;

	if (!granule_addr_ok(a) || !granule_addr_ok(b) || a == b)
		return RMI_ERROR_INPUT;
	if (!granule_lock(granule_pfn(lo), slo))
		return RMI_ERROR_INPUT;
	if (!granule_lock(granule_pfn(hi), shi)) {
		granule_unlock(granule_pfn(lo));
		return RMI_ERROR_INPUT;
	}
	return RMI_SUCCESS;
}

void granule_zero(pm_pfn_t pfn)
{
	PM_BUG_ON(!(atomic_load(gw(pfn)) & GR_LOCK));
	memset(granule_map(pfn), 0, PM_PAGE_SIZE);
}

enum granule_state rmm_granule_state(pm_pfn_t pfn)
{
	return pfn < rmm()->nr ? word_state(atomic_load_explicit(gw(pfn), memory_order_acquire))
			       : GRANULE_NS;
}

unsigned int rmm_granule_refcount(pm_pfn_t pfn)
{
	return atomic_load(gw(pfn)) >> GR_REF_SHIFT;
}

static void granule_counts(struct rmm *r, uint64_t counts[GRANULE_NR_STATES])
{
	memset(counts, 0, sizeof(uint64_t) * GRANULE_NR_STATES);
	for (uint64_t p = 0; r && p < r->nr; p++)
		counts[word_state(atomic_load_explicit(&r->g[p], memory_order_relaxed))]++;
}

void rmm_granule_counts(uint64_t counts[GRANULE_NR_STATES])
{
	pthread_mutex_lock(&rmm_ref_lock);      /* the RMM may go meanwhile */
	granule_counts(the_rmm, counts);
	pthread_mutex_unlock(&rmm_ref_lock);
}

/* ---- the host's accesses ---- */

int rmm_host_access(pm_pfn_t pfn, uint64_t n, bool write)
{
	struct rmm *r = rmm();
	uint64_t end = PM_MIN(pfn + n, r->nr);

	for (pm_pfn_t p = pfn; p < end; p++) {
		if (word_state(atomic_load_explicit(&r->g[p], memory_order_acquire)) != GRANULE_NS) {
			atomic_fetch_add_explicit(&stat_gpf, 1, memory_order_relaxed);
			return -EFAULT;
		}
	}
	return 0;
}

/* ---- GRANULE_DELEGATE / UNDELEGATE ---- */

static uint64_t granule_delegate(uint64_t addr)
{
	pm_pfn_t pfn = granule_pfn(addr);

	if (!granule_addr_ok(addr) || !granule_lock(pfn, GRANULE_NS))
		return RMI_ERROR_INPUT;
	/* Now in the Realm PAS: the host can no longer reach it, and the
	 * invariant wants it zero before anyone else locks it. */
	granule_set_state(pfn, GRANULE_DELEGATED);
	granule_zero(pfn);
	granule_unlock(pfn);
	return RMI_SUCCESS;
}

uint64_t rmi_granule_delegate(uint64_t addr)
{
	uint64_t t0 = pm_trace_begin(), r = granule_delegate(addr);

	rmm_done(RMI_CMD_GRANULE_DELEGATE, t0, addr, 0, -1, r);
	return r;
}

static uint64_t granule_undelegate(uint64_t addr)
{
	pm_pfn_t pfn = granule_pfn(addr);

	if (!granule_addr_ok(addr) || !granule_lock(pfn, GRANULE_DELEGATED))
		return RMI_ERROR_INPUT;
	granule_set_state(pfn, GRANULE_NS);      /* zero already: the invariant */
	granule_unlock(pfn);
	return RMI_SUCCESS;
}

uint64_t rmi_granule_undelegate(uint64_t addr)
{
	uint64_t t0 = pm_trace_begin(), r = granule_undelegate(addr);

	rmm_done(RMI_CMD_GRANULE_UNDELEGATE, t0, addr, 0, -1, r);
	return r;
}

/* ---- VMIDs and statistics ---- */

bool rmm_vmid_claim(uint16_t vmid)
{
	struct rmm *r = rmm();
	bool ok;

	pthread_mutex_lock(&r->vmid_lock);
	ok = !(r->vmids[vmid / 64] & (1ULL << (vmid % 64)));
	if (ok)
		r->vmids[vmid / 64] |= 1ULL << (vmid % 64);
	pthread_mutex_unlock(&r->vmid_lock);
	return ok;
}

void rmm_vmid_release(uint16_t vmid)
{
	struct rmm *r = rmm();

	pthread_mutex_lock(&r->vmid_lock);
	PM_BUG_ON(!(r->vmids[vmid / 64] & (1ULL << (vmid % 64))));
	r->vmids[vmid / 64] &= ~(1ULL << (vmid % 64));
	pthread_mutex_unlock(&r->vmid_lock);
}

/* The names in traces: the specification's. */
static const char *const rmi_trace_names[RMI_NR_CMDS] = {
	[RMI_CMD_GRANULE_DELEGATE] = "RMI_GRANULE_DELEGATE",
	[RMI_CMD_GRANULE_UNDELEGATE] = "RMI_GRANULE_UNDELEGATE",
	[RMI_CMD_REALM_CREATE] = "RMI_REALM_CREATE",
	[RMI_CMD_REALM_ACTIVATE] = "RMI_REALM_ACTIVATE",
	[RMI_CMD_REALM_DESTROY] = "RMI_REALM_DESTROY",
	[RMI_CMD_REC_CREATE] = "RMI_REC_CREATE",
	[RMI_CMD_REC_DESTROY] = "RMI_REC_DESTROY",
	[RMI_CMD_RTT_CREATE] = "RMI_RTT_CREATE",
	[RMI_CMD_RTT_DESTROY] = "RMI_RTT_DESTROY",
	[RMI_CMD_RTT_FOLD] = "RMI_RTT_FOLD",
	[RMI_CMD_RTT_INIT_RIPAS] = "RMI_RTT_INIT_RIPAS",
	[RMI_CMD_RTT_SET_RIPAS] = "RMI_RTT_SET_RIPAS",
	[RMI_CMD_RTT_READ_ENTRY] = "RMI_RTT_READ_ENTRY",
	[RMI_CMD_DATA_CREATE] = "RMI_DATA_CREATE",
	[RMI_CMD_DATA_CREATE_UNKNOWN] = "RMI_DATA_CREATE_UNKNOWN",
	[RMI_CMD_DATA_DESTROY] = "RMI_DATA_DESTROY",
	[RMI_CMD_RTT_MAP_UNPROTECTED] = "RMI_RTT_MAP_UNPROTECTED",
	[RMI_CMD_RTT_UNMAP_UNPROTECTED] = "RMI_RTT_UNMAP_UNPROTECTED",
};

void rmm_done(enum rmi_cmd cmd, uint64_t t0, uint64_t addr, uint64_t ipa, int level, uint64_t result)
{
	atomic_fetch_add_explicit(result == RMI_SUCCESS ? &stat_ok[cmd] : &stat_failed[cmd], 1,
				  memory_order_relaxed);
	pm_trace_end(t0, PM_TRACE_CCA, rmi_trace_names[cmd], addr, ipa, (uint64_t)(int64_t)level, result);
}

void rmm_count_rim(void)
{
	atomic_fetch_add_explicit(&stat_rim_extends, 1, memory_order_relaxed);
}

void rmm_count_tlbi(void)
{
	atomic_fetch_add_explicit(&stat_tlbis, 1, memory_order_relaxed);
}

void rmm_get_stats(struct rmm_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->gpf = atomic_load(&stat_gpf);
	st->rim_extends = atomic_load(&stat_rim_extends);
	st->tlbis = atomic_load(&stat_tlbis);
	for (int i = 0; i < RMI_NR_CMDS; i++) {
		st->commands[i] = atomic_load(&stat_ok[i]);
		st->failed[i] = atomic_load(&stat_failed[i]);
	}
}

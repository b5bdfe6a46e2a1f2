/* SPDX-License-Identifier: MIT */
/*
 * The simulated RMP (states, entry format and locking in rmp.h).
 *
 * Each instruction is one function of the same shape: check its operands,
 * take the stripe of the frame's 2M region, check every entry it depends
 * on in the hardware's order of failures, then commit. Entries are written
 * with release and read with acquire; PSMASH writes the 511 new 4K entries
 * before it turns the head into a 4K entry, so a lock-free reader that
 * finds no 2M head finds the split entries complete. RMPUPDATE, PSMASH and
 * PVALIDATE are traced (lib/trace.h) with their result.
 */
#include <inttypes.h>
#include <pthread.h>
#include "host/host_guard.h"
#include "host/pool.h"
#include "lib/trace.h"
#include "models/snp/rmp.h"

#define RMP_LOCKS 256            /* stripes, by 2M region */

struct rmp {
	_Atomic uint64_t *e;         /* one word per frame; region stripe for writes */
	uint64_t nr;                 /* frames covered; immutable */
	pthread_mutex_t locks[RMP_LOCKS];
	struct pm_host_guard guard;  /* registered while the RMP exists */
	atomic_uint_fast64_t assigned_4k, assigned_2m;
	atomic_uint_fast64_t updates, update_fails, psmash, pvalidates;
	atomic_uint_fast64_t violations, reads_refused;
	_Atomic pm_pfn_t first_violation;
};

static pthread_mutex_t rmp_ref_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rmp *the_rmp;          /* rmp_ref_lock to create/destroy; immutable while users > 0 */
static unsigned int rmp_nr_users;    /* rmp_ref_lock */

static int rmp_guard_access(void *arg, pm_pfn_t pfn, uint64_t n, bool write)
{
	return rmp_host_access(pfn, n, write);
}

static struct rmp *rmp_create(void)
{
	struct rmp *r = pm_zalloc(sizeof(*r));

	if (!r)
		return NULL;
	r->nr = pm_pool_nr_frames();
	r->e = calloc(r->nr, sizeof(r->e[0]));  /* large: lazily zeroed pages */
	if (!r->e) {
		free(r);
		return NULL;
	}
	for (unsigned int i = 0; i < RMP_LOCKS; i++)
		pthread_mutex_init(&r->locks[i], NULL);
	r->first_violation = PM_PFN_INVALID;
	r->guard.access = rmp_guard_access;
	return r;
}

static void rmp_free(struct rmp *r)
{
	for (unsigned int i = 0; i < RMP_LOCKS; i++)
		pthread_mutex_destroy(&r->locks[i]);
	free(r->e);
	free(r);
}

int rmp_get(void)
{
	int err = 0;

	pthread_mutex_lock(&rmp_ref_lock);
	if (!the_rmp) {
		struct rmp *r = rmp_create();

		err = r ? 0 : -ENOMEM;
		if (r) {
			the_rmp = r;    /* published before the guard can call in */
			err = pm_host_guard_register(&r->guard);
			if (err) {
				the_rmp = NULL;
				rmp_free(r);
			}
		}
	}
	if (!err)
		rmp_nr_users++;
	pthread_mutex_unlock(&rmp_ref_lock);
	return err;
}

void rmp_put(void)
{
	struct rmp *r = NULL;

	pthread_mutex_lock(&rmp_ref_lock);
	PM_BUG_ON(!rmp_nr_users);
	if (!--rmp_nr_users) {
		r = the_rmp;
		if (atomic_load(&r->assigned_4k) || atomic_load(&r->assigned_2m))
			pm_fatal("rmp: %" PRIu64 " 4K and %" PRIu64 " 2M entries still assigned "
				 "when the last SNP VM went", (uint64_t)atomic_load(&r->assigned_4k),
				 (uint64_t)atomic_load(&r->assigned_2m));
		pm_host_guard_unregister(&r->guard);   /* waits for calls in flight */
		the_rmp = NULL;
	}
	pthread_mutex_unlock(&rmp_ref_lock);
	if (r)
		rmp_free(r);
}

unsigned int rmp_users(void)
{
	unsigned int n;

	pthread_mutex_lock(&rmp_ref_lock);
	n = rmp_nr_users;
	pthread_mutex_unlock(&rmp_ref_lock);
	return n;
}

/* ---- entries ---- */

static inline struct rmp *rmp(void)
{
	PM_BUG_ON(!the_rmp);
	return the_rmp;
}

static inline pm_pfn_t region_of(pm_pfn_t pfn)
{
	return PM_ALIGN_DOWN(pfn, RMP_PAGES_2M);
}

static pthread_mutex_t *region_lock(struct rmp *r, pm_pfn_t pfn)
{
	return &r->locks[(pfn / RMP_PAGES_2M) % RMP_LOCKS];
}

static uint64_t load(struct rmp *r, pm_pfn_t pfn)
{
	return atomic_load_explicit(&r->e[pfn], memory_order_acquire);
}

static void store(struct rmp *r, pm_pfn_t pfn, uint64_t v)
{
	atomic_store_explicit(&r->e[pfn], v, memory_order_release);
}

static uint64_t make_entry(const struct rmp_state *st)
{
	if (!st->assigned)
		return 0;
	return RMP_ASSIGNED | (st->size_2m ? RMP_SIZE_2M : 0) | (st->immutable ? RMP_IMMUTABLE : 0) |
	       (st->gpa & RMP_GPA_MASK) | ((uint64_t)st->asid << RMP_ASID_SHIFT);
}

/* The 2M head governing pfn's region, or 0 if the region has none. */
static uint64_t head_2m(struct rmp *r, pm_pfn_t pfn)
{
	uint64_t h = load(r, region_of(pfn));

	return rmp_is_assigned(h) && rmp_is_2m(h) ? h : 0;
}

static uint64_t effective(struct rmp *r, pm_pfn_t pfn)
{
	uint64_t h = head_2m(r, pfn);

	if (h)  /* the 2M entry, with the gpa of this frame */
		return h + ((pfn - region_of(pfn)) << PM_PAGE_SHIFT);
	return load(r, pfn);
}

static void count_entry(struct rmp *r, uint64_t e, int delta)
{
	if (rmp_is_assigned(e))
		atomic_fetch_add_explicit(rmp_is_2m(e) ? &r->assigned_2m : &r->assigned_4k,
					  (uint64_t)(int64_t)delta, memory_order_relaxed);
}

static bool any_assigned(struct rmp *r, pm_pfn_t pfn2m)
{
	for (uint64_t i = 0; i < RMP_PAGES_2M; i++)
		if (rmp_is_assigned(load(r, pfn2m + i)))
			return true;
	return false;
}

uint64_t rmp_entry(pm_pfn_t pfn)
{
	struct rmp *r = rmp();

	return pfn < r->nr ? load(r, pfn) : 0;
}

uint64_t rmp_effective(pm_pfn_t pfn)
{
	struct rmp *r = rmp();

	return pfn < r->nr ? effective(r, pfn) : 0;
}

bool rmp_region_unassigned(pm_pfn_t pfn2m)
{
	struct rmp *r = rmp();

	PM_BUG_ON(!PM_ALIGNED(pfn2m, RMP_PAGES_2M));
	return pfn2m + RMP_PAGES_2M <= r->nr && !any_assigned(r, pfn2m);
}

bool rmp_guest_may_access(pm_pfn_t pfn, unsigned int asid, uint64_t gpa)
{
	uint64_t e = rmp_effective(pfn);

	return rmp_is_assigned(e) && rmp_is_validated(e) && rmp_asid(e) == asid &&
	       rmp_gpa(e) == (gpa & RMP_GPA_MASK);
}

/* ---- RMPUPDATE ---- */

static enum rmp_result update_check_operands(struct rmp *r, pm_pfn_t pfn, const struct rmp_state *st)
{
	if (pfn >= r->nr)
		return RMP_FAIL_INPUT;
	if (st->size_2m && (!PM_ALIGNED(pfn, RMP_PAGES_2M) || pfn + RMP_PAGES_2M > r->nr))
		return RMP_FAIL_INPUT;
	if (st->assigned && (!st->asid || st->asid > RMP_MAX_ASID ||
			     (st->size_2m && !PM_ALIGNED(st->gpa, RMP_PAGES_2M << PM_PAGE_SHIFT))))
		return RMP_FAIL_INPUT;
	return RMP_OK;
}

/* The checks against the current entries; the region's stripe held. */
static enum rmp_result update_check_locked(struct rmp *r, pm_pfn_t pfn, const struct rmp_state *st)
{
	uint64_t cur = load(r, pfn);
	uint64_t head = head_2m(r, pfn);

	if (!st->size_2m && head)
		return RMP_FAIL_OVERLAP;        /* a 4K entry inside a 2M one: PSMASH first */
	if (rmp_is_vmsa(cur))
		return RMP_FAIL_INUSE;
	if (rmp_is_immutable(cur))
		return RMP_FAIL_PERMISSION;
	if (st->size_2m && st->assigned && any_assigned(r, pfn))
		return RMP_FAIL_OVERLAP;        /* 2M over assigned 4K entries */
	if (st->size_2m && !st->assigned && !head && any_assigned(r, pfn))
		return RMP_FAIL_OVERLAP;        /* unassigning 2M over 4K entries */
	return RMP_OK;
}

enum rmp_result rmp_update(pm_pfn_t pfn, const struct rmp_state *st)
{
	uint64_t t0 = pm_trace_begin();
	struct rmp *r = rmp();
	enum rmp_result res = update_check_operands(r, pfn, st);
	uint64_t old, new = make_entry(st);

	if (res == RMP_OK) {
		pthread_mutex_lock(region_lock(r, pfn));
		res = update_check_locked(r, pfn, st);
		if (res == RMP_OK) {
			old = load(r, pfn);
			store(r, pfn, new);     /* RMPUPDATE clears VALIDATED */
			count_entry(r, old, -1);
			count_entry(r, new, 1);
		}
		pthread_mutex_unlock(region_lock(r, pfn));
	}
	atomic_fetch_add_explicit(res == RMP_OK ? &r->updates : &r->update_fails, 1,
				  memory_order_relaxed);
	pm_trace_end(t0, PM_TRACE_SNP, "RMPUPDATE", pfn, st->gpa, st->size_2m, res);
	return res;
}

/* ---- PSMASH ---- */

static enum rmp_result psmash(pm_pfn_t pfn);

enum rmp_result rmp_psmash(pm_pfn_t pfn)
{
	uint64_t t0 = pm_trace_begin();
	enum rmp_result res = psmash(pfn);

	pm_trace_end(t0, PM_TRACE_SNP, "PSMASH", pfn, 0, 1, res);
	return res;
}

static enum rmp_result psmash(pm_pfn_t pfn)
{
	struct rmp *r = rmp();
	enum rmp_result res = RMP_OK;
	uint64_t head;

	if (pfn >= r->nr || !PM_ALIGNED(pfn, RMP_PAGES_2M))
		return RMP_FAIL_INPUT;
	pthread_mutex_lock(region_lock(r, pfn));
	head = head_2m(r, pfn);
	if (!head) {
		res = RMP_FAIL_BADADDR;
	} else {
		uint64_t e4k = head & ~RMP_SIZE_2M;     /* VALIDATED and the rest kept */

		for (uint64_t i = 1; i < RMP_PAGES_2M; i++)
			store(r, pfn + i, e4k + (i << PM_PAGE_SHIFT));
		store(r, pfn, e4k);
		atomic_fetch_sub_explicit(&r->assigned_2m, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&r->assigned_4k, RMP_PAGES_2M, memory_order_relaxed);
		atomic_fetch_add_explicit(&r->psmash, 1, memory_order_relaxed);
	}
	pthread_mutex_unlock(region_lock(r, pfn));
	return res;
}

/* ---- PVALIDATE ---- */

static enum pvalidate_result pvalidate_check_locked(struct rmp *r, pm_pfn_t pfn, unsigned int asid,
						    uint64_t gpa, bool size_2m)
{
	uint64_t e = effective(r, pfn);

	if (!rmp_is_assigned(e) || rmp_asid(e) != asid || rmp_gpa(e) != (gpa & RMP_GPA_MASK))
		return RMP_FAULT_OWNER;
	if (size_2m && !rmp_is_2m(load(r, pfn)))
		return PVALIDATE_FAIL_SIZEMISMATCH;
	if (!size_2m && head_2m(r, pfn))
		return RMP_FAULT_SIZE;
	return PVALIDATE_OK;
}

static enum pvalidate_result pvalidate(pm_pfn_t pfn, unsigned int asid, uint64_t gpa, bool size_2m,
				       bool validate);

enum pvalidate_result rmp_pvalidate(pm_pfn_t pfn, unsigned int asid, uint64_t gpa, bool size_2m,
				    bool validate)
{
	uint64_t t0 = pm_trace_begin();
	enum pvalidate_result res = pvalidate(pfn, asid, gpa, size_2m, validate);

	pm_trace_end(t0, PM_TRACE_SNP, "PVALIDATE", pfn, gpa, size_2m, res);
	return res;
}

static enum pvalidate_result pvalidate(pm_pfn_t pfn, unsigned int asid, uint64_t gpa, bool size_2m,
				       bool validate)
{
	struct rmp *r = rmp();
	enum pvalidate_result res;
	uint64_t e;

	if (pfn >= r->nr)
		return RMP_FAULT_OWNER;
	if (size_2m && !PM_ALIGNED(gpa, RMP_PAGES_2M << PM_PAGE_SHIFT))
		return PVALIDATE_FAIL_INPUT;
	if (size_2m && !PM_ALIGNED(pfn, RMP_PAGES_2M))
		return PVALIDATE_FAIL_SIZEMISMATCH;   /* no 2M entry starts there */
	pthread_mutex_lock(region_lock(r, pfn));
	res = pvalidate_check_locked(r, pfn, asid, gpa, size_2m);
	if (res == PVALIDATE_OK) {
		e = load(r, pfn);
		if (rmp_is_validated(e) == validate) {
			res = PVALIDATE_NOUPDATE;
		} else {
			store(r, pfn, validate ? e | RMP_VALIDATED : e & ~RMP_VALIDATED);
			atomic_fetch_add_explicit(&r->pvalidates, 1, memory_order_relaxed);
		}
	}
	pthread_mutex_unlock(region_lock(r, pfn));
	return res;
}

/* ---- the host-write check ---- */

static void record_violation(struct rmp *r, pm_pfn_t pfn)
{
	pm_pfn_t none = PM_PFN_INVALID;

	atomic_fetch_add_explicit(&r->violations, 1, memory_order_relaxed);
	atomic_compare_exchange_strong(&r->first_violation, &none, pfn);
}

int rmp_host_access(pm_pfn_t pfn, uint64_t n, bool write)
{
	struct rmp *r = rmp();
	uint64_t end = PM_MIN(pfn + n, r->nr);

	for (pm_pfn_t p = pfn; p < end; p++) {
		if (!rmp_is_assigned(effective(r, p)))
			continue;
		if (write)
			record_violation(r, p);
		else
			atomic_fetch_add_explicit(&r->reads_refused, 1, memory_order_relaxed);
		return -EFAULT;
	}
	return 0;
}

void rmp_get_stats(struct rmp_stats *st)
{
	struct rmp *r = rmp();

	st->assigned_4k = atomic_load(&r->assigned_4k);
	st->assigned_2m = atomic_load(&r->assigned_2m);
	st->rmpupdates = atomic_load(&r->updates);
	st->rmpupdate_fails = atomic_load(&r->update_fails);
	st->psmash = atomic_load(&r->psmash);
	st->pvalidates = atomic_load(&r->pvalidates);
	st->violations = atomic_load(&r->violations);
	st->reads_refused = atomic_load(&r->reads_refused);
	st->first_violation = atomic_load(&r->first_violation);
}

/* ---- firmware transitions ---- */

/* One 4K entry outside any 2M one, changed by the firmware under the
 * region's stripe: fn checks the old entry and returns the new one, or ~0
 * to refuse. */
static enum rmp_result fw_change(pm_pfn_t pfn, uint64_t (*fn)(uint64_t old, const void *arg),
				 const void *arg)
{
	struct rmp *r = rmp();
	enum rmp_result res = RMP_FAIL_INPUT;
	uint64_t old, new;

	if (pfn >= r->nr)
		return RMP_FAIL_INPUT;
	pthread_mutex_lock(region_lock(r, pfn));
	old = load(r, pfn);
	new = head_2m(r, pfn) ? ~0ULL : fn(old, arg);
	if (new != ~0ULL) {
		store(r, pfn, new);
		count_entry(r, old, -1);
		count_entry(r, new, 1);
		res = RMP_OK;
	}
	pthread_mutex_unlock(region_lock(r, pfn));
	return res;
}

static uint64_t fw_launch_validate(uint64_t old, const void *arg)
{
	if (!rmp_is_assigned(old) || !rmp_is_immutable(old) || rmp_is_validated(old) || rmp_is_vmsa(old))
		return ~0ULL;
	return (old & ~RMP_IMMUTABLE) | RMP_VALIDATED;   /* pre-guest -> guest-valid */
}

enum rmp_result rmp_fw_launch_validate(pm_pfn_t pfn)
{
	return fw_change(pfn, fw_launch_validate, NULL);
}

struct vmsa_arg { uint64_t gpa; unsigned int asid; };

static uint64_t fw_make_vmsa(uint64_t old, const void *arg)
{
	const struct vmsa_arg *a = arg;

	if (rmp_is_assigned(old) || !a->asid || a->asid > RMP_MAX_ASID)
		return ~0ULL;
	return RMP_ASSIGNED | RMP_IMMUTABLE | RMP_VALIDATED | RMP_VMSA | (a->gpa & RMP_GPA_MASK) |
	       ((uint64_t)a->asid << RMP_ASID_SHIFT);
}

enum rmp_result rmp_fw_make_vmsa(pm_pfn_t pfn, uint64_t gpa, unsigned int asid)
{
	struct vmsa_arg a = { gpa, asid };

	return fw_change(pfn, fw_make_vmsa, &a);
}

static uint64_t fw_reclaim(uint64_t old, const void *arg)
{
	if (!rmp_is_assigned(old) || !(rmp_is_immutable(old) || rmp_is_vmsa(old)))
		return ~0ULL;
	/* Still assigned: KVM makes it hypervisor-owned with RMPUPDATE. */
	return old & ~(RMP_IMMUTABLE | RMP_VMSA | RMP_VALIDATED);
}

enum rmp_result rmp_fw_reclaim(pm_pfn_t pfn)
{
	return fw_change(pfn, fw_reclaim, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * Tests of pKVM's hypervisor (src/models/pkvm/): every transition from
 * every relevant starting state, read back through the check-state queries;
 * argument errors; blocks; the share count limit; pins; in-place sharing;
 * poisoning; -ENOMEM changing nothing; teardown; the lock order; the generic
 * page-table additions it uses; and an independent checker run after every
 * step of a randomized run against a shadow model, and concurrently with
 * several guests' vCPUs and the host.
 *
 * The checker (check_world) knows the encoding documented in hyp_internal.h
 * and nothing of hyp.c: it recomputes who owns each frame from the host
 * stage-2, the hyp's page array and every guest stage-2, and checks the
 * invariants (one owner per page; a SHARED_OWNED page is SHARED_BORROWED on
 * exactly the other side; no host or guest mapping of a page that side
 * neither owns nor borrows; poisoned pages read zero).
 *
 * Test frames are two 2M blocks allocated from the pool (A for pages, B for
 * blocks): the host must transition only frames it allocated.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "models/pkvm/hyp_internal.h"
#include "host/pool.h"
#include "lib/rcu.h"
#include "lib/testutil.h"
#include "lib/pkvm_check.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

#define MIB        (1ULL << 20)
#define POOL_SIZE  (16 * MIB)
#define BLOCK      PKVM_BLOCK_PAGES

/* ---- fixture ---- */

enum { VM_NP, VM_PROT, VM_OTHER, NR_VMS };   /* non-protected, protected, another non-protected */

struct fx {
	struct pkvm_hyp *hyp;
	struct pkvm_vm *vm[NR_VMS];
	pm_pfn_t a, b;          /* two 2M blocks of test frames */
	uint64_t baseline;      /* pool bytes in use before */
};

static uint64_t pool_in_use(void)
{
	struct pm_pool_stats st;

	pm_rcu_barrier();
	pm_pool_get_stats(&st);
	return st.in_use;
}

static struct pkvm_vm *vm_new(struct pkvm_hyp *hyp, bool protected)
{
	struct pkvm_vm_config cfg = { .protected = protected };
	struct pkvm_vm *vm = NULL;

	assert_int_equal(pkvm_vm_create(hyp, &cfg, &vm), 0);
	return vm;
}

static void fx_init(struct fx *fx)
{
	memset(fx, 0, sizeof(*fx));
	fx->baseline = pool_in_use();
	assert_int_equal(pm_pool_alloc(PM_ORDER_2M, &fx->a), 0);
	assert_int_equal(pm_pool_alloc(PM_ORDER_2M, &fx->b), 0);
	assert_int_equal(pkvm_hyp_create(&fx->hyp), 0);
	fx->vm[VM_NP] = vm_new(fx->hyp, false);
	fx->vm[VM_PROT] = vm_new(fx->hyp, true);
	fx->vm[VM_OTHER] = vm_new(fx->hyp, false);
}

static void fx_fini(struct fx *fx)
{
	int i;

	for (i = 0; i < NR_VMS; i++)
		if (fx->vm[i])
			assert_int_equal(pkvm_vm_teardown(fx->vm[i]), 0);
	pkvm_hyp_destroy(fx->hyp);
	pm_pool_free(fx->a, PM_ORDER_2M);
	pm_pool_free(fx->b, PM_ORDER_2M);
	assert_int_equal(pool_in_use(), fx->baseline);
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	fx_init(fx);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	fx_fini(fx);
	free(fx);
	return 0;
}

static bool worlds_equal(const struct world *x, const struct world *y)
{
	size_t i;

	if (x->nr_frames != y->nr_frames || x->nleaves != y->nleaves)
		return false;
	for (i = 0; i < x->nleaves; i++)
		if (memcmp(&x->leaves[i], &y->leaves[i], sizeof(x->leaves[i])))
			return false;
	return !memcmp(x->f, y->f, x->nr_frames * sizeof(*x->f));
}

/* ---- the transition table ---- */

#define P_OFF 5     /* the page: a + P_OFF, inside a 2M host leaf */
#define G     3     /* the gfn */

enum start {
	S_HOST,            /* nothing happened to the page */
	S_HYP_SHARED,      /* host_share_hyp */
	S_HYP_PINNED,      /* host_share_hyp, then the hyp pins it */
	S_HYP_OWNED,       /* host_donate_hyp */
	S_BORROWED,        /* host_share_guest(vm, R) */
	S_OWNED,           /* host_donate_guest(vm) */
	S_SHARED,          /* host_donate_guest(vm), guest_share_host */
	S_POISONED,        /* host_donate_guest(vm), host_reclaim_page_guest */
	S_OTHER_BORROWED,  /* host_share_guest(another VM) */
	S_OTHER_OWNED,     /* host_donate_guest(another VM) */
	NR_STARTS
};

/* The calls are the hyp's transitions (named by pkvm_transition_name). */
enum call {
	C_HOST_SHARE_HYP = PKVM_HOST_SHARE_HYP, C_HOST_UNSHARE_HYP = PKVM_HOST_UNSHARE_HYP,
	C_HOST_DONATE_HYP = PKVM_HOST_DONATE_HYP, C_HYP_DONATE_HOST = PKVM_HYP_DONATE_HOST,
	C_HOST_SHARE_GUEST = PKVM_HOST_SHARE_GUEST, C_HOST_UNSHARE_GUEST = PKVM_HOST_UNSHARE_GUEST,
	C_HOST_DONATE_GUEST = PKVM_HOST_DONATE_GUEST, C_GUEST_SHARE_HOST = PKVM_GUEST_SHARE_HOST,
	C_GUEST_UNSHARE_HOST = PKVM_GUEST_UNSHARE_HOST, C_HOST_RECLAIM = PKVM_HOST_RECLAIM_PAGE_GUEST,
	C_RELAX_PERMS = PKVM_RELAX_PERMS, NR_CALLS = PKVM_NR_TRANSITIONS
};

struct states {
	int host, hyp, guest;
	unsigned int count;
};

/* Every start: host, hyp and guest (vm at G) states, and the share count. */
static const struct states start_states[NR_STARTS] = {
	[S_HOST]           = { O,  NP, NP, 0 },
	[S_HYP_SHARED]     = { SO, SB, NP, 0 },
	[S_HYP_PINNED]     = { SO, SB, NP, 0 },
	[S_HYP_OWNED]      = { NP, O,  NP, 0 },
	[S_BORROWED]       = { SO, NP, SB, 1 },
	[S_OWNED]          = { NP, NP, O,  0 },
	[S_SHARED]         = { SB, NP, SO, 0 },
	[S_POISONED]       = { O,  NP, PSN, 0 },
	[S_OTHER_BORROWED] = { SO, NP, NP, 1 },
	[S_OTHER_OWNED]    = { NP, NP, NP, 0 },
};

#define SAME_RET 1
struct row {
	enum start start;
	enum call call;
	int ret;             /* for a non-protected guest */
	struct states after; /* if ret is 0 */
	int prot_ret;        /* for a protected guest, if not SAME_RET (then nothing changes) */
};

/* An error for both kinds of guest: nothing changes. */
#define ERR(s, c, e)         { s, c, -(e), { 0 }, SAME_RET }
#define ERR2(s, c, e, pe)    { s, c, -(e), { 0 }, -(pe) }
#define OK(s, c, h, y, g, n) { s, c, 0, { h, y, g, n }, SAME_RET }
#define OK_NP(s, c, h, y, g, n, pe) { s, c, 0, { h, y, g, n }, -(pe) }

static const struct row table[] = {
	OK(S_HOST, C_HOST_SHARE_HYP, SO, SB, NP, 0),
	ERR(S_HOST, C_HOST_UNSHARE_HYP, EPERM),
	OK(S_HOST, C_HOST_DONATE_HYP, NP, O, NP, 0),
	ERR(S_HOST, C_HYP_DONATE_HOST, EPERM),
	OK(S_HOST, C_HOST_SHARE_GUEST, SO, NP, SB, 1),
	ERR(S_HOST, C_HOST_UNSHARE_GUEST, ENOENT),
	OK(S_HOST, C_HOST_DONATE_GUEST, NP, NP, O, 0),
	ERR(S_HOST, C_GUEST_SHARE_HOST, ENOENT),
	ERR(S_HOST, C_GUEST_UNSHARE_HOST, ENOENT),
	ERR(S_HOST, C_HOST_RECLAIM, EPERM),
	ERR2(S_HOST, C_RELAX_PERMS, ENOENT, EPERM),

	ERR(S_HYP_SHARED, C_HOST_SHARE_HYP, EPERM),
	OK(S_HYP_SHARED, C_HOST_UNSHARE_HYP, O, NP, NP, 0),
	ERR(S_HYP_SHARED, C_HOST_DONATE_HYP, EPERM),
	ERR(S_HYP_SHARED, C_HYP_DONATE_HOST, EPERM),
	ERR(S_HYP_SHARED, C_HOST_SHARE_GUEST, EPERM),
	ERR(S_HYP_SHARED, C_HOST_UNSHARE_GUEST, ENOENT),
	ERR(S_HYP_SHARED, C_HOST_DONATE_GUEST, EPERM),
	ERR(S_HYP_SHARED, C_GUEST_SHARE_HOST, ENOENT),
	ERR(S_HYP_SHARED, C_GUEST_UNSHARE_HOST, ENOENT),
	ERR(S_HYP_SHARED, C_HOST_RECLAIM, EPERM),
	ERR2(S_HYP_SHARED, C_RELAX_PERMS, ENOENT, EPERM),

	ERR(S_HYP_PINNED, C_HOST_SHARE_HYP, EPERM),
	ERR(S_HYP_PINNED, C_HOST_UNSHARE_HYP, EBUSY),
	ERR(S_HYP_PINNED, C_HOST_DONATE_HYP, EPERM),
	ERR(S_HYP_PINNED, C_HYP_DONATE_HOST, EPERM),
	ERR(S_HYP_PINNED, C_HOST_SHARE_GUEST, EPERM),
	ERR(S_HYP_PINNED, C_HOST_UNSHARE_GUEST, ENOENT),
	ERR(S_HYP_PINNED, C_HOST_DONATE_GUEST, EPERM),
	ERR(S_HYP_PINNED, C_GUEST_SHARE_HOST, ENOENT),
	ERR(S_HYP_PINNED, C_GUEST_UNSHARE_HOST, ENOENT),
	ERR(S_HYP_PINNED, C_HOST_RECLAIM, EPERM),
	ERR2(S_HYP_PINNED, C_RELAX_PERMS, ENOENT, EPERM),

	ERR(S_HYP_OWNED, C_HOST_SHARE_HYP, EPERM),
	ERR(S_HYP_OWNED, C_HOST_UNSHARE_HYP, EPERM),
	ERR(S_HYP_OWNED, C_HOST_DONATE_HYP, EPERM),
	OK(S_HYP_OWNED, C_HYP_DONATE_HOST, O, NP, NP, 0),
	ERR(S_HYP_OWNED, C_HOST_SHARE_GUEST, EPERM),
	ERR(S_HYP_OWNED, C_HOST_UNSHARE_GUEST, ENOENT),
	ERR(S_HYP_OWNED, C_HOST_DONATE_GUEST, EPERM),
	ERR(S_HYP_OWNED, C_GUEST_SHARE_HOST, ENOENT),
	ERR(S_HYP_OWNED, C_GUEST_UNSHARE_HOST, ENOENT),
	ERR(S_HYP_OWNED, C_HOST_RECLAIM, EPERM),
	ERR2(S_HYP_OWNED, C_RELAX_PERMS, ENOENT, EPERM),

	ERR(S_BORROWED, C_HOST_SHARE_HYP, EPERM),
	ERR(S_BORROWED, C_HOST_UNSHARE_HYP, EPERM),
	ERR(S_BORROWED, C_HOST_DONATE_HYP, EPERM),
	ERR(S_BORROWED, C_HYP_DONATE_HOST, EPERM),
	ERR(S_BORROWED, C_HOST_SHARE_GUEST, EPERM),
	OK(S_BORROWED, C_HOST_UNSHARE_GUEST, O, NP, NP, 0),
	ERR(S_BORROWED, C_HOST_DONATE_GUEST, EPERM),
	ERR(S_BORROWED, C_GUEST_SHARE_HOST, EPERM),
	ERR(S_BORROWED, C_GUEST_UNSHARE_HOST, EPERM),
	ERR(S_BORROWED, C_HOST_RECLAIM, EPERM),
	OK_NP(S_BORROWED, C_RELAX_PERMS, SO, NP, SB, 1, EPERM),

	ERR(S_OWNED, C_HOST_SHARE_HYP, EPERM),
	ERR(S_OWNED, C_HOST_UNSHARE_HYP, EPERM),
	ERR(S_OWNED, C_HOST_DONATE_HYP, EPERM),
	ERR(S_OWNED, C_HYP_DONATE_HOST, EPERM),
	ERR(S_OWNED, C_HOST_SHARE_GUEST, EPERM),
	ERR(S_OWNED, C_HOST_UNSHARE_GUEST, EPERM),
	ERR(S_OWNED, C_HOST_DONATE_GUEST, EPERM),
	OK(S_OWNED, C_GUEST_SHARE_HOST, SB, NP, SO, 0),
	ERR(S_OWNED, C_GUEST_UNSHARE_HOST, EPERM),
	OK(S_OWNED, C_HOST_RECLAIM, O, NP, PSN, 0),
	ERR(S_OWNED, C_RELAX_PERMS, EPERM),

	ERR(S_SHARED, C_HOST_SHARE_HYP, EPERM),
	ERR(S_SHARED, C_HOST_UNSHARE_HYP, EPERM),
	ERR(S_SHARED, C_HOST_DONATE_HYP, EPERM),
	ERR(S_SHARED, C_HYP_DONATE_HOST, EPERM),
	ERR(S_SHARED, C_HOST_SHARE_GUEST, EPERM),
	ERR(S_SHARED, C_HOST_UNSHARE_GUEST, EPERM),
	ERR(S_SHARED, C_HOST_DONATE_GUEST, EPERM),
	ERR(S_SHARED, C_GUEST_SHARE_HOST, EPERM),
	OK(S_SHARED, C_GUEST_UNSHARE_HOST, NP, NP, O, 0),
	OK(S_SHARED, C_HOST_RECLAIM, O, NP, NP, 0),
	ERR(S_SHARED, C_RELAX_PERMS, EPERM),

	OK(S_POISONED, C_HOST_SHARE_HYP, SO, SB, PSN, 0),
	ERR(S_POISONED, C_HOST_UNSHARE_HYP, EPERM),
	OK(S_POISONED, C_HOST_DONATE_HYP, NP, O, PSN, 0),
	ERR(S_POISONED, C_HYP_DONATE_HOST, EPERM),
	OK(S_POISONED, C_HOST_SHARE_GUEST, SO, NP, SB, 1),
	ERR(S_POISONED, C_HOST_UNSHARE_GUEST, ENOENT),
	OK(S_POISONED, C_HOST_DONATE_GUEST, NP, NP, O, 0),
	ERR(S_POISONED, C_GUEST_SHARE_HOST, EHWPOISON),
	ERR(S_POISONED, C_GUEST_UNSHARE_HOST, EHWPOISON),
	ERR(S_POISONED, C_HOST_RECLAIM, EPERM),
	ERR2(S_POISONED, C_RELAX_PERMS, ENOENT, EPERM),

	ERR(S_OTHER_BORROWED, C_HOST_SHARE_HYP, EPERM),
	ERR(S_OTHER_BORROWED, C_HOST_UNSHARE_HYP, EPERM),
	ERR(S_OTHER_BORROWED, C_HOST_DONATE_HYP, EPERM),
	ERR(S_OTHER_BORROWED, C_HYP_DONATE_HOST, EPERM),
	OK_NP(S_OTHER_BORROWED, C_HOST_SHARE_GUEST, SO, NP, SB, 2, EPERM),
	ERR(S_OTHER_BORROWED, C_HOST_UNSHARE_GUEST, ENOENT),
	ERR(S_OTHER_BORROWED, C_HOST_DONATE_GUEST, EPERM),
	ERR(S_OTHER_BORROWED, C_GUEST_SHARE_HOST, ENOENT),
	ERR(S_OTHER_BORROWED, C_GUEST_UNSHARE_HOST, ENOENT),
	ERR(S_OTHER_BORROWED, C_HOST_RECLAIM, EPERM),
	ERR2(S_OTHER_BORROWED, C_RELAX_PERMS, ENOENT, EPERM),

	ERR(S_OTHER_OWNED, C_HOST_SHARE_HYP, EPERM),
	ERR(S_OTHER_OWNED, C_HOST_UNSHARE_HYP, EPERM),
	ERR(S_OTHER_OWNED, C_HOST_DONATE_HYP, EPERM),
	ERR(S_OTHER_OWNED, C_HYP_DONATE_HOST, EPERM),
	ERR(S_OTHER_OWNED, C_HOST_SHARE_GUEST, EPERM),
	ERR(S_OTHER_OWNED, C_HOST_UNSHARE_GUEST, ENOENT),
	ERR(S_OTHER_OWNED, C_HOST_DONATE_GUEST, EPERM),
	ERR(S_OTHER_OWNED, C_GUEST_SHARE_HOST, ENOENT),
	ERR(S_OTHER_OWNED, C_GUEST_UNSHARE_HOST, ENOENT),
	ERR(S_OTHER_OWNED, C_HOST_RECLAIM, EPERM),
	ERR2(S_OTHER_OWNED, C_RELAX_PERMS, ENOENT, EPERM),
};
_Static_assert(PM_ARRAY_SIZE(table) == NR_STARTS * NR_CALLS, "every call from every start");

static void ok(int ret)
{
	assert_int_equal(ret, 0);
}

static void enter_start(struct fx *fx, struct pkvm_vm *vm, enum start s)
{
	struct pkvm_hyp *hyp = fx->hyp;
	pm_pfn_t p = fx->a + P_OFF;

	switch (s) {
	case S_HOST:
		break;
	case S_HYP_PINNED:
		ok(pkvm_host_share_hyp(hyp, p));
		ok(pkvm_hyp_pin_shared(hyp, p));
		break;
	case S_HYP_SHARED:
		ok(pkvm_host_share_hyp(hyp, p));
		break;
	case S_HYP_OWNED:
		ok(pkvm_host_donate_hyp(hyp, p, 1));
		break;
	case S_BORROWED:
		ok(pkvm_host_share_guest(vm, p, G, 1, PKVM_PROT_R));
		break;
	case S_OWNED:
		ok(pkvm_host_donate_guest(vm, p, G));
		break;
	case S_SHARED:
		ok(pkvm_host_donate_guest(vm, p, G));
		ok(pkvm_guest_share_host(vm, G));
		break;
	case S_POISONED:
		ok(pkvm_host_donate_guest(vm, p, G));
		ok(pkvm_host_reclaim_page_guest(vm, G));
		break;
	case S_OTHER_BORROWED:
		ok(pkvm_host_share_guest(fx->vm[VM_OTHER], p, G, 1, PKVM_PROT_R));
		break;
	case S_OTHER_OWNED:
		ok(pkvm_host_donate_guest(fx->vm[VM_OTHER], p, G));
		break;
	default:
		fail();
	}
}

static int do_call(struct fx *fx, struct pkvm_vm *vm, enum call c)
{
	struct pkvm_hyp *hyp = fx->hyp;
	pm_pfn_t p = fx->a + P_OFF;

	switch (c) {
	case C_HOST_SHARE_HYP:     return pkvm_host_share_hyp(hyp, p);
	case C_HOST_UNSHARE_HYP:   return pkvm_host_unshare_hyp(hyp, p);
	case C_HOST_DONATE_HYP:    return pkvm_host_donate_hyp(hyp, p, 1);
	case C_HYP_DONATE_HOST:    return pkvm_hyp_donate_host(hyp, p, 1);
	case C_HOST_SHARE_GUEST:   return pkvm_host_share_guest(vm, p, G, 1, PKVM_PROT_R);
	case C_HOST_UNSHARE_GUEST: return pkvm_host_unshare_guest(vm, G, 1);
	case C_HOST_DONATE_GUEST:  return pkvm_host_donate_guest(vm, p, G);
	case C_GUEST_SHARE_HOST:   return pkvm_guest_share_host(vm, G);
	case C_GUEST_UNSHARE_HOST: return pkvm_guest_unshare_host(vm, G);
	case C_HOST_RECLAIM:       return pkvm_host_reclaim_page_guest(vm, G);
	case C_RELAX_PERMS:        return pkvm_relax_perms(vm, G, PKVM_PROT_RWX);
	default:                   fail();
	}
	return 0;
}

/* Every party's state, read back from the page tables by the queries. */
static void expect_states(struct fx *fx, struct pkvm_vm *vm, const struct states *want,
			  int other_guest)
{
	struct pkvm_hyp *hyp = fx->hyp;
	pm_pfn_t p = fx->a + P_OFF;
	struct pkvm_guest_page gp;
	struct pkvm_owner owner;

	assert_int_equal(pkvm_host_state(hyp, p), want->host);
	assert_int_equal(pkvm_hyp_state(hyp, p), want->hyp);
	assert_int_equal(pkvm_guest_state(vm, G, &gp), want->guest);
	assert_int_equal(pkvm_host_share_count(hyp, p), want->count);
	assert_int_equal(pkvm_guest_state(fx->vm[VM_OTHER], G, NULL), other_guest);
	if (want->guest == O || want->guest == SO || want->guest == SB) {
		assert_int_equal(gp.pfn, p);
		assert_int_equal(gp.nr, 1);
	} else {
		assert_int_equal(gp.pfn, PM_PFN_INVALID);
	}
	pkvm_host_owner(hyp, p, &owner);
	if (want->hyp == O) {
		assert_int_equal(owner.id, PKVM_ID_HYP);
	} else if (want->host == NP) {
		struct pkvm_vm *owner_vm = want->guest == O ? vm : fx->vm[VM_OTHER];

		assert_int_equal(owner.id, PKVM_ID_GUEST);
		assert_int_equal(owner.vm_id, pkvm_vm_id(owner_vm));
		assert_int_equal(owner.gfn, G);
	} else {
		assert_int_equal(owner.id, want->host == SB ? PKVM_ID_GUEST : PKVM_ID_HOST);
	}
}

static int other_start_state(enum start s)
{
	return s == S_OTHER_BORROWED ? SB : s == S_OTHER_OWNED ? O : NP;
}

static void run_row(const struct row *r, int kind)
{
	struct fx fx;
	struct pkvm_vm *vm;
	int want = r->ret;
	const struct states *after = &r->after;
	bool pinned = r->start == S_HYP_PINNED;
	int ret;

	fx_init(&fx);
	vm = fx.vm[kind];
	enter_start(&fx, vm, r->start);
	if (kind == VM_PROT && r->prot_ret != SAME_RET)
		want = r->prot_ret;
	if (want)
		after = &start_states[r->start];
	ret = do_call(&fx, vm, r->call);
	if (ret != want)
		fprintf(stderr, "row: start %d, %s on a %s guest: %d, want %d\n", r->start,
			pkvm_transition_name((enum pkvm_transition)r->call), kind == VM_PROT ? "protected" : "non-protected",
			ret, want);
	assert_int_equal(ret, want);
	expect_states(&fx, vm, after, other_start_state(r->start));
	assert_int_equal(pkvm_hyp_pins(fx.hyp, fx.a + P_OFF), pinned ? 1 : 0);
	/* the mark stays while the host alone holds the zeroed page */
	assert_int_equal(pkvm_page_poisoned(fx.hyp, fx.a + P_OFF),
			 (r->start == S_POISONED && after->host == O) ||
			 (!want && r->call == C_HOST_RECLAIM && r->start == S_OWNED));
	if (!want && r->call == C_RELAX_PERMS) {
		struct pkvm_guest_page gp;

		pkvm_guest_state(vm, G, &gp);
		assert_int_equal(gp.prot, PKVM_PROT_RWX);
	}
	assert_consistent(fx.hyp);
	if (pinned)
		pkvm_hyp_unpin_shared(fx.hyp, fx.a + P_OFF);
	fx_fini(&fx);
}

static void test_transition_table_non_protected_guest(void **state)
{
	size_t i;

	for (i = 0; i < PM_ARRAY_SIZE(table); i++)
		run_row(&table[i], VM_NP);
}

static void test_transition_table_protected_guest(void **state)
{
	size_t i;

	for (i = 0; i < PM_ARRAY_SIZE(table); i++)
		run_row(&table[i], VM_PROT);
}

/* ---- arguments ---- */

static void take_snapshot(struct pkvm_hyp *hyp, struct world *w)
{
	assert_int_equal(check_world(hyp, w), 0);
}

static void expect_unchanged(struct pkvm_hyp *hyp, struct world *before)
{
	struct world after;

	take_snapshot(hyp, &after);
	assert_true(worlds_equal(before, &after));
	world_free(&after);
}

/* Bad arguments are refused before anything is looked at, and change nothing. */
static void test_bad_arguments_are_einval_and_change_nothing(void **state)
{
	struct fx *fx = *state;
	struct pkvm_hyp *hyp = fx->hyp;
	struct pkvm_vm *np = fx->vm[VM_NP], *prot = fx->vm[VM_PROT];
	pm_pfn_t nr = pm_pool_nr_frames(), a = fx->a, b = fx->b;
	struct world before;
	struct pkvm_stats st;

	take_snapshot(hyp, &before);
	assert_int_equal(pkvm_host_share_hyp(hyp, nr), -EINVAL);
	assert_int_equal(pkvm_host_share_hyp(hyp, UINT64_MAX), -EINVAL);
	assert_int_equal(pkvm_host_unshare_hyp(hyp, nr), -EINVAL);
	assert_int_equal(pkvm_host_donate_hyp(hyp, a, 0), -EINVAL);
	assert_int_equal(pkvm_host_donate_hyp(hyp, nr - 1, 2), -EINVAL);
	assert_int_equal(pkvm_host_donate_hyp(hyp, a, UINT64_MAX), -EINVAL);
	assert_int_equal(pkvm_hyp_donate_host(hyp, nr, 1), -EINVAL);
	assert_int_equal(pkvm_hyp_donate_host(hyp, a, 0), -EINVAL);
	/* prot: RWX only; bit 4 was seed 004's "shared" state bit */
	assert_int_equal(pkvm_host_share_guest(np, a, 0, 1, 1u << 3), -EINVAL);
	assert_int_equal(pkvm_host_share_guest(np, a, 0, 1, PKVM_PROT_R | 1u << 4), -EINVAL);
	assert_int_equal(pkvm_host_share_guest(np, a, 0, 1, ~0u), -EINVAL);
	/* one page or one aligned 2M block */
	assert_int_equal(pkvm_host_share_guest(np, a, 0, 0, PKVM_PROT_R), -EINVAL);
	assert_int_equal(pkvm_host_share_guest(np, a, 0, 2, PKVM_PROT_R), -EINVAL);
	assert_int_equal(pkvm_host_share_guest(np, b, 0, BLOCK - 1, PKVM_PROT_R), -EINVAL);
	assert_int_equal(pkvm_host_share_guest(np, b, 1, BLOCK, PKVM_PROT_R), -EINVAL);
	assert_int_equal(pkvm_host_share_guest(np, b + 1, 0, BLOCK, PKVM_PROT_R), -EINVAL);
	assert_int_equal(pkvm_host_share_guest(np, b, 0, 2 * BLOCK, PKVM_PROT_R), -EINVAL);
	assert_int_equal(pkvm_host_share_guest(np, nr, 0, 1, PKVM_PROT_R), -EINVAL);
	assert_int_equal(pkvm_host_share_guest(np, a, GFN_LIMIT, 1, PKVM_PROT_R), -EINVAL);
	assert_int_equal(pkvm_host_unshare_guest(np, 0, 2), -EINVAL);
	assert_int_equal(pkvm_host_unshare_guest(np, 1, BLOCK), -EINVAL);
	assert_int_equal(pkvm_host_unshare_guest(np, GFN_LIMIT, 1), -EINVAL);
	assert_int_equal(pkvm_host_donate_guest(np, nr, 0), -EINVAL);
	assert_int_equal(pkvm_host_donate_guest(np, a, GFN_LIMIT), -EINVAL);
	assert_int_equal(pkvm_guest_share_host(np, GFN_LIMIT), -EINVAL);
	assert_int_equal(pkvm_guest_unshare_host(np, GFN_LIMIT), -EINVAL);
	assert_int_equal(pkvm_host_reclaim_page_guest(np, GFN_LIMIT), -EINVAL);
	assert_int_equal(pkvm_relax_perms(np, 0, 1u << 3), -EINVAL);
	assert_int_equal(pkvm_relax_perms(np, 0, PKVM_PROT_W | 1u << 4), -EINVAL);
	assert_int_equal(pkvm_relax_perms(np, GFN_LIMIT, PKVM_PROT_W), -EINVAL);
	/* a protected VM's permissions are not the host's to change: EPERM first */
	assert_int_equal(pkvm_relax_perms(prot, 0, 1u << 3), -EPERM);
	assert_int_equal(pkvm_hyp_pin_shared(hyp, nr), -EINVAL);
	assert_int_equal(pkvm_host_access(hyp, nr, false), -EINVAL);
	expect_unchanged(hyp, &before);
	world_free(&before);
	pkvm_hyp_get_stats(hyp, &st);
	assert_int_equal(st.refused[PKVM_HOST_SHARE_GUEST], 11);
	assert_int_equal(st.refused[PKVM_RELAX_PERMS], 4);
	assert_int_equal(st.done[PKVM_HOST_SHARE_GUEST], 0);
	assert_int_equal(st.host_s2_faults, 0);
}

/* ---- the host stage-2's shape ---- */

static void test_host_stage2_starts_with_1g_leaves_and_splits_on_the_way(void **state)
{
	struct pkvm_hyp *hyp;
	pm_pfn_t p = (1ULL << 18) + 5 * BLOCK + 7;   /* in the second GiB */
	uint64_t pte;
	int level;

	pm_rcu_barrier();
	assert_int_equal(pm_pool_configure(2048 * MIB, 0), 0);
	assert_int_equal(pkvm_hyp_create(&hyp), 0);
	assert_int_equal(atomic_load(&hyp->host_s2.leaves[2]), 2);
	assert_int_equal(atomic_load(&hyp->host_s2.leaves[1]), 0);
	assert_int_equal(atomic_load(&hyp->host_s2.leaves[0]), 0);
	/* donate_hyp writes nothing to the frame: any frame does here */
	ok(pkvm_host_donate_hyp(hyp, p, 1));
	assert_int_equal(atomic_load(&hyp->host_s2.leaves[2]), 1);
	assert_int_equal(atomic_load(&hyp->host_s2.leaves[1]), 511);
	assert_int_equal(atomic_load(&hyp->host_s2.leaves[0]), 511);
	assert_int_equal(atomic_load(&hyp->host_s2.splits), 2);
	pm_s2_get_leaf(&hyp->host_s2, p - 1, &pte, &level);
	assert_int_equal(level, 0);
	assert_int_equal(pkvm_host_state(hyp, p), NP);
	assert_int_equal(pkvm_host_state(hyp, p - 1), O);
	assert_int_equal(pkvm_host_state(hyp, p + 1), O);
	assert_int_equal(pkvm_hyp_state(hyp, p), O);
	assert_consistent(hyp);
	ok(pkvm_hyp_donate_host(hyp, p, 1));
	assert_int_equal(atomic_load(&hyp->host_s2.leaves[0]), 512);
	assert_int_equal(pkvm_host_state(hyp, p), O);
	assert_consistent(hyp);
	pkvm_hyp_destroy(hyp);
	pm_rcu_barrier();
	assert_int_equal(pm_pool_configure(POOL_SIZE, 0), 0);
}

/* ---- blocks and multi-sharing ---- */

static void host_leaf_level(struct pkvm_hyp *hyp, pm_pfn_t p, int want)
{
	uint64_t pte;
	int level;

	pm_s2_get_leaf(&hyp->host_s2, p, &pte, &level);
	assert_true(pm_pte_valid(pte));
	assert_int_equal(level, want);
}

static void test_block_share_is_one_2m_leaf_and_unshare_needs_its_size(void **state)
{
	struct fx *fx = *state;
	struct pkvm_hyp *hyp = fx->hyp;
	struct pkvm_vm *np = fx->vm[VM_NP], *other = fx->vm[VM_OTHER];
	pm_pfn_t b = fx->b;
	struct pkvm_guest_page gp;
	gfn_t g = 2 * BLOCK;

	ok(pkvm_host_share_guest(np, b, g, BLOCK, PKVM_PROT_R | PKVM_PROT_W));
	assert_int_equal(pkvm_guest_state(np, g + 7, &gp), SB);
	assert_int_equal(gp.nr, BLOCK);
	assert_int_equal(gp.pfn, b + 7);
	assert_int_equal(gp.prot, PKVM_PROT_R | PKVM_PROT_W);
	assert_int_equal(pkvm_host_state(hyp, b), SO);
	assert_int_equal(pkvm_host_state(hyp, b + BLOCK - 1), SO);
	assert_int_equal(pkvm_host_share_count(hyp, b + BLOCK - 1), 1);
	host_leaf_level(hyp, b, 1);            /* the host block was not split */
	assert_consistent(hyp);

	assert_int_equal(pkvm_host_unshare_guest(np, g, 1), -E2BIG);
	assert_int_equal(pkvm_host_unshare_guest(np, g + 1, 1), -E2BIG);
	assert_int_equal(pkvm_host_unshare_guest(np, g + BLOCK, BLOCK), -ENOENT);
	assert_int_equal(pkvm_guest_share_host(np, g + 1), -E2BIG);
	assert_int_equal(pkvm_host_share_guest(np, b, g, BLOCK, PKVM_PROT_R), -EPERM);
	assert_int_equal(pkvm_host_share_guest(np, fx->a, g + 9, 1, PKVM_PROT_R), -EPERM);
	ok(pkvm_relax_perms(np, g + 30, PKVM_PROT_X));   /* the whole leaf */
	assert_int_equal(pkvm_guest_state(np, g + BLOCK - 1, &gp), SB);
	assert_int_equal(gp.prot, PKVM_PROT_RWX);

	/* one page of the block lent to another guest too: the block splits
	 * when the others go back, that page stays lent */
	ok(pkvm_host_share_guest(other, b + 3, 9, 1, PKVM_PROT_R));
	assert_int_equal(pkvm_host_share_count(hyp, b + 3), 2);
	ok(pkvm_host_unshare_guest(np, g, BLOCK));
	assert_int_equal(pkvm_guest_state(np, g, NULL), NP);
	assert_int_equal(pkvm_host_state(hyp, b + 2), O);
	assert_int_equal(pkvm_host_state(hyp, b + 3), SO);
	assert_int_equal(pkvm_host_state(hyp, b + 4), O);
	assert_int_equal(pkvm_host_share_count(hyp, b + 3), 1);
	host_leaf_level(hyp, b + 4, 0);
	assert_consistent(hyp);
	ok(pkvm_host_unshare_guest(other, 9, 1));
	assert_int_equal(pkvm_host_state(hyp, b + 3), O);
	assert_int_equal(pkvm_host_share_count(hyp, b + 3), 0);
	assert_consistent(hyp);
}

/* A gfn that maps a page takes no other one: neither a 4K page nor a block over it. */
static void test_a_gfn_in_use_takes_no_other_page(void **state)
{
	struct fx *fx = *state;
	struct pkvm_hyp *hyp = fx->hyp;
	struct pkvm_vm *np = fx->vm[VM_NP];
	pm_pfn_t p = fx->a, q = fx->a + 1, r = fx->a + 2, s = fx->a + 3;
	struct world before;

	ok(pkvm_host_donate_guest(np, p, 1));          /* owned */
	ok(pkvm_host_donate_guest(np, q, 2));          /* shared with the host */
	ok(pkvm_guest_share_host(np, 2));
	ok(pkvm_host_share_guest(np, r, 3, 1, PKVM_PROT_R));   /* borrowed */
	ok(pkvm_host_share_guest(np, fx->b, BLOCK, BLOCK, PKVM_PROT_R));
	take_snapshot(hyp, &before);
	assert_int_equal(pkvm_host_donate_guest(np, s, 1), -EPERM);
	assert_int_equal(pkvm_host_donate_guest(np, s, 2), -EPERM);
	assert_int_equal(pkvm_host_donate_guest(np, s, 3), -EPERM);
	assert_int_equal(pkvm_host_donate_guest(np, s, BLOCK + 9), -EPERM);
	assert_int_equal(pkvm_host_share_guest(np, s, 1, 1, PKVM_PROT_R), -EPERM);
	assert_int_equal(pkvm_host_share_guest(np, s, 3, 1, PKVM_PROT_R), -EPERM);
	assert_int_equal(pkvm_host_share_guest(np, s, BLOCK + 511, 1, PKVM_PROT_R), -EPERM);
	/* a block over a range where one 4K gfn is in use */
	assert_int_equal(pkvm_host_share_guest(np, fx->a, 0, BLOCK, PKVM_PROT_R), -EPERM);
	expect_unchanged(hyp, &before);
	world_free(&before);
	assert_int_equal(pkvm_host_state(hyp, s), O);
}

/* A non-protected guest may be lent a page many times, up to the count's limit. */
static void test_share_count_limit_is_ebusy(void **state)
{
	struct fx *fx = *state;
	struct pkvm_hyp *hyp = fx->hyp;
	struct pkvm_vm *np = fx->vm[VM_NP];
	pm_pfn_t p = fx->a + 1;
	gfn_t g;

	for (g = 0; g < PKVM_SHARE_GUEST_MAX; g++)
		ok(pkvm_host_share_guest(np, p, g, 1, PKVM_PROT_R));
	assert_int_equal(pkvm_host_share_count(hyp, p), PKVM_SHARE_GUEST_MAX);
	assert_int_equal(pkvm_host_share_guest(np, p, g, 1, PKVM_PROT_R), -EBUSY);
	assert_int_equal(pkvm_guest_state(np, g, NULL), NP);
	/* EPERM comes first: a protected guest is never lent a shared page */
	assert_int_equal(pkvm_host_share_guest(fx->vm[VM_PROT], p, 0, 1, PKVM_PROT_R), -EPERM);
	assert_consistent(hyp);
	ok(pkvm_host_unshare_guest(np, 17, 1));
	assert_int_equal(pkvm_host_share_count(hyp, p), PKVM_SHARE_GUEST_MAX - 1);
	ok(pkvm_host_share_guest(np, p, g, 1, PKVM_PROT_R));
	assert_int_equal(pkvm_host_share_count(hyp, p), PKVM_SHARE_GUEST_MAX);
	assert_consistent(hyp);
}

/* ---- in place, poison, host accesses, pins, relax ---- */

static uint8_t *frame(pm_pfn_t p)
{
	return pm_pfn_to_hva(p);
}

static bool frame_reads(pm_pfn_t p, uint8_t v)
{
	uint64_t i;

	for (i = 0; i < PM_PAGE_SIZE; i++)
		if (frame(p)[i] != v)
			return false;
	return true;
}

static void test_guest_share_is_in_place_and_keeps_contents(void **state)
{
	struct fx *fx = *state;
	struct pkvm_hyp *hyp = fx->hyp;
	struct pkvm_vm *vm = fx->vm[VM_PROT];
	pm_pfn_t p = fx->a + 2;
	struct pkvm_guest_page gp;
	struct pkvm_stats st;

	ok(pkvm_host_donate_guest(vm, p, 5));
	memset(frame(p), 0xa5, PM_PAGE_SIZE);          /* the guest writes its page */
	assert_int_equal(pkvm_host_access(hyp, p, false), -EFAULT);
	ok(pkvm_guest_share_host(vm, 5));
	assert_int_equal(pkvm_guest_state(vm, 5, &gp), SO);
	assert_int_equal(gp.pfn, p);                   /* the same frame: in place */
	assert_int_equal(pkvm_host_access(hyp, p, false), 0);
	assert_true(frame_reads(p, 0xa5));
	ok(pkvm_host_access(hyp, p, true));
	frame(p)[0] = 0x5a;                            /* the host writes the shared page */
	ok(pkvm_guest_unshare_host(vm, 5));
	assert_int_equal(pkvm_guest_state(vm, 5, &gp), O);
	assert_int_equal(gp.pfn, p);
	assert_int_equal(pkvm_host_access(hyp, p, true), -EFAULT);
	assert_int_equal(frame(p)[0], 0x5a);           /* nothing was copied or cleared */
	assert_int_equal(frame(p)[1], 0xa5);
	pkvm_hyp_get_stats(hyp, &st);
	assert_int_equal(st.host_s2_faults, 2);
	assert_int_equal(st.done[PKVM_GUEST_SHARE_HOST], 1);
	assert_int_equal(st.done[PKVM_GUEST_UNSHARE_HOST], 1);
	assert_int_equal(st.pages_poisoned, 0);
	assert_consistent(hyp);
}

static void test_reclaim_poisons_an_owned_page_and_returns_a_shared_one(void **state)
{
	struct fx *fx = *state;
	struct pkvm_hyp *hyp = fx->hyp;
	struct pkvm_vm *vm = fx->vm[VM_PROT];
	pm_pfn_t p = fx->a + 2, q = fx->a + 3;
	struct pkvm_stats st;

	ok(pkvm_host_donate_guest(vm, p, 5));
	memset(frame(p), 0xa5, PM_PAGE_SIZE);
	ok(pkvm_host_reclaim_page_guest(vm, 5));
	assert_true(frame_reads(p, 0));
	assert_true(pkvm_page_poisoned(hyp, p));
	assert_int_equal(pkvm_host_state(hyp, p), O);
	assert_int_equal(pkvm_guest_state(vm, 5, NULL), PSN);
	assert_int_equal(pkvm_guest_share_host(vm, 5), -EHWPOISON);
	assert_int_equal(pkvm_guest_unshare_host(vm, 5), -EHWPOISON);
	assert_int_equal(pkvm_host_reclaim_page_guest(vm, 5), -EPERM);
	assert_consistent(hyp);
	ok(pkvm_host_access(hyp, p, false));
	assert_true(pkvm_page_poisoned(hyp, p));       /* a read leaves the mark */
	ok(pkvm_host_access(hyp, p, true));
	assert_false(pkvm_page_poisoned(hyp, p));      /* the first write clears it */
	ok(pkvm_host_donate_guest(vm, p, 5));          /* a poisoned gfn takes a new page */
	assert_int_equal(pkvm_guest_state(vm, 5, NULL), O);

	ok(pkvm_host_donate_guest(vm, q, 6));
	ok(pkvm_guest_share_host(vm, 6));
	memset(frame(q), 0x77, PM_PAGE_SIZE);
	ok(pkvm_host_reclaim_page_guest(vm, 6));
	assert_true(frame_reads(q, 0x77));             /* the host saw it already */
	assert_false(pkvm_page_poisoned(hyp, q));
	assert_int_equal(pkvm_guest_state(vm, 6, NULL), NP);
	assert_int_equal(pkvm_host_state(hyp, q), O);
	pkvm_hyp_get_stats(hyp, &st);
	assert_int_equal(st.pages_poisoned, 1);
	assert_int_equal(st.done[PKVM_HOST_RECLAIM_PAGE_GUEST], 2);
	assert_int_equal(st.refused[PKVM_HOST_RECLAIM_PAGE_GUEST], 1);
	assert_consistent(hyp);
}

static void test_host_access_faults_where_the_host_neither_owns_nor_borrows(void **state)
{
	struct fx *fx = *state;
	struct pkvm_hyp *hyp = fx->hyp;
	struct pkvm_vm *vm = fx->vm[VM_PROT];
	pm_pfn_t a = fx->a;
	struct pkvm_stats st;

	ok(pkvm_host_share_hyp(hyp, a + 0));
	ok(pkvm_host_donate_hyp(hyp, a + 1, 1));
	ok(pkvm_host_donate_guest(vm, a + 2, 0));
	ok(pkvm_host_donate_guest(vm, a + 3, 1));
	ok(pkvm_guest_share_host(vm, 1));
	ok(pkvm_host_share_guest(vm, a + 4, 2, 1, PKVM_PROT_R));
	ok(pkvm_host_access(hyp, a + 0, true));        /* owned, shared with the hyp */
	assert_int_equal(pkvm_host_access(hyp, a + 1, false), -EFAULT);   /* the hyp's */
	assert_int_equal(pkvm_host_access(hyp, a + 2, false), -EFAULT);   /* the guest's */
	assert_int_equal(pkvm_host_access(hyp, a + 2, true), -EFAULT);
	ok(pkvm_host_access(hyp, a + 3, true));        /* borrowed from the guest */
	ok(pkvm_host_access(hyp, a + 4, true));        /* lent to the guest */
	ok(pkvm_host_access(hyp, a + 5, true));        /* plain host memory */
	pkvm_hyp_get_stats(hyp, &st);
	assert_int_equal(st.host_s2_faults, 3);
}

static void unpin_unpinned(void *arg)
{
	struct fx *fx = arg;

	pkvm_hyp_unpin_shared(fx->hyp, fx->a);
}

static void test_hyp_pins_make_unshare_ebusy_until_unpinned(void **state)
{
	struct fx *fx = *state;
	struct pkvm_hyp *hyp = fx->hyp;
	pm_pfn_t p = fx->a;

	assert_int_equal(pkvm_hyp_pin_shared(hyp, p), -EPERM);   /* not borrowed */
	ok(pkvm_host_donate_hyp(hyp, p + 1, 1));
	assert_int_equal(pkvm_hyp_pin_shared(hyp, p + 1), -EPERM);   /* owned, not borrowed */
	ok(pkvm_host_share_hyp(hyp, p));
	ok(pkvm_hyp_pin_shared(hyp, p));
	ok(pkvm_hyp_pin_shared(hyp, p));
	assert_int_equal(pkvm_hyp_pins(hyp, p), 2);
	assert_int_equal(pkvm_host_unshare_hyp(hyp, p), -EBUSY);
	pkvm_hyp_unpin_shared(hyp, p);
	assert_int_equal(pkvm_host_unshare_hyp(hyp, p), -EBUSY);
	pkvm_hyp_unpin_shared(hyp, p);
	assert_consistent(hyp);
	ok(pkvm_host_unshare_hyp(hyp, p));
	assert_int_equal(pkvm_host_state(hyp, p), O);
	assert_int_equal(pkvm_hyp_state(hyp, p), NP);
	assert_true(pm_test_aborts(unpin_unpinned, fx));
}

static void test_relax_perms_only_adds_permissions(void **state)
{
	struct fx *fx = *state;
	struct pkvm_hyp *hyp = fx->hyp;
	struct pkvm_vm *np = fx->vm[VM_NP];
	struct pkvm_guest_page gp;

	ok(pkvm_host_share_guest(np, fx->a, 4, 1, PKVM_PROT_R));
	ok(pkvm_relax_perms(np, 4, PKVM_PROT_W));
	assert_int_equal(pkvm_guest_state(np, 4, &gp), SB);
	assert_int_equal(gp.prot, PKVM_PROT_R | PKVM_PROT_W);
	ok(pkvm_relax_perms(np, 4, PKVM_PROT_R));      /* W is not taken away */
	ok(pkvm_relax_perms(np, 4, 0));
	assert_int_equal(pkvm_guest_state(np, 4, &gp), SB);
	assert_int_equal(gp.prot, PKVM_PROT_R | PKVM_PROT_W);
	ok(pkvm_relax_perms(np, 4, PKVM_PROT_X));
	assert_int_equal(pkvm_guest_state(np, 4, &gp), SB);   /* the state bits stay */
	assert_int_equal(gp.prot, PKVM_PROT_RWX);
	assert_int_equal(pkvm_host_state(hyp, fx->a), SO);
	assert_int_equal(pkvm_relax_perms(np, 4, 1u << 5), -EINVAL);
	assert_int_equal(pkvm_relax_perms(np, 5, PKVM_PROT_W), -ENOENT);
	/* the generic visitor refuses state and software bits itself (seed 004) */
	assert_int_equal(pm_s2_relax_perms(np->s2, 4, PM_PTE_SW_STATE_MASK), -EINVAL);
	assert_int_equal(pm_s2_relax_perms(np->s2, 4, PM_PTE_PRIVATE), -EINVAL);
	assert_int_equal(pm_s2_relax_perms(np->s2, 4, PM_PTE_VALID), -EINVAL);
	assert_int_equal(pkvm_guest_state(np, 4, &gp), SB);
	assert_consistent(hyp);
}

/* ---- -ENOMEM ---- */

struct hog {
	pm_pfn_t pfn[1 << 15];
	unsigned int order[1 << 15];
	int n;
};

/* Takes every free frame of the pool, largest blocks first; the last block
 * is taken again as 4K frames, so that single frames can be given back. */
static void hog_all(struct hog *h)
{
	int order = PM_ORDER_1G;

	pm_rcu_barrier();
	h->n = 0;
	while (order >= 0) {
		assert_true(h->n < (int)PM_ARRAY_SIZE(h->pfn));
		if (pm_pool_alloc((unsigned int)order, &h->pfn[h->n]))
			order--;
		else
			h->order[h->n++] = (unsigned int)order;
	}
	assert_true(h->n > 0);
	if (h->order[h->n - 1]) {
		h->n--;
		pm_pool_free(h->pfn[h->n], h->order[h->n]);
		while (!pm_pool_alloc(0, &h->pfn[h->n])) {
			h->order[h->n++] = 0;
			assert_true(h->n < (int)PM_ARRAY_SIZE(h->pfn));
		}
	}
}

static void hog_release_one(struct hog *h)
{
	assert_true(h->n > 0 && h->order[h->n - 1] == 0);
	h->n--;
	pm_pool_free(h->pfn[h->n], 0);
}

static void hog_release(struct hog *h)
{
	while (h->n > 0) {
		h->n--;
		pm_pool_free(h->pfn[h->n], h->order[h->n]);
	}
}

static void drain_reserve(struct pkvm_hyp *hyp)
{
	pkvm_lock_take(&hyp->host_lock);
	pm_s2_mc_free(&hyp->reserve);
	pkvm_lock_drop(&hyp->host_lock);
}

struct enomem_case {
	enum start start;     /* entered with memory */
	enum call call;       /* then called without */
	int vm;
};

static const struct enomem_case enomem_cases[] = {
	{ S_HOST, C_HOST_SHARE_HYP, VM_NP },
	{ S_HYP_SHARED, C_HOST_UNSHARE_HYP, VM_NP },
	{ S_HOST, C_HOST_DONATE_HYP, VM_NP },
	{ S_HYP_OWNED, C_HYP_DONATE_HOST, VM_NP },
	{ S_HOST, C_HOST_SHARE_GUEST, VM_NP },
	{ S_OTHER_BORROWED, C_HOST_SHARE_GUEST, VM_NP },
	{ S_BORROWED, C_HOST_UNSHARE_GUEST, VM_NP },
	{ S_HOST, C_HOST_DONATE_GUEST, VM_PROT },
	{ S_OWNED, C_GUEST_SHARE_HOST, VM_PROT },
	{ S_SHARED, C_GUEST_UNSHARE_HOST, VM_PROT },
	{ S_OWNED, C_HOST_RECLAIM, VM_PROT },
	{ S_SHARED, C_HOST_RECLAIM, VM_PROT },
	{ S_POISONED, C_HOST_DONATE_GUEST, VM_PROT },
};

/*
 * Without memory for the tables it may need, a transition says -ENOMEM and
 * changes nothing: neither with no frame at all, nor with one frame (the
 * reserve then holds part of what it needs). With memory back it succeeds.
 */
static void test_enomem_changes_nothing(void **state)
{
	static struct hog hog;
	size_t i;

	for (i = 0; i < PM_ARRAY_SIZE(enomem_cases); i++) {
		const struct enomem_case *c = &enomem_cases[i];
		struct world before;
		struct fx fx;

		fx_init(&fx);
		enter_start(&fx, fx.vm[c->vm], c->start);
		drain_reserve(fx.hyp);
		take_snapshot(fx.hyp, &before);
		hog_all(&hog);
		assert_int_equal(do_call(&fx, fx.vm[c->vm], c->call), -ENOMEM);
		expect_unchanged(fx.hyp, &before);
		hog_release_one(&hog);
		assert_int_equal(do_call(&fx, fx.vm[c->vm], c->call), -ENOMEM);
		expect_unchanged(fx.hyp, &before);
		hog_release(&hog);
		assert_int_equal(do_call(&fx, fx.vm[c->vm], c->call), 0);
		assert_consistent(fx.hyp);
		world_free(&before);
		fx_fini(&fx);
	}
}

/* A teardown without memory stops with the VM alive and consistent; it finishes later. */
static void test_teardown_without_memory_can_be_retried(void **state)
{
	static struct hog hog;
	struct fx *fx = *state;
	struct pkvm_vm *vm = fx->vm[VM_PROT];
	struct world before;

	ok(pkvm_host_donate_guest(vm, fx->a, 0));
	ok(pkvm_host_donate_guest(vm, fx->a + 1, 1));
	drain_reserve(fx->hyp);
	take_snapshot(fx->hyp, &before);
	hog_all(&hog);
	assert_int_equal(pkvm_vm_teardown(vm), -ENOMEM);
	expect_unchanged(fx->hyp, &before);
	hog_release(&hog);
	ok(pkvm_vm_teardown(vm));
	fx->vm[VM_PROT] = NULL;
	assert_int_equal(pkvm_host_state(fx->hyp, fx->a), O);
	assert_int_equal(pkvm_host_state(fx->hyp, fx->a + 1), O);
	assert_consistent(fx->hyp);
	world_free(&before);
}

/* ---- teardown ---- */

static void test_teardown_reclaims_every_page(void **state)
{
	struct fx *fx = *state;
	struct pkvm_hyp *hyp = fx->hyp;
	struct pkvm_vm *vm = fx->vm[VM_NP], *again;
	pm_pfn_t a = fx->a, b = fx->b;
	struct pkvm_stats st;
	unsigned int id = pkvm_vm_id(vm);

	ok(pkvm_host_donate_guest(vm, a, 0));          /* owned: poisoned */
	memset(frame(a), 0xa5, PM_PAGE_SIZE);
	ok(pkvm_host_donate_guest(vm, a + 1, 1));      /* shared with the host: returned */
	ok(pkvm_guest_share_host(vm, 1));
	memset(frame(a + 1), 0x77, PM_PAGE_SIZE);
	ok(pkvm_host_share_guest(vm, a + 2, 2, 1, PKVM_PROT_R));    /* lent: unshared */
	ok(pkvm_host_share_guest(fx->vm[VM_OTHER], a + 2, 2, 1, PKVM_PROT_R));
	ok(pkvm_host_share_guest(vm, b, BLOCK, BLOCK, PKVM_PROT_R));
	ok(pkvm_host_donate_guest(vm, a + 3, 3));      /* poisoned already */
	ok(pkvm_host_reclaim_page_guest(vm, 3));
	ok(pkvm_vm_teardown(vm));
	fx->vm[VM_NP] = NULL;

	assert_int_equal(pkvm_host_state(hyp, a), O);
	assert_true(pkvm_page_poisoned(hyp, a));
	assert_true(frame_reads(a, 0));
	assert_int_equal(pkvm_host_state(hyp, a + 1), O);
	assert_false(pkvm_page_poisoned(hyp, a + 1));
	assert_true(frame_reads(a + 1, 0x77));
	assert_int_equal(pkvm_host_state(hyp, a + 2), SO);   /* still lent to the other */
	assert_int_equal(pkvm_host_share_count(hyp, a + 2), 1);
	assert_int_equal(pkvm_host_state(hyp, b), O);
	assert_int_equal(pkvm_host_state(hyp, b + BLOCK - 1), O);
	host_leaf_level(hyp, b, 1);
	pkvm_hyp_get_stats(hyp, &st);
	assert_int_equal(st.pages_poisoned, 2);
	assert_int_equal(st.done[PKVM_HOST_RECLAIM_PAGE_GUEST], 3);
	assert_int_equal(st.done[PKVM_HOST_UNSHARE_GUEST], 2);
	assert_consistent(hyp);
	again = vm_new(hyp, false);                    /* the id is free again */
	assert_int_equal(pkvm_vm_id(again), id);
	assert_int_equal(pkvm_guest_state(again, 3, NULL), NP);
	fx->vm[VM_NP] = again;
}

static void test_vm_table_is_bounded(void **state)
{
	struct fx *fx = *state;
	static struct pkvm_vm *vms[PKVM_MAX_VMS];
	struct pkvm_vm_config cfg = { .protected = true };
	struct pkvm_vm *extra;
	int i, n = PKVM_MAX_VMS - NR_VMS;

	for (i = 0; i < n; i++)
		ok(pkvm_vm_create(fx->hyp, &cfg, &vms[i]));
	assert_int_equal(pkvm_vm_create(fx->hyp, &cfg, &extra), -ENOSPC);
	ok(pkvm_host_donate_guest(vms[n - 1], fx->a, 0));
	assert_int_equal(pkvm_vm_id(vms[n - 1]), PKVM_MAX_VMS - 1);
#ifndef PM_TSAN
	/* every lock at once, the highest rank included (TSan's deadlock
	 * detector follows at most 64 locks held by one thread) */
	assert_consistent(fx->hyp);
#endif
	for (i = 0; i < n; i++)
		ok(pkvm_vm_teardown(vms[i]));
}

/* ---- locks ---- */

static void take_guest_then_host(void *arg)
{
	struct fx *fx = arg;

	pkvm_lock_take(&fx->vm[VM_NP]->lock);
	pkvm_lock_take(&fx->hyp->host_lock);
}

static void take_hyp_then_host(void *arg)
{
	struct fx *fx = arg;

	pkvm_lock_take(&fx->hyp->hyp_lock);
	pkvm_lock_take(&fx->hyp->host_lock);
}

static void take_guests_in_decreasing_id(void *arg)
{
	struct fx *fx = arg;

	pkvm_lock_take(&fx->vm[VM_OTHER]->lock);
	pkvm_lock_take(&fx->vm[VM_NP]->lock);
}

static void take_in_order(void *arg)
{
	struct fx *fx = arg;

	pkvm_lock_take(&fx->hyp->host_lock);
	pkvm_lock_take(&fx->hyp->hyp_lock);
	pkvm_lock_take(&fx->vm[VM_NP]->lock);
	pkvm_lock_take(&fx->vm[VM_OTHER]->lock);
	pkvm_lock_drop(&fx->vm[VM_OTHER]->lock);
	pkvm_lock_drop(&fx->vm[VM_NP]->lock);
	pkvm_lock_drop(&fx->hyp->hyp_lock);
	pkvm_lock_drop(&fx->hyp->host_lock);
}

static void drop_out_of_order(void *arg)
{
	struct fx *fx = arg;

	pkvm_lock_take(&fx->hyp->host_lock);
	pkvm_lock_take(&fx->hyp->hyp_lock);
	pkvm_lock_drop(&fx->hyp->host_lock);
}

static void test_lock_order_is_enforced(void **state)
{
	struct fx *fx = *state;

	assert_true(pm_test_aborts(take_guest_then_host, fx));
	assert_true(pm_test_aborts(take_hyp_then_host, fx));
	assert_true(pm_test_aborts(take_guests_in_decreasing_id, fx));
	assert_true(pm_test_aborts(drop_out_of_order, fx));
	assert_false(pm_test_aborts(take_in_order, fx));
}

/* ---- the checker itself can fail ---- */

struct poke {
	uint64_t value, old;
};

static int poke_visit(struct pm_walk_ctx *ctx)
{
	struct poke *pk = ctx->arg;

	pk->old = atomic_exchange(ctx->ptep, pk->value);
	return 0;
}

/* Swaps the entry covering gfn (whatever it is) for `value`; returns the old one. */
static uint64_t poke_entry(struct pm_s2 *s2, gfn_t gfn, uint64_t value)
{
	struct poke pk = { .value = value };
	struct pm_walker w = { .visit = poke_visit, .arg = &pk, .flags = PM_WALK_LEAF };

	pm_s2_walk(s2, gfn, gfn + 1, &w);
	return pk.old;
}

static unsigned int violations_now(struct pkvm_hyp *hyp)
{
	struct world w;
	unsigned int v = check_world_locked(hyp, &w);

	world_free(&w);
	return v;
}

static void test_checker_reports_broken_invariants(void **state)
{
	struct fx *fx = *state;
	struct pkvm_hyp *hyp = fx->hyp;
	struct pkvm_vm *vm = fx->vm[VM_PROT];
	pm_pfn_t p = fx->a + 6, q = fx->a + 7;
	uint64_t old;
	int level;

	ok(pkvm_host_donate_guest(vm, p, 8));
	pkvm_hyp_lock_all(hyp);
	assert_int_equal(violations_now(hyp), 0);
	checker_quiet = true;
	/* the host maps a page the guest owns */
	old = poke_entry(&hyp->host_s2, p, pkvm_host_leaf(p, O) | PM_PTE_VALID | PM_PTE_LEAF);
	assert_true(violations_now(hyp) > 0);
	poke_entry(&hyp->host_s2, p, old);
	/* the guest claims to share a page the host does not borrow */
	pm_s2_get_leaf(vm->s2, 8, &old, &level);
	poke_entry(vm->s2, 8, (old & ~PM_PTE_SW_STATE_MASK) | PKVM_PTE_STATE(SO));
	assert_true(violations_now(hyp) > 0);
	poke_entry(vm->s2, 8, old);
	/* the hyp claims a page the host still owns */
	atomic_store(&hyp->pages[q].hyp_state, O);
	assert_true(violations_now(hyp) > 0);
	atomic_store(&hyp->pages[q].hyp_state, NP);
	/* a poisoned page that is not zero */
	frame(q)[100] = 1;
	atomic_store(&hyp->pages[q].poisoned, 1);
	assert_true(violations_now(hyp) > 0);
	atomic_store(&hyp->pages[q].poisoned, 0);
	checker_quiet = false;
	assert_int_equal(violations_now(hyp), 0);
	pkvm_hyp_unlock_all(hyp);
}

/* ---- the generic page-table additions ---- */

#define P1G (1ULL << 18)

static void test_pgtable_annotate_splits_and_zap_keeps_annotations(void **state)
{
	struct pm_s2 s2;
	uint64_t annot = 0x10, pte;
	int level;

	ok(pm_s2_init(&s2));
	ok(pm_s2_map(&s2, 0, 1, 0x100000ULL << PM_PAGE_SHIFT));
	ok(pm_s2_annotate(&s2, 5, 6, annot, NULL));
	pm_s2_get_leaf(&s2, 5, &pte, &level);
	assert_int_equal(pte, annot);
	assert_int_equal(level, 0);
	assert_true(pm_pte_annotated(pte));
	assert_true(pm_s2_lookup(&s2, 4, &pte, &level));
	assert_int_equal(level, 0);
	assert_int_equal(pm_pte_addr(pte), 0x100000 + 4);
	assert_int_equal(atomic_load(&s2.leaves[0]), 511);
	/* over nothing: tables are made, the rest stays vacant */
	ok(pm_s2_annotate(&s2, P1G + 3, P1G + 4, annot, NULL));
	pm_s2_get_leaf(&s2, P1G + 3, &pte, &level);
	assert_int_equal(pte, annot);
	pm_s2_get_leaf(&s2, P1G + 4, &pte, &level);
	assert_int_equal(pte, 0);
	/* a zap of everything removes leaves, keeps annotations and their tables */
	ok(pm_s2_zap(&s2, 0, GFN_LIMIT, NULL, NULL, NULL));
	pm_s2_get_leaf(&s2, 5, &pte, &level);
	assert_int_equal(pte, annot);
	pm_s2_get_leaf(&s2, P1G + 3, &pte, &level);
	assert_int_equal(pte, annot);
	assert_int_equal(atomic_load(&s2.leaves[0]), 0);
	/* a map replaces an annotation */
	ok(pm_s2_map(&s2, 5, 0, 0x200000ULL << PM_PAGE_SHIFT));
	assert_true(pm_s2_lookup(&s2, 5, &pte, &level));
	/* an annotation on a huge entry is copied into the table a map creates */
	poke_entry(&s2, 2 * P1G, annot);              /* the empty level-2 entry */
	ok(pm_s2_map(&s2, 2 * P1G + 7, 0, 0x300000ULL << PM_PAGE_SHIFT));
	pm_s2_get_leaf(&s2, 2 * P1G + 8, &pte, &level);
	assert_int_equal(pte, annot);
	assert_int_equal(level, 0);
	pm_s2_get_leaf(&s2, 2 * P1G + BLOCK, &pte, &level);
	assert_int_equal(pte, annot);
	assert_int_equal(level, 1);
	pm_s2_destroy(&s2);
}

static void test_pgtable_reserve_bounds_and_supplies_new_tables(void **state)
{
	struct pm_s2_mc mc = PM_S2_MC_INIT;
	struct pm_s2 s2;

	assert_int_equal(pm_s2_tables_needed(0, 0), 0);
	assert_int_equal(pm_s2_tables_needed(0, 1), 3);
	assert_int_equal(pm_s2_tables_needed(0, BLOCK), 3);
	assert_int_equal(pm_s2_tables_needed(0, BLOCK + 1), 4);
	assert_int_equal(pm_s2_tables_needed(BLOCK - 1, BLOCK + 1), 4);
	assert_int_equal(pm_s2_tables_needed(0, P1G + 1), 513 + 2 + 1);
	ok(pm_s2_init(&s2));
	assert_int_equal(pm_s2_map_mc(&s2, 7, 0, 0x100000ULL << PM_PAGE_SHIFT, &mc), -ENOMEM);
	assert_int_equal(atomic_load(&s2.tables), 1);   /* the map made nothing */
	ok(pm_s2_mc_topup(&mc, 2));
	assert_int_equal(pm_s2_map_mc(&s2, 7, 0, 0x100000ULL << PM_PAGE_SHIFT, &mc), -ENOMEM);
	assert_int_equal(mc.nr, 0);                     /* two tables made on the way */
	ok(pm_s2_mc_topup(&mc, 1));
	ok(pm_s2_map_mc(&s2, 7, 0, 0x100000ULL << PM_PAGE_SHIFT, &mc));
	assert_int_equal(atomic_load(&s2.tables), 4);
	ok(pm_s2_mc_topup(&mc, 5));
	assert_int_equal(mc.nr, 5);
	pm_s2_mc_free(&mc);
	assert_int_equal(mc.nr, 0);
	pm_s2_destroy(&s2);
}

static void test_pgtable_update_leaves_splits_only_partial_leaves(void **state)
{
	uint64_t st1 = 1ULL << PM_PTE_SW_STATE_SHIFT, st2 = 2ULL << PM_PTE_SW_STATE_SHIFT, pte;
	struct pm_s2_mc mc = PM_S2_MC_INIT;
	struct pm_s2 s2;
	int level;

	ok(pm_s2_init(&s2));
	ok(pm_s2_map(&s2, 0, 1, 0x100000ULL << PM_PAGE_SHIFT));
	ok(pm_s2_update_leaves(&s2, 0, BLOCK, PM_PTE_SW_STATE_MASK, st1, &mc));
	assert_int_equal(atomic_load(&s2.leaves[1]), 1);    /* whole: no split */
	ok(pm_s2_update_leaves(&s2, 3, 4, PM_PTE_SW_STATE_MASK, st1, &mc));
	assert_int_equal(atomic_load(&s2.leaves[1]), 1);    /* unchanged: no split */
	assert_int_equal(pm_s2_update_leaves(&s2, 3, 4, PM_PTE_SW_STATE_MASK, st2, &mc), -ENOMEM);
	ok(pm_s2_mc_topup(&mc, 1));
	ok(pm_s2_update_leaves(&s2, 3, 4, PM_PTE_SW_STATE_MASK, st2, &mc));
	assert_int_equal(atomic_load(&s2.leaves[0]), BLOCK);
	assert_true(pm_s2_lookup(&s2, 3, &pte, &level));
	assert_int_equal(pte & PM_PTE_SW_STATE_MASK, st2);
	assert_int_equal(pm_pte_addr(pte), 0x100000 + 3);
	assert_true(pm_s2_lookup(&s2, 4, &pte, &level));
	assert_int_equal(pte & PM_PTE_SW_STATE_MASK, st1);
	assert_int_equal(pm_s2_update_leaves(&s2, BLOCK - 1, BLOCK + 1, 0, PM_PTE_WRITE, NULL),
			 -ENOENT);
	pm_s2_destroy(&s2);
}

/* ---- the shadow model: the reference table as a plain specification ---- */

#define SH_GFNS   (4 * BLOCK)       /* the gfns a run uses */
#define SH_FRAMES (2 * BLOCK)       /* A then B */

struct sh_frame {
	int host;                   /* O, SO, SB, or NP */
	int owner;                  /* PKVM_ID_HYP or _GUEST when NP */
	unsigned int owner_vm;
	gfn_t owner_gfn;
	int hyp;
	unsigned int pins, count;
	bool poisoned;
	uint64_t tag;               /* the frame's first 8 bytes */
};

struct sh_gfn {
	int state;                  /* O, SO, SB, NP, PSN */
	gfn_t start;                /* of the leaf */
	uint64_t nr;
	pm_pfn_t pfn;               /* of the leaf's first page */
	unsigned int prot;
};

struct shadow {
	struct fx *fx;
	pm_pfn_t nr_frames;
	struct sh_frame f[SH_FRAMES];
	struct sh_gfn g[NR_VMS][SH_GFNS];
	uint64_t done[PKVM_NR_TRANSITIONS], refused[PKVM_NR_TRANSITIONS];
	uint64_t faults, poisoned, next_tag, rng;
	unsigned long step;
	char what[160];             /* the last step, for failure reports */
};

/* Equality of the model and the page tables, reporting the step that broke it. */
#define SH_EQ(sh, x, y)                                                             \
	do {                                                                        \
		if ((uint64_t)(x) != (uint64_t)(y))                                 \
			fprintf(stderr, "step %lu (%s): %s = %llu, model %llu\n",  \
				(sh)->step, (sh)->what, #x,                         \
				(unsigned long long)(x), (unsigned long long)(y));  \
		assert_int_equal((x), (y));                                         \
	} while (0)

static struct sh_frame *sf(struct shadow *sh, pm_pfn_t p)
{
	if (p >= sh->fx->a && p < sh->fx->a + BLOCK)
		return &sh->f[p - sh->fx->a];
	if (p >= sh->fx->b && p < sh->fx->b + BLOCK)
		return &sh->f[BLOCK + p - sh->fx->b];
	return NULL;
}

/* A frame of a valid range: every one is a test frame (the generator sees to it). */
static struct sh_frame *sfv(struct shadow *sh, pm_pfn_t p)
{
	struct sh_frame *f = sf(sh, p);

	assert_non_null(f);
	return f;
}

static bool sh_protected(int vm)
{
	return vm == VM_PROT;
}

static int sh_ret(struct shadow *sh, enum pkvm_transition t, int err)
{
	if (err)
		sh->refused[t]++;
	else
		sh->done[t]++;
	return -err;
}

static bool sh_pfns_ok(struct shadow *sh, pm_pfn_t p, uint64_t n)
{
	return n && p < sh->nr_frames && n <= sh->nr_frames - p;
}

static bool sh_gfns_ok(gfn_t g, uint64_t n)
{
	return g < GFN_LIMIT && n <= GFN_LIMIT - g;
}

static bool sh_block_ok(pm_pfn_t p, gfn_t g, uint64_t n, bool pfn_known)
{
	return n == 1 || (n == BLOCK && !(g % BLOCK) && (!pfn_known || !(p % BLOCK)));
}

static bool sh_mapped(const struct sh_gfn *x)
{
	return x->state == O || x->state == SO || x->state == SB;
}

static void sh_host_take(struct sh_frame *f, int owner, unsigned int vm, gfn_t g)
{
	f->host = NP;
	f->owner = owner;
	f->owner_vm = vm;
	f->owner_gfn = g;
	f->poisoned = false;
}

static void sh_host_give(struct sh_frame *f, int state)
{
	f->host = state;
	f->owner = 0;
	f->owner_vm = 0;
	f->owner_gfn = 0;
}

static int sh_host_share_hyp(struct shadow *sh, pm_pfn_t p)
{
	struct sh_frame *f;

	if (!sh_pfns_ok(sh, p, 1))
		return sh_ret(sh, PKVM_HOST_SHARE_HYP, EINVAL);
	f = sfv(sh, p);
	if (f->host != O || f->hyp != NP)
		return sh_ret(sh, PKVM_HOST_SHARE_HYP, EPERM);
	f->host = SO;
	f->hyp = SB;
	f->poisoned = false;
	return sh_ret(sh, PKVM_HOST_SHARE_HYP, 0);
}

static int sh_host_unshare_hyp(struct shadow *sh, pm_pfn_t p)
{
	struct sh_frame *f;

	if (!sh_pfns_ok(sh, p, 1))
		return sh_ret(sh, PKVM_HOST_UNSHARE_HYP, EINVAL);
	f = sfv(sh, p);
	if (f->host != SO || f->count || f->hyp != SB)
		return sh_ret(sh, PKVM_HOST_UNSHARE_HYP, EPERM);
	if (f->pins)
		return sh_ret(sh, PKVM_HOST_UNSHARE_HYP, EBUSY);
	f->host = O;
	f->hyp = NP;
	return sh_ret(sh, PKVM_HOST_UNSHARE_HYP, 0);
}

static int sh_host_donate_hyp(struct shadow *sh, pm_pfn_t p, uint64_t n)
{
	uint64_t i;

	if (!sh_pfns_ok(sh, p, n))
		return sh_ret(sh, PKVM_HOST_DONATE_HYP, EINVAL);
	for (i = 0; i < n; i++)
		if (sfv(sh, p + i)->host != O || sfv(sh, p + i)->hyp != NP)
			return sh_ret(sh, PKVM_HOST_DONATE_HYP, EPERM);
	for (i = 0; i < n; i++) {
		sh_host_take(sfv(sh, p + i), PKVM_ID_HYP, 0, 0);
		sfv(sh, p + i)->hyp = O;
	}
	return sh_ret(sh, PKVM_HOST_DONATE_HYP, 0);
}

static int sh_hyp_donate_host(struct shadow *sh, pm_pfn_t p, uint64_t n)
{
	uint64_t i;

	if (!sh_pfns_ok(sh, p, n))
		return sh_ret(sh, PKVM_HYP_DONATE_HOST, EINVAL);
	for (i = 0; i < n; i++)
		if (sfv(sh, p + i)->hyp != O || sfv(sh, p + i)->host != NP)
			return sh_ret(sh, PKVM_HYP_DONATE_HOST, EPERM);
	for (i = 0; i < n; i++) {
		sh_host_give(sfv(sh, p + i), O);
		sfv(sh, p + i)->hyp = NP;
	}
	return sh_ret(sh, PKVM_HYP_DONATE_HOST, 0);
}

static void sh_guest_set(struct shadow *sh, int vm, gfn_t g, uint64_t n, int state,
			 pm_pfn_t p, unsigned int prot)
{
	uint64_t i;

	for (i = 0; i < n; i++) {
		struct sh_gfn *x = &sh->g[vm][g + i];

		x->state = state;
		x->start = g;
		x->nr = n;
		x->pfn = p;
		x->prot = prot;
	}
}

static int sh_host_share_guest(struct shadow *sh, int vm, pm_pfn_t p, gfn_t g, uint64_t n,
			       unsigned int prot)
{
	const enum pkvm_transition t = PKVM_HOST_SHARE_GUEST;
	uint64_t i;

	if ((prot & ~PKVM_PROT_RWX) || !sh_block_ok(p, g, n, true) || !sh_pfns_ok(sh, p, n) ||
	    !sh_gfns_ok(g, n))
		return sh_ret(sh, t, EINVAL);
	for (i = 0; i < n; i++)
		if (sh_mapped(&sh->g[vm][g + i]))
			return sh_ret(sh, t, EPERM);
	for (i = 0; i < n; i++) {
		struct sh_frame *f = sfv(sh, p + i);

		if (f->host == O)
			continue;
		if (f->host != SO || !f->count || sh_protected(vm))
			return sh_ret(sh, t, EPERM);
		if (f->count == PKVM_SHARE_GUEST_MAX)
			return sh_ret(sh, t, EBUSY);
	}
	for (i = 0; i < n; i++) {
		struct sh_frame *f = sfv(sh, p + i);

		f->host = SO;
		f->count++;
		f->poisoned = false;
	}
	sh_guest_set(sh, vm, g, n, SB, p, prot | PKVM_PROT_R);
	return sh_ret(sh, t, 0);
}

/* The host's pages back from a guest leaf it lent: OWNED when the last lend ends. */
static void sh_unlend(struct shadow *sh, pm_pfn_t p, uint64_t n)
{
	uint64_t i;

	for (i = 0; i < n; i++) {
		struct sh_frame *f = sfv(sh, p + i);

		if (!--f->count)
			f->host = O;
	}
}

static int sh_host_unshare_guest(struct shadow *sh, int vm, gfn_t g, uint64_t n)
{
	const enum pkvm_transition t = PKVM_HOST_UNSHARE_GUEST;
	struct sh_gfn *x;
	uint64_t i;

	if (!sh_block_ok(0, g, n, false) || !sh_gfns_ok(g, n))
		return sh_ret(sh, t, EINVAL);
	x = &sh->g[vm][g];
	if (!sh_mapped(x))
		return sh_ret(sh, t, ENOENT);
	if (x->nr != n)
		return sh_ret(sh, t, E2BIG);
	if (x->state != SB)
		return sh_ret(sh, t, EPERM);
	for (i = 0; i < n; i++)
		if (sfv(sh, x->pfn + i)->host != SO || !sfv(sh, x->pfn + i)->count)
			return sh_ret(sh, t, EPERM);
	sh_unlend(sh, x->pfn, n);
	sh_guest_set(sh, vm, g, n, NP, 0, 0);
	return sh_ret(sh, t, 0);
}

static int sh_host_donate_guest(struct shadow *sh, int vm, pm_pfn_t p, gfn_t g)
{
	const enum pkvm_transition t = PKVM_HOST_DONATE_GUEST;

	if (!sh_pfns_ok(sh, p, 1) || !sh_gfns_ok(g, 1))
		return sh_ret(sh, t, EINVAL);
	if (sfv(sh, p)->host != O || sh_mapped(&sh->g[vm][g]))
		return sh_ret(sh, t, EPERM);
	sh_host_take(sfv(sh, p), PKVM_ID_GUEST, pkvm_vm_id(sh->fx->vm[vm]), g);
	sh_guest_set(sh, vm, g, 1, O, p, PKVM_PROT_RWX);
	return sh_ret(sh, t, 0);
}

/* The guest's own lookup of its 4K page at g: 0 or an errno. */
static int sh_guest_page(struct shadow *sh, int vm, gfn_t g)
{
	const struct sh_gfn *x;

	if (!sh_gfns_ok(g, 1))
		return EINVAL;
	x = &sh->g[vm][g];
	if (x->state == PSN)
		return EHWPOISON;
	if (!sh_mapped(x))
		return ENOENT;
	return x->nr != 1 ? E2BIG : 0;
}

static int sh_guest_share_host(struct shadow *sh, int vm, gfn_t g)
{
	const enum pkvm_transition t = PKVM_GUEST_SHARE_HOST;
	int err = sh_guest_page(sh, vm, g);
	struct sh_gfn *x;

	if (err)
		return sh_ret(sh, t, err);
	x = &sh->g[vm][g];
	if (x->state != O || sfv(sh, x->pfn)->host != NP)
		return sh_ret(sh, t, EPERM);
	x->state = SO;
	sh_host_give(sfv(sh, x->pfn), SB);
	return sh_ret(sh, t, 0);
}

static int sh_guest_unshare_host(struct shadow *sh, int vm, gfn_t g)
{
	const enum pkvm_transition t = PKVM_GUEST_UNSHARE_HOST;
	int err = sh_guest_page(sh, vm, g);
	struct sh_gfn *x;

	if (err)
		return sh_ret(sh, t, err);
	x = &sh->g[vm][g];
	if (x->state != SO || sfv(sh, x->pfn)->host != SB)
		return sh_ret(sh, t, EPERM);
	x->state = O;
	sh_host_take(sfv(sh, x->pfn), PKVM_ID_GUEST, pkvm_vm_id(sh->fx->vm[vm]), g);
	return sh_ret(sh, t, 0);
}

/* The commit of a reclaim; the caller checked it is allowed. */
static void sh_reclaim(struct shadow *sh, int vm, gfn_t g)
{
	struct sh_gfn *x = &sh->g[vm][g];
	struct sh_frame *f = sfv(sh, x->pfn);

	if (x->state == O) {
		sh_guest_set(sh, vm, g, 1, PSN, 0, 0);
		f->tag = 0;
		sh_host_give(f, O);
		f->poisoned = true;
		sh->poisoned++;
	} else {
		sh_guest_set(sh, vm, g, 1, NP, 0, 0);
		sh_host_give(f, O);
	}
}

static int sh_host_reclaim(struct shadow *sh, int vm, gfn_t g)
{
	const enum pkvm_transition t = PKVM_HOST_RECLAIM_PAGE_GUEST;
	struct sh_gfn *x;

	if (!sh_gfns_ok(g, 1))
		return sh_ret(sh, t, EINVAL);
	x = &sh->g[vm][g];
	if (x->nr != 1 || (x->state != O && x->state != SO))
		return sh_ret(sh, t, EPERM);
	if (sfv(sh, x->pfn)->host != (x->state == O ? NP : SB))
		return sh_ret(sh, t, EPERM);
	sh_reclaim(sh, vm, g);
	return sh_ret(sh, t, 0);
}

static int sh_relax_perms(struct shadow *sh, int vm, gfn_t g, unsigned int prot)
{
	const enum pkvm_transition t = PKVM_RELAX_PERMS;
	struct sh_gfn *x;
	uint64_t i;

	if (sh_protected(vm))
		return sh_ret(sh, t, EPERM);
	if ((prot & ~PKVM_PROT_RWX) || !sh_gfns_ok(g, 1))
		return sh_ret(sh, t, EINVAL);
	x = &sh->g[vm][g];
	if (!sh_mapped(x))
		return sh_ret(sh, t, ENOENT);
	if (x->state != SB)
		return sh_ret(sh, t, EPERM);
	for (i = 0; i < x->nr; i++)
		if (sfv(sh, x->pfn + i)->host != SO || !sfv(sh, x->pfn + i)->count)
			return sh_ret(sh, t, EPERM);
	sh_guest_set(sh, vm, x->start, x->nr, SB, x->pfn, x->prot | prot);
	return sh_ret(sh, t, 0);
}

static int sh_pin(struct shadow *sh, pm_pfn_t p)
{
	if (!sh_pfns_ok(sh, p, 1))
		return -EINVAL;
	if (sfv(sh, p)->hyp != SB)
		return -EPERM;
	sfv(sh, p)->pins++;
	return 0;
}

static int sh_host_access(struct shadow *sh, pm_pfn_t p, bool write)
{
	struct sh_frame *f;

	if (p >= sh->nr_frames)
		return -EINVAL;
	f = sfv(sh, p);
	if (f->host == NP) {
		sh->faults++;
		return -EFAULT;
	}
	if (write)
		f->poisoned = false;
	return 0;
}

static void sh_guest_clear(struct shadow *sh, int vm)
{
	gfn_t g;

	memset(sh->g[vm], 0, sizeof(sh->g[vm]));
	for (g = 0; g < SH_GFNS; g++)
		sh->g[vm][g].state = NP;
}

/* Teardown: every leaf goes back in gfn order, by the transition that returns it. */
static void sh_teardown(struct shadow *sh, int vm)
{
	gfn_t g;

	for (g = 0; g < SH_GFNS; g++) {
		struct sh_gfn *x = &sh->g[vm][g];

		if (!sh_mapped(x) || x->start != g)
			continue;
		if (x->state == SB) {
			sh_unlend(sh, x->pfn, x->nr);
			sh->done[PKVM_HOST_UNSHARE_GUEST]++;
		} else {
			sh_reclaim(sh, vm, g);
			sh->done[PKVM_HOST_RECLAIM_PAGE_GUEST]++;
		}
	}
	sh_guest_clear(sh, vm);
}

static void sh_init(struct shadow *sh, struct fx *fx, uint64_t seed)
{
	int i, vm;

	memset(sh, 0, sizeof(*sh));
	sh->fx = fx;
	sh->nr_frames = pm_pool_nr_frames();
	sh->rng = seed;
	for (i = 0; i < SH_FRAMES; i++) {
		sh->f[i].host = O;
		sh->f[i].hyp = NP;
	}
	for (vm = 0; vm < NR_VMS; vm++)
		sh_guest_clear(sh, vm);
}

/* ---- comparing the model with the page tables ---- */

static void compare_frames(struct shadow *sh, const struct world *w)
{
	pm_pfn_t p;

	for (p = 0; p < w->nr_frames; p++) {
		const struct fview *v = &w->f[p];
		const struct sh_frame *f = sf(sh, p);

		if (!f) {                          /* not a test frame: untouched */
			SH_EQ(sh, v->host, O);
			SH_EQ(sh, v->hyp, NP);
			continue;
		}
		SH_EQ(sh, v->host, f->host);
		if (f->host == NP) {
			SH_EQ(sh, v->owner, f->owner);
			SH_EQ(sh, v->owner_vm, f->owner_vm);
			SH_EQ(sh, v->owner_gfn, f->owner_gfn);
		}
		SH_EQ(sh, v->hyp, f->hyp);
		SH_EQ(sh, v->pins, f->pins);
		SH_EQ(sh, v->count, f->count);
		SH_EQ(sh, v->poisoned, f->poisoned);
		SH_EQ(sh, *(uint64_t *)frame(p), f->tag);
	}
}

static void compare_guests(struct shadow *sh, const struct world *w)
{
	size_t k = 0;
	int vm;
	gfn_t g;

	for (vm = 0; vm < NR_VMS; vm++) {
		unsigned int id = pkvm_vm_id(sh->fx->vm[vm]);

		for (g = 0; g < SH_GFNS; g++) {
			const struct sh_gfn *x = &sh->g[vm][g];
			const struct gleaf *l;

			if (x->state == NP || x->start != g)
				continue;
			assert_true(k < w->nleaves);
			l = &w->leaves[k++];
			SH_EQ(sh, l->vm, id);
			SH_EQ(sh, l->gfn, g);
			SH_EQ(sh, l->state, x->state);
			if (x->state == PSN)
				continue;
			SH_EQ(sh, l->nr, x->nr);
			SH_EQ(sh, l->pfn, x->pfn);
			SH_EQ(sh, l->prot, x->prot);
		}
	}
	SH_EQ(sh, k, w->nleaves);
}

static void compare_stats(struct shadow *sh)
{
	struct pkvm_stats st;
	int t;

	pkvm_hyp_get_stats(sh->fx->hyp, &st);
	for (t = 0; t < PKVM_NR_TRANSITIONS; t++) {
		SH_EQ(sh, st.done[t], sh->done[t]);
		SH_EQ(sh, st.refused[t], sh->refused[t]);
	}
	SH_EQ(sh, st.host_s2_faults, sh->faults);
	SH_EQ(sh, st.pages_poisoned, sh->poisoned);
}

static void compare_all(struct shadow *sh)
{
	struct world w;

	assert_int_equal(check_world(sh->fx->hyp, &w), 0);
	compare_frames(sh, &w);
	compare_guests(sh, &w);
	compare_stats(sh);
	world_free(&w);
}

/* ---- random arguments ---- */

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static uint64_t below(struct shadow *sh, uint64_t n)
{
	return rnd(&sh->rng) % n;
}

/* Mostly a few pages of A (so that states collide), B's block, or no frame at all. */
static pm_pfn_t gen_pfn(struct shadow *sh)
{
	uint64_t r = below(sh, 100);

	if (r < 80)
		return sh->fx->a + below(sh, 16);
	if (r < 90)
		return sh->fx->b + (below(sh, 2) ? 0 : below(sh, 8));
	if (r < 96)
		return sh->nr_frames + below(sh, 4);
	return UINT64_MAX - below(sh, 2);
}

/* A page count; a valid range stays inside the test block it starts in. */
static uint64_t gen_n(struct shadow *sh, pm_pfn_t p)
{
	uint64_t r = below(sh, 100), n, end;

	n = r < 60 ? 1 : r < 75 ? 1 + below(sh, 4) : r < 87 ? BLOCK : r < 92 ? 0 :
	    below(sh, 2) ? BLOCK + 1 : UINT64_MAX;
	if (!sh_pfns_ok(sh, p, n))
		return n;
	end = p < sh->fx->a + BLOCK && p >= sh->fx->a ? sh->fx->a + BLOCK : sh->fx->b + BLOCK;
	return p + n > end ? end - p : n;
}

static gfn_t gen_gfn(struct shadow *sh)
{
	uint64_t r = below(sh, 100);

	if (r < 70)
		return below(sh, 8);
	if (r < 80)
		return BLOCK * below(sh, 4);
	if (r < 88)
		return BLOCK * below(sh, 4) + below(sh, 4);
	if (r < 95)
		return below(sh, SH_GFNS);
	return GFN_LIMIT + below(sh, 3);
}

/* A guest-side page count: 1, a block, or something invalid. */
static uint64_t gen_gn(struct shadow *sh)
{
	uint64_t r = below(sh, 100);

	return r < 75 ? 1 : r < 92 ? BLOCK : r < 96 ? 0 : 2;
}

static unsigned int gen_prot(struct shadow *sh)
{
	unsigned int prot = (unsigned int)below(sh, 8);

	return below(sh, 100) < 88 ? prot : prot | 1u << (3 + below(sh, 4));
}

/* Half the time, a gfn the guest uses (so that deeper states are reached). */
static gfn_t pick_used_gfn(struct shadow *sh, int vm, gfn_t g)
{
	gfn_t c[8 + 4];
	int n = 0, i;

	for (i = 0; i < 8; i++)
		if (sh->g[vm][i].state != NP)
			c[n++] = (gfn_t)i;
	for (i = 0; i < 4; i++)
		if (sh->g[vm][i * BLOCK].state != NP)
			c[n++] = (gfn_t)i * BLOCK;
	return n && below(sh, 2) ? c[below(sh, (uint64_t)n)] : g;
}

/* Half the time, a frame the host does not hold alone. */
static pm_pfn_t pick_used_pfn(struct shadow *sh, pm_pfn_t p)
{
	pm_pfn_t c[17];
	int n = 0, i;

	for (i = 0; i < 17; i++) {
		pm_pfn_t q = i < 16 ? sh->fx->a + (pm_pfn_t)i : sh->fx->b;

		if (sfv(sh, q)->host != O || sfv(sh, q)->hyp != NP)
			c[n++] = q;
	}
	return n && below(sh, 2) ? c[below(sh, (uint64_t)n)] : p;
}

/* For a guest-side call: mostly the size of the leaf at g. */
static uint64_t gen_gn_at(struct shadow *sh, int vm, gfn_t g)
{
	if (g < SH_GFNS && sh_mapped(&sh->g[vm][g]) && below(sh, 4))
		return sh->g[vm][g].nr;
	return gen_gn(sh);
}

/* ---- one random step ---- */

enum step {
	ST_SHARE_HYP, ST_UNSHARE_HYP, ST_DONATE_HYP, ST_HYP_DONATE, ST_SHARE_GUEST,
	ST_UNSHARE_GUEST, ST_DONATE_GUEST, ST_DONATE_GUEST_2, ST_GUEST_SHARE,
	ST_GUEST_SHARE_2, ST_GUEST_UNSHARE, ST_RECLAIM, ST_RELAX, ST_PIN, ST_UNPIN,
	ST_HOST_READ, ST_HOST_WRITE, ST_GUEST_WRITE, ST_TEARDOWN, NR_STEPS
};

static void step_host_access(struct shadow *sh, pm_pfn_t p, bool write)
{
	int want = sh_host_access(sh, p, write);

	assert_int_equal(pkvm_host_access(sh->fx->hyp, p, write), want);
	if (want)
		return;
	if (write) {
		sh->next_tag++;
		sfv(sh, p)->tag = sh->next_tag;
		*(uint64_t *)frame(p) = sh->next_tag;
	} else {
		assert_int_equal(*(uint64_t *)frame(p), sfv(sh, p)->tag);
	}
}

/* The guest writes a page it owns (shared with the host or not). */
static void step_guest_write(struct shadow *sh, int vm, gfn_t g)
{
	struct sh_gfn *x;

	if (g >= SH_GFNS)
		return;
	x = &sh->g[vm][g];
	if (x->state != O && x->state != SO)
		return;
	sh->next_tag++;
	sfv(sh, x->pfn)->tag = sh->next_tag;
	*(uint64_t *)frame(x->pfn) = sh->next_tag;
}

static void step_teardown(struct shadow *sh, int vm)
{
	struct fx *fx = sh->fx;
	unsigned int id = pkvm_vm_id(fx->vm[vm]);

	ok(pkvm_vm_teardown(fx->vm[vm]));
	sh_teardown(sh, vm);
	fx->vm[vm] = vm_new(fx->hyp, sh_protected(vm));
	assert_int_equal(pkvm_vm_id(fx->vm[vm]), id);
}

static void random_step(struct shadow *sh)
{
	struct pkvm_hyp *hyp = sh->fx->hyp;
	int vm = (int)below(sh, NR_VMS);
	struct pkvm_vm *v = sh->fx->vm[vm];
	pm_pfn_t p = pick_used_pfn(sh, gen_pfn(sh));
	gfn_t g = pick_used_gfn(sh, vm, gen_gfn(sh));
	uint64_t n;
	unsigned int prot;
	int want;

	enum step st = (enum step)below(sh, NR_STEPS);

	snprintf(sh->what, sizeof(sh->what), "op %d vm %d pfn %#llx gfn %#llx", st, vm,
		 (unsigned long long)p, (unsigned long long)g);
	switch (st) {
	case ST_SHARE_HYP:
		assert_int_equal(pkvm_host_share_hyp(hyp, p), sh_host_share_hyp(sh, p));
		break;
	case ST_UNSHARE_HYP:
		assert_int_equal(pkvm_host_unshare_hyp(hyp, p), sh_host_unshare_hyp(sh, p));
		break;
	case ST_DONATE_HYP:
		n = gen_n(sh, p);
		assert_int_equal(pkvm_host_donate_hyp(hyp, p, n), sh_host_donate_hyp(sh, p, n));
		break;
	case ST_HYP_DONATE:
		n = gen_n(sh, p);
		assert_int_equal(pkvm_hyp_donate_host(hyp, p, n), sh_hyp_donate_host(sh, p, n));
		break;
	case ST_SHARE_GUEST:
		n = gen_gn(sh);
		prot = gen_prot(sh);
		want = sh_host_share_guest(sh, vm, p, g, n, prot);
		assert_int_equal(pkvm_host_share_guest(v, p, g, n, prot), want);
		break;
	case ST_UNSHARE_GUEST:
		n = gen_gn_at(sh, vm, g);
		assert_int_equal(pkvm_host_unshare_guest(v, g, n),
				 sh_host_unshare_guest(sh, vm, g, n));
		break;
	case ST_DONATE_GUEST:
	case ST_DONATE_GUEST_2:
		assert_int_equal(pkvm_host_donate_guest(v, p, g),
				 sh_host_donate_guest(sh, vm, p, g));
		break;
	case ST_GUEST_SHARE:
	case ST_GUEST_SHARE_2:
		assert_int_equal(pkvm_guest_share_host(v, g), sh_guest_share_host(sh, vm, g));
		break;
	case ST_GUEST_UNSHARE:
		assert_int_equal(pkvm_guest_unshare_host(v, g), sh_guest_unshare_host(sh, vm, g));
		break;
	case ST_RECLAIM:
		assert_int_equal(pkvm_host_reclaim_page_guest(v, g), sh_host_reclaim(sh, vm, g));
		break;
	case ST_RELAX:
		prot = gen_prot(sh);
		assert_int_equal(pkvm_relax_perms(v, g, prot), sh_relax_perms(sh, vm, g, prot));
		break;
	case ST_PIN:
		assert_int_equal(pkvm_hyp_pin_shared(hyp, p), sh_pin(sh, p));
		break;
	case ST_UNPIN:
		if (sf(sh, p) && sfv(sh, p)->pins) {
			pkvm_hyp_unpin_shared(hyp, p);
			sfv(sh, p)->pins--;
		}
		break;
	case ST_HOST_READ:
		step_host_access(sh, p, false);
		break;
	case ST_HOST_WRITE:
		step_host_access(sh, p, true);
		break;
	case ST_GUEST_WRITE:
		step_guest_write(sh, vm, g);
		break;
	case ST_TEARDOWN:
		if (below(sh, 8) == 0)
			step_teardown(sh, vm);
		break;
	default:
		fail();
	}
}

/* Sanitizer builds run this 30-50 times slower: half the steps there. */
#if defined(PM_ASAN) || defined(PM_TSAN)
#define RANDOM_STEPS 3000
#else
#define RANDOM_STEPS 6000
#endif

static unsigned long env_steps(const char *name, unsigned long dflt)
{
	const char *s = getenv(name);

	return s ? strtoul(s, NULL, 0) : dflt;
}

/*
 * Thousands of random transitions, valid and not, each checked against the
 * shadow model (return code, every frame's and every guest page's state,
 * frame contents, statistics) and followed by the invariant checker.
 */
static void test_random_transitions_match_the_model(void **state)
{
	static struct shadow sh;
	struct fx *fx = *state;
	unsigned long i, steps = env_steps("PKVM_RANDOM_STEPS", RANDOM_STEPS);
	uint64_t seed = env_steps("PKVM_RANDOM_SEED", 0x9e3779b97f4a7c15ULL);
	struct pkvm_stats st;

	fprintf(stderr, "random run: %lu steps, seed %#llx\n", steps, (unsigned long long)seed);
	sh_init(&sh, fx, seed);
	compare_all(&sh);
	for (i = 0; i < steps; i++) {
		sh.step = i;
		random_step(&sh);
		compare_all(&sh);
	}
	pkvm_hyp_get_stats(fx->hyp, &st);
	for (i = 0; i < PKVM_NR_TRANSITIONS; i++) {
		fprintf(stderr, "  %-24s %6llu done %6llu refused\n", pkvm_transition_name(i),
			(unsigned long long)st.done[i], (unsigned long long)st.refused[i]);
		assert_true(st.done[i] > 0);         /* every transition really happened */
	}
	fprintf(stderr, "  host stage-2 faults %llu, pages poisoned %llu\n",
		(unsigned long long)st.host_s2_faults, (unsigned long long)st.pages_poisoned);
	assert_true(st.pages_poisoned > 0);
}

/* ---- concurrency ---- */

#define MT_GUESTS   4
#define MT_GFNS     32
#define MT_GUEST_FRAMES 128      /* A[0, 128): donated to the guests, or lent */
#define MT_HYP_FRAMES   64       /* A[128, 192): shared with and donated to the hyp */

struct mt {
	struct fx *fx;
	struct pkvm_vm *guest[MT_GUESTS];    /* protected */
	atomic_bool stop;                    /* the checker stops */
	atomic_bool hosts_done;              /* the host threads have finished */
	atomic_uint_fast64_t done[PKVM_NR_TRANSITIONS];
	atomic_uint_fast64_t faults;
	atomic_uint checks, violations;
	unsigned long iters;
};

struct mt_thread {
	struct mt *mt;
	pthread_t tid;
	uint64_t rng;
	int index;
};

static uint64_t mt_below(struct mt_thread *t, uint64_t n)
{
	return rnd(&t->rng) % n;
}

/* A transition's result: one of the errnos it may give here, counted when 0. */
static void mt_result(struct mt *mt, enum pkvm_transition kind, int ret)
{
	switch (ret) {
	case 0:
		atomic_fetch_add(&mt->done[kind], 1);
		break;
	case -EPERM: case -ENOENT: case -EHWPOISON: case -EBUSY: case -E2BIG:
		break;
	default:
		fprintf(stderr, "%s: unexpected %d\n", pkvm_transition_name(kind), ret);
		atomic_fetch_add(&mt->violations, 1);
	}
}

/* A vCPU of guest `index`: shares and unshares its pages with the host. */
static void *mt_vcpu(void *arg)
{
	struct mt_thread *t = arg;
	struct mt *mt = t->mt;
	struct pkvm_vm *vm = mt->guest[t->index];
	unsigned long i;

	/* Share only once the host has donated something, and go on while
	 * the host runs: on a loaded machine the vCPU threads could otherwise
	 * run their whole loop before the host threads start. */
	while (!atomic_load(&mt->done[PKVM_HOST_DONATE_GUEST]) && !atomic_load(&mt->hosts_done))
		sched_yield();
	for (i = 0; i < mt->iters || !atomic_load(&mt->hosts_done); i++) {
		gfn_t g = mt_below(t, MT_GFNS);

		if (mt_below(t, 2))
			mt_result(mt, PKVM_GUEST_SHARE_HOST, pkvm_guest_share_host(vm, g));
		else
			mt_result(mt, PKVM_GUEST_UNSHARE_HOST, pkvm_guest_unshare_host(vm, g));
	}
	return NULL;
}

static void mt_host_hyp_step(struct mt_thread *t, pm_pfn_t p)
{
	struct mt *mt = t->mt;
	struct pkvm_hyp *hyp = mt->fx->hyp;

	switch (mt_below(t, 5)) {
	case 0:
		mt_result(mt, PKVM_HOST_SHARE_HYP, pkvm_host_share_hyp(hyp, p));
		break;
	case 1:
		mt_result(mt, PKVM_HOST_UNSHARE_HYP, pkvm_host_unshare_hyp(hyp, p));
		break;
	case 2:
		mt_result(mt, PKVM_HOST_DONATE_HYP, pkvm_host_donate_hyp(hyp, p, 1));
		break;
	case 3:
		mt_result(mt, PKVM_HYP_DONATE_HOST, pkvm_hyp_donate_host(hyp, p, 1));
		break;
	default:       /* the hyp uses a page it borrows for a moment */
		if (!pkvm_hyp_pin_shared(hyp, p)) {
			mt_result(mt, PKVM_HOST_UNSHARE_HYP, pkvm_host_unshare_hyp(hyp, p));
			pkvm_hyp_unpin_shared(hyp, p);
		}
	}
}

static void mt_host_guest_step(struct mt_thread *t)
{
	struct mt *mt = t->mt;
	struct fx *fx = mt->fx;
	struct pkvm_vm *vm = mt->guest[mt_below(t, MT_GUESTS)], *np = fx->vm[VM_NP];
	pm_pfn_t p = fx->a + mt_below(t, MT_GUEST_FRAMES);
	gfn_t g = mt_below(t, MT_GFNS);

	switch (mt_below(t, 7)) {
	case 0:
	case 1:
		mt_result(mt, PKVM_HOST_DONATE_GUEST, pkvm_host_donate_guest(vm, p, g));
		break;
	case 2:
		mt_result(mt, PKVM_HOST_RECLAIM_PAGE_GUEST, pkvm_host_reclaim_page_guest(vm, g));
		break;
	case 3:
		mt_result(mt, PKVM_HOST_SHARE_GUEST, pkvm_host_share_guest(vm, p, g, 1, PKVM_PROT_R));
		break;
	case 4:
		mt_result(mt, PKVM_HOST_UNSHARE_GUEST, pkvm_host_unshare_guest(vm, g, 1));
		break;
	case 5:        /* a non-protected guest: blocks and multi-sharing */
		if (mt_below(t, 2))
			mt_result(mt, PKVM_HOST_SHARE_GUEST,
				  pkvm_host_share_guest(np, fx->b, BLOCK * (1 + mt_below(t, 2)),
							BLOCK, PKVM_PROT_R));
		else
			mt_result(mt, PKVM_HOST_SHARE_GUEST,
				  pkvm_host_share_guest(np, fx->b + mt_below(t, 4), g, 1,
							PKVM_PROT_R));
		break;
	default:
		if (mt_below(t, 2))
			mt_result(mt, PKVM_HOST_UNSHARE_GUEST,
				  pkvm_host_unshare_guest(np, BLOCK * (1 + mt_below(t, 2)), BLOCK));
		else
			mt_result(mt, PKVM_HOST_UNSHARE_GUEST, pkvm_host_unshare_guest(np, g, 1));
	}
}

/* The host: donates, reclaims, lends, shares with the hyp, touches frames. */
static void *mt_host(void *arg)
{
	struct mt_thread *t = arg;
	struct mt *mt = t->mt;
	struct fx *fx = mt->fx;
	unsigned long i;

	for (i = 0; i < mt->iters; i++) {
		uint64_t r = mt_below(t, 10);

		if (r < 6) {
			mt_host_guest_step(t);
		} else if (r < 8) {
			mt_host_hyp_step(t, fx->a + MT_GUEST_FRAMES + mt_below(t, MT_HYP_FRAMES));
		} else {
			pm_pfn_t p = fx->a + mt_below(t, MT_GUEST_FRAMES + MT_HYP_FRAMES);
			int ret = pkvm_host_access(fx->hyp, p, mt_below(t, 2));

			if (ret == -EFAULT)
				atomic_fetch_add(&mt->faults, 1);
			else if (ret)
				atomic_fetch_add(&mt->violations, 1);
		}
	}
	return NULL;
}

/* The checker, under every lock, for as long as the others run. */
static void *mt_checker(void *arg)
{
	struct mt_thread *t = arg;
	struct mt *mt = t->mt;

	while (!atomic_load(&mt->stop)) {
		struct world w;

		if (check_world(mt->fx->hyp, &w))
			atomic_fetch_add(&mt->violations, 1);
		world_free(&w);
		atomic_fetch_add(&mt->checks, 1);
	}
	return NULL;
}

/* Everything the run left goes back to the host. */
static void mt_return_all(struct mt *mt)
{
	struct fx *fx = mt->fx;
	struct pkvm_hyp *hyp = fx->hyp;
	pm_pfn_t p;
	int i;

	for (i = 0; i < MT_GUESTS; i++)
		ok(pkvm_vm_teardown(mt->guest[i]));
	ok(pkvm_vm_teardown(fx->vm[VM_NP]));
	fx->vm[VM_NP] = vm_new(hyp, false);
	for (p = fx->a; p < fx->a + BLOCK; p++) {
		if (pkvm_hyp_state(hyp, p) == O)
			ok(pkvm_hyp_donate_host(hyp, p, 1));
		else if (pkvm_hyp_state(hyp, p) == SB)
			ok(pkvm_host_unshare_hyp(hyp, p));
	}
	for (p = fx->a; p < fx->a + BLOCK; p++)
		assert_int_equal(pkvm_host_state(hyp, p), O);
	for (p = fx->b; p < fx->b + BLOCK; p++)
		assert_int_equal(pkvm_host_state(hyp, p), O);
}

/*
 * Guests' vCPUs share and unshare while two host threads donate, reclaim,
 * lend and share with the hyp over the same frames, and the checker runs
 * under every lock throughout. Every result is a legal one, the checker
 * never finds a broken invariant, and the statistics count exactly the
 * transitions the callers saw succeed.
 */
static void test_concurrent_guests_and_host_keep_the_invariants(void **state)
{
	enum { HOSTS = 2, THREADS = MT_GUESTS + HOSTS + 1 };
	struct fx *fx = *state;
	struct mt_thread th[THREADS];
	struct mt mt;
	struct pkvm_stats st;
	int i;

	memset(&mt, 0, sizeof(mt));
	mt.fx = fx;
	mt.iters = env_steps("PKVM_MT_ITERS", 20000);
	for (i = 0; i < MT_GUESTS; i++)
		mt.guest[i] = vm_new(fx->hyp, true);
	for (i = 0; i < THREADS; i++) {
		void *(*fn)(void *) = i < MT_GUESTS ? mt_vcpu : i < MT_GUESTS + HOSTS ? mt_host :
										mt_checker;

		th[i] = (struct mt_thread){ .mt = &mt, .rng = 0x1234567ULL * (i + 1), .index = i };
		assert_int_equal(pthread_create(&th[i].tid, NULL, fn, &th[i]), 0);
	}
	for (i = MT_GUESTS; i < MT_GUESTS + HOSTS; i++)
		pthread_join(th[i].tid, NULL);
	atomic_store(&mt.hosts_done, true);
	for (i = 0; i < MT_GUESTS; i++)
		pthread_join(th[i].tid, NULL);
	atomic_store(&mt.stop, true);
	pthread_join(th[THREADS - 1].tid, NULL);

	fprintf(stderr, "concurrent run: %u checks while running\n", atomic_load(&mt.checks));
	assert_int_equal(atomic_load(&mt.violations), 0);
	assert_true(atomic_load(&mt.checks) > 0);
	assert_consistent(fx->hyp);
	pkvm_hyp_get_stats(fx->hyp, &st);
	for (i = 0; i < PKVM_NR_TRANSITIONS; i++)
		assert_int_equal(st.done[i], atomic_load(&mt.done[i]));
	assert_int_equal(st.host_s2_faults, atomic_load(&mt.faults));
	assert_true(st.done[PKVM_GUEST_SHARE_HOST] > 0);
	assert_true(st.done[PKVM_HOST_RECLAIM_PAGE_GUEST] > 0);
	mt_return_all(&mt);
	assert_consistent(fx->hyp);
}

/* ---- main ---- */

static int group_setup(void **state)
{
	return pm_pool_configure(POOL_SIZE, 0);
}

#define T(f)  cmocka_unit_test_setup_teardown(f, setup, teardown)
#define T0(f) cmocka_unit_test(f)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T0(test_pgtable_annotate_splits_and_zap_keeps_annotations),
		T0(test_pgtable_reserve_bounds_and_supplies_new_tables),
		T0(test_pgtable_update_leaves_splits_only_partial_leaves),
		T0(test_host_stage2_starts_with_1g_leaves_and_splits_on_the_way),
		T0(test_transition_table_non_protected_guest),
		T0(test_transition_table_protected_guest),
		T(test_bad_arguments_are_einval_and_change_nothing),
		T(test_block_share_is_one_2m_leaf_and_unshare_needs_its_size),
		T(test_a_gfn_in_use_takes_no_other_page),
		T(test_share_count_limit_is_ebusy),
		T(test_guest_share_is_in_place_and_keeps_contents),
		T(test_reclaim_poisons_an_owned_page_and_returns_a_shared_one),
		T(test_host_access_faults_where_the_host_neither_owns_nor_borrows),
		T(test_hyp_pins_make_unshare_ebusy_until_unpinned),
		T(test_relax_perms_only_adds_permissions),
		T0(test_enomem_changes_nothing),
		T(test_teardown_without_memory_can_be_retried),
		T(test_teardown_reclaims_every_page),
		T(test_vm_table_is_bounded),
		T(test_lock_order_is_enforced),
		T(test_checker_reports_broken_invariants),
		T(test_random_transitions_match_the_model),
		T(test_concurrent_guests_and_host_keep_the_invariants),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}

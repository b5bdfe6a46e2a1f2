/* SPDX-License-Identifier: MIT */
/*
 * pKVM's hypervisor: its state, locks, VMs, check-state queries and the
 * host access check. The transitions are in mem_protect.c; the interface
 * and the state table in hyp.h; the encoding and lock rules in
 * hyp_internal.h.
 *
 * The hyp owns the host stage-2 and every guest stage-2: nothing else in
 * privmem writes them. It is created over the pool as it is (every frame
 * host OWNED, the host stage-2 made of the largest leaves that fit) and
 * forgets everything when destroyed.
 */
#include "models/pkvm/hyp_internal.h"

#include "host/pool.h"

/* ---- locks and their order ---- */

/* The calling thread's highest held rank, and its identity for holder checks. */
static __thread unsigned int lockdep_top;

void pkvm_lock_init(struct pkvm_lock *l, unsigned int rank)
{
	PM_BUG_ON(pthread_mutex_init(&l->mutex, NULL));
	l->rank = rank;
	atomic_init(&l->holder, NULL);
	l->prev_top = 0;
}

void pkvm_lock_destroy(struct pkvm_lock *l)
{
	PM_BUG_ON(atomic_load(&l->holder));
	pthread_mutex_destroy(&l->mutex);
}

void pkvm_lock_take(struct pkvm_lock *l)
{
	PM_BUG_ON(l->rank <= lockdep_top);    /* host, then hyp, then guests by id */
	pthread_mutex_lock(&l->mutex);
	atomic_store_explicit(&l->holder, &lockdep_top, memory_order_relaxed);
	l->prev_top = lockdep_top;
	lockdep_top = l->rank;
}

void pkvm_lock_drop(struct pkvm_lock *l)
{
	pkvm_lock_assert_held(l);
	PM_BUG_ON(lockdep_top != l->rank);    /* reverse order */
	lockdep_top = l->prev_top;
	atomic_store_explicit(&l->holder, NULL, memory_order_relaxed);
	pthread_mutex_unlock(&l->mutex);
}

void pkvm_lock_assert_held(const struct pkvm_lock *l)
{
	PM_BUG_ON(atomic_load_explicit(&l->holder, memory_order_relaxed) != &lockdep_top);
}

void pkvm_hyp_lock_all(struct pkvm_hyp *hyp)
{
	unsigned int i;

	pkvm_lock_take(&hyp->host_lock);
	pkvm_lock_take(&hyp->hyp_lock);
	for (i = 0; i < PKVM_MAX_VMS; i++)
		if (hyp->vms[i])
			pkvm_lock_take(&hyp->vms[i]->lock);
}

void pkvm_hyp_unlock_all(struct pkvm_hyp *hyp)
{
	unsigned int i;

	for (i = PKVM_MAX_VMS; i-- > 0;)
		if (hyp->vms[i])
			pkvm_lock_drop(&hyp->vms[i]->lock);
	pkvm_lock_drop(&hyp->hyp_lock);
	pkvm_lock_drop(&hyp->host_lock);
}

/* ---- helpers shared with mem_protect.c ---- */

bool pkvm_pfn_range_ok(const struct pkvm_hyp *hyp, pm_pfn_t pfn, uint64_t n)
{
	return n && pfn < hyp->nr_frames && n <= hyp->nr_frames - pfn;
}

/* A host stage-2 leaf for pfn (identity map, RWX) in `state`. */
uint64_t pkvm_host_leaf(pm_pfn_t pfn, enum pkvm_page_state state)
{
	return (pfn << PM_PAGE_SHIFT) | PM_PTE_WRITE | PM_PTE_EXEC | PKVM_PTE_STATE(state);
}

/* ---- create and destroy ---- */

/* The largest level whose block at pfn lies inside the pool. */
static int host_block_level(pm_pfn_t pfn, uint64_t nr_frames)
{
	int level;

	for (level = 2; level > 0; level--) {
		uint64_t n = pm_s2_level_pages(level);

		if (PM_ALIGNED(pfn, n) && nr_frames - pfn >= n)
			break;
	}
	return level;
}

static int host_s2_init(struct pkvm_hyp *hyp)
{
	pm_pfn_t pfn;
	int level;

	if (pm_s2_init(&hyp->host_s2))
		return -ENOMEM;
	for (pfn = 0; pfn < hyp->nr_frames; pfn += pm_s2_level_pages(level)) {
		level = host_block_level(pfn, hyp->nr_frames);
		if (pm_s2_map(&hyp->host_s2, pfn, level, pkvm_host_leaf(pfn, PKVM_PAGE_OWNED))) {
			pm_s2_destroy(&hyp->host_s2);
			return -ENOMEM;
		}
	}
	return 0;
}

int pkvm_hyp_create(struct pkvm_hyp **out)
{
	struct pkvm_hyp *hyp = pm_zalloc(sizeof(*hyp));
	uint64_t i;

	if (!hyp)
		return -ENOMEM;
	hyp->nr_frames = pm_pool_nr_frames();
	PM_BUG_ON(hyp->nr_frames >= 1ULL << PM_S2_GFN_BITS);
	hyp->pages = calloc(hyp->nr_frames, sizeof(*hyp->pages));
	if (!hyp->pages)
		goto err_free;
	for (i = 0; i < hyp->nr_frames; i++)
		atomic_init(&hyp->pages[i].hyp_state, PKVM_NOPAGE);
	if (host_s2_init(hyp))
		goto err_pages;
	hyp->reserve = (struct pm_s2_mc)PM_S2_MC_INIT;
	pkvm_lock_init(&hyp->host_lock, PKVM_RANK_HOST);
	pkvm_lock_init(&hyp->hyp_lock, PKVM_RANK_HYP);
	*out = hyp;
	return 0;

err_pages:
	free(hyp->pages);
err_free:
	free(hyp);
	return -ENOMEM;
}

void pkvm_hyp_destroy(struct pkvm_hyp *hyp)
{
	unsigned int i;

	for (i = 0; i < PKVM_MAX_VMS; i++)
		PM_BUG_ON(hyp->vms[i]);
	pkvm_lock_destroy(&hyp->hyp_lock);
	pkvm_lock_destroy(&hyp->host_lock);
	pm_s2_mc_free(&hyp->reserve);
	pm_s2_destroy(&hyp->host_s2);
	free(hyp->pages);
	free(hyp);
}

static const char *const transition_names[] = {
	[PKVM_HOST_SHARE_HYP] = "host_share_hyp",
	[PKVM_HOST_UNSHARE_HYP] = "host_unshare_hyp",
	[PKVM_HOST_DONATE_HYP] = "host_donate_hyp",
	[PKVM_HYP_DONATE_HOST] = "hyp_donate_host",
	[PKVM_HOST_SHARE_GUEST] = "host_share_guest",
	[PKVM_HOST_UNSHARE_GUEST] = "host_unshare_guest",
	[PKVM_HOST_DONATE_GUEST] = "host_donate_guest",
	[PKVM_GUEST_SHARE_HOST] = "guest_share_host",
	[PKVM_GUEST_UNSHARE_HOST] = "guest_unshare_host",
	[PKVM_HOST_RECLAIM_PAGE_GUEST] = "host_reclaim_page_guest",
	[PKVM_RELAX_PERMS] = "relax_perms",
};
_Static_assert(PM_ARRAY_SIZE(transition_names) == PKVM_NR_TRANSITIONS,
	       "a name for every transition");

const char *pkvm_transition_name(enum pkvm_transition t)
{
	PM_BUG_ON((unsigned int)t >= PKVM_NR_TRANSITIONS);
	return transition_names[t];
}

void pkvm_hyp_reserve_add(struct pkvm_hyp *hyp, struct pm_s2_mc *mc)
{
	pkvm_lock_take(&hyp->host_lock);
	pm_s2_mc_move(&hyp->reserve, mc);
	pkvm_lock_drop(&hyp->host_lock);
}

void pkvm_hyp_get_stats(struct pkvm_hyp *hyp, struct pkvm_stats *st)
{
	unsigned int i;

	for (i = 0; i < PKVM_NR_TRANSITIONS; i++) {
		st->done[i] = atomic_load_explicit(&hyp->stats.done[i], memory_order_relaxed);
		st->refused[i] = atomic_load_explicit(&hyp->stats.refused[i], memory_order_relaxed);
	}
	st->host_s2_faults = atomic_load_explicit(&hyp->stats.host_s2_faults, memory_order_relaxed);
	st->pages_poisoned = atomic_load_explicit(&hyp->stats.pages_poisoned, memory_order_relaxed);
}

/* ---- guest VMs ---- */

/* Publishes vm in a free slot of the VM table: its id. */
static int vm_publish(struct pkvm_hyp *hyp, struct pkvm_vm *vm)
{
	int ret = -ENOSPC;
	unsigned int i;

	pkvm_lock_take(&hyp->hyp_lock);
	for (i = 0; i < PKVM_MAX_VMS; i++) {
		if (!hyp->vms[i]) {
			vm->id = i;
			pkvm_lock_init(&vm->lock, PKVM_RANK_GUEST + i);
			hyp->vms[i] = vm;
			ret = 0;
			break;
		}
	}
	pkvm_lock_drop(&hyp->hyp_lock);
	return ret;
}

int pkvm_vm_create(struct pkvm_hyp *hyp, const struct pkvm_vm_config *cfg,
		   struct pkvm_vm **out)
{
	struct pkvm_vm *vm = pm_zalloc(sizeof(*vm));
	int ret;

	if (!vm)
		return -ENOMEM;
	vm->hyp = hyp;
	vm->cfg = *cfg;
	vm->s2 = cfg->s2 ? cfg->s2 : &vm->own_s2;
	if (!cfg->s2 && pm_s2_init(&vm->own_s2)) {
		free(vm);
		return -ENOMEM;
	}
	ret = vm_publish(hyp, vm);
	if (ret) {
		if (!cfg->s2)
			pm_s2_destroy(&vm->own_s2);
		free(vm);
		return ret;
	}
	*out = vm;
	return 0;
}

unsigned int pkvm_vm_id(const struct pkvm_vm *vm)
{
	return vm->id;
}

struct pkvm_hyp *pkvm_vm_hyp(const struct pkvm_vm *vm)
{
	return vm->hyp;
}

/* The first valid leaf in [*gfn, end of the guest address space). */
struct next_leaf {
	gfn_t gfn;
	uint64_t nr;
	enum pkvm_page_state state;
};

static int next_leaf_visit(struct pm_walk_ctx *ctx)
{
	struct next_leaf *n = ctx->arg;

	if (!pm_pte_valid(ctx->old))
		return 0;
	n->gfn = ctx->gfn;
	n->nr = pm_s2_level_pages(ctx->level);
	n->state = pkvm_pte_state(ctx->old);
	return 1;
}

static bool vm_next_leaf_in(struct pkvm_vm *vm, gfn_t from, gfn_t end, struct next_leaf *n)
{
	struct pm_walker w = { .visit = next_leaf_visit, .arg = n, .flags = PM_WALK_LEAF };

	return from < end && pm_s2_walk(vm->s2, from, end, &w) == 1;
}

/* The guest has given gfn back already (another reclaim got there first). */
static bool guest_gave_back(struct pkvm_vm *vm, gfn_t gfn)
{
	enum pkvm_page_state s = pkvm_guest_state(vm, gfn, NULL);

	return s == PKVM_NOPAGE || s == PKVM_POISONED;
}

/*
 * Each page goes back through the transition that returns it: a page the
 * host shares with the guest by host_unshare_guest, a page the guest owns
 * (poisoned) or shares by host_reclaim_page_guest. A concurrent reclaim of
 * the same page makes ours fail with -EPERM after it committed (its TLB
 * flush included, under the VM lock): the page is skipped.
 */
int pkvm_vm_reclaim_range(struct pkvm_vm *vm, gfn_t start, gfn_t end)
{
	struct next_leaf n;
	gfn_t from = start;
	int ret;

	end = PM_MIN(end, 1ULL << PM_S2_GFN_BITS);
	while (vm_next_leaf_in(vm, from, end, &n)) {
		if (n.state == PKVM_PAGE_SHARED_BORROWED)
			ret = pkvm_host_unshare_guest(vm, n.gfn, n.nr);
		else
			ret = pkvm_host_reclaim_page_guest(vm, n.gfn);
		if (ret == -ENOMEM)
			return ret;
		PM_BUG_ON(ret && !(ret == -EPERM && guest_gave_back(vm, n.gfn)));
		from = n.gfn + n.nr;
	}
	return 0;
}

/* Nobody else changes the VM now: every page goes back, then the VM. */
int pkvm_vm_teardown(struct pkvm_vm *vm)
{
	struct pkvm_hyp *hyp = vm->hyp;
	int ret = pkvm_vm_reclaim_range(vm, 0, 1ULL << PM_S2_GFN_BITS);

	if (ret)
		return ret;
	pkvm_lock_take(&hyp->hyp_lock);
	hyp->vms[vm->id] = NULL;
	pkvm_lock_drop(&hyp->hyp_lock);
	pkvm_lock_destroy(&vm->lock);
	if (!vm->cfg.s2)
		pm_s2_destroy(&vm->own_s2);
	free(vm);
	return 0;
}

/* ---- host accesses ---- */

static void clear_poison(struct pkvm_hyp *hyp, pm_pfn_t pfn)
{
	pkvm_lock_take(&hyp->host_lock);
	atomic_store_explicit(&hyp->pages[pfn].poisoned, 0, memory_order_relaxed);
	pkvm_lock_drop(&hyp->host_lock);
}

int pkvm_host_access(struct pkvm_hyp *hyp, pm_pfn_t pfn, bool write)
{
	uint64_t pte;
	int level;

	if (pfn >= hyp->nr_frames)
		return -EINVAL;
	pm_s2_get_leaf(&hyp->host_s2, pfn, &pte, &level);
	if (!pm_pte_valid(pte) || (write && !(pte & PM_PTE_WRITE))) {
		atomic_fetch_add_explicit(&hyp->stats.host_s2_faults, 1, memory_order_relaxed);
		return -EFAULT;
	}
	if (write && atomic_load_explicit(&hyp->pages[pfn].poisoned, memory_order_relaxed))
		clear_poison(hyp, pfn);
	return 0;
}

/* ---- check-state queries ---- */

static uint64_t host_entry(struct pkvm_hyp *hyp, pm_pfn_t pfn)
{
	uint64_t pte;
	int level;

	pm_s2_get_leaf(&hyp->host_s2, pfn, &pte, &level);
	PM_BUG_ON(!pm_pte_valid(pte) && !pm_pte_annotated(pte));  /* no hole in the pool */
	return pte;
}

enum pkvm_page_state pkvm_host_state(struct pkvm_hyp *hyp, pm_pfn_t pfn)
{
	uint64_t pte;

	if (pfn >= hyp->nr_frames)
		return PKVM_NOPAGE;
	pte = host_entry(hyp, pfn);
	return pm_pte_valid(pte) ? pkvm_pte_state(pte) : PKVM_NOPAGE;
}

void pkvm_host_owner(struct pkvm_hyp *hyp, pm_pfn_t pfn, struct pkvm_owner *o)
{
	uint64_t pte;

	PM_BUG_ON(pfn >= hyp->nr_frames);
	pte = host_entry(hyp, pfn);

	memset(o, 0, sizeof(*o));
	if (pm_pte_valid(pte)) {
		o->id = pkvm_pte_state(pte) == PKVM_PAGE_SHARED_BORROWED ? PKVM_ID_GUEST :
									  PKVM_ID_HOST;
		return;
	}
	switch (pkvm_annot_type(pte)) {
	case PKVM_ANNOT_HYP:
		o->id = PKVM_ID_HYP;
		return;
	case PKVM_ANNOT_GUEST:
		o->id = PKVM_ID_GUEST;
		o->vm_id = pkvm_annot_vm(pte);
		o->gfn = pkvm_annot_gfn(pte);
		return;
	default:
		PM_BUG_ON("bad host stage-2 annotation");
	}
}

enum pkvm_page_state pkvm_hyp_state(struct pkvm_hyp *hyp, pm_pfn_t pfn)
{
	if (pfn >= hyp->nr_frames)
		return PKVM_NOPAGE;
	return atomic_load_explicit(&hyp->pages[pfn].hyp_state, memory_order_relaxed);
}

unsigned int pkvm_hyp_pins(struct pkvm_hyp *hyp, pm_pfn_t pfn)
{
	PM_BUG_ON(pfn >= hyp->nr_frames);
	return atomic_load_explicit(&hyp->pages[pfn].pins, memory_order_relaxed);
}

unsigned int pkvm_host_share_count(struct pkvm_hyp *hyp, pm_pfn_t pfn)
{
	PM_BUG_ON(pfn >= hyp->nr_frames);
	return atomic_load_explicit(&hyp->pages[pfn].share_count, memory_order_relaxed);
}

bool pkvm_page_poisoned(struct pkvm_hyp *hyp, pm_pfn_t pfn)
{
	PM_BUG_ON(pfn >= hyp->nr_frames);
	return atomic_load_explicit(&hyp->pages[pfn].poisoned, memory_order_relaxed);
}

static unsigned int prot_of_pte(uint64_t pte)
{
	return PKVM_PROT_R | (pte & PM_PTE_WRITE ? PKVM_PROT_W : 0) |
	       (pte & PM_PTE_EXEC ? PKVM_PROT_X : 0);
}

enum pkvm_page_state pkvm_guest_leaf_state(uint64_t pte)
{
	return pm_pte_valid(pte) ? pkvm_pte_state(pte) : PKVM_NOPAGE;
}

enum pkvm_page_state pkvm_guest_state(struct pkvm_vm *vm, gfn_t gfn, struct pkvm_guest_page *page)
{
	struct pkvm_guest_page none = { .pfn = PM_PFN_INVALID };
	uint64_t pte = 0;
	int level = 0;

	if (gfn < 1ULL << PM_S2_GFN_BITS)
		pm_s2_get_leaf(vm->s2, gfn, &pte, &level);
	if (page)
		*page = none;
	if (!pm_pte_valid(pte))
		return pkvm_annot_type(pte) == PKVM_ANNOT_POISONED ? PKVM_POISONED : PKVM_NOPAGE;
	if (page) {
		page->nr = pm_s2_level_pages(level);
		page->pfn = pm_pte_addr(pte) + (gfn & (page->nr - 1));
		page->prot = prot_of_pte(pte);
	}
	return pkvm_pte_state(pte);
}

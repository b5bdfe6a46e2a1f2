/* SPDX-License-Identifier: MIT */
/* The independent checker of pKVM's ownership state (pkvm_check.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include "host/pool.h"
#include "pkvm_check.h"


/* ---- the independent checker ---- */

bool checker_quiet;

static void violation(struct world *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void violation(struct world *w, const char *fmt, ...)
{
	va_list ap;

	if (w->violations++ >= 8 || checker_quiet)
		return;
	va_start(ap, fmt);
	fprintf(stderr, "checker: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
}

static void add_leaf(struct world *w, const struct gleaf *l)
{
	if (w->nleaves == w->cap) {
		w->cap = w->cap ? 2 * w->cap : 256;
		w->leaves = realloc(w->leaves, w->cap * sizeof(*w->leaves));
		assert_non_null(w->leaves);
	}
	w->leaves[w->nleaves++] = *l;
}

void world_free(struct world *w)
{
	free(w->f);
	free(w->leaves);
	memset(w, 0, sizeof(*w));
}

static int check_host_visit(struct pm_walk_ctx *ctx)
{
	struct world *w = ctx->arg;
	uint64_t e = ctx->old, n = pm_s2_level_pages(ctx->level), i;
	gfn_t g = ctx->gfn;

	if (pm_pte_valid(e)) {
		int s = (int)((e & PM_PTE_SW_STATE_MASK) >> PM_PTE_SW_STATE_SHIFT);

		if (pm_pte_addr(e) != g || !(e & PM_PTE_LEAF) || s == 3 ||
		    (e & (PM_PTE_WRITE | PM_PTE_EXEC)) != (PM_PTE_WRITE | PM_PTE_EXEC))
			violation(w, "host entry %#llx at %llu: bad leaf", (unsigned long long)e,
				  (unsigned long long)g);
		for (i = 0; i < n && g + i < w->nr_frames; i++)
			w->f[g + i].host = (int8_t)s;
		return 0;
	}
	if (!pm_pte_annotated(e) || ctx->level != 0) {
		violation(w, "host entry %#llx at %llu level %d: hole", (unsigned long long)e,
			  (unsigned long long)g, ctx->level);
		return 0;
	}
	w->f[g].host = PKVM_NOPAGE;
	switch ((e & PKVM_ANNOT_TYPE_MASK) >> PKVM_ANNOT_TYPE_SHIFT) {
	case PKVM_ANNOT_HYP:
		w->f[g].owner = PKVM_ID_HYP;
		break;
	case PKVM_ANNOT_GUEST:
		w->f[g].owner = PKVM_ID_GUEST;
		w->f[g].owner_vm = (uint16_t)((e & PKVM_ANNOT_VM_MASK) >> PKVM_ANNOT_VM_SHIFT);
		w->f[g].owner_gfn = (e & PKVM_ANNOT_GFN_MASK) >> PKVM_ANNOT_GFN_SHIFT;
		break;
	default:
		violation(w, "host annotation %#llx at %llu", (unsigned long long)e,
			  (unsigned long long)g);
	}
	return 0;
}

struct guest_walk_arg {
	struct world *w;
	unsigned int vm;
};

static void guest_maps_frame(struct world *w, const struct gleaf *l, pm_pfn_t p, int level)
{
	struct fview *f = &w->f[p];

	if (l->state == SB) {
		f->g_borrowed++;
		return;
	}
	if (l->state == O)
		f->g_owned++;
	else
		f->g_shared_owned++;
	f->g_vm = (uint16_t)l->vm;
	f->g_gfn = l->gfn;
	f->g_level = (int8_t)level;
}

static int check_guest_visit(struct pm_walk_ctx *ctx)
{
	struct guest_walk_arg *a = ctx->arg;
	struct world *w = a->w;
	uint64_t e = ctx->old, i;
	struct gleaf l;

	memset(&l, 0, sizeof(l));      /* compared with memcmp: no stray padding */
	l.vm = a->vm;
	l.gfn = ctx->gfn;
	l.nr = pm_s2_level_pages(ctx->level);

	if (!pm_pte_valid(e)) {
		if (!pm_pte_annotated(e))
			return 0;
		if (((e & PKVM_ANNOT_TYPE_MASK) >> PKVM_ANNOT_TYPE_SHIFT) != PKVM_ANNOT_POISONED ||
		    ctx->level)
			violation(w, "vm %u gfn %llu: annotation %#llx", a->vm,
				  (unsigned long long)ctx->gfn, (unsigned long long)e);
		l.pfn = PM_PFN_INVALID;
		l.state = PSN;
		add_leaf(w, &l);
		return 0;
	}
	l.pfn = pm_pte_addr(e);
	l.state = (int)((e & PM_PTE_SW_STATE_MASK) >> PM_PTE_SW_STATE_SHIFT);
	l.prot = PKVM_PROT_R | (e & PM_PTE_WRITE ? PKVM_PROT_W : 0) |
		 (e & PM_PTE_EXEC ? PKVM_PROT_X : 0);
	add_leaf(w, &l);
	if (l.state == 3 || (l.state != SB && ctx->level) || ctx->level > 1 ||
	    l.pfn + l.nr > w->nr_frames) {
		violation(w, "vm %u gfn %llu: bad leaf %#llx", a->vm, (unsigned long long)ctx->gfn,
			  (unsigned long long)e);
		return 0;
	}
	for (i = 0; i < l.nr; i++)
		guest_maps_frame(w, &l, l.pfn + i, ctx->level);
	return 0;
}

static bool frame_is_zero(pm_pfn_t p)
{
	static const uint8_t zero[PM_PAGE_SIZE];

	return !memcmp(pm_pfn_to_hva(p), zero, PM_PAGE_SIZE);
}

/* The invariants of one frame. */
static void check_frame(struct world *w, pm_pfn_t p)
{
	const struct fview *f = &w->f[p];
	unsigned int owners = (f->host == O || f->host == SO) + (f->hyp == O) + f->g_owned +
			      f->g_shared_owned;
	bool ok;

	if (owners != 1)
		violation(w, "pfn %llu: %u owners", (unsigned long long)p, owners);
	switch (f->host) {
	case O:
		ok = f->hyp == NP && !f->g_owned && !f->g_shared_owned && !f->g_borrowed && !f->count;
		break;
	case SO:   /* lent to the hyp (no count) or to exactly `count` guest leaves */
		ok = !f->g_owned && !f->g_shared_owned &&
		     (f->count ? f->hyp == NP && f->g_borrowed == f->count :
				 f->hyp == SB && !f->g_borrowed);
		break;
	case SB:   /* borrowed from exactly one guest */
		ok = f->g_shared_owned == 1 && !f->g_owned && !f->g_borrowed && f->hyp == NP &&
		     !f->count;
		break;
	default:   /* the host may not touch it: owned by whom the annotation says */
		ok = !f->count && !f->g_borrowed && !f->g_shared_owned &&
		     (f->owner == PKVM_ID_HYP ? f->hyp == O && !f->g_owned :
		      f->hyp == NP && f->g_owned == 1 && f->g_vm == f->owner_vm &&
		      f->g_gfn == f->owner_gfn && f->g_level == 0);
	}
	if (!ok)
		violation(w, "pfn %llu: host %d owner %d hyp %d count %u guests %u/%u/%u",
			  (unsigned long long)p, f->host, f->owner, f->hyp, f->count, f->g_owned,
			  f->g_shared_owned, f->g_borrowed);
	if (f->pins && f->hyp != SB)
		violation(w, "pfn %llu: pinned but hyp %d", (unsigned long long)p, f->hyp);
	if (f->poisoned && (f->host != O || !frame_is_zero(p)))
		violation(w, "pfn %llu: poisoned, host %d, zero %d", (unsigned long long)p,
			  f->host, frame_is_zero(p));
}

/* Recomputes every frame's state from the page tables; the caller holds every lock. */
unsigned int check_world_locked(struct pkvm_hyp *hyp, struct world *w)
{
	struct pm_walker hw = { .visit = check_host_visit, .arg = w, .flags = PM_WALK_LEAF };
	struct guest_walk_arg ga = { .w = w };
	struct pm_walker gw = { .visit = check_guest_visit, .arg = &ga, .flags = PM_WALK_LEAF };
	pm_pfn_t p;

	memset(w, 0, sizeof(*w));
	w->nr_frames = pm_pool_nr_frames();
	w->f = calloc(w->nr_frames, sizeof(*w->f));
	assert_non_null(w->f);
	pm_s2_walk(&hyp->host_s2, 0, w->nr_frames, &hw);
	for (p = 0; p < w->nr_frames; p++) {
		const struct pkvm_page *pg = &hyp->pages[p];

		w->f[p].hyp = (int8_t)atomic_load(&pg->hyp_state);
		w->f[p].pins = atomic_load(&pg->pins);
		w->f[p].count = atomic_load(&pg->share_count);
		w->f[p].poisoned = atomic_load(&pg->poisoned);
	}
	for (ga.vm = 0; ga.vm < PKVM_MAX_VMS; ga.vm++)
		if (hyp->vms[ga.vm])
			pm_s2_walk(hyp->vms[ga.vm]->s2, 0, GFN_LIMIT, &gw);
	for (p = 0; p < w->nr_frames; p++)
		check_frame(w, p);
	return w->violations;
}

unsigned int check_world(struct pkvm_hyp *hyp, struct world *w)
{
	unsigned int v;

	pkvm_hyp_lock_all(hyp);
	v = check_world_locked(hyp, w);
	pkvm_hyp_unlock_all(hyp);
	return v;
}

void assert_consistent(struct pkvm_hyp *hyp)
{
	struct world w;

	assert_int_equal(check_world(hyp, &w), 0);
	world_free(&w);
}


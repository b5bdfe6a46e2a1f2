/* SPDX-License-Identifier: MIT */
/*
 * Guest paging: 4-level long-mode translation (4K, 2M and 1G pages), the
 * permission checks (U/S, R/W with CR0.WP, NX with EFER.NXE), the
 * reserved-bit checks, Accessed and Dirty bits set as the hardware does
 * (A on every entry of a walk that succeeds, D on the leaf of a write, by
 * compare-and-exchange on the host page so that walks on other threads and
 * the guest's own locked updates are not lost), and #PF with CR2 and the
 * error code.
 *
 * The TLB (one per privilege, PM_X86_TLB_SIZE entries, direct mapped by
 * gva page) caches, per page, the host address and three tags: read, write
 * (filled only by a write walk, after the D bit is set, with a host pointer
 * the embedder gave for writing, and never for a page holding decoded
 * code) and fetch. It holds no global pages: any CR3 write flushes it all.
 * The page-table pages themselves are never cached: a walk reads each
 * entry through the `page` hook.
 */
#include "vcpu/x86/internal.h"

#define PTE_P   (1ULL << 0)
#define PTE_RW  (1ULL << 1)
#define PTE_US  (1ULL << 2)
#define PTE_A   (1ULL << 5)
#define PTE_D   (1ULL << 6)
#define PTE_PS  (1ULL << 7)
#define PTE_NX  (1ULL << 63)
/* Bits 12..51: MAXPHYADDR is 52, so no address bit is reserved. */
#define PTE_ADDR 0x000ffffffffff000ULL

#define PFEC_P    (1u << 0)
#define PFEC_W    (1u << 1)
#define PFEC_U    (1u << 2)
#define PFEC_RSVD (1u << 3)
#define PFEC_I    (1u << 4)

/* Every translation goes: the next epoch (tags of older ones never match),
 * and when the 2047 epochs of the tag's bits 1-11 are used up, a real
 * clear of every entry. */
void x86_tlb_flush(struct pm_x86_cpu *c)
{
	c->tlb_epoch += 2;
	if (c->tlb_epoch > 0xffe || c->tlb_epoch < 2) {
		for (unsigned int u = 0; u < 2; u++)
			for (unsigned int k = 0; k < PM_X86_TLB_SIZE; k++) {
				struct pm_x86_tlb_entry *e = &c->tlb[u][k];

				e->tag_r = e->tag_w = e->tag_x = PM_X86_TLB_INVALID;
				e->host = NULL;
			}
		c->tlb_epoch = 2;
	}
	c->flush_gen++;
}

void x86_tlb_flush_page(struct pm_x86_cpu *c, uint64_t gva)
{
	/* INVLPG drops the translation of gva; a 2M or 1G page was filled
	 * in 4K pieces, each of which INVLPG of another address in the same
	 * large page must drop too: flush everything for those (rare). */
	for (unsigned int u = 0; u < 2; u++) {
		struct pm_x86_tlb_entry *e = &c->tlb[u][(gva >> 12) & (PM_X86_TLB_SIZE - 1)];

		e->tag_r = e->tag_w = e->tag_x = PM_X86_TLB_INVALID;
	}
	x86_tlb_flush(c);
}

static _Noreturn void page_fault(struct pm_x86_cpu *c, uint64_t gva, uint32_t pfec)
{
	c->cr2 = gva;
	x86_raise(c, PM_X86_EXC_PF, true, pfec);
}

/* The host page holding a page-table entry; page tables outside memory
 * are an error KVM reports as an emulation failure. */
static uint64_t *pte_ptr(struct pm_x86_cpu *c, uint64_t table, unsigned int idx, bool write)
{
	uint8_t *h = c->ops->page(c->env, table & PTE_ADDR, write);

	if (!h) {
		if (write)
			return NULL;
		x86_shutdown(c, PM_X86_SHUTDOWN_INTERNAL_ERROR);
	}
	return (uint64_t *)(h + idx * 8);
}

static uint64_t rsvd_bits(const struct pm_x86_cpu *c, int level, uint64_t pte)
{
	uint64_t r = 0;

	if (!(c->efer & PM_X86_EFER_NXE))
		r |= PTE_NX;
	if (level == 4)
		r |= PTE_PS;
	else if (level == 3 && (pte & PTE_PS))
		r |= 0x3fffe000ULL;  /* bits 13..29 of a 1G leaf */
	else if (level == 2 && (pte & PTE_PS))
		r |= 0x1fe000ULL;    /* bits 13..20 of a 2M leaf */
	return pte & r;
}

struct walk {
	uint64_t gpa;      /* of the page (4K granule of the access) */
	bool user, writable, nx, dirty;
};

/* Set `bits` in the entry at *p (was `old`): false when it changed under
 * us and the walk must start again. Without a writable mapping of the
 * table (a read-only memslot) the bits are not set. */
static bool pte_set_bits(struct pm_x86_cpu *c, uint64_t table, unsigned int idx, uint64_t old,
			 uint64_t bits)
{
	uint64_t *p = pte_ptr(c, table, idx, true);

	if (!p)
		return true;
	return __atomic_compare_exchange_n(p, &old, old | bits, false, __ATOMIC_ACQ_REL,
					   __ATOMIC_ACQUIRE);
}

static void walk(struct pm_x86_cpu *c, uint64_t gva, unsigned int acc, struct walk *w)
{
	uint64_t tables[4], ptes[4];
	unsigned int idxs[4];
	uint32_t pfec;
	int level, depth;

again:
	w->user = w->writable = true;
	w->nx = false;
	pfec = ((acc & ACC_WRITE) ? PFEC_W : 0) | ((acc & ACC_USER) ? PFEC_U : 0) |
	       ((acc & ACC_FETCH) && (c->efer & PM_X86_EFER_NXE) ? PFEC_I : 0);
	uint64_t table = c->cr3;

	for (level = 4, depth = 0;; level--, depth++) {
		unsigned int idx = (gva >> (12 + 9 * (level - 1))) & 511;
		uint64_t pte = __atomic_load_n(pte_ptr(c, table, idx, false), __ATOMIC_ACQUIRE);

		tables[depth] = table;
		idxs[depth] = idx;
		ptes[depth] = pte;
		if (!(pte & PTE_P))
			page_fault(c, gva, pfec);
		if (rsvd_bits(c, level, pte))
			page_fault(c, gva, pfec | PFEC_P | PFEC_RSVD);
		w->user &= !!(pte & PTE_US);
		w->writable &= !!(pte & PTE_RW);
		w->nx |= !!(pte & PTE_NX);
		if (level == 1 || (pte & PTE_PS)) {
			uint64_t off_mask = (1ULL << (12 + 9 * (level - 1))) - 1;

			w->gpa = ((pte & PTE_ADDR & ~off_mask) | (gva & off_mask)) & ~0xfffULL;
			w->dirty = pte & PTE_D;
			break;
		}
		table = pte & PTE_ADDR;
	}

	/* Permissions (no SMEP/SMAP: the CPU model does not offer them). */
	if ((acc & ACC_USER) && !w->user)
		page_fault(c, gva, pfec | PFEC_P);
	if ((acc & ACC_WRITE) && !w->writable && ((acc & ACC_USER) || (c->cr0 & PM_X86_CR0_WP)))
		page_fault(c, gva, pfec | PFEC_P);
	if ((acc & ACC_FETCH) && w->nx && (c->efer & PM_X86_EFER_NXE))
		page_fault(c, gva, pfec | PFEC_P);

	/* Accessed on every level, Dirty on the leaf of a write. */
	for (int d = 0; d <= depth; d++) {
		uint64_t bits = 0;

		if (!(ptes[d] & PTE_A))
			bits |= PTE_A;
		if (d == depth && (acc & ACC_WRITE) && !(ptes[d] & PTE_D))
			bits |= PTE_D;
		if (bits && !pte_set_bits(c, tables[d], idxs[d], ptes[d], bits))
			goto again;
	}
	if (acc & ACC_WRITE)
		w->dirty = true;
}

uint8_t *x86_translate(struct pm_x86_cpu *c, uint64_t gva, unsigned int acc, uint64_t *gpa)
{
	uint64_t page = x86_tlb_tag(c, gva);
	struct pm_x86_tlb_entry *e = tlb_entry(c, gva, acc);
	struct walk w;
	uint8_t *host;
	bool kernel = !(acc & ACC_USER);

	if (!is_canonical(gva))
		x86_gp(c, 0);
	if ((acc & ACC_WRITE) ? e->tag_w == page : (acc & ACC_FETCH) ? e->tag_x == page
								 : e->tag_r == page) {
		*gpa = e->gpa | (gva & 0xfff);
		return e->host + (gva & 0xfff);
	}
	for (;;) {
		/* A flush during the walk (the hook may take an exit and the
		 * embedder flush, a stage-2 shootdown) may have made the table
		 * reads stale: walk again rather than cache their result. */
		uint64_t gen = c->flush_gen;

		walk(c, gva, acc, &w);
		host = c->ops->page(c->env, w.gpa, acc & ACC_WRITE);
		if (gen == c->flush_gen)
			break;
	}
	*gpa = w.gpa | (gva & 0xfff);
	if (!host) {
		/* MMIO: nothing cached; the entry must not keep a stale page. */
		if (e->tag_r == page || e->tag_w == page || e->tag_x == page)
			e->tag_r = e->tag_w = e->tag_x = PM_X86_TLB_INVALID;
		return NULL;
	}
	if (e->host != host || e->gpa != w.gpa || (e->tag_r != page && e->tag_x != page &&
						    e->tag_w != page))
		e->tag_r = e->tag_w = e->tag_x = PM_X86_TLB_INVALID;
	e->host = host;
	e->gpa = w.gpa;
	e->tag_r = page;
	if (!w.nx || !(c->efer & PM_X86_EFER_NXE))
		e->tag_x = page;
	/* A fast write needs a pointer given for writing, the D bit set and
	 * no decoded code on the page. */
	if ((acc & ACC_WRITE) && (w.writable || (kernel && !(c->cr0 & PM_X86_CR0_WP))) &&
	    !x86_code_page_has_code(c, w.gpa))
		e->tag_w = page;
	return host + (gva & 0xfff);
}

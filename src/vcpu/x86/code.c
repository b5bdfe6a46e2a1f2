/* SPDX-License-Identifier: MIT */
/*
 * The decoded-code cache of one cpu: blocks of decoded instructions keyed
 * by (gpa, gva) of their first byte. A block ends at a control transfer or
 * an instruction that changes what later ones assume (IF_ENDS), at the end
 * of its page, or after BLOCK_MAX instructions; an instruction that crosses
 * a page is decoded afresh each time into a scratch block, never cached.
 *
 * Memory: blocks live in one arena; when it is full the whole cache is
 * dropped (at a block lookup, when no block is running). Invalidation
 * unlinks blocks but never frees them, so the block in flight stays
 * readable until the run loop leaves it.
 *
 * Validity:
 * - a guest write to a page in `pages` (the set of gpa pages holding
 *   decoded code) drops that page's blocks (mem.c calls
 *   x86_code_invalidate_page; the TLB never gives such a page a fast
 *   write tag);
 * - PM_X86_FLUSH_CODE bumps `verify_gen`: each block compares its bytes
 *   with memory before it next runs (the VMM or another vCPU may have
 *   written code, or the page behind the gpa changed);
 * - the gva is part of the key because relative branch targets are
 *   resolved at decode time.
 * Everything here belongs to the cpu's thread: no locks.
 */
#include "vcpu/x86/internal.h"

#define BLOCK_MAX    64
#define HASH_BITS    12
#define ARENA_SIZE   (4u << 20)
#define PAGESET_SIZE 1024 /* power of two; at most half full */

#define PAGESET_EMPTY 0ULL
#define PAGESET_TOMB  1ULL
#define PAGESET_USED  2ULL /* or'ed into the page address */

struct pm_x86_code_cache {
	struct x86_block *hash[1u << HASH_BITS];
	uint8_t *arena;
	size_t used;
	uint64_t verify_gen;
	uint64_t pages[PAGESET_SIZE];
	unsigned int npages, ntombs;
	/* a page-crossing instruction, decoded for one execution */
	_Alignas(16) uint8_t scratch[sizeof(struct x86_block) + sizeof(struct x86_insn)];
	uint8_t scratch_bytes[16];
};

struct pm_x86_code_cache *x86_code_create(void)
{
	struct pm_x86_code_cache *cc = calloc(1, sizeof(*cc));

	if (!cc)
		return NULL;
	cc->arena = malloc(ARENA_SIZE);
	if (!cc->arena) {
		free(cc);
		return NULL;
	}
	return cc;
}

void x86_code_free(struct pm_x86_code_cache *cc)
{
	if (!cc)
		return;
	free(cc->arena);
	free(cc);
}

static unsigned int hash_of(uint64_t gpa, uint64_t gva)
{
	uint64_t h = (gpa ^ (gva << 7)) * 0x9e3779b97f4a7c15ULL;

	return (unsigned int)(h >> (64 - HASH_BITS));
}

static unsigned int pageset_slot(uint64_t page)
{
	return (unsigned int)(((page >> 12) * 0x9e3779b97f4a7c15ULL) >> 54) & (PAGESET_SIZE - 1);
}

bool x86_code_page_has_code(struct pm_x86_cpu *c, uint64_t gpa)
{
	struct pm_x86_code_cache *cc = c->code;
	uint64_t want = (gpa & ~0xfffULL) | PAGESET_USED;

	if (!cc->npages)
		return false;
	for (unsigned int k = pageset_slot(gpa), n = 0; n < PAGESET_SIZE;
	     k = (k + 1) & (PAGESET_SIZE - 1), n++) {
		if (cc->pages[k] == want)
			return true;
		if (cc->pages[k] == PAGESET_EMPTY)
			return false;
	}
	return false;
}

static void drop_all(struct pm_x86_code_cache *cc)
{
	memset(cc->hash, 0, sizeof(cc->hash));
	memset(cc->pages, 0, sizeof(cc->pages));
	cc->npages = cc->ntombs = 0;
	cc->used = 0;
}

/* Put the page in the set; the TLB loses its fast write tags for it. */
static void pageset_add(struct pm_x86_cpu *c, uint64_t gpa)
{
	struct pm_x86_code_cache *cc = c->code;
	uint64_t page = gpa & ~0xfffULL;
	unsigned int k;

	if (x86_code_page_has_code(c, gpa))
		return;
	PM_BUG_ON((cc->npages + cc->ntombs + 1) * 2 > PAGESET_SIZE);
	for (k = pageset_slot(page); cc->pages[k] >= PAGESET_USED; k = (k + 1) & (PAGESET_SIZE - 1))
		;
	if (cc->pages[k] == PAGESET_TOMB)
		cc->ntombs--;
	cc->pages[k] = page | PAGESET_USED;
	cc->npages++;
	for (unsigned int u = 0; u < 2; u++)
		for (unsigned int t = 0; t < PM_X86_TLB_SIZE; t++)
			if (c->tlb[u][t].gpa == page)
				c->tlb[u][t].tag_w = PM_X86_TLB_INVALID;
}

void x86_code_invalidate_page(struct pm_x86_cpu *c, uint64_t gpa)
{
	struct pm_x86_code_cache *cc = c->code;
	uint64_t page = gpa & ~0xfffULL;

	for (unsigned int h = 0; h < (1u << HASH_BITS); h++) {
		struct x86_block **pp = &cc->hash[h];

		while (*pp) {
			if (((*pp)->gpa & ~0xfffULL) == page)
				*pp = (*pp)->next;
			else
				pp = &(*pp)->next;
		}
	}
	for (unsigned int k = pageset_slot(page), n = 0; n < PAGESET_SIZE;
	     k = (k + 1) & (PAGESET_SIZE - 1), n++) {
		if (cc->pages[k] == (page | PAGESET_USED)) {
			cc->pages[k] = PAGESET_TOMB;
			cc->npages--;
			cc->ntombs++;
			break;
		}
		if (cc->pages[k] == PAGESET_EMPTY)
			break;
	}
}

void x86_code_flush(struct pm_x86_cpu *c, unsigned int what)
{
	(void)what;
	c->code->verify_gen++;
}

static void *arena_alloc(struct pm_x86_code_cache *cc, size_t size)
{
	void *p;

	size = PM_ALIGN_UP(size, 16);
	if (cc->used + size > ARENA_SIZE)
		return NULL;
	p = cc->arena + cc->used;
	cc->used += size;
	return p;
}

/* Decode the instruction that crosses into the next page (fetching it,
 * which may #PF as the hardware's fetch would) into the scratch block. */
static const struct x86_block *decode_crossing(struct pm_x86_cpu *c, const uint8_t *host,
					       uint64_t gpa)
{
	struct pm_x86_code_cache *cc = c->code;
	struct x86_block *b = (struct x86_block *)cc->scratch;
	unsigned int first = 4096 - (unsigned int)(c->rip & 0xfff);
	uint8_t *buf = cc->scratch_bytes;
	uint64_t gpa2;
	const uint8_t *h2;
	int len;

	memcpy(buf, host, first);
	h2 = x86_translate(c, (c->rip & ~0xfffULL) + 4096, ACC_FETCH | acc_user(c), &gpa2);
	if (!h2)
		x86_shutdown(c, PM_X86_SHUTDOWN_INTERNAL_ERROR);
	memcpy(buf + first, h2, 15 - first);
	len = x86_decode(buf, 15, c->rip, &b->insn[0]);
	if (len <= 0) {
		memset(&b->insn[0], 0, sizeof(b->insn[0]));
		b->insn[0].fn = x86_exec_ud;
		b->insn[0].len = 1;
	}
	b->insn[0].flags |= IF_CROSS;
	b->gpa = gpa;
	b->gva = c->rip;
	b->ninsn = 1;
	b->next = NULL;
	return b;
}

static struct x86_block *decode_block(struct pm_x86_cpu *c, const uint8_t *host, uint64_t gpa,
				      unsigned int h)
{
	struct pm_x86_code_cache *cc = c->code;
	struct x86_insn insn[BLOCK_MAX];
	unsigned int off = (unsigned int)(c->rip & 0xfff), n = 0, bytes = 0;
	struct x86_block *b;
	size_t size;

	while (n < BLOCK_MAX) {
		unsigned int avail = 4096 - off - bytes;
		int len = x86_decode(host + bytes, PM_MIN(avail, 15u), c->rip + bytes, &insn[n]);

		if (len == 0) /* crosses the page */
			break;
		if (len < 0) {
			memset(&insn[n], 0, sizeof(insn[n]));
			insn[n].fn = x86_exec_ud;
			insn[n].len = 1;
			insn[n].flags = IF_ENDS;
			len = 1;
		}
		bytes += (unsigned int)len;
		if (insn[n++].flags & IF_ENDS)
			break;
		if (off + bytes >= 4096)
			break;
	}
	if (n == 0)
		return NULL;
	/* Start over when the arena or the page set is full (no block is
	 * running: lookups happen between blocks). */
	size = sizeof(*b) + n * sizeof(struct x86_insn) + bytes;
	if (cc->used + PM_ALIGN_UP(size, 16) > ARENA_SIZE ||
	    (cc->npages + cc->ntombs + 1) * 2 > PAGESET_SIZE)
		drop_all(cc);
	b = arena_alloc(cc, size);
	PM_BUG_ON(!b);
	b->gpa = gpa;
	b->gva = c->rip;
	b->ninsn = (uint16_t)n;
	b->nbytes = (uint16_t)bytes;
	b->verify_gen = cc->verify_gen;
	memcpy(b->insn, insn, n * sizeof(struct x86_insn));
	b->bytes = (uint8_t *)&b->insn[n];
	memcpy(b->bytes, host, bytes);
	pageset_add(c, gpa);
	b->next = cc->hash[h];
	cc->hash[h] = b;
	return b;
}

const struct x86_block *x86_code_lookup(struct pm_x86_cpu *c)
{
	struct pm_x86_code_cache *cc = c->code;
	unsigned int acc = ACC_FETCH | acc_user(c);
	struct pm_x86_tlb_entry *e = tlb_entry(c, c->rip, acc);
	uint64_t gpa;
	const uint8_t *host;
	struct x86_block *b, **pp;
	unsigned int h;

	if (pm_likely(e->tag_x == x86_tlb_tag(c, c->rip))) {
		gpa = e->gpa | (c->rip & 0xfff);
		host = e->host + (c->rip & 0xfff);
	} else {
		host = x86_translate(c, c->rip, acc, &gpa);
		if (!host) /* executing MMIO: KVM's emulation failure */
			x86_shutdown(c, PM_X86_SHUTDOWN_INTERNAL_ERROR);
	}
	h = hash_of(gpa, c->rip);
	for (pp = &cc->hash[h]; (b = *pp); pp = &b->next) {
		if (b->gpa != gpa || b->gva != c->rip)
			continue;
		if (pm_likely(b->verify_gen == cc->verify_gen))
			return b;
		if (memcmp(b->bytes, host, b->nbytes) == 0) {
			b->verify_gen = cc->verify_gen;
			return b;
		}
		*pp = b->next; /* stale: decode again */
		break;
	}
	b = decode_block(c, host, gpa, h);
	if (!b)
		return decode_crossing(c, host, gpa);
	return b;
}

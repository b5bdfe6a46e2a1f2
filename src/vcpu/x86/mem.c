/* SPDX-License-Identifier: MIT */
/*
 * Guest memory accesses that miss the TLB's fast path: accesses that cross
 * a page, MMIO, and writes to pages holding decoded code.
 *
 * An access that spans two pages translates both before it touches either
 * (a fault on the second page leaves the first unwritten, as on the
 * hardware). MMIO goes to the embedder 8 bytes or less at a time; a hook
 * that moves RIP abandons the instruction (internal.h: x86_after_hook).
 *
 * `split_lock` serialises LOCKed accesses that cross a page (they cannot be
 * one host atomic); it is a leaf lock held only around the access.
 */
#include <pthread.h>
#include "vcpu/x86/internal.h"

static pthread_mutex_t split_lock = PTHREAD_MUTEX_INITIALIZER;

void x86_split_lock(void)
{
	pthread_mutex_lock(&split_lock);
}

void x86_split_unlock(void)
{
	pthread_mutex_unlock(&split_lock);
}

static uint64_t mmio_read(struct pm_x86_cpu *c, uint64_t gpa, unsigned int len)
{
	uint64_t rip = c->rip, v;

	if (!c->ops->mmio_read)
		return sz_mask(len);
	v = c->ops->mmio_read(c->env, gpa, len) & sz_mask(len);
	x86_after_hook(c, rip);
	return v;
}

static void mmio_write(struct pm_x86_cpu *c, uint64_t gpa, unsigned int len, uint64_t v)
{
	uint64_t rip = c->rip;

	if (!c->ops->mmio_write)
		return;
	c->ops->mmio_write(c->env, gpa, len, v & sz_mask(len));
	x86_after_hook(c, rip);
}

/* A write to a page whose code is cached drops that code; the block in
 * flight may be part of it, so the run loop starts a new block. */
static void note_code_write(struct pm_x86_cpu *c, uint64_t gpa)
{
	if (x86_code_page_has_code(c, gpa)) {
		x86_code_invalidate_page(c, gpa);
		c->end_block = true;
	}
}

struct piece {
	uint8_t *host;
	uint64_t gpa;
	unsigned int len;
};

/* Translate [gva, gva + len) page by page (at most 2 pieces for len <= 4096).
 * `read` with ACC_WRITE is the read half of a read-modify-write: the walk
 * checks write permission, but a page the write finds no memory for (a
 * read-only memslot) is read from memory if a read finds some, as KVM's
 * emulator reads the operand and only its write exits to MMIO. */
static unsigned int translate_range(struct pm_x86_cpu *c, uint64_t gva, unsigned int len,
				    unsigned int acc, struct piece *p, bool read)
{
	unsigned int n = 0;

	for (;;) {
		uint64_t gen = c->flush_gen;

		n = 0;
		for (unsigned int done = 0; done < len; n++) {
			uint64_t a = gva + done;
			unsigned int chunk = PM_MIN(len - done, 4096 - (unsigned int)(a & 0xfff));

			p[n].host = x86_translate(c, a, acc, &p[n].gpa);
			if (!p[n].host && read && (acc & ACC_WRITE))
				p[n].host = x86_translate(c, a, acc & ~ACC_WRITE, &p[n].gpa);
			p[n].len = chunk;
			done += chunk;
		}
		/* A flush while translating a later piece may have made an
		 * earlier pointer stale: translate again. */
		if (gen == c->flush_gen || n == 1)
			return n;
	}
}

uint64_t x86_read_slow(struct pm_x86_cpu *c, uint64_t gva, unsigned int sz, unsigned int acc)
{
	struct piece p[2];
	unsigned int n = translate_range(c, gva, sz, acc, p, true);
	uint64_t v = 0;

	if (n == 1)
		return p[0].host ? host_load(p[0].host, sz) : mmio_read(c, p[0].gpa, sz);
	for (unsigned int k = 0, shift = 0; k < n; shift += p[k].len * 8, k++) {
		uint64_t part;

		if (p[k].host) {
			part = 0;
			memcpy(&part, p[k].host, p[k].len);
		} else {
			part = mmio_read(c, p[k].gpa, p[k].len);
		}
		v |= part << shift;
	}
	return v;
}

void x86_write_slow(struct pm_x86_cpu *c, uint64_t gva, unsigned int sz, uint64_t v,
		    unsigned int acc)
{
	struct piece p[2];
	unsigned int n = translate_range(c, gva, sz, acc | ACC_WRITE, p, false);

	for (unsigned int k = 0; k < n; k++) {
		if (p[k].host) {
			note_code_write(c, p[k].gpa);
			if (n == 1)
				host_store(p[k].host, sz, v);
			else
				memcpy(p[k].host, &v, p[k].len);
		} else {
			mmio_write(c, p[k].gpa, p[k].len, v);
		}
		v = p[k].len >= 8 ? 0 : v >> (p[k].len * 8);
	}
}

void x86_read_buf(struct pm_x86_cpu *c, uint64_t gva, void *buf, unsigned int len,
		  unsigned int acc)
{
	uint8_t *out = buf;

	while (len) {
		unsigned int chunk = PM_MIN(len, 4096 - (unsigned int)(gva & 0xfff));
		struct piece p;

		translate_range(c, gva, chunk, acc, &p, true);
		if (p.host) {
			memcpy(out, p.host, chunk);
		} else {
			for (unsigned int k = 0; k < chunk; k += 8) {
				uint64_t v = mmio_read(c, p.gpa + k, PM_MIN(8, chunk - k));

				memcpy(out + k, &v, PM_MIN(8, chunk - k));
			}
		}
		out += chunk;
		gva += chunk;
		len -= chunk;
	}
}

void x86_write_buf(struct pm_x86_cpu *c, uint64_t gva, const void *buf, unsigned int len,
		   unsigned int acc)
{
	struct piece p[2];
	const uint8_t *in = buf;
	unsigned int n;

	/* Up to 2 pages (16-byte vectors, descriptors): all checked first. */
	PM_BUG_ON(len > 4096);
	n = translate_range(c, gva, len, acc | ACC_WRITE, p, false);
	for (unsigned int k = 0; k < n; k++) {
		if (p[k].host) {
			note_code_write(c, p[k].gpa);
			memcpy(p[k].host, in, p[k].len);
		} else {
			for (unsigned int o = 0; o < p[k].len; o += 8) {
				uint64_t v = 0;
				unsigned int l = PM_MIN(8, p[k].len - o);

				memcpy(&v, in + o, l);
				mmio_write(c, p[k].gpa + o, l, v);
			}
		}
		in += p[k].len;
	}
}

bool x86_locked_slow_prepare(struct pm_x86_cpu *c, uint64_t gva, unsigned int sz)
{
	struct piece p[2];
	unsigned int n = translate_range(c, gva, sz, acc_user(c) | ACC_WRITE, p, false);

	for (unsigned int k = 0; k < n; k++)
		if (!p[k].host)
			return false;
	return true;
}

uint8_t *x86_rmw_ptr(struct pm_x86_cpu *c, uint64_t gva, unsigned int sz)
{
	unsigned int acc = acc_user(c) | ACC_WRITE;
	struct pm_x86_tlb_entry *e = tlb_entry(c, gva, acc);
	uint64_t gpa;
	uint8_t *h;

	if ((gva & 0xfff) > 4096 - sz)
		return NULL;
	if (pm_likely(e->tag_w == x86_tlb_tag(c, gva)))
		return e->host + (gva & 0xfff);
	h = x86_translate(c, gva, acc, &gpa);
	if (h && x86_code_page_has_code(c, gpa))
		return NULL;
	return h;
}

/* SPDX-License-Identifier: MIT */
/*
 * mmap, munmap and madvise on KVM mappings.
 *
 * mmap of a vCPU descriptor (kvm_run) or a guest_memfd goes to
 * pm_kvm_mmap; each mapping it returns is recorded here with a reference
 * on its file, as a VMA holds its file: the handle stays open while the
 * mapping exists, even after the last descriptor is closed.
 *
 * munmap of a range that meets recorded mappings: each one met is given
 * back with pm_kvm_munmap (a guest_memfd mapping whole, as privmem unmaps
 * it; a kvm_run mapping only where the range meets it); the parts of a
 * guest_memfd mapping outside the range are mapped again at the same
 * addresses and file offsets (MAP_FIXED_NOREPLACE: if another thread took
 * the hole meanwhile, that part stays unmapped), and those of a kvm_run
 * mapping stay as they are, each with a record: Linux's VMA split.
 * The rest of the range goes to libc, except kvm_run mappings, which
 * privmem unmaps itself (each mmap of a vCPU is a mapping of its own of
 * the vCPU's page; each record stands for one). A MAP_FIXED mmap over
 * recorded mappings unmaps them the same way first, as the kernel does.
 *
 * madvise: MADV_REMOVE on a guest_memfd mapping punches the file
 * (FALLOC_FL_PUNCH_HOLE, as Linux's madvise_remove) and on kvm_run is
 * EOPNOTSUPP (the vCPU file has no fallocate); other advice on kvm_run is
 * ignored (privmem's page must keep its contents); other advice on a
 * guest_memfd mapping goes to pm_kvm_madvise (MADV_COLLAPSE is EINVAL
 * there, as Linux's guest_memfd; the rest reaches the kernel on the
 * mapping, a real shared mapping of the file's host memfd); everything
 * else goes to libc.
 *
 * maps_lock (mutex) protects the list; nr_maps (atomic) lets munmap and
 * madvise of a process without KVM mappings skip it. Lock order:
 * table_lock > maps_lock; privmem is called without maps_lock held.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <privmem/privmem.h>
#include <linux/falloc.h>
#include "uapi/interpose/interpose.h"

#define PAGE 4096UL

struct ipose_map {
	uint8_t *addr;
	size_t len;                 /* page multiple */
	off_t off;                  /* file offset of addr */
	int prot, flags;
	struct ipose_file *f;       /* referenced */
	struct ipose_map *next;     /* maps_lock */
};

static pthread_mutex_t maps_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ipose_map *maps;          /* maps_lock */
static atomic_long nr_maps;             /* records in maps */

bool ipose_maps_any(void)
{
	return atomic_load_explicit(&nr_maps, memory_order_relaxed) != 0;
}

void ipose_maps_fork_prepare(void);
void ipose_maps_fork_parent(void);
void ipose_maps_fork_child(void);
void ipose_maps_fork_prepare(void) { pthread_mutex_lock(&maps_lock); }
void ipose_maps_fork_parent(void) { pthread_mutex_unlock(&maps_lock); }
void ipose_maps_fork_child(void) { pthread_mutex_unlock(&maps_lock); }

static void map_add(struct ipose_map *m)
{
	pthread_mutex_lock(&maps_lock);
	m->next = maps;
	maps = m;
	atomic_fetch_add(&nr_maps, 1);
	pthread_mutex_unlock(&maps_lock);
}

static bool overlaps(const struct ipose_map *m, uintptr_t s, uintptr_t e)
{
	return (uintptr_t)m->addr < e && s < (uintptr_t)m->addr + m->len;
}

/* Takes the records met by [s, e) off the list; of several records of one
 * kvm_run page only one goes (each stands for one mmap of the program). */
static struct ipose_map *maps_take(uintptr_t s, uintptr_t e)
{
	struct ipose_map *taken = NULL;

	pthread_mutex_lock(&maps_lock);
	for (struct ipose_map **pm = &maps; *pm;) {
		struct ipose_map *m = *pm;
		bool dup = false;

		for (struct ipose_map *t = taken; t && m->f->kind == IPOSE_VCPU; t = t->next)
			dup |= t->addr == m->addr;
		if (!overlaps(m, s, e) || dup) {
			pm = &m->next;
			continue;
		}
		*pm = m->next;
		m->next = taken;
		taken = m;
		atomic_fetch_sub(&nr_maps, 1);
	}
	pthread_mutex_unlock(&maps_lock);
	return taken;
}

/* Records [addr, addr+len) of m, which stays mapped (`remap`: maps it
 * again first, at m's file offset for addr). */
static void map_keep(const struct ipose_map *m, uint8_t *addr, size_t len, bool remap)
{
	struct ipose_map *n;
	off_t off = m->off + (off_t)(addr - m->addr);
	void *p;

	if (!len || m->f->dead)
		return;
	n = calloc(1, sizeof(*n));
	if (!n)
		return;
	if (remap) {
		p = IPOSE_CALL(pm_kvm_mmap(addr, len, m->prot,
					   (m->flags & ~MAP_FIXED) | MAP_FIXED_NOREPLACE,
					   m->f->handle, off));
		if (p != addr) {
			if (p != MAP_FAILED)
				IPOSE_CALL(pm_kvm_munmap(p, len));
			free(n);
			return;
		}
	}
	*n = (struct ipose_map){ .addr = addr, .len = len, .off = off, .prot = m->prot,
				 .flags = m->flags, .f = m->f };
	ipose_file_get(m->f);
	map_add(n);
}

/* Gives back one taken record: the part in [s, e) goes, the rest stays. A
 * guest_memfd mapping is unmapped whole and its ends mapped again; a
 * kvm_run mapping loses only the part (privmem unmaps part of it, as
 * Linux splits the VMA), its ends keep records of their own. */
static void map_release(struct ipose_map *m, uintptr_t s, uintptr_t e)
{
	uintptr_t ms = (uintptr_t)m->addr, me = ms + m->len;
	uintptr_t lo = PM_MAX(s, ms), hi = PM_MIN(e, me);
	bool vcpu = m->f->kind == IPOSE_VCPU;

	if (!m->f->dead)
		IPOSE_CALL(vcpu ? pm_kvm_munmap((void *)lo, hi - lo) : pm_kvm_munmap(m->addr, m->len));
	else if (!vcpu)
		LIBC(munmap)(m->addr, m->len);
	if (m->f->kind == IPOSE_GMEM || vcpu) {
		if (ms < s)
			map_keep(m, m->addr, s - ms, !vcpu);
		if (e < me)
			map_keep(m, (uint8_t *)e, me - e, !vcpu);
	}
	ipose_file_put(m->f);
	free(m);
}

/* Spans of a list of records that libc must not be given: kvm_run pages
 * (privmem's memory), with `gmem` the live guest_memfd mappings too
 * (privmem's madvise), and with `all` every record (MADV_REMOVE), sorted. */
struct span {
	uintptr_t s, e;
};

static int cmp_span(const void *a, const void *b)
{
	uintptr_t x = ((const struct span *)a)->s, y = ((const struct span *)b)->s;

	return x < y ? -1 : x > y;
}

static bool span_kept(const struct ipose_map *m, bool all, bool gmem)
{
	return all || m->f->kind == IPOSE_VCPU || (gmem && m->f->kind == IPOSE_GMEM && !m->f->dead);
}

static size_t kept_spans(const struct ipose_map *list, bool all, bool gmem, struct span **out)
{
	size_t n = 0;
	struct span *a;

	for (const struct ipose_map *m = list; m; m = m->next)
		n += span_kept(m, all, gmem);
	a = n ? malloc(n * sizeof(*a)) : NULL;
	n = 0;
	for (const struct ipose_map *m = list; m && a; m = m->next)
		if (span_kept(m, all, gmem))
			a[n++] = (struct span){ (uintptr_t)m->addr, (uintptr_t)m->addr + m->len };
	if (n)
		qsort(a, n, sizeof(*a), cmp_span);
	*out = a;
	return n;
}

/* Calls fn on every stretch of [s, e) outside the spans. */
static int for_each_gap(uintptr_t s, uintptr_t e, const struct span *kept, size_t n,
			int (*fn)(void *addr, size_t len, int arg), int arg)
{
	int r = 0;

	for (size_t i = 0; i <= n && s < e; i++) {
		uintptr_t stop = i < n ? kept[i].s : e;

		if (stop > s && fn((void *)s, PM_MIN(stop, e) - s, arg))
			r = -1;
		if (i < n)
			s = PM_MAX(s, kept[i].e);
	}
	return r;
}

static int libc_munmap(void *addr, size_t len, int unused)
{
	return LIBC(munmap)(addr, len);
}

static int libc_madvise(void *addr, size_t len, int advice)
{
	return LIBC(madvise)(addr, len, advice);
}

void ipose_maps_unmap_range(void *addr, size_t len)
{
	uintptr_t s = (uintptr_t)addr & ~(PAGE - 1);
	uintptr_t e = ((uintptr_t)addr + len + PAGE - 1) & ~(PAGE - 1);
	struct ipose_map *m = maps_take(s, e);

	while (m) {
		struct ipose_map *next = m->next;

		map_release(m, s, e);
		m = next;
	}
}

static void *map_file(struct ipose_file *f, void *addr, size_t len, int prot, int flags, off_t off)
{
	struct ipose_map *m;
	void *p;

	if (f->dead) {
		errno = EIO;
		return MAP_FAILED;
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		errno = ENOMEM;
		return MAP_FAILED;
	}
	if ((flags & MAP_FIXED) && !(flags & MAP_FIXED_NOREPLACE) && len)
		ipose_maps_unmap_range(addr, len);
	p = IPOSE_CALL(pm_kvm_mmap(addr, len, prot, flags, f->handle, off));
	if (p == MAP_FAILED) {
		free(m);
		return p;
	}
	*m = (struct ipose_map){ .addr = p, .len = (len + PAGE - 1) & ~(PAGE - 1), .off = off,
				 .prot = prot, .flags = flags, .f = f };
	ipose_file_get(f);
	map_add(m);
	return p;
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	struct ipose_file *f;
	void *p;

	if (ipose_inside)
		return LIBC(mmap)(addr, len, prot, flags, fd, off);
	if (!(flags & MAP_ANONYMOUS) && ipose_fd_maybe_ours(fd) && (f = ipose_fd_get(fd))) {
		p = map_file(f, addr, len, prot, flags, off);
		ipose_file_put(f);
		return p;
	}
	if ((flags & MAP_FIXED) && !(flags & MAP_FIXED_NOREPLACE) && len && ipose_maps_any())
		ipose_maps_unmap_range(addr, len);
	return LIBC(mmap)(addr, len, prot, flags, fd, off);
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return mmap(addr, len, prot, flags, fd, off);
}

int munmap(void *addr, size_t len)
{
	uintptr_t s = (uintptr_t)addr, e;
	struct ipose_map *taken;
	struct span *kept;
	size_t n;
	int r;

	if (ipose_inside || !ipose_maps_any())
		return LIBC(munmap)(addr, len);
	if ((s & (PAGE - 1)) || !len || len > UINTPTR_MAX - s - PAGE) {
		errno = EINVAL;
		return -1;
	}
	e = (s + len + PAGE - 1) & ~(PAGE - 1);
	taken = maps_take(s, e);
	if (!taken)
		return LIBC(munmap)(addr, len);
	n = kept_spans(taken, false, false, &kept);
	while (taken) {
		struct ipose_map *next = taken->next;

		map_release(taken, s, e);
		taken = next;
	}
	r = for_each_gap(s, e, kept, n, libc_munmap, 0);
	free(kept);
	return r;
}

/* MADV_REMOVE on one recorded mapping, over [s, e) ∩ m. */
static int map_remove(struct ipose_map *m, uintptr_t s, uintptr_t e)
{
	uintptr_t lo = PM_MAX(s, (uintptr_t)m->addr), hi = PM_MIN(e, (uintptr_t)m->addr + m->len);

	if (!(m->prot & PROT_WRITE) || (m->flags & MAP_TYPE) == MAP_PRIVATE) {
		errno = EACCES;
		return -1;
	}
	if (m->f->kind != IPOSE_GMEM) {
		errno = EOPNOTSUPP;
		return -1;
	}
	if (m->f->dead) {
		errno = EIO;
		return -1;
	}
	return IPOSE_CALL(pm_kvm_fallocate(m->f->handle, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					   m->off + (off_t)(lo - (uintptr_t)m->addr), (off_t)(hi - lo)));
}

/* Other advice on one live guest_memfd mapping, over [s, e) ∩ m. */
static int map_advise(struct ipose_map *m, uintptr_t s, uintptr_t e, int advice)
{
	uintptr_t lo = PM_MAX(s, (uintptr_t)m->addr), hi = PM_MIN(e, (uintptr_t)m->addr + m->len);

	if (m->f->kind != IPOSE_GMEM || m->f->dead)
		return 0;
	return IPOSE_CALL(pm_kvm_madvise((void *)lo, hi - lo, advice));
}

int madvise(void *addr, size_t len, int advice)
{
	uintptr_t s = (uintptr_t)addr, e;
	struct ipose_map *snap = NULL;
	struct span *kept = NULL;
	size_t n = 0, nkept;
	int r = 0;

	if (ipose_inside || !ipose_maps_any() || (s & (PAGE - 1)))
		return LIBC(madvise)(addr, len, advice);
	e = (s + len + PAGE - 1) & ~(PAGE - 1);
	/* The records met, copied (with their references) so privmem is
	 * called without maps_lock. */
	pthread_mutex_lock(&maps_lock);
	for (struct ipose_map *m = maps; m; m = m->next)
		n += overlaps(m, s, e);
	snap = n ? calloc(n, sizeof(*snap)) : NULL;
	n = 0;
	for (struct ipose_map *m = maps; m && snap; m = m->next) {
		if (overlaps(m, s, e)) {
			snap[n] = *m;
			ipose_file_get(m->f);
			n++;
		}
	}
	pthread_mutex_unlock(&maps_lock);
	if (!n)
		return LIBC(madvise)(addr, len, advice);
	for (size_t i = 0; i < n; i++) {
		snap[i].next = i + 1 < n ? &snap[i + 1] : NULL;
		if (advice == MADV_REMOVE && map_remove(&snap[i], s, e))
			r = -1;
		else if (advice != MADV_REMOVE && map_advise(&snap[i], s, e, advice))
			r = -1;
	}
	nkept = kept_spans(snap, advice == MADV_REMOVE, true, &kept);
	if (for_each_gap(s, e, kept, nkept, libc_madvise, advice))
		r = -1;
	for (size_t i = 0; i < n; i++)
		ipose_file_put(snap[i].f);
	free(kept);
	free(snap);
	return r;
}

/* SPDX-License-Identifier: MIT */
/*
 * Realm translation tables: entries, the locked walk, and the RTT commands
 * (RTT_CREATE, DESTROY, FOLD, INIT_RIPAS, SET_RIPAS, READ_ENTRY,
 * MAP_UNPROTECTED, UNMAP_UNPROTECTED). Entry format, levels and locks in
 * rmm.h.
 *
 * The tables are pgtable.c tables (its entry format, one granule each, the
 * root being the RD's struct pm_s2): the vCPUs walk the protected half with
 * pgtable.c's lookup, and the checker with its walker. Only the RMM writes
 * them, here, under the granule locks; each command is a sequence of named
 * checks in the specification's order of failures, then the commit.
 */
#include <string.h>
#include "lib/trace.h"
#include "models/cca/rmm_internal.h"

#define RTT_ENTRIES 512

/* ---- entries ---- */

uint64_t s2tte_protected(enum hipas h, enum ripas r, pm_pfn_t pfn)
{
	uint64_t e = (uint64_t)r << RTT_RIPAS_SHIFT;

	if (h == HIPAS_UNASSIGNED)
		return e;
	e |= RTT_ASSIGNED | (pfn << PM_PAGE_SHIFT);
	return r == RIPAS_RAM ? e | RTT_LEAF_BITS | PM_PTE_PRIVATE : e;
}

uint64_t s2tte_unprotected(bool assigned, uint64_t desc)
{
	if (!assigned)
		return 0;
	return RTT_ASSIGNED | RTT_LEAF_BITS | (desc & (PM_PTE_ADDR_MASK | PM_PTE_HVA));
}

uint64_t s2tte_table(pm_pfn_t rtt)
{
	return PM_PTE_VALID | (rtt << PM_PAGE_SHIFT);
}

static inline bool s2tte_is_valid(uint64_t e) { return e & PM_PTE_VALID; }

/* Entry value without the bits a vCPU's walk may have set. */
static inline uint64_t s2tte_read(_Atomic uint64_t *p)
{
	return atomic_load_explicit(p, memory_order_acquire);
}

static inline void s2tte_write(_Atomic uint64_t *p, uint64_t v)
{
	atomic_store_explicit(p, v, memory_order_release);
}

static unsigned int rtt_index(int level, uint64_t ipa)
{
	return (unsigned int)(ipa / rtt_entry_size(level)) % RTT_ENTRIES;
}

_Atomic uint64_t *rtt_entry(pm_pfn_t table, int level, uint64_t ipa)
{
	return (_Atomic uint64_t *)granule_map(table) + rtt_index(level, ipa);
}

uint64_t rtt_nonlive_top(pm_pfn_t table, int level, uint64_t ipa)
{
	uint64_t size = rtt_entry_size(level), addr = PM_ALIGN_DOWN(ipa, size);

	for (unsigned int i = rtt_index(level, addr); i < RTT_ENTRIES; i++, addr += size)
		if (s2tte_is_live(s2tte_read(rtt_entry(table, level, addr)), level))
			return addr <= ipa ? ipa : addr;
	return addr;
}

void rtt_walk_lock(struct rmm_rd *rd, uint64_t ipa, int level, pm_pfn_t *table, int *reached)
{
	pm_pfn_t t = rd->rtt.root;
	int l = RTT_START_LEVEL;

	PM_BUG_ON(!granule_lock(t, GRANULE_RTT));
	while (l < level) {
		uint64_t e = s2tte_read(rtt_entry(t, l, ipa));
		pm_pfn_t child;

		if (!s2tte_is_table(e, l))
			break;
		child = s2tte_pfn(e);
		PM_BUG_ON(!granule_lock(child, GRANULE_RTT));
		granule_unlock(t);
		t = child;
		l++;
	}
	*table = t;
	*reached = l;
}

static bool s2tte_valid_leaf(uint64_t e, int level)
{
	return (e & PM_PTE_VALID) && (level == RTT_PAGE_LEVEL || (e & PM_PTE_LEAF));
}

void rtt_account(struct rmm_rd *rd, uint64_t ipa, int level, uint64_t old, uint64_t new, uint64_t n)
{
	int d = (int)s2tte_valid_leaf(new, level) - (int)s2tte_valid_leaf(old, level);

	if (d && !rtt_unprotected(rd, ipa) && level >= RTT_MIN_BLOCK_LEVEL)
		atomic_fetch_add_explicit(&rd->rtt.leaves[RTT_PAGE_LEVEL - level], (uint64_t)(int64_t)d * n,
					  memory_order_relaxed);
}

void rtt_tlbi(struct rmm_rd *rd)
{
	rmm_count_tlbi();
	if (rd->tlbi.fn)
		rd->tlbi.fn(rd->tlbi.arg);
}

/* ---- RTT_CREATE ---- */

/* The 512 entries of a new table under parent entry e (level - 1). */
static unsigned int rtt_fill_child(pm_pfn_t rtt, uint64_t e, int level)
{
	_Atomic uint64_t *c = granule_map(rtt);
	uint64_t step = rtt_entry_size(level) >> PM_PAGE_SHIFT;

	if (!s2tte_is_assigned(e)) {
		for (int i = 0; i < RTT_ENTRIES; i++)
			atomic_store_explicit(&c[i], e, memory_order_relaxed);
		return 0;
	}
	/* An assigned block unfolds into 512 assigned entries of its memory. */
	for (int i = 0; i < RTT_ENTRIES; i++)
		atomic_store_explicit(&c[i], e + ((i * step) << PM_PAGE_SHIFT), memory_order_relaxed);
	return RTT_ENTRIES;
}

static uint64_t rtt_create(uint64_t rd_addr, uint64_t rtt_addr, uint64_t ipa, int level)
{
	pm_pfn_t rdp = granule_pfn(rd_addr), rtt = granule_pfn(rtt_addr), table;
	struct rmm_rd *rd;
	uint64_t r, e;
	int reached;

	if (level <= RTT_START_LEVEL || level > RTT_PAGE_LEVEL ||
	    !PM_ALIGNED(ipa, rtt_entry_size(level - 1)))
		return RMI_ERROR_INPUT;
	r = granule_lock_two(rtt_addr, GRANULE_DELEGATED, rd_addr, GRANULE_RD);
	if (r)
		return r;
	rd = rd_of(rdp);
	if (!rtt_ipa_ok(rd, ipa)) {
		r = RMI_ERROR_INPUT;
		goto out;
	}
	rtt_walk_lock(rd, ipa, level - 1, &table, &reached);
	e = s2tte_read(rtt_entry(table, reached, ipa));
	if (reached != level - 1 || s2tte_is_table(e, reached)) {
		r = rmi_error(RMI_ERROR_RTT, reached);
		goto out_table;
	}
	granule_set_state(rtt, GRANULE_RTT);
	granule_refcount_inc(rtt, (int)rtt_fill_child(rtt, e, level));
	s2tte_write(rtt_entry(table, reached, ipa), s2tte_table(rtt));
	rtt_account(rd, ipa, reached, e, 0, 1);
	rtt_account(rd, ipa, level, 0, e, RTT_ENTRIES);     /* the children are like e */
	if (!s2tte_is_live(e, reached))
		granule_refcount_inc(table, 1);
	atomic_fetch_add_explicit(&rd->rtt.tables, 1, memory_order_relaxed);
	if (s2tte_is_valid(e))
		rtt_tlbi(rd);        /* a block became a table: break before make */
out_table:
	granule_unlock(table);
out:
	granule_unlock(rtt);
	granule_unlock(rdp);
	return r;
}

uint64_t rmi_rtt_create(uint64_t rd, uint64_t rtt, uint64_t ipa, int level)
{
	uint64_t t0 = pm_trace_begin(), r = rtt_create(rd, rtt, ipa, level);

	rmm_done(RMI_CMD_RTT_CREATE, t0, rtt, ipa, level, r);
	return r;
}

/* ---- RTT_DESTROY and RTT_FOLD: a child table goes ---- */

/* Finds the child RTT at `level` covering ipa and locks it: RMI_SUCCESS
 * with the parent table and the child locked, or RMI_ERROR_RTT. */
static uint64_t rtt_lock_child(struct rmm_rd *rd, uint64_t ipa, int level, pm_pfn_t *parent,
			       pm_pfn_t *child)
{
	int reached;
	uint64_t e;

	rtt_walk_lock(rd, ipa, level - 1, parent, &reached);
	e = s2tte_read(rtt_entry(*parent, reached, ipa));
	if (reached != level - 1 || !s2tte_is_table(e, reached)) {
		granule_unlock(*parent);
		return rmi_error(RMI_ERROR_RTT, reached);
	}
	*child = s2tte_pfn(e);
	PM_BUG_ON(!granule_lock(*child, GRANULE_RTT));
	return RMI_SUCCESS;
}

/* The child table's memory back to zero and the granule to DELEGATED. */
static void rtt_release_child(struct rmm_rd *rd, pm_pfn_t child)
{
	unsigned int live = granule_refcount_locked(child);

	granule_refcount_inc(child, -(int)live);
	granule_zero(child);
	granule_set_state(child, GRANULE_DELEGATED);
	atomic_fetch_sub_explicit(&rd->rtt.tables, 1, memory_order_relaxed);
}

/* RTT_DESTROY's and RTT_FOLD's start: the RD locked, the IPA checked, the
 * table at `level` under ipa and its parent locked. RMI_SUCCESS with the
 * three locked, or the error with none. */
static uint64_t rtt_lock_rd_child(uint64_t rd_addr, uint64_t ipa, int level, struct rmm_rd **rd,
				  pm_pfn_t *parent, pm_pfn_t *child)
{
	uint64_t r = rd_lock(rd_addr);

	if (r)
		return r;
	*rd = rd_of(granule_pfn(rd_addr));
	r = rtt_ipa_ok(*rd, ipa) ? rtt_lock_child(*rd, ipa, level, parent, child) : RMI_ERROR_INPUT;
	if (r)
		granule_unlock(granule_pfn(rd_addr));
	return r;
}

static uint64_t rtt_destroy(uint64_t rd_addr, uint64_t ipa, int level, uint64_t *out_rtt,
			    uint64_t *out_top)
{
	pm_pfn_t rdp = granule_pfn(rd_addr), parent, child;
	struct rmm_rd *rd;
	uint64_t r;

	if (level <= RTT_START_LEVEL || level > RTT_PAGE_LEVEL ||
	    !PM_ALIGNED(ipa, rtt_entry_size(level - 1)))
		return RMI_ERROR_INPUT;
	r = rtt_lock_rd_child(rd_addr, ipa, level, &rd, &parent, &child);
	if (r)
		return r;
	if (granule_refcount_locked(child)) {
		r = rmi_error(RMI_ERROR_RTT, level);      /* live entries below */
		goto out;
	}
	/* v1.0: what the realm knew of the RIPAS below is gone. */
	s2tte_write(rtt_entry(parent, level - 1, ipa),
		    rtt_unprotected(rd, ipa) ? s2tte_unprotected(false, 0)
					     : s2tte_protected(HIPAS_UNASSIGNED, RIPAS_DESTROYED, 0));
	granule_refcount_inc(parent, -1);
	rtt_tlbi(rd);
	rtt_release_child(rd, child);
	*out_rtt = granule_addr(child);
	*out_top = ipa + rtt_entry_size(level - 1);
out:
	granule_unlock(child);
	granule_unlock(parent);
	granule_unlock(rdp);
	return r;
}

uint64_t rmi_rtt_destroy(uint64_t rd, uint64_t ipa, int level, uint64_t *out_rtt, uint64_t *out_top)
{
	uint64_t t0 = pm_trace_begin(), r = rtt_destroy(rd, ipa, level, out_rtt, out_top);

	rmm_done(RMI_CMD_RTT_DESTROY, t0, rd, ipa, level, r);
	return r;
}

/* The block entry a homogeneous table folds into, or 0 if it is not
 * homogeneous (RMM: all unassigned with one RIPAS, or all assigned to
 * contiguous memory aligned to the block, with one RIPAS). */
static bool rtt_fold_value(pm_pfn_t child, int level, uint64_t *block)
{
	_Atomic uint64_t *c = granule_map(child);
	uint64_t first = s2tte_read(&c[0]) & ~(PM_PTE_ACCESSED | PM_PTE_DIRTY);
	uint64_t step = rtt_entry_size(level) >> PM_PAGE_SHIFT;
	uint64_t pages = step * RTT_ENTRIES;

	if (s2tte_is_table(first, level))
		return false;
	if (s2tte_is_assigned(first) && !PM_ALIGNED(s2tte_pfn(first), pages))
		return false;
	for (int i = 1; i < RTT_ENTRIES; i++) {
		uint64_t e = s2tte_read(&c[i]) & ~(PM_PTE_ACCESSED | PM_PTE_DIRTY);
		uint64_t want = s2tte_is_assigned(first) ? first + ((i * step) << PM_PAGE_SHIFT) : first;

		if (e != (want & ~(PM_PTE_ACCESSED | PM_PTE_DIRTY)))
			return false;
	}
	*block = s2tte_read(&c[0]);
	return true;
}

static uint64_t rtt_fold(uint64_t rd_addr, uint64_t ipa, int level, uint64_t *out_rtt)
{
	pm_pfn_t rdp = granule_pfn(rd_addr), parent, child;
	struct rmm_rd *rd;
	uint64_t r, block;

	if (level <= RTT_MIN_BLOCK_LEVEL || level > RTT_PAGE_LEVEL ||
	    !PM_ALIGNED(ipa, rtt_entry_size(level - 1)))
		return RMI_ERROR_INPUT;
	r = rtt_lock_rd_child(rd_addr, ipa, level, &rd, &parent, &child);
	if (r)
		return r;
	if (!rtt_fold_value(child, level, &block)) {
		r = rmi_error(RMI_ERROR_RTT, level);
		goto out;
	}
	s2tte_write(rtt_entry(parent, level - 1, ipa), block);
	rtt_account(rd, ipa, level, block, 0, RTT_ENTRIES);
	rtt_account(rd, ipa, level - 1, 0, block, 1);
	if (!s2tte_is_assigned(block))
		granule_refcount_inc(parent, -1);
	rtt_tlbi(rd);
	rtt_release_child(rd, child);
	*out_rtt = granule_addr(child);
out:
	granule_unlock(child);
	granule_unlock(parent);
	granule_unlock(rdp);
	return r;
}

uint64_t rmi_rtt_fold(uint64_t rd, uint64_t ipa, int level, uint64_t *out_rtt)
{
	uint64_t t0 = pm_trace_begin(), r = rtt_fold(rd, ipa, level, out_rtt);

	rmm_done(RMI_CMD_RTT_FOLD, t0, rd, ipa, level, r);
	return r;
}

/* ---- RIPAS: INIT_RIPAS (the build) and SET_RIPAS (the realm's request) ---- */

/* Walks to the deepest table at base and checks that entries of its level
 * can cover base: RMI_SUCCESS with the table locked, or RMI_ERROR_RTT. */
static uint64_t ripas_walk(struct rmm_rd *rd, uint64_t base, uint64_t top, pm_pfn_t *table, int *level)
{
	rtt_walk_lock(rd, base, RTT_PAGE_LEVEL, table, level);
	if (*level < RTT_MIN_BLOCK_LEVEL || !PM_ALIGNED(base, rtt_entry_size(*level)) ||
	    top - base < rtt_entry_size(*level)) {
		granule_unlock(*table);
		return rmi_error(RMI_ERROR_RTT, *level);
	}
	return RMI_SUCCESS;
}

static uint64_t rtt_init_ripas(uint64_t rd_addr, uint64_t base, uint64_t top, uint64_t *out_top)
{
	pm_pfn_t rdp = granule_pfn(rd_addr), table;
	struct rmm_rd *rd;
	uint64_t r, addr, size;
	int level;

	r = rd_lock(rd_addr);
	if (r)
		return r;
	rd = rd_of(rdp);
	if (!PM_ALIGNED(base, PM_PAGE_SIZE) || !PM_ALIGNED(top, PM_PAGE_SIZE) || base >= top ||
	    !rtt_ipa_ok(rd, top - 1) || rtt_unprotected(rd, top - 1)) {
		r = RMI_ERROR_INPUT;
		goto out;
	}
	if (rd->state != REALM_NEW) {
		r = RMI_ERROR_REALM;
		goto out;
	}
	r = ripas_walk(rd, base, top, &table, &level);
	if (r)
		goto out;
	size = rtt_entry_size(level);
	for (addr = base; addr + size <= top; addr += size) {
		_Atomic uint64_t *p = rtt_entry(table, level, addr);
		uint64_t e = s2tte_read(p);

		if (!s2tte_is_unassigned(e, level) || s2tte_ripas(e) == RIPAS_DESTROYED)
			break;
		s2tte_write(p, s2tte_protected(HIPAS_UNASSIGNED, RIPAS_RAM, 0));
		if (rd->rim_version == RMM_RIM_V1) {
			rim_extend_ripas(rd->algo, rd->rim, addr, addr + size);
			rmm_count_rim();
		}
		if (rtt_index(level, addr) == RTT_ENTRIES - 1) {
			addr += size;
			break;                        /* the end of this table */
		}
	}
	if (addr == base)
		r = rmi_error(RMI_ERROR_RTT, level);
	*out_top = addr;
	granule_unlock(table);
out:
	granule_unlock(rdp);
	return r;
}

uint64_t rmi_rtt_init_ripas(uint64_t rd, uint64_t base, uint64_t top, uint64_t *out_top)
{
	uint64_t t0 = pm_trace_begin(), r = rtt_init_ripas(rd, base, top, out_top);

	rmm_done(RMI_CMD_RTT_INIT_RIPAS, t0, rd, base, -1, r);
	return r;
}

/* The entry e with RIPAS `to`; false when the realm's request stops there
 * (a DESTROYED entry it did not allow to change). */
static bool ripas_change(uint64_t e, enum ripas to, uint64_t flags, uint64_t *out)
{
	if (s2tte_ripas(e) == RIPAS_DESTROYED && flags != RSI_CHANGE_DESTROYED)
		return false;
	*out = s2tte_protected(s2tte_is_assigned(e) ? HIPAS_ASSIGNED : HIPAS_UNASSIGNED, to, s2tte_pfn(e));
	return true;
}

static uint64_t set_ripas_locked(struct rmm_rd *rd, struct rmm_rec *rec, uint64_t base, uint64_t top,
				 uint64_t *out_top)
{
	bool invalidated = false, stopped_at_table = false;
	uint64_t r, addr, size, e, n;
	pm_pfn_t table;
	int level;

	r = ripas_walk(rd, base, top, &table, &level);
	if (r)
		return r;
	size = rtt_entry_size(level);
	for (addr = base; addr + size <= top; addr += size) {
		_Atomic uint64_t *p = rtt_entry(table, level, addr);

		e = s2tte_read(p);
		stopped_at_table = s2tte_is_table(e, level);
		if (stopped_at_table || !ripas_change(e, rec->ripas_value, rec->ripas_flags, &n))
			break;
		invalidated |= s2tte_is_valid(e) && !s2tte_is_valid(n);
		s2tte_write(p, n);
		rtt_account(rd, addr, level, e, n, 1);
		if (rtt_index(level, addr) == RTT_ENTRIES - 1) {
			addr += size;
			break;
		}
	}
	if (invalidated)
		rtt_tlbi(rd);
	granule_unlock(table);
	*out_top = addr;
	rec->ripas_addr = addr;
	/* Stopping at a DESTROYED entry is no error: the realm sees where. */
	return addr == base && stopped_at_table ? rmi_error(RMI_ERROR_RTT, level) : RMI_SUCCESS;
}

static uint64_t rtt_set_ripas(uint64_t rd_addr, uint64_t rec_addr, uint64_t base, uint64_t top,
			      uint64_t *out_top)
{
	pm_pfn_t rdp = granule_pfn(rd_addr), recp = granule_pfn(rec_addr);
	struct rmm_rec *rec;
	struct rmm_rd *rd;
	uint64_t r;

	r = granule_lock_two(rd_addr, GRANULE_RD, rec_addr, GRANULE_REC);
	if (r)
		return r;
	rd = rd_of(rdp);
	rec = rec_of(recp);
	if (rec->rd != rdp) {
		r = RMI_ERROR_REC;
	} else if (rd->state != REALM_ACTIVE) {
		r = RMI_ERROR_REALM;
	} else if (base != rec->ripas_addr || top <= base || top > rec->ripas_top ||
		   !PM_ALIGNED(top, PM_PAGE_SIZE)) {
		r = RMI_ERROR_INPUT;
	} else {
		r = set_ripas_locked(rd, rec, base, top, out_top);
	}
	granule_unlock(recp);
	granule_unlock(rdp);
	return r;
}

uint64_t rmi_rtt_set_ripas(uint64_t rd, uint64_t rec, uint64_t base, uint64_t top, uint64_t *out_top)
{
	uint64_t t0 = pm_trace_begin(), r = rtt_set_ripas(rd, rec, base, top, out_top);

	rmm_done(RMI_CMD_RTT_SET_RIPAS, t0, rec, base, -1, r);
	return r;
}

/* ---- RTT_READ_ENTRY ---- */

static uint64_t rtt_read_entry(uint64_t rd_addr, uint64_t ipa, int level, struct rmi_rtt_entry *out)
{
	pm_pfn_t rdp = granule_pfn(rd_addr), table;
	struct rmm_rd *rd;
	uint64_t r, e;
	int reached;

	if (level < RTT_START_LEVEL || level > RTT_PAGE_LEVEL || !PM_ALIGNED(ipa, rtt_entry_size(level)))
		return RMI_ERROR_INPUT;
	r = rd_lock(rd_addr);
	if (r)
		return r;
	rd = rd_of(rdp);
	if (!rtt_ipa_ok(rd, ipa)) {
		granule_unlock(rdp);
		return RMI_ERROR_INPUT;
	}
	rtt_walk_lock(rd, ipa, level, &table, &reached);
	e = s2tte_read(rtt_entry(table, reached, ipa));
	*out = (struct rmi_rtt_entry){
		.walk_level = reached,
		.table = s2tte_is_table(e, reached),
		.state = s2tte_is_assigned(e) ? HIPAS_ASSIGNED : HIPAS_UNASSIGNED,
		.ripas = rtt_unprotected(rd, ipa) ? RIPAS_EMPTY : s2tte_ripas(e),
		.desc = s2tte_is_assigned(e) ? e & (PM_PTE_ADDR_MASK | PM_PTE_HVA) : 0,
	};
	granule_unlock(table);
	granule_unlock(rdp);
	return RMI_SUCCESS;
}

uint64_t rmi_rtt_read_entry(uint64_t rd, uint64_t ipa, int level, struct rmi_rtt_entry *out)
{
	uint64_t t0 = pm_trace_begin(), r = rtt_read_entry(rd, ipa, level, out);

	rmm_done(RMI_CMD_RTT_READ_ENTRY, t0, rd, ipa, level, r);
	return r;
}

/* ---- the unprotected half ---- */

/* The checks both unprotected commands make: RMI_SUCCESS with the RD and
 * the table holding the level-`level` entry of ipa locked, or an error
 * with nothing held. */
static uint64_t unprot_walk(uint64_t rd_addr, uint64_t ipa, int level, pm_pfn_t *table)
{
	pm_pfn_t rdp = granule_pfn(rd_addr);
	struct rmm_rd *rd;
	uint64_t r;
	int reached;

	if (level < RTT_MIN_BLOCK_LEVEL || level > RTT_PAGE_LEVEL || !PM_ALIGNED(ipa, rtt_entry_size(level)))
		return RMI_ERROR_INPUT;
	r = rd_lock(rd_addr);
	if (r)
		return r;
	rd = rd_of(rdp);
	if (!rtt_ipa_ok(rd, ipa) || !rtt_unprotected(rd, ipa)) {
		granule_unlock(rdp);
		return RMI_ERROR_INPUT;
	}
	rtt_walk_lock(rd, ipa, level, table, &reached);
	if (reached != level) {
		granule_unlock(*table);
		granule_unlock(rdp);
		return rmi_error(RMI_ERROR_RTT, reached);
	}
	return RMI_SUCCESS;
}

static uint64_t map_unprotected(uint64_t rd_addr, uint64_t ipa, int level, uint64_t desc)
{
	uint64_t addr = desc & PM_PTE_ADDR_MASK, r, e;
	pm_pfn_t table;

	if (level < RTT_MIN_BLOCK_LEVEL || level > RTT_PAGE_LEVEL ||
	    desc & ~(PM_PTE_ADDR_MASK | PM_PTE_HVA) || !PM_ALIGNED(addr, rtt_entry_size(level)))
		return RMI_ERROR_INPUT;
	/* Only Non-secure memory may be mapped unprotected. */
	if (!(desc & PM_PTE_HVA) && rmm_granule_state(granule_pfn(addr)) != GRANULE_NS)
		return RMI_ERROR_INPUT;
	r = unprot_walk(rd_addr, ipa, level, &table);
	if (r)
		return r;
	e = s2tte_read(rtt_entry(table, level, ipa));
	if (!s2tte_is_unassigned(e, level)) {
		r = rmi_error(RMI_ERROR_RTT, level);
	} else {
		s2tte_write(rtt_entry(table, level, ipa), s2tte_unprotected(true, desc));
		granule_refcount_inc(table, 1);
	}
	granule_unlock(table);
	granule_unlock(granule_pfn(rd_addr));
	return r;
}

uint64_t rmi_rtt_map_unprotected(uint64_t rd, uint64_t ipa, int level, uint64_t desc)
{
	uint64_t t0 = pm_trace_begin(), r = map_unprotected(rd, ipa, level, desc);

	rmm_done(RMI_CMD_RTT_MAP_UNPROTECTED, t0, rd, ipa, level, r);
	return r;
}

static uint64_t unmap_unprotected(uint64_t rd_addr, uint64_t ipa, int level, uint64_t *out_top)
{
	uint64_t r, e;
	pm_pfn_t table;

	r = unprot_walk(rd_addr, ipa, level, &table);
	if (r)
		return r;
	e = s2tte_read(rtt_entry(table, level, ipa));
	if (s2tte_is_table(e, level) || !s2tte_is_assigned(e)) {
		r = rmi_error(RMI_ERROR_RTT, level);
	} else {
		s2tte_write(rtt_entry(table, level, ipa), s2tte_unprotected(false, 0));
		granule_refcount_inc(table, -1);
		rtt_tlbi(rd_of(granule_pfn(rd_addr)));
		*out_top = ipa + rtt_entry_size(level);
	}
	granule_unlock(table);
	granule_unlock(granule_pfn(rd_addr));
	return r;
}

uint64_t rmi_rtt_unmap_unprotected(uint64_t rd, uint64_t ipa, int level, uint64_t *out_top)
{
	uint64_t t0 = pm_trace_begin(), r = unmap_unprotected(rd, ipa, level, out_top);

	rmm_done(RMI_CMD_RTT_UNMAP_UNPROTECTED, t0, rd, ipa, level, r);
	return r;
}

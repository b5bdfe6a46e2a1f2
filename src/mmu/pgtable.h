/* SPDX-License-Identifier: MIT */
/*
 * The software stage-2 page table: 4 levels of 512 64-bit entries living in
 * frame-pool pages (one frame per table), translating gfns (48-bit GPAs) to
 * host memory, with 4K (level 0), 2M (level 1) and 1G (level 2) leaves.
 * Level 3 is the root (512 GiB per entry).
 *
 * Entry format:
 *   bit 0      VALID     the entry maps something (table or leaf)
 *   bit 1      WRITE     writable (leaves)
 *   bit 2      EXEC      executable (leaves; kept for models, unused by accesses)
 *   bit 5      ACCESSED  set by the vCPU's TLB fill; cleared by age
 *   bit 6      DIRTY     set by the vCPU's TLB fill for a write
 *   bit 7      LEAF      at levels 1 and 2, a huge leaf; set on every leaf
 *   bit 8      PRIVATE   the leaf maps private (guest_memfd) memory
 *   bit 9      HVA       the address field is a host virtual page number
 *                        (shared memory from the VMM's mapping); otherwise
 *                        it is a frame-pool pfn
 *   bits 12-51 ADDR      pfn or host virtual page number (leaf), pfn (table)
 *   bits 52-53 SW_STATE  software state for models (pKVM page state)
 *   bits 54-61 SW        reserved for models
 *   bit 62     FROZEN    a not-valid placeholder a model (TDX) writes with
 *                        compare-and-exchange while it updates an entry;
 *                        whoever meets it retries
 * An entry of 0 is empty. An entry with VALID and FROZEN clear but other
 * bits set is an *annotation*: it maps nothing, and carries what its owner
 * wrote there (pKVM: who owns the page, see pm_s2_annotate). Bits 5-6
 * (ACCESSED, DIRTY) of a not-valid entry mean nothing: a vCPU may fetch-or
 * them into an entry that was just zapped.
 *
 * Concurrency: walks run inside an RCU read-side section (taken by the
 * functions here); every change is a compare-and-exchange on one entry; a
 * table is detached by compare-and-exchange and its frame freed after a
 * grace period, so a concurrent walker never reads a freed table. Callers
 * order conflicting map and zap operations (the invalidation protocol);
 * the table stays consistent whatever they do.
 */
#ifndef PM_MMU_PGTABLE_H
#define PM_MMU_PGTABLE_H

#include "lib/common.h"

#define PM_PTE_VALID     (1ULL << 0)
#define PM_PTE_WRITE     (1ULL << 1)
#define PM_PTE_EXEC      (1ULL << 2)
#define PM_PTE_ACCESSED  (1ULL << 5)
#define PM_PTE_DIRTY     (1ULL << 6)
#define PM_PTE_LEAF      (1ULL << 7)
#define PM_PTE_PRIVATE   (1ULL << 8)
#define PM_PTE_HVA       (1ULL << 9)
#define PM_PTE_ADDR_MASK 0x000ffffffffff000ULL
#define PM_PTE_SW_STATE_SHIFT 52
#define PM_PTE_SW_STATE_MASK  (3ULL << PM_PTE_SW_STATE_SHIFT)
#define PM_PTE_SW_MASK   (0xffULL << 54)
#define PM_PTE_FROZEN    (1ULL << 62)

#define PM_S2_LEVELS     4
#define PM_S2_ROOT_LEVEL 3
#define PM_S2_GFN_BITS   36          /* 48-bit guest physical addresses */

static inline uint64_t pm_s2_level_pages(int level) { return 1ULL << (9 * level); }
static inline bool pm_pte_valid(uint64_t e) { return e & PM_PTE_VALID; }
static inline bool pm_pte_frozen(uint64_t e) { return e & PM_PTE_FROZEN; }
static inline bool pm_pte_is_leaf(uint64_t e, int level)
{
	return pm_pte_valid(e) && (level == 0 || (e & PM_PTE_LEAF));
}
static inline bool pm_pte_is_table(uint64_t e, int level)
{
	return pm_pte_valid(e) && level > 0 && !(e & PM_PTE_LEAF);
}
static inline uint64_t pm_pte_addr(uint64_t e) { return (e & PM_PTE_ADDR_MASK) >> 12; }
/* Not valid, not frozen, and carrying more than stray ACCESSED/DIRTY bits. */
static inline bool pm_pte_annotated(uint64_t e)
{
	return !(e & (PM_PTE_VALID | PM_PTE_FROZEN)) &&
	       (e & ~(PM_PTE_ACCESSED | PM_PTE_DIRTY));
}

struct pm_s2 {
	pm_pfn_t root;                  /* frame of the root table; immutable */
	atomic_uint_fast64_t tables;    /* table frames in use, root included */
	atomic_uint_fast64_t leaves[3]; /* valid leaves by level (4K, 2M, 1G) */
	atomic_uint_fast64_t splits;    /* huge leaves split */
	atomic_bool detached;           /* a zap queued a table's free (pm_rcu_call) */
};

int pm_s2_init(struct pm_s2 *s2);                 /* 0 or -ENOMEM */
/* Frees every table; no concurrent users. Leaves map memory the s2 does not own. */
void pm_s2_destroy(struct pm_s2 *s2);

/* ---- the generic walker ---- */
enum {
	PM_WALK_LEAF       = 1 << 0,  /* leaves and empty/invalid entries */
	PM_WALK_TABLE_PRE  = 1 << 1,  /* a table entry, before descending */
	PM_WALK_TABLE_POST = 1 << 2,  /* a table entry, after its children */
};

struct pm_walk_ctx {
	struct pm_s2 *s2;
	_Atomic uint64_t *ptep;
	uint64_t old;        /* the entry's value when the walker read it */
	gfn_t gfn;           /* first gfn the entry covers */
	int level;
	unsigned int visit;  /* which PM_WALK_* this call is */
	void *arg;
};

struct pm_walker {
	/* 0 continues, < 0 ends the walk with that error. After a LEAF or
	 * TABLE_PRE visit the walker re-reads the entry, so it descends into a
	 * table the visitor just installed (or skips one it removed). */
	int (*visit)(struct pm_walk_ctx *ctx);
	void *arg;
	unsigned int flags;  /* PM_WALK_* visits wanted */
};

/* Visits the entries covering [start, end) in gfn order. */
int pm_s2_walk(struct pm_s2 *s2, gfn_t start, gfn_t end, const struct pm_walker *w);

/* ---- operations (small visitors over the walker) ---- */

/* Installs leaf `pte` (LEAF|VALID set by the callee) at `level` for the
 * naturally aligned block containing gfn, creating tables on the way.
 * An annotation in the slot is replaced (it maps nothing); one on a huge
 * entry above is copied into the new table's other entries.
 * 0; -EEXIST if a valid or frozen entry is already there (a table where a
 * huge leaf was wanted included); -ENOMEM. */
int pm_s2_map(struct pm_s2 *s2, gfn_t gfn, int level, uint64_t pte);

/* Which leaves a zap removes. */
typedef bool (*pm_s2_filter_fn)(uint64_t pte, void *arg);

struct pm_s2_zap_result {
	uint64_t zapped;     /* leaves removed */
	uint64_t split;      /* huge leaves split because the range covered part */
	uint64_t tables_freed;
};

/* Removes the leaves in [start, end) that filter accepts (NULL: all). A huge
 * leaf only partly inside the range is split first, down to 4K if needed,
 * so exactly the range goes; if no frame is left for a split, the whole
 * leaf goes instead (more than asked: it is faulted in again, smaller), so
 * a zap never fails. Tables left empty whose whole span lies in the range
 * are detached and freed after a grace period. The caller must shoot down
 * TLBs before it frees or reuses the memory that was mapped. Returns 0. */
int pm_s2_zap(struct pm_s2 *s2, gfn_t start, gfn_t end, pm_s2_filter_fn filter,
	      void *arg, struct pm_s2_zap_result *res);

/* Splits the huge leaf covering gfn at `level` into 512 leaves of the level
 * below (same memory, same bits). 0, -ENOENT (no huge leaf there), -ENOMEM. */
int pm_s2_split(struct pm_s2 *s2, gfn_t gfn, int level);

/* Clears ACCESSED on the leaves in [start, end); returns how many had it. */
uint64_t pm_s2_age(struct pm_s2 *s2, gfn_t start, gfn_t end);

/* Sets ACCESSED (and DIRTY: bits) on the leaf covering gfn, as a hardware
 * walk does, never on an entry a zap just cleared. */
void pm_s2_mark(struct pm_s2 *s2, gfn_t gfn, uint64_t bits);

/* The leaf covering gfn: its value and level; false if none. */
bool pm_s2_lookup(struct pm_s2 *s2, gfn_t gfn, uint64_t *pte, int *level);

/* Leaves by level (4K, 2M, 1G) in [start, end). */
void pm_s2_count(struct pm_s2 *s2, gfn_t start, gfn_t end, uint64_t counts[3]);

/* The entry covering gfn at the deepest level the walk reaches, whatever it
 * is (leaf, empty, annotation, frozen), and that level. */
void pm_s2_get_leaf(struct pm_s2 *s2, gfn_t gfn, uint64_t *pte, int *level);

/* ---- changes that must not fail halfway ----
 *
 * An owner that changes a table under its own lock and must not fail after
 * it has checked (pKVM's hypervisor) fills a table reserve first, bounded by
 * pm_s2_tables_needed, and passes it to the change: every new table then
 * comes from the reserve, never from the pool, so a change whose
 * preconditions hold cannot fail. The operations below use compare-and-
 * exchange like the rest, so lock-free readers and vCPUs setting
 * ACCESSED/DIRTY may run alongside; the caller serialises other changes to
 * the range.
 */

/* A reserve of frames for new tables (a "memcache"), used by one owner at a
 * time (its lock). Its frames are linked through their first word and are
 * otherwise zero; a frame taken from it is all zero. */
struct pm_s2_mc {
	pm_pfn_t head;     /* PM_PFN_INVALID when empty */
	uint64_t nr;
};
#define PM_S2_MC_INIT { .head = PM_PFN_INVALID, .nr = 0 }

/* Allocates frames until the reserve holds at least `min`. 0, or -ENOMEM
 * (the frames it got stay in the reserve). */
int pm_s2_mc_topup(struct pm_s2_mc *mc, uint64_t min);
/* Returns every frame of the reserve to the pool. */
void pm_s2_mc_free(struct pm_s2_mc *mc);
/* Moves every frame of `from` into `to` (both owners' locks held). */
void pm_s2_mc_move(struct pm_s2_mc *to, struct pm_s2_mc *from);
/* An upper bound of the tables a change of [start, end) down to 4K may create:
 * at most one per level-(k+1) entry the range touches, for each level k < 3. */
uint64_t pm_s2_tables_needed(gfn_t start, gfn_t end);

/* pm_s2_map, taking new tables from mc (if not NULL). */
int pm_s2_map_mc(struct pm_s2 *s2, gfn_t gfn, int level, uint64_t pte, struct pm_s2_mc *mc);

/* Set-owner: writes annotation `annot` (VALID and FROZEN clear) into the 4K
 * entry of every gfn in [start, end), whatever was there: huge leaves are
 * split (even when the range covers them whole: annotations are per 4K),
 * missing tables created (an annotation on a huge entry is copied to the
 * new table's entries), valid leaves replaced. 0; -ENOMEM (a part may
 * already be annotated); -EAGAIN on a frozen entry. */
int pm_s2_annotate(struct pm_s2 *s2, gfn_t start, gfn_t end, uint64_t annot, struct pm_s2_mc *mc);

/* Rewrites every valid leaf covering [start, end) as (pte & ~clear) | set,
 * splitting a huge leaf that lies only partly in the range (unless it
 * already reads so). clear and set
 * may hold WRITE, EXEC, PRIVATE, SW_STATE and SW bits only. 0; -ENOENT at
 * the first gfn without a valid leaf (earlier ones are changed); -ENOMEM. */
int pm_s2_update_leaves(struct pm_s2 *s2, gfn_t start, gfn_t end, uint64_t clear,
			uint64_t set, struct pm_s2_mc *mc);

/* Adds permissions to the leaf covering gfn, whatever its size: additive
 * only, never removes one and never touches other bits. 0; -EINVAL if
 * `perms` holds anything but WRITE and EXEC (state and software bits
 * included: see seed 004); -ENOENT if no valid leaf covers gfn. */
int pm_s2_relax_perms(struct pm_s2 *s2, gfn_t gfn, uint64_t perms);

/* ---- changes a model's hardware must hear of first (TDX's secure EPT) ----
 *
 * A model whose hardware keeps its own copy of a table (TDX: the S-EPT
 * behind KVM's mirror root) changes an entry of that table in three steps,
 * so that no other walker can act on a change the hardware has not made:
 * freeze the entry (compare-and-exchange from the value read to
 * PM_PTE_FROZEN), run the hook, then publish the new value, or put the old
 * one back if the hook failed (the frozen-entry protocol). A hooked
 * operation that meets a frozen entry stops with -EBUSY: the caller retries
 * later, when the entry's owner has published. With publish_first (tests:
 * the protocol switched off) a map publishes first and runs the hook after,
 * which is the race the protocol closes (seed 003).
 */
enum pm_s2_change_kind {
	PM_S2_LINK,     /* a new table under an empty entry */
	PM_S2_SET,      /* a new leaf in an empty entry */
	PM_S2_SPLIT,    /* a huge leaf becomes a table of 512 leaves one level down */
};

struct pm_s2_change {
	enum pm_s2_change_kind kind;
	gfn_t gfn;          /* the first gfn the entry covers */
	int level;          /* the entry's level */
	uint64_t old, new;  /* its value before and after (a table entry for LINK, SPLIT) */
};

struct pm_s2_hook {
	/* 0: the change is published; -errno: the old value goes back (not
	 * with publish_first) and the operation fails with it. */
	int (*change)(void *arg, const struct pm_s2_change *c);
	void *arg;
	bool publish_first;
};

/* pm_s2_map, every new table (LINK) and the leaf (SET) announced through
 * the hook. 0; -EEXIST (something valid is in the way); -EBUSY (a frozen
 * entry is); -EAGAIN (an entry changed under the walk); -ENOMEM; or the
 * hook's error. Never retries by itself. */
int pm_s2_map_hooked(struct pm_s2 *s2, gfn_t gfn, int level, uint64_t pte,
		     const struct pm_s2_hook *hook);

/* In a visitor: splits the huge leaf ctx->old at ctx->ptep (SPLIT through
 * the hook, always frozen meanwhile); the walker then descends into the
 * new table. 0; -ENOMEM; -EAGAIN (the entry changed); or the hook's error
 * (the leaf is back). */
int pm_s2_split_hooked(struct pm_walk_ctx *ctx, const struct pm_s2_hook *hook);

/* In a visitor: clears the leaf ctx->old at ctx->ptep; false if the entry
 * changed meanwhile. */
bool pm_s2_clear_leaf(struct pm_walk_ctx *ctx);

#endif

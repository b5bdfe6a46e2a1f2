/* SPDX-License-Identifier: MIT */
/*
 * PM_VM_TYPE_REALM (17): KVM's side of Arm CCA, as Steven Price's series
 * (v15, not merged) does it, over the simulated RMM (rmm.h). Locks and
 * files in realm.h.
 *
 *  - Creation: the VM's RD and starting RTT are delegated pool frames and
 *    REALM_CREATE runs at KVM_CREATE_VM with the default parameters;
 *    PM_KVM_REALM_CONFIG re-creates it with others (REALM_DESTROY, then
 *    REALM_CREATE on the same granules) until the first build step. The
 *    RTT is the MMU's private root (mmu->mirror): vCPUs walk the RMM's own
 *    tables for protected IPAs, as the hardware does.
 *  - Build (realm NEW): PM_KVM_REALM_INIT_RIPAS (RTT_INIT_RIPAS, creating
 *    RTTs down to the largest block that fits, as realm_init_ipa_state
 *    does) and KVM_ARM_RMI_POPULATE (INIT_RIPAS, then per page: the
 *    guest_memfd page delegated and DATA_CREATEd from the VMM's source,
 *    measured or not).
 *  - Activation: the first KVM_RUN creates one REC per vCPU (REC_CREATE,
 *    runnable: each is measured) and REALM_ACTIVATE; KVM_RUN of a vCPU
 *    created later is EINVAL (REC_CREATE needs a NEW realm).
 *  - Measurement: PM_KVM_GET_MEASUREMENT(64) gives the RIM once active.
 */
#include <stdio.h>
#include <string.h>
#include "gmem/gmem.h"
#include "host/pool.h"
#include "memslot/memslot.h"
#include "mmu/mmu.h"
#include "models/cca/realm.h"
#include "vcpu/vcpu.h"

static const struct pm_realm_config default_config = {
	.hash_algo = PM_REALM_HASH_SHA256, .ipa_bits = 40, .rim_version = RMM_RIM_V1,
	.num_bps = 1, .num_wps = 1,
};

/* ---- the RD ---- */

static void realm_tlbi(void *arg)
{
	pm_mmu_tlb_shootdown(arg);
}

static uint64_t realm_create_rd(struct realm_vm *r)
{
	static atomic_uint next_vmid = 1;
	struct rmi_realm_params *p = pm_zalloc(sizeof(*p));
	const struct rmm_tlbi tlbi = { .fn = realm_tlbi, .arg = r->vm };
	uint64_t res = RMI_ERROR_INPUT;

	if (!p)
		return res;
	p->algorithm = (uint8_t)r->cfg.hash_algo;
	p->s2sz = r->cfg.ipa_bits;
	p->num_bps = r->cfg.num_bps;
	p->num_wps = r->cfg.num_wps;
	p->pmu_num_ctrs = r->cfg.pmu_num_ctrs;
	p->sve_vl = r->cfg.sve_vl;
	p->rtt_base = r->root;
	p->rtt_num_start = 1;
	/* VMIDs are KVM's to choose: one the RMM refuses is in use, try on. */
	for (int tries = 0; tries < 65536 && res == RMI_ERROR_INPUT; tries++) {
		p->vmid = (uint16_t)(atomic_fetch_add(&next_vmid, 1) % 65535 + 1);
		res = rmi_realm_create(realm_rd(r), p, (int)r->cfg.rim_version, &tlbi);
		if (res && rmm_granule_state(realm_rd(r) >> PM_PAGE_SHIFT) != GRANULE_DELEGATED)
			break;
	}
	free(p);
	if (!res)
		atomic_store(&r->top_bit, 1ULL << (r->cfg.ipa_bits - 1));
	return res;
}

static int delegate_new(struct realm_vm *r, uint64_t *addr)
{
	pm_pfn_t pfn;

	if (pm_pool_alloc(0, &pfn))
		return -ENOMEM;
	PM_BUG_ON(rmi_granule_delegate(pfn << PM_PAGE_SHIFT) != RMI_SUCCESS);
	realm_count(r, REALM_STAT_DELEGATES, 1);
	*addr = pfn << PM_PAGE_SHIFT;
	return 0;
}

static void undelegate_free(struct realm_vm *r, uint64_t addr)
{
	PM_BUG_ON(rmi_granule_undelegate(addr) != RMI_SUCCESS);
	realm_count(r, REALM_STAT_UNDELEGATES, 1);
	pm_pool_free(addr >> PM_PAGE_SHIFT, 0);
}

/* ---- configuration ---- */

static bool config_ok(const struct pm_realm_config *c)
{
	for (size_t i = 0; i < PM_ARRAY_SIZE(c->reserved); i++)
		if (c->reserved[i])
			return false;
	return (c->hash_algo == PM_REALM_HASH_SHA256 || c->hash_algo == PM_REALM_HASH_SHA512) &&
	       c->ipa_bits >= 32 && c->ipa_bits <= 48 &&
	       (c->rim_version == RMM_RIM_V1 || c->rim_version == RMM_RIM_V2) &&
	       c->num_bps && c->num_bps < 16 && c->num_wps && c->num_wps < 16 &&
	       c->pmu_num_ctrs < 32 && c->sve_vl < 16 && !(c->flags & ~PM_REALM_NO_HUGE);
}

/* Nothing built yet: no RTT below the root, no DATA, no REC. */
static bool realm_untouched(struct realm_vm *r)
{
	return rmm_granule_refcount(r->root >> PM_PAGE_SHIFT) == 0 && !r->nr_recs;
}

static int realm_config(struct realm_vm *r, const struct pm_realm_config *c)
{
	struct pm_realm_config old = r->cfg;
	int err = 0;

	if (!config_ok(c))
		return -EINVAL;
	pthread_mutex_lock(&r->build_lock);
	/* No fault may use the RD while it is made again (KVM_PRE_FAULT_MEMORY
	 * needs no build step): they hold the MMU lock for reading. */
	pm_mmu_write_lock(r->vm);
	if (atomic_load(&r->state) != REALM_KVM_NEW || !realm_untouched(r)) {
		err = -EBUSY;
		goto out;
	}
	PM_BUG_ON(rmi_realm_destroy(realm_rd(r)) != RMI_SUCCESS);
	r->cfg = *c;
	if (realm_create_rd(r)) {
		r->cfg = old;                   /* the old parameters are always accepted */
		PM_BUG_ON(realm_create_rd(r));
		err = -EINVAL;
	}
	atomic_store(&r->flags, r->cfg.flags);
	atomic_store(&r->ipa_bits, r->cfg.ipa_bits);
out:
	pm_mmu_write_unlock(r->vm);
	pthread_mutex_unlock(&r->build_lock);
	return err;
}

/* ---- the build ---- */

/* RTT_INIT_RIPAS over [base, top), creating RTTs where the walk ends too
 * high: 0, -ENOMEM, or -EINVAL (something there that is not unassigned). */
static int init_ripas(struct realm_vm *r, uint64_t base, uint64_t top)
{
	while (base < top) {
		uint64_t out, res = rmi_rtt_init_ripas(realm_rd(r), base, top, &out);
		int err;

		if (res == RMI_SUCCESS) {
			base = out;
			continue;
		}
		if (rmi_status(res) != RMI_ERROR_RTT || rmi_index(res) >= RTT_PAGE_LEVEL)
			return -EINVAL;
		err = realm_ensure_rtt(r, base, (int)rmi_index(res) + 1);
		if (err)
			return err;
	}
	return 0;
}

static bool range_ok(struct realm_vm *r, uint64_t base, uint64_t size)
{
	uint64_t top = base + size;

	return PM_ALIGNED(base, PM_PAGE_SIZE) && PM_ALIGNED(size, PM_PAGE_SIZE) && size &&
	       top > base && top <= atomic_load(&r->top_bit);
}

static long realm_init_ripas_ioctl(struct realm_vm *r, const struct pm_realm_ripas_range *in)
{
	long err;

	if (!range_ok(r, in->base, in->size))
		return -EINVAL;
	pthread_mutex_lock(&r->build_lock);
	err = atomic_load(&r->state) == REALM_KVM_NEW ? init_ripas(r, in->base, in->base + in->size)
						      : -EINVAL;
	pthread_mutex_unlock(&r->build_lock);
	return err;
}

struct populate_arg {
	struct realm_vm *r;
	const void *src;
	uint32_t flags;
	uint64_t ipa;
};

/* pm_gmem_populate's callback: the page (its stripe held) becomes DATA. */
static int populate_one(void *arg, pm_pfn_t pfn, gfn_t gfn)
{
	struct populate_arg *a = arg;
	uint8_t page[PM_PAGE_SIZE];
	uint64_t res;
	int err;

	if (pm_copy_from_user(page, a->src, PM_PAGE_SIZE))
		return -EFAULT;
	err = realm_ensure_rtt(a->r, a->ipa, RTT_PAGE_LEVEL);
	if (err)
		return err;
	if (rmm_granule_state(pfn) == GRANULE_NS) {
		PM_BUG_ON(rmi_granule_delegate(pfn << PM_PAGE_SHIFT) != RMI_SUCCESS);
		realm_count(a->r, REALM_STAT_DELEGATES, 1);
	}
	res = rmi_data_create(realm_rd(a->r), pfn << PM_PAGE_SHIFT, a->ipa, page,
			      a->flags & KVM_ARM_RMI_POPULATE_FLAGS_MEASURE ? RMI_MEASURE_CONTENT
									 : RMI_NO_MEASURE_CONTENT);
	if (res == rmi_error(RMI_ERROR_RTT, RTT_PAGE_LEVEL) || res == RMI_ERROR_INPUT)
		return -EEXIST;        /* assigned already (or the frame is DATA) */
	PM_BUG_ON(res != RMI_SUCCESS);
	realm_count(a->r, REALM_STAT_POPULATED, 1);
	return 0;
}

static int populate_page(struct realm_vm *r, uint64_t ipa, const void *src, uint32_t flags)
{
	struct populate_arg a = { .r = r, .src = src, .flags = flags, .ipa = ipa };
	gfn_t gfn = ipa >> PM_PAGE_SHIFT;
	struct pm_slot_ref ref;
	int err;

	if (!pm_vm_gfn_is_private(r->vm, gfn) || !pm_memslot_get(r->vm, gfn, true, &ref))
		return -EINVAL;
	if (!ref.gmem)
		return -EINVAL;
	err = pm_gmem_populate(ref.gmem, ref.index, gfn, populate_one, &a);
	pm_gmem_put(ref.gmem);
	return err;
}

static long realm_populate(struct realm_vm *r, struct kvm_arm_rmi_populate *p)
{
	long err = 0;

	if (p->flags & ~KVM_ARM_RMI_POPULATE_FLAGS_MEASURE || p->reserved ||
	    !range_ok(r, p->base, p->size) || !PM_ALIGNED(p->source_uaddr, PM_PAGE_SIZE))
		return -EINVAL;
	pthread_mutex_lock(&r->build_lock);
	if (atomic_load(&r->state) != REALM_KVM_NEW) {
		err = -EINVAL;
		goto out;
	}
	err = init_ripas(r, p->base, p->base + p->size);
	while (!err && p->size) {
		if (pm_vcpu_signal_pending()) {
			err = -EINTR;
			break;
		}
		err = populate_page(r, p->base, (const void *)(uintptr_t)p->source_uaddr, p->flags);
		if (err)
			break;
		p->base += PM_PAGE_SIZE;
		p->source_uaddr += PM_PAGE_SIZE;
		p->size -= PM_PAGE_SIZE;
	}
out:
	pthread_mutex_unlock(&r->build_lock);
	return err;
}

/* ---- activation at the first KVM_RUN ---- */

static int realm_activate(struct realm_vm *r)
{
	static _Thread_local unsigned int ids[PM_MAX_VCPUS];
	struct pm_vm *vm = r->vm;
	unsigned int n;
	int err = 0;

	/* The vCPUs as they are now (vm->lock is a leaf: the RECs are made
	 * after it). */
	pthread_mutex_lock(&vm->lock);
	n = atomic_load(&vm->nr_vcpus);
	for (unsigned int i = 0; i < n; i++)
		ids[i] = vm->vcpus[i]->id;
	pthread_mutex_unlock(&vm->lock);
	/* From the first vCPU without a REC: an activation that ran out of
	 * memory goes on where it stopped. */
	for (unsigned int i = r->nr_recs; i < n && !err; i++) {
		struct rmi_rec_params p = { .flags = RMI_REC_FLAG_RUNNABLE, .mpidr = ids[i] };

		err = delegate_new(r, &r->rec[i]);
		if (!err)
			PM_BUG_ON(rmi_rec_create(realm_rd(r), r->rec[i], &p) != RMI_SUCCESS);
		if (!err)
			r->nr_recs++;
	}
	if (err)
		return err;       /* the RECs made stay: the next KVM_RUN goes on */
	PM_BUG_ON(rmi_realm_activate(realm_rd(r)) != RMI_SUCCESS);
	atomic_store(&r->state, REALM_KVM_ACTIVE);
	return 0;
}

static int realm_vcpu_pre_run(struct pm_vcpu *vcpu)
{
	struct realm_vm *r = to_realm(vcpu->vm);
	int err = 0;

	if (atomic_load(&r->state) != REALM_KVM_ACTIVE) {
		pthread_mutex_lock(&r->build_lock);
		if (atomic_load(&r->state) != REALM_KVM_ACTIVE)
			err = realm_activate(r);
		pthread_mutex_unlock(&r->build_lock);
	}
	if (!err && vcpu->idx >= r->nr_recs)
		err = -EINVAL;           /* created after activation: no REC */
	return err;
}

/* ---- measurement, statistics, ioctls ---- */

static int realm_get_measurement(struct pm_vm *vm, uint8_t *digest, size_t size)
{
	struct realm_vm *r = to_realm(vm);
	uint8_t rim[RIM_MAX_SIZE];
	unsigned int algo;
	int state;

	if (atomic_load(&r->state) != REALM_KVM_ACTIVE)
		return -EINVAL;
	rmm_realm_rim(realm_rd(r), rim, &algo, &state);
	if (rim_hash_size(algo) > size)
		return -E2BIG;
	memset(digest, 0, size);
	memcpy(digest, rim, rim_hash_size(algo));
	return 0;
}

static const char *const realm_stat_names[] = {
	[REALM_STAT_POPULATED] = "populated",
	[REALM_STAT_FAULT_DATA] = "fault_data_create",
	[REALM_STAT_FOLDS] = "folds",
	[REALM_STAT_UNFOLDS] = "unfolds",
	[REALM_STAT_DATA_DESTROYS] = "data_destroys",
	[REALM_STAT_DELEGATES] = "delegates",
	[REALM_STAT_UNDELEGATES] = "undelegates",
	[REALM_STAT_RTT_CREATES] = "rtt_creates",
	[REALM_STAT_UNPROT_MAPS] = "unprotected_maps",
	[REALM_STAT_UNPROT_UNMAPS] = "unprotected_unmaps",
	[REALM_STAT_RIPAS_EXITS] = "ripas_change_exits",
	[REALM_STAT_RIPAS_PAGES] = "ripas_change_pages",
	[REALM_STAT_RIPAS_REJECTED] = "ripas_change_rejected",
	[REALM_STAT_SEA] = "sea_injected",
	[REALM_STAT_DESTROYED_ACCESS] = "destroyed_access",
	[REALM_STAT_HELD_FRAMES] = "held_frames",
};
_Static_assert(PM_ARRAY_SIZE(realm_stat_names) == REALM_NR_STATS, "every realm statistic has a name");

static int realm_get_stats(struct pm_vm *vm, struct pm_model_stats *st)
{
	static const char *const gnames[GRANULE_NR_STATES] = {
		"granules_ns", "granules_delegated", "granules_rd", "granules_rec", "granules_data",
		"granules_rtt",
	};
	struct realm_vm *r = to_realm(vm);
	uint64_t counts[GRANULE_NR_STATES];
	struct rmm_stats rs;

	for (int i = 0; i < REALM_NR_STATS; i++)
		pm_model_stats_put(st, realm_stat_names[i], atomic_load(&r->stats[i]));
	/* The RMM's granules and counters are the machine's: every realm of
	 * the process (PM_KVM_GET_MODEL_STATS on the system handle has them
	 * all, the RMI commands by kind too). */
	rmm_granule_counts(counts);
	for (int i = GRANULE_DELEGATED; i < GRANULE_NR_STATES; i++)
		pm_model_stats_put(st, gnames[i], counts[i]);
	rmm_get_stats(&rs);
	pm_model_stats_put(st, "gpf", rs.gpf);
	pm_model_stats_put(st, "rim_extends", rs.rim_extends);
	pm_model_stats_put(st, "rmm_tlbis", rs.tlbis);
	pm_model_stats_put(st, "ipa_bits", atomic_load(&r->ipa_bits));
	return 0;
}

/* The machine's side, for the whole process: RMI commands by kind (those
 * that succeeded; rmi_errors: those that did not), granule protection
 * faults, RIM extensions, TLB invalidations, granules by state now. */
static int realm_get_process_stats(struct pm_model_stats *st)
{
	static const char *const gnames[GRANULE_NR_STATES] = {
		"granules_ns", "granules_delegated", "granules_rd", "granules_rec", "granules_data",
		"granules_rtt",
	};
	uint64_t counts[GRANULE_NR_STATES], errors = 0;
	struct rmm_stats rs;
	char name[40];

	rmm_get_stats(&rs);
	for (int i = 0; i < RMI_NR_CMDS; i++) {
		snprintf(name, sizeof(name), "rmi_%s", rmi_cmd_names[i]);
		pm_model_stats_put(st, name, rs.commands[i]);
		errors += rs.failed[i];
	}
	pm_model_stats_put(st, "rmi_errors", errors);
	pm_model_stats_put(st, "gpf", rs.gpf);
	pm_model_stats_put(st, "rim_extends", rs.rim_extends);
	pm_model_stats_put(st, "rmm_tlbis", rs.tlbis);
	rmm_granule_counts(counts);
	for (int i = GRANULE_DELEGATED; i < GRANULE_NR_STATES; i++)
		pm_model_stats_put(st, gnames[i], counts[i]);
	return 0;
}

static long realm_vm_ioctl(struct pm_vm *vm, unsigned long req, unsigned long arg)
{
	struct realm_vm *r = to_realm(vm);
	struct kvm_arm_rmi_populate pop;
	struct pm_realm_ripas_range rr;
	struct pm_realm_config cfg;
	long err;

	if (!arg)
		return -EFAULT;
	switch (req) {
	case PM_KVM_REALM_CONFIG:
		memcpy(&cfg, (void *)arg, sizeof(cfg));
		return realm_config(r, &cfg);
	case PM_KVM_REALM_INIT_RIPAS:
		memcpy(&rr, (void *)arg, sizeof(rr));
		return realm_init_ripas_ioctl(r, &rr);
	case KVM_ARM_RMI_POPULATE:
		memcpy(&pop, (void *)arg, sizeof(pop));
		err = realm_populate(r, &pop);
		memcpy((void *)arg, &pop, sizeof(pop));
		return err;
	default:
		return -ENOTTY;
	}
}

/* ---- VM lifetime ---- */

static int realm_vm_init(struct pm_vm *vm)
{
	struct realm_vm *r = pm_zalloc(sizeof(*r));
	uint64_t rd;
	int err;

	if (!r)
		return -ENOMEM;
	err = rmm_get();
	if (err)
		goto err_free;
	r->vm = vm;
	r->cfg = default_config;
	atomic_init(&r->flags, r->cfg.flags);
	atomic_init(&r->ipa_bits, r->cfg.ipa_bits);
	pthread_mutex_init(&r->build_lock, NULL);
	pthread_mutex_init(&r->spare_lock, NULL);
	err = delegate_new(r, &rd);
	if (err)
		goto err_rmm;
	atomic_store(&r->rd, rd);
	err = delegate_new(r, &r->root);
	if (err)
		goto err_rd;
	if (realm_create_rd(r)) {
		err = -ENOMEM;
		goto err_root;
	}
	atomic_store(&r->state, REALM_KVM_NEW);
	vm->model_data = r;
	vm->mmu->mirror = rmm_realm_rtt(rd);
	return 0;

err_root:
	undelegate_free(r, r->root);
err_rd:
	undelegate_free(r, rd);
err_rmm:
	pthread_mutex_destroy(&r->build_lock);
	pthread_mutex_destroy(&r->spare_lock);
	rmm_put();
err_free:
	free(r);
	return err;
}

/* Every guest_memfd is gone (each held a VM reference): their pages were
 * DATA_DESTROYed and undelegated; what is left is KVM's own: RECs, RTTs,
 * the unprotected mappings, the RD. */
static void realm_vm_destroy(struct pm_vm *vm)
{
	struct realm_vm *r = to_realm(vm);

	vm->model_data = NULL;
	vm->mmu->mirror = NULL;
	for (unsigned int i = 0; i < r->nr_recs; i++) {
		PM_BUG_ON(rmi_rec_destroy(r->rec[i]) != RMI_SUCCESS);
		undelegate_free(r, r->rec[i]);
	}
	realm_destroy_rtts(r);
	PM_BUG_ON(rmi_realm_destroy(realm_rd(r)) != RMI_SUCCESS);
	undelegate_free(r, r->root);
	undelegate_free(r, realm_rd(r));
	realm_free_spares(r);
	pthread_mutex_destroy(&r->build_lock);
	pthread_mutex_destroy(&r->spare_lock);
	free(r->spares);
	free(r->limbo);
	free(r);
	rmm_put();
}

const struct pm_model_ops pm_model_realm = {
	.name = "realm",
	.type = PM_VM_TYPE_REALM,
	.private_mem = true,
	.readonly_mem = false,
	.gmem_init_shared = false,
	.gmem_no_mmap = true,
	.vm_init = realm_vm_init,
	.vm_destroy = realm_vm_destroy,
	.gmem_prepare = realm_gmem_prepare,
	.gmem_invalidate = realm_gmem_invalidate,
	.gmem_hold = realm_gmem_hold,
	.inval_zap = realm_inval_zap,
	.gpa_decode = realm_gpa_decode,
	.get_measurement = realm_get_measurement,
	.map_private = realm_map_private,
	.map_shared = realm_map_shared,
	.private_max_level = realm_private_max_level,
	.guest_pre_fault = realm_guest_pre_fault,
	.guest_access = realm_guest_access,
	.guest_call = realm_guest_call,
	.vcpu_pre_run = realm_vcpu_pre_run,
	.get_stats = realm_get_stats,
	.get_process_stats = realm_get_process_stats,
	.vm_ioctl = realm_vm_ioctl,
};

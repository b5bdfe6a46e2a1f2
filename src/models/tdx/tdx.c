/* SPDX-License-Identifier: MIT */
/*
 * KVM_X86_TDX_VM (type 5): KVM's side of Intel TDX, over the simulated TDX
 * module (module.h), which it reaches only through SEAMCALLs.
 *
 * Addresses: a GPA with the shared bit (47, or 51 once INIT_VM configured
 * MAX_GPAW) is shared; gpa_decode strips the bit and says which kind the
 * access is. A mismatch with the gfn's attribute is the implicit conversion
 * request (KVM_EXIT_MEMORY_FAULT), as on any model with kind bits.
 *
 * Two roots: shared GPAs are mapped by the MMU's own table (the direct
 * root, generic code); private GPAs by the mirror root (tdx->mirror, set
 * as mmu->mirror), whose every change is propagated to the module's S-EPT
 * through the four hooks upstream has, called where upstream calls them:
 *   link   a new non-leaf mirror entry          -> TDH.MEM.SEPT.ADD
 *   set    a new leaf                           -> TDH.MEM.PAGE.ADD before
 *          FINALIZE (the build), TDH.MEM.PAGE.AUG after (pending until the
 *          guest accepts it)
 *   remove a leaf zapped, MMU lock exclusive    -> RANGE.BLOCK, TRACK and a
 *          TLB shootdown that makes every vCPU re-enter, PAGE.REMOVE, then
 *          the page is cleared
 *   free   a table removed: only at teardown, where the module reclaims all
 * and, for 2M private pages (not upstream yet), a 2M leaf that a zap covers
 * only in part is demoted (BLOCK, TRACK, DEMOTE) instead of removed.
 *
 * The frozen-entry protocol: faults change the mirror under the MMU lock
 * held *shared*, so several faults may build the same part of it. A fault
 * first turns the entry into PM_PTE_FROZEN by compare-and-exchange, runs
 * the hook, then stores the final value, or the old one back if the hook
 * failed. Whoever meets a frozen entry retries its fault. Without it
 * (PM_TDX_NO_FROZEN_PROTOCOL, tests only) the entry is set first and the
 * hook runs after: another fault can then walk under a table the module
 * has not been told of, and its SEAMCALL fails (seed 003).
 *
 * Errors: OPERAND_BUSY in a fault restores the entry and retries the fault;
 * in a zap, vCPUs are kicked (a shootdown) and the call retried once. Any
 * other failure marks the VM bugged (EIO for KVM's ioctls); a page whose
 * removal failed is leaked on purpose and counted: guest_memfd's free asks
 * gmem_hold, and the frames are never returned to the pool.
 *
 * Locks: the MMU lock (shared for faults, exclusive for private zaps),
 * build_lock (the build ioctls), leak_lock (a leaf). The module's locks
 * nest inside all of them; it calls nothing of KVM's.
 *
 * Files: this one has the VM type (addresses, vCPUs, the build ioctls,
 * statistics, lifetime); mirror.c the mirror root, its hooks, zaps,
 * demotion and leaks; tdx_guest.c the guest's TDCALLs.
 */
#include <privmem/kvm.h>
#include "memslot/memslot.h"
#include "mmu/mmu.h"
#include "models/tdx/tdx.h"
#include "vcpu/vcpu.h"

#define SHARED_BIT_4LEVEL 47
#define SHARED_BIT_5LEVEL 51

/* ---- addresses ---- */

static void tdx_gpa_decode(struct pm_vm *vm, uint64_t gpa, gfn_t *gfn, bool *private_access)
{
	uint64_t shared = 1ULL << atomic_load_explicit(&to_tdx(vm)->shared_bit, memory_order_relaxed);

	*private_access = !(gpa & shared);
	*gfn = (gpa & ~shared) >> PM_PAGE_SHIFT;
}

/* ---- vCPUs ---- */

static int vcpu_vp(struct pm_vcpu *vcpu)
{
	return atomic_load_explicit(&to_tdx(vcpu->vm)->vp_of[vcpu->idx], memory_order_relaxed);
}

static void tdx_vcpu_enter(struct pm_vcpu *vcpu)
{
	int vp = vcpu_vp(vcpu);

	if (vp >= 0)
		tdx_module_vp_enter(tdx_td(to_tdx(vcpu->vm)), vp);
}

static void tdx_vcpu_exit(struct pm_vcpu *vcpu)
{
	int vp = vcpu_vp(vcpu);

	if (vp >= 0)
		tdx_module_vp_exit(tdx_td(to_tdx(vcpu->vm)), vp);
}

/* A TD vCPU runs only once it is initialised and the TD finalized. */
static int tdx_vcpu_pre_run(struct pm_vcpu *vcpu)
{
	if (atomic_load(&to_tdx(vcpu->vm)->state) != TDX_STATE_RUNNABLE || vcpu_vp(vcpu) < 0)
		return -EINVAL;
	return 0;
}

/* ---- the build: KVM_MEMORY_ENCRYPT_OP ---- */

static bool all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

/* Guest physical address bits from CPUID 0x80000008: 48 or 52, else 0. */
static unsigned int init_vm_gpa_bits(const struct kvm_tdx_init_vm *in)
{
	for (uint32_t i = 0; i < in->cpuid.nent; i++) {
		const struct kvm_cpuid_entry2 *e = &in->cpuid.entries[i];
		unsigned int bits;

		if (e->function != 0x80000008 || e->index)
			continue;
		bits = (e->eax >> 16) & 0xff;
		if (!bits)
			bits = e->eax & 0xff;
		return bits == 48 || bits == 52 ? bits : 0;
	}
	return 0;
}

static int tdx_init_vm(struct tdx_vm *t, struct kvm_tdx_cmd *cmd)
{
	const struct kvm_tdx_init_vm *in = (const void *)(uintptr_t)cmd->data;
	struct tdx_td *td;
	unsigned int bits;
	int r;

	if (cmd->flags)
		return -EINVAL;
	if (atomic_load(&t->state) != TDX_STATE_UNINIT)
		return -EINVAL;
	if (!in)
		return -EFAULT;
	if (in->cpuid.nent > KVM_MAX_CPUID_ENTRIES)
		return -E2BIG;
	if (!all_zero(in->reserved, sizeof(in->reserved)))
		return -EINVAL;
	bits = init_vm_gpa_bits(in);
	if (!bits)
		return -EINVAL;
	r = tdx_module_td_create(bits - 1, &td);
	if (r)
		return r;
	tdx_module_set_busy_rate(td, atomic_load(&t->busy_rate));
	atomic_store(&t->shared_bit, bits == 52 ? SHARED_BIT_5LEVEL : SHARED_BIT_4LEVEL);
	atomic_store_explicit(&t->td, td, memory_order_release);
	atomic_store(&t->state, TDX_STATE_INIT);
	return 0;
}

static int tdx_finalize_vm(struct tdx_vm *t, struct kvm_tdx_cmd *cmd)
{
	if (cmd->flags || atomic_load(&t->state) != TDX_STATE_INIT)
		return -EINVAL;
	cmd->hw_error = tdh_mr_finalize(tdx_td(t));
	if (cmd->hw_error)
		return -EIO;
	atomic_store(&t->state, TDX_STATE_RUNNABLE);
	return 0;
}

static int tdx_init_vcpu(struct pm_vcpu *vcpu, struct kvm_tdx_cmd *cmd)
{
	struct tdx_vm *t = to_tdx(vcpu->vm);
	int vp;

	if (cmd->flags || vcpu_vp(vcpu) >= 0)
		return -EINVAL;
	vp = tdx_module_vp_create(tdx_td(t));
	if (vp < 0)
		return vp;
	atomic_store(&t->vp_of[vcpu->idx], vp);
	return 0;
}

/* The fault's result as INIT_MEM_REGION's errno. */
static int populate_errno(enum pm_fault_result r, const struct pm_fault *f,
			  const struct tdx_populate *pop)
{
	switch (r) {
	case PM_FAULT_MMIO:
		return -EINVAL;          /* no memslot */
	case PM_FAULT_EXIT:
		return f->err == EFAULT ? -EINVAL : -f->err;
	case PM_FAULT_ERROR:
		return -f->err;
	default:
		return pop->added ? 0 : -EEXIST;
	}
}

/* One page of the image: mapped through the mirror (the set hook runs
 * PAGE.ADD with src), then measured in 16 chunks if asked. */
static int populate_page(struct tdx_vm *t, uint64_t gpa, const void *src, bool measure,
			 __u64 *hw_error)
{
	struct pm_fault f = pm_fault_init(gpa >> PM_PAGE_SHIFT, PM_ACCESS_WRITE);
	uint8_t page[PM_PAGE_SIZE];
	struct tdx_populate pop = { .src = page };
	struct pm_vm *vm = t->vm;
	enum pm_fault_result res;
	bool mapped = true;
	int r;

	if (!pm_vm_gfn_is_private(vm, f.gfn))
		return -EINVAL;
	if (pm_mmu_translate_kind(vm, f.gfn, false, &mapped))
		return -EEXIST;
	/* The source as KVM's get_user_pages would take it: EFAULT where the
	 * VMM has nothing readable. In-place mode takes source 0 as the
	 * guest_memfd page itself (23/46): what the VMM wrote there while it
	 * was shared. */
	if (!src && vm->in_place)
		r = pm_memslot_read_gmem_page(vm, f.gfn, page);
	else
		r = pm_copy_from_user(page, src, PM_PAGE_SIZE) ? -EFAULT : 0;
	if (r)
		return r;
	f.private_access = true;
	f.max_level = 0;         /* PAGE.ADD is 4K */
	f.model_arg = &pop;
	while ((res = pm_mmu_fault(vm, &f)) == PM_FAULT_RETRY)
		if (pm_vcpu_signal_pending())
			return -EINTR;
	r = populate_errno(res, &f, &pop);
	/* A SEAMCALL that failed with OPERAND_BUSY and was retried is no
	 * error of the ioctl: hw_error says only why it failed. */
	*hw_error = r ? pop.hw_error : 0;
	for (int c = 0; !r && measure && c < 16; c++) {
		*hw_error = tdh_mr_extend(tdx_td(t), gpa + c * 256);
		r = *hw_error ? -EIO : 0;
		if (!r)
			atomic_fetch_add_explicit(&t->mr_extends, 1, memory_order_relaxed);
	}
	return r;
}

static bool region_ok(struct tdx_vm *t, const struct kvm_tdx_init_mem_region *reg)
{
	uint64_t shared = 1ULL << atomic_load(&t->shared_bit);
	uint64_t end = reg->gpa + (reg->nr_pages << PM_PAGE_SHIFT);

	return PM_ALIGNED(reg->source_addr, PM_PAGE_SIZE) && PM_ALIGNED(reg->gpa, PM_PAGE_SIZE) &&
	       reg->nr_pages && reg->nr_pages < (1ULL << 52) && end > reg->gpa &&
	       !(reg->gpa & shared) && !((end - 1) & shared) && (end - 1) < 2 * shared;
}

static int tdx_init_mem_region(struct pm_vcpu *vcpu, struct kvm_tdx_cmd *cmd)
{
	struct kvm_tdx_init_mem_region *user = (void *)(uintptr_t)cmd->data, reg;
	struct tdx_vm *t = to_tdx(vcpu->vm);
	int r = 0;

	if (cmd->flags & ~KVM_TDX_MEASURE_MEMORY_REGION)
		return -EINVAL;
	if (vcpu_vp(vcpu) < 0)
		return -EINVAL;
	if (!user)
		return -EFAULT;
	reg = *user;
	if (!region_ok(t, &reg))
		return -EINVAL;
	while (reg.nr_pages) {
		if (pm_vcpu_signal_pending()) {
			r = -EINTR;
			break;
		}
		r = populate_page(t, reg.gpa, (const void *)(uintptr_t)reg.source_addr,
				  cmd->flags & KVM_TDX_MEASURE_MEMORY_REGION, &cmd->hw_error);
		if (r)
			break;
		if (reg.source_addr || !vcpu->vm->in_place)
			reg.source_addr += PM_PAGE_SIZE;
		reg.gpa += PM_PAGE_SIZE;
		reg.nr_pages--;
	}
	*user = reg;
	return r;
}

typedef int (*tdx_vm_cmd_fn)(struct tdx_vm *t, struct kvm_tdx_cmd *cmd);
typedef int (*tdx_vcpu_cmd_fn)(struct pm_vcpu *vcpu, struct kvm_tdx_cmd *cmd);

/* KVM_TDX_* on the VM and on a vCPU; NULL: EINVAL there. */
static const tdx_vm_cmd_fn tdx_vm_cmds[] = {
	[KVM_TDX_CAPABILITIES] = NULL,
	[KVM_TDX_INIT_VM] = tdx_init_vm,
	[KVM_TDX_INIT_VCPU] = NULL,
	[KVM_TDX_INIT_MEM_REGION] = NULL,
	[KVM_TDX_FINALIZE_VM] = tdx_finalize_vm,
	[KVM_TDX_GET_CPUID] = NULL,
};
static const tdx_vcpu_cmd_fn tdx_vcpu_cmds[] = {
	[KVM_TDX_CAPABILITIES] = NULL,
	[KVM_TDX_INIT_VM] = NULL,
	[KVM_TDX_INIT_VCPU] = tdx_init_vcpu,
	[KVM_TDX_INIT_MEM_REGION] = tdx_init_mem_region,
	[KVM_TDX_FINALIZE_VM] = NULL,
	[KVM_TDX_GET_CPUID] = NULL,
};
_Static_assert(PM_ARRAY_SIZE(tdx_vm_cmds) == KVM_TDX_CMD_NR_MAX, "every KVM_TDX_* command");
_Static_assert(PM_ARRAY_SIZE(tdx_vcpu_cmds) == KVM_TDX_CMD_NR_MAX, "every KVM_TDX_* command");

/* Copies the command in, checks it, and copies it back (hw_error). */
static long tdx_cmd_in(unsigned long arg, struct kvm_tdx_cmd *cmd)
{
	if (!arg)
		return -EFAULT;
	memcpy(cmd, (void *)arg, sizeof(*cmd));
	if (cmd->hw_error || cmd->id >= KVM_TDX_CMD_NR_MAX)
		return -EINVAL;
	return 0;
}

static long tdx_mem_enc_op(struct pm_vm *vm, unsigned long arg)
{
	struct tdx_vm *t = to_tdx(vm);
	struct kvm_tdx_cmd cmd;
	long r = tdx_cmd_in(arg, &cmd);

	if (r)
		return r;
	if (!tdx_vm_cmds[cmd.id])
		return -EINVAL;
	pthread_mutex_lock(&t->build_lock);
	r = tdx_vm_cmds[cmd.id](t, &cmd);
	pthread_mutex_unlock(&t->build_lock);
	memcpy((void *)arg, &cmd, sizeof(cmd));
	return r;
}

static long tdx_vcpu_mem_enc_op(struct pm_vcpu *vcpu, unsigned long arg)
{
	struct tdx_vm *t = to_tdx(vcpu->vm);
	struct kvm_tdx_cmd cmd;
	long r = tdx_cmd_in(arg, &cmd);

	if (r)
		return r;
	if (!tdx_vcpu_cmds[cmd.id])
		return -EINVAL;
	pthread_mutex_lock(&t->build_lock);
	/* vCPU commands build the TD: after INIT_VM, before FINALIZE. */
	if (atomic_load(&t->state) != TDX_STATE_INIT)
		r = -EINVAL;
	else
		r = tdx_vcpu_cmds[cmd.id](vcpu, &cmd);
	pthread_mutex_unlock(&t->build_lock);
	memcpy((void *)arg, &cmd, sizeof(cmd));
	return r;
}

/* digest: at least PM_MEASUREMENT_SIZE bytes (zeroed past them). */
static int tdx_get_measurement(struct pm_vm *vm, uint8_t *digest, size_t size)
{
	struct tdx_td *td = tdx_td(to_tdx(vm));

	return td ? tdx_module_mrtd(td, digest) : -EINVAL;
}

/* ---- statistics (PM_KVM_GET_MODEL_STATS) and switches (PM_KVM_TDX_CONFIG) ---- */

void tdx_vm_stats(struct pm_vm *vm, struct tdx_stats *st)
{
	struct tdx_vm *t = to_tdx(vm);
	struct tdx_module_stats ms = { 0 };

	memset(st, 0, sizeof(*st));
	if (tdx_td(t))
		tdx_module_stats(tdx_td(t), &ms);
	memcpy(st->sept_entries, ms.sept_entries, sizeof(st->sept_entries));
	st->busy_injected = ms.busy_injected;
	st->pending = ms.pending;
	st->busy_retries = atomic_load(&t->busy_retries);
	st->frozen_retries = atomic_load(&t->frozen_retries);
	st->demotions = atomic_load(&t->demotions);
	st->leaked_pages = atomic_load(&t->leaked_pages);
	st->fatal_events = atomic_load(&t->fatal_events);
	st->page_adds = atomic_load(&t->page_adds);
	st->page_augs = atomic_load(&t->page_augs);
	st->page_removes = atomic_load(&t->page_removes);
	st->mr_extends = atomic_load(&t->mr_extends);
	st->tracks = atomic_load(&t->tracks);
	st->held_frames = atomic_load(&t->held_frames);
	st->last_error = atomic_load(&t->last_error);
}

/* PM_KVM_GET_MODEL_STATS: tdx_vm_stats by name. */
static int tdx_get_stats(struct pm_vm *vm, struct pm_model_stats *ms)
{
	static const char *const sept[4] = { "sept_4k", "sept_2m", "sept_1g", "sept_tables" };
	struct tdx_stats st;

	tdx_vm_stats(vm, &st);
	for (int l = 0; l < 4; l++)
		pm_model_stats_put(ms, sept[l], st.sept_entries[l]);
	pm_model_stats_put(ms, "busy_retries", st.busy_retries);
	pm_model_stats_put(ms, "busy_injected", st.busy_injected);
	pm_model_stats_put(ms, "frozen_retries", st.frozen_retries);
	pm_model_stats_put(ms, "demotions", st.demotions);
	pm_model_stats_put(ms, "leaked_pages", st.leaked_pages);
	pm_model_stats_put(ms, "fatal_events", st.fatal_events);
	pm_model_stats_put(ms, "pending", st.pending);
	pm_model_stats_put(ms, "page_adds", st.page_adds);
	pm_model_stats_put(ms, "page_augs", st.page_augs);
	pm_model_stats_put(ms, "page_removes", st.page_removes);
	pm_model_stats_put(ms, "mr_extends", st.mr_extends);
	pm_model_stats_put(ms, "tracks", st.tracks);
	pm_model_stats_put(ms, "held_frames", st.held_frames);
	pm_model_stats_put(ms, "last_error", st.last_error);
	return 0;
}

static long tdx_vm_ioctl(struct pm_vm *vm, unsigned long req, unsigned long arg)
{
	struct tdx_vm *t = to_tdx(vm);
	struct pm_tdx_config cfg;

	if (!arg)
		return -EFAULT;
	switch (req) {
	case PM_KVM_TDX_CONFIG:
		memcpy(&cfg, (void *)arg, sizeof(cfg));
		if (cfg.busy_per_million > 1000000 ||
		    cfg.flags & ~(PM_TDX_NO_FROZEN_PROTOCOL | PM_TDX_NO_HUGE))
			return -EINVAL;
		atomic_store(&t->busy_rate, cfg.busy_per_million);
		atomic_store(&t->flags, cfg.flags);
		pthread_mutex_lock(&t->build_lock);
		if (tdx_td(t))
			tdx_module_set_busy_rate(tdx_td(t), cfg.busy_per_million);
		pthread_mutex_unlock(&t->build_lock);
		return 0;
	default:
		return -ENOTTY;
	}
}

/* ---- VM lifetime ---- */

static int tdx_vm_init(struct pm_vm *vm)
{
	struct tdx_vm *t = pm_zalloc(sizeof(*t));

	if (!t)
		return -ENOMEM;
	if (pm_s2_init(&t->mirror)) {
		free(t);
		return -ENOMEM;
	}
	t->vm = vm;
	atomic_init(&t->shared_bit, SHARED_BIT_4LEVEL);
	for (unsigned int i = 0; i < PM_MAX_VCPUS; i++)
		atomic_init(&t->vp_of[i], -1);
	pthread_mutex_init(&t->build_lock, NULL);
	pthread_mutex_init(&t->leak_lock, NULL);
	vm->model_data = t;
	vm->mmu->mirror = &t->mirror;
	return 0;
}

/* Every guest_memfd is gone (each held a VM reference), so the mirror
 * holds only leaked leaves; the module reclaims the S-EPT (free hook). */
static void tdx_vm_destroy(struct pm_vm *vm)
{
	struct tdx_vm *t = to_tdx(vm);

	vm->model_data = NULL;
	vm->mmu->mirror = NULL;
	if (tdx_td(t))
		tdx_module_td_destroy(tdx_td(t));
	pm_s2_destroy(&t->mirror);
	pthread_mutex_destroy(&t->build_lock);
	pthread_mutex_destroy(&t->leak_lock);
	free(t->leaked);
	free(t);
}

const struct pm_model_ops pm_model_tdx = {
	.name = "tdx",
	.type = KVM_X86_TDX_VM,
	.private_mem = true,
	.readonly_mem = false,
	.gmem_init_shared = false,
	.gmem_slots_only = false,
	.convert_hides_private = true,
	.vm_init = tdx_vm_init,
	.vm_destroy = tdx_vm_destroy,
	.inval_zap = tdx_inval_zap,
	.gpa_decode = tdx_gpa_decode,
	.mem_enc_op = tdx_mem_enc_op,
	.vcpu_mem_enc_op = tdx_vcpu_mem_enc_op,
	.get_measurement = tdx_get_measurement,
	.map_private = tdx_map_private,
	.private_max_level = tdx_private_max_level,
	.guest_call = tdx_guest_call,
	.vcpu_pre_run = tdx_vcpu_pre_run,
	.vcpu_enter = tdx_vcpu_enter,
	.vcpu_exit = tdx_vcpu_exit,
	.guest_access = tdx_guest_access,
	.gmem_hold = tdx_gmem_hold,
	.get_stats = tdx_get_stats,
	.vm_ioctl = tdx_vm_ioctl,
};

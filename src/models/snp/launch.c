/* SPDX-License-Identifier: MIT */
/*
 * SEV-SNP measured launch through KVM_MEMORY_ENCRYPT_OP on the VM handle,
 * as upstream's snp_launch_start / snp_launch_update / snp_launch_finish:
 *
 *  LAUNCH_START   policy checked (EINVAL for unknown bits or without the
 *                 must-be-one bit 17, or non-zero flags); a second start is
 *                 EINVAL; the firmware's launch context begins.
 *  LAUNCH_UPDATE  (after START, before FINISH; else EINVAL) len a non-zero
 *                 multiple of 4K, flags 0, type NORMAL, ZERO, UNMEASURED, SECRETS or
 *                 CPUID (EINVAL otherwise); gfn_start in a guest_memfd slot
 *                 (EINVAL). Page by page, as kvm_gmem_populate: the gfn must
 *                 be private (EINVAL), its guest_memfd page not prepared yet
 *                 (EEXIST) nor assigned in the RMP (EINVAL); the source page
 *                 is copied in (a host write, RMP-checked; not for ZERO),
 *                 the frame made private and immutable (RMPUPDATE), then the
 *                 firmware measures it and makes it guest-valid. On an error
 *                 after some pages, the call succeeds with gfn_start, uaddr
 *                 and len advanced past what was done (Linux's partial
 *                 progress); on an error at the first page it fails (a
 *                 firmware error: EIO with kvm_sev_cmd.error set).
 *  LAUNCH_FINISH  (after START, once; flags 0) each vCPU's VMSA is made
 *                 from its registers as the VMM set them (KVM_SET_REGS,
 *                 SREGS, FPU: vmsa.h, with what KVM's VMCB adds) and
 *                 measured, the BSP first; then the digest is final. The
 *                 vCPUs' run_lock is taken for that, inside launch_lock.
 * PM_KVM_GET_MEASUREMENT returns the digest after FINISH (EINVAL before).
 */
#include <privmem/privmem.h>
#include "gmem/gmem.h"
#include "host/host_guard.h"
#include "host/pool.h"
#include "memslot/memslot.h"
#include "models/snp/rmp.h"
#include "models/snp/snp.h"
#include "models/snp/vmsa.h"

#define SNP_POLICY_VALID  0x1FFFFFULL     /* ABI version, SMT, MBO, MIGRATE_MA, DEBUG, SINGLE_SOCKET */
#define SNP_POLICY_MBO    (1ULL << 17)

static long launch_start(struct snp_vm *s, struct kvm_sev_cmd *cmd)
{
	struct kvm_sev_snp_launch_start p;
	enum psp_status st;

	if (s->started)
		return -EINVAL;
	if (!cmd->data)
		return -EFAULT;
	memcpy(&p, (void *)(uintptr_t)cmd->data, sizeof(p));
	if (p.flags || (p.policy & ~SNP_POLICY_VALID) || !(p.policy & SNP_POLICY_MBO))
		return -EINVAL;
	st = psp_launch_start(&s->fw, p.policy);
	if (st != PSP_SUCCESS) {
		cmd->error = st;
		return -EIO;
	}
	s->started = true;
	return 0;
}

static bool launch_type_ok(uint8_t type)
{
	return type == KVM_SEV_SNP_PAGE_TYPE_NORMAL || type == KVM_SEV_SNP_PAGE_TYPE_ZERO ||
	       type == KVM_SEV_SNP_PAGE_TYPE_UNMEASURED || type == KVM_SEV_SNP_PAGE_TYPE_SECRETS ||
	       type == KVM_SEV_SNP_PAGE_TYPE_CPUID;
}

/* What populating one page needs (sev_gmem_post_populate's arguments). */
struct populate_arg {
	struct snp_vm *s;
	const uint8_t *src;     /* this page's source (the VMM's, unchecked); NULL for ZERO */
	uint8_t *bounce;        /* a page the source is copied into first */
	uint8_t type;
	uint32_t fw_error;
};

static int populate_one(void *arg, pm_pfn_t pfn, gfn_t gfn)
{
	struct populate_arg *a = arg;
	struct rmp_state priv = {
		.assigned = true, .immutable = true, .gpa = gfn << PM_PAGE_SHIFT, .asid = a->s->asid,
	};
	struct rmp_state shared = { 0 };
	enum psp_status st;

	if (rmp_is_assigned(rmp_effective(pfn)))
		return -EINVAL;
	if (a->src) {
		/* copy_from_user: a source the VMM does not have mapped is
		 * EFAULT, and the frame is written only with a whole page. */
		if (pm_copy_from_user(a->bounce, a->src, PM_PAGE_SIZE))
			return -EFAULT;
		if (pm_host_access(pfn, 1, true))
			return -EFAULT;
		memcpy(pm_pfn_to_hva(pfn), a->bounce, PM_PAGE_SIZE);
	}
	if (rmp_update(pfn, &priv) != RMP_OK)
		return -EINVAL;
	st = psp_launch_update(&a->s->fw, pfn, gfn << PM_PAGE_SHIFT, a->type);
	if (st != PSP_SUCCESS) {
		/* Back to the hypervisor: the firmware first, as upstream. */
		PM_BUG_ON(psp_page_reclaim(pfn) != PSP_SUCCESS);
		PM_BUG_ON(rmp_update(pfn, &shared) != RMP_OK);
		a->fw_error = st;
		return -EIO;
	}
	snp_count(a->s, SNP_STAT_LAUNCH_PAGES, 1);
	return 0;
}

/* The guest_memfd of gfn's slot (referenced) and the file page, clamping
 * *npages to the slot; NULL if gfn is in no guest_memfd slot. */
static struct pm_gmem *launch_slot(struct pm_vm *vm, gfn_t gfn, uint64_t *npages, uint64_t *index)
{
	struct pm_slot_ref ref;

	if (!pm_memslot_get(vm, gfn, true, &ref))
		return NULL;
	*index = ref.index;
	*npages = PM_MIN(*npages, ref.run);
	return ref.gmem;
}

static bool launch_in_place(const struct snp_vm *s, const struct kvm_sev_snp_launch_update *p)
{
	return s->vm->in_place && !p->uaddr;
}

/* Pages done, or -errno if none was. */
static long launch_populate(struct snp_vm *s, const struct kvm_sev_snp_launch_update *p,
			    uint64_t npages, uint32_t *fw_error)
{
	uint8_t bounce[PM_PAGE_SIZE];
	struct populate_arg a = { .s = s, .type = p->type, .bounce = bounce };
	uint64_t index, done = 0;
	struct pm_gmem *g = launch_slot(s->vm, p->gfn_start, &npages, &index);
	int r = 0;

	if (!g)
		return -EINVAL;
	for (; done < npages; done++) {
		gfn_t gfn = p->gfn_start + done;

		if (!pm_vm_gfn_is_private(s->vm, gfn)) {
			r = -EINVAL;
			break;
		}
		/* In-place mode: uaddr 0 means the data is the guest_memfd
		 * page's own (22/46), written by the VMM while it was shared. */
		a.src = p->type == KVM_SEV_SNP_PAGE_TYPE_ZERO || launch_in_place(s, p) ? NULL
			: (const uint8_t *)(uintptr_t)(p->uaddr + done * PM_PAGE_SIZE);
		if (a.src == NULL && p->type != KVM_SEV_SNP_PAGE_TYPE_ZERO && !launch_in_place(s, p)) {
			r = -EFAULT;
			break;
		}
		r = pm_gmem_populate(g, index + done, gfn, populate_one, &a);
		if (r)
			break;
	}
	pm_gmem_put(g);
	*fw_error = a.fw_error;
	return r && !done ? r : (long)done;
}

static long launch_update(struct snp_vm *s, struct kvm_sev_cmd *cmd)
{
	struct kvm_sev_snp_launch_update p;
	long n;

	if (!s->started || s->finished)
		return -EINVAL;
	if (!cmd->data)
		return -EFAULT;
	memcpy(&p, (void *)(uintptr_t)cmd->data, sizeof(p));
	if (!p.len || !PM_ALIGNED(p.len, PM_PAGE_SIZE) || p.flags || !launch_type_ok(p.type))
		return -EINVAL;
	n = launch_populate(s, &p, p.len >> PM_PAGE_SHIFT, &cmd->error);
	if (n < 0)
		return n;
	p.gfn_start += (uint64_t)n;
	p.len -= (uint64_t)n << PM_PAGE_SHIFT;
	if (p.type != KVM_SEV_SNP_PAGE_TYPE_ZERO && !launch_in_place(s, &p))
		p.uaddr += (uint64_t)n << PM_PAGE_SHIFT;
	memcpy((void *)(uintptr_t)cmd->data, &p, sizeof(p));
	return 0;
}

/* Makes and measures one VMSA per vCPU, in vCPU order (the BSP first),
 * each synced from the vCPU's registers (vmsa.h); on failure frees what it
 * made. */
static long launch_vmsas(struct snp_vm *s, struct kvm_sev_cmd *cmd)
{
	unsigned int n = atomic_load(&s->vm->nr_vcpus);
	struct snp_vmsa_state state;
	enum psp_status st;

	s->vmsa = calloc(n ? n : 1, sizeof(*s->vmsa));
	if (!s->vmsa)
		return -ENOMEM;
	for (s->nr_vmsa = 0; s->nr_vmsa < n; s->nr_vmsa++) {
		pm_pfn_t pfn;

		if (pm_pool_alloc(0, &pfn))
			return -ENOMEM;
		/* KVM writes the save area while the page is still the host's. */
		snp_vmsa_from_vcpu(s->vm->vcpus[s->nr_vmsa], SNP_SEV_FEAT_SNP_ACTIVE, &state);
		PM_BUG_ON(pm_host_access(pfn, 1, true));
		snp_vmsa_build(pm_pfn_to_hva(pfn), &state);
		st = psp_launch_vmsa(&s->fw, pfn);
		if (st != PSP_SUCCESS) {
			pm_pool_free(pfn, 0);
			cmd->error = st;
			return -EIO;
		}
		s->vmsa[s->nr_vmsa] = pfn;
	}
	return 0;
}

static long launch_finish(struct snp_vm *s, struct kvm_sev_cmd *cmd)
{
	struct kvm_sev_snp_launch_finish p;
	enum psp_status st;
	long r;

	if (!s->started || s->finished)
		return -EINVAL;
	if (!cmd->data)
		return -EFAULT;
	memcpy(&p, (void *)(uintptr_t)cmd->data, sizeof(p));
	if (p.flags)
		return -EINVAL;
	r = launch_vmsas(s, cmd);
	if (r) {
		snp_launch_teardown(s);
		return r;
	}
	st = psp_launch_finish(&s->fw);
	if (st != PSP_SUCCESS) {
		cmd->error = st;
		return -EIO;
	}
	s->finished = true;
	return 0;
}

typedef long (*launch_fn)(struct snp_vm *s, struct kvm_sev_cmd *cmd);
static const struct { uint32_t id; launch_fn fn; } launch_cmds[] = {
	{ KVM_SEV_SNP_LAUNCH_START, launch_start },
	{ KVM_SEV_SNP_LAUNCH_UPDATE, launch_update },
	{ KVM_SEV_SNP_LAUNCH_FINISH, launch_finish },
};
_Static_assert(PM_ARRAY_SIZE(launch_cmds) == 3, "START, UPDATE and FINISH are served");

long snp_mem_enc_op(struct pm_vm *vm, unsigned long arg)
{
	struct snp_vm *s = to_snp(vm);
	struct kvm_sev_cmd cmd;
	long r = -EINVAL;      /* an unknown command, as sev_mem_enc_ioctl */

	if (!arg)
		return -EFAULT;
	memcpy(&cmd, (void *)arg, sizeof(cmd));
	pthread_mutex_lock(&s->launch_lock);
	for (size_t i = 0; i < PM_ARRAY_SIZE(launch_cmds); i++)
		if (launch_cmds[i].id == cmd.id)
			r = launch_cmds[i].fn(s, &cmd);
	pthread_mutex_unlock(&s->launch_lock);
	memcpy((void *)arg, &cmd, sizeof(cmd));
	return r;
}

/* digest: at least PM_MEASUREMENT_SIZE bytes (zeroed past them). */
int snp_get_measurement(struct pm_vm *vm, uint8_t *digest, size_t size)
{
	return psp_get_digest(&to_snp(vm)->fw, digest) == PSP_SUCCESS ? 0 : -EINVAL;
}

/* The VMSA pages go back: the firmware lets go, then the hypervisor. */
void snp_launch_teardown(struct snp_vm *s)
{
	struct rmp_state shared = { 0 };

	for (unsigned int i = 0; i < s->nr_vmsa; i++) {
		PM_BUG_ON(psp_page_reclaim(s->vmsa[i]) != PSP_SUCCESS);
		PM_BUG_ON(rmp_update(s->vmsa[i], &shared) != RMP_OK);
		pm_pool_free(s->vmsa[i], 0);
	}
	free(s->vmsa);
	s->vmsa = NULL;
	s->nr_vmsa = 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * The guest side of the vCPU engine: the privmem/guest.h API.
 *
 * Every access goes page by page through the vCPU's TLB (checked for a
 * pending shootdown first); a miss walks the stage-2 table; a page that is
 * not mapped leaves guest mode for the fault path, which maps it or asks for
 * an exit. Exits fill in kvm_run and yield to KVM_RUN's caller; when the
 * guest is resumed it retries the access (a memory fault) or picks up the
 * VMM's answer (MMIO read data, a hypercall's return value).
 */
#include <stdio.h>
#include <privmem/guest.h>
#include <privmem/privmem.h>
#include "host/pool.h"
#include "kvm/vm.h"
#include "lib/trace.h"
#include "mmu/mmu.h"
#include "vcpu/coro.h"
#include "vcpu/vcpu.h"
#include "vcpu/x86/x86.h"

static inline struct pm_vcpu *to_vcpu(struct pm_guest *g)
{
	return (struct pm_vcpu *)g;
}

/* The exits by counted reason, as traces name them. */
static const char *const exit_names[PM_STAT_NR_EXITS] = {
	[PM_STAT_EXITS_UCALL] = "ucall", [PM_STAT_EXITS_MEMORY_FAULT] = "memory_fault",
	[PM_STAT_EXITS_HYPERCALL] = "hypercall", [PM_STAT_EXITS_MMIO] = "mmio",
	[PM_STAT_EXITS_INTR] = "intr", [PM_STAT_EXITS_SYSTEM_EVENT] = "system_event",
	[PM_STAT_EXITS_ERROR] = "error", [PM_STAT_EXITS_IO] = "io", [PM_STAT_EXITS_HLT] = "hlt",
	[PM_STAT_EXITS_SHUTDOWN] = "shutdown",
};

/* What the exit is about: a gpa, the hypercall, the port or the ucall. */
static uint64_t exit_detail(const struct pm_vcpu *v, int stat)
{
	const struct kvm_run *run = v->run;

	switch (stat) {
	case PM_STAT_EXITS_MEMORY_FAULT: return run->memory_fault.gpa;
	case PM_STAT_EXITS_MMIO: return run->mmio.phys_addr;
	case PM_STAT_EXITS_HYPERCALL: return run->hypercall.nr;
	case PM_STAT_EXITS_IO: return run->io.port;
	case PM_STAT_EXITS_UCALL: return v->ucall.cmd;
	default: return 0;
	}
}

void pm_vcpu_count_exit(struct pm_vcpu *v, int stat)
{
	atomic_fetch_add_explicit(&v->exits[stat], 1, memory_order_relaxed);
	if (pm_tracing())
		pm_trace_instant(PM_TRACE_EXIT, exit_names[stat] ? exit_names[stat] : "exit", v->id,
				 v->run->exit_reason, exit_detail(v, stat), 0);
}

/* Takes an exit: kvm_run is filled in; KVM_RUN returns `ret`. */
void pm_vcpu_guest_exit(struct pm_vcpu *v, int ret, int stat)
{
	v->exit_ret = ret;
	pm_vcpu_count_exit(v, stat);
	pm_coro_yield(v->coro);
}

static void guest_memory_fault_exit(struct pm_vcpu *v, gfn_t gfn, bool private_access, int err)
{
	struct kvm_run *run = v->run;

	run->exit_reason = KVM_EXIT_MEMORY_FAULT;
	run->memory_fault.flags = private_access ? KVM_MEMORY_EXIT_FLAG_PRIVATE : 0;
	run->memory_fault.gpa = gfn << PM_PAGE_SHIFT;
	run->memory_fault.size = PM_PAGE_SIZE;
	pm_vcpu_guest_exit(v, -err, PM_STAT_EXITS_MEMORY_FAULT);
}

/* A 2M translation (a 2M stage-2 leaf; only for models without an access
 * check, which is per 4K page): hva is gpa's page. */
static void guest_tlb_fill_huge(struct pm_vcpu *v, uint64_t gpa, uint8_t *hva, bool writable)
{
	struct pm_tlb_entry *e = &v->tlb_huge[(gpa >> 21) & (PM_TLB_HUGE_ENTRIES - 1)];

	e->tag = gpa >> 21;
	e->epoch = v->tlb_epoch;
	e->hva = hva - (gpa & ((2ULL << 20) - PM_PAGE_SIZE));
	e->writable = writable;
}

/* The TLB is tagged by gpa page, kind bits included (SNP's C-bit, TDX's
 * shared bit), so a translation of one kind never serves the other. */
static void guest_tlb_fill(struct pm_vcpu *v, uint64_t gpa, uint8_t *hva, bool writable)
{
	struct pm_tlb_entry *e = &v->tlb[(gpa >> PM_PAGE_SHIFT) & (PM_TLB_ENTRIES - 1)];

	e->tag = gpa >> PM_PAGE_SHIFT;
	e->epoch = v->tlb_epoch;
	e->hva = hva;
	e->writable = writable;
}

/* KVM_RUN fails with -err and no exit to describe (ENOMEM, EIO); the
 * access is retried when the vCPU runs again. */
static void guest_error_exit(struct pm_vcpu *v, int err)
{
	v->run->exit_reason = KVM_EXIT_UNKNOWN;
	pm_vcpu_guest_exit(v, -err, PM_STAT_EXITS_ERROR);
}

void pm_vcpu_guest_error_exit(struct pm_vcpu *v, int err)
{
	guest_error_exit(v, err);
}

/* A signal (the VMM's kick) interrupted the vCPU: KVM_EXIT_INTR, EINTR. */
void pm_vcpu_guest_intr_exit(struct pm_vcpu *v)
{
	v->event_pending = true;
	v->run->exit_reason = KVM_EXIT_INTR;
	pm_vcpu_guest_exit(v, -EINTR, PM_STAT_EXITS_INTR);
}

/* Back from an exit in the middle of an access. A C guest retries it; the
 * x86 engine's instruction is dropped if the VMM moved RIP meanwhile (KVM
 * re-executes from the RIP it finds: nothing of the instruction is done). */
static void guest_resumed_in_access(struct pm_vcpu *v)
{
	if (!v->entry.fn)
		pm_x86_guest_resumed_in_access(v);
}

/* What the vCPU knows of the access it faults on. */
struct guest_access_req {
	uint64_t gpa;
	gfn_t gfn;
	const bool *private_access;  /* the kind from the address, or NULL: from
	                              * the attribute (software-protected VMs) */
	bool write;
	unsigned int size;
	int max_level;
};

/* The fault path, outside guest mode as on an EPT violation. Returns the
 * page's host address (and in *writable whether a TLB fill may allow
 * writes), NULL for an MMIO access, or GUEST_FAULT_LOOKUP when the mapping
 * exists but must be looked up again. */
#define GUEST_FAULT_LOOKUP ((uint8_t *)1)
static uint8_t *guest_fault(struct pm_vcpu *v, const struct guest_access_req *a, bool *writable)
{
	struct pm_vm *vm = v->vm;

	for (;;) {
		/* Without kind bits in the address (software-protected VMs)
		 * an access is private exactly when the attribute says so:
		 * the fault path reads it after its snapshot, so a racing
		 * conversion is a retry, never an exit. The fault is made
		 * again after an exit: what it carries (the level limit
		 * above all) lives on the guest's stack, whichever thread
		 * runs the vCPU next. */
		struct pm_fault f = pm_fault_init(a->gfn, a->write ? PM_ACCESS_WRITE : PM_ACCESS_READ);
		uint64_t gen = v->tlb_seen;
		enum pm_fault_result r;

		f.size = a->size;
		f.max_level = a->max_level;
		f.kind_from_attr = !a->private_access;
		f.private_access = a->private_access && *a->private_access;
		pm_vcpu_exit_guest_mode(v);
		r = pm_mmu_fault(vm, &f);
		pm_vcpu_enter_guest_mode(v);
		switch (r) {
		case PM_FAULT_MMIO:
			return NULL;
		case PM_FAULT_EXIT:
			guest_memory_fault_exit(v, a->gfn, f.private_access, f.err);
			guest_resumed_in_access(v);
			continue;
		case PM_FAULT_ERROR:
			guest_error_exit(v, f.err);
			guest_resumed_in_access(v);
			continue;
		case PM_FAULT_RETRY:
			/* As KVM re-entering the guest: a kick ends KVM_RUN. */
			if (pm_vcpu_signal_pending()) {
				pm_vcpu_guest_intr_exit(v);
				guest_resumed_in_access(v);
			}
			continue;
		case PM_FAULT_MAPPED:
			break;
		default:
			PM_BUG_ON(1);
		}
		/* The address the fault found is still good unless a shootdown
		 * completed while we were out of guest mode; one that begins
		 * now waits for this access, like any access in flight. */
		if (!f.hva || v->tlb_seen != gen)
			return GUEST_FAULT_LOOKUP;
		*writable = f.writable && a->write;
		return f.hva;
	}
}

_Noreturn void pm_vcpu_guest_fatal(struct pm_vcpu *v, uint32_t type, uint64_t data)
{
	struct kvm_run *run = v->run;

	run->exit_reason = KVM_EXIT_SYSTEM_EVENT;
	memset(&run->system_event, 0, sizeof(run->system_event));
	run->system_event.type = type;
	run->system_event.ndata = 1;
	run->system_event.data[0] = data;
	v->fatal_event = type;
	v->fatal_data = data;
	v->finished = true;
	pm_vcpu_guest_exit(v, 0, PM_STAT_EXITS_SYSTEM_EVENT);
	for (;;)
		pm_coro_yield(v->coro);
}

/* The model's check of a private access on its way into the TLB (SNP: the
 * page must be validated; TDX: it must not be pending): true to use the
 * translation, false to translate again; a refusal ends the guest. */
static bool guest_access_check(struct pm_vcpu *v, uint64_t gpa, gfn_t gfn, const uint8_t *hva)
{
	uint32_t event = 0;

	switch (v->vm->model->guest_access(v, gpa, gfn, pm_hva_to_pfn(hva), &event)) {
	case PM_GUEST_ACCESS_OK:
		return true;
	case PM_GUEST_ACCESS_RETRY:
		return false;
	default:
		pm_vcpu_guest_fatal(v, event, gpa);
	}
}

/* Host address of the page containing gpa, or NULL for MMIO; `check`: run
 * the model's access check on private pages (not for instructions that only
 * translate, like PVALIDATE and TDG.MEM.PAGE.ACCEPT). */
static uint8_t *guest_page_slow(struct pm_vcpu *v, uint64_t gpa, unsigned int size, bool write,
				bool check, int max_level)
{
	const struct pm_model_ops *model = v->vm->model;
	bool private_access = false;
	struct guest_access_req a = {
		.gpa = gpa, .gfn = gpa >> PM_PAGE_SHIFT, .write = write, .size = size,
		.max_level = max_level, .private_access = model->gpa_decode ? &private_access : NULL,
	};

	if (model->gpa_decode)
		model->gpa_decode(v->vm, gpa, &a.gfn, &private_access);
	check = check && private_access && model->guest_access;
	for (;;) {
		int level = 0;
		uint8_t *hva = pm_mmu_translate_level(v->vm, a.gfn, write, a.private_access, &level);
		/* A read fill must not make the page look writable (the first
		 * write walks again to set DIRTY). */
		bool writable = write;

		if (!hva) {
			/* Hardware that answers this access without the host
			 * (a realm's RIPAS) may end the guest here. */
			if (check && model->guest_pre_fault)
				model->guest_pre_fault(v, gpa, a.gfn);
			hva = guest_fault(v, &a, &writable);
			if (hva == GUEST_FAULT_LOOKUP)
				continue;
		}
		if (hva && check && !guest_access_check(v, gpa, a.gfn, hva))
			continue;
		if (hva && level >= 1 && !model->guest_access)
			guest_tlb_fill_huge(v, gpa, hva, writable);
		if (hva)
			guest_tlb_fill(v, gpa, hva, writable);
		return hva;
	}
}

uint8_t *pm_vcpu_guest_page(struct pm_vcpu *v, uint64_t gpa, bool write, int max_level)
{
	uint8_t *hva = guest_page_slow(v, gpa, 0, write, false, max_level);

	/* Not cached: the next access of the page runs the model's check. */
	pm_vcpu_tlb_forget(v, gpa);
	return hva;
}

void pm_vcpu_tlb_forget(struct pm_vcpu *v, uint64_t gpa)
{
	struct pm_tlb_entry *e = pm_vcpu_tlb_hit(v, gpa), *h = pm_vcpu_tlb_huge_hit(v, gpa);

	if (e)
		e->epoch = 0;
	if (h)
		h->epoch = 0;
	/* The engine's translations of the page go too (it keeps no index
	 * by page: all of them). */
	pm_x86_flush(v->x86, PM_X86_FLUSH_TLB);
}

static inline uint8_t *guest_page(struct pm_vcpu *v, uint64_t gpa, unsigned int size, bool write)
{
	const struct pm_tlb_entry *e;

	/* A pending shootdown: flush and acknowledge before using the TLB. */
	if (pm_unlikely(atomic_load_explicit(v->tlb_gen, memory_order_acquire) != v->tlb_seen))
		pm_vcpu_tlb_check(v);
	e = pm_vcpu_tlb_hit(v, gpa);
	if (pm_likely(e && (e->writable || !write)))
		return e->hva;
	e = pm_vcpu_tlb_huge_hit(v, gpa);
	if (e && (e->writable || !write)) {
		uint8_t *hva = e->hva + (gpa & ((2ULL << 20) - PM_PAGE_SIZE));

		/* The page's own entry too, from the same translation (a
		 * shootdown ends both): the next access takes one probe. */
		guest_tlb_fill(v, gpa, hva, e->writable);
		return hva;
	}
	return guest_page_slow(v, gpa, size, write, true, PM_FAULT_MAX_LEVEL);
}

uint8_t *pm_vcpu_guest_access_page(struct pm_vcpu *v, uint64_t gpa, unsigned int size, bool write)
{
	return guest_page(v, gpa, size, write);
}

static _Noreturn void guest_end(struct pm_vcpu *v, uint64_t cmd, const char *msg);

/* The hypervisor answers an access with a data abort (pKVM: MMIO outside
 * what the guest granted). An unhandled synchronous exception ends the
 * guest; a C guest that catches aborts finds it recorded instead. */
static void guest_data_abort(struct pm_vcpu *v, uint64_t gpa, bool write)
{
	char msg[sizeof(v->ucall.msg)];

	if (v->entry.fn && v->catch_aborts) {
		v->aborts++;
		v->abort_far = gpa;
		return;
	}
	snprintf(msg, sizeof(msg), "data abort: MMIO %s at 0x%llx refused by the hypervisor",
		 write ? "write" : "read", (unsigned long long)gpa);
	guest_end(v, PM_UCALL_ABORT, msg);
}

/* An access to a gpa no memslot maps: KVM_EXIT_MMIO in chunks of 8 bytes,
 * if the model lets it exit. */
void pm_vcpu_guest_mmio(struct pm_vcpu *v, uint64_t gpa, uint8_t *buf, size_t len, bool write)
{
	struct kvm_run *run = v->run;

	if (pm_unlikely(v->vm->model->mmio_allowed != NULL) &&
	    !v->vm->model->mmio_allowed(v, gpa, (unsigned int)len)) {
		guest_data_abort(v, gpa, write);
		if (!write)
			memset(buf, 0, len);
		return;
	}
	while (len) {
		size_t n = PM_MIN(len, sizeof(run->mmio.data));
		/* The VMM's answer lands here, whatever it left in run->mmio.len
		 * (Linux copies its own fragment length): n bytes reach buf. */
		uint8_t data[sizeof(run->mmio.data)];

		run->exit_reason = KVM_EXIT_MMIO;
		run->mmio.phys_addr = gpa;
		run->mmio.len = (uint32_t)n;
		run->mmio.is_write = write;
		memset(run->mmio.data, 0, sizeof(run->mmio.data));
		if (write) {
			memcpy(run->mmio.data, buf, n);
		} else {
			v->pending = PM_PENDING_MMIO_READ;
			v->mmio_dst = data;
		}
		pm_vcpu_guest_exit(v, 0, PM_STAT_EXITS_MMIO);
		if (!write)
			memcpy(buf, data, n);
		gpa += n;
		buf += n;
		len -= n;
	}
}

/* Copies between buf and guest memory (src == NULL with write: memset c). */
static void guest_access(struct pm_vcpu *v, uint64_t gpa, uint8_t *buf, const uint8_t *src,
			 int c, size_t len, bool write)
{
	while (len) {
		size_t off = gpa & (PM_PAGE_SIZE - 1);
		size_t n = PM_MIN(len, PM_PAGE_SIZE - off);
		uint8_t *page = guest_page(v, gpa, (unsigned int)n, write);
		uint8_t tmp[64];

		if (page && !write)
			memcpy(buf, page + off, n);
		else if (page && src)
			memcpy(page + off, src, n);
		else if (page)
			memset(page + off, c, n);
		else if (!write)
			pm_vcpu_guest_mmio(v, gpa, buf, n, false);
		else if (src)
			pm_vcpu_guest_mmio(v, gpa, (uint8_t *)src, n, true);
		else
			for (size_t done = 0; done < n; done += sizeof(tmp)) {
				memset(tmp, c, sizeof(tmp));
				pm_vcpu_guest_mmio(v, gpa + done, tmp, PM_MIN(sizeof(tmp), n - done), true);
			}
		gpa += n;
		len -= n;
		if (buf)
			buf += n;
		if (src)
			src += n;
	}
}

void pm_guest_read(struct pm_guest *g, uint64_t gpa, void *buf, size_t len)
{
	guest_access(to_vcpu(g), gpa, buf, NULL, 0, len, false);
}

void pm_guest_write(struct pm_guest *g, uint64_t gpa, const void *buf, size_t len)
{
	guest_access(to_vcpu(g), gpa, NULL, buf, 0, len, true);
}

void pm_guest_memset(struct pm_guest *g, uint64_t gpa, int c, size_t len)
{
	guest_access(to_vcpu(g), gpa, NULL, NULL, c, len, true);
}

/* Every case but a TLB hit of an aligned read: out of line, so that the
 * hit needs no stack frame. */
static __attribute__((noinline)) uint64_t guest_read64_slow(struct pm_vcpu *v, uint64_t gpa)
{
	uint64_t val;

	if (pm_likely(PM_ALIGNED(gpa, 8))) {
		uint8_t *page = guest_page(v, gpa, 8, false);

		if (page)
			return atomic_load_explicit((_Atomic uint64_t *)(page + (gpa & (PM_PAGE_SIZE - 1))),
						    memory_order_acquire);
	}
	guest_access(v, gpa, (uint8_t *)&val, NULL, 0, sizeof(val), false);
	return val;
}

uint64_t pm_guest_read64(struct pm_guest *g, uint64_t gpa)
{
	struct pm_vcpu *v = to_vcpu(g);

	/* The hit: guest_page's first probe, with no shootdown pending. */
	if (pm_likely(PM_ALIGNED(gpa, 8) &&
		      atomic_load_explicit(v->tlb_gen, memory_order_acquire) == v->tlb_seen)) {
		const struct pm_tlb_entry *e = pm_vcpu_tlb_hit(v, gpa);

		/* Atomic, with x86's (TSO) ordering, which guest code assumes:
		 * loads acquire, stores release. Free on x86; it also gives a
		 * device handing data to the guest its happens-before. */
		if (pm_likely(e != NULL))
			return atomic_load_explicit((_Atomic uint64_t *)(e->hva + (gpa & (PM_PAGE_SIZE - 1))),
						    memory_order_acquire);
	}
	return guest_read64_slow(v, gpa);
}

static __attribute__((noinline)) void guest_write64_slow(struct pm_vcpu *v, uint64_t gpa, uint64_t val)
{
	if (pm_likely(PM_ALIGNED(gpa, 8))) {
		uint8_t *page = guest_page(v, gpa, 8, true);

		if (page) {
			atomic_store_explicit((_Atomic uint64_t *)(page + (gpa & (PM_PAGE_SIZE - 1))), val,
					      memory_order_release);
			return;
		}
	}
	guest_access(v, gpa, NULL, (const uint8_t *)&val, 0, sizeof(val), true);
}

void pm_guest_write64(struct pm_guest *g, uint64_t gpa, uint64_t val)
{
	struct pm_vcpu *v = to_vcpu(g);

	/* The hit, as pm_guest_read64's, of a writable translation. */
	if (pm_likely(PM_ALIGNED(gpa, 8) &&
		      atomic_load_explicit(v->tlb_gen, memory_order_acquire) == v->tlb_seen)) {
		const struct pm_tlb_entry *e = pm_vcpu_tlb_hit(v, gpa);

		if (pm_likely(e && e->writable)) {
			atomic_store_explicit((_Atomic uint64_t *)(e->hva + (gpa & (PM_PAGE_SIZE - 1))), val,
					      memory_order_release);
			return;
		}
	}
	guest_write64_slow(v, gpa, val);
}

bool pm_guest_cmpxchg64(struct pm_guest *g, uint64_t gpa, uint64_t *expected, uint64_t desired)
{
	struct pm_vcpu *v = to_vcpu(g);
	uint8_t *page;

	PM_GUEST_ASSERT(g, PM_ALIGNED(gpa, 8));
	page = guest_page(v, gpa, 8, true);
	PM_GUEST_ASSERT(g, page != NULL);       /* no atomics on MMIO */
	return atomic_compare_exchange_strong((_Atomic uint64_t *)(page + (gpa & (PM_PAGE_SIZE - 1))),
					      expected, desired);
}

/* ---- hypercalls and ucalls ---- */

long pm_vcpu_exit_hypercall(struct pm_vcpu *v, uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2)
{
	struct kvm_run *run = v->run;

	run->exit_reason = KVM_EXIT_HYPERCALL;
	memset(&run->hypercall, 0, sizeof(run->hypercall));
	run->hypercall.nr = nr;
	run->hypercall.args[0] = a0;
	run->hypercall.args[1] = a1;
	run->hypercall.args[2] = a2;
	run->hypercall.flags = KVM_EXIT_HYPERCALL_LONG_MODE;
	v->pending = PM_PENDING_HYPERCALL;
	pm_vcpu_guest_exit(v, 0, PM_STAT_EXITS_HYPERCALL);
	return v->hypercall_ret;
}

long pm_vcpu_map_gpa_range_exit(struct pm_vcpu *v, uint64_t gpa, uint64_t npages, uint64_t attrs)
{
	if (!(atomic_load(&v->vm->hypercall_exit_enabled) & (1ULL << KVM_HC_MAP_GPA_RANGE)))
		return -KVM_ENOSYS;
	if (!PM_ALIGNED(gpa, PM_PAGE_SIZE) || !npages ||
	    (gpa >> PM_PAGE_SHIFT) + npages <= (gpa >> PM_PAGE_SHIFT))
		return -KVM_EINVAL;
	return pm_vcpu_exit_hypercall(v, KVM_HC_MAP_GPA_RANGE, gpa, npages, attrs);
}

long pm_guest_hypercall(struct pm_guest *g, uint64_t nr, uint64_t a0, uint64_t a1,
			uint64_t a2, uint64_t a3)
{
	if (nr == KVM_HC_MAP_GPA_RANGE)
		return pm_vcpu_map_gpa_range_exit(to_vcpu(g), a0, a1, a2);
	return -KVM_ENOSYS;
}

long pm_guest_model_call(struct pm_guest *g, uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2)
{
	struct pm_vcpu *v = to_vcpu(g);

	if (!v->vm->model->guest_call)
		return -KVM_ENOSYS;
	return v->vm->model->guest_call(v, nr, a0, a1, a2);
}

void pm_guest_require_vm_type(struct pm_guest *g, unsigned long type, const char *call,
			      const char *model)
{
	struct pm_vcpu *v = to_vcpu(g);
	char what[128];

	if (v->vm->type == type)
		return;
	snprintf(what, sizeof(what), "%s: not %s VM (VM type %lu)", call, model, v->vm->type);
	pm_guest_abort(g, __FILE__, __LINE__, what);
}

static void guest_ucall(struct pm_vcpu *v, uint64_t cmd, uint64_t arg, const char *msg)
{
	/* Every field is written; the message as an empty string when there
	 * is none (clearing its 256 bytes each SYNC would cost more than the
	 * rest of the exit). */
	v->ucall.cmd = cmd;
	v->ucall.args[0] = arg;
	memset(&v->ucall.args[1], 0, sizeof(v->ucall.args) - sizeof(v->ucall.args[0]));
	if (msg)
		snprintf(v->ucall.msg, sizeof(v->ucall.msg), "%s", msg);
	else
		v->ucall.msg[0] = '\0';
	v->run->exit_reason = PM_EXIT_UCALL;
	v->exit_ret = 0;
	pm_vcpu_count_exit(v, PM_STAT_EXITS_UCALL);
}

void pm_guest_sync(struct pm_guest *g, uint64_t arg)
{
	struct pm_vcpu *v = to_vcpu(g);

	guest_ucall(v, PM_UCALL_SYNC, arg, NULL);
	pm_coro_yield(v->coro);
}

/* Ends the guest: it is never resumed again (destroying the vCPU cancels
 * the suspended coroutine). */
static _Noreturn void guest_end(struct pm_vcpu *v, uint64_t cmd, const char *msg)
{
	guest_ucall(v, cmd, 0, msg);
	v->finished = true;
	for (;;)
		pm_coro_yield(v->coro);
}

void pm_guest_done(struct pm_guest *g)
{
	guest_end(to_vcpu(g), PM_UCALL_DONE, NULL);
}

void pm_guest_abort(struct pm_guest *g, const char *file, int line, const char *what)
{
	char msg[sizeof(((struct pm_ucall *)0)->msg)];

	snprintf(msg, sizeof(msg), "%s:%d: %s", file, line, what);
	guest_end(to_vcpu(g), PM_UCALL_ABORT, msg);
}

void pm_guest_catch_aborts(struct pm_guest *g, bool on)
{
	to_vcpu(g)->catch_aborts = on;
}

uint64_t pm_guest_take_aborts(struct pm_guest *g, uint64_t *far)
{
	struct pm_vcpu *v = to_vcpu(g);
	uint64_t n = v->aborts;

	if (far)
		*far = v->abort_far;
	v->aborts = 0;
	return n;
}

unsigned int pm_guest_vcpu_id(struct pm_guest *g)
{
	return to_vcpu(g)->id;
}

/* The coroutine's body: the guest code, then DONE. */
void pm_guest_main(void *arg)
{
	struct pm_vcpu *v = arg;

	v->entry.fn((struct pm_guest *)v, v->entry.arg);
	guest_ucall(v, PM_UCALL_DONE, 0, NULL);
}

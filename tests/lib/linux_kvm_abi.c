/* Separate file: <linux/kvm.h> and <privmem/kvm.h> define the same names, so they cannot share a translation unit. */
/*
 * The KVM ABI as the system's Linux uAPI headers (Debian 12: Linux 6.1,
 * linux-libc-dev) define it, for tests/test_kvm_abi.c to compare against
 * include/privmem/kvm.h. Only what both headers define is listed; the test
 * builds the same table (same names, same order) from privmem's header.
 *
 * Plain data, no main(): every file in tests/lib/ is linked into every test.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/kvm.h>
#include <linux/kvm_para.h> /* KVM_HC_*, KVM_E*, KVM_MAP_GPA_RANGE_* (not pulled in by linux/kvm.h) */

struct pm_abi_item {
	const char *name;
	uint64_t value;
};

extern const struct pm_abi_item pm_linux_abi[];
extern const size_t pm_linux_abi_len;

#define C(x)       { #x, (uint64_t)(x) }
#define SZ(T)      { "sizeof(" #T ")", (uint64_t)sizeof(T) }
#define OFF(T, m)  { "offsetof(" #T ", " #m ")", (uint64_t)offsetof(T, m) }
#define MSZ(T, m)  { "sizeof(((" #T " *)0)->" #m ")", (uint64_t)sizeof(((T *)0)->m) }
#define FLD(T, m)  OFF(T, m), MSZ(T, m)

/* Keep in sync with pm_privmem_abi[] in tests/test_kvm_abi.c (same names, same order). */
const struct pm_abi_item pm_linux_abi[] = {
	C(KVM_API_VERSION),
	C(KVMIO),

	/* ioctl request numbers */
	C(KVM_GET_API_VERSION),
	C(KVM_CREATE_VM),
	C(KVM_CHECK_EXTENSION),
	C(KVM_GET_VCPU_MMAP_SIZE),
	C(KVM_CREATE_VCPU),
	C(KVM_SET_USER_MEMORY_REGION),
	C(KVM_ENABLE_CAP),
	C(KVM_MEMORY_ENCRYPT_OP),
	C(KVM_RUN),

	/* capabilities */
	C(KVM_CAP_USER_MEMORY),
	C(KVM_CAP_NR_VCPUS),
	C(KVM_CAP_NR_MEMSLOTS),
	C(KVM_CAP_SYNC_MMU),
	C(KVM_CAP_MAX_VCPUS),
	C(KVM_CAP_MAX_VCPU_ID),
	C(KVM_CAP_IMMEDIATE_EXIT),
	C(KVM_CAP_EXIT_HYPERCALL),

	/* memslot flags */
	C(KVM_MEM_LOG_DIRTY_PAGES),
	C(KVM_MEM_READONLY),

	/* hypercalls */
	C(KVM_HC_MAP_GPA_RANGE),
	C(KVM_ENOSYS),
	C(KVM_EFAULT),
	C(KVM_EINVAL),
	C(KVM_E2BIG),
	C(KVM_EPERM),
	C(KVM_EOPNOTSUPP),
	C(KVM_MAP_GPA_RANGE_PAGE_SZ_4K),
	C(KVM_MAP_GPA_RANGE_PAGE_SZ_2M),
	C(KVM_MAP_GPA_RANGE_PAGE_SZ_1G),
	C(KVM_MAP_GPA_RANGE_ENC_STAT(1)),
	C(KVM_MAP_GPA_RANGE_ENC_STAT(3)),
	C(KVM_MAP_GPA_RANGE_ENCRYPTED),
	C(KVM_MAP_GPA_RANGE_DECRYPTED),

	/* exit reasons */
	C(KVM_EXIT_UNKNOWN),
	C(KVM_EXIT_EXCEPTION),
	C(KVM_EXIT_IO),
	C(KVM_EXIT_HYPERCALL),
	C(KVM_EXIT_DEBUG),
	C(KVM_EXIT_HLT),
	C(KVM_EXIT_MMIO),
	C(KVM_EXIT_IRQ_WINDOW_OPEN),
	C(KVM_EXIT_SHUTDOWN),
	C(KVM_EXIT_FAIL_ENTRY),
	C(KVM_EXIT_INTR),
	C(KVM_EXIT_SET_TPR),
	C(KVM_EXIT_TPR_ACCESS),
	C(KVM_EXIT_NMI),
	C(KVM_EXIT_INTERNAL_ERROR),
	C(KVM_EXIT_SYSTEM_EVENT),
	C(KVM_EXIT_X86_RDMSR),
	C(KVM_EXIT_X86_WRMSR),
	C(KVM_EXIT_NOTIFY),
	C(KVM_EXIT_IO_IN),
	C(KVM_EXIT_IO_OUT),
	C(KVM_SYSTEM_EVENT_SHUTDOWN),
	C(KVM_SYSTEM_EVENT_RESET),
	C(KVM_SYSTEM_EVENT_CRASH),
	C(KVM_SYSTEM_EVENT_WAKEUP),
	C(KVM_SYSTEM_EVENT_SUSPEND),
	C(KVM_SYSTEM_EVENT_SEV_TERM),
	C(KVM_INTERNAL_ERROR_EMULATION),
	C(KVM_INTERNAL_ERROR_SIMUL_EX),
	C(KVM_INTERNAL_ERROR_DELIVERY_EV),
	C(KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON),
	C(SYNC_REGS_SIZE_BYTES),

	/* struct kvm_userspace_memory_region */
	SZ(struct kvm_userspace_memory_region),
	FLD(struct kvm_userspace_memory_region, slot),
	FLD(struct kvm_userspace_memory_region, flags),
	FLD(struct kvm_userspace_memory_region, guest_phys_addr),
	FLD(struct kvm_userspace_memory_region, memory_size),
	FLD(struct kvm_userspace_memory_region, userspace_addr),

	/* struct kvm_enable_cap */
	SZ(struct kvm_enable_cap),
	FLD(struct kvm_enable_cap, cap),
	FLD(struct kvm_enable_cap, flags),
	FLD(struct kvm_enable_cap, args),
	FLD(struct kvm_enable_cap, pad),

	/* struct kvm_debug_exit_arch (x86) */
	SZ(struct kvm_debug_exit_arch),
	FLD(struct kvm_debug_exit_arch, exception),
	FLD(struct kvm_debug_exit_arch, pad),
	FLD(struct kvm_debug_exit_arch, pc),
	FLD(struct kvm_debug_exit_arch, dr6),
	FLD(struct kvm_debug_exit_arch, dr7),

	/* struct kvm_sev_cmd (6.1 has no explicit pad0; the layout is the same) */
	SZ(struct kvm_sev_cmd),
	FLD(struct kvm_sev_cmd, id),
	FLD(struct kvm_sev_cmd, data),
	FLD(struct kvm_sev_cmd, error),
	FLD(struct kvm_sev_cmd, sev_fd),

	/* struct kvm_run */
	SZ(struct kvm_run),
	FLD(struct kvm_run, request_interrupt_window),
	FLD(struct kvm_run, immediate_exit),
	FLD(struct kvm_run, padding1),
	FLD(struct kvm_run, exit_reason),
	FLD(struct kvm_run, ready_for_interrupt_injection),
	FLD(struct kvm_run, if_flag),
	FLD(struct kvm_run, flags),
	FLD(struct kvm_run, cr8),
	FLD(struct kvm_run, apic_base),
	FLD(struct kvm_run, hw),
	FLD(struct kvm_run, hw.hardware_exit_reason),
	FLD(struct kvm_run, fail_entry),
	FLD(struct kvm_run, fail_entry.hardware_entry_failure_reason),
	FLD(struct kvm_run, fail_entry.cpu),
	FLD(struct kvm_run, ex),
	FLD(struct kvm_run, ex.exception),
	FLD(struct kvm_run, ex.error_code),
	FLD(struct kvm_run, io),
	FLD(struct kvm_run, io.direction),
	FLD(struct kvm_run, io.size),
	FLD(struct kvm_run, io.port),
	FLD(struct kvm_run, io.count),
	FLD(struct kvm_run, io.data_offset),
	FLD(struct kvm_run, debug),
	FLD(struct kvm_run, debug.arch),
	FLD(struct kvm_run, mmio),
	FLD(struct kvm_run, mmio.phys_addr),
	FLD(struct kvm_run, mmio.data),
	FLD(struct kvm_run, mmio.len),
	FLD(struct kvm_run, mmio.is_write),
	FLD(struct kvm_run, hypercall),
	FLD(struct kvm_run, hypercall.nr),
	FLD(struct kvm_run, hypercall.args),
	FLD(struct kvm_run, hypercall.ret),
	FLD(struct kvm_run, hypercall.longmode),
	FLD(struct kvm_run, tpr_access),
	FLD(struct kvm_run, tpr_access.rip),
	FLD(struct kvm_run, tpr_access.is_write),
	FLD(struct kvm_run, tpr_access.pad),
	FLD(struct kvm_run, internal),
	FLD(struct kvm_run, internal.suberror),
	FLD(struct kvm_run, internal.ndata),
	FLD(struct kvm_run, internal.data),
	FLD(struct kvm_run, system_event),
	FLD(struct kvm_run, system_event.type),
	FLD(struct kvm_run, system_event.ndata),
	FLD(struct kvm_run, system_event.flags),
	FLD(struct kvm_run, system_event.data),
	FLD(struct kvm_run, msr),
	FLD(struct kvm_run, msr.error),
	FLD(struct kvm_run, msr.pad),
	FLD(struct kvm_run, msr.reason),
	FLD(struct kvm_run, msr.index),
	FLD(struct kvm_run, msr.data),
	FLD(struct kvm_run, notify),
	FLD(struct kvm_run, notify.flags),
	FLD(struct kvm_run, padding),
	FLD(struct kvm_run, kvm_valid_regs),
	FLD(struct kvm_run, kvm_dirty_regs),
	FLD(struct kvm_run, s),
	FLD(struct kvm_run, s.padding),
};

const size_t pm_linux_abi_len = sizeof(pm_linux_abi) / sizeof(pm_linux_abi[0]);

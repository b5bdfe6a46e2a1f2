/* SPDX-License-Identifier: MIT */
/*
 * privmem/kvm.h: the KVM uAPI that privmem serves.
 *
 * Every struct and constant here has the name, layout and value of current
 * Linux (include/uapi/linux/kvm.h and arch/x86/include/uapi/asm/kvm.h), so VMM
 * code written for Linux compiles against it unchanged. The header is
 * self-contained: it does not include <linux/kvm.h>, whose Debian 12 copy
 * (Linux 6.1) lacks guest_memfd, memory attributes and memory-fault exits.
 * Only what privmem implements is declared (the x86 register state is what
 * the instruction engine, src/vcpu/x86/, converts to and from).
 *
 * privmem's own extensions (ioctls, exit reasons, the pKVM VM type) are in
 * privmem/privmem.h and use numbers outside KVM's ranges.
 */
#ifndef PRIVMEM_KVM_H
#define PRIVMEM_KVM_H

#include <errno.h>
#include <linux/types.h>   /* __u8 .. __u64, as the kernel's uAPI uses them */
#include <sys/ioctl.h>

#define KVM_API_VERSION 12
#define KVMIO 0xAE

/* ---- system ioctls ---- */
#define KVM_GET_API_VERSION       _IO(KVMIO, 0x00)
#define KVM_CREATE_VM             _IO(KVMIO, 0x01)
#define KVM_CHECK_EXTENSION       _IO(KVMIO, 0x03)
#define KVM_GET_VCPU_MMAP_SIZE    _IO(KVMIO, 0x04)

/* ---- VM ioctls ---- */
#define KVM_CREATE_VCPU           _IO(KVMIO, 0x41)
#define KVM_SET_USER_MEMORY_REGION _IOW(KVMIO, 0x46, struct kvm_userspace_memory_region)
#define KVM_SET_USER_MEMORY_REGION2 _IOW(KVMIO, 0x49, struct kvm_userspace_memory_region2)
#define KVM_ENABLE_CAP            _IOW(KVMIO, 0xa3, struct kvm_enable_cap)
#define KVM_MEMORY_ENCRYPT_OP     _IOWR(KVMIO, 0xba, unsigned long)
#define KVM_SET_MEMORY_ATTRIBUTES _IOW(KVMIO, 0xd2, struct kvm_memory_attributes)
#define KVM_CREATE_GUEST_MEMFD    _IOWR(KVMIO, 0xd4, struct kvm_create_guest_memfd)

/* ---- guest_memfd ioctls ---- */
/* In-place conversion (series "guest_memfd: In-place conversion support",
 * v8, 13/46): issued on a guest_memfd, not on the VM (ENOTTY there). Same
 * minor number as KVM_SET_MEMORY_ATTRIBUTES; the direction and the size
 * (128 bytes) keep the two numbers apart. Available when
 * KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES is not 0. */
#define KVM_SET_MEMORY_ATTRIBUTES2 _IOWR(KVMIO, 0xd2, struct kvm_memory_attributes2)

/* ---- vCPU ioctls ---- */
#define KVM_RUN                   _IO(KVMIO, 0x80)
#define KVM_PRE_FAULT_MEMORY      _IOWR(KVMIO, 0xd5, struct kvm_pre_fault_memory)

/* ---- capabilities (KVM_CHECK_EXTENSION) ---- */
#define KVM_CAP_USER_MEMORY          3
#define KVM_CAP_NR_VCPUS             9
#define KVM_CAP_NR_MEMSLOTS          10
#define KVM_CAP_SYNC_MMU             16
#define KVM_CAP_MAX_VCPUS            66
#define KVM_CAP_MAX_VCPU_ID          128
#define KVM_CAP_IMMEDIATE_EXIT       136
#define KVM_CAP_EXIT_HYPERCALL       201
#define KVM_CAP_USER_MEMORY2         231
#define KVM_CAP_MEMORY_FAULT_INFO    232
#define KVM_CAP_MEMORY_ATTRIBUTES    233
#define KVM_CAP_GUEST_MEMFD          234
#define KVM_CAP_VM_TYPES             235
#define KVM_CAP_PRE_FAULT_MEMORY     236
#define KVM_CAP_GUEST_MEMFD_FLAGS    244
/* The attributes KVM_SET_MEMORY_ATTRIBUTES2 takes (v8 of the in-place
 * conversion series, 17/46; the number follows the tree it is applied to). */
#define KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES 250

/* ---- VM types (x86) ---- */
#define KVM_X86_DEFAULT_VM       0
#define KVM_X86_SW_PROTECTED_VM  1
#define KVM_X86_SEV_VM           2
#define KVM_X86_SEV_ES_VM        3
#define KVM_X86_SNP_VM           4
#define KVM_X86_TDX_VM           5

/* ---- memslots ---- */
#define KVM_MEM_LOG_DIRTY_PAGES  (1UL << 0)
#define KVM_MEM_READONLY         (1UL << 1)
#define KVM_MEM_GUEST_MEMFD      (1UL << 2)

struct kvm_userspace_memory_region {
	__u32 slot;
	__u32 flags;
	__u64 guest_phys_addr;
	__u64 memory_size;    /* bytes */
	__u64 userspace_addr; /* start of the userspace allocated memory */
};

struct kvm_userspace_memory_region2 {
	__u32 slot;
	__u32 flags;
	__u64 guest_phys_addr;
	__u64 memory_size;
	__u64 userspace_addr;
	__u64 guest_memfd_offset;
	__u32 guest_memfd;
	__u32 pad1;
	__u64 pad2[14];
};

/* ---- memory attributes ---- */
#define KVM_MEMORY_ATTRIBUTE_PRIVATE (1ULL << 3)

struct kvm_memory_attributes {
	__u64 address;
	__u64 size;
	__u64 attributes;
	__u64 flags;
};

/* KVM_SET_MEMORY_ATTRIBUTES2 (v8 13/46, 14/46): the first four fields as
 * struct kvm_memory_attributes; `offset` is a byte offset in the
 * guest_memfd; flags and reserved must be 0. error_offset is written back
 * only when the conversion fails after the checks (EAGAIN: the first page
 * still referenced by the host; ENOMEM: the start). */
struct kvm_memory_attributes2 {
	/* in */
	union {
		__u64 address;
		__u64 offset;
	};
	__u64 size;
	__u64 attributes;
	__u64 flags;
	/* out */
	__u64 error_offset;
	__u64 reserved[11];
};

#ifndef __cplusplus
#define PM_KVM_ASSERT_LAYOUT(c, msg) _Static_assert(c, msg)
#else
#define PM_KVM_ASSERT_LAYOUT(c, msg) static_assert(c, msg)
#endif
PM_KVM_ASSERT_LAYOUT(sizeof(struct kvm_memory_attributes2) == 128, "kvm_memory_attributes2 is 128 bytes");
PM_KVM_ASSERT_LAYOUT(__builtin_offsetof(struct kvm_memory_attributes2, offset) ==
		     __builtin_offsetof(struct kvm_memory_attributes, address), "offset @0");
PM_KVM_ASSERT_LAYOUT(__builtin_offsetof(struct kvm_memory_attributes2, size) ==
		     __builtin_offsetof(struct kvm_memory_attributes, size), "size @8");
PM_KVM_ASSERT_LAYOUT(__builtin_offsetof(struct kvm_memory_attributes2, attributes) ==
		     __builtin_offsetof(struct kvm_memory_attributes, attributes), "attributes @16");
PM_KVM_ASSERT_LAYOUT(__builtin_offsetof(struct kvm_memory_attributes2, flags) ==
		     __builtin_offsetof(struct kvm_memory_attributes, flags), "flags @24");
PM_KVM_ASSERT_LAYOUT(__builtin_offsetof(struct kvm_memory_attributes2, error_offset) == 32,
		     "error_offset @32");
PM_KVM_ASSERT_LAYOUT(__builtin_offsetof(struct kvm_memory_attributes2, reserved) == 40, "reserved @40");

/* ---- guest_memfd ---- */
#define GUEST_MEMFD_FLAG_MMAP        (1ULL << 0)
#define GUEST_MEMFD_FLAG_INIT_SHARED (1ULL << 1)
/* The posted series "guest_memfd: Direct Map Removal" (not merged): the
 * file's folios leave the kernel's direct map. */
#define GUEST_MEMFD_FLAG_NO_DIRECT_MAP (1ULL << 2)

struct kvm_create_guest_memfd {
	__u64 size;
	__u64 flags;
	__u64 reserved[6];
};

/* ---- KVM_PRE_FAULT_MEMORY ---- */
struct kvm_pre_fault_memory {
	__u64 gpa;
	__u64 size;
	__u64 flags;
	__u64 padding[5];
};

/* ---- KVM_ENABLE_CAP ---- */
struct kvm_enable_cap {
	__u32 cap;
	__u32 flags;
	__u64 args[4];
	__u8  pad[64];
};

/* ---- hypercalls (include/uapi/linux/kvm_para.h) ---- */
#define KVM_HC_MAP_GPA_RANGE 12
#define KVM_ENOSYS   1000
#define KVM_EFAULT   EFAULT
#define KVM_EINVAL   EINVAL
#define KVM_E2BIG    E2BIG
#define KVM_EPERM    EPERM
#define KVM_EOPNOTSUPP 95

/* run->hypercall.flags */
#define KVM_EXIT_HYPERCALL_LONG_MODE (1ULL << 0)

/* KVM_HC_MAP_GPA_RANGE a2 (attributes) */
#define KVM_MAP_GPA_RANGE_PAGE_SZ_4K  0
#define KVM_MAP_GPA_RANGE_PAGE_SZ_2M  (1 << 0)
#define KVM_MAP_GPA_RANGE_PAGE_SZ_1G  (1 << 1)
#define KVM_MAP_GPA_RANGE_ENC_STAT(n) ((n) << 4)
#define KVM_MAP_GPA_RANGE_ENCRYPTED   KVM_MAP_GPA_RANGE_ENC_STAT(1)
#define KVM_MAP_GPA_RANGE_DECRYPTED   KVM_MAP_GPA_RANGE_ENC_STAT(0)

/* ---- exit reasons ---- */
#define KVM_EXIT_UNKNOWN          0
#define KVM_EXIT_EXCEPTION        1
#define KVM_EXIT_IO               2
#define KVM_EXIT_HYPERCALL        3
#define KVM_EXIT_DEBUG            4
#define KVM_EXIT_HLT              5
#define KVM_EXIT_MMIO             6
#define KVM_EXIT_IRQ_WINDOW_OPEN  7
#define KVM_EXIT_SHUTDOWN         8
#define KVM_EXIT_FAIL_ENTRY       9
#define KVM_EXIT_INTR             10
#define KVM_EXIT_SET_TPR          11
#define KVM_EXIT_TPR_ACCESS       12
#define KVM_EXIT_NMI              16
#define KVM_EXIT_INTERNAL_ERROR   17
#define KVM_EXIT_SYSTEM_EVENT     24
#define KVM_EXIT_X86_RDMSR        29
#define KVM_EXIT_X86_WRMSR        30
#define KVM_EXIT_NOTIFY           37
#define KVM_EXIT_MEMORY_FAULT     39
#define KVM_EXIT_TDX              40

/* KVM_EXIT_MEMORY_FAULT flags */
#define KVM_MEMORY_EXIT_FLAG_PRIVATE (1ULL << 3)

/* KVM_EXIT_SYSTEM_EVENT types */
#define KVM_SYSTEM_EVENT_SHUTDOWN     1
#define KVM_SYSTEM_EVENT_RESET        2
#define KVM_SYSTEM_EVENT_CRASH        3
#define KVM_SYSTEM_EVENT_WAKEUP       4
#define KVM_SYSTEM_EVENT_SUSPEND      5
#define KVM_SYSTEM_EVENT_SEV_TERM     6
#define KVM_SYSTEM_EVENT_TDX_FATAL    7

/* KVM_EXIT_INTERNAL_ERROR suberrors */
#define KVM_INTERNAL_ERROR_EMULATION  1
#define KVM_INTERNAL_ERROR_SIMUL_EX   2
#define KVM_INTERNAL_ERROR_DELIVERY_EV 3
#define KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON 4

/* x86 struct kvm_debug_exit_arch */
struct kvm_debug_exit_arch {
	__u32 exception;
	__u32 pad;
	__u64 pc;
	__u64 dr6;
	__u64 dr7;
};

#define KVM_EXIT_IO_IN  0
#define KVM_EXIT_IO_OUT 1

/* struct kvm_run: the vCPU's shared page (mmap of the vCPU handle, offset 0). */
struct kvm_run {
	/* in */
	__u8 request_interrupt_window;
	__u8 immediate_exit;
	__u8 padding1[6];

	/* out */
	__u32 exit_reason;
	__u8 ready_for_interrupt_injection;
	__u8 if_flag;
	__u16 flags;

	/* in (pre_kvm_run), out (post_kvm_run) */
	__u64 cr8;
	__u64 apic_base;

	union {
		/* KVM_EXIT_UNKNOWN */
		struct {
			__u64 hardware_exit_reason;
		} hw;
		/* KVM_EXIT_FAIL_ENTRY */
		struct {
			__u64 hardware_entry_failure_reason;
			__u32 cpu;
		} fail_entry;
		/* KVM_EXIT_EXCEPTION */
		struct {
			__u32 exception;
			__u32 error_code;
		} ex;
		/* KVM_EXIT_IO */
		struct {
			__u8 direction;
			__u8 size; /* bytes */
			__u16 port;
			__u32 count;
			__u64 data_offset; /* relative to kvm_run start */
		} io;
		/* KVM_EXIT_DEBUG */
		struct {
			struct kvm_debug_exit_arch arch;
		} debug;
		/* KVM_EXIT_MMIO */
		struct {
			__u64 phys_addr;
			__u8  data[8];
			__u32 len;
			__u8  is_write;
		} mmio;
		/* KVM_EXIT_HYPERCALL */
		struct {
			__u64 nr;
			__u64 args[6];
			__u64 ret;
			union {
				__u32 longmode;
				__u64 flags;
			};
		} hypercall;
		/* KVM_EXIT_TPR_ACCESS */
		struct {
			__u64 rip;
			__u32 is_write;
			__u32 pad;
		} tpr_access;
		/* KVM_EXIT_INTERNAL_ERROR */
		struct {
			__u32 suberror;
			__u32 ndata;
			__u64 data[16];
		} internal;
		/* KVM_EXIT_SYSTEM_EVENT */
		struct {
			__u32 type;
			__u32 ndata;
			union {
				__u64 flags;
				__u64 data[16];
			};
		} system_event;
		/* KVM_EXIT_X86_RDMSR / KVM_EXIT_X86_WRMSR */
		struct {
			__u8 error; /* user -> kernel */
			__u8 pad[7];
			__u32 reason; /* kernel -> user */
			__u32 index; /* kernel -> user */
			__u64 data; /* kernel <-> user */
		} msr;
		/* KVM_EXIT_NOTIFY */
		struct {
			__u32 flags;
		} notify;
		/* KVM_EXIT_MEMORY_FAULT */
		struct {
			__u64 flags;
			__u64 gpa;
			__u64 size;
		} memory_fault;
		/* Fix the size of the union. */
		char padding[256];
	};

	/* 2048 is the size of the char array used to bound/pad the size
	 * of the union that holds sync regs (x86 register state is not
	 * modelled: only the padding is declared). */
#define SYNC_REGS_SIZE_BYTES 2048
	__u64 kvm_valid_regs;
	__u64 kvm_dirty_regs;
	union {
		char padding[SYNC_REGS_SIZE_BYTES];
	} s;
};

/* ---- x86 vCPU state (arch/x86/include/uapi/asm/kvm.h) ---- */
#define KVM_GET_MSR_INDEX_LIST    _IOWR(KVMIO, 0x02, struct kvm_msr_list)
#define KVM_GET_SUPPORTED_CPUID   _IOWR(KVMIO, 0x05, struct kvm_cpuid2)
#define KVM_GET_MSR_FEATURE_INDEX_LIST _IOWR(KVMIO, 0x0a, struct kvm_msr_list)
#define KVM_SET_NR_MMU_PAGES      _IO(KVMIO, 0x44)
#define KVM_GET_NR_MMU_PAGES      _IO(KVMIO, 0x45)
#define KVM_SET_TSS_ADDR          _IO(KVMIO, 0x47)
#define KVM_SET_IDENTITY_MAP_ADDR _IOW(KVMIO, 0x48, __u64)
#define KVM_CREATE_IRQCHIP        _IO(KVMIO, 0x60)
#define KVM_SET_TSC_KHZ           _IO(KVMIO, 0xa2)
#define KVM_GET_TSC_KHZ           _IO(KVMIO, 0xa3)
#define KVM_GET_REGS              _IOR(KVMIO, 0x81, struct kvm_regs)
#define KVM_SET_REGS              _IOW(KVMIO, 0x82, struct kvm_regs)
#define KVM_GET_SREGS             _IOR(KVMIO, 0x83, struct kvm_sregs)
#define KVM_SET_SREGS             _IOW(KVMIO, 0x84, struct kvm_sregs)
#define KVM_GET_MSRS              _IOWR(KVMIO, 0x88, struct kvm_msrs)
#define KVM_SET_MSRS              _IOW(KVMIO, 0x89, struct kvm_msrs)
#define KVM_GET_FPU               _IOR(KVMIO, 0x8c, struct kvm_fpu)
#define KVM_SET_FPU               _IOW(KVMIO, 0x8d, struct kvm_fpu)
#define KVM_SET_CPUID2            _IOW(KVMIO, 0x90, struct kvm_cpuid2)
#define KVM_GET_CPUID2            _IOWR(KVMIO, 0x91, struct kvm_cpuid2)
#define KVM_GET_MP_STATE          _IOR(KVMIO, 0x98, struct kvm_mp_state)
#define KVM_SET_MP_STATE          _IOW(KVMIO, 0x99, struct kvm_mp_state)

#define KVM_CAP_IRQCHIP           0
#define KVM_CAP_SET_TSS_ADDR      4
#define KVM_CAP_SET_IDENTITY_MAP_ADDR 37
#define KVM_CAP_EXT_CPUID         7
#define KVM_CAP_MP_STATE          14
#define KVM_CAP_GET_TSC_KHZ       61
#define KVM_CAP_GET_MSR_FEATURES  153

#define KVM_NR_INTERRUPTS 256

struct kvm_regs {
	__u64 rax, rbx, rcx, rdx;
	__u64 rsi, rdi, rsp, rbp;
	__u64 r8,  r9,  r10, r11;
	__u64 r12, r13, r14, r15;
	__u64 rip, rflags;
};

/* A segment register with its hidden part. */
struct kvm_segment {
	__u64 base;
	__u32 limit;
	__u16 selector;
	__u8  type;
	__u8  present, dpl, db, s, l, g, avl;
	__u8  unusable;
	__u8  padding;
};

struct kvm_dtable {
	__u64 base;
	__u16 limit;
	__u16 padding[3];
};

struct kvm_sregs {
	struct kvm_segment cs, ds, es, fs, gs, ss;
	struct kvm_segment tr, ldt;
	struct kvm_dtable gdt, idt;
	__u64 cr0, cr2, cr3, cr4, cr8;
	__u64 efer;
	__u64 apic_base;
	__u64 interrupt_bitmap[(KVM_NR_INTERRUPTS + 63) / 64];
};

/* The x87 and SSE state (ftwx in FXSAVE's abridged format). */
struct kvm_fpu {
	__u8  fpr[8][16];
	__u16 fcw;
	__u16 fsw;
	__u8  ftwx;
	__u8  pad1;
	__u16 last_opcode;
	__u64 last_ip;
	__u64 last_dp;
	__u8  xmm[16][16];
	__u32 mxcsr;
	__u32 pad2;
};

struct kvm_msr_entry {
	__u32 index;
	__u32 reserved;
	__u64 data;
};

/* KVM_GET/SET_MSRS: nmsrs entries follow. */
struct kvm_msrs {
	__u32 nmsrs;
	__u32 pad;
	struct kvm_msr_entry entries[];
};

/* KVM_GET_MSR_INDEX_LIST: in, the room for indices; out, the count. */
struct kvm_msr_list {
	__u32 nmsrs;
	__u32 indices[];
};

#define KVM_CPUID_FLAG_SIGNIFCANT_INDEX (1 << 0)
#define KVM_CPUID_FLAG_STATEFUL_FUNC    (1 << 1)
#define KVM_CPUID_FLAG_STATE_READ_NEXT  (1 << 2)

struct kvm_cpuid_entry2 {
	__u32 function;
	__u32 index;
	__u32 flags;
	__u32 eax;
	__u32 ebx;
	__u32 ecx;
	__u32 edx;
	__u32 padding[3];
};

struct kvm_cpuid2 {
	__u32 nent;
	__u32 padding;
	struct kvm_cpuid_entry2 entries[];
};

#define KVM_MP_STATE_RUNNABLE          0
#define KVM_MP_STATE_UNINITIALIZED     1
#define KVM_MP_STATE_INIT_RECEIVED     2
#define KVM_MP_STATE_HALTED            3
#define KVM_MP_STATE_SIPI_RECEIVED     4
#define KVM_MP_STATE_STOPPED           5
#define KVM_MP_STATE_CHECK_STOP        6
#define KVM_MP_STATE_OPERATING         7
#define KVM_MP_STATE_LOAD              8
#define KVM_MP_STATE_AP_RESET_HOLD     9
#define KVM_MP_STATE_SUSPENDED         10

struct kvm_mp_state {
	__u32 mp_state;
};

/* ---- KVM_MEMORY_ENCRYPT_OP: SEV-SNP (arch/x86/include/uapi/asm/kvm.h) ---- */
#define KVM_SEV_INIT2                 22
#define KVM_SEV_SNP_LAUNCH_START      100
#define KVM_SEV_SNP_LAUNCH_UPDATE     101
#define KVM_SEV_SNP_LAUNCH_FINISH     102

struct kvm_sev_cmd {
	__u32 id;
	__u32 pad0;
	__u64 data;
	__u32 error;
	__u32 sev_fd;
};

struct kvm_sev_init {
	__u64 vmsa_features;
	__u32 flags;
	__u16 ghcb_version;
	__u16 pad1;
	__u32 pad2[8];
};

struct kvm_sev_snp_launch_start {
	__u64 policy;
	__u8 gosvw[16];
	__u16 flags;
	__u8 pad0[6];
	__u64 pad1[4];
};

#define KVM_SEV_SNP_PAGE_TYPE_NORMAL     0x1
#define KVM_SEV_SNP_PAGE_TYPE_VMSA       0x2
#define KVM_SEV_SNP_PAGE_TYPE_ZERO       0x3
#define KVM_SEV_SNP_PAGE_TYPE_UNMEASURED 0x4
#define KVM_SEV_SNP_PAGE_TYPE_SECRETS    0x5
#define KVM_SEV_SNP_PAGE_TYPE_CPUID      0x6

struct kvm_sev_snp_launch_update {
	__u64 gfn_start;
	__u64 uaddr;
	__u64 len;
	__u8 type;
	__u8 pad0;
	__u16 flags;
	__u32 pad1;
	__u64 pad2[4];
};

#define KVM_SEV_SNP_ID_BLOCK_SIZE 96
#define KVM_SEV_SNP_ID_AUTH_SIZE  4096
#define KVM_SEV_SNP_FINISH_DATA_SIZE 32

struct kvm_sev_snp_launch_finish {
	__u64 id_block_uaddr;
	__u64 id_auth_uaddr;
	__u8 id_block_en;
	__u8 auth_key_en;
	__u8 vcek_disabled;
	__u8 host_data[KVM_SEV_SNP_FINISH_DATA_SIZE];
	__u8 pad0[3];
	__u16 flags;
	__u64 pad1[4];
};

/* ---- KVM_MEMORY_ENCRYPT_OP: TDX ---- */
enum kvm_tdx_cmd_id {
	KVM_TDX_CAPABILITIES = 0,
	KVM_TDX_INIT_VM,
	KVM_TDX_INIT_VCPU,
	KVM_TDX_INIT_MEM_REGION,
	KVM_TDX_FINALIZE_VM,
	KVM_TDX_GET_CPUID,
	KVM_TDX_CMD_NR_MAX,
};

struct kvm_tdx_cmd {
	__u32 id;
	__u32 flags;
	__u64 data;
	__u64 hw_error;
};

#define KVM_TDX_MEASURE_MEMORY_REGION (1UL << 0)

struct kvm_tdx_init_mem_region {
	__u64 source_addr;
	__u64 gpa;
	__u64 nr_pages;
};

#define KVM_MAX_CPUID_ENTRIES 256

/* KVM_TDX_INIT_VM's data: cpuid.nent entries follow the struct. privmem
 * reads CPUID 0x80000008 EAX[23:16] (guest physical address bits, else
 * EAX[7:0]): 48 puts the shared bit at 47, 52 (MAX_GPAW) at 51. */
struct kvm_tdx_init_vm {
	__u64 attributes;
	__u64 xfam;
	__u64 mrconfigid[6];
	__u64 mrowner[6];
	__u64 mrownerconfig[6];
	__u64 reserved[12];
	struct kvm_cpuid2 cpuid;
};

#endif /* PRIVMEM_KVM_H */

/* SPDX-License-Identifier: MIT */
/*
 * The input format of the uAPI fuzz target (fuzz_uapi.c), shared with its
 * seed generator (gen_uapi_seeds.c).
 *
 * An input is a stream of operations: one opcode byte (taken modulo
 * FZ_OP_NR) followed by the operand bytes its row in fuzz_uapi.c's table
 * reads (a missing byte reads 0, so every prefix of an input is an input).
 * Operands are small: a handle operand is an index into the live handles
 * of the kind the operation wants (>= FZ_H_ODD picks a handle of another
 * kind, a closed one, or a number never handed out); numbers are indices
 * into tables of meaningful values (page multiples, 2M and 1G boundaries,
 * misaligned and huge values), so a few bytes reach a deep state: see the
 * seed generator for an SNP launch, a TDX build or a pKVM share in a
 * dozen bytes each.
 */
#ifndef PM_FUZZ_UAPI_OPS_H
#define PM_FUZZ_UAPI_OPS_H

enum fz_op {
	FZ_OP_CREATE_VM,     /* type */
	FZ_OP_CLOSE,         /* any handle */
	FZ_OP_CREATE_GMEM,   /* vm, size, flags */
	FZ_OP_SET_SLOT,      /* vm, slot, flags, gpa, size, uaddr, gmem, gmem offset */
	FZ_OP_SET_ATTR,      /* vm, gpa, size, attr */
	FZ_OP_FALLOCATE,     /* gmem, mode, offset, len */
	FZ_OP_CREATE_VCPU,   /* vm, id (bit 7: no guest code) */
	FZ_OP_GUEST,         /* vcpu, guest op, a, b, c, policy: runs a guest operation */
	FZ_OP_RUN,           /* vcpu, flags: KVM_RUN (bit 0 immediate_exit) */
	FZ_OP_PRE_FAULT,     /* vcpu, gpa, size */
	FZ_OP_ENABLE_CAP,    /* vm, which */
	FZ_OP_SNP,           /* vm, cmd, a, b, c: one KVM_SEV_SNP_* command */
	FZ_OP_TDX,           /* vm or vcpu, cmd, a, b, c: one KVM_TDX_* command */
	FZ_OP_MMAP,          /* gmem (or vcpu), offset, len, flags */
	FZ_OP_MUNMAP,        /* mapping, how */
	FZ_OP_HOST_RW,       /* mapping, offset, write */
	FZ_OP_PIN,           /* gmem, offset, size, unpin */
	FZ_OP_INFO,          /* any handle, which: fstat, read, stats, measurement... */
	FZ_OP_POOL_CONFIG,   /* size */
	FZ_OP_TDX_CONFIG,    /* vm, rate, flags */
	FZ_OP_SETUP,         /* vm, layout: guest_memfd + memslot + attributes + vCPU */
	FZ_OP_SNP_LAUNCH,    /* vm, a, b: START, UPDATE, FINISH */
	FZ_OP_TDX_BUILD,     /* vm, a, b: INIT_VM, INIT_VCPU, INIT_MEM_REGION, FINALIZE */
	FZ_OP_OPEN,          /* a further system handle */
	FZ_OP_ATTR_STORM,    /* vm, count, how: many small attribute sets (the attribute tree's leaves) */
	FZ_OP_NR,            /* append only: opcode bytes >= FZ_OP_NR change meaning when it grows */
};

/* Guest operations (FZ_OP_GUEST's second operand, modulo FZ_G_NR).
 * Operand a: bits 0-3 a guest address (index into the GPA table), bit 4
 * the shared kind (no C-bit on SNP, the shared bit on TDX). */
enum fz_gop {
	FZ_G_NOP,
	FZ_G_WRITE,          /* write64 a value the shadow remembers (private pages) */
	FZ_G_READ,
	FZ_G_CHECK,          /* read back every shadowed private value */
	FZ_G_MEMSET,         /* b: length index */
	FZ_G_MAP_GPA,        /* KVM_HC_MAP_GPA_RANGE: b pages index, c bit 0 encrypted, bits 1-2 size */
	FZ_G_SHARE,          /* pKVM MEM_SHARE: b pages index */
	FZ_G_UNSHARE,        /* pKVM MEM_UNSHARE */
	FZ_G_PVALIDATE,      /* SNP: b bit 0 2M, bit 1 rescind */
	FZ_G_PSC,            /* SNP PSC request: b entries and sizes, c operations */
	FZ_G_PSC_MSR,        /* SNP MSR protocol: c operation */
	FZ_G_SNP_CONVERT,    /* SNP make_private / make_shared: b pages, c bit 0 shared */
	FZ_G_TDX_ACCEPT,     /* b: level */
	FZ_G_TDX_ACCEPT_RANGE, /* b: size index */
	FZ_G_TDX_MAP_GPA,    /* b: size index; a's kind bit: to shared */
	FZ_G_HYPERCALL,      /* b: nr index */
	FZ_G_CMPXCHG,
	FZ_G_DONE,
	FZ_G_NR,
};

/* FZ_OP_GUEST's policy byte: how the VMM answers the guest's exits. */
#define FZ_POL_NO_CONVERT   (1u << 0)  /* memory-fault exits end the operation */
#define FZ_POL_REFUSE_HC    (1u << 1)  /* KVM_HC_MAP_GPA_RANGE answered -KVM_EINVAL */
#define FZ_POL_NO_DISCARD   (1u << 2)  /* conversions keep the other copy */
#define FZ_POL_SHORT        (1u << 3)  /* a budget of 2 KVM_RUNs instead of 24 */

#define FZ_H_ODD 0xF8   /* handle operands from here on pick an odd handle */

#endif

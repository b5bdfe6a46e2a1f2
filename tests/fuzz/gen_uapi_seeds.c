/* SPDX-License-Identifier: MIT */
/*
 * Writes the seed inputs of the uAPI fuzz target (fuzz_uapi.c) into the
 * directory given: one file per scenario, each a short operation stream in
 * the format of uapi_ops.h that reaches a deep state libFuzzer would take
 * long to find by itself (a measured SNP launch and PVALIDATE, a TDX build
 * and ACCEPT, a pKVM share seen through a view, a 1G page split by a
 * punch...). The seeds are committed in tests/fuzz/corpus/uapi/ (seed-*);
 * rerun after changing the format:
 *   cc -Iinclude -o /tmp/gen tests/fuzz/gen_uapi_seeds.c && /tmp/gen tests/fuzz/corpus/uapi
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "uapi_ops.h"

/* Operand values, as indices into fuzz_uapi.c's tables. */
enum { T_SW = 0, T_SNP = 1, T_TDX = 2, T_PKVM = 3, T_DEFAULT = 4 };                 /* vm_types */
enum { G_0, G_4K, G_8K, G_2M_4K, G_2M, G_2M4K, G_4M_4K, G_4M, G_6M, G_8M_4K, G_8M,
       G_1G_4K, G_1G, G_1G2M, G_4G, G_MMIO };                                          /* gpas */
enum { S_4K, S_8K, S_2M, S_4M, S_8M };                                                 /* sizes */
enum { L_8M, L_1G, L_4M_4K, L_4M_AT4M };                                               /* op_setup layouts */
#define SHARED 16        /* guest operand a: the shared kind */
#define PUNCH 1          /* falloc_modes: PUNCH_HOLE | KEEP_SIZE */
#define ALLOC 0          /* falloc_modes: KEEP_SIZE */

static unsigned char buf[512];
static size_t len;

static void put(int n, ...)
{
	va_list ap;

	va_start(ap, n);
	for (int i = 0; i < n; i++)
		buf[len++] = (unsigned char)va_arg(ap, int);
	va_end(ap);
}

#define OP(...) put(sizeof((int[]){ __VA_ARGS__ }) / sizeof(int), __VA_ARGS__)
/* vcpu 0 (of the live ones) runs guest operation g with a, b, c. */
#define GUEST(vcpu, g, a, b, c, pol) OP(FZ_OP_GUEST, vcpu, g, a, b, c, pol)

static void emit(const char *dir, const char *name)
{
	char path[1024];
	FILE *f;

	snprintf(path, sizeof(path), "%s/seed-%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(buf, 1, len, f) != len || fclose(f)) {
		perror(path);
		exit(1);
	}
	len = 0;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : ".";

	/* A software-protected VM: private data survives unrelated operations,
	 * a conversion to shared through MAP_GPA_RANGE, a punch, pre-fault. */
	OP(0);
	OP(FZ_OP_CREATE_VM, T_SW);
	OP(FZ_OP_SETUP, 0, L_8M);
	GUEST(0, FZ_G_WRITE, G_4K, 0, 1, 0);
	GUEST(0, FZ_G_WRITE, G_2M, 0, 2, 0);
	GUEST(0, FZ_G_CHECK, 0, 0, 0, 0);
	GUEST(0, FZ_G_MAP_GPA, G_4M, 0, 0, 0);           /* 1 page to shared */
	GUEST(0, FZ_G_WRITE, G_4M, 0, 3, 0);
	GUEST(0, FZ_G_CHECK, 0, 0, 0, 0);
	OP(FZ_OP_FALLOCATE, 0, PUNCH, 3, S_4K);         /* offset 4M */
	OP(FZ_OP_PRE_FAULT, 0, G_6M, S_2M);
	OP(FZ_OP_FALLOCATE, 0, ALLOC, 2, S_2M);
	GUEST(0, FZ_G_CHECK, 0, 0, 0, 0);
	GUEST(0, FZ_G_MAP_GPA, G_2M, 2, 1, 0);           /* 512 pages private again (no-op) */
	GUEST(0, FZ_G_MEMSET, G_8K, 1, 0x5a, 0);
	GUEST(0, FZ_G_CHECK, 0, 0, 0, 0);
	OP(FZ_OP_INFO, 0, 1 | (4 << 2));                /* VM stats */
	emit(dir, "sw-convert");

	/* Implicit faults on a software-protected VM: the VMM converts on
	 * memory-fault exits, or not; a second VM in between. */
	OP(1);
	OP(FZ_OP_CREATE_VM, T_SW);
	OP(FZ_OP_SETUP, 0, L_4M_4K | 0x20);             /* attributes left shared */
	GUEST(0, FZ_G_WRITE, G_4K, 0, 1, 0);
	OP(FZ_OP_SET_ATTR, 0, G_0, S_2M, 1);            /* [0, 2M) private */
	GUEST(0, FZ_G_WRITE, G_4K, 0, 4, 0);
	OP(FZ_OP_CREATE_VM, T_SW);
	OP(FZ_OP_SETUP, 1, L_8M);
	GUEST(1, FZ_G_WRITE, G_8K, 0, 5, 0);
	OP(FZ_OP_SET_ATTR, 1, G_2M, S_2M, 0);
	GUEST(0, FZ_G_CHECK, 0, 0, 0, 0);
	GUEST(1, FZ_G_CHECK, 0, 0, 0, 0);
	OP(FZ_OP_CLOSE, 1);                             /* a VM handle with its vCPU running */
	GUEST(0, FZ_G_READ, G_MMIO, 0, 0, 0);
	GUEST(0, FZ_G_HYPERCALL, G_4K, 1, 0, 0);
	emit(dir, "sw-two-vms");

	/* SEV-SNP: measured launch, then PVALIDATE, private writes, PSC. */
	OP(2);
	OP(FZ_OP_CREATE_VM, T_SNP);
	OP(FZ_OP_SETUP, 0, L_8M);
	OP(FZ_OP_SNP_LAUNCH, 0, 0x20, G_4K | (1 << 4));   /* 2 pages at 4K, normal, a 2nd vCPU */
	OP(FZ_OP_INFO, 1, 1 | (7 << 2));                /* measurement */
	GUEST(0, FZ_G_PVALIDATE, G_2M, 1, 0, 0);         /* 2M */
	GUEST(0, FZ_G_WRITE, G_2M, 0, 7, 0);
	GUEST(0, FZ_G_PVALIDATE, G_4M, 0, 0, 0);
	GUEST(0, FZ_G_WRITE, G_4M, 0, 8, 0);
	GUEST(0, FZ_G_WRITE, G_4K, 0, 9, 0);             /* launch page: validated */
	GUEST(1, FZ_G_CHECK, 0, 0, 0, 0);
	GUEST(1, FZ_G_PVALIDATE, G_2M4K, 0, 0, 0);       /* 4K inside a 2M entry: PSMASH */
	GUEST(0, FZ_G_CHECK, 0, 0, 0, 0);
	GUEST(0, FZ_G_PSC, G_6M, 1, 0x2, 0);             /* 2 entries to shared */
	GUEST(0, FZ_G_SNP_CONVERT, G_8K, 0, 1, 0);       /* make shared */
	GUEST(0, FZ_G_SNP_CONVERT, G_8K, 0, 0, 0);       /* and private again */
	GUEST(0, FZ_G_PSC_MSR, G_4M, 0, 2, 0);
	GUEST(0, FZ_G_READ, G_6M, 0, 0, 0);              /* converted back, unvalidated: SEV_TERM */
	emit(dir, "snp-launch");

	/* TDX: build (INIT_VM, INIT_VCPU, INIT_MEM_REGION, FINALIZE), ACCEPT,
	 * private writes, MapGPA to shared and back. */
	OP(3);
	OP(FZ_OP_CREATE_VM, T_TDX);
	OP(FZ_OP_SETUP, 0, L_8M);
	OP(FZ_OP_TDX_BUILD, 0, 0x02, G_4K);              /* measured, 1 page at 4K */
	OP(FZ_OP_INFO, 1, 1 | (7 << 2));                /* MRTD */
	GUEST(0, FZ_G_TDX_ACCEPT, G_2M, 1, 0, 0);        /* 2M */
	GUEST(0, FZ_G_WRITE, G_2M, 0, 1, 0);
	GUEST(0, FZ_G_TDX_ACCEPT_RANGE, G_4M, 3, 0, 0);
	GUEST(0, FZ_G_WRITE, G_4M, 0, 2, 0);
	GUEST(0, FZ_G_WRITE, G_4K, 0, 3, 0);
	GUEST(0, FZ_G_TDX_MAP_GPA, G_6M | SHARED, 0, 0, 0);
	GUEST(0, FZ_G_WRITE, G_6M | SHARED, 0, 4, 0);
	GUEST(0, FZ_G_CHECK, 0, 0, 0, 0);
	OP(FZ_OP_FALLOCATE, 0, PUNCH, 2, S_4K);          /* zap the 2M page in part: demote */
	GUEST(0, FZ_G_TDX_MAP_GPA, G_6M, 0, 0, 0);
	GUEST(0, FZ_G_READ, G_6M, 0, 0, 0);              /* pending: TDX_FATAL */
	emit(dir, "tdx-build");

	/* pKVM: share in place, the host's view and pins, unshare. */
	OP(4);
	OP(FZ_OP_CREATE_VM, T_PKVM);
	OP(FZ_OP_SETUP, 0, L_8M);
	GUEST(0, FZ_G_WRITE, G_4K, 0, 1, 0);
	GUEST(0, FZ_G_WRITE, G_8K, 0, 2, 0);
	GUEST(0, FZ_G_SHARE, G_4K, 1, 0, 0);             /* 2 pages */
	OP(FZ_OP_MMAP, 0, 0, 0, 0);                      /* view of [0, 4K)... */
	OP(FZ_OP_MMAP, 0, 0, 3, 0);                      /* ...and of [0, 4M) */
	OP(FZ_OP_HOST_RW, 1, 1 << 3, 0);                 /* read page 1 */
	OP(FZ_OP_PIN, 0, 1, S_4K, 0);
	GUEST(0, FZ_G_UNSHARE, G_4K, 0, 0, 0);           /* pinned: EBUSY */
	OP(FZ_OP_PIN, 0, 1, S_4K, 1);
	GUEST(0, FZ_G_UNSHARE, G_4K, 1, 0, 0);
	GUEST(0, FZ_G_CHECK, 0, 0, 0, 0);
	OP(FZ_OP_FALLOCATE, 0, PUNCH, 0, S_4K);          /* reclaim a guest page: poisoned */
	GUEST(0, FZ_G_SHARE, G_0, 0, 0, 0);
	OP(FZ_OP_INFO, 3 << 5, 0 | (6 << 2));            /* the hyp's statistics (sys handle) */
	OP(FZ_OP_MUNMAP, 0, 0);
	emit(dir, "pkvm-share");

	/* The pool: a 1G page, split by a punch; exhaustion of a small pool. */
	OP(5);
	OP(FZ_OP_POOL_CONFIG, 3);                        /* 1G + 4M */
	OP(FZ_OP_CREATE_VM, T_SW);
	OP(FZ_OP_SETUP, 0, L_1G);
	GUEST(0, FZ_G_WRITE, G_1G, 0, 1, 0);
	GUEST(0, FZ_G_WRITE, G_1G2M, 0, 2, 0);
	OP(FZ_OP_FALLOCATE, 0, PUNCH, 1, S_4K);          /* offset 4K of the file */
	GUEST(0, FZ_G_CHECK, 0, 0, 0, 0);
	emit(dir, "pool-1g");

	OP(6);
	OP(FZ_OP_POOL_CONFIG, 2);                        /* 2M */
	OP(FZ_OP_CREATE_VM, T_SW);
	OP(FZ_OP_SETUP, 0, L_8M);
	GUEST(0, FZ_G_MEMSET, G_0, 3, 1, 0);
	OP(FZ_OP_PRE_FAULT, 0, G_2M, S_4M);
	OP(FZ_OP_FALLOCATE, 0, ALLOC, 0, S_8M);
	OP(FZ_OP_INFO, 0, 0 | (5 << 2));
	emit(dir, "pool-exhausted");

	/* Errors: handles of the wrong kind, bad sizes, slots, the default VM. */
	OP(7);
	OP(FZ_OP_CREATE_VM, T_DEFAULT);
	OP(FZ_OP_SETUP, 0, L_8M);
	OP(FZ_OP_CREATE_GMEM, 0, 11, 7);
	OP(FZ_OP_SET_SLOT, 0x80, 5, G_4G, 12, 5, 0xff, 6);
	OP(FZ_OP_SET_ATTR, 0, 0x80, 0, 1);
	OP(FZ_OP_FALLOCATE, 0xfa, 4, 6, 13);
	OP(FZ_OP_CREATE_VCPU, 0, 3);
	GUEST(0, FZ_G_WRITE, G_4K | SHARED, 0, 1, 0);
	GUEST(0, FZ_G_READ, G_MMIO, 0, 0, 0);
	OP(FZ_OP_RUN, 0, 1);                             /* immediate_exit */
	OP(FZ_OP_MMAP, 0xf9, 1, 0, 0);
	OP(FZ_OP_INFO, 0xfb, 2);
	OP(FZ_OP_TDX, 0, 0, 0, 0, 0);                    /* TDX command on a default VM */
	OP(FZ_OP_SNP, 0, 0, 0, 0, 0);
	OP(FZ_OP_CLOSE, 0xff);
	emit(dir, "errors");

	/* Close in odd orders: the guest_memfd first, then the VM, a vCPU run after. */
	OP(9);
	OP(FZ_OP_CREATE_VM, T_SW);
	OP(FZ_OP_SETUP, 0, L_8M);
	GUEST(0, FZ_G_WRITE, G_4K, 0, 1, 0);
	OP(FZ_OP_MMAP, 0, 0, 0, 0);
	OP(FZ_OP_CLOSE, 1);                              /* vm 0, gmem 1, vcpu 2 */
	GUEST(0, FZ_G_READ, G_4K, 0, 0, 0);
	OP(FZ_OP_CLOSE, 0);                              /* the VM */
	GUEST(0, FZ_G_READ, G_8K, 0, 0, 0);
	emit(dir, "close-order");

	/* The attribute tree: 130 4K sets in distinct 2M blocks and back,
	 * with private data written before and checked after. */
	OP(10);
	OP(FZ_OP_CREATE_VM, T_SW);
	OP(FZ_OP_SETUP, 0, L_8M);
	GUEST(0, FZ_G_WRITE, G_4K, 0, 1, 0);
	OP(FZ_OP_ATTR_STORM, 0, 2 | (3 << 2), 1);       /* 130 sets at 2M + 12K each, and back */
	OP(FZ_OP_ATTR_STORM, 0, 1, 0);                  /* 70 sets 12K apart, and back */
	GUEST(0, FZ_G_CHECK, 0, 0, 0, 0);
	emit(dir, "attr-storm");
	return 0;
}

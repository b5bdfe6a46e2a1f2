/* SPDX-License-Identifier: MIT */
/*
 * Launch measurements of a firmware image (fw_image.h), computed offline
 * as the hardware computes them for the VMM flow QEMU and KVM follow:
 *
 *  - SEV-SNP launch digest (measure_snp): the PSP's PAGE_INFO chain over
 *    the whole image (NORMAL pages, ascending GPA, mapped to end at 4 GiB),
 *    then each SEV metadata section in table order (SNP_SEC_MEM and
 *    SVSM_CAA as ZERO pages, SNP_SECRETS a SECRETS page, CPUID a CPUID
 *    page, SNP_KERNEL_HASHES a NORMAL page holding QEMU's table of the
 *    kernel's, initrd's and command line's SHA-256 when a kernel is given,
 *    else ZERO pages), then one VMSA per vCPU at GPA 0xFFFFFFFFF000: the
 *    BSP at the reset vector 0xFFFFFFF0, the APs at the SEV-ES reset
 *    block's EIP, RDX the vCPU type's CPUID signature, SEV_FEATURES the
 *    guest features. The same algorithm as the public tool sev-snp-measure
 *    (its QEMU mode).
 *  - TDX MRTD (measure_tdx): SHA-384 over the TDX module's records for
 *    each TDVF section in metadata order but PAGE_AUG ones: per 4K page a
 *    MEM.PAGE.ADD record and, where the section has MR_EXTEND, its 16
 *    MR.EXTEND records (256 bytes of content each) right after it, as
 *    upstream KVM's KVM_TDX_INIT_MEM_REGION issues them; BFV and CFV
 *    contents come from the image, TD_HOB, TempMem and PermMem are zero
 *    pages. MEASURE_TDX_ADD_THEN_EXTEND instead adds all of a section's
 *    pages before extending any (older out-of-tree stacks).
 *
 * Errors: -EINVAL with a message (err, FW_ERR_LEN bytes) when the image
 * lacks what the measurement needs or the options do not fit it.
 */
#ifndef PM_TOOLS_MEASURE_H
#define PM_TOOLS_MEASURE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "fw_image.h"

#define MEASURE_DIGEST_SIZE 48
#define MEASURE_VMSA_GPA    0xFFFFFFFFF000ULL
#define MEASURE_BSP_EIP     0xFFFFFFF0u
#define MEASURE_MAX_VCPUS   512

/* QEMU's SEV hash table (its layout in measure.c): SHA-256 of the kernel
 * command line with its NUL, of the initrd (empty if none), of the kernel. */
struct measure_kernel_hashes {
	uint8_t cmdline[32], initrd[32], kernel[32];
};

struct measure_snp_opts {
	unsigned int vcpus;                         /* 1 .. MEASURE_MAX_VCPUS */
	uint32_t vcpu_sig;                          /* CPUID leaf 1 EAX of the vCPU type */
	uint64_t guest_features;                    /* SEV_FEATURES (bit 0: SNP active) */
	const struct measure_kernel_hashes *kernel; /* NULL: no kernel */
};

int measure_snp(const struct fw_image *img, const struct measure_snp_opts *o,
		uint8_t digest[MEASURE_DIGEST_SIZE], char *err);

enum measure_tdx_order { MEASURE_TDX_INTERLEAVED, MEASURE_TDX_ADD_THEN_EXTEND };

int measure_tdx(const struct fw_image *img, enum measure_tdx_order order,
		uint8_t mrtd[MEASURE_DIGEST_SIZE], char *err);

/* The vCPU types of QEMU's AMD models: CPUID signature by name; -EINVAL
 * for an unknown name. measure_vcpu_types lists them (for --help). */
int measure_vcpu_sig(const char *name, uint32_t *sig);
void measure_vcpu_types(FILE *out);

/* SEV reset state of a vCPU whose first instruction is at eip (vmsa.h):
 * what QEMU and KVM put in the VMSA before LAUNCH_FINISH. */
struct snp_vmsa_state;
void measure_snp_reset_state(uint32_t eip, uint32_t vcpu_sig, uint64_t guest_features,
			     struct snp_vmsa_state *s);

/* The hash table page of a SNP_KERNEL_HASHES section: QEMU's table at the
 * SEV hash table entry's offset in its page, the rest zero; -EINVAL if the
 * image has no room for it. */
int measure_kernel_hashes_page(const struct fw_image *img, const struct measure_kernel_hashes *h,
			       uint8_t page[FW_PAGE], char *err);

/* SHA-256 of a file's bytes (or of no bytes: path NULL): 0 or -errno with
 * a message. */
int measure_sha256_file(const char *path, uint8_t out[32], char *err);

#endif

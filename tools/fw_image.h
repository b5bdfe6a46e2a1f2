/* SPDX-License-Identifier: MIT */
/*
 * An OVMF firmware image, parsed for a confidential VM's launch: the footer
 * GUID table, and in it the SEV-ES reset block (the APs' reset EIP), the
 * SEV metadata (the sections an SNP launch measures), the SEV hash table
 * (where the kernel hashes go) and the TDX metadata (the TDVF sections a TD
 * is built from). Shared by `privmem measure` and `privmem run --firmware`.
 *
 * Layout (shared/reference/measure.md): the image is mapped to end at
 * 4 GiB; the GUID table ends 0x20 bytes before the image's end with the
 * footer entry; each entry is data, a u16 length (data + 18) and the GUID
 * (EFI byte order), walked backwards. Every offset and length read from
 * the image is checked before use: a truncated or malformed image is
 * -EINVAL with a message saying what is wrong and where, never a read
 * outside the image. Sections are checked as a launch needs them: page
 * aligned, inside 4 GiB (SEV) or the TD's GPA space (TDX), of known types,
 * no two overlapping, SEV sections not over the image itself, TDX data
 * inside the file, and at most FW_MAX_LAUNCH_MEM of them in all.
 *
 * A struct fw_image points into the caller's bytes (not copied): they
 * must outlive it. Nothing is allocated by fw_image_parse.
 */
#ifndef PM_TOOLS_FW_IMAGE_H
#define PM_TOOLS_FW_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FW_PAGE           4096u
#define FW_MAX_SIZE       (64u << 20)   /* a larger file is no firmware flash image */
#define FW_MAX_SECTIONS   64
/* The memory a launch adds from the metadata (SEV sections; TDX sections
 * but PAGE_AUG ones), at most: OVMF's is a few hundred KiB, and a bound
 * keeps a malformed image from costing minutes of hashing. */
#define FW_MAX_LAUNCH_MEM (256u << 20)
#define FW_ERR_LEN        160

/* SEV metadata section types. */
enum fw_sev_type {
	FW_SEV_SEC_MEM = 1,           /* measured as ZERO pages */
	FW_SEV_SECRETS = 2,           /* one SECRETS page */
	FW_SEV_CPUID = 3,             /* one CPUID page */
	FW_SEV_SVSM_CAA = 4,          /* ZERO pages */
	FW_SEV_KERNEL_HASHES = 0x10,  /* the kernel hashes page: NORMAL with a kernel, else ZERO */
};

/* TDVF section types and attributes. */
enum fw_tdx_type {
	FW_TDX_BFV, FW_TDX_CFV, FW_TDX_TD_HOB, FW_TDX_TEMP_MEM, FW_TDX_PERM_MEM, FW_TDX_PAYLOAD,
	FW_TDX_PAYLOAD_PARAM, FW_TDX_NR_TYPES,
};
#define FW_TDX_MR_EXTEND  (1u << 0)   /* contents measured (MR.EXTEND) */
#define FW_TDX_PAGE_AUG   (1u << 1)   /* added after launch: not in MRTD */

struct fw_sev_section {
	uint32_t gpa, size, type;
};

struct fw_tdx_section {
	uint32_t data_offset, raw_size;   /* in the file (BFV, CFV) */
	uint64_t gpa, mem_size;
	uint32_t type, attributes;
};

struct fw_image {
	const uint8_t *data;          /* the caller's bytes */
	size_t size;
	uint64_t gpa;                 /* where the image is mapped: 4 GiB - size */

	bool has_reset_block;
	uint32_t ap_reset_eip;        /* SEV-ES reset block: the APs' first EIP */
	bool has_hash_table;
	uint32_t hash_base, hash_size;/* SEV hash table area; 0/0: none */

	bool has_sev;                 /* SEV metadata ("ASEV") */
	unsigned int nr_sev;
	struct fw_sev_section sev[FW_MAX_SECTIONS];
	bool has_tdx;                 /* TDX metadata ("TDVF") */
	unsigned int nr_tdx;
	struct fw_tdx_section tdx[FW_MAX_SECTIONS];
};

/* Parses size bytes at data into *img: 0, or -EINVAL with a message in
 * err (FW_ERR_LEN bytes) for a malformed image. */
int fw_image_parse(struct fw_image *img, const void *data, size_t size, char *err);

/* Reads a whole file of at most FW_MAX_SIZE bytes into a new page-aligned
 * buffer (the caller frees *data): 0, or -errno with a message in err. */
int fw_image_read(const char *path, uint8_t **data, size_t *size, char *err);

const char *fw_sev_type_name(uint32_t type);
const char *fw_tdx_type_name(uint32_t type);

#endif

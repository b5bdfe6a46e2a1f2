/* SPDX-License-Identifier: MIT */
/*
 * A small OVMF-like firmware image built by hand for the tests of
 * `privmem measure` and its parser: 64 KiB, a GUID table with the SEV-ES
 * reset block, the SEV hash table, the SEV metadata (six sections, one of
 * each type), the TDX metadata (BFV and CFV measured, a CFV shorter in the
 * file than in memory, TD_HOB, TempMem, a PAGE_AUG PermMem) and an unknown
 * entry, laid out from the published format (measure.md), not by privmem's
 * code. The offsets below let a test break one field at a time.
 */
#ifndef PM_TESTS_FWIMG_H
#define PM_TESTS_FWIMG_H

#include <stddef.h>
#include <stdint.h>

#define FWIMG_SIZE          0x10000u
#define FWIMG_TABLE_END     (FWIMG_SIZE - 0x20)       /* the footer entry ends here */
#define FWIMG_FOOTER_LEN    (FWIMG_TABLE_END - 18)    /* u16: the whole table's length */
#define FWIMG_SEV_META      0x1000u                   /* file offset of "ASEV" */
#define FWIMG_SEV_SECTIONS  6
#define FWIMG_TDX_META      0x2000u                   /* file offset of "TDVF" */
#define FWIMG_TDX_SECTIONS  5
#define FWIMG_AP_EIP        0x0080f004u

/* File offsets of the GUID table's entries' u16 lengths (in table order). */
enum { FWIMG_E_RESET, FWIMG_E_HASH, FWIMG_E_SEV, FWIMG_E_TDX, FWIMG_E_UNKNOWN, FWIMG_NR_ENTRIES };
extern size_t fwimg_entry_len_off[FWIMG_NR_ENTRIES];

/* Builds the image into img (FWIMG_SIZE bytes). */
void fwimg_build(uint8_t *img);

/* Little-endian stores, for the tests' edits. */
void fwimg_put16(uint8_t *p, uint16_t v);
void fwimg_put32(uint8_t *p, uint32_t v);
void fwimg_put64(uint8_t *p, uint64_t v);

#endif

/* SPDX-License-Identifier: MIT */
/* The hand-built firmware image of the measure tests (fwimg.h). */
#include <string.h>
#include "fwimg.h"

size_t fwimg_entry_len_off[FWIMG_NR_ENTRIES];

void fwimg_put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
void fwimg_put32(uint8_t *p, uint32_t v) { fwimg_put16(p, (uint16_t)v); fwimg_put16(p + 2, (uint16_t)(v >> 16)); }
void fwimg_put64(uint8_t *p, uint64_t v) { fwimg_put32(p, (uint32_t)v); fwimg_put32(p + 4, (uint32_t)(v >> 32)); }

/* GUIDs in EFI byte order (the first three fields little endian). */
static const uint8_t g_footer[16] = { 0xde, 0x82, 0xb5, 0x96, 0xb2, 0x1f, 0xf7, 0x45,
				      0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d };
static const uint8_t g_reset[16] = { 0xde, 0x71, 0xf7, 0x00, 0x7e, 0x1a, 0xcb, 0x4f,
				     0x89, 0x0e, 0x68, 0xc7, 0x7e, 0x2f, 0xb4, 0x4e };
static const uint8_t g_hash[16] = { 0x1f, 0x37, 0x55, 0x72, 0x3b, 0x3a, 0x04, 0x4b,
				    0x92, 0x7b, 0x1d, 0xa6, 0xef, 0xa8, 0xd4, 0x54 };
static const uint8_t g_sev[16] = { 0x66, 0x65, 0x88, 0xdc, 0x4a, 0x98, 0x98, 0x47,
				   0xa7, 0x5e, 0x55, 0x85, 0xa7, 0xbf, 0x67, 0xcc };
static const uint8_t g_tdx[16] = { 0x35, 0x65, 0x7a, 0xe4, 0x4a, 0x98, 0x98, 0x47,
				   0x86, 0x5e, 0x46, 0x85, 0xa7, 0xbf, 0x8e, 0xc2 };
static const uint8_t g_unknown[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };

static const uint32_t sev_sections[FWIMG_SEV_SECTIONS][3] = {   /* gpa, size, type */
	{ 0x800000, 0x2000, 1 }, { 0x802000, 0x1000, 2 }, { 0x803000, 0x1000, 3 },
	{ 0x804000, 0x1000, 4 }, { 0x805000, 0x1000, 0x10 }, { 0x806000, 0x3000, 1 },
};

static const struct { uint32_t off, raw; uint64_t gpa, size; uint32_t type, attr; }
tdx_sections[FWIMG_TDX_SECTIONS] = {
	{ 0x8000, 0x8000, 0xffff8000, 0x8000, 0, 1 },  /* BFV, MR_EXTEND */
	{ 0, 0x3000, 0xffff0000, 0x8000, 1, 1 },       /* CFV, MR_EXTEND, zero tail */
	{ 0, 0, 0x900000, 0x2000, 2, 0 },              /* TD_HOB */
	{ 0, 0, 0x800000, 0x6000, 3, 0 },              /* TempMem */
	{ 0, 0, 0xa00000, 0x4000, 4, 2 },              /* PermMem, PAGE_AUG */
};

/* Appends entry {data, len, guid} at *pos, returns the length's offset. */
static size_t entry(uint8_t *img, size_t *pos, const void *data, size_t n, const uint8_t *guid)
{
	size_t len_off;

	memcpy(img + *pos, data, n);
	len_off = *pos + n;
	fwimg_put16(img + len_off, (uint16_t)(n + 18));
	memcpy(img + len_off + 2, guid, 16);
	*pos += n + 18;
	return len_off;
}

void fwimg_build(uint8_t *img)
{
	uint8_t d[8], *h;
	size_t table_len = 22 + 26 + 22 + 22 + 24 + 18, pos = FWIMG_TABLE_END - table_len;

	for (size_t i = 0; i < FWIMG_SIZE; i++)
		img[i] = (uint8_t)(i * 7 + (i >> 12) + 1);
	h = img + FWIMG_SEV_META;
	memcpy(h, "ASEV", 4);
	fwimg_put32(h + 4, 16 + 12 * FWIMG_SEV_SECTIONS);
	fwimg_put32(h + 8, 1);
	fwimg_put32(h + 12, FWIMG_SEV_SECTIONS);
	for (int i = 0; i < FWIMG_SEV_SECTIONS; i++)
		for (int f = 0; f < 3; f++)
			fwimg_put32(h + 16 + 12 * i + 4 * f, sev_sections[i][f]);
	h = img + FWIMG_TDX_META;
	memcpy(h, "TDVF", 4);
	fwimg_put32(h + 4, 16 + 32 * FWIMG_TDX_SECTIONS);
	fwimg_put32(h + 8, 1);
	fwimg_put32(h + 12, FWIMG_TDX_SECTIONS);
	for (int i = 0; i < FWIMG_TDX_SECTIONS; i++) {
		uint8_t *p = h + 16 + 32 * i;

		fwimg_put32(p, tdx_sections[i].off);
		fwimg_put32(p + 4, tdx_sections[i].raw);
		fwimg_put64(p + 8, tdx_sections[i].gpa);
		fwimg_put64(p + 16, tdx_sections[i].size);
		fwimg_put32(p + 24, tdx_sections[i].type);
		fwimg_put32(p + 28, tdx_sections[i].attr);
	}
	fwimg_put32(d, FWIMG_AP_EIP);
	fwimg_entry_len_off[FWIMG_E_RESET] = entry(img, &pos, d, 4, g_reset);
	fwimg_put32(d, 0x805100);                      /* hash table base, size */
	fwimg_put32(d + 4, 0x400);
	fwimg_entry_len_off[FWIMG_E_HASH] = entry(img, &pos, d, 8, g_hash);
	fwimg_put32(d, FWIMG_SIZE - FWIMG_SEV_META);
	fwimg_entry_len_off[FWIMG_E_SEV] = entry(img, &pos, d, 4, g_sev);
	fwimg_put32(d, FWIMG_SIZE - FWIMG_TDX_META);
	fwimg_entry_len_off[FWIMG_E_TDX] = entry(img, &pos, d, 4, g_tdx);
	fwimg_entry_len_off[FWIMG_E_UNKNOWN] = entry(img, &pos, "\x55\x66\x77\x88\x99\xaa", 6, g_unknown);
	fwimg_put16(img + pos, (uint16_t)table_len);   /* the footer: no data */
	memcpy(img + pos + 2, g_footer, 16);
}

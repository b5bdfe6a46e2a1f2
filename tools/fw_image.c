/* SPDX-License-Identifier: MIT */
/*
 * The OVMF image parser (fw_image.h). Reads go through rd16/rd32/rd64 at
 * offsets already checked against the image's size; each check says in
 * its message what was out of bounds, so that a user with a broken image
 * (or the fuzzer) sees where.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "fw_image.h"

#define FOUR_GIB        (1ULL << 32)
#define TABLE_END_GAP   0x20u     /* the reset vector area after the GUID table */
#define ENTRY_HDR       18u       /* u16 length + GUID */
#define SEV_HDR         16u       /* "ASEV", length, version, count */
#define SEV_SECTION     12u
#define TDX_HDR         16u       /* "TDVF", length, version, count */
#define TDX_SECTION     32u
#define TDX_GPA_LIMIT   (1ULL << 52)

/* A GUID as written (canonical fields); in the image, in EFI byte order:
 * the first three fields little endian, the last 8 bytes as they are. */
struct guid { uint32_t d1; uint16_t d2, d3; uint8_t d4[8]; };

static const struct guid footer_guid =
	{ 0x96b582de, 0x1fb2, 0x45f7, { 0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d } };
static const struct guid reset_block_guid =
	{ 0x00f771de, 0x1a7e, 0x4fcb, { 0x89, 0x0e, 0x68, 0xc7, 0x7e, 0x2f, 0xb4, 0x4e } };
static const struct guid sev_meta_guid =
	{ 0xdc886566, 0x984a, 0x4798, { 0xa7, 0x5e, 0x55, 0x85, 0xa7, 0xbf, 0x67, 0xcc } };
static const struct guid hash_table_guid =
	{ 0x7255371f, 0x3a3b, 0x4b04, { 0x92, 0x7b, 0x1d, 0xa6, 0xef, 0xa8, 0xd4, 0x54 } };
static const struct guid tdx_meta_guid =
	{ 0xe47a6535, 0x984a, 0x4798, { 0x86, 0x5e, 0x46, 0x85, 0xa7, 0xbf, 0x8e, 0xc2 } };

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)rd16(p) | (uint32_t)rd16(p + 2) << 16; }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

static bool guid_at(const uint8_t *p, const struct guid *g)
{
	return rd32(p) == g->d1 && rd16(p + 4) == g->d2 && rd16(p + 6) == g->d3 &&
	       !memcmp(p + 8, g->d4, 8);
}

__attribute__((format(printf, 2, 3)))
static int bad(char *err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, FW_ERR_LEN, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

const char *fw_sev_type_name(uint32_t type)
{
	switch (type) {
	case FW_SEV_SEC_MEM: return "SNP_SEC_MEM";
	case FW_SEV_SECRETS: return "SNP_SECRETS";
	case FW_SEV_CPUID: return "CPUID";
	case FW_SEV_SVSM_CAA: return "SVSM_CAA";
	case FW_SEV_KERNEL_HASHES: return "SNP_KERNEL_HASHES";
	default: return NULL;
	}
}

const char *fw_tdx_type_name(uint32_t type)
{
	static const char *const names[FW_TDX_NR_TYPES] = {
		"BFV", "CFV", "TD_HOB", "TempMem", "PermMem", "Payload", "PayloadParam",
	};

	return type < FW_TDX_NR_TYPES ? names[type] : NULL;
}

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* ---- SEV metadata ---- */

static int sev_section_check(const struct fw_image *img, unsigned int i, char *err)
{
	const struct fw_sev_section *s = &img->sev[i];
	const char *name = fw_sev_type_name(s->type);

	if (!name)
		return bad(err, "SEV metadata section %u: unknown type 0x%x", i, s->type);
	if (!s->size || s->gpa % FW_PAGE || s->size % FW_PAGE)
		return bad(err, "SEV metadata section %u (%s): gpa 0x%x size 0x%x not whole pages", i,
			   name, s->gpa, s->size);
	if ((uint64_t)s->gpa + s->size > FOUR_GIB)
		return bad(err, "SEV metadata section %u (%s): gpa 0x%x size 0x%x beyond 4 GiB", i,
			   name, s->gpa, s->size);
	if ((s->type == FW_SEV_SECRETS || s->type == FW_SEV_CPUID || s->type == FW_SEV_KERNEL_HASHES) &&
	    s->size != FW_PAGE)
		return bad(err, "SEV metadata section %u (%s): size 0x%x, must be one page", i, name,
			   s->size);
	if (ranges_overlap(s->gpa, s->size, img->gpa, img->size))
		return bad(err, "SEV metadata section %u (%s): gpa 0x%x size 0x%x overlaps the "
			   "firmware image at 0x%llx", i, name, s->gpa, s->size,
			   (unsigned long long)img->gpa);
	for (unsigned int j = 0; j < i; j++)
		if (ranges_overlap(s->gpa, s->size, img->sev[j].gpa, img->sev[j].size))
			return bad(err, "SEV metadata sections %u and %u overlap (gpa 0x%x and 0x%x)", j,
				   i, img->sev[j].gpa, s->gpa);
	return 0;
}

static int parse_sev(struct fw_image *img, const uint8_t *entry, size_t len, char *err)
{
	uint32_t off, length, version, n;
	uint64_t total = 0;
	const uint8_t *h;

	if (len < 4)
		return bad(err, "SEV metadata GUID entry: %zu data bytes, need 4", len);
	off = rd32(entry);
	if (off < SEV_HDR || off > img->size)
		return bad(err, "SEV metadata offset 0x%x from the end: outside the image (size 0x%zx)",
			   off, img->size);
	h = img->data + img->size - off;
	length = rd32(h + 4);
	version = rd32(h + 8);
	n = rd32(h + 12);
	if (memcmp(h, "ASEV", 4))
		return bad(err, "SEV metadata at file offset 0x%zx: no \"ASEV\" signature",
			   img->size - off);
	if (version != 1)
		return bad(err, "SEV metadata: version %u, only 1 is known", version);
	if (n > FW_MAX_SECTIONS)
		return bad(err, "SEV metadata: %u sections, at most %d", n, FW_MAX_SECTIONS);
	if (length != SEV_HDR + n * SEV_SECTION || length > off)
		return bad(err, "SEV metadata: length %u does not fit %u sections inside the image",
			   length, n);
	img->nr_sev = n;
	for (unsigned int i = 0; i < n; i++) {
		const uint8_t *p = h + SEV_HDR + i * SEV_SECTION;
		int r;

		img->sev[i] = (struct fw_sev_section){ rd32(p), rd32(p + 4), rd32(p + 8) };
		r = sev_section_check(img, i, err);
		if (r)
			return r;
		total += img->sev[i].size;
	}
	if (total > FW_MAX_LAUNCH_MEM)
		return bad(err, "SEV metadata: sections of %llu MiB in all, at most %u MiB",
			   (unsigned long long)(total >> 20), FW_MAX_LAUNCH_MEM >> 20);
	img->has_sev = true;
	return 0;
}

/* ---- TDX metadata ---- */

static int tdx_section_check(const struct fw_image *img, unsigned int i, char *err)
{
	const struct fw_tdx_section *s = &img->tdx[i];
	const char *name = fw_tdx_type_name(s->type);
	bool from_file = s->type == FW_TDX_BFV || s->type == FW_TDX_CFV;

	if (!name)
		return bad(err, "TDX metadata section %u: unknown type %u", i, s->type);
	if (s->attributes & ~(FW_TDX_MR_EXTEND | FW_TDX_PAGE_AUG))
		return bad(err, "TDX metadata section %u (%s): unknown attributes 0x%x", i, name,
			   s->attributes);
	if (!s->mem_size || s->gpa % FW_PAGE || s->mem_size % FW_PAGE)
		return bad(err, "TDX metadata section %u (%s): gpa 0x%llx size 0x%llx not whole pages",
			   i, name, (unsigned long long)s->gpa, (unsigned long long)s->mem_size);
	if (s->gpa >= TDX_GPA_LIMIT || s->mem_size > TDX_GPA_LIMIT - s->gpa)
		return bad(err, "TDX metadata section %u (%s): gpa 0x%llx size 0x%llx beyond 52 bits",
			   i, name, (unsigned long long)s->gpa, (unsigned long long)s->mem_size);
	if ((uint64_t)s->data_offset + s->raw_size > img->size)
		return bad(err, "TDX metadata section %u (%s): data at 0x%x size 0x%x beyond the image "
			   "(size 0x%zx)", i, name, s->data_offset, s->raw_size, img->size);
	if (s->raw_size > s->mem_size)
		return bad(err, "TDX metadata section %u (%s): raw size 0x%x larger than its memory "
			   "0x%llx", i, name, s->raw_size, (unsigned long long)s->mem_size);
	if (from_file && !s->raw_size)
		return bad(err, "TDX metadata section %u (%s): no data in the image", i, name);
	if (!from_file && s->type < FW_TDX_PAYLOAD && (s->raw_size || s->data_offset))
		return bad(err, "TDX metadata section %u (%s): memory only, but has data in the image",
			   i, name);
	for (unsigned int j = 0; j < i; j++)
		if (ranges_overlap(s->gpa, s->mem_size, img->tdx[j].gpa, img->tdx[j].mem_size))
			return bad(err, "TDX metadata sections %u and %u overlap (gpa 0x%llx and 0x%llx)",
				   j, i, (unsigned long long)img->tdx[j].gpa, (unsigned long long)s->gpa);
	return 0;
}

static int parse_tdx(struct fw_image *img, const uint8_t *entry, size_t len, char *err)
{
	uint32_t off, length, version, n;
	uint64_t total = 0;
	const uint8_t *h;

	if (len < 4)
		return bad(err, "TDX metadata GUID entry: %zu data bytes, need 4", len);
	off = rd32(entry);
	if (off < TDX_HDR || off > img->size)
		return bad(err, "TDX metadata offset 0x%x from the end: outside the image (size 0x%zx)",
			   off, img->size);
	h = img->data + img->size - off;
	length = rd32(h + 4);
	version = rd32(h + 8);
	n = rd32(h + 12);
	if (memcmp(h, "TDVF", 4))
		return bad(err, "TDX metadata at file offset 0x%zx: no \"TDVF\" signature",
			   img->size - off);
	if (version != 1)
		return bad(err, "TDX metadata: version %u, only 1 is known", version);
	if (n > FW_MAX_SECTIONS)
		return bad(err, "TDX metadata: %u sections, at most %d", n, FW_MAX_SECTIONS);
	if (length != TDX_HDR + n * TDX_SECTION || length > off)
		return bad(err, "TDX metadata: length %u does not fit %u sections inside the image",
			   length, n);
	img->nr_tdx = n;
	for (unsigned int i = 0; i < n; i++) {
		const uint8_t *p = h + TDX_HDR + i * TDX_SECTION;
		int r;

		img->tdx[i] = (struct fw_tdx_section){
			.data_offset = rd32(p), .raw_size = rd32(p + 4), .gpa = rd64(p + 8),
			.mem_size = rd64(p + 16), .type = rd32(p + 24), .attributes = rd32(p + 28),
		};
		r = tdx_section_check(img, i, err);
		if (r)
			return r;
		if (!(img->tdx[i].attributes & FW_TDX_PAGE_AUG))
			total += img->tdx[i].mem_size;   /* each < 2^52: no overflow */
	}
	if (total > FW_MAX_LAUNCH_MEM)
		return bad(err, "TDX metadata: sections added at build of %llu MiB in all, at most %u MiB",
			   (unsigned long long)(total >> 20), FW_MAX_LAUNCH_MEM >> 20);
	img->has_tdx = true;
	return 0;
}

/* ---- the GUID table ---- */

static int parse_entry(struct fw_image *img, const uint8_t *g, const uint8_t *data, size_t len,
		       size_t at, char *err)
{
	bool dup = false;

	if (guid_at(g, &reset_block_guid)) {
		if (len < 4)
			return bad(err, "SEV-ES reset block GUID entry: %zu data bytes, need 4", len);
		dup = img->has_reset_block;
		img->has_reset_block = true;
		img->ap_reset_eip = rd32(data);
	} else if (guid_at(g, &hash_table_guid)) {
		if (len < 8)
			return bad(err, "SEV hash table GUID entry: %zu data bytes, need 8", len);
		dup = img->has_hash_table;
		img->has_hash_table = true;
		img->hash_base = rd32(data);
		img->hash_size = rd32(data + 4);
	} else if (guid_at(g, &sev_meta_guid)) {
		if (img->has_sev)
			dup = true;
		else
			return parse_sev(img, data, len, err);
	} else if (guid_at(g, &tdx_meta_guid)) {
		if (img->has_tdx)
			dup = true;
		else
			return parse_tdx(img, data, len, err);
	}
	if (dup)
		return bad(err, "GUID table: a second entry with the same GUID at file offset 0x%zx", at);
	return 0;
}

int fw_image_parse(struct fw_image *img, const void *data, size_t size, char *err)
{
	const uint8_t *d = data;
	size_t end, start, pos, len;

	memset(img, 0, sizeof(*img));
	img->data = d;
	img->size = size;
	if (size < FW_PAGE || size % FW_PAGE || size > FW_MAX_SIZE)
		return bad(err, "image size %zu: not a whole number of 4 KiB pages between 4 KiB and "
			   "%u MiB", size, FW_MAX_SIZE >> 20);
	img->gpa = FOUR_GIB - size;
	end = size - TABLE_END_GAP;
	if (!guid_at(d + end - 16, &footer_guid))
		return bad(err, "no OVMF GUID table: the footer GUID is not at file offset 0x%zx",
			   end - 16);
	len = rd16(d + end - ENTRY_HDR);
	if (len < ENTRY_HDR || len > end)
		return bad(err, "GUID table length %zu: out of bounds", len);
	start = end - len;
	for (pos = end - ENTRY_HDR; pos > start; ) {
		size_t left = pos - start, elen;
		int r;

		if (left < ENTRY_HDR)
			return bad(err, "GUID table: %zu bytes at file offset 0x%zx are no entry", left,
				   start);
		elen = rd16(d + pos - ENTRY_HDR);
		if (elen < ENTRY_HDR || elen > left)
			return bad(err, "GUID table entry ending at file offset 0x%zx: length %zu out of "
				   "bounds", pos, elen);
		r = parse_entry(img, d + pos - 16, d + pos - elen, elen - ENTRY_HDR, pos - elen, err);
		if (r)
			return r;
		pos -= elen;
	}
	return 0;
}

int fw_image_read(const char *path, uint8_t **data, size_t *size, char *err)
{
	FILE *f = fopen(path, "rb");
	struct stat st;
	uint8_t *buf = NULL;
	int r;

	if (!f) {
		r = -errno;
		snprintf(err, FW_ERR_LEN, "%s: %s", path, strerror(errno));
		return r;
	}
	if (fstat(fileno(f), &st)) {
		r = -errno;
		snprintf(err, FW_ERR_LEN, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > FW_MAX_SIZE) {
		r = bad(err, "%s: not a regular file of at most %u MiB", path, FW_MAX_SIZE >> 20);
		goto out;
	}
	/* Page aligned: a VMM hands the pages to KVM as they are. */
	if (posix_memalign((void **)&buf, FW_PAGE, st.st_size ? (size_t)st.st_size : 1))
		buf = NULL;
	if (!buf) {
		r = -ENOMEM;
		snprintf(err, FW_ERR_LEN, "%s: out of memory", path);
		goto out;
	}
	if (fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
		r = -EIO;
		snprintf(err, FW_ERR_LEN, "%s: short read", path);
		free(buf);
		goto out;
	}
	*data = buf;
	*size = (size_t)st.st_size;
	r = 0;
out:
	fclose(f);
	return r;
}

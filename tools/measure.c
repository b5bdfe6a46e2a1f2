/* SPDX-License-Identifier: MIT */
/*
 * Offline launch measurements (measure.h). The SNP digest steps through
 * the simulated PSP's own PAGE_INFO step (psp_measure_page) and VMSA layout
 * (snp_vmsa_build): `privmem measure` and `privmem run --firmware` agree
 * by construction on those, and the tests check both against an
 * independent implementation (tests/measure_ref.py).
 */
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include "models/snp/psp.h"
#include "models/snp/vmsa.h"
#include "measure.h"

__attribute__((format(printf, 2, 3)))
static int refuse(char *err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, FW_ERR_LEN, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* ---- vCPU types ---- */

/* CPUID leaf 1 EAX: stepping 3:0, model 7:4, family 11:8, extended model
 * 19:16, extended family 27:20 (family 0xF + extended family). */
#define CPU_SIG(family, model, stepping)                                                   \
	((uint32_t)(((family) > 0xf ? ((family) - 0xf) & 0xff : 0) << 20 |                 \
		    (((model) >> 4) & 0xf) << 16 | ((family) > 0xf ? 0xf : (family)) << 8 | \
		    ((model) & 0xf) << 4 | ((stepping) & 0xf)))

static const struct { const char *name; uint32_t sig; } vcpu_types[] = {
	{ "EPYC", CPU_SIG(23, 1, 2) },        { "EPYC-v1", CPU_SIG(23, 1, 2) },
	{ "EPYC-v2", CPU_SIG(23, 1, 2) },     { "EPYC-v3", CPU_SIG(23, 1, 2) },
	{ "EPYC-v4", CPU_SIG(23, 1, 2) },     { "EPYC-IBPB", CPU_SIG(23, 1, 2) },
	{ "EPYC-Rome", CPU_SIG(23, 49, 0) },  { "EPYC-Rome-v1", CPU_SIG(23, 49, 0) },
	{ "EPYC-Rome-v2", CPU_SIG(23, 49, 0) }, { "EPYC-Rome-v3", CPU_SIG(23, 49, 0) },
	{ "EPYC-Rome-v4", CPU_SIG(23, 49, 0) }, { "EPYC-Milan", CPU_SIG(25, 1, 1) },
	{ "EPYC-Milan-v1", CPU_SIG(25, 1, 1) }, { "EPYC-Milan-v2", CPU_SIG(25, 1, 1) },
	{ "EPYC-Genoa", CPU_SIG(25, 17, 0) }, { "EPYC-Genoa-v1", CPU_SIG(25, 17, 0) },
};

int measure_vcpu_sig(const char *name, uint32_t *sig)
{
	for (size_t i = 0; i < sizeof(vcpu_types) / sizeof(vcpu_types[0]); i++)
		if (!strcmp(name, vcpu_types[i].name)) {
			*sig = vcpu_types[i].sig;
			return 0;
		}
	return -EINVAL;
}

void measure_vcpu_types(FILE *out)
{
	size_t col = 24;

	fprintf(out, "%24s", "");
	for (size_t i = 0; i < sizeof(vcpu_types) / sizeof(vcpu_types[0]); i++) {
		size_t len = strlen(vcpu_types[i].name) + 2;

		if (i && col + len > 78) {
			fprintf(out, ",\n%24s", "");
			col = 24;
		} else if (i) {
			fprintf(out, ", ");
		}
		fprintf(out, "%s", vcpu_types[i].name);
		col += len;
	}
}

/* ---- SEV-SNP ---- */

/* QEMU's x86 reset state (CS 0xF000 with base eip & 0xFFFF0000, IP the low
 * 16 bits; EDX the CPU signature; PAT, DR6, DR7, XCR0, MXCSR, FCW at their
 * reset values) as KVM's VMCB holds it (EFER.SVME, CR0 = ET without CD and
 * NW, CR4.MCE). */
void measure_snp_reset_state(uint32_t eip, uint32_t vcpu_sig, uint64_t guest_features,
			     struct snp_vmsa_state *s)
{
	const struct snp_vmsa_seg data = { 0, 0x93, 0xffff, 0 };

	memset(s, 0, sizeof(*s));
	for (int i = SNP_SEG_ES; i <= SNP_SEG_GS; i++)
		s->seg[i] = data;
	s->seg[SNP_SEG_CS] = (struct snp_vmsa_seg){ 0xf000, 0x9b, 0xffff, eip & 0xffff0000u };
	s->seg[SNP_SEG_GDTR] = (struct snp_vmsa_seg){ 0, 0, 0xffff, 0 };
	s->seg[SNP_SEG_IDTR] = (struct snp_vmsa_seg){ 0, 0, 0xffff, 0 };
	s->seg[SNP_SEG_LDTR] = (struct snp_vmsa_seg){ 0, 0x82, 0xffff, 0 };
	s->seg[SNP_SEG_TR] = (struct snp_vmsa_seg){ 0, 0x8b, 0xffff, 0 };
	s->efer = 0x1000;
	s->cr4 = 0x40;
	s->cr0 = 0x10;
	s->dr7 = 0x400;
	s->dr6 = 0xffff0ff0;
	s->rflags = 0x2;
	s->rip = eip & 0xffff;
	s->g_pat = 0x0007040600070406ULL;
	s->gpr[2] = vcpu_sig;                 /* RDX */
	s->sev_features = guest_features;
	s->xcr0 = 1;
	s->mxcsr = 0x1f80;
	s->x87_fcw = 0x37f;
}

/* QEMU's SEV hash table: {GUID, u16 length, then for the command line, the
 * initrd and the kernel: {GUID, u16 length 50, SHA-256}}, 168 bytes,
 * padded with zeros to 16-byte alignment (176). */
#define HASH_ENTRY   50
#define HASH_TABLE   (18 + 3 * HASH_ENTRY)
#define HASH_PADDED  ((HASH_TABLE + 15) & ~15)

static const uint8_t qemu_table_guid[16] = {   /* 9438d606-4f22-4cc9-b479-a793d411fd21 */
	0x06, 0xd6, 0x38, 0x94, 0x22, 0x4f, 0xc9, 0x4c,
	0xb4, 0x79, 0xa7, 0x93, 0xd4, 0x11, 0xfd, 0x21 };
static const uint8_t hash_guids[3][16] = {
	/* 97d02dd8-bd20-4c94-aa78-e7714d36ab2a: the command line */
	{ 0xd8, 0x2d, 0xd0, 0x97, 0x20, 0xbd, 0x94, 0x4c,
	  0xaa, 0x78, 0xe7, 0x71, 0x4d, 0x36, 0xab, 0x2a },
	/* 44baf731-3a2f-4bd7-9af1-41e29169781d: the initrd */
	{ 0x31, 0xf7, 0xba, 0x44, 0x2f, 0x3a, 0xd7, 0x4b,
	  0x9a, 0xf1, 0x41, 0xe2, 0x91, 0x69, 0x78, 0x1d },
	/* 4de79437-abd2-427f-b835-d5b172d2045b: the kernel */
	{ 0x37, 0x94, 0xe7, 0x4d, 0xd2, 0xab, 0x7f, 0x42,
	  0xb8, 0x35, 0xd5, 0xb1, 0x72, 0xd2, 0x04, 0x5b },
};

int measure_kernel_hashes_page(const struct fw_image *img, const struct measure_kernel_hashes *h,
			       uint8_t page[FW_PAGE], char *err)
{
	const uint8_t *hashes[3] = { h->cmdline, h->initrd, h->kernel };
	uint32_t off = img->hash_base % FW_PAGE;
	uint8_t *t = page + off;

	if (!img->has_hash_table || !img->hash_base || img->hash_size < HASH_PADDED ||
	    off + HASH_PADDED > FW_PAGE)
		return refuse(err, "the firmware's SEV hash table area (base 0x%x, size 0x%x) cannot hold "
			   "the kernel hashes (%d bytes in one page)", img->hash_base, img->hash_size,
			   HASH_PADDED);
	memset(page, 0, FW_PAGE);
	memcpy(t, qemu_table_guid, 16);
	t[16] = HASH_TABLE & 0xff;
	t[17] = HASH_TABLE >> 8;
	for (int i = 0; i < 3; i++) {
		uint8_t *e = t + 18 + i * HASH_ENTRY;

		memcpy(e, hash_guids[i], 16);
		e[16] = HASH_ENTRY;
		e[17] = 0;
		memcpy(e + 18, hashes[i], 32);
	}
	return 0;
}

static bool has_sev_section(const struct fw_image *img, uint32_t type)
{
	for (unsigned int i = 0; i < img->nr_sev; i++)
		if (img->sev[i].type == type)
			return true;
	return false;
}

static void measure_range(uint8_t digest[48], uint64_t gpa, uint64_t size, uint8_t type,
			  const uint8_t *content)
{
	static const uint8_t zero[FW_PAGE];

	for (uint64_t p = 0; p < size; p += FW_PAGE)
		psp_measure_page(digest, content ? content + p : zero, type, gpa + p);
}

static int snp_check(const struct fw_image *img, const struct measure_snp_opts *o, char *err)
{
	if (!img->has_sev)
		return refuse(err, "the firmware has no SEV metadata (GUID dc886566-984a-4798-a75e-"
			   "5585a7bf67cc): it is not built for SEV-SNP");
	if (!o->vcpus || o->vcpus > MEASURE_MAX_VCPUS)
		return refuse(err, "%u vCPUs: 1 to %d", o->vcpus, MEASURE_MAX_VCPUS);
	if (o->vcpus > 1 && !img->has_reset_block)
		return refuse(err, "the firmware has no SEV-ES reset block: its APs have no reset vector");
	if (o->kernel && !has_sev_section(img, FW_SEV_KERNEL_HASHES))
		return refuse(err, "a kernel was given, but the firmware's SEV metadata has no "
			   "SNP_KERNEL_HASHES section (it cannot boot a measured kernel)");
	return 0;
}

int measure_snp(const struct fw_image *img, const struct measure_snp_opts *o,
		uint8_t digest[MEASURE_DIGEST_SIZE], char *err)
{
	uint8_t page[FW_PAGE];
	struct snp_vmsa_state vmsa;
	int r = snp_check(img, o, err);

	if (r)
		return r;
	memset(digest, 0, MEASURE_DIGEST_SIZE);
	measure_range(digest, img->gpa, img->size, PSP_PAGE_NORMAL, img->data);
	for (unsigned int i = 0; i < img->nr_sev; i++) {
		const struct fw_sev_section *s = &img->sev[i];

		switch (s->type) {
		case FW_SEV_SECRETS:
			measure_range(digest, s->gpa, s->size, PSP_PAGE_SECRETS, NULL);
			break;
		case FW_SEV_CPUID:
			measure_range(digest, s->gpa, s->size, PSP_PAGE_CPUID, NULL);
			break;
		case FW_SEV_KERNEL_HASHES:
			if (!o->kernel) {               /* no kernel: ZERO pages */
				measure_range(digest, s->gpa, s->size, PSP_PAGE_ZERO, NULL);
				break;
			}
			r = measure_kernel_hashes_page(img, o->kernel, page, err);
			if (r)
				return r;
			measure_range(digest, s->gpa, s->size, PSP_PAGE_NORMAL, page);
			break;
		default:                        /* SNP_SEC_MEM, SVSM_CAA */
			measure_range(digest, s->gpa, s->size, PSP_PAGE_ZERO, NULL);
			break;
		}
	}
	for (unsigned int v = 0; v < o->vcpus; v++) {
		measure_snp_reset_state(v ? img->ap_reset_eip : MEASURE_BSP_EIP, o->vcpu_sig,
					o->guest_features, &vmsa);
		snp_vmsa_build(page, &vmsa);
		psp_measure_page(digest, page, PSP_PAGE_VMSA, MEASURE_VMSA_GPA);
	}
	return 0;
}

/* ---- TDX ---- */

/* The TDX module's MRTD records: 128 bytes {tag zero-padded to 16, GPA
 * u64 LE, 104 zeros}, then for MR.EXTEND the 256 bytes of content. */
static void mr_record(EVP_MD_CTX *ctx, const char *tag, uint64_t gpa, const uint8_t *chunk)
{
	uint8_t head[128] = { 0 };

	memcpy(head, tag, strlen(tag));
	for (int i = 0; i < 8; i++)
		head[16 + i] = (uint8_t)(gpa >> (8 * i));
	EVP_DigestUpdate(ctx, head, sizeof(head));
	if (chunk)
		EVP_DigestUpdate(ctx, chunk, 256);
}

/* Page p of section s: the image's bytes where it has raw data, else zero. */
static const uint8_t *tdx_page(const struct fw_image *img, const struct fw_tdx_section *s,
			       uint64_t p, uint8_t buf[FW_PAGE])
{
	uint64_t left = s->raw_size > p ? s->raw_size - p : 0;

	if (left >= FW_PAGE)
		return img->data + s->data_offset + p;
	memset(buf, 0, FW_PAGE);
	if (left)
		memcpy(buf, img->data + s->data_offset + p, left);
	return buf;
}

static void tdx_extend_page(EVP_MD_CTX *ctx, uint64_t gpa, const uint8_t *page)
{
	for (unsigned int c = 0; c < FW_PAGE; c += 256)
		mr_record(ctx, "MR.EXTEND", gpa + c, page + c);
}

static void tdx_section(EVP_MD_CTX *ctx, const struct fw_image *img, const struct fw_tdx_section *s,
			enum measure_tdx_order order)
{
	bool extend = s->attributes & FW_TDX_MR_EXTEND;
	uint8_t buf[FW_PAGE];

	for (uint64_t p = 0; p < s->mem_size; p += FW_PAGE) {
		mr_record(ctx, "MEM.PAGE.ADD", s->gpa + p, NULL);
		if (extend && order == MEASURE_TDX_INTERLEAVED)
			tdx_extend_page(ctx, s->gpa + p, tdx_page(img, s, p, buf));
	}
	if (extend && order == MEASURE_TDX_ADD_THEN_EXTEND)
		for (uint64_t p = 0; p < s->mem_size; p += FW_PAGE)
			tdx_extend_page(ctx, s->gpa + p, tdx_page(img, s, p, buf));
}

int measure_tdx(const struct fw_image *img, enum measure_tdx_order order,
		uint8_t mrtd[MEASURE_DIGEST_SIZE], char *err)
{
	EVP_MD_CTX *ctx;
	unsigned int len = 0;

	if (!img->has_tdx)
		return refuse(err, "the firmware has no TDX metadata (GUID e47a6535-984a-4798-865e-"
			   "4685a7bf8ec2): it is not built for TDX");
	for (unsigned int i = 0; i < img->nr_tdx; i++)
		if (img->tdx[i].type >= FW_TDX_PAYLOAD && !(img->tdx[i].attributes & FW_TDX_PAGE_AUG))
			return refuse(err, "TDX metadata section %u (%s): a payload section needs a "
				   "payload, which privmem does not load", i,
				   fw_tdx_type_name(img->tdx[i].type));
	ctx = EVP_MD_CTX_new();
	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha384(), NULL) != 1) {
		EVP_MD_CTX_free(ctx);
		snprintf(err, FW_ERR_LEN, "out of memory for SHA-384");
		return -ENOMEM;
	}
	for (unsigned int i = 0; i < img->nr_tdx; i++)
		if (!(img->tdx[i].attributes & FW_TDX_PAGE_AUG))
			tdx_section(ctx, img, &img->tdx[i], order);
	EVP_DigestFinal_ex(ctx, mrtd, &len);
	EVP_MD_CTX_free(ctx);
	return 0;
}

/* ---- files ---- */

int measure_sha256_file(const char *path, uint8_t out[32], char *err)
{
	uint8_t buf[65536];
	EVP_MD_CTX *ctx;
	unsigned int len = 0;
	size_t n;
	FILE *f;
	int r = 0;

	if (!path) {
		SHA256((const uint8_t *)"", 0, out);
		return 0;
	}
	f = fopen(path, "rb");
	if (!f) {
		r = -errno;
		snprintf(err, FW_ERR_LEN, "%s: %s", path, strerror(errno));
		return r;
	}
	ctx = EVP_MD_CTX_new();
	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		r = -ENOMEM;
		snprintf(err, FW_ERR_LEN, "out of memory for SHA-256");
		goto out;
	}
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		EVP_DigestUpdate(ctx, buf, n);
	if (ferror(f)) {
		r = -EIO;
		snprintf(err, FW_ERR_LEN, "%s: read error", path);
		goto out;
	}
	EVP_DigestFinal_ex(ctx, out, &len);
out:
	EVP_MD_CTX_free(ctx);
	fclose(f);
	return r;
}

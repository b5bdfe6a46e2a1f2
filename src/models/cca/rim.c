/* SPDX-License-Identifier: MIT */
/*
 * The RIM's descriptors and hashes (rim.h). Each descriptor is built in a
 * zeroed buffer at the offsets of cca-rim.md (integers little-endian, as
 * on Arm and x86 alike), so padding and reserved bytes are zero.
 */
#include <string.h>
#include <openssl/evp.h>
#include "lib/common.h"
#include "models/cca/rim.h"

#define REALM_PARAMS_SIZE 4096
#define REC_PARAMS_SIZE   4096

size_t rim_hash_size(unsigned int algo)
{
	switch (algo) {
	case RMI_HASH_SHA_256:
		return 32;
	case RMI_HASH_SHA_512:
		return 64;
	default:
		return 0;
	}
}

void rim_hash(unsigned int algo, const void *data, size_t len, uint8_t out[RIM_MAX_SIZE])
{
	const EVP_MD *md = algo == RMI_HASH_SHA_512 ? EVP_sha512() : EVP_sha256();
	unsigned int n = 0;

	PM_BUG_ON(!rim_hash_size(algo));
	memset(out, 0, RIM_MAX_SIZE);
	PM_BUG_ON(EVP_Digest(data, len, out, &n, md, NULL) != 1 || n != rim_hash_size(algo));
}

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

void rim_realm_params(const struct rim_realm_params *p, uint8_t rim[RIM_MAX_SIZE])
{
	static _Thread_local uint8_t buf[REALM_PARAMS_SIZE];

	memset(buf, 0, sizeof(buf));
	put_u64(buf + 0x00, p->flags);
	put_u32(buf + 0x08, p->s2sz);          /* u32 fields in 8-byte slots */
	put_u32(buf + 0x10, p->sve_vl);
	put_u32(buf + 0x18, p->num_bps);
	put_u32(buf + 0x20, p->num_wps);
	put_u32(buf + 0x28, p->pmu_num_ctrs);
	buf[0x30] = p->algorithm;
	rim_hash(p->algorithm, buf, sizeof(buf), rim);
}

/* The descriptor header shared by every type: type, length, the RIM. */
static void desc_head(uint8_t d[RIM_DESC_SIZE], unsigned int type, const uint8_t rim[RIM_MAX_SIZE],
		      unsigned int algo)
{
	memset(d, 0, RIM_DESC_SIZE);
	d[0x00] = (uint8_t)type;
	put_u64(d + 0x08, RIM_DESC_SIZE);
	memcpy(d + 0x10, rim, rim_hash_size(algo));
}

void rim_extend_data(unsigned int algo, uint8_t rim[RIM_MAX_SIZE], uint64_t ipa, uint64_t flags,
		     const void *content)
{
	uint8_t d[RIM_DESC_SIZE], h[RIM_MAX_SIZE];

	desc_head(d, RIM_DESC_DATA, rim, algo);
	put_u64(d + 0x50, ipa);
	put_u64(d + 0x58, flags);
	if (flags == RMI_MEASURE_CONTENT) {
		rim_hash(algo, content, PM_PAGE_SIZE, h);
		memcpy(d + 0x60, h, rim_hash_size(algo));
	}
	rim_hash(algo, d, sizeof(d), rim);
}

void rim_extend_rec(unsigned int algo, uint8_t rim[RIM_MAX_SIZE], const struct rim_rec_params *p)
{
	static _Thread_local uint8_t r[REC_PARAMS_SIZE];
	uint8_t d[RIM_DESC_SIZE], h[RIM_MAX_SIZE];

	memset(r, 0, sizeof(r));
	put_u64(r + 0x000, p->flags);
	put_u64(r + 0x200, p->pc);
	for (int i = 0; i < 8; i++)
		put_u64(r + 0x300 + 8 * i, p->gprs[i]);
	rim_hash(algo, r, sizeof(r), h);
	desc_head(d, RIM_DESC_REC, rim, algo);
	memcpy(d + 0x50, h, rim_hash_size(algo));
	rim_hash(algo, d, sizeof(d), rim);
}

void rim_extend_ripas(unsigned int algo, uint8_t rim[RIM_MAX_SIZE], uint64_t base, uint64_t top)
{
	uint8_t d[RIM_DESC_SIZE];

	desc_head(d, RIM_DESC_RIPAS, rim, algo);
	put_u64(d + 0x50, base);
	put_u64(d + 0x58, top);
	rim_hash(algo, d, sizeof(d), rim);
}

void rim_ripas_blocks(uint64_t base, uint64_t top, void (*fn)(void *arg, uint64_t b, uint64_t t),
		      void *arg)
{
	static const uint64_t sizes[] = { 1ULL << 30, 1ULL << 21, 1ULL << 12 };

	while (base < top) {
		uint64_t size = PM_PAGE_SIZE;

		for (size_t i = 0; i < PM_ARRAY_SIZE(sizes); i++) {
			if (PM_ALIGNED(base, sizes[i]) && top - base >= sizes[i]) {
				size = sizes[i];
				break;
			}
		}
		fn(arg, base, base + size);
		base += size;
	}
}

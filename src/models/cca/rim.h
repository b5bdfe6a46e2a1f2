/* SPDX-License-Identifier: MIT */
/*
 * The Realm Initial Measurement (RIM) of Arm CCA, as RMM v1.0 computes it
 * (TF-RMM lib/measurement; layouts in shared/reference/cca-rim.md):
 *
 *   RIM0     = H(P)             P: a zeroed 4096-byte RmiRealmParams holding
 *                               only the measured fields (rim_realm_params)
 *   RIM_new  = H(descriptor)    one 256-byte descriptor per DATA_CREATE
 *                               granule (type 0), per runnable REC (type 1)
 *                               and, with the v1.0 rule, per RTT entry that
 *                               RTT_INIT_RIPAS made RAM (type 2); the
 *                               descriptor carries RIM_old at 0x10
 *
 * H is the realm's one algorithm: SHA-256 (RMI_HASH_SHA_256, 32 bytes) or
 * SHA-512 (RMI_HASH_SHA_512, 64 bytes), through OpenSSL. Measurement fields
 * are always 64 bytes; SHA-256 fills the first 32 and leaves zeroes.
 *
 * Pure functions with no state of their own: the RMM (rmi.c, rtt.c) calls
 * them on the RIM it keeps in the RD; `privmem measure realm` calls them on
 * a description of a realm's build.
 */
#ifndef PM_MODELS_CCA_RIM_H
#define PM_MODELS_CCA_RIM_H

#include <stddef.h>
#include <stdint.h>

#define RIM_MAX_SIZE        64       /* the measurement slot's size */
#define RMI_HASH_SHA_256    0
#define RMI_HASH_SHA_512    1

#define RIM_DESC_DATA       0
#define RIM_DESC_REC        1
#define RIM_DESC_RIPAS      2
#define RIM_DESC_SIZE       0x100

#define RMI_MEASURE_CONTENT     1    /* DATA_CREATE flags */
#define RMI_NO_MEASURE_CONTENT  0

#define RMI_REC_FLAG_RUNNABLE   1ULL

/* The realm parameters the RIM covers (RmiRealmParams' measured fields).
 * num_bps / num_wps hold the raw field (the count minus one; 0 is reserved). */
struct rim_realm_params {
	uint64_t flags;          /* bit0 LPA2, bit1 SVE, bit2 PMU */
	uint32_t s2sz;
	uint32_t sve_vl;
	uint32_t num_bps;
	uint32_t num_wps;
	uint32_t pmu_num_ctrs;
	uint8_t algorithm;       /* RMI_HASH_* */
};

/* The REC parameters the RIM covers (RmiRecParams' measured fields). */
struct rim_rec_params {
	uint64_t flags;          /* RMI_REC_FLAG_RUNNABLE */
	uint64_t pc;
	uint64_t gprs[8];
};

/* The digest size of algorithm algo, or 0 if it is not one of RMI_HASH_*. */
size_t rim_hash_size(unsigned int algo);
/* H(data) into out[RIM_MAX_SIZE] (zero-filled past the digest). */
void rim_hash(unsigned int algo, const void *data, size_t len, uint8_t out[RIM_MAX_SIZE]);

/* RIM0 from the realm parameters. */
void rim_realm_params(const struct rim_realm_params *p, uint8_t rim[RIM_MAX_SIZE]);
/* Extends rim with one DATA descriptor: the granule at ipa, flags as the
 * host passed them, content (4096 bytes) hashed only if flags is
 * RMI_MEASURE_CONTENT. */
void rim_extend_data(unsigned int algo, uint8_t rim[RIM_MAX_SIZE], uint64_t ipa, uint64_t flags,
		     const void *content);
/* Extends rim with one REC descriptor (callers measure only runnable RECs). */
void rim_extend_rec(unsigned int algo, uint8_t rim[RIM_MAX_SIZE], const struct rim_rec_params *p);
/* Extends rim with one RIPAS descriptor for the RTT entry [base, top). */
void rim_extend_ripas(unsigned int algo, uint8_t rim[RIM_MAX_SIZE], uint64_t base, uint64_t top);

/* The RTT entries RTT_INIT_RIPAS measures for [base, top) on fresh RTTs,
 * as KVM creates them (the largest block of 1G, 2M or 4K aligned at each
 * address that fits): calls fn(arg, base, top) per entry, in order. base
 * and top must be 4K aligned. */
void rim_ripas_blocks(uint64_t base, uint64_t top, void (*fn)(void *arg, uint64_t b, uint64_t t),
		      void *arg);

#endif

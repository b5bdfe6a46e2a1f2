/* SPDX-License-Identifier: MIT */
/*
 * SEV-SNP's launch digest for tests (see testutil.h): the PAGE_INFO chain
 * of the reference, laid out here by hand (see src/models/snp/psp.h), so
 * that a test's expected digest does not come from the code under test.
 */
#include <string.h>
#include <openssl/sha.h>
#include "testutil.h"

void pm_test_snp_page_info(uint8_t d[48], const uint8_t *page, uint8_t type, uint64_t gpa)
{
	uint8_t info[112] = { 0 };

	memcpy(info, d, 48);
	if (type == 1 || type == 2)
		SHA384(page, 4096, info + 48);
	info[96] = 0x70;
	info[98] = type;
	for (int i = 0; i < 8; i++)
		info[104 + i] = (uint8_t)(gpa >> (8 * i));
	SHA384(info, sizeof(info), d);
}

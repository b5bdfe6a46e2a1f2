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

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_seg(uint8_t *p, uint16_t sel, uint16_t attrib, uint32_t limit, uint64_t base)
{
	put_le(p, sel, 2);
	put_le(p + 2, attrib, 2);
	put_le(p + 4, limit, 4);
	put_le(p + 8, base, 8);
}

/* The VMSA KVM makes at LAUNCH_FINISH from a vCPU that the VMM left at
 * reset but for RIP, CS and RDX, laid out by hand at the save area's
 * offsets (AMD APM; Linux's struct sev_es_save_area): the real-mode
 * segments, EFER.SVME, CR4.MCE, CR0.ET (KVM clears CD and NW), DR6, DR7,
 * RFLAGS, G_PAT, XCR0, MXCSR and FCW at their reset values, SEV_FEATURES
 * = SNP active. */
void pm_test_snp_reset_vmsa(uint8_t page[4096], uint16_t cs_sel, uint64_t cs_base, uint64_t rip,
			    uint64_t rdx)
{
	memset(page, 0, 4096);
	for (int s = 0; s < 6; s++)                  /* ES, CS, SS, DS, FS, GS */
		put_seg(page + 16 * s, 0, 0x93, 0xffff, 0);
	put_seg(page + 0x10, cs_sel, 0x9b, 0xffff, cs_base);
	put_seg(page + 0x60, 0, 0, 0xffff, 0);       /* GDTR */
	put_seg(page + 0x70, 0, 0x82, 0xffff, 0);    /* LDTR */
	put_seg(page + 0x80, 0, 0, 0xffff, 0);       /* IDTR */
	put_seg(page + 0x90, 0, 0x8b, 0xffff, 0);    /* TR */
	put_le(page + 0xd0, 0x1000, 8);
	put_le(page + 0x148, 0x40, 8);
	put_le(page + 0x158, 0x10, 8);
	put_le(page + 0x160, 0x400, 8);
	put_le(page + 0x168, 0xffff0ff0, 8);
	put_le(page + 0x170, 2, 8);
	put_le(page + 0x178, rip, 8);
	put_le(page + 0x268, 0x0007040600070406ULL, 8);
	put_le(page + 0x310, rdx, 8);
	put_le(page + 0x3b0, 1, 8);
	put_le(page + 0x3e8, 1, 8);
	put_le(page + 0x408, 0x1f80, 4);
	put_le(page + 0x410, 0x37f, 2);
}

/* SPDX-License-Identifier: MIT */
/*
 * Tests of the simulated SEV-SNP hardware and firmware (src/models/snp/rmp.h,
 * psp.h): every RMPUPDATE transition and failure, PSMASH, PVALIDATE, the
 * host-write check (violations counted, scrub of an assigned frame fatal),
 * the firmware's launch commands, and the launch digest against known
 * answers computed independently (Python's hashlib over PAGE_INFO bytes laid
 * out by hand from the reference) and against PAGE_INFO bytes built here.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/sha.h>
#include "host/host_guard.h"
#include "host/pool.h"
#include "models/snp/psp.h"
#include "models/snp/rmp.h"
#include "lib/testutil.h"

#define ASID  7
#define GPA2M (4ULL << 20)      /* a 2M-aligned guest address */

struct fixture {
	pm_pfn_t big;            /* a 2M run (order 9) */
	pm_pfn_t small;          /* a 4K frame */
	struct rmp_stats before;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_int_equal(pm_pool_alloc(9, &f->big), 0);
	assert_int_equal(pm_pool_alloc(0, &f->small), 0);
	assert_int_equal(rmp_get(), 0);
	rmp_get_stats(&f->before);
	*state = f;
	return 0;
}

/* Returns every frame the test used to the hypervisor, whatever its state. */
static void unassign(pm_pfn_t pfn)
{
	struct rmp_state sh = { 0 };
	uint64_t e = rmp_entry(pfn);

	if (rmp_is_immutable(e) || rmp_is_vmsa(e))
		assert_int_equal(rmp_fw_reclaim(pfn), RMP_OK);
	if (rmp_is_assigned(rmp_entry(pfn)))
		assert_int_equal(rmp_update(pfn, &sh), RMP_OK);
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	struct rmp_state sh2m = { .size_2m = true };

	if (rmp_is_2m(rmp_entry(f->big)))
		assert_int_equal(rmp_update(f->big, &sh2m), RMP_OK);
	for (uint64_t i = 0; i < RMP_PAGES_2M; i++)
		unassign(f->big + i);
	unassign(f->small);
	pm_pool_free(f->big, 9);
	pm_pool_free(f->small, 0);
	rmp_put();
	free(f);
	return 0;
}

static struct rmp_state priv4k(uint64_t gpa)
{
	return (struct rmp_state){ .assigned = true, .gpa = gpa, .asid = ASID };
}

static struct rmp_state priv2m(uint64_t gpa)
{
	return (struct rmp_state){ .assigned = true, .size_2m = true, .gpa = gpa, .asid = ASID };
}

static const struct rmp_state shared4k = { 0 };
static const struct rmp_state shared2m = { .size_2m = true };

/* ---- RMPUPDATE ---- */

static void test_rmpupdate_assigns_and_clears_validated(void **state)
{
	struct fixture *f = *state;
	struct rmp_state p = priv4k(0x5000);
	struct rmp_stats st;
	uint64_t e;

	assert_int_equal(rmp_update(f->small, &p), RMP_OK);
	e = rmp_entry(f->small);
	assert_true(rmp_is_assigned(e));
	assert_false(rmp_is_2m(e) || rmp_is_validated(e) || rmp_is_immutable(e));
	assert_int_equal(rmp_gpa(e), 0x5000);
	assert_int_equal(rmp_asid(e), ASID);
	assert_int_equal(rmp_pvalidate(f->small, ASID, 0x5000, false, true), PVALIDATE_OK);
	assert_true(rmp_is_validated(rmp_entry(f->small)));
	/* Any RMPUPDATE clears VALIDATED, even one to the same state. */
	assert_int_equal(rmp_update(f->small, &p), RMP_OK);
	assert_false(rmp_is_validated(rmp_entry(f->small)));
	rmp_get_stats(&st);
	assert_int_equal(st.assigned_4k - f->before.assigned_4k, 1);
	assert_int_equal(rmp_update(f->small, &shared4k), RMP_OK);
	assert_int_equal(rmp_entry(f->small), 0);
	rmp_get_stats(&st);
	assert_int_equal(st.assigned_4k, f->before.assigned_4k);
}

static void test_rmpupdate_operand_errors(void **state)
{
	struct fixture *f = *state;
	struct rmp_state p = priv4k(0x5000), no_asid = priv4k(0x5000), big_asid = priv4k(0x5000);
	struct rmp_state p2m = priv2m(GPA2M), p2m_badgpa = priv2m(GPA2M + 0x1000);
	struct rmp_stats st;

	no_asid.asid = 0;
	big_asid.asid = RMP_MAX_ASID + 1;
	assert_int_equal(rmp_update(pm_pool_nr_frames(), &p), RMP_FAIL_INPUT);
	assert_int_equal(rmp_update(f->small, &no_asid), RMP_FAIL_INPUT);
	assert_int_equal(rmp_update(f->small, &big_asid), RMP_FAIL_INPUT);
	assert_int_equal(rmp_update(f->big + 1, &p2m), RMP_FAIL_INPUT);
	assert_int_equal(rmp_update(f->big, &p2m_badgpa), RMP_FAIL_INPUT);
	assert_int_equal(rmp_entry(f->big), 0);
	rmp_get_stats(&st);
	assert_int_equal(st.rmpupdate_fails - f->before.rmpupdate_fails, 5);
}

static void test_rmpupdate_2m_and_overlaps(void **state)
{
	struct fixture *f = *state;
	struct rmp_state p2m = priv2m(GPA2M), p = priv4k(0x9000);
	struct rmp_stats st;

	/* 2M over an assigned 4K entry of the region: overlap. */
	assert_int_equal(rmp_update(f->big + 300, &p), RMP_OK);
	assert_int_equal(rmp_update(f->big, &p2m), RMP_FAIL_OVERLAP);
	assert_false(rmp_region_unassigned(f->big));
	/* Unassigning 2M over 4K entries: overlap too. */
	assert_int_equal(rmp_update(f->big, &shared2m), RMP_FAIL_OVERLAP);
	assert_int_equal(rmp_update(f->big + 300, &shared4k), RMP_OK);
	assert_true(rmp_region_unassigned(f->big));
	/* A whole unassigned region: one 2M entry governing 512 frames. */
	assert_int_equal(rmp_update(f->big, &p2m), RMP_OK);
	rmp_get_stats(&st);
	assert_int_equal(st.assigned_2m - f->before.assigned_2m, 1);
	assert_int_equal(rmp_entry(f->big + 5), 0);          /* its own entry unused */
	assert_true(rmp_is_assigned(rmp_effective(f->big + 5)));
	assert_int_equal(rmp_gpa(rmp_effective(f->big + 5)), GPA2M + 5 * 4096);
	/* 4K updates inside it, the head's included: overlap (PSMASH first). */
	assert_int_equal(rmp_update(f->big + 5, &shared4k), RMP_FAIL_OVERLAP);
	assert_int_equal(rmp_update(f->big, &shared4k), RMP_FAIL_OVERLAP);
	assert_int_equal(rmp_update(f->big + 5, &p), RMP_FAIL_OVERLAP);
	/* 2M over 2M: overlap. */
	assert_int_equal(rmp_update(f->big, &p2m), RMP_FAIL_OVERLAP);
	assert_int_equal(rmp_update(f->big, &shared2m), RMP_OK);
	assert_true(rmp_region_unassigned(f->big));
	rmp_get_stats(&st);
	assert_int_equal(st.assigned_2m, f->before.assigned_2m);
}

static void test_rmpupdate_immutable_and_vmsa(void **state)
{
	struct fixture *f = *state;
	struct rmp_state pre = priv4k(0x7000), p = priv4k(0x7000);

	pre.immutable = true;
	assert_int_equal(rmp_update(f->small, &pre), RMP_OK);
	assert_true(rmp_is_immutable(rmp_entry(f->small)));
	assert_int_equal(rmp_update(f->small, &shared4k), RMP_FAIL_PERMISSION);
	assert_int_equal(rmp_update(f->small, &p), RMP_FAIL_PERMISSION);
	/* The firmware moves it on: pre-guest -> guest-valid. */
	assert_int_equal(rmp_fw_launch_validate(f->small), RMP_OK);
	assert_true(rmp_is_validated(rmp_entry(f->small)));
	assert_false(rmp_is_immutable(rmp_entry(f->small)));
	assert_int_equal(rmp_fw_launch_validate(f->small), RMP_FAIL_INPUT);
	assert_int_equal(rmp_update(f->small, &shared4k), RMP_OK);

	/* A VMSA page is in use; the firmware reclaims it, then KVM frees it. */
	assert_int_equal(rmp_fw_make_vmsa(f->small, PSP_VMSA_GPA, ASID), RMP_OK);
	assert_int_equal(rmp_fw_make_vmsa(f->small, PSP_VMSA_GPA, ASID), RMP_FAIL_INPUT);
	assert_int_equal(rmp_update(f->small, &shared4k), RMP_FAIL_INUSE);
	assert_int_equal(rmp_fw_reclaim(f->small), RMP_OK);
	assert_true(rmp_is_assigned(rmp_entry(f->small)));
	assert_int_equal(rmp_fw_reclaim(f->small), RMP_FAIL_INPUT);
	assert_int_equal(rmp_update(f->small, &shared4k), RMP_OK);
}

/* ---- PSMASH ---- */

static void test_psmash(void **state)
{
	struct fixture *f = *state;
	struct rmp_state p2m = priv2m(GPA2M), p = priv4k(0x9000);
	struct rmp_stats st;

	assert_int_equal(rmp_psmash(f->big + 1), RMP_FAIL_INPUT);
	assert_int_equal(rmp_psmash(f->big), RMP_FAIL_BADADDR);       /* unassigned */
	assert_int_equal(rmp_update(f->big, &p), RMP_OK);
	assert_int_equal(rmp_psmash(f->big), RMP_FAIL_BADADDR);       /* a 4K entry */
	assert_int_equal(rmp_update(f->big, &shared4k), RMP_OK);
	assert_int_equal(rmp_update(f->big, &p2m), RMP_OK);
	assert_int_equal(rmp_pvalidate(f->big, ASID, GPA2M, true, true), PVALIDATE_OK);
	assert_int_equal(rmp_psmash(f->big), RMP_OK);
	for (uint64_t i = 0; i < RMP_PAGES_2M; i++) {
		uint64_t e = rmp_entry(f->big + i);

		assert_true(rmp_is_assigned(e) && rmp_is_validated(e) && !rmp_is_2m(e));
		assert_int_equal(rmp_gpa(e), GPA2M + i * 4096);
		assert_int_equal(rmp_asid(e), ASID);
	}
	rmp_get_stats(&st);
	assert_int_equal(st.assigned_2m, f->before.assigned_2m);
	assert_int_equal(st.assigned_4k - f->before.assigned_4k, 512);
	assert_int_equal(st.psmash - f->before.psmash, 1);
	/* Now single frames can go back one by one. */
	assert_int_equal(rmp_update(f->big + 7, &shared4k), RMP_OK);
	assert_int_equal(rmp_psmash(f->big), RMP_FAIL_BADADDR);
}

/* ---- PVALIDATE ---- */

static void test_pvalidate_4k(void **state)
{
	struct fixture *f = *state;
	struct rmp_state p = priv4k(0x5000);

	assert_int_equal(rmp_pvalidate(f->small, ASID, 0x5000, false, true), RMP_FAULT_OWNER);
	assert_int_equal(rmp_update(f->small, &p), RMP_OK);
	assert_int_equal(rmp_pvalidate(f->small, ASID + 1, 0x5000, false, true), RMP_FAULT_OWNER);
	assert_int_equal(rmp_pvalidate(f->small, ASID, 0x6000, false, true), RMP_FAULT_OWNER);
	assert_false(rmp_guest_may_access(f->small, ASID, 0x5000));
	assert_int_equal(rmp_pvalidate(f->small, ASID, 0x5000, false, false), PVALIDATE_NOUPDATE);
	assert_int_equal(rmp_pvalidate(f->small, ASID, 0x5000, false, true), PVALIDATE_OK);
	assert_true(rmp_guest_may_access(f->small, ASID, 0x5000));
	assert_false(rmp_guest_may_access(f->small, ASID + 1, 0x5000));
	assert_int_equal(rmp_pvalidate(f->small, ASID, 0x5000, false, true), PVALIDATE_NOUPDATE);
	assert_int_equal(rmp_pvalidate(f->small, ASID, 0x5000, false, false), PVALIDATE_OK);
	assert_false(rmp_guest_may_access(f->small, ASID, 0x5000));
}

static void test_pvalidate_sizes(void **state)
{
	struct fixture *f = *state;
	struct rmp_state p2m = priv2m(GPA2M), p = priv4k(GPA2M);

	/* 2M on 4K entries: SIZEMISMATCH (the guest retries as 512 x 4K). */
	assert_int_equal(rmp_update(f->big, &p), RMP_OK);
	assert_int_equal(rmp_pvalidate(f->big, ASID, GPA2M, true, true), PVALIDATE_FAIL_SIZEMISMATCH);
	assert_int_equal(rmp_pvalidate(f->big, ASID, GPA2M, false, true), PVALIDATE_OK);
	assert_int_equal(rmp_update(f->big, &shared4k), RMP_OK);
	/* A 2M request at a misaligned gpa, or on a frame no 2M entry can
	 * start at. */
	assert_int_equal(rmp_pvalidate(f->big + 1, ASID, GPA2M, true, true), PVALIDATE_FAIL_SIZEMISMATCH);
	assert_int_equal(rmp_pvalidate(f->big, ASID, GPA2M + 4096, true, true), PVALIDATE_FAIL_INPUT);
	/* 2M on a 2M entry; 4K inside it is the size-mismatch fault. */
	assert_int_equal(rmp_update(f->big, &p2m), RMP_OK);
	assert_int_equal(rmp_pvalidate(f->big + 3, ASID, GPA2M + 3 * 4096, false, true), RMP_FAULT_SIZE);
	assert_int_equal(rmp_pvalidate(f->big, ASID, GPA2M, true, true), PVALIDATE_OK);
	assert_true(rmp_guest_may_access(f->big + 511, ASID, GPA2M + 511 * 4096));
	assert_int_equal(rmp_pvalidate(f->big, ASID, GPA2M, true, true), PVALIDATE_NOUPDATE);
	assert_int_equal(rmp_pvalidate(f->big, ASID, GPA2M, true, false), PVALIDATE_OK);
	assert_false(rmp_guest_may_access(f->big + 511, ASID, GPA2M + 511 * 4096));
}

/* ---- the host-write check ---- */

static void test_host_write_to_assigned_is_violation(void **state)
{
	struct fixture *f = *state;
	struct rmp_state p = priv4k(0x5000), p2m = priv2m(GPA2M);
	struct rmp_stats st;

	assert_int_equal(pm_host_access(f->small, 1, true), 0);
	assert_int_equal(rmp_update(f->small, &p), RMP_OK);
	assert_int_equal(pm_host_access(f->small, 1, true), -EFAULT);
	assert_int_equal(pm_host_access(f->small, 1, false), -EFAULT);
	assert_int_equal(rmp_update(f->big, &p2m), RMP_OK);
	assert_int_equal(pm_host_access(f->big + 100, 4, true), -EFAULT);
	rmp_get_stats(&st);
	assert_int_equal(st.violations - f->before.violations, 2);
	assert_int_equal(st.reads_refused - f->before.reads_refused, 1);
	if (f->before.first_violation == PM_PFN_INVALID)
		assert_int_equal(st.first_violation, f->small);
	assert_int_equal(rmp_update(f->small, &shared4k), RMP_OK);
	assert_int_equal(pm_host_access(f->small, 1, true), 0);
}

static void free_assigned(void *arg)
{
	pm_pfn_t *pfn = arg;
	struct rmp_state p = priv4k(0x5000);

	PM_BUG_ON(rmp_update(*pfn, &p) != RMP_OK);
	pm_pool_free(*pfn, 0);   /* the scrub writes an assigned frame */
}

static void test_scrub_of_assigned_frame_is_fatal(void **state)
{
	struct fixture *f = *state;

	assert_true(pm_test_aborts(free_assigned, &f->small));
}

/* ---- the firmware ---- */

static void test_psp_launch_states(void **state)
{
	struct fixture *f = *state;
	struct rmp_state pre = priv4k(0x3000);
	struct psp_guest g;
	uint8_t d[PSP_DIGEST_SIZE];

	pre.immutable = true;
	psp_guest_init(&g, ASID);
	assert_int_equal(rmp_update(f->small, &pre), RMP_OK);
	assert_int_equal(psp_launch_update(&g, f->small, 0x3000, PSP_PAGE_NORMAL), PSP_INVALID_GUEST_STATE);
	assert_int_equal(psp_launch_finish(&g), PSP_INVALID_GUEST_STATE);
	assert_int_equal(psp_launch_start(&g, 0x30000), PSP_SUCCESS);
	assert_int_equal(psp_launch_start(&g, 0x30000), PSP_INVALID_GUEST_STATE);
	assert_int_equal(psp_get_digest(&g, d), PSP_INVALID_GUEST_STATE);
	assert_int_equal(psp_launch_update(&g, f->small, 0x3000, PSP_PAGE_VMSA), PSP_INVALID_PARAM);
	assert_int_equal(psp_launch_update(&g, f->small, 0x3000, 7), PSP_INVALID_PARAM);
	assert_int_equal(psp_launch_update(&g, f->small, 0x4000, PSP_PAGE_NORMAL), PSP_INVALID_PAGE_STATE);
	assert_int_equal(psp_launch_update(&g, f->big, 0x3000, PSP_PAGE_NORMAL), PSP_INVALID_PAGE_STATE);
	memset(pm_pfn_to_hva(f->small), 0x77, 4096);
	assert_int_equal(psp_launch_update(&g, f->small, 0x3000, PSP_PAGE_ZERO), PSP_SUCCESS);
	assert_int_equal(((uint8_t *)pm_pfn_to_hva(f->small))[100], 0);   /* zeroed */
	assert_true(rmp_guest_may_access(f->small, ASID, 0x3000));
	/* Measured once: no longer pre-guest. */
	assert_int_equal(psp_launch_update(&g, f->small, 0x3000, PSP_PAGE_ZERO), PSP_INVALID_PAGE_STATE);
	assert_int_equal(psp_launch_finish(&g), PSP_SUCCESS);
	assert_int_equal(psp_get_digest(&g, d), PSP_SUCCESS);
	assert_int_equal(psp_launch_update(&g, f->small, 0x3000, PSP_PAGE_NORMAL), PSP_INVALID_GUEST_STATE);
	assert_int_equal(psp_launch_finish(&g), PSP_INVALID_GUEST_STATE);
	psp_guest_destroy(&g);
}

static void hex(const char *s, uint8_t *out)
{
	for (int i = 0; i < PSP_DIGEST_SIZE; i++)
		sscanf(s + 2 * i, "%2hhx", &out[i]);
}

static void pattern_page(uint8_t *p)
{
	for (int i = 0; i < 4096; i++)
		p[i] = (uint8_t)(i * 7 + 3);
}

/* Known answers computed with Python's hashlib from PAGE_INFO bytes laid
 * out by hand (struct.pack('<HBBBBBBQ', 0x70, type, 0, 0, 0, 0, 0, gpa)
 * after the digest and CONTENTS). */
static void test_digest_known_answers(void **state)
{
	static uint8_t page[4096], zero[4096];
	uint8_t d[PSP_DIGEST_SIZE] = { 0 }, want[PSP_DIGEST_SIZE];

	pattern_page(page);
	psp_measure_page(d, page, PSP_PAGE_NORMAL, 0x1000);
	hex("0008ec48544088b72890fe9c997274f54b71b8667527c0a48ddf10053cce7020"
	    "f95a9b43650c800db58b39bbaaa198a2", want);
	assert_memory_equal(d, want, sizeof(d));
	psp_measure_page(d, page, PSP_PAGE_ZERO, 0x2000);
	psp_measure_page(d, page, PSP_PAGE_SECRETS, 0x3000);   /* contents not hashed */
	psp_measure_page(d, zero, PSP_PAGE_VMSA, PSP_VMSA_GPA);
	hex("ca590c76032292d64cbe244c08e6bc271b161b986f2a7f52ec094c26ff41441e"
	    "220f29b2d6a895481f3c3296f40af46e", want);
	assert_memory_equal(d, want, sizeof(d));
}

/* The same chain with PAGE_INFO built field by field here. */
static void page_info_by_hand(uint8_t d[48], const uint8_t *page, uint8_t type, uint64_t gpa)
{
	uint8_t info[112];

	memset(info, 0, sizeof(info));
	memcpy(info, d, 48);
	if (type == 1 || type == 2)
		SHA384(page, 4096, info + 48);
	info[96] = 0x70;
	info[97] = 0;
	info[98] = type;
	for (int i = 0; i < 8; i++)
		info[104 + i] = (uint8_t)(gpa >> (8 * i));
	SHA384(info, sizeof(info), d);
}

static void test_digest_matches_page_info_by_hand(void **state)
{
	static uint8_t page[4096];
	uint8_t a[48] = { 0 }, b[48] = { 0 };
	const uint8_t types[] = { 1, 4, 6, 1, 3 };

	pattern_page(page);
	for (unsigned int i = 0; i < sizeof(types); i++) {
		page[i] ^= 0xff;
		psp_measure_page(a, page, types[i], 0x100000 + i * 4096);
		page_info_by_hand(b, page, types[i], 0x100000 + i * 4096);
		assert_memory_equal(a, b, 48);
	}
	/* Order matters: swapping two steps changes the digest. */
	memset(a, 0, 48);
	memset(b, 0, 48);
	psp_measure_page(a, page, 1, 0x1000);
	psp_measure_page(a, page, 1, 0x2000);
	psp_measure_page(b, page, 1, 0x2000);
	psp_measure_page(b, page, 1, 0x1000);
	assert_memory_not_equal(a, b, 48);
}

static void test_psp_measures_launch_pages(void **state)
{
	struct fixture *f = *state;
	struct rmp_state pre = priv4k(0x1000);
	struct psp_guest g;
	uint8_t d[48], want[48] = { 0 };

	pre.immutable = true;
	pattern_page(pm_pfn_to_hva(f->small));
	assert_int_equal(rmp_update(f->small, &pre), RMP_OK);
	psp_guest_init(&g, ASID);
	assert_int_equal(psp_launch_start(&g, 0x30000), PSP_SUCCESS);
	assert_int_equal(psp_launch_update(&g, f->small, 0x1000, PSP_PAGE_NORMAL), PSP_SUCCESS);
	assert_int_equal(psp_launch_vmsa(&g, f->big), PSP_SUCCESS);
	assert_true(rmp_is_vmsa(rmp_entry(f->big)));
	assert_int_equal(psp_launch_finish(&g), PSP_SUCCESS);
	assert_int_equal(psp_get_digest(&g, d), PSP_SUCCESS);
	page_info_by_hand(want, pm_pfn_to_hva(f->small), 1, 0x1000);
	page_info_by_hand(want, pm_pfn_to_hva(f->big), 2, PSP_VMSA_GPA);
	assert_memory_equal(d, want, 48);
	assert_int_equal(psp_page_reclaim(f->big), PSP_SUCCESS);
	assert_int_equal(psp_page_reclaim(f->big), PSP_INVALID_PAGE_STATE);
	psp_guest_destroy(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_rmpupdate_assigns_and_clears_validated),
		T(test_rmpupdate_operand_errors),
		T(test_rmpupdate_2m_and_overlaps),
		T(test_rmpupdate_immutable_and_vmsa),
		T(test_psmash),
		T(test_pvalidate_4k),
		T(test_pvalidate_sizes),
		T(test_host_write_to_assigned_is_violation),
		T(test_scrub_of_assigned_frame_is_fatal),
		T(test_psp_launch_states),
		cmocka_unit_test(test_digest_known_answers),
		cmocka_unit_test(test_digest_matches_page_info_by_hand),
		T(test_psp_measures_launch_pages),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

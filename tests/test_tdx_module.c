/* SPDX-License-Identifier: MIT */
/*
 * Tests of the simulated TDX module (src/models/tdx/module.h): every
 * SEAMCALL's preconditions and error codes, read as rows of its transition
 * table; OPERAND_BUSY on a held entry and under injection; TLB tracking
 * (REMOVE only after BLOCK, TRACK and every vCPU's re-entry); DEMOTE; the
 * guest's ACCEPT rules; and MRTD known answers computed here from the
 * reference algorithm, block by block, with a one-shot SHA-384.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <openssl/evp.h>

#include "host/host_guard.h"
#include "host/pool.h"
#include "lib/testutil.h"
#include "models/tdx/module.h"

#define MIB   (1ULL << 20)
#define GIB   (1ULL << 30)
#define GPA   (GIB + 2 * MIB)      /* a 2M-aligned private GPA */

struct env {
	struct tdx_td *td;
	pm_pfn_t pfn;                  /* a 2M run of frames for TD pages */
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	assert_non_null(e);
	assert_int_equal(tdx_module_td_create(48, &e->td), 0);
	assert_int_equal(pm_pool_alloc(9, &e->pfn), 0);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	tdx_module_td_destroy(e->td);
	pm_pool_free(e->pfn, 9);
	free(e);
	return 0;
}

/* SEPT.ADD of the tables down to the 4K level for gpa. */
static void add_tables(struct tdx_td *td, uint64_t gpa, int down_to)
{
	for (int l = 3; l >= down_to; l--) {
		uint64_t r = tdh_mem_sept_add(td, PM_ALIGN_DOWN(gpa, PM_PAGE_SIZE << (9 * l)), l);

		assert_true(r == TDX_SUCCESS || r == TDX_EPT_ENTRY_STATE_INCORRECT);
	}
}

static void test_sept_add_rows(void **state)
{
	struct env *e = *state;
	struct tdx_module_stats st;

	assert_int_equal(tdh_mem_sept_add(e->td, GPA, 0), TDX_OPERAND_INVALID);       /* level */
	assert_int_equal(tdh_mem_sept_add(e->td, GPA, 4), TDX_OPERAND_INVALID);
	assert_int_equal(tdh_mem_sept_add(e->td, GPA + 4096, 1), TDX_OPERAND_INVALID);/* align */
	assert_int_equal(tdh_mem_sept_add(e->td, 1ULL << 48, 3), TDX_OPERAND_INVALID);/* gpaw */
	assert_int_equal(tdh_mem_sept_add(e->td, GPA, 1), TDX_EPT_WALK_FAILED);       /* no L2 */
	assert_int_equal(tdh_mem_sept_add(e->td, 0, 3), TDX_SUCCESS);
	assert_int_equal(tdh_mem_sept_add(e->td, 0, 3), TDX_EPT_ENTRY_STATE_INCORRECT);
	assert_int_equal(tdh_mem_sept_add(e->td, GIB, 2), TDX_SUCCESS);
	assert_int_equal(tdh_mem_sept_add(e->td, GPA, 1), TDX_SUCCESS);
	tdx_module_stats(e->td, &st);
	assert_int_equal(st.sept_entries[3], 3);
	assert_int_equal(st.sept_entries[0], 0);
}

static void test_page_add_rows_and_copy(void **state)
{
	struct env *e = *state;
	uint8_t src[4096];
	pm_pfn_t pfn;

	memset(src, 0xA5, sizeof(src));
	assert_int_equal(tdh_mem_page_add(e->td, GPA, e->pfn, src), TDX_EPT_WALK_FAILED);
	add_tables(e->td, GPA, 1);
	assert_int_equal(tdh_mem_page_add(e->td, GPA + 1, e->pfn, src), TDX_OPERAND_INVALID);
	assert_int_equal(tdh_mem_page_add(e->td, GPA, e->pfn, src), TDX_SUCCESS);
	assert_int_equal(tdh_mem_page_add(e->td, GPA, e->pfn + 1, src), TDX_EPT_ENTRY_STATE_INCORRECT);
	assert_memory_equal(pm_pfn_to_hva(e->pfn), src, sizeof(src));
	/* PAGE.ADD pages are accepted already. */
	assert_int_equal(tdx_module_guest_lookup(e->td, GPA, &pfn), TDX_GPA_MAPPED);
	assert_int_equal(pfn, e->pfn);
	assert_int_equal(tdg_mem_page_accept(e->td, GPA, 0), TDX_PAGE_ALREADY_ACCEPTED);
	assert_int_equal(tdh_mr_finalize(e->td), TDX_SUCCESS);
	assert_int_equal(tdh_mem_page_add(e->td, GPA + 4096, e->pfn + 1, src), TDX_OP_STATE_INCORRECT);
	assert_int_equal(tdh_mr_finalize(e->td), TDX_OP_STATE_INCORRECT);
}

static void test_page_aug_rows_and_accept(void **state)
{
	struct env *e = *state;
	struct tdx_module_stats st;
	pm_pfn_t pfn;

	add_tables(e->td, GPA, 1);
	assert_int_equal(tdh_mem_page_aug(e->td, GPA, 0, e->pfn), TDX_OP_STATE_INCORRECT);
	assert_int_equal(tdh_mr_finalize(e->td), TDX_SUCCESS);
	assert_int_equal(tdh_mem_page_aug(e->td, GPA, 2, e->pfn), TDX_OPERAND_INVALID);
	assert_int_equal(tdh_mem_page_aug(e->td, GPA, 1, e->pfn + 1), TDX_OPERAND_INVALID);
	assert_int_equal(tdh_mem_page_aug(e->td, GPA + 4096, 1, e->pfn), TDX_OPERAND_INVALID);
	assert_int_equal(tdh_mem_page_aug(e->td, GPA + 2 * MIB, 0, e->pfn), TDX_EPT_WALK_FAILED);
	/* Accept before any mapping: the VMM must map it. */
	assert_int_equal(tdg_mem_page_accept(e->td, GPA, 0), TDX_NOT_MAPPED);
	memset(pm_pfn_to_hva(e->pfn + 3), 0x5A, 4096);
	assert_int_equal(tdh_mem_page_aug(e->td, GPA + 3 * 4096, 0, e->pfn + 3), TDX_SUCCESS);
	assert_int_equal(tdh_mem_page_aug(e->td, GPA + 3 * 4096, 0, e->pfn + 3),
			 TDX_EPT_ENTRY_STATE_INCORRECT);
	/* The 2M entry is a table now: a 2M AUG or ACCEPT there mismatches. */
	assert_int_equal(tdh_mem_page_aug(e->td, GPA, 1, e->pfn), TDX_EPT_ENTRY_STATE_INCORRECT);
	assert_int_equal(tdg_mem_page_accept(e->td, GPA, 1), TDX_PAGE_SIZE_MISMATCH);
	assert_int_equal(tdx_module_guest_lookup(e->td, GPA + 3 * 4096, &pfn), TDX_GPA_PENDING);
	tdx_module_stats(e->td, &st);
	assert_int_equal(st.pending, 1);
	assert_int_equal(tdg_mem_page_accept(e->td, GPA + 3 * 4096, 2), TDX_OPERAND_INVALID);
	assert_int_equal(tdg_mem_page_accept(e->td, GPA + 3 * 4096, 0), TDX_SUCCESS);
	assert_int_equal(*(uint8_t *)pm_pfn_to_hva(e->pfn + 3), 0);   /* accept zeroes */
	assert_int_equal(tdg_mem_page_accept(e->td, GPA + 3 * 4096, 0), TDX_PAGE_ALREADY_ACCEPTED);
	assert_int_equal(tdx_module_guest_lookup(e->td, GPA + 3 * 4096, &pfn), TDX_GPA_MAPPED);
	assert_int_equal(pfn, e->pfn + 3);
	tdx_module_stats(e->td, &st);
	assert_int_equal(st.pending, 0);
}

static void test_block_track_remove_follow_the_epochs(void **state)
{
	struct env *e = *state;
	int vp0 = tdx_module_vp_create(e->td), vp1 = tdx_module_vp_create(e->td);
	pm_pfn_t pfn = 0;

	add_tables(e->td, GPA, 1);
	assert_int_equal(tdh_mr_finalize(e->td), TDX_SUCCESS);
	assert_int_equal(tdh_mem_range_block(e->td, GPA, 0), TDX_EPT_ENTRY_STATE_INCORRECT); /* free */
	assert_int_equal(tdh_mem_page_aug(e->td, GPA, 0, e->pfn), TDX_SUCCESS);
	assert_int_equal(tdh_mem_page_remove(e->td, GPA, 0, &pfn), TDX_EPT_ENTRY_STATE_INCORRECT);
	tdx_module_vp_enter(e->td, vp0);
	tdx_module_vp_enter(e->td, vp1);
	assert_int_equal(tdh_mem_range_block(e->td, GPA, 1), TDX_EPT_ENTRY_STATE_INCORRECT); /* table */
	assert_int_equal(tdh_mem_range_block(e->td, GPA, 0), TDX_SUCCESS);
	assert_int_equal(tdh_mem_range_block(e->td, GPA, 0), TDX_EPT_ENTRY_STATE_INCORRECT);
	assert_int_equal(tdx_module_guest_lookup(e->td, GPA, &pfn), TDX_GPA_NONE);
	/* No TRACK yet. */
	assert_int_equal(tdh_mem_page_remove(e->td, GPA, 0, &pfn), TDX_TLB_TRACKING_NOT_DONE);
	assert_int_equal(tdh_mem_track(e->td), TDX_SUCCESS);
	/* Both vCPUs still run on the old epoch. */
	assert_int_equal(tdh_mem_page_remove(e->td, GPA, 0, &pfn), TDX_TLB_TRACKING_NOT_DONE);
	tdx_module_vp_exit(e->td, vp0);
	assert_int_equal(tdh_mem_page_remove(e->td, GPA, 0, &pfn), TDX_TLB_TRACKING_NOT_DONE);
	tdx_module_vp_enter(e->td, vp1);       /* kicked: re-entered on the new epoch */
	assert_int_equal(tdh_mem_page_remove(e->td, GPA, 1, &pfn), TDX_EPT_ENTRY_STATE_INCORRECT);
	assert_int_equal(tdh_mem_page_remove(e->td, GPA, 0, &pfn), TDX_SUCCESS);
	assert_int_equal(pfn, e->pfn);
	assert_int_equal(tdh_mem_page_remove(e->td, GPA, 0, &pfn), TDX_EPT_ENTRY_STATE_INCORRECT);
	/* The entry is free again. */
	assert_int_equal(tdh_mem_page_aug(e->td, GPA, 0, e->pfn), TDX_SUCCESS);
}

static void test_demote_splits_a_blocked_2m_leaf(void **state)
{
	struct env *e = *state;
	struct tdx_module_stats st;
	pm_pfn_t pfn;

	add_tables(e->td, GPA, 2);
	assert_int_equal(tdh_mr_finalize(e->td), TDX_SUCCESS);
	assert_int_equal(tdh_mem_page_aug(e->td, GPA, 1, e->pfn), TDX_SUCCESS);
	assert_int_equal(tdg_mem_page_accept(e->td, GPA, 0), TDX_PAGE_SIZE_MISMATCH);
	assert_int_equal(tdh_mem_page_demote(e->td, GPA, 0), TDX_OPERAND_INVALID);
	assert_int_equal(tdh_mem_page_demote(e->td, GPA, 1), TDX_EPT_ENTRY_STATE_INCORRECT);
	assert_int_equal(tdh_mem_range_block(e->td, GPA, 1), TDX_SUCCESS);
	assert_int_equal(tdh_mem_page_demote(e->td, GPA, 1), TDX_TLB_TRACKING_NOT_DONE);
	assert_int_equal(tdh_mem_track(e->td), TDX_SUCCESS);
	assert_int_equal(tdh_mem_page_demote(e->td, GPA, 1), TDX_SUCCESS);
	tdx_module_stats(e->td, &st);
	assert_int_equal(st.sept_entries[1], 0);
	assert_int_equal(st.sept_entries[0], 512);
	assert_int_equal(st.pending, 512);
	assert_int_equal(st.demotions, 1);
	/* Each 4K is pending, on its own frame, and accepted at 4K. */
	assert_int_equal(tdx_module_guest_lookup(e->td, GPA + 7 * 4096, &pfn), TDX_GPA_PENDING);
	assert_int_equal(pfn, e->pfn + 7);
	assert_int_equal(tdg_mem_page_accept(e->td, GPA, 1), TDX_PAGE_SIZE_MISMATCH);
	assert_int_equal(tdg_mem_page_accept(e->td, GPA + 7 * 4096, 0), TDX_SUCCESS);
}

static void test_2m_accept_zeroes_the_whole_page(void **state)
{
	struct env *e = *state;
	pm_pfn_t pfn;

	add_tables(e->td, GPA, 2);
	assert_int_equal(tdh_mr_finalize(e->td), TDX_SUCCESS);
	memset(pm_pfn_to_hva(e->pfn), 0x77, 2 * MIB);
	assert_int_equal(tdh_mem_page_aug(e->td, GPA, 1, e->pfn), TDX_SUCCESS);
	assert_int_equal(tdx_module_guest_lookup(e->td, GPA + 9 * 4096, &pfn), TDX_GPA_PENDING);
	assert_int_equal(pfn, e->pfn + 9);
	assert_int_equal(tdg_mem_page_accept(e->td, GPA, 1), TDX_SUCCESS);
	for (uint64_t off = 0; off < 2 * MIB; off += 4096)
		assert_int_equal(((uint8_t *)pm_pfn_to_hva(e->pfn))[off + 4095], 0);
}

static void test_operand_busy_on_a_held_entry_and_by_injection(void **state)
{
	struct env *e = *state;
	struct tdx_module_stats st;
	pm_pfn_t pfn;

	add_tables(e->td, GPA, 1);
	assert_int_equal(tdh_mr_finalize(e->td), TDX_SUCCESS);
	assert_int_equal(tdx_module_test_hold_entry(e->td, GPA, 0, true), 0);
	assert_int_equal(tdx_module_test_hold_entry(e->td, GPA, 0, true), -EBUSY);
	assert_int_equal(tdh_mem_page_aug(e->td, GPA, 0, e->pfn), TDX_OPERAND_BUSY);
	assert_int_equal(tdx_module_guest_lookup(e->td, GPA, &pfn), TDX_GPA_NONE);
	/* Another entry of the same table is not contended. */
	assert_int_equal(tdh_mem_page_aug(e->td, GPA + 4096, 0, e->pfn + 1), TDX_SUCCESS);
	assert_int_equal(tdx_module_test_hold_entry(e->td, GPA, 0, false), 0);
	assert_int_equal(tdh_mem_page_aug(e->td, GPA, 0, e->pfn), TDX_SUCCESS);
	assert_int_equal(tdx_module_test_hold_entry(e->td, GPA, 0, true), 0);
	assert_int_equal(tdh_mem_range_block(e->td, GPA, 0), TDX_OPERAND_BUSY);
	assert_int_equal(tdg_mem_page_accept(e->td, GPA, 0), TDX_OPERAND_BUSY);
	assert_int_equal(tdx_module_test_hold_entry(e->td, GPA, 0, false), 0);
	tdx_module_stats(e->td, &st);
	assert_int_equal(st.busy, 3);
	/* Injection at 100%: every entry call is BUSY and changes nothing. */
	tdx_module_set_busy_rate(e->td, 1000000);
	assert_int_equal(tdh_mem_page_aug(e->td, GPA + 8192, 0, e->pfn + 2), TDX_OPERAND_BUSY);
	assert_int_equal(tdh_mem_range_block(e->td, GPA, 0), TDX_OPERAND_BUSY);
	assert_int_equal(tdh_mem_sept_add(e->td, GPA + 2 * MIB, 1), TDX_OPERAND_BUSY);
	tdx_module_set_busy_rate(e->td, 0);
	assert_int_equal(tdx_module_guest_lookup(e->td, GPA + 8192, &pfn), TDX_GPA_NONE);
	assert_int_equal(tdh_mem_range_block(e->td, GPA, 0), TDX_SUCCESS);
	tdx_module_stats(e->td, &st);
	assert_int_equal(st.busy_injected, 3);
}

static void test_mr_extend_rows(void **state)
{
	struct env *e = *state;
	uint8_t src[4096] = { 1 }, mrtd[48];

	assert_int_equal(tdx_module_mrtd(e->td, mrtd), -EINVAL);
	add_tables(e->td, GPA, 1);
	assert_int_equal(tdh_mr_extend(e->td, GPA + 128), TDX_OPERAND_INVALID);
	assert_int_equal(tdh_mr_extend(e->td, GPA), TDX_EPT_ENTRY_STATE_INCORRECT);  /* free */
	assert_int_equal(tdh_mr_extend(e->td, GPA + 4 * MIB), TDX_EPT_WALK_FAILED);
	assert_int_equal(tdh_mem_page_add(e->td, GPA, e->pfn, src), TDX_SUCCESS);
	assert_int_equal(tdh_mr_extend(e->td, GPA + 256), TDX_SUCCESS);
	assert_int_equal(tdh_mr_finalize(e->td), TDX_SUCCESS);
	assert_int_equal(tdh_mr_extend(e->td, GPA), TDX_OP_STATE_INCORRECT);
	assert_int_equal(tdx_module_mrtd(e->td, mrtd), 0);
}

/* ---- PAMT: TD pages and the host ---- */

static void test_a_frame_is_a_td_page_once_and_the_host_is_refused(void **state)
{
	struct env *e = *state;
	uint8_t src[4096] = { 0 };
	pm_pfn_t pfn;

	add_tables(e->td, GPA, 1);
	assert_int_equal(pm_host_access(e->pfn, 1, true), 0);
	assert_int_equal(tdh_mem_page_add(e->td, GPA, e->pfn, src), TDX_SUCCESS);
	/* The same frame at another GPA, 4K or inside a 2M page: refused. */
	assert_int_equal(tdh_mem_page_add(e->td, GPA + 4096, e->pfn, src),
			 TDX_OPERAND_PAGE_METADATA_INCORRECT);
	assert_int_equal(tdh_mr_finalize(e->td), TDX_SUCCESS);
	assert_int_equal(tdh_mem_page_aug(e->td, GPA + 2 * MIB, 1, e->pfn),
			 TDX_OPERAND_PAGE_METADATA_INCORRECT);
	/* ... and nothing of the 2M page was taken on the way. */
	assert_int_equal(pm_host_access(e->pfn + 1, 511, true), 0);
	assert_int_equal(pm_host_access(e->pfn, 1, false), -EFAULT);
	assert_int_equal(pm_host_access(e->pfn, 2, true), -EFAULT);
	/* Removed: the host may use the frame again. */
	assert_int_equal(tdh_mem_range_block(e->td, GPA, 0), TDX_SUCCESS);
	assert_int_equal(tdh_mem_track(e->td), TDX_SUCCESS);
	assert_int_equal(tdh_mem_page_remove(e->td, GPA, 0, &pfn), TDX_SUCCESS);
	assert_int_equal(pm_host_access(e->pfn, 1, true), 0);
	assert_int_equal(tdh_mem_page_aug(e->td, GPA + 2 * MIB, 1, e->pfn), TDX_SUCCESS);
	assert_int_equal(pm_host_access(e->pfn + 300, 1, true), -EFAULT);
}

static void free_td_page(void *arg)
{
	struct env *e = arg;
	uint8_t src[4096] = { 0 };

	add_tables(e->td, GPA, 1);
	PM_BUG_ON(tdh_mem_page_add(e->td, GPA, e->pfn + 5, src));
	pm_pool_free(e->pfn + 5, 0);     /* the scrub writes a TD page */
}

static void test_freeing_a_td_page_to_the_pool_stops_the_host(void **state)
{
	assert_true(pm_test_aborts(free_td_page, *state));
}

static void test_teardown_reclaims_the_td_pages(void **state)
{
	struct env *e = *state;
	struct tdx_td *td2;
	uint8_t src[4096] = { 0 };

	assert_int_equal(tdx_module_td_create(48, &td2), 0);
	add_tables(td2, GPA, 1);
	assert_int_equal(tdh_mem_page_add(td2, GPA, e->pfn + 9, src), TDX_SUCCESS);
	assert_int_equal(pm_host_access(e->pfn + 9, 1, true), -EFAULT);
	tdx_module_td_destroy(td2);
	assert_int_equal(pm_host_access(e->pfn + 9, 1, true), 0);
}

/* ---- MRTD known answers ---- */

static void put_block(uint8_t *out, const char *tag, uint64_t gpa)
{
	memset(out, 0, 128);
	memcpy(out, tag, strlen(tag));
	for (int i = 0; i < 8; i++)
		out[16 + i] = (uint8_t)(gpa >> (8 * i));
}

static void test_mrtd_of_an_empty_td_is_sha384_of_nothing(void **state)
{
	static const uint8_t want[48] = {
		0x38, 0xb0, 0x60, 0xa7, 0x51, 0xac, 0x96, 0x38, 0x4c, 0xd9, 0x32, 0x7e,
		0xb1, 0xb1, 0xe3, 0x6a, 0x21, 0xfd, 0xb7, 0x11, 0x14, 0xbe, 0x07, 0x43,
		0x4c, 0x0c, 0xc7, 0xbf, 0x63, 0xf6, 0xe1, 0xda, 0x27, 0x4e, 0xde, 0xbf,
		0xe7, 0x6f, 0x65, 0xfb, 0xd5, 0x1a, 0xd2, 0xf1, 0x48, 0x98, 0xb9, 0x5b,
	};
	struct env *e = *state;
	uint8_t mrtd[48];

	assert_int_equal(tdh_mr_finalize(e->td), TDX_SUCCESS);
	assert_int_equal(tdx_module_mrtd(e->td, mrtd), 0);
	assert_memory_equal(mrtd, want, 48);
}

/* Two pages: the first added and measured (16 extends), the second added
 * unmeasured; the expected MRTD is the one-shot SHA-384 of the blocks laid
 * out by hand in call order. */
static void test_mrtd_known_answer_for_a_measured_and_an_unmeasured_page(void **state)
{
	struct env *e = *state;
	static uint8_t src[2][4096], stream[128 + 16 * 384 + 128];
	uint8_t mrtd[48], want[48];
	unsigned int len = 0;
	size_t off = 0;

	for (int p = 0; p < 2; p++)
		for (int i = 0; i < 4096; i++)
			src[p][i] = (uint8_t)(i * 7 + p * 131 + (i >> 8));
	add_tables(e->td, GPA, 1);
	assert_int_equal(tdh_mem_page_add(e->td, GPA, e->pfn, src[0]), TDX_SUCCESS);
	put_block(stream + off, "MEM.PAGE.ADD", GPA);
	off += 128;
	for (int c = 0; c < 16; c++) {
		assert_int_equal(tdh_mr_extend(e->td, GPA + c * 256), TDX_SUCCESS);
		put_block(stream + off, "MR.EXTEND", GPA + c * 256);
		memcpy(stream + off + 128, src[0] + c * 256, 256);
		off += 384;
	}
	assert_int_equal(tdh_mem_page_add(e->td, GPA + 4096, e->pfn + 1, src[1]), TDX_SUCCESS);
	put_block(stream + off, "MEM.PAGE.ADD", GPA + 4096);
	off += 128;
	assert_int_equal(off, sizeof(stream));
	assert_int_equal(tdh_mr_finalize(e->td), TDX_SUCCESS);
	assert_int_equal(tdx_module_mrtd(e->td, mrtd), 0);
	assert_int_equal(EVP_Digest(stream, sizeof(stream), want, &len, EVP_sha384(), NULL), 1);
	assert_int_equal(len, 48);
	assert_memory_equal(mrtd, want, 48);
	/* The tag bytes matter: one byte off gives another digest. */
	stream[0] ^= 1;
	assert_int_equal(EVP_Digest(stream, sizeof(stream), want, &len, EVP_sha384(), NULL), 1);
	assert_memory_not_equal(mrtd, want, 48);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_sept_add_rows),
		T(test_page_add_rows_and_copy),
		T(test_page_aug_rows_and_accept),
		T(test_block_track_remove_follow_the_epochs),
		T(test_demote_splits_a_blocked_2m_leaf),
		T(test_2m_accept_zeroes_the_whole_page),
		T(test_operand_busy_on_a_held_entry_and_by_injection),
		T(test_mr_extend_rows),
		T(test_a_frame_is_a_td_page_once_and_the_host_is_refused),
		T(test_freeing_a_td_page_to_the_pool_stops_the_host),
		T(test_teardown_reclaims_the_td_pages),
		T(test_mrtd_of_an_empty_td_is_sha384_of_nothing),
		T(test_mrtd_known_answer_for_a_measured_and_an_unmeasured_page),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * The simulated PSP firmware's launch commands and the PAGE_INFO digest
 * (see psp.h). Each command: take the guest context's lock, check its state,
 * check the page through the RMP, then act and measure.
 */
#include <openssl/sha.h>
#include "host/pool.h"
#include "models/snp/psp.h"
#include "models/snp/rmp.h"

#define PAGE_INFO_SIZE 0x70

void psp_guest_init(struct psp_guest *g, unsigned int asid)
{
	memset(g, 0, sizeof(*g));
	pthread_mutex_init(&g->lock, NULL);
	g->asid = asid;
}

void psp_guest_destroy(struct psp_guest *g)
{
	pthread_mutex_destroy(&g->lock);
}

static bool type_measures_contents(uint8_t type)
{
	return type == PSP_PAGE_NORMAL || type == PSP_PAGE_VMSA;
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

void psp_measure_page(uint8_t digest[PSP_DIGEST_SIZE], const void *page, uint8_t type, uint64_t gpa)
{
	uint8_t info[PAGE_INFO_SIZE] = { 0 };

	memcpy(info, digest, PSP_DIGEST_SIZE);
	if (type_measures_contents(type))
		SHA384(page, PM_PAGE_SIZE, info + 48);
	info[96] = PAGE_INFO_SIZE & 0xff;
	info[97] = PAGE_INFO_SIZE >> 8;
	info[98] = type;
	/* 99: IMI_PAGE, 100-102: VMPL3/2/1 permissions, 103: reserved: zero */
	put_le64(info + 104, gpa);
	SHA384(info, sizeof(info), digest);
}

enum psp_status psp_launch_start(struct psp_guest *g, uint64_t policy)
{
	enum psp_status st = PSP_SUCCESS;

	pthread_mutex_lock(&g->lock);
	if (g->state != PSP_GUEST_NONE) {
		st = PSP_INVALID_GUEST_STATE;
	} else {
		g->state = PSP_GUEST_LAUNCH;
		g->policy = policy;
		memset(g->digest, 0, sizeof(g->digest));
	}
	pthread_mutex_unlock(&g->lock);
	return st;
}

/* The firmware's own content for a SECRETS page (privmem has no keys:
 * a pattern derived from the ASID stands in for the VMPCKs). */
static void fill_secrets(uint8_t *page, unsigned int asid)
{
	for (unsigned int i = 0; i < PM_PAGE_SIZE; i++)
		page[i] = (uint8_t)((asid * 0x9Du) ^ (i * 0x3Bu) ^ 0xA5u);
}

static bool page_is_pre_guest(pm_pfn_t pfn, unsigned int asid, uint64_t gpa)
{
	uint64_t e = rmp_entry(pfn);

	return rmp_is_assigned(e) && !rmp_is_2m(e) && rmp_is_immutable(e) && !rmp_is_validated(e) &&
	       rmp_asid(e) == asid && rmp_gpa(e) == gpa;
}

enum psp_status psp_launch_update(struct psp_guest *g, pm_pfn_t pfn, uint64_t gpa, uint8_t type)
{
	enum psp_status st = PSP_SUCCESS;
	uint8_t *page = pm_pfn_to_hva(pfn);

	if (type < PSP_PAGE_NORMAL || type > PSP_PAGE_CPUID || type == PSP_PAGE_VMSA)
		return PSP_INVALID_PARAM;
	pthread_mutex_lock(&g->lock);
	if (g->state != PSP_GUEST_LAUNCH) {
		st = PSP_INVALID_GUEST_STATE;
	} else if (!page_is_pre_guest(pfn, g->asid, gpa)) {
		st = PSP_INVALID_PAGE_STATE;
	} else {
		if (type == PSP_PAGE_ZERO)
			memset(page, 0, PM_PAGE_SIZE);
		else if (type == PSP_PAGE_SECRETS)
			fill_secrets(page, g->asid);
		psp_measure_page(g->digest, page, type, gpa);
		g->pages_measured++;
		PM_BUG_ON(rmp_fw_launch_validate(pfn) != RMP_OK);   /* checked above, lock held */
	}
	pthread_mutex_unlock(&g->lock);
	return st;
}

enum psp_status psp_launch_vmsa(struct psp_guest *g, pm_pfn_t pfn)
{
	enum psp_status st = PSP_SUCCESS;

	pthread_mutex_lock(&g->lock);
	if (g->state != PSP_GUEST_LAUNCH) {
		st = PSP_INVALID_GUEST_STATE;
	} else if (rmp_fw_make_vmsa(pfn, PSP_VMSA_GPA, g->asid) != RMP_OK) {
		st = PSP_INVALID_PAGE_STATE;
	} else {
		psp_measure_page(g->digest, pm_pfn_to_hva(pfn), PSP_PAGE_VMSA, PSP_VMSA_GPA);
		g->pages_measured++;
	}
	pthread_mutex_unlock(&g->lock);
	return st;
}

enum psp_status psp_launch_finish(struct psp_guest *g)
{
	enum psp_status st = PSP_SUCCESS;

	pthread_mutex_lock(&g->lock);
	if (g->state != PSP_GUEST_LAUNCH)
		st = PSP_INVALID_GUEST_STATE;
	else
		g->state = PSP_GUEST_RUNNING;
	pthread_mutex_unlock(&g->lock);
	return st;
}

enum psp_status psp_get_digest(struct psp_guest *g, uint8_t out[PSP_DIGEST_SIZE])
{
	enum psp_status st = PSP_SUCCESS;

	pthread_mutex_lock(&g->lock);
	if (g->state != PSP_GUEST_RUNNING)
		st = PSP_INVALID_GUEST_STATE;
	else
		memcpy(out, g->digest, PSP_DIGEST_SIZE);
	pthread_mutex_unlock(&g->lock);
	return st;
}

enum psp_status psp_page_reclaim(pm_pfn_t pfn)
{
	return rmp_fw_reclaim(pfn) == RMP_OK ? PSP_SUCCESS : PSP_INVALID_PAGE_STATE;
}

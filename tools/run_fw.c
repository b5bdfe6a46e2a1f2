/* SPDX-License-Identifier: MIT */
/*
 * privmem run --firmware: the image a runner launches (run.h), read,
 * parsed (fw_image.h) and checked against the VM it goes into.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include "fw_image.h"
#include "run.h"

#define RAM_ALIGN (2ULL << 20)

static bool inside(uint64_t gpa, uint64_t size, uint64_t lo, uint64_t hi)
{
	return gpa >= lo && gpa + size <= hi;
}

/* Where the launch puts the sections: in guest RAM, or (TDX's BFV and CFV)
 * in the flash. */
static int fw_layout(const struct run_opts *o, bool tdx, struct run_fw *fw)
{
	const struct fw_image *img = fw->img;
	uint64_t end = 0;

	if (img->gpa < o->mem) {
		fprintf(stderr, "privmem: --mem %llu MiB reaches the firmware flash at 0x%llx\n",
			(unsigned long long)(o->mem >> 20), (unsigned long long)img->gpa);
		return 2;
	}
	for (unsigned int i = 0; i < (tdx ? img->nr_tdx : img->nr_sev); i++) {
		uint64_t gpa = tdx ? img->tdx[i].gpa : img->sev[i].gpa;
		uint64_t size = tdx ? img->tdx[i].mem_size : img->sev[i].size;

		if (tdx && (img->tdx[i].attributes & FW_TDX_PAGE_AUG))
			continue;
		if (tdx && inside(gpa, size, img->gpa, img->gpa + img->size))
			continue;
		if (!inside(gpa, size, 0, o->mem)) {
			fprintf(stderr, "privmem: --firmware: %s section %u (gpa 0x%llx, 0x%llx bytes) "
				"is outside guest RAM (--mem)\n", tdx ? "TDX" : "SEV", i,
				(unsigned long long)gpa, (unsigned long long)size);
			return 2;
		}
		if (gpa + size > end)
			end = gpa + size;
	}
	fw->ram_end = (end + RAM_ALIGN - 1) & ~(RAM_ALIGN - 1);
	return 0;
}

int run_fw_load(const struct run_opts *o, bool tdx, struct run_fw *fw)
{
	char err[FW_ERR_LEN];
	size_t size = 0;
	int r;

	*fw = (struct run_fw){ 0 };
	fw->img = calloc(1, sizeof(*fw->img));
	if (!fw->img)
		return 1;
	r = fw_image_read(o->firmware, &fw->data, &size, err);
	if (!r)
		r = fw_image_parse(fw->img, fw->data, size, err);
	if (!r && !(tdx ? fw->img->has_tdx : fw->img->has_sev)) {
		snprintf(err, sizeof(err), "%s: no %s metadata: the firmware is not built for %s",
			 o->firmware, tdx ? "TDX" : "SEV", tdx ? "TDX" : "SEV-SNP");
		r = -EINVAL;
	}
	if (!r && !tdx && o->vcpus > 1 && !fw->img->has_reset_block) {
		snprintf(err, sizeof(err), "%s: no SEV-ES reset block: the APs have no reset vector",
			 o->firmware);
		r = -EINVAL;
	}
	if (r) {
		fprintf(stderr, "privmem: --firmware: %s\n", err);
		run_fw_free(fw);
		return r == -ENOMEM ? 1 : 2;
	}
	r = fw_layout(o, tdx, fw);
	if (r)
		run_fw_free(fw);
	return r;
}

void run_fw_free(struct run_fw *fw)
{
	free(fw->data);
	free(fw->img);
	*fw = (struct run_fw){ 0 };
}

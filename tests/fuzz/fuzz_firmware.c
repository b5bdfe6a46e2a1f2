/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the OVMF image parser (tools/fw_image.c) and the
 * measurements that read what it accepted (tools/measure.c).
 *
 * The input becomes the tail of a firmware image: zero-padded in front to
 * a whole number of 4 KiB pages, as the GUID table, the metadata offsets
 * (from the end) and the reset vector area all count from the end. An
 * image the parser accepts is measured for SNP (2 vCPUs, with kernel
 * hashes) and for TDX (both orders), when what the launch adds is small
 * enough to keep the fuzzer fast. Any read outside the image is a
 * sanitizer report; a crash or hang is a bug.
 *
 * Built by the fuzzing framework (tests/fuzz/, `make fuzz`) with
 * -fsanitize=fuzzer, or alone with `make fuzz-firmware`; its seeds are in
 * tests/fuzz/corpus/firmware/ (tests/fuzz/gen_firmware_seeds.py writes
 * them). tests/test_fuzz_firmware.c replays the seeds and their mutations
 * through the same entry in `make check`, without libFuzzer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
/* The code under test, compiled in: the fuzzing framework links a target
 * with libprivmem alone, and the CLI's sources are not in it. */
#include "../../tools/fw_image.c"
#include "../../tools/measure.c"

#define FUZZ_MAX_INPUT     (1u << 20)
#define FUZZ_MAX_MEASURED  (4u << 20)    /* launch memory measured per input */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t launch_mem(const struct fw_image *img, bool tdx)
{
	uint64_t total = 0;

	for (unsigned int i = 0; i < (tdx ? img->nr_tdx : img->nr_sev); i++)
		total += tdx ? img->tdx[i].mem_size : img->sev[i].size;
	return total;
}

static void fuzz_measure(const struct fw_image *img)
{
	static const struct measure_kernel_hashes hashes = { { 1 }, { 2 }, { 3 } };
	struct measure_snp_opts snp = { .vcpus = 2, .vcpu_sig = 0x00800f12, .guest_features = 1,
					.kernel = &hashes };
	uint8_t digest[MEASURE_DIGEST_SIZE];
	char err[FW_ERR_LEN];

	if (img->has_sev && launch_mem(img, false) <= FUZZ_MAX_MEASURED) {
		measure_snp(img, &snp, digest, err);
		snp.kernel = NULL;
		measure_snp(img, &snp, digest, err);
	}
	if (img->has_tdx && launch_mem(img, true) <= FUZZ_MAX_MEASURED) {
		measure_tdx(img, MEASURE_TDX_INTERLEAVED, digest, err);
		measure_tdx(img, MEASURE_TDX_ADD_THEN_EXTEND, digest, err);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t padded = (size + FW_PAGE - 1) / FW_PAGE * FW_PAGE;
	char err[FW_ERR_LEN];
	struct fw_image img;
	uint8_t *image;

	if (!size || size > FUZZ_MAX_INPUT)
		return 0;
	/* An exact-size buffer: a read past the image is past the allocation. */
	image = malloc(padded);
	if (!image)
		return 0;
	memset(image, 0, padded - size);
	memcpy(image + padded - size, data, size);
	if (!fw_image_parse(&img, image, padded, err))
		fuzz_measure(&img);
	free(image);
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * The firmware parser's fuzz target (tests/fuzz/fuzz_firmware.c), replayed
 * without libFuzzer: every seed of tests/fuzz/corpus/firmware/, the
 * hand-built image of tests/lib/fwimg.c, each of their truncations, and
 * seeded random mutations of the bytes the parser reads (the GUID table
 * and the metadata). The target must return for every input: a read
 * outside an input is a crash under `make asan`. The seeds themselves must
 * parse (a seed the parser refuses explores nothing).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <unistd.h>

#include "fuzz/fuzz_firmware.c"
#include "lib/fwimg.h"

static char corpus[PATH_MAX];

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Truncations (from the front: the target keeps the tail) and mutations
 * of one input. */
static unsigned long replay_around(const uint8_t *data, size_t size)
{
	uint8_t *m = malloc(size);
	unsigned long runs = 0;

	assert_non_null(m);
	LLVMFuzzerTestOneInput(data, size);
	for (size_t cut = 1; cut < size; cut += cut < 600 ? 1 : 509, runs++)
		LLVMFuzzerTestOneInput(data + cut, size - cut);
	for (int i = 0; i < 3000; i++, runs++) {
		size_t tail = size < 1024 ? size : 1024;   /* where the table and metadata are */

		memcpy(m, data, size);
		for (int k = 0, n = 1 + (int)(next() % 4); k < n; k++) {
			size_t at = size - 1 - next() % tail;

			m[at] = next() % 3 ? (uint8_t)next() : (uint8_t)(m[at] ^ (1u << (next() % 8)));
		}
		LLVMFuzzerTestOneInput(m, size);
	}
	free(m);
	return runs;
}

static uint8_t *read_all(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = malloc(1 << 20);

	assert_non_null(f);
	assert_non_null(buf);
	*size = fread(buf, 1, 1 << 20, f);
	fclose(f);
	return buf;
}

static void test_every_seed_parses_and_survives_its_mutations(void **state)
{
	struct dirent *e;
	DIR *d = opendir(corpus);
	int seeds = 0;

	assert_non_null(d);
	while ((e = readdir(d))) {
		char path[PATH_MAX + 256], err[FW_ERR_LEN] = "";
		size_t size, padded;
		struct fw_image img;
		uint8_t *data, *image;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", corpus, e->d_name);
		data = read_all(path, &size);
		padded = (size + FW_PAGE - 1) / FW_PAGE * FW_PAGE;
		image = calloc(1, padded);
		assert_non_null(image);
		memcpy(image + padded - size, data, size);
		if (fw_image_parse(&img, image, padded, err))
			fail_msg("seed %s does not parse: %s", e->d_name, err);
		replay_around(data, size);
		free(image);
		free(data);
		seeds++;
	}
	closedir(d);
	assert_true(seeds >= 4);
}

static void test_the_hand_built_image_survives_its_mutations(void **state)
{
	uint8_t *img = malloc(FWIMG_SIZE);

	assert_non_null(img);
	fwimg_build(img);
	assert_true(replay_around(img, FWIMG_SIZE) > 3000);
	free(img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_seed_parses_and_survives_its_mutations),
		cmocka_unit_test(test_the_hand_built_image_survives_its_mutations),
	};
	char self[PATH_MAX], probe[PATH_MAX + 64];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0)
		return 1;
	self[n] = '\0';
	/* The source tree: up from build/[x/]tests until the corpus. */
	snprintf(corpus, sizeof(corpus), "%s", dirname(self));
	for (int up = 0; up < 6; up++) {
		snprintf(probe, sizeof(probe), "%s/tests/fuzz/corpus/firmware", corpus);
		if (!access(probe, R_OK))
			break;
		snprintf(corpus, sizeof(corpus), "%s", dirname(corpus));
	}
	if (access(probe, R_OK) || snprintf(corpus, sizeof(corpus), "%s", probe) >= (int)sizeof(corpus)) {
		fprintf(stderr, "test_fuzz_firmware: tests/fuzz/corpus/firmware not found\n");
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}

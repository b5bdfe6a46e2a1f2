/* SPDX-License-Identifier: MIT */
/*
 * Replays fuzz inputs through a fuzz target without libFuzzer: each file
 * named on the command line, or every file of each directory named (in
 * name order), goes once through LLVMFuzzerTestOneInput(). With no
 * arguments it replays the target's checked-in corpus (FUZZ_CORPUS, set by
 * the Makefile), so `make check` runs every seed and every crash ever
 * found, deterministically. An input that breaks an invariant aborts, as
 * under libFuzzer; the last "replay:" line names it.
 *
 * The closing line has cmocka's form (one input, one test) so that
 * scripts/runtests.sh counts the inputs.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 0, 1 for a file that vanished (a running fuzzer's corpus), -1. */
static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long len;

	if (!f && errno == ENOENT)
		return 1;
	if (!f) {
		perror(path);
		return -1;
	}
	if (fseek(f, 0, SEEK_END) || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
		fclose(f);
		perror(path);
		return -1;
	}
	buf = malloc(len ? (size_t)len : 1);
	if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len) {
		free(buf);
		fclose(f);
		fprintf(stderr, "%s: short read\n", path);
		return -1;
	}
	fclose(f);
	printf("replay: %s (%ld bytes)\n", path, len);
	fflush(stdout);
	LLVMFuzzerTestOneInput(buf, (size_t)len);
	free(buf);
	return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

/* Returns the number of inputs replayed, -1 on an unreadable path. */
static int replay_path(const char *path)
{
	struct dirent **names;
	struct stat st;
	int n, done = 0;

	if (stat(path, &st)) {
		perror(path);
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return replay_file(path) ? -1 : 1;
	n = scandir(path, &names, NULL, by_name);
	if (n < 0) {
		perror(path);
		return -1;
	}
	for (int i = 0; i < n; i++) {
		char full[4096];

		if (names[i]->d_name[0] != '.' && done >= 0) {
			int r;

			snprintf(full, sizeof(full), "%s/%s", path, names[i]->d_name);
			r = replay_file(full);
			done = r < 0 ? -1 : done + !r;
		}
		free(names[i]);
	}
	free(names);
	return done;
}

int main(int argc, char **argv)
{
	static char *dflt[] = { NULL, FUZZ_CORPUS };
	int total = 0;

	if (argc < 2) {
		argc = 2;
		argv = dflt;
	}
	for (int i = 1; i < argc; i++) {
		int n = replay_path(argv[i]);

		if (n < 0)
			return 1;
		total += n;
	}
	if (!total) {
		fprintf(stderr, "replay: no inputs\n");
		return 1;
	}
	printf("[  PASSED  ] %d test(s).\n", total);
	return 0;
}

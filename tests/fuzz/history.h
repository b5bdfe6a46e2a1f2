/* SPDX-License-Identifier: MIT */
/*
 * The fuzz targets' input history: with FUZZ_HISTORY_DIR set, every input
 * is written there (as NNNNNNNN, in the order run) before it runs, and the
 * one 16 before it removed: a failure or a hang that depends on what
 * earlier inputs left behind, or a process killed without a report (no
 * crash unit), reproduces by replaying the directory (replay.c runs it in
 * name order). One copy per target (static): included by its .c file.
 */
#ifndef FUZZ_HISTORY_H
#define FUZZ_HISTORY_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define HISTORY 16

static const char *history_dir;
static unsigned int history_next;

static void history_init(void)
{
	history_dir = getenv("FUZZ_HISTORY_DIR");
}

static void history_add(const uint8_t *data, size_t len)
{
	char path[4096];
	FILE *f;

	if (!history_dir)
		return;
	if (history_next >= HISTORY) {
		snprintf(path, sizeof(path), "%s/%08u", history_dir, history_next - HISTORY);
		unlink(path);
	}
	snprintf(path, sizeof(path), "%s/%08u", history_dir, history_next++);
	f = fopen(path, "wb");
	if (f) {
		if (fwrite(data, 1, len, f) != len)
			perror(path);
		fclose(f);
	}
}

#endif

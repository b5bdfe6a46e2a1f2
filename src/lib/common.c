/* SPDX-License-Identifier: MIT */
#include "lib/common.h"

void pm_bug(const char *file, int line, const char *what)
{
	fprintf(stderr, "privmem: BUG at %s:%d: %s\n", file, line, what);
	fflush(stderr);
	abort();
}

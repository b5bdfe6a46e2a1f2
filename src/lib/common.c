/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include "lib/common.h"

void pm_bug(const char *file, int line, const char *what)
{
	fprintf(stderr, "privmem: BUG at %s:%d: %s\n", file, line, what);
	fflush(stderr);
	abort();
}

void pm_fatal(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "privmem: fatal: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	abort();
}

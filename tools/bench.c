/* SPDX-License-Identifier: MIT */
/* privmem bench: benchmarks beside their references (see bench_*). */
#include <stdio.h>
#include "cli.h"

int cmd_bench(int argc, char **argv)
{
	fprintf(stderr, "privmem: bench is not built yet\n");
	return 2;
}

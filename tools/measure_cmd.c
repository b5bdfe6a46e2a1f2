/* SPDX-License-Identifier: MIT */
/*
 * privmem measure: a confidential VM's launch measurement computed offline
 * from a description of its build, as the public calculators do. One
 * subcommand per architecture: realm
 * (measure_realm.c, Arm CCA's RIM). A minimal dispatcher: `privmem measure
 * snp|tdx` come from another branch and join this table.
 */
#include <stdio.h>
#include <string.h>
#include "cli.h"

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *what;
} measure_cmds[] = {
	{ "realm", cmd_measure_realm, "an Arm CCA realm's RIM (privmem measure realm --help)" },
};

static void measure_usage(FILE *out)
{
	fprintf(out, "usage: privmem measure TYPE [ARGS]\n\n"
		     "Computes a confidential VM's launch measurement offline.\n\ntypes:\n");
	for (size_t i = 0; i < sizeof(measure_cmds) / sizeof(measure_cmds[0]); i++)
		fprintf(out, "  %-7s %s\n", measure_cmds[i].name, measure_cmds[i].what);
}

int cmd_measure(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		measure_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	for (size_t i = 0; i < sizeof(measure_cmds) / sizeof(measure_cmds[0]); i++)
		if (!strcmp(argv[1], measure_cmds[i].name))
			return measure_cmds[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "privmem measure: unknown type '%s'\n", argv[1]);
	measure_usage(stderr);
	return 2;
}

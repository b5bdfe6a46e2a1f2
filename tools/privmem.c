/* SPDX-License-Identifier: MIT */
/*
 * privmem: run a protected VM scenario and report on it, or benchmark.
 *
 * Subcommands: run (a protected VM scenario and its report), bench
 * (benchmarks beside their references), exec (a program written for
 * Linux KVM, run on privmem through the LD_PRELOAD interposer) and
 * measure (the launch measurement of a firmware image, or a realm's RIM,
 * offline).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <privmem/privmem.h>
#include "cli.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: privmem [--help] [--version] COMMAND [ARGS]\n"
		"\n"
		"privmem %s: confidential-VM private memory (guest_memfd, memory\n"
		"attributes, KVM's uAPI) simulated in user space.\n"
		"\n"
		"commands:\n"
		"  run     run a protected VM scenario and report on it (privmem run --help)\n"
		"  bench   measure conversions, faults and accesses (privmem bench --help)\n"
		"  exec    run a KVM program on privmem (privmem exec --help)\n"
		"  measure the SEV-SNP launch digest or TDX MRTD of a firmware image, or an\n"
		"          Arm CCA realm's RIM (privmem measure --help)\n"
		"\n"
		"options:\n"
		"  -h, --help      print this help and exit\n"
		"  -V, --version   print the version and exit\n"
		"\n"
		"man privmem for the whole manual.\n",
		pm_version());
}

static const struct {
	const char *name;
	const char *prog;            /* argv[0] for it: getopt's messages start with it */
	int (*fn)(int argc, char **argv);
} commands[] = {
	{ "run", "privmem run", cmd_run },
	{ "bench", "privmem bench", cmd_bench },
	{ "exec", "privmem exec", cmd_exec },
	{ "measure", "privmem measure", cmd_measure },
};

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	argv[0] = (char *)"privmem";
	while ((c = getopt_long(argc, argv, "+hV", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("privmem %s\n", pm_version());
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind == argc) {
		usage(stderr);          /* a command is needed: a usage error */
		return 2;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (!strcmp(argv[optind], commands[i].name)) {
			argv[optind] = (char *)commands[i].prog;
			return commands[i].fn(argc - optind, argv + optind);
		}
	}
	fprintf(stderr, "privmem: unknown command '%s'\n", argv[optind]);
	usage(stderr);
	return 2;
}

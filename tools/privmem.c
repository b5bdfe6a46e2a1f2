/* SPDX-License-Identifier: MIT */
/*
 * privmem: run a protected VM scenario and report on it, or benchmark.
 *
 * The subcommands `run` and `bench` arrive with the MMU and vCPU engine;
 * until then the CLI prints its help and version.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <privmem/privmem.h>

static void usage(FILE *out)
{
	fprintf(out,
		"usage: privmem [--help] [--version] COMMAND [ARGS]\n"
		"\n"
		"privmem %s: confidential-VM private memory (guest_memfd, memory\n"
		"attributes, KVM's uAPI) simulated in user space.\n"
		"\n"
		"commands:\n"
		"  run     run a protected VM scenario and report on it (not built yet)\n"
		"  bench   measure conversions, faults and accesses (not built yet)\n"
		"\n"
		"options:\n"
		"  -h, --help      print this help and exit\n"
		"  -V, --version   print the version and exit\n",
		pm_version());
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

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
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[optind], "run") || !strcmp(argv[optind], "bench")) {
		fprintf(stderr, "privmem: '%s' is not built yet (it needs the MMU and vCPU engine)\n",
			argv[optind]);
		usage(stderr);
		return 2;
	}
	fprintf(stderr, "privmem: unknown command '%s'\n", argv[optind]);
	usage(stderr);
	return 2;
}

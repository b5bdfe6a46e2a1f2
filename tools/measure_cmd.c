/* SPDX-License-Identifier: MIT */
/*
 * privmem measure: the launch measurement a confidential VM booted from a
 * firmware image will have, computed offline (measure.h), printed as one
 * line of hex. Exit status 0, 2 for bad usage or a bad input (a missing,
 * truncated or malformed image, a firmware without what the measurement
 * needs), 1 when the host fails (out of memory). `privmem measure realm`
 * (measure_realm.c), an Arm CCA realm's RIM from a description of its
 * build, is a subcommand of its own.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/sha.h>
#include "cli.h"
#include "fw_image.h"
#include "measure.h"

struct measure_cmd {
	bool tdx;
	const char *firmware, *kernel, *initrd, *append;
	struct measure_snp_opts snp;
	enum measure_tdx_order order;
	bool verbose;
};

static void measure_usage(FILE *out)
{
	fprintf(out,
		"usage: privmem measure snp --firmware FILE [--vcpus N] [--vcpu-type TYPE |\n"
		"                           --vcpu-sig SIG] [--guest-features X] [--kernel FILE\n"
		"                           [--initrd FILE] [--append CMDLINE]] [--verbose]\n"
		"       privmem measure tdx --firmware FILE [--add-then-extend] [--verbose]\n"
		"       privmem measure realm [--json] [--rim-version 1|2] FILE  (its --help)\n"
		"\n"
		"Prints, as hex, the launch measurement of a VM booted from an OVMF image the\n"
		"way QEMU and KVM launch it: the SEV-SNP launch digest (as the PSP computes it\n"
		"and sev-snp-measure recomputes it) or the TDX MRTD (as the TDX module does).\n"
		"Exit status 2 for bad usage or an image that is missing, truncated or\n"
		"malformed, or lacks the SEV or TDX metadata the measurement needs.\n"
		"\n"
		"snp:\n"
		"  --firmware FILE       the OVMF image (e.g. Debian's /usr/share/ovmf/OVMF.fd)\n"
		"  --vcpus N             vCPUs, 1..%d (default 1): one VMSA each\n"
		"  --vcpu-type TYPE      the vCPU model, for its CPUID signature (default\n"
		"                        EPYC-v4):\n", MEASURE_MAX_VCPUS);
	measure_vcpu_types(out);
	fprintf(out,
		"\n"
		"  --vcpu-sig SIG        the signature itself (CPUID leaf 1 EAX), e.g. 0x800f12\n"
		"  --guest-features X    the VMSA's SEV_FEATURES (default 0x1: SNP active)\n"
		"  --kernel FILE         a kernel booted directly (with --initrd, --append): its,\n"
		"                        the initrd's and the command line's SHA-256 in the\n"
		"                        firmware's kernel hashes page\n"
		"tdx:\n"
		"  --firmware FILE       the OVMF image\n"
		"  --add-then-extend     add all of a section's pages before extending any (older\n"
		"                        out-of-tree KVM); default: upstream's page by page\n"
		"both:\n"
		"  --verbose             list what is measured on stderr\n");
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	if (*s == '-' || *s == '+')
		return -EINVAL;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int measure_parse(int argc, char **argv, struct measure_cmd *cmd)
{
	static const struct option opts[] = {
		{ "firmware", required_argument, NULL, 'f' }, { "vcpus", required_argument, NULL, 'c' },
		{ "vcpu-type", required_argument, NULL, 't' }, { "vcpu-sig", required_argument, NULL, 's' },
		{ "guest-features", required_argument, NULL, 'g' },
		{ "kernel", required_argument, NULL, 'k' }, { "initrd", required_argument, NULL, 'i' },
		{ "append", required_argument, NULL, 'a' },
		{ "add-then-extend", no_argument, NULL, 'A' }, { "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	bool snp_only = false, tdx_only = false, typed = false;
	uint64_t v;
	int c;

	*cmd = (struct measure_cmd){ .snp = { .vcpus = 1, .guest_features = 1 } };
	measure_vcpu_sig("EPYC-v4", &cmd->snp.vcpu_sig);
	/* 0, not 1: getopt starts afresh and permutes (the subcommand may come
	 * before or after the options), whatever main's "+" asked for. */
	optind = 0;
	while ((c = getopt_long(argc, argv, "hv", opts, NULL)) != -1) {
		switch (c) {
		case 'f': cmd->firmware = optarg; break;
		case 'c':
			if (cli_parse_uint(optarg, 1, MEASURE_MAX_VCPUS, &cmd->snp.vcpus))
				return cli_bad_arg("--vcpus", optarg);
			snp_only = true;
			break;
		case 't':
			if (typed || measure_vcpu_sig(optarg, &cmd->snp.vcpu_sig))
				return cli_bad_arg("--vcpu-type", optarg);
			typed = snp_only = true;
			break;
		case 's':
			if (typed || parse_u64(optarg, UINT32_MAX, &v))
				return cli_bad_arg("--vcpu-sig", optarg);
			cmd->snp.vcpu_sig = (uint32_t)v;
			typed = snp_only = true;
			break;
		case 'g':
			if (parse_u64(optarg, UINT64_MAX, &cmd->snp.guest_features))
				return cli_bad_arg("--guest-features", optarg);
			snp_only = true;
			break;
		case 'k': cmd->kernel = optarg; snp_only = true; break;
		case 'i': cmd->initrd = optarg; snp_only = true; break;
		case 'a': cmd->append = optarg; snp_only = true; break;
		case 'A': cmd->order = MEASURE_TDX_ADD_THEN_EXTEND; tdx_only = true; break;
		case 'v': cmd->verbose = true; break;
		case 'h':
			measure_usage(stdout);
			exit(0);
		default:
			measure_usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "privmem: measure: which launch, snp or tdx? (see --help)\n");
		return 2;
	}
	if (strcmp(argv[optind], "snp") && strcmp(argv[optind], "tdx"))
		return cli_bad_arg("measurement", argv[optind]);
	cmd->tdx = !strcmp(argv[optind], "tdx");
	if (optind + 1 < argc)
		return cli_bad_arg("argument", argv[optind + 1]);
	if (!cmd->firmware) {
		fprintf(stderr, "privmem: measure: --firmware FILE is required\n");
		return 2;
	}
	if (cmd->tdx ? snp_only : tdx_only) {
		fprintf(stderr, "privmem: measure %s: an option given applies to %s only (see --help)\n",
			argv[optind], cmd->tdx ? "snp" : "tdx");
		return 2;
	}
	if ((cmd->initrd || cmd->append) && !cmd->kernel) {
		fprintf(stderr, "privmem: measure snp: --initrd and --append need --kernel\n");
		return 2;
	}
	if (cmd->snp.vcpu_sig == 0 && typed) {
		fprintf(stderr, "privmem: measure snp: a vCPU signature of 0 is no CPU\n");
		return 2;
	}
	return 0;
}

/* The hashes of --kernel, --initrd and --append: 0 or the exit status. */
static int kernel_hashes(const struct measure_cmd *cmd, struct measure_kernel_hashes *h)
{
	char err[FW_ERR_LEN];
	const char *line = cmd->append ? cmd->append : "";

	/* The command line as QEMU hashes it: with its terminating NUL. */
	SHA256((const uint8_t *)line, strlen(line) + 1, h->cmdline);
	if (measure_sha256_file(cmd->kernel, h->kernel, err) ||
	    measure_sha256_file(cmd->initrd, h->initrd, err)) {
		fprintf(stderr, "privmem: measure: %s\n", err);
		return 2;
	}
	return 0;
}

static void list_measured(const struct fw_image *img, const struct measure_cmd *cmd)
{
	fprintf(stderr, "firmware %s: %zu bytes at gpa 0x%llx\n", cmd->firmware, img->size,
		(unsigned long long)img->gpa);
	if (!cmd->tdx) {
		for (unsigned int i = 0; i < img->nr_sev; i++)
			fprintf(stderr, "  SEV section %u: %-17s gpa 0x%08x size 0x%x\n", i,
				fw_sev_type_name(img->sev[i].type), img->sev[i].gpa, img->sev[i].size);
		fprintf(stderr, "  %u VMSA(s): BSP eip 0xfffffff0, APs eip 0x%x, signature 0x%x, "
			"features 0x%llx\n", cmd->snp.vcpus, img->ap_reset_eip, cmd->snp.vcpu_sig,
			(unsigned long long)cmd->snp.guest_features);
		return;
	}
	for (unsigned int i = 0; i < img->nr_tdx; i++) {
		const struct fw_tdx_section *s = &img->tdx[i];

		fprintf(stderr, "  TDX section %u: %-12s gpa 0x%09llx size 0x%llx data 0x%x+0x%x%s%s\n",
			i, fw_tdx_type_name(s->type), (unsigned long long)s->gpa,
			(unsigned long long)s->mem_size, s->data_offset, s->raw_size,
			s->attributes & FW_TDX_MR_EXTEND ? " MR_EXTEND" : "",
			s->attributes & FW_TDX_PAGE_AUG ? " PAGE_AUG (not measured)" : "");
	}
}

int cmd_measure(int argc, char **argv)
{
	struct measure_kernel_hashes hashes;
	uint8_t digest[MEASURE_DIGEST_SIZE], *data = NULL;
	char err[FW_ERR_LEN];
	struct measure_cmd cmd;
	struct fw_image img;
	size_t size = 0;
	int r;

	/* An Arm CCA realm is measured from a description of its build, not
	 * from a firmware image: a subcommand of its own, named first. */
	if (argc > 1 && !strcmp(argv[1], "realm")) {
		argv[1] = (char *)"privmem measure realm";   /* getopt's messages start with it */
		return cmd_measure_realm(argc - 1, argv + 1);
	}
	r = measure_parse(argc, argv, &cmd);
	if (r)
		return r;
	if (cmd.kernel) {
		r = kernel_hashes(&cmd, &hashes);
		if (r)
			return r;
		cmd.snp.kernel = &hashes;
	}
	r = fw_image_read(cmd.firmware, &data, &size, err);
	if (!r)
		r = fw_image_parse(&img, data, size, err);
	if (!r && cmd.verbose)
		list_measured(&img, &cmd);
	if (!r)
		r = cmd.tdx ? measure_tdx(&img, cmd.order, digest, err)
			    : measure_snp(&img, &cmd.snp, digest, err);
	free(data);
	if (r) {
		fprintf(stderr, "privmem: measure %s: %s\n", cmd.tdx ? "tdx" : "snp", err);
		return r == -ENOMEM ? 1 : 2;
	}
	for (int i = 0; i < MEASURE_DIGEST_SIZE; i++)
		printf("%02x", digest[i]);
	printf("\n");
	return 0;
}

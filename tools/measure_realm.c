/* SPDX-License-Identifier: MIT */
/*
 * privmem measure realm: an Arm CCA realm's Realm Initial Measurement
 * (RIM) computed offline from a description of its build, as the public
 * realm-measurement calculators do, with the RMM's own rule (the
 * library's rim.h: RMM v1.0 by default, v2.0 on request).
 *
 * The description is text, one directive per line, '#' starts a comment,
 * numbers in C notation (decimal, 0x...). The realm parameters come first:
 *   hash sha256|sha512            RmiRealmParams.algorithm (default sha256)
 *   ipa-bits N                    s2sz, 32..48 (default 40)
 *   num-bps N / num-wps N         the raw fields: the count minus one, 1..15 (default 1)
 *   sve-vl N / pmu-ctrs N         (default 0)
 *   flags sve,pmu|none            feature flags (default none)
 *   rim-version 1|2               the RMM's rule: 1 measures RTT_INIT_RIPAS (default)
 * then the build, measured in the order given:
 *   ripas BASE TOP                RTT_INIT_RIPAS of [BASE, TOP) on fresh RTTs, as
 *                                 KVM makes them: one descriptor per RTT entry, the
 *                                 largest of 1G, 2M, 4K aligned and fitting at each
 *                                 address (v1.0 only)
 *   data IPA FILE [measure|no-measure]   DATA_CREATE of FILE's contents from IPA, one
 *                                 4 KiB granule after the other (the last one padded
 *                                 with zeroes); measure (default) hashes the contents
 *   zero IPA PAGES [measure|no-measure]  DATA_CREATE of zeroed granules
 *   rec [runnable|not-runnable] [pc=N] [x0=N] ... [x7=N]   REC_CREATE (default
 *                                 runnable, pc and registers 0); only runnable RECs
 *                                 are measured
 * A relative FILE is found next to the description. `privmem run --vm-type
 * realm` builds a realm described by `ripas`/`data` pairs for each
 * KVM_ARM_RMI_POPULATE and one `rec` per vCPU.
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "models/cca/rim.h"

#define GRANULE 4096ULL

struct build {
	struct rim_realm_params p;
	int rim_version;
	bool started;                       /* RIM0 taken: parameters fixed */
	bool forced;                        /* --rim-version: the file's is ignored */
	uint8_t rim[RIM_MAX_SIZE];
	uint64_t nr_ripas, nr_data, nr_rec;
	const char *dir;                    /* the description's directory */
	const char *file;                   /* for messages */
	unsigned int line;
};

static int fail(const struct build *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(const struct build *b, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "privmem measure realm: %s:%u: ", b->file, b->line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 2;
}

static bool parse_u64(const char *s, uint64_t *v)
{
	char *end;

	if (!s || *s == '-')
		return false;
	errno = 0;
	*v = strtoull(s, &end, 0);
	return !errno && end != s && !*end;
}

static bool parse_small(const char *s, uint64_t max, uint32_t *v)
{
	uint64_t x;

	if (!parse_u64(s, &x) || x > max)
		return false;
	*v = (uint32_t)x;
	return true;
}

/* ---- parameters ---- */

static int param_flags(struct build *b, const char *v)
{
	char buf[64], *save = NULL;

	b->p.flags = 0;
	if (!v || strlen(v) >= sizeof(buf))
		return fail(b, "bad flags '%s'", v ? v : "");
	strcpy(buf, v);
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (!strcmp(t, "sve"))
			b->p.flags |= 2;
		else if (!strcmp(t, "pmu"))
			b->p.flags |= 4;
		else if (strcmp(t, "none"))
			return fail(b, "unknown flag '%s' (sve, pmu, none)", t);
	}
	return 0;
}

static int param(struct build *b, const char *key, const char *v)
{
	bool ok = true;

	if (b->started)
		return fail(b, "'%s': realm parameters come before the build", key);
	if (!strcmp(key, "hash")) {
		ok = v && (!strcmp(v, "sha256") || !strcmp(v, "sha512"));
		if (ok)
			b->p.algorithm = !strcmp(v, "sha512") ? RMI_HASH_SHA_512 : RMI_HASH_SHA_256;
	} else if (!strcmp(key, "ipa-bits")) {
		ok = parse_small(v, 48, &b->p.s2sz) && b->p.s2sz >= 32;
	} else if (!strcmp(key, "num-bps")) {
		ok = parse_small(v, 15, &b->p.num_bps) && b->p.num_bps;
	} else if (!strcmp(key, "num-wps")) {
		ok = parse_small(v, 15, &b->p.num_wps) && b->p.num_wps;
	} else if (!strcmp(key, "sve-vl")) {
		ok = parse_small(v, 15, &b->p.sve_vl);
	} else if (!strcmp(key, "pmu-ctrs")) {
		ok = parse_small(v, 31, &b->p.pmu_num_ctrs);
	} else if (!strcmp(key, "flags")) {
		return param_flags(b, v);
	} else if (!strcmp(key, "rim-version")) {
		uint32_t x;

		ok = parse_small(v, 2, &x) && x >= 1;
		if (!b->forced)
			b->rim_version = (int)x;
	} else {
		return fail(b, "unknown directive '%s'", key);
	}
	return ok ? 0 : fail(b, "bad value for '%s'", key);
}

static void start(struct build *b)
{
	if (!b->started) {
		rim_realm_params(&b->p, b->rim);
		b->started = true;
	}
}

/* ---- the build ---- */

static bool protected_ipa(const struct build *b, uint64_t ipa)
{
	return ipa < (1ULL << (b->p.s2sz - 1));
}

static void ripas_one(void *arg, uint64_t base, uint64_t top)
{
	struct build *b = arg;

	rim_extend_ripas(b->p.algorithm, b->rim, base, top);
	b->nr_ripas++;
}

static int build_ripas(struct build *b, char **tok, int n)
{
	uint64_t base, top;

	if (n != 3 || !parse_u64(tok[1], &base) || !parse_u64(tok[2], &top))
		return fail(b, "%s", "usage: ripas BASE TOP");
	if (base % GRANULE || top % GRANULE || base >= top || !protected_ipa(b, top - 1))
		return fail(b, "%s", "ripas: BASE < TOP, 4K aligned, in the protected half");
	start(b);
	if (b->rim_version == 1)
		rim_ripas_blocks(base, top, ripas_one, b);
	return 0;
}

static int measure_flag(struct build *b, char **tok, int n, int at, uint64_t *flags)
{
	*flags = RMI_MEASURE_CONTENT;
	if (n <= at)
		return 0;
	if (n > at + 1 || (strcmp(tok[at], "measure") && strcmp(tok[at], "no-measure")))
		return fail(b, "%s", "expected measure or no-measure");
	*flags = strcmp(tok[at], "measure") ? RMI_NO_MEASURE_CONTENT : RMI_MEASURE_CONTENT;
	return 0;
}

static int data_granules(struct build *b, uint64_t ipa, FILE *f, uint64_t pages, uint64_t flags)
{
	static uint8_t g[GRANULE];

	start(b);
	for (uint64_t i = 0; f ? !feof(f) : i < pages; i++, ipa += GRANULE) {
		size_t got = 0;

		memset(g, 0, sizeof(g));
		if (f) {
			got = fread(g, 1, sizeof(g), f);
			if (ferror(f))
				return fail(b, "%s", "data: cannot read the file");
			if (!got && i)
				break;
		}
		if (!protected_ipa(b, ipa))
			return fail(b, "%s", "data: past the protected half");
		rim_extend_data(b->p.algorithm, b->rim, ipa, flags, g);
		b->nr_data++;
		if (f && got < sizeof(g))
			break;
	}
	return 0;
}

static int build_data(struct build *b, char **tok, int n)
{
	char path[4096];
	uint64_t ipa, flags;
	FILE *f;
	int r;

	if (n < 3 || !parse_u64(tok[1], &ipa) || ipa % GRANULE || !protected_ipa(b, ipa))
		return fail(b, "%s", "usage: data IPA FILE [measure|no-measure] (IPA 4K aligned, protected)");
	if (measure_flag(b, tok, n, 3, &flags))
		return 2;
	if (tok[2][0] == '/' || !b->dir)
		snprintf(path, sizeof(path), "%s", tok[2]);
	else
		snprintf(path, sizeof(path), "%s/%s", b->dir, tok[2]);
	f = fopen(path, "rb");
	if (!f)
		return fail(b, "data: cannot open '%s'", path);
	r = data_granules(b, ipa, f, 0, flags);
	fclose(f);
	return r;
}

static int build_zero(struct build *b, char **tok, int n)
{
	uint64_t ipa, pages, flags;

	if (n < 3 || !parse_u64(tok[1], &ipa) || !parse_u64(tok[2], &pages) || ipa % GRANULE ||
	    !pages || pages > (1ULL << 36))
		return fail(b, "%s", "usage: zero IPA PAGES [measure|no-measure]");
	if (measure_flag(b, tok, n, 3, &flags))
		return 2;
	return data_granules(b, ipa, NULL, pages, flags);
}

static int build_rec(struct build *b, char **tok, int n)
{
	struct rim_rec_params r = { .flags = RMI_REC_FLAG_RUNNABLE };

	for (int i = 1; i < n; i++) {
		uint64_t v;

		if (!strcmp(tok[i], "runnable")) {
			r.flags = RMI_REC_FLAG_RUNNABLE;
		} else if (!strcmp(tok[i], "not-runnable")) {
			r.flags = 0;
		} else if (!strncmp(tok[i], "pc=", 3) && parse_u64(tok[i] + 3, &v)) {
			r.pc = v;
		} else if (tok[i][0] == 'x' && tok[i][1] >= '0' && tok[i][1] <= '7' && tok[i][2] == '=' &&
			   parse_u64(tok[i] + 3, &v)) {
			r.gprs[tok[i][1] - '0'] = v;
		} else {
			return fail(b, "rec: bad '%s' (runnable, not-runnable, pc=N, x0=N..x7=N)", tok[i]);
		}
	}
	start(b);
	if (r.flags & RMI_REC_FLAG_RUNNABLE) {
		rim_extend_rec(b->p.algorithm, b->rim, &r);
		b->nr_rec++;
	}
	return 0;
}

static int directive(struct build *b, char **tok, int n)
{
	if (!strcmp(tok[0], "ripas"))
		return build_ripas(b, tok, n);
	if (!strcmp(tok[0], "data"))
		return build_data(b, tok, n);
	if (!strcmp(tok[0], "zero"))
		return build_zero(b, tok, n);
	if (!strcmp(tok[0], "rec"))
		return build_rec(b, tok, n);
	if (n > 2)
		return fail(b, "'%s' takes one value", tok[0]);
	return param(b, tok[0], n > 1 ? tok[1] : NULL);
}

static int read_description(struct build *b, FILE *in)
{
	char line[8192];

	while (fgets(line, sizeof(line), in)) {
		char *tok[16], *save = NULL, *hash = strchr(line, '#');
		int n = 0, r;

		b->line++;
		if (hash)
			*hash = '\0';
		for (char *t = strtok_r(line, " \t\r\n", &save); t && n < 16; t = strtok_r(NULL, " \t\r\n", &save))
			tok[n++] = t;
		if (!n)
			continue;
		r = directive(b, tok, n);
		if (r)
			return r;
	}
	if (ferror(in)) {
		fprintf(stderr, "privmem measure realm: cannot read %s\n", b->file);
		return 1;
	}
	start(b);
	return 0;
}

/* ---- output ---- */

static void print_hex(FILE *out, const uint8_t *d, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fprintf(out, "%02x", d[i]);
}

static void print_result(const struct build *b, bool json)
{
	size_t n = rim_hash_size(b->p.algorithm);
	const char *hash = b->p.algorithm == RMI_HASH_SHA_512 ? "sha512" : "sha256";

	if (json) {
		printf("{\"schema\": 1, \"type\": \"realm\", \"hash\": \"%s\", \"rim_version\": %d, \"rim\": \"",
		       hash, b->rim_version);
		print_hex(stdout, b->rim, n);
		printf("\", \"descriptors\": {\"ripas\": %llu, \"data\": %llu, \"rec\": %llu}}\n",
		       (unsigned long long)b->nr_ripas, (unsigned long long)b->nr_data,
		       (unsigned long long)b->nr_rec);
		return;
	}
	printf("rim          ");
	print_hex(stdout, b->rim, n);
	printf("\nhash         %s, RMM v%d.0 rule%s\n", hash, b->rim_version,
	       b->rim_version == 1 ? " (RTT_INIT_RIPAS measured)" : " (RTT_INIT_RIPAS not measured)");
	printf("descriptors  ripas %llu, data %llu, rec %llu\n", (unsigned long long)b->nr_ripas,
	       (unsigned long long)b->nr_data, (unsigned long long)b->nr_rec);
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: privmem measure realm [--json] [--rim-version 1|2] FILE\n"
		"\n"
		"Computes an Arm CCA realm's initial measurement (RIM) from a description of\n"
		"its build (FILE, or - for stdin): realm parameters, then RTT_INIT_RIPAS\n"
		"ranges, DATA_CREATE granules and RECs in build order. The format is in\n"
		"privmem(1) (one directive per line: hash, ipa-bits, num-bps, num-wps,\n"
		"sve-vl, pmu-ctrs, flags, rim-version, ripas, data, zero, rec). Exit status\n"
		"2 for a bad description or usage.\n"
		"\n"
		"  --json             print one JSON object\n"
		"  --rim-version N    1: RMM v1.0's rule (default), 2: v2.0's (overrides FILE)\n"
		"  -h, --help         print this help and exit\n");
}

int cmd_measure_realm(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "rim-version", required_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct build b = { .p = { .s2sz = 40, .num_bps = 1, .num_wps = 1 }, .rim_version = 1 };
	int c, force_version = 0, r;
	bool json = false;
	char *dircopy = NULL;
	FILE *in;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'v':
			if (strcmp(optarg, "1") && strcmp(optarg, "2"))
				return cli_bad_arg("--rim-version", optarg);
			force_version = optarg[0] - '0';
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	b.file = argv[optind];
	if (!strcmp(b.file, "-")) {
		in = stdin;
	} else {
		in = fopen(b.file, "r");
		if (!in) {
			fprintf(stderr, "privmem measure realm: cannot open %s: %s\n", b.file, strerror(errno));
			return 2;
		}
		dircopy = strdup(b.file);
		b.dir = dircopy ? dirname(dircopy) : NULL;
	}
	if (force_version) {
		b.rim_version = force_version;
		b.forced = true;
	}
	r = read_description(&b, in);
	if (in != stdin)
		fclose(in);
	if (!r)
		print_result(&b, json);
	free(dircopy);
	return r;
}

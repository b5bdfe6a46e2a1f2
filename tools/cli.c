/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <privmem/privmem.h>
#include "cli.h"

int cli_parse_vm_type(const char *s, unsigned long *type)
{
	static const struct { const char *name; unsigned long type; } types[] = {
		{ "sw", KVM_X86_SW_PROTECTED_VM },
		{ "default", KVM_X86_DEFAULT_VM },
		{ "pkvm", PM_VM_TYPE_PKVM },
		{ "snp", KVM_X86_SNP_VM },
		{ "tdx", KVM_X86_TDX_VM },
	};

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		if (!strcmp(s, types[i].name)) {
			*type = types[i].type;
			return 0;
		}
	}
	return -EINVAL;
}

int cli_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned int shift = 0;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	default: break;
	}
	if (*end || v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

int cli_parse_uint(const char *s, unsigned int min, unsigned int max, unsigned int *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < min || v > max)
		return -EINVAL;
	*out = (unsigned int)v;
	return 0;
}

int cli_bad_arg(const char *opt, const char *val)
{
	fprintf(stderr, "privmem: bad %s '%s' (see --help)\n", opt, val);
	return 2;
}

double cli_elapsed(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

void cli_json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

void cli_report_checks(const char *const *names, const uint64_t *passed, const uint64_t *failed,
		       int n, const char *guest_failure, bool fail, bool json)
{
	uint64_t total_passed = 0, total_failed = 0;
	bool first = true;

	printf(json ? ",\"checks\":{" : "checks\n");
	for (int c = 0; c < n; c++) {
		total_passed += passed[c];
		total_failed += failed[c];
		if (!passed[c] && !failed[c])
			continue;
		if (json)
			printf("%s\"%s\":{\"passed\":%" PRIu64 ",\"failed\":%" PRIu64 "}", first ? "" : ",",
			       names[c], passed[c], failed[c]);
		else
			printf("  %-36s %10" PRIu64 " passed, %" PRIu64 " failed\n", names[c], passed[c],
			       failed[c]);
		first = false;
	}
	if (json) {
		printf("},\"guest_failure\":");
		if (guest_failure)
			cli_json_string(guest_failure);
		else
			printf("null");
		printf(",\"result\":\"%s\"}\n", fail ? "FAIL" : "PASS");
		return;
	}
	if (guest_failure)
		printf("guest failure  %s\n", guest_failure);
	printf("result         %s (%" PRIu64 " checks passed, %" PRIu64 " failed)\n", fail ? "FAIL" : "PASS",
	       total_passed, total_failed);
}

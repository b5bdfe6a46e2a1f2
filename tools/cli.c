/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <privmem/privmem.h>
#include "cli.h"

/* The VM types the CLI knows, by name; --vm-type takes the numbers too. */
static const struct { const char *name; unsigned long type; } cli_vm_types[] = {
	{ "default", KVM_X86_DEFAULT_VM },
	{ "sw", KVM_X86_SW_PROTECTED_VM },
	{ "snp", KVM_X86_SNP_VM },
	{ "tdx", KVM_X86_TDX_VM },
	{ "pkvm", PM_VM_TYPE_PKVM },
	{ "realm", PM_VM_TYPE_REALM },
};

int cli_parse_vm_type(const char *s, unsigned long *type)
{
	for (size_t i = 0; i < sizeof(cli_vm_types) / sizeof(cli_vm_types[0]); i++) {
		char num[24];

		snprintf(num, sizeof(num), "%lu", cli_vm_types[i].type);
		if (!strcmp(s, cli_vm_types[i].name) || !strcmp(s, num)) {
			*type = cli_vm_types[i].type;
			return 0;
		}
	}
	return -EINVAL;
}

const char *cli_vm_type_name(unsigned long type)
{
	for (size_t i = 0; i < sizeof(cli_vm_types) / sizeof(cli_vm_types[0]); i++)
		if (cli_vm_types[i].type == type)
			return cli_vm_types[i].name;
	return NULL;
}

/* Digits only from the first character: strtoull would take leading
 * blanks, a sign (and wrap "-1" round to 2^64 - 1) or a base prefix. */
static bool cli_starts_with_digit(const char *s)
{
	return *s >= '0' && *s <= '9';
}

int cli_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned int shift = 0;

	if (!cli_starts_with_digit(s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
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
	unsigned long long v;

	if (!cli_starts_with_digit(s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*out = (unsigned int)v;
	return 0;
}

int cli_check_pool_env(void)
{
	const char *size_s = getenv("PRIVMEM_POOL_SIZE"), *wm_s = getenv("PRIVMEM_POOL_WATERMARK");
	uint64_t size = 4ULL << 30, wm = 0;

	if (size_s && (cli_parse_size(size_s, &size) || !size || size % (2ULL << 20))) {
		fprintf(stderr, "privmem: bad PRIVMEM_POOL_SIZE=%s (bytes with an optional K/M/G/T "
			"suffix, a positive multiple of 2M)\n", size_s);
		return 2;
	}
	if (wm_s && cli_parse_size(wm_s, &wm)) {
		fprintf(stderr, "privmem: bad PRIVMEM_POOL_WATERMARK=%s (bytes with an optional "
			"K/M/G/T suffix)\n", wm_s);
		return 2;
	}
	if (wm > size) {
		fprintf(stderr, "privmem: PRIVMEM_POOL_WATERMARK=%s is more than the pool's size "
			"(PRIVMEM_POOL_SIZE=%s)\n", wm_s, size_s ? size_s : "4G, the default");
		return 2;
	}
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

void cli_json_string(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(out, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(out, "\\u%04x", *s);
		else
			fputc(*s, out);
	}
	fputc('"', out);
}

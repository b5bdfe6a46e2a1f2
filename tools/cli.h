/* SPDX-License-Identifier: MIT */
/* Shared pieces of the privmem CLI: argument parsing and output helpers. */
#ifndef PM_TOOLS_CLI_H
#define PM_TOOLS_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define PM_MIN_U64(a, b) ((uint64_t)(a) < (uint64_t)(b) ? (uint64_t)(a) : (uint64_t)(b))
#define PM_ALIGN_DOWN_U64(x, a) ((uint64_t)(x) & ~((uint64_t)(a) - 1))

/* "sw", "default" (and the models' names as they land) -> KVM VM type. */
int cli_parse_vm_type(const char *s, unsigned long *type);
/* "512M", "2G", "4096" -> bytes (K/M/G suffixes, powers of 1024). */
int cli_parse_size(const char *s, uint64_t *out);
int cli_parse_uint(const char *s, unsigned int min, unsigned int max, unsigned int *out);
/* Prints "privmem: bad OPTION 'VALUE'" and returns 2 (usage error). */
int cli_bad_arg(const char *opt, const char *val);
double cli_elapsed(const struct timespec *t0);
/* Prints s as a JSON string literal. */
void cli_json_string(const char *s);

/* The end of a run's report: the checks that ran (names[i], passed[i],
 * failed[i] of n), the guest's failure message if any (NULL: none) and the
 * result, FAIL if `fail`. As text lines, or (json) as the last members of
 * the report's object and its closing brace. */
void cli_report_checks(const char *const *names, const uint64_t *passed, const uint64_t *failed,
		       int n, const char *guest_failure, bool fail, bool json);

int cmd_run(int argc, char **argv);
/* privmem run --vm-type snp (run_snp.c). */
int run_snp(uint64_t mem, int vcpus, unsigned int seed, unsigned int iterations, bool json);

/* privmem run --vm-type tdx (run_tdx.c). */
struct run_tdx_opts {
	uint64_t mem;
	int vcpus;
	unsigned int seed, iterations;      /* iterations 0: the default */
	unsigned int busy_per_million;      /* OPERAND_BUSY injected by the module */
	bool no_huge;                       /* private pages at 4K only */
	bool json;
};
int run_tdx(const struct run_tdx_opts *o);
int cmd_bench(int argc, char **argv);
/* privmem exec (exec.c): a command run on privmem through libprivmem-kvm.so. */
int cmd_exec(int argc, char **argv);

#endif

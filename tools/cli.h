/* SPDX-License-Identifier: MIT */
/* Shared pieces of the privmem CLI: argument parsing and output helpers. */
#ifndef PM_TOOLS_CLI_H
#define PM_TOOLS_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#define PM_MIN_U64(a, b) ((uint64_t)(a) < (uint64_t)(b) ? (uint64_t)(a) : (uint64_t)(b))
#define PM_ALIGN_DOWN_U64(x, a) ((uint64_t)(x) & ~((uint64_t)(a) - 1))

/* "512M", "2G", "4096" -> bytes (K/M/G/T suffixes, powers of 1024); and
 * an unsigned decimal in [min, max]. Digits only (no sign, no blank), no
 * trailing garbage, no overflow: -EINVAL otherwise. */
int cli_parse_size(const char *s, uint64_t *out);
int cli_parse_uint(const char *s, unsigned int min, unsigned int max, unsigned int *out);
/* The simulated host memory's settings in the environment,
 * PRIVMEM_POOL_SIZE and PRIVMEM_POOL_WATERMARK, as the CLI takes numbers:
 * a bad value, or a watermark above the pool's size, is an error (a
 * message naming the variable, and 2); the library would warn and go on
 * with its default. */
int cli_check_pool_env(void);
/* Prints "privmem: bad OPTION 'VALUE'" and returns 2 (usage error). */
int cli_bad_arg(const char *opt, const char *val);
double cli_elapsed(const struct timespec *t0);
/* Prints s as a JSON string literal. */
void cli_json_string(FILE *out, const char *s);

/* privmem run (run.c) and privmem bench (bench.c). */
int cmd_run(int argc, char **argv);
int cmd_bench(int argc, char **argv);
/* privmem exec (exec.c): a command run on privmem through libprivmem-kvm.so. */
int cmd_exec(int argc, char **argv);
/* privmem measure (measure_cmd.c): a firmware image's launch measurement;
 * privmem measure realm (measure_realm.c): a realm's RIM from its build. */
int cmd_measure(int argc, char **argv);
int cmd_measure_realm(int argc, char **argv);

/* "default", "sw", "snp", "tdx", "pkvm", "realm" or their numbers -> KVM VM type;
 * -EINVAL otherwise. The name of a type, or NULL. */
int cli_parse_vm_type(const char *s, unsigned long *type);
const char *cli_vm_type_name(unsigned long type);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * Running the privmem CLI as a user runs it, for the tests of the CLI:
 * the binary built next to the test (dirname of /proc/self/exe +
 * "/../privmem"), with its stdout and stderr captured, optionally under
 * timeout(1), or with its stderr on a terminal (a pseudo-terminal), as a
 * user at a shell sees it. cmocka's assertions report failures (include
 * cmocka.h first).
 */
#ifndef PM_TESTS_CLI_RUN_H
#define PM_TESTS_CLI_RUN_H

#include <stdbool.h>
#include <stddef.h>

#define TIMEOUT_S 120

struct result {
	int status;          /* exit status, or -1 if killed / timed out */
	char *out, *err;     /* NUL-terminated */
	size_t out_len, err_len;
};

/* Finds the CLI: 0, or -1 with a message. */
int cli_init(void);
const char *cli_binary(void);

/* Runs the CLI with argv (NULL-terminated, argv[0] excluded), with `env`
 * (NAME=VALUE, several separated by spaces, or NULL) added to the
 * environment; with limit_s > 0 under timeout(1), which kills it after
 * limit_s seconds (status 124 or 137). */
struct result run_cli_env(const char *env, int limit_s, const char *const *args);
struct result run_cli(const char *const *args);
/* The same with stderr on a pseudo-terminal (stdout a pipe): err holds
 * what a terminal would show. */
struct result run_cli_tty(const char *const *args);
void result_free(struct result *r);

void append(char **buf, size_t *len, const char *data, size_t n);
double now_s(void);
char *read_file(const char *path);

/* On failure: the run's status and output, then the message. */
void dump(const struct result *r);
void expect_status(const struct result *r, int status);
void expect_contains(const struct result *r, const char *text, const char *needle);
/* Exit status 2 and a message on stderr that mentions `mention`. */
void expect_usage_error(const char *const *args, const char *mention);

#endif

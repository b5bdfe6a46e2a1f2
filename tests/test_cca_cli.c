/* SPDX-License-Identifier: MIT */
/*
 * The realm commands of the privmem CLI, run as a user runs them (the
 * binary built next to this test: dirname of /proc/self/exe + "/../privmem"):
 *  - `privmem measure realm` on descriptions of the builds whose RIMs
 *    scripts/cca_rim_kat.py computed independently (Python hashlib over
 *    descriptors laid out by hand): SHA-256 and SHA-512, the v1.0 and v2.0
 *    rules, RIPAS ranges split into 4K and 2M entries, files spanning
 *    several granules, unrunnable RECs; bad descriptions are exit 2 with
 *    the line named;
 *  - `privmem run --vm-type realm`: its RIM is the one `privmem measure
 *    realm` computes for the same build written as a description (the
 *    image the runner populates, the RIPAS of the rest of RAM, one REC per
 *    vCPU), so the KVM side and the offline calculator agree end to end.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char cli[PATH_MAX];
static char dir[] = "/tmp/privmem_cca_cli_XXXXXX";

/* Runs `privmem ARGS` through the shell; its stdout (caller frees), and
 * its exit status in *status; stderr goes to dir/err. */
static char *run(int *status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static char *run(int *status, const char *fmt, ...)
{
	char args[1024], cmd[PATH_MAX + 1200], *out = NULL;
	size_t len = 0, cap = 0;
	va_list ap;
	FILE *p;
	int c;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "%s %s 2>%s/err", cli, args, dir);
	p = popen(cmd, "r");
	assert_non_null(p);
	while ((c = fgetc(p)) != EOF) {
		if (len + 2 > cap) {
			cap = cap ? 2 * cap : 4096;
			out = realloc(out, cap);
			assert_non_null(out);
		}
		out[len++] = (char)c;
	}
	if (!out)
		out = calloc(1, 1);
	out[len] = '\0';
	c = pclose(p);
	*status = WIFEXITED(c) ? WEXITSTATUS(c) : -1;
	return out;
}

static void write_file(const char *name, const void *data, size_t n)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, n, f), n);
	fclose(f);
}

static void write_text(const char *name, const char *text)
{
	write_file(name, text, strlen(text));
}

/* The RIM `privmem measure realm NAME` prints. */
static void expect_rim(const char *name, const char *opts, const char *want)
{
	int status;
	char *out = run(&status, "measure realm %s %s/%s", opts, dir, name);
	char line[200];

	snprintf(line, sizeof(line), "rim          %s\n", want);
	if (status != 0 || strncmp(out, line, strlen(line)))
		fail_msg("%s: status %d, output:\n%s\nwant: %s", name, status, out, line);
	free(out);
}

static int setup(void **state)
{
	char self[PATH_MAX];
	uint8_t pattern[4096], ab[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	assert_true(n > 0);
	self[n] = '\0';
	snprintf(cli, sizeof(cli), "%s/../privmem", dirname(self));
	assert_non_null(mkdtemp(dir));
	for (int i = 0; i < 4096; i++)
		pattern[i] = (uint8_t)i;
	memset(ab, 0xab, sizeof(ab));
	write_file("pattern.bin", pattern, sizeof(pattern));
	write_file("ab.bin", ab, sizeof(ab));
	return 0;
}

static int teardown(void **state)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- measure realm against scripts/cca_rim_kat.py ---- */

static const char scenario_a[] =
	"# scenario A of scripts/cca_rim_kat.py\n"
	"ipa-bits 40   # the default\n"
	"ripas 0 0x3000\n"
	"data 0x1000 pattern.bin measure\n"
	"data 0x2000 ab.bin no-measure\n"
	"rec pc=0x80000000 x0=0x1234 x7=7\n"
	"rec not-runnable pc=0x1000\n";

static void test_measure_scenario_a_sha256_sha512_v1_v2(void **state)
{
	char text[1024];

	write_text("a256.txt", scenario_a);
	expect_rim("a256.txt", "", "6c1aecfb3e0ab62e4f71b88f62edea9d356e411156a71b7927abc6c2acb4cdbc");
	expect_rim("a256.txt", "--rim-version 2",
		   "c5d9f98c1b55bab1aa14b8fd5798ac40560df25222da75e4d6a201d4ed5581f9");
	snprintf(text, sizeof(text), "hash sha512\n%s", scenario_a);
	write_text("a512.txt", text);
	expect_rim("a512.txt", "", "eb14b1a9b7aae2d9b23aea7ec98de8f2821ab5a3ce72f606cfea304e7d81f6c2"
				   "83c7e91b715629c637ad998dc05a976b279fcdb9b8a2d84646288917457f3afe");
	snprintf(text, sizeof(text), "rim-version 2\n%s", scenario_a);
	write_text("a256v2.txt", text);
	expect_rim("a256v2.txt", "", "c5d9f98c1b55bab1aa14b8fd5798ac40560df25222da75e4d6a201d4ed5581f9");
}

/* Two 2M RIPAS entries (the largest block that fits), then a granule. */
static void test_measure_scenario_b_2m_ripas_entries(void **state)
{
	write_text("b.txt", "ripas 0x200000 0x600000\ndata 0x200000 pattern.bin\n");
	expect_rim("b.txt", "", "cda379b910e19604a8aa4d4dc157b2191b7d96a8a41916c9eed3e7b96dfed885");
}

static void test_measure_scenario_c_and_json(void **state)
{
	const char *desc = "ripas 0x1000 0x2000\ndata 0x1000 pattern.bin measure\n"
			   "ripas 0x2000 0x3000\ndata 0x2000 ab.bin no-measure\nrec\n";
	char *out;
	int status;

	write_text("c.txt", desc);
	expect_rim("c.txt", "", "55ae9dbbc84030defd28b2472b3efee7b968cf1c9c255659a1f87265c8b1f1ee");
	out = run(&status, "measure realm --json %s/c.txt", dir);
	assert_int_equal(status, 0);
	assert_non_null(strstr(out, "\"rim\": \"55ae9dbbc84030defd28b2472b3efee7b968cf1c9c255659a1f87265c8b1f1ee\""));
	assert_non_null(strstr(out, "\"descriptors\": {\"ripas\": 2, \"data\": 2, \"rec\": 1}"));
	free(out);
}

/* A file of two granules and a half: three DATA descriptors, the last one
 * padded with zeroes; `zero` granules are the same as a zero file. */
static void test_measure_files_span_granules(void **state)
{
	static uint8_t big[4096 * 2 + 2048], padded[4096 * 3];
	char *a, *b;
	int sa, sb;

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7);
	memcpy(padded, big, sizeof(big));
	write_file("big.bin", big, sizeof(big));
	write_file("padded.bin", padded, sizeof(padded));
	write_text("big.txt", "data 0 big.bin\n");
	write_text("padded.txt", "data 0 padded.bin\n");
	a = run(&sa, "measure realm %s/big.txt", dir);
	b = run(&sb, "measure realm %s/padded.txt", dir);
	assert_int_equal(sa, 0);
	assert_int_equal(sb, 0);
	assert_string_equal(a, b);
	assert_non_null(strstr(a, "data 3,"));
	free(a);
	free(b);
	write_file("zero.bin", padded + sizeof(padded), 0);
	write_text("z1.txt", "zero 0x4000 2 no-measure\n");
	write_text("z2.txt", "data 0x4000 zero.bin no-measure\ndata 0x5000 zero.bin no-measure\n");
	a = run(&sa, "measure realm %s/z1.txt", dir);
	b = run(&sb, "measure realm %s/z2.txt", dir);
	assert_string_equal(a, b);
	free(a);
	free(b);
}

static void expect_bad(const char *text, const char *mention)
{
	char errpath[PATH_MAX], err[512] = { 0 };
	int status;
	char *out;
	FILE *f;

	write_text("bad.txt", text);
	out = run(&status, "measure realm %s/bad.txt", dir);
	assert_int_equal(status, 2);
	assert_string_equal(out, "");
	snprintf(errpath, sizeof(errpath), "%s/err", dir);
	f = fopen(errpath, "r");
	assert_non_null(f);
	assert_true(fread(err, 1, sizeof(err) - 1, f) > 0);
	fclose(f);
	if (!strstr(err, mention))
		fail_msg("for \"%s\": stderr \"%s\" does not say \"%s\"", text, err, mention);
	free(out);
}

static void test_measure_bad_descriptions_are_exit_2(void **state)
{
	expect_bad("hash md5\n", "bad.txt:1: bad value for 'hash'");
	expect_bad("ipa-bits 52\n", "bad value for 'ipa-bits'");
	expect_bad("num-bps 0\n", "bad value for 'num-bps'");
	expect_bad("\n\nripas 0x1000 0x1000\n", "bad.txt:3: ripas");
	expect_bad("ripas 0 0x8000001000\n", "protected half");   /* one page past it */
	expect_bad("data 0x10 pattern.bin\n", "usage: data");
	expect_bad("data 0 nothing.bin\n", "cannot open");
	expect_bad("rec pc=0 x8=1\n", "rec: bad 'x8=1'");
	expect_bad("ripas 0 0x1000\nhash sha512\n", "realm parameters come before the build");
	expect_bad("frobnicate 1\n", "unknown directive 'frobnicate'");
	expect_bad("data 0 pattern.bin maybe\n", "measure or no-measure");
}

/* ---- the CLI's conventions (test_cli.c's, for this subcommand) ---- */

/* What the last run() wrote on stderr (caller frees). */
static char *last_err(void)
{
	char path[PATH_MAX], *err = calloc(1, 4096);
	FILE *f;

	assert_non_null(err);
	snprintf(path, sizeof(path), "%s/err", dir);
	f = fopen(path, "r");
	assert_non_null(f);
	(void)!fread(err, 1, 4095, f);
	fclose(f);
	return err;
}

/* Runs `privmem ARGS`, which must fail with status 2, saying nothing on
 * stdout and starting stderr with `start`. */
static void expect_usage_error(const char *args, const char *start)
{
	int status;
	char *out = run(&status, "%s", args), *err = last_err();

	if (status != 2 || out[0] || strncmp(err, start, strlen(start)))
		fail_msg("privmem %s: status %d, stdout \"%s\", stderr \"%s\" (want 2, nothing, \"%s...\")", args,
			 status, out, err, start);
	free(err);
	free(out);
}

/* -h and --help print the usage on stdout (exit 0); a bad option, a bad
 * --rim-version, no file or one that cannot be opened are usage errors
 * whose messages start with one program name. */
static void test_measure_realm_follows_the_cli_conventions(void **state)
{
	static const char *const helps[] = { "-h", "--help" };
	char args[PATH_MAX + 64];

	for (size_t i = 0; i < 2; i++) {
		int status;
		char *out = run(&status, "measure realm %s", helps[i]);

		assert_int_equal(status, 0);
		assert_int_equal(strncmp(out, "usage: privmem measure realm ", 29), 0);
		assert_non_null(strstr(out, "--rim-version"));
		free(out);
	}
	expect_usage_error("measure realm --frobnicate x", "privmem measure realm: unrecognized option");
	expect_usage_error("measure realm --rim-version", "privmem measure realm: option");
	expect_usage_error("measure realm --rim-version 3 x", "privmem: bad --rim-version '3'");
	expect_usage_error("measure realm --rim-version 01 x", "privmem: bad --rim-version '01'");
	expect_usage_error("measure realm", "usage: privmem measure realm ");
	snprintf(args, sizeof(args), "measure realm %s/a.txt %s/b.txt", dir, dir);
	expect_usage_error(args, "usage: privmem measure realm ");
	snprintf(args, sizeof(args), "measure realm %s/nothing.txt", dir);
	expect_usage_error(args, "privmem measure realm: cannot open ");
	/* measure's own help names the subcommand. */
	{
		int status;
		char *out = run(&status, "measure --help");

		assert_int_equal(status, 0);
		assert_non_null(strstr(out, "privmem measure realm"));
		free(out);
	}
}

/* ---- the run's RIM is measure realm's for the same build ---- */

static void test_run_realm_rim_equals_measure_realm(void **state)
{
	static uint8_t image[16 * 4096];
	char *out, *rim, desc[512];
	int status;

	/* The image run_realm.c populates (its pattern), 16 pages at 0. */
	for (size_t i = 0; i < sizeof(image); i++)
		image[i] = (uint8_t)(i * 131 + (i >> 12));
	write_file("image.bin", image, sizeof(image));
	out = run(&status, "run --vm-type realm --mem 64M --vcpus 2 --iterations 5");
	if (status != 0)
		fail_msg("run: status %d:\n%s", status, out);
	rim = strstr(out, "rim            ");
	assert_non_null(rim);
	rim += 15;
	rim[64] = '\0';
	snprintf(desc, sizeof(desc),
		 "ripas 0 0x10000\ndata 0 image.bin measure\nripas 0x10000 0x4000000\nrec pc=0\nrec pc=0\n");
	write_text("run.txt", desc);
	expect_rim("run.txt", "", rim);
	free(out);
}

/* Realms have no in-place mode: --gmem-in-place is a usage error for
 * them, and a realm run in a process whose mode is on (the environment)
 * runs as always and says the mode is off for it. */
static void test_run_realm_has_no_in_place_mode(void **state)
{
	int status;
	char *out, *err;

	out = run(&status, "run --vm-type realm --mem 16M --vcpus 1 --gmem-in-place");
	err = last_err();
	assert_int_equal(status, 2);
	assert_string_equal(out, "");
	assert_non_null(strstr(err, "privmem run: --gmem-in-place does not apply to --vm-type realm"));
	free(err);
	free(out);
	assert_int_equal(setenv("PRIVMEM_GMEM_IN_PLACE", "1", 1), 0);
	out = run(&status, "run --vm-type realm --mem 16M --vcpus 2 --iterations 5");
	assert_int_equal(unsetenv("PRIVMEM_GMEM_IN_PLACE"), 0);
	if (status != 0)
		fail_msg("run: status %d:\n%s", status, out);
	assert_non_null(strstr(out, "in-place mode off"));
	assert_non_null(strstr(out, "result         PASS"));
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_measure_scenario_a_sha256_sha512_v1_v2),
		cmocka_unit_test(test_measure_scenario_b_2m_ripas_entries),
		cmocka_unit_test(test_measure_scenario_c_and_json),
		cmocka_unit_test(test_measure_files_span_granules),
		cmocka_unit_test(test_measure_bad_descriptions_are_exit_2),
		cmocka_unit_test(test_measure_realm_follows_the_cli_conventions),
		cmocka_unit_test(test_run_realm_rim_equals_measure_realm),
		cmocka_unit_test(test_run_realm_has_no_in_place_mode),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

/* SPDX-License-Identifier: MIT */
/*
 * The privmem CLI, run as a user runs it: the binary built next to this
 * test (dirname of /proc/self/exe + "/../privmem"), with its stdout and
 * stderr captured and a time limit. Covered: --help and --version, `run`
 * with a small VM (text and --json reports), each scenario alone, the
 * default VM type, and the usage errors (exit status 2 with a message on
 * stderr). For every vm-type, one run's text report against its JSON
 * (--json-file), read with a small JSON reader: the JSON says its schema,
 * privmem's version and the vm-type, and holds every figure of every text
 * line, with the same value, at the place a table here (written from the
 * report's documented layout, not from the code) says; a text line the
 * table does not know, or a known line missing, fails. Runs that cannot
 * finish (guest memory larger than the simulated host memory, a pool used
 * up, a TDX module always busy) run under timeout(1) and must end with
 * their status and message.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <privmem/privmem.h>
#include "lib/cli_run.h"
#include "lib/json.h"

/* ---- tests ---------------------------------------------------------------- */

static void test_help_exits_0_with_usage_on_stdout(void **state)
{
	const char *const args[] = { "--help", NULL };
	struct result r = run_cli(args);

	expect_status(&r, 0);
	expect_contains(&r, r.out, "usage: privmem");
	expect_contains(&r, r.out, "run");
	result_free(&r);
}

static void test_version_exits_0_and_prints_the_library_version(void **state)
{
	const char *const args[] = { "--version", NULL };
	struct result r = run_cli(args);
	char want[64];

	snprintf(want, sizeof(want), "privmem %s\n", pm_version());
	expect_status(&r, 0);
	assert_string_equal(r.out, want);
	result_free(&r);
}

static void test_run_small_vm_passes(void **state)
{
	const char *const args[] = { "run", "--vcpus", "2", "--mem", "64M", "--iterations", "20", NULL };
	struct result r = run_cli(args);

	expect_status(&r, 0);
	expect_contains(&r, r.out, "result         PASS");
	expect_contains(&r, r.out, "tlb shootdowns");
	if (strstr(r.out, "FAIL")) {
		dump(&r);
		fail_msg("a FAIL in the report");
	}
	result_free(&r);
}

static void test_run_json_is_one_object_line_with_result_and_keys(void **state)
{
	const char *const args[] = { "run", "--vcpus", "2", "--mem", "64M", "--iterations", "20", "--json",
				     NULL };
	static const char *const keys[] = { "\"exits\":", "\"mapped\":", "\"tlb_shootdowns\":", "\"checks\":" };
	struct result r = run_cli(args);
	struct jv *json;

	expect_status(&r, 0);
	assert_true(r.out_len > 2);
	if (r.out[0] != '{' || r.out[r.out_len - 1] != '\n' || r.out[r.out_len - 2] != '}' ||
	    memchr(r.out, '\n', r.out_len - 1)) {
		dump(&r);
		fail_msg("--json output is not one line holding one object");
	}
	expect_contains(&r, r.out, "\"result\":\"PASS\"");
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		expect_contains(&r, r.out, keys[i]);
	json = json_parse(r.out);
	if (!json || json->type != J_OBJ) {
		dump(&r);
		fail_msg("--json output does not parse as a JSON object");
	}
	assert_non_null(json_get(json, "schema"));
	assert_string_equal(json_get(json, "schema")->text, "1");
	json_free(json);
	result_free(&r);
}

static void run_scenario(const char *const *extra)
{
	const char *args[16] = { "run", "--vcpus", "2", "--mem", "64M", "--iterations", "20" };
	int n = 7;

	struct result r;

	for (; *extra; extra++)
		args[n++] = *extra;
	args[n] = NULL;
	r = run_cli(args);

	expect_status(&r, 0);
	expect_contains(&r, r.out, "result         PASS");
	result_free(&r);
}

static void test_run_convert_scenario_alone_passes(void **state)
{
	const char *const extra[] = { "--vm-type", "sw", "--scenario", "convert", NULL };

	run_scenario(extra);
}

static void test_run_bounce_scenario_alone_passes(void **state)
{
	const char *const extra[] = { "--vm-type", "sw", "--scenario", "bounce", NULL };

	run_scenario(extra);
}

static void test_run_accept_scenario_alone_passes(void **state)
{
	const char *const extra[] = { "--vm-type", "sw", "--scenario", "accept", NULL };

	run_scenario(extra);
}

static void test_run_default_vm_type_passes(void **state)
{
	const char *const extra[] = { "--vm-type", "default", NULL };

	run_scenario(extra);
}

/* pKVM's scenario: in-place sharing, every check passes, no host stage-2
 * fault, the guest's pages poisoned at teardown, as many unshares as
 * shares. */
static void test_run_pkvm_virtio_passes_and_reports_the_hyp(void **state)
{
	const char *const args[] = { "run", "--vm-type", "pkvm", "--vcpus", "2", "--mem", "16M",
				     "--iterations", "20", "--json", NULL };
	struct result r = run_cli(args);
	const char *share, *unshare, *poisoned;

	expect_status(&r, 0);
	expect_contains(&r, r.out, "\"result\":\"PASS\"");
	expect_contains(&r, r.out, "\"host_stage2_faults\":0,");
	expect_contains(&r, r.out, "\"no_host_stage2_fault\":{\"passed\":1,\"failed\":0}");
	share = strstr(r.out, "\"guest_share_host\":");
	unshare = strstr(r.out, "\"guest_unshare_host\":");
	poisoned = strstr(r.out, "\"pages_poisoned_at_teardown\":");
	assert_non_null(share);
	assert_non_null(unshare);
	assert_non_null(poisoned);
	assert_true(strtoull(share + strlen("\"guest_share_host\":"), NULL, 10) > 40);
	assert_int_equal(strtoull(share + strlen("\"guest_share_host\":"), NULL, 10),
			 strtoull(unshare + strlen("\"guest_unshare_host\":"), NULL, 10));
	assert_true(strtoull(poisoned + strlen("\"pages_poisoned_at_teardown\":"), NULL, 10) > 0);
	result_free(&r);
}

/* A smoke run of bench share: every figure measured (none skipped), no error. */
/* A bench run's JSON holds every key, skips no figure and has no error. */
static void expect_bench_keys(const char *env, const char *const *args, const char *const *keys,
			      size_t n)
{
	struct result r = run_cli_env(env, 0, args);

	expect_status(&r, 0);
	for (size_t i = 0; i < n; i++)
		expect_contains(&r, r.out, keys[i]);
	if (strstr(r.out, "\"skipped\":true")) {
		dump(&r);
		fail_msg("a figure was skipped");
	}
	result_free(&r);
}

/* A smoke run of bench inplace, started in each mode (the other runs in a
 * child): every figure measured, the memory of both paths read, and the
 * in-place path's shared buffer in the host file (its pages counted). */
static void expect_bench_inplace(const char *env)
{
	const char *const args[] = { "bench", "inplace", "--size", "2M", "--reps", "1", "--json", NULL };
	static const char *const keys[] = {
		"\"destructive_1\":{", "\"destructive_64\":{", "\"inplace_1\":{", "\"inplace_64\":{",
		"\"memcpy\":{", "\"memset\":{", "\"destructive_1_over_inplace\":",
		"\"inplace_64_over_memcpy\":", "\"inplace_shared_host_mib\":2,",
		"\"destructive_shared_host_mib\":2,", "\"inplace_private_host_mib\":0,",
		"\"destructive_private_host_mib\":0,",
		"\"error\":null",
	};

	expect_bench_keys(env, args, keys, sizeof(keys) / sizeof(keys[0]));
}

static void test_bench_inplace_measures_both_modes(void **state)
{
	expect_bench_inplace(NULL);
	expect_bench_inplace("PRIVMEM_GMEM_IN_PLACE=1");
}

static void test_bench_share_measures_every_figure(void **state)
{
	const char *const args[] = { "bench", "share", "--size", "2M", "--reps", "1", "--json", NULL };
	static const char *const keys[] = {
		"\"inplace_4k\":{", "\"inplace_2m\":{", "\"destructive_4k\":{", "\"destructive_2m\":{",
		"\"inplace_4k_no_view\":{", "\"zeroing\":{", "\"destructive_4k_over_inplace_4k\":",
		"\"error\":null",
	};

	expect_bench_keys(NULL, args, keys, sizeof(keys) / sizeof(keys[0]));
}

/* ---- bench e2e ---- */

/* A number member of v at path, or fail. */
static double json_number(const struct result *r, const struct jv *v, const char *path)
{
	const struct jv *n = json_get(v, path);

	if (!n || n->type != J_NUM) {
		dump(r);
		fail_msg("no number at %s", path);
	}
	return strtod(n->text, NULL);
}

static const char *json_text(const struct result *r, const struct jv *v, const char *path)
{
	const struct jv *n = json_get(v, path);

	if (!n || n->type != J_STR) {
		dump(r);
		fail_msg("no string at %s", path);
	}
	return n->text;
}

/* a and b agree to the 6 significant digits the JSON prints. */
static void expect_close(const struct result *r, double a, double b, const char *what)
{
	if (fabs(a - b) > 2e-5 * fmax(fabs(a), fabs(b))) {
		dump(r);
		fail_msg("%s: %.9g, want %.9g", what, a, b);
	}
}

/* The targets of issue 14, written from its text: each against a limit
 * measured in the same run, in its section, with the figures it compares. */
static const struct {
	const char *name, *section, *privmem, *reference;
	double limit;
} e2e_targets[] = {
	{ "exit_vs_coro_switch", "exit", "exit_empty", "coro_switch", 5.0 },
	{ "sw_1_vs_memset", "convert", "convert_sw_1", "memset_4k", 5.0 },
	{ "sw_512_vs_memset", "convert", "convert_sw_512", "memset_4k", 1.2 },
	{ "tdx_1_vs_sw", "convert", "convert_tdx_1", "convert_sw_1", 2.0 },
	{ "tdx_8_vs_sw", "convert", "convert_tdx_8", "convert_sw_8", 2.0 },
	{ "tdx_64_vs_sw", "convert", "convert_tdx_64", "convert_sw_64", 2.0 },
	{ "tdx_512_vs_sw", "convert", "convert_tdx_512", "convert_sw_512", 2.0 },
	{ "snp_1_vs_sw", "convert", "convert_snp_1", "convert_sw_1", 2.0 },
	{ "snp_8_vs_sw", "convert", "convert_snp_8", "convert_sw_8", 2.0 },
	{ "snp_64_vs_sw", "convert", "convert_snp_64", "convert_sw_64", 2.0 },
	{ "snp_512_vs_sw", "convert", "convert_snp_512", "convert_sw_512", 2.0 },
	{ "pkvm_1_vs_sw", "convert", "convert_pkvm_1", "convert_sw_1", 2.0 },
	{ "pkvm_8_vs_sw", "convert", "convert_pkvm_8", "convert_sw_8", 2.0 },
	{ "pkvm_64_vs_sw", "convert", "convert_pkvm_64", "convert_sw_64", 2.0 },
	{ "pkvm_512_vs_sw", "convert", "convert_pkvm_512", "convert_sw_512", 2.0 },
	{ "realm_1_vs_sw", "convert", "convert_realm_1", "convert_sw_1", 2.0 },
	{ "realm_8_vs_sw", "convert", "convert_realm_8", "convert_sw_8", 2.0 },
	{ "realm_64_vs_sw", "convert", "convert_realm_64", "convert_sw_64", 2.0 },
	{ "realm_512_vs_sw", "convert", "convert_realm_512", "convert_sw_512", 2.0 },
	{ "tlb_miss_vs_native", "tlb", "tlb_miss_privmem", "tlb_miss_native", 5.0 },
	{ "tlb_hit_vs_native", "tlb", "tlb_hit_privmem", "tlb_hit_native", 3.0 },
	{ "convert_large_vs_small_vm", "scale", "convert_large_vm", "convert_small_vm", 1.3 },
	{ "fault_above_vs_below_watermark", "scale", "fault_above_watermark", "fault_below_watermark", 1.3 },
	{ "pool_growth_vs_kernel", "scale", "pool_growth_2m", "kernel_populate_2m", 1.3 },
	{ "memslot_full_vs_1", "memslot", "memslot_create_full", "memslot_create_1", 4.0 },
};

/* One target of the JSON against its row: section, limit, the figures'
 * ns per op, the ratio and the status computed here from them. */
static void expect_e2e_target(const struct result *r, const struct jv *json, const struct jv *t, size_t row)
{
	char path[96];
	double a, b, value = json_number(r, t, "value");
	const char *status = json_text(r, t, "status");

	assert_string_equal(json_text(r, t, "section"), e2e_targets[row].section);
	expect_close(r, json_number(r, t, "limit"), e2e_targets[row].limit, e2e_targets[row].name);
	snprintf(path, sizeof(path), "figures.%s.best_ns_per_op", e2e_targets[row].privmem);
	a = json_number(r, json, path);
	snprintf(path, sizeof(path), "figures.%s.best_ns_per_op", e2e_targets[row].reference);
	b = json_number(r, json, path);
	assert_true(a > 0 && b > 0);
	expect_close(r, json_number(r, t, "privmem_ns"), a, "privmem_ns");
	expect_close(r, json_number(r, t, "reference_ns"), b, "reference_ns");
	expect_close(r, value, a / b, "value (privmem / reference)");
	expect_close(r, json_number(r, t, "limit_ns"), e2e_targets[row].limit * b, "limit_ns");
	expect_close(r, json_number(r, t, "of_limit"), a / b / e2e_targets[row].limit, "of_limit");
	assert_string_equal(status, a / b <= e2e_targets[row].limit ? "MET" : "NOT MET");
}

/* A smoke run of bench e2e with tiny sizes: one JSON object, every section
 * of the issue, every figure measured in its section, every target of the
 * issue against the figures it names, and one hypercall exit per batch and
 * direction on every model but pkvm, none there (the round trip's
 * definition: pKVM's hypervisor handles its guest's calls). */
static void test_bench_e2e_json_has_every_section_figure_and_target(void **state)
{
	const char *const args[] = { "bench", "e2e", "--size", "2M", "--reps", "1", "--json", NULL };
	const char *const help[] = { "bench", "--help", NULL };
	static const char *const sections[] = { "exit", "convert", "tlb", "scale", "memslot" };
	static const char *const models[] = { "sw", "tdx", "snp", "pkvm", "realm" };
	static const char *const batches[] = { "1", "8", "64", "512" };
	static const char *const others[][2] = {
		{ "coro_switch", "exit" }, { "exit_empty", "exit" }, { "memset_4k", "convert" },
		{ "tlb_hit_privmem", "tlb" }, { "tlb_hit_native", "tlb" }, { "tlb_miss_privmem", "tlb" },
		{ "tlb_miss_native", "tlb" }, { "convert_small_vm", "scale" }, { "convert_large_vm", "scale" },
		{ "fault_below_watermark", "scale" }, { "fault_above_watermark", "scale" },
		{ "memslot_create_1", "memslot" }, { "memslot_create_full", "memslot" },
		{ "discard_1", "convert" }, { "discard_512", "convert" },
		{ "convert_large_vm_spread", "scale" }, { "pool_growth_2m", "scale" },
		{ "kernel_populate_2m", "scale" },
	};
	struct result r = run_cli(args);
	const struct jv *v, *t;
	struct jv *json;
	size_t n = 0, seen = 0;
	char path[96];

	expect_status(&r, 0);
	if (r.out_len < 2 || r.out[0] != '{' || memchr(r.out, '\n', r.out_len - 1)) {
		dump(&r);
		fail_msg("--json output is not one line holding one object");
	}
	json = json_parse(r.out);
	assert_non_null(json);
	assert_string_equal(json_text(&r, json, "name"), "e2e");
	assert_int_equal(json_get(json, "error")->type, J_NULL);
	v = json_get(json, "sections");
	assert_non_null(v);
	for (t = v->child; t; t = t->next, n++) {
		assert_true(n < 5);
		assert_string_equal(t->text, sections[n]);
	}
	assert_int_equal(n, 5);
	for (size_t m = 0; m < sizeof(models) / sizeof(models[0]); m++) {
		for (size_t b = 0; b < 4; b++) {
			snprintf(path, sizeof(path), "figures.convert_%s_%s.section", models[m], batches[b]);
			assert_string_equal(json_text(&r, json, path), "convert");
			snprintf(path, sizeof(path), "figures.convert_%s_%s.best_ns_per_op", models[m], batches[b]);
			assert_true(json_number(&r, json, path) > 0);
		}
		/* pKVM's hypervisor handles MEM_SHARE / MEM_UNSHARE: no exit. */
		snprintf(path, sizeof(path), "info.exits_per_batch_%s", models[m]);
		expect_close(&r, json_number(&r, json, path), strcmp(models[m], "pkvm") ? 1.0 : 0.0, path);
	}
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		snprintf(path, sizeof(path), "figures.%s.section", others[i][0]);
		assert_string_equal(json_text(&r, json, path), others[i][1]);
		snprintf(path, sizeof(path), "figures.%s.best_ns_per_op", others[i][0]);
		assert_true(json_number(&r, json, path) > 0);
	}
	for (t = json_get(json, "targets")->child; t; t = t->next) {
		size_t row = 0;

		while (row < sizeof(e2e_targets) / sizeof(e2e_targets[0]) &&
		       strcmp(json_text(&r, t, "name"), e2e_targets[row].name))
			row++;
		if (row == sizeof(e2e_targets) / sizeof(e2e_targets[0])) {
			dump(&r);
			fail_msg("a target the issue does not name: %s", json_text(&r, t, "name"));
		}
		expect_e2e_target(&r, json, t, row);
		seen++;
	}
	assert_int_equal(seen, sizeof(e2e_targets) / sizeof(e2e_targets[0]));
	json_free(json);
	result_free(&r);
	r = run_cli(help);
	expect_status(&r, 0);
	expect_contains(&r, r.out, "  e2e ");
	result_free(&r);
}

/* A smoke run of bench guest: the guest loops ran in the VM (one exit per
 * run), natively and in the engine alone; every figure, ratio and target
 * is there and nothing failed. */
static void test_bench_guest_measures_every_figure(void **state)
{
	const char *const args[] = { "bench", "guest", "--size", "2M", "--reps", "1", "--json", NULL };
	static const char *const keys[] = {
		"\"vm_register\":{", "\"native_register\":{", "\"engine_register\":{",
		"\"vm_load_store\":{", "\"native_load_store\":{", "\"engine_load_store\":{",
		"\"vm_memset_rep_stosb\":{", "\"native_memset_rep_stosb\":{",
		"\"engine_memset_rep_stosb\":{", "\"vm_memset_store_loop\":{",
		"\"native_memset_store_loop\":{", "\"register_vm_vs_native\":",
		"\"load_store_vm_vs_engine\":", "\"name\":\"register_mips\"",
		"\"name\":\"load_store_mips\"", "\"exits_per_run\":1,", "\"error\":null",
	};
	struct result r = run_cli(args);

	expect_status(&r, 0);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		expect_contains(&r, r.out, keys[i]);
	if (strstr(r.out, "\"skipped\":true") || strstr(r.out, "\"status\":\"SKIPPED\"")) {
		dump(&r);
		fail_msg("a figure or target was skipped");
	}
	result_free(&r);
}

static void test_run_snp_passes_with_launch_digest_and_no_violation(void **state)
{
	const char *const args[] = { "run", "--vm-type", "snp", "--vcpus", "2", "--mem", "64M",
				     "--iterations", "20", NULL };
	struct result r = run_cli(args);

	expect_status(&r, 0);
	expect_contains(&r, r.out, "result         PASS");
	expect_contains(&r, r.out, "launch digest  ");
	expect_contains(&r, r.out, "rmp violations 0,");
	expect_contains(&r, r.out, "no_rmp_violation                              1 passed, 0 failed");
	result_free(&r);
}

/* In-place mode (--gmem-in-place): the report says so, every scenario's
 * checks pass, a page made private keeps what it held (no fresh zero page),
 * and SNP's and TDX's builds (from the guest_memfd page itself) measure
 * what the destructive mode measures. */
static void expect_in_place_run(const char *vm_type, const char *check, const char *digest_line)
{
	const char *const on[] = { "run", "--gmem-in-place", "--vm-type", vm_type, "--vcpus", "2",
				   "--mem", "64M", "--iterations", "20", NULL };
	const char *const off[] = { "run", "--vm-type", vm_type, "--vcpus", "2", "--mem", "64M",
				    "--iterations", "20", NULL };
	struct result r = run_cli(on), d;
	const char *a, *b;

	expect_status(&r, 0);
	expect_contains(&r, r.out, "in-place mode on");
	expect_contains(&r, r.out, "result         PASS");
	expect_contains(&r, r.out, check);
	d = run_cli(off);
	expect_status(&d, 0);
	expect_contains(&d, d.out, "in-place mode off");
	if (digest_line) {
		a = strstr(r.out, digest_line);
		b = strstr(d.out, digest_line);
		assert_non_null(a);
		assert_non_null(b);
		assert_int_equal(strcspn(a, "\n"), strcspn(b, "\n"));
		assert_memory_equal(a, b, strcspn(a, "\n"));
	}
	result_free(&d);
	result_free(&r);
}

static void test_run_in_place_sw_keeps_data_in_place(void **state)
{
	expect_in_place_run("sw", "private_page_keeps_shared_data", NULL);
}

static void test_run_in_place_snp_launches_from_the_page(void **state)
{
	expect_in_place_run("snp", "reconverted_page_keeps_shared_data", "launch digest  ");
}

static void test_run_in_place_tdx_builds_from_the_page(void **state)
{
	expect_in_place_run("tdx", "image_intact", "MRTD           ");
}

static void test_run_tdx_passes_with_mrtd_and_no_fatal_event_or_leak(void **state)
{
	const char *const args[] = { "run", "--vm-type", "tdx", "--vcpus", "2", "--mem", "64M",
				     "--iterations", "20", NULL };
	struct result r = run_cli(args);

	expect_status(&r, 0);
	expect_contains(&r, r.out, "result         PASS");
	expect_contains(&r, r.out, "MRTD           ");
	expect_contains(&r, r.out, "fatal events   0\n");
	expect_contains(&r, r.out, "leaked pages   0\n");
	result_free(&r);
}

/* ---- the report: every figure of the text is in the JSON ------------------ */

/* A text line of the report: the line starts with `label`, and its
 * figures (the words that are numbers or digests) are, in order, the JSON
 * values at `paths`; "/MiB" after a path: the text shows it in MiB. */
struct text_line {
	const char *label;
	const char *paths[8];
};

#define HEADER "privmem run: vm-type "
#define HEADER_LINE { HEADER, { "mem_bytes/MiB", "vcpus", "seed" } }
#define ELAPSED_LINE { "elapsed        ", { "elapsed_s" } }
#define POOL_ALL_LINE { "frame pool     ", { "pool.in_use/MiB", "pool.populated/MiB", "pool.scrubbed/MiB", \
					   "pool.released/MiB" } }
#define SW_LINES HEADER_LINE, ELAPSED_LINE, \
	{ "exits          ", { "exits.ucall", "exits.memory_fault", "exits.hypercall", "exits.mmio", "exits.intr" } }, \
	{ "conversions    ", { "conversions", "pages_to_private", "pages_to_shared" } }, \
	{ "faults         ", { "faults", "fault_retries" } }, \
	{ "mapped         ", { "mapped.4K", "mapped.2M", "mapped.1G", "mappings_present.4K", "mappings_present.2M", \
				"mappings_present.1G" } }, \
	{ "zaps           ", { "zapped", "splits" } }, \
	{ "tlb shootdowns ", { "tlb_shootdowns" } }, \
	POOL_ALL_LINE

static const struct text_line sw_lines[] = { SW_LINES, { NULL, { NULL } } };
static const struct text_line pkvm_lines[] = {
	SW_LINES,
	{ "pkvm hyp       transitions (refused):", { NULL } },
	{ "               host stage-2 faults", { "pkvm.host_stage2_faults", "pkvm.pages_poisoned_at_teardown",
						"pkvm.unshares_refused_pinned" } },
	{ "pkvm guest     ", { "pkvm.hyp_meminfo_calls", "pkvm.mmio_guard_grants", "pkvm.mmio_guard_refusals",
				"pkvm.mmio_aborts" } },
	{ "pkvm memory    ", { "pkvm.memslot_frozen_refusals", "pkvm.punch_pinned_refusals" } },
	{ NULL, { NULL } },
};
static const struct text_line snp_lines[] = {
	HEADER_LINE,
	{ "launch digest  ", { "launch_digest" } },
	ELAPSED_LINE,
	{ "exits          ", { "exits.ucall", "exits.memory_fault", "exits.hypercall" } },
	{ "conversions    ", { "conversions", "pages_to_private", "pages_to_shared", "implicit_conversions" } },
	{ "faults         ", { "faults", "fault_retries" } },
	{ "mapped         ", { "mapped.4K", "mapped.2M", "mappings_present.4K", "mappings_present.2M", "splits" } },
	{ "zaps           ", { "zapped" } },
	{ "tlb shootdowns ", { "tlb_shootdowns" } },
	POOL_ALL_LINE,
	{ "rmp entries    ", { "snp.rmp_assigned_2m", "snp.rmp_assigned_4k", "snp.prepare_2m_entries",
				"snp.prepare_4k_entries" } },
	{ "psmash         ", { "snp.rmp_psmash", "snp.psmash_on_free", "snp.psmash_on_fault" } },
	{ "psc            ", { "snp.psc_requests", "snp.psc_entries", "snp.psc_exits", "snp.psc_pages",
				"snp.psc_errors" } },
	{ "pvalidate      ", { "snp.pvalidate", "snp.pvalidate_failed" } },
	{ "rmp violations ", { "snp.rmp_violations", "snp.rmp_host_reads_refused" } },
	{ NULL, { NULL } },
};
static const struct text_line tdx_lines[] = {
	{ HEADER, { "mem_bytes/MiB", "vcpus", "seed", "busy_per_million" } },
	ELAPSED_LINE,
	{ "exits          ", { "exits.ucall", "exits.memory_fault", "exits.hypercall", "exits.system_event" } },
	{ "faults         ", { "faults", "fault_retries" } },
	{ "mapped         ", { "mapped.4K", "mapped.2M", "mappings_present.4K", "mappings_present.2M" } },
	{ "tlb shootdowns ", { "tlb_shootdowns" } },
	{ "S-EPT          ", { "sept_entries.4K", "sept_entries.2M", "sept_entries.1G", "sept_entries.tables" } },
	{ "SEAMCALLs      ", { "page_adds", "mr_extends", "page_augs", "page_removes", "tracks" } },
	{ "busy retries   ", { "busy_retries", "busy_injected", "frozen_retries" } },
	{ "demotions      ", { "demotions" } },
	{ "leaked pages   ", { "leaked_pages" } },
	{ "fatal events   ", { "fatal_events" } },
	{ "MRTD           ", { "mrtd" } },
	{ "frame pool     ", { "pool.in_use/MiB", "pool.scrubbed/MiB" } },
	{ NULL, { NULL } },
};
static const struct text_line realm_lines[] = {
	HEADER_LINE,
	{ "rim            ", { "rim" } },
	ELAPSED_LINE,
	{ "exits          ", { "exits.ucall", "exits.memory_fault", "exits.hypercall" } },
	{ "conversions    ", { "conversions", "pages_to_private", "pages_to_shared", "implicit_conversions" } },
	{ "mapped         ", { "mapped.4K", "mapped.2M", "mappings_present.4K", "mappings_present.2M" } },
	{ "rmi calls      ", { "rmm.rmi_granule_delegate", "rmm.rmi_granule_undelegate", "rmm.rmi_realm_create",
				"rmm.rmi_realm_activate", "rmm.rmi_rec_create" } },
	{ "               rtt create ", { "rmm.rmi_rtt_create", "rmm.rmi_rtt_fold", "rmm.rmi_rtt_init_ripas",
					  "rmm.rmi_rtt_set_ripas", "rmm.rmi_rtt_read_entry" } },
	{ "               data create ", { "rmm.rmi_data_create", "rmm.rmi_data_create_unknown",
					   "rmm.rmi_data_destroy", "rmm.rmi_rtt_map_unprotected",
					   "rmm.rmi_rtt_unmap_unprotected", "rmm.rmi_errors" } },
	{ "granules       ", { "realm.granules_data", "realm.granules_rtt", "realm.granules_delegated",
				"realm.granules_rec", "realm.granules_rd" } },
	{ "ripas changes  ", { "realm.ripas_change_exits", "realm.ripas_change_pages",
				"realm.ripas_change_rejected", "realm.folds", "realm.unfolds" } },
	{ "gpf            ", { "realm.gpf", "rmm.rim_extends", "rmm.rmm_tlbis" } },
	{ NULL, { NULL } },
};

struct report_check {
	const char *line;       /* for messages */
	const struct jv *json;
};

static void report_fail(const struct report_check *rc, const char *what, const char *path)
{
	fail_msg("text line \"%s\": %s (JSON path %s)", rc->line, what, path);
}

/* The JSON value at path, which must exist. */
static const struct jv *report_value(const struct report_check *rc, const char *path)
{
	const struct jv *v = json_get(rc->json, path);

	if (!v)
		report_fail(rc, "the JSON lacks the figure", path);
	return v;
}

/* A figure of the text (a number, maybe in MiB, or a digest) against the
 * JSON value at path_spec ("path" or "path/MiB"). */
static void expect_figure(const struct report_check *rc, const char *word, const char *path_spec)
{
	char path[128], want[128];
	const char *slash = strchr(path_spec, '/'), *dot = strchr(word, '.');
	const struct jv *v;
	double scale = slash ? (double)(1 << 20) : 1;

	snprintf(path, sizeof(path), "%.*s", slash ? (int)(slash - path_spec) : (int)strlen(path_spec),
		 path_spec);
	v = report_value(rc, path);
	if (v->type == J_STR) {                      /* a digest */
		if (strcmp(v->text, word))
			report_fail(rc, "the JSON's string differs", path);
		return;
	}
	if (v->type != J_NUM)
		report_fail(rc, "the JSON's value is not a number", path);
	if (dot)                                      /* as many decimals as the text */
		snprintf(want, sizeof(want), "%.*f", (int)strlen(dot + 1), strtod(v->text, NULL) / scale);
	else
		snprintf(want, sizeof(want), "%llu", strtoull(v->text, NULL, 10) / (unsigned long long)scale);
	if (strcmp(want, word)) {
		print_error("text %s, JSON %s (%s)\n", word, v->text, want);
		report_fail(rc, "the JSON's value differs", path);
	}
}

/* The text's figures: decimal numbers and hex digests, in order. */
static int figures(const char *text, char words[][128], int max)
{
	char buf[512], *save, *w;
	int n = 0;

	snprintf(buf, sizeof(buf), "%s", text);
	for (w = strtok_r(buf, " ,;:()/", &save); w; w = strtok_r(NULL, " ,;:()/", &save)) {
		size_t digits = strspn(w, "0123456789"), hex = strspn(w, "0123456789abcdef");
		bool number = digits && (!w[digits] || (w[digits] == '.' && w[digits + 1] &&
							 strspn(w + digits + 1, "0123456789") == strlen(w + digits + 1)));

		if (!number && !(hex >= 32 && !w[hex]))
			continue;
		assert_true(n < max);
		snprintf(words[n++], sizeof(words[0]), "%s", w);
	}
	return n;
}

static void expect_line_figures(const struct report_check *rc, const struct text_line *tl)
{
	char words[16][128];
	int n = figures(rc->line + strlen(tl->label), words, 16), want = 0;

	while (want < 8 && tl->paths[want])
		want++;
	if (n != want)
		fail_msg("text line \"%s\": %d figures, the test knows %d", rc->line, n, want);
	for (int i = 0; i < n; i++)
		expect_figure(rc, words[i], tl->paths[i]);
}

static void expect_json_string(const struct report_check *rc, const char *path, const char *s)
{
	const struct jv *v = report_value(rc, path);

	if (v->type != J_STR || strcmp(v->text, s))
		report_fail(rc, "the JSON's string differs", path);
}

static void expect_json_u64(const struct report_check *rc, const char *path, unsigned long long x)
{
	char word[32];

	snprintf(word, sizeof(word), "%llu", x);
	expect_figure(rc, word, path);
}

/* "  vCPU 0: convert  32 MiB at 0x0" */
static void expect_vcpu_line(const struct report_check *rc, int *vcpus)
{
	char scenario[32], path[64];
	unsigned long long mib, base;
	int i;

	if (sscanf(rc->line, "  vCPU %d: %31s %llu MiB at 0x%llx", &i, scenario, &mib, &base) != 4 ||
	    i != (*vcpus)++)
		fail_msg("text line \"%s\": not the next vCPU", rc->line);
	snprintf(path, sizeof(path), "scenarios.%d", i);
	expect_json_string(rc, path, scenario);
	snprintf(path, sizeof(path), "chunks.%d.mem_bytes/MiB", i);
	expect_json_u64(rc, path, mib);
	snprintf(path, sizeof(path), "chunks.%d.base", i);
	expect_json_u64(rc, path, base);
}

/* "  private_readback   20 passed, 0 failed" */
static void expect_check_line(const struct report_check *rc, int *checks)
{
	unsigned long long passed, failed;
	char name[64], path[128];

	if (sscanf(rc->line, "  %63s %llu passed, %llu failed", name, &passed, &failed) != 3)
		fail_msg("text line \"%s\": not a check", rc->line);
	snprintf(path, sizeof(path), "checks.%s.passed", name);
	expect_json_u64(rc, path, passed);
	snprintf(path, sizeof(path), "checks.%s.failed", name);
	expect_json_u64(rc, path, failed);
	(*checks)++;
}

/* pKVM: "               host_donate_guest 516 (0), guest_share_host 13100 (0)" */
static void expect_transitions_line(const struct report_check *rc)
{
	char buf[512], *save, *w, path[128];
	int n = 0;

	snprintf(buf, sizeof(buf), "%s", rc->line);
	for (w = strtok_r(buf, " ,()", &save); w; w = strtok_r(NULL, " ,()", &save), n++) {
		const char *name = w, *done = strtok_r(NULL, " ,()", &save), *refused = strtok_r(NULL, " ,()", &save);

		if (!done || !refused)
			fail_msg("text line \"%s\": not transitions", rc->line);
		snprintf(path, sizeof(path), "pkvm.transitions.%s", name);
		expect_figure(rc, done, path);
		snprintf(path, sizeof(path), "pkvm.refused.%s", name);
		expect_figure(rc, refused, path);
	}
	assert_true(n == 1 || n == 2);
}

/* Every line of the text report of a run against the JSON of the same run. */
static void expect_text_in_json(const char *text, const struct jv *json, const struct text_line *lines,
				const char *vm_type)
{
	int seen[32] = { 0 }, vcpus = 0, checks = 0, results = 0;
	char *copy = strdup(text), *save, *line;
	const struct jv *v;

	assert_non_null(copy);
	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		struct report_check rc = { .line = line, .json = json };
		int i;

		if (!strncmp(line, "  vCPU ", 7)) {
			expect_vcpu_line(&rc, &vcpus);
			continue;
		}
		if (!strcmp(line, "checks"))
			continue;
		if (!strncmp(line, "  ", 2) && line[2] != ' ') {
			expect_check_line(&rc, &checks);
			continue;
		}
		if (!strncmp(line, "guest failure  ", 15)) {
			expect_json_string(&rc, "guest_failure", line + 15);
			continue;
		}
		if (!strncmp(line, "result         ", 15)) {
			char result[8];
			unsigned long long passed, failed;

			assert_int_equal(sscanf(line + 15, "%7s (%llu checks passed, %llu failed)", result, &passed,
						&failed), 3);
			expect_json_string(&rc, "result", result);
			expect_json_u64(&rc, "checks_passed", passed);
			expect_json_u64(&rc, "checks_failed", failed);
			results++;
			continue;
		}
		for (i = 0; lines[i].label && strncmp(line, lines[i].label, strlen(lines[i].label)); i++)
			;
		if (lines[i].label) {
			if (seen[i]++)
				fail_msg("text line \"%s\" twice", line);
			if (!strcmp(lines[i].label, HEADER)) {
				char want[64];

				snprintf(want, sizeof(want), HEADER "%s,", vm_type);
				if (strncmp(line, want, strlen(want)))
					fail_msg("header \"%s\" is not of vm-type %s", line, vm_type);
				v = lines == tdx_lines ? report_value(&rc, "no_huge") : NULL;
				if (v && (v->type == J_TRUE) != (strstr(line, ", 4K only") != NULL))
					fail_msg("header \"%s\": no_huge is %s in the JSON", line,
						 v->type == J_TRUE ? "true" : "false");
			}
			expect_line_figures(&rc, &lines[i]);
			continue;
		}
		if (lines == pkvm_lines && !strncmp(line, "               ", 15) && line[15] != ' ') {
			expect_transitions_line(&rc);
			continue;
		}
		fail_msg("text line \"%s\": the test does not know it (add where the JSON has it)", line);
	}
	free(copy);
	for (int i = 0; lines[i].label; i++)
		if (!seen[i])
			fail_msg("the text lacks its \"%s\" line", lines[i].label);
	assert_int_equal(results, 1);
	v = report_value(&(struct report_check){ .line = "(vCPUs)", .json = json }, "vcpus");
	if (lines != snp_lines && lines != tdx_lines && lines != realm_lines)
		assert_int_equal(vcpus, (int)strtol(v->text, NULL, 10));
	/* The checks the text lists are all the JSON has. */
	v = json_get(json, "checks");
	assert_non_null(v);
	for (v = v->child; v; v = v->next)
		checks--;
	assert_int_equal(checks, 0);
}

/* One run, its text on stdout and its JSON in a file (--json-file): the
 * JSON says what it is (schema 1, privmem's version, the vm-type) and holds
 * every figure of the text with the same value. */
static void expect_report_agrees(const char *vm_type, const char *mem, const char *extra,
				 const struct text_line *lines)
{
	char json_path[] = "/tmp/privmem_test_cli_XXXXXX";
	int fd = mkstemp(json_path);
	const char *args[16] = { "run", "--vm-type", vm_type, "--vcpus", "2", "--mem", mem,
				 "--iterations", "20", "--seed", "3", "--json-file", json_path, extra, NULL };
	const struct jv *v;
	struct result r;
	struct jv *json;
	char *text;

	assert_true(fd >= 0);
	close(fd);
	r = run_cli(args);
	text = read_file(json_path);
	unlink(json_path);
	expect_status(&r, 0);
	json = json_parse(text);
	if (!json) {
		dump(&r);
		fail_msg("--json-file holds no JSON: %s", text);
	}
	assert_int_equal(json->type, J_OBJ);
	v = json_get(json, "schema");
	assert_non_null(v);
	assert_string_equal(v->text, "1");
	v = json_get(json, "version");
	assert_non_null(v);
	assert_string_equal(v->text, pm_version());
	v = json_get(json, "vm_type");
	assert_non_null(v);
	assert_string_equal(v->text, vm_type);
	expect_text_in_json(r.out, json, lines, vm_type);
	json_free(json);
	free(text);
	result_free(&r);
}

static void test_run_json_holds_every_figure_of_the_text_sw(void **state)
{
	expect_report_agrees("sw", "64M", NULL, sw_lines);
}

static void test_run_json_holds_every_figure_of_the_text_default(void **state)
{
	expect_report_agrees("default", "64M", NULL, sw_lines);
}

static void test_run_json_holds_every_figure_of_the_text_pkvm(void **state)
{
	expect_report_agrees("pkvm", "16M", NULL, pkvm_lines);
}

static void test_run_json_holds_every_figure_of_the_text_snp(void **state)
{
	expect_report_agrees("snp", "64M", NULL, snp_lines);
}

static void test_run_json_holds_every_figure_of_the_text_tdx(void **state)
{
	expect_report_agrees("tdx", "64M", NULL, tdx_lines);
	expect_report_agrees("tdx", "64M", "--no-huge", tdx_lines);
}

static void test_run_json_holds_every_figure_of_the_text_realm(void **state)
{
	expect_report_agrees("realm", "64M", NULL, realm_lines);
	expect_report_agrees("realm", "64M", "--no-huge", realm_lines);
}

static void test_run_in_place_json_holds_every_figure_of_the_text(void **state)
{
	expect_report_agrees("sw", "64M", "--gmem-in-place", sw_lines);
}

static void test_bad_run_arguments_exit_2_with_a_message(void **state)
{
	const char *const vcpus0[] = { "run", "--vcpus", "0", NULL };
	const char *const mem1k[] = { "run", "--mem", "1K", NULL };
	const char *const scen[] = { "run", "--scenario", "nope", NULL };
	const char *const type[] = { "run", "--vm-type", "nope", NULL };
	const char *const extra[] = { "run", "--vcpus", "2", "surplus", NULL };
	const char *const unknown_opt[] = { "run", "--frobnicate", NULL };
	const char *const pkvm_convert[] = { "run", "--vm-type", "pkvm", "--scenario", "convert", NULL };
	const char *const sw_virtio[] = { "run", "--vm-type", "sw", "--scenario", "virtio", NULL };

	expect_usage_error(vcpus0, "--vcpus");
	expect_usage_error(mem1k, "--mem");
	expect_usage_error(scen, "nope");
	expect_usage_error(type, "nope");
	expect_usage_error(extra, "surplus");
	expect_usage_error(unknown_opt, "frobnicate");
	expect_usage_error(pkvm_convert, "pkvm");
	expect_usage_error(sw_virtio, "virtio");
}

/* ---- the CLI's conventions ------------------------------------------------ */

static void test_no_arguments_is_a_usage_error_on_stderr(void **state)
{
	const char *const none[] = { NULL };
	struct result r = run_cli(none);

	expect_status(&r, 2);
	expect_contains(&r, r.err, "usage: privmem");
	if (r.out_len) {
		dump(&r);
		fail_msg("usage went to stdout");
	}
	result_free(&r);
}

/* -h and --help on every command: its usage on stdout, exit 0. */
static void test_every_command_takes_h_and_help(void **state)
{
	static const char *const commands[] = { "run", "bench", "exec" };

	for (size_t c = 0; c < sizeof(commands) / sizeof(commands[0]); c++) {
		for (int form = 0; form < 2; form++) {
			const char *const args[] = { commands[c], form ? "--help" : "-h", NULL };
			struct result r = run_cli(args);
			char want[64];

			snprintf(want, sizeof(want), "usage: privmem %s", commands[c]);
			expect_status(&r, 0);
			expect_contains(&r, r.out, want);
			result_free(&r);
		}
	}
}

/* Every error message starts with the program's name, once ("privmem:" or
 * "privmem COMMAND:"), never with a command's name alone or twice. */
static void test_errors_start_with_one_program_name(void **state)
{
	const char *const cases[][5] = {
		{ "run", "--frobnicate", NULL }, { "bench", "--frobnicate", NULL },
		{ "exec", "--frobnicate", NULL }, { "run", "--vcpus", "x", NULL }, { "bench", "nope", NULL },
		{ "bench", NULL }, { "exec", NULL }, { "run", "--vm-type", "tdx", "-z", NULL },
		{ "--frobnicate", NULL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct result r = run_cli(cases[i]);

		expect_status(&r, 2);
		if (strncmp(r.err, "privmem: ", 9) && strncmp(r.err, "privmem run: ", 13) &&
		    strncmp(r.err, "privmem bench: ", 15) && strncmp(r.err, "privmem exec: ", 14)) {
			dump(&r);
			fail_msg("the message does not start with the program's name");
		}
		if (strstr(r.err, "privmem: privmem") || strstr(r.err, "run: run") || !strncmp(r.err, "run:", 4)) {
			dump(&r);
			fail_msg("the program's name is repeated or missing");
		}
		result_free(&r);
	}
}

/* Negative numbers, overflow and trailing garbage are usage errors
 * naming the option, for every numeric option of every command. */
static void test_bad_numbers_are_usage_errors(void **state)
{
	static const char *const bad[] = { "-1", "-0", " 1", "+1", "1x", "2M2", "", "99999999999999999999",
					   "18446744073709551616", "0x10" };
	static const char *const uint_opts[][2] = {
		{ "run", "--vcpus" }, { "run", "--seed" }, { "run", "--iterations" }, { "run", "--stall-timeout" },
		{ "bench", "--reps" },
	};
	static const char *const size_opts[][2] = {
		{ "run", "--mem" }, { "bench", "--size" }, { "exec", "--pool-size" },
	};

	for (size_t b = 0; b < sizeof(bad) / sizeof(bad[0]); b++) {
		for (size_t o = 0; o < sizeof(uint_opts) / sizeof(uint_opts[0]); o++) {
			const char *const args[] = { uint_opts[o][0], uint_opts[o][1], bad[b], "convert", NULL };
			const char *const bench_args[] = { uint_opts[o][0], "convert", uint_opts[o][1], bad[b], NULL };

			expect_usage_error(strcmp(uint_opts[o][0], "bench") ? args : bench_args, uint_opts[o][1]);
		}
		for (size_t o = 0; o < sizeof(size_opts) / sizeof(size_opts[0]); o++) {
			const char *const args[] = { size_opts[o][0], size_opts[o][1], bad[b], NULL };
			const char *const bench_args[] = { "bench", "convert", size_opts[o][1], bad[b], NULL };
			const char *const exec_args[] = { "exec", size_opts[o][1], bad[b], "true", NULL };

			expect_usage_error(!strcmp(size_opts[o][0], "bench") ? bench_args :
					   !strcmp(size_opts[o][0], "exec") ? exec_args : args, size_opts[o][1]);
		}
		{
			const char *const args[] = { "run", "--vm-type", "tdx", "--busy-rate", bad[b], NULL };

			expect_usage_error(args, "--busy-rate");
		}
	}
}

/* Sizes take K, M, G and T (powers of 1024): 1T is a size (refused only
 * because it does not fit in the simulated host memory, naming the
 * setting), and 65536K is 64 MiB. */
static void test_sizes_take_k_m_g_t(void **state)
{
	const char *const tera[] = { "run", "--vm-type", "sw", "--mem", "1T", NULL };
	const char *const kilo[] = { "run", "--vm-type", "sw", "--mem", "65536K", "--vcpus", "1", "--iterations",
				     "2", "--json", NULL };
	const char *const bench_tera[] = { "bench", "convert", "--size", "1t", NULL };
	struct result r;

	expect_usage_error(tera, "PRIVMEM_POOL_SIZE");
	expect_usage_error(bench_tera, "PRIVMEM_POOL_SIZE");
	r = run_cli(tera);
	if (strstr(r.err, "bad --mem")) {
		dump(&r);
		fail_msg("1T not taken as a size");
	}
	result_free(&r);
	r = run_cli(kilo);
	expect_status(&r, 0);
	expect_contains(&r, r.out, "\"mem_bytes\":67108864,");
	result_free(&r);
}

/* --vm-type takes KVM's numbers (and privmem's 16) as well as the names. */
static void test_vm_type_takes_numbers(void **state)
{
	static const char *const types[][2] = {
		{ "0", "default" }, { "1", "sw" }, { "4", "snp" }, { "5", "tdx" }, { "16", "pkvm" },
	};

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		const char *const args[] = { "run", "--vm-type", types[i][0], "--vcpus", "1", "--mem", "16M",
					     "--iterations", "2", "--json", NULL };
		struct result r = run_cli(args);
		char want[64];

		snprintf(want, sizeof(want), "\"vm_type\":\"%s\"", types[i][1]);
		expect_status(&r, 0);
		expect_contains(&r, r.out, want);
		result_free(&r);
	}
	{
		const char *const args[] = { "run", "--vm-type", "3", NULL };

		expect_usage_error(args, "--vm-type");
	}
}

/* An option that does not apply to the VM type or scenario is an error,
 * not ignored nor swapped for another scenario. */
static void test_options_that_do_not_apply_are_errors(void **state)
{
	const char *const cases[][8] = {
		{ "run", "--vm-type", "sw", "--busy-rate", "5", NULL },
		{ "run", "--busy-rate", "5", NULL },
		{ "run", "--vm-type", "pkvm", "--no-huge", NULL },
		{ "run", "--vm-type", "default", "--scenario", "convert", NULL },
		{ "run", "--vm-type", "default", "--scenario", "accept", NULL },
		{ "run", "--vm-type", "snp", "--scenario", "bounce", NULL },
		{ "run", "--vm-type", "tdx", "--scenario", "convert", NULL },
		{ "run", "--vm-type", "pkvm", "--scenario", "bounce", NULL },
	};
	static const char *const mentions[] = { "--busy-rate", "--busy-rate", "--no-huge", "convert", "accept",
						"bounce", "convert", "bounce" };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_usage_error(cases[i], mentions[i]);
}

/* A watermark above the simulated host memory's size is an error, for
 * every command, as a bad value is. */
static void test_watermark_above_the_pool_size_is_an_error(void **state)
{
	const char *const run[] = { "run", NULL };
	const char *const bench[] = { "bench", "convert", NULL };
	const char *const exec[] = { "exec", "true", NULL };
	const char *const *cmds[] = { run, bench, exec };

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		struct result r = run_cli_env("PRIVMEM_POOL_SIZE=64M PRIVMEM_POOL_WATERMARK=128M", 60, cmds[i]);

		expect_status(&r, 2);
		expect_contains(&r, r.err, "PRIVMEM_POOL_WATERMARK");
		result_free(&r);
		r = run_cli_env("PRIVMEM_POOL_SIZE=64Mx", 60, cmds[i]);
		expect_status(&r, 2);
		expect_contains(&r, r.err, "PRIVMEM_POOL_SIZE");
		result_free(&r);
	}
}

/* The default run shows every headline feature: conversions both ways,
 * explicit (PSC exits) and implicit (KVM_EXIT_MEMORY_FAULT, each answered
 * by a conversion), faults mapping 4K and 2M, zaps, splits, shootdowns,
 * a measured launch, and every check passes. */
static void test_default_run_shows_implicit_conversion(void **state)
{
	const char *const args[] = { "run", "--vcpus", "2", "--mem", "64M", "--iterations", "20", "--json", NULL };
	struct result r = run_cli(args);
	struct jv *json = NULL;
	static const char *const positive[] = {
		"exits.memory_fault", "exits.hypercall", "implicit_conversions", "pages_to_private",
		"pages_to_shared", "faults", "mapped.4K", "mapped.2M", "zapped", "tlb_shootdowns",
		"snp.psc_requests", "snp.pvalidate",
	};

	expect_status(&r, 0);
	json = json_parse(r.out);
	assert_non_null(json);
	assert_string_equal(json_get(json, "vm_type")->text, "snp");
	assert_string_equal(json_get(json, "result")->text, "PASS");
	for (size_t i = 0; i < sizeof(positive) / sizeof(positive[0]); i++) {
		const struct jv *v = json_get(json, positive[i]);

		if (!v || v->type != J_NUM || !strtoull(v->text, NULL, 10)) {
			dump(&r);
			fail_msg("%s is not a positive count", positive[i]);
		}
	}
	assert_string_equal(json_get(json, "implicit_conversions")->text, json_get(json, "exits.memory_fault")->text);
	assert_int_equal(strlen(json_get(json, "launch_digest")->text), 96);
	json_free(json);
	result_free(&r);
}

/* On a terminal, run and bench show what they are doing on stderr:
 * bench which benchmark, of how many. Not on a pipe. */
static void test_progress_on_a_tty(void **state)
{
	const char *const bench[] = { "bench", "scale", "--size", "64M", "--reps", "2", NULL };
	const char *const run[] = { "run", "--vm-type", "sw", "--vcpus", "2", "--mem", "64M", "--scenario",
				    "accept", "--iterations", "2", NULL };
	struct result r = run_cli_tty(bench);

	expect_status(&r, 0);
	expect_contains(&r, r.err, "bench scale (1 of 1)");
	expect_contains(&r, r.err, "measurements");
	expect_contains(&r, r.out, "== scale");
	result_free(&r);
	r = run_cli(bench);
	expect_status(&r, 0);
	if (strstr(r.err, "(1 of 1)")) {
		dump(&r);
		fail_msg("progress on a pipe");
	}
	result_free(&r);
	r = run_cli_tty(run);
	expect_status(&r, 0);
	expect_contains(&r, r.err, "running:");
	result_free(&r);
}

/* ---- runs that cannot finish end, with a message ----------------------- */

/* A run bounded by timeout(1): the status and the message it must end with. */
static void expect_ends_with(const char *env, const char *const *args, int status, const char *needle)
{
	struct result r = run_cli_env(env, 60, args);

	expect_status(&r, status);
	expect_contains(&r, r.err, needle);
	result_free(&r);
}

/* Guest memory larger than the simulated host memory is refused before the
 * run starts (it used to run out of memory half way, or loop for ever),
 * with the setting to change. */
static void test_run_larger_than_host_memory_is_refused_naming_the_pool_size(void **state)
{
	const char *const accept[] = { "run", "--vm-type", "sw", "--mem", "256M", "--vcpus", "1", "--scenario",
				       "accept", NULL };
	const char *const big[] = { "run", "--mem", "16G", "--iterations", "2", NULL };
	const char *const tdx[] = { "run", "--vm-type", "tdx", "--mem", "128M", "--vcpus", "1", NULL };
	const char *const dflt[] = { "run", "--vm-type", "default", "--mem", "128M", "--vcpus", "1",
				     "--iterations", "2", NULL };
	struct result r;

	expect_ends_with("PRIVMEM_POOL_SIZE=64M", accept, 2, "PRIVMEM_POOL_SIZE");
	expect_ends_with(NULL, big, 2, "PRIVMEM_POOL_SIZE");
	expect_ends_with("PRIVMEM_POOL_SIZE=64M", tdx, 2, "--mem (128 MiB)");
	/* A default VM's memory is the VMM's own, not the pool's. */
	r = run_cli_env("PRIVMEM_POOL_SIZE=64M", 60, dflt);
	expect_status(&r, 0);
	result_free(&r);
}

/* Guest memory that fits but leaves the VM's own page tables without room:
 * a fault finds no memory, KVM_RUN fails with ENOMEM, and the run stops
 * with a message that says so and names the setting. */
static void test_run_out_of_host_memory_stops_and_says_so(void **state)
{
	const char *const accept[] = { "run", "--vm-type", "sw", "--mem", "64M", "--vcpus", "1", "--scenario",
				       "accept", NULL };
	const char *const snp[] = { "run", "--vm-type", "snp", "--mem", "64M", "--vcpus", "1", NULL };
	struct result r = run_cli_env("PRIVMEM_POOL_SIZE=64M", 60, accept);

	expect_status(&r, 1);
	expect_contains(&r, r.out, "out of memory");
	expect_contains(&r, r.out, "PRIVMEM_POOL_SIZE");
	expect_contains(&r, r.out, "result         FAIL");
	result_free(&r);
	expect_ends_with("PRIVMEM_POOL_SIZE=64M", snp, 1, "");
}

/* privmem bench: a SIZE whose guest memory does not fit is refused before
 * any measurement (fault, access, psc and tdx used to loop for ever); one
 * that fits but runs the pool dry fails (exit 1) saying so. */
static void test_bench_larger_than_host_memory_is_refused_or_fails_with_a_message(void **state)
{
	static const char *const names[] = { "fault", "access", "psc", "tdx", "scale", "guest", "e2e", "realm" };
	const char *const fault[] = { "bench", "fault", "--size", "64M", "--reps", "1", NULL };
	struct result r;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const char *const args[] = { "bench", names[i], "--size", "256M", "--reps", "1", NULL };

		expect_ends_with("PRIVMEM_POOL_SIZE=64M", args, 2, "PRIVMEM_POOL_SIZE");
	}
	r = run_cli_env("PRIVMEM_POOL_SIZE=64M", 90, fault);
	expect_status(&r, 1);
	expect_contains(&r, r.out, "out of memory");
	result_free(&r);
}

/* A TDX module that answers OPERAND_BUSY to every SEAMCALL: no TD can be
 * built. The watchdog kicks the build after --stall-timeout seconds without
 * progress, and the run ends (exit 1) saying why. */
static void test_tdx_always_busy_gives_up_after_the_stall_timeout(void **state)
{
	const char *const args[] = { "run", "--vm-type", "tdx", "--busy-rate", "1000000", "--mem", "64M",
				     "--vcpus", "1", "--stall-timeout", "1", NULL };
	const char *const bad[] = { "run", "--stall-timeout", "0", NULL };
	double t0 = now_s();

	expect_ends_with(NULL, args, 1, "no progress for 1 s, gave up");
	expect_ends_with(NULL, args, 1, "OPERAND_BUSY");
	assert_true(now_s() - t0 < 60);
	expect_usage_error(bad, "--stall-timeout");
}

static void test_unknown_command_exits_2(void **state)
{
	const char *const args[] = { "nope", NULL };

	expect_usage_error(args, "nope");
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_help_exits_0_with_usage_on_stdout),
		cmocka_unit_test(test_version_exits_0_and_prints_the_library_version),
		cmocka_unit_test(test_run_small_vm_passes),
		cmocka_unit_test(test_run_pkvm_virtio_passes_and_reports_the_hyp),
		cmocka_unit_test(test_bench_share_measures_every_figure),
		cmocka_unit_test(test_bench_inplace_measures_both_modes),
		cmocka_unit_test(test_bench_guest_measures_every_figure),
		cmocka_unit_test(test_bench_e2e_json_has_every_section_figure_and_target),
		cmocka_unit_test(test_run_snp_passes_with_launch_digest_and_no_violation),
		cmocka_unit_test(test_run_tdx_passes_with_mrtd_and_no_fatal_event_or_leak),
		cmocka_unit_test(test_run_in_place_sw_keeps_data_in_place),
		cmocka_unit_test(test_run_in_place_snp_launches_from_the_page),
		cmocka_unit_test(test_run_in_place_tdx_builds_from_the_page),
		cmocka_unit_test(test_run_json_is_one_object_line_with_result_and_keys),
		cmocka_unit_test(test_run_convert_scenario_alone_passes),
		cmocka_unit_test(test_run_bounce_scenario_alone_passes),
		cmocka_unit_test(test_run_accept_scenario_alone_passes),
		cmocka_unit_test(test_run_default_vm_type_passes),
		cmocka_unit_test(test_run_json_holds_every_figure_of_the_text_sw),
		cmocka_unit_test(test_run_json_holds_every_figure_of_the_text_default),
		cmocka_unit_test(test_run_json_holds_every_figure_of_the_text_pkvm),
		cmocka_unit_test(test_run_json_holds_every_figure_of_the_text_realm),
		cmocka_unit_test(test_run_json_holds_every_figure_of_the_text_snp),
		cmocka_unit_test(test_run_json_holds_every_figure_of_the_text_tdx),
		cmocka_unit_test(test_run_in_place_json_holds_every_figure_of_the_text),
		cmocka_unit_test(test_bad_run_arguments_exit_2_with_a_message),
		cmocka_unit_test(test_unknown_command_exits_2),
		cmocka_unit_test(test_no_arguments_is_a_usage_error_on_stderr),
		cmocka_unit_test(test_every_command_takes_h_and_help),
		cmocka_unit_test(test_errors_start_with_one_program_name),
		cmocka_unit_test(test_bad_numbers_are_usage_errors),
		cmocka_unit_test(test_sizes_take_k_m_g_t),
		cmocka_unit_test(test_vm_type_takes_numbers),
		cmocka_unit_test(test_options_that_do_not_apply_are_errors),
		cmocka_unit_test(test_watermark_above_the_pool_size_is_an_error),
		cmocka_unit_test(test_default_run_shows_implicit_conversion),
		cmocka_unit_test(test_progress_on_a_tty),
		cmocka_unit_test(test_run_larger_than_host_memory_is_refused_naming_the_pool_size),
		cmocka_unit_test(test_run_out_of_host_memory_stops_and_says_so),
		cmocka_unit_test(test_tdx_always_busy_gives_up_after_the_stall_timeout),
		cmocka_unit_test(test_bench_larger_than_host_memory_is_refused_or_fails_with_a_message),
	};
	if (cli_init())
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * The CLI's tools around a run, run as a user runs them (tests/lib/
 * cli_run.h): traces (run --trace, PRIVMEM_TRACE, exec --trace), plots
 * (run --plot, bench --plot) and what bench's JSON says about itself.
 *
 *  - A trace of each VM type is a well-formed Perfetto trace (checked by
 *    tests/lib/trace_check.c, not by the tracer) holding every event the
 *    run's JSON report counted: exits by reason, faults and the level each
 *    mapped, zaps, splits, shootdowns, the VMM's conversions, and the
 *    models' firmware calls against the models' own counters (SEAMCALLs,
 *    RMPUPDATE / PSMASH / PVALIDATE, pKVM's transitions). The report reads
 *    the VM's counters after the vCPUs stop and before the VM goes, so
 *    events are counted up to the end of the last KVM_RUN (pKVM's
 *    transitions: to the end, as its report's are).
 *  - A plot is an SVG (XML declaration, one svg element, balanced groups)
 *    that names each series it draws.
 *  - bench's JSON carries every measurement (best and median are theirs),
 *    privmem's version and the host.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <privmem/privmem.h>
#include "lib/cli_run.h"
#include "lib/json.h"
#include "lib/trace_check.h"

static char *tmp_path(const char *suffix)
{
	static int n;
	char *p = malloc(128);

	assert_non_null(p);
	snprintf(p, 128, "/tmp/privmem_test_cli_tools_%d_%d%s", (int)getpid(), n++, suffix);
	return p;
}

static uint64_t json_u64(const struct jv *json, const char *path)
{
	const struct jv *v = json_get(json, path);

	if (!v || v->type != J_NUM)
		fail_msg("the report has no count at %s", path);
	return strtoull(v->text, NULL, 10);
}

static void expect_count(uint64_t trace, uint64_t report, const char *what)
{
	if (trace != report)
		fail_msg("%s: %llu in the trace, %llu in the report", what, (unsigned long long)trace,
			 (unsigned long long)report);
}

/* One run with --trace and --json: the report and the trace. */
static struct jv *traced_run(const char *env, const char *const *args, const char *trace_path, struct trace *t)
{
	struct result r = run_cli_env(env, 0, args);
	struct jv *json;

	expect_status(&r, 0);
	json = json_parse(r.out);
	if (!json) {
		dump(&r);
		fail_msg("no JSON report");
	}
	if (trace_load(t, trace_path)) {
		dump(&r);
		fail_msg("%s", t->error);
	}
	result_free(&r);
	return json;
}

/* What every VM type's report counts, against the trace. */
static void expect_vm_counts(const struct trace *t, const struct jv *json)
{
	static const char *const exits[] = { "ucall", "memory_fault", "hypercall", "mmio", "intr", "system_event" };
	static const char *const levels[][2] = { { "4K", "0" }, { "2M", "1" }, { "1G", "2" } };
	double until = trace_last_end(t, "KVM_RUN");
	char path[64];

	assert_true(until > 0);
	for (size_t e = 0; e < sizeof(exits) / sizeof(exits[0]); e++) {
		snprintf(path, sizeof(path), "exits.%s", exits[e]);
		expect_count(trace_count(t, "exit", exits[e], NULL, NULL, until), json_u64(json, path), path);
	}
	expect_count(trace_count(t, "mmu", "fault", NULL, NULL, until), json_u64(json, "faults"), "faults");
	for (size_t l = 0; l < 3; l++) {
		snprintf(path, sizeof(path), "mapped.%s", levels[l][0]);
		expect_count(trace_count(t, "mmu", "fault", "level", levels[l][1], until), json_u64(json, path), path);
	}
	expect_count(trace_sum(t, "mmu", "zap", "zapped", until), json_u64(json, "zapped"), "zapped");
	expect_count(trace_sum(t, "mmu", "zap", "split", until), json_u64(json, "splits"), "splits");
	expect_count(trace_count(t, "mmu", "tlb_shootdown", NULL, NULL, until), json_u64(json, "tlb_shootdowns"),
		     "tlb_shootdowns");
}

static void test_trace_of_a_sw_run(void **state)
{
	char *path = tmp_path(".json");
	const char *const args[] = { "run", "--vm-type", "sw", "--vcpus", "2", "--mem", "64M", "--iterations", "20",
				     "--json", "--trace", path, NULL };
	struct trace t;
	struct jv *json = traced_run(NULL, args, path, &t);
	double until = trace_last_end(&t, "KVM_RUN");

	expect_vm_counts(&t, json);
	/* Every conversion the VMM made is an attribute change; each vCPU's
	 * KVM_RUNs are on a thread named after it. */
	expect_count(trace_count(&t, "convert", NULL, NULL, NULL, until), json_u64(json, "conversions"),
		     "conversions");
	assert_true(json_u64(json, "conversions") > 0);
	assert_true(trace_on_thread(&t, "vCPU 0", "KVM_RUN", "vcpu", "0"));
	assert_true(trace_on_thread(&t, "vCPU 1", "KVM_RUN", "vcpu", "1"));
	trace_free(&t);
	json_free(json);
	unlink(path);
	free(path);
}

static void test_trace_of_an_snp_run_has_its_rmp_instructions(void **state)
{
	char *path = tmp_path(".json");
	const char *const args[] = { "run", "--vm-type", "snp", "--vcpus", "2", "--mem", "64M", "--iterations", "20",
				     "--json", "--trace", path, NULL };
	struct trace t;
	struct jv *json = traced_run(NULL, args, path, &t);
	double until = trace_last_end(&t, "KVM_RUN");

	expect_vm_counts(&t, json);
	expect_count(trace_count(&t, "convert", NULL, NULL, NULL, until), json_u64(json, "conversions"),
		     "conversions");
	/* The RMP's own counters; PVALIDATE counted by the model when it
	 * succeeded (result 0). */
	expect_count(trace_count(&t, "snp", "RMPUPDATE", NULL, NULL, until),
		     json_u64(json, "snp.rmp_updates") + json_u64(json, "snp.rmp_update_failures"), "RMPUPDATE");
	expect_count(trace_count(&t, "snp", "PSMASH", "result", "0", until), json_u64(json, "snp.rmp_psmash"),
		     "PSMASH");
	expect_count(trace_count(&t, "snp", "PVALIDATE", "result", "0", until), json_u64(json, "snp.pvalidate"),
		     "PVALIDATE");
	assert_true(json_u64(json, "exits.memory_fault") > 0 && json_u64(json, "snp.rmp_psmash") > 0);
	trace_free(&t);
	json_free(json);
	unlink(path);
	free(path);
}

static void test_trace_of_a_tdx_run_has_its_seamcalls(void **state)
{
	static const char *const calls[][2] = {
		{ "TDH.MEM.PAGE.ADD", "page_adds" }, { "TDH.MEM.PAGE.AUG", "page_augs" },
		{ "TDH.MEM.PAGE.REMOVE", "page_removes" }, { "TDH.MR.EXTEND", "mr_extends" },
		{ "TDH.MEM.TRACK", "tracks" }, { "TDH.MEM.PAGE.DEMOTE", "demotions" },
	};
	char *path = tmp_path(".json");
	const char *const args[] = { "run", "--vm-type", "tdx", "--vcpus", "2", "--mem", "64M", "--iterations", "20",
				     "--json", "--trace", path, NULL };
	struct trace t;
	struct jv *json = traced_run(NULL, args, path, &t);
	double until = trace_last_end(&t, "KVM_RUN");

	expect_vm_counts(&t, json);
	/* The VMM's conversions, and the build's one attribute change (all
	 * RAM private), which is not one. */
	expect_count(trace_count(&t, "convert", NULL, NULL, NULL, until), json_u64(json, "conversions") + 1,
		     "conversions");
	for (size_t c = 0; c < sizeof(calls) / sizeof(calls[0]); c++)
		expect_count(trace_count(&t, "tdx", calls[c][0], "status", "\"0x0\"", until),
			     json_u64(json, calls[c][1]), calls[c][0]);
	assert_true(trace_count(&t, "tdx", "TDG.MEM.PAGE.ACCEPT", NULL, NULL, until) > 0);
	assert_true(json_u64(json, "page_augs") > 0);
	trace_free(&t);
	json_free(json);
	unlink(path);
	free(path);
}

/* pKVM's report counts the hypervisor's transitions to the VM's teardown. */
static void test_trace_of_a_pkvm_run_has_its_transitions(void **state)
{
	char *path = tmp_path(".json");
	const char *const args[] = { "run", "--vm-type", "pkvm", "--vcpus", "2", "--mem", "16M", "--iterations",
				     "20", "--json", "--trace", path, NULL };
	struct trace t;
	struct jv *json = traced_run(NULL, args, path, &t);
	const struct jv *tr = json_get(json, "pkvm.transitions");
	char refused[96];
	uint64_t any = 0;

	expect_vm_counts(&t, json);
	assert_non_null(tr);
	for (const struct jv *v = tr->child; v; v = v->next) {
		snprintf(refused, sizeof(refused), "pkvm.refused.%s", v->key);
		expect_count(trace_count(&t, "pkvm", v->key, NULL, NULL, 0),
			     strtoull(v->text, NULL, 10) + json_u64(json, refused), v->key);
		any += strtoull(v->text, NULL, 10);
	}
	assert_true(any > 0);
	trace_free(&t);
	json_free(json);
	unlink(path);
	free(path);
}

/* A realm's run: every RMI command traced, as the RMM counts them (the
 * successes by command in the report's "rmm", the failures in all). */
static void test_trace_of_a_realm_run_has_its_rmi_commands(void **state)
{
	static const char *const cmds[] = {
		"granule_delegate", "granule_undelegate", "realm_create", "realm_activate", "realm_destroy",
		"rec_create", "rec_destroy", "rtt_create", "rtt_destroy", "rtt_fold", "rtt_init_ripas",
		"rtt_set_ripas", "rtt_read_entry", "data_create", "data_create_unknown", "data_destroy",
		"rtt_map_unprotected", "rtt_unmap_unprotected",
	};
	char *path = tmp_path(".json");
	const char *const args[] = { "run", "--vm-type", "realm", "--vcpus", "2", "--mem", "16M", "--iterations",
				     "20", "--json", "--trace", path, NULL };
	struct trace t;
	struct jv *json = traced_run(NULL, args, path, &t);
	double until = trace_last_end(&t, "KVM_RUN");
	uint64_t calls = 0, ok = 0;
	char name[64], key[64];

	expect_vm_counts(&t, json);
	for (size_t c = 0; c < sizeof(cmds) / sizeof(cmds[0]); c++) {
		snprintf(name, sizeof(name), "RMI_%s", cmds[c]);
		for (char *p = name; *p; p++)
			*p = (char)toupper((unsigned char)*p);
		snprintf(key, sizeof(key), "rmm.rmi_%s", cmds[c]);
		expect_count(trace_count(&t, "cca", name, "result", "\"0x0\"", until), json_u64(json, key), name);
		calls += trace_count(&t, "cca", name, NULL, NULL, until);
		ok += json_u64(json, key);
	}
	expect_count(calls - ok, json_u64(json, "rmm.rmi_errors"), "failed RMI commands");
	expect_count(trace_count(&t, "cca", "RSI_IPA_STATE_SET", NULL, NULL, until),
		     json_u64(json, "realm.ripas_change_exits"), "RSI_IPA_STATE_SET");
	assert_true(json_u64(json, "rmm.rmi_data_create_unknown") > 0);
	trace_free(&t);
	json_free(json);
	unlink(path);
	free(path);
}

/* PRIVMEM_TRACE=FILE: the library traces from its start and writes the
 * file when the program exits; privmem exec --trace sets it for a program
 * run on privmem. */
static void test_trace_from_the_environment_and_exec(void **state)
{
	char *path = tmp_path(".json"), env[160], prog[4096];
	const char *const args[] = { "run", "--vm-type", "sw", "--vcpus", "1", "--mem", "16M", "--iterations", "4",
				     "--json", NULL };
	const char *const exec[] = { "exec", "--trace", path, "--", prog, "close-during-run", NULL };
	struct trace t;
	struct jv *json;
	struct result r;

	snprintf(env, sizeof(env), "PRIVMEM_TRACE=%s", path);
	json = traced_run(env, args, path, &t);
	expect_vm_counts(&t, json);
	trace_free(&t);
	json_free(json);
	unlink(path);

	snprintf(prog, sizeof(prog), "%s", cli_binary());
	snprintf(strrchr(prog, '/'), sizeof(prog) - (size_t)(strrchr(prog, '/') - prog),
		 "/tests/interpose/kvmprog");
	r = run_cli(exec);
	expect_status(&r, 0);
	if (trace_load(&t, path)) {
		dump(&r);
		fail_msg("%s", t.error);
	}
	assert_true(trace_count(&t, "vcpu", "KVM_RUN", NULL, NULL, 0) > 0);
	trace_free(&t);
	result_free(&r);
	unlink(path);
	free(path);
}

static void test_trace_to_a_bad_path_fails_before_running(void **state)
{
	const char *const args[] = { "run", "--trace", "/nonexistent-dir/t.json", NULL };
	struct result r = run_cli(args);

	expect_status(&r, 1);
	expect_contains(&r, r.err, "/nonexistent-dir/t.json");
	if (strstr(r.out, "result")) {
		dump(&r);
		fail_msg("it ran");
	}
	result_free(&r);
}

/* ---- plots ---- */

static int count_of(const char *text, const char *needle)
{
	int n = 0;

	for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

/* An SVG document, whole, naming each of `series` (gnuplot gives a
 * series' group a <title> with its name, and the key its text). */
static void expect_svg_naming(const char *path, const char *const *series)
{
	char *svg = read_file(path);
	char want[128];

	if (strncmp(svg, "<?xml", 5) || count_of(svg, "<svg") != 1 || !strstr(svg, "</svg>") ||
	    count_of(svg, "<g ") + count_of(svg, "<g>") != count_of(svg, "</g>"))
		fail_msg("%s is not a whole SVG document", path);
	for (; *series; series++) {
		snprintf(want, sizeof(want), "<title>%s</title>", *series);
		if (!strstr(svg, want))
			fail_msg("%s does not name the series \"%s\"", path, *series);
	}
	free(svg);
}

static void test_run_plot_draws_memory_over_time(void **state)
{
	static const char *const series[] = { "private", "shared", "4K", "2M", "1G", NULL };
	static const char *const types[] = { "snp", "sw", "pkvm", "realm" };

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		char *path = tmp_path(".svg");
		const char *const args[] = { "run", "--vm-type", types[i], "--vcpus", "2", "--mem", "16M",
					     "--iterations", "10", "--plot", path, NULL };
		struct result r = run_cli(args);
		char *svg;

		expect_status(&r, 0);
		expect_svg_naming(path, series);
		svg = read_file(path);
		/* the axes; the address map's key names private and shared
		 * too, beside the series' titles and their key entries */
		expect_contains(&r, svg, "guest address (MiB)");
		expect_contains(&r, svg, "time (s)");
		assert_true(count_of(svg, ">private<") >= 3 && count_of(svg, ">shared<") >= 3);
		free(svg);
		result_free(&r);
		unlink(path);
		free(path);
	}
}

static void test_bench_plot_draws_targets_beside_limits(void **state)
{
	static const char *const series[] = { "limit", "privmem: MET", "privmem: NOT MET", NULL };
	char *path = tmp_path(".svg");
	const char *const args[] = { "bench", "convert", "--size", "16M", "--reps", "1", "--plot", path, NULL };
	struct result r = run_cli(args);
	char *svg;

	expect_status(&r, 0);
	expect_svg_naming(path, series);
	svg = read_file(path);
	expect_contains(&r, svg, "convert: 4K: privmem within 1.5x of zeroing");
	free(svg);
	result_free(&r);
	unlink(path);
	free(path);
}

/* Without gnuplot, --plot fails at once, saying what to install. */
static void test_plot_without_gnuplot_says_so_before_running(void **state)
{
	const char *const run[] = { "run", "--plot", "/tmp/privmem_never.svg", NULL };
	const char *const bench[] = { "bench", "convert", "--plot", "/tmp/privmem_never.svg", NULL };
	const char *const *cases[] = { run, bench };

	for (size_t i = 0; i < 2; i++) {
		struct result r = run_cli_env("PRIVMEM_GNUPLOT=/nonexistent/gnuplot", 60, cases[i]);

		expect_status(&r, 1);
		expect_contains(&r, r.err, "gnuplot");
		expect_contains(&r, r.err, "make deps");
		assert_int_equal(r.out_len, 0);
		assert_int_equal(access("/tmp/privmem_never.svg", F_OK), -1);
		result_free(&r);
	}
}

/* ---- bench's JSON ---- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Each measured figure's samples: reps of them, best their minimum and
 * median their median (computed here). */
static void expect_samples(const struct jv *fig, const char *key, const char *best_key, const char *median_key,
			   unsigned int reps)
{
	const struct jv *arr = json_get(fig, key);
	double v[64], best, median;
	unsigned int n = 0;

	if (!arr || arr->type != J_ARR)
		fail_msg("figure %s has no %s", fig->key, key);
	for (const struct jv *s = arr->child; s && n < 64; s = s->next)
		v[n++] = strtod(s->text, NULL);
	assert_int_equal(n, reps);
	qsort(v, n, sizeof(v[0]), cmp_double);
	best = v[0];
	median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	assert_true(fabs(strtod(json_get(fig, best_key)->text, NULL) - best) <= 1e-5 * best);
	assert_true(fabs(strtod(json_get(fig, median_key)->text, NULL) - median) <= 1e-5 * median);
}

static void test_bench_json_has_samples_version_and_host(void **state)
{
	const char *const args[] = { "bench", "share", "--size", "2M", "--reps", "3", "--json", NULL };
	struct result r = run_cli(args);
	const struct jv *figs, *host;
	struct jv *json;
	int measured = 0;

	expect_status(&r, 0);
	json = json_parse(r.out);
	assert_non_null(json);
	assert_string_equal(json_get(json, "privmem_version")->text, pm_version());
	host = json_get(json, "host");
	assert_non_null(host);
	assert_true(strlen(json_get(host, "cpu")->text) > 0);
	assert_int_equal(strtol(json_get(host, "cores")->text, NULL, 10), sysconf(_SC_NPROCESSORS_ONLN));
	assert_int_equal(json_get(host, "loadavg")->type, J_ARR);
	assert_non_null(json_get(host, "loadavg.2"));
	figs = json_get(json, "figures");
	for (const struct jv *f = figs->child; f; f = f->next) {
		if (json_get(f, "skipped"))
			continue;
		expect_samples(f, "samples_s", "best_s", "median_s", 3);
		measured++;
	}
	assert_true(measured > 3);
	json_free(json);
	result_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_trace_of_a_sw_run),
		cmocka_unit_test(test_trace_of_an_snp_run_has_its_rmp_instructions),
		cmocka_unit_test(test_trace_of_a_tdx_run_has_its_seamcalls),
		cmocka_unit_test(test_trace_of_a_pkvm_run_has_its_transitions),
		cmocka_unit_test(test_trace_of_a_realm_run_has_its_rmi_commands),
		cmocka_unit_test(test_trace_from_the_environment_and_exec),
		cmocka_unit_test(test_trace_to_a_bad_path_fails_before_running),
		cmocka_unit_test(test_run_plot_draws_memory_over_time),
		cmocka_unit_test(test_bench_plot_draws_targets_beside_limits),
		cmocka_unit_test(test_plot_without_gnuplot_says_so_before_running),
		cmocka_unit_test(test_bench_json_has_samples_version_and_host),
	};

	if (cli_init())
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}

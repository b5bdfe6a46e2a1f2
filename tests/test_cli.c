/* SPDX-License-Identifier: MIT */
/*
 * The privmem CLI, run as a user runs it: the binary built next to this
 * test (dirname of /proc/self/exe + "/../privmem"), with its stdout and
 * stderr captured and a time limit. Covered: --help and --version, `run`
 * with a small VM (text and --json reports), each scenario alone, the
 * default VM type, and the usage errors (exit status 2 with a message on
 * stderr).
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
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <privmem/privmem.h>

#define TIMEOUT_S 120

static char cli_path[PATH_MAX];

struct result {
	int status;          /* exit status, or -1 if killed / timed out */
	char *out, *err;     /* NUL-terminated */
	size_t out_len, err_len;
};

static void result_free(struct result *r)
{
	free(r->out);
	free(r->err);
}

static void append(char **buf, size_t *len, const char *data, size_t n)
{
	*buf = realloc(*buf, *len + n + 1);
	assert_non_null(*buf);
	memcpy(*buf + *len, data, n);
	*len += n;
	(*buf)[*len] = '\0';
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs the CLI with argv (NULL-terminated, argv[0] excluded). */
static struct result run_cli(const char *const *args)
{
	struct result r = { .status = -1 };
	const char *argv[32] = { cli_path };
	struct pollfd fds[2];
	int out[2], err[2], n = 1, open_fds = 2, wstatus;
	double deadline = now_s() + TIMEOUT_S;
	pid_t pid;

	for (; args[n - 1]; n++)
		argv[n] = args[n - 1];
	argv[n] = NULL;
	append(&r.out, &r.out_len, "", 0);
	append(&r.err, &r.err_len, "", 0);
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	assert_int_equal(pipe2(err, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(out[1], STDOUT_FILENO);
		dup2(err[1], STDERR_FILENO);
		execv(cli_path, (char *const *)argv);
		_exit(127);
	}
	close(out[1]);
	close(err[1]);
	fds[0] = (struct pollfd){ .fd = out[0], .events = POLLIN };
	fds[1] = (struct pollfd){ .fd = err[0], .events = POLLIN };

	while (open_fds > 0) {
		int left = (int)((deadline - now_s()) * 1000);

		if (left <= 0 || poll(fds, 2, left) <= 0) {
			if (left <= 0) {
				kill(pid, SIGKILL);
				break;
			}
			continue;
		}
		for (int i = 0; i < 2; i++) {
			char buf[4096];
			ssize_t got;

			if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			got = read(fds[i].fd, buf, sizeof(buf));
			if (got > 0) {
				if (i == 0)
					append(&r.out, &r.out_len, buf, (size_t)got);
				else
					append(&r.err, &r.err_len, buf, (size_t)got);
			} else if (got == 0 || errno != EINTR) {
				close(fds[i].fd);
				fds[i].fd = -1;
				open_fds--;
			}
		}
	}
	for (int i = 0; i < 2; i++)
		if (fds[i].fd >= 0)
			close(fds[i].fd);
	assert_int_equal(waitpid(pid, &wstatus, 0), pid);
	if (WIFEXITED(wstatus))
		r.status = WEXITSTATUS(wstatus);
	return r;
}

static void dump(const struct result *r)
{
	print_error("exit status %d\n--- stdout ---\n%s\n--- stderr ---\n%s\n", r->status, r->out, r->err);
}

static void expect_status(const struct result *r, int status)
{
	if (r->status != status) {
		dump(r);
		fail_msg("exit status %d, want %d", r->status, status);
	}
}

static void expect_contains(const struct result *r, const char *text, const char *needle)
{
	if (!strstr(text, needle)) {
		dump(r);
		fail_msg("output lacks \"%s\"", needle);
	}
}

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
	const char *const extra[] = { "--scenario", "convert", NULL };

	run_scenario(extra);
}

static void test_run_bounce_scenario_alone_passes(void **state)
{
	const char *const extra[] = { "--scenario", "bounce", NULL };

	run_scenario(extra);
}

static void test_run_accept_scenario_alone_passes(void **state)
{
	const char *const extra[] = { "--scenario", "accept", NULL };

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
static void test_bench_share_measures_every_figure(void **state)
{
	const char *const args[] = { "bench", "share", "--size", "2M", "--reps", "1", "--json", NULL };
	static const char *const keys[] = {
		"\"inplace_4k\":{", "\"inplace_2m\":{", "\"destructive_4k\":{", "\"destructive_2m\":{",
		"\"inplace_4k_no_view\":{", "\"zeroing\":{", "\"destructive_4k_over_inplace_4k\":",
		"\"error\":null",
	};
	struct result r = run_cli(args);

	expect_status(&r, 0);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		expect_contains(&r, r.out, keys[i]);
	if (strstr(r.out, "\"skipped\":true")) {
		dump(&r);
		fail_msg("a figure was skipped");
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

static void expect_usage_error(const char *const *args, const char *mention)
{
	struct result r = run_cli(args);

	expect_status(&r, 2);
	if (r.err_len == 0) {
		dump(&r);
		fail_msg("no message on stderr");
	}
	expect_contains(&r, r.err, mention);
	result_free(&r);
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
	const char *const sw_virtio[] = { "run", "--scenario", "virtio", NULL };

	expect_usage_error(vcpus0, "--vcpus");
	expect_usage_error(mem1k, "--mem");
	expect_usage_error(scen, "nope");
	expect_usage_error(type, "nope");
	expect_usage_error(extra, "surplus");
	expect_usage_error(unknown_opt, "frobnicate");
	expect_usage_error(pkvm_convert, "pkvm");
	expect_usage_error(sw_virtio, "virtio");
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
		cmocka_unit_test(test_run_snp_passes_with_launch_digest_and_no_violation),
		cmocka_unit_test(test_run_tdx_passes_with_mrtd_and_no_fatal_event_or_leak),
		cmocka_unit_test(test_run_json_is_one_object_line_with_result_and_keys),
		cmocka_unit_test(test_run_convert_scenario_alone_passes),
		cmocka_unit_test(test_run_bounce_scenario_alone_passes),
		cmocka_unit_test(test_run_accept_scenario_alone_passes),
		cmocka_unit_test(test_run_default_vm_type_passes),
		cmocka_unit_test(test_bad_run_arguments_exit_2_with_a_message),
		cmocka_unit_test(test_unknown_command_exits_2),
	};
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0) {
		perror("readlink /proc/self/exe");
		return 1;
	}
	self[n] = '\0';
	snprintf(cli_path, sizeof(cli_path), "%s/../privmem", dirname(self));
	if (access(cli_path, X_OK)) {
		fprintf(stderr, "test_cli: %s: %s\n", cli_path, strerror(errno));
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * The LD_PRELOAD interposer (libprivmem-kvm.so) and `privmem exec`, as a
 * user runs them: build/tests/interpose/kvmprog, a program NOT linked with
 * privmem, is run under `build/privmem exec` (and once with a plain
 * LD_PRELOAD), one scenario per test; the scenario checks Linux's answers
 * with plain system calls and prints "ok". Each scenario asks privmem's
 * own PM_KVM_GET_POOL_STATS, so it fails if the host's /dev/kvm answered.
 *
 * Sanitizer builds: the interposer is instrumented; `privmem exec` puts
 * the sanitizer runtime it runs with in front of LD_PRELOAD, so the
 * scenarios run there too. The plain-LD_PRELOAD test is skipped there (it
 * would need the runtime path, which is privmem exec's job).
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

#include <privmem/privmem.h>   /* the VM type numbers (privmem/kvm.h, PM_VM_TYPE_PKVM) */

#define TIMEOUT_S 120
#define POOL "64M"
#define POOL_BYTES (64ULL << 20)

static char build_dir[PATH_MAX];     /* build/ (this binary is build/tests/x) */
static char cli[PATH_MAX + 16], prog[PATH_MAX + 32], kvmso[PATH_MAX + 32];
static char gmemprog[PATH_MAX + 32];

struct result {
	int status;          /* exit status, or -1 if killed / timed out */
	char *out;           /* stdout and stderr, NUL-terminated */
	size_t len;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs argv with the extra environment entries env (NULL-terminated). */
static struct result run(const char *const *argv, const char *const *env)
{
	struct result r = { .status = -1, .out = calloc(1, 1) };
	double deadline = now_s() + TIMEOUT_S;
	int pipefd[2], wstatus;
	pid_t pid;

	assert_non_null(r.out);
	assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(pipefd[1], STDOUT_FILENO);
		dup2(pipefd[1], STDERR_FILENO);
		for (int i = 0; env && env[i]; i++)
			putenv((char *)env[i]);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(pipefd[1]);
	for (;;) {
		struct pollfd pfd = { .fd = pipefd[0], .events = POLLIN };
		int left = (int)((deadline - now_s()) * 1000);
		char buf[4096];
		ssize_t got;

		if (left <= 0) {
			kill(pid, SIGKILL);
			break;
		}
		if (poll(&pfd, 1, left) <= 0)
			continue;
		got = read(pipefd[0], buf, sizeof(buf));
		if (got <= 0) {
			if (got < 0 && errno == EINTR)
				continue;
			break;
		}
		r.out = realloc(r.out, r.len + (size_t)got + 1);
		assert_non_null(r.out);
		memcpy(r.out + r.len, buf, (size_t)got);
		r.len += (size_t)got;
		r.out[r.len] = '\0';
	}
	close(pipefd[0]);
	assert_int_equal(waitpid(pid, &wstatus, 0), pid);
	if (WIFEXITED(wstatus) && r.status != -2)
		r.status = WEXITSTATUS(wstatus);
	return r;
}

static void expect(struct result *r, int status, const char *needle)
{
	if (r->status != status || (needle && !strstr(r->out, needle))) {
		print_error("exit status %d (want %d)\n--- output ---\n%s\n", r->status, status, r->out);
		fail_msg("wanted exit %d%s%s", status, needle ? " and output with " : "", needle ? needle : "");
	}
}

/* A scenario of kvmprog under `privmem exec` with extra exec options. */
static struct result scenario_with(const char *scenario, const char *types)
{
	static const char *const env[] = { "EXPECT_POOL=67108864", NULL };
	const char *argv[] = { cli, "exec", "--pool-size", POOL, types ? "--vm-types" : "--",
			       types ? types : prog, types ? "--" : scenario, types ? prog : NULL,
			       types ? scenario : NULL, NULL };

	return run(argv, env);
}

static void scenario(const char *name)
{
	struct result r = scenario_with(name, NULL);

	expect(&r, 0, "ok\n");
	free(r.out);
}

/* A scenario of gmemprog (guest_memfd of 2025-2026) under `privmem exec`,
 * with extra environment. */
static void gmem_scenario(const char *name, const char *const *env)
{
	const char *argv[] = { cli, "exec", "--pool-size", POOL, "--", gmemprog, name, NULL };
	struct result r = run(argv, env);

	expect(&r, 0, "ok\n");
	free(r.out);
}

/* ---- tests ---- */

static void test_dev_kvm_api_version_check_extension_and_open_flags(void **state)
{
	scenario("api");
}

static void test_vm_guest_memfd_memslot_and_errno_of_each_kind(void **state)
{
	scenario("vm");
}

static void test_guest_memfd_mmap_punch_madvise_remove_and_partial_munmap(void **state)
{
	scenario("gmem-mmap");
}

static void test_guest_memfd_madv_collapse_einval_madv_hugepage_ok(void **state)
{
	gmem_scenario("madvise", NULL);
}

static void test_guest_memfd_write_and_pwrite_populate_it(void **state)
{
	gmem_scenario("write", NULL);
}

static void test_guest_memfd_mbind_and_get_mempolicy_through_syscall(void **state)
{
	static const char *const env[] = { "PRIVMEM_POOL_NODES=4", NULL };
	const char *opt[] = { cli, "exec", "--pool-size", POOL, "--pool-nodes", "4", "--", gmemprog,
			      "mbind", NULL };
	const char *bad[] = { cli, "exec", "--pool-nodes", "17", "--", gmemprog, "mbind", NULL };
	struct result r;

	gmem_scenario("mbind", env);
	r = run(opt, NULL);
	expect(&r, 0, "ok\n");
	free(r.out);
	r = run(bad, NULL);
	expect(&r, 2, "--pool-nodes");
	free(r.out);
}

static void test_dup_dup2_dup3_f_dupfd_share_one_handle(void **state)
{
	scenario("dup");
}

static void test_close_while_another_thread_is_in_kvm_run(void **state)
{
	scenario("close-during-run");
}

static void test_threads_creating_and_closing_descriptors(void **state)
{
	scenario("threads");
}

static void test_fork_child_gets_eio_and_parent_keeps_working(void **state)
{
	scenario("fork");
}

static void test_exec_keeps_dev_kvm_and_kills_vm_descriptors(void **state)
{
	scenario("exec");
}

static void test_foreign_descriptors_go_to_libc_untouched(void **state)
{
	scenario("foreign");
}

static void test_sysfs_parameters_follow_the_offered_vm_types(void **state)
{
	struct result all = scenario_with("sysfs", NULL), sw = scenario_with("sysfs", "sw");

	expect(&all, 0, "ok\n");
	expect(&all, 0, "force_emulation_prefix=0\n");
	expect(&all, 0, "enable_pmu=N\n");
	expect(&all, 0, "ept=Y\n");
	expect(&all, 0, "fopen npt=Y\n");
	expect(&all, 0, "sev_snp=Y\n");
	expect(&all, 0, "tdx=Y\n");
	expect(&sw, 0, "sev_snp=N\n");
	expect(&sw, 0, "tdx=N\n");
	free(all.out);
	free(sw.out);
}

/* KVM_CAP_VM_TYPES under --vm-types: computed here from the types' numbers,
 * one bit per type. */
static void test_exec_vm_types_option_sets_kvm_cap_vm_types(void **state)
{
	struct result all = scenario_with("api", NULL), some = scenario_with("api", "sw,snp");
	struct result def = scenario_with("api", "default");
	char want[32];

	snprintf(want, sizeof(want), "vm_types 0x%x\n",
		 (1 << KVM_X86_DEFAULT_VM) | (1 << KVM_X86_SW_PROTECTED_VM) | (1 << KVM_X86_SNP_VM) |
		 (1 << KVM_X86_TDX_VM) | (1 << PM_VM_TYPE_PKVM) | (1 << PM_VM_TYPE_REALM));
	expect(&all, 0, want);
	snprintf(want, sizeof(want), "vm_types 0x%x\n",
		 (1 << KVM_X86_DEFAULT_VM) | (1 << KVM_X86_SW_PROTECTED_VM) | (1 << KVM_X86_SNP_VM));
	expect(&some, 0, want);
	expect(&def, 0, "vm_types 0x1\n");
	free(all.out);
	free(some.out);
	free(def.out);
}

/* `--kvm-version 6.12` presents 6.12's guest_memfd (no flags, no mmap);
 * without it the same program sees 6.18's flags. */
static void test_exec_kvm_version_612_presents_6_12s_guest_memfd(void **state)
{
	static const char *const env[] = { "EXPECT_POOL=67108864", NULL };
	const char *old[] = { cli, "exec", "--pool-size", POOL, "--kvm-version", "6.12", "--",
			      prog, "kvm612", NULL };
	const char *now[] = { cli, "exec", "--pool-size", POOL, "--", prog, "kvm612", NULL };
	const char *bad[] = { cli, "exec", "--kvm-version", "6.10", "--", prog, "kvm612", NULL };
	struct result r = run(old, env);

	expect(&r, 0, "ok\n");
	free(r.out);
	r = run(now, env);
	expect(&r, 1, "KVM_CAP_GUEST_MEMFD_FLAGS");
	free(r.out);
	r = run(bad, env);
	expect(&r, 2, "--kvm-version");
	free(r.out);
}

/* `--gmem-in-place` turns privmem's in-place mode on for the program;
 * without it the same program finds no KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES. */
static void test_exec_gmem_in_place_presents_in_place_conversion(void **state)
{
	static const char *const env[] = { "EXPECT_POOL=67108864", NULL };
	const char *on[] = { cli, "exec", "--pool-size", POOL, "--gmem-in-place", "--", prog, "inplace",
			     NULL };
	const char *off[] = { cli, "exec", "--pool-size", POOL, "--", prog, "inplace", NULL };
	struct result r = run(on, env);

	expect(&r, 0, "ok\n");
	free(r.out);
	r = run(off, env);
	expect(&r, 1, "KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES");
	free(r.out);
}

static void test_exec_options_errors_and_exit_status(void **state)
{
	const char *help[] = { cli, "exec", "-h", NULL };
	const char *none[] = { cli, "exec", NULL };
	const char *bad_type[] = { cli, "exec", "--vm-types", "sw,nope", "--", "/bin/true", NULL };
	const char *bad_size[] = { cli, "exec", "--pool-size", "3M", "/bin/true", NULL };
	const char *bad_opt[] = { cli, "exec", "--frobnicate", "/bin/true", NULL };
	const char *missing[] = { cli, "exec", "/nonexistent/program", NULL };
	const char *status[] = { cli, "exec", "/bin/sh", "-c", "exit 7", NULL };
	const char *preload[] = { cli, "exec", "/bin/sh", "-c", "echo \"[$LD_PRELOAD]\"", NULL };
	static const char *const env[] = { "LD_PRELOAD=", NULL };
	struct result r;
	char want[PATH_MAX + 64];

	r = run(help, NULL);
	expect(&r, 0, "--pool-size");
	expect(&r, 0, "--vm-types");
	free(r.out);
	r = run(none, NULL);
	expect(&r, 2, "no command");
	free(r.out);
	r = run(bad_type, NULL);
	expect(&r, 2, "bad --vm-types 'nope'");
	free(r.out);
	r = run(bad_size, NULL);
	expect(&r, 2, "bad --pool-size '3M'");
	free(r.out);
	r = run(bad_opt, NULL);
	expect(&r, 2, "usage: privmem exec");
	free(r.out);
	r = run(missing, NULL);
	expect(&r, 127, "No such file");
	free(r.out);
	r = run(status, NULL);
	expect(&r, 7, NULL);
	free(r.out);
	r = run(preload, env);
	snprintf(want, sizeof(want), "%s]", kvmso);     /* prepended, last when nothing was there */
	expect(&r, 0, want);
	free(r.out);
}

/* Plain LD_PRELOAD, without privmem exec. */
static void test_plain_ld_preload_serves_dev_kvm(void **state)
{
#if defined(PM_ASAN) || defined(PM_TSAN)
	skip();   /* the instrumented interposer needs the runtime first: privmem exec's job */
#else
	char pre[PATH_MAX + 64];
	const char *env[] = { pre, "EXPECT_POOL=67108864", "PRIVMEM_POOL_SIZE=64M", NULL };
	const char *argv[] = { prog, "api", NULL };
	struct result r;

	snprintf(pre, sizeof(pre), "LD_PRELOAD=%s", kvmso);
	r = run(argv, env);
	expect(&r, 0, "ok\n");
	free(r.out);
#endif
}

/* Without the interposer the same program does not get privmem's answers:
 * the scenarios can fail. */
static void test_without_interposer_the_checks_fail(void **state)
{
	const char *argv[] = { prog, "api", NULL };
	static const char *const env[] = { "EXPECT_POOL=67108864", "LD_PRELOAD=", NULL };
	struct result r = run(argv, env);

	expect(&r, 1, "FAIL");
	free(r.out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dev_kvm_api_version_check_extension_and_open_flags),
		cmocka_unit_test(test_vm_guest_memfd_memslot_and_errno_of_each_kind),
		cmocka_unit_test(test_guest_memfd_mmap_punch_madvise_remove_and_partial_munmap),
		cmocka_unit_test(test_guest_memfd_madv_collapse_einval_madv_hugepage_ok),
		cmocka_unit_test(test_guest_memfd_write_and_pwrite_populate_it),
		cmocka_unit_test(test_guest_memfd_mbind_and_get_mempolicy_through_syscall),
		cmocka_unit_test(test_dup_dup2_dup3_f_dupfd_share_one_handle),
		cmocka_unit_test(test_close_while_another_thread_is_in_kvm_run),
		cmocka_unit_test(test_threads_creating_and_closing_descriptors),
		cmocka_unit_test(test_fork_child_gets_eio_and_parent_keeps_working),
		cmocka_unit_test(test_exec_keeps_dev_kvm_and_kills_vm_descriptors),
		cmocka_unit_test(test_foreign_descriptors_go_to_libc_untouched),
		cmocka_unit_test(test_sysfs_parameters_follow_the_offered_vm_types),
		cmocka_unit_test(test_exec_vm_types_option_sets_kvm_cap_vm_types),
		cmocka_unit_test(test_exec_gmem_in_place_presents_in_place_conversion),
		cmocka_unit_test(test_exec_options_errors_and_exit_status),
		cmocka_unit_test(test_exec_kvm_version_612_presents_6_12s_guest_memfd),
		cmocka_unit_test(test_plain_ld_preload_serves_dev_kvm),
		cmocka_unit_test(test_without_interposer_the_checks_fail),
	};
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0)
		return 1;
	self[n] = '\0';
	snprintf(build_dir, sizeof(build_dir), "%s", dirname(dirname(self)));
	snprintf(cli, sizeof(cli), "%s/privmem", build_dir);
	snprintf(prog, sizeof(prog), "%s/tests/interpose/kvmprog", build_dir);
	snprintf(kvmso, sizeof(kvmso), "%s/libprivmem-kvm.so", build_dir);
	snprintf(gmemprog, sizeof(gmemprog), "%s/tests/interpose/gmemprog", build_dir);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

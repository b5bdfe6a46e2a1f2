/* SPDX-License-Identifier: MIT */
/* Running the privmem CLI in tests (cli_run.h). */
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
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "cli_run.h"

static char cli_path[PATH_MAX];

void result_free(struct result *r)
{
	free(r->out);
	free(r->err);
}

void append(char **buf, size_t *len, const char *data, size_t n)
{
	*buf = realloc(*buf, *len + n + 1);
	assert_non_null(*buf);
	memcpy(*buf + *len, data, n);
	*len += n;
	(*buf)[*len] = '\0';
}

double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs the CLI with argv (NULL-terminated, argv[0] excluded), with `env`
 * (NAME=VALUE or NULL) added to the environment; with limit_s > 0 under
 * timeout(1), which kills it after limit_s seconds (status 124 or 137). */
struct result run_cli_env(const char *env, int limit_s, const char *const *args)
{
	struct result r = { .status = -1 };
	const char *argv[40];
	char limit[16];
	struct pollfd fds[2];
	int out[2], err[2], n = 0, open_fds = 2, wstatus;
	double deadline = now_s() + TIMEOUT_S;
	pid_t pid;

	if (limit_s > 0) {
		snprintf(limit, sizeof(limit), "%d", limit_s);
		argv[n++] = "timeout";
		argv[n++] = "-k";
		argv[n++] = "5";
		argv[n++] = limit;
	}
	argv[n++] = cli_path;
	for (int a = 0; args[a]; a++)
		argv[n++] = args[a];
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
		if (env) {
			char *copy = strdup(env), *save = NULL;

			for (char *e = strtok_r(copy, " ", &save); e; e = strtok_r(NULL, " ", &save))
				putenv(e);
		}
		execvp(argv[0], (char *const *)argv);
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

struct result run_cli(const char *const *args)
{
	return run_cli_env(NULL, 0, args);
}

void dump(const struct result *r)
{
	print_error("exit status %d\n--- stdout ---\n%s\n--- stderr ---\n%s\n", r->status, r->out, r->err);
}

void expect_status(const struct result *r, int status)
{
	if (r->status != status) {
		dump(r);
		fail_msg("exit status %d, want %d", r->status, status);
	}
}

void expect_contains(const struct result *r, const char *text, const char *needle)
{
	if (!strstr(text, needle)) {
		dump(r);
		fail_msg("output lacks \"%s\"", needle);
	}
}

int cli_init(void)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0) {
		perror("readlink /proc/self/exe");
		return -1;
	}
	self[n] = '\0';
	snprintf(cli_path, sizeof(cli_path), "%s/../privmem", dirname(self));
	if (access(cli_path, X_OK)) {
		fprintf(stderr, "%s: %s\n", cli_path, strerror(errno));
		return -1;
	}
	return 0;
}

const char *cli_binary(void)
{
	return cli_path;
}

struct result run_cli_tty(const char *const *args)
{
	struct result r = { .status = -1 };
	const char *argv[40];
	int out[2], pty, wstatus, n = 0;
	double deadline = now_s() + TIMEOUT_S;
	pid_t pid;

	argv[n++] = cli_path;
	for (int a = 0; args[a]; a++)
		argv[n++] = args[a];
	argv[n] = NULL;
	append(&r.out, &r.out_len, "", 0);
	append(&r.err, &r.err_len, "", 0);
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	pid = forkpty(&pty, NULL, NULL, NULL);
	assert_true(pid >= 0);
	if (pid == 0) {
		/* stdin and stderr on the terminal, stdout the pipe */
		dup2(out[1], STDOUT_FILENO);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(out[1]);
	for (int fds_open = 2; fds_open > 0 && now_s() < deadline;) {
		struct pollfd fds[2] = { { .fd = out[0], .events = POLLIN }, { .fd = pty, .events = POLLIN } };
		char buf[4096];

		if (out[0] < 0)
			fds[0].fd = -1;
		if (pty < 0)
			fds[1].fd = -1;
		if (poll(fds, 2, 1000) <= 0)
			continue;
		for (int i = 0; i < 2; i++) {
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
				close(fds[i].fd);     /* a pty reads EIO once the child is gone */
				if (i == 0)
					out[0] = -1;
				else
					pty = -1;
				fds_open--;
			}
		}
	}
	if (out[0] >= 0)
		close(out[0]);
	if (pty >= 0) {
		kill(pid, SIGKILL);
		close(pty);
	}
	assert_int_equal(waitpid(pid, &wstatus, 0), pid);
	if (WIFEXITED(wstatus))
		r.status = WEXITSTATUS(wstatus);
	return r;
}

char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0, got;
	char chunk[4096];

	assert_non_null(f);
	while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
		append(&buf, &len, chunk, got);
	fclose(f);
	if (!buf)
		append(&buf, &len, "", 0);
	return buf;
}

void expect_usage_error(const char *const *args, const char *mention)
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

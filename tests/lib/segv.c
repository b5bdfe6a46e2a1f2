/* SPDX-License-Identifier: MIT */
/* A read that must fault, tried in a child process (testutil.h). */
#include <signal.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define FAULTED 42

static void fault_exit(int sig)
{
	(void)sig;
	_exit(FAULTED);
}

int pm_test_read_faults(const void *addr)
{
	const volatile unsigned char *p = addr;
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		struct sigaction sa = { .sa_handler = fault_exit };

		sigaction(SIGSEGV, &sa, NULL);
		sigaction(SIGBUS, &sa, NULL);
		(void)*p;
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status) == FAULTED ? 1 : WEXITSTATUS(status) == 0 ? 0 : -1;
}

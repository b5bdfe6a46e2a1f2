/* SPDX-License-Identifier: MIT */
/*
 * Running a test program in both of privmem's guest_memfd modes (see
 * testutil.h): the mode is read once per process, so the program runs
 * itself again with PRIVMEM_GMEM_IN_PLACE=1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include "testutil.h"

int pm_test_rerun_in_place(char **argv)
{
	int status = 0;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		setenv("PRIVMEM_GMEM_IN_PLACE", "1", 1);
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) != pid)
		return 1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

/* SPDX-License-Identifier: MIT */
/*
 * Plots drawn by gnuplot (see plot.h). gnuplot's own messages go to our
 * stderr; its exit status says whether the SVG was written.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "plot.h"

static const char *plot_program(void)
{
	const char *p = getenv("PRIVMEM_GNUPLOT");

	return p && p[0] ? p : "gnuplot";
}

/* The program is executable here or in a directory of PATH. */
static bool plot_found(const char *prog)
{
	const char *path = getenv("PATH");
	char buf[PATH_MAX];

	if (strchr(prog, '/'))
		return access(prog, X_OK) == 0;
	for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
		size_t n = strcspn(p, ":");

		if (n && (size_t)snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, p, prog) < sizeof(buf) &&
		    access(buf, X_OK) == 0)
			return true;
		p += n + (p[n] == ':');
	}
	return false;
}

int plot_check(const char *option)
{
	if (plot_found(plot_program()))
		return 0;
	fprintf(stderr, "privmem: %s draws with gnuplot, which is not installed (%s not found):\n"
		"privmem: install it with `make deps` (Debian's gnuplot-nox), or set PRIVMEM_GNUPLOT\n",
		option, plot_program());
	return -1;
}

void plot_string(FILE *gp, const char *s)
{
	fputc('\'', gp);
	for (; *s; s++) {
		if (*s == '\'')
			fputc('\'', gp);
		if (*s != '\n')
			fputc(*s, gp);
	}
	fputc('\'', gp);
}

FILE *plot_open(const char *path, int width, int height)
{
	char cmd[PATH_MAX + 16];
	FILE *gp;

	if (plot_check("--plot"))
		return NULL;
	snprintf(cmd, sizeof(cmd), "%s", plot_program());
	fflush(stdout);
	fflush(stderr);
	gp = popen(cmd, "w");
	if (!gp) {
		fprintf(stderr, "privmem: cannot run %s: %s\n", plot_program(), strerror(errno));
		return NULL;
	}
	fprintf(gp, "set terminal svg size %d,%d dynamic enhanced font 'sans,11' background '#ffffff'\n",
		width, height);
	fprintf(gp, "set output ");
	plot_string(gp, path);
	fprintf(gp, "\nset encoding utf8\n");
	return gp;
}

int plot_close(FILE *gp, const char *path)
{
	int st;

	fprintf(gp, "unset output\n");
	st = pclose(gp);
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st)) {
		fprintf(stderr, "privmem: gnuplot could not draw %s (status %d)\n", path,
			st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
		return -1;
	}
	return 0;
}

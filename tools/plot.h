/* SPDX-License-Identifier: MIT */
/*
 * Plots (privmem run --plot, privmem bench --plot): SVG drawn by gnuplot,
 * driven as a program. A plot is a gnuplot script written into a pipe to
 * `gnuplot` (found in PATH, or PRIVMEM_GNUPLOT): plot_open starts it with
 * the SVG terminal and the output file, the caller writes the script (data
 * inline, as $name << EOD blocks), plot_close waits for it. The SVG names
 * each series (gnuplot puts a series' title in its group's <title> and
 * the key), which the tests check.
 */
#ifndef PM_TOOLS_PLOT_H
#define PM_TOOLS_PLOT_H

#include <stdbool.h>
#include <stdio.h>

/* gnuplot can be run: 0, or a message saying how to get it and -1. */
int plot_check(const char *option);
/* The script's stream, whose output is an SVG of width x height pixels at
 * path; NULL with a message. */
FILE *plot_open(const char *path, int width, int height);
/* Ends the script and waits for gnuplot: 0, or -1 with a message. */
int plot_close(FILE *gp, const char *path);
/* s as a gnuplot string literal (single quotes, '' for a quote). */
void plot_string(FILE *gp, const char *s);

#endif

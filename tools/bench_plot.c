/* SPDX-License-Identifier: MIT */
/*
 * privmem bench --plot: every target of the benchmarks run, beside its
 * limit (bench.h). A target is a ratio (privmem against the reference it
 * is judged by, or one figure against another); the plot has a row per
 * target, labelled "benchmark [section]: what is required", with the
 * limit and the value measured on a logarithmic axis (ratios range from
 * 0.1x to 100x), an arrow from the one to the other coloured by whether
 * the target is met. Skipped targets are listed under the plot. Drawn by
 * gnuplot (plot.h).
 *
 * Ownership: the plot copies what it keeps of each result (results are
 * reused from one benchmark to the next).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench.h"
#include "plot.h"

struct plot_row {
	char label[200];
	double value, limit;
	enum tstatus st;
};

struct bench_plot {
	struct plot_row *rows;
	int n, cap;
	char skipped[2048];          /* the skipped targets' labels */
};

struct bench_plot *bench_plot_new(void)
{
	return calloc(1, sizeof(struct bench_plot));
}

void bench_plot_free(struct bench_plot *p)
{
	if (p)
		free(p->rows);
	free(p);
}

void bench_plot_add(struct bench_plot *p, const struct result *r)
{
	for (int i = 0; i < r->ntgt; i++) {
		const struct target *t = &r->tgt[i];
		struct plot_row *row;
		char label[200];

		if (t->section)
			snprintf(label, sizeof(label), "%s [%s]: %s", r->name, t->section, t->text);
		else
			snprintf(label, sizeof(label), "%s: %s", r->name, t->text);
		if (t->st == T_SKIPPED || !(t->value > 0) || !(t->limit > 0)) {
			size_t len = strlen(p->skipped);

			snprintf(p->skipped + len, sizeof(p->skipped) - len, "%s%s", len ? "; " : "", label);
			continue;
		}
		if (p->n == p->cap) {
			int cap = p->cap ? 2 * p->cap : 32;
			struct plot_row *rows = realloc(p->rows, (size_t)cap * sizeof(*rows));

			if (!rows)
				return;            /* the plot shows fewer rows */
			p->rows = rows;
			p->cap = cap;
		}
		row = &p->rows[p->n++];
		snprintf(row->label, sizeof(row->label), "%s", label);
		row->value = t->value;
		row->limit = t->limit;
		row->st = t->st;
	}
}

/* One data block per series: y, the value or the limit, and for the
 * arrows the limit and the way to the value. */
static void plot_block(FILE *gp, const struct bench_plot *p, const char *name, int which)
{
	fprintf(gp, "$%s << EOD\n", name);
	for (int i = 0; i < p->n; i++) {
		const struct plot_row *row = &p->rows[i];
		double y = p->n - 1 - i;   /* the first target at the top */

		if (which == 0)
			fprintf(gp, "%g %g\n", y, row->limit);
		else if (which == 1 && row->st == T_MET)
			fprintf(gp, "%g %g %g\n", y, row->value, row->limit);
		else if (which == 2 && row->st == T_NOT_MET)
			fprintf(gp, "%g %g %g\n", y, row->value, row->limit);
	}
	/* gnuplot refuses an empty block: a point outside the range. */
	fprintf(gp, "-10 1 1\nEOD\n");
}

int bench_plot_draw(struct bench_plot *p, const char *path)
{
	double lo = 1, hi = 1;
	size_t longest = 10;
	FILE *gp;

	if (!p->n) {
		fprintf(stderr, "privmem bench: --plot: no target was measured, nothing to draw\n");
		return -1;
	}
	for (int i = 0; i < p->n; i++) {
		lo = fmin(lo, fmin(p->rows[i].value, p->rows[i].limit));
		hi = fmax(hi, fmax(p->rows[i].value, p->rows[i].limit));
		longest = strlen(p->rows[i].label) > longest ? strlen(p->rows[i].label) : longest;
	}
	gp = plot_open(path, (int)(500 + longest * 6), 160 + 22 * p->n);
	if (!gp)
		return -1;
	plot_block(gp, p, "limit", 0);
	plot_block(gp, p, "met", 1);
	plot_block(gp, p, "notmet", 2);
	fprintf(gp, "set title 'privmem bench: each target beside its limit (%d target%s)'\n", p->n,
		p->n == 1 ? "" : "s");
	fprintf(gp, "set logscale x\nset xrange [%g:%g]\nset yrange [-0.8:%d.8]\n", lo / 2, hi * 2, p->n - 1);
	fprintf(gp, "set xlabel 'ratio (x of the reference the target names)'\nset grid xtics\n"
		"set key outside bottom center horizontal\nset lmargin %d\nset ytics (",
		(int)(longest * 8 / 10) + 3);   /* the labels' font is 9 points, the margin's unit 11 */
	for (int i = 0; i < p->n; i++) {
		fprintf(gp, "%s", i ? ", " : "");
		plot_string(gp, p->rows[i].label);
		fprintf(gp, " %d", p->n - 1 - i);
	}
	fprintf(gp, ") font 'sans,9'\n");
	if (p->skipped[0]) {
		fprintf(gp, "set label 1 ");
		plot_string(gp, "skipped: ");
		fprintf(gp, ".");
		plot_string(gp, p->skipped);
		fprintf(gp, " at screen 0.01, screen 0.01 font 'sans,8'\n");
	}
	fprintf(gp,
		"plot $limit using 2:1 with points pt 5 ps 1.2 lc rgb '#000000' title 'limit', "
		"$met using 3:1:($2-$3):(0) with vectors head filled lw 2 lc rgb '#1a9850' notitle, "
		"$met using 2:1 with points pt 7 ps 1.3 lc rgb '#1a9850' title 'privmem: MET', "
		"$notmet using 3:1:($2-$3):(0) with vectors head filled lw 2 lc rgb '#d73027' notitle, "
		"$notmet using 2:1 with points pt 7 ps 1.3 lc rgb '#d73027' title 'privmem: NOT MET'\n");
	return plot_close(gp, path);
}

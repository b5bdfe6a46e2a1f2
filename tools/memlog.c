/* SPDX-License-Identifier: MIT */
/*
 * The guest's physical memory over time (see memlog.h).
 *
 * Samples: the time since attach, private pages, the stage-2's leaves
 * present by size, and the private share of each of MEMLOG_BANDS equal
 * bands of guest memory (0..255). At most MEMLOG_MAX samples: when full,
 * every other one is dropped and the interval doubles, so a long run
 * keeps an even coverage. Locks: none; the sampler owns the samples until
 * memlog_detach joins it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cli.h"
#include "memlog.h"
#include "plot.h"

#define MEMLOG_BANDS      64
#define MEMLOG_MAX        2048
#define MEMLOG_START_NS   (2 * 1000 * 1000)      /* first interval: 2 ms */
#define MEMLOG_COLUMNS    200                    /* the address map's time resolution */

struct memlog_sample {
	double t;                        /* seconds since attach */
	uint64_t private_pages;
	uint64_t leaves[3];              /* 4K, 2M, 1G leaves present */
	uint8_t band[MEMLOG_BANDS];      /* private share of each band, 0..255 */
};

struct memlog {
	struct vmm *m;                   /* while attached */
	uint64_t mem_size;
	pthread_t thread;
	bool running;
	atomic_bool stop;
	uint64_t interval_ns;
	struct timespec t0;
	unsigned int n;
	struct memlog_sample s[MEMLOG_MAX];
};

struct memlog *memlog_new(void)
{
	return calloc(1, sizeof(struct memlog));
}

void memlog_free(struct memlog *l)
{
	free(l);
}

static void memlog_sample(struct memlog *l)
{
	struct vmm *m = l->m;
	uint64_t pages = m->mem_size >> 12, per_band = (pages + MEMLOG_BANDS - 1) / MEMLOG_BANDS;
	struct pm_vm_stats vs = { 0 };
	struct memlog_sample *s;

	if (l->n == MEMLOG_MAX) {        /* keep every other sample, sample half as often */
		for (unsigned int i = 0; i < MEMLOG_MAX / 2; i++)
			l->s[i] = l->s[2 * i];
		l->n = MEMLOG_MAX / 2;
		l->interval_ns *= 2;
	}
	s = &l->s[l->n++];
	s->t = cli_elapsed(&l->t0);
	s->private_pages = atomic_load(&m->private_pages);
	vmm_vm_stats(m, &vs);
	for (int lv = 0; lv < 3; lv++)
		s->leaves[lv] = vs.mappings[lv];
	for (unsigned int b = 0; b < MEMLOG_BANDS; b++) {
		uint64_t lo = b * per_band, hi = PM_MIN_U64(lo + per_band, pages), priv = 0;

		for (uint64_t p = lo; p < hi; p += 64) {
			uint64_t w = atomic_load_explicit(&m->private_map[p >> 6], memory_order_relaxed);
			uint64_t n = PM_MIN_U64(64, hi - p);

			priv += (uint64_t)__builtin_popcountll(n == 64 ? w : w & ((1ULL << n) - 1));
		}
		s->band[b] = hi > lo ? (uint8_t)(priv * 255 / (hi - lo)) : 0;
	}
}

static void *memlog_main(void *arg)
{
	struct memlog *l = arg;

	while (!atomic_load(&l->stop)) {
		struct timespec ts = { (time_t)(l->interval_ns / 1000000000u),
				       (long)(l->interval_ns % 1000000000u) };

		memlog_sample(l);
		nanosleep(&ts, NULL);
	}
	return NULL;
}

int memlog_attach(struct memlog *l, struct vmm *m)
{
	int r;

	if (l->m || l->n)
		return 0;                /* one VM per log */
	l->m = m;
	l->mem_size = m->mem_size;
	l->interval_ns = MEMLOG_START_NS;
	clock_gettime(CLOCK_MONOTONIC, &l->t0);
	atomic_store(&l->stop, false);
	r = pthread_create(&l->thread, NULL, memlog_main, l);
	if (r) {
		l->m = NULL;
		return -r;
	}
	l->running = true;
	return 0;
}

void memlog_detach(struct memlog *l)
{
	if (!l->running)
		return;
	atomic_store(&l->stop, true);
	pthread_join(l->thread, NULL);
	l->running = false;
	memlog_sample(l);                /* the state the VM ends in */
	l->m = NULL;
}

/* ---- the plot ---- */

#define MIB_F ((double)(1 << 20))

/* The address map: a regular grid (gnuplot's image needs one) of cells
 * that tile [0, end] x [0, memory], each column the last sample at or
 * before its centre; drawn as rectangles, not an interpolated bitmap. */
static void plot_bands(FILE *gp, const struct memlog *l)
{
	double end = l->s[l->n - 1].t, band_mib = (double)l->mem_size / MEMLOG_BANDS / MIB_F;
	unsigned int cols = l->n < MEMLOG_COLUMNS ? l->n : MEMLOG_COLUMNS, i = 0;

	fprintf(gp, "$bands << EOD\n");
	for (unsigned int c = 0; c < cols; c++) {
		double t = end * (c + 0.5) / cols;     /* the column's centre */

		while (i + 1 < l->n && l->s[i + 1].t <= t)
			i++;
		for (unsigned int b = 0; b < MEMLOG_BANDS; b++)
			fprintf(gp, "%.6f %.3f %.3f\n", t, (b + 0.5) * band_mib, l->s[i].band[b] / 255.0);
		fprintf(gp, "\n");
	}
	fprintf(gp, "EOD\n");
}

static void plot_series(FILE *gp, const struct memlog *l)
{
	static const double leaf_mib[3] = { 4096 / MIB_F, 2.0, 1024.0 };

	fprintf(gp, "$series << EOD\n# t private shared 4K 2M 1G (MiB)\n");
	for (unsigned int i = 0; i < l->n; i++) {
		const struct memlog_sample *s = &l->s[i];
		double priv = (double)(s->private_pages << 12) / MIB_F;

		fprintf(gp, "%.6f %.3f %.3f %.3f %.3f %.3f\n", s->t, priv, (double)l->mem_size / MIB_F - priv,
			(double)s->leaves[0] * leaf_mib[0], (double)s->leaves[1] * leaf_mib[1],
			(double)s->leaves[2] * leaf_mib[2]);
	}
	fprintf(gp, "EOD\n");
}

int memlog_plot(const struct memlog *l, const char *path, const char *title)
{
	double end, mem_mib = (double)l->mem_size / MIB_F;
	FILE *gp;

	if (!l->n) {
		fprintf(stderr, "privmem: --plot: no VM ran, nothing to draw\n");
		return -1;
	}
	gp = plot_open(path, 1000, 900);
	if (!gp)
		return -1;
	end = l->s[l->n - 1].t > 0 ? l->s[l->n - 1].t : 1e-3;
	plot_bands(gp, l);
	plot_series(gp, l);
	fprintf(gp, "set multiplot layout 3,1 title ");
	plot_string(gp, title);
	fprintf(gp, " font 'sans,13'\n"
		"set xrange [0:%.6f]\nset grid\nset key outside right top\n"
		"set lmargin 12\nset rmargin 22\n", end);
	/* 1: which addresses are private, over time */
	fprintf(gp, "set title 'guest physical memory by address: private (dark) or shared (light)'\n"
		"set ylabel 'guest address (MiB)'\nset yrange [0:%.3f]\n"
		"set palette defined (0 '#cfe3f3', 1 '#b2182b')\nset cbrange [0:1]\n"
		"set cbtics ('shared' 0, 'private' 1)\nunset xlabel\n"
		"plot $bands using 1:2:3 with image pixels notitle\n", mem_mib);
	/* 2: how much is private */
	fprintf(gp, "unset colorbox\nset title 'private vs shared'\nset ylabel 'MiB'\n"
		"set yrange [0:%.3f]\n"
		"plot $series using 1:2 with filledcurves x1 lc rgb '#b2182b' title 'private', "
		"'' using 1:2:($2+$3) with filledcurves lc rgb '#7fb3d5' title 'shared'\n", mem_mib * 1.05);
	/* 3: the stage-2's mappings by size */
	fprintf(gp, "set title 'stage-2 mappings present, by size'\nset ylabel 'MiB mapped'\n"
		"set xlabel 'time (s)'\nset yrange [0:*]\n"
		"plot $series using 1:4 with filledcurves x1 lc rgb '#1b9e77' title '4K', "
		"'' using 1:4:($4+$5) with filledcurves lc rgb '#d95f02' title '2M', "
		"'' using 1:($4+$5):($4+$5+$6) with filledcurves lc rgb '#7570b3' title '1G'\n"
		"unset multiplot\n");
	return plot_close(gp, path);
}

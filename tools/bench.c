/* SPDX-License-Identifier: MIT */
/*
 * privmem bench: benchmarks beside their references.
 *
 * Each benchmark measures privmem and the references it is judged against
 * in the same run, --reps times each (CLOCK_MONOTONIC), and reports the best
 * and the median measurement, the ratios of the best figures, and each
 * target with MET or NOT MET. Nothing here is a test: figures depend on the
 * machine and its load, and nothing in `make check` runs them.
 *
 *  - convert: destructive conversion shared -> private -> shared of SIZE in
 *    4K and 2M granules, the VMM way (attributes, allocate the private page,
 *    discard the other copy), beside the Linux kernel's own guest_memfd
 *    (allocate + punch hole through the real /dev/kvm) and beside memset of
 *    the same granules (the zeroing every conversion must pay).
 *  - fault: first-touch private faults on 4K and 2M guest_memfd pages, timed
 *    from the VMM around the KVM_RUN that runs the guest's touch loop,
 *    beside memset of the same bytes.
 *  - access: guest bulk copies out of private memory beside memcpy, and
 *    random 8-byte reads through the vCPU TLB beside plain loads.
 *  - scale: conversions of disjoint ranges by 1 and 2 VMM threads.
 *  - share: pKVM's in-place sharing beside destructive conversion and
 *    memset (bench_share.c).
 *  - psc, tdx, realm: SEV-SNP's page state changes, TDX's acceptance and
 *    conversions, an Arm CCA realm's faults and conversions (bench_psc.c,
 *    bench_tdx.c, bench_realm.c).
 *  - e2e: conversions end to end through real exits on every model, and
 *    the limits the core is to meet, each measured in the same run
 *    (bench_e2e.c, bench_e2e_mem.c).
 *  - guest: guest machine code run by the x86 engine behind KVM_RUN,
 *    beside the same loops natively and in the engine alone (bench_guest.c).
 *  - nodirect: conversions on a guest_memfd with NO_DIRECT_MAP beside the
 *    same without it (bench_nodirect.c).
 *  - inplace: in-place conversion on guest_memfd beside destructive
 *    conversion of a bounce buffer, time and memory, beside memcpy and
 *    memset (bench_inplace.c; the other mode runs in a child process).
 *
 * Each benchmark lives in a bench_*.c file and has one line in the table
 * below; bench.h is the framework they share, bench_lib.c their helpers.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <linux/falloc.h>
#include <privmem/privmem.h>
#include "cli.h"
#include "plot.h"

#include "bench.h"


/* ==================================================================== */
/* Options                                                              */
/* ==================================================================== */


static const struct {
	const char *name;
	const char *help;         /* two lines */
	uint64_t default_size;
	unsigned int default_reps;
	void (*fn)(const struct bench_opts *o, struct result *r);
	unsigned int host_mult;   /* privmem host memory it needs: SIZE x host_mult */
	uint64_t host_extra;      /* ... + host_extra */
} benches[] = {
	{ "convert", "destructive conversion shared -> private -> shared in 4K and 2M\n"
				   "granules, vs the kernel's guest_memfd and memset (SIZE converted: 1G)", GIB, 3,
	  bench_convert, 1, 0 },
	{ "fault", "first-touch private faults on 4K and 2M pages, timed around\n"
		   "KVM_RUN, vs memset (SIZE: guest RAM touched, 1G)", GIB, 3, bench_fault, 1, 0 },
	{ "access", "guest bulk copies and random 8-byte reads of private memory,\n"
		    "vs memcpy and plain loads (SIZE: private buffer, 64M)", 64 * MIB, 3, bench_access, 1, 0 },
	{ "scale", "conversions of disjoint ranges by 1 and 2 VMM threads\n"
		   "(SIZE: region per thread, 256M; 9 runs by default)", 256 * MIB, 9, bench_scale, 2, 0 },
	{ "share", "in-place sharing (pKVM) vs destructive conversion (sw) of the same\n"
		   "pages, single and 2M batches, vs memset (SIZE: guest RAM, 64M)", 64 * MIB, 3,
	  bench_share, 1, 0 },
	{ "psc", "SEV-SNP 253-entry page state changes end to end, 4K and 2M\n"
		 "entries, vs memset (SIZE: region, 506M = 253 x 2M)", 506 * MIB, 3, bench_psc, 1, PAGE_2M },
	{ "tdx", "TDX: lazy acceptance at 4K and 2M and 4K conversion round trips on\n"
		 "the simulated module, vs memset (SIZE: TD RAM accepted, 256M)", 256 * MIB, 3, bench_tdx, 1, 0 },
	{ "guest", "guest machine code (x86 engine) in a VM: register, load/store and memset\n"
		   "loops, vs native and the engine alone (SIZE: memset, 64M; 5 runs)", 64 * MIB, 5,
	  bench_guest, 1, 16 * MIB },
	{ "realm", "Arm CCA realm: first-touch faults at 4K and 2M on the simulated RMM vs\n"
		   "memset, and conversions beside every model (SIZE: realm RAM touched, 256M)",
	  256 * MIB, 3, bench_realm, 1, 0 },
	{ "e2e", "conversions end to end through real exits on sw, tdx, snp, pkvm, realm,\n"
		 "each beside its limit: exit, convert, tlb, scale, memslot (SIZE: 64M)", 64 * MIB, 5,
	  bench_e2e, 1, PAGE_2M },
	{ "nodirect", "conversion pairs on a guest_memfd with NO_DIRECT_MAP beside the\n"
		      "same without it, 4K and 2M granules (SIZE converted: 64M)", 64 * MIB, 3,
	  bench_nodirect, 1, 0 },
	{ "inplace", "in-place conversion (KVM_SET_MEMORY_ATTRIBUTES2) vs destructive of a\n"
		     "bounce buffer through exits, time and memory, vs memcpy (SIZE: 4M)", 4 * MIB, 5,
	  bench_inplace, 1, PAGE_2M },
};
#define B_NR ((int)(sizeof(benches) / sizeof(benches[0])))
_Static_assert(sizeof(benches) / sizeof(benches[0]) <= BENCH_MAX, "struct bench_opts.run is too small");

static void bench_usage(FILE *out)
{
	fprintf(out,
		"usage: privmem bench NAME [--json] [--size SIZE] [--reps N] [--plot FILE]\n"
		"\n"
		"Measures privmem beside its references in one run: figures (throughput and\n"
		"per-page / per-op latency; best of N runs, median in brackets), ratios of the\n"
		"best figures against the references, and each target with MET or NOT MET.\n"
		"Benchmarks, not tests: figures depend on the machine and its load.\n"
		"\n"
		"benchmarks (NAME):\n");
	for (int b = 0; b < B_NR; b++) {
		const char *nl = strchr(benches[b].help, '\n');

		fprintf(out, "  %-8s %.*s\n  %-8s %s\n", benches[b].name, (int)(nl - benches[b].help),
			benches[b].help, "", nl + 1);
	}
	fprintf(out,
		"  %-8s all of the above, in this order\n"
		"\n"
		"options:\n"
		"  --json        print one JSON object (for all: {\"benchmarks\": {NAME: ...}}),\n"
		"                with every measurement, privmem's version and the host\n"
		"  --size SIZE   override the benchmark's size (a multiple of 2M; K/M/G/T suffixes)\n"
		"  --reps N      measurements per figure, 1..%d (default 3; scale 9, guest and e2e 5)\n"
		"  --plot FILE   draw every target beside its limit to FILE (SVG, by gnuplot)\n"
		"  -h, --help    print this help and exit\n"
		"\n"
		"Exit status: 0 when the measurements ran (whether or not targets are met),\n"
		"1 if a measurement failed, 2 for bad usage (including a SIZE whose guest memory\n"
		"does not fit in privmem's simulated host memory: PRIVMEM_POOL_SIZE, default 4G).\n",
		"all", BENCH_MAX_REPS);
}

static int bench_parse(int argc, char **argv, struct bench_opts *o)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' }, { "size", required_argument, NULL, 's' },
		{ "reps", required_argument, NULL, 'r' }, { "help", no_argument, NULL, 'h' },
		{ "plot", required_argument, NULL, 'P' },
		{ NULL, 0, NULL, 0 },
	};
	const char *name = NULL;
	int c;

	*o = (struct bench_opts){ .reps = 0 };
	optind = 0;             /* full re-initialisation: NAME may come before options */
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			o->json = true;
			break;
		case 's':
			if (cli_parse_size(optarg, &o->size) || o->size < PAGE_2M || o->size % PAGE_2M)
				return cli_bad_arg("--size", optarg);
			break;
		case 'r':
			if (cli_parse_uint(optarg, 1, BENCH_MAX_REPS, &o->reps))
				return cli_bad_arg("--reps", optarg);
			break;
		case 'P':
			o->plot_file = optarg;
			break;
		case 'h':
			bench_usage(stdout);
			exit(0);
		default:
			bench_usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "privmem bench: a benchmark NAME is needed\n");
		bench_usage(stderr);
		return 2;
	}
	name = argv[optind++];
	if (optind < argc)
		return cli_bad_arg("argument", argv[optind]);
	o->progress = isatty(STDERR_FILENO) && !o->json;
	if (cli_check_pool_env())
		return 2;
	if (!strcmp(name, "all")) {
		o->all = true;
		for (int b = 0; b < B_NR; b++)
			o->run[b] = true;
		return 0;
	}
	for (int b = 0; b < B_NR; b++) {
		if (!strcmp(name, benches[b].name)) {
			o->run[b] = true;
			return 0;
		}
	}
	return cli_bad_arg("benchmark", name);
}

/* Every benchmark to run fits in privmem's simulated host memory (checked
 * before the first runs): 0, or 2 with a message. */
static int bench_check_host_memory(const struct bench_opts *o)
{
	for (int b = 0; b < B_NR; b++) {
		uint64_t size = o->size ? o->size : benches[b].default_size;
		uint64_t need = size * benches[b].host_mult + benches[b].host_extra;
		char what[64];

		snprintf(what, sizeof(what), "bench %s's guest memory", benches[b].name);
		if (o->run[b] && vmm_check_host_memory(need, what))
			return 2;
	}
	return 0;
}

/* ==================================================================== */
/* ==================================================================== */
/* Results: figures, ratios, targets, information, notes                */
/* ==================================================================== */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double samples_best(const struct samples *s)
{
	double b = s->v[0];

	for (unsigned int i = 1; i < s->n; i++)
		b = s->v[i] < b ? s->v[i] : b;
	return b;
}

double samples_median(const struct samples *s)
{
	double v[BENCH_MAX_REPS];

	memcpy(v, s->v, s->n * sizeof(v[0]));
	qsort(v, s->n, sizeof(v[0]), cmp_double);
	return s->n % 2 ? v[s->n / 2] : (v[s->n / 2 - 1] + v[s->n / 2]) / 2;
}

/* Measurements taken so far, for the progress line. */
static atomic_uint measurements;

void samples_add(struct samples *s, double secs)
{
	if (s->n < BENCH_MAX_REPS)
		s->v[s->n++] = secs;
	atomic_fetch_add_explicit(&measurements, 1, memory_order_relaxed);
}

uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

double secs_since(uint64_t t0)
{
	return (double)(now_ns() - t0) / 1e9;
}

uint64_t thread_cpu_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

void stopwatch_start(struct stopwatch *w)
{
	w->cpu = thread_cpu_ns();
	w->wall = now_ns();
}

/* The wall clock first: the CPU clock is a system call. */
void stopwatch_stop(const struct stopwatch *w, struct samples *wall, struct samples *cpu)
{
	samples_add(wall, secs_since(w->wall));
	samples_add(cpu, (double)(thread_cpu_ns() - w->cpu) / 1e9);
}

void result_fail(struct result *r, const char *fmt, ...)
{
	va_list ap;

	if (r->failed)
		return;
	r->failed = true;
	va_start(ap, fmt);
	vsnprintf(r->error, sizeof(r->error), fmt, ap);
	va_end(ap);
}

void note(struct result *r, const char *fmt, ...)
{
	va_list ap;

	if (r->nnote >= MAX_NOTE)
		return;
	va_start(ap, fmt);
	vsnprintf(r->note[r->nnote++], sizeof(r->note[0]), fmt, ap);
	va_end(ap);
}

struct figure *figure_add(struct result *r, const char *key, const char *label, const char *op,
			  double ops, double bytes)
{
	struct figure *f = &r->fig[r->nfig < MAX_FIG ? r->nfig++ : MAX_FIG - 1];

	memset(f, 0, sizeof(*f));
	f->raw = &r->raw[f - r->fig];
	f->raw_cpu = &r->raw_cpu[f - r->fig];
	f->raw->n = f->raw_cpu->n = 0;
	f->section = r->nsection ? r->section[r->nsection - 1] : NULL;
	snprintf(f->key, sizeof(f->key), "%s", key);
	snprintf(f->label, sizeof(f->label), "%s", label);
	f->op = op;
	f->ops = ops;
	f->bytes = bytes;
	f->skipped = true;             /* until measured */
	snprintf(f->why, sizeof(f->why), "not measured");
	return f;
}

void figure_set(struct figure *f, const struct samples *s)
{
	if (!s->n)
		return;                /* stays skipped */
	f->skipped = false;
	f->best = samples_best(s);
	f->median = samples_median(s);
	*f->raw = *s;
}

void figure_set_cpu(struct figure *f, const struct samples *cpu)
{
	if (!cpu->n)
		return;
	f->has_cpu = true;
	f->cpu_best = samples_best(cpu);
	f->cpu_median = samples_median(cpu);
	*f->raw_cpu = *cpu;
}

void figure_skip(struct figure *f, const char *why)
{
	f->skipped = true;
	snprintf(f->why, sizeof(f->why), "%s", why);
}

double ns_per_op(const struct figure *f, bool median)
{
	return (median ? f->median : f->best) * 1e9 / f->ops;
}

double throughput(const struct figure *f, bool median)
{
	return f->bytes / (median ? f->median : f->best) / (f->gb ? 1e9 : (double)GIB);
}

/* A ratio of the ns per op of two figures (inverted: b over a), of the best
 * and of the median figures; returns the best one (NAN if either is missing). */
double ratio_add(struct result *r, const char *key, const char *label, const struct figure *a,
		 const struct figure *b, bool invert)
{
	struct ratio *q = &r->ratio[r->nratio < MAX_RATIO ? r->nratio++ : MAX_RATIO - 1];
	bool ok = !a->skipped && !b->skipped;

	snprintf(q->key, sizeof(q->key), "%s", key);
	snprintf(q->label, sizeof(q->label), "%s", label);
	q->value = ok ? ns_per_op(a, false) / ns_per_op(b, false) : NAN;
	q->median = ok ? ns_per_op(a, true) / ns_per_op(b, true) : NAN;
	if (invert) {
		q->value = 1.0 / q->value;
		q->median = 1.0 / q->median;
	}
	return q->value;
}

/* A target on `value`; skipped (with why) when value is not a number. */
void target_add(struct result *r, const char *key, const char *text, double value, double limit,
		bool at_least, const char *why)
{
	struct target *t = &r->tgt[r->ntgt < MAX_TGT ? r->ntgt++ : MAX_TGT - 1];

	memset(t, 0, sizeof(*t));
	t->section = r->nsection ? r->section[r->nsection - 1] : NULL;
	snprintf(t->key, sizeof(t->key), "%s", key);
	snprintf(t->text, sizeof(t->text), "%s", text);
	t->value = value;
	t->limit = limit;
	t->at_least = at_least;
	t->privmem_ns = t->reference_ns = t->median = t->cpu_value = NAN;
	if (!isfinite(value)) {
		t->st = T_SKIPPED;
		snprintf(t->why, sizeof(t->why), "%s", why ? why : "no measurement");
	} else {
		t->st = (at_least ? value >= limit : value <= limit) ? T_MET : T_NOT_MET;
	}
}

void target_vs(struct result *r, const char *key, const char *text, const struct figure *a,
	       const struct figure *b, double limit)
{
	bool ok = !a->skipped && !b->skipped;
	struct target *t;

	target_add(r, key, text, ok ? ns_per_op(a, false) / ns_per_op(b, false) : NAN, limit, false,
		   a->skipped ? a->why : b->why);
	t = &r->tgt[r->ntgt - 1];
	if (ok) {
		t->privmem_ns = ns_per_op(a, false);
		t->reference_ns = ns_per_op(b, false);
		t->median = ns_per_op(a, true) / ns_per_op(b, true);
		if (a->has_cpu && b->has_cpu)
			t->cpu_value = (a->cpu_best / a->ops) / (b->cpu_best / b->ops);
	}
}

void section_begin(struct result *r, const char *name)
{
	if (r->nsection < MAX_SECTION)
		r->section[r->nsection++] = name;
}

void info_add(struct result *r, const char *key, const char *label, double value, const char *unit)
{
	struct info *i = &r->info[r->ninfo < MAX_INFO ? r->ninfo++ : MAX_INFO - 1];

	snprintf(i->key, sizeof(i->key), "%s", key);
	snprintf(i->label, sizeof(i->label), "%s", label);
	i->value = value;
	i->unit = unit;
}

static const char *status_name(enum tstatus st)
{
	return st == T_MET ? "MET" : st == T_NOT_MET ? "NOT MET" : "SKIPPED";
}

/* ---- text ---- */

static void print_rate(double per_s, const char *what)
{
	if (per_s >= 1e9)
		printf("  %.2f G %s/s", per_s / 1e9, what);
	else if (per_s >= 1e6)
		printf("  %.2f M %s/s", per_s / 1e6, what);
	else if (per_s >= 1e3)
		printf("  %.1f k %s/s", per_s / 1e3, what);
	else
		printf("  %.1f %s/s", per_s, what);
}

static void print_size(uint64_t bytes)
{
	if (bytes >= GIB && bytes % GIB == 0)
		printf("%" PRIu64 " GiB", bytes / GIB);
	else if (bytes >= MIB && bytes % MIB == 0)
		printf("%" PRIu64 " MiB", bytes / MIB);
	else
		printf("%" PRIu64 " KiB", bytes / KIB);
}

static void result_print_text(const struct result *r)
{
	printf("== %s: %s (", r->name, r->title);
	print_size(r->size);
	printf(", best of %u runs, [median])\n", r->reps);
	for (int i = 0; i < r->nfig; i++) {
		const struct figure *f = &r->fig[i];

		if (f->section && (!i || f->section != r->fig[i - 1].section))
			printf("  [%s]\n", f->section);
		if (f->skipped) {
			printf("  %-34s skipped (%s)\n", f->label, f->why);
			continue;
		}
		printf("  %-34s %9.1f ns/%s [%.1f]", f->label, ns_per_op(f, false), f->op,
		       ns_per_op(f, true));
		if (f->has_cpu)
			printf("  cpu %.1f [%.1f]", f->cpu_best * 1e9 / f->ops, f->cpu_median * 1e9 / f->ops);
		if (f->bytes > 0)
			printf("  %6.2f %s [%.2f]", throughput(f, false), f->gb ? "GB/s" : "GiB/s",
			       throughput(f, true));
		if (f->event && f->events > 0)
			print_rate(f->events / f->best, f->event);
		else
			print_rate(f->ops / f->best, f->op);
		printf("\n");
	}
	if (r->nratio)
		printf("  ratios (of the best figures [of the medians]):\n");
	for (int i = 0; i < r->nratio; i++) {
		if (isfinite(r->ratio[i].value))
			printf("    %-52s %8.2fx [%.2fx]\n", r->ratio[i].label, r->ratio[i].value,
			       r->ratio[i].median);
		else
			printf("    %-52s      n/a\n", r->ratio[i].label);
	}
	if (r->ntgt)
		printf("  targets (on the best figures unless they say otherwise):\n");
	for (int i = 0; i < r->ntgt; i++) {
		const struct target *t = &r->tgt[i];

		if (t->section && (!i || t->section != r->tgt[i - 1].section))
			printf("   [%s]\n", t->section);
		if (t->st == T_SKIPPED)
			printf("    %-52s      n/a  SKIPPED (%s)\n", t->text, t->why);
		else if (isfinite(t->privmem_ns) && isfinite(t->cpu_value))
			printf("    %-52s %8.2fx [%.2fx]  %s  (%.1f ns, limit %.1f ns; cpu %.2fx)\n", t->text,
			       t->value, t->median, status_name(t->st), t->privmem_ns,
			       t->limit * t->reference_ns, t->cpu_value);
		else if (isfinite(t->privmem_ns))
			printf("    %-52s %8.2fx [%.2fx]  %s  (%.1f ns, limit %.1f ns)\n", t->text, t->value,
			       t->median, status_name(t->st), t->privmem_ns, t->limit * t->reference_ns);
		else
			printf("    %-52s %8.2fx  %s\n", t->text, t->value, status_name(t->st));
	}
	if (r->ninfo)
		printf("  information:\n");
	for (int i = 0; i < r->ninfo; i++)
		printf("    %-52s %10.6g %s\n", r->info[i].label, r->info[i].value,
		       r->info[i].unit ? r->info[i].unit : "");
	for (int i = 0; i < r->nnote; i++)
		printf("  note: %s\n", r->note[i]);
	if (r->failed)
		printf("  ERROR: %s\n", r->error);
	fflush(stdout);
}

/* ---- JSON ---- */

static void json_num(double v)
{
	if (isfinite(v))
		printf("%.6g", v);
	else
		printf("null");
}

/* Every measurement of a figure, in the order taken (seconds). */
static void json_samples(const struct samples *smp)
{
	printf("[");
	for (unsigned int i = 0; i < smp->n; i++) {
		printf("%s", i ? "," : "");
		printf("%.9g", smp->v[i]);
	}
	printf("]");
}

static void result_print_json(const struct result *r, const struct bench_host *h)
{
	printf("{\"name\":\"%s\",\"title\":", r->name);
	cli_json_string(stdout, r->title);
	printf(",\"privmem_version\":");
	cli_json_string(stdout, pm_version());
	printf(",\"host\":");
	bench_host_json(h);
	printf(",\"size_bytes\":%" PRIu64 ",\"reps\":%u,", r->size, r->reps);
	if (r->nsection) {
		printf("\"sections\":[");
		for (int i = 0; i < r->nsection; i++)
			printf("%s\"%s\"", i ? "," : "", r->section[i]);
		printf("],");
	}
	printf("\"figures\":{");
	for (int i = 0; i < r->nfig; i++) {
		const struct figure *f = &r->fig[i];

		printf("%s\"%s\":{\"label\":", i ? "," : "", f->key);
		cli_json_string(stdout, f->label);
		if (f->section)
			printf(",\"section\":\"%s\"", f->section);
		if (f->skipped) {
			printf(",\"skipped\":true,\"reason\":");
			cli_json_string(stdout, f->why);
			printf("}");
			continue;
		}
		printf(",\"op\":\"%s\",\"ops\":%.0f,\"best_s\":", f->op, f->ops);
		json_num(f->best);
		printf(",\"median_s\":");
		json_num(f->median);
		printf(",\"best_ns_per_op\":");
		json_num(ns_per_op(f, false));
		printf(",\"median_ns_per_op\":");
		json_num(ns_per_op(f, true));
		printf(",\"best_ops_per_s\":");
		json_num(f->ops / f->best);
		printf(",\"samples_s\":");
		json_samples(f->raw);
		if (f->has_cpu) {
			printf(",\"cpu_samples_s\":");
			json_samples(f->raw_cpu);
			printf(",\"best_cpu_ns_per_op\":");
			json_num(f->cpu_best * 1e9 / f->ops);
			printf(",\"median_cpu_ns_per_op\":");
			json_num(f->cpu_median * 1e9 / f->ops);
		}
		if (f->bytes > 0) {
			printf(",\"bytes\":%.0f,\"best_%s\":", f->bytes, f->gb ? "gb_per_s" : "gib_per_s");
			json_num(throughput(f, false));
			printf(",\"median_%s\":", f->gb ? "gb_per_s" : "gib_per_s");
			json_num(throughput(f, true));
		}
		if (f->event && f->events > 0) {
			printf(",\"%ss\":%.0f,\"best_%ss_per_s\":", f->event, f->events, f->event);
			json_num(f->events / f->best);
		}
		printf("}");
	}
	printf("},\"ratios\":{");
	for (int i = 0; i < r->nratio; i++) {
		printf("%s\"%s\":{\"best\":", i ? "," : "", r->ratio[i].key);
		json_num(r->ratio[i].value);
		printf(",\"median\":");
		json_num(r->ratio[i].median);
		printf("}");
	}
	printf("},\"targets\":[");
	for (int i = 0; i < r->ntgt; i++) {
		const struct target *t = &r->tgt[i];

		printf("%s{\"name\":\"%s\",\"description\":", i ? "," : "", t->key);
		cli_json_string(stdout, t->text);
		printf(",\"value\":");
		json_num(t->value);
		printf(",\"limit\":");
		json_num(t->limit);
		printf(",\"compare\":\"%s\",\"status\":\"%s\",\"met\":%s", t->at_least ? ">=" : "<=",
		       status_name(t->st), t->st == T_MET ? "true" : t->st == T_NOT_MET ? "false" : "null");
		if (t->section)
			printf(",\"section\":\"%s\"", t->section);
		if (isfinite(t->privmem_ns)) {
			/* The ratio to the limit measured in the same run. */
			printf(",\"median\":");
			json_num(t->median);
			printf(",\"privmem_ns\":");
			json_num(t->privmem_ns);
			printf(",\"reference_ns\":");
			json_num(t->reference_ns);
			printf(",\"limit_ns\":");
			json_num(t->limit * t->reference_ns);
			printf(",\"of_limit\":");
			json_num(t->value / t->limit);
			printf(",\"cpu_ratio\":");
			json_num(t->cpu_value);
		}
		if (t->st == T_SKIPPED) {
			printf(",\"reason\":");
			cli_json_string(stdout, t->why);
		}
		printf("}");
	}
	printf("],\"info\":{");
	for (int i = 0; i < r->ninfo; i++) {
		printf("%s\"%s\":", i ? "," : "", r->info[i].key);
		json_num(r->info[i].value);
	}
	printf("},\"notes\":[");
	for (int i = 0; i < r->nnote; i++) {
		printf("%s", i ? "," : "");
		cli_json_string(stdout, r->note[i]);
	}
	printf("],\"error\":");
	if (r->failed)
		cli_json_string(stdout, r->error);
	else
		printf("null");
	printf("}");
}

/* ==================================================================== */
/* The host                                                             */
/* ==================================================================== */

void bench_host_read(struct bench_host *h)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[256];

	memset(h, 0, sizeof(*h));
	snprintf(h->cpu, sizeof(h->cpu), "unknown");
	while (f && fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');

		if (strncmp(line, "model name", 10) || !colon)
			continue;
		colon += 1 + (colon[1] == ' ');
		colon[strcspn(colon, "\n")] = '\0';
		snprintf(h->cpu, sizeof(h->cpu), "%s", colon);
		break;
	}
	if (f)
		fclose(f);
	h->cores = sysconf(_SC_NPROCESSORS_ONLN);
	if (getloadavg(h->load, 3) != 3)
		h->load[0] = h->load[1] = h->load[2] = NAN;
}

void bench_host_json(const struct bench_host *h)
{
	printf("{\"cpu\":");
	cli_json_string(stdout, h->cpu);
	printf(",\"cores\":%ld,\"loadavg\":[", h->cores);
	for (int i = 0; i < 3; i++) {
		printf("%s", i ? "," : "");
		json_num(h->load[i]);
	}
	printf("]}");
}

/* ==================================================================== */
/* Progress                                                             */
/* ==================================================================== */

/* A line on stderr (a tty) every 200 ms while benchmarks run: which one,
 * of how many, its time and the measurements taken. */
struct bench_progress {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;                   /* lock */
	const char *name;            /* lock: the benchmark running */
	int index, total;            /* lock */
	uint64_t t0;                 /* lock: when it began */
};

static void *progress_main(void *arg)
{
	struct bench_progress *p = arg;
	struct timespec ts;

	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 200 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&p->cond, &p->lock, &ts);
		if (p->stop || !p->name)
			continue;
		fprintf(stderr, "\r  bench %s (%d of %d): %.1f s, %u measurements   ", p->name, p->index,
			p->total, secs_since(p->t0), atomic_load(&measurements));
		fflush(stderr);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static void progress_start(struct bench_progress *p)
{
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	if (pthread_create(&p->thread, NULL, progress_main, p))
		p->stop = true;
}

static void progress_next(struct bench_progress *p, const char *name, int index, int total)
{
	pthread_mutex_lock(&p->lock);
	p->name = name;
	p->index = index;
	p->total = total;
	p->t0 = now_ns();
	atomic_store(&measurements, 0);
	fprintf(stderr, "\r  bench %s (%d of %d): 0.0 s, 0 measurements   ", name, index, total);
	fflush(stderr);
	pthread_mutex_unlock(&p->lock);
}

/* Clears the line: before a result is printed, and at the end. */
static void progress_clear(struct bench_progress *p)
{
	pthread_mutex_lock(&p->lock);
	p->name = NULL;
	fprintf(stderr, "\r%78s\r", "");
	fflush(stderr);
	pthread_mutex_unlock(&p->lock);
}

static void progress_stop(struct bench_progress *p)
{
	bool running;

	pthread_mutex_lock(&p->lock);
	running = !p->stop;
	p->stop = true;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	if (running)
		pthread_join(p->thread, NULL);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
}

/* ==================================================================== */
/* The command                                                          */
/* ==================================================================== */

int cmd_bench(int argc, char **argv)
{
	struct bench_progress progress = { .stop = false };
	struct bench_plot *plot = NULL;
	struct bench_opts o;
	struct bench_host host;
	struct result *r;
	int ret = bench_parse(argc, argv, &o), first = 1, index = 0, total = 0;
	int met = 0, not_met = 0, skipped = 0;

	if (!ret)
		ret = bench_check_host_memory(&o);
	if (!ret && o.plot_file && plot_check("--plot"))
		ret = 1;
	if (ret)
		return ret;
	r = malloc(sizeof(*r));
	plot = o.plot_file ? bench_plot_new() : NULL;
	if (!r || (o.plot_file && !plot)) {
		fprintf(stderr, "privmem bench: out of memory\n");
		free(r);
		return 1;
	}
	bench_host_read(&host);
	for (int b = 0; b < B_NR; b++)
		total += o.run[b];
	if (o.progress)
		progress_start(&progress);
	if (o.json && o.all) {
		printf("{\"privmem_version\":");
		cli_json_string(stdout, pm_version());
		printf(",\"host\":");
		bench_host_json(&host);
		printf(",\"benchmarks\":{");
	} else if (!o.json) {
		printf("privmem %s on %s, %ld cores, load %.2f %.2f %.2f\n\n", pm_version(), host.cpu,
		       host.cores, host.load[0], host.load[1], host.load[2]);
	}
	for (int b = 0; b < B_NR; b++) {
		double load[1];

		if (!o.run[b])
			continue;
		memset(r, 0, sizeof(*r));
		r->name = benches[b].name;
		r->size = o.size ? o.size : benches[b].default_size;
		r->reps = o.reps ? o.reps : benches[b].default_reps;
		if (getloadavg(load, 1) != 1)
			load[0] = NAN;
		if (o.progress)
			progress_next(&progress, r->name, ++index, total);
		benches[b].fn(&o, r);
		if (o.progress)
			progress_clear(&progress);
		info_add(r, "loadavg_1min_at_start", "host load average (1 min) at the start", load[0], "");
		if (r->failed)
			ret = 1;
		for (int i = 0; i < r->ntgt; i++) {
			met += r->tgt[i].st == T_MET;
			not_met += r->tgt[i].st == T_NOT_MET;
			skipped += r->tgt[i].st == T_SKIPPED;
		}
		if (plot)
			bench_plot_add(plot, r);
		if (o.json) {
			if (o.all)
				printf("%s\"%s\":", first ? "" : ",", r->name);
			result_print_json(r, &host);
			if (!o.all)
				printf("\n");
		} else {
			if (!first)
				printf("\n");
			result_print_text(r);
		}
		first = 0;
		fflush(stdout);
	}
	if (o.progress)
		progress_stop(&progress);
	if (o.json && o.all)
		printf("},\"targets_met\":%d,\"targets_not_met\":%d,\"targets_skipped\":%d}\n", met, not_met,
		       skipped);
	else if (o.all)
		printf("\nsummary: %d targets MET, %d NOT MET, %d skipped\n", met, not_met, skipped);
	fflush(stdout);
	if (plot && bench_plot_draw(plot, o.plot_file))
		ret = 1;
	bench_plot_free(plot);
	free(r);
	return ret;
}

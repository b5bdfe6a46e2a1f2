/* SPDX-License-Identifier: MIT */
/*
 * privmem bench: the framework every benchmark uses (bench.c) and the
 * benchmarks (bench_*.c). A benchmark is one function that fills in a
 * struct result: figures (measured things, best and median of --reps
 * measurements), ratios between figures, targets (MET / NOT MET),
 * information and notes; bench.c prints it as text or JSON.
 */
#ifndef PM_TOOLS_BENCH_H
#define PM_TOOLS_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "vmm.h"

#define KIB ((uint64_t)1 << 10)
#define MIB ((uint64_t)1 << 20)
#define GIB ((uint64_t)1 << 30)
#define PAGE_4K (4 * KIB)
#define PAGE_2M (2 * MIB)

#define BENCH_MAX_REPS 50
#define BENCH_MAX 16              /* benchmarks in the table */

struct bench_opts {
	bool run[BENCH_MAX];
	bool all;
	bool json;
	uint64_t size;            /* 0: each benchmark's default */
	unsigned int reps;        /* 0: each benchmark's default */
	const char *plot_file;    /* --plot: the targets beside their limits (SVG) */
	bool progress;            /* show progress on stderr (a tty) */
};

/* Measurements of one figure. */
struct samples {
	double v[BENCH_MAX_REPS];
	unsigned int n;
};

/* One measured thing: `ops` operations (and `bytes` bytes) per measurement. */
struct figure {
	char key[48];            /* JSON key */
	const char *section;     /* the section it belongs to (NULL: none) */
	char label[64];
	const char *op;          /* one operation, e.g. "pair", "page", "read" */
	double ops;
	double bytes;            /* 0: no throughput */
	bool gb;                 /* throughput in GB/s (10^9) instead of GiB/s */
	const char *event;       /* optional second rate, e.g. "fault" */
	double events;           /* events per measurement */
	double best, median;     /* seconds per measurement */
	struct samples *raw, *raw_cpu; /* every measurement (figure_set, figure_set_cpu) */
	/* The measuring thread's CPU time (figure_set_cpu), when kept: the
	 * steadier figure on a host whose other loads preempt it. */
	bool has_cpu;
	double cpu_best, cpu_median;
	bool skipped;
	char why[192];
};

struct ratio {
	char key[48];
	char label[96];
	double value;            /* of the best figures */
	double median;           /* of the median figures */
};

enum tstatus { T_MET, T_NOT_MET, T_SKIPPED };

struct target {
	char key[48];
	const char *section;     /* as the figures' */
	char text[128];          /* what is required */
	double value, limit;
	bool at_least;           /* value >= limit (else value <= limit) */
	enum tstatus st;
	char why[192];           /* for T_SKIPPED */
	/* target_vs: the two figures' ns per op (the best; NAN otherwise) and
	 * the ratio of their medians. */
	double privmem_ns, reference_ns, median;
	double cpu_value;        /* the ratio of their CPU times (NAN: not kept) */
};

struct info {
	char key[48];
	char label[96];
	double value;
	const char *unit;
};

/* Room for bench e2e, the largest: 39 figures and 25 targets with five
 * models (a full array overwrites its last entry). */
#define MAX_FIG 48
#define MAX_RATIO 16
#define MAX_TGT 32
#define MAX_INFO 32
#define MAX_NOTE 16
#define MAX_SECTION 8

struct result {
	const char *name;
	char title[160];
	/* Sections (section_begin): figures and targets added after it
	 * belong to the last one begun. */
	const char *section[MAX_SECTION];
	int nsection;
	uint64_t size;
	unsigned int reps;
	struct figure fig[MAX_FIG];
	int nfig;
	struct ratio ratio[MAX_RATIO];
	int nratio;
	struct target tgt[MAX_TGT];
	int ntgt;
	struct info info[MAX_INFO];
	int ninfo;
	char note[MAX_NOTE][400];
	int nnote;
	bool failed;
	char error[384];
	/* The raw measurements of the figures (fig[i].raw points into them). */
	struct samples raw[MAX_FIG], raw_cpu[MAX_FIG];
};

/* The machine a run measured (bench.c): the CPU's model, the cores online
 * and the load average (1, 5, 15 min) when the run began; in every JSON
 * result and the text's first line. */
struct bench_host {
	char cpu[128];
	long cores;
	double load[3];
};
void bench_host_read(struct bench_host *h);
void bench_host_json(const struct bench_host *h);

/* --plot (bench_plot.c): each result's targets are kept as it completes,
 * then drawn beside their limits. */
struct bench_plot;
struct bench_plot *bench_plot_new(void);
void bench_plot_add(struct bench_plot *p, const struct result *r);
/* 0, or -1 with a message. */
int bench_plot_draw(struct bench_plot *p, const char *path);
void bench_plot_free(struct bench_plot *p);

/* Samples and clocks (CLOCK_MONOTONIC). */
double samples_best(const struct samples *s);
double samples_median(const struct samples *s);
void samples_add(struct samples *s, double secs);
uint64_t now_ns(void);
double secs_since(uint64_t t0);
/* The calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID), in ns. */
uint64_t thread_cpu_ns(void);
/* Both clocks around a measurement on the calling thread. */
struct stopwatch {
	uint64_t wall, cpu;
};
void stopwatch_start(struct stopwatch *w);
void stopwatch_stop(const struct stopwatch *w, struct samples *wall, struct samples *cpu);

/* Building a result. result_fail keeps the first error; figure_add
 * describes a figure that figure_set (or figure_skip) completes; ratios
 * and targets compare figures' best values. */
void result_fail(struct result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void note(struct result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
struct figure *figure_add(struct result *r, const char *key, const char *label, const char *op,
			  double ops, double bytes);
void figure_set(struct figure *f, const struct samples *s);
void figure_set_cpu(struct figure *f, const struct samples *cpu);
void figure_skip(struct figure *f, const char *why);
double ns_per_op(const struct figure *f, bool median);
double throughput(const struct figure *f, bool median);
double ratio_add(struct result *r, const char *key, const char *label, const struct figure *a,
		 const struct figure *b, bool invert);
void target_add(struct result *r, const char *key, const char *text, double value, double limit,
		bool at_least, const char *why);
void info_add(struct result *r, const char *key, const char *label, double value, const char *unit);
/* Begins a section (a static string) of a benchmark that has several. */
void section_begin(struct result *r, const char *name);
/* A target on the ns per op of figure a against `limit` times that of b,
 * both measured in the run (a <= limit x b); skipped if either is. */
void target_vs(struct result *r, const char *key, const char *text, const struct figure *a,
	       const struct figure *b, double limit);

/* Shared helpers (bench_lib.c): pre-faulted buffers and zeroing them one
 * granule at a time, a PRNG, attribute changes and one destructive
 * conversion round trip of a granule. */
uint8_t *buffer_new(uint64_t size);
void buffer_free(uint8_t *p, uint64_t size);
void zero_pass(uint8_t *buf, uint64_t size, uint64_t gran);
void discard_pass(uint8_t *buf, uint64_t size, uint64_t batch);
uint64_t rng_next(uint64_t *s);
int set_attrs(struct vmm *m, uint64_t gpa, uint64_t len, bool priv);
int privmem_pair(struct vmm *m, uint64_t gpa, uint64_t len);
/* privmem_pair over [0, size) a granule at a time: 0 or -errno. */
int privmem_pass(struct vmm *m, uint64_t size, uint64_t gran);
/* Sets the pool's watermark (0: back to what it was); 0 or -errno. */
int bench_pool_watermark(uint64_t bytes);

/* Marks (bench_lib.c): guest code brackets a timed phase with
 * pm_guest_sync(g, BENCH_MARK(phase, 0)) and (phase, 1); bench_vm_run's
 * SYNC handler adds the time between them to t[phase], and keeps the VM's
 * and the pool's statistics at the last start and end of each phase. */
#define BENCH_PHASES 8
#define BENCH_MARK_FLAG (1ULL << 40)
#define BENCH_MARK(phase, end) (BENCH_MARK_FLAG | (uint64_t)(phase) << 1 | (uint64_t)!!(end))

struct bench_marks {
	uint64_t t_start, cpu_start;
	struct samples t[BENCH_PHASES];          /* seconds per measurement */
	struct samples cpu[BENCH_PHASES];        /* the vCPU thread's CPU seconds in them */
	uint64_t hypercalls[BENCH_PHASES];       /* hypercall exits in them, summed */
	uint64_t released[BENCH_PHASES];         /* pool bytes returned to the OS, summed */
	int64_t populated[BENCH_PHASES];         /* growth of the pool's populated bytes, summed */
	struct pm_vm_stats vs_start[BENCH_PHASES], vs_end[BENCH_PHASES];   /* the last one */
	struct pm_pool_stats ps_start[BENCH_PHASES], ps_end[BENCH_PHASES];
};

/* bench_vm_run's SYNC handler, for a benchmark's own handler to pass
 * marks on to (m->ctx must start with the struct bench_marks). */
void bench_mark_sync(struct vmm *m, int vcpu, const struct pm_ucall *uc);

/* A fresh one-vCPU VM for a measurement: 0, or -1 with r->error (and
 * nothing left to destroy). */
int bench_vm_create(struct result *r, struct vmm *m, unsigned long type, uint64_t size,
		    uint64_t gmem_flags);
/* The same for a TD, built (cfg, all RAM private) and finalized. */
int bench_td_create(struct result *r, struct vmm *m, uint64_t size, uint64_t gmem_flags,
		    const struct pm_tdx_config *cfg);
/* Runs guest code fn(arg) on m's vCPU to its end, its marks going to
 * `marks` (may be NULL): 0, or -1 with r->error. */
int bench_vm_run(struct result *r, struct vmm *m, void (*fn)(struct pm_guest *g, void *arg), void *arg,
		 struct bench_marks *marks);

/* Guest code: KVM_HC_MAP_GPA_RANGE of npages from gpa (2M page size hint
 * from 512 pages on): 0 or the hypercall's error. */
long guest_map_gpa_range(struct pm_guest *g, uint64_t gpa, uint64_t npages, bool to_private);
/* Random reads: fill_words gives each 8-byte word of buf its own value;
 * n 8-byte aligned offsets below span (at most 4 GiB), and the sum of the
 * words at base + each offset, `loops` times over, read by guest code
 * (pm_guest_read64) and natively (plain loads). */
void fill_words(uint8_t *buf, uint64_t size);
void random_offsets(uint32_t *idx, size_t n, uint64_t span, uint64_t *seed);
uint64_t guest_random_reads(struct pm_guest *g, uint64_t base, const uint32_t *idx, size_t n,
			    unsigned int loops);
uint64_t native_random_reads(const uint8_t *base, const uint32_t *idx, size_t n, unsigned int loops);

/* Keeps the compiler from dropping stores to memory nobody reads. */
static inline void clobber(void *p)
{
	__asm__ volatile("" : : "r"(p) : "memory");
}

extern volatile uint64_t sink;

/* The benchmarks (r->size and r->reps are set; each fills in the rest). */
void bench_convert(const struct bench_opts *o, struct result *r);
void bench_fault(const struct bench_opts *o, struct result *r);
void bench_access(const struct bench_opts *o, struct result *r);
void bench_scale(const struct bench_opts *o, struct result *r);
void bench_share(const struct bench_opts *o, struct result *r);
void bench_psc(const struct bench_opts *o, struct result *r);
void bench_tdx(const struct bench_opts *o, struct result *r);
void bench_realm(const struct bench_opts *o, struct result *r);
void bench_guest(const struct bench_opts *o, struct result *r);
void bench_e2e(const struct bench_opts *o, struct result *r);
void bench_nodirect(const struct bench_opts *o, struct result *r);
void bench_inplace(const struct bench_opts *o, struct result *r);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * Reading a privmem trace (pm_trace_start, privmem run --trace) in tests:
 * trace_load parses the file and checks its structure against the Trace
 * Event Format that Perfetto reads, independently of the tracer: one
 * object whose traceEvents array holds complete events (ph "X": name, cat,
 * ts, dur, pid, tid, args), instants ("i", scope "t") and metadata ("M":
 * process_name, thread_name); spans on one thread nest or follow each
 * other (as calls do); otherData counts the events and says none was
 * dropped. Then counts and sums over the events, to hold against what
 * the run counted.
 */
#ifndef PM_TESTS_TRACE_CHECK_H
#define PM_TESTS_TRACE_CHECK_H

#include <stdbool.h>
#include <stdint.h>
#include "json.h"

struct trace {
	struct jv *root;
	const struct jv *events;      /* the traceEvents array */
	char error[256];              /* why trace_load failed */
};

/* 0, or -1 with t->error set (the file is missing, not JSON, or not a
 * well-formed trace). */
int trace_load(struct trace *t, const char *path);
void trace_free(struct trace *t);

/* Events of category cat (NULL: any) named name (NULL: any) whose span
 * ends (an instant: happens) by until_us (0: no limit) and, if key is
 * not NULL, whose argument key is written as `value` in the file ("0",
 * "\"mapped\""): their number, and the sum of their numeric argument
 * sum_key. */
uint64_t trace_count(const struct trace *t, const char *cat, const char *name, const char *key,
		     const char *value, double until_us);
uint64_t trace_sum(const struct trace *t, const char *cat, const char *name, const char *sum_key,
		   double until_us);
/* The end of the last span named name (0: none), in microseconds. */
double trace_last_end(const struct trace *t, const char *name);
/* The thread named `thread_name` by a thread_name event, and whether every
 * event named `name` whose argument key is `value` is on it. */
bool trace_on_thread(const struct trace *t, const char *thread_name, const char *name, const char *key,
		     const char *value);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * privmem run's report: the one structure a scenario runner fills and both
 * printers read, so the text and the JSON cannot tell different stories.
 *
 * Rows are name/value pairs grouped by section: a row has a path and a
 * value. The path's dot-separated parts are the JSON objects the row is in
 * ("exits.ucall", "checks.private_readback.passed"); a part that is a
 * number is an index in an array ("scenarios.0"). A section is the rows
 * under one path prefix; they must be added one after the other (the JSON
 * printer checks it), in the order the JSON shows them. report_section
 * sets the prefix of the rows added next, report_top goes back to the top
 * level. Values: an
 * unsigned count, a real, a string (NULL prints as JSON null), a boolean,
 * or an empty object.
 *
 * Lines are the text report, one template per line: text in which the
 * fields {path} and {path:spec} print the row at path. A field naming no
 * row is a bug (the printer aborts), so the text shows nothing the JSON
 * lacks, and shows it with the JSON's value. spec: [MiB][-][width][.prec][x]
 *   MiB      the value divided by 2^20 (in integers unless .prec is given)
 *   -width   padded to width on the right (width alone: on the left)
 *   .prec    as a real with prec decimals
 *   x        in hexadecimal
 *
 * Ownership: the report copies the paths, strings and templates it is
 * given; report_free releases them. When memory runs out the report
 * records it and the printers fail with -ENOMEM instead of printing half a
 * report. Not thread-safe: runners fill it after their vCPUs stopped.
 */
#ifndef PM_TOOLS_REPORT_H
#define PM_TOOLS_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum report_kind { REPORT_U64, REPORT_REAL, REPORT_STR, REPORT_NULL, REPORT_BOOL, REPORT_EMPTY };

struct report_row {
	char *path;
	enum report_kind kind;
	uint64_t u;             /* REPORT_U64, REPORT_BOOL */
	double real;            /* REPORT_REAL */
	char *str;              /* REPORT_STR */
};

struct report {
	struct report_row *rows;
	size_t nr_rows, cap_rows;
	char **lines;
	size_t nr_lines, cap_lines;
	char section[128];      /* the prefix of the rows added next */
	bool nomem;
	bool failed;            /* the run failed (set by the runner) */
};

void report_init(struct report *r);
void report_free(struct report *r);

/* The section of the rows added next: a path prefix (printf-style), or
 * the top level. */
void report_section(struct report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void report_top(struct report *r);
void report_u64(struct report *r, const char *name, uint64_t v);
void report_real(struct report *r, const char *name, double v);
void report_str(struct report *r, const char *name, const char *s);
void report_bool(struct report *r, const char *name, bool v);
void report_empty(struct report *r, const char *name);

/* A line of the text report (a template, see above). */
void report_line(struct report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The row at path, or NULL. */
const struct report_row *report_find(const struct report *r, const char *path);

/* 0, or -ENOMEM if the report is incomplete (nothing printed), or
 * -errno of a failed write. */
int report_print_text(const struct report *r, FILE *out);
int report_print_json(const struct report *r, FILE *out);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * privmem run's report (see report.h): building it, and its two printers.
 * The JSON printer nests the rows by their paths; the text printer expands
 * the line templates. A malformed report (a section split in two, a field
 * naming no row, a bad spec) is a bug in a runner, not an input error: the
 * printers abort with a message, and test_cli runs every runner.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "report.h"

#define MIB ((uint64_t)1 << 20)

static void report_bug(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void report_bug(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "privmem: bug in the run report: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

void report_init(struct report *r)
{
	memset(r, 0, sizeof(*r));
}

void report_free(struct report *r)
{
	for (size_t i = 0; i < r->nr_rows; i++) {
		free(r->rows[i].path);
		free(r->rows[i].str);
	}
	for (size_t i = 0; i < r->nr_lines; i++)
		free(r->lines[i]);
	free(r->rows);
	free(r->lines);
	report_init(r);
}

/* Makes room for one more element of size `size` in *v; false (and the
 * report marked) when memory runs out. */
static bool grow(struct report *r, void **v, size_t *cap, size_t nr, size_t size)
{
	void *nv;
	size_t ncap;

	if (r->nomem)
		return false;
	if (nr < *cap)
		return true;
	ncap = *cap ? 2 * *cap : 64;
	nv = realloc(*v, ncap * size);
	if (!nv) {
		r->nomem = true;
		return false;
	}
	*v = nv;
	*cap = ncap;
	return true;
}

void report_section(struct report *r, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(r->section, sizeof(r->section), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(r->section))
		report_bug("section name too long: %s...", r->section);
}

void report_top(struct report *r)
{
	r->section[0] = '\0';
}

static struct report_row *row_add(struct report *r, const char *name, enum report_kind kind)
{
	struct report_row *row;
	size_t len = strlen(r->section) + strlen(name) + 2;
	char *path;

	if (!grow(r, (void **)&r->rows, &r->cap_rows, r->nr_rows, sizeof(*r->rows)))
		return NULL;
	path = malloc(len);
	if (!path) {
		r->nomem = true;
		return NULL;
	}
	snprintf(path, len, "%s%s%s", r->section, *r->section ? "." : "", name);
	row = &r->rows[r->nr_rows++];
	*row = (struct report_row){ .path = path, .kind = kind };
	return row;
}

void report_u64(struct report *r, const char *name, uint64_t v)
{
	struct report_row *row = row_add(r, name, REPORT_U64);

	if (row)
		row->u = v;
}

void report_real(struct report *r, const char *name, double v)
{
	struct report_row *row = row_add(r, name, REPORT_REAL);

	if (row)
		row->real = v;
}

void report_str(struct report *r, const char *name, const char *s)
{
	struct report_row *row = row_add(r, name, s ? REPORT_STR : REPORT_NULL);

	if (!row || !s)
		return;
	row->str = strdup(s);
	if (!row->str)
		r->nomem = true;
}

void report_bool(struct report *r, const char *name, bool v)
{
	struct report_row *row = row_add(r, name, REPORT_BOOL);

	if (row)
		row->u = v;
}

void report_empty(struct report *r, const char *name)
{
	row_add(r, name, REPORT_EMPTY);
}

void report_line(struct report *r, const char *fmt, ...)
{
	va_list ap;
	char *line;
	int n;

	if (!grow(r, (void **)&r->lines, &r->cap_lines, r->nr_lines, sizeof(*r->lines)))
		return;
	va_start(ap, fmt);
	n = vasprintf(&line, fmt, ap);
	va_end(ap);
	if (n < 0) {
		r->nomem = true;
		return;
	}
	r->lines[r->nr_lines++] = line;
}

const struct report_row *report_find(const struct report *r, const char *path)
{
	for (size_t i = 0; i < r->nr_rows; i++)
		if (!strcmp(r->rows[i].path, path))
			return &r->rows[i];
	return NULL;
}

/* ---- the JSON printer ---- */

/* path is prefix, or lies under it. */
static bool under(const char *path, const char *prefix, size_t len)
{
	return !strncmp(path, prefix, len) && (path[len] == '.' || path[len] == '\0');
}

static bool is_index(const char *part, size_t len)
{
	if (!len)
		return false;
	for (size_t i = 0; i < len; i++)
		if (part[i] < '0' || part[i] > '9')
			return false;
	return true;
}

/* Every section is added in one piece and no path is used twice or is
 * both a value and a section: each prefix a row opens (one the row before
 * does not have) was seen by no row before it. */
static void check_sections(const struct report *r)
{
	for (size_t i = 1; i < r->nr_rows; i++) {
		const char *path = r->rows[i].path, *prev = r->rows[i - 1].path;

		if (under(path, prev, strlen(prev)) || under(prev, path, strlen(path)))
			report_bug("%s and %s: one path is used twice, or is a value and a section",
				   prev, path);
		for (size_t len = 0; path[len]; len++) {
			if (path[len + 1] != '.' && path[len + 1] != '\0')
				continue;
			if (under(prev, path, len + 1))
				continue;
			for (size_t j = 0; j + 1 < i; j++)
				if (under(r->rows[j].path, path, len + 1))
					report_bug("%.*s is split: %s comes after %s", (int)(len + 1), path,
						   path, r->rows[i - 1].path);
		}
	}
}

static void json_value(const struct report_row *row, FILE *out)
{
	switch (row->kind) {
	case REPORT_U64:
		fprintf(out, "%" PRIu64, row->u);
		break;
	case REPORT_REAL:
		fprintf(out, "%.6f", row->real);
		break;
	case REPORT_STR:
		cli_json_string(out, row->str);
		break;
	case REPORT_NULL:
		fputs("null", out);
		break;
	case REPORT_BOOL:
		fputs(row->u ? "true" : "false", out);
		break;
	case REPORT_EMPTY:
		fputs("{}", out);
		break;
	}
}

#define JSON_MAX_DEPTH 8

/* An open object or array: the path prefix it stands for, how many
 * members it has printed. */
struct json_level {
	size_t len;
	bool array;
	unsigned int members;
};

/* Prints the member separator and key of `part` inside level l. */
static void json_member(struct json_level *l, const char *part, size_t len, FILE *out)
{
	if (l->members)
		fputc(',', out);
	if (l->array) {
		if (!is_index(part, len) || strtoul(part, NULL, 10) != l->members)
			report_bug("array member %.*s out of order", (int)len, part);
	} else {
		if (is_index(part, len))
			report_bug("index %.*s in an object", (int)len, part);
		fprintf(out, "\"%.*s\":", (int)len, part);
	}
	l->members++;
}

int report_print_json(const struct report *r, FILE *out)
{
	struct json_level stack[JSON_MAX_DEPTH] = { { .len = 0 } };
	int depth = 0;        /* stack[0] is the report's object */

	if (r->nomem)
		return -ENOMEM;
	check_sections(r);
	fputc('{', out);
	for (size_t i = 0; i < r->nr_rows; i++) {
		const char *path = r->rows[i].path, *prev = i ? r->rows[i - 1].path : "", *part, *dot;

		/* Close the sections of the row before that this row is not in
		 * (they are never opened again: check_sections). */
		while (depth > 0 && !(!strncmp(path, prev, stack[depth].len) && path[stack[depth].len] == '.')) {
			fputc(stack[depth].array ? ']' : '}', out);
			depth--;
		}
		/* Open the sections between, then the value. */
		part = path + (depth ? stack[depth].len + 1 : 0);
		while ((dot = strchr(part, '.'))) {
			if (depth + 1 >= JSON_MAX_DEPTH)
				report_bug("%s is nested too deep", path);
			json_member(&stack[depth], part, (size_t)(dot - part), out);
			depth++;
			stack[depth] = (struct json_level){ .len = (size_t)(dot - path),
							    .array = is_index(dot + 1, strcspn(dot + 1, ".")) };
			fputc(stack[depth].array ? '[' : '{', out);
			part = dot + 1;
		}
		json_member(&stack[depth], part, strlen(part), out);
		json_value(&r->rows[i], out);
	}
	for (; depth > 0; depth--)
		fputc(stack[depth].array ? ']' : '}', out);
	fputs("}\n", out);
	return ferror(out) ? -EIO : 0;
}

/* ---- the text printer ---- */

struct field_spec {
	bool mib, left, hex, real;
	unsigned int width, prec;
};

static void parse_spec(const char *spec, size_t len, struct field_spec *fs, const char *line)
{
	const char *p = spec, *end = spec + len;
	char *num_end;

	*fs = (struct field_spec){ 0 };
	if (end - p >= 3 && !strncmp(p, "MiB", 3)) {
		fs->mib = true;
		p += 3;
	}
	if (p < end && *p == '-') {
		fs->left = true;
		p++;
	}
	if (p < end && *p >= '0' && *p <= '9') {
		fs->width = (unsigned int)strtoul(p, &num_end, 10);
		p = num_end;
	}
	if (p < end && *p == '.') {
		fs->real = true;
		fs->prec = (unsigned int)strtoul(p + 1, &num_end, 10);
		if (num_end == p + 1)
			report_bug("no precision after '.' in \"%s\"", line);
		p = num_end;
	}
	if (p < end && *p == 'x') {
		fs->hex = true;
		p++;
	}
	if (p != end || (fs->hex && (fs->real || fs->mib)))
		report_bug("bad field spec \"%.*s\" in \"%s\"", (int)len, spec, line);
}

/* The text of one field, before padding. */
static void format_field(const struct report_row *row, const struct field_spec *fs, char *buf,
			 size_t size, const char *line)
{
	double real;
	uint64_t u;

	switch (row->kind) {
	case REPORT_U64:
	case REPORT_REAL:
		real = row->kind == REPORT_U64 ? (double)row->u : row->real;
		u = row->u;
		if (fs->mib) {
			real /= (double)MIB;
			u /= MIB;
		}
		if (fs->real || row->kind == REPORT_REAL)
			snprintf(buf, size, "%.*f", fs->real ? (int)fs->prec : 6, real);
		else if (fs->hex)
			snprintf(buf, size, "%" PRIx64, u);
		else
			snprintf(buf, size, "%" PRIu64, u);
		return;
	case REPORT_STR:
	case REPORT_NULL:
	case REPORT_BOOL:
		if (fs->mib || fs->real || fs->hex)
			report_bug("a number's spec for %s in \"%s\"", row->path, line);
		snprintf(buf, size, "%s", row->kind == REPORT_STR ? row->str : row->kind == REPORT_NULL ?
			 "null" : row->u ? "true" : "false");
		return;
	case REPORT_EMPTY:
		break;
	}
	report_bug("%s is an object, not a value, in \"%s\"", row->path, line);
}

static void print_field(const struct report *r, const char *field, size_t len, const char *line,
			FILE *out)
{
	const char *colon = memchr(field, ':', len);
	size_t path_len = colon ? (size_t)(colon - field) : len;
	const struct report_row *row = NULL;
	struct field_spec fs = { 0 };
	char buf[512];
	int pad;

	for (size_t i = 0; i < r->nr_rows && !row; i++)
		if (strlen(r->rows[i].path) == path_len && !strncmp(r->rows[i].path, field, path_len))
			row = &r->rows[i];
	if (!row)
		report_bug("the text shows {%.*s}, which the report lacks: \"%s\"", (int)len, field, line);
	if (colon)
		parse_spec(colon + 1, len - path_len - 1, &fs, line);
	format_field(row, &fs, buf, sizeof(buf), line);
	pad = (int)fs.width - (int)strlen(buf);
	if (pad > 0 && !fs.left)
		fprintf(out, "%*s", pad, "");
	fputs(row->kind == REPORT_STR ? row->str : buf, out);   /* a long string whole */
	if (pad > 0 && fs.left)
		fprintf(out, "%*s", pad, "");
}

int report_print_text(const struct report *r, FILE *out)
{
	if (r->nomem)
		return -ENOMEM;
	for (size_t i = 0; i < r->nr_lines; i++) {
		const char *line = r->lines[i], *p = line, *open, *close;

		while ((open = strchr(p, '{'))) {
			close = strchr(open, '}');
			if (!close)
				report_bug("unclosed field in \"%s\"", line);
			fwrite(p, 1, (size_t)(open - p), out);
			print_field(r, open + 1, (size_t)(close - open - 1), line, out);
			p = close + 1;
		}
		fputs(p, out);
		fputc('\n', out);
	}
	return ferror(out) ? -EIO : 0;
}

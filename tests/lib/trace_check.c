/* SPDX-License-Identifier: MIT */
/* Reading and checking a privmem trace (trace_check.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "trace_check.h"

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	size_t len = 0, cap = 1 << 16, got;
	char *buf;

	if (!f)
		return NULL;
	buf = malloc(cap);
	while (buf && (got = fread(buf + len, 1, cap - len - 1, f)) > 0) {
		len += got;
		if (cap - len < 2) {
			char *n = realloc(buf, cap * 2);

			if (!n) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = n;
			cap *= 2;
		}
	}
	fclose(f);
	if (buf)
		buf[len] = '\0';
	return buf;
}

static const struct jv *member(const struct jv *obj, const char *key, enum jtype type)
{
	const struct jv *v = json_get(obj, key);

	return v && v->type == type ? v : NULL;
}

static double num(const struct jv *obj, const char *key)
{
	const struct jv *v = member(obj, key, J_NUM);

	return v ? strtod(v->text, NULL) : -1;
}

static const char *str(const struct jv *obj, const char *key)
{
	const struct jv *v = member(obj, key, J_STR);

	return v ? v->text : NULL;
}

/* One event's fields; NULL if it is well-formed, else what is wrong. */
static const char *check_event(const struct jv *e)
{
	const char *ph = str(e, "ph");

	if (e->type != J_OBJ || !ph || !str(e, "name") || !member(e, "pid", J_NUM))
		return "an event without ph, name or pid";
	if (!strcmp(ph, "M")) {
		const struct jv *a = member(e, "args", J_OBJ);

		if (!a || !str(a, "name"))
			return "a metadata event without args.name";
		if (strcmp(str(e, "name"), "process_name") && strcmp(str(e, "name"), "thread_name"))
			return "metadata other than process_name and thread_name";
		if (!strcmp(str(e, "name"), "thread_name") && !member(e, "tid", J_NUM))
			return "a thread_name without tid";
		return NULL;
	}
	if (strcmp(ph, "X") && strcmp(ph, "i"))
		return "a phase other than X, i and M";
	if (!str(e, "cat") || num(e, "ts") < 0 || !member(e, "tid", J_NUM) || !member(e, "args", J_OBJ))
		return "an X or i event without cat, ts, tid or args";
	if (!strcmp(ph, "X") && num(e, "dur") < 0)
		return "an X event without dur";
	if (!strcmp(ph, "i") && (!str(e, "s") || strcmp(str(e, "s"), "t")))
		return "an instant not scoped to its thread";
	return NULL;
}

struct span {
	double start, end;
	long tid;
};

static int cmp_span(const void *a, const void *b)
{
	const struct span *x = a, *y = b;

	if (x->tid != y->tid)
		return x->tid < y->tid ? -1 : 1;
	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return x->end > y->end ? -1 : x->end < y->end;   /* the outer one first */
}

/* Spans on one thread nest or follow each other. */
static const char *check_nesting(const struct jv *events, size_t n)
{
	struct span *s = calloc(n + 1, sizeof(*s)), *stack[256];
	size_t k = 0, depth = 0;
	const char *err = NULL;

	if (!s)
		return "out of memory";
	for (const struct jv *e = events->child; e; e = e->next)
		if (!strcmp(str(e, "ph"), "X"))
			s[k++] = (struct span){ num(e, "ts"), num(e, "ts") + num(e, "dur"),
						strtol(json_get(e, "tid")->text, NULL, 10) };
	qsort(s, k, sizeof(*s), cmp_span);
	for (size_t i = 0; i < k && !err; i++) {
		if (i && s[i].tid != s[i - 1].tid)
			depth = 0;
		while (depth && stack[depth - 1]->end <= s[i].start)
			depth--;
		if (depth && s[i].end > stack[depth - 1]->end)
			err = "two spans on one thread overlap without nesting";
		else if (depth < 256)
			stack[depth++] = &s[i];
	}
	free(s);
	return err;
}

int trace_load(struct trace *t, const char *path)
{
	char *text = slurp(path);
	const struct jv *other;
	const char *err = NULL;
	size_t n = 0, data = 0;

	memset(t, 0, sizeof(*t));
	if (!text) {
		snprintf(t->error, sizeof(t->error), "%s: cannot read it", path);
		return -1;
	}
	t->root = json_parse(text);
	free(text);
	if (!t->root || t->root->type != J_OBJ) {
		snprintf(t->error, sizeof(t->error), "%s: not one JSON object", path);
		return -1;
	}
	t->events = member(t->root, "traceEvents", J_ARR);
	other = member(t->root, "otherData", J_OBJ);
	if (!t->events || !t->events->child || !other) {
		snprintf(t->error, sizeof(t->error), "%s: no traceEvents array or no otherData", path);
		return -1;
	}
	for (const struct jv *e = t->events->child; e && !err; e = e->next) {
		err = check_event(e);
		n++;
		data += !err && strcmp(str(e, "ph"), "M");
	}
	if (!err && num(other, "events") != (double)data)
		err = "otherData.events is not the number of events";
	if (!err && num(other, "dropped") != 0)
		err = "events were dropped";
	if (!err)
		err = check_nesting(t->events, n);
	if (err) {
		snprintf(t->error, sizeof(t->error), "%s: %s", path, err);
		return -1;
	}
	return 0;
}

void trace_free(struct trace *t)
{
	json_free(t->root);
	t->root = NULL;
}

static bool matches(const struct jv *e, const char *cat, const char *name, const char *key,
		    const char *value, double until_us)
{
	const char *ph = str(e, "ph");
	double end;

	if (!strcmp(ph, "M") || (cat && strcmp(str(e, "cat"), cat)) || (name && strcmp(str(e, "name"), name)))
		return false;
	end = num(e, "ts") + (!strcmp(ph, "X") ? num(e, "dur") : 0);
	if (until_us > 0 && end > until_us)
		return false;
	if (key) {
		const struct jv *a = json_get(json_get(e, "args"), key);
		char buf[256];

		if (!a)
			return false;
		if (a->type == J_STR)
			snprintf(buf, sizeof(buf), "\"%s\"", a->text);
		else
			snprintf(buf, sizeof(buf), "%s", a->text ? a->text : "");
		return !strcmp(buf, value);
	}
	return true;
}

uint64_t trace_count(const struct trace *t, const char *cat, const char *name, const char *key,
		     const char *value, double until_us)
{
	uint64_t n = 0;

	for (const struct jv *e = t->events->child; e; e = e->next)
		n += matches(e, cat, name, key, value, until_us);
	return n;
}

uint64_t trace_sum(const struct trace *t, const char *cat, const char *name, const char *sum_key,
		   double until_us)
{
	uint64_t sum = 0;

	for (const struct jv *e = t->events->child; e; e = e->next) {
		const struct jv *a;

		if (!matches(e, cat, name, NULL, NULL, until_us))
			continue;
		a = json_get(json_get(e, "args"), sum_key);
		if (a && a->type == J_NUM)
			sum += strtoull(a->text, NULL, 10);
	}
	return sum;
}

double trace_last_end(const struct trace *t, const char *name)
{
	double last = 0;

	for (const struct jv *e = t->events->child; e; e = e->next)
		if (!strcmp(str(e, "ph"), "X") && !strcmp(str(e, "name"), name) &&
		    num(e, "ts") + num(e, "dur") > last)
			last = num(e, "ts") + num(e, "dur");
	return last;
}

bool trace_on_thread(const struct trace *t, const char *thread_name, const char *name, const char *key,
		     const char *value)
{
	const char *tid = NULL;
	uint64_t n = 0;

	for (const struct jv *e = t->events->child; e; e = e->next)
		if (!strcmp(str(e, "ph"), "M") && !strcmp(str(e, "name"), "thread_name") &&
		    !strcmp(json_get(e, "args.name")->text, thread_name))
			tid = json_get(e, "tid")->text;
	if (!tid)
		return false;
	for (const struct jv *e = t->events->child; e; e = e->next) {
		if (!matches(e, NULL, name, key, value, 0))
			continue;
		if (strcmp(json_get(e, "tid")->text, tid))
			return false;
		n++;
	}
	return n > 0;
}

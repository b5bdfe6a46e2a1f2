/* SPDX-License-Identifier: MIT */
/*
 * A tiny JSON reader for the tests (json.h): recursive descent over the
 * text, a tree of values; it aborts when memory runs out.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "json.h"

void json_free(struct jv *v)
{
	while (v) {
		struct jv *next = v->next;

		json_free(v->child);
		free(v->key);
		free(v->text);
		free(v);
		v = next;
	}
}

static const char *json_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

/* A string at *p (after its quote); NULL on a syntax error. */
static char *json_string(const char **p)
{
	const char *s = *p, *e = s;
	char *out, *o;

	/* Its length at most: up to the closing quote (escapes only shrink). */
	while (*e && *e != '"')
		e += e[0] == '\\' && e[1] ? 2 : 1;
	out = o = malloc((size_t)(e - s) + 1);
	if (!out)
		abort();
	for (; *s && *s != '"'; s++) {
		if ((unsigned char)*s < 0x20)
			goto bad;
		if (*s != '\\') {
			*o++ = *s;
			continue;
		}
		switch (*++s) {
		case '"': case '\\': case '/': *o++ = *s; break;
		case 'b': *o++ = '\b'; break;
		case 'f': *o++ = '\f'; break;
		case 'n': *o++ = '\n'; break;
		case 'r': *o++ = '\r'; break;
		case 't': *o++ = '\t'; break;
		case 'u': {
			unsigned int c;

			if (sscanf(s + 1, "%4x", &c) != 1 || !s[1] || !s[2] || !s[3] || !s[4])
				goto bad;
			*o++ = c < 0x80 ? (char)c : '?';
			s += 4;
			break;
		}
		default:
			goto bad;
		}
	}
	if (*s != '"')
		goto bad;
	*o = '\0';
	*p = s + 1;
	return out;
bad:
	free(out);
	return NULL;
}

static struct jv *json_value(const char **p);

/* The members or elements of an object or array at *p (after its bracket). */
static bool json_members(const char **p, struct jv *parent, bool object)
{
	struct jv **tail = &parent->child;
	char close = object ? '}' : ']';

	*p = json_ws(*p);
	if (**p == close) {
		(*p)++;
		return true;
	}
	for (;;) {
		char *key = NULL;
		struct jv *v;

		if (object) {
			if (**p != '"')
				return false;
			(*p)++;
			key = json_string(p);
			*p = json_ws(*p);
			if (!key || **p != ':') {
				free(key);
				return false;
			}
			(*p)++;
		}
		v = json_value(p);
		if (!v) {
			free(key);
			return false;
		}
		v->key = key;
		*tail = v;
		tail = &v->next;
		*p = json_ws(*p);
		if (**p == close) {
			(*p)++;
			return true;
		}
		if (**p != ',')
			return false;
		(*p)++;
		*p = json_ws(*p);
	}
}

static struct jv *json_value(const char **p)
{
	struct jv *v = calloc(1, sizeof(*v));
	const char *s;
	bool ok = true;

	if (!v)
		abort();
	*p = json_ws(*p);
	s = *p;
	if (*s == '{' || *s == '[') {
		v->type = *s == '{' ? J_OBJ : J_ARR;
		*p = s + 1;
		ok = json_members(p, v, v->type == J_OBJ);
	} else if (*s == '"') {
		v->type = J_STR;
		*p = s + 1;
		v->text = json_string(p);
		ok = v->text != NULL;
	} else if (!strncmp(s, "null", 4) || !strncmp(s, "true", 4) || !strncmp(s, "false", 5)) {
		v->type = *s == 'n' ? J_NULL : *s == 't' ? J_TRUE : J_FALSE;
		*p = s + (*s == 'f' ? 5 : 4);
	} else {
		const char *e = s + (*s == '-');

		ok = *e >= '0' && *e <= '9';
		while (*e >= '0' && *e <= '9')
			e++;
		if (*e == '.')
			for (e++; *e >= '0' && *e <= '9'; e++)
				;
		if (*e == 'e' || *e == 'E') {
			e += 1 + (e[1] == '+' || e[1] == '-');
			for (; *e >= '0' && *e <= '9'; e++)
				;
		}
		v->type = J_NUM;
		v->text = strndup(s, (size_t)(e - s));
		*p = e;
	}
	if (!ok) {
		json_free(v);
		return NULL;
	}
	return v;
}

/* The document in text, or NULL if it is not one JSON value. */
struct jv *json_parse(const char *text)
{
	const char *p = text;
	struct jv *v = json_value(&p);

	if (v && *json_ws(p)) {
		json_free(v);
		return NULL;
	}
	return v;
}

/* The value at a dotted path ("pool.in_use", "scenarios.1"), or NULL. */
const struct jv *json_get(const struct jv *v, const char *path)
{
	while (v && *path) {
		size_t len = strcspn(path, ".");
		const struct jv *c = v->child;

		if (v->type == J_OBJ) {
			while (c && (strlen(c->key) != len || strncmp(c->key, path, len)))
				c = c->next;
		} else if (v->type == J_ARR) {
			for (unsigned long i = strtoul(path, NULL, 10); c && i; i--)
				c = c->next;
		} else {
			c = NULL;
		}
		v = c;
		path += len + (path[len] == '.');
	}
	return v;
}


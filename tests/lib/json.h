/* SPDX-License-Identifier: MIT */
/*
 * A tiny JSON reader for the tests, enough for privmem's reports, bench
 * results and traces: json_parse gives a tree of values (NULL if the text
 * is not one JSON value), json_get finds a value by dotted path, and
 * json_free releases the tree.
 */
#ifndef PM_TESTS_JSON_H
#define PM_TESTS_JSON_H

/* A value; a number keeps the text it was written as (u64 counts exceed
 * a double). */
enum jtype { J_NULL, J_FALSE, J_TRUE, J_NUM, J_STR, J_ARR, J_OBJ };

struct jv {
	enum jtype type;
	char *key;              /* the member's name, in an object */
	char *text;             /* J_NUM: as written; J_STR: the string */
	struct jv *child, *next;
};

void json_free(struct jv *v);
/* The document in text, or NULL if it is not one JSON value. */
struct jv *json_parse(const char *text);
/* The value at a dotted path ("pool.in_use", "scenarios.1"), or NULL. */
const struct jv *json_get(const struct jv *v, const char *path);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * The documentation is true to the code it documents:
 *  - docs/api.md names every ioctl the public headers define, every
 *    extension constant (capabilities, guest_memfd flags, VM types,
 *    hypercalls) and every environment variable the library and the CLI
 *    read (found in their sources here, not listed by hand);
 *  - the man page (docs/privmem.1) renders without a warning (man -l, or a
 *    structural check where man is missing) and names every option each
 *    command's --help prints and every environment variable;
 *  - LICENSE is the license every source file's SPDX tag names;
 *  - the public headers speak of the interface, not of the project's
 *    history.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/cli_run.h"

#ifndef PM_SRCDIR
#error "PM_SRCDIR: the source tree (the Makefile defines it)"
#endif

static char *src_file(const char *rel)
{
	char path[8192];

	snprintf(path, sizeof(path), "%s/%s", PM_SRCDIR, rel);
	return read_file(path);
}

/* name appears in text as a whole identifier. */
static bool has_word(const char *text, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = strstr(text, name); p; p = strstr(p + 1, name)) {
		bool before = p == text || !(isalnum((unsigned char)p[-1]) || p[-1] == '_');
		bool after = !(isalnum((unsigned char)p[n]) || p[n] == '_');

		if (before && after)
			return true;
	}
	return false;
}

/* Calls fn(name, arg) for each identifier in text that starts with prefix
 * (and, if `after` is not NULL, is followed by it); returns how many. */
static int each_name(const char *text, const char *prefix, const char *after,
		     void (*fn)(const char *name, void *arg), void *arg)
{
	size_t plen = strlen(prefix);
	int n = 0;

	for (const char *p = strstr(text, prefix); p; p = strstr(p + 1, prefix)) {
		char name[128];
		size_t len = 0;

		if (p > text && (isalnum((unsigned char)p[-1]) || p[-1] == '_'))
			continue;
		while ((isalnum((unsigned char)p[len]) || p[len] == '_') && len < sizeof(name) - 1)
			len++;
		if (len <= plen || (after && strncmp(p + len, after, strlen(after))))
			continue;
		memcpy(name, p, len);
		name[len] = '\0';
		fn(name, arg);
		n++;
	}
	return n;
}

struct doc {
	const char *what;
	const char *text;
};

static void expect_documented(const char *name, void *arg)
{
	const struct doc *d = arg;

	if (!has_word(d->text, name))
		fail_msg("%s does not document %s", d->what, name);
}

static const char *const headers[] = {
	"include/privmem/kvm.h", "include/privmem/privmem.h", "include/privmem/guest.h",
};

/* #define NAME _IO(...), _IOR, _IOW, _IOWR: every ioctl number. */
static void expect_ioctls(const char *header, const struct doc *d)
{
	char *h = src_file(header);
	int n = 0;

	for (const char *p = strstr(h, "#define "); p; p = strstr(p + 1, "#define ")) {
		char name[128], value[16];

		if (sscanf(p, "#define %127[A-Za-z0-9_] %15[_IORW](", name, value) == 2 &&
		    !strncmp(value, "_IO", 3)) {
			expect_documented(name, (void *)d);
			n++;
		}
	}
	free(h);
	assert_true(n > 0);
}

static void test_api_md_names_every_ioctl_of_the_headers(void **state)
{
	char *api = src_file("docs/api.md");
	struct doc d = { "docs/api.md", api };

	for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++)
		expect_ioctls(headers[i], &d);
	free(api);
}

static void test_api_md_names_every_extension_constant(void **state)
{
	static const char *const prefixes[] = { "PM_CAP_", "PM_GUEST_MEMFD_FLAG_", "PM_VM_TYPE_", "PM_HC_",
						"PM_EXIT_", "PM_UCALL_" };
	char *api = src_file("docs/api.md"), *h = src_file("include/privmem/privmem.h");
	char *g = src_file("include/privmem/guest.h");
	struct doc d = { "docs/api.md", api };
	int n = 0;

	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		n += each_name(h, prefixes[i], NULL, expect_documented, &d);
		n += each_name(g, prefixes[i], NULL, expect_documented, &d);
	}
	assert_true(n >= 10);
	free(g);
	free(h);
	free(api);
}

/* The environment variables the code reads: getenv("PRIVMEM_...") in the
 * library, the interposer and the CLI. */
static void collect_env(const char *dir, void (*fn)(const char *name, void *arg), void *arg, int *n)
{
	char path[8192];
	struct dirent *e;
	DIR *d;

	snprintf(path, sizeof(path), "%s/%s", PM_SRCDIR, dir);
	d = opendir(path);
	assert_non_null(d);
	while ((e = readdir(d))) {
		char rel[2048];
		struct stat st;
		char *text;

		if (e->d_name[0] == '.')
			continue;
		snprintf(rel, sizeof(rel), "%s/%s", dir, e->d_name);
		snprintf(path, sizeof(path), "%s/%s", PM_SRCDIR, rel);
		assert_int_equal(stat(path, &st), 0);
		if (S_ISDIR(st.st_mode)) {
			collect_env(rel, fn, arg, n);
			continue;
		}
		if (!strstr(e->d_name, ".c"))
			continue;
		text = src_file(rel);
		for (const char *p = strstr(text, "getenv(\"PRIVMEM_"); p; p = strstr(p + 1, "getenv(\"PRIVMEM_")) {
			char name[64];

			if (sscanf(p, "getenv(\"%63[A-Z_]\")", name) == 1) {
				fn(name, arg);
				(*n)++;
			}
		}
		free(text);
	}
	closedir(d);
}

static void test_environment_variables_are_documented(void **state)
{
	char *api = src_file("docs/api.md"), *man = src_file("docs/privmem.1");
	struct doc d_api = { "docs/api.md", api }, d_man = { "docs/privmem.1", man };
	int n = 0;

	collect_env("src", expect_documented, &d_api, &n);
	collect_env("tools", expect_documented, &d_api, &n);
	collect_env("src", expect_documented, &d_man, &n);
	collect_env("tools", expect_documented, &d_man, &n);
	assert_true(n >= 8);
	free(man);
	free(api);
}

/* ---- the man page ---- */

static void test_man_page_renders_without_warnings(void **state)
{
	char cmd[8400], page[4096];
	char *man = src_file("docs/privmem.1");

	snprintf(page, sizeof(page), "%s/docs/privmem.1", PM_SRCDIR);
	if (system("command -v man >/dev/null 2>&1") == 0) {
		char out[] = "/tmp/privmem_test_docs_XXXXXX", rendered[64];
		int fd = mkstemp(out);
		char *err, *text;

		assert_true(fd >= 0);
		close(fd);
		snprintf(rendered, sizeof(rendered), "%s.out", out);
		snprintf(cmd, sizeof(cmd), "MANWIDTH=80 man -l --warnings '%s' >'%s' 2>'%s'", page, rendered,
			 out);
		assert_int_equal(system(cmd), 0);
		err = read_file(out);
		if (err[0])
			fail_msg("man warns: %s", err);
		text = read_file(rendered);
		assert_non_null(strstr(text, "NAME"));
		assert_non_null(strstr(text, "privmem run"));
		unlink(rendered);
		unlink(out);
		free(text);
		free(err);
	} else {
		static const char *const sections[] = { ".TH PRIVMEM 1", ".SH NAME", ".SH SYNOPSIS",
							".SH DESCRIPTION", ".SH ENVIRONMENT", ".SH EXIT STATUS" };

		for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
			assert_non_null(strstr(man, sections[i]));
	}
	free(man);
}

/* Every long option a command's --help prints is in the man page. */
static void test_man_page_names_every_option(void **state)
{
	static const char *const commands[] = { "run", "bench", "exec", "measure" };
	char *man = src_file("docs/privmem.1");

	for (size_t c = 0; c < sizeof(commands) / sizeof(commands[0]); c++) {
		const char *const args[] = { commands[c], "--help", NULL };
		struct result r = run_cli(args);
		int n = 0;

		expect_status(&r, 0);
		for (const char *p = strstr(r.out, "--"); p; p = strstr(p + 2, "--")) {
			char opt[64], roff[80];

			if (sscanf(p + 2, "%63[a-z-]", opt) != 1)
				continue;
			snprintf(roff, sizeof(roff), "\\-\\-%s", opt);
			for (char *q = roff + 4; *q; q++)
				if (*q == '-')
					memmove(q + 1, q, strlen(q) + 1), *q++ = '\\';
			if (!strstr(man, roff))
				fail_msg("privmem.1 does not document %s's --%s (%s)", commands[c], opt, roff);
			n++;
		}
		assert_true(n >= 4);
		result_free(&r);
	}
	free(man);
}

/* ---- license and headers ---- */

static void expect_spdx_mit(const char *dir, int *files)
{
	char path[8192];
	struct dirent *e;
	DIR *d;

	snprintf(path, sizeof(path), "%s/%s", PM_SRCDIR, dir);
	d = opendir(path);
	assert_non_null(d);
	while ((e = readdir(d))) {
		char rel[2048];
		struct stat st;
		const char *tag;
		char *text;

		if (e->d_name[0] == '.')
			continue;
		snprintf(rel, sizeof(rel), "%s/%s", dir, e->d_name);
		snprintf(path, sizeof(path), "%s/%s", PM_SRCDIR, rel);
		assert_int_equal(stat(path, &st), 0);
		if (S_ISDIR(st.st_mode)) {
			expect_spdx_mit(rel, files);
			continue;
		}
		text = src_file(rel);
		tag = strstr(text, "SPDX-License-Identifier:");
		if (tag) {
			if (strncmp(tag, "SPDX-License-Identifier: MIT", 28) || isalnum((unsigned char)tag[28]))
				fail_msg("%s: its SPDX tag is not MIT", rel);
			(*files)++;
		}
		free(text);
	}
	closedir(d);
}

static void test_license_is_the_one_the_spdx_tags_name(void **state)
{
	char *license = src_file("LICENSE");
	int files = 0;

	assert_true(!strncmp(license, "MIT License", 11));
	assert_non_null(strstr(license, "Permission is hereby granted, free of charge, to any person obtaining a copy"));
	assert_non_null(strstr(license, "THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND"));
	expect_spdx_mit("src", &files);
	expect_spdx_mit("include", &files);
	expect_spdx_mit("tools", &files);
	expect_spdx_mit("tests", &files);
	expect_spdx_mit("examples", &files);
	assert_true(files > 100);
	free(license);
}

/* No seed, issue or session numbers in the public headers. */
static void test_public_headers_speak_of_the_interface(void **state)
{
	static const char *const history[] = { "seed-0", "seed 0", "seed0", "issue 1", "issue #", "session" };

	for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
		char *h = src_file(headers[i]);

		for (char *p = h; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		for (size_t k = 0; k < sizeof(history) / sizeof(history[0]); k++)
			if (strstr(h, history[k]))
				fail_msg("%s speaks of \"%s\"", headers[i], history[k]);
		free(h);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_api_md_names_every_ioctl_of_the_headers),
		cmocka_unit_test(test_api_md_names_every_extension_constant),
		cmocka_unit_test(test_environment_variables_are_documented),
		cmocka_unit_test(test_man_page_renders_without_warnings),
		cmocka_unit_test(test_man_page_names_every_option),
		cmocka_unit_test(test_license_is_the_one_the_spdx_tags_name),
		cmocka_unit_test(test_public_headers_speak_of_the_interface),
	};

	if (cli_init())
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}

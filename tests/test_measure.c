/* SPDX-License-Identifier: MIT */
/*
 * privmem measure and privmem run --firmware, against an independent
 * implementation: tests/measure_ref.py (Python's hashlib and struct over
 * the published layouts; it shares no code with privmem) computes every
 * expected digest at test time.
 *
 * Images: a small one built by hand (tests/lib/fwimg.c), and Debian 12's
 * OVMF.fd (package ovmf, which carries the SEV and TDX metadata), fetched
 * by scripts/fetch-ovmf.sh into build/ovmf (or named by PRIVMEM_OVMF);
 * the Debian tests skip, saying why, when it is not there. Malformed
 * images: each broken field is an error naming it, never a crash.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../tools/fw_image.h"
#include "../tools/measure.h"
#include "lib/fwimg.h"

static char root[PATH_MAX];      /* the source tree (holds tests/measure_ref.py) */
static char cli[PATH_MAX];       /* build/privmem */
static char tmp[PATH_MAX];       /* a directory of this run's files */
static char ovmf[PATH_MAX];      /* Debian's OVMF.fd, or "" */

/* ---- helpers ---- */

/* Runs a shell command; its stdout's first line in out (may be NULL), its
 * stderr in err (may be NULL); returns the exit status (-1: no exit). */
__attribute__((format(printf, 5, 6)))
static int sh(char *out, size_t out_n, char *err, size_t err_n, const char *fmt, ...)
{
	char cmd[8192], errfile[PATH_MAX + 16];
	va_list ap;
	FILE *p;
	int st, n;

	va_start(ap, fmt);
	n = vsnprintf(cmd, 4096, fmt, ap);
	va_end(ap);
	assert_true(n > 0 && n < 4096);
	snprintf(errfile, sizeof(errfile), "%s/stderr", tmp);
	strcat(cmd, " 2>");
	strcat(cmd, errfile);
	p = popen(cmd, "r");
	assert_non_null(p);
	if (out) {
		out[0] = '\0';
		if (fgets(out, (int)out_n, p))
			out[strcspn(out, "\n")] = '\0';
	}
	while (fgetc(p) != EOF)
		;
	st = pclose(p);
	if (err) {
		FILE *e = fopen(errfile, "r");
		size_t got = e ? fread(err, 1, err_n - 1, e) : 0;

		err[got] = 0;
		if (e)
			fclose(e);
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The reference's digest for `args` (measure_ref.py KIND FILE ARGS). */
__attribute__((format(printf, 2, 3)))
static void reference(char out[128], const char *fmt, ...)
{
	char args[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	assert_int_equal(sh(out, 128, NULL, 0, "python3 %s/tests/measure_ref.py %s", root, args), 0);
	assert_int_equal(strlen(out), 96);
}

__attribute__((format(printf, 2, 3)))
static void privmem(char out[128], const char *fmt, ...)
{
	char args[2048], err[512];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	st = sh(out, 128, err, sizeof(err), "%s %s", cli, args);
	if (st)
		fprintf(stderr, "privmem %s: exit %d: %s\n", args, st, err);
	assert_int_equal(st, 0);
}

static void write_file(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

static char image_path[PATH_MAX + 16];

/* The hand-built image, in a file. */
static const char *hand_built(void)
{
	uint8_t *img = malloc(FWIMG_SIZE);

	assert_non_null(img);
	fwimg_build(img);
	snprintf(image_path, sizeof(image_path), "%s/fw.fd", tmp);
	write_file(image_path, img, FWIMG_SIZE);
	free(img);
	return image_path;
}

/* ---- the hand-built image ---- */

static void test_parser_reads_every_field_of_the_hand_built_image(void **state)
{
	uint8_t *img = malloc(FWIMG_SIZE);
	char err[FW_ERR_LEN] = "";
	struct fw_image fw;

	fwimg_build(img);
	assert_int_equal(fw_image_parse(&fw, img, FWIMG_SIZE, err), 0);
	assert_int_equal(fw.gpa, 0x100000000ULL - FWIMG_SIZE);
	assert_true(fw.has_reset_block);
	assert_int_equal(fw.ap_reset_eip, FWIMG_AP_EIP);
	assert_true(fw.has_hash_table);
	assert_int_equal(fw.hash_base, 0x805100);
	assert_int_equal(fw.hash_size, 0x400);
	assert_true(fw.has_sev);
	assert_int_equal(fw.nr_sev, FWIMG_SEV_SECTIONS);
	assert_int_equal(fw.sev[2].gpa, 0x803000);
	assert_int_equal(fw.sev[2].type, FW_SEV_CPUID);
	assert_int_equal(fw.sev[4].type, FW_SEV_KERNEL_HASHES);
	assert_int_equal(fw.sev[5].size, 0x3000);
	assert_true(fw.has_tdx);
	assert_int_equal(fw.nr_tdx, FWIMG_TDX_SECTIONS);
	assert_int_equal(fw.tdx[0].data_offset, 0x8000);
	assert_int_equal(fw.tdx[1].raw_size, 0x3000);
	assert_int_equal(fw.tdx[1].mem_size, 0x8000);
	assert_int_equal(fw.tdx[4].type, FW_TDX_PERM_MEM);
	assert_int_equal(fw.tdx[4].attributes, FW_TDX_PAGE_AUG);
	free(img);
}

static void test_snp_digest_of_the_hand_built_image_matches_the_reference(void **state)
{
	const char *f = hand_built();
	char want[128], got[128];

	for (unsigned int v = 1; v <= 3; v++) {
		reference(want, "snp %s --vcpus %u", f, v);
		privmem(got, "measure snp --firmware %s --vcpus %u", f, v);
		assert_string_equal(got, want);
	}
	reference(want, "snp %s --vcpus 2 --vcpu-sig 0xa10f10 --guest-features 0x21", f);
	privmem(got, "measure snp --firmware %s --vcpus 2 --vcpu-type EPYC-Genoa --guest-features 0x21", f);
	assert_string_equal(got, want);
	privmem(got, "measure snp --firmware %s --vcpus 2 --vcpu-sig 0xa10f10 --guest-features 33", f);
	assert_string_equal(got, want);
	/* Another vCPU type is another digest. */
	privmem(got, "measure snp --firmware %s --vcpus 2 --vcpu-type EPYC-Milan --guest-features 0x21", f);
	assert_string_not_equal(got, want);
}

static void test_snp_digest_with_kernel_hashes_matches_the_reference(void **state)
{
	const char *f = hand_built();
	char want[128], got[128], kernel[PATH_MAX + 16], initrd[PATH_MAX + 16];
	uint8_t blob[10000];

	for (size_t i = 0; i < sizeof(blob); i++)
		blob[i] = (uint8_t)(i * 31 + 7);
	snprintf(kernel, sizeof(kernel), "%s/vmlinuz", tmp);
	snprintf(initrd, sizeof(initrd), "%s/initrd", tmp);
	write_file(kernel, blob, sizeof(blob));
	write_file(initrd, blob, 777);
	reference(want, "snp %s --vcpus 2 --kernel %s --initrd %s --append 'console=ttyS0 quiet'", f,
		  kernel, initrd);
	privmem(got, "measure snp --firmware %s --vcpus 2 --kernel %s --initrd %s "
		"--append 'console=ttyS0 quiet'", f, kernel, initrd);
	assert_string_equal(got, want);
	reference(want, "snp %s --kernel %s", f, kernel);
	privmem(got, "measure snp --firmware %s --kernel %s", f, kernel);
	assert_string_equal(got, want);
	/* Without a kernel the hashes page is ZERO: another digest. */
	privmem(want, "measure snp --firmware %s", f);
	assert_string_not_equal(got, want);
}

static void test_tdx_mrtd_of_the_hand_built_image_matches_the_reference(void **state)
{
	const char *f = hand_built();
	char want[128], got[128], other[128];

	reference(want, "tdx %s", f);
	privmem(got, "measure tdx --firmware %s", f);
	assert_string_equal(got, want);
	reference(want, "tdx %s --add-then-extend", f);
	privmem(other, "measure tdx --firmware %s --add-then-extend", f);
	assert_string_equal(other, want);
	assert_string_not_equal(got, other);
}

static void run_digest(char out[128], const char *args, const char *label)
{
	char line[256];
	char cmd[8192];
	FILE *p;

	assert_true(snprintf(cmd, sizeof(cmd), "%s run %s 2>&1", cli, args) < (int)sizeof(cmd));
	p = popen(cmd, "r");
	assert_non_null(p);
	out[0] = '\0';
	while (fgets(line, sizeof(line), p))
		if (!strncmp(line, label, strlen(label))) {
			snprintf(out, 128, "%.96s", line + strlen(label));
		}
	assert_int_equal(pclose(p), 0);              /* the run passed */
	assert_int_equal(strlen(out), 96);
}

static void test_run_with_the_hand_built_firmware_reports_the_measured_digest(void **state)
{
	const char *f = hand_built();
	char want[128], got[128], args[PATH_MAX + 128];

	reference(want, "snp %s --vcpus 2", f);
	snprintf(args, sizeof(args), "--vm-type snp --firmware %s --vcpus 2 --mem 64M --iterations 10", f);
	run_digest(got, args, "launch digest  ");
	assert_string_equal(got, want);
	reference(want, "tdx %s", f);
	snprintf(args, sizeof(args), "--vm-type tdx --firmware %s --vcpus 2 --mem 64M --iterations 10", f);
	run_digest(got, args, "MRTD           ");
	assert_string_equal(got, want);
}

/* ---- Debian's OVMF ---- */

static void test_debian_ovmf_digests_match_the_reference(void **state)
{
	char want[128], got[128];
	static const unsigned int vcpus[] = { 1, 2, 4, 64 };

	if (!ovmf[0]) {
		fprintf(stderr, "skipped: Debian's OVMF.fd is not in build/ovmf (scripts/fetch-ovmf.sh "
			"fetches it) nor named by PRIVMEM_OVMF\n");
		skip();
	}
	for (size_t i = 0; i < sizeof(vcpus) / sizeof(vcpus[0]); i++) {
		reference(want, "snp %s --vcpus %u", ovmf, vcpus[i]);
		privmem(got, "measure snp --firmware %s --vcpus %u", ovmf, vcpus[i]);
		assert_string_equal(got, want);
		fprintf(stderr, "Debian OVMF, SNP, %u vCPU(s), EPYC-v4: %s\n", vcpus[i], got);
	}
	reference(want, "tdx %s", ovmf);
	privmem(got, "measure tdx --firmware %s", ovmf);
	assert_string_equal(got, want);
	fprintf(stderr, "Debian OVMF, TDX MRTD: %s\n", got);
	reference(want, "tdx %s --add-then-extend", ovmf);
	privmem(got, "measure tdx --firmware %s --add-then-extend", ovmf);
	assert_string_equal(got, want);
}

static void test_debian_ovmf_run_reports_the_measured_digest(void **state)
{
	char want[128], got[128], args[PATH_MAX + 128];

	if (!ovmf[0]) {
		fprintf(stderr, "skipped: Debian's OVMF.fd is not there (see above)\n");
		skip();
	}
	reference(want, "snp %s --vcpus 3", ovmf);
	snprintf(args, sizeof(args), "--vm-type snp --firmware %s --vcpus 3 --mem 96M --iterations 10",
		 ovmf);
	run_digest(got, args, "launch digest  ");
	assert_string_equal(got, want);
	reference(want, "tdx %s", ovmf);
	snprintf(args, sizeof(args), "--vm-type tdx --firmware %s --vcpus 2 --mem 64M --iterations 10",
		 ovmf);
	run_digest(got, args, "MRTD           ");
	assert_string_equal(got, want);
}

static void test_debian_ovmf_cannot_measure_a_kernel(void **state)
{
	char err[512];

	if (!ovmf[0]) {
		fprintf(stderr, "skipped: Debian's OVMF.fd is not there (see above)\n");
		skip();
	}
	/* Its SEV metadata has no SNP_KERNEL_HASHES section. */
	assert_int_equal(sh(NULL, 0, err, sizeof(err), "%s measure snp --firmware %s --kernel %s", cli,
			    ovmf, ovmf), 2);
	assert_non_null(strstr(err, "SNP_KERNEL_HASHES"));
}

/* ---- malformed images ---- */

struct breakage {
	const char *what;
	void (*edit)(uint8_t *img, size_t *size);
	const char *message;       /* a part of the error */
};

static void truncate_half_page(uint8_t *img, size_t *size) { *size -= 2048; }
static void truncate_to_a_page(uint8_t *img, size_t *size)
{
	memmove(img, img + *size - 4096, 4096);     /* the table's page, the metadata gone */
	*size = 4096;
}
static void footer_guid(uint8_t *img, size_t *size) { img[FWIMG_TABLE_END - 1] ^= 0xff; }
static void table_too_long(uint8_t *img, size_t *size) { fwimg_put16(img + FWIMG_FOOTER_LEN, 0xfff0); }
static void table_too_short(uint8_t *img, size_t *size) { fwimg_put16(img + FWIMG_FOOTER_LEN, 17); }
static void entry_len_zero(uint8_t *img, size_t *size)
{
	fwimg_put16(img + fwimg_entry_len_off[FWIMG_E_UNKNOWN], 0);
}
static void entry_len_past_table(uint8_t *img, size_t *size)
{
	fwimg_put16(img + fwimg_entry_len_off[FWIMG_E_TDX], 0x3000);
}
static void entry_data_short(uint8_t *img, size_t *size)
{
	/* The hash table entry claims 2 data bytes: the rest of the table no
	 * longer parses as entries, or the entry is too short. */
	fwimg_put16(img + fwimg_entry_len_off[FWIMG_E_HASH], 20);
}
static void sev_offset_beyond_image(uint8_t *img, size_t *size)
{
	fwimg_put32(img + fwimg_entry_len_off[FWIMG_E_SEV] - 4, FWIMG_SIZE + 0x1000);
}
static void sev_signature(uint8_t *img, size_t *size) { img[FWIMG_SEV_META] = 'B'; }
static void sev_version(uint8_t *img, size_t *size) { fwimg_put32(img + FWIMG_SEV_META + 8, 2); }
static void sev_count(uint8_t *img, size_t *size) { fwimg_put32(img + FWIMG_SEV_META + 12, 5000); }
static void sev_length(uint8_t *img, size_t *size) { fwimg_put32(img + FWIMG_SEV_META + 4, 20); }
static void sev_unaligned(uint8_t *img, size_t *size)
{
	fwimg_put32(img + FWIMG_SEV_META + 16 + 12 * 5, 0x806800);
}
static void sev_overlap(uint8_t *img, size_t *size)
{
	fwimg_put32(img + FWIMG_SEV_META + 16 + 12 * 5, 0x801000);   /* over the first section */
}
static void sev_over_flash(uint8_t *img, size_t *size)
{
	fwimg_put32(img + FWIMG_SEV_META + 16 + 12 * 5, 0xffff0000);
}
static void sev_past_4g(uint8_t *img, size_t *size)
{
	fwimg_put32(img + FWIMG_SEV_META + 16 + 12 * 5, 0xfffff000);
}
static void sev_type(uint8_t *img, size_t *size) { fwimg_put32(img + FWIMG_SEV_META + 16 + 8, 9); }
static void sev_secrets_two_pages(uint8_t *img, size_t *size)
{
	fwimg_put32(img + FWIMG_SEV_META + 16 + 12 + 4, 0x2000);
}
static void tdx_data_beyond_image(uint8_t *img, size_t *size)
{
	fwimg_put32(img + FWIMG_TDX_META + 16, 0xfffff000);        /* BFV's data offset */
}
static void tdx_raw_larger_than_memory(uint8_t *img, size_t *size)
{
	fwimg_put32(img + FWIMG_TDX_META + 16 + 32 + 4, 0x9000);   /* CFV's raw size */
}
static void tdx_overlap(uint8_t *img, size_t *size)
{
	fwimg_put64(img + FWIMG_TDX_META + 16 + 96 + 8, 0x901000); /* TempMem into TD_HOB */
}
static void tdx_unaligned(uint8_t *img, size_t *size)
{
	fwimg_put64(img + FWIMG_TDX_META + 16 + 64 + 16, 0x1800);  /* TD_HOB's size */
}
static void tdx_huge(uint8_t *img, size_t *size)
{
	fwimg_put64(img + FWIMG_TDX_META + 16 + 96 + 8, 1ULL << 32);    /* TempMem of 1 TiB */
	fwimg_put64(img + FWIMG_TDX_META + 16 + 96 + 16, 1ULL << 40);
}
static void tdx_past_52_bits(uint8_t *img, size_t *size)
{
	fwimg_put64(img + FWIMG_TDX_META + 16 + 96 + 8, 1ULL << 52);
}
static void tdx_attributes(uint8_t *img, size_t *size) { fwimg_put32(img + FWIMG_TDX_META + 16 + 28, 4); }
static void tdx_type(uint8_t *img, size_t *size) { fwimg_put32(img + FWIMG_TDX_META + 16 + 24, 7); }
static void tdx_signature(uint8_t *img, size_t *size) { img[FWIMG_TDX_META + 3] = 'X'; }
static void tdx_offset_too_small(uint8_t *img, size_t *size)
{
	fwimg_put32(img + fwimg_entry_len_off[FWIMG_E_TDX] - 4, 8);
}
static void duplicate_entry(uint8_t *img, size_t *size)
{
	/* The unknown entry's GUID becomes the reset block's. */
	static const uint8_t g_reset[16] = { 0xde, 0x71, 0xf7, 0x00, 0x7e, 0x1a, 0xcb, 0x4f,
					     0x89, 0x0e, 0x68, 0xc7, 0x7e, 0x2f, 0xb4, 0x4e };

	memcpy(img + fwimg_entry_len_off[FWIMG_E_UNKNOWN] + 2, g_reset, 16);
}

static const struct breakage breakages[] = {
	{ "truncated to half a page", truncate_half_page, "not a whole number of 4 KiB pages" },
	{ "truncated to its last page", truncate_to_a_page, "metadata offset 0xe000 from the end: outside" },
	{ "no footer GUID", footer_guid, "no OVMF GUID table" },
	{ "table longer than the image", table_too_long, "GUID table length" },
	{ "table shorter than its footer", table_too_short, "GUID table length" },
	{ "an entry of length 0", entry_len_zero, "length 0 out of bounds" },
	{ "an entry longer than the table", entry_len_past_table, "out of bounds" },
	{ "an entry too short for its data", entry_data_short, "SEV hash table GUID entry: 2 data bytes" },
	{ "SEV metadata offset past the start", sev_offset_beyond_image, "outside the image" },
	{ "SEV signature", sev_signature, "no \"ASEV\" signature" },
	{ "SEV version", sev_version, "version 2" },
	{ "SEV section count", sev_count, "5000 sections" },
	{ "SEV length", sev_length, "length 20 does not fit" },
	{ "SEV section unaligned", sev_unaligned, "not whole pages" },
	{ "SEV sections overlapping", sev_overlap, "sections 0 and 5 overlap" },
	{ "SEV section over the flash", sev_over_flash, "overlaps the firmware image" },
	{ "SEV section past 4 GiB", sev_past_4g, "beyond 4 GiB" },
	{ "SEV section type", sev_type, "unknown type 0x9" },
	{ "SEV secrets of two pages", sev_secrets_two_pages, "must be one page" },
	{ "TDX data past the image", tdx_data_beyond_image, "beyond the image" },
	{ "TDX raw larger than memory", tdx_raw_larger_than_memory, "larger than its memory" },
	{ "TDX sections overlapping", tdx_overlap, "sections 2 and 3 overlap" },
	{ "TDX section unaligned", tdx_unaligned, "not whole pages" },
	{ "TDX sections too large in all", tdx_huge, "at most 256 MiB" },
	{ "TDX section past 52 bits", tdx_past_52_bits, "beyond 52 bits" },
	{ "TDX attributes", tdx_attributes, "unknown attributes 0x4" },
	{ "TDX section type", tdx_type, "unknown type 7" },
	{ "TDX signature", tdx_signature, "no \"TDVF\" signature" },
	{ "TDX metadata offset inside the header", tdx_offset_too_small, "outside the image" },
	{ "a GUID twice", duplicate_entry, "a second entry with the same GUID" },
};

static void test_each_malformed_image_is_an_error_that_says_what(void **state)
{
	uint8_t *img = malloc(FWIMG_SIZE);

	assert_non_null(img);
	for (size_t i = 0; i < sizeof(breakages) / sizeof(breakages[0]); i++) {
		char err[FW_ERR_LEN] = "";
		struct fw_image fw;
		size_t size = FWIMG_SIZE;
		uint8_t *exact;

		fwimg_build(img);
		breakages[i].edit(img, &size);
		exact = malloc(size);                  /* a read past it is past the allocation */
		assert_non_null(exact);
		memcpy(exact, img, size);
		if (fw_image_parse(&fw, exact, size, err) != -EINVAL || !strstr(err, breakages[i].message))
			fail_msg("%s: got \"%s\", want an error with \"%s\"", breakages[i].what, err,
				 breakages[i].message);
		free(exact);
	}
	free(img);
}

static void test_the_cli_exits_2_on_a_bad_image_or_file(void **state)
{
	uint8_t *img = malloc(FWIMG_SIZE);
	char path[PATH_MAX + 16], err[512];
	size_t size = FWIMG_SIZE;

	fwimg_build(img);
	truncate_half_page(img, &size);
	snprintf(path, sizeof(path), "%s/short.fd", tmp);
	write_file(path, img, size);
	free(img);
	assert_int_equal(sh(NULL, 0, err, sizeof(err), "%s measure snp --firmware %s", cli, path), 2);
	assert_non_null(strstr(err, "privmem: measure snp: image size"));
	assert_int_equal(sh(NULL, 0, err, sizeof(err), "%s measure tdx --firmware %s/none.fd", cli, tmp), 2);
	assert_non_null(strstr(err, "No such file"));
	assert_int_equal(sh(NULL, 0, err, sizeof(err), "%s run --vm-type snp --firmware %s", cli, path), 2);
	assert_non_null(strstr(err, "--firmware"));
}

static void test_measure_usage_errors_exit_2(void **state)
{
	const char *f = hand_built();
	char out[256], err[1024];

	assert_int_equal(sh(out, sizeof(out), NULL, 0, "%s measure --help", cli), 0);
	assert_non_null(strstr(out, "usage: privmem measure snp"));
	assert_int_equal(sh(NULL, 0, err, sizeof(err), "%s measure --firmware %s", cli, f), 2);
	assert_non_null(strstr(err, "snp or tdx"));
	assert_int_equal(sh(NULL, 0, err, sizeof(err), "%s measure sev --firmware %s", cli, f), 2);
	assert_int_equal(sh(NULL, 0, err, sizeof(err), "%s measure snp", cli), 2);
	assert_non_null(strstr(err, "--firmware"));
	assert_int_equal(sh(NULL, 0, err, sizeof(err), "%s measure tdx --firmware %s --vcpus 2", cli, f), 2);
	assert_non_null(strstr(err, "applies to snp only"));
	assert_int_equal(sh(NULL, 0, err, sizeof(err), "%s measure snp --firmware %s --add-then-extend",
			    cli, f), 2);
	assert_int_equal(sh(NULL, 0, err, sizeof(err), "%s measure snp --firmware %s --initrd %s", cli,
			    f, f), 2);
	assert_int_equal(sh(NULL, 0, err, sizeof(err), "%s measure snp --firmware %s --vcpus 0", cli, f), 2);
	assert_int_equal(sh(NULL, 0, err, sizeof(err), "%s measure snp --firmware %s --vcpus 2x", cli, f), 2);
	assert_int_equal(sh(NULL, 0, err, sizeof(err), "%s measure snp --firmware %s --vcpu-type EPYC-v9",
			    cli, f), 2);
	assert_int_equal(sh(NULL, 0, err, sizeof(err), "%s measure snp --firmware %s --guest-features -1",
			    cli, f), 2);
	assert_int_equal(sh(NULL, 0, err, sizeof(err), "%s run --vm-type sw --firmware %s", cli, f), 2);
	assert_non_null(strstr(err, "snp and tdx only"));
}

static int find_paths(void)
{
	char self[PATH_MAX], dir[PATH_MAX], probe[PATH_MAX + 32];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	const char *env = getenv("PRIVMEM_OVMF");

	if (n <= 0)
		return -1;
	self[n] = '\0';
	snprintf(dir, sizeof(dir), "%s", dirname(self));
	if (snprintf(cli, sizeof(cli), "%s/../privmem", dir) >= (int)sizeof(cli))
		return -1;
	/* The source tree: up from build/[x/]tests until tests/measure_ref.py. */
	snprintf(root, sizeof(root), "%s", dir);
	for (int up = 0; up < 6; up++) {
		snprintf(probe, sizeof(probe), "%s/tests/measure_ref.py", root);
		if (!access(probe, R_OK))
			break;
		snprintf(root, sizeof(root), "%s", dirname(root));
	}
	if (access(probe, R_OK) || access(cli, X_OK))
		return -1;
	if (snprintf(probe, sizeof(probe), "%s/build/ovmf/usr/share/ovmf/OVMF.fd", root) >=
	    (int)sizeof(probe))
		return -1;
	if (env && *env && snprintf(ovmf, sizeof(ovmf), "%s", env) >= (int)sizeof(ovmf))
		return -1;
	if (!(env && *env) && !access(probe, R_OK) &&
	    snprintf(ovmf, sizeof(ovmf), "%s", probe) >= (int)sizeof(ovmf))
		return -1;
	snprintf(tmp, sizeof(tmp), "/tmp/privmem-measure-XXXXXX");
	return mkdtemp(tmp) ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parser_reads_every_field_of_the_hand_built_image),
		cmocka_unit_test(test_snp_digest_of_the_hand_built_image_matches_the_reference),
		cmocka_unit_test(test_snp_digest_with_kernel_hashes_matches_the_reference),
		cmocka_unit_test(test_tdx_mrtd_of_the_hand_built_image_matches_the_reference),
		cmocka_unit_test(test_run_with_the_hand_built_firmware_reports_the_measured_digest),
		cmocka_unit_test(test_debian_ovmf_digests_match_the_reference),
		cmocka_unit_test(test_debian_ovmf_run_reports_the_measured_digest),
		cmocka_unit_test(test_debian_ovmf_cannot_measure_a_kernel),
		cmocka_unit_test(test_each_malformed_image_is_an_error_that_says_what),
		cmocka_unit_test(test_the_cli_exits_2_on_a_bad_image_or_file),
		cmocka_unit_test(test_measure_usage_errors_exit_2),
	};
	char cmd[PATH_MAX + 16];
	int r;

	if (find_paths()) {
		fprintf(stderr, "test_measure: cannot find build/privmem and tests/measure_ref.py\n");
		return 1;
	}
	r = cmocka_run_group_tests(tests, NULL, NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
	if (system(cmd))
		r = r ? r : 1;
	return r;
}

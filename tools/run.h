/* SPDX-License-Identifier: MIT */
/*
 * privmem run: what a scenario runner is. run.c parses the options into
 * one struct run_opts, picks the runner of the VM type from its table and
 * prints the report the runner filled (report.h), as text or JSON. A
 * runner sets up its VM, runs its guests, and fills the report: rows for
 * every figure and the text lines that show them. The report sections
 * every runner has (the run's header, the VM's statistics, the checks)
 * are built by the helpers below, in run.c.
 *
 * Runners: run_sw.c (software-protected, default and pKVM VMs: the
 * convert, bounce, accept and virtio scenarios), run_snp.c (SEV-SNP),
 * run_tdx.c (TDX), run_realm.c (Arm CCA realms).
 */
#ifndef PM_TOOLS_RUN_H
#define PM_TOOLS_RUN_H

#include <stdbool.h>
#include <stdint.h>
#include "report.h"
#include "vmm.h"

/* run_sw.c's scenarios (--scenario); the others have one scenario each. */
enum run_scenario { SC_CONVERT, SC_BOUNCE, SC_ACCEPT, SC_VIRTIO, SC_NR, SC_DEFAULT = SC_NR };
extern const char *const run_scenario_names[SC_NR];

struct run_opts {
	const char *vm_type;            /* the --vm-type name, as reported */
	unsigned long type;             /* its KVM VM type */
	uint64_t mem;                   /* guest RAM, bytes */
	int vcpus;
	enum run_scenario scenario;     /* run_sw.c only */
	unsigned int seed;
	unsigned int iterations;        /* per vCPU; 0: the runner's default */
	unsigned int busy_per_million;  /* tdx: OPERAND_BUSY injected by the module */
	bool no_huge;                   /* tdx, realm: private pages at 4K only */
	bool progress;                  /* show progress on stderr while it runs */
	unsigned int stall_s;           /* give up after this long without progress */
	const char *firmware;           /* snp, tdx: launch this OVMF image (NULL: the
	                                 * runner's own small image) */
};

/* run_fw.c: the image of --firmware, loaded and checked against the VM's
 * layout: its sections in guest RAM lie below `ram_end` (2 MiB aligned;
 * the runner's guests work above it), the flash (the image, at 4 GiB -
 * size) above guest RAM. The runners launch it as QEMU does; privmem's
 * vCPUs do not execute it: the launch (and so its measurement) is what
 * the run shows. */
struct fw_image;
struct run_fw {
	uint8_t *data;                  /* the file's bytes, page aligned */
	struct fw_image *img;
	uint64_t ram_end;
};
/* 0, or the exit status (2: a bad image or one that does not fit --mem;
 * 1: out of memory) with a message. tdx picks the metadata checked. */
int run_fw_load(const struct run_opts *o, bool tdx, struct run_fw *fw);
void run_fw_free(struct run_fw *fw);

/* A runner: 0 when the report is complete (the run passed or failed:
 * report->failed), or the exit status when there is no report (1: the VM
 * could not be set up, 2: options it cannot run with), with a message. */
typedef int (*run_fn)(const struct run_opts *o, struct report *rep);

int run_sw(const struct run_opts *o, struct report *rep);
int run_snp(const struct run_opts *o, struct report *rep);
int run_tdx(const struct run_opts *o, struct report *rep);
int run_realm(const struct run_opts *o, struct report *rep);

/* The progress line on stderr (o->progress: a tty) while the vCPUs run:
 * vmm_run_all's tick, its argument the struct timespec the run began at;
 * and clearing it when they are done. */
void run_progress_tick(struct vmm *m, void *t0);
void run_progress_clear(void);

/* The first line: "privmem run: vm-type T, M MiB, N vCPUs, seed S" and
 * then `more` (a template; the rows it names are the runner's). The rows
 * it shows (schema, version, vm_type, mem_bytes, vcpus, seed) are run.c's. */
void run_report_header(struct report *rep, const char *more);

/* The VM's statistics and the frame pool's, as top-level rows and
 * sections (no lines: each runner shows its own choice): exits.<reason>,
 * the VMM's conversions, faults, mapped.<level>, mappings_present.<level>,
 * zapped, splits, tlb_shootdowns, pool.<figure>. */
void run_report_vm(struct report *rep, struct vmm *m);

/* The end of every report: the checks that ran (names[c], passed[c] and
 * failed[c] for c < n), the guest's failure (NULL: none), the result: FAIL
 * (and rep->failed) if a check failed, the guest failed, or
 * `other_failure` (what the runner found beyond its checks). */
void run_report_checks(struct report *rep, const char *const *names, const uint64_t *passed,
		       const uint64_t *failed, int n, const char *guest_failure, bool other_failure);

/* Guest data of the SNP and realm scenarios (run_pages.c): the 8-byte
 * value of address a under seed (never 0); pages [gpa, gpa + n pages)
 * stamped or checked at their first and last 8 bytes, each address ORed
 * with `alias` (the C-bit or the unprotected IPA bit) while the value is
 * of the address without it; `zero`: the pages must read 0. */
uint64_t run_pattern(uint64_t a, uint64_t seed);
void run_guest_stamp(struct pm_guest *g, uint64_t gpa, uint64_t n, uint64_t seed, uint64_t alias);
bool run_guest_pages_hold(struct pm_guest *g, uint64_t gpa, uint64_t n, uint64_t seed, bool zero,
			  uint64_t alias);

#endif

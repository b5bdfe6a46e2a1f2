/* SPDX-License-Identifier: MIT */
/*
 * privmem run: run a protected VM scenario and report on it.
 *
 * The options become one struct run_opts; the VM type picks the scenario
 * runner from the table below (run.h); the runner fills one report
 * (report.h), which is printed as text or as one JSON object (or both:
 * --json-file). The JSON carries every row of the report, the text the
 * rows its lines name, so the JSON holds every figure the text shows. Its
 * first members say what it is: "schema" (the layout's version, below),
 * "version" (privmem's) and "vm_type".
 *
 * This file also builds the report sections every runner shares (run.h):
 * the header, the VM's statistics and the checks.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"
#include "memlog.h"
#include "plot.h"
#include "run.h"

/* The JSON layout's version: 1 is the layout of the reports privmem
 * printed before it had one, with members added (never moved or removed). */
#define RUN_REPORT_SCHEMA 1

#define MIB ((uint64_t)1 << 20)

/* The VM type `privmem run` runs without --vm-type. */
#define RUN_DEFAULT_VM_TYPE "snp"

static const struct runner {
	unsigned long type;          /* --vm-type (cli_parse_vm_type) */
	run_fn run;
} runners[] = {
	{ KVM_X86_SW_PROTECTED_VM, run_sw },
	{ KVM_X86_DEFAULT_VM, run_sw },
	{ PM_VM_TYPE_PKVM, run_sw },
	{ KVM_X86_SNP_VM, run_snp },
	{ KVM_X86_TDX_VM, run_tdx },
	{ PM_VM_TYPE_REALM, run_realm },
};

/* ---- options ---- */

struct run_cmd {
	struct run_opts o;
	const struct runner *runner;
	bool json;                  /* the report on stdout as JSON */
	const char *json_file;      /* and/or as JSON in this file */
	const char *trace_file;     /* a Perfetto trace of the run (pm_trace_start) */
	const char *plot_file;      /* an SVG of the guest's memory over time */
	/* Options given, that apply to some VM types or scenarios only. */
	const char *scenario_opt, *busy_rate_opt;
	bool no_huge_opt, in_place_opt;
};

static void run_usage(FILE *out)
{
	fprintf(out,
		"usage: privmem run [--vm-type snp|sw|default|tdx|pkvm|realm] [--mem SIZE] [--vcpus N]\n"
		"                   [--scenario convert|bounce|accept|virtio|default] [--seed N]\n"
		"                   [--iterations N] [--busy-rate N] [--no-huge] [--json]\n"
		"                   [--json-file FILE] [--trace FILE] [--plot FILE]\n"
		"                   [--stall-timeout SECONDS] [--firmware FILE] [--gmem-in-place]\n"
		"\n"
		"Runs a protected VM scenario and reports exits, conversions, faults and\n"
		"mappings by level, TLB shootdowns, frame-pool use, time and every data\n"
		"check. Exit status 1 if any check failed or the run gave up, 2 for bad\n"
		"usage (including a --mem larger than privmem's simulated host memory,\n"
		"PRIVMEM_POOL_SIZE, default 4G, and an option the VM type does not take).\n"
		"\n"
		"  --vm-type TYPE    snp (SEV-SNP, the default: measured launch, boot acceptance\n"
		"                    by PSC and by implicit conversion, bounce I/O, random\n"
		"                    conversions), sw (software-protected: the scenarios below),\n"
		"                    default (no private memory: bounce only),\n"
		"                    tdx (a TD on the simulated TDX module: measured build,\n"
		"                    accept, bounce buffers, conversions), pkvm (protected VM\n"
		"                    under pKVM's hypervisor: virtio only), or realm (an Arm CCA\n"
		"                    realm on the simulated RMM: measured populate, lazy faults,\n"
		"                    RIPAS conversions); or their numbers (4, 1, 0, 5, 16, 17)\n"
		"  --mem SIZE        guest RAM, e.g. 512M or 2G (K/M/G/T; default 512M; at least\n"
		"                    2M per vCPU)\n"
		"  --vcpus N         vCPUs, 1..%d (default 4)\n"
		"  --scenario NAME   sw: convert, bounce, accept, or default (all of them, one per\n"
		"                    vCPU); default: bounce; pkvm: virtio (in-place sharing for\n"
		"                    device I/O); snp, tdx and realm have one scenario of their own\n"
		"  --seed N          seed for the random choices (default 1)\n"
		"  --iterations N    conversions / requests per vCPU, 1..1000000 (default 200 / 100)\n"
		"  --busy-rate N     tdx: OPERAND_BUSY injected per million S-EPT SEAMCALLs,\n"
		"                    0..1000000 (at 1000000 no TD can be built: the run gives up)\n"
		"  --no-huge         tdx, realm: private pages at 4K only (tdx: as upstream)\n"
		"  --json            print the report as one JSON object\n"
		"  --json-file FILE  also write the report as one JSON object to FILE\n"
		"  --trace FILE      write a Chrome / Perfetto JSON trace of the run to FILE\n"
		"                    (open it in https://ui.perfetto.dev)\n"
		"  --plot FILE       draw the guest's memory over time to FILE (SVG, by gnuplot):\n"
		"                    private vs shared, by address, and 4K / 2M / 1G mappings\n"
		"  --stall-timeout S give up (exit 1) after S seconds in which the VM makes no\n"
		"                    progress at all, 1..3600 (default %d)\n"
		"  --gmem-in-place   in-place conversion (PRIVMEM_GMEM_IN_PLACE=1): guest_memfd\n"
		"                    keeps shared/private, the VMM converts with\n"
		"                    KVM_SET_MEMORY_ATTRIBUTES2 and maps RAM through the file\n"
		"  --firmware FILE   snp, tdx: launch this OVMF image as QEMU does (its SEV or\n"
		"                    TDX sections: KVM_SEV_SNP_LAUNCH_UPDATE or\n"
		"                    KVM_TDX_INIT_MEM_REGION; SNP vCPUs of type EPYC-v4) and\n"
		"                    report its measurement, which `privmem measure` computes\n"
		"                    offline; the vCPUs run privmem's guests, not the firmware\n"
		"  -h, --help        print this help and exit\n",
		VMM_MAX_VCPUS,
		VMM_STALL_DEFAULT_S);
}

static const struct runner *runner_of(const char *vm_type)
{
	unsigned long type;

	if (cli_parse_vm_type(vm_type, &type))
		return NULL;
	for (size_t i = 0; i < sizeof(runners) / sizeof(runners[0]); i++)
		if (runners[i].type == type)
			return &runners[i];
	return NULL;
}

/* An option given for a VM type or scenario that does not take it. */
static int run_not_for(const char *opt, const char *vm_type, const char *takes)
{
	fprintf(stderr, "privmem run: %s does not apply to --vm-type %s (%s)\n", opt, vm_type, takes);
	return 2;
}

/* Options that apply to some VM types only, and what every runner needs. */
static int run_check(const struct run_cmd *cmd)
{
	const struct run_opts *o = &cmd->o;
	bool tdx = o->type == KVM_X86_TDX_VM, realm = o->type == PM_VM_TYPE_REALM;

	if (cmd->busy_rate_opt && !tdx)
		return run_not_for("--busy-rate", o->vm_type, "tdx only");
	if (cmd->no_huge_opt && !tdx && !realm)
		return run_not_for("--no-huge", o->vm_type, "tdx and realm only");
	if (cmd->in_place_opt && realm)         /* realms have no in-place mode */
		return run_not_for("--gmem-in-place", o->vm_type, "not realms, whose guest_memfd the host cannot map");
	if (cmd->scenario_opt && o->scenario != SC_DEFAULT) {
		bool ok;

		switch (o->type) {
		case KVM_X86_SW_PROTECTED_VM:
			ok = o->scenario != SC_VIRTIO;
			break;
		case KVM_X86_DEFAULT_VM:
			ok = o->scenario == SC_BOUNCE;     /* no private memory to convert */
			break;
		case PM_VM_TYPE_PKVM:
			ok = o->scenario == SC_VIRTIO;
			break;
		default:
			ok = false;                        /* snp, tdx, realm: one scenario of their own */
			break;
		}
		if (!ok) {
			char what[64];

			snprintf(what, sizeof(what), "--scenario %s", cmd->scenario_opt);
			return run_not_for(what, o->vm_type,
					   o->type == KVM_X86_SW_PROTECTED_VM ? "convert, bounce, accept" :
					   o->type == KVM_X86_DEFAULT_VM ? "bounce only" :
					   o->type == PM_VM_TYPE_PKVM ? "virtio only" : "its own scenario only");
		}
	}
	if ((o->mem / (uint64_t)o->vcpus) < 2 * MIB) {
		fprintf(stderr, "privmem run: --mem must give each vCPU at least 2 MiB\n");
		return 2;
	}
	/* Guest memory lives in the frame pool (but a default VM's). */
	if (o->type != KVM_X86_DEFAULT_VM && vmm_check_host_memory(o->mem, "--mem"))
		return 2;
	if (o->firmware && o->type != KVM_X86_SNP_VM && o->type != KVM_X86_TDX_VM)
		return run_not_for("--firmware", o->vm_type, "snp and tdx only");
	return 0;
}

static int run_parse(int argc, char **argv, struct run_cmd *cmd)
{
	static const struct option opts[] = {
		{ "vm-type", required_argument, NULL, 't' }, { "mem", required_argument, NULL, 'm' },
		{ "vcpus", required_argument, NULL, 'c' }, { "scenario", required_argument, NULL, 's' },
		{ "seed", required_argument, NULL, 'S' }, { "iterations", required_argument, NULL, 'i' },
		{ "json", no_argument, NULL, 'j' }, { "help", no_argument, NULL, 'h' },
		{ "busy-rate", required_argument, NULL, 'b' }, { "no-huge", no_argument, NULL, 'n' },
		{ "json-file", required_argument, NULL, 'J' },
		{ "stall-timeout", required_argument, NULL, 'T' },
		{ "firmware", required_argument, NULL, 'F' },
		{ "trace", required_argument, NULL, 'R' }, { "plot", required_argument, NULL, 'P' },
		{ "gmem-in-place", no_argument, NULL, 'I' },
		{ NULL, 0, NULL, 0 },
	};
	struct run_opts *o = &cmd->o;
	int c;

	*cmd = (struct run_cmd){ .runner = runner_of(RUN_DEFAULT_VM_TYPE) };
	*o = (struct run_opts){ .mem = 512 * MIB, .vcpus = 4, .scenario = SC_DEFAULT, .seed = 1,
				.stall_s = VMM_STALL_DEFAULT_S };
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			cmd->runner = runner_of(optarg);
			if (!cmd->runner)
				return cli_bad_arg("--vm-type", optarg);
			break;
		case 'm':
			if (cli_parse_size(optarg, &o->mem) || o->mem < 2 * MIB)
				return cli_bad_arg("--mem", optarg);
			break;
		case 'c':
			if (cli_parse_uint(optarg, 1, VMM_MAX_VCPUS, (unsigned int *)&o->vcpus))
				return cli_bad_arg("--vcpus", optarg);
			break;
		case 's':
			for (o->scenario = 0; o->scenario < SC_NR; o->scenario++)
				if (!strcmp(optarg, run_scenario_names[o->scenario]))
					break;
			if (o->scenario == SC_NR && strcmp(optarg, "default"))
				return cli_bad_arg("--scenario", optarg);
			cmd->scenario_opt = optarg;
			break;
		case 'S':
			if (cli_parse_uint(optarg, 0, UINT32_MAX, &o->seed))
				return cli_bad_arg("--seed", optarg);
			break;
		case 'i':
			if (cli_parse_uint(optarg, 1, 1000000, &o->iterations))
				return cli_bad_arg("--iterations", optarg);
			break;
		case 'j':
			cmd->json = true;
			break;
		case 'J':
			cmd->json_file = optarg;
			break;
		case 'b':
			if (cli_parse_uint(optarg, 0, 1000000, &o->busy_per_million))
				return cli_bad_arg("--busy-rate", optarg);
			cmd->busy_rate_opt = optarg;
			break;
		case 'n':
			o->no_huge = true;
			cmd->no_huge_opt = true;
			break;
		case 'T':
			if (cli_parse_uint(optarg, 1, 3600, &o->stall_s))
				return cli_bad_arg("--stall-timeout", optarg);
			break;
		case 'F':
			o->firmware = optarg;
			break;
		case 'R':
			cmd->trace_file = optarg;
			break;
		case 'P':
			cmd->plot_file = optarg;
			break;
		case 'I':
			/* Read by the library once, at its first use: before any. */
			setenv("PRIVMEM_GMEM_IN_PLACE", "1", 1);
			cmd->in_place_opt = true;
			break;
		case 'h':
			run_usage(stdout);
			exit(0);
		default:
			run_usage(stderr);
			return 2;
		}
	}
	if (optind < argc)
		return cli_bad_arg("argument", argv[optind]);
	o->vm_type = cli_vm_type_name(cmd->runner->type);
	o->type = cmd->runner->type;
	o->progress = isatty(STDERR_FILENO) && !cmd->json;
	if (cli_check_pool_env())
		return 2;
	return run_check(cmd);
}

/* ---- progress ---- */

void run_progress_tick(struct vmm *m, void *arg)
{
	const struct timespec *t0 = arg;

	fprintf(stderr, "\r  running: %.1f s, %" PRIu64 " conversions (%" PRIu64 " implicit), %" PRIu64
		" progress marks   ", cli_elapsed(t0), (uint64_t)atomic_load(&m->conversions),
		(uint64_t)atomic_load(&m->implicit_conversions), (uint64_t)atomic_load(&m->progress));
	fflush(stderr);
}

void run_progress_clear(void)
{
	fprintf(stderr, "\r%78s\r", "");
	fflush(stderr);
}

/* ---- the sections every report has ---- */

void run_report_header(struct report *rep, const char *more)
{
	report_line(rep, "privmem run: vm-type {vm_type}, {mem_bytes:MiB} MiB, {vcpus} vCPUs, seed {seed}, "
		    "in-place mode {gmem_in_place}%s", more);
}

void run_report_vm(struct report *rep, struct vmm *m)
{
	static const char *const exit_names[] = {
		[PM_STAT_EXITS_UCALL] = "ucall", [PM_STAT_EXITS_MEMORY_FAULT] = "memory_fault",
		[PM_STAT_EXITS_HYPERCALL] = "hypercall", [PM_STAT_EXITS_MMIO] = "mmio",
		[PM_STAT_EXITS_INTR] = "intr", [PM_STAT_EXITS_SYSTEM_EVENT] = "system_event",
	};
	static const char *const levels[] = { "4K", "2M", "1G" };
	struct pm_vm_stats vs = { 0 };
	struct pm_pool_stats ps = { 0 };

	vmm_vm_stats(m, &vs);
	vmm_pool_stats(m, &ps);
	report_section(rep, "exits");
	for (size_t e = 0; e < sizeof(exit_names) / sizeof(exit_names[0]); e++)
		report_u64(rep, exit_names[e], vs.exits[e]);
	report_top(rep);
	report_u64(rep, "conversions", atomic_load(&m->conversions));
	report_u64(rep, "pages_to_private", atomic_load(&m->to_private_pages));
	report_u64(rep, "pages_to_shared", atomic_load(&m->to_shared_pages));
	report_u64(rep, "implicit_conversions", atomic_load(&m->implicit_conversions));
	report_u64(rep, "faults", vs.faults);
	report_u64(rep, "fault_retries", vs.fault_retries);
	report_section(rep, "mapped");
	for (int l = 0; l < 3; l++)
		report_u64(rep, levels[l], vs.mapped[l]);
	report_section(rep, "mappings_present");
	for (int l = 0; l < 3; l++)
		report_u64(rep, levels[l], vs.mappings[l]);
	report_top(rep);
	report_u64(rep, "zapped", vs.zapped);
	report_u64(rep, "splits", vs.splits);
	report_u64(rep, "tlb_shootdowns", vs.tlb_shootdowns);
	report_section(rep, "pool");
	report_u64(rep, "in_use", ps.in_use);
	report_u64(rep, "populated", ps.populated);
	report_u64(rep, "scrubbed", ps.scrubbed);
	report_u64(rep, "released", ps.released);
	report_top(rep);
}

void run_report_checks(struct report *rep, const char *const *names, const uint64_t *passed,
		       const uint64_t *failed, int n, const char *guest_failure, bool other_failure)
{
	bool fail;

	uint64_t total_passed = 0, total_failed = 0;
	bool any = false;

	report_line(rep, "checks");
	for (int c = 0; c < n; c++) {
		total_passed += passed[c];
		total_failed += failed[c];
		if (!passed[c] && !failed[c])
			continue;
		report_section(rep, "checks.%s", names[c]);
		report_u64(rep, "passed", passed[c]);
		report_u64(rep, "failed", failed[c]);
		report_line(rep, "  %-36s {checks.%s.passed:10} passed, {checks.%s.failed} failed", names[c],
			    names[c], names[c]);
		any = true;
	}
	report_top(rep);
	if (!any)
		report_empty(rep, "checks");
	fail = total_failed || guest_failure || other_failure;
	report_str(rep, "guest_failure", guest_failure);
	report_str(rep, "result", fail ? "FAIL" : "PASS");
	report_u64(rep, "checks_passed", total_passed);
	report_u64(rep, "checks_failed", total_failed);
	if (guest_failure)
		report_line(rep, "guest failure  {guest_failure}");
	report_line(rep, "result         {result} ({checks_passed} checks passed, {checks_failed} failed)");
	rep->failed = fail;
}

/* ---- the command ---- */

/* stdout, then the JSON file (opened before the run, so that a bad path
 * does not cost a run); 1 if the run failed or a report was not printed. */
static int run_print(const struct report *rep, const struct run_cmd *cmd, FILE *json_file)
{
	int r = cmd->json ? report_print_json(rep, stdout) : report_print_text(rep, stdout);

	if (!r && json_file)
		r = report_print_json(rep, json_file);
	if (r == -ENOMEM)
		fprintf(stderr, "privmem: out of memory for the report\n");
	else if (r)
		fprintf(stderr, "privmem: the report could not be written\n");
	return r ? 1 : rep->failed;
}

/* --plot: the sampler follows the VM the runner creates. */
static void plot_vm_created(struct vmm *m, void *arg)
{
	if (!memlog_attach(arg, m))
		m->observer_ctx = arg;
}

static void plot_vm_destroying(struct vmm *m, void *arg)
{
	memlog_detach(arg);
}

/* The run between the trace's or the plot's start and end: the runner's
 * status, or 1 when one of them failed (with a message). */
static int run_traced(struct run_cmd *cmd, struct report *rep)
{
	struct vmm_observer obs = { plot_vm_created, plot_vm_destroying, NULL };
	struct memlog *log = NULL;
	char title[128];
	int r;

	if (cmd->plot_file) {
		log = memlog_new();
		if (!log) {
			fprintf(stderr, "privmem run: out of memory\n");
			return 1;
		}
		obs.arg = log;
		vmm_set_observer(&obs);
	}
	if (cmd->trace_file && pm_trace_start(cmd->trace_file)) {
		fprintf(stderr, "privmem run: --trace %s: %s\n", cmd->trace_file, strerror(errno));
		r = 1;
		goto out;
	}
	r = cmd->runner->run(&cmd->o, rep);
	if (cmd->trace_file && pm_trace_stop()) {
		fprintf(stderr, "privmem run: --trace %s: %s\n", cmd->trace_file, strerror(errno));
		r = r ? r : 1;
	}
	snprintf(title, sizeof(title), "privmem run --vm-type %s: %llu MiB, %d vCPUs", cmd->o.vm_type,
		 (unsigned long long)(cmd->o.mem >> 20), cmd->o.vcpus);
	if (!r && log && memlog_plot(log, cmd->plot_file, title))
		r = 1;
out:
	vmm_set_observer(NULL);
	memlog_free(log);
	return r;
}

int cmd_run(int argc, char **argv)
{
	FILE *json_file = NULL;
	struct report rep;
	struct run_cmd cmd;
	int r = run_parse(argc, argv, &cmd);

	if (r)
		return r;
	if (cmd.plot_file && plot_check("--plot"))
		return 1;
	if (cmd.json_file) {
		json_file = fopen(cmd.json_file, "w");
		if (!json_file) {
			fprintf(stderr, "privmem run: %s: %s\n", cmd.json_file, strerror(errno));
			return 1;
		}
	}
	report_init(&rep);
	report_u64(&rep, "schema", RUN_REPORT_SCHEMA);
	report_str(&rep, "version", pm_version());
	report_str(&rep, "vm_type", cmd.o.vm_type);
	report_u64(&rep, "mem_bytes", cmd.o.mem);
	report_u64(&rep, "vcpus", (uint64_t)cmd.o.vcpus);
	report_u64(&rep, "seed", cmd.o.seed);
	/* The process's mode; realms never run in it (no in-place mode). */
	report_str(&rep, "gmem_in_place",
		   vmm_gmem_in_place() && cmd.o.type != PM_VM_TYPE_REALM ? "on" : "off");
	r = run_traced(&cmd, &rep);
	if (!r)
		r = run_print(&rep, &cmd, json_file);
	report_free(&rep);
	if (json_file && fclose(json_file) && !r) {
		fprintf(stderr, "privmem run: %s: %s\n", cmd.json_file, strerror(errno));
		r = 1;
	}
	return r;
}

/* SPDX-License-Identifier: MIT */
/*
 * privmem exec: runs a program written for Linux KVM on privmem, through
 * the LD_PRELOAD interposer libprivmem-kvm.so (src/uapi/interpose/).
 *
 * The library is looked for next to this binary (the build tree: build/),
 * then in the install prefix (PREFIX/bin/privmem -> PREFIX/lib/privmem/).
 * It is prepended to LD_PRELOAD; the settings go to the environment
 * (PRIVMEM_POOL_SIZE, PRIVMEM_POOL_NODES, PRIVMEM_VM_TYPES, PRIVMEM_KVM_VERSION,
 * PRIVMEM_TRACE), then the command replaces this
 * process (execvp), so its exit status is the command's. In sanitizer
 * builds the interposer is instrumented too and needs the sanitizer's
 * runtime loaded first: the runtime this binary runs with is put in front.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <privmem/privmem.h>
#include "cli.h"

#define KVMSO "libprivmem-kvm.so"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: privmem exec [OPTIONS] [--] COMMAND [ARGS]\n"
		"\n"
		"Runs COMMAND with privmem serving /dev/kvm: its open/ioctl/mmap calls on\n"
		"KVM files go to privmem (LD_PRELOAD=" KVMSO "), everything else to the\n"
		"system. The exit status is COMMAND's (127: not found, 126: not runnable,\n"
		"2: bad options).\n"
		"\n"
		"options:\n"
		"  -p, --pool-size SIZE   simulated host memory (K/M/G/T suffix, a multiple of\n"
		"                         2M; default: PRIVMEM_POOL_SIZE or 4G)\n"
		"  -n, --pool-nodes N     simulated NUMA nodes of that memory, 1..16 (the frames\n"
		"                         split in equal parts; default: PRIVMEM_POOL_NODES or 1)\n"
		"  -t, --vm-types LIST    VM types to offer (KVM_CAP_VM_TYPES), comma-separated:\n"
		"                         default, sw, snp, tdx, pkvm, realm (default is always\n"
		"                         offered; default: all)\n"
		"  -k, --kvm-version V    the Linux KVM uAPI to present: 6.12 (guest_memfd takes\n"
		"                         no flags, as Linux 6.12's selftests expect) or 6.18\n"
		"                         (default: PRIVMEM_KVM_VERSION or 6.18)\n"
		"  -T, --trace FILE       write a Chrome / Perfetto JSON trace of what privmem\n"
		"                         does for COMMAND to FILE when it exits\n"
		"                         (PRIVMEM_TRACE=FILE)\n"
		"  -i, --gmem-in-place    in-place conversion on guest_memfd\n"
		"                         (KVM_SET_MEMORY_ATTRIBUTES2, module parameter\n"
		"                         gmem_in_place_conversion; PRIVMEM_GMEM_IN_PLACE=1)\n"
		"  -h, --help             print this help and exit\n");
}

/* Sets PRIVMEM_VM_TYPES from a list of names, checked here: 0 or 2. */
static int set_vm_types(const char *list)
{
	char buf[256] = "", *copy = strdup(list), *save = NULL;
	int r = 0;

	if (!copy)
		return 2;
	for (char *name = strtok_r(copy, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
		unsigned long type;

		if (cli_parse_vm_type(name, &type)) {
			r = cli_bad_arg("--vm-types", name);
			break;
		}
		snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%lu", buf[0] ? "," : "", type);
	}
	if (!r && !buf[0])
		r = cli_bad_arg("--vm-types", list);
	if (!r)
		setenv("PRIVMEM_VM_TYPES", buf, 1);
	free(copy);
	return r;
}

/* The interposer next to this binary or in PREFIX/lib/privmem. */
static int find_library(char *out, size_t size)
{
	char self[PATH_MAX], *slash;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	static const char *const rel[] = { "/" KVMSO, "/../lib/privmem/" KVMSO };

	if (n <= 0)
		return -1;
	self[n] = '\0';
	slash = strrchr(self, '/');
	if (!slash)
		return -1;
	*slash = '\0';
	for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
		if ((size_t)snprintf(out, size, "%s%s", self, rel[i]) >= size)
			return -1;
		if (access(out, R_OK) == 0)
			return 0;
	}
	return -1;
}

#if defined(PM_ASAN) || defined(PM_TSAN)
/* Appends the sanitizer runtimes loaded in this process (in load order:
 * the runtime comes first) to the buffer `data` (PATH_MAX * 2 bytes). */
static int find_runtime(struct dl_phdr_info *info, size_t size, void *data)
{
	const char *base = strrchr(info->dlpi_name, '/');
	char *buf = data;
	size_t len = strlen(buf);

	if (base && (strstr(base, "libasan.so") || strstr(base, "libtsan.so") ||
		     strstr(base, "libubsan.so")))
		snprintf(buf + len, PATH_MAX * 2 - len, "%s%s", len ? " " : "", info->dlpi_name);
	return 0;
}
#endif

#if defined(PM_TSAN)
/* The interposer's TSan suppressions (src/lib/rcu.c) are not seen when it is
 * preloaded after the runtime (the runtime's weak default comes first): they
 * go to TSAN_OPTIONS as a file, a memfd the command inherits. */
static void set_tsan_suppressions(void)
{
	static const char supp[] = "called_from_lib:liburcu-bp.so\n";
	const char *old = getenv("TSAN_OPTIONS");
	char opts[1024];
	int fd = memfd_create("privmem-tsan-suppressions", 0);

	if (fd < 0 || write(fd, supp, sizeof(supp) - 1) != (ssize_t)(sizeof(supp) - 1))
		return;
	snprintf(opts, sizeof(opts), "%s%ssuppressions=/proc/self/fd/%d", old ? old : "",
		 old && old[0] ? " " : "", fd);
	setenv("TSAN_OPTIONS", opts, 1);
}
#endif

static int set_preload(const char *lib)
{
	const char *old = getenv("LD_PRELOAD");
	char runtime[PATH_MAX * 2] = "", *value;
	size_t len;

#if defined(PM_ASAN) || defined(PM_TSAN)
	dl_iterate_phdr(find_runtime, runtime);
#endif
#if defined(PM_TSAN)
	set_tsan_suppressions();
#endif
	len = strlen(runtime) + strlen(lib) + (old ? strlen(old) : 0) + 3;
	value = malloc(len);
	if (!value)
		return -1;
	snprintf(value, len, "%s%s%s%s%s", runtime, runtime[0] ? " " : "", lib,
		 old && old[0] ? " " : "", old ? old : "");
	setenv("LD_PRELOAD", value, 1);
	free(value);
	return 0;
}

int cmd_exec(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pool-size", required_argument, NULL, 'p' },
		{ "pool-nodes", required_argument, NULL, 'n' },
		{ "vm-types", required_argument, NULL, 't' },
		{ "kvm-version", required_argument, NULL, 'k' },
		{ "trace", required_argument, NULL, 'T' },
		{ "gmem-in-place", no_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char lib[PATH_MAX];
	uint64_t size;
	int c, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+p:n:t:k:T:ih", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (cli_parse_size(optarg, &size) || !size || size % (2ULL << 20))
				return cli_bad_arg("--pool-size", optarg);
			setenv("PRIVMEM_POOL_SIZE", optarg, 1);
			break;
		case 'n': {
			char *end;
			unsigned long n = strtoul(optarg, &end, 10);

			if (!*optarg || *end || n < 1 || n > PM_POOL_MAX_NODES)
				return cli_bad_arg("--pool-nodes", optarg);
			setenv("PRIVMEM_POOL_NODES", optarg, 1);
			break;
		}
		case 't':
			r = set_vm_types(optarg);
			if (r)
				return r;
			break;
		case 'k':
			if (strcmp(optarg, "6.12") && strcmp(optarg, "6.18"))
				return cli_bad_arg("--kvm-version", optarg);
			setenv("PRIVMEM_KVM_VERSION", optarg, 1);
			break;
		case 'T':
			if (!optarg[0])
				return cli_bad_arg("--trace", optarg);
			setenv("PRIVMEM_TRACE", optarg, 1);
			break;
		case 'i':
			setenv("PRIVMEM_GMEM_IN_PLACE", "1", 1);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (cli_check_pool_env())
		return 2;
	if (optind == argc) {
		fprintf(stderr, "privmem exec: no command given\n");
		usage(stderr);
		return 2;
	}
	if (find_library(lib, sizeof(lib))) {
		fprintf(stderr, "privmem exec: cannot find %s next to privmem or in its lib/privmem\n",
			KVMSO);
		return 2;
	}
	if (set_preload(lib)) {
		fprintf(stderr, "privmem exec: out of memory\n");
		return 2;
	}
	execvp(argv[optind], argv + optind);
	r = errno;
	fprintf(stderr, "privmem exec: %s: %s\n", argv[optind], strerror(r));
	return r == ENOENT ? 127 : 126;
}

/* SPDX-License-Identifier: MIT */
/*
 * The KVM module parameters programs read from sysfs
 * (/sys/module/{kvm,kvm_intel,kvm_amd}/parameters/NAME), answered with what
 * privmem implements rather than what the host's KVM (if any) has. Both
 * vendor modules answer, as programs pick one by the CPU they run on.
 *
 * A parameter is served as a read-only snapshot: a memfd holding the text
 * sysfs would give ("Y\n", "0\n"), sealed against any change of its size
 * or contents and reopened read-only (through /proc/self/fd), so the
 * program holds what sysfs gives for O_RDONLY: write and fallocate are
 * EBADF, ftruncate EINVAL, and no program can grow it into the host's
 * memory. A parameter privmem does not list is ENOENT, as for a module
 * without it; opening one for writing is EACCES (privmem's parameters
 * cannot be changed).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <privmem/privmem.h>
#include "kvm/vm.h"
#include "uapi/interpose/interpose.h"

struct param {
	const char *module, *name;
	const char *value;              /* NULL: computed by value_of() */
};

/* Why each value: privmem has a stage-2 MMU (npt/ept, tdp_mmu), no PMU,
 * no forced-emulation prefix, no nested virtualisation, no APIC
 * virtualisation, no NX huge page mitigation. */
static const struct param params[] = {
	{ "kvm", "force_emulation_prefix", "0" },
	{ "kvm", "enable_pmu", "N" },
	{ "kvm", "tdp_mmu", "Y" },
	{ "kvm", "nx_huge_pages", "N" },
	{ "kvm", "eager_page_split", "N" },
	{ "kvm", "enable_vmware_backdoor", "N" },
	{ "kvm_intel", "ept", "Y" },
	{ "kvm_intel", "unrestricted_guest", "Y" },
	{ "kvm_intel", "nested", "N" },
	{ "kvm_intel", "enable_apicv", "N" },
	{ "kvm_intel", "tdx", NULL },
	{ "kvm_amd", "npt", "Y" },
	{ "kvm_amd", "nested", "0" },
	{ "kvm_amd", "avic", "N" },
	{ "kvm_amd", "sev", "N" },
	{ "kvm_amd", "sev_es", "N" },
	{ "kvm_amd", "sev_snp", NULL },
};

/* The confidential types follow the VM types privmem advertises. */
static const char *value_of(const struct param *p)
{
	long types = pm_check_extension(NULL, KVM_CAP_VM_TYPES);

	if (p->value)
		return p->value;
	if (!strcmp(p->name, "tdx"))
		return types & (1L << KVM_X86_TDX_VM) ? "Y" : "N";
	return types & (1L << KVM_X86_SNP_VM) ? "Y" : "N";
}

static const struct param *param_find(const char *abs)
{
	static const char prefix[] = "/sys/module/";
	const char *mod = abs + sizeof(prefix) - 1, *slash;
	size_t len;

	if (strncmp(abs, prefix, sizeof(prefix) - 1))
		return NULL;
	slash = strchr(mod, '/');
	if (!slash || strncmp(slash, "/parameters/", 12))
		return NULL;
	len = (size_t)(slash - mod);
	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++)
		if (strlen(params[i].module) == len && !strncmp(mod, params[i].module, len) &&
		    !strcmp(slash + 12, params[i].name))
			return &params[i];
	return NULL;
}

static bool module_is_kvm(const char *abs)
{
	static const char *const mods[] = {
		"/sys/module/kvm/parameters/", "/sys/module/kvm_intel/parameters/",
		"/sys/module/kvm_amd/parameters/",
	};

	for (size_t i = 0; i < sizeof(mods) / sizeof(mods[0]); i++)
		if (!strncmp(abs, mods[i], strlen(mods[i])))
			return true;
	return false;
}

int ipose_sysfs_open(int dirfd, const char *path, int flags)
{
	char abs[PATH_MAX], text[32];
	const struct param *p;
	size_t len;
	int fd, ro, err;

	if (!strstr(path, "parameters") || !ipose_path_absolute(dirfd, path, abs, sizeof(abs)) ||
	    !module_is_kvm(abs))
		return -2;
	p = param_find(abs);
	if (!p) {
		errno = ENOENT;
		return -1;
	}
	if ((flags & O_ACCMODE) != O_RDONLY) {
		errno = EACCES;
		return -1;
	}
	len = (size_t)snprintf(text, sizeof(text), "%s\n", value_of(p));
	fd = memfd_create("privmem-sysfs", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -1;
	errno = 0;
	if (LIBC(write)(fd, text, len) != (ssize_t)len ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE))
		goto fail;
	snprintf(abs, sizeof(abs), "/proc/self/fd/%d", fd);
	ro = LIBC(open)(abs, O_RDONLY | (flags & O_CLOEXEC));
	if (ro < 0)
		goto fail;
	LIBC(close)(fd);
	return ro;
fail:
	err = errno;
	LIBC(close)(fd);
	errno = err ? err : EIO;
	return -1;
}

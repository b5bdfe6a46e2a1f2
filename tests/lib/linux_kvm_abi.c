/* Separate file: <linux/kvm.h> and <privmem/kvm.h> define the same names, so they cannot share a translation unit. */
/*
 * The KVM ABI as the system's Linux uAPI headers (Debian 12: Linux 6.1,
 * linux-libc-dev) define it, for tests/test_kvm_abi.c to compare against
 * include/privmem/kvm.h. Only what both headers define is listed; the test
 * builds the same table (same names, same order) from privmem's header.
 *
 * Plain data, no main(): every file in tests/lib/ is linked into every test.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/kvm.h>
#include <linux/kvm_para.h> /* KVM_HC_*, KVM_E*, KVM_MAP_GPA_RANGE_* (not pulled in by linux/kvm.h) */

#include "kvm_abi.h"

const struct pm_abi_item pm_linux_abi[] = {
#include "kvm_abi_items.h"
};

const size_t pm_linux_abi_len = sizeof(pm_linux_abi) / sizeof(pm_linux_abi[0]);

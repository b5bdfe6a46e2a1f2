/* SPDX-License-Identifier: MIT */
/*
 * The ABI cross-check's table format: one entry per name in
 * kvm_abi_items.h, expanded once against <linux/kvm.h> (linux_kvm_abi.c)
 * and once against privmem/kvm.h (test_kvm_abi.c). Include after the KVM
 * header of the translation unit.
 */
#ifndef PM_TESTS_KVM_ABI_H
#define PM_TESTS_KVM_ABI_H

#include <stddef.h>
#include <stdint.h>

struct pm_abi_item {
	const char *name;
	uint64_t value;
};

/* Defined in tests/lib/linux_kvm_abi.c from <linux/kvm.h>. */
extern const struct pm_abi_item pm_linux_abi[];
extern const size_t pm_linux_abi_len;

#define C(x)       { #x, (uint64_t)(x) }
#define SZ(T)      { "sizeof(" #T ")", (uint64_t)sizeof(T) }
#define OFF(T, m)  { "offsetof(" #T ", " #m ")", (uint64_t)offsetof(T, m) }
#define MSZ(T, m)  { "sizeof(((" #T " *)0)->" #m ")", (uint64_t)sizeof(((T *)0)->m) }
#define FLD(T, m)  OFF(T, m), MSZ(T, m)

#endif

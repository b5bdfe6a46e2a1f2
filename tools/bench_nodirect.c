/* SPDX-License-Identifier: MIT */
/*
 * privmem bench nodirect: what GUEST_MEMFD_FLAG_NO_DIRECT_MAP costs a
 * conversion. The same destructive conversion pairs as bench convert
 * (attributes private + allocate the granule, attributes shared + punch)
 * on a software-protected VM whose guest_memfd has the flag, beside the
 * same VM without it, in the same run: the difference is taking each
 * allocated run out of the pool's direct map (an alias mapping, then
 * MADV_DONTNEED and mprotect of the direct map) and putting it back
 * before it is freed (mprotect, a punch of the alias file, the alias
 * reserved again).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "bench.h"

/* One figure: the pairs of `gran` over SIZE on a VM whose file has `flags`. */
static void measure(struct result *r, struct figure *f, uint64_t gran, uint64_t flags)
{
	struct samples s = { .n = 0 };
	struct vmm m;

	if (bench_vm_create(r, &m, KVM_X86_SW_PROTECTED_VM, r->size, flags))
		return;
	for (unsigned int rep = 0; rep < r->reps && !r->failed; rep++) {
		uint64_t t0 = now_ns();
		int e = privmem_pass(&m, r->size, gran);

		if (e) {
			result_fail(r, "conversion: %s", strerror(-e));
			break;
		}
		samples_add(&s, secs_since(t0));
	}
	vmm_destroy(&m);
	figure_set(f, &s);
}

void bench_nodirect(const struct bench_opts *o, struct result *r)
{
	static const struct { uint64_t gran; const char *name; uint64_t flags; } g[2] = {
		{ PAGE_4K, "4K", PM_GUEST_MEMFD_FLAG_NO_HUGE },
		{ PAGE_2M, "2M", PM_GUEST_MEMFD_FLAG_NO_1G },
	};
	struct figure *plain[2], *hidden[2];
	char key[64], label[96];

	snprintf(r->title, sizeof(r->title), "GUEST_MEMFD_FLAG_NO_DIRECT_MAP: conversion pairs with and without");
	for (int i = 0; i < 2 && !r->failed; i++) {
		double pairs = (double)(r->size / g[i].gran);

		snprintf(key, sizeof(key), "direct_map_%s", g[i].name);
		snprintf(label, sizeof(label), "pairs, %s, frames in the direct map", g[i].name);
		plain[i] = figure_add(r, key, label, "pair", pairs, (double)r->size);
		snprintf(key, sizeof(key), "no_direct_map_%s", g[i].name);
		snprintf(label, sizeof(label), "pairs, %s, NO_DIRECT_MAP", g[i].name);
		hidden[i] = figure_add(r, key, label, "pair", pairs, (double)r->size);
		measure(r, plain[i], g[i].gran, g[i].flags);
		if (!r->failed)
			measure(r, hidden[i], g[i].gran, g[i].flags | GUEST_MEMFD_FLAG_NO_DIRECT_MAP);
	}
	if (r->failed)
		return;
	for (int i = 0; i < 2; i++) {
		snprintf(key, sizeof(key), "no_direct_map_over_direct_map_%s", g[i].name);
		snprintf(label, sizeof(label), "NO_DIRECT_MAP / direct map, %s (time per pair)", g[i].name);
		ratio_add(r, key, label, hidden[i], plain[i], false);
		snprintf(key, sizeof(key), "extra_ns_per_pair_%s", g[i].name);
		snprintf(label, sizeof(label), "NO_DIRECT_MAP's extra time per %s pair (best)", g[i].name);
		info_add(r, key, label, ns_per_op(hidden[i], false) - ns_per_op(plain[i], false), "ns");
	}
	note(r, "a pair = attributes private + fallocate(KEEP_SIZE) the granule, then attributes "
		"shared + punch hole, on a software-protected VM (as bench convert)");
	note(r, "NO_DIRECT_MAP: each allocated run is mapped in the alias and dropped from the direct "
		"map (MADV_DONTNEED + mprotect PROT_NONE), and put back before it is freed (mprotect, a "
		"punch of the alias file, the alias reserved again): five system calls and the VMA "
		"splits they make, where Linux changes the kernel's page tables and flushes its TLB");
}

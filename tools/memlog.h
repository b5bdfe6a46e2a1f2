/* SPDX-License-Identifier: MIT */
/*
 * The guest's physical memory over time (privmem run --plot): a sampler
 * thread that, while a VM lives, records every few milliseconds which
 * part of its memory is private (the VMM's map, vmm.h) overall and by
 * address band, and how much of it the stage-2 maps with 4K, 2M and 1G
 * leaves (PM_KVM_GET_VM_STATS); then a plot of it (gnuplot, plot.h).
 *
 * Ownership: memlog_new's log is the caller's; memlog_attach starts the
 * sampler on a VM (the log keeps the VM's pointer until memlog_detach,
 * which takes a last sample and joins the thread: before the VM goes).
 * The samples are the sampler's while it runs, the caller's after.
 */
#ifndef PM_TOOLS_MEMLOG_H
#define PM_TOOLS_MEMLOG_H

#include "vmm.h"

struct memlog;

struct memlog *memlog_new(void);
void memlog_free(struct memlog *l);
/* 0, or -errno (no thread). A log records one VM: a second is ignored. */
int memlog_attach(struct memlog *l, struct vmm *m);
void memlog_detach(struct memlog *l);
/* Draws the log as an SVG at path, titled `title`: 0, or -1 with a
 * message (no samples, or gnuplot failed). */
int memlog_plot(const struct memlog *l, const char *path, const char *title);

#endif

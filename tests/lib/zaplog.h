/* SPDX-License-Identifier: MIT */
/*
 * A zap consumer for tests: records the invalidations a VM's protocol
 * hands its consumers (range, filter, cause), so a test can check that an
 * operation zapped exactly what it must.
 */
#ifndef PM_TESTS_ZAPLOG_H
#define PM_TESTS_ZAPLOG_H

#include <pthread.h>
#include "kvm/vm.h"
#include "uapi/handle.h"

#define PM_ZAPLOG_MAX 64

struct pm_zap {
	gfn_t start, end;
	unsigned int filter;
	enum pm_inval_cause cause;
};

/* Must outlive the VM it is attached to. */
struct pm_zaplog {
	pthread_mutex_t lock;
	unsigned int n;                    /* lock; zaps seen (all counted) */
	struct pm_zap ev[PM_ZAPLOG_MAX];   /* lock; the first PM_ZAPLOG_MAX */
};

/* Starts recording vm's zaps (a fresh VM: consumers register before use). */
void pm_zaplog_attach(struct pm_zaplog *log, struct pm_vm *vm);
unsigned int pm_zaplog_count(struct pm_zaplog *log);
void pm_zaplog_reset(struct pm_zaplog *log);
/* The log holds exactly one zap of [start, end) with filter and cause. */
bool pm_zaplog_seen(struct pm_zaplog *log, gfn_t start, gfn_t end, unsigned int filter,
		    enum pm_inval_cause cause);

/* A fixture: a system handle, a VM of `type` with our own reference on
 * it, and a zap log attached. */
struct fx {
	int sys, vmh;
	struct pm_file vmf;     /* our reference on the VM */
	struct pm_vm *vm;
	struct pm_zaplog log;   /* invalidations the VM made */
};

/* cmocka setup/teardown shapes: 0 or -1. */
int pm_fx_setup(void **state, unsigned long type);
int pm_fx_teardown(void **state);

#endif

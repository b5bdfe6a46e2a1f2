/* SPDX-License-Identifier: MIT */
#include <privmem/privmem.h>
#include "zaplog.h"

static void zaplog_record(struct pm_vm *vm, gfn_t start, gfn_t end, unsigned int filter,
			  enum pm_inval_cause cause, void *ctx)
{
	struct pm_zaplog *log = ctx;

	pthread_mutex_lock(&log->lock);
	if (log->n < PM_ZAPLOG_MAX)
		log->ev[log->n] = (struct pm_zap){ start, end, filter, cause };
	log->n++;
	pthread_mutex_unlock(&log->lock);
}

void pm_zaplog_attach(struct pm_zaplog *log, struct pm_vm *vm)
{
	struct pm_inval_consumer c = { .zap = zaplog_record, .ctx = log };

	memset(log, 0, sizeof(*log));
	pthread_mutex_init(&log->lock, NULL);
	pm_inval_add_consumer(&vm->inval, &c);
}

unsigned int pm_zaplog_count(struct pm_zaplog *log)
{
	unsigned int n;

	pthread_mutex_lock(&log->lock);
	n = log->n;
	pthread_mutex_unlock(&log->lock);
	return n;
}

void pm_zaplog_reset(struct pm_zaplog *log)
{
	pthread_mutex_lock(&log->lock);
	log->n = 0;
	pthread_mutex_unlock(&log->lock);
}

bool pm_zaplog_seen(struct pm_zaplog *log, gfn_t start, gfn_t end, unsigned int filter,
		    enum pm_inval_cause cause)
{
	unsigned int hits = 0;

	pthread_mutex_lock(&log->lock);
	for (unsigned int i = 0; i < log->n && i < PM_ZAPLOG_MAX; i++) {
		const struct pm_zap *z = &log->ev[i];

		hits += z->start == start && z->end == end && z->filter == filter && z->cause == cause;
	}
	pthread_mutex_unlock(&log->lock);
	return hits == 1;
}

int pm_fx_setup(void **state, unsigned long type)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	fx->sys = pm_kvm_open();
	fx->vmh = pm_kvm_ioctl(fx->sys, KVM_CREATE_VM, type);
	if (fx->sys < 0 || fx->vmh < 0 || pm_handle_get(fx->vmh, &fx->vmf) != 0)
		return -1;
	fx->vm = fx->vmf.obj;
	pm_zaplog_attach(&fx->log, fx->vm);
	*state = fx;
	return 0;
}

int pm_fx_teardown(void **state)
{
	struct fx *fx = *state;

	pm_kvm_close(fx->vmh);
	pm_file_put(&fx->vmf);     /* destroys the VM: its consumer goes with it */
	pm_kvm_close(fx->sys);
	pthread_mutex_destroy(&fx->log.lock);
	free(fx);
	return 0;
}

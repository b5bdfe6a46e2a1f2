/* SPDX-License-Identifier: MIT */
/*
 * The table of VM types privmem offers. A type whose model is not built yet
 * has no entry, and KVM_CREATE_VM answers EINVAL for it, as Linux does for a
 * type the host cannot run.
 */
#include <stdio.h>
#include <privmem/privmem.h>
#include "models/model.h"

static const struct pm_model_ops *const pm_models[] = {
	&pm_model_default,
	&pm_model_sw,
	&pm_model_pkvm,
	&pm_model_snp,
	&pm_model_tdx,
};

const struct pm_model_ops *pm_model_for_type(unsigned long type)
{
	for (size_t i = 0; i < PM_ARRAY_SIZE(pm_models); i++)
		if (pm_models[i]->type == type)
			return pm_models[i];
	return NULL;
}

int pm_model_vm_types(void)
{
	int mask = 0;

	for (size_t i = 0; i < PM_ARRAY_SIZE(pm_models); i++) {
		PM_BUG_ON(pm_models[i]->type >= 31);
		mask |= 1 << pm_models[i]->type;
	}
	return mask;
}

void pm_model_stats_put(struct pm_model_stats *st, const char *name, uint64_t v)
{
	PM_BUG_ON(st->nr >= PM_MODEL_STATS_MAX);
	snprintf(st->v[st->nr].name, sizeof(st->v[0].name), "%s", name);
	st->v[st->nr++].value = v;
}

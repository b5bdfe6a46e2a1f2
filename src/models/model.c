/* SPDX-License-Identifier: MIT */
/*
 * The table of VM types privmem offers. A type whose model is not built yet
 * has no entry, and KVM_CREATE_VM answers EINVAL for it, as Linux does for a
 * type the host cannot run.
 *
 * PRIVMEM_VM_TYPES (read once) narrows the offer, as a host whose hardware
 * lacks SEV-SNP or TDX would: a comma-separated list of model names or
 * type numbers ("sw,snp", "0,4"); unknown entries are ignored. The default
 * type is always offered, as in Linux. KVM_CAP_VM_TYPES reports the offer
 * and KVM_CREATE_VM refuses (EINVAL) a type outside it.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <privmem/privmem.h>
#include "models/model.h"

static const struct pm_model_ops *const pm_models[] = {
	&pm_model_default,
	&pm_model_sw,
	&pm_model_pkvm,
	&pm_model_snp,
	&pm_model_tdx,
	&pm_model_realm,
};

static pthread_once_t offer_once = PTHREAD_ONCE_INIT;
static int offered;             /* bitmask of types; written once */

static int all_types(void)
{
	int mask = 0;

	for (size_t i = 0; i < PM_ARRAY_SIZE(pm_models); i++) {
		PM_BUG_ON(pm_models[i]->type >= 31);
		mask |= 1 << pm_models[i]->type;
	}
	return mask;
}

/* The type named by one entry of PRIVMEM_VM_TYPES, or -1. */
static int type_of_name(const char *s, size_t len)
{
	char *end;
	unsigned long n = strtoul(s, &end, 10);

	if (len && (size_t)(end - s) == len)
		return n < 31 ? (int)n : -1;
	for (size_t i = 0; i < PM_ARRAY_SIZE(pm_models); i++)
		if (strlen(pm_models[i]->name) == len && !strncmp(s, pm_models[i]->name, len))
			return (int)pm_models[i]->type;
	return -1;
}

static void offer_init(void)
{
	const char *env = getenv("PRIVMEM_VM_TYPES");
	int mask = 1 << KVM_X86_DEFAULT_VM;

	if (!env) {
		offered = all_types();
		return;
	}
	while (*env) {
		size_t len = strcspn(env, ",");
		int t = type_of_name(env, len);

		if (t >= 0)
			mask |= 1 << t;
		env += len + (env[len] == ',');
	}
	offered = mask & all_types();
}

const struct pm_model_ops *pm_model_for_type(unsigned long type)
{
	if (type >= 31 || !(pm_model_vm_types() & (1 << type)))
		return NULL;
	for (size_t i = 0; i < PM_ARRAY_SIZE(pm_models); i++)
		if (pm_models[i]->type == type)
			return pm_models[i];
	return NULL;
}

int pm_model_vm_types(void)
{
	pthread_once(&offer_once, offer_init);
	return offered;
}

void pm_model_stats_put(struct pm_model_stats *st, const char *name, uint64_t v)
{
	PM_BUG_ON(st->nr >= PM_MODEL_STATS_MAX);
	snprintf(st->v[st->nr].name, sizeof(st->v[0].name), "%s", name);
	st->v[st->nr++].value = v;
}

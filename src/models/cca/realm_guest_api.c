/* SPDX-License-Identifier: MIT */
/*
 * Guest code (privmem/guest.h): a realm's RSI calls, and its conversions
 * as Linux's realm guests make them (rsi_set_memory_range: to shared with
 * CHANGE_DESTROYED, to private without; again from new_base until done).
 * On another VM type every call ends the guest, as the SMC would fault.
 */
#include <privmem/guest.h>
#include "vcpu/vcpu.h"

static void require_realm(struct pm_guest *g, const char *call)
{
	pm_guest_require_vm_type(g, PM_VM_TYPE_REALM, call, "an Arm CCA realm");
}

uint64_t pm_guest_realm_ipa_width(struct pm_guest *g)
{
	require_realm(g, "pm_guest_realm_ipa_width");
	return (uint64_t)pm_guest_model_call(g, PM_CCA_CALL_REALM_CONFIG, 0, 0, 0);
}

uint64_t pm_guest_realm_ipa_state_set(struct pm_guest *g, struct pm_realm_ipa_state *req)
{
	require_realm(g, "pm_guest_realm_ipa_state_set");
	return (uint64_t)pm_guest_model_call(g, PM_CCA_CALL_IPA_STATE_SET, (uintptr_t)req, 0, 0);
}

int pm_guest_realm_ipa_state_get(struct pm_guest *g, uint64_t ipa)
{
	require_realm(g, "pm_guest_realm_ipa_state_get");
	return (int)pm_guest_model_call(g, PM_CCA_CALL_IPA_STATE_GET, ipa, 0, 0);
}

uint64_t pm_guest_realm_set_ripas(struct pm_guest *g, uint64_t base, uint64_t top, int ripas)
{
	struct pm_realm_ipa_state req = {
		.base = base, .top = top, .ripas = (uint32_t)ripas,
		.flags = ripas == PM_RIPAS_EMPTY ? PM_RSI_CHANGE_DESTROYED : PM_RSI_NO_CHANGE_DESTROYED,
	};

	require_realm(g, "pm_guest_realm_set_ripas");
	while (req.base < req.top) {
		uint64_t r = pm_guest_realm_ipa_state_set(g, &req);

		if (r)
			return r;
		if (req.response != PM_RSI_ACCEPT || req.new_base == req.base)
			return (1ULL << 63) | req.new_base;
		req.base = req.new_base;
	}
	return 0;
}

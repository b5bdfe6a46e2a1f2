/* SPDX-License-Identifier: MIT */
/*
 * The pkvm model (PM_VM_TYPE_PKVM, pkvm.c) as the rest of privmem and the
 * tests see it: the ops table is pm_model_pkvm (models/model.h); these
 * give access to the hyp behind it, for reports and checks.
 */
#ifndef PM_MODELS_PKVM_PKVM_H
#define PM_MODELS_PKVM_PKVM_H

#include "models/pkvm/hyp.h"

struct pm_vm;

/* The process-wide hyp, or NULL while no pkvm VM exists. Valid while the
 * caller keeps a pkvm VM alive. */
struct pkvm_hyp *pkvm_model_hyp(void);
/* The hyp's VM behind a pkvm VM (valid until the VM is destroyed). */
struct pkvm_vm *pkvm_model_vm(struct pm_vm *vm);

#endif

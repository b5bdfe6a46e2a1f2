/* SPDX-License-Identifier: MIT */
/* White-box access to the objects behind handles, for tests (testutil.h). */
#include <stdlib.h>
#include <privmem/privmem.h>
#include "uapi/handle.h"
#include "testutil.h"

struct pm_vm *pm_test_vm_of(int vm_handle)
{
	struct pm_file f;

	if (pm_handle_get(vm_handle, &f) || f.kind != PM_HANDLE_VM)
		abort();
	pm_file_put(&f);
	return f.obj;
}

struct pm_gmem *pm_test_gmem_of(int gmem_handle)
{
	struct pm_file f;

	if (pm_handle_get(gmem_handle, &f) || f.kind != PM_HANDLE_GMEM)
		abort();
	pm_file_put(&f);
	return f.obj;
}

int pm_test_gmem_page_size_flags(int vm)
{
	struct kvm_enable_cap cap = { .cap = PM_CAP_GUEST_MEMFD_PAGE_SIZE, .args = { 1 } };

	if (pm_kvm_ioctl(vm, KVM_ENABLE_CAP, &cap))
		abort();
	return vm;
}

/* SPDX-License-Identifier: MIT */
/* White-box access to the objects behind handles, for tests (testutil.h). */
#include <stdlib.h>
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

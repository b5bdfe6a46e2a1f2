/* SPDX-License-Identifier: MIT */
/* placeholder, replaced below */
#include "vcpu/x86/internal.h"
int pm_x86_bench(struct pm_x86_bench_result out[3], double scale)
{
	(void)out; (void)scale;
	return -ENOSYS;
}

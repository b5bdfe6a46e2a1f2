/* SPDX-License-Identifier: MIT */
/*
 * Coroutines: a vCPU's guest code runs on its own stack and switches to and
 * from the thread that called KVM_RUN. A coroutine is resumed by a host
 * thread (possibly a different one each time) and runs until it yields back
 * or its function returns.
 *
 * Every switch tells the sanitizers (ASan: __sanitizer_start/finish_switch_fiber;
 * TSan: __tsan_create/switch_to_fiber), or they report nonsense.
 *
 * A coroutine that has not finished can be destroyed: it is resumed once
 * more in "cancel" mode, pm_coro_yield() does not return to its caller but
 * unwinds (longjmp) to the coroutine's start, which then finishes.
 *
 * Not thread-safe per coroutine: one thread at a time resumes a given
 * coroutine (the vCPU's run lock guarantees it).
 */
#ifndef PM_VCPU_CORO_H
#define PM_VCPU_CORO_H

#include <stdbool.h>
#include <stddef.h>

struct pm_coro;
typedef void (*pm_coro_fn)(void *arg);

#define PM_CORO_DEFAULT_STACK (256 * 1024)

/* 0 or -ENOMEM. The stack has a guard page below it. */
int pm_coro_create(struct pm_coro **out, size_t stack_size, pm_coro_fn fn, void *arg);
/* Frees the coroutine, cancelling it first if it has not finished. Must not
 * be called from inside the coroutine. */
void pm_coro_destroy(struct pm_coro *c);

/* Host side: runs c until it yields (returns true) or finishes (false).
 * Resuming a finished coroutine is a bug. */
bool pm_coro_resume(struct pm_coro *c);
/* Coroutine side: switches back to the thread that resumed c. */
void pm_coro_yield(struct pm_coro *c);

bool pm_coro_finished(const struct pm_coro *c);
/* The coroutine running on this thread, or NULL on a host stack. */
struct pm_coro *pm_coro_current(void);

#endif

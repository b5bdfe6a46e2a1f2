/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the test programs (every file in tests/lib/ is linked into each).
 */
#ifndef PM_TESTS_TESTUTIL_H
#define PM_TESTS_TESTUTIL_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Touches the byte at addr once, reading it (write == false, the byte goes
 * to *val if val is not NULL) or storing *val, with a SIGBUS handler
 * installed only for the duration of the access (the previous action is
 * restored afterwards). Returns true if the access raised SIGBUS at addr,
 * false if it completed. Other signals are not caught, and a SIGBUS another
 * thread takes meanwhile gets the default action.
 *
 * Works under ASan (which honours a user SIGBUS handler: its
 * allow_user_segv_handler flag defaults to true) and TSan (which delivers
 * synchronous signals at once and supports siglongjmp out of a handler).
 * TSan does not check the access itself: a probe may race remaps on purpose.
 */
bool pm_test_sigbus(void *addr, bool write, uint8_t *val);
/* The same for SIGSEGV (a pKVM view's answer; SIGBUS is left alone, so a
 * SIGBUS there goes to whatever handles it, privmem's included). */
bool pm_test_sigsegv(void *addr, bool write, uint8_t *val);

/* Reads the byte at addr in a forked child, with handlers for SIGSEGV and
 * SIGBUS (which ASan honours): 1 if the read faulted, 0 if it completed,
 * -1 if the child could not tell. */
int pm_test_read_faults(const void *addr);

/* Runs fn(arg) in a forked child with stderr silenced; true if the child
 * died of SIGABRT (a PM_BUG_ON), false otherwise. */
bool pm_test_aborts(void (*fn)(void *), void *arg);

/* The VM behind a VM handle (white box; the handle keeps it alive);
 * aborts for anything else. */
struct pm_vm;
struct pm_vm *pm_test_vm_of(int vm_handle);

/* The guest_memfd behind a guest_memfd handle (white box, as above). */
struct pm_gmem;
struct pm_gmem *pm_test_gmem_of(int gmem_handle);

/* Enables privmem's guest_memfd page-size flags (PM_GUEST_MEMFD_FLAG_NO_1G,
 * _NO_HUGE) on a VM handle: KVM_ENABLE_CAP(PM_CAP_GUEST_MEMFD_PAGE_SIZE).
 * Aborts if that fails. Returns vm. */
int pm_test_gmem_page_size_flags(int vm);

/* SEV-SNP's launch digest: folds the PAGE_INFO of one page (type
 * KVM_SEV_SNP_PAGE_TYPE_*, at gpa) into d, as the firmware does. */
void pm_test_snp_page_info(uint8_t d[48], const uint8_t *page, uint8_t type, uint64_t gpa);
/* The VMSA KVM makes at LAUNCH_FINISH for a vCPU at reset but for CS, RIP
 * and RDX, laid out by hand (the AMD APM's save area), for digests. */
void pm_test_snp_reset_vmsa(uint8_t page[4096], uint16_t cs_sel, uint64_t cs_base, uint64_t rip,
			    uint64_t rdx);

/* Runs this program (argv) again with PRIVMEM_GMEM_IN_PLACE=1, privmem's
 * in-place conversion mode (read once per process), and waits for it:
 * its exit status. Call before the parent's tests, or after them. */
int pm_test_rerun_in_place(char **argv);

/* `call` fails as a system call does: -1 and errno `err` (cmocka asserts;
 * include cmocka.h first). */
#define assert_fails(call, err)                         \
	do {                                            \
		errno = 0;                              \
		assert_int_equal((long)(call), -1);     \
		assert_int_equal(errno, (err));         \
	} while (0)

#endif

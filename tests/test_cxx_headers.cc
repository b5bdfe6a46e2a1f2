// SPDX-License-Identifier: MIT
/*
 * The public headers compile as C++17 (g++ -Wall -Wextra -Werror, as the
 * Makefile builds this file) and the library links and works from C++: a
 * VMM written in C++ runs a guest whose code is a lambda, through
 * privmem/privmem.h and privmem/guest.h only.
 */
#include <cstdarg>
#include <cstddef>
#include <csetjmp>
#include <cstdint>
#include <cstring>
extern "C" {               // cmocka 1.1 declares C functions without saying so
#include <cmocka.h>
}

#include <sys/mman.h>
#include <privmem/kvm.h>
#include <privmem/privmem.h>
#include <privmem/guest.h>

static_assert(KVM_API_VERSION == 12, "KVM's API version");
static_assert(sizeof(kvm_userspace_memory_region2) == 160, "the memslot struct of Linux");
static_assert(PM_MEASUREMENT_SIZE == 48, "SHA-384");

namespace {

constexpr uint64_t kMem = 2 << 20;

struct guest_vm {
	int kvm = -1, vm = -1, gmem = -1, vcpu = -1;
	kvm_run *run = nullptr;
	uint8_t *shared = nullptr;

	guest_vm()
	{
		kvm_create_guest_memfd cg{};
		kvm_userspace_memory_region2 r{};

		kvm = pm_kvm_open();
		vm = pm_kvm_ioctl(kvm, KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM);
		cg.size = kMem;
		gmem = pm_kvm_ioctl(vm, KVM_CREATE_GUEST_MEMFD, &cg);
		shared = static_cast<uint8_t *>(mmap(nullptr, kMem, PROT_READ | PROT_WRITE,
						     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
		r.memory_size = kMem;
		r.flags = KVM_MEM_GUEST_MEMFD;
		r.userspace_addr = reinterpret_cast<uintptr_t>(shared);
		r.guest_memfd = static_cast<uint32_t>(gmem);
		assert_int_equal(pm_kvm_ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &r), 0);
		vcpu = pm_kvm_ioctl(vm, KVM_CREATE_VCPU, 0);
		run = static_cast<kvm_run *>(pm_kvm_mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0));
	}
	~guest_vm()
	{
		pm_kvm_munmap(run, 4096);
		pm_kvm_close(vcpu);
		munmap(shared, kMem);
		pm_kvm_close(gmem);
		pm_kvm_close(vm);
		pm_kvm_close(kvm);
	}
};

void test_a_cxx_vmm_runs_a_lambda_guest(void **)
{
	guest_vm m;
	uint64_t seen = 0;
	pm_ucall uc{};
	pm_guest_entry e{};

	assert_int_equal(pm_kvm_ioctl(m.kvm, KVM_GET_API_VERSION, 0), KVM_API_VERSION);
	assert_true(m.vcpu >= 0 && m.run != MAP_FAILED);
	e.fn = [](pm_guest *g, void *arg) {
		pm_guest_write64(g, 0x1000, 0xc0ffee);
		*static_cast<uint64_t *>(arg) = pm_guest_read64(g, 0x1000);
		pm_guest_sync(g, 42);
	};
	e.arg = &seen;
	assert_int_equal(pm_kvm_ioctl(m.vcpu, PM_KVM_SET_GUEST, &e), 0);
	assert_int_equal(pm_kvm_ioctl(m.vcpu, KVM_RUN, 0), 0);
	assert_int_equal(m.run->exit_reason, PM_EXIT_UCALL);
	assert_int_equal(pm_get_ucall(m.vcpu, &uc), PM_UCALL_SYNC);
	assert_int_equal(uc.args[0], 42);
	assert_int_equal(seen, 0xc0ffee);
	assert_int_equal(pm_kvm_ioctl(m.vcpu, KVM_RUN, 0), 0);
	assert_int_equal(pm_get_ucall(m.vcpu, nullptr), PM_UCALL_DONE);
}

} // namespace

int main()
{
	const CMUnitTest tests[] = {
		cmocka_unit_test(test_a_cxx_vmm_runs_a_lambda_guest),
	};

	return cmocka_run_group_tests(tests, nullptr, nullptr);
}

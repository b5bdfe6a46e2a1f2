/* SPDX-License-Identifier: MIT */
/*
 * A minimal VMM on privmem: one SEV-SNP VM, its guest_memfd and one memslot,
 * one vCPU whose guest converts memory both ways KVM lets it:
 *
 *  - implicitly: the guest validates a page with the C-bit set (private)
 *    without asking the VMM first; its access faults on a shared page, and
 *    KVM_RUN returns -1 with errno EFAULT and KVM_EXIT_MEMORY_FAULT
 *    (KVM_MEMORY_EXIT_FLAG_PRIVATE): the VMM converts the page
 *    (KVM_SET_MEMORY_ATTRIBUTES) and runs the vCPU again, which completes
 *    the instruction;
 *  - explicitly: the guest asks for a conversion by hypercall (the GHCB's
 *    Page State Change, which KVM turns into KVM_EXIT_HYPERCALL with
 *    KVM_HC_MAP_GPA_RANGE): the VMM converts the range and answers.
 *
 * After a conversion the VMM discards the copy the range left, as QEMU
 * does: the shared copy (madvise) or the private one (guest_memfd's punch
 * hole). The guest writes a secret into private memory and a message into
 * shared memory; the VMM checks it sees the message and not the secret.
 *
 * Build (after `make`): cc minimal_vmm.c $(PKG_CONFIG_PATH=build pkg-config
 * --cflags --libs privmem); `make check` builds and runs it. Prints what
 * happens and "ok", or what went wrong (exit 1).
 */
#define _DEFAULT_SOURCE            /* madvise, MAP_ANONYMOUS */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <linux/falloc.h>
#include <privmem/guest.h>
#include <privmem/privmem.h>

#define MEM        (2ULL << 20)          /* guest RAM at gpa 0 */
#define PAGE       4096ULL
#define SECRET_GPA 0x1000                 /* made private implicitly */
#define PSC_GPA    0x2000                 /* the PSC descriptor: a shared page */
#define MSG_GPA    0x3000                 /* made private explicitly, then shared */
#define SECRET     0x5ec12e7ULL

static const char message[] = "hello from the guest";

#define CHECK(cond)                                                              \
	do {                                                                     \
		if (!(cond)) {                                                   \
			fprintf(stderr, "minimal_vmm: %s:%d: %s failed (%s)\n",  \
				__FILE__, __LINE__, #cond, strerror(errno));     \
			exit(1);                                                 \
		}                                                                \
	} while (0)

/* ---- the guest ---- */

static void guest(struct pm_guest *g, void *arg)
{
	char padded[(sizeof(message) + 7) / 8 * 8] = { 0 };
	uint64_t word;

	(void)arg;
	/* Implicit: PVALIDATE of a shared page's private GPA. */
	PM_GUEST_ASSERT(g, pm_guest_snp_pvalidate(g, SECRET_GPA | PM_SNP_C_BIT, false, true) == 0);
	pm_guest_write64(g, SECRET_GPA | PM_SNP_C_BIT, SECRET);
	PM_GUEST_ASSERT(g, pm_guest_read64(g, SECRET_GPA | PM_SNP_C_BIT) == SECRET);

	/* Explicit: a Page State Change to private, then PVALIDATE (what
	 * make_private does); then back to shared, and a message there. */
	PM_GUEST_ASSERT(g, pm_guest_snp_make_private(g, MSG_GPA, 1, PSC_GPA, 1) == 0);
	pm_guest_write64(g, MSG_GPA | PM_SNP_C_BIT, SECRET);
	PM_GUEST_ASSERT(g, pm_guest_snp_make_shared(g, MSG_GPA, 1, PSC_GPA, 1) == 0);
	memcpy(padded, message, sizeof(message));
	for (size_t i = 0; i < sizeof(padded); i += 8) {
		memcpy(&word, padded + i, 8);
		pm_guest_write64(g, MSG_GPA + i, word);    /* no C-bit: shared */
	}
}

/* ---- the VMM ---- */

struct vmm {
	int kvm, vm, gmem, vcpu;
	struct kvm_run *run;
	uint8_t *shared;               /* the VMM's copy of shared pages */
};

static void convert(struct vmm *m, uint64_t gpa, uint64_t size, int private)
{
	struct kvm_memory_attributes a = {
		.address = gpa, .size = size, .attributes = private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0,
	};

	CHECK(pm_kvm_ioctl(m->vm, KVM_SET_MEMORY_ATTRIBUTES, &a) == 0);
	if (private)
		CHECK(madvise(m->shared + gpa, size, MADV_DONTNEED) == 0);
	else
		CHECK(pm_kvm_fallocate(m->gmem, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)gpa,
				       (off_t)size) == 0);
	printf("  converted [%#llx, %#llx) to %s\n", (unsigned long long)gpa,
	       (unsigned long long)(gpa + size), private ? "private" : "shared");
}

static void sev(struct vmm *m, uint32_t id, void *data)
{
	struct kvm_sev_cmd cmd = { .id = id, .data = (uint64_t)(uintptr_t)data };

	CHECK(pm_kvm_ioctl(m->vm, KVM_MEMORY_ENCRYPT_OP, &cmd) == 0);
}

static void vmm_create(struct vmm *m)
{
	struct kvm_enable_cap hc = { .cap = KVM_CAP_EXIT_HYPERCALL, .args = { 1ULL << KVM_HC_MAP_GPA_RANGE } };
	struct kvm_create_guest_memfd cg = { .size = MEM };
	struct kvm_userspace_memory_region2 slot = { .slot = 0, .memory_size = MEM, .flags = KVM_MEM_GUEST_MEMFD };
	struct kvm_sev_snp_launch_start start = { .policy = 0x30000 };
	struct kvm_sev_snp_launch_finish finish = { 0 };
	struct pm_guest_entry entry = { .fn = guest };

	m->kvm = pm_kvm_open();
	CHECK(pm_kvm_ioctl(m->kvm, KVM_GET_API_VERSION, 0) == KVM_API_VERSION);
	m->vm = pm_kvm_ioctl(m->kvm, KVM_CREATE_VM, KVM_X86_SNP_VM);
	CHECK(m->vm >= 0);
	CHECK(pm_kvm_ioctl(m->vm, KVM_ENABLE_CAP, &hc) == 0);
	m->gmem = pm_kvm_ioctl(m->vm, KVM_CREATE_GUEST_MEMFD, &cg);
	CHECK(m->gmem >= 0);
	m->shared = mmap(NULL, MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(m->shared != MAP_FAILED);
	slot.userspace_addr = (uintptr_t)m->shared;
	slot.guest_memfd = (uint32_t)m->gmem;
	CHECK(pm_kvm_ioctl(m->vm, KVM_SET_USER_MEMORY_REGION2, &slot) == 0);
	/* A launch that measures nothing: the guest's code is C, in this process. */
	sev(m, KVM_SEV_SNP_LAUNCH_START, &start);
	m->vcpu = pm_kvm_ioctl(m->vm, KVM_CREATE_VCPU, 0);
	CHECK(m->vcpu >= 0);
	sev(m, KVM_SEV_SNP_LAUNCH_FINISH, &finish);
	m->run = pm_kvm_mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, m->vcpu, 0);
	CHECK(m->run != MAP_FAILED);
	CHECK(pm_kvm_ioctl(m->vcpu, PM_KVM_SET_GUEST, &entry) == 0);
}

static void vmm_destroy(struct vmm *m)
{
	pm_kvm_munmap(m->run, PAGE);
	pm_kvm_close(m->vcpu);
	pm_kvm_close(m->gmem);
	pm_kvm_close(m->vm);
	pm_kvm_close(m->kvm);
	munmap(m->shared, MEM);
}

int main(void)
{
	unsigned int implicit = 0, explicit = 0;
	struct pm_ucall uc;
	struct vmm m;

	vmm_create(&m);
	for (;;) {
		int r = pm_kvm_ioctl(m.vcpu, KVM_RUN, 0);
		struct kvm_run *run = m.run;

		if (r && errno == EFAULT && run->exit_reason == KVM_EXIT_MEMORY_FAULT) {
			printf("KVM_EXIT_MEMORY_FAULT at %#llx (%s): an implicit conversion\n",
			       (unsigned long long)run->memory_fault.gpa,
			       run->memory_fault.flags & KVM_MEMORY_EXIT_FLAG_PRIVATE ? "private" : "shared");
			convert(&m, run->memory_fault.gpa, run->memory_fault.size,
				!!(run->memory_fault.flags & KVM_MEMORY_EXIT_FLAG_PRIVATE));
			implicit++;
			continue;
		}
		CHECK(r == 0);
		if (run->exit_reason == KVM_EXIT_HYPERCALL && run->hypercall.nr == KVM_HC_MAP_GPA_RANGE) {
			int private = !!(run->hypercall.args[2] & KVM_MAP_GPA_RANGE_ENCRYPTED);

			printf("KVM_EXIT_HYPERCALL KVM_HC_MAP_GPA_RANGE: an explicit conversion\n");
			convert(&m, run->hypercall.args[0], run->hypercall.args[1] * PAGE, private);
			run->hypercall.ret = 0;
			explicit++;
			continue;
		}
		CHECK(run->exit_reason == PM_EXIT_UCALL);
		if (pm_get_ucall(m.vcpu, &uc) == PM_UCALL_DONE)
			break;
		fprintf(stderr, "minimal_vmm: the guest failed: %s\n", uc.msg);
		return 1;
	}
	/* The host sees the message, and nothing of the secret. */
	CHECK(!memcmp(m.shared + MSG_GPA, message, sizeof(message)));
	for (uint64_t off = 0; off < MEM; off += 8)
		CHECK(*(uint64_t *)(m.shared + off) != SECRET);
	printf("%u implicit and %u explicit conversions; the host reads \"%s\"\n", implicit, explicit,
	       (const char *)(m.shared + MSG_GPA));
	CHECK(implicit >= 1 && explicit >= 2);
	vmm_destroy(&m);
	printf("ok\n");
	return 0;
}

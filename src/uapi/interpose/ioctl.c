/* SPDX-License-Identifier: MIT */
/*
 * ioctl(2) on KVM descriptors: privmem's pm_kvm_ioctl on the file's handle,
 * with the descriptors in the arguments and results translated:
 *  - KVM_CREATE_VM, KVM_CREATE_VCPU and KVM_CREATE_GUEST_MEMFD return a
 *    handle, which becomes a placeholder descriptor with KVM's flags (VM
 *    and vCPU descriptors are O_CLOEXEC, guest_memfd's are not);
 *  - KVM_SET_USER_MEMORY_REGION2's guest_memfd names a descriptor: it
 *    becomes the file's handle, a descriptor that is open but not a
 *    guest_memfd becomes a handle that is not one either (EINVAL, at the
 *    point of privmem's checks where Linux gives it), a closed one -1
 *    (EBADF).
 * Every other request goes to privmem as it is, so unknown ioctls get the
 * errno of the kind (EINVAL on /dev/kvm and vCPUs, ENOTTY on VMs and
 * guest_memfd). This is the hot path (KVM_RUN): one slot load for a
 * foreign descriptor, a reference count for ours.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <privmem/privmem.h>
#include "kvm/vm.h"
#include "vcpu/vcpu.h"
#include "uapi/interpose/interpose.h"

static int create_fd(struct ipose_file *f, unsigned long req, void *arg, enum ipose_kind kind,
		     bool cloexec)
{
	int handle = IPOSE_CALL(pm_kvm_ioctl(f->handle, req, arg));

	if (handle < 0)
		return -1;
	return ipose_fd_install(handle, kind, O_RDWR, cloexec);
}

static int set_region2(struct ipose_file *vm, void *arg)
{
	struct kvm_userspace_memory_region2 mem;
	struct ipose_file *g = NULL;
	int r;

	/* Copied as the kernel copies it: a pointer the program cannot read
	 * is privmem's EFAULT (which it gives for the same pointer). */
	if (pm_copy_from_user(&mem, arg, sizeof(mem)))
		return IPOSE_CALL(pm_kvm_ioctl(vm->handle, KVM_SET_USER_MEMORY_REGION2, arg));
	if (mem.flags & KVM_MEM_GUEST_MEMFD) {
		int fd = (int)mem.guest_memfd;

		g = fd >= 0 ? ipose_fd_get(fd) : NULL;
		if (g && !g->dead)
			mem.guest_memfd = (__u32)g->handle;
		else if (g || (fd >= 0 && LIBC(fcntl)(fd, F_GETFD) >= 0))
			mem.guest_memfd = (__u32)vm->handle;   /* open, not a guest_memfd of ours */
		else
			mem.guest_memfd = (__u32)-1;           /* not open */
	}
	r = IPOSE_CALL(pm_kvm_ioctl(vm->handle, KVM_SET_USER_MEMORY_REGION2, &mem));
	ipose_file_put(g);
	return r;
}

/* A file privmem cannot serve in this process (interpose.h): KVM answers
 * EIO to VM and vCPU ioctls from another mm; /dev/kvm answers what needs
 * no state. */
static long dead_ioctl(struct ipose_file *f, unsigned long req, unsigned long arg)
{
	switch (f->kind) {
	case IPOSE_SYS:
		switch (req) {
		case KVM_GET_API_VERSION:
			return arg ? -EINVAL : KVM_API_VERSION;
		case KVM_CHECK_EXTENSION:
			return pm_check_extension(NULL, arg);
		case KVM_GET_VCPU_MMAP_SIZE:
			return arg ? -EINVAL : PM_VCPU_MMAP_SIZE;
		case KVM_CREATE_VM:
			return -EIO;
		default:
			return _IOC_TYPE(req) == PMIO ? -EIO : -EINVAL;
		}
	case IPOSE_GMEM:
		return _IOC_TYPE(req) == PMIO ? -EIO : -ENOTTY;
	default:
		return -EIO;
	}
}

static int file_ioctl(struct ipose_file *f, unsigned long req, void *arg)
{
	long r;

	if (f->dead) {
		r = dead_ioctl(f, req, (unsigned long)arg);
		if (r < 0) {
			errno = (int)-r;
			return -1;
		}
		return (int)r;
	}
	switch (f->kind) {
	case IPOSE_SYS:
		if (req == KVM_CREATE_VM)
			return create_fd(f, req, arg, IPOSE_VM, true);
		break;
	case IPOSE_VM:
		if (req == KVM_CREATE_VCPU)
			return create_fd(f, req, arg, IPOSE_VCPU, true);
		if (req == KVM_CREATE_GUEST_MEMFD)
			return create_fd(f, req, arg, IPOSE_GMEM, false);
		if (req == KVM_SET_USER_MEMORY_REGION2)
			return set_region2(f, arg);
		break;
	default:
		break;
	}
	return IPOSE_CALL(pm_kvm_ioctl(f->handle, req, arg));
}

int ioctl(int fd, unsigned long req, ...)
{
	struct ipose_file *f;
	va_list ap;
	void *arg;
	int r;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (ipose_inside || !ipose_fd_maybe_ours(fd) || !(f = ipose_fd_get(fd)))
		return LIBC(ioctl)(fd, req, arg);
	r = file_ioctl(f, req, arg);
	ipose_file_put(f);
	return r;
}

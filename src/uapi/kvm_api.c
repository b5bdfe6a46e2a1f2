/* SPDX-License-Identifier: MIT */
/*
 * The KVM facade: pm_kvm_* resolve a handle, then call the kind's entry in
 * a const table of file operations, as the kernel calls a file's f_op. Each
 * operation copies its argument in (copy_from_user: a pointer the process
 * cannot read, NULL among them, is EFAULT, never a crash), calls the
 * internal function, copies results out (copy_to_user, likewise), and
 * turns -errno into -1/errno. Missing operations return what Linux returns
 * for a file without them.
 */
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <privmem/guest.h>
#include <privmem/privmem.h>
#include "gmem/gmem.h"
#include "host/pool.h"
#include "kvm/vm.h"
#include "memslot/memslot.h"
#include "uapi/handle.h"
#include "uapi/vfs.h"
#include "vcpu/vcpu.h"

struct pm_file_ops {
	long (*ioctl)(const struct pm_file *f, unsigned long req, unsigned long arg);
	int unknown_ioctl;         /* errno for an ioctl the kind does not know */
	int (*fallocate)(const struct pm_file *f, int mode, int64_t off, int64_t len);
	void *(*mmap)(const struct pm_file *f, void *addr, size_t len, int prot, int flags,
		      int64_t off, int *err);
	void (*fstat)(const struct pm_file *f, struct stat *st);
};

static inline long pm_ret(long r)
{
	if (r < 0) {
		errno = (int)-r;
		return -1;
	}
	return r;
}

#define COPY_IN(dst, arg) do {                                           \
		if (pm_copy_from_user(&(dst), (const void *)(arg), sizeof(dst))) \
			return -EFAULT;                                  \
	} while (0)
#define COPY_OUT(arg, src) \
	(pm_copy_to_user((void *)(arg), &(src), sizeof(src)) ? -EFAULT : 0)

/* ---- system handle ---- */

static long sys_create_vm(unsigned long type)
{
	struct pm_file f = { .kind = PM_HANDLE_VM };
	struct pm_vm *vm;
	int r = pm_vm_create(type, &vm);

	if (r)
		return r;
	f.obj = vm;
	r = pm_handle_install(&f);
	if (r < 0)
		pm_vm_put(vm);
	return r;
}

/* A model's process-wide counters; the caller names the model by VM type. */
static long sys_get_model_stats(unsigned long arg)
{
	const struct pm_model_ops *model;
	struct pm_model_stats st;
	__u32 type;
	long r;

	COPY_IN(st, arg);       /* _IOWR: the whole struct, as the kernel's */
	type = st.vm_type;
	model = pm_model_for_type(type);
	if (!model)
		return -EINVAL;
	if (!model->get_process_stats)
		return -ENOTTY;
	memset(&st, 0, sizeof(st));
	st.vm_type = type;
	r = model->get_process_stats(&st);
	return r ? r : COPY_OUT(arg, st);
}

static long sys_ioctl(const struct pm_file *f, unsigned long req, unsigned long arg)
{
	struct pm_pool_config cfg;
	struct pm_pool_stats ps;

	switch (req) {
	case KVM_GET_API_VERSION:
		return arg ? -EINVAL : KVM_API_VERSION;
	case KVM_CREATE_VM:
		return sys_create_vm(arg);
	case KVM_CHECK_EXTENSION:
		return pm_check_extension(NULL, arg);
	case KVM_GET_VCPU_MMAP_SIZE:
		return arg ? -EINVAL : PM_VCPU_MMAP_SIZE;
	case PM_KVM_GET_POOL_STATS:
		if (!arg)
			return -EFAULT;
		pm_pool_get_stats(&ps);
		return COPY_OUT(arg, ps);
	case PM_KVM_SET_POOL_CONFIG:
		COPY_IN(cfg, arg);
		return pm_pool_configure_nodes(cfg.size, cfg.watermark, (unsigned int)PM_MIN(cfg.nodes, 1000));
	case PM_KVM_GET_MODEL_STATS:
		return sys_get_model_stats(arg);
	case KVM_GET_SUPPORTED_CPUID:
	case KVM_GET_MSR_INDEX_LIST:
	case KVM_GET_MSR_FEATURE_INDEX_LIST:
	case KVM_GET_MSRS:
		return pm_x86_sys_ioctl(req, arg);
	default:
		return -EINVAL;
	}
}

static void sys_fstat(const struct pm_file *f, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = S_IFCHR | 0660;
	st->st_rdev = makedev(10, 232);   /* /dev/kvm */
	st->st_nlink = 1;
	st->st_blksize = PM_PAGE_SIZE;
}

/* ---- VM handle ---- */

static long vm_create_vcpu(struct pm_vm *vm, unsigned long id)
{
	struct pm_file f = { .kind = PM_HANDLE_VCPU };
	struct pm_vcpu *vcpu;
	int r = pm_vcpu_create(vm, id, &vcpu);

	if (r)
		return r;
	f.obj = vcpu;
	pm_vm_get(vm);          /* the vCPU handle's reference */
	r = pm_handle_install(&f);
	if (r < 0)
		pm_vm_put(vm);  /* the vCPU stays with its VM, as in KVM */
	return r;
}

static long vm_set_memory_region(struct pm_vm *vm, unsigned long req, unsigned long arg)
{
	struct kvm_userspace_memory_region2 mem;
	struct pm_file gf = { 0 };
	int gerr = 0;
	long r;

	memset(&mem, 0, sizeof(mem));
	if (pm_copy_from_user(&mem, (const void *)arg, req == KVM_SET_USER_MEMORY_REGION ?
			      sizeof(struct kvm_userspace_memory_region) : sizeof(mem)))
		return -EFAULT;
	if (req == KVM_SET_USER_MEMORY_REGION &&
	    (mem.flags & ~(KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_READONLY)))
		return -EINVAL;
	if (mem.flags & KVM_MEM_GUEST_MEMFD) {
		gerr = pm_handle_get((int)mem.guest_memfd, &gf);
		if (!gerr && gf.kind != PM_HANDLE_GMEM) {
			pm_file_put(&gf);
			gf.kind = PM_HANDLE_NONE;
			gerr = -EINVAL;
		}
	}
	r = pm_memslot_set(vm, &mem, gerr ? NULL : gf.obj, gerr);
	if (!gerr && gf.kind == PM_HANDLE_GMEM)
		pm_file_put(&gf);
	return r;
}

static long vm_create_guest_memfd(struct pm_vm *vm, unsigned long arg)
{
	struct kvm_create_guest_memfd args;
	struct pm_file f = { .kind = PM_HANDLE_GMEM };
	struct pm_gmem *g;
	long r;

	COPY_IN(args, arg);
	if (args.flags & ~pm_vm_gmem_valid_flags(vm))
		return -EINVAL;
	if ((int64_t)args.size <= 0 || !PM_ALIGNED(args.size, PM_PAGE_SIZE))
		return -EINVAL;
	r = pm_gmem_create(vm, args.size, args.flags, &g);
	if (r)
		return r;
	f.obj = g;
	r = pm_handle_install(&f);
	if (r < 0)
		pm_gmem_put(g);
	return r;
}

/* PM_KVM_GET_MEASUREMENT (size 48) and _MEASUREMENT64 (64). */
static long vm_get_measurement(struct pm_vm *vm, unsigned long arg, size_t size)
{
	uint8_t m[sizeof(struct pm_measurement64)] = { 0 };
	int r;

	if (!vm->model->get_measurement)
		return -ENOTTY;
	if (!arg)
		return -EFAULT;
	r = vm->model->get_measurement(vm, m, size);
	return r ? r : (pm_copy_to_user((void *)arg, m, size) ? -EFAULT : 0);
}

/* The VM's statistics, privmem's or its model's, copied out. */
static long vm_get_stats(struct pm_vm *vm, unsigned long req, unsigned long arg)
{
	union {
		struct pm_vm_stats vm;
		struct pm_model_stats model;
	} u;
	long r;

	if (req == PM_KVM_GET_MODEL_STATS && !vm->model->get_stats)
		return -ENOTTY;
	if (!arg)
		return -EFAULT;
	memset(&u, 0, sizeof(u));
	if (req == PM_KVM_GET_VM_STATS) {
		pm_vm_get_stats(vm, &u.vm);
		return COPY_OUT(arg, u.vm);
	}
	r = vm->model->get_stats(vm, &u.model);
	return r ? r : COPY_OUT(arg, u.model);
}

static long vm_ioctl(const struct pm_file *f, unsigned long req, unsigned long arg)
{
	struct pm_vm *vm = f->obj;
	struct kvm_memory_attributes attrs;
	struct kvm_enable_cap cap;

	/* A bugged VM answers KVM's ioctls with EIO (as KVM's vm_dead);
	 * privmem's own statistics stay readable. */
	if (pm_vm_is_bugged(vm) && _IOC_TYPE(req) == KVMIO)
		return -EIO;
	switch (req) {
	case KVM_CREATE_VCPU:
		return vm_create_vcpu(vm, arg);
	case KVM_CHECK_EXTENSION:
		return pm_check_extension(vm, arg);
	case KVM_SET_USER_MEMORY_REGION:
	case KVM_SET_USER_MEMORY_REGION2:
		return vm_set_memory_region(vm, req, arg);
	case KVM_SET_MEMORY_ATTRIBUTES:
		COPY_IN(attrs, arg);
		return pm_vm_set_memory_attributes(vm, &attrs);
	case KVM_CREATE_GUEST_MEMFD:
		return vm_create_guest_memfd(vm, arg);
	case KVM_ENABLE_CAP:
		COPY_IN(cap, arg);
		return pm_vm_enable_cap(vm, &cap);
	case PM_KVM_GET_VM_STATS:
	case PM_KVM_GET_MODEL_STATS:
		return vm_get_stats(vm, req, arg);
	case KVM_MEMORY_ENCRYPT_OP:
		return vm->model->mem_enc_op ? vm->model->mem_enc_op(vm, arg) : -ENOTTY;
	case PM_KVM_GET_MEASUREMENT:
		return vm_get_measurement(vm, arg, sizeof(struct pm_measurement));
	case PM_KVM_GET_MEASUREMENT64:
		return vm_get_measurement(vm, arg, sizeof(struct pm_measurement64));
	case KVM_CREATE_IRQCHIP:
	case KVM_SET_TSS_ADDR:
	case KVM_SET_IDENTITY_MAP_ADDR:
	case KVM_SET_NR_MMU_PAGES:
	case KVM_GET_NR_MMU_PAGES:
	case KVM_GET_TSC_KHZ:
		return pm_vm_x86_ioctl(vm, req, arg);
	default:
		if (vm->model->vm_ioctl && _IOC_TYPE(req) == PMIO)
			return vm->model->vm_ioctl(vm, req, arg);
		return -ENOTTY;
	}
}

/* VM and vCPU files are anonymous inodes: no type bits, one shared inode. */
static void anon_fstat(const struct pm_file *f, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = 0600;
	st->st_ino = 1;
	st->st_nlink = 1;
	st->st_blksize = PM_PAGE_SIZE;
}

/* ---- vCPU handle ---- */

static long vcpu_pre_fault(struct pm_vcpu *vcpu, unsigned long arg)
{
	struct kvm_pre_fault_memory range;
	long r;

	COPY_IN(range, arg);
	r = pm_vcpu_pre_fault(vcpu, &range);
	/* The remaining range goes back, as KVM's. */
	return COPY_OUT(arg, range) ? -EFAULT : r;
}

static long vcpu_ioctl(const struct pm_file *f, unsigned long req, unsigned long arg)
{
	struct pm_vcpu *vcpu = f->obj;
	struct pm_guest_entry entry;

	if (pm_vm_is_bugged(vcpu->vm) && _IOC_TYPE(req) == KVMIO)
		return -EIO;
	switch (req) {
	case KVM_RUN:
		return arg ? -EINVAL : pm_vcpu_run(vcpu);
	case KVM_PRE_FAULT_MEMORY:
		return vcpu_pre_fault(vcpu, arg);
	case PM_KVM_SET_GUEST:
		COPY_IN(entry, arg);
		return pm_vcpu_set_guest(vcpu, &entry);
	case KVM_MEMORY_ENCRYPT_OP:
		return vcpu->vm->model->vcpu_mem_enc_op ?
		       vcpu->vm->model->vcpu_mem_enc_op(vcpu, arg) : -ENOTTY;
	default: {
		long r = pm_vcpu_x86_ioctl(vcpu, req, arg);

		return r == -ENOTTY ? -EINVAL : r;
	}
	}
}

uint64_t pm_get_ucall(int handle, struct pm_ucall *uc)
{
	struct pm_file f;
	uint64_t cmd = PM_UCALL_NONE;

	if (pm_handle_get(handle, &f))
		return PM_UCALL_NONE;
	if (f.kind == PM_HANDLE_VCPU)
		cmd = pm_vcpu_get_ucall(f.obj, uc);
	pm_file_put(&f);
	return cmd;
}

/* Mappings of kvm_run pages, for pm_kvm_munmap (each holds a VM reference). */
struct run_map {
	void *addr;
	size_t len;
	struct pm_vm *vm;
	struct run_map *next;
};
static pthread_mutex_t run_maps_lock = PTHREAD_MUTEX_INITIALIZER;
static struct run_map *run_maps;          /* run_maps_lock */

/*
 * Each mmap maps the vCPU's kvm_run page again (a duplicate of the
 * library's shared mapping, mremap with old size 0), as each mmap of a
 * vCPU file in Linux is a mapping of KVM's page: the VMM may unmap or
 * replace its mapping (a MAP_FIXED mmap over it) and the library still
 * writes its own, never whatever the VMM put there.
 */
static void *vcpu_mmap(const struct pm_file *f, void *addr, size_t len, int prot, int flags,
		       int64_t off, int *err)
{
	struct pm_vcpu *vcpu = f->obj;
	struct run_map *m;
	void *p;

	/* Only the kvm_run page exists; it cannot be placed (MAP_FIXED or
	 * MAP_FIXED_NOREPLACE: never somewhere else than demanded) or copied. */
	if (off != 0 || len > PM_VCPU_MMAP_SIZE || (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) ||
	    (flags & MAP_TYPE) == MAP_PRIVATE) {
		*err = -EINVAL;
		return NULL;
	}
	m = pm_zalloc(sizeof(*m));
	if (!m) {
		*err = -ENOMEM;
		return NULL;
	}
	p = mremap(vcpu->run, 0, len, MREMAP_MAYMOVE);
	if (p == MAP_FAILED || (prot != (PROT_READ | PROT_WRITE) && mprotect(p, len, prot))) {
		*err = -errno;
		if (p != MAP_FAILED)
			munmap(p, len);
		free(m);
		return NULL;
	}
	m->addr = p;
	m->len = len;
	m->vm = vcpu->vm;
	pm_vm_get(m->vm);
	pthread_mutex_lock(&run_maps_lock);
	m->next = run_maps;
	run_maps = m;
	pthread_mutex_unlock(&run_maps_lock);
	return p;
}

/*
 * Unmaps [addr, addr + len) of one kvm_run mapping, as munmap of part of
 * a VMA: the parts outside the range stay mapped (and keep their record,
 * split in two if the range is inside; each record holds a VM reference).
 * A range not inside one mapping is EINVAL.
 */
static int run_munmap(void *addr, size_t len)
{
	uintptr_t s = (uintptr_t)addr, e = s + len;
	struct run_map *m = NULL, **link = NULL, *tail;

	tail = pm_zalloc(sizeof(*tail));        /* for a range in the middle */
	if (!tail)
		return -ENOMEM;
	pthread_mutex_lock(&run_maps_lock);
	for (struct run_map **pm = &run_maps; *pm; pm = &(*pm)->next) {
		uintptr_t ms = (uintptr_t)(*pm)->addr;

		if (ms <= s && e <= ms + (*pm)->len) {
			m = *pm;
			link = pm;
			break;
		}
	}
	if (m) {
		uintptr_t ms = (uintptr_t)m->addr, me = ms + m->len;

		if (ms < s && e < me) {
			*tail = (struct run_map){ .addr = (void *)e, .len = me - e, .vm = m->vm,
						  .next = m->next };
			pm_vm_get(m->vm);
			m->next = tail;
			tail = NULL;
		}
		if (ms < s) {
			m->len = s - ms;
			m = NULL;               /* the head stays */
		} else if (e < me) {
			m->addr = (void *)e;
			m->len = me - e;
			m = NULL;               /* the tail stays */
		} else {
			*link = m->next;
		}
		pthread_mutex_unlock(&run_maps_lock);
		munmap(addr, len);
	} else {
		pthread_mutex_unlock(&run_maps_lock);
		free(tail);
		return -EINVAL;
	}
	free(tail);
	if (m) {
		pm_vm_put(m->vm);
		free(m);
	}
	return 0;
}

/* ---- guest_memfd handle ---- */

static int gmem_fallocate(const struct pm_file *f, int mode, int64_t off, int64_t len)
{
	return pm_gmem_fallocate(f->obj, mode, off, len);
}

static long gmem_get_file_stats(struct pm_gmem *g, unsigned long arg)
{
	struct pm_gmem_file_stats fs = { 0 };
	struct pm_gmem_stats st;

	pm_gmem_get_stats(g, &st);
	fs.pages = st.pages;
	memcpy(fs.node_pages, st.node_pages, sizeof(fs.node_pages));
	return COPY_OUT(arg, fs);
}

/* KVM_SET_MEMORY_ATTRIBUTES2: ENOTTY unless in-place mode is on (as
 * kvm_gmem_ioctl when gmem_in_place_conversion is off), EFAULT for the
 * argument, then the file's checks; the struct goes back (error_offset)
 * only when the conversion failed after them (EAGAIN, ENOMEM). */
static long gmem_set_attributes(const struct pm_file *f, unsigned long arg)
{
	struct kvm_memory_attributes2 a;
	long r;

	if (!pm_gmem_in_place_conversion())
		return -ENOTTY;
	COPY_IN(a, arg);
	r = pm_gmem_set_attributes(f->obj, &a);
	if ((r == -EAGAIN || r == -ENOMEM) && COPY_OUT(arg, a))
		return -EFAULT;
	return r;
}

static long gmem_ioctl(const struct pm_file *f, unsigned long req, unsigned long arg)
{
	struct pm_gmem_pin pin;
	uint64_t npages = pm_gmem_size(f->obj) >> PM_PAGE_SHIFT;

	switch (req) {
	case KVM_SET_MEMORY_ATTRIBUTES2:
		return gmem_set_attributes(f, arg);
	case PM_GUEST_MEMFD_PIN:
	case PM_GUEST_MEMFD_UNPIN:
		COPY_IN(pin, arg);
		if (!pin.size || !PM_ALIGNED(pin.offset | pin.size, PM_PAGE_SIZE) ||
		    pin.offset + pin.size < pin.offset)
			return -EINVAL;
		if ((pin.offset + pin.size) >> PM_PAGE_SHIFT > npages)
			return req == PM_GUEST_MEMFD_PIN ? -EFAULT : -EINVAL;
		return (req == PM_GUEST_MEMFD_PIN ? pm_gmem_pin : pm_gmem_unpin)
			(f->obj, pin.offset >> PM_PAGE_SHIFT, (pin.offset + pin.size) >> PM_PAGE_SHIFT);
	case PM_GUEST_MEMFD_GET_STATS:
		return gmem_get_file_stats(f->obj, arg);
	default:
		return -ENOTTY;
	}
}

static void *gmem_mmap(const struct pm_file *f, void *addr, size_t len, int prot, int flags,
		       int64_t off, int *err)
{
	return pm_gmem_mmap(f->obj, addr, len, prot, flags, off, err);
}

static void gmem_fstat(const struct pm_file *f, struct stat *st)
{
	pm_gmem_fstat(f->obj, st);
}

static const struct pm_file_ops pm_fops[PM_HANDLE_NR_KINDS] = {
	[PM_HANDLE_SYSTEM] = { .ioctl = sys_ioctl, .unknown_ioctl = EINVAL, .fstat = sys_fstat },
	[PM_HANDLE_VM]     = { .ioctl = vm_ioctl, .unknown_ioctl = ENOTTY, .fstat = anon_fstat },
	[PM_HANDLE_VCPU]   = { .ioctl = vcpu_ioctl, .unknown_ioctl = EINVAL, .mmap = vcpu_mmap,
			       .fstat = anon_fstat },
	[PM_HANDLE_GMEM]   = { .ioctl = gmem_ioctl, .unknown_ioctl = ENOTTY, .fallocate = gmem_fallocate,
			       .mmap = gmem_mmap, .fstat = gmem_fstat },
};

/* ---- the public entry points ---- */

int pm_kvm_open(void)
{
	struct pm_file f = { .kind = PM_HANDLE_SYSTEM };

	return (int)pm_ret(pm_handle_install(&f));
}

int pm_kvm_close(int handle)
{
	return (int)pm_ret(pm_handle_close(handle));
}

int pm_kvm_ioctl(int handle, unsigned long request, ...)
{
	const struct pm_file_ops *ops;
	struct pm_file f;
	unsigned long arg;
	unsigned int slot;
	bool pinned;
	va_list ap;
	long r;

	va_start(ap, request);
	arg = va_arg(ap, unsigned long);
	va_end(ap);
	r = pm_handle_pin(handle, &f, &slot);
	if (r)
		return (int)pm_ret(r);
	/* vCPU calls (KVM_RUN) may run for ever: a reference, not a pin. */
	pinned = f.kind != PM_HANDLE_VCPU;
	if (!pinned) {
		pm_file_get(&f);
		pm_handle_unpin(slot);
	}
	ops = &pm_fops[f.kind];
	r = ops->ioctl ? ops->ioctl(&f, request, arg) : -ops->unknown_ioctl;
	if (pinned)
		pm_handle_unpin(slot);
	else
		pm_file_put(&f);
	return (int)pm_ret(r);
}

int pm_kvm_fallocate(int handle, int mode, off_t offset, off_t len)
{
	struct pm_file f;
	unsigned int slot;
	long r = pm_handle_pin(handle, &f, &slot);

	if (r)
		return (int)pm_ret(r);
	r = pm_vfs_fallocate_check(mode, offset, len, f.kind == PM_HANDLE_GMEM);
	if (!r)
		r = pm_fops[f.kind].fallocate ? pm_fops[f.kind].fallocate(&f, mode, offset, len)
					      : -EOPNOTSUPP;
	pm_handle_unpin(slot);
	return (int)pm_ret(r);
}

/* No privmem file can be read (guest_memfd refuses it); only a
 * guest_memfd can be written (gmem_write.c), the others refuse. */
static ssize_t rw_refused(int handle)
{
	struct pm_file f;
	long r = pm_handle_get(handle, &f);

	if (r)
		return pm_ret(r);
	pm_file_put(&f);
	return pm_ret(-EINVAL);
}

/* offset < 0: write() at the file's position. */
static ssize_t gmem_write(int handle, const void *buf, size_t count, off_t offset)
{
	struct pm_file f;
	long r = pm_handle_get(handle, &f);

	if (r)
		return pm_ret(r);
	if (f.kind != PM_HANDLE_GMEM)
		r = -EINVAL;
	else if (offset < 0)
		r = pm_gmem_write_at_pos(f.obj, buf, count);
	else
		r = pm_gmem_write(f.obj, buf, count, (uint64_t)offset);
	pm_file_put(&f);
	return pm_ret(r);
}

ssize_t pm_kvm_read(int handle, void *buf, size_t count) { return rw_refused(handle); }
ssize_t pm_kvm_write(int handle, const void *buf, size_t count)
{
	return gmem_write(handle, buf, count, -1);
}

/* pread64/pwrite64 refuse a negative offset before looking at the fd. */
ssize_t pm_kvm_pread(int handle, void *buf, size_t count, off_t offset)
{
	return offset < 0 ? pm_ret(-EINVAL) : rw_refused(handle);
}

ssize_t pm_kvm_pwrite(int handle, const void *buf, size_t count, off_t offset)
{
	return offset < 0 ? pm_ret(-EINVAL) : gmem_write(handle, buf, count, offset);
}

void *pm_kvm_mmap(void *addr, size_t length, int prot, int flags, int handle, off_t offset)
{
	struct pm_file f;
	int err = 0;
	void *p = NULL;
	long r;

	/* x86's mmap refuses an unaligned offset before looking at the fd. */
	if (!PM_ALIGNED((uint64_t)offset, PM_PAGE_SIZE)) {
		errno = EINVAL;
		return MAP_FAILED;
	}
	r = pm_handle_get(handle, &f);
	if (r) {
		errno = (int)-r;
		return MAP_FAILED;
	}
	if (!length || offset < 0)
		err = -EINVAL;
	else if (!pm_fops[f.kind].mmap)
		err = -ENODEV;
	else
		p = pm_fops[f.kind].mmap(&f, addr, PM_ALIGN_UP(length, PM_PAGE_SIZE), prot, flags,
					 offset, &err);
	pm_file_put(&f);
	if (err) {
		errno = -err;
		return MAP_FAILED;
	}
	return p;
}

int pm_kvm_munmap(void *addr, size_t length)
{
	size_t len = PM_ALIGN_UP(length, PM_PAGE_SIZE);

	if (!length || !PM_ALIGNED((uintptr_t)addr, PM_PAGE_SIZE))
		return (int)pm_ret(-EINVAL);
	if (pm_gmem_munmap(addr, len) == 0)
		return 0;
	return (int)pm_ret(run_munmap(addr, len));
}

int pm_kvm_madvise(void *addr, size_t length, int advice)
{
	return (int)pm_ret(pm_gmem_madvise(addr, length, advice));
}

int pm_kvm_mbind(void *addr, unsigned long len, int mode, const unsigned long *nodemask,
		 unsigned long maxnode, unsigned int flags)
{
	return (int)pm_ret(pm_gmem_mbind(addr, len, (unsigned long)(unsigned int)mode, nodemask,
					 maxnode, flags));
}

int pm_kvm_get_mempolicy(int *mode, unsigned long *nodemask, unsigned long maxnode, void *addr,
			 unsigned long flags)
{
	bool handled;
	int r = pm_gmem_get_mempolicy(mode, nodemask, maxnode, addr, flags, &handled);

	if (!r && !handled && syscall(SYS_get_mempolicy, mode, nodemask, maxnode, addr, flags))
		r = -errno;
	return (int)pm_ret(r);
}

int pm_kvm_fstat(int handle, struct stat *st)
{
	struct stat kst;
	struct pm_file f;
	long r = pm_handle_get(handle, &f);

	if (r)
		return (int)pm_ret(r);
	pm_fops[f.kind].fstat(&f, &kst);
	r = COPY_OUT(st, kst);
	pm_file_put(&f);
	return (int)pm_ret(r);
}

const char *pm_version(void)
{
	return PM_VERSION;
}

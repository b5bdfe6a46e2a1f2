/* SPDX-License-Identifier: MIT */
/*
 * A program written for Linux KVM, NOT linked with privmem (only its
 * headers, for KVM's constants): run by tests/test_interpose.c under
 * `privmem exec`, it checks with plain system calls that the interposer
 * gives it Linux's answers. One scenario per argument; prints "ok" and
 * exits 0, or prints what failed and exits 1.
 *
 * What privmem alone can answer is used to tell that privmem, not the
 * host's /dev/kvm, answered: PM_KVM_GET_POOL_STATS (privmem's pool, sized
 * by the test) and the guest_memfd page counts it reports.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>
#include <privmem/guest.h>
#include <privmem/privmem.h>

#define MB (1UL << 20)
#define PAGE 4096UL

#define CHECK(cond) do {                                                     \
		if (!(cond)) {                                               \
			printf("FAIL %s:%d: %s (errno %d %s)\n", __FILE__, __LINE__, \
			       #cond, errno, strerror(errno));               \
			exit(1);                                             \
		}                                                            \
	} while (0)
/* A call that must fail with errno e. */
#define FAILS(call, e) do {                                                  \
		errno = 0;                                                   \
		long r_ = (long)(call);                                      \
		if (r_ != -1 || errno != (e)) {                              \
			printf("FAIL %s:%d: %s = %ld errno %d (%s), want -1 errno %d (%s)\n", \
			       __FILE__, __LINE__, #call, r_, errno, strerror(errno), \
			       (e), strerror(e));                            \
			exit(1);                                             \
		}                                                            \
	} while (0)

static char *self_path;

static int open_kvm(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	CHECK(fd >= 0);
	return fd;
}

static uint64_t pool_in_use(int kvm)
{
	struct pm_pool_stats st;

	CHECK(ioctl(kvm, PM_KVM_GET_POOL_STATS, &st) == 0);
	return st.in_use;
}

static int create_vm(int kvm, unsigned long type)
{
	struct kvm_enable_cap page_size = { .cap = PM_CAP_GUEST_MEMFD_PAGE_SIZE, .args = { 1 } };
	int vm = ioctl(kvm, KVM_CREATE_VM, type);

	CHECK(vm >= 0);
	/* privmem's page-size flags, used below (a KVM client never sees them). */
	CHECK(ioctl(vm, KVM_ENABLE_CAP, &page_size) == 0);
	return vm;
}

static int create_gmem(int vm, uint64_t size, uint64_t flags)
{
	struct kvm_create_guest_memfd g = { .size = size, .flags = flags };
	int fd = ioctl(vm, KVM_CREATE_GUEST_MEMFD, &g);

	CHECK(fd >= 0);
	return fd;
}

static int set_region(int vm, uint32_t slot, uint64_t gpa, uint64_t size, void *hva, int gmem)
{
	struct kvm_userspace_memory_region2 r = {
		.slot = slot, .flags = KVM_MEM_GUEST_MEMFD, .guest_phys_addr = gpa,
		.memory_size = size, .userspace_addr = (uintptr_t)hva,
		.guest_memfd = (uint32_t)gmem, .guest_memfd_offset = 0,
	};

	return ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &r);
}

/* ---- scenarios ---- */

static void s_api(void)
{
	int kvm = open_kvm(), ro, dev, fd;
	struct pm_pool_stats st;
	struct stat sb;
	char buf[8];

	CHECK(fstat(kvm, &sb) == 0);
	CHECK(S_ISCHR(sb.st_mode) && major(sb.st_rdev) == 10 && minor(sb.st_rdev) == 232);
	CHECK(ioctl(kvm, KVM_GET_API_VERSION, 0) == 12);
	CHECK(ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD) == 1);
	CHECK(ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY2) == 1);
	CHECK(ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0) == 2 * 4096);   /* kvm_run + PIO data */
	/* privmem's pool, of the size the test asked `privmem exec` for */
	CHECK(ioctl(kvm, PM_KVM_GET_POOL_STATS, &st) == 0);
	CHECK(st.size == strtoull(getenv("EXPECT_POOL"), NULL, 0));
	printf("vm_types 0x%x\n", ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_VM_TYPES));
	FAILS(ioctl(kvm, _IO(KVMIO, 0xfe)), EINVAL);           /* unknown: /dev/kvm's EINVAL */
	FAILS(ioctl(kvm, KVM_CREATE_VM, 99UL), EINVAL);
	CHECK(fcntl(kvm, F_GETFD) == FD_CLOEXEC);
	FAILS(read(kvm, buf, sizeof(buf)), EINVAL);
	ro = open("/dev/kvm", O_RDONLY);
	CHECK(ro >= 0 && ro != kvm);
	CHECK((fcntl(ro, F_GETFL) & O_ACCMODE) == O_RDONLY);
	CHECK(fcntl(ro, F_GETFD) == 0);
	FAILS(write(ro, buf, 1), EBADF);
	FAILS(read(ro, buf, 1), EINVAL);
	CHECK(ioctl(ro, KVM_GET_API_VERSION, 0) == 12);
	FAILS(open("/dev/kvm", O_RDONLY | O_DIRECTORY), ENOTDIR);
	FAILS(open("/dev/kvm", O_RDWR | O_CREAT | O_EXCL, 0600), EEXIST);
	dev = open("/dev", O_RDONLY | O_DIRECTORY);
	CHECK(dev >= 0);
	fd = openat(dev, "kvm", O_RDWR);
	CHECK(fd >= 0 && ioctl(fd, PM_KVM_GET_POOL_STATS, &st) == 0);
	close(fd);
	fd = open("//dev/./../dev//kvm", O_RDWR);
	CHECK(fd >= 0 && ioctl(fd, PM_KVM_GET_POOL_STATS, &st) == 0);
	close(fd);
	CHECK(chdir("/dev") == 0);
	fd = open("kvm", O_RDWR);
	CHECK(fd >= 0 && ioctl(fd, PM_KVM_GET_POOL_STATS, &st) == 0);
	close(fd);
	CHECK(close(dev) == 0 && close(ro) == 0 && close(kvm) == 0);
	FAILS(ioctl(kvm, KVM_GET_API_VERSION, 0), EBADF);
	FAILS(close(kvm), EBADF);
}

static void s_vm(void)
{
	int kvm = open_kvm(), vm, g, g2, vcpu, p[2];
	uint64_t base0 = pool_in_use(kvm), base;
	struct stat sb, sb2;
	struct statx stx;
	char buf[16];
	void *hva = mmap(NULL, 2 * MB, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct kvm_run *run;

	CHECK(hva != MAP_FAILED);
	vm = create_vm(kvm, KVM_X86_SW_PROTECTED_VM);
	CHECK(fcntl(vm, F_GETFD) == FD_CLOEXEC);                /* KVM's VM fds are O_CLOEXEC */
	g = create_gmem(vm, 2 * MB, PM_GUEST_MEMFD_FLAG_NO_HUGE);
	CHECK(fcntl(g, F_GETFD) == 0);                          /* guest_memfd's are not */
	base = pool_in_use(kvm);        /* the VM's own frames (stage-2 root) */
	CHECK(pool_in_use(kvm) == base);
	CHECK(fallocate(g, FALLOC_FL_KEEP_SIZE, 0, MB) == 0);
	CHECK(pool_in_use(kvm) == base + MB);
	CHECK(fstat(g, &sb) == 0);
	CHECK(S_ISREG(sb.st_mode) && sb.st_size == (off_t)(2 * MB) && sb.st_blksize == 4096);
	CHECK(sb.st_blocks == (blkcnt_t)(MB / 512));
	CHECK(statx(g, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &stx) == 0);
	CHECK(stx.stx_size == 2 * MB && stx.stx_ino == sb.st_ino);
	CHECK(fstatat(g, "", &sb2, AT_EMPTY_PATH) == 0 && sb2.st_ino == sb.st_ino);
	g2 = create_gmem(vm, 4 * PAGE, 0);
	CHECK(fstat(g2, &sb2) == 0 && sb2.st_size == (off_t)(4 * PAGE) && sb2.st_ino != sb.st_ino);
	/* guest_memfd's file calls */
	FAILS(fallocate(g, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, PAGE - 1, PAGE), EINVAL);
	FAILS(fallocate(g, FALLOC_FL_KEEP_SIZE, 2 * MB, PAGE), EINVAL);
	FAILS(fallocate(g, 0, 0, PAGE), EOPNOTSUPP);             /* guest_memfd needs KEEP_SIZE */
	CHECK(fallocate(g, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, PAGE) == 0);
	CHECK(pool_in_use(kvm) == base + MB - PAGE);
	FAILS(read(g, buf, sizeof(buf)), EINVAL);
	FAILS(write(g, buf, sizeof(buf)), EINVAL);
	FAILS(pread(g, buf, sizeof(buf), 0), EINVAL);
	FAILS(pwrite(g, buf, sizeof(buf), 0), EINVAL);
	FAILS(ftruncate(g, PAGE), EINVAL);
	FAILS(mmap(NULL, PAGE, PROT_READ, MAP_SHARED, g, 0), ENODEV);  /* no GUEST_MEMFD_FLAG_MMAP */
	/* memslots: the descriptor in the struct */
	CHECK(set_region(vm, 0, 0, 2 * MB, hva, g) == 0);
	CHECK(pipe(p) == 0);
	FAILS(set_region(vm, 1, 4 * MB, 2 * MB, hva, p[0]), EINVAL);    /* open, not a guest_memfd */
	FAILS(set_region(vm, 1, 4 * MB, 2 * MB, hva, vm), EINVAL);      /* a KVM file, not one */
	close(p[0]);
	FAILS(set_region(vm, 1, 4 * MB, 2 * MB, hva, p[0]), EBADF);     /* not open */
	close(p[1]);
	/* unknown ioctls: each kind's errno */
	FAILS(ioctl(vm, _IO(KVMIO, 0xfe)), ENOTTY);
	FAILS(ioctl(g, _IO(KVMIO, 0xfe)), ENOTTY);
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0UL);
	CHECK(vcpu >= 0 && fcntl(vcpu, F_GETFD) == FD_CLOEXEC);
	FAILS(ioctl(vcpu, _IO(KVMIO, 0xfe)), EINVAL);
	CHECK(fstat(vcpu, &sb) == 0 && (sb.st_mode & S_IFMT) == 0);
	run = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	CHECK(run != MAP_FAILED);
	FAILS(mmap(NULL, 4096, PROT_READ, MAP_SHARED, vcpu, 4096), EINVAL);
	CHECK(run->exit_reason == 0);
	CHECK(munmap(run, 4096) == 0);
	/* munmap of part of a vCPU mapping keeps the rest, as Linux splits
	 * the VMA; the rest is the vCPU's page still and goes on its own. */
	{
		struct kvm_run *r2 = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
		struct kvm_run *r3 = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);

		CHECK(r2 != MAP_FAILED && r3 != MAP_FAILED);
		CHECK(munmap((char *)r2 + 4096, 4096) == 0);
		r3->immediate_exit = 1;
		CHECK(r2->immediate_exit == 1);
		r3->immediate_exit = 0;
		CHECK(munmap((char *)r2 + 4096, 4096) == 0);     /* nothing there: 0, as Linux */
		CHECK(munmap(r2, 2 * 4096) == 0);
		CHECK(munmap(r3, 4096) == 0);
	}
	FAILS(mmap(NULL, PAGE, PROT_READ, MAP_SHARED, kvm, 0), ENODEV);
	close(vcpu);
	close(g2);
	CHECK(close(g) == 0);
	CHECK(pool_in_use(kvm) == base);        /* a memslot does not pin its file: the pages go */
	close(vm);
	CHECK(pool_in_use(kvm) == base0);
	close(kvm);
	munmap(hva, 2 * MB);
}

/* guest_memfd's mmap (GUEST_MEMFD_FLAG_MMAP | INIT_SHARED on a default VM):
 * data, punch, MADV_REMOVE, and Linux's VMA split on a partial munmap. */
static void s_gmem_mmap(void)
{
	int kvm = open_kvm();
	uint64_t base0 = pool_in_use(kvm), base;
	int vm = create_vm(kvm, KVM_X86_DEFAULT_VM);
	int g = create_gmem(vm, 8 * PAGE, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED |
				      PM_GUEST_MEMFD_FLAG_NO_HUGE);
	unsigned char *p = mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, g, 0), *q;

	CHECK(p != MAP_FAILED);
	base = pool_in_use(kvm) - 8 * PAGE;     /* INIT_SHARED: the view populated them */
	for (int i = 0; i < 8; i++)
		p[i * PAGE] = (unsigned char)(0x10 + i);
	CHECK(pool_in_use(kvm) == base + 8 * PAGE);
	CHECK(fallocate(g, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, PAGE) == 0);
	CHECK(p[0] == 0 && p[PAGE] == 0x11);
	CHECK(madvise(p + PAGE, PAGE, MADV_REMOVE) == 0);       /* punches the file */
	CHECK(p[PAGE] == 0 && p[2 * PAGE] == 0x12);
	/* a second view sees the same pages */
	q = mmap(NULL, 2 * PAGE, PROT_READ, MAP_SHARED, g, 6 * PAGE);
	CHECK(q != MAP_FAILED && q[0] == 0x16 && q[PAGE] == 0x17);
	CHECK(munmap(q, 2 * PAGE) == 0);
	/* partial munmap: the middle goes, the ends stay mapped */
	CHECK(munmap(p + 3 * PAGE, 2 * PAGE) == 0);
	CHECK(p[2 * PAGE] == 0x12 && p[5 * PAGE] == 0x15 && p[7 * PAGE] == 0x17);
	p[7 * PAGE] = 0x77;
	q = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, g, 7 * PAGE);
	CHECK(q != MAP_FAILED && q[0] == 0x77);
	CHECK(munmap(q, PAGE) == 0);
	/* the mapping holds the file: closing the descriptor keeps the pages */
	CHECK(close(g) == 0);
	/* (views populate punched shared pages again: all 8 are in the file) */
	CHECK(pool_in_use(kvm) == base + 8 * PAGE);
	CHECK(p[5 * PAGE] == 0x15);
	CHECK(munmap(p, 3 * PAGE) == 0);
	CHECK(pool_in_use(kvm) == base + 8 * PAGE);     /* the right part still maps the file */
	CHECK(munmap(p + 5 * PAGE, 3 * PAGE) == 0);
	CHECK(pool_in_use(kvm) == base);        /* the file is gone */
	close(vm);
	CHECK(pool_in_use(kvm) == base0);
	close(kvm);
}

static void s_dup(void)
{
	int kvm = open_kvm();
	uint64_t base0 = pool_in_use(kvm), base;
	int vm = create_vm(kvm, KVM_X86_SW_PROTECTED_VM);
	int g = create_gmem(vm, 2 * MB, PM_GUEST_MEMFD_FLAG_NO_HUGE), d1, d2, d3, null, p[2];

	close(vm);                      /* the file pins the VM */
	base = pool_in_use(kvm);
	CHECK(fallocate(g, FALLOC_FL_KEEP_SIZE, 0, MB) == 0);
	d1 = dup(g);
	CHECK(d1 >= 0 && d1 != g);
	CHECK(close(g) == 0);
	CHECK(pool_in_use(kvm) == base + MB);                          /* the dup keeps the handle */
	CHECK(fallocate(d1, FALLOC_FL_KEEP_SIZE, MB, PAGE) == 0);
	CHECK(pool_in_use(kvm) == base + MB + PAGE);
	d2 = fcntl(d1, F_DUPFD_CLOEXEC, 100);
	CHECK(d2 >= 100 && fcntl(d2, F_GETFD) == FD_CLOEXEC);
	d3 = fcntl(d2, F_DUPFD, 0);
	CHECK(d3 >= 0 && fcntl(d3, F_GETFD) == 0);
	CHECK(close(d1) == 0 && close(d3) == 0);
	CHECK(pool_in_use(kvm) == base + MB + PAGE);
	/* dup2 over an existing foreign descriptor */
	null = open("/dev/null", O_RDONLY);
	CHECK(null >= 0);
	CHECK(dup2(d2, null) == null);
	CHECK(close(d2) == 0);
	CHECK(pool_in_use(kvm) == base + MB + PAGE);
	CHECK(fallocate(null, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, PAGE) == 0);
	CHECK(pool_in_use(kvm) == base + MB);
	CHECK(dup2(null, null) == null);                         /* onto itself: nothing changes */
	CHECK(pool_in_use(kvm) == base + MB);
	FAILS(dup3(null, null, 0), EINVAL);
	/* dup3 of a pipe over the last descriptor: the file goes */
	CHECK(pipe(p) == 0);
	CHECK(dup3(p[0], null, O_CLOEXEC) == null);
	CHECK(pool_in_use(kvm) == base0);
	CHECK(fcntl(null, F_GETFD) == FD_CLOEXEC);
	CHECK(write(p[1], "x", 1) == 1);
	{
		char c = 0;

		CHECK(read(null, &c, 1) == 1 && c == 'x');      /* now the pipe's */
	}
	close(null);
	close(p[0]);
	close(p[1]);
	/* dup2 of a foreign file over a KVM descriptor drops the KVM file */
	g = create_gmem(vm = create_vm(kvm, KVM_X86_SW_PROTECTED_VM), MB, PM_GUEST_MEMFD_FLAG_NO_HUGE);
	close(vm);
	base = pool_in_use(kvm);
	CHECK(fallocate(g, FALLOC_FL_KEEP_SIZE, 0, PAGE) == 0 && pool_in_use(kvm) == base + PAGE);
	null = open("/dev/null", O_RDWR);
	CHECK(dup2(null, g) == g);
	CHECK(pool_in_use(kvm) == base0);
	FAILS(fallocate(g, 0, 0, PAGE), ENODEV);                /* /dev/null's answer */
	close(g);
	close(null);
	close(kvm);
}

static atomic_int guest_started, guest_release;

static void spin_guest(struct pm_guest *g, void *arg)
{
	atomic_store(&guest_started, 1);
	while (!atomic_load(&guest_release))
		;
}

static void *run_vcpu(void *arg)
{
	long fd = (long)arg;

	return (void *)(long)ioctl((int)fd, KVM_RUN, 0);
}

/* close of a vCPU (and its VM) while another thread is inside KVM_RUN: the
 * call finishes on the file, the descriptor is gone at once. */
static void s_close_during_run(void)
{
	int kvm = open_kvm(), vm = create_vm(kvm, KVM_X86_SW_PROTECTED_VM), vcpu;
	struct pm_guest_entry entry = { .fn = spin_guest };
	struct kvm_run *run;
	pthread_t t;
	void *ret;

	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0UL);
	CHECK(vcpu >= 0);
	run = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	CHECK(run != MAP_FAILED);
	CHECK(ioctl(vcpu, PM_KVM_SET_GUEST, &entry) == 0);
	CHECK(pthread_create(&t, NULL, run_vcpu, (void *)(long)vcpu) == 0);
	while (!atomic_load(&guest_started))
		usleep(100);
	CHECK(close(vcpu) == 0);
	CHECK(close(vm) == 0);
	FAILS(ioctl(vcpu, KVM_RUN, 0), EBADF);
	FAILS(fcntl(vcpu, F_GETFD), EBADF);
	atomic_store(&guest_release, 1);
	CHECK(pthread_join(t, &ret) == 0);
	CHECK((long)ret == 0);
	CHECK(run->exit_reason == PM_EXIT_UCALL);               /* the mapping outlives the fd */
	CHECK(munmap(run, 4096) == 0);
	close(kvm);
}

/* Threads opening, using and closing descriptors at once. */
static void *churn(void *arg)
{
	int kvm = (int)(long)arg;

	for (int i = 0; i < 300; i++) {
		int vm = ioctl(kvm, KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM), d;

		if (vm < 0)
			return (void *)1L;
		d = dup(vm);
		if (d < 0 || ioctl(d, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY2) != 1)
			return (void *)2L;
		close(vm);
		if (ioctl(d, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY2) != 1)
			return (void *)3L;
		close(d);
	}
	return NULL;
}

static void s_threads(void)
{
	int kvm = open_kvm();
	pthread_t t[4];
	void *r;

	for (int i = 0; i < 4; i++)
		CHECK(pthread_create(&t[i], NULL, churn, (void *)(long)kvm) == 0);
	for (int i = 0; i < 4; i++) {
		CHECK(pthread_join(t[i], &r) == 0);
		CHECK(r == NULL);
	}
	close(kvm);
}

static void s_fork(void)
{
	int kvm = open_kvm();
	uint64_t base0 = pool_in_use(kvm), base;
	int vm = create_vm(kvm, KVM_X86_SW_PROTECTED_VM);
	int g = create_gmem(vm, 2 * MB, PM_GUEST_MEMFD_FLAG_NO_HUGE), status, vcpu;
	pid_t pid;

	base = pool_in_use(kvm);
	CHECK(fallocate(g, FALLOC_FL_KEEP_SIZE, 0, MB) == 0);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		int k2;

		FAILS(ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY2), EIO);
		FAILS(ioctl(vm, KVM_CREATE_VCPU, 0UL), EIO);
		FAILS(ioctl(vm, _IO(KVMIO, 0xfe)), EIO);
		FAILS(fallocate(g, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, MB), EIO);
		CHECK(ioctl(kvm, KVM_GET_API_VERSION, 0) == 12);
		CHECK(ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD) == 1);
		FAILS(ioctl(kvm, KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM), EIO);
		k2 = open("/dev/kvm", O_RDWR);
		CHECK(k2 >= 0 && ioctl(k2, KVM_GET_API_VERSION, 0) == 12);
		FAILS(ioctl(k2, KVM_CREATE_VM, 0UL), EIO);
		/* closing must not tear down the parent's objects */
		CHECK(close(g) == 0 && close(vm) == 0 && close(k2) == 0);
		_exit(0);
	}
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(pool_in_use(kvm) == base + MB);
	CHECK(fallocate(g, FALLOC_FL_KEEP_SIZE, MB, PAGE) == 0);
	CHECK(pool_in_use(kvm) == base + MB + PAGE);
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0UL);
	CHECK(vcpu >= 0);
	close(vcpu);
	close(g);
	close(vm);
	CHECK(pool_in_use(kvm) == base0);
	close(kvm);
}

/* exec: descriptors without O_CLOEXEC survive. The new image's /dev/kvm
 * works; VM and guest_memfd descriptors are dead (EIO); O_CLOEXEC ones
 * are gone. */
static void s_exec(void)
{
	int kvm = open("/dev/kvm", O_RDWR), vm = create_vm(kvm, KVM_X86_SW_PROTECTED_VM);
	int g = create_gmem(vm, MB, 0), vcpu = ioctl(vm, KVM_CREATE_VCPU, 0UL);
	char a[4][16];

	CHECK(kvm >= 0 && vcpu >= 0);
	CHECK(fcntl(vm, F_SETFD, 0) == 0);
	snprintf(a[0], 16, "%d", kvm);
	snprintf(a[1], 16, "%d", vm);
	snprintf(a[2], 16, "%d", g);
	snprintf(a[3], 16, "%d", vcpu);
	execl(self_path, self_path, "exec-child", a[0], a[1], a[2], a[3], (char *)NULL);
	CHECK(!"exec failed");
}

static void s_exec_child(char **argv)
{
	int kvm = atoi(argv[0]), vm = atoi(argv[1]), g = atoi(argv[2]), vcpu = atoi(argv[3]), v2;
	struct pm_pool_stats st;
	struct stat sb;

	FAILS(fcntl(vcpu, F_GETFD), EBADF);                     /* O_CLOEXEC: gone */
	CHECK(ioctl(kvm, KVM_GET_API_VERSION, 0) == 12);
	CHECK(ioctl(kvm, PM_KVM_GET_POOL_STATS, &st) == 0);
	v2 = ioctl(kvm, KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM);
	CHECK(v2 >= 0);
	FAILS(ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY2), EIO);
	FAILS(fallocate(g, FALLOC_FL_KEEP_SIZE, 0, PAGE), EIO);
	CHECK(fstat(g, &sb) == 0 && S_ISREG(sb.st_mode));
	CHECK(close(vm) == 0 && close(g) == 0 && close(v2) == 0 && close(kvm) == 0);
}

/* Foreign descriptors go to libc untouched, also while KVM mappings exist. */
static void s_foreign(void)
{
	int kvm = open_kvm(), vm = create_vm(kvm, KVM_X86_SW_PROTECTED_VM);
	int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0UL), fd, p[2], m, n;
	char path[] = "/tmp/privmem-ipose-XXXXXX", buf[16] = "";
	struct stat sb;
	void *run = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	unsigned char *map;

	CHECK(run != MAP_FAILED);
	fd = mkstemp(path);
	CHECK(fd >= 0);
	unlink(path);
	CHECK(write(fd, "hello", 5) == 5);
	CHECK(pwrite(fd, "HE", 2, 0) == 2);
	CHECK(pread(fd, buf, 5, 0) == 5 && !memcmp(buf, "HEllo", 5));
	CHECK(fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size == 5);
	CHECK(ftruncate(fd, 3) == 0 && fstat(fd, &sb) == 0 && sb.st_size == 3);
	FAILS(ioctl(fd, KVM_GET_API_VERSION, 0), ENOTTY);       /* the kernel's answer */
	close(fd);
	CHECK(pipe(p) == 0);
	CHECK(write(p[1], "abc", 3) == 3);
	CHECK(ioctl(p[0], FIONREAD, &n) == 0 && n == 3);
	CHECK(read(p[0], buf, 3) == 3 && !memcmp(buf, "abc", 3));
	FAILS(fallocate(p[0], 0, 0, PAGE), EBADF);               /* read end: not writable */
	FAILS(fallocate(p[1], 0, 0, PAGE), ESPIPE);
	close(p[0]);
	close(p[1]);
	m = memfd_create("foreign", 0);
	CHECK(m >= 0 && ftruncate(m, 4 * PAGE) == 0);
	map = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, m, 0);
	CHECK(map != MAP_FAILED);
	memset(map, 0xab, 4 * PAGE);
	CHECK(pread(m, buf, 1, PAGE) == 1 && (unsigned char)buf[0] == 0xab);
	CHECK(madvise(map + PAGE, PAGE, MADV_REMOVE) == 0);     /* the memfd's own punch */
	CHECK(map[PAGE] == 0 && map[0] == 0xab);
	CHECK(fallocate(m, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, PAGE) == 0);
	CHECK(map[0] == 0 && map[2 * PAGE] == 0xab);
	CHECK(fstat(m, &sb) == 0 && sb.st_size == (off_t)(4 * PAGE));
	CHECK(munmap(map, 4 * PAGE) == 0);
	map = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(map != MAP_FAILED);
	map[0] = 1;
	CHECK(munmap(map, 2 * PAGE) == 0);
	close(m);
	CHECK(((struct kvm_run *)run)->exit_reason == 0);       /* the kvm_run page is intact */
	CHECK(munmap(run, 4096) == 0);
	close(vcpu);
	close(vm);
	close(kvm);
}

static void print_param(const char *path)
{
	char buf[32] = "";
	int fd = open(path, O_RDONLY);
	ssize_t n;

	CHECK(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	CHECK(n > 0);
	printf("%s=%s", strrchr(path, '/') + 1, buf);
	close(fd);
}

static void s_sysfs(void)
{
	char buf[32] = "";
	FILE *f;

	print_param("/sys/module/kvm/parameters/force_emulation_prefix");
	print_param("/sys/module/kvm/parameters/enable_pmu");
	print_param("/sys/module/kvm_intel/parameters/ept");
	print_param("/sys/module/kvm_amd/parameters/sev_snp");
	print_param("/sys/module/kvm_intel/parameters/tdx");
	f = fopen("/sys/module/kvm_amd/parameters/npt", "r");
	CHECK(f && fgets(buf, sizeof(buf), f));
	printf("fopen npt=%s", buf);
	fclose(f);
	FAILS(open("/sys/module/kvm/parameters/no_such_param", O_RDONLY), ENOENT);
	FAILS(open("/sys/module/kvm/parameters/enable_pmu", O_WRONLY), EACCES);
	/* A read-only file, as sysfs opened for reading: no write, no growth
	 * (the snapshot is a memfd: a 1 TiB fallocate would have taken the
	 * host's memory), and its value stays. */
	{
		int fd = open("/sys/module/kvm/parameters/enable_pmu", O_RDONLY);

		CHECK(fd >= 0);
		FAILS(write(fd, "Y\n", 2), EBADF);
		FAILS(fallocate(fd, 0, 0, 1LL << 40), EBADF);
		FAILS(ftruncate(fd, 1 << 20), EINVAL);
		CHECK(read(fd, buf, sizeof(buf) - 1) == 2 && !memcmp(buf, "N\n", 2));
		close(fd);
		memset(buf, 0, sizeof(buf));
	}
	CHECK(fopen("/sys/module/kvm/parameters/no_such_param", "r") == NULL && errno == ENOENT);
	/* other sysfs files are the system's */
	f = fopen("/sys/devices/system/cpu/possible", "r");
	CHECK(f != NULL);
	fclose(f);
}

/* Under --kvm-version 6.12: Linux 6.12's guest_memfd, which takes no
 * creation flag and so is never mappable; privmem's page-size flags stay
 * out of the way too unless the VM asks for them. */
static void s_kvm612(void)
{
	int kvm = open_kvm(), vm, g;
	struct kvm_create_guest_memfd cg = { .size = PAGE };
	void *p;

	CHECK(ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD) == 1);
	CHECK(ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_FLAGS) == 0);
	vm = ioctl(kvm, KVM_CREATE_VM, KVM_X86_DEFAULT_VM);
	CHECK(vm >= 0);
	CHECK(ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_FLAGS) == 0);
	for (unsigned int bit = 0; bit < 64; bit++) {
		cg.flags = 1ULL << bit;
		FAILS(ioctl(vm, KVM_CREATE_GUEST_MEMFD, &cg), EINVAL);
	}
	cg.flags = 0;
	g = ioctl(vm, KVM_CREATE_GUEST_MEMFD, &cg);
	CHECK(g >= 0);
	p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, g, 0);
	CHECK(p == MAP_FAILED && errno == ENODEV);
	close(g);
	close(vm);
	close(kvm);
}

/* Under --gmem-in-place: in-place conversion on guest_memfd, as a VMM
 * written for it sees it (v8): the capability, the per-VM attributes gone,
 * KVM_SET_MEMORY_ATTRIBUTES2 on the file (not the VM), and a page made
 * private lost to the program's mapping (a system call's read fails where
 * a plain read would get SIGBUS); back to shared, its data is there. */
static void s_inplace(void)
{
	int kvm = open_kvm(), vm, g;
	struct kvm_create_guest_memfd cg = { .size = 2 * PAGE,
					     .flags = GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED };
	struct kvm_memory_attributes2 a = { .offset = 0, .size = PAGE,
					    .attributes = KVM_MEMORY_ATTRIBUTE_PRIVATE };
	uint64_t v = 0;
	struct iovec local = { .iov_base = &v, .iov_len = sizeof(v) }, remote;
	volatile uint64_t *p;

	CHECK(ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES) ==
	      KVM_MEMORY_ATTRIBUTE_PRIVATE);
	vm = create_vm(kvm, KVM_X86_SW_PROTECTED_VM);
	CHECK(ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_MEMORY_ATTRIBUTES) == 0);
	g = create_gmem(vm, cg.size, cg.flags);
	p = mmap(NULL, cg.size, PROT_READ | PROT_WRITE, MAP_SHARED, g, 0);
	CHECK(p != MAP_FAILED);
	p[0] = 0x1234;
	FAILS(ioctl(vm, KVM_SET_MEMORY_ATTRIBUTES2, &a), ENOTTY);
	CHECK(ioctl(g, KVM_SET_MEMORY_ATTRIBUTES2, &a) == 0);
	remote = (struct iovec){ .iov_base = (void *)p, .iov_len = sizeof(v) };
	FAILS(process_vm_readv(getpid(), &local, 1, &remote, 1, 0), EFAULT);
	a.attributes = 0;
	CHECK(ioctl(g, KVM_SET_MEMORY_ATTRIBUTES2, &a) == 0);
	CHECK(p[0] == 0x1234);
	munmap((void *)p, cg.size);
	close(g);
	close(vm);
	close(kvm);
}

int main(int argc, char **argv)
{
	static const struct { const char *name; void (*fn)(void); } scenarios[] = {
		{ "api", s_api }, { "vm", s_vm }, { "gmem-mmap", s_gmem_mmap }, { "dup", s_dup },
		{ "close-during-run", s_close_during_run }, { "threads", s_threads },
		{ "fork", s_fork }, { "exec", s_exec }, { "foreign", s_foreign }, { "sysfs", s_sysfs },
		{ "kvm612", s_kvm612 }, { "inplace", s_inplace },
	};

	setvbuf(stdout, NULL, _IONBF, 0);
	self_path = argv[0];
	if (argc >= 6 && !strcmp(argv[1], "exec-child")) {
		s_exec_child(argv + 2);
		printf("ok\n");
		return 0;
	}
	for (size_t i = 0; argc == 2 && i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
		if (!strcmp(argv[1], scenarios[i].name)) {
			scenarios[i].fn();
			printf("ok\n");
			return 0;
		}
	}
	fprintf(stderr, "usage: kvmprog SCENARIO\n");
	return 2;
}

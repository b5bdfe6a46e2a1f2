/* SPDX-License-Identifier: MIT */
/*
 * The fd table: descriptor number -> struct ipose_file, for the
 * placeholder descriptors this library created (see interpose.h).
 *
 * Two levels: NR_CHUNKS pointers to chunks of CHUNK slots, allocated on
 * first use under table_lock and kept for the life of the process, so a
 * lookup is two loads and never sees memory go away. A slot is written only
 * under table_lock, together with the system call that changes the
 * descriptor (memfd_create, close, dup*), so the table says what the
 * kernel's descriptor table says for every number this library handed out.
 *
 * Lookups (ipose_fd_get) take no lock: inside a big-reader lock section
 * (files_users: writes only the CPU's slot) they load the slot and take a
 * reference if the count is not zero. The count is zero only once the file
 * has left every slot (each slot holds a reference), and the last put frees
 * the file only after pm_brlock_sync: every lookup that could have loaded
 * it has left by then.
 *
 * fork: handlers registered at start-up hold table_lock (and maps_lock)
 * across fork, so the child's copy of the table is consistent; the child
 * then marks every file dead and re-initialises files_users (a parent
 * thread may have been inside it). exec: see ipose_fd_adopt_inherited.
 */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <privmem/privmem.h>
#include "lib/brlock.h"
#include "uapi/interpose/interpose.h"

#define CHUNK_SHIFT 10
#define CHUNK (1 << CHUNK_SHIFT)
#define NR_CHUNKS 1024                      /* descriptors up to 2^20 */
#define MAX_FD (CHUNK * NR_CHUNKS)

typedef _Atomic(struct ipose_file *) fd_slot_t;

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic(fd_slot_t *) chunks[NR_CHUNKS];   /* set once, under table_lock */
static struct pm_brlock files_users;             /* lookups in progress */
static pthread_once_t users_once = PTHREAD_ONCE_INIT;
atomic_bool ipose_forked;

static const char *const kind_names[IPOSE_NR_KINDS] = {
	[IPOSE_SYS] = "sys", [IPOSE_VM] = "vm", [IPOSE_VCPU] = "vcpu", [IPOSE_GMEM] = "gmem",
};
static const char *const mode_names[] = { [O_RDONLY] = "r", [O_WRONLY] = "w", [O_RDWR] = "rw" };

static void users_init(void)
{
	PM_BUG_ON(pm_brlock_init(&files_users) != 0);
}

static fd_slot_t *slot_of(int fd)
{
	fd_slot_t *c;

	if (fd < 0 || fd >= MAX_FD)
		return NULL;
	c = atomic_load_explicit(&chunks[fd >> CHUNK_SHIFT], memory_order_acquire);
	return c ? &c[fd & (CHUNK - 1)] : NULL;
}

/* The slot of fd, its chunk allocated if needed (table_lock held). */
static fd_slot_t *slot_create_locked(int fd)
{
	fd_slot_t *c;

	if (fd < 0 || fd >= MAX_FD)
		return NULL;
	c = atomic_load_explicit(&chunks[fd >> CHUNK_SHIFT], memory_order_relaxed);
	if (!c) {
		c = calloc(CHUNK, sizeof(*c));
		if (!c)
			return NULL;
		atomic_store_explicit(&chunks[fd >> CHUNK_SHIFT], c, memory_order_release);
	}
	return &c[fd & (CHUNK - 1)];
}

/* Replaces fd's entry (table_lock held): the previous file, whose slot
 * reference passes to the caller. */
static struct ipose_file *slot_exchange_locked(fd_slot_t *s, struct ipose_file *f)
{
	return s ? atomic_exchange_explicit(s, f, memory_order_seq_cst) : NULL;
}

bool ipose_fd_maybe_ours(int fd)
{
	fd_slot_t *s = slot_of(fd);

	return s && atomic_load_explicit(s, memory_order_relaxed);
}

struct ipose_file *ipose_fd_get(int fd)
{
	fd_slot_t *s = slot_of(fd);
	struct ipose_file *f;
	unsigned int u;

	if (!s)
		return NULL;
	pthread_once(&users_once, users_init);
	u = pm_brlock_read_lock(&files_users);
	f = atomic_load_explicit(s, memory_order_seq_cst);
	if (f) {
		long n = atomic_load_explicit(&f->refs, memory_order_relaxed);

		do {
			if (n == 0) {   /* its last descriptor is being closed */
				f = NULL;
				break;
			}
		} while (!atomic_compare_exchange_weak(&f->refs, &n, n + 1));
	}
	pm_brlock_read_unlock(&files_users, u);
	return f;
}

void ipose_file_get(struct ipose_file *f)
{
	atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
}

void ipose_file_put(struct ipose_file *f)
{
	int err = errno;        /* callers return errno of the call they made */

	if (!f || atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
		return;
	/* A dead file's handle is not ours to close (fork: the parent's). */
	if (!f->dead && f->handle >= 0)
		IPOSE_CALL(pm_kvm_close(f->handle));
	pthread_once(&users_once, users_init);
	pm_brlock_sync(&files_users);
	free(f);
	errno = err;
}

static struct ipose_file *file_new(int handle, enum ipose_kind kind, int accmode)
{
	struct ipose_file *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->handle = handle;
	f->kind = kind;
	f->accmode = accmode;
	f->dead = handle < 0;
	atomic_init(&f->refs, 1);       /* the descriptor's */
	return f;
}

int ipose_fd_install(int handle, enum ipose_kind kind, int accmode, bool cloexec)
{
	struct ipose_file *f = file_new(handle, kind, accmode), *stale = NULL;
	char name[64];
	int fd = -1, err = ENOMEM;
	fd_slot_t *s;

	if (!f)
		goto err_close;
	snprintf(name, sizeof(name), "privmem-kvm:%s:%s", kind_names[kind],
		 mode_names[accmode & O_ACCMODE] ? mode_names[accmode & O_ACCMODE] : "rw");
	pthread_mutex_lock(&table_lock);
	fd = memfd_create(name, cloexec ? MFD_CLOEXEC : 0);
	if (fd < 0) {
		err = errno;
		goto err_unlock;
	}
	s = slot_create_locked(fd);
	if (!s) {
		err = fd >= MAX_FD ? EMFILE : ENOMEM;
		LIBC(close)(fd);
		goto err_unlock;
	}
	stale = slot_exchange_locked(s, f);
	pthread_mutex_unlock(&table_lock);
	ipose_file_put(stale);
	return fd;

err_unlock:
	pthread_mutex_unlock(&table_lock);
	f->dead = true;         /* the handle is closed below, not by the put */
	ipose_file_put(f);
err_close:
	if (handle >= 0)
		IPOSE_CALL(pm_kvm_close(handle));
	errno = err;
	return -1;
}

int ipose_fd_close(int fd)
{
	struct ipose_file *f;
	int r, err;

	pthread_mutex_lock(&table_lock);
	f = slot_exchange_locked(slot_of(fd), NULL);
	r = LIBC(close)(fd);
	err = errno;
	pthread_mutex_unlock(&table_lock);
	ipose_file_put(f);
	errno = err;
	return r;
}

int ipose_fd_dup(int how, int oldfd, int newfd, int flags)
{
	struct ipose_file *f = ipose_fd_get(oldfd), *prev = NULL;
	fd_slot_t *s;
	int r, err = 0;

	pthread_mutex_lock(&table_lock);
	switch (how) {
	case 0: r = LIBC(dup)(oldfd); break;
	case 1: r = LIBC(dup2)(oldfd, newfd); break;
	case 2: r = LIBC(dup3)(oldfd, newfd, flags); break;
	default: r = LIBC(fcntl)(oldfd, how == 3 ? F_DUPFD : F_DUPFD_CLOEXEC, newfd); break;
	}
	if (r < 0) {
		err = errno;
		goto out;
	}
	if (how == 1 && oldfd == newfd)
		goto out;               /* dup2 onto itself changes nothing */
	s = f ? slot_create_locked(r) : slot_of(r);
	if (f && !s) {
		LIBC(close)(r);
		r = -1;
		err = ENOMEM;
		goto out;
	}
	if (f)
		ipose_file_get(f);      /* the new descriptor's reference */
	prev = slot_exchange_locked(s, f);
out:
	pthread_mutex_unlock(&table_lock);
	ipose_file_put(prev);           /* dup2/dup3 closed what newfd was */
	ipose_file_put(f);
	errno = err ? err : errno;
	return r;
}

/* Removes the entries of [first, last] (table_lock held) into a list the
 * caller puts: each file's refs are dropped after the lock is released. */
static size_t range_take_locked(unsigned int first, unsigned int last, struct ipose_file ***out)
{
	struct ipose_file **taken = NULL;
	size_t n = 0, cap = 0;

	for (unsigned int c = first >> CHUNK_SHIFT; c < NR_CHUNKS && c <= last >> CHUNK_SHIFT; c++) {
		fd_slot_t *chunk = atomic_load_explicit(&chunks[c], memory_order_relaxed);

		for (unsigned int i = 0; chunk && i < CHUNK; i++) {
			unsigned int fd = (c << CHUNK_SHIFT) | i;
			struct ipose_file *f;

			if (fd < first || fd > last || !atomic_load_explicit(&chunk[i], memory_order_relaxed))
				continue;
			if (n == cap) {
				struct ipose_file **t = realloc(taken, (cap = cap ? 2 * cap : 16) * sizeof(*t));

				if (!t)
					break;  /* left in the table: dropped when its number is reused */
				taken = t;
			}
			f = slot_exchange_locked(&chunk[i], NULL);
			taken[n++] = f;
		}
	}
	*out = taken;
	return n;
}

int ipose_fd_close_range(unsigned int first, unsigned int last, int flags)
{
	struct ipose_file **taken = NULL;
	size_t n = 0;
	int r, err;

	pthread_mutex_lock(&table_lock);
	r = LIBC(close_range)(first, last, flags);
	err = errno;
	if (r == 0 && !(flags & CLOSE_RANGE_CLOEXEC))
		n = range_take_locked(first, last, &taken);
	pthread_mutex_unlock(&table_lock);
	for (size_t i = 0; i < n; i++)
		ipose_file_put(taken[i]);
	free(taken);
	errno = err;
	return r;
}

void ipose_fd_forget_stale(int fd)
{
	struct ipose_file *f;

	if (!ipose_fd_maybe_ours(fd))
		return;
	pthread_mutex_lock(&table_lock);
	f = slot_exchange_locked(slot_of(fd), NULL);
	pthread_mutex_unlock(&table_lock);
	ipose_file_put(f);
}

/* ---- fork ---- */

void ipose_maps_fork_prepare(void);
void ipose_maps_fork_parent(void);
void ipose_maps_fork_child(void);

static void fork_prepare(void)
{
	pthread_mutex_lock(&table_lock);
	ipose_maps_fork_prepare();
}

static void fork_parent(void)
{
	ipose_maps_fork_parent();
	pthread_mutex_unlock(&table_lock);
}

/* The only thread of the child: no lookup is in progress. */
static void fork_child(void)
{
	atomic_store(&ipose_forked, true);
	for (int c = 0; c < NR_CHUNKS; c++) {
		fd_slot_t *chunk = atomic_load_explicit(&chunks[c], memory_order_relaxed);

		for (int i = 0; chunk && i < CHUNK; i++) {
			struct ipose_file *f = atomic_load_explicit(&chunk[i], memory_order_relaxed);

			if (f)
				f->dead = true;
		}
	}
	pthread_once(&users_once, users_init);
	memset(&files_users, 0, sizeof(files_users));
	PM_BUG_ON(pm_brlock_init(&files_users) != 0);
	ipose_maps_fork_child();
	pthread_mutex_unlock(&table_lock);
}

/* ---- exec ---- */

bool ipose_placeholder_parse(const char *link, enum ipose_kind *kind, int *accmode)
{
	char k[16] = "", mode[4] = "";
	int n = 0;

	/* A memfd's link is "/memfd:NAME (deleted)": nothing else may follow
	 * the mode ("rw" of "rwx" is no placeholder's). */
	if (sscanf(link, "/memfd:privmem-kvm:%15[a-z]:%3[rw]%n", k, mode, &n) != 2 ||
	    (link[n] && strcmp(link + n, " (deleted)")))
		return false;
	for (*kind = 0; *kind < IPOSE_NR_KINDS && strcmp(k, kind_names[*kind]); (*kind)++)
		;
	if (*kind == IPOSE_NR_KINDS)
		return false;
	*accmode = !strcmp(mode, "r") ? O_RDONLY : !strcmp(mode, "w") ? O_WRONLY :
		   !strcmp(mode, "rw") ? O_RDWR : -1;
	return *accmode >= 0;
}

/* Placeholders this library's previous image left open across exec
 * (without O_CLOEXEC): /dev/kvm gets a handle of its own again, as a /dev/kvm
 * descriptor keeps working after exec; VM, vCPU and guest_memfd
 * descriptors are dead (their objects stayed with the old image). */
static void adopt_inherited(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		char path[64], link[128];
		int fd = atoi(e->d_name), accmode = O_RDWR, handle = -1;
		enum ipose_kind k;
		struct ipose_file *f;
		fd_slot_t *s;
		ssize_t n;

		if (e->d_name[0] == '.' || fd == dirfd(d))
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n = readlink(path, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = '\0';
		if (!ipose_placeholder_parse(link, &k, &accmode))
			continue;
		if (k == IPOSE_SYS)
			handle = IPOSE_CALL(pm_kvm_open());
		f = file_new(handle, k, accmode);
		if (!f) {
			if (handle >= 0)
				IPOSE_CALL(pm_kvm_close(handle));
			continue;
		}
		pthread_mutex_lock(&table_lock);
		s = slot_create_locked(fd);
		if (s)
			f = slot_exchange_locked(s, f);   /* the slot was empty: NULL */
		pthread_mutex_unlock(&table_lock);
		ipose_file_put(f);      /* no slot: the file goes, with its handle */
	}
	closedir(d);
}

__attribute__((constructor)) static void ipose_init(void)
{
	ipose_libc_init();
	pthread_once(&users_once, users_init);
	pthread_atfork(fork_prepare, fork_parent, fork_child);
	adopt_inherited();
}

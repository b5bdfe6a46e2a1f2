/* SPDX-License-Identifier: MIT */
/*
 * privmem bench inplace: in-place conversion on guest_memfd
 * (KVM_SET_MEMORY_ATTRIBUTES2, privmem's in-place mode) beside destructive
 * conversion (KVM_SET_MEMORY_ATTRIBUTES and a discard of the other copy),
 * on software-protected VMs, for a guest that converts a bounce buffer
 * back and forth through real exits, and beside the physical limit of
 * moving that buffer once (memcpy, memset) in the same run.
 *
 * A round trip of n pages (one exit per direction): KVM_HC_MAP_GPA_RANGE
 * to shared (the VMM answers), the guest writes a word of each page
 * (shared now), back to private (the VMM answers), and the guest writes a
 * word of each page again; 1 page and 64 pages per exit, the buffer once
 * per measurement. Destructive: the VMM sets the VM's attribute and punches
 * the private page (to shared) or drops its own shared copy (to private),
 * and each first write faults in a new, zeroed page. In place: the VMM
 * converts on the file; the contents stay and the guest's writes go to the
 * same page. Memory (untimed, after the measurements): the pool's frames
 * in use and the pages of the host's side of the buffer (the VMM's
 * anonymous copy; in place the guest_memfd's host file, read through the
 * VMM's view), with the whole buffer shared and then private.
 *
 * The mode is chosen once per process (as the module parameter), so the
 * run measures its own mode here and the other in a child: the same
 * binary with PRIVMEM_GMEM_IN_PLACE flipped, which measures only its own
 * and writes its samples to the pipe named by PRIVMEM_BENCH_INPLACE_FD.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include "bench.h"

enum ip_path { IP_DESTRUCTIVE, IP_INPLACE, IP_NR };
static const char *const ip_names[IP_NR] = { "destructive", "inplace" };

#define IP_BATCHES 2
static const uint64_t ip_batch[IP_BATCHES] = { 1, 64 };

enum { IP_SHARED, IP_PRIVATE, IP_STATES };
#define IP_SNAPSHOT (1ULL << 41)        /* sync argument: memory now (| state) */
#define IP_CHILD_ENV "PRIVMEM_BENCH_INPLACE_FD"

/* What one path measured. */
struct ip_series {
	struct samples t[IP_BATCHES], cpu[IP_BATCHES];
	uint64_t pool[IP_STATES], host[IP_STATES];   /* bytes: frames in use, host-side pages */
	bool done;
};

struct ip_job {
	struct bench_marks mk;       /* first: m->ctx for bench_mark_sync */
	uint64_t size, batch;
	unsigned int reps;
	struct vmm *m;
	struct ip_series *out;
	bool snapshot;               /* this run takes the memory snapshots */
};

/* ---- guest ---- */

static void guest_touch(struct pm_guest *g, uint64_t gpa, uint64_t n, uint64_t v)
{
	for (uint64_t p = 0; p < n; p++)
		pm_guest_write64(g, gpa + (p << 12), v + p);
}

static void guest_inplace_main(struct pm_guest *g, void *arg)
{
	const struct ip_job *j = arg;
	uint64_t npages = j->size >> 12;

	/* Untimed: the buffer private and in use (RAM starts shared). */
	PM_GUEST_ASSERT(g, guest_map_gpa_range(g, 0, npages, true) == 0);
	guest_touch(g, 0, npages, 1);
	for (unsigned int rep = 0; rep < j->reps; rep++) {
		pm_guest_sync(g, BENCH_MARK(0, 0));
		for (uint64_t p = 0; p < npages; p += j->batch) {
			PM_GUEST_ASSERT(g, guest_map_gpa_range(g, p << 12, j->batch, false) == 0);
			guest_touch(g, p << 12, j->batch, rep);
			PM_GUEST_ASSERT(g, guest_map_gpa_range(g, p << 12, j->batch, true) == 0);
			guest_touch(g, p << 12, j->batch, rep + 1);
		}
		pm_guest_sync(g, BENCH_MARK(0, 1));
	}
	if (!j->snapshot)
		return;
	PM_GUEST_ASSERT(g, guest_map_gpa_range(g, 0, npages, false) == 0);
	guest_touch(g, 0, npages, 2);
	pm_guest_sync(g, IP_SNAPSHOT | IP_SHARED);
	PM_GUEST_ASSERT(g, guest_map_gpa_range(g, 0, npages, true) == 0);
	guest_touch(g, 0, npages, 3);
	pm_guest_sync(g, IP_SNAPSHOT | IP_PRIVATE);
}

/* ---- VMM ---- */

/* Pages of the host's side of guest RAM that exist: resident pages of the
 * VMM's anonymous copy, or of the host file behind the view (a shared
 * file mapping: mincore reports the file's pages, mapped here or not). */
static uint64_t host_side_bytes(struct vmm *m)
{
	uint64_t n = m->mem_size >> 12, bytes = 0;
	unsigned char *vec = malloc(n);

	if (!vec || !m->shared || mincore(m->shared, m->mem_size, vec)) {
		free(vec);
		return 0;
	}
	for (uint64_t i = 0; i < n; i++)
		bytes += (vec[i] & 1) ? PAGE_4K : 0;
	free(vec);
	return bytes;
}

static void ip_sync(struct vmm *m, int vcpu, const struct pm_ucall *uc)
{
	struct ip_job *j = m->ctx;
	struct pm_pool_stats ps;
	unsigned int s = uc->args[0] & 1;

	if (!(uc->args[0] & IP_SNAPSHOT)) {
		bench_mark_sync(m, vcpu, uc);
		return;
	}
	vmm_pool_stats(m, &ps);
	j->out->pool[s] = ps.in_use;
	j->out->host[s] = host_side_bytes(m);
}

/* Measures this process's mode, every batch size, into *out. */
static int ip_measure(struct result *r, bool in_place, struct ip_series *out)
{
	for (int b = 0; b < IP_BATCHES && !r->failed; b++) {
		struct ip_job j = { .size = r->size, .batch = ip_batch[b], .reps = r->reps, .out = out,
				    .snapshot = b == IP_BATCHES - 1 };
		void *args[1] = { &j };
		struct vmm m;
		int ret;

		if (bench_vm_create(r, &m, KVM_X86_SW_PROTECTED_VM, r->size, PM_GUEST_MEMFD_FLAG_NO_HUGE))
			return -1;
		if (m.in_place != in_place) {
			vmm_destroy(&m);
			result_fail(r, "the VM converts %s, not %s", m.in_place ? "in place" : "destructively",
				    in_place ? "in place" : "destructively");
			return -1;
		}
		j.m = &m;
		m.ctx = &j;
		m.sync = ip_sync;
		ret = vmm_set_guest(&m, guest_inplace_main, args);
		if (!ret)
			ret = vmm_run_all(&m, NULL, NULL);
		if (ret)
			result_fail(r, "guest failed: %s", m.abort_msg[0] ? m.abort_msg : "PM_KVM_SET_GUEST");
		vmm_destroy(&m);
		out->t[b] = j.mk.t[0];
		out->cpu[b] = j.mk.cpu[0];
	}
	out->done = !r->failed;
	return r->failed ? -1 : 0;
}

/* ---- the other mode, in a child ---- */

/* The child's side: its series as lines on fd. */
static void ip_send(int fd, const struct ip_series *s)
{
	FILE *f = fdopen(fd, "w");

	if (!f)
		return;
	for (int b = 0; b < IP_BATCHES; b++)
		for (unsigned int i = 0; i < s->t[b].n; i++)
			fprintf(f, "t %d %.9e %.9e\n", b, s->t[b].v[i], i < s->cpu[b].n ? s->cpu[b].v[i] : 0.0);
	for (int st = 0; st < IP_STATES; st++)
		fprintf(f, "mem %d %" PRIu64 " %" PRIu64 "\n", st, s->pool[st], s->host[st]);
	fprintf(f, "end\n");
	fclose(f);
}

static void ip_parse(FILE *f, struct ip_series *s)
{
	char line[160];

	while (fgets(line, sizeof(line), f)) {
		int b, st;
		double t, cpu;
		uint64_t pool, host;

		if (sscanf(line, "t %d %le %le", &b, &t, &cpu) == 3 && b >= 0 && b < IP_BATCHES) {
			samples_add(&s->t[b], t);
			samples_add(&s->cpu[b], cpu);
		} else if (sscanf(line, "mem %d %" SCNu64 " %" SCNu64, &st, &pool, &host) == 3 &&
			   st >= 0 && st < IP_STATES) {
			s->pool[st] = pool;
			s->host[st] = host;
		} else if (!strncmp(line, "end", 3)) {
			s->done = true;
		}
	}
}

/* Runs `privmem bench inplace` in the other mode and reads its series. */
static int ip_run_child(struct result *r, bool in_place, struct ip_series *out)
{
	char size[32], reps[16], fdname[16];
	int pfd[2], status = 0;
	FILE *f;
	pid_t pid;

	snprintf(size, sizeof(size), "%" PRIu64, r->size);
	snprintf(reps, sizeof(reps), "%u", r->reps);
	if (pipe(pfd)) {
		result_fail(r, "pipe: %s", strerror(errno));
		return -1;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		result_fail(r, "fork: %s", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		char *argv[] = { "privmem", "bench", "inplace", "--size", size, "--reps", reps, NULL };
		int devnull = open("/dev/null", O_WRONLY);

		close(pfd[0]);
		snprintf(fdname, sizeof(fdname), "%d", pfd[1]);
		setenv(IP_CHILD_ENV, fdname, 1);
		setenv("PRIVMEM_GMEM_IN_PLACE", in_place ? "1" : "0", 1);
		if (devnull >= 0)
			dup2(devnull, STDOUT_FILENO);
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	close(pfd[1]);
	f = fdopen(pfd[0], "r");
	if (f) {
		ip_parse(f, out);
		fclose(f);
	} else {
		close(pfd[0]);
	}
	waitpid(pid, &status, 0);
	if (!out->done || !WIFEXITED(status) || WEXITSTATUS(status)) {
		result_fail(r, "the %s run (a child in that mode) failed", in_place ? "in-place" : "destructive");
		return -1;
	}
	return 0;
}

/* ---- the benchmark ---- */

/* The limit: one pass of memcpy and of memset over a buffer of the size. */
static void ip_limits(struct result *r, struct samples *cpy, struct samples *set)
{
	uint8_t *a = buffer_new(r->size), *b = buffer_new(r->size);

	if (!a || !b) {
		result_fail(r, "mmap of the reference buffers: %s", strerror(errno));
	} else {
		for (unsigned int rep = 0; rep < r->reps; rep++) {
			uint64_t t0 = now_ns();

			memcpy(b, a, r->size);
			clobber(b);
			samples_add(cpy, secs_since(t0));
			t0 = now_ns();
			memset(a, (int)rep, r->size);
			clobber(a);
			samples_add(set, secs_since(t0));
		}
	}
	if (a)
		buffer_free(a, r->size);
	if (b)
		buffer_free(b, r->size);
}

static void ip_report(struct result *r, struct ip_series s[IP_NR])
{
	static const char *const labels[IP_NR][IP_BATCHES] = {
		{ "destructive, 1 page per exit", "destructive, 64 pages per exit" },
		{ "in place, 1 page per exit", "in place, 64 pages per exit" },
	};
	double pages = (double)(r->size >> 12);
	struct figure *f[IP_NR][IP_BATCHES], *fc, *fs;
	struct samples cpy = { .n = 0 }, set = { .n = 0 };
	char key[48], label[96];

	for (int p = 0; p < IP_NR; p++)
		for (int b = 0; b < IP_BATCHES; b++) {
			snprintf(key, sizeof(key), "%s_%" PRIu64, ip_names[p], ip_batch[b]);
			f[p][b] = figure_add(r, key, labels[p][b], "page", pages, (double)r->size);
			figure_set(f[p][b], &s[p].t[b]);
			figure_set_cpu(f[p][b], &s[p].cpu[b]);
		}
	ip_limits(r, &cpy, &set);
	if (r->failed)
		return;
	fc = figure_add(r, "memcpy", "memcpy of the buffer", "page", pages, (double)r->size);
	figure_set(fc, &cpy);
	fs = figure_add(r, "memset", "memset of the buffer", "page", pages, (double)r->size);
	figure_set(fs, &set);
	for (int b = 0; b < IP_BATCHES; b++) {
		snprintf(key, sizeof(key), "destructive_%" PRIu64 "_over_inplace", ip_batch[b]);
		snprintf(label, sizeof(label), "destructive / in place, %" PRIu64 " per exit", ip_batch[b]);
		ratio_add(r, key, label, f[IP_DESTRUCTIVE][b], f[IP_INPLACE][b], false);
		for (int p = 0; p < IP_NR; p++) {
			snprintf(key, sizeof(key), "%s_%" PRIu64 "_over_memcpy", ip_names[p], ip_batch[b]);
			snprintf(label, sizeof(label), "%s, %" PRIu64 " per exit / memcpy", ip_names[p],
				 ip_batch[b]);
			ratio_add(r, key, label, f[p][b], fc, false);
		}
	}
	ratio_add(r, "memcpy_over_memset", "memcpy / memset", fc, fs, false);
	for (int p = 0; p < IP_NR; p++)
		for (int st = 0; st < IP_STATES; st++) {
			const char *state = st == IP_SHARED ? "shared" : "private";

			snprintf(key, sizeof(key), "%s_%s_pool_mib", ip_names[p], state);
			snprintf(label, sizeof(label), "%s, buffer %s: pool frames in use", ip_names[p], state);
			info_add(r, key, label, (double)s[p].pool[st] / (double)MIB, "MiB");
			snprintf(key, sizeof(key), "%s_%s_host_mib", ip_names[p], state);
			snprintf(label, sizeof(label), "%s, buffer %s: host-side pages", ip_names[p], state);
			info_add(r, key, label, (double)s[p].host[st] / (double)MIB, "MiB");
			snprintf(key, sizeof(key), "%s_%s_over_buffer", ip_names[p], state);
			snprintf(label, sizeof(label), "%s, buffer %s: memory / buffer", ip_names[p], state);
			info_add(r, key, label, (double)(s[p].pool[st] + s[p].host[st]) / (double)r->size, "x");
		}
	note(r, "one vCPU of a software-protected VM whose RAM is the %" PRIu64 " MiB buffer (4K "
		"guest_memfd pages); a round trip is shared and back through two KVM_HC_MAP_GPA_RANGE "
		"exits the VMM answers, each followed by an 8-byte write to every page; the time is the "
		"KVM_RUN between two SYNC exits, taken by the VMM, per page of the buffer", r->size / MIB);
	note(r, "destructive: KVM_SET_MEMORY_ATTRIBUTES and a discard (punch of the private page, "
		"madvise of the VMM's copy); in place: KVM_SET_MEMORY_ATTRIBUTES2 on the guest_memfd "
		"(PRIVMEM_GMEM_IN_PLACE=1), the VMM's RAM its view, nothing discarded; each mode runs "
		"in a process of its own (the mode is per process)");
	note(r, "memory: after the measurements, the whole buffer made shared then private and "
		"written; pool = privmem's frames in use (guest pages and page tables), host-side = the "
		"VMM's resident copy or, in place, the guest_memfd's host-file pages (mincore of the "
		"view); in place a shared page keeps its frame as well (privmem's simulation: the "
		"kernel has one page)");
}

void bench_inplace(const struct bench_opts *o, struct result *r)
{
	struct ip_series s[IP_NR];
	const char *child_fd = getenv(IP_CHILD_ENV);
	bool here = vmm_gmem_in_place();
	enum ip_path mine = here ? IP_INPLACE : IP_DESTRUCTIVE;

	memset(s, 0, sizeof(s));
	snprintf(r->title, sizeof(r->title), "a bounce buffer converted back and forth through exits: "
		 "in place (KVM_SET_MEMORY_ATTRIBUTES2) vs destructive");
	if ((r->size >> 12) % ip_batch[IP_BATCHES - 1]) {
		result_fail(r, "the size must be a multiple of %" PRIu64 " pages", ip_batch[IP_BATCHES - 1]);
		return;
	}
	if (ip_measure(r, here, &s[mine]))
		return;
	if (child_fd) {
		ip_send(atoi(child_fd), &s[mine]);
		return;
	}
	if (ip_run_child(r, !here, &s[!mine]))
		return;
	ip_report(r, s);
}

/* SPDX-License-Identifier: MIT */
/*
 * The tracer (trace points: trace.h; the API: pm_trace_start/stop in
 * privmem.h): a Chrome / Perfetto JSON trace ("Trace Event Format": one
 * object whose traceEvents array holds complete spans "X", instants "i"
 * and thread-name metadata "M"; times in microseconds).
 *
 * Objects:
 *  - struct trace_buf, one per thread that recorded an event: its events
 *    since the last flush and its name. Owned by the thread (a
 *    thread-local pointer, freed by the key destructor at thread exit,
 *    after a last flush), listed in `bufs` for pm_trace_stop.
 *  - the output: a file descriptor and a write buffer. Events go out in
 *    each thread's order (the format does not need them sorted across
 *    threads); ts are relative to the start.
 *
 * Locks (all leaves for the rest of privmem; see trace.h):
 *   list_lock  > buf->lock > out_lock
 *   list_lock: bufs, and the session (out_fd, t_start) across start/stop;
 *   buf->lock: the buffer's events and name;
 *   out_lock: the write buffer, first, and the counters written with it.
 * pm_trace_on is set under list_lock (start, stop) and read anywhere;
 * an event recorded after stop has flushed its thread's buffer finds it
 * off under the buffer's lock and is dropped.
 *
 * A forked child does not trace (its copy of the session is closed);
 * PRIVMEM_TRACE=FILE starts tracing when the library loads and writes the
 * file at exit.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <time.h>
#include <unistd.h>
#include <privmem/privmem.h>
#include "lib/trace.h"

#define TRACE_BUF_EVENTS 8192
#define TRACE_OUT_BYTES  (256 * 1024)

atomic_bool pm_trace_on;

struct trace_ev {
	uint64_t ts, dur;        /* ns; dur 0 and t0 0: an instant */
	const char *name;
	uint32_t cat;
	bool instant;
	uint64_t a[4];
};

struct trace_buf {
	struct trace_buf *next;          /* list_lock */
	pthread_mutex_t lock;
	pid_t tid;
	char name[48];                   /* lock */
	bool name_dirty;                 /* lock: not written since it changed */
	unsigned int n;                  /* lock */
	struct trace_ev ev[TRACE_BUF_EVENTS];
};

static pthread_mutex_t list_lock = PTHREAD_MUTEX_INITIALIZER;
static struct trace_buf *bufs;        /* list_lock */
static pthread_key_t buf_key;
static pthread_once_t buf_key_once = PTHREAD_ONCE_INIT;
static __thread struct trace_buf *my_buf;

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static int out_fd = -1;               /* list_lock to change; out_lock to write */
static pid_t out_pid;                 /* the process tracing (not a forked child) */
static uint64_t t_start;              /* ns, the session's zero */
static char *out_buf;                 /* out_lock */
static size_t out_len;                /* out_lock */
static bool out_first, out_error;     /* out_lock */
static uint64_t nr_events;            /* out_lock: events written */
static atomic_uint_fast64_t nr_dropped; /* no buffer for them */
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

static void trace_register_exit(void);

/* ---- the categories: their argument names and formats ---- */

/* x: hexadecimal, u: unsigned, d: signed, s: a static string, 0: unused. */
static const struct trace_cat {
	const char *cat;
	struct { const char *key; char fmt; } arg[4];
} cats[PM_TRACE_NR_CATS] = {
	[PM_TRACE_RUN] = { "vcpu", { { "vcpu", 'u' }, { "exit_reason", 'u' }, { "ret", 'd' } } },
	[PM_TRACE_EXIT] = { "exit", { { "vcpu", 'u' }, { "exit_reason", 'u' }, { "detail", 'x' } } },
	[PM_TRACE_FAULT] = { "mmu", { { "gpa", 'x' }, { "level", 'd' }, { "result", 's' },
				      { "private", 'u' } } },
	[PM_TRACE_CONVERT] = { "convert", { { "gpa", 'x' }, { "size", 'u' }, { "attributes", 'x' },
					    { "ret", 'd' } } },
	[PM_TRACE_ZAP] = { "mmu", { { "gpa", 'x' }, { "size", 'u' }, { "zapped", 'u' }, { "split", 'u' } } },
	[PM_TRACE_SHOOTDOWN] = { "mmu", { { "generation", 'u' }, { "vcpus", 'u' } } },
	[PM_TRACE_TDX] = { "tdx", { { "gpa", 'x' }, { "level", 'd' }, { "status", 'x' } } },
	[PM_TRACE_SNP] = { "snp", { { "pfn", 'x' }, { "gpa", 'x' }, { "size_2m", 'u' }, { "result", 'u' } } },
	[PM_TRACE_PKVM] = { "pkvm", { { "pfn", 'x' }, { "gfn", 'x' }, { "pages", 'u' }, { "ret", 'd' } } },
	[PM_TRACE_CCA] = { "cca", { { "addr", 'x' }, { "ipa", 'x' }, { "level", 'd' }, { "result", 'x' } } },
};

uint64_t pm_trace_clock(void)
{
	struct timespec t;
	uint64_t ns;

	clock_gettime(CLOCK_MONOTONIC, &t);
	ns = (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
	return ns ? ns : 1;        /* 0 means "not tracing" to pm_trace_end */
}

/* ---- output (out_lock held) ---- */

/* Writes the buffer out; a failed write marks the output broken. */
static void out_drain_locked(void)
{
	const char *p = out_buf;

	while (out_len && !out_error) {
		ssize_t w = write(out_fd, p, out_len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			out_error = true;
			break;
		}
		p += w;
		out_len -= (size_t)w;
	}
	out_len = 0;
}

static void out_write_locked(const char *s, size_t n)
{
	while (n && !out_error) {
		size_t room = TRACE_OUT_BYTES - out_len, c = n < room ? n : room;

		memcpy(out_buf + out_len, s, c);
		out_len += c;
		s += c;
		n -= c;
		if (out_len == TRACE_OUT_BYTES)
			out_drain_locked();
	}
}

static void out_printf_locked(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out_printf_locked(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > 0)
		out_write_locked(line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

/* A string as a JSON string literal (names are ours; thread names may not be). */
static void out_json_string_locked(const char *s)
{
	out_write_locked("\"", 1);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			out_printf_locked("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			out_printf_locked("\\u%04x", *s);
		else
			out_write_locked(s, 1);
	}
	out_write_locked("\"", 1);
}

static void out_sep_locked(void)
{
	out_write_locked(out_first ? "\n" : ",\n", out_first ? 1 : 2);
	out_first = false;
}

/* Microseconds with three decimals, from ns since the start. */
static void out_us_locked(const char *key, uint64_t ns)
{
	out_printf_locked(",\"%s\":%" PRIu64 ".%03" PRIu64, key, ns / 1000, ns % 1000);
}

static void out_event_locked(const struct trace_buf *b, const struct trace_ev *e)
{
	const struct trace_cat *c = &cats[e->cat];
	uint64_t ts = e->ts > t_start ? e->ts - t_start : 0;
	bool first = true;

	out_sep_locked();
	out_printf_locked("{\"ph\":\"%s\",\"cat\":\"%s\",\"name\":", e->instant ? "i" : "X", c->cat);
	out_json_string_locked(e->name);
	out_us_locked("ts", ts);
	if (e->instant)
		out_write_locked(",\"s\":\"t\"", 8);
	else
		out_us_locked("dur", e->dur);
	out_printf_locked(",\"pid\":%d,\"tid\":%d,\"args\":{", (int)out_pid, (int)b->tid);
	for (int i = 0; i < 4; i++) {
		if (!c->arg[i].key)
			continue;
		out_printf_locked("%s\"%s\":", first ? "" : ",", c->arg[i].key);
		first = false;
		switch (c->arg[i].fmt) {
		case 'x':
			out_printf_locked("\"0x%" PRIx64 "\"", e->a[i]);
			break;
		case 'd':
			out_printf_locked("%" PRId64, (int64_t)e->a[i]);
			break;
		case 's':
			out_json_string_locked(e->a[i] ? (const char *)(uintptr_t)e->a[i] : "");
			break;
		default:
			out_printf_locked("%" PRIu64, e->a[i]);
			break;
		}
	}
	out_write_locked("}}", 2);
	nr_events++;
}

static void out_thread_name_locked(pid_t tid, const char *name)
{
	out_sep_locked();
	out_printf_locked("{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":%d,\"tid\":%d,\"args\":{\"name\":",
			  (int)out_pid, (int)tid);
	out_json_string_locked(name);
	out_write_locked("}}", 2);
}

/* Writes a buffer's events and empties it (b->lock held). */
static void buf_flush_locked(struct trace_buf *b)
{
	pthread_mutex_lock(&out_lock);
	if (out_fd >= 0) {
		if (b->name_dirty && b->name[0])
			out_thread_name_locked(b->tid, b->name);
		b->name_dirty = false;
		for (unsigned int i = 0; i < b->n; i++)
			out_event_locked(b, &b->ev[i]);
	}
	pthread_mutex_unlock(&out_lock);
	b->n = 0;
}

/* ---- per-thread buffers ---- */

static void buf_release(void *arg)
{
	struct trace_buf *b = arg, **p;

	pthread_mutex_lock(&list_lock);
	for (p = &bufs; *p && *p != b; p = &(*p)->next)
		;
	if (*p)
		*p = b->next;
	pthread_mutex_lock(&b->lock);
	if (atomic_load(&pm_trace_on))
		buf_flush_locked(b);
	pthread_mutex_unlock(&b->lock);
	pthread_mutex_unlock(&list_lock);
	pthread_mutex_destroy(&b->lock);
	my_buf = NULL;
	free(b);
}

static void buf_key_create(void)
{
	PM_BUG_ON(pthread_key_create(&buf_key, buf_release));
}

/* The calling thread's buffer, created on its first event (NULL without
 * memory: its events are dropped and counted). */
static struct trace_buf *buf_get(void)
{
	struct trace_buf *b = my_buf;

	if (pm_likely(b))
		return b;
	pthread_once(&buf_key_once, buf_key_create);
	b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	pthread_mutex_init(&b->lock, NULL);
	b->tid = gettid();
	if (!pthread_getname_np(pthread_self(), b->name, sizeof(b->name)) && b->name[0])
		b->name_dirty = true;
	pthread_setspecific(buf_key, b);
	my_buf = b;
	pthread_mutex_lock(&list_lock);
	b->next = bufs;
	bufs = b;
	pthread_mutex_unlock(&list_lock);
	return b;
}

void pm_trace_record(uint64_t t0, enum pm_trace_cat cat, const char *name, uint64_t a0,
		     uint64_t a1, uint64_t a2, uint64_t a3)
{
	uint64_t now = pm_trace_clock();
	struct trace_buf *b = buf_get();
	struct trace_ev *e;

	if (!b) {
		atomic_fetch_add_explicit(&nr_dropped, 1, memory_order_relaxed);
		return;
	}
	pthread_mutex_lock(&b->lock);
	if (atomic_load_explicit(&pm_trace_on, memory_order_relaxed)) {
		if (b->n == TRACE_BUF_EVENTS)
			buf_flush_locked(b);
		e = &b->ev[b->n++];
		e->ts = t0 ? t0 : now;
		e->dur = t0 ? now - t0 : 0;
		e->instant = !t0;
		e->name = name;
		e->cat = cat;
		e->a[0] = a0;
		e->a[1] = a1;
		e->a[2] = a2;
		e->a[3] = a3;
	}
	pthread_mutex_unlock(&b->lock);
}

void pm_trace_record_thread_name(const char *name)
{
	struct trace_buf *b;

	if (!pm_tracing())
		return;
	b = buf_get();
	if (!b)
		return;
	pthread_mutex_lock(&b->lock);
	if (strncmp(b->name, name, sizeof(b->name))) {
		snprintf(b->name, sizeof(b->name), "%s", name);
		b->name_dirty = true;
	}
	pthread_mutex_unlock(&b->lock);
}

/* ---- the session ---- */

int pm_trace_start(const char *path)
{
	int fd, err = 0;

	if (!path || !path[0]) {
		errno = EINVAL;
		return -1;
	}
	pthread_mutex_lock(&list_lock);
	if (out_fd >= 0) {
		err = EBUSY;
		goto out;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		err = errno;
		goto out;
	}
	pthread_mutex_lock(&out_lock);
	out_buf = malloc(TRACE_OUT_BYTES);
	if (!out_buf) {
		pthread_mutex_unlock(&out_lock);
		close(fd);
		err = ENOMEM;
		goto out;
	}
	out_fd = fd;
	out_pid = getpid();
	out_len = 0;
	out_first = true;
	out_error = false;
	nr_events = 0;
	atomic_store(&nr_dropped, 0);
	t_start = pm_trace_clock();
	out_write_locked("{\"traceEvents\":[", 16);
	out_sep_locked();
	out_printf_locked("{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":%d,\"args\":{\"name\":\"privmem\"}}",
			  (int)out_pid);
	pthread_mutex_unlock(&out_lock);
	/* Names already given go out again in this session. */
	for (struct trace_buf *b = bufs; b; b = b->next) {
		pthread_mutex_lock(&b->lock);
		b->n = 0;
		b->name_dirty = b->name[0] != '\0';
		pthread_mutex_unlock(&b->lock);
	}
	atomic_store(&pm_trace_on, true);
	pthread_once(&exit_once, trace_register_exit);
out:
	pthread_mutex_unlock(&list_lock);
	errno = err;
	return err ? -1 : 0;
}

int pm_trace_stop(void)
{
	int err = 0;

	pthread_mutex_lock(&list_lock);
	if (out_fd < 0 || out_pid != getpid()) {
		pthread_mutex_unlock(&list_lock);
		errno = EINVAL;
		return -1;
	}
	atomic_store(&pm_trace_on, false);
	for (struct trace_buf *b = bufs; b; b = b->next) {
		pthread_mutex_lock(&b->lock);
		buf_flush_locked(b);
		pthread_mutex_unlock(&b->lock);
	}
	pthread_mutex_lock(&out_lock);
	out_printf_locked("\n],\"displayTimeUnit\":\"ns\",\"otherData\":{\"privmem_version\":\"%s\","
			  "\"events\":%" PRIu64 ",\"dropped\":%" PRIu64 "}}\n", pm_version(),
			  nr_events, (uint64_t)atomic_load(&nr_dropped));
	/* The last partial buffer: out_write_locked writes only full ones. */
	out_drain_locked();
	if (out_error)
		err = EIO;
	if (close(out_fd) && !err)
		err = EIO;
	out_fd = -1;
	free(out_buf);
	out_buf = NULL;
	pthread_mutex_unlock(&out_lock);
	pthread_mutex_unlock(&list_lock);
	errno = err;
	return err ? -1 : 0;
}

/* ---- fork, exit and PRIVMEM_TRACE ---- */

/* A fork waits for the tracer's session locks, so that the child's copies
 * are free; the child does not write its parent's trace, and forgets the
 * buffers (the other threads' are not its own; its thread's is left to
 * the key's destructor). */
static void trace_atfork_prepare(void)
{
	pthread_mutex_lock(&list_lock);
	pthread_mutex_lock(&out_lock);
}

static void trace_atfork_parent(void)
{
	pthread_mutex_unlock(&out_lock);
	pthread_mutex_unlock(&list_lock);
}

static void trace_atfork_child(void)
{
	atomic_store(&pm_trace_on, false);
	if (out_fd >= 0)
		close(out_fd);
	out_fd = -1;
	free(out_buf);
	out_buf = NULL;
	bufs = NULL;
	my_buf = NULL;
	pthread_mutex_unlock(&out_lock);
	pthread_mutex_unlock(&list_lock);
}

/* A trace still open at exit is written then. */
static void trace_at_exit(void)
{
	if (out_fd >= 0 && out_pid == getpid() && pm_trace_stop())
		fprintf(stderr, "privmem: writing the trace failed: %s\n", strerror(errno));
}

static void trace_register_exit(void)
{
	atexit(trace_at_exit);
}

__attribute__((constructor)) static void trace_init(void)
{
	const char *path = getenv("PRIVMEM_TRACE");

	pthread_atfork(trace_atfork_prepare, trace_atfork_parent, trace_atfork_child);
	if (path && path[0] && pm_trace_start(path))
		fprintf(stderr, "privmem: PRIVMEM_TRACE=%s: %s; not tracing\n", path, strerror(errno));
}

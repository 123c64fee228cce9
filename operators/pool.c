/*
 * operators/pool.c: the thread pool the kernels split their rows over.
 *
 * Workload: a decode step issues 100-200 jobs of 10-500 microseconds each,
 * back to back, with short single-threaded work in between; prefill issues
 * fewer, longer jobs. So the per-job overhead must be a microsecond or so:
 * the caller publishes the job by bumping a generation counter, the workers
 * spin on it (with a CPU pause) and the caller spins on a counter of workers
 * still running. A worker that saw no job for OP_POOL_SPIN_NS sleeps on a
 * condition variable, so an idle pool (between requests, or while the caller
 * does something long and serial) costs no CPU; waking it costs tens of
 * microseconds, once.
 *
 * Lost wake-ups are excluded by a Dekker pair on seq_cst atomics: a worker
 * increments `sleepers` and then re-reads `gen` under the mutex; the caller
 * bumps `gen` and then reads `sleepers`. At least one of them sees the other's
 * write, so either the worker does not sleep or the caller broadcasts (taking
 * the mutex, which the worker holds until it is inside pthread_cond_wait).
 */
#define _GNU_SOURCE /* sched_setaffinity, CPU_SET, syscall(SYS_gettid) */

#include "op_kernels.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

/* How long a worker spins for the next job before it sleeps. A decode step's
 * gaps between matmuls (norms, the token mixers, sampling) are far shorter;
 * a millisecond of spinning on an idle pool is noise next to a token
 * (18 ms at 55 tok/s). */
#define OP_POOL_SPIN_NS 1000000LL

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

static inline int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

typedef struct worker {
	struct op_pool *pool;
	int ith;         /* 1..n-1 */
	long tid;        /* kernel thread id (Linux), for pinning; 0 elsewhere */
	pthread_t thread;
	bool started;    /* pthread_create succeeded */
} worker;

struct op_pool {
	/* Written by the caller, read by workers: each on its own cache line so
	 * the spinning workers and the caller's counter do not share one. */
	alignas(64) atomic_uint_fast64_t gen; /* job generation; bumped per job */
	alignas(64) atomic_int pending;       /* workers still in the current job */
	alignas(64) atomic_int sleepers;      /* workers in (or entering) cond_wait */
	atomic_bool stop;                     /* set once, by op_pool_free */
	op_pool_fn fn;                        /* the current job, published by gen */
	void *arg;
	int n;                                /* threads, caller included */
	worker *workers;                      /* n - 1 */
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

/* Spinning yields the CPU every this many pauses (~10-40 us): free when
 * nothing else wants the core (a syscall that returns at once), and on an
 * oversubscribed machine it lets a descheduled pool thread run, instead of
 * burning its time slice while it waits for it. */
#define SPIN_YIELD_EVERY 256

/* Wait until gen moves past `seen`; returns the new value. */
static uint64_t wait_job(op_pool *p, uint64_t seen)
{
	uint64_t g;
	int64_t t0 = now_ns();
	for (unsigned i = 1;; i++) {
		g = atomic_load_explicit(&p->gen, memory_order_acquire);
		if (g != seen)
			return g;
		cpu_relax();
		if (i % SPIN_YIELD_EVERY == 0) {
			if (now_ns() - t0 > OP_POOL_SPIN_NS)
				break;
			sched_yield();
		}
	}
	pthread_mutex_lock(&p->mu);
	atomic_fetch_add(&p->sleepers, 1);
	while ((g = atomic_load(&p->gen)) == seen)
		pthread_cond_wait(&p->cv, &p->mu);
	atomic_fetch_sub(&p->sleepers, 1);
	pthread_mutex_unlock(&p->mu);
	return g;
}

static void *worker_main(void *arg)
{
	worker *w = arg;
	op_pool *p = w->pool;
#if defined(__linux__)
	w->tid = (long)syscall(SYS_gettid);
#endif
	uint64_t seen = 0;
	for (;;) {
		seen = wait_job(p, seen);
		if (atomic_load_explicit(&p->stop, memory_order_acquire))
			break;
		p->fn(p->arg, w->ith, p->n);
		atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
	}
	return NULL;
}

static void nop_job(void *arg, int ith, int nth) {}

static void publish(op_pool *p)
{
	atomic_fetch_add(&p->gen, 1); /* seq_cst: see the file header */
	if (atomic_load(&p->sleepers) > 0) {
		pthread_mutex_lock(&p->mu);
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
	}
}

void op_pool_free(op_pool *p)
{
	if (!p)
		return;
	atomic_store(&p->stop, true);
	publish(p);
	for (int i = 0; i < p->n - 1; i++)
		if (p->workers[i].started)
			pthread_join(p->workers[i].thread, NULL);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p->workers);
	free(p);
}

int op_pool_create(op_pool **out, int nthreads, tl_err *err)
{
	*out = NULL;
	if (nthreads < 1 || nthreads > OP_POOL_MAX_THREADS)
		return tl_err_set(err, TL_EINVAL, "thread pool: %d threads: must be 1..%d", nthreads,
		                  OP_POOL_MAX_THREADS);
	op_pool *p = aligned_alloc(64, (sizeof *p + 63) / 64 * 64);
	if (!p)
		return tl_err_set(err, TL_ENOMEM, "thread pool: %d threads: out of memory", nthreads);
	memset(p, 0, sizeof *p);
	atomic_init(&p->gen, 0);
	atomic_init(&p->pending, 0);
	atomic_init(&p->sleepers, 0);
	atomic_init(&p->stop, false);
	p->fn = nop_job;
	p->n = 1; /* grows as workers start, so op_pool_free joins only those */
	if (pthread_mutex_init(&p->mu, NULL) != 0) {
		free(p);
		return tl_err_set(err, TL_EFAIL, "thread pool: mutex init failed");
	}
	if (pthread_cond_init(&p->cv, NULL) != 0) {
		pthread_mutex_destroy(&p->mu);
		free(p);
		return tl_err_set(err, TL_EFAIL, "thread pool: condition variable init failed");
	}
	int rc = 0;
	p->workers = calloc((size_t)(nthreads > 1 ? nthreads - 1 : 1), sizeof *p->workers);
	if (!p->workers) {
		rc = tl_err_set(err, TL_ENOMEM, "thread pool: %d threads: out of memory", nthreads);
		goto free_pool;
	}
	/* p->n must be final before the first worker reads it (fn gets nth);
	 * workers only read it inside a job, and no job runs until the startup
	 * job below. */
	p->n = nthreads;
	for (int i = 0; i < nthreads - 1; i++) {
		worker *w = &p->workers[i];
		w->pool = p;
		w->ith = i + 1;
		int e = pthread_create(&w->thread, NULL, worker_main, w);
		if (e != 0) {
			rc = tl_err_setsub(err, TL_EFAIL, e, "thread pool: starting thread %d of %d: %s",
			                   i + 1, nthreads, strerror(e));
			goto free_pool;
		}
		w->started = true;
	}
	/* One empty job: returns once every worker runs (and has its tid). */
	op_pool_run(p, nop_job, NULL);
	*out = p;
	return 0;
free_pool:
	op_pool_free(p);
	return rc;
}

int op_pool_size(const op_pool *p) { return p ? p->n : 1; }

void op_pool_run(op_pool *p, op_pool_fn fn, void *arg)
{
	if (!p || p->n == 1) {
		fn(arg, 0, 1);
		return;
	}
	p->fn = fn;
	p->arg = arg;
	atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
	publish(p); /* the seq_cst bump also releases fn, arg and pending */
	fn(arg, 0, p->n);
	/* The workers finish about when the caller does: spin, yielding now and
	 * then for an oversubscribed machine (see SPIN_YIELD_EVERY). */
	for (unsigned i = 1; atomic_load_explicit(&p->pending, memory_order_acquire) > 0; i++) {
		cpu_relax();
		if (i % SPIN_YIELD_EVERY == 0)
			sched_yield();
	}
}

int op_pool_pin(op_pool *p, const int *cpus, int n, tl_err *err)
{
	if (n < 1 || !cpus)
		return tl_err_set(err, TL_EINVAL, "thread pool: pin: no CPUs given");
#if defined(__linux__)
	int nth = op_pool_size(p);
	for (int i = 0; i < nth; i++) {
		int cpu = cpus[i % n];
		if (cpu < 0 || cpu >= CPU_SETSIZE)
			return tl_err_set(err, TL_EINVAL, "thread pool: pin: cpu %d: out of range", cpu);
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		pid_t tid = i == 0 ? 0 : (pid_t)p->workers[i - 1].tid;
		if (sched_setaffinity(tid, sizeof set, &set) != 0)
			return tl_err_setsub(err, TL_EIO, errno, "thread pool: pin thread %d to cpu %d: %s",
			                     i, cpu, strerror(errno));
	}
	return 0;
#else
	return tl_err_set(err, TL_EINVAL, "thread pool: pin: not supported on this system");
#endif
}

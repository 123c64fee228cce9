/*
 * devices/pool.c: the device pool. One worker thread per device, so devices
 * are used in parallel and each device runs one job at a time; every job
 * runs with the device's lock (lock.c) held, so another tailor process
 * never measures on the same device at the same time either.
 *
 * Health: a job that fails counts against its device; after
 * max_fail_streak failures in a row the device is marked offline, its
 * worker stops, the jobs only it could run are abandoned (reported through
 * the abandon callback) and jobs for any device stay in the queue for the
 * others. A job whose device failed under it (DEV_JOB_DEVICE) goes back to
 * the queue when it may run on any device and has attempts left, and is not
 * given twice to the same device.
 *
 * The queue is small (a generation of a search: tens to hundreds of jobs),
 * so finding work is a linear scan under one mutex.
 */
#include "dev_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POOL_MAX_DEVICES 64 /* tried-on sets are 64-bit masks */

typedef struct worker_arg {
	struct dev_pool *p;
	size_t i;
} worker_arg_t;

typedef struct pool_job {
	void *job;
	int64_t device_id; /* 0: any device */
	int attempts;
	uint64_t tried; /* devices (by index) it failed on */
	bool taken, done;
} pool_job;

struct dev_pool {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	db_device *devs;
	size_t n;
	bool *offline;
	int *streak;
	pool_job *jobs;
	size_t n_jobs, cap_jobs;
	size_t remaining; /* jobs not done */
	uint64_t alive;   /* workers still running, by index */
	dev_pool_opts o;
	bool ran;        /* started                                           */
	bool closing;    /* no more jobs will come: workers end when idle     */
	pthread_t *th;   /* the workers (n), started[i] when created          */
	bool *started;
	worker_arg_t *args;
};


int dev_pool_create(dev_pool **out, const db_device *devs, size_t n, const dev_pool_opts *o,
                    tl_err *err)
{
	*out = NULL;
	if (n == 0 || n > POOL_MAX_DEVICES)
		return tl_err_set(err, TL_EINVAL, "device pool: %zu devices (give 1 to %d)", n,
		                  POOL_MAX_DEVICES);
	if (o->run == NULL || o->abandon == NULL)
		return tl_err_set(err, TL_EINVAL,
		                  "device pool: run and abandon callbacks are required");
	dev_pool *p = calloc(1, sizeof *p);
	if (p == NULL)
		return tl_err_set(err, TL_ENOMEM, "device pool: out of memory");
	p->devs = malloc(n * sizeof *p->devs);
	p->offline = calloc(n, sizeof *p->offline);
	p->streak = calloc(n, sizeof *p->streak);
	if (p->devs == NULL || p->offline == NULL || p->streak == NULL) {
		dev_pool_free(p);
		return tl_err_set(err, TL_ENOMEM, "device pool: out of memory");
	}
	memcpy(p->devs, devs, n * sizeof *devs);
	p->n = n;
	for (size_t i = 0; i < n; i++)
		p->streak[i] = devs[i].fail_streak;
	p->o = *o;
	if (p->o.max_fail_streak < 1)
		p->o.max_fail_streak = DEV_FAIL_STREAK_DEFAULT;
	if (p->o.max_attempts < 1)
		p->o.max_attempts = 2;
	if (p->o.lock_wait_s <= 0)
		p->o.lock_wait_s = 600;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	*out = p;
	return 0;
}

static void sweep(dev_pool *p);

/* Let the workers end once every job is done, and join them. */
static void pool_close(dev_pool *p)
{
	if (!p->ran || p->th == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	p->closing = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (size_t i = 0; i < p->n; i++)
		if (p->started[i])
			pthread_join(p->th[i], NULL);
	pthread_mutex_lock(&p->mu);
	sweep(p); /* when no thread started */
	pthread_mutex_unlock(&p->mu);
	free(p->th);
	free(p->started);
	free(p->args);
	p->th = NULL;
	p->started = NULL;
	p->args = NULL;
}

void dev_pool_free(dev_pool *p)
{
	if (p == NULL)
		return;
	pool_close(p);
	if (p->devs) {
		pthread_mutex_destroy(&p->mu);
		pthread_cond_destroy(&p->cv);
	}
	free(p->devs);
	free(p->offline);
	free(p->streak);
	free(p->jobs);
	free(p);
}

int dev_pool_submit(dev_pool *p, void *job, int64_t device_id, tl_err *err)
{
	pthread_mutex_lock(&p->mu);
	if (p->closing) {
		pthread_mutex_unlock(&p->mu);
		return tl_err_set(err, TL_EINVAL, "device pool: submit after close");
	}
	if (p->n_jobs == p->cap_jobs) {
		size_t cap = p->cap_jobs ? 2 * p->cap_jobs : 16;
		pool_job *j = realloc(p->jobs, cap * sizeof *j);
		if (j == NULL) {
			pthread_mutex_unlock(&p->mu);
			return tl_err_set(err, TL_ENOMEM, "device pool: out of memory");
		}
		p->jobs = j;
		p->cap_jobs = cap;
	}
	pool_job *j = &p->jobs[p->n_jobs++];
	memset(j, 0, sizeof *j);
	j->job = job;
	j->device_id = device_id;
	p->remaining++;
	if (p->ran)
		sweep(p); /* its device may be offline already */
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return 0;
}

/* Give up on job j (mutex held). */
static void abandon(dev_pool *p, pool_job *j, const db_device *d, const char *why)
{
	j->done = true;
	j->taken = true;
	p->remaining--;
	p->o.abandon(p->o.ctx, d, j->job, why);
}

/* Abandon what can no longer run (mutex held): jobs pinned to a device that
 * is not alive, jobs every live device has failed, everything when no
 * device is alive. */
static void sweep(dev_pool *p)
{
	for (size_t k = 0; k < p->n_jobs; k++) {
		pool_job *j = &p->jobs[k];
		if (j->done || j->taken)
			continue;
		if (j->device_id != 0) {
			size_t i;
			for (i = 0; i < p->n; i++)
				if (p->devs[i].id == j->device_id)
					break;
			if (i == p->n) {
				abandon(p, j, NULL, "its device is not in the pool");
			} else if (!(p->alive & (1ull << i))) {
				char why[200];
				snprintf(why, sizeof why,
				         "device %s is offline after %d failures in a row",
				         p->devs[i].name, p->streak[i]);
				abandon(p, j, &p->devs[i], why);
			}
		} else if (p->alive == 0) {
			abandon(p, j, NULL, "no device is left online");
		} else if ((j->tried & p->alive) == p->alive) {
			abandon(p, j, NULL, "it failed on every device still online");
		}
	}
}

static pool_job *next_job(dev_pool *p, size_t i)
{
	for (size_t k = 0; k < p->n_jobs; k++) {
		pool_job *j = &p->jobs[k];
		if (j->done || j->taken)
			continue;
		if (j->device_id == p->devs[i].id ||
		    (j->device_id == 0 && !(j->tried & (1ull << i))))
			return j;
	}
	return NULL;
}

static void *worker(void *arg)
{
	dev_pool *p = ((worker_arg_t *)arg)->p;
	size_t i = ((worker_arg_t *)arg)->i;
	const db_device *d = &p->devs[i];
	dev_session *session = NULL;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		sweep(p);
		if (p->remaining == 0 && p->closing)
			break;
		pool_job *j = next_job(p, i);
		if (j == NULL) {
			pthread_cond_wait(&p->cv, &p->mu);
			continue;
		}
		j->taken = true;
		j->attempts++;
		/* the queue may grow (realloc) while the job runs: keep its index */
		size_t ji = (size_t)(j - p->jobs);
		void *job = j->job;
		pthread_mutex_unlock(&p->mu);

		tl_err lerr = TL_ERR_INIT;
		dev_lock *lock = NULL;
		int rc;
		if (!p->o.unlocked && dev_lock_acquire(&lock, d, p->o.lock_wait_s, &lerr) < 0) {
			pthread_mutex_lock(&p->mu);
			abandon(p, &p->jobs[ji], d, lerr.msg);
			pthread_cond_broadcast(&p->cv);
			continue;
		}
		rc = p->o.run(p->o.ctx, &session, d, job);
		dev_lock_release(lock);
		if (rc != DEV_JOB_OK && session && !dev_session_alive(session)) {
			dev_session_close(session);
			session = NULL;
		}

		pthread_mutex_lock(&p->mu);
		j = &p->jobs[ji];
		if (rc == DEV_JOB_OK) {
			if (p->streak[i] != 0 && p->o.health)
				p->o.health(p->o.ctx, d, "online", 0);
			p->streak[i] = 0;
			j->done = true;
			p->remaining--;
		} else {
			p->streak[i]++;
			j->tried |= 1ull << i;
			if (rc == DEV_JOB_DEVICE && j->device_id == 0 &&
			    j->attempts < p->o.max_attempts)
				j->taken = false; /* back to the queue for another device */
			else {
				j->done = true;
				p->remaining--;
			}
			if (p->streak[i] >= p->o.max_fail_streak) {
				p->offline[i] = true;
				p->alive &= ~(1ull << i);
				if (p->o.health)
					p->o.health(p->o.ctx, d, "offline", p->streak[i]);
				pthread_cond_broadcast(&p->cv);
				break;
			}
		}
		pthread_cond_broadcast(&p->cv);
	}
	p->alive &= ~(1ull << i);
	sweep(p);
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	dev_session_close(session);
	return NULL;
}

int dev_pool_start(dev_pool *p, tl_err *err)
{
	if (p->ran)
		return tl_err_set(err, TL_EINVAL, "device pool: already started");
	p->th = calloc(p->n, sizeof *p->th);
	p->args = calloc(p->n, sizeof *p->args);
	p->started = calloc(p->n, sizeof *p->started);
	if (p->th == NULL || p->args == NULL || p->started == NULL) {
		free(p->th);
		free(p->args);
		free(p->started);
		p->th = NULL;
		return tl_err_set(err, TL_ENOMEM, "device pool: out of memory");
	}
	p->ran = true;
	pthread_mutex_lock(&p->mu);
	for (size_t i = 0; i < p->n; i++)
		p->alive |= 1ull << i;
	pthread_mutex_unlock(&p->mu);
	int rc = 0;
	for (size_t i = 0; i < p->n; i++) {
		p->args[i].p = p;
		p->args[i].i = i;
		if (pthread_create(&p->th[i], NULL, worker, &p->args[i]) != 0) {
			pthread_mutex_lock(&p->mu);
			p->alive &= ~(1ull << i);
			sweep(p);
			pthread_cond_broadcast(&p->cv);
			pthread_mutex_unlock(&p->mu);
			rc = tl_err_set(err, TL_EFAIL, "device pool: cannot start a thread for %s",
			                p->devs[i].name);
			continue;
		}
		p->started[i] = true;
	}
	return rc;
}

void dev_pool_wait(dev_pool *p)
{
	pthread_mutex_lock(&p->mu);
	while (p->remaining > 0) {
		sweep(p);
		if (p->remaining == 0)
			break;
		pthread_cond_wait(&p->cv, &p->mu);
	}
	pthread_mutex_unlock(&p->mu);
}

int dev_pool_run(dev_pool *p, tl_err *err)
{
	int rc = dev_pool_start(p, err);
	if (p->ran)
		pool_close(p);
	return rc;
}

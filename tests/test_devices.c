/*
 * tests/test_devices.c: the devices room and its db functions, against real
 * shells, processes and files (the SSH transport is exercised end to end by
 * tests/test_device_ssh.sh with a real sshd):
 *  - dev_shell_quote: nasty strings fed through /bin/sh (and dash and bash
 *    when present) come out byte for byte, and run nothing;
 *  - run prefixes: words quoted, assignments kept as assignments;
 *  - descriptions: bad names, missing fields, control characters refused;
 *  - the local transport: stdout, stderr, exit statuses, a command that
 *    kills its own shell is "no status" (never 0), a hung command is killed
 *    at its timeout with its whole process group, work dirs with nasty
 *    paths, verified uploads;
 *  - the lock: a second holder waits and is told who holds it, also from
 *    another process;
 *  - the pool: a dead device goes offline after N failures, its jobs for
 *    any device run elsewhere and its own jobs are abandoned; two registry
 *    entries for one machine never run at once;
 *  - db: devices add/get/list/update/remove, measurements with repeats.
 */
#include "dev.h"
#include "tl_test.h"

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char tmpdir[256];

static double dev_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char *const nasty[] = {
    "",
    "plain",
    "two words",
    "it's",
    "'",
    "''",
    "\"double\"",
    "$(touch PWNED)",
    "`touch PWNED`",
    "a; touch PWNED",
    "a && touch PWNED || touch PWNED",
    "$HOME ${PATH} $1 $@ $$ $? $!",
    "\\ \\\\ \\' \\n",
    "*  ?  [a-z]  ~  ~root",
    "line1\nline2",
    "tab\there",
    "| > < >> & ( ) { } ! #",
    "-n",
    "--",
    "'\"'\"'$(touch PWNED)'\"",
    "é ü 日本 \xff",
};
#define N_NASTY (sizeof nasty / sizeof nasty[0])

static bool pwned(void)
{
	char p[300];
	snprintf(p, sizeof p, "%s/PWNED", tmpdir);
	return access(p, F_OK) == 0;
}

/* Run sh -c "printf %s QUOTED" in tmpdir with shell `sh`; compare. */
static void quote_through(const char *sh)
{
	if (access(sh, X_OK) != 0)
		return;
	for (size_t i = 0; i < N_NASTY; i++) {
		char *q = dev_shell_quote(nasty[i]);
		CHECK(q != NULL);
		if (q == NULL)
			continue;
		char cmdline[4096];
		snprintf(cmdline, sizeof cmdline, "cd '%s' && printf %%s %s", tmpdir, q);
		db_device d;
		db_device_init(&d);
		(void)d;
		int fds[2];
		CHECK(pipe(fds) == 0);
		pid_t pid = fork();
		if (pid == 0) {
			dup2(fds[1], 1);
			close(fds[0]);
			execl(sh, sh, "-c", cmdline, (char *)NULL);
			_exit(127);
		}
		close(fds[1]);
		char out[4096];
		size_t n = 0;
		ssize_t k;
		while ((k = read(fds[0], out + n, sizeof out - 1 - n)) > 0)
			n += (size_t)k;
		out[n] = '\0';
		close(fds[0]);
		int st;
		waitpid(pid, &st, 0);
		CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: exit for string %zu", sh, i);
		CHECK_MSG(n == strlen(nasty[i]) && memcmp(out, nasty[i], n) == 0,
		          "%s: string %zu came back as '%s'", sh, i, out);
		free(q);
	}
	CHECK_MSG(!pwned(), "%s: a quoted string ran a command", sh);
}

static void test_quote(void)
{
	char *q = dev_shell_quote("it's");
	CHECK_EQ_STR(q, "'it'\\''s'");
	free(q);
	q = dev_shell_quote("");
	CHECK_EQ_STR(q, "''");
	free(q);
	quote_through("/bin/sh");
	quote_through("/bin/dash");
	quote_through("/bin/bash");

	tl_err err = TL_ERR_INIT;
	char *line = NULL;
	CHECK_EQ_INT(dev_prefix_append(&line, "  FOO=1 taskset   -c 4-7 ", &err), 0);
	CHECK_EQ_STR(line, "FOO='1' 'taskset' '-c' '4-7'");
	free(line);
	line = NULL;
	CHECK_EQ_INT(dev_prefix_append(&line, "nice X=1 $(touch PWNED);", &err), 0);
	CHECK_EQ_STR(line, "'nice' 'X=1' '$(touch' 'PWNED);'");
	free(line);
	line = NULL;
	CHECK_EQ_INT(dev_shell_append(&line, "a b", &err), 0);
	CHECK_EQ_INT(dev_shell_append(&line, "c'd", &err), 0);
	CHECK_EQ_STR(line, "'a b' 'c'\\''d'");
	free(line);
}

static void test_check(void)
{
	db_device d;
	tl_err err = TL_ERR_INIT;
	db_device_init(&d);
	tl_strlcpy(d.name, "pi-5.lab_1", sizeof d.name);
	tl_strlcpy(d.transport, "ssh", sizeof d.transport);
	tl_strlcpy(d.host, "10.0.0.7", sizeof d.host);
	CHECK_EQ_INT(dev_device_check(&d, &err), 0);
	static const char *const bad_names[] = {"", "-x", ".x", "a b", "a;b", "a$(x)", "a'b"};
	for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
		db_device b = d;
		tl_strlcpy(b.name, bad_names[i], sizeof b.name);
		tl_err_clear(&err);
		CHECK_MSG(dev_device_check(&b, &err) == TL_EUSAGE, "name '%s' accepted",
		          bad_names[i]);
		CHECK(strstr(err.msg, "name") != NULL);
	}
	db_device b = d;
	b.host[0] = '\0';
	tl_err_clear(&err);
	CHECK_EQ_INT(dev_device_check(&b, &err), TL_EUSAGE);
	CHECK(strstr(err.msg, "--host") != NULL);
	b = d;
	tl_strlcpy(b.transport, "adb", sizeof b.transport);
	tl_err_clear(&err);
	CHECK_EQ_INT(dev_device_check(&b, &err), TL_EUSAGE);
	CHECK(strstr(err.msg, "--serial") != NULL);
	b = d;
	tl_strlcpy(b.user, "a\nb", sizeof b.user);
	tl_err_clear(&err);
	CHECK_EQ_INT(dev_device_check(&b, &err), TL_EUSAGE);
	CHECK(strstr(err.msg, "--user") != NULL);
	b = d;
	tl_strlcpy(b.toolchain_flags, "-O2; rm -rf /", sizeof b.toolchain_flags);
	tl_err_clear(&err);
	CHECK_EQ_INT(dev_device_check(&b, &err), TL_EUSAGE);
	b = d;
	tl_strlcpy(b.labels, "[\"phone\", 3]", sizeof b.labels);
	tl_err_clear(&err);
	CHECK_EQ_INT(dev_device_check(&b, &err), TL_EUSAGE);
	tl_strlcpy(b.labels, "[\"phone\", \"arm\"]", sizeof b.labels);
	tl_err_clear(&err);
	CHECK_EQ_INT(dev_device_check(&b, &err), 0);
}

static db_device local_dev(const char *name)
{
	db_device d;
	db_device_init(&d);
	d.id = 1;
	tl_strlcpy(d.name, name, sizeof d.name);
	tl_strlcpy(d.transport, "local", sizeof d.transport);
	return d;
}

/* Is a process with exactly this argv (NUL-separated) alive? */
static bool proc_running(const char *a0, const char *a1)
{
	DIR *dir = opendir("/proc");
	struct dirent *e;
	bool found = false;
	while (dir && (e = readdir(dir)) != NULL) {
		char p[300], buf[256];
		snprintf(p, sizeof p, "/proc/%s/cmdline", e->d_name);
		FILE *f = fopen(p, "rb");
		if (f == NULL)
			continue;
		size_t n = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
		buf[n] = '\0';
		if (strcmp(buf, a0) == 0 && strlen(a0) + 1 < n &&
		    strcmp(buf + strlen(a0) + 1, a1) == 0)
			found = true;
	}
	if (dir)
		closedir(dir);
	return found;
}

static void test_local(void)
{
	db_device d = local_dev("local");
	dev_session *s = NULL;
	tl_err err = TL_ERR_INIT;
	dev_exec_result r;
	CHECK_EQ_INT(dev_session_open(&s, &d, &err), 0);
	if (s == NULL)
		return;

	CHECK_EQ_INT(dev_exec(s, NULL, "echo out; echo err >&2; exit 3", 10, &r, &err), 0);
	CHECK(r.exited);
	CHECK_EQ_INT(r.status, 3);
	CHECK_EQ_STR(r.out, "out\n");
	CHECK_EQ_STR(r.err, "err\n");
	dev_exec_result_free(&r);

	/* output without a final newline keeps its shape; forged markers stay */
	CHECK_EQ_INT(dev_exec(s, NULL, "printf 'a\\n@tlx-0000 exit 0'; printf x >&2", 10, &r, &err),
	             0);
	CHECK_EQ_STR(r.out, "a\n@tlx-0000 exit 0");
	CHECK_EQ_STR(r.err, "x");
	CHECK_EQ_INT(r.status, 0);
	dev_exec_result_free(&r);

	/* killed by a signal: 128 + n, as the shell reports it */
	CHECK_EQ_INT(dev_exec(s, NULL, "sh -c 'kill -KILL $$'", 10, &r, &err), 0);
	CHECK_EQ_INT(r.status, 137);
	dev_exec_result_free(&r);

	/* the shell that would report the status dies: no status, never 0 */
	tl_err_clear(&err);
	CHECK(dev_exec(s, NULL, "kill -KILL $$", 10, &r, &err) < 0);
	CHECK(r.lost && !r.exited);
	CHECK(strstr(err.msg, "status") != NULL);
	dev_exec_result_free(&r);

	/* a hung command and its children die at the timeout */
	tl_err_clear(&err);
	double t0 = dev_now();
	CHECK_EQ_INT(dev_exec(s, NULL, "sleep 587 & sleep 588", 1, &r, &err), TL_ETIMEOUT);
	double dt = dev_now() - t0;
	CHECK_MSG(dt < 4, "timeout took %.1f s", dt);
	CHECK(r.timed_out);
	CHECK(strstr(err.msg, "no result within 1 s") != NULL);
	dev_exec_result_free(&r);
	usleep(200 * 1000);
	CHECK(!proc_running("sleep", "587"));
	CHECK(!proc_running("sleep", "588"));

	/* the watchdog of a fast command never outlives it (a TERM that came
	 * before the watchdog's subshell reset its traps used to leave it) */
	for (int i = 0; i < 40; i++) {
		CHECK_EQ_INT(dev_exec(s, NULL, "true", 571, &r, &err), 0);
		dev_exec_result_free(&r);
	}
	usleep(200 * 1000);
	CHECK(!proc_running("sleep", "571"));

	/* leftovers of a finished command are killed too */
	CHECK_EQ_INT(dev_exec(s, NULL, "sleep 589 & echo started", 10, &r, &err), 0);
	dev_exec_result_free(&r);
	usleep(200 * 1000);
	CHECK(!proc_running("sleep", "589"));

	/* work dir under a root with every nasty character; upload, run, remove */
	char root[512], wd[DEV_PATH_MAX];
	snprintf(root, sizeof root, "%s/root $(touch PWNED); 'q\" `x`", tmpdir);
	tl_strlcpy(s == NULL ? d.work_root : d.work_root, root, sizeof d.work_root);
	dev_session_close(s);
	s = NULL;
	CHECK_EQ_INT(dev_session_open(&s, &d, &err), 0);
	tl_err_clear(&err);
	CHECK_EQ_INT(dev_workdir_create(s, wd, sizeof wd, &err), 0);
	CHECK_MSG(strncmp(wd, root, strlen(root)) == 0, "work dir %s not under the root (%s)", wd,
	          err.msg);
	char src[300];
	snprintf(src, sizeof src, "%s/script it's.sh", tmpdir);
	FILE *f = fopen(src, "w");
	fprintf(f, "#!/bin/sh\necho \"args:$#:$1:$2\"\n");
	fclose(f);
	CHECK_EQ_INT(dev_upload(s, src, wd, "run me's.sh", 0755, &err), 0);
	char *cmd = NULL, *out = NULL;
	dev_shell_append(&cmd, "./run me's.sh", &err);
	dev_shell_append(&cmd, "$(touch PWNED)", &err);
	dev_shell_append(&cmd, "a;b", &err);
	CHECK_EQ_INT(dev_run(s, wd, cmd, 10, &out, "test", &err), 0);
	CHECK_EQ_STR(out, "args:2:$(touch PWNED):a;b\n");
	free(out);
	free(cmd);
	CHECK_EQ_INT(dev_workdir_remove(s, wd, &err), 0);
	CHECK(access(wd, F_OK) != 0);
	CHECK(access(root, F_OK) == 0);
	CHECK(!pwned());
	tl_err_clear(&err);
	CHECK_EQ_INT(dev_workdir_remove(s, "/", &err), TL_EINVAL);

	/* probe and fingerprint: valid facts of this machine */
	char *facts = NULL;
	double tmax;
	tl_err_clear(&err);
	CHECK_EQ_INT(dev_probe_facts(s, &facts, &err), 0);
	CHECK(facts && strstr(facts, "\"arch\":") && strstr(facts, "\"cores\":"));
	free(facts);
	CHECK_EQ_INT(dev_fingerprint(s, &facts, &tmax, &err), 0);
	CHECK(facts && strstr(facts, "\"kernel\":"));
	free(facts);
	dev_session_close(s);
}

static void test_lock(void)
{
	db_device a = local_dev("local"), b = local_dev("local-big");
	dev_lock *l1 = NULL, *l2 = NULL;
	tl_err err = TL_ERR_INIT;
	CHECK_EQ_INT(dev_lock_acquire(&l1, &a, 1, &err), 0);
	/* another entry for the same machine: busy, the holder named */
	double t0 = dev_now();
	CHECK_EQ_INT(dev_lock_acquire(&l2, &b, 0.3, &err), TL_EBUSY);
	CHECK(dev_now() - t0 >= 0.25);
	CHECK_MSG(strstr(err.msg, "pid") != NULL && strstr(err.msg, "local-big") != NULL, "%s",
	          err.msg);
	dev_lock_release(l1);
	tl_err_clear(&err);
	CHECK_EQ_INT(dev_lock_acquire(&l2, &b, 1, &err), 0);
	/* held by another process */
	int ready[2];
	CHECK(pipe(ready) == 0);
	dev_lock_release(l2);
	pid_t pid = fork();
	if (pid == 0) {
		dev_lock *l = NULL;
		tl_err e = TL_ERR_INIT;
		if (dev_lock_acquire(&l, &a, 5, &e) == 0) {
			(void)!write(ready[1], "x", 1);
			sleep(30);
		}
		_exit(0);
	}
	char c;
	CHECK(read(ready[0], &c, 1) == 1);
	tl_err_clear(&err);
	CHECK_EQ_INT(dev_lock_acquire(&l1, &b, 0.2, &err), TL_EBUSY);
	kill(pid, SIGKILL); /* the kernel drops its lock */
	waitpid(pid, NULL, 0);
	tl_err_clear(&err);
	CHECK_EQ_INT(dev_lock_acquire(&l1, &b, 2, &err), 0);
	dev_lock_release(l1);
	close(ready[0]);
	close(ready[1]);
}

/* ---- pool ------------------------------------------------------------------------- */

typedef struct pool_ctx {
	pthread_mutex_t mu;
	int ok, failed, abandoned, offline_calls;
	int running_local, max_running_local; /* jobs at once on the local machine */
	char abandon_why[256];
	int ran_on[8];
} pool_ctx;

static int job_run(void *vctx, dev_session **s, const db_device *d, void *job)
{
	pool_ctx *c = vctx;
	tl_err err = TL_ERR_INIT;
	(void)job;
	if (*s == NULL && dev_session_open(s, d, &err) < 0)
		return DEV_JOB_DEVICE;
	bool local = strcmp(d->transport, "local") == 0;
	pthread_mutex_lock(&c->mu);
	if (local && ++c->running_local > c->max_running_local)
		c->max_running_local = c->running_local;
	pthread_mutex_unlock(&c->mu);
	char *out = NULL;
	int rc = dev_run(*s, NULL, "sleep 0.05; echo ok", 10, &out, "job", &err);
	pthread_mutex_lock(&c->mu);
	if (local)
		c->running_local--;
	if (rc == 0 && out && strcmp(out, "ok\n") == 0) {
		c->ok++;
		c->ran_on[d->id % 8]++;
	} else {
		c->failed++;
	}
	pthread_mutex_unlock(&c->mu);
	free(out);
	return rc == 0 ? DEV_JOB_OK : DEV_JOB_DEVICE;
}

static void job_abandon(void *vctx, const db_device *d, void *job, const char *why)
{
	pool_ctx *c = vctx;
	(void)d;
	(void)job;
	pthread_mutex_lock(&c->mu);
	c->abandoned++;
	tl_strlcpy(c->abandon_why, why, sizeof c->abandon_why);
	pthread_mutex_unlock(&c->mu);
}

static void job_health(void *vctx, const db_device *d, const char *status, int streak)
{
	pool_ctx *c = vctx;
	(void)d;
	(void)streak;
	if (strcmp(status, "offline") == 0)
		c->offline_calls++;
}

static void test_pool(void)
{
	db_device devs[3];
	devs[0] = local_dev("local");
	devs[1] = local_dev("local-pinned"); /* the same machine: one job at a time */
	devs[1].id = 2;
	db_device_init(&devs[2]);
	devs[2].id = 3;
	tl_strlcpy(devs[2].name, "dead", sizeof devs[2].name);
	tl_strlcpy(devs[2].transport, "ssh", sizeof devs[2].transport);
	tl_strlcpy(devs[2].host, "127.0.0.1", sizeof devs[2].host);
	devs[2].port = 9; /* discard: nothing listens, refused at once */
	devs[2].timeout_s = 2;

	pool_ctx c;
	memset(&c, 0, sizeof c);
	pthread_mutex_init(&c.mu, NULL);
	dev_pool_opts o = {.max_fail_streak = 2,
	                   .max_attempts = 3,
	                   .lock_wait_s = 60,
	                   .run = job_run,
	                   .abandon = job_abandon,
	                   .health = job_health,
	                   .ctx = &c};
	dev_pool *p = NULL;
	tl_err err = TL_ERR_INIT;
	CHECK_EQ_INT(dev_pool_create(&p, devs, 3, &o, &err), 0);
	int dummy;
	for (int i = 0; i < 8; i++)
		CHECK_EQ_INT(dev_pool_submit(p, &dummy, 0, &err), 0);
	CHECK_EQ_INT(dev_pool_submit(p, &dummy, 3, &err), 0); /* only the dead device */
	CHECK_EQ_INT(dev_pool_submit(p, &dummy, 3, &err), 0);
	double t0 = dev_now();
	CHECK_EQ_INT(dev_pool_run(p, &err), 0);
	CHECK_MSG(dev_now() - t0 < 20, "pool took %.1f s", dev_now() - t0);
	CHECK_EQ_INT(c.ok, 8);
	CHECK_EQ_INT(c.offline_calls, 1);
	CHECK_MSG(c.abandoned >= 1 && c.abandoned <= 2, "abandoned %d", c.abandoned);
	CHECK_MSG(strstr(c.abandon_why, "offline") != NULL, "why: %s", c.abandon_why);
	CHECK_EQ_INT(c.max_running_local, 1);
	CHECK(c.ran_on[1] > 0 && c.ran_on[2] > 0);
	dev_pool_free(p);
	pthread_mutex_destroy(&c.mu);
}

/* ---- db ------------------------------------------------------------------------- */

static void test_db(void)
{
	char path[300];
	snprintf(path, sizeof path, "%s/dev.db", tmpdir);
	db_conn *db = NULL;
	tl_err err = TL_ERR_INIT;
	CHECK_EQ_INT(db_open(&db, path, 0, &err), 0);
	if (db == NULL)
		return;
	db_device d, g;
	db_device_init(&d);
	tl_strlcpy(d.name, "phone", sizeof d.name);
	tl_strlcpy(d.transport, "adb", sizeof d.transport);
	tl_strlcpy(d.host, "lab host", sizeof d.host);
	tl_strlcpy(d.adb_serial, "R58M'1", sizeof d.adb_serial);
	tl_strlcpy(d.run_prefix, "taskset -c 4-7", sizeof d.run_prefix);
	tl_strlcpy(d.labels, "[\"phone\"]", sizeof d.labels);
	d.port = 2222;
	d.threads = 4;
	int64_t id = 0;
	CHECK_EQ_INT(db_device_add(db, &d, &id, &err), 0);
	CHECK(id > 1);
	CHECK_EQ_INT(db_device_add(db, &d, NULL, &err), TL_EEXIST);
	tl_err_clear(&err);
	CHECK_EQ_INT(db_device_get(db, "phone", &g, &err), 0);
	CHECK_EQ_STR(g.adb_serial, "R58M'1");
	CHECK_EQ_STR(g.host, "lab host");
	CHECK_EQ_INT(g.port, 2222);
	CHECK_EQ_INT(g.threads, 4);
	CHECK(g.enabled);
	CHECK_EQ_STR(g.status, "unknown");
	CHECK_EQ_INT(db_device_get(db, "nope", &g, &err), TL_ENOTFOUND);
	tl_err_clear(&err);
	CHECK_EQ_INT(db_device_set_health(db, id, "offline", 3, false, &err), 0);
	CHECK_EQ_INT(db_device_set_enabled(db, id, true, &err), 0);
	CHECK_EQ_INT(db_device_get_id(db, id, &g, &err), 0);
	CHECK_EQ_STR(g.status, "unknown");
	CHECK_EQ_INT(g.fail_streak, 0);
	CHECK_EQ_INT(db_device_set_facts(db, id, "{\"arch\":\"aarch64\"}", "aarch64", &err), 0);
	CHECK_EQ_INT(db_device_get_id(db, id, &g, &err), 0);
	CHECK_EQ_STR(g.arch, "aarch64");
	CHECK_EQ_STR(g.status, "online");
	CHECK(g.last_seen[0] != '\0');
	g.threads = 2;
	CHECK_EQ_INT(db_device_update(db, &g, &err), 0);
	db_device *all = NULL;
	size_t n = 0;
	CHECK_EQ_INT(db_device_list(db, &all, &n, &err), 0);
	CHECK_EQ_INT(n, 2);
	if (n == 2) {
		CHECK_EQ_STR(all[0].name, "local");
		CHECK_EQ_INT(all[1].threads, 2);
	}
	free(all);

	/* a measurement, failed and ok, keeps the device */
	CHECK_EQ_INT(
	    db_genome_ensure(db, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	                     "tailor-genome/1 x", 1000, &err),
	    0);
	db_measurement m;
	db_measurement_init(&m);
	m.genome_hash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	m.device_id = id;
	m.error = "exec: no result within 3 s, killed";
	m.failure = "timeout";
	int64_t mid = 0;
	CHECK_EQ_INT(db_measurement_add(db, &m, NULL, 0, &mid, &err), 0);
	CHECK(mid > 0);
	db_repeat rep;
	db_repeat_init(&rep);
	rep.raw = "{\"format\":\"tailor-bench\"}";
	rep.ttft_ms = 1.5;
	m.status = "ok";
	m.error = m.failure = NULL;
	m.ttft_ms = 1.5;
	m.device_fingerprint = "{\"cpu_model\":\"x\"}";
	CHECK_EQ_INT(db_measurement_add(db, &m, &rep, 1, &mid, &err), 0);
	/* a bad fingerprint is refused and nothing half-written stays */
	m.device_fingerprint = "not json";
	tl_err_clear(&err);
	CHECK(db_measurement_add(db, &m, &rep, 1, NULL, &err) < 0);
	db_info info;
	CHECK_EQ_INT(db_info_get(db, &info, &err), 0);
	CHECK_EQ_INT(info.measurements, 2);
	tl_err_clear(&err);
	CHECK_EQ_INT(db_device_remove(db, "phone", &err), TL_EINVAL);
	CHECK(strstr(err.msg, "disable") != NULL);
	tl_err_clear(&err);
	CHECK_EQ_INT(db_device_remove(db, "local", &err), TL_EINVAL);
	db_device_init(&d);
	tl_strlcpy(d.name, "spare", sizeof d.name);
	tl_strlcpy(d.transport, "local", sizeof d.transport);
	tl_err_clear(&err);
	CHECK_EQ_INT(db_device_add(db, &d, NULL, &err), 0);
	CHECK_EQ_INT(db_device_remove(db, "spare", &err), 0);
	CHECK_EQ_INT(db_device_get(db, "spare", &g, &err), TL_ENOTFOUND);
	db_close(db);
}

int main(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/tailor-test-devices.XXXXXX");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	char cache[300];
	snprintf(cache, sizeof cache, "%s/cache", tmpdir);
	setenv("TAILOR_CACHE", cache, 1);
	signal(SIGPIPE, SIG_IGN);
	test_quote();
	test_check();
	test_local();
	test_lock();
	test_pool();
	test_db();
	char cmd[400];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	return tl_test_end();
}

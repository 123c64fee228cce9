/*
 * devices/session.c: sessions on a device and what runs over them: commands
 * with their exit status and timeout, work dirs, verified uploads. The three
 * transports differ only in how a command line reaches the device's shell:
 *
 *   local  /bin/sh -c SCRIPT, in a new session (setsid) on this machine
 *   ssh    the login shell on the device runs: exec sh -c 'SCRIPT'
 *   adb    the lab host's login shell runs:
 *              'ADB' -s 'SERIAL' shell 'exec sh -c '\''SCRIPT'\'''
 *          and the phone's shell runs exec sh -c 'SCRIPT'
 *
 * SCRIPT is the same everywhere (see wrap()): it prints its process group,
 * starts a watchdog that kills the group at the timeout (so a hung command
 * dies even when the connection is gone), runs the command, kills what the
 * command left behind, and prints the command's exit status. The status is
 * taken from that trailer, not from the transport: SSH's exit-status and
 * adb's (which old adb versions do not send) could be missing, and a missing
 * status must never read as 0. Trailer lines carry a random nonce, so output
 * of the command cannot forge them.
 */
#define _GNU_SOURCE /* pipe2 */
#include "dev_int.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEV_OUT_MAX        (8u << 20)  /* stdout bytes kept */
#define DEV_ERR_MAX        (64u << 10) /* stderr bytes kept (the end) */
#define DEV_GRACE_S        5.0  /* local deadline = timeout + this: the watchdog acts first */
#define DEV_UTIL_TIMEOUT_S 60.0 /* mktemp, sha256sum, rm -rf, chmod, adb push */

struct dev_session {
	db_device dev;
	dev_ssh *ssh;             /* ssh: the device; adb: the lab host; NULL: local */
	char where[700];          /* for messages */
	char stage[DEV_PATH_MAX]; /* adb: staging dir on the lab host, "" when none */
	unsigned counter;         /* nonce material */
};

static bool is_local(const dev_session *s)
{
	return strcmp(s->dev.transport, "local") == 0;
}

static bool is_adb(const dev_session *s)
{
	return strcmp(s->dev.transport, "adb") == 0;
}

int dev_session_open(dev_session **out, const db_device *d, tl_err *err)
{
	*out = NULL;
	int rc = dev_device_check(d, err);
	if (rc < 0)
		return rc;
	dev_session *s = calloc(1, sizeof *s);
	if (s == NULL)
		return tl_err_set(err, TL_ENOMEM, "session: out of memory");
	s->dev = *d;
	dev_device_where(d, s->where, sizeof s->where);
	if (!is_local(s) && (rc = dev_ssh_open(&s->ssh, d, true, NULL, err)) < 0) {
		free(s);
		return rc;
	}
	*out = s;
	return 0;
}

const db_device *dev_session_device(const dev_session *s)
{
	return &s->dev;
}

bool dev_session_alive(const dev_session *s)
{
	return s != NULL && (s->ssh == NULL || dev_ssh_alive(s->ssh));
}

static int host_exec(dev_session *s, const char *line, double timeout_s, dev_raw *r, tl_err *err);

void dev_session_close(dev_session *s)
{
	if (s == NULL)
		return;
	if (s->stage[0] && dev_session_alive(s)) {
		char *line = NULL;
		dev_raw r = {0};
		if (dev_shell_append(&line, "rm", NULL) == 0 &&
		    dev_shell_append(&line, "-rf", NULL) == 0 &&
		    dev_shell_append(&line, s->stage, NULL) == 0)
			host_exec(s, line, 10, &r, NULL);
		dev_buf_free(&r.out);
		dev_buf_free(&r.err);
		free(line);
	}
	dev_ssh_close(s->ssh);
	free(s);
}

/* ---- local processes -------------------------------------------------------------- */

int dev_local_exec(const char *script, double deadline, dev_raw *r, tl_err *err)
{
	/* util's child-process runner: its own session, the group killed at the
	 * deadline; the ends of both streams kept (dev_exec's markers are at the
	 * end of stdout) */
	tl_proc p = {.shell = script, .timeout_s = deadline - tl_now_s(),
	             .max_out = r->out.max ? r->out.max : DEV_OUT_MAX, .out_keep_tail = true,
	             .err_tail = r->err.max ? r->err.max : DEV_ERR_MAX};
	if (p.timeout_s <= 0)
		p.timeout_s = 0.001;
	tl_proc_out o;
	r->wait_status = -1;
	int rc = tl_proc_run(&p, &o, err);
	if (rc == 0) {
		dev_buf_put(&r->out, o.out, o.out_len);
		dev_buf_put(&r->err, o.err, o.err_len);
		r->deadline_hit = o.timed_out;
		r->wait_status = o.wait_status;
		if (o.out_truncated)
			r->out.dropped = true;
	}
	tl_proc_out_free(&o);
	return rc;
}

/* ---- commands --------------------------------------------------------------------- */

static void make_nonce(dev_session *s, char out[17])
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	unsigned char seed[64];
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	ssize_t got = fd >= 0 ? read(fd, seed, 32) : -1;
	if (fd >= 0)
		close(fd);
	if (got != 32)
		memset(seed, 0, 32);
	unsigned long long mix[4] = {(unsigned long long)ts.tv_sec, (unsigned long long)ts.tv_nsec,
	                             (unsigned long long)getpid(),
	                             (unsigned long long)++s->counter};
	memcpy(seed + 32, mix, sizeof mix);
	char hex[65];
	tl_sha256_hex(seed, sizeof seed, hex);
	memcpy(out, hex, 16);
	out[16] = '\0';
}

/* The script of the file header, for command `cmd` run in `dir` (may be
 * NULL) with a watchdog after `secs` seconds. */
static char *wrap(const char *nonce, const char *dir, const char *cmd, long secs)
{
	dev_buf b = {0};
	/* the watchdog ends the group at the deadline, or as soon as the
	 * process that started us is gone (sshd when the connection or the
	 * daemon died, tailor for the local device), when it may see it */
	dev_buf_fmt(&b,
	            "trap : TERM; printf '@tlx-%s pgid %%s\\n' \"$$\" >&2; "
	            "(p=$PPID; i=0; if kill -0 $p; then while [ $i -lt %ld ] && kill -0 $p; "
	            "do sleep 1; i=$((i+1)); done; else sleep %ld; fi; kill -KILL -$$) "
	            "</dev/null >/dev/null 2>&1 & w=$!; (",
	            nonce, secs, secs);
	if (dir) {
		char *q = dev_shell_quote(dir);
		if (q == NULL) {
			dev_buf_free(&b);
			return NULL;
		}
		dev_buf_fmt(&b, "cd %s && ", q);
		free(q);
	}
	dev_buf_str(&b, cmd);
	dev_buf_fmt(&b,
	            "\n); s=$?; kill -KILL $w 2>/dev/null; kill -TERM -$$ 2>/dev/null; "
	            "printf '\\n@tlx-%s exit %%s\\n' \"$s\" >&2",
	            nonce);
	if (b.oom) {
		dev_buf_free(&b);
		return NULL;
	}
	return b.p;
}

/* A line for the login shell of the host: exec sh -c 'SCRIPT'. */
static char *target_line(const char *script)
{
	char *q = dev_shell_quote(script);
	if (q == NULL)
		return NULL;
	size_t n = strlen(q) + 16;
	char *line = malloc(n);
	if (line)
		snprintf(line, n, "exec sh -c %s", q);
	free(q);
	return line;
}

/* For adb: the lab host's line that runs phone_line on the phone. */
static char *adb_line(const dev_session *s, const char *sub, const char *phone_line, tl_err *err)
{
	char *line = NULL;
	if (dev_shell_append(&line, s->dev.adb_path[0] ? s->dev.adb_path : "adb", err) < 0 ||
	    dev_shell_append(&line, "-s", err) < 0 ||
	    dev_shell_append(&line, s->dev.adb_serial, err) < 0 ||
	    dev_shell_append(&line, sub, err) < 0 ||
	    (phone_line && dev_shell_append(&line, phone_line, err) < 0)) {
		free(line);
		return NULL;
	}
	return line;
}

/* Run a raw line with the login shell of the host we talk to (the device,
 * or the adb lab host), or /bin/sh here. */
static int host_exec(dev_session *s, const char *line, double timeout_s, dev_raw *r, tl_err *err)
{
	double deadline = tl_now_s() + timeout_s;
	r->out.max = DEV_OUT_MAX;
	r->err.max = DEV_ERR_MAX;
	if (s->ssh == NULL)
		return dev_local_exec(line, deadline, r, err);
	return dev_ssh_exec(s->ssh, line, deadline, r, err);
}

/* Find "@tlx-NONCE <what> N": the value, and cut the marker line out of b. */
static bool take_marker(dev_buf *b, const char *nonce, const char *what, bool last, long *val)
{
	char pat[64];
	snprintf(pat, sizeof pat, "@tlx-%s %s ", nonce, what);
	if (b->p == NULL)
		return false;
	char *hit = NULL, *p = b->p;
	while ((p = strstr(p, pat)) != NULL) {
		hit = p;
		if (!last)
			break;
		p += strlen(pat);
	}
	if (hit == NULL)
		return false;
	char *num = hit + strlen(pat), *end;
	errno = 0;
	long v = strtol(num, &end, 10);
	if (end == num || errno)
		return false;
	*val = v;
	/* the marker line: from the newline we printed before it (exit) or its
	 * start (pgid), to and including its own newline */
	char *from = hit;
	if (last && from > b->p && from[-1] == '\n')
		from--;
	char *to = strchr(end, '\n');
	to = to ? to + 1 : end;
	memmove(from, to, b->len - (size_t)(to - b->p) + 1);
	b->len -= (size_t)(to - from);
	return true;
}

/* Kill process group pgid on the device (after the local deadline). */
static void kill_group(dev_session *s, long pgid)
{
	if (pgid <= 1 || s->ssh == NULL || !dev_ssh_alive(s->ssh))
		return;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "kill -KILL -%ld 2>/dev/null; kill -KILL %ld 2>/dev/null; true",
	         pgid, pgid);
	char *line = is_adb(s) ? adb_line(s, "shell", cmd, NULL) : strdup(cmd);
	if (line) {
		dev_raw r = {0};
		host_exec(s, line, 10, &r, NULL);
		dev_buf_free(&r.out);
		dev_buf_free(&r.err);
	}
	free(line);
}

void dev_exec_result_free(dev_exec_result *r)
{
	if (r == NULL)
		return;
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof *r);
}

int dev_exec(dev_session *s, const char *dir, const char *cmd, double timeout_s,
             dev_exec_result *res, tl_err *err)
{
	char nonce[17];
	dev_raw r = {0};
	int rc = 0;
	memset(res, 0, sizeof *res);
	if (timeout_s < 1)
		timeout_s = 1;
	long secs = (long)ceil(timeout_s);
	make_nonce(s, nonce);
	char *script = wrap(nonce, dir, cmd, secs);
	char *line = NULL, *tline = NULL;
	if (script == NULL)
		return tl_err_set(err, TL_ENOMEM, "exec: out of memory");
	if (s->ssh == NULL) {
		line = script;
		script = NULL;
	} else {
		tline = target_line(script);
		line = tline == NULL ? NULL : is_adb(s) ? adb_line(s, "shell", tline, err) : tline;
		if (line != tline)
			free(tline);
		if (line == NULL) {
			free(script);
			return tl_err_set(err, TL_ENOMEM, "exec: out of memory");
		}
	}
	double t0 = tl_now_s();
	tl_err terr = TL_ERR_INIT;
	rc = host_exec(s, line, (double)secs + DEV_GRACE_S, &r, &terr);
	res->seconds = tl_now_s() - t0;
	free(line);
	free(script);

	long pgid = 0, status = 0;
	bool have_pgid = take_marker(&r.err, nonce, "pgid", false, &pgid) ||
	                 take_marker(&r.out, nonce, "pgid", false, &pgid);
	bool have_exit = take_marker(&r.err, nonce, "exit", true, &status) ||
	                 take_marker(&r.out, nonce, "exit", true, &status);
	res->out_truncated = r.out.dropped || r.out.oom;
	res->out = r.out.p ? r.out.p : strdup("");
	res->out_len = r.out.p ? r.out.len : 0;
	res->err = r.err.p ? r.err.p : strdup("");
	res->err_len = r.err.p ? r.err.len : 0;
	if (res->out == NULL || res->err == NULL) {
		dev_exec_result_free(res);
		return tl_err_set(err, TL_ENOMEM, "exec: out of memory");
	}
	if (have_exit && rc == 0) {
		res->exited = true;
		res->status = (int)status;
		return 0;
	}
	if (r.deadline_hit || res->seconds >= (double)secs - 0.05) {
		res->timed_out = true;
		if (r.deadline_hit && have_pgid)
			kill_group(s, pgid);
		return tl_err_set(
		    err, TL_ETIMEOUT,
		    "exec: %s: no result within %ld s, killed (the command hung or the "
		    "device is too slow: give a larger timeout)",
		    s->where, secs);
	}
	res->lost = true;
	if (rc < 0) {
		/* the transport's own message (connection lost...) */
		tl_err_set(err, terr.code, "%s", terr.msg);
		if (err)
			err->sub = terr.sub;
		return terr.code;
	}
	if (s->ssh == NULL && r.wait_status >= 0 && WIFSIGNALED(r.wait_status))
		return tl_err_set(
		    err, TL_EFAIL,
		    "exec: local: the command's shell was killed by signal %d before it "
		    "reported a status",
		    WTERMSIG(r.wait_status));
	return tl_err_set(err, s->ssh ? TL_ESSH : TL_EFAIL,
	                  "exec: %s: the command ended without an exit status (connection lost or "
	                  "the device killed it)",
	                  s->where);
}

/* The last non-empty line of s (flattened), for messages. */
static void last_line(const char *s, char *out, size_t n)
{
	size_t len = strlen(s);
	while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' '))
		len--;
	size_t start = len;
	while (start > 0 && s[start - 1] != '\n')
		start--;
	size_t k = len - start;
	if (k >= n)
		k = n - 1;
	memcpy(out, s + start, k);
	out[k] = '\0';
	if (k == 0)
		tl_strlcpy(out, "no message", n);
}

int dev_run(dev_session *s, const char *dir, const char *cmd, double timeout_s, char **out,
            const char *what, tl_err *err)
{
	dev_exec_result r;
	if (out)
		*out = NULL;
	int rc = dev_exec(s, dir, cmd, timeout_s, &r, err);
	if (rc < 0) {
		tl_err_prefix(err, "%s", what);
		dev_exec_result_free(&r);
		return rc;
	}
	if (r.status != 0) {
		char line[300];
		last_line(r.err, line, sizeof line);
		rc = tl_err_set(err, TL_EFAIL, "%s: %s: exit status %d: %s", what, s->where,
		                r.status, line);
		dev_exec_result_free(&r);
		return rc;
	}
	if (out) {
		*out = r.out;
		r.out = NULL;
	}
	dev_exec_result_free(&r);
	return 0;
}

/* ---- work dirs ------------------------------------------------------------------- */

/* Trim trailing white space; true when what is left is one absolute path. */
static bool one_path(char *s)
{
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
		s[--n] = '\0';
	return n > 1 && s[0] == '/' && strchr(s, '\n') == NULL;
}

static const char mktemp_script[] =
    "mkdir -p \"$root\" && { find \"$root\" -maxdepth 1 -name 'tailor-run.*' -mtime +0 "
    "-exec rm -rf {} + 2>/dev/null; mktemp -d \"$root/tailor-run.XXXXXX\"; }";

int dev_workdir_create(dev_session *s, char *out, size_t n, tl_err *err)
{
	dev_buf b = {0};
	out[0] = '\0';
	if (s->dev.work_root[0]) {
		char *q = dev_shell_quote(s->dev.work_root);
		if (q == NULL)
			return tl_err_set(err, TL_ENOMEM, "work dir: out of memory");
		dev_buf_fmt(&b, "root=%s; ", q);
		free(q);
	} else if (is_adb(s)) {
		dev_buf_str(&b, "root=/data/local/tmp; ");
	} else if (is_local(s)) {
		dev_buf_str(&b, "root=\"${TMPDIR:-/tmp}\"; ");
	} else {
		dev_buf_str(&b, "root=\"${HOME:-/tmp}/.cache/tailor\"; ");
	}
	dev_buf_str(&b, mktemp_script);
	if (b.oom) {
		dev_buf_free(&b);
		return tl_err_set(err, TL_ENOMEM, "work dir: out of memory");
	}
	char *path = NULL;
	int rc = dev_run(s, NULL, b.p, DEV_UTIL_TIMEOUT_S, &path, "work dir", err);
	dev_buf_free(&b);
	if (rc < 0)
		return rc;
	if (!one_path(path) || strlen(path) >= n) {
		rc = tl_err_set(err, TL_EFAIL,
		                "work dir: %s: mktemp -d printed '%.100s', not a path", s->where,
		                path);
		free(path);
		return rc;
	}
	tl_strlcpy(out, path, n);
	free(path);
	if (is_adb(s) && s->stage[0] == '\0') {
		dev_raw r = {0};
		rc = host_exec(s, "mktemp -d \"${TMPDIR:-/tmp}/tailor-stage.XXXXXX\"",
		               DEV_UTIL_TIMEOUT_S, &r, err);
		if (rc == 0 && r.out.p && one_path(r.out.p) && strlen(r.out.p) < sizeof s->stage)
			tl_strlcpy(s->stage, r.out.p, sizeof s->stage);
		else if (rc == 0)
			rc = tl_err_set(err, TL_EFAIL,
			                "work dir: lab host of %s: mktemp -d failed: %.200s",
			                s->where, r.err.p ? r.err.p : "");
		dev_buf_free(&r.out);
		dev_buf_free(&r.err);
		if (rc < 0) {
			dev_workdir_remove(s, out, NULL);
			out[0] = '\0';
			return rc;
		}
	}
	return 0;
}

int dev_workdir_remove(dev_session *s, const char *dir, tl_err *err)
{
	char *cmd = NULL;
	if (dir == NULL || dir[0] != '/' || strstr(dir, "tailor-run.") == NULL)
		return tl_err_set(err, TL_EINVAL,
		                  "work dir: '%s': not a tailor work dir, not removed",
		                  dir ? dir : "");
	if (dev_shell_append(&cmd, "rm", err) < 0 || dev_shell_append(&cmd, "-rf", err) < 0 ||
	    dev_shell_append(&cmd, dir, err) < 0) {
		free(cmd);
		return TL_ENOMEM;
	}
	int rc = dev_run(s, NULL, cmd, DEV_UTIL_TIMEOUT_S, NULL, "work dir remove", err);
	free(cmd);
	return rc;
}

/* ---- uploads --------------------------------------------------------------------- */


static int copy_local(const char *src, const char *dst, int mode, tl_err *err)
{
	int in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return tl_err_setsub(err, TL_EIO, errno, "upload: %s: %s", src, strerror(errno));
	int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (out < 0) {
		int e = errno;
		close(in);
		return tl_err_setsub(err, TL_EIO, e, "upload: %s: %s", dst, strerror(e));
	}
	char buf[65536];
	ssize_t k;
	int rc = 0;
	while ((k = read(in, buf, sizeof buf)) > 0)
		if (write(out, buf, (size_t)k) != k) {
			rc = tl_err_setsub(err, TL_EIO, errno, "upload: %s: write: %s", dst,
			                   strerror(errno));
			break;
		}
	if (k < 0 && rc == 0)
		rc =
		    tl_err_setsub(err, TL_EIO, errno, "upload: %s: read: %s", src, strerror(errno));
	close(in);
	if (close(out) != 0 && rc == 0)
		rc = tl_err_setsub(err, TL_EIO, errno, "upload: %s: %s", dst, strerror(errno));
	if (rc == 0 && fchmodat(AT_FDCWD, dst, (mode_t)mode, 0) != 0)
		rc =
		    tl_err_setsub(err, TL_EIO, errno, "upload: chmod %s: %s", dst, strerror(errno));
	return rc;
}

int dev_upload(dev_session *s, const char *local, const char *dir, const char *name, int mode,
               tl_err *err)
{
	char want[65], remote[DEV_PATH_MAX];
	int rc;
	if ((rc = tl_sha256_file(local, want, err)) < 0) {
		tl_err_prefix(err, "upload");
		return rc;
	}
	if ((size_t)snprintf(remote, sizeof remote, "%s/%s", dir, name) >= sizeof remote)
		return tl_err_set(err, TL_EINVAL, "upload: %s/%s: path too long", dir, name);
	double deadline = tl_now_s() + 600;
	if (is_local(s)) {
		rc = copy_local(local, remote, mode, err);
	} else if (!is_adb(s)) {
		rc = dev_ssh_put(s->ssh, local, remote, mode, deadline, err);
	} else {
		char staged[DEV_PATH_MAX];
		if (s->stage[0] == '\0')
			return tl_err_set(err, TL_EINVAL, "upload: %s: no work dir yet", s->where);
		if ((size_t)snprintf(staged, sizeof staged, "%s/%s", s->stage, name) >=
		    sizeof staged)
			return tl_err_set(err, TL_EINVAL, "upload: %s/%s: path too long", s->stage,
			                  name);
		rc = dev_ssh_put(s->ssh, local, staged, mode, deadline, err);
		char *line = rc == 0 ? adb_line(s, "push", NULL, err) : NULL;
		if (rc == 0 && line == NULL)
			rc = TL_ENOMEM;
		if (rc == 0 && (dev_shell_append(&line, staged, err) < 0 ||
		                dev_shell_append(&line, remote, err) < 0))
			rc = TL_ENOMEM;
		if (rc == 0) {
			dev_raw r = {0};
			rc = host_exec(s, line, DEV_UTIL_TIMEOUT_S * 5, &r, err);
			/* adb push prints its result; a failure says "error:" or
			 * "adb: error" and exits non-zero. Without a status from the
			 * raw channel, the checksum below is the judge. */
			if (rc == 0 && r.err.p && strstr(r.err.p, "error"))
				rc =
				    tl_err_set(err, TL_EFAIL, "upload: %s: adb push failed: %.200s",
				               s->where, r.err.p);
			dev_buf_free(&r.out);
			dev_buf_free(&r.err);
		}
		free(line);
		if (rc == 0 && (mode & 0111)) {
			char *cmd = NULL;
			char m[16];
			snprintf(m, sizeof m, "%o", mode & 07777);
			if (dev_shell_append(&cmd, "chmod", err) < 0 ||
			    dev_shell_append(&cmd, m, err) < 0 ||
			    dev_shell_append(&cmd, remote, err) < 0)
				rc = TL_ENOMEM;
			else
				rc = dev_run(s, NULL, cmd, DEV_UTIL_TIMEOUT_S, NULL, "upload chmod",
				             err);
			free(cmd);
		}
	}
	if (rc < 0)
		return rc;
	/* The device computes the checksum of what it received. */
	char *cmd = NULL, *sum = NULL;
	if (dev_shell_append(&cmd, "sha256sum", err) < 0 ||
	    dev_shell_append(&cmd, remote, err) < 0) {
		free(cmd);
		return TL_ENOMEM;
	}
	rc = dev_run(s, NULL, cmd, DEV_UTIL_TIMEOUT_S, &sum, "upload check", err);
	free(cmd);
	if (rc < 0)
		return rc;
	if (strlen(sum) < 64 || strncmp(sum, want, 64) != 0)
		rc = tl_err_set(
		    err, TL_EFAIL,
		    "upload: %s: %s: the device's SHA-256 %.64s differs from the local %s "
		    "(transfer damaged, or the disk is full)",
		    s->where, remote, sum, want);
	free(sum);
	return rc;
}

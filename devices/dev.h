/*
 * devices/dev.h: the device lab (DESIGN.md §2, §9; docs/devices.md).
 *
 * What this room does:
 *  - validates device descriptions (db_device rows of the registry, which the
 *    db room stores) and quotes everything that goes into a remote command
 *    line: dev_shell_quote is the one function that does it;
 *  - sessions on a device over one of three transports: `local` (this
 *    machine, fork/exec), `ssh` (libssh2: key file or agent, strict
 *    known_hosts, keepalive, timeouts, SFTP) and `adb` (SSH to a lab host,
 *    then `adb -s SERIAL push` / `adb -s SERIAL shell` there);
 *  - remote commands with stdout, stderr and the exit status (a command that
 *    ended without a status is reported as such, never as 0), killed with
 *    their whole process group at their timeout;
 *  - uploads verified by a SHA-256 computed on the device, per-run work dirs
 *    removed afterwards;
 *  - probes (CPU, cores, frequencies, governor, memory, OS, kernel, thermal
 *    zones), host-key trust, a per-device lock that gives one process at a
 *    time the use of a device, and a pool: one worker thread per device.
 *
 * Ownership: dev_session_open returns a session owned by the caller, freed by
 * dev_session_close (NULL ok); dev_exec_result buffers by dev_exec_result_free.
 * A session is used by one thread at a time. This room includes libssh2.h in
 * ssh.c only.
 *
 * Usage:
 *     dev_session *s = NULL;
 *     if (dev_session_open(&s, &device, &err) < 0) ...
 *     char wd[DEV_PATH_MAX];
 *     dev_workdir_create(s, wd, sizeof wd, &err);
 *     dev_upload(s, "/local/tailor-bench", wd, "tailor-bench", 0755, &err);
 *     char *cmd = dev_shell_quote("./tailor-bench");   // then append args
 *     dev_exec_result r;
 *     dev_exec(s, wd, cmd, 60, &r, &err);            // r.status, r.out, r.err
 *     dev_workdir_remove(s, wd, &err);
 *     dev_session_close(s);
 */
#ifndef DEV_H
#define DEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "tl.h"

#define DEV_PATH_MAX 4096
/* Connect and read timeout when the device does not set one (s). */
#define DEV_TIMEOUT_DEFAULT 10
/* Failures in a row after which the pool marks a device offline. */
#define DEV_FAIL_STREAK_DEFAULT 3

/* ---- descriptions ------------------------------------------------------ */

/* A registry name: 1..64 of [A-Za-z0-9._-], starting with a letter or digit
 * (the table's CHECK; safe in file names and messages). */
bool dev_name_valid(const char *name);
/* Check a description before it is stored or used: transport and the
 * fields it needs (ssh: host; adb: host and serial), no control characters
 * anywhere, a port in range, a JSON array of strings as labels, compiler and
 * flags in the characters a build accepts. TL_EUSAGE naming the field and
 * the fix. */
int dev_device_check(const db_device *d, tl_err *err);
/* "user@host:port" (or "local", or "user@host:port adb SERIAL") for messages. */
void dev_device_where(const db_device *d, char *out, size_t n);
/* The key that identifies the physical machine for locking: two registry
 * entries for one phone (say, big and little cores) share it. */
void dev_device_identity(const db_device *d, char *out, size_t n);

/* ---- quoting ----------------------------------------------------------- */

/* s as one POSIX shell word: single-quoted, each ' written as '\'' (the
 * only character a single-quoted string cannot hold). The result, fed to
 * sh, dash, bash, zsh or Android's mksh, is exactly s, whatever s holds
 * ($(...), `...`, ;, spaces, quotes, newlines, globs). Malloc'd; NULL when
 * out of memory. */
char *dev_shell_quote(const char *s);
/* Append the quoted s to *buf (a malloc'd string, *buf may be NULL), with a
 * space before it when *buf is not empty. TL_ENOMEM. */
int dev_shell_append(char **buf, const char *s, tl_err *err);
/* Append a device's run prefix (e.g. "taskset -c 4-7", "FOO=1 nice -n 5"):
 * split at blanks, no shell expansion; each word quoted, except that the
 * value of a leading NAME=value word is quoted after its '=' so that it
 * stays an assignment. */
int dev_prefix_append(char **buf, const char *prefix, tl_err *err);

/* ---- sessions ---------------------------------------------------------- */

typedef struct dev_session dev_session;

/* Open a session: nothing to do for local; for ssh and adb connect (with the
 * device's timeout), check the host key against known_hosts (an unknown or
 * changed key is refused with a message that says how to accept it) and
 * authenticate (agent when use_agent, else the key file, else the agent and
 * ~/.ssh/id_ed25519, id_ecdsa, id_rsa). Errors: TL_ESSH (libssh2 code in
 * sub), TL_ETIMEOUT, TL_EIO. */
int dev_session_open(dev_session **out, const db_device *d, tl_err *err);
void dev_session_close(dev_session *s);
const db_device *dev_session_device(const dev_session *s);
/* False once the transport failed (connection lost): open a new session. */
bool dev_session_alive(const dev_session *s);

typedef struct dev_exec_result {
	char *out; /* stdout, NUL-terminated (malloc'd; at most 8 MiB kept) */
	size_t out_len;
	bool out_truncated;
	char *err; /* stderr, NUL-terminated (the last 64 KiB kept)          */
	size_t err_len;
	bool exited;    /* an exit status was received                           */
	int status;     /* the exit status when exited (128+n: killed by signal n) */
	bool timed_out; /* killed at the timeout                                 */
	bool lost;      /* ended without a status (connection lost, killed)      */
	double seconds; /* wall time                                             */
} dev_exec_result;

/* Run `cmd` (a shell command line, every argument already quoted) on the
 * device, in directory `dir` when not NULL, with stdin empty. The command
 * runs in its own process group under a watchdog that kills the group after
 * timeout_s seconds, even when the connection is gone; when the local
 * deadline passes first, the channel is closed and the group killed over a
 * new channel. Returns 0 when the command ended with a status (any: look at
 * r->status), TL_ETIMEOUT when it was killed at its timeout, TL_ESSH (ssh,
 * adb) or TL_EFAIL (local) when it ended without one: r->lost, and the
 * message says so. r is always filled; free it with dev_exec_result_free. */
int dev_exec(dev_session *s, const char *dir, const char *cmd, double timeout_s, dev_exec_result *r,
             tl_err *err);
void dev_exec_result_free(dev_exec_result *r);
/* dev_exec, then a failure unless the status is 0: TL_EFAIL with "<what>:
 * <where>: exit status N: <last stderr line>". *out (may be NULL) gets
 * stdout (caller frees). */
int dev_run(dev_session *s, const char *dir, const char *cmd, double timeout_s, char **out,
            const char *what, tl_err *err);

/* Make a fresh work dir on the device (mktemp -d, under the device's
 * work_root, else $HOME/.cache/tailor (ssh) or the system's temp dir; adb:
 * /data/local/tmp) and write its absolute path into out. Work dirs of
 * earlier runs older than a day (left by a connection that died) are
 * removed on the way. */
int dev_workdir_create(dev_session *s, char *out, size_t n, tl_err *err);
/* rm -rf the work dir (and, for adb, its copy on the lab host). */
int dev_workdir_remove(dev_session *s, const char *dir, tl_err *err);
/* Copy local file `local` to dir/name on the device with the given mode and
 * check its SHA-256 there (sha256sum). ssh: SFTP; adb: SFTP to the lab host,
 * then adb push; local: a copy. TL_EIO / TL_ESSH / TL_EFAIL (checksum). */
int dev_upload(dev_session *s, const char *local, const char *dir, const char *name, int mode,
               tl_err *err);

/* ---- probing ----------------------------------------------------------- */

/* Probed facts as a JSON object (malloc'd): arch, kernel, os, cpu_model,
 * cores, cpus [{cpu, min_khz, max_khz, cur_khz, governor}], memory_bytes,
 * thermal [{zone, type, temp_c}], model (Android), probed_at. */
int dev_probe_facts(dev_session *s, char **json, tl_err *err);
/* The device's state for a measurement: cpu_model, cores, governors,
 * kernel, arch, os, max_temp_c and the temperatures, as a JSON object
 * (malloc'd); *max_temp_c gets the hottest zone (NAN when none). */
int dev_fingerprint(dev_session *s, char **json, double *max_temp_c, tl_err *err);
/* Append "," "\"key\":" and the JSON string of s to *buf (a helper for
 * callers building JSON objects without a JSON library). */
int dev_json_kv_str(char **buf, const char *key, const char *s, tl_err *err);

/* ---- host keys --------------------------------------------------------- */

typedef struct dev_hostkey {
	char fingerprint[128];          /* "SHA256:<base64>", as OpenSSH prints it          */
	char type[32];                  /* "ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa"... */
	int known;                      /* 1 matches known_hosts, 0 not there, -1 a different key */
	char known_hosts[DEV_PATH_MAX]; /* the file checked                        */
} dev_hostkey;

/* Connect (no authentication) and read the host key and how it compares to
 * the device's known_hosts. Local: TL_EINVAL. */
int dev_hostkey_fetch(const db_device *d, dev_hostkey *out, tl_err *err);
/* Record the host key in known_hosts (created with its directory when
 * missing): appended when the host has none; when it has another key, only
 * with replace (the old entries for the host are removed). When expect is
 * not NULL the key must have that fingerprint. Fills out. */
int dev_hostkey_trust(const db_device *d, const char *expect, bool replace, dev_hostkey *out,
                      tl_err *err);

/* ---- exclusive use ----------------------------------------------------- */

typedef struct dev_lock dev_lock;
/* Take the device's lock: an flock(2) on
 * $TAILOR_CACHE/locks/<identity-hash>.lock (else $XDG_CACHE_HOME/tailor, else
 * ~/.cache/tailor), so two tailor processes never measure on one device at
 * once; released by dev_lock_release or when the process dies. Waits up to
 * wait_s seconds; TL_EBUSY names the holder (pid, device) when it cannot. */
int dev_lock_acquire(dev_lock **out, const db_device *d, double wait_s, tl_err *err);
void dev_lock_release(dev_lock *l);

/* ---- the pool ---------------------------------------------------------- */

/* What a job reports to the pool. */
enum {
	DEV_JOB_OK = 0,     /* done                                                */
	DEV_JOB_FAILED = 1, /* done, failed (recorded by the job): counts against
	                     * the device's streak, not retried                   */
	DEV_JOB_DEVICE = 2, /* the device failed under it (connect, transfer, lost,
	                     * timeout): counts, and the job goes back to the queue
	                     * for another device when it may run on any          */
};

/* Run one job on a device. *session is the worker's session (NULL: not
 * connected yet; the job opens it and may close it, setting NULL). Runs on
 * the device's worker thread, with the device's lock held. */
typedef int (*dev_job_fn)(void *ctx, dev_session **session, const db_device *d, void *job);
/* A job that cannot run (its device went offline or could not be locked,
 * or no device is left): the pool gives up on it; `why` is one line. */
typedef void (*dev_abandon_fn)(void *ctx, const db_device *d, void *job, const char *why);
/* The device's health changed ("online", "offline"), with its streak. */
typedef void (*dev_health_fn)(void *ctx, const db_device *d, const char *status, int streak);

typedef struct dev_pool_opts {
	int max_fail_streak; /* failures in a row before offline (DEV_FAIL_STREAK_DEFAULT) */
	int max_attempts;    /* devices a job may be tried on (2)                  */
	double lock_wait_s;  /* how long to wait for a device another process uses (600) */
	dev_job_fn run;
	dev_abandon_fn abandon;
	dev_health_fn health; /* may be NULL */
	void *ctx;
	bool unlocked;        /* no device lock: only for a test's devices that
	                       * are not machines (the engine's measure seam)  */
} dev_pool_opts;

typedef struct dev_pool dev_pool;
/* A pool over n devices (copied). */
int dev_pool_create(dev_pool **out, const db_device *devs, size_t n, const dev_pool_opts *o,
                    tl_err *err);
/* Queue a job for the device with that id, or for any device when 0;
 * before or after the start (a search feeds one pool for its whole run),
 * from any thread. */
int dev_pool_submit(dev_pool *p, void *job, int64_t device_id, tl_err *err);
/* Start one worker per device; they take jobs as they come until the pool
 * is freed. Once per pool. */
int dev_pool_start(dev_pool *p, tl_err *err);
/* Wait until every job submitted so far is done or abandoned. */
void dev_pool_wait(dev_pool *p);
/* Start, wait for every job, and end the workers: the pool of one batch. */
int dev_pool_run(dev_pool *p, tl_err *err);
/* End the workers (after their current jobs and the queue) and free. */
void dev_pool_free(dev_pool *p);

#endif /* DEV_H */

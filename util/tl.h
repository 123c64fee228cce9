/*
 * util/tl.h: the few utilities every room shares (prefix tl_).
 *
 *  - tl_err: the error value. Functions that can fail return int (0 ok, a
 *    negative TL_E* code) and take a caller-owned tl_err * last. The message is
 *    one line shaped "<what failed>: <object>: <reason>"; the first error set
 *    wins so that the root cause survives the unwinding; a foreign code
 *    (SQLite extended result code, libssh2 error code, errno) is kept in `sub`.
 *  - tl_rng: PCG32 (XSH-RR, 64-bit state, 32-bit output), from M. E. O'Neill,
 *    "PCG: A Family of Simple Fast Space-Efficient Statistically Good
 *    Algorithms for Random Number Generation" (HMC-CS-2014-0905). There is no
 *    global generator: every consumer is handed the tl_rng it draws from.
 *  - tl_parse_*: strict number parsing (no atoi: trailing junk is an error).
 *
 * This file and the util/ sources use libc and libm only, so that operators/ (which
 * ships to devices) may use them too.
 *
 * Usage:
 *     tl_err err = TL_ERR_INIT;
 *     tl_rng rng;
 *     tl_rng_seed(&rng, 42, 54);            // seed, stream
 *     uint32_t die = tl_rng_bounded(&rng, 6) + 1;
 *     if (some_call(..., &err) < 0)
 *         fprintf(stderr, "tailor: %s\n", err.msg);
 */
#ifndef TL_H
#define TL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- errors ------------------------------------------------------------ */

enum {
	TL_OK = 0,
	TL_EFAIL = -1,     /* generic failure */
	TL_EUSAGE = -2,    /* bad flags or arguments from a user */
	TL_ENOMEM = -3,    /* allocation failed */
	TL_EIO = -4,       /* file or system call failed; sub = errno */
	TL_EDB = -5,       /* SQLite failed; sub = extended result code */
	TL_ESSH = -6,      /* libssh2 failed; sub = libssh2 error code */
	TL_ENOTFOUND = -7, /* a named thing does not exist */
	TL_EPARSE = -8,    /* malformed input (JSON, genome text, harness output) */
	TL_EVERSION = -9,  /* a file written by a newer or unknown version */
	TL_EINVAL = -10,   /* well-formed input with inconsistent values */
	TL_EBUSY = -11,    /* resource held by someone else */
	TL_ETIMEOUT = -12, /* a wait ran out */
	TL_EEXIST = -13,   /* already exists */
	TL_ESTOPPED = -14, /* stopped on request (not a failure of the work) */
};

#define TL_ERR_MSG_MAX 512

typedef struct tl_err {
	int code;                  /* 0 while unset, else a TL_E* code */
	int sub;                   /* foreign code (see the TL_E* comments), 0 if none */
	char msg[TL_ERR_MSG_MAX];  /* one line, no trailing newline, NUL-terminated */
} tl_err;

#define TL_ERR_INIT {0, 0, {0}}

/* Record an error unless one is already recorded (first error wins). Newlines
 * and other control characters in the formatted message become spaces, so the
 * message always stays on one line. Returns `code`, so a failing function can
 * `return tl_err_set(err, TL_EIO, ...)`. err may be NULL (nothing recorded). */
int tl_err_set(tl_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The same, with a foreign sub-code kept beside the message. */
int tl_err_setsub(tl_err *err, int code, int sub, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Prefix an existing message with "<prefix>: " (used by a caller that knows
 * the object better, e.g. the file name around a parser's JSON path). No-op
 * when no error is set or err is NULL. */
void tl_err_prefix(tl_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void tl_err_clear(tl_err *err);
bool tl_err_isset(const tl_err *err);
/* A short stable name for a code ("io", "db", "usage"...), for logs and JSON. */
const char *tl_err_name(int code);

/* ---- random numbers: PCG32 --------------------------------------------- */

typedef struct tl_rng {
	uint64_t state; /* LCG state, any value */
	uint64_t inc;   /* stream increment, always odd: (stream << 1) | 1 */
} tl_rng;

/* Seed as the reference pcg32_srandom_r: the stream selects one of 2^63
 * independent sequences. Two generators with the same seed and different
 * streams are uncorrelated for practical purposes. */
void tl_rng_seed(tl_rng *rng, uint64_t seed, uint64_t stream);
/* Next 32-bit output. */
uint32_t tl_rng_u32(tl_rng *rng);
/* 64 bits from two outputs (high word first). */
uint64_t tl_rng_u64(tl_rng *rng);
/* Uniform integer in [0, bound), bound >= 1, without modulo bias: draws below
 * 2^32 mod bound are rejected (at most one expected retry in 2). */
uint32_t tl_rng_bounded(tl_rng *rng, uint32_t bound);
/* Uniform integer in [lo, hi] inclusive; lo <= hi. */
int64_t tl_rng_range(tl_rng *rng, int64_t lo, int64_t hi);
/* Uniform float in [0, 1) with 24 random bits (never returns 1.0f). */
float tl_rng_float(tl_rng *rng);
/* Uniform double in [0, 1) with 53 random bits. */
double tl_rng_double(tl_rng *rng);
/* Standard normal variate (Marsaglia's polar method; no cached spare, so the
 * generator state alone determines the sequence). */
double tl_rng_normal(tl_rng *rng);
/* Jump ahead by `delta` steps in O(log delta) (Brown, "Random number
 * generation with arbitrary strides", 1994, as the PCG paper describes). */
void tl_rng_advance(tl_rng *rng, uint64_t delta);
/* Fisher-Yates shuffle of n elements of `size` bytes (size <= 256). */
void tl_rng_shuffle(tl_rng *rng, void *base, size_t n, size_t size);

/* ---- SHA-256 (FIPS 180-4) --------------------------------------------- */

typedef struct tl_sha256 {
	uint32_t h[8];          /* chaining state */
	uint64_t bytes;         /* message length so far */
	unsigned char buf[64];  /* partial block */
	size_t fill;            /* bytes in buf */
} tl_sha256;

void tl_sha256_init(tl_sha256 *s);
void tl_sha256_update(tl_sha256 *s, const void *data, size_t len);
void tl_sha256_final(tl_sha256 *s, unsigned char out[32]);
/* One-shot: lowercase hex digest of data into hex[65]. */
void tl_sha256_hex(const void *data, size_t len, char hex[65]);
/* Lowercase hex of n bytes into out[2n+1]. */
void tl_hex(const unsigned char *bytes, size_t n, char *out);

/* A new temporary file under $TMPDIR (else /tmp) named <prefix>-XXXXXX
 * holding `content`; its path in path[n]. Nothing is left behind on
 * failure: TL_EIO naming the file. The caller unlinks it (util/host.c). */
int tl_temp_file(char *path, size_t n, const char *prefix, const char *content, tl_err *err);
/* SHA-256 (lowercase hex) of a file's bytes. TL_EIO naming the path
 * (util/host.c). */
int tl_sha256_file(const char *path, char hex[65], tl_err *err);

/* ---- host facts (util/host.c) ------------------------------------------ */

/* The tailor cache root, one rule for every room: $TAILOR_CACHE, else
 * $XDG_CACHE_HOME/tailor when that is an absolute path, else
 * $HOME/.cache/tailor. TL_EINVAL when none is set or the path is too long. */
int tl_cache_root(char *out, size_t n, tl_err *err);
/* CLOCK_MONOTONIC in seconds. */
double tl_now_s(void);

/* An exclusive lock on the file `path` (flock(2), the file created when
 * missing), held until tl_lock_release or the end of the process (kill -9
 * included). Waits up to wait_s seconds (0: one try). Taken: *fd >= 0 and
 * the file holds `info` (one line naming the holder, for the next one).
 * Busy: TL_EBUSY, the holder's line in holder[hn]. TL_EIO otherwise. */
int tl_lock_take(int *fd, const char *path, const char *info, double wait_s, char *holder,
                 size_t hn, tl_err *err);
void tl_lock_release(int fd);

/* ---- strict parsing ---------------------------------------------------- */

/* Parse the whole string as a base-10 integer in [lo, hi]. Returns 0, or
 * TL_EUSAGE with a message "<what>: '<s>': <reason>" naming the input. */
int tl_parse_i64(int64_t *out, const char *s, int64_t lo, int64_t hi,
                 const char *what, tl_err *err);
int tl_parse_u64(uint64_t *out, const char *s, const char *what, tl_err *err);
int tl_parse_double(double *out, const char *s, const char *what, tl_err *err);

/* Copy at most size-1 bytes and NUL-terminate; returns strlen(src) so that a
 * result >= size means truncation. */
size_t tl_strlcpy(char *dst, const char *src, size_t size);

/* Read a whole file into a NUL-terminated heap buffer (caller frees). Errors
 * name the path and errno. max_bytes bounds what we accept (0: 256 MiB). */
int tl_file_read(char **out, size_t *len, const char *path, size_t max_bytes,
                 tl_err *err);

/* ---- growing strings (util/sb.c) ------------------------------------------ */

/* A string that grows, NUL-terminated whenever p != NULL. On allocation
 * failure it remembers (oom) and ignores further writes; tl_sb_take then
 * returns NULL. Zero-initialize: tl_sb b = {0}. */
typedef struct tl_sb {
	char *p;
	size_t len, cap;
	bool oom;
} tl_sb;
void tl_sb_put(tl_sb *b, const char *s, size_t n);
void tl_sb_str(tl_sb *b, const char *s);
void tl_sb_printf(tl_sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The string (caller frees; "" when nothing was written), or NULL after an
 * allocation failure; b is empty again. */
char *tl_sb_take(tl_sb *b);
void tl_sb_free(tl_sb *b);

/* ---- child processes (util/proc.c) -----------------------------------------
 *
 * The one way tailor runs a program on this machine and collects what it
 * says: the harness here, the `local` device's commands, an external quality
 * evaluator. The child gets its own session (setsid: its own process group),
 * stdin from `in` (or /dev/null), stdout and stderr into buffers. At the
 * timeout the whole group is killed and reading stops (whatever the group
 * left behind may hold the pipes open). */
typedef struct tl_proc {
	char *const *argv;   /* program and arguments (PATH searched), or NULL   */
	const char *shell;   /* ... or a /bin/sh -c script (argv NULL)           */
	const char *in;      /* bytes for stdin (NULL: /dev/null)                 */
	size_t in_len;
	double timeout_s;    /* <= 0: none                                        */
	size_t max_out;      /* stdout kept (0: 8 MiB); beyond: out_truncated     */
	bool out_keep_tail;  /* beyond max_out keep the last bytes, not the first */
	size_t err_tail;     /* the last bytes of stderr kept (0: 64 KiB)         */
} tl_proc;

typedef struct tl_proc_out {
	char *out;           /* stdout, NUL-terminated (malloc'd)                 */
	size_t out_len;
	bool out_truncated;  /* it said more than max_out (the rest was dropped)  */
	char *err;           /* the tail of stderr, NUL-terminated (malloc'd)     */
	size_t err_len;
	int wait_status;     /* waitpid's status; -1 when it could not be reaped  */
	bool timed_out;      /* killed at the timeout                             */
} tl_proc_out;

/* Run p. Returns 0 when the child was started and reaped (whatever its
 * status: look at wait_status and timed_out), TL_EIO when it could not be
 * started (pipe, fork), TL_ENOMEM. An exec failure is exit status 127 with
 * "cannot run NAME: reason" on its stderr. o is always filled: free it with
 * tl_proc_out_free. */
int tl_proc_run(const tl_proc *p, tl_proc_out *o, tl_err *err);
void tl_proc_out_free(tl_proc_out *o);
/* Call in a child right after fork(), before exec: its own session and
 * process group (a timeout kills the group), and, on Linux, the kernel's
 * parent-death signal (SIGKILL when the forking thread of tailor ends,
 * kill -9 included). Processes the child starts itself (a compiler's
 * passes, a shell's commands) are not covered by the death signal. */
void tl_child_guard(void);
/* In the parent, right after fork(): make pid its own process group and
 * hand the group to the reaper, a small process that kills every group
 * still handed to it when tailor ends (kill -9 included): so a child's own
 * children die with tailor too. Then, once pid is reaped: tl_child_reaped
 * kills what is left in its group and takes the group back. */
void tl_child_watch(pid_t pid);
/* Start the reaper now (it is started at the first child otherwise): call
 * it at the top of main, while the process is small, since the reaper is a
 * fork and keeps the pages tailor had then. */
void tl_child_reaper_start(void);
void tl_child_reaped(pid_t pid);
/* The last non-empty line of stderr (flattened), "no message" when none. */
const char *tl_proc_err_line(tl_proc_out *o);

#endif /* TL_H */

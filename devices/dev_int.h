/*
 * devices/dev_int.h: what the files of the devices room share and nobody
 * else sees: growing buffers, the raw transports under dev_exec (a command
 * line run on a host with a local deadline), and the SSH connection, whose
 * libssh2 types stay inside ssh.c.
 */
#ifndef DEV_INT_H
#define DEV_INT_H

#include "dev.h"

/* A growing byte buffer, always NUL-terminated when p != NULL. With max > 0
 * it keeps at most max bytes: beyond, the oldest half is dropped (so the
 * end of a stream, where dev_exec's markers are, survives). */
typedef struct dev_buf {
	char *p;
	size_t len, cap, max;
	bool dropped; /* bytes were dropped */
	bool oom;
} dev_buf;

void dev_buf_put(dev_buf *b, const char *s, size_t n);
void dev_buf_str(dev_buf *b, const char *s);
void dev_buf_fmt(dev_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void dev_buf_free(dev_buf *b);

/* What a raw transport returns. */
typedef struct dev_raw {
	dev_buf out, err;
	bool deadline_hit; /* the local deadline passed: the command was abandoned */
	bool failed;       /* the transport failed (connection lost): see the error */
	int wait_status;   /* local: the wait status; -1 otherwise                */
} dev_raw;


/* Run `script` with /bin/sh -c in a new session (setsid) on this machine;
 * kill its process group at the deadline (CLOCK_MONOTONIC seconds). */
int dev_local_exec(const char *script, double deadline, dev_raw *r, tl_err *err);

/* ---- ssh.c: the only file that includes libssh2.h --------------------- */

typedef struct dev_ssh dev_ssh;
/* Connect; check the host key (strict unless hk != NULL, where the key and
 * its status are only reported), authenticate when auth. */
int dev_ssh_open(dev_ssh **out, const db_device *d, bool auth, dev_hostkey *hk, tl_err *err);
void dev_ssh_close(dev_ssh *s);
bool dev_ssh_alive(const dev_ssh *s);
/* Run a command line (the login shell parses it) until EOF or the deadline. */
int dev_ssh_exec(dev_ssh *s, const char *line, double deadline, dev_raw *r, tl_err *err);
/* SFTP: write local to the absolute path remote with mode. */
int dev_ssh_put(dev_ssh *s, const char *local, const char *remote, int mode, double deadline,
                tl_err *err);
/* Write the host key of s into known_hosts (see dev_hostkey_trust). */
int dev_ssh_trust(dev_ssh *s, const db_device *d, bool replace, dev_hostkey *hk, tl_err *err);

#endif /* DEV_INT_H */

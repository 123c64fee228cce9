/*
 * devices/ssh.c: the SSH transport on libssh2 (DESIGN.md §9). The only file
 * of tailor that includes libssh2.h.
 *
 * Every wait is bounded: the session is non-blocking and each libssh2 call
 * that would block (LIBSSH2_ERROR_EAGAIN) is retried after poll() on the
 * socket in the directions libssh2 asks for, until the caller's deadline.
 * Keepalives go out every DEV_SSH_KEEPALIVE_S seconds while a command runs,
 * so a NAT or a phone's Wi-Fi does not drop an idle connection and a dead
 * peer shows up as a send error.
 *
 * Host keys: the server's key is checked against the device's known_hosts
 * (OpenSSH's format, "[host]:port" for ports other than 22). A key that is
 * missing or different refuses the connection; `tailor device trust` is the
 * only way to record one (dev_ssh_trust), which appends one line to the file.
 *
 * Authentication: ssh-agent when the device says so, else its key file,
 * else the agent and then ~/.ssh/id_ed25519, id_ecdsa, id_rsa. Keys are
 * referenced, never copied or stored. No password authentication.
 */
#include "dev_int.h"

#include <errno.h>
#include <fcntl.h>
#include <libssh2.h>
#include <libssh2_sftp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEV_SSH_KEEPALIVE_S 15
#define DEV_SSH_CLOSE_S     3.0 /* how long we wait for a polite close or disconnect */

struct dev_ssh {
	int sock;
	LIBSSH2_SESSION *sess;
	LIBSSH2_SFTP *sftp;
	char where[600]; /* user@host:port, for messages */
	char user[128];
	double timeout; /* connect and read timeout, s */
	bool dead;      /* the transport failed: nothing more can be sent */
};

static pthread_once_t ssh_once = PTHREAD_ONCE_INIT;
static int ssh_init_rc;

static void ssh_global_init(void)
{
	ssh_init_rc = libssh2_init(0);
}

static const char *last_msg(LIBSSH2_SESSION *sess)
{
	char *msg = NULL;
	int len = 0;
	if (sess == NULL)
		return "no session";
	libssh2_session_last_error(sess, &msg, &len, 0);
	return msg && *msg ? msg : "unknown libssh2 error";
}

/* Wait until the socket is ready in the direction libssh2 waits for, or the
 * deadline. TL_ETIMEOUT naming `what` when it passes. */
static int ssh_wait(dev_ssh *s, double deadline, const char *what, tl_err *err)
{
	double left = deadline - tl_now_s();
	if (left <= 0)
		return tl_err_set(err, TL_ETIMEOUT, "ssh %s: %s: no answer within the timeout",
		                  what, s->where);
	struct pollfd p = {s->sock, 0, 0};
	int dir = libssh2_session_block_directions(s->sess);
	if (dir & LIBSSH2_SESSION_BLOCK_INBOUND)
		p.events |= POLLIN;
	if (dir & LIBSSH2_SESSION_BLOCK_OUTBOUND)
		p.events |= POLLOUT;
	if (p.events == 0)
		p.events = POLLIN;
	int ms = left > 1.0 ? 1000 : (int)(left * 1000) + 1;
	if (poll(&p, 1, ms) < 0 && errno != EINTR)
		return tl_err_setsub(err, TL_EIO, errno, "ssh %s: %s: poll: %s", what, s->where,
		                     strerror(errno));
	return 0;
}

/* Record a libssh2 failure; marks the connection dead for transport errors. */
static int ssh_fail(dev_ssh *s, int rc, const char *what, tl_err *err)
{
	if (rc == LIBSSH2_ERROR_SOCKET_RECV || rc == LIBSSH2_ERROR_SOCKET_SEND ||
	    rc == LIBSSH2_ERROR_SOCKET_DISCONNECT || rc == LIBSSH2_ERROR_SOCKET_TIMEOUT ||
	    rc == LIBSSH2_ERROR_TIMEOUT || rc == LIBSSH2_ERROR_DECRYPT ||
	    rc == LIBSSH2_ERROR_BAD_USE) {
		s->dead = true;
		return tl_err_setsub(err, TL_ESSH, rc, "ssh %s: %s: connection lost (%s)", what,
		                     s->where, last_msg(s->sess));
	}
	return tl_err_setsub(err, TL_ESSH, rc, "ssh %s: %s: %s (libssh2 error %d)", what, s->where,
	                     last_msg(s->sess), rc);
}

/* ---- connecting ----------------------------------------------------------------- */

static int tcp_connect(dev_ssh *s, const char *host, int port, double deadline, tl_err *err)
{
	struct addrinfo hints, *res = NULL;
	char portstr[16];
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(portstr, sizeof portstr, "%d", port);
	int gai = getaddrinfo(host, portstr, &hints, &res);
	if (gai != 0)
		return tl_err_setsub(err, TL_ESSH, gai,
		                     "ssh connect: %s: cannot resolve host '%s' (%s); check --host",
		                     s->where, host, gai_strerror(gai));
	int last = 0;
	for (struct addrinfo *a = res; a; a = a->ai_next) {
		int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0) {
			last = errno;
			continue;
		}
		int fl = fcntl(fd, F_GETFL, 0);
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
		int rc = connect(fd, a->ai_addr, a->ai_addrlen);
		if (rc != 0 && errno == EINPROGRESS) {
			struct pollfd p = {fd, POLLOUT, 0};
			double left = deadline - tl_now_s();
			int n = left > 0 ? poll(&p, 1, (int)(left * 1000) + 1) : 0;
			if (n <= 0) {
				last = ETIMEDOUT;
				close(fd);
				continue;
			}
			int soerr = 0;
			socklen_t sl = sizeof soerr;
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
			rc = soerr ? -1 : 0;
			errno = soerr;
		}
		if (rc != 0) {
			last = errno;
			close(fd);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
		s->sock = fd;
		freeaddrinfo(res);
		return 0;
	}
	freeaddrinfo(res);
	if (last == ETIMEDOUT)
		return tl_err_setsub(
		    err, TL_ETIMEOUT, last,
		    "ssh connect: %s: no answer within %.0f s (is the device on and "
		    "reachable? raise its --timeout for slow links)",
		    s->where, s->timeout);
	return tl_err_setsub(err, TL_ESSH, last, "ssh connect: %s: %s (is sshd running there?)",
	                     s->where, strerror(last ? last : ECONNREFUSED));
}

static void b64(const unsigned char *in, size_t n, char *out)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)in[i] << 16;
		if (i + 1 < n)
			v |= (unsigned)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = tab[(v >> 18) & 63];
		out[o++] = tab[(v >> 12) & 63];
		if (i + 1 < n)
			out[o++] = tab[(v >> 6) & 63];
		if (i + 2 < n)
			out[o++] = tab[v & 63];
	}
	out[o] = '\0'; /* no padding, as OpenSSH prints fingerprints */
}

static const char *key_type_name(int type)
{
	switch (type) {
	case LIBSSH2_HOSTKEY_TYPE_RSA:
		return "ssh-rsa";
	case LIBSSH2_HOSTKEY_TYPE_DSS:
		return "ssh-dss";
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_256:
		return "ecdsa-sha2-nistp256";
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_384:
		return "ecdsa-sha2-nistp384";
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_521:
		return "ecdsa-sha2-nistp521";
	case LIBSSH2_HOSTKEY_TYPE_ED25519:
		return "ssh-ed25519";
	}
	return "unknown";
}

static int key_type_mask(int type)
{
	switch (type) {
	case LIBSSH2_HOSTKEY_TYPE_RSA:
		return LIBSSH2_KNOWNHOST_KEY_SSHRSA;
	case LIBSSH2_HOSTKEY_TYPE_DSS:
		return LIBSSH2_KNOWNHOST_KEY_SSHDSS;
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_256:
		return LIBSSH2_KNOWNHOST_KEY_ECDSA_256;
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_384:
		return LIBSSH2_KNOWNHOST_KEY_ECDSA_384;
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_521:
		return LIBSSH2_KNOWNHOST_KEY_ECDSA_521;
	case LIBSSH2_HOSTKEY_TYPE_ED25519:
		return LIBSSH2_KNOWNHOST_KEY_ED25519;
	}
	return LIBSSH2_KNOWNHOST_KEY_UNKNOWN;
}

static void known_hosts_path(const db_device *d, char *out, size_t n)
{
	if (d->known_hosts[0]) {
		tl_strlcpy(out, d->known_hosts, n);
		return;
	}
	const char *home = getenv("HOME");
	snprintf(out, n, "%s/.ssh/known_hosts", home && *home ? home : ".");
}

/* Compare the session's host key with known_hosts into hk. */
static int hostkey_check(dev_ssh *s, const db_device *d, dev_hostkey *hk, tl_err *err)
{
	size_t len = 0;
	int type = 0;
	const char *key = libssh2_session_hostkey(s->sess, &len, &type);
	const char *hash = libssh2_hostkey_hash(s->sess, LIBSSH2_HOSTKEY_HASH_SHA256);
	memset(hk, 0, sizeof *hk);
	if (key == NULL || hash == NULL)
		return ssh_fail(s, libssh2_session_last_errno(s->sess), "host key", err);
	char enc[64];
	b64((const unsigned char *)hash, 32, enc);
	snprintf(hk->fingerprint, sizeof hk->fingerprint, "SHA256:%s", enc);
	tl_strlcpy(hk->type, key_type_name(type), sizeof hk->type);
	known_hosts_path(d, hk->known_hosts, sizeof hk->known_hosts);

	LIBSSH2_KNOWNHOSTS *kh = libssh2_knownhost_init(s->sess);
	if (kh == NULL)
		return ssh_fail(s, libssh2_session_last_errno(s->sess), "known_hosts", err);
	if (access(hk->known_hosts, F_OK) == 0) {
		int n =
		    libssh2_knownhost_readfile(kh, hk->known_hosts, LIBSSH2_KNOWNHOST_FILE_OPENSSH);
		if (n < 0) {
			libssh2_knownhost_free(kh);
			return tl_err_setsub(
			    err, TL_EIO, n,
			    "ssh known_hosts: %s: cannot read or parse it (%s); fix the "
			    "file or give the device another --known-hosts",
			    hk->known_hosts, last_msg(s->sess));
		}
	}
	struct libssh2_knownhost *found = NULL;
	int port = d->port ? d->port : 22;
	int rc = libssh2_knownhost_checkp(kh, d->host, port, key, len,
	                                  LIBSSH2_KNOWNHOST_TYPE_PLAIN |
	                                      LIBSSH2_KNOWNHOST_KEYENC_RAW | key_type_mask(type),
	                                  &found);
	libssh2_knownhost_free(kh);
	hk->known = rc == LIBSSH2_KNOWNHOST_CHECK_MATCH      ? 1
	            : rc == LIBSSH2_KNOWNHOST_CHECK_MISMATCH ? -1
	                                                     : 0;
	return 0;
}

static int session_start(dev_ssh *s, double deadline, tl_err *err)
{
	s->sess = libssh2_session_init();
	if (s->sess == NULL)
		return tl_err_set(err, TL_ENOMEM, "ssh connect: %s: cannot create a session",
		                  s->where);
	libssh2_session_set_blocking(s->sess, 0);
	int rc;
	while ((rc = libssh2_session_handshake(s->sess, s->sock)) == LIBSSH2_ERROR_EAGAIN)
		if (ssh_wait(s, deadline, "handshake", err) < 0)
			return TL_ETIMEOUT;
	if (rc != 0) {
		s->dead = true;
		return tl_err_setsub(err, TL_ESSH, rc,
		                     "ssh handshake: %s: %s (is it an SSH server on that port?)",
		                     s->where, last_msg(s->sess));
	}
	libssh2_keepalive_config(s->sess, 1, DEV_SSH_KEEPALIVE_S);
	return 0;
}

static int auth_agent(dev_ssh *s, double deadline, bool *done, tl_err *err)
{
	LIBSSH2_AGENT *agent = libssh2_agent_init(s->sess);
	*done = false;
	if (agent == NULL)
		return 0;
	int ret = 0;
	if (libssh2_agent_connect(agent) != 0)
		goto out;
	if (libssh2_agent_list_identities(agent) != 0)
		goto disconnect;
	struct libssh2_agent_publickey *id = NULL, *prev = NULL;
	while (libssh2_agent_get_identity(agent, &id, prev) == 0) {
		int rc;
		while ((rc = libssh2_agent_userauth(agent, s->user, id)) == LIBSSH2_ERROR_EAGAIN)
			if ((ret = ssh_wait(s, deadline, "auth", err)) < 0)
				goto disconnect;
		if (rc == 0) {
			*done = true;
			break;
		}
		prev = id;
	}
disconnect:
	libssh2_agent_disconnect(agent);
out:
	libssh2_agent_free(agent);
	return ret;
}

/* 0 and *done when the key was accepted; 0 and !*done when refused; <0 for
 * a file that cannot be used or a transport failure. */
static int auth_key(dev_ssh *s, const char *path, double deadline, bool *done, tl_err *err)
{
	int rc;
	*done = false;
	if (access(path, R_OK) != 0)
		return tl_err_setsub(
		    err, TL_EIO, errno,
		    "ssh auth: %s: key file %s: %s (give --key PATH to a private key "
		    "you can read, or --agent)",
		    s->where, path, strerror(errno));
	while ((rc = libssh2_userauth_publickey_fromfile_ex(s->sess, s->user,
	                                                    (unsigned)strlen(s->user), NULL, path,
	                                                    NULL)) == LIBSSH2_ERROR_EAGAIN)
		if (ssh_wait(s, deadline, "auth", err) < 0)
			return TL_ETIMEOUT;
	if (rc == 0) {
		*done = true;
		return 0;
	}
	if (rc == LIBSSH2_ERROR_AUTHENTICATION_FAILED || rc == LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED)
		return 0;
	if (rc == LIBSSH2_ERROR_FILE)
		return tl_err_setsub(
		    err, TL_EIO, rc,
		    "ssh auth: %s: key file %s: cannot use it (%s); it must be an "
		    "unencrypted private key (OpenSSH or PEM format), or load it in "
		    "ssh-agent and use --agent",
		    s->where, path, last_msg(s->sess));
	return ssh_fail(s, rc, "auth", err);
}

static int authenticate(dev_ssh *s, const db_device *d, double deadline, tl_err *err)
{
	bool done = false;
	int rc;
	if (d->use_agent) {
		if ((rc = auth_agent(s, deadline, &done, err)) < 0)
			return rc;
		if (!done)
			return tl_err_set(
			    err, TL_ESSH,
			    "ssh auth: %s: no key of the ssh-agent was accepted (is "
			    "SSH_AUTH_SOCK set and the key added with ssh-add? is its .pub "
			    "in ~/.ssh/authorized_keys on the device?)",
			    s->where);
		return 0;
	}
	if (d->key_path[0]) {
		if ((rc = auth_key(s, d->key_path, deadline, &done, err)) < 0)
			return rc;
		if (!done)
			return tl_err_set(
			    err, TL_ESSH,
			    "ssh auth: %s: the server refused key %s (add its .pub to "
			    "~/.ssh/authorized_keys of user '%s' on the device, or give the "
			    "right --key)",
			    s->where, d->key_path, s->user);
		return 0;
	}
	if (getenv("SSH_AUTH_SOCK") && (rc = auth_agent(s, deadline, &done, err)) < 0)
		return rc;
	const char *home = getenv("HOME");
	static const char *const names[] = {"id_ed25519", "id_ecdsa", "id_rsa"};
	for (size_t i = 0; !done && home && i < sizeof names / sizeof names[0]; i++) {
		char path[DEV_PATH_MAX];
		snprintf(path, sizeof path, "%s/.ssh/%s", home, names[i]);
		if (access(path, R_OK) != 0)
			continue;
		if ((rc = auth_key(s, path, deadline, &done, err)) < 0)
			return rc;
	}
	if (!done)
		return tl_err_set(
		    err, TL_ESSH,
		    "ssh auth: %s: no key was accepted (tried the agent and ~/.ssh/id_*; "
		    "give the device --key PATH or --agent)",
		    s->where);
	return 0;
}

int dev_ssh_open(dev_ssh **out, const db_device *d, bool auth, dev_hostkey *hk, tl_err *err)
{
	*out = NULL;
	pthread_once(&ssh_once, ssh_global_init);
	if (ssh_init_rc != 0)
		return tl_err_setsub(err, TL_ESSH, ssh_init_rc,
		                     "ssh: libssh2 failed to initialise");
	dev_ssh *s = calloc(1, sizeof *s);
	if (s == NULL)
		return tl_err_set(err, TL_ENOMEM, "ssh: out of memory");
	s->sock = -1;
	s->timeout = d->timeout_s > 0 ? d->timeout_s : DEV_TIMEOUT_DEFAULT;
	const char *user = d->user[0] ? d->user : getenv("USER");
	if (user == NULL || *user == '\0')
		user = getenv("LOGNAME");
	tl_strlcpy(s->user, user ? user : "root", sizeof s->user);
	snprintf(s->where, sizeof s->where, "%s@%s:%d", s->user, d->host, d->port ? d->port : 22);

	double deadline = tl_now_s() + s->timeout;
	int rc = tcp_connect(s, d->host, d->port ? d->port : 22, deadline, err);
	if (rc == 0)
		rc = session_start(s, deadline, err);
	dev_hostkey local_hk;
	dev_hostkey *k = hk ? hk : &local_hk;
	if (rc == 0)
		rc = hostkey_check(s, d, k, err);
	if (rc == 0 && hk == NULL && k->known != 1) {
		if (k->known == 0)
			rc = tl_err_set(
			    err, TL_ESSH,
			    "ssh connect: %s: host key %s %s is not in %s (check it and accept "
			    "it with: tailor device trust %s)",
			    s->where, k->type, k->fingerprint, k->known_hosts, d->name);
		else
			rc = tl_err_set(
			    err, TL_ESSH,
			    "ssh connect: %s: host key CHANGED: the server shows %s %s, "
			    "which differs from %s (a reinstalled device, or someone in "
			    "between: if you know why, accept it with: tailor device trust "
			    "%s --replace)",
			    s->where, k->type, k->fingerprint, k->known_hosts, d->name);
	}
	if (rc == 0 && auth)
		rc = authenticate(s, d, deadline, err);
	if (rc < 0) {
		dev_ssh_close(s);
		return rc;
	}
	*out = s;
	return 0;
}

bool dev_ssh_alive(const dev_ssh *s)
{
	return s != NULL && !s->dead;
}

void dev_ssh_close(dev_ssh *s)
{
	if (s == NULL)
		return;
	double deadline = tl_now_s() + DEV_SSH_CLOSE_S;
	if (s->sftp && !s->dead)
		while (libssh2_sftp_shutdown(s->sftp) == LIBSSH2_ERROR_EAGAIN &&
		       ssh_wait(s, deadline, "close", NULL) == 0)
			;
	if (s->sess) {
		if (!s->dead)
			while (libssh2_session_disconnect(s->sess, "tailor: done") ==
			           LIBSSH2_ERROR_EAGAIN &&
			       ssh_wait(s, deadline, "close", NULL) == 0)
				;
		libssh2_session_free(s->sess);
	}
	if (s->sock >= 0)
		close(s->sock);
	free(s);
}

/* ---- commands --------------------------------------------------------------------- */

static void channel_drop(dev_ssh *s, LIBSSH2_CHANNEL *ch)
{
	double deadline = tl_now_s() + DEV_SSH_CLOSE_S;
	if (!s->dead)
		while (libssh2_channel_close(ch) == LIBSSH2_ERROR_EAGAIN &&
		       ssh_wait(s, deadline, "close", NULL) == 0)
			;
	/* libssh2_channel_free may need the peer's close; a dead or slow peer
	 * must not hold us, and the session's free releases what is left. */
	while (libssh2_channel_free(ch) == LIBSSH2_ERROR_EAGAIN && !s->dead &&
	       ssh_wait(s, deadline, "close", NULL) == 0)
		;
}

int dev_ssh_exec(dev_ssh *s, const char *line, double deadline, dev_raw *r, tl_err *err)
{
	LIBSSH2_CHANNEL *ch = NULL;
	int rc;
	if (s->dead)
		return tl_err_set(err, TL_ESSH, "ssh exec: %s: the connection was lost earlier",
		                  s->where);
	while ((ch = libssh2_channel_open_session(s->sess)) == NULL) {
		rc = libssh2_session_last_errno(s->sess);
		if (rc != LIBSSH2_ERROR_EAGAIN)
			return ssh_fail(s, rc, "exec", err);
		if (ssh_wait(s, deadline, "exec", err) < 0) {
			r->deadline_hit = true;
			return TL_ETIMEOUT;
		}
	}
	while ((rc = libssh2_channel_exec(ch, line)) == LIBSSH2_ERROR_EAGAIN)
		if (ssh_wait(s, deadline, "exec", err) < 0) {
			r->deadline_hit = true;
			channel_drop(s, ch);
			return TL_ETIMEOUT;
		}
	if (rc != 0) {
		ssh_fail(s, rc, "exec", err);
		channel_drop(s, ch);
		return TL_ESSH;
	}
	while ((rc = libssh2_channel_send_eof(ch)) == LIBSSH2_ERROR_EAGAIN)
		if (ssh_wait(s, deadline, "exec", err) < 0)
			break;

	char buf[16384];
	int ret = 0;
	for (;;) {
		bool progress = false;
		for (int stream = 0; stream < 2; stream++) {
			ssize_t n;
			while ((n = libssh2_channel_read_ex(ch, stream, buf, sizeof buf)) > 0) {
				dev_buf_put(stream ? &r->err : &r->out, buf, (size_t)n);
				progress = true;
			}
			if (n < 0 && n != LIBSSH2_ERROR_EAGAIN) {
				ret = ssh_fail(s, (int)n, "exec", err);
				r->failed = true;
				goto done;
			}
		}
		if (libssh2_channel_eof(ch))
			break;
		if (progress)
			continue;
		if (tl_now_s() >= deadline) {
			r->deadline_hit = true;
			break;
		}
		int next = 0;
		rc = libssh2_keepalive_send(s->sess, &next);
		if (rc != 0 && rc != LIBSSH2_ERROR_EAGAIN) {
			ret = ssh_fail(s, rc, "exec", err);
			r->failed = true;
			goto done;
		}
		if (ssh_wait(s, deadline, "exec", NULL) < 0) {
			r->deadline_hit = true;
			break;
		}
	}
done:
	channel_drop(s, ch);
	return ret;
}

/* ---- SFTP ------------------------------------------------------------------------- */

int dev_ssh_put(dev_ssh *s, const char *local, const char *remote, int mode, double deadline,
                tl_err *err)
{
	int rc;
	if (s->dead)
		return tl_err_set(err, TL_ESSH, "sftp: %s: the connection was lost earlier",
		                  s->where);
	FILE *f = fopen(local, "rb");
	if (f == NULL)
		return tl_err_setsub(err, TL_EIO, errno, "upload: %s: %s", local, strerror(errno));
	while (s->sftp == NULL) {
		s->sftp = libssh2_sftp_init(s->sess);
		if (s->sftp)
			break;
		rc = libssh2_session_last_errno(s->sess);
		if (rc != LIBSSH2_ERROR_EAGAIN) {
			fclose(f);
			ssh_fail(s, rc, "sftp", err);
			tl_err_prefix(
			    err, "upload %s (does the device's sshd offer the sftp subsystem?)",
			    local);
			return TL_ESSH;
		}
		if (ssh_wait(s, deadline, "sftp", err) < 0) {
			fclose(f);
			return TL_ETIMEOUT;
		}
	}
	LIBSSH2_SFTP_HANDLE *h;
	while ((h = libssh2_sftp_open_ex(s->sftp, remote, (unsigned)strlen(remote),
	                                 LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_TRUNC,
	                                 mode, LIBSSH2_SFTP_OPENFILE)) == NULL) {
		rc = libssh2_session_last_errno(s->sess);
		if (rc != LIBSSH2_ERROR_EAGAIN) {
			fclose(f);
			if (rc == LIBSSH2_ERROR_SFTP_PROTOCOL)
				return tl_err_setsub(
				    err, TL_EIO, (int)libssh2_sftp_last_error(s->sftp),
				    "sftp open: %s: %s: refused (SFTP status %lu)", s->where,
				    remote, libssh2_sftp_last_error(s->sftp));
			return ssh_fail(s, rc, "sftp open", err);
		}
		if (ssh_wait(s, deadline, "sftp open", err) < 0) {
			fclose(f);
			return TL_ETIMEOUT;
		}
	}
	char buf[32768];
	size_t n;
	int ret = 0;
	while (ret == 0 && (n = fread(buf, 1, sizeof buf, f)) > 0) {
		size_t off = 0;
		while (off < n) {
			ssize_t w = libssh2_sftp_write(h, buf + off, n - off);
			if (w == LIBSSH2_ERROR_EAGAIN) {
				if ((ret = ssh_wait(s, deadline, "sftp write", err)) < 0)
					break;
				continue;
			}
			if (w < 0) {
				ret = ssh_fail(s, (int)w, "sftp write", err);
				break;
			}
			off += (size_t)w;
		}
	}
	if (ret == 0 && ferror(f))
		ret = tl_err_setsub(err, TL_EIO, errno, "upload: %s: read failed", local);
	fclose(f);
	while ((rc = libssh2_sftp_close_handle(h)) == LIBSSH2_ERROR_EAGAIN)
		if (ssh_wait(s, deadline, "sftp close", ret < 0 ? NULL : err) < 0) {
			if (ret == 0)
				ret = TL_ETIMEOUT;
			break;
		}
	if (ret == 0 && rc < 0)
		ret = ssh_fail(s, rc, "sftp close", err);
	return ret;
}

/* ---- trust ------------------------------------------------------------------------ */

static int mkdir_parent(const char *path)
{
	char dir[DEV_PATH_MAX];
	tl_strlcpy(dir, path, sizeof dir);
	char *slash = strrchr(dir, '/');
	if (slash == NULL || slash == dir)
		return 0;
	*slash = '\0';
	if (access(dir, F_OK) == 0)
		return 0;
	if (mkdir_parent(dir) < 0)
		return -1;
	return mkdir(dir, 0700) == 0 || errno == EEXIST ? 0 : -1;
}

int dev_ssh_trust(dev_ssh *s, const db_device *d, bool replace, dev_hostkey *hk, tl_err *err)
{
	size_t len = 0;
	int type = 0;
	const char *key = libssh2_session_hostkey(s->sess, &len, &type);
	int port = d->port ? d->port : 22;
	char host[600];
	if (port == 22)
		snprintf(host, sizeof host, "%s", d->host);
	else
		snprintf(host, sizeof host, "[%s]:%d", d->host, port);
	LIBSSH2_KNOWNHOSTS *kh = libssh2_knownhost_init(s->sess);
	if (kh == NULL || key == NULL)
		return ssh_fail(s, libssh2_session_last_errno(s->sess), "trust", err);
	int typemask =
	    LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | key_type_mask(type);
	int ret = 0;
	if (hk->known == -1) {
		/* Rewrite the file without the host's old entries. libssh2 writes
		 * every entry it understood back; lines it cannot parse would be
		 * lost, so refuse when the counts disagree. */
		int n =
		    libssh2_knownhost_readfile(kh, hk->known_hosts, LIBSSH2_KNOWNHOST_FILE_OPENSSH);
		if (!replace || n < 0) {
			libssh2_knownhost_free(kh);
			if (!replace)
				return tl_err_set(
				    err, TL_EINVAL,
				    "device trust: %s: %s holds another key for this host; "
				    "if the device was reinstalled, give --replace",
				    d->name, hk->known_hosts);
			return tl_err_setsub(err, TL_EIO, n, "device trust: %s: cannot parse it",
			                     hk->known_hosts);
		}
		struct libssh2_knownhost *e = NULL, *prev = NULL;
		while (libssh2_knownhost_get(kh, &e, prev) == 0) {
			if (e->name && strcmp(e->name, host) == 0) {
				libssh2_knownhost_del(kh, e);
				prev = NULL; /* restart: the list changed */
				continue;
			}
			prev = e;
		}
		if (libssh2_knownhost_addc(kh, host, NULL, key, len, "tailor", 6, typemask, NULL) !=
		        0 ||
		    libssh2_knownhost_writefile(kh, hk->known_hosts,
		                                LIBSSH2_KNOWNHOST_FILE_OPENSSH) != 0)
			ret = tl_err_set(err, TL_EIO, "device trust: %s: cannot rewrite it (%s)",
			                 hk->known_hosts, last_msg(s->sess));
		libssh2_knownhost_free(kh);
		return ret;
	}
	struct libssh2_knownhost *store = NULL;
	char line[8192];
	size_t outlen = 0;
	if (libssh2_knownhost_addc(kh, host, NULL, key, len, "tailor", 6, typemask, &store) != 0 ||
	    libssh2_knownhost_writeline(kh, store, line, sizeof line, &outlen,
	                                LIBSSH2_KNOWNHOST_FILE_OPENSSH) != 0) {
		libssh2_knownhost_free(kh);
		return tl_err_set(err, TL_EFAIL, "device trust: %s: cannot encode the key (%s)",
		                  d->name, last_msg(s->sess));
	}
	libssh2_knownhost_free(kh);
	if (mkdir_parent(hk->known_hosts) < 0)
		return tl_err_setsub(err, TL_EIO, errno,
		                     "device trust: %s: cannot create its directory: %s",
		                     hk->known_hosts, strerror(errno));
	int fd = open(hk->known_hosts, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return tl_err_setsub(err, TL_EIO, errno, "device trust: %s: %s", hk->known_hosts,
		                     strerror(errno));
	/* A file whose last line lacks its newline would glue our line to it. */
	struct stat st;
	if (fstat(fd, &st) == 0 && st.st_size > 0) {
		char last = '\n';
		int rfd = open(hk->known_hosts, O_RDONLY | O_CLOEXEC);
		if (rfd >= 0) {
			if (pread(rfd, &last, 1, st.st_size - 1) != 1)
				last = '\n';
			close(rfd);
		}
		if (last != '\n' && write(fd, "\n", 1) != 1)
			ret = -1;
	}
	if (ret == 0 && write(fd, line, outlen) != (ssize_t)outlen)
		ret = -1;
	if (close(fd) != 0)
		ret = -1;
	if (ret < 0)
		return tl_err_setsub(err, TL_EIO, errno, "device trust: %s: write failed: %s",
		                     hk->known_hosts, strerror(errno));
	return 0;
}

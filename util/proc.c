/*
 * util/proc.c: run a child process with a timeout and collect its output
 * (see tl.h), and the reaper that kills children's process groups when
 * tailor ends. POSIX: fork, pipes, poll, setsid, waitpid.
 */
#include "tl.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- dying with the parent ------------------------------------------------- */

void tl_child_guard(void)
{
	pid_t parent = getppid();
	if (setsid() < 0) /* the parent made us a group leader first (setpgid) */
		(void)0;
#ifdef __linux__
	/* the kernel kills us when the thread that forked us ends (tailor
	 * killed, -9 included); a parent gone before this line: go too */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(128 + SIGKILL);
#else
	(void)parent;
#endif
}

/* The reaper: a process forked at the first child, that knows the process
 * groups of tailor's children. It reads "+pgid" / "-pgid" (an int32 each)
 * from a pipe whose only writer is tailor (the write end is close-on-exec);
 * when the pipe ends, tailor has ended (kill -9 included) and it kills every
 * group still listed, so what a child started (a compiler's passes, a
 * script's commands, the harness under the local device's shell) dies
 * within milliseconds of tailor. It ignores the terminal's signals (tailor
 * handles those) and holds no other descriptor (a lock tailor releases
 * must not stay held by it). Only async-signal-safe calls after fork. */
#define REAPER_MAX 4096
static int reaper_fd = -1;
static pid_t reaper_pid = -1;
static bool reaper_done; /* exiting: no new reaper */
static pthread_mutex_t reaper_mu = PTHREAD_MUTEX_INITIALIZER;

static void reaper_main(int rfd)
{
	static int32_t groups[REAPER_MAX];
	int n = 0;
	struct sigaction ign = {.sa_handler = SIG_IGN};
	sigemptyset(&ign.sa_mask);
	int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP, SIGTTIN, SIGTTOU, SIGPIPE};
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaction(sigs[i], &ign, NULL);
	int maxfd = (int)sysconf(_SC_OPEN_MAX);
	if (maxfd < 0 || maxfd > 65536)
		maxfd = 65536;
	for (int fd = 0; fd < maxfd; fd++)
		if (fd != rfd)
			close(fd);
	for (;;) {
		int32_t v[64];
		ssize_t r = read(rfd, v, sizeof v);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		for (size_t i = 0; i < (size_t)r / sizeof v[0]; i++) {
			if (v[i] > 0 && n < REAPER_MAX) {
				groups[n++] = v[i];
			} else if (v[i] < 0) {
				for (int k = 0; k < n; k++)
					if (groups[k] == -v[i]) {
						groups[k] = groups[--n];
						break;
					}
			}
		}
	}
	for (int k = 0; k < n; k++)
		kill(-groups[k], SIGKILL);
	_exit(0);
}

/* At a normal exit: end the reaper (it kills what is left) and reap it, so
 * no zombie waits for init to collect it. */
static void reaper_stop(void)
{
	reaper_done = true;
	if (reaper_fd < 0)
		return;
	close(reaper_fd);
	reaper_fd = -1;
	while (waitpid(reaper_pid, NULL, 0) < 0 && errno == EINTR)
		;
}

/* (reaper_mu held) Start the reaper; -1 when it cannot be (then children
 * have only their death signal). */
static int reaper_start(void)
{
	if (reaper_fd >= 0)
		return 0;
	if (reaper_done)
		return -1;
	int fd[2];
	if (pipe(fd) != 0)
		return -1;
	fcntl(fd[1], F_SETFD, FD_CLOEXEC);
	pid_t pid = fork();
	if (pid < 0) {
		close(fd[0]);
		close(fd[1]);
		return -1;
	}
	if (pid == 0) {
		setsid(); /* out of tailor's group: a kill of the group is tailor's death */
		reaper_main(fd[0]);
	}
	close(fd[0]);
	reaper_fd = fd[1];
	reaper_pid = pid;
	atexit(reaper_stop);
	return 0;
}

static void reaper_say(int32_t v)
{
	pthread_mutex_lock(&reaper_mu);
	if (reaper_start() == 0) {
		ssize_t w;
		do
			w = write(reaper_fd, &v, sizeof v);
		while (w < 0 && errno == EINTR);
	}
	pthread_mutex_unlock(&reaper_mu);
}

void tl_child_reaper_start(void)
{
	pthread_mutex_lock(&reaper_mu);
	reaper_start();
	pthread_mutex_unlock(&reaper_mu);
}

void tl_child_watch(pid_t pid)
{
	if (pid <= 1)
		return;
	setpgid(pid, pid); /* its group exists before the reaper may need it */
	reaper_say((int32_t)pid);
}

void tl_child_reaped(pid_t pid)
{
	if (pid <= 1)
		return;
	kill(-pid, SIGKILL); /* what it left in its group does not outlive it */
	reaper_say((int32_t)-pid);
}

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cloexec_pipe(int fd[2])
{
	if (pipe(fd) != 0)
		return -1;
	fcntl(fd[0], F_SETFD, FD_CLOEXEC);
	fcntl(fd[1], F_SETFD, FD_CLOEXEC);
	return 0;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void tl_proc_out_free(tl_proc_out *o)
{
	free(o->out);
	free(o->err);
	o->out = o->err = NULL;
	o->out_len = o->err_len = 0;
}

const char *tl_proc_err_line(tl_proc_out *o)
{
	char *s = o->err ? o->err : "";
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
		s[--n] = '\0';
	char *nl = strrchr(s, '\n');
	const char *line = nl ? nl + 1 : s;
	return *line ? line : "no message";
}

int tl_proc_run(const tl_proc *p, tl_proc_out *o, tl_err *err)
{
	size_t max_out = p->max_out ? p->max_out : (size_t)8 << 20;
	size_t tail = p->err_tail ? p->err_tail : (size_t)64 << 10;
	const char *name = p->argv ? p->argv[0] : "/bin/sh";
	memset(o, 0, sizeof *o);
	o->wait_status = -1;
	size_t ocap = 65536 < max_out + 1 ? 65536 : max_out + 1;
	o->out = malloc(ocap);
	o->err = malloc(tail + 1);
	if (o->out == NULL || o->err == NULL) {
		tl_proc_out_free(o);
		return tl_err_set(err, TL_ENOMEM, "run %s: out of memory", name);
	}
	o->out[0] = o->err[0] = '\0';
	int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1};
	if ((p->in && cloexec_pipe(pin) != 0) || cloexec_pipe(pout) != 0 || cloexec_pipe(perr) != 0) {
		int e = errno;
		close_fd(&pin[0]), close_fd(&pin[1]), close_fd(&pout[0]), close_fd(&pout[1]);
		return tl_err_setsub(err, TL_EIO, e, "run %s: pipe: %s", name, strerror(e));
	}
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close_fd(&pin[0]), close_fd(&pin[1]), close_fd(&pout[0]), close_fd(&pout[1]);
		close_fd(&perr[0]), close_fd(&perr[1]);
		return tl_err_setsub(err, TL_EIO, e, "run %s: fork: %s", name, strerror(e));
	}
	if (pid == 0) {
		/* its own session and process group (a timeout kills them all);
		 * a program (not a script: the local device's wrapper kills its
		 * own group at its deadline) dies with us */
		if (p->argv)
			tl_child_guard();
		else
			setsid(); /* fails when the parent's setpgid came first: as good */
		if (p->in) {
			dup2(pin[0], 0);
		} else {
			int null = open("/dev/null", O_RDONLY);
			if (null >= 0)
				dup2(null, 0);
		}
		dup2(pout[1], 1);
		dup2(perr[1], 2);
		signal(SIGPIPE, SIG_DFL);
		if (p->argv)
			execvp(p->argv[0], p->argv);
		else
			execl("/bin/sh", "sh", "-c", p->shell ? p->shell : "", (char *)NULL);
		dprintf(2, "cannot run %s: %s\n", name, strerror(errno));
		_exit(127);
	}
	tl_child_watch(pid);
	close_fd(&pin[0]);
	close_fd(&pout[1]);
	close_fd(&perr[1]);
	if (pin[1] >= 0)
		fcntl(pin[1], F_SETFL, O_NONBLOCK);
	/* writing to a child that closed its stdin must not kill us */
	struct sigaction ign = {.sa_handler = SIG_IGN}, old;
	sigemptyset(&ign.sa_mask);
	sigaction(SIGPIPE, &ign, &old);
	size_t in_off = 0;
	double deadline = p->timeout_s > 0 ? mono_s() + p->timeout_s : 0;
	int rc = 0;
	while (pout[0] >= 0 || perr[0] >= 0) {
		double left = deadline > 0 ? deadline - mono_s() : 1e9;
		if (left <= 0) {
			o->timed_out = true;
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			break; /* what the group left behind may hold the pipes */
		}
		struct pollfd fds[3];
		int nf = 0, iin = -1, io = -1, ie = -1;
		if (pin[1] >= 0) {
			fds[nf] = (struct pollfd){pin[1], POLLOUT, 0};
			iin = nf++;
		}
		if (pout[0] >= 0) {
			fds[nf] = (struct pollfd){pout[0], POLLIN, 0};
			io = nf++;
		}
		if (perr[0] >= 0) {
			fds[nf] = (struct pollfd){perr[0], POLLIN, 0};
			ie = nf++;
		}
		int n = poll(fds, (nfds_t)nf, left > 1 ? 1000 : (int)(left * 1000) + 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = tl_err_setsub(err, TL_EIO, errno, "run %s: poll: %s", name, strerror(errno));
			kill(-pid, SIGKILL);
			break;
		}
		if (iin >= 0 && fds[iin].revents) {
			ssize_t w = write(pin[1], p->in + in_off, p->in_len - in_off);
			if (w > 0)
				in_off += (size_t)w;
			if ((w < 0 && errno != EAGAIN && errno != EINTR) || in_off == p->in_len)
				close_fd(&pin[1]);
		}
		for (int k = 0; k < 2; k++) {
			int idx = k == 0 ? io : ie;
			int *fd = k == 0 ? &pout[0] : &perr[0];
			if (idx < 0 || !(fds[idx].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			char buf[16384];
			ssize_t r = read(*fd, buf, sizeof buf);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				close_fd(fd);
				continue;
			}
			size_t m = (size_t)r;
			if (k == 0 && p->out_keep_tail && o->out_len + m > max_out) {
				/* keep the last max_out bytes (the end of a stream, where
				 * markers are) */
				o->out_truncated = true;
				char *q = ocap >= max_out + 1 ? o->out : realloc(o->out, max_out + 1);
				if (q == NULL)
					continue;
				o->out = q;
				ocap = max_out + 1;
				if (m >= max_out) {
					memcpy(o->out, buf + m - max_out, max_out);
					o->out_len = max_out;
				} else {
					size_t drop = o->out_len + m - max_out;
					memmove(o->out, o->out + drop, o->out_len - drop);
					memcpy(o->out + o->out_len - drop, buf, m);
					o->out_len = max_out;
				}
				continue;
			}
			if (k == 0) {
				if (o->out_len + m > max_out) {
					o->out_truncated = true;
					m = max_out - o->out_len;
				}
				if (o->out_len + m + 1 > ocap) {
					size_t nc = ocap;
					while (nc < o->out_len + m + 1)
						nc *= 2;
					char *q = realloc(o->out, nc);
					if (q == NULL) {
						o->out_truncated = true;
						continue;
					}
					o->out = q;
					ocap = nc;
				}
				memcpy(o->out + o->out_len, buf, m);
				o->out_len += m;
			} else { /* keep the tail */
				if (m > tail) {
					memcpy(o->err, buf + m - tail, tail);
					o->err_len = tail;
				} else {
					if (o->err_len + m > tail) {
						size_t drop = o->err_len + m - tail;
						memmove(o->err, o->err + drop, o->err_len - drop);
						o->err_len -= drop;
					}
					memcpy(o->err + o->err_len, buf, m);
					o->err_len += m;
				}
			}
		}
	}
	close_fd(&pin[1]);
	close_fd(&pout[0]);
	close_fd(&perr[0]);
	sigaction(SIGPIPE, &old, NULL);
	while (waitpid(pid, &o->wait_status, 0) < 0) {
		if (errno != EINTR) {
			o->wait_status = -1;
			break;
		}
	}
	tl_child_reaped(pid);
	o->out[o->out_len] = '\0';
	o->err[o->err_len] = '\0';
	return rc;
}

/*
 * quality/command.c: the external evaluator. A configured command (a PyTorch
 * job, a script that submits one to Slurm with `sbatch --wait`) gets one JSON
 * request on its standard input and answers with one JSON object on its
 * standard output (protocol tailor-quality/1, docs/quality.md):
 *
 *   request:  {"protocol": "tailor-quality/1", "genome": {...genome JSON...},
 *              "genome_text": "tailor-genome/1 ...", "arch": "arch/1 ...",
 *              "arch_hash": "<sha256>", "settings": {...} | null}
 *   answer:   {"metrics": {"val_bpb": 1.92, "val_loss": 1.33, ...}}
 *
 * The command runs without a shell (execvp of argv), in its own process
 * group so a timeout kills everything it started; stderr is kept (the last
 * line names the failure). Workload: one child per evaluation, its output
 * bounded to 1 MiB.
 */
#include "quality.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CMD_MAX_OUT (1u << 20)
#define CMD_MAX_ERR 4096

static char *build_request(const genome *g, const char *settings, tl_err *err)
{
	char *gjson = genome_to_json(g, false), *gtext = genome_to_text(g), *arch = NULL;
	char hash[65] = "";
	genome_arch *ga = malloc(sizeof *ga);
	cJSON *req = NULL;
	char *out = NULL;
	if (gjson == NULL || gtext == NULL || ga == NULL) {
		tl_err_set(err, TL_ENOMEM, "command: out of memory");
		goto done;
	}
	if (genome_decode(ga, g, err) < 0)
		goto done;
	arch = genome_arch_describe(ga);
	if (arch == NULL) {
		tl_err_set(err, TL_ENOMEM, "command: out of memory");
		goto done;
	}
	tl_sha256_hex(arch, strlen(arch), hash);
	req = cJSON_CreateObject();
	cJSON_AddStringToObject(req, "protocol", "tailor-quality/1");
	cJSON_AddItemToObject(req, "genome", cJSON_Parse(gjson));
	cJSON_AddStringToObject(req, "genome_text", gtext);
	cJSON_AddStringToObject(req, "arch", arch);
	cJSON_AddStringToObject(req, "arch_hash", hash);
	cJSON *s = settings ? cJSON_Parse(settings) : NULL;
	if (settings && s == NULL) {
		tl_err_set(err, TL_EUSAGE, "command: settings are not JSON: %.80s", settings);
		goto done;
	}
	cJSON_AddItemToObject(req, "settings", s ? s : cJSON_CreateNull());
	out = cJSON_PrintUnformatted(req);
	if (out == NULL)
		tl_err_set(err, TL_ENOMEM, "command: out of memory");
done:
	cJSON_Delete(req);
	free(gjson);
	free(gtext);
	free(arch);
	free(ga);
	return out;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The last non-empty line of s (in place). */
static const char *last_line(char *s)
{
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
		s[--n] = '\0';
	char *nl = strrchr(s, '\n');
	return nl ? nl + 1 : s;
}

static int parse_answer(qual_metric **out, int *n, const char *text, const char *cmd,
                        tl_err *err)
{
	cJSON *root = cJSON_Parse(text);
	if (root == NULL || !cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return tl_err_set(err, TL_EPARSE, "command %s: output is not a JSON object (starts "
		                  "with '%.40s'; print {\"metrics\": {...}} on stdout, logs on stderr)",
		                  cmd, text);
	}
	cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "metrics");
	if (!cJSON_IsObject(m) || cJSON_GetArraySize(m) == 0) {
		cJSON_Delete(root);
		return tl_err_set(err, TL_EPARSE, "command %s: output has no \"metrics\" object with "
		                  "at least one number", cmd);
	}
	int k = cJSON_GetArraySize(m), i = 0;
	qual_metric *res = calloc((size_t)k, sizeof *res);
	if (res == NULL) {
		cJSON_Delete(root);
		return tl_err_set(err, TL_ENOMEM, "command: out of memory");
	}
	cJSON *it;
	cJSON_ArrayForEach(it, m)
	{
		if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) || strlen(it->string) == 0 ||
		    strlen(it->string) >= sizeof res[0].name) {
			int rc = tl_err_set(err, TL_EPARSE, "command %s: metrics.%.63s: not a finite "
			                    "number with a name of 1..63 characters", cmd, it->string);
			free(res);
			cJSON_Delete(root);
			return rc;
		}
		tl_strlcpy(res[i].name, it->string, sizeof res[i].name);
		res[i].value = it->valuedouble;
		i++;
	}
	cJSON_Delete(root);
	*out = res;
	*n = k;
	return 0;
}

int qual_eval_command(qual_metric **out, int *n, const genome *g, const qual_cmd_cfg *cfg,
                      tl_err *err)
{
	*out = NULL;
	*n = 0;
	if (cfg->argv == NULL || cfg->argv[0] == NULL)
		return tl_err_set(err, TL_EUSAGE, "command: no command configured");
	const char *cmd = cfg->argv[0];
	char *req = build_request(g, cfg->settings_json, err);
	if (req == NULL)
		return err->code ? err->code : TL_ENOMEM;
	int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1}, rc = 0;
	char *obuf = malloc(CMD_MAX_OUT + 1), ebuf[CMD_MAX_ERR + 1];
	size_t on = 0, en = 0;
	if (obuf == NULL || pipe(pin) < 0 || pipe(pout) < 0 || pipe(perr) < 0) {
		rc = tl_err_setsub(err, TL_EIO, errno, "command %s: cannot create pipes: %s", cmd,
		                   strerror(errno));
		goto out;
	}
	pid_t pid = fork();
	if (pid < 0) {
		rc = tl_err_setsub(err, TL_EIO, errno, "command %s: fork: %s", cmd, strerror(errno));
		goto out;
	}
	if (pid == 0) {
		setpgid(0, 0);
		dup2(pin[0], 0);
		dup2(pout[1], 1);
		dup2(perr[1], 2);
		for (int k = 0; k < 2; k++) {
			close(pin[k]);
			close(pout[k]);
			close(perr[k]);
		}
		execvp(cmd, cfg->argv);
		fprintf(stderr, "cannot run: %s\n", strerror(errno));
		_exit(127);
	}
	setpgid(pid, pid);
	close(pin[0]);
	close(pout[1]);
	close(perr[1]);
	pin[0] = pout[1] = perr[1] = -1;
	signal(SIGPIPE, SIG_IGN);
	fcntl(pin[1], F_SETFL, O_NONBLOCK);
	size_t rlen = strlen(req), roff = 0;
	double deadline = now_s() + (cfg->timeout_s > 0 ? cfg->timeout_s : 86400);
	bool timed_out = false, too_big = false;
	while (pout[0] >= 0 || perr[0] >= 0) {
		struct pollfd pf[3];
		int np = 0, iin = -1, iout = -1, ierr = -1;
		if (pin[1] >= 0) {
			pf[np] = (struct pollfd){pin[1], POLLOUT, 0};
			iin = np++;
		}
		if (pout[0] >= 0) {
			pf[np] = (struct pollfd){pout[0], POLLIN, 0};
			iout = np++;
		}
		if (perr[0] >= 0) {
			pf[np] = (struct pollfd){perr[0], POLLIN, 0};
			ierr = np++;
		}
		double left = deadline - now_s();
		if (left <= 0) {
			timed_out = true;
			break;
		}
		int pr = poll(pf, (nfds_t)np, left > 1 ? 1000 : (int)(left * 1000) + 1);
		if (pr < 0 && errno != EINTR)
			break;
		if (iin >= 0 && pf[iin].revents) {
			ssize_t w = write(pin[1], req + roff, rlen - roff);
			if (w > 0)
				roff += (size_t)w;
			if (w < 0 || roff == rlen) {
				close(pin[1]);
				pin[1] = -1;
			}
		}
		if (iout >= 0 && pf[iout].revents) {
			char tmp[65536];
			ssize_t r = read(pout[0], tmp, sizeof tmp);
			if (r <= 0) {
				close(pout[0]);
				pout[0] = -1;
			} else if (on + (size_t)r > CMD_MAX_OUT) {
				too_big = true;
				break;
			} else {
				memcpy(obuf + on, tmp, (size_t)r);
				on += (size_t)r;
			}
		}
		if (ierr >= 0 && pf[ierr].revents) {
			char tmp[4096];
			ssize_t r = read(perr[0], tmp, sizeof tmp);
			if (r <= 0) {
				close(perr[0]);
				perr[0] = -1;
			} else {
				/* keep the tail */
				if (en + (size_t)r > CMD_MAX_ERR) {
					size_t drop = en + (size_t)r - CMD_MAX_ERR;
					if (drop > en)
						drop = en;
					memmove(ebuf, ebuf + drop, en - drop);
					en -= drop;
				}
				size_t take = (size_t)r > CMD_MAX_ERR ? CMD_MAX_ERR : (size_t)r;
				memcpy(ebuf + en, tmp + (size_t)r - take, take);
				en += take;
			}
		}
	}
	int status = 0;
	if (timed_out || too_big) {
		kill(-pid, SIGKILL);
		waitpid(pid, &status, 0);
		rc = timed_out ? tl_err_set(err, TL_ETIMEOUT, "command %s: no answer after %d s "
		                            "(killed; raise the timeout)", cmd, cfg->timeout_s)
		               : tl_err_set(err, TL_EPARSE, "command %s: more than %u bytes on stdout "
		                            "(print only the answer there)", cmd, CMD_MAX_OUT);
		goto out;
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	obuf[on] = '\0';
	ebuf[en] = '\0';
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		const char *ll = last_line(ebuf);
		if (WIFEXITED(status))
			rc = tl_err_set(err, TL_EFAIL, "command %s: exit status %d%s%s", cmd,
			                WEXITSTATUS(status), *ll ? ": " : "", ll);
		else
			rc = tl_err_set(err, TL_EFAIL, "command %s: killed by signal %d%s%s", cmd,
			                WTERMSIG(status), *ll ? ": " : "", ll);
		goto out;
	}
	rc = parse_answer(out, n, obuf, cmd, err);
out:
	for (int k = 0; k < 2; k++) {
		if (pin[k] >= 0)
			close(pin[k]);
		if (pout[k] >= 0)
			close(pout[k]);
		if (perr[k] >= 0)
			close(perr[k]);
	}
	free(obuf);
	free(req);
	return rc;
}

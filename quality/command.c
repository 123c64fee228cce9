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
	/* util's child-process runner: the request on stdin, its own process
	 * group killed at the timeout */
	tl_proc p = {.argv = cfg->argv, .in = req, .in_len = strlen(req),
	             .timeout_s = cfg->timeout_s > 0 ? cfg->timeout_s : 86400,
	             .max_out = CMD_MAX_OUT, .err_tail = CMD_MAX_ERR};
	tl_proc_out o;
	int rc = tl_proc_run(&p, &o, err);
	if (rc < 0) {
		tl_err_prefix(err, "command %s", cmd);
		goto out;
	}
	int status = o.wait_status;
	if (o.timed_out) {
		rc = tl_err_set(err, TL_ETIMEOUT, "command %s: no answer after %d s (killed; raise the "
		                "timeout)", cmd, cfg->timeout_s);
		goto out;
	}
	if (o.out_truncated) {
		rc = tl_err_set(err, TL_EPARSE, "command %s: more than %u bytes on stdout (print only "
		                "the answer there)", cmd, CMD_MAX_OUT);
		goto out;
	}
	if (status < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		const char *ll = last_line(o.err);
		if (status >= 0 && WIFEXITED(status))
			rc = tl_err_set(err, TL_EFAIL, "command %s: exit status %d%s%s", cmd,
			                WEXITSTATUS(status), *ll ? ": " : "", ll);
		else
			rc = tl_err_set(err, TL_EFAIL, "command %s: killed by signal %d%s%s", cmd,
			                status >= 0 ? WTERMSIG(status) : 0, *ll ? ": " : "", ll);
		goto out;
	}
	rc = parse_answer(out, n, o.out, cmd, err);
out:
	tl_proc_out_free(&o);
	free(req);
	return rc;
}

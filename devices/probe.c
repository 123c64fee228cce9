/*
 * devices/probe.c: what a device is (probe) and what state it is in when a
 * measurement is taken (fingerprint). One POSIX sh script, readable by
 * people, runs on the device and prints key=value lines; everything it reads
 * is optional (a phone hides cpufreq, a container hides thermal zones), and
 * what is missing is left out of the JSON rather than guessed. It reads only
 * /proc, /sys, uname, getconf and Android's getprop.
 */
#include "dev_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char probe_script[] =
    "echo \"arch=$(uname -m 2>/dev/null)\"\n"
    "echo \"kernel=$(uname -r 2>/dev/null)\"\n"
    "os=''\n"
    "if [ -r /etc/os-release ]; then os=$(. /etc/os-release 2>/dev/null; "
    "echo \"${PRETTY_NAME:-$NAME}\"); fi\n"
    "if command -v getprop >/dev/null 2>&1; then\n"
    "  [ -n \"$os\" ] || os=\"Android $(getprop ro.build.version.release)\"\n"
    "  echo \"model=$(getprop ro.product.manufacturer) $(getprop ro.product.model)\"\n"
    "fi\n"
    "echo \"os=$os\"\n"
    "m=$(grep -m1 -E '^(model name|Hardware|Processor|cpu model)' /proc/cpuinfo 2>/dev/null "
    "| sed 's/^[^:]*:[ \t]*//')\n"
    "[ -n \"$m\" ] || m=$(grep -m1 -E '^CPU part' /proc/cpuinfo 2>/dev/null "
    "| sed 's/^[^:]*:[ \t]*/CPU part /')\n"
    "echo \"cpu_model=$m\"\n"
    "echo \"cores=$(getconf _NPROCESSORS_ONLN 2>/dev/null || grep -c '^processor' "
    "/proc/cpuinfo)\"\n"
    "echo \"memory_kb=$(sed -n 's/^MemTotal:[ \t]*\\([0-9]*\\).*/\\1/p' /proc/meminfo "
    "2>/dev/null)\"\n"
    "for c in /sys/devices/system/cpu/cpu[0-9]*; do\n"
    "  [ -d \"$c/cpufreq\" ] || continue\n"
    "  f=$c/cpufreq\n"
    "  echo \"cpu=${c##*/} $(cat $f/cpuinfo_min_freq 2>/dev/null || echo -) "
    "$(cat $f/cpuinfo_max_freq 2>/dev/null || echo -) "
    "$(cat $f/scaling_cur_freq 2>/dev/null || echo -) "
    "$(cat $f/scaling_governor 2>/dev/null || echo -)\"\n"
    "done\n"
    "for z in /sys/class/thermal/thermal_zone*; do\n"
    "  [ -r \"$z/temp\" ] || continue\n"
    "  echo \"thermal=${z##*/} $(cat $z/temp 2>/dev/null || echo -) "
    "$(cat $z/type 2>/dev/null || echo -)\"\n"
    "done\n"
    "true\n";

static void json_str(dev_buf *b, const char *s)
{
	dev_buf_str(b, "\"");
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			dev_buf_fmt(b, "\\%c", *p);
		else if (*p < 0x20 || *p >= 0x7f)
			dev_buf_fmt(b, "\\u%04x", *p); /* bytes, not UTF-8: keep JSON valid */
		else
			dev_buf_put(b, (const char *)p, 1);
	}
	dev_buf_str(b, "\"");
}

static void kv_str(dev_buf *b, const char *key, const char *v)
{
	if (v == NULL || *v == '\0')
		return;
	dev_buf_fmt(b, "%s\"%s\":", b->len > 1 ? "," : "", key);
	json_str(b, v);
}

/* A whole-number field, or -1. */
static long long num_or(const char *s)
{
	char *end;
	if (s == NULL || *s == '\0' || *s == '-')
		return -1;
	long long v = strtoll(s, &end, 10);
	return *end == '\0' ? v : -1;
}

typedef struct probe_data {
	char *lines; /* the script's output, cut into lines in place */
	const char *arch, *kernel, *os, *model, *cpu_model, *cores, *memory_kb;
	char *cpus[512];
	size_t n_cpus;
	char *zones[128];
	size_t n_zones;
} probe_data;

static int run_probe(dev_session *s, probe_data *p, tl_err *err)
{
	memset(p, 0, sizeof *p);
	int rc = dev_run(s, NULL, probe_script, 60, &p->lines, "probe", err);
	if (rc < 0)
		return rc;
	char *save = NULL;
	for (char *line = strtok_r(p->lines, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(line, '=');
		if (eq == NULL)
			continue;
		*eq = '\0';
		char *v = eq + 1;
		if (strcmp(line, "arch") == 0)
			p->arch = v;
		else if (strcmp(line, "kernel") == 0)
			p->kernel = v;
		else if (strcmp(line, "os") == 0)
			p->os = v;
		else if (strcmp(line, "model") == 0)
			p->model = v;
		else if (strcmp(line, "cpu_model") == 0)
			p->cpu_model = v;
		else if (strcmp(line, "cores") == 0)
			p->cores = v;
		else if (strcmp(line, "memory_kb") == 0)
			p->memory_kb = v;
		else if (strcmp(line, "cpu") == 0 && p->n_cpus < 512)
			p->cpus[p->n_cpus++] = v;
		else if (strcmp(line, "thermal") == 0 && p->n_zones < 128)
			p->zones[p->n_zones++] = v;
	}
	if (p->arch == NULL || *p->arch == '\0') {
		free(p->lines);
		p->lines = NULL;
		return tl_err_set(
		    err, TL_EFAIL,
		    "probe: the device's shell did not report its architecture (uname -m "
		    "missing?)");
	}
	return 0;
}

/* Split "a b c rest..." into n words, the last taking the rest. */
static int split(char *s, char **w, int n)
{
	int k = 0;
	while (k < n && s && *s) {
		while (*s == ' ')
			s++;
		w[k++] = s;
		if (k == n)
			break;
		char *sp = strchr(s, ' ');
		if (sp == NULL)
			break;
		*sp = '\0';
		s = sp + 1;
	}
	return k;
}

static void thermal_json(dev_buf *b, probe_data *p, double *tmax)
{
	*tmax = NAN;
	dev_buf_str(b, ",\"thermal\":[");
	size_t k = 0;
	for (size_t i = 0; i < p->n_zones; i++) {
		char copy[512], *w[3];
		tl_strlcpy(copy, p->zones[i], sizeof copy);
		if (split(copy, w, 3) < 2)
			continue;
		long long milli = num_or(w[1]);
		if (milli < -50000 || milli > 200000) /* absent or nonsense */
			continue;
		double c = (double)milli / 1000.0;
		if (isnan(*tmax) || c > *tmax)
			*tmax = c;
		dev_buf_fmt(b, "%s{\"zone\":", k++ ? "," : "");
		json_str(b, w[0]);
		dev_buf_str(b, ",\"type\":");
		json_str(b, w[2] ? w[2] : "-");
		dev_buf_fmt(b, ",\"temp_c\":%.1f}", c);
	}
	dev_buf_str(b, "]");
}

static void now_iso(char *out, size_t n)
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int finish(dev_buf *b, char **json, tl_err *err)
{
	dev_buf_str(b, "}");
	if (b->oom) {
		dev_buf_free(b);
		return tl_err_set(err, TL_ENOMEM, "probe: out of memory");
	}
	*json = b->p;
	return 0;
}

int dev_probe_facts(dev_session *s, char **json, tl_err *err)
{
	probe_data p;
	*json = NULL;
	int rc = run_probe(s, &p, err);
	if (rc < 0)
		return rc;
	dev_buf b = {0};
	dev_buf_str(&b, "{");
	kv_str(&b, "arch", p.arch);
	kv_str(&b, "kernel", p.kernel);
	kv_str(&b, "os", p.os);
	kv_str(&b, "model", p.model);
	kv_str(&b, "cpu_model", p.cpu_model);
	if (num_or(p.cores) > 0)
		dev_buf_fmt(&b, ",\"cores\":%lld", num_or(p.cores));
	if (num_or(p.memory_kb) > 0)
		dev_buf_fmt(&b, ",\"memory_bytes\":%lld", num_or(p.memory_kb) * 1024);
	dev_buf_str(&b, ",\"cpus\":[");
	size_t nc = 0;
	for (size_t i = 0; i < p.n_cpus; i++) {
		char *w[5];
		if (split(p.cpus[i], w, 5) < 5)
			continue;
		dev_buf_fmt(&b, "%s{\"cpu\":", nc++ ? "," : "");
		json_str(&b, w[0]);
		const char *keys[] = {"min_khz", "max_khz", "cur_khz"};
		for (int k = 0; k < 3; k++)
			if (num_or(w[k + 1]) >= 0)
				dev_buf_fmt(&b, ",\"%s\":%lld", keys[k], num_or(w[k + 1]));
		if (strcmp(w[4], "-") != 0) {
			dev_buf_str(&b, ",\"governor\":");
			json_str(&b, w[4]);
		}
		dev_buf_str(&b, "}");
	}
	dev_buf_str(&b, "]");
	double tmax;
	thermal_json(&b, &p, &tmax);
	char now[32];
	now_iso(now, sizeof now);
	kv_str(&b, "probed_at", now);
	free(p.lines);
	return finish(&b, json, err);
}

int dev_fingerprint(dev_session *s, char **json, double *max_temp_c, tl_err *err)
{
	probe_data p;
	*json = NULL;
	*max_temp_c = NAN;
	int rc = run_probe(s, &p, err);
	if (rc < 0)
		return rc;
	dev_buf b = {0};
	dev_buf_str(&b, "{");
	kv_str(&b, "cpu_model", p.cpu_model);
	if (num_or(p.cores) > 0)
		dev_buf_fmt(&b, ",\"cores\":%lld", num_or(p.cores));
	kv_str(&b, "arch", p.arch);
	kv_str(&b, "kernel", p.kernel);
	kv_str(&b, "os", p.os);
	kv_str(&b, "model", p.model);
	/* the distinct governors and the highest max frequency */
	char govs[256] = "";
	long long fmax = -1;
	for (size_t i = 0; i < p.n_cpus; i++) {
		char *w[5];
		if (split(p.cpus[i], w, 5) < 5)
			continue;
		if (num_or(w[2]) > fmax)
			fmax = num_or(w[2]);
		if (strcmp(w[4], "-") == 0)
			continue;
		char pat[80];
		snprintf(pat, sizeof pat, ",%s,", w[4]);
		char have[260];
		snprintf(have, sizeof have, ",%s,", govs);
		if (strstr(have, pat) == NULL && strlen(govs) + strlen(w[4]) + 2 < sizeof govs) {
			if (govs[0])
				strcat(govs, ",");
			strcat(govs, w[4]);
		}
	}
	kv_str(&b, "governor", govs);
	if (fmax > 0)
		dev_buf_fmt(&b, ",\"max_khz\":%lld", fmax);
	thermal_json(&b, &p, max_temp_c);
	if (!isnan(*max_temp_c))
		dev_buf_fmt(&b, ",\"temp_max_c\":%.1f", *max_temp_c);
	free(p.lines);
	return finish(&b, json, err);
}

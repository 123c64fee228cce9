/*
 * cli/cmd_device.c: `tailor device`: the lab operator's commands (register,
 * list, show, probe, trust, remove, enable, disable devices; docs/devices.md),
 * and cli_dev_harness, which puts a genome's harness on a device (a build
 * with the device's toolchain pushed as one file, or the build dir pushed and
 * compiled there) for `tailor bench --device` and `device probe`.
 *
 *   device add NAME [connection, toolchain and run options]
 *   device add --file FILE          several devices from JSON, all or none
 *   device list [--json]
 *   device show NAME [--json]
 *   device probe NAME... [--no-bandwidth] [--timeout SEC]
 *   device trust NAME [--fingerprint SHA256:...] [--replace] [--yes]
 *   device remove NAME / enable NAME / disable NAME
 *   device set-protocol NAME FILE|-  the device's protocol overrides ('-': none)
 */
#include "cli.h"
#include "db.h"
#include "dev.h"
#include "genome.h"
#include "op_emit.h"
#include "protocol.h"
#include "tailor_config.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void device_help(FILE *f)
{
	fprintf(
	    f,
	    "usage: tailor [--db PATH] device add NAME [OPTIONS]\n"
	    "       tailor [--db PATH] device add --file FILE\n"
	    "       tailor [--db PATH] device list [--json]\n"
	    "       tailor [--db PATH] device show NAME [--json]\n"
	    "       tailor [--db PATH] device probe NAME... [--no-bandwidth] [--timeout SEC]\n"
	    "       tailor [--db PATH] device trust NAME [--fingerprint FP] [--replace] [--yes]\n"
	    "       tailor [--db PATH] device remove|enable|disable NAME\n"
	    "       tailor [--db PATH] device set-protocol NAME FILE|-\n"
	    "       tailor [--db PATH] device profile-ops NAME --space FILE [OPTIONS]\n"
	    "                          (operator tables: see 'device profile-ops --help')\n"
	    "\n"
	    "The device lab: machines candidates are measured on (docs/devices.md).\n"
	    "'local' (this machine) always exists. A device is reached over SSH, or is a\n"
	    "phone on USB behind an SSH lab host (adb); its host key must be accepted\n"
	    "once with 'device trust' before anything runs there.\n"
	    "\n"
	    "add options:\n"
	    "  --transport T        local, ssh or adb (default: ssh with --host, adb with\n"
	    "                       --serial)\n"
	    "  --host H             ssh: the device; adb: the lab host\n"
	    "  --port P             SSH port (default 22)\n"
	    "  --user U             SSH login (default: your user name)\n"
	    "  --key PATH           private key file (referenced, never copied)\n"
	    "  --agent              authenticate with ssh-agent ($SSH_AUTH_SOCK)\n"
	    "  --known-hosts PATH   known_hosts file (default ~/.ssh/known_hosts)\n"
	    "  --serial S           adb: the phone's serial on the lab host ('adb devices')\n"
	    "  --adb PATH           adb: the adb command on the lab host (default adb)\n"
	    "  --arch A             architecture (probe fills it in), e.g. aarch64\n"
	    "  --cc CC              compiler for builds on this machine, e.g.\n"
	    "                       aarch64-linux-gnu-gcc (default cc)\n"
	    "  --cflags FLAGS       its flags (default '-O3 -march=native')\n"
	    "  --compile-on-device  push the build dir and run make on the device instead\n"
	    "  --run-prefix WORDS   words before the harness, e.g. 'taskset -c 4-7' or\n"
	    "                       'qemu-aarch64 -L /usr/aarch64-linux-gnu' (split at\n"
	    "                       spaces and quoted: no shell syntax)\n"
	    "  --threads T          harness threads on this device\n"
	    "  --label L            a label (repeatable), e.g. phone\n"
	    "  --work-root DIR      where per-run work dirs are made on the device\n"
	    "                       (default ~/.cache/tailor; adb: /data/local/tmp)\n"
	    "  --timeout SEC        connect and read timeout (default %d)\n"
	    "  --protocol FILE      the device's measurement-protocol overrides: a JSON\n"
	    "                       object of protocol keys (e.g. {\"delay_s\": 2,\n"
	    "                       \"thermal\": {\"max_temp_c\": 60}}), applied before a\n"
	    "                       command's or run's protocol and flags; its \"shapes\"\n"
	    "                       are not used (docs/devices.md, Measurement protocol)\n"
	    "  --disabled           register it disabled\n"
	    "  --file FILE          add the devices of a JSON file: {\"devices\": [{\"name\":\n"
	    "                       ..., \"host\": ..., ...}]}, keys as the options above\n"
	    "                       with _ for -, \"labels\" an array, \"protocol\" an\n"
	    "                       object; all or none are added\n"
	    "\n"
	    "set-protocol replaces a device's protocol overrides with FILE's ('-': none).\n"
	    "\n"
	    "other options:\n"
	    "  --json               machine-readable output (list, show)\n"
	    "  --no-bandwidth       probe: skip the memory bandwidth measurement\n"
	    "  --timeout SEC        probe: time allowed for the bandwidth run (default 600)\n"
	    "  --fingerprint FP     trust: accept only this key (SHA256:...)\n"
	    "  --replace            trust: replace a different key recorded for the host\n"
	    "  --yes                trust: do not ask (the default when stdin is not a\n"
	    "                       terminal)\n"
	    "  --db PATH            the database (default: $TAILOR_DB, else ./tailor.db)\n"
	    "  -h, --help           this help\n",
	    DEV_TIMEOUT_DEFAULT);
}

/* ---- the harness on a device ------------------------------------------------------ */

static void toolchain_of(op_emit_opts *o, const db_device *d, const char *quant)
{
	op_emit_opts_init(o);
	o->tool_version = TAILOR_VERSION;
	if (d->toolchain_cc[0])
		o->cc = d->toolchain_cc;
	if (d->toolchain_flags[0])
		o->cflags = d->toolchain_flags;
	if (quant)
		o->quant = quant;
}

static int rm_rf_local(const char *dir)
{
	char *cmd = NULL;
	tl_err err = TL_ERR_INIT;
	if (dev_shell_append(&cmd, "rm", &err) < 0 || dev_shell_append(&cmd, "-rf", &err) < 0 ||
	    dev_shell_append(&cmd, dir, &err) < 0) {
		free(cmd);
		return -1;
	}
	int rc = system(cmd);
	free(cmd);
	return rc;
}

int cli_dev_harness(dev_session *s, const char *arch_text, const char *quant, char *wd, size_t wd_n,
                    char build_hash[65], int *stage, tl_err *err)
{
	const db_device *d = dev_session_device(s);
	op_emit_opts o;
	int rc;
	toolchain_of(&o, d, quant);
	wd[0] = '\0';
	build_hash[0] = '\0';
	*stage = CLI_STAGE_BUILD;
	if ((rc = op_emit_opts_check(&o, err)) < 0) {
		tl_err_prefix(err, "device %s", d->name);
		return rc;
	}
	if (!d->compile_on_device) {
		op_emit_result r;
		if ((rc = op_emit_build(&r, NULL, arch_text, &o, err)) < 0)
			return rc;
		tl_strlcpy(build_hash, r.key, 65);
		*stage = CLI_STAGE_TRANSFER;
		if ((rc = dev_workdir_create(s, wd, wd_n, err)) < 0)
			return rc;
		return dev_upload(s, r.binary, wd, OP_EMIT_BINARY, 0755, err);
	}
	/* Compile on the device: emit the dir here, push every file, make there. */
	char tmpl[] = "/tmp/tailor-emit.XXXXXX";
	if (mkdtemp(tmpl) == NULL)
		return tl_err_set(err, TL_EIO, "build: cannot make a temporary dir in /tmp");
	char key[65];
	rc = op_emit_key(key, arch_text, &o, err);
	if (rc == 0)
		rc = op_emit_build_dir(tmpl, arch_text, &o, err);
	if (rc < 0)
		goto out;
	tl_strlcpy(build_hash, key, 65);
	*stage = CLI_STAGE_TRANSFER;
	if ((rc = dev_workdir_create(s, wd, wd_n, err)) < 0)
		goto out;
	const char *extra[] = {"Makefile", "bench_config.h", "arch.txt", "build.json"};
	for (size_t i = 0; rc == 0 && i < op_emit_n_sources + 4; i++) {
		const char *name =
		    i < op_emit_n_sources ? op_emit_sources[i].name : extra[i - op_emit_n_sources];
		char path[OP_EMIT_PATH_MAX + 300];
		snprintf(path, sizeof path, "%s/%s", tmpl, name);
		if (access(path, F_OK) != 0)
			continue; /* arch.txt without an arch */
		rc = dev_upload(s, path, wd, name, 0644, err);
	}
	if (rc < 0)
		goto out;
	*stage = CLI_STAGE_BUILD;
	rc = dev_run(s, wd, "make -s >build.log 2>&1 || { tail -n 5 build.log >&2; exit 1; }", 1800,
	             NULL, "build on the device", err);
out:
	rm_rf_local(tmpl);
	return rc;
}

/* ---- helpers ---------------------------------------------------------------------- */

static int open_db(db_conn **db, const char *flag, tl_err *err)
{
	return db_open(db, db_path_resolve(flag), 0, err);
}

static int set_text(char *dst, size_t n, const char *val, const char *flag)
{
	if (tl_strlcpy(dst, val, n) >= n)
		return cli_usage("device", "%s: '%.40s...': longer than %zu characters", flag, val,
		                 n - 1);
	return 0;
}

static int add_label(db_device *d, const char *label)
{
	for (const char *p = label; *p; p++)
		if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
			return cli_usage("device",
			                 "--label '%s': no quotes, backslashes or control "
			                 "characters",
			                 label);
	size_t n = strlen(d->labels);
	if (n < 2 || d->labels[n - 1] != ']')
		tl_strlcpy(d->labels, "[]", sizeof d->labels);
	n = strlen(d->labels);
	char buf[sizeof d->labels];
	int k = snprintf(buf, sizeof buf, "%.*s%s\"%s\"]", (int)(n - 1), d->labels,
	                 n > 2 ? ", " : "", label);
	if (k < 0 || (size_t)k >= sizeof buf)
		return cli_usage("device", "--label: too many labels");
	tl_strlcpy(d->labels, buf, sizeof d->labels);
	return 0;
}

static const char *or_dash(const char *s)
{
	return s && *s ? s : "-";
}

/* A device's protocol overrides (the JSON object `json`): checked by
 * prof_protocol_parse over the defaults (an unknown key, a wrong type or a
 * value out of range is one line naming the JSON path), then stored as
 * given, re-printed compactly, in out (db_device.protocol). *shapes says
 * whether it lists "shapes" (kept, but never used for measuring). */
static int device_protocol_text(char *out, size_t n, const char *json, bool *shapes,
                                tl_err *err)
{
	prof_protocol p;
	prof_protocol_init(&p);
	*shapes = false;
	int rc = prof_protocol_parse(&p, json, err);
	if (rc < 0)
		return rc;
	cJSON *j = cJSON_Parse(json);
	char *s = j ? cJSON_PrintUnformatted(j) : NULL;
	*shapes = cJSON_GetObjectItemCaseSensitive(j, "shapes") != NULL;
	cJSON_Delete(j);
	if (s == NULL)
		return tl_err_set(err, TL_ENOMEM, "protocol: out of memory");
	size_t len = tl_strlcpy(out, s, n);
	free(s);
	if (len >= n) {
		out[0] = '\0';
		return tl_err_set(err, TL_EINVAL,
		                  "protocol: %zu characters once compacted: a device keeps at most "
		                  "%zu",
		                  len, n - 1);
	}
	return 0;
}

/* The same for a file; errors start with its path, as prof_protocol_load's. */
static int device_protocol_file(char *out, size_t n, const char *path, bool *shapes,
                                tl_err *err)
{
	char *text = NULL;
	size_t len = 0;
	*shapes = false;
	int rc = tl_file_read(&text, &len, path, 1u << 20, err);
	if (rc < 0)
		return rc;
	rc = device_protocol_text(out, n, text, shapes, err);
	free(text);
	if (rc < 0)
		tl_err_prefix(err, "%s", path);
	return rc;
}

int cli_device_protocol(prof_protocol *p, const db_device *d, tl_err *err)
{
	if (d->protocol[0] == '\0')
		return 0;
	prof_protocol q = *p;
	int rc = prof_protocol_parse(&q, d->protocol, err);
	if (rc < 0) {
		tl_err_prefix(err, "device %s", d->name);
		return rc;
	}
	/* The shapes stay the caller's: what a command or a search measures is
	 * its own business, not the device's. */
	q.n_shapes = p->n_shapes;
	memcpy(q.shapes, p->shapes, sizeof q.shapes);
	*p = q;
	return 0;
}

/* ---- add ------------------------------------------------------------------------ */

/* Fill d from one JSON object of a devices file; usage errors name it. */
static int device_from_json(db_device *d, const cJSON *o, const char *file, int idx)
{
	const cJSON *it;
	char where[600];
	db_device_init(d);
	snprintf(where, sizeof where, "%s: devices[%d]", file, idx);
	if (!cJSON_IsObject(o))
		return cli_usage("device", "%s: not an object", where);
	static const struct {
		const char *key;
		size_t off, n;
	} texts[] = {
	    {"name", offsetof(db_device, name), sizeof((db_device *)0)->name},
	    {"transport", offsetof(db_device, transport), sizeof((db_device *)0)->transport},
	    {"host", offsetof(db_device, host), sizeof((db_device *)0)->host},
	    {"user", offsetof(db_device, user), sizeof((db_device *)0)->user},
	    {"key", offsetof(db_device, key_path), sizeof((db_device *)0)->key_path},
	    {"known_hosts", offsetof(db_device, known_hosts), sizeof((db_device *)0)->known_hosts},
	    {"serial", offsetof(db_device, adb_serial), sizeof((db_device *)0)->adb_serial},
	    {"adb", offsetof(db_device, adb_path), sizeof((db_device *)0)->adb_path},
	    {"arch", offsetof(db_device, arch), sizeof((db_device *)0)->arch},
	    {"cc", offsetof(db_device, toolchain_cc), sizeof((db_device *)0)->toolchain_cc},
	    {"cflags", offsetof(db_device, toolchain_flags),
	     sizeof((db_device *)0)->toolchain_flags},
	    {"run_prefix", offsetof(db_device, run_prefix), sizeof((db_device *)0)->run_prefix},
	    {"work_root", offsetof(db_device, work_root), sizeof((db_device *)0)->work_root},
	};
	static const char *const ints[] = {"port", "threads", "timeout"};
	static const char *const bools[] = {"agent", "compile_on_device", "enabled"};
	cJSON_ArrayForEach(it, o)
	{
		const char *k = it->string;
		bool known = false;
		for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
			if (strcmp(k, texts[i].key) != 0)
				continue;
			known = true;
			if (!cJSON_IsString(it))
				return cli_usage("device", "%s.%s: give a string", where, k);
			char flag[700];
			snprintf(flag, sizeof flag, "%s.%s", where, k);
			if (set_text((char *)d + texts[i].off, texts[i].n, it->valuestring, flag) !=
			    0)
				return CLI_USAGE;
		}
		for (size_t i = 0; i < 3; i++) {
			if (strcmp(k, ints[i]) != 0)
				continue;
			known = true;
			if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) ||
			    it->valuedouble < 1 || it->valuedouble > 65535)
				return cli_usage("device", "%s.%s: give a whole number in range",
				                 where, k);
			int v = (int)it->valuedouble;
			if (i == 0)
				d->port = v;
			else if (i == 1)
				d->threads = v;
			else
				d->timeout_s = v;
		}
		for (size_t i = 0; i < 3; i++) {
			if (strcmp(k, bools[i]) != 0)
				continue;
			known = true;
			if (!cJSON_IsBool(it))
				return cli_usage("device", "%s.%s: give true or false", where, k);
			bool v = cJSON_IsTrue(it);
			if (i == 0)
				d->use_agent = v;
			else if (i == 1)
				d->compile_on_device = v;
			else
				d->enabled = v;
		}
		if (strcmp(k, "labels") == 0) {
			known = true;
			const cJSON *l;
			if (!cJSON_IsArray(it))
				return cli_usage("device", "%s.labels: give an array of strings",
				                 where);
			cJSON_ArrayForEach(l, it)
			{
				if (!cJSON_IsString(l))
					return cli_usage(
					    "device", "%s.labels: give an array of strings", where);
				if (add_label(d, l->valuestring) != 0)
					return CLI_USAGE;
			}
		}
		if (strcmp(k, "protocol") == 0) {
			known = true;
			if (!cJSON_IsObject(it))
				return cli_usage("device",
				                 "%s.protocol: give an object of protocol settings "
				                 "(docs/devices.md, Measurement protocol)",
				                 where);
			tl_err err = TL_ERR_INIT;
			bool shapes;
			char *text = cJSON_PrintUnformatted(it);
			int rc = text ? device_protocol_text(d->protocol, sizeof d->protocol, text,
			                                     &shapes, &err)
			              : tl_err_set(&err, TL_ENOMEM, "protocol: out of memory");
			free(text);
			if (rc < 0) {
				/* "FILE: devices[0].protocol: $.delay_s: ..." */
				const char *m = err.msg;
				if (strncmp(m, "protocol: ", 10) == 0)
					m += 10;
				return cli_usage("device", "%s.protocol: %s", where, m);
			}
		}
		if (!known)
			return cli_usage(
			    "device",
			    "%s: unknown key '%s' (name, transport, host, port, user, key, "
			    "agent, known_hosts, serial, adb, arch, cc, cflags, "
			    "compile_on_device, run_prefix, threads, labels, work_root, "
			    "timeout, enabled, protocol)",
			    where, k);
	}
	if (d->name[0] == '\0')
		return cli_usage("device", "%s: missing \"name\"", where);
	if (d->transport[0] == '\0')
		tl_strlcpy(d->transport,
		           d->adb_serial[0] ? "adb"
		           : d->host[0]     ? "ssh"
		                            : "local",
		           sizeof d->transport);
	return 0;
}

static int add_file(db_conn *db, const char *file)
{
	tl_err err = TL_ERR_INIT;
	char *text = NULL;
	size_t len = 0;
	if (tl_file_read(&text, &len, file, 16u << 20, &err) < 0)
		return cli_fail(&err);
	cJSON *root = cJSON_ParseWithLength(text, len);
	const char *ep = cJSON_GetErrorPtr();
	long at =
	    root == NULL && ep != NULL && ep >= text && ep <= text + len ? (long)(ep - text) : 0;
	free(text);
	if (root == NULL)
		return cli_usage("device", "--file %s: not valid JSON (near byte %ld)", file, at);
	const cJSON *list =
	    cJSON_IsArray(root) ? root : cJSON_GetObjectItemCaseSensitive(root, "devices");
	if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) == 0) {
		cJSON_Delete(root);
		return cli_usage("device",
		                 "--file %s: expected {\"devices\": [ {...}, ... ]} with at "
		                 "least one device",
		                 file);
	}
	int n = cJSON_GetArraySize(list);
	db_device *devs = calloc((size_t)n, sizeof *devs);
	int rc = CLI_OK;
	if (devs == NULL) {
		cJSON_Delete(root);
		tl_err_set(&err, TL_ENOMEM, "device add: out of memory");
		return cli_fail(&err);
	}
	for (int i = 0; i < n && rc == CLI_OK; i++) {
		if (device_from_json(&devs[i], cJSON_GetArrayItem(list, i), file, i) != 0)
			rc = CLI_USAGE;
		else if (dev_device_check(&devs[i], &err) < 0) {
			tl_err_prefix(&err, "--file %s: devices[%d]", file, i);
			rc = cli_fail(&err);
		}
	}
	cJSON_Delete(root);
	if (rc != CLI_OK) {
		free(devs);
		return rc;
	}
	if (db_begin(db, &err) < 0) {
		free(devs);
		return cli_fail(&err);
	}
	for (int i = 0; i < n; i++) {
		if (db_device_add(db, &devs[i], NULL, &err) < 0) {
			db_rollback(db);
			tl_err_prefix(&err, "--file %s: devices[%d]", file, i);
			free(devs);
			return cli_fail(&err);
		}
	}
	if (db_commit(db, &err) < 0) {
		db_rollback(db);
		free(devs);
		return cli_fail(&err);
	}
	for (int i = 0; i < n; i++)
		printf("added %s (%s)\n", devs[i].name, devs[i].transport);
	free(devs);
	return CLI_OK;
}

static int do_add(db_conn *db, db_device *d, const char *file, const char *protocol_file,
                  int nargs, char **args)
{
	tl_err err = TL_ERR_INIT;
	bool shapes = false;
	if (file) {
		if (nargs > 0)
			return cli_usage("device", "add --file takes no NAME ('%s')", args[0]);
		if (protocol_file)
			return cli_usage("device", "--protocol goes with 'add NAME' (in a --file, "
			                           "give a device \"protocol\": {...})");
		return add_file(db, file);
	}
	if (nargs < 1)
		return cli_usage("device", "add: missing NAME");
	if (nargs > 1)
		return cli_usage("device", "unexpected argument '%s'", args[1]);
	if (strlen(args[0]) > 64 || !dev_name_valid(args[0]))
		return cli_usage(
		    "device",
		    "name '%s': use 1 to 64 of A-Z a-z 0-9 . _ - , starting with a letter "
		    "or digit",
		    args[0]);
	tl_strlcpy(d->name, args[0], sizeof d->name);
	if (protocol_file &&
	    device_protocol_file(d->protocol, sizeof d->protocol, protocol_file, &shapes, &err) < 0) {
		tl_err_prefix(&err, "device add: %s: --protocol", d->name);
		return cli_fail(&err);
	}
	if (d->transport[0] == '\0')
		tl_strlcpy(d->transport,
		           d->adb_serial[0] ? "adb"
		           : d->host[0]     ? "ssh"
		                            : "local",
		           sizeof d->transport);
	if (dev_device_check(d, &err) < 0)
		return cli_fail(&err);
	int64_t id;
	if (db_device_add(db, d, &id, &err) < 0)
		return cli_fail(&err);
	char where[700];
	dev_device_where(d, where, sizeof where);
	printf("added %s (%s, %s)\n", d->name, d->transport, where);
	if (d->protocol[0])
		printf("protocol overrides: %s\n", d->protocol);
	if (shapes)
		printf("note: the protocol's \"shapes\" are kept but not used: bench and run "
		       "measure the shapes of their own flags, protocol file or config\n");
	if (strcmp(d->transport, "local") != 0)
		printf("next: check its host key and accept it with 'tailor device trust %s', then "
		       "'tailor device probe %s'\n",
		       d->name, d->name);
	return CLI_OK;
}

/* `device set-protocol NAME FILE|-`: replace the device's protocol overrides
 * ('-': none); the other settings are written back as they were read. */
static int do_set_protocol(db_conn *db, const char *name, const char *file)
{
	db_device d;
	tl_err err = TL_ERR_INIT;
	bool shapes = false;
	if (db_device_get(db, name, &d, &err) < 0)
		return cli_fail(&err);
	if (strcmp(file, "-") == 0) {
		d.protocol[0] = '\0';
	} else if (device_protocol_file(d.protocol, sizeof d.protocol, file, &shapes, &err) < 0) {
		tl_err_prefix(&err, "device set-protocol: %s", name);
		return cli_fail(&err);
	}
	if (db_device_update(db, &d, &err) < 0)
		return cli_fail(&err);
	if (d.protocol[0])
		printf("%s: protocol overrides %s\n", name, d.protocol);
	else
		printf("%s: no protocol overrides (the defaults)\n", name);
	if (shapes)
		printf("note: the protocol's \"shapes\" are kept but not used: bench and run "
		       "measure the shapes of their own flags, protocol file or config\n");
	return CLI_OK;
}

/* ---- list and show ---------------------------------------------------------------- */

static void json_device(cJSON *o, const db_device *d)
{
	cJSON_AddNumberToObject(o, "id", (double)d->id);
	cJSON_AddStringToObject(o, "name", d->name);
	cJSON_AddStringToObject(o, "transport", d->transport);
#define OPT_STR(k, v)                                                                              \
	do {                                                                                       \
		if ((v)[0])                                                                        \
			cJSON_AddStringToObject(o, k, v);                                          \
		else                                                                               \
			cJSON_AddNullToObject(o, k);                                               \
	} while (0)
	OPT_STR("host", d->host);
	if (d->port)
		cJSON_AddNumberToObject(o, "port", d->port);
	else
		cJSON_AddNullToObject(o, "port");
	OPT_STR("user", d->user);
	OPT_STR("key", d->key_path);
	cJSON_AddBoolToObject(o, "agent", d->use_agent);
	OPT_STR("known_hosts", d->known_hosts);
	OPT_STR("serial", d->adb_serial);
	OPT_STR("adb", d->adb_path);
	OPT_STR("arch", d->arch);
	OPT_STR("cc", d->toolchain_cc);
	OPT_STR("cflags", d->toolchain_flags);
	cJSON_AddBoolToObject(o, "compile_on_device", d->compile_on_device);
	OPT_STR("run_prefix", d->run_prefix);
	if (d->threads)
		cJSON_AddNumberToObject(o, "threads", d->threads);
	else
		cJSON_AddNullToObject(o, "threads");
	cJSON *labels = cJSON_Parse(d->labels);
	cJSON_AddItemToObject(o, "labels", labels ? labels : cJSON_CreateArray());
	cJSON_AddBoolToObject(o, "enabled", d->enabled);
	cJSON_AddStringToObject(o, "status", d->status);
	cJSON_AddNumberToObject(o, "fail_streak", d->fail_streak);
	OPT_STR("last_seen", d->last_seen);
	OPT_STR("host_key", d->host_key);
	OPT_STR("work_root", d->work_root);
	if (d->timeout_s)
		cJSON_AddNumberToObject(o, "timeout", d->timeout_s);
	else
		cJSON_AddNullToObject(o, "timeout");
	cJSON *facts = d->facts[0] ? cJSON_Parse(d->facts) : NULL;
	if (facts)
		cJSON_AddItemToObject(o, "facts", facts);
	else
		cJSON_AddNullToObject(o, "facts");
	cJSON *proto = d->protocol[0] ? cJSON_Parse(d->protocol) : NULL;
	if (proto)
		cJSON_AddItemToObject(o, "protocol", proto);
	else
		cJSON_AddNullToObject(o, "protocol");
#undef OPT_STR
}

static int print_json(cJSON *j)
{
	char *s = cJSON_Print(j);
	cJSON_Delete(j);
	if (s == NULL) {
		tl_err err = TL_ERR_INIT;
		tl_err_set(&err, TL_ENOMEM, "json: out of memory");
		return cli_fail(&err);
	}
	printf("%s\n", s);
	free(s);
	return CLI_OK;
}

static int do_list(db_conn *db, bool json)
{
	db_device *all = NULL;
	size_t n = 0;
	tl_err err = TL_ERR_INIT;
	if (db_device_list(db, &all, &n, &err) < 0)
		return cli_fail(&err);
	if (json) {
		cJSON *arr = cJSON_CreateArray();
		for (size_t i = 0; i < n; i++) {
			cJSON *o = cJSON_CreateObject();
			json_device(o, &all[i]);
			cJSON_AddItemToArray(arr, o);
		}
		free(all);
		return print_json(arr);
	}
	printf("%-16s %-9s %-8s %-8s %-28s %s\n", "NAME", "TRANSPORT", "STATUS", "ENABLED", "WHERE",
	       "ARCH");
	for (size_t i = 0; i < n; i++) {
		char where[700];
		dev_device_where(&all[i], where, sizeof where);
		printf("%-16s %-9s %-8s %-8s %-28s %s\n", all[i].name, all[i].transport,
		       all[i].status, all[i].enabled ? "yes" : "no", where, or_dash(all[i].arch));
	}
	free(all);
	return CLI_OK;
}

/* The canary history of `device show` (k[0..n): db_canary_history, every
 * canary of the device, newest last). The change of a row is its decode
 * latency against the previous canary of the same genome. */
#define SHOW_CANARY_ROWS 10 /* rows printed per canary genome */

static double canary_change(const db_canary *k, size_t i)
{
	size_t j = i;
	while (j > 0 && strcmp(k[j - 1].canary_hash, k[i].canary_hash))
		j--;
	if (j == 0 || !(k[j - 1].decode_ms > 0) || !isfinite(k[i].decode_ms))
		return NAN;
	return k[i].decode_ms / k[j - 1].decode_ms - 1;
}

static void canary_json_num(cJSON *o, const char *key, double v)
{
	if (isfinite(v))
		cJSON_AddNumberToObject(o, key, v);
	else
		cJSON_AddNullToObject(o, key);
}

static cJSON *canary_json(const db_canary *k, size_t n)
{
	cJSON *arr = cJSON_CreateArray();
	for (size_t i = 0; arr && i < n; i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "id", (double)k[i].id);
		cJSON_AddStringToObject(o, "canary_hash", k[i].canary_hash);
		if (k[i].build_hash[0])
			cJSON_AddStringToObject(o, "build_hash", k[i].build_hash);
		else
			cJSON_AddNullToObject(o, "build_hash");
		canary_json_num(o, "run_id", k[i].run_id ? (double)k[i].run_id : NAN);
		cJSON_AddNumberToObject(o, "generation", (double)k[i].generation);
		canary_json_num(o, "measurement_id",
		                k[i].measurement_id ? (double)k[i].measurement_id : NAN);
		canary_json_num(o, "decode_ms", k[i].decode_ms);
		canary_json_num(o, "ttft_ms", k[i].ttft_ms);
		canary_json_num(o, "peak_rss_mb", k[i].peak_rss_mb);
		canary_json_num(o, "decode_change", canary_change(k, i));
		cJSON_AddStringToObject(o, "created_at", k[i].created_at);
		cJSON_AddItemToArray(arr, o);
	}
	return arr;
}

static void canary_print(const db_canary *k, size_t n)
{
	printf("\ncanary history%s\n", n ? "" : "  none (a run with a canary measures one here)");
	for (size_t i = 0; i < n; i++) {
		size_t j = 0, total = 0;
		while (j < i && strcmp(k[j].canary_hash, k[i].canary_hash))
			j++;
		if (j < i)
			continue; /* k[i]'s genome was printed with its first row */
		for (j = i; j < n; j++)
			total += !strcmp(k[j].canary_hash, k[i].canary_hash);
		printf("  canary %.12s: %zu measurement%s", k[i].canary_hash, total,
		       total == 1 ? "" : "s");
		if (total > SHOW_CANARY_ROWS)
			printf(", the newest %d", SHOW_CANARY_ROWS);
		printf("\n");
		printf("    %-16s %6s %5s %10s %10s %8s\n", "TIME (UTC)", "RUN", "GEN", "DECODE MS",
		       "TTFT MS", "CHANGE");
		size_t seen = 0;
		for (j = i; j < n; j++) {
			if (strcmp(k[j].canary_hash, k[i].canary_hash) || ++seen + SHOW_CANARY_ROWS <= total)
				continue;
			char when[17], run[24], change[16], dec[24], ttft[24];
			snprintf(when, sizeof when, "%.16s", k[j].created_at);
			if (strlen(when) > 10 && when[10] == 'T')
				when[10] = ' ';
			if (k[j].run_id)
				snprintf(run, sizeof run, "%lld", (long long)k[j].run_id);
			else
				snprintf(run, sizeof run, "-");
			double c = canary_change(k, j);
			if (isfinite(c))
				snprintf(change, sizeof change, "%+.1f%%", 100 * c);
			else
				snprintf(change, sizeof change, "-");
			snprintf(dec, sizeof dec, "%.3f", k[j].decode_ms);
			snprintf(ttft, sizeof ttft, "%.2f", k[j].ttft_ms);
			if (!isfinite(k[j].decode_ms))
				snprintf(dec, sizeof dec, "-");
			if (!isfinite(k[j].ttft_ms))
				snprintf(ttft, sizeof ttft, "-");
			printf("    %-16s %6s %5lld %10s %10s %8s\n", when, run,
			       (long long)k[j].generation + 1, dec, ttft, change);
		}
	}
}

static int do_show(db_conn *db, const char *name, bool json)
{
	db_device d;
	tl_err err = TL_ERR_INIT;
	db_canary *k = NULL;
	size_t nk = 0;
	if (db_device_get(db, name, &d, &err) < 0 ||
	    db_canary_history(db, d.id, NULL, 0, &k, &nk, &err) < 0)
		return cli_fail(&err);
	if (json) {
		cJSON *o = cJSON_CreateObject();
		json_device(o, &d);
		cJSON_AddItemToObject(o, "canaries", canary_json(k, nk));
		free(k);
		return print_json(o);
	}
	char where[700];
	dev_device_where(&d, where, sizeof where);
	printf("name          %s\n", d.name);
	printf("transport     %s (%s)\n", d.transport, where);
	if (strcmp(d.transport, "local") != 0) {
		printf("auth          %s\n", d.use_agent     ? "ssh-agent"
		                             : d.key_path[0] ? d.key_path
		                                             : "agent or ~/.ssh/id_*");
		printf("known_hosts   %s\n",
		       d.known_hosts[0] ? d.known_hosts : "~/.ssh/known_hosts");
		printf("host key      %s\n", d.host_key[0] ? d.host_key : "not trusted yet");
	}
	if (strcmp(d.transport, "adb") == 0)
		printf("adb           %s -s %s\n", d.adb_path[0] ? d.adb_path : "adb",
		       d.adb_serial);
	printf("arch          %s\n", or_dash(d.arch));
	if (d.compile_on_device)
		printf("toolchain     compile on the device (make)\n");
	else
		printf("toolchain     %s %s\n", d.toolchain_cc[0] ? d.toolchain_cc : "cc",
		       d.toolchain_flags[0] ? d.toolchain_flags : "-O3 -march=native");
	printf("run prefix    %s\n", or_dash(d.run_prefix));
	if (d.threads)
		printf("threads       %d\n", d.threads);
	else
		printf("threads       default\n");
	printf("labels        %s\n", d.labels);
	printf("work root     %s\n", d.work_root[0] ? d.work_root : "default");
	printf("timeout       %d s\n", d.timeout_s ? d.timeout_s : DEV_TIMEOUT_DEFAULT);
	printf("protocol      %s\n", d.protocol[0] ? d.protocol : "defaults (no overrides)");
	printf("enabled       %s\n", d.enabled ? "yes" : "no");
	printf("status        %s (failures in a row: %d)\n", d.status, d.fail_streak);
	printf("last seen     %s\n", or_dash(d.last_seen));
	printf("facts         %s\n", d.facts[0] ? d.facts : "not probed yet (tailor device probe)");
	canary_print(k, nk);
	free(k);
	return CLI_OK;
}

/* ---- probe ---------------------------------------------------------------------- */

static int probe_one(db_conn *db, db_device *d, bool bandwidth, double timeout)
{
	tl_err err = TL_ERR_INIT;
	dev_session *s = NULL;
	dev_lock *lock = NULL;
	char *facts = NULL, *cmd = NULL;
	char wd[DEV_PATH_MAX] = "";
	int rc = dev_lock_acquire(&lock, d, 600, &err);
	if (rc == 0)
		rc = dev_session_open(&s, d, &err);
	if (rc == 0)
		rc = dev_probe_facts(s, &facts, &err);
	if (rc < 0) {
		db_device_set_health(db, d->id, "offline", d->fail_streak + 1, false, NULL);
		db_event_add(db, 0, d->id, "warn", "device.probe", err.msg, NULL, NULL);
		goto out;
	}
	cJSON *fj = cJSON_Parse(facts);
	if (fj == NULL) {
		rc = tl_err_set(&err, TL_EPARSE, "probe: %s: the facts are not JSON", d->name);
		goto out;
	}
	if (bandwidth) {
		char hash[65];
		int stage;
		dev_exec_result r;
		memset(&r, 0, sizeof r);
		rc = cli_dev_harness(s, NULL, NULL, wd, sizeof wd, hash, &stage, &err);
		if (rc == 0)
			rc = dev_prefix_append(&cmd, d->run_prefix, &err);
		if (rc == 0)
			rc = dev_shell_append(&cmd, "./" OP_EMIT_BINARY, &err);
		if (rc == 0)
			rc = dev_shell_append(&cmd, "--probe", &err);
		if (rc == 0 && d->threads) {
			char t[16];
			snprintf(t, sizeof t, "%d", d->threads);
			if ((rc = dev_shell_append(&cmd, "--threads", &err)) == 0)
				rc = dev_shell_append(&cmd, t, &err);
		}
		if (rc == 0)
			rc = dev_exec(s, wd, cmd, timeout, &r, &err);
		if (rc == 0 && r.status != 0)
			rc = tl_err_set(&err, TL_EFAIL,
			                "probe: %s: the bandwidth probe exited with status "
			                "%d: %.200s",
			                d->name, r.status, r.err);
		cJSON *bj = rc == 0 ? cJSON_Parse(r.out) : NULL;
		if (rc == 0 && bj == NULL)
			rc = tl_err_set(&err, TL_EPARSE,
			                "probe: %s: the bandwidth probe printed no JSON: "
			                "'%.60s'",
			                d->name, r.out);
		if (bj) {
			static const char *const keep[] = {"read_gbs",     "copy_gbs", "fma_gflops",
			                                   "dot_gops",     "isa",      "threads",
			                                   "buffer_bytes", "llc_bytes"};
			cJSON *b = cJSON_CreateObject();
			for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
				cJSON *v = cJSON_GetObjectItemCaseSensitive(bj, keep[i]);
				if (v)
					cJSON_AddItemToObject(b, keep[i], cJSON_Duplicate(v, 1));
			}
			cJSON_AddStringToObject(b, "build_id", hash);
			cJSON_AddItemToObject(fj, "bandwidth", b);
			cJSON_Delete(bj);
		}
		dev_exec_result_free(&r);
		if (wd[0] && dev_session_alive(s))
			dev_workdir_remove(s, wd, rc < 0 ? NULL : &err);
		if (rc < 0) {
			cJSON_Delete(fj);
			goto out;
		}
	}
	char *merged = cJSON_PrintUnformatted(fj);
	const cJSON *arch = cJSON_GetObjectItemCaseSensitive(fj, "arch");
	if (merged == NULL)
		rc = tl_err_set(&err, TL_ENOMEM, "probe: out of memory");
	else
		rc = db_device_set_facts(db, d->id, merged,
		                         cJSON_IsString(arch) ? arch->valuestring : NULL, &err);
	if (rc == 0) {
		printf("%s: ", d->name);
		const char *keys[] = {"cpu_model", "cores", "arch", "os", "kernel", "memory_bytes"};
		for (size_t i = 0; i < 6; i++) {
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(fj, keys[i]);
			if (cJSON_IsString(v))
				printf("%s%s", i ? ", " : "", v->valuestring);
			else if (cJSON_IsNumber(v) && i == 1)
				printf(", %d cores", v->valueint);
			else if (cJSON_IsNumber(v))
				printf(", %.1f GiB", v->valuedouble / (1024.0 * 1024 * 1024));
		}
		const cJSON *b = cJSON_GetObjectItemCaseSensitive(fj, "bandwidth");
		const cJSON *rd = cJSON_GetObjectItemCaseSensitive(b, "read_gbs");
		if (cJSON_IsNumber(rd))
			printf(", read %.2f GB/s", rd->valuedouble);
		printf("\n");
		db_event_add(db, 0, d->id, "info", "device.probe", "probed", merged, NULL);
	}
	free(merged);
	cJSON_Delete(fj);
out:
	free(cmd);
	free(facts);
	dev_session_close(s);
	dev_lock_release(lock);
	if (rc < 0)
		return cli_fail(&err);
	return CLI_OK;
}

/* ---- trust ---------------------------------------------------------------------- */

static int do_trust(db_conn *db, const char *name, const char *expect, bool replace, bool yes)
{
	db_device d;
	dev_hostkey hk;
	tl_err err = TL_ERR_INIT;
	if (db_device_get(db, name, &d, &err) < 0)
		return cli_fail(&err);
	if (dev_hostkey_fetch(&d, &hk, &err) < 0)
		return cli_fail(&err);
	char where[700];
	dev_device_where(&d, where, sizeof where);
	printf("%s: %s host key %s\n", where, hk.type, hk.fingerprint);
	if (hk.known == 1) {
		printf("already in %s\n", hk.known_hosts);
	} else {
		if (hk.known == -1 && !replace) {
			tl_err_set(
			    &err, TL_EINVAL,
			    "device trust: %s: %s holds ANOTHER key for this host; if the device "
			    "was "
			    "reinstalled, check the fingerprint above and run again with --replace",
			    name, hk.known_hosts);
			return cli_fail(&err);
		}
		if (!yes && expect == NULL && isatty(STDIN_FILENO)) {
			printf("accept this key for %s? (compare it with 'ssh-keygen -lf "
			       "/etc/ssh/ssh_host_*_key.pub' on the device) [y/N] ",
			       name);
			fflush(stdout);
			char ans[16] = "";
			if (fgets(ans, sizeof ans, stdin) == NULL ||
			    (ans[0] != 'y' && ans[0] != 'Y')) {
				printf("not recorded\n");
				return CLI_FAIL;
			}
		}
		if (dev_hostkey_trust(&d, expect, replace, &hk, &err) < 0)
			return cli_fail(&err);
		printf("recorded in %s\n", hk.known_hosts);
	}
	if (db_device_set_host_key(db, d.id, hk.fingerprint, &err) < 0)
		return cli_fail(&err);
	db_event_add(db, 0, d.id, "info", "device.trust", hk.fingerprint, NULL, NULL);
	return CLI_OK;
}

/* ---- tailor bench --device ---------------------------------------------------------- */

/* How a device measurement runs (docs/devices.md, "Measurement protocol"): the
 * harness is built and pushed once, then profiler/protocol.c's loop runs it
 * once per repeat (--repeat 1, a process per repeat) so that the thermal gate,
 * the delay and the temperatures before and after apply to every repeat; a
 * process start costs a few ms outside the timed region (the harness times
 * only fill, prefill and decode). Each shape of the protocol is one
 * measurement row; every run of every round is a measurement_repeats row. */

/* What one device's rows are measured and stored under: the genome, the
 * arguments, and the device's protocol (bench_protocol: the defaults, the
 * device's overrides, the command's or run's protocol, the flags) with the
 * text and hash stored per shape. Each job has its own, so two devices with
 * different overrides each store what they really ran. The pool's context
 * (bench_health: mu and db only) is one more. */
typedef struct bench_ctx {
	pthread_mutex_t *mu; /* shared by every job: the db connection and stdout */
	db_conn *db;
	const cli_dev_bench_args *a;
	const char *arch_text;
	char arch_hash[65];
	prof_protocol proto;             /* this device's                      */
	char *protocol[PROF_MAX_SHAPES]; /* stored per shape: JSON object      */
	char protocol_hash[PROF_MAX_SHAPES][65];
} bench_ctx;

typedef struct bench_job {
	const db_device *dev; /* in the caller's array                       */
	bench_ctx c;          /* its context: its protocol, freed by the caller */
	bool done, ok;
	int n_ok;             /* shapes measured                             */
	int64_t measurement_id[PROF_MAX_SHAPES]; /* 0: not stored           */
	char failure[16];
	char error[TL_ERR_MSG_MAX];
	cJSON *result[PROF_MAX_SHAPES]; /* per shape when measured: the last
	                                 * harness JSON with the protocol's medians
	                                 * and a "protocol_result" object     */
} bench_job;

static double jnum(const cJSON *j, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
	return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static int64_t jint(const cJSON *j, const char *key)
{
	double v = jnum(j, key);
	return isfinite(v) && v >= 0 ? (int64_t)v : -1;
}

/* The protocol of a bench on device d, each layer over the previous one
 * (docs/devices.md, "Measurement protocol"): the defaults with the shape of
 * --prompt/--gen/--depth; the device's overrides but their shapes
 * (cli_device_protocol); the --protocol file (its keys win, its shapes
 * replace the flags'); the search's bench.protocol (its shapes are not used);
 * then --warmup/--repeats/--cv/--min-time and --threads. */
static int bench_protocol(prof_protocol *p, const cli_dev_bench_args *a, const db_device *d,
                          tl_err *err)
{
	int rc;
	prof_protocol_init(p);
	p->n_shapes = 1;
	p->shapes[0] = (prof_shape){a->prompt, a->gen, a->depth};
	if ((rc = cli_device_protocol(p, d, err)) < 0)
		return rc;
	if (a->protocol_file)
		rc = prof_protocol_load(p, a->protocol_file, err);
	if (rc == 0 && a->protocol_json) {
		prof_shape keep = p->shapes[0];
		/* the search measures its bench.prompt/gen/depth */
		if ((rc = prof_protocol_parse(p, a->protocol_json, err)) == 0) {
			p->n_shapes = 1;
			p->shapes[0] = keep;
		}
	}
	if (rc < 0) {
		/* it may clash with the device's settings (a max_repeats below the
		 * device's repeats): say which device */
		if (d->protocol[0])
			tl_err_prefix(err, "device %s (over its own protocol)", d->name);
		return rc;
	}
	int64_t v;
	double x;
	if (a->repeat > 1 && a->repeats == NULL) { /* the search's bench.repeat */
		p->repeats = (int)a->repeat;
		if (p->max_repeats < p->repeats)
			p->max_repeats = p->repeats;
	}
	if (a->warmup) {
		if ((rc = tl_parse_i64(&v, a->warmup, 0, PROF_MAX_WARMUP, "--warmup", err)) < 0)
			return rc;
		p->warmup = (int)v;
	}
	if (a->repeats) {
		if ((rc = tl_parse_i64(&v, a->repeats, 1, PROF_MAX_REPEATS, "--repeats", err)) < 0)
			return rc;
		p->repeats = (int)v;
		if (p->max_repeats < p->repeats)
			p->max_repeats = p->repeats;
	}
	if (a->cv) {
		if ((rc = tl_parse_double(&x, a->cv, "--cv", err)) < 0)
			return rc;
		if (!(x >= 0 && x <= 10))
			return tl_err_set(err, TL_EUSAGE, "--cv: '%s': must be in 0..10 (0: never "
			                  "re-measure)", a->cv);
		p->cv_threshold = x;
	}
	if (a->min_time) {
		if ((rc = tl_parse_double(&x, a->min_time, "--min-time", err)) < 0)
			return rc;
		if (!(x >= 0 && x <= 86400))
			return tl_err_set(err, TL_EUSAGE, "--min-time: '%s': must be in 0..86400 seconds",
			                  a->min_time);
		p->min_time_s = x;
	}
	if (a->threads)
		p->threads = (int)a->threads;
	return prof_protocol_check(p, err);
}

/* What a measurement row stores as its protocol: the canonical protocol with
 * that one shape, plus the harness, quant, kv and seed; and its hash. */
static int bench_protocols(bench_ctx *c, tl_err *err)
{
	for (size_t i = 0; i < c->proto.n_shapes; i++) {
		prof_protocol one = c->proto;
		one.n_shapes = 1;
		one.shapes[0] = c->proto.shapes[i];
		char *s = prof_protocol_json(&one);
		cJSON *j = s ? cJSON_Parse(s) : NULL;
		free(s);
		if (j == NULL)
			return tl_err_set(err, TL_ENOMEM, "bench: out of memory");
		cJSON_AddStringToObject(j, "harness", "tailor-bench");
		cJSON_AddStringToObject(j, "quant", c->a->quant);
		cJSON_AddStringToObject(j, "kv", c->a->kv);
		cJSON_AddNumberToObject(j, "seed", (double)c->a->seed);
		c->protocol[i] = cJSON_PrintUnformatted(j);
		cJSON_Delete(j);
		if (c->protocol[i] == NULL)
			return tl_err_set(err, TL_ENOMEM, "bench: out of memory");
		tl_sha256_hex(c->protocol[i], strlen(c->protocol[i]), c->protocol_hash[i]);
	}
	return 0;
}

static void stats_json(cJSON *o, const char *key, const prof_stats *s)
{
	cJSON *x = cJSON_AddObjectToObject(o, key);
	if (x == NULL || s->n == 0)
		return;
	const char *k[] = {"median", "p95", "min", "max", "mean", "cv"};
	double v[] = {s->median, s->p95, s->min, s->max, s->mean, s->cv};
	cJSON_AddNumberToObject(x, "n", (double)s->n);
	for (int i = 0; i < 6; i++)
		if (isfinite(v[i]))
			cJSON_AddNumberToObject(x, k[i], v[i]);
}

/* The protocol's outcome as a JSON object (stored in the fingerprint under
 * "protocol_result", and in the printed result). */
static cJSON *result_json(const prof_result *r)
{
	cJSON *o = cJSON_CreateObject();
	if (o == NULL)
		return NULL;
	cJSON_AddNumberToObject(o, "repeats", (double)(r->n - r->first));
	cJSON_AddNumberToObject(o, "runs_stored", (double)r->n);
	cJSON_AddNumberToObject(o, "first_repeat_index", (double)r->first);
	cJSON_AddNumberToObject(o, "warmups", r->warmups);
	cJSON_AddNumberToObject(o, "rounds", r->rounds);
	cJSON_AddNumberToObject(o, "remeasured", r->remeasured);
	cJSON_AddBoolToObject(o, "cv_ok", r->cv_ok);
	cJSON *rc = cJSON_AddArrayToObject(o, "round_cv");
	for (int i = 0; rc && i < r->rounds; i++)
		cJSON_AddItemToArray(rc, isfinite(r->round_cv[i]) ? cJSON_CreateNumber(r->round_cv[i])
		                                                   : cJSON_CreateNull());
	cJSON_AddNumberToObject(o, "gate_wait_s", r->gate_wait_s);
	cJSON_AddNumberToObject(o, "gate_gave_up", r->gate_gave_up);
	stats_json(o, "decode_ms_p50", &r->decode_ms_p50);
	stats_json(o, "decode_ms_p95", &r->decode_ms_p95);
	stats_json(o, "ttft_ms", &r->ttft_ms);
	stats_json(o, "prefill_tok_s", &r->prefill_tok_s);
	stats_json(o, "decode_tok_s", &r->decode_tok_s);
	stats_json(o, "peak_rss_bytes", &r->peak_rss_bytes);
	return o;
}

/* The printed and returned result of a shape: the last harness JSON with its
 * figures replaced by the protocol's medians. */
static cJSON *summary_json(const prof_result *r)
{
	const prof_sample *last = &r->samples[r->n - 1];
	cJSON *j = last->raw ? cJSON_Parse(last->raw) : NULL;
	if (j == NULL)
		return NULL;
	cJSON_DeleteItemFromObjectCaseSensitive(j, "runs");
	struct {
		const char *key;
		double v;
	} f[] = {{"ttft_ms", r->ttft_ms.median},
	         {"prefill_tok_s", r->prefill_tok_s.median},
	         {"decode_ms_p50", r->decode_ms_p50.median},
	         {"decode_ms_p95", r->decode_ms_p95.median},
	         {"decode_tok_s", r->decode_tok_s.median},
	         {"peak_rss_bytes", r->peak_rss_bytes.median},
	         {"repeat", (double)(r->n - r->first)}};
	for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
		cJSON_DeleteItemFromObjectCaseSensitive(j, f[i].key);
		cJSON_AddItemToObject(j, f[i].key, isfinite(f[i].v) ? cJSON_CreateNumber(f[i].v)
		                                                    : cJSON_CreateNull());
	}
	cJSON *pr = result_json(r);
	if (pr)
		cJSON_AddItemToObject(j, "protocol_result", pr);
	return j;
}

/* Store the outcome of one shape (ctx->mu held). res NULL: a failure (or a
 * job not run), recorded with job->failure / job->error. */
static void bench_record(bench_ctx *c, bench_job *job, size_t shape, const db_device *d,
                         const char *build_hash, const char *fingerprint, const prof_result *res)
{
	db_measurement m;
	tl_err err = TL_ERR_INIT;
	const prof_shape *sh = &c->proto.shapes[shape];
	db_measurement_init(&m);
	m.genome_hash = c->arch_hash;
	m.device_id = d->id;
	m.build_hash = build_hash && *build_hash ? build_hash : NULL;
	m.quant = c->a->quant;
	m.prompt_len = sh->prompt;
	m.gen_len = sh->gen;
	m.depth = sh->depth;
	m.protocol = c->protocol[shape];
	m.protocol_hash = c->protocol_hash[shape];
	m.device_fingerprint = fingerprint;
	db_repeat *reps = NULL;
	size_t n_reps = 0;
	if (res) {
		const prof_sample *last = &res->samples[res->n - 1];
		cJSON *lj = last->raw ? cJSON_Parse(last->raw) : NULL;
		m.status = "ok";
		m.threads = jint(lj, "threads");
		cJSON_Delete(lj);
		m.repeats = (int64_t)(res->n - res->first);
		m.ttft_ms = res->ttft_ms.median;
		m.prefill_tok_s = res->prefill_tok_s.median;
		m.decode_ms_p50 = res->decode_ms_p50.median;
		m.decode_ms_p95 = res->decode_ms_p95.median;
		m.decode_tok_s = res->decode_tok_s.median;
		m.peak_rss_bytes = isfinite(res->peak_rss_bytes.median)
		                       ? (int64_t)llround(res->peak_rss_bytes.median)
		                       : -1;
		m.weight_bytes = isfinite(last->weight_bytes) ? (int64_t)last->weight_bytes : -1;
		m.cache_bytes = isfinite(last->cache_bytes) ? (int64_t)last->cache_bytes : -1;
		m.cv = res->decode_ms_p50.cv;
		m.remeasured = res->remeasured;
		/* the spread behind the medians (non-finite: NULL, as bind does) */
		m.ttft_ms_rep_p95 = res->ttft_ms.p95;
		m.ttft_ms_rep_min = res->ttft_ms.min;
		m.ttft_ms_rep_max = res->ttft_ms.max;
		m.ttft_cv = res->ttft_ms.cv;
		m.decode_ms_rep_p95 = res->decode_ms_p50.p95;
		m.decode_ms_rep_min = res->decode_ms_p50.min;
		m.decode_ms_rep_max = res->decode_ms_p50.max;
		m.peak_rss_rep_min = isfinite(res->peak_rss_bytes.min)
		                         ? (int64_t)llround(res->peak_rss_bytes.min)
		                         : -1;
		m.peak_rss_rep_max = isfinite(res->peak_rss_bytes.max)
		                         ? (int64_t)llround(res->peak_rss_bytes.max)
		                         : -1;
		reps = calloc(res->n, sizeof *reps);
		for (size_t i = 0; reps && i < res->n; i++) {
			const prof_sample *s = &res->samples[i];
			db_repeat *p = &reps[n_reps++];
			db_repeat_init(p);
			p->raw = s->raw ? s->raw : "{}";
			p->ttft_ms = s->ttft_ms;
			p->prefill_tok_s = s->prefill_tok_s;
			p->decode_ms_p50 = s->decode_ms_p50;
			p->decode_ms_p95 = s->decode_ms_p95;
			p->decode_tok_s = s->decode_tok_s;
			p->peak_rss_bytes = isfinite(s->peak_rss_bytes) ? (int64_t)s->peak_rss_bytes : -1;
			p->temp_before_c = s->temp_before_c;
			p->temp_after_c = s->temp_after_c;
		}
		if (reps == NULL)
			tl_err_set(&err, TL_ENOMEM, "out of memory");
	} else {
		m.status = "failed";
		m.error = job->error;
		m.failure = job->failure;
	}
	int64_t id = 0;
	if ((res && reps == NULL) ||
	    db_measurement_add(c->db, &m, reps, n_reps, &id, &err) < 0) {
		/* keep the first reason; say that it could not be stored */
		char prev[200];
		tl_strlcpy(prev, res ? "measured" : job->error, sizeof prev);
		if (res) {
			job->ok = false;
			tl_strlcpy(job->failure, "db", sizeof job->failure);
		}
		snprintf(job->error, sizeof job->error, "%.200s (not stored: %.280s)", prev, err.msg);
		id = 0;
	}
	job->measurement_id[shape] = id;
	free(reps);
}

/* The device's health after a job (ctx->mu held). */
static void bench_health_after(bench_ctx *c, const bench_job *job, const db_device *d,
                               bool reachable)
{
	db_device cur;
	tl_err err = TL_ERR_INIT;
	if (db_device_get_id(c->db, d->id, &cur, &err) == 0) {
		if (job->ok)
			db_device_set_health(c->db, d->id, "online", 0, true, NULL);
		else
			db_device_set_health(c->db, d->id, reachable ? "online" : cur.status,
			                     cur.fail_streak + 1, reachable, NULL);
	}
}

static void job_fail(bench_job *job, const char *failure, const tl_err *err)
{
	job->ok = false;
	tl_strlcpy(job->failure, failure, sizeof job->failure);
	tl_strlcpy(job->error, err->code ? err->msg : "failed (no detail recorded)",
	           sizeof job->error);
}

/* Add build_hash, run prefix, the temperatures of the first and last runs and
 * the protocol's outcome (pr, taken) to the device's fingerprint. */
static char *fingerprint_json(const char *fp, const db_device *d, const char *build_hash,
                              const char *prefix, double t_before, double t_after, cJSON *pr)
{
	cJSON *j = fp ? cJSON_Parse(fp) : NULL;
	if (j == NULL)
		j = cJSON_CreateObject();
	if (j == NULL) {
		cJSON_Delete(pr);
		return NULL;
	}
	cJSON_AddStringToObject(j, "device", d->name);
	cJSON_AddStringToObject(j, "transport", d->transport);
	if (build_hash && *build_hash)
		cJSON_AddStringToObject(j, "build_hash", build_hash);
	if (prefix && *prefix)
		cJSON_AddStringToObject(j, "run_prefix", prefix);
	cJSON_AddStringToObject(j, "toolchain",
	                        d->compile_on_device ? "on device"
	                        : d->toolchain_cc[0] ? d->toolchain_cc
	                                             : "cc");
	if (isfinite(t_before))
		cJSON_AddNumberToObject(j, "temp_before_c", t_before);
	if (isfinite(t_after))
		cJSON_AddNumberToObject(j, "temp_after_c", t_after);
	if (pr)
		cJSON_AddItemToObject(j, "protocol_result", pr);
	char *s = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	return s;
}

/* prof_ops over a device session: one harness run, one thermometer read. */
typedef struct bench_meas {
	dev_session *s;
	const db_device *d;
	const char *wd;
	const char *cmd;  /* the harness command line, quoted               */
	double timeout_s;
	char failure[16]; /* the kind of the failure a run returned         */
	bool no_temp;     /* a read failed: do not try again                */
} bench_meas;

#define BENCH_TEMP_CMD "cat /sys/class/thermal/thermal_zone*/temp 2>/dev/null; true"

/* The hottest zone, as dev_fingerprint's probe reads it (millidegrees,
 * readings outside -50..200 °C ignored); NaN when none is readable. */
static double meas_temp(void *vctx)
{
	bench_meas *m = vctx;
	if (m->no_temp || !dev_session_alive(m->s))
		return NAN;
	dev_exec_result r;
	tl_err err = TL_ERR_INIT;
	double best = NAN;
	if (dev_exec(m->s, NULL, BENCH_TEMP_CMD, 15, &r, &err) < 0 || r.status != 0) {
		m->no_temp = true;
		dev_exec_result_free(&r);
		return NAN;
	}
	for (char *p = r.out; p && *p;) {
		char *end;
		long long v = strtoll(p, &end, 10);
		if (end != p && v >= -50000 && v <= 200000 && (isnan(best) || v / 1000.0 > best))
			best = (double)v / 1000.0;
		p = strchr(end, '\n');
		if (p)
			p++;
	}
	if (isnan(best))
		m->no_temp = true; /* no zone: do not ask before every run */
	dev_exec_result_free(&r);
	return best;
}

static int meas_run(void *vctx, prof_sample *out, tl_err *err)
{
	bench_meas *m = vctx;
	dev_exec_result r;
	int rc = dev_exec(m->s, m->wd, m->cmd, m->timeout_s, &r, err);
	if (rc == TL_ETIMEOUT) {
		tl_strlcpy(m->failure, "timeout", sizeof m->failure);
	} else if (rc < 0) {
		tl_strlcpy(m->failure, "lost", sizeof m->failure);
	} else if (r.status != 0) {
		char line[240] = "no message";
		size_t n = r.err_len;
		while (n > 0 && (r.err[n - 1] == '\n' || r.err[n - 1] == ' '))
			n--;
		size_t st = n;
		while (st > 0 && r.err[st - 1] != '\n')
			st--;
		if (n > st)
			snprintf(line, sizeof line, "%.*s", (int)(n - st), r.err + st);
		rc = tl_err_set(err, TL_EFAIL, "the harness exited with status %d: %s", r.status, line);
		tl_strlcpy(m->failure, "harness", sizeof m->failure);
	} else {
		cJSON *j = cJSON_ParseWithLength(r.out, r.out_len);
		const cJSON *f = j ? cJSON_GetObjectItemCaseSensitive(j, "format") : NULL;
		if (!cJSON_IsObject(j) || !cJSON_IsString(f) || strcmp(f->valuestring, "tailor-bench") ||
		    !isfinite(jnum(j, "ttft_ms"))) {
			char head[64];
			size_t k = 0;
			for (const char *p = r.out; *p && k < 48; p++)
				head[k++] = (*p >= 0x20 && *p < 0x7f) ? *p : ' ';
			head[k] = '\0';
			rc = tl_err_set(err, TL_EPARSE, "the harness's output is not its JSON result: '%s%s'",
			                head, r.out_len > 48 ? "..." : "");
			tl_strlcpy(m->failure, "output", sizeof m->failure);
		} else {
			out->ttft_ms = jnum(j, "ttft_ms");
			out->prefill_tok_s = jnum(j, "prefill_tok_s");
			out->decode_ms_p50 = jnum(j, "decode_ms_p50");
			out->decode_ms_p95 = jnum(j, "decode_ms_p95");
			out->decode_tok_s = jnum(j, "decode_tok_s");
			out->peak_rss_bytes = jnum(j, "peak_rss_bytes");
			out->weight_bytes = jnum(j, "weight_bytes");
			out->cache_bytes = jnum(j, "cache_bytes");
			out->raw = r.out; /* taken */
			r.out = NULL;
		}
		cJSON_Delete(j);
	}
	dev_exec_result_free(&r);
	return rc;
}

int cli_dev_measure(dev_session *s, const db_device *d, const char *wd,
                    const char *const *hargs, const prof_protocol *p, double timeout_s,
                    prof_result *res, char failure[16], tl_err *err)
{
	char *cmd = NULL;
	const char *prefix = p->pin[0] ? p->pin : d->run_prefix;
	memset(res, 0, sizeof *res);
	failure[0] = '\0';
	int rc = dev_prefix_append(&cmd, prefix, err);
	if (rc == 0)
		rc = dev_shell_append(&cmd, "./" OP_EMIT_BINARY, err);
	for (size_t i = 0; rc == 0 && hargs[i]; i++)
		rc = dev_shell_append(&cmd, hargs[i], err);
	if (rc < 0) {
		free(cmd);
		tl_strlcpy(failure, "harness", 16);
		return rc;
	}
	bench_meas m = {.s = s, .d = d, .wd = wd, .cmd = cmd, .timeout_s = timeout_s};
	prof_ops ops = {.run = meas_run, .temp = meas_temp, .ctx = &m};
	rc = prof_measure(res, p, &ops, err);
	if (rc < 0)
		tl_strlcpy(failure, m.failure[0] ? m.failure : "harness", 16);
	free(cmd);
	return rc;
}

static int bench_run(void *vctx, dev_session **session, const db_device *d, void *vjob)
{
	bench_job *job = vjob;
	bench_ctx *c = &job->c; /* the device's protocol */
	const cli_dev_bench_args *a = c->a;
	(void)vctx;
	const prof_protocol *p = &c->proto;
	tl_err err = TL_ERR_INIT;
	char wd[DEV_PATH_MAX] = "", build_hash[65] = "";
	char *fp = NULL, *cmd = NULL;
	double t_before = NAN;
	int ret = DEV_JOB_OK, stage = 0;
	size_t shape = 0;
	bool reachable = false, recorded = false;
	const char *prefix = p->pin[0] ? p->pin : d->run_prefix;
	job->ok = true;

	if (*session == NULL && dev_session_open(session, d, &err) < 0) {
		job_fail(job, "connect", &err);
		ret = DEV_JOB_DEVICE;
		goto record;
	}
	if (dev_fingerprint(*session, &fp, &t_before, &err) < 0) {
		job_fail(job, dev_session_alive(*session) ? "connect" : "lost", &err);
		ret = DEV_JOB_DEVICE;
		goto record;
	}
	reachable = true;
	if (cli_dev_harness(*session, c->arch_text, a->quant, wd, sizeof wd, build_hash, &stage,
	                    &err) < 0) {
		bool build = stage == CLI_STAGE_BUILD;
		job_fail(job,
		         build                         ? "build"
		         : dev_session_alive(*session) ? "transfer"
		                                       : "lost",
		         &err);
		ret = build ? DEV_JOB_FAILED : DEV_JOB_DEVICE;
		goto cleanup;
	}
	for (shape = 0; shape < p->n_shapes; shape++) {
		const prof_shape *sh = &p->shapes[shape];
		char num[5][24];
		long long threads = p->threads ? p->threads : d->threads;
		snprintf(num[0], 24, "%lld", (long long)sh->prompt);
		snprintf(num[1], 24, "%lld", (long long)sh->gen);
		snprintf(num[2], 24, "%lld", (long long)sh->depth);
		snprintf(num[3], 24, "%llu", (unsigned long long)a->seed);
		snprintf(num[4], 24, "%lld", threads);
		const char *args[] = {"./" OP_EMIT_BINARY, "--prompt", num[0], "--gen", num[1],
		                      "--depth", num[2], "--quant", a->quant, "--kv", a->kv, "--seed",
		                      num[3], "--repeat", "1", threads > 0 ? "--threads" : NULL, num[4]};
		free(cmd);
		cmd = NULL;
		int rc = dev_prefix_append(&cmd, prefix, &err);
		for (size_t i = 0; rc == 0 && i < sizeof args / sizeof args[0] && args[i]; i++)
			rc = dev_shell_append(&cmd, args[i], &err);
		if (rc < 0) {
			job_fail(job, "harness", &err);
			ret = DEV_JOB_FAILED;
			break;
		}
		bench_meas m = {.s = *session, .d = d, .wd = wd, .cmd = cmd, .timeout_s = a->timeout_s};
		prof_ops ops = {.run = meas_run, .temp = meas_temp, .ctx = &m};
		prof_result res;
		rc = prof_measure(&res, p, &ops, &err);
		if (rc < 0) {
			tl_err_prefix(&err, "bench: %s", d->name);
			job_fail(job, m.failure[0] ? m.failure : "harness", &err);
			ret = strcmp(job->failure, "harness") && strcmp(job->failure, "output")
			          ? DEV_JOB_DEVICE
			          : DEV_JOB_FAILED;
			prof_result_free(&res);
			break;
		}
		char *fpj = fingerprint_json(fp, d, build_hash, prefix, res.samples[0].temp_before_c,
		                             res.samples[res.n - 1].temp_after_c, result_json(&res));
		cJSON *sum = summary_json(&res);
		pthread_mutex_lock(c->mu);
		bench_record(c, job, shape, d, build_hash, fpj, &res);
		pthread_mutex_unlock(c->mu);
		free(fpj);
		prof_result_free(&res);
		if (!job->ok || sum == NULL) {
			cJSON_Delete(sum);
			if (job->ok) {
				tl_err e = TL_ERR_INIT;
				tl_err_set(&e, TL_ENOMEM, "bench: %s: out of memory", d->name);
				job_fail(job, "output", &e);
			}
			ret = DEV_JOB_FAILED;
			recorded = true; /* its row is stored (or the db refused it) */
			break;
		}
		job->result[shape] = sum;
		job->n_ok++;
	}
cleanup:
	if (wd[0] && *session && dev_session_alive(*session)) {
		tl_err e3 = TL_ERR_INIT;
		if (dev_workdir_remove(*session, wd, &e3) < 0 && job->ok) {
			job_fail(job, "lost", &e3);
			ret = DEV_JOB_DEVICE;
		}
	}
record:
	pthread_mutex_lock(c->mu);
	if (!job->ok && !recorded && shape < p->n_shapes) {
		char *fpj = fingerprint_json(fp, d, build_hash, prefix, t_before, NAN, NULL);
		bench_record(c, job, shape, d, build_hash, fpj, NULL);
		free(fpj);
	}
	bench_health_after(c, job, d, reachable);
	job->done = true;
	pthread_mutex_unlock(c->mu);
	free(fp);
	free(cmd);
	return job->ok ? DEV_JOB_OK : ret == DEV_JOB_OK ? DEV_JOB_FAILED : ret;
}

static void bench_abandon(void *vctx, const db_device *d, void *vjob, const char *why)
{
	bench_job *job = vjob;
	bench_ctx *c = &job->c;
	tl_err err = TL_ERR_INIT;
	(void)vctx;
	tl_err_set(&err, TL_EFAIL, "bench: %s: not run: %s", job->dev->name, why);
	job_fail(job, strstr(why, "in use") ? "busy" : "offline", &err);
	pthread_mutex_lock(c->mu);
	bench_record(c, job, 0, d ? d : job->dev, NULL, NULL, NULL);
	bench_health_after(c, job, d ? d : job->dev, false);
	job->done = true;
	pthread_mutex_unlock(c->mu);
}
static void bench_health(void *vctx, const db_device *d, const char *status, int streak)
{
	bench_ctx *c = vctx; /* the pool's: mu and db */
	char msg[200];
	pthread_mutex_lock(c->mu);
	db_device_set_health(c->db, d->id, status, streak, false, NULL);
	snprintf(msg, sizeof msg, "device %s is %s after %d failures in a row", d->name, status,
	         streak);
	db_event_add(c->db, 0, d->id, strcmp(status, "offline") ? "info" : "warn",
	             strcmp(status, "offline") ? "device.online" : "device.offline", msg, NULL,
	             NULL);
	pthread_mutex_unlock(c->mu);
}

static void print_job(const bench_job *job, bool json)
{
	const prof_protocol *p = &job->c.proto;
	if (json) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "device", job->dev->name);
		cJSON_AddStringToObject(o, "status", job->ok ? "ok" : "failed");
		if (job->measurement_id[0])
			cJSON_AddNumberToObject(o, "measurement_id", (double)job->measurement_id[0]);
		if (job->result[0])
			cJSON_AddItemToObject(o, "result", cJSON_Duplicate(job->result[0], 1));
		if (p->n_shapes > 1) {
			cJSON *ids = cJSON_AddArrayToObject(o, "measurement_ids");
			cJSON *rs = cJSON_AddArrayToObject(o, "results");
			for (size_t i = 0; i < p->n_shapes; i++) {
				cJSON_AddItemToArray(ids, job->measurement_id[i]
				                              ? cJSON_CreateNumber((double)job->measurement_id[i])
				                              : cJSON_CreateNull());
				cJSON_AddItemToArray(rs, job->result[i] ? cJSON_Duplicate(job->result[i], 1)
				                                        : cJSON_CreateNull());
			}
		}
		if (!job->ok) {
			cJSON_AddStringToObject(o, "failure", job->failure);
			cJSON_AddStringToObject(o, "error", job->error);
		}
		char *s = cJSON_PrintUnformatted(o);
		if (s)
			printf("%s\n", s);
		free(s);
		cJSON_Delete(o);
		return;
	}
	for (size_t i = 0; i < p->n_shapes; i++) {
		const cJSON *j = job->result[i];
		if (j == NULL)
			break;
		char shape[80] = "";
		if (p->n_shapes > 1)
			snprintf(shape, sizeof shape, "P%lld N%lld D%lld: ", (long long)p->shapes[i].prompt,
			         (long long)p->shapes[i].gen, (long long)p->shapes[i].depth);
		double rss = jnum(j, "peak_rss_bytes");
		printf("%-16s %sTTFT %.2f ms, decode %.3f ms/token p50 (p95 %.3f), %.1f tok/s",
		       job->dev->name, shape, jnum(j, "ttft_ms"), jnum(j, "decode_ms_p50"),
		       jnum(j, "decode_ms_p95"), jnum(j, "decode_tok_s"));
		if (isfinite(rss))
			printf(", peak RSS %.1f MiB", rss / 1048576.0);
		printf(" [measurement %lld]\n", (long long)job->measurement_id[i]);
		/* the protocol's outcome, on a second line */
		const cJSON *pr = cJSON_GetObjectItemCaseSensitive(j, "protocol_result");
		const cJSON *dp = cJSON_GetObjectItemCaseSensitive(pr, "decode_ms_p50");
		double cv = jnum(dp, "cv"), rm = jnum(pr, "remeasured");
		printf("%-16s   %.0f repeats after %.0f warm-up%s, decode p50 CV ", "",
		       jnum(pr, "repeats"), jnum(pr, "warmups"), jnum(pr, "warmups") == 1 ? "" : "s");
		if (isfinite(cv))
			printf("%.1f%%", 100 * cv);
		else
			printf("-");
		if (p->cv_threshold > 0)
			printf(" (threshold %.1f%%%s)", 100 * p->cv_threshold,
			       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pr, "cv_ok"))
			           ? ""
			           : ", NOT met");
		printf(", re-measured %.0f time%s", rm, rm == 1 ? "" : "s");
		double tw = jnum(pr, "gate_wait_s");
		if (tw > 0)
			printf(", waited %.0f s to cool", tw);
		printf("\n");
	}
	if (!job->ok)
		printf("%-16s FAILED (%s): %s [measurement %lld]\n", job->dev->name, job->failure,
		       job->error, (long long)job->measurement_id[job->n_ok < (int)p->n_shapes ? job->n_ok : 0]);
}

int cli_bench_devices(cli_ctx *ctx, const char *genome_arg, const char *const *names, int n,
                      const cli_dev_bench_args *a)
{
	tl_err err = TL_ERR_INIT;
	genome g;
	genome_arch *arch = NULL;
	char *arch_text = NULL, *gtext = NULL;
	db_conn *db = NULL;
	db_device *devs = NULL;
	bench_job *jobs = NULL;
	dev_pool *pool = NULL;
	pthread_mutex_t mu;
	bench_ctx c; /* what the jobs share; the pool's context */
	int rc = CLI_OK;

	memset(&c, 0, sizeof c);
	for (int i = 0; i < n; i++)
		for (int k = 0; k < i; k++)
			if (strcmp(names[i], names[k]) == 0)
				return cli_usage("bench", "--device %s given twice", names[i]);
	if (cli_load_genome(&g, genome_arg, &err) < 0)
		return cli_fail(&err);
	arch = malloc(sizeof *arch);
	devs = calloc((size_t)n, sizeof *devs);
	jobs = calloc((size_t)n, sizeof *jobs);
	if (arch == NULL || devs == NULL || jobs == NULL) {
		tl_err_set(&err, TL_ENOMEM, "bench: out of memory");
		goto fail;
	}
	if (genome_decode(arch, &g, &err) < 0) {
		tl_err_prefix(&err, "genome %s", genome_arg);
		goto fail;
	}
	arch_text = genome_arch_describe(arch);
	gtext = genome_to_text(&g);
	if (arch_text == NULL || gtext == NULL) {
		tl_err_set(&err, TL_ENOMEM, "bench: out of memory");
		goto fail;
	}
	tl_sha256_hex(arch_text, strlen(arch_text), c.arch_hash);
	genome_stats st;
	genome_stats_compute(&st, arch, 2, 0);

	if (db_open(&db, db_path_resolve(ctx->db_flag), 0, &err) < 0)
		goto fail;
	for (int i = 0; i < n; i++) {
		if (db_device_get(db, names[i], &devs[i], &err) < 0)
			goto fail;
		if (!devs[i].enabled) {
			tl_err_set(&err, TL_EINVAL,
			           "bench: device %s is disabled (tailor device enable %s)",
			           names[i], names[i]);
			goto fail;
		}
		jobs[i].dev = &devs[i];
	}
	if (db_genome_ensure(db, c.arch_hash, gtext, st.params, &err) < 0)
		goto fail;

	c.mu = &mu;
	c.db = db;
	c.a = a;
	c.arch_text = arch_text;
	/* Each device's protocol (what makes two measurements comparable): the
	 * command's over the device's own settings. All are checked before
	 * anything runs. */
	for (int i = 0; i < n; i++) {
		jobs[i].c = c;
		if (bench_protocol(&jobs[i].c.proto, a, &devs[i], &err) < 0 ||
		    bench_protocols(&jobs[i].c, &err) < 0) {
			if (err.code == TL_EUSAGE) {
				rc = cli_usage("bench", "%s", err.msg);
				goto out;
			}
			goto fail;
		}
	}

	pthread_mutex_init(&mu, NULL);
	signal(SIGPIPE, SIG_IGN);
	dev_pool_opts o = {.max_fail_streak = DEV_FAIL_STREAK_DEFAULT,
	                   .max_attempts = 1,
	                   .lock_wait_s = a->timeout_s > 600 ? a->timeout_s : 600,
	                   .run = bench_run,
	                   .abandon = bench_abandon,
	                   .health = bench_health,
	                   .ctx = &c};
	if (dev_pool_create(&pool, devs, (size_t)n, &o, &err) < 0)
		goto fail_mu;
	for (int i = 0; i < n; i++)
		if (dev_pool_submit(pool, &jobs[i], devs[i].id, &err) < 0)
			goto fail_mu;
	if (!a->json && isatty(STDERR_FILENO))
		fprintf(stderr, "tailor: measuring on %d device%s...\r", n, n > 1 ? "s" : "");
	int prc = dev_pool_run(pool, &err);
	if (!a->json && isatty(STDERR_FILENO))
		fprintf(stderr, "\033[K");
	int failed = 0;
	for (int i = 0; i < n; i++) {
		if (!jobs[i].done) {
			tl_err e = TL_ERR_INIT;
			tl_err_set(&e, TL_EFAIL, "bench: %s: not run", devs[i].name);
			job_fail(&jobs[i], "offline", &e);
		}
		print_job(&jobs[i], a->json);
		failed += !jobs[i].ok;
	}
	fflush(stdout);
	if (prc < 0)
		rc = cli_fail(&err);
	else if (failed) {
		fprintf(stderr,
		        "tailor: bench: %d of %d device%s failed (reasons above; stored as "
		        "failed measurements)\n",
		        failed, n, n > 1 ? "s" : "");
		rc = CLI_FAIL;
	}
	goto out_mu;
fail_mu:
	rc = cli_fail(&err);
out_mu:
	pthread_mutex_destroy(&mu);
	goto out;
fail:
	rc = cli_fail(&err);
out:
	dev_pool_free(pool);
	for (int i = 0; jobs && i < n; i++)
		for (int k = 0; k < PROF_MAX_SHAPES; k++) {
			cJSON_Delete(jobs[i].result[k]);
			free(jobs[i].c.protocol[k]);
		}
	db_close(db);
	free(jobs);
	free(devs);
	free(gtext);
	free(arch_text);
	free(arch);
	return rc;
}

/* ---- the command ------------------------------------------------------------------ */

int cmd_device(int argc, char **argv, cli_ctx *ctx)
{
	static const struct option longopts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {"db", required_argument, NULL, 'D'},
	    {"json", no_argument, NULL, 'j'},
	    {"transport", required_argument, NULL, 'T'},
	    {"host", required_argument, NULL, 'H'},
	    {"port", required_argument, NULL, 'p'},
	    {"user", required_argument, NULL, 'u'},
	    {"key", required_argument, NULL, 'k'},
	    {"agent", no_argument, NULL, 'A'},
	    {"known-hosts", required_argument, NULL, 'K'},
	    {"serial", required_argument, NULL, 's'},
	    {"adb", required_argument, NULL, 'a'},
	    {"arch", required_argument, NULL, 'r'},
	    {"cc", required_argument, NULL, 'c'},
	    {"cflags", required_argument, NULL, 'f'},
	    {"compile-on-device", no_argument, NULL, 'C'},
	    {"run-prefix", required_argument, NULL, 'P'},
	    {"threads", required_argument, NULL, 't'},
	    {"label", required_argument, NULL, 'l'},
	    {"work-root", required_argument, NULL, 'w'},
	    {"timeout", required_argument, NULL, 'o'},
	    {"disabled", no_argument, NULL, 'x'},
	    {"file", required_argument, NULL, 'F'},
	    {"no-bandwidth", no_argument, NULL, 'B'},
	    {"fingerprint", required_argument, NULL, 'G'},
	    {"replace", no_argument, NULL, 'R'},
	    {"yes", no_argument, NULL, 'y'},
	    {"protocol", required_argument, NULL, 'Q'},
	    {NULL, 0, NULL, 0},
	};
	const char *db_flag = ctx->db_flag, *file = NULL, *expect = NULL, *protocol_file = NULL;
	bool json = false, bandwidth = true, replace = false, yes = false;
	bool add_opts = false; /* an option only `add` takes */
	long long timeout = -1;
	db_device d;
	int c;

	if (argc > 1 && strcmp(argv[1], "profile-ops") == 0)
		return cmd_profile_ops(argc - 1, argv + 1, ctx);
	db_device_init(&d);
	d.transport[0] = '\0';
	cli_opt_reset();
	while ((c = cli_opt_next(argc, argv, "hj", longopts, "device")) != -1) {
		long long v;
		int bad = 0;
		if (strchr("THpukAKsarcfCPtlwxFQ", c))
			add_opts = true;
		switch (c) {
		case 'h':
			device_help(stdout);
			return CLI_OK;
		case 'D':
			db_flag = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'T':
			bad = set_text(d.transport, sizeof d.transport, optarg, "--transport");
			break;
		case 'H':
			bad = set_text(d.host, sizeof d.host, optarg, "--host");
			break;
		case 'p':
			if (cli_int_arg(&v, optarg, 1, 65535, "device", "--port") < 0)
				return CLI_USAGE;
			d.port = (int)v;
			break;
		case 'u':
			bad = set_text(d.user, sizeof d.user, optarg, "--user");
			break;
		case 'k':
			bad = set_text(d.key_path, sizeof d.key_path, optarg, "--key");
			break;
		case 'A':
			d.use_agent = true;
			break;
		case 'K':
			bad =
			    set_text(d.known_hosts, sizeof d.known_hosts, optarg, "--known-hosts");
			break;
		case 's':
			bad = set_text(d.adb_serial, sizeof d.adb_serial, optarg, "--serial");
			break;
		case 'a':
			bad = set_text(d.adb_path, sizeof d.adb_path, optarg, "--adb");
			break;
		case 'r':
			bad = set_text(d.arch, sizeof d.arch, optarg, "--arch");
			break;
		case 'c':
			bad = set_text(d.toolchain_cc, sizeof d.toolchain_cc, optarg, "--cc");
			break;
		case 'f':
			bad = set_text(d.toolchain_flags, sizeof d.toolchain_flags, optarg,
			               "--cflags");
			break;
		case 'C':
			d.compile_on_device = true;
			break;
		case 'P':
			bad = set_text(d.run_prefix, sizeof d.run_prefix, optarg, "--run-prefix");
			break;
		case 't':
			if (cli_int_arg(&v, optarg, 1, 256, "device", "--threads") < 0)
				return CLI_USAGE;
			d.threads = (int)v;
			break;
		case 'l':
			bad = add_label(&d, optarg);
			break;
		case 'w':
			bad = set_text(d.work_root, sizeof d.work_root, optarg, "--work-root");
			break;
		case 'o':
			if (cli_int_arg(&timeout, optarg, 1, 24 * 3600, "device", "--timeout") < 0)
				return CLI_USAGE;
			break;
		case 'x':
			d.enabled = false;
			break;
		case 'F':
			file = optarg;
			break;
		case 'Q':
			protocol_file = optarg;
			break;
		case 'B':
			bandwidth = false;
			break;
		case 'G':
			expect = optarg;
			break;
		case 'R':
			replace = true;
			break;
		case 'y':
			yes = true;
			break;
		default:
			return CLI_USAGE;
		}
		if (bad)
			return CLI_USAGE;
	}
	if (optind >= argc)
		return cli_usage("device", "missing subcommand (add, list, show, probe, trust, "
		                           "remove, enable, disable or set-protocol)");
	const char *sub = argv[optind];
	int nargs = argc - optind - 1;
	char **args = argv + optind + 1;
	static const char *const subs[] = {"add",    "list",   "show",    "probe",       "trust",
	                                   "remove", "enable", "disable", "set-protocol"};
	size_t k;
	for (k = 0; k < sizeof subs / sizeof subs[0]; k++)
		if (strcmp(sub, subs[k]) == 0)
			break;
	if (k == sizeof subs / sizeof subs[0])
		return cli_usage("device",
		                 "unknown subcommand '%s' (add, list, show, probe, trust, "
		                 "remove, enable, disable or set-protocol)",
		                 sub);
	bool is_setp = strcmp(sub, "set-protocol") == 0;
	bool is_add = strcmp(sub, "add") == 0;
	if (add_opts && !is_add)
		return cli_usage("device",
		                 "connection and toolchain options go with 'add' (to change "
		                 "a device, remove it and add it again)");
	if (is_add && timeout > 3600)
		return cli_usage("device", "--timeout %lld: not in 1..3600 s", timeout);
	if (is_add && timeout > 0)
		d.timeout_s = (int)timeout;
	if (json && strcmp(sub, "list") && strcmp(sub, "show"))
		return cli_usage("device", "--json goes with list and show");
	if (!bandwidth && strcmp(sub, "probe"))
		return cli_usage("device", "--no-bandwidth goes with probe");
	if ((expect || replace || yes) && strcmp(sub, "trust"))
		return cli_usage("device", "--fingerprint, --replace and --yes go with trust");
	if (timeout > 0 && !is_add && strcmp(sub, "probe"))
		return cli_usage("device", "--timeout goes with add and probe");
	if (!strcmp(sub, "list") && nargs > 0)
		return cli_usage("device", "unexpected argument '%s'", args[0]);
	if (is_setp && nargs != 2)
		return nargs < 2 ? cli_usage("device", "set-protocol: give NAME and FILE ('-': none)")
		                 : cli_usage("device", "unexpected argument '%s'", args[2]);
	if (!is_add && !is_setp && strcmp(sub, "list") && strcmp(sub, "probe") && nargs != 1)
		return nargs == 0 ? cli_usage("device", "%s: missing NAME", sub)
		                  : cli_usage("device", "unexpected argument '%s'", args[1]);
	if (!strcmp(sub, "probe") && nargs < 1)
		return cli_usage("device", "probe: missing NAME");

	tl_err err = TL_ERR_INIT;
	db_conn *db = NULL;
	if (open_db(&db, db_flag, &err) < 0)
		return cli_fail(&err);
	signal(SIGPIPE, SIG_IGN); /* a dead peer is an error from libssh2, not a signal */
	int rc = CLI_OK;
	if (is_add) {
		rc = do_add(db, &d, file, protocol_file, nargs, args);
	} else if (is_setp) {
		rc = do_set_protocol(db, args[0], args[1]);
	} else if (!strcmp(sub, "list")) {
		rc = do_list(db, json);
	} else if (!strcmp(sub, "show")) {
		rc = do_show(db, args[0], json);
	} else if (!strcmp(sub, "probe")) {
		for (int i = 0; i < nargs; i++) {
			db_device p;
			tl_err_clear(&err);
			int r =
			    db_device_get(db, args[i], &p, &err) < 0
			        ? cli_fail(&err)
			        : probe_one(db, &p, bandwidth, timeout > 0 ? (double)timeout : 600);
			if (r != CLI_OK && rc == CLI_OK)
				rc = r;
		}
	} else if (!strcmp(sub, "trust")) {
		rc = do_trust(db, args[0], expect, replace, yes);
	} else if (!strcmp(sub, "remove")) {
		if (db_device_remove(db, args[0], &err) < 0)
			rc = cli_fail(&err);
		else
			printf("removed %s\n", args[0]);
	} else {
		bool en = !strcmp(sub, "enable");
		db_device g;
		if (db_device_get(db, args[0], &g, &err) < 0 ||
		    db_device_set_enabled(db, g.id, en, &err) < 0)
			rc = cli_fail(&err);
		else
			printf("%s %s\n", en ? "enabled" : "disabled", args[0]);
	}
	db_close(db);
	return rc;
}

/* ---- one measurement for the search engine -------------------------------------------- */

int cli_measure_device(const char *db_path, const char *name, const char *arch_text,
                       const char *genome_text, const cli_dev_bench_args *a, cJSON **result,
                       tl_err *err)
{
	db_conn *db = NULL;
	db_device dev;
	bench_job job;
	bench_ctx *c = &job.c; /* the device's; also the pool's context */
	pthread_mutex_t mu;
	dev_pool *pool = NULL;
	int rc;
	*result = NULL;
	memset(&job, 0, sizeof job);
	/* its own connection: the engine calls this from one thread per device */
	if ((rc = db_open(&db, db_path, 0, err)) < 0)
		return rc;
	if ((rc = db_device_get(db, name, &dev, err)) < 0)
		goto out;
	if (!dev.enabled) {
		rc = tl_err_set(err, TL_EINVAL, "device %s is disabled (tailor device enable %s)", name,
		                name);
		goto out;
	}
	tl_sha256_hex(arch_text, strlen(arch_text), c->arch_hash);
	if ((rc = db_genome_ensure(db, c->arch_hash, genome_text, -1, err)) < 0)
		goto out;
	c->a = a;
	/* the run's protocol over the device's own settings */
	if ((rc = bench_protocol(&c->proto, a, &dev, err)) < 0 || (rc = bench_protocols(c, err)) < 0)
		goto out;
	/* the engine reads one result: one shape */
	c->proto.n_shapes = 1;
	pthread_mutex_init(&mu, NULL);
	c->mu = &mu;
	c->db = db;
	c->arch_text = arch_text;
	job.dev = &dev;
	dev_pool_opts o = {.max_fail_streak = DEV_FAIL_STREAK_DEFAULT,
	                   .max_attempts = 1,
	                   .lock_wait_s = a->timeout_s > 600 ? a->timeout_s : 600,
	                   .run = bench_run,
	                   .abandon = bench_abandon,
	                   .health = bench_health,
	                   .ctx = c};
	if ((rc = dev_pool_create(&pool, &dev, 1, &o, err)) == 0 &&
	    (rc = dev_pool_submit(pool, &job, dev.id, err)) == 0)
		rc = dev_pool_run(pool, err);
	pthread_mutex_destroy(&mu);
	if (rc == 0 && (!job.done || !job.ok))
		rc = tl_err_set(err, TL_EFAIL, "%s", job.done ? job.error : "device not reached");
	if (rc == 0) {
		*result = job.result[0];
		job.result[0] = NULL;
		cJSON_AddNumberToObject(*result, "measurement_id", (double)job.measurement_id[0]);
	}
out:
	dev_pool_free(pool);
	for (int k = 0; k < PROF_MAX_SHAPES; k++) {
		cJSON_Delete(job.result[k]);
		free(c->protocol[k]);
	}
	db_close(db);
	return rc;
}

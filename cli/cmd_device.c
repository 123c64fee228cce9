/*
 * cli/cmd_device.c: `tailor device`: the lab operator's commands (register,
 * list, show, probe, trust, remove, enable, disable devices; docs/devices.md)
 * and the printing of `tailor bench --device` (the measuring is
 * profiler/measure.h's).
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
#include "measure.h"
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
	rc = prof_device_protocol_text(out, n, text, shapes, err);
	free(text);
	if (rc < 0)
		tl_err_prefix(err, "%s", path);
	return rc;
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
			int rc = text ? prof_device_protocol_text(d->protocol, sizeof d->protocol, text,
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
	char *facts = NULL;
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
		cJSON *b = NULL;
		if ((rc = prof_bandwidth_probe(s, d, timeout, &b, &err)) < 0) {
			cJSON_Delete(fj);
			goto out;
		}
		cJSON_AddItemToObject(fj, "bandwidth", b);
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

static void print_job(const prof_job *job, bool json)
{
	const prof_protocol *p = &job->proto;
	cJSON *res[PROF_MAX_SHAPES] = {NULL};
	for (int i = 0; i < job->n_ok; i++)
		res[i] = prof_measurement_json(&job->m[i]);
	if (json) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "device", job->dev->name);
		cJSON_AddStringToObject(o, "status", job->ok ? "ok" : "failed");
		int64_t id0 = job->n_ok ? job->m[0].id : job->failed_id;
		if (id0)
			cJSON_AddNumberToObject(o, "measurement_id", (double)id0);
		if (res[0])
			cJSON_AddItemToObject(o, "result", cJSON_Duplicate(res[0], 1));
		if (p->n_shapes > 1) {
			cJSON *ids = cJSON_AddArrayToObject(o, "measurement_ids");
			cJSON *rs = cJSON_AddArrayToObject(o, "results");
			for (size_t i = 0; i < p->n_shapes; i++) {
				int64_t id = (int)i < job->n_ok ? job->m[i].id
				             : (int)i == job->n_ok ? job->failed_id
				                                   : 0;
				cJSON_AddItemToArray(ids, id ? cJSON_CreateNumber((double)id) : cJSON_CreateNull());
				cJSON_AddItemToArray(rs, res[i] ? cJSON_Duplicate(res[i], 1) : cJSON_CreateNull());
			}
		}
		if (!job->ok) {
			cJSON_AddStringToObject(o, "failure", prof_failure_name(job->failure));
			cJSON_AddStringToObject(o, "error", job->error);
		}
		char *s = cJSON_PrintUnformatted(o);
		if (s)
			printf("%s\n", s);
		free(s);
		cJSON_Delete(o);
		for (int i = 0; i < PROF_MAX_SHAPES; i++)
			cJSON_Delete(res[i]);
		return;
	}
	for (int i = 0; i < job->n_ok; i++) {
		const prof_measurement *m = &job->m[i];
		const prof_result *r = &m->res;
		char shape[80] = "";
		if (p->n_shapes > 1)
			snprintf(shape, sizeof shape, "P%lld N%lld D%lld: ", (long long)p->shapes[i].prompt,
			         (long long)p->shapes[i].gen, (long long)p->shapes[i].depth);
		printf("%-16s %sTTFT %.2f ms, decode %.3f ms/token p50 (p95 %.3f), %.1f tok/s",
		       job->dev->name, shape, m->ttft_ms, m->decode_ms_p50, m->decode_ms_p95,
		       m->decode_tok_s);
		if (isfinite(m->peak_rss_bytes))
			printf(", peak RSS %.1f MiB", m->peak_rss_bytes / 1048576.0);
		printf(" [measurement %lld]\n", (long long)m->id);
		/* the protocol's outcome, on a second line */
		double cv = r->decode_ms_p50.cv;
		printf("%-16s   %zu repeats after %d warm-up%s, decode p50 CV ", "", r->n - r->first,
		       r->warmups, r->warmups == 1 ? "" : "s");
		if (isfinite(cv))
			printf("%.1f%%", 100 * cv);
		else
			printf("-");
		if (p->cv_threshold > 0)
			printf(" (threshold %.1f%%%s)", 100 * p->cv_threshold, r->cv_ok ? "" : ", NOT met");
		printf(", re-measured %d time%s", r->remeasured, r->remeasured == 1 ? "" : "s");
		if (r->gate_wait_s > 0)
			printf(", waited %.0f s to cool", r->gate_wait_s);
		printf("\n");
	}
	for (int i = 0; i < PROF_MAX_SHAPES; i++)
		cJSON_Delete(res[i]);
	if (!job->ok)
		printf("%-16s FAILED (%s): %s [measurement %lld]\n", job->dev->name,
		       prof_failure_name(job->failure), job->error, (long long)job->failed_id);
}

int cli_bench_devices(cli_ctx *ctx, const char *genome_arg, const char *const *names, int n,
                      const prof_bench_args *a, bool json)
{
	tl_err err = TL_ERR_INIT;
	genome g;
	genome_arch *arch = NULL;
	char *arch_text = NULL, *gtext = NULL;
	db_conn *db = NULL;
	db_device *devs = NULL;
	prof_job *jobs = NULL;
	dev_pool *pool = NULL;
	pthread_mutex_t mu;
	bool mu_ok = false;
	prof_lab lab = {&mu, NULL, 0};
	int rc = CLI_OK;

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
	genome_stats st;
	genome_stats_compute(&st, arch, 2, 0);

	if (db_open(&db, db_path_resolve(ctx->db_flag), 0, &err) < 0)
		goto fail;
	lab.db = db;
	for (int i = 0; i < n; i++) {
		if (db_device_get(db, names[i], &devs[i], &err) < 0)
			goto fail;
		if (!devs[i].enabled) {
			tl_err_set(&err, TL_EINVAL,
			           "bench: device %s is disabled (tailor device enable %s)",
			           names[i], names[i]);
			goto fail;
		}
	}
	/* Each device's protocol (what makes two measurements comparable): the
	 * command's over the device's own settings. All are checked before
	 * anything runs. */
	for (int i = 0; i < n; i++) {
		if (prof_job_init(&jobs[i], a, &devs[i], arch_text, &err) < 0) {
			if (err.code == TL_EUSAGE) {
				rc = cli_usage("bench", "%s", err.msg);
				goto out;
			}
			goto fail;
		}
	}
	if (db_genome_ensure(db, jobs[0].arch_hash, gtext, st.params, &err) < 0)
		goto fail;

	pthread_mutex_init(&mu, NULL);
	mu_ok = true;
	signal(SIGPIPE, SIG_IGN);
	dev_pool_opts o;
	prof_pool_opts(&o, &lab, a->timeout_s);
	if (dev_pool_create(&pool, devs, (size_t)n, &o, &err) < 0)
		goto fail;
	for (int i = 0; i < n; i++)
		if (dev_pool_submit(pool, &jobs[i], devs[i].id, &err) < 0)
			goto fail;
	if (!json && isatty(STDERR_FILENO))
		fprintf(stderr, "tailor: measuring on %d device%s...\r", n, n > 1 ? "s" : "");
	int prc = dev_pool_run(pool, &err);
	if (!json && isatty(STDERR_FILENO))
		fprintf(stderr, "\033[K");
	int failed = 0;
	for (int i = 0; i < n; i++) {
		if (!jobs[i].done) {
			jobs[i].ok = false;
			jobs[i].failure = PROF_FAIL_OFFLINE;
			snprintf(jobs[i].error, sizeof jobs[i].error, "bench: %s: not run", devs[i].name);
		}
		print_job(&jobs[i], json);
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
	goto out;
fail:
	rc = cli_fail(&err);
out:
	dev_pool_free(pool);
	if (mu_ok)
		pthread_mutex_destroy(&mu);
	for (int i = 0; jobs && i < n; i++)
		prof_job_free(&jobs[i]);
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

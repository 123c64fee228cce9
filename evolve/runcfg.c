/*
 * evolve/runcfg.c: the metrics of a stored run config (see runcfg.h).
 * Workload: one config of a few kilobytes per tailor frontier / export /
 * report.
 */
#include "runcfg.h"

#include "db_runs.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* o["metric"] copied into dst when it is a string that fits. */
static bool metric_of(const cJSON *o, char dst[EV_METRIC_MAX])
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "metric");
	if (!cJSON_IsString(m) || strlen(m->valuestring) >= EV_METRIC_MAX)
		return false;
	tl_strlcpy(dst, m->valuestring, EV_METRIC_MAX);
	return true;
}

static double number_or_nan(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

int evo_run_metrics_parse(evo_run_metrics **out, const char *config_json, const char *source,
                          tl_err *err)
{
	*out = NULL;
	cJSON *root = cJSON_Parse(config_json ? config_json : "{}");
	if (root == NULL)
		return tl_err_set(err, TL_EPARSE, "%s: stored config is not JSON", source);
	evo_run_metrics *m = calloc(1, sizeof *m);
	if (m != NULL)
		m->config_text = cJSON_Print(root);
	if (m == NULL || m->config_text == NULL) {
		cJSON_Delete(root);
		evo_run_metrics_free(m);
		return tl_err_set(err, TL_ENOMEM, "%s: out of memory", source);
	}
	const cJSON *o, *objectives = cJSON_GetObjectItemCaseSensitive(root, "objectives");
	const cJSON *constraints = cJSON_GetObjectItemCaseSensitive(root, "constraints");
	cJSON_ArrayForEach(o, objectives) {
		if (m->n_obj == EV_MAX_OBJ)
			break;
		evo_run_objective *ob = &m->obj[m->n_obj];
		if (!metric_of(o, ob->metric))
			continue;
		const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "direction");
		ob->maximize = cJSON_IsString(d) && !strcmp(d->valuestring, "max");
		m->n_obj++;
	}
	cJSON_ArrayForEach(o, constraints) {
		if (m->n_con == EV_MAX_CON)
			break;
		evo_run_constraint *cn = &m->con[m->n_con];
		if (!metric_of(o, cn->metric))
			continue;
		cn->max = number_or_nan(o, "max");
		cn->min = number_or_nan(o, "min");
		m->n_con++;
	}
	cJSON_Delete(root);
	*out = m;
	return 0;
}

int evo_run_metrics_load(evo_run_metrics **out, db_conn *db, int64_t run_id, tl_err *err)
{
	db_run r;
	char source[32];

	*out = NULL;
	int ret = db_run_get(db, run_id, &r, err);
	if (ret < 0)
		return ret;
	snprintf(source, sizeof source, "run %lld", (long long)run_id);
	ret = evo_run_metrics_parse(out, r.config, source, err);
	db_run_clear(&r);
	return ret;
}

void evo_run_metrics_free(evo_run_metrics *m)
{
	if (m == NULL)
		return;
	cJSON_free(m->config_text);
	free(m);
}

size_t evo_run_metrics_names(const evo_run_metrics *m,
                             const char *names[EV_MAX_OBJ + EV_MAX_CON])
{
	size_t n = 0;
	for (int i = 0; i < m->n_obj; i++)
		names[n++] = m->obj[i].metric;
	for (int i = 0; i < m->n_con; i++)
		names[n++] = m->con[i].metric;
	return n;
}

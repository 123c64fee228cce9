/*
 * quality/mad.c: the six MAD synthetic tasks (Poli et al. 2024, "Mechanistic
 * Design and Scaling of Hybrid Architectures"; settings and generators of
 * the mad-lab repository, configs/tasks/ (yml) and mad/data/instances.py),
 * written here in C from their definitions, with PCG32 for randomness:
 *
 *  task            vocab  input  train   test   what
 *  recall            16    127  12,800  1,280  key-value pairs, every repeated
 *                                               key's value probed (multi-query)
 *  fuzzy_recall      16    128  12,800  1,280  keys and values of 1-3 tokens
 *  noisy_recall      32    127  12,800  1,280  20% of pairs are noise tokens
 *  selective_copy    16    256  12,800  1,280  16 tokens among blanks, copied
 *                                               after the copy token
 *  compression       16     32  12,800  1,280  31 tokens + a compression token;
 *                                               the last state decodes them all
 *  memorization     256     32     256  1,280  a fixed key->value map, 16 keys
 *                                               per sequence
 * Inputs are MAD's (a recall sequence of 128 tokens is shifted by one, so the
 * model sees 127). Training targets are MAD's: every next token for the
 * recall tasks, the probed tokens otherwise; test targets the probed tokens.
 * Differences from mad-lab, on purpose: PCG32 instead of numpy's generator
 * (same distributions, other draws); selective copying draws the blank
 * positions from the task's generator (mad-lab uses numpy's global one);
 * compression's decoder is the model's own final norm and tied head applied
 * to the last state plus a sin-cos position code (mad-lab puts a two-layer
 * MLP there).
 */
#include "quality.h"

#include <string.h>

static const char *const task_names[QUAL_MAD_TASKS] = {
	"recall", "fuzzy_recall", "noisy_recall", "selective_copy", "compression", "memorization",
};

const char *qual_mad_task_name(int task)
{
	return task >= 0 && task < QUAL_MAD_TASKS ? task_names[task] : "?";
}

int qual_mad_task_lookup(const char *name)
{
	for (int t = 0; t < QUAL_MAD_TASKS; t++)
		if (strcmp(name, task_names[t]) == 0)
			return t;
	return -1;
}

qual_mad_spec qual_mad_baseline(int task)
{
	qual_mad_spec s = {.vocab = 16, .seq_len = 127, .train_examples = 12800,
	                   .test_examples = 1280, .k_motif = 1, .v_motif = 1, .multi_query = true};
	switch (task) {
	case QUAL_MAD_FUZZY:
		s.seq_len = 128;
		s.k_motif = s.v_motif = 3;
		break;
	case QUAL_MAD_NOISY:
		s.vocab = 32;
		s.noise_vocab = 16;
		s.frac_noise = 0.2;
		break;
	case QUAL_MAD_SELCOPY:
		s.seq_len = 256;
		s.n_copy = 16;
		break;
	case QUAL_MAD_COMPRESS:
		s.seq_len = 32;
		s.autoencode = true;
		break;
	case QUAL_MAD_MEMORIZE:
		s.vocab = 256;
		s.seq_len = 32;
		s.train_examples = 256;
		break;
	default:
		break;
	}
	return s;
}

/* Shift a raw sequence of n+1 tokens into inputs/targets of n. */
static void shift_out(const int32_t *raw, const int32_t *rtg, int n, bool train, int32_t *in,
                      int32_t *tg)
{
	for (int i = 0; i < n; i++) {
		in[i] = raw[i];
		tg[i] = train ? raw[i + 1] : rtg[i + 1];
	}
}

#define MAX_RAW 4096

static void recall(const qual_mad_spec *s, bool train, tl_rng *rng, int32_t *in, int32_t *tg)
{
	int32_t raw[MAX_RAW], rtg[MAX_RAW];
	int n = 0;
	int copy_prefix = s->vocab - 1;
	int nsv = (s->multi_query ? s->vocab : s->vocab - 1) - s->noise_vocab;
	int nk = nsv / 2, nv = nsv - nk;
	int map[MAX_RAW];
	bool presented[MAX_RAW];
	for (int k = 0; k < nk; k++) {
		map[k] = -1;
		presented[k] = false;
	}
	int npairs = (s->seq_len + 1) / 2; /* mad-lab's seq_len / 2 */
	int not_noise = (int)tl_rng_bounded(rng, (uint32_t)npairs);
	for (int i = 0; i < npairs - 1; i++) {
		bool noise = s->frac_noise > 0 && i != not_noise && tl_rng_double(rng) < s->frac_noise;
		if (noise) {
			for (int r = 0; r < 2; r++) {
				raw[n] = nsv + (int32_t)tl_rng_bounded(rng, (uint32_t)s->noise_vocab);
				rtg[n++] = QUAL_IGNORE;
			}
			continue;
		}
		int k = (int)tl_rng_bounded(rng, (uint32_t)nk);
		if (map[k] < 0)
			map[k] = nk + (int)tl_rng_bounded(rng, (uint32_t)nv);
		raw[n] = k;
		rtg[n++] = QUAL_IGNORE;
		raw[n] = map[k];
		rtg[n++] = presented[k] && s->multi_query ? map[k] : QUAL_IGNORE;
		presented[k] = true;
	}
	int cand[MAX_RAW], nc = 0;
	for (int k = 0; k < nk; k++)
		if (presented[k])
			cand[nc++] = k;
	int kp;
	if (nc > 0) {
		kp = cand[tl_rng_bounded(rng, (uint32_t)nc)];
	} else { /* every pair was noise (mad-lab would fail): a fresh key */
		kp = (int)tl_rng_bounded(rng, (uint32_t)nk);
		map[kp] = nk + (int)tl_rng_bounded(rng, (uint32_t)nv);
	}
	if (!s->multi_query) {
		raw[n] = copy_prefix;
		rtg[n++] = QUAL_IGNORE;
	}
	raw[n] = kp;
	rtg[n++] = QUAL_IGNORE;
	raw[n] = map[kp];
	rtg[n++] = map[kp];
	shift_out(raw, rtg, n - 1, train, in, tg);
}

/* A key or value motif: up to 8 distinct tokens from [base, base + n). */
typedef struct motif {
	int len;
	int32_t t[8];
} motif;

static motif draw_motif(tl_rng *rng, int size, int base, int n)
{
	motif m = {size, {0}};
	int pool[256];
	for (int i = 0; i < n; i++)
		pool[i] = base + i;
	for (int i = 0; i < size; i++) { /* a uniform ordered draw without repeats */
		int j = i + (int)tl_rng_bounded(rng, (uint32_t)(n - i));
		int tmp = pool[i];
		pool[i] = pool[j];
		pool[j] = tmp;
		m.t[i] = pool[i];
	}
	return m;
}

static int motif_code(const motif *m)
{
	int c = m->len;
	for (int i = 0; i < m->len; i++)
		c = c * 17 + m->t[i] + 1;
	return c;
}

static bool motif_eq(const motif *a, const motif *b)
{
	return a->len == b->len && memcmp(a->t, b->t, (size_t)a->len * sizeof(int32_t)) == 0;
}

/* The key -> value map of one sequence: a few dozen keys, a linear list. */
typedef struct motif_map {
	int n;
	int code[512];
	motif v[512];
} motif_map;

static motif *map_find(motif_map *m, int code)
{
	for (int i = 0; i < m->n; i++)
		if (m->code[i] == code)
			return &m->v[i];
	return NULL;
}

static void map_set(motif_map *m, int code, const motif *v)
{
	motif *e = map_find(m, code);
	if (e == NULL && m->n < 512) {
		m->code[m->n] = code;
		e = &m->v[m->n++];
	}
	if (e)
		*e = *v;
}

static void fuzzy(const qual_mad_spec *s, bool train, tl_rng *rng, int32_t *in, int32_t *tg)
{
	motif_map map;
	map.n = 0;
	int32_t raw[MAX_RAW], rtg[MAX_RAW];
	int n = 0, L = s->seq_len;
	int copy_prefix = s->vocab - 1;
	int pad = s->multi_query ? s->vocab - 1 : s->vocab - 2;
	int nsv = (s->multi_query ? s->vocab - 1 : s->vocab - 2) - s->noise_vocab;
	int nk = nsv / 2, nv = nsv - nk;
	int kps = train ? 1 + (int)tl_rng_bounded(rng, (uint32_t)s->k_motif) : s->k_motif;
	int vps = 1 + (int)tl_rng_bounded(rng, (uint32_t)s->v_motif);
	motif kp = draw_motif(rng, kps, 0, nk), vp = draw_motif(rng, vps, nk, nv);
	int kvps = kps + vps;
	int probe_idx = (int)tl_rng_bounded(rng, (uint32_t)(L - 2 * kvps));
	bool probe_added = false;
	while (n < L - kvps - (s->k_motif + s->v_motif)) {
		int ks = train ? 1 + (int)tl_rng_bounded(rng, (uint32_t)s->k_motif) : s->k_motif;
		int vs = 1 + (int)tl_rng_bounded(rng, (uint32_t)s->v_motif);
		if (n >= probe_idx && !probe_added) {
			for (int i = 0; i < kp.len; i++) {
				raw[n] = kp.t[i];
				rtg[n++] = QUAL_IGNORE;
			}
			for (int i = 0; i < vp.len; i++) {
				raw[n] = vp.t[i];
				rtg[n++] = QUAL_IGNORE;
			}
			map_set(&map, motif_code(&kp), &vp);
			probe_added = true;
			continue;
		}
		if (s->frac_noise > 0 && tl_rng_double(rng) < s->frac_noise) {
			for (int i = 0; i < ks + vs; i++) {
				raw[n] = nsv + (int32_t)tl_rng_bounded(rng, (uint32_t)s->noise_vocab);
				rtg[n++] = QUAL_IGNORE;
			}
			continue;
		}
		motif k = draw_motif(rng, ks, 0, nk), v;
		int code = motif_code(&k);
		motif *prev = map_find(&map, code);
		bool seen = prev != NULL;
		if (motif_eq(&k, &kp)) {
			v = vp;
			probe_added = true;
		} else if (seen) {
			v = *prev;
		} else {
			v = draw_motif(rng, vs, nk, nv);
		}
		for (int i = 0; i < k.len; i++) {
			raw[n] = k.t[i];
			rtg[n++] = QUAL_IGNORE;
		}
		for (int i = 0; i < v.len; i++) {
			raw[n] = v.t[i];
			rtg[n++] = seen && s->multi_query ? v.t[i] : QUAL_IGNORE;
		}
		map_set(&map, code, &v);
	}
	if (!s->multi_query) {
		raw[n] = copy_prefix;
		rtg[n++] = QUAL_IGNORE;
	}
	for (int i = 0; i < kp.len; i++) {
		raw[n] = kp.t[i];
		rtg[n++] = QUAL_IGNORE;
	}
	for (int i = 0; i < vp.len; i++) {
		raw[n] = vp.t[i];
		rtg[n++] = vp.t[i];
	}
	/* pad in front to L + 1 tokens, then shift */
	int npad = L + 1 - n;
	if (npad > 0) {
		memmove(raw + npad, raw, (size_t)n * sizeof(int32_t));
		memmove(rtg + npad, rtg, (size_t)n * sizeof(int32_t));
		for (int i = 0; i < npad; i++) {
			raw[i] = pad;
			rtg[i] = QUAL_IGNORE;
		}
		n = L + 1;
	}
	shift_out(raw + (n - (L + 1)), rtg + (n - (L + 1)), L, train, in, tg);
}

static void selcopy(const qual_mad_spec *s, tl_rng *rng, int32_t *in, int32_t *tg)
{
	int L = s->seq_len, nc = s->n_copy, copy = s->vocab - 1, blank = s->vocab - 2;
	int nblank = L - 2 * nc - 1;
	int32_t to_copy[256];
	int before[256] = {0};
	for (int i = 0; i < nc; i++)
		to_copy[i] = (int32_t)tl_rng_bounded(rng, (uint32_t)(s->vocab - 2));
	/* mad-lab inserts each blank before a uniformly chosen token of to_copy */
	for (int b = 0; b < nblank; b++)
		before[tl_rng_bounded(rng, (uint32_t)nc)]++;
	int n = 0;
	for (int i = 0; i < nc; i++) {
		for (int b = 0; b < before[i]; b++)
			in[n++] = blank;
		in[n++] = to_copy[i];
	}
	in[n++] = copy;
	for (int i = 0; i < nc; i++)
		in[n++] = blank;
	for (int i = 0; i < L; i++)
		tg[i] = i < L - nc ? QUAL_IGNORE : to_copy[i - (L - nc)];
}

static void compression(const qual_mad_spec *s, tl_rng *rng, int32_t *in, int32_t *tg)
{
	int L = s->seq_len;
	for (int i = 0; i < L - 1; i++)
		in[i] = (int32_t)tl_rng_bounded(rng, (uint32_t)(s->vocab - 1 - s->noise_vocab));
	in[L - 1] = s->vocab - 1;
	memcpy(tg, in, (size_t)L * sizeof(int32_t));
}

static void memorization(const qual_mad_spec *s, tl_rng *rng, int32_t *in, int32_t *tg)
{
	/* the fixed map: keys [0, nsv/2) and values [nsv/2, nsv) each shuffled
	 * by a generator of its own fixed seed, paired in order */
	int nsv = s->vocab - 1 - s->noise_vocab, nk = nsv / 2, nv = nsv - nk;
	int32_t keys[4096], vals[4096];
	tl_rng mr;
	tl_rng_seed(&mr, 12345, 0);
	for (int i = 0; i < nk; i++)
		keys[i] = i;
	for (int i = 0; i < nv; i++)
		vals[i] = nk + i;
	tl_rng_shuffle(&mr, keys, (size_t)nk, sizeof keys[0]);
	tl_rng_shuffle(&mr, vals, (size_t)nv, sizeof vals[0]);
	int32_t value_of[4096];
	for (int i = 0; i < nk && i < nv; i++)
		value_of[keys[i]] = vals[i];
	int pairs = s->seq_len / 2, nmap = nk < nv ? nk : nv;
	for (int p = 0; p < pairs; p++) {
		int32_t k = keys[tl_rng_bounded(rng, (uint32_t)nmap)];
		in[2 * p] = k;
		in[2 * p + 1] = s->vocab - 1; /* the insert token */
		tg[2 * p] = QUAL_IGNORE;
		tg[2 * p + 1] = value_of[k];
	}
}

void qual_mad_instance(int task, const qual_mad_spec *s, bool train, tl_rng *rng, int32_t *inputs,
                       int32_t *targets)
{
	switch (task) {
	case QUAL_MAD_RECALL:
	case QUAL_MAD_NOISY:
		recall(s, train, rng, inputs, targets);
		break;
	case QUAL_MAD_FUZZY:
		fuzzy(s, train, rng, inputs, targets);
		break;
	case QUAL_MAD_SELCOPY:
		selcopy(s, rng, inputs, targets);
		break;
	case QUAL_MAD_COMPRESS:
		compression(s, rng, inputs, targets);
		break;
	default:
		memorization(s, rng, inputs, targets);
		break;
	}
}

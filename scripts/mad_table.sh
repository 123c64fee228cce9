#!/usr/bin/env bash
# scripts/mad_table.sh: the MAD table of docs/quality.md: the six tasks for
# GQA+SwiGLU, gated conv+SwiGLU and an LFM2-like hybrid (examples/quality/),
# trained on this machine's CPU. Long: run it by hand, not in `meson test`.
#   scripts/mad_table.sh [BUILD_DIR] [TOKENS_PER_TASK] [THREADS]
# Defaults: build, 2,000,000 tokens per task, 2 threads. Environment:
#   MODELS  models to run (default "gqa conv hybrid": examples/quality/mad-M.txt)
#   TASKS   tasks to run (default all six, in-context recall first)
#   TOKENS_<task>  a task's own budget (e.g. TOKENS_memorization=500000)
#   BATCH, LR, SEED  (default 16, 1e-3, 1: the settings of docs/quality.md)
#   LOG     also append one line per (model, task) to this file
# Each (model, task) is one `tailor train --evaluator mad --tasks T` run: a
# fresh proxy per task, as MAD trains. Prints one line per run (accuracy,
# steps, wall seconds) as it finishes, then the table, and checks the MAD
# pattern: attention solves in-context recall (> 0.9), the pure short-conv
# model of the same size does not.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build} tokens=${2:-2000000} threads=${3:-2}
tailor=$build/cli/tailor
models=${MODELS:-gqa conv hybrid}
tasks=${TASKS:-recall fuzzy_recall noisy_recall selective_copy compression memorization}
batch=${BATCH:-16} lr=${LR:-1e-3} seed=${SEED:-1}
declare -A acc
for m in $models; do
	for t in $tasks; do
		var=TOKENS_$t
		n=${!var:-$tokens}
		t0=$(date +%s.%N)
		out=$("$tailor" train "examples/quality/mad-$m.txt" --evaluator mad --tasks "$t" \
			--width 0 --batch "$batch" --lr "$lr" --seed "$seed" --tokens "$n" \
			--threads "$threads" --json)
		t1=$(date +%s.%N)
		v=$(printf '%s' "$out" | sed -n "s/.*\"mad\\.$t\":\\([0-9.]*\\).*/\\1/p")
		steps=$(printf '%s' "$out" | sed -n 's/.*"steps":\([0-9]*\).*/\1/p')
		acc[$m.$t]=${v:--}
		line=$(printf '%-8s %-15s acc %-8s tokens %-9s steps %-6s batch %s lr %s %6.0f s  load %s' \
			"$m" "$t" "${v:--}" "$n" "${steps:--}" "$batch" "$lr" "$(echo "$t1 - $t0" | bc)" \
			"$(cut -d' ' -f1-3 /proc/loadavg)")
		echo "$line"
		[ -n "${LOG:-}" ] && echo "$line" >>"$LOG"
	done
done
echo
printf '%-8s' model
for t in $tasks; do printf ' %14s' "$t"; done
echo
for m in $models; do
	printf '%-8s' "$m"
	for t in $tasks; do printf ' %14s' "${acc[$m.$t]}"; done
	echo
done
a=${acc[gqa.recall]:-} h=${acc[hybrid.recall]:-} c=${acc[conv.recall]:-}
# the pattern needs the conv model and at least one attention model
[ -n "$c" ] && [ "$c" != - ] && { [ -n "$a" ] || [ -n "$h" ]; } || exit 0
awk -v a="${a:--1}" -v h="${h:--1}" -v c="$c" 'BEGIN {
	ok = (a > 0.9 || h > 0.9) && c < 0.9
	printf "MAD pattern (attention > 0.9 on recall, short conv not): %s (gqa %s, hybrid %s, conv %.3f)\n",
	       ok ? "yes" : "NO", a < 0 ? "-" : sprintf("%.3f", a), h < 0 ? "-" : sprintf("%.3f", h), c
	exit ok ? 0 : 1 }'

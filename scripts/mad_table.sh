#!/usr/bin/env bash
# scripts/mad_table.sh: the MAD table of docs/quality.md: the six tasks for
# GQA+SwiGLU, gated conv+SwiGLU and an LFM2-like hybrid (examples/quality/),
# trained on this machine's CPU. Long: run it by hand, not in `meson test`.
#   scripts/mad_table.sh [BUILD_DIR] [TOKENS_PER_TASK] [THREADS]
# Defaults: build, 2,000,000 tokens per task, 2 threads. Prints one line per
# model with the test accuracy of each task, and checks the MAD pattern:
# attention solves in-context recall (> 0.9), the pure short-conv model of the
# same size does not.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build} tokens=${2:-2000000} threads=${3:-2}
tailor=$build/cli/tailor
printf '%-12s' model
for t in recall fuzzy_recall noisy_recall selective_copy compression memorization; do
	printf ' %14s' "$t"
done
echo
declare -A recall
for m in gqa conv hybrid; do
	out=$("$tailor" train "examples/quality/mad-$m.txt" --evaluator mad --width 0 --batch 32 \
		--lr 3e-3 --tokens "$tokens" --threads "$threads" --json)
	printf '%-12s' "$m"
	for t in recall fuzzy_recall noisy_recall selective_copy compression memorization; do
		v=$(printf '%s' "$out" | sed -n "s/.*\"mad\\.$t\":\\([0-9.]*\\).*/\\1/p")
		printf ' %14s' "${v:--}"
		[ "$t" = recall ] && recall[$m]=$v
	done
	echo
done
awk -v a="${recall[gqa]}" -v c="${recall[conv]}" 'BEGIN {
	ok = a > 0.9 && c < 0.9
	printf "MAD pattern (attention > 0.9 on recall, short conv not): %s (gqa %.3f, conv %.3f)\n",
	       ok ? "yes" : "NO", a, c
	exit ok ? 0 : 1 }'

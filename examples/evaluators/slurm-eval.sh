#!/usr/bin/env bash
# examples/evaluators/slurm-eval.sh: a `command` quality evaluator that trains
# the candidate on a GPU cluster through Slurm (protocol tailor-quality/1,
# docs/quality.md).
#
#   tailor train GENOME --evaluator command \
#       --command 'examples/evaluators/slurm-eval.sh' --timeout 7200
#
# tailor writes one JSON request on our stdin: {"protocol": "tailor-quality/1",
# "genome": {...}, "genome_text": "...", "arch": "arch/1 ...", "arch_hash":
# "...", "settings": {...}}. We put it in a shared directory, submit a job
# with `sbatch --wait` (which returns when the job ends, with its exit code),
# and print the job's answer, {"metrics": {"val_bpb": ..., ...}}, on stdout.
# Anything for people goes to stderr; tailor keeps its last line when we fail.
#
# Configure with the environment:
#   TAILOR_SLURM_SHARED   a directory the cluster's nodes can read and write
#                         (default $HOME/tailor-quality)
#   TAILOR_SLURM_TRAINER  the training program the job runs; it reads
#                         request.json and writes metrics.json (default
#                         train_candidate.py next to this script: yours)
#   TAILOR_SLURM_ARGS     extra sbatch arguments (partition, account, time)
set -euo pipefail

shared=${TAILOR_SLURM_SHARED:-$HOME/tailor-quality}
trainer=${TAILOR_SLURM_TRAINER:-$(dirname "$(readlink -f "$0")")/train_candidate.py}
mkdir -p "$shared"
job=$(mktemp -d "$shared/job.XXXXXX")
cat > "$job/request.json"
hash=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["arch_hash"][:12])' \
	"$job/request.json")

cat > "$job/job.sbatch" <<JOB
#!/usr/bin/env bash
#SBATCH --job-name=tailor-$hash
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --time=02:00:00
#SBATCH --output=$job/slurm.log
set -euo pipefail
python3 "$trainer" --request "$job/request.json" --out "$job/metrics.json"
JOB

echo "slurm-eval: submitting $job/job.sbatch (arch $hash)" >&2
# shellcheck disable=SC2086
if ! sbatch --wait --parsable ${TAILOR_SLURM_ARGS:-} "$job/job.sbatch" >&2; then
	echo "slurm-eval: job failed, see $job/slurm.log: $(tail -n 1 "$job/slurm.log" 2>/dev/null)" >&2
	exit 1
fi
if [ ! -s "$job/metrics.json" ]; then
	echo "slurm-eval: the job wrote no $job/metrics.json" >&2
	exit 1
fi
# the answer: {"metrics": {...}} (the trainer may write the inner object only)
python3 - "$job/metrics.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
print(json.dumps(m if "metrics" in m else {"metrics": m}))
PY

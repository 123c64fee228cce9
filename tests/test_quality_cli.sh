#!/usr/bin/env bash
# tests/test_quality_cli.sh: `tailor train`: help, usage errors (exit 2, one
# line), the command evaluator's protocol (a good answer, bad output, a
# failing command, a timeout) and a tiny built-in run; `tailor quality
# fidelity` and `tailor quality ckpt` on a tiny study.
# argv: tailor executable, source root.
set -u
tailor=$1 root=$2
fail=0 checks=0
check() { # description, command...
	local what=$1; shift
	checks=$((checks + 1))
	if ! "$@"; then echo "FAIL: $what" >&2; fail=$((fail + 1)); fi
}
out=$(mktemp) err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
run() { "$tailor" "$@" >"$out" 2>"$err"; echo $?; }

check "help" [ "$(run train --help)" = 0 ]
check "help text" grep -q "usage: tailor train GENOME" "$out"
check "no genome: usage" [ "$(run train)" = 2 ]
check "bad evaluator: usage" [ "$(run train lfm2-350m --evaluator nope)" = 2 ]
check "bad evaluator: one line" [ "$(wc -l < "$err")" = 1 ]
check "bad width" [ "$(run train lfm2-350m --width x)" = 2 ]
check "bad task" [ "$(run train lfm2-350m --evaluator mad --tasks nope)" = 2 ]
check "command without --command" [ "$(run train lfm2-350m --evaluator command)" = 2 ]
fake=$root/examples/evaluators/fake-eval.sh
check "command: answer" [ "$(run train lfm2-350m --evaluator command --command "$fake")" = 0 ]
check "command: metric printed" grep -q "val_bpb *1.5" "$out"
check "command: json" [ "$(run train lfm2-350m --evaluator command --command "$fake" --json)" = 0 ]
check "command: json metrics" grep -q '"metrics":{"val_bpb":1.5' "$out"
check "command: bad output" [ "$(run train lfm2-350m --evaluator command --command 'echo hi')" = 1 ]
check "command: bad output named" grep -q "not a JSON object" "$err"
check "command: failing" [ "$(run train lfm2-350m --evaluator command --command false)" = 1 ]
check "command: exit status named" grep -q "exit status 1" "$err"
check "command: timeout" [ "$(run train lfm2-350m --evaluator command --command 'sleep 5' --timeout 1)" = 1 ]
check "command: timeout named" grep -q "no answer after 1 s" "$err"
check "train: missing corpus" [ "$(run train lfm2-350m --corpus /nonexistent --tokens 100)" = 1 ]
check "train: corpus named" grep -q "/nonexistent" "$err"
check "train: tiny run" [ "$(run train lfm2-350m --width 16 --seq 32 --batch 2 --tokens 256 \
	--val-tokens 256 --corpus "$root/data/tinyshakespeare.txt" --json)" = 0 ]
check "train: val_bpb" grep -q '"val_bpb":' "$out"
check "mad: tiny run" [ "$(run train lfm2-350m --evaluator mad --tasks memorization,compression \
	--width 16 --batch 4 --tokens 256 --train-examples 8 --test-examples 8)" = 0 ]
check "mad: accuracy" grep -q "mad.memorization *accuracy" "$out"
# `tailor quality fidelity`: a tiny study (4 genomes of the small space, two
# budgets, two seeds); the table, the stored trainings and event; run again
# with the same cache: the same values, from the checkpoints
tmpd=$(mktemp -d)
trap 'rm -f "$out" "$err"; rm -rf "$tmpd"' EXIT
export TAILOR_CACHE=$tmpd/cache
F=(--db "$tmpd/f.db" quality fidelity --space "$root/examples/spaces/lfm2-like-small.json"
	--samples 4 --width 16 --batch 2 --seq 32 --val-tokens 512 --resamples 100
	--corpus "$root/data/tinyshakespeare.txt")
check "fidelity: help" [ "$(run quality fidelity --help)" = 0 ]
check "fidelity: help text" grep -q "usage: tailor quality fidelity" "$out"
check "fidelity: no budgets" [ "$(run "${F[@]}")" = 2 ]
check "fidelity: no budgets named" grep -q "missing --budgets" "$err"
check "fidelity: budgets must increase" [ "$(run "${F[@]}" --budgets 2048,1024)" = 2 ]
check "fidelity: one line" [ "$(wc -l < "$err")" = 1 ]
check "fidelity: no genomes" [ "$(run --db "$tmpd/f.db" quality fidelity --budgets 1024,2048)" = 2 ]
check "fidelity: --frontier needs --run" [ "$(run "${F[@]}" --frontier --budgets 1024,2048)" = 2 ]
check "fidelity: budget under two steps" [ "$(run "${F[@]}" --budgets 64,2048)" = 2 ]
check "fidelity: study" [ "$(run "${F[@]}" --budgets 1024,4096)" = 0 ]
check "fidelity: table" grep -q "tau vs highest" "$out"
check "fidelity: noise floor" grep -q "seed noise at 1K: median |paired difference|" "$out"
check "fidelity: every training stored (4 x 2 budgets + 4 x 1 more seed)" \
	[ "$(sqlite3 "$tmpd/f.db" "SELECT count(*) FROM quality WHERE evaluator = 'train' AND metric = 'val_bpb' AND value > 0")" = 12 ]
check "fidelity: the study stored" \
	[ "$(sqlite3 "$tmpd/f.db" "SELECT count(*) FROM events WHERE kind = 'quality.fidelity' AND json_array_length(data, '$.genomes') = 4")" = 1 ]
cp "$out" "$tmpd/first.txt"
check "fidelity: again, from checkpoints" [ "$(run "${F[@]}" --budgets 1024,4096)" = 0 ]
check "fidelity: the same values" diff <(grep -E '^  [0-9a-f]{12} ' "$tmpd/first.txt") <(grep -E '^  [0-9a-f]{12} ' "$out")
check "fidelity: json" [ "$(run "${F[@]}" --budgets 1024,4096 --json)" = 0 ]
check "fidelity: json fields" grep -q '"noise_median":.*"agreement":\[{"tau"' "$out"
# tailor frontier marks members closer in val_bpb than the run's measured noise
N="$tmpd/n.db"
"$tailor" --db "$N" db migrate > /dev/null
sqlite3 "$N" "INSERT INTO runs (id, name, config, mode, seed, status, generation, generations, population) VALUES (1, 'n', '{\"objectives\": [{\"metric\": \"val_bpb\", \"direction\": \"min\"}, {\"metric\": \"params\", \"direction\": \"min\"}]}', 'nsga2', 1, 'finished', 0, 1, 3);
INSERT INTO genomes (hash, text, params) VALUES ('$(printf 'a%.0s' $(seq 64))', 'x', 1), ('$(printf 'b%.0s' $(seq 64))', 'y', 2), ('$(printf 'c%.0s' $(seq 64))', 'z', 3);
INSERT INTO candidates (run_id, generation, genome_hash, origin, status, rank, crowding, feasible, violation, objectives) VALUES
 (1, 0, '$(printf 'a%.0s' $(seq 64))', 'sample', 'done', 0, 1, 1, 0, '{\"val_bpb\": 3.0, \"params\": 3}'),
 (1, 0, '$(printf 'b%.0s' $(seq 64))', 'sample', 'done', 0, 1, 1, 0, '{\"val_bpb\": 3.01, \"params\": 2}'),
 (1, 0, '$(printf 'c%.0s' $(seq 64))', 'sample', 'done', 0, 1, 1, 0, '{\"val_bpb\": 3.5, \"params\": 1}');
INSERT INTO generations (run_id, generation, evaluated, feasible, frontier_size, hypervolume) VALUES (1, 0, 3, 3, 3, 0.5);"
check "frontier: no noise measured, no marks" [ "$(run --db "$N" frontier 1 --format csv)" = 0 ]
check "frontier: within_noise column empty" [ "$(grep -c 'noise' "$out")" = 1 ]
sqlite3 "$N" "INSERT INTO events (run_id, level, kind, message, data) VALUES (1, 'info', 'quality.fidelity', 'study', '{\"noise_median\": 0.05}')"
check "frontier: marks" [ "$(run --db "$N" frontier 1 --format csv)" = 0 ]
check "frontier: the two close ones marked, the far one not" [ "$(grep -c '0.0100 from' "$out")" = 2 ] 
check "frontier: the far one unmarked" grep -q '^[0-9]*,1,cccccccccccc,3.5,.*,$' "$out"
check "report: noise bars" [ "$(run --db "$N" report 1 -o "$tmpd/n.html")" = 0 ]
check "report: a bar through each frontier point" [ "$(grep -c "class='nb'" "$tmpd/n.html")" = 3 ]
check "report: bars explained" grep -q "measured seed noise of val_bpb (0.0500 bpb" "$tmpd/n.html"
check "ckpt list" [ "$(run quality ckpt list)" = 0 ]
check "ckpt list counts" grep -qE "holds [1-9][0-9]* checkpoint file" "$out"
check "ckpt clean" [ "$(run quality ckpt clean)" = 0 ]
check "ckpt clean removes" [ -z "$(ls "$tmpd/cache/ckpt")" ]
check "ckpt bad subcommand" [ "$(run quality ckpt frob)" = 2 ]
echo "$checks checks, $fail failed" >&2
[ $fail = 0 ]

#!/usr/bin/env bash
# tests/test_quality_cli.sh: `tailor train`: help, usage errors (exit 2, one
# line), the command evaluator's protocol (a good answer, bad output, a
# failing command, a timeout) and a tiny built-in run.
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
echo "$checks checks, $fail failed" >&2
[ $fail = 0 ]

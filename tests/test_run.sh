#!/usr/bin/env bash
# tests/test_run.sh: `tailor run` end to end on the built binary.
#  - config errors: one line naming the file, the JSON path and what is
#    allowed; exit 1 (bad file) or 2 (bad usage);
#  - a run on analytic metrics finishes, stores every generation with its
#    hypervolume, never evaluates a genome twice, and prints its frontier;
#  - crash safety: the same config run again while being killed with
#    SIGKILL at random moments (KILLS times, default 20), resumed after each
#    kill: its candidates, generations and frontier equal the uninterrupted
#    run's, row for row;
#  - two `run resume` at once after a kill -9: one drives, the other is
#    refused with one line, nothing doubled;
#  - Ctrl-C: announced; a training stops at its next step; an evaluator
#    that cannot be asked is abandoned by a second Ctrl-C within a second
#    (the candidate stays pending, the command dies with tailor);
#  - multi-fidelity: promotions stored, elites at their highest budget, and
#    kill -9 + resume equal to the uninterrupted run;
#  - run stop / status / list; resume of a finished run is a no-op.
set -u
TAILOR=${1:?usage: test_run.sh PATH_TO_TAILOR SOURCE_ROOT}
ROOT=${2:?usage: test_run.sh PATH_TO_TAILOR SOURCE_ROOT}
ROOT=$(cd "$ROOT" && pwd)
KILLS=${TAILOR_TEST_KILLS:-20}
fails=0
checks=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
ok() { checks=$((checks + 1)); }
check() { if eval "$1"; then ok; else fail "$2"; fi; }

cat > "$tmp/a.json" <<JSON
{"name": "crash", "space": "$ROOT/examples/spaces/lfm2-like-small.json",
 "population": 40, "generations": 60, "seed": 11,
 "objectives": [{"metric": "params_nonembed", "direction": "max"},
                {"metric": "kv_bytes_per_token", "direction": "min"},
                {"metric": "flops_per_token", "direction": "min"}],
 "constraints": [{"metric": "params", "max": 9000000}]}
JSON

# ---- config errors
echo '{"space": "x.json", "objectives": [{"metric": "latency"}]}' > "$tmp/bad1.json"
out=$("$TAILOR" --db "$tmp/e.db" run start "$tmp/bad1.json" 2>&1); rc=$?
check '[ $rc = 1 ] && [ $(printf "%s\n" "$out" | wc -l) = 1 ]' "bad metric: rc $rc, '$out'"
check '[[ "$out" == *"bad1.json: objectives[0].metric: '"'"'latency'"'"': unknown metric ("* ]]' "bad metric message: $out"
echo '{"space": "x.json", "populaton": 3, "objectives": [{"metric": "params"}]}' > "$tmp/bad2.json"
out=$("$TAILOR" --db "$tmp/e.db" run start "$tmp/bad2.json" 2>&1); rc=$?
check '[[ "$out" == *"populaton: unknown key (allowed: name, space, mode, population"* ]]' "typo key: $out"
echo '{"space": "x.json", "objectives": [{"metric": "decode_ms@phone"}]}' > "$tmp/bad3.json"
out=$("$TAILOR" --db "$tmp/e.db" run start "$tmp/bad3.json" 2>&1); rc=$?
check '[[ "$out" == *"objectives[0].metric: '"'"'decode_ms@phone'"'"': device '"'"'phone'"'"' is not in \"devices\""* ]]' "device: $out"
echo '{"space": "missing.json", "objectives": [{"metric": "params"}]}' > "$tmp/bad4.json"
out=$("$TAILOR" --db "$tmp/e.db" run start "$tmp/bad4.json" 2>&1); rc=$?
check '[ $rc = 1 ] && [[ "$out" == *"bad4.json: space"*"missing.json"* ]]' "missing space: $out"
# a device no new database can know: refused before the file is made (issue 14)
echo '{"space": "'"$ROOT"'/examples/spaces/tiny.json", "devices": ["phone"], "objectives": [{"metric": "decode_ms@phone"}]}' > "$tmp/bad5.json"
out=$("$TAILOR" --db "$tmp/new.db" run start "$tmp/bad5.json" 2>&1); rc=$?
check '[ $rc = 1 ] && [ ! -e "$tmp/new.db" ] && [[ "$out" == *"devices[0]: '"'"'phone'"'"': no such device"* ]]' "unregistered device on a new database: rc $rc, file $(ls "$tmp/new.db" 2>&1): $out"
out=$("$TAILOR" --db "$tmp/e.db" run resume abc 2>&1); rc=$?
check '[ $rc = 2 ]' "resume abc: rc $rc"
out=$("$TAILOR" --db "$tmp/e.db" run resume 99 2>&1); rc=$?
check '[ $rc = 1 ] && [[ "$out" == *"run 99: no such run"* ]]' "resume 99: $out"

# ---- the uninterrupted run
"$TAILOR" --db "$tmp/a.db" run start "$tmp/a.json" --quiet > "$tmp/a.out" 2> "$tmp/a.err"; rc=$?
check '[ $rc = 0 ]' "uninterrupted run: rc $rc: $(tail -1 "$tmp/a.err")"
check 'grep -q "^frontier of run 1 (generation 60" "$tmp/a.out"' "frontier printed: $(head -1 "$tmp/a.out")"
q() { sqlite3 -batch -noheader "$1" "$2"; }
check '[ "$(q "$tmp/a.db" "SELECT status FROM runs WHERE id = 1")" = finished ]' "status finished"
check '[ "$(q "$tmp/a.db" "SELECT count(*) FROM generations WHERE run_id = 1 AND finished_at IS NOT NULL AND hypervolume > 0")" = 60 ]' "60 generations with a hypervolume"
# a genome is evaluated once: every non-elite row of the run has a distinct genome
check '[ "$(q "$tmp/a.db" "SELECT count(*) - count(DISTINCT genome_hash) FROM candidates WHERE run_id = 1 AND origin <> '"'"'elite'"'"'")" = 0 ]' "no genome evaluated twice"
check '[ "$(q "$tmp/a.db" "SELECT count(*) FROM candidates WHERE run_id = 1 AND status <> '"'"'done'"'"'")" = 0 ]' "every candidate done"
out=$("$TAILOR" --db "$tmp/a.db" run resume 1 --quiet 2>&1); rc=$?
check '[ $rc = 0 ] && [[ "$out" == *"frontier of run 1"* ]]' "resume of a finished run: $out"
out=$("$TAILOR" --db "$tmp/a.db" run list 2>&1)
check '[[ "$out" == *"crash"*"finished"* ]]' "list: $out"
out=$("$TAILOR" --db "$tmp/a.db" run status 2>&1)
check '[[ "$out" == "run 1 (crash): finished, nsga2, generation 60 of 60"* ]]' "status: $(echo "$out" | head -1)"

# ---- the same run, killed again and again
"$TAILOR" --db "$tmp/b.db" run start "$tmp/a.json" --quiet > /dev/null 2>&1 &
pid=$!
kills=0
for i in $(seq 1 "$KILLS"); do
	# a random moment within the next 50 ms (the whole run takes ~1 s)
	sleep "0.0$((RANDOM % 5))$((RANDOM % 10))"
	if kill -0 "$pid" 2> /dev/null; then
		kill -9 "$pid" 2> /dev/null && kills=$((kills + 1))
		wait "$pid" 2> /dev/null
	else
		wait "$pid" 2> /dev/null
	fi
	st=$(q "$tmp/b.db" "SELECT status FROM runs WHERE id = 1" 2> /dev/null)
	[ "$st" = finished ] && break
	if [ -z "$st" ]; then # killed before the run was recorded: start it again
		"$TAILOR" --db "$tmp/b.db" run start "$tmp/a.json" --quiet > /dev/null 2>&1 &
	else
		"$TAILOR" --db "$tmp/b.db" run resume 1 --quiet > /dev/null 2>&1 &
	fi
	pid=$!
done
wait "$pid" 2> /dev/null
if [ "$(q "$tmp/b.db" "SELECT status FROM runs WHERE id = 1" 2> /dev/null)" != finished ]; then
	"$TAILOR" --db "$tmp/b.db" run resume 1 --quiet > /dev/null 2>&1
fi
echo "test_run: $kills kill -9 landed during the run" >&2
check '[ $kills -ge 1 ]' "no kill landed"
dump() {
	q "$1" "SELECT id, generation, genome_hash, parent1_id, parent2_id, origin, status, rank,
	        crowding, feasible, violation, objectives FROM candidates ORDER BY id;
	        SELECT generation, evaluated, feasible, frontier_size, hypervolume, reference_point
	        FROM generations ORDER BY generation;
	        SELECT status, generation FROM runs;"
}
dump "$tmp/a.db" > "$tmp/a.dump"
dump "$tmp/b.db" > "$tmp/b.dump"
check 'cmp -s "$tmp/a.dump" "$tmp/b.dump"' "killed run differs from the uninterrupted one: $(diff "$tmp/a.dump" "$tmp/b.dump" | head -5)"
"$TAILOR" --db "$tmp/b.db" run status 1 > "$tmp/b.out" 2>&1
sed -n '/^frontier/,$p' "$tmp/a.out" > "$tmp/a.front"
sed -n '/^frontier/,$p' "$tmp/b.out" > "$tmp/b.front"
check 'cmp -s "$tmp/a.front" "$tmp/b.front"' "frontiers differ: $(diff "$tmp/a.front" "$tmp/b.front" | head -4)"

# ---- one driver per run (issue 14): after a kill -9 (the run still says
# running, its process is gone), two resumes at once: one drives it, the
# other is refused with one line naming the holder and changes nothing; the
# run ends exactly like the uninterrupted one
"$TAILOR" --db "$tmp/d.db" run start "$tmp/a.json" --quiet > /dev/null 2>&1 &
pid=$!
for i in $(seq 1 100); do
	[ "$(q "$tmp/d.db" "SELECT count(*) FROM candidates WHERE status = 'done'" 2> /dev/null)" -gt 40 ] 2> /dev/null && break
	sleep 0.02
done
kill -9 "$pid" 2> /dev/null
wait "$pid" 2> /dev/null
"$TAILOR" --db "$tmp/d.db" run resume 1 --quiet > "$tmp/d1.out" 2>&1 &
p1=$!
"$TAILOR" --db "$tmp/d.db" run resume 1 --quiet > "$tmp/d2.out" 2>&1 &
p2=$!
wait "$p1"; r1=$?
wait "$p2"; r2=$?
busy=$(cat "$tmp/d1.out" "$tmp/d2.out" | grep -c "being driven by \|being run by process")
dump "$tmp/d.db" > "$tmp/d.dump"
check '{ [ "$r1$r2" = 01 ] || [ "$r1$r2" = 10 ]; } && [ "$busy" = 1 ]' "two resumes: rc $r1 and $r2, $busy refused: $(cat "$tmp/d1.out" "$tmp/d2.out" | grep -v frontier | head -3)"
check 'cmp -s "$tmp/a.dump" "$tmp/d.dump"' "the run resumed twice at once differs from the uninterrupted one: $(diff "$tmp/a.dump" "$tmp/d.dump" | head -5)"

# ---- Ctrl-C (issue 14). During a training: one Ctrl-C is announced and
# stops the run at the next training step (the candidate stays pending).
# During an evaluator that cannot be asked (a command): the first waits and
# says so, a second abandons it within a second, and the command dies too.
cat > "$tmp/sig.json" <<JSON
{"name": "sig", "space": "$ROOT/examples/spaces/lfm2-like-small.json", "population": 2,
 "generations": 1, "seed": 2,
 "objectives": [{"metric": "val_bpb", "direction": "min"}, {"metric": "params", "direction": "max"}],
 "quality": {"evaluator": "train", "corpus": "$ROOT/data/tinyshakespeare.txt", "width": 64,
             "tokens": 262144, "val_tokens": 4096, "seq": 64, "batch": 8, "threads": 1}}
JSON
wait_evaluating() {
	for i in $(seq 1 100); do
		[ "$(q "$1" "SELECT count(*) FROM candidates WHERE status = 'evaluating'" 2> /dev/null)" -gt 0 ] 2> /dev/null && break
		sleep 0.05
	done
}
"$TAILOR" --db "$tmp/s.db" run start "$tmp/sig.json" > "$tmp/s.out" 2>&1 &
pid=$!
wait_evaluating "$tmp/s.db"
t0=$(date +%s%N); kill -INT "$pid"; wait "$pid"; prc=$?; t1=$(date +%s%N)
ms=$(( (t1 - t0) / 1000000 ))
st=$(q "$tmp/s.db" "SELECT status FROM runs WHERE id = 1")
nf=$(q "$tmp/s.db" "SELECT count(*) FROM candidates WHERE status IN ('done', 'failed')")
check '[ $prc = 0 ] && [ $ms -lt 3000 ] && [ "$st" = stopped ] && [ "$nf" = 0 ] && grep -q "stopping after the evaluations in flight" "$tmp/s.out"' "Ctrl-C during a training: exit $prc after ${ms} ms, status $st, $nf evaluations ended: $(cat "$tmp/s.out")"
sed -e 's/"evaluator": "train"/"evaluator": "command", "command": ["sleep", "37.25"]/' \
	-e 's/"val_bpb"/"score"/' "$tmp/sig.json" > "$tmp/sig2.json"
"$TAILOR" --db "$tmp/s2.db" run start "$tmp/sig2.json" > "$tmp/s2.out" 2>&1 &
pid=$!
wait_evaluating "$tmp/s2.db"
kill -INT "$pid"; sleep 0.5
alive=no; kill -0 "$pid" 2> /dev/null && alive=yes
t0=$(date +%s%N); kill -INT "$pid"; wait "$pid"; prc=$?; t1=$(date +%s%N)
ms=$(( (t1 - t0) / 1000000 ))
sleep 0.2
left=$(pgrep -f "sleep 37.25" | wc -l)
nf=$(q "$tmp/s2.db" "SELECT count(*) FROM candidates WHERE status IN ('done', 'failed')")
check '[ $alive = yes ] && [ $prc = 130 ] && [ $ms -lt 1000 ] && [ "$left" = 0 ] && grep -q "Ctrl-C again abandons" "$tmp/s2.out" && [ "$nf" = 0 ]' "Ctrl-C twice: alive after the first $alive, exit $prc after ${ms} ms, $left commands left, $nf evaluations ended: $(cat "$tmp/s2.out")"
out=$("$TAILOR" --db "$tmp/s2.db" run status 1 2>&1)
check '[[ "$out" == *"is gone"*"run resume 1"* ]]' "status after an abandon: $out"

# ---- multi-fidelity (issue 16): every candidate trained at 512 tokens, the
# best half of each generation continued to 2048; the elites carry their
# highest budget's quality; killed at random moments and resumed (its own
# checkpoint cache), the run equals the uninterrupted one row for row
cat > "$tmp/mf.json" <<JSON
{"name": "mf", "space": "$ROOT/examples/spaces/lfm2-like-small.json", "population": 6,
 "generations": 3, "seed": 4,
 "objectives": [{"metric": "val_bpb", "direction": "min"}, {"metric": "params", "direction": "min"}],
 "quality": {"evaluator": "train", "corpus": "$ROOT/data/tinyshakespeare.txt", "width": 16,
             "batch": 2, "seq": 32, "val_tokens": 512, "threads": 1,
             "fidelity": {"budgets": [512, 2048], "promote": 0.5}}}
JSON
TAILOR_CACHE=$tmp/mfc1 "$TAILOR" --db "$tmp/mf1.db" run start "$tmp/mf.json" --quiet > /dev/null 2> "$tmp/mf1.err"; rc=$?
check '[ $rc = 0 ]' "multi-fidelity run: rc $rc: $(tail -2 "$tmp/mf1.err")"
nh=$(q "$tmp/mf1.db" "SELECT count(DISTINCT settings_hash) FROM quality WHERE metric = 'val_bpb'")
np=$(q "$tmp/mf1.db" "SELECT count(*) FROM quality q WHERE metric = 'val_bpb' AND settings_hash <> (SELECT settings_hash FROM quality q0 JOIN candidates c ON c.genome_hash = q0.genome_hash AND c.generation = 0 AND c.origin <> 'elite' GROUP BY settings_hash ORDER BY count(*) DESC LIMIT 1)")
check '[ "$nh" = 2 ] && [ "$np" -ge 3 ]' "multi-fidelity: $nh budgets stored (want 2), $np genomes promoted (want >= 3)"
ne=$(q "$tmp/mf1.db" "SELECT count(*) FROM candidates WHERE origin = 'elite' AND json_extract(objectives, '$.quality_tokens') = 2048")
check '[ "$ne" -ge 1 ]' "multi-fidelity: no elite carries its 2048-token quality"
TAILOR_CACHE=$tmp/mfc2 "$TAILOR" --db "$tmp/mf2.db" run start "$tmp/mf.json" --quiet > /dev/null 2>&1 &
pid=$!
mfk=0
for i in 1 2 3 4 5 6; do
	sleep "0.$((RANDOM % 10))"
	if kill -9 "$pid" 2> /dev/null; then mfk=$((mfk + 1)); fi
	wait "$pid" 2> /dev/null
	st=$(q "$tmp/mf2.db" "SELECT status FROM runs WHERE id = 1" 2> /dev/null)
	[ "$st" = finished ] && break
	if [ -z "$st" ]; then
		TAILOR_CACHE=$tmp/mfc2 "$TAILOR" --db "$tmp/mf2.db" run start "$tmp/mf.json" --quiet > /dev/null 2>&1 &
	else
		TAILOR_CACHE=$tmp/mfc2 "$TAILOR" --db "$tmp/mf2.db" run resume 1 --quiet > /dev/null 2>&1 &
	fi
	pid=$!
done
wait "$pid" 2> /dev/null
[ "$(q "$tmp/mf2.db" "SELECT status FROM runs WHERE id = 1")" = finished ] ||
	TAILOR_CACHE=$tmp/mfc2 "$TAILOR" --db "$tmp/mf2.db" run resume 1 --quiet > /dev/null 2>&1
echo "test_run: multi-fidelity: $mfk kill -9 landed" >&2
dump "$tmp/mf1.db" > "$tmp/mf1.dump"
dump "$tmp/mf2.db" > "$tmp/mf2.dump"
check 'cmp -s "$tmp/mf1.dump" "$tmp/mf2.dump"' "killed multi-fidelity run differs: $(diff "$tmp/mf1.dump" "$tmp/mf2.dump" | head -4)"
echo '{"space": "x.json", "objectives": [{"metric": "val_bpb"}], "quality": {"evaluator": "mad", "fidelity": {"budgets": [512, 2048]}}}' > "$tmp/bad6.json"
out=$("$TAILOR" --db "$tmp/e.db" run start "$tmp/bad6.json" 2>&1); rc=$?
check '[ $rc = 1 ] && [[ "$out" == *"quality.fidelity: only with the train evaluator"* ]]' "fidelity with mad: $out"

# ---- stop
"$TAILOR" --db "$tmp/c.db" run start "$tmp/a.json" --quiet > /dev/null 2>&1 &
pid=$!
for i in $(seq 1 50); do
	[ "$(q "$tmp/c.db" "SELECT status FROM runs WHERE id = 1" 2> /dev/null)" = running ] && break
	sleep 0.02
done
out=$("$TAILOR" --db "$tmp/c.db" run stop 1 2>&1); rc=$?
wait "$pid"; prc=$?
st=$(q "$tmp/c.db" "SELECT status FROM runs WHERE id = 1")
check '[ $rc = 0 ] && [ $prc = 0 ] && { [ "$st" = stopped ] || [ "$st" = finished ]; }' "stop: rc $rc, process $prc, status $st: $out"
"$TAILOR" --db "$tmp/c.db" run resume 1 --quiet > /dev/null 2>&1
check '[ "$(q "$tmp/c.db" "SELECT status FROM runs WHERE id = 1")" = finished ]' "resume after stop"

echo "test_run: $checks checks, $fails failed" >&2
[ $fails = 0 ]

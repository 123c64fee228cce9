#!/usr/bin/env bash
# tests/test_predict.sh: operator tables and the predictor from the command
# line, on the real local device (the harness runs for real, at a tiny shape):
#  - `tailor device profile-ops local --space` stores a table: one entry row
#    per layer configuration and shape, as many configurations as the table
#    says, every entry with a positive decode time;
#  - `tailor predict GENOME --device local` prints one row per table shape,
#    interpolates between two depths (and says so), refuses a depth outside
#    the table with one line, refuses a genome of another space;
#  - `tailor predict --validate` measures 2 genomes at both shapes, prints the
#    accuracy table, and stores 4 predictions linked to their measurements;
#  - evaluation predict-measure measures only the best of each generation,
#    ranks those on their measurements and the rest on their predictions;
#  - usage errors exit 2 with one line; a device without a table exits 1
#    with one line that says how to make one.
set -u
TAILOR=${1:?usage: test_predict.sh PATH_TO_TAILOR SOURCE_ROOT}
ROOT=${2:?usage: test_predict.sh PATH_TO_TAILOR SOURCE_ROOT}
fails=0
checks=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export TAILOR_CACHE="$tmp/cache"
export TAILOR_GENOMES="$ROOT/examples/genomes"
DB="$tmp/t.db"
SPACE="$ROOT/examples/spaces/lfm2-like-small.json"

fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
ok() { checks=$((checks + 1)); }

# run_expect CODE LINES PATTERN -- CMD...: exit status, lines on stderr (-1:
# any), a pattern in stdout+stderr.
run_expect() {
	local want=$1 lines=$2 pat=$3
	shift 4
	"$@" >"$tmp/out" 2>"$tmp/err"
	local got=$?
	if [ "$got" != "$want" ]; then
		fail "exit $got, want $want: $*"
		sed 's/^/    /' "$tmp/err" >&2
		return
	fi
	ok
	if [ "$lines" -ge 0 ] && [ "$(wc -l <"$tmp/err")" != "$lines" ]; then
		fail "stderr has $(wc -l <"$tmp/err") lines, want $lines: $*"
		sed 's/^/    /' "$tmp/err" >&2
	else
		ok
	fi
	if ! cat "$tmp/out" "$tmp/err" | grep -q -- "$pat"; then
		fail "no '$pat' in the output of: $*"
		sed 's/^/    /' "$tmp/out" "$tmp/err" >&2
	else
		ok
	fi
}

q() { "$TAILOR" --db "$DB" query --format csv "$1" | tail -n +2; }

cat >"$tmp/proto.json" <<'EOF'
{"warmup": 0, "repeats": 1, "cv_threshold": 0,
 "shapes": [{"prompt": 8, "gen": 4, "depth": 0}, {"prompt": 8, "gen": 4, "depth": 64}]}
EOF

# a device without a table, before anything exists
"$TAILOR" --db "$DB" db migrate >/dev/null 2>&1 || fail "db migrate"
run_expect 1 1 "profile-ops" -- "$TAILOR" --db "$DB" predict lfm2-350m --device local
run_expect 2 1 "space" -- "$TAILOR" --db "$DB" device profile-ops local
run_expect 2 1 "device" -- "$TAILOR" --db "$DB" predict lfm2-350m
run_expect 2 1 "space" -- "$TAILOR" --db "$DB" predict --validate --device local
run_expect 1 1 "nosuch" -- "$TAILOR" --db "$DB" device profile-ops nosuch --space "$SPACE"

# the table
run_expect 0 -1 "operator table 1 of local" -- "$TAILOR" --db "$DB" device profile-ops local \
	--space "$SPACE" --protocol "$tmp/proto.json" --samples 200 --instances 1
nk=$(q "SELECT n_keys FROM op_tables WHERE id = 1")
ne=$(q "SELECT count(*) FROM op_table_entries WHERE table_id = 1")
npos=$(q "SELECT count(*) FROM op_table_entries WHERE table_id = 1 AND decode_ms > 0 AND prefill_ms > 0")
if [ -n "$nk" ] && [ "$nk" -gt 10 ] && [ "$ne" = "$((nk * 2))" ] && [ "$npos" = "$ne" ]; then ok; else
	fail "table 1: $nk keys, $ne entries ($npos positive), want 2 per key"; fi

# predict a genome of the space
G=$("$TAILOR" genome random --space "$SPACE" --seed 5)
run_expect 0 0 "8/4/64" -- "$TAILOR" --db "$DB" predict "$G" --device local
if [ "$(grep -c '^8/4/' "$tmp/out")" = 2 ]; then ok; else fail "predict: not one row per shape"; cat "$tmp/out" >&2; fi
run_expect 0 0 "interpolated" -- "$TAILOR" --db "$DB" predict "$G" --device local --prompt 8 --gen 4 --depth 32
run_expect 0 0 '"decode_ms"' -- "$TAILOR" --db "$DB" predict "$G" --device local --json
run_expect 1 1 "outside the table's shapes" -- "$TAILOR" --db "$DB" predict "$G" --device local \
	--prompt 8 --gen 4 --depth 100
run_expect 1 1 "is not the table's" -- "$TAILOR" --db "$DB" predict lfm2-350m --device local
run_expect 1 1 "no such table" -- "$TAILOR" --db "$DB" predict "$G" --device local --table 99
run_expect 2 1 "go together" -- "$TAILOR" --db "$DB" predict "$G" --device local --prompt 8

# validation: measured for real, stored and linked
run_expect 0 -1 "peak RSS" -- "$TAILOR" --db "$DB" predict --validate --device local --space "$SPACE" --samples 2
nl=$(q "SELECT count(*) FROM predictions p JOIN measurements m ON m.id = p.measurement_id WHERE m.status = 'ok' AND m.genome_hash = p.genome_hash")
if [ "$nl" = 4 ]; then ok; else fail "validate: $nl linked predictions, want 4"; fi
if [ "$(grep -c '^prompt/gen/depth' "$tmp/out")" = 2 ] && grep -q "drift-corrected" "$tmp/out"; then ok; else
	fail "validate: not one accuracy table per shape, with the drift correction"; cat "$tmp/out" >&2; fi
# the reference model measured before and after: 2 shapes x 2, plus 4 genomes
nm=$(q "SELECT count(*) FROM measurements WHERE status = 'ok'")
if [ "$nm" = 8 ]; then ok; else fail "validate: $nm measurements, want 8"; fi

# a search that takes its device metrics from the table (evaluation "predict"):
# no measurement is added, every candidate's prediction is stored
cat >"$tmp/search.json" <<JSON
{"name": "screen", "space": "$SPACE", "mode": "nsga2", "population": 8, "generations": 2,
 "seed": 3, "evaluation": "predict",
 "objectives": [{"metric": "params", "direction": "max"},
                {"metric": "decode_ms@local", "direction": "min"}],
 "devices": ["local"], "bench": {"prompt": 8, "gen": 4, "depth": 32}}
JSON
np0=$(q "SELECT count(*) FROM predictions")
nm0=$(q "SELECT count(*) FROM measurements")
run_expect 0 -1 "frontier" -- "$TAILOR" --db "$DB" run start "$tmp/search.json"
np1=$(q "SELECT count(*) FROM predictions")
nm1=$(q "SELECT count(*) FROM measurements")
if [ "$nm1" = "$nm0" ] && [ "$((np1 - np0))" -ge 12 ]; then ok; else
	fail "evaluation predict: $((np1 - np0)) predictions, $((nm1 - nm0)) measurements added"; fi

# predict-measure: every candidate predicted, the 2 best of each generation
# (and any the table cannot predict) measured; each candidate is ranked on
# the measurement where there is one (its objectives are that row's figures)
cat >"$tmp/pm.json" <<JSON
{"name": "pm", "space": "$SPACE", "mode": "nsga2", "population": 8, "generations": 2,
 "seed": 4, "evaluation": {"mode": "predict-measure", "measure_top": 2},
 "objectives": [{"metric": "params", "direction": "max"},
                {"metric": "decode_ms@local", "direction": "min"}],
 "devices": ["local"], "bench": {"prompt": 8, "gen": 4, "depth": 32, "threads": 1}}
JSON
nm0=$(q "SELECT count(*) FROM measurements")
run_expect 0 -1 "frontier" -- "$TAILOR" --db "$DB" run start "$tmp/pm.json"
run=$(q "SELECT max(id) FROM runs")
nm1=$(q "SELECT count(*) FROM measurements")
nmeas=$(q "SELECT count(DISTINCT e.measurement_id) FROM candidate_evals e JOIN candidates c ON c.id = e.candidate_id WHERE c.run_id = $run AND e.used = 'measured'")
npred=$(q "SELECT count(*) FROM candidate_evals e JOIN candidates c ON c.id = e.candidate_id WHERE c.run_id = $run AND e.used = 'predicted' AND e.prediction_id IS NOT NULL")
nbad=$(q "SELECT count(*) FROM candidate_evals e JOIN candidates c ON c.id = e.candidate_id JOIN measurements m ON m.id = e.measurement_id WHERE c.run_id = $run AND e.used = 'measured' AND json_extract(c.objectives, '\$.\"decode_ms@local\"') != m.decode_ms_p50")
npvm=$(q "SELECT count(*) FROM predicted_vs_measured WHERE run_id = $run")
if [ "$nmeas" -ge 4 ] && [ "$nmeas" -le 8 ] && [ "$((nm1 - nm0))" = "$nmeas" ] && [ "$npred" -ge 4 ] &&
	[ "$nbad" = 0 ] && [ "$npvm" -ge 4 ]; then ok; else
	fail "predict-measure: $nmeas measured ($((nm1 - nm0)) added), $npred predicted, $nbad ranked off their measurement, $npvm predicted-vs-measured rows"; fi
sed -i 's/"measure_top": 2/"measure_top": 0/' "$tmp/pm.json"
run_expect 1 1 "measure_top" -- "$TAILOR" --db "$DB" run start "$tmp/pm.json"

sed -i 's/"predict"/"guess"/' "$tmp/search.json"
run_expect 1 1 "guess" -- "$TAILOR" --db "$DB" run start "$tmp/search.json"

echo "test_predict: $checks checks, $fails failed"
[ "$fails" = 0 ]

#!/usr/bin/env bash
# tests/test_faults.sh: faults injected into real runs (meson test --suite
# faults; issue 14). A small search that compiles its harness, measures on
# `local`, trains every candidate and measures a canary:
#  - kill -9 at random moments (compiles, harness runs, training steps,
#    commits), then resume, KILLS times (TAILOR_FAULT_KILLS, default 6): no
#    process of the test's left behind, no half-made build dir left after
#    the next build, no candidate doubled, the database intact, and the run
#    ends with as many candidates per generation as an uninterrupted one;
#  - two resumes at once after a kill: one drives, one is refused;
#  - the database's disk full mid-run (a file-size limit on the process,
#    SIGXFSZ ignored so writes fail with EFBIG): the run ends with one line
#    and resumes cleanly once there is room;
#  - the table of what was injected and found.
set -u
TAILOR=${1:?usage: test_faults.sh PATH_TO_TAILOR SOURCE_ROOT}
ROOT=$(cd "${2:?usage: test_faults.sh PATH_TO_TAILOR SOURCE_ROOT}" && pwd)
KILLS=${TAILOR_FAULT_KILLS:-6}
fails=0
checks=0
tmp=$(mktemp -d)
trap 'pkill -9 -f "$tmp/" 2> /dev/null; rm -rf "$tmp"' EXIT
export TAILOR_CACHE="$tmp/cache"
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
ok() { checks=$((checks + 1)); }
check() { if eval "$1"; then ok; else fail "$2"; fi; }
q() { sqlite3 -batch -noheader "$1" "$2"; }
mine() { pgrep -f "$tmp/" | grep -v "^$$\$" | tr '\n' ' '; }
t_start=$(date +%s)

cat > "$tmp/f.json" <<JSON
{"name": "faults", "space": "$ROOT/examples/spaces/lfm2-like-small.json", "population": 6,
 "generations": 3, "seed": 7, "devices": ["local"],
 "objectives": [{"metric": "val_bpb", "direction": "min"}, {"metric": "decode_ms@local", "direction": "min"}],
 "constraints": [{"metric": "peak_rss_mb@local", "max": 200}],
 "canary": {"genome": "$ROOT/examples/canary-small.txt", "every": 1, "max_drift": 10},
 "bench": {"prompt": 16, "gen": 8, "threads": 1, "quant": "q8_0", "timeout_s": 120},
 "quality": {"evaluator": "train", "corpus": "$ROOT/data/tinyshakespeare.txt", "width": 32,
             "tokens": 8192, "val_tokens": 2048, "seq": 32, "batch": 4, "threads": 1}}
JSON
shape() { q "$1" "SELECT generation, count(*), sum(status = 'done') FROM candidates GROUP BY generation"; }
doubled() { q "$1" "SELECT count(*) FROM (SELECT 1 FROM candidates GROUP BY run_id, generation, genome_hash HAVING count(*) > 1)"; }

# ---- the uninterrupted run
"$TAILOR" --db "$tmp/ref.db" run start "$tmp/f.json" --quiet > /dev/null 2> "$tmp/ref.err"; rc=$?
check '[ $rc = 0 ]' "reference run: rc $rc: $(tail -2 "$tmp/ref.err")"
ref=$(shape "$tmp/ref.db")

# ---- kill -9 at random moments, then resume
rm -rf "$TAILOR_CACHE" # the first attempts compile again
kills=0 orphans=0 orphans_late=0 resumes=0
for k in $(seq 1 "$KILLS"); do
	if [ -f "$tmp/k.db" ] && [ -n "$(q "$tmp/k.db" "SELECT id FROM runs" 2> /dev/null)" ]; then
		"$TAILOR" --db "$tmp/k.db" run resume 1 --quiet > /dev/null 2>&1 &
		resumes=$((resumes + 1))
	else
		"$TAILOR" --db "$tmp/k.db" run start "$tmp/f.json" --quiet > /dev/null 2>&1 &
	fi
	pid=$!
	sleep "$((RANDOM % 3)).$((RANDOM % 10))"
	if kill -9 "$pid" 2> /dev/null; then kills=$((kills + 1)); fi
	wait "$pid" 2> /dev/null
	sleep 0.3
	[ -n "$(mine)" ] && orphans=$((orphans + 1))
	# a compiler's own passes finish the file they are on (seconds)
	for i in $(seq 1 100); do [ -z "$(mine)" ] && break; sleep 0.1; done
	if [ -n "$(mine)" ]; then
		orphans_late=$((orphans_late + 1))
		echo "left running after kill $k: $(ps -o pid,args -p "$(mine | tr ' ' ,)" | tail -n +2)" >&2
		pkill -9 -f "$tmp/"
	fi
done
# two resumes at once
"$TAILOR" --db "$tmp/k.db" run resume 1 --quiet > "$tmp/r1.out" 2>&1 &
p1=$!
"$TAILOR" --db "$tmp/k.db" run resume 1 --quiet > "$tmp/r2.out" 2>&1 &
p2=$!
wait "$p1"; r1=$?
wait "$p2"; r2=$?
resumes=$((resumes + 2))
refused=$(cat "$tmp/r1.out" "$tmp/r2.out" | grep -c "being driven by \|being run by process")
check '{ [ "$r1$r2" = 01 ] || [ "$r1$r2" = 10 ]; } && [ "$refused" = 1 ]' "two resumes at once: rc $r1 $r2, $refused refused: $(cat "$tmp/r1.out" "$tmp/r2.out" | grep tailor: | head -2)"
st=$(q "$tmp/k.db" "SELECT status FROM runs WHERE id = 1")
check '[ "$st" = finished ]' "killed run: status $st"
check '[ "$(shape "$tmp/k.db")" = "$ref" ]' "killed run's generations: $(shape "$tmp/k.db" | tr '\n' ' ') want $(echo $ref)"
nd=$(doubled "$tmp/k.db")
check '[ "$nd" = 0 ]' "killed run: $nd candidates doubled"
ic=$(q "$tmp/k.db" "PRAGMA integrity_check")
check '[ "$ic" = ok ]' "killed run: integrity_check: $ic"
stale=$(ls -d "$TAILOR_CACHE"/builds/.tmp-* 2> /dev/null | wc -l)
check '[ "$stale" = 0 ]' "killed run: $stale half-made build dirs left"
check '[ "$orphans_late" = 0 ]' "$orphans_late kills left processes running"
nm=$(q "$tmp/k.db" "SELECT count(*) FROM candidates c WHERE c.status = 'done' AND NOT EXISTS (SELECT 1 FROM candidate_evals e WHERE e.candidate_id = c.id AND e.measurement_id IS NOT NULL)")
check '[ "$nm" = 0 ]' "killed run: $nm done candidates without their measurement"

# ---- the disk full mid-run: writes beyond a size fail (EFBIG)
full=$(( $(stat -c %s "$tmp/ref.db") * 5 / 4 / 1024 )) # KiB: the schema fits, the run does not
(
	trap '' XFSZ
	ulimit -f "$full"
	exec "$TAILOR" --db "$tmp/d.db" run start "$tmp/f.json" --quiet
) > /dev/null 2> "$tmp/d.err"
drc=$?
nl=$(grep -c . "$tmp/d.err")
check '[ $drc = 1 ] && [ "$nl" -le 2 ] && grep -q "no room to write" "$tmp/d.err"' "disk full: rc $drc, $nl lines: $(head -c 400 "$tmp/d.err")"
"$TAILOR" --db "$tmp/d.db" run resume 1 --quiet > /dev/null 2> "$tmp/d2.err"; rc=$?
st=$(q "$tmp/d.db" "SELECT status FROM runs WHERE id = 1")
check '[ $rc = 0 ] && [ "$st" = finished ] && [ "$(shape "$tmp/d.db")" = "$ref" ] && [ "$(q "$tmp/d.db" "PRAGMA integrity_check")" = ok ]' "resume after the disk full: rc $rc, status $st, generations $(shape "$tmp/d.db" | tr '\n' ' '): $(tail -2 "$tmp/d2.err")"

t_end=$(date +%s)
printf '\ntest_faults: what was injected and found\n' >&2
printf '  %-40s %s\n' "kill -9 landed" "$kills of $KILLS" "resumes (2 at once at the end)" "$resumes" \
	"processes left 0.3 s after a kill" "$orphans kills" "processes left 10 s after a kill" "$orphans_late kills" \
	"candidates doubled" "$nd" "stale build dirs" "$stale" "disk-full run" "rc $drc, then resumed: $st" \
	"wall time" "$((t_end - t_start)) s" >&2
echo "test_faults: $checks checks, $fails failed" >&2
[ "$fails" = 0 ]

#!/usr/bin/env bash
# tests/test_report.sh: what analysts get (issue 9), on the built binary.
#  - every view against hand-computed values on a fixture database written
#    with plain SQL (run_summary, frontier, generation_stats,
#    generation_operators, device_summary, measurement_stats,
#    predicted_vs_measured, canary_history);
#  - tailor query: rows in table, CSV and JSON; a write, two statements and a
#    bad table each refused with one line, exit 1;
#  - tailor frontier / export on a real run: JSON that parses, one row per
#    candidate;
#  - tailor report: one HTML file with no script, link or URL; on the
#    fixture, the predicted-vs-measured table (an elite's copy once, the
#    RMSPE) and the canary history with the run's rows highlighted; opened in
#    headless Chromium it renders its plots (SVG elements in the DOM), the
#    screenshot is not blank, and the page makes no network request (the
#    browser's own update and account pings aside);
#  - names holding markup, quotes, ]]> and bytes that are not UTF-8 (metric,
#    run, operator and genome names; device names are checked by the
#    schema) come out as text: no element of
#    theirs, well-formed markup, valid UTF-8.
# Exit 77 only when chromium is missing and everything else passed.
set -u
TAILOR=${1:?usage: test_report.sh PATH_TO_TAILOR SOURCE_ROOT}
ROOT=$(cd "${2:?usage: test_report.sh PATH_TO_TAILOR SOURCE_ROOT}" && pwd)
fails=0
checks=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
ok() { checks=$((checks + 1)); }
check() { if eval "$1"; then ok; else fail "$2"; fi; }
q() { sqlite3 -batch -noheader "$1" "$2"; }
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3

# ---- views on a fixture
F="$tmp/fixture.db"
"$TAILOR" --db "$F" db migrate > /dev/null || fail "db migrate"
H1=$(printf 'a%.0s' $(seq 64)); H2=$(printf 'b%.0s' $(seq 64)); H3=$(printf 'c%.0s' $(seq 64))
sqlite3 "$F" <<SQL || fail "fixture inserts"
INSERT INTO runs (id, name, config, mode, seed, status, generation, generations, population)
  VALUES (7, 'fx', '{}', 'nsga2', 1, 'finished', 1, 2, 2);
INSERT INTO genomes (hash, text, params, operators) VALUES
  ('$H1', 'g1', 100, '{"gqa": 1, "swiglu": 3}'),
  ('$H2', 'g2', 200, '{"shortconv": 2, "swiglu": 2}'),
  ('$H3', 'g3', 300, '{"shortconv": 4}');
INSERT INTO candidates (id, run_id, generation, genome_hash, origin, status, rank, crowding, feasible, violation, objectives) VALUES
  (1, 7, 0, '$H1', 'sample', 'done', 0, 1e308, 1, 0, '{"x": 1}'),
  (2, 7, 0, '$H2', 'sample', 'done', 1, 1e308, 1, 0, '{"x": 2}'),
  (3, 7, 1, '$H1', 'elite', 'done', 0, 1e308, 1, 0, '{"x": 1}'),
  (4, 7, 1, '$H3', 'mutate', 'failed', NULL, NULL, NULL, NULL, NULL);
INSERT INTO generations (run_id, generation, evaluated, feasible, frontier_size, hypervolume, finished_at)
  VALUES (7, 0, 2, 2, 1, 0.5, '2026-01-01T00:00:00.000Z'), (7, 1, 1, 1, 1, 0.75, '2026-01-01T00:01:00.000Z');
INSERT INTO devices (id, name, transport, host) VALUES (5, 'phone', 'ssh', 'phone.lab');
INSERT INTO measurements (genome_hash, run_id, device_id, protocol_hash, decode_ms_p50, ttft_ms, peak_rss_bytes, cv, status) VALUES
  ('$H1', 7, 5, 'p', 10, 100, 1000, 0.01, 'ok'),
  ('$H1', 7, 5, 'p', 12, 110, 1100, 0.03, 'ok'),
  ('$H1', 7, 5, 'p', 14, 120, 1050, 0.02, 'ok'),
  ('$H2', 7, 5, 'p', NULL, NULL, NULL, NULL, 'failed');
SQL
check '[ "$(q "$F" "SELECT candidates, candidates_done, candidates_failed, genomes, measurements FROM run_summary WHERE id = 7")" = "4|3|1|3|4" ]' "run_summary: $(q "$F" "SELECT * FROM run_summary WHERE id = 7")"
check '[ "$(q "$F" "SELECT group_concat(candidate_id) FROM frontier WHERE run_id = 7")" = "1,3" ]' "frontier rows"
check '[ "$(q "$F" "SELECT candidate_id FROM frontier WHERE run_id = 7 AND latest")" = 3 ]' "frontier latest"
check '[ "$(q "$F" "SELECT generation, candidates, evaluated, feasible, frontier_size, hypervolume, failed FROM generation_stats WHERE run_id = 7 ORDER BY generation" | tr "\n" " ")" = "0|2|2|2|1|0.5|0 1|2|1|1|1|0.75|1 " ]' "generation_stats: $(q "$F" "SELECT * FROM generation_stats")"
# generation 0: g1 (gqa 1, swiglu 3) + g2 (shortconv 2, swiglu 2) = 8 layers
check '[ "$(q "$F" "SELECT operator, layers, share FROM generation_operators WHERE run_id = 7 AND generation = 0 ORDER BY operator" | tr "\n" " ")" = "gqa|1|0.125 shortconv|2|0.25 swiglu|5|0.625 " ]' "generation_operators gen 0: $(q "$F" "SELECT * FROM generation_operators WHERE generation = 0")"
check '[ "$(q "$F" "SELECT round(sum(share), 12) FROM generation_operators WHERE run_id = 7 AND generation = 1")" = 1.0 ]' "shares of generation 1 sum to 1"
check '[ "$(q "$F" "SELECT measurements, measurements_ok, measurements_failed, round(mean_cv, 6) FROM device_summary WHERE name = '"'"'phone'"'"'")" = "4|3|1|0.02" ]' "device_summary: $(q "$F" "SELECT * FROM device_summary")"
check '[ "$(q "$F" "SELECT measurements FROM device_summary WHERE name = '"'"'local'"'"'")" = 0 ]' "device_summary local"
# decode 10, 12, 14: mean 12, sample sd 2, cv 1/6
check '[ "$(q "$F" "SELECT measurements, ok, decode_ms_mean, decode_ms_min, decode_ms_max, round(decode_ms_cv, 9), ttft_ms_mean, peak_rss_bytes_max FROM measurement_stats WHERE genome_hash = '"'"'$H1'"'"'")" = "3|3|12.0|10.0|14.0|0.166666667|110.0|1100" ]' "measurement_stats: $(q "$F" "SELECT * FROM measurement_stats")"

# what candidates were ranked on (v5): H1 predicted 11 ms / 90 ms / 1100 bytes
# against measurement 1 (10 / 100 / 1000): +10 %, -10 %, +10 %; candidate 3
# (the elite copy of 1) points at the same rows; candidate 2's measurement
# failed, so it is not in predicted_vs_measured. Canaries of phone: canary A
# 10, 11 (run 7), 12 (no run), 11 (run 7); canary B 20 (run 7).
CA=$(printf 'd%.0s' $(seq 64)); CB=$(printf 'e%.0s' $(seq 64))
sqlite3 "$F" <<SQL || fail "fixture inserts (v5)"
PRAGMA foreign_keys = ON;
INSERT INTO op_tables (id, device_id, space_hash, quant, kv, n_keys, n_archs, table_json)
  VALUES (1, 5, 's', 'q4_0', 'f16', 1, 1, '{}');
INSERT INTO predictions (id, table_id, genome_hash, prompt_len, gen_len, depth, ttft_ms, decode_ms, peak_rss_bytes) VALUES
  (1, 1, '$H1', 128, 32, 0, 90, 11, 1100), (2, 1, '$H2', 128, 32, 0, 50, 20, 2000);
INSERT INTO candidate_evals (candidate_id, device_id, measurement_id, prediction_id, used) VALUES
  (1, 5, 1, 1, 'measured'), (3, 5, 1, 1, 'measured'), (2, 5, 4, 2, 'predicted');
INSERT INTO canaries (device_id, canary_hash, build_hash, run_id, generation, decode_ms, ttft_ms, peak_rss_mb, created_at) VALUES
  (5, '$CA', 'b1', 7, 0, 10, 100, 50, '2026-01-01T00:00:00.000Z'),
  (5, '$CB', 'b1', 7, 0, 20, 200, 60, '2026-01-01T00:00:01.000Z'),
  (5, '$CA', 'b1', 7, 1, 11, 101, 50, '2026-01-01T00:01:00.000Z'),
  (5, '$CA', 'b2', NULL, 0, 12, 102, 50, '2026-01-02T00:00:00.000Z'),
  (5, '$CA', 'b2', 7, 1, 11, 103, 50, '2026-01-03T00:00:00.000Z');
SQL
check '[ "$(q "$F" "SELECT candidate_id, device, used, round(decode_rel_err, 9), round(ttft_rel_err, 9), round(peak_rss_rel_err, 9) FROM predicted_vs_measured WHERE run_id = 7 ORDER BY candidate_id" | tr "\n" " ")" = "1|phone|measured|0.1|-0.1|0.1 3|phone|measured|0.1|-0.1|0.1 " ]' "predicted_vs_measured: $(q "$F" "SELECT * FROM predicted_vs_measured")"
check '[ "$(q "$F" "SELECT coalesce(run, '"'"'-'"'"'), decode_ms, round(decode_change, 6) FROM canary_history WHERE device = '"'"'phone'"'"' AND canary_hash = '"'"'$CA'"'"' ORDER BY id" | tr "\n" " ")" = "fx|10.0| fx|11.0|0.1 -|12.0|0.090909 fx|11.0|-0.083333 " ]' "canary_history: $(q "$F" "SELECT * FROM canary_history")"

# ---- tailor query
out=$("$TAILOR" --db "$F" query "SELECT id, name FROM runs" 2>/dev/null)
check '[[ "$out" == *"id  name"*"7   fx"* ]]' "query table: $out"
out=$("$TAILOR" --db "$F" query "SELECT id, name FROM runs" --format csv)
check '[ "$out" = "$(printf "id,name\n7,fx")" ]' "query csv: $out"
out=$("$TAILOR" --db "$F" query "SELECT id, name, 0.5 AS h, NULL AS n FROM runs" --format json)
check '[ "$(echo "$out" | $PY -c "import json,sys; print(json.load(sys.stdin))")" = "[{'"'"'id'"'"': 7, '"'"'name'"'"': '"'"'fx'"'"', '"'"'h'"'"': 0.5, '"'"'n'"'"': None}]" ]' "query json: $out"
for bad in "DELETE FROM runs" "UPDATE runs SET name = 'x'" "SELECT 1; DELETE FROM runs" "SELECT * FROM nope"; do
	out=$("$TAILOR" --db "$F" query "$bad" 2>&1); rc=$?
	check '[ $rc = 1 ] && [ $(printf "%s\n" "$out" | wc -l) = 1 ]' "query '$bad': rc $rc: $out"
done
check '[ "$(q "$F" "SELECT count(*) FROM runs")" = 1 ]' "nothing deleted"
out=$("$TAILOR" --db "$F" query "DELETE FROM runs" 2>&1)
check '[[ "$out" == *"writes are refused"* ]]' "write message: $out"

# every analyst query of examples/queries runs (on the fixture: rows or none)
for f in "$ROOT"/examples/queries/*.sql; do
	out=$("$TAILOR" --db "$F" query --file "$f" --format csv 2>&1); rc=$?
	check '[ $rc = 0 ]' "$(basename "$f"): rc $rc: $out"
done
out=$(echo "SELECT name FROM runs" | "$TAILOR" --db "$F" query --file - --format csv)
check '[ "$out" = "$(printf "name\nfx")" ]' "query --file -: $out"

# ---- a real run: frontier, export
cat > "$tmp/a.json" <<JSON
{"name": "rep", "space": "$ROOT/examples/spaces/lfm2-like-small.json", "population": 16, "generations": 6, "seed": 5,
 "objectives": [{"metric": "params_nonembed", "direction": "max"}, {"metric": "kv_bytes_per_token", "direction": "min"},
                {"metric": "flops_per_token", "direction": "min"}],
 "constraints": [{"metric": "params", "max": 9000000}]}
JSON
D="$tmp/run.db"
"$TAILOR" --db "$D" run start "$tmp/a.json" --quiet > /dev/null 2>&1 || fail "run"
n=$("$TAILOR" --db "$D" export 1 --format jsonl | wc -l)
check '[ "$n" = "$(q "$D" "SELECT count(*) FROM candidates WHERE run_id = 1")" ]' "export rows $n"
out=$("$TAILOR" --db "$D" export 1 --format json | $PY -c "import json,sys; d=json.load(sys.stdin); print(len(d), sorted(d[0])[:3])")
check '[[ "$out" == *"['"'"'candidate'"'"', '"'"'created_at'"'"', '"'"'crowding'"'"']"* ]]' "export json: $out"
nf=$("$TAILOR" --db "$D" frontier 1 --format csv | tail -n +2 | wc -l)
check '[ "$nf" = "$(q "$D" "SELECT count(*) FROM frontier WHERE run_id = 1 AND latest")" ] && [ "$nf" -ge 1 ]' "frontier rows $nf"

# ---- the report
"$TAILOR" --db "$D" report 1 -o "$tmp/r.html" 2> /dev/null; rc=$?
check '[ $rc = 0 ] && [ -s "$tmp/r.html" ]' "report written: rc $rc"
check '! grep -qiE "<script|<link|@import|url\(|https?:|src=" "$tmp/r.html"' "report references something outside: $(grep -oiE "<script|<link|@import|url\(|https?:[^ ]*|src=" "$tmp/r.html" | head -3)"
check '[ $(grep -o "<svg" "$tmp/r.html" | wc -l) -ge 5 ]' "report has its plots (3 scatters, hypervolume, operators, strips)"
check '! grep -q "Predicted vs measured\|Canary history" "$tmp/r.html"' "report of a run without predictions or canaries has their sections"
# the fixture's run 7: predicted vs measured (the elite copy once), canaries
"$TAILOR" --db "$F" report 7 -o "$tmp/r7.html" 2> /dev/null; rc=$?
check '[ $rc = 0 ] && [ -s "$tmp/r7.html" ]' "report of run 7 written: rc $rc"
check 'grep -q "<h2>Predicted vs measured</h2>" "$tmp/r7.html"' "report 7: no predicted-vs-measured section"
check '[ "$(grep -c "<tr><td class=.mono.>aaaaaaaaaaaa</td><td>phone</td><td class=.num.>11</td><td class=.num.>10</td><td class=.num.>+10.0%</td>" "$tmp/r7.html")" = 1 ]' "report 7: the H1 row, once: $(grep -o "<tr><td class=.mono.>[a-z]*</td><td>phone</td>[^\n]*" "$tmp/r7.html" | head -3)"
check 'grep -q "RMSPE of decode ms</th><td class=.num. colspan=.3.>10.0% over 1 genome<" "$tmp/r7.html"' "report 7: RMSPE: $(grep -o "RMSPE[^/]*" "$tmp/r7.html")"
check '! grep -q "bbbbbbbbbbbb</td><td>phone" "$tmp/r7.html"' "report 7: the failed measurement's genome is listed"
check 'grep -q "<h2>Canary history</h2>" "$tmp/r7.html" && grep -q "<h3>phone</h3>" "$tmp/r7.html"' "report 7: no canary history of phone"
check '[ "$(grep -c "<tr class=.this.>" "$tmp/r7.html")" = 4 ] && [ "$(grep -c "<tr><td>2026-01-02 00:00</td><td></td>" "$tmp/r7.html")" = 1 ]' "report 7: canary rows of run 7 not highlighted: $(grep -o "<tr[^>]*><td>2026[^<]*" "$tmp/r7.html")"
check 'grep -q "<td class=.mono.>dddddddddddd</td><td class=.num.>11</td><td class=.num.>-8.3%</td>" "$tmp/r7.html"' "report 7: canary change: $(grep -o "dddddddddddd</td>.\{0,80\}" "$tmp/r7.html" | tail -1)"
check '! grep -qiE "<script|<link|@import|url\(|https?:|src=" "$tmp/r7.html"' "report 7 references something outside"
# hostile strings (issue 14), a fuzz loop: every name that reaches the HTML
# (metric, run, operator and genome names, config text, the run's, the
# candidates' and the measurements' error texts, the device facts of a
# measurement's fingerprint; device names are checked by the schema) holds markup, quotes, ]]>, newlines and bytes that
# are not UTF-8, drawn at random (seeded; TAILOR_REPORT_FUZZ rounds, default
# 12; round 0 is a fixed case); the report must carry them as text: no
# element of theirs, well-formed markup, valid UTF-8
cat > "$tmp/hostile.py" <<'PY'
import sqlite3, sys, json, random
db = sqlite3.connect(sys.argv[1]); seed = int(sys.argv[2])
r = random.Random(seed)
pieces = ["<", ">", "&", "\"", "'", "]]>", "\n", "</title>", "<script>alert(3)</script>",
          "<img src=x onerror=alert(5)>", "' onmouseover='alert(4)", "<svg onload=alert(6)>",
          "&amp;", "&#x3c;", "<!--", "-->", "<![CDATA[", "\u00e9", "\u2028", "</text>", "</figcaption>",
          "<style>", "</style>", "a", "b", "1", " "]
def name():
    return "".join(r.choice(pieces) for _ in range(r.randint(1, 8)))
if seed == 0:
    bad = ["a</title><script>alert(3)</script>", "b' onmouseover='alert(4)", 'c"><img src=x onerror=alert(5)>', "d]]>&amp;\n<svg onload=alert(6)>"]
else:
    bad = [name() for _ in range(4)]
raw = (name().encode() + bytes(r.randint(0x80, 0xff) for _ in range(3)) + b"<script>alert(7)</script>\xc3").decode("latin-1")
cfg = json.dumps({"objectives": [{"metric": bad[0], "direction": "min"}, {"metric": bad[1], "direction": "max"}],
                  "constraints": [{"metric": bad[2], "max": 10}], "name": bad[3]})
db.execute("INSERT INTO runs (id, name, config, mode, seed, status, generation, generations, population) VALUES (9, ?, ?, 'nsga2', 1, 'finished', 0, 1, 2)", (bad[3], cfg))
for i, h in enumerate(["f" * 64, "0" * 64]):
    db.execute("INSERT INTO genomes (hash, text, params, operators) VALUES (?, ?, 1, ?)",
               (h, bad[2], json.dumps({bad[0]: 1, raw: 2})))
    db.execute("INSERT INTO candidates (run_id, generation, genome_hash, origin, status, rank, crowding, feasible, violation, objectives) VALUES (9, 0, ?, 'sample', 'done', 0, 1, 1, 0, ?)",
               (h, json.dumps({bad[0]: 1.0 + i, bad[1]: 2.0 - i, bad[2]: 3.0})))
db.execute("INSERT INTO generations (run_id, generation, evaluated, feasible, frontier_size, hypervolume, finished_at) VALUES (9, 0, 2, 2, 2, 0.5, ?)", (bad[1],))
# error texts: the run's, a failed candidate's, failed measurements'; the
# device facts a measurement's fingerprint carries (device names are
# checked by the schema)
db.execute("UPDATE runs SET error = ? WHERE id = 9", (name() + raw,))
db.execute("INSERT INTO genomes (hash, text, params, operators) VALUES (?, ?, 1, '{}')", ("e" * 64, bad[0]))
db.execute("INSERT INTO candidates (run_id, generation, genome_hash, origin, status, error) VALUES (9, 0, ?, 'sample', 'failed', ?)", ("e" * 64, raw + name()))
db.execute("INSERT INTO devices (id, name, transport, host) VALUES (7, 'lab-7', 'ssh', ?)", (name(),))
fp = json.dumps({"cpu_model": bad[0] + raw, "cores": 4, "arch": name(), "os": bad[1], "kernel": raw, "toolchain": name()})
for st, why in (("ok", None), ("failed", "lost"), ("failed", "harness")):
    db.execute("INSERT INTO measurements (genome_hash, device_id, run_id, status, failure, error, device_fingerprint, ttft_ms, decode_ms_p50) VALUES (?, 7, 9, ?, ?, ?, ?, 1, 1)",
               ("f" * 64, st, why, None if st == "ok" else name() + raw, fp))
study = {"budgets": [1024, 4096], "seeds": 2, "seconds": 1, "noise_median": 0.01, "noise_sigma": 0.01,
         "spread": [0.1, 0.2], "agreement": [{"a": 1024, "b": 4096, "tau": 0.5, "tau_lo": 0, "tau_hi": 1, "rho": 0.5, "rho_lo": 0, "rho_hi": 1}],
         "genomes": [{"hash": bad[0] + raw, "val_bpb": [2.0, 1.5, 1.0], "seeds_val_bpb": [2.0, 2.1]}]}
db.execute("INSERT INTO events (run_id, level, kind, message, data) VALUES (9, 'info', 'quality.fidelity', ?, ?)", (name(), json.dumps(study)))
db.commit()
PY
cat > "$tmp/wellformed.py" <<'PY'
# well-formed: every tag the report opens is one it may write, closed in order
import sys, html.parser
text = open(sys.argv[1], "rb").read().decode("utf-8")  # raises on invalid UTF-8
allowed = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "dl", "dt", "dd",
           "figure", "figcaption", "svg", "g", "line", "polyline", "circle", "rect", "text", "path",
           "table", "thead", "tbody", "tr", "th", "td", "span", "pre", "details", "summary", "ul", "li",
           "code", "b", "small", "div", "polygon"}
void = {"meta", "line", "polyline", "circle", "rect", "path", "polygon"}
class P(html.parser.HTMLParser):
    def __init__(s):
        super().__init__(); s.stack = []; s.bad = []
    def handle_starttag(s, t, a):
        if t not in allowed or any(k.startswith("on") for k, _ in a): s.bad.append(t)
        if t not in void: s.stack.append(t)
    def handle_startendtag(s, t, a):
        if t not in allowed or any(k.startswith("on") for k, _ in a): s.bad.append(t)
    def handle_endtag(s, t):
        if t in void: return
        if not s.stack or s.stack[-1] != t: s.bad.append("/" + t)
        else: s.stack.pop()
    def handle_comment(s, d): s.bad.append("<!--")
p = P(); p.feed(text); p.close()
if p.bad or p.stack:
    print("not well-formed: unexpected", p.bad[:5], "left open", p.stack[-5:], file=sys.stderr); sys.exit(1)
PY
fz_bad=0
for seed in $(seq 0 $(( ${TAILOR_REPORT_FUZZ:-12} - 1 ))); do
	X="$tmp/hostile-$seed.db"
	"$TAILOR" --db "$X" db migrate > /dev/null || fail "db migrate (hostile $seed)"
	$PY "$tmp/hostile.py" "$X" "$seed" || { fail "hostile fixture $seed"; continue; }
	"$TAILOR" --db "$X" report 9 -o "$tmp/r9.html" 2> /dev/null; rc=$?
	if [ $rc != 0 ] || [ ! -s "$tmp/r9.html" ]; then fail "report of hostile run $seed: rc $rc"; fz_bad=$((fz_bad + 1)); continue; fi
	if grep -qiE "<script|<img|<svg onload|<style>[^<]*</style>.*<style>" "$tmp/r9.html"; then
		fail "report of hostile run $seed carries injected markup: $(grep -oiE "<script|<img|<svg onload" "$tmp/r9.html" | head -3)"; fz_bad=$((fz_bad + 1)); continue; fi
	if ! $PY "$tmp/wellformed.py" "$tmp/r9.html"; then fail "report of hostile run $seed is not well-formed HTML or not UTF-8"; fz_bad=$((fz_bad + 1)); continue; fi
	if [ "$seed" = 0 ]; then
		check '[ "$(grep -c "a&lt;/title&gt;&lt;script&gt;alert(3)" "$tmp/r9.html")" -ge 2 ]' "report 9: the hostile metric name, escaped, in the plot's title and caption"
		check 'grep -q "<h2>Devices</h2>" "$tmp/r9.html" && grep -q "<h2>Failures</h2>" "$tmp/r9.html" && grep -q "<h2>Quality fidelity</h2>" "$tmp/r9.html" && [ "$(grep -o "&lt;script&gt;alert(7)" "$tmp/r9.html" | wc -l)" -ge 5 ]' "report 9: the errors and device facts, escaped, in the summary, Devices and Failures: $(grep -o "&lt;script&gt;alert(7)" "$tmp/r9.html" | wc -l) found"
	fi
	ok
done
out=$("$TAILOR" --db "$D" report 99 -o "$tmp/x.html" 2>&1); rc=$?
check '[ $rc = 1 ] && [ ! -e "$tmp/x.html" ] && [[ "$out" == *"run 99: no such run"* ]]' "report of a missing run: $out"

CHROME=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROME" ]; then
	echo "test_report: $checks checks, $fails failed; chromium missing: browser checks skipped" >&2
	[ $fails = 0 ] && exit 77
	exit 1
fi
flags=(--headless=new --no-sandbox --disable-gpu --no-first-run --disable-background-networking
       --disable-component-update --disable-sync --disable-default-apps
       --user-data-dir="$tmp/profile")
timeout 120 "$CHROME" "${flags[@]}" --dump-dom "file://$tmp/r.html" > "$tmp/dom.html" 2> /dev/null
check '[ $(grep -o "<svg" "$tmp/dom.html" | wc -l) -ge 5 ] && grep -q "<circle" "$tmp/dom.html" && grep -q "Pareto fronts" "$tmp/dom.html"' "the DOM lacks the plots ($(wc -c < "$tmp/dom.html") bytes)"
timeout 120 "$CHROME" "${flags[@]}" --log-net-log="$tmp/net.json" --window-size=1200,1600 \
	--screenshot="$tmp/shot.png" "file://$tmp/r.html" > /dev/null 2>&1
check '[ -s "$tmp/shot.png" ]' "no screenshot"
# not blank: many non-white pixels and several colours (PNG decoded with zlib)
out=$($PY - "$tmp/shot.png" <<'PYEOF'
import struct, sys, zlib
data = open(sys.argv[1], 'rb').read()
pos, idat, w, h, ct = 8, b'', 0, 0, 0
while pos < len(data):
    n, t = struct.unpack('>I4s', data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if t == b'IHDR':
        w, h, bd, ct = struct.unpack('>IIBB', body[:10])
    elif t == b'IDAT':
        idat += body
    pos += 12 + n
raw = zlib.decompress(idat)
bpp = {2: 3, 6: 4}[ct]
stride = w * bpp
prev = bytearray(stride)
nonwhite, colours = 0, set()
i = 0
for y in range(h):
    f = raw[i]; i += 1
    line = bytearray(raw[i:i + stride]); i += stride
    for x in range(stride):
        a = line[x - bpp] if x >= bpp else 0
        b = prev[x]
        c = prev[x - bpp] if x >= bpp else 0
        if f == 1: line[x] = (line[x] + a) & 255
        elif f == 2: line[x] = (line[x] + b) & 255
        elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    prev = line
    if y % 4 == 0:
        for x in range(0, w, 4):
            px = tuple(line[x * bpp:x * bpp + 3])
            colours.add(px)
            nonwhite += px != (255, 255, 255)
print(nonwhite, len(colours))
PYEOF
)
read -r nonwhite ncol <<< "$out"
check '[ "${nonwhite:-0}" -gt 2000 ] && [ "${ncol:-0}" -gt 10 ]' "screenshot looks blank: $out"
# requests: only the browser's own pings may appear, none from the page
reqs=$(grep -o '"url":"[^"]*"' "$tmp/net.json" 2> /dev/null | sed 's/"url":"//; s/"$//' |
	grep -vE '^https?://([a-z0-9.-]+\.)?(google\.com|googleapis\.com|gvt1\.com|gstatic\.com)/' |
	grep -v "^file://$tmp/r.html" | sort -u)
check '[ -z "$reqs" ]' "the page made requests: $reqs"
echo "test_report: $checks checks, $fails failed" >&2
[ $fails = 0 ]

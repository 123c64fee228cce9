#!/usr/bin/env bash
# tests/test_report.sh: what analysts get (issue 9), on the built binary.
#  - every view against hand-computed values on a fixture database written
#    with plain SQL (run_summary, frontier, generation_stats,
#    generation_operators, device_summary, measurement_stats);
#  - tailor query: rows in table, CSV and JSON; a write, two statements and a
#    bad table each refused with one line, exit 1;
#  - tailor frontier / export on a real run: JSON that parses, one row per
#    candidate;
#  - tailor report: one HTML file with no script, link or URL; opened in
#    headless Chromium it renders its plots (SVG elements in the DOM), the
#    screenshot is not blank, and the page makes no network request (the
#    browser's own update and account pings aside).
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

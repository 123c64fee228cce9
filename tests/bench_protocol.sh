#!/bin/sh
# tests/bench_protocol.sh: not a test; the figure behind the measurement
# protocol (docs/devices.md, "Measurement protocol"). One build measured with
# 10 repeats on the `local` device through `tailor bench --device` (the same
# path as any lab device: warm-up, repeats, CV check with bounded
# re-measurement, every run stored), M times; prints each measurement's
# per-round decode CV, the CV after re-measurement and how often
# re-measurement was needed.
#
# usage: tests/bench_protocol.sh TAILOR [M [GENOME [bench flags...]]]
#   e.g. tests/bench_protocol.sh build/cli/tailor 3 examples/genomes/lfm2-350m.json \
#            --prompt 64 --gen 32 --threads 1
# A throwaway database in a temp dir; nothing else is written.
set -eu
TAILOR=$1
M=${2:-3}
GENOME=${3:-$(dirname "$0")/../examples/genomes/lfm2-350m.json}
[ $# -ge 3 ] && shift 3 || shift $#
[ $# -gt 0 ] || set -- --prompt 64 --gen 32 --threads 1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export TAILOR_DB="$tmp/bench.db"
i=1
while [ "$i" -le "$M" ]; do
	"$TAILOR" bench "$GENOME" --device local --repeats 10 "$@" >"$tmp/out.$i"
	cat "$tmp/out.$i"
	i=$((i + 1))
done
sqlite3 -separator ' ' "$TAILOR_DB" "
SELECT 'measurement ' || id || ': ' || repeats || ' repeats, decode_ms_p50 median '
       || printf('%.3f', decode_ms_p50) || ' ms, CV after re-measurement '
       || printf('%.2f%%', 100 * cv) || ', re-measured ' || remeasured
       || ' time(s), CV per round ' || json_extract(device_fingerprint, '\$.protocol_result.round_cv')
       || ', ' || (SELECT count(*) FROM measurement_repeats r WHERE r.measurement_id = m.id)
       || ' runs stored'
  FROM measurements m WHERE status = 'ok' ORDER BY id;
SELECT 'summary: ' || count(*) || ' measurements of 10 repeats, CV threshold '
       || printf('%.0f%%', 100 * json_extract(protocol, '\$.cv_threshold'))
       || ', re-measurement needed in ' || sum(remeasured > 0) || ' (' || sum(remeasured)
       || ' extra rounds), final CV median ' || printf('%.2f%%', 100 * (SELECT cv FROM measurements
          WHERE status = 'ok' ORDER BY cv LIMIT 1 OFFSET (SELECT (count(*) - 1) / 2 FROM measurements WHERE status = 'ok')))
       || ', max ' || printf('%.2f%%', 100 * max(cv))
  FROM measurements WHERE status = 'ok';"

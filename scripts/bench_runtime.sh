#!/usr/bin/env bash
# scripts/bench_runtime.sh: the runtime's speed table on this machine (a
# benchmark, not a test: quote its output, never assert on it).
#
#   scripts/bench_runtime.sh [--tailor PATH] [--genome FILE] [--threads T]
#                            [--cflags FLAGS] [--repeat R] [--quick]
#
# For q4_0 and q8_0 weights (f16 KV cache) it prints decode tok/s at depth
# 0 / 4096 / 32768 and prefill tok/s at 512 and 4096 tokens, peak RSS, and
# each figure as a fraction of its bound measured here in the same run:
#   decode:  roofline = read bandwidth (tailor bench --bandwidth) / bytes
#            read per token (weights + the KV cache filled to that depth);
#   prefill: int8-dot peak (GOP/s) / multiply-adds per token (the
#            matrices' parameters, the embedding left out), the compute
#            bound of a prompt (attention's products not counted).
# --cflags builds another kernel path of the same sources (e.g.
# '-O3 -march=native -mno-avx512f' for AVX2 on an AVX-512 machine).
# Run it on a quiet machine: nothing else (builds, tests) beside it.
set -euo pipefail

TAILOR=${TAILOR:-}
GENOME=
THREADS=2
CFLAGS_B='-O3 -march=native'
REPEAT=3
QUICK=0
usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
	case "$1" in
	--tailor|--genome|--threads|--cflags|--repeat)
		[ $# -ge 2 ] || { echo "bench_runtime: option '$1' needs a value (see --help)" >&2; exit 2; } ;;
	esac
	case "$1" in
	--tailor) TAILOR=$2; shift 2 ;;
	--genome) GENOME=$2; shift 2 ;;
	--threads) THREADS=$2; shift 2 ;;
	--cflags) CFLAGS_B=$2; shift 2 ;;
	--repeat) REPEAT=$2; shift 2 ;;
	--quick) QUICK=1; shift ;;
	-h|--help) usage; exit 0 ;;
	*) echo "bench_runtime: unknown argument '$1' (see --help)" >&2; exit 2 ;;
	esac
done
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ -n "$TAILOR" ] || TAILOR=$ROOT/build-release/cli/tailor
[ -n "$GENOME" ] || GENOME=$ROOT/examples/genomes/lfm2-350m.json
[ -x "$TAILOR" ] || { echo "bench_runtime: $TAILOR: not built (meson compile -C build-release, or --tailor PATH)" >&2; exit 1; }
[ -f "$GENOME" ] || { echo "bench_runtime: $GENOME: no such genome (--genome FILE)" >&2; exit 1; }
PY=/usr/bin/python3
command -v "$PY" >/dev/null || PY=python3
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

bench() { # name args...
	local name=$1; shift
	echo "bench_runtime: $name" >&2
	"$TAILOR" bench "$GENOME" --threads "$THREADS" --cflags "$CFLAGS_B" --json "$@" > "$TMP/$name.json"
}
"$TAILOR" bench --bandwidth --threads "$THREADS" --cflags "$CFLAGS_B" --json > "$TMP/bw.json"
DEPTHS="0 4096 32768"; PROMPTS="512 4096"
[ "$QUICK" = 1 ] && { DEPTHS="0 4096"; PROMPTS="512"; }
for q in q4_0 q8_0; do
	for d in $DEPTHS; do bench "dec-$q-$d" --quant "$q" --depth "$d" --prompt 16 --gen 64 --repeat "$REPEAT"; done
	for p in $PROMPTS; do bench "pre-$q-$p" --quant "$q" --prompt "$p" --gen 1 --repeat "$REPEAT"; done
done
"$PY" - "$TMP" "$GENOME" "$THREADS" "$CFLAGS_B" <<'PYEOF'
import json, os, sys, glob
tmp, genome, threads, cflags = sys.argv[1:5]
bw = json.load(open(os.path.join(tmp, 'bw.json')))
rd, dot = bw['read_gbs'] * 1e9, bw['dot_gops'] * 1e9
print(f"machine: {bw['isa']} kernels, {threads} threads, cflags '{cflags}'")
print(f"read {bw['read_gbs']:.2f} GB/s, int8-dot peak {bw['dot_gops']:.1f} GOP/s "
      f"(tailor bench --bandwidth, this run); genome {os.path.basename(genome)}")
print(f"{'figure':34} {'tok/s':>9} {'bound':>9} {'fraction':>8} {'peak RSS':>10}")
def row(label, v, bound, rss):
    print(f"{label:34} {v:9.1f} {bound:9.1f} {v / bound:8.2f} {rss / 2**20:8.1f} MiB")
for f in sorted(glob.glob(os.path.join(tmp, 'dec-*.json')), key=lambda p: (p.split('-')[1], int(p.split('-')[-1][:-5]))):
    j = json.load(open(f))
    q, d = j['quant'], j['depth']
    # bytes per token: every weight, and the cache up to the decode position
    pos = j['depth'] + j['prompt'] + j['gen'] / 2
    cache = j['cache_bytes'] * pos / j['ctx']
    row(f"{q} decode, depth {d}", j['decode_tok_s'], rd / (j['weight_bytes'] + cache), j['peak_rss_bytes'])
for f in sorted(glob.glob(os.path.join(tmp, 'pre-*.json')), key=lambda p: (p.split('-')[1], int(p.split('-')[-1][:-5]))):
    j = json.load(open(f))
    q = j['quant']
    bpw = {'q4_0': 18 / 32, 'q8_0': 34 / 32}[q]
    # multiply-adds per prompt token: every matrix but the (tied) embedding,
    # whose head product runs for the last token only; attention's own
    # products are left out (small at 512, not at 4096: the bound is loose)
    macs = (j['weight_bytes'] - j['vocab'] * j['d_model'] * bpw) / bpw
    row(f"{q} prefill, {j['prompt']} tokens", j['prefill_tok_s'], dot / macs, j['peak_rss_bytes'])
PYEOF

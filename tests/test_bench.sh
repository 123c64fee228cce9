#!/usr/bin/env bash
# tests/test_bench.sh: `tailor build`, the build cache, the on-device harness
# (tailor-bench) and `tailor bench`, run against the built binaries:
#  - a small genome builds; its harness runs with no argument and its JSON
#    has every key with plausible values (TTFT > 0, decode tok/s > 0, peak
#    RSS >= weight bytes), the arch hash is the genome's hash;
#  - bad harness arguments exit 2 with one line naming the flag; a context
#    that cannot fit (KV cache beyond the machine, or an allocation refused
#    under ulimit -v) exits 1 with one line;
#  - the second `tailor build` is served from the cache;
#  - the same genome and seed give the same token ids twice;
#  - `tailor bench` summarises, passes --json through, and names the binary
#    when a harness prints garbage or crashes; a failed compile names the log;
#  - the build dir cross-compiles for aarch64 and, under qemu-user with f32
#    weights, generates the same token ids as the x86 run.
# Exit 77 (skip) at the end only when the aarch64 cross tools are missing and
# everything else passed.
set -u
TAILOR=${1:?usage: test_bench.sh PATH_TO_TAILOR PATH_TO_TAILOR_BENCH}
BENCH=${2:?usage: test_bench.sh PATH_TO_TAILOR PATH_TO_TAILOR_BENCH}
fails=0
checks=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export TAILOR_CACHE="$tmp/cache"
unset TAILOR_GENOMES

fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
ok() { checks=$((checks + 1)); }

# A 10-layer genome of examples/spaces/tiny.json (d 192, vocab 256): linear
# attention, SwiGLU, a recurrence, full softmax attention (KV cache), a gated
# short conv. Written out so the test does not depend on the sampler.
G='tailor-genome/1 d=192 vocab=256 ffn_multiple=32 rope_theta=1000000 tied=1 | 4.0.0.0.0 0.0.0.0.0 3.0.0.0.0 0.0.0.0.0 2.0.0.0.0 0.0.0.0.0 3.0.0.0.0 0.0.0.0.0 1.0.0.0.0 0.0.0.0.0 | c0 op=3.0.0.2.0 ffn=256 C=0.2.1.1 V=0.2.1.1 | c1 op=1.3.0.0.0 len=2 C=4.2.1.1 B=3.2.1.1 V=3.2.1.1 | c2 op=0.4.0.1.1 h=2 kv=1 hd=32 qkn=1 rope=0 C=3.2.1.1 B=3.2.1.2 V=3.2.1.2 | c3 op=2.2.0.0.1 h=2 hd=32 C=0.2.1.1 B=0.2.1.1 V=4.2.1.1 A=0.2.1.1 | c4 op=0.1.0.0.1 h=4 kv=1 hd=16 qkn=0 rope=0 C=0.2.1.1 B=0.2.1.4 V=0.2.1.4'

# run_expect CODE LINES PATTERN -- CMD...: exit status, lines on stderr, a
# pattern in stdout+stderr. Output in $tmp/out, $tmp/err.
run_expect() {
	local want=$1 lines=$2 pat=$3
	shift 4
	ok
	"$@" >"$tmp/out" 2>"$tmp/err"
	local got=$?
	if [ "$got" != "$want" ]; then
		fail "$*: exit $got, want $want (stderr: $(head -c 400 "$tmp/err"))"
		return 1
	fi
	local n
	n=$(wc -l <"$tmp/err")
	if [ "$lines" != -1 ] && [ "$n" != "$lines" ]; then
		fail "$*: $n lines on stderr, want $lines: $(head -c 600 "$tmp/err")"
		return 1
	fi
	if [ -n "$pat" ] && ! grep -q -- "$pat" "$tmp/out" "$tmp/err"; then
		fail "$*: output lacks '$pat': $(cat "$tmp/out" "$tmp/err" | head -c 600)"
		return 1
	fi
	return 0
}

# check_json FILE PYTHON-EXPRESSIONS...: each expression over `j` must hold.
check_json() {
	local f=$1
	shift
	ok
	if ! python3 - "$f" "$@" <<'EOF'
import json, sys
try:
    j = json.load(open(sys.argv[1]))
except Exception as e:
    print("not JSON: %s: %s" % (e, open(sys.argv[1]).read()[:200]))
    sys.exit(1)
bad = [e for e in sys.argv[2:] if not eval(e, {"j": j})]
if bad:
    print("does not hold: %s in %s" % ("; ".join(bad), json.dumps(j)[:1500]))
    sys.exit(1)
EOF
	then
		fail "JSON check of $f"
	fi
}

jget() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

hash=$("$TAILOR" genome show "$G" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["hash"])')
[ ${#hash} = 64 ] || fail "genome validate gave no hash: '$hash'"

# ---- tailor build -o DIR ----------------------------------------------------
b1="$tmp/b1"
if run_expect 0 0 "binary" -- "$TAILOR" build "$G" -o "$b1"; then
	grep -q "^binary *$b1/tailor-bench$" "$tmp/out" || fail "build: binary line: $(cat "$tmp/out")"
fi
for f in Makefile build.json arch.txt bench_config.h bench_main.c model.c tl.h build.log; do
	ok
	[ -f "$b1/$f" ] || fail "build dir lacks $f"
done
for f in cmd_build.c genome.h db.h emit.c op_emit.h; do
	ok
	[ ! -e "$b1/$f" ] || fail "build dir holds $f (host-only source)"
done
check_json "$b1/build.json" 'j["format"] == "tailor-build"' 'j["version"] == 1' \
	"j['arch_hash'] == '$hash'" 'len(j["sources_hash"]) == 64' 'j["compiler"] == "cc"' \
	'j["flags"] == "-O3 -march=native"' 'len(j["binary_sha256"]) == 64' 'j["created"]'
key=$(jget "$b1/build.json" key)

# the harness runs with no argument (defaults: prompt 512, gen 128)
if run_expect 0 0 "" -- "$b1/tailor-bench"; then
	cp "$tmp/out" "$tmp/default.json"
	check_json "$tmp/default.json" 'j["prompt"] == 512' 'j["gen"] == 128' 'j["depth"] == 0' \
		'j["threads"] == 2' 'j["quant"] == "q4_0"' 'j["kv"] == "f16"' 'j["tokens_n"] == 129'
fi

# a small run, every key and plausible values
keys='format format_version tool tool_version build_id arch_hash isa threads quant kv prompt gen depth ctx seed repeat init_ms fill_ms ttft_ms prefill_ms prefill_tok_s decode_ms_p50 decode_ms_p95 decode_tok_s peak_rss_bytes maxrss_bytes weight_bytes cache_bytes activation_bytes tokens_checksum tokens_first tokens_n deterministic runs'
if run_expect 0 0 "" -- "$b1/tailor-bench" --prompt 24 --gen 12 --threads 2 --seed 5; then
	cp "$tmp/out" "$tmp/s5a.json"
	[ "$(wc -l <"$tmp/out")" = 1 ] || fail "harness: more than one line on stdout"
	exprs=()
	for k in $keys; do exprs+=("'$k' in j"); done
	check_json "$tmp/s5a.json" "${exprs[@]}" 'j["format"] == "tailor-bench"' \
		"j['arch_hash'] == '$hash'" "j['build_id'] == '$key'" 'j["ttft_ms"] > 0' \
		'j["prefill_ms"] > 0 and j["ttft_ms"] >= j["prefill_ms"]' 'j["prefill_tok_s"] > 0' \
		'j["decode_tok_s"] > 0' '0 < j["decode_ms_p50"] <= j["decode_ms_p95"]' \
		'j["peak_rss_bytes"] >= j["weight_bytes"] > 0' 'j["maxrss_bytes"] >= j["weight_bytes"]' \
		'j["cache_bytes"] > 0 and j["activation_bytes"] > 0' 'j["ctx"] == 36' \
		'j["tokens_n"] == 13 and len(j["tokens_first"]) == 13' \
		'all(0 <= t < 256 for t in j["tokens_first"])' 'len(j["tokens_checksum"]) == 16' \
		'j["isa"] in ("avx512-vnni", "avx2", "neon-dotprod", "neon", "scalar")' \
		'j["prompt"] == 24 and j["gen"] == 12 and j["seed"] == 5' 'len(j["runs"]) == 1'
fi
# the same genome and seed: the same tokens; repeats agree and are listed
if run_expect 0 0 "" -- "$b1/tailor-bench" --prompt 24 --gen 12 --seed 5 --repeat 3 --threads 1; then
	cp "$tmp/out" "$tmp/s5b.json"
	a=$(jget "$tmp/s5a.json" tokens_checksum)
	check_json "$tmp/s5b.json" "j['tokens_checksum'] == '$a'" 'j["deterministic"] is True' \
		'len(j["runs"]) == 3' "all(r['tokens_checksum'] == '$a' for r in j['runs'])"
fi
# depth: decoding starts at D + P; the context is D + P + N
if run_expect 0 0 "" -- "$b1/tailor-bench" --prompt 8 --gen 4 --depth 100 --kv f32 --quant q8_0; then
	check_json "$tmp/out" 'j["depth"] == 100 and j["ctx"] == 112 and j["decode_start"] == 108' \
		'j["quant"] == "q8_0" and j["kv"] == "f32"' 'j["fill_ms"] >= 0'
fi

# ---- harness: bad arguments exit 2 with one line naming the flag -------------
run_expect 2 1 "\-\-prompt" -- "$b1/tailor-bench" --prompt x
run_expect 2 1 "\-\-prompt" -- "$b1/tailor-bench" --prompt 0
run_expect 2 1 "\-\-gen" -- "$b1/tailor-bench" --gen -3
run_expect 2 1 "\-\-gen" -- "$b1/tailor-bench" --gen
run_expect 2 1 "\-\-depth" -- "$b1/tailor-bench" --depth 99999999999999
run_expect 2 1 "\-\-threads" -- "$b1/tailor-bench" --threads 0
run_expect 2 1 "\-\-quant" -- "$b1/tailor-bench" --quant q5_k
run_expect 2 1 "\-\-kv" -- "$b1/tailor-bench" --kv q8
run_expect 2 1 "\-\-repeat" -- "$b1/tailor-bench" --repeat 0
run_expect 2 1 "\-\-seed" -- "$b1/tailor-bench" --seed -1
run_expect 2 1 "unknown option '--bogus'" -- "$b1/tailor-bench" --bogus
run_expect 2 1 "unexpected argument 'extra'" -- "$b1/tailor-bench" extra
run_expect 0 0 "usage: tailor-bench" -- "$b1/tailor-bench" --help
ok
[ ! -s "$tmp/err" ] || fail "harness --help wrote to stderr"
run_expect 1 1 "arch.*no-such-file" -- "$b1/tailor-bench" --arch "$tmp/no-such-file"
printf 'arch/1 d=0 vocab=1\n' >"$tmp/bad-arch.txt"
run_expect 1 1 "bad-arch.txt" -- "$b1/tailor-bench" --arch "$tmp/bad-arch.txt"

# ---- a context that does not fit: exit 1, one line, nothing on stdout --------
run_expect 1 1 "context" -- "$b1/tailor-bench" --depth 17179869184 --prompt 8 --gen 4
ok
[ ! -s "$tmp/out" ] || fail "impossible context: output on stdout"
# an allocation the system refuses (16M positions of KV cache, 2 GB, under a
# 512 MB address-space limit)
ok
(ulimit -v 524288 && exec "$b1/tailor-bench" --depth 16000000 --prompt 8 --gen 4) \
	>"$tmp/out" 2>"$tmp/err"
rc=$?
if [ $rc != 1 ] || [ "$(wc -l <"$tmp/err")" != 1 ] || ! grep -q "memory" "$tmp/err"; then
	fail "allocation failure: exit $rc, want 1 and one line about memory: $(head -c 400 "$tmp/err")"
fi

# ---- the meson-built harness (sanitizers in the ASan build): --arch needed ---
run_expect 2 1 "\-\-arch" -- "$BENCH"
if run_expect 0 0 "" -- "$BENCH" --arch "$b1/arch.txt" --prompt 16 --gen 6 --depth 5 --threads 2; then
	check_json "$tmp/out" "j['arch_hash'] == '$hash'" 'j["build_id"] == "dev"' \
		'j["arch_source"].endswith("arch.txt")' 'j["tokens_n"] == 7'
fi
run_expect 0 0 "" -- "$BENCH" --arch "$b1/arch.txt" --prompt 5 --gen 3 --quant f32 --repeat 2 --threads 1

# ---- the build cache -----------------------------------------------------------
run_expect 0 0 "compiled in" -- "$TAILOR" build "$G"
cdir=$(awk '$1 == "build" {print $2}' "$tmp/out")
ok
case "$cdir" in "$TAILOR_CACHE/builds/$key") ;; *) fail "cache dir '$cdir', want $TAILOR_CACHE/builds/$key" ;; esac
t0=$(date +%s%N)
run_expect 0 0 "(cached)" -- "$TAILOR" build "$G"
t1=$(date +%s%N)
ok
[ $(((t1 - t0) / 1000000)) -lt 2000 ] || fail "cached build took $(((t1 - t0) / 1000000)) ms"
# -o into the same dir again: reused
run_expect 0 0 "(cached)" -- "$TAILOR" build "$G" -o "$b1"
# another default quant is another build
run_expect 0 0 "compiled in" -- "$TAILOR" build "$G" --quant f32 -o "$tmp/b-f32"
if run_expect 0 0 "" -- "$tmp/b-f32/tailor-bench" --prompt 4 --gen 2; then
	check_json "$tmp/out" 'j["quant"] == "f32"'
fi

# ---- tailor build: errors ---------------------------------------------------------
mkdir -p "$tmp/foreign" && echo hi >"$tmp/foreign/notes.txt"
run_expect 1 1 "not a tailor build dir" -- "$TAILOR" build "$G" -o "$tmp/foreign"
run_expect 1 1 "log: .*build.log" -- "$TAILOR" build "$G" --cc false -o "$tmp/b-false"
run_expect 1 1 "cannot be run" -- "$TAILOR" build "$G" --cc "$tmp/no-such-cc" -o "$tmp/b-nocc"
run_expect 1 1 "log: $TAILOR_CACHE/builds/.*failed/build.log" -- "$TAILOR" build "$G" --cflags "-DNO -Wl,--no-such-linker-flag"
run_expect 2 1 "\-\-cflags" -- "$TAILOR" build "$G" --cflags "-DX='1'"
run_expect 2 1 "\-\-quant" -- "$TAILOR" build "$G" --quant q5
run_expect 2 1 "missing GENOME" -- "$TAILOR" build
run_expect 2 1 "no such file or preset" -- "$TAILOR" build no-such-genome-xyz
run_expect 0 0 "usage: tailor build" -- "$TAILOR" build --help

# ---- tailor bench ------------------------------------------------------------------
if run_expect 0 0 "TTFT" -- "$TAILOR" bench "$G" --prompt 24 --gen 12 --seed 5; then
	for w in decode "peak RSS" "(cached)" "$(jget "$tmp/s5a.json" tokens_checksum)"; do
		ok
		grep -q -- "$w" "$tmp/out" || fail "bench summary lacks '$w': $(cat "$tmp/out")"
	done
fi
if run_expect 0 0 "" -- "$TAILOR" bench "$G" --prompt 24 --gen 12 --seed 5 --json; then
	check_json "$tmp/out" "j['tokens_checksum'] == '$(jget "$tmp/s5a.json" tokens_checksum)'" \
		"j['build_id'] == '$key'"
fi
run_expect 2 1 "\-\-prompt" -- "$TAILOR" bench "$G" --prompt 0
run_expect 2 1 "missing GENOME" -- "$TAILOR" bench
run_expect 2 1 "takes no GENOME" -- "$TAILOR" bench --bandwidth "$G"
run_expect 2 1 "bandwidth takes only" -- "$TAILOR" bench --bandwidth --prompt 5
run_expect 1 1 "context" -- "$TAILOR" bench "$G" --depth 17179869184
run_expect 0 0 "usage: tailor bench" -- "$TAILOR" bench --help
if run_expect 0 0 "" -- "$TAILOR" bench --bandwidth --threads 1 --json; then
	check_json "$tmp/out" 'j["format"] == "tailor-bench-probe"' 'j["read_gbs"] > 0' \
		'j["copy_gbs"] > 0' 'j["fma_gflops"] > 0' 'j["dot_gops"] > 0' 'j["threads"] == 1'
fi

# A harness that prints garbage, or crashes: one line naming the binary. The
# cache entry is doctored (binary and its recorded hash) so tailor runs it.
doctor() { # script body
	printf '#!/bin/sh\n%s\n' "$1" >"$cdir/tailor-bench"
	chmod +x "$cdir/tailor-bench"
	local h
	h=$(sha256sum "$cdir/tailor-bench" | cut -c1-64)
	sed -i "s/\"binary_sha256\": \"[0-9a-f]*\"/\"binary_sha256\": \"$h\"/" "$cdir/build.json"
}
doctor 'echo "Segmentation fault? no: garbage"'
run_expect 1 1 "$cdir/tailor-bench: output is not a JSON object" -- "$TAILOR" bench "$G" --prompt 4 --gen 2
doctor 'echo "{\"format\":\"something-else\"}"'
run_expect 1 1 "not a tailor-bench result" -- "$TAILOR" bench "$G" --prompt 4 --gen 2
doctor 'kill -SEGV $$'
run_expect 1 1 "$cdir/tailor-bench: crashed: killed by signal 11" -- "$TAILOR" bench "$G" --prompt 4 --gen 2
doctor 'echo "tailor-bench: model: out of memory" >&2; exit 1'
run_expect 1 1 "exited with status 1: tailor-bench: model: out of memory" -- "$TAILOR" bench "$G" --prompt 4 --gen 2
doctor 'sleep 30'
run_expect 1 1 "timeout" -- "$TAILOR" bench "$G" --prompt 4 --gen 2 --timeout 1
# a doctored entry whose hash no longer matches is rebuilt, not run
echo 'garbage' >>"$cdir/tailor-bench"
run_expect 0 0 "compiled in" -- "$TAILOR" build "$G"

# ---- aarch64: cross-compile the build dir, run it under qemu-user --------------
skip=0
if command -v aarch64-linux-gnu-gcc >/dev/null && command -v qemu-aarch64 >/dev/null &&
	[ -d /usr/aarch64-linux-gnu ]; then
	arm="$tmp/arm"
	mkdir -p "$arm"
	cp "$b1"/* "$arm"/ && rm -f "$arm/tailor-bench"
	ok
	if ! make -s -C "$arm" CC=aarch64-linux-gnu-gcc CFLAGS='-O2 -march=armv8.2-a+dotprod' \
		>"$tmp/make.log" 2>&1; then
		fail "aarch64 cross build: $(tail -5 "$tmp/make.log")"
	else
		if run_expect 0 0 "" -- qemu-aarch64 -L /usr/aarch64-linux-gnu "$arm/tailor-bench" \
			--quant f32 --prompt 16 --gen 16 --seed 3; then
			cp "$tmp/out" "$tmp/arm.json"
			if run_expect 0 0 "" -- "$b1/tailor-bench" --quant f32 --prompt 16 --gen 16 --seed 3; then
				x=$(jget "$tmp/out" tokens_checksum)
				check_json "$tmp/arm.json" 'j["isa"] == "neon-dotprod"' \
					"j['tokens_checksum'] == '$x'" "j['arch_hash'] == '$hash'" \
					"j['build_id'] == '$key'"
			fi
		fi
	fi
else
	echo "SKIP: aarch64-linux-gnu-gcc or qemu-aarch64 missing (scripts/deps.sh installs them)" >&2
	skip=1
fi

# ---- children die with tailor (issue 14): kill -9 of tailor while its
# harness runs, and while its compiler runs, leaves no process of ours; the
# half-made build dir of the killed compile is removed by the next build
mine() { pgrep -f "$TAILOR_CACHE" | grep -v "^$$\$" || true; }
"$TAILOR" bench "$G" --prompt 2000000 --gen 1 --timeout 600 > /dev/null 2>&1 &
tp=$!
for i in $(seq 1 200); do [ -n "$(pgrep -f "$TAILOR_CACHE/builds/.*/tailor-bench")" ] && break; sleep 0.05; done
kill -9 "$tp"; wait "$tp" 2> /dev/null
sleep 0.5
left=$(mine)
if [ -z "$left" ]; then ok; else fail "kill -9 during a harness run left: $(ps -o pid,args -p "$(echo $left | tr ' ' ,)" | tail -n +2)"; pkill -9 -f "$TAILOR_CACHE"; fi
G2=${G/ffn=256/ffn=288}
"$TAILOR" build "$G2" > /dev/null 2>&1 &
tp=$!
for i in $(seq 1 200); do [ -n "$(ls -d "$TAILOR_CACHE"/builds/.tmp-* 2> /dev/null)" ] && break; sleep 0.05; done
sleep 0.3
kill -9 "$tp"; wait "$tp" 2> /dev/null
stale=$(ls -d "$TAILOR_CACHE"/builds/.tmp-* 2> /dev/null | wc -l)
# the driver dies at once; a pass it started ends with its file (seconds)
for i in $(seq 1 100); do [ -z "$(mine)" ] && break; sleep 0.1; done
left=$(mine)
if [ -z "$left" ] && [ "$stale" -ge 1 ]; then ok; else fail "kill -9 during a compile: $stale half-made dirs, left running: $(ps -o pid,args -p "$(echo $left | tr ' ' ,)" | tail -n +2)"; fi
"$TAILOR" build "$G" > /dev/null 2>&1
n=$(ls -d "$TAILOR_CACHE"/builds/.tmp-* 2> /dev/null | wc -l)
if [ "$n" = 0 ]; then ok; else fail "the next build left $n stale .tmp dirs"; fi

echo "test_bench: $checks checks, $fails failures"
[ $fails = 0 ] || exit 1
[ $skip = 0 ] || exit 77
exit 0

#!/usr/bin/env bash
# tests/test_device_ssh.sh: the device lab end to end against a real OpenSSH
# sshd (Debian's openssh-server) that this test starts on 127.0.0.1, as the
# current user (root or not), with temporary host and user keys on a free
# port. It checks:
#  - key-file and ssh-agent authentication;
#  - add, trust (the fingerprint is ssh-keygen's, known_hosts stays readable
#    by OpenSSH), probe (facts and bandwidth), bench (a stored measurement
#    with the device's fingerprint), and that the remote work dir is gone;
#  - an unknown host key and a changed one refuse the connection with the
#    command that accepts it; a wrong user key fails with a clear message;
#  - an aarch64 device: aarch64-linux-gnu-gcc, run prefix qemu-aarch64,
#    benchmarked through sshd;
#  - faults: sshd killed during a benchmark, a command that hangs past its
#    timeout, a harness that prints garbage or exits non-zero: each is a
#    failed measurement with its reason, nothing hangs, other devices go on;
#    three failures in a row mark a device offline;
#  - two tailor processes never measure on one device at once;
#  - names, hosts, users, keys, paths and serials with spaces, quotes,
#    $(...) and ; run nothing unintended on either side;
#  - adb through a lab host (a stand-in adb on the lab host, since no phone
#    is attached here: it copies for push and runs sh for shell);
#  - compile on the device; device add --file; remove, enable, disable.
# Exit 77 (skip) only when /usr/sbin/sshd or ssh-keygen is absent.
set -u
TAILOR=${1:?usage: test_device_ssh.sh PATH_TO_TAILOR}
case "$TAILOR" in /*) ;; *) TAILOR="$PWD/$TAILOR" ;; esac
SRC=$(cd "${2:-$(dirname "$0")/..}" && pwd) # the source root (examples/)
SSHD=/usr/sbin/sshd
if [ ! -x "$SSHD" ] || ! command -v ssh-keygen >/dev/null; then
	echo "skip: $SSHD or ssh-keygen not found (apt-get install openssh-server openssh-client)"
	exit 77
fi
fails=0
checks=0
t_start=$(date +%s)
tmp=$(mktemp -d /tmp/tailor-ssh-test.XXXXXX)
sshd_pids=()
cleanup() {
	for p in "${sshd_pids[@]}"; do
		kill "$p" 2>/dev/null
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
export TAILOR_CACHE="$tmp/cache"
export TAILOR_DB="$tmp/lab.db"
unset TAILOR_GENOMES SSH_AUTH_SOCK
user=$(id -un)
cd "$tmp" || exit 1

fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
ok() { checks=$((checks + 1)); }

# expect CODE PATTERN -- ARGS...: run tailor; exit status and a pattern in
# stdout+stderr; exactly one line on stderr when the status is not 0.
expect() {
	local want=$1 pat=$2
	shift 3
	ok
	"$TAILOR" "$@" >"$tmp/out" 2>"$tmp/err"
	local got=$?
	if [ "$got" != "$want" ]; then
		fail "tailor $*: exit $got, want $want: $(head -c 600 "$tmp/out" "$tmp/err")"
		return 1
	fi
	if [ "$got" != 0 ] && [ "$(wc -l <"$tmp/err")" != 1 ]; then
		fail "tailor $*: want one line on stderr: $(head -c 600 "$tmp/err")"
	fi
	if [ -n "$pat" ] && ! grep -q -- "$pat" "$tmp/out" "$tmp/err"; then
		fail "tailor $*: output lacks '$pat': $(head -c 800 "$tmp/out" "$tmp/err")"
		return 1
	fi
	return 0
}

q() { sqlite3 "$TAILOR_DB" "$1"; }
# check_sql SQL WANT
check_sql() {
	ok
	local got
	got=$(q "$1")
	[ "$got" = "$2" ] || fail "sql: $1: got '$got', want '$2'"
}
# no_pwned: nothing ran a quoted string, here or in the remote home
no_pwned() {
	ok
	local f
	for f in "$tmp/PWNED" "$HOME/PWNED" "$tmp/cache/PWNED" /tmp/PWNED; do
		[ -e "$f" ] && fail "$f exists: a quoted string was run"
	done
}

. "$SRC/tests/lib_sshd.sh" # free_port, start_sshd, kill_sshd

[ "$(id -u)" = 0 ] && mkdir -p /run/sshd # sshd's privilege separation dir
ssh-keygen -q -t ed25519 -N '' -C host -f "$tmp/host_key" || exit 1
ssh-keygen -q -t ed25519 -N '' -C user -f "$tmp/user_key" || exit 1
ssh-keygen -q -t ed25519 -N '' -C other -f "$tmp/other_key" || exit 1
cp "$tmp/user_key.pub" "$tmp/authorized_keys"
# a key and a known_hosts file at nasty paths
nasty_key="$tmp/k e y's \$(touch PWNED);\`x\`.key"
cp "$tmp/user_key" "$nasty_key"
mkdir -p "$tmp/kh \$(touch PWNED)"
KH="$tmp/kh \$(touch PWNED)/known hosts; 'x'"
start_sshd main
port=$port_main
host_fp=$(ssh-keygen -lf "$tmp/host_key.pub" | awk '{print $2}')

# A tiny genome of examples/spaces/tiny.json (as tests/test_bench.sh).
G='tailor-genome/1 d=192 vocab=256 ffn_multiple=32 rope_theta=1000000 tied=1 | 4.0.0.0.0 0.0.0.0.0 3.0.0.0.0 0.0.0.0.0 2.0.0.0.0 0.0.0.0.0 3.0.0.0.0 0.0.0.0.0 1.0.0.0.0 0.0.0.0.0 | c0 op=3.0.0.2.0 ffn=256 C=0.2.1.1 V=0.2.1.1 | c1 op=1.3.0.0.0 len=2 C=4.2.1.1 B=3.2.1.1 V=3.2.1.1 | c2 op=0.4.0.1.1 h=2 kv=1 hd=32 qkn=1 rope=0 C=3.2.1.1 B=3.2.1.2 V=3.2.1.2 | c3 op=2.2.0.0.1 h=2 hd=32 C=0.2.1.1 B=0.2.1.1 V=4.2.1.1 A=0.2.1.1 | c4 op=0.1.0.0.1 h=4 kv=1 hd=16 qkn=0 rope=0 C=0.2.1.1 B=0.2.1.4 V=0.2.1.4'
B=(--prompt 16 --gen 4 --threads 1)
ROOT="$tmp/remote root \$(touch PWNED); 'q\" \`x\`"
# common connection flags; -O1 builds in a third of the time of -O3
C=(--host 127.0.0.1 --port "$port" --user "$user" --key "$nasty_key" --known-hosts "$KH" --timeout 5 --cflags -O1)

# ---- help and usage --------------------------------------------------------------
expect 0 "usage: tailor" -- device --help
expect 2 "missing subcommand" -- device
expect 2 "unknown subcommand 'frob'" -- device frob
expect 2 "add: missing NAME" -- device add
expect 2 "name 'a;b'" -- device add 'a;b' --host x
expect 2 "name" -- device add "$(printf 'x%.0s' $(seq 65))" --host x
expect 2 "\-\-port" -- device add p --host x --port 70000
expect 2 "go with 'add'" -- device show local --host x
expect 2 "needs --serial" -- device add ph --transport adb --host x
expect 2 "control character" -- device add nl --host "$(printf 'a\nb')"
expect 2 "\-\-device takes a GENOME" -- bench --bandwidth --device local
expect 1 "no such device" -- bench "$G" --device nope "${B[@]}"

# ---- add, trust, probe, bench ----------------------------------------------------
expect 0 "added lap" -- device add lap "${C[@]}" --work-root "$ROOT" --label laptop
expect 1 "a device of that name exists" -- device add lap "${C[@]}"
# unknown host key: refused, says how to accept it
expect 1 "tailor device trust lap" -- device probe lap --no-bandwidth
grep -q "not in" "$tmp/err" || fail "unknown host key message: $(cat "$tmp/err")"
grep -q -- "$host_fp" "$tmp/err" || fail "unknown host key message lacks the fingerprint"
expect 1 "not the expected" -- device trust lap --fingerprint SHA256:AAAA
[ -e "$KH" ] && fail "trust with a wrong --fingerprint wrote $KH"
expect 0 "$host_fp" -- device trust lap --yes
ok
ssh-keygen -F "[127.0.0.1]:$port" -f "$KH" >/dev/null || fail "OpenSSH cannot find the host in $KH"
expect 0 "already in" -- device trust lap
check_sql "SELECT host_key FROM devices WHERE name = 'lap'" "$host_fp"
t0=$(date +%s.%N)
expect 0 "lap:" -- device probe lap
echo "probe with bandwidth: $(echo "$(date +%s.%N) - $t0" | bc) s" >&2
ok
"$TAILOR" device show lap --json >"$tmp/show.json" || fail "device show --json"
python3 - "$tmp/show.json" <<'EOF' || fail "probed facts"
import json, sys
d = json.load(open(sys.argv[1]))
f = d["facts"]
assert d["status"] == "online", d
assert f["arch"] and f["kernel"] and f["cores"] >= 1 and f["memory_bytes"] > 0, f
assert f["bandwidth"]["read_gbs"] > 0 and f["bandwidth"]["copy_gbs"] > 0, f
assert d["arch"] == f["arch"]
EOF
expect 0 "lap .*TTFT" -- bench "$G" --device lap "${B[@]}"
q "DELETE FROM measurement_repeats; DELETE FROM measurements"
t0=$(date +%s.%N)
expect 0 "lap .*TTFT" -- bench "$G" --device lap "${B[@]}" --warmup 2 --repeats 3 --cv 0
echo "bench, cached build: $(echo "$(date +%s.%N) - $t0" | bc) s" >&2
grep -q "3 repeats after 2 warm-ups, decode p50 CV .*re-measured 0 times" "$tmp/out" || fail "protocol line: $(cat "$tmp/out")"
check_sql "SELECT status, failure IS NULL, ttft_ms > 0, repeats, remeasured, json_extract(protocol, '\$.warmup'), json_extract(protocol, '\$.repeats'), json_extract(protocol, '\$.cv_threshold'), json_extract(protocol, '\$.shapes[0].prompt') FROM measurements WHERE device_id = (SELECT id FROM devices WHERE name = 'lap')" "ok|1|1|3|0|2|3|0|16"
check_sql "SELECT json_extract(device_fingerprint, '\$.protocol_result.decode_ms_p50.n'), json_extract(device_fingerprint, '\$.protocol_result.warmups') FROM measurements WHERE device_id = (SELECT id FROM devices WHERE name = 'lap')" "3|2"
check_sql "SELECT count(*) FROM measurement_repeats" "3"
check_sql "SELECT json_extract(device_fingerprint, '\$.cpu_model') IS NOT NULL AND length(json_extract(device_fingerprint, '\$.build_hash')) = 64 AND json_extract(device_fingerprint, '\$.kernel') IS NOT NULL FROM measurements WHERE device_id = (SELECT id FROM devices WHERE name = 'lap')" "1"
check_sql "SELECT count(*) FROM genomes" "1"
ok
[ -d "$ROOT" ] || fail "work root $ROOT was not made"
ok
[ -z "$(ls -A "$ROOT")" ] || fail "remote work dir left behind: $(ls -A "$ROOT")"
no_pwned

# default work root ($HOME/.cache/tailor on the device): created and removed
expect 0 "added lap-home" -- device add lap-home "${C[@]}"
before=$(ls -d "$HOME"/.cache/tailor/tailor-run.* 2>/dev/null | wc -l)
expect 0 "TTFT" -- bench "$G" --device lap-home "${B[@]}"
after=$(ls -d "$HOME"/.cache/tailor/tailor-run.* 2>/dev/null | wc -l)
ok
[ "$before" = "$after" ] || fail "a work dir stayed in $HOME/.cache/tailor"

# ---- wrong keys ------------------------------------------------------------------
# a changed host key: known_hosts holds another key for the host
echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$tmp/other_key.pub")" >"$tmp/kh_changed"
expect 0 "added imposter" -- device add imposter --host 127.0.0.1 --port "$port" --key "$tmp/user_key" --known-hosts "$tmp/kh_changed"
expect 1 "host key CHANGED" -- device probe imposter --no-bandwidth
grep -q -- "--replace" "$tmp/err" || fail "changed key message lacks --replace"
expect 1 "ANOTHER key" -- device trust imposter --yes
expect 1 "FAILED (connect).*CHANGED" -- bench "$G" --device imposter "${B[@]}"
check_sql "SELECT status, failure FROM measurements WHERE device_id = (SELECT id FROM devices WHERE name = 'imposter')" "failed|connect"
expect 0 "recorded" -- device trust imposter --yes --replace
expect 0 "imposter:" -- device probe imposter --no-bandwidth
# ssh-agent instead of a key file
if command -v ssh-agent >/dev/null && command -v ssh-add >/dev/null; then
	eval "$(ssh-agent -a "$tmp/agent.sock" -s)" >/dev/null
	sshd_pids+=("$SSH_AGENT_PID")
	ssh-add -q "$tmp/user_key" 2>/dev/null
	expect 0 "added viaagent" -- device add viaagent --host 127.0.0.1 --port "$port" --agent --known-hosts "$KH"
	expect 0 "viaagent:" -- device probe viaagent --no-bandwidth
	ssh-add -q -D 2>/dev/null
	expect 1 "no key of the ssh-agent was accepted" -- device probe viaagent --no-bandwidth
	kill "$SSH_AGENT_PID" 2>/dev/null
	unset SSH_AUTH_SOCK SSH_AGENT_PID
fi
# a wrong user key
expect 0 "added wrongkey" -- device add wrongkey --host 127.0.0.1 --port "$port" --key "$tmp/other_key" --known-hosts "$KH"
expect 1 "refused key .*other_key" -- device probe wrongkey --no-bandwidth
grep -q "authorized_keys" "$tmp/err" || fail "wrong key message lacks advice"
expect 0 "added nokey" -- device add nokey --host 127.0.0.1 --port "$port" --key "$tmp/no such \$(touch PWNED).key" --known-hosts "$KH"
expect 1 "key file .*No such file" -- device probe nokey --no-bandwidth
# hosts and users that are shell syntax: nothing runs, clear failures
expect 0 "added badhost" -- device add badhost --host "127.0.0.1; touch $tmp/PWNED" --port "$port" --key "$tmp/user_key" --known-hosts "$KH" --timeout 3
expect 1 "cannot resolve host" -- device probe badhost --no-bandwidth
expect 0 "added baduser" -- device add baduser --host 127.0.0.1 --port "$port" --user "\$(touch $tmp/PWNED); x'y" --key "$tmp/user_key" --known-hosts "$KH"
expect 1 "refused key" -- device probe baduser --no-bandwidth
no_pwned

# ---- aarch64 through sshd, qemu-user as the run prefix ---------------------------
if command -v aarch64-linux-gnu-gcc >/dev/null && command -v qemu-aarch64 >/dev/null; then
	expect 0 "added arm" -- device add arm "${C[@]}" --work-root "$ROOT" --arch aarch64 \
		--cc aarch64-linux-gnu-gcc --cflags "-O1 -march=armv8.2-a+dotprod" \
		--run-prefix "qemu-aarch64 -L /usr/aarch64-linux-gnu"
	t0=$(date +%s.%N)
	expect 0 "" -- bench "$G" --device arm --prompt 8 --gen 2 --threads 1 --quant f32 --json
	echo "aarch64 bench: $(echo "$(date +%s.%N) - $t0" | bc) s" >&2
	ok
	python3 - "$tmp/out" <<'EOF' || fail "aarch64 result: $(head -c 400 "$tmp/out")"
import json, sys
r = json.loads(open(sys.argv[1]).readline())
assert r["status"] == "ok", r
isa = r["result"]["isa"]
assert "avx" not in isa and "x86" not in isa and ("neon" in isa or "scalar" in isa), isa
EOF
	check_sql "SELECT status, json_extract(device_fingerprint, '\$.toolchain') FROM measurements WHERE device_id = (SELECT id FROM devices WHERE name = 'arm')" "ok|aarch64-linux-gnu-gcc"
else
	echo "note: aarch64-linux-gnu-gcc or qemu-aarch64 missing: the aarch64 device is not tested" >&2
fi

# ---- faults ----------------------------------------------------------------------
cat >"$tmp/hang.sh" <<'EOF'
sleep 577
exec "$@"
EOF
cat >"$tmp/garbage.sh" <<'EOF'
echo 'garbage { not json'
exit 0
EOF
cat >"$tmp/fail.sh" <<'EOF'
echo "warming up" >&2
echo "boom: the phone ran out of memory" >&2
exit 3
EOF
cat >"$tmp/slow.sh" <<'EOF'
sleep 4
exec "$@"
EOF
expect 0 "added hang" -- device add hang "${C[@]}" --work-root "$ROOT" --run-prefix "sh $tmp/hang.sh"
expect 0 "added garbage" -- device add garbage "${C[@]}" --work-root "$ROOT" --run-prefix "sh $tmp/garbage.sh"
expect 0 "added crash" -- device add crash "${C[@]}" --work-root "$ROOT" --run-prefix "sh $tmp/fail.sh"
t0=$(date +%s)
expect 1 "hang .*FAILED (timeout)" -- bench "$G" --device hang --device garbage --device crash --device lap "${B[@]}" --timeout 3
dt=$(($(date +%s) - t0))
ok
[ "$dt" -lt 30 ] || fail "faults took $dt s"
grep -q "garbage .*FAILED (output).*garbage { not json" "$tmp/out" || fail "garbage: $(cat "$tmp/out")"
grep -q "crash .*FAILED (harness).*status 3: boom: the phone ran out of memory" "$tmp/out" || fail "crash: $(cat "$tmp/out")"
grep -q "lap .*TTFT" "$tmp/out" || fail "other devices go on: $(cat "$tmp/out")"
grep -q "3 of 4 devices failed" "$tmp/err" || fail "summary: $(cat "$tmp/err")"
check_sql "SELECT count(*) FROM measurements WHERE status = 'failed' AND error LIKE '%no result within 3 s%' AND failure = 'timeout'" "1"
check_sql "SELECT count(*) FROM measurements WHERE failure IN ('output', 'harness') AND error IS NOT NULL AND ttft_ms IS NULL" "2"
sleep 0.3
ok
pgrep -f "sleep 577" >/dev/null && fail "the hung command survived its timeout"
ok
[ -z "$(ls -A "$ROOT")" ] || fail "work dirs left after faults: $(ls -A "$ROOT")"
# three failures in a row: offline, with an event
expect 1 "FAILED (harness)" -- bench "$G" --device crash "${B[@]}"
check_sql "SELECT status, fail_streak FROM devices WHERE name = 'crash'" "online|2"
expect 1 "FAILED (harness)" -- bench "$G" --device crash "${B[@]}"
check_sql "SELECT status, fail_streak FROM devices WHERE name = 'crash'" "offline|3"
check_sql "SELECT count(*) FROM events WHERE kind = 'device.offline'" "1"
expect 0 "enabled crash" -- device enable crash
check_sql "SELECT status, fail_streak FROM devices WHERE name = 'crash'" "unknown|0"

# sshd killed during a benchmark: a failed measurement, no hang
start_sshd doomed
expect 0 "added doomed" -- device add doomed --host 127.0.0.1 --port "$port_doomed" --user "$user" --key "$tmp/user_key" --known-hosts "$KH" --work-root "$ROOT" --run-prefix "sh $tmp/slow.sh" --timeout 5 --cflags -O1
expect 0 "recorded" -- device trust doomed --yes
t0=$(date +%s)
"$TAILOR" bench "$G" --device doomed --device lap "${B[@]}" --timeout 60 >"$tmp/out" 2>"$tmp/err" &
bpid=$!
sleep 2.5
kill_sshd doomed
wait "$bpid"
rc=$?
dt=$(($(date +%s) - t0))
ok
[ "$rc" = 1 ] || fail "bench with sshd killed: exit $rc: $(cat "$tmp/out" "$tmp/err")"
ok
[ "$dt" -lt 20 ] || fail "bench with sshd killed took $dt s"
grep -q "doomed .*FAILED (lost)" "$tmp/out" || fail "sshd killed: $(cat "$tmp/out")"
grep -q "lap .*TTFT" "$tmp/out" || fail "sshd killed: lap did not go on: $(cat "$tmp/out")"
check_sql "SELECT status, failure FROM measurements WHERE device_id = (SELECT id FROM devices WHERE name = 'doomed')" "failed|lost"
expect 1 "FAILED (connect).*refused" -- bench "$G" --device doomed "${B[@]}"
# The connection died with the work dir in place: it stays (a later run
# removes work dirs older than a day); the other devices' dirs are gone.
ok
[ "$(ls -A "$ROOT" | wc -l)" -le 1 ] || fail "work dirs left after sshd was killed: $(ls -A "$ROOT")"
rm -rf "$ROOT"/tailor-run.*

# ---- two processes, one device: never at once ------------------------------------
cat >"$tmp/logwrap.sh" <<EOF
echo "start \$(date +%s.%N)" >>"$tmp/overlap.log"
sleep 0.5
"\$@"
rc=\$?
echo "end \$(date +%s.%N)" >>"$tmp/overlap.log"
exit \$rc
EOF
expect 0 "added excl" -- device add excl "${C[@]}" --work-root "$ROOT" --run-prefix "sh $tmp/logwrap.sh"
# a second registry entry for the same machine shares the lock
expect 0 "added excl2" -- device add excl2 "${C[@]}" --work-root "$ROOT" --run-prefix "sh $tmp/logwrap.sh"
# one harness run per bench (warm-up 0, one repeat): one start/end pair each
"$TAILOR" bench "$G" --device excl "${B[@]}" --warmup 0 --repeats 1 >"$tmp/c1" 2>&1 &
p1=$!
"$TAILOR" bench "$G" --device excl2 "${B[@]}" --warmup 0 --repeats 1 >"$tmp/c2" 2>&1 &
p2=$!
"$TAILOR" bench "$G" --device excl "${B[@]}" --warmup 0 --repeats 1 >"$tmp/c3" 2>&1 &
p3=$!
wait $p1; r1=$?
wait $p2; r2=$?
wait $p3; r3=$?
ok
[ "$r1$r2$r3" = 000 ] || fail "concurrent benches: $r1 $r2 $r3: $(cat "$tmp/c1" "$tmp/c2" "$tmp/c3")"
ok
python3 - "$tmp/overlap.log" <<'EOF' || fail "two measurements at once: $(cat "$tmp/overlap.log")"
import sys
ev = [l.split() for l in open(sys.argv[1])]
assert len(ev) == 6, ev
for i in range(0, 6, 2):
    assert ev[i][0] == "start" and ev[i + 1][0] == "end", ev
    if i:
        assert float(ev[i][1]) >= float(ev[i - 1][1]), ev
EOF

# ---- adb through a lab host ------------------------------------------------------
# The lab host is this sshd; adb is a stand-in (no phone is attached here)
# that checks the serial and does what adb push / adb shell do.
serial="R58M 'x' \$(touch PWNED);"
mkdir -p "$tmp/adb dir"
printf '%s' "$serial" >"$tmp/adb dir/serial"
cat >"$tmp/adb dir/adb shim" <<'EOF'
#!/bin/sh
dir=$(dirname "$0")
[ "$1" = "-s" ] && [ "$2" = "$(cat "$dir/serial")" ] || { echo "error: device '$2' not found" >&2; exit 1; }
case "$3" in
push) [ $# = 5 ] || { echo "error: push takes 2 paths" >&2; exit 1; }
      cp "$4" "$5" && echo "$4: 1 file pushed" ;;
shell) shift 3; exec sh -c "$*" ;;
*) echo "error: unknown command $3" >&2; exit 1 ;;
esac
EOF
chmod +x "$tmp/adb dir/adb shim"
stage_before=$(ls -d /tmp/tailor-stage.* 2>/dev/null | wc -l)
expect 0 "added phone" -- device add phone --transport adb "${C[@]}" --serial "$serial" --adb "$tmp/adb dir/adb shim" --work-root "$ROOT" --label phone
expect 0 "phone:" -- device probe phone --no-bandwidth
expect 0 "phone .*TTFT" -- bench "$G" --device phone "${B[@]}"
ok
[ -z "$(ls -A "$ROOT")" ] || fail "adb work dir left: $(ls -A "$ROOT")"
ok
[ "$(ls -d /tmp/tailor-stage.* 2>/dev/null | wc -l)" = "$stage_before" ] || fail "adb staging dir left on the lab host"
expect 0 "added phone-gone" -- device add phone-gone --transport adb "${C[@]}" --serial "nope" --adb "$tmp/adb dir/adb shim" --work-root "$ROOT"
expect 1 "FAILED" -- bench "$G" --device phone-gone "${B[@]}"
no_pwned

# ---- compile on the device -------------------------------------------------------
expect 0 "added cod" -- device add cod "${C[@]}" --work-root "$ROOT" --compile-on-device --cflags "-O0"
expect 0 "cod .*TTFT" -- bench "$G" --device cod "${B[@]}"
check_sql "SELECT length(build_hash) FROM measurements WHERE device_id = (SELECT id FROM devices WHERE name = 'cod')" "64"

# ---- a search measuring on the lab device and here at once (tailor run) -------------
cat >"$tmp/search.json" <<EOF
{"name": "lab", "space": "$SRC/examples/spaces/tiny.json", "population": 4, "generations": 2,
 "seed": 2, "devices": ["lap", "local"],
 "objectives": [{"metric": "decode_ms@lap"}, {"metric": "decode_ms@local"},
                {"metric": "params", "direction": "max"}],
 "bench": {"prompt": 16, "gen": 4, "threads": 1}}
EOF
sed 's/"lap", "local"/"nosuch", "local"/; s/decode_ms@lap/decode_ms@nosuch/' "$tmp/search.json" >"$tmp/search-bad.json"
expect 1 "devices\[0\]: 'nosuch': no such device" -- run start "$tmp/search-bad.json"
q "DELETE FROM measurement_repeats; DELETE FROM measurements"
expect 0 "frontier of run" -- run start "$tmp/search.json" --quiet
check_sql "SELECT status FROM runs WHERE name = 'lab'" "finished"
check_sql "SELECT count(*) FROM candidates WHERE status <> 'done'" "0"
# every genome of the run measured once on the lab device, and stored
check_sql "SELECT count(DISTINCT genome_hash) = (SELECT count(*) FROM measurements WHERE status = 'ok' AND device_id = (SELECT id FROM devices WHERE name = 'lap')) FROM candidates" "1"
[ -z "$(ls -A "$ROOT")" ] || fail "remote work dir left behind by the search: $(ls -A "$ROOT")"

# ---- add --file, remove, enable, disable -----------------------------------------
cat >"$tmp/devs.json" <<EOF
{"devices": [
  {"name": "f1", "host": "10.0.0.1", "user": "pi", "labels": ["pi", "arm"], "threads": 4},
  {"name": "f2", "host": "10.0.0.2", "bogus": 1}
]}
EOF
expect 2 "devices\[1\]: unknown key 'bogus'" -- device add --file "$tmp/devs.json"
check_sql "SELECT count(*) FROM devices WHERE name IN ('f1', 'f2')" "0"
sed -i 's/, "bogus": 1//' "$tmp/devs.json"
expect 0 "added f2" -- device add --file "$tmp/devs.json"
check_sql "SELECT labels, threads FROM devices WHERE name = 'f1'" '["pi", "arm"]|4'
expect 1 "exists" -- device add --file "$tmp/devs.json"
expect 0 "disabled f1" -- device disable f1
expect 1 "disabled" -- bench "$G" --device f1 "${B[@]}"
expect 0 "removed f1" -- device remove f1
expect 1 "disable it instead" -- device remove lap
expect 1 "always exists" -- device remove local
expect 0 "lap" -- device list
expect 0 '"name":.*"local"' -- device list --json
no_pwned

# nothing of ours is left running on the "device" (watchdogs, hung commands)
sleep 0.5
ok
left=$(pgrep -af "@tlx-.*$tmp" | grep -v pgrep)
[ -z "$left" ] || fail "processes left on the device: $left"

[ -n "${TAILOR_TEST_KEEP:-}" ] && { echo "keeping $tmp; port $port" >&2; trap - EXIT; sleep 100000; }
echo "test_device_ssh: $checks checks, $fails failed, $(($(date +%s) - t_start)) s"
[ "$fails" = 0 ]

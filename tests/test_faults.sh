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
#  - a device over SSH (a real sshd on loopback) killed mid-run, twice: the
#    run waits for it and goes on, then, past bench.device_wait_s, stops
#    with one line, nothing failed, and resumes once sshd is back; the
#    device's commands die with their connection;
#  - the database made read-only mid-run (chattr +i; skipped, said so in
#    the table, where the filesystem or user cannot);
#  - the wall clock stepped an hour back and a day ahead mid-run
#    (libfaketime, package faketime; skipped likewise without it);
#  - processes left 0.3 s after a kill -9: the reaper's job (util/proc.c);
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
check '[ "$orphans" = 0 ]' "$orphans kills left processes running 0.3 s later (the reaper kills them at once)"
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

# ---- a device over SSH whose sshd is killed mid-run (OpenSSH's sshd on
# loopback, as test_device_ssh.sh): the first time it comes back after 3 s
# and the run goes on, waiting for it; the second time it stays away past
# bench.device_wait_s and the run stops with one line, its candidates
# pending (not failed); the harness on the device dies with its connection;
# once sshd is back, resume finishes the run
ssh_state="skipped (no /usr/sbin/sshd)" ssh_lost=- ssh_left=- ssh_failed=-
if [ -x /usr/sbin/sshd ] && command -v ssh-keygen > /dev/null; then
	SSHD=/usr/sbin/sshd sshd_pids=()
	. "$ROOT/tests/lib_sshd.sh"
	[ "$(id -u)" = 0 ] && mkdir -p /run/sshd
	ssh-keygen -q -t ed25519 -N '' -C host -f "$tmp/host_key" &&
		ssh-keygen -q -t ed25519 -N '' -C user -f "$tmp/user_key" &&
		cp "$tmp/user_key.pub" "$tmp/authorized_keys" || exit 1
	start_sshd lab
	S=(--db "$tmp/s.db")
	"$TAILOR" "${S[@]}" device add lab --host 127.0.0.1 --port "$port_lab" --user "$(id -un)" \
		--key "$tmp/user_key" --known-hosts "$tmp/known_hosts" --work-root "$tmp/remote" \
		--timeout 5 --cflags -O1 > /dev/null &&
		"$TAILOR" "${S[@]}" device trust lab --yes > /dev/null || fail "device add/trust lab"
	cat > "$tmp/s.json" << JSON
{"name": "sshd", "space": "$ROOT/examples/spaces/lfm2-like-small.json", "population": 4,
 "generations": 2, "seed": 3, "devices": ["lab"],
 "objectives": [{"metric": "params", "direction": "min"}, {"metric": "decode_ms@lab", "direction": "min"}],
 "bench": {"prompt": 16, "gen": 8, "threads": 1, "quant": "q8_0", "timeout_s": 120, "device_wait_s": 8}}
JSON
	# measured: done measurements on lab; remote: processes of the device's work dirs
	measured() { q "$tmp/s.db" "SELECT count(*) FROM measurements WHERE status = 'ok'" 2> /dev/null || echo 0; }
	remote() {
		local p
		for p in /proc/[0-9]*; do
			case "$(readlink "$p/cwd" 2> /dev/null)" in "$tmp/remote"*)
				grep -q '^State:.*Z' "$p/status" 2> /dev/null || echo "${p#/proc/}" ;;
			esac
		done | tr '\n' ' '
	}
	until_measured() { for _ in $(seq 600); do [ "$(measured)" -ge "$1" ] && return 0; sleep 0.1; done; return 1; }
	"$TAILOR" "${S[@]}" run start "$tmp/s.json" --quiet > /dev/null 2> "$tmp/s.err" &
	spid=$!
	until_measured 2 || fail "sshd run: no measurement in 60 s: $(tail -2 "$tmp/s.err")"
	for _ in $(seq 100); do [ -n "$(remote)" ] && break; sleep 0.05; done # mid-harness
	kill_sshd lab
	sleep 1.5
	ssh_left=$(remote)
	check '[ -z "$ssh_left" ]' "sshd killed: the device's commands still run 1.5 s later: $(ps -o pid,args -p "$(echo $ssh_left | tr ' ' ,)" 2> /dev/null | tail -n +2)"
	sleep 1.5
	start_sshd lab "$port_lab"
	n1=$(measured)
	until_measured $((n1 + 3)) || fail "sshd back: the run did not go on: $(tail -2 "$tmp/s.err")"
	kill_sshd lab # and it stays away
	for _ in $(seq 400); do kill -0 "$spid" 2> /dev/null || break; sleep 0.1; done
	wait "$spid"; src=$?
	nl=$(grep -c . "$tmp/s.err")
	check '[ $src = 1 ] && [ "$nl" = 1 ] && grep -q "unreachable for .*stay pending.*run resume 1" "$tmp/s.err"' \
		"sshd gone: rc $src, $nl lines: $(head -c 500 "$tmp/s.err")"
	ssh_failed=$(q "$tmp/s.db" "SELECT count(*) FROM candidates WHERE status = 'failed'")
	ssh_lost=$(q "$tmp/s.db" "SELECT count(*) FROM measurements WHERE failure IN ('lost', 'connect', 'transfer')")
	pend=$(q "$tmp/s.db" "SELECT count(*) FROM candidates WHERE status IN ('pending', 'evaluating')")
	check '[ "$ssh_failed" = 0 ] && [ "$pend" -gt 0 ] && [ "$ssh_lost" -ge 2 ]' \
		"sshd gone: $ssh_failed candidates failed (want 0), $pend pending (want > 0), $ssh_lost failed connections (want >= 2)"
	start_sshd lab "$port_lab"
	"$TAILOR" "${S[@]}" run resume 1 --quiet > /dev/null 2> "$tmp/s2.err"; rc=$?
	st=$(q "$tmp/s.db" "SELECT status FROM runs WHERE id = 1")
	sh=$(shape "$tmp/s.db" | tr '\n' ' ')
	check '[ $rc = 0 ] && [ "$st" = finished ] && [ "$sh" = "0|4|4 1|8|8 " ]' "resume after sshd came back: rc $rc, status $st, generations $sh: $(tail -2 "$tmp/s2.err")"
	ssh_state="stopped (rc $src) after 8 s away, resumed: $st"
	kill_sshd lab
fi

# ---- the database made read-only mid-run (chattr +i, as a filesystem that
# turned read-only: writes to the open file fail with EPERM): one line,
# then resume once it is writable
ro_state="skipped (chattr +i refused: not root or a filesystem without it)"
touch "$tmp/imm" && if chattr +i "$tmp/imm" 2> /dev/null; then
	chattr -i "$tmp/imm"
	"$TAILOR" --db "$tmp/ro.db" run start "$tmp/f.json" --quiet > /dev/null 2> "$tmp/ro.err" &
	rpid=$!
	for _ in $(seq 600); do
		[ "$(q "$tmp/ro.db" "SELECT count(*) FROM candidates WHERE status = 'done'" 2> /dev/null || echo 0)" -ge 3 ] && break
		sleep 0.1
	done
	chattr +i "$tmp/ro.db" "$tmp/ro.db-wal"
	wait "$rpid"; rrc=$?
	chattr -i "$tmp/ro.db" "$tmp/ro.db-wal"
	nl=$(grep -c . "$tmp/ro.err")
	check '[ $rrc = 1 ] && [ "$nl" = 1 ] && grep -q "became read-only" "$tmp/ro.err"' "read-only mid-run: rc $rrc, $nl lines: $(head -c 400 "$tmp/ro.err")"
	"$TAILOR" --db "$tmp/ro.db" run resume 1 --quiet > /dev/null 2> "$tmp/ro2.err"; rc=$?
	st=$(q "$tmp/ro.db" "SELECT status FROM runs WHERE id = 1")
	check '[ $rc = 0 ] && [ "$st" = finished ] && [ "$(shape "$tmp/ro.db")" = "$ref" ] && [ "$(q "$tmp/ro.db" "PRAGMA integrity_check")" = ok ] && [ "$(doubled "$tmp/ro.db")" = 0 ]' \
		"resume after read-only: rc $rc, status $st, generations $(shape "$tmp/ro.db" | tr '\n' ' '): $(tail -2 "$tmp/ro2.err")"
	ro_state="rc $rrc, then resumed: $st"
fi

# ---- the clock jumps (libfaketime: the wall clock of tailor, of SQLite's
# 'now' and of the harness goes back an hour, then a day ahead, mid-run;
# the monotonic clock does not, as with an NTP step): the run finishes with
# sane latencies, and the stored times show that the jumps landed
ft=/usr/lib/$(gcc -dumpmachine 2> /dev/null)/faketime/libfaketime.so.1
clock_state="skipped (no $ft: apt-get install faketime)"
if [ -f "$ft" ]; then
	echo "+0" > "$tmp/clock"
	cm() { q "$tmp/c.db" "SELECT count(*) FROM measurements" 2> /dev/null || echo 0; }
	( # after the 2nd measurement, an hour back; after the 6th, a day ahead
		for _ in $(seq 1200); do [ "$(cm)" -ge 2 ] && break; sleep 0.05; done
		echo "-1h" > "$tmp/clock"
		for _ in $(seq 1200); do [ "$(cm)" -ge 6 ] && break; sleep 0.05; done
		echo "+1d" > "$tmp/clock"
	) &
	jpid=$!
	cat > "$tmp/c.json" << JSON
{"name": "clock", "space": "$ROOT/examples/spaces/lfm2-like-small.json", "population": 4,
 "generations": 4, "seed": 5, "devices": ["local"],
 "objectives": [{"metric": "params", "direction": "min"}, {"metric": "decode_ms@local", "direction": "min"}],
 "bench": {"prompt": 16, "gen": 8, "threads": 1, "repeat": 3, "quant": "q8_0", "timeout_s": 120}}
JSON
	LD_PRELOAD=$ft FAKETIME_TIMESTAMP_FILE="$tmp/clock" FAKETIME_NO_CACHE=1 FAKETIME_DONT_FAKE_MONOTONIC=1 \
		"$TAILOR" --db "$tmp/c.db" run start "$tmp/c.json" --quiet > /dev/null 2> "$tmp/c.err"; crc=$?
	wait "$jpid"
	st=$(q "$tmp/c.db" "SELECT status FROM runs WHERE id = 1")
	bad=$(q "$tmp/c.db" "SELECT count(*) FROM measurements WHERE status = 'ok' AND NOT (decode_ms_p50 > 0 AND decode_ms_p50 < 1000 AND ttft_ms > 0 AND ttft_ms < 10000)")
	back=$(q "$tmp/c.db" "SELECT (SELECT count(*) FROM measurements a JOIN measurements b ON b.id = a.id + 1 WHERE b.created_at < a.created_at) + (SELECT count(*) FROM candidates a JOIN candidates b ON b.id = a.id + 1 WHERE b.created_at < a.created_at)")
	check '[ $crc = 0 ] && [ "$st" = finished ] && [ "$bad" = 0 ]' "clock jumps: rc $crc, status $st, $bad latencies out of range: $(tail -2 "$tmp/c.err")"
	check '[ "$back" -ge 1 ]' "clock jumps: no stored time went back (the jump did not land)"
	clock_state="rc $crc, $st, $bad latencies out of range, times going back: $back"
fi

t_end=$(date +%s)
printf '\ntest_faults: what was injected and found\n' >&2
printf '  %-40s %s\n' "kill -9 landed" "$kills of $KILLS" "resumes (2 at once at the end)" "$resumes" \
	"processes left 0.3 s after a kill" "$orphans kills" "processes left 10 s after a kill" "$orphans_late kills" \
	"candidates doubled" "$nd" "stale build dirs" "$stale" "disk-full run" "rc $drc, then resumed" \
	"sshd killed twice" "$ssh_state" "  its failed connections" "$ssh_lost" \
	"  candidates failed for it" "$ssh_failed" "  device commands left 1.5 s later" "${ssh_left:-none}" \
	"database read-only mid-run" "$ro_state" "clock jumps -1 h, +1 d" "$clock_state" \
	"wall time" "$((t_end - t_start)) s" >&2
echo "test_faults: $checks checks, $fails failed" >&2
[ "$fails" = 0 ]

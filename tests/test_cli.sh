#!/usr/bin/env bash
# tests/test_cli.sh: the tailor executable's contract, run against the built
# binary: exit 0/1/2, one line on stderr for every usage error, help and
# version, and the database commands on real files.
set -u
TAILOR=${1:?usage: test_cli.sh PATH_TO_TAILOR}
case "$TAILOR" in /*) ;; *) TAILOR="$PWD/$TAILOR" ;; esac
fails=0
checks=0
tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
export TAILOR_DB="$tmp/env.db"

fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# expect CODE LINES_ON_STDERR(-1: any) PATTERN -- ARGS...
expect() {
	local want=$1 lines=$2 pat=$3
	shift 4
	checks=$((checks + 1))
	"$TAILOR" "$@" >"$tmp/out" 2>"$tmp/err"
	local got=$?
	if [ "$got" != "$want" ]; then
		fail "tailor $*: exit $got, want $want (stderr: $(head -c 300 "$tmp/err"))"
		return
	fi
	local n
	n=$(wc -l <"$tmp/err")
	if [ "$lines" != -1 ] && [ "$n" != "$lines" ]; then
		fail "tailor $*: $n lines on stderr, want $lines: $(cat "$tmp/err")"
	fi
	if [ -n "$pat" ] && ! grep -q -- "$pat" "$tmp/out" "$tmp/err"; then
		fail "tailor $*: output lacks '$pat': $(cat "$tmp/out" "$tmp/err" | head -c 400)"
	fi
}

# help and version
expect 0 0 "usage: tailor" -- --help
expect 0 0 "usage: tailor" -- -h
expect 0 0 "^tailor [0-9]" -- --version
expect 0 0 "usage: tailor" -- help
expect 0 0 "tailor \[--db PATH\] db info" -- db --help
expect 0 0 "tailor \[--db PATH\] db info" -- help db
# every command in the help has its own --help
for cmd in $("$TAILOR" --help | awk '/^commands:/{f=1;next} /^$/{f=0} f{print $1}'); do
	expect 0 0 "usage: tailor" -- "$cmd" --help
done

# usage errors: exit 2, exactly one line on stderr
expect 2 1 "missing command" --
expect 2 1 "unknown command 'frobnicate'" -- frobnicate
expect 2 1 "unknown option '--bogus'" -- --bogus
expect 2 1 "unknown option '--bogus'" -- db info --bogus
expect 2 1 "unknown option '-q'" -- db -q info
expect 2 1 "option '--db' needs a value" -- --db
expect 2 1 "option '--db' needs a value" -- db info --db
expect 2 1 "missing subcommand" -- db
expect 2 1 "unknown subcommand 'nope'" -- db nope
expect 2 1 "unexpected argument 'extra'" -- db info extra
expect 2 1 "unknown command 'nope'" -- help nope

# the database: created where --db or TAILOR_DB says
expect 0 0 "schema version" -- --db "$tmp/a.db" db migrate
[ -f "$tmp/a.db" ] || fail "--db did not create $tmp/a.db"
expect 0 0 "devices       1" -- db info --db "$tmp/a.db"
expect 0 0 "\"journal_mode\":\"wal\"" -- --db "$tmp/a.db" db info --json
expect 0 0 "$tmp/env.db" -- db info
[ -f "$tmp/env.db" ] || fail "TAILOR_DB did not create $tmp/env.db"
( cd "$tmp" && unset TAILOR_DB && "$TAILOR" db migrate >/dev/null 2>&1 ) ||
	fail "default ./tailor.db could not be created"
[ -f "$tmp/tailor.db" ] || fail "default ./tailor.db missing"

# failures: exit 1, one line naming the path
expect 1 1 "does not exist" -- --db "$tmp/missing/dir/x.db" db info
printf 'this is not a database, just some text that is long enough...%.0s' {1..40} >"$tmp/junk.db"
expect 1 1 "junk.db" -- --db "$tmp/junk.db" db info
cmp -s "$tmp/junk.db" <(printf 'this is not a database, just some text that is long enough...%.0s' {1..40}) ||
	fail "a non-database file was modified"

# genome: presets, text, JSON, spaces
SRC=$(cd "$(dirname "$0")/.." && pwd)
SPACE="$SRC/examples/spaces/tiny.json"
expect 0 0 "354483968" -- genome show lfm2-350m
expect 0 0 "\"params\":1235814400" -- genome show llama-3.2-1b --json
expect 0 0 "KV cache per token    6144 bytes" -- genome show "$SRC/examples/genomes/lfm2-1.2b.json" --elem-bytes 1
expect 0 0 ": ok " -- genome validate "$SRC"/examples/genomes/*.json
"$TAILOR" genome random --space "$SPACE" --seed 7 -n 3 >"$tmp/r1" 2>&1 || fail "genome random failed"
"$TAILOR" genome random --space "$SPACE" --seed 7 -n 3 >"$tmp/r2" 2>&1
cmp -s "$tmp/r1" "$tmp/r2" || fail "genome random is not deterministic for a seed"
[ "$(wc -l <"$tmp/r1")" = 3 ] || fail "genome random -n 3 printed $(wc -l <"$tmp/r1") lines"
g1=$(sed -n 1p "$tmp/r1"); g2=$(sed -n 2p "$tmp/r1")
expect 0 0 ": ok " -- genome validate "$g1" --space "$SPACE"
expect 0 0 "^tailor-genome/1" -- genome mutate "$g1" --space "$SPACE" --level operator
expect 0 0 "^tailor-genome/1" -- genome cross "$g1" "$g2" --space "$SPACE" --seed 3
"$TAILOR" genome cross "$g1" "$g2" --space "$SPACE" >"$tmp/kids" && [ "$(wc -l <"$tmp/kids")" = 2 ] ||
	fail "genome cross did not print two children"
"$TAILOR" genome random --space "$SPACE" --json >"$tmp/g.json"
expect 0 0 "hash" -- genome show "$tmp/g.json"
printf '%s\n' "$g1" | "$TAILOR" genome validate - >/dev/null 2>&1 || fail "genome validate - (stdin) failed"
# genome errors
expect 2 1 "missing subcommand" -- genome
expect 2 1 "unknown subcommand 'grow'" -- genome grow
expect 2 1 "--space FILE is required" -- genome random
expect 2 1 "missing GENOME" -- genome show
expect 2 1 "unexpected argument" -- genome show lfm2-350m extra
expect 2 1 "--level: 'sideways'" -- genome mutate lfm2-350m --space "$SPACE" --level sideways
expect 2 1 "--seed: 'abc': not an unsigned integer" -- genome random --space "$SPACE" --seed abc
expect 2 1 "--count: '0': out of range" -- genome random --space "$SPACE" -n 0
expect 2 1 "no such file or preset" -- genome show no-such-preset
# a file that is not a genome: named with the line, its content not echoed;
# a NUL byte is refused, not a silent end of the text (issue 14)
printf 'root:x:0:0:secret-line\n' > "$tmp/notgenome"
expect 1 1 "notgenome: line 1: not a genome" -- genome show "$tmp/notgenome"
if grep -q secret-line "$tmp/err"; then fail "genome show echoes the file's content: $(cat "$tmp/err")"; fi
printf '%s\0garbage' "$g1" > "$tmp/nul.txt"
expect 1 1 "nul.txt: byte [0-9]* is a NUL" -- genome show "$tmp/nul.txt"
expect 1 1 "argument: class 0: kv_heads 3 does not divide heads 16" -- genome show \
	"tailor-genome/1 d=64 vocab=32 ffn_multiple=8 rope_theta=10000 tied=1 | 0.0.0.0.0 | c0 op=0.4.0.1.1 h=16 kv=3 hd=4 qkn=1 rope=1 C=0.2.1.1 B=0.2.1.5 V=0.2.1.5"
printf '{"d_model":256,"vocab":256,"depth":4,"classes":[{"op":"glu.diagonal.none.silu.diagonal","ffn":256},{"op":"qkv.dense.none.softmax.heads","heads":16,"kv_heads":3,"head_dim":64}]}' >"$tmp/space.json"
expect 1 1 "space.json: classes\[1\].kv_heads: 3 does not divide heads 16" -- genome random --space "$tmp/space.json"
expect 1 1 "not in space" -- genome mutate lfm2-350m --space "$SPACE"
expect 1 1 "invalid" -- genome validate lfm2-350m --space "$SPACE"

# the measurement protocol's flags and file (refused before anything is built)
expect 2 1 "\-\-warmup goes with \-\-device" -- bench lfm2-350m --warmup 2
expect 2 1 "\-\-cv: 'x'" -- bench lfm2-350m --device local --cv x
expect 2 1 "\-\-repeats: '0'" -- bench lfm2-350m --device local --repeats 0
printf '{"repeats": 3, "thermal": {"max_tmp_c": 70}}' >"$tmp/proto.json"
expect 1 1 "proto.json: protocol: \$.thermal.max_tmp_c: unknown key" -- bench lfm2-350m --device local --protocol "$tmp/proto.json"
printf '{"shapes": [{"prompt": 8}, {"depth": -1}]}' >"$tmp/proto.json"
expect 1 1 "protocol: \$.shapes\[1\].depth: -1: must be in 0" -- bench lfm2-350m --device local --protocol "$tmp/proto.json"

# a device's own protocol settings (device add --protocol): checked when added,
# stored compactly, applied before the command's protocol and flags, per device
export TAILOR_CACHE="$tmp/cache"
printf '{"repeats": 2, "thermal": {"max_tmp_c": 70}}' >"$tmp/bad.json"
expect 1 1 "bad.json: protocol: \$.thermal.max_tmp_c: unknown key" -- device add px --transport local --protocol "$tmp/bad.json"
expect 1 1 "no such device" -- device show px
printf '{"devices": [{"name": "fx", "transport": "local", "protocol": {"delay": 1}}]}' >"$tmp/devs.json"
expect 2 1 "devs.json: devices\[0\].protocol: \$.delay: unknown key" -- device add --file "$tmp/devs.json"
printf '{"devices": [{"name": "fx", "transport": "local", "protocol": [1]}]}' >"$tmp/devs.json"
expect 2 1 "devices\[0\].protocol: give an object" -- device add --file "$tmp/devs.json"
expect 1 1 "no such device" -- device show fx
expect 2 1 "\-\-protocol goes with 'add NAME'" -- device add --file "$tmp/devs.json" --protocol "$tmp/bad.json"
printf '{ "repeats" : 2,\n  "warmup": 0 }\n' >"$tmp/good.json"
expect 0 0 'protocol overrides: {"repeats":2,"warmup":0}' -- device add px --transport local --cflags -O1 --protocol "$tmp/good.json"
expect 0 0 'protocol *{"repeats":2,"warmup":0}$' -- device show px
expect 0 0 '"repeats":[[:space:]]*2' -- device show px --json
expect 0 0 '"protocol":[[:space:]]*null' -- device show local --json
# the canary history: each canary genome's newest 10, the change of decode ms from the previous
expect 0 0 "canary history  none" -- device show px
expect 0 0 '"canaries":[[:space:]]*\[\]' -- device show px --json
CH=$(printf 'c%.0s' $(seq 64)); CD=$(printf 'd%.0s' $(seq 64))
sqlite3 "$TAILOR_DB" "WITH RECURSIVE g(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM g WHERE x < 11)
  INSERT INTO canaries (device_id, canary_hash, generation, decode_ms, ttft_ms, created_at)
  SELECT (SELECT id FROM devices WHERE name = 'px'), '$CH', x, 10 + x, 100, printf('2026-02-%02dT10:00:00.000Z', x + 1) FROM g;
  INSERT INTO canaries (device_id, canary_hash, generation, decode_ms) SELECT id, '$CD', 0, 5 FROM devices WHERE name = 'px'" ||
	fail "canary inserts"
expect 0 0 "canary cccccccccccc: 12 measurements, the newest 10$" -- device show px
expect 0 0 "^    2026-02-12 10:00 *- *12 *21.000 *100.00 *+5.0%$" -- device show px
expect 0 0 "^    2026-02-03 10:00 *- *3 *12.000 *100.00 *+9.1%$" -- device show px
expect 0 0 "canary dddddddddddd: 1 measurement$" -- device show px
"$TAILOR" device show px >"$tmp/show" 2>&1
checks=$((checks + 1))
grep -q "2026-02-02" "$tmp/show" && fail "device show: the 11th newest canary is printed"
expect 0 0 '"decode_change":[[:space:]]*0.05' -- device show px --json
"$TAILOR" device show px --json >"$tmp/show.json" 2>&1
checks=$((checks + 1))
[ "$(grep -c '"canary_hash"' "$tmp/show.json")" = 13 ] || fail "device show --json: not 13 canaries: $(head -c 300 "$tmp/show.json")"
printf '{"devices": [{"name": "fx", "transport": "local", "protocol": {"delay_s": 0.5, "thermal": {"max_temp_c": 60}}}]}' >"$tmp/devs.json"
expect 0 0 "added fx" -- device add --file "$tmp/devs.json"
expect 0 0 '"max_temp_c":[[:space:]]*60' -- device show fx --json
# set-protocol replaces the overrides; '-' clears them
expect 0 0 'fx: protocol overrides {"repeats":2,"warmup":0}' -- device set-protocol fx "$tmp/good.json"
expect 1 1 "device set-protocol: fx: .*bad.json: protocol: \$.thermal.max_tmp_c" -- device set-protocol fx "$tmp/bad.json"
expect 0 0 'protocol *{"repeats":2,"warmup":0}$' -- device show fx
expect 0 0 "fx: no protocol overrides" -- device set-protocol fx -
expect 0 0 '"protocol":[[:space:]]*null' -- device show fx --json
expect 2 1 "set-protocol: give NAME and FILE" -- device set-protocol fx
expect 0 0 "added py" -- device add py --transport local --cflags -O1
# measured: the device's repeats and warm-up; a command-line flag wins over them
G='tailor-genome/1 d=192 vocab=256 ffn_multiple=32 rope_theta=1000000 tied=1 | 4.0.0.0.0 0.0.0.0.0 3.0.0.0.0 0.0.0.0.0 2.0.0.0.0 0.0.0.0.0 3.0.0.0.0 0.0.0.0.0 1.0.0.0.0 0.0.0.0.0 | c0 op=3.0.0.2.0 ffn=256 C=0.2.1.1 V=0.2.1.1 | c1 op=1.3.0.0.0 len=2 C=4.2.1.1 B=3.2.1.1 V=3.2.1.1 | c2 op=0.4.0.1.1 h=2 kv=1 hd=32 qkn=1 rope=0 C=3.2.1.1 B=3.2.1.2 V=3.2.1.2 | c3 op=2.2.0.0.1 h=2 hd=32 C=0.2.1.1 B=0.2.1.1 V=4.2.1.1 A=0.2.1.1 | c4 op=0.1.0.0.1 h=4 kv=1 hd=16 qkn=0 rope=0 C=0.2.1.1 B=0.2.1.4 V=0.2.1.4'
B=(--prompt 16 --gen 4 --threads 1)
last() { # the newest measurement of device $1: name,status,repeats,protocol's repeats,warmup
	echo "SELECT d.name AS dev, m.status AS st, m.repeats AS n, json_extract(m.protocol, '\$.repeats') AS pr, json_extract(m.protocol, '\$.warmup') AS pw FROM measurements m JOIN devices d ON d.id = m.device_id WHERE d.name = '$1' ORDER BY m.id DESC LIMIT 1"
}
expect 0 0 "px .*TTFT" -- bench "$G" --device px "${B[@]}"
expect 0 -1 "^px,ok,2,2,0$" -- query "$(last px)" --format csv
expect 0 0 "px .*TTFT" -- bench "$G" --device px "${B[@]}" --repeats 3
expect 0 -1 "^px,ok,3,3,0$" -- query "$(last px)" --format csv
# two devices in one command: each stores the protocol it ran
expect 0 0 "py .*TTFT" -- bench "$G" --device px --device py "${B[@]}" --cv 0
expect 0 -1 "^px,ok,2,2,0$" -- query "$(last px)" --format csv
expect 0 -1 "^py,ok,5,5,1$" -- query "$(last py)" --format csv
expect 0 -1 "^2$" -- query "SELECT count(DISTINCT protocol_hash) FROM measurements m WHERE m.id > (SELECT max(id) FROM measurements) - 2" --format csv
# a command file that clashes with the device's settings names the device
printf '{"max_repeats": 1}' >"$tmp/clash.json"
expect 1 1 "device px (over its own protocol): .*clash.json: protocol: max_repeats: 1" -- bench "$G" --device px "${B[@]}" --protocol "$tmp/clash.json"

echo "$checks checks, $fails failed" >&2
[ "$fails" = 0 ]

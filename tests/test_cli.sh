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

echo "$checks checks, $fails failed" >&2
[ "$fails" = 0 ]

#!/usr/bin/env bash
# tests/test_cli.sh: the tailor executable's contract, run against the built
# binary: exit 0/1/2, one line on stderr for every usage error, help and
# version, and the database commands on real files.
set -u
TAILOR=${1:?usage: test_cli.sh PATH_TO_TAILOR}
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

echo "$checks checks, $fails failed" >&2
[ "$fails" = 0 ]

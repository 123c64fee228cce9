#!/usr/bin/env bash
# scripts/test.sh: every test, the way CI runs them (README's test command).
#  1. a release build with warnings as errors, the whole suite;
#  2. an ASan + UBSan build (also warnings as errors), the whole suite again.
# Options: --quick runs only the first build; further arguments go to
# `meson test` (e.g. a test name).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh

quick=0
if [ "${1:-}" = "--quick" ]; then quick=1; shift; fi

setup() { # dir, meson options...
	local dir=$1; shift
	if [ -f "$dir/build.ninja" ]; then
		meson configure "$dir" "$@" >/dev/null
	else
		meson setup "$dir" "$@" >/dev/null
	fi
}

setup build-release --buildtype=release -Dwerror=true
meson compile -C build-release
meson test -C build-release --print-errorlogs "$@"

if [ $quick = 0 ]; then
	setup build-asan --buildtype=debug -Dwerror=true \
		-Db_sanitize=address,undefined -Db_lundef=false
	meson compile -C build-asan
	# the fault suite (kill -9, a full disk: tests/test_faults.sh) runs in
	# the release pass only: under the sanitizers its trainings take minutes.
	# the release pass runs the genome property test at 100,000 iterations;
	# under the sanitizers 20,000 cover the same code at a fifth of the time
	ASAN_OPTIONS=abort_on_error=1:detect_leaks=1:strict_string_checks=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	TAILOR_PROPERTY_N=${TAILOR_PROPERTY_N:-20000} \
		meson test -C build-asan --print-errorlogs --no-suite faults "$@"
fi
echo "test.sh: all tests passed"

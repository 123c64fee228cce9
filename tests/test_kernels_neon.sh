#!/bin/sh
# tests/test_kernels_neon.sh: tests/test_kernels.c on the AArch64 paths, under
# qemu-user: the kernel sources, util/ and the test are cross-compiled twice,
# with the dot-product extension (-march=armv8.2-a+dotprod: sdot, the path
# of current phones) and without it (-march=armv8-a: plain NEON), and each
# binary must report the path it was built for and pass.
#
#     tests/test_kernels_neon.sh [SOURCE_ROOT]
#
# Exit 77 (meson: skipped) only when the cross compiler or qemu is missing
# (Debian: gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user); any other
# problem, a compile error included, is a failure. AARCH64_CC, QEMU_AARCH64
# and AARCH64_SYSROOT override the tools and the sysroot.
set -u

root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cc=${AARCH64_CC:-aarch64-linux-gnu-gcc}
qemu=${QEMU_AARCH64:-qemu-aarch64}
sysroot=${AARCH64_SYSROOT:-/usr/aarch64-linux-gnu}

if ! command -v "$cc" >/dev/null 2>&1; then
	echo "test_kernels_neon: SKIP: $cc not found (apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross)"
	exit 77
fi
if ! command -v "$qemu" >/dev/null 2>&1; then
	echo "test_kernels_neon: SKIP: $qemu not found (apt-get install qemu-user)"
	exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/test_kernels_neon.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

# The project's warning flags (meson.build), as errors, and -ffp-contract=off
# as operators/meson.build compiles the kernels.
cflags="-std=c11 -O2 -g -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes
	-Wmissing-prototypes -Wformat=2 -Wvla -Wno-unused-parameter -fno-strict-aliasing
	-ffp-contract=off -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE"
srcs="$root/operators/quant.c $root/operators/matmul.c $root/operators/dot_x86.c
	$root/operators/dot_neon.c $root/operators/pool.c $root/operators/probe.c
	$root/util/err.c $root/util/rng.c $root/util/parse.c $root/util/sha256.c
	$root/util/host.c
	$root/tests/test_kernels.c"

status=0
for variant in armv8.2-a+dotprod:neon-dotprod armv8-a:neon; do
	march=${variant%%:*}
	want=${variant#*:}
	exe="$tmp/test_kernels_$want"
	echo "== -march=$march (expect kernel path $want)"
	# shellcheck disable=SC2086 # word splitting of the flag and source lists is meant
	if ! "$cc" $cflags -march="$march" -I"$root/util" -I"$root/operators" -I"$root/tests" \
		$srcs -o "$exe" -lm -lpthread; then
		echo "test_kernels_neon: FAIL: compiling for $march"
		status=1
		continue
	fi
	"$qemu" -L "$sysroot" "$exe" >"$tmp/out" 2>&1
	rc=$?
	cat "$tmp/out"
	if [ $rc -ne 0 ]; then
		echo "test_kernels_neon: FAIL: $march: exit status $rc"
		status=1
	elif ! grep -q "kernel path $want\$" "$tmp/out"; then
		echo "test_kernels_neon: FAIL: $march: the binary did not report kernel path $want"
		status=1
	fi
done
exit $status

#!/usr/bin/env bash
# scripts/deps.sh: install the Debian packages tailor needs, only those that
# are missing (apt-get update runs only when something must be installed).
# Runs as root, or through sudo when it is available.
set -euo pipefail

PACKAGES=(
	gcc make pkg-config meson ninja-build   # build
	libsqlite3-dev libssh2-1-dev libcjson-dev   # dependencies (DESIGN.md)
	sqlite3                                  # for analysts and the docs' examples
	clang libclang-rt-14-dev                 # libFuzzer targets, sanitizer runtime
	gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user   # NEON path, cross builds for phones
	openssh-server openssh-client            # the device lab's tests start a real sshd
	chromium python3                         # the report's browser test (headless, offline)
	faketime                                 # the fault suite steps the clock (libfaketime)
)

missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=
if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null; then
		SUDO=sudo
	else
		echo "deps: need root to install: ${missing[*]} (run as root or install sudo)" >&2
		exit 1
	fi
fi
echo "deps: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

#!/usr/bin/env bash
# scripts/quickstart.sh: the README's main command. Installs what is missing,
# builds tailor (release), and runs the quickstart search
# (examples/quickstart.json: an LFM2-like space at small width, measured on
# this machine, device `local`), then prints its frontier. The results go to
# quickstart.db (or $TAILOR_DB); running it again starts a new run in the
# same file.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
if [ ! -f build-release/build.ninja ]; then
	meson setup build-release --buildtype=release >/dev/null
fi
meson compile -C build-release >/dev/null
db=${TAILOR_DB:-quickstart.db}
build-release/cli/tailor --db "$db" run start examples/quickstart.json
echo
echo "quickstart: results in $db; try: build-release/cli/tailor --db $db run status"

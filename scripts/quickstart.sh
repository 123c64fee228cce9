#!/usr/bin/env bash
# scripts/quickstart.sh: the README's main command. Installs what is missing,
# builds tailor, and runs the main job. Until the search engine lands, the
# main job is `tailor --help` and a look at a fresh results database.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
if [ ! -f build/build.ninja ]; then
	meson setup build --buildtype=release >/dev/null
fi
meson compile -C build >/dev/null
build/cli/tailor --help
echo
build/cli/tailor --db "${TAILOR_DB:-quickstart.db}" db info

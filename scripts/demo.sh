#!/usr/bin/env bash
# The demo on local defaults: installs what is missing, builds, then runs a
# private influxd, a fake Qlik Sense site, qs-error-tracker and qs-poller,
# prints the failed polls from influxd, and stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build >/dev/null
exec /usr/bin/python3 scripts/demo.py "$@"

#!/usr/bin/env bash
# The demo station on embedded defaults: simulated readers and dock, the built-in
# Workspace ONE simulator, a temporary store, and the dashboard (keys 1-9 tap, q quits).
# Extra arguments go to `badgedock demo` (e.g. --headless --taps 20).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
exec cargo run --quiet -- demo "$@"
